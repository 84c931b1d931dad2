// A fixed-schedule driver: `schedule[i]` names the vCPU that runs at the i-th
// scheduling point (every lock acquire/release point). An entry naming a vCPU
// that cannot run (finished, or blocked on a lock it cannot take) is skipped;
// once the list is exhausted the current vCPU keeps running while it can,
// else the lowest-numbered runnable vCPU runs.

import type { LockGen, SchedPoint } from "../locks/index.js";

export interface FixedScheduleResult<R> {
  results: (R | undefined)[];
  /** The vCPU that ran at each step. */
  trace: number[];
  deadlock: boolean;
}

export function runFixedSchedule<R>(gens: LockGen<R>[], schedule: number[], maxSteps = 1e7): FixedScheduleResult<R> {
  const n = gens.length;
  const results: (R | undefined)[] = new Array(n).fill(undefined);
  const finished = new Array<boolean>(n).fill(false);
  const last: (SchedPoint | null)[] = new Array(n).fill(null);
  const trace: number[] = [];
  const runnable = (i: number) => {
    if (i < 0 || i >= n || finished[i]) return false;
    const p = last[i];
    return p === null || p.kind !== "blocked" || p.target!.canTake(p.cpu, p.mode);
  };
  let cur = -1;
  let left = n;
  let si = 0;
  for (let step = 0; left > 0 && step < maxSteps; step++) {
    let next = -1;
    while (si < schedule.length) {
      const c = schedule[si++];
      if (runnable(c)) { next = c; break; }
    }
    if (next < 0) {
      if (runnable(cur)) next = cur;
      else for (let i = 0; i < n; i++) if (runnable(i)) { next = i; break; }
    }
    if (next < 0) return { results, trace, deadlock: true };
    cur = next;
    trace.push(cur);
    const r = gens[cur].next();
    if (r.done) {
      finished[cur] = true;
      results[cur] = r.value;
      last[cur] = null;
      left--;
    } else last[cur] = r.value;
  }
  return { results, trace, deadlock: false };
}
