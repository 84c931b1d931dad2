// Foreign domain ids for XENMAPSPACE_gmfn_foreign (only via the batch; the errno
// lands in errs[i]) per revision: FS 8.4's table, including DOMID_IO idx 0, where
// Xen itself dies at PRE..GFN (FS 6.3) and HEAD refuses with -ESRCH (f795a9c491).

import { describe, expect, it } from "vitest";
import { buildPreset } from "../../src/presets/index.js";
import { ARCHES, CRASHED_RC, DOMID_IO, DOMID_SELF, DOMID_XEN, E, REVS, XENMAPSPACE, crashed, op, preset, r, runOps } from "./helpers.js";

const foreign = (domid: number, idx: bigint | number, gpfn: bigint) => op.batch(XENMAPSPACE.gmfn_foreign, [idx], [gpfn], domid);
const domU = [{ domid: 1, ramPages: 16, ramBaseGfn: 0x1000 }];

describe.each(ARCHES)("gmfn_foreign domain ids (%s)", (arch) => {
  const p = preset(arch);
  const G = (i: number) => p.gfree(i);

  it.each(REVS)("own id, DOMID_SELF, unknown id, DOMID_IO idx > 0, DOMID_XEN (%s)", async (rev) => {
    const { results, run } = await runOps(arch, rev, [
      foreign(0, 0x1000, G(1)),          // the caller's own numeric id
      foreign(DOMID_SELF, 0x1000, G(2)),
      foreign(42, 0x1000, G(3)),          // no such domain
      foreign(DOMID_IO, 1, G(4)),
      foreign(DOMID_IO, 0x60000, G(5)),
      foreign(DOMID_XEN, 0x9010, G(6)),   // gfn taken as mfn; not a RAM page dom_xen owns → no page
      op.maxGpfn(),
    ]);
    const pg = rev !== "head";
    expect(results).toEqual([
      r.errs([pg ? E.SRCH : E.PERM]),
      r.errs([pg ? E.INVAL : E.SRCH]),
      r.errs([E.SRCH]),
      r.errs([pg ? E.INVAL : E.SRCH]),
      r.errs([pg ? E.INVAL : E.SRCH]),
      r.errs([E.INVAL]),
      r.rc(Number(p.plan.expect.maximumGpfn)),
    ]);
    expect(run.crash).toBeNull();
  });

  it.each(REVS)("DOMID_IO idx 0: hypervisor crash at pre..gfn, -ESRCH at head (%s)", async (rev) => {
    const { results, run } = await runOps(arch, rev, [foreign(DOMID_IO, 0, G(1)), op.maxGpfn()]);
    if (rev === "head") {
      expect(results).toEqual([r.errs([E.SRCH]), r.rc(Number(p.plan.expect.maximumGpfn))]);
      expect(run.crash).toBeNull();
      return;
    }
    // No guest-visible return value exists: the machine stops inside the hypercall,
    // before any errs write (FS 8.4). The emulator reports a data abort in the P2M
    // walk of dom_io's never-initialised P2M (FS 6.3, release-build behaviour).
    const c = crashed(results[0]);
    expect(c).not.toBeNull();
    expect(results[0].errs).toBeUndefined();
    expect(c!.kind).toBe("data_abort");
    expect(c!.path).toMatch(/dom_io/);
    expect(c!.path).toMatch(/XENMEM_add_to_physmap_batch/);
    expect(results[1].rc).toBe(CRASHED_RC);           // the machine is gone
    expect(run.crash).toMatchObject({ kind: "data_abort", opIndex: 0 });
  });

  it.each(REVS)("a real foreign domain: map, remove, holes and non-RAM (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      foreign(1, 0x1000, G(1)),            // domU RAM → map_foreign_rw
      foreign(1, 0x2000, G(2)),            // hole in the domU
      op.batch(XENMAPSPACE.gmfn_foreign, [0x1001, 0x1002], [G(3), G(4)], 1),
      op.remove(G(1)),
      op.remove(G(1)),
      op.remove(G(3)),
    ], undefined, domU);
    expect(results).toEqual([
      r.errs([0]),
      r.errs([E.INVAL]),
      r.errs([0, 0]),
      r.rc(0), r.rc(E.NOENT), r.rc(0),
    ]);
  });

  it.each(REVS)("an unprivileged domU may not map dom0's pages (XSM) (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      { ...foreign(0, 0x60000, 0x3000n), caller: 1 },
      { ...op.remove(0x1000), caller: 1, domid: 0 },  // XSM target check on another domain
      { ...op.curRes(0), caller: 1 },
    ], undefined, domU);
    expect(results).toEqual([
      r.errs([E.PERM]), // the batch's target check passes (DOMID_SELF); XSM map_gmfn_foreign fails for the entry
      r.rc(E.PERM),     // remove_from_physmap on dom0: XSM target
      r.rc(E.PERM),     // current_reservation of dom0: XSM target
    ]);
  });
});

