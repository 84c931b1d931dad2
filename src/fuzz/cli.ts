// `xenmm fuzz ...` and `xenmm fuzz merge ...`.

import { writeFileSync } from "node:fs";
import { REVISIONS, defaultIpaBits, type Arch, type Revision } from "../machine/api.js";
import { matches } from "./invariants.js";
import { mergeSummaries, readSummary, runCampaign, type CampaignSummary } from "./campaign.js";

export const FUZZ_USAGE = `usage:
  xenmm fuzz --revision pre|harden|gfn|head [--ops N] [--seed S] [--workers K]
             [--interleave] [--shard i/n] [--out DIR] [--arch arm64|arm32]
             [--episode-ops N] [--time SECONDS] [--stop-on-first] [--no-shrink]
             [--progress|--no-progress] [--stop-on INVARIANT[:VARIANT]]...
             [--gnttab-max-ver 1|2] [--ipa-bits 32|36|40|42|44|48]
  xenmm fuzz merge A.json B.json ... [--out FILE]

Runs generated hypercall streams (a machine reset to the world's initial state
per episode of --episode-ops steps, default 400) and checks the invariants
after every step. States whose cause is a known finding of Xen's code
(src/fuzz/known.ts) are counted apart, under "known", not as violations; the
exit code is 1 only for violations. With --out, writes summary.json and one
shrunk reproducer per violated invariant (replay with: xenmm fuzz replay FILE.json).
The machine boots with Xen's gnttab=max-ver:2 unless --gnttab-max-ver 1 (Xen's
default on Arm) is given: with 1, grant v2 and its status frames are out of
reach, and so is arm32's set_version 2->1 panic, which otherwise ends nearly
every arm32 episode. --ipa-bits sets the P2M's IPA size (default 48 on
arm64, 40 on arm32), and with it the root level and concatenation.
merge takes shards of one campaign only.
  xenmm fuzz replay FILE.json      replay a reproducer with the invariants on
`;

