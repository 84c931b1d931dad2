// P2M geometry: setup_virt_paging (FS §5.2), VTTBR and the VMID allocator (FS §5.3).
//
// p2m_geometry_init(ipa_bits, vmid16) is called once after machine_init():
// it allocates the p2m_domain array (p2m_init_array) and stores the root
// geometry in the machine header (H_IPA_BITS, H_ROOT_LEVEL, H_ROOT_ORDER,
// H_T0SZ, H_SL0, H_PS, H_VMID_BITS).
//
// arm64 pa_range_info rows (the 52-bit row is never selected, FS §5.2):
//
//   PA bits  T0SZ  root order  SL0  root level  VTCR (8-bit VMID)
//     32      32       0        1       1        0x80003560
//     36      28       0        1       1        0x8001355C
//     40      24       1        1       1        0x80023558
//     42      22       3        1       1        0x80033556
//     44      20       0        2       0        0x80043594
//     48      16       0        2       0        0x80053590
//
// arm32: 40 bits, T0SZ 0x18 (5-bit signed -8), SL0 1, level-1 root of 2 pages,
// VTCR 0x80003558, 8-bit VMID. With F_ARM32_PA_RANGE_32 (6d44fb48bd) a 32-bit
// configuration also exists: T0SZ 0, order 0, VTCR 0x80003540.

import { EINVAL, EBUSY } from "../errno";
import {
  hdr_u32, hdr_set_u32, is_arm64, H_IPA_BITS, H_ROOT_LEVEL, H_ROOT_ORDER, H_T0SZ, H_SL0, H_PS,
  H_VMID_BITS, H_P2M_ARRAY, H_P2M_LOG, H_FRAME_LOG, MAX_DOMAINS, xen_bug, BUG_ASSERT, BUG_ON,
} from "../mem/machine";
import { region_alloc } from "../mem/region";
import { feature, F_ARM32_PA_RANGE_32 } from "../revision";
import { P2M_SIZE, P2M_GLOBALS, G_VMID_BITMAP, G_MAX_VMID } from "./p2m_domain";
import { p2m_log_init } from "./log";
import { frame_log_init } from "../mm/frame_log";


export const INVALID_VMID: u32 = 0;
export const MAX_VMID_8_BIT: u32 = 256;
export const MAX_VMID_16_BIT: u32 = 65536;

// VTCR_EL2 fixed bits: RES1 | SH0 inner | ORGN0 WBWA | IRGN0 WBWA (TG0 = 4K = 0).
const VTCR_RES1: u32 = 1 << 31;
const VTCR_BASE: u32 = VTCR_RES1 | (3 << 12) | (1 << 10) | (1 << 8);
const VTCR_VS: u32 = 1 << 19;

// @ts-ignore: decorator
@inline export function p2m_root_level(): u32 { return hdr_u32(H_ROOT_LEVEL); }
// @ts-ignore: decorator
@inline export function p2m_root_order(): u32 { return hdr_u32(H_ROOT_ORDER); }
// @ts-ignore: decorator
@inline export function P2M_ROOT_PAGES(): u32 { return 1 << hdr_u32(H_ROOT_ORDER); }
// @ts-ignore: decorator
@inline export function p2m_ipa_bits(): u32 { return hdr_u32(H_IPA_BITS); }

// Allocates (fresh) the p2m_domain array, the VMID bitmap and the change logs
// (P2M entries, frame records: the hook rings live next to each other).
export function p2m_init_array(): void {
  let arr = region_alloc(<usize>(MAX_DOMAINS + 1) * P2M_SIZE, 64);
  hdr_set_u32(H_P2M_ARRAY, <u32>arr);
  let bm = region_alloc(MAX_VMID_16_BIT / 8, 64);
  store<u32>(arr, <u32>bm, G_VMID_BITMAP);
  store<u8>(bm, 1); // INVALID_VMID reserved
  store<u32>(arr, MAX_VMID_8_BIT, G_MAX_VMID);
  hdr_set_u32(H_P2M_LOG, 0);
  p2m_log_init(4096);
  hdr_set_u32(H_FRAME_LOG, 0);
  frame_log_init(4096);
}

