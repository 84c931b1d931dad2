// The machine header: every piece of core state lives in linear memory, never
// in Wasm globals, so that a snapshot of memory[0, top) is the whole machine.
//
// Linear memory (one machine per Wasm instance):
//
//   0            __heap_base   HDR (64-aligned)                          top
//   +------------+-------------+---------------------------------------+----->
//   | AS statics |             | header | xen data | frame table | ... |  grows
//   +------------+-------------+---------------------------------------+----->
//
// "xen data" holds the objects Xen keeps outside the frame table (heap free
// lists, struct domain, struct p2m_domain, grant tables): see region.ts for
// how they get their emulated Xen virtual addresses.
//
// Header (byte offsets from HDR):
//
//   0  u32 magic "XNMM"          4  u32 layout version
//   8  u32 top (bump pointer)   12  u32 arch (ARCH_ARM64 | ARCH_ARM32)
//  16  u32 revision (REV_*)     20  u32 features (F_* in revision.ts)
//  24  u64 ram_start_mfn        32  u64 nr_frames (RAM frames)
//  40  u64 frametable_base_pdx  48  u32 frame_table (linear ptr)
//  52  u32 backing table ptr    56  u32 backing capacity (power of two)
//  60  u32 backing used         64  u32 backing free-slot list head
//  68  u32 heap state ptr       72  u32 domain array ptr
//  76  u32 fault: last internal error code
//  80  u32 ipa_bits             84  u32 vmid_bits
//  88  u64 max_page (first MFN past RAM)
//  96  u32 p2m_root_level      100  u32 p2m_root_order
// 104  u32 t0sz                108  u32 sl0
// 112  u32 ps (VTCR.PS code)   116  u32 xenheap_mfn_start (arm32, low 32)
// 120  u64 xenheap_mfn_start   128  u64 xenheap_mfn_end
// 136  u32 scratch ptr (TS<->Wasm batch buffer)  140 u32 scratch size
// 144  u32 hooks mask          148  u32 p2m log ptr (entry-change ring)
// 152  u32 p2m array ptr      156  u32 domain count in use
// 160  u32 high-water mark: linear memory at or above it has never been used
// 164  u32 frame log ptr (frame-record change ring, mm/frame_log.ts)
// 168..247 reserved
// 248  u32 walk block ptr (walk/walker.ts)

export const ARCH_ARM64: u32 = 0;
export const ARCH_ARM32: u32 = 1;

// The four code states of the fact sheet, in history order, so that
// "from harden on" is `revision() >= REV_HARDEN`.
export const REV_PRE: u32 = 0;
export const REV_HARDEN: u32 = 1;
export const REV_GFN: u32 = 2;
export const REV_HEAD: u32 = 3;

export const HDR_MAGIC: u32 = 0x4D4D4E58; // "XNMM" little-endian
export const HDR_VERSION: u32 = 1;
export const HDR_SIZE: usize = 256;

// @ts-ignore: decorator
@inline export function HDR(): usize { return (__heap_base + 63) & ~(<usize>63); }

// @ts-ignore: decorator
@inline export function hdr_u32(off: usize): u32 { return load<u32>(HDR() + off); }
// @ts-ignore: decorator
@inline export function hdr_set_u32(off: usize, v: u32): void { store<u32>(HDR() + off, v); }
// @ts-ignore: decorator
@inline export function hdr_u64(off: usize): u64 { return load<u64>(HDR() + off); }
// @ts-ignore: decorator
@inline export function hdr_set_u64(off: usize, v: u64): void { store<u64>(HDR() + off, v); }

export const H_MAGIC: usize = 0;
export const H_VERSION: usize = 4;
export const H_TOP: usize = 8;
export const H_ARCH: usize = 12;
export const H_REVISION: usize = 16;
export const H_RAM_START: usize = 24;
export const H_NR_FRAMES: usize = 32;
export const H_FT_BASE_PDX: usize = 40;
export const H_FRAME_TABLE: usize = 48;
export const H_BACKING: usize = 52;
export const H_BACKING_CAP: usize = 56;
export const H_BACKING_USED: usize = 60;
export const H_BACKING_FREE: usize = 64;
export const H_HEAP: usize = 68;
export const H_DOMAINS: usize = 72;
export const H_LAST_ERROR: usize = 76;
export const H_IPA_BITS: usize = 80;
export const H_VMID_BITS: usize = 84;
export const H_MAX_PAGE: usize = 88;
export const H_ROOT_LEVEL: usize = 96;
export const H_ROOT_ORDER: usize = 100;
export const H_T0SZ: usize = 104;
export const H_SL0: usize = 108;
export const H_PS: usize = 112;
export const H_XENHEAP_START: usize = 120;
export const H_XENHEAP_END: usize = 128;
export const H_SCRATCH: usize = 136;
export const H_SCRATCH_SIZE: usize = 140;
export const H_HOOKS: usize = 144;
export const H_P2M_LOG: usize = 148;
export const H_FEATURES: usize = 20;
export const H_P2M_ARRAY: usize = 152;
export const H_WALK: usize = 248;
export const H_HWM: usize = 160;
export const H_FRAME_LOG: usize = 164;

// Domain slots: 1..MAX_DOMAINS (0 is NULL, the anonymous owner).
export const MAX_DOMAINS: u32 = 64;

// @ts-ignore: decorator
@inline export function arch(): u32 { return hdr_u32(H_ARCH); }
// @ts-ignore: decorator
@inline export function is_arm64(): bool { return hdr_u32(H_ARCH) == ARCH_ARM64; }
// @ts-ignore: decorator
@inline export function revision(): u32 { return hdr_u32(H_REVISION); }
// @ts-ignore: decorator
@inline export function BITS_PER_LONG(): u32 { return is_arm64() ? 64 : 32; }

// `unsigned long` all-ones: INVALID_MFN / INVALID_GFN / ~0UL for the arch.
// @ts-ignore: decorator
@inline export function LONG_MASK(): u64 { return is_arm64() ? 0xFFFFFFFFFFFFFFFF : 0xFFFFFFFF; }
// @ts-ignore: decorator
@inline export function INVALID_MFN(): u64 { return LONG_MASK(); }
// @ts-ignore: decorator
@inline export function INVALID_GFN(): u64 { return LONG_MASK(); }

// Internal inconsistency: Xen would BUG()/ASSERT here. We record a code the
// host can read and trap, so the failure is loud and the state is kept for
// inspection (the host decodes it into a "hypervisor crash" outcome).
export const BUG_NONE: u32 = 0;
export const BUG_ASSERT: u32 = 1;          // ASSERT() in a debug build
export const BUG_ON: u32 = 2;              // BUG_ON()
export const BUG_DATA_ABORT: u32 = 3;      // synchronous data abort at EL2
export const BUG_EMULATOR: u32 = 4;        // emulator-internal invariant
export const BUG_OOM: u32 = 5;             // linear memory exhausted

// @ts-ignore: decorator
@inline export function xen_bug(code: u32, where: u32): void {
  hdr_set_u32(H_LAST_ERROR, (code << 24) | (where & 0xFFFFFF));
  unreachable();
}
