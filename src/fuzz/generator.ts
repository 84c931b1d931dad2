// Seeded operation generator for the fuzzer.
//
// Draws from the whole hypercall mix a guest (or the control domain) can
// issue against the memory-management code: grant/status frame mapping,
// shared_info mapping, remove_from_physmap, foreign batch maps, populate and
// decrease, setup_table, set_version, get_status_frames, acquire_resource,
// queries, plus domain destroy / re-create. Arguments come from small pools
// so that GFNs, frame indices and domains are reused often, and a fraction
// are invalid on purpose (INVALID_GFN, GFNs beyond the P2M root reach, bad
// domids, garbage spaces, out-of-range indices).
//
// The generator is a pure function of its seed and options: it never looks
// at the machine, so the same seed gives the same op stream bit for bit, and
// the only state it keeps is which domids it has destroyed / re-created (so
// that it does not spend most of its time on dead domains). It encodes no
// knowledge about any particular bug: every choice below is an independent
// weighted draw.

import { Prng } from "../util/prng.js";
import type { HypercallRequest } from "../machine/api.js";
import { DOMID_SELF, DOMID_IO, DOMID_XEN, defaultIpaBits } from "../machine/api.js";

// ---- op format ---------------------------------------------------------------

/** One hypercall issued by domain `caller`. */
export interface FuzzCall {
  caller: number;
  req: HypercallRequest;
}

/**
 * One step of a fuzz run:
 *  - call: a single hypercall, run to completion;
 *  - par: 2-3 hypercalls in flight at once on vCPUs 0..n-1, interleaved by the
 *    lock layer's scheduler (seed `sched`; `decisions` pins the schedule);
 *  - create / destroy: toolstack domain life cycle.
 */
export type FuzzStep =
  | { kind: "call"; call: FuzzCall }
  | { kind: "par"; calls: FuzzCall[]; sched: number; decisions?: number[] }
  | { kind: "create"; domid: number }
  | { kind: "destroy"; domid: number };

// ---- constants (Xen public ABI) ---------------------------------------------

export const XENMAPSPACE_shared_info = 0;
export const XENMAPSPACE_grant_table = 1;
export const XENMAPSPACE_gmfn = 2;
export const XENMAPSPACE_gmfn_range = 3;
export const XENMAPSPACE_gmfn_foreign = 4;
export const XENMAPSPACE_dev_mmio = 5;
export const XENMAPIDX_grant_table_status = 0x80000000;
export const XENMEM_resource_ioreq_server = 0;
export const XENMEM_resource_grant_table = 1;
export const XENMEM_resource_vmtrace_buf = 2;

/** Layout of the fuzzed world: which domains exist at the start. */
export interface FuzzDomainSpec {
  domid: number;
  privileged: boolean;
  /** RAM placed at ramBaseGfn + i at creation. */
  ramPages: number;
  ramBaseGfn: number;
  maxPages: number;
  maxGrantFrames: number;
}

export interface GeneratorOptions {
  domains?: FuzzDomainSpec[];
  /** Emit `par` groups (needs the interleaving host). */
  interleave?: boolean;
  /** Probability that a step is a `par` group when interleaving (default 0.35). */
  parProbability?: number;
  /** IPA bits of the machine (sets the "beyond reach" GFN pool). Default 48. */
  ipaBits?: number;
  /** arm32 truncates unsigned long to 32 bits; INVALID_GFN differs. */
  arch?: "arm64" | "arm32";
}

/** Guest RAM base on Arm (GUEST_RAM0_BASE 0x40000000) and grant region (0x38000000). */
export const GUEST_RAM_GFN = 0x40000;
export const GUEST_GNTTAB_GFN = 0x38000;

export function defaultDomains(): FuzzDomainSpec[] {
  return [
    { domid: 0, privileged: true, ramPages: 16, ramBaseGfn: GUEST_RAM_GFN, maxPages: 64, maxGrantFrames: 8 },
    { domid: 1, privileged: false, ramPages: 16, ramBaseGfn: GUEST_RAM_GFN, maxPages: 64, maxGrantFrames: 8 },
    { domid: 2, privileged: false, ramPages: 16, ramBaseGfn: GUEST_RAM_GFN, maxPages: 64, maxGrantFrames: 8 },
  ];
}

