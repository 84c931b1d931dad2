import { describe, it, expect } from "vitest";
import { machine, T, A, REVS, EILSEQ, ENOMEM, ENOENT, type Machine } from "./helpers.js";

const G1 = 1n << 18n, G2 = 512n;

function allocAll(m: Machine): bigint[] {
  const got: bigint[] = [];
  for (;;) {
    const p = m.core.alloc_domheap_pages(0, 0, 0);
    if (p === m.INVALID) return got;
    got.push(p);
  }
}

describe("map and unmap at each block size (FS §6.4, 6.5)", () => {
  for (const [name, order, level] of [["4K", 0n, 3], ["2M", 9n, 2], ["1G", 18n, 1]] as const) {
    it(name, async () => {
      const m = await machine();
      const free0 = m.core.total_avail_pages();
      expect(m.domain(1)).toBe(0);
      const gfn = 3n << 18n, mfn = m.ramStart, nr = 1n << order; // mfn valid: the MFN check passes
      expect(m.core.p2m_set_entry(1, gfn, nr, mfn, T.ram_rw, A.rwx)).toBe(0);
      expect(m.core.p2m_mappings(1, level)).toBe(1n);
      expect(m.core.p2m_max_mapped_gfn(1)).toBe(gfn + nr - 1n);
      expect(m.core.p2m_lowest_mapped_gfn(1)).toBe(gfn);
      expect(m.lookup(1, gfn + nr - 1n)).toEqual({ mfn: mfn + nr - 1n, t: 1, a: 7, order: Number(order), valid: 1 });
      expect(m.lookup(1, gfn + nr).mfn).toBe(m.INVALID);
      // tables: one per level below the (level-0) root down to `level`
      expect(m.core.p2m_nr_table_pages(1)).toBe(level);
      const flushes = m.core.p2m_flush_count(1);
      expect(m.core.p2m_remove_mapping(1, gfn, nr, mfn)).toBe(0);
      expect(m.core.p2m_mappings(1, level)).toBe(0n);
      expect(m.lookup(1, gfn).mfn).toBe(m.INVALID);
      expect(m.core.p2m_read_entry(1, gfn, level)).toBe(0n);
      // removal of a valid entry defers one flush to the unlock
      expect(m.core.p2m_flush_count(1)).toBe(flushes + 1n);
      expect(m.core.p2m_need_flush(1)).toBe(false);
      // never lowered on removal
      expect(m.core.p2m_max_mapped_gfn(1)).toBe(gfn + nr - 1n);
      m.core.p2m_teardown(1);
      expect(m.core.total_avail_pages()).toBe(free0);
    });
  }

  it("block selection by alignment of mfn|gfn|nr", async () => {
    const m = await machine();
    m.domain(1);
    // nr is part of the mask: 1G + 2M + 3 pages goes entirely 4K (the odd tail misaligns every chunk)
    expect(m.core.p2m_set_entry(1, 16n * G1, G1 + G2 + 3n, 32n * G1, T.ram_rw, 7)).toBe(0);
    expect([1, 2, 3].map((l) => m.core.p2m_mappings(1, l))).toEqual([0n, 0n, G1 + G2 + 3n]);
    m.core.p2m_set_entry(1, 16n * G1, G1 + G2 + 3n, m.INVALID, T.invalid, 7);
    // 1G + 2M, aligned: nr's bit 9 makes every chunk 2M (513 L2 blocks)
    expect(m.core.p2m_set_entry(1, G1, G1 + G2, 2n * G1, T.ram_rw, 7)).toBe(0);
    expect(m.core.p2m_mappings(1, 1)).toBe(0n);
    expect(m.core.p2m_mappings(1, 2)).toBe(513n);
    expect(m.lookup(1, 2n * G1 + 5n)).toMatchObject({ mfn: 3n * G1 + 5n, order: 9 });
    // 2G aligned: two L1 blocks
    expect(m.core.p2m_set_entry(1, 4n * G1, 2n * G1, 6n * G1, T.ram_rw, 7)).toBe(0);
    expect(m.core.p2m_mappings(1, 1)).toBe(2n);
    expect(m.lookup(1, 5n * G1 + 5n)).toMatchObject({ mfn: 7n * G1 + 5n, order: 18 });
    // 3 pages
    expect(m.core.p2m_set_entry(1, 0x10n, 3n, 0x10n, T.ram_rw, 7)).toBe(0);
    expect(m.core.p2m_mappings(1, 3)).toBe(3n); // removals decremented through p2m_free_entry

    // mfn misaligned by one: all 4K
    const before = m.core.p2m_mappings(1, 3);
    expect(m.core.p2m_set_entry(1, 8n * G1, G2, 8n * G1 + 1n, T.ram_rw, 7)).toBe(0);
    expect(m.core.p2m_mappings(1, 3)).toBe(before + 512n);
    // INVALID mfn does not constrain the order: removing 1G clears the block
    expect(m.core.p2m_set_entry(1, G1, G1, m.INVALID, T.invalid, 7)).toBe(0);
    expect(m.core.p2m_mappings(1, 1)).toBe(2n);
    expect(m.core.p2m_mappings(1, 2)).toBe(513n - 512n); // the 1G removal freed the L2 table under it
  });

  it("replacing a table by a block frees the subtree; remapping the same MFN keeps it", async () => {
    const m = await machine();
    const free0 = m.core.total_avail_pages();
    m.domain(1);
    const afterInit = m.core.total_avail_pages();
    m.core.p2m_set_entry(1, 0x200n, 1n, 0x10n, T.ram_rw, 7);
    expect(m.core.p2m_nr_table_pages(1)).toBe(3);
    m.core.p2m_set_entry(1, 0x200n, 512n, 0x400n, T.ram_rw, 7); // 2M over the L3 table
    expect(m.core.p2m_nr_table_pages(1)).toBe(2);
    expect(m.core.p2m_mappings(1, 3)).toBe(0n);
    // the L2 entry was a (valid) table: Xen counts no new mapping (FS §6.5 step 9)
    expect(m.core.p2m_mappings(1, 2)).toBe(0n);
    expect(m.core.total_avail_pages()).toBe(afterInit - 2n);
    // same MFN, new type: no free_entry, entry rewritten with a forced flush
    const f = m.core.p2m_flush_count(1);
    m.core.p2m_set_entry(1, 0x200n, 512n, 0x400n, T.ram_ro, 7);
    expect(m.core.p2m_flush_count(1)).toBe(f + 1n);
    expect(m.core.p2m_mappings(1, 2)).toBe(0n);
    expect(m.lookup(1, 0x3ffn)).toEqual({ mfn: 0x5ffn, t: T.ram_ro, a: 7, order: 9, valid: 1 });
    // different MFN over a valid entry: Xen's stats drift (no ++, then free_entry --): wraps
    m.core.p2m_set_entry(1, 0x200n, 512n, 0x800n, T.ram_rw, 7);
    expect(m.core.p2m_mappings(1, 2)).toBe(0xffffffffffffffffn);
    m.core.p2m_teardown(1);
    expect(m.core.total_avail_pages()).toBe(free0);
  });

  it("lookup beyond max_mapped_gfn reports the largest hole order", async () => {
    const m = await machine();
    m.domain(1);
    m.core.p2m_set_entry(1, 0x1000n, 1n, 0x10n, T.ram_rw, 7);
    expect(m.lookup(1, 0x1001n)).toMatchObject({ mfn: m.INVALID, order: 0, t: 0 }); // same 2M, same 1G
    expect(m.lookup(1, 0x1200n).order).toBe(9);
    expect(m.lookup(1, 1n << 18n).order).toBe(18);
    expect(m.lookup(1, 1n << 27n).order).toBe(27);
    // below max but in a hole: the level where the walk failed
    m.core.p2m_set_entry(1, 5n << 27n, 1n, 0x10n, T.ram_rw, 7);
    expect(m.lookup(1, 2n << 27n)).toMatchObject({ mfn: m.INVALID, order: 27, a: 0xffffffff });
    expect(m.lookup(1, 0x1002n)).toMatchObject({ mfn: m.INVALID, order: 0 });
    expect(m.lookup(1, 0x1400n)).toMatchObject({ mfn: m.INVALID, order: 9 });
  });
});

