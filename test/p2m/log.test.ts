import { describe, it, expect } from "vitest";
import { machine, T, expectBug } from "./helpers.js";

describe("P2M change log (H_HOOKS bit 0)", () => {
  it("records nothing when disabled, every live write when enabled", async () => {
    const m = await machine();
    m.domain(1);
    m.core.p2m_set_entry(1, 0x10n, 1n, 0x99n, T.ram_rw, 7);
    expect(m.core.p2m_log_count()).toBe(0n);
    const hdr = m.core.walk_hdr();
    new Uint32Array(m.core.memory.buffer, hdr + 144, 1)[0] = 1; // H_HOOKS
    m.core.p2m_set_entry(1, 0x11n, 1n, 0x9an, T.ram_ro, 7);
    expect(m.core.p2m_log_count()).toBe(1n);
    const log = m.core.p2m_log_ptr();
    const rec = new DataView(m.core.memory.buffer, log + 16, 32);
    expect(rec.getBigUint64(0, true)).toBe(0x11n);
    expect(rec.getBigUint64(8, true)).toBe(0n);
    expect(rec.getBigUint64(16, true)).toBe(0x010000000000077fn | (0x9an << 12n));
    expect(rec.getUint32(24, true)).toBe(3);
    expect(rec.getUint32(28, true)).toBe(1);
    // replacing a valid entry: remove (old -> 0) then write (0 -> new)
    m.core.p2m_set_entry(1, 0x11n, 1n, 0x9bn, T.ram_rw, 7);
    expect(m.core.p2m_log_count()).toBe(3n);
    const r2 = new DataView(m.core.memory.buffer, log + 16 + 64, 32);
    expect(r2.getBigUint64(8, true)).toBe(0n);
    expect(r2.getBigUint64(16, true)).toBe(0x00800000000007ffn | (0x9bn << 12n));
    // a split: BBM on the live entry = 2 records (new tables are filled before linking)
    m.core.p2m_set_entry(1, 0x400n, 512n, 0x800n, T.ram_rw, 7); // 1 record
    m.core.p2m_set_entry(1, 0x401n, 1n, m.INVALID, 0, 7);       // zero + table, then remove: 3 records
    expect(m.core.p2m_log_count()).toBe(7n);
  });
});

describe("Xen ASSERTs", () => {
  it("removing a foreign mapping of an invalid MFN trips ASSERT(mfn_valid)", async () => {
    const m = await machine();
    m.domain(1);
    m.core.p2m_set_entry(1, 0x10n, 1n, 0x10n, T.map_foreign_rw, 7); // MFN 0x10 is not RAM
    const code = expectBug(m, () => m.core.p2m_set_entry(1, 0x10n, 1n, m.INVALID, 0, 7));
    expect(code >>> 24).toBe(1); // BUG_ASSERT
    expect(code & 0xffffff).toBe(0x440);
  });

  it("a lookup of GFN 0 in a never-initialised P2M crashes (FS §6.3)", async () => {
    const m = await machine();
    expect(m.core.p2m_get_entry(5, 1n)).toBe(m.INVALID); // gfn > max_mapped_gfn (0)
    const code = expectBug(m, () => m.core.p2m_get_entry(5, 0n));
    expect(code >>> 24).toBe(1);
  });
});
