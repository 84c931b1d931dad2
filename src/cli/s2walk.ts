// `xenmm s2walk FILE.json` — run the architectural stage-2 walker (the Wasm
// core) over a described set of table pages and print one JSON result per
// probe. Used for differential testing against other walkers (QEMU, Linux).
//
// s2walkMain receives the arguments after the sub-command and returns the exit
// code (0 ok, 2 usage / malformed input, 1 internal error).

import { readFileSync } from "node:fs";
import { WasmWalker } from "../walk/wasm-walker.js";
import { decodeRawResult, resultToJson } from "../walk/fault.js";

export const S2WALK_USAGE = `usage: xenmm s2walk FILE.json   (FILE "-" reads standard input)

Walks stage-2 tables (VMSAv8-64, 4 KiB granule) with the emulator's
architectural walker and prints a JSON array, one object per probe:
  { "ipa", "ok": true, "pa" }  or
  { "ipa", "ok": false, "fault": "translation"|"access_flag"|"permission"|"address_size",
    "level": n, "dfsc": "0x.." }

Input:
  {
    "t0sz": 0..63, "sl0": 0..3, "ps": 0..7,        VTCR_EL2 fields
    "root": "0x...",                               VTTBR_EL2.BADDR (PA, no VMID)
    "parange": 32|36|40|42|44|48|52,               optional CPU PA size, default 48
    "pages": [ { "pa": "0x...", "entries": { "<index 0..511>": "0x<64-bit>" } } ],
    "probes": [ { "ipa": "0x...", "access": "r"|"w"|"x" } ]
  }
Pages are sparse: missing entries and missing pages read as zero.
`;

class InputError extends Error {}

const HEX64 = /^0x[0-9a-fA-F]{1,16}$/;

function hex64(v: unknown, field: string): bigint {
  if (typeof v !== "string" || !HEX64.test(v)) throw new InputError(`${field}: expected a hex string "0x..." of at most 64 bits`);
  return BigInt(v);
}

function intIn(v: unknown, field: string, lo: number, hi: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    throw new InputError(`${field}: expected an integer in ${lo}..${hi}`);
  }
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface S2WalkInput {
  t0sz: number;
  sl0: number;
  ps: number;
  parange: number;
  root: bigint;
  pages: { pa: bigint; entries: [number, bigint][] }[];
  probes: { ipa: bigint; access: number }[];
}

export function parseS2WalkInput(doc: unknown): S2WalkInput {
  if (!isObject(doc)) throw new InputError("input: expected a JSON object");
  const t0sz = intIn(doc.t0sz, "t0sz", 0, 63);
  const sl0 = intIn(doc.sl0, "sl0", 0, 3);
  const ps = intIn(doc.ps, "ps", 0, 7);
  let parange = 48;
  if (doc.parange !== undefined) {
    parange = intIn(doc.parange, "parange", 0, 64);
    if (![32, 36, 40, 42, 44, 48, 52].includes(parange)) throw new InputError("parange: expected one of 32, 36, 40, 42, 44, 48, 52");
  }
  const root = hex64(doc.root, "root");
  const pagesIn = doc.pages === undefined ? [] : doc.pages;
  if (!Array.isArray(pagesIn)) throw new InputError("pages: expected an array");
  const pages = pagesIn.map((p, i) => {
    if (!isObject(p)) throw new InputError(`pages[${i}]: expected an object`);
    const pa = hex64(p.pa, `pages[${i}].pa`);
    if ((pa & 0xfffn) !== 0n) throw new InputError(`pages[${i}].pa: not 4 KiB aligned`);
    const ent = p.entries === undefined ? {} : p.entries;
    if (!isObject(ent)) throw new InputError(`pages[${i}].entries: expected an object`);
    const entries: [number, bigint][] = Object.entries(ent).map(([k, v]) => {
      if (!/^(0|[1-9][0-9]{0,2})$/.test(k) || Number(k) > 511) {
        throw new InputError(`pages[${i}].entries["${k}"]: index must be a decimal 0..511`);
      }
      return [Number(k), hex64(v, `pages[${i}].entries["${k}"]`)];
    });
    return { pa, entries };
  });
  if (!Array.isArray(doc.probes)) throw new InputError("probes: expected an array");
  const probes = doc.probes.map((q, i) => {
    if (!isObject(q)) throw new InputError(`probes[${i}]: expected an object`);
    const ipa = hex64(q.ipa, `probes[${i}].ipa`);
    const acc = { r: 0, w: 1, x: 2 }[q.access as string];
    if (typeof q.access !== "string" || acc === undefined) throw new InputError(`probes[${i}].access: expected "r", "w" or "x"`);
    return { ipa, access: acc };
  });
  return { t0sz, sl0, ps, parange, root, pages, probes };
}

/** Run the probes of a parsed input on a fresh Wasm instance. */
export function runS2Walk(input: S2WalkInput, walker = new WasmWalker()): Record<string, unknown>[] {
  for (const page of input.pages) {
    for (const [idx, v] of page.entries) walker.writeU64(page.pa + BigInt(idx) * 8n, v);
  }
  walker.configure({ t0sz: input.t0sz, sl0: input.sl0, ps: input.ps, parange: input.parange, root: input.root });
  const raw = walker.walkBatch(
    input.probes.map((p) => p.ipa),
    input.probes.map((p) => p.access),
  );
  return input.probes.map((p, i) => resultToJson(p.ipa, decodeRawResult(raw[i])));
}

export async function s2walkMain(argv: string[]): Promise<number> {
  const out = (s: string) => process.stdout.write(s);
  const err = (s: string) => process.stderr.write(s);
  if (argv.includes("--help") || argv.includes("-h")) {
    out(S2WALK_USAGE);
    return 0;
  }
  if (argv.length !== 1) {
    err("xenmm s2walk: expected exactly one input file (see --help)\n");
    return 2;
  }
  const file = argv[0];
  let text: string;
  try {
    text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  } catch (e) {
    err(`xenmm s2walk: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  let input: S2WalkInput;
  try {
    input = parseS2WalkInput(JSON.parse(text));
  } catch (e) {
    const msg = e instanceof SyntaxError ? `input: invalid JSON (${e.message})` : (e as Error).message;
    err(`xenmm s2walk: ${msg.split("\n")[0]}\n`);
    return 2;
  }
  try {
    const results = runS2Walk(input);
    out(results.length ? "[\n" + results.map((r) => "  " + JSON.stringify(r)).join(",\n") + "\n]\n" : "[]\n");
    return 0;
  } catch (e) {
    err(`xenmm s2walk: internal error: ${(e as Error).message.split("\n")[0]}\n`);
    return 1;
  }
}

// Allow `tsx src/cli/s2walk.ts FILE.json` directly.
if (process.argv[1] && /s2walk\.[jt]s$/.test(process.argv[1])) {
  s2walkMain(process.argv.slice(2)).then((c) => process.exit(c));
}
