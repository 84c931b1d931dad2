import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCampaign, mergeSummaries, episodeSeed, workerLoop, type WorkerJob } from "../../src/fuzz/campaign.js";
import { fuzzMain } from "../../src/fuzz/cli.js";
import { reproToRunDocument, runDocumentToRepro } from "../../src/fuzz/runfmt.js";
import { replayRepro, worldOf } from "../../src/fuzz/replay.js";
import { acquireFuzzHost, releaseFuzzHost } from "../../src/fuzz/machine-host.js";
import { defaultDomains } from "../../src/fuzz/generator.js";
import type { FuzzRepro } from "../../src/fuzz/shrink.js";
import { loadRunDocument } from "../../src/run/index.js";

describe("fuzz campaigns", () => {
  it("runs in 2 worker threads from tsx source and writes summary + shrunk run-format reproducers", async () => {
    const out = mkdtempSync(join(tmpdir(), "xenmm-fuzz-"));
    const s = await runCampaign({ revision: "pre", ops: 1600, seed: 3, workers: 2, outDir: out, episodeOps: 200, progress: false });
    expect(s.opsRun).toBeGreaterThan(0);
    expect(s.workers).toBe(2);
    expect(s.opsPerSec).toBeGreaterThan(0);
    const inv = s.violations["p2m-collateral"] ?? s.violations["xenheap-gfn"];
    expect(inv).toBeDefined();
    expect(inv!.firstTimeMs).toBeGreaterThanOrEqual(0);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    expect(summary.opsRun).toBe(s.opsRun);
    const files = readdirSync(out).filter((f) => f.startsWith("repro-"));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files.slice(0, 3)) {
      const text = readFileSync(join(out, f), "utf8");
      expect(() => loadRunDocument(JSON.parse(text))).not.toThrow();
      const r = runDocumentToRepro(text);
      const again = await replayRepro(r);
      expect(again.violations.some((v) => v.op === r.expect!.op && (v.variant === r.expect!.variant || v.variant.replace(/\/par$/, "") === r.expect!.variant))).toBe(true);
    }
  });

  it("shards partition the episode space; worker count does not change which episodes run", async () => {
    const episodes = (first: number, stride: number, ops: number) => {
      const seen: number[] = [];
      for (let e = first, n = 0; n < ops; e += stride, n += 100) seen.push(episodeSeed(1, e));
      return seen;
    };
    const a = episodes(0, 2, 500), b = episodes(1, 2, 500);
    expect(a.filter((x) => b.includes(x))).toEqual([]);
    // in-process worker loop with a tiny job
    const msgs: unknown[] = [];
    const job: WorkerJob = { world: { revision: "head", arch: "arm64" }, seed: 1, episodeOps: 50, interleave: false, fullEvery: 16, first: 0, stride: 1, ops: 120, deadline: Date.now() + 60_000 };
    await workerLoop(job, (m) => msgs.push(m), () => false);
    expect((msgs.at(-1) as { t: string; ops: number }).t).toBe("done");
    expect((msgs.at(-1) as { ops: number }).ops).toBe(120);
  });

  it("workers claim episodes from one counter: 0, 1 or 2 workers run the same episodes, and find the same", async () => {
    const run = (workers: number) => runCampaign({ revision: "pre", ops: 3000, seed: 11, workers, episodeOps: 200, progress: false });
    const counts = (s: Awaited<ReturnType<typeof run>>) => Object.fromEntries(Object.entries(s.variants).map(([k, v]) => [k, v.count]).sort());
    const [a, b, c] = [await run(0), await run(1), await run(2)];
    expect(a.episodes).toBe(15);
    expect(a.violations.crash).toBeDefined(); // an episode cut short by a hypervisor crash is among them
    expect(a.opsRun).toBeLessThan(3000);
    for (const s of [b, c]) {
      expect([s.episodes, s.opsRun]).toEqual([a.episodes, a.opsRun]);
      expect(counts(s)).toEqual(counts(a));
    }
  });

  it("head: known findings are counted apart from violations, and merge adds them up", async () => {
    const shard = (index: number) => runCampaign({ revision: "head", ops: 4000, seed: 2, workers: 0, episodeOps: 400, progress: false, shard: { index, count: 2 } });
    const [s, t] = [await shard(0), await shard(1)];
    expect(s.violations).toEqual({});
    const leak = s.known["foreign-remap-leak"];
    expect(leak, JSON.stringify(s.known)).toBeDefined();
    expect(leak!.variant).toBe("refcount");
    expect(leak!.reference).toMatch(/11\.3/);
    expect(leak!.count).toBeGreaterThan(0);
    expect(leak!.count).toBeLessThanOrEqual(s.episodes);
    const m = mergeSummaries([s, t]);
    expect(m.known["foreign-remap-leak"]!.count).toBe(leak!.count + (t.known["foreign-remap-leak"]?.count ?? 0));
    expect(m.episodes).toBe(s.episodes + t.episodes);
  });

  it("merge takes shards of one campaign only: no shard twice, no other world, seed or split", async () => {
    const s = await runCampaign({ revision: "head", ops: 400, seed: 2, workers: 0, episodeOps: 200, progress: false, shard: { index: 0, count: 2 } });
    expect(s.gnttabMaxVersion).toBe(2);
    expect(s.episodeOps).toBe(200);
    expect(() => mergeSummaries([s, s])).toThrow(/shard 0\/2 appears twice/);
    const other = (x: Partial<typeof s>) => ({ ...s, shard: "1/2", ...x });
    expect(mergeSummaries([s, other({})]).shard).toBe("0/2,1/2");
    expect(() => mergeSummaries([s, other({ arch: "arm32" })])).toThrow(/not shards of one campaign/);
    expect(() => mergeSummaries([s, other({ seed: 3 })])).toThrow(/not shards of one campaign/);
    expect(() => mergeSummaries([s, other({ interleave: true })])).toThrow(/not shards of one campaign/);
    expect(() => mergeSummaries([s, other({ gnttabMaxVersion: 1 })])).toThrow(/not shards of one campaign/);
    expect(() => mergeSummaries([s, other({ episodeOps: 400 })])).toThrow(/not shards of one campaign/);
    expect(() => mergeSummaries([s, other({ shard: "1/3" })])).toThrow(/different splits/);
    expect(() => mergeSummaries([mergeSummaries([s, other({})]), other({})])).toThrow(/shard 1\/2 appears twice/);
  });

  it("--ipa-bits: the world's P2M geometry, in the summary; a world Xen cannot boot is a usage error, not a worker crash", async () => {
    const s = await runCampaign({ revision: "head", ops: 400, seed: 4, workers: 0, episodeOps: 200, progress: false, ipaBits: 44 });
    expect(s.ipaBits).toBe(44);
    expect(s.violations).toEqual({});
    const h = await acquireFuzzHost({ revision: "head", arch: "arm64", ipaBits: 44 });
    expect(h.ipaBits).toBe(44);
    releaseFuzzHost(h);
    expect(() => mergeSummaries([{ ...s, shard: "0/2" }, { ...s, shard: "1/2", ipaBits: undefined }])).toThrow(/not shards of one campaign/);
    // A summary without the field (older) stands for the arch's default IPA size.
    const d = await runCampaign({ revision: "head", ops: 200, seed: 4, workers: 0, episodeOps: 200, progress: false, shard: { index: 0, count: 2 } });
    expect(d.ipaBits).toBe(48);
    expect(mergeSummaries([d, { ...d, shard: "1/2", ipaBits: undefined }]).episodes).toBe(2 * d.episodes);
    // arm32 has no 32-bit stage-2 configuration before HEAD (fact sheet 5.2: PRE/GFN force 40 bits).
    await expect(runCampaign({ revision: "pre", arch: "arm32", ops: 100, workers: 2, progress: false, ipaBits: 32 })).rejects.toThrow(/ipaBits 32/);
    expect(await fuzzMain(["--revision", "pre", "--arch", "arm32", "--ipa-bits", "32", "--ops", "100", "--no-progress"])).toBe(2);
    expect(await fuzzMain(["--revision", "head", "--ipa-bits", "37", "--ops", "100", "--no-progress"])).toBe(2);
  });

  it("--gnttab-max-ver 1 (Xen's default on Arm): arm32 episodes run their length, v2 is refused, and reproducers keep the world", async () => {
    // With max-ver 2, arm32's set_version 2->1 BUG_ON (fact sheet 7.4) ends the episodes early.
    const run = (gnttabMaxVersion: 1 | 2) => runCampaign({ revision: "head", arch: "arm32", ops: 2000, seed: 1, workers: 0, episodeOps: 400, progress: false, gnttabMaxVersion });
    const [v1, v2] = [await run(1), await run(2)];
    expect(v2.known["arm32-v2v1-bug-on"]).toBeDefined();
    expect(v2.opsRun).toBeLessThan(2000);
    expect(v1.known["arm32-v2v1-bug-on"]).toBeUndefined();
    expect(v1.violations).toEqual({});
    expect([v1.opsRun, v1.episodes, v1.gnttabMaxVersion]).toEqual([2000, 5, 1]);
    // Pooled machines of the two worlds are kept apart: set_version 2 is -ENOSYS (38) at max-ver 1, 0 at 2 (fact sheet 7.5).
    for (const [maxVer, rc] of [[1, -38], [2, 0], [1, -38]] as const) {
      const h = await acquireFuzzHost({ revision: "head", arch: "arm64", gnttabMaxVersion: maxVer });
      expect(Number(h.call(1, { op: "GNTTABOP_set_version", version: 2 } as never).rc)).toBe(rc);
      releaseFuzzHost(h);
    }
    // A reproducer's run document boots the same machine, and comes back with the same world.
    const r: FuzzRepro = { revision: "head", arch: "arm64", domains: defaultDomains(), gnttabMaxVersion: 1, steps: [{ kind: "call", call: { caller: 1, req: { op: "GNTTABOP_set_version", version: 2 } as never } }] };
    const doc = await reproToRunDocument(r);
    expect((doc.machine as { xenOptions: { gnttabMaxVersion: number } }).xenOptions.gnttabMaxVersion).toBe(1);
    expect(runDocumentToRepro(JSON.stringify(doc)).gnttabMaxVersion).toBe(1);
    expect(worldOf(r).gnttabMaxVersion).toBe(1);
    // A hand-written document that names no max-ver gets what `xenmm run` boots: Xen's default on Arm, 1.
    const { xenOptions: _x, ...bare } = doc.machine as Record<string, unknown>;
    expect(runDocumentToRepro(JSON.stringify({ ...doc, machine: bare })).gnttabMaxVersion).toBe(1);
    const res = await replayRepro(runDocumentToRepro(JSON.stringify(doc)));
    expect(res.violations).toEqual([]);
  });

  it("CLI: fuzz --shard, fuzz merge", async () => {
    const out = mkdtempSync(join(tmpdir(), "xenmm-fuzz-cli-"));
    const a = join(out, "a"), b = join(out, "b");
    expect(await fuzzMain(["--revision", "head", "--ops", "300", "--seed", "5", "--workers", "0", "--shard", "0/2", "--out", a, "--no-shrink"])).toBeGreaterThanOrEqual(0);
    expect(await fuzzMain(["--revision", "head", "--ops", "300", "--seed", "5", "--workers", "0", "--shard", "1/2", "--out", b, "--no-shrink"])).toBeGreaterThanOrEqual(0);
    const merged = join(out, "merged.json");
    expect(await fuzzMain(["merge", join(a, "summary.json"), join(b, "summary.json"), "--out", merged])).toBe(0);
    const m = JSON.parse(readFileSync(merged, "utf8"));
    expect(m.opsRun).toBe(600);
    expect(m.shard).toBe("0/2,1/2");
    expect(mergeSummaries([m]).opsRun).toBe(600);
    expect(await fuzzMain(["--revision", "nope"])).toBe(2);
    writeFileSync(join(out, "x.json"), "{}");
  });
});

