// Fuzz campaigns: many episodes (the world's initial state + a generated op
// stream each), spread over worker_threads (each with its own machines, reset
// between episodes: machine-host.ts), with a progress bar, reproducers
// (shrunk) and a JSON summary.
//
// Seed space: episode e of a campaign with base seed S has seed
// episodeSeed(S, e). Shard i/n takes the episodes e with e % n == i, its k-th
// being e = i + n * k, and runs k = 0, 1, ... while k * episodeOps < ops
// (the last one shortened to the budget). The workers claim the k in order
// from one shared counter, so a worker slowed down by the rest of the machine
// never leaves the others idle at the end, the set of episodes run is
// independent of the worker count, and shards partition the space.

import { Worker } from "node:worker_threads";
import { fileURLToPath, pathToFileURL } from "node:url";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultIpaBits, type Arch, type Revision } from "../machine/api.js";
import { defaultDomains, encodeValue, type FuzzStep } from "./generator.js";
import { baseVariant, matches, type InvariantName, type KnownSighting, type Violation } from "./invariants.js";
import { KNOWN_FINDINGS, type KnownId } from "./known.js";
import { runSeed, reproTest, replayRepro, type WorldConfig } from "./replay.js";
import { acquireFuzzHost, releaseFuzzHost } from "./machine-host.js";
import { shrink, type FuzzRepro } from "./shrink.js";
import { reproToRunDocument } from "./runfmt.js";

export interface CampaignOptions {
  revision: Revision;
  arch?: Arch;
  /** Total ops (steps) to run across workers (default 100000); an episode that crashes the hypervisor ends early and leaves its rest unused. */
  ops?: number;
  seed?: number;
  /** worker_threads; 0 = run in this thread (default 1). */
  workers?: number;
  interleave?: boolean;
  shard?: { index: number; count: number };
  /** Output directory for reproducers + summary.json (none if omitted). */
  outDir?: string;
  /** Ops per episode (default 400). */
  episodeOps?: number;
  /** Stop everything once every invariant or variant listed (see matches()) has been seen, or any with "any". */
  stopWhen?: string[] | "any";
  /** Wall-clock limit (ms). */
  timeLimitMs?: number;
  /** Shrink the first reproducer of each invariant (default true when outDir is set). */
  shrink?: boolean;
  /** Progress bar on stderr (default: stderr is a TTY). */
  progress?: boolean;
  /** Full invariant scan every N ops (default 128; also at the end of every episode). */
  fullEvery?: number;
  ipaBits?: number;
  /** Xen's `gnttab=max-ver:N` for the world (default 2: see WorldConfig). */
  gnttabMaxVersion?: 1 | 2;
}

/** Per invariant: the same record as per variant (below). */
export type InvariantSummary = VariantSummary;

export interface CampaignSummary {
  revision: Revision;
  arch: Arch;
  interleave: boolean;
  /** The world's `gnttab=max-ver` (absent in summaries written before it was an option: 2). */
  gnttabMaxVersion?: 1 | 2;
  /** Steps per episode (absent in older summaries). */
  episodeOps?: number;
  /** The P2M's IPA size (absent in older summaries: the arch's default). */
  ipaBits?: number;
  seed: number;
  shard: string;
  workers: number;
  opsRun: number;
  episodes: number;
  seconds: number;
  opsPerSec: number;
  /** Sum over workers of their own ops/s (excludes thread start-up and the final shrinking). */
  workerOpsPerSec: number;
  violations: Partial<Record<InvariantName, InvariantSummary>>;
  /** Finer classes (invariant:detail, "/par" = after an interleaved step). */
  variants: Record<string, VariantSummary>;
  /**
   * States filed under a known finding (src/fuzz/known.ts) instead of a
   * violation: counted per episode that showed them, first sighting kept.
   */
  known: Partial<Record<KnownId, KnownSummary>>;
}

export interface KnownSummary extends VariantSummary {
  /** What the invariant would have called it. */
  variant: string;
  title: string;
  reference: string;
}

export interface VariantSummary {
  count: number;
  firstTimeMs: number;
  /** Ops run campaign-wide (approx.: other workers' last progress) when first seen. */
  firstOpsTotal: number;
  firstSeed: number;
  firstEpisodeOp: number;
  message: string;
  repro?: string;
  reproSteps?: number;
}

