// Stage-2 (P2M) descriptors as Xen builds them (FS §4).
//
// One 64-bit descriptor format (lpae_t, "p2m" view) on both arm32 (LPAE) and
// arm64. Descriptors are carried as plain u64 and manipulated with the
// @inline accessors below; no objects.
//
// ╒═════════════════════ lpae_p2m_t (stage-2, 4 KiB granule) ═════════════════════╕
//  63   59 58  55 54 53 52 51  48 47                       12 11 10 9  8 7 6 5    2 1 0   bits
// ├───────┼──────┼──┼──┼──┼──────┼───────────────────────────┼──┼──┼─────┼─┼─┼──────┼─┼─┤
// │ sbz1  │ type │XN│sb│C │ sbz3 │           base            │z │AF│ SH  │W│R│mattr │T│V│
// └───────┴──────┴──┴──┴──┴──────┴───────────────────────────┴──┴──┴─────┴─┴─┴──────┴─┴─┘
//   V     (0)  hardware valid bit (lpae_is_valid)
//   T     (1)  1 = table (levels 0-2) / page (level 3); 0 = block (levels 1-2)
//   mattr (5:2) stage-2 MemAttr[3:0]: 0x1 Device-nGnRE, 0x5 Normal NC, 0xF Normal WB
//   R     (6)  S2AP[0] read       W (7) S2AP[1] write
//   SH    (9:8) 2 = outer, 3 = inner shareable
//   AF    (10) access flag        z (11) sbz4
//   base  (47:12) 36 bits         sbz3 (51:48)
//   C     (52) contiguous hint (Xen never sets it)
//   sb    (53) sbz2 (XN[0] with FEAT_XNX; Xen keeps it 0)
//   XN    (54) execute-never (XN[1])
//   type  (58:55) software bits: p2m_type_t
//
// "P2M-valid" (p2m_is_valid) is type != p2m_invalid, NOT the hardware valid
// bit, which Xen clears on purpose for set/way emulation (FS §6.11). The
// lpae_* predicates ignore the valid bit, as Xen's do.

import { xen_bug, BUG_ASSERT, BUG_ON, BUG_EMULATOR, is_arm64 } from "../mem/machine";

// ---- p2m_type_t (FS §4.2) --------------------------------------------------
export const p2m_invalid: u32 = 0;
export const p2m_ram_rw: u32 = 1;
export const p2m_ram_ro: u32 = 2;
export const p2m_mmio_direct_dev: u32 = 3;
export const p2m_mmio_direct_nc: u32 = 4;
export const p2m_mmio_direct_c: u32 = 5;
export const p2m_map_foreign_rw: u32 = 6;
export const p2m_map_foreign_ro: u32 = 7;
export const p2m_grant_map_rw: u32 = 8;
export const p2m_grant_map_ro: u32 = 9;
export const p2m_iommu_map_rw: u32 = 10;
export const p2m_iommu_map_ro: u32 = 11;
export const p2m_max_real_type: u32 = 12;

// @ts-ignore: decorator
@inline export function p2m_to_mask(t: u32): u32 { return 1 << t; }
export const P2M_RAM_TYPES: u32 = 0x6;       // ram_rw | ram_ro
export const P2M_GRANT_TYPES: u32 = 0x300;   // grant_map_rw | grant_map_ro
export const P2M_FOREIGN_TYPES: u32 = 0xC0;  // map_foreign_rw | map_foreign_ro
export const P2M_ANY_RAM_TYPES: u32 = 0x3C6; // RAM | GRANT | FOREIGN

// @ts-ignore: decorator
@inline export function p2m_is_ram(t: u32): bool { return ((1 << t) & P2M_RAM_TYPES) != 0; }
// @ts-ignore: decorator
@inline export function p2m_is_foreign(t: u32): bool { return ((1 << t) & P2M_FOREIGN_TYPES) != 0; }
// @ts-ignore: decorator
@inline export function p2m_is_grant(t: u32): bool { return ((1 << t) & P2M_GRANT_TYPES) != 0; }
// @ts-ignore: decorator
@inline export function p2m_is_any_ram(t: u32): bool { return ((1 << t) & P2M_ANY_RAM_TYPES) != 0; }

// ---- p2m_access_t (FS §4.3) ------------------------------------------------
export const p2m_access_n: u32 = 0;
export const p2m_access_r: u32 = 1;
export const p2m_access_w: u32 = 2;
export const p2m_access_rw: u32 = 3;
export const p2m_access_x: u32 = 4;
export const p2m_access_rx: u32 = 5;
export const p2m_access_wx: u32 = 6;
export const p2m_access_rwx: u32 = 7;
export const p2m_access_rx2rw: u32 = 8;
export const p2m_access_n2rwx: u32 = 9;
export const p2m_access_r_pw: u32 = 10; // HEAD only; handled like r on Arm

