// Reading the machine header and the P2M tables straight from linear memory
// (no calls that change state; views are re-synced on every access).

import type { Arch, Revision } from "../machine/api.js";
import { CoreViews, viewsOf, type ViewCore } from "../api/views.js";
import { XenmmArgumentError, XenmmStateError, checkInt } from "../api/errors.js";

export const HDR_MAGIC = 0x4D4D4E58;
/** Header word offsets (assembly/mem/machine.ts). */
export const H = {
  MAGIC: 0, VERSION: 4, TOP: 8, ARCH: 12, REVISION: 16, FEATURES: 20, RAM_START: 24, NR_FRAMES: 32,
  FT_BASE_PDX: 40, FRAME_TABLE: 48, LAST_ERROR: 76, IPA_BITS: 80, MAX_PAGE: 88, ROOT_LEVEL: 96, ROOT_ORDER: 100,
  HOOKS: 144, P2M_LOG: 148, HWM: 160, FRAME_LOG: 164,
} as const;

export interface InspectCore extends ViewCore {
  walk_hdr?: () => number;
  p2m_root_mfn?: (slot: number) => bigint;
  p2m_initialised?: (slot: number) => boolean;
}

const hdrCache = new WeakMap<object, number>();

/** Linear address of the machine header. */
function checkCore(core: unknown): asserts core is InspectCore {
  if (!core || typeof core !== "object" || !((core as any).memory instanceof WebAssembly.Memory) || typeof (core as any).mem_top !== "function")
    throw new XenmmArgumentError("core", "expected a core instance (machine.core)", core);
}

export function headerAddress(core: InspectCore): number {
  checkCore(core);
  let h = hdrCache.get(core);
  if (h !== undefined) return h;
  if (typeof core.walk_hdr === "function") h = core.walk_hdr();
  else {
    // The header is the first 64-aligned "XNMM" whose top word equals mem_top().
    const v = viewsOf(core), top = core.mem_top();
    for (let a = 0; a + 256 <= Math.min(top, 1 << 20); a += 64) {
      if (v.u32(a) === HDR_MAGIC && v.u32(a + H.TOP) === top) { h = a; break; }
    }
    if (h === undefined) throw new XenmmStateError("machine header not found in core memory");
  }
  hdrCache.set(core, h);
  return h;
}

export interface CoreHeader {
  address: number;
  arch: Arch;
  revisionIndex: number;
  revision: Revision;
  features: number;
  top: number;
  ramStartMfn: bigint;
  nrFrames: bigint;
  maxPage: bigint;
  frametableBasePdx: bigint;
  ipaBits: number;
  rootLevel: number;
  rootOrder: number;
  lastError: number;
}

const REVS: Revision[] = ["pre", "harden", "gfn", "head"];

export function readHeader(core: InspectCore): CoreHeader {
  const a = headerAddress(core);
  const v = viewsOf(core);
  const ri = v.u32(a + H.REVISION);
  return {
    address: a,
    arch: v.u32(a + H.ARCH) === 0 ? "arm64" : "arm32",
    revisionIndex: ri,
    revision: REVS[ri] ?? "head",
    features: v.u32(a + H.FEATURES),
    top: v.u32(a + H.TOP),
    ramStartMfn: v.u64(a + H.RAM_START),
    nrFrames: v.u64(a + H.NR_FRAMES),
    maxPage: v.u64(a + H.MAX_PAGE),
    frametableBasePdx: v.u64(a + H.FT_BASE_PDX),
    ipaBits: v.u32(a + H.IPA_BITS),
    rootLevel: v.u32(a + H.ROOT_LEVEL),
    rootOrder: v.u32(a + H.ROOT_ORDER),
    lastError: v.u32(a + H.LAST_ERROR),
  };
}

// ---- P2M walk -----------------------------------------------------------------

export interface P2mLeaf {
  gfn: bigint;          // first GFN covered
  level: number;        // 1 = 1 GiB block, 2 = 2 MiB block, 3 = 4 KiB page
  nr: bigint;           // pages covered
  mfn: bigint;
  type: number;         // p2m_type_t
  descriptor: bigint;
}

export interface P2mTableNode {
  mfn: bigint;
  level: number;
  gfn: bigint;          // first GFN covered by the table
  /** Non-zero entries: index, descriptor, and the child table for table descriptors. */
  entries: Array<{ index: number; descriptor: bigint; child?: P2mTableNode; missing?: boolean }>;
}

