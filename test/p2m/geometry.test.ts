import { describe, it, expect } from "vitest";
import { machine, EINVAL, EBUSY, T } from "./helpers.js";

const ROWS = [
  // bits, t0sz, order, sl0, level, vtcr8, vtcr16, max gfn accepted (exclusive)
  [32, 32, 0, 1, 1, 0x80003560, 0x80083560, 1n << 27n],
  [36, 28, 0, 1, 1, 0x8001355c, 0x8009355c, 1n << 27n],
  [40, 24, 1, 1, 1, 0x80023558, 0x800a3558, 1n << 28n],
  [42, 22, 3, 1, 1, 0x80033556, 0x800b3556, 1n << 30n],
  [44, 20, 0, 2, 0, 0x80043594, 0x800c3594, 1n << 36n],
  [48, 16, 0, 2, 0, 0x80053590, 0x800d3590, 1n << 36n],
] as const;

function hdr(m: Awaited<ReturnType<typeof machine>>, off: number): number {
  const base = m.core.walk_hdr();
  return new Uint32Array(m.core.memory.buffer, base + off, 1)[0];
}

describe("setup_virt_paging (FS §5.2)", () => {
  for (const [bits, t0sz, order, sl0, level, v8, v16, lim] of ROWS) {
    it(`arm64 ${bits}-bit IPA`, async () => {
      for (const vmid16 of [false, true]) {
        const m = await machine({ ipaBits: bits, vmid16 });
        expect(m.core.p2m_vtcr() >>> 0).toBe(vmid16 ? v16 : v8);
        expect(hdr(m, 80)).toBe(bits);            // H_IPA_BITS
        expect(hdr(m, 84)).toBe(vmid16 ? 16 : 8); // H_VMID_BITS
        expect(hdr(m, 96)).toBe(level);           // H_ROOT_LEVEL
        expect(hdr(m, 100)).toBe(order);          // H_ROOT_ORDER
        expect(hdr(m, 104)).toBe(t0sz);
        expect(hdr(m, 108)).toBe(sl0);
        // root-page range check is the only GFN bound
        expect(m.domain(1)).toBe(0);
        expect(m.core.p2m_set_entry(1, lim - 1n, 1n, 0x100n, T.ram_rw, 7)).toBe(0);
        expect(m.core.p2m_set_entry(1, lim, 1n, 0x100n, T.ram_rw, 7)).toBe(EINVAL);
        expect(m.core.p2m_set_entry(1, lim, 1n, m.INVALID, T.invalid, 7)).toBe(EINVAL);
        expect(m.core.p2m_max_mapped_gfn(1)).toBe(lim - 1n);
        // root is naturally aligned, 2^order pages
        const root = m.core.p2m_root_mfn(1);
        expect(root % (1n << BigInt(order))).toBe(0n);
        expect(m.core.p2m_vttbr(1)).toBe((root << 12n) | (1n << 48n));
      }
    });
  }

  it("44-bit accepts GFN 2^33 (beyond T0SZ) as on real Xen", async () => {
    const m = await machine({ ipaBits: 44 });
    m.domain(1);
    expect(m.core.p2m_set_entry(1, 1n << 33n, 1n, 0x42n, T.grant_map_rw, 7)).toBe(0);
    expect(m.lookup(1, 1n << 33n).mfn).toBe(0x42n);
    expect(m.core.p2m_set_entry(1, 1n << 52n, 1n, 0x42n, T.grant_map_rw, 7)).toBe(EINVAL);
  });

  it("unsupported sizes are refused", async () => {
    const m = await machine();
    for (const b of [0, 31, 39, 52, 64]) expect(m.core.p2m_geometry_init(b, false)).toBe(EINVAL);
  });

  it("arm32: 40-bit, level-1 root of 2 pages, VTCR 0x80003558; 32-bit only at HEAD", async () => {
    for (const rev of ["pre", "head"] as const) {
      const m = await machine({ arch: "arm32", rev, ramStart: 0x80000n, ramFrames: 0x10000n });
      expect(m.core.p2m_vtcr() >>> 0).toBe(0x80003558);
      expect(hdr(m, 96)).toBe(1);
      expect(hdr(m, 100)).toBe(1);
      expect(hdr(m, 80)).toBe(40);
      expect(hdr(m, 84)).toBe(8);
      expect(m.core.p2m_geometry_init(40, true)).toBe(0);
      expect(m.core.p2m_vtcr() >>> 0).toBe(0x80003558); // VMID always 8-bit
      expect(m.core.p2m_geometry_init(36, false)).toBe(EINVAL);
      const r32 = m.core.p2m_geometry_init(32, false);
      if (rev === "pre") expect(r32).toBe(EINVAL);
      else {
        expect(r32).toBe(0);
        expect(m.core.p2m_vtcr() >>> 0).toBe(0x80003540);
        expect(hdr(m, 80)).toBe(32);
        expect(hdr(m, 100)).toBe(0);
      }
    }
  });

  it("arm32 GFN range is 2^28 and table walks work", async () => {
    const m = await machine({ arch: "arm32", ramStart: 0x80000n, ramFrames: 0x10000n });
    expect(m.domain(1)).toBe(0);
    expect(m.core.p2m_set_entry(1, (1n << 28n) - 1n, 1n, 0x1234n, T.ram_rw, 7)).toBe(0);
    expect(m.lookup(1, (1n << 28n) - 1n)).toEqual({ mfn: 0x1234n, t: 1, a: 7, order: 0, valid: 1 });
    expect(m.core.p2m_set_entry(1, 1n << 28n, 1n, 0x1234n, T.ram_rw, 7)).toBe(EINVAL);
    expect(m.lookup(1, 0x10n).mfn).toBe(0xffffffffn);
  });
});

describe("VMIDs (FS §5.3)", () => {
  it("first zero bit, 0 reserved, -EBUSY when exhausted, freed on teardown", async () => {
    const m = await machine({ ramFrames: 0x10000n });
    expect(m.domain(1)).toBe(0);
    expect(m.core.p2m_vmid(1)).toBe(1);
    expect(m.domain(2)).toBe(0);
    expect(m.core.p2m_vmid(2)).toBe(2);
    expect(m.core.p2m_vttbr(2) >> 48n).toBe(2n);
    m.core.p2m_teardown(1);
    expect(m.core.p2m_vmid_in_use(1)).toBe(false);
    expect(m.domain(3)).toBe(0);
    expect(m.core.p2m_vmid(3)).toBe(1);
    // 8-bit: 255 usable VMIDs. Re-initialising slot 4 leaks one each time.
    let n = 2;
    for (;;) {
      const rc = m.domain(4);
      if (rc !== 0) { expect(rc).toBe(EBUSY); break; }
      n++;
    }
    expect(n).toBe(255);
  });
});
