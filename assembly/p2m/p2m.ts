// P2M operations (FS §6.2-6.7): walk, lookup, set, split, free.
//
// Locking: the TypeScript host owns every lock. The functions here are the
// bodies Xen runs with the lock held; each says which lock the caller must
// hold. p2m_write_unlock() in Xen first runs p2m_tlb_flush_sync(); the host's
// write-unlock must call the exported p2m_tlb_flush_sync(d) (the wrappers in
// physmap.ts already do it at their end, as their unlock would).
//
// Tables are accessed through their 4 KiB backing (backing_lookup); during a
// walk the current table's linear address is carried in a local.
//
// The internal p2m_next_level() returns the next table's linear address
// (GUEST_TABLE_NORMAL_PAGE), or the codes MAP_FAILED (0) / SUPER_PAGE (1);
// table addresses are page aligned so the encodings cannot collide.

import { ENOENT, ENOMEM, EBUSY, EINVAL, EILSEQ, ERESTART } from "../errno";
import { LONG_MASK, INVALID_MFN, INVALID_GFN, xen_bug, BUG_ASSERT, BUG_EMULATOR } from "../mem/machine";
import { backing_get, backing_lookup } from "../mem/backing";
import { feature, F_GFN_IN_PAGE_INFO, F_PUT_L2_FOREIGN_SUPERPAGE, F_DYING_REFUSES_P2M } from "../revision";
import { alloc_domheap_pages, free_domheap_pages } from "../mm/domheap";
import { put_page, is_xen_heap_mfn } from "../mm/refs";
import { mfn_valid } from "../mm/page_info";
import { page_list_add, page_list_del } from "../mm/page_list";
import { page_set_xenheap_gfn } from "../mm/xenheap_gfn";
import { domain_is_dying } from "../mm/domain";
import {
  p2m_invalid, p2m_access_rwx, PTE_TABLE, LEVEL_ORDER, gfn_offset, lpae_get_mfn, lpae_set_mfn,
  lpae_is_valid, p2m_is_valid, p2m_is_mapping, p2m_is_superpage, pte_type, p2m_is_foreign,
  p2m_is_ram, mfn_to_p2m_entry, page_to_p2m_table, XEN_PT_LPAE_ENTRIES,
} from "./lpae";
import { p2m_root_level, P2M_ROOT_PAGES } from "./geometry";
import {
  P2M, P_ROOT_PTR, P_MAX_MAPPED, P_LOWEST_MAPPED, P_NEED_FLUSH, P_DEFAULT_ACCESS, P_MAPPINGS,
  P_SHATTERED, P_NR_PAGES, P_FLUSH_COUNT, P_PAGES, P_OUT_T, P_OUT_A, P_OUT_ORDER, P_OUT_VALID,
  P_SPLIT_PTE, P2M_OUT_A_UNSET,
} from "./p2m_domain";
import { p2m_write_pte, P2M_LOG_BREAK } from "./log";


const MAP_FAILED: usize = 0;
const SUPER_PAGE: usize = 1;

// @ts-ignore: decorator
@inline function gfn_add(g: u64, n: u64): u64 { return (g + n) & LONG_MASK(); }
// @ts-ignore: decorator
@inline export function level_mask(level: u32): u64 { return (<u64>1 << LEVEL_ORDER(level)) - 1; }
// @ts-ignore: decorator
@inline export function entry_at(table: usize, gfn: u64, level: u32): usize {
  return table + (<usize>gfn_offset(gfn, level) << 3);
}
// map_domain_page() of a table frame.
// @ts-ignore: decorator
@inline export function map_table(mfn: u64): usize {
  let t = backing_lookup(mfn);
  if (t == 0) xen_bug(BUG_EMULATOR, 0x430); // a table descriptor points at a frame with no bytes
  return t;
}

// ---- statistics / flush -------------------------------------------------------

// @ts-ignore: decorator
@inline function stat_add(p: usize, off: usize, level: u32, delta: u64): void {
  let a = p + off + (<usize>level << 3);
  store<u64>(a, (load<u64>(a) + delta) & LONG_MASK());
}

