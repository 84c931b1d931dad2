// Architectural stage-2 walker: VMSAv8-64, 4 KiB granule, DS = 0, no FEAT_TTST,
// no FEAT_XNX, no hardware AF/dirty management (fact sheet §10).
//
// Side-effect free with respect to the machine: it only reads descriptors
// through backing_lookup() (a frame without backing bytes reads as zero) and
// never writes table memory, page_info or the header. The only state it owns
// is the "walk block" below (configuration + batch buffers), found through the
// header word H_WALK so that memory[0, top) stays a complete snapshot.
//
// Geometry is computed from the level, as in Linux arch/arm64/kvm/hyp/pgtable.c:
// shift(level) = (3 - level) * 9 + 12, one generic loop, no per-level cases
// except the two architectural encoding rules (no level-0 block with DS = 0,
// bits[1:0] = 01 reserved at level 3).
//
// ---------------------------------------------------------------------------
// Result encoding (u64), shared by walk_s2() and the batch output buffer:
//
//   bit 63 clear : success, the value is the output PA (< 2^48)
//   bit 63 set   : fault record (QEMU ptw.c ARMMMUFaultInfo style)
//       bits  5:0   DFSC exactly as ESR_EL2.ISS would report it (FS §10.6)
//       bits  9:8   level (0..3)
//       bits 14:12  type: 1 address_size, 2 translation, 3 access_flag, 4 permission
//                   (so DFSC = ((type - 1) << 2) | level for every fault we raise)
//       bits 17:16  stage (always 2)
//
// Walk block (WB_SIZE bytes, 64-aligned, region_alloc'ed once; address in
// header word H_WALK and exported by walk_config_ptr()):
//
//    0 u32 magic "WLK2"      4 u32 t0sz (VTCR.T0SZ, 6 bits)
//    8 u32 sl0 (2 bits)     12 u32 ps (VTCR.PS code, 3 bits)
//   16 u32 parange (CPU PA bits: 32,36,40,42,44,48,52; 0 = default 48)
//   20 u32 reserved        24 u64 root (VTTBR_EL2.BADDR as a PA, VMID not included)
//   32 u32 batch capacity (entries)
//   36 u32 ipa buffer ptr    (u64[capacity])
//   40 u32 access buffer ptr (u8[capacity]: 0 read, 1 write, 2 execute)
//   44 u32 out buffer ptr    (u64[capacity], result encoding above)
//   48..63 reserved
//
// The host may write the configuration fields directly (then no call is
// needed: every walk_s2() / walk_batch() derives the geometry from them) or
// use walk_configure(). Buffers move when walk_batch_reserve() grows them, and
// any allocation may grow linear memory: re-create typed-array views after it.
//
// Decisions where the architecture leaves a choice (documented for the host):
//  * Misaligned root: VTTBR.BADDR bits below the start-level table size (the
//    concatenated size included) and the CnP bit 0 are treated as zero
//    (RES0/IGNORED, as Arm's AArch64.S2Walk pseudocode aligns the base and as
//    Linux's nested walker masks it). Start-level tables smaller than a page
//    (e.g. 40-bit IPA starting at level 0: 2 entries) only need 8 x entries
//    alignment, so they may sit anywhere inside a page.
//  * No FEAT_XNX: bit 53 is ignored; bit 54 = 1 forbids execution.
//    Instruction fetch is checked against XN only (S2AP is not consulted),
//    as in the Arm pseudocode for stage-2 IFETCH permission checks.
//  * Contiguous bit (52) is honoured as in the architecture's StageOA(): the
//    output takes IPA bits below shift + 4 (16-entry group). For tables Xen
//    builds the bit is always 0 and this makes no difference.
//  * PS = 7 (reserved) is treated as the CPU's PARange (QEMU/Arm "treated as
//    an implemented value", the largest one).
//  * Input-size ranges per start level are the fact sheet's (level 0: 40-48,
//    level 1: 31-43, level 2: 22-34); SL0 = 3 (level 3, FEAT_TTST) is reserved.
//  * Access values other than 0/1/2 are treated as read.