// ---- attribute values -------------------------------------------------------
export const MATTR_DEV: u64 = 0x1;
export const MATTR_MEM_NC: u64 = 0x5;
export const MATTR_MEM: u64 = 0xF;
export const LPAE_SH_NON_SHAREABLE: u64 = 0;
export const LPAE_SH_OUTER: u64 = 2;
export const LPAE_SH_INNER: u64 = 3;

// ---- bit positions / masks --------------------------------------------------
export const PTE_VALID: u64 = 1 << 0;
export const PTE_TABLE: u64 = 1 << 1;
export const PTE_MATTR_SHIFT: u64 = 2;
export const PTE_MATTR_MASK: u64 = 0xF << 2;
export const PTE_READ: u64 = 1 << 6;
export const PTE_WRITE: u64 = 1 << 7;
export const PTE_SH_SHIFT: u64 = 8;
export const PTE_SH_MASK: u64 = 3 << 8;
export const PTE_AF: u64 = 1 << 10;
export const PTE_BASE_SHIFT: u64 = 12;
export const PTE_BASE_MASK: u64 = 0x0000FFFFFFFFF000; // bits 47:12
export const PTE_CONTIG: u64 = 1 << 52;
export const PTE_XN: u64 = 1 << 54;
export const PTE_TYPE_SHIFT: u64 = 55;
export const PTE_TYPE_MASK: u64 = 0xF << 55;
export const P2M_PERM_MASK: u64 = 0x00400000000000C0; // xn | write | read

// ---- level constants (FS §5.1) ---------------------------------------------
export const XEN_PT_LPAE_SHIFT: u32 = 9;
export const XEN_PT_LPAE_ENTRIES: u32 = 512;
export const THIRD_ORDER: u32 = 0;
export const SECOND_ORDER: u32 = 9;
export const FIRST_ORDER: u32 = 18;
export const ZEROETH_ORDER: u32 = 27;

// @ts-ignore: decorator
@inline export function LEVEL_ORDER(l: u32): u32 { return (3 - l) * 9; }
// @ts-ignore: decorator
@inline export function LEVEL_SHIFT(l: u32): u32 { return (3 - l) * 9 + 12; }
// Index into the level-l table for a GFN (same as (gfn << 12 >> LEVEL_SHIFT) & 511).
// @ts-ignore: decorator
@inline export function gfn_offset(gfn: u64, l: u32): u32 { return <u32>(gfn >> ((3 - l) * 9)) & 511; }

// ---- raw field accessors ----------------------------------------------------
// @ts-ignore: decorator
@inline export function pte_valid(e: u64): bool { return (e & PTE_VALID) != 0; }
// @ts-ignore: decorator
@inline export function pte_table(e: u64): bool { return (e & PTE_TABLE) != 0; }
// @ts-ignore: decorator
@inline export function pte_mattr(e: u64): u32 { return <u32>(e >> 2) & 0xF; }
// @ts-ignore: decorator
@inline export function pte_read(e: u64): bool { return (e & PTE_READ) != 0; }
// @ts-ignore: decorator
@inline export function pte_write(e: u64): bool { return (e & PTE_WRITE) != 0; }
// @ts-ignore: decorator
@inline export function pte_sh(e: u64): u32 { return <u32>(e >> 8) & 3; }
// @ts-ignore: decorator
@inline export function pte_af(e: u64): bool { return (e & PTE_AF) != 0; }
// @ts-ignore: decorator
@inline export function pte_contig(e: u64): bool { return (e & PTE_CONTIG) != 0; }
// @ts-ignore: decorator
@inline export function pte_xn(e: u64): bool { return (e & PTE_XN) != 0; }
// @ts-ignore: decorator
@inline export function pte_type(e: u64): u32 { return <u32>(e >> 55) & 0xF; }
// @ts-ignore: decorator
@inline export function pte_set_type(e: u64, t: u32): u64 { return (e & ~PTE_TYPE_MASK) | ((<u64>t & 0xF) << 55); }

// lpae_get_mfn: the 36-bit base field (as an unsigned long: truncated on arm32).
// @ts-ignore: decorator
@inline export function lpae_get_mfn(e: u64): u64 {
  let m = (e & PTE_BASE_MASK) >> 12;
  return is_arm64() ? m : (m & 0xFFFFFFFF);
}
// lpae_set_mfn: writes the 36-bit base field (bits of the MFN above 35 are dropped).
// @ts-ignore: decorator
@inline export function lpae_set_mfn(e: u64, mfn: u64): u64 {
  return (e & ~PTE_BASE_MASK) | ((mfn << 12) & PTE_BASE_MASK);
}

