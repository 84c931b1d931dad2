/**
 * Deterministic interleaving of emulated vCPUs inside hypercalls.
 *
 * Each vCPU is a generator (a hypercall in flight) yielding SchedPoints at
 * lock acquire/release. At every point the scheduler may switch to another
 * runnable vCPU, chosen from a seeded PRNG; a vCPU that yielded "blocked" is
 * not resumed until its lock can be taken, so a resumed vCPU always makes
 * progress. Every change of the running vCPU is logged, which is all that is
 * needed to replay a run exactly (the generators being deterministic).
 *
 * vcpus[i] runs as emulated CPU i: the handler must pass i to the locks.
 */

import { LockBugError, runAlone, type LockGen, type LockHolder, type LockMode, type SchedPoint } from "./lock.js";
import { Prng } from "../util/prng.js";

/**
 * Flat pairs [step0, cpu0, step1, cpu1, ...]: "after `step` generator steps
 * in total, run `cpu`". The first pair is always [0, initialCpu].
 */
export type DecisionLog = number[];

export interface SchedulerOptions {
  seed?: number;
  /** Probability of switching at a non-blocking point (default 0.5). */
  switchProbability?: number;
  /** Abort with outcome "step-limit" after this many steps (default 1e6; bounds the decision log too). */
  maxSteps?: number;
}

export interface WaitInfo {
  cpu: number;
  lock: string;
  mode: LockMode;
  holders: LockHolder[];
}

export interface DeadlockReport {
  /** Every vCPU still running, with the lock it waits for. */
  waits: WaitInfo[];
  /** CPUs on the wait-for cycle (or chain ending at a finished/absent holder). */
  chain: number[];
  message: string;
}

export type ScheduleOutcome = "completed" | "deadlock" | "error" | "step-limit";

export interface ScheduleResult<R> {
  outcome: ScheduleOutcome;
  /** Return value per vCPU (undefined where it did not finish). */
  results: (R | undefined)[];
  finished: boolean[];
  steps: number;
  decisions: DecisionLog;
  deadlock: DeadlockReport | null;
  /** A vCPU's generator threw (LockBugError, LockAssertionError, a Xen BUG...). */
  error: { cpu: number; error: unknown } | null;
}

export class ReplayDivergenceError extends Error {}

// How drive() reads its log: strictly (ReplayDivergenceError on mismatch),
// leniently (shrinker sub-logs), or as a per-point schedule (run documents).
const STRICT = 0, LENIENT = 1, PER_POINT = 2;

export class Scheduler {
  private readonly prng: Prng;
  private readonly switchProbability: number;
  private readonly maxSteps: number;
  // Scratch reused across runs: the fuzzer runs many short schedules, so
  // per-run allocation matters as much as per-step work.
  private readonly cands: number[] = [];
  private last: (SchedPoint | null)[] = [];

  constructor(opts?: SchedulerOptions) {
    this.prng = new Prng(opts?.seed ?? 0);
    this.switchProbability = opts?.switchProbability ?? 0.5;
    this.maxSteps = opts?.maxSteps ?? 1e6;
  }

  /** Restart the PRNG as `new Scheduler({ seed })` would; the other options stay. */
  reseed(seed: number): this {
    this.prng.reseed(seed);
    return this;
  }

  /** Interleave the vCPUs using the PRNG (its state carries over between runs). */
  run<R>(vcpus: LockGen<R>[]): ScheduleResult<R> {
    return this.drive(vcpus, null);
  }

  /** Re-run fresh, identical vCPUs following a recorded decision log. */
  replay<R>(vcpus: LockGen<R>[], decisions: DecisionLog): ScheduleResult<R> {
    return this.drive(vcpus, decisions);
  }

  static replay<R>(vcpus: LockGen<R>[], decisions: DecisionLog): ScheduleResult<R> {
    return new Scheduler().drive(vcpus, decisions);
  }

