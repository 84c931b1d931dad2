// Presets: machines in a state measured on real Xen (src/presets/data/*.json).
//
// buildPreset("qemu-virt-dom0", { arch, revision, xenOptions }) replays what Xen
// and the Linux dom0 kernel did up to the measured state point:
//   1. the host (one RAM bank, the P2M geometry of the measured IPA size);
//   2. domain_create for dom0 (grant table, P2M root + VMID, shared_info page);
//   3. allocate_memory_11: one 1:1 bank, allocated the way Xen does it
//      (lowest address zone first: MEMF_bits from the bank order upwards) and
//      mapped with guest_physmap_add_page; the address comes from the
//      allocator and is checked against the data;
//   4. every MMIO run Xen maps for dom0, with its p2m type (p2m_set_entry picks
//      1G/2M/4K leaves by alignment, as in Xen);
//   5. the kernel's two XENMEM_add_to_physmap calls (shared_info, then grant
//      frame 0), issued as real hypercalls by dom0 so revision-specific
//      bookkeeping (per-frame array vs page type_info) is right.
// Nothing numeric about the board lives in this file: see spec.ts.

import { runToCompletion } from "../locks/index.js";
import { createMachine, type Machine } from "../machine/machine.js";
import type { Arch, Revision, XenOptions, HypercallRequest } from "../machine/api.js";
import { presetPlan, placeBank, type PresetPlan } from "./spec.js";

export { presetPlan, presetDocument, placeBank, PRESET_NAMES, type PresetPlan, type PresetName } from "./spec.js";
export { checkPreset, type PresetMismatch } from "./check.js";

export interface PresetConfig {
  arch?: Arch;
  revision?: Revision;
  xenOptions?: XenOptions;
  /** Use the debug core build. */
  debugCore?: boolean;
  /** Run-format machine fields; when given they must agree with the preset. */
  ramStartMfn?: number | bigint;
  ramFrames?: number;
  ipaBits?: number;
  /** Not supported with a preset (the measured host has no static bank). */
  staticBank?: unknown;
}

const XENMAPSPACE_shared_info = 0;
const XENMAPSPACE_grant_table = 1;
const PAGE_SHIFT = 12;

/** A machine with dom0 as real Xen left it (see the module comment). */
export async function buildPreset(name: string, cfg: PresetConfig = {}): Promise<Machine> {
  const arch = cfg.arch ?? "arm64";
  const revision = cfg.revision ?? "head";
  const xenOptions = cfg.xenOptions ?? {};
  const plan = presetPlan(name, arch, revision, xenOptions);
  checkOverride("ramStartMfn", cfg.ramStartMfn, plan.machine.ramStartMfn);
  checkOverride("ramFrames", cfg.ramFrames, BigInt(plan.machine.ramFrames));
  checkOverride("ipaBits", cfg.ipaBits, BigInt(plan.machine.ipaBits));
  if (cfg.staticBank !== undefined) throw new Error("xenmm preset: machine.staticBank cannot be combined with a preset");

  const m = await createMachine({
    arch, revision, xenOptions, debugCore: cfg.debugCore,
    ramStartMfn: plan.machine.ramStartMfn, ramFrames: plan.machine.ramFrames, ipaBits: plan.machine.ipaBits,
  });
  builtPlans.set(m, buildInto(m, plan));
  return m;
}

const builtPlans = new WeakMap<Machine, PresetPlan>();

/** The plan a preset machine was built from (after placement), for checkPreset. */
export function presetPlanOf(m: Machine): PresetPlan | undefined { return builtPlans.get(m); }

function checkOverride(what: string, given: number | bigint | undefined, want: bigint): void {
  if (given !== undefined && BigInt(given) !== want) {
    throw new Error(`xenmm preset: machine.${what} = ${given} contradicts the preset (${want}); leave it out`);
  }
}

