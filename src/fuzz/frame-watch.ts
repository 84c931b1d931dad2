// The fuzz checker's copies of watched frame-table records (frames a P2M
// leaf maps, live domains' xenheap frames), re-read after every op where the
// core's frame-store log says a record was written, and the count_info
// decoders the checks share.

import type { FuzzHost, PageView } from "./host.js";

// count_info decoding per arch (FS 2.1): the count, PGC_allocated, PGC_state == free.
export function pageCount(p: PageView, arm64: boolean): number {
  return arm64 ? (p.countHi & 0x3fffff) * 0x100000000 + p.countLo : p.countLo & 0x3fffff;
}
export function pageAllocated(p: PageView, arm64: boolean): boolean {
  return arm64 ? (p.countHi & 0x80000000) !== 0 : (p.countLo & 0x80000000) !== 0;
}
export function pageFree(p: PageView, arm64: boolean): boolean {
  // PGC_state == free (3): arm64 bits 55-56, arm32 bits 23-24.
  return arm64 ? ((p.countHi >>> 23) & 3) === 3 : ((p.countLo >>> 23) & 3) === 3;
}

export function countFree(c: Uint32Array, arm64: boolean): boolean {
  return arm64 ? ((c[1] >>> 23) & 3) === 3 : ((c[0] >>> 23) & 3) === 3;
}

/**
 * Copies of the frame-table records of watched frames (frames some leaf maps,
 * live domains' xenheap frames), compared with the table after every op.
 * Per frame, 6 u32 words: count_info lo/hi, type_info lo/hi, v (owner) lo/hi
 * (arm32: the hi words are 0). Read straight from linear memory when the host
 * says where the frame table is; through page() otherwise (then v = owner).
 */
export class FrameWatch {
  private n = 0;
  private mfns = new Float64Array(64);
  private refs = new Int32Array(64);
  /** Per slot: index (in u32 words) of the record's count_info in linear memory (direct reads only). */
  private at = new Int32Array(64);
  private copy = new Uint32Array(64 * 6);
  /** Per RAM frame (index mfn - lo): its slot + 1, 0 when not watched (an array: diff() looks up every logged frame). */
  private readonly slotOf: Int32Array;
  /** Slots whose record differs from the copy, filled by diff(). */
  dirty = new Int32Array(64);
  private u32: Uint32Array | null = null;
  private host!: FuzzHost;
  private mem: WebAssembly.Memory | null = null;
  private ptr = 0;
  private base = 0;
  private size = 0;

  /** The host's frame-record change log (changedFrames) is read: diff() compares only the frames it names. */
  private useLog = false;
  /** MFNs from changedFrames, reused. */
  private readonly logged: number[] = [];
  /** Per slot: the diff() pass that last compared it (a frame may be logged more than once). */
  private seenIn = new Int32Array(64);
  private pass = 0;

  constructor(host: FuzzHost, private readonly arm64: boolean, private readonly lo: number, private readonly hi: number) {
    this.slotOf = new Int32Array(Math.max(0, hi - lo));
    this.restart(host);
  }

  /**
   * Watch nothing, through `host`: for the next checker on the same machine
   * (its host is a new object every episode), which keeps this watch rather
   * than allocate another per-frame index.
   */
  restart(host: FuzzHost): void {
    for (let k = 0; k < this.n; k++) this.slotOf[this.mfns[k] - this.lo] = 0;
    this.n = 0;
    this.host = host;
    const ft = host.frameTable?.() ?? null;
    this.mem = ft === null || (ft.ptr & 3) !== 0 || (ft.entrySize & 3) !== 0 ? null : ft.memory;
    this.ptr = ft === null ? 0 : ft.ptr;
    this.base = ft === null ? 0 : ft.basePdx;
    this.size = ft === null ? 0 : ft.entrySize;
    this.u32 = null;
    // Start the log now: every record watched later is read (ref) after this point.
    this.useLog = this.mem !== null && host.changedFrames !== undefined;
    if (this.useLog) host.changedFrames!(this.logged);
  }

  /** Is this a watch over `lo..hi` for `arm64` (what restart() keeps)? */
  fits(arm64: boolean, lo: number, hi: number): boolean {
    return this.arm64 === arm64 && this.lo === lo && this.hi === hi;
  }

  valid(mfn: number): boolean {
    return mfn >= this.lo && mfn < this.hi;
  }

  mfnAt(slot: number): number {
    return this.mfns[slot];
  }

  /** Word `w` (0..5) of the copy. */
  cached(slot: number, w: number): number {
    return this.copy[slot * 6 + w];
  }

  ref(mfn: number): void {
    if (!this.valid(mfn)) return;
    const s = this.slotOf[mfn - this.lo] - 1;
    if (s >= 0) {
      this.refs[s]++;
      return;
    }
    if (this.n === this.mfns.length) this.grow();
    const k = this.n++;
    this.mfns[k] = mfn;
    this.refs[k] = 1;
    this.at[k] = ((this.ptr + (mfn - this.base) * this.size) >>> 2) + (this.arm64 ? 4 : 2);
    this.slotOf[mfn - this.lo] = k + 1;
    this.read(mfn, this.copy, k * 6);
  }

