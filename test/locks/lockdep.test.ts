import { describe, expect, it } from "vitest";
import {
  LockDep,
  LockOrderError,
  RecursiveSpinLock,
  RwLock,
  Scheduler,
  SpinLock,
  runToCompletion,
  type LockGen,
} from "../../src/locks/index.js";

function world(ld: LockDep) {
  return {
    gt: new RwLock("d1.grant_lock", "grant_lock", { lockdep: ld }),
    p2m: new RwLock("d1.p2m_lock", "p2m_lock", { lockdep: ld }),
    p2m2: new RwLock("d2.p2m_lock", "p2m_lock", { lockdep: ld }),
    pal: new RecursiveSpinLock("d1.page_alloc_lock", "page_alloc_lock", { lockdep: ld }),
    heap: new SpinLock("heap_lock", "heap_lock", { lockdep: ld }),
  };
}

describe("LockDep", () => {
  it("finds a planted grant/p2m inversion and names both paths", () => {
    const ld = new LockDep();
    const { gt, p2m } = world(ld);
    function* mapFrame(cpu: number): LockGen {
      ld.setContext(cpu, "gnttab_map_frame");
      yield* gt.writeLock(cpu);
      yield* p2m.writeLock(cpu);
      yield* p2m.writeUnlock(cpu);
      yield* gt.writeUnlock(cpu);
    }
    function* inverted(cpu: number): LockGen {
      ld.setContext(cpu, "XENMEM_add_to_physmap");
      yield* p2m.writeLock(cpu);
      yield* gt.readLock(cpu);
      yield* gt.readUnlock(cpu);
      yield* p2m.writeUnlock(cpu);
    }
    // Sequential: no actual deadlock happens, lockdep still sees the cycle.
    runToCompletion(mapFrame(0));
    expect(ld.violations).toEqual([]);
    runToCompletion(inverted(1));
    expect(ld.violations).toHaveLength(1);
    const v = ld.violations[0];
    expect(v.kind).toBe("inversion");
    expect(v.newEdge).toEqual({
      from: "p2m_lock",
      to: "grant_lock",
      description:
        "held p2m_lock then took grant_lock (cpu 1, context XENMEM_add_to_physmap; d1.p2m_lock -> d1.grant_lock)",
    });
    expect(v.existingPath).toEqual([
      {
        from: "grant_lock",
        to: "p2m_lock",
        description: "held grant_lock then took p2m_lock (cpu 0, context gnttab_map_frame; d1.grant_lock -> d1.p2m_lock)",
      },
    ]);
    expect(v.message).toContain("new order p2m_lock -> grant_lock");
    expect(v.message).toContain("recorded order grant_lock -> p2m_lock");
    expect(v.message).toContain("context gnttab_map_frame");
    expect(v.message).toContain("context XENMEM_add_to_physmap");
    // Reported once, not on every repetition.
    runToCompletion(inverted(1));
    expect(ld.violations).toHaveLength(1);
  });

  it("reports a multi-hop cycle with the whole recorded path", () => {
    const ld = new LockDep();
    const { gt, p2m, heap } = world(ld);
    runToCompletion((function* () {
      yield* gt.writeLock(0);
      yield* p2m.writeLock(0);
      yield* p2m.writeUnlock(0);
      yield* gt.writeUnlock(0);
      yield* p2m.writeLock(0);
      yield* heap.lock(0);
      yield* heap.unlock(0);
      yield* p2m.writeUnlock(0);
    })());
    expect(ld.violations).toEqual([]);
    runToCompletion((function* () {
      yield* heap.lock(1);
      yield* gt.readLock(1);
      yield* gt.readUnlock(1);
      yield* heap.unlock(1);
    })());
    expect(ld.violations).toHaveLength(1);
    // heap_lock was only ever taken under p2m_lock, so the recorded path goes through it.
    expect(ld.violations[0].existingPath.map((e) => `${e.from}>${e.to}`)).toEqual(["grant_lock>p2m_lock", "p2m_lock>heap_lock"]);
    expect(ld.violations[0].newEdge.from + ">" + ld.violations[0].newEdge.to).toBe("heap_lock>grant_lock");
  });

  it("stays silent for the documented order grant -> p2m -> page_alloc_lock -> heap_lock", () => {
    const ld = new LockDep({ throwOnViolation: true });
    const { gt, p2m, pal, heap } = world(ld);
    function* full(cpu: number): LockGen<number> {
      ld.setContext(cpu, "documented");
      yield* gt.readLock(cpu);
      yield* p2m.writeLock(cpu);
      yield* pal.lockRecursive(cpu);
      yield* pal.lockRecursive(cpu); // relinquish path re-entering
      yield* heap.lock(cpu);
      yield* heap.unlock(cpu);
      yield* pal.unlockRecursive(cpu);
      yield* pal.unlockRecursive(cpu);
      yield* p2m.writeUnlock(cpu);
      yield* gt.readUnlock(cpu);
      return cpu;
    }
    function* partial(cpu: number): LockGen<number> {
      // Subsets of the order, and skipping levels, are fine too.
      yield* p2m.readLock(cpu);
      yield* heap.lock(cpu);
      yield* heap.unlock(cpu);
      yield* p2m.readUnlock(cpu);
      yield* gt.writeLock(cpu);
      yield* pal.lock(cpu);
      yield* pal.unlock(cpu);
      yield* gt.writeUnlock(cpu);
      return cpu;
    }
    for (let seed = 0; seed < 50; seed++) {
      const r = new Scheduler({ seed }).run([full(0), partial(1), full(2)]);
      expect(r.outcome).toBe("completed");
    }
    expect(ld.violations).toEqual([]);
    const edges = ld.edges().map((e) => `${e.from}>${e.to}`).sort();
    expect(edges).toEqual([
      "grant_lock>heap_lock",
      "grant_lock>p2m_lock",
      "grant_lock>page_alloc_lock",
      "p2m_lock>heap_lock",
      "p2m_lock>page_alloc_lock",
      "page_alloc_lock>heap_lock",
    ]);
    expect(ld.held(0)).toEqual([]);
  });

  it("recursive acquisition adds no self edge; read-read of one class is not a cycle; write is", () => {
    const ld = new LockDep();
    const { p2m, p2m2, pal } = world(ld);
    runToCompletion((function* () {
      yield* pal.lockRecursive(0);
      yield* pal.lockRecursive(0);
      expect(ld.held(0)).toEqual(["d1.page_alloc_lock"]);
      yield* pal.unlockRecursive(0);
      yield* pal.unlockRecursive(0);
      yield* p2m.readLock(0);
      yield* p2m2.readLock(0);
      yield* p2m2.readUnlock(0);
      yield* p2m.readUnlock(0);
    })());
    expect(ld.violations).toEqual([]);
    expect(ld.hasEdge("page_alloc_lock", "page_alloc_lock")).toBe(false);
    expect(ld.hasEdge("p2m_lock", "p2m_lock")).toBe(false);

    ld.setContext(0, "two_domains");
    runToCompletion((function* () {
      yield* p2m.readLock(0);
      yield* p2m2.writeLock(0);
      yield* p2m2.writeUnlock(0);
      yield* p2m.readUnlock(0);
    })());
    expect(ld.violations.map((v) => v.kind)).toEqual(["recursive"]);
    expect(ld.violations[0].message).toBe(
      "lockdep: recursive locking of class p2m_lock: held p2m_lock then took p2m_lock (cpu 0, context two_domains; d1.p2m_lock -> d2.p2m_lock)",
    );
  });

  it("throwOnViolation throws LockOrderError from the offending acquisition", () => {
    const ld = new LockDep({ throwOnViolation: true });
    const { gt, p2m } = world(ld);
    runToCompletion((function* () {
      yield* gt.writeLock(0);
      yield* p2m.writeLock(0);
      yield* p2m.writeUnlock(0);
      yield* gt.writeUnlock(0);
    })());
    let err: unknown;
    try {
      runToCompletion((function* () {
        yield* p2m.writeLock(1);
        yield* gt.writeLock(1);
      })());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockOrderError);
    expect((err as LockOrderError).violation.newEdge.to).toBe("grant_lock");
    // The check runs before taking: cpu1 did not get the grant lock.
    expect(gt.isLocked()).toBe(false);
    expect(ld.held(1)).toEqual(["d1.p2m_lock"]);
  });
});
