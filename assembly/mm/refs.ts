// Page references (FS §3.11, 2.2): get/put are lock-free cmpxchg loops in Xen.

import { is_arm64, LONG_MASK, xen_bug, BUG_ON, BUG_ASSERT } from "../mem/machine";
import { feature, F_STATIC_FREE_DOMSTATIC } from "../revision";
import {
  pi, OFF_COUNT, ld_word, cmpxchg_word, count_info, set_count_info, owner_va, mfn_valid,
  PGC_count_mask, PGC_allocated, PGC_xen_heap, PGC_extra, PGC_static,
} from "./page_info";
import { in_xenheap_range } from "./heap";
import { domain_from_va } from "./domain";
import { free_domheap_pages, free_domstatic_page } from "./domheap";

// arm64: the PGC_xen_heap flag. arm32 MMU: the xenheap MFN range.
export function is_xen_heap_page(mfn: u64): bool {
  if (is_arm64()) return (count_info(mfn) & PGC_xen_heap()) != 0;
  return in_xenheap_range(mfn);
}

export function is_xen_heap_mfn(mfn: u64): bool {
  if (is_arm64()) return mfn_valid(mfn) && is_xen_heap_page(mfn);
  return in_xenheap_range(mfn);
}

export function is_special_page(mfn: u64): bool {
  return is_xen_heap_page(mfn) || (count_info(mfn) & PGC_extra()) != 0;
}

// @ts-ignore: decorator
@inline export function page_get_owner(mfn: u64): u32 { return domain_from_va(owner_va(mfn)); }

// Returns the owner slot and takes `nr` references, or 0 (NULL) and changes
// nothing when the count is 0 or would overflow.
export function page_get_owner_and_nr_reference(mfn: u64, nr: u64): u32 {
  let mask = PGC_count_mask();
  if (nr >= mask) return 0;
  let p = pi(mfn) + OFF_COUNT();
  let y = ld_word(p);
  let x: u64;
  do {
    x = y;
    let cnt = x & mask;
    if (cnt == 0 || cnt + nr > mask) return 0;
    y = cmpxchg_word(mfn, p, x, (x + nr) & LONG_MASK());
  } while (y != x);
  let owner = page_get_owner(mfn);
  if (owner == 0) xen_bug(BUG_ASSERT, 0x400);
  return owner;
}

export function page_get_owner_and_reference(mfn: u64): u32 {
  return page_get_owner_and_nr_reference(mfn, 1);
}

export function get_page(mfn: u64, d: u32): bool {
  let owner = page_get_owner_and_reference(mfn);
  if (owner == d && d != 0) return true;
  if (owner != 0) put_page(mfn);
  return false;
}

export function put_page_nr(mfn: u64, nr: u64): void {
  let mask = PGC_count_mask();
  let p = pi(mfn) + OFF_COUNT();
  let y = ld_word(p);
  let x: u64;
  let nx: u64;
  do {
    x = y;
    if ((x & mask) < nr) xen_bug(BUG_ASSERT, 0x401);
    nx = x - nr;
    y = cmpxchg_word(mfn, p, x, nx);
  } while (y != x);
  if ((nx & mask) == 0) {
    if (feature(F_STATIC_FREE_DOMSTATIC) && (nx & PGC_static()) != 0) free_domstatic_page(mfn);
    else free_domheap_pages(mfn, 0);
  }
}

export function put_page(mfn: u64): void { put_page_nr(mfn, 1); }

// Drops the allocation reference; BUG if that would be the last reference of a
// non-xenheap page (arm32 never sets PGC_xen_heap: FS §7.4).
export function put_page_alloc_ref(mfn: u64): void {
  let c = count_info(mfn);
  if ((c & PGC_allocated()) == 0) return;
  c &= ~PGC_allocated();
  set_count_info(mfn, c);
  if ((c & (PGC_xen_heap() | PGC_count_mask())) <= 1) xen_bug(BUG_ON, 0x402);
  put_page(mfn);
}
