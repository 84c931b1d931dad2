import { describe, expect, it } from "vitest";
import { createMachine } from "../../src/machine/machine.js";

// FS 8.2 layouts in guest memory; handles are guest addresses.
describe("raw hypercall ABI", () => {
  it("add_to_physmap (24 B), setup_table (24 B) and set_version (4 B) from little-endian buffers", async () => {
    const m = await createMachine({ revision: "gfn", arch: "arm32", ramFrames: 0x10000 });
    m.createDomain({ domid: 1, ramPages: 4 });
    const mem = m.guestMemory;
    const buf = mem.map(1, 0x1000, 4096);
    const dv = new DataView(buf.buffer);
    // xen_add_to_physmap { domid 0x7ff0, size 0, space 1, idx 0, gpfn 0x50000 }
    dv.setUint16(0, 0x7ff0, true); dv.setUint32(4, 1, true); dv.setBigUint64(8, 0n, true); dv.setBigUint64(16, 0x50000n, true);
    expect(m.hypercallRaw({ nr: 12, cmd: 7, arg: 0x1000 }, { caller: 1 }).rc).toBe(0);
    expect(m.hypercallRaw({ nr: 12, cmd: 7 | (0x10000 << 6), arg: 0x1000 }, { caller: 1 }).rc).toBe(-33);
    expect(m.hypercallRaw({ nr: 12, cmd: 7, arg: 0x9000 }, { caller: 1 }).rc).toBe(-14);
    // gnttab_setup_table { dom self, nr_frames 2, frame_list -> 0x1100 }
    dv.setUint16(0x80, 0x7ff0, true); dv.setUint32(0x84, 2, true); dv.setBigUint64(0x90, 0x1100n, true);
    expect(m.hypercallRaw({ nr: 20, cmd: 2, arg: 0x1080, count: 1 }, { caller: 1 }).rc).toBe(0);
    expect(dv.getInt16(0x88, true)).toBe(0);
    expect(dv.getBigUint64(0x100, true)).toBe(0x50000n);
    expect(dv.getBigUint64(0x108, true)).toBe(0xffffffffn); // arm32 INVALID_GFN zero-extended
    // gnttab_set_version { 2 } without max-ver:2 -> -ENOSYS, version 1 written back
    dv.setUint32(0x200, 2, true);
    expect(m.hypercallRaw({ nr: 20, cmd: 8, arg: 0x1200 }, { caller: 1 }).rc).toBe(-38);
    expect(dv.getUint32(0x200, true)).toBe(1);
    expect(m.hypercallRaw({ nr: 17, cmd: 0, arg: 0 }, { caller: 1 }).rc).toBe((4 << 16) | 17);
  });

  it("add_to_physmap_batch (32 B) writes errs[]", async () => {
    const m = await createMachine({ revision: "head", ramFrames: 0x10000 });
    m.createDomain({ domid: 1, privileged: true, ramPages: 4 });
    m.createDomain({ domid: 2, ramPages: 4 });
    const buf = m.guestMemory.map(1, 0x2000, 4096);
    const dv = new DataView(buf.buffer);
    dv.setUint16(0, 1, true); dv.setUint16(2, 4, true); dv.setUint16(4, 2, true); dv.setUint16(6, 2, true);
    dv.setBigUint64(8, 0x2100n, true); dv.setBigUint64(16, 0x2200n, true); dv.setBigUint64(24, 0x2300n, true);
    dv.setBigUint64(0x100, 0x40000n, true); dv.setBigUint64(0x108, 0x12345n, true);
    dv.setBigUint64(0x200, 0x60000n, true); dv.setBigUint64(0x208, 0x60001n, true);
    expect(m.hypercallRaw({ nr: 12, cmd: 23, arg: 0x2000 }, { caller: 1 }).rc).toBe(0);
    expect([dv.getInt32(0x300, true), dv.getInt32(0x304, true)]).toEqual([0, -22]);
  });
});
