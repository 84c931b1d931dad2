import { describe, expect, it } from "vitest";
import { GfnAudit, LockDep, RwLock, runToCompletion } from "../../src/locks/index.js";

function setup() {
  const ld = new LockDep();
  const p2m = new RwLock("d1.p2m_lock", "p2m_lock", { lockdep: ld });
  // mfn 0x100 is mapped by d1; mfn 0x200 by nobody.
  const audit = new GfnAudit({ p2mLockOf: (mfn) => (BigInt(mfn) === 0x100n ? p2m : null), lockdep: ld });
  return { ld, p2m, audit };
}

describe("GfnAudit", () => {
  it("flags an unprotected write but not an atomic or a locked one", () => {
    const { ld, p2m, audit } = setup();
    ld.setContext(0, "xenmem_add_to_physmap_one");
    runToCompletion((function* () { yield* p2m.writeLock(0); })());
    expect(audit.write(0x100n, 0, "p2m_locked")).toBe("p2m_locked");
    expect(audit.write(0x100n, 1, "atomic")).toBe("atomic");
    expect(audit.findings).toEqual([]);

    ld.setContext(1, "gnttab_unpopulate_status_frames");
    expect(audit.write(0x100n, 1, "unprotected")).toBe("unprotected");
    expect(audit.findings).toEqual([
      {
        severity: "violation",
        access: "write",
        mfn: 0x100n,
        cpu: 1,
        declared: "unprotected",
        effective: "unprotected",
        context: "gnttab_unpopulate_status_frames",
        reason: "non-atomic write without the P2M write lock",
      },
    ]);
    expect(audit.counts).toMatchObject({ writes: 3, lockedWrites: 1, atomicWrites: 1, unprotectedWrites: 1, violations: 1, notes: 0 });
  });

  it("downgrades a false p2m_locked claim (lock held by another CPU, only read-held, or page unmapped)", () => {
    const { p2m, audit } = setup();
    runToCompletion((function* () { yield* p2m.writeLock(2); })());
    expect(audit.write(0x100, 0, "p2m_locked")).toBe("unprotected");
    expect(audit.findings[0].reason).toBe(
      "non-atomic write without the P2M write lock (claimed d1.p2m_lock write lock, held by cpu2(write))",
    );
    p2m.reset();
    runToCompletion((function* () { yield* p2m.readLock(0); })());
    expect(audit.write(0x100, 0, "p2m_locked")).toBe("unprotected");
    expect(audit.read(0x100, 0, "p2m_locked")).toBe("p2m_locked"); // read lock suffices for reads
    expect(audit.write(0x200, 0, "p2m_locked")).toBe("unprotected");
    expect(audit.counts.downgraded).toBe(3);
    expect(audit.violations().map((f) => f.mfn)).toEqual([0x100, 0x100, 0x200]);
  });

  it("records unprotected reads as notes, not violations", () => {
    const { audit } = setup();
    expect(audit.read(0x100, 3, "unprotected")).toBe("unprotected");
    expect(audit.read(0x100, 3, "atomic")).toBe("atomic");
    expect(audit.read(0x100, 3, "p2m_locked")).toBe("unprotected");
    expect(audit.counts).toMatchObject({ reads: 3, unprotectedReads: 2, atomicReads: 1, violations: 0, notes: 2, downgraded: 1 });
    expect(audit.notes().map((f) => f.reason)).toEqual([
      "read without the P2M lock",
      "read without the P2M lock (claimed d1.p2m_lock, held by nobody)",
    ]);
    expect(audit.violations()).toEqual([]);
    audit.reset();
    expect(audit.counts.reads).toBe(0);
    expect(audit.findings).toEqual([]);
  });

  it("caps the findings list but keeps counting", () => {
    const p2m = new RwLock("d1.p2m_lock", "p2m_lock");
    const audit = new GfnAudit({ p2mLockOf: () => p2m, maxFindings: 2 });
    for (let i = 0; i < 5; i++) audit.write(i, 0, "unprotected");
    expect(audit.findings.length).toBe(2);
    expect(audit.counts.violations).toBe(5);
  });
});
