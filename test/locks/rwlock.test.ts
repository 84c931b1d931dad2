import { describe, expect, it } from "vitest";
import {
  LockBugError,
  RecursiveSpinLock,
  RwLock,
  Scheduler,
  SpinLock,
  runToCompletion,
  schedPoint,
  type LockGen,
  type SchedPoint,
} from "../../src/locks/index.js";

/** Drive a generator, collecting the yielded points as "kind:lock:cpu:mode". */
function trace(gen: LockGen<unknown>): string[] {
  const out: string[] = [];
  for (;;) {
    const r = gen.next();
    if (r.done) return out;
    const p: SchedPoint = r.value;
    out.push(`${p.kind}:${p.lock}:${p.cpu}:${p.mode}`);
  }
}

describe("RwLock", () => {
  it("yields acquire before taking and release after dropping", () => {
    const l = new RwLock("d1.p2m_lock", "p2m_lock");
    const seen: string[] = [];
    function* body(): LockGen {
      yield* l.writeLock(0);
      seen.push(`inside writer=${l.writerCpu}`);
      yield* l.writeUnlock(0);
      seen.push(`after locked=${l.isLocked()}`);
    }
    expect(trace(body())).toEqual(["acquire:d1.p2m_lock:0:write", "release:d1.p2m_lock:0:write"]);
    expect(seen).toEqual(["inside writer=0", "after locked=false"]);
  });

  it("lets readers share and makes the writer wait for all of them", () => {
    const l = new RwLock("d1.p2m_lock", "p2m_lock");
    const r0 = l.readLock(0)[Symbol.iterator]();
    expect(r0.next().value?.kind).toBe("acquire");
    expect(r0.next().done).toBe(true);
    const r1 = l.readLock(1)[Symbol.iterator]();
    r1.next();
    expect(r1.next().done).toBe(true);
    expect(l.readersHeld).toBe(2);
    expect(l.holdsRead(0) && l.holdsRead(1)).toBe(true);

    const w = l.writeLock(2)[Symbol.iterator]();
    expect(w.next().value?.kind).toBe("acquire");
    const b = w.next();
    expect(b.done).toBe(false);
    expect(b.value).toMatchObject({ kind: "blocked", lock: "d1.p2m_lock", cpu: 2, mode: "write" });
    expect(l.canTake(2, "write")).toBe(false);

    runToCompletion(l.readUnlock(0));
    expect(l.canTake(2, "write")).toBe(false); // one reader left
    expect(w.next().done).toBe(false);
    runToCompletion(l.readUnlock(1));
    expect(l.canTake(2, "write")).toBe(true);
    expect(w.next().done).toBe(true);
    expect(l.writerCpu).toBe(2);
    expect(l.canTake(0, "read")).toBe(false); // writer excludes readers
    expect(l.canTake(0, "write")).toBe(false);
  });

  it("under the scheduler, a blocked writer proceeds after the readers leave", () => {
    const l = new RwLock("d1.p2m_lock", "p2m_lock");
    const events: string[] = [];
    function* reader(cpu: number): LockGen<string> {
      yield* l.readLock(cpu);
      events.push(`r${cpu}+`);
      yield schedPoint(cpu); // stay inside across a scheduling point
      yield* l.readUnlock(cpu);
      events.push(`r${cpu}-`);
      return `reader${cpu}`;
    }
    function* writer(cpu: number): LockGen<string> {
      for (const p of l.writeLock(cpu)) {
        events.push(`w${cpu}:${p.kind}`);
        yield p;
      }
      events.push(`w${cpu}+ readers=${l.readersHeld}`);
      yield* l.writeUnlock(cpu);
      return `writer${cpu}`;
    }
    // Both readers get in (2 steps each), then the writer tries (acquire,
    // blocked), cpu0 and cpu1 leave (2 steps each), then the writer runs.
    const log = [0, 0, 2, 1, 4, 2, 6, 0, 8, 1, 10, 2];
    const res = Scheduler.replay([reader(0), reader(1), writer(2)], log);
    expect(res.outcome).toBe("completed");
    expect(res.results).toEqual(["reader0", "reader1", "writer2"]);
    expect(res.decisions).toEqual(log);
    expect(events).toEqual(["r0+", "r1+", "w2:acquire", "w2:blocked", "r0-", "r1-", "w2+ readers=0"]);
  });

  it("never lets the writer overlap a reader under random schedules", () => {
    let blockedRuns = 0;
    for (let seed = 0; seed < 200; seed++) {
      const l = new RwLock("d1.p2m_lock", "p2m_lock");
      let writerBlocked = false;
      const bad: string[] = [];
      function* reader(cpu: number): LockGen<number> {
        yield* l.readLock(cpu);
        if (l.writerCpu >= 0) bad.push(`reader${cpu} with writer`);
        yield schedPoint(cpu);
        yield* l.readUnlock(cpu);
        return cpu;
      }
      function* writer(cpu: number): LockGen<number> {
        for (const p of l.writeLock(cpu)) {
          if (p.kind === "blocked") writerBlocked = true;
          yield p;
        }
        if (l.readersHeld !== 0) bad.push("writer with readers");
        yield schedPoint(cpu);
        if (l.readersHeld !== 0) bad.push("reader entered under writer");
        yield* l.writeUnlock(cpu);
        return cpu;
      }
      const res = new Scheduler({ seed }).run([reader(0), writer(1), reader(2)]);
      expect(res.outcome).toBe("completed");
      expect(res.results).toEqual([0, 1, 2]);
      expect(bad).toEqual([]);
      if (writerBlocked) blockedRuns++;
    }
    // The property is only meaningful if contention actually happened.
    expect(blockedRuns).toBeGreaterThan(10);
  });

  it("reports a CPU re-taking an rwlock it holds as a self-deadlock", () => {
    const l = new RwLock("d1.grant_lock", "grant_lock");
    function* twice(): LockGen {
      yield* l.readLock(3);
      yield* l.readLock(3);
    }
    expect(() => runToCompletion(twice())).toThrowError(LockBugError);
    l.reset();
    expect(() => runToCompletion(twice())).toThrowError(/self-deadlock: cpu3 read-locks d1\.grant_lock.*cpu3\(read\)/);
  });

  it("runs onBeforeWriteUnlock while the write lock is still held", () => {
    const calls: string[] = [];
    const l = new RwLock("d2.p2m_lock", "p2m_lock", {
      onBeforeWriteUnlock: (lock, cpu) => calls.push(`flush cpu${cpu} held=${lock.holdsWrite(cpu)}`),
    });
    function* body(): LockGen {
      yield* l.readLock(1);
      yield* l.readUnlock(1);
      yield* l.writeLock(1);
      yield* l.writeUnlock(1);
    }
    runToCompletion(body());
    expect(calls).toEqual(["flush cpu1 held=true"]);
    expect(l.isLocked()).toBe(false);
  });

  it("rejects unlocking a lock not held in that mode", () => {
    const l = new RwLock("d1.p2m_lock", "p2m_lock");
    function* bad(): LockGen {
      yield* l.readLock(0);
      yield* l.writeUnlock(0);
    }
    expect(() => runToCompletion(bad())).toThrowError(/write_unlock of d1\.p2m_lock by cpu0.*cpu0\(read\)/);
  });
});