  /**
   * Lenient replay: at each logged step switch to the logged cpu if it can
   * run, otherwise ignore the entry; when the running cpu blocks or finishes
   * and the log is silent, the lowest-numbered runnable cpu runs. Any sub-log
   * is a valid schedule, which is what a shrinker needs.
   */
  replayLenient<R>(vcpus: LockGen<R>[], decisions: DecisionLog): ScheduleResult<R> {
    return this.drive(vcpus, decisions, LENIENT);
  }

  /**
   * A per-point schedule (the run format's): `schedule[i]` names the cpu that
   * runs at the i-th scheduling point; an entry naming a cpu that cannot run
   * is skipped (and consumed). Once the list is exhausted the running cpu
   * continues while it can, else the lowest-numbered runnable one. `trace`
   * receives the cpu that ran each step.
   */
  runPerPoint<R>(vcpus: LockGen<R>[], schedule: number[], trace: number[]): ScheduleResult<R> {
    return this.drive(vcpus, schedule, PER_POINT, trace);
  }

  private drive<R>(vcpus: LockGen<R>[], log: DecisionLog | null, mode = STRICT, trace: number[] | null = null): ScheduleResult<R> {
    const n = vcpus.length;
    const results: (R | undefined)[] = [];
    const finished: boolean[] = [];
    // `last` only grows and entries from n on are ignored: setting `length` is
    // a runtime call, and a run is as short as a fuzzer `par` step.
    const last = this.last;
    for (let i = 0; i < n; i++) {
      results.push(undefined);
      finished.push(false);
      last[i] = null;
    }
    const res: ScheduleResult<R> = {
      outcome: "completed",
      results,
      finished,
      steps: 0,
      decisions: [],
      deadlock: null,
      error: null,
    };
    if (n === 0) return res;
    const decisions = res.decisions;
    const prng = this.prng;
    const p = this.switchProbability;
    const maxSteps = this.maxSteps;
    let remaining = n;
    let steps = 0;
    let li = 0; // read position in `log`
    let cur = -1;
    let forced = true;

    for (;;) {
      // Decide who runs after `steps` steps; -1 keeps `cur`.
      let next = -1;
      if (log !== null && mode === PER_POINT) {
        while (li < log.length) {
          const c = log[li++];
          if (c >= 0 && c < n && this.runnable(c, finished)) { next = c; break; }
        }
        if (next < 0) {
          next = cur >= 0 && this.runnable(cur, finished) ? cur : this.collect(cur, n, finished) > 0 ? this.cands[0] : -1;
        }
        if (next >= 0 && next !== cur) decisions.push(steps, next);
      } else if (log !== null && mode === LENIENT) {
        while (li < log.length && log[li] < steps) li += 2;
        if (li < log.length && log[li] === steps) {
          const c = log[li + 1];
          li += 2;
          if (c >= 0 && c < n && c !== cur && this.runnable(c, finished)) next = c;
        }
        if (next < 0 && forced) {
          next = this.collect(cur, n, finished) > 0 ? this.cands[0] : cur >= 0 && this.runnable(cur, finished) ? cur : -1;
        }
        if (next >= 0 && next !== cur) decisions.push(steps, next);
      } else if (log !== null) {
        if (li < log.length && log[li] === steps) {
          next = log[li + 1];
          li += 2;
          if (!(next >= 0 && next < n && this.runnable(next, finished))) {
            throw new ReplayDivergenceError(`replay: decision at step ${steps} picks cpu ${next}, which is not runnable`);
          }
          decisions.push(steps, next);
        } else if (forced && this.collect(cur, n, finished) > 0) {
          throw new ReplayDivergenceError(
            cur < 0
              ? "replay: log does not start with a decision at step 0"
              : `replay: cpu ${cur} cannot continue at step ${steps} and the log has no decision`,
          );
        }
      } else if (forced || prng.chance(p)) {
        const k = this.collect(cur, n, finished);
        if (k > 0) {
          next = this.cands[k === 1 ? 0 : prng.below(k)];
          decisions.push(steps, next);
        }
      }
      if (next >= 0) cur = next;
      else if (forced) {
        res.outcome = "deadlock";
        res.deadlock = deadlockReport(last, finished);
        break;
      }

      if (steps >= maxSteps) {
        res.outcome = "step-limit";
        break;
      }
      if (trace !== null) trace.push(cur);
      let r: IteratorResult<SchedPoint, R>;
      try {
        r = vcpus[cur].next();
      } catch (e) {
        steps++;
        res.outcome = "error";
        res.error = { cpu: cur, error: e };
        break;
      }
      steps++;
      if (r.done === true) {
        finished[cur] = true;
        results[cur] = r.value;
        last[cur] = null;
        if (--remaining === 0) break;
        forced = true;
      } else {
        last[cur] = r.value;
        forced = r.value.kind === "blocked";
      }
    }
    res.steps = steps;
    for (let i = 0; i < n; i++) last[i] = null; // do not keep lock objects alive between runs
    return res;
  }