// p2m_force_tlb_flush_sync: flush the guest TLB for the VMID (counted), clear need_flush.
// Caller holds the P2M write lock.
export function p2m_force_tlb_flush_sync(d: u32): void {
  let p = P2M(d);
  store<u64>(p, load<u64>(p, P_FLUSH_COUNT) + 1, P_FLUSH_COUNT);
  store<u32>(p, 0, P_NEED_FLUSH);
}

// p2m_tlb_flush_sync: flush only if one is pending (run by p2m_write_unlock).
export function p2m_tlb_flush_sync(d: u32): void {
  if (load<u32>(P2M(d), P_NEED_FLUSH) != 0) p2m_force_tlb_flush_sync(d);
}

// ---- table pages (p2m->pages) ------------------------------------------------

// alloc_domheap_page(NULL, 0) + page_list_add(page, &p2m->pages). INVALID_MFN() on failure.
function p2m_alloc_page(d: u32): u64 {
  let mfn = alloc_domheap_pages(0, 0, 0);
  if (mfn == INVALID_MFN()) return mfn;
  let p = P2M(d);
  page_list_add(mfn, p + P_PAGES);
  store<u32>(p, load<u32>(p, P_NR_PAGES) + 1, P_NR_PAGES);
  return mfn;
}

// page_list_del(pg, &p2m->pages) + free_domheap_page(pg).
export function p2m_free_page(d: u32, mfn: u64): void {
  let p = P2M(d);
  page_list_del(mfn);
  store<u32>(p, load<u32>(p, P_NR_PAGES) - 1, P_NR_PAGES);
  free_domheap_pages(mfn, 0);
}

// ---- walk --------------------------------------------------------------------

// p2m_get_root_pointer: linear address of the root page covering gfn, or 0
// (NULL) when the GFN is beyond the root pages (FS §5.2).
// A P2M whose root was never allocated (all-zero struct, e.g. dom_io) hits
// Xen's direct-map ASSERT in maddr_to_virt (debug build, FS §6.3): BUG_ASSERT.
export function p2m_get_root_pointer(d: u32, gfn: u64): usize {
  let root_table = gfn >> (LEVEL_ORDER(p2m_root_level()) + 9);
  if (root_table >= <u64>P2M_ROOT_PAGES()) return 0;
  let t = <usize>load<u32>(P2M(d) + P_ROOT_PTR + (<usize>root_table << 2));
  if (t == 0) xen_bug(BUG_ASSERT, 0x431);
  return t;
}

// p2m_create_table(p2m, entry). Caller holds the P2M write lock.
export function p2m_create_table(d: u32, entry: usize, gfn: u64, level: u32): i32 {
  if (p2m_is_valid(load<u64>(entry))) xen_bug(BUG_ASSERT, 0x432);
  let mfn = p2m_alloc_page(d);
  if (mfn == INVALID_MFN()) return -ENOMEM;
  memory.fill(backing_get(mfn), 0, 4096); // clear_page
  p2m_write_pte(d, entry, page_to_p2m_table(mfn), gfn & ~level_mask(level), level);
  return 0;
}

// p2m_next_level(p2m, read_only, level, &table, offset): returns MAP_FAILED,
// SUPER_PAGE, or the next table (NORMAL_PAGE). `gfn` gives the offset.
// Caller holds the P2M lock (write lock unless read_only).
function p2m_next_level(d: u32, read_only: bool, level: u32, table: usize, gfn: u64): usize {
  let entry = entry_at(table, gfn, level);
  let e = load<u64>(entry);
  if (!p2m_is_valid(e)) {
    if (read_only) return MAP_FAILED;
    if (p2m_create_table(d, entry, gfn, level) != 0) return MAP_FAILED;
    e = load<u64>(entry);
  }
  if (level >= 3) xen_bug(BUG_ASSERT, 0x433);
  if (p2m_is_mapping(e, level)) return SUPER_PAGE;
  return map_table(lpae_get_mfn(e));
}

