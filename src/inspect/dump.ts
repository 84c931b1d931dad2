// `xenmm dump FILE.json|FILE.snap [--domain N] [--svg out.svg]`
//
// Loads a machine (a run document is executed; a snapshot is restored) and
// prints, per domain: the P2M as a tree (level, index, descriptor, decoded
// fields; runs of contiguous leaves collapsed), decoded page_info records of
// the grant and shared_info frames, a summary of every page the domain owns,
// and the grant-table frames with their GFNs. --svg draws the IPA space of
// one domain (the one given with --domain, else the first guest).

import { readFileSync, writeFileSync } from "node:fs";
import type { MachineImpl, Domain } from "../machine/machine.js";
import { restoreMachine } from "../snapshot/index.js";
import { SNAPSHOT_MAGIC } from "../snapshot/format.js";
import { RunDocumentError } from "../run/index.js";
import { runDocumentMachine } from "./run-machine.js";
import { XenmmError, XenmmInputError, XenmmArgumentError, checkInt } from "../api/errors.js";
import { viewsOf } from "../api/views.js";
import { readHeader, p2mTree, p2mLeaves, mappedRanges, type MappedRange, type P2mTableNode } from "./core-info.js";
import { decodePageInfo, countInfoFlagNames, decodeTypeInfo, describeDescriptor, descriptorKind, p2mTypeName, type Layout } from "./decode.js";
import { renderIpaSvg, formatPages } from "./svg.js";

const USAGE = `usage: xenmm dump FILE.json|FILE.snap [--domain N] [--svg OUT.svg]

Print each domain's P2M as a tree, decoded page_info records of its grant and
shared_info frames, a summary of the pages it owns, and its grant-table frames
with their GFNs.

  FILE.json      a run document: executed first, then dumped
  FILE.snap      a snapshot (snapshotMachine): restored, then dumped
  --domain N     only domain N
  --svg OUT.svg  also draw domain N's IPA space (default: the first guest)
  --help         this text

exit status: 0 ok, 1 the input could not be loaded, 2 usage error`;

const hex = (v: bigint | number) => "0x" + v.toString(16);

interface Args { file: string; domain?: number; svg?: string }

function parseArgs(argv: string[]): Args | "help" {
  let file: string | undefined, domain: number | undefined, svg: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") return "help";
    if (a === "--domain" || a === "--svg") {
      const v = argv[++i];
      if (v === undefined) throw new XenmmArgumentError(a, "needs a value");
      if (a === "--svg") svg = v;
      else {
        if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new XenmmArgumentError("--domain", `expected a domain id, got "${v}"`);
        domain = Number(v);
      }
    } else if (a.startsWith("--domain=")) {
      const v = a.slice(9);
      if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new XenmmArgumentError("--domain", `expected a domain id, got "${v}"`);
      domain = Number(v);
    } else if (a.startsWith("--svg=")) svg = a.slice(6);
    else if (a.startsWith("-")) throw new XenmmArgumentError(a, "unknown option");
    else if (file === undefined) file = a;
    else throw new XenmmArgumentError(a, "only one input file");
  }
  if (file === undefined) throw new XenmmArgumentError("FILE", "missing input file");
  return { file, domain, svg };
}

/** Load a machine from a run document or snapshot file. */
export async function loadMachineFile(path: string): Promise<MachineImpl> {
  if (typeof path !== "string" || !path) throw new XenmmArgumentError("path", "expected a file name", path);
  let bytes: Buffer;
  try { bytes = readFileSync(path); } catch (e) { throw new XenmmInputError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, path); }
  const isSnap = bytes.length >= 8 && bytes.subarray(0, 8).toString("latin1") === SNAPSHOT_MAGIC;
  if (isSnap) {
    try { return await restoreMachine(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)); } catch (e) {
      throw new XenmmInputError((e as Error).message, path, { cause: e });
    }
  }
  if (path.endsWith(".snap")) throw new XenmmInputError("not a xenmm snapshot (bad magic)", path);
  try {
    return await runDocumentMachine(bytes.toString("utf8"));
  } catch (e) {
    if (e instanceof RunDocumentError || e instanceof XenmmError) throw new XenmmInputError(e.message, path, { cause: e });
    throw e;
  }
}

