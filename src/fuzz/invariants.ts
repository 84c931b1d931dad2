// Invariants checked by the fuzzer after every operation.
//
// A TS shadow of every domain's P2M leaves is kept up to date from the core's
// P2M-change log (every descriptor write into a live table), so per-op
// checks only look at what changed plus a handful of pages; full scans (the
// shadow against a real table walk, every owned frame's reference count)
// run every `fullEvery` ops and at the end.
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

import type { HypercallRequest, HypercallResult } from "../machine/api.js";
import { DOMID_SELF } from "../machine/api.js";
import type { FuzzHost, P2mWrite, PageView } from "./host.js";
import { XENMAPIDX_grant_table_status, XENMAPSPACE_grant_table, XENMAPSPACE_shared_info, type FuzzCall } from "./generator.js";
import { policyFor } from "../revisions/index.js";

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

// P2M types (FS 4.2).
export const P2M_RAM_RW = 1;
export const P2M_RAM_RO = 2;
const isRam = (t: number) => t === 1 || t === 2;
const isForeign = (t: number) => t === 6 || t === 7;
const isGrant = (t: number) => t === 8 || t === 9;

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

function isTable(lo: number, hi: number, level: number): boolean {
  return level < 3 && ((hi >>> 23) & 0xf) !== 0 && (lo & 2) !== 0;
}

const LEVEL_PAGES = [512 * 512 * 512, 512 * 512, 512, 1];

/** Per-domain shadow P2M: gfn -> leaf (4 KiB granularity). */
export class ShadowP2m {
  readonly doms = new Map<number, Map<number, Leaf>>();

