// The snapshot container.
//
//   offset  size  field
//   0       8     magic "XENMMSNP"
//   8       4     format version (u32 LE) = SNAPSHOT_FORMAT_VERSION
//   12      4     header length in bytes (u32) = 64
//   16      4     arch (0 arm64, 1 arm32)
//   20      4     revision (0 pre, 1 harden, 2 gfn, 3 head)
//   24      4     section count (u32)
//   28      4     flags (0)
//   32      24    xenmm version (ASCII, NUL padded)
//   56      8     total length of the snapshot in bytes (u64), trailer included
//   64      16*n  section table: { u32 kind (FourCC), u32 reserved, u64 length }
//   ...           section payloads, in table order, each padded to 8 bytes
//   end-4   4     CRC-32 (IEEE, zlib's) of every byte before it
//
// Sections: "CORE" = core linear memory [0, mem_top); "HOST" = host-layer
// state as UTF-8 JSON (bigints as {"$b": "decimal"}).
// Parsing checks, in order: length >= header, magic, version, total length
// (truncation), CRC, then section table consistency. Nothing is loaded until
// all checks pass.

import * as zlib from "node:zlib";
import { SnapshotFormatError } from "../api/errors.js";

export const SNAPSHOT_MAGIC = "XENMMSNP";
export const SNAPSHOT_FORMAT_VERSION = 1;
export const HEADER_SIZE = 64;
const SECTION_ENTRY = 16;

export const SECTION_CORE = fourcc("CORE");
export const SECTION_HOST = fourcc("HOST");

export function fourcc(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0;
}
export function fourccName(n: number): string {
  return String.fromCharCode(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24);
}

// ---- CRC-32 ---------------------------------------------------------------

