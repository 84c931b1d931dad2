// The buddy allocator: alloc_heap_pages / free_heap_pages (FS §3.3, 3.4).
// Single NUMA node. Free chunks sit on heap(zone, order) lists threaded
// through page_info.list; a chunk head carries PFN_ORDER and u.free.
//
// Heap state (linear memory):
//
//   +0   u64 total_avail_pages
//   +8   u64 avail[NR_ZONES]              (NR_ZONES <= 37)
//   +8+8*37  list_head heads[NR_ZONES][MAX_ORDER + 1]
//
// Zones: page_to_zone = flsl(mfn) (1 for MFN 0); arm32's separate xenheap
// is MEMZONE_XEN = 0, identified by MFN range.

import { hdr_u32, hdr_set_u32, hdr_u64, H_HEAP, H_XENHEAP_START, H_XENHEAP_END, is_arm64, INVALID_MFN, xen_bug, BUG_ON } from "../mem/machine";
import { region_alloc } from "../mem/region";
import { backing_release, backing_count } from "../mem/backing";
import {
  MAX_ORDER, INVALID_DIRTY_IDX, FREE_FIELDS_MASK, FREE_NEED_TLBFLUSH, FREE_SCRUB_STATE_MASK, FREE_FIRST_DIRTY_MASK,
  count_info, set_count_info, set_type_info, type_info, owner_va, set_owner_va, pfn_order, set_pfn_order,
  PGC_state, PGC_state_free, PGC_state_inuse, PGC_state_offlining, PGC_state_offlined, PGC_broken, PGC_need_scrub,
  PGT_TYPE_INFO_INITIALIZER, mfn_valid, pi, OFF_TLBFLUSH,
} from "./page_info";
import { list_head_init, page_list_add, page_list_add_tail, page_list_del, page_list_first, LIST_HEAD_SIZE } from "./page_list";

export const MEMZONE_XEN: u32 = 0;
export const MEMF_no_refcount: u32 = 1 << 0;
export const MEMF_populate_on_demand: u32 = 1 << 1;
export const MEMF_no_dma: u32 = 1 << 3;
export const MEMF_exact_node: u32 = 1 << 4;
export const MEMF_no_owner: u32 = 1 << 5;
export const MEMF_no_tlbflush: u32 = 1 << 6;
export const MEMF_no_icache_flush: u32 = 1 << 7;
export const MEMF_no_scrub: u32 = 1 << 8;

const MAX_ZONES: u32 = 37;

// @ts-ignore: decorator
@inline export function NR_ZONES(): u32 { return is_arm64() ? 37 : 29; }   // PADDR_BITS - PAGE_SHIFT + 1

// @ts-ignore: decorator
@inline function H(): usize { return <usize>hdr_u32(H_HEAP); }
// @ts-ignore: decorator
@inline function avail_p(zone: u32): usize { return H() + 8 + <usize>zone * 8; }
// @ts-ignore: decorator
@inline export function heap_head(zone: u32, order: u32): usize {
  return H() + 8 + 8 * MAX_ZONES + (<usize>zone * (MAX_ORDER + 1) + order) * LIST_HEAD_SIZE();
}

export function heap_init(): void {
  let size: usize = 8 + 8 * <usize>MAX_ZONES + <usize>MAX_ZONES * <usize>(MAX_ORDER + 1) * 16;
  hdr_set_u32(H_HEAP, <u32>region_alloc(size, 64));
  for (let z: u32 = 0; z < NR_ZONES(); z++)
    for (let o: u32 = 0; o <= MAX_ORDER; o++) list_head_init(heap_head(z, o));
}

export function total_avail_pages(): u64 { return load<u64>(H()); }
export function avail_pages_zone(zone: u32): u64 { return load<u64>(avail_p(zone)); }

function add_avail(zone: u32, delta: i64): void {
  store<u64>(H(), <u64>(<i64>load<u64>(H()) + delta));
  store<u64>(avail_p(zone), <u64>(<i64>load<u64>(avail_p(zone)) + delta));
}

// @ts-ignore: decorator
@inline function flsl(x: u64): u32 { return x == 0 ? 0 : 64 - <u32>clz(x); }

