// P2M life cycle: p2m_init / p2m_alloc_table (FS §5.3, 5.4),
// relinquish_p2m_mapping and p2m_teardown (FS §6.10). PRE/GFN shape: the
// R4.17+ P2M page pool is not modelled (table pages are anonymous domheap pages).

import { ENOMEM, ERESTART } from "../errno";
import { LONG_MASK, INVALID_MFN, xen_bug, BUG_ON, BUG_ASSERT } from "../mem/machine";
import { backing_get } from "../mem/backing";
import { feature, F_DYING_REFUSES_P2M } from "../revision";
import { alloc_domheap_pages, free_domheap_pages } from "../mm/domheap";
import { list_head_init, page_list_first, page_list_del } from "../mm/page_list";
import { domain_is_dying } from "../mm/domain";
import {
  p2m_access_rwx, p2m_invalid, LEVEL_ORDER, gfn_offset, lpae_get_mfn, p2m_is_valid, p2m_is_mapping, pte_type, PTE_TYPE_MASK,
} from "./lpae";
import { p2m_root_order, p2m_root_level, P2M_ROOT_PAGES, generate_vttbr, p2m_alloc_vmid_nr, p2m_free_vmid_nr, INVALID_VMID } from "./geometry";
import {
  P2M, P2M_SIZE, P_ROOT, P_ROOT_PTR, P_VTTBR, P_VMID, P_MAX_MAPPED, P_LOWEST_MAPPED,
  P_DEFAULT_ACCESS, P_DOMAIN, P_PAGES, P_NR_PAGES, P_OUT_T, P_OUT_A, P_OUT_ORDER, P_OUT_VALID,
  P2M_OUT_A_UNSET, p2m_check_slot,
} from "./p2m_domain";
import {
  __p2m_set_entry, p2m_force_tlb_flush_sync, p2m_tlb_flush_sync, p2m_get_root_pointer,
  entry_at, level_mask, map_table,
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
//
// Xen's loop runs p2m_get_entry(start) from the root once per hole or leaf and
// steps to gfn_next_boundary(start, order). Inside a table every hole costs a
// full walk, so a domain touching a handful of L3 tables made thousands of
// walks. Here one walk reaches the table holding `start`, then the loop moves
// along that table's entries, visiting exactly the entries (same count, same
// order, same __p2m_set_entry calls) Xen's walks would reach, until a sub-table
// (walk down from the root again) or the table's end (walk again from the
// root). Removals only rewrite the visited leaf and never free a table, so the
// table in hand stays the one a fresh walk would find. The out area ends as
// Xen's last p2m_get_entry leaves it.
export function relinquish_p2m_mapping(d: u32, preempt: bool): i32 {
  p2m_check_slot(d);
  if (feature(F_DYING_REFUSES_P2M) && !domain_is_dying(d)) xen_bug(BUG_ON, 0x470);
  let p = P2M(d);
  let lm = LONG_MASK();
  let inv = INVALID_MFN();
  let start = load<u64>(p, P_LOWEST_MAPPED);
  let end = (load<u64>(p, P_MAX_MAPPED) + 1) & lm;
  let root_level = p2m_root_level();
  let count: u64 = 0;
  let rc: i32 = 0;
  let done = false;
  while (!done && start < end) {
    // p2m_get_entry's walk (start <= max_mapped_gfn: never its early exit).
    let table = p2m_get_root_pointer(d, start);
    if (table == 0) xen_bug(BUG_ASSERT, 0x434); // ASSERT_UNREACHABLE
    let level = root_level;
    while (level < 3) {
      let e = load<u64>(entry_at(table, start, level));
      if (!p2m_is_valid(e) || p2m_is_mapping(e, level)) break;
      table = map_table(lpae_get_mfn(e));
      level++;
    }
    let order = LEVEL_ORDER(level);
    let step = <u64>1 << order;
    do {
      let i = gfn_offset(start, level);
      let e = load<u64>(table + (<usize>i << 3));
      if (level < 3 && p2m_is_valid(e) && !p2m_is_mapping(e, level)) break; // a sub-table: walk down
      if (!p2m_is_valid(e)) {
        // Holes: Xen's walk to each one changes only `count` and the out area
        // (the same for every hole of one table), so a run of them is counted
        // at once, up to the table's end or `end`.
        store<u32>(p, p2m_invalid, P_OUT_T);
        store<u32>(p, P2M_OUT_A_UNSET, P_OUT_A);
        store<u32>(p, 0, P_OUT_VALID);
        store<u32>(p, order, P_OUT_ORDER);
        let last: u32 = ((end - 1) >> (order + 9)) == (start >> (order + 9)) ? gfn_offset(end - 1, level) : 511;
        let j = i + 1;
        // Four entries per test: most of a sparse table is zeros.
        while (j + 3 <= last) {
          let q = table + (<usize>j << 3);
          if (((load<u64>(q) | load<u64>(q, 8) | load<u64>(q, 16) | load<u64>(q, 24)) & PTE_TYPE_MASK) != 0) break;
          j += 4;
        }
        while (j <= last && !p2m_is_valid(load<u64>(table + (<usize>j << 3)))) j++;
        let n = <u64>(j - i);
        let next = ((start + step) & lm) & ~(step - 1); // gfn_next_boundary of the first hole
        let k = 512 - count % 512;
        if (preempt && k <= n) {
          // hypercall_preempt_check() at the k-th hole: `start` stays on it.
          count += k;
          if (k > 1) start = (next + (k - 2) * step) & lm;
          rc = -ERESTART;
          done = true;
          break;
        }
        count += n;
        start = (next + (n - 1) * step) & lm;
        if (start == 0) { done = true; break; } // wrapped past ~0UL (cannot happen below the root range)
        continue;
      }
      // A leaf: what p2m_get_entry(start) returns and writes to the out area.
      store<u32>(p, pte_type(e), P_OUT_T);
      store<u32>(p, load<u32>(p, P_DEFAULT_ACCESS), P_OUT_A);
      store<u32>(p, <u32>(e & 1), P_OUT_VALID);
      store<u32>(p, order, P_OUT_ORDER);
      let mfn = (lpae_get_mfn(e) + (start & level_mask(level))) & lm;
      count++;
      if (preempt && (count % 512) == 0) { rc = -ERESTART; done = true; break; }
      if (mfn != inv) {
        rc = __p2m_set_entry(d, start, order, inv, p2m_invalid, p2m_access_rwx);
        if (rc != 0) { done = true; break; }
      }
      // gfn_next_boundary(start, order)
      start = ((start + step) & lm) & ~(step - 1);
      if (start == 0) { done = true; break; } // wrapped past ~0UL (cannot happen below the root range)
    } while (start < end && gfn_offset(start, level) != 0);
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
