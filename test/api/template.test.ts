// In-place reset of a machine to a captured template (src/snapshot/template.ts):
// whatever the machine did since the capture (memory growth, a hypervisor
// crash, a vCPU abandoned while holding locks, domains destroyed and created),
// the reset machine equals a freshly built one in state and behaviour.

import { describe, expect, it } from "vitest";
import { createMachine, type Machine } from "../../src/machine/machine.js";
import type { HypercallRequest, MachineConfig } from "../../src/machine/api.js";
import { captureTemplate, resetMachine } from "../../src/snapshot/template.js";
import { XenmmArgumentError } from "../../src/api/errors.js";

const SELF = 0x7ff0;
const DOMID_IO = 0x7ff1;

async function world(cfg: MachineConfig): Promise<Machine> {
  const m = await createMachine(cfg);
  m.createDomain({ domid: 0, privileged: true, ramPages: 16, maxPages: 4096 });
  m.createDomain({ domid: 1, ramPages: 16, maxPages: 4096 });
  return m;
}

/** GFNs 512 GiB apart: each needs its own level-1, -2 and -3 tables. */
const scattered = (n: number, salt: bigint) => Array.from({ length: n }, (_, i) => BigInt(i) * 0x8000000n + 0x100000n + salt);

// A fixed workload touching grant tables, physmap, reservations and the domain life cycle.
function workload(m: Machine): unknown[] {
  const out: unknown[] = [];
  const call = (caller: number, req: HypercallRequest) => {
    const r = m.hypercall(req, { caller });
    out.push(r.rc, (r as { nr_done?: unknown }).nr_done ?? null);
  };
  call(1, { op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 3 } as HypercallRequest);
  call(1, { op: "GNTTABOP_set_version", version: 2 } as HypercallRequest);
  call(1, { op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: 0x80000000, gpfn: 0x38000 } as HypercallRequest);
  call(1, { op: "XENMEM_populate_physmap", domid: SELF, extent_start: scattered(40, 7n), extent_order: 0 } as HypercallRequest);
  call(0, { op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 2, foreign_domid: 1, idxs: [0x40000n, 0x40001n], gpfns: [0x90000n, 0x90001n] } as HypercallRequest);
  call(1, { op: "XENMEM_decrease_reservation", domid: SELF, extent_start: [0x40002n] } as HypercallRequest);
  out.push(m.destroyDomain(1));
  m.createDomain({ domid: 2, ramPages: 8 });
  call(2, { op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 2 } as HypercallRequest);
  out.push(m.freePages(), m.p2mRuns(0).length, m.p2mRuns(2).length);
  return out;
}

