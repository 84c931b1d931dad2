import { describe, it, expect } from "vitest";
import { createMachine } from "../../src/api/machine.js";
import { viewsOf } from "../../src/api/views.js";
import { decodePageInfo, encodePageInfo } from "../../src/inspect/decode.js";
import { p2mRoot, readHeader } from "../../src/inspect/core-info.js";
import { XenmmArgumentError } from "../../src/api/errors.js";

describe("zero-copy views", () => {
  it("frame table and page_info records alias core memory, across memory growth", async () => {
    for (const arch of ["arm64", "arm32"] as const) {
      const m = await createMachine({ arch, ramFrames: 0x8000 });
      m.createDomain({ domid: 1, ramPages: 8 });
      m.hypercall({ op: "GNTTABOP_setup_table", dom: 0x7ff0, nr_frames: 1 }, { caller: 1 });
      const v = viewsOf(m.core);
      expect(viewsOf(m.core)).toBe(v);
      const mfn = m.domain(1)!.grant!.shared[0];
      const before = v.pageInfo(mfn);
      const rec = decodePageInfo(before, { arch, revision: m.revision });
      expect(rec.u.kind).toBe("inuse");
      const W = arch === "arm64" ? 8 : 4;
      expect(before.length).toBe(arch === "arm64" ? 56 : 32);
      const ci = arch === "arm64" ? new DataView(before.buffer, before.byteOffset).getBigUint64(2 * W, true) : BigInt(new DataView(before.buffer, before.byteOffset).getUint32(2 * W, true));
      expect(ci).toBe(m.core.count_info(mfn));
      expect(encodePageInfo(rec, { arch, revision: m.revision })).toEqual(before.slice());
      // grow linear memory: old views detach, accessors re-create theirs
      const oldBuf = m.core.memory.buffer;
      m.core.memory.grow(4);
      expect(before.length).toBe(0);
      const after = v.pageInfo(mfn);
      expect(after.buffer).not.toBe(oldBuf);
      expect(decodePageInfo(after, { arch, revision: m.revision })).toEqual(rec);
      const ft = v.frameTable();
      expect(ft.length).toBe(Number(m.core.max_page() - m.core.frametable_base_pdx()) * m.core.page_info_size());
      // views are live: a change through the core shows without re-fetching
      const ft2 = v.frameTable();
      m.hypercall({ op: "GNTTABOP_setup_table", dom: 0x7ff0, nr_frames: 2 }, { caller: 1 });
      expect(ft2.length === 0 || ft2.buffer === m.core.memory.buffer).toBe(true);
      expect(() => v.pageInfo(0)).toThrow(XenmmArgumentError);
    }
  });

  it("a table page is its 512 descriptors", async () => {
    const m = await createMachine({ ramFrames: 0x8000 });
    m.createDomain({ domid: 1, ramPages: 8 });
    const slot = m.domain(1)!.slot;
    const root = p2mRoot(m.core as any, slot);
    expect(root).not.toBeNull();
    expect(root!.level).toBe(readHeader(m.core as any).rootLevel);
    const t = viewsOf(m.core).tablePage(root!.mfn)!;
    expect(t.length).toBe(512);
    const p = m.core.backing_lookup(root!.mfn);
    const dv = new DataView(m.core.memory.buffer);
    for (let i = 0; i < 512; i++) expect(t[i]).toBe(dv.getBigUint64(p + 8 * i, true));
    expect(t.some((e) => e !== 0n)).toBe(true);
    expect(viewsOf(m.core).tablePage(m.core.ram_start_mfn())).toBeNull(); // a RAM frame without backing
  });
});
