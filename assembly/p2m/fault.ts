// Valid-bit games (FS §6.11): p2m_invalidate_table / p2m_invalidate_root and
// p2m_resolve_translation_fault. All run under the P2M write lock (the host
// takes it); p2m_invalidate_root and p2m_resolve_translation_fault include
// the flush of p2m_write_unlock.

import { xen_bug, BUG_ASSERT } from "../mem/machine";
import { backing_lookup } from "../mem/backing";
import { feature, F_INVALIDATE_ROOT_PAGES } from "../revision";
import {
  PTE_VALID, LEVEL_ORDER, gfn_offset, lpae_get_mfn, lpae_is_valid, lpae_is_table, p2m_is_valid,
  p2m_is_mapping, XEN_PT_LPAE_ENTRIES,
} from "./lpae";
import { p2m_root_level, P2M_ROOT_PAGES } from "./geometry";
import { P2M, P_ROOT_PTR, P_MAX_MAPPED, P_NEED_FLUSH } from "./p2m_domain";
import { p2m_write_pte } from "./log";
import { p2m_get_root_pointer, p2m_tlb_flush_sync } from "./p2m";

// Clear the hardware valid bit of every valid entry of a table whose entries
// are at `level` and cover GFNs from `gfn_base`; set need_flush.
function invalidate_entries(d: u32, table: usize, gfn_base: u64, level: u32): void {
  for (let i: u32 = 0; i < XEN_PT_LPAE_ENTRIES; i++) {
    let e = table + (<usize>i << 3);
    let pte = load<u64>(e);
    if ((pte & PTE_VALID) == 0) continue;
    p2m_write_pte(d, e, pte & ~PTE_VALID, gfn_base + (<u64>i << LEVEL_ORDER(level)), level);
  }
  store<u32>(P2M(d), 1, P_NEED_FLUSH);
}

// p2m_invalidate_table(p2m, mfn): `gfn_base`/`level` only label log records.
export function p2m_invalidate_table(d: u32, mfn: u64, gfn_base: u64, level: u32): void {
  let t = backing_lookup(mfn);
  if (t == 0) xen_bug(BUG_ASSERT, 0x490);
  invalidate_entries(d, t, gfn_base, level);
}

// p2m_invalidate_root. Before 14c57887f3 the loop bound is P2M_ROOT_LEVEL
// (FS §11.9): nothing on a level-0 root, only the first of two arm32 root pages.
export function p2m_invalidate_root(d: u32): void {
  let p = P2M(d);
  let rl = p2m_root_level();
  let n = feature(F_INVALIDATE_ROOT_PAGES) ? P2M_ROOT_PAGES() : rl;
  for (let i: u32 = 0; i < n; i++) {
    let t = <usize>load<u32>(p + P_ROOT_PTR + (<usize>i << 2));
    if (t == 0) xen_bug(BUG_ASSERT, 0x491);
    invalidate_entries(d, t, <u64>i << (LEVEL_ORDER(rl) + 9), rl);
  }
  p2m_tlb_flush_sync(d);
}

// p2m_resolve_translation_fault(d, gfn): true = resolved.
export function p2m_resolve_translation_fault(d: u32, gfn: u64): bool {
  let p = P2M(d);
  let resolved = false;
  if (gfn <= load<u64>(p, P_MAX_MAPPED)) {
    let table = p2m_get_root_pointer(d, gfn);
    if (table == 0) xen_bug(BUG_ASSERT, 0x492); // ASSERT_UNREACHABLE
    let level = p2m_root_level();
    let entry: u64 = 0;
    let failed = false;
    for (; level <= 3; level++) {
      entry = load<u64>(table + (<usize>gfn_offset(gfn, level) << 3));
      if (level == 3) break;
      if (!lpae_is_valid(entry)) break;
      // p2m_next_level(read_only = true)
      if (!p2m_is_valid(entry)) { failed = true; break; }
      if (p2m_is_mapping(entry, level)) break;
      let next = backing_lookup(lpae_get_mfn(entry));
      if (next == 0) xen_bug(BUG_ASSERT, 0x493);
      table = next;
    }
    if (!failed) {
      if (lpae_is_valid(entry)) {
        resolved = true;
      } else if (p2m_is_valid(entry)) {
        let mask = (<u64>1 << LEVEL_ORDER(level)) - 1;
        if (lpae_is_table(entry, level)) p2m_invalidate_table(d, lpae_get_mfn(entry), gfn & ~mask, level + 1);
        resolved = true;
        p2m_write_pte(d, table + (<usize>gfn_offset(gfn, level) << 3), entry | PTE_VALID, gfn & ~mask, level);
      }
    }
  }
  p2m_tlb_flush_sync(d);
  return resolved;
}
