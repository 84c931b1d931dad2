import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  LockBugError,
  LockDep,
  RwLock,
  Scheduler,
  SpinLock,
  runToCompletion,
  schedPoint,
  type LockGen,
} from "../../src/locks/index.js";

/** Three vCPUs contending on two locks; `order` records who did what when. */
function scenario() {
  const order: string[] = [];
  const p2m = new RwLock("d1.p2m_lock", "p2m_lock");
  const heap = new SpinLock("heap_lock", "heap_lock");
  function* vcpu(cpu: number, rounds: number): LockGen<string> {
    let acc = "";
    for (let i = 0; i < rounds; i++) {
      if ((cpu + i) % 2 === 0) yield* p2m.writeLock(cpu);
      else yield* p2m.readLock(cpu);
      order.push(`${cpu}.${i}`);
      yield* heap.lock(cpu);
      acc += `${cpu}${i}`;
      yield schedPoint(cpu);
      yield* heap.unlock(cpu);
      if ((cpu + i) % 2 === 0) yield* p2m.writeUnlock(cpu);
      else yield* p2m.readUnlock(cpu);
    }
    return acc;
  }
  return { order, gens: () => [vcpu(0, 3), vcpu(1, 4), vcpu(2, 2)] };
}

describe("Scheduler", () => {
  it("is deterministic: same seed, same decisions and interleaving", () => {
    const a = scenario(), b = scenario();
    const ra = new Scheduler({ seed: 1234 }).run(a.gens());
    const rb = new Scheduler({ seed: 1234 }).run(b.gens());
    expect(ra.outcome).toBe("completed");
    expect(ra.results).toEqual(["000102", "10111213", "2021"]);
    expect(ra.decisions).toEqual(rb.decisions);
    expect(a.order).toEqual(b.order);
    expect(ra.steps).toBe(rb.steps);
    expect(ra.decisions.length % 2).toBe(0);
    expect(ra.decisions.slice(0, 1)).toEqual([0]);
  });

  it("lenient replay reproduces a full log exactly and completes any sub-log", () => {
    const a = scenario();
    const ra = new Scheduler({ seed: 77 }).run(a.gens());
    const b = scenario();
    const rb = new Scheduler().replayLenient(b.gens(), ra.decisions);
    expect(rb.outcome).toBe("completed");
    expect(b.order).toEqual(a.order);
    expect(rb.decisions).toEqual(ra.decisions);
    // Drop every other switch: still a valid schedule, same results, fewer switches.
    const sub = ra.decisions.filter((_, i) => Math.floor(i / 2) % 2 === 0);
    const c = scenario();
    const rc = new Scheduler().replayLenient(c.gens(), sub);
    expect(rc.outcome).toBe("completed");
    expect(rc.results).toEqual(["000102", "10111213", "2021"]);
    expect(rc.decisions.length).toBeLessThanOrEqual(ra.decisions.length);
    // A logged cpu that cannot run (out of range) is ignored, not an error.
    const d = scenario();
    expect(new Scheduler().replayLenient(d.gens(), [0, 9, 3, 7]).outcome).toBe("completed");
  });

  it("different seeds give different interleavings", () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const s = scenario();
      new Scheduler({ seed }).run(s.gens());
      seen.add(s.order.join(","));
    }
    expect(seen.size).toBeGreaterThan(5);
  });

  it("replaying the recorded decisions reproduces the run exactly", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fffffff }), fc.double({ min: 0, max: 1, noNaN: true }), (seed, p) => {
        const a = scenario(), b = scenario();
        const ra = new Scheduler({ seed, switchProbability: p }).run(a.gens());
        const rb = Scheduler.replay(b.gens(), ra.decisions);
        expect(rb.outcome).toBe(ra.outcome);
        expect(rb.decisions).toEqual(ra.decisions);
        expect(rb.steps).toBe(ra.steps);
        expect(b.order).toEqual(a.order);
        expect(rb.results).toEqual(ra.results);
      }),
      { numRuns: 200 },
    );
  });

  it("with switchProbability 0 runs each vCPU to completion in turn", () => {
    const s = scenario();
    const r = new Scheduler({ seed: 7, switchProbability: 0 }).run(s.gens());
    expect(r.outcome).toBe("completed");
    // Only the initial pick and the two forced switches at completions.
    expect(r.decisions.length).toBe(6);
    const firsts = s.order.map((x) => x.split(".")[0]);
    expect(firsts.join("")).toMatch(/^(0+1+2+|0+2+1+|1+0+2+|1+2+0+|2+0+1+|2+1+0+)$/);
  });

  it("detects an ABBA deadlock and reports the wait-for chain", () => {
    let found = 0;
    for (let seed = 0; seed < 100; seed++) {
      const ld = new LockDep();
      const gt = new RwLock("d1.grant_lock", "grant_lock", { lockdep: ld });
      const p2m = new RwLock("d1.p2m_lock", "p2m_lock", { lockdep: ld });
      function* a(cpu: number): LockGen<string> {
        yield* gt.writeLock(cpu);
        yield* p2m.writeLock(cpu);
        yield* p2m.writeUnlock(cpu);
        yield* gt.writeUnlock(cpu);
        return "a";
      }
      function* b(cpu: number): LockGen<string> {
        yield* p2m.writeLock(cpu);
        yield* gt.writeLock(cpu);
        yield* gt.writeUnlock(cpu);
        yield* p2m.writeUnlock(cpu);
        return "b";
      }
      const r = new Scheduler({ seed, switchProbability: 0.7 }).run([a(0), b(1)]);
      if (r.outcome === "completed") {
        expect(r.results).toEqual(["a", "b"]);
        continue;
      }
      found++;
      expect(r.outcome).toBe("deadlock");
      expect(r.finished).toEqual([false, false]);
      const d = r.deadlock!;
      expect(d.waits).toEqual([
        { cpu: 0, lock: "d1.p2m_lock", mode: "write", holders: [{ cpu: 1, mode: "write" }] },
        { cpu: 1, lock: "d1.grant_lock", mode: "write", holders: [{ cpu: 0, mode: "write" }] },
      ]);
      expect(d.chain).toEqual([0, 1]);
      expect(d.message).toBe(
        "deadlock: cpu0 waits for d1.p2m_lock (write) held by cpu1(write); " +
          "cpu1 waits for d1.grant_lock (write) held by cpu0(write) -> back to cpu0 (cycle)",
      );
      // Lockdep saw the inversion before the CPUs started waiting.
      expect(ld.violations.map((v) => v.kind)).toEqual(["inversion"]);
      // And the deadlock replays.
      const gt2 = gt, p2m2 = p2m;
      gt2.reset();
      p2m2.reset();
      ld.resetHeld();
      const again = Scheduler.replay([a(0), b(1)], r.decisions);
      expect(again.outcome).toBe("deadlock");
      expect(again.deadlock!.message).toBe(d.message);
    }
    expect(found).toBeGreaterThan(5);
    expect(found).toBeLessThan(100);
  });

  /** Takes `l` and finishes holding it. */
  function* leak(l: SpinLock, cpu: number): LockGen<string> {
    yield* l.lock(cpu);
    return "leaked";
  }
  function* waiter(l: SpinLock, cpu: number): LockGen<string> {
    yield* l.lock(cpu);
    yield* l.unlock(cpu);
    return "ok";
  }

  it("reports a lock leaked by a finished vCPU as a deadlock", () => {
    const heap = new SpinLock("heap_lock", "heap_lock");
    const r = Scheduler.replay([leak(heap, 0), waiter(heap, 1)], [0, 0, 2, 1]);
    expect(r.outcome).toBe("deadlock");
    expect(r.results).toEqual(["leaked", undefined]);
    expect(r.deadlock!.message).toBe(
      "deadlock: cpu1 waits for heap_lock (write) held by cpu0(write); cpu0 has finished without releasing it",
    );
  });

  it("a reused scheduler reports a deadlock from this run's vCPUs only, after a wider run aborted", () => {
    const x = new SpinLock("x_lock", "x_lock");
    const heap = new SpinLock("heap_lock", "heap_lock");
    function* holdX(cpu: number): LockGen<string> {
      yield* x.lock(cpu);
      yield schedPoint(cpu);
      yield* x.unlock(cpu);
      return "x";
    }
    const s = new Scheduler();
    // cpu2 is left blocked on x_lock when the replay diverges at step 4.
    expect(() => s.replay([holdX(0), holdX(1), holdX(2)], [0, 0, 2, 2, 4, 5])).toThrowError(/picks cpu 5/);
    const r = s.replay([leak(heap, 0), waiter(heap, 1)], [0, 0, 2, 1]);
    expect(r.outcome).toBe("deadlock");
    expect(r.deadlock!.waits.map((w) => w.cpu)).toEqual([1]);
    expect(r.deadlock!.message).toBe(
      "deadlock: cpu1 waits for heap_lock (write) held by cpu0(write); cpu0 has finished without releasing it",
    );
  });

  it("stops with outcome error when a vCPU throws, and rejects a diverging replay", () => {
    const l = new SpinLock("vmid_alloc_lock", "vmid_alloc_lock");
    function* twice(cpu: number): LockGen {
      yield* l.lock(cpu);
      yield* l.lock(cpu);
    }
    const r = new Scheduler({ seed: 3 }).run([twice(0)]);
    expect(r.outcome).toBe("error");
    expect(r.error!.cpu).toBe(0);
    expect(r.error!.error).toBeInstanceOf(LockBugError);

    l.reset();
    expect(() => Scheduler.replay([twice(0), twice(1)], [0, 5])).toThrowError(/picks cpu 5, which is not runnable/);
  });

  it("stops a run that never finishes at maxSteps", () => {
    function* spin(cpu: number): LockGen<number> {
      for (;;) yield schedPoint(cpu);
    }
    const r = new Scheduler({ seed: 1, maxSteps: 100 }).run([spin(0), spin(1)]);
    expect(r.outcome).toBe("step-limit");
    expect(r.steps).toBe(100);
    expect(r.finished).toEqual([false, false]);
  });

  it("runToCompletion drives a lone lock operation, resetting reused ops", () => {
    const heap = new SpinLock("heap_lock", "heap_lock");
    for (let i = 0; i < 3; i++) {
      runToCompletion(heap.lock(1));
      expect(heap.holderCpu).toBe(1);
      runToCompletion(heap.unlock(1));
      expect(heap.isLocked()).toBe(false);
    }
  });

  it("runToCompletion reports blocking as a lock bug naming lock and holder", () => {
    const p2m = new RwLock("d4.p2m_lock", "p2m_lock");
    runToCompletion((function* () { yield* p2m.readLock(2); })());
    let err: unknown;
    try {
      runToCompletion((function* () { yield* p2m.writeLock(0); })());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockBugError);
    expect((err as LockBugError).kind).toBe("blocked-alone");
    expect((err as Error).message).toBe("cpu0 blocks on d4.p2m_lock (write) running alone; held by cpu2(read)");
  });
});
