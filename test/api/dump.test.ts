import { describe, it, expect, beforeAll, afterAll, vi } from "vitest";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dumpMain, dumpText, domainRanges, domainSvg } from "../../src/inspect/dump.js";
import { runDocumentMachine } from "../../src/inspect/run-machine.js";
import { snapshotMachine } from "../../src/snapshot/index.js";
import { renderIpaSvg } from "../../src/inspect/svg.js";
import type { MappedRange } from "../../src/inspect/core-info.js";

const SELF = 32752;
const RUN = {
  machine: { ramFrames: 32768 },
  domains: [{ domid: 1, ramPages: 300 }, { domid: 2, ramPages: 8, privileged: true }],
  ops: [
    { op: "GNTTABOP_setup_table", caller: 1, dom: SELF, nr_frames: 2 },
    { op: "XENMEM_add_to_physmap", caller: 1, domid: SELF, space: 1, idx: 0, gpfn: "0x38000" },
    { op: "XENMEM_add_to_physmap", caller: 1, domid: SELF, space: 1, idx: 1, gpfn: "0x38001" },
    { op: "XENMEM_populate_physmap", caller: 1, domid: SELF, extent_start: ["0x50000"], extent_order: 9 },
  ],
};

/** A small XML well-formedness checker: tags nest, attributes are quoted and unique, entities are known. */
export function checkXml(s: string): { elements: Array<{ name: string; attrs: Record<string, string> }> } {
  const elements: Array<{ name: string; attrs: Record<string, string> }> = [];
  const stack: string[] = [];
  let i = 0;
  const fail = (why: string): never => { throw new Error(`XML: ${why} at offset ${i}: ${JSON.stringify(s.slice(i, i + 40))}`); };
  const text = (t: string) => {
    if (/[<]/.test(t)) fail("raw <");
    for (const m of t.matchAll(/&([^;\s]*);?/g)) if (!/^(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+)$/.test(m[1]) || !m[0].endsWith(";")) fail(`bad entity ${m[0]}`);
  };
  if (s.startsWith("<?xml")) { i = s.indexOf("?>") + 2; if (i < 2) fail("unterminated declaration"); }
  while (i < s.length) {
    const lt = s.indexOf("<", i);
    if (lt < 0) { text(s.slice(i)); if (s.slice(i).trim()) fail("text after root"); break; }
    text(s.slice(i, lt));
    if (stack.length === 0 && elements.length > 0 && s.slice(i, lt).trim()) fail("text outside root");
    i = lt;
    const gt = s.indexOf(">", i);
    if (gt < 0) fail("unterminated tag");
    const tag = s.slice(i + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) fail(`mismatched </${name}>`);
    } else {
      const self = tag.endsWith("/");
      const body = self ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*"[^"<]*")*)\s*$/.exec(body);
      if (!m) fail(`bad tag <${tag}>`);
      if (stack.length === 0 && elements.length > 0) fail("second root element");
      const attrs: Record<string, string> = {};
      for (const a of m![2].matchAll(/([A-Za-z_][\w:.-]*)\s*=\s*"([^"]*)"/g)) {
        if (a[1] in attrs) fail(`duplicate attribute ${a[1]}`);
        text(a[2]);
        attrs[a[1]] = a[2];
      }
      elements.push({ name: m![1], attrs });
      if (!self) stack.push(m![1]);
    }
    i = gt + 1;
  }
  if (stack.length) fail(`unclosed <${stack.at(-1)}>`);
  if (!elements.length) fail("no root element");
  return { elements };
}

let dir = "";
async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "", err = "";
  const w = vi.spyOn(process.stdout, "write").mockImplementation((c: any) => { out += String(c); return true; });
  const l = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => { out += a.join(" ") + "\n"; });
  const e = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => { err += a.join(" ") + "\n"; });
  try { return { code: await dumpMain(argv), out, err }; } finally { w.mockRestore(); l.mockRestore(); e.mockRestore(); }
}

