// Frame-record change log for host hooks: when header H_HOOKS bit 1
// (HOOK_FRAME_LOG) is set, every store to a page_info's count_info, type_info
// or v (owner / free order) appends the frame's MFN. An observer that keeps a
// copy of some records (the fuzz checker's FrameWatch) then re-reads only the
// logged ones instead of comparing all of them after every operation.
// Cost when disabled: one load and one branch per store, as for the
// P2M-change log (assembly/p2m/log.ts). List links (page_list.ts) and
// tlbflush_timestamp are not logged: no observer reads them.
//
// Ring (address in header word H_FRAME_LOG):
//
//    0 u32 capacity (records, power of two)   4 u32 reserved
//    8 u64 total records ever written (write index = total & (capacity - 1))
//   16 u64 last MFN logged + 1 (0 = none): a store to the same frame as the
//          record before it is not logged again. A consumer that has read the
//          records clears it, so that the next store to that frame is logged.
//   24 u64 reserved
//   32 records, one u64 MFN each.
//
// Like the P2M-change ring this is observer state: [ptr + 8, end) and the
// hook bit read as zero in snapshots and stateHash() and survive a template
// reset (src/snapshot hookRanges). A snapshot restore writes records behind
// the log's back; a consumer must re-read its copies after one.

import { hdr_u32, hdr_set_u32, H_HOOKS, H_FRAME_LOG } from "../mem/machine";
import { region_alloc } from "../mem/region";

export const HOOK_FRAME_LOG: u32 = 1 << 1;
const REC: usize = 8;
const HEAD: usize = 32;

export function frame_log_init(capacity: u32): void {
  let cap: u32 = 16;
  while (cap < capacity) cap <<= 1;
  let p = region_alloc(HEAD + <usize>cap * REC, 64);
  store<u32>(p, cap);
  hdr_set_u32(H_FRAME_LOG, <u32>p);
}

function frame_log_append(mfn: u64): void {
  let p = <usize>hdr_u32(H_FRAME_LOG);
  if (p == 0) return;
  if (load<u64>(p, 16) == mfn + 1) return;
  let cap = load<u32>(p);
  let n = load<u64>(p, 8);
  store<u64>(p + HEAD + (<usize>(<u32>n & (cap - 1))) * REC, mfn);
  store<u64>(p, n + 1, 8);
  store<u64>(p, mfn + 1, 16);
}

// Called before every logged store of `mfn`'s record.
// @ts-ignore: decorator
@inline export function frame_logged(mfn: u64): void {
  if ((hdr_u32(H_HOOKS) & HOOK_FRAME_LOG) != 0) frame_log_append(mfn);
}

// For a host that writes a record itself (fault injection in tests).
export function frame_log_note(mfn: u64): void { frame_logged(mfn); }
export function frame_log_ptr(): usize { return <usize>hdr_u32(H_FRAME_LOG); }
export function frame_log_count(): u64 {
  let p = <usize>hdr_u32(H_FRAME_LOG);
  return p == 0 ? 0 : load<u64>(p, 8);
}
