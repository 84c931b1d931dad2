// Replayable run documents: `xenmm run FILE.json`, and the format the fuzzer
// writes its reproducers in.
//
// {
//   "machine": { "arch", "revision", "ramStartMfn", "ramFrames", "ipaBits", "xenOptions": {...}, "preset"? },
//   "domains": [ DomainConfig, ... ],
//   "ops": [
//     { "op": "<Xen name>", "caller": domid, "vcpu": n, ...args under Xen field names },
//     { "op": "domain_create", ...DomainConfig },
//     { "op": "domain_destroy", "domid": n },
//     { "parallel": [op, op, ...], "schedule": [cpu index at each scheduling point] }
//   ]
// }
// Integers may be JSON numbers or strings ("0x…" or decimal) — use strings for 64-bit values.

import { readFileSync } from "node:fs";
import type { DomainConfig, HypercallRequest, HypercallResult, MachineConfig } from "../machine/api.js";
import { REVISIONS } from "../machine/api.js";
import { createMachine, type MachineImpl } from "../machine/machine.js";
import { XenError } from "../machine/crash.js";
import { CRASHED_RC, P2M_TYPE_NAMES } from "../machine/errno.js";
import { runFixedSchedule } from "./schedule.js";
import { buildPreset, PRESET_NAMES } from "../presets/index.js";

export class RunDocumentError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
  }
}

export type RunOp =
  | { kind: "hypercall"; req: HypercallRequest; caller: number; vcpu: number }
  | { kind: "domain_create"; cfg: DomainConfig }
  | { kind: "domain_destroy"; domid: number }
  | { kind: "parallel"; ops: Array<{ req: HypercallRequest; caller: number; vcpu: number }>; schedule: number[] };

export interface RunDocument {
  machine: MachineConfig & { preset?: string };
  domains: DomainConfig[];
  ops: RunOp[];
}

// ---- validation ------------------------------------------------------------------

type Kind = "u" | "u?" | "w" | "w?" | "wa" | "wa?" | "wan";
const HC_FIELDS: Record<string, Record<string, Kind>> = {
  XENMEM_add_to_physmap: { domid: "u", space: "u", idx: "w", gpfn: "w", size: "u?", startExtent: "u?" },
  XENMEM_add_to_physmap_batch: { domid: "u", space: "u", size: "u", foreign_domid: "u?", idxs: "wa", gpfns: "wa", startExtent: "u?" },
  XENMEM_remove_from_physmap: { domid: "u", gpfn: "w", startExtent: "u?" },
  XENMEM_populate_physmap: { domid: "u", extent_start: "wa", nr_extents: "u?", extent_order: "u?", mem_flags: "u?", startExtent: "u?" },
  XENMEM_increase_reservation: { domid: "u", extent_start: "wa?", nr_extents: "u?", extent_order: "u?", mem_flags: "u?", startExtent: "u?" },
  XENMEM_decrease_reservation: { domid: "u", extent_start: "wa", nr_extents: "u?", extent_order: "u?", mem_flags: "u?", startExtent: "u?" },
  XENMEM_acquire_resource: { domid: "u", type: "u", id: "u", frame: "w", nr_frames: "u", pad: "u?", frame_list: "wan", startExtent: "u?" },
  XENMEM_current_reservation: { domid: "u", startExtent: "u?" },
  XENMEM_maximum_reservation: { domid: "u", startExtent: "u?" },
  XENMEM_maximum_gpfn: { domid: "u", startExtent: "u?" },
  GNTTABOP_setup_table: { dom: "u", nr_frames: "u", count: "u?" },
  GNTTABOP_set_version: { version: "u" },
  GNTTABOP_get_version: { dom: "u" },
  GNTTABOP_get_status_frames: { dom: "u", nr_frames: "u", count: "u?" },
  GNTTABOP_query_size: { dom: "u", count: "u?" },
  XENVER_version: {},
};
const DOMAIN_FIELDS: Record<string, Kind | "b" | "ranges"> = {
  domid: "u", privileged: "b", hardware: "b", directMapped: "b", ramPages: "u?", ramBaseGfn: "w?", maxPages: "u?",
  maxGrantFrames: "u?", maxMaptrackFrames: "u?", dmTargetOf: "u?", iomem: "ranges",
};

