/**
 * Common machinery of the emulated Xen locks: scheduling points, the
 * allocation-free acquire/release operations driven with `yield*`, the error
 * types, and the held-lock assertions (Xen's ASSERT(p2m_is_write_locked()) &c.).
 *
 * Hypercall handlers are generators; every lock acquire and release is an
 * interleaving point for the deterministic scheduler. Acquire/release are not
 * generators themselves but reusable hand-written iterators cached per
 * (lock, cpu, mode): `yield*` accepts any iterable, and this keeps the
 * uncontended path free of per-call allocation (no generator objects, no
 * iterator-result objects).
 */

import type { LockDep } from "./lockdep.js";
import { twinMode } from "./twin.js";

/** Exclusive acquisitions (write locks and spin locks) use "write". */
export type LockMode = "read" | "write";

/**
 * A value yielded by a hypercall generator.
 * - "acquire": about to try `lock` (a place where another vCPU may run first);
 * - "blocked": the lock is unavailable; the vCPU must not run again until
 *   `target.canTake(cpu, mode)` holds;
 * - "release": the lock was just released;
 * - "point": a plain interleaving point the host may yield on its own.
 * Objects are cached and immutable: consumers must not keep them as history
 * keyed by identity per step (they are shared across steps).
 */
export interface SchedPoint {
  readonly kind: "acquire" | "blocked" | "release" | "point";
  /** Lock instance name ("" for plain points). */
  readonly lock: string;
  readonly cpu: number;
  readonly mode: LockMode;
  /** The lock object (null for plain points); the scheduler polls it. */
  readonly target: Lock | null;
}

/** A hypercall (or any code path) running under the scheduler. */
export type LockGen<R = void> = Generator<SchedPoint, R, unknown>;

/**
 * Run-alone mode. While a single vCPU runs to completion nobody can be
 * interleaved, so acquire and release skip their scheduling points: a lock
 * operation then finishes on its first next() and nothing bubbles up through
 * the handler's `yield*` chain. Set only by runToCompletion (scheduler.ts).
 */
export const runAlone = { on: false };

/** Reusable `yield*`-able operation; see the module comment. */
export interface LockOp extends Iterator<SchedPoint, void, unknown> {
  [Symbol.iterator](): LockOp;
}

/** A plain interleaving point: `yield schedPoint(cpu)`. Cached per cpu. */
const plainPoints: SchedPoint[] = [];
export function schedPoint(cpu: number): SchedPoint {
  let p = plainPoints[cpu];
  if (p === undefined) {
    p = Object.freeze({ kind: "point", lock: "", cpu, mode: "write", target: null }) as SchedPoint;
    plainPoints[cpu] = p;
  }
  return p;
}

export class LockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A failed held-lock assertion (models a Xen ASSERT on lock state). */
export class LockAssertionError extends LockError {}

/**
 * Misuse that would hang or corrupt a real Xen: re-taking a non-recursive
 * lock the CPU already holds, unlocking a lock not held, blocking when no
 * other CPU can ever release the lock.
 */
export class LockBugError extends LockError {
  constructor(
    readonly kind: "self-deadlock" | "not-held" | "blocked-alone",
    message: string,
  ) {
    super(message);
  }
}

export interface LockHolder {
  cpu: number;
  mode: LockMode;
}

export interface LockOptions {
  /** Lock-order checker; omitted means no lockdep tracking for this lock. */
  lockdep?: LockDep;
}

const DONE: IteratorResult<SchedPoint, void> = Object.freeze({ done: true, value: undefined });

function point(kind: SchedPoint["kind"], lock: Lock, cpu: number, mode: LockMode): IteratorResult<SchedPoint, void> {
  const value: SchedPoint = Object.freeze({ kind, lock: lock.name, cpu, mode, target: lock });
  return Object.freeze({ done: false, value });
}

// States of AcquireOp: the first next() yields the "acquire" point, the
// second is the first real attempt (where lockdep and self-deadlock checks
// happen once), later ones are retries after "blocked".
const A_START = 0, A_FIRST_TRY = 1, A_RETRY = 2;

class AcquireOp implements LockOp {
  private state = A_START;
  private readonly acquireRes: IteratorResult<SchedPoint, void>;
  private readonly blockedRes: IteratorResult<SchedPoint, void>;

  constructor(
    private readonly lock: Lock,
    private readonly cpu: number,
    private readonly mode: LockMode,
    private readonly recursive: boolean,
  ) {
    this.acquireRes = point("acquire", lock, cpu, mode);
    this.blockedRes = point("blocked", lock, cpu, mode);
  }

