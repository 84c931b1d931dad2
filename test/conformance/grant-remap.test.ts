// Grant-frame and shared_info remapping from the booted dom0 (FS 7.2, 7.4, 8.4, 9.1/9.3
// "frame still mapped" variants). Frame 0 and shared_info are mapped by the
// kernel at boot (preset), so this is what a real dom0 sees.

import { describe, expect, it } from "vitest";
import { ARCHES, E, REVS, XENMAPSPACE, arrayVsPage, hx, invalidGfn64, op, preset, r, runOps } from "./helpers.js";

describe.each(ARCHES)("grant remapping (%s)", (arch) => {
  const p = preset(arch);
  const G1 = p.gfree(1), G2 = p.gfree(2);

  it.each(REVS)("remap frame 0 while still mapped: moved at pre/harden, -EBUSY at gfn/head (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.grant(0, G1),          // frame 0 is mapped at g0 by the kernel
      op.setup(1),
      op.remove(p.g0),          // pre/harden: g0 was already removed by the move
      op.remove(G1),
      op.grant(0, p.g0),        // back to the boot gfn
      op.setup(1),
    ]);
    expect(results).toEqual([
      r.rc(arrayVsPage(rev, 0, E.BUSY)),
      r.setup([arrayVsPage(rev, G1, p.g0)]),
      r.rc(arrayVsPage(rev, E.NOENT, 0)),
      r.rc(arrayVsPage(rev, 0, E.NOENT)),
      r.rc(0),
      r.setup([p.g0]),
    ]);
  });

  it.each(REVS)("remap frame 0 to the gfn it already occupies (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [op.grant(0, p.g0), op.setup(1), op.remove(p.g0), op.remove(p.g0)]);
    expect(results).toEqual([
      r.rc(arrayVsPage(rev, 0, E.BUSY)), // pre/harden: recorded gfn == target → nothing removed, re-inserted
      r.setup([p.g0]),
      r.rc(0),
      r.rc(E.NOENT),
    ]);
  });

  it.each(REVS)("unmap then map elsewhere works everywhere; setup_table follows (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.remove(p.g0), op.setup(1), op.grant(0, G2), op.setup(1), op.remove(G2), op.remove(G2),
    ]);
    expect(results).toEqual([
      r.rc(0),
      // pre/harden keep the stale array value; gfn/head read INVALID_GFN from the page.
      r.setup([arrayVsPage(rev, hx(p.g0), invalidGfn64(arch))]),
      r.rc(0),
      r.setup([G2]),
      r.rc(0),
      r.rc(E.NOENT),
    ]);
  });

  it.each(REVS)("growing frames by mapping: frame 1, frame 64 (= max) and 10000 (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.grant(1, G1), op.query(), op.setup(2),
      op.grant(64, G2), op.grant(10000, G2), op.query(),
      op.setup(65), op.setup(64), op.query(),
    ]);
    const inv = invalidGfn64(arch);
    expect(results).toEqual([
      r.rc(0), r.query(2, 64), r.setup([p.g0, G1]),
      r.rc(E.INVAL), r.rc(E.INVAL), r.query(2, 64),            // no growth beyond max
      r.setupErr(-1),                                            // nr > max: general_error, list untouched
      r.setup([hx(p.g0), hx(G1), ...Array(62).fill(inv)]),       // grows to 64
      r.query(64, 64),
    ]);
  });

  it.each(REVS)("a failed mapping still grows the table (frame 4 while the target is refused) (%s)", async (rev) => {
    // Frame 4 to an unreachable gfn: -EINVAL, the table still grew to 5 (FS 7.4).
    const far = arch === "arm64" ? 1n << 36n : 1n << 28n;
    const { results } = await runOps(arch, rev, [op.grant(4, far), op.query()]);
    expect(results).toEqual([r.rc(E.INVAL), r.query(5, 64)]);
  });

  it.each(REVS)("shared_info mapped a second time: both mapped at pre/harden, -EBUSY at gfn/head (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.atp(XENMAPSPACE.shared_info, 0, G1),
      op.atp(XENMAPSPACE.shared_info, 1, G2),   // idx != 0
      op.remove(G1),
      op.remove(p.si),
      op.atp(XENMAPSPACE.shared_info, 0, G2),
    ]);
    expect(results).toEqual([
      r.rc(arrayVsPage(rev, 0, E.BUSY)),
      r.rc(E.INVAL),
      r.rc(arrayVsPage(rev, 0, E.NOENT)),
      r.rc(0),
      // gfn/head: the page is mapped nowhere now → 0. pre/harden: no tracking → 0.
      r.rc(0),
    ]);
  });

  it.each(REVS)("spaces Arm does not handle: gmfn → -ENOSYS, gmfn_range → -ENOSYS, 99 → -ENOSYS, foreign via add_to_physmap → -ENOSYS (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.atp(XENMAPSPACE.gmfn, 0, G1),
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: XENMAPSPACE.gmfn_range, idx: 0, gpfn: G1, size: 1 },
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: XENMAPSPACE.gmfn_range, idx: 0, gpfn: G1, size: 0 },
      op.atp(99, 0, G1),
      op.atp(XENMAPSPACE.gmfn_foreign, 0, G1),
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: XENMAPSPACE.grant_table, idx: 0, gpfn: G1, startExtent: 0x10000 },
      op.atp(XENMAPSPACE.grant_table, 0, 0xffffffffffffffffn),
      op.atp(XENMAPSPACE.grant_table, 0, G1, 42),
    ]);
    expect(results).toEqual([
      r.rc(E.NOSYS), r.rc(E.NOSYS), r.rc(0), r.rc(E.NOSYS), r.rc(E.NOSYS),
      r.rc(E.DOM),
      r.rc(E.INVAL), // gpfn == INVALID_GFN (arm32: truncated to 0xFFFFFFFF, also INVALID)
      r.rc(E.SRCH),
    ]);
  });

  it.each(REVS)("grant idx >= 2^32 (FS 11.4): truncated to unsigned int from GFN on and on arm32; rejected at PRE/HARDEN arm64 (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [op.grant(0x100000001n, G1), op.query(), op.setup(2)]);
    // PRE/HARDEN arm64 would index shared_gfn[] with the untruncated idx (memory corruption in Xen);
    // the emulator rejects it with -EINVAL and no growth, as FS 11.4 recommends.
    const rejected = arch === "arm64" && (rev === "pre" || rev === "harden");
    expect(results).toEqual(rejected
      ? [r.rc(E.INVAL), r.query(1, 64), r.setup([hx(p.g0), invalidGfn64(arch)])]
      : [r.rc(0), r.query(2, 64), r.setup([p.g0, G1])]);
  });
  it.each(REVS)("gmfn_range resumed at its end maps nothing: start extent == size gives 0 (FS 8.1, %s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: 3, idx: 0, gpfn: 0x40300, size: 2, startExtent: 2 },
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: 3, idx: 0, gpfn: 0x40300, size: 2, startExtent: 1 },
      { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: 3, idx: 0, gpfn: 0x40300, size: 2, startExtent: 3 },
    ]);
    expect(results).toEqual([r.rc(0), r.rc(E.NOSYS), r.rc(E.ILSEQ)]);
  });
});