function layoutOf(m: MachineImpl): Layout { return { arch: m.arch, revision: m.revision }; }

// ---- P2M tree ------------------------------------------------------------------

function treeLines(nodes: P2mTableNode[], out: string[]): void {
  const walk = (n: P2mTableNode, depth: number, label: string) => {
    const pad = "  ".repeat(depth);
    out.push(`${pad}${label} table mfn ${hex(n.mfn)} (level ${n.level}, gfn ${hex(n.gfn)}+, ${n.entries.length} entries)`);
    const ents = n.entries;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      const k = descriptorKind(e.descriptor, n.level);
      if (e.child) { walk(e.child, depth + 1, `L${n.level}[${e.index}] ${hex16(e.descriptor)}`); continue; }
      // collapse contiguous leaves with the same attributes
      let j = i;
      const attrs = (d: bigint) => d & ~0x0000_FFFF_FFFF_F000n;
      const step = 1n << BigInt((3 - n.level) * 9);
      while (j + 1 < ents.length && !ents[j + 1].child && ents[j + 1].index === ents[j].index + 1 &&
        attrs(ents[j + 1].descriptor) === attrs(e.descriptor) && k !== "invalid" &&
        ((ents[j + 1].descriptor >> 12n) & 0xF_FFFF_FFFFn) === ((ents[j].descriptor >> 12n) & 0xF_FFFF_FFFFn) + step) j++;
      const gfn = n.gfn + (BigInt(e.index) << BigInt((3 - n.level) * 9));
      const what = describeDescriptor(e.descriptor, n.level);
      if (j > i) {
        const cnt = j - i + 1;
        out.push(`${pad}  L${n.level}[${e.index}..${ents[j].index}] ${cnt} x ${hex16(e.descriptor)}.. ${what.replace(/mfn=0x[0-9a-f]+/, (s) => `${s}..${hex(((ents[j].descriptor >> 12n) & 0xF_FFFF_FFFFn))}`)} gfn ${hex(gfn)} (${formatPages(BigInt(cnt) * step)})`);
        i = j;
      } else {
        out.push(`${pad}  L${n.level}[${e.index}] ${hex16(e.descriptor)} ${what} gfn ${hex(gfn)}${k === "invalid" ? "" : ` (${formatPages(step)})`}`);
      }
    }
  };
  nodes.forEach((n, i) => walk(n, 1, nodes.length > 1 ? `root[${i}]` : "root"));
}
const hex16 = (v: bigint) => "0x" + v.toString(16).padStart(16, "0");

/** The host keeps the P2M in the core's tables (CoreP2m), not in a TypeScript model. */
function usesCoreP2m(m: MachineImpl): boolean {
  const kind = (m.p2m as { kind?: string }).kind;
  return kind !== "host" && typeof (m.core as any).p2m_root_mfn === "function";
}

/** The mapped ranges of a domain: from the core's P2M tables, or the host P2M model's runs. */
export function domainRanges(m: MachineImpl, d: Domain): MappedRange[] {
  const core = m.core as any;
  if (usesCoreP2m(m)) return mappedRanges(p2mLeaves(core, d.slot));
  return m.p2mRuns(d.domid).map((r) => ({ gfn: r.gfn, nr: r.nr, level: 3, type: r.type, mfn: r.mfn, leaves: Number(r.nr) }));
}

// ---- page_info ------------------------------------------------------------------

function recordLines(m: MachineImpl, label: string, mfn: bigint, out: string[]): void {
  const L = layoutOf(m);
  const v = viewsOf(m.core as any);
  if (mfn < m.core.frametable_base_pdx() || mfn >= m.core.max_page()) { out.push(`    ${label} mfn ${hex(mfn)}: outside the frame table`); return; }
  const rec = decodePageInfo(v.pageInfo(mfn).slice(), L);
  const ci = countInfoFlagNames(m.core.count_info(mfn), L).join(" ");
  let ti: string;
  if (rec.u.kind === "inuse") {
    const t = rec.u.typeInfo;
    ti = `${t.type} count=${t.count}${t.gfn !== undefined ? ` gfn=${t.gfn === null ? "INVALID" : hex(t.gfn)}` : ""}${t.otherBits ? ` other=${hex(t.otherBits)}` : ""}`;
  } else ti = `free first_dirty=${hex(rec.u.free.firstDirty)} need_tlbflush=${rec.u.free.needTlbflush} scrub_state=${rec.u.free.scrubState}`;
  const owner = m.pageInfo(mfn).owner;
  out.push(`    ${label} mfn ${hex(mfn)}: count_info ${hex(m.core.count_info(mfn))} [${ci}]`);
  out.push(`    ${" ".repeat(label.length)}   type_info ${hex(m.core.type_info(mfn))} [${ti}] owner ${owner === null ? "NULL" : `d${owner}`}`);
}

