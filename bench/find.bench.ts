// Time to first violation from scratch, per revision, over campaign seeds
// 1..N (one thread, in-process, time counted from the campaign's start), and
// the size of the shrunk reproducer of the first seed's finding.
//   npx tsx bench/find.bench.ts [seeds]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCampaign } from "../src/fuzz/campaign.js";
import type { Revision } from "../src/machine/api.js";

const seeds = Number(process.argv[2] ?? 10);
const cases: Array<{ revision: Revision; target: string; interleave: boolean; what: string }> = [
  { revision: "pre", target: "p2m-collateral", interleave: false, what: "stale grant-frame GFN removes an unrelated mapping" },
  { revision: "harden", target: "map-free:-84", interleave: false, what: "-EILSEQ wedge" },
  { revision: "gfn", target: "p2m-ref:count0/par", interleave: true, what: "XSA-486 (status frame mapped during set_version 2->1)" },
  { revision: "gfn", target: "crash:ASSERT/par", interleave: true, what: "p2m_get_page_from_gfn: a foreign page freed between the lookup and the reference (HEAD holds the lock across)" },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

console.log(`time to first violation, ${seeds} seeds each, one thread`);
for (const c of cases) {
  const ms: number[] = [];
  const ops: number[] = [];
  const sizes: number[] = [];
  let found = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const outDir = mkdtempSync(join(tmpdir(), "xenmm-find-"));
    const s = await runCampaign({
      revision: c.revision, seed, ops: 5_000_000, workers: 0, interleave: c.interleave, stopWhen: [c.target],
      timeLimitMs: 120_000, progress: false, outDir, shrink: true,
    });
    const key = Object.keys(s.variants).find((k) => k === c.target || k.replace(/\/par$/, "") === c.target.replace(/\/par$/, ""));
    if (key === undefined) continue;
    const v = s.variants[key];
    found++;
    ms.push(v.firstTimeMs);
    ops.push(v.firstOpsTotal);
    if (v.reproSteps !== undefined) sizes.push(v.reproSteps);
  }
  console.log(
    `  ${c.revision.padEnd(7)}${c.interleave ? "--interleave " : "             "}${c.target.padEnd(20)} found ${found}/${seeds}` +
      `  median ${median(ms).toFixed(0)} ms (${median(ops).toFixed(0)} ops), max ${Math.max(...ms).toFixed(0)} ms` +
      `  shrunk to ${sizes.length ? `${Math.min(...sizes)}-${Math.max(...sizes)}` : "?"} steps  (${c.what})`,
  );
}
