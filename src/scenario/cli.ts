// `xenmm scenario stale-gfn --revision <r> [--arch arm64|arm32] [--variant ...] [--json]`
import { REVISIONS, type Arch, type Revision } from "../machine/api.js";
import { runScenario, SCENARIOS, VARIANTS, type ScenarioVariant } from "./index.js";

const USAGE = `usage: xenmm scenario stale-gfn --revision <${REVISIONS.join("|")}|all> [--arch arm64|arm32] [--variant <${VARIANTS.join("|")}>] [--json]`;

export async function scenarioMain(argv: string[]): Promise<number> {
  let name: string | undefined;
  let rev: string | undefined;
  let arch: string = "arm64";
  let variant: string = "foreign";
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") { console.log(USAGE); return 0; }
    else if (a === "--revision") rev = argv[++i];
    else if (a === "--arch") arch = argv[++i];
    else if (a === "--variant") variant = argv[++i];
    else if (a === "--json") json = true;
    else if (!a.startsWith("--") && name === undefined) name = a;
    else { console.error(`xenmm scenario: unknown argument ${a}\n${USAGE}`); return 2; }
  }
  if (!name || !SCENARIOS.includes(name as never)) { console.error(`xenmm scenario: expected a scenario (${SCENARIOS.join(", ")})\n${USAGE}`); return 2; }
  if (!rev || (rev !== "all" && !REVISIONS.includes(rev as Revision))) { console.error(`xenmm scenario: --revision: expected ${REVISIONS.join(", ")} or all\n${USAGE}`); return 2; }
  if (arch !== "arm64" && arch !== "arm32") { console.error(`xenmm scenario: --arch: expected arm64 or arm32`); return 2; }
  if (!VARIANTS.includes(variant as ScenarioVariant)) { console.error(`xenmm scenario: --variant: expected ${VARIANTS.join(", ")}`); return 2; }
  const revs = rev === "all" ? [...REVISIONS] : [rev as Revision];
  const out = [];
  for (const r of revs) out.push(await runScenario(name, { revision: r, arch: arch as Arch, variant: variant as ScenarioVariant }));
  if (json) { console.log(JSON.stringify(out.length === 1 ? out[0] : out, null, 2)); return 0; }
  for (const x of out) {
    console.log(`${x.scenario} (${x.variant}) at ${x.revision} on ${x.arch}`);
    x.steps.forEach((s, i) => console.log(`  ${i + 1}. ${s.op.padEnd(52)} rc ${s.rc}   type_info ${x.typeInfoTrace[i]}`));
    console.log(`  P2M G1 ${x.p2m.G1.gfn}: ${x.p2m.G1.mfn ?? "-"} ${x.p2m.G1.type};  G2 ${x.p2m.G2.gfn}: ${x.p2m.G2.mfn ?? "-"} ${x.p2m.G2.type}`);
    if (x.foreignMappingIntact !== null) console.log(`  mapping at G1 intact: ${x.foreignMappingIntact}`);
    if (x.reportedGfn !== null) console.log(`  setup_table reports frame 0 at ${x.reportedGfn}`);
    console.log(`  frame type_info ${x.frameTypeInfo}${x.crash ? `\n  HYPERVISOR CRASH: ${x.crash}` : ""}`);
  }
  return 0;
}
