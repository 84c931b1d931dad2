// page_get_xenheap_gfn / page_set_xenheap_gfn (FS §2.4; GFN and HEAD only).

import { INVALID_GFN, xen_bug, BUG_ASSERT } from "../mem/machine";
import { pi, OFF_U, ld_word, cmpxchg_word, PGT_gfn_mask, PGT_INVALID_XENHEAP_GFN } from "./page_info";
import { is_xen_heap_page } from "./refs";

export function page_get_xenheap_gfn(mfn: u64): u64 {
  let gfn = ld_word(pi(mfn) + OFF_U()) & PGT_gfn_mask(); // ACCESS_ONCE: one load
  if (!is_xen_heap_page(mfn)) xen_bug(BUG_ASSERT, 0x300);
  return gfn == PGT_INVALID_XENHEAP_GFN() ? INVALID_GFN() : gfn;
}

// Not masked: the only caller storing a real GFN does so after a successful
// p2m_set_entry, so the GFN is below the root reach (FS §2.4 step 1).
export function page_set_xenheap_gfn(mfn: u64, gfn: u64): void {
  let gfn_x = gfn == INVALID_GFN() ? PGT_INVALID_XENHEAP_GFN() : gfn;
  if (!is_xen_heap_page(mfn)) xen_bug(BUG_ASSERT, 0x301);
  let p = pi(mfn) + OFF_U();
  let mask = PGT_gfn_mask();
  let y = ld_word(p);
  let x: u64;
  do {
    x = y;
    y = cmpxchg_word(mfn, p, x, (x & ~mask) | gfn_x);
  } while (y != x);
}