describe("split (FS §6.6)", () => {
  it("1G -> 2M -> 4K preserves every other translation", async () => {
    const m = await machine();
    m.domain(1);
    const gfn = 2n * G1, mfn = 7n * G1;
    expect(m.core.p2m_set_entry(1, gfn, G1, mfn, T.ram_rw, 7)).toBe(0);
    const f0 = m.core.p2m_flush_count(1);
    const hole = gfn + 300n * 512n + 77n;
    expect(m.core.p2m_set_entry(1, hole, 1n, m.INVALID, T.invalid, A.rwx)).toBe(0);
    expect(m.core.p2m_shattered(1, 1)).toBe(1n);
    expect(m.core.p2m_shattered(1, 2)).toBe(1n);
    expect([1, 2, 3].map((l) => m.core.p2m_mappings(1, l))).toEqual([0n, 511n, 511n]);
    expect(m.core.p2m_nr_table_pages(1)).toBe(3); // L1 table + new L2 + new L3
    expect(m.core.p2m_flush_count(1)).toBe(f0 + 1n); // BBM
    expect(m.core.p2m_need_flush(1)).toBe(true);     // removal: deferred to the unlock
    m.core.p2m_tlb_flush_sync(1);
    expect(m.core.p2m_flush_count(1)).toBe(f0 + 2n);
    expect(m.core.p2m_need_flush(1)).toBe(false);
    // every GFN of the old block, in one batch
    const n = Number(G1);
    const buf = m.core.p2m_batch_buffer(n * 24);
    const gv = new BigUint64Array(m.core.memory.buffer, buf, n);
    for (let i = 0; i < n; i++) gv[i] = gfn + BigInt(i);
    m.core.p2m_lookup_batch(1, buf, n);
    const out = new DataView(m.core.memory.buffer, buf + n * 8, n * 16);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const g = gfn + BigInt(i);
      const got = out.getBigUint64(i * 16, true);
      const t = out.getUint8(i * 16 + 8);
      const ord = out.getUint8(i * 16 + 10);
      const inL3 = g >> 9n === hole >> 9n;
      const inL2 = g >> 18n === hole >> 18n;
      const expOrder = inL3 ? 0 : inL2 ? 9 : 18;
      if (g === hole) { if (got !== m.INVALID || t !== 0 || ord !== 0) bad++; }
      else if (got !== mfn + BigInt(i) || t !== T.ram_rw || ord !== expOrder) bad++;
    }
    expect(bad).toBe(0);
    // the split entries keep the block's attributes
    expect(m.core.p2m_read_entry(1, hole + 1n, 3)).toBe(0x00800000000007ffn | ((mfn + 300n * 512n + 78n) << 12n));
    expect(m.core.p2m_read_entry(1, gfn, 2)).toBe(0x00800000000007fdn | (mfn << 12n));
  });
});

