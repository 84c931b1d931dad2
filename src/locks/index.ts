/** Lock emulation for the host: locks, lockdep, GFN-bits audit, scheduler. */
export {
  Lock,
  LockError,
  LockAssertionError,
  LockBugError,
  assertWriteLocked,
  assertLocked,
  assertNotLocked,
  schedPoint,
  type LockMode,
  type LockHolder,
  type LockOptions,
  type LockOp,
  type LockGen,
  type SchedPoint,
} from "./lock.js";
export { twinMode, dualIn, dualMethods, runTwin, twinSource, type ModuleEval } from "./twin.js";
export { RwLock, type RwLockOptions } from "./rwlock.js";
export { SpinLock, RecursiveSpinLock } from "./spinlock.js";
export {
  LockDep,
  LockOrderError,
  type LockDepOptions,
  type LockOrderEdge,
  type LockOrderViolation,
} from "./lockdep.js";
export {
  GfnAudit,
  type GfnAccessHow,
  type GfnAuditCounts,
  type GfnAuditOptions,
  type GfnFinding,
  type Mfn,
} from "./gfn-audit.js";
export {
  Scheduler,
  ReplayDivergenceError,
  runToCompletion,
  type DecisionLog,
  type DeadlockReport,
  type ScheduleOutcome,
  type ScheduleResult,
  type SchedulerOptions,
  type WaitInfo,
} from "./scheduler.js";
