// Differential property: random tables (structured descriptors and garbage),
// random configurations and random probes -> the Wasm walker (single and
// batched) and the TS reference walker agree exactly.

import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Env } from "./helpers.js";
import { decodeRawResult, decodeNumberResult } from "../../src/walk/fault.js";
import { s2Geometry } from "../../src/walk/reference-walker.js";
import type { WalkConfig } from "../../src/walk/wasm-walker.js";

// A pool of 24 table pages: 16 contiguous ones (so concatenated roots of up to
// 16 pages are populated), a few scattered ones, one just below 2^40 and one
// above it (address-size faults at small PS), one above 2^47.
const POOL: bigint[] = [
  ...Array.from({ length: 16 }, (_, i) => 0x80000000n + BigInt(i) * 0x1000n),
  0x1000n, 0x40000000n, 0x12345000n, 0xfff00000n,
  (1n << 40n) - 0x1000n, 1n << 40n, (1n << 42n) + 0x3000n, (1n << 47n) + 0x5000n,
];
const IDX = [0, 1, 2, 3, 7, 255, 511];

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

// Descriptor: garbage, zero, or a structured table/block/page pointing into the
// pool (or to an arbitrary 48-bit address), with random attribute bits.
const descArb = fc.oneof(
  { weight: 1, arbitrary: u64 },
  { weight: 1, arbitrary: fc.constant(0n) },
  {
    weight: 6,
    arbitrary: fc.record({
      target: fc.oneof(fc.constantFrom(...POOL), fc.bigInt({ min: 0n, max: (1n << 52n) - 1n })),
      lowBits: fc.constantFrom(0b11n, 0b01n, 0b11n, 0b10n),
      attrs: fc.bigInt({ min: 0n, max: 0x3ffn }), // bits 11:2
      high: fc.constantFrom(0n, 1n << 52n, 1n << 53n, 1n << 54n, 0x00800000000000000n, 0x04400000000000000n, 3n << 53n),
      af: fc.constantFrom(0x400n, 0x400n, 0x400n, 0n),
    }).map(({ target, lowBits, attrs, high, af }) => {
      const v = (target & ~0xfffn) | ((attrs << 2n) & 0xffcn) | af | high | lowBits;
      return BigInt.asUintN(64, v);
    }),
  },
);

const entryArb = fc.record({
  page: fc.nat({ max: POOL.length - 1 }),
  idx: fc.oneof(fc.constantFrom(...IDX), fc.nat({ max: 511 })),
  value: descArb,
});

const cfgArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      { t0sz: 16, sl0: 2 }, { t0sz: 20, sl0: 2 }, { t0sz: 24, sl0: 2 },
      { t0sz: 24, sl0: 1 }, { t0sz: 22, sl0: 1 }, { t0sz: 28, sl0: 1 }, { t0sz: 32, sl0: 1 }, { t0sz: 21, sl0: 1 },
      { t0sz: 30, sl0: 0 }, { t0sz: 34, sl0: 0 }, { t0sz: 40, sl0: 0 },
    ),
  },
  { weight: 1, arbitrary: fc.record({ t0sz: fc.nat({ max: 63 }), sl0: fc.nat({ max: 3 }) }) },
);

const configArb = fc.record({
  base: cfgArb,
  ps: fc.nat({ max: 7 }),
  parange: fc.constantFrom(32, 36, 40, 42, 44, 48, 48, 52),
  root: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0x80000000n) },
    { weight: 2, arbitrary: fc.constantFrom(...POOL) },
    { weight: 2, arbitrary: fc.bigInt({ min: 0x80000000n, max: 0x80010000n }) }, // misaligned
    { weight: 1, arbitrary: u64 },
  ),
});

// Probes built from per-level indices that hit populated entries, plus raw IPAs.
const probeArb = fc.record({
  ipa: fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          fc.oneof(fc.constantFrom(...IDX), fc.nat({ max: 15 })),
          fc.constantFrom(...IDX), fc.constantFrom(...IDX), fc.constantFrom(...IDX),
          fc.nat({ max: 0xfff }),
        )
        .map(([top, a, b, c, off]) =>
          (BigInt(top) << 39n) | (BigInt(a) << 30n) | (BigInt(b) << 21n) | (BigInt(c) << 12n) | BigInt(off)),
    },
    { weight: 1, arbitrary: u64 },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }) },
  ),
  access: fc.nat({ max: 2 }),
});

