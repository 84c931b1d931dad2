// Plain-TypeScript reference stage-2 walker (VMSAv8-64, 4 KiB granule, DS = 0,
// no FEAT_TTST / FEAT_XNX / HA), written independently of
// assembly/walk/walker.ts from the rules of fact sheet §10, for differential
// tests and the benchmark. Same decisions as the Wasm walker (see its header):
// misaligned root bits are ignored, contiguous bit honoured, PS = 7 → PARange,
// exec checks XN only, access values other than 1/2 are reads.
//
// Fairness: it reads the very same bytes as the Wasm walker — the Wasm linear
// memory — and finds a frame's page by re-implementing the core's backing
// hash table lookup (assembly/mem/backing.ts: Fibonacci hash, linear probing,
// 16-byte entries {u64 mfn + 1, u32 page}) over that memory. No JS-side index
// (Map) is built, so both walkers do the same work per descriptor.
//
// Numbers: every address a valid walk handles is < 2^48, so it is carried as a
// double (exact up to 2^53); descriptors are read as two u32 halves. Double
// `%` is avoided on the hot path (V8 compiles it to an fmod call).

import { decodeNumberResult, type WalkResult } from "./fault.js";
import type { WalkConfig } from "./wasm-walker.js";

const H_BACKING = 52;
const H_BACKING_CAP = 56;

const P32 = 4294967296;
const PS_BITS = [32, 36, 40, 42, 44, 48, 52];

// Fault results as numbers: -1 - DFSC.
const F_TRANS = (level: number) => -1 - (0x04 | level);
const F_ASIZE = (level: number) => -1 - (0x00 | level);
const F_AF = (level: number) => -1 - (0x08 | level);
const F_PERM = (level: number) => -1 - (0x0c | level);

/** Bits [63:32] of the low 64 bits of (hi:lo) * 0x9E3779B97F4A7C15. */
function backingHash(lo: number, hi: number): number {
  const KLO = 0x7f4a7c15;
  const KHI = 0x9e3779b9;
  // high 32 bits of lo * KLO (unsigned 32x32 -> 64)
  const a0 = lo & 0xffff, a1 = lo >>> 16;
  const b0 = KLO & 0xffff, b1 = KLO >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const mulhi = p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 65536);
  return (mulhi + Math.imul(lo, KHI) + Math.imul(hi, KLO)) >>> 0;
}

export interface Geometry {
  /** 0 valid, 1 invalid config (level-0 translation fault), 2 root address-size fault. */
  status: number;
  startLevel: number;
  inputBits: number;
  outputBits: number;
  /** Root table base after ignoring the RES0 low bits. */
  base: number;
  /** Number of entries of the start-level table (2..8192, concatenation included). */
  startEntries: number;
  /** 2^outputBits. */
  oaLimit: number;
  /** Bytes mapped by one start-level entry. */
  startSize: number;
}

/** Walk geometry from the VTCR/VTTBR fields (FS §10.1). */
export function s2Geometry(c: WalkConfig): Geometry {
  const t0sz = c.t0sz & 63;
  const sl0 = c.sl0 & 3;
  const ps = c.ps & 7;
  const parange = c.parange === undefined || c.parange === 0 ? 48 : c.parange;
  const inputBits = 64 - t0sz;
  let psBits = ps < PS_BITS.length ? PS_BITS[ps] : parange;
  if (psBits > parange) psBits = parange;
  const outputBits = Math.min(psBits, 48);
  const g: Geometry = { status: 0, startLevel: 0, inputBits, outputBits, base: 0, startEntries: 0, oaLimit: 2 ** outputBits, startSize: 0 };
  if (sl0 === 3) {
    g.status = 1;
    return g;
  }
  const level = [2, 1, 0][sl0];
  g.startLevel = level;
  const ranges: Record<number, [number, number]> = { 0: [40, 48], 1: [31, 43], 2: [22, 34] };
  const [min, max] = ranges[level];
  if (inputBits < min || inputBits > max || (level === 0 && parange < 44)) {
    g.status = 1;
    return g;
  }
  const shift = 12 + 9 * (3 - level);
  g.startSize = 2 ** shift;
  g.startEntries = 2 ** (inputBits - shift);
  const tableBytes = 8 * g.startEntries;
  const root = BigInt.asUintN(64, c.root);
  if (root >> BigInt(outputBits) !== 0n) {
    g.status = 2;
    return g;
  }
  g.base = Number(root) - (Number(root) % tableBytes);
  return g;
}

