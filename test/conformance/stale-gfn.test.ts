// The stale-GFN bug in both its faces (FS 9.1/9.2/9.3 and 9.5, 7.2), from the
// booted dom0. PRE destroys the unrelated mapping, HARDEN refuses with -EILSEQ
// and wedges, GFN/HEAD are fixed. 9.5: a failed insert poisons the record.

import { describe, expect, it } from "vitest";
import { ARCHES, DOMID_SELF, E, REVS, XENMAPSPACE, byRev, arrayVsPage, fixture, hx, invalidGfn64, op, preset, r, retarget, runDoc, runOps } from "./helpers.js";

describe.each(ARCHES)("stale GFN, first face: the recorded GFN is reused (%s)", (arch) => {
  const p = preset(arch);
  const G1 = p.ramStart + 0x10000n; // one of dom0's own RAM pages (FS 9.1 "RAM variant")
  const G2 = p.gfree(2);

  it.each(REVS)("RAM variant: map frame at G1, unmap, repopulate G1, map frame at G2 (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.remove(p.g0),          // 0: the kernel's mapping of frame 0 goes away
      op.grant(0, G1),          // 1: frame 0 over dom0's RAM page G1
      op.remove(G1),            // 2
      op.populate([G1]),        // 3: direct-mapped: the RAM page comes back at G1
      op.grant(0, G2),          // 4: PRE removes P2M[G1]; HARDEN -EILSEQ
      op.setup(1),              // 5
      op.grant(0, G2),          // 6: again
      op.decrease([G1]),        // 7: is G1 still mapped?
      op.curRes(),              // 8
    ]);
    expect(results).toEqual([
      r.rc(0),
      r.rc(0),
      r.rc(0),
      r.rc(1),
      r.rc(byRev(rev, { pre: 0, harden: E.ILSEQ, gfn: 0, head: 0 })),
      r.setup([byRev(rev, { pre: G2, harden: G1, gfn: G2, head: G2 })]),
      r.rc(byRev(rev, { pre: 0, harden: E.ILSEQ, gfn: E.BUSY, head: E.BUSY })),
      r.rc(byRev(rev, { pre: 0, harden: 1, gfn: 1, head: 1 })),
      r.rc(p.plan.dom0.totPages),
    ]);
  });

  it.each(REVS)("foreign variant: a domU page mapped at the stale GFN (%s)", async (rev) => {
    const G1f = p.gfree(1);
    const { results, run } = await runOps(arch, rev, [
      op.remove(p.g0),
      op.grant(0, G1f),
      op.remove(G1f),
      op.batch(XENMAPSPACE.gmfn_foreign, [0x1000], [G1f], 1),
      op.grant(0, G2),          // PRE: silently unmaps the foreign page at G1f and drops its reference
      op.setup(1),
      op.remove(G1f),
      op.remove(G1f),
    ], undefined, [{ domid: 1, ramPages: 4, ramBaseGfn: 0x1000 }]);
    expect(results).toEqual([
      r.rc(0), r.rc(0), r.rc(0),
      r.errs([0]),
      r.rc(byRev(rev, { pre: 0, harden: E.ILSEQ, gfn: 0, head: 0 })),
      r.setup([byRev(rev, { pre: G2, harden: G1f, gfn: G2, head: G2 })]),
      r.rc(byRev(rev, { pre: E.NOENT, harden: 0, gfn: 0, head: 0 })),
      r.rc(E.NOENT),
    ]);
    expect(run.crash).toBeNull();
  });

  it.each(REVS)("MMIO at the stale GFN: not checked by HARDEN, so PRE and HARDEN both remove it (%s)", async (rev) => {
    const G1m = p.gfree(1);
    const { results, run } = await runOps(arch, rev, [
      op.remove(p.g0), op.grant(0, G1m), op.remove(G1m),
      op.atp(XENMAPSPACE.dev_mmio, 0x9010, G1m),   // the RTC page now sits at G1m
      op.grant(0, G2), op.setup(1),
    ]);
    expect(results).toEqual([r.rc(0), r.rc(0), r.rc(0), r.rc(0), r.rc(0), r.setup([G2])]);
    const runs = (run.final as any).domains["0"].p2m as Array<{ gfn: string; mfn: string; type: string }>;
    const at = runs.find((x) => x.gfn === hx(G1m));
    if (rev === "pre" || rev === "harden") expect(at).toBeUndefined();
    else expect(at).toMatchObject({ mfn: "0x9010", type: "mmio_direct_c" });
  });

  it.each(REVS)("recorded GFN now a hole: the remap succeeds everywhere (%s)", async (rev) => {
    const G1h = p.gfree(1);
    const { results } = await runOps(arch, rev, [
      op.remove(p.g0), op.grant(0, G1h), op.remove(G1h), op.grant(0, G2), op.setup(1), op.grant(0, G2),
    ]);
    expect(results).toEqual([
      r.rc(0), r.rc(0), r.rc(0), r.rc(0), r.setup([G2]),
      r.rc(arrayVsPage(rev, 0, E.BUSY)), // pre/harden: recorded == target
    ]);
  });
});

