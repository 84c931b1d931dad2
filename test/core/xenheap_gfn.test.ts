// share_xen_page_with_guest and the xenheap GFN in type_info (fact sheet §2.4, 3.10).
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { newCore, ARM64, ARM32, hex } from "./helpers.js";

async function sharedPage(arch: 0 | 1, rev: "pre" | "harden" | "gfn" | "head", ro = false) {
  const c = await newCore(arch, rev);
  c.domain_slot_init(1, 1, 0, 1024n);
  const mfn = c.alloc_xenheap_pages(0, 0);
  c.share_xen_page_with_guest(mfn, 1, ro ? 1 : 0);
  return { c, mfn };
}

describe("share_xen_page_with_guest", () => {
  it("gives the fact sheet's words for a fresh SHARE_rw page", async () => {
    for (const rev of ["pre", "harden"] as const) {
      let { c, mfn } = await sharedPage(ARM64, rev);
      expect(hex(c.count_info(mfn))).toBe("0xC000000000000001");
      expect(hex(c.type_info(mfn))).toBe("0x8000000000000001");
      ({ c, mfn } = await sharedPage(ARM32, rev));
      expect(hex(c.count_info(mfn))).toBe("0x80000001");
      expect(hex(c.type_info(mfn))).toBe("0x80000001");
    }
    for (const rev of ["gfn", "head"] as const) {
      let { c, mfn } = await sharedPage(ARM64, rev);
      expect(hex(c.count_info(mfn))).toBe("0xC000000000000001");
      expect(hex(c.type_info(mfn))).toBe("0xBFFFFFFFFFFFFFFF");
      ({ c, mfn } = await sharedPage(ARM32, rev));
      expect(hex(c.count_info(mfn))).toBe("0x80000001");
      expect(hex(c.type_info(mfn))).toBe("0xBFFFFFFF");
    }
  });

  it("gives the fact sheet's words for SHARE_ro", async () => {
    expect(hex((await sharedPage(ARM64, "pre", true)).c.type_info((await sharedPage(ARM64, "pre", true)).mfn))).toBe("0x1");
    const g = await sharedPage(ARM64, "gfn", true);
    expect(hex(g.c.type_info(g.mfn))).toBe("0x3FFFFFFFFFFFFFFF");
    const g32 = await sharedPage(ARM32, "head", true);
    expect(hex(g32.c.type_info(g32.mfn))).toBe("0x3FFFFFFF");
  });

  it("counts the page in xenheap_pages and takes one domain reference", async () => {
    const { c, mfn } = await sharedPage(ARM64, "gfn");
    expect(c.domain_xenheap_pages(1)).toBe(1n);
    expect(c.domain_refcnt(1)).toBe(1);
    expect(c.domain_xenpage_count(1)).toBe(1);
    expect(c.page_owner(mfn)).toBe(1);
    const m2 = c.alloc_xenheap_pages(0, 0);
    c.share_xen_page_with_guest(m2, 1, 0);
    expect(c.domain_xenheap_pages(1)).toBe(2n);
    expect(c.domain_refcnt(1)).toBe(1);
    // Sharing with the owner again changes nothing.
    const before = c.type_info(m2);
    c.share_xen_page_with_guest(m2, 1, 1);
    expect(c.type_info(m2)).toBe(before);
  });
});

describe("page_set_xenheap_gfn / page_get_xenheap_gfn", () => {
  it("stores GFN 0x80000 as 0xA000000000000000 | 0x80000 and clears back to all ones", async () => {
    const { c, mfn } = await sharedPage(ARM64, "gfn");
    expect(c.page_get_xenheap_gfn(mfn)).toBe(0xFFFFFFFFFFFFFFFFn); // INVALID_GFN
    c.page_set_xenheap_gfn(mfn, 0x80000n);
    expect(hex(c.type_info(mfn))).toBe("0xA000000000080000");
    expect(c.page_get_xenheap_gfn(mfn)).toBe(0x80000n);
    c.page_set_xenheap_gfn(mfn, 0xFFFFFFFFFFFFFFFFn);
    expect(hex(c.type_info(mfn))).toBe("0xBFFFFFFFFFFFFFFF");
    expect(c.count_info(mfn)).toBe(0xC000000000000001n);
  });

  it("uses 0xFFFFFFFF as INVALID_GFN on arm32", async () => {
    const { c, mfn } = await sharedPage(ARM32, "head");
    expect(c.page_get_xenheap_gfn(mfn)).toBe(0xFFFFFFFFn);
    c.page_set_xenheap_gfn(mfn, 0x40200n);
    expect(hex(c.type_info(mfn))).toBe("0xA0040200");
    c.page_set_xenheap_gfn(mfn, 0xFFFFFFFFn);
    expect(hex(c.type_info(mfn))).toBe("0xBFFFFFFF");
  });

  it("faults loudly on a page that is not a xenheap page", async () => {
    const c = await newCore(ARM64, "gfn");
    c.domain_slot_init(1, 1, 0, 1024n);
    const m = c.alloc_domheap_pages(1, 0, 0);
    expect(() => c.page_set_xenheap_gfn(m, 5n)).toThrow(/unreachable/);
    expect(c.last_error() >>> 24).toBe(1); // BUG_ASSERT
  });

  it("round-trips any GFN and never touches the type bit or the count (property)", async () => {
    for (const arch of [ARM64, ARM32] as const) {
      const c = await newCore(arch, "gfn");
      const mfn = c.alloc_xenheap_pages(0, 0);
      const mask = c.PGT_gfn_mask();
      const width = arch === ARM64 ? 64 : 32;
      fc.assert(fc.property(
        fc.bigInt({ min: 0n, max: (1n << BigInt(width)) - 1n }),
        fc.bigInt({ min: 0n, max: mask - 1n }),
        (word, gfn) => {
          c.set_type_info(mfn, word);
          c.page_set_xenheap_gfn(mfn, gfn);
          const after = c.type_info(mfn);
          expect(after & ~mask & ((1n << BigInt(width)) - 1n)).toBe(word & ~mask);
          expect(c.page_get_xenheap_gfn(mfn)).toBe(gfn);
          c.page_set_xenheap_gfn(mfn, (1n << BigInt(width)) - 1n);
          expect(c.type_info(mfn)).toBe((word & ~mask) | mask);
        }), { numRuns: 300 });
    }
  });
});
