// The `xenmm` command as users run it (bin/xenmm.js, what `npm start` and npx use).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const bin = join(__dirname, "../../bin/xenmm.js");
const xenmm = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 120_000 });

describe("bin/xenmm.js", () => {
  it("runs the scenario command and prints the fact sheet's outcome as JSON", () => {
    const r = xenmm("scenario", "stale-gfn", "--revision", "harden", "--json");
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    const one = Array.isArray(out) ? out[0] : out;
    expect(one.revision).toBe("harden");
    expect(one.steps.map((s: { rc: number }) => s.rc)).toEqual([0, 0, 0, -84]);
    expect(one.foreignMappingIntact).toBe(true);
    expect(one.frameTypeInfo).toBe("0x8000000000000001");
  });

  it("refuses an unknown command with exit code 2 and no stack trace", () => {
    const r = xenmm("frobnicate");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("prints usage for every command's --help", () => {
    for (const cmd of ["demo", "scenario", "run", "fuzz", "dump", "s2walk"]) {
      const r = xenmm(cmd, "--help");
      expect(r.status, cmd).toBe(0);
      expect(r.stdout.toLowerCase(), cmd).toMatch(/usage/);
    }
  });
});
