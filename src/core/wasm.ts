// Loading the core: the .wasm is compiled once per process and instantiated
// once per machine, so machines never share linear memory.
//
// Two ways in:
//  * createCoreInstance(): asc's generated bindings (`--bindings raw`, the
//    instantiable form of the esm bindings), which convert u64 results to
//    unsigned BigInt and bool to boolean. What machines use.
//  * instantiateRawSync(): the bare exports, synchronously (u64 results are
//    signed BigInt: wrap with BigInt.asUintN(64, x)). For hot loops that
//    manage their own conversions, such as the walker.

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import type { instantiate as instantiateType } from "../../build/release.js";

export type CoreExports = Awaited<ReturnType<typeof instantiateType>>;
export type Flavour = "release" | "debug";

const here = dirname(fileURLToPath(import.meta.url));

/** Where the build lives: from src/core (tsx) or dist/src/core (compiled). */
function buildDir(): string {
  for (const up of ["../../build", "../../../build"]) {
    const p = join(here, up);
    if (existsSync(join(p, "release.wasm"))) return p;
  }
  throw new Error("xenmm: build/release.wasm not found; run `npm run asbuild`");
}

export function defaultFlavour(): Flavour {
  return process.env.XENMM_WASM === "debug" ? "debug" : "release";
}

const modules = new Map<Flavour, WebAssembly.Module>();

/** The compiled module, compiled once per process. */
export function coreModule(flavour: Flavour = defaultFlavour()): WebAssembly.Module {
  let m = modules.get(flavour);
  if (!m) {
    m = new WebAssembly.Module(readFileSync(join(buildDir(), `${flavour}.wasm`)));
    modules.set(flavour, m);
  }
  return m;
}

const bindings = new Map<Flavour, Promise<typeof instantiateType>>();

function loadBindings(flavour: Flavour): Promise<typeof instantiateType> {
  let p = bindings.get(flavour);
  if (!p) {
    p = import(join(buildDir(), `${flavour}.js`)).then((mod) => mod.instantiate as typeof instantiateType);
    bindings.set(flavour, p);
  }
  return p;
}

/** An AssemblyScript string at `ptr` (UTF-16, byte length at ptr - 4). */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return "";
  const len = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, len >>> 1));
}

/** The `env` imports: AssemblyScript's abort, reported loudly with its message. */
function coreImports(memory: () => WebAssembly.Memory | undefined): { env: Record<string, unknown> } {
  return {
    env: {
      abort(msg: number, file: number, line: number, col: number) {
        const mem = memory();
        const m = mem ? `${readAsString(mem, msg)} at ${readAsString(mem, file)}:${line}:${col}` : "abort";
        throw new Error(`xenmm core abort: ${m}`);
      },
    },
  };
}

/** A fresh core instance with its own linear memory. */
export async function createCoreInstance(flavour: Flavour = defaultFlavour()): Promise<CoreExports> {
  const instantiate = await loadBindings(flavour);
  let memory: WebAssembly.Memory | undefined;
  const core = await instantiate(coreModule(flavour), coreImports(() => memory) as any);
  memory = core.memory;
  return core;
}

/** A fresh instance's bare exports, synchronously. */
export function instantiateRawSync<T>(flavour: Flavour = defaultFlavour()): T {
  let memory: WebAssembly.Memory | undefined;
  const inst = new WebAssembly.Instance(coreModule(flavour), coreImports(() => memory) as WebAssembly.Imports);
  memory = inst.exports.memory as WebAssembly.Memory;
  return inst.exports as unknown as T;
}
