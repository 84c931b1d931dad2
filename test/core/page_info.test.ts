// Frame table layout and the PGC_* / PGT_* constants (fact sheet §0.3, 1.1, 2.1, 2.3).
import { describe, it, expect } from "vitest";
import { newCore, ARM64, ARM32, hex } from "./helpers.js";

describe("struct page_info layout", () => {
  it("is 56 bytes on arm64 and 32 on arm32, records contiguous from frametable_base_pdx", async () => {
    for (const [arch, size] of [[ARM64, 56], [ARM32, 32]] as const) {
      const c = await newCore(arch, "gfn");
      expect(c.page_info_size()).toBe(size);
      const base = c.frame_table_ptr();
      expect(c.page_info_ptr(0x40000n)).toBe(base);
      expect(c.page_info_ptr(0x40001n) - base).toBe(size);
      expect(c.page_info_ptr(0x40100n) - base).toBe(0x100 * size);
    }
  });

  it("holds count_info at +16/+8 and type_info at +24/+12, little-endian", async () => {
    for (const [arch, offC, offT, w] of [[ARM64, 16, 24, 8], [ARM32, 8, 12, 4]] as const) {
      const c = await newCore(arch, "gfn");
      const mfn = c.alloc_xenheap_pages(0, 0);
      const p = c.page_info_ptr(mfn);
      const dv = new DataView(c.memory.buffer);
      const rd = (o: number) => (w === 8 ? dv.getBigUint64(p + o, true) : BigInt(dv.getUint32(p + o, true)));
      expect(rd(offC)).toBe(c.count_info(mfn));
      expect(rd(offT)).toBe(c.type_info(mfn));
      // A xenheap page fresh from the allocator (gfn revision): type_info = PGT_TYPE_INFO_INITIALIZER.
      expect(rd(offT)).toBe(arch === ARM64 ? 0x1FFFFFFFFFFFFFFFn : 0x1FFFFFFFn);
      // tlbflush_timestamp is 0 on Arm; pad is 0.
      expect(dv.getUint32(p + (arch === ARM64 ? 40 : 20), true)).toBe(0);
      expect(dv.getBigUint64(p + (arch === ARM64 ? 48 : 24), true)).toBe(0n);
    }
  });

  it("links free chunks with frame-table virtual addresses (32 GiB base on arm64, 0x02000000 on arm32)", async () => {
    const c = await newCore(ARM64, "gfn");
    expect(c.page_va(0x40000n)).toBe(0x800000000n);
    expect(c.page_va(0x40002n)).toBe(0x800000000n + 112n);
    const c32 = await newCore(ARM32, "gfn");
    expect(c32.page_va(0x40003n)).toBe(0x02000000n + 96n);
  });
});

describe("count_info flags", () => {
  it("match the fact sheet on arm64", async () => {
    const c = await newCore(ARM64, "gfn");
    expect(hex(c.PGC_allocated())).toBe("0x8000000000000000");
    expect(hex(c.PGC_xen_heap())).toBe("0x4000000000000000");
    expect(hex(c.PGC_static())).toBe("0x2000000000000000");
    expect(hex(c.PGC_broken())).toBe("0x200000000000000");
    expect(hex(c.PGC_state())).toBe("0x180000000000000");
    expect(hex(c.PGC_state_offlining())).toBe("0x80000000000000");
    expect(hex(c.PGC_state_offlined())).toBe("0x100000000000000");
    expect(hex(c.PGC_state_free())).toBe("0x180000000000000");
    expect(hex(c.PGC_extra())).toBe("0x40000000000000");
    expect(hex(c.PGC_count_mask())).toBe("0x3FFFFFFFFFFFFF");
  });
  it("match the fact sheet on arm32", async () => {
    const c = await newCore(ARM32, "gfn");
    expect(hex(c.PGC_allocated())).toBe("0x80000000");
    expect(hex(c.PGC_xen_heap())).toBe("0x40000000");
    expect(hex(c.PGC_static())).toBe("0x20000000");
    expect(hex(c.PGC_state_free())).toBe("0x1800000");
    expect(hex(c.PGC_extra())).toBe("0x400000");
    expect(hex(c.PGC_count_mask())).toBe("0x3FFFFF");
  });
  it("PGC_need_scrub aliases PGC_allocated before head and is bit 59/27 at head", async () => {
    for (const rev of ["pre", "harden", "gfn"] as const) {
      expect((await newCore(ARM64, rev)).PGC_need_scrub()).toBe(0x8000000000000000n);
      expect((await newCore(ARM32, rev)).PGC_need_scrub()).toBe(0x80000000n);
    }
    expect((await newCore(ARM64, "head")).PGC_need_scrub()).toBe(0x0800000000000000n);
    expect((await newCore(ARM32, "head")).PGC_need_scrub()).toBe(0x08000000n);
  });
});

describe("type_info layout", () => {
  it("pre/harden: 62/30-bit type count, no GFN field, initializer 0", async () => {
    for (const rev of ["pre", "harden"] as const) {
      const c = await newCore(ARM64, rev);
      expect(hex(c.PGT_writable_page())).toBe("0x8000000000000000");
      expect(hex(c.PGT_count_mask())).toBe("0x3FFFFFFFFFFFFFFF");
      expect(c.PGT_TYPE_INFO_INITIALIZER()).toBe(0n);
      const c32 = await newCore(ARM32, rev);
      expect(hex(c32.PGT_count_mask())).toBe("0x3FFFFFFF");
    }
  });
  it("gfn/head: 2-bit count at 61-62 / 29-30, GFN in 0-60 / 0-28", async () => {
    for (const rev of ["gfn", "head"] as const) {
      const c = await newCore(ARM64, rev);
      expect(hex(c.PGT_count_mask())).toBe("0x6000000000000000");
      expect(c.PGT_gfn_width()).toBe(61);
      expect(hex(c.PGT_gfn_mask())).toBe("0x1FFFFFFFFFFFFFFF");
      expect(c.PGT_INVALID_XENHEAP_GFN()).toBe(c.PGT_gfn_mask());
      expect(c.PGT_TYPE_INFO_INITIALIZER()).toBe(c.PGT_gfn_mask());
      const c32 = await newCore(ARM32, rev);
      expect(hex(c32.PGT_count_mask())).toBe("0x60000000");
      expect(c32.PGT_gfn_width()).toBe(29);
      expect(hex(c32.PGT_gfn_mask())).toBe("0x1FFFFFFF");
      expect(c32.PGT_TYPE_INFO_INITIALIZER()).toBe(0x1FFFFFFFn);
    }
  });
});
