import { describe, expect, it } from "vitest";
import { runScenario, G1, G2 } from "../../src/scenario/index.js";
import { REVISIONS, type Arch, type Revision } from "../../src/machine/api.js";

const ARCHES: Arch[] = ["arm64", "arm32"];
const old = (r: Revision) => r === "pre" || r === "harden";
const h = (v: bigint) => "0x" + v.toString(16).toUpperCase();

// FS 2.3 / 3.10 / 9.3 type_info words of a SHARE_rw xenheap frame.
function words(arch: Arch) {
  const w = arch === "arm64" ? 64n : 32n;
  const all = (1n << w) - 1n;
  return {
    pre: h(1n << (w - 1n) | 1n),                              // PGT_writable_page | 1
    unmapped: h((1n << (w - 1n)) | (1n << (w - 3n)) | (all >> 3n)), // writable | count 1 | INVALID gfn
    at: (g: bigint) => h((1n << (w - 1n)) | (1n << (w - 3n)) | g),
  };
}

describe("stale-gfn scenario (FS 9)", () => {
  for (const arch of ARCHES) for (const rev of REVISIONS) {
    const W = words(arch);
    it(`foreign variant at ${rev} on ${arch}`, async () => {
      const r = await runScenario("stale-gfn", { revision: rev, arch });
      const last = rev === "harden" ? -84 : 0;
      expect(r.steps.map((s) => s.rc)).toEqual([0, 0, 0, last]);
      expect(r.foreignMappingIntact).toBe(rev !== "pre");
      expect(r.crash).toBeNull();
      if (old(rev)) {
        expect(r.typeInfoTrace).toEqual([W.pre, W.pre, W.pre, W.pre]);
        expect(r.frameTypeInfo).toBe(W.pre);
        expect(r.reportedGfn).toBe(h(rev === "pre" ? G2 : G1));
      } else {
        expect(r.typeInfoTrace).toEqual([W.at(G1), W.unmapped, W.unmapped, W.at(G2)]);
        expect(r.reportedGfn).toBe(h(G2));
      }
      if (arch === "arm64" && rev === "gfn") {
        expect(r.typeInfoTrace[0]).toBe("0xA000000000050000");
        expect(r.typeInfoTrace[1]).toBe("0xBFFFFFFFFFFFFFFF");
      }
      if (arch === "arm64" && rev === "pre") expect(r.frameTypeInfo).toBe("0x8000000000000001");
      expect(r.p2m.G1.type).toBe(rev === "pre" ? "invalid" : "map_foreign_rw");
      expect(r.p2m.G2.type).toBe(rev === "harden" ? "invalid" : "ram_rw");
    });

    it(`RAM-reuse variant at ${rev} on ${arch}`, async () => {
      const r = await runScenario("stale-gfn", { revision: rev, arch, variant: "ram-reuse" });
      expect(r.steps.map((s) => s.rc)).toEqual([0, 0, 1, rev === "harden" ? -84 : 0]);
      expect(r.foreignMappingIntact).toBe(rev !== "pre");
      expect(r.p2m.G1.type).toBe(rev === "pre" ? "invalid" : "ram_rw");
    });

    it(`frame-still-mapped variant at ${rev} on ${arch}`, async () => {
      const r = await runScenario("stale-gfn", { revision: rev, arch, variant: "still-mapped" });
      expect(r.steps.map((s) => s.rc)).toEqual([0, old(rev) ? 0 : -16]);
      expect(r.p2m.G1.type).toBe(old(rev) ? "invalid" : "ram_rw");
      expect(r.p2m.G2.type).toBe(old(rev) ? "ram_rw" : "invalid");
      expect(r.frameTypeInfo).toBe(old(rev) ? W.pre : W.at(G1));
    });

    it(`second shared_info mapping at ${rev} on ${arch}`, async () => {
      const r = await runScenario("stale-gfn", { revision: rev, arch, variant: "shared-info-twice" });
      expect(r.steps.map((s) => s.rc)).toEqual([0, old(rev) ? 0 : -16]);
      expect(r.p2m.G1.type).toBe("ram_rw");
      expect(r.p2m.G2.type).toBe(old(rev) ? "ram_rw" : "invalid");
      if (old(rev)) expect(r.p2m.G1.mfn).toBe(r.p2m.G2.mfn);
    });

    it(`failed-insert poison at ${rev} on ${arch}`, async () => {
      const r = await runScenario("stale-gfn", { revision: rev, arch, variant: "poison" });
      const bad = arch === "arm64" ? 1n << 52n : 1n << 28n;
      if (old(rev)) {
        expect(r.steps.map((s) => s.rc)).toEqual([0, -22, -22]);
        expect(r.reportedGfn).toBe(h(bad));
        expect(r.p2m.G1.type).toBe("invalid"); // old GFN removed before the failed insert
      } else {
        expect(r.steps.map((s) => s.rc)).toEqual([0, -16, -16]);
        expect(r.reportedGfn).toBe(h(G1));
        expect(r.p2m.G1.type).toBe("ram_rw");
      }
    });
  }
});
