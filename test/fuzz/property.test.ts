// Model-based property tests (fast-check commands) over the hypercall API.
// The model is the fuzzer's invariant checker (shadow P2M + page accounting);
// every command is one hypercall step (or an interleaved pair) on a real
// machine, checked after it runs. Failures are shrunk by fast-check and
// printed as a run document (`xenmm run FILE.json`, `xenmm fuzz replay FILE.json`).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { defaultDomains, type FuzzCall, type FuzzStep } from "../../src/fuzz/generator.js";
import { createFuzzHost } from "../../src/fuzz/machine-host.js";
import { FuzzSession } from "../../src/fuzz/runner.js";
import { reproToRunDocument } from "../../src/fuzz/runfmt.js";
import { replayRepro } from "../../src/fuzz/replay.js";
import type { InvariantName } from "../../src/fuzz/invariants.js";
import type { Revision } from "../../src/machine/api.js";

type Model = Record<string, never>;
class Real {
  readonly steps: FuzzStep[] = [];
  constructor(readonly session: FuzzSession, readonly ignore: Set<InvariantName>) {}
  exec(step: FuzzStep): void {
    this.steps.push(step);
    const before = this.session.violations.length;
    this.session.exec(step);
    const v = this.session.violations.slice(before).find((x) => !this.ignore.has(x.invariant));
    if (v) throw new Error(`${v.variant} after step ${v.op}: ${v.message}`);
  }
}

const GFNS = [0x40000, 0x40001, 0x38000, 0x38001, 0x100, 2 ** 36];
const gfn = fc.constantFrom(...GFNS);
const dom = fc.constantFrom(0, 1);
const call = fc.oneof(
  fc.record({ c: dom, idx: fc.constantFrom(0, 1, 0x80000000), g: gfn }).map(({ c, idx, g }): FuzzCall => ({ caller: c, req: { op: "XENMEM_add_to_physmap", domid: c, space: 1, idx, gpfn: g } })),
  fc.record({ c: dom, g: gfn }).map(({ c, g }): FuzzCall => ({ caller: c, req: { op: "XENMEM_add_to_physmap", domid: c, space: 0, idx: 0, gpfn: g } })),
  fc.record({ c: dom, g: gfn }).map(({ c, g }): FuzzCall => ({ caller: c, req: { op: "XENMEM_remove_from_physmap", domid: c, gpfn: g } })),
  fc.record({ c: dom, g: gfn }).map(({ c, g }): FuzzCall => ({ caller: c, req: { op: "XENMEM_populate_physmap", domid: c, extent_start: [g], nr_extents: 1, extent_order: 0 } })),
  fc.record({ c: dom, g: gfn }).map(({ c, g }): FuzzCall => ({ caller: c, req: { op: "XENMEM_decrease_reservation", domid: c, extent_start: [g], nr_extents: 1, extent_order: 0 } })),
  fc.record({ c: dom, v: fc.constantFrom(1, 2) }).map(({ c, v }): FuzzCall => ({ caller: c, req: { op: "GNTTABOP_set_version", version: v } })),
  fc.record({ i: gfn, g: gfn }).map(({ i, g }): FuzzCall => ({ caller: 0, req: { op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: 1, idxs: [i], gpfns: [g] } })),
);

class StepCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly step: FuzzStep) {}
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    r.exec(this.step);
  }
  toString(): string {
    const s = this.step;
    const txt = (c: FuzzCall) => `d${c.caller}:${JSON.stringify(c.req, (_k, v) => (typeof v === "bigint" ? "0x" + v.toString(16) : v))}`;
    return s.kind === "call" ? txt(s.call) : s.kind === "par" ? `par[${s.calls.map(txt).join(" || ")}]@${s.sched}` : `${s.kind} d${s.domid}`;
  }
}

const commands = (interleave: boolean) => {
  const cmds: Array<fc.Arbitrary<fc.AsyncCommand<Model, Real>>> = [call.map((c) => new StepCommand({ kind: "call", call: c }))];
  if (interleave) {
    cmds.push(fc.record({ a: call, b: call, s: fc.nat() }).map(({ a, b, s }) => new StepCommand({ kind: "par", calls: [a, b], sched: s })));
  }
  return fc.commands(cmds, { maxCommands: 12 });
};