describe("running out of table pages", () => {
  it("walk allocation failure: -ENOENT, nothing changed", async () => {
    const m = await machine();
    m.domain(1);
    const held = allocAll(m);
    expect(m.core.p2m_set_entry(1, 0x1234n, 1n, 0x1n, T.ram_rw, 7)).toBe(ENOENT);
    expect(m.core.p2m_nr_table_pages(1)).toBe(0);
    expect(m.core.p2m_max_mapped_gfn(1)).toBe(0n);
    // one page: the L1 table is created, the L2 is not; tables stay consistent
    m.core.free_domheap_pages(held.pop()!, 0);
    expect(m.core.p2m_set_entry(1, 0x1234n, 1n, 0x1n, T.ram_rw, 7)).toBe(ENOENT);
    expect(m.core.p2m_nr_table_pages(1)).toBe(1);
    expect(m.lookup(1, 0x1234n).mfn).toBe(m.INVALID);
  });

  it("split failure: -ENOMEM, the block still maps everything, subtree freed", async () => {
    const m = await machine();
    m.domain(1);
    const gfn = G1, mfn = 4n * G1;
    expect(m.core.p2m_set_entry(1, gfn, G1, mfn, T.ram_rw, 7)).toBe(0);
    const held = allocAll(m);
    m.core.free_domheap_pages(held.pop()!, 0); // one page: L2 table ok, L3 fails
    const free1 = m.core.total_avail_pages();
    const block = m.core.p2m_read_entry(1, gfn, 1);
    expect(m.core.p2m_set_entry(1, gfn + 5n, 1n, m.INVALID, T.invalid, A.rwx)).toBe(ENOMEM);
    expect(m.core.p2m_read_entry(1, gfn, 1)).toBe(block);
    expect(m.core.total_avail_pages()).toBe(free1);
    expect([1, 2, 3].map((l) => m.core.p2m_mappings(1, l))).toEqual([1n, 0n, 0n]);
    expect(m.core.p2m_shattered(1, 1)).toBe(1n); // Xen does not undo this one
    expect(m.lookup(1, gfn + 5n)).toMatchObject({ mfn: mfn + 5n, order: 18 });
    // no page at all
    m.core.alloc_domheap_pages(0, 0, 0);
    expect(m.core.p2m_set_entry(1, gfn + 5n, 1n, m.INVALID, T.invalid, A.rwx)).toBe(ENOMEM);
    expect(m.core.p2m_read_entry(1, gfn, 1)).toBe(block);
  });
});

