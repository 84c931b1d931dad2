// Two-stage domain destruction (FS 6.10): domain_kill relinquishes; the final
// destruction (grant table, shared_info) waits until no page of the domain is
// still referenced, e.g. by another domain's foreign mapping.
import { describe, expect, it } from "vitest";
import { createMachine } from "../../src/machine/machine.js";
import { REVISIONS } from "../../src/machine/api.js";

describe.each(REVISIONS)("a domain whose shared_info another domain maps (%s)", (rev) => {
  it("stays a zombie until the foreign mapping is removed, then returns every page (dom0's new table pages stay until its teardown)", async () => {
    const m = await createMachine({ revision: rev, ramFrames: 0x4000 });
    const start = m.freePages();
    m.createDomain({ domid: 0, privileged: true, ramPages: 16 });
    const d1 = m.createDomain({ domid: 1, ramPages: 16 });
    const si = d1.sharedInfo;
    // d1 maps its shared_info at 0x40002; dom0 maps that GFN of d1 as a foreign page at 0x90000.
    expect(m.hypercall({ op: "XENMEM_add_to_physmap", domid: 1, space: 0, idx: 0, gpfn: 0x40002n }, { caller: 1 }).rc).toBe(0);
    const b = m.hypercall({ op: "XENMEM_add_to_physmap_batch", domid: 0, space: 4, size: 1, foreign_domid: 1, idxs: [0x40002n], gpfns: [0x90000n] }, { caller: 0 });
    expect(b).toMatchObject({ rc: 0, errs: [0] });
    expect(m.p2mEntry(0, 0x90000n)).toMatchObject({ mfn: si, type: 6 });

    expect(m.destroyDomain(1)).toBe(0);
    // Zombie: the page is still there, held only by dom0's mapping; no longer PGC_allocated.
    expect(m.zombies.map((d) => d.domid)).toEqual([1]);
    expect(m.pageInfo(si).countInfo).toBe(0x4000000000000001n);
    expect(m.createDomain.bind(m, { domid: 1 })).toThrow(/already exists/);

    // Removing the foreign mapping drops the last reference: d1 is destroyed for good.
    expect(m.hypercall({ op: "XENMEM_remove_from_physmap", domid: 0, gpfn: 0x90000n }, { caller: 0 }).rc).toBe(0);
    expect(m.zombies).toEqual([]);
    expect(m.domain(1)).toBeUndefined();
    expect(m.pageInfo(si).countInfo & 0x0180000000000000n).toBe(0x0180000000000000n); // PGC_state_free
    expect(m.destroyDomain(0)).toBe(0);
    expect(m.freePages()).toBe(start);
  });
});
