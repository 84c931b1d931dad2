// struct page_info: the frame table (FS §1) and its count_info / type_info
// packing (FS §2). One record per machine frame, bytes as Xen holds them.
//
//   arm64 (56 bytes)                         arm32 (32 bytes)
//   +0  list.next    (page_info VA / head VA) +0  list.next
//   +8  list.prev                             +4  list.prev
//   +16 count_info   (PGC_* | count)          +8  count_info
//   +24 u: type_info (PGT_* | count | gfn)    +12 u
//       or u.free {first_dirty:19,
//                  need_tlbflush:1, scrub_state:2}
//   +32 v: owner (struct domain VA)           +16 v
//       or v.free.order (u32)
//   +40 tlbflush_timestamp (u32, always 0)    +20 tlbflush_timestamp
//   +44 (padding)                             --
//   +48 pad (u64)                             +24 pad (u64)
//
// Words are `unsigned long`: 8 bytes on arm64, 4 on arm32. Accessors take
// and return u64 and zero-extend/truncate for arm32. Flags are computed from
// Xen's PG_mask(x, idx) = x << (BITS_PER_LONG - idx), so both arches share
// one definition.

import { hdr_u32, hdr_u64, H_FRAME_TABLE, H_FT_BASE_PDX, H_RAM_START, H_MAX_PAGE, is_arm64, BITS_PER_LONG, LONG_MASK } from "../mem/machine";
import { feature, F_GFN_IN_PAGE_INFO, F_NEED_SCRUB_OWN_BIT, F_TYPE_INFO_INITIALIZER } from "../revision";
import { FRAMETABLE_VIRT_START } from "../mem/region";
import { frame_logged } from "./frame_log";

// @ts-ignore: decorator
@inline export function PAGE_INFO_SIZE(): usize { return is_arm64() ? 56 : 32; }
// @ts-ignore: decorator
@inline function W(): usize { return is_arm64() ? 8 : 4; }

// Field offsets, computed from the word size.
// @ts-ignore: decorator
@inline export function OFF_NEXT(): usize { return 0; }
// @ts-ignore: decorator
@inline export function OFF_PREV(): usize { return W(); }
// @ts-ignore: decorator
@inline export function OFF_COUNT(): usize { return 2 * W(); }
// @ts-ignore: decorator
@inline export function OFF_U(): usize { return 3 * W(); }
// @ts-ignore: decorator
@inline export function OFF_V(): usize { return 4 * W(); }
// @ts-ignore: decorator
@inline export function OFF_TLBFLUSH(): usize { return 5 * W(); }
// @ts-ignore: decorator
@inline export function OFF_PAD(): usize { return is_arm64() ? 48 : 24; }

// ---- PG_mask / PG_shift -------------------------------------------------

// @ts-ignore: decorator
@inline export function PG_shift(idx: u32): u32 { return BITS_PER_LONG() - idx; }
// @ts-ignore: decorator
@inline export function PG_mask(x: u64, idx: u32): u64 { return (x << <u64>PG_shift(idx)) & LONG_MASK(); }

// ---- count_info (FS §2.1) ------------------------------------------------

