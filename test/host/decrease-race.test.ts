// A race the fuzzer found at head and that the fact sheet's code shape has at
// every revision: guest_remove_page looks the GFN up under the P2M read lock,
// drops it, then takes a page reference and removes the mapping. The HARDEN
// check in p2m_remove_mapping only compares any-RAM entries, so a GFN that has
// become a hole "removes" fine (rc 0) and the allocation reference of whatever
// the frame has become is dropped (fact sheet 6.8, 8.3).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { executeRun, loadRunDocument } from "../../src/run/index.js";
import { REVISIONS } from "../../src/machine/api.js";
import { MachineHost } from "../../src/fuzz/machine-host.js";

const fixture = JSON.parse(readFileSync(join(__dirname, "../fixtures/decrease-reservation-race.json"), "utf8"));

describe.each(REVISIONS)("decrease_reservation racing itself and populate_physmap (%s)", (rev) => {
  it("leaves a GFN mapping a frame that went back to the heap", async () => {
    const { results, machine: m } = await executeRun(loadRunDocument({ ...fixture, machine: { ...fixture.machine, revision: rev } }));
    expect(results[0].rc).toBe(1);                         // populate 0x38002
    const par = results[1].results as Array<{ rc: number }>;
    expect(par.map((r) => r.rc)).toEqual([1, 2, 1]);       // every extent "succeeds"
    const e = m.p2mEntry(0, 0n);
    expect(e.type).toBe(1);                                // p2m_ram_rw at GFN 0 ...
    const pi = m.pageInfo(e.mfn);
    expect(pi.countInfo & 0x0180000000000000n).toBe(0x0180000000000000n); // ... of a PGC_state_free frame
    expect(pi.owner).toBeNull();
    // Without the interleaving the same three calls are harmless.
    const seq = loadRunDocument({ ...fixture, machine: { ...fixture.machine, revision: rev }, ops: [fixture.ops[0], ...fixture.ops[1].parallel] });
    const { machine: s } = await executeRun(seq);
    const e2 = s.p2mEntry(0, 0n);
    expect(s.pageInfo(e2.mfn).countInfo).toBe(0x8000000000000001n); // allocated, one reference
  });
});

const tableFixture = JSON.parse(readFileSync(join(__dirname, "../fixtures/decrease-race-table-page.json"), "utf8"));

describe.each(REVISIONS)("the same race hands the guest one of its own P2M table pages (%s)", (rev) => {
  it("a guest GFN maps, read-write, a table page of the domain's stage-2 tables", async () => {
    const { machine: m } = await executeRun(loadRunDocument({ ...tableFixture, machine: { ...tableFixture.machine, revision: rev } }));
    const e = m.p2mEntry(2, 0x380n);
    expect(e.type).toBe(1); // p2m_ram_rw
    const host = new MachineHost(m, tableFixture.fuzz.domainSpecs);
    host.drainP2m(); // turns the P2M-change log on, which tablePages() needs
    const tables = host.tablePages(2)!.tables;
    expect(tables).toContain(Number(e.mfn));
    // The frame is in use as a table page, yet no domain owns it and nothing holds a reference for the guest's mapping.
    expect(m.pageInfo(e.mfn).owner).toBeNull();
  });
});
