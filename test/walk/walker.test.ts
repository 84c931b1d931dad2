import { describe, it, expect } from "vitest";
import {
  dfscEncode,
  dfscDecode,
  decodeRawResult,
  encodeRawResult,
  makeFault,
  type FaultType,
} from "../../src/walk/fault.js";
import { Env, env48, ok, fault, table, page, block, R, W, X, ROOT, T1, T2, T3, PAGE_RW, BLOCK_RW } from "./helpers.js";

const L1 = 1n << 30n;
const L2 = 1n << 21n;
const L3 = 1n << 12n;

describe("DFSC (fact sheet §10.6)", () => {
  const table106: Record<FaultType, number[]> = {
    address_size: [0x00, 0x01, 0x02, 0x03],
    translation: [0x04, 0x05, 0x06, 0x07],
    access_flag: [0x08, 0x09, 0x0a, 0x0b],
    permission: [0x0c, 0x0d, 0x0e, 0x0f],
  };
  for (const [type, codes] of Object.entries(table106) as [FaultType, number[]][]) {
    it(`${type} levels 0..3`, () => {
      codes.forEach((code, level) => {
        expect(dfscEncode(type, level)).toBe(code);
        expect(dfscDecode(code)).toEqual({ type, level });
      });
    });
  }
  it("level -1 (LPA2) codes", () => {
    expect(dfscEncode("address_size", -1)).toBe(0x29);
    expect(dfscEncode("translation", -1)).toBe(0x2b);
    expect(() => dfscEncode("permission", -1)).toThrow();
    expect(dfscDecode(0x29)).toEqual({ type: "address_size", level: -1 });
    expect(dfscDecode(0x2b)).toEqual({ type: "translation", level: -1 });
  });
  it("non-walk codes do not decode", () => {
    for (const c of [0x10, 0x14, 0x15, 0x21, 0x25, 0x3f]) expect(dfscDecode(c)).toBeNull();
  });
  it("raw u64 encoding round-trips and carries the ESR DFSC in bits 5:0", () => {
    const f = makeFault("permission", 3);
    const raw = encodeRawResult({ ok: false, fault: f });
    expect(raw & 0x3fn).toBe(0x0fn);
    expect(raw >> 63n).toBe(1n);
    expect(decodeRawResult(raw)).toEqual({ ok: false, fault: f });
    // the signed BigInt a raw i64 export gives
    expect(decodeRawResult(BigInt.asIntN(64, raw))).toEqual({ ok: false, fault: f });
  });
});

describe("successful translations", () => {
  it("4-level page walk (48-bit IPA, level-0 root)", () => {
    const e = env48().set(T3 + 5n * 8n, page(0x12345000n));
    const ipa = 5n * L3 + 0xabcn;
    for (const a of [R, W, X]) expect(e.walk(ipa, a)).toEqual(ok(0x12345abcn));
  });
  it("level-1 1 GiB block takes IPA bits [29:0]", () => {
    const e = env48().set(T1 + 3n * 8n, block(0x80000000n));
    expect(e.walk(3n * L1 + 0x2345678n, R)).toEqual(ok(0x82345678n));
  });
  it("level-2 2 MiB block takes IPA bits [20:0]", () => {
    const e = env48().set(T2 + 7n * 8n, block(0x600000n));
    expect(e.walk(7n * L2 + 0x1fffffn, W)).toEqual(ok(0x7fffffn));
  });
  it("RES0 bits below the block size are ignored", () => {
    const e = env48().set(T2 + 1n * 8n, block(0x600000n | 0x1ff000n));
    expect(e.walk(L2 + 0x1234n)).toEqual(ok(0x601234n));
  });
  it("descriptor attribute/software bits do not change the output", () => {
    // Xen's grant_map_rw page (type 8) and mmio_direct_dev (type 3) values.
    const e = env48().set(T3, 0x04400000000007ffn | 0x1000n).set(T3 + 8n, 0x01c00000000006c7n | 0x2000n);
    expect(e.walk(0x10n, W)).toEqual(ok(0x1010n));
    expect(e.walk(L3 + 0x10n, W)).toEqual(ok(0x2010n));
  });
  it("contiguous bit: output takes 4 more IPA bits (StageOA)", () => {
    const e = env48().set(T3 + 17n * 8n, page(0x50000n) | (1n << 52n));
    expect(e.walk(17n * L3 + 0x10n)).toEqual(ok(0x51010n));
  });
  it("40-bit IPA starting at level 0 is valid on a 48-bit PA CPU (2-entry root inside a page)", () => {
    const root = 0x40000010n; // only 16-byte alignment needed
    const e = new Env({ t0sz: 24, sl0: 2, ps: 5, root });
    expect(e.w.configure({ t0sz: 24, sl0: 2, ps: 5, root })).toBe(0);
    e.set(root + 8n, table(T1)).set(T1 + 2n * 8n, block(0xc0000000n));
    expect(e.walk((1n << 39n) + 2n * L1 + 5n)).toEqual(ok(0xc0000005n));
    expect(e.walk(2n * L1 + 5n)).toEqual(fault("translation", 0, 0x04));
  });
});

