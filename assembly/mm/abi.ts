// Exports of the frame table and heap for the host. Thin wrappers only where
// an @inline accessor must become a real function.

import { hdr_u32, hdr_u64, H_LAST_ERROR, H_TOP, H_FRAME_TABLE, H_FT_BASE_PDX, H_RAM_START, H_MAX_PAGE, H_XENHEAP_START, H_XENHEAP_END } from "../mem/machine";
import * as pi_ from "./page_info";
import { page_list_count } from "./page_list";
import * as dom_ from "./domain";

export { backing_get, backing_lookup, backing_release, backing_count, backing_check } from "../mem/backing";
export { alloc_heap_pages, free_heap_pages, total_avail_pages, avail_pages_zone, page_to_zone } from "./heap";
export {
  alloc_domheap_pages, free_domheap_pages, alloc_xenheap_pages, free_xenheap_pages, assign_pages,
  share_xen_page_with_guest, acquire_staticmem_pages, acquire_domstatic_pages,
} from "./domheap";
export {
  get_page, put_page, put_page_nr, put_page_alloc_ref, page_get_owner_and_reference, page_get_owner_and_nr_reference,
  is_xen_heap_page, is_xen_heap_mfn, is_special_page,
} from "./refs";
import { page_get_xenheap_gfn, page_set_xenheap_gfn } from "./xenheap_gfn";
export { page_get_xenheap_gfn, page_set_xenheap_gfn };
export { domain_slot_init, domain_set_flags, domain_set_max_pages, domain_slot_release, domain_tot_pages } from "./domain";

export function last_error(): u32 { return hdr_u32(H_LAST_ERROR); }
export function mem_top(): u32 { return hdr_u32(H_TOP); }
export function frame_table_ptr(): u32 { return hdr_u32(H_FRAME_TABLE); }
export function frametable_base_pdx(): u64 { return hdr_u64(H_FT_BASE_PDX); }
export function ram_start_mfn(): u64 { return hdr_u64(H_RAM_START); }
export function max_page(): u64 { return hdr_u64(H_MAX_PAGE); }
export function xenheap_mfn_start(): u64 { return hdr_u64(H_XENHEAP_START); }
export function xenheap_mfn_end(): u64 { return hdr_u64(H_XENHEAP_END); }
export function page_info_size(): u32 { return <u32>pi_.PAGE_INFO_SIZE(); }
export function page_info_ptr(mfn: u64): u32 { return <u32>pi_.pi(mfn); }
export function page_va(mfn: u64): u64 { return pi_.page_va(mfn); }
export function mfn_valid(mfn: u64): bool { return pi_.mfn_valid(mfn); }
export function count_info(mfn: u64): u64 { return pi_.count_info(mfn); }
export function type_info(mfn: u64): u64 { return pi_.type_info(mfn); }
export function set_type_info(mfn: u64, v: u64): void { pi_.set_type_info(mfn, v); }
export function set_count_info(mfn: u64, v: u64): void { pi_.set_count_info(mfn, v); }
export function page_owner(mfn: u64): u32 { return dom_.domain_from_va(pi_.owner_va(mfn)); }
export function domain_va(d: u32): u64 { return dom_.domain_va(d); }

// Constants for the current arch/revision, as the host sees them.
export function PGC_allocated(): u64 { return pi_.PGC_allocated(); }
export function PGC_xen_heap(): u64 { return pi_.PGC_xen_heap(); }
export function PGC_static(): u64 { return pi_.PGC_static(); }
export function PGC_need_scrub(): u64 { return pi_.PGC_need_scrub(); }
export function PGC_broken(): u64 { return pi_.PGC_broken(); }
export function PGC_state(): u64 { return pi_.PGC_state(); }
export function PGC_state_free(): u64 { return pi_.PGC_state_free(); }
export function PGC_state_offlined(): u64 { return pi_.PGC_state_offlined(); }
export function PGC_state_offlining(): u64 { return pi_.PGC_state_offlining(); }
export function PGC_extra(): u64 { return pi_.PGC_extra(); }
export function PGC_count_mask(): u64 { return pi_.PGC_count_mask(); }
export function PGT_writable_page(): u64 { return pi_.PGT_writable_page(); }
export function PGT_type_mask(): u64 { return pi_.PGT_type_mask(); }
export function PGT_count_mask(): u64 { return pi_.PGT_count_mask(); }
export function PGT_gfn_mask(): u64 { return pi_.PGT_gfn_mask(); }
export function PGT_gfn_width(): u32 { return pi_.PGT_gfn_width(); }
export function PGT_INVALID_XENHEAP_GFN(): u64 { return pi_.PGT_INVALID_XENHEAP_GFN(); }
export function PGT_TYPE_INFO_INITIALIZER(): u64 { return pi_.PGT_TYPE_INFO_INITIALIZER(); }

export function domain_xenheap_pages(d: u32): u64 { return dom_.domain_xenheap_pages(d); }
export function domain_tot_pages_raw(d: u32): u64 { return dom_.domain_tot_pages_raw(d); }
export function domain_extra_pages(d: u32): u64 { return dom_.domain_extra_pages(d); }
export function domain_max_pages(d: u32): u64 { return dom_.domain_max_pages(d); }
export function domain_refcnt(d: u32): u32 { return dom_.domain_refcnt(d); }
export function domain_page_count(d: u32): u32 { return page_list_count(dom_.dom_page_list(d)); }
export function domain_xenpage_count(d: u32): u32 { return page_list_count(dom_.dom_xenpage_list(d)); }
export function domain_is_dying(d: u32): bool { return dom_.domain_is_dying(d); }
export function domain_shared_info(d: u32): u64 { return dom_.domain_shared_info(d); }
export function set_domain_shared_info(d: u32, mfn: u64): void { dom_.set_domain_shared_info(d, mfn); }

// Batched GFN updates over a run of xenheap frames: one call, n updates.
export function xenheap_gfn_set_range(mfn: u64, n: u32, gfn: u64): void {
  for (let i: u32 = 0; i < n; i++) page_set_xenheap_gfn(mfn + i, gfn + i);
}
export function xenheap_gfn_get_range(mfn: u64, n: u32): u64 {
  let sum: u64 = 0;
  for (let i: u32 = 0; i < n; i++) sum += page_get_xenheap_gfn(mfn + i);
  return sum;
}
// Mark a run of allocated frames as xenheap pages (arm64 PGC_xen_heap), for
// bulk setups; equivalent to alloc_xenheap_pages' flagging step.
export function mark_xen_heap_range(mfn: u64, n: u32): void {
  for (let i: u32 = 0; i < n; i++) pi_.set_count_info(mfn + i, pi_.count_info(mfn + i) | pi_.PGC_xen_heap());
}

// Host iteration of a domain's page lists (relinquish_memory order). ~0 = end.
import { page_list_first, page_list_next } from "./page_list";
export function domain_page_first(d: u32): u64 { return page_list_first(dom_.dom_page_list(d)); }
export function domain_page_next(d: u32, mfn: u64): u64 { return page_list_next(mfn, dom_.dom_page_list(d)); }
export function domain_xenpage_first(d: u32): u64 { return page_list_first(dom_.dom_xenpage_list(d)); }
export function domain_xenpage_next(d: u32, mfn: u64): u64 { return page_list_next(mfn, dom_.dom_xenpage_list(d)); }
// page_set_owner(pg, NULL) (gnttab_unpopulate_status_frames).
export function page_clear_owner(mfn: u64): void { pi_.set_owner_va(mfn, 0); }
