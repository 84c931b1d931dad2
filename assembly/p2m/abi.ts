// Host ABI of the P2M: field getters and batch calls (one JS->Wasm crossing
// for many operations). Buffers live in linear memory; re-create typed-array
// views after any call that may grow memory.
//
// Lookup out area: after p2m_get_entry(d, gfn) the host reads, at
// p2m_out_ptr(d): u32 t, u32 a (0xFFFFFFFF = unset), u32 page_order, u32 valid.
//
// Batch lookup buffer (p2m_lookup_batch(d, buf, n)):
//   in : buf[0 .. 8n)         n u64 GFNs
//   out: buf[8n .. 8n + 16n)  n records of 16 bytes:
//          +0 u64 mfn (INVALID_MFN() when unmapped)
//          +8 u8 t  +9 u8 a (0xFF = unset)  +10 u8 page_order  +11 u8 valid  +12 u32 0

import { LONG_MASK, INVALID_MFN, MAX_DOMAINS } from "../mem/machine";
import { region_alloc } from "../mem/region";
import { p2m_access_rwx, p2m_invalid } from "./lpae";
import {
  P2M, P2M_GLOBALS, G_BATCH_BUF, G_BATCH_SIZE, P_ROOT, P_ROOT_PTR, P_VTTBR, P_VMID, P_MAX_MAPPED,
  P_LOWEST_MAPPED, P_NEED_FLUSH, P_DEFAULT_ACCESS, P_DOMAIN, P_MAPPINGS, P_SHATTERED, P_NR_PAGES,
  P_FLUSH_COUNT, P_OUT_T, P_OUT_DONE, p2m_check_slot,
} from "./p2m_domain";
import { p2m_set_entry, p2m_get_entry, p2m_tlb_flush_sync } from "./p2m";

export { p2m_geometry_init, p2m_init_array, p2m_vtcr, p2m_vmid_in_use } from "./geometry";
import { p2m_ipa_bits } from "./geometry";
export { p2m_log_ptr, p2m_log_count } from "./log";
export { frame_log_ptr, frame_log_count, frame_log_note } from "../mm/frame_log";
export {
  p2m_get_entry, p2m_set_entry, __p2m_set_entry, p2m_free_entry, p2m_split_superpage,
  p2m_put_l3_page, p2m_put_l2_superpage, p2m_tlb_flush_sync, p2m_force_tlb_flush_sync, p2m_read_entry,
} from "./p2m";
export { p2m_init, p2m_alloc_table, relinquish_p2m_mapping, p2m_teardown } from "./teardown";
export {
  p2m_insert_mapping, p2m_remove_mapping, guest_physmap_add_entry, guest_physmap_add_page,
  guest_physmap_add_pages, guest_physmap_remove_page, map_mmio_regions, unmap_mmio_regions,
  set_foreign_p2m_entry,
} from "./physmap";
export { mfn_to_p2m_entry, p2m_set_permission } from "./lpae";
export { p2m_invalidate_table, p2m_invalidate_root, p2m_resolve_translation_fault } from "./fault";

// ---- field getters --------------------------------------------------------------

export function p2m_ptr(d: u32): usize { return P2M(d); }
export function p2m_out_ptr(d: u32): usize { return P2M(d) + P_OUT_T; }
export function p2m_initialised(d: u32): bool { return load<u32>(P2M(d), P_DOMAIN) != 0; }
// Root MFN, INVALID_MFN() when NULL.
export function p2m_root_mfn(d: u32): u64 {
  return load<u32>(P2M(d), P_ROOT_PTR) == 0 ? INVALID_MFN() : load<u64>(P2M(d), P_ROOT);
}
export function p2m_vmid(d: u32): u32 { return load<u32>(P2M(d), P_VMID); }
export function p2m_vttbr(d: u32): u64 { return load<u64>(P2M(d), P_VTTBR); }
export function p2m_max_mapped_gfn(d: u32): u64 { return load<u64>(P2M(d), P_MAX_MAPPED); }
export function p2m_lowest_mapped_gfn(d: u32): u64 { return load<u64>(P2M(d), P_LOWEST_MAPPED); }
export function p2m_need_flush(d: u32): bool { return load<u32>(P2M(d), P_NEED_FLUSH) != 0; }
export function p2m_default_access(d: u32): u32 { return load<u32>(P2M(d), P_DEFAULT_ACCESS); }
export function p2m_mappings(d: u32, level: u32): u64 {
  return load<u64>(P2M(d) + P_MAPPINGS + (<usize>(level & 3) << 3)) & LONG_MASK();
}
export function p2m_shattered(d: u32, level: u32): u64 {
  return load<u64>(P2M(d) + P_SHATTERED + (<usize>(level & 3) << 3)) & LONG_MASK();
}
export function p2m_nr_table_pages(d: u32): u32 { return load<u32>(P2M(d), P_NR_PAGES); }
export function p2m_flush_count(d: u32): u64 { return load<u64>(P2M(d), P_FLUSH_COUNT); }
export function p2m_batch_done(d: u32): u32 { return load<u32>(P2M(d), P_OUT_DONE); }