import { hdr_u32, hdr_set_u32, H_MAGIC, H_VERSION, H_WALK, HDR, HDR_MAGIC, HDR_VERSION } from "../mem/machine";
import { region_reset, region_alloc } from "../mem/region";
import { backing_init, backing_get, backing_lookup } from "../mem/backing";

export const WALK_FAULT: u64 = 0x8000000000000000;
export const WFT_ADDRESS_SIZE: u32 = 1;
export const WFT_TRANSLATION: u32 = 2;
export const WFT_ACCESS_FLAG: u32 = 3;
export const WFT_PERMISSION: u32 = 4;

export const ACCESS_READ: u32 = 0;
export const ACCESS_WRITE: u32 = 1;
export const ACCESS_EXEC: u32 = 2;

const WB_MAGIC: u32 = 0x324B4C57; // "WLK2"
const WB_SIZE: usize = 64;
const WB_T0SZ: usize = 4;
const WB_SL0: usize = 8;
const WB_PS: usize = 12;
const WB_PARANGE: usize = 16;
const WB_ROOT: usize = 24;
const WB_CAP: usize = 32;
const WB_IPA: usize = 36;
const WB_ACC: usize = 40;
const WB_OUT: usize = 44;
const WB_LANES: usize = 48;   // lane state for walk_batch (LANES x LANE_SIZE)

const DESC_OA_MASK: u64 = 0x0000FFFFFFFFF000; // bits [47:12]
const DESC_AF: u64 = 1 << 10;
const DESC_S2AP_R: u64 = 1 << 6;
const DESC_S2AP_W: u64 = 1 << 7;
const DESC_CONTIG: u64 = <u64>1 << 52;
const DESC_XN: u64 = <u64>1 << 54;

// ---------------------------------------------------------------------------
// Memory set-up for standalone use (CLI, tests, benchmark)

export function walk_mem_init(): void {
  if (hdr_u32(H_MAGIC) == HDR_MAGIC) return;
  // Zero the whole header (fresh instance: it is already zero).
  memory.fill(HDR(), 0, 256);
  hdr_set_u32(H_MAGIC, HDR_MAGIC);
  hdr_set_u32(H_VERSION, HDR_VERSION);
  region_reset();
  backing_init(1024);
}

// Store a 64-bit value at emulated physical address `pa` (8-byte aligned;
// the low 3 bits are ignored). Creates the frame's backing page if needed.
export function walk_mem_write_u64(pa: u64, value: u64): void {
  walk_mem_init();
  let page = backing_get(pa >> 12);
  store<u64>(page + <usize>(pa & 0xFF8), value);
}

// Read a 64-bit value at `pa` (0 where the frame has no backing). No side effects.
export function walk_mem_read_u64(pa: u64): u64 {
  walk_mem_init();
  return read_desc(pa);
}

// Linear address of frame `mfn`'s 4 KiB (created zeroed), for bulk fills from
// the host. May grow memory.
export function walk_mem_page(mfn: u64): usize {
  walk_mem_init();
  return backing_get(mfn);
}

// Linear address of the machine header (the TS reference walker finds the
// backing table through it).
export function walk_hdr(): usize { return HDR(); }

// ---------------------------------------------------------------------------
// Walk block

function wb(): usize {
  walk_mem_init();
  let p = <usize>hdr_u32(H_WALK);
  if (p != 0 && load<u32>(p) == WB_MAGIC) return p;
  p = region_alloc(WB_SIZE, 64);
  store<u32>(p, WB_MAGIC);
  store<u32>(p, 0, WB_PARANGE); // default 48
  hdr_set_u32(H_WALK, <u32>p);
  return p;
}

export function walk_config_ptr(): usize { return wb(); }

