/**
 * Emulated Xen rwlock_t / percpu_rwlock_t, used for the per-domain P2M lock
 * (`p2m->lock`) and the grant-table lock (`gt->lock`).
 *
 * Semantics: readers share, a writer excludes everybody, no recursion in any
 * mode (re-taking is reported as a self-deadlock, as it would hang Xen's
 * qrwlock once a writer queues). Admission is reader-preferring: a queued
 * writer does not hold back new readers. Xen's qrwlock is fair, so a few
 * real deadlocks that need a queued writer as the third party are not
 * reproduced by the scheduler; lockdep still reports their lock-order cause
 * because read acquisitions take part in the order graph.
 */

import { Lock, type LockHolder, type LockMode, type LockOp, type LockOptions } from "./lock.js";

export interface RwLockOptions extends LockOptions {
  /** See RwLock.onBeforeWriteUnlock. */
  onBeforeWriteUnlock?: (lock: RwLock, cpu: number) => void;
}

export class RwLock extends Lock {
  /**
   * Runs in writeUnlock while the write lock is still held. Models
   * p2m_write_unlock(), which completes the deferred TLB flush (need_flush)
   * before write_unlock so no CPU sees the new tables with stale TLBs.
   */
  onBeforeWriteUnlock: ((lock: RwLock, cpu: number) => void) | null;

  private writer = -1;
  private readerCount = 0;
  // Indexed by cpu; Uint8Array keeps membership tests allocation-free.
  private readers = new Uint8Array(16);

  constructor(name: string, className: string, opts?: RwLockOptions) {
    super(name, className, opts);
    this.onBeforeWriteUnlock = opts?.onBeforeWriteUnlock ?? null;
  }

  /** `yield* lock.readLock(cpu)` */
  readLock(cpu: number): LockOp {
    return this.acquireOp(cpu, "read");
  }
  /** `yield* lock.readUnlock(cpu)` */
  readUnlock(cpu: number): LockOp {
    return this.releaseOp(cpu, "read");
  }
  /** `yield* lock.writeLock(cpu)` */
  writeLock(cpu: number): LockOp {
    return this.acquireOp(cpu, "write");
  }
  /** `yield* lock.writeUnlock(cpu)`; runs onBeforeWriteUnlock first. */
  writeUnlock(cpu: number): LockOp {
    return this.releaseOp(cpu, "write");
  }

  /** Current writer cpu, or -1. */
  get writerCpu(): number {
    return this.writer;
  }
  /** Number of CPUs holding the read lock. */
  get readersHeld(): number {
    return this.readerCount;
  }

  canTake(_cpu: number, mode: LockMode): boolean {
    return mode === "read" ? this.writer < 0 : this.writer < 0 && this.readerCount === 0;
  }

  holdsWrite(cpu: number): boolean {
    return this.writer === cpu;
  }

  holdsRead(cpu: number): boolean {
    return cpu < this.readers.length && this.readers[cpu] !== 0;
  }

  holds(cpu: number): boolean {
    return this.writer === cpu || this.holdsRead(cpu);
  }

  isLocked(): boolean {
    return this.writer >= 0 || this.readerCount > 0;
  }

  holderList(): LockHolder[] {
    const out: LockHolder[] = [];
    if (this.writer >= 0) out.push({ cpu: this.writer, mode: "write" });
    for (let c = 0; c < this.readers.length; c++) if (this.readers[c] !== 0) out.push({ cpu: c, mode: "read" });
    return out;
  }

  reset(): void {
    this.writer = -1;
    this.readerCount = 0;
    this.readers.fill(0);
  }

  _checkSelf(cpu: number, mode: LockMode): void {
    if (this.holds(cpu)) this.selfDeadlock(cpu, mode === "read" ? "read-locks" : "write-locks");
  }

  _take(cpu: number, mode: LockMode): boolean {
    if (this.writer >= 0) return false;
    if (mode === "write") {
      if (this.readerCount !== 0) return false;
      this.writer = cpu;
      return true;
    }
    if (cpu >= this.readers.length) {
      const grown = new Uint8Array(Math.max(cpu + 1, this.readers.length * 2));
      grown.set(this.readers);
      this.readers = grown;
    }
    this.readers[cpu] = 1;
    this.readerCount++;
    return true;
  }

  _drop(cpu: number, mode: LockMode): boolean {
    if (mode === "write") {
      if (this.writer !== cpu) this.notHeld(cpu, "write_unlock");
      const hook = this.onBeforeWriteUnlock;
      if (hook !== null) hook(this, cpu);
      this.writer = -1;
      return true;
    }
    if (!this.holdsRead(cpu)) this.notHeld(cpu, "read_unlock");
    this.readers[cpu] = 0;
    this.readerCount--;
    return true;
  }
}
