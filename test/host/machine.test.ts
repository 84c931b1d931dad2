import { describe, expect, it } from "vitest";
import { createMachine } from "../../src/machine/machine.js";
import { DOMID_IO, REVISIONS, type Arch, type HypercallRequest } from "../../src/machine/api.js";
import { LockAssertionError, runToCompletion, type LockGen } from "../../src/locks/index.js";
import { runFixedSchedule } from "../../src/run/schedule.js";
import { CRASHED_RC } from "../../src/machine/errno.js";

const ARCHES: Arch[] = ["arm64", "arm32"];

describe("domain life cycle", () => {
  for (const arch of ARCHES) for (const rev of REVISIONS) {
    it(`destroy returns the heap to its starting free count at ${rev} on ${arch}`, async () => {
      const m = await createMachine({ arch, revision: rev, ramFrames: 0x20000, xenOptions: { gnttabMaxVersion: 2 } });
      const free0 = m.freePages();
      m.createDomain({ domid: 1, privileged: true, ramPages: 300 });
      m.createDomain({ domid: 2, ramPages: 20 });
      expect(m.freePages()).toBeLessThan(free0);
      const c = (req: HypercallRequest, caller = 1) => m.hypercall(req, { caller });
      c({ op: "XENMEM_add_to_physmap", domid: 1, space: 1, idx: 3, gpfn: 0x80000 });
      c({ op: "XENMEM_add_to_physmap", domid: 1, space: 0, idx: 0, gpfn: 0x80010 });
      c({ op: "XENMEM_add_to_physmap_batch", domid: 1, space: 4, size: 2, foreign_domid: 2, idxs: [0x40000, 0x40001], gpfns: [0x90000, 0x90001] });
      c({ op: "XENMEM_populate_physmap", domid: 1, extent_start: [0x70000, 0x70200], extent_order: 9 });
      c({ op: "XENMEM_increase_reservation", domid: 1, extent_start: [], nr_extents: 2 });
      if (arch === "arm64") c({ op: "GNTTABOP_set_version", version: 2 }, 2);
      expect(m.destroyDomain(2)).toBe(0); // its pages stay referenced by domain 1's foreign entries
      expect(m.destroyDomain(1)).toBe(0);
      expect(m.crashed).toBeNull();
      expect(m.freePages()).toBe(free0);
      expect(m.domain(1)).toBeUndefined();
    });
  }

  it("a domain starts with 1 grant frame (v1) and a SHARE_rw shared_info page (FS 3.10, 7.1)", async () => {
    const m = await createMachine({ revision: "gfn" });
    const d = m.createDomain({ domid: 1 });
    expect(d.grant!.nrGrantFrames).toBe(1);
    expect(d.grant!.version).toBe(1);
    expect(m.core.count_info(d.sharedInfo)).toBe(0xc000000000000001n);
    expect(m.core.type_info(d.sharedInfo)).toBe(0xbfffffffffffffffn);
    expect(m.core.type_info(d.grant!.shared[0])).toBe(0xbfffffffffffffffn);
  });

  it("grant limits: PRE..GFN refuse max_grant_frames above gnttab_max_frames, HEAD accepts (FS 7.1)", async () => {
    for (const rev of REVISIONS) {
      const m = await createMachine({ revision: rev, ramFrames: 0x10000 });
      const mk = () => m.createDomain({ domid: 1, maxGrantFrames: 65 });
      if (rev === "head") expect(mk().grant!.maxGrantFrames).toBe(65);
      else expect(mk).toThrow(/grant_table_init: -22/);
      expect(() => m.createDomain({ domid: 2, maxGrantFrames: 0 })).toThrow(/-22/);
    }
  });
});

