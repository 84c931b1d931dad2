// Observers of a running machine: hypercall entry/exit, P2M entry changes,
// lock events.
//
// Cost model: with no observer installed nothing is wrapped. observe()
// installs an own-property wrapper over `machine.hypercall` (and over the
// `_take`/`_drop` of the machine's locks when a lock observer is present);
// removing the last observer deletes those wrappers, so the machine runs the
// unmodified prototype methods again. P2M changes come from the core's
// P2M-change ring (header H_HOOKS bit 0, assembly/p2m/log.ts), drained after
// every hypercall; the bit is set only while a P2M observer is installed.

import type { HypercallRequest, HypercallResult } from "../machine/api.js";
import { Lock } from "../locks/index.js";
import { XenmmArgumentError, XenmmStateError, checkObject } from "../api/errors.js";
import { viewsOf } from "../api/views.js";
import { H, headerAddress, type InspectCore } from "../inspect/core-info.js";

export interface HypercallContext { caller: number; vcpu?: number; [k: string]: unknown }

export interface HypercallEntryEvent {
  /** Sequence number of the hypercall since the first observer was installed on this machine. */
  seq: number;
  /** The request; for raw hypercalls (machine.hypercallRaw) the RawCall. */
  req: HypercallRequest;
  ctx: HypercallContext | undefined;
  /** true for machine.hypercallRaw (number, cmd, guest address). */
  raw: boolean;
}
export interface HypercallExitEvent extends HypercallEntryEvent {
  /** The result, or undefined if the hypercall threw (then `error` is set). */
  result: HypercallResult | undefined;
  error?: unknown;
}
/** Level word of a P2M-change record (assembly/p2m/log.ts): level in the low byte, flags above. */
export const P2M_LOG_LEVEL_MASK = 0xff;
export const P2M_LOG_BREAK = 1 << 8;

export interface P2mChangeEvent {
  /** The hypercall during which the entry changed (-1: outside a hypercall). */
  seq: number;
  /** Core domain slot (1-based) and, when the machine maps it, the domid. */
  slot: number;
  domid: number | undefined;
  gfn: bigint;
  level: number;
  old: bigint;
  new: bigint;
  /** The zero written as the "break" of break-before-make: the next change of this entry is its replacement. */
  breakBeforeMake: boolean;
}
export interface LockEvent {
  kind: "acquire" | "contended" | "release";
  lock: string;
  lockClass: string;
  cpu: number;
  mode: "read" | "write";
  seq: number;
}

export interface Observer {
  hypercallEntry?(e: HypercallEntryEvent): void;
  hypercallExit?(e: HypercallExitEvent): void;
  p2mChange?(e: P2mChangeEvent): void;
  lock?(e: LockEvent): void;
  /** P2M records overwritten in the ring before they could be read. */
  p2mLost?(count: number): void;
}

/** What hooks need from a machine. */
export interface HookableMachine {
  hypercall(req: HypercallRequest, ctx?: any): any;
}

const OBSERVER_KEYS = ["hypercallEntry", "hypercallExit", "p2mChange", "lock", "p2mLost"] as const;

interface HookState {
  observers: Observer[];
  seq: number;
  current: number;
  /** Wrapped methods and their instance-own descriptors to restore (undefined = none: delete). */
  own: Map<string, PropertyDescriptor | undefined>;
  p2mSeen: bigint;
  wrappedLocks: Map<Lock, { take: PropertyDescriptor | undefined; drop: PropertyDescriptor | undefined }>;
  // derived from observers on every change (refresh)
  entry: Observer[];
  exit: Observer[];
  hasP2m: boolean;
  hasLock: boolean;
  /** Domain count when locks were last scanned (new domains bring new locks). */
  lockScan: number;
}
const states = new WeakMap<object, HookState>();

function coreOf(m: any): InspectCore | undefined {
  const c = m?.core ?? m?.exports;
  return c && c.memory instanceof WebAssembly.Memory ? c : undefined;
}

function domidOfSlot(m: any, slot: number): number | undefined {
  if (typeof m.domidOfSlot === "function") return m.domidOfSlot(slot);
  const doms = m.domains;
  const it = doms instanceof Map ? doms.values() : Array.isArray(doms) ? doms.values() : undefined;
  if (it) for (const d of it) if (d && d.slot === slot) return d.domid;
  return undefined;
}

