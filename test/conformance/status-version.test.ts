// Grant versions and status frames (FS 7.5, 7.4): set_version's written-back
// version, get_status_frames, mapping status frames, the v2→v1 switch (arm64:
// status mappings removed; arm32: Xen dies in put_page_alloc_ref at every revision).

import { describe, expect, it } from "vitest";
import { buildPreset, presetPlanOf } from "../../src/presets/index.js";
import { ARCHES, CRASHED_RC, E, GNTST, REVS, XENMAPIDX_grant_table_status as ST, arrayVsPage, crashed, invalidGfn64, op, preset, r, runOps } from "./helpers.js";

const maxVer2 = { gnttabMaxVersion: 2 as const };

describe.each(ARCHES)("grant version, default options (max version 1) (%s)", (arch) => {
  const p = preset(arch);
  it.each(REVS)("set_version writes the current version back; status frames absent at v1 (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.setVersion(3), op.setVersion(2), op.setVersion(0), op.setVersion(1), op.getVersion(),
      op.statusFrames(1), op.statusFrames(0),
      op.grant(ST, p.gfree(1)), op.query(),
      op.getVersion(42), op.setup(1, 42), op.query(42), op.statusFrames(1, 42),
    ]);
    expect(results).toEqual([
      r.version(E.INVAL, 1), r.version(E.NOSYS, 1), r.version(E.INVAL, 1), r.version(0, 1), r.version(0, 1),
      r.setupErr(GNTST.general_error),           // list untouched
      { rc: 0, status: GNTST.okay, frame_list: [] },
      r.rc(E.INVAL),                              // the status bit stays in idx at v1
      r.query(1, 64),
      r.rc(E.SRCH),                               // get_version: a return code, not a status
      r.setupErr(GNTST.bad_domain),
      { rc: 0, status: GNTST.bad_domain, dom: 42, nr_frames: 0, max_nr_frames: 0 },
      r.setupErr(GNTST.bad_domain),
    ]);
  });
});

