// `npm start`: what xenmm is for, in about a minute. The seed bug (a stale
// grant-frame GFN removes an unrelated mapping) at each revision on both
// arches, then a short fuzz campaign per revision with a progress bar.
import { runScenario } from "../scenario/index.js";
import { REVISIONS, type Arch } from "../machine/api.js";

const VERDICT: Record<string, string> = {
  pre: "bug: the foreign mapping at G1 is silently removed",
  harden: "wedged: -EILSEQ, the frame cannot be remapped",
  gfn: "fixed: GFN kept in page_info",
  head: "fixed",
};

async function seedBug(): Promise<void> {
  console.log("== The seed bug (fact sheet §9): map grant frame 0 at G1, remove G1, map a foreign page at G1, remap frame 0 at G2");
  console.log("   revision arch   rc of the four steps   G1 foreign mapping   frame type_info");
  for (const arch of ["arm64", "arm32"] as Arch[]) {
    for (const rev of REVISIONS) {
      const r = await runScenario("stale-gfn", { revision: rev, arch });
      const rcs = r.steps.map((s) => String(s.rc).padStart(3)).join(" ");
      console.log(`   ${rev.padEnd(8)} ${arch.padEnd(6)} ${rcs.padEnd(22)} ${(r.foreignMappingIntact ? "intact" : "LOST").padEnd(20)} ${r.frameTypeInfo.padEnd(20)} ${VERDICT[rev]}`);
    }
  }
}

async function fuzzDemo(seconds: number): Promise<void> {
  const { shortCampaign } = await import("../fuzz/campaign.js");
  console.log(`\n== A short fuzz campaign per revision (${seconds} s each, --interleave; the generator knows no bug)`);
  for (const rev of REVISIONS) {
    process.stderr.write(`${rev}\n`);
    const s = await shortCampaign({ revision: rev, seconds, interleave: true, workers: 1 });
    const found = Object.entries(s.violations ?? {}).map(([k, v]) => `${k} (first at op ${v!.firstOpsTotal})`);
    const known = Object.keys(s.known ?? {});
    console.log(
      `   ${rev.padEnd(8)} ${String(s.opsRun).padStart(9)} ops  ${Math.round(s.opsPerSec)} ops/s  violations: ${found.length ? found.join(", ") : "none"}` +
        (known.length ? `;  known: ${known.join(", ")}` : ""),
    );
  }
  console.log([
    "   p2m-collateral: an operation removed an unrelated P2M entry (the stale-GFN bug)",
    "   map-free: an unmapped grant frame could not be mapped at a free GFN (the -EILSEQ wedge)",
    "   p2m-ref: a P2M entry maps a frame it holds no reference to (XSA-486, and more: see README)",
    "   xenheap-gfn: the recorded grant-frame GFN and the P2M disagree;  crash: Xen itself died",
    "   refcount: a reference no mapping accounts for",
    "   known: triaged causes filed apart (src/fuzz/known.ts): the §11.3 re-map leak, the decrease_reservation race, ...",
    "   Replay any of them: xenmm fuzz --revision R --out DIR, then xenmm fuzz replay DIR/repro-*.json",
  ].join("\n"));
}

export async function demoMain(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    console.log("usage: xenmm demo [--seconds N]\n  The seed bug at each revision and arch, then a short fuzz campaign per revision.");
    return 0;
  }
  const i = argv.indexOf("--seconds");
  const seconds = i >= 0 ? Number(argv[i + 1]) : 4;
  if (!(seconds > 0)) { console.error("xenmm demo: --seconds expects a positive number"); return 2; }
  await seedBug();
  await fuzzDemo(seconds);
  return 0;
}
