import { describe, expect, it } from "vitest";
import { createMachine, type MachineImpl } from "../../src/machine/machine.js";
import { DOMID_IO, DOMID_SELF, DOMID_XEN, REVISIONS, type Arch, type HypercallRequest, type Revision } from "../../src/machine/api.js";

const D = 1, U = 2, F = 3; // privileged domU, plain domU, foreign domU with RAM at 0x40000..
async function setup(revision: Revision, arch: Arch = "arm64", xenOptions = {}) {
  const m = await createMachine({ arch, revision, ramFrames: 0x20000, xenOptions });
  m.createDomain({ domid: D, privileged: true, ramPages: 8 });
  m.createDomain({ domid: U, ramPages: 8 });
  m.createDomain({ domid: F, ramPages: 8 });
  const call = (req: HypercallRequest, caller = D, vcpu = 0) => m.hypercall(req, { caller, vcpu });
  return { m, call };
}
const atp = (domid: number, space: number, idx: bigint | number, gpfn: bigint | number, extra: Partial<HypercallRequest> = {}) =>
  ({ op: "XENMEM_add_to_physmap", domid, space, idx, gpfn, ...extra }) as HypercallRequest;
const batch = (space: number, foreign_domid: number, idxs: Array<number | bigint>, gpfns: Array<number | bigint>, domid = D) =>
  ({ op: "XENMEM_add_to_physmap_batch", domid, space, size: idxs.length, foreign_domid, idxs, gpfns }) as HypercallRequest;

describe("XENMEM_add_to_physmap checks (FS 8.3, 8.4)", () => {
  for (const rev of REVISIONS) {
    it(`errno paths at ${rev}`, async () => {
      const { m, call } = await setup(rev);
      expect(call(atp(99, 1, 0, 0x50000)).rc).toBe(-3); // unknown domain
      expect(call(atp(D, 1, 0, 0xffffffffffffffffn)).rc).toBe(-22); // INVALID_GFN
      expect(call(atp(D, 99, 0, 0x50000)).rc).toBe(-38); // undefined space
      expect(call(atp(D, 2, 0, 0x50000)).rc).toBe(-38); // gmfn
      expect(call(atp(D, 4, 0, 0x50000)).rc).toBe(-38); // gmfn_foreign only via batch
      expect(call(atp(D, 3, 0, 0x50000, { size: 1 } as never)).rc).toBe(-38); // gmfn_range -> gmfn
      expect(call(atp(D, 3, 0, 0x50000, { size: 0 } as never)).rc).toBe(0);
      expect(call(atp(D, 3, 0, 0x50000, { size: 1, startExtent: 2 } as never)).rc).toBe(-84); // size < start
      expect(call(atp(D, 1, 0, 0x50000, { startExtent: 0x10000 } as never)).rc).toBe(-33); // EDOM
      expect(call(atp(D, 0, 1, 0x50000)).rc).toBe(-22); // shared_info idx != 0
      expect(call(atp(D, 1, 64, 0x50000)).rc).toBe(-22); // idx = max_grant_frames
      expect(call(atp(D, 1, 10000, 0x50000)).rc).toBe(-22);
      expect(m.domain(D)!.grant!.nrGrantFrames).toBe(1); // no growth
      expect(call(atp(D, 1, 0x80000000, 0x50000)).rc).toBe(-22); // status index at v1
      expect(call(atp(D, 1, 4, 0x50004)).rc).toBe(0);
      expect(m.domain(D)!.grant!.nrGrantFrames).toBe(5); // growth is a side effect of the lookup
      expect(call(atp(DOMID_SELF, 1, 2, 0x50002)).rc).toBe(0);
      // permission: U on D -> -EPERM (XSM target); D (privileged) on U -> ok
      expect(call(atp(D, 1, 1, 0x50010), U).rc).toBe(-1);
      expect(call(atp(U, 1, 1, 0x50010), D).rc).toBe(0);
      // dev_mmio: only the hardware domain on itself
      expect(call(atp(D, 5, 0x9000, 0x9000)).rc).toBe(-13);
      // a GFN beyond the root reach (48-bit: 2^36) -> -EINVAL; frame already mapped -> -EBUSY at GFN+
      expect(call(atp(D, 1, 3, 1n << 36n)).rc).toBe(-22);
      expect(call(atp(D, 1, 4, 0x50005)).rc).toBe(rev === "pre" || rev === "harden" ? 0 : -16);
    });
  }

  it("dev_mmio without iomem permission returns 0 and maps nothing; with permission maps mmio_direct_c", async () => {
    const m = await createMachine({ revision: "head", ramFrames: 0x20000 });
    m.createDomain({ domid: 0, privileged: true, hardware: true, ramPages: 4, iomem: [[0x9010, 0x9011]] });
    expect(m.hypercall(atp(0, 5, 0x9000, 0x9000), { caller: 0 }).rc).toBe(0);
    expect(m.p2mEntry(0, 0x9000).type).toBe(0);
    expect(m.hypercall(atp(0, 5, 0x9010, 0x9010), { caller: 0 }).rc).toBe(0);
    expect(m.p2mEntry(0, 0x9010)).toMatchObject({ mfn: 0x9010n, type: 5 });
    // dev_mmio is not any-RAM: remove_from_physmap cannot remove it
    expect(m.hypercall({ op: "XENMEM_remove_from_physmap", domid: 0, gpfn: 0x9010 }, { caller: 0 }).rc).toBe(-2);
  });

  it("arm32 truncates idx/gpfn to 32 bits (INVALID_GFN 0xFFFFFFFF)", async () => {
    const { call, m } = await setup("gfn", "arm32");
    expect(call(atp(D, 1, 0, 0xffffffffn)).rc).toBe(-22);
    expect(call(atp(D, 1, 0, 0x1ffffffffn)).rc).toBe(-22); // truncates to INVALID_GFN
    expect(call(atp(D, 1, 0, 0x100050000n)).rc).toBe(0); // truncates to 0x50000
    expect(m.p2mEntry(D, 0x50000).type).toBe(1);
  });
});