// p2m_get_entry(p2m, gfn, &t, &a, &page_order, &valid) (FS §6.3).
// Returns the MFN (INVALID_MFN() when unmapped); writes t, a, page_order and
// valid to the out area of the p2m_domain record (P_OUT_*). Xen leaves *a
// untouched for an unmapped GFN: out_a = P2M_OUT_A_UNSET then.
// Caller holds the P2M lock (read or write).
export function p2m_get_entry(d: u32, gfn: u64): u64 {
  let p = P2M(d);
  let t: u32 = p2m_invalid;
  let a: u32 = P2M_OUT_A_UNSET;
  let valid: u32 = 0;
  let mfn = INVALID_MFN();
  let level = p2m_root_level();
  let max = load<u64>(p, P_MAX_MAPPED);
  if (gfn > max) {
    for (; level < 3; level++) {
      if ((gfn & ~level_mask(level)) > max) break;
    }
  } else {
    let table = p2m_get_root_pointer(d, gfn);
    if (table == 0) xen_bug(BUG_ASSERT, 0x434); // ASSERT_UNREACHABLE
    let failed = false;
    for (; level < 3; level++) {
      let r = p2m_next_level(d, true, level, table, gfn);
      if (r == MAP_FAILED) { failed = true; break; }
      if (r == SUPER_PAGE) break;
      table = r;
    }
    if (!failed) {
      let e = load<u64>(entry_at(table, gfn, level));
      if (p2m_is_valid(e)) {
        t = pte_type(e);
        a = load<u32>(p, P_DEFAULT_ACCESS); // mem_access disabled: default_access
        mfn = (lpae_get_mfn(e) + (gfn & level_mask(level))) & LONG_MASK();
        valid = <u32>(e & 1);
      }
    }
  }
  store<u32>(p, t, P_OUT_T);
  store<u32>(p, a, P_OUT_A);
  store<u32>(p, LEVEL_ORDER(level), P_OUT_ORDER);
  store<u32>(p, valid, P_OUT_VALID);
  return mfn;
}

// ---- references (FS §6.7) -----------------------------------------------------

// p2m_put_l3_page(mfn, type). Caller holds the P2M write lock (which also
// protects the xenheap GFN bits from GFN on).
export function p2m_put_l3_page(mfn: u64, t: u32): void {
  if (p2m_is_foreign(t)) {
    if (!mfn_valid(mfn)) xen_bug(BUG_ASSERT, 0x440);
    put_page(mfn);
  } else if (feature(F_GFN_IN_PAGE_INFO) && p2m_is_ram(t) && is_xen_heap_mfn(mfn)) {
    page_set_xenheap_gfn(mfn, INVALID_GFN());
  }
}

// p2m_put_l2_superpage(mfn, type) (3e2121ce47, 4.19): foreign types only.
export function p2m_put_l2_superpage(mfn: u64, t: u32): void {
  if (!p2m_is_foreign(t)) return;
  if (!mfn_valid(mfn)) xen_bug(BUG_ASSERT, 0x441);
  for (let i: u64 = 0; i < <u64>XEN_PT_LPAE_ENTRIES; i++) put_page(mfn + i);
}

// p2m_free_entry(p2m, entry, level). Caller holds the P2M write lock.
export function p2m_free_entry(d: u32, e: u64, level: u32): void {
  if (!p2m_is_valid(e)) return;
  let p = P2M(d);
  if (level == 3 || p2m_is_superpage(e, level)) {
    // (no ioreq server: no mapcache invalidation)
    stat_add(p, P_MAPPINGS, level, <u64>-1);
    if (feature(F_PUT_L2_FOREIGN_SUPERPAGE)) {
      // p2m_put_page(entry, level)
      if (level == 2) p2m_put_l2_superpage(lpae_get_mfn(e), pte_type(e));
      else if (level == 3) p2m_put_l3_page(lpae_get_mfn(e), pte_type(e));
    } else if (level == 3) {
      p2m_put_l3_page(lpae_get_mfn(e), pte_type(e));
    }
    return;
  }
  let mfn = lpae_get_mfn(e);
  let table = map_table(mfn);
  for (let i: usize = 0; i < <usize>XEN_PT_LPAE_ENTRIES; i++) {
    p2m_free_entry(d, load<u64>(table + (i << 3)), level + 1);
  }
  p2m_tlb_flush_sync(d);
  if (!mfn_valid(mfn)) xen_bug(BUG_ASSERT, 0x442);
  p2m_free_page(d, mfn);
}

