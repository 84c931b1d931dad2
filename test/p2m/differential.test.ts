import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { machine, T, type Machine } from "./helpers.js";

// Plain-TS model: the list of operations; the last one covering a GFN decides.
type Op = { gfn: bigint; nr: bigint; mfn: bigint | null; t: number };

function expected(ops: Op[], g: bigint): { mfn: bigint; t: number } | null {
  for (let i = ops.length - 1; i >= 0; i--) {
    const o = ops[i];
    if (g >= o.gfn && g < o.gfn + o.nr) return o.mfn === null ? null : { mfn: o.mfn + (g - o.gfn), t: o.t };
  }
  return null;
}

const G1 = 1n << 18n;
// Foreign types are excluded: Xen only maps them over MFNs it holds references on
// (removing one over an arbitrary MFN is an ASSERT, tested in ops.test.ts).
const typeArb = fc.constantFrom(1, 2, 3, 4, 5, 8, 9, 10, 11);
// Operations inside [0, 4 GiB) of IPA, shaped to exercise 1G/2M/4K and splits.
const opArb = fc.oneof(
  fc.record({ kind: fc.constant("1g"), i: fc.integer({ min: 0, max: 3 }), m: fc.integer({ min: 1, max: 8 }), t: typeArb, rm: fc.boolean() }),
  fc.record({ kind: fc.constant("2m"), i: fc.integer({ min: 0, max: 2047 }), n: fc.integer({ min: 1, max: 3 }), m: fc.integer({ min: 0, max: 4095 }), t: typeArb, rm: fc.boolean() }),
  fc.record({ kind: fc.constant("4k"), i: fc.integer({ min: 0, max: (1 << 20) - 1 }), n: fc.integer({ min: 1, max: 700 }), m: fc.integer({ min: 0, max: 1 << 20 }), t: typeArb, rm: fc.boolean() }),
).map((r: any): Op => {
  if (r.kind === "1g") return { gfn: BigInt(r.i) * G1, nr: G1, mfn: r.rm ? null : BigInt(r.m) * G1, t: r.t };
  if (r.kind === "2m") return { gfn: BigInt(r.i) * 512n, nr: BigInt(r.n) * 512n, mfn: r.rm ? null : BigInt(r.m) * 512n, t: r.t };
  return { gfn: BigInt(r.i), nr: BigInt(r.n), mfn: r.rm ? null : BigInt(r.m), t: r.t };
});

function probes(ops: Op[]): bigint[] {
  const s = new Set<bigint>();
  for (const o of ops) {
    for (const g of [o.gfn - 1n, o.gfn, o.gfn + 1n, o.gfn + o.nr / 2n, o.gfn + o.nr - 1n, o.gfn + o.nr, o.gfn + 511n, o.gfn + 512n]) {
      if (g >= 0n && g < 4n * G1) s.add(g);
    }
  }
  return [...s];
}

function walkerAgrees(m: Machine, d: number, g: bigint, exp: { mfn: bigint; t: number } | null): boolean {
  const r = BigInt.asUintN(64, m.core.walk_s2(g << 12n, 0));
  if (exp === null) return (r >> 63n) === 1n && ((r >> 12n) & 7n) === 2n; // translation fault
  return r === exp.mfn << 12n;
}

describe("p2m_set_entry / removal vs a Map model", () => {
  it("agrees for every GFN touched (and the architectural walker agrees)", async () => {
    const m = await machine({ ramFrames: 0x20000n });
    let slot = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        slot = (slot % 60) + 1;
        if (m.core.p2m_initialised(slot)) m.core.p2m_teardown(slot);
        const free0 = m.core.total_avail_pages();
        expect(m.domain(slot)).toBe(0);
        const d = slot;
        for (const o of ops) {
          const rc = o.mfn === null
            ? m.core.p2m_set_entry(d, o.gfn, o.nr, m.INVALID, T.invalid, 7)
            : m.core.p2m_set_entry(d, o.gfn, o.nr, o.mfn, o.t, 7);
          expect(rc).toBe(0);
        }
        m.core.walk_configure(16, 2, 5, 48, m.core.p2m_root_mfn(d) << 12n);
        for (const g of probes(ops)) {
          const e = expected(ops, g);
          const got = m.lookup(d, g);
          if (e === null) expect(got.mfn, `gfn ${g}`).toBe(m.INVALID);
          else {
            expect({ mfn: got.mfn, t: got.t }, `gfn ${g}`).toEqual(e);
            expect((g & ((1n << BigInt(got.order)) - 1n)) <= g).toBe(true);
          }
          expect(walkerAgrees(m, d, g, e), `walker gfn ${g}`).toBe(true);
        }
        // the stats count exactly the valid leaves per level that Xen would have counted
        // when no entry was overwritten in place; here just: tables list == counter
        m.core.p2m_teardown(d);
        expect(m.core.total_avail_pages()).toBe(free0);
      }),
      { numRuns: 150, seed: 0x5eed },
    );
  });
});
