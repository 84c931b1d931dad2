// 4 KiB backing bytes for the few frames whose contents matter: P2M table
// pages, and RAM frames a guest (or a test) writes into. Every other frame
// costs only its page_info.
//
// Backing table: open addressing, linear probing, backward-shift deletion,
// capacity a power of two, load factor <= 1/2.
//
//   entry (16 bytes)
//   +----------------------+-----------+-----------+
//   | key: u64 = mfn + 1   | page: u32 | pad: u32  |   key 0 = empty
//   +----------------------+-----------+-----------+
//
// Released 4 KiB pages form a free list threaded through their first word.
// A page handed out again is zeroed, so a frame never leaks old contents.

import { hdr_u32, hdr_set_u32, H_BACKING, H_BACKING_CAP, H_BACKING_USED, H_BACKING_FREE, xen_bug, BUG_EMULATOR } from "./machine";
import { region_alloc } from "./region";

const ENTRY: usize = 16;
const PAGE: usize = 4096;
const CHUNK_PAGES: usize = 64;

// @ts-ignore: decorator
@inline function hash(mfn: u64): u32 {
  // Fibonacci hashing; table frames are clustered, so mix the high bits in.
  return <u32>((mfn * 0x9E3779B97F4A7C15) >> 32);
}

export function backing_init(capacity: u32): void {
  let cap: u32 = 1024;
  while (cap < capacity) cap <<= 1;
  hdr_set_u32(H_BACKING, <u32>region_alloc(<usize>cap * ENTRY, 64));
  hdr_set_u32(H_BACKING_CAP, cap);
  hdr_set_u32(H_BACKING_USED, 0);
  hdr_set_u32(H_BACKING_FREE, 0);
}

// The entry holding `mfn`, or 0 when the frame has no backing.
// @ts-ignore: decorator
@inline function find_entry(mfn: u64): usize {
  let tab = <usize>hdr_u32(H_BACKING);
  let mask = hdr_u32(H_BACKING_CAP) - 1;
  let key = mfn + 1;
  let i = hash(mfn) & mask;
  while (true) {
    let e = tab + <usize>i * ENTRY;
    let k = load<u64>(e);
    if (k == key) return e;
    if (k == 0) return 0;
    i = (i + 1) & mask;
  }
  return 0;
}

// Linear address of the frame's 4 KiB, or 0 when it has none.
export function backing_lookup(mfn: u64): usize {
  let e = find_entry(mfn);
  return e == 0 ? 0 : <usize>load<u32>(e, 8);
}

function take_page(): usize {
  let head = <usize>hdr_u32(H_BACKING_FREE);
  if (head == 0) {
    let chunk = region_alloc(CHUNK_PAGES * PAGE, PAGE);
    for (let j: usize = CHUNK_PAGES - 1; j > 0; j--) {
      let p = chunk + j * PAGE;
      store<u32>(p, <u32>head);
      head = p;
    }
    hdr_set_u32(H_BACKING_FREE, <u32>head);
    return chunk; // page 0 of the chunk; already zero
  }
  hdr_set_u32(H_BACKING_FREE, load<u32>(head));
  memory.fill(head, 0, PAGE);
  return head;
}

function insert(tab: usize, mask: u32, mfn: u64, page: usize): void {
  let i = hash(mfn) & mask;
  while (load<u64>(tab + <usize>i * ENTRY) != 0) i = (i + 1) & mask;
  let e = tab + <usize>i * ENTRY;
  store<u64>(e, mfn + 1);
  store<u32>(e, <u32>page, 8);
}

function grow(): void {
  let oldTab = <usize>hdr_u32(H_BACKING);
  let oldCap = hdr_u32(H_BACKING_CAP);
  let cap = oldCap << 1;
  let tab = region_alloc(<usize>cap * ENTRY, 64);
  for (let i: u32 = 0; i < oldCap; i++) {
    let e = oldTab + <usize>i * ENTRY;
    let k = load<u64>(e);
    if (k != 0) insert(tab, cap - 1, k - 1, <usize>load<u32>(e, 8));
  }
  hdr_set_u32(H_BACKING, <u32>tab);
  hdr_set_u32(H_BACKING_CAP, cap);
}

// The frame's 4 KiB, created zeroed on first use.
export function backing_get(mfn: u64): usize {
  let p = backing_lookup(mfn);
  if (p != 0) return p;
  if ((hdr_u32(H_BACKING_USED) + 1) * 2 > hdr_u32(H_BACKING_CAP)) grow();
  p = take_page();
  insert(<usize>hdr_u32(H_BACKING), hdr_u32(H_BACKING_CAP) - 1, mfn, p);
  hdr_set_u32(H_BACKING_USED, hdr_u32(H_BACKING_USED) + 1);
  return p;
}

// Drop the frame's bytes (the frame went back to the heap).
export function backing_release(mfn: u64): void {
  let e = find_entry(mfn);
  if (e == 0) return;
  let tab = <usize>hdr_u32(H_BACKING);
  let mask = hdr_u32(H_BACKING_CAP) - 1;
  let i = <u32>((e - tab) / ENTRY);
  let page = <usize>load<u32>(e, 8);
  store<u32>(page, hdr_u32(H_BACKING_FREE));
  hdr_set_u32(H_BACKING_FREE, <u32>page);
  hdr_set_u32(H_BACKING_USED, hdr_u32(H_BACKING_USED) - 1);
  // Backward-shift deletion keeps every probe chain unbroken.
  let j = i;
  while (true) {
    store<u64>(tab + <usize>i * ENTRY, 0);
    while (true) {
      j = (j + 1) & mask;
      let ej = tab + <usize>j * ENTRY;
      let kj = load<u64>(ej);
      if (kj == 0) return;
      let h = hash(kj - 1) & mask;
      // Move entry j into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? (i < h && h <= j) : (i < h || h <= j)) continue;
      store<u64>(tab + <usize>i * ENTRY, kj);
      store<u32>(tab + <usize>i * ENTRY, load<u32>(ej, 8), 8);
      i = j;
      break;
    }
  }
}

export function backing_count(): u32 { return hdr_u32(H_BACKING_USED); }

// Debug: every entry findable from its home slot.
export function backing_check(): bool {
  let tab = <usize>hdr_u32(H_BACKING);
  let cap = hdr_u32(H_BACKING_CAP);
  let n: u32 = 0;
  for (let i: u32 = 0; i < cap; i++) {
    let k = load<u64>(tab + <usize>i * ENTRY);
    if (k == 0) continue;
    n++;
    if (backing_lookup(k - 1) != <usize>load<u32>(tab + <usize>i * ENTRY, 8)) return false;
  }
  if (n != hdr_u32(H_BACKING_USED)) xen_bug(BUG_EMULATOR, 3);
  return true;
}
