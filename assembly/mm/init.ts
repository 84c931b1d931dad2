// Boot: header, frame table and heap for one RAM bank [ram_start, ram_start + nr).

import {
  HDR, HDR_SIZE, HDR_MAGIC, HDR_VERSION, hdr_set_u32, hdr_set_u64, hdr_u32,
  H_MAGIC, H_VERSION, H_ARCH, H_REVISION, H_FEATURES, H_RAM_START, H_NR_FRAMES, H_FT_BASE_PDX,
  H_FRAME_TABLE, H_MAX_PAGE, H_HWM, H_XENHEAP_START, H_XENHEAP_END, H_LAST_ERROR, ARCH_ARM64,
  xen_bug, BUG_EMULATOR,
} from "../mem/machine";
import { region_reset, region_alloc } from "../mem/region";
import { backing_init } from "../mem/backing";
import { feature, F_FT_BASE_ROUNDED } from "../revision";
import { PAGE_INFO_SIZE, PGC_state_free, PGC_static, set_count_info } from "./page_info";
import { heap_init, init_heap_pages } from "./heap";
import { domains_init } from "./domain";

// PDX_GROUP_COUNT = 2^21 / lowest set bit of sizeof(page_info) (FS §1.4).
// @ts-ignore: decorator
@inline function PDX_GROUP_COUNT(arch: u32): u64 { return arch == ARCH_ARM64 ? 262144 : 65536; }

// arm32's separate xenheap: heap_pages/32 rounded up to 32 MiB, clamped to
// [32 MiB, 1 GiB] (FS §3.1). We place it at the top of the bank.
export function arm32_xenheap_pages(nr: u64): u64 {
  let pages = (nr + 31) / 32;
  pages = (pages + 8191) & ~(<u64>8191);
  if (pages < 8192) pages = 8192;
  if (pages > 262144) pages = 262144;
  if (pages > nr / 2) pages = nr / 2;
  return pages;
}

export function machine_init(arch_: u32, revision_: u32, features: u32, ram_start: u64, nr: u64,
                             static_start: u64, static_nr: u64): void {
  // A standalone walker may have used the header before: start from zero,
  // except the high-water mark, which says what memory may be dirty.
  let hwm = hdr_u32(H_HWM);
  memory.fill(HDR(), 0, HDR_SIZE);
  hdr_set_u32(H_HWM, hwm);
  hdr_set_u32(H_MAGIC, HDR_MAGIC);
  hdr_set_u32(H_VERSION, HDR_VERSION);
  region_reset();
  hdr_set_u32(H_ARCH, arch_);
  hdr_set_u32(H_REVISION, revision_);
  hdr_set_u32(H_FEATURES, features);
  hdr_set_u32(H_LAST_ERROR, 0);
  hdr_set_u64(H_RAM_START, ram_start);
  hdr_set_u64(H_NR_FRAMES, nr);
  hdr_set_u64(H_MAX_PAGE, ram_start + nr);
  let base = ram_start;
  if (feature(F_FT_BASE_ROUNDED)) base = ram_start & ~(PDX_GROUP_COUNT(arch_) - 1);
  hdr_set_u64(H_FT_BASE_PDX, base);
  let entries = ram_start + nr - base;
  let bytes = entries * <u64>PAGE_INFO_SIZE();
  if (bytes > 0xE0000000) xen_bug(BUG_EMULATOR, 0x600);
  hdr_set_u32(H_FRAME_TABLE, <u32>region_alloc(<usize>bytes, 64));
  if (arch_ != ARCH_ARM64) {
    let xh = arm32_xenheap_pages(nr);
    hdr_set_u64(H_XENHEAP_START, ram_start + nr - xh);
    hdr_set_u64(H_XENHEAP_END, ram_start + nr);
  } else {
    hdr_set_u64(H_XENHEAP_START, 0);
    hdr_set_u64(H_XENHEAP_END, 0);
  }
  backing_init(4096);
  domains_init();
  heap_init();
  // Static banks are not given to the heap: they wait in state free | static.
  let s_end = static_start + static_nr;
  for (let m = static_start; m < s_end; m++) set_count_info(m, PGC_state_free() | PGC_static());
  if (static_nr == 0 || s_end <= ram_start || static_start >= ram_start + nr) {
    init_heap_pages(ram_start, nr);
  } else {
    if (static_start > ram_start) init_heap_pages(ram_start, static_start - ram_start);
    if (s_end < ram_start + nr) init_heap_pages(s_end, ram_start + nr - s_end);
  }
}

export function machine_ready(): bool { return hdr_u32(H_MAGIC) == HDR_MAGIC; }
