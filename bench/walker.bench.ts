// Stage-2 walker benchmark: the Wasm walker batched inside Wasm vs the plain-TS
// reference walker, over the same table bytes (Wasm linear memory) and the
// same IPAs (the Wasm batch buffer), in one run.
//
//   npx asc assembly/index.ts --target release && npx tsx bench/walker.bench.ts
//
// Table: 1M random distinct 4K pages mapped in a 32 GiB IPA window (48-bit IPA,
// level-0 root, 4-level walks), leaf 0x00800000000007FF | mfn << 12 with random
// MFNs, table descriptors likewise (Xen's encoding, FS §4.4).

import Benchmark from "benchmark";
import { WasmWalker } from "../src/walk/wasm-walker.js";
import { ReferenceWalker } from "../src/walk/reference-walker.js";
import { decodeRawResult, decodeNumberResult } from "../src/walk/fault.js";

const PAGES = 1 << 20;
const WINDOW_PAGES = 1 << 23; // 32 GiB of IPA: ~12.5% of the level-3 entries used
const PROBES = 1 << 20;
const SINGLE = 1 << 16; // probes for the one-call-per-walk variant
const DESC = 0x00800000000007ffn;

// Deterministic PRNG (xorshift32) so runs are comparable.
let seed = 0x2545f491;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};

const w = new WasmWalker();
const ROOT_MFN = 0x40000n;
let nextTable = ROOT_MFN + 1n;
const tables = new Map<string, bigint>(); // "level:prefix" -> table mfn

function tableFor(level: number, prefix: bigint, parent: bigint, index: bigint): bigint {
  const key = `${level}:${prefix}`;
  let t = tables.get(key);
  if (t === undefined) {
    t = nextTable++;
    tables.set(key, t);
    w.writeU64((parent << 12n) + index * 8n, DESC | (t << 12n));
  }
  return t;
}

const t0 = performance.now();
const gfnSet = new Set<number>();
while (gfnSet.size < PAGES) gfnSet.add(rnd() % WINDOW_PAGES);
const gfns = Int32Array.from(gfnSet);
for (let i = 0; i < gfns.length; i++) {
  const gfn = BigInt(gfns[i]);
  const i0 = (gfn >> 27n) & 511n, i1 = (gfn >> 18n) & 511n, i2 = (gfn >> 9n) & 511n, i3 = gfn & 511n;
  const l1 = tableFor(1, gfn >> 27n, ROOT_MFN, i0);
  const l2 = tableFor(2, gfn >> 18n, l1, i1);
  const l3 = tableFor(3, gfn >> 9n, l2, i2);
  const mfn = BigInt(rnd() % (1 << 28)) + 0x100000n;
  w.writeU64((l3 << 12n) + i3 * 8n, DESC | (mfn << 12n));
}
const cfg = { t0sz: 16, sl0: 2, ps: 5, root: ROOT_MFN << 12n };
w.configure(cfg);
const ref = new ReferenceWalker(w.memory, w.hdr);
ref.configure(cfg);
console.log(
  `built ${PAGES} mapped pages, ${tables.size + 1} table pages, ` +
    `linear memory ${(w.memory.buffer.byteLength / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const refOut = new Float64Array(PROBES);
const ex = w.ex;
let sink = 0n;

// Probes: random pages drawn from the first `pool` mapped pages, random
// offsets, mixed r/w/x (all succeed). pool = all 1M pages: cache-cold walks
// over 64 MiB of tables; pool = 2048: the working set stays in cache.
function fillProbes(pool: number): void {
  const v = w.reserve(PROBES);
  for (let i = 0; i < PROBES; i++) {
    const gfn = gfns[rnd() % pool];
    const ipa = gfn * 4096 + (rnd() & 0xfff);
    v.ipa32[2 * i] = ipa >>> 0;
    v.ipa32[2 * i + 1] = Math.floor(ipa / 2 ** 32);
    v.access[i] = rnd() % 3;
  }
  // Agreement check before timing.
  const wasmFaults = w.runBatch(PROBES);
  const refFaults = ref.walkBatch(v.ipa32, v.access, PROBES, refOut);
  let mismatches = 0;
  for (let i = 0; i < PROBES; i++) {
    const a = decodeRawResult(v.out[i]);
    const b = decodeNumberResult(refOut[i]);
    if (a.ok !== b.ok || (a.ok && b.ok && a.pa !== b.pa)) mismatches++;
  }
  console.log(`agreement: ${mismatches} mismatches, faults wasm=${wasmFaults} ref=${refFaults} over ${PROBES} probes`);
  if (mismatches !== 0 || wasmFaults !== 0) process.exit(1);
}

function runSuite(title: string, pool: number): void {
  console.log(`\n== ${title}`);
  fillProbes(pool);
  const v = w.reserve(PROBES);
  const singleIpas: bigint[] = [];
  for (let i = 0; i < SINGLE; i++) singleIpas.push(BigInt.asIntN(64, v.ipa[i]));
  const perOp: number[] = [];
  new Benchmark.Suite(title)
    .add("wasm batched (1 call / 1M walks)", () => {
      ex.walk_batch(PROBES);
    })
    .add("ts reference (same bytes, same IPAs)", () => {
      ref.walkBatch(v.ipa32, v.access, PROBES, refOut);
    })
    .add("wasm, one JS->Wasm call per walk", () => {
      for (let i = 0; i < SINGLE; i++) sink ^= ex.walk_s2(singleIpas[i], 0);
    })
    .on("cycle", (ev: Benchmark.Event) => {
      const b = ev.target as unknown as Benchmark;
      const n = perOp.length === 2 ? SINGLE : PROBES;
      const lookups = (b.hz ?? 0) * n;
      perOp.push(lookups);
      console.log(
        `${String(b.name).padEnd(40)} ${(lookups / 1e6).toFixed(2).padStart(7)} M lookups/s` +
          `  (${(1e9 / lookups).toFixed(1)} ns/walk, ±${b.stats.rme.toFixed(1)}%, ${b.stats.sample.length} samples)`,
      );
    })
    .on("complete", () => {
      console.log(`ratio wasm batched / ts reference: ${(perOp[0] / perOp[1]).toFixed(2)}x`);
      console.log(`ratio wasm batched / wasm per-call: ${(perOp[0] / perOp[2]).toFixed(2)}x`);
    })
    .run({ async: false });
}

runSuite("cold: probes over all 1M mapped pages", PAGES);
runSuite("hot: probes over 2048 mapped pages", 2048);
if (sink === 1n) console.log("");