describe("SpinLock / RecursiveSpinLock", () => {
  it("excludes other CPUs and reports self re-locking", () => {
    const heap = new SpinLock("heap_lock", "heap_lock");
    runToCompletion((function* () { yield* heap.lock(0); })());
    expect(heap.holderCpu).toBe(0);
    expect(heap.canTake(1, "write")).toBe(false);
    expect(() => runToCompletion((function* () { yield* heap.lock(1); })())).toThrowError(
      /cpu1 blocks on heap_lock \(write\) running alone; held by cpu0\(write\)/,
    );
    expect(() => runToCompletion((function* () { yield* heap.lock(0); })())).toThrowError(/self-deadlock/);
  });

  it("lets the owner nest spin_lock_recursive and releases at depth 0", () => {
    const pal = new RecursiveSpinLock("d1.page_alloc_lock", "page_alloc_lock");
    const depths: number[] = [];
    function* body(): LockGen {
      yield* pal.lockRecursive(2);
      yield* pal.lockRecursive(2);
      depths.push(pal.recursionDepth);
      yield* pal.unlockRecursive(2);
      depths.push(pal.recursionDepth, pal.holderCpu);
      yield* pal.unlockRecursive(2);
      depths.push(pal.recursionDepth, pal.holderCpu);
    }
    runToCompletion(body());
    expect(depths).toEqual([2, 1, 2, 0, -1]);
  });

  it("treats mixing spin_lock and spin_lock_recursive on one CPU as a self-deadlock", () => {
    const pal = new RecursiveSpinLock("d1.page_alloc_lock", "page_alloc_lock");
    function* plainThenRecursive(): LockGen {
      yield* pal.lock(0);
      yield* pal.lockRecursive(0);
    }
    expect(() => runToCompletion(plainThenRecursive())).toThrowError(/self-deadlock: cpu0 spin_lock_recursive/);
    pal.reset();
    function* recursiveThenPlain(): LockGen {
      yield* pal.lockRecursive(0);
      yield* pal.lock(0);
    }
    expect(() => runToCompletion(recursiveThenPlain())).toThrowError(/self-deadlock: cpu0 spin_lock\(\)s/);
  });
});