/** Install an observer; returns the function that removes it. */
export function observe(machine: HookableMachine, observer: Observer): () => void {
  checkObject("machine", machine);
  if (typeof (machine as any).hypercall !== "function") throw new XenmmArgumentError("machine", "has no hypercall() method");
  checkObject("observer", observer);
  if (!OBSERVER_KEYS.some((k) => typeof (observer as any)[k] === "function"))
    throw new XenmmArgumentError("observer", `needs at least one of ${OBSERVER_KEYS.join(", ")}`);
  let st = states.get(machine);
  if (!st) {
    st = { observers: [], seq: 0, current: -1, own: new Map(), p2mSeen: 0n, wrappedLocks: new Map(), entry: [], exit: [], hasP2m: false, hasLock: false, lockScan: -1 };
    states.set(machine, st);
  }
  if (st.observers.length === 0) {
    wrapHypercall(machine, st, "hypercall", false);
    if (typeof (machine as any).hypercallRaw === "function") wrapHypercall(machine, st, "hypercallRaw", true);
  }
  st.observers.push(observer);
  refresh(machine, st);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    const s = states.get(machine)!;
    if (s.observers.some((o) => o.p2mChange)) drainP2m(machine, s);
    s.observers = s.observers.filter((o) => o !== observer);
    refresh(machine, s);
    if (s.observers.length === 0) unwrapHypercall(machine, s);
  };
}

/** Deliver pending P2M-change events now (e.g. after createDomain, which is not a hypercall). */
export function flushP2mEvents(machine: object): void {
  const st = states.get(machine);
  if (st) drainIfNeeded(machine, st);
}

/** Number of observers installed on a machine. */
export function observerCount(machine: object): number { return states.get(machine)?.observers.length ?? 0; }

function wrapHypercall(machine: any, st: HookState, method: string, raw: boolean): void {
  st.own.set(method, Object.getOwnPropertyDescriptor(machine, method));
  const inner: (req: HypercallRequest, ctx?: any) => any = machine[method];
  const finish = (seq: number, req: HypercallRequest, ctx: any, result: any, error: unknown, threw: boolean) => {
    if (st.hasP2m) drainP2m(machine, st);
    if (st.exit.length) {
      const exit: HypercallExitEvent = { seq, req, ctx, raw, result: threw ? undefined : result };
      if (threw) exit.error = error;
      for (const o of st.exit) o.hypercallExit!(exit);
    }
    st.current = -1;
  };
  const wrapped = function (this: any, req: HypercallRequest, ctx?: any) {
    const seq = st.seq++;
    if (st.hasP2m) drainP2m(machine, st); // changes made outside hypercalls (domain creation) get seq -1
    if (st.hasLock) wrapLocks(machine, st, false);
    st.current = seq;
    if (st.entry.length) {
      const entry: HypercallEntryEvent = { seq, req, ctx, raw };
      for (const o of st.entry) o.hypercallEntry!(entry);
    }
    let r: any;
    try {
      r = inner.call(this, req, ctx);
    } catch (e) {
      finish(seq, req, ctx, undefined, e, true);
      throw e;
    }
    if (r !== null && typeof r === "object" && typeof r.then === "function") {
      return r.then((v: any) => { finish(seq, req, ctx, v, undefined, false); return v; }, (e: unknown) => { finish(seq, req, ctx, undefined, e, true); throw e; });
    }
    finish(seq, req, ctx, r, undefined, false);
    return r;
  };
  Object.defineProperty(machine, method, { value: wrapped, configurable: true, writable: true, enumerable: false });
}

function unwrapHypercall(machine: any, st: HookState): void {
  // reverse order of wrapping (keeps V8's fast-properties shape)
  for (const [method, d] of [...st.own].reverse()) {
    if (d) Object.defineProperty(machine, method, d);
    else delete machine[method];
  }
  st.own.clear();
}

/** Turn the core's P2M log and the lock wrappers on/off to match the observers. */
function refresh(machine: any, st: HookState): void {
  const wantP2m = st.observers.some((o) => o.p2mChange);
  st.entry = st.observers.filter((o) => typeof o.hypercallEntry === "function");
  st.exit = st.observers.filter((o) => typeof o.hypercallExit === "function");
  st.hasLock = st.observers.some((o) => typeof o.lock === "function");
  const core = coreOf(machine);
  if (core) {
    const a = headerAddress(core) + H.HOOKS;
    const v = viewsOf(core);
    const cur = v.u32(a);
    if (wantP2m) {
      if (!(cur & 1)) {
        const logPtr = (core as any).p2m_log_ptr?.() ?? 0;
        if (!logPtr) throw new XenmmStateError("this core build has no P2M-change log (p2m_log_ptr() is 0): cannot observe P2M changes");
        st.p2mSeen = (core as any).p2m_log_count();
        v.dataView.setUint32(a, cur | 1, true);
      }
    } else if (cur & 1) v.dataView.setUint32(a, cur & ~1, true);
  } else if (wantP2m) {
    throw new XenmmStateError("machine has no core instance: cannot observe P2M changes");
  }
  st.hasP2m = wantP2m;
  if (st.hasLock) wrapLocks(machine, st, true);
  else unwrapLocks(st);
}