// Convenience: store a configuration in the walk block. Returns the config
// status (walk_config_status()).
export function walk_configure(t0sz: u32, sl0: u32, ps: u32, parange: u32, root: u64): u32 {
  let p = wb();
  store<u32>(p, t0sz, WB_T0SZ);
  store<u32>(p, sl0, WB_SL0);
  store<u32>(p, ps, WB_PS);
  store<u32>(p, parange, WB_PARANGE);
  store<u64>(p, root, WB_ROOT);
  return walk_config_status();
}

// 0: valid; 1: invalid T0SZ/SL0/PARange combination (every walk is a level-0
// translation fault); 2: root above the output size (level-0 address-size
// fault for every in-range IPA).
export function walk_config_status(): u32 {
  let p = wb();
  return <u32>(derive(p) & 3);
}

function pa_bits(code: u32): u32 {
  switch (code) {
    case 0: return 32;
    case 1: return 36;
    case 2: return 40;
    case 3: return 42;
    case 4: return 44;
    case 5: return 48;
    case 6: return 52;
  }
  return 0; // reserved
}

// Derived geometry, packed: status [1:0], start level [5:4], ia bits [13:8],
// oa bits [21:16], start-level table size log2 (bytes) [29:24].
function derive(p: usize): u32 {
  let t0sz = load<u32>(p, WB_T0SZ) & 63;
  let sl0 = load<u32>(p, WB_SL0) & 3;
  let ps = load<u32>(p, WB_PS) & 7;
  let parange = load<u32>(p, WB_PARANGE);
  if (parange == 0) parange = 48;
  let ia: u32 = 64 - t0sz;
  let psb = pa_bits(ps);
  if (psb == 0 || psb > parange) psb = parange;
  let oa = psb < 48 ? psb : 48;
  let status: u32 = 0;
  let level: u32 = 0;
  if (sl0 == 3) status = 1;                    // level 3 start needs FEAT_TTST
  else {
    level = 2 - sl0;
    let shift: u32 = (3 - level) * 9 + 12;
    // The start level resolves ia - shift bits: 1..13 (<= 16 concatenated
    // tables); level 0 without LPA2 stops at 48 bits (9 bits resolved).
    let lo: u32 = shift + 1;
    let hi: u32 = level == 0 ? <u32>48 : shift + 13;
    if (ia < lo || ia > hi) status = 1;
    if (level == 0 && parange < 44) status = 1; // S2InvalidSL: PAMax < 44
  }
  let tbits: u32 = 0;
  if (status == 0) {
    let shift: u32 = (3 - level) * 9 + 12;
    tbits = ia - shift + 3; // log2 of start-level table bytes
    let root = load<u64>(p, WB_ROOT);
    if ((root >> oa) != 0) status = 2;
  }
  return status | (level << 4) | (ia << 8) | (oa << 16) | (tbits << 24);
}

// @ts-ignore: decorator
@inline function fault(type: u32, level: u32): u64 {
  return WALK_FAULT | (<u64>2 << 16) | (<u64>type << 12) | (<u64>level << 8) | <u64>(((type - 1) << 2) | level);
}

// @ts-ignore: decorator
@inline function read_desc(pa: u64): u64 {
  let page = backing_lookup(pa >> 12);
  return page == 0 ? 0 : load<u64>(page + <usize>(pa & 0xFF8));
}

// @ts-ignore: decorator
@inline function root_base(p: usize, g: u32): u64 {
  let tbits = (g >> 24) & 63;
  return load<u64>(p, WB_ROOT) & ~((<u64>1 << <u64>tbits) - 1);
}

// Single walk with the configuration in the walk block. Returns the result
// encoding (on the JS side: BigInt.asUintN(64, r)).
export function walk_s2(ipa: u64, access: u32): u64 {
  let p = wb();
  let g = derive(p);
  let lane = lanes(p);
  let r = lane_start(lane, g, root_base(p, g), ipa, access);
  let oa = (g >> 16) & 63;
  while (r == WALK_CONTINUE) r = lane_step(lane, oa);
  return r;
}

// ---------------------------------------------------------------------------
// Batch buffers

