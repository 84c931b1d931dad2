// Host dispatch + locking overhead: hypercalls through machine.hypercall()
// against the bare core P2M operations they end in, in the same run.
//  1. XENMEM_add_to_physmap(shared_info) + XENMEM_remove_from_physmap pairs
//     vs core p2m_insert_mapping + p2m_remove_mapping (+ the GFN store/clear).
//  2. XENMEM_add_to_physmap_batch(gmfn_foreign) with 1024 entries
//     vs 1024 core set_foreign_p2m_entry calls; both followed by a core
//     p2m_unmap_range_4k of the range (drops the references), in both arms.
import Benchmark from "benchmark";
import { createMachine } from "../src/machine/machine.js";
import type { HypercallRequest } from "../src/machine/api.js";

const m = await createMachine({ revision: "gfn", ramFrames: 0x40000 });
const D = m.createDomain({ domid: 1, privileged: true, ramPages: 16 });
const F = m.createDomain({ domid: 2, ramPages: 1024 });
const c: any = m.core;
const G = 0x80000n;
const si = D.sharedInfo;
const opts = { caller: 1, vcpu: 0 };
const add: HypercallRequest = { op: "XENMEM_add_to_physmap", domid: 1, space: 0, idx: 0, gpfn: G };
const rem: HypercallRequest = { op: "XENMEM_remove_from_physmap", domid: 1, gpfn: G };
const N = 1024;
const idxs = Array.from({ length: N }, (_, i) => 0x40000n + BigInt(i));
const gpfns = Array.from({ length: N }, (_, i) => 0x90000n + BigInt(i));
const batch: HypercallRequest = { op: "XENMEM_add_to_physmap_batch", domid: 1, space: 4, size: N, foreign_domid: 2, idxs, gpfns };
const fmfns = idxs.map((g) => m.p2mEntry(2, g).mfn);

let bad = 0;
const results: Record<string, number> = {};
await new Promise<void>((resolve) => {
  new Benchmark.Suite("host layer")
    .add("hypercall add+remove pair", () => {
      if (m.hypercall(add, opts).rc !== 0) bad++;
      if (m.hypercall(rem, opts).rc !== 0) bad++;
    })
    .add("core insert+remove pair", () => {
      if (c.p2m_insert_mapping(D.slot, G, 1n, si, 1) !== 0) bad++;
      c.page_set_xenheap_gfn(si, G);
      if (c.p2m_remove_mapping(D.slot, G, 1n, si) !== 0) bad++;
    })
    .add("hypercall batch gmfn_foreign x1024", () => {
      const r = m.hypercall(batch, opts);
      if (r.rc !== 0) bad++;
      c.p2m_unmap_range_4k(D.slot, 0x90000n, N);
    })
    .add("core set_foreign_p2m_entry x1024", () => {
      for (let i = 0; i < N; i++) if (c.set_foreign_p2m_entry(D.slot, F.slot, gpfns[i], fmfns[i]) !== 0) bad++;
      c.p2m_unmap_range_4k(D.slot, 0x90000n, N);
    })
    .on("cycle", (e: any) => {
      results[e.target.name] = e.target.hz;
      const per = e.target.name.includes("1024") ? `${((e.target.hz * N) / 1e3).toFixed(0)} k entries/s` : `${(e.target.hz / 1e3).toFixed(1)} k pairs/s`;
      console.log(`${e.target.name}: ${per} (±${e.target.stats.rme.toFixed(1)}%)`);
    })
    .on("complete", () => resolve())
    .run({ async: false });
});
const r1 = results["core insert+remove pair"] / results["hypercall add+remove pair"];
const r2 = results["core set_foreign_p2m_entry x1024"] / results["hypercall batch gmfn_foreign x1024"];
console.log(`overhead (core/hypercall): add+remove ${r1.toFixed(2)}x, batch ${r2.toFixed(2)}x (goal < 2x); errors ${bad}; crashed ${m.crashed ? m.crashed.path : "no"}`);
