// Cost of the hooks (src/hooks): hypercall rate of
//   A  a machine never observed,
//   B  a machine whose observers were all removed ("hooks compiled in, none installed"),
//   C  one hypercall-exit observer installed,
//   D  one P2M-change observer installed (core log on, drained per hypercall).
// Workload: XENMEM_add_to_physmap(shared_info) + XENMEM_remove_from_physmap
// pairs (each pair writes the P2M). Rounds interleave A-D; medians reported.
import { createMachine } from "../src/machine/machine.js";
import type { HypercallRequest } from "../src/machine/api.js";
import { observe } from "../src/hooks/index.js";

const opts = { caller: 1, vcpu: 0 };
const add: HypercallRequest = { op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: 0, idx: 0, gpfn: 0x80000 };
const rem: HypercallRequest = { op: "XENMEM_remove_from_physmap", domid: 0x7ff0, gpfn: 0x80000 };

async function machine() {
  const m = await createMachine({ ramFrames: 0x10000 });
  m.createDomain({ domid: 1, ramPages: 16 });
  return m;
}
const A = await machine();
const B = await machine();
observe(B, { hypercallExit: () => {}, p2mChange: () => {}, lock: () => {} })();
const C = await machine();
let exits = 0;
observe(C, { hypercallExit: () => { exits++; } });
const D = await machine();
let changes = 0;
observe(D, { p2mChange: () => { changes++; } });

const PAIRS = 2000;
function rate(m: typeof A): number {
  const t0 = performance.now();
  for (let i = 0; i < PAIRS; i++) {
    if (m.hypercall(add, opts).rc !== 0 || m.hypercall(rem, opts).rc !== 0) throw new Error("hypercall failed");
  }
  return (2 * PAIRS) / ((performance.now() - t0) / 1000);
}
for (const m of [A, B, C, D]) rate(m); // warm-up
const samples: Record<string, number[]> = { A: [], B: [], C: [], D: [] };
const ROUNDS = 15;
for (let r = 0; r < ROUNDS; r++) {
  samples.A.push(rate(A));
  samples.B.push(rate(B));
  samples.C.push(rate(C));
  samples.D.push(rate(D));
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const a = med(samples.A), b = med(samples.B), c = med(samples.C), d = med(samples.D);
const fmt = (x: number) => `${Math.round(x).toLocaleString("en")} hypercalls/s`;
console.log(`A no observers ever            ${fmt(a)}  (1.000)`);
console.log(`B hooks compiled in, none      ${fmt(b)}  (${(b / a).toFixed(3)})`);
console.log(`C one hypercall-exit observer  ${fmt(c)}  (${(c / a).toFixed(3)})`);
console.log(`D one P2M-change observer      ${fmt(d)}  (${(d / a).toFixed(3)})  ${(changes / (ROUNDS + 1) / PAIRS / 2).toFixed(1)} P2M events/hypercall`);
console.log(`ratio B/A = ${(b / a).toFixed(3)} (1.000 = no cost; noise between rounds: A ranged ${fmt(Math.min(...samples.A))} .. ${fmt(Math.max(...samples.A))})`);
if (exits === 0) throw new Error("observer C never ran");
