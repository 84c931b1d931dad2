// Invariants checked by the fuzzer after every operation.
//
// A TS shadow of every domain's P2M leaves (shadow.ts) is kept up to date from
// the core's P2M-change log, and copies of the watched frame-table records
// (frame-watch.ts) from its frame-store log, so per-op checks only look at
// what changed; full scans (the shadow against a real table walk, every
// owned frame's reference count) run every `fullEvery` ops and at the end.
// States whose cause is a known finding (known.ts) are filed apart.
//
//  a  xenheap-gfn     a xenheap page's stored GFN (GFN/HEAD: type_info GFN
//                     bits; PRE/HARDEN: the grant arrays) and its owner's P2M
//                     agree both ways; at most one GFN maps the page
//  b  p2m-ref         no P2M leaf references a free frame, a frame with no
//                     reference, or (non-foreign) a frame of another owner
//  c  refcount        count_info = allocation ref + foreign P2M references
//  d  p2m-collateral  an op removes/replaces only P2M entries at GFNs it
//                     targets, or entries mapping a frame it concerns
//  e  map-free        mapping an unmapped, existing grant frame / shared_info
//                     at a free, reachable GFN of a live domain succeeds
//  f  teardown        a destroyed domain leaves no owned frame behind; the
//                     shadow equals the table walk (every table reachable once)
//  g  locks           lock audit clean (order, GFN-bits writes, assertions,
//                     deadlocks)
//  h  type-bits       updating the GFN leaves type_info bits outside it unchanged
//  i  crash           the hypervisor did not crash

import type { Arch, HypercallRequest, HypercallResult } from "../machine/api.js";
import { DOMID_SELF } from "../machine/api.js";
import type { FuzzHost, PageView } from "./host.js";
import { XENMAPIDX_grant_table_status, XENMAPSPACE_grant_table, XENMAPSPACE_shared_info, type FuzzCall } from "./generator.js";
import { policyFor, type RevisionPolicy } from "../revisions/index.js";
import { KnownTriage, type KnownId, type TriageContext } from "./known.js";
import { LEVEL_PAGES, ShadowP2m, decodeLeaf, isForeign, isGrant, isRam, type Leaf, type ShadowLeaf } from "./shadow.js";
import { FrameWatch, countFree, pageAllocated, pageCount, pageFree } from "./frame-watch.js";
import { clear } from "./clear.js";

export type InvariantName =
  | "xenheap-gfn"
  | "p2m-ref"
  | "refcount"
  | "p2m-collateral"
  | "map-free"
  | "teardown"
  | "locks"
  | "type-bits"
  | "crash";

/** Does violation `v` match `target` (an invariant name, or a variant with or without "/par")? */
export function matches(v: Violation, target: string): boolean {
  return target === "any" || v.invariant === target || v.variant === target || v.variant.replace(/\/par$/, "") === target;
}

/** The variant without the "/par" marker (the shrinker may sequentialise). */
export function baseVariant(v: Violation): string {
  return v.variant.replace(/\/par$/, "");
}

export const INVARIANTS: readonly InvariantName[] = [
  "xenheap-gfn", "p2m-ref", "refcount", "p2m-collateral", "map-free", "teardown", "locks", "type-bits", "crash",
];

export interface Violation {
  /** Index of the step after which it was seen. */
  op: number;
  invariant: InvariantName;
  /** Finer class inside the invariant (e.g. map-free:-84, p2m-ref:free); "/par" when seen after an interleaved step. */
  variant: string;
  /** Wall clock (ms since the epoch) when it was found. */
  atMs: number;
  message: string;
  /** Small state excerpt (JSON-able). */
  excerpt: unknown;
}

/** A state the checker filed under a known finding (./known.ts) instead of a violation. */
export interface KnownSighting {
  op: number;
  id: KnownId;
  /** The invariant and variant it would have been reported as. */
  variant: string;
  message: string;
  atMs: number;
}

/** What (b)'s sub-classes mean, for messages. */
const REF_PROBLEM: Record<string, string> = {
  free: "a free frame",
  count0: "a frame with no reference held (count 0)",
  owner: "a frame of another owner",
  "self-foreign": "its own frame as foreign",
};

export interface CheckerOptions {
  /** Full scan every N ops (default 64). */
  fullEvery?: number;
  /** Invariants not to check. */
  disable?: InvariantName[];
}

/** The low 32 bits of an index (unsigned), as Number(BigInt(v) & 0xffffffffn). */
function idx32(v: bigint | number): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  return Number(BigInt(v) & 0xffffffffn);
}

/** BigInt(v) === 0n, without a BigInt for a number (BigInt(v) throws on a non-integer: so does this). */
function isZero(v: bigint | number): boolean {
  return typeof v === "number" && Number.isInteger(v) ? v === 0 : BigInt(v) === 0n;
}

/** Number(BigInt(v)), without a BigInt for an integer number. */
function asIndex(v: bigint | number): number {
  return typeof v === "number" && Number.isInteger(v) ? v : Number(BigInt(v));
}

/** hOwner of a frame outside the union (owners are domids or -1..-3). */
const NO_OWNER = -0x80000000;

const NO_SNAPSHOT: Map<number, [number, number, number]> = new Map();

/**
 * A checker's per-RAM-frame arrays (the frame watch's index, the union's
 * marks, (h)'s owners: 3 x 64 KiB), kept per machine from one checker to the
 * next: allocated per episode, they cost more (in GC) than the rest of the
 * checker's set-up. The checker that takes them over retires the one that
 * had them (one checker per machine at a time, as changedFrames has it).
 */
interface FrameBuffers {
  frames: FrameWatch;
  xhMark: Int32Array;
  /** No mark in xhMark is above it. */
  xhGen: number;
  /** NO_OWNER but for the frames of the user's union. */
  hOwner: Int32Array;
  user: InvariantChecker | null;
}

/** By FuzzHost.machine. */
const machineBuffers = new WeakMap<object, FrameBuffers>();

/** A live domain's xenheap frames and the (a) verdict on them. */
interface XenheapState {
  /** For host.xenheapChanged. */
  seen: unknown[];
  /** Grant frames, status frames, shared_info (the order (a) reports in). */
  pages: number[];
  /** Per page: PRE/HARDEN's stored GFN (undefined past the array), null when the page keeps it. */
  arrs: Array<bigint | number | null | undefined>;
  /** Inputs changed since `bad` was computed. */
  dirty: boolean;
  bad: boolean;
}

/**
 * The "frames an op concerns" and "GFNs it targets" in one domain. Only (d)
 * and the release of decreased frames read the GFN part, and only after a
 * step that wrote the P2M (a few ops in ten): it is filled from `calls` then
 * (targets()); the shadow it reads does not change before afterStep.
 */
interface Scope {
  /** The step's calls, in order. */
  calls: FuzzCall[];
  /** gfns, decreased and decreaseAt are filled in. */
  targeted: boolean;
  /** Targeted GFNs as [domid, first gfn, count] triples (flat). */
  gfns: number[];
  /** Domains targeted as a whole (destroy). */
  whole: Set<number>;
  /** Frames it concerns, each once, in the order found (a few; an array, cleared every op without allocating). */
  mfns: number[];
  /** (domid, gfn, mfn) a decrease_reservation asked to give back. */
  decreased: Array<[number, number, number]>;
  /** GFNs targeted by a decrease_reservation (what gets removed there was given back), as triples like `gfns`. */
  decreaseAt: number[];
}

/** Domains a check looks at. */
interface DomainSet {
  has(domid: number): boolean;
}

/** A set of a few domids, cleared every op without allocating. */
class SmallSet implements DomainSet {
  private readonly ids: number[] = [];
  private n = 0;

  add(d: number): void {
    if (!this.has(d)) this.ids[this.n++] = d;
  }

  has(d: number): boolean {
    for (let i = 0; i < this.n; i++) if (this.ids[i] === d) return true;
    return false;
  }

  clear(): void {
    this.n = 0;
  }
}

/**
 * Owner (domid) by owner field: a few domains' struct domain addresses, each
 * above 2^31. A Map keyed by such a number boxes it on every look-up; a
 * linear search over a handful of doubles does not.
 */
class OwnerCache {
  private keys = new Float64Array(8);
  private owners = new Int32Array(8);
  private n = 0;