function drainIfNeeded(machine: any, st: HookState): void {
  if (st.hasP2m) drainP2m(machine, st);
}

/** Read P2M-change records appended since the last drain. */
function drainP2m(machine: any, st: HookState): void {
  const core = coreOf(machine) as any;
  if (!core) return;
  const total: bigint = core.p2m_log_count();
  if (total === st.p2mSeen) return;
  const p: number = core.p2m_log_ptr();
  const v = viewsOf(core);
  const cap = BigInt(v.u32(p));
  let from = st.p2mSeen;
  if (total - from > cap) {
    const lost = Number(total - from - cap);
    for (const o of st.observers) o.p2mLost?.(lost);
    from = total - cap;
  }
  const dv = v.dataView;
  for (let i = from; i < total; i++) {
    const r = p + 16 + Number(i & (cap - 1n)) * 32;
    const slot = dv.getUint32(r + 28, true);
    const ev: P2mChangeEvent = {
      seq: st.current, slot, domid: domidOfSlot(machine, slot),
      gfn: dv.getBigUint64(r, true), level: dv.getUint32(r + 24, true) & P2M_LOG_LEVEL_MASK,
      old: dv.getBigUint64(r + 8, true), new: dv.getBigUint64(r + 16, true),
      breakBeforeMake: (dv.getUint32(r + 24, true) & P2M_LOG_BREAK) !== 0,
    };
    for (const o of st.observers) o.p2mChange?.(ev);
  }
  st.p2mSeen = total;
}

// ---- locks -------------------------------------------------------------------

/** Every Lock reachable from the machine's fields (depth-limited walk). */
export function machineLocks(machine: object): Lock[] {
  const out = new Set<Lock>();
  const seen = new Set<unknown>();
  const visit = (v: unknown, depth: number) => {
    if (!v || typeof v !== "object" || seen.has(v) || depth > 4) return;
    seen.add(v);
    if (v instanceof Lock) { out.add(v); return; }
    if (ArrayBuffer.isView(v) || v instanceof WebAssembly.Memory || v instanceof ArrayBuffer) return;
    if (v instanceof Map) { for (const x of v.values()) visit(x, depth + 1); return; }
    if (v instanceof Set || Array.isArray(v)) { for (const x of v) visit(x, depth + 1); return; }
    for (const k of Object.keys(v)) {
      if (k === "core" || k === "exports") continue;
      visit((v as any)[k], depth + 1);
    }
  };
  visit(machine, 0);
  return [...out];
}

function wrapLocks(machine: object, st: HookState, force: boolean): void {
  const doms = (machine as any).domains;
  const n = doms instanceof Map ? doms.size : -2;
  if (!force && n === st.lockScan && n !== -2) return;
  st.lockScan = n;
  for (const lock of machineLocks(machine)) {
    if (st.wrappedLocks.has(lock)) continue;
    const l = lock as any;
    const take = Object.getOwnPropertyDescriptor(l, "_take");
    const drop = Object.getOwnPropertyDescriptor(l, "_drop");
    const origTake = l._take, origDrop = l._drop;
    const emit = (kind: LockEvent["kind"], cpu: number, mode: "read" | "write") => {
      const ev: LockEvent = { kind, lock: lock.name, lockClass: lock.className, cpu, mode, seq: st.current };
      for (const o of st.observers) o.lock?.(ev);
    };
    l._take = function (cpu: number, mode: "read" | "write", recursive: boolean) {
      const ok = origTake.call(this, cpu, mode, recursive);
      emit(ok ? "acquire" : "contended", cpu, mode);
      return ok;
    };
    l._drop = function (cpu: number, mode: "read" | "write", recursive: boolean) {
      const r = origDrop.call(this, cpu, mode, recursive);
      emit("release", cpu, mode);
      return r;
    };
    st.wrappedLocks.set(lock, { take, drop });
  }
}

function unwrapLocks(st: HookState): void {
  for (const [lock, d] of st.wrappedLocks) {
    const l = lock as any;
    // reverse order of addition: V8 then rolls the shape back instead of
    // switching the lock to slow (dictionary) properties
    if (d.drop) Object.defineProperty(l, "_drop", d.drop); else delete l._drop;
    if (d.take) Object.defineProperty(l, "_take", d.take); else delete l._take;
  }
  st.wrappedLocks.clear();
  st.lockScan = -1;
}