describe("hypervisor crashes", () => {
  for (const rev of REVISIONS) {
    it(`arm32 set_version 2 -> 1 hits put_page_alloc_ref's BUG_ON at ${rev} (FS 7.4)`, async () => {
      const m = await createMachine({ arch: "arm32", revision: rev, ramFrames: 0x20000, xenOptions: { gnttabMaxVersion: 2 } });
      m.createDomain({ domid: 1, ramPages: 4 });
      expect(m.hypercall({ op: "GNTTABOP_set_version", version: 2 }, { caller: 1 })).toEqual({ rc: 0, version: 2 });
      const r = m.hypercall({ op: "GNTTABOP_set_version", version: 1 }, { caller: 1 });
      expect(r.rc).toBe(CRASHED_RC);
      expect(m.crashed).toMatchObject({ kind: "BUG_ON" });
      expect(m.crashed!.path).toMatch(/^put_page_alloc_ref .*<- gnttab_unpopulate_status_frames <- gnttab_set_version <- GNTTABOP_set_version$/);
      // the machine refuses further hypercalls
      expect(m.hypercall({ op: "XENVER_version" }, { caller: 1 })).toMatchObject({ rc: CRASHED_RC });
    });

    it(`arm64 survives set_version 2 -> 1 at ${rev}`, async () => {
      const m = await createMachine({ arch: "arm64", revision: rev, ramFrames: 0x20000, xenOptions: { gnttabMaxVersion: 2 } });
      m.createDomain({ domid: 1, ramPages: 4 });
      m.hypercall({ op: "GNTTABOP_set_version", version: 2 }, { caller: 1 });
      expect(m.hypercall({ op: "GNTTABOP_set_version", version: 1 }, { caller: 1 })).toEqual({ rc: 0, version: 1 });
      expect(m.crashed).toBeNull();
    });

    it(`gmfn_foreign from DOMID_IO idx 0 at ${rev} (FS 6.3, 8.4)`, async () => {
      const m = await createMachine({ revision: rev, ramFrames: 0x20000 });
      m.createDomain({ domid: 0, privileged: true, hardware: true, directMapped: true, ramPages: 16 });
      const r = m.hypercall({ op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: DOMID_IO, idxs: [0], gpfns: [0x90000] }, { caller: 0 });
      if (rev === "head") {
        expect(r).toEqual({ rc: 0, errs: [-3] });
        expect(m.crashed).toBeNull();
      } else {
        expect(r.rc).toBe(CRASHED_RC);
        expect(m.crashed).toMatchObject({ kind: "data_abort" });
        expect(m.crashed!.path).toMatch(/p2m_get_entry .*<- p2m_get_page_from_gfn\(dom_io\)/);
      }
    });
  }
});

