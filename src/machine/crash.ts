import type { HypervisorCrash } from "./api.js";

/** Thrown inside the host when Xen itself would die (BUG_ON, data abort, ASSERT). */
export class XenCrash extends Error {
  constructor(readonly crash: HypervisorCrash) {
    super(`hypervisor crash (${crash.kind}): ${crash.path}`);
  }
}

/** A domain-creation (or other host API) refusal carrying a Xen errno. */
export class XenError extends Error {
  constructor(readonly rc: number, message: string) {
    super(message);
  }
}

/** Core xen_bug() codes (assembly/mem/machine.ts) → crash kinds. */
export function crashKindOfCode(code: number): HypervisorCrash["kind"] {
  switch (code >>> 24) {
    case 1: return "ASSERT";
    case 2: return "BUG_ON";
    case 3: return "data_abort";
    default: return "emulator";
  }
}