  of(domid: number): Map<number, Leaf> {
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
    const oldLeaf = decodeLeaf(w.oldLo, w.oldHi, w.level);
    const newLeaf = decodeLeaf(w.newLo, w.newHi, w.level);
    if (oldLeaf === null && newLeaf === null) return; // table links, empty -> empty
    if (oldLeaf !== null && isTable(w.newLo, w.newHi, w.level)) return; // superpage split: same mappings
    const n = LEVEL_PAGES[w.level] ?? 1;
    if (n > 1 << 20) throw new Error(`fuzz: level-${w.level} block not supported by the shadow`);
    for (let i = 0; i < n; i++) {
      const gfn = w.gfn + i;
      const cur = m.get(gfn);
      const nl = newLeaf === null ? null : { mfn: newLeaf.mfn + i, type: newLeaf.type };
      if (cur !== undefined && (nl === null || nl.mfn !== cur.mfn || nl.type !== cur.type)) removed(w.domid, gfn, cur);
      if (nl === null) {
        if (!isTable(w.newLo, w.newHi, w.level)) m.delete(gfn);
      } else m.set(gfn, nl);
    }
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

export interface CheckerOptions {
  /** Full scan every N ops (default 64). */
  fullEvery?: number;
  /** Invariants not to check. */
  disable?: InvariantName[];
}

// count_info decoding per arch.
interface Bits {
  allocatedHi: number; // bit in hi (arm64) or lo (arm32)
  stateShift: number;
  countMaskHi: number;
  arm64: boolean;
}

function pageCount(p: PageView, arm64: boolean): number {
  return arm64 ? (p.countHi & 0x3fffff) * 0x100000000 + p.countLo : p.countLo & 0x3fffff;
}
function pageAllocated(p: PageView, arm64: boolean): boolean {
  return arm64 ? (p.countHi & 0x80000000) !== 0 : (p.countLo & 0x80000000) !== 0;
}
function pageFree(p: PageView, arm64: boolean): boolean {
  // PGC_state == free (3): arm64 bits 55-56, arm32 bits 23-24.
  return arm64 ? ((p.countHi >>> 23) & 3) === 3 : ((p.countLo >>> 23) & 3) === 3;
}

function countFree(c: Uint32Array, arm64: boolean): boolean {
  return arm64 ? ((c[1] >>> 23) & 3) === 3 : ((c[0] >>> 23) & 3) === 3;
}

/** The "frames an op concerns" and "GFNs it targets" in one domain. */
interface Scope {
  /** domid -> targeted GFNs (null = all, e.g. destroy). */
  gfns: Map<number, Set<number> | null>;
  mfns: Set<number>;
  /** (domid, gfn, mfn) a decrease_reservation asked to give back. */
  decreased: Array<[number, number, number]>;
  /** "domid:gfn" targeted by a decrease_reservation (what gets removed there was given back). */
  decreaseAt: Set<string>;
}

export class InvariantChecker {
  readonly shadow = new ShadowP2m();
  readonly violations: Violation[] = [];
  private readonly seen = new Set<InvariantName>();
  private readonly seenVariant = new Set<string>();
  /** Set by the runner: the current step is an interleaved group. */
  inPar = false;
  /** Set by the runner: check every domain after this step (create/destroy). */
  touchAll = false;
  /** Destroyed domains whose final destruction (zombie reaping) is still to be checked. */
  private readonly pendingTeardown = new Set<number>();
  /** Domains whose P2M or grant state the current step may have changed. */
  private readonly touched = new Set<number>();
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

  constructor(readonly host: FuzzHost, opts: CheckerOptions = {}) {
    this.fullEvery = opts.fullEvery ?? 64;
    this.disabled = new Set(opts.disable ?? []);
    this.arm64 = host.arch === "arm64";
    this.gfnInPage = policyFor(host.revision).grantGfnInPageInfo;
    this.reachGfn = 2 ** (host.ipaBits - 12);
    this.invalidGfn = this.arm64 ? 0xffffffffffffffffn : 0xffffffffn;
    // Start from the tables as they are.
    host.drainP2m();
    for (const d of host.domids()) this.resyncDomain(d);
    host.drainLockFindings();
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

  /** A finding made by the runner (scheduler outcome, exceptions). */
  hostFinding(op: number, invariant: InvariantName, message: string, excerpt: unknown): void {
    this.report(op, invariant, message, excerpt);
  }

  private resyncDomain(domid: number): void {
    const m = this.shadow.of(domid);
    m.clear();
    const w = this.host.walkP2m(domid);
    if (w === null) return;
    for (let i = 0; i < w.length; i += 4) {
      const leaf = decodeLeaf(w[i + 1], w[i + 2], w[i + 3]);
      if (leaf === null) continue;
      const n = LEVEL_PAGES[w[i + 3]];
      for (let k = 0; k < n; k++) m.set(w[i] + k, { mfn: leaf.mfn + k, type: leaf.type });
    }
  }

  // ---- the op scope --------------------------------------------------------------

  private resolveDom(caller: number, dom: number): number {
    return dom === DOMID_SELF ? caller : dom;
  }

  private num(v: bigint | number): number {
    const b = BigInt(v) & this.invalidGfn;
    return b > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(b);
  }

  private addGfn(s: Scope, domid: number, g: bigint | number): void {
    let set = s.gfns.get(domid);
    if (set === null) return;
    if (set === undefined) {
      set = new Set();
      s.gfns.set(domid, set);
    }
    set.add(this.num(g));
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
    switch (req.op) {
      case "XENMEM_add_to_physmap": {
        const d = this.resolveDom(caller, req.domid);
        this.addGfn(s, d, req.gpfn);
        const idx = Number(BigInt(req.idx) & 0xffffffffn);
        if (req.space === XENMAPSPACE_grant_table) {
          const m = this.grantFrameMfn(d, idx);
          if (m !== null) s.mfns.add(m);
        } else if (req.space === XENMAPSPACE_shared_info) {
          const m = this.host.sharedInfoMfn(d);
          if (m !== null) s.mfns.add(m);
        }
        break;
      }
      case "XENMEM_add_to_physmap_batch": {
        const d = this.resolveDom(caller, req.domid);
        for (const g of req.gpfns) this.addGfn(s, d, g);
        if (req.space === XENMAPSPACE_grant_table) {
          for (const i of req.idxs) {
            const m = this.grantFrameMfn(d, Number(BigInt(i) & 0xffffffffn));
            if (m !== null) s.mfns.add(m);
          }
        }
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
        for (const g of req.extent_start) {
          const base = this.num(g);
          for (let k = 0; k < 1 << order; k++) {
            this.addGfn(s, d, base + k);
            const l = sm.get(base + k);
            if (req.op === "XENMEM_decrease_reservation") {
              s.decreaseAt.add(`${d}:${base + k}`);
              if (l !== undefined) s.decreased.push([d, base + k, l.mfn]);
            }
          }
        }
        break;
      }
      case "XENMEM_acquire_resource":
        if (req.frame_list) for (const g of req.frame_list) this.addGfn(s, caller, g);
        break;
      case "GNTTABOP_set_version": {
        const gv = this.host.grant(caller);
        if (gv !== null) for (const m of gv.status) s.mfns.add(m);
        break;
      }
      default:
        break;
    }
  }

  newScope(): Scope {
    return { gfns: new Map(), mfns: new Set(), decreased: [], decreaseAt: new Set() };
  }

  /** Mark a whole domain as in scope (destroy). */
  scopeDomain(s: Scope, domid: number): void {
    s.gfns.set(domid, null);
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
      if (BigInt(req.idx) !== 0n) return null;
      mfn = this.host.sharedInfoMfn(d);
      what = "shared_info";
    } else {
      const idx = BigInt(req.idx);
      if (idx > 0xffffffffn) return null;
      const gv = this.host.grant(d);
      if (gv === null) return null;
      const i = Number(idx);
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
    for (const l of this.shadow.of(d).values()) if (l.mfn === mfn) return null;
    return `${what} (mfn 0x${mfn.toString(16)}) of d${d} is not mapped and gfn 0x${g.toString(16)} is free`;
  }

  private xenheapPages(domid: number): number[] {
    const out: number[] = [];
    const gv = this.host.grant(domid);
    if (gv !== null) out.push(...gv.shared, ...gv.status);
    const si = this.host.sharedInfoMfn(domid);
    if (si !== null) out.push(si);
    return out;
  }

  /** type_info of every xenheap page of live domains, for (h). */
  snapshotTypeBits(): Map<number, [number, number, number]> {
    const snap = new Map<number, [number, number, number]>();
    if (!this.gfnInPage) return snap;
    for (const d of this.host.domids()) {
      for (const m of this.xenheapPages(d)) {
        const p = this.host.page(m);
        if (p !== null) snap.set(m, [p.typeLo, p.typeHi, p.owner]);
      }
    }
    return snap;
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
    typeSnap: Map<number, [number, number, number]>,
    destroyed: number | null,
  ): void {
    const host = this.host;
    // (i) crash
    const crash = host.crash();
    if (crash !== null) {
      const lockAssert = /assert\w*Locked failed/.test(crash.path);
      this.report(op, lockAssert ? "locks" : "crash", `hypervisor crash (${crash.kind}): ${crash.path}`, { crash, calls: results.map((r) => r.call) }, crash.kind + (this.orphans.size > 0 ? "-after-orphan" : ""));
      return;
    }
    // (d) collateral removals, from the P2M log
    const writes = host.drainP2m();
    if (writes === null) {
      for (const d of host.domids()) this.resyncDomain(d);
    } else {
      for (const w of writes) {
        this.shadow.apply(w, (domid, gfn, old) => {
          if (scope.decreaseAt.size > 0 && scope.decreaseAt.has(`${domid}:${gfn}`)) this.released.add(old.mfn);
          const gs = scope.gfns.get(domid);
          const ok = gs === null || (gs !== undefined && gs.has(gfn)) || scope.mfns.has(old.mfn) || host.dying(domid);
          if (!ok) {
            this.report(op, "p2m-collateral", `d${domid} lost its mapping gfn 0x${gfn.toString(16)} -> mfn 0x${old.mfn.toString(16)} (type ${old.type}), which the op neither targets nor concerns`, {
              domid,
              gfn: hex(gfn),
              old: { mfn: hex(old.mfn), type: old.type },
              calls: results.map((r) => ({ caller: r.call.caller, req: r.call.req, rc: r.result?.rc })),
              scopeMfns: [...scope.mfns].map(hex),
            });
          }
        });
        this.touched.add(w.domid);
      }
    }
    for (const [d, g, m] of scope.decreased) {
      const l = this.shadow.of(d).get(g);
      if (l === undefined || l.mfn !== m) this.released.add(m);
    }
    if (destroyed !== null) this.pendingTeardown.add(destroyed);
    // A killed domain stays a zombie while another domain holds a reference on one of its
    // pages; once the host has really destroyed it, it must own nothing.
    for (const d of this.pendingTeardown) {
      if (this.host.domids().includes(d)) continue;
      this.pendingTeardown.delete(d);
      this.shadow.doms.delete(d);
      // Its frames are free now (or reused): no longer orphans of a zombie.
      for (const [m, o] of this.orphanOwner) if (o === d) (this.orphanOwner.delete(m), this.orphans.delete(m));
      this.checkTeardown(op, d);
    }
    // (e) map-free
    for (const r of results) {
      if (r.expectOk !== null && r.result !== undefined && Number(r.result.rc) !== 0) {
        this.report(op, "map-free", `mapping failed with rc ${r.result.rc}: ${r.expectOk}`, { call: r.call, rc: String(r.result.rc) }, String(r.result.rc));
      }
    }
    // (g) locks
    for (const f of host.drainLockFindings()) this.report(op, "locks", `${f.kind}: ${f.message}`, f);
    // (h) type bits outside the GFN
    if (typeSnap.size > 0) this.checkTypeBits(op, typeSnap);
    // (b) every shadow leaf of the touched domains references a held frame
    const all = this.touchAll;
    this.checkRefs(op, all ? null : this.touched);
    // (a) stored GFN vs P2M
    this.checkXenheapGfn(op, all ? null : this.touched);
    this.touched.clear();
    this.touchAll = false;
    this.ops++;
    if (this.ops % this.fullEvery === 0) this.fullScan(op);
  }

  private checkTypeBits(op: number, snap: Map<number, [number, number, number]>): void {
    const arm64 = this.arm64;
    for (const [m, [lo, hi, owner]] of snap) {
      const p = this.host.page(m);
      if (p === null || p.owner !== owner || pageFree(p, arm64)) continue;
      // GFN mask: arm64 bits 0-60 (hi & 0x1fffffff), arm32 bits 0-28.
      const diff = arm64 ? (p.typeHi ^ hi) & 0xe0000000 : (p.typeLo ^ lo) & 0xe0000000;
      if (diff !== 0) {
        this.report(op, "type-bits", `type_info bits outside the GFN of mfn 0x${m.toString(16)} changed`, {
          mfn: hex(m),
          before: typeHex(lo, hi, arm64),
          after: typeHex(p.typeLo, p.typeHi, arm64),
        });
      }
    }
  }

  private checkRefs(op: number, only: Set<number> | null): void {
    const arm64 = this.arm64;
    for (const [domid, m] of this.shadow.doms) {
      if (only !== null && !only.has(domid)) continue;
      for (const [gfn, l] of m) {
        if (!isRam(l.type) && !isForeign(l.type) && !isGrant(l.type)) continue;
        const p = this.host.page(l.mfn);
        if (p === null) {
          this.report(op, "p2m-ref", `d${domid} gfn 0x${gfn.toString(16)} maps invalid mfn 0x${l.mfn.toString(16)}`, { domid, gfn: hex(gfn), mfn: hex(l.mfn) });
          continue;
        }
        const cnt = pageCount(p, arm64);
        let bad: string | null = null;
        let sub = "";
        if (pageFree(p, arm64)) (bad = "a free frame"), (sub = "free");
        else if (cnt === 0 && !this.released.has(l.mfn)) (bad = "a frame with no reference held (count 0)"), (sub = "count0");
        else if (isRam(l.type) && p.owner !== domid && !this.host.dying(domid)) (bad = `a frame owned by ${p.owner < 0 ? "nobody" : "d" + p.owner}`), (sub = "owner");
        else if (isForeign(l.type) && p.owner === domid) (bad = "its own frame as foreign"), (sub = "self-foreign");
        if (bad !== null && this.orphans.has(l.mfn)) {
          sub = `orphan-${this.orphans.get(l.mfn)}-${sub}`;
          bad += " (its owner was destroyed while this foreign mapping held a reference)";
        }
        if (bad !== null) {
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
  }

  private checkXenheapGfn(op: number, only: Set<number> | null): void {
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
          const inv = this.arm64 ? (p.typeHi & 0x1fffffff) === 0x1fffffff && p.typeLo === 0xffffffff : (p.typeLo & 0x1fffffff) === 0x1fffffff;
          stored = inv ? -1 : this.arm64 ? (p.typeHi & 0x1fffffff) * 0x100000000 + p.typeLo : p.typeLo & 0x1fffffff;
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

  private checkTeardown(op: number, domid: number): void {
    const [lo, hi] = this.host.ramRange();
    let left = 0;
    let first = -1;
    for (let m = lo; m < hi; m++) {
      if (!this.host.countInto(m, this.cnt) || countFree(this.cnt, this.arm64)) continue;
      const p = this.host.page(m)!;
      if (p.owner === domid) {
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
    const host = this.host;
    if (host.crash() !== null) return;
    this.checkRefs(op, null);
    this.checkXenheapGfn(op, null);
    const arm64 = this.arm64;
    // (f) shadow == walk
    for (const d of host.domids()) {
      const w = host.walkP2m(d);
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
      const leafMfns = new Set<number>();
      for (const m of this.shadow.doms.values()) for (const l of m.values()) leafMfns.add(l.mfn);
      for (const d of host.domids()) {
        const tp = host.tablePages(d);
        if (tp === null) continue;
        let bad: string | null = null;
        for (const t of tp.tables) {
          const other = seenT.get(t);
          if (other !== undefined) bad = `table page 0x${t.toString(16)} reachable from d${other} and d${d}`;
          else if (leafMfns.has(t)) bad = `table page 0x${t.toString(16)} is also mapped as guest memory`;
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
    const foreign = new Map<number, number>();
    for (const m of this.shadow.doms.values()) {
      for (const l of m.values()) if (isForeign(l.type)) foreign.set(l.mfn, (foreign.get(l.mfn) ?? 0) + 1);
    }
    const live = new Set(host.domids());
    const [lo, hi] = host.ramRange();
    for (let mfn = lo; mfn < hi; mfn++) {
      const c = this.cnt;
      if (!host.countInto(mfn, c) || countFree(c, arm64)) continue;
      if ((arm64 ? (c[1] & 0x803fffff) === 0 && c[0] === 0 : (c[0] & 0x803fffff) === 0) && !foreign.has(mfn)) continue; // count 0, not allocated
      const p = host.page(mfn)!;
      if (p.owner < 0 || !live.has(p.owner)) continue;
      if (host.dying(p.owner)) continue;
      const want = (pageAllocated(p, arm64) ? 1 : 0) + (foreign.get(mfn) ?? 0);
      const got = pageCount(p, arm64);
      if (got !== want) {
        const orphan = this.orphans.has(mfn);
        this.report(op, "refcount", `mfn 0x${mfn.toString(16)} of d${p.owner}: count ${got}, expected ${want} (allocation ${pageAllocated(p, arm64) ? 1 : 0} + foreign mappings ${foreign.get(mfn) ?? 0})`, {
          mfn: hex(mfn),
          owner: p.owner,
          count_info: countHex(p, arm64),
          mappedBy: [...this.shadow.doms].flatMap(([d, m]) => [...m].filter(([, l]) => l.mfn === mfn).map(([g, l]) => ({ domid: d, gfn: hex(g), type: l.type }))),
        }, orphan ? "orphan" : "");
        break;
      }
    }
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
