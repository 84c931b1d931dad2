/**
 * Lock-order checker in the style of Linux lockdep.
 *
 * Orders are learnt per lock *class* (all domains' P2M locks are one class),
 * so an inversion is found as soon as both orders have been seen once, on
 * any CPUs and at any times, without the unlucky interleaving that would
 * actually deadlock. The check runs when an acquisition is attempted (before
 * waiting), so a run that really deadlocks still gets its report.
 *
 * Read acquisitions are treated as write acquisitions (conservative: with a
 * fair rwlock a queued writer turns read-read orders into real deadlocks),
 * except that a read of a class while holding a read of the same class is
 * not a self-cycle.
 */

import { LockError, type Lock, type LockMode } from "./lock.js";

export interface LockOrderEdge {
  /** Class held. */
  from: string;
  /** Class taken while holding `from`. */
  to: string;
  /** How the edge was first seen: "held A then took B (cpu N, context ctx)". */
  description: string;
}

export interface LockOrderViolation {
  /** "inversion": cycle through other classes; "recursive": same class twice. */
  kind: "inversion" | "recursive";
  /** The acquisition that closed the cycle (held A, took B). */
  newEdge: LockOrderEdge;
  /** Previously recorded path B -> ... -> A (empty for "recursive"). */
  existingPath: LockOrderEdge[];
  message: string;
}

export class LockOrderError extends LockError {
  constructor(readonly violation: LockOrderViolation) {
    super(violation.message);
  }
}

export interface LockDepOptions {
  /** Throw LockOrderError from the offending acquisition (default false). */
  throwOnViolation?: boolean;
}

// Edge keys pack (from, to) so descriptions survive growth of the matrix.
const KEY_SHIFT = 65536;

export class LockDep {
  throwOnViolation: boolean;
  readonly violations: LockOrderViolation[] = [];

  private readonly classIds = new Map<string, number>();
  private readonly classNames: string[] = [];
  // Adjacency matrix (1 byte per pair) for the hot "edge already known?" test;
  // successor lists for the rare cycle search.
  private cap = 64;
  private matrix = new Uint8Array(64 * 64);
  private readonly succ: number[][] = [];
  private readonly edgeDesc = new Map<number, string>();

  // Per cpu: held locks and their modes, in acquisition order.
  private readonly heldLocks: Lock[][] = [];
  private readonly heldModes: LockMode[][] = [];
  private readonly contexts: string[] = [];

  constructor(opts?: LockDepOptions) {
    this.throwOnViolation = opts?.throwOnViolation ?? false;
  }

  /** Id of a lock class (registered on first use). */
  classId(className: string): number {
    let id = this.classIds.get(className);
    if (id === undefined) {
      id = this.classNames.length;
      if (id >= KEY_SHIFT) throw new LockError("lockdep: too many lock classes");
      this.classIds.set(className, id);
      this.classNames.push(className);
      this.succ.push([]);
      if (id >= this.cap) this.grow();
    }
    return id;
  }

  /** Label the code path `cpu` is running (e.g. "XENMEM_add_to_physmap"). */
  setContext(cpu: number, ctx: string): void {
    this.contexts[cpu] = ctx;
  }

  context(cpu: number): string {
    return this.contexts[cpu] ?? "";
  }

  /** Instance names held by `cpu`, outermost first. */
  held(cpu: number): string[] {
    return (this.heldLocks[cpu] ?? []).map((l) => l.name);
  }

  /** Has the order "holding `from`, took `to`" been observed? */
  hasEdge(fromClass: string, toClass: string): boolean {
    const a = this.classIds.get(fromClass), b = this.classIds.get(toClass);
    return a !== undefined && b !== undefined && this.matrix[a * this.cap + b] !== 0;
  }

  /** All observed orders. */
  edges(): LockOrderEdge[] {
    const out: LockOrderEdge[] = [];
    for (let a = 0; a < this.succ.length; a++) for (const b of this.succ[a]) out.push(this.edge(a, b));
    return out;
  }

  /** Forget held-lock stacks (after an aborted run); the order graph is kept. */
  resetHeld(): void {
    for (const s of this.heldLocks) if (s) s.length = 0;
    for (const s of this.heldModes) if (s) s.length = 0;
  }