/** Pages owned by the domain, grouped by (count_info, type_info) pattern. */
function ownedSummary(m: MachineImpl, d: Domain, out: string[]): void {
  const core = m.core as any;
  const L = layoutOf(m);
  const v = viewsOf(core);
  const base = m.core.frametable_base_pdx(), end = m.core.max_page();
  const size = m.core.page_info_size();
  const W = m.is64 ? 8 : 4;
  const ownerVa: bigint = core.domain_va(d.slot);
  const groups = new Map<string, { n: number; first: bigint; last: bigint }>();
  const ft = v.frameTable();
  const dv = new DataView(ft.buffer, ft.byteOffset, ft.byteLength);
  const start = m.core.ram_start_mfn();
  let total = 0;
  for (let mfn = start; mfn < end; mfn++) {
    const off = Number(mfn - base) * size;
    const owner = W === 8 ? dv.getBigUint64(off + 4 * W, true) : BigInt(dv.getUint32(off + 4 * W, true));
    if (owner !== ownerVa) continue;
    const cnt = W === 8 ? dv.getBigUint64(off + 2 * W, true) : BigInt(dv.getUint32(off + 2 * W, true));
    if (((cnt >> BigInt(W * 8 - 9)) & 3n) === 3n) continue; // free pages keep no owner meaning
    const ty = W === 8 ? dv.getBigUint64(off + 3 * W, true) : BigInt(dv.getUint32(off + 3 * W, true));
    const t = decodeTypeInfo(ty, L);
    const key = `[${countInfoFlagNames(cnt, L).join(" ")}] [${t.type} count=${t.count}${t.gfn !== undefined ? ` gfn=${t.gfn === null ? "INVALID" : "set"}` : ""}]`;
    const g = groups.get(key);
    if (g) { g.n++; g.last = mfn; } else groups.set(key, { n: 1, first: mfn, last: mfn });
    total++;
  }
  out.push(`  pages owned: ${total}`);
  for (const [k, g] of [...groups].sort((a, b) => b[1].n - a[1].n)) out.push(`    ${String(g.n).padStart(7)} x ${k}  (mfn ${hex(g.first)}..${hex(g.last)})`);
}

// ---- whole dump ------------------------------------------------------------------

function checkMachine(m: unknown): asserts m is MachineImpl {
  if (!m || typeof m !== "object" || !(m as any).core || !((m as any).domains instanceof Map)) throw new XenmmArgumentError("machine", "expected a machine", m);
}

