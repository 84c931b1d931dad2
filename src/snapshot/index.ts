// Snapshots and state hashes of a whole machine.
//
// snapshotMachine(m) = container (format.ts) with two sections:
//   CORE  core linear memory [0, mem_top), hooks state normalised (the
//         H_HOOKS word, the P2M-change ring and the frame-record ring read
//         as zero)
//   HOST  JSON: { meta, cfg, machine: <graph>, domains: [...] } (graph.ts)
// restoreMachine(bytes) validates everything, builds a fresh machine from
// the saved config, writes the core image, patches the host state, and only
// then returns it: a refused snapshot never yields a machine.

import { createHash } from "node:crypto";
import { createMachine, Domain, MachineImpl } from "../machine/machine.js";
import type { MachineConfig } from "../machine/api.js";
import { GrantTable } from "../grant/index.js";
import { SnapshotFormatError, XenmmArgumentError, XenmmStateError, checkBytes } from "../api/errors.js";
import { XENMM_VERSION } from "../api/version.js";
import { H, headerAddress, readHeader } from "../inspect/core-info.js";
import {
  SECTION_CORE, SECTION_HOST, parseSnapshot, writeSnapshot, fromJson, toJson, SNAPSHOT_FORMAT_VERSION,
} from "./format.js";
import { GraphDecoder, GraphEncoder, collectPrototypes, type Enc } from "./graph.js";

export { SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC } from "./format.js";

type AnyMachine = MachineImpl;

function checkMachine(m: unknown): asserts m is AnyMachine {
  if (!(m instanceof MachineImpl)) throw new XenmmArgumentError("machine", "expected a machine from createMachine() or restoreMachine()", m);
}

// ---- core image -----------------------------------------------------------

