import { describe, it, expect } from "vitest";
import { createMachine, MachineImpl } from "../../src/machine/machine.js";
import { observe, observerCount, type P2mChangeEvent, type LockEvent } from "../../src/hooks/index.js";
import { traceToArray, traceRun } from "../../src/hooks/trace.js";
import { stateHash } from "../../src/snapshot/index.js";
import { decodeDescriptor } from "../../src/inspect/decode.js";
import { XenmmArgumentError } from "../../src/api/errors.js";
import { headerAddress } from "../../src/inspect/core-info.js";

const SELF = 0x7ff0;
async function fresh() {
  const m = await createMachine({ ramFrames: 0x8000 });
  m.createDomain({ domid: 1, ramPages: 16 });
  return m;
}
const hooksWord = (m: MachineImpl) => new DataView(m.core.memory.buffer).getUint32(headerAddress(m.core as any) + 144, true);

describe("hooks", () => {
  it("reports hypercall entry/exit and P2M changes with old/new descriptors", async () => {
    const m = await fresh();
    const log: string[] = [];
    const p2m: P2mChangeEvent[] = [];
    const stop = observe(m, {
      hypercallEntry: (e) => log.push(`enter ${e.seq} ${e.req.op}`),
      hypercallExit: (e) => log.push(`exit ${e.seq} ${e.result?.rc}`),
      p2mChange: (e) => p2m.push(e),
    });
    m.hypercall({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 1 }, { caller: 1 });
    m.hypercall({ op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: 0, gpfn: 0x38000 }, { caller: 1 });
    stop();
    expect(log).toEqual(["enter 0 GNTTABOP_setup_table", "exit 0 0", "enter 1 XENMEM_add_to_physmap", "exit 1 0"]);
    const leaf = p2m.filter((e) => e.level === 3 && e.gfn === 0x38000n);
    expect(leaf.length).toBe(1);
    expect(leaf[0]).toMatchObject({ seq: 1, domid: 1, old: 0n });
    const d = decodeDescriptor(leaf[0].new);
    expect(d.mfn).toBe(m.domain(1)!.grant!.shared[0]);
    expect(d.typeName).toBe("p2m_ram_rw");
    // intermediate tables were linked on the way down (levels 1..2 of gfn 0x38000)
    expect(p2m.every((e) => e.seq === 1)).toBe(true);
  });

  it("costs nothing once removed: no wrapper, core log off, same state as an unobserved machine", async () => {
    const a = await fresh(), b = await fresh();
    const proto = Object.getPrototypeOf(a).hypercall;
    const stop = observe(a, { hypercallExit: () => {}, p2mChange: () => {}, lock: () => {} });
    expect(a.hypercall).not.toBe(proto);
    expect(hooksWord(a) & 1).toBe(1);
    for (const m of [a, b]) {
      m.hypercall({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 2 }, { caller: 1 });
      m.hypercall({ op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: 1, gpfn: 0x38001 }, { caller: 1 });
    }
    expect(stateHash(a)).toBe(stateHash(b)); // hook state is not machine state
    stop();
    stop(); // idempotent
    expect(Object.prototype.hasOwnProperty.call(a, "hypercall")).toBe(false);
    expect(Object.prototype.hasOwnProperty.call(a, "hypercallRaw")).toBe(false);
    expect(a.hypercall).toBe(proto);
    expect(hooksWord(a) & 1).toBe(0);
    expect(observerCount(a)).toBe(0);
    for (const l of [a.heapLock, a.domain(1)!.p2mLock]) expect(Object.prototype.hasOwnProperty.call(l, "_take")).toBe(false);
  });

  it("reports lock events in order", async () => {
    const m = await fresh();
    const ev: LockEvent[] = [];
    const stop = observe(m, { lock: (e) => ev.push(e) });
    m.hypercall({ op: "XENMEM_add_to_physmap", domid: SELF, space: 0, idx: 0, gpfn: 0x39000 }, { caller: 1 });
    stop();
    const p2m = ev.filter((e) => e.lock === "d1.p2m_lock").map((e) => `${e.kind}:${e.mode}`);
    expect(p2m.length).toBeGreaterThanOrEqual(2);
    expect(p2m[0]).toMatch(/^acquire:/);
    expect(p2m.at(-1)).toMatch(/^release:/);
    expect(ev.every((e) => e.seq === 0 && e.cpu === 0)).toBe(true);
  });

  it("several observers; removing one keeps the others", async () => {
    const m = await fresh();
    const a: number[] = [], b: number[] = [];
    const sa = observe(m, { hypercallExit: (e) => a.push(e.seq) });
    const sb = observe(m, { hypercallExit: (e) => b.push(e.seq) });
    m.hypercall({ op: "GNTTABOP_query_size", dom: SELF }, { caller: 1 });
    sa();
    m.hypercall({ op: "GNTTABOP_query_size", dom: SELF }, { caller: 1 });
    sb();
    expect(a).toEqual([0]);
    expect(b).toEqual([0, 1]);
  });

  it("trace writer: JSON lines, bigints as hex strings", async () => {
    const m = await fresh();
    const t = traceToArray(m);
    m.hypercall({ op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 1 }, { caller: 1 });
    m.hypercall({ op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: 0, gpfn: 0x38000 }, { caller: 1 });
    t.stop();
    const lines = t.lines.map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ ev: "enter", seq: 0, req: { op: "GNTTABOP_setup_table" }, caller: 1 });
    const p = lines.find((l) => l.ev === "p2m" && l.gfn === "0x38000" && l.level === 3);
    expect(p).toMatchObject({ old: "0x0", domid: 1, oldDesc: "invalid (0)" });
    expect(p.newDesc).toMatch(/^page mfn=0x[0-9a-f]+ p2m_ram_rw R W/);
    expect(lines.at(-1)).toMatchObject({ ev: "exit", seq: 1, rc: 0 });
  });

  it("traceRun traces a run document from the start", async () => {
    const lines: string[] = [];
    const m = await traceRun({
      machine: { ramFrames: 32768 }, domains: [{ domid: 1, ramPages: 4 }],
      ops: [{ op: "GNTTABOP_setup_table", caller: 1, dom: SELF, nr_frames: 1 }, { op: "XENMEM_add_to_physmap", caller: 1, domid: SELF, space: 1, idx: 0, gpfn: "0x38000" }],
    }, (l) => lines.push(l));
    const evs = lines.map((l) => JSON.parse(l).ev);
    expect(evs.filter((e) => e === "enter").length).toBe(2);
    expect(evs).toContain("p2m");
    expect(m.p2mEntry(1, 0x38000).type).toBe(1);
    expect(observerCount(m)).toBe(0);
  });

  it("validates arguments", async () => {
    const m = await fresh();
    expect(() => observe(m, {} as any)).toThrow(XenmmArgumentError);
    expect(() => observe(null as any, { lock: () => {} })).toThrow(/machine/);
    expect(() => observe({} as any, { lock: () => {} })).toThrow(/hypercall/);
  });
});