const levelOrder = (l: number) => BigInt((3 - l) * 9);

/** The root tables of a slot's P2M (one per concatenated page), or [] if it has none. */
export function p2mRoot(core: InspectCore, slot: number): { mfn: bigint; level: number; pages: number } | null {
  checkCore(core);
  checkInt("slot", slot, 1, 64);
  if (typeof core.p2m_root_mfn !== "function") throw new XenmmStateError("this core build has no P2M (p2m_root_mfn missing)");
  if (core.p2m_initialised && !core.p2m_initialised(slot)) return null;
  const mfn = core.p2m_root_mfn(slot);
  const h = readHeader(core);
  const invalid = h.arch === "arm64" ? 0xFFFF_FFFF_FFFF_FFFFn : 0xFFFF_FFFFn;
  if (mfn === invalid) return null;
  return { mfn, level: h.rootLevel, pages: 1 << h.rootOrder };
}

/** The P2M as a tree of table nodes (the root is one node per concatenated page). */
export function p2mTree(core: InspectCore, slot: number): P2mTableNode[] {
  const r = p2mRoot(core, slot);
  if (!r) return [];
  const v = viewsOf(core);
  const out: P2mTableNode[] = [];
  const span = 512n << levelOrder(r.level);
  for (let i = 0; i < r.pages; i++) out.push(readTable(v, r.mfn + BigInt(i), r.level, BigInt(i) * span, 0));
  return out;
}

function readTable(v: CoreViews, mfn: bigint, level: number, gfn: bigint, depth: number): P2mTableNode {
  const node: P2mTableNode = { mfn, level, gfn, entries: [] };
  const t = v.tablePage(mfn);
  if (!t) return node;
  const words = Array.from(t); // copy: recursion below re-syncs views
  for (let i = 0; i < 512; i++) {
    const e = words[i];
    if (e === 0n) continue;
    const ent: P2mTableNode["entries"][number] = { index: i, descriptor: e };
    const isTable = level < 3 && (e & 2n) !== 0n && ((e >> 55n) & 0xFn) !== 0n;
    if (isTable && depth < 4) {
      const cm = (e >> 12n) & 0xF_FFFF_FFFFn;
      if (v.core.backing_lookup(cm)) ent.child = readTable(v, cm, level + 1, gfn + (BigInt(i) << levelOrder(level)), depth + 1);
      else ent.missing = true;
    }
    node.entries.push(ent);
  }
  return node;
}

/** Every mapping leaf (P2M-valid: type != p2m_invalid), in GFN order. */
export function p2mLeaves(core: InspectCore, slot: number): P2mLeaf[] {
  const out: P2mLeaf[] = [];
  const visit = (n: P2mTableNode) => {
    for (const e of n.entries) {
      if (e.child) { visit(e.child); continue; }
      const type = Number((e.descriptor >> 55n) & 0xFn);
      if (type === 0) continue;
      const isMapping = n.level === 3 ? (e.descriptor & 2n) !== 0n : (e.descriptor & 2n) === 0n;
      if (!isMapping) continue;
      out.push({
        gfn: n.gfn + (BigInt(e.index) << levelOrder(n.level)), level: n.level, nr: 1n << levelOrder(n.level),
        mfn: (e.descriptor >> 12n) & 0xF_FFFF_FFFFn, type, descriptor: e.descriptor,
      });
    }
  };
  for (const r of p2mTree(core, slot)) visit(r);
  return out;
}

export interface MappedRange { gfn: bigint; nr: bigint; level: number; type: number; mfn: bigint; leaves: number }

/** Leaves merged into maximal runs: contiguous GFNs, same level, same type, contiguous MFNs. */
export function mappedRanges(leaves: P2mLeaf[]): MappedRange[] {
  if (!Array.isArray(leaves)) throw new XenmmArgumentError("leaves", "expected an array of P2M leaves", leaves);
  const out: MappedRange[] = [];
  let cur: MappedRange | null = null;
  for (const l of leaves) {
    if (cur && cur.level === l.level && cur.type === l.type && cur.gfn + cur.nr === l.gfn && cur.mfn + cur.nr === l.mfn) {
      cur.nr += l.nr; cur.leaves++;
    } else {
      cur = { gfn: l.gfn, nr: l.nr, level: l.level, type: l.type, mfn: l.mfn, leaves: 1 };
      out.push(cur);
    }
  }
  return out;
}
