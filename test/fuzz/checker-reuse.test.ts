// A checker keeps its per-RAM-frame arrays (the frame watch's index, the
// xenheap union's marks, (h)'s owners) per machine, and the next checker on a
// pooled machine takes them over. Whatever the earlier checker left in them,
// the new one must start, and go on, as a checker on a new machine does.

import { describe, expect, it } from "vitest";
import { OpGenerator, defaultDomains } from "../../src/fuzz/generator.js";
import { acquireFuzzHost, createFuzzHost, releaseFuzzHost } from "../../src/fuzz/machine-host.js";
import { FuzzSession } from "../../src/fuzz/runner.js";
import type { InvariantChecker } from "../../src/fuzz/invariants.js";
import type { WorldConfig } from "../../src/fuzz/replay.js";

/** The per-frame state of a checker, as a checker on a new machine would have it (marks relative to its generation). */
function frameState(ck: InvariantChecker) {
  const c = ck as unknown as { frames: Record<string, unknown>; xhMark: Int32Array; xhGen: number; hOwner: Int32Array };
  const fw = c.frames as unknown as { n: number; mfns: Float64Array; refs: Int32Array; copy: Uint32Array; slotOf: Int32Array };
  const union: number[] = [], previous: number[] = [];
  c.xhMark.forEach((g, k) => (g === c.xhGen ? union.push(k) : g === c.xhGen - 1 ? previous.push(k) : undefined));
  return {
    watched: Array.from(fw.mfns.subarray(0, fw.n)),
    refs: Array.from(fw.refs.subarray(0, fw.n)),
    copy: Array.from(fw.copy.subarray(0, fw.n * 6)),
    slotOf: Array.from(fw.slotOf),
    union,
    previous,
    hOwner: Array.from(c.hOwner),
  };
}

const worlds: Array<[string, WorldConfig]> = [
  ["head arm64", { revision: "head", arch: "arm64" }],
  ["gfn arm32", { revision: "gfn", arch: "arm32" }],
];

describe.each(worlds)("a checker on a pooled machine (%s)", (_name, world) => {
  it("starts and runs with the per-frame state of a checker on a new machine", async () => {
    for (const seed of [1, 2, 3]) {
      // An earlier episode leaves frames watched, in the union and with (h) owners.
      const dirty = await acquireFuzzHost(world);
      const gen0 = new OpGenerator(seed + 10, { domains: defaultDomains(), interleave: true, arch: world.arch });
      const s0 = new FuzzSession(dirty, { fullEvery: 1e9 });
      for (let i = 0; i < 300 && !s0.stopped; i++) s0.exec(gen0.next());
      expect(frameState(s0.checker).watched.length).toBeGreaterThan(0);
      releaseFuzzHost(dirty);

      const reused = await acquireFuzzHost(world);
      expect(reused.m).toBe(dirty.m);
      const fresh = await createFuzzHost(world);
      const a = new FuzzSession(reused, { fullEvery: 1e9 });
      const b = new FuzzSession(fresh, { fullEvery: 1e9 });
      expect(frameState(a.checker)).toEqual(frameState(b.checker));
      const ga = new OpGenerator(seed, { domains: defaultDomains(), interleave: true, arch: world.arch });
      const gb = new OpGenerator(seed, { domains: defaultDomains(), interleave: true, arch: world.arch });
      for (let i = 0; i < 300 && !a.stopped; i++) {
        a.exec(ga.next());
        b.exec(gb.next());
        if (i % 50 === 49) expect(frameState(a.checker)).toEqual(frameState(b.checker));
      }
      expect(frameState(a.checker)).toEqual(frameState(b.checker));
      expect(a.hash()).toBe(b.hash());
      expect(a.violations.map((v) => v.message)).toEqual(b.violations.map((v) => v.message));
      releaseFuzzHost(reused);
    }
  });
});

describe("the checker a newer one took the machine from", () => {
  it("refuses to run (its buffers are the new checker's)", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64" });
    const old = new FuzzSession(host);
    old.exec({ kind: "destroy", domid: 9 });
    new FuzzSession(host);
    expect(() => old.exec({ kind: "destroy", domid: 9 })).toThrow(/newer checker/);
    expect(() => old.finish()).toThrow(/newer checker/);
  });
});
