// Every behavioural difference between the four code states, as feature bits.
//
// The host's revision policy (src/revisions/) is the single place that says
// which revision has which feature; it writes the bitmask into the machine
// header at init. Core code asks `feature(F_X)` and never compares revision
// numbers, so a difference cannot hide in a stray `if`.

import { hdr_u32, H_FEATURES } from "./mem/machine";

// HARDEN (5a4a2cef08): p2m_remove_mapping verifies the MFN first, -EILSEQ (FS 6.8).
export const F_REMOVE_CHECKS_MFN: u32 = 1 << 0;
// GFN (71320946d5): xenheap GFN lives in type_info; PGT_count_mask becomes the
// 2-bit field; p2m_put_l3_page clears the stored GFN (FS 2.3, 2.4, 6.7).
export const F_GFN_IN_PAGE_INFO: u32 = 1 << 1;
// GFN: alloc_heap_pages / acquire_staticmem_pages write PGT_TYPE_INFO_INITIALIZER (FS 3.3).
export const F_TYPE_INFO_INITIALIZER: u32 = 1 << 2;
// 3e2121ce47 (4.19): p2m_put_l2_superpage drops references of 2 MiB foreign blocks (FS 6.7).
export const F_PUT_L2_FOREIGN_SUPERPAGE: u32 = 1 << 3;
// 3ebe773293 (4.17-rc2): p2m_set_entry refuses with -ENOMEM while dying;
// relinquish BUG_ON(!is_dying) (FS 6.4, 6.10).
export const F_DYING_REFUSES_P2M: u32 = 1 << 4;
// cbb484d008 (4.22): PGC_need_scrub has its own bit instead of aliasing PGC_allocated (FS 2.1).
export const F_NEED_SCRUB_OWN_BIT: u32 = 1 << 5;
// 10d417b8b6 (4.22): frametable_base_pdx rounded down to PDX_GROUP_COUNT (FS 1.4).
export const F_FT_BASE_ROUNDED: u32 = 1 << 6;
// 5951b856d8 (4.17-rc1): page_get_owner_and_nr_reference refuses nr >= PGC_count_mask (FS 3.11).
export const F_GET_PAGE_NR: u32 = 1 << 7;
// HEAD p2m_get_page_from_gfn: foreign owner NULL/self returns NULL under the read lock (FS 6.3).
export const F_GET_PAGE_FROM_GFN_LOCKED: u32 = 1 << 8;
// HEAD: put_page frees PGC_static pages with free_domstatic_page (FS 3.11).
export const F_STATIC_FREE_DOMSTATIC: u32 = 1 << 9;
// 6d44fb48bd (4.18.0-rc1): arm32 uses the pa_range_info table; a 32-bit IPA
// configuration exists (T0SZ 0, level-1 root of 1 page, VTCR 0x80003540) (FS 5.2).
export const F_ARM32_PA_RANGE_32: u32 = 1 << 10;
// 14c57887f3 (4.21.0-rc1): p2m_invalidate_root loops over P2M_ROOT_PAGES, not
// P2M_ROOT_LEVEL (FS 6.11, 11.9).
export const F_INVALIDATE_ROOT_PAGES: u32 = 1 << 11;

// @ts-ignore: decorator
@inline export function feature(f: u32): bool { return (hdr_u32(H_FEATURES) & f) != 0; }
