// Fuzzer throughput: what an episode's machine costs, ops/s in one thread
// with the invariants on (and what the pieces cost), then campaigns in 1 and
// 2 worker threads run as a user runs them (`xenmm fuzz`, a child process),
// and 1 and 2 threads timed after their warm-up (what the fuzz loop itself
// gets from a second thread).
//   npx tsx bench/fuzz.bench.ts [seconds-per-row] [campaign-ops]
// (Each one-thread row is the best of three turns.)
import { cpus, tmpdir } from "node:os";
import { Worker } from "node:worker_threads";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { OpGenerator, defaultDomains } from "../src/fuzz/generator.js";
import { acquireFuzzHost, createFuzzHost, releaseFuzzHost } from "../src/fuzz/machine-host.js";
import { FuzzSession } from "../src/fuzz/runner.js";
import type { CampaignSummary } from "../src/fuzz/campaign.js";
import type { Revision } from "../src/machine/api.js";
import type { FuzzHost } from "../src/fuzz/host.js";
import { LEVEL_PAGES } from "../src/fuzz/shadow.js";

const secs = Number(process.argv[2] ?? 4);
const revision: Revision = "head";
const EP = 2000;
const world = { revision, arch: "arm64" as const };

/** µs per episode set-up: new machine, a pooled one reset to the world's template, that plus the episode's checker. */
async function setupCost(how: "new" | "reset" | "reset+checker"): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < (secs * 1000) / 4) {
    if (how === "new") await createFuzzHost(world);
    else {
      const h = await acquireFuzzHost(world);
      if (how === "reset+checker") new FuzzSession(h);
      h.call(1, { op: "GNTTABOP_setup_table", dom: 0x7ff0, nr_frames: 2 } as never); // something to undo
      releaseFuzzHost(h);
    }
    n++;
  }
  return ((performance.now() - t0) * 1000) / n;
}

/**
 * The least any checker written in TypeScript does per op, however little it
 * checks: drain the P2M-change log and count each frame's mappings from the
 * old and new descriptors, drain the frame-store log and re-read count_info
 * of each changed frame that is mapped, drain the lock findings. No shadow,
 * no invariant judged (no scope, no grant views, no reports): its rate is a
 * ceiling for the real checker, not a checker.
 */
function logFollower(host: FuzzHost): () => void {
  const [lo, hi] = host.ramRange();
  const mapped = new Int32Array(hi - lo);
  const frames: number[] = [];
  const cnt = new Uint32Array(2);
  /** Add `d` to the mapping count of the `n` frames from the leaf descriptor (lo, hi)'s MFN. */
  const count = (dlo: number, dhi: number, n: number, d: number) => {
    const mfn = (dhi & 0xffff) * 0x100000 + (dlo >>> 12);
    for (let i = 0; i < n; i++) if (mfn + i >= lo && mfn + i < hi) mapped[mfn + i - lo] += d;
  };
  const isLeaf = (dlo: number, dhi: number, level: number) => ((dhi >>> 23) & 0xf) !== 0 && !(level < 3 && (dlo & 2) !== 0);
  host.drainP2m();
  host.changedFrames!(frames);
  host.drainLockFindings();
  // The mappings the episode starts with (the pool answers these walks from the template's).
  for (const d of host.domids()) {
    const w = host.walkP2m(d) ?? [];
    for (let i = 0; i < w.length; i += 4) if (isLeaf(w[i + 1], w[i + 2], w[i + 3])) count(w[i + 1], w[i + 2], LEVEL_PAGES[w[i + 3]], 1);
  }
  return () => {
    const w = host.drainP2m();
    if (w !== null) for (let k = 0; k < w.length; k++) {
      const x = w[k];
      const n = LEVEL_PAGES[x.level];
      const newLeaf = isLeaf(x.newLo, x.newHi, x.level);
      // A block replaced by a table is a superpage split: the same mappings, written before the table went live.
      if (!newLeaf && ((x.newHi >>> 23) & 0xf) !== 0) continue;
      if (isLeaf(x.oldLo, x.oldHi, x.level)) count(x.oldLo, x.oldHi, n, -1);
      if (newLeaf) count(x.newLo, x.newHi, n, 1);
    }
    host.changedFrames!(frames);
    for (let k = 0; k < frames.length; k++) if (frames[k] >= lo && frames[k] < hi && mapped[frames[k] - lo] > 0) host.countInto(frames[k], cnt);
    host.drainLockFindings();
  };
}