describe("lock emulation", () => {
  it("__p2m_set_entry asserts the P2M write lock", async () => {
    const m = await createMachine({ revision: "gfn", ramFrames: 0x10000 });
    const d = m.createDomain({ domid: 1 });
    expect(() => m.p2mSetEntryLocked(0, d, 0x50000n, 1n, d.sharedInfo, 1)).toThrow(LockAssertionError);
    function* withLock(): LockGen<number> {
      yield* d.p2mLock.writeLock(0);
      const rc = m.p2mSetEntryLocked(0, d, 0x50000n, 1n, d.sharedInfo, 1);
      yield* d.p2mLock.writeUnlock(0);
      return rc;
    }
    expect(runToCompletion(withLock())).toBe(0);
    // held by another cpu does not count
    function* otherCpu(): LockGen<void> {
      yield* d.p2mLock.writeLock(1);
      expect(() => m.p2mSetEntryLocked(0, d, 0x50001n, 1n, d.sharedInfo, 1)).toThrow(LockAssertionError);
      yield* d.p2mLock.writeUnlock(1);
    }
    runToCompletion(otherCpu());
  });

  it("lockdep finds an inversion planted against the real handlers' grant -> p2m order", async () => {
    const m = await createMachine({ revision: "pre", ramFrames: 0x10000 });
    const d = m.createDomain({ domid: 1, privileged: true });
    const c = (req: HypercallRequest) => m.hypercall(req, { caller: 1 });
    c({ op: "XENMEM_add_to_physmap", domid: 1, space: 1, idx: 0, gpfn: 0x50000 });
    expect(m.lockdep.violations).toHaveLength(0);
    // PRE: gnttab_set_frame_gfn removes the old GFN under the grant write lock.
    c({ op: "XENMEM_add_to_physmap", domid: 1, space: 1, idx: 0, gpfn: 0x50001 });
    expect(m.lockdep.hasEdge("grant_lock", "p2m_lock")).toBe(true);
    expect(m.lockdep.violations).toHaveLength(0);
    // Planted: a path holding the P2M lock calls into a grant op.
    function* planted(): LockGen<unknown> {
      yield* d.p2mLock.readLock(0);
      const r = yield* m.hypercallGen({ op: "GNTTABOP_query_size", dom: 1 }, { caller: 1, vcpu: 0 });
      yield* d.p2mLock.readUnlock(0);
      return r;
    }
    runToCompletion(planted());
    expect(m.lockdep.violations.length).toBeGreaterThan(0);
    expect(m.lockdep.violations[0].message).toMatch(/inversion between p2m_lock and grant_lock/);
  });

  it("GFN audit: setup_table reads the GFN bits without the P2M lock (note), the xenheap path writes under it", async () => {
    const m = await createMachine({ revision: "gfn", ramFrames: 0x10000 });
    m.createDomain({ domid: 1 });
    m.hypercall({ op: "XENMEM_add_to_physmap", domid: 1, space: 1, idx: 0, gpfn: 0x50000 }, { caller: 1 });
    expect(m.gfnAudit.counts.lockedWrites).toBe(1);
    m.hypercall({ op: "GNTTABOP_setup_table", dom: 1, nr_frames: 1 }, { caller: 1 });
    expect(m.gfnAudit.counts.unprotectedReads).toBe(1);
    expect(m.gfnAudit.counts.violations).toBe(0);
  });

  // XSA-486: map status frame 0 on vCPU0 while vCPU1 switches back to v1.
  for (const rev of ["gfn", "head"] as const) {
    it(`XSA-486 interleaving at ${rev}`, async () => {
      const m = await createMachine({ revision: rev, ramFrames: 0x10000, xenOptions: { gnttabMaxVersion: 2 } });
      const d = m.createDomain({ domid: 1, privileged: true, ramPages: 4 });
      expect(m.hypercall({ op: "GNTTABOP_set_version", version: 2 }, { caller: 1 }).rc).toBe(0);
      const st = d.grant!.status[0];
      const g0 = m.hypercallGen({ op: "XENMEM_add_to_physmap", domid: 1, space: 1, idx: 0x80000000, gpfn: 0x51000 }, { caller: 1, vcpu: 0 });
      const g1 = m.hypercallGen({ op: "GNTTABOP_set_version", version: 1 }, { caller: 1, vcpu: 1 });
      // cpu0: acquire grant, lookup + get_page, release grant; then cpu1 runs as far as it can.
      const r = runFixedSchedule([g0, g1], [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
      expect(r.deadlock).toBe(false);
      expect(r.results[0]!.rc).toBe(0);
      if (rev === "gfn") {
        // set_version: the status frame holds cpu0's reference -> domain_crash + -EBUSY
        expect(r.results[1]).toEqual({ rc: -16, version: 2 });
        expect(d.crashed).toMatch(/Wrong page state/);
        // P2M maps the status frame, which holds no reference any more
        expect(m.p2mEntry(1, 0x51000)).toMatchObject({ mfn: st, type: 1 });
        expect(m.core.count_info(st) & m.core.PGC_count_mask()).toBe(0n);
        expect(m.core.count_info(st) & m.core.PGC_allocated()).toBe(0n);
      } else {
        // the grant lock is held across the P2M update: set_version waits, then removes the mapping
        expect(r.results[1]).toEqual({ rc: 0, version: 1 });
        expect(d.crashed).toBeNull();
        expect(m.p2mEntry(1, 0x51000).type).toBe(0);
        expect(d.grant!.nrStatusFrames).toBe(0);
      }
      expect(m.crashed).toBeNull();
    });
  }
});
