// The buddy heap, domheap/xenheap and references (fact sheet §3).
import { describe, it, expect } from "vitest";
import { newCore, ARM64, ARM32, hex } from "./helpers.js";

const INVALID64 = 0xFFFFFFFFFFFFFFFFn;

describe("alloc_heap_pages / free_heap_pages", () => {
  it("allocates, frees and reallocates every order 0..18, restoring the free count", async () => {
    const c = await newCore(ARM64, "gfn", { frames: 0x80000n });
    const start = c.total_avail_pages();
    expect(start).toBe(0x80000n);
    for (let order = 0; order <= 18; order++) {
      const m = c.alloc_heap_pages(1, 36, order, 0);
      expect(m).not.toBe(INVALID64);
      expect(m % (1n << BigInt(order))).toBe(0n); // naturally aligned
      expect(c.total_avail_pages()).toBe(start - (1n << BigInt(order)));
      expect(c.count_info(m)).toBe(0n);           // state inuse, count 0
      expect(c.type_info(m)).toBe(0x1FFFFFFFFFFFFFFFn); // initializer at gfn
      c.free_heap_pages(m, order, false);
      expect(c.total_avail_pages()).toBe(start);
      expect(c.count_info(m)).toBe(c.PGC_state_free());
      const again = c.alloc_heap_pages(1, 36, order, 0);
      expect(again).toBe(m); // merged back, same chunk handed out again
      c.free_heap_pages(again, order, false);
    }
    expect(c.total_avail_pages()).toBe(start);
  });

  it("refuses orders above MAX_ORDER and returns INVALID_MFN when memory runs out", async () => {
    const c = await newCore(ARM64, "pre", { frames: 0x400n });
    expect(c.alloc_heap_pages(1, 36, 19, 0)).toBe(INVALID64);
    const got: bigint[] = [];
    for (;;) { const m = c.alloc_heap_pages(1, 36, 0, 0); if (m === INVALID64) break; got.push(m); }
    expect(got.length).toBe(0x400);
    expect(c.total_avail_pages()).toBe(0n);
    expect(c.alloc_domheap_pages(0, 0, 0)).toBe(INVALID64);
    for (const m of got) c.free_heap_pages(m, 0, false);
    expect(c.total_avail_pages()).toBe(0x400n);
    // Fully merged again: the whole 1024-page bank is one order-10 chunk.
    expect(c.alloc_heap_pages(1, 36, 10, 0)).toBe(0x40000n);
  });

  it("hands out the upper half when splitting, so the first page comes from the top of the zone", async () => {
    const c = await newCore(ARM64, "gfn", { frames: 0x80000n });
    expect(c.alloc_heap_pages(1, 36, 0, 0)).toBe(0xBFFFFn);
    expect(c.alloc_heap_pages(1, 36, 0, 0)).toBe(0xBFFFEn);
    expect(c.alloc_heap_pages(1, 36, 3, 0)).toBe(0xBFFF0n);
  });

  it("writes type_info 0 before gfn and the initializer from gfn on", async () => {
    expect((await newCore(ARM64, "pre")).type_info((await newCore(ARM64, "pre")).alloc_heap_pages(1, 36, 0, 0))).toBe(0n);
    const c = await newCore(ARM32, "head");
    expect(hex(c.type_info(c.alloc_heap_pages(1, 28, 0, 0)))).toBe("0x1FFFFFFF");
  });

  it("marks a scrub-needing free page with the need_scrub bit: bit 63 (aliasing PGC_allocated) before head", async () => {
    for (const [rev, bit] of [["gfn", 0x8000000000000000n], ["head", 0x0800000000000000n]] as const) {
      const c = await newCore(ARM64, rev);
      const m = c.alloc_heap_pages(1, 36, 0, 0);
      c.free_heap_pages(m, 0, true);
      expect(c.count_info(m)).toBe(c.PGC_state_free() | bit);
      // Reallocation test-and-clears it.
      const again = c.alloc_heap_pages(1, 36, 0, 0x100 /* MEMF_no_scrub */);
      expect(again).toBe(m);
      expect(c.count_info(again)).toBe(0n);
    }
  });
});

