// Fuzzer throughput: ops/s in one thread with the invariants on (and what the
// pieces cost), then campaigns in 1 and 2 worker threads.
//   npx tsx bench/fuzz.bench.ts [seconds-per-row]
import { cpus } from "node:os";
import { OpGenerator, defaultDomains } from "../src/fuzz/generator.js";
import { createFuzzHost } from "../src/fuzz/machine-host.js";
import { FuzzSession } from "../src/fuzz/runner.js";
import { runCampaign } from "../src/fuzz/campaign.js";
import type { Revision } from "../src/machine/api.js";

const secs = Number(process.argv[2] ?? 4);
const revision: Revision = "head";
const EP = 400;

async function inThread(mode: "raw" | "incremental" | "full64", interleave: boolean): Promise<number> {
  const t0 = performance.now();
  let ops = 0;
  for (let e = 0; performance.now() - t0 < secs * 1000; e++) {
    const gen = new OpGenerator(e + 1, { domains: defaultDomains(), interleave });
    const host = await createFuzzHost({ revision, arch: "arm64" });
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
  }
  return ops / ((performance.now() - t0) / 1000);
}

const rows: Array<[string, string]> = [];
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
for (const interleave of [false, true]) {
  const tag = interleave ? " --interleave" : "";
  rows.push([`1 thread, hypercalls only (no checks)${tag}`, fmt(await inThread("raw", interleave))]);
  rows.push([`1 thread, per-op invariants, no full scans${tag}`, fmt(await inThread("incremental", interleave))]);
  rows.push([`1 thread, invariants + full scan every 64 ops${tag}`, fmt(await inThread("full64", interleave))]);
}
const ops = Number(process.argv[3] ?? 400_000);
const one = await runCampaign({ revision, ops, seed: 1, workers: 1, progress: false, timeLimitMs: secs * 6000 });
const two = await runCampaign({ revision, ops, seed: 1, workers: 2, progress: false, timeLimitMs: secs * 6000 });
rows.push([`campaign, 1 worker thread (${one.opsRun} ops), wall clock`, fmt(one.opsPerSec)]);
rows.push([`campaign, 2 worker threads (${two.opsRun} ops), wall clock`, fmt(two.opsPerSec)]);
rows.push(["2-worker speed-up (wall clock, incl. thread start-up)", (two.opsPerSec / one.opsPerSec).toFixed(2) + "x"]);
rows.push([`campaign, 1 worker thread, in-worker rate`, fmt(one.workerOpsPerSec)]);
rows.push([`campaign, 2 worker threads, in-worker rate (sum)`, fmt(two.workerOpsPerSec)]);
rows.push(["2-worker speed-up (in-worker rates)", (two.workerOpsPerSec / one.workerOpsPerSec).toFixed(2) + "x"]);
console.log(`fuzz throughput, revision ${revision}, ${cpus().length} CPUs, episodes of ${EP} ops (fresh machine each)`);
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v.padStart(9)}${/x$/.test(v) ? "" : " ops/s"}`);
