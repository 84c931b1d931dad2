import { describe, it, expect } from "vitest";
import { machine, T, REVS, type Machine, type Rev } from "./helpers.js";
import { Prng } from "../../src/util/prng.js";

// relinquish_p2m_mapping walks each table once instead of once per entry
// (assembly/p2m/teardown.ts). Xen's loop, written here over the core's own
// p2m_get_entry and __p2m_set_entry, is the reference: two cores with the same
// history, one running each, must end with identical linear memory (tables,
// frame table, refcounts, stored GFNs, statistics, the p2m_get_entry out area,
// the P2M-change log) and the same rc at every preemption.

const H_HOOKS = 144; // header word: bit 0 turns the P2M-change log on (assembly/mem/machine.ts)

function xenRelinquish(m: Machine, d: number, preempt: boolean): number {
  const c = m.core;
  const lm = m.INVALID;
  let start = c.p2m_lowest_mapped_gfn(d);
  const end = (c.p2m_max_mapped_gfn(d) + 1n) & lm;
  let count = 0, rc = 0;
  while (start < end) {
    const mfn = c.p2m_get_entry(d, start);
    const order = m.out(d).order;
    count++;
    if (preempt && count % 512 === 0) { rc = -85; break; }
    if (mfn !== m.INVALID) {
      rc = c.__p2m_set_entry(d, start, order, m.INVALID, T.invalid, 7);
      if (rc !== 0) break;
    }
    const step = 1n << BigInt(order);
    start = ((start + step) & lm) & ~(step - 1n);
    if (start === 0n) break;
  }
  new DataView(c.memory.buffer).setBigUint64(c.p2m_ptr(d) + 24, start, true); // lowest_mapped_gfn
  c.p2m_tlb_flush_sync(d);
  return rc;
}

/** A random P2M for slot 1: clusters of 4K pages, blocks, holes punched into blocks, foreign and xenheap pages. */
function populate(m: Machine, seed: number, reachGfns: bigint): void {
  const c = m.core;
  const r = new Prng(seed);
  m.domain(1);
  m.domain(2);
  const big = (n: number): bigint => BigInt(r.below(n));
  // A few regions spread over the IPA space, including both of its ends.
  const bases = [0n, reachGfns - 0x400n, big(Number(reachGfns >> 20n)) << 20n, 0x40000n, big(1 << 20) << 9n];
  const ram = m.ramStart;
  for (let i = 0; i < 40 + r.below(40); i++) {
    const base = bases[r.below(bases.length)] % reachGfns;
    const k = r.below(10);
    if (k < 4) {
      const g = base + big(0x400), n = BigInt(1 + r.below(24));
      if (g + n <= reachGfns) c.p2m_insert_mapping(1, g, n, ram + big(0x1000), [T.ram_rw, T.ram_ro, T.mmio_direct_c, T.grant_map_rw][r.below(4)]);
    } else if (k < 6) {
      const g = (base & ~0x1ffn) + (big(4) << 9n);
      if (g + 512n <= reachGfns) c.p2m_insert_mapping(1, g, 512n, (ram + big(8) * 512n), [T.ram_rw, T.mmio_direct_dev][r.below(2)]);
    } else if (k < 7) {
      const g = (base & ~0x3ffffn);
      if (g + 0x40000n <= reachGfns) c.p2m_insert_mapping(1, g, 0x40000n, 1n << 26n, T.mmio_direct_c);
    } else if (k < 8) {
      const g = base + big(0x400), n = BigInt(1 + r.below(600));
      if (g + n <= reachGfns) c.p2m_set_entry(1, g, n, m.INVALID, T.invalid, 7); // holes, splits
    } else if (k < 9) {
      const pg = c.alloc_domheap_pages(2, 0, 0);
      const g = base + big(0x400);
      if (pg !== m.INVALID && g < reachGfns) c.set_foreign_p2m_entry(1, 2, g, pg);
    } else {
      const pg = c.alloc_xenheap_pages(0, 0);
      const g = base + big(0x400);
      if (pg !== m.INVALID && g < reachGfns) {
        c.share_xen_page_with_guest(pg, 1, 0);
        if (c.p2m_insert_mapping(1, g, 1n, pg, T.ram_rw) === 0) c.page_set_xenheap_gfn(pg, g);
      }
    }
  }
  c.domain_set_flags(1, 1); // dying: HEAD's BUG_ON(!d->is_dying)
}

function bytesEqual(a: Machine, b: Machine): boolean {
  const x = new Uint8Array(a.core.memory.buffer), y = new Uint8Array(b.core.memory.buffer);
  if (x.length !== y.length) return false;
  return Buffer.compare(x, y) === 0;
}

const CASES: Array<{ arch: "arm64" | "arm32"; ipaBits: number; rev: Rev }> = [
  { arch: "arm64", ipaBits: 48, rev: "head" },
  { arch: "arm64", ipaBits: 40, rev: "gfn" },
  { arch: "arm64", ipaBits: 36, rev: "pre" },
  { arch: "arm32", ipaBits: 40, rev: "head" },
  { arch: "arm64", ipaBits: 44, rev: "harden" },
];

describe("relinquish_p2m_mapping visits what Xen's per-GFN loop visits", () => {
  for (const cs of CASES) {
    it(`${cs.arch} ${cs.ipaBits}-bit IPA, ${cs.rev}: same bytes and rc, with and without preemption`, async () => {
      expect(REVS).toContain(cs.rev);
      for (let seed = 1; seed <= 6; seed++) {
        for (const preempt of [false, true]) {
          const opts = { arch: cs.arch, ipaBits: cs.ipaBits, rev: cs.rev, ramFrames: 0x40000n };
          const a = await machine(opts), b = await machine(opts);
          const reach = 1n << BigInt(cs.ipaBits - 12);
          populate(a, seed, reach);
          populate(b, seed, reach);
          for (const m of [a, b]) {
            const v = new DataView(m.core.memory.buffer), h = m.core.walk_hdr() + H_HOOKS;
            v.setUint32(h, v.getUint32(h, true) | 1, true);
          }
          expect(bytesEqual(a, b)).toBe(true);
          const logBefore = a.core.p2m_log_count();
          let steps = 0;
          while (true) {
            const ra = a.core.relinquish_p2m_mapping(1, preempt);
            const rb = xenRelinquish(b, 1, preempt);
            expect(ra).toBe(rb);
            expect(bytesEqual(a, b)).toBe(true);
            steps++;
            if (ra !== -85) break;
          }
          // The scenario is not trivial: mappings were removed, and preemption cut in.
          expect(a.core.p2m_log_count()).toBeGreaterThan(logBefore);
          if (preempt) expect(steps).toBeGreaterThan(1);
        }
      }
    });
  }
});