describe("xenmm dump", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "xenmm-dump-"));
    writeFileSync(join(dir, "run.json"), JSON.stringify(RUN));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("dumps a run document: P2M tree, grant frames with GFNs, page_info flags", async () => {
    const r = await capture([join(dir, "run.json")]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^machine: arm64 head/);
    expect(r.out).toMatch(/domain 1 \(slot \d+\)/);
    expect(r.out).toMatch(/domain 2 \(slot \d+\)/);
    expect(r.out).toMatch(/L3\[0\.\.255\] 256 x 0x[0-9a-f]{16}\.\. page mfn=0x[0-9a-f]+\.\.0x[0-9a-f]+ p2m_ram_rw/); // collapsed run
    expect(r.out).toMatch(/L2\[128\] 0x[0-9a-f]{16} block mfn=0x[0-9a-f]+ p2m_ram_rw .* gfn 0x50000 \(2M\)/);
    expect(r.out).toMatch(/shared\[0\] mfn 0x[0-9a-f]+ gfn 0x38000/);
    expect(r.out).toMatch(/shared\[1\] mfn 0x[0-9a-f]+ gfn 0x38001/);
    expect(r.out).toMatch(/type_info 0xa000000000038000 \[PGT_writable_page count=1 gfn=0x38000\]/);
    expect(r.out).toMatch(/\[PGC_allocated PGC_xen_heap PGC_state_inuse count=1\]/);
    expect(r.out).toMatch(/pages owned: \d+/);
  });

  it("--domain restricts; a snapshot dumps the same as the run it came from", async () => {
    const m = await runDocumentMachine(JSON.stringify(RUN));
    writeFileSync(join(dir, "m.snap"), snapshotMachine(m));
    const a = await capture([join(dir, "run.json"), "--domain", "2"]);
    const b = await capture([join(dir, "m.snap"), "--domain=2"]);
    expect(a.code).toBe(0);
    expect(b.out).toBe(a.out);
    expect(a.out).not.toMatch(/domain 1 /);
    expect(dumpText(m)).toBe((await capture([join(dir, "m.snap")])).out);
  });

  it("--svg writes well-formed XML with one element per mapped range", async () => {
    const svg = join(dir, "d1.svg");
    const r = await capture([join(dir, "run.json"), "--svg", svg]);
    expect(r.code).toBe(0);
    const text = readFileSync(svg, "utf8");
    const { elements } = checkXml(text);
    expect(elements[0].name).toBe("svg");
    const m = await runDocumentMachine(JSON.stringify(RUN));
    const ranges = domainRanges(m, m.domain(1)!);
    const rects = elements.filter((e) => e.name === "rect" && e.attrs.class === "range");
    expect(rects.length).toBe(ranges.length);
    expect(rects.map((e) => e.attrs["data-gfn"])).toEqual(ranges.map((x) => "0x" + x.gfn.toString(16)));
    expect(rects.some((e) => e.attrs["data-level"] === "2")).toBe(true); // the 2M block is in its own lane
    expect(elements.filter((e) => e.name === "rect" && e.attrs.class === "hole").length).toBeGreaterThan(0);
    expect(domainSvg(m, 1)).toBe(text);
  });

  it("renders any set of ranges as well-formed XML", () => {
    const rs: MappedRange[] = [];
    let g = 0n;
    for (let i = 0; i < 200; i++) {
      g += BigInt((i * 7919) % 5000 + 1);
      const level = [1, 2, 3][i % 3];
      const nr = (1n << BigInt((3 - level) * 9)) * BigInt(i % 4 + 1);
      g = (g + (1n << BigInt((3 - level) * 9)) - 1n) & ~((1n << BigInt((3 - level) * 9)) - 1n);
      rs.push({ gfn: g, nr, level, type: (i % 11) + 1, mfn: BigInt(i), leaves: i % 4 + 1 });
      g += nr;
    }
    const { elements } = checkXml(renderIpaSvg(rs, { ipaBits: 48, title: `a <title> & "quotes"` }));
    expect(elements.filter((e) => e.attrs.class === "range").length).toBe(200);
    expect(() => checkXml("<svg><rect></svg>")).toThrow(/mismatched/);
    expect(() => checkXml('<svg a="1" a="2"/>')).toThrow(/duplicate/);
  });

  it("inspection functions validate their arguments", async () => {
    const { XenmmArgumentError } = await import("../../src/api/errors.js");
    const { p2mTree } = await import("../../src/inspect/core-info.js");
    const m = await runDocumentMachine(JSON.stringify(RUN));
    expect(() => renderIpaSvg("x" as any, { ipaBits: 48 })).toThrow(XenmmArgumentError);
    expect(() => renderIpaSvg([], { ipaBits: 7 })).toThrow(/options.ipaBits/);
    const r = { gfn: 10n, nr: 4n, level: 3, type: 1, mfn: 0n, leaves: 4 };
    expect(() => renderIpaSvg([r, { ...r, gfn: 12n }], { ipaBits: 48 })).toThrow(/ranges\[1\].*overlap/);
    expect(() => renderIpaSvg([{ ...r, gfn: 1n << 40n }], { ipaBits: 48 })).toThrow(/beyond/);
    expect(() => p2mTree(m.core as any, 0)).toThrow(/slot/);
    expect(() => p2mTree({} as any, 1)).toThrow(/core/);
    expect(() => dumpText({} as any)).toThrow(/machine/);
    expect(() => domainSvg(m, 1.5)).toThrow(/domid/);
  });

  it("one-line errors and exit codes", async () => {
    expect((await capture(["--help"])).code).toBe(0);
    expect((await capture(["--help"])).out).toMatch(/^usage: xenmm dump/);
    const missing = await capture([join(dir, "nope.json")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^xenmm dump: .*nope\.json: cannot read: ENOENT\n$/);
    expect((await capture([])).code).toBe(2);
    expect((await capture([join(dir, "run.json"), "--frobnicate"])).code).toBe(2);
    const dom = await capture([join(dir, "run.json"), "--domain", "9"]);
    expect(dom.code).toBe(2);
    expect(dom.err.trim().split("\n").length).toBe(1);
    writeFileSync(join(dir, "bad.json"), '{"machine": {"arch": "x86"}}');
    const bad = await capture([join(dir, "bad.json")]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/machine\.arch/);
    const snap = readFileSync(join(dir, "m.snap"));
    writeFileSync(join(dir, "cut.snap"), snap.subarray(0, snap.length - 10));
    const cut = await capture([join(dir, "cut.snap")]);
    expect(cut.code).toBe(1);
    expect(cut.err).toMatch(/snapshot refused \(truncated\)/);
  });
});