describe("fuzz campaign from compiled JS", () => {
  it("worker entry works from tsc output (worker.js)", async () => {
    const { execFileSync } = await import("node:child_process");
    const { symlinkSync, mkdirSync, rmSync } = await import("node:fs");
    const root = join(__dirname, "..", "..");
    const out = join(root, "tmp", `dist-fuzz-test-${process.pid}`);
    mkdirSync(out, { recursive: true });
    try {
      execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json"), "--outDir", out, "--declaration", "false"], { cwd: root, stdio: "pipe" });
      symlinkSync(join(root, "build"), join(out, "build"));
      const script = `const { runCampaign } = await import(${JSON.stringify("file://" + join(out, "src", "fuzz", "campaign.js"))});
const s = await runCampaign({ revision: "head", ops: 600, seed: 1, workers: 2, episodeOps: 100, progress: false });
console.log(JSON.stringify({ opsRun: s.opsRun, workers: s.workers, crash: s.violations.crash?.message ?? null }));`;
      const { writeFileSync: write } = await import("node:fs");
      write(join(out, "run.mjs"), script);
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      const res = JSON.parse(execFileSync(process.execPath, [join(out, "run.mjs")], { cwd: root, encoding: "utf8", env }).trim().split("\n").pop()!);
      expect(res.workers).toBe(2);
      expect(res.opsRun).toBe(600);
      expect(String(res.crash ?? "")).not.toMatch(/worker error/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