// @ts-ignore: decorator
@inline export function PGC_allocated(): u64 { return PG_mask(1, 1); }
// @ts-ignore: decorator
@inline export function PGC_xen_heap(): u64 { return PG_mask(1, 2); }
// PRE/GFN call it PGC_reserved; later PGC_static (CONFIG_STATIC_MEMORY assumed on).
// @ts-ignore: decorator
@inline export function PGC_static(): u64 { return PG_mask(1, 3); }
// Up to 4.21 need_scrub aliases PGC_allocated (a free page needing scrub has
// bit 63/31 set); HEAD gives it idx 5.
// @ts-ignore: decorator
@inline export function PGC_need_scrub(): u64 { return feature(F_NEED_SCRUB_OWN_BIT) ? PG_mask(1, 5) : PG_mask(1, 1); }
// @ts-ignore: decorator
@inline export function PGC_broken(): u64 { return PG_mask(1, 7); }
// @ts-ignore: decorator
@inline export function PGC_state(): u64 { return PG_mask(3, 9); }
// @ts-ignore: decorator
@inline export function PGC_state_inuse(): u64 { return 0; }
// @ts-ignore: decorator
@inline export function PGC_state_offlining(): u64 { return PG_mask(1, 9); }
// @ts-ignore: decorator
@inline export function PGC_state_offlined(): u64 { return PG_mask(2, 9); }
// @ts-ignore: decorator
@inline export function PGC_state_free(): u64 { return PG_mask(3, 9); }
// @ts-ignore: decorator
@inline export function PGC_extra(): u64 { return PG_mask(1, 10); }
// @ts-ignore: decorator
@inline export function PGC_count_width(): u32 { return PG_shift(10); }
// @ts-ignore: decorator
@inline export function PGC_count_mask(): u64 { return (<u64>1 << <u64>PGC_count_width()) - 1; }

// ---- type_info (FS §2.3) -------------------------------------------------

// @ts-ignore: decorator
@inline export function PGT_none(): u64 { return 0; }
// @ts-ignore: decorator
@inline export function PGT_writable_page(): u64 { return PG_mask(1, 1); }
// @ts-ignore: decorator
@inline export function PGT_type_mask(): u64 { return PG_mask(1, 1); }
// Before GFN: a 62/30-bit count in bits 0..61/0..29. From GFN: a 2-bit field.
// @ts-ignore: decorator
@inline export function PGT_count_mask(): u64 {
  return feature(F_GFN_IN_PAGE_INFO) ? PG_mask(3, 3) : (<u64>1 << <u64>PG_shift(2)) - 1;
}
// @ts-ignore: decorator
@inline export function PGT_gfn_width(): u32 { return PG_shift(3); }
// @ts-ignore: decorator
@inline export function PGT_gfn_mask(): u64 { return (<u64>1 << <u64>PGT_gfn_width()) - 1; }
// @ts-ignore: decorator
@inline export function PGT_INVALID_XENHEAP_GFN(): u64 { return PGT_gfn_mask(); }
// x86 and pre-GFN Arm: the common default 0.
// @ts-ignore: decorator
@inline export function PGT_TYPE_INFO_INITIALIZER(): u64 {
  return feature(F_TYPE_INFO_INITIALIZER) ? PGT_gfn_mask() : 0;
}

// MASK_INSR(v, m): v placed at the mask's lowest set bit, clipped to m.
// @ts-ignore: decorator
@inline export function MASK_INSR(v: u64, m: u64): u64 { return (v * (m & (~m + 1))) & m; }
// @ts-ignore: decorator
@inline export function MASK_EXTR(v: u64, m: u64): u64 { return (v & m) / (m & (~m + 1)); }

// ---- u.free bit-fields (FS §1.2) -----------------------------------------

export const MAX_ORDER: u32 = 18;
export const INVALID_DIRTY_IDX: u64 = 0x7FFFF;
export const FREE_FIRST_DIRTY_MASK: u64 = 0x7FFFF;
export const FREE_NEED_TLBFLUSH: u64 = 1 << 19;
export const FREE_SCRUB_STATE_MASK: u64 = 3 << 20;
export const FREE_FIELDS_MASK: u64 = 0x3FFFFF;

// ---- frame table indexing (FS §1.4) --------------------------------------

// @ts-ignore: decorator
@inline export function frametable_base_pdx(): u64 { return hdr_u64(H_FT_BASE_PDX); }
// @ts-ignore: decorator
@inline export function max_page(): u64 { return hdr_u64(H_MAX_PAGE); }

