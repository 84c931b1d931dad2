import { describe, it, expect } from "vitest";
import { createFuzzHost } from "../../src/fuzz/machine-host.js";
import { OpGenerator, defaultDomains, type FuzzStep } from "../../src/fuzz/generator.js";
import type { FuzzHost } from "../../src/fuzz/host.js";
import { stateHash } from "../../src/snapshot/index.js";
import type { Arch, Revision } from "../../src/machine/api.js";
import type { MachineImpl } from "../../src/machine/machine.js";

// Domain.grantGen: the checker skips re-reading a domain's grant and
// shared_info frames while it is unchanged, so every change must bump it.

/** A generated step run straight on the host (par groups sequentially), with no checker. */
function runUnchecked(host: FuzzHost, s: FuzzStep): void {
  if (s.kind === "call") { if (host.canCall(s.call.caller)) host.call(s.call.caller, s.call.req); }
  else if (s.kind === "par") { for (const c of s.calls) if (host.canCall(c.caller)) host.call(c.caller, c.req); }
  else if (s.kind === "create") host.createDomain(s.domid);
  else host.destroyDomain(s.domid);
}

/** Everything the fuzz host's grant view and sharedInfoMfn describe, per domain. */
function grantState(m: MachineImpl): Map<number, string> {
  const out = new Map<number, string>();
  for (const [id, d] of m.domains) {
    const g = d.grant;
    out.set(id, JSON.stringify({
      g: g && { v: g.version, nG: g.nrGrantFrames, nS: g.nrStatusFrames, sh: g.shared.map(String), st: g.status.map(String), shG: g.sharedGfn?.map(String) ?? null, stG: g.statusGfn?.map(String) ?? null },
      si: String(d.sharedInfo),
    }));
  }
  return out;
}

describe("Domain.grantGen", () => {
  for (const [revision, arch] of [["pre", "arm64"], ["harden", "arm32"], ["head", "arm64"]] as Array<[Revision, Arch]>) {
    it(`changes whenever a domain's grant frames, stored GFNs, version or shared_info change (${revision} ${arch})`, async () => {
      const host = await createFuzzHost({ revision, arch, domains: defaultDomains() });
      const m = host.m;
      const gen = new OpGenerator(11, { domains: defaultDomains(), arch, interleave: true });
      let before = grantState(m);
      let gens = new Map([...m.domains].map(([id, d]) => [id, [d, d.grantGen] as const]));
      let changes = 0;
      for (let i = 0; i < 400 && host.crash() === null; i++) {
        const s = gen.next();
        runUnchecked(host, s);
        const now = grantState(m);
        for (const [id, st] of now) {
          const g = gens.get(id);
          if (g === undefined || g[0] !== m.domain(id) || g[1] !== m.domain(id)!.grantGen) continue;
          expect(st, `step ${i} d${id}: changed without a grantGen bump`).toBe(before.get(id));
        }
        for (const [id, st] of now) if (before.get(id) !== undefined && before.get(id) !== st) changes++;
        before = now;
        gens = new Map([...m.domains].map(([id, d]) => [id, [d, d.grantGen] as const]));
      }
      expect(changes).toBeGreaterThan(2); // the run did change grant state (arm32 runs may end early in a hypervisor crash)
    });
  }

  it("is not machine state", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const d = host.m.domain(1)!;
    expect(Object.keys(d)).not.toContain("grantGen");
    const h = stateHash(host.m);
    d.grantGen += 5;
    expect(stateHash(host.m)).toBe(h);
  });

  it("moves xenheapGen whenever xenheapChanged has news for a domain of an unchanged set", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const gen = new OpGenerator(5, { domains: defaultDomains(), interleave: true });
    const seen = new Map<number, unknown[]>();
    let ids = host.domids().join(), g = host.xenheapGen(), quiet = 0;
    for (let i = 0; i < 400 && host.crash() === null; i++) {
      const s = gen.next();
      runUnchecked(host, s);
      host.invalidate();
      const same = host.domids().join() === ids && host.xenheapGen() === g;
      for (const d of host.domids()) {
        if (!seen.has(d)) seen.set(d, []);
        const changed = host.xenheapChanged(d, seen.get(d)!);
        if (same && i > 0) expect(changed, `step ${i} d${d}`).toBe(false);
      }
      if (same) quiet++;
      ids = host.domids().join();
      g = host.xenheapGen();
    }
    expect(quiet).toBeGreaterThan(100); // most steps change no grant state
  });

  it("lets xenheapChanged answer without the grant view when nothing changed", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const seen: unknown[] = [];
    expect(host.xenheapChanged(1, seen)).toBe(true);
    host.call(1, { op: "XENMEM_populate_physmap", domid: 1, extent_start: [0x50000], nr_extents: 1, extent_order: 0, mem_flags: 0 });
    host.invalidate();
    expect(host.xenheapChanged(1, seen)).toBe(false);
    host.call(1, { op: "GNTTABOP_set_version", version: 2 });
    host.invalidate();
    expect(host.xenheapChanged(1, seen)).toBe(true); // status frames now exist
    expect(host.xenheapChanged(1, seen)).toBe(false);
  });
});

// The checker compares the domain set and dying flags only when domids()
// hands out a new array or lifeGen() moved.
describe("MachineHost.lifeGen", () => {
  it("moves whenever a domain of an unchanged domids() array starts dying", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const gen = new OpGenerator(9, { domains: defaultDomains(), interleave: true });
    let ids = host.domids(), life = host.lifeGen(), dying = ids.map((d) => host.dying(d)), kept = 0;
    for (let i = 0; i < 600 && host.crash() === null; i++) {
      const s = gen.next();
      runUnchecked(host, s);
      const now = host.domids();
      if (now === ids && host.lifeGen() === life) {
        expect(now.map((d) => host.dying(d)), `step ${i}`).toEqual(dying);
        kept++;
      }
      ids = now;
      life = host.lifeGen();
      dying = ids.map((d) => host.dying(d));
    }
    expect(kept).toBeGreaterThan(100);
    const before = host.lifeGen();
    host.destroyDomain(2);
    expect(host.lifeGen()).not.toBe(before);
  });
});
