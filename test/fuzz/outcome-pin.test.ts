import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { runSeed } from "../../src/fuzz/replay.js";

// What the fuzzer finds, pinned: 96 seeded episodes over every revision, arch
// and interleave mode, hashed over each episode's run hash, its violations and
// its known-finding sightings (wall-clock times left out). Work that should
// only make the fuzzer faster (the checker's incremental state, caches, the
// host path) must leave this hash alone. Update it only with a change that is
// meant to change what is found, and say so in the commit.
describe("fuzz outcomes", () => {
  it("are the same as pinned over 96 seeded episodes", async () => {
    const h = createHash("sha256");
    let violations = 0;
    const bigints = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);
    for (const revision of ["pre", "harden", "gfn", "head"] as const)
      for (const arch of ["arm64", "arm32"] as const)
        for (const interleave of [false, true])
          for (let seed = 1; seed <= 6; seed++) {
            const r = await runSeed({ revision, arch }, seed, 400, { interleave, fullEvery: 16 });
            violations += r.violations.length;
            h.update(JSON.stringify([r.hash, r.violations.map(({ atMs, ...v }) => v), r.known.map(({ atMs, ...k }) => k)], bigints));
          }
    expect(violations).toBe(117);
    expect(h.digest("hex")).toBe("1d0d0e17e1786293189bf67d42b9039d5cc4de3ed68850b8c6e62a7c6aa1143a");
  }, 60_000);
});
