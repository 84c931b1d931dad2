// Decoders / encoders for the two binary records an embedder looks at:
// struct page_info (FS §1–2) and the stage-2 descriptor lpae_p2m_t (FS §4).
//
// Every bit of the input lands in exactly one field of the decoded object
// (unnamed bits are kept in `otherBits`), so encode(decode(bytes)) gives the
// identical bytes.

import type { Arch, Revision } from "../machine/api.js";
import { REVISIONS } from "../machine/api.js";
import { policyFor, F_GFN_IN_PAGE_INFO, F_NEED_SCRUB_OWN_BIT } from "../revisions/index.js";
import { XenmmArgumentError, checkObject, checkOneOf, toU64 } from "../api/errors.js";

/** Which layout to decode with: the arch fixes the word size, the revision the flag/field split. */
export interface Layout { arch: Arch; revision: Revision }

const ARCHES: readonly Arch[] = ["arm64", "arm32"];

function checkLayout(l: unknown): Layout {
  checkObject("layout", l);
  checkOneOf("layout.arch", l.arch, ARCHES);
  checkOneOf("layout.revision", l.revision, REVISIONS);
  return l as unknown as Layout;
}

export const pageInfoSize = (arch: Arch): number => (arch === "arm64" ? 56 : 32);
const bitsPerLong = (arch: Arch): bigint => (arch === "arm64" ? 64n : 32n);
const longMask = (arch: Arch): bigint => (1n << bitsPerLong(arch)) - 1n;
/** Xen's PG_mask(x, idx) = x << (BITS_PER_LONG - idx). */
const PG_mask = (arch: Arch, x: bigint, idx: number): bigint => (x << (bitsPerLong(arch) - BigInt(idx))) & longMask(arch);
const PG_shift = (arch: Arch, idx: number): bigint => bitsPerLong(arch) - BigInt(idx);
/** GFN-in-page_info (FS 2.3), as the revision policy says. */
const gfnInTypeInfo = (r: Revision): boolean => (policyFor(r).features & F_GFN_IN_PAGE_INFO) !== 0;
/** PGC_need_scrub's own bit (FS 2.1). */
const needScrubOwnBit = (r: Revision): boolean => (policyFor(r).features & F_NEED_SCRUB_OWN_BIT) !== 0;
const staticBitName = (r: Revision): string => policyFor(r).pgcStaticName;

// ---- count_info -----------------------------------------------------------

export type PgcState = "inuse" | "offlining" | "offlined" | "free";
const PGC_STATES: readonly PgcState[] = ["inuse", "offlining", "offlined", "free"];

export interface CountInfo {
  PGC_allocated: boolean;
  PGC_xen_heap: boolean;
  /** PGC_reserved before 4.17, PGC_static after (same bit). */
  PGC_static: boolean;
  /** HEAD: its own bit. Earlier: an alias of PGC_allocated (always equal to it; ignored when encoding). */
  PGC_need_scrub: boolean;
  PGC_broken: boolean;
  state: PgcState;
  PGC_extra: boolean;
  /** The reference count (PGC_count_mask bits). */
  count: bigint;
  /** Bits with no name at this revision (e.g. PGC_colored, idx 6). */
  otherBits: bigint;
}

export interface CountInfoMasks {
  allocated: bigint; xenHeap: bigint; static: bigint; needScrub: bigint; broken: bigint;
  state: bigint; stateShift: bigint; extra: bigint; countMask: bigint;
}

export function countInfoMasks(layout: Layout): CountInfoMasks {
  const a = layout.arch;
  return {
    allocated: PG_mask(a, 1n, 1),
    xenHeap: PG_mask(a, 1n, 2),
    static: PG_mask(a, 1n, 3),
    needScrub: needScrubOwnBit(layout.revision) ? PG_mask(a, 1n, 5) : PG_mask(a, 1n, 1),
    broken: PG_mask(a, 1n, 7),
    state: PG_mask(a, 3n, 9),
    stateShift: PG_shift(a, 9),
    extra: PG_mask(a, 1n, 10),
    countMask: (1n << PG_shift(a, 10)) - 1n,
  };
}