export class ReferenceWalker {
  private u32!: Uint32Array;
  private buf: ArrayBuffer | null = null;
  private g: Geometry = s2Geometry({ t0sz: 0, sl0: 3, ps: 0, root: 0n });

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly hdr: number,
  ) {}

  configure(c: WalkConfig): number {
    this.g = s2Geometry(c);
    return this.g.status;
  }

  get geometry(): Geometry {
    return this.g;
  }

  /**
   * Re-create the memory view if linear memory grew. walk() and walkBatch()
   * do it themselves; call it before walkNum() after anything that may have
   * grown the memory (reading Memory.buffer costs more than a whole walk).
   */
  sync(): void {
    const b = this.memory.buffer;
    if (b !== this.buf) {
      this.buf = b;
      this.u32 = new Uint32Array(b);
    }
  }

  /** Word index (into u32 view) of the descriptor at pa, or -1 if the frame has no backing. */
  private descIndex(u32: Uint32Array, pa: number): number {
    const mfn = Math.floor(pa / 4096);
    const mlo = mfn >>> 0;
    const mhi = Math.floor(mfn / P32);
    const key = mfn + 1;
    const klo = key >>> 0;
    const khi = Math.floor(key / P32);
    const h = this.hdr >>> 2;
    const tab = u32[h + (H_BACKING >>> 2)];
    const mask = (u32[h + (H_BACKING_CAP >>> 2)] - 1) >>> 0;
    let i = backingHash(mlo, mhi) & mask;
    for (;;) {
      const e = (tab + i * 16) >>> 2;
      const elo = u32[e], ehi = u32[e + 1];
      if (elo === klo && ehi === khi) return (u32[e + 2] + (pa & 0xfff)) >>> 2; // ToInt32 is exact mod 2^32
      if (elo === 0 && ehi === 0) return -1;
      i = (i + 1) & mask;
    }
  }

  /**
   * Fast path: IPA as two u32 halves. Returns the PA (>= 0) or -1 - DFSC.
   * Uses the view of the last sync().
   */
  walkNum(ipaLo: number, ipaHi: number, access: number): number {
    const g = this.g;
    if (g.status === 1) return F_TRANS(0);
    const ia = g.inputBits;
    const inRange = ia >= 32 ? ipaHi >>> (ia - 32) === 0 : ipaHi === 0 && ipaLo >>> ia === 0;
    if (!inRange) return F_TRANS(0);
    if (g.status === 2) return F_ASIZE(0);
    const u32 = this.u32;
    const ipa = (ipaHi >>> 0) * P32 + (ipaLo >>> 0);
    const oaLimit = g.oaLimit;
    let level = g.startLevel;
    let size = g.startSize; // bytes mapped by one entry at `level`
    let addr = g.base + Math.floor(ipa / size) * 8; // start level: all bits up to ia
    for (;;) {
      const w = this.descIndex(u32, addr);
      const lo = w < 0 ? 0 : u32[w];
      const hi = w < 0 ? 0 : u32[w + 1];
      if ((lo & 1) === 0) return F_TRANS(level);
      const out = (hi & 0xffff) * P32 + ((lo & 0xfffff000) >>> 0); // bits [47:12]
      const typeBit = (lo & 2) !== 0;
      if (typeBit && level !== 3) {
        if (out >= oaLimit) return F_ASIZE(level);
        level += 1;
        size /= 512;
        addr = out + (Math.floor(ipa / size) & 511) * 8;
        continue;
      }
      // Leaf. Reserved encodings: level-0 block (DS = 0), level-3 0b01.
      if (level === 0 || !typeBit && level === 3) return F_TRANS(level);
      if (out >= oaLimit) return F_ASIZE(level);
      if ((lo & 0x400) === 0) return F_AF(level);
      const allowed =
        access === 1 ? (lo & 0x80) !== 0 : access === 2 ? (hi & (1 << 22)) === 0 : (lo & 0x40) !== 0;
      if (!allowed) return F_PERM(level);
      const span = (hi & (1 << 20)) !== 0 ? size * 16 : size; // contiguous bit 52
      const block = Math.floor(out / span) * span; // powers of two: exact, and no fmod
      return block + (ipa - Math.floor(ipa / span) * span);
    }
  }

  walk(ipa: bigint, access: number): WalkResult {
    this.sync();
    const v = BigInt.asUintN(64, ipa);
    return decodeNumberResult(this.walkNum(Number(v & 0xffffffffn), Number(v >> 32n), access));
  }

  /**
   * Batch over the same buffer layout as the Wasm batch: ipa32 holds u64 IPAs
   * as (lo, hi) pairs, access one byte each. Results go to `out` as numbers.
   * Returns the number of faults.
   */
  walkBatch(ipa32: Uint32Array, access: Uint8Array, n: number, out: Float64Array): number {
    this.sync();
    let faults = 0;
    for (let i = 0; i < n; i++) {
      const r = this.walkNum(ipa32[2 * i], ipa32[2 * i + 1], access[i]);
      out[i] = r;
      if (r < 0) faults++;
    }
    return faults;
  }
}
