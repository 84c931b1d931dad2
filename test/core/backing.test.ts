// The mfn -> 4 KiB backing table (assembly/mem/backing.ts): open addressing with
// backward-shift deletion must keep every remaining frame findable.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { newCore, ARM64 } from "./helpers.js";

describe("backing table", () => {
  it("agrees with a set model under any get/release sequence, through growth", async () => {
    const c = await newCore(ARM64, "gfn");
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 4000 }),
      async (ops) => {
        const model = new Set<number>();
        for (const m of [...Array(3001).keys()]) c.backing_release(BigInt(m));
        for (const [get, m] of ops) {
          if (get) {
            const p = c.backing_get(BigInt(m));
            expect(p % 4096).toBe(0);
            model.add(m);
          } else {
            c.backing_release(BigInt(m));
            model.delete(m);
          }
        }
        expect(c.backing_count()).toBe(model.size);
        expect(c.backing_check()).toBe(true);
        for (let m = 0; m <= 3000; m++) expect(c.backing_lookup(BigInt(m)) !== 0, `mfn ${m}`).toBe(model.has(m));
      }), { numRuns: 25 });
  });

  it("hands a released page out again zeroed", async () => {
    const c = await newCore(ARM64, "gfn");
    const p = c.backing_get(5n);
    new Uint8Array(c.memory.buffer, p, 4096).fill(0xAB);
    c.backing_release(5n);
    const q = c.backing_get(6n);
    expect(q).toBe(p);
    expect(new Uint8Array(c.memory.buffer, q, 4096).every((b) => b === 0)).toBe(true);
  });
});
