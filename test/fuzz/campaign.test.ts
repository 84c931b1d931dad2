import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCampaign, mergeSummaries, episodeSeed, workerLoop, type WorkerJob } from "../../src/fuzz/campaign.js";
import { fuzzMain } from "../../src/fuzz/cli.js";
import { runDocumentToRepro } from "../../src/fuzz/runfmt.js";
import { replayRepro } from "../../src/fuzz/replay.js";
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