describe("XENMEM_add_to_physmap_batch (FS 8.3, 8.4)", () => {
  for (const rev of REVISIONS) {
    it(`special foreign ids and per-entry errs at ${rev}`, async () => {
      const { m, call } = await setup(rev);
      const head = rev === "head";
      const e = (fd: number, idx: number | bigint = 0x40000) => (call(batch(4, fd, [idx], [0x60000])).errs as number[])[0];
      expect(e(D)).toBe(head ? -1 : -3); // own id
      expect(e(DOMID_SELF)).toBe(head ? -3 : -22);
      expect(e(77)).toBe(-3);
      expect(e(DOMID_IO, 1)).toBe(head ? -3 : -22);
      expect(e(DOMID_XEN, 0x40000)).toBe(-22); // dom_xen owns no page there
      expect(e(F)).toBe(0);
      expect(m.p2mEntry(D, 0x60000).type).toBe(6); // map_foreign_rw
      expect(e(F, 0x12345)).toBe(-22); // hole in F
      // unprivileged caller: XSM map_gmfn_foreign -> -EPERM
      expect((call(batch(4, F, [0x40001], [0x60001], U), U).errs as number[])[0]).toBe(-1);
      expect(call({ ...batch(3, 0, [0], [0x60002]) }).rc).toBe(-95); // gmfn_range
      expect(call({ ...batch(5, 1, [0x9000], [0x9000]) }).rc).toBe(-13); // dev_mmio not hwdom (permission first)
      expect(call({ ...batch(1, 0, [0], [0xffffffffffffffffn]) }).rc).toBe(-22); // INVALID_GFN aborts
      expect(call({ ...batch(1, 0, [], []), size: 0 } as HypercallRequest).rc).toBe(0);
      expect(call({ ...batch(1, 0, [0], [0x50000]), startExtent: 2 } as HypercallRequest).rc).toBe(-84);
      expect(call({ ...batch(1, 0, [0], [0x50000]), startExtent: 1 } as HypercallRequest).rc).toBe(-84);
      expect(call({ ...batch(1, 0, [0], [0x50000]), startExtent: 0x10000 } as HypercallRequest).rc).toBe(-33);
      // grant frames {6, 10000, 0} with frame 0 mapped elsewhere (confirmed on real Xen)
      expect(call(atp(D, 1, 0, 0x70000)).rc).toBe(0);
      const r = call(batch(1, 0, [6, 10000, 0], [0x70006, 0x70007, 0x70008]));
      expect(r.rc).toBe(0);
      expect(r.errs).toEqual(rev === "pre" || rev === "harden" ? [0, -22, 0] : [0, -22, -16]);
    });
  }

  it("foreign mapping holds a page reference, dropped on removal", async () => {
    const { m, call } = await setup("gfn");
    const fm = m.p2mEntry(F, 0x40003).mfn;
    const before = m.core.count_info(fm);
    expect((call(batch(4, F, [0x40003], [0x60000])).errs as number[])[0]).toBe(0);
    expect(m.core.count_info(fm)).toBe(before + 1n);
    expect(call({ op: "XENMEM_remove_from_physmap", domid: D, gpfn: 0x60000 }).rc).toBe(0);
    expect(m.core.count_info(fm)).toBe(before);
  });
});

