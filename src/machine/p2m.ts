// The P2M as the host sees it. Two backends with one contract:
//  * CoreP2m: the AssemblyScript P2M (assembly/p2m/), used when the core
//    build exports it;
//  * HostP2m: a TypeScript model of the same observable behaviour at 4 KiB
//    granularity (no table pages, no superpages), used until then.
// Every method runs with the lock the caller took (FS 6.1); the host checks
// that before calling (machine.ts).

import type { CoreExports } from "../core/wasm.js";
import type { RevisionPolicy } from "../revisions/index.js";
import { XenCrash } from "./crash.js";
import { EINVAL, EILSEQ, ENOMEM, p2m_invalid, p2m_is_any_ram, p2m_is_foreign, p2m_is_ram } from "./errno.js";

export interface P2mLookup { mfn: bigint; t: number; order: number; valid: boolean }
export interface P2mRun { gfn: bigint; nr: bigint; mfn: bigint; type: number }

export interface P2mBackend {
  readonly kind: "core" | "host";
  /** p2m_init + p2m_alloc_table. */
  init(slot: number): number;
  isInitialised(slot: number): boolean;
  /** p2m_get_entry (lock held). `name` labels a crash. */
  getEntry(slot: number, gfn: bigint, out: P2mLookup): void;
  /** p2m_set_entry (write lock held); smfn = INVALID removes. */
  setEntry(slot: number, gfn: bigint, nr: bigint, mfn: bigint, t: number, dying: boolean): number;
  /** Body of p2m_remove_mapping under the write lock (FS 6.8). */
  removeMapping(slot: number, gfn: bigint, nr: bigint, mfn: bigint, dying: boolean): number;
  /** relinquish_p2m_mapping body. */
  relinquish(slot: number): void;
  /** p2m_teardown + final teardown. */
  teardown(slot: number): void;
  /** p2m_tlb_flush_sync (run on write unlock). */
  flushSync(slot: number): void;
  maxMappedGfn(slot: number): bigint;
  lowestMappedGfn(slot: number): bigint;
  flushCount(slot: number): number;
  runs(slot: number): P2mRun[];
}

const LEVEL_ORDER = (l: number) => (3 - l) * 9;

/** Root level / pages per FS 5.2 (the same table as assembly/p2m/geometry.ts). */
export function p2mGeometry(arch: "arm64" | "arm32", ipaBits: number, arm32Pa32: boolean): { rootLevel: number; rootOrder: number; ipaBits: number } {
  if (arch === "arm64") {
    const rows: Record<number, [number, number]> = { 32: [1, 0], 36: [1, 0], 40: [1, 1], 42: [1, 3], 44: [0, 0], 48: [0, 0] };
    const r = rows[ipaBits];
    if (!r) throw new Error(`ipaBits ${ipaBits}: no pa_range_info row (expected 32, 36, 40, 42, 44 or 48)`);
    return { rootLevel: r[0], rootOrder: r[1], ipaBits };
  }
  if (ipaBits === 32 && arm32Pa32) return { rootLevel: 1, rootOrder: 0, ipaBits: 32 };
  if (ipaBits >= 40) return { rootLevel: 1, rootOrder: 1, ipaBits: 40 };
  throw new Error(`arm32 ipaBits ${ipaBits}: IPA size below 40 bits`);
}

interface HostP2mDomain {
  init: boolean;
  entries: Map<bigint, { mfn: bigint; t: number }>;
  max: bigint;
  lowest: bigint;
  needFlush: boolean;
  flushes: number;
}

export class HostP2m implements P2mBackend {
  readonly kind = "host" as const;
  private doms: HostP2mDomain[] = [];
  private readonly reachShift: bigint;
  private readonly rootPages: bigint;
  /** Called for each GFN-bits write done by p2m_put_l3_page (GFN audit). */
  onXenheapGfnClear: ((mfn: bigint) => void) | null = null;

  constructor(
    private readonly core: CoreExports,
    private readonly policy: RevisionPolicy,
    private readonly invalid: bigint,
    geometry: { rootLevel: number; rootOrder: number },
  ) {
    this.reachShift = BigInt(LEVEL_ORDER(geometry.rootLevel) + 9);
    this.rootPages = 1n << BigInt(geometry.rootOrder);
  }