export function episodeSeed(base: number, e: number): number {
  let z = (Math.imul(base ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(e + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Messages from a worker. */
export type WorkerMsg =
  | { t: "progress"; ops: number; episodes: number }
  | { t: "violation"; v: Violation; seed: number; ops: number; steps: unknown[] }
  | { t: "known"; k: KnownSighting; seed: number; ops: number }
  | { t: "done"; ops: number; episodes: number; ms?: number };

export interface WorkerJob {
  world: WorldConfig;
  seed: number;
  episodeOps: number;
  interleave: boolean;
  fullEvery: number;
  /** The k-th episode is e = first + k * stride. */
  first: number;
  stride: number;
  /** Op budget: episode k runs min(episodeOps, ops - k * episodeOps) steps, while that is positive. */
  ops: number;
  deadline: number;
  /** The next k to run, shared by the workers of a campaign (Atomics on a SharedArrayBuffer); without it the loop runs every k itself. */
  next?: Int32Array;
}

/** The loop run by each worker (or inline). */
export async function workerLoop(job: WorkerJob, post: (m: WorkerMsg) => void, shouldStop: () => boolean): Promise<void> {
  let ops = 0;
  let episodes = 0;
  const started = performance.now();
  let lastProgress = Date.now();
  const seen = new Set<string>();
  const next = job.next ?? new Int32Array(1);
  while (!shouldStop() && Date.now() < job.deadline) {
    const k = Atomics.add(next, 0, 1);
    const start = k * job.episodeOps;
    if (k < 0 || start >= job.ops) break;
    const seed = episodeSeed(job.seed, job.first + job.stride * k);
    const n = Math.min(job.episodeOps, job.ops - start);
    const res = await runSeed(job.world, seed, n, { interleave: job.interleave, fullEvery: job.fullEvery });
    for (const v of res.violations) {
      const key = baseVariant(v);
      post({ t: "violation", v: jsonSafe(v), seed, ops: ops + v.op + 1, steps: seen.has(key) ? [] : res.steps.slice(0, v.op + 1).map(encodeValue) });
      seen.add(key);
    }
    for (const k of res.known) post({ t: "known", k, seed, ops: ops + k.op + 1 });
    ops += res.steps.length;
    episodes++;
    const now = Date.now();
    if (now - lastProgress > 150) {
      lastProgress = now;
      post({ t: "progress", ops, episodes });
      await new Promise((r) => setImmediate(r)); // let control messages in
    }
  }
  post({ t: "done", ops, episodes, ms: performance.now() - started });
}

function jsonSafe<T>(v: T): T {
  return JSON.parse(JSON.stringify(encodeValue(v))) as T;
}

/**
 * How to start a worker. Compiled JS: worker.js directly. tsx source: Node 20
 * does not apply `--import tsx` from a Worker's execArgv to the worker's own
 * module loading, so the worker is a tiny eval'd bootstrap that registers
 * tsx's ESM hooks and then imports worker.ts (execArgv is still passed so
 * that nested imports see the same flags).
 */
function spawnWorker(job: WorkerJob): Worker {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) {
    const url = pathToFileURL(here.replace(/campaign\.ts$/, "worker.ts")).href;
    const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(url)}); });`;
    return new Worker(boot, { eval: true, workerData: job });
  }
  return new Worker(here.replace(/campaign\.js$/, "worker.js"), { workerData: job });
}

class Progress {
  private last = 0;
  constructor(private readonly enabled: boolean, private readonly total: number, private readonly timeLimitMs?: number) {}
  draw(ops: number, t0: number, viol: number, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    const byTime = this.timeLimitMs ? (now - t0) / this.timeLimitMs : 0;
    const frac = Math.min(1, Math.max(ops / Math.max(1, this.total), byTime));
    const w = 30;
    const bar = "#".repeat(Math.round(frac * w)).padEnd(w, ".");
    const rate = ops / Math.max(0.001, (now - t0) / 1000);
    process.stderr.write(`\r[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${ops} ops ${fmtRate(rate)} ops/s violations ${viol}   `);
  }
  end(): void {
    if (this.enabled) process.stderr.write("\n");
  }
}

function fmtRate(r: number): string {
  return r >= 1e6 ? (r / 1e6).toFixed(2) + "M" : r >= 1e3 ? (r / 1e3).toFixed(1) + "k" : r.toFixed(0);
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignSummary> {
  const arch = opts.arch ?? "arm64";
  const world: WorldConfig = { revision: opts.revision, arch, ipaBits: opts.ipaBits, domains: defaultDomains(), gnttabMaxVersion: opts.gnttabMaxVersion ?? 2 };
  const total = opts.ops ?? 100_000;
  const episodeOps = opts.episodeOps ?? 400;
  const seed = opts.seed ?? 1;
  const workers = opts.workers ?? 1;
  const shard = opts.shard ?? { index: 0, count: 1 };
  const nThreads = Math.max(1, workers);
  const t0 = Date.now();
  const deadline = opts.timeLimitMs ? t0 + opts.timeLimitMs : Number.MAX_SAFE_INTEGER;
  // A world Xen cannot boot (say arm32 with a 32-bit IPA before HEAD) is the caller's error, said once
  // here (XenmmArgumentError), not a "crash" from every worker.
  const probe = await acquireFuzzHost(world);
  const ipaBits = probe.ipaBits;
  releaseFuzzHost(probe);
  const progress = new Progress(opts.progress ?? process.stderr.isTTY === true, total, opts.timeLimitMs);
  const summary: CampaignSummary = {
    revision: opts.revision,
    arch,
    interleave: opts.interleave ?? false,
    gnttabMaxVersion: world.gnttabMaxVersion,
    episodeOps,
    ipaBits,
    seed,
    shard: `${shard.index}/${shard.count}`,
    workers,
    opsRun: 0,
    episodes: 0,
    seconds: 0,
    opsPerSec: 0,
    workerOpsPerSec: 0,
    violations: {},
    variants: {},
    known: {},
  };
  /** First run per base variant (one shrunk reproducer each). */
  const firstRuns = new Map<string, { seed: number; steps: unknown[]; v: Violation }>();
  const variants: Record<string, VariantSummary> = {};
  const opsBy = new Array<number>(nThreads).fill(0);
  const epsBy = new Array<number>(nThreads).fill(0);
  let stop = false;
  const stopCheck = () => {
    if (opts.stopWhen === undefined) return false;
    const found = Object.keys(summary.violations) as InvariantName[];
    if (opts.stopWhen === "any") return found.length > 0;
    const vs = Object.keys(variants);
    return opts.stopWhen.every((i) => found.includes(i as InvariantName) || vs.some((k) => k === i || k.replace(/\/par$/, "") === i));
  };
  const onMsg = (w: number, m: WorkerMsg) => {
    if (m.t === "progress" || m.t === "done") {
      opsBy[w] = m.ops;
      epsBy[w] = m.episodes;
      if (m.t === "done" && m.ms) summary.workerOpsPerSec += Math.round(m.ops / (m.ms / 1000));
    } else if (m.t === "known") {
      const cur = summary.known[m.k.id];
      if (cur !== undefined) cur.count++;
      else {
        const f = KNOWN_FINDINGS[m.k.id];
        const opsTotal = opsBy.reduce((a, b) => a + b, 0) - opsBy[w] + m.ops;
        summary.known[m.k.id] = {
          count: 1, firstTimeMs: (m.k.atMs ?? Date.now()) - t0, firstOpsTotal: opsTotal, firstSeed: m.seed, firstEpisodeOp: m.k.op,
          message: m.k.message, variant: m.k.variant, title: f.title, reference: f.reference,
        };
      }
    } else {
      const inv = m.v.invariant;
      const cur = summary.violations[inv];
      const opsTotal = opsBy.reduce((a, b) => a + b, 0) - opsBy[w] + m.ops;
      const at = (m.v.atMs ?? Date.now()) - t0;
      const vk = m.v.variant ?? inv;
      if (variants[vk] === undefined) variants[vk] = { count: 1, firstTimeMs: at, firstOpsTotal: opsTotal, firstSeed: m.seed, firstEpisodeOp: m.v.op, message: m.v.message };
      else variants[vk].count++;
      if (cur === undefined) {
        summary.violations[inv] = { count: 1, firstTimeMs: at, firstOpsTotal: opsTotal, firstSeed: m.seed, firstEpisodeOp: m.v.op, message: m.v.message };
      } else cur.count++;
      const bk = baseVariant(m.v);
      if (!firstRuns.has(bk) && m.steps.length > 0) firstRuns.set(bk, { seed: m.seed, steps: m.steps, v: m.v });
      if (stopCheck()) stop = true;
    }
    const vi = Object.values(summary.violations).reduce((a, v) => a + (v?.count ?? 0), 0);
    progress.draw(opsBy.reduce((a, b) => a + b, 0), t0, vi);
  };
  const next = new Int32Array(new SharedArrayBuffer(4));
  const jobs: WorkerJob[] = [];
  for (let w = 0; w < nThreads; w++) {
    jobs.push({
      world,
      seed,
      episodeOps,
      interleave: opts.interleave ?? false,
      fullEvery: opts.fullEvery ?? 128,
      first: shard.index,
      stride: shard.count,
      ops: total,
      deadline,
      next,
    });
  }
  if (workers === 0) {
    await workerLoop(jobs[0], (m) => onMsg(0, m), () => stop);
  } else {
    await Promise.all(
      jobs.map(
        (job, w) =>
          new Promise<void>((resolve, reject) => {
            const wk = spawnWorker(job);
            let stopped = false;
            const poll = setInterval(() => {
              if (stop && !stopped) {
                stopped = true;
                wk.postMessage("stop");
              }
            }, 50);
            wk.on("message", (m: WorkerMsg) => onMsg(w, m));
            wk.on("error", (e) => {
              clearInterval(poll);
              reject(e);
            });
            wk.on("exit", () => {
              clearInterval(poll);
              resolve();
            });
          }),
      ),
    );
  }
  summary.variants = variants;
  summary.opsRun = opsBy.reduce((a, b) => a + b, 0);
  summary.episodes = epsBy.reduce((a, b) => a + b, 0);
  summary.seconds = (Date.now() - t0) / 1000;
  summary.opsPerSec = Math.round(summary.opsRun / Math.max(0.001, summary.seconds));
  progress.draw(summary.opsRun, t0, Object.values(summary.violations).reduce((a, v) => a + (v?.count ?? 0), 0), true);
  progress.end();

  if (opts.outDir) {
    mkdirSync(opts.outDir, { recursive: true });
    for (const [bk, run] of firstRuns) {
      const inv = run.v.invariant;
      const { decodeValue } = await import("./generator.js");
      let repro: FuzzRepro = {
        revision: opts.revision,
        arch,
        ipaBits: opts.ipaBits,
        domains: world.domains!,
        gnttabMaxVersion: world.gnttabMaxVersion,
        steps: run.steps.map((s) => decodeValue(s) as FuzzStep),
        expect: { invariant: inv, variant: baseVariant(run.v), op: run.v.op, message: run.v.message },
        seed: run.seed,
      };
      if (opts.shrink ?? true) repro = await shrink(repro, baseVariant(run.v), reproTest, { timeoutMs: 30_000 });
      const check = await replayRepro(repro);
      const v = check.violations.find((x) => matches(x, baseVariant(run.v)));
      if (v) repro.expect = { invariant: inv, variant: baseVariant(v), op: v.op, message: v.message };
      const file = join(opts.outDir, `repro-${opts.revision}-${bk.replace(/[^A-Za-z0-9-]+/g, "_")}-${run.seed}.json`);
      writeFileSync(file, JSON.stringify(await reproToRunDocument(repro), null, 2) + "\n");
      const vs = summary.variants[run.v.variant];
      if (vs) Object.assign(vs, { repro: file, reproSteps: repro.steps.length });
      const is = summary.violations[inv]!;
      if (is.repro === undefined) Object.assign(is, { repro: file, reproSteps: repro.steps.length });
    }
    writeFileSync(join(opts.outDir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  }
  return summary;
}

/** A reproducer as a JSON document (the fuzz section of the run format). */
export function reproToJson(r: FuzzRepro): string {
  return JSON.stringify(encodeValue({ format: "xenmm-fuzz-repro/1", ...r }), null, 2) + "\n";
}

/** What must agree between summaries merged as shards of one campaign (a field older summaries lack stands for its default). */
function campaignOf(s: CampaignSummary): string {
  return `revision ${s.revision}, arch ${s.arch}${s.interleave ? ", interleaved" : ""}, seed ${s.seed}, gnttab max-ver ${s.gnttabMaxVersion ?? 2}, ${s.ipaBits ?? defaultIpaBits(s.arch)}-bit IPA${s.episodeOps !== undefined ? `, episodes of ${s.episodeOps} ops` : ""}`;
}

/** Merge the summaries of one campaign's shards. */
export function mergeSummaries(list: CampaignSummary[]): CampaignSummary {
  if (list.length === 0) throw new Error("merge: no summaries");
  // Shards of one campaign only: other worlds or seeds would be counted as if they were its episodes.
  const what = campaignOf(list[0]);
  const shards = new Set<string>();
  for (const s of list) {
    if (campaignOf(s) !== what) throw new Error(`merge: not shards of one campaign: ${what} vs ${campaignOf(s)}`);
    for (const sh of s.shard.split(",")) {
      if (shards.has(sh)) throw new Error(`merge: shard ${sh} appears twice (its episodes would be counted twice)`);
      shards.add(sh);
    }
  }
  // i/n and j/m with n != m share episodes.
  const counts = new Set([...shards].map((sh) => sh.split("/")[1]));
  if (counts.size > 1) throw new Error(`merge: shards of different splits (${[...shards].join(", ")})`);
  const out: CampaignSummary = { ...list[0], violations: {}, variants: {}, known: {}, opsRun: 0, episodes: 0, seconds: 0, opsPerSec: 0, workerOpsPerSec: 0, shard: list.map((s) => s.shard).join(",") };
  for (const s of list) {
    out.workerOpsPerSec += s.workerOpsPerSec ?? 0;
    out.opsRun += s.opsRun;
    out.episodes += s.episodes;
    out.seconds = Math.max(out.seconds, s.seconds);
    for (const [k, v] of Object.entries(s.variants ?? {})) {
      const cur = out.variants[k];
      if (cur === undefined) out.variants[k] = { ...v };
      else {
        cur.count += v.count;
        if (v.firstTimeMs < cur.firstTimeMs) Object.assign(cur, { ...v, count: cur.count });
      }
    }
    for (const [k, v] of Object.entries(s.known ?? {}) as Array<[KnownId, KnownSummary]>) {
      const cur = out.known[k];
      if (cur === undefined) out.known[k] = { ...v };
      else {
        cur.count += v.count;
        if (v.firstTimeMs < cur.firstTimeMs) Object.assign(cur, { ...v, count: cur.count });
      }
    }
    for (const [k, v] of Object.entries(s.violations) as Array<[InvariantName, InvariantSummary]>) {
      const cur = out.violations[k];
      if (cur === undefined) out.violations[k] = { ...v };
      else {
        cur.count += v.count;
        if (v.firstTimeMs < cur.firstTimeMs) Object.assign(cur, { ...v, count: cur.count });
      }
    }
  }
  out.opsPerSec = Math.round(out.opsRun / Math.max(0.001, out.seconds));
  return out;
}

export function readSummary(file: string): CampaignSummary {
  return JSON.parse(readFileSync(file, "utf8")) as CampaignSummary;
}

/** A few seconds of fuzzing with a progress bar, for `npm start`'s demo. */
export async function shortCampaign(opts: Partial<CampaignOptions> & { seconds?: number } = {}): Promise<CampaignSummary> {
  return runCampaign({
    revision: opts.revision ?? "head",
    arch: opts.arch ?? "arm64",
    ops: opts.ops ?? 1_000_000,
    seed: opts.seed ?? 1,
    workers: opts.workers ?? 1,
    interleave: opts.interleave ?? false,
    timeLimitMs: (opts.seconds ?? 3) * 1000,
    progress: opts.progress ?? true,
    outDir: opts.outDir,
    shrink: opts.shrink ?? false,
  });
}