// ---- the generator ------------------------------------------------------------

// The constant lists the draws pick from (module constants, not a new array per draw).
const ODD_DOMIDS: readonly number[] = [7, 0x7ff4, DOMID_IO, DOMID_XEN, 0xffff];
const ODD_FRAME_IDXS: readonly number[] = [63, 64, 65, 10000, 0x7fffffff, 0xffffffff];
const GARBAGE_SPACES: readonly number[] = [XENMAPSPACE_gmfn, XENMAPSPACE_gmfn_range, XENMAPSPACE_gmfn_foreign, XENMAPSPACE_dev_mmio, 6, 99, 0xffffffff];
const ODD_FOREIGN_DOMIDS: readonly number[] = [7, DOMID_IO, DOMID_XEN];
const OTHER_BATCH_SPACES: readonly number[] = [XENMAPSPACE_grant_table, XENMAPSPACE_gmfn_range, XENMAPSPACE_shared_info];
const BIG_ORDERS: readonly number[] = [1, 2, 9, 30];
const SETUP_NR_FRAMES: readonly number[] = [0, 1, 1, 2, 3, 4, 8, 9, 64, 65];
const BAD_VERSIONS: readonly number[] = [0, 3];
const STATUS_NR_FRAMES: readonly number[] = [0, 1, 1, 2, 9];
const OTHER_RESOURCES: readonly number[] = [XENMEM_resource_ioreq_server, XENMEM_resource_vmtrace_buf, 9];
const OTHER_RESOURCE_IDS: readonly number[] = [1, 2];

// Kinds of step. Numbers rather than names so that the kind draw is one table
// look-up and the dispatch a jump table: the generator runs for every op.
const MAP_GRANT = 0, MAP_SHARED_INFO = 1, MAP_GARBAGE = 2, REMOVE = 3, FOREIGN_BATCH = 4, POPULATE = 5, DECREASE = 6,
  INCREASE = 7, SETUP_TABLE = 8, SET_VERSION = 9, GET_STATUS_FRAMES = 10, ACQUIRE = 11, QUERY = 12, LIFE = 13;

// [weight, kind]. The order is part of the stream: a kind takes the draws
// below(total) that fall in its slice of the cumulative weights.
const KIND_WEIGHTS: ReadonlyArray<readonly [number, number]> = [
  [22, MAP_GRANT],
  [5, MAP_SHARED_INFO],
  [3, MAP_GARBAGE],
  [14, REMOVE],
  [9, FOREIGN_BATCH],
  [9, POPULATE],
  [7, DECREASE],
  [1, INCREASE],
  [5, SETUP_TABLE],
  [8, SET_VERSION],
  [4, GET_STATUS_FRAMES],
  [5, ACQUIRE],
  [4, QUERY],
  [1, LIFE],
];

/** KIND_OF[r]: the kind whose slice holds r, for r in [0, total weight). */
const KIND_OF: Uint8Array = (() => {
  const t: number[] = [];
  for (const [w, k] of KIND_WEIGHTS) for (let i = 0; i < w; i++) t.push(k);
  return Uint8Array.from(t);
})();

export class OpGenerator {
  readonly prng: Prng;
  readonly domains: FuzzDomainSpec[];
  private readonly alive: boolean[] = [];
  // caller() and privileged() draw from these: the live domains (and the live
  // privileged ones), in the order of `domains`, rebuilt when life() changes one.
  private liveIds: number[] = [];
  private livePrivIds: number[] = [];
  private readonly interleave: boolean;
  private readonly parP: number;
  private readonly invalidGfn: bigint;
  private readonly invalidGfnLess1: bigint;
  private readonly farGfns: Array<bigint | number>;
  private readonly gfnPool: number[];

