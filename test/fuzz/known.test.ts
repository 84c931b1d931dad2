// Known-finding triage: each known finding is matched by its cause, and a
// state that merely lands in the same invariant is still a violation.
import { describe, expect, it } from "vitest";
import { KnownTriage, racingDecreases, type TriageContext } from "../../src/fuzz/known.js";
import type { FuzzCall } from "../../src/fuzz/generator.js";
import { policyFor } from "../../src/revisions/index.js";
import { DOMID_SELF } from "../../src/machine/api.js";

const dec = (caller: number, domid: number, gfns: number[], order = 0): FuzzCall => ({
  caller,
  req: { op: "XENMEM_decrease_reservation", domid, extent_start: gfns, nr_extents: gfns.length, extent_order: order, mem_flags: 0 },
});
const pop = (caller: number, gfns: number[]): FuzzCall => ({
  caller,
  req: { op: "XENMEM_populate_physmap", domid: caller, extent_start: gfns, nr_extents: gfns.length, extent_order: 0, mem_flags: 0 },
});

describe("racingDecreases", () => {
  it("needs two decreases of one domain with a common GFN", () => {
    expect(racingDecreases([dec(0, 0, [0x38002]), dec(0, 0, [0x38002, 0x40001]), pop(0, [0])])).toBe(true);
    expect(racingDecreases([dec(0, 0, [0x38002]), dec(0, 0, [0x38003])])).toBe(false);
    expect(racingDecreases([dec(0, 0, [0x38002]), pop(0, [0x38002])])).toBe(false);
    // Different domains never race on one P2M.
    expect(racingDecreases([dec(1, 1, [0x40000]), dec(2, 2, [0x40000])])).toBe(false);
    // DOMID_SELF resolves to the caller; an order-1 extent covers two GFNs.
    expect(racingDecreases([dec(1, DOMID_SELF, [0x40000], 1), dec(1, 1, [0x40001])])).toBe(true);
  });
});

describe("KnownTriage", () => {
  const ctx = (rev: "gfn" | "head", calls: FuzzCall[], inPar: boolean, crashed: number[] = []): TriageContext => ({
    policy: policyFor(rev),
    calls,
    inPar,
    crashed: (d) => crashed.includes(d),
  });

  it("files the decrease race only for an interleaved group that has the race's precondition", () => {
    const t = new KnownTriage();
    const race = [dec(0, 0, [0x38002]), dec(0, 0, [0x38002]), pop(0, [0])];
    expect(t.classify({ invariant: "p2m-ref", sub: "free", domid: 0, gfn: 0, mfn: 0x43ff9 }, ctx("head", race, false))).toBeNull();
    expect(t.classify({ invariant: "refcount", sub: "", mfn: 0x43ff9 }, ctx("head", race, true))).toBeNull();
    expect(t.classify({ invariant: "p2m-ref", sub: "free", domid: 0, gfn: 0, mfn: 0x43ff9 }, ctx("head", race, true))).toBe("decrease-reservation-race");
    // A later sequential step that sees the same frame is the same finding ...
    expect(t.classify({ invariant: "p2m-ref", sub: "free", domid: 0, gfn: 0, mfn: 0x43ff9 }, ctx("head", [pop(0, [5])], false))).toBe("decrease-reservation-race");
    // ... another frame is not.
    expect(t.classify({ invariant: "p2m-ref", sub: "free", domid: 0, gfn: 1, mfn: 0x43ff8 }, ctx("head", [pop(0, [5])], false))).toBeNull();
    t.forget(0x43ff9);
    expect(t.classify({ invariant: "p2m-ref", sub: "free", domid: 0, gfn: 0, mfn: 0x43ff9 }, ctx("head", [pop(0, [5])], false))).toBeNull();
  });

  it("files a count-0 frame in a crashed domain only where the grant lock covers the P2M update (not XSA-486 at gfn)", () => {
    const c = { invariant: "p2m-ref", sub: "count0", domid: 1, gfn: 0, mfn: 0x43ff3 };
    expect(new KnownTriage().classify(c, ctx("head", [], true, [1]))).toBe("v2v1-crash-foreign-ref");
    expect(new KnownTriage().classify(c, ctx("head", [], true, []))).toBeNull();
    expect(new KnownTriage().classify(c, ctx("gfn", [], true, [1]))).toBeNull();
    expect(new KnownTriage().classify({ ...c, sub: "free" }, ctx("head", [], true, [1]))).toBeNull();
  });
});
