import { createCoreInstance, type CoreExports } from "../../src/core/wasm.js";
import { policyFor } from "../../src/revisions/index.js";

export type Rev = "pre" | "harden" | "gfn" | "head";
export const REV_INDEX: Record<Rev, number> = { pre: 0, harden: 1, gfn: 2, head: 3 };

/** The core's feature bits for a revision, from the host's revision policy. */
export function featuresFor(rev: Rev): number {
  return policyFor(rev).features;
}

export const ARM64 = 0;
export const ARM32 = 1;

export async function newCore(arch: 0 | 1, rev: Rev, opts: { ramStart?: bigint; frames?: bigint; staticStart?: bigint; staticNr?: bigint } = {}): Promise<CoreExports> {
  const c = await createCoreInstance(process.env.XENMM_WASM === "release" ? "release" : "debug");
  c.machine_init(arch, REV_INDEX[rev], featuresFor(rev), opts.ramStart ?? 0x40000n, opts.frames ?? 0x10000n,
    opts.staticStart ?? 0n, opts.staticNr ?? 0n);
  return c;
}

export const hex = (v: bigint) => "0x" + v.toString(16).toUpperCase();
