import { createCoreInstance, type CoreExports } from "../../src/core/wasm.js";
import * as R from "../../src/revisions/index.js";

export type Rev = "pre" | "harden" | "gfn" | "head";
export const REVS: Rev[] = ["pre", "harden", "gfn", "head"];

// Feature bits and each code state's set: the host's revision policy is the one source.
export const F = {
  REMOVE_CHECKS_MFN: R.F_REMOVE_CHECKS_MFN,
  GFN_IN_PAGE_INFO: R.F_GFN_IN_PAGE_INFO,
  TYPE_INFO_INITIALIZER: R.F_TYPE_INFO_INITIALIZER,
  PUT_L2_FOREIGN_SUPERPAGE: R.F_PUT_L2_FOREIGN_SUPERPAGE,
  DYING_REFUSES_P2M: R.F_DYING_REFUSES_P2M,
  INVALIDATE_ROOT_PAGES: R.F_INVALIDATE_ROOT_PAGES,
  ARM32_PA_RANGE_32: R.F_ARM32_PA_RANGE_32,
} as const;
export const FEATURES: Record<Rev, number> = {
  pre: R.policyFor("pre").features,
  harden: R.policyFor("harden").features,
  gfn: R.policyFor("gfn").features,
  head: R.policyFor("head").features,
};
export const REV_NUM: Record<Rev, number> = { pre: 0, harden: 1, gfn: 2, head: 3 };

export const T = {
  invalid: 0, ram_rw: 1, ram_ro: 2, mmio_direct_dev: 3, mmio_direct_nc: 4, mmio_direct_c: 5,
  map_foreign_rw: 6, map_foreign_ro: 7, grant_map_rw: 8, grant_map_ro: 9, iommu_map_rw: 10, iommu_map_ro: 11,
} as const;
export const A = { n: 0, r: 1, w: 2, rw: 3, x: 4, rx: 5, wx: 6, rwx: 7, rx2rw: 8, n2rwx: 9, r_pw: 10 } as const;

export const EINVAL = -22, ENOENT = -2, ENOMEM = -12, EILSEQ = -84, EBUSY = -16, ERESTART = -85;

export interface MachineOpts {
  arch?: "arm64" | "arm32";
  rev?: Rev;
  features?: number;
  ramStart?: bigint;
  ramFrames?: bigint;
  ipaBits?: number;
  vmid16?: boolean;
}

export interface Machine {
  core: CoreExports;
  INVALID: bigint;
  ramStart: bigint;
  ramFrames: bigint;
  /** Create domain slot d (domid d) with its P2M; returns p2m_init's rc. */
  domain(d: number, maxPages?: bigint): number;
  /** t, a, order, valid of the last p2m_get_entry on d. */
  out(d: number): { t: number; a: number; order: number; valid: number };
  lookup(d: number, gfn: bigint): { mfn: bigint; t: number; a: number; order: number; valid: number };
  u64(ptr: number): bigint;
}

export async function machine(o: MachineOpts = {}): Promise<Machine> {
  const core = await createCoreInstance("debug");
  const arch = o.arch ?? "arm64";
  const rev = o.rev ?? "head";
  const ramStart = o.ramStart ?? 0x40000n;
  const ramFrames = o.ramFrames ?? 0x8000n; // 128 MiB
  core.machine_init(arch === "arm64" ? 0 : 1, REV_NUM[rev], o.features ?? FEATURES[rev], ramStart, ramFrames, 0n, 0n);
  const rc = core.p2m_geometry_init(o.ipaBits ?? (arch === "arm64" ? 48 : 40), o.vmid16 ?? false);
  if (rc !== 0) throw new Error(`p2m_geometry_init ${rc}`);
  const INVALID = arch === "arm64" ? 0xffffffffffffffffn : 0xffffffffn;
  const m: Machine = {
    core, INVALID, ramStart, ramFrames,
    domain(d, maxPages = 0x100000n) {
      core.domain_slot_init(d, d, 0, maxPages);
      return core.p2m_init(d);
    },
    out(d) {
      const p = core.p2m_out_ptr(d);
      const v = new Uint32Array(core.memory.buffer, p, 4);
      return { t: v[0], a: v[1], order: v[2], valid: v[3] };
    },
    lookup(d, gfn) {
      const mfn = core.p2m_get_entry(d, gfn);
      return { mfn, ...m.out(d) };
    },
    u64(ptr) { return new DataView(core.memory.buffer).getBigUint64(ptr, true); },
  };
  return m;
}

/** Run fn expecting a Xen BUG/ASSERT trap; returns the recorded code (code << 24 | where). */
export function expectBug(m: Machine, fn: () => unknown): number {
  let threw = false;
  try { fn(); } catch { threw = true; }
  if (!threw) throw new Error("expected a trap");
  return m.core.last_error();
}
