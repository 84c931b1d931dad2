// Episodes start on a pooled machine reset to the world's template
// (acquireFuzzHost) instead of a new one (createFuzzHost). Whatever the
// previous episode did, the reset machine must be indistinguishable: same
// stateHash(), and the same seeded op stream gives the same results, shadow
// hash and violations as on a new machine.

import { describe, expect, it } from "vitest";
import { OpGenerator, defaultDomains } from "../../src/fuzz/generator.js";
import { acquireFuzzHost, createFuzzHost, releaseFuzzHost, type MachineHost } from "../../src/fuzz/machine-host.js";
import { FuzzSession } from "../../src/fuzz/runner.js";
import { runSeed, type WorldConfig } from "../../src/fuzz/replay.js";

const EP = 400;

function episode(host: MachineHost, world: WorldConfig, seed: number, interleave: boolean) {
  const gen = new OpGenerator(seed, { domains: defaultDomains(), interleave, arch: world.arch, ipaBits: world.ipaBits });
  const s = new FuzzSession(host, { fullEvery: 32 });
  for (let i = 0; i < EP && !s.stopped; i++) s.exec(gen.next());
  s.finish();
  return {
    hash: s.hash(),
    ops: s.index,
    violations: s.violations.map((v) => [v.op, v.invariant, v.variant, v.message]),
    crash: host.crash(),
  };
}

const worlds: Array<[string, WorldConfig, boolean]> = [
  ["pre arm64", { revision: "pre", arch: "arm64" }, false],
  ["gfn arm32 --interleave", { revision: "gfn", arch: "arm32" }, true],
  ["head arm64 --interleave", { revision: "head", arch: "arm64" }, true],
];

describe.each(worlds)("fuzz episodes on a reset machine (%s)", (_name, world, interleave) => {
  it("equal a fresh machine's, after any previous episode", async () => {
    let crashes = 0;
    for (let seed = 1; seed <= 5; seed++) {
      // dirty a pooled machine with another episode
      const dirty = await acquireFuzzHost(world);
      const template = dirty.m.stateHash();
      const before = episode(dirty, world, seed + 3, interleave);
      if (before.crash) crashes++;
      expect(dirty.m.stateHash()).not.toBe(template);
      releaseFuzzHost(dirty);

      const reset = await acquireFuzzHost(world);
      expect(reset.m).toBe(dirty.m); // the same machine, reset, not a new one
      const fresh = await createFuzzHost(world);
      expect(reset.m.stateHash()).toBe(fresh.m.stateHash());
      const a = episode(reset, world, seed, interleave);
      const b = episode(fresh, world, seed, interleave);
      expect(a).toEqual(b);
      expect(reset.m.stateHash()).toBe(fresh.m.stateHash());
      releaseFuzzHost(reset);
    }
    if (world.revision === "pre") expect(crashes).toBeGreaterThan(0); // a hypervisor crash among the dirtying episodes
  });

  it("runSeed: the same seed gives the same run bit for bit, on new and on reused machines", async () => {
    const a = await runSeed(world, 7, EP, { interleave });
    const b = await runSeed(world, 7, EP, { interleave });
    // Wall-clock stamps (atMs) are not part of the run.
    const strip = (r: typeof a) => ({ ...r, violations: r.violations.map((v) => ({ ...v, atMs: 0 })), known: r.known.map((k) => ({ ...k, atMs: 0 })) });
    expect(strip(b)).toEqual(strip(a));
  });
});

// The template decodes its host graph once (GraphPlan) and writes it into
// every machine reset to it: arrays, maps and objects must still be new per
// reset, or one episode's writes would leak into the next machine.
describe("template host state", () => {
  it("is not shared between machines reset to the same template", async () => {
    const world: WorldConfig = { revision: "head", arch: "arm64" };
    const fresh = (await createFuzzHost(world)).m.stateHash();
    const a = await acquireFuzzHost(world);
    const b = await acquireFuzzHost(world);
    releaseFuzzHost(a);
    releaseFuzzHost(b);
    const ra = await acquireFuzzHost(world);
    const rb = await acquireFuzzHost(world);
    expect(ra.m).not.toBe(rb.m);
    const m = ra.m as any;
    m.freeSlots.push(999);
    m.lockdep.succ[0].push(3);
    m.lockdep.classIds.set("x", 9);
    m.look.t = 7;
    expect(ra.m.stateHash()).not.toBe(fresh);
    expect(rb.m.stateHash()).toBe(fresh);
    releaseFuzzHost(rb);
    releaseFuzzHost(ra);
    const again = await acquireFuzzHost(world);
    expect(again.m.stateHash()).toBe(fresh);
    releaseFuzzHost(again);
  });
});