  private d(slot: number): HostP2mDomain {
    let d = this.doms[slot];
    if (!d) {
      // All-zero struct p2m_domain (never initialised): FS 6.3.
      d = { init: false, entries: new Map(), max: 0n, lowest: 0n, needFlush: false, flushes: 0 };
      this.doms[slot] = d;
    }
    return d;
  }

  init(slot: number): number {
    const d = this.d(slot);
    d.init = true;
    d.entries.clear();
    d.max = 0n;
    d.lowest = this.invalid;
    d.needFlush = false;
    return 0;
  }

  isInitialised(slot: number): boolean {
    return this.d(slot).init;
  }

  getEntry(slot: number, gfn: bigint, out: P2mLookup): void {
    const d = this.d(slot);
    out.mfn = this.invalid;
    out.t = p2m_invalid;
    out.valid = false;
    out.order = 0;
    if (gfn > d.max) return;
    if (!d.init) {
      // Root = page_to_mfn(NULL): a wild VA in the direct map (FS 6.3).
      throw new XenCrash({ kind: "data_abort", path: "p2m_next_level <- p2m_get_entry (root of a never-initialised P2M)" });
    }
    if (gfn >> this.reachShift >= this.rootPages) return; // ASSERT_UNREACHABLE (gfn <= max is always reachable)
    const e = d.entries.get(gfn);
    if (e) {
      out.mfn = e.mfn;
      out.t = e.t;
      out.valid = true;
    }
  }

  private putL3(mfn: bigint, t: number): void {
    if (p2m_is_foreign(t)) {
      this.core.put_page(mfn);
    } else if (this.policy.putL3ClearsXenheapGfn && p2m_is_ram(t) && this.core.is_xen_heap_mfn(mfn)) {
      this.onXenheapGfnClear?.(mfn);
      this.core.page_set_xenheap_gfn(mfn, this.invalid);
    }
  }

  private set1(d: HostP2mDomain, gfn: bigint, mfn: bigint, t: number): number {
    if (gfn >> this.reachShift >= this.rootPages) return -EINVAL; // p2m_get_root_pointer NULL
    const removing = mfn === this.invalid;
    const orig = d.entries.get(gfn);
    if (removing) {
      if (orig) {
        d.entries.delete(gfn);
        d.needFlush = true;
        if (orig.mfn !== 0n) this.putL3(orig.mfn, orig.t); // bases differ (removal base is 0)
      }
      return 0;
    }
    if (orig) d.flushes++; // forced flush: replacing a valid entry
    d.entries.set(gfn, { mfn, t });
    if (gfn > d.max) d.max = gfn;
    if (gfn < d.lowest) d.lowest = gfn;
    if (orig && orig.mfn !== mfn) this.putL3(orig.mfn, orig.t);
    return 0;
  }

  setEntry(slot: number, gfn: bigint, nr: bigint, mfn: bigint, t: number, dying: boolean): number {
    if (this.policy.dyingRefusesP2m && dying) return -ENOMEM;
    const d = this.d(slot);
    if (!d.init) throw new XenCrash({ kind: "data_abort", path: "__p2m_set_entry (never-initialised P2M)" });
    const inv = this.invalid;
    for (let i = 0n; i < nr; i++) {
      const rc = this.set1(d, (gfn + i) & inv, mfn === inv ? inv : (mfn + i) & inv, t);
      if (rc !== 0) return rc;
    }
    return 0;
  }

  removeMapping(slot: number, gfn: bigint, nr: bigint, mfn: bigint, dying: boolean): number {
    if (this.policy.removeChecksMfn) {
      const d = this.d(slot);
      const inv = this.invalid;
      const look: P2mLookup = { mfn: inv, t: 0, order: 0, valid: false };
      for (let i = 0n; i < nr; i++) {
        const g = (gfn + i) & inv;
        this.getEntry(slot, g, look);
        if (p2m_is_any_ram(look.t) && (!this.core.mfn_valid(mfn) || ((mfn + i) & inv) !== look.mfn)) return -EILSEQ;
      }
      void d;
    }
    return this.setEntry(slot, gfn, nr, this.invalid, p2m_invalid, dying);
  }

  relinquish(slot: number): void {
    const d = this.d(slot);
    if (!d.init) return;
    const gfns = [...d.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const g of gfns) this.set1(d, g, this.invalid, p2m_invalid);
    d.lowest = d.max; // resume point
  }

  teardown(slot: number): void {
    const d = this.d(slot);
    d.entries.clear();
    d.init = false;
  }