// ---- batch --------------------------------------------------------------------

// A scratch buffer of at least `bytes` (kept across calls; grows by
// reallocation: the old one is abandoned). Linear address.
export function p2m_batch_buffer(bytes: u32): usize {
  let g = P2M_GLOBALS();
  if (load<u32>(g, G_BATCH_SIZE) < bytes) {
    let sz = bytes < 4096 ? 4096 : bytes;
    store<u32>(g, <u32>region_alloc(<usize>sz, 64), G_BATCH_BUF);
    store<u32>(g, sz, G_BATCH_SIZE);
  }
  return <usize>load<u32>(g, G_BATCH_BUF);
}

// n single-page p2m_set_entry calls under one write-lock hold, with the
// unlock's flush at the end. The MFN advances by `mfn_step` (0 for removals).
// Returns the first error; p2m_batch_done(d) = pages done.
function p2m_set_range_4k(d: u32, gfn: u64, mfn: u64, mfn_step: u64, n: u32, t: u32, a: u32): i32 {
  p2m_check_slot(d);
  let lm = LONG_MASK();
  let rc: i32 = 0;
  let i: u32 = 0;
  for (; i < n; i++) {
    rc = p2m_set_entry(d, (gfn + i) & lm, 1, (mfn + mfn_step * i) & lm, t, a);
    if (rc != 0) break;
  }
  store<u32>(P2M(d), i, P_OUT_DONE);
  p2m_tlb_flush_sync(d);
  return rc;
}

// Map gfn + i -> mfn + i with the default access.
export function p2m_map_range_4k(d: u32, gfn: u64, mfn: u64, n: u32, t: u32): i32 {
  p2m_check_slot(d);
  return p2m_set_range_4k(d, gfn, mfn, 1, n, t, load<u32>(P2M(d), P_DEFAULT_ACCESS));
}

// Remove n 4 KiB entries (no MFN check: p2m_set_entry with INVALID_MFN).
export function p2m_unmap_range_4k(d: u32, gfn: u64, n: u32): i32 {
  return p2m_set_range_4k(d, gfn, INVALID_MFN(), 0, n, p2m_invalid, p2m_access_rwx);
}

// n lookups (caller holds the read lock); layout in the header comment.
export function p2m_lookup_batch(d: u32, buf: usize, n: u32): void {
  p2m_check_slot(d);
  let p = P2M(d);
  let out = buf + (<usize>n << 3);
  for (let i: usize = 0; i < <usize>n; i++) {
    let mfn = p2m_get_entry(d, load<u64>(buf + (i << 3)));
    let r = out + (i << 4);
    store<u64>(r, mfn);
    // t, a, order, valid are u32s at P_OUT_T..; pack their low bytes.
    let t = load<u32>(p, P_OUT_T);
    let a = load<u32>(p, P_OUT_T + 4);
    let o = load<u32>(p, P_OUT_T + 8);
    let v = load<u32>(p, P_OUT_T + 12);
    store<u32>(r, (t & 0xFF) | ((a & 0xFF) << 8) | ((o & 0xFF) << 16) | ((v & 0xFF) << 24), 8);
    store<u32>(r, 0, 12);
  }
}

// Unused-slot guard for the host: highest slot number.
export function p2m_max_domains(): u32 { return MAX_DOMAINS; }
export function p2m_geometry_ipa_bits(): u32 { return p2m_ipa_bits(); }
