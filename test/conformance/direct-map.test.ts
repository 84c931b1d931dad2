// Direct-mapped dom0: populate_physmap and decrease_reservation (FS 8.6, 8.3).
// Holes → 0 extents; own page → 1, same MFN, contents untouched; decrease keeps
// the allocation reference (tot_pages unchanged); a second decrease → 0.

import { describe, expect, it } from "vitest";
import { buildPreset } from "../../src/presets/index.js";
import { ARCHES, DOMID_SELF, REVS, op, preset, r, runOps } from "./helpers.js";

describe.each(ARCHES)("direct-mapped populate / decrease (%s)", (arch) => {
  const p = preset(arch);
  const R = p.ramStart + 0x1234n;             // a RAM page of dom0 (4K leaf after the split)
  const R2 = p.ramStart + 0x400n;             // inside a 2M block
  const tot = p.plan.dom0.totPages;

  it.each(REVS)("hole → 0; own page → 1; decrease → 1 then 0; populate puts it back (%s)", async (rev) => {
    const { results, run } = await runOps(arch, rev, [
      op.populate([p.gfree(1)]),               // 0: host RAM not owned by dom0 (get_page fails)
      op.populate([0x8000]),                   // 1: no RAM behind it (not mfn_valid)
      op.populate([R]),                        // 2: still mapped: "populated" again
      op.decrease([R]),                        // 3
      op.curRes(),                             // 4: allocation reference kept
      op.decrease([R]),                        // 5: hole now
      op.remove(R),                            // 6
      op.populate([R]),                        // 7
      op.decrease([R2, R2 + 1n, p.gfree(1), R2 + 2n]), // 8: stops at the hole
      op.curRes(),                             // 9
      op.populate([R2, R2 + 1n]),              // 10
      op.decrease([p.si]),                     // 11: shared_info (xenheap page owned by dom0) at its gfn
      op.curRes(),                             // 12
    ]);
    expect(results).toEqual([
      r.rc(0), r.rc(0), r.rc(1), r.rc(1), r.rc(tot), r.rc(0), r.rc(-2), r.rc(1),
      r.rc(2), r.rc(tot), r.rc(2),
      r.rc(1), r.rc(tot),
    ]);
    const d0 = (run.final as any).domains["0"];
    expect(d0.tot_pages).toBe(tot);
  });

  it.each(REVS)("increase_reservation at max_pages → 0; order limits; start extent rules (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      { op: "XENMEM_increase_reservation", domid: DOMID_SELF, extent_start: [], nr_extents: 1, extent_order: 0 },
      op.populate([R], 30),                                                   // order above max_order → 0, nothing done
      { op: "XENMEM_populate_physmap", domid: DOMID_SELF, extent_start: [R], nr_extents: 0 },
      { op: "XENMEM_populate_physmap", domid: DOMID_SELF, extent_start: [R], nr_extents: 1, startExtent: 1 },
      { op: "XENMEM_populate_physmap", domid: 42, extent_start: [R], nr_extents: 1 },
      op.populate([p.ramStart + 0x200n], 9),                                 // a whole 2M block of dom0 RAM
      op.decrease([p.ramStart + 0x200n], 9),
      op.decrease([p.ramStart + 0x200n], 9),
      op.populate([p.ramStart + 0x200n], 9),
      op.curRes(),
      { op: "XENMEM_current_reservation", domid: DOMID_SELF, startExtent: 1 },
      { op: "XENMEM_maximum_gpfn", domid: 42 },
    ]);
    expect(results).toEqual([
      r.rc(0), r.rc(0), r.rc(0), r.rc(1), r.rc(0),
      r.rc(1), r.rc(1), r.rc(0), r.rc(1),
      r.rc(tot), r.rc(-22), r.rc(-3),
    ]);
  });
});

describe.each(ARCHES)("contents survive decrease + populate (%s)", (arch) => {
  it.each(REVS)("bytes written into the page are still there (%s)", async (rev) => {
    const m = await buildPreset("qemu-virt-dom0", { arch, revision: rev });
    const p = preset(arch, rev);
    const R = p.ramStart + 0x1234n;
    const core = m.core;
    const pattern = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
    new Uint8Array(core.memory.buffer, core.backing_get(R), 4096).set(pattern);
    const call = (req: any) => m.hypercall(req, { caller: 0 });
    expect(call(op.decrease([R]) as any).rc).toBe(1);
    expect(m.p2mEntry(0, R).mfn).toBe(m.INVALID);
    expect(m.pageInfo(R).owner).toBe(0);                 // still dom0's
    expect(call(op.decrease([R]) as any).rc).toBe(0);
    expect(call(op.populate([R]) as any).rc).toBe(1);
    const e = m.p2mEntry(0, R);
    expect(e.mfn).toBe(R);
    expect(e.type).toBe(1);
    const at = core.backing_lookup(R);
    expect(at).not.toBe(0);
    expect(Buffer.from(new Uint8Array(core.memory.buffer, at, 4096)).equals(Buffer.from(pattern))).toBe(true);
    expect(Number(core.domain_tot_pages(m.domain(0)!.slot))).toBe(p.plan.dom0.totPages);
  });
});

