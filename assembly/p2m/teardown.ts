// P2M life cycle: p2m_init / p2m_alloc_table (FS §5.3, 5.4),
// relinquish_p2m_mapping and p2m_teardown (FS §6.10). PRE/GFN shape: the
// R4.17+ P2M page pool is not modelled (table pages are anonymous domheap pages).

import { ENOMEM, ERESTART } from "../errno";
import { LONG_MASK, INVALID_MFN, xen_bug, BUG_ON } from "../mem/machine";
import { backing_get } from "../mem/backing";
import { feature, F_DYING_REFUSES_P2M } from "../revision";
import { alloc_domheap_pages, free_domheap_pages } from "../mm/domheap";
import { list_head_init, page_list_first, page_list_del } from "../mm/page_list";
import { domain_is_dying } from "../mm/domain";
import { p2m_access_rwx, p2m_invalid } from "./lpae";
import { p2m_root_order, P2M_ROOT_PAGES, generate_vttbr, p2m_alloc_vmid_nr, p2m_free_vmid_nr, INVALID_VMID } from "./geometry";
import {
  P2M, P2M_SIZE, P_ROOT, P_ROOT_PTR, P_VTTBR, P_VMID, P_MAX_MAPPED, P_LOWEST_MAPPED,
  P_DEFAULT_ACCESS, P_DOMAIN, P_PAGES, P_NR_PAGES, P_OUT_ORDER, p2m_check_slot,
} from "./p2m_domain";
import {
  p2m_get_entry, __p2m_set_entry, p2m_force_tlb_flush_sync, p2m_tlb_flush_sync,
} from "./p2m";

// p2m_alloc_table(d): root = alloc_domheap_pages(NULL, P2M_ROOT_ORDER, 0),
// every root page cleared, VTTBR computed, forced flush under the write lock.
// Called by p2m_init (PRE shape).
export function p2m_alloc_table(d: u32): i32 {
  let p = P2M(d);
  let root = alloc_domheap_pages(0, p2m_root_order(), 0);
  if (root == INVALID_MFN()) return -ENOMEM;
  let n = P2M_ROOT_PAGES();
  for (let i: u32 = 0; i < n; i++) {
    let t = backing_get(root + i);
    memory.fill(t, 0, 4096); // clear_and_clean_page
    store<u32>(p + P_ROOT_PTR + (<usize>i << 2), <u32>t);
  }
  store<u64>(p, root, P_ROOT);
  store<u64>(p, generate_vttbr(load<u32>(p, P_VMID), root), P_VTTBR);
  // p2m_write_lock; p2m_force_tlb_flush_sync; p2m_write_unlock (host holds nothing here).
  p2m_force_tlb_flush_sync(d);
  return 0;
}

// p2m_init(d) (PRE shape): VMID, fields, root table, back pointer.
// Returns 0, -EBUSY (no VMID left) or -ENOMEM (no root).
// The host holds no P2M lock (the domain is being created); vmid_alloc_lock inside.
export function p2m_init(d: u32): i32 {
  p2m_check_slot(d);
  let p = P2M(d);
  memory.fill(p, 0, P2M_SIZE); // struct domain is zeroed on allocation
  list_head_init(p + P_PAGES);
  store<u64>(p, INVALID_MFN(), P_ROOT);
  store<u32>(p, INVALID_VMID, P_VMID);
  let nr = p2m_alloc_vmid_nr();
  if (nr < 0) return nr;
  store<u32>(p, <u32>nr, P_VMID);
  store<u64>(p, 0, P_MAX_MAPPED);
  store<u64>(p, LONG_MASK(), P_LOWEST_MAPPED);
  store<u32>(p, p2m_access_rwx, P_DEFAULT_ACCESS);
  let rc = p2m_alloc_table(d);
  store<u32>(p, d, P_DOMAIN);
  return rc;
}

// relinquish_p2m_mapping(d): remove every mapping between lowest_mapped_gfn
// and max_mapped_gfn (drops foreign refs, clears xenheap GFNs). `preempt`:
// when true, hypercall_preempt_check() is taken to say "yes" at every 512th
// iteration (-ERESTART, resume point stored in lowest_mapped_gfn).
// Body of: p2m_write_lock ... p2m_write_unlock (the flush of the unlock included).
export function relinquish_p2m_mapping(d: u32, preempt: bool): i32 {
  p2m_check_slot(d);
  if (feature(F_DYING_REFUSES_P2M) && !domain_is_dying(d)) xen_bug(BUG_ON, 0x470);
  let p = P2M(d);
  let lm = LONG_MASK();
  let start = load<u64>(p, P_LOWEST_MAPPED);
  let end = (load<u64>(p, P_MAX_MAPPED) + 1) & lm;
  let count: u64 = 0;
  let rc: i32 = 0;
  while (start < end) {
    let mfn = p2m_get_entry(d, start);
    let order = load<u32>(p, P_OUT_ORDER);
    count++;
    if (preempt && (count % 512) == 0) { rc = -ERESTART; break; }
    if (mfn != INVALID_MFN()) {
      rc = __p2m_set_entry(d, start, order, INVALID_MFN(), p2m_invalid, p2m_access_rwx);
      if (rc != 0) break;
    }
    // gfn_next_boundary(start, order)
    let step = <u64>1 << order;
    start = ((start + step) & lm) & ~(step - 1);
    if (start == 0) break; // wrapped past ~0UL (cannot happen below the root range)
  }
  store<u64>(p, start, P_LOWEST_MAPPED);
  p2m_tlb_flush_sync(d);
  return rc;
}

// p2m_teardown(d) (PRE/GFN): free every page on p2m->pages (head first),
// the root, the VMID; mark uninitialised. No P2M lock needed (domain dead).
export function p2m_teardown(d: u32): void {
  p2m_check_slot(d);
  let p = P2M(d);
  if (load<u32>(p, P_DOMAIN) == 0) return;
  let head = p + P_PAGES;
  while (true) {
    let m = page_list_first(head); // page_list_remove_head
    if (m == <u64>-1) break;
    page_list_del(m);
    free_domheap_pages(m, 0);
  }
  store<u32>(p, 0, P_NR_PAGES);
  if (load<u32>(p, P_ROOT_PTR) != 0) {
    free_domheap_pages(load<u64>(p, P_ROOT), p2m_root_order());
  }
  store<u64>(p, INVALID_MFN(), P_ROOT);
  memory.fill(p + P_ROOT_PTR, 0, 32);
  p2m_free_vmid_nr(load<u32>(p, P_VMID));
  store<u32>(p, 0, P_DOMAIN);
}
