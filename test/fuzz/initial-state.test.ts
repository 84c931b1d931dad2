// A host from acquireFuzzHost knows its machine is in the world's initial
// state (the template's) until something runs through it, and takes what it
// found in that state once from its pool: the set of frames in use
// (nextInUse / inUseFrames, kept from the core's frame-store log once the log
// runs) and the P2M walks (walkP2m). Every path that runs something must drop
// that, or they go stale.

import { describe, expect, it } from "vitest";
import { defaultDomains } from "../../src/fuzz/generator.js";
import { runToCompletion } from "../../src/locks/index.js";
import { acquireFuzzHost, releaseFuzzHost, type MachineHost } from "../../src/fuzz/machine-host.js";
import type { WorldConfig } from "../../src/fuzz/replay.js";

const world: WorldConfig = { revision: "head", arch: "arm64", domains: defaultDomains() };

/** The frames in use by reading every record (PGC_state != free). */
function scanned(host: MachineHost): number[] {
  const [lo, hi] = host.ramRange();
  const c = new Uint32Array(2);
  const out: number[] = [];
  for (let m = lo; m < hi; m++) if (host.countInto(m, c) && ((c[1] >>> 23) & 3) !== 3) out.push(m);
  return out;
}

function kept(host: MachineHost): number[] {
  const out: number[] = [];
  host.inUseFrames(out);
  return out;
}

const reservation = (op: "XENMEM_populate_physmap" | "XENMEM_decrease_reservation") => (domid: number, gfn: number) => ({ op, domid, extent_start: [gfn], nr_extents: 1, extent_order: 0 });
const populate = reservation("XENMEM_populate_physmap");
const decrease = reservation("XENMEM_decrease_reservation");

describe("the in-use set of a pooled host", () => {
  it("is the frame table's, from the template's set, after the episode before changed it", async () => {
    const first = await acquireFuzzHost(world);
    const template = kept(first);
    expect(template).toEqual(scanned(first));
    expect(first.call(1, populate(1, 0x50000)).rc).toBe(1);
    first.call(1, decrease(1, 0x40001));
    first.destroyDomain(2);
    expect(kept(first)).toEqual(scanned(first));
    expect(kept(first)).not.toEqual(template);
    releaseFuzzHost(first);
    const next = await acquireFuzzHost(world);
    expect(next.m).toBe(first.m);
    expect(kept(next)).toEqual(template);
    expect(scanned(next)).toEqual(template);
    // The same frames join and leave the set again: the set must see it (its bits are the previous host's array).
    next.call(1, populate(1, 0x50000));
    next.call(1, decrease(1, 0x40001));
    next.destroyDomain(2);
    expect(kept(next)).toEqual(scanned(next));
    releaseFuzzHost(next);
  });

  // Each of these changes the frames in use before the log starts (the first in-use read).
  const paths: Array<[string, (h: MachineHost) => void]> = [
    ["call", (h) => expect(h.call(1, decrease(1, 0x40001)).rc).toBe(1)],
    ["gen", (h) => expect(runToCompletion(h.gen(1, 0, decrease(1, 0x40002))).rc).toBe(1)],
    ["destroyDomain", (h) => h.destroyDomain(2)],
  ];

  it.each(paths)("is the frame table's when %s ran before it was first read", async (_name, run) => {
    const host = await acquireFuzzHost(world);
    const template = scanned(host);
    run(host);
    expect(scanned(host)).not.toEqual(template);
    expect(kept(host)).toEqual(scanned(host));
    releaseFuzzHost(host);
  });
});

/** walkP2m as the tables are now (walkP2mTables is never taken from the pool). */
function walked(host: MachineHost, domid: number): number[] | undefined {
  return host.walkP2mTables(domid)?.leaves;
}

describe("walkP2m of a pooled host", () => {
  it("is a walk of the tables, from the template's walk, after the episode before changed them", async () => {
    const first = await acquireFuzzHost(world);
    const template = first.walkP2m(1);
    expect(template).toEqual(walked(first, 1));
    first.call(1, decrease(1, 0x40001));
    expect(first.walkP2m(1)).toEqual(walked(first, 1));
    expect(first.walkP2m(1)).not.toEqual(template);
    releaseFuzzHost(first);
    const next = await acquireFuzzHost(world);
    expect(next.m).toBe(first.m);
    expect(next.walkP2m(1)).toBe(template);
    expect(walked(next, 1)).toEqual(template);
    releaseFuzzHost(next);
  });

  const paths: Array<[string, (h: MachineHost) => void]> = [
    ["call", (h) => expect(h.call(1, decrease(1, 0x40003)).rc).toBe(1)],
    ["gen", (h) => expect(runToCompletion(h.gen(1, 0, decrease(1, 0x40004))).rc).toBe(1)],
  ];

  it.each(paths)("is a walk of the tables when %s ran before it", async (_name, run) => {
    const earlier = await acquireFuzzHost(world);
    const template = earlier.walkP2m(1); // the pool has the template's walk
    releaseFuzzHost(earlier);
    const host = await acquireFuzzHost(world);
    run(host);
    expect(walked(host, 1)).not.toEqual(template);
    expect(host.walkP2m(1)).toEqual(walked(host, 1));
    releaseFuzzHost(host);
  });
});

describe("acquireFuzzHost's worlds", () => {
  it("are told apart by every field of the domain specs, even in an array changed in place", async () => {
    const specs = defaultDomains();
    const ask = () => acquireFuzzHost({ revision: "head", arch: "arm64", domains: specs });
    const a = await ask();
    expect(a.walkP2m(1)!.length).toBe(16 * 4);
    releaseFuzzHost(a);
    specs[1].ramPages = 8;
    const b = await ask();
    expect(b.m).not.toBe(a.m);
    expect(b.walkP2m(1)!.length).toBe(8 * 4);
    releaseFuzzHost(b);
    specs[1].ramPages = 16;
    const c = await ask();
    expect(c.m).toBe(a.m);
    expect(c.walkP2m(1)!.length).toBe(16 * 4);
    releaseFuzzHost(c);
  });
});
