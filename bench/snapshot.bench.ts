// Snapshot / restore / state-hash time for a machine with 1M mapped pages.
//   1. a guest with 1M pages of RAM from createDomain (the allocator hands out
//      order-18 chunks, mapped as 1 GiB blocks),
//   2. the same plus 1M further pages mapped 4 KiB at a time through the core
//      (p2m_map_range_4k: 2048 level-3 tables, 8 MiB of table pages).
import { createMachine } from "../src/machine/machine.js";
import { snapshotMachine, restoreMachine, stateHash } from "../src/snapshot/index.js";

const M = 1 << 20;
async function time<T>(f: () => T | Promise<T>, reps = 3): Promise<{ ms: number; v: T }> {
  let best = Infinity, v!: T;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    v = await f();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, v };
}
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

for (const variant of ["blocks", "4k"] as const) {
  const m = await createMachine({ ramFrames: 0x280000 }); // 10 GiB of RAM: 2.5M frames
  const d = m.createDomain({ domid: 1, ramPages: M, maxPages: 2 * M + 1024 });
  if (variant === "4k") {
    const c: any = m.core;
    const rc = c.p2m_map_range_4k(d.slot, 0x1000000n, 0x40000n, M, 2 /* ram_ro */);
    if (rc !== 0) throw new Error(`p2m_map_range_4k: ${rc}`);
  }
  const h = stateHash(m);
  const snap = await time(() => snapshotMachine(m));
  const rest = await time(() => restoreMachine(snap.v));
  const hash = await time(() => stateHash(m));
  if (stateHash(rest.v) !== h) throw new Error("restored machine differs");
  console.log(`${variant === "blocks" ? "1M pages as 1G blocks      " : "+1M pages as 4K leaves     "} core ${mb(m.core.mem_top())}, snapshot ${mb(snap.v.length)}: snapshot ${snap.ms.toFixed(0)} ms, restore ${rest.ms.toFixed(0)} ms, stateHash ${hash.ms.toFixed(0)} ms`);
}
