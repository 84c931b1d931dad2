import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createMachine, type Machine } from "../../src/machine/machine.js";
import type { HypercallRequest } from "../../src/machine/api.js";
import { snapshotMachine, restoreMachine, stateHash } from "../../src/snapshot/index.js";
import { SnapshotFormatError, XenmmArgumentError, XenmmStateError } from "../../src/api/errors.js";
import { crc32 } from "../../src/snapshot/format.js";

const SELF = 0x7ff0;

// A hypercall mix that exercises grant tables, physmap and reservations,
// plus domain creation/destruction (slot reuse, teardown).
type Op = { req: HypercallRequest; caller: number } | { create: number } | { destroy: number };
const hcArb: fc.Arbitrary<{ req: HypercallRequest; caller: number }> = fc.oneof(
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("GNTTABOP_setup_table" as const), dom: fc.constant(SELF), nr_frames: fc.integer({ min: 0, max: 6 }) }) }),
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("GNTTABOP_set_version" as const), version: fc.constantFrom(1, 2) }) }),
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("GNTTABOP_get_status_frames" as const), dom: fc.constant(SELF), nr_frames: fc.integer({ min: 0, max: 3 }) }) }),
  fc.record({
    caller: fc.constantFrom(1, 2),
    req: fc.record({
      op: fc.constant("XENMEM_add_to_physmap" as const), domid: fc.constant(SELF),
      space: fc.constantFrom(0, 1), idx: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 }).map((i) => 0x80000000 + i)),
      gpfn: fc.integer({ min: 0x38000, max: 0x38008 }),
    }),
  }),
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("XENMEM_remove_from_physmap" as const), domid: fc.constant(SELF), gpfn: fc.integer({ min: 0x38000, max: 0x38008 }) }) }),
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("XENMEM_populate_physmap" as const), domid: fc.constant(SELF), extent_start: fc.array(fc.integer({ min: 0x50000, max: 0x50400 }), { minLength: 1, maxLength: 3 }), extent_order: fc.constantFrom(0, 0, 9) }) }),
  fc.record({ caller: fc.constantFrom(1, 2), req: fc.record({ op: fc.constant("XENMEM_decrease_reservation" as const), domid: fc.constant(SELF), extent_start: fc.array(fc.integer({ min: 0x40000, max: 0x40010 }), { minLength: 1, maxLength: 2 }) }) }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: hcArb },
  { weight: 1, arbitrary: fc.record({ create: fc.constantFrom(3, 4) }) },
  { weight: 1, arbitrary: fc.record({ destroy: fc.constantFrom(2, 3, 4) }) },
);

function apply(m: Machine, o: Op): unknown {
  if ("create" in o) {
    try { m.createDomain({ domid: o.create, ramPages: 4 }); return 0; } catch (e) { return (e as { rc?: number }).rc ?? String(e); }
  }
  if ("destroy" in o) return m.destroyDomain(o.destroy);
  if (!m.domain(o.caller)) return "no caller";
  return m.hypercall(o.req, { caller: o.caller });
}

async function fresh(arch: "arm64" | "arm32" = "arm64", revision: "pre" | "harden" | "gfn" | "head" = "head"): Promise<Machine> {
  const m = await createMachine({ arch, revision, ramFrames: 0x8000 });
  m.createDomain({ domid: 1, ramPages: 64 });
  m.createDomain({ domid: 2, ramPages: 16, privileged: true });
  return m;
}

const norm = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x)));

describe("snapshot / restore", () => {
  it("restore then continue == continue without the snapshot (fast-check)", async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom("arm64", "arm32"), fc.constantFrom("pre", "harden", "gfn", "head"), fc.array(opArb, { maxLength: 12 }), fc.array(opArb, { maxLength: 12 }), async (arch, rev, before, after) => {
      const a = await fresh(arch as "arm64", rev as "head");
      for (const o of before) apply(a, o);
      const h0 = stateHash(a);
      const snap = snapshotMachine(a);
      expect(stateHash(a)).toBe(h0); // snapshotting does not change the machine
      const b = await restoreMachine(snap);
      expect(stateHash(b)).toBe(h0);
      for (const o of after) {
        const ra = apply(a, o);
        const rb = apply(b, o);
        expect(norm(rb)).toEqual(norm(ra));
      }
      expect(stateHash(b)).toBe(stateHash(a));
      // a snapshot of the restored machine is byte-identical to one of the original
      expect(Buffer.compare(snapshotMachine(b), snapshotMachine(a))).toBe(0);
    }), { numRuns: 40 });
  }, 60_000);

  it("refuses to snapshot while an emulated lock is held", async () => {
    const m = await fresh();
    for (const _ of m.heapLock.lock(0)) { /* take it */ }
    expect(() => snapshotMachine(m)).toThrow(/heap_lock is held/);
    for (const _ of m.heapLock.unlock(0)) { /* drop it */ }
    expect(snapshotMachine(m).length).toBeGreaterThan(0);
  });

  it("state hash changes when state changes", async () => {
    const m = await fresh();
    const h = stateHash(m);
    expect(stateHash(m)).toBe(h);
    m.hypercall({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 3 }, { caller: 1 });
    expect(stateHash(m)).not.toBe(h);
  });

  describe("refuses bad snapshots without loading anything", async () => {
    const m = await fresh();
    m.hypercall({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 2 }, { caller: 1 });
    const good = snapshotMachine(m);
    const refuse = async (bytes: Uint8Array, problem: string) => {
      const err = await restoreMachine(bytes).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(SnapshotFormatError);
      expect(err.problem).toBe(problem);
      expect(err.message).toMatch(/^snapshot refused/);
    };
    it("truncated (any length)", async () => {
      for (const n of [0, 7, 40, 100, good.length >> 1, good.length - 1]) await refuse(good.subarray(0, n), n === 7 ? "magic" : "truncated");
    });
    it("corrupted (any single byte after the magic/version/length fields)", async () => {
      await fc.assert(fc.asyncProperty(fc.integer({ min: 64, max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, x) => {
        const bad = good.slice();
        bad[at] ^= x;
        await refuse(bad, "checksum");
      }), { numRuns: 30 });
    });
    it("another format version", async () => {
      const bad = good.slice();
      new DataView(bad.buffer).setUint32(8, 2, true);
      await refuse(bad, "version");
    });
    it("not a snapshot", async () => {
      await refuse(new TextEncoder().encode('{"ops": []}'.padEnd(100)), "magic");
    });
    it("a consistent checksum over inconsistent contents", async () => {
      const bad = good.slice();
      const dv = new DataView(bad.buffer);
      dv.setBigUint64(64 + 8, dv.getBigUint64(64 + 8, true) + 8n, true); // CORE section length
      dv.setUint32(bad.length - 4, crc32(bad.subarray(0, bad.length - 4)), true);
      await refuse(bad, "layout");
    });
    it("argument checks", async () => {
      await expect(restoreMachine("x" as any)).rejects.toBeInstanceOf(XenmmArgumentError);
      expect(() => snapshotMachine({} as any)).toThrow(XenmmArgumentError);
    });
  });
});
