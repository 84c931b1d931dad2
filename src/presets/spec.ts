// The measured boot states of real Xen (src/presets/data/*.json, copies of
// /work/shared/spec/qemu-virt-dom0*.json) turned into a typed build plan and a
// list of expectations. Every number a preset uses comes from these files;
// this module only knows the schema ("xen-arm-bootstate/1").
//
// The JSON files are imported as JSON modules, so `tsc -p tsconfig.build.json`
// copies them to dist/src/presets/data/ and they ship with the package.

import arm64Json from "./data/qemu-virt-dom0.json" with { type: "json" };
import arm32Json from "./data/qemu-virt-dom0-arm32.json" with { type: "json" };
import type { Arch, Revision, XenOptions } from "../machine/api.js";

export const PRESET_NAMES = ["qemu-virt-dom0"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The raw JSON document (schema xen-arm-bootstate/1) for an arch. */
export function presetDocument(arch: Arch): any {
  return arch === "arm32" ? arm32Json : arm64Json;
}

/** A hex string ("0x1f", possibly followed by a comment) or a number. */
export function hex(v: unknown): bigint {
  if (typeof v === "number") return BigInt(v);
  if (typeof v === "bigint") return v;
  if (typeof v === "string") {
    const m = /^\s*(0x[0-9a-fA-F]+|\d+)/.exec(v);
    if (m) return BigInt(m[1]);
  }
  throw new Error(`xenmm preset: not a number: ${JSON.stringify(v)}`);
}

/** `"0x10-0x3f"` or `"0x9010"` (inclusive) → [start, endExclusive). */
function inclusiveRange(s: string): [bigint, bigint] {
  const [a, b] = s.split("-");
  const lo = hex(a);
  const hi = b === undefined ? lo : hex(b);
  return [lo, hi + 1n];
}

/** A value keyed by build ("pre", "gfn", ... or "4.17,pre,harden,gfn"). */
function perRevision<T>(obj: Record<string, T>, rev: Revision): T | undefined {
  if (rev in obj) return obj[rev];
  for (const [k, v] of Object.entries(obj)) {
    if (k.split(",").map((s) => s.trim()).includes(rev)) return v;
  }
  return undefined;
}

const P2M_TYPE_BY_NAME: Record<string, number> = {
  p2m_invalid: 0, p2m_ram_rw: 1, p2m_ram_ro: 2, p2m_mmio_direct_dev: 3, p2m_mmio_direct_nc: 4,
  p2m_mmio_direct_c: 5, p2m_map_foreign_rw: 6, p2m_map_foreign_ro: 7, p2m_grant_map_rw: 8,
  p2m_grant_map_ro: 9, p2m_iommu_map_rw: 10, p2m_iommu_map_ro: 11,
};

export interface PresetRegion {
  gfn: bigint;
  nr: bigint;
  /** First MFN; equal to gfn for 1:1 runs. For xenheap remaps: null (opaque, allocator-dependent). */
  mfn: bigint | null;
  type: number;
  kind: string;
  /** Measured MFN per revision when the JSON has one (opaque: informative only). */
  measuredMfn?: bigint;
}

export interface PresetPlan {
  name: PresetName;
  arch: Arch;
  revision: Revision;
  machine: { ramStartMfn: bigint; ramFrames: number; ipaBits: number };
  p2m: {
    rootLevel: number; rootOrder: number; rootPages: number; vtcr: bigint; vmid: number; levels: number;
    /** Measured root MFN for this revision (opaque). */
    measuredRootMfn?: bigint;
  };
  dom0: {
    domid: number; privileged: boolean; hardware: boolean; directMapped: boolean;
    /** 1:1 RAM banks [gfn, pages). */
    ramBanks: Array<{ gfn: bigint; pages: number }>;
    /** "measured": the bank must land at ramBanks[].gfn; "allocator": dom0_mem changed, Xen's allocator decides (placeBank). */
    ramPlacement: "measured" | "allocator";
    maxPages: number; totPages: number; xenheapPages: number;
    /** iomem permission, [start, endExclusive), for this revision. */
    iomem: Array<[bigint, bigint]>;
    maxGrantFrames: number; maxMaptrackFrames: number; gnttabMaxVersion: 1 | 2;
  };
  /** MMIO runs Xen maps while building dom0 (not RAM, not the two xenheap remaps), in JSON order. */
  mmio: PresetRegion[];
  /** What dom0's kernel maps with XENMEM_add_to_physmap before the state point. */
  grantFrames: Array<{ idx: number; gfn: bigint; measuredMfn?: bigint }>;
  sharedInfo: { gfn: bigint; measuredMfn?: bigint };
  grant: { version: number; nrFrames: number; maxNrFrames: number; nrStatusFrames: number; region: { gfn: bigint; frames: number } };
  /** Every mapped run the walk found (P2M walk), for checking. */
  regions: PresetRegion[];
  expect: {
    maximumGpfn: bigint; lowestMappedGfn: bigint;
    currentReservation: number; maximumReservation: number;
    querySize: { nr_frames: number; max_nr_frames: number; status: number };
    getVersion: number; setupTable1: bigint[];
    /** q-key stats: mappings per leaf size and shattered 2M blocks (only valid for the measured options). */
    stats: { "1G": number; "2M": number; "2M_shattered": number; "4K": number };
  };
  /** Which xenOptions changed the build away from the measured configuration. */
  deviations: string[];
}

function p2mTypeOf(r: any): number {
  if (typeof r.p2m_type_value === "number") return r.p2m_type_value;
  const t = P2M_TYPE_BY_NAME[r.p2m_type];
  if (t === undefined) throw new Error(`xenmm preset: unknown p2m type ${r.p2m_type}`);
  return t;
}

function regionOf(r: any, rev: Revision): PresetRegion {
  const gfn = hex(r.gfn_start);
  const nr = hex(r.nr_pages);
  let mfn: bigint | null;
  let measuredMfn: bigint | undefined;
  if (typeof r.mfn_start === "string") {
    mfn = /^\s*same as gfn/.test(r.mfn_start) ? gfn : hex(r.mfn_start);
  } else if (r.mfn_start && typeof r.mfn_start === "object") {
    mfn = null;
    const m = perRevision<string>(r.mfn_start, rev);
    if (m !== undefined) measuredMfn = hex(m);
  } else {
    throw new Error(`xenmm preset: region ${r.gfn_start} has no mfn_start`);
  }
  return { gfn, nr, mfn, type: p2mTypeOf(r), kind: String(r.kind), measuredMfn };
}

/**
 * The build plan for `name` on `arch` at `revision`, with `xenOptions` applied
 * where they change the build:
 * - gnttabMaxFrames: dom0's max grant frames = min(option, Xen text pages). The text size is
 *   not in the data; the measured dom0 value (64 with the default option 64) is taken as that
 *   bound, so the option can only lower it.
 * - gnttabMaxMaptrackFrames: dom0's maptrack limit (dom0 is created with -1 → the option).
 * - gnttabMaxVersion: dom0's max grant version (the boot state still ends at version 1).
 * - dom0MemPages: size of the 1:1 RAM bank. Its address is then whatever Xen's allocator picks
 *   (placeBank); the kernel's shared_info page keeps its offset from the bank start.
 */
export function presetPlan(name: string, arch: Arch = "arm64", revision: Revision = "head",
                           xenOptions: XenOptions = {}): PresetPlan {
  if (name !== "qemu-virt-dom0") throw new Error(`xenmm: unknown preset "${name}" (known: ${PRESET_NAMES.join(", ")})`);
  const doc = presetDocument(arch);
  if (doc.schema !== "xen-arm-bootstate/1") throw new Error(`xenmm preset: unsupported schema ${doc.schema}`);
  if ((doc.arch ?? "arm64") !== arch) throw new Error(`xenmm preset: data file is for ${doc.arch}, not ${arch}`);
  const deviations: string[] = [];

  const banks = doc.machine.host_ram_banks as any[];
  if (banks.length !== 1) throw new Error("xenmm preset: one host RAM bank supported");
  const ramStart = hex(banks[0].start) >> 12n;
  const ramFrames = Number(hex(banks[0].size) >> 12n);

  const pp = doc.p2m_params;
  const d0 = doc.dom0;
  const opts = doc.options_in_force;

  // dom0 RAM.
  let ramBanks = (d0.ram_banks as any[]).map((b) => ({ gfn: hex(b.gfn_start), pages: Number(hex(b.gfn_end) - hex(b.gfn_start) + 1n) }));
  let maxPages = Number(d0.max_pages);
  let totPages = Number(d0.tot_pages);
  if (xenOptions.dom0MemPages !== undefined && xenOptions.dom0MemPages !== Number(opts.dom0_mem.pages)) {
    const pages = xenOptions.dom0MemPages;
    if (ramBanks.length !== 1) throw new Error("xenmm preset: dom0_mem with several banks is not modelled");
    if (!Number.isInteger(pages) || pages <= 0) throw new Error(`xenmm preset: bad dom0MemPages ${pages}`);
    const end = ramBanks[0].gfn + BigInt(pages);
    if (end > ramStart + BigInt(ramFrames)) throw new Error(`xenmm preset: dom0MemPages ${pages} does not fit host RAM at gfn 0x${ramBanks[0].gfn.toString(16)}`);
    ramBanks = [{ gfn: ramBanks[0].gfn, pages }];
    maxPages = totPages = pages;
    deviations.push("dom0_mem");
  }

  // Grant-table limits.
  const measuredDom0Frames = Number(opts.dom0_max_grant_frames.value);
  let maxGrantFrames = measuredDom0Frames;
  if (xenOptions.gnttabMaxFrames !== undefined && xenOptions.gnttabMaxFrames !== Number(opts.gnttab_max_frames.value)) {
    maxGrantFrames = Math.min(xenOptions.gnttabMaxFrames, measuredDom0Frames);
    deviations.push("gnttab_max_frames");
  }
  let maxMaptrackFrames = Number(opts.dom0_max_maptrack_frames.value);
  if (xenOptions.gnttabMaxMaptrackFrames !== undefined && xenOptions.gnttabMaxMaptrackFrames !== Number(opts.gnttab_max_maptrack_frames.value)) {
    maxMaptrackFrames = xenOptions.gnttabMaxMaptrackFrames;
    deviations.push("gnttab_max_maptrack_frames");
  }
  const gnttabMaxVersion = (xenOptions.gnttabMaxVersion ?? Number(opts.gnttab_max_version.value)) as 1 | 2;

  // Regions.
  const regions = (doc.p2m_regions as any[]).map((r) => regionOf(r, revision));
  const gt = doc.grant_table;
  const grantFrames = (gt.mapped_frames as any[]).map((f) => {
    const m = perRevision<string>(f.mfn, revision);
    return { idx: Number(f.idx), gfn: hex(f.gfn), measuredMfn: m !== undefined && /^0x/.test(m) ? hex(m) : undefined };
  });
  const siM = perRevision<string>(doc.shared_info.mfn, revision);
  const sharedInfo = { gfn: hex(doc.shared_info.gfn), measuredMfn: siM !== undefined && /^0x/.test(siM) ? hex(siM) : undefined };
  if (!ramBanks.some((b) => sharedInfo.gfn >= b.gfn && sharedInfo.gfn < b.gfn + BigInt(b.pages))) {
    throw new Error(`xenmm preset: shared_info gfn 0x${sharedInfo.gfn.toString(16)} is outside dom0's RAM with this dom0_mem`);
  }
  const inRam = (r: PresetRegion) => ramBanks.some((b) => r.gfn >= b.gfn && r.gfn < b.gfn + BigInt(b.pages))
    || (r.gfn >= hex(d0.ram_banks[0].gfn_start) && r.gfn <= hex(d0.ram_banks[0].gfn_end));
  const remapped = new Set([sharedInfo.gfn, ...grantFrames.map((f) => f.gfn)]);
  const mmio = regions.filter((r) => r.mfn !== null && !inRam(r) && !remapped.has(r.gfn));

  // iomem permission for this revision.
  const io = perRevision<string[]>(doc.iomem_permissions_pfn_inclusive, revision);
  if (!io) throw new Error(`xenmm preset: no iomem permissions for revision ${revision}`);
  const iomem = io.map(inclusiveRange);

  const obs = d0.observed_hypercalls;
  const rootLevel = Number(pp.root_level);
  const measuredRoot = perRevision<string>(d0.p2m_root_mfn, revision);
  return {
    name: "qemu-virt-dom0",
    arch, revision,
    machine: { ramStartMfn: ramStart, ramFrames, ipaBits: Number(pp.ipa_bits) },
    p2m: {
      rootLevel, rootOrder: Number(pp.root_order), rootPages: Number(pp.concatenated_root_pages),
      vtcr: hex(pp.vtcr_el2), vmid: Number(d0.vmid), levels: Number(pp.levels),
      measuredRootMfn: measuredRoot && /^0x/.test(measuredRoot) ? hex(measuredRoot) : undefined,
    },
    dom0: {
      domid: Number(d0.domid), privileged: !!d0.is_privileged, hardware: !!d0.is_hardware_domain,
      directMapped: !!d0.direct_mapped, ramBanks, ramPlacement: deviations.includes("dom0_mem") ? "allocator" : "measured", maxPages, totPages, xenheapPages: Number(d0.xenheap_pages),
      iomem, maxGrantFrames, maxMaptrackFrames, gnttabMaxVersion,
    },
    mmio, grantFrames, sharedInfo,
    grant: {
      version: Number(gt.version), nrFrames: Number(gt.nr_frames), maxNrFrames: maxGrantFrames,
      nrStatusFrames: Number(gt.nr_status_frames),
      region: { gfn: hex(gt.dt_region.gfn_start), frames: Number(gt.dt_region.frames) },
    },
    regions,
    expect: {
      maximumGpfn: hex(d0.max_mapped_gfn),
      lowestMappedGfn: hex(d0.lowest_mapped_gfn),
      currentReservation: totPages,
      maximumReservation: maxPages,
      querySize: { nr_frames: Number(obs.GNTTABOP_query_size.nr_frames), max_nr_frames: maxGrantFrames, status: Number(obs.GNTTABOP_query_size.status) },
      getVersion: Number(obs.GNTTABOP_get_version),
      setupTable1: (obs["GNTTABOP_setup_table(nr_frames=1)"] as string[]).map(hex),
      stats: {
        "1G": Number(d0.p2m_stats_q_key["1G"]), "2M": Number(d0.p2m_stats_q_key["2M"]),
        "2M_shattered": Number(d0.p2m_stats_q_key["2M_shattered"]), "4K": Number(d0.p2m_stats_q_key["4K"]),
      },
    },
    deviations,
  };
}

/**
 * The plan with dom0's (single) bank moved to `gfn`, as the allocator placed it: RAM runs,
 * the shared_info gfn (same offset into the bank) and max_mapped_gfn follow.
 */
export function placeBank(plan: PresetPlan, gfn: bigint): PresetPlan {
  const old = plan.dom0.ramBanks[0];
  if (old.gfn === gfn) return plan;
  const shift = gfn - old.gfn;
  const pages = BigInt(old.pages);
  const si = plan.sharedInfo.gfn + shift;
  if (si < gfn || si >= gfn + pages) throw new Error(`xenmm preset: shared_info offset 0x${(plan.sharedInfo.gfn - old.gfn).toString(16)} is outside a ${old.pages}-page bank`);
  const isRam = (r: PresetRegion) => r.kind === "dom0 RAM" || r.gfn === plan.sharedInfo.gfn;
  const siRegion = plan.regions.find((r) => r.gfn === plan.sharedInfo.gfn)!;
  const ram: PresetRegion[] = [
    { gfn, nr: si - gfn, mfn: gfn, type: 1, kind: "dom0 RAM" },
    { ...siRegion, gfn: si },
    { gfn: si + 1n, nr: gfn + pages - si - 1n, mfn: si + 1n, type: 1, kind: "dom0 RAM" },
  ].filter((r) => r.nr > 0n);
  const regions = [...plan.regions.filter((r) => !isRam(r)), ...ram].sort((a, b) => (a.gfn < b.gfn ? -1 : a.gfn > b.gfn ? 1 : 0));
  const maxGfn = regions.reduce((m, r) => (r.gfn + r.nr - 1n > m ? r.gfn + r.nr - 1n : m), 0n);
  return {
    ...plan,
    dom0: { ...plan.dom0, ramBanks: [{ gfn, pages: old.pages }] },
    sharedInfo: { ...plan.sharedInfo, gfn: si },
    regions,
    expect: { ...plan.expect, maximumGpfn: maxGfn },
  };
}