  unref(mfn: number): void {
    if (!this.valid(mfn)) return;
    const s = this.slotOf[mfn - this.lo] - 1;
    if (s < 0) throw new Error(`fuzz: frame watch: mfn 0x${mfn.toString(16)} released but not watched`);
    if (--this.refs[s] > 0) return;
    const last = --this.n;
    this.slotOf[mfn - this.lo] = 0;
    if (s !== last) {
      this.mfns[s] = this.mfns[last];
      this.refs[s] = this.refs[last];
      this.at[s] = this.at[last];
      this.copy.copyWithin(s * 6, last * 6, last * 6 + 6);
      this.slotOf[this.mfns[s] - this.lo] = s + 1;
    }
  }

  /** Does `slot`'s type_info differ from its copy? (Asked before accept().) */
  typeChanged(slot: number): boolean {
    const c = this.copy, o = slot * 6;
    if (this.mem === null) {
      const p = this.host.page(this.mfns[slot])!;
      return p.typeLo !== c[o + 2] || p.typeHi !== c[o + 3];
    }
    const u = this.view(), w = this.at[slot];
    return this.arm64 ? u[w + 2] !== c[o + 2] || u[w + 3] !== c[o + 3] : u[w + 1] !== c[o + 2];
  }

  /** Take the current record of `slot` as its copy. */
  accept(slot: number): void {
    this.read(this.mfns[slot], this.copy, slot * 6);
  }

  /** Fill `dirty` with the slots whose record changed, in slot order; returns how many. */
  diff(): number {
    // Most ops write a handful of records: compare only those when the log says which.
    if (this.useLog && this.host.changedFrames!(this.logged)) return this.diffLogged();
    let nd = 0;
    const c = this.copy;
    if (this.mem === null) {
      const cur = new Uint32Array(6);
      for (let k = 0; k < this.n; k++) {
        this.read(this.mfns[k], cur, 0);
        const o = k * 6;
        if (cur[0] !== c[o] || cur[1] !== c[o + 1] || cur[2] !== c[o + 2] || cur[3] !== c[o + 3] || cur[4] !== c[o + 4] || cur[5] !== c[o + 5]) this.dirty[nd++] = k;
      }
      return nd;
    }
    const u = this.view();
    const at = this.at, n = this.n, dirty = this.dirty;
    // One branch per record: the XORs of all its words ORed (almost every record is unchanged).
    if (this.arm64) {
      for (let k = 0, o = 0; k < n; k++, o += 6) {
        const w = at[k];
        if (((u[w] ^ c[o]) | (u[w + 1] ^ c[o + 1]) | (u[w + 2] ^ c[o + 2]) | (u[w + 3] ^ c[o + 3]) | (u[w + 4] ^ c[o + 4]) | (u[w + 5] ^ c[o + 5])) !== 0) dirty[nd++] = k;
      }
    } else {
      for (let k = 0, o = 0; k < n; k++, o += 6) {
        const w = at[k];
        if (((u[w] ^ c[o]) | (u[w + 1] ^ c[o + 2]) | (u[w + 2] ^ c[o + 4])) !== 0) dirty[nd++] = k;
      }
    }
    return nd;
  }

  /** diff() over the watched frames the log names (direct reads only). */
  private diffLogged(): number {
    const list = this.logged;
    const n = list.length;
    if (n === 0 || this.n === 0) return 0;
    if (this.pass === 0x7fffffff) {
      this.seenIn.fill(0);
      this.pass = 0;
    }
    const pass = ++this.pass;
    const u = this.view();
    const c = this.copy, at = this.at, dirty = this.dirty, seen = this.seenIn, slotOf = this.slotOf, lo = this.lo;
    let nd = 0;
    for (let i = 0; i < n; i++) {
      const j = list[i] - lo;
      if (j < 0 || j >= slotOf.length) continue;
      const k = slotOf[j] - 1;
      if (k < 0 || seen[k] === pass) continue;
      seen[k] = pass;
      const w = at[k], o = k * 6;
      const d = this.arm64
        ? (u[w] ^ c[o]) | (u[w + 1] ^ c[o + 1]) | (u[w + 2] ^ c[o + 2]) | (u[w + 3] ^ c[o + 3]) | (u[w + 4] ^ c[o + 4]) | (u[w + 5] ^ c[o + 5])
        : (u[w] ^ c[o]) | (u[w + 1] ^ c[o + 2]) | (u[w + 2] ^ c[o + 4]);
      if (d !== 0) dirty[nd++] = k;
    }
    // The full compare reports slots in slot order, and the leaves (b) re-evaluates are queued in it: keep it.
    // (An insertion sort in place: nd is a handful, and subarray() would allocate a view per op.)
    for (let i = 1; i < nd; i++) {
      const k = dirty[i];
      let j = i - 1;
      for (; j >= 0 && dirty[j] > k; j--) dirty[j + 1] = dirty[j];
      dirty[j + 1] = k;
    }
    return nd;
  }

