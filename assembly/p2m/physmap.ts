// p2m_insert_mapping / p2m_remove_mapping and the guest_physmap_* wrappers
// (FS §6.8, 6.9). Each is the body Xen runs between p2m_write_lock and
// p2m_write_unlock: the host takes the P2M write lock around the call; the
// final p2m_tlb_flush_sync() here is the flush p2m_write_unlock performs.

import { INVALID_MFN, LONG_MASK, xen_bug, BUG_ASSERT } from "../mem/machine";
import { feature, F_REMOVE_CHECKS_MFN } from "../revision";
import { mfn_valid } from "../mm/page_info";
import { get_page, put_page } from "../mm/refs";
import {
  p2m_ram_rw, p2m_invalid, p2m_access_rwx, p2m_is_any_ram, p2m_mmio_direct_dev, p2m_map_foreign_rw,
} from "./lpae";
import { P2M, P_DEFAULT_ACCESS, P_OUT_T, P_OUT_ORDER, p2m_check_slot } from "./p2m_domain";
import { p2m_set_entry, p2m_get_entry, p2m_tlb_flush_sync } from "./p2m";
import { EILSEQ, EINVAL } from "../errno";

// p2m_insert_mapping(d, gfn, nr, mfn, t): p2m_set_entry with default_access.
export function p2m_insert_mapping(d: u32, gfn: u64, nr: u64, mfn: u64, t: u32): i32 {
  p2m_check_slot(d);
  let rc = p2m_set_entry(d, gfn, nr, mfn, t, load<u32>(P2M(d), P_DEFAULT_ACCESS));
  p2m_tlb_flush_sync(d);
  return rc;
}

// p2m_remove_mapping(d, start_gfn, nr, mfn). PRE ignores mfn; from HARDEN
// (F_REMOVE_CHECKS_MFN) a verification pass first: any-RAM entries must map
// exactly mfn + i (and mfn must be valid), else -EILSEQ with nothing removed.
export function p2m_remove_mapping(d: u32, start_gfn: u64, nr: u64, mfn: u64): i32 {
  p2m_check_slot(d);
  let p = P2M(d);
  let lm = LONG_MASK();
  let rc: i32;
  if (feature(F_REMOVE_CHECKS_MFN)) {
    let ok_mfn = mfn_valid(mfn);
    let i: u64 = 0;
    nr &= lm;
    while (i < nr) {
      let g = (start_gfn + i) & lm;
      let mapped = p2m_get_entry(d, g);
      let t = load<u32>(p, P_OUT_T);
      let cur_order = load<u32>(p, P_OUT_ORDER);
      if (p2m_is_any_ram(t) && (!ok_mfn || ((mfn + i) & lm) != mapped)) {
        p2m_tlb_flush_sync(d);
        return -EILSEQ;
      }
      let sz = <u64>1 << cur_order;
      i = (i + sz - (g & (sz - 1))) & lm;
      if (i == 0) break; // unsigned long wrap (unreachable with sane nr)
    }
  }
  rc = p2m_set_entry(d, start_gfn, nr, INVALID_MFN(), p2m_invalid, p2m_access_rwx);
  p2m_tlb_flush_sync(d);
  return rc;
}

export function guest_physmap_add_entry(d: u32, gfn: u64, mfn: u64, order: u32, t: u32): i32 {
  return p2m_insert_mapping(d, gfn, <u64>1 << order, mfn, t);
}

export function guest_physmap_add_page(d: u32, gfn: u64, mfn: u64, order: u32): i32 {
  return guest_physmap_add_entry(d, gfn, mfn, order, p2m_ram_rw);
}

export function guest_physmap_add_pages(d: u32, gfn: u64, mfn: u64, nr: u64): i32 {
  return p2m_insert_mapping(d, gfn, nr, mfn, p2m_ram_rw);
}

export function guest_physmap_remove_page(d: u32, gfn: u64, mfn: u64, order: u32): i32 {
  return p2m_remove_mapping(d, gfn, <u64>1 << order, mfn);
}

export function map_mmio_regions(d: u32, start_gfn: u64, nr: u64, mfn: u64): i32 {
  return p2m_insert_mapping(d, start_gfn, nr, mfn, p2m_mmio_direct_dev);
}

export function unmap_mmio_regions(d: u32, start_gfn: u64, nr: u64, mfn: u64): i32 {
  return p2m_remove_mapping(d, start_gfn, nr, mfn);
}

// set_foreign_p2m_entry(d, fd, gfn, mfn): reference on fd's page, map foreign_rw.
export function set_foreign_p2m_entry(d: u32, fd: u32, gfn: u64, mfn: u64): i32 {
  if (!get_page(mfn, fd)) return -EINVAL;
  if (d == fd) xen_bug(BUG_ASSERT, 0x480);
  let rc = p2m_insert_mapping(d, gfn, 1, mfn, p2m_map_foreign_rw);
  if (rc != 0) put_page(mfn);
  return rc;
}
