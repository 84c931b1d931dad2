import { describe, expect, it, vi } from "vitest";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { executeRun, loadRunDocument, RunDocumentError, runMain } from "../../src/run/index.js";

const doc = (revision: string) => ({
  machine: { arch: "arm64", revision, ramStartMfn: "0x40000", ramFrames: 65536, ipaBits: 48 },
  domains: [{ domid: 1, privileged: true, ramPages: 8 }, { domid: 2, ramPages: 4 }],
  ops: [
    { op: "XENMEM_add_to_physmap", caller: 1, domid: 1, space: 1, idx: 0, gpfn: "0x50000" },
    { op: "XENMEM_remove_from_physmap", caller: 1, domid: 1, gpfn: "0x50000" },
    { op: "XENMEM_add_to_physmap_batch", caller: 1, domid: 1, space: 4, size: 1, foreign_domid: 2, idxs: ["0x40000"], gpfns: ["0x50000"] },
    { op: "XENMEM_add_to_physmap", caller: 1, domid: 1, space: 1, idx: 0, gpfn: "0x50001" },
    { op: "GNTTABOP_setup_table", caller: 1, dom: 1, nr_frames: 1 },
  ],
});

describe("run documents", () => {
  it("validates and names the bad field", () => {
    const bad = doc("gfn") as any;
    bad.ops[3].gpfn = 1.5;
    expect(() => loadRunDocument(bad)).toThrow(new RunDocumentError("ops[3].gpfn", "expected integer"));
    expect(() => loadRunDocument({ machine: { revision: "x" } })).toThrow("machine.revision: expected one of pre, harden, gfn, head");
    expect(() => loadRunDocument({ ops: [{ op: "XENMEM_nope" }] })).toThrow('ops[0].op: unknown operation "XENMEM_nope"');
    expect(() => loadRunDocument({ ops: [{ op: "XENMEM_remove_from_physmap", domid: 1 }] })).toThrow("ops[0].gpfn: missing");
    expect(() => loadRunDocument({ ops: [{ parallel: [{ op: "XENVER_version" }], schedule: [3] }] })).toThrow("ops[0].schedule[0]");
  });

  it("replays the stale-gfn sequence with every written-back field and a final state", async () => {
    for (const [rev, last, g1] of [["pre", 0, "invalid"], ["harden", -84, "map_foreign_rw"], ["head", 0, "map_foreign_rw"]] as const) {
      const r = await executeRun(loadRunDocument(doc(rev)));
      expect(r.results.map((x) => x.rc)).toEqual([0, 0, 0, last, 0]);
      expect(r.results[2].errs).toEqual([0]);
      expect(r.results[4].frame_list).toEqual([rev === "harden" ? "0x50000" : "0x50001"]);
      const p2m = (r.final.domains as any)["1"].p2m as Array<{ gfn: string; type: string }>;
      const at = p2m.find((e) => e.gfn === "0x50000");
      expect(at?.type ?? "invalid").toBe(g1);
      expect((r.final.domains as any)["1"].grant.frames[0].type_info).toBe(rev === "head" ? "0xa000000000050001" : rev === "pre" ? "0x8000000000000001" : "0x8000000000000001");
    }
  });

  it("parallel ops under a fixed schedule (XSA-486 at gfn)", async () => {
    const d = {
      machine: { revision: "gfn", ramFrames: 65536, xenOptions: { gnttabMaxVersion: 2 } },
      domains: [{ domid: 1, privileged: true }],
      ops: [
        { op: "GNTTABOP_set_version", caller: 1, version: 2 },
        { parallel: [
          { op: "XENMEM_add_to_physmap", caller: 1, domid: 1, space: 1, idx: "0x80000000", gpfn: "0x51000" },
          { op: "GNTTABOP_set_version", caller: 1, version: 1 },
        ], schedule: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1] },
      ],
    };
    const r = await executeRun(loadRunDocument(d));
    const par = r.results[1].results as any[];
    expect(par.map((x) => x.rc)).toEqual([0, -16]);
    expect((r.final.domains as any)["1"].crashed).toMatch(/Wrong page state/);
  });

  it("runMain: exit 2 with a one-line error for a malformed document, 0 otherwise", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xenmm-run-"));
    const bad = doc("gfn") as any;
    bad.ops[3].gpfn = "zz";
    writeFileSync(join(dir, "bad.json"), JSON.stringify(bad));
    writeFileSync(join(dir, "good.json"), JSON.stringify(doc("gfn")));
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    expect(await runMain([join(dir, "bad.json")])).toBe(2);
    expect(err.mock.calls[0][0]).toBe("ops[3].gpfn: expected integer");
    expect(await runMain([join(dir, "good.json")])).toBe(0);
    expect(JSON.parse(log.mock.calls[0][0]).results[3].rc).toBe(0);
    err.mockRestore();
    log.mockRestore();
  });
});