  /** Reads linear memory (the host told where the frame table is). */
  get direct(): boolean {
    return this.mem !== null;
  }

  /** count_info / type_info of a valid frame into `pv` (owner untouched). */
  words(mfn: number, pv: PageView): void {
    const u = this.view();
    const w = (this.ptr + (mfn - this.base) * this.size) >>> 2;
    if (this.arm64) {
      pv.countLo = u[w + 4];
      pv.countHi = u[w + 5];
      pv.typeLo = u[w + 6];
      pv.typeHi = u[w + 7];
    } else {
      pv.countLo = u[w + 2];
      pv.countHi = 0;
      pv.typeLo = u[w + 3];
      pv.typeHi = 0;
    }
  }

  /** Frames in RAM whose PGC_state is not free, in MFN order, into `out`. */
  inUse(out: number[]): void {
    if (this.host.inUseFrames !== undefined) {
      this.host.inUseFrames(out); // (it empties `out` first)
      return;
    }
    out.length = 0;
    if (this.host.nextInUse !== undefined) {
      for (let m = this.host.nextInUse(this.lo); m >= 0; m = this.host.nextInUse(m + 1)) out.push(m);
      return;
    }
    if (this.mem === null) {
      const c = new Uint32Array(2);
      for (let m = this.lo; m < this.hi; m++) if (this.host.countInto(m, c) && !countFree(c, this.arm64)) out.push(m);
      return;
    }
    const u = this.view();
    const stride = this.size >>> 2;
    let w = ((this.ptr + (this.lo - this.base) * this.size) >>> 2) + (this.arm64 ? 5 : 2);
    for (let m = this.lo; m < this.hi; m++, w += stride) if (((u[w] >>> 23) & 3) !== 3) out.push(m);
  }

  /** The first frame in RAM at or after `from` whose PGC_state is not free; -1 if none (inUse without the list). */
  nextInUse(from: number): number {
    if (this.host.nextInUse !== undefined) return this.host.nextInUse(from);
    if (this.mem === null) {
      const c = new Uint32Array(2);
      for (let m = Math.max(from, this.lo); m < this.hi; m++) if (this.host.countInto(m, c) && !countFree(c, this.arm64)) return m;
      return -1;
    }
    const u = this.view();
    const stride = this.size >>> 2;
    const m0 = Math.max(from, this.lo);
    let w = ((this.ptr + (m0 - this.base) * this.size) >>> 2) + (this.arm64 ? 5 : 2);
    for (let m = m0; m < this.hi; m++, w += stride) if (((u[w] >>> 23) & 3) !== 3) return m;
    return -1;
  }

  /** The owner field (v) of `mfn` as one number; NaN when it does not fit (or is not readable). */
  ownerKey(mfn: number): number {
    if (this.mem === null) return NaN;
    const u = this.view();
    const w = ((this.ptr + (mfn - this.base) * this.size) >>> 2) + (this.arm64 ? 8 : 4);
    if (!this.arm64) return u[w];
    return u[w + 1] < 0x200000 ? u[w + 1] * 0x100000000 + u[w] : NaN;
  }

  private read(mfn: number, out: Uint32Array, o: number): void {
    if (this.mem === null) {
      const p = this.host.page(mfn)!;
      out[o] = p.countLo;
      out[o + 1] = p.countHi;
      out[o + 2] = p.typeLo;
      out[o + 3] = p.typeHi;
      out[o + 4] = p.owner;
      out[o + 5] = 0;
      return;
    }
    const u = this.view();
    const w = (this.ptr + (mfn - this.base) * this.size) >>> 2;
    if (this.arm64) {
      for (let i = 0; i < 6; i++) out[o + i] = u[w + 4 + i];
    } else {
      out[o] = u[w + 2];
      out[o + 1] = 0;
      out[o + 2] = u[w + 3];
      out[o + 3] = 0;
      out[o + 4] = u[w + 4];
      out[o + 5] = 0;
    }
  }

  private view(): Uint32Array {
    // memory.grow detaches the old buffer (its views read as length 0).
    if (this.u32 === null || this.u32.length === 0) this.u32 = new Uint32Array(this.mem!.buffer);
    return this.u32;
  }

  private grow(): void {
    const cap = this.mfns.length * 2;
    const m = new Float64Array(cap);
    m.set(this.mfns);
    this.mfns = m;
    const r = new Int32Array(cap);
    r.set(this.refs);
    this.refs = r;
    const a = new Int32Array(cap);
    a.set(this.at);
    this.at = a;
    const c = new Uint32Array(cap * 6);
    c.set(this.copy);
    this.copy = c;
    this.dirty = new Int32Array(cap);
    const sn = new Int32Array(cap);
    sn.set(this.seenIn);
    this.seenIn = sn;
  }
}