// XENMEM_acquire_resource resolves its target with rcu_lock_remote_domain_by_id at
// every revision (FS 8.3): DOMID_SELF → -ESRCH, own id → -EPERM; pad/frame errors first.
describe.each(ARCHES)("acquire_resource target ids and types (%s)", (arch) => {
  const p = preset(arch);
  const G = p.gfree(12);
  const acq = (domid: number, type: number, id: number, frame: bigint | number, nr_frames: number, frame_list: Array<bigint> | null, pad = 0) =>
    ({ op: "XENMEM_acquire_resource", domid, type, id, frame, nr_frames, frame_list, ...(pad ? { pad } : {}) });
  it.each(REVS)("ids, pad, sizes, unknown type (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      acq(DOMID_SELF, 1, 0, 0, 1, [G]),
      acq(0, 1, 0, 0, 1, [G]),
      acq(42, 1, 0, 0, 1, [G]),
      acq(1, 1, 0, 0, 1, [G], 1),
      acq(DOMID_SELF, 1, 0, 0, 1, [G], 1),
      acq(1, 1, 0, 0, 0, null),
      acq(1, 1, 1, 0, 0, null),
      acq(1, 99, 0, 0, 0, null),
      acq(1, 99, 0, 0, 1, [G]),
      acq(1, 2, 0, 0, 0, null),
      acq(1, 1, 0, 0x100000000n, 1, [G]),
      acq(1, 1, 0, 0, 1, null),
      acq(DOMID_SELF, 99, 0, 0, 0, null),
      acq(1, 1, 0, 0, 1, [G]),
      op.remove(G),
      op.remove(G),
    ], undefined, domU);
    const old = rev !== "head";
    expect(results).toEqual([
      r.rc(E.SRCH), r.rc(E.PERM), r.rc(E.SRCH), r.rc(E.INVAL), r.rc(E.INVAL),
      { rc: 0, nr_frames: 64 },
      r.rc(E.INVAL),                                        // status frames: size 0 on Arm
      old ? { rc: 0, nr_frames: 4294967201 } : r.rc(E.INVAL), // -EOPNOTSUPP through an unsigned int
      r.rc(old ? E.OPNOTSUPP : E.INVAL),
      r.rc(E.INVAL),                                        // vmtrace_buf: size 0
      r.rc(E.INVAL),                                        // frame >> 32
      r.rc(E.INVAL),                                        // NULL list with nr_frames != 0
      r.rc(E.SRCH),
      r.rc(0),                                              // domU's grant frame 0 mapped foreign at G
      r.rc(0), r.rc(E.NOENT),
    ]);
  });
});

// FS 6.5 / 11.3: re-mapping the same foreign MFN at the same GFN takes a second reference in
// xenmem_add_to_physmap_one, and __p2m_set_entry skips p2m_put_l3_page (bases equal): one
// reference stays behind after the removal.
describe.each(ARCHES)("foreign page mapped twice at the same gfn (%s)", (arch) => {
  it.each(REVS)("references: +1 per mapping, -1 per removal, one left over (%s)", async (rev) => {
    const m = await buildPreset("qemu-virt-dom0", { arch, revision: rev });
    m.createDomain({ domid: 1, ramPages: 4, ramBaseGfn: 0x1000 });
    const F = preset(arch).gfree(9);
    const fm = m.p2mEntry(1, 0x1000).mfn;
    const alloc = arch === "arm64" ? 0x8000000000000000n : 0x80000000n;
    const call = (req: any) => m.hypercall(req, { caller: 0 });
    expect(m.pageInfo(fm).countInfo).toBe(alloc | 1n);
    expect(call(foreign(1, 0x1000, F))).toEqual({ rc: 0, errs: [0] });
    expect(m.pageInfo(fm).countInfo).toBe(alloc | 2n);
    expect(call(foreign(1, 0x1000, F))).toEqual({ rc: 0, errs: [0] });
    expect(m.pageInfo(fm).countInfo).toBe(alloc | 3n);
    expect(call(op.remove(F)).rc).toBe(0);
    expect(m.pageInfo(fm).countInfo).toBe(alloc | 2n);
    expect(call(op.remove(F)).rc).toBe(E.NOENT);
  });
});
