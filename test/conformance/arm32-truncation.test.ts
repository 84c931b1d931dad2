// arm32: 64-bit xen_pfn_t values are truncated to 32 bits on their way to gfn_t /
// mfn_t (unsigned long), INVALID_GFN is 0xFFFFFFFF, and Xen writes it
// zero-extended (0x00000000FFFFFFFF) into 64-bit frame lists (FS 2.5, 8.3, 5.2;
// qemu-virt-dom0-arm32.json: gfn >= 2^28 has no root entry).

import { describe, expect, it } from "vitest";
import { E, REVS, XENMAPSPACE, arrayVsPage, fixture, op, preset, r, retarget, runDoc, runOps } from "./helpers.js";

describe("arm32 GFN truncation and INVALID_GFN", () => {
  const p = preset("arm32");
  const inv = "0xffffffff";
  const max0 = Number(p.plan.expect.maximumGpfn);

  it.each(REVS)("2^33 arrives as gfn 0 (over the flash block); max_gpfn unchanged (%s)", async (rev) => {
    const { results, run } = await runOps("arm32", rev, [
      op.grant(1, 1n << 33n), op.setup(2), op.maxGpfn(), op.remove(1n << 33n), op.setup(2),
    ]);
    expect(results).toEqual([
      r.rc(0),
      r.setup([p.g0, 0n]),
      r.rc(max0),
      r.rc(0),                                        // gfn 0 holds the grant frame now
      r.setup([p.g0, arrayVsPage(rev, "0x0", inv)]),  // pre/harden: the array keeps 0
    ]);
    // gfn 0 is a hole now; the rest of the flash block is still MMIO.
    const runs = (run.final as any).domains["0"].p2m as Array<{ gfn: string; type: string }>;
    expect(runs[0]).toMatchObject({ gfn: "0x1-0x7fff", type: "mmio_direct_c" });
  });

  it.each(REVS)("INVALID_GFN after truncation → -EINVAL; setup_table zero-extends INVALID (%s)", async (rev) => {
    const { results } = await runOps("arm32", rev, [
      op.grant(1, 0xffffffffn),
      op.grant(1, 0x1ffffffffn),        // truncates to 0xFFFFFFFF too
      op.grant(1, 0xffffffffffffffffn),
      op.setup(3),
      op.atp(XENMAPSPACE.shared_info, 0, 0x1ffffffffn),
    ]);
    expect(results).toEqual([
      r.rc(E.INVAL), r.rc(E.INVAL), r.rc(E.INVAL),
      r.setup(["0x" + p.g0.toString(16), inv, inv]),
      r.rc(E.INVAL),
    ]);
  });

  it.each(REVS)("gfn 2^28 is beyond the 2-page level-1 root; 2^28 - 1 is reachable (%s)", async (rev) => {
    const { results } = await runOps("arm32", rev, [
      op.grant(1, 1n << 28n), op.grant(2, (1n << 28n) - 1n), op.maxGpfn(), op.remove((1n << 28n) - 1n), op.remove(1n << 28n),
    ]);
    expect(results).toEqual([
      r.rc(E.INVAL), r.rc(0), r.rc(2 ** 28 - 1), r.rc(0), r.rc(E.NOENT),
    ]);
  });

  it.each(REVS)("populate / decrease with 64-bit extents above 2^32 (%s)", async (rev) => {
    const R = p.ramStart + 0x1234n;
    const { results } = await runOps("arm32", rev, [
      op.decrease([(1n << 32n) + R]), op.decrease([R]), op.populate([(5n << 32n) + R]), op.decrease([R]),
    ]);
    expect(results).toEqual([r.rc(1), r.rc(0), r.rc(1), r.rc(1)]);
  });
});

describe("fixture arm32-truncation.json (runnable with `npx xenmm run`)", () => {
  const { doc, expected } = fixture("arm32-truncation.json");
  it.each(REVS)("arm32 %s", async (rev) => {
    const { results } = await runDoc(retarget(doc, "arm32", rev));
    expect(results).toEqual(expected.arm32[rev]);
  });
});
