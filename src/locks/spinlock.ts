/**
 * Emulated Xen spinlock_t: plain (heap_lock, vmid_alloc_lock) and the
 * recursive form used for d->page_alloc_lock in the relinquish/free paths.
 *
 * Xen's recursive spinlock is the same lock word taken through
 * spin_lock_recursive(), which records the owner CPU and a depth. Mixing the
 * two entry points on one CPU hangs real Xen (spin_lock on a lock the CPU
 * holds recursively spins forever; spin_lock_recursive on a lock the CPU
 * took with spin_lock does not see itself as owner), so both are reported as
 * self-deadlocks here.
 */

import { Lock, type LockHolder, type LockMode, type LockOp } from "./lock.js";

export class SpinLock extends Lock {
  protected holder = -1;

  /** `yield* lock.lock(cpu)` (spin_lock) */
  lock(cpu: number): LockOp {
    return this.acquireOp(cpu, "write");
  }
  /** `yield* lock.unlock(cpu)` (spin_unlock) */
  unlock(cpu: number): LockOp {
    return this.releaseOp(cpu, "write");
  }

  /** Holding cpu, or -1. */
  get holderCpu(): number {
    return this.holder;
  }

  canTake(_cpu: number, _mode: LockMode): boolean {
    return this.holder < 0;
  }
  holdsWrite(cpu: number): boolean {
    return this.holder === cpu;
  }
  holds(cpu: number): boolean {
    return this.holder === cpu;
  }
  isLocked(): boolean {
    return this.holder >= 0;
  }
  holderList(): LockHolder[] {
    return this.holder >= 0 ? [{ cpu: this.holder, mode: "write" }] : [];
  }
  reset(): void {
    this.holder = -1;
  }

  _checkSelf(cpu: number, _mode: LockMode): void {
    if (this.holder === cpu) this.selfDeadlock(cpu, "spin_lock()s");
  }

  _take(cpu: number, _mode: LockMode, _recursive: boolean): boolean {
    if (this.holder >= 0) return false;
    this.holder = cpu;
    return true;
  }

  _drop(cpu: number, _mode: LockMode, _recursive: boolean): boolean {
    if (this.holder !== cpu) this.notHeld(cpu, "spin_unlock");
    this.holder = -1;
    return true;
  }
}

export class RecursiveSpinLock extends SpinLock {
  private depth = 0;
  // Whether the current holder entered through spin_lock_recursive().
  private recursive = false;

  /** `yield* lock.lockRecursive(cpu)` (spin_lock_recursive) */
  lockRecursive(cpu: number): LockOp {
    return this.recursiveAcquireOp(cpu);
  }
  /** `yield* lock.unlockRecursive(cpu)` (spin_unlock_recursive) */
  unlockRecursive(cpu: number): LockOp {
    return this.recursiveReleaseOp(cpu);
  }

  /** Recursion depth of the current holder (0 when free). */
  get recursionDepth(): number {
    return this.depth;
  }

  reset(): void {
    super.reset();
    this.depth = 0;
    this.recursive = false;
  }

  _tryRecurse(cpu: number): boolean {
    if (this.holder !== cpu || !this.recursive) return false;
    this.depth++;
    return true;
  }

  _checkSelf(cpu: number, _mode: LockMode): void {
    if (this.holder !== cpu) return;
    this.selfDeadlock(
      cpu,
      this.recursive ? "spin_lock()s (non-recursive entry)" : "spin_lock_recursive()s (held via spin_lock)",
    );
  }

  _take(cpu: number, _mode: LockMode, recursive: boolean): boolean {
    if (this.holder >= 0) return false;
    this.holder = cpu;
    this.depth = 1;
    this.recursive = recursive;
    return true;
  }

  _drop(cpu: number, _mode: LockMode, recursive: boolean): boolean {
    if (this.holder !== cpu || this.recursive !== recursive) {
      this.notHeld(cpu, recursive ? "spin_unlock_recursive" : "spin_unlock");
    }
    if (--this.depth > 0) return false;
    this.holder = -1;
    this.recursive = false;
    return true;
  }
}
