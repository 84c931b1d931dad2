// What the fuzzer needs from a machine: issue hypercalls (whole or as
// interleavable generators), run the domain life cycle, and look inside
// (P2M change log, frame table, grant-table frames, lock audit). The
// implementation over the real host layer is in machine-host.ts; keeping the
// fuzzer behind this narrow interface keeps the invariants independent of the
// host's internals.

import type { Arch, HypercallRequest, HypercallResult, Revision } from "../machine/api.js";
import type { LockGen } from "../locks/index.js";

/** A P2M descriptor write (from the core's P2M-change log). */
export interface P2mWrite {
  domid: number;
  gfn: number;
  level: number;
  /** Old / new descriptor as (lo, hi) u32 halves. */
  oldLo: number;
  oldHi: number;
  newLo: number;
  newHi: number;
  /** The "break" zero of a break-before-make replacement (the next write to this entry completes it). */
  bbm?: boolean;
}

export interface PageView {
  /** count_info split in two u32 halves (arm32: hi = 0). */
  countLo: number;
  countHi: number;
  typeLo: number;
  typeHi: number;
  /** Owner domid, -1 = none, -2 = unknown/other (e.g. dom_xen). */
  owner: number;
}

export interface GrantView {
  version: number;
  nrGrantFrames: number;
  nrStatusFrames: number;
  shared: number[];
  status: number[];
  /** PRE/HARDEN: the arch arrays (INVALID_GFN as -1); null at GFN/HEAD. */
  sharedGfn: Array<number | bigint> | null;
  statusGfn: Array<number | bigint> | null;
}

/** Where the frame table lives in the core's linear memory (struct page_info layout: assembly/mm/page_info.ts). */
export interface FrameTableLayout {
  /** The core's memory; views over it are detached by memory.grow and must be re-created. */
  memory: WebAssembly.Memory;
  /** Linear address of the record of frame `basePdx`. */
  ptr: number;
  basePdx: number;
  /** sizeof(struct page_info): 56 on arm64, 32 on arm32. */
  entrySize: number;
}

export interface LockFinding {
  kind: "lock-order" | "gfn-audit" | "lock-assert" | "deadlock";
  message: string;
}

export interface FuzzHost {
  readonly revision: Revision;
  readonly arch: Arch;
  readonly ipaBits: number;
  /**
   * The machine under this host: the same object for every host over it
   * (acquireFuzzHost wraps a pooled machine in a new host each episode).
   * Checkers keep per-machine buffers on it, one checker per machine at a time.
   */
  readonly machine?: object;
  /** Non-null once the hypervisor died. */
  crash(): { kind: string; path: string } | null;
  call(caller: number, req: HypercallRequest): HypercallResult;
  gen(caller: number, vcpu: number, req: HypercallRequest): LockGen<HypercallResult>;
  /** After an interleaved group: let the host finish deferred work (complete_domain_destroy of zombies). */
  afterGroup(): void;
  createDomain(domid: number): void;
  destroyDomain(domid: number): void;
  /** Domain ids that exist (not destroyed). The array may be the one an earlier call returned: read it, do not change it. */
  domids(): number[];
  dying(domid: number): boolean;
  /**
   * A number that moves with every createDomain / destroyDomain call: while
   * it and the domids() array stay the same, no domain's dying() changed.
   */
  lifeGen?(): number;
  /** Can `domid` issue hypercalls (exists, not crashed by Xen's domain_crash)? */
  canCall(domid: number): boolean;
  /** New P2M writes since the last call (null if the log overflowed). The array and its records may be reused by the next call. */
  drainP2m(): P2mWrite[] | null;
  /** Every valid leaf of domid's P2M, by walking its tables: [gfn, lo, hi, level] quadruples. The array may be one an earlier call (or host) returned: read it, do not change it. */
  walkP2m(domid: number): number[] | null;
  /** Non-root table pages reachable from domid's root(s), and the P2M's own count of table pages (p2m->pages, incl. none of the root). */
  tablePages?(domid: number): { tables: number[]; expected: number } | null;
  /** Frame-table view; null if the MFN is not valid. withOwner=false skips the owner lookup (owner -3). */
  page(mfn: number, withOwner?: boolean): PageView | null;
  /** is_xen_heap_mfn(mfn) (arm64: PGC_xen_heap; arm32: the direct-map range). */
  isXenheap(mfn: number): boolean;
  /** count_info of `mfn` as [lo, hi] into `out` without allocating; false if not a valid MFN. */
  countInto(mfn: number, out: Uint32Array): boolean;
  /** Forget cached views (grant tables): the machine state may have changed. */
  invalidate(): void;
  /** All RAM MFNs [first, end). */
  ramRange(): [number, number];
  grant(domid: number): GrantView | null;
  sharedInfoMfn(domid: number): number | null;
  /** New lock-layer findings since the last call. */
  drainLockFindings(): LockFinding[];
  /** The frame table in linear memory, for checkers that read many records per op without a call per page. */
  frameTable?(): FrameTableLayout;
  /**
   * Has anything that grant(domid) / sharedInfoMfn(domid) describe about
   * domid's xenheap frames (which frames, and PRE/HARDEN's stored GFNs)
   * changed since `seen` was last refilled? Refills `seen` (opaque to the
   * caller, empty at first) when it has. Lets a checker skip rebuilding grant
   * views of domains that did not change.
   */
  xenheapChanged?(domid: number, seen: unknown[]): boolean;
  /**
   * A number that moves whenever xenheapChanged could answer true for a live
   * domain, while domids() stays the same (the sum of the domains' grantGen):
   * lets a checker skip asking each domain after most ops.
   */
  xenheapGen?(): number;
  /**
   * MFNs whose frame record (count_info, type_info, owner) the core may have
   * written since the previous call, into `out` (repeats possible); the first
   * call starts the log and reports nothing. false when the host cannot tell
   * (no log, or more writes than it holds): the caller compares every record
   * it watches. Writes the host makes behind the core's back must be logged
   * too (the core's frame_log_note) or they go unseen.
   */
  changedFrames?(out: number[]): boolean;
  /** The first RAM frame at or after `from` whose PGC_state is not free (what countInto + a state test finds), or -1. */
  nextInUse?(from: number): number;
  /** Every such frame, ascending, into `out` (what a nextInUse loop finds, in one call). */
  inUseFrames?(out: number[]): void;
  /** walkP2m(domid) and tablePages(domid) from one walk of the tables; null when walkP2m is. */
  walkP2mTables?(domid: number): { leaves: number[]; tables: { tables: number[]; expected: number } | null } | null;
}
