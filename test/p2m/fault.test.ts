import { describe, it, expect } from "vitest";
import { machine, T } from "./helpers.js";

const fault = (r: bigint) => (r >> 63n) === 1n ? { level: Number((r >> 8n) & 3n), type: Number((r >> 12n) & 7n) } : null;

describe("valid-bit games (FS §6.11)", () => {
  it("head: invalidate_root then resolve level by level", async () => {
    const m = await machine({ rev: "head" });
    m.domain(1);
    m.core.p2m_set_entry(1, 0x10n, 1n, 0x99n, T.ram_rw, 7);
    m.core.walk_configure(16, 2, 5, 48, m.core.p2m_root_mfn(1) << 12n);
    const walk = () => BigInt.asUintN(64, m.core.walk_s2(0x10n << 12n, 0));
    expect(walk()).toBe(0x99n << 12n);
    const f0 = m.core.p2m_flush_count(1);
    m.core.p2m_invalidate_root(1);
    expect(m.core.p2m_flush_count(1)).toBe(f0 + 1n);
    expect(fault(walk())).toEqual({ level: 0, type: 2 });
    expect(m.core.p2m_read_entry(1, 0x10n, 0) & 1n).toBe(0n);
    // still mapped from the P2M's point of view
    expect(m.lookup(1, 0x10n)).toMatchObject({ mfn: 0x99n, valid: 1 });
    for (const lvl of [1, 2, 3]) {
      expect(m.core.p2m_resolve_translation_fault(1, 0x10n)).toBe(true);
      expect(fault(walk())).toEqual({ level: lvl, type: 2 });
    }
    expect(m.lookup(1, 0x10n)).toMatchObject({ mfn: 0x99n, valid: 0 });
    expect(m.core.p2m_resolve_translation_fault(1, 0x10n)).toBe(true);
    expect(walk()).toBe(0x99n << 12n);
    expect(m.core.p2m_read_entry(1, 0x10n, 3)).toBe(0x00800000000007ffn | (0x99n << 12n));
    expect(m.core.p2m_resolve_translation_fault(1, 0x10n)).toBe(true); // already valid
    expect(m.core.p2m_resolve_translation_fault(1, 0x11n)).toBe(false); // not mapped
    expect(m.core.p2m_resolve_translation_fault(1, 0x1000n)).toBe(false); // above max_mapped_gfn
  });

  it("pre: the P2M_ROOT_LEVEL loop bound invalidates nothing on a level-0 root", async () => {
    const m = await machine({ rev: "pre" });
    m.domain(1);
    m.core.p2m_set_entry(1, 0x10n, 1n, 0x99n, T.ram_rw, 7);
    const before = m.core.p2m_read_entry(1, 0x10n, 0);
    m.core.p2m_invalidate_root(1);
    expect(m.core.p2m_read_entry(1, 0x10n, 0)).toBe(before);
    expect(m.core.p2m_need_flush(1)).toBe(false);
  });

  for (const rev of ["pre", "head"] as const) {
    it(`${rev} arm32: invalidate_root covers ${rev === "pre" ? "only the first" : "both"} root page(s)`, async () => {
      const m = await machine({ rev, arch: "arm32", ramStart: 0x80000n, ramFrames: 0x10000n });
      m.domain(1);
      const hi = (1n << 27n) + 5n; // second root page
      m.core.p2m_set_entry(1, 5n, 1n, 0x99n, T.ram_rw, 7);
      m.core.p2m_set_entry(1, hi, 1n, 0x98n, T.ram_rw, 7);
      m.core.p2m_invalidate_root(1);
      expect(m.core.p2m_read_entry(1, 5n, 1) & 1n).toBe(0n);
      expect(m.core.p2m_read_entry(1, hi, 1) & 1n).toBe(rev === "pre" ? 1n : 0n);
    });
  }
});
