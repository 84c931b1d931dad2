import { describe, expect, it } from "vitest";
import {
  LockBugError,
  LockDep,
  RecursiveSpinLock,
  RwLock,
  SpinLock,
  dualIn,
  runToCompletion,
  runTwin,
  twinMode,
  twinSource,
  type LockGen,
} from "../../src/locks/index.js";
import { createMachine } from "../../src/machine/machine.js";
import { OpGenerator, defaultDomains } from "../../src/fuzz/generator.js";
import type { HypercallResult } from "../../src/machine/api.js";

const dual = dualIn((src) => eval(src));

function world() {
  const ld = new LockDep();
  return {
    ld,
    gt: new RwLock("d1.grant_lock", "grant_lock", { lockdep: ld }),
    p2m: new RwLock("d1.p2m_lock", "p2m_lock", { lockdep: ld }),
    pal: new RecursiveSpinLock("d1.page_alloc_lock", "page_alloc_lock", { lockdep: ld }),
    heap: new SpinLock("heap_lock", "heap_lock", { lockdep: ld }),
  };
}
type World = ReturnType<typeof world>;

// A nested path in the handlers' style: a dual callee, every lock kind,
// a value threaded through `(yield* ...)` expressions.
const inner = dual(function* inner(w: World, cpu: number, x: number): LockGen<number> {
  yield* w.pal.lockRecursive(cpu);
  yield* w.pal.lockRecursive(cpu);
  yield* w.heap.lock(cpu);
  const held = w.ld.held(cpu).join(",");
  yield* w.heap.unlock(cpu);
  yield* w.pal.unlockRecursive(cpu);
  yield* w.pal.unlockRecursive(cpu);
  return x + held.length;
});
const outer = dual(function* outer(w: World, cpu: number, x: number): LockGen<string> {
  yield* w.gt.writeLock(cpu);
  yield* w.p2m.readLock(cpu);
  const a = (yield* inner(w, cpu, x)) * 2;
  yield* w.p2m.readUnlock(cpu);
  const b = (yield* inner(w, cpu, a)) + 1;
  yield* w.gt.writeUnlock(cpu);
  return `${a}/${b}/${w.ld.held(cpu).length}`;
});

// Twins see the module scope of the eval that compiled them, not closures:
// dual generators live at module level.
const inv = dual(function* inv(w: World, cpu: number): LockGen {
  yield* w.p2m.writeLock(cpu);
  yield* w.gt.writeLock(cpu);
  yield* w.gt.writeUnlock(cpu);
  yield* w.p2m.writeUnlock(cpu);
});
const again = dual(function* again(w: World, cpu: number): LockGen {
  yield* w.p2m.writeLock(cpu);
  yield* w.p2m.readLock(cpu);
});
const take = dual(function* take(w: World, cpu: number): LockGen {
  yield* w.heap.lock(cpu);
});
function* notDual(): LockGen<number> {
  return 1;
}
const callsNotDual = dual(function* callsNotDual(): LockGen<number> {
  return yield* notDual();
});

describe("synchronous twins", () => {
  it("give the generator's result, lock state and lock order", () => {
    const g = world(), t = world();
    const viaGen = runToCompletion(outer(g, 1, 5));
    const viaTwin = runTwin(() => outer(t, 1, 5));
    expect(viaTwin).toBe(viaGen);
    expect(viaGen).toBe("118/161/0"); // 54 and 42 characters of held-lock names
    expect(t.ld.edges().map((e) => `${e.from}>${e.to}`)).toEqual(g.ld.edges().map((e) => `${e.from}>${e.to}`));
    expect(t.ld.edges().length).toBe(6); // grant>p2m, grant>pal, p2m>pal and each >heap
    for (const l of [t.gt, t.p2m, t.pal, t.heap]) expect(l.isLocked()).toBe(false);
    expect(twinMode.on).toBe(false);
  });

  it("outside twin mode a dual function is the generator", () => {
    const w = world();
    const it = outer(w, 0, 1);
    expect(typeof it.next).toBe("function");
    const first = it.next();
    expect(first.done).toBe(false); // the "acquire" point of grant_lock
  });

  it("keep lockdep: an inversion is found through twins", () => {
    const w = world();
    runTwin(() => outer(w, 0, 1));
    runTwin(() => inv(w, 0));
    expect(w.ld.violations.map((v) => v.kind)).toEqual(["inversion"]);
  });

  it("keep self-deadlock and blocked-alone reports, with runToCompletion's messages", () => {
    const w = world();
    expect(() => runTwin(() => again(w, 0))).toThrow(/self-deadlock: cpu0 read-locks d1.p2m_lock/);
    w.p2m.reset();
    w.ld.resetHeld();
    runToCompletion(w.heap.lock(3));
    let genErr: unknown, twinErr: unknown;
    try { runToCompletion(take(w, 0)); } catch (e) { genErr = e; }
    try { runTwin(() => take(w, 0)); } catch (e) { twinErr = e; }
    expect(twinErr).toBeInstanceOf(LockBugError);
    expect((twinErr as LockBugError).kind).toBe("blocked-alone");
    expect((twinErr as Error).message).toBe((genErr as Error).message);
  });

  it("fail loudly where a twin cannot be made or run", () => {
    function* plain(cpu: number): LockGen {
      yield* new SpinLock("x", "x").lock(cpu);
      yield { kind: "point", lock: "", cpu, mode: "write", target: null };
    }
    expect(() => twinSource(plain)).toThrow(/plain yield/);
    expect(() => runTwin(() => callsNotDual())).toThrow(/still an iterator/);
  });
});

describe("Machine.hypercall (twins) against the generators run alone", () => {
  for (const revision of ["pre", "gfn", "head"] as const) {
    it(`same results, state hash, lock orders and GFN audit at ${revision}`, async () => {
      const machines = await Promise.all([createMachine({ revision }), createMachine({ revision })]);
      for (const m of machines) for (const d of defaultDomains()) m.createDomain(d);
      const [twin, gen] = machines;
      const g = new OpGenerator(7, { domains: defaultDomains(), interleave: false });
      const a: HypercallResult[] = [], b: HypercallResult[] = [];
      let calls = 0;
      for (let i = 0; i < 600 && !twin.crashed; i++) {
        const s = g.next();
        if (s.kind !== "call") continue;
        const { caller, req } = s.call;
        if (!twin.domains.has(caller)) continue;
        a.push(twin.hypercall(req, { caller }));
        b.push(runToCompletion(gen.hypercallGen(req, { caller })));
        gen.reapZombies();
        calls++;
      }
      expect(calls).toBeGreaterThan(300);
      expect(a).toEqual(b);
      expect(twin.stateHash()).toBe(gen.stateHash());
      expect(twin.lockdep.edges()).toEqual(gen.lockdep.edges());
      expect(twin.gfnAudit.counts).toEqual(gen.gfnAudit.counts);
      expect(twin.gfnAudit.findings).toEqual(gen.gfnAudit.findings);
    });
  }
});