/** Steps 2-5 on a fresh machine built with plan.machine. Returns the plan as placed. */
export function buildInto(m: Machine, plan: PresetPlan): PresetPlan {
  const d0 = plan.dom0;
  const d = m.createDomain({
    domid: d0.domid, privileged: d0.privileged, hardware: d0.hardware, directMapped: d0.directMapped,
    maxPages: d0.maxPages, maxGrantFrames: d0.maxGrantFrames, maxMaptrackFrames: d0.maxMaptrackFrames,
    iomem: d0.iomem,
  });
  const core = m.core;
  const cpu = 0;

  // allocate_memory_11 (domain_build.c): per bank, the largest order that fits the
  // remaining memory, tried with MEMF_bits(order + PAGE_SHIFT + 1 ..) so the lowest
  // suitable address wins; then insert_11_bank → guest_physmap_add_page(gfn = mfn).
  for (const bank of d0.ramBanks) {
    const order = Math.log2(bank.pages);
    if (!Number.isInteger(order) || order > 18) {
      throw new Error(`xenmm preset: dom0 bank of ${bank.pages} pages: only one power-of-two bank up to order 18 is modelled`);
    }
    let mfn = m.INVALID;
    const maxBits = arch64(m) ? 48 : 40;
    for (let bits = order + PAGE_SHIFT + 1; bits <= maxBits && mfn === m.INVALID; bits++) {
      const zoneHi = bits - PAGE_SHIFT; // bits_to_zone
      mfn = core.alloc_heap_pages(1, zoneHi, order, 0);
    }
    if (mfn === m.INVALID) throw new Error(`xenmm preset: no ${bank.pages}-page chunk for dom0`);
    if (d0.ramPlacement === "allocator" && d0.ramBanks.length === 1) {
      plan = placeBank(plan, mfn);
    } else if (mfn !== bank.gfn) {
      throw new Error(`xenmm preset: the allocator placed dom0's bank at mfn 0x${mfn.toString(16)}, the data says 0x${bank.gfn.toString(16)}`);
    }
    const rc0 = core.assign_pages(mfn, BigInt(bank.pages), d.slot, 0);
    if (rc0 !== 0) throw new Error(`xenmm preset: assign_pages for dom0 RAM: ${rc0}`);
    const rc = runToCompletion(m.p2mInsert(cpu, d, mfn, BigInt(bank.pages), mfn, 1 /* p2m_ram_rw */));
    if (rc !== 0) throw new Error(`xenmm preset: mapping dom0 RAM: ${rc}`);
  }

  // MMIO Xen maps while building dom0 (map_regions_p2mt / vGIC), JSON order.
  for (const r of plan.mmio) {
    const rc = runToCompletion(m.p2mInsert(cpu, d, r.gfn, r.nr, r.mfn!, r.type));
    if (rc !== 0) throw new Error(`xenmm preset: mapping ${r.kind} at gfn 0x${r.gfn.toString(16)}: ${rc}`);
  }

  // The dom0 kernel: xen_guest_init maps shared_info, gnttab_init maps frame 0.
  const calls: HypercallRequest[] = [
    { op: "XENMEM_add_to_physmap", domid: d0.domid, space: XENMAPSPACE_shared_info, idx: 0, gpfn: plan.sharedInfo.gfn },
    ...plan.grantFrames.map((f): HypercallRequest => (
      { op: "XENMEM_add_to_physmap", domid: d0.domid, space: XENMAPSPACE_grant_table, idx: f.idx, gpfn: f.gfn })),
  ];
  for (const req of calls) {
    const r = m.hypercall(req, { caller: d0.domid });
    if (r.rc !== 0) throw new Error(`xenmm preset: ${req.op} ${JSON.stringify(req, (_k, v) => typeof v === "bigint" ? `0x${v.toString(16)}` : v)} → ${r.rc}`);
  }
  return plan;
}

function arch64(m: Machine): boolean { return m.arch === "arm64"; }