async function property(revision: Revision, ignore: InvariantName[], interleave: boolean, numRuns: number, seed: number) {
  let lastSteps: FuzzStep[] = [];
  const res = await fc.check(
    fc.asyncProperty(commands(interleave), async (cmds) => {
      const host = await createFuzzHost({ revision, arch: "arm64", domains: defaultDomains().slice(0, 2) });
      const real = new Real(new FuzzSession(host, { fullEvery: 1 }), new Set(ignore));
      try {
        await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
      } finally {
        lastSteps = real.steps;
      }
    }),
    { numRuns, seed, endOnFailure: false },
  );
  return { res, lastSteps };
}

describe("model-based properties (fast-check commands)", () => {
  it("HEAD keeps every invariant (the known findings of src/fuzz/known.ts are filed apart)", async () => {
    const { res } = await property("head", [], true, 200, 1234);
    if (res.failed) {
      const steps = [...(res.counterexample![0] as Iterable<{ cmd?: StepCommand; hasRan?: boolean }>)].filter((w) => w.hasRan !== false).map((w) => w.cmd!.step);
      const doc = await reproToRunDocument({ revision: "head", arch: "arm64", domains: defaultDomains().slice(0, 2), steps });
      throw new Error(`${fc.defaultReportMessage(res)}\nshrunk counterexample as a run document:\n${JSON.stringify(doc, null, 1)}`);
    }
  });

  it("PRE violates them; the shrunk counterexample is printed as a run document and replays", async () => {
    const { res } = await property("pre", [], false, 100, 99);
    expect(res.failed).toBe(true);
    // fast-check reports the shrunk commands (wrapped; `hasRan` marks those executed).
    const wrapped = [...(res.counterexample![0] as Iterable<{ cmd?: StepCommand; hasRan?: boolean; step?: FuzzStep }>)];
    const steps = wrapped.filter((w) => w.hasRan !== false).map((w) => (w.cmd ? w.cmd.step : w.step!));
    expect(steps.length).toBeLessThanOrEqual(8);
    const repro = { revision: "pre" as const, arch: "arm64" as const, domains: defaultDomains().slice(0, 2), steps };
    const doc = await reproToRunDocument(repro);
    console.log("PRE counterexample (run format):\n" + JSON.stringify(doc, null, 1));
    const back = await replayRepro(repro);
    expect(back.violations.length).toBeGreaterThan(0);
  });

  it("HEAD: re-mapping the same foreign page at the same GFN leaks a page reference, filed as the known FS 11.3 leak", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains().slice(0, 2) });
    const s = new FuzzSession(host, { fullEvery: 1 });
    const map: FuzzStep = { kind: "call", call: { caller: 0, req: { op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: 1, idxs: [0x40000], gpfns: [0x100] } } };
    s.exec(map);
    expect(s.violations).toEqual([]);
    s.exec(map);
    expect(s.violations).toEqual([]);
    expect(s.checker.known.map((k) => [k.id, k.variant])).toEqual([["foreign-remap-leak", "refcount"]]);
    expect(s.checker.known[0].message).toMatch(/count 3, expected 2; 1 foreign re-map/);
  });

  it("a removal and a later re-map of the same foreign page is no leak (the log tells break-before-make apart)", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains().slice(0, 2) });
    const s = new FuzzSession(host, { fullEvery: 1 });
    const map: FuzzStep = { kind: "call", call: { caller: 0, req: { op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: 1, idxs: [0x40000], gpfns: [0x100] } } };
    const unmap: FuzzStep = { kind: "call", call: { caller: 0, req: { op: "XENMEM_remove_from_physmap", domid: 0, gpfn: 0x100 } } };
    for (const st of [map, unmap, map, unmap, map]) s.exec(st);
    expect(s.violations).toEqual([]);
    expect(s.checker.known).toEqual([]);
  });
});