  get(key: number): number | undefined {
    for (let i = 0; i < this.n; i++) if (this.keys[i] === key) return this.owners[i];
    return undefined;
  }

  set(key: number, owner: number): void {
    if (this.n === this.keys.length) {
      const k = new Float64Array(this.n * 2), o = new Int32Array(this.n * 2);
      k.set(this.keys);
      o.set(this.owners);
      this.keys = k;
      this.owners = o;
    }
    this.keys[this.n] = key;
    this.owners[this.n++] = owner;
  }

  clear(): void {
    this.n = 0;
  }
}

/**
 * What triage reads of the step being checked. (A class: an object literal
 * with a getter is built through the runtime, ~2 µs per checker.)
 */
class StepTriage implements TriageContext {
  inPar = false;
  /** The step's rows (afterStep's `results`). */
  rows: ReadonlyArray<{ call: FuzzCall }> = [];
  readonly arch: Arch;

  constructor(readonly policy: RevisionPolicy, private readonly host: FuzzHost) {
    this.arch = host.arch;
  }

  /** Built when triage asks (rarely). */
  get calls(): FuzzCall[] {
    return this.rows.map((r) => r.call);
  }

  crashed(d: number): boolean {
    return this.host.domids().includes(d) && !this.host.dying(d) && !this.host.canCall(d);
  }
}

/** Add `v` to `a` unless it is there (a Set's add on a few elements). */
function addOnce(a: number[], v: number): void {
  if (!a.includes(v)) a.push(v);
}

/** Is `gfn` of `domid` in one of the [domid, first, count] triples? */
function inRanges(t: number[], domid: number, gfn: number): boolean {
  for (let i = 0; i < t.length; i += 3) if (t[i] === domid && gfn >= t[i + 1] && gfn < t[i + 1] + t[i + 2]) return true;
  return false;
}

export class InvariantChecker {
  readonly shadow = new ShadowP2m();
  readonly violations: Violation[] = [];
  /** States filed under a known finding (./known.ts), the first per finding. */
  readonly known: KnownSighting[] = [];
  private readonly knownSeen = new Set<KnownId>();
  private readonly triage = new KnownTriage();
  private readonly triageCtx: StepTriage;
  /** mfn -> references leaked by foreign re-maps of the same frame at the same GFN (FS 11.3). */
  private readonly remapLeaks = new Map<number, number>();
  /** Destroyed domains awaiting final destruction: the owner field (struct domain address) their pages carried. */
  private readonly destroyedKey = new Map<number, number>();
  private readonly seen = new Set<InvariantName>();
  private readonly seenVariant = new Set<string>();
  /** Set by the runner: the current step is an interleaved group. */
  inPar = false;
  /** Set by the runner: check every domain after this step (create/destroy). */
  touchAll = false;
  /** Destroyed domains whose final destruction (zombie reaping) is still to be checked. */
  private readonly pendingTeardown = new Set<number>();
  /** host.domids() when pendingTeardown was last looked at. */
  private teardownIds: number[] | null = null;
  /** Domains whose P2M or grant state the current step may have changed. */
  private readonly touched = new SmallSet();
  private readonly cnt = new Uint32Array(2);
  /** Frames of destroyed domains that other domains still map (foreign): mfn -> "ram" | "xenheap". */
  private readonly orphans = new Map<number, string>();
  private readonly orphanOwner = new Map<number, number>();
  /**
   * Xenheap frames a guest gave back with decrease_reservation (their
   * allocation reference dropped on request). Xen lets the guest map such a
   * frame again (shared_info / grant frames need no reference), so a
   * reference-less mapping of one of these is the guest's own doing.
   */
  private readonly released = new Set<number>();
  private readonly disabled: Set<InvariantName>;
  private readonly fullEvery: number;
  private readonly arm64: boolean;
  private readonly gfnInPage: boolean;
  private readonly reachGfn: number;
  private readonly invalidGfn: bigint;
  private ops = 0;
  /** Record every violation, or only the first per invariant. */
  firstOnly = true;

  // ---- incremental state ------------------------------------------------------
  //
  // Per op, (a), (b) and (h) re-evaluate only what can have changed: leaves the
  // P2M-change log touched, leaves and xenheap pages whose frame-table record
  // changed (every watched record is compared with a copy each op), domains
  // whose xenheap frames changed, and everything when the set of domains or
  // their dying flags change. A check whose bad set meets its scope runs the
  // full scan of that scope, so what gets reported (and in which order) is
  // what a scan of everything would report.

  /** mfn -> leaves (any domain) mapping it. */
  private readonly rev = new Map<number, ShadowLeaf[]>();
  /** (b): domid -> its leaves found wrong. */
  private readonly badLeaves = new Map<number, Set<ShadowLeaf>>();
  /** Leaves to re-evaluate for (b). */
  private pending: ShadowLeaf[] = [];
  private pendingSpare: ShadowLeaf[] = [];
  private readonly frames: FrameWatch;
  /** The per-frame arrays (frames, xhMark, hOwner), kept per machine. */
  private readonly buffers: FrameBuffers;
  /** A newer checker took over the buffers: this one must not run again. */
  private retired = false;
  /** Per live domain: its xenheap frames (a, h) and the (a) verdict. */
  private readonly xh = new Map<number, XenheapState>();
  /**
   * Union of live domains' xenheap frames (each holds one watch reference):
   * per RAM frame (index mfn - xhLo), the xhGen of the last union it was in.
   * Rebuilding the union is a pass over a few dozen frames, no Set.
   */
  private readonly xhMark: Int32Array;
  private xhGen: number;
  private readonly xhLo: number;
  /** (h): xenheap frames of live domains at the start of the step, in the order a snapshot would list them, with their owner then (the union, in order). */
  private hList: number[] = [];
  private hListSpare: number[] = [];
  /** Per RAM frame (index mfn - xhLo), for the union's frames: the owner at the start of the step; NO_OWNER for the others. */
  private readonly hOwner: Int32Array;
  /** domids() and their dying() as of the last sync (the checks after it read dying() from here). */
  private lastIds: number[] = [];
  private lastDying: boolean[] = [];
  private lastLife = NaN;
  /**
   * xenheapGfnInScope has nothing to do: no live domain's (a) state is dirty
   * or bad, and each has its shadow entry. Cleared wherever a state is marked
   * dirty and when the domain set changes.
   */
  private xhQuiet = false;
  /** host.xenheapGen() as of the last sync. */
  private lastXenheapGen = NaN;
  private readonly onRemoved: (domid: number, gfn: number, old: Leaf) => void;
  private curScope: Scope | null = null;
  private curOp = 0;
  private curResults: Array<{ call: FuzzCall; result: HypercallResult | undefined; expectOk: string | null }> = [];
  private readonly changedMfns: number[] = [];
  /** Of changedMfns, the frames whose type_info changed (GFN/HEAD only). */
  private readonly typeChangedMfns: number[] = [];
  private readonly inUseBuf: number[] = [];
  private readonly pv: PageView = { countLo: 0, countHi: 0, typeLo: 0, typeHi: 0, owner: 0 };
  private readonly ownerCache = new OwnerCache();
  private readonly scopeObj: Scope = { calls: [], targeted: false, gfns: [], whole: new Set(), mfns: [], decreased: [], decreaseAt: [] };

  constructor(readonly host: FuzzHost, opts: CheckerOptions = {}) {
    this.fullEvery = opts.fullEvery ?? 64;
    this.disabled = new Set(opts.disable ?? []);
    this.arm64 = host.arch === "arm64";
    this.gfnInPage = policyFor(host.revision).grantGfnInPageInfo;
    this.reachGfn = 2 ** (host.ipaBits - 12);
    this.invalidGfn = this.arm64 ? 0xffffffffffffffffn : 0xffffffffn;
    const [ramLo, ramHi] = host.ramRange();
    const buf = (this.buffers = this.takeBuffers(host, ramLo, ramHi));
    this.frames = buf.frames;
    this.xhLo = ramLo;
    this.xhMark = buf.xhMark;
    // Above every mark a previous checker left: no frame is in the union yet.
    this.xhGen = buf.xhGen + 1;
    this.hOwner = buf.hOwner;
    this.onRemoved = (domid, gfn, old) => this.collateral(domid, gfn, old);
    this.shadow.hooks = {
      link: (l) => this.link(l),
      unlink: (l) => this.unlink(l),
      remapped: (l) => this.remapLeaks.set(l.mfn, (this.remapLeaks.get(l.mfn) ?? 0) + 1),
    };
    this.triageCtx = new StepTriage(policyFor(host.revision), host);
    // Start from the tables as they are.
    host.drainP2m();
    for (const d of host.domids()) this.resyncDomain(d);
    host.drainLockFindings();
    this.sync(true);
    this.settleLeaves();
  }