// @ts-ignore: decorator
@inline export function lpae_is_valid(e: u64): bool { return (e & PTE_VALID) != 0; }
// @ts-ignore: decorator
@inline export function lpae_is_table(e: u64, level: u32): bool { return level < 3 && (e & PTE_TABLE) != 0; }
// @ts-ignore: decorator
@inline export function lpae_is_mapping(e: u64, level: u32): bool {
  return level == 3 ? (e & PTE_TABLE) != 0 : (e & PTE_TABLE) == 0;
}
// @ts-ignore: decorator
@inline export function lpae_is_superpage(e: u64, level: u32): bool { return level < 3 && (e & PTE_TABLE) == 0; }

// P2M-valid: the software type is not p2m_invalid.
// @ts-ignore: decorator
@inline export function p2m_is_valid(e: u64): bool { return (e & PTE_TYPE_MASK) != 0; }
// @ts-ignore: decorator
@inline export function p2m_is_mapping(e: u64, level: u32): bool { return p2m_is_valid(e) && lpae_is_mapping(e, level); }
// @ts-ignore: decorator
@inline export function p2m_is_superpage(e: u64, level: u32): bool { return p2m_is_valid(e) && lpae_is_superpage(e, level); }
// @ts-ignore: decorator
@inline export function P2M_CLEAR_PERM(e: u64): u64 { return e & ~P2M_PERM_MASK; }

// ---- building entries (FS §4.4) --------------------------------------------

// p2m_set_permission(e, t, a): type first, then the access restriction.
export function p2m_set_permission(e: u64, t: u32, a: u32): u64 {
  switch (t) {
    case p2m_ram_rw: e = (e & ~PTE_XN) | PTE_WRITE; break;
    case p2m_ram_ro: e = e & ~(PTE_XN | PTE_WRITE); break;
    case p2m_iommu_map_rw:
    case p2m_map_foreign_rw:
    case p2m_grant_map_rw:
    case p2m_mmio_direct_dev:
    case p2m_mmio_direct_nc:
    case p2m_mmio_direct_c: e = e | PTE_XN | PTE_WRITE; break;
    case p2m_iommu_map_ro:
    case p2m_map_foreign_ro:
    case p2m_grant_map_ro:
    case p2m_invalid: e = (e | PTE_XN) & ~PTE_WRITE; break;
    case p2m_max_real_type: xen_bug(BUG_ON, 0x401); break;
    default: xen_bug(BUG_EMULATOR, 0x402); // not a p2m_type_t: caller error
  }
  switch (a) {
    case p2m_access_rwx: break;
    case p2m_access_wx: e &= ~PTE_READ; break;
    case p2m_access_rw: e |= PTE_XN; break;
    case p2m_access_w: e = (e & ~PTE_READ) | PTE_XN; break;
    case p2m_access_rx:
    case p2m_access_rx2rw: e &= ~PTE_WRITE; break;
    case p2m_access_x: e &= ~(PTE_WRITE | PTE_READ); break;
    case p2m_access_r:
    case p2m_access_r_pw: e = (e & ~PTE_WRITE) | PTE_XN; break;
    case p2m_access_n:
    case p2m_access_n2rwx: e = (e & ~(PTE_READ | PTE_WRITE)) | PTE_XN; break;
    default: break; // unknown access values restrict nothing (no case in Xen's switch)
  }
  return e;
}

// PADDR_MASK: 48 bits (arm64), 40 bits (arm32 default config).
// @ts-ignore: decorator
@inline function PADDR_BITS(): u32 { return is_arm64() ? 48 : 40; }

// mfn_to_p2m_entry(mfn, t, a): a level-3 page descriptor (the caller clears
// `table` for a block).
export function mfn_to_p2m_entry(mfn: u64, t: u32, a: u32): u64 {
  let e: u64 = PTE_VALID | PTE_TABLE | PTE_READ | PTE_AF | ((<u64>t & 0xF) << PTE_TYPE_SHIFT);
  let mattr: u64, sh: u64;
  switch (t) {
    case p2m_mmio_direct_dev: mattr = MATTR_DEV; sh = LPAE_SH_OUTER; break;
    case p2m_mmio_direct_c: mattr = MATTR_MEM; sh = LPAE_SH_OUTER; break;
    case p2m_mmio_direct_nc: mattr = MATTR_MEM_NC; sh = LPAE_SH_OUTER; break;
    default: mattr = MATTR_MEM; sh = LPAE_SH_INNER;
  }
  e |= (mattr << PTE_MATTR_SHIFT) | (sh << PTE_SH_SHIFT);
  e = p2m_set_permission(e, t, a);
  // ASSERT(!(mfn_to_maddr(mfn) & ~PADDR_MASK))
  if ((mfn >> (PADDR_BITS() - 12)) != 0) xen_bug(BUG_ASSERT, 0x403);
  return lpae_set_mfn(e, mfn);
}

// page_to_p2m_table(page): table descriptor, built as a ram_rw/rwx page entry.
// @ts-ignore: decorator
@inline export function page_to_p2m_table(mfn: u64): u64 {
  return 0x00800000000007FF | ((mfn << 12) & PTE_BASE_MASK);
}
