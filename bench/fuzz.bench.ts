// Fuzzer throughput: what an episode's machine costs, ops/s in one thread
// with the invariants on (and what the pieces cost), then campaigns in 1 and
// 2 worker threads.
//   npx tsx bench/fuzz.bench.ts [seconds-per-row] [campaign-ops]
import { cpus } from "node:os";
import { Worker } from "node:worker_threads";
import { OpGenerator, defaultDomains } from "../src/fuzz/generator.js";
import { acquireFuzzHost, createFuzzHost, releaseFuzzHost } from "../src/fuzz/machine-host.js";
import { FuzzSession } from "../src/fuzz/runner.js";
import { runCampaign, type CampaignSummary } from "../src/fuzz/campaign.js";
import type { Revision } from "../src/machine/api.js";

const secs = Number(process.argv[2] ?? 4);
const revision: Revision = "head";
const EP = 400;
const world = { revision, arch: "arm64" as const };

/** µs per episode set-up, new machine vs. a pooled one reset to the world's template. */
async function setupCost(how: "new" | "reset"): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < (secs * 1000) / 4) {
    if (how === "new") await createFuzzHost(world);
    else {
      const h = await acquireFuzzHost(world);
      h.call(1, { op: "GNTTABOP_setup_table", dom: 0x7ff0, nr_frames: 2 } as never); // something to undo
      releaseFuzzHost(h);
    }
    n++;
  }
  return ((performance.now() - t0) * 1000) / n;
}

async function inThread(mode: "raw" | "incremental" | "full64", interleave: boolean): Promise<number> {
  const t0 = performance.now();
  let ops = 0;
  for (let e = 0; performance.now() - t0 < secs * 1000; e++) {
    const gen = new OpGenerator(e + 1, { domains: defaultDomains(), interleave });
    const host = await acquireFuzzHost(world);
    if (mode === "raw") {
      for (let i = 0; i < EP && !host.crash(); i++, ops++) {
        const s = gen.next();
        if (s.kind === "call") { if (host.canCall(s.call.caller)) host.call(s.call.caller, s.call.req); }
        else if (s.kind === "destroy") host.destroyDomain(s.domid);
        else if (s.kind === "create") host.createDomain(s.domid);
        else for (const c of s.calls) if (host.canCall(c.caller)) host.call(c.caller, c.req);
      }
    } else {
      const ses = new FuzzSession(host, { fullEvery: mode === "full64" ? 64 : 1e9 });
      for (let i = 0; i < EP && !ses.stopped; i++, ops++) ses.exec(gen.next());
    }
    releaseFuzzHost(host);
  }
  return ops / ((performance.now() - t0) / 1000);
}

const rows: Array<[string, string]> = [];
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
rows.push(["episode set-up, new machine (createFuzzHost), µs", fmt(await setupCost("new"))]);
rows.push(["episode set-up, reset pooled machine (acquireFuzzHost), µs", fmt(await setupCost("reset"))]);
for (const interleave of [false, true]) {
  const tag = interleave ? " --interleave" : "";
  rows.push([`1 thread, hypercalls only (no checks)${tag}`, fmt(await inThread("raw", interleave))]);
  rows.push([`1 thread, per-op invariants, no full scans${tag}`, fmt(await inThread("incremental", interleave))]);
  rows.push([`1 thread, invariants + full scan every 64 ops${tag}`, fmt(await inThread("full64", interleave))]);
}
/**
 * Iterations/s of a trivially parallel JS loop in `n` worker threads: what two
 * threads of this machine give right now. On a shared VM two busy vCPUs
 * deliver anything from 1x to 2x one of them, whatever the program.
 */
async function ceiling(n: number): Promise<number> {
  const body = `const { parentPort } = require("node:worker_threads");
    let x = 0, n = 0; const t0 = performance.now();
    while (performance.now() - t0 < 1000) { for (let i = 0; i < 1e5; i++) x = (x * 31 + i) | 0; n++; }
    parentPort.postMessage(n + (x & 0));`;
  const r = await Promise.all(Array.from({ length: n }, () => new Promise<number>((res) => new Worker(body, { eval: true }).on("message", res))));
  return r.reduce((a, b) => a + b, 0);
}

// 1, 2, 2, 1 workers: a drift in the machine's load (other jobs) hits both sides alike.
const ops = Number(process.argv[3] ?? 400_000);
const campaign = (workers: number) => runCampaign({ revision, ops, seed: 1, workers, progress: false, timeLimitMs: secs * 6000 });
const runs: CampaignSummary[] = [];
const ceil = [0, 0, 0];
for (const w of [1, 2, 2, 1]) {
  ceil[w] += await ceiling(w);
  runs.push(await campaign(w));
}
const sum = (w: number, k: "opsRun" | "seconds" | "workerOpsPerSec") => runs.filter((r) => r.workers === w).reduce((a, r) => a + r[k], 0);
const wall = (w: number) => sum(w, "opsRun") / sum(w, "seconds");
const inWorker = (w: number) => sum(w, "workerOpsPerSec") / 2;
rows.push([`campaign, 1 worker thread (2 x ${ops} ops), wall clock`, fmt(wall(1))]);
rows.push([`campaign, 2 worker threads (2 x ${ops} ops), wall clock`, fmt(wall(2))]);
rows.push(["2-worker speed-up (wall clock, incl. thread start-up)", (wall(2) / wall(1)).toFixed(2) + "x"]);
rows.push([`campaign, 1 worker thread, in-worker rate`, fmt(inWorker(1))]);
rows.push([`campaign, 2 worker threads, in-worker rate (sum)`, fmt(inWorker(2))]);
rows.push(["2-worker speed-up (in-worker rates)", (inWorker(2) / inWorker(1)).toFixed(2) + "x"]);
rows.push(["2-worker speed-up of a parallel JS loop (the machine, same runs)", (ceil[2] / ceil[1]).toFixed(2) + "x"]);
console.log(`fuzz throughput, revision ${revision}, ${cpus().length} CPUs, episodes of ${EP} ops (pooled machine reset each)`);
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v.padStart(9)}${/x$/.test(v) || /µs$/.test(k) ? "" : " ops/s"}`);