  /** The machine's buffers (new ones for a host that names no machine), taken from the checker that had them. */
  private takeBuffers(host: FuzzHost, lo: number, hi: number): FrameBuffers {
    const key = host.machine;
    let b = key === undefined ? undefined : machineBuffers.get(key);
    if (b !== undefined && b.frames.fits(this.arm64, lo, hi)) {
      if (b.user !== null) b.user.retire();
      b.frames.restart(host);
    } else {
      const n = Math.max(0, hi - lo);
      b = { frames: new FrameWatch(host, this.arm64, lo, hi), xhMark: new Int32Array(n), xhGen: 0, hOwner: new Int32Array(n).fill(NO_OWNER), user: null };
      if (key !== undefined) machineBuffers.set(key, b);
    }
    b.user = this;
    return b;
  }

  /** Hand the buffers over: hOwner back to NO_OWNER (only the union's frames have owners), xhMark's generation on. */
  private retire(): void {
    const own = this.hOwner, lo = this.xhLo;
    for (let i = 0; i < this.hList.length; i++) own[this.hList[i] - lo] = NO_OWNER;
    this.buffers.xhGen = this.xhGen;
    this.buffers.user = null;
    this.retired = true;
  }

  private assertCurrent(): void {
    if (this.retired) throw new Error("fuzz: checker used after a newer checker took over its machine");
  }

  get found(): ReadonlySet<InvariantName> {
    return this.seen;
  }

  private report(op: number, invariant: InvariantName, message: string, excerpt: unknown, sub = ""): void {
    if (this.disabled.has(invariant)) return;
    const variant = `${invariant}${sub ? ":" + sub : ""}${this.inPar ? "/par" : ""}`;
    if (this.firstOnly && this.seenVariant.has(variant)) return;
    this.seen.add(invariant);
    this.seenVariant.add(variant);
    this.violations.push({ op, invariant, variant, message, excerpt, atMs: Date.now() });
  }

  /** Record a state filed under known finding `id` (the first per finding). */
  private sighted(op: number, id: KnownId, variant: string, message: string): void {
    if (this.knownSeen.has(id)) return;
    this.knownSeen.add(id);
    this.known.push({ op, id, variant: `${variant}${this.inPar ? "/par" : ""}`, message, atMs: Date.now() });
  }

  /** A finding made by the runner (scheduler outcome, exceptions). */
  hostFinding(op: number, invariant: InvariantName, message: string, excerpt: unknown): void {
    this.report(op, invariant, message, excerpt);
  }

  private resyncDomain(domid: number): void {
    const leaves: number[] = [];
    const w = this.host.walkP2m(domid);
    if (w !== null) {
      for (let i = 0; i < w.length; i += 4) {
        const leaf = decodeLeaf(w[i + 1], w[i + 2], w[i + 3]);
        if (leaf === null) continue;
        const n = LEVEL_PAGES[w[i + 3]];
        for (let k = 0; k < n; k++) leaves.push(w[i] + k, leaf.mfn + k, leaf.type);
      }
    }
    this.shadow.reset(domid, leaves);
  }

  // ---- reverse map, watched frames, (b) verdicts ------------------------------------

  private link(l: ShadowLeaf): void {
    const r = this.rev.get(l.mfn);
    if (r === undefined) this.rev.set(l.mfn, [l]);
    else r.push(l);
    this.frames.ref(l.mfn);
    if (isRam(l.type) && this.inXh(l.mfn)) this.xhDirty(l.domid); // (a) counts RAM mappings only
    this.pending.push(l);
  }

  private unlink(l: ShadowLeaf): void {
    l.live = false;
    const r = this.rev.get(l.mfn)!;
    if (r.length === 1) this.rev.delete(l.mfn);
    else r.splice(r.indexOf(l), 1);
    this.frames.unref(l.mfn);
    if (isRam(l.type) && this.inXh(l.mfn)) this.xhDirty(l.domid);
    if (l.bad) this.setBad(l, false);
  }

  private setBad(l: ShadowLeaf, bad: boolean): void {
    l.bad = bad;
    let set = this.badLeaves.get(l.domid);
    if (set === undefined) this.badLeaves.set(l.domid, (set = new Set()));
    if (bad) set.add(l);
    else set.delete(l);
  }

  private xhDirty(domid: number): void {
    const st = this.xh.get(domid);
    if (st !== undefined) (st.dirty = true), (this.xhQuiet = false);
  }

  /** A frame the guest gave back (see `released`). */
  private release(mfn: number): void {
    if (this.released.has(mfn)) return;
    this.released.add(mfn);
    const r = this.rev.get(mfn);
    if (r !== undefined) for (const l of r) this.pending.push(l);
  }

  /**
   * (b)'s verdict on one leaf: null when fine (or filed under a known
   * finding), else the variant's sub ("" = invalid MFN).
   */
  private refProblem(l: ShadowLeaf, domid: number, p: PageView | null): string | null {
    const sub = this.refProblemRaw(l, domid, p);
    // A leaf already judged a violation stays one: triage files a state when it
    // arises, in the context of the step that caused it, not in a later step's.
    if (sub === null || sub === "" || l.bad) return sub;
    const id = this.triage.classify({ invariant: "p2m-ref", sub, domid, gfn: l.gfn, mfn: l.mfn }, this.triageCtx);
    if (id === null) return sub;
    this.sighted(this.curOp, id, `p2m-ref:${sub}`, `d${domid} gfn 0x${l.gfn.toString(16)} (type ${l.type}) maps mfn 0x${l.mfn.toString(16)}: ${REF_PROBLEM[sub] ?? sub}`);
    return null;
  }

  private refProblemRaw(l: Leaf, domid: number, p: PageView | null): string | null {
    if (p === null) return "";
    const arm64 = this.arm64;
    if (pageFree(p, arm64)) return "free";
    if (pageCount(p, arm64) === 0 && !this.released.has(l.mfn)) return "count0";
    if (isRam(l.type) && p.owner !== domid && !this.host.dying(domid)) return "owner";
    if (isForeign(l.type) && p.owner === domid) return "self-foreign";
    return null;
  }

  /** Re-evaluate the queued leaves for (b). */
  private settleLeaves(): void {
    const q = this.pending;
    if (q.length === 0) return;
    // Swap in the spare queue (anything queued meanwhile waits for the next settle), no new array per op.
    this.pending = this.pendingSpare;
    for (const l of q) {
      if (!l.live) continue;
      const bad = (isRam(l.type) || isForeign(l.type) || isGrant(l.type)) && this.refProblem(l, l.domid, this.pageNow(l.mfn)) !== null;
      if (bad !== l.bad) this.setBad(l, bad);
    }
    clear(q);
    this.pendingSpare = q;
  }

  /** Would report(invariant, sub) record anything? */
  private reportable(invariant: InvariantName, sub: string): boolean {
    if (this.disabled.has(invariant)) return false;
    return !this.firstOnly || !this.seenVariant.has(`${invariant}${sub ? ":" + sub : ""}${this.inPar ? "/par" : ""}`);
  }