// Ensure capacity for n entries; returns the capacity. Buffers may move and
// memory may grow: re-read the pointers and re-create views afterwards.
export function walk_batch_reserve(n: u32): u32 {
  let p = wb();
  let cap = load<u32>(p, WB_CAP);
  if (n <= cap) return cap;
  let ncap: u32 = cap < 1024 ? 1024 : cap;
  while (ncap < n) ncap <<= 1;
  let ipa = region_alloc(<usize>ncap * 8, 64);
  let out = region_alloc(<usize>ncap * 8, 64);
  let acc = region_alloc(<usize>ncap, 64);
  store<u32>(p, ncap, WB_CAP);
  store<u32>(p, <u32>ipa, WB_IPA);
  store<u32>(p, <u32>acc, WB_ACC);
  store<u32>(p, <u32>out, WB_OUT);
  lanes(p); // allocated here, where the host expects memory to grow
  return ncap;
}

export function walk_batch_capacity(): u32 { return load<u32>(wb(), WB_CAP); }
export function walk_batch_ipa_ptr(): usize { return <usize>load<u32>(wb(), WB_IPA); }
export function walk_batch_access_ptr(): usize { return <usize>load<u32>(wb(), WB_ACC); }
export function walk_batch_out_ptr(): usize { return <usize>load<u32>(wb(), WB_OUT); }

// Batched walks run LANES walks side by side, one level per lane per round:
// the descriptor loads of different lanes do not depend on each other, so the
// CPU overlaps their cache misses instead of waiting on one walk at a time.
// A lane that finishes is refilled with the next IPA at once.
//
//   lane (LANE_SIZE bytes): +0 u64 table  +8 u64 ipa  +16 u64 idx
//                           +24 u32 level +28 u32 shift +32 u32 access +36 u32 slot
const LANES: u32 = 8;
const LANE_SIZE: usize = 40;
const L_TABLE: usize = 0;
const L_IPA: usize = 8;
const L_IDX: usize = 16;
const L_LEVEL: usize = 24;
const L_SHIFT: usize = 28;
const L_ACCESS: usize = 32;
const L_SLOT: usize = 36;
// Never a result: PAs are below 2^48 and fault records leave bits 62:18 clear.
const WALK_CONTINUE: u64 = 0xFFFFFFFFFFFFFFFF;

function lanes(p: usize): usize {
  let l = <usize>load<u32>(p, WB_LANES);
  if (l == 0) {
    l = region_alloc(<usize>LANES * LANE_SIZE, 64);
    store<u32>(p, <u32>l, WB_LANES);
  }
  return l;
}

// The checks before the first descriptor; WALK_CONTINUE when a walk is needed
// (then the lane holds the start-level state).
// @ts-ignore: decorator
@inline function lane_start(lane: usize, g: u32, base: u64, ipa: u64, access: u32): u64 {
  let status = g & 3;
  if (status == 1) return fault(WFT_TRANSLATION, 0);
  let ia = (g >> 8) & 63;
  if ((ipa >> <u64>ia) != 0) return fault(WFT_TRANSLATION, 0);
  if (status == 2) return fault(WFT_ADDRESS_SIZE, 0);
  let level = (g >> 4) & 3;
  let shift: u32 = (3 - level) * 9 + 12;
  store<u64>(lane, base, L_TABLE);
  store<u64>(lane, ipa, L_IPA);
  store<u64>(lane, ipa >> <u64>shift, L_IDX);
  store<u32>(lane, level, L_LEVEL);
  store<u32>(lane, shift, L_SHIFT);
  store<u32>(lane, access, L_ACCESS);
  return WALK_CONTINUE;
}

