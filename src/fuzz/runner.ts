// Executes fuzz steps on a host and checks the invariants after each one.

import { Scheduler } from "../locks/index.js";
import type { LockGen, ScheduleResult, SchedPoint } from "../locks/index.js";
import { DOMID_SELF, type HypercallResult } from "../machine/api.js";
import type { FuzzCall, FuzzStep } from "./generator.js";
import type { FuzzHost } from "./host.js";
import { InvariantChecker, fnv, type CheckerOptions, type Violation } from "./invariants.js";
import { clear } from "./clear.js";

export interface StepOutcome {
  results: Array<HypercallResult | undefined>;
  /** For `par`: the scheduler's decision log (to pin the replay). */
  decisions?: number[];
  /** For `par`: the vCPU that ran at each scheduling step. */
  trace?: number[];
}

/**
 * Is the call issued at all? Not when its caller does not exist (a shrunk run
 * may lose the create), nor when the caller or the target domain has been
 * crashed by Xen (domain_crash): a crashed domain's vCPUs no longer run and
 * the toolstack's only business with it is to destroy it.
 */
export function issuable(host: FuzzHost, c: FuzzCall): boolean {
  if (!host.canCall(c.caller)) return false;
  const r = c.req as unknown as { domid?: number; dom?: number };
  let t = r.domid ?? r.dom;
  if (t === undefined) return true;
  if (t === DOMID_SELF) t = c.caller;
  return !host.domids().includes(t) || host.canCall(t);
}

/**
 * A vCPU of a `par` group: decides whether to issue its call when it first
 * runs, then is the call's generator. What `function* { if (!issuable) return
 * skipped; return yield* host.gen(...) }` does, without a generator frame
 * between the scheduler and the call at every lock point.
 */
class LazyCall implements LockGen<HypercallResult> {
  private inner: LockGen<HypercallResult> | null = null;
  private state = 0; // 0 not started, 1 running the call, 2 done

  constructor(private readonly host: FuzzHost, private readonly c: FuzzCall, private readonly vcpu: number) {}

  next(): IteratorResult<SchedPoint, HypercallResult> {
    if (this.state === 1) return this.forward(this.inner!.next());
    if (this.state === 2) return { done: true, value: undefined as unknown as HypercallResult };
    if (!issuable(this.host, this.c)) {
      this.state = 2;
      return { done: true, value: { rc: 0, skipped: true } };
    }
    this.state = 1;
    this.inner = this.host.gen(this.c.caller, this.vcpu, this.c.req);
    return this.forward(this.inner.next());
  }

  private forward(r: IteratorResult<SchedPoint, HypercallResult>): IteratorResult<SchedPoint, HypercallResult> {
    if (r.done === true) this.state = 2;
    return r;
  }

  return(value: HypercallResult): IteratorResult<SchedPoint, HypercallResult> {
    if (this.state === 1) {
      this.state = 2;
      return this.inner!.return(value);
    }
    this.state = 2;
    return { done: true, value };
  }

