// Reproducers in the run format of src/run (`xenmm run FILE.json` replays the
// operations; `xenmm fuzz replay FILE.json` replays them with the invariants
// on). The fuzz-specific part (expected violation, seed) rides along under
// the extra top-level key "fuzz", which the run loader ignores.

import { loadRunDocument, type RunDocument } from "../run/index.js";
import type { DomainConfig, HypercallRequest } from "../machine/api.js";
import { encodeValue, type FuzzDomainSpec, type FuzzStep } from "./generator.js";
import { domainConfig, fuzzMachineConfig } from "./machine-host.js";
import { replaySteps, worldOf } from "./replay.js";
import type { FuzzRepro } from "./shrink.js";

/** The run document of a reproducer (replays it once to record the exact schedules). */
export async function reproToRunDocument(r: FuzzRepro): Promise<Record<string, unknown>> {
  const world = worldOf(r);
  const res = await replaySteps(world, r.steps, r.expect?.invariant ?? "any");
  const specs = new Map(r.domains.map((d) => [d.domid, d]));
  const ops: unknown[] = [];
  res.steps.forEach((st, i) => {
    switch (st.kind) {
      case "call":
        ops.push({ op: st.call.req.op, caller: st.call.caller, ...reqFields(st.call.req) });
        break;
      case "par":
        ops.push({
          parallel: st.calls.map((c, v) => ({ op: c.req.op, caller: c.caller, vcpu: v, ...reqFields(c.req) })),
          schedule: res.traces[i] ?? [],
        });
        break;
      case "create": {
        const s = specs.get(st.domid);
        ops.push({ op: "domain_create", ...(s ? domainConfig(s) : { domid: st.domid }) });
        break;
      }
      case "destroy":
        ops.push({ op: "domain_destroy", domid: st.domid });
        break;
    }
  });
  const machine = fuzzMachineConfig(world);
  const doc = {
    machine,
    domains: r.domains.map(domainConfig),
    ops,
    fuzz: { format: "xenmm-fuzz-repro/1", seed: r.seed, expect: r.expect, domainSpecs: r.domains },
  };
  return encodeValue(doc) as Record<string, unknown>;
}

function reqFields(req: HypercallRequest): Record<string, unknown> {
  const { op: _op, ...rest } = req as unknown as Record<string, unknown>;
  return rest;
}

/** Back from a run document (ours or hand-written) to a fuzz reproducer. */
export function runDocumentToRepro(json: unknown): FuzzRepro {
  const raw = (typeof json === "string" ? JSON.parse(json) : json) as Record<string, unknown>;
  const doc: RunDocument = loadRunDocument(raw);
  const fz = (raw.fuzz ?? {}) as { seed?: number; expect?: FuzzRepro["expect"]; domainSpecs?: FuzzDomainSpec[] };
  const specs: FuzzDomainSpec[] = fz.domainSpecs ?? doc.domains.map(specOf);
  const steps: FuzzStep[] = [];
  for (const op of doc.ops) {
    switch (op.kind) {
      case "hypercall":
        steps.push({ kind: "call", call: { caller: op.caller, req: op.req } });
        break;
      case "parallel": {
        const dec: number[] = [];
        let cur = -1;
        op.schedule.forEach((c, s) => {
          if (c !== cur) dec.push(s, c);
          cur = c;
        });
        steps.push({ kind: "par", calls: op.ops.map((o) => ({ caller: o.caller, req: o.req })), sched: 0, decisions: dec });
        break;
      }
      case "domain_create":
        if (!specs.some((s) => s.domid === op.cfg.domid)) specs.push(specOf(op.cfg));
        steps.push({ kind: "create", domid: op.cfg.domid });
        break;
      case "domain_destroy":
        steps.push({ kind: "destroy", domid: op.domid });
        break;
    }
  }
  return {
    revision: doc.machine.revision ?? "head",
    arch: doc.machine.arch ?? "arm64",
    ipaBits: doc.machine.ipaBits,
    // What `xenmm run` boots the document with: Xen's default on Arm (1) unless it says otherwise.
    gnttabMaxVersion: doc.machine.xenOptions?.gnttabMaxVersion ?? 1,
    domains: fz.domainSpecs ?? doc.domains.map(specOf),
    steps,
    expect: fz.expect,
    seed: fz.seed,
  };
}

function specOf(d: DomainConfig): FuzzDomainSpec {
  return {
    domid: d.domid,
    privileged: !!d.privileged,
    ramPages: d.ramPages ?? 0,
    ramBaseGfn: Number(d.ramBaseGfn ?? 0x40000),
    maxPages: d.maxPages ?? (d.ramPages ?? 0) + 1024,
    maxGrantFrames: d.maxGrantFrames ?? 64,
  };
}
