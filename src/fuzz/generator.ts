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
import { DOMID_SELF, DOMID_IO, DOMID_XEN } from "../machine/api.js";

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

type Weighted<T> = ReadonlyArray<readonly [number, T]>;

// The constant lists callOf() picks from (module constants, not a new array per draw).
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

export class OpGenerator {
  readonly prng: Prng;
  readonly domains: FuzzDomainSpec[];
  private readonly alive: boolean[] = [];
  private readonly interleave: boolean;
  private readonly parP: number;
  private readonly invalidGfn: bigint;
  private readonly farGfns: Array<bigint | number>;
  private readonly gfnPool: number[];
  private readonly kinds: Weighted<Kind>;
  private readonly kindTotal: number;

  constructor(readonly seed: number, opts: GeneratorOptions = {}) {
    this.prng = new Prng(seed);
    this.domains = opts.domains ?? defaultDomains();
    for (const d of this.domains) this.alive[d.domid] = true;
    this.interleave = opts.interleave ?? false;
    this.parP = opts.parProbability ?? 0.35;
    const arm32 = opts.arch === "arm32";
    this.invalidGfn = arm32 ? 0xffffffffn : 0xffffffffffffffffn;
    const ipa = opts.ipaBits ?? (arm32 ? 40 : 48);
    // GFNs at or beyond the reach of the root (and the classic 2^36 / 2^52).
    this.farGfns = [2 ** (ipa - 12), 2 ** 36, 2 ** 52, 2 ** 40, 2 ** 33];
    // Small GFN pool: the first RAM pages, the grant region, a few holes.
    const pool: number[] = [];
    for (let i = 0; i < 4; i++) pool.push(GUEST_RAM_GFN + i);
    for (let i = 0; i < 4; i++) pool.push(GUEST_GNTTAB_GFN + i);
    pool.push(0x0, 0x1, 0x100, 0x101, 0x50000); // 0 and 1: the edges every table walk has
    this.gfnPool = pool;
    this.kinds = KINDS;
    this.kindTotal = KINDS.reduce((s, [w]) => s + w, 0);
  }