describe("XENMEM_remove_from_physmap / reservations / stats", () => {
  for (const rev of REVISIONS) {
    it(`checks at ${rev}`, async () => {
      const { m, call } = await setup(rev);
      const rm = (gpfn: bigint | number, extra = {}) => call({ op: "XENMEM_remove_from_physmap", domid: D, gpfn, ...extra } as HypercallRequest).rc;
      expect(rm(0x40000, { startExtent: 1 })).toBe(-22);
      expect(call({ op: "XENMEM_remove_from_physmap", domid: 99, gpfn: 0 }).rc).toBe(-3);
      expect(call({ op: "XENMEM_remove_from_physmap", domid: D, gpfn: 0x40000 }, U).rc).toBe(-1);
      expect(rm(0x12345)).toBe(-2); // hole
      expect(rm(1n << 52n)).toBe(-2); // beyond reach
      expect(call(atp(D, 0, 0, 0x50000)).rc).toBe(0);
      expect(rm(0x50000)).toBe(0); // own shared_info
      expect(rm(0x50000)).toBe(-2);
      expect(rm(0x40001)).toBe(0); // own RAM
      // reservations return extents done
      const pop = (extent_start: Array<number | bigint>, extra = {}) =>
        call({ op: "XENMEM_populate_physmap", domid: D, extent_start, ...extra } as HypercallRequest).rc;
      expect(pop([0x58000, 0x58001])).toBe(2);
      expect(m.p2mEntry(D, 0x58001).type).toBe(1);
      expect(pop([0x58002], { extent_order: 30 })).toBe(0);
      expect(pop([0x58002], { nr_extents: 0 })).toBe(0);
      expect(pop([0x58002], { nr_extents: 1, startExtent: 1 })).toBe(1);
      expect(call({ op: "XENMEM_populate_physmap", domid: 99, extent_start: [0x58003] }).rc).toBe(0);
      expect(pop([0x58003], { mem_flags: 1 << 16 })).toBe(0); // PoD fails on Arm
      const dec = (extent_start: Array<number | bigint>) => call({ op: "XENMEM_decrease_reservation", domid: D, extent_start }).rc;
      expect(dec([0x12345])).toBe(0); // hole
      const tot = call({ op: "XENMEM_current_reservation", domid: D }).rc;
      expect(dec([0x58000])).toBe(1);
      expect(call({ op: "XENMEM_current_reservation", domid: D }).rc).toBe(Number(tot) - 1);
      expect(call({ op: "XENMEM_maximum_reservation", domid: D }).rc).toBe(8 + 1024);
      expect(call({ op: "XENMEM_current_reservation", domid: D, startExtent: 1 }).rc).toBe(-22);
      expect(call({ op: "XENMEM_current_reservation", domid: 99 }).rc).toBe(-3);
      expect(call({ op: "XENMEM_current_reservation", domid: D }, U).rc).toBe(-1);
      expect(call({ op: "XENMEM_maximum_gpfn", domid: D }).rc).toBe(0x58001);
      const inc = call({ op: "XENMEM_increase_reservation", domid: D, extent_start: [], nr_extents: 3 }).rc;
      expect(inc).toBe(3);
      expect(call({ op: "XENVER_version" }).rc).toBe(rev === "head" ? (4 << 16) | 23 : (4 << 16) | 17);
    });
  }

  it("direct-mapped populate/decrease keep the page (FS 8.6)", async () => {
    const m = await createMachine({ revision: "gfn", ramFrames: 0x20000 });
    m.createDomain({ domid: 0, privileged: true, hardware: true, directMapped: true, ramPages: 16 });
    const runs = m.p2mRuns(0);
    const g = runs[0].gfn + 3n;
    const c = (req: HypercallRequest) => m.hypercall(req, { caller: 0 }).rc;
    expect(c({ op: "XENMEM_decrease_reservation", domid: 0, extent_start: [g] })).toBe(1);
    expect(m.p2mEntry(0, g).type).toBe(0);
    expect(c({ op: "XENMEM_decrease_reservation", domid: 0, extent_start: [g] })).toBe(0);
    expect(c({ op: "XENMEM_populate_physmap", domid: 0, extent_start: [g] })).toBe(1);
    expect(m.p2mEntry(0, g)).toMatchObject({ mfn: g, type: 1 });
    expect(c({ op: "XENMEM_populate_physmap", domid: 0, extent_start: [0x12345] })).toBe(0); // not owned
  });
});

