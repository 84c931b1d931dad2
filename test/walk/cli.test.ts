import { describe, it, expect, vi, afterEach } from "vitest";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { s2walkMain } from "../../src/cli/s2walk.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = join(root, "test/fixtures/s2walk-sample.json");
const expected = JSON.parse(readFileSync(join(root, "test/fixtures/s2walk-sample.expected.json"), "utf8"));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await s2walkMain(argv);
    return { code, out, err };
  } finally {
    vi.restoreAllMocks();
  }
}

function tmpInput(doc: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "s2walk-"));
  const f = join(dir, "in.json");
  writeFileSync(f, typeof doc === "string" ? doc : JSON.stringify(doc));
  return f;
}

const good = { t0sz: 16, sl0: 2, ps: 5, root: "0x40000000", pages: [], probes: [{ ipa: "0x0", access: "r" }] };

describe("xenmm s2walk", () => {
  afterEach(() => vi.restoreAllMocks());

  it("sample file produces the expected JSON", async () => {
    const r = await run([fixture]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(expected);
  });

  it("--help prints usage and exits 0", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: xenmm s2walk FILE\.json/);
  });

  const bad: [string, unknown, RegExp][] = [
    ["not JSON", "{ t0sz: 16", /invalid JSON/],
    ["not an object", [1, 2], /input: expected a JSON object/],
    ["t0sz missing", { ...good, t0sz: undefined }, /^xenmm s2walk: t0sz: /],
    ["t0sz out of range", { ...good, t0sz: 64 }, /t0sz: expected an integer in 0\.\.63/],
    ["sl0 not an integer", { ...good, sl0: 1.5 }, /sl0: /],
    ["ps out of range", { ...good, ps: 8 }, /ps: /],
    ["parange not a PA size", { ...good, parange: 47 }, /parange: /],
    ["root not hex", { ...good, root: "1234" }, /root: /],
    ["root wider than 64 bits", { ...good, root: "0x10000000000000000" }, /root: /],
    ["page pa misaligned", { ...good, pages: [{ pa: "0x1008", entries: {} }] }, /pages\[0\]\.pa: not 4 KiB aligned/],
    ["entry index out of range", { ...good, pages: [{ pa: "0x1000", entries: { "512": "0x3" } }] }, /pages\[0\]\.entries\["512"\]/],
    ["entry value not hex", { ...good, pages: [{ pa: "0x1000", entries: { "1": 3 } }] }, /pages\[0\]\.entries\["1"\]/],
    ["probes missing", { ...good, probes: undefined }, /probes: expected an array/],
    ["probe access", { ...good, probes: [{ ipa: "0x0", access: "rw" }] }, /probes\[0\]\.access/],
    ["probe ipa", { ...good, probes: [{ ipa: 5, access: "r" }] }, /probes\[0\]\.ipa/],
  ];
  for (const [name, doc, msg] of bad) {
    it(`malformed input (${name}) -> exit 2, one-line error naming the field`, async () => {
      const r = await run([tmpInput(doc)]);
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err).toMatch(msg);
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
      expect(r.err).not.toMatch(/\n\s+at /);
    });
  }

  it("missing file and wrong arity -> exit 2", async () => {
    expect((await run(["/nonexistent/x.json"])).code).toBe(2);
    expect((await run([])).code).toBe(2);
    expect((await run([fixture, fixture])).code).toBe(2);
  });

  it("as a process: output on stdout, malformed input gives exit code 2 and no stack trace", () => {
    const tsx = join(root, "node_modules/.bin/tsx");
    const cli = join(root, "src/cli/s2walk.ts");
    const okRun = spawnSync(tsx, [cli, fixture], { encoding: "utf8" });
    expect(okRun.status).toBe(0);
    expect(JSON.parse(okRun.stdout)).toEqual(expected);
    const badRun = spawnSync(tsx, [cli, tmpInput({ ...good, sl0: "2" })], { encoding: "utf8" });
    expect(badRun.status).toBe(2);
    expect(badRun.stdout).toBe("");
    expect(badRun.stderr).toBe("xenmm s2walk: sl0: expected an integer in 0..3\n");
  }, 30000);
});