  throw(e: unknown): IteratorResult<SchedPoint, HypercallResult> {
    if (this.state === 1) return this.forward(this.inner!.throw(e));
    this.state = 2;
    throw e;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

/** Expand a decision log ([step, cpu] pairs) into the cpu run at each of `steps` steps. */
export function traceOf(decisions: number[], steps: number): number[] {
  const t: number[] = [];
  let cur = decisions.length > 1 ? decisions[1] : 0;
  let k = 0;
  for (let s = 0; s < steps; s++) {
    while (k < decisions.length && decisions[k] <= s) {
      cur = decisions[k + 1];
      k += 2;
    }
    t.push(cur);
  }
  return t;
}

/** A `par` step's outcome: the trace is expanded from the decision log on first read (campaigns never read it). */
class ParOutcome implements StepOutcome {
  readonly results: Array<HypercallResult | undefined> = [];
  private t: number[] | undefined = undefined;

  constructor(readonly decisions: number[], private readonly steps: number) {}

  get trace(): number[] {
    return (this.t ??= traceOf(this.decisions, this.steps));
  }
}

/** [INT53_MIN, INT53_END): where BigInt.asIntN(53, v) === v. */
const INT53_MIN = -(2n ** 52n);
const INT53_END = 2n ** 52n;

/** The outcome of a step that issued no hypercall: one object for all of them (callers only read outcomes). */
const NO_RESULTS: StepOutcome = { results: [] };

/** One hypercall of a step with its result and (e) expectation, as afterStep takes them. */
interface Row {
  call: FuzzCall;
  result: HypercallResult | undefined;
  expectOk: string | null;
}

export class FuzzSession {
  readonly checker: InvariantChecker;
  /** The step's rows, reused every step (the checker reads them during afterStep only). */
  private readonly rows: Row[] = [];
  private readonly rowPool: Row[] = [];
  /** One scheduler, reseeded per `par` step (as a new `Scheduler({ seed: step.sched })`: drive() keeps no state between runs but the PRNG). */
  private sched: Scheduler | null = null;
  /** Running hash of every result and the final shadow. */
  private h = 0x811c9dc5;
  index = 0;
  stopped = false;

  constructor(readonly host: FuzzHost, opts: CheckerOptions = {}) {
    this.checker = new InvariantChecker(host, opts);
  }

  get violations(): Violation[] {
    return this.checker.violations;
  }

  hash(): string {
    return (this.checker.shadowHash(this.h) >>> 0).toString(16).padStart(8, "0");
  }

  private mix(r: HypercallResult | undefined): void {
    if (r?.skipped === true) r = undefined;
    if (r === undefined) {
      this.h = fnv(this.h, 0xdead);
      return;
    }
    const v = r.rc;
    // BigInt.asIntN(53, v) is v itself inside the int53 range (and allocates a BigInt either way).
    const rc = typeof v !== "bigint" ? Number(v) : v >= INT53_MIN && v < INT53_END ? Number(v) : Number(BigInt.asIntN(53, v));
    this.h = fnv(this.h, rc);
  }

  /** A `call` step's outcome, reused by the next one. */
  private readonly callOut: StepOutcome = { results: [undefined] };

  /** Run one step; returns what happened (a `call` step's outcome is valid until the next exec). Sets `stopped` on a crash. */
  exec(step: FuzzStep): StepOutcome {
    const host = this.host;
    const ck = this.checker;
    const op = this.index++;
    host.invalidate();
    const scope = ck.newScope();
    const typeSnap = ck.snapshotTypeBits();
    let out: StepOutcome = NO_RESULTS;
    const rows = this.rows;
    clear(rows);
    let destroyed: number | null = null;
    ck.inPar = step.kind === "par";
    try {
      switch (step.kind) {
        case "call": {
          ck.scopeOf(step.call, scope);
          const expectOk = ck.expectMapOk(step.call);
          // A call from a domain that does not exist (shrunk runs may lose the create) or that Xen
          // has crashed (domain_crash: its vCPUs no longer run) is not issued.
          const r = issuable(host, step.call) ? host.call(step.call.caller, step.call.req) : undefined;
          // The re-scope must see the grant table as the call left it (grown, version switched).
          host.invalidate();
          ck.rescopeAfter(step.call, scope);
          out = this.callOut;
          out.results[0] = r;
          this.row(step.call, r, expectOk);
          break;
        }
        case "par": {
          for (const c of step.calls) ck.scopeOf(c, scope);
          // Each vCPU decides whether to enter its hypercall when it first runs: a domain crashed by
          // an earlier vCPU of the group has its other vCPUs paused before they can start one.
          // (A loop, not a map() closure over `host`: that would cost every exec a context.)
          const gens: LockGen<HypercallResult>[] = [];
          for (let i = 0; i < step.calls.length; i++) gens.push(new LazyCall(host, step.calls[i], i));
          const res = step.decisions ? runPinned(gens, step.decisions) : (this.sched ??= new Scheduler()).reseed(step.sched).run(gens);
          host.afterGroup();
          host.invalidate();
          out = new ParOutcome(res.decisions, res.steps);
          for (const c of step.calls) ck.rescopeAfter(c, scope);
          for (let i = 0; i < step.calls.length; i++) {
            out.results.push(res.results[i]);
            this.row(step.calls[i], res.results[i], null);
          }
          if (res.outcome === "deadlock") ck.hostFinding(op, "locks", res.deadlock!.message, { decisions: res.decisions });
          else if (res.outcome === "error" && host.crash() === null) {
            const e = res.error!.error as Error;
            const kind = e?.constructor?.name ?? "Error";
            if (/Lock/.test(kind)) ck.hostFinding(op, "locks", `${kind}: ${e.message}`, { cpu: res.error!.cpu });
            else ck.hostFinding(op, "crash", `cpu${res.error!.cpu} threw ${kind}: ${e?.message ?? e}`, { cpu: res.error!.cpu });
          } else if (res.outcome === "step-limit") ck.hostFinding(op, "locks", "scheduler step limit (livelock?)", {});
          break;
        }
        case "create":
          host.createDomain(step.domid);
          ck.touchAll = true;
          break;
        case "destroy":
          ck.scopeDomain(scope, step.domid);
          if (host.domids().includes(step.domid)) {
            ck.beforeDestroy(step.domid);
            host.destroyDomain(step.domid);
            destroyed = step.domid;
            ck.touchAll = true;
          }
          break;
      }
    } catch (e) {
      if (host.crash() === null) {
        const err = e as Error;
        const kind = err?.constructor?.name ?? "Error";
        if (/Lock/.test(kind)) ck.hostFinding(op, "locks", `${kind}: ${err.message}`, { step });
        else ck.hostFinding(op, "crash", `emulator exception ${kind}: ${err?.message ?? e}`, { step, stack: String(err?.stack ?? "").split("\n").slice(0, 6) });
        this.stopped = true;
      }
    }
    host.invalidate();
    const results = out.results;
    for (let i = 0; i < results.length; i++) this.mix(results[i]);
    ck.afterStep(op, scope, rows, typeSnap, destroyed);
    if (host.crash() !== null) this.stopped = true;
    return out;
  }

  private row(call: FuzzCall, result: HypercallResult | undefined, expectOk: string | null): void {
    const k = this.rows.length;
    let r = this.rowPool[k];
    if (r === undefined) this.rowPool[k] = r = { call, result, expectOk };
    else {
      r.call = call;
      r.result = result;
      r.expectOk = expectOk;
    }
    this.rows.push(r);
  }

  /** Final full scan. */
  finish(): void {
    if (!this.stopped) this.checker.fullScan(this.index - 1);
  }
}

/** Lenient replay of a decision log ([step, cpu] pairs): see Scheduler.replayLenient. */
export function runPinned<R>(vcpus: LockGen<R>[], log: number[], maxSteps = 1e7): ScheduleResult<R> {
  return new Scheduler({ maxSteps }).replayLenient(vcpus, log);
}