describe("XENMEM_acquire_resource (FS 7.6, 8.3)", () => {
  for (const rev of REVISIONS) {
    it(`order of checks at ${rev}`, async () => {
      const { m, call } = await setup(rev);
      const acq = (extra: object, caller = D) =>
        call({ op: "XENMEM_acquire_resource", domid: U, type: 1, id: 0, frame: 0, nr_frames: 0, frame_list: null, ...extra } as HypercallRequest, caller);
      expect(acq({ domid: D }).rc).toBe(-1); // own id
      expect(acq({ domid: DOMID_SELF }).rc).toBe(-3);
      expect(acq({ domid: 99 }).rc).toBe(-3);
      expect(acq({ pad: 1, domid: D }).rc).toBe(-22); // pad wins over the domain error
      expect(acq({ frame: 1n << 32n }).rc).toBe(-22);
      expect(acq({}, F).rc).toBe(-1); // not privileged, not the device model
      expect(acq({})).toEqual({ rc: 0, nr_frames: 64 });
      expect(acq({ id: 1 }).rc).toBe(-22); // status frames: size 0 on Arm
      expect(acq({ type: 2 }).rc).toBe(-22);
      if (rev === "head") expect(acq({ type: 7 }).rc).toBe(-22);
      else {
        expect(acq({ type: 7 })).toEqual({ rc: 0, nr_frames: 4294967201 });
        expect(acq({ type: 7, nr_frames: 1, frame_list: [0x61000] }).rc).toBe(-95);
      }
      expect(acq({ nr_frames: 1 }).rc).toBe(-22); // NULL list with nr_frames
      expect(acq({ nr_frames: 1, frame_list: [0x61000], startExtent: 1 }).rc).toBe(-22);
      // real acquire: frames 0..1 of U's table mapped foreign into D (grows U's table)
      expect(acq({ nr_frames: 2, frame_list: [0x61000, 0x61001] }).rc).toBe(0);
      expect(m.domain(U)!.grant!.nrGrantFrames).toBe(2);
      expect(m.p2mEntry(D, 0x61001)).toMatchObject({ type: 6, mfn: m.domain(U)!.grant!.shared[1] });
    });
  }
});