/** Byte ranges of core memory that hold hook state, read as zero in snapshots and hashes. */
export function hookRanges(m: AnyMachine): Array<[number, number]> {
  const core = m.core as any;
  const hdr = headerAddress(core);
  const out: Array<[number, number]> = [[hdr + H.HOOKS, hdr + H.HOOKS + 4]];
  const log: number = typeof core.p2m_log_ptr === "function" ? core.p2m_log_ptr() : 0;
  if (log) {
    const cap = new DataView(core.memory.buffer).getUint32(log, true);
    out.push([log + 8, log + 16 + cap * 32]); // total count + records
  }
  // Frame-record change ring (assembly/mm/frame_log.ts): total, last MFN, records.
  const flog: number = typeof core.frame_log_ptr === "function" ? core.frame_log_ptr() : 0;
  if (flog) {
    const cap = new DataView(core.memory.buffer).getUint32(flog, true);
    out.push([flog + 8, flog + 32 + cap * 8]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** The core state [0, top) in pieces, with hook ranges replaced by zeros. */
function corePieces(m: AnyMachine): Uint8Array[] {
  const top = m.core.mem_top();
  const all = new Uint8Array(m.core.memory.buffer, 0, top);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const [a, b] of hookRanges(m)) {
    if (a < at || b > top) continue;
    pieces.push(all.subarray(at, a), new Uint8Array(b - a));
    at = b;
  }
  pieces.push(all.subarray(at, top));
  return pieces;
}

// ---- host state -------------------------------------------------------------

const MACHINE_SKIP = new Set(["core", "cfg", "policy", "domains", "bySlot"]);
const DOMAIN_SKIP = new Set(["cfg", "domid", "slot", "system"]);

export function refsFor(m: AnyMachine) {
  const named = new Map<object, string>([[m, "machine"], [m.core as object, "core"], [m.policy as object, "policy"]]);
  const keyed = (o: object) => (o instanceof Domain ? `dom:${o.domid}` : undefined);
  return { named, keyed };
}

export interface HostState {
  meta: { xenmmVersion: string; memPages: number; top: number; hdr: number };
  cfg: MachineConfig;
  machine: Enc;
  domains: Array<{ domid: number; slot: number; system: boolean; cfg: unknown; fields: Enc }>;
}

/** Snapshots are taken between hypercalls: no emulated lock may be held (the encoder checks each lock). */
function checkQuiescent(m: AnyMachine): void {
  if ((m as any).crashed === undefined) throw new XenmmStateError("not a machine");
}

export function encodeHost(m: AnyMachine): HostState {
  checkQuiescent(m);
  const { named, keyed } = refsFor(m);
  const enc = new GraphEncoder({ named, keyed, skipFields: new Set(), memoryBuffers: () => [m.core.memory.buffer as ArrayBuffer] });
  // fields of the machine minus the skipped ones, as an object of the same class
  const machine = enc.encodeRoot(filtered(m, MACHINE_SKIP), "machine");
  const domains = [...m.domains.values()].map((d) => ({
    domid: d.domid, slot: d.slot, system: d.system, cfg: JSON.parse(toJson(d.cfg)),
    fields: enc.encodeRoot(filtered(d, DOMAIN_SKIP), `d${d.domid}`),
  }));
  return {
    meta: { xenmmVersion: XENMM_VERSION, memPages: m.core.memory.buffer.byteLength >>> 16, top: m.core.mem_top(), hdr: headerAddress(m.core as any) },
    cfg: m.cfg, machine, domains,
  };
}

/** A view of `o` without some fields, that encodes with o's class name. */
function filtered(o: object, skip: Set<string>): object {
  const v = Object.create(Object.getPrototypeOf(o));
  for (const k of Object.keys(o)) if (!skip.has(k)) v[k] = (o as any)[k];
  return v;
}

// ---- public API ---------------------------------------------------------------

/** The whole machine as bytes (see src/snapshot/format.ts for the layout). */
export function snapshotMachine(machine: AnyMachine): Uint8Array {
  checkMachine(machine);
  const host = new TextEncoder().encode(toJson(encodeHost(machine)));
  const h = readHeader(machine.core as any);
  return writeSnapshot({ arch: h.arch === "arm64" ? 0 : 1, revision: h.revisionIndex, xenmmVersion: XENMM_VERSION }, [
    { kind: SECTION_CORE, bytes: corePieces(machine) },
    { kind: SECTION_HOST, bytes: host },
  ]);
}

/** Rebuild a machine from snapshotMachine()'s bytes. Throws SnapshotFormatError and loads nothing on any problem. */
export async function restoreMachine(bytes: Uint8Array, opts: { debugCore?: boolean } = {}): Promise<AnyMachine> {
  checkBytes("bytes", bytes);
  const snap = parseSnapshot(bytes);
  const coreImg = snap.sections.get("CORE");
  const hostBytes = snap.sections.get("HOST");
  if (!coreImg || !hostBytes) throw new SnapshotFormatError("layout", "missing CORE or HOST section");
  let host: HostState;
  try {
    host = fromJson(new TextDecoder("utf-8", { fatal: true }).decode(hostBytes)) as HostState;
  } catch (e) {
    throw new SnapshotFormatError("host", `HOST section is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!host || typeof host !== "object" || !host.meta || !host.cfg || !host.machine || !Array.isArray(host.domains))
    throw new SnapshotFormatError("host", "HOST section lacks meta/cfg/machine/domains");
  if (host.meta.top !== coreImg.length) throw new SnapshotFormatError("layout", `CORE is ${coreImg.length} bytes, host says top = ${host.meta.top}`);
  const cfg: MachineConfig = { ...host.cfg };
  if (opts.debugCore !== undefined) cfg.debugCore = opts.debugCore;

  let m: AnyMachine;
  try {
    m = await createMachine(cfg);
  } catch (e) {
    throw new SnapshotFormatError("host", `cannot create a machine from the saved configuration: ${(e as Error).message}`, { cause: e });
  }
  // ---- core image checks, against the fresh instance of this build
  const core = m.core;
  const hdr = headerAddress(core as any);
  if (hdr !== host.meta.hdr) throw new SnapshotFormatError("core", `core header at 0x${host.meta.hdr.toString(16)} in the snapshot, 0x${hdr.toString(16)} in this build (different core build)`);
  if (coreImg.length < hdr + 256) throw new SnapshotFormatError("core", "core image shorter than the machine header");
  const fresh = new Uint8Array(core.memory.buffer, 0, hdr + 8);
  for (let i = 0; i < hdr + 8; i++) {
    if (fresh[i] !== coreImg[i]) throw new SnapshotFormatError("core", `core static data differs at byte 0x${i.toString(16)} (snapshot from a different core build)`);
  }
  const dv = new DataView(coreImg.buffer, coreImg.byteOffset, coreImg.byteLength);
  if (dv.getUint32(hdr + H.TOP, true) !== coreImg.length) throw new SnapshotFormatError("core", "core header top does not match the image length");
  if (dv.getUint32(hdr + H.ARCH, true) !== snap.header.arch || dv.getUint32(hdr + H.REVISION, true) !== snap.header.revision)
    throw new SnapshotFormatError("core", "arch/revision in the core header differ from the snapshot header");

  // ---- host objects: domains first (constructors install closures and locks)
  const liveDomains = new Map(m.domains);
  const order: Domain[] = [];
  for (const sd of host.domains) {
    let d = liveDomains.get(sd.domid);
    if (d) {
      if (d.slot !== sd.slot || d.system !== sd.system) throw new SnapshotFormatError("host", `domain ${sd.domid}: slot ${sd.slot} in the snapshot, ${d.slot} here`);
    } else {
      if (sd.system) throw new SnapshotFormatError("host", `system domain ${sd.domid} missing in this build`);
      d = new Domain(m, sd.domid, sd.slot, fromJson(JSON.stringify(sd.cfg)) as any, false);
    }
    order.push(d);
  }
  const { named } = refsFor(m);
  const byName = new Map<string, object>([...named].map(([o, n]) => [n, o]));
  const byDomid = new Map(order.map((d) => [`dom:${d.domid}`, d]));
  const protos = collectPrototypes([m, ...order], [GrantTable, Domain, MachineImpl], new Set(["core"]));
  const dec = new GraphDecoder({ named: byName, keyed: (k) => byDomid.get(k), protos, skipFields: new Set() });
  try {
    dec.patch(m, host.machine, "machine");
    host.domains.forEach((sd, i) => dec.patch(order[i], sd.fields, `d${sd.domid}`));
  } catch (e) {
    if (e instanceof SnapshotFormatError) throw e;
    throw new SnapshotFormatError("host", (e as Error).message, { cause: e });
  }
  m.domains.clear();
  (m.bySlot as unknown[]).length = 0;
  // The grant tables and shared_info were patched behind Domain.grantGen's back.
  for (const d of order) { m.domains.set(d.domid, d); m.bySlot[d.slot] = d; d.grantGen++; }

  // ---- core memory last (nothing can fail after this point)
  const mem = core.memory;
  const needPages = Math.max(host.meta.memPages, Math.ceil(coreImg.length / 65536));
  const havePages = mem.buffer.byteLength >>> 16;
  if (needPages > havePages) mem.grow(needPages - havePages);
  const u8 = new Uint8Array(mem.buffer);
  u8.set(coreImg, 0);
  u8.fill(0, coreImg.length);
  return m;
}

/** Hash of the machine's state: core memory [0, top) (hooks normalised) and host state. Hex SHA-256. */
export function stateHash(machine: AnyMachine): string {
  checkMachine(machine);
  const h = createHash("sha256");
  for (const p of corePieces(machine)) h.update(p);
  h.update("\u0000");
  const host = encodeHost(machine);
  host.meta.memPages = 0; // capacity is not state
  h.update(toJson(host));
  return h.digest("hex");
}