// arm32 identifies xenheap pages by MFN range (PGC_xen_heap is never set there).
// @ts-ignore: decorator
@inline export function in_xenheap_range(mfn: u64): bool {
  return !is_arm64() && mfn >= hdr_u64(H_XENHEAP_START) && mfn < hdr_u64(H_XENHEAP_END);
}

export function page_to_zone(mfn: u64): u32 {
  if (in_xenheap_range(mfn)) return MEMZONE_XEN;
  let z = flsl(mfn);
  return z == 0 ? 1 : z;
}

export function bits_to_zone(b: u32): u32 { return b < 13 ? 1 : b - 12; }

// page_list_add_scrub: chunk head bookkeeping, dirty chunks at the tail so
// clean memory is handed out first.
function page_list_add_scrub(mfn: u64, zone: u32, order: u32, first_dirty: u64): void {
  set_pfn_order(mfn, order);
  let u = type_info(mfn);
  u = (u & ~(FREE_FIRST_DIRTY_MASK | FREE_SCRUB_STATE_MASK)) | (first_dirty & FREE_FIRST_DIRTY_MASK);
  set_type_info(mfn, u);
  if (first_dirty != INVALID_DIRTY_IDX) page_list_add_tail(mfn, heap_head(zone, order));
  else page_list_add(mfn, heap_head(zone, order));
}

// @ts-ignore: decorator
@inline function first_dirty_of(mfn: u64): u64 { return type_info(mfn) & FREE_FIRST_DIRTY_MASK; }

function get_free_buddy(zone_lo: u32, zone_hi: u32, order: u32, memflags: u32): u64 {
  // First pass wants clean memory unless the caller scrubs anyway.
  let use_unscrubbed = (memflags & MEMF_no_scrub) != 0;
  while (true) {
    for (let zone = <i32>zone_hi; zone >= <i32>zone_lo; zone--) {
      if (load<u64>(avail_p(<u32>zone)) == 0) continue;
      for (let j = order; j <= MAX_ORDER; j++) {
        let head = heap_head(<u32>zone, j);
        let pg = page_list_first(head);
        if (pg == <u64>-1) continue;
        if (use_unscrubbed) return pg | (<u64>j << 58);
        // Dirty chunks are at the tail: the head is clean if any is.
        if (first_dirty_of(pg) == INVALID_DIRTY_IDX) return pg | (<u64>j << 58);
      }
    }
    if (use_unscrubbed) return INVALID_MFN();
    use_unscrubbed = true;
  }
  return INVALID_MFN();
}

// Returns the first MFN of the 2^order chunk, or INVALID_MFN.
export function alloc_heap_pages(zone_lo: u32, zone_hi: u32, order: u32, memflags: u32): u64 {
  if (order > MAX_ORDER) return INVALID_MFN();
  if (zone_hi >= NR_ZONES()) zone_hi = NR_ZONES() - 1;
  let found = get_free_buddy(zone_lo, zone_hi, order, memflags);
  if (found == INVALID_MFN()) return INVALID_MFN();
  let j = <u32>(found >> 58);
  let pg = found & 0x03FFFFFFFFFFFFFF;
  let zone = page_to_zone(pg);
  let first_dirty = first_dirty_of(pg);
  page_list_del(pg);
  // Halve: the lower half goes back, the upper half carries on.
  while (j != order) {
    j--;
    let half = <u64>1 << j;
    page_list_add_scrub(pg, zone, j, half > first_dirty ? first_dirty : INVALID_DIRTY_IDX);
    pg += half;
    if (first_dirty != INVALID_DIRTY_IDX) {
      if (first_dirty >= half) first_dirty -= half;
      else first_dirty = 0; // dirty pages may remain in the upper half
    }
  }
  let n = <u64>1 << order;
  add_avail(zone, -<i64>n);
  let scrub = PGC_need_scrub();
  let init = PGT_TYPE_INFO_INITIALIZER();
  for (let i: u64 = 0; i < n; i++) {
    let m = pg + i;
    let c = count_info(m);
    if ((c & ~scrub) != PGC_state_free()) xen_bug(BUG_ON, 0x200);
    set_count_info(m, PGC_state_inuse() | (c & scrub));
    set_type_info(m, init);
    set_owner_va(m, 0);
  }
  // After heap_lock is dropped: test_and_clear the need-scrub bit; scrub unless told not to.
  if (first_dirty != INVALID_DIRTY_IDX) {
    for (let i: u64 = 0; i < n; i++) {
      let m = pg + i;
      let c = count_info(m);
      if ((c & scrub) != 0) {
        set_count_info(m, c & ~scrub);
        if ((memflags & MEMF_no_scrub) == 0) backing_release(m);
      }
    }
  }
  return pg;
}

