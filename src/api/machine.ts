// The validated public constructor. The host layer's createMachine trusts
// its caller; this one checks every field first and names the bad one.

import { createMachine as createMachineImpl, type MachineImpl } from "../machine/machine.js";
import { REVISIONS, type MachineConfig } from "../machine/api.js";
import { XenmmArgumentError, checkInt, checkObject, checkOneOf, toU64 } from "./errors.js";

const IPA_BITS = [32, 36, 40, 42, 44, 48];

export function validateMachineConfig(cfg: unknown): MachineConfig {
  if (cfg === undefined) return {};
  checkObject("config", cfg);
  const known = new Set(["arch", "revision", "ramStartMfn", "ramFrames", "ipaBits", "staticBank", "xenOptions", "debugCore"]);
  for (const k of Object.keys(cfg)) if (!known.has(k)) throw new XenmmArgumentError(`config.${k}`, `unknown option (known: ${[...known].join(", ")})`);
  const arch = cfg.arch === undefined ? "arm64" : checkOneOf("config.arch", cfg.arch, ["arm64", "arm32"] as const);
  if (cfg.revision !== undefined) checkOneOf("config.revision", cfg.revision, REVISIONS);
  const maxMfn = arch === "arm64" ? (1n << 36n) - 1n : (1n << 28n) - 1n;
  let start = 0x40000n;
  if (cfg.ramStartMfn !== undefined) start = toU64("config.ramStartMfn", cfg.ramStartMfn, maxMfn);
  if (cfg.ramFrames !== undefined) {
    const n = checkInt("config.ramFrames", cfg.ramFrames, 16, 0x4000000);
    if (start + BigInt(n) > maxMfn + 1n) throw new XenmmArgumentError("config.ramFrames", `RAM end 0x${(start + BigInt(n)).toString(16)} beyond the ${arch} physical address space`);
  }
  if (cfg.ipaBits !== undefined) {
    if (typeof cfg.ipaBits !== "number" || !IPA_BITS.includes(cfg.ipaBits))
      throw new XenmmArgumentError("config.ipaBits", `expected one of ${IPA_BITS.join(", ")}, got ${String(cfg.ipaBits)}`, cfg.ipaBits);
  }
  if (cfg.staticBank !== undefined) {
    checkObject("config.staticBank", cfg.staticBank);
    toU64("config.staticBank.startMfn", cfg.staticBank.startMfn, maxMfn);
    checkInt("config.staticBank.frames", cfg.staticBank.frames, 1, 0x4000000);
  }
  if (cfg.xenOptions !== undefined) {
    checkObject("config.xenOptions", cfg.xenOptions);
    const x = cfg.xenOptions;
    if (x.gnttabMaxVersion !== undefined && x.gnttabMaxVersion !== 1 && x.gnttabMaxVersion !== 2) throw new XenmmArgumentError("config.xenOptions.gnttabMaxVersion", "expected 1 or 2", x.gnttabMaxVersion);
    if (x.gnttabMaxFrames !== undefined) checkInt("config.xenOptions.gnttabMaxFrames", x.gnttabMaxFrames, 0, 0x10000);
    if (x.gnttabMaxMaptrackFrames !== undefined) checkInt("config.xenOptions.gnttabMaxMaptrackFrames", x.gnttabMaxMaptrackFrames, 0, 0x100000);
    if (x.dom0MemPages !== undefined) checkInt("config.xenOptions.dom0MemPages", x.dom0MemPages, 0, 0x4000000);
  }
  if (cfg.debugCore !== undefined && typeof cfg.debugCore !== "boolean") throw new XenmmArgumentError("config.debugCore", "expected a boolean", cfg.debugCore);
  return cfg as MachineConfig;
}

/** Create a machine (validated configuration). */
export async function createMachine(config: MachineConfig = {}): Promise<MachineImpl> {
  const cfg = validateMachineConfig(config);
  try {
    return await createMachineImpl(cfg);
  } catch (e) {
    // configuration combinations the host layer refuses (e.g. arm32 ipaBits < 40)
    if (e instanceof Error && !(e instanceof WebAssembly.RuntimeError) && /ipaBits|IPA/.test(e.message)) throw new XenmmArgumentError("config.ipaBits", e.message, cfg.ipaBits);
    throw e;
  }
}