export function decodeCountInfo(raw: bigint | number, layout: Layout): CountInfo {
  checkLayout(layout);
  const v = toU64("countInfo", raw, longMask(layout.arch));
  const m = countInfoMasks(layout);
  const named = m.allocated | m.xenHeap | m.static | m.needScrub | m.broken | m.state | m.extra | m.countMask;
  return {
    PGC_allocated: (v & m.allocated) !== 0n,
    PGC_xen_heap: (v & m.xenHeap) !== 0n,
    PGC_static: (v & m.static) !== 0n,
    PGC_need_scrub: (v & m.needScrub) !== 0n,
    PGC_broken: (v & m.broken) !== 0n,
    state: PGC_STATES[Number((v & m.state) >> m.stateShift)],
    PGC_extra: (v & m.extra) !== 0n,
    count: v & m.countMask,
    otherBits: v & ~named & longMask(layout.arch),
  };
}

export function encodeCountInfo(ci: CountInfo, layout: Layout): bigint {
  checkLayout(layout);
  checkObject("countInfo", ci);
  const m = countInfoMasks(layout);
  const st = PGC_STATES.indexOf(checkOneOf("countInfo.state", ci.state, PGC_STATES));
  const count = toU64("countInfo.count", ci.count, m.countMask);
  const other = toU64("countInfo.otherBits", ci.otherBits, longMask(layout.arch));
  const named = m.allocated | m.xenHeap | m.static | m.needScrub | m.broken | m.state | m.extra | m.countMask;
  if (other & named) throw new XenmmArgumentError("countInfo.otherBits", `overlaps named fields (0x${(other & named).toString(16)})`, ci.otherBits);
  let v = count | other | (BigInt(st) << m.stateShift);
  if (ci.PGC_allocated) v |= m.allocated;
  if (ci.PGC_xen_heap) v |= m.xenHeap;
  if (ci.PGC_static) v |= m.static;
  if (ci.PGC_need_scrub && needScrubOwnBit(layout.revision)) v |= m.needScrub;
  if (ci.PGC_broken) v |= m.broken;
  if (ci.PGC_extra) v |= m.extra;
  return v;
}

/** Flag names set in a count_info word, e.g. ["PGC_allocated", "PGC_xen_heap", "state=inuse", "count=1"]. */
export function countInfoFlagNames(raw: bigint | number, layout: Layout): string[] {
  const c = decodeCountInfo(raw, layout);
  const out: string[] = [];
  if (c.PGC_allocated) out.push(needScrubOwnBit(layout.revision) || c.state !== "free" ? "PGC_allocated" : "PGC_need_scrub");
  if (c.PGC_xen_heap) out.push("PGC_xen_heap");
  if (c.PGC_static) out.push(staticBitName(layout.revision));
  if (c.PGC_need_scrub && needScrubOwnBit(layout.revision)) out.push("PGC_need_scrub");
  if (c.PGC_broken) out.push("PGC_broken");
  out.push(`PGC_state_${c.state}`);
  if (c.PGC_extra) out.push("PGC_extra");
  out.push(`count=${c.count}`);
  if (c.otherBits) out.push(`other=0x${c.otherBits.toString(16)}`);
  return out;
}

// ---- type_info ------------------------------------------------------------

export interface TypeInfo {
  type: "PGT_none" | "PGT_writable_page";
  /** Type count: bits 0..61/29 before GFN; the 2-bit field (61–62 / 29–30) from GFN on. */
  count: bigint;
  /** From GFN on: the xenheap GFN bits; null = PGT_INVALID_XENHEAP_GFN. Undefined before GFN. */
  gfn?: bigint | null;
  otherBits: bigint;
}

export interface TypeInfoMasks { type: bigint; count: bigint; countShift: bigint; gfn: bigint }

export function typeInfoMasks(layout: Layout): TypeInfoMasks {
  const a = layout.arch;
  if (gfnInTypeInfo(layout.revision)) {
    return { type: PG_mask(a, 1n, 1), count: PG_mask(a, 3n, 3), countShift: PG_shift(a, 3), gfn: (1n << PG_shift(a, 3)) - 1n };
  }
  return { type: PG_mask(a, 1n, 1), count: (1n << PG_shift(a, 2)) - 1n, countShift: 0n, gfn: 0n };
}

export function decodeTypeInfo(raw: bigint | number, layout: Layout): TypeInfo {
  checkLayout(layout);
  const v = toU64("typeInfo", raw, longMask(layout.arch));
  const m = typeInfoMasks(layout);
  const t: TypeInfo = {
    type: v & m.type ? "PGT_writable_page" : "PGT_none",
    count: (v & m.count) >> m.countShift,
    otherBits: v & ~(m.type | m.count | m.gfn) & longMask(layout.arch),
  };
  if (m.gfn) { const g = v & m.gfn; t.gfn = g === m.gfn ? null : g; }
  return t;
}

