/**
 * Audit of accesses to the xenheap GFN bits of type_info (FS §2.4).
 *
 * The GFN patch's rule: the GFN bits are protected by the P2M lock of the
 * domain that maps the page; where taking it would invert the lock order,
 * writes must at least be atomic (cmpxchg). Reads outside the lock exist
 * by design, so they are only noted. A caller's claim to hold the P2M lock is
 * not trusted: it is checked against the real lock state and downgraded to
 * "unprotected" when false, because that mismatch is exactly the bug class
 * the audit is for.
 */

import type { LockDep } from "./lockdep.js";
import type { RwLock } from "./rwlock.js";

/**
 * - "p2m_locked": plain access by a caller holding the owning P2M lock
 *   (write lock for writes, read or write lock for reads);
 * - "atomic": lock-free single load / cmpxchg loop;
 * - "unprotected": plain read-modify-write (or read) without the lock.
 */
export type GfnAccessHow = "p2m_locked" | "atomic" | "unprotected";

export type Mfn = number | bigint;

export interface GfnFinding {
  severity: "violation" | "note";
  access: "read" | "write";
  mfn: Mfn;
  cpu: number;
  /** What the caller claimed. */
  declared: GfnAccessHow;
  /** What the audit concluded. */
  effective: GfnAccessHow;
  /** Lockdep context of the cpu at the time ("" without lockdep). */
  context: string;
  reason: string;
}

export interface GfnAuditCounts {
  reads: number;
  writes: number;
  lockedReads: number;
  lockedWrites: number;
  atomicReads: number;
  atomicWrites: number;
  unprotectedReads: number;
  unprotectedWrites: number;
  /** "p2m_locked" claims that were false. */
  downgraded: number;
  violations: number;
  notes: number;
}

export interface GfnAuditOptions {
  /**
   * The P2M lock of the domain that maps `mfn`, or null if the page is not
   * mapped by any domain (a "p2m_locked" claim then cannot be true).
   */
  p2mLockOf: (mfn: Mfn) => RwLock | null;
  /** Source of context labels for findings. */
  lockdep?: LockDep;
  /** Findings kept in `findings` (counts keep going); default 1000. */
  maxFindings?: number;
}

export class GfnAudit {
  readonly counts: GfnAuditCounts = {
    reads: 0,
    writes: 0,
    lockedReads: 0,
    lockedWrites: 0,
    atomicReads: 0,
    atomicWrites: 0,
    unprotectedReads: 0,
    unprotectedWrites: 0,
    downgraded: 0,
    violations: 0,
    notes: 0,
  };
  readonly findings: GfnFinding[] = [];
  private readonly p2mLockOf: (mfn: Mfn) => RwLock | null;
  private readonly lockdep: LockDep | null;
  private readonly maxFindings: number;

  constructor(opts: GfnAuditOptions) {
    this.p2mLockOf = opts.p2mLockOf;
    this.lockdep = opts.lockdep ?? null;
    this.maxFindings = opts.maxFindings ?? 1000;
  }

  /** Report a read of the GFN bits of `mfn` by `cpu`. Returns the effective mode. */
  read(mfn: Mfn, cpu: number, how: GfnAccessHow): GfnAccessHow {
    const c = this.counts;
    c.reads++;
    let eff = how;
    let why = "";
    if (how === "p2m_locked") {
      const lock = this.p2mLockOf(mfn);
      if (lock === null || !lock.holds(cpu)) {
        eff = "unprotected";
        c.downgraded++;
        why = lock === null ? "claimed P2M lock, but no domain maps the page" : `claimed ${lock.name}, held by ${lock.describeHolders()}`;
      }
    }
    if (eff === "p2m_locked") c.lockedReads++;
    else if (eff === "atomic") c.atomicReads++;
    else {
      c.unprotectedReads++;
      c.notes++;
      this.record("note", "read", mfn, cpu, how, eff, why === "" ? "read without the P2M lock" : `read without the P2M lock (${why})`);
    }
    return eff;
  }

  /** Report a write of the GFN bits of `mfn` by `cpu`. Returns the effective mode. */
  write(mfn: Mfn, cpu: number, how: GfnAccessHow): GfnAccessHow {
    const c = this.counts;
    c.writes++;
    let eff = how;
    let why = "";
    if (how === "p2m_locked") {
      const lock = this.p2mLockOf(mfn);
      // A read-lock holder can race with another reader doing the same RMW.
      if (lock === null || !lock.holdsWrite(cpu)) {
        eff = "unprotected";
        c.downgraded++;
        why =
          lock === null
            ? "claimed P2M lock, but no domain maps the page"
            : `claimed ${lock.name} write lock, held by ${lock.describeHolders()}`;
      }
    }
    if (eff === "p2m_locked") c.lockedWrites++;
    else if (eff === "atomic") c.atomicWrites++;
    else {
      c.unprotectedWrites++;
      c.violations++;
      this.record(
        "violation",
        "write",
        mfn,
        cpu,
        how,
        eff,
        why === "" ? "non-atomic write without the P2M write lock" : `non-atomic write without the P2M write lock (${why})`,
      );
    }
    return eff;
  }

  violations(): GfnFinding[] {
    return this.findings.filter((f) => f.severity === "violation");
  }

  notes(): GfnFinding[] {
    return this.findings.filter((f) => f.severity === "note");
  }

  reset(): void {
    for (const k of Object.keys(this.counts) as (keyof GfnAuditCounts)[]) this.counts[k] = 0;
    this.findings.length = 0;
  }

  private record(
    severity: GfnFinding["severity"],
    access: GfnFinding["access"],
    mfn: Mfn,
    cpu: number,
    declared: GfnAccessHow,
    effective: GfnAccessHow,
    reason: string,
  ): void {
    if (this.findings.length >= this.maxFindings) return;
    const context = this.lockdep !== null ? this.lockdep.context(cpu) : "";
    this.findings.push({ severity, access, mfn, cpu, declared, effective, context, reason });
  }
}