  /** The next step. */
  next(): FuzzStep {
    const p = this.prng;
    if (this.interleave && p.chance(this.parP)) {
      const n = 2 + p.below(2);
      const calls: FuzzCall[] = [];
      for (let i = 0; i < n; i++) calls.push(this.call());
      return { kind: "par", calls, sched: p.next() };
    }
    const k = this.pickKind();
    if (k === "life") return this.life();
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

  private pickKind(): Kind {
    let r = this.prng.below(this.kindTotal);
    for (const [w, k] of this.kinds) {
      if (r < w) return k;
      r -= w;
    }
    return this.kinds[0][1];
  }

  private call(): FuzzCall {
    let k = this.pickKind();
    if (k === "life") k = "map_grant";
    return this.callOf(k);
  }

  // caller() and privileged() draw as pick() over the list of the domains that
  // qualify would (one below(n), the k-th of them), without building the list:
  // they run for every call.

  private caller(): number {
    const doms = this.domains, alive = this.alive;
    let n = 0;
    for (let i = 0; i < doms.length; i++) if (alive[doms[i].domid]) n++;
    if (n === 0) return doms[0].domid;
    let k = this.prng.below(n);
    for (let i = 0; ; i++) if (alive[doms[i].domid] && k-- === 0) return doms[i].domid;
  }

  private privileged(): number {
    const doms = this.domains, alive = this.alive;
    let n = 0;
    for (let i = 0; i < doms.length; i++) if (doms[i].privileged && alive[doms[i].domid]) n++;
    if (n === 0) return this.caller();
    let k = this.prng.below(n);
    for (let i = 0; ; i++) if (doms[i].privileged && alive[doms[i].domid] && k-- === 0) return doms[i].domid;
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
    if (r < 96) return this.invalidGfn - 1n;
    return p.below(0x80000);
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

  private callOf(k: Kind): FuzzCall {
    const p = this.prng;
    switch (k) {
      case "map_grant": {
        const caller = this.caller();
        return {
          caller,
          req: { op: "XENMEM_add_to_physmap", domid: this.target(caller), space: XENMAPSPACE_grant_table, idx: this.grantIdx(), gpfn: this.gfn() },
        };
      }
      case "map_shared_info": {
        const caller = this.caller();
        return {
          caller,
          req: { op: "XENMEM_add_to_physmap", domid: this.target(caller), space: XENMAPSPACE_shared_info, idx: p.chance(0.9) ? 0 : 1, gpfn: this.gfn() },
        };
      }
      case "map_garbage": {
        const caller = this.caller();
        const space = this.pick(GARBAGE_SPACES);
        const req: HypercallRequest = { op: "XENMEM_add_to_physmap", domid: this.target(caller), space, idx: this.frameIdx(), gpfn: this.gfn() };
        if (space === XENMAPSPACE_gmfn_range) (req as { size?: number }).size = p.below(3);
        return { caller, req };
      }
      case "remove": {
        const caller = this.caller();
        return { caller, req: { op: "XENMEM_remove_from_physmap", domid: this.target(caller), gpfn: this.gfn() } };
      }
      case "foreign_batch": {
        const caller = p.chance(0.85) ? this.privileged() : this.caller();
        const size = 1 + p.below(3);
        const idxs: Array<bigint | number> = [];
        const gpfns: Array<bigint | number> = [];
        for (let i = 0; i < size; i++) {
          idxs.push(p.chance(0.85) ? this.pick(this.gfnPool) : this.gfn());
          gpfns.push(p.chance(0.97) ? this.pick(this.gfnPool) : this.gfn());
        }
        const fr = p.below(100);
        const foreign = fr < 80 ? this.pick(this.domains).domid : fr < 90 ? DOMID_SELF : this.pick(ODD_FOREIGN_DOMIDS);
        const space = p.chance(0.93) ? XENMAPSPACE_gmfn_foreign : this.pick(OTHER_BATCH_SPACES);
        const req: HypercallRequest = { op: "XENMEM_add_to_physmap_batch", domid: p.chance(0.9) ? caller : this.target(caller), space, size, foreign_domid: foreign, idxs, gpfns };
        if (space === XENMAPSPACE_grant_table) req.idxs = idxs.map(() => this.grantIdx());
        return { caller, req };
      }
      case "populate":
      case "decrease": {
        const caller = this.caller();
        const n = 1 + p.below(2);
        const ext: Array<bigint | number> = [];
        for (let i = 0; i < n; i++) ext.push(p.chance(0.9) ? this.pick(this.gfnPool) : this.gfn());
        const order = p.chance(0.92) ? 0 : this.pick(BIG_ORDERS);
        return {
          caller,
          req: { op: k === "populate" ? "XENMEM_populate_physmap" : "XENMEM_decrease_reservation", domid: this.target(caller), extent_start: ext, nr_extents: n, extent_order: order, mem_flags: 0 },
        };
      }
      case "increase": {
        const caller = this.caller();
        return { caller, req: { op: "XENMEM_increase_reservation", domid: this.target(caller), extent_start: [0], nr_extents: 1, extent_order: 0, mem_flags: 0 } };
      }
      case "setup_table": {
        const caller = this.caller();
        return { caller, req: { op: "GNTTABOP_setup_table", dom: this.target(caller), nr_frames: this.pick(SETUP_NR_FRAMES) } };
      }
      case "set_version": {
        const caller = this.caller();
        const v = p.below(100);
        return { caller, req: { op: "GNTTABOP_set_version", version: v < 48 ? 1 : v < 96 ? 2 : this.pick(BAD_VERSIONS) } };
      }
      case "get_status_frames": {
        const caller = this.caller();
        return { caller, req: { op: "GNTTABOP_get_status_frames", dom: this.target(caller), nr_frames: this.pick(STATUS_NR_FRAMES) } };
      }
      case "acquire": {
        const caller = p.chance(0.85) ? this.privileged() : this.caller();
        const nr = 1 + p.below(2);
        const list: Array<bigint | number> = [];
        for (let i = 0; i < nr; i++) list.push(p.chance(0.95) ? this.pick(this.gfnPool) : this.gfn());
        const r = p.below(100);
        const type = r < 85 ? XENMEM_resource_grant_table : this.pick(OTHER_RESOURCES);
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
      case "query": {
        const caller = this.caller();
        const which = p.below(5);
        const dom = this.target(caller);
        if (which === 0) return { caller, req: { op: "GNTTABOP_query_size", dom } };
        if (which === 1) return { caller, req: { op: "GNTTABOP_get_version", dom } };
        if (which === 2) return { caller, req: { op: "XENMEM_current_reservation", domid: dom } };
        if (which === 3) return { caller, req: { op: "XENMEM_maximum_gpfn", domid: dom } };
        return { caller, req: { op: "XENMEM_maximum_reservation", domid: dom } };
      }
      default:
        return { caller: 0, req: { op: "XENVER_version" } };
    }
  }

  private life(): FuzzStep {
    // Destroy a live domU or re-create a destroyed domain (never the last privileged one).
    const p = this.prng;
    const dead = this.domains.filter((d) => !this.alive[d.domid]);
    const killable = this.domains.filter((d) => this.alive[d.domid] && !d.privileged);
    if (dead.length > 0 && (killable.length === 0 || p.chance(0.6))) {
      const d = this.pick(dead);
      this.alive[d.domid] = true;
      return { kind: "create", domid: d.domid };
    }
    if (killable.length === 0) return { kind: "call", call: this.callOf("query") };
    const d = this.pick(killable);
    this.alive[d.domid] = false;
    return { kind: "destroy", domid: d.domid };
  }
}

type Kind =
  | "map_grant"
  | "map_shared_info"
  | "map_garbage"
  | "remove"
  | "foreign_batch"
  | "populate"
  | "decrease"
  | "increase"
  | "setup_table"
  | "set_version"
  | "get_status_frames"
  | "acquire"
  | "query"
  | "life";

const KINDS: Weighted<Kind> = [
  [22, "map_grant"],
  [5, "map_shared_info"],
  [3, "map_garbage"],
  [14, "remove"],
  [9, "foreign_batch"],
  [9, "populate"],
  [7, "decrease"],
  [1, "increase"],
  [5, "setup_table"],
  [8, "set_version"],
  [4, "get_status_frames"],
  [5, "acquire"],
  [4, "query"],
  [1, "life"],
];

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