  /** @internal called by the lock before `cpu` starts waiting for `lock`. */
  _checkAcquire(cpu: number, lock: Lock, mode: LockMode): void {
    const stack = this.heldLocks[cpu];
    if (stack === undefined || stack.length === 0) return;
    const modes = this.heldModes[cpu];
    const b = lock.classId;
    const cap = this.cap, m = this.matrix;
    for (let i = 0; i < stack.length; i++) {
      const a = stack[i].classId;
      if (m[a * cap + b] !== 0) continue;
      if (a === b && mode === "read" && modes[i] === "read") continue;
      this.addEdge(a, b, cpu, stack[i], lock);
    }
  }

  /** @internal `cpu` now holds `lock`. */
  _pushHeld(cpu: number, lock: Lock, mode: LockMode): void {
    let s = this.heldLocks[cpu];
    if (s === undefined) {
      s = [];
      this.heldLocks[cpu] = s;
      this.heldModes[cpu] = [];
    }
    s.push(lock);
    this.heldModes[cpu].push(mode);
  }

  /** @internal `cpu` released `lock` (not necessarily the innermost). */
  _popHeld(cpu: number, lock: Lock): void {
    const s = this.heldLocks[cpu];
    if (s === undefined) return;
    const modes = this.heldModes[cpu];
    for (let i = s.length - 1; i >= 0; i--) {
      if (s[i] === lock) {
        if (i === s.length - 1) {
          s.pop();
          modes.pop();
        } else {
          s.splice(i, 1);
          modes.splice(i, 1);
        }
        return;
      }
    }
  }

  private addEdge(a: number, b: number, cpu: number, heldLock: Lock, newLock: Lock): void {
    this.matrix[a * this.cap + b] = 1;
    this.succ[a].push(b);
    const ctx = this.contexts[cpu];
    const desc =
      `held ${this.classNames[a]} then took ${this.classNames[b]} ` +
      `(cpu ${cpu}, context ${ctx === undefined || ctx === "" ? "?" : ctx}; ${heldLock.name} -> ${newLock.name})`;
    this.edgeDesc.set(a * KEY_SHIFT + b, desc);

    let v: LockOrderViolation | null = null;
    if (a === b) {
      const newEdge = this.edge(a, b);
      v = {
        kind: "recursive",
        newEdge,
        existingPath: [],
        message: `lockdep: recursive locking of class ${this.classNames[a]}: ${newEdge.description}`,
      };
    } else {
      // Edges are only added here, so a cycle through the new edge must be b ->...-> a.
      const path = this.findPath(b, a);
      if (path !== null) {
        const newEdge = this.edge(a, b);
        const chain = [this.classNames[b], ...path.map((e) => e.to)].join(" -> ");
        v = {
          kind: "inversion",
          newEdge,
          existingPath: path,
          message:
            `lockdep: lock order inversion between ${this.classNames[a]} and ${this.classNames[b]}: ` +
            `new order ${this.classNames[a]} -> ${this.classNames[b]} [${newEdge.description}] ` +
            `closes a cycle with the recorded order ${chain} [` +
            path.map((e) => e.description).join("; ") +
            `]`,
        };
      }
    }
    if (v !== null) {
      this.violations.push(v);
      if (this.throwOnViolation) throw new LockOrderError(v);
    }
  }

  private edge(a: number, b: number): LockOrderEdge {
    return { from: this.classNames[a], to: this.classNames[b], description: this.edgeDesc.get(a * KEY_SHIFT + b) ?? "" };
  }

  // Breadth-first, so the reported path is a shortest one.
  private findPath(from: number, to: number): LockOrderEdge[] | null {
    const parent = new Int32Array(this.classNames.length).fill(-1);
    parent[from] = from;
    const queue = [from];
    for (let qi = 0; qi < queue.length; qi++) {
      const x = queue[qi];
      if (x === to) {
        const path: LockOrderEdge[] = [];
        for (let y = to; y !== from; y = parent[y]) path.push(this.edge(parent[y], y));
        return path.reverse();
      }
      for (const y of this.succ[x]) {
        if (parent[y] < 0) {
          parent[y] = x;
          queue.push(y);
        }
      }
    }
    return null;
  }

  private grow(): void {
    const old = this.matrix, oldCap = this.cap;
    const cap = oldCap * 2;
    const m = new Uint8Array(cap * cap);
    for (let a = 0; a < oldCap; a++) m.set(old.subarray(a * oldCap, (a + 1) * oldCap), a * cap);
    this.matrix = m;
    this.cap = cap;
  }
}