describe.each(ARCHES)("stale GFN, second face: a failed insert poisons the record (FS 9.5) (%s)", (arch) => {
  const p = preset(arch);
  const G1 = p.gfree(1);
  // Beyond the root's reach (FS 5.2): arm64 44-bit level-0 root → gfn < 2^36; arm32 → gfn < 2^28
  // (2^52 would be truncated to 0 on arm32, see arm32-truncation.test.ts).
  const far = arch === "arm64" ? 1n << 52n : 1n << 28n;
  const far2 = arch === "arm64" ? 1n << 36n : 0x80000000n;

  it.each(REVS)("frame 0 (mapped at boot) sent beyond the root (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.grant(0, far),   // 0
      op.setup(1),        // 1
      op.grant(0, G1),    // 2
      op.remove(p.g0),    // 3: PRE/HARDEN already removed it in step 0
      op.grant(0, G1),    // 4
      op.setup(1),        // 5
      op.maxGpfn(),       // 6: max_mapped_gfn untouched by the failures
    ]);
    expect(results).toEqual([
      r.rc(arrayVsPage(rev, E.INVAL, E.BUSY)),
      r.setup([arrayVsPage(rev, far, p.g0)]),
      r.rc(arrayVsPage(rev, E.INVAL, E.BUSY)),
      r.rc(arrayVsPage(rev, E.NOENT, 0)),
      r.rc(arrayVsPage(rev, E.INVAL, 0)),
      r.setup([arrayVsPage(rev, far, G1)]),
      r.rc(Number(p.plan.expect.maximumGpfn)),
    ]);
  });

  it.each(REVS)("a fresh frame sent beyond the root (%s)", async (rev) => {
    const inv = invalidGfn64(arch);
    const { results } = await runOps(arch, rev, [
      op.grant(3, far), op.query(), op.setup(4), op.grant(3, far2), op.grant(3, G1), op.setup(4),
    ]);
    expect(results).toEqual([
      r.rc(E.INVAL),
      r.query(4, 64),
      r.setup([hx(p.g0), inv, inv, arrayVsPage(rev, hx(far), inv)]),
      r.rc(E.INVAL),
      r.rc(arrayVsPage(rev, E.INVAL, 0)),
      r.setup([hx(p.g0), inv, inv, arrayVsPage(rev, hx(far), hx(G1))]),
    ]);
  });

  it.each(REVS)("the wedged record survives remove_from_physmap of the target (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [op.grant(0, far), op.remove(far), op.grant(0, p.g0)]);
    expect(results).toEqual([
      r.rc(arrayVsPage(rev, E.INVAL, E.BUSY)),
      r.rc(E.NOENT),                          // beyond max_mapped_gfn / the root: -ENOENT
      r.rc(arrayVsPage(rev, E.INVAL, E.BUSY)),
    ]);
    void DOMID_SELF;
  });
});

describe("fixture stale-gfn-ram-variant.json (runnable with `npx xenmm run`)", () => {
  const { doc, expected } = fixture("stale-gfn-ram-variant.json");
  it.each(REVS)("arm64 %s", async (rev) => {
    const { results } = await runDoc(retarget(doc, "arm64", rev));
    expect(results).toEqual(expected.arm64[rev]);
  });
});
