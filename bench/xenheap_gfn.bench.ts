// page_set_xenheap_gfn / page_get_xenheap_gfn over 1M frames: the Wasm core
// (one batched call) against a plain-TypeScript implementation of the same
// operations over the same 56-byte records, in the same run.
import Benchmark from "benchmark";
import { createCoreInstance } from "../src/core/wasm.js";

const N = 1 << 20;
const GFN_MASK = 0x1FFFFFFFFFFFFFFFn;
const PGC_xen_heap = 0x4000000000000000n;

const core = await createCoreInstance("release");
// gfn revision features: REMOVE_CHECKS_MFN | GFN_IN_PAGE_INFO | TYPE_INFO_INITIALIZER
core.machine_init(0, 2, 0b111, 0x100000n, BigInt(N), 0n, 0n);
const first = core.alloc_heap_pages(1, 36, 18, 0x100);
const chunks = [first];
for (let i = 1; i < N >> 18; i++) chunks.push(core.alloc_heap_pages(1, 36, 18, 0x100));
chunks.sort((a, b) => (a < b ? -1 : 1));
const base = chunks[0];
core.mark_xen_heap_range(base, N);

// Plain TS: the same layout in an ArrayBuffer, BigInt words as a TS port would use.
const ts = new ArrayBuffer(N * 56);
const words = new BigUint64Array(ts);
for (let i = 0; i < N; i++) { words[i * 7 + 2] = PGC_xen_heap; words[i * 7 + 3] = GFN_MASK; }
function tsSet(i: number, gfn: bigint) {
  if ((words[i * 7 + 2] & PGC_xen_heap) === 0n) throw new Error("not xenheap");
  const g = gfn === 0xFFFFFFFFFFFFFFFFn ? GFN_MASK : gfn;
  let y = words[i * 7 + 3], x: bigint;
  do { x = y; const nx = (x & ~GFN_MASK) | g; y = words[i * 7 + 3]; if (y === x) words[i * 7 + 3] = nx; } while (y !== x);
}
function tsGet(i: number): bigint {
  const g = words[i * 7 + 3] & GFN_MASK;
  if ((words[i * 7 + 2] & PGC_xen_heap) === 0n) throw new Error("not xenheap");
  return g === GFN_MASK ? 0xFFFFFFFFFFFFFFFFn : g;
}

let sink = 0n;
const results: Record<string, number> = {};
await new Promise<void>((resolve) => {
  new Benchmark.Suite("xenheap gfn, 1M frames")
    .add("wasm set+get (batched)", () => {
      core.xenheap_gfn_set_range(base, N, 0x80000n);
      sink += core.xenheap_gfn_get_range(base, N);
    })
    .add("typescript set+get", () => {
      for (let i = 0; i < N; i++) tsSet(i, 0x80000n + BigInt(i));
      for (let i = 0; i < N; i++) sink += tsGet(i);
    })
    .on("cycle", (e: any) => {
      const opsPerSec = e.target.hz * N * 2;
      results[e.target.name] = opsPerSec;
      console.log(`${e.target.name}: ${(opsPerSec / 1e6).toFixed(1)} M gfn ops/s (±${e.target.stats.rme.toFixed(1)}%)`);
    })
    .on("complete", () => resolve())
    .run({ async: false });
});
const r = results["wasm set+get (batched)"] / results["typescript set+get"];
console.log(`ratio wasm/ts: ${r.toFixed(1)}x   (sink ${sink & 0xffn})`);
