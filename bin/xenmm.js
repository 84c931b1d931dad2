#!/usr/bin/env node
// The xenmm command. Runs the compiled CLI when the package was built
// (dist/), otherwise the TypeScript sources through tsx (a source checkout).
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const args = process.argv.slice(2);

// A fuzz campaign with a worker thread for every CPU runs V8 single-threaded:
// otherwise V8's own GC and compiler threads (about 0.2 of a core per busy
// worker) compete with the workers. Measured on 2 CPUs, 2 workers: ~1.3x one
// worker with them, ~1.5x without (bench/fuzz.bench.ts). Fewer workers than
// CPUs leave room for them, so the flags are not worth their cost there.
if (args[0] === "fuzz" && !process.execArgv.includes("--single-threaded") && process.env.XENMM_NO_REEXEC === undefined) {
  const i = args.indexOf("--workers");
  const workers = i >= 0 ? Number(args[i + 1]) : 1;
  if (workers >= 2 && workers >= availableParallelism()) {
    const r = spawnSync(process.execPath, ["--single-threaded", "--max-semi-space-size=32", ...process.execArgv, fileURLToPath(import.meta.url), ...args], { stdio: "inherit" });
    process.exit(r.status ?? 1);
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const compiled = join(root, "dist", "src", "cli", "main.js");
let main;
if (existsSync(compiled)) {
  ({ main } = await import(pathToFileURL(compiled).href));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(pathToFileURL(join(root, "src", "cli", "main.ts")).href));
}
process.exitCode = await main(process.argv.slice(2));