async function inThread(mode: "raw" | "logs" | "incremental" | "full64", interleave: boolean, ep = EP): Promise<number> {
  const t0 = performance.now();
  let ops = 0;
  for (let e = 0; performance.now() - t0 < secs * 1000; e++) {
    const gen = new OpGenerator(e + 1, { domains: defaultDomains(), interleave });
    const host = await acquireFuzzHost(world);
    if (mode === "raw" || mode === "logs") {
      const follow = mode === "logs" ? logFollower(host) : null;
      for (let i = 0; i < ep && !host.crash(); i++, ops++) {
        const s = gen.next();
        if (s.kind === "call") { if (host.canCall(s.call.caller)) host.call(s.call.caller, s.call.req); }
        else if (s.kind === "destroy") host.destroyDomain(s.domid);
        else if (s.kind === "create") host.createDomain(s.domid);
        else for (const c of s.calls) if (host.canCall(c.caller)) host.call(c.caller, c.req);
        if (follow !== null) follow();
      }
    } else {
      const ses = new FuzzSession(host, { fullEvery: mode === "full64" ? 64 : 1e9 });
      for (let i = 0; i < ep && !ses.stopped; i++, ops++) ses.exec(gen.next());
    }
    releaseFuzzHost(host);
  }
  return ops / ((performance.now() - t0) / 1000);
}

const rows: Array<[string, string]> = [];
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
rows.push(["episode set-up, new machine (createFuzzHost), µs", fmt(await setupCost("new"))]);
rows.push(["episode set-up, reset pooled machine (acquireFuzzHost), µs", fmt(await setupCost("reset"))]);
rows.push(["episode set-up, reset pooled machine + the episode's checker (FuzzSession), µs", fmt(await setupCost("reset+checker"))]);
// Every one-thread row is the best of three turns, taken in turns: a drift in the VM's speed during
// one row would otherwise read as a difference between rows.
const kinds = [
  ["raw", false, EP], ["logs", false, EP], ["incremental", false, EP], ["full64", false, EP],
  ["raw", true, EP], ["incremental", true, EP], ["full64", true, EP], ["incremental", false, 400],
] as const;
const best = kinds.map(() => 0);
for (let turn = 0; turn < 3; turn++) for (let k = 0; k < kinds.length; k++) best[k] = Math.max(best[k], await inThread(kinds[k][0], kinds[k][1], kinds[k][2]));
const row = (label: string, mode: (typeof kinds)[number][0], interleave: boolean, ep = EP) =>
  rows.push([label, fmt(best[kinds.findIndex((x) => x[0] === mode && x[1] === interleave && x[2] === ep)])]);
for (const interleave of [false, true]) {
  const tag = interleave ? " --interleave" : "";
  row(`1 thread, hypercalls only (no checks)${tag}`, "raw", interleave);
  if (!interleave) row("1 thread, hypercalls + following both logs in TypeScript (no checks: a checker's ceiling)", "logs", false);
  row(`1 thread, per-op invariants, no full scans${tag}`, "incremental", interleave);
  row(`1 thread, invariants + full scan every 64 ops${tag}`, "full64", interleave);
}
// `xenmm fuzz` runs episodes of 400 ops unless told otherwise: there the set-up above is paid 5x as often.
row("1 thread, per-op invariants, episodes of 400 ops (the CLI default)", "incremental", false, 400);
/**
 * Iterations/s of a trivially parallel JS loop in `n` worker threads: what two
 * threads of this machine give right now. On a shared VM two busy vCPUs
 * deliver anything from 1x to 2x one of them, whatever the program.
 */