// ---- split (FS §6.6) ------------------------------------------------------------

// p2m_split_superpage(p2m, &entry, level, target, offsets): `entry` is a
// linear address (the caller's local copy, or an entry of a new table).
// Caller holds the P2M write lock.
export function p2m_split_superpage(d: u32, entry: usize, level: u32, target: u32, gfn: u64): bool {
  let e = load<u64>(entry);
  let mfn = lpae_get_mfn(e);
  let next_level = level + 1;
  let level_order = LEVEL_ORDER(next_level);
  if (level >= target) xen_bug(BUG_ASSERT, 0x450);
  if (!p2m_is_superpage(e, level)) xen_bug(BUG_ASSERT, 0x451);

  let page = p2m_alloc_page(d);
  if (page == INVALID_MFN()) return false;
  let table = backing_get(page);
  let tbit: u64 = next_level == 3 ? PTE_TABLE : 0;
  let base = e & ~PTE_TABLE;
  for (let i: u32 = 0; i < XEN_PT_LPAE_ENTRIES; i++) {
    let pte = lpae_set_mfn(base, (mfn + (<u64>i << level_order)) & LONG_MASK()) | tbit;
    store<u64>(table + (<usize>i << 3), pte);
  }
  let p = P2M(d);
  stat_add(p, P_SHATTERED, level, 1);
  stat_add(p, P_MAPPINGS, level, <u64>-1);
  stat_add(p, P_MAPPINGS, next_level, XEN_PT_LPAE_ENTRIES);

  let rv = true;
  if (next_level != target) {
    rv = p2m_split_superpage(d, entry_at(table, gfn, next_level), next_level, target, gfn);
  }
  // Even on failure the new table is installed in the caller's copy: the
  // caller frees the subtree.
  store<u64>(entry, page_to_p2m_table(page));
  return rv;
}

// ---- set (FS §6.5) ----------------------------------------------------------------

