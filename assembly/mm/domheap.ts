// Domain and xen heap on top of the buddy allocator (FS §3.5–3.10).
// Locks (d->page_alloc_lock, heap_lock) are taken by the host around calls.

import { EPERM, ENOENT, E2BIG, EINVAL } from "../errno";
import { is_arm64, INVALID_MFN, LONG_MASK, xen_bug, BUG_ON, BUG_ASSERT } from "../mem/machine";
import { feature, F_GFN_IN_PAGE_INFO, F_TYPE_INFO_INITIALIZER } from "../revision";
import {
  count_info, set_count_info, type_info, set_type_info, owner_va, set_owner_va, mfn_valid,
  PGC_allocated, PGC_xen_heap, PGC_extra, PGC_static, PGC_state_free, PGC_state_inuse, PGC_count_mask,
  PGT_count_mask, PGT_writable_page, PGT_type_mask, PGT_none, PGT_TYPE_INFO_INITIALIZER, MASK_INSR,
} from "./page_info";
import { alloc_heap_pages, free_heap_pages, NR_ZONES, MEMZONE_XEN, MEMF_no_refcount, MEMF_no_owner, MEMF_no_scrub } from "./heap";
import {
  domain_va, domain_is_dying, domain_tot_pages_raw, domain_max_pages, domain_extra_pages, set_extra_pages,
  domain_xenheap_pages, set_xenheap_pages, domain_get_ref, domain_put_ref, domain_adjust_tot_pages,
  dom_page_list, dom_xenpage_list,
} from "./domain";
import { page_list_add_tail, page_list_del } from "./page_list";
import { is_xen_heap_page, page_get_owner } from "./refs";


export const SHARE_rw: u32 = 0;
export const SHARE_ro: u32 = 1;

// Bits assign_pages keeps: PRE/GFN PGC_extra | PGC_reserved (HEAD adds colored/need_scrub, unused here).
// @ts-ignore: decorator
@inline function PGC_preserved(): u64 { return PGC_extra() | PGC_static(); }

// Returns 0 or a negative errno. Caller holds d->page_alloc_lock.
export function assign_pages(pg: u64, nr: u64, d: u32, memflags: u32): i32 {
  if (domain_is_dying(d)) return -EINVAL;
  for (let i: u64 = 0; i < nr; i++)
    if ((count_info(pg + i) & ~PGC_preserved()) != 0) xen_bug(BUG_ASSERT, 0x500);
  if ((count_info(pg) & PGC_extra()) != 0) {
    set_extra_pages(d, domain_extra_pages(d) + nr);
    memflags &= ~MEMF_no_refcount;
  } else if ((memflags & MEMF_no_refcount) == 0) {
    let tot = domain_tot_pages_raw(d);
    let max = domain_max_pages(d);
    if (tot > max) return -EPERM;
    if (nr > max - tot) return -E2BIG;
  }
  if ((memflags & MEMF_no_refcount) == 0) {
    let tot = domain_tot_pages_raw(d);
    if (tot + nr < tot) return -E2BIG;
    if (domain_adjust_tot_pages(d, <i64>nr) == nr) domain_get_ref(d);
  }
  let va = domain_va(d);
  for (let i: u64 = 0; i < nr; i++) {
    let m = pg + i;
    if (owner_va(m) != 0) xen_bug(BUG_ASSERT, 0x501);
    set_owner_va(m, va);
    set_count_info(m, (count_info(m) & PGC_preserved()) | PGC_allocated() | 1);
    page_list_add_tail(m, dom_page_list(d));
  }
  return 0;
}

export function alloc_domheap_pages(d: u32, order: u32, memflags: u32): u64 {
  if ((memflags & MEMF_no_owner) != 0) memflags |= MEMF_no_refcount;
  let pg = alloc_heap_pages(MEMZONE_XEN + 1, NR_ZONES() - 1, order, memflags);
  if (pg == INVALID_MFN()) return pg;
  if (d != 0 && (memflags & MEMF_no_owner) == 0) {
    let n = <u64>1 << order;
    if ((memflags & MEMF_no_refcount) != 0) {
      for (let i: u64 = 0; i < n; i++) {
        if (count_info(pg + i) != 0) xen_bug(BUG_ASSERT, 0x502);
        set_count_info(pg + i, PGC_extra());
      }
    }
    if (assign_pages(pg, n, d, memflags) != 0) {
      free_heap_pages(pg, order, (memflags & MEMF_no_scrub) != 0);
      return INVALID_MFN();
    }
  }
  return pg;
}