describe("translation faults", () => {
  it("level 0: invalid root entry", () => {
    expect(env48().walk(1n << 39n)).toEqual(fault("translation", 0, 0x04));
  });
  it("level 0: block descriptor is reserved with DS = 0", () => {
    const e = env48().set(ROOT + 8n, BLOCK_RW);
    expect(e.walk(1n << 39n)).toEqual(fault("translation", 0, 0x04));
  });
  it("level 1, 2, 3: invalid entries (missing page reads as zero)", () => {
    const e = env48();
    expect(e.walk(L1)).toEqual(fault("translation", 1, 0x05));
    expect(e.walk(L2)).toEqual(fault("translation", 2, 0x06));
    expect(e.walk(L3)).toEqual(fault("translation", 3, 0x07));
  });
  it("bit 0 clear is invalid whatever the other bits", () => {
    const e = env48().set(T3 + 8n, PAGE_RW & ~1n).set(T2 + 8n, table(T3) & ~1n);
    expect(e.walk(L3)).toEqual(fault("translation", 3, 0x07));
    expect(e.walk(L2)).toEqual(fault("translation", 2, 0x06));
  });
  it("level 3: bits[1:0] = 01 is reserved", () => {
    const e = env48().set(T3 + 8n, BLOCK_RW | 0x7000n);
    expect(e.walk(L3)).toEqual(fault("translation", 3, 0x07));
  });
  it("table pointing at a missing page", () => {
    const e = env48().set(T3 + 9n * 8n, page(0x9000n)).set(T2 + 4n * 8n, table(0x7770000n));
    expect(e.walk(4n * L2)).toEqual(fault("translation", 3, 0x07));
  });
  it("IPA >= 2^(64 - T0SZ) is a level-0 translation fault for every start level", () => {
    const e48 = env48();
    e48.set(T3, page(0x1000n));
    expect(e48.walk(0n)).toEqual(ok(0n + 0x1000n));
    expect(e48.walk(1n << 48n)).toEqual(fault("translation", 0, 0x04));
    expect(e48.walk(0xffffffffffffffffn)).toEqual(fault("translation", 0, 0x04));
    // 40-bit IPA, level-1 start (2 concatenated pages)
    const e40 = new Env({ t0sz: 24, sl0: 1, ps: 5, root: 0x80000000n });
    e40.set(0x80000000n + 8n * 1023n, block(0x40000000n));
    expect(e40.walk((1n << 40n) - 1n)).toEqual(ok(0x7fffffffn));
    expect(e40.walk(1n << 40n)).toEqual(fault("translation", 0, 0x04));
    // 44-bit config (T0SZ 20, level 0): Xen's software walk accepts GFN 2^33
    // (IPA 2^45, root index 64) but the hardware walk faults (FS §5.2).
    const e44 = new Env({ t0sz: 20, sl0: 2, ps: 4, root: ROOT });
    e44.set(ROOT + 64n * 8n, table(T1)).set(T1, block(0x80000000n));
    expect(e44.walk(1n << 45n)).toEqual(fault("translation", 0, 0x04));
  });
  it("invalid T0SZ/SL0/PARange combinations fault at level 0", () => {
    const bad = [
      { t0sz: 16, sl0: 3, ps: 5 }, // SL0 = 3 reserved (no FEAT_TTST)
      { t0sz: 16, sl0: 1, ps: 5 }, // 48 bits from level 1 would need 512 tables
      { t0sz: 20, sl0: 1, ps: 5 }, // 44 bits at level 1 (> 43)
      { t0sz: 25, sl0: 2, ps: 5 }, // 39 bits at level 0 (< 40)
      { t0sz: 34, sl0: 1, ps: 5 }, // 30 bits at level 1 (< 31)
      { t0sz: 43, sl0: 0, ps: 5 }, // 21 bits at level 2 (< 22)
      { t0sz: 29, sl0: 0, ps: 5 }, // 35 bits at level 2 (> 34)
      { t0sz: 15, sl0: 2, ps: 5 }, // 49 bits needs LPA2
      { t0sz: 20, sl0: 2, ps: 4, parange: 42 }, // level-0 start with PAMax < 44
    ];
    for (const c of bad) {
      const e = new Env();
      expect(e.configure({ ...c, root: ROOT }), JSON.stringify(c)).toBe(1);
      expect(e.walk(0n)).toEqual(fault("translation", 0, 0x04));
    }
  });
  it("boundary input sizes per start level are valid", () => {
    const good = [
      { t0sz: 24, sl0: 2 }, { t0sz: 16, sl0: 2 }, // level 0: 40, 48
      { t0sz: 33, sl0: 1 }, { t0sz: 21, sl0: 1 }, // level 1: 31, 43
      { t0sz: 42, sl0: 0 }, { t0sz: 30, sl0: 0 }, // level 2: 22, 34
      { t0sz: 20, sl0: 2, parange: 44 }, // 44-bit, PAMax 44
    ];
    for (const c of good) {
      const e = new Env();
      expect(e.configure({ ps: 5, ...c, root: ROOT }), JSON.stringify(c)).toBe(0);
      // the root table exists and is empty: translation fault at the start level
      const start = 2 - c.sl0;
      expect(e.walk(0n)).toEqual(fault("translation", start, 0x04 + start));
    }
  });
});

