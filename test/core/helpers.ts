import { createCoreInstance, type CoreExports } from "../../src/core/wasm.js";

// Feature bits of assembly/revision.ts, per revision, as the fact sheet dates them.
export const F = {
  REMOVE_CHECKS_MFN: 1 << 0,
  GFN_IN_PAGE_INFO: 1 << 1,
  TYPE_INFO_INITIALIZER: 1 << 2,
  PUT_L2_FOREIGN_SUPERPAGE: 1 << 3,
  DYING_REFUSES_P2M: 1 << 4,
  NEED_SCRUB_OWN_BIT: 1 << 5,
  FT_BASE_ROUNDED: 1 << 6,
  GET_PAGE_NR: 1 << 7,
  GET_PAGE_FROM_GFN_LOCKED: 1 << 8,
  STATIC_FREE_DOMSTATIC: 1 << 9,
} as const;

export type Rev = "pre" | "harden" | "gfn" | "head";
export const REV_INDEX: Record<Rev, number> = { pre: 0, harden: 1, gfn: 2, head: 3 };

/** The core's feature bits for a revision: prefer the host's policy when it exists. */
export async function featuresFor(rev: Rev): Promise<number> {
  try {
    const m: any = await import("../../src/revisions/index.js");
    const p = m.policyFor ? m.policyFor(rev) : m.REVISION_POLICIES?.[rev];
    if (p && typeof p.coreFeatures === "number") return p.coreFeatures;
  } catch { /* host layer not present */ }
  const gfn = F.REMOVE_CHECKS_MFN | F.GFN_IN_PAGE_INFO | F.TYPE_INFO_INITIALIZER;
  return { pre: 0, harden: F.REMOVE_CHECKS_MFN, gfn,
    head: gfn | F.PUT_L2_FOREIGN_SUPERPAGE | F.DYING_REFUSES_P2M | F.NEED_SCRUB_OWN_BIT | F.FT_BASE_ROUNDED |
      F.GET_PAGE_NR | F.GET_PAGE_FROM_GFN_LOCKED | F.STATIC_FREE_DOMSTATIC }[rev];
}

export const ARM64 = 0;
export const ARM32 = 1;

export async function newCore(arch: 0 | 1, rev: Rev, opts: { ramStart?: bigint; frames?: bigint; staticStart?: bigint; staticNr?: bigint } = {}): Promise<CoreExports> {
  const c = await createCoreInstance(process.env.XENMM_WASM === "release" ? "release" : "debug");
  c.machine_init(arch, REV_INDEX[rev], await featuresFor(rev), opts.ramStart ?? 0x40000n, opts.frames ?? 0x10000n,
    opts.staticStart ?? 0n, opts.staticNr ?? 0n);
  return c;
}

export const hex = (v: bigint) => "0x" + v.toString(16).toUpperCase();
