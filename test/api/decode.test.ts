import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  decodePageInfo, encodePageInfo, decodeDescriptor, encodeDescriptor, decodeCountInfo, encodeCountInfo,
  decodeTypeInfo, encodeTypeInfo, countInfoFlagNames, descriptorKind, pageInfoSize, type Layout,
} from "../../src/inspect/decode.js";
import { XenmmArgumentError } from "../../src/api/errors.js";

const layouts: Layout[] = [];
for (const arch of ["arm64", "arm32"] as const) for (const revision of ["pre", "harden", "gfn", "head"] as const) layouts.push({ arch, revision });

describe("page_info decode/encode", () => {
  for (const layout of layouts) {
    it(`round-trips any bytes (${layout.arch}/${layout.revision})`, () => {
      const size = pageInfoSize(layout.arch);
      fc.assert(fc.property(fc.uint8Array({ minLength: size, maxLength: size }), fc.boolean(), (bytes, free) => {
        // bias half the cases to state=free so both union arms are exercised
        if (free) { const hi = layout.arch === "arm64" ? 22 : 10; bytes[hi] |= 0x01; bytes[hi] |= 0x80; bytes[hi + 1] |= 0x01; }
        const rec = decodePageInfo(bytes, layout);
        expect(encodePageInfo(rec, layout)).toEqual(bytes);
        // and the object survives encode -> decode
        expect(decodePageInfo(encodePageInfo(rec, layout), layout)).toEqual(rec);
      }), { numRuns: 400 });
    });
  }

  it("names the flags of a shared xenheap page (FS 3.10)", () => {
    const L: Layout = { arch: "arm64", revision: "head" };
    expect(countInfoFlagNames(0xC000000000000001n, L)).toEqual(["PGC_allocated", "PGC_xen_heap", "PGC_state_inuse", "count=1"]);
    const t = decodeTypeInfo(0xBFFFFFFFFFFFFFFFn, L);
    expect(t).toEqual({ type: "PGT_writable_page", count: 1n, gfn: null, otherBits: 0n });
    expect(encodeTypeInfo(t, L)).toBe(0xBFFFFFFFFFFFFFFFn);
    expect(decodeTypeInfo(0x8000000000000001n, { arch: "arm64", revision: "pre" })).toEqual({ type: "PGT_writable_page", count: 1n, otherBits: 0n });
    expect(decodeTypeInfo(0x3FFFFFFFn, { arch: "arm32", revision: "gfn" })).toEqual({ type: "PGT_none", count: 1n, gfn: null, otherBits: 0n });
    expect(decodeTypeInfo(0x20001234n, { arch: "arm32", revision: "gfn" }).gfn).toBe(0x1234n);
  });

  it("need_scrub: own bit at HEAD, alias of allocated before", () => {
    const head = decodeCountInfo(0x0980000000000000n, { arch: "arm64", revision: "head" });
    expect(head).toMatchObject({ PGC_need_scrub: true, PGC_allocated: false, state: "free" });
    const pre = decodeCountInfo(0x81800000n, { arch: "arm32", revision: "pre" });
    expect(pre).toMatchObject({ PGC_need_scrub: true, PGC_allocated: true, state: "free", count: 0n });
    expect(countInfoFlagNames(0x81800000n, { arch: "arm32", revision: "pre" })).toContain("PGC_need_scrub");
    expect(encodeCountInfo(pre, { arch: "arm32", revision: "pre" })).toBe(0x81800000n);
  });

  it("validates", () => {
    expect(() => decodePageInfo(new Uint8Array(10), { arch: "arm64", revision: "head" })).toThrow(XenmmArgumentError);
    expect(() => decodeCountInfo(1n, { arch: "x86", revision: "head" } as any)).toThrow(/layout.arch/);
    expect(() => decodeCountInfo(1n << 40n, { arch: "arm32", revision: "head" })).toThrow(/countInfo/);
    const ci = decodeCountInfo(0n, { arch: "arm64", revision: "head" });
    expect(() => encodeCountInfo({ ...ci, count: 1n << 60n }, { arch: "arm64", revision: "head" })).toThrow(/countInfo.count/);
    expect(() => encodeTypeInfo({ type: "PGT_none", count: 0n, otherBits: 0n }, { arch: "arm64", revision: "gfn" })).toThrow(/typeInfo.gfn/);
  });
});

describe("stage-2 descriptor decode/encode", () => {
  it("round-trips any 64-bit value", () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (raw) => {
      const d = decodeDescriptor(raw);
      expect(encodeDescriptor(d)).toBe(raw);
      expect(decodeDescriptor(encodeDescriptor(d))).toEqual(d);
    }), { numRuns: 2000 });
  });
  it("decodes Xen's ram_rw page and table descriptors (FS 4.4)", () => {
    const d = decodeDescriptor(0x00800000400007ffn);
    expect(d).toMatchObject({ valid: true, table: true, mattr: 0xF, read: true, write: true, sh: 3, af: true, mfn: 0x40000n, xn: false, type: 1, typeName: "p2m_ram_rw" });
    expect(descriptorKind(0x00800000400007ffn, 3)).toBe("page");
    expect(descriptorKind(0x00800000400007fdn, 2)).toBe("block");
    expect(descriptorKind(0x00800000400007ffn, 1)).toBe("table");
    expect(descriptorKind(0n, 1)).toBe("invalid");
    const g = decodeDescriptor(0x0440000040000ef7n | (8n << 55n));
    expect(g.typeName).toBe("p2m_grant_map_rw");
  });
  it("validates", () => {
    expect(() => decodeDescriptor(-1n)).toThrow(XenmmArgumentError);
    expect(() => encodeDescriptor({ ...decodeDescriptor(0n), mfn: 1n << 36n })).toThrow(/descriptor.mfn/);
  });
});

describe("count_info flag names per revision", () => {
  it("names bit 61 PGC_reserved in the 2022 trees and PGC_static at head", () => {
    for (const revision of ["pre", "harden", "gfn"] as const)
      expect(countInfoFlagNames(0x2000000000000001n, { arch: "arm64", revision })).toContain("PGC_reserved");
    expect(countInfoFlagNames(0x2000000000000001n, { arch: "arm64", revision: "head" })).toContain("PGC_static");
  });
});
