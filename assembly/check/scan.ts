// Frame-table scans for the fuzzer's checker (src/fuzz/invariants.ts).
//
// A fuzz machine has 16 Ki RAM frames of which a few dozen are in use; the
// checker's full scans and its destroy checks look for the frames in use
// (PGC_state != free) and their owner fields. Scanning 16 Ki records from the
// host costs one typed-array read per record in JS; here it is a tight loop
// over linear memory. Read-only: nothing here changes the machine.

import { hdr_u32, hdr_u64, H_FRAME_TABLE, H_FT_BASE_PDX, is_arm64 } from "../mem/machine";

/**
 * The first MFN in [from, to) whose count_info has PGC_state != free (the
 * state bits are 55-56 on arm64, 23-24 on arm32); `to` if there is none.
 * The caller keeps [from, to) inside the frame table (RAM).
 */
export function check_next_in_use(from: u32, to: u32): u32 {
  const ft = <usize>hdr_u32(H_FRAME_TABLE);
  const base = <u32>hdr_u64(H_FT_BASE_PDX);
  if (from >= to) return to;
  if (is_arm64()) {
    let p = ft + <usize>(from - base) * 56 + 20; // high word of count_info
    for (let m = from; m < to; m++, p += 56) if (((load<u32>(p) >>> 23) & 3) != 3) return m;
  } else {
    let p = ft + <usize>(from - base) * 32 + 8; // count_info
    for (let m = from; m < to; m++, p += 32) if (((load<u32>(p) >>> 23) & 3) != 3) return m;
  }
  return to;
}

/**
 * The index of the first descriptor at or after `from` in the 512-entry
 * table page at linear address `table` that is valid (p2m_is_valid: the
 * P2M type in bits 55-58 is not p2m_invalid), or 512. A fuzz P2M's table
 * pages are mostly empty; the host walks only the entries this returns.
 */
export function check_next_valid_entry(table: u32, from: u32): u32 {
  for (let i = from; i < 512; i++) if (((load<u32>(<usize>table + <usize>i * 8 + 4) >>> 23) & 0xf) != 0) return i;
  return 512;
}
