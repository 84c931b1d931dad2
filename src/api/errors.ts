// Typed errors of the public API.
//
// Rule: host-level misuse (a bad argument, a corrupt snapshot, a missing
// build) throws one of these classes; guest-level failures (a hypercall the
// guest got wrong) are Xen errno values in the result and never throw.

/** Base class: every error thrown by the xenmm public API is one of these. */
export class XenmmError extends Error {
  /** Stable machine-readable code, e.g. "E_ARGUMENT". */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options as any);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A public function got an argument it cannot accept. `argument` names it. */
export class XenmmArgumentError extends XenmmError {
  readonly argument: string;
  readonly value: unknown;
  constructor(argument: string, message: string, value?: unknown) {
    super("E_ARGUMENT", `${argument}: ${message}`);
    this.argument = argument;
    this.value = value;
  }
}

export type SnapshotProblem =
  | "magic"        // not a xenmm snapshot at all
  | "version"      // written by another snapshot format version
  | "truncated"    // shorter than its header says
  | "checksum"     // bytes changed after writing
  | "layout"       // well-formed container, inconsistent contents
  | "core"         // the core memory image does not match this build
  | "host";        // the host-state section cannot be applied

/** A snapshot was refused; nothing was loaded. */
export class SnapshotFormatError extends XenmmError {
  readonly problem: SnapshotProblem;
  constructor(problem: SnapshotProblem, message: string, options?: { cause?: unknown }) {
    super("E_SNAPSHOT", `snapshot refused (${problem}): ${message}`, options);
    this.problem = problem;
  }
}

/** The machine is in a state where the operation is not possible (e.g. crashed, disposed). */
export class XenmmStateError extends XenmmError {
  constructor(message: string) { super("E_STATE", message); }
}

/** A file given to a tool could not be read or understood. */
export class XenmmInputError extends XenmmError {
  readonly path?: string;
  constructor(message: string, path?: string, options?: { cause?: unknown }) {
    super("E_INPUT", path ? `${path}: ${message}` : message, options);
    this.path = path;
  }
}

// ---- argument checks used by every public entry point ---------------------

export function checkObject(name: string, v: unknown): asserts v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new XenmmArgumentError(name, `expected an object, got ${describe(v)}`, v);
}

export function checkFunction(name: string, v: unknown): asserts v is (...a: any[]) => unknown {
  if (typeof v !== "function") throw new XenmmArgumentError(name, `expected a function, got ${describe(v)}`, v);
}

export function checkBytes(name: string, v: unknown): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) throw new XenmmArgumentError(name, `expected a Uint8Array, got ${describe(v)}`, v);
}

/** A non-negative integer given as number or bigint, returned as bigint. */
export function toU64(name: string, v: unknown, max: bigint = 0xFFFF_FFFF_FFFF_FFFFn): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new XenmmArgumentError(name, `expected a non-negative integer (number or bigint), got ${describe(v)}`, v);
  if (b < 0n || b > max) throw new XenmmArgumentError(name, `out of range [0, 0x${max.toString(16)}]: ${b}`, v);
  return b;
}

export function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw new XenmmArgumentError(name, `expected an integer in [${min}, ${max}], got ${describe(v)}`, v);
  return v;
}

export function checkOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v))
    throw new XenmmArgumentError(name, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${describe(v)}`, v);
  return v as T;
}

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return `a Uint8Array(${v.length})`;
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return `${typeof v} ${String(v)}`;
}