// Returns 0, or -EINVAL for a size Xen would panic on. `vmid16` = every CPU
// supports 16-bit VMIDs (ignored on arm32).
export function p2m_geometry_init(ipa_bits: u32, vmid16: bool): i32 {
  let t0sz: u32, order: u32, sl0: u32, ps: u32 = 0;
  if (is_arm64()) {
    switch (ipa_bits) {
      case 32: ps = 0; t0sz = 32; order = 0; sl0 = 1; break;
      case 36: ps = 1; t0sz = 28; order = 0; sl0 = 1; break;
      case 40: ps = 2; t0sz = 24; order = 1; sl0 = 1; break;
      case 42: ps = 3; t0sz = 22; order = 3; sl0 = 1; break;
      case 44: ps = 4; t0sz = 20; order = 0; sl0 = 2; break;
      case 48: ps = 5; t0sz = 16; order = 0; sl0 = 2; break;
      default: return -EINVAL; // no row: panic("Unknown ...")
    }
    // BUG_ON(root level 0 with a concatenated root)
    if (sl0 == 2 && order != 0) xen_bug(BUG_ON, 0x420);
  } else {
    vmid16 = false;
    if (ipa_bits == 32 && feature(F_ARM32_PA_RANGE_32)) {
      t0sz = 0; order = 0; sl0 = 1;
    } else if (ipa_bits >= 40) {
      t0sz = 24; order = 1; sl0 = 1; // p2m_ipa_bits forced to 40
    } else {
      return -EINVAL; // panic: IPA size below 40 bits
    }
  }
  p2m_init_array();
  hdr_set_u32(H_T0SZ, t0sz);
  hdr_set_u32(H_SL0, sl0);
  hdr_set_u32(H_PS, ps);
  hdr_set_u32(H_ROOT_ORDER, order);
  hdr_set_u32(H_ROOT_LEVEL, 2 - sl0);
  // p2m_ipa_bits = 64 - T0SZ (arm32: 32 - signed 5-bit T0SZ)
  let ipa = is_arm64() ? 64 - t0sz : <u32>(32 - ((<i32>(t0sz << 27)) >> 27));
  hdr_set_u32(H_IPA_BITS, ipa);
  hdr_set_u32(H_VMID_BITS, vmid16 ? 16 : 8);
  store<u32>(P2M_GLOBALS(), vmid16 ? MAX_VMID_16_BIT : MAX_VMID_8_BIT, G_MAX_VMID);
  return 0;
}

export function p2m_vtcr(): u32 {
  let v = VTCR_BASE | (hdr_u32(H_SL0) << 6) | hdr_u32(H_T0SZ);
  if (is_arm64()) {
    v |= hdr_u32(H_PS) << 16;
    if (hdr_u32(H_VMID_BITS) == 16) v |= VTCR_VS;
  }
  return v;
}

// generate_vttbr(vmid, root_mfn)
// @ts-ignore: decorator
@inline export function generate_vttbr(vmid: u32, root_mfn: u64): u64 {
  return (root_mfn << 12) | (<u64>vmid << 48);
}

// ---- VMID allocator (global vmid_alloc_lock held by the caller) -----------

// First zero bit below max_vmid; -EBUSY when exhausted.
export function p2m_alloc_vmid_nr(): i32 {
  let g = P2M_GLOBALS();
  let bm = <usize>load<u32>(g, G_VMID_BITMAP);
  let max = load<u32>(g, G_MAX_VMID);
  let words = max >> 6;
  for (let w: u32 = 0; w < words; w++) {
    let x = load<u64>(bm + (<usize>w << 3));
    if (x != 0xFFFFFFFFFFFFFFFF) {
      let nr = (w << 6) + <u32>ctz(~x);
      if (nr == INVALID_VMID) xen_bug(BUG_ASSERT, 0x421);
      store<u64>(bm + (<usize>w << 3), x | (<u64>1 << (nr & 63)));
      return <i32>nr;
    }
  }
  return -EBUSY;
}

export function p2m_free_vmid_nr(vmid: u32): void {
  if (vmid == INVALID_VMID) return;
  let bm = <usize>load<u32>(P2M_GLOBALS(), G_VMID_BITMAP);
  let p = bm + (<usize>(vmid >> 6) << 3);
  store<u64>(p, load<u64>(p) & ~(<u64>1 << (vmid & 63)));
}

export function p2m_vmid_in_use(vmid: u32): bool {
  let bm = <usize>load<u32>(P2M_GLOBALS(), G_VMID_BITMAP);
  return (load<u64>(bm + (<usize>(vmid >> 6) << 3)) & (<u64>1 << (vmid & 63))) != 0;
}
