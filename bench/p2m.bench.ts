// P2M benchmarks: npx tsx bench/p2m.bench.ts  (release core)
import Benchmark from "benchmark";
import { createCoreInstance } from "../src/core/wasm.js";

const RAM_START = 0x40000n;
const G1 = 1n << 18n;

async function fresh(ramFrames: bigint) {
  const core = await createCoreInstance("release");
  core.machine_init(0, 3, 0xfff, RAM_START, ramFrames, 0n, 0n);
  if (core.p2m_geometry_init(48, false) !== 0) throw new Error("geometry");
  core.domain_slot_init(1, 1, 0, 1n << 40n);
  if (core.p2m_init(1) !== 0) throw new Error("p2m_init");
  return core;
}

function fmt(n: number): string { return n.toLocaleString("en-US", { maximumFractionDigits: 0 }); }

async function main() {
  const core = await fresh(0x20000n);
  let gfn = 0x100000n;
  const suite = new Benchmark.Suite("p2m");
  suite
    .add("4K map+unmap (512 pages per call pair)", () => {
      if (core.p2m_map_range_4k(1, gfn, 0x2000000n, 512, 1) !== 0) throw new Error("map");
      if (core.p2m_unmap_range_4k(1, gfn, 512) !== 0) throw new Error("unmap");
    })
    .add("4K map+unmap (single p2m_set_entry calls)", () => {
      core.p2m_set_entry(1, gfn + 7n, 1n, 0x2000007n, 1, 7);
      core.p2m_set_entry(1, gfn + 7n, 1n, 0xffffffffffffffffn, 0, 7);
    })
    .add("2M block map+unmap", () => {
      core.p2m_set_entry(1, 0x200000n, 512n, 0x3000000n, 1, 7);
      core.p2m_set_entry(1, 0x200000n, 512n, 0xffffffffffffffffn, 0, 7);
    })
    .add("1G block map, 4K removal (1G->2M->4K split), 1G removal", () => {
      core.p2m_set_entry(1, 4n * G1, G1, 8n * G1, 1, 7);
      core.p2m_set_entry(1, 4n * G1 + 12345n, 1n, 0xffffffffffffffffn, 0, 7);
      core.p2m_set_entry(1, 4n * G1, G1, 0xffffffffffffffffn, 0, 7);
    })
    .add("lookup batch (4096 GFNs per call)", () => {
      core.p2m_lookup_batch(1, lbuf, 4096);
    })
    .on("cycle", (e: any) => {
      const b = e.target;
      const perOp = 1e9 / b.hz;
      let extra = "";
      if (b.name.startsWith("4K map+unmap (512")) extra = ` -> ${fmt(512 * b.hz)} map+unmap pairs/s (${(perOp / 512).toFixed(1)} ns/page)`;
      if (b.name.startsWith("lookup")) extra = ` -> ${fmt(4096 * b.hz)} lookups/s (${(perOp / 4096).toFixed(1)} ns each)`;
      console.log(`${String(b)}  [${perOp.toFixed(0)} ns/op]${extra}`);
    });
  // lookup buffer over a mapped 2M range
  core.p2m_map_range_4k(1, 0x300000n, 0x4000000n, 4096, 1);
  const lbuf = core.p2m_batch_buffer(4096 * 24);
  const gv = new BigUint64Array(core.memory.buffer, lbuf, 4096);
  for (let i = 0; i < 4096; i++) gv[i] = 0x300000n + BigInt(i);
  suite.run({ async: false });

  // Map all 16M pages of a 64 GiB guest at 4K.
  const big = await fresh(0x10000n); // 256 MiB of host RAM: the tables come from here
  const mem0 = big.memory.buffer.byteLength;
  const top0 = big.mem_top();
  const free0 = big.total_avail_pages();
  const N = 1 << 24;
  const CH = 1 << 16;
  const t0 = performance.now();
  for (let g = 0; g < N; g += CH) {
    const rc = big.p2m_map_range_4k(1, BigInt(g), 0x1000000n + BigInt(g), CH, 1);
    if (rc !== 0) throw new Error(`map rc ${rc} at ${g}`);
  }
  const t1 = performance.now();
  const tables = big.p2m_nr_table_pages(1);
  const used = big.total_avail_pages();
  console.log(
    `64 GiB guest, 16,777,216 x 4K mappings: ${((t1 - t0) / 1000).toFixed(2)} s ` +
    `(${((t1 - t0) * 1e6 / N).toFixed(1)} ns/page), ${tables} table pages (${fmt(Number(free0 - used))} heap frames), ` +
    `linear memory ${fmt(mem0 / 2 ** 20)} -> ${fmt(big.memory.buffer.byteLength / 2 ** 20)} MiB ` +
    `(core bump region +${fmt((big.mem_top() - top0) / 2 ** 20)} MiB), mappings[3]=${big.p2m_mappings(1, 3)}`,
  );
  const t2 = performance.now();
  big.p2m_teardown(1);
  console.log(`teardown: ${((performance.now() - t2)).toFixed(1)} ms, heap free back to ${big.total_avail_pages() === free0 + 1n ? "start (+root)" : big.total_avail_pages()}`);
}

main();
