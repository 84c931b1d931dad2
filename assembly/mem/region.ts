// Bump allocation of linear memory for long-lived core objects, plus the
// emulated-address scheme.
//
// Emulated addresses. Xen stores pointers inside page_info (list links,
// v.inuse.domain). We store the values Xen's scheme would give them:
//   * a page_info lives at FRAMETABLE_VIRT_START + (pdx - frametable_base_pdx) * size,
//     with FRAMETABLE_VIRT_START = 32 GiB on arm64 and 0x02000000 on arm32
//     (fact sheet 1.4), exactly as in Xen;
//   * any other Xen object (a list head in the heap or a domain, a struct
//     domain) is placed by us in linear memory at L and gets the opaque
//     emulated address XEN_DATA_VIRT_START + L. Real Xen's values for these
//     are xenheap addresses that no external observer can compare.
// Both ranges are disjoint, so a stored pointer decodes unambiguously.

import { HDR, HDR_SIZE, hdr_u32, hdr_set_u32, H_TOP, H_HWM, is_arm64, xen_bug, BUG_OOM } from "./machine";

export const FRAMETABLE_VIRT_START_ARM64: u64 = 0x0000000800000000; // 32 GiB
export const FRAMETABLE_VIRT_START_ARM32: u64 = 0x02000000;
export const XEN_DATA_VIRT_START_ARM64: u64 = 0x0000020000000000;   // in the arm64 direct map
export const XEN_DATA_VIRT_START_ARM32: u64 = 0x40000000;           // arm32 xenheap window

// @ts-ignore: decorator
@inline export function FRAMETABLE_VIRT_START(): u64 {
  return is_arm64() ? FRAMETABLE_VIRT_START_ARM64 : FRAMETABLE_VIRT_START_ARM32;
}
// @ts-ignore: decorator
@inline export function XEN_DATA_VIRT_START(): u64 {
  return is_arm64() ? XEN_DATA_VIRT_START_ARM64 : XEN_DATA_VIRT_START_ARM32;
}
// @ts-ignore: decorator
@inline export function xen_va(linear: usize): u64 { return XEN_DATA_VIRT_START() + <u64>linear; }
// @ts-ignore: decorator
@inline export function xen_linear(va: u64): usize { return <usize>(va - XEN_DATA_VIRT_START()); }

export function region_reset(): void {
  let top = <u32>(HDR() + HDR_SIZE);
  if (hdr_u32(H_HWM) < top) hdr_set_u32(H_HWM, top);
  hdr_set_u32(H_TOP, top);
}

// Ensure linear memory covers [0, end). Growth is the only way views on the
// JS side go stale; the host re-creates them after every call that may grow.
export function region_ensure(end: usize): void {
  let have = <usize>memory.size() << 16;
  if (end <= have) return;
  let need = <i32>((end - have + 0xFFFF) >>> 16);
  if (memory.grow(need) < 0) xen_bug(BUG_OOM, 1);
}

// Zeroed, `align`-aligned, never freed.
export function region_alloc(size: usize, align: usize): usize {
  let p = (<usize>hdr_u32(H_TOP) + align - 1) & ~(align - 1);
  let end = p + size;
  if (end < p || end > 0xFFFF0000) xen_bug(BUG_OOM, 2);
  region_ensure(end);
  // Memory never handed out before is still the zero fill of memory.grow:
  // clearing only what may be dirty keeps a 16M-frame table cheap to create.
  let hwm = <usize>hdr_u32(H_HWM);
  if (p < hwm) memory.fill(p, 0, (end < hwm ? end : hwm) - p);
  if (end > hwm) hdr_set_u32(H_HWM, <u32>end);
  hdr_set_u32(H_TOP, <u32>end);
  return p;
}

// @ts-ignore: decorator
@inline export function region_top(): usize { return <usize>hdr_u32(H_TOP); }
