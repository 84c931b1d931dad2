import { describe, expect, it } from "vitest";
import {
  LockAssertionError,
  RwLock,
  SpinLock,
  assertLocked,
  assertNotLocked,
  assertWriteLocked,
  runToCompletion,
  type LockGen,
} from "../../src/locks/index.js";

// Stand-ins for Xen paths that assert their lock (FS §6.1).
function __p2m_set_entry(p2m: RwLock, cpu: number): string {
  assertWriteLocked(p2m, cpu);
  return "set";
}
function p2m_get_entry(p2m: RwLock, cpu: number): string {
  assertLocked(p2m, cpu);
  return "got";
}

describe("held-lock assertions", () => {
  it("__p2m_set_entry under only the read lock fails the write-lock assertion", () => {
    const p2m = new RwLock("d1.p2m_lock", "p2m_lock");
    function* readLockedCaller(cpu: number): LockGen<string> {
      yield* p2m.readLock(cpu);
      const r = __p2m_set_entry(p2m, cpu);
      yield* p2m.readUnlock(cpu);
      return r;
    }
    let err: unknown;
    try {
      runToCompletion(readLockedCaller(1));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockAssertionError);
    expect((err as Error).message).toBe(
      "assertWriteLocked failed: lock d1.p2m_lock (class p2m_lock), cpu1, holders: cpu1(read)",
    );
  });

  it("passes with the write lock, and fails when another CPU is the writer", () => {
    const p2m = new RwLock("d1.p2m_lock", "p2m_lock");
    function* caller(cpu: number): LockGen<string> {
      yield* p2m.writeLock(cpu);
      const r = __p2m_set_entry(p2m, cpu) + "/" + p2m_get_entry(p2m, cpu);
      yield* p2m.writeUnlock(cpu);
      return r;
    }
    expect(runToCompletion(caller(0))).toBe("set/got");

    runToCompletion((function* () { yield* p2m.writeLock(2); })());
    // Per-CPU ownership: cpu0 may not rely on cpu2's write lock.
    expect(() => __p2m_set_entry(p2m, 0)).toThrowError(/assertWriteLocked failed: .*cpu0, holders: cpu2\(write\)/);
    expect(() => p2m_get_entry(p2m, 0)).toThrowError(LockAssertionError);
    expect(__p2m_set_entry(p2m, 2)).toBe("set");
  });

  it("p2m_get_entry without any lock fails assertLocked", () => {
    const p2m = new RwLock("d3.p2m_lock", "p2m_lock");
    expect(() => p2m_get_entry(p2m, 0)).toThrowError(
      "assertLocked failed: lock d3.p2m_lock (class p2m_lock), cpu0, holders: nobody",
    );
  });

  it("assertNotLocked checks one CPU, or everybody without a CPU", () => {
    const heap = new SpinLock("heap_lock", "heap_lock");
    assertNotLocked(heap);
    runToCompletion((function* () { yield* heap.lock(1); })());
    assertNotLocked(heap, 0);
    expect(() => assertNotLocked(heap, 1)).toThrowError(/assertNotLocked failed: lock heap_lock .*cpu1, holders: cpu1\(write\)/);
    expect(() => assertNotLocked(heap)).toThrowError(/any cpu, holders: cpu1\(write\)/);
    assertWriteLocked(heap, 1);
  });
});