  flushSync(slot: number): void {
    const d = this.doms[slot];
    if (d !== undefined && d.needFlush) {
      d.needFlush = false;
      d.flushes++;
    }
  }

  maxMappedGfn(slot: number): bigint { return this.d(slot).max; }
  lowestMappedGfn(slot: number): bigint { return this.d(slot).lowest; }
  flushCount(slot: number): number { return this.d(slot).flushes; }

  runs(slot: number): P2mRun[] {
    const d = this.d(slot);
    const gfns = [...d.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: P2mRun[] = [];
    for (const g of gfns) {
      const e = d.entries.get(g)!;
      const last = out[out.length - 1];
      if (last && last.type === e.t && last.gfn + last.nr === g && last.mfn + last.nr === e.mfn) last.nr++;
      else out.push({ gfn: g, nr: 1n, mfn: e.mfn, type: e.t });
    }
    return out;
  }
}

/** The AssemblyScript P2M (assembly/p2m/abi.ts). */
export class CoreP2m implements P2mBackend {
  readonly kind = "core" as const;
  private readonly c: any;
  private u32: Uint32Array;

  constructor(core: CoreExports, private readonly invalid: bigint) {
    this.c = core;
    this.u32 = new Uint32Array(core.memory.buffer);
  }

  static available(core: CoreExports): boolean {
    const c = core as any;
    return typeof c.p2m_init === "function" && typeof c.p2m_geometry_init === "function" && typeof c.p2m_out_ptr === "function";
  }

  private view(): Uint32Array {
    if (this.u32.buffer !== this.c.memory.buffer) this.u32 = new Uint32Array(this.c.memory.buffer);
    return this.u32;
  }

  init(slot: number): number { return this.c.p2m_init(slot); }
  isInitialised(slot: number): boolean { return this.c.p2m_initialised(slot); }

  getEntry(slot: number, gfn: bigint, out: P2mLookup): void {
    out.mfn = this.c.p2m_get_entry(slot, gfn);
    const v = this.view();
    const p = this.c.p2m_out_ptr(slot) >>> 2;
    out.t = v[p];
    out.order = v[p + 2];
    out.valid = v[p + 3] !== 0;
  }

  setEntry(slot: number, gfn: bigint, nr: bigint, mfn: bigint, t: number): number {
    return this.c.p2m_set_entry(slot, gfn, nr, mfn, t, this.c.p2m_default_access(slot));
  }

  removeMapping(slot: number, gfn: bigint, nr: bigint, mfn: bigint): number {
    return this.c.p2m_remove_mapping(slot, gfn, nr, mfn);
  }

  relinquish(slot: number): void {
    if (this.c.p2m_initialised(slot)) this.c.relinquish_p2m_mapping(slot, false);
  }
  teardown(slot: number): void { this.c.p2m_teardown(slot); }
  flushSync(slot: number): void { if (this.c.p2m_initialised(slot)) this.c.p2m_tlb_flush_sync(slot); }
  maxMappedGfn(slot: number): bigint { return this.c.p2m_max_mapped_gfn(slot); }
  lowestMappedGfn(slot: number): bigint { return this.c.p2m_lowest_mapped_gfn(slot); }
  flushCount(slot: number): number { return Number(this.c.p2m_flush_count(slot)); }

  /** Coalesced runs, walking from lowest to max_mapped_gfn by the returned order. */
  runs(slot: number): P2mRun[] {
    const out: P2mRun[] = [];
    if (!this.c.p2m_initialised(slot)) return out;
    const look: P2mLookup = { mfn: 0n, t: 0, order: 0, valid: false };
    let g = this.c.p2m_lowest_mapped_gfn(slot) as bigint;
    const end = this.c.p2m_max_mapped_gfn(slot) as bigint;
    if (g === this.invalid) return out;
    while (g <= end) {
      this.getEntry(slot, g, look);
      const step = 1n << BigInt(look.order);
      const base = g & ~(step - 1n);
      const n = base + step - g;
      if (look.mfn !== this.invalid && look.t !== p2m_invalid) {
        const last = out[out.length - 1];
        if (last && last.type === look.t && last.gfn + last.nr === g && last.mfn + last.nr === look.mfn) last.nr += n;
        else out.push({ gfn: g, nr: n, mfn: look.mfn, type: look.t });
      }
      g += n;
      if (g > this.invalid) break;
    }
    return out;
  }
}