describe("p2m_remove_mapping MFN check (FS §6.8, 9)", () => {
  for (const rev of REVS) {
    it(`${rev}: remove with a wrong MFN`, async () => {
      const m = await machine({ rev });
      m.domain(1);
      const good = m.ramStart + 0x100n, wrong = m.ramStart + 0x200n;
      expect(m.core.p2m_insert_mapping(1, 0x500n, 1n, good, T.ram_rw)).toBe(0);
      const rc = m.core.p2m_remove_mapping(1, 0x500n, 1n, wrong);
      if (rev === "pre") {
        expect(rc).toBe(0);
        expect(m.lookup(1, 0x500n).mfn).toBe(m.INVALID);
      } else {
        expect(rc).toBe(EILSEQ);
        expect(m.lookup(1, 0x500n)).toMatchObject({ mfn: good, t: T.ram_rw });
        // an invalid MFN also fails the check, the right one passes
        expect(m.core.p2m_remove_mapping(1, 0x500n, 1n, m.INVALID)).toBe(EILSEQ);
        expect(m.core.p2m_remove_mapping(1, 0x500n, 1n, good)).toBe(0);
        expect(m.lookup(1, 0x500n).mfn).toBe(m.INVALID);
      }
    });
  }

  it("harden: a mismatch anywhere in the range removes nothing; MMIO is not checked", async () => {
    const m = await machine({ rev: "harden" });
    m.domain(1);
    const base = m.ramStart;
    m.core.p2m_insert_mapping(1, 0x400n, 512n, base, T.ram_rw); // 2M block
    m.core.p2m_insert_mapping(1, 0x600n, 2n, base + 0x1000n, T.ram_rw);
    m.core.p2m_insert_mapping(1, 0x602n, 1n, 0x9000000n, T.mmio_direct_dev);
    expect(m.core.p2m_remove_mapping(1, 0x400n, 0x203n, base)).toBe(EILSEQ); // 0x600 maps base+0x1000
    expect(m.lookup(1, 0x400n).mfn).toBe(base);
    expect(m.lookup(1, 0x601n).mfn).toBe(base + 0x1001n);
    expect(m.core.p2m_remove_mapping(1, 0x400n, 0x200n, base)).toBe(0);
    expect(m.core.p2m_remove_mapping(1, 0x602n, 1n, 0x1n)).toBe(0); // MMIO: any mfn
    expect(m.lookup(1, 0x602n).mfn).toBe(m.INVALID);
  });
});