export function free_domheap_pages(pg: u64, order: u32): void {
  let n = <u64>1 << order;
  if (is_xen_heap_page(pg)) {
    // The memory is not returned: whoever allocated it frees it with free_xenheap_pages.
    let d = page_get_owner(pg);
    if (d != 0) {
      for (let i: u64 = 0; i < n; i++) page_list_del(pg + i);
      let left = domain_xenheap_pages(d) - n;
      set_xenheap_pages(d, left);
      if (left == 0) domain_put_ref(d);
    }
    return;
  }
  let d = page_get_owner(pg);
  if (d != 0) {
    for (let i: u64 = 0; i < n; i++) {
      if ((type_info(pg + i) & PGT_count_mask()) != 0) xen_bug(BUG_ON, 0x503);
      page_list_del(pg + i);
    }
    if ((count_info(pg) & PGC_extra()) != 0) {
      set_extra_pages(d, domain_extra_pages(d) - n);
    } else if (domain_adjust_tot_pages(d, -<i64>n) == 0) {
      domain_put_ref(d);
    }
    free_heap_pages(pg, order, domain_is_dying(d));
  } else {
    free_heap_pages(pg, order, true);
  }
}

export function alloc_xenheap_pages(order: u32, memflags: u32): u64 {
  if (!is_arm64()) return alloc_heap_pages(MEMZONE_XEN, MEMZONE_XEN, order, memflags | MEMF_no_scrub);
  let pg = alloc_domheap_pages(0, order, memflags | MEMF_no_scrub);
  if (pg == INVALID_MFN()) return pg;
  let n = <u64>1 << order;
  for (let i: u64 = 0; i < n; i++) set_count_info(pg + i, count_info(pg + i) | PGC_xen_heap());
  return pg;
}

export function free_xenheap_pages(pg: u64, order: u32): void {
  if (!is_arm64()) { free_heap_pages(pg, order, false); return; }
  let n = <u64>1 << order;
  for (let i: u64 = 0; i < n; i++) set_count_info(pg + i, count_info(pg + i) & ~PGC_xen_heap());
  free_heap_pages(pg, order, true);
}

// FS §3.10. Caller holds d->page_alloc_lock.
export function share_xen_page_with_guest(pg: u64, d: u32, flags: u32): void {
  let va = domain_va(d);
  if (owner_va(pg) == va) return;
  let t = flags == SHARE_ro ? PGT_none() : PGT_writable_page();
  if (feature(F_GFN_IN_PAGE_INFO)) {
    // Read-modify-write, not atomic: the GFN bits are preserved.
    let ti = type_info(pg) & ~(PGT_type_mask() | PGT_count_mask());
    set_type_info(pg, ti | t | MASK_INSR(1, PGT_count_mask()));
  } else {
    set_type_info(pg, t | 1);
  }
  set_owner_va(pg, va);
  if ((count_info(pg) & ~PGC_xen_heap()) != 0) xen_bug(BUG_ASSERT, 0x504);
  if (!domain_is_dying(d)) {
    set_count_info(pg, count_info(pg) | PGC_allocated() | 1);
    let x = domain_xenheap_pages(d);
    set_xenheap_pages(d, x + 1);
    if (x == 0) domain_get_ref(d);
    page_list_add_tail(pg, dom_xenpage_list(d));
  }
}

// FS §3.9: static memory. Returns smfn or INVALID_MFN (rolled back).
export function acquire_staticmem_pages(smfn: u64, nr: u64, memflags: u32): u64 {
  if (nr == 0) return INVALID_MFN();
  for (let i: u64 = 0; i < nr; i++) if (!mfn_valid(smfn + i)) return INVALID_MFN();
  let want = PGC_state_free() | PGC_static();
  for (let i: u64 = 0; i < nr; i++) {
    if (count_info(smfn + i) != want) {
      for (let j: u64 = 0; j < i; j++) set_count_info(smfn + j, want);
      return INVALID_MFN();
    }
    set_count_info(smfn + i, PGC_static() | PGC_state_inuse());
    set_type_info(smfn + i, PGT_TYPE_INFO_INITIALIZER());
    set_owner_va(smfn + i, 0);
  }
  return smfn;
}

export function acquire_domstatic_pages(d: u32, smfn: u64, nr: u64, memflags: u32): i32 {
  if (acquire_staticmem_pages(smfn, nr, memflags) == INVALID_MFN()) return -ENOENT;
  if (assign_pages(smfn, nr, d, memflags) != 0) {
    for (let i: u64 = 0; i < nr; i++) set_count_info(smfn + i, PGC_state_free() | PGC_static());
    return -EINVAL;
  }
  return 0;
}

// HEAD: a static page whose last reference goes returns to the static pool.
export function free_domstatic_page(pg: u64): void {
  let d = page_get_owner(pg);
  if (d != 0) {
    page_list_del(pg);
    if (domain_adjust_tot_pages(d, -1) == 0) domain_put_ref(d);
  }
  set_count_info(pg, PGC_state_free() | PGC_static());
  set_owner_va(pg, 0);
}
