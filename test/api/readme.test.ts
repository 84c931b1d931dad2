// The README's library example runs as written (against the sources) and prints what it says.
import { describe, it, expect, vi } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as xenmm from "../../src/index.js";

describe("README library example", () => {
  it("runs and prints the values its comments promise", async () => {
    const readme = readFileSync(join(__dirname, "../../README.md"), "utf8");
    const block = /## Library\s+```ts\n([\s\S]*?)```/.exec(readme);
    expect(block).not.toBeNull();
    const body = block![1].replace(/^import .* from "xenmm";\n/m, "");
    const lines: unknown[][] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => { lines.push(a); });
    try {
      const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
      // Strip TypeScript-only syntax the example does not use; it is plain JS apart from bigint literals.
      await new AsyncFunction(...Object.keys(xenmm), body)(...Object.values(xenmm));
    } finally {
      log.mockRestore();
    }
    expect(lines[0]).toEqual([0]);
    expect(lines[1]).toEqual([1, "a000000000050000"]);
    expect(lines[2]).toEqual([0x50000n]);
    expect(lines[3][0]).toBe("p2m");
    expect(lines[3][1]).toBe(0x50000n);
    // The old entry is a 4 KiB p2m_ram_rw leaf (fact sheet 4.4): attribute bits exact, base non-zero.
    const old = lines[3][2] as bigint;
    expect(old & ~0x0000fffffffff000n).toBe(0x00800000000007ffn);
    expect(old >> 12n).not.toBe(0n);
    expect(lines[3][3]).toBe(0n);
    expect(lines[lines.length - 1]).toEqual([true]);
  });
});