// __p2m_set_entry(p2m, sgfn, page_order, smfn, t, a). smfn == INVALID_MFN()
// removes. Caller holds the P2M write lock.
export function __p2m_set_entry(d: u32, sgfn: u64, page_order: u32, smfn: u64, t: u32, a: u32): i32 {
  let p = P2M(d);
  let target: u32 = 3 - page_order / 9;
  let removing = smfn == INVALID_MFN();
  if (target == 0 || target > 3) xen_bug(BUG_ASSERT, 0x460);

  let table = p2m_get_root_pointer(d, sgfn);
  if (table == 0) return -EINVAL;

  let level = p2m_root_level();
  for (; level < target; level++) {
    let r = p2m_next_level(d, removing, level, table, sgfn);
    if (r == MAP_FAILED) return removing ? 0 : -ENOENT;
    if (r == SUPER_PAGE) break;
    table = r;
  }
  let entry = entry_at(table, sgfn, level);

  if (level < target) {
    // A block is in the way: split a local copy, then break-before-make.
    let split = p + P_SPLIT_PTE;
    let cur = load<u64>(entry);
    if (!p2m_is_superpage(cur, level)) xen_bug(BUG_ASSERT, 0x461);
    store<u64>(split, cur);
    if (!p2m_split_superpage(d, split, level, target, sgfn)) {
      stat_add(p, P_MAPPINGS, level, 1);
      p2m_free_entry(d, load<u64>(split), level);
      return -ENOMEM;
    }
    let egfn = sgfn & ~level_mask(level);
    p2m_write_pte(d, entry, 0, egfn, level);        // p2m_remove_pte
    p2m_force_tlb_flush_sync(d);
    p2m_write_pte(d, entry, load<u64>(split), egfn, level);
    for (; level < target; level++) {
      let r = p2m_next_level(d, true, level, table, sgfn);
      if (r == MAP_FAILED || (r == SUPER_PAGE && target == 3)) xen_bug(BUG_ASSERT, 0x462);
      if (r != SUPER_PAGE) table = r;
    }
    entry = entry_at(table, sgfn, level);
  }

  let orig = load<u64>(entry);
  // ASSERT(!removing || a == rwx); mem_access is disabled: radix set is a no-op.
  if (removing && a != p2m_access_rwx) xen_bug(BUG_ASSERT, 0x463);

  let orig_hw = lpae_is_valid(orig);
  if (orig_hw || removing) p2m_write_pte(d, entry, 0, sgfn, removing ? level : level | P2M_LOG_BREAK); // p2m_remove_pte

  if (removing) {
    if (orig_hw) store<u32>(p, 1, P_NEED_FLUSH);
  } else {
    let pte = mfn_to_p2m_entry(smfn, t, a);
    if (level < 3) pte &= ~PTE_TABLE; // superpage
    if (orig_hw) p2m_force_tlb_flush_sync(d);
    else if (!p2m_is_valid(orig)) stat_add(p, P_MAPPINGS, level, 1);
    p2m_write_pte(d, entry, pte, sgfn, level);
    let last = gfn_add(sgfn, (<u64>1 << page_order) - 1);
    if (last > load<u64>(p, P_MAX_MAPPED)) store<u64>(p, last, P_MAX_MAPPED);
    if (sgfn < load<u64>(p, P_LOWEST_MAPPED)) store<u64>(p, sgfn, P_LOWEST_MAPPED);
  }
  // No IOMMU: rc = 0.
  if (p2m_is_valid(orig) && lpae_get_mfn(load<u64>(entry)) != lpae_get_mfn(orig)) {
    p2m_free_entry(d, orig, level);
  }
  return 0;
}

// p2m_set_entry(p2m, sgfn, nr, smfn, t, a) (FS §6.4). Caller holds the P2M write lock.
export function p2m_set_entry(d: u32, sgfn: u64, nr: u64, smfn: u64, t: u32, a: u32): i32 {
  if (feature(F_DYING_REFUSES_P2M) && domain_is_dying(d)) return -ENOMEM;
  let inv = INVALID_MFN();
  let lm = LONG_MASK();
  nr &= lm;
  let rc: i32 = 0;
  while (nr != 0) {
    let mask = (smfn != inv ? smfn : 0) | sgfn | nr;
    let order: u32;
    // (mem_access disabled: no forced 4K)
    if ((mask & ((<u64>1 << 18) - 1)) == 0) order = 18;
    else if ((mask & ((<u64>1 << 9) - 1)) == 0) order = 9;
    else order = 0;
    rc = __p2m_set_entry(d, sgfn, order, smfn, t, a);
    if (rc != 0) break;
    let step = <u64>1 << order;
    sgfn = (sgfn + step) & lm;
    if (smfn != inv) smfn = (smfn + step) & lm;
    nr -= step;
  }
  return rc;
}

// Raw descriptor at `level` on gfn's walk (0 if the walk stops above it).
// Debug/test helper; no side effects. Caller holds the P2M lock.
export function p2m_read_entry(d: u32, gfn: u64, level: u32): u64 {
  let table = p2m_get_root_pointer(d, gfn);
  if (table == 0) return 0;
  let l = p2m_root_level();
  while (true) {
    let e = load<u64>(entry_at(table, gfn, l));
    if (l == level) return e;
    if (!p2m_is_valid(e) || l >= 3 || p2m_is_mapping(e, l)) return 0;
    table = map_table(lpae_get_mfn(e));
    l++;
  }
  return 0;
}
