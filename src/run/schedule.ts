// The run format's fixed schedules (`parallel` ops): see Scheduler.runPerPoint.

import { Scheduler, type LockGen } from "../locks/index.js";

export interface FixedScheduleResult<R> {
  results: (R | undefined)[];
  /** The vCPU that ran at each step. */
  trace: number[];
  deadlock: boolean;
}

export function runFixedSchedule<R>(gens: LockGen<R>[], schedule: number[], maxSteps = 1e7): FixedScheduleResult<R> {
  const trace: number[] = [];
  const r = new Scheduler({ maxSteps }).runPerPoint(gens, schedule, trace);
  if (r.outcome === "error") throw r.error!.error;
  return { results: r.results, trace, deadlock: r.outcome === "deadlock" };
}