describe("access flag faults", () => {
  it("levels 1, 2, 3", () => {
    const e = env48()
      .set(T1 + 8n, block(0x80000000n) & ~0x400n)
      .set(T2 + 8n, block(0x200000n) & ~0x400n)
      .set(T3 + 8n, page(0x1000n) & ~0x400n);
    for (const a of [R, W, X]) {
      expect(e.walk(L1, a)).toEqual(fault("access_flag", 1, 0x09));
      expect(e.walk(L2, a)).toEqual(fault("access_flag", 2, 0x0a));
      expect(e.walk(L3, a)).toEqual(fault("access_flag", 3, 0x0b));
    }
  });
  it("AF is not checked on table descriptors", () => {
    const e = env48().set(T2 + 3n * 8n, table(0x7000n) & ~0x400n).set(0x7000n, page(0x5000n));
    expect(e.walk(3n * L2)).toEqual(ok(0x5000n));
  });
  it("access flag is checked before permission", () => {
    const e = env48().set(T3 + 8n, (page(0x1000n) & ~0x4c0n) | (1n << 54n));
    expect(e.walk(L3, W)).toEqual(fault("access_flag", 3, 0x0b));
  });
});

describe("permission faults", () => {
  // S2AP = 00, XN = 1: nothing allowed
  const none = (pa: bigint, lvl: number) => ((lvl === 3 ? page(pa) : block(pa)) & ~0xc0n) | (1n << 54n);
  const levels: [number, bigint, bigint, number][] = [
    [1, T1 + 8n, L1, 0x0d],
    [2, T2 + 8n, L2, 0x0e],
    [3, T3 + 8n, L3, 0x0f],
  ];
  for (const [lvl, slot, ipa, dfsc] of levels) {
    it(`level ${lvl}: read, write and execute`, () => {
      const pa = lvl === 1 ? 0x80000000n : lvl === 2 ? 0x200000n : 0x1000n;
      const e = env48().set(slot, none(pa, lvl));
      for (const a of [R, W, X]) expect(e.walk(ipa, a)).toEqual(fault("permission", lvl, dfsc));
      // S2AP = 01 (bit 6): read only
      e.set(slot, (lvl === 3 ? page(pa) : block(pa)) & ~0x80n);
      expect(e.walk(ipa, R)).toEqual(ok(pa));
      expect(e.walk(ipa, W)).toEqual(fault("permission", lvl, dfsc));
      // S2AP = 10 (bit 7): write only
      e.set(slot, (lvl === 3 ? page(pa) : block(pa)) & ~0x40n);
      expect(e.walk(ipa, W)).toEqual(ok(pa));
      expect(e.walk(ipa, R)).toEqual(fault("permission", lvl, dfsc));
    });
  }
  it("execute checks XN (bit 54) only; bit 53 ignored without FEAT_XNX", () => {
    const e = env48()
      .set(T3, (page(0x1000n) & ~0xc0n) | (1n << 53n)) // S2AP 00, XN[0] set, XN[1] clear
      .set(T3 + 8n, page(0x2000n) | (1n << 54n));
    expect(e.walk(0n, X)).toEqual(ok(0x1000n));
    expect(e.walk(0n, R)).toEqual(fault("permission", 3, 0x0f));
    expect(e.walk(L3, X)).toEqual(fault("permission", 3, 0x0f));
    expect(e.walk(L3, W)).toEqual(ok(0x2000n));
  });
  it("Xen's ram_ro and grant_map_ro entries (FS §4.4) refuse writes", () => {
    const e = env48().set(T3, 0x010000000000077fn | 0x3000n).set(T2 + 5n * 8n, 0x04c000000000077dn | 0xa00000n);
    expect(e.walk(0n, W)).toEqual(fault("permission", 3, 0x0f));
    expect(e.walk(0n, X)).toEqual(ok(0x3000n));
    expect(e.walk(5n * L2 + 1n, W)).toEqual(fault("permission", 2, 0x0e));
    expect(e.walk(5n * L2 + 1n, X)).toEqual(fault("permission", 2, 0x0e));
    expect(e.walk(5n * L2 + 1n, R)).toEqual(ok(0xa00001n));
  });
});