export function dumpText(m: MachineImpl, only?: number): string {
  checkMachine(m);
  if (only !== undefined) checkInt("domain", only, 0, 0x7fff);
  const out: string[] = [];
  const h = readHeader(m.core as any);
  out.push(`machine: ${m.arch} ${m.revision}, RAM mfn ${hex(h.ramStartMfn)}..${hex(h.maxPage)} (${formatPages(h.nrFrames)}), IPA ${m.ipaBits} bits, P2M ${usesCoreP2m(m) ? "core" : "host"} backend, core memory ${formatPages(BigInt(Math.ceil(h.top / 4096)))}`);
  if (m.crashed) out.push(`HYPERVISOR CRASHED: ${m.crashed.kind} at ${m.crashed.path}`);
  out.push(`free pages: ${m.freePages()}`);
  const doms = [...m.domains.values()].filter((d) => (only === undefined ? !d.system : d.domid === only));
  for (const d of doms) {
    out.push("");
    out.push(`domain ${d.domid} (slot ${d.slot})${d.dying ? " dying" : ""}${d.crashed ? ` crashed: ${d.crashed}` : ""}: tot_pages ${m.core.domain_tot_pages(d.slot)}, shared_info ${d.sharedInfo === m.INVALID ? "none" : hex(d.sharedInfo)}`);
    out.push("  P2M:");
    const core = m.core as any;
    if (usesCoreP2m(m)) {
      const lines: string[] = [];
      treeLines(p2mTree(core, d.slot), lines);
      if (lines.length === 0) out.push("    (no P2M root)"); else out.push(...lines.map((l) => "  " + l));
    } else {
      const runs = domainRanges(m, d);
      if (runs.length === 0) out.push("    (empty)");
      for (const r of runs) out.push(`    gfn ${hex(r.gfn)}..${hex(r.gfn + r.nr - 1n)} -> mfn ${hex(r.mfn)}.. ${p2mTypeName(r.type)} (${formatPages(r.nr)})`);
    }
    const gt = d.grant;
    out.push(`  grant table: ${gt ? `version ${gt.version}, ${gt.nrGrantFrames}/${gt.maxGrantFrames} frames, ${gt.nrStatusFrames} status frames` : "none"}`);
    if (gt) {
      const gfnOf = (mfn: bigint, arr: bigint[] | null, i: number) => {
        if (arr) return arr[i] === m.INVALID ? "INVALID" : hex(arr[i]);
        const g = m.xenheapGfn(mfn);
        return g === m.INVALID ? "INVALID" : hex(g);
      };
      for (let i = 0; i < gt.nrGrantFrames; i++) out.push(`    shared[${i}] mfn ${hex(gt.shared[i])} gfn ${gfnOf(gt.shared[i], gt.sharedGfn, i)}`);
      for (let i = 0; i < gt.nrStatusFrames; i++) out.push(`    status[${i}] mfn ${hex(gt.status[i])} gfn ${gfnOf(gt.status[i], gt.statusGfn, i)}`);
    }
    out.push("  page_info:");
    if (d.sharedInfo !== m.INVALID) recordLines(m, "shared_info", d.sharedInfo, out);
    if (gt) {
      for (let i = 0; i < gt.nrGrantFrames; i++) recordLines(m, `shared[${i}]`, gt.shared[i], out);
      for (let i = 0; i < gt.nrStatusFrames; i++) recordLines(m, `status[${i}]`, gt.status[i], out);
    }
    ownedSummary(m, d, out);
  }
  if (only !== undefined && doms.length === 0) throw new XenmmArgumentError("--domain", `no domain ${only} in this machine (domains: ${[...m.domains.keys()].join(", ")})`);
  return out.join("\n") + "\n";
}

export function domainSvg(m: MachineImpl, domid: number): string {
  checkMachine(m);
  checkInt("domid", domid, 0, 0x7fff);
  const d = m.domains.get(domid);
  if (!d) throw new XenmmArgumentError("--domain", `no domain ${domid} in this machine`);
  return renderIpaSvg(domainRanges(m, d), { ipaBits: m.ipaBits, title: `domain ${domid} IPA space (${m.arch} ${m.revision})` });
}

export async function dumpMain(argv: string[]): Promise<number> {
  let args: Args | "help";
  try { args = parseArgs(argv); } catch (e) {
    console.error(`xenmm dump: ${(e as Error).message} (xenmm dump --help)`);
    return 2;
  }
  if (args === "help") { console.log(USAGE); return 0; }
  let m: MachineImpl;
  try { m = await loadMachineFile(args.file); } catch (e) {
    if (e instanceof XenmmError) { console.error(`xenmm dump: ${e.message.split("\n")[0]}`); return 1; }
    throw e;
  }
  try {
    process.stdout.write(dumpText(m, args.domain));
    if (args.svg) {
      const domid = args.domain ?? [...m.domains.values()].find((d) => !d.system)?.domid;
      if (domid === undefined) throw new XenmmArgumentError("--svg", "the machine has no guest domain to draw");
      try { writeFileSync(args.svg, domainSvg(m, domid)); } catch (e) {
        if (e instanceof XenmmError) throw e;
        console.error(`xenmm dump: cannot write ${args.svg}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        return 1;
      }
    }
  } catch (e) {
    if (e instanceof XenmmArgumentError) { console.error(`xenmm dump: ${e.message}`); return 2; }
    throw e;
  }
  return 0;
}