// One level of the lane's walk: read the descriptor, descend or finish.
// @ts-ignore: decorator
@inline function lane_step(lane: usize, oa: u32): u64 {
  let level = load<u32>(lane, L_LEVEL);
  let shift = load<u32>(lane, L_SHIFT);
  let ipa = load<u64>(lane, L_IPA);
  let desc = read_desc(load<u64>(lane, L_TABLE) + (load<u64>(lane, L_IDX) << 3));
  if ((desc & 1) == 0) return fault(WFT_TRANSLATION, level);
  let bit1 = (desc & 2) != 0;
  let oaddr = desc & DESC_OA_MASK;
  if (level < 3 && bit1) {
    if ((oaddr >> <u64>oa) != 0) return fault(WFT_ADDRESS_SIZE, level);
    shift -= 9;
    store<u64>(lane, oaddr, L_TABLE);
    store<u64>(lane, (ipa >> <u64>shift) & 511, L_IDX);
    store<u32>(lane, level + 1, L_LEVEL);
    store<u32>(lane, shift, L_SHIFT);
    return WALK_CONTINUE;
  }
  if (level == 0 || (level == 3 && !bit1)) return fault(WFT_TRANSLATION, level);
  if ((oaddr >> <u64>oa) != 0) return fault(WFT_ADDRESS_SIZE, level);
  if ((desc & DESC_AF) == 0) return fault(WFT_ACCESS_FLAG, level);
  let access = load<u32>(lane, L_ACCESS);
  let ok: bool;
  if (access == ACCESS_WRITE) ok = (desc & DESC_S2AP_W) != 0;
  else if (access == ACCESS_EXEC) ok = (desc & DESC_XN) == 0;
  else ok = (desc & DESC_S2AP_R) != 0;
  if (!ok) return fault(WFT_PERMISSION, level);
  let low = shift + ((desc & DESC_CONTIG) != 0 ? <u32>4 : <u32>0);
  let lowMask = (<u64>1 << <u64>low) - 1;
  return (oaddr & ~lowMask) | (ipa & lowMask);
}

// Walk entries [0, n) of the batch buffers (n is clamped to the capacity);
// writes the results to the out buffer and returns the number of faults.
export function walk_batch(n: u32): u32 {
  let p = wb();
  let cap = load<u32>(p, WB_CAP);
  if (n > cap) n = cap;
  let g = derive(p);
  let base = root_base(p, g);
  let ipas = <usize>load<u32>(p, WB_IPA);
  let accs = <usize>load<u32>(p, WB_ACC);
  let outs = <usize>load<u32>(p, WB_OUT);
  let oa = (g >> 16) & 63;
  let l0 = <usize>load<u32>(p, WB_LANES); // set by walk_batch_reserve (n <= cap > 0)
  let faults: u32 = 0;
  let next: u32 = 0;
  let busy: u32 = 0; // bit j: lane j holds a walk in progress
  // Fill every lane; IPAs decided before the first descriptor finish here.
  for (let j: u32 = 0; j < LANES; j++) {
    while (next < n) {
      let i = next++;
      let lane = l0 + <usize>j * LANE_SIZE;
      let r = lane_start(lane, g, base, load<u64>(ipas + (<usize>i << 3)), <u32>load<u8>(accs + <usize>i));
      if (r == WALK_CONTINUE) { store<u32>(lane, i, L_SLOT); busy |= 1 << j; break; }
      store<u64>(outs + (<usize>i << 3), r);
      faults += <u32>(r >> 63);
    }
  }
  while (busy != 0) {
    for (let j: u32 = 0; j < LANES; j++) {
      if ((busy & (1 << j)) == 0) continue;
      let lane = l0 + <usize>j * LANE_SIZE;
      let r = lane_step(lane, oa);
      if (r == WALK_CONTINUE) continue;
      store<u64>(outs + (<usize>load<u32>(lane, L_SLOT) << 3), r);
      faults += <u32>(r >> 63);
      busy &= ~(1 << j);
      while (next < n) {
        let i = next++;
        let r2 = lane_start(lane, g, base, load<u64>(ipas + (<usize>i << 3)), <u32>load<u8>(accs + <usize>i));
        if (r2 == WALK_CONTINUE) { store<u32>(lane, i, L_SLOT); busy |= 1 << j; break; }
        store<u64>(outs + (<usize>i << 3), r2);
        faults += <u32>(r2 >> 63);
      }
    }
  }
  return faults;
}
