// The fuzz checker's shadow of every domain's P2M leaves (4 KiB
// granularity), kept from the core's P2M-change log: what each op mapped,
// removed or replaced, and when a foreign entry was replaced by the same frame.

import type { P2mWrite } from "./host.js";

// P2M types (FS 4.2).
export const isRam = (t: number) => t === 1 || t === 2;
export const isForeign = (t: number) => t === 6 || t === 7;
export const isGrant = (t: number) => t === 8 || t === 9;

export interface Leaf {
  mfn: number;
  type: number;
}

/** Decode a descriptor written at `level`: null unless it is a valid leaf. */
export function decodeLeaf(lo: number, hi: number, level: number): Leaf | null {
  const type = (hi >>> 23) & 0xf;
  if (type === 0) return null;
  if (level < 3 && (lo & 2) !== 0) return null; // table
  return { mfn: (hi & 0xffff) * 0x100000 + (lo >>> 12), type };
}

export const LEVEL_PAGES = [512 * 512 * 512, 512 * 512, 512, 1];

/** One 4 KiB mapping of the shadow; `bad` and `live` belong to the checker's incremental (b). */
export interface ShadowLeaf extends Leaf {
  readonly domid: number;
  readonly gfn: number;
  /** (b) finds this mapping wrong (as of its last re-evaluation). */
  bad: boolean;
  /** Still in the shadow (a replaced or removed leaf is dead). */
  live: boolean;
}

export function mkLeaf(domid: number, gfn: number, mfn: number, type: number): ShadowLeaf {
  return { domid, gfn, mfn, type, bad: false, live: true };
}

/** Told about every leaf that enters or leaves the shadow. */
export interface ShadowHooks {
  link(l: ShadowLeaf): void;
  unlink(l: ShadowLeaf): void;
  /** A foreign leaf written again with the same frame (xenmem_add_to_physmap_one took one more reference). */
  remapped(l: ShadowLeaf): void;
}

/** Per-domain shadow P2M: gfn -> leaf (4 KiB granularity). */
export class ShadowP2m {
  readonly doms = new Map<number, Map<number, ShadowLeaf>>();
  hooks: ShadowHooks | null = null;
  /** The leaf the previous write removed as the "break" of break-before-make, if any. */
  private brk: ShadowLeaf | null = null;

  of(domid: number): Map<number, ShadowLeaf> {
    let m = this.doms.get(domid);
    if (m === undefined) {
      m = new Map();
      this.doms.set(domid, m);
    }
    return m;
  }

  /** Apply one logged write; calls `removed` for every 4 KiB mapping that disappears or changes. */
  apply(w: P2mWrite, removed: (domid: number, gfn: number, old: Leaf) => void): void {
    const m = this.of(w.domid);
    const brk = this.brk;
    this.brk = null;
    // decodeLeaf of both descriptors, without the objects (this runs for every logged write).
    const oldType = (w.oldHi >>> 23) & 0xf;
    const oldIsLeaf = oldType !== 0 && !(w.level < 3 && (w.oldLo & 2) !== 0);
    const newType = (w.newHi >>> 23) & 0xf;
    const newIsTable = newType !== 0 && w.level < 3 && (w.newLo & 2) !== 0;
    const newIsLeaf = newType !== 0 && !newIsTable;
    if (!oldIsLeaf && !newIsLeaf) return; // table links, empty -> empty
    if (oldIsLeaf && newIsTable) return; // superpage split: same mappings
    const newMfn = newIsLeaf ? (w.newHi & 0xffff) * 0x100000 + (w.newLo >>> 12) : 0;
    const n = LEVEL_PAGES[w.level] ?? 1;
    if (n > 1 << 20) throw new Error(`fuzz: level-${w.level} block not supported by the shadow`);
    const hooks = this.hooks;
    for (let i = 0; i < n; i++) {
      const gfn = w.gfn + i;
      const cur = m.get(gfn);
      const nl = !newIsLeaf ? null : mkLeaf(w.domid, gfn, newMfn + i, newType);
      if (cur !== undefined && (nl === null || nl.mfn !== cur.mfn || nl.type !== cur.type)) removed(w.domid, gfn, cur);
      if (nl === null) {
        if (w.bbm === true && n === 1 && cur !== undefined) this.brk = cur;
        if (!newIsTable && m.delete(gfn) && hooks !== null) hooks.unlink(cur!);
      } else {
        m.set(gfn, nl);
        if (hooks !== null) {
          if (cur !== undefined) hooks.unlink(cur);
          hooks.link(nl);
          // One p2m_set_entry replaced a foreign entry by the same frame: no put_page for the old one.
          if (brk !== null && brk.domid === nl.domid && brk.gfn === gfn && brk.mfn === nl.mfn && brk.type === nl.type && isForeign(nl.type)) hooks.remapped(nl);
        }
      }
    }
  }

  /** Replace domid's leaves by `leaves` ([gfn, mfn, type] triples, in order). */
  reset(domid: number, leaves: number[]): void {
    const m = this.of(domid);
    if (this.hooks !== null) for (const l of m.values()) this.hooks.unlink(l);
    m.clear();
    for (let i = 0; i < leaves.length; i += 3) {
      const l = mkLeaf(domid, leaves[i], leaves[i + 1], leaves[i + 2]);
      m.set(leaves[i], l);
      if (this.hooks !== null) this.hooks.link(l);
    }
  }

  /** Forget a domain. */
  drop(domid: number): void {
    const m = this.doms.get(domid);
    if (m === undefined) return;
    if (this.hooks !== null) for (const l of m.values()) this.hooks.unlink(l);
    this.doms.delete(domid);
  }

  /** Reverse map for one domain: mfn -> gfns. */
  gfnsOf(domid: number, mfn: number): number[] {
    const out: number[] = [];
    const m = this.doms.get(domid);
    if (m === undefined) return out;
    for (const [g, l] of m) if (l.mfn === mfn) out.push(g);
    return out;
  }
}
