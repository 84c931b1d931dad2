// Zero-copy views over the core's linear memory.
//
// A typed array over a WebAssembly.Memory is detached when the memory grows
// (the old ArrayBuffer is replaced). Every accessor here re-checks the
// buffer identity and re-creates its views on change, as v86 and sql.js do,
// so a view handed out is valid until the next call into the core that may
// allocate. Callers must not keep views across such calls; call the
// accessor again instead (it is cheap: one identity comparison).

import { XenmmArgumentError, XenmmStateError, toU64 } from "./errors.js";

/** The part of the core's export surface the views need. */
export interface ViewCore {
  memory: WebAssembly.Memory;
  frame_table_ptr(): number;
  frametable_base_pdx(): bigint;
  ram_start_mfn(): bigint;
  max_page(): bigint;
  page_info_size(): number;
  backing_lookup(mfn: bigint): number;
  mem_top(): number;
}

export class CoreViews {
  readonly core: ViewCore;
  #buffer: ArrayBuffer | null = null;
  #u8!: Uint8Array;
  #dv!: DataView;
  #u64!: BigUint64Array;

  constructor(core: ViewCore) {
    if (!core || !(core.memory instanceof WebAssembly.Memory)) throw new XenmmArgumentError("core", "expected a core instance with a WebAssembly.Memory");
    this.core = core;
  }

  /** Re-creates the views if the memory has grown (buffer identity changed). */
  #sync(): void {
    const buf = this.core.memory.buffer as ArrayBuffer;
    if (buf !== this.#buffer || buf.byteLength === 0) {
      if (buf.byteLength === 0) throw new XenmmStateError("core memory is detached");
      this.#buffer = buf;
      this.#u8 = new Uint8Array(buf);
      this.#dv = new DataView(buf);
      this.#u64 = new BigUint64Array(buf, 0, buf.byteLength >>> 3);
    }
  }

  /** All of linear memory as bytes (current buffer). */
  get bytes(): Uint8Array { this.#sync(); return this.#u8; }
  get dataView(): DataView { this.#sync(); return this.#dv; }
  /** All of linear memory as u64 words (index = byte address / 8). */
  get words(): BigUint64Array { this.#sync(); return this.#u64; }

  /** The core state [0, mem_top) as a view (no copy). */
  state(): Uint8Array {
    const top = this.core.mem_top();
    return this.bytes.subarray(0, top);
  }

  /** The whole frame table: every page_info record of RAM, from frametable_base_pdx to max_page. */
  frameTable(): Uint8Array {
    const base = this.core.frame_table_ptr();
    const n = Number(this.core.max_page() - this.core.frametable_base_pdx());
    return this.bytes.subarray(base, base + n * this.core.page_info_size());
  }

  /** The page_info record of one MFN (56 or 32 bytes), a view into linear memory. */
  pageInfo(mfn: bigint | number): Uint8Array {
    const m = toU64("mfn", mfn);
    if (m < this.core.frametable_base_pdx() || m >= this.core.max_page())
      throw new XenmmArgumentError("mfn", `0x${m.toString(16)} is outside the frame table [0x${this.core.frametable_base_pdx().toString(16)}, 0x${this.core.max_page().toString(16)})`, mfn);
    const sz = this.core.page_info_size();
    const off = this.core.frame_table_ptr() + Number(m - this.core.frametable_base_pdx()) * sz;
    return this.bytes.subarray(off, off + sz);
  }

  /** The 4 KiB backing a frame (e.g. a page-table page), or null if the frame has none. */
  frameBytes(mfn: bigint | number): Uint8Array | null {
    const m = toU64("mfn", mfn);
    const p = this.core.backing_lookup(m);
    if (!p) return null;
    return this.bytes.subarray(p, p + 4096);
  }

  /** A table page as its 512 descriptors (no copy), or null if the frame has no backing. */
  tablePage(mfn: bigint | number): BigUint64Array | null {
    const m = toU64("mfn", mfn);
    const p = this.core.backing_lookup(m);
    if (!p) return null;
    if (p & 7) throw new XenmmStateError(`backing of 0x${m.toString(16)} is not 8-byte aligned`);
    return this.words.subarray(p >>> 3, (p >>> 3) + 512);
  }

  u32(addr: number): number { return this.dataView.getUint32(addr, true); }
  u64(addr: number): bigint { return this.dataView.getBigUint64(addr, true); }
}

const cache = new WeakMap<object, CoreViews>();
/** The (cached) views of a core instance. */
export function viewsOf(core: ViewCore): CoreViews {
  let v = cache.get(core);
  if (!v) { v = new CoreViews(core); cache.set(core, v); }
  return v;
}
