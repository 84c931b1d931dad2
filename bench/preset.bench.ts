// The qemu-virt-dom0 preset: building it, and replaying a 400-operation dom0
// sequence from it (bench/preset-sequence.ts) at each revision, against the bare
// hypercall rate of bench/host.bench.ts's style (an add_to_physmap(shared_info) +
// remove_from_physmap pair on a small machine), in the same run.
//
//   npx tsx bench/preset.bench.ts            (arm64)
//   XENMM_ARCH=arm32 npx tsx bench/preset.bench.ts
import Benchmark from "benchmark";
import { createMachine, type Machine } from "../src/machine/machine.js";
import type { Arch, HypercallRequest, Revision } from "../src/machine/api.js";
import { REVISIONS } from "../src/machine/api.js";
import { buildPreset, presetPlanOf } from "../src/presets/index.js";
import { dom0Sequence, DOMU, type SeqOp } from "./preset-sequence.js";

const arch = (process.env.XENMM_ARCH ?? "arm64") as Arch;

// ---- 1. build cost -------------------------------------------------------------------
async function buildTimes(rev: Revision, n: number): Promise<number[]> {
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await buildPreset("qemu-virt-dom0", { arch, revision: rev });
    ts.push(performance.now() - t0);
  }
  return ts.sort((a, b) => a - b);
}
await buildPreset("qemu-virt-dom0", { arch }); // compile + JIT warm-up
console.log(`# qemu-virt-dom0 (${arch})`);
console.log("build (ms)      best  median  worst");
for (const rev of REVISIONS) {
  const ts = await buildTimes(rev, 15);
  console.log(`  ${rev.padEnd(8)}  ${ts[0].toFixed(1).padStart(6)}  ${ts[7].toFixed(1).padStart(6)}  ${ts[14].toFixed(1).padStart(6)}`);
}

// ---- 2. replay -------------------------------------------------------------------------
function replay(m: Machine, seq: SeqOp[]): number {
  let bad = 0;
  const opts = { caller: 0, vcpu: 0 };
  for (const s of seq) {
    const r = m.hypercall(s.req, opts);
    if (r.rc !== s.rc) bad++;
    else if (s.errs) { const e = r.errs as number[]; for (let i = 0; i < s.errs.length; i++) if (e[i] !== s.errs[i]) bad++; }
  }
  return bad;
}

const machines = new Map<Revision, { m: Machine; seq: SeqOp[] }>();
for (const rev of REVISIONS) {
  const m = await buildPreset("qemu-virt-dom0", { arch, revision: rev });
  m.createDomain(DOMU);
  const seq = dom0Sequence(presetPlanOf(m)!);
  const bad = replay(m, seq) + replay(m, seq); // twice: the sequence is replayable
  if (bad) throw new Error(`${rev}: ${bad} unexpected results in the 400-op sequence`);
  if (m.crashed) throw new Error(`${rev}: crashed: ${m.crashed.path}`);
  machines.set(rev, { m, seq });
}

// Bare hypercall rate (host.bench.ts style): shared_info add + remove on a small machine.
const small = await createMachine({ arch, revision: "head", ramFrames: 0x40000 });
small.createDomain({ domid: 1, privileged: true, ramPages: 16 });
const G = 0x80000n;
const add: HypercallRequest = { op: "XENMEM_add_to_physmap", domid: 1, space: 0, idx: 0, gpfn: G };
const rem: HypercallRequest = { op: "XENMEM_remove_from_physmap", domid: 1, gpfn: G };
// The same pair on the head preset machine (dom0 at a hole gfn of the grant region).
const ph = machines.get("head")!.m;
const pg = presetPlanOf(ph)!.grant.region.gfn + 60n;
const padd: HypercallRequest = { op: "XENMEM_add_to_physmap", domid: 0, space: 1, idx: 6, gpfn: pg };
const prem: HypercallRequest = { op: "XENMEM_remove_from_physmap", domid: 0, gpfn: pg };

let bad = 0;
const hz: Record<string, number> = {};
await new Promise<void>((resolve) => {
  const suite = new Benchmark.Suite("preset");
  suite.add("bare hypercall pair (small machine)", () => {
    if (small.hypercall(add, { caller: 1 }).rc !== 0) bad++;
    if (small.hypercall(rem, { caller: 1 }).rc !== 0) bad++;
  });
  suite.add("same pair on the preset (head)", () => {
    if (ph.hypercall(padd, { caller: 0 }).rc !== 0) bad++;
    if (ph.hypercall(prem, { caller: 0 }).rc !== 0) bad++;
  });
  for (const rev of REVISIONS) {
    const { m, seq } = machines.get(rev)!;
    suite.add(`400-op dom0 sequence (${rev})`, () => { bad += replay(m, seq); });
  }
  suite
    .on("cycle", (e: any) => {
      const t = e.target;
      hz[t.name] = t.name.startsWith("400") ? t.hz * 400 : t.hz * 2;
      console.log(`${t.name}: ${(hz[t.name] / 1e3).toFixed(1)} k ops/s (±${t.stats.rme.toFixed(1)}%)`);
    })
    .on("complete", () => resolve())
    .run({ async: false });
});
const bare = hz["bare hypercall pair (small machine)"];
console.log("\nops/s relative to the bare hypercall rate:");
for (const rev of REVISIONS) {
  const k = `400-op dom0 sequence (${rev})`;
  console.log(`  ${rev.padEnd(8)} ${(hz[k] / 1e3).toFixed(1)} k ops/s = ${(hz[k] / bare).toFixed(2)}x bare`);
}
console.log(`errors ${bad}`);
if (bad) process.exitCode = 1;
