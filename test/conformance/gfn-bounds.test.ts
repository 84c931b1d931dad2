// GFN bounds of the P2M root (FS 5.2, 8.3): on the 44-bit preset (level-0,
// 1-page root) the only bound is the root page: gfn < 2^36. 2^33 (IPA 2^45,
// beyond T0SZ) is accepted and becomes max_mapped_gfn; 2^36 and 2^52 → -EINVAL;
// removals beyond max_mapped_gfn / the root → -ENOENT.

import { describe, expect, it } from "vitest";
import { E, REVS, XENMAPSPACE, fixture, op, preset, r, retarget, runDoc, runOps } from "./helpers.js";

describe("arm64 44-bit P2M: root reach", () => {
  const p = preset("arm64");
  const max0 = Number(p.plan.expect.maximumGpfn);

  it.each(REVS)("grant frame at 2^33 → 0, max_gpfn 2^33, removable, max_gpfn stays (%s)", async (rev) => {
    const { results } = await runOps("arm64", rev, [
      op.grant(1, 1n << 33n),     // a fresh frame (frame 0 is still mapped at boot: -EBUSY at gfn/head)
      op.maxGpfn(),
      op.setup(2),
      op.remove(1n << 33n),
      op.maxGpfn(),
      op.remove(1n << 33n),
    ]);
    expect(results).toEqual([
      r.rc(0), r.rc(2 ** 33), r.setup([p.g0, 1n << 33n]), r.rc(0), r.rc(2 ** 33), r.rc(E.NOENT),
    ]);
  });

  it.each(REVS)("2^36 - 1 is the last reachable gfn; 2^36 and 2^52 → -EINVAL (%s)", async (rev) => {
    const { results } = await runOps("arm64", rev, [
      op.grant(1, (1n << 36n) - 1n),
      op.grant(2, 1n << 36n),
      op.grant(3, 1n << 52n),
      op.atp(XENMAPSPACE.dev_mmio, 0x9010, 1n << 36n),
      op.maxGpfn(),
    ]);
    expect(results).toEqual([
      r.rc(0), r.rc(E.INVAL), r.rc(E.INVAL), r.rc(E.INVAL), r.rc(2 ** 36 - 1),
    ]);
  });

  it.each(REVS)("removals beyond max_mapped_gfn or the root → -ENOENT; MMIO cannot be removed (%s)", async (rev) => {
    const { results } = await runOps("arm64", rev, [
      op.remove(1n << 40n), op.remove(1n << 52n), op.remove(BigInt(max0) + 1n),
      op.remove(0x9010),          // mmio_direct_c: no page
      op.remove(0x8000000),       // 1G mmio block
      op.remove(p.gfree(1)),      // hole inside the range
      op.maxGpfn(),
    ]);
    expect(results).toEqual([
      r.rc(E.NOENT), r.rc(E.NOENT), r.rc(E.NOENT), r.rc(E.NOENT), r.rc(E.NOENT), r.rc(E.NOENT), r.rc(max0),
    ]);
  });
});

describe("fixture gfn-bounds-arm64.json (runnable with `npx xenmm run`)", () => {
  const { doc, expected } = fixture("gfn-bounds-arm64.json");
  it.each(REVS)("arm64 %s", async (rev) => {
    const { results } = await runDoc(retarget(doc, "arm64", rev));
    expect(results).toEqual(expected.arm64[rev]);
  });
});