describe("domheap, assign_pages and references", () => {
  it("assign_pages sets owner, PGC_allocated | 1 and tot_pages; the last put_page frees", async () => {
    const c = await newCore(ARM64, "gfn");
    const start = c.total_avail_pages();
    c.domain_slot_init(1, 1, 0, 16n);
    const m = c.alloc_domheap_pages(1, 2, 0);
    expect(c.domain_tot_pages(1)).toBe(4n);
    expect(c.domain_refcnt(1)).toBe(1);
    for (let i = 0n; i < 4n; i++) {
      expect(hex(c.count_info(m + i))).toBe("0x8000000000000001");
      expect(c.page_owner(m + i)).toBe(1);
    }
    expect(c.get_page(m, 1)).toBe(true);
    expect(c.count_info(m)).toBe(0x8000000000000002n);
    expect(c.get_page(m, 2)).toBe(false);        // wrong owner: reference dropped again
    expect(c.count_info(m)).toBe(0x8000000000000002n);
    c.put_page_alloc_ref(m);
    expect(c.count_info(m)).toBe(1n);
    c.put_page(m);                               // last reference: back to the heap
    expect(c.count_info(m)).toBe(c.PGC_state_free());
    expect(c.domain_tot_pages(1)).toBe(3n);
    for (let i = 1n; i < 4n; i++) { expect(c.get_page(m + i, 1)).toBe(true); c.put_page_alloc_ref(m + i); c.put_page(m + i); }
    expect(c.domain_tot_pages(1)).toBe(0n);
    expect(c.domain_refcnt(1)).toBe(0);
    expect(c.total_avail_pages()).toBe(start);
  });

  it("refuses allocations beyond max_pages with E2BIG (allocation fails, pages return to the heap)", async () => {
    const c = await newCore(ARM64, "pre");
    c.domain_slot_init(1, 1, 0, 2n);
    const start = c.total_avail_pages();
    expect(c.alloc_domheap_pages(1, 2, 0)).toBe(INVALID64);
    expect(c.total_avail_pages()).toBe(start);
    // assign_pages itself reports the errno.
    const anon = c.alloc_domheap_pages(0, 2, 0);
    expect(c.assign_pages(anon, 4n, 1, 0)).toBe(-7);
    c.domain_set_flags(1, 1); // dying
    expect(c.assign_pages(anon, 1n, 1, 0)).toBe(-22);
  });

  it("page_get_owner_and_reference refuses a page with count 0", async () => {
    const c = await newCore(ARM64, "gfn");
    const m = c.alloc_heap_pages(1, 36, 0, 0);
    expect(c.page_get_owner_and_reference(m)).toBe(0);
    expect(c.count_info(m)).toBe(0n);
  });

  it("put_page_alloc_ref BUGs when it would drop the last reference of a non-xenheap page", async () => {
    const c = await newCore(ARM64, "gfn");
    c.domain_slot_init(1, 1, 0, 16n);
    const m = c.alloc_domheap_pages(1, 0, 0);
    expect(() => c.put_page_alloc_ref(m)).toThrow(/unreachable/);
    expect(c.last_error() >>> 24).toBe(2); // BUG_ON
  });

  it("on arm32 the same BUG hits a shared xenheap page (PGC_xen_heap is never set there)", async () => {
    const c = await newCore(ARM32, "head");
    c.domain_slot_init(1, 1, 0, 16n);
    const m = c.alloc_xenheap_pages(0, 0);
    c.share_xen_page_with_guest(m, 1, 0);
    expect(hex(c.count_info(m))).toBe("0x80000001");
    expect(() => c.put_page_alloc_ref(m)).toThrow(/unreachable/);
    const a = await newCore(ARM64, "head");
    a.domain_slot_init(1, 1, 0, 16n);
    const x = a.alloc_xenheap_pages(0, 0);
    a.share_xen_page_with_guest(x, 1, 0);
    a.put_page_alloc_ref(x); // arm64 survives: PGC_xen_heap makes the value large
    expect(hex(a.count_info(x))).toBe("0x4000000000000000");
    expect(a.domain_xenheap_pages(1)).toBe(0n);
  });

  it("arm32 xenheap pages come from the separate xenheap range, zone MEMZONE_XEN", async () => {
    const c = await newCore(ARM32, "gfn", { frames: 0x80000n });
    const s = c.xenheap_mfn_start(), e = c.xenheap_mfn_end();
    expect(e - s).toBe(0x4000n); // 2 GiB / 32 = 64 MiB
    const m = c.alloc_xenheap_pages(0, 0);
    expect(m >= s && m < e).toBe(true);
    expect(c.page_to_zone(m)).toBe(0);
    expect(c.is_xen_heap_page(m)).toBe(true);
    expect(c.count_info(m) & c.PGC_xen_heap()).toBe(0n);
    const d = c.alloc_domheap_pages(0, 0, 0);
    expect(d < s).toBe(true);
  });
});

describe("static memory", () => {
  it("keeps the bank out of the heap and acquires it as PGC_static | inuse", async () => {
    const c = await newCore(ARM64, "gfn", { frames: 0x1000n, staticStart: 0x40800n, staticNr: 0x10n });
    expect(c.total_avail_pages()).toBe(0x1000n - 0x10n);
    expect(c.count_info(0x40800n)).toBe(c.PGC_state_free() | c.PGC_static());
    c.domain_slot_init(1, 1, 0, 64n);
    expect(c.acquire_domstatic_pages(1, 0x40800n, 4n, 0)).toBe(0);
    expect(hex(c.count_info(0x40800n))).toBe("0xA000000000000001");
    expect(c.domain_tot_pages(1)).toBe(4n);
    // Taking it twice fails and rolls back nothing that was not taken.
    expect(c.acquire_domstatic_pages(1, 0x40802n, 4n, 0)).toBe(-2);
    expect(c.count_info(0x40804n)).toBe(c.PGC_state_free() | c.PGC_static());
  });

  it("at head the last reference returns a static page to the static pool, not the heap", async () => {
    const c = await newCore(ARM64, "head", { frames: 0x1000n, staticStart: 0x40800n, staticNr: 0x10n });
    c.domain_slot_init(1, 1, 0, 64n);
    const avail = c.total_avail_pages();
    expect(c.acquire_domstatic_pages(1, 0x40800n, 1n, 0)).toBe(0);
    expect(c.get_page(0x40800n, 1)).toBe(true);
    c.put_page_alloc_ref(0x40800n);
    c.put_page(0x40800n);
    expect(c.count_info(0x40800n)).toBe(c.PGC_state_free() | c.PGC_static());
    expect(c.total_avail_pages()).toBe(avail);
  });
});

describe("frame table size", () => {
  it("16M frames (a 64 GiB host) fit at exactly 56 B/frame on arm64", async () => {
    const c = await newCore(ARM64, "gfn", { ramStart: 0x80000n, frames: 16n << 20n });
    expect(c.total_avail_pages()).toBe(16n << 20n);
    const last = 0x80000n + (16n << 20n) - 1n;
    expect(c.page_info_ptr(last) - c.frame_table_ptr()).toBe(((16 << 20) - 1) * 56);
    expect(c.memory.buffer.byteLength).toBeLessThan(1024 * 1024 * 1024);
    expect(c.mem_top() - c.frame_table_ptr()).toBeGreaterThanOrEqual((16 << 20) * 56);
  });
});
