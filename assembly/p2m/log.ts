// P2M-change log for host hooks: when header H_HOOKS bit 0 is set, every
// write of a descriptor into a live P2M table (an entry reachable from a
// root) appends one record. Entries written into a freshly split table before
// it is linked are not logged (the single write linking it is).
// Cost when disabled: one load and one branch per write.
//
// Ring (address in header word H_P2M_LOG):
//
//    0 u32 capacity (records, power of two)   4 u32 reserved
//    8 u64 total records ever written (write index = total & (capacity - 1))
//   16 records, 32 bytes each:
//        +0 u64 gfn (first GFN covered by the entry)
//        +8 u64 old descriptor    +16 u64 new descriptor
//       +24 u32 level | flags     +28 u32 domain slot
//
// Flag P2M_LOG_BREAK (bit 8 of the level word) marks the zero written as the
// "break" half of break-before-make when __p2m_set_entry replaces a valid
// entry: a consumer can then tell one replacement (remove + add in one
// p2m_set_entry, which puts no reference when the MFN is unchanged, FS 11.3)
// from a removal followed by an unrelated add.

import { hdr_u32, hdr_set_u32, H_HOOKS, H_P2M_LOG } from "../mem/machine";
import { region_alloc } from "../mem/region";

export const HOOK_P2M_LOG: u32 = 1 << 0;
export const P2M_LOG_BREAK: u32 = 1 << 8;
const REC: usize = 32;

export function p2m_log_init(capacity: u32): void {
  let cap: u32 = 16;
  while (cap < capacity) cap <<= 1;
  let p = region_alloc(16 + <usize>cap * REC, 64);
  store<u32>(p, cap);
  hdr_set_u32(H_P2M_LOG, <u32>p);
}

function p2m_log_append(d: u32, gfn: u64, old: u64, nw: u64, level: u32): void {
  let p = <usize>hdr_u32(H_P2M_LOG);
  if (p == 0) return;
  let cap = load<u32>(p);
  let n = load<u64>(p, 8);
  let r = p + 16 + (<usize>(<u32>n & (cap - 1))) * REC;
  store<u64>(r, gfn);
  store<u64>(r, old, 8);
  store<u64>(r, nw, 16);
  store<u32>(r, level, 24);
  store<u32>(r, d, 28);
  store<u64>(p, n + 1, 8);
}

// write_pte with the hook. `gfn` is the first GFN the entry covers.
// @ts-ignore: decorator
@inline export function p2m_write_pte(d: u32, entry: usize, pte: u64, gfn: u64, level: u32): void {
  if ((hdr_u32(H_HOOKS) & HOOK_P2M_LOG) != 0) p2m_log_append(d, gfn, load<u64>(entry), pte, level);
  store<u64>(entry, pte);
}

export function p2m_log_ptr(): usize { return <usize>hdr_u32(H_P2M_LOG); }
export function p2m_log_count(): u64 {
  let p = <usize>hdr_u32(H_P2M_LOG);
  return p == 0 ? 0 : load<u64>(p, 8);
}