  [Symbol.iterator](): LockOp {
    this.state = A_START;
    return this;
  }

  next(): IteratorResult<SchedPoint, void> {
    const lock = this.lock, cpu = this.cpu, mode = this.mode;
    if (this.state === A_START) {
      this.state = A_FIRST_TRY;
      if (!runAlone.on) return this.acquireRes;
    }
    if (this.state === A_FIRST_TRY) {
      this.state = A_RETRY;
      // Nested recursive acquisition: no order information, no wait.
      if (this.recursive && lock._tryRecurse(cpu)) return DONE;
      lock._checkSelf(cpu, mode);
      const ld = lock.lockdep;
      if (ld !== null) ld._checkAcquire(cpu, lock, mode);
    }
    if (!lock._take(cpu, mode, this.recursive)) return this.blockedRes;
    const ld = lock.lockdep;
    if (ld !== null) ld._pushHeld(cpu, lock, mode);
    return DONE;
  }
}

class ReleaseOp implements LockOp {
  private released = false;
  private readonly releaseRes: IteratorResult<SchedPoint, void>;

  constructor(
    private readonly lock: Lock,
    private readonly cpu: number,
    private readonly mode: LockMode,
    private readonly recursive: boolean,
  ) {
    this.releaseRes = point("release", lock, cpu, mode);
  }

  [Symbol.iterator](): LockOp {
    this.released = false;
    return this;
  }

  next(): IteratorResult<SchedPoint, void> {
    if (this.released) return DONE;
    this.released = true;
    const lock = this.lock;
    if (lock._drop(this.cpu, this.mode, this.recursive)) {
      const ld = lock.lockdep;
      if (ld !== null) ld._popHeld(this.cpu, lock);
    }
    return runAlone.on ? DONE : this.releaseRes;
  }
}

// Index into the per-cpu op cache.
const OP_ACQ_READ = 0, OP_ACQ_WRITE = 1, OP_ACQ_REC = 2, OP_REL_READ = 3, OP_REL_WRITE = 4, OP_REL_REC = 5;

/** Base of RwLock / SpinLock / RecursiveSpinLock. */
export abstract class Lock {
  /** Lockdep class id, -1 without lockdep. */
  readonly classId: number;
  readonly lockdep: LockDep | null;
  private readonly ops: (LockOp | undefined)[][] = [];

  constructor(
    /** Instance name, e.g. "d1.p2m_lock". */
    readonly name: string,
    /** Lockdep class, e.g. "p2m_lock": order rules are about classes. */
    readonly className: string,
    opts?: LockOptions,
  ) {
    this.lockdep = opts?.lockdep ?? null;
    this.classId = this.lockdep !== null ? this.lockdep.classId(className) : -1;
  }

  /** Could `cpu` take the lock in `mode` right now (ignoring self-deadlock)? */
  abstract canTake(cpu: number, mode: LockMode): boolean;
  /** Does `cpu` hold the lock exclusively (write lock / spin lock)? */
  abstract holdsWrite(cpu: number): boolean;
  /** Does `cpu` hold the lock in any mode? */
  abstract holds(cpu: number): boolean;
  /** Is the lock held by anybody? */
  abstract isLocked(): boolean;
  /** Current holders (allocates; for diagnostics). */
  abstract holderList(): LockHolder[];
  /** Forget all holders (after an aborted run). */
  abstract reset(): void;

  /** @internal throws LockBugError if `cpu` re-takes a lock it holds. */
  abstract _checkSelf(cpu: number, mode: LockMode): void;
  /** @internal try to take; false = unavailable. */
  abstract _take(cpu: number, mode: LockMode, recursive: boolean): boolean;
  /** @internal release; true when the lock is fully released by `cpu`. */
  abstract _drop(cpu: number, mode: LockMode, recursive: boolean): boolean;
  /** @internal nested recursive acquisition by the owner; false if not applicable. */
  _tryRecurse(_cpu: number): boolean {
    return false;
  }

  /** "cpu1(write)", "cpu0(read), cpu2(read)" or "nobody". */
  describeHolders(): string {
    const h = this.holderList();
    if (h.length === 0) return "nobody";
    return h.map((x) => `cpu${x.cpu}(${x.mode})`).join(", ");
  }

  protected selfDeadlock(cpu: number, what: string): never {
    throw new LockBugError(
      "self-deadlock",
      `self-deadlock: cpu${cpu} ${what} ${this.name} which it already holds (holders: ${this.describeHolders()})`,
    );
  }

