// Execute a run document and keep the machine (executeRun in src/run returns
// only results). Same semantics as executeRun: domains first, then ops in
// order, op index recorded for crash reports.

import { createMachine, type MachineImpl } from "../machine/machine.js";
import { XenError } from "../machine/crash.js";
import { loadRunDocument, type RunDocument } from "../run/index.js";
import { runFixedSchedule } from "../run/schedule.js";
import { XenmmInputError } from "../api/errors.js";

export async function machineForRun(doc: RunDocument): Promise<MachineImpl> {
  const { preset, ...cfg } = doc.machine;
  if (preset !== undefined) {
    let mod: any;
    try { mod = await import("../presets/index.js" as string); } catch { throw new XenmmInputError(`machine.preset "${preset}": presets not available in this build`); }
    const r = await mod.buildPreset(preset, cfg);
    return (r && r.machine ? r.machine : r) as MachineImpl;
  }
  return createMachine(cfg);
}

export interface RunMachineOptions {
  /** Called once the machine exists, before domains are created (install observers here). */
  onMachine?: (m: MachineImpl) => void;
}

/** Run a document (object or JSON text) to the end; returns the machine. */
export async function runDocumentMachine(input: RunDocument | string | object, opt: RunMachineOptions = {}): Promise<MachineImpl> {
  const doc = typeof input === "string" || !("ops" in (input as object) && Array.isArray((input as any).ops) && (input as any).ops.every((o: any) => o && typeof o.kind === "string"))
    ? loadRunDocument(input) : (input as RunDocument);
  const m = await machineForRun(doc);
  opt.onMachine?.(m);
  for (const d of doc.domains) {
    try { m.createDomain(d); } catch (e) {
      if (e instanceof XenError) throw new XenmmInputError(`domain ${d.domid}: ${e.message} (rc ${e.rc})`);
      throw e;
    }
  }
  doc.ops.forEach((op, index) => {
    m.opIndex = index;
    switch (op.kind) {
      case "hypercall": m.hypercall(op.req, { caller: op.caller, vcpu: op.vcpu }); break;
      case "domain_create": try { m.createDomain(op.cfg); } catch (e) { if (!(e instanceof XenError)) throw e; } break;
      case "domain_destroy": m.destroyDomain(op.domid); break;
      case "parallel": runFixedSchedule(op.ops.map((o) => m.hypercallGen(o.req, { caller: o.caller, vcpu: o.vcpu })), op.schedule); break;
    }
  });
  m.opIndex = undefined;
  return m;
}
