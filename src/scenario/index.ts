// Fact-sheet scenarios (FS 9): the stale-GFN bug and its variants.

import type { Arch, Revision } from "../machine/api.js";
import { createMachine, type MachineImpl } from "../machine/machine.js";
import { P2M_TYPE_NAMES } from "../machine/errno.js";

export const SCENARIOS = ["stale-gfn"] as const;
export const VARIANTS = ["foreign", "ram-reuse", "still-mapped", "shared-info-twice", "poison"] as const;
export type ScenarioVariant = (typeof VARIANTS)[number];

export interface ScenarioOptions { revision: Revision; arch?: Arch; variant?: ScenarioVariant }

export interface ScenarioP2mEntry { gfn: string; mfn: string | null; type: string }

export interface ScenarioResult {
  scenario: string;
  variant: ScenarioVariant;
  revision: Revision;
  arch: Arch;
  steps: Array<{ op: string; rc: number }>;
  /** Foreign/RAM variants: the page put at G1 in step 3 is still mapped there. */
  foreignMappingIntact: boolean | null;
  /** type_info of grant frame 0 (or shared_info) at the end, hex. */
  frameTypeInfo: string;
  /** type_info after each step, hex. */
  typeInfoTrace: string[];
  p2m: { G1: ScenarioP2mEntry; G2: ScenarioP2mEntry };
  /** GNTTABOP_setup_table(1) frame_list[0] at the end (hex). */
  reportedGfn: string | null;
  crash: string | null;
}

const D = 1, F = 2;
export const G1 = 0x50000n, G2 = 0x50001n;
const FG = 0x40000n; // F's RAM page (ramBaseGfn)
// Beyond the root reach (FS 5.2): 2^52 on arm64 (48-bit, 1-page level-0 root reaches 2^36),
// 2^28 on arm32 (40-bit, level-1 root of 2 pages); 2^52 would truncate to 0 on arm32.
const unreachableGfn = (m: MachineImpl) => (m.is64 ? 1n << 52n : 1n << 28n);

const hex = (v: bigint) => "0x" + v.toString(16).toUpperCase();

export async function runScenario(name: string, opts: ScenarioOptions): Promise<ScenarioResult> {
  if (name !== "stale-gfn") throw new Error(`unknown scenario "${name}" (known: ${SCENARIOS.join(", ")})`);
  const arch = opts.arch ?? "arm64";
  const variant = opts.variant ?? "foreign";
  const m = await createMachine({ arch, revision: opts.revision, ramFrames: 0x20000, ramStartMfn: 0x40000 });
  return runStaleGfn(m, variant);
}

export function runStaleGfn(m: MachineImpl, variant: ScenarioVariant): ScenarioResult {
  m.createDomain({ domid: D, privileged: true, ramPages: 16 });
  m.createDomain({ domid: F, ramPages: 4 });
  const d = m.domain(D)!;
  const frame = variant === "shared-info-twice" ? d.sharedInfo : d.grant!.shared[0];
  const steps: Array<{ op: string; rc: number }> = [];
  const trace: string[] = [];
  const call = (label: string, req: Parameters<MachineImpl["hypercall"]>[0]) => {
    const r = m.hypercall(req, { caller: D, vcpu: 0 });
    let rc = Number(r.rc);
    if (req.op === "XENMEM_add_to_physmap_batch" && rc === 0) rc = (r.errs as number[])[0];
    steps.push({ op: label, rc });
    trace.push(hex(m.core.type_info(frame)));
    return r;
  };
  const mapFrame = (gpfn: bigint, label: string) =>
    variant === "shared-info-twice"
      ? call(label, { op: "XENMEM_add_to_physmap", domid: D, space: 0, idx: 0, gpfn })
      : call(label, { op: "XENMEM_add_to_physmap", domid: D, space: 1, idx: 0, gpfn });

  let reuseMfn: bigint | null = null;
  if (variant === "poison") {
    mapFrame(G1, "add_to_physmap(grant_table, idx 0, G1)");
    mapFrame(unreachableGfn(m), "add_to_physmap(grant_table, idx 0, unreachable GFN)");
    mapFrame(G2, "add_to_physmap(grant_table, idx 0, G2)");
  } else {
    mapFrame(G1, variant === "shared-info-twice" ? "add_to_physmap(shared_info, G1)" : "add_to_physmap(grant_table, idx 0, G1)");
    if (variant === "foreign" || variant === "ram-reuse") {
      call("remove_from_physmap(G1)", { op: "XENMEM_remove_from_physmap", domid: D, gpfn: G1 });
      if (variant === "foreign") {
        call("add_to_physmap_batch(gmfn_foreign, F, [Fg] -> [G1])", {
          op: "XENMEM_add_to_physmap_batch", domid: D, space: 4, size: 1, foreign_domid: F, idxs: [FG], gpfns: [G1],
        });
      } else {
        const r = m.hypercall({ op: "XENMEM_populate_physmap", domid: D, extent_start: [G1], nr_extents: 1 }, { caller: D });
        steps.push({ op: "populate_physmap(G1)", rc: Number(r.rc) });
        trace.push(hex(m.core.type_info(frame)));
      }
      const e = m.crashed ? null : m.p2mEntry(D, G1);
      reuseMfn = e && e.type !== 0 ? e.mfn : null;
    }
    mapFrame(G2, variant === "shared-info-twice" ? "add_to_physmap(shared_info, G2)" : "add_to_physmap(grant_table, idx 0, G2)");
  }

  const entry = (g: bigint): ScenarioP2mEntry => {
    if (m.crashed) return { gfn: hex(g), mfn: null, type: "?" };
    const e = m.p2mEntry(D, g);
    return { gfn: hex(g), mfn: e.type === 0 ? null : hex(e.mfn), type: P2M_TYPE_NAMES[e.type] ?? String(e.type) };
  };
  let intact: boolean | null = null;
  if (reuseMfn !== null && !m.crashed) {
    const e = m.p2mEntry(D, G1);
    intact = e.type !== 0 && e.mfn === reuseMfn;
  }
  let reported: string | null = null;
  if (!m.crashed && variant !== "shared-info-twice") {
    const r = m.hypercall({ op: "GNTTABOP_setup_table", dom: D, nr_frames: 1 }, { caller: D });
    const fl = r.frame_list as bigint[] | undefined;
    reported = fl ? hex(fl[0]) : null;
  }
  return {
    scenario: "stale-gfn",
    variant,
    revision: m.revision,
    arch: m.arch,
    steps,
    foreignMappingIntact: intact,
    frameTypeInfo: hex(m.core.type_info(frame)),
    typeInfoTrace: trace,
    p2m: { G1: entry(G1), G2: entry(G2) },
    reportedGfn: reported,
    crash: m.crashed ? `${m.crashed.kind}: ${m.crashed.path}` : null,
  };
}
