// XENMEM_add_to_physmap_batch: per-entry errors land in errs[], the call returns 0
// (FS 8.3), including the confirmed example grant frames {6, 10000, 0}.
// Also the fixture copy of that example (fixtures/batch-grant-6-10000-0.json).

import { describe, expect, it } from "vitest";
import { ARCHES, E, REVS, XENMAPSPACE, arrayVsPage, fixture, hx, invalidGfn64, op, preset, r, retarget, runDoc, runOps } from "./helpers.js";

describe.each(ARCHES)("add_to_physmap_batch errs (%s)", (arch) => {
  const p = preset(arch);
  const G = (i: number) => p.gfree(i);

  it.each(REVS)("grant frames {6, 10000, 0} with frame 0 still mapped (FS 8.3 example) (%s)", async (rev) => {
    const inv = invalidGfn64(arch);
    const { results } = await runOps(arch, rev, [
      op.batch(XENMAPSPACE.grant_table, [6, 10000, 0], [G(6), G(10), G(20)]),
      op.query(),
      op.setup(7),
      op.remove(p.g0),
    ]);
    expect(results).toEqual([
      r.errs([0, E.INVAL, arrayVsPage(rev, 0, E.BUSY)]),
      r.query(7, 64),
      r.setup([arrayVsPage(rev, hx(G(20)), hx(p.g0)), inv, inv, inv, inv, inv, hx(G(6))]),
      r.rc(arrayVsPage(rev, E.NOENT, 0)), // pre/harden moved frame 0 away from g0
    ]);
  });

  it.each(REVS)("grant frames {2, 3} → errs {0, 0} (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [op.batch(XENMAPSPACE.grant_table, [2, 3], [G(2), G(3)]), op.setup(4)]);
    expect(results).toEqual([r.errs([0, 0]), r.setup([p.g0, invalidGfn64(arch), G(2), G(3)])]);
  });

  it.each(REVS)("refusals before any errs write, and the INVALID_GFN abort (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      { ...op.batch(XENMAPSPACE.gmfn_range, [1], [G(1)]) },                       // -EOPNOTSUPP
      { ...op.batch(XENMAPSPACE.grant_table, [], []) },                           // size 0 → 0, nothing written
      { ...op.batch(XENMAPSPACE.grant_table, [1], [G(1)], undefined, 42) },       // unknown domain
      { ...op.batch(XENMAPSPACE.grant_table, [1, 2], [G(1), G(2)]), startExtent: 3 }, // size < extent
      { ...op.batch(XENMAPSPACE.grant_table, [1, 2], [G(1), G(2)]), startExtent: 2 }, // size == extent > 0
      { ...op.batch(XENMAPSPACE.grant_table, [1], [G(1)]), startExtent: 0x10000 },  // -EDOM
      op.batch(XENMAPSPACE.grant_table, [1, 2, 3], [G(1), 0xffffffffffffffffn, G(3)]), // aborts at entry 1
      op.query(),
      op.batch(XENMAPSPACE.dev_mmio, [0x9010], [0x9010], 1),                     // u.res0 != 0
      op.batch(XENMAPSPACE.gmfn, [0], [G(5)]),
      op.batch(99, [0], [G(5)]),
    ]);
    expect(results).toEqual([
      r.rc(E.OPNOTSUPP),
      r.rc(0),                   // size 0: nothing read or written
      r.rc(E.SRCH),
      r.rc(E.ILSEQ),
      r.rc(E.ILSEQ),
      r.rc(E.DOM),
      r.errs([0, null, null] as unknown as number[], E.INVAL), // entry 0 written; 1 and 2 untouched (null)
      r.query(2, 64),
      r.rc(E.OPNOTSUPP),
      r.errs([E.NOSYS]),
      r.errs([E.NOSYS]),
    ]);
  });

  it.each(REVS)("mixed spaces: shared_info twice in one batch (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.batch(XENMAPSPACE.shared_info, [0, 1, 0], [G(1), G(2), G(3)]),
      op.remove(G(1)), op.remove(G(3)),
    ]);
    expect(results).toEqual([
      r.errs([arrayVsPage(rev, 0, E.BUSY), E.INVAL, arrayVsPage(rev, 0, E.BUSY)]),
      r.rc(arrayVsPage(rev, 0, E.NOENT)),
      r.rc(arrayVsPage(rev, 0, E.NOENT)),
    ]);
  });
});

describe("fixture batch-grant-6-10000-0.json (runnable with `npx xenmm run`)", () => {
  const { doc, expected } = fixture("batch-grant-6-10000-0.json");
  for (const arch of ARCHES) {
    it.each(REVS)(`${arch} %s`, async (rev) => {
      const { results } = await runDoc(retarget(doc, arch, rev));
      expect(results).toEqual(expected[arch][rev]);
    });
  }
});
