// struct p2m_domain (FS §5.4), one per domain slot, in linear memory.
//
// The array has MAX_DOMAINS + 1 records of P2M_SIZE bytes, indexed by slot;
// its address is in the header word H_P2M_ARRAY. Slot 0 (the NULL domain)
// has no P2M: its record holds the P2M globals (VMID bitmap, batch buffer).
//
// Record (byte offsets; u64 for Xen's unsigned long / gfn_t / mfn_t):
//
//     0 u64 root          MFN of the first root page; INVALID_MFN() = NULL
//     8 u64 vttbr
//    16 u64 max_mapped_gfn
//    24 u64 lowest_mapped_gfn
//    32 u32 vmid          (u16 in Xen)
//    36 u32 need_flush    (bool)
//    40 u32 default_access
//    44 u32 domain        back pointer = slot; 0 = not initialised (NULL)
//    48 u32 mem_access_enabled (always 0: mem_access is not modelled)
//    52 u32 clean_pte     (always 0: no IOMMU)
//    56 u64 stats.mappings[4]
//    88 u64 stats.shattered[4]
//   120 u32 nr_pages      number of table pages on `pages` (emulator bookkeeping)
//   124 u32 reserved
//   128 u64 flush_count   forced guest-TLB flushes performed (emulator statistic)
//   136 list_head pages   (arm64 16 B / arm32 8 B, emulated pointers, see mm/page_list.ts)
//   152 u32 root_ptr[8]   linear address of each root page's 4 KiB (cache of backing_lookup)
//   184 -- out area of p2m_get_entry (read by the host after a lookup):
//   184 u32 out_t         p2m_type_t
//   188 u32 out_a         p2m_access_t (P2M_OUT_A_UNSET when Xen leaves *a untouched)
//   192 u32 out_order     page_order
//   196 u32 out_valid     hardware valid bit of the entry (0/1)
//   200 u32 out_done      batch calls: number of elements completed
//   208 u64 split_pte     the local copy of a block being split in __p2m_set_entry
//   216..255 reserved
//
// Globals in slot 0's record:
//     0 u32 vmid bitmap ptr (65536 bits)   4 u32 max_vmid
//     8 u32 batch buffer ptr              12 u32 batch buffer size (bytes)

import { hdr_u32, H_P2M_ARRAY, MAX_DOMAINS, xen_bug, BUG_EMULATOR } from "../mem/machine";

export const P2M_SIZE: usize = 256;

export const P_ROOT: usize = 0;
export const P_VTTBR: usize = 8;
export const P_MAX_MAPPED: usize = 16;
export const P_LOWEST_MAPPED: usize = 24;
export const P_VMID: usize = 32;
export const P_NEED_FLUSH: usize = 36;
export const P_DEFAULT_ACCESS: usize = 40;
export const P_DOMAIN: usize = 44;
export const P_MEM_ACCESS: usize = 48;
export const P_CLEAN_PTE: usize = 52;
export const P_MAPPINGS: usize = 56;
export const P_SHATTERED: usize = 88;
export const P_NR_PAGES: usize = 120;
export const P_FLUSH_COUNT: usize = 128;
export const P_PAGES: usize = 136;
export const P_ROOT_PTR: usize = 152;
export const P_OUT_T: usize = 184;
export const P_OUT_A: usize = 188;
export const P_OUT_ORDER: usize = 192;
export const P_OUT_VALID: usize = 196;
export const P_OUT_DONE: usize = 200;
export const P_SPLIT_PTE: usize = 208;

export const P2M_OUT_A_UNSET: u32 = 0xFFFFFFFF;

export const G_VMID_BITMAP: usize = 0;
export const G_MAX_VMID: usize = 4;
export const G_BATCH_BUF: usize = 8;
export const G_BATCH_SIZE: usize = 12;

// Linear address of slot d's struct p2m_domain.
// @ts-ignore: decorator
@inline export function P2M(d: u32): usize {
  return <usize>hdr_u32(H_P2M_ARRAY) + <usize>d * P2M_SIZE;
}
// @ts-ignore: decorator
@inline export function P2M_GLOBALS(): usize { return <usize>hdr_u32(H_P2M_ARRAY); }

// Host-supplied slot check (cheap; a bad slot is a host bug, not a Xen one).
// @ts-ignore: decorator
@inline export function p2m_check_slot(d: u32): void {
  if (d == 0 || d > MAX_DOMAINS || hdr_u32(H_P2M_ARRAY) == 0) xen_bug(BUG_EMULATOR, 0x410);
}