  protected notHeld(cpu: number, what: string): never {
    throw new LockBugError(
      "not-held",
      `${what} of ${this.name} by cpu${cpu}, which does not hold it that way (holders: ${this.describeHolders()})`,
    );
  }

  protected op(cpu: number, which: number): LockOp {
    let row = this.ops[cpu];
    if (row === undefined) {
      row = [];
      this.ops[cpu] = row;
    }
    let op = row[which];
    if (op === undefined) {
      const recursive = which === OP_ACQ_REC || which === OP_REL_REC;
      const mode: LockMode = which === OP_ACQ_READ || which === OP_REL_READ ? "read" : "write";
      op = which <= OP_ACQ_REC ? new AcquireOp(this, cpu, mode, recursive) : new ReleaseOp(this, cpu, mode, recursive);
      row[which] = op;
    }
    return op;
  }

  /**
   * Twin mode (twin.ts): the acquisition AcquireOp makes when running alone,
   * done on the spot. Blocking is the same "blocked-alone" bug runToCompletion
   * reports, with the same message.
   */
  acquireNow(cpu: number, mode: LockMode, recursive: boolean): void {
    if (recursive && this._tryRecurse(cpu)) return;
    this._checkSelf(cpu, mode);
    const ld = this.lockdep;
    if (ld !== null) ld._checkAcquire(cpu, this, mode);
    if (!this._take(cpu, mode, recursive)) {
      throw new LockBugError("blocked-alone", `cpu${cpu} blocks on ${this.name} (${mode}) running alone; held by ${this.describeHolders()}`);
    }
    if (ld !== null) ld._pushHeld(cpu, this, mode);
  }

  /** Twin mode: the release ReleaseOp makes, done on the spot. */
  releaseNow(cpu: number, mode: LockMode, recursive: boolean): void {
    if (this._drop(cpu, mode, recursive)) {
      const ld = this.lockdep;
      if (ld !== null) ld._popHeld(cpu, this);
    }
  }

  // In twin mode the lock methods act at once and return nothing: the twin's
  // `yield*` became a plain expression (twin.ts checks it is not an iterator).
  protected acquireOp(cpu: number, mode: LockMode): LockOp {
    if (twinMode.on) return this.acquireNow(cpu, mode, false) as unknown as LockOp;
    return this.op(cpu, mode === "read" ? OP_ACQ_READ : OP_ACQ_WRITE);
  }
  protected releaseOp(cpu: number, mode: LockMode): LockOp {
    if (twinMode.on) return this.releaseNow(cpu, mode, false) as unknown as LockOp;
    return this.op(cpu, mode === "read" ? OP_REL_READ : OP_REL_WRITE);
  }
  protected recursiveAcquireOp(cpu: number): LockOp {
    if (twinMode.on) return this.acquireNow(cpu, "write", true) as unknown as LockOp;
    return this.op(cpu, OP_ACQ_REC);
  }
  protected recursiveReleaseOp(cpu: number): LockOp {
    if (twinMode.on) return this.releaseNow(cpu, "write", true) as unknown as LockOp;
    return this.op(cpu, OP_REL_REC);
  }
}

function fail(assertion: string, lock: Lock, cpu: number | undefined): never {
  const who = cpu === undefined ? "any cpu" : `cpu${cpu}`;
  throw new LockAssertionError(
    `${assertion} failed: lock ${lock.name} (class ${lock.className}), ${who}, holders: ${lock.describeHolders()}`,
  );
}

/** ASSERT(p2m_is_write_locked(p2m)) / ASSERT(spin_is_locked(l)) for `cpu`. */
export function assertWriteLocked(lock: Lock, cpu: number): void {
  if (!lock.holdsWrite(cpu)) fail("assertWriteLocked", lock, cpu);
}

/** ASSERT(p2m_is_locked(p2m)): `cpu` holds it for read or write. */
export function assertLocked(lock: Lock, cpu: number): void {
  if (!lock.holds(cpu)) fail("assertLocked", lock, cpu);
}

/**
 * `cpu` does not hold the lock (in any mode). Without `cpu`: nobody holds it
 * (Xen's ASSERT(!spin_is_locked(l)), meaningful only when quiescent).
 */
export function assertNotLocked(lock: Lock, cpu?: number): void {
  if (cpu === undefined ? lock.isLocked() : lock.holds(cpu)) fail("assertNotLocked", lock, cpu);
}