describe("grant-table sub-ops (FS 7.5)", () => {
  for (const rev of REVISIONS) for (const arch of ["arm64", "arm32"] as Arch[]) {
    it(`setup_table / set_version / get_version / status frames / query_size at ${rev} on ${arch}`, async () => {
      const { call } = await setup(rev, arch);
      const inv = arch === "arm64" ? 0xffffffffffffffffn : 0xffffffffn;
      expect(call({ op: "GNTTABOP_setup_table", dom: D, nr_frames: 1, count: 2 }).rc).toBe(-22);
      expect(call({ op: "GNTTABOP_setup_table", dom: 99, nr_frames: 1 })).toEqual({ rc: 0, status: -2 });
      expect(call({ op: "GNTTABOP_setup_table", dom: D, nr_frames: 1 }, U)).toEqual({ rc: 0, status: -8 });
      expect(call({ op: "GNTTABOP_setup_table", dom: D, nr_frames: 65 })).toEqual({ rc: 0, status: -1 });
      expect(call({ op: "GNTTABOP_setup_table", dom: D, nr_frames: 2 })).toEqual({ rc: 0, status: 0, frame_list: [inv, inv] });
      expect(call({ op: "GNTTABOP_query_size", dom: DOMID_SELF })).toMatchObject({ rc: 0, status: 0, nr_frames: 2, max_nr_frames: 64 });
      expect(call({ op: "GNTTABOP_set_version", version: 2 })).toEqual({ rc: -38, version: 1 });
      expect(call({ op: "GNTTABOP_set_version", version: 3 })).toEqual({ rc: -22, version: 1 });
      expect(call({ op: "GNTTABOP_set_version", version: 1 })).toEqual({ rc: 0, version: 1 });
      expect(call({ op: "GNTTABOP_get_version", dom: 99 }).rc).toBe(-3);
      expect(call({ op: "GNTTABOP_get_version", dom: D })).toEqual({ rc: 0, version: 1 });
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 1 })).toEqual({ rc: 0, status: -1 });
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 0 })).toEqual({ rc: 0, status: 0, frame_list: [] });
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 1, count: 0 }).rc).toBe(-22);
    });
  }

  for (const rev of REVISIONS) {
    it(`v2 status frames on arm64 at ${rev} (gnttab=max-ver:2)`, async () => {
      const { m, call } = await setup(rev, "arm64", { gnttabMaxVersion: 2 });
      expect(call({ op: "GNTTABOP_set_version", version: 2 })).toEqual({ rc: 0, version: 2 });
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 1 })).toEqual({ rc: 0, status: 0, frame_list: [0xffffffffffffffffn] });
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 2 })).toEqual({ rc: 0, status: -1 });
      expect(call(atp(D, 1, 0x80000000, 0x51000)).rc).toBe(0);
      expect(call({ op: "GNTTABOP_get_status_frames", dom: D, nr_frames: 1 })).toEqual({ rc: 0, status: 0, frame_list: [0x51000n] });
      const old = rev === "pre" || rev === "harden";
      expect(call(atp(D, 1, 0x80000000, 0x51001)).rc).toBe(old ? 0 : -16); // move vs EBUSY
      expect(call(atp(D, 1, 0x80000001, 0x51002)).rc).toBe(0); // grows 8 -> 16 grant frames
      expect(m.domain(D)!.grant!.nrGrantFrames).toBe(16);
      expect(m.domain(D)!.grant!.nrStatusFrames).toBe(2);
      expect(call({ op: "GNTTABOP_set_version", version: 1 })).toEqual({ rc: 0, version: 1 });
      expect(m.crashed).toBeNull();
      expect(call({ op: "XENMEM_remove_from_physmap", domid: D, gpfn: old ? 0x51001 : 0x51000 }).rc).toBe(-2);
      expect(m.p2mEntry(D, 0x51002).type).toBe(0);
    });
  }
});
