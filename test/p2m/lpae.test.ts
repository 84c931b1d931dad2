import { describe, it, expect } from "vitest";
import { machine, T, A } from "./helpers.js";

// FS §4.4 pre-computed raw values (access rwx), without the MFN.
const PAGE: Record<number, bigint> = {
  1: 0x00800000000007ffn, 2: 0x010000000000077fn, 3: 0x01c00000000006c7n, 4: 0x02400000000006d7n,
  5: 0x02c00000000006ffn, 6: 0x03400000000007ffn, 7: 0x03c000000000077fn, 8: 0x04400000000007ffn,
  9: 0x04c000000000077fn, 10: 0x05400000000007ffn, 11: 0x05c000000000077fn,
};
const BLOCK: Record<number, bigint> = {
  1: 0x00800000000007fdn, 2: 0x010000000000077dn, 3: 0x01c00000000006c5n, 4: 0x02400000000006d5n,
  5: 0x02c00000000006fdn, 6: 0x03400000000007fdn, 7: 0x03c000000000077dn, 8: 0x04400000000007fdn,
  9: 0x04c000000000077dn, 10: 0x05400000000007fdn, 11: 0x05c000000000077dn,
};

describe("stage-2 descriptors (FS §4.4)", () => {
  it("mfn_to_p2m_entry gives the sheet's page values for every type", async () => {
    const m = await machine();
    for (let t = 1; t <= 11; t++) {
      expect(m.core.mfn_to_p2m_entry(0x12345n, t, A.rwx)).toBe(PAGE[t] | (0x12345n << 12n));
    }
    // p2m_invalid: xn, no write, type 0
    expect(m.core.mfn_to_p2m_entry(0n, T.invalid, A.rwx)).toBe(0x004000000000077fn);
  });

  it("entries written by __p2m_set_entry at level 3, 2 and 1 match the sheet for every type", async () => {
    const m = await machine();
    expect(m.domain(1)).toBe(0);
    for (let t = 1; t <= 11; t++) {
      const g4 = BigInt(t) * 0x100n + 3n, mfn4 = 0x777n + BigInt(t);
      expect(m.core.p2m_set_entry(1, g4, 1n, mfn4, t, A.rwx)).toBe(0);
      expect(m.core.p2m_read_entry(1, g4, 3)).toBe(PAGE[t] | (mfn4 << 12n));
      const g2 = 0x100000n + BigInt(t) * 512n, mfn2 = 0x200000n + BigInt(t) * 512n;
      expect(m.core.p2m_set_entry(1, g2, 512n, mfn2, t, A.rwx)).toBe(0);
      expect(m.core.p2m_read_entry(1, g2, 2)).toBe(BLOCK[t] | (mfn2 << 12n));
      const g1 = BigInt(t) << 18n, mfn1 = BigInt(t + 16) << 18n;
      expect(m.core.p2m_set_entry(1, (1n << 24n) + g1, 1n << 18n, mfn1, t, A.rwx)).toBe(0);
      expect(m.core.p2m_read_entry(1, (1n << 24n) + g1, 1)).toBe(BLOCK[t] | (mfn1 << 12n));
    }
    // table descriptors are ram_rw/rwx page entries
    const l2 = m.core.p2m_read_entry(1, 3n, 2);
    expect(l2 & ~0x0000fffffffff000n).toBe(0x00800000000007ffn);
  });

  it("access restrictions only clear permissions (FS §4.4 table)", async () => {
    const m = await machine();
    const R = 1n << 6n, W = 1n << 7n, XN = 1n << 54n;
    const base = PAGE[T.ram_rw]; // read, write, executable
    const expected: Record<number, bigint> = {
      [A.rwx]: base,
      [A.wx]: base & ~R,
      [A.rw]: base | XN,
      [A.w]: (base & ~R) | XN,
      [A.rx]: base & ~W,
      [A.rx2rw]: base & ~W,
      [A.x]: base & ~(R | W),
      [A.r]: (base & ~W) | XN,
      [A.r_pw]: (base & ~W) | XN,
      [A.n]: (base & ~(R | W)) | XN,
      [A.n2rwx]: (base & ~(R | W)) | XN,
    };
    for (const [a, v] of Object.entries(expected)) {
      expect(m.core.mfn_to_p2m_entry(0n, T.ram_rw, Number(a))).toBe(v);
    }
    // ram_ro with rw access: still no write, xn set
    expect(m.core.mfn_to_p2m_entry(0n, T.ram_ro, A.rw)).toBe(PAGE[T.ram_ro] | XN);
  });

  it("get_entry reports type, access, order and the hardware valid bit", async () => {
    const m = await machine();
    m.domain(1);
    m.core.p2m_set_entry(1, 0x200n, 512n, 0x4000n, T.grant_map_ro, A.rwx);
    expect(m.lookup(1, 0x2ffn)).toEqual({ mfn: 0x40ffn, t: T.grant_map_ro, a: A.rwx, order: 9, valid: 1 });
  });
});