describe("address size faults", () => {
  const B40 = 1n << 40n;
  it("root above the output size: level 0", () => {
    const e = new Env();
    expect(e.configure({ t0sz: 24, sl0: 1, ps: 2, root: B40 })).toBe(2);
    expect(e.walk(0n)).toEqual(fault("address_size", 0, 0x00));
    // out-of-range IPA is still a translation fault
    expect(e.walk(B40)).toEqual(fault("translation", 0, 0x04));
    // same root, 48-bit output: fine
    expect(e.configure({ t0sz: 24, sl0: 1, ps: 5, root: B40 })).toBe(0);
    expect(e.walk(0n)).toEqual(fault("translation", 1, 0x05));
  });
  it("next-table address at levels 0, 1, 2", () => {
    const e = env48({ ps: 2 })
      .set(ROOT + 8n, table(B40))
      .set(T1 + 8n, table(B40 + 0x1000n))
      .set(T2 + 8n, table((1n << 47n) | 0x1000n));
    expect(e.walk(1n << 39n)).toEqual(fault("address_size", 0, 0x00));
    expect(e.walk(L1)).toEqual(fault("address_size", 1, 0x01));
    expect(e.walk(L2)).toEqual(fault("address_size", 2, 0x02));
  });
  it("output address at levels 1, 2, 3", () => {
    const e = env48({ ps: 2 })
      .set(T1 + 8n, block(B40))
      .set(T2 + 8n, block(B40 | 0x200000n))
      .set(T3 + 8n, page(B40 | 0x1000n))
      .set(T3 + 16n, page(B40 - 0x1000n));
    expect(e.walk(L1)).toEqual(fault("address_size", 1, 0x01));
    expect(e.walk(L2)).toEqual(fault("address_size", 2, 0x02));
    expect(e.walk(L3)).toEqual(fault("address_size", 3, 0x03));
    expect(e.walk(2n * L3 + 0xfffn)).toEqual(ok(B40 - 1n));
  });
  it("address-size check comes after the valid bit and before AF", () => {
    const e = env48({ ps: 2 }).set(T3 + 8n, page(B40) & ~0x401n).set(T3 + 16n, page(B40) & ~0x400n);
    expect(e.walk(L3)).toEqual(fault("translation", 3, 0x07));
    expect(e.walk(2n * L3)).toEqual(fault("address_size", 3, 0x03));
  });
  it("output size = PS capped by PARange", () => {
    const root = 0x80000000n; // 40-bit IPA, level-1 start (valid with PAMax < 44)
    const cfg = { t0sz: 24, sl0: 1, root };
    const e = new Env({ ...cfg, ps: 5, parange: 40 });
    e.set(root + 8n, block(B40));
    expect(e.walk(L1 + 9n)).toEqual(fault("address_size", 1, 0x01));
    e.configure({ ...cfg, ps: 5, parange: 44 });
    expect(e.walk(L1 + 9n)).toEqual(ok(B40 + 9n));
    e.configure({ ...cfg, ps: 2, parange: 44 });
    expect(e.walk(L1 + 9n)).toEqual(fault("address_size", 1, 0x01));
    e.configure({ ...cfg, ps: 7, parange: 40 }); // PS 7 reserved -> PARange
    expect(e.walk(L1 + 9n)).toEqual(fault("address_size", 1, 0x01));
    e.configure({ ...cfg, ps: 7, parange: 42 });
    expect(e.walk(L1 + 9n)).toEqual(ok(B40 + 9n));
  });
  it("with a 48-bit output size, descriptor bits [51:48] are ignored (PS = 6 acts as 48)", () => {
    const e = env48({ ps: 6, parange: 52 })
      .set(T2 + 8n, table(T3) | (0xfn << 48n))
      .set(T3 + 8n, page((1n << 47n) | 0x5000n) | (1n << 50n));
    expect(e.walk(L2 + L3 + 0x7n)).toEqual(ok((1n << 47n) | 0x5007n));
    expect(e.walk(L2 + 0x8n)).toEqual(fault("translation", 3, 0x07));
  });
});

