import { describe, it, expect } from "vitest";
import { createFuzzHost, type MachineHost } from "../../src/fuzz/machine-host.js";
import { OpGenerator, defaultDomains } from "../../src/fuzz/generator.js";
import { stateHash } from "../../src/snapshot/index.js";
import type { Arch, Revision } from "../../src/machine/api.js";

// The frame-record change log (assembly/mm/frame_log.ts, header H_HOOKS bit 1):
// the fuzz checker re-reads only the records it names, so a store it misses is
// a change the checker never sees.

/** count_info, type_info and v of every RAM frame, as u32 words. */
function records(host: MachineHost): Uint32Array {
  const ft = host.frameTable();
  const [lo, hi] = host.ramRange();
  const u = new Uint32Array(ft.memory.buffer);
  const is64 = host.arch === "arm64";
  const out = new Uint32Array((hi - lo) * 6);
  for (let m = lo; m < hi; m++) {
    const w = (ft.ptr + (m - ft.basePdx) * ft.entrySize) >>> 2;
    if (is64) for (let k = 0; k < 6; k++) out[(m - lo) * 6 + k] = u[w + 4 + k];
    else for (let k = 0; k < 3; k++) out[(m - lo) * 6 + k] = u[w + 2 + k];
  }
  return out;
}

function run(host: MachineHost, step: ReturnType<OpGenerator["next"]>): void {
  if (step.kind === "call") { if (host.canCall(step.call.caller)) host.call(step.call.caller, step.call.req); }
  else if (step.kind === "par") { for (const c of step.calls) if (host.canCall(c.caller)) host.call(c.caller, c.req); }
  else if (step.kind === "create") host.createDomain(step.domid);
  else host.destroyDomain(step.domid);
}

describe("frame-record change log (H_HOOKS bit 1)", () => {
  it("logs nothing until the hook is on", async () => {
    const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
    const core = host.m.core as any;
    const n0 = core.frame_log_count();
    host.call(1, { op: "XENMEM_populate_physmap", domid: 1, extent_start: [0x50000], nr_extents: 1, extent_order: 0, mem_flags: 0 });
    expect(core.frame_log_count()).toBe(n0);
    const out: number[] = [];
    expect(host.changedFrames(out)).toBe(false); // starts the log
    host.call(1, { op: "XENMEM_populate_physmap", domid: 1, extent_start: [0x50001], nr_extents: 1, extent_order: 0, mem_flags: 0 });
    expect(core.frame_log_count()).toBeGreaterThan(n0);
    expect(host.changedFrames(out)).toBe(true);
    expect(out).toContain(Number(host.m.p2mEntry(1, 0x50001n).mfn));
  });

  for (const [revision, arch] of [["head", "arm64"], ["pre", "arm32"], ["gfn", "arm64"]] as Array<[Revision, Arch]>) {
    it(`names every frame whose count_info, type_info or owner a step changed (${revision} ${arch})`, async () => {
      const host = await createFuzzHost({ revision, arch, domains: defaultDomains() });
      const gen = new OpGenerator(7, { domains: defaultDomains(), arch, interleave: true });
      const [lo] = host.ramRange();
      const out: number[] = [];
      host.changedFrames(out);
      let before = records(host);
      let changedSteps = 0;
      for (let i = 0; i < 300 && host.crash() === null; i++) {
        run(host, gen.next());
        const now = records(host);
        const complete = host.changedFrames(out);
        const logged = new Set(out);
        const missed: number[] = [];
        for (let k = 0; k < now.length; k++) {
          if (now[k] === before[k]) continue;
          const m = lo + Math.floor(k / 6);
          if (!logged.has(m) && !missed.includes(m)) missed.push(m);
        }
        if (complete) expect(missed, `step ${i}`).toEqual([]);
        if (out.length > 0) changedSteps++;
        before = now;
      }
      expect(changedSteps).toBeGreaterThan(10); // the loop saw changes (arm32 runs may end early in a hypervisor crash)
    });
  }

  it("is not machine state: stateHash is the same with the hook on or off", async () => {
    const world = { revision: "head" as const, arch: "arm64" as const, domains: defaultDomains() };
    const a = await createFuzzHost(world), b = await createFuzzHost(world);
    a.changedFrames([]);
    const ga = new OpGenerator(3, { domains: defaultDomains() }), gb = new OpGenerator(3, { domains: defaultDomains() });
    for (let i = 0; i < 100; i++) { run(a, ga.next()); run(b, gb.next()); }
    expect((a.m.core as any).frame_log_count()).toBeGreaterThan(0n);
    expect((b.m.core as any).frame_log_count()).toBe(0n);
    expect(stateHash(a.m)).toBe(stateHash(b.m));
  });
  // MachineHost.nextInUse keeps the in-use frames from the log instead of scanning 16 Ki records:
  // it must name exactly the frames a scan finds, and reading the log for it must not take
  // records from changedFrames.
  for (const [revision, arch] of [["head", "arm64"], ["pre", "arm32"]] as Array<[Revision, Arch]>) {
    it(`nextInUse from the log equals a frame-table scan; changedFrames still names every change (${revision} ${arch})`, async () => {
      const host = await createFuzzHost({ revision, arch, domains: defaultDomains() });
      const gen = new OpGenerator(11, { domains: defaultDomains(), arch, interleave: true });
      const [lo, hi] = host.ramRange();
      const is64 = arch === "arm64";
      const scan = (): number[] => {
        const r = records(host);
        const xs: number[] = [];
        for (let m = lo; m < hi; m++) if (((r[(m - lo) * 6 + (is64 ? 1 : 0)] >>> 23) & 3) !== 3) xs.push(m);
        return xs;
      };
      const viaLog = (): number[] => {
        const xs: number[] = [];
        for (let m = host.nextInUse(lo); m >= 0; m = host.nextInUse(m + 1)) xs.push(m);
        return xs;
      };
      const out: number[] = [];
      host.changedFrames(out);
      let before = records(host);
      for (let i = 0; i < 300 && host.crash() === null; i++) {
        run(host, gen.next());
        expect(viaLog(), `step ${i}`).toEqual(scan());
        if (i % 3 !== 0) continue;
        const now = records(host);
        const complete = host.changedFrames(out);
        const logged = new Set(out);
        for (let k = 0; k < now.length; k++) if (complete && now[k] !== before[k]) expect(logged.has(lo + Math.floor(k / 6)), `step ${i}`).toBe(true);
        before = now;
      }
      // More records than the ring holds (4096): both readers start over.
      const core = host.m.core as any;
      for (let k = 0; k < 5000; k++) core.frame_log_note(BigInt(lo + (k % 64)));
      run(host, gen.next());
      expect(viaLog()).toEqual(scan());
      expect(host.changedFrames(out)).toBe(false);
      host.call(1, { op: "XENMEM_populate_physmap", domid: 1, extent_start: [0x50000], nr_extents: 1, extent_order: 0, mem_flags: 0 });
      expect(viaLog()).toEqual(scan());
      expect(host.changedFrames(out)).toBe(true);
    });
  }
});