describe("resetMachine", () => {
  const cfg: MachineConfig = { arch: "arm64", revision: "gfn", ramFrames: 0x4000 };

  it("after memory growth and dirtied memory beyond the template's high-water mark: equal to a fresh machine, and behaves alike", async () => {
    const fresh = await world(cfg);
    const m = await world(cfg);
    const t = captureTemplate(m);
    const pages0 = m.core.memory.buffer.byteLength;
    // Page tables far beyond the template's top, then freed with the domain: that memory is now dirty.
    expect(m.hypercall({ op: "XENMEM_populate_physmap", domid: SELF, extent_start: scattered(200, 0n), extent_order: 0 } as HypercallRequest, { caller: 1 }).rc).toBe(200);
    expect(m.core.memory.buffer.byteLength).toBeGreaterThan(pages0);
    expect(m.destroyDomain(1)).toBe(0);
    expect(m.stateHash()).not.toBe(fresh.stateHash());
    resetMachine(m, t);
    expect(m.stateHash()).toBe(fresh.stateHash());
    // New page tables land in the memory the episode dirtied: they must read as zero there too.
    expect(workload(m)).toEqual(workload(fresh));
    expect(m.stateHash()).toBe(fresh.stateHash());
    // and again, from a machine that has been reset before
    resetMachine(m, t);
    const again = await world(cfg);
    expect(m.stateHash()).toBe(again.stateHash());
    expect(workload(m)).toEqual(workload(again));
  });

  it("after a hypervisor crash", async () => {
    const c: MachineConfig = { arch: "arm64", revision: "pre", ramFrames: 0x4000 };
    const fresh = await world(c);
    const m = await world(c);
    const t = captureTemplate(m);
    const r = m.hypercall({ op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: DOMID_IO, idxs: [0n], gpfns: [0x90000n] } as HypercallRequest, { caller: 0 });
    expect(m.crashed).not.toBeNull();
    expect(r.crash).toBeDefined();
    resetMachine(m, t);
    expect(m.crashed).toBeNull();
    expect(m.stateHash()).toBe(fresh.stateHash());
    expect(workload(m)).toEqual(workload(fresh));
  });

  it("after a vCPU was abandoned holding locks (releases them)", async () => {
    const fresh = await world(cfg);
    const m = await world(cfg);
    const t = captureTemplate(m);
    const g = m.hypercallGen({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 4 } as HypercallRequest, { caller: 1, vcpu: 0 });
    const held = () => [...m.domains.values()].some((d) => d.grantLock.isLocked() || d.p2mLock.isLocked() || d.pageAllocLock.isLocked()) || m.heapLock.isLocked();
    for (let i = 0; i < 50 && !held(); i++) g.next();
    expect(held()).toBe(true);
    expect(() => m.stateHash()).toThrow(/held/);
    resetMachine(m, t);
    expect(held()).toBe(false);
    expect(m.stateHash()).toBe(fresh.stateHash());
    expect(workload(m)).toEqual(workload(fresh));
  });

  it("after an episode made two fields share an object the template has two of: unshared again", async () => {
    const fresh = await world(cfg);
    const m = await world(cfg);
    const t = captureTemplate(m);
    resetMachine(m, t); // from here on the reset keeps these Domain objects and patches them
    const d0 = m.domain(0)!, d1 = m.domain(1)!;
    expect(d0.grant).not.toBeNull();
    expect(d1.grant).not.toBeNull();
    // Same class in both fields, so an in-place patch would accept it twice.
    d1.grant = d0.grant;
    resetMachine(m, t);
    expect(m.domain(1)).toBe(d1);
    expect(d1.grant).not.toBe(d0.grant);
    expect(m.stateHash()).toBe(fresh.stateHash());
    expect(workload(m)).toEqual(workload(fresh));
  });

  it("refuses a machine of another configuration, and things that are not machines or templates", async () => {
    const m = await world(cfg);
    const t = captureTemplate(m);
    const other = await world({ ...cfg, revision: "head" });
    const before = other.stateHash();
    expect(() => resetMachine(other, t)).toThrow(XenmmArgumentError);
    expect(other.stateHash()).toBe(before);
    expect(() => resetMachine({} as Machine, t)).toThrow(XenmmArgumentError);
    expect(() => resetMachine(m, {} as never)).toThrow(XenmmArgumentError);
  });
});

describe("template reset from the package entry", () => {
  it("captureTemplate/resetMachine are exported and put a machine back", async () => {
    const x = await import("../../src/index.js");
    const m = await x.createMachine({ arch: "arm64", revision: "head", ramFrames: 0x4000 });
    m.createDomain({ domid: 1, ramPages: 4, ramBaseGfn: 0x40000, maxPages: 16 });
    const t = x.captureTemplate(m);
    const before = x.stateHash(m);
    const r = m.hypercall({ op: "XENMEM_decrease_reservation", domid: 1, extent_start: [0x40000], nr_extents: 1, extent_order: 0 }, { caller: 1 });
    expect(r.rc).toBe(1);
    expect(x.stateHash(m)).not.toBe(before);
    x.resetMachine(m, t);
    expect(x.stateHash(m)).toBe(before);
    expect(x.templateFits(m, t)).toBe(true);
  });
});