export function encodeTypeInfo(ti: TypeInfo, layout: Layout): bigint {
  checkLayout(layout);
  checkObject("typeInfo", ti);
  const m = typeInfoMasks(layout);
  checkOneOf("typeInfo.type", ti.type, ["PGT_none", "PGT_writable_page"] as const);
  const count = toU64("typeInfo.count", ti.count, m.count >> m.countShift);
  const other = toU64("typeInfo.otherBits", ti.otherBits, longMask(layout.arch));
  if (other & (m.type | m.count | m.gfn)) throw new XenmmArgumentError("typeInfo.otherBits", "overlaps named fields", ti.otherBits);
  let v = (count << m.countShift) | other | (ti.type === "PGT_writable_page" ? m.type : 0n);
  if (m.gfn) {
    if (ti.gfn === undefined) throw new XenmmArgumentError("typeInfo.gfn", `required at revision ${layout.revision} (null = invalid)`);
    v |= ti.gfn === null ? m.gfn : toU64("typeInfo.gfn", ti.gfn, m.gfn - 1n);
  } else if (ti.gfn !== undefined) {
    throw new XenmmArgumentError("typeInfo.gfn", `no GFN field in type_info at revision ${layout.revision}`, ti.gfn);
  }
  return v;
}

// ---- u.free ---------------------------------------------------------------

export interface FreeInfo {
  firstDirty: number;      // bits 0..18 (0x7FFFF = INVALID_DIRTY_IDX)
  needTlbflush: boolean;   // bit 19
  scrubState: number;      // bits 20..21
  otherBits: bigint;       // stale type_info bits above bit 21
}

export function decodeFree(raw: bigint): FreeInfo {
  return {
    firstDirty: Number(raw & 0x7FFFFn),
    needTlbflush: (raw & (1n << 19n)) !== 0n,
    scrubState: Number((raw >> 20n) & 3n),
    otherBits: raw & ~0x3FFFFFn,
  };
}
export function encodeFree(f: FreeInfo, arch: Arch): bigint {
  checkObject("free", f);
  const fd = toU64("free.firstDirty", f.firstDirty, 0x7FFFFn);
  const ss = toU64("free.scrubState", f.scrubState, 3n);
  const other = toU64("free.otherBits", f.otherBits, longMask(arch));
  if (other & 0x3FFFFFn) throw new XenmmArgumentError("free.otherBits", "overlaps the bit-fields", f.otherBits);
  return fd | (f.needTlbflush ? 1n << 19n : 0n) | (ss << 20n) | other;
}

// ---- the whole record -----------------------------------------------------

export interface PageInfoRecord {
  /** list.next / list.prev: Xen VAs of neighbouring page_info records or list heads. */
  next: bigint;
  prev: bigint;
  countInfo: CountInfo;
  /** The `u` word: type_info while in use, the u.free bit-fields while state is free. */
  u: { kind: "inuse"; typeInfo: TypeInfo } | { kind: "free"; free: FreeInfo };
  /** The `v` word: owner (struct domain VA, 0 = anonymous) in use; PFN_ORDER while free. */
  v: { kind: "inuse"; owner: bigint } | { kind: "free"; order: number; high: number };
  tlbflushTimestamp: number;
  /** arm64 only: the 4 bytes of compiler padding after tlbflush_timestamp. */
  padding?: number;
  pad: bigint;
}

function rdWord(dv: DataView, off: number, arch: Arch): bigint {
  return arch === "arm64" ? dv.getBigUint64(off, true) : BigInt(dv.getUint32(off, true));
}
function wrWord(dv: DataView, off: number, arch: Arch, v: bigint): void {
  if (arch === "arm64") dv.setBigUint64(off, v, true); else dv.setUint32(off, Number(v), true);
}

