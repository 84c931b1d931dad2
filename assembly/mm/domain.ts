// The part of struct domain that memory management touches. Domains live in
// slots 1..MAX_DOMAINS; slot 0 is NULL. The owner field of a page holds the
// emulated address of the slot's record (region.ts).
//
//   +0  u32 in_use        +4  u32 domid          +8  u32 flags (D_*)
//  +12  u32 refcnt (domain references taken by mm: first page, xenheap pages)
//  +16  u64 tot_pages    +24  u64 max_pages     +32  u64 extra_pages
//  +40  u64 xenheap_pages +48 u64 outstanding_pages
//  +56  list_head page_list      (16 B)
//  +72  list_head xenpage_list   (16 B)
//  +88  u64 shared_info mfn (INVALID when none)
//  +96..127 reserved

import { hdr_u32, hdr_set_u32, H_DOMAINS, MAX_DOMAINS, xen_bug, BUG_EMULATOR } from "../mem/machine";
import { region_alloc, xen_va, xen_linear } from "../mem/region";
import { list_head_init } from "./page_list";

export const DOMAIN_SIZE: usize = 128;
export const D_DYING: u32 = 1 << 0;
export const D_PRIVILEGED: u32 = 1 << 1;
export const D_DIRECTMAP: u32 = 1 << 2;
export const D_HARDWARE: u32 = 1 << 3;

export function domains_init(): void {
  hdr_set_u32(H_DOMAINS, <u32>region_alloc(<usize>(MAX_DOMAINS + 1) * DOMAIN_SIZE, 64));
}

// @ts-ignore: decorator
@inline export function dom(d: u32): usize { return <usize>hdr_u32(H_DOMAINS) + <usize>d * DOMAIN_SIZE; }
// @ts-ignore: decorator
@inline export function domain_va(d: u32): u64 { return d == 0 ? 0 : xen_va(dom(d)); }
// @ts-ignore: decorator
@inline export function domain_from_va(va: u64): u32 {
  if (va == 0) return 0;
  return <u32>((xen_linear(va) - <usize>hdr_u32(H_DOMAINS)) / DOMAIN_SIZE);
}
// @ts-ignore: decorator
@inline export function dom_page_list(d: u32): usize { return dom(d) + 56; }
// @ts-ignore: decorator
@inline export function dom_xenpage_list(d: u32): usize { return dom(d) + 72; }

// @ts-ignore: decorator
@inline export function domain_flags(d: u32): u32 { return load<u32>(dom(d), 8); }
// @ts-ignore: decorator
@inline export function domain_is_dying(d: u32): bool { return (load<u32>(dom(d), 8) & D_DYING) != 0; }
// @ts-ignore: decorator
@inline export function domain_tot_pages_raw(d: u32): u64 { return load<u64>(dom(d), 16); }
// @ts-ignore: decorator
@inline export function set_tot_pages(d: u32, v: u64): void { store<u64>(dom(d), v, 16); }
// @ts-ignore: decorator
@inline export function domain_max_pages(d: u32): u64 { return load<u64>(dom(d), 24); }
// @ts-ignore: decorator
@inline export function domain_extra_pages(d: u32): u64 { return load<u64>(dom(d), 32); }
// @ts-ignore: decorator
@inline export function set_extra_pages(d: u32, v: u64): void { store<u64>(dom(d), v, 32); }
// @ts-ignore: decorator
@inline export function domain_xenheap_pages(d: u32): u64 { return load<u64>(dom(d), 40); }
// @ts-ignore: decorator
@inline export function set_xenheap_pages(d: u32, v: u64): void { store<u64>(dom(d), v, 40); }
// @ts-ignore: decorator
@inline export function domain_refcnt(d: u32): u32 { return load<u32>(dom(d), 12); }
// @ts-ignore: decorator
@inline export function domain_get_ref(d: u32): void { store<u32>(dom(d), load<u32>(dom(d), 12) + 1, 12); }
// @ts-ignore: decorator
@inline export function domain_put_ref(d: u32): void {
  let r = load<u32>(dom(d), 12);
  if (r == 0) xen_bug(BUG_EMULATOR, 0x100);
  store<u32>(dom(d), r - 1, 12);
}
// @ts-ignore: decorator
@inline export function domain_shared_info(d: u32): u64 { return load<u64>(dom(d), 88); }
// @ts-ignore: decorator
@inline export function set_domain_shared_info(d: u32, mfn: u64): void { store<u64>(dom(d), mfn, 88); }

// domain_tot_pages(): tot_pages − extra_pages, what current_reservation reports.
export function domain_tot_pages(d: u32): u64 { return domain_tot_pages_raw(d) - domain_extra_pages(d); }

export function domain_slot_init(d: u32, domid: u32, flags: u32, max_pages: u64): void {
  if (d == 0 || d > MAX_DOMAINS) xen_bug(BUG_EMULATOR, 0x101);
  let p = dom(d);
  memory.fill(p, 0, DOMAIN_SIZE);
  store<u32>(p, 1, 0);
  store<u32>(p, domid, 4);
  store<u32>(p, flags, 8);
  store<u64>(p, max_pages, 24);
  store<u64>(p, <u64>-1, 88);
  list_head_init(dom_page_list(d));
  list_head_init(dom_xenpage_list(d));
}

export function domain_set_flags(d: u32, flags: u32): void { store<u32>(dom(d), flags, 8); }
export function domain_set_max_pages(d: u32, v: u64): void { store<u64>(dom(d), v, 24); }
export function domain_slot_release(d: u32): void { store<u32>(dom(d), 0, 0); }

// domain_adjust_tot_pages: returns the new total (0 means the last page left).
export function domain_adjust_tot_pages(d: u32, delta: i64): u64 {
  let v = <u64>(<i64>domain_tot_pages_raw(d) + delta);
  set_tot_pages(d, v);
  return v;
}