describe("grant version 2 (gnttab=max-ver:2), arm64", () => {
  const arch = "arm64" as const;
  const p = preset(arch, "head", maxVer2);
  const G = (i: number) => p.gfree(i);
  const inv = invalidGfn64(arch);

  it.each(REVS)("boot state is still version 1 with max-ver:2 (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [op.getVersion(), op.query(), op.setup(1)], maxVer2);
    expect(results).toEqual([r.version(0, 1), r.query(1, 64), r.setup([p.g0])]);
  });

  it.each(REVS)("1→2, map status frame 0, remap it, 2→1 removes it (%s)", async (rev) => {
    const { results, run } = await runOps(arch, rev, [
      op.setVersion(2),          // 0
      op.getVersion(),           // 1
      op.statusFrames(1),        // 2: one status frame, not mapped
      op.statusFrames(2),        // 3
      op.grant(ST, G(1)),        // 4
      op.statusFrames(1),        // 5
      op.grant(ST, G(2)),        // 6: already mapped: moved (pre/harden) or -EBUSY
      op.statusFrames(1),        // 7
      op.query(),                // 8
      op.setVersion(1),          // 9
      op.remove(G(1)),           // 10
      op.remove(G(2)),           // 11
      op.statusFrames(1),        // 12
      op.getVersion(),           // 13
      op.setup(1),               // 14: frame 0 stays where the kernel put it
    ], maxVer2);
    expect(results).toEqual([
      r.version(0, 2),
      r.version(0, 2),
      { rc: 0, status: 0, frame_list: [inv] },
      r.setupErr(GNTST.general_error),
      r.rc(0),
      { rc: 0, status: 0, frame_list: ["0x" + G(1).toString(16)] },
      r.rc(arrayVsPage(rev, 0, E.BUSY)),
      { rc: 0, status: 0, frame_list: ["0x" + arrayVsPage(rev, G(2), G(1)).toString(16)] },
      r.query(1, 64),
      r.version(0, 1),
      r.rc(E.NOENT),
      r.rc(E.NOENT),
      r.setupErr(GNTST.general_error),
      r.version(0, 1),
      r.setup([p.g0]),
    ]);
    expect(run.crash).toBeNull();
  });

  it.each(REVS)("get_status_frames after the status frame is unmapped: stale at pre/harden (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.setVersion(2), op.grant(ST, G(5)), op.remove(G(5)), op.statusFrames(1), op.grant(ST, G(6)), op.statusFrames(1),
      op.grant(ST, G(6)),
    ], maxVer2);
    expect(results).toEqual([
      r.version(0, 2), r.rc(0), r.rc(0),
      { rc: 0, status: 0, frame_list: [arrayVsPage(rev, "0x" + G(5).toString(16), inv)] },
      r.rc(0),
      { rc: 0, status: 0, frame_list: ["0x" + G(6).toString(16)] },
      r.rc(arrayVsPage(rev, 0, E.BUSY)),
    ]);
  });

  it.each(REVS)("mapping status frame 1 grows the table to 16 grant frames (%s)", async (rev) => {
    const { results } = await runOps(arch, rev, [
      op.setVersion(2), op.grant(ST + 1, G(3)), op.query(), op.statusFrames(2), op.grant(ST + 8, G(4)), op.query(),
    ], maxVer2);
    expect(results).toEqual([
      r.version(0, 2), r.rc(0), r.query(16, 64),
      { rc: 0, status: 0, frame_list: [inv, "0x" + G(3).toString(16)] },
      r.rc(E.INVAL), // status idx 8 needs 72 grant frames > 64: no growth
      r.query(16, 64),
    ]);
  });

  it.each(REVS)("2→1 with a stale status GFN now holding RAM: PRE unmaps it, HARDEN crashes the domain (%s)", async (rev) => {
    const R = p.ramStart + 0x10000n;
    const { results, run } = await runOps(arch, rev, [
      op.setVersion(2), op.grant(ST, R), op.remove(R), op.populate([R]), op.setVersion(1),
    ], maxVer2);
    const final = run.final as any;
    expect(results.slice(0, 4)).toEqual([r.version(0, 2), r.rc(0), r.rc(0), r.rc(1)]);
    if (rev === "harden") {
      // removal of the recorded GFN → -EILSEQ → domain_crash, error returned, version stays 2.
      expect(results[4]).toEqual(r.version(E.ILSEQ, 2));
      expect(final.domains["0"].crashed).toBeTruthy();
    } else {
      expect(results[4]).toEqual(r.version(0, 1));
      expect(final.domains["0"].crashed).toBeNull();
    }
    // Is R still dom0's RAM, 1:1? PRE removed it; GFN/HEAD never looked at it.
    const ramRun = (final.domains["0"].p2m as any[]).some((x) => x.type === "ram_rw" && x.gfn === "0x" + R.toString(16));
    expect(ramRun).toBe(false); // R is inside a larger run unless PRE punched a hole
    const hole = !(final.domains["0"].p2m as any[]).some((x) => {
      const [a, b] = String(x.gfn).split("-").map((v: string) => BigInt(v));
      return R >= a && R <= (b ?? a);
    });
    expect(hole).toBe(rev === "pre");
  });
});

describe("grant version 2→1 on arm32 kills Xen at every revision (FS 7.4)", () => {
  it.each(REVS)("set_version 2 then 1 → BUG_ON in put_page_alloc_ref (%s)", async (rev) => {
    const { results, run } = await runOps("arm32", rev, [op.setVersion(2), op.setVersion(1), op.getVersion()], maxVer2);
    expect(results[0]).toEqual(r.version(0, 2));
    const c = crashed(results[1]);
    expect(c).not.toBeNull();
    expect(c!.kind).toBe("BUG_ON");
    expect(c!.path).toMatch(/put_page_alloc_ref/);
    expect(c!.path).toMatch(/GNTTABOP_set_version/);
    expect(results[2].rc).toBe(CRASHED_RC);
    expect(run.crash).toMatchObject({ kind: "BUG_ON", opIndex: 1 });
  });

  it.each(REVS)("also after mapping and unmapping the status frame (%s)", async (rev) => {
    const p = preset("arm32", rev, maxVer2);
    const { results } = await runOps("arm32", rev, [
      op.setVersion(2), op.grant(ST, p.gfree(1)), op.statusFrames(1), op.setVersion(1),
    ], maxVer2);
    expect(results.slice(0, 3)).toEqual([r.version(0, 2), r.rc(0), { rc: 0, status: 0, frame_list: ["0x" + p.gfree(1).toString(16)] }]);
    expect(crashed(results[3])).toMatchObject({ kind: "BUG_ON" });
  });
});