  /**
   * Bring the incremental state up to date with the machine after a step:
   * domain set, changed frame records, xenheap frames per domain. Runs the
   * (h) comparison on the way (it needs the records as they were before).
   */
  private sync(initial: boolean, op = 0): void {
    const host = this.host;
    const ids = host.domids();
    const life = host.lifeGen === undefined ? NaN : host.lifeGen();
    // The same domids() array and no create/destroy since: the same domains, none newly dying.
    let domsChanged = false;
    if (ids !== this.lastIds || life !== this.lastLife) {
      domsChanged = ids.length !== this.lastIds.length;
      for (let i = 0; i < ids.length && !domsChanged; i++) domsChanged = ids[i] !== this.lastIds[i] || host.dying(ids[i]) !== this.lastDying[i];
    }
    if (domsChanged) {
      // (A loop, not ids.map(d => host.dying(d)): a closure over `host` would cost every sync a context.)
      const dying: boolean[] = [];
      for (let i = 0; i < ids.length; i++) dying.push(host.dying(ids[i]));
      this.lastDying = dying;
      this.xhQuiet = false;
    }
    this.lastIds = ids;
    this.lastLife = life;
    if (domsChanged) this.ownerCache.clear();
    // Changed frame records: (h) compares them with the copies, then (a)/(b) re-evaluate.
    const fw = this.frames;
    const nd = fw.diff();
    const changed = this.changedMfns;
    clear(changed);
    const typed = this.typeChangedMfns;
    clear(typed);
    let hBad: Map<number, [number, number]> | null = null;
    for (let k = 0; k < nd; k++) {
      const slot = fw.dirty[k];
      const m = fw.mfnAt(slot);
      changed.push(m);
      if (this.gfnInPage && fw.typeChanged(slot)) typed.push(m);
      if (!initial && this.gfnInPage && this.hOwner[m - this.xhLo] !== NO_OWNER) {
        const lo = fw.cached(slot, 2), hi = fw.cached(slot, 3);
        const p = this.pageNow(m);
        if (p !== null && p.owner === this.hOwner[m - this.xhLo] && !pageFree(p, this.arm64)) {
          const diff = this.arm64 ? (p.typeHi ^ hi) & 0xe0000000 : (p.typeLo ^ lo) & 0xe0000000;
          if (diff !== 0) (hBad ??= new Map()).set(m, [lo, hi]);
        }
      }
      fw.accept(slot);
    }
    if (hBad !== null) this.reportTypeBits(op, hBad);
    this.queueChanged(changed, typed, domsChanged);
    this.syncXenheap(ids, domsChanged, changed);
  }

  /**
   * sync, part 2: queue the leaves and xenheap verdicts that changed records
   * (or a changed domain set) affect. Of a record, (a) reads only the GFN in
   * type_info (GFN/HEAD; `typed` lists the frames whose type_info changed).
   */
  private queueChanged(changed: number[], typed: number[], domsChanged: boolean): void {
    // Indexed loops: these run after every op, and a for-of that V8 does not optimise allocates its iterator.
    for (let i = 0; i < changed.length; i++) {
      const r = this.rev.get(changed[i]);
      if (r !== undefined) for (let k = 0; k < r.length; k++) this.pending.push(r[k]);
    }
    for (let i = 0; i < typed.length; i++) {
      const m = typed[i];
      if (this.inXh(m)) for (const st of this.xh.values()) if (st.pages.includes(m)) (st.dirty = true), (this.xhQuiet = false);
    }
    if (domsChanged) {
      for (const m of this.shadow.doms.values()) for (const l of m.values()) this.pending.push(l);
      for (const st of this.xh.values()) st.dirty = true;
      this.xhQuiet = false;
    }
  }

  /** sync, part 3: each live domain's xenheap frames, their watch references and (h)'s owners. */
  private syncXenheap(ids: number[], domsChanged: boolean, changed: number[]): void {
    const host = this.host;
    // Xenheap frames per live domain (no domain asked when none of their grantGens moved).
    let listsChanged = domsChanged;
    const gen = host.xenheapGen === undefined ? NaN : host.xenheapGen();
    if (domsChanged || gen !== this.lastXenheapGen) for (let i = 0; i < ids.length; i++) {
      const d = ids[i];
      let st = this.xh.get(d);
      if (st === undefined) this.xh.set(d, (st = { seen: [], pages: [], arrs: [], dirty: true, bad: false })), (this.xhQuiet = false);
      if (host.xenheapChanged === undefined || host.xenheapChanged(d, st.seen)) {
        // Often only a stored GFN or the version changed, not which frames: then the union below stands.
        if (this.xenheapPagesOf(d, st)) listsChanged = true;
        st.dirty = true;
        this.xhQuiet = false;
      }
    }
    this.lastXenheapGen = gen;
    if (this.xh.size !== ids.length) {
      for (const d of this.xh.keys()) if (!ids.includes(d)) this.xh.delete(d);
      listsChanged = true;
    }
    if (listsChanged) {
      // Members of the old union carry xhGen - 1, of the new one g. Watch references are
      // taken in union order, then dropped in the old union's order (as the frame watch's
      // slot order, which orders its diff, always was).
      if (this.xhGen >= 0x7ffffffe) this.xhRenumber();
      const g = ++this.xhGen;
      const mark = this.xhMark, lo = this.xhLo, fw = this.frames;
      const list = this.hListSpare;
      list.length = 0;
      for (let i = 0; i < ids.length; i++) {
        const pages = this.xh.get(ids[i])!.pages;
        for (let j = 0; j < pages.length; j++) {
          const m = pages[j];
          if (!fw.valid(m)) continue;
          const k = m - lo;
          const was = mark[k];
          if (was === g) continue;
          mark[k] = g;
          list.push(m);
          if (was !== g - 1) fw.ref(m);
        }
      }
      const old = this.hList;
      // Frames that left the union: their watch reference, their (h) owner.
      for (let i = 0; i < old.length; i++) if (mark[old[i] - lo] !== g) fw.unref(old[i]), (this.hOwner[old[i] - lo] = NO_OWNER);
      this.hListSpare = old;
      this.hList = list;
    }
    // (h) compares owners with the ones at the start of the step.
    if (this.gfnInPage) {
      const own = this.hOwner, lo = this.xhLo;
      for (let i = 0; i < changed.length; i++) if (this.inXh(changed[i])) own[changed[i] - lo] = this.pageNow(changed[i])!.owner;
      const hl = this.hList;
      if (listsChanged) for (let i = 0; i < hl.length; i++) if (domsChanged || own[hl[i] - lo] === NO_OWNER) own[hl[i] - lo] = this.pageNow(hl[i])!.owner;
    }
  }

  /** Is `m` in the union of live domains' xenheap frames? */
  private inXh(m: number): boolean {
    const k = m - this.xhLo;
    return k >= 0 && k < this.xhMark.length && this.xhMark[k] === this.xhGen;
  }

  /** Restart the union's generations (the current union keeps being the current one). */
  private xhRenumber(): void {
    this.xhMark.fill(0);
    this.xhGen = 2;
    for (const m of this.hList) this.xhMark[m - this.xhLo] = 2;
  }

  // ---- the op scope --------------------------------------------------------------

  private resolveDom(caller: number, dom: number): number {
    return dom === DOMID_SELF ? caller : dom;
  }