  private runnable(i: number, finished: boolean[]): boolean {
    if (finished[i]) return false;
    const pt = this.last[i];
    return pt === null || pt.kind !== "blocked" || pt.target!.canTake(pt.cpu, pt.mode);
  }

  // Writes the runnable cpus other than `cur` to this.cands[0..k) and returns
  // k; entries from k on are stale (no truncation: `length = 0` is a runtime
  // call, and this runs at most switch points).
  private collect(cur: number, n: number, finished: boolean[]): number {
    const c = this.cands;
    let k = 0;
    for (let i = 0; i < n; i++) if (i !== cur && this.runnable(i, finished)) c[k++] = i;
    return k;
  }
}

function deadlockReport(last: (SchedPoint | null)[], finished: boolean[]): DeadlockReport {
  const waits: WaitInfo[] = [];
  const waitOf = new Map<number, WaitInfo>();
  for (let i = 0; i < finished.length; i++) {
    const pt = last[i];
    if (finished[i] || pt === null || pt.target === null) continue;
    const w: WaitInfo = { cpu: i, lock: pt.lock, mode: pt.mode, holders: pt.target.holderList() };
    waits.push(w);
    waitOf.set(i, w);
  }
  // Follow "waits for a lock held by" from the first waiter until a cpu repeats
  // (a cycle) or the holder is not waiting (finished with the lock held).
  const chain: number[] = [];
  const parts: string[] = [];
  let closing = -1;
  let cpu = waits.length > 0 ? waits[0].cpu : -1;
  while (cpu >= 0) {
    if (chain.includes(cpu)) {
      closing = cpu;
      break;
    }
    chain.push(cpu);
    const w = waitOf.get(cpu)!;
    const holders = w.holders.map((h) => `cpu${h.cpu}(${h.mode})`).join(", ") || "nobody";
    parts.push(`cpu${cpu} waits for ${w.lock} (${w.mode}) held by ${holders}`);
    const next = w.holders.find((h) => waitOf.has(h.cpu)) ?? w.holders[0];
    if (next === undefined) break;
    if (!waitOf.has(next.cpu)) {
      parts.push(`cpu${next.cpu} ${finished[next.cpu] ? "has finished without releasing it" : "is not running"}`);
      break;
    }
    cpu = next.cpu;
  }
  const tail = closing >= 0 ? ` -> back to cpu${closing} (cycle)` : "";
  return { waits, chain, message: `deadlock: ${parts.join("; ")}${tail}` };
}

/**
 * Drive one generator with nobody to interleave. Blocking means no other
 * CPU can ever release the lock, i.e. a deadlock in a single-CPU run.
 * Also accepts a single lock operation: `runToCompletion(lock.writeLock(cpu))`.
 */
export function runToCompletion<R>(it: Iterable<SchedPoint, R, unknown>): R {
  const outer = runAlone.on;
  runAlone.on = true;
  try {
    // Going through [Symbol.iterator] resets a reused LockOp.
    const gen = it[Symbol.iterator]();
    for (;;) {
      const r = gen.next();
      if (r.done === true) return r.value;
      const pt = r.value;
      if (pt.kind === "blocked") {
        throw new LockBugError(
          "blocked-alone",
          `cpu${pt.cpu} blocks on ${pt.lock} (${pt.mode}) running alone; held by ${pt.target!.describeHolders()}`,
        );
      }
    }
  } finally {
    runAlone.on = outer;
  }
}