// mark_page_free + buddy merge (FS §3.4).
export function free_heap_pages(pg: u64, order: u32, need_scrub: bool): void {
  let n = <u64>1 << order;
  let zone = page_to_zone(pg);
  for (let i: u64 = 0; i < n; i++) {
    let m = pg + i;
    let c = count_info(m);
    let st = c & PGC_state();
    if (st == PGC_state_inuse()) {
      if ((c & PGC_broken()) != 0) xen_bug(BUG_ON, 0x201);
      set_count_info(m, PGC_state_free());
    } else if (st == PGC_state_offlining()) {
      set_count_info(m, (c & PGC_broken()) | PGC_state_offlined());
    } else {
      xen_bug(BUG_ON, 0x202);
    }
    let u = type_info(m) & ~FREE_NEED_TLBFLUSH;
    if (owner_va(m) != 0) u |= FREE_NEED_TLBFLUSH;
    set_type_info(m, u);
    store<u32>(pi(m) + OFF_TLBFLUSH(), 0); // tlbflush_current_time() is 0 on Arm
    set_owner_va(m, 0);
    if (backing_count() != 0) backing_release(m);
  }
  add_avail(zone, <i64>n);
  let first_dirty = INVALID_DIRTY_IDX;
  if (need_scrub) {
    let s = PGC_need_scrub();
    for (let i: u64 = 0; i < n; i++) set_count_info(pg + i, count_info(pg + i) | s);
    first_dirty = 0;
  }
  // Merge with buddies while they are free, of the same order and zone.
  while (order < MAX_ORDER) {
    let mask = <u64>1 << order;
    if ((pg & mask) != 0) {
      let pred = pg - mask;
      if (!mfn_valid(pred) || !is_free_head(pred, order, zone)) break;
      let pfd = first_dirty_of(pred);
      page_list_del(pred);
      if (pfd != INVALID_DIRTY_IDX) first_dirty = pfd;
      else if (first_dirty != INVALID_DIRTY_IDX) first_dirty += mask;
      pg = pred;
    } else {
      let succ = pg + mask;
      if (!mfn_valid(succ) || !is_free_head(succ, order, zone)) break;
      let sfd = first_dirty_of(succ);
      page_list_del(succ);
      if (first_dirty == INVALID_DIRTY_IDX && sfd != INVALID_DIRTY_IDX) first_dirty = mask + sfd;
    }
    order++;
  }
  page_list_add_scrub(pg, zone, order, first_dirty);
}

// @ts-ignore: decorator
@inline function is_free_head(m: u64, order: u32, zone: u32): bool {
  // Xen checks state and PFN_ORDER; we also keep chunks inside one zone
  // (only matters next to arm32's xenheap range).
  return (count_info(m) & PGC_state()) == PGC_state_free() && pfn_order(m) == order && page_to_zone(m) == zone;
}

// Boot: hand [start, start+nr) to the heap as naturally aligned chunks.
export function init_heap_pages(start: u64, nr: u64): void {
  let m = start;
  let end = start + nr;
  while (m < end) {
    let order: u32 = 0;
    while (order < MAX_ORDER && (m & ((<u64>1 << (order + 1)) - 1)) == 0 && m + (<u64>1 << (order + 1)) <= end &&
           page_to_zone(m) == page_to_zone(m + (<u64>1 << (order + 1)) - 1)) order++;
    let n = <u64>1 << order;
    for (let i: u64 = 0; i < n; i++) set_count_info(m + i, PGC_state_inuse());
    free_heap_pages(m, order, false);
    m += n;
  }
}
