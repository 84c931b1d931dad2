// A domain's IPA space as an SVG picture.
//
// The IPA space is cut into segments: mapped ranges (maximal runs of leaves
// with the same block size and type, see mappedRanges) and the holes between
// them. Segment widths follow a log scale of their size (a 4 KiB page stays
// visible next to a 64 GiB hole), rows wrap like text. Each row has one lane
// per block size (1G, 2M, 4K): a range sits in the lane of its block size,
// with a tick per block when it has few blocks. Holes span the lanes, grey
// and hatched. One <rect class="range"> per mapped range.

import type { MappedRange } from "./core-info.js";
import { p2mTypeName } from "./decode.js";
import { XenmmArgumentError, checkInt, checkObject } from "../api/errors.js";

export const TYPE_COLOURS: Record<number, string> = {
  1: "#2e7d32",  // ram_rw
  2: "#81c784",  // ram_ro
  3: "#c62828",  // mmio_direct_dev
  4: "#ef6c00",  // mmio_direct_nc
  5: "#f9a825",  // mmio_direct_c
  6: "#6a1b9a",  // map_foreign_rw
  7: "#ba68c8",  // map_foreign_ro
  8: "#1565c0",  // grant_map_rw
  9: "#64b5f6",  // grant_map_ro
  10: "#00838f", // iommu_map_rw
  11: "#4dd0e1", // iommu_map_ro
};
const colour = (t: number) => TYPE_COLOURS[t] ?? "#000000";

export interface SvgOptions { title?: string; ipaBits: number; width?: number }

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const hex = (v: bigint) => "0x" + v.toString(16);