describe("concatenated level-1 roots", () => {
  it("40-bit IPA: 2 pages, IPA bit 39 selects the page", () => {
    const root = 0x80000000n;
    const e = new Env({ t0sz: 24, sl0: 1, ps: 2, root });
    e.set(root + 5n * 8n, block(0x40000000n)).set(root + 0x1000n + 5n * 8n, block(0xc0000000n));
    expect(e.walk(5n * L1 + 0x10n)).toEqual(ok(0x40000010n));
    expect(e.walk((1n << 39n) + 5n * L1 + 0x10n)).toEqual(ok(0xc0000010n));
    expect(e.walk((1n << 39n) + 6n * L1)).toEqual(fault("translation", 1, 0x05));
  });
  it("42-bit IPA: 8 pages, IPA bits [41:39] select the page", () => {
    const root = 0x80000000n;
    const e = new Env({ t0sz: 22, sl0: 1, ps: 3, root });
    for (let k = 0n; k < 8n; k++) e.set(root + k * 0x1000n + 3n * 8n, block((k + 1n) << 30n));
    for (let k = 0n; k < 8n; k++) expect(e.walk((k << 39n) + 3n * L1 + 0x123n)).toEqual(ok(((k + 1n) << 30n) + 0x123n));
    expect(e.walk(1n << 42n)).toEqual(fault("translation", 0, 0x04));
  });
  it("misaligned root: the bits below the concatenated size (and CnP) are ignored", () => {
    const base = 0x80000000n;
    const e = new Env({ t0sz: 22, sl0: 1, ps: 3, root: base + 0x3000n + 1n }); // 8-page root
    e.set(base + 0x1000n + 3n * 8n, block(0x40000000n));
    expect(e.walk((1n << 39n) + 3n * L1)).toEqual(ok(0x40000000n));
    // a 1-page level-0 root: the low 12 bits are ignored
    const f = new Env({ t0sz: 16, sl0: 2, ps: 5, root: ROOT + 0xff8n });
    f.set(ROOT + 8n, table(T1)).set(T1, block(0x40000000n));
    expect(f.walk(1n << 39n)).toEqual(ok(0x40000000n));
  });
});

describe("batch interface", () => {
  it("batched results equal single walks, and buffers survive growth", () => {
    const e = env48().set(T3 + 8n, page(0x5000n)).set(T2 + 8n, block(0x400000n) & ~0x80n);
    const ipas = [L3 + 1n, 2n * L3, L2 + 3n, 1n << 48n, L1];
    const acc = [R, R, W, X, R];
    const first = e.w.walkBatch(ipas, acc);
    expect(first).toEqual(ipas.map((ipa, i) => e.w.walkRaw(ipa, acc[i])));
    expect(first.map(decodeRawResult)).toEqual([
      ok(0x5001n),
      fault("translation", 3, 0x07),
      fault("permission", 2, 0x0e),
      fault("translation", 0, 0x04),
      fault("translation", 1, 0x05),
    ]);
    const oldPtr = e.w.ex.walk_batch_ipa_ptr();
    const big = 5000;
    const v = e.w.reserve(big);
    expect(e.w.ex.walk_batch_ipa_ptr()).not.toBe(oldPtr);
    for (let i = 0; i < big; i++) {
      v.ipa[i] = ipas[i % 5];
      v.access[i] = acc[i % 5];
    }
    expect(e.w.runBatch(big)).toBe(4000);
    for (let i = 0; i < big; i++) expect(v.out[i]).toBe(first[i % 5]);
  });
});