function parseInt64(v: unknown, where: string): bigint {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new RunDocumentError(where, "expected integer");
    return BigInt(v);
  }
  if (typeof v === "bigint") return v;
  if (typeof v === "string" && /^-?(0x[0-9a-fA-F]+|[0-9]+)$/.test(v.trim())) {
    const s = v.trim();
    return s.startsWith("-") ? -BigInt(s.slice(1)) : BigInt(s);
  }
  throw new RunDocumentError(where, "expected integer");
}

function parseInt32(v: unknown, where: string): number {
  const b = parseInt64(v, where);
  if (b < -(2n ** 31n) || b > 0xffffffffn) throw new RunDocumentError(where, "integer out of range");
  return Number(b);
}

function parseFields(o: Record<string, unknown>, spec: Record<string, string>, where: string, out: Record<string, unknown>): void {
  for (const [k, kind] of Object.entries(spec)) {
    const v = o[k];
    const f = `${where}.${k}`;
    const optional = kind.endsWith("?") || kind === "b" || kind === "ranges";
    if (v === undefined) {
      if (!optional) throw new RunDocumentError(f, "missing");
      continue;
    }
    switch (kind) {
      case "u": case "u?": out[k] = parseInt32(v, f); break;
      case "w": case "w?": out[k] = parseInt64(v, f); break;
      case "b":
        if (typeof v !== "boolean") throw new RunDocumentError(f, "expected boolean");
        out[k] = v;
        break;
      case "wa": case "wa?": case "wan":
        if (v === null && kind === "wan") { out[k] = null; break; }
        if (!Array.isArray(v)) throw new RunDocumentError(f, kind === "wan" ? "expected array of integers or null" : "expected array of integers");
        out[k] = v.map((x, i) => parseInt64(x, `${f}[${i}]`));
        break;
      case "ranges":
        if (!Array.isArray(v)) throw new RunDocumentError(f, "expected array of [start, end] pairs");
        out[k] = v.map((x, i) => {
          if (!Array.isArray(x) || x.length !== 2) throw new RunDocumentError(`${f}[${i}]`, "expected [start, end]");
          return [parseInt64(x[0], `${f}[${i}][0]`), parseInt64(x[1], `${f}[${i}][1]`)];
        });
        break;
    }
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseDomain(o: unknown, where: string): DomainConfig {
  if (!isObj(o)) throw new RunDocumentError(where, "expected object");
  const out: Record<string, unknown> = {};
  parseFields(o, DOMAIN_FIELDS, where, out);
  return out as unknown as DomainConfig;
}

function parseHypercall(o: Record<string, unknown>, where: string): { req: HypercallRequest; caller: number; vcpu: number } {
  const op = o.op;
  if (typeof op !== "string") throw new RunDocumentError(`${where}.op`, "expected string");
  const spec = HC_FIELDS[op];
  if (!spec) throw new RunDocumentError(`${where}.op`, `unknown operation "${op}"`);
  const req: Record<string, unknown> = { op };
  parseFields(o, spec, where, req);
  if (op === "XENMEM_increase_reservation" && req.extent_start === undefined) req.extent_start = [];
  const caller = o.caller === undefined ? 0 : parseInt32(o.caller, `${where}.caller`);
  const vcpu = o.vcpu === undefined ? 0 : parseInt32(o.vcpu, `${where}.vcpu`);
  for (const k of Object.keys(o)) {
    if (k !== "op" && k !== "caller" && k !== "vcpu" && !(k in spec)) throw new RunDocumentError(`${where}.${k}`, `unknown field for ${op}`);
  }
  return { req: req as unknown as HypercallRequest, caller, vcpu };
}

function parseOp(o: unknown, where: string): RunOp {
  if (!isObj(o)) throw new RunDocumentError(where, "expected object");
  if (o.parallel !== undefined) {
    if (!Array.isArray(o.parallel)) throw new RunDocumentError(`${where}.parallel`, "expected array of operations");
    const ops = o.parallel.map((x, i) => {
      if (!isObj(x)) throw new RunDocumentError(`${where}.parallel[${i}]`, "expected object");
      const h = parseHypercall(x, `${where}.parallel[${i}]`);
      if (x.vcpu === undefined) h.vcpu = i;
      return h;
    });
    const sched = o.schedule ?? [];
    if (!Array.isArray(sched)) throw new RunDocumentError(`${where}.schedule`, "expected array of integers");
    const schedule = sched.map((x, i) => {
      const v = parseInt32(x, `${where}.schedule[${i}]`);
      if (v < 0 || v >= ops.length) throw new RunDocumentError(`${where}.schedule[${i}]`, `expected an index into parallel (0..${ops.length - 1})`);
      return v;
    });
    return { kind: "parallel", ops, schedule };
  }
  if (o.op === "domain_create") {
    const { op: _op, ...rest } = o;
    return { kind: "domain_create", cfg: parseDomain(rest, where) };
  }
  if (o.op === "domain_destroy") return { kind: "domain_destroy", domid: parseInt32(o.domid, `${where}.domid`) };
  const h = parseHypercall(o, where);
  return { kind: "hypercall", ...h };
}

/** Validate a parsed JSON document (or a JSON string). Throws RunDocumentError naming the bad field. */
export function loadRunDocument(json: unknown): RunDocument {
  let doc = json;
  if (typeof doc === "string") {
    try { doc = JSON.parse(doc); } catch (e) { throw new RunDocumentError("document", `invalid JSON (${(e as Error).message})`); }
  }
  if (!isObj(doc)) throw new RunDocumentError("document", "expected object");
  const mIn = doc.machine ?? {};
  if (!isObj(mIn)) throw new RunDocumentError("machine", "expected object");
  const machine: RunDocument["machine"] = {};
  if (mIn.arch !== undefined) {
    if (mIn.arch !== "arm64" && mIn.arch !== "arm32") throw new RunDocumentError("machine.arch", 'expected "arm64" or "arm32"');
    machine.arch = mIn.arch;
  }
  if (mIn.revision !== undefined) {
    if (!REVISIONS.includes(mIn.revision as never)) throw new RunDocumentError("machine.revision", `expected one of ${REVISIONS.join(", ")}`);
    machine.revision = mIn.revision as RunDocument["machine"]["revision"];
  }
  if (mIn.ramStartMfn !== undefined) machine.ramStartMfn = parseInt64(mIn.ramStartMfn, "machine.ramStartMfn");
  if (mIn.ramFrames !== undefined) machine.ramFrames = parseInt32(mIn.ramFrames, "machine.ramFrames");
  if (mIn.ipaBits !== undefined) machine.ipaBits = parseInt32(mIn.ipaBits, "machine.ipaBits");
  if (mIn.preset !== undefined) {
    if (typeof mIn.preset !== "string") throw new RunDocumentError("machine.preset", "expected string");
    machine.preset = mIn.preset;
  }
  if (mIn.xenOptions !== undefined) {
    if (!isObj(mIn.xenOptions)) throw new RunDocumentError("machine.xenOptions", "expected object");
    const x: Record<string, unknown> = {};
    parseFields(mIn.xenOptions, { gnttabMaxVersion: "u?", gnttabMaxFrames: "u?", gnttabMaxMaptrackFrames: "u?", dom0MemPages: "u?" }, "machine.xenOptions", x);
    if (x.gnttabMaxVersion !== undefined && x.gnttabMaxVersion !== 1 && x.gnttabMaxVersion !== 2) {
      throw new RunDocumentError("machine.xenOptions.gnttabMaxVersion", "expected 1 or 2");
    }
    machine.xenOptions = x;
  }
  const domsIn = doc.domains ?? [];
  if (!Array.isArray(domsIn)) throw new RunDocumentError("domains", "expected array");
  const domains = domsIn.map((d, i) => parseDomain(d, `domains[${i}]`));
  const opsIn = doc.ops ?? [];
  if (!Array.isArray(opsIn)) throw new RunDocumentError("ops", "expected array");
  const ops = opsIn.map((o, i) => parseOp(o, `ops[${i}]`));
  return { machine, domains, ops };
}

// ---- execution -------------------------------------------------------------------

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export const hex = (v: bigint) => "0x" + v.toString(16);

export function toJson(v: unknown): JsonValue {
  if (typeof v === "bigint") return hex(v);
  if (Array.isArray(v)) return v.map(toJson);
  if (isObj(v)) {
    const o: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = toJson(x);
    return o;
  }
  if (v === undefined) return null;
  return v as JsonValue;
}

export interface OpResult { index: number; op: string; caller?: number; vcpu?: number; rc: number | string; [k: string]: unknown }

export interface RunResults {
  results: OpResult[];
  final: Record<string, JsonValue>;
  crash: JsonValue;
  /** The machine in its final state (not part of the JSON output). */
  machine: MachineImpl;
}

function resultOf(index: number, op: string, caller: number, vcpu: number, r: HypercallResult): OpResult {
  const { rc, ...rest } = r;
  const out: OpResult = { index, op, caller, vcpu, rc: typeof rc === "bigint" ? hex(rc) : rc };
  for (const [k, v] of Object.entries(rest)) out[k] = toJson(v);
  return out;
}

async function buildMachine(doc: RunDocument): Promise<MachineImpl> {
  const { preset, ...cfg } = doc.machine;
  if (preset === undefined) return createMachine(cfg);
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) {
    throw new RunDocumentError("machine.preset", `unknown preset "${preset}" (expected ${PRESET_NAMES.join(", ")})`);
  }
  return buildPreset(preset, cfg);
}

export interface ExecuteOptions {
  /** Called once the machine exists, before the document's domains are created (install observers here). */
  onMachine?: (m: MachineImpl) => void;
}

/** Run a validated document. */
export async function executeRun(doc: RunDocument, opts: ExecuteOptions = {}): Promise<RunResults> {
  const m = await buildMachine(doc);
  opts.onMachine?.(m);
  const results: OpResult[] = [];
  for (const d of doc.domains) {
    try { m.createDomain(d); } catch (e) {
      if (e instanceof XenError) throw new Error(`domain ${d.domid}: ${e.message} (rc ${e.rc})`);
      throw e;
    }
  }
  doc.ops.forEach((op, index) => {
    m.opIndex = index;
    switch (op.kind) {
      case "hypercall":
        results.push(resultOf(index, op.req.op, op.caller, op.vcpu, m.hypercall(op.req, { caller: op.caller, vcpu: op.vcpu })));
        break;
      case "domain_create": {
        let rc = 0;
        try { m.createDomain(op.cfg); } catch (e) { if (!(e instanceof XenError)) throw e; rc = e.rc; }
        results.push({ index, op: "domain_create", domid: op.cfg.domid, rc });
        break;
      }
      case "domain_destroy":
        results.push({ index, op: "domain_destroy", domid: op.domid, rc: m.destroyDomain(op.domid) });
        break;
      case "parallel": {
        const gens = op.ops.map((o) => m.hypercallGen(o.req, { caller: o.caller, vcpu: o.vcpu }));
        const r = runFixedSchedule(gens, op.schedule);
        m.reapZombies();
        const sub = op.ops.map((o, i) => {
          const hr = r.results[i] ?? { rc: "deadlock" as unknown as number };
          return resultOf(index, o.req.op, o.caller, o.vcpu, hr);
        });
        results.push({ index, op: "parallel", rc: r.deadlock ? "deadlock" : 0, results: sub, trace: r.trace });
        break;
      }
    }
  });
  m.opIndex = undefined;
  return { results, final: finalState(m), crash: toJson(m.crashed), machine: m };
}

/** Final state: P2M runs, grant/shared_info frames, lock audit, crash. */
export function finalState(m: MachineImpl): Record<string, JsonValue> {
  const doms: Record<string, JsonValue> = {};
  const page = (mfn: bigint) => {
    const pi = m.pageInfo(mfn);
    return { mfn: hex(mfn), count_info: hex(pi.countInfo), type_info: hex(pi.typeInfo), owner: pi.owner };
  };
  if (!m.crashed) {
    for (const d of m.domains.values()) {
      if (d.system) continue;
      const gt = d.grant;
      doms[String(d.domid)] = {
        p2m: m.p2mRuns(d.domid).map((r) => ({
          gfn: r.nr === 1n ? hex(r.gfn) : `${hex(r.gfn)}-${hex(r.gfn + r.nr - 1n)}`,
          nr: Number(r.nr), mfn: hex(r.mfn), type: P2M_TYPE_NAMES[r.type] ?? r.type,
        })),
        max_mapped_gfn: hex(m.p2m.maxMappedGfn(d.slot)),
        grant: gt ? {
          version: gt.version, nr_frames: gt.nrGrantFrames, max_frames: gt.maxGrantFrames,
          frames: gt.shared.slice(0, gt.nrGrantFrames).map(page),
          status_frames: gt.status.slice(0, gt.nrStatusFrames).map(page),
          ...(gt.sharedGfn ? { shared_gfn: gt.sharedGfn.slice(0, gt.nrGrantFrames).map(hex) } : {}),
          ...(gt.statusGfn ? { status_gfn: gt.statusGfn.slice(0, gt.nrStatusFrames).map(hex) } : {}),
        } : null,
        shared_info: d.sharedInfo !== m.INVALID ? page(d.sharedInfo) : null,
        tot_pages: Number(m.core.domain_tot_pages(d.slot)),
        crashed: d.crashed,
      };
    }
  }
  return {
    domains: doms,
    free_pages: Number(m.freePages()),
    lock_audit: {
      lockdep: m.lockdep.violations.map((v) => v.message),
      gfn_audit: toJson({ ...m.gfnAudit.counts }),
      gfn_violations: m.gfnAudit.violations().map((f) => `${f.access} of mfn ${typeof f.mfn === "bigint" ? hex(f.mfn) : f.mfn} on cpu${f.cpu} (${f.context}): ${f.reason}`),
    },
    crash: toJson(m.crashed),
  };
}

export async function runMain(argv: string[]): Promise<number> {
  const args = argv.filter((a) => !a.startsWith("--"));
  if (argv.includes("--help") || args.length !== 1) {
    console.log("usage: xenmm run FILE.json\n\nReplays a run document and prints every result and the final state as JSON.");
    return argv.includes("--help") ? 0 : 2;
  }
  let text: string;
  try { text = readFileSync(args[0], "utf8"); } catch (e) {
    console.error(`xenmm run: cannot read ${args[0]}: ${(e as Error).message}`);
    return 2;
  }
  let doc: RunDocument;
  try { doc = loadRunDocument(text); } catch (e) {
    if (e instanceof RunDocumentError) { console.error(e.message); return 2; }
    throw e;
  }
  let res: RunResults;
  try { res = await executeRun(doc); } catch (e) {
    if (e instanceof RunDocumentError) { console.error(e.message); return 2; }
    console.error(`xenmm run: ${(e as Error).message}`);
    return 1;
  }
  console.log(JSON.stringify({ results: toJson(res.results), final: res.final }, null, 2));
  return 0;
}

export { CRASHED_RC };
