import { expect } from "vitest";
import { WasmWalker, type WalkConfig } from "../../src/walk/wasm-walker.js";
import { ReferenceWalker } from "../../src/walk/reference-walker.js";
import type { FaultType, WalkResult } from "../../src/walk/fault.js";

// Descriptor values from fact sheet §4.4 (ram_rw, access rwx).
export const PAGE_RW = 0x00800000000007ffn; // level-3 page, also Xen's table descriptor
export const BLOCK_RW = 0x00800000000007fdn; // level-1/2 block
export const table = (pa: bigint) => PAGE_RW | pa;
export const page = (pa: bigint) => PAGE_RW | pa;
export const block = (pa: bigint) => BLOCK_RW | pa;

export const R = 0, W = 1, X = 2;

/** One Wasm instance plus the reference walker over the same memory. */
export class Env {
  readonly w = new WasmWalker();
  readonly ref = new ReferenceWalker(this.w.memory, this.w.hdr);

  constructor(cfg?: WalkConfig) {
    if (cfg) this.configure(cfg);
  }

  configure(cfg: WalkConfig): number {
    const a = this.w.configure(cfg);
    const b = this.ref.configure(cfg);
    expect(b).toBe(a);
    return a;
  }

  set(pa: bigint, v: bigint): this {
    this.w.writeU64(pa, v);
    return this;
  }

  /** Walk with both walkers (single and batched Wasm); they must agree. */
  walk(ipa: bigint, access = R): WalkResult {
    const a = this.w.walk(ipa, access);
    const b = this.ref.walk(ipa, access);
    expect(b).toEqual(a);
    const [c] = this.w.walkBatch([ipa], [access]);
    expect(c).toBe(this.w.walkRaw(ipa, access));
    return a;
  }
}

export function ok(pa: bigint): WalkResult {
  return { ok: true, pa };
}

export function fault(type: FaultType, level: number, dfsc: number): WalkResult {
  return { ok: false, fault: { type, level, dfsc, stage: 2 } };
}

// The standard 48-bit layout (Xen's arm64 default: T0SZ 16, SL0 2, level-0 root, 1 page).
export const ROOT = 0x40000000n;
export const T1 = 0x40001000n;
export const T2 = 0x40002000n;
export const T3 = 0x40003000n;
export const CFG48: WalkConfig = { t0sz: 16, sl0: 2, ps: 5, root: ROOT };

/** L0[0] -> T1, L1[0] -> T2, L2[0] -> T3. */
export function env48(cfg: Partial<WalkConfig> = {}): Env {
  const e = new Env({ ...CFG48, ...cfg });
  e.set(ROOT, table(T1)).set(T1, table(T2)).set(T2, table(T3));
  return e;
}
