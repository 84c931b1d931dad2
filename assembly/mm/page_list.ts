// Xen's circular doubly linked list_head, as Arm uses it for page lists
// (page_list_entry == list_head, FS §1.3). Links hold emulated addresses:
// either a page_info's frame-table VA or a list head's xen-data VA, so the
// bytes in page_info are pointer values exactly like Xen's.
//
//   list_head (arm64 16 B / arm32 8 B):  +0 next   +W prev

import { is_arm64 } from "../mem/machine";
import { xen_va, xen_linear } from "../mem/region";
import { is_page_va, va_to_mfn, pi, page_va, ld_word, st_word } from "./page_info";

// Xen's list.h poison values written by list_del.
export const LIST_POISON1: u64 = 0x00100100;
export const LIST_POISON2: u64 = 0x00200200;

// @ts-ignore: decorator
@inline export function LIST_HEAD_SIZE(): usize { return is_arm64() ? 16 : 8; }

// @ts-ignore: decorator
@inline function node(va: u64): usize {
  return is_page_va(va) ? pi(va_to_mfn(va)) : xen_linear(va);
}
// @ts-ignore: decorator
@inline function W(): usize { return is_arm64() ? 8 : 4; }

export function list_head_init(head: usize): void {
  let va = xen_va(head);
  st_word(head, va);
  st_word(head + W(), va);
}

// @ts-ignore: decorator
@inline export function list_empty(head: usize): bool { return ld_word(head) == xen_va(head); }

function link_between(nva: u64, prev: u64, next: u64): void {
  let n = node(nva);
  st_word(node(next) + W(), nva);
  st_word(n, next);
  st_word(n + W(), prev);
  st_word(node(prev), nva);
}

export function page_list_add(mfn: u64, head: usize): void {
  let h = xen_va(head);
  link_between(page_va(mfn), h, ld_word(head));
}

export function page_list_add_tail(mfn: u64, head: usize): void {
  let h = xen_va(head);
  link_between(page_va(mfn), ld_word(head + W()), h);
}

export function page_list_del(mfn: u64): void {
  let p = pi(mfn);
  let next = ld_word(p);
  let prev = ld_word(p + W());
  st_word(node(prev), next);
  st_word(node(next) + W(), prev);
  st_word(p, LIST_POISON1);
  st_word(p + W(), LIST_POISON2);
}

// First page on the list, or ~0 when empty.
export function page_list_first(head: usize): u64 {
  let n = ld_word(head);
  if (n == xen_va(head)) return <u64>-1;
  return va_to_mfn(n);
}

// The page after `mfn` on the list headed at `head`, or ~0 at the end.
export function page_list_next(mfn: u64, head: usize): u64 {
  let n = ld_word(pi(mfn));
  if (n == xen_va(head)) return <u64>-1;
  return va_to_mfn(n);
}

export function page_list_count(head: usize): u32 {
  let n: u32 = 0;
  let h = xen_va(head);
  let cur = ld_word(head);
  while (cur != h) { n++; cur = ld_word(node(cur)); }
  return n;
}
