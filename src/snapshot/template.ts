// Resetting a machine in place to a state captured earlier (a template).
//
// restoreMachine() builds a new machine (a new Wasm instance, machine_init)
// before it writes the saved state; a fuzzer that starts thousands of
// episodes from the same world pays for that every time. A template keeps
// what a snapshot keeps, but live: the core image [0, max(top, hwm)) as bytes
// and the host graph as decoded Enc trees, and resetMachine() writes both
// back into an existing machine of the same configuration:
//
//   * core: the image over linear memory. Bytes the machine dirtied beyond
//     the template's high-water mark are zeroed, so memory outside the image
//     is what region_alloc of a fresh machine expects (zero up to the
//     restored H_HWM). Hook state (H_HOOKS, the P2M-change and frame-record rings) is not
//     machine state: it keeps its live value, as snapshots and hashes
//     ignore it.
//   * host: the graph patched in place (GraphDecoder.patch, as restoreMachine
//     does on a fresh machine). The system domains are kept; a guest domain
//     is kept when it is one a reset constructed (same domid, slot and the
//     template's frozen configuration object), else constructed anew. Every
//     lock in the template is free, so patch() releases each live one.
//
// The core has no mutable Wasm globals (all state is in linear memory), so
// after the two steps the machine equals the captured one: same stateHash(),
// same future behaviour.

import { Domain, MachineImpl } from "../machine/machine.js";
import type { MachineConfig } from "../machine/api.js";
import { GrantTable } from "../grant/index.js";
import { XenmmArgumentError, XenmmStateError } from "../api/errors.js";
import { H, headerAddress } from "../inspect/core-info.js";
import { fromJson, toJson } from "./format.js";
import { GraphDecoder, GraphPlan, collectPrototypes, planGraph } from "./graph.js";
import { encodeHost, hookRanges, refsFor, type HostState } from "./index.js";

export class MachineTemplate {
  /** @internal */
  constructor(
    readonly cfg: MachineConfig,
    /** toJson(cfg): what a machine must have been created with to be reset to this template. */
    readonly cfgKey: string,
    /** Core linear memory [0, max(top, hwm)). */
    readonly image: Uint8Array,
    readonly hdr: number,
    /** Ranges of the image that belong to observers, not to the machine (kept live on reset). */
    readonly hooks: ReadonlyArray<readonly [number, number]>,
    readonly host: HostState,
    /** Per domain of `host.domains`: its configuration (frozen; the domains a reset constructs share it). */
    readonly domainCfgs: ReadonlyArray<{ cfg: unknown }>,
    /** Class name -> prototype of every object in `host` (the decoder's registry). */
    readonly protos: Map<string, object>,
    /** `host.machine` and each domain's fields, planned once for every reset. */
    readonly machinePlan: GraphPlan,
    readonly domainPlans: readonly GraphPlan[],
  ) {}
}

const NO_FIELDS = new Set<string>();

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function checkMachine(m: unknown): asserts m is MachineImpl {
  if (!(m instanceof MachineImpl)) throw new XenmmArgumentError("machine", "expected a machine from createMachine() or restoreMachine()", m);
}

/** Capture `m` (between hypercalls: no lock held) as a template for resetMachine(). */
export function captureTemplate(m: MachineImpl): MachineTemplate {
  checkMachine(m);
  const host = encodeHost(m);
  const core = m.core;
  const hdr = headerAddress(core as any);
  const dv = new DataView(core.memory.buffer);
  const end = Math.max(core.mem_top(), dv.getUint32(hdr + H.HWM, true));
  const image = new Uint8Array(core.memory.buffer, 0, end).slice();
  const domainCfgs = host.domains.map((sd) => ({ cfg: deepFreeze(fromJson(toJson(sd.cfg))) }));
  const cfgKey = toJson(m.cfg);
  const protos = collectPrototypes([m, ...m.domains.values()], [GrantTable, Domain, MachineImpl], new Set(["core"]));
  return new MachineTemplate(fromJson(cfgKey) as MachineConfig, cfgKey, image, hdr, hookRanges(m), host, domainCfgs, protos,
    planGraph(host.machine, "machine"), host.domains.map((sd) => planGraph(sd.fields, `d${sd.domid}`)));
}

/** Machines found to fit a template (a machine's configuration and core never change). */
const fitted = new WeakMap<MachineImpl, MachineTemplate>();

/** Can `m` be reset to `t` (created with the same configuration and core build)? */
export function templateFits(m: MachineImpl, t: MachineTemplate): boolean {
  if (!(m instanceof MachineImpl)) return false;
  if (fitted.get(m) === t) return true;
  const ok = (m.cfg === t.cfg || toJson(m.cfg) === t.cfgKey) && headerAddress(m.core as any) === t.hdr;
  if (ok) fitted.set(m, t);
  return ok;
}

/**
 * Put `m` back into the state `t` was captured in. `m` must have been created
 * with the template's configuration (the machine the template was captured
 * from qualifies, whatever it did since, crashes included).
 */
export function resetMachine(m: MachineImpl, t: MachineTemplate): void {
  checkMachine(m);
  if (!(t instanceof MachineTemplate)) throw new XenmmArgumentError("template", "expected a template from captureTemplate()", t);
  if (!templateFits(m, t)) throw new XenmmArgumentError("machine", "was not created with the template's configuration (or by another core build)", m.cfg);

  // ---- host objects first: nothing is written until the domains are known
  const live = m.domains;
  const order: Domain[] = [];
  t.host.domains.forEach((sd, i) => {
    const d = live.get(sd.domid);
    const dc = t.domainCfgs[i];
    if (d !== undefined && d.slot === sd.slot && d.system === sd.system && (d.system || d.cfg === dc.cfg)) order.push(d);
    else if (sd.system) throw new XenmmStateError(`system domain ${sd.domid} is missing: not the machine the template was captured from`);
    else order.push(new Domain(m, sd.domid, sd.slot, dc.cfg as any, false));
  });
  const { named } = refsFor(m);
  const byName = new Map<string, object>([...named].map(([o, n]) => [n, o]));
  const byDomid = new Map(order.map((d) => [`dom:${d.domid}`, d]));
  const dec = new GraphDecoder({
    named: byName, keyed: (k) => byDomid.get(k), protos: t.protos, skipFields: NO_FIELDS,
    onLock: (l) => l.reset(),
  });
  // Locks of domains the reset drops may be held (a deadlocked group); they go with their domains.
  m.lockdep.resetHeld();
  dec.patch(m, t.machinePlan, "machine");
  t.host.domains.forEach((sd, i) => dec.patch(order[i], t.domainPlans[i], `d${sd.domid}`));
  live.clear();
  const bySlot = m.bySlot as unknown[];
  bySlot.length = 0;
  for (const d of order) {
    live.set(d.domid, d);
    bySlot[d.slot] = d;
    d.grantGen++; // its grant table and shared_info were patched behind the counter's back
  }

  // ---- core memory
  const mem = m.core.memory;
  const img = t.image;
  if (mem.buffer.byteLength < img.length) mem.grow(Math.ceil((img.length - mem.buffer.byteLength) / 65536));
  const u8 = new Uint8Array(mem.buffer);
  const hwm = new DataView(mem.buffer).getUint32(t.hdr + H.HWM, true);
  let at = 0;
  for (const [a, b] of t.hooks) {
    u8.set(img.subarray(at, a), at);
    at = b;
  }
  u8.set(img.subarray(at), at);
  if (hwm > img.length) u8.fill(0, img.length, Math.min(hwm, u8.length));
}