describe("reserved grant entries across version switches (FS 7.5), arm64", () => {
  it.each(REVS)("converted on 1→2; -ERANGE on 2→1 when one is not representable in v1 (%s)", async (rev) => {
    const m = await buildPreset("qemu-virt-dom0", { arch: "arm64", revision: rev, xenOptions: maxVer2 });
    const c = m.core;
    const mfn = m.p2mEntry(0, presetPlanOf(m)!.grantFrames[0].gfn).mfn;
    const dv = () => new DataView(c.memory.buffer, c.backing_get(mfn), 4096);
    const v1 = (i: number, flags: number, domid: number, frame: number) => {
      dv().setUint16(8 * i, flags, true); dv().setUint16(8 * i + 2, domid, true); dv().setUint32(8 * i + 4, frame, true);
    };
    v1(1, 0x9, 0, 0x12345); v1(2, 0x1, 1, 0x23456); v1(9, 0x1, 0, 0x777);
    expect(m.hypercall({ op: "GNTTABOP_set_version", version: 2 }, { caller: 0 })).toEqual({ rc: 0, version: 2 });
    const e = (i: number) => ({ flags: dv().getUint16(16 * i, true), domid: dv().getUint16(16 * i + 2, true), frame: dv().getBigUint64(16 * i + 8, true) });
    expect(e(1)).toEqual({ flags: 0x1, domid: 0, frame: 0x12345n });   // GTF_reading moved to the status entry
    expect(e(2)).toEqual({ flags: 0x1, domid: 1, frame: 0x23456n });
    const st = m.domain(0)!.grant!.status[0];
    expect(new DataView(c.memory.buffer, c.backing_get(st), 4096).getUint16(2, true)).toBe(0x8);
    expect(new Uint8Array(c.memory.buffer, c.backing_get(mfn) + 8 * 16, 4096 - 8 * 16).every((b) => b === 0)).toBe(true);
    // A reserved v2 entry granting a frame above 32 bits cannot become v1.
    dv().setUint16(16 * 3, 0x1, true); dv().setBigUint64(16 * 3 + 8, 1n << 32n, true);
    expect(m.hypercall({ op: "GNTTABOP_set_version", version: 1 }, { caller: 0 })).toEqual({ rc: -34, version: 2 });
    expect(e(1)).toEqual({ flags: 0x1, domid: 0, frame: 0x12345n });
    expect(m.hypercall({ op: "GNTTABOP_get_status_frames", dom: 0x7ff0, nr_frames: 1 }, { caller: 0 }).status).toBe(0);
    // Transitive grants are refused the same way; once representable, 2→1 restores the v1 layout.
    dv().setBigUint64(16 * 3 + 8, 0x42n, true); dv().setUint16(16 * 3, 0x3, true);
    expect(m.hypercall({ op: "GNTTABOP_set_version", version: 1 }, { caller: 0 })).toEqual({ rc: -34, version: 2 });
    dv().setUint16(16 * 3, 0x1, true);
    expect(m.hypercall({ op: "GNTTABOP_set_version", version: 1 }, { caller: 0 })).toEqual({ rc: 0, version: 1 });
    expect([dv().getUint16(8, true), dv().getUint16(10, true), dv().getUint32(12, true)]).toEqual([0x9, 0, 0x12345]);
    expect([dv().getUint16(24, true), dv().getUint16(26, true), dv().getUint32(28, true)]).toEqual([0x1, 0, 0x42]);
  });
});
