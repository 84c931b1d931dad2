// The P2M as the host sees it: the AssemblyScript P2M (assembly/p2m/)
// behind a small typed contract.
// Every method runs with the lock the caller took (FS 6.1); the host checks
// that before calling (machine.ts).

import type { CoreExports } from "../core/wasm.js";
import type { RevisionPolicy } from "../revisions/index.js";
import { XenCrash } from "./crash.js";
import { EINVAL, EILSEQ, ENOMEM, p2m_invalid, p2m_is_any_ram, p2m_is_foreign, p2m_is_ram } from "./errno.js";

export interface P2mLookup { mfn: bigint; t: number; order: number; valid: boolean }
export interface P2mRun { gfn: bigint; nr: bigint; mfn: bigint; type: number }

export interface P2mBackend {
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

// struct p2m_domain fields the host reads directly (assembly/p2m/p2m_domain.ts):
// each saves a JS->Wasm call on every P2M operation.
const P2M_SIZE = 256, P_NEED_FLUSH = 36, P_DEFAULT_ACCESS = 40, P_DOMAIN = 44, P_OUT_T = 184;

export class CoreP2m implements P2mBackend {
  readonly kind = "core" as const;
  private readonly c: CoreExports;
  private u32: Uint32Array;
  /**
   * Linear address of slot 0's struct p2m_domain (the array is allocated once,
   * by p2m_geometry_init). Derived from the core: non-enumerable, so the host
   * state that snapshots and stateHash() encode does not change.
   */
  declare private readonly base: number;

  constructor(core: CoreExports, private readonly invalid: bigint) {
    this.c = core;
    this.u32 = new Uint32Array(core.memory.buffer);
    Object.defineProperty(this, "base", { value: core.p2m_ptr(0), enumerable: false });
  }

  // memory.buffer is a slow getter (~40 ns, more than the walk): a grow
  // detaches the old buffer, which leaves the view with length 0.
  private view(): Uint32Array {
    if (this.u32.length === 0) {
      this.u32 = new Uint32Array(this.c.memory.buffer);
      if (this.c.p2m_ptr(0) !== this.base) throw new Error("CoreP2m: the p2m_domain array moved");
    }
    return this.u32;
  }

  /** u32 index of a field of slot's struct p2m_domain. */
  private field(slot: number, off: number): number {
    return (this.base + slot * P2M_SIZE + off) >>> 2;
  }

  init(slot: number): number { return this.c.p2m_init(slot); }
  isInitialised(slot: number): boolean { return this.c.p2m_initialised(slot); }

  getEntry(slot: number, gfn: bigint, out: P2mLookup): void {
    out.mfn = this.c.p2m_get_entry(slot, gfn);
    const v = this.view();
    const p = this.field(slot, P_OUT_T);
    out.t = v[p];
    out.order = v[p + 2];
    out.valid = v[p + 3] !== 0;
  }

  setEntry(slot: number, gfn: bigint, nr: bigint, mfn: bigint, t: number): number {
    return this.c.p2m_set_entry(slot, gfn, nr, mfn, t, this.view()[this.field(slot, P_DEFAULT_ACCESS)]);
  }

  removeMapping(slot: number, gfn: bigint, nr: bigint, mfn: bigint): number {
    return this.c.p2m_remove_mapping(slot, gfn, nr, mfn);
  }

  relinquish(slot: number): void {
    if (this.c.p2m_initialised(slot)) this.c.relinquish_p2m_mapping(slot, false);
  }
  teardown(slot: number): void { this.c.p2m_teardown(slot); }
  /** p2m_tlb_flush_sync: the core is called only when a flush is pending (need_flush), as its own test would decide. */
  flushSync(slot: number): void {
    const v = this.view();
    if (v[this.field(slot, P_DOMAIN)] !== 0 && v[this.field(slot, P_NEED_FLUSH)] !== 0) this.c.p2m_tlb_flush_sync(slot);
  }
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