describe("references (FS §6.7)", () => {
  for (const rev of REVS) {
    it(`${rev}: p2m_put_l3_page and the xenheap GFN`, async () => {
      const m = await machine({ rev });
      m.domain(1);
      const x = m.core.alloc_xenheap_pages(0, 0);
      m.core.share_xen_page_with_guest(x, 1, 0);
      const gfnMask = m.core.PGT_gfn_mask();
      const ti0 = m.core.type_info(x);
      if (rev === "gfn" || rev === "head") m.core.page_set_xenheap_gfn(x, 0x777n);
      const ti1 = m.core.type_info(x);
      expect(m.core.p2m_insert_mapping(1, 0x777n, 1n, x, T.ram_rw)).toBe(0);
      expect(m.core.p2m_remove_mapping(1, 0x777n, 1n, x)).toBe(0);
      if (rev === "gfn" || rev === "head") {
        expect(ti1 & gfnMask).toBe(0x777n);
        expect(m.core.page_get_xenheap_gfn(x)).toBe(m.INVALID);
        expect(m.core.type_info(x) & gfnMask).toBe(gfnMask);
      } else {
        expect(m.core.type_info(x)).toBe(ti0);
      }
    });

    it(`${rev}: foreign references dropped on removal (4K, and 2M from 4.19)`, async () => {
      const m = await machine({ rev });
      m.domain(1);
      m.domain(2);
      const cnt = (p: bigint) => m.core.count_info(p) & m.core.PGC_count_mask();
      const pg = m.core.alloc_domheap_pages(2, 0, 0);
      expect(cnt(pg)).toBe(1n);
      expect(m.core.set_foreign_p2m_entry(1, 2, 0x42n, pg)).toBe(0);
      expect(cnt(pg)).toBe(2n);
      expect(m.lookup(1, 0x42n)).toMatchObject({ mfn: pg, t: T.map_foreign_rw });
      expect(m.core.p2m_remove_mapping(1, 0x42n, 1n, pg)).toBe(0);
      expect(cnt(pg)).toBe(1n);
      // 2 MiB foreign block: a reference per page
      const big = m.core.alloc_domheap_pages(2, 9, 0);
      for (let i = 0n; i < 512n; i++) expect(m.core.get_page(big + i, 2)).toBe(true);
      expect(m.core.p2m_insert_mapping(1, 0x400n, 512n, big, T.map_foreign_rw)).toBe(0);
      expect(m.core.p2m_mappings(1, 2)).toBe(1n);
      expect(m.core.p2m_remove_mapping(1, 0x400n, 512n, big)).toBe(0);
      const expected = rev === "head" ? 1n : 2n;
      for (const i of [0n, 1n, 511n]) expect(cnt(big + i)).toBe(expected);
    });
  }

  it("relinquish drops foreign refs and removes everything; HEAD BUG_ON(!is_dying)", async () => {
    const m = await machine({ rev: "head" });
    const free0 = m.core.total_avail_pages();
    m.domain(1);
    m.domain(2);
    const pg = m.core.alloc_domheap_pages(2, 0, 0);
    m.core.set_foreign_p2m_entry(1, 2, 0x42n, pg);
    m.core.p2m_insert_mapping(1, 0x1000n, 0x1000n, m.ramStart, T.ram_rw);
    m.core.p2m_insert_mapping(1, 1n << 18n, 1n << 18n, 1n << 30n, T.mmio_direct_c);
    let threw = false;
    try { m.core.relinquish_p2m_mapping(1, false); } catch { threw = true; }
    expect(threw).toBe(true);
    expect(m.core.last_error() >>> 24).toBe(2); // BUG_ON
  });

  it("relinquish (dying), preemption and resume, then teardown returns every page", async () => {
    const m = await machine({ rev: "head" });
    const free0 = m.core.total_avail_pages();
    m.domain(1);
    m.domain(2);
    const pg = m.core.alloc_domheap_pages(2, 0, 0);
    const freeAfterAlloc = m.core.total_avail_pages();
    m.core.set_foreign_p2m_entry(1, 2, 0x42n, pg);
    m.core.p2m_insert_mapping(1, 0x1000n, 0x1001n, m.ramStart + 0x1000n, T.ram_rw);
    m.core.p2m_insert_mapping(1, 1n << 18n, 1n << 18n, 1n << 30n, T.mmio_direct_c);
    m.core.domain_set_flags(1, 1); // D_DYING
    expect(m.core.p2m_set_entry(1, 5n, 1n, 5n, T.ram_rw, 7)).toBe(ENOMEM);
    expect(m.core.relinquish_p2m_mapping(1, true)).toBe(-85);
    const resume = m.core.p2m_lowest_mapped_gfn(1);
    expect(resume > 0x42n).toBe(true);
    let rc: number;
    while ((rc = m.core.relinquish_p2m_mapping(1, true)) === -85) { /* resume */ }
    expect(rc).toBe(0);
    expect(m.core.count_info(pg) & m.core.PGC_count_mask()).toBe(1n);
    for (let l = 1; l <= 3; l++) expect(m.core.p2m_mappings(1, l)).toBe(0n);
    for (const g of [0x42n, 0x1000n, 0x2000n, 1n << 18n]) expect(m.lookup(1, g).mfn).toBe(m.INVALID);
    expect(m.core.p2m_nr_table_pages(1)).toBeGreaterThan(0);
    m.core.p2m_teardown(1);
    m.core.p2m_teardown(2);
    expect(m.core.p2m_initialised(1)).toBe(false);
    expect(m.core.total_avail_pages()).toBe(freeAfterAlloc + 2n); // both roots back
    m.core.put_page(pg);
    m.core.domain_set_flags(2, 1);
    expect(m.core.total_avail_pages()).toBe(free0);
  });

  it("pre: set_entry while dying still maps; relinquish has no BUG_ON", async () => {
    const m = await machine({ rev: "pre" });
    m.domain(1);
    m.core.domain_set_flags(1, 1);
    expect(m.core.p2m_set_entry(1, 5n, 1n, 5n, T.ram_rw, 7)).toBe(0);
    m.core.domain_set_flags(1, 0);
    expect(m.core.relinquish_p2m_mapping(1, false)).toBe(0);
    expect(m.lookup(1, 5n).mfn).toBe(m.INVALID);
  });
});