  private num(v: bigint | number): number {
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && (this.arm64 || v <= 0xffffffff)) return v;
    const b = BigInt(v) & this.invalidGfn;
    return b > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(b);
  }

  private addGfn(s: Scope, domid: number, g: bigint | number): void {
    s.gfns.push(domid, this.num(g), 1);
  }

  private grantFrameMfn(domid: number, idx: number): number | null {
    const gv = this.host.grant(domid);
    if (gv === null) return null;
    if ((idx & XENMAPIDX_grant_table_status) !== 0 && gv.version === 2) {
      const i = (idx & ~XENMAPIDX_grant_table_status) >>> 0;
      return i < gv.status.length ? gv.status[i] : null;
    }
    return idx < gv.shared.length ? gv.shared[idx] : null;
  }

  /** What `call` may legitimately change (computed before and extended after the call). */
  scopeOf(call: FuzzCall, s: Scope): void {
    const { caller, req } = call;
    this.touched.add(caller);
    const rq = req as unknown as { domid?: number; dom?: number; foreign_domid?: number };
    if (rq.domid !== undefined) this.touched.add(this.resolveDom(caller, rq.domid));
    if (rq.dom !== undefined) this.touched.add(this.resolveDom(caller, rq.dom));
    if (rq.foreign_domid !== undefined) this.touched.add(this.resolveDom(caller, rq.foreign_domid));
    this.rescopeAfter(call, s);
    s.calls.push(call);
    switch (req.op) {
      case "XENMEM_populate_physmap":
      case "XENMEM_decrease_reservation":
      case "XENMEM_increase_reservation":
        // targets() reads the target's shadow; its entry exists from here on (shadowHash sees it).
        if ((req.extent_order ?? 0) <= 9) this.shadow.of(this.resolveDom(caller, req.domid));
        break;
      default:
        break;
    }
  }

  /** The GFN part of the scope, from its calls (before the step's P2M writes are applied). */
  private targets(s: Scope): void {
    if (s.targeted) return;
    s.targeted = true;
    for (const call of s.calls) this.targetsOf(call, s);
  }

  private targetsOf(call: FuzzCall, s: Scope): void {
    const { caller, req } = call;
    switch (req.op) {
      case "XENMEM_add_to_physmap":
        this.addGfn(s, this.resolveDom(caller, req.domid), req.gpfn);
        break;
      case "XENMEM_add_to_physmap_batch": {
        const d = this.resolveDom(caller, req.domid);
        for (const g of req.gpfns) this.addGfn(s, d, g);
        break;
      }
      case "XENMEM_remove_from_physmap":
        this.addGfn(s, this.resolveDom(caller, req.domid), req.gpfn);
        break;
      case "XENMEM_populate_physmap":
      case "XENMEM_decrease_reservation":
      case "XENMEM_increase_reservation": {
        const d = this.resolveDom(caller, req.domid);
        const order = req.extent_order ?? 0;
        if (order > 9) break;
        const sm = this.shadow.of(d);
        const n = 1 << order;
        const decrease = req.op === "XENMEM_decrease_reservation";
        for (const g of req.extent_start) {
          const base = this.num(g);
          // base + k goes through num() (wrapping at the arch width) unless it cannot leave the range as it is.
          if (base >= 0 && base + n - 1 <= (this.arm64 ? Number.MAX_SAFE_INTEGER : 0xffffffff)) s.gfns.push(d, base, n);
          else for (let k = 0; k < n; k++) this.addGfn(s, d, base + k);
          if (!decrease) continue;
          s.decreaseAt.push(d, base, n);
          for (let k = 0; k < n; k++) {
            const l = sm.get(base + k);
            if (l !== undefined) s.decreased.push([d, base + k, l.mfn]);
          }
        }
        break;
      }
      case "XENMEM_acquire_resource":
        if (req.frame_list) for (const g of req.frame_list) this.addGfn(s, caller, g);
        break;
      default:
        break;
    }
  }

  /**
   * The frames `call` concerns (grant frames, shared_info): part of scopeOf,
   * and run again after the call, because the host may now say differently
   * (a table grown, a version switched). The GFN part (targets) depends on
   * the call and on the shadow, which only afterStep changes.
   */
  rescopeAfter(call: FuzzCall, s: Scope): void {
    const { caller, req } = call;
    switch (req.op) {
      case "XENMEM_add_to_physmap": {
        const d = this.resolveDom(caller, req.domid);
        if (req.space === XENMAPSPACE_grant_table) {
          const m = this.grantFrameMfn(d, idx32(req.idx));
          if (m !== null) addOnce(s.mfns, m);
        } else if (req.space === XENMAPSPACE_shared_info) {
          const m = this.host.sharedInfoMfn(d);
          if (m !== null) addOnce(s.mfns, m);
        }
        break;
      }
      case "XENMEM_add_to_physmap_batch": {
        if (req.space !== XENMAPSPACE_grant_table) break;
        const d = this.resolveDom(caller, req.domid);
        for (const i of req.idxs) {
          const m = this.grantFrameMfn(d, idx32(i));
          if (m !== null) addOnce(s.mfns, m);
        }
        break;
      }
      case "GNTTABOP_set_version": {
        const gv = this.host.grant(caller);
        if (gv !== null) for (let i = 0; i < gv.status.length; i++) addOnce(s.mfns, gv.status[i]);
        break;
      }
      default:
        break;
    }
  }

  /** The scope of the next step (one object, reused: a scope lives for one step). */
  newScope(): Scope {
    // (Map/Set clear() allocates a new table even when empty.)
    const s = this.scopeObj;
    clear(s.calls);
    s.targeted = false;
    clear(s.gfns);
    if (s.whole.size > 0) s.whole.clear();
    clear(s.mfns);
    clear(s.decreased);
    clear(s.decreaseAt);
    return s;
  }

  /** Mark a whole domain as in scope (destroy). */
  scopeDomain(s: Scope, domid: number): void {
    s.whole.add(domid);
  }

  // ---- pre-op snapshot for (e) and (h) -------------------------------------------------

  /** For a sequential call: should it succeed according to (e)? */
  expectMapOk(call: FuzzCall): string | null {
    const { caller, req } = call;
    if (req.op !== "XENMEM_add_to_physmap") return null;
    if (req.space !== XENMAPSPACE_grant_table && req.space !== XENMAPSPACE_shared_info) return null;
    if ((req.startExtent ?? 0) !== 0) return null;
    const d = this.resolveDom(caller, req.domid);
    const live = this.host.domids();
    // Not for a domain Xen has crashed (domain_crash): its grant state is abandoned.
    if (!live.includes(d) || !live.includes(caller) || !this.host.canCall(d)) return null;
    const callerPriv = caller === 0; // the fuzz world's control domain
    if (d !== caller && !callerPriv) return null;
    const g = this.num(req.gpfn);
    if (g < 0 || g >= this.reachGfn) return null;
    if (this.shadow.of(d).has(g)) return null;
    let mfn: number | null;
    let what: string;
    if (req.space === XENMAPSPACE_shared_info) {
      if (!isZero(req.idx)) return null;
      mfn = this.host.sharedInfoMfn(d);
      what = "shared_info";
    } else {
      const i = asIndex(req.idx);
      if (i > 0xffffffff) return null;
      const gv = this.host.grant(d);
      if (gv === null) return null;
      if ((i & XENMAPIDX_grant_table_status) !== 0) {
        if (gv.version !== 2) return null;
        const s = (i & ~XENMAPIDX_grant_table_status) >>> 0;
        if (s >= gv.nrStatusFrames) return null;
        mfn = gv.status[s];
        what = `status frame ${s}`;
      } else {
        if (i >= gv.nrGrantFrames) return null;
        mfn = gv.shared[i];
        what = `grant frame ${i}`;
      }
    }
    if (mfn === null || mfn === undefined) return null;
    // A frame the guest gave back (decrease_reservation) has no reference left to take.
    if (this.released.has(mfn)) return null;
    // A frame freed under another domain's foreign mapping and reused: its count is already wrong (orphan-*).
    if (this.orphans.has(mfn)) return null;
    // Not mapped anywhere in its owner's P2M.
    const r = this.rev.get(mfn);
    if (r !== undefined) for (const l of r) if (l.domid === d) return null;
    return `${what} (mfn 0x${mfn.toString(16)}) of d${d} is not mapped and gfn 0x${g.toString(16)} is free`;
  }

  /** The domain's xenheap frames as (a) lists them: grant frames, status frames, shared_info; with the stored GFN arrays' entries. Did the frames change? */
  private xenheapPagesOf(domid: number, st: XenheapState): boolean {
    const old = this.pagesScratch;
    clear(old);
    for (let i = 0; i < st.pages.length; i++) old.push(st.pages[i]);
    clear(st.pages);
    clear(st.arrs);
    const gv = this.host.grant(domid);
    if (gv !== null) {
      const { shared, status, sharedGfn, statusGfn } = gv;
      for (let i = 0; i < shared.length; i++) st.pages.push(shared[i]), st.arrs.push(sharedGfn ? sharedGfn[i] : null);
      for (let i = 0; i < status.length; i++) st.pages.push(status[i]), st.arrs.push(statusGfn ? statusGfn[i] : null);
    }
    const si = this.host.sharedInfoMfn(domid);
    if (si !== null) (st.pages.push(si), st.arrs.push(null));
    if (old.length !== st.pages.length) return true;
    for (let i = 0; i < old.length; i++) if (old[i] !== st.pages[i]) return true;
    return false;
  }

  private readonly pagesScratch: number[] = [];

  /**
   * Called when a step begins. (h) needs the type_info of every xenheap page
   * of the live domains as it was before the step: the checker keeps those
   * records up to date after every step, so there is nothing to take here.
   */
  snapshotTypeBits(): Map<number, [number, number, number]> {
    return NO_SNAPSHOT;
  }

  // ---- after an op ------------------------------------------------------------------

  /**
   * Check after step `op`. `calls` are the hypercalls of the step (with their
   * results), `scope` what they may change, `expect` (e) expectations.
   */
  afterStep(
    op: number,
    scope: Scope,
    results: Array<{ call: FuzzCall; result: HypercallResult | undefined; expectOk: string | null }>,
    _typeSnap: Map<number, [number, number, number]>,
    destroyed: number | null,
  ): void {
    this.assertCurrent();
    const host = this.host;
    this.curOp = op;
    this.curResults = results;
    this.triageCtx.rows = results;
    this.triageCtx.inPar = this.inPar;
    // (i) crash
    const crash = host.crash();
    if (crash !== null) {
      const lockAssert = /assert\w*Locked failed/.test(crash.path);
      const id = lockAssert ? null : this.triage.classify({ invariant: "crash", sub: crash.kind, path: crash.path }, this.triageCtx);
      if (id !== null) {
        this.sighted(op, id, `crash:${crash.kind}`, `hypervisor crash (${crash.kind}): ${crash.path}`);
        return;
      }
      this.report(op, lockAssert ? "locks" : "crash", `hypervisor crash (${crash.kind}): ${crash.path}`, { crash, calls: results.map((r) => r.call) }, crash.kind + (this.orphans.size > 0 ? "-after-orphan" : ""));
      return;
    }
    // (d) collateral removals, from the P2M log
    const writes = host.drainP2m();
    if (writes === null || writes.length > 0) this.targets(scope);
    if (writes === null) {
      for (const d of host.domids()) this.resyncDomain(d);
    } else {
      this.curOp = op;
      this.curScope = scope;
      this.curResults = results;
      for (let i = 0; i < writes.length; i++) {
        this.shadow.apply(writes[i], this.onRemoved);
        this.touched.add(writes[i].domid);
      }
      this.curScope = null;
    }
    for (let i = 0; i < scope.decreased.length; i++) {
      const [d, g, m] = scope.decreased[i];
      const l = this.shadow.of(d).get(g);
      if (l === undefined || l.mfn !== m) this.release(m);
    }
    if (destroyed !== null) this.pendingTeardown.add(destroyed), (this.teardownIds = null);
    // A killed domain stays a zombie while another domain holds a reference on one of its
    // pages; once the host has really destroyed it, it must own nothing. (Looked at again
    // when the domain set changes: domids() hands out the same array until it does.)
    if (this.pendingTeardown.size > 0 && host.domids() !== this.teardownIds) for (const d of this.pendingTeardown) {
      if (this.host.domids().includes(d)) continue;
      this.pendingTeardown.delete(d);
      this.shadow.drop(d);
      this.xhQuiet = false;
      // Its frames are free now (or reused): no longer orphans of a zombie.
      for (const [m, o] of this.orphanOwner) if (o === d) (this.orphanOwner.delete(m), this.orphans.delete(m));
      this.checkTeardown(op, d);
    }
    if (this.pendingTeardown.size > 0) this.teardownIds = host.domids();
    // (e) map-free
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (r.expectOk !== null && r.result !== undefined && Number(r.result.rc) !== 0) {
        this.report(op, "map-free", `mapping failed with rc ${r.result.rc}: ${r.expectOk}`, { call: r.call, rc: String(r.result.rc) }, String(r.result.rc));
      }
    }
    // (g) locks
    const lf = host.drainLockFindings();
    for (let i = 0; i < lf.length; i++) this.report(op, "locks", `${lf[i].kind}: ${lf[i].message}`, lf[i]);
    // (h) type bits outside the GFN (reported from sync, which sees the records change)
    this.sync(false, op);
    this.settleLeaves();
    // (b) every shadow leaf of the touched domains references a held frame
    const all = this.touchAll;
    this.refsInScope(op, all ? null : this.touched);
    // (a) stored GFN vs P2M
    this.xenheapGfnInScope(op, all ? null : this.touched);
    this.touched.clear();
    this.touchAll = false;
    this.ops++;
    if (this.ops % this.fullEvery === 0) this.fullScan(op);
  }

  /** (d) for one mapping the step's P2M writes removed or replaced. */
  private collateral(domid: number, gfn: number, old: Leaf): void {
    const scope = this.curScope!;
    if (scope.decreaseAt.length > 0 && inRanges(scope.decreaseAt, domid, gfn)) this.release(old.mfn);
    const ok = scope.whole.has(domid) || inRanges(scope.gfns, domid, gfn) || scope.mfns.includes(old.mfn) || this.host.dying(domid);
    if (!ok) {
      this.report(this.curOp, "p2m-collateral", `d${domid} lost its mapping gfn 0x${gfn.toString(16)} -> mfn 0x${old.mfn.toString(16)} (type ${old.type}), which the op neither targets nor concerns`, {
        domid,
        gfn: hex(gfn),
        old: { mfn: hex(old.mfn), type: old.type },
        calls: this.curResults.map((r) => ({ caller: r.call.caller, req: r.call.req, rc: r.result?.rc })),
        scopeMfns: scope.mfns.map(hex),
      });
    }
  }

  /** (h): `bad` maps each offending page to its type_info before the step; reported in snapshot order. */
  private reportTypeBits(op: number, bad: Map<number, [number, number]>): void {
    const arm64 = this.arm64;
    for (const m of this.hList) {
      const b = bad.get(m);
      if (b === undefined) continue;
      const p = this.host.page(m)!;
      this.report(op, "type-bits", `type_info bits outside the GFN of mfn 0x${m.toString(16)} changed`, {
        mfn: hex(m),
        before: typeHex(b[0], b[1], arm64),
        after: typeHex(p.typeLo, p.typeHi, arm64),
      });
    }
  }

  /** (b) over `only` (null = every domain): the scan runs only when a leaf in scope is bad with a variant still to record. */
  private refsInScope(op: number, only: DomainSet | null): void {
    if (this.disabled.has("p2m-ref")) return;
    for (const [d, set] of this.badLeaves) {
      if (set.size === 0 || (only !== null && !only.has(d))) continue;
      for (const l of set) {
        if (this.reportable("p2m-ref", this.refSub(l))) {
          this.checkRefs(op, only);
          return;
        }
      }
    }
  }

  /** The variant sub (b) would report for a bad leaf. */
  private refSub(l: ShadowLeaf): string {
    let sub = this.refProblem(l, l.domid, this.pageNow(l.mfn));
    if (sub === null) throw new Error(`fuzz: leaf d${l.domid} gfn 0x${l.gfn.toString(16)} -> mfn 0x${l.mfn.toString(16)} marked bad but (b) finds it fine`);
    if (sub !== "" && this.orphans.has(l.mfn)) sub = `orphan-${this.orphans.get(l.mfn)}-${sub}`;
    return sub;
  }

  /** (a) over `only` (null = every domain): the scan runs only when a domain in scope is bad and the variant is still to record. */
  private xenheapGfnInScope(op: number, only: DomainSet | null): void {
    if (this.xhQuiet) return;
    let bad = false;
    // Quiet afterwards (see xhQuiet) unless a live domain, in scope or not, is left dirty, bad, or without its shadow entry.
    let quiet = true;
    const ids = this.host.domids();
    const known = ids === this.lastIds; // then lastDying holds dying() (sync ran since anything changed)
    for (let i = 0; i < ids.length; i++) {
      const d = ids[i];
      if (known ? this.lastDying[i] : this.host.dying(d)) continue;
      const st = this.xh.get(d);
      if (st === undefined) {
        quiet = false;
        continue;
      }
      if (only !== null && !only.has(d)) {
        if (st.dirty || st.bad || (st.pages.length > 0 && !this.shadow.doms.has(d))) quiet = false;
        continue;
      }
      if (st.pages.length === 0) {
        if (st.dirty || st.bad) quiet = false;
        continue;
      }
      this.shadow.of(d); // as the scan does (a domain's entry exists from its first check on)
      if (st.dirty) {
        st.bad = this.xenheapGfnBad(d, st);
        st.dirty = false;
      }
      if (st.bad) quiet = false;
      bad ||= st.bad;
    }
    if (bad && this.reportable("xenheap-gfn", "")) this.checkXenheapGfn(op, only);
    this.xhQuiet = quiet;
  }

  /** checkXenheapGfn's verdict on one domain, from the reverse map. */
  private xenheapGfnBad(d: number, st: XenheapState): boolean {
    for (let k = 0; k < st.pages.length; k++) {
      const m = st.pages[k];
      const arr = st.arrs[k];
      let n = 0;
      let first = -1;
      const r = this.rev.get(m);
      if (r !== undefined) for (const l of r) if (l.domid === d && isRam(l.type)) (n++, (first = l.gfn));
      let stored: number | null;
      if (this.gfnInPage) {
        const p = this.recordNow(m); // storedGfn reads type_info only
        if (p === null) continue;
        stored = this.storedGfn(p);
      } else if (arr !== null) {
        stored = arr === undefined || BigInt(arr) === this.invalidGfn || Number(arr) === -1 ? -1 : this.num(arr);
      } else stored = null;
      if (n > 1) return true;
      if (stored !== null && ((stored === -1 && n === 1) || (stored !== -1 && (n === 0 || first !== stored)))) return true;
    }
    return false;
  }

  /** GFN/HEAD: the GFN a xenheap page's type_info holds (-1 = INVALID). */
  private storedGfn(p: PageView): number {
    const inv = this.arm64 ? (p.typeHi & 0x1fffffff) === 0x1fffffff && p.typeLo === 0xffffffff : (p.typeLo & 0x1fffffff) === 0x1fffffff;
    return inv ? -1 : this.arm64 ? (p.typeHi & 0x1fffffff) * 0x100000000 + p.typeLo : p.typeLo & 0x1fffffff;
  }

  private checkRefs(op: number, only: DomainSet | null): void {
    const arm64 = this.arm64;
    for (const [domid, m] of this.shadow.doms) {
      if (only !== null && !only.has(domid)) continue;
      for (const [gfn, l] of m) {
        if (!isRam(l.type) && !isForeign(l.type) && !isGrant(l.type)) continue;
        const p = this.host.page(l.mfn);
        let sub = this.refProblem(l, domid, p);
        if (sub === null) continue;
        if (p === null) {
          this.report(op, "p2m-ref", `d${domid} gfn 0x${gfn.toString(16)} maps invalid mfn 0x${l.mfn.toString(16)}`, { domid, gfn: hex(gfn), mfn: hex(l.mfn) });
          continue;
        }
        let bad = sub === "owner" ? `a frame owned by ${p.owner < 0 ? "nobody" : "d" + p.owner}` : REF_PROBLEM[sub];
        if (this.orphans.has(l.mfn)) {
          sub = `orphan-${this.orphans.get(l.mfn)}-${sub}`;
          bad += " (its owner was destroyed while this foreign mapping held a reference)";
        }
        this.report(op, "p2m-ref", `d${domid} gfn 0x${gfn.toString(16)} (type ${l.type}) maps mfn 0x${l.mfn.toString(16)}: ${bad}`, {
          domid,
          gfn: hex(gfn),
          mfn: hex(l.mfn),
          type: l.type,
          count_info: countHex(p, arm64),
          owner: p.owner,
        }, sub);
        return;
      }
    }
  }

  private checkXenheapGfn(op: number, only: DomainSet | null): void {
    for (const d of this.host.domids()) {
      if (only !== null && !only.has(d)) continue;
      if (this.host.dying(d)) continue;
      const gv = this.host.grant(d);
      const pages: Array<[number, string, bigint | number | null]> = [];
      if (gv !== null) {
        gv.shared.forEach((m, i) => pages.push([m, `grant frame ${i}`, gv.sharedGfn ? gv.sharedGfn[i] : null]));
        gv.status.forEach((m, i) => pages.push([m, `status frame ${i}`, gv.statusGfn ? gv.statusGfn[i] : null]));
      }
      const si = this.host.sharedInfoMfn(d);
      if (si !== null) pages.push([si, "shared_info", null]);
      if (pages.length === 0) continue;
      const sm = this.shadow.of(d);
      // mfn -> gfns mapping it as RAM
      const where = new Map<number, number[]>();
      for (const [m] of pages) where.set(m, []);
      for (const [g, l] of sm) {
        if (!isRam(l.type)) continue;
        const w = where.get(l.mfn);
        if (w !== undefined) w.push(g);
      }
      for (const [m, what, arr] of pages) {
        const gfns = where.get(m)!;
        let stored: number | null; // -1 = INVALID, null = no record kept (PRE shared_info)
        if (this.gfnInPage) {
          const p = this.host.page(m);
          if (p === null) continue;
          stored = this.storedGfn(p);
        } else if (arr !== null) {
          stored = arr === undefined || BigInt(arr) === this.invalidGfn || Number(arr) === -1 ? -1 : this.num(arr);
        } else stored = null;
        let bad: string | null = null;
        if (gfns.length > 1) bad = `mapped at ${gfns.length} GFNs (${gfns.map(hex).join(", ")})`;
        else if (stored !== null) {
          if (stored === -1 && gfns.length === 1) bad = `mapped at ${hex(gfns[0])} but no GFN is stored`;
          else if (stored !== -1 && gfns.length === 0) bad = `stored GFN ${hex(stored)} but not mapped there (${this.describe(d, stored)})`;
          else if (stored !== -1 && gfns[0] !== stored) bad = `stored GFN ${hex(stored)} but mapped at ${hex(gfns[0])}`;
        }
        if (bad !== null) {
          this.report(op, "xenheap-gfn", `d${d} ${what} (mfn 0x${m.toString(16)}): ${bad}`, { domid: d, frame: what, mfn: hex(m), stored: stored === null ? null : stored === -1 ? "INVALID" : hex(stored), mappedAt: gfns.map(hex) });
          return;
        }
      }
    }
  }

  private describe(domid: number, gfn: number): string {
    const l = this.shadow.of(domid).get(gfn);
    return l === undefined ? "hole" : `holds mfn 0x${l.mfn.toString(16)} type ${l.type}`;
  }

  /**
   * page(mfn) as of now, in a record reused by the next call. Owners are
   * cached by owner field until the set of domains changes (an owner is the
   * domain in the slot the field points at).
   */
  private pageNow(mfn: number): PageView | null {
    const p = this.recordNow(mfn);
    if (p !== null && this.frames.direct) p.owner = this.ownerOf(mfn, this.ownerCache);
    return p;
  }

  /** pageNow without the owner look-up: `owner` is left as it was, for readers of count_info / type_info only. */
  private recordNow(mfn: number): PageView | null {
    const fw = this.frames;
    if (!fw.direct) return this.host.page(mfn);
    if (!fw.valid(mfn)) return null;
    fw.words(mfn, this.pv);
    return this.pv;
  }

  /** page(mfn).owner, looked up once per distinct owner field while `cache` lives (the owner is a function of that field). */
  private ownerOf(mfn: number, cache: OwnerCache): number {
    const key = this.frames.ownerKey(mfn);
    if (Number.isNaN(key)) return this.host.page(mfn)!.owner;
    let o = cache.get(key);
    if (o === undefined) cache.set(key, (o = this.host.page(mfn)!.owner));
    return o;
  }

  /**
   * (f) after final destruction: no frame in use may still name the dead
   * domain as its owner. Its domid has no slot any more, so the frames are
   * found by the owner field itself (the struct domain address they held).
   */
  private checkTeardown(op: number, domid: number): void {
    const key = this.destroyedKey.get(domid);
    this.destroyedKey.delete(domid);
    if (key === undefined) return; // it owned nothing when it was destroyed
    let left = 0;
    let first = -1;
    const fw = this.frames;
    for (let m = fw.nextInUse(0); m >= 0; m = fw.nextInUse(m + 1)) {
      if (fw.ownerKey(m) === key) {
        if (first < 0) first = m;
        left++;
      }
    }
    if (left > 0) {
      const p = this.host.page(first)!;
      this.report(op, "teardown", `destroyed d${domid} still owns ${left} frame(s), e.g. mfn 0x${first.toString(16)}`, { domid, left, first: hex(first), count_info: countHex(p, this.arm64) });
    }
  }

  /** Before destroying `domid`: remember its frames that other domains map as foreign. */
  beforeDestroy(domid: number): void {
    this.assertCurrent();
    const owners = new OwnerCache();
    const fw = this.frames;
    for (let m = fw.nextInUse(0); m >= 0; m = fw.nextInUse(m + 1)) {
      if (this.ownerOf(m, owners) !== domid) continue;
      const key = this.frames.ownerKey(m);
      if (!Number.isNaN(key)) this.destroyedKey.set(domid, key);
      break;
    }
    const foreign = new Set<number>();
    for (const [d, m] of this.shadow.doms) {
      if (d === domid) continue;
      for (const l of m.values()) if (isForeign(l.type)) foreign.add(l.mfn);
    }
    for (const mfn of foreign) {
      const p = this.host.page(mfn);
      if (p !== null && p.owner === domid) {
        this.orphans.set(mfn, this.host.isXenheap(mfn) ? "xenheap" : "ram");
        this.orphanOwner.set(mfn, domid);
      }
    }
  }

  /** Full scan: shadow vs walk (f), reference counts (c), (a) and (b) over every domain. */
  fullScan(op: number): void {
    this.assertCurrent();
    const host = this.host;
    if (host.crash() !== null) return;
    this.refsInScope(op, null);
    this.xenheapGfnInScope(op, null);
    const arm64 = this.arm64;
    // (f) shadow == walk. (Indexed loops: a full scan runs too seldom for V8 to optimise it, and an
    // unoptimised for-of allocates its iterator and results.)
    const tablesOf = new Map<number, { tables: number[]; expected: number } | null>();
    const ids = host.domids();
    for (let di = 0; di < ids.length; di++) {
      const d = ids[di];
      let w: number[] | null;
      if (host.walkP2mTables !== undefined) {
        const wt = host.walkP2mTables(d);
        w = wt === null ? null : wt.leaves;
        if (wt !== null && host.tablePages) tablesOf.set(d, wt.tables);
      } else w = host.walkP2m(d);
      if (w === null) continue;
      const sm = this.shadow.of(d);
      let n = 0;
      let bad: string | null = null;
      for (let i = 0; i < w.length && bad === null; i += 4) {
        const leaf = decodeLeaf(w[i + 1], w[i + 2], w[i + 3]);
        if (leaf === null) continue;
        const pages = LEVEL_PAGES[w[i + 3]];
        for (let k = 0; k < pages; k++) {
          n++;
          const s = sm.get(w[i] + k);
          if (s === undefined || s.mfn !== leaf.mfn + k || s.type !== leaf.type) {
            bad = `gfn 0x${(w[i] + k).toString(16)}: walk says mfn 0x${(leaf.mfn + k).toString(16)} type ${leaf.type}, log-built shadow says ${s === undefined ? "hole" : "mfn 0x" + s.mfn.toString(16)}`;
            break;
          }
        }
      }
      if (bad === null && n !== sm.size) bad = `walk finds ${n} mappings, the P2M-change log ${sm.size}`;
      if (bad !== null) {
        this.report(op, "teardown", `d${d} P2M tables disagree with the change log: ${bad}`, { domid: d });
        this.resyncDomain(d);
      }
    }
    // (f) every table page reachable from exactly one P2M, none free, none mapped as a leaf
    if (host.tablePages) {
      const seenT = new Map<number, number>();
      for (let di = 0; di < ids.length; di++) {
        const d = ids[di];
        const tp = tablesOf.has(d) ? tablesOf.get(d)! : host.tablePages(d);
        if (tp === null) continue;
        let bad: string | null = null;
        for (let ti = 0; ti < tp.tables.length; ti++) {
          const t = tp.tables[ti];
          const other = seenT.get(t);
          if (other !== undefined) bad = `table page 0x${t.toString(16)} reachable from d${other} and d${d}`;
          else if (this.rev.has(t)) { // some leaf maps it
            const k = this.triage.attributedTo(t);
            // A frame a known finding left mapped went back to the heap and became a table page.
            if (k !== undefined) this.sighted(op, k, "teardown:tables", `d${d}: table page 0x${t.toString(16)} is also mapped as guest memory`);
            else bad = `table page 0x${t.toString(16)} is also mapped as guest memory`;
          }
          else if (host.countInto(t, this.cnt) && countFree(this.cnt, arm64)) bad = `table page 0x${t.toString(16)} is free`;
          if (bad !== null) break;
          seenT.set(t, d);
        }
        if (bad === null && tp.tables.length !== tp.expected) bad = `walk reaches ${tp.tables.length} table pages, p2m->pages holds ${tp.expected}`;
        if (bad !== null) {
          this.report(op, "teardown", `d${d}: ${bad}`, { domid: d, tables: tp.tables.length, expected: tp.expected }, "tables");
          break;
        }
      }
    }
    // (c) refcounts: allocation ref + foreign P2M references
    const live = new Set(host.domids());
    const used = this.inUseBuf;
    this.frames.inUse(used);
    const owners = new OwnerCache();
    for (let ui = 0; ui < used.length; ui++) {
      const mfn = used[ui];
      const c = this.cnt;
      host.countInto(mfn, c);
      const foreign = this.foreignRefs(mfn);
      if ((arm64 ? (c[1] & 0x803fffff) === 0 && c[0] === 0 : (c[0] & 0x803fffff) === 0) && foreign === 0) continue; // count 0, not allocated
      const owner = this.ownerOf(mfn, owners);
      if (owner < 0 || !live.has(owner)) continue;
      if (host.dying(owner)) continue;
      // host.page(mfn) without a lookup through the core (the owner is the one just found).
      const p = this.frames.direct ? this.pageNow(mfn)! : host.page(mfn)!;
      const leaked = this.remapLeaks.get(mfn) ?? 0;
      const want = (pageAllocated(p, arm64) ? 1 : 0) + foreign;
      const got = pageCount(p, arm64);
      if (leaked > 0 && got === want + leaked) {
        this.sighted(op, "foreign-remap-leak", "refcount", `mfn 0x${mfn.toString(16)} of d${p.owner}: count ${got}, expected ${want}; ${leaked} foreign re-map(s) of the same frame at the same GFN (FS 11.3)`);
        continue;
      }
      if (got !== want) {
        const orphan = this.orphans.has(mfn);
        this.report(op, "refcount", `mfn 0x${mfn.toString(16)} of d${p.owner}: count ${got}, expected ${want} (allocation ${pageAllocated(p, arm64) ? 1 : 0} + foreign mappings ${foreign})`, {
          mfn: hex(mfn),
          owner: p.owner,
          count_info: countHex(p, arm64),
          mappedBy: this.mappedBy(mfn),
        }, orphan ? "orphan" : "");
        break;
      }
    }
  }

  /** Foreign leaves (any domain) mapping `mfn`: the references (c) expects them to hold. */
  private foreignRefs(mfn: number): number {
    const r = this.rev.get(mfn);
    let n = 0;
    if (r !== undefined) for (let i = 0; i < r.length; i++) if (isForeign(r[i].type)) n++;
    return n;
  }

  /** (c)'s excerpt: the leaves mapping `mfn`. (Apart from fullScan's loop: a closure over its `mfn` would cost every iteration a context.) */
  private mappedBy(mfn: number): Array<{ domid: number; gfn: string; type: number }> {
    return [...this.shadow.doms].flatMap(([d, m]) => [...m].filter(([, l]) => l.mfn === mfn).map(([g, l]) => ({ domid: d, gfn: hex(g), type: l.type })));
  }

  /** Order-independent hash of the shadow (for determinism checks). */
  shadowHash(h: number): number {
    const doms = [...this.shadow.doms.keys()].sort((a, b) => a - b);
    for (const d of doms) {
      const m = this.shadow.doms.get(d)!;
      const gfns = [...m.keys()].sort((a, b) => a - b);
      h = fnv(h, d);
      for (const g of gfns) {
        const l = m.get(g)!;
        h = fnv(fnv(fnv(h, g), l.mfn), l.type);
      }
    }
    return h;
  }
}

export function fnv(h: number, v: number): number {
  h = Math.imul(h ^ (v & 0xffffffff), 0x01000193) >>> 0;
  return Math.imul(h ^ Math.floor(v / 0x100000000), 0x01000193) >>> 0;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function countHex(p: PageView, arm64: boolean): string {
  return arm64 ? "0x" + p.countHi.toString(16).padStart(8, "0") + p.countLo.toString(16).padStart(8, "0") : "0x" + p.countLo.toString(16).padStart(8, "0");
}
function typeHex(lo: number, hi: number, arm64: boolean): string {
  return arm64 ? "0x" + (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0") : "0x" + (lo >>> 0).toString(16).padStart(8, "0");
}

export type { Scope };
export type { HypercallRequest };