let table: Uint32Array | null = null;
function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
}
/** CRC-32 (IEEE 802.3, as zlib). Uses node:zlib's native crc32 when present. */
export function crc32(data: Uint8Array, prev = 0): number {
  const native = (zlib as any).crc32 as ((d: Uint8Array, v?: number) => number) | undefined;
  if (native) return native(data, prev) >>> 0;
  const t = crcTable();
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---- write / parse ----------------------------------------------------------

export interface SnapshotHeader {
  formatVersion: number;
  arch: number;
  revision: number;
  xenmmVersion: string;
  totalLength: number;
}
/** A section's payload, possibly in pieces (written back to back, no intermediate copy). */
export interface Section { kind: number; bytes: Uint8Array | Uint8Array[] }
const secLen = (s: Section) => (Array.isArray(s.bytes) ? s.bytes.reduce((a, b) => a + b.length, 0) : s.bytes.length);
export interface ParsedSnapshot { header: SnapshotHeader; sections: Map<string, Uint8Array> }

const pad8 = (n: number) => (n + 7) & ~7;

export function writeSnapshot(h: { arch: number; revision: number; xenmmVersion: string }, sections: Section[]): Uint8Array {
  const tableEnd = HEADER_SIZE + SECTION_ENTRY * sections.length;
  let total = tableEnd;
  for (const s of sections) total += pad8(secLen(s));
  total += 4;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = SNAPSHOT_MAGIC.charCodeAt(i);
  dv.setUint32(8, SNAPSHOT_FORMAT_VERSION, true);
  dv.setUint32(12, HEADER_SIZE, true);
  dv.setUint32(16, h.arch, true);
  dv.setUint32(20, h.revision, true);
  dv.setUint32(24, sections.length, true);
  dv.setUint32(28, 0, true);
  const ver = new TextEncoder().encode(h.xenmmVersion.slice(0, 24));
  out.set(ver, 32);
  dv.setBigUint64(56, BigInt(total), true);
  let off = tableEnd;
  sections.forEach((s, i) => {
    dv.setUint32(HEADER_SIZE + i * SECTION_ENTRY, s.kind, true);
    const len = secLen(s);
    dv.setBigUint64(HEADER_SIZE + i * SECTION_ENTRY + 8, BigInt(len), true);
    let at = off;
    for (const p of Array.isArray(s.bytes) ? s.bytes : [s.bytes]) { out.set(p, at); at += p.length; }
    off += pad8(len);
  });
  dv.setUint32(total - 4, crc32(out.subarray(0, total - 4)), true);
  return out;
}

/** Validate and split a snapshot. Throws SnapshotFormatError; never returns a partial result. */
export function parseSnapshot(bytes: Uint8Array): ParsedSnapshot {
  if (bytes.length < 8) throw new SnapshotFormatError(bytes.length === 0 ? "truncated" : "magic", `only ${bytes.length} bytes`);
  for (let i = 0; i < 8; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC.charCodeAt(i)) throw new SnapshotFormatError("magic", "not a xenmm snapshot (bad magic)");
  }
  if (bytes.length < HEADER_SIZE + 4) throw new SnapshotFormatError("truncated", `${bytes.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const formatVersion = dv.getUint32(8, true);
  if (formatVersion !== SNAPSHOT_FORMAT_VERSION)
    throw new SnapshotFormatError("version", `format version ${formatVersion}, this xenmm reads version ${SNAPSHOT_FORMAT_VERSION}`);
  const hdrLen = dv.getUint32(12, true);
  if (hdrLen !== HEADER_SIZE) throw new SnapshotFormatError("layout", `header length ${hdrLen}, expected ${HEADER_SIZE}`);
  const total = dv.getBigUint64(56, true);
  if (total > BigInt(bytes.length)) throw new SnapshotFormatError("truncated", `header says ${total} bytes, got ${bytes.length}`);
  if (total < BigInt(bytes.length)) throw new SnapshotFormatError("layout", `${BigInt(bytes.length) - total} trailing bytes after the snapshot`);
  const n = bytes.length;
  const want = dv.getUint32(n - 4, true);
  const got = crc32(bytes.subarray(0, n - 4));
  if (want !== got) throw new SnapshotFormatError("checksum", `CRC-32 mismatch (stored 0x${want.toString(16).padStart(8, "0")}, computed 0x${got.toString(16).padStart(8, "0")})`);
  const count = dv.getUint32(24, true);
  const tableEnd = HEADER_SIZE + SECTION_ENTRY * count;
  if (count > 64 || tableEnd > n - 4) throw new SnapshotFormatError("layout", `bad section count ${count}`);
  const sections = new Map<string, Uint8Array>();
  let off = tableEnd;
  for (let i = 0; i < count; i++) {
    const kind = fourccName(dv.getUint32(HEADER_SIZE + i * SECTION_ENTRY, true));
    const len = dv.getBigUint64(HEADER_SIZE + i * SECTION_ENTRY + 8, true);
    if (BigInt(off) + len > BigInt(n - 4)) throw new SnapshotFormatError("layout", `section ${kind} runs past the end`);
    if (sections.has(kind)) throw new SnapshotFormatError("layout", `duplicate section ${kind}`);
    sections.set(kind, bytes.subarray(off, off + Number(len)));
    off += pad8(Number(len));
  }
  if (off !== n - 4) throw new SnapshotFormatError("layout", `section table covers ${off} bytes, payload ends at ${n - 4}`);
  const verBytes = bytes.subarray(32, 56);
  const z = verBytes.indexOf(0);
  const xenmmVersion = new TextDecoder().decode(z < 0 ? verBytes : verBytes.subarray(0, z));
  return {
    header: { formatVersion, arch: dv.getUint32(16, true), revision: dv.getUint32(20, true), xenmmVersion, totalLength: n },
    sections,
  };
}

// ---- JSON with bigints --------------------------------------------------------

/** JSON.stringify that keeps bigints ({"$b": "decimal"}), Maps and typed arrays. Deterministic key order as inserted. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, function (_k, x) {
    if (typeof x === "bigint") return { $b: x.toString() };
    if (x instanceof Map) return { $map: [...x.entries()] };
    if (x instanceof Set) return { $set: [...x.values()] };
    if (x instanceof Uint8Array) return { $u8: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64") };
    return x;
  });
}
export function fromJson(s: string): unknown {
  return JSON.parse(s, (_k, x) => {
    if (x && typeof x === "object" && !Array.isArray(x)) {
      const keys = Object.keys(x);
      if (keys.length === 1) {
        if (keys[0] === "$b" && typeof x.$b === "string") return BigInt(x.$b);
        if (keys[0] === "$map" && Array.isArray(x.$map)) return new Map(x.$map);
        if (keys[0] === "$set" && Array.isArray(x.$set)) return new Set(x.$set);
        if (keys[0] === "$u8" && typeof x.$u8 === "string") return new Uint8Array(Buffer.from(x.$u8, "base64"));
      }
    }
    return x;
  });
}