export function formatPages(nr: bigint): string {
  const bytes = nr * 4096n;
  const units: Array<[bigint, string]> = [[1n << 50n, "P"], [1n << 40n, "T"], [1n << 30n, "G"], [1n << 20n, "M"], [1n << 10n, "K"]];
  for (const [u, s] of units) {
    if (bytes < u) continue;
    if (bytes % u === 0n) return `${bytes / u}${s}`;
    const v = Number(bytes) / Number(u);
    return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)}${s}`;
  }
  return `${bytes}`;
}

const log2 = (n: bigint) => { let l = 0; while (n > 1n) { n >>= 1n; l++; } return l; };

interface Segment { kind: "range" | "hole"; gfn: bigint; nr: bigint; range?: MappedRange; w: number }

export function renderIpaSvg(ranges: MappedRange[], opt: SvgOptions): string {
  if (!Array.isArray(ranges)) throw new XenmmArgumentError("ranges", "expected an array of mapped ranges", ranges);
  checkObject("options", opt);
  checkInt("options.ipaBits", opt.ipaBits, 13, 64);
  if (opt.width !== undefined) checkInt("options.width", opt.width, 300, 100000);
  let prevEnd = 0n;
  ranges.forEach((r, i) => {
    if (!r || typeof r.gfn !== "bigint" || typeof r.nr !== "bigint" || r.nr <= 0n) throw new XenmmArgumentError(`ranges[${i}]`, "expected { gfn: bigint, nr: bigint > 0, level, type, mfn, leaves }", r);
    if (r.gfn < prevEnd) throw new XenmmArgumentError(`ranges[${i}]`, "ranges must be sorted and must not overlap");
    prevEnd = r.gfn + r.nr;
  });
  if (prevEnd > 1n << BigInt(opt.ipaBits - 12)) throw new XenmmArgumentError("ranges", `extend beyond the ${opt.ipaBits}-bit IPA space`);
  const W = opt.width ?? 1400, M = 60;
  const ipaPages = 1n << BigInt(opt.ipaBits - 12);
  const segs: Segment[] = [];
  let at = 0n;
  for (const r of ranges) {
    if (r.gfn > at) segs.push({ kind: "hole", gfn: at, nr: r.gfn - at, w: 0 });
    segs.push({ kind: "range", gfn: r.gfn, nr: r.nr, range: r, w: 0 });
    at = r.gfn + r.nr;
  }
  if (at < ipaPages) segs.push({ kind: "hole", gfn: at, nr: ipaPages - at, w: 0 });
  for (const s of segs) s.w = s.kind === "range" ? 14 + 8 * log2(s.nr) : 10 + 2.5 * log2(s.nr);

  const LANE = 16, LANES = 3, LABEL = 58, ROW = LANE * LANES + LABEL + 14;
  const legendH = 64;
  // place segments
  const placed: Array<Segment & { x: number; row: number }> = [];
  let x = M, row = 0;
  for (const s of segs) {
    if (x + s.w > W - 10 && x > M) { x = M; row++; }
    placed.push({ ...s, x, row });
    x += s.w;
  }
  const rows = row + 1;
  const H = legendH + rows * ROW + 10;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`);
  out.push(`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbbbbb" stroke-width="2"/></pattern></defs>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  const title = opt.title ?? "IPA space";
  const mappedPages = ranges.reduce((a, r) => a + r.nr, 0n);
  out.push(`<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="10" y="34" font-size="11" fill="#444">${opt.ipaBits}-bit IPA, ${ranges.length} mapped ranges, ${esc(formatPages(mappedPages))} mapped; widths: log scale of size; lanes: 1G block / 2M block / 4K page; white ticks = block boundaries</text>`);
  // legend: types present (or ram_rw when empty), lanes, hole
  const types = [...new Set(ranges.map((r) => r.type))].sort((a, b) => a - b);
  let lx = 10;
  out.push(`<g class="legend" font-size="11">`);
  for (const t of types.length ? types : [1]) {
    const name = p2mTypeName(t);
    out.push(`<rect x="${lx}" y="44" width="12" height="12" fill="${colour(t)}"/><text x="${lx + 16}" y="54">${esc(name)}</text>`);
    lx += 24 + name.length * 7.2;
  }
  out.push(`<rect x="${lx}" y="44" width="12" height="12" fill="url(#hatch)" stroke="#999"/><text x="${lx + 16}" y="54">hole (unmapped)</text>`);
  out.push(`</g>`);
  for (let r = 0; r < rows; r++) {
    const y0 = legendH + r * ROW;
    out.push(`<g class="row" font-size="9" fill="#666">`);
    ["1G", "2M", "4K"].forEach((n, i) => out.push(`<text x="${M - 8}" y="${y0 + i * LANE + 11}" text-anchor="end">${n}</text>`));
    out.push(`<line x1="${M}" y1="${y0 + LANES * LANE}" x2="${W - 10}" y2="${y0 + LANES * LANE}" stroke="#ccc"/>`);
    out.push(`</g>`);
  }
  let lastRow = -1;
  const ends = [-1e9, -1e9, -1e9, -1e9];
  for (const s of placed) {
    const y0 = legendH + s.row * ROW;
    const tip = `${s.kind === "hole" ? "hole" : p2mTypeName(s.range!.type)} gfn ${hex(s.gfn)}..${hex(s.gfn + s.nr - 1n)} (${formatPages(s.nr)})`;
    if (s.kind === "hole") {
      out.push(`<rect class="hole" x="${s.x.toFixed(1)}" y="${y0}" width="${s.w.toFixed(1)}" height="${LANES * LANE}" fill="url(#hatch)" stroke="#ffffff" stroke-width="0.5"><title>${esc(tip)}</title></rect>`);
      if (s.w >= 26) out.push(`<text x="${(s.x + s.w / 2).toFixed(1)}" y="${y0 + LANE * 1.5 + 3}" font-size="8" fill="#777" text-anchor="middle">${esc(formatPages(s.nr))}</text>`);
    } else {
      const r = s.range!;
      const lane = r.level <= 1 ? 0 : r.level - 1;
      const y = y0 + lane * LANE + 1;
      out.push(`<rect class="range" data-gfn="${hex(r.gfn)}" data-pages="${r.nr}" data-level="${r.level}" data-type="${esc(p2mTypeName(r.type))}" x="${s.x.toFixed(1)}" y="${y}" width="${s.w.toFixed(1)}" height="${LANE - 2}" fill="${colour(r.type)}" stroke="#222" stroke-width="0.5"><title>${esc(tip + `, mfn ${hex(r.mfn)}, ${r.leaves} ${r.level === 3 ? "pages" : "blocks"}`)}</title></rect>`);
      if (r.leaves > 1 && r.leaves <= 64) {
        let d = "";
        for (let i = 1; i < r.leaves; i++) { const tx = s.x + (s.w * i) / r.leaves; d += `M${tx.toFixed(1)} ${y + 3}V${y + LANE - 5}`; }
        out.push(`<path class="ticks" d="${d}" stroke="#ffffff" stroke-width="0.7"/>`);
      }
      // labels: horizontal, in up to 4 staggered text rows; a label that fits in no row is
      // left out (the <title> tooltip carries the same information)
      const lbl = `${hex(r.gfn)} ${formatPages(r.nr)}`;
      const lw = lbl.length * 5 + 6;
      if (s.row !== lastRow) { lastRow = s.row; ends.fill(-1e9); }
      const slot = ends.findIndex((e) => s.x >= e);
      if (slot >= 0) {
        ends[slot] = s.x + lw;
        const ly = y0 + LANES * LANE + 12 + slot * 11;
        out.push(`<path class="leader" d="M${(s.x + 1).toFixed(1)} ${y + LANE - 2}V${ly - 8}" stroke="#999" stroke-width="0.5"/>`);
        out.push(`<text x="${(s.x + 2).toFixed(1)}" y="${ly}" font-size="8" fill="#333">${esc(lbl)}</text>`);
      }
    }
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