describe("teardown", () => {
  it("removing everything then teardown restores the heap's free count; list matches", async () => {
    for (const arch of ["arm64", "arm32"] as const) {
      const m = await machine({ arch, ramStart: 0x80000n, ramFrames: 0x10000n });
      const free0 = m.core.total_avail_pages();
      expect(m.domain(1)).toBe(0);
      expect(m.core.total_avail_pages()).toBe(free0 - (arch === "arm64" ? 1n : 2n));
      const gfns = [0x0n, 0x3n, 0x1ffn, 0x200n, 0x12345n, 0xfffffffn, 1n << 18n];
      for (const g of gfns) expect(m.core.p2m_set_entry(1, g, 1n, 0x100n + (g & 0xffffn), T.ram_rw, 7)).toBe(0);
      m.core.p2m_set_entry(1, 3n << 18n, 1n << 18n, 0n, T.ram_rw, 7);
      const n = m.core.p2m_nr_table_pages(1);
      expect(n).toBeGreaterThan(5);
      expect(m.core.total_avail_pages()).toBe(free0 - BigInt(n) - (arch === "arm64" ? 1n : 2n));
      for (const g of gfns) expect(m.core.p2m_set_entry(1, g, 1n, m.INVALID, 0, 7)).toBe(0);
      m.core.p2m_teardown(1);
      expect(m.core.total_avail_pages()).toBe(free0);
      expect(m.core.p2m_root_mfn(1)).toBe(m.INVALID);
      m.core.p2m_teardown(1); // idempotent
      expect(m.core.total_avail_pages()).toBe(free0);
    }
  });
});
