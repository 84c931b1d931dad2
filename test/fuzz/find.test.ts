// The fuzzer finds the known bugs from scratch (no scripted sequences), shrinks
// them, and the reproducers replay to the same violation.
import { describe, expect, it } from "vitest";
import { defaultDomains } from "../../src/fuzz/generator.js";
import { runSeed, reproTest, replayRepro } from "../../src/fuzz/replay.js";
import { shrink, type FuzzRepro } from "../../src/fuzz/shrink.js";
import { reproToRunDocument, runDocumentToRepro } from "../../src/fuzz/runfmt.js";
import { loadRunDocument, executeRun } from "../../src/run/index.js";
import { matches, type Violation } from "../../src/fuzz/invariants.js";
import type { Revision } from "../../src/machine/api.js";

async function hunt(revision: Revision, target: string, opts: { interleave?: boolean; seeds?: number; ops?: number } = {}) {
  let total = 0;
  for (let seed = 1; seed <= (opts.seeds ?? 20); seed++) {
    const r = await runSeed({ revision, arch: "arm64" }, seed, opts.ops ?? 400, { interleave: opts.interleave });
    const v = r.violations.find((x) => matches(x, target));
    if (v) return { seed, v, steps: r.steps, opsBefore: total + v.op + 1 };
    total += r.steps.length;
  }
  return null;
}

describe("fuzzer finds the known bugs", () => {
  it("PRE: the stale-GFN bug (p2m-collateral), shrunk to <= 8 steps, replays from the run document", async () => {
    const hit = await hunt("pre", "p2m-collateral");
    expect(hit, "p2m-collateral not found at pre within 20 x 400 ops").not.toBeNull();
    const { seed, v, steps } = hit!;
    expect(hit!.opsBefore).toBeLessThan(8000);
    const repro: FuzzRepro = { revision: "pre", arch: "arm64", domains: defaultDomains(), steps: steps.slice(0, v.op + 1), seed };
    const small = await shrink(repro, "p2m-collateral", reproTest, { timeoutMs: 20_000 });
    expect(small.steps.length).toBeLessThanOrEqual(8);
    // The unrelated mapping destroyed by a grant-frame map elsewhere.
    const doc = await reproToRunDocument(small);
    const text = JSON.stringify(doc);
    expect(() => loadRunDocument(JSON.parse(text))).not.toThrow();
    const back = runDocumentToRepro(text);
    const again = await replayRepro(back);
    const w = again.violations.find((x) => x.invariant === "p2m-collateral");
    expect(w).toBeDefined();
    expect(w!.op).toBe(small.expect!.op);
    // `xenmm run` executes the same document.
    const run = await executeRun(loadRunDocument(JSON.parse(text)));
    expect(run.results.length).toBe(small.steps.length);
  });

  it("HARDEN: the -EILSEQ wedge (map-free:-84)", async () => {
    const hit = await hunt("harden", "map-free:-84");
    expect(hit, "-EILSEQ wedge not found at harden").not.toBeNull();
    expect(hit!.v.message).toMatch(/rc -84/);
  });

  it("GFN --interleave: XSA-486 (status frame mapped without a reference); not at HEAD with the same seeds", async () => {
    const hit = await hunt("gfn", "p2m-ref:count0/par", { interleave: true, seeds: 8 });
    expect(hit, "XSA-486 not found at gfn within 8 interleaved episodes").not.toBeNull();
    const at = hit!.steps[hit!.v.op];
    expect(at.kind).toBe("par");
    for (let seed = 1; seed <= 8; seed++) {
      const r = await runSeed({ revision: "head", arch: "arm64" }, seed, 400, { interleave: true });
      expect(r.violations.filter((x: Violation) => x.variant.startsWith("p2m-ref:count0")).map((x) => x.message)).toEqual([]);
    }
  });

  it("HEAD: a short campaign shows none of the stale-GFN / wedge / XSA-486 classes", async () => {
    // Known HEAD findings that are not these bugs (see README): refcount (re-mapping the same foreign
    // page at the same GFN leaks a reference: __p2m_set_entry only frees on an MFN change) and the
    // orphan-* classes (the host frees a destroyed domain's pages that another domain still maps).
    const known = /^(refcount(:orphan)?|p2m-ref:orphan-[a-z0-9-]+|crash:[A-Za-z_]+-after-orphan)(\/par)?$/;
    for (let seed = 100; seed < 110; seed++) {
      for (const interleave of [false, true]) {
        const r = await runSeed({ revision: "head", arch: "arm64" }, seed, 300, { interleave });
        const unexpected = r.violations.filter((x) => !known.test(x.variant));
        expect(unexpected.map((x) => `${seed}:${x.op}:${x.variant}: ${x.message}`)).toEqual([]);
      }
    }
  });
});