async function ceiling(n: number, ilp: boolean): Promise<number> {
  // One dependent chain (latency-bound) or six independent ones (bound by the core's execution units).
  const inner = ilp
    ? "for (let i = 0; i < 1e5; i++) { a = (a + i) | 0; b = (b ^ i) | 0; c = (c + (i << 1)) | 0; d = (d - i) | 0; e = (e + (i >> 1)) | 0; f = (f ^ (i << 2)) | 0; }"
    : "for (let i = 0; i < 1e5; i++) a = (a * 31 + i) | 0;";
  const body = `const { parentPort } = require("node:worker_threads");
    let a = 0, b = 1, c = 2, d = 3, e = 4, f = 5, n = 0; const t0 = performance.now();
    while (performance.now() - t0 < 1000) { ${inner} n++; }
    parentPort.postMessage(n + ((a + b + c + d + e + f) & 0));`;
  const r = await Promise.all(Array.from({ length: n }, () => new Promise<number>((res) => new Worker(body, { eval: true }).on("message", res))));
  return r.reduce((a, b) => a + b, 0);
}

/**
 * Ops/s of `n` worker threads each running the same checked episodes as a
 * campaign worker (runSeed, full scan every 128 ops), timed only after every
 * thread has run 600k ops of its own: V8 keeps optimizing a thread's code, on
 * its helper threads, for about the first 500k. The campaign rows include
 * each worker's start-up and that warm-up, which a lone worker gets done on
 * the CPU it leaves idle and two workers must share.
 */
async function warmThreads(n: number, opsPerThread: number): Promise<number> {
  const replay = new URL("../src/fuzz/replay.ts", import.meta.url).href;
  const body = `const { parentPort } = require("node:worker_threads");
    import("tsx/esm/api").then(async (tsx) => {
      tsx.register();
      const { runSeed } = await import(${JSON.stringify(replay)});
      const run = async (seed, ops) => {
        for (let n = 0; n < ops; seed++) n += (await runSeed(${JSON.stringify(world)}, seed, ${EP}, { fullEvery: 128 })).steps.length;
      };
      await run(1e6, 600000);
      parentPort.postMessage("ready");
      parentPort.once("message", async () => {
        const t0 = performance.now();
        await run(1, ${opsPerThread});
        parentPort.postMessage(performance.now() - t0);
      });
    });`;
  const ws = Array.from({ length: n }, () => new Worker(body, { eval: true }));
  await Promise.all(ws.map((w) => new Promise((res) => w.once("message", res))));
  const ms = await Promise.all(ws.map((w) => new Promise<number>((res) => { w.once("message", res); w.postMessage("go"); })));
  await Promise.all(ws.map((w) => w.terminate()));
  return (n * opsPerThread) / (Math.max(...ms) / 1000);
}

// 1, 2, 2, 1 workers: a drift in the machine's load (other jobs) hits both sides alike.
const ops = Number(process.argv[3] ?? 4_000_000);
const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "xenmm.js");
const campaign = (workers: number): CampaignSummary => {
  const out = mkdtempSync(join(tmpdir(), "xenmm-bench-fuzz-"));
  const args = [bin, "fuzz", "--revision", revision, "--ops", String(ops), "--seed", "1", "--workers", String(workers), "--episode-ops", String(EP), "--out", out, "--no-shrink"];
  execFileSync(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  return JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as CampaignSummary;
};
const runs: CampaignSummary[] = [];
const ceil = [0, 0, 0];
const ceilIlp = [0, 0, 0];
const warm = [0, 0, 0];
for (const w of [1, 2, 2, 1]) {
  ceil[w] += await ceiling(w, false);
  ceilIlp[w] += await ceiling(w, true);
  runs.push(campaign(w));
  warm[w] += await warmThreads(w, Math.max(200_000, ops / 4));
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
rows.push([`after each thread's warm-up, 1 thread (runSeed as a campaign runs it, ${Math.max(200_000, ops / 4)} ops)`, fmt(warm[1] / 2)]);
rows.push(["after each thread's warm-up, 2 threads (the same work each)", fmt(warm[2] / 2)]);
rows.push(["2-thread speed-up after warm-up", (warm[2] / warm[1]).toFixed(2) + "x"]);
rows.push(["2-thread speed-up of a latency-bound JS loop (the machine, same runs)", (ceil[2] / ceil[1]).toFixed(2) + "x"]);
rows.push(["2-thread speed-up of an ALU-bound JS loop (the machine, same runs)", (ceilIlp[2] / ceilIlp[1]).toFixed(2) + "x"]);
console.log(`fuzz throughput, revision ${revision}, ${cpus().length} CPUs, episodes of ${EP} ops (pooled machine reset each)`);
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v.padStart(9)}${/x$/.test(v) || /µs$/.test(k) ? "" : " ops/s"}`);
