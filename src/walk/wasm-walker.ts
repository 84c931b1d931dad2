// Host front of the Wasm stage-2 walker (assembly/walk/walker.ts).
//
// One core instance per WasmWalker, through the bare exports (synchronous;
// the walker converts its own u64 results).

import { instantiateRawSync, type Flavour } from "../core/wasm.js";
import { decodeRawResult, type WalkResult } from "./fault.js";

export interface WalkConfig {
  /** VTCR_EL2.T0SZ (0..63). */
  t0sz: number;
  /** VTCR_EL2.SL0 (0..3). */
  sl0: number;
  /** VTCR_EL2.PS code (0..7). */
  ps: number;
  /** Root table PA (VTTBR_EL2.BADDR, without VMID). */
  root: bigint;
  /** CPU PARange in bits (32, 36, 40, 42, 44, 48, 52); default 48. */
  parange?: number;
}

export interface WalkerExports {
  memory: WebAssembly.Memory;
  walk_mem_init(): void;
  walk_mem_write_u64(pa: bigint, v: bigint): void;
  walk_mem_read_u64(pa: bigint): bigint;
  walk_mem_page(mfn: bigint): number;
  walk_hdr(): number;
  walk_config_ptr(): number;
  walk_configure(t0sz: number, sl0: number, ps: number, parange: number, root: bigint): number;
  walk_config_status(): number;
  walk_s2(ipa: bigint, access: number): bigint;
  walk_batch_reserve(n: number): number;
  walk_batch_capacity(): number;
  walk_batch_ipa_ptr(): number;
  walk_batch_access_ptr(): number;
  walk_batch_out_ptr(): number;
  walk_batch(n: number): number;
}

/** A walker instance: the core's bare exports (the walker converts its own u64s). */
export function instantiateWalker(flavour?: Flavour): WalkerExports {
  return instantiateRawSync<WalkerExports>(flavour);
}

/** One emulated memory + the Wasm walker over it. */
export class WasmWalker {
  readonly ex: WalkerExports;
  private cap = 0;
  private ipaView!: BigUint64Array;
  private ipaView32!: Uint32Array;
  private accView!: Uint8Array;
  private outView!: BigUint64Array;
  private viewBuffer: ArrayBuffer | null = null;

  constructor(ex?: WalkerExports) {
    this.ex = ex ?? instantiateWalker();
    this.ex.walk_mem_init();
  }

  get memory(): WebAssembly.Memory {
    return this.ex.memory;
  }

  /** Linear address of the machine header (for the reference walker). */
  get hdr(): number {
    return this.ex.walk_hdr() >>> 0;
  }

  writeU64(pa: bigint, value: bigint): void {
    this.ex.walk_mem_write_u64(BigInt.asIntN(64, pa), BigInt.asIntN(64, value));
  }

  readU64(pa: bigint): bigint {
    return BigInt.asUintN(64, this.ex.walk_mem_read_u64(BigInt.asIntN(64, pa)));
  }

  /** Writes the config; returns the status (0 ok, 1 invalid config, 2 root address-size). */
  configure(c: WalkConfig): number {
    return this.ex.walk_configure(c.t0sz, c.sl0, c.ps, c.parange ?? 48, BigInt.asIntN(64, c.root)) >>> 0;
  }

  /** Raw u64 result (unsigned). */
  walkRaw(ipa: bigint, access: number): bigint {
    return BigInt.asUintN(64, this.ex.walk_s2(BigInt.asIntN(64, ipa), access));
  }

  walk(ipa: bigint, access: number): WalkResult {
    return decodeRawResult(this.walkRaw(ipa, access));
  }

  /** Make the batch buffers hold n entries; returns the views (valid until the next allocation). */
  reserve(n: number): { ipa: BigUint64Array; ipa32: Uint32Array; access: Uint8Array; out: BigUint64Array } {
    if (n > this.cap) this.cap = this.ex.walk_batch_reserve(n) >>> 0;
    this.refreshViews();
    return { ipa: this.ipaView, ipa32: this.ipaView32, access: this.accView, out: this.outView };
  }

  private refreshViews(): void {
    const buf = this.ex.memory.buffer;
    const ipaPtr = this.ex.walk_batch_ipa_ptr() >>> 0;
    if (this.viewBuffer === buf && this.ipaView && this.ipaView.byteOffset === ipaPtr && this.ipaView.length === this.cap) return;
    this.viewBuffer = buf;
    this.ipaView = new BigUint64Array(buf, ipaPtr, this.cap);
    this.ipaView32 = new Uint32Array(buf, ipaPtr, this.cap * 2);
    this.accView = new Uint8Array(buf, this.ex.walk_batch_access_ptr() >>> 0, this.cap);
    this.outView = new BigUint64Array(buf, this.ex.walk_batch_out_ptr() >>> 0, this.cap);
  }

  /** Walk entries [0, n) already placed in the batch buffers; returns the fault count. */
  runBatch(n: number): number {
    return this.ex.walk_batch(n) >>> 0;
  }

  /** Convenience: walk a list of probes in one Wasm call; raw u64 results. */
  walkBatch(ipas: readonly bigint[], access: readonly number[]): bigint[] {
    const n = ipas.length;
    const v = this.reserve(n);
    for (let i = 0; i < n; i++) {
      v.ipa[i] = BigInt.asUintN(64, ipas[i]);
      v.access[i] = access[i];
    }
    this.ex.walk_batch(n);
    const out: bigint[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = v.out[i];
    return out;
  }
}
