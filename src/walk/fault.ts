// Stage-2 walk results and fault records (fact sheet §10.6), shared by the
// Wasm walker front (wasm-walker.ts), the TS reference walker and the CLI.
//
// Raw result encoding (u64) produced by assembly/walk/walker.ts:
//   bit 63 clear : success, value = output PA
//   bit 63 set   : fault; bits 5:0 DFSC, 9:8 level, 14:12 type code
//                  (1 address_size, 2 translation, 3 access_flag, 4 permission),
//                  17:16 stage (2).
// The reference walker's fast path uses a number instead: >= 0 is the PA,
// a negative value is -1 - DFSC (DFSC alone determines type and level for
// every fault a DS = 0 stage-2 walk can raise).

export type FaultType = "translation" | "access_flag" | "permission" | "address_size";

export interface S2Fault {
  type: FaultType;
  /** Lookup level, -1..3 (-1 only for LPA2 codes, never produced by the walker). */
  level: number;
  /** 6-bit DFSC as ESR_EL2.ISS reports it. */
  dfsc: number;
  stage: 2;
}

export type WalkResult = { ok: true; pa: bigint } | { ok: false; fault: S2Fault };

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;
export type AccessKind = typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_EXEC;

export const WALK_FAULT_BIT = 1n << 63n;

/** Type codes of the raw encoding, in DFSC group order (code - 1 = DFSC >> 2). */
export const FAULT_TYPE_CODES: Record<FaultType, number> = {
  address_size: 1,
  translation: 2,
  access_flag: 3,
  permission: 4,
};
const TYPE_BY_CODE: FaultType[] = ["address_size", "address_size", "translation", "access_flag", "permission"];

/** DFSC group bases for levels 0..3 (FS §10.6). */
const DFSC_BASE: Record<FaultType, number> = {
  address_size: 0x00,
  translation: 0x04,
  access_flag: 0x08,
  permission: 0x0c,
};

/**
 * DFSC for a fault type at a level. Levels 0..3 for every type (0x08 / 0x0C at
 * level 0 are LPA2-only codes but well defined); level -1 exists only for
 * address_size (0x29) and translation (0x2B). Throws for anything else.
 */
export function dfscEncode(type: FaultType, level: number): number {
  if (!Number.isInteger(level)) throw new RangeError(`bad level ${level}`);
  if (level === -1) {
    if (type === "address_size") return 0x29;
    if (type === "translation") return 0x2b;
    throw new RangeError(`no level -1 DFSC for ${type}`);
  }
  if (level < 0 || level > 3) throw new RangeError(`bad level ${level}`);
  return DFSC_BASE[type] | level;
}

/** Decode a 6-bit DFSC of one of the four walk fault kinds; null for other codes. */
export function dfscDecode(dfsc: number): { type: FaultType; level: number } | null {
  if (dfsc === 0x29) return { type: "address_size", level: -1 };
  if (dfsc === 0x2b) return { type: "translation", level: -1 };
  if (!Number.isInteger(dfsc) || dfsc < 0 || dfsc > 0x0f) return null;
  const group = dfsc >> 2;
  const type = (["address_size", "translation", "access_flag", "permission"] as const)[group];
  return { type, level: dfsc & 3 };
}

export function makeFault(type: FaultType, level: number): S2Fault {
  return { type, level, dfsc: dfscEncode(type, level), stage: 2 };
}

/** Decode a raw u64 result of the Wasm walker (accepts the signed BigInt of a raw export). */
export function decodeRawResult(raw: bigint): WalkResult {
  const r = BigInt.asUintN(64, raw);
  if ((r & WALK_FAULT_BIT) === 0n) return { ok: true, pa: r };
  const lo = Number(r & 0xffffffffn);
  const dfsc = lo & 0x3f;
  const level = (lo >> 8) & 3;
  const code = (lo >> 12) & 7;
  const stage = (lo >> 16) & 3;
  const type = TYPE_BY_CODE[code];
  if (code < 1 || code > 4 || stage !== 2 || dfsc !== dfscEncode(type, level)) {
    throw new Error(`malformed walk result 0x${r.toString(16)}`);
  }
  return { ok: false, fault: { type, level, dfsc, stage: 2 } };
}

/** Raw u64 encoding of a result (inverse of decodeRawResult). */
export function encodeRawResult(res: WalkResult): bigint {
  if (res.ok) return res.pa;
  const f = res.fault;
  return (
    WALK_FAULT_BIT |
    (2n << 16n) |
    (BigInt(FAULT_TYPE_CODES[f.type]) << 12n) |
    (BigInt(f.level & 3) << 8n) |
    BigInt(f.dfsc)
  );
}

/** Decode the reference walker's number result (>= 0 PA, < 0 : -1 - DFSC). */
export function decodeNumberResult(n: number): WalkResult {
  if (n >= 0) return { ok: true, pa: BigInt(n) };
  const dfsc = -1 - n;
  const d = dfscDecode(dfsc);
  if (!d) throw new Error(`malformed walk result ${n}`);
  return { ok: false, fault: { type: d.type, level: d.level, dfsc, stage: 2 } };
}

export function hex(v: bigint | number): string {
  return "0x" + v.toString(16);
}

/** The CLI's JSON shape for one probe. */
export function resultToJson(ipa: bigint, res: WalkResult): Record<string, unknown> {
  if (res.ok) return { ipa: hex(ipa), ok: true, pa: hex(res.pa) };
  return {
    ipa: hex(ipa),
    ok: false,
    fault: res.fault.type,
    level: res.fault.level,
    dfsc: "0x" + res.fault.dfsc.toString(16).padStart(2, "0"),
  };
}