function parseNum(s: string | undefined, what: string): number {
  if (s === undefined) throw new Error(`${what}: missing value`);
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${what}: bad number ${JSON.stringify(s)}`);
  return n;
}

function printSummary(s: CampaignSummary): void {
  const lines = [
    `revision ${s.revision} (${s.arch})${s.interleave ? " interleaved" : ""}${(s.gnttabMaxVersion ?? 2) !== 2 ? `, gnttab max-ver ${s.gnttabMaxVersion}` : ""}${s.ipaBits !== undefined && s.ipaBits !== defaultIpaBits(s.arch) ? `, ${s.ipaBits}-bit IPA` : ""}, shard ${s.shard}, ${s.workers} worker(s)`,
    `${s.opsRun} ops in ${s.seconds.toFixed(1)} s (${s.opsPerSec} ops/s), ${s.episodes} episodes`,
  ];
  const v = Object.entries(s.violations);
  if (v.length === 0) lines.push("no invariant violated");
  for (const [k, x] of v) {
    lines.push(`  ${k}: ${x!.count} (first after ${(x!.firstTimeMs / 1000).toFixed(2)} s, ~${x!.firstOpsTotal} ops, seed ${x!.firstSeed} op ${x!.firstEpisodeOp})`);
    for (const [vk, y] of Object.entries(s.variants ?? {})) {
      if (vk !== k && !vk.startsWith(k + ":") && !vk.startsWith(k + "/")) continue;
      lines.push(`    ${vk}: ${y.count}, first after ${(y.firstTimeMs / 1000).toFixed(2)} s${y.repro ? ` -> ${y.repro} (${y.reproSteps} steps)` : ""}`);
      lines.push(`       ${y.message}`);
    }
  }
  const known = Object.entries(s.known ?? {});
  if (known.length > 0) lines.push("known findings (src/fuzz/known.ts; not counted as violations):");
  for (const [id, k] of known) {
    lines.push(`  ${id}: ${k!.count} episode(s), first after ${(k!.firstTimeMs / 1000).toFixed(2)} s (seed ${k!.firstSeed} op ${k!.firstEpisodeOp}, seen as ${k!.variant})`);
    lines.push(`       ${k!.title} [${k!.reference}]`);
  }
  process.stdout.write(lines.join("\n") + "\n");
}

export async function fuzzMain(argv: string[]): Promise<number> {
  try {
    if (argv[0] === "-h" || argv[0] === "--help") {
      process.stdout.write(FUZZ_USAGE);
      return 0;
    }
    if (argv[0] === "merge") {
      const files: string[] = [];
      let out: string | undefined;
      for (let i = 1; i < argv.length; i++) {
        if (argv[i] === "--out") out = argv[++i];
        else files.push(argv[i]);
      }
      if (files.length === 0) throw new Error("merge: no summary files");
      const m = mergeSummaries(files.map(readSummary));
      const text = JSON.stringify(m, null, 2) + "\n";
      if (out) writeFileSync(out, text);
      else process.stdout.write(text);
      return 0;
    }
    if (argv[0] === "replay") {
      const { readFileSync } = await import("node:fs");
      const { decodeRepro } = await import("./repro-file.js");
      const { runDocumentToRepro } = await import("./runfmt.js");
      const { replayRepro } = await import("./replay.js");
      if (argv[1] === undefined) throw new Error("replay: FILE.json required");
      const text = readFileSync(argv[1], "utf8");
      const r = "ops" in JSON.parse(text) ? runDocumentToRepro(text) : decodeRepro(text);
      const res = await replayRepro(r);
      for (const v of res.violations) process.stdout.write(`op ${v.op}: ${v.invariant}: ${v.message}\n`);
      if (res.violations.length === 0) process.stdout.write("no invariant violated\n");
      for (const k of res.known) process.stdout.write(`op ${k.op}: known finding ${k.id} (seen as ${k.variant}): ${k.message}\n`);
      const exp = r.expect;
      if (exp) {
        const target = exp.variant ?? exp.invariant;
        const same = res.violations.some((v) => matches(v, target) && v.op === exp.op);
        // A reproducer written before its cause was triaged replays as that known finding.
        const asKnown = res.known.find((k) => k.op <= exp.op && (k.variant === target || k.variant.replace(/\/par$/, "") === target || k.variant.startsWith(target + ":")));
        if (!same && asKnown) {
          process.stdout.write(`reproduced: ${target} at op ${exp.op}, filed as known finding ${asKnown.id}\n`);
          return 1;
        }
        process.stdout.write(same ? `reproduced: ${target} at op ${exp.op}\n` : `NOT reproduced: expected ${target} at op ${exp.op}\n`);
        return same ? 1 : 3;
      }
      return res.violations.length > 0 ? 1 : 0;
    }
    let revision: Revision | undefined;
    let arch: Arch = "arm64";
    let ops = 100_000;
    let seed = 1;
    let workers = 1;
    let interleave = false;
    let shard = { index: 0, count: 1 };
    let outDir: string | undefined;
    let episodeOps: number | undefined;
    let time: number | undefined;
    let stopOnFirst = false;
    const stopOn: string[] = [];
    let doShrink = true;
    let progress: boolean | undefined;
    let gnttabMaxVersion: 1 | 2 = 2;
    let ipaBits: number | undefined;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      switch (a) {
        case "--revision": {
          const r = argv[++i] as Revision;
          if (!REVISIONS.includes(r)) throw new Error(`--revision: expected one of ${REVISIONS.join(", ")}`);
          revision = r;
          break;
        }
        case "--arch": {
          const x = argv[++i];
          if (x !== "arm64" && x !== "arm32") throw new Error("--arch: arm64 or arm32");
          arch = x;
          break;
        }
        case "--gnttab-max-ver": {
          const x = argv[++i];
          if (x !== "1" && x !== "2") throw new Error("--gnttab-max-ver: 1 or 2");
          gnttabMaxVersion = x === "1" ? 1 : 2;
          break;
        }
        case "--ipa-bits": ipaBits = parseNum(argv[++i], a); break;
        case "--ops": ops = parseNum(argv[++i], a); break;
        case "--seed": seed = parseNum(argv[++i], a) >>> 0; break;
        case "--workers": workers = parseNum(argv[++i], a); break;
        case "--interleave": interleave = true; break;
        case "--episode-ops": episodeOps = parseNum(argv[++i], a); break;
        case "--time": time = parseNum(argv[++i], a); break;
        case "--stop-on-first": stopOnFirst = true; break;
        case "--stop-on": stopOn.push(argv[++i]); break;
        case "--no-shrink": doShrink = false; break;
        case "--progress": progress = true; break;
        case "--no-progress": progress = false; break;
        case "--out": outDir = argv[++i]; break;
        case "--shard": {
          const m = /^(\d+)\/(\d+)$/.exec(argv[++i] ?? "");
          if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new Error("--shard: expected i/n with 0 <= i < n");
          shard = { index: Number(m[1]), count: Number(m[2]) };
          break;
        }
        default:
          throw new Error(`unknown argument ${JSON.stringify(a)}`);
      }
    }
    if (revision === undefined) throw new Error("--revision is required");
    const s = await runCampaign({
      revision, arch, ops, seed, workers, interleave, shard, outDir, episodeOps, gnttabMaxVersion, ipaBits,
      timeLimitMs: time !== undefined ? time * 1000 : undefined,
      stopWhen: stopOnFirst ? "any" : stopOn.length > 0 ? stopOn : undefined,
      shrink: doShrink,
      progress,
    });
    printSummary(s);
    return Object.keys(s.violations).length > 0 ? 1 : 0;
  } catch (e) {
    process.stderr.write(`xenmm fuzz: ${(e as Error).message}\n\n${FUZZ_USAGE}`);
    return 2;
  }
}
