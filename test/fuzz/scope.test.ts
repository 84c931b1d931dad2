import { describe, it, expect } from "vitest";
import { createFuzzHost } from "../../src/fuzz/machine-host.js";
import { defaultDomains, XENMAPSPACE_grant_table } from "../../src/fuzz/generator.js";
import { FuzzSession } from "../../src/fuzz/runner.js";

// (d) lets an op remove mappings of the frames it concerns. Those are taken
// again after the call, because the call can change them: mapping grant frame
// idx >= nr_grant_frames grows the table first (gnttab_grow_table), and the
// frame the op then maps exists only afterwards.

describe("the (d) scope of a sequential call", () => {
  it("names the grant frame a growing add_to_physmap created", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const ses = new FuzzSession(host);
    const before = host.grant(1)!;
    const idx = before.nrGrantFrames;
    const out = ses.exec({ kind: "call", call: { caller: 1, req: { op: "XENMEM_add_to_physmap", domid: 1, space: XENMAPSPACE_grant_table, idx, gpfn: 0x80000 } } });
    expect(out.results[0]?.rc).toBe(0);
    host.invalidate();
    const after = host.grant(1)!;
    expect(after.nrGrantFrames).toBe(idx + 1);
    const grown = after.shared[idx];
    // The checker's scope object lives until the next step.
    const scope = (ses.checker as unknown as { scopeObj: { mfns: number[] } }).scopeObj;
    expect(scope.mfns).toContain(grown);
    expect(ses.violations).toEqual([]);
  });
});