/** Decode one page_info record (56 bytes on arm64, 32 on arm32). */
export function decodePageInfo(bytes: Uint8Array, layout: Layout): PageInfoRecord {
  checkLayout(layout);
  if (!(bytes instanceof Uint8Array)) throw new XenmmArgumentError("bytes", "expected a Uint8Array", bytes);
  const a = layout.arch, size = pageInfoSize(a), W = a === "arm64" ? 8 : 4;
  if (bytes.length !== size) throw new XenmmArgumentError("bytes", `a ${a} page_info record is ${size} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, size);
  const ciRaw = rdWord(dv, 2 * W, a);
  const countInfo = decodeCountInfo(ciRaw, layout);
  const uRaw = rdWord(dv, 3 * W, a);
  const vRaw = rdWord(dv, 4 * W, a);
  const free = countInfo.state === "free";
  const rec: PageInfoRecord = {
    next: rdWord(dv, 0, a),
    prev: rdWord(dv, W, a),
    countInfo,
    u: free ? { kind: "free", free: decodeFree(uRaw) } : { kind: "inuse", typeInfo: decodeTypeInfo(uRaw, layout) },
    v: free ? { kind: "free", order: Number(vRaw & 0xFFFFFFFFn), high: Number(vRaw >> 32n) } : { kind: "inuse", owner: vRaw },
    tlbflushTimestamp: dv.getUint32(5 * W, true),
    pad: dv.getBigUint64(a === "arm64" ? 48 : 24, true),
  };
  if (a === "arm64") rec.padding = dv.getUint32(44, true);
  return rec;
}

/** Encode a record back to its bytes. */
export function encodePageInfo(rec: PageInfoRecord, layout: Layout): Uint8Array {
  checkLayout(layout);
  checkObject("record", rec);
  const a = layout.arch, size = pageInfoSize(a), W = a === "arm64" ? 8 : 4, lm = longMask(a);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  wrWord(dv, 0, a, toU64("record.next", rec.next, lm));
  wrWord(dv, W, a, toU64("record.prev", rec.prev, lm));
  wrWord(dv, 2 * W, a, encodeCountInfo(rec.countInfo, layout));
  checkObject("record.u", rec.u);
  if (rec.u.kind === "inuse") wrWord(dv, 3 * W, a, encodeTypeInfo(rec.u.typeInfo, layout));
  else if (rec.u.kind === "free") wrWord(dv, 3 * W, a, encodeFree(rec.u.free, a));
  else throw new XenmmArgumentError("record.u.kind", `expected "inuse" or "free"`, (rec.u as any).kind);
  checkObject("record.v", rec.v);
  if (rec.v.kind === "inuse") wrWord(dv, 4 * W, a, toU64("record.v.owner", rec.v.owner, lm));
  else if (rec.v.kind === "free") {
    const lo = toU64("record.v.order", rec.v.order, 0xFFFFFFFFn);
    const hi = toU64("record.v.high", rec.v.high, a === "arm64" ? 0xFFFFFFFFn : 0n);
    wrWord(dv, 4 * W, a, lo | (hi << 32n));
  } else throw new XenmmArgumentError("record.v.kind", `expected "inuse" or "free"`, (rec.v as any).kind);
  dv.setUint32(5 * W, Number(toU64("record.tlbflushTimestamp", rec.tlbflushTimestamp, 0xFFFFFFFFn)), true);
  if (a === "arm64") dv.setUint32(44, Number(toU64("record.padding", rec.padding ?? 0, 0xFFFFFFFFn)), true);
  dv.setBigUint64(a === "arm64" ? 48 : 24, toU64("record.pad", rec.pad), true);
  return out;
}

// ---- stage-2 descriptor (FS §4.1) ------------------------------------------

export const P2M_TYPE_NAMES = [
  "p2m_invalid", "p2m_ram_rw", "p2m_ram_ro", "p2m_mmio_direct_dev", "p2m_mmio_direct_nc",
  "p2m_mmio_direct_c", "p2m_map_foreign_rw", "p2m_map_foreign_ro", "p2m_grant_map_rw",
  "p2m_grant_map_ro", "p2m_iommu_map_rw", "p2m_iommu_map_ro", "p2m_max_real_type",
] as const;
export type P2mTypeName = (typeof P2M_TYPE_NAMES)[number];

export function p2mTypeName(t: number): string {
  return P2M_TYPE_NAMES[t] ?? `p2m_type_${t}`;
}

export interface Stage2Descriptor {
  valid: boolean;      // bit 0
  table: boolean;      // bit 1
  mattr: number;       // 5:2
  read: boolean;       // 6
  write: boolean;      // 7
  sh: number;          // 9:8
  af: boolean;         // 10
  sbz4: boolean;       // 11
  /** base (47:12): the MFN of the page/block or next-level table. */
  mfn: bigint;
  sbz3: number;        // 51:48
  contig: boolean;     // 52
  sbz2: boolean;       // 53
  xn: boolean;         // 54
  /** p2m_type_t (58:55). */
  type: number;
  /** Name of `type` (p2m_ram_rw, ...). Informational: ignored when encoding. */
  typeName: string;
  sbz1: number;        // 63:59
}

/** What a descriptor is at a given level (P2M view: type != p2m_invalid is "valid"). */
export type DescriptorKind = "invalid" | "table" | "block" | "page" | "reserved";

export function descriptorKind(raw: bigint, level: number): DescriptorKind {
  if (((raw >> 55n) & 0xFn) === 0n) return "invalid";
  const t = (raw & 2n) !== 0n;
  if (level === 3) return t ? "page" : "reserved";
  return t ? "table" : "block";
}

export function decodeDescriptor(raw: bigint | number): Stage2Descriptor {
  const e = toU64("descriptor", raw);
  const type = Number((e >> 55n) & 0xFn);
  return {
    valid: (e & 1n) !== 0n,
    table: (e & 2n) !== 0n,
    mattr: Number((e >> 2n) & 0xFn),
    read: (e & (1n << 6n)) !== 0n,
    write: (e & (1n << 7n)) !== 0n,
    sh: Number((e >> 8n) & 3n),
    af: (e & (1n << 10n)) !== 0n,
    sbz4: (e & (1n << 11n)) !== 0n,
    mfn: (e >> 12n) & 0xF_FFFF_FFFFn,
    sbz3: Number((e >> 48n) & 0xFn),
    contig: (e & (1n << 52n)) !== 0n,
    sbz2: (e & (1n << 53n)) !== 0n,
    xn: (e & (1n << 54n)) !== 0n,
    type,
    typeName: p2mTypeName(type),
    sbz1: Number(e >> 59n),
  };
}

export function encodeDescriptor(d: Stage2Descriptor): bigint {
  checkObject("descriptor", d);
  const b = (v: unknown, bit: bigint) => (v ? 1n << bit : 0n);
  return b(d.valid, 0n) | b(d.table, 1n)
    | (toU64("descriptor.mattr", d.mattr, 0xFn) << 2n)
    | b(d.read, 6n) | b(d.write, 7n)
    | (toU64("descriptor.sh", d.sh, 3n) << 8n)
    | b(d.af, 10n) | b(d.sbz4, 11n)
    | (toU64("descriptor.mfn", d.mfn, 0xF_FFFF_FFFFn) << 12n)
    | (toU64("descriptor.sbz3", d.sbz3, 0xFn) << 48n)
    | b(d.contig, 52n) | b(d.sbz2, 53n) | b(d.xn, 54n)
    | (toU64("descriptor.type", d.type, 0xFn) << 55n)
    | (toU64("descriptor.sbz1", d.sbz1, 0x1Fn) << 59n);
}

const MATTR_NAMES: Record<number, string> = { 0x1: "Device-nGnRE", 0x5: "Normal-NC", 0xF: "Normal-WB" };
const SH_NAMES = ["non-shareable", "unpredictable", "outer", "inner"];

/** One line, e.g. "page mfn=0x40123 p2m_ram_rw R W AF mattr=Normal-WB sh=inner". */
export function describeDescriptor(raw: bigint, level: number): string {
  const d = decodeDescriptor(raw);
  const k = descriptorKind(raw, level);
  if (raw === 0n) return "invalid (0)";
  const parts = [k, `mfn=0x${d.mfn.toString(16)}`, d.typeName];
  if (k === "table") return parts.join(" ");
  parts.push(d.read ? "R" : "-", d.write ? "W" : "-", d.xn ? "XN" : "X");
  if (d.af) parts.push("AF");
  if (!d.valid) parts.push("hw-invalid");
  parts.push(`mattr=${MATTR_NAMES[d.mattr] ?? "0x" + d.mattr.toString(16)}`, `sh=${SH_NAMES[d.sh]}`);
  if (d.contig) parts.push("contig");
  if (d.sbz1 || d.sbz2 || d.sbz3 || d.sbz4) parts.push("SBZ-set");
  return parts.join(" ");
}