// Explicit chains: table entries from the start level down to a chosen leaf
// level for one IPA, so that deep outcomes (successful walks, faults at
// levels 2 and 3) are reached often. The leaf is structured but random.
const pathArb = fc.record({
  ipa: fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }),
  pages: fc.tuple(fc.nat({ max: POOL.length - 1 }), fc.nat({ max: POOL.length - 1 }), fc.nat({ max: POOL.length - 1 })),
  leafLevel: fc.constantFrom(0, 1, 2, 3, 3, 3),
  target: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 52n) - 1n })),
  encodingOk: fc.constantFrom(true, true, true, true, false),
  attrs: fc.bigInt({ min: 0n, max: 0x3ffn }),
  s2ap: fc.constantFrom(0xc0n, 0xc0n, 0x40n, 0x80n, 0n),
  af: fc.constantFrom(0x400n, 0x400n, 0x400n, 0n),
  high: fc.constantFrom(0n, 1n << 52n, 1n << 53n, 1n << 54n, 0x00800000000000000n, 3n << 53n),
  access: fc.nat({ max: 2 }),
});
type Path = typeof pathArb extends fc.Arbitrary<infer T> ? T : never;

function writePath(e: Env, cfg: WalkConfig, p: Path): bigint {
  const g = s2Geometry(cfg);
  const ipa = g.inputBits <= 64 ? p.ipa & ((1n << BigInt(Math.min(g.inputBits, 63))) - 1n) : p.ipa;
  if (g.status !== 0) return ipa;
  const shift = (l: number) => BigInt(12 + 9 * (3 - l));
  let level = g.startLevel;
  let addr = BigInt(g.base) + (ipa >> shift(level)) * 8n;
  const leafLevel = Math.max(p.leafLevel, level);
  for (; level < leafLevel; level++) {
    const next = POOL[p.pages[level]];
    e.set(addr, 0x00800000000007ffn | next);
    addr = next + ((ipa >> shift(level + 1)) & 511n) * 8n;
  }
  const lowBits = p.encodingOk ? (level === 3 ? 3n : 1n) : level === 3 ? 1n : 0n;
  const leaf = (p.target & 0xfffffffffffff000n) | ((p.attrs << 2n) & 0xf3cn) | p.s2ap | p.af | p.high | lowBits;
  e.set(addr, leaf);
  return ipa;
}

type Config = typeof configArb extends fc.Arbitrary<infer T> ? T : never;
type Entry = typeof entryArb extends fc.Arbitrary<infer T> ? T : never;
type Probe = typeof probeArb extends fc.Arbitrary<infer T> ? T : never;

/** The tables and probes of one generated case: random entries, then well-formed paths written over them. */
function scenario(cfg: Config, entries: Entry[], probes0: Probe[], paths: Path[]) {
  const e = new Env();
  for (const en of entries) e.set(POOL[en.page] + BigInt(en.idx) * 8n, en.value);
  const wc = { ...cfg.base, ps: cfg.ps, parange: cfg.parange, root: cfg.root };
  const probes = [...probes0, ...paths.map((p) => ({ ipa: writePath(e, wc, p), access: p.access }))];
  return { e, wc, probes };
}

describe("Wasm walker vs TS reference walker", () => {
  it("agree on random tables and probes", () => {
    fc.assert(
      fc.property(configArb, fc.array(entryArb, { maxLength: 120 }), fc.array(probeArb, { minLength: 1, maxLength: 60 }), fc.array(pathArb, { maxLength: 12 }), (cfg, entries, probes0, paths) => {
        const { e, wc, probes } = scenario(cfg, entries, probes0, paths);
        expect(e.ref.configure(wc)).toBe(e.w.configure(wc));
        const batch = e.w.walkBatch(probes.map((p) => p.ipa), probes.map((p) => p.access));
        // reference batch over the very same buffers
        const v = e.w.reserve(probes.length);
        const out = new Float64Array(probes.length);
        e.ref.walkBatch(v.ipa32, v.access, probes.length, out);
        probes.forEach((p, i) => {
          const wasm = decodeRawResult(batch[i]);
          expect(e.w.walkRaw(p.ipa, p.access)).toBe(batch[i]);
          expect(e.ref.walk(p.ipa, p.access)).toEqual(wasm);
          expect(decodeNumberResult(out[i])).toEqual(wasm);
        });
      }),
      { numRuns: 400 },
    );
  });

  it("the generators reach every outcome (the property is not vacuous)", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(configArb, fc.array(entryArb, { maxLength: 120 }), fc.array(probeArb, { minLength: 1, maxLength: 60 }), fc.array(pathArb, { maxLength: 12 }), (cfg, entries, probes0, paths) => {
        const { e, wc, probes } = scenario(cfg, entries, probes0, paths);
        e.w.configure(wc);
        for (const p of probes) {
          const r = e.w.walk(p.ipa, p.access);
          seen.add(r.ok ? "ok" : `${r.fault.type}@${r.fault.level}`);
        }
      }),
      { numRuns: 400, seed: 12345 },
    );
    for (const k of [
      "ok", "translation@0", "translation@1", "translation@2", "translation@3",
      "address_size@0", "address_size@1", "address_size@2", "address_size@3",
      "access_flag@1", "access_flag@2", "access_flag@3",
      "permission@1", "permission@2", "permission@3",
    ]) expect(seen, k).toContain(k);
  });
});