  constructor(readonly seed: number, opts: GeneratorOptions = {}) {
    this.prng = new Prng(seed);
    this.domains = opts.domains ?? defaultDomains();
    for (const d of this.domains) this.alive[d.domid] = true;
    this.liveChanged();
    this.interleave = opts.interleave ?? false;
    this.parP = opts.parProbability ?? 0.35;
    const arm32 = opts.arch === "arm32";
    this.invalidGfn = arm32 ? 0xffffffffn : 0xffffffffffffffffn;
    this.invalidGfnLess1 = this.invalidGfn - 1n;
    const ipa = opts.ipaBits ?? defaultIpaBits(arm32 ? "arm32" : "arm64");
    // GFNs at or beyond the reach of the root (and the classic 2^36 / 2^52).
    this.farGfns = [2 ** (ipa - 12), 2 ** 36, 2 ** 52, 2 ** 40, 2 ** 33];
    // Small GFN pool: the first RAM pages, the grant region, a few holes.
    const pool: number[] = [];
    for (let i = 0; i < 4; i++) pool.push(GUEST_RAM_GFN + i);
    for (let i = 0; i < 4; i++) pool.push(GUEST_GNTTAB_GFN + i);
    pool.push(0x0, 0x1, 0x100, 0x101, 0x50000); // 0 and 1: the edges every table walk has
    this.gfnPool = pool;
  }

  /** The next step. */
  next(): FuzzStep {
    const p = this.prng;
    if (this.interleave && p.chance(this.parP)) {
      const calls = p.below(2) === 0 ? [this.call(), this.call()] : [this.call(), this.call(), this.call()];
      return { kind: "par", calls, sched: p.next() };
    }
    const k = KIND_OF[p.below(KIND_OF.length)];
    if (k === LIFE) return this.life();
    return { kind: "call", call: this.callOf(k) };
  }

  /** `n` steps. */
  take(n: number): FuzzStep[] {
    const out: FuzzStep[] = [];
    for (let i = 0; i < n; i++) out.push(this.next());
    return out;
  }

  // ---- draws -------------------------------------------------------------------

  private pick<T>(xs: ReadonlyArray<T>): T {
    return xs[this.prng.below(xs.length)];
  }

  /** A call of a `par` group: the same kind draw, life cycle steps being grant mappings there. */
  private call(): FuzzCall {
    const k = KIND_OF[this.prng.below(KIND_OF.length)];
    return this.callOf(k === LIFE ? MAP_GRANT : k);
  }

  private liveChanged(): void {
    const alive = this.alive;
    this.liveIds = this.domains.filter((d) => alive[d.domid]).map((d) => d.domid);
    this.livePrivIds = this.domains.filter((d) => d.privileged && alive[d.domid]).map((d) => d.domid);
  }

  private caller(): number {
    const ids = this.liveIds;
    if (ids.length === 0) return this.domains[0].domid;
    return ids[this.prng.below(ids.length)];
  }

  private privileged(): number {
    const ids = this.livePrivIds;
    if (ids.length === 0) return this.caller();
    return ids[this.prng.below(ids.length)];
  }

  /** Target domain as seen by `caller`: mostly itself, sometimes others or garbage. */
  private target(caller: number): number {
    const p = this.prng;
    const r = p.below(100);
    if (r < 55) return caller;
    if (r < 70) return DOMID_SELF;
    if (r < 93) return this.pick(this.domains).domid;
    return this.pick(ODD_DOMIDS);
  }

  private gfn(): bigint | number {
    const p = this.prng;
    const r = p.below(100);
    if (r < 82) return this.pick(this.gfnPool);
    if (r < 88) return this.pick(this.farGfns);
    if (r < 92) return this.invalidGfn;
    if (r < 96) return this.invalidGfnLess1;
    return p.below(0x80000);
  }

  /** Mostly a GFN of the small pool (`poolP`), else any gfn() draw. */
  private poolGfn(poolP: number): bigint | number {
    const p = this.prng;
    return p.chance(poolP) ? this.pick(this.gfnPool) : this.gfn();
  }

  private frameIdx(): number {
    const p = this.prng;
    const r = p.below(100);
    if (r < 70) return p.below(3);
    if (r < 80) return 3 + p.below(6);
    if (r < 88) return this.pick(ODD_FRAME_IDXS);
    return p.below(16);
  }

