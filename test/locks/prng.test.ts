import { describe, expect, it } from "vitest";
import { Prng } from "../../src/util/prng.js";

describe("Prng", () => {
  it("is reproducible from the seed and differs across seeds", () => {
    const a = new Prng(42), b = new Prng(42), c = new Prng(43);
    const sa = Array.from({ length: 8 }, () => a.next());
    const sb = Array.from({ length: 8 }, () => b.next());
    const sc = Array.from({ length: 8 }, () => c.next());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    for (const x of sa) expect(Number.isInteger(x) && x >= 0 && x <= 0xffffffff).toBe(true);
  });

  it("below(n) stays in range and covers it roughly uniformly", () => {
    const p = new Prng(1);
    const hist = new Array(6).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < 60000; i++) {
      const x = p.below(6);
      if (!(x >= 0 && x < 6 && Number.isInteger(x))) outOfRange++;
      else hist[x]++;
    }
    expect(outOfRange).toBe(0);
    for (const h of hist) expect(Math.abs(h - 10000)).toBeLessThan(500);
  });

  it("chance(p) honours the extremes and the mean", () => {
    const p = new Prng(9);
    let hits = 0;
    let wrongExtremes = 0;
    for (let i = 0; i < 10000; i++) {
      if (p.chance(0) || !p.chance(1)) wrongExtremes++;
      if (p.chance(0.25)) hits++;
    }
    expect(wrongExtremes).toBe(0);
    expect(Math.abs(hits - 2500)).toBeLessThan(200);
    const f = p.float();
    expect(f >= 0 && f < 1).toBe(true);
  });
});