// mfn_valid: inside the RAM covered by the frame table (PDX == PFN).
// @ts-ignore: decorator
@inline export function mfn_valid(mfn: u64): bool {
  return mfn >= hdr_u64(H_RAM_START) && mfn < hdr_u64(H_MAX_PAGE);
}

// Linear address of the frame's record. Caller guarantees frame-table range.
// @ts-ignore: decorator
@inline export function pi(mfn: u64): usize {
  return <usize>hdr_u32(H_FRAME_TABLE) + <usize>(mfn - hdr_u64(H_FT_BASE_PDX)) * PAGE_INFO_SIZE();
}

// The Xen virtual address of the record: what list links point at.
// @ts-ignore: decorator
@inline export function page_va(mfn: u64): u64 {
  return FRAMETABLE_VIRT_START() + (mfn - hdr_u64(H_FT_BASE_PDX)) * <u64>PAGE_INFO_SIZE();
}

// @ts-ignore: decorator
@inline export function is_page_va(va: u64): bool {
  let base = FRAMETABLE_VIRT_START();
  return va >= base && va < base + (hdr_u64(H_MAX_PAGE) - hdr_u64(H_FT_BASE_PDX)) * <u64>PAGE_INFO_SIZE();
}
// @ts-ignore: decorator
@inline export function va_to_mfn(va: u64): u64 {
  return (va - FRAMETABLE_VIRT_START()) / <u64>PAGE_INFO_SIZE() + hdr_u64(H_FT_BASE_PDX);
}

// ---- word access ----------------------------------------------------------

// @ts-ignore: decorator
@inline export function ld_word(p: usize): u64 { return is_arm64() ? load<u64>(p) : <u64>load<u32>(p); }
// @ts-ignore: decorator
@inline export function st_word(p: usize, v: u64): void { if (is_arm64()) store<u64>(p, v); else store<u32>(p, <u32>v); }

// @ts-ignore: decorator
@inline export function count_info(mfn: u64): u64 { return ld_word(pi(mfn) + OFF_COUNT()); }
// @ts-ignore: decorator
@inline export function set_count_info(mfn: u64, v: u64): void { frame_logged(mfn); st_word(pi(mfn) + OFF_COUNT(), v); }
// @ts-ignore: decorator
@inline export function type_info(mfn: u64): u64 { return ld_word(pi(mfn) + OFF_U()); }
// @ts-ignore: decorator
@inline export function set_type_info(mfn: u64, v: u64): void { frame_logged(mfn); st_word(pi(mfn) + OFF_U(), v); }
// v.inuse.domain: the owner's emulated struct domain address (0 = NULL).
// @ts-ignore: decorator
@inline export function owner_va(mfn: u64): u64 { return ld_word(pi(mfn) + OFF_V()); }
// @ts-ignore: decorator
@inline export function set_owner_va(mfn: u64, v: u64): void { frame_logged(mfn); st_word(pi(mfn) + OFF_V(), v); }
// v.free.order is an unsigned int: only the low 4 bytes of v are written.
// @ts-ignore: decorator
@inline export function pfn_order(mfn: u64): u32 { return load<u32>(pi(mfn) + OFF_V()); }
// @ts-ignore: decorator
@inline export function set_pfn_order(mfn: u64, o: u32): void { frame_logged(mfn); store<u32>(pi(mfn) + OFF_V(), o); }

// @ts-ignore: decorator
@inline export function page_state_is(mfn: u64, st: u64): bool { return (count_info(mfn) & PGC_state()) == st; }

// cmpxchg on a word of `mfn`'s record (the MFN for the frame-record log).
// Single-threaded Wasm: the loop in callers is kept so that the code reads
// like Xen's and the host can interleave around it.
// @ts-ignore: decorator
@inline export function cmpxchg_word(mfn: u64, p: usize, old: u64, nw: u64): u64 {
  let cur = ld_word(p);
  if (cur == old) {
    frame_logged(mfn);
    st_word(p, nw);
  }
  return cur;
}
