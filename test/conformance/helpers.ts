// Conformance sequences: run documents on the qemu-virt-dom0 preset (the state
// real Xen reached), driven through the run format (loadRunDocument +
// executeRun), so each sequence also works as `npx xenmm run FILE.json`.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadRunDocument, executeRun, type RunResults } from "../../src/run/index.js";
import { presetPlan, type PresetPlan } from "../../src/presets/index.js";
import type { Arch, Revision, XenOptions } from "../../src/machine/api.js";

export const REVS: readonly Revision[] = ["pre", "harden", "gfn", "head"];
export const ARCHES: readonly Arch[] = ["arm64", "arm32"];

export const DOMID_SELF = 0x7ff0, DOMID_IO = 0x7ff1, DOMID_XEN = 0x7ff2;
export const XENMAPSPACE = { shared_info: 0, grant_table: 1, gmfn: 2, gmfn_range: 3, gmfn_foreign: 4, dev_mmio: 5 } as const;
export const XENMAPIDX_grant_table_status = 0x80000000;
export const E = { PERM: -1, NOENT: -2, SRCH: -3, NXIO: -6, NOMEM: -12, ACCES: -13, BUSY: -16, INVAL: -22, DOM: -33, RANGE: -34, NOSYS: -38, ILSEQ: -84, OPNOTSUPP: -95 } as const;
export const GNTST = { okay: 0, general_error: -1, bad_domain: -2 } as const;
export const CRASHED_RC = -0xdead;

export const hx = (v: bigint | number) => "0x" + BigInt(v).toString(16);
/** INVALID_GFN as a 64-bit xen_pfn_t written by Xen (arm32: zero-extended, FS 2.5). */
export const invalidGfn64 = (arch: Arch) => (arch === "arm64" ? "0xffffffffffffffff" : "0xffffffff");

/** Value per revision: [pre, harden, gfn, head], or the two groups pre/harden vs gfn/head. */
export function byRev<T>(rev: Revision, v: { pre: T; harden: T; gfn: T; head: T }): T { return v[rev]; }
export function arrayVsPage<T>(rev: Revision, preHarden: T, gfnHead: T): T {
  return rev === "pre" || rev === "harden" ? preHarden : gfnHead;
}

export interface Preset {
  plan: PresetPlan;
  /** grant frame 0's gfn at boot, the first free gfn of the grant region after it, shared_info's gfn. */
  g0: bigint; gfree: (i: number) => bigint; si: bigint;
  ramStart: bigint; ramEnd: bigint;
}

export function preset(arch: Arch, rev: Revision = "head", xenOptions: XenOptions = {}): Preset {
  const plan = presetPlan("qemu-virt-dom0", arch, rev, xenOptions);
  const g0 = plan.grantFrames[0].gfn;
  const bank = plan.dom0.ramBanks[0];
  return {
    plan, g0, si: plan.sharedInfo.gfn,
    gfree: (i: number) => plan.grant.region.gfn + BigInt(i),
    ramStart: bank.gfn, ramEnd: bank.gfn + BigInt(bank.pages),
  };
}

export type Op = Record<string, unknown>;

/** JSON-ready: bigints become hex strings. */
export function jsonify<T>(v: T): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? hx(x) : x)));
}

export function runDocument(arch: Arch, rev: Revision, ops: Op[], xenOptions?: XenOptions, domains: Op[] = []): Record<string, unknown> {
  const machine: Record<string, unknown> = { arch, revision: rev, preset: "qemu-virt-dom0" };
  if (xenOptions && Object.keys(xenOptions).length) machine.xenOptions = xenOptions;
  return jsonify({ machine, domains, ops }) as Record<string, unknown>;
}

export interface Outcome {
  /** Per op: rc and every field the hypercall wrote back (index/op/caller/vcpu removed). */
  results: Array<Record<string, unknown>>;
  run: RunResults;
}

export async function runOps(arch: Arch, rev: Revision, ops: Op[], xenOptions?: XenOptions, domains: Op[] = []): Promise<Outcome> {
  return runDoc(runDocument(arch, rev, ops, xenOptions, domains));
}