describe.each(ARCHES)("direct-mapped populate of dom0's Xen heap pages (%s)", (arch) => {
  // FS 8.6: "Xen-heap pages owned by d (grant frames, shared_info) pass the same ownership test".
  it.each(REVS)("populate at the shared_info MFN → 1, mapped 1:1 as ram_rw (%s)", async (rev) => {
    const m = await buildPreset("qemu-virt-dom0", { arch, revision: rev });
    const si = m.domain(0)!.sharedInfo;
    const call = (req: any) => m.hypercall(req, { caller: 0 });
    expect(call(op.populate([si]) as any).rc).toBe(1);
    expect(m.p2mEntry(0, si)).toMatchObject({ mfn: si, type: 1 });
    expect(m.p2mEntry(0, preset(arch).si)).toMatchObject({ mfn: si, type: 1 }); // the kernel's mapping stays
    // A Xen heap page nobody owns (the P2M root is domheap; use an unowned free page: host RAM below the bank).
    expect(call(op.populate([preset(arch).ramStart - 1n]) as any).rc).toBe(0);
  });
});

describe.each(ARCHES)("decrease_reservation on what is not dom0's RAM (%s)", (arch) => {
  const p = preset(arch);
  it.each(REVS)("MMIO, a foreign page, grant frame 0 (%s)", async (rev) => {
    const F = p.gfree(9);
    const { results } = await runOps(arch, rev, [
      op.decrease([0x9010]),                                    // mmio: MFN not valid → 0 done
      op.batch(4, [0x1000], [F], 1),
      op.decrease([F]),                                         // foreign page: get_page(page, dom0) fails → 0 done
      op.remove(F),
      op.decrease([p.g0]),                                      // grant frame 0: owned by dom0 → 1
      op.setup(1),
      op.decrease([p.g0]),
      op.grant(0, p.g0),                                        // mapped nowhere now → 0 everywhere
    ], undefined, [{ domid: 1, ramPages: 4, ramBaseGfn: 0x1000 }]);
    expect(results).toEqual([
      r.rc(0), r.errs([0]), r.rc(0), r.rc(0), r.rc(1),
      r.setup([rev === "pre" || rev === "harden" ? "0x" + p.g0.toString(16) : (arch === "arm64" ? "0xffffffffffffffff" : "0xffffffff")]),
      r.rc(0), r.rc(0),
    ]);
  });
});

describe.each(ARCHES)("memory_op argument checks (FS 8.1, 8.3) (%s)", (arch) => {
  const p = preset(arch);
  const R = p.ramStart + 0x2000n;
  it.each(REVS)("start extents, PoD, extent count, increase on a domU (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      { ...op.remove(p.gfree(1)), startExtent: 1 },
      { ...op.maxGpfn(), startExtent: 2 },
      { op: "XENMEM_populate_physmap", domid: 0x7ff0, extent_start: [R], extent_order: 0, mem_flags: 1 << 16 },
      { op: "XENMEM_populate_physmap", domid: 0x7ff0, extent_start: [R], nr_extents: 1 << 26 },
      { op: "XENMEM_decrease_reservation", domid: 0x7ff0, extent_start: [R, R + 1n], nr_extents: 2, startExtent: 1 },
      op.decrease([R]),
      { op: "XENMEM_increase_reservation", domid: 1, extent_start: [], nr_extents: 2, extent_order: 0 },
      op.curRes(1),
      { op: "XENMEM_increase_reservation", domid: 1, extent_start: [], nr_extents: 1, extent_order: 19 },
    ], undefined, [{ domid: 1, ramPages: 4, ramBaseGfn: 0x1000 }]);
    expect(results).toEqual([
      r.rc(-22), r.rc(-22),
      r.rc(0),              // PoD fails on Arm
      r.rc(0),              // nr_extents > 2^26 - 1: returns the start extent
      r.rc(2),              // resumes at extent 1: one more done → 2
      r.rc(1),              // R itself was skipped by the resumed call: still mapped
      r.rc(2),              // increase on a translated domU: allocated, not mapped
      r.rc(4 + 2),
      r.rc(0),              // order 19 > max_order: nothing
    ]);
  });
});