  private grantIdx(): number {
    const i = this.frameIdx();
    // Status frames: the XENMAPIDX flag on a small index.
    if (this.prng.chance(0.35)) return (XENMAPIDX_grant_table_status | (i & 0xff)) >>> 0;
    return i;
  }

  // One method per kind rather than one big switch: V8 inlines the small draws
  // above into each of these, which it stops doing in a function this size.
  // Property values are evaluated in source order, so the order of the draws
  // is the order of the keys.

  private callOf(k: number): FuzzCall {
    switch (k) {
      case MAP_GRANT: return this.mapGrant();
      case MAP_SHARED_INFO: return this.mapSharedInfo();
      case MAP_GARBAGE: return this.mapGarbage();
      case REMOVE: return this.remove();
      case FOREIGN_BATCH: return this.foreignBatch();
      case POPULATE: return this.reservation("XENMEM_populate_physmap");
      case DECREASE: return this.reservation("XENMEM_decrease_reservation");
      case INCREASE: return this.increase();
      case SETUP_TABLE: return this.setupTable();
      case SET_VERSION: return this.setVersion();
      case GET_STATUS_FRAMES: return this.getStatusFrames();
      case ACQUIRE: return this.acquire();
      default: return this.query();
    }
  }

  private mapGrant(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "XENMEM_add_to_physmap", domid: this.target(caller), space: XENMAPSPACE_grant_table, idx: this.grantIdx(), gpfn: this.gfn() } };
  }

  private mapSharedInfo(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "XENMEM_add_to_physmap", domid: this.target(caller), space: XENMAPSPACE_shared_info, idx: this.prng.chance(0.9) ? 0 : 1, gpfn: this.gfn() } };
  }

  private mapGarbage(): FuzzCall {
    const p = this.prng;
    const caller = this.caller();
    const space = this.pick(GARBAGE_SPACES);
    const domid = this.target(caller), idx = this.frameIdx(), gpfn = this.gfn();
    const op = "XENMEM_add_to_physmap";
    // `size` last, as it always was in the stream's JSON.
    const req: HypercallRequest = space === XENMAPSPACE_gmfn_range ? { op, domid, space, idx, gpfn, size: p.below(3) } : { op, domid, space, idx, gpfn };
    return { caller, req };
  }

  private remove(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "XENMEM_remove_from_physmap", domid: this.target(caller), gpfn: this.gfn() } };
  }

  private foreignBatch(): FuzzCall {
    const p = this.prng;
    const caller = p.chance(0.85) ? this.privileged() : this.caller();
    const size = 1 + p.below(3);
    let idxs: Array<bigint | number> = [];
    const gpfns: Array<bigint | number> = [];
    for (let i = 0; i < size; i++) {
      idxs.push(this.poolGfn(0.85));
      gpfns.push(this.poolGfn(0.97));
    }
    const fr = p.below(100);
    const foreign = fr < 80 ? this.pick(this.domains).domid : fr < 90 ? DOMID_SELF : this.pick(ODD_FOREIGN_DOMIDS);
    const space = p.chance(0.93) ? XENMAPSPACE_gmfn_foreign : this.pick(OTHER_BATCH_SPACES);
    const domid = p.chance(0.9) ? caller : this.target(caller);
    // Grant-table batches take frame indices: drawn after the GFN indices, which are discarded.
    if (space === XENMAPSPACE_grant_table) {
      idxs = [];
      for (let i = 0; i < size; i++) idxs.push(this.grantIdx());
    }
    return { caller, req: { op: "XENMEM_add_to_physmap_batch", domid, space, size, foreign_domid: foreign, idxs, gpfns } };
  }

  private reservation(op: "XENMEM_populate_physmap" | "XENMEM_decrease_reservation"): FuzzCall {
    const p = this.prng;
    const caller = this.caller();
    const n = 1 + p.below(2);
    // Literals of the exact length: the first push() onto [] allocates 17 slots.
    const ext = n === 1 ? [this.poolGfn(0.9)] : [this.poolGfn(0.9), this.poolGfn(0.9)];
    const order = p.chance(0.92) ? 0 : this.pick(BIG_ORDERS);
    return { caller, req: { op, domid: this.target(caller), extent_start: ext, nr_extents: n, extent_order: order, mem_flags: 0 } };
  }

  private increase(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "XENMEM_increase_reservation", domid: this.target(caller), extent_start: [0], nr_extents: 1, extent_order: 0, mem_flags: 0 } };
  }

  private setupTable(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "GNTTABOP_setup_table", dom: this.target(caller), nr_frames: this.pick(SETUP_NR_FRAMES) } };
  }

  private setVersion(): FuzzCall {
    const caller = this.caller();
    const v = this.prng.below(100);
    return { caller, req: { op: "GNTTABOP_set_version", version: v < 48 ? 1 : v < 96 ? 2 : this.pick(BAD_VERSIONS) } };
  }

  private getStatusFrames(): FuzzCall {
    const caller = this.caller();
    return { caller, req: { op: "GNTTABOP_get_status_frames", dom: this.target(caller), nr_frames: this.pick(STATUS_NR_FRAMES) } };
  }

  private acquire(): FuzzCall {
    const p = this.prng;
    const caller = p.chance(0.85) ? this.privileged() : this.caller();
    const nr = 1 + p.below(2);
    const list = nr === 1 ? [this.poolGfn(0.95)] : [this.poolGfn(0.95), this.poolGfn(0.95)];
    const type = p.below(100) < 85 ? XENMEM_resource_grant_table : this.pick(OTHER_RESOURCES);
    return {
      caller,
      req: {
        op: "XENMEM_acquire_resource",
        domid: this.target(caller),
        type,
        id: p.chance(0.8) ? 0 : this.pick(OTHER_RESOURCE_IDS),
        frame: this.frameIdx() & 0xffff,
        nr_frames: nr,
        frame_list: p.chance(0.95) ? list : null,
      },
    };
  }

  private query(): FuzzCall {
    const caller = this.caller();
    const which = this.prng.below(5);
    const dom = this.target(caller);
    if (which === 0) return { caller, req: { op: "GNTTABOP_query_size", dom } };
    if (which === 1) return { caller, req: { op: "GNTTABOP_get_version", dom } };
    if (which === 2) return { caller, req: { op: "XENMEM_current_reservation", domid: dom } };
    if (which === 3) return { caller, req: { op: "XENMEM_maximum_gpfn", domid: dom } };
    return { caller, req: { op: "XENMEM_maximum_reservation", domid: dom } };
  }

  private life(): FuzzStep {
    // Destroy a live domU or re-create a destroyed domain (never the last privileged one).
    const p = this.prng;
    const dead = this.domains.filter((d) => !this.alive[d.domid]);
    const killable = this.domains.filter((d) => this.alive[d.domid] && !d.privileged);
    if (dead.length > 0 && (killable.length === 0 || p.chance(0.6))) {
      const d = this.pick(dead);
      this.alive[d.domid] = true;
      this.liveChanged();
      return { kind: "create", domid: d.domid };
    }
    if (killable.length === 0) return { kind: "call", call: this.query() };
    const d = this.pick(killable);
    this.alive[d.domid] = false;
    this.liveChanged();
    return { kind: "destroy", domid: d.domid };
  }
}

// ---- JSON encoding of steps (bigints as "0x..." strings) --------------------------

export function encodeValue(v: unknown): unknown {
  if (typeof v === "bigint") return "0x" + v.toString(16);
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v !== null && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = encodeValue(x);
    return o;
  }
  return v;
}

export function decodeValue(v: unknown): unknown {
  if (typeof v === "string" && /^0x[0-9a-f]+$/i.test(v)) {
    const b = BigInt(v);
    return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v !== null && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = decodeValue(x);
    return o;
  }
  return v;
}

/** Stable text form of a step (for hashing the op stream and logs). */
export function stepKey(s: FuzzStep): string {
  return JSON.stringify(encodeValue(s));
}