export async function runDoc(doc: unknown): Promise<Outcome> {
  const run = await executeRun(loadRunDocument(doc));
  const results = run.results.map((r) => {
    const { index: _i, op: _o, caller: _c, vcpu: _v, ...rest } = r;
    return rest as Record<string, unknown>;
  });
  return { results, run };
}

/** A crash result: rc CRASHED_RC plus the crash record. */
export function crashed(r: Record<string, unknown>): { kind: string; path: string } | null {
  if (r.rc !== CRASHED_RC) return null;
  return r.crash as { kind: string; path: string };
}

// ---- fixtures ---------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url));

/** A fixture: a run document plus `expected[arch][revision]` = results (ignored by `xenmm run`). */
export function fixture(name: string): { doc: Record<string, any>; expected: Record<string, Record<string, unknown[]>> } {
  const doc = JSON.parse(readFileSync(join(here, "fixtures", name), "utf8"));
  return { doc, expected: doc.expected };
}

/** The fixture's document retargeted at arch/revision. */
export function retarget(doc: Record<string, any>, arch: Arch, rev: Revision): Record<string, unknown> {
  return { ...doc, machine: { ...doc.machine, arch, revision: rev } };
}

// ---- common sequences -------------------------------------------------------------

export const op = {
  atp: (space: number, idx: bigint | number, gpfn: bigint | number, domid = DOMID_SELF): Op =>
    ({ op: "XENMEM_add_to_physmap", domid, space, idx, gpfn }),
  grant: (idx: bigint | number, gpfn: bigint | number): Op => op.atp(XENMAPSPACE.grant_table, idx, gpfn),
  remove: (gpfn: bigint | number, domid = DOMID_SELF): Op => ({ op: "XENMEM_remove_from_physmap", domid, gpfn }),
  setup: (nr: number, dom = DOMID_SELF): Op => ({ op: "GNTTABOP_setup_table", dom, nr_frames: nr }),
  query: (dom = DOMID_SELF): Op => ({ op: "GNTTABOP_query_size", dom }),
  getVersion: (dom = DOMID_SELF): Op => ({ op: "GNTTABOP_get_version", dom }),
  setVersion: (version: number): Op => ({ op: "GNTTABOP_set_version", version }),
  statusFrames: (nr: number, dom = DOMID_SELF): Op => ({ op: "GNTTABOP_get_status_frames", dom, nr_frames: nr }),
  maxGpfn: (domid = DOMID_SELF): Op => ({ op: "XENMEM_maximum_gpfn", domid }),
  curRes: (domid = DOMID_SELF): Op => ({ op: "XENMEM_current_reservation", domid }),
  populate: (gfns: Array<bigint | number>, order = 0, domid = DOMID_SELF): Op =>
    ({ op: "XENMEM_populate_physmap", domid, extent_start: gfns, extent_order: order }),
  decrease: (gfns: Array<bigint | number>, order = 0, domid = DOMID_SELF): Op =>
    ({ op: "XENMEM_decrease_reservation", domid, extent_start: gfns, extent_order: order }),
  batch: (space: number, idxs: Array<bigint | number>, gpfns: Array<bigint | number>, foreign_domid?: number, domid = DOMID_SELF): Op =>
    ({ op: "XENMEM_add_to_physmap_batch", domid, space, size: idxs.length, idxs, gpfns, ...(foreign_domid === undefined ? {} : { foreign_domid }) }),
};

/** Expected results, written like the outputs: bigints as hex. */
export const r = {
  rc: (rc: number) => ({ rc }),
  setup: (list: Array<bigint | string>, status = 0) => ({ rc: 0, status, frame_list: list.map((x) => (typeof x === "string" ? x : hx(x))) }),
  setupErr: (status: number) => ({ rc: 0, status }),
  query: (nr: number, max: number, dom = DOMID_SELF) => ({ rc: 0, status: 0, dom, nr_frames: nr, max_nr_frames: max }),
  version: (rc: number, version: number) => ({ rc, version }),
  errs: (errs: number[], rc = 0) => ({ rc, errs }),
};
