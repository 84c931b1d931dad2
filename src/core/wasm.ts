// Loading the core: the .wasm is compiled once per process and instantiated
// once per machine, so machines never share linear memory.
//
// asc's generated bindings (`--bindings raw`, the instantiable form of the
// esm bindings) convert u64 results to unsigned BigInt and bool to boolean.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import type { instantiate as instantiateType } from "../../build/release.js";

export type CoreExports = Awaited<ReturnType<typeof instantiateType>>;

const here = dirname(fileURLToPath(import.meta.url));

/** Where the build lives: from src/core (tsx) or dist/src/core (compiled). */
function buildDir(): string {
  for (const up of ["../../build", "../../../build"]) {
    const p = join(here, up);
    try { readFileSync(join(p, "release.wasm"), { flag: "r" }); return p; } catch { /* next */ }
  }
  throw new Error("xenmm: build/release.wasm not found; run `npm run asbuild`");
}

export type Flavour = "release" | "debug";

interface Loaded { module: WebAssembly.Module; instantiate: typeof instantiateType }
const cache = new Map<Flavour, Promise<Loaded>>();

export function defaultFlavour(): Flavour {
  return process.env.XENMM_WASM === "debug" ? "debug" : "release";
}

function load(flavour: Flavour): Promise<Loaded> {
  let p = cache.get(flavour);
  if (!p) {
    p = (async () => {
      const dir = buildDir();
      const bytes = readFileSync(join(dir, `${flavour}.wasm`));
      const module = await WebAssembly.compile(bytes);
      const mod = await import(join(dir, `${flavour}.js`));
      return { module, instantiate: mod.instantiate as typeof instantiateType };
    })();
    cache.set(flavour, p);
  }
  return p;
}

/** An AssemblyScript string at `ptr` (UTF-16, byte length at ptr - 4). */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return "";
  const len = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, len >>> 1));
}

/** A fresh core instance with its own linear memory. */
export async function createCoreInstance(flavour: Flavour = defaultFlavour()): Promise<CoreExports> {
  const { module, instantiate } = await load(flavour);
  let memory: WebAssembly.Memory | undefined;
  const core = await instantiate(module, {
    env: {
      abort(msg: number, file: number, line: number, col: number) {
        const m = memory ? `${readAsString(memory, msg)} at ${readAsString(memory, file)}:${line}:${col}` : "abort";
        throw new Error(`xenmm core abort: ${m}`);
      },
    },
  } as any);
  memory = core.memory;
  return core;
}

/** Same, synchronously, once the module has been loaded by an earlier call. */
export async function preloadCore(flavour: Flavour = defaultFlavour()): Promise<void> {
  await load(flavour);
}
