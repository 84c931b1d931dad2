// Packaging: build and pack the package from a copy of the sources, install
// the tarball into a scratch project (offline: it has no runtime
// dependencies) and use it the way an embedding tool would.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XENMM_VERSION } from "../../src/api/version.js";

const repo = join(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
let work = "";
let tarball = "";
let project = "";

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });
  } catch (e: any) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

const CONSUMER = `
import { createMachine, restoreMachine, snapshotMachine, stateHash, decodeDescriptor, encodeDescriptor,
  XenmmArgumentError, SnapshotFormatError, XENMM_VERSION, observe, viewsOf } from "xenmm";
const out = { version: XENMM_VERSION };
const m = await createMachine({ ramFrames: 0x8000 });
m.createDomain({ domid: 1, ramPages: 32 });
const seen = [];
const stop = observe(m, { hypercallExit: (e) => seen.push(e.req.op) });
out.setup = m.hypercall({ op: "GNTTABOP_setup_table", dom: 0x7ff0, nr_frames: 2 }, { caller: 1 }).rc;
out.map = m.hypercall({ op: "XENMEM_add_to_physmap", domid: 0x7ff0, space: 1, idx: 0, gpfn: 0x38000 }, { caller: 1 }).rc;
stop();
out.seen = seen;
out.entry = m.p2mEntry(1, 0x38000).type;
const snap = snapshotMachine(m);
const r = await restoreMachine(snap);
out.sameHash = stateHash(r) === stateHash(m);
out.desc = decodeDescriptor(0x00800000400007ffn).typeName;
out.roundTrip = encodeDescriptor(decodeDescriptor(0x00800000400007ffn)) === 0x00800000400007ffn;
out.frameTableBytes = viewsOf(m.core).frameTable().length;
try { await createMachine({ arch: "x86" }); } catch (e) { out.badArg = e instanceof XenmmArgumentError ? e.argument : String(e); }
try { await restoreMachine(snap.subarray(0, 100)); } catch (e) { out.badSnap = e instanceof SnapshotFormatError ? e.problem : String(e); }
console.log(JSON.stringify(out));
`;

describe("npm package", () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "xenmm-pack-"));
    const src = join(work, "src-copy");
    // a copy of what the build needs, so that the working tree (build/, dist/) is not touched
    for (const f of ["package.json", "tsconfig.json", "tsconfig.build.json", "asconfig.json", "README.md"]) {
      if (existsSync(join(repo, f))) cpSync(join(repo, f), join(src, f));
    }
    for (const d of ["assembly", "src", "bin"]) cpSync(join(repo, d), join(src, d), { recursive: true });
    symlinkSync(join(repo, "node_modules"), join(src, "node_modules"), "dir");
    run("npm", ["run", "build"], src);
    run("npm", ["pack", "--pack-destination", work], src);
    const tgz = readdirSync(work).filter((f) => f.endsWith(".tgz"));
    expect(tgz).toEqual([`xenmm-${pkg.version}.tgz`]);
    tarball = join(work, tgz[0]);
    project = join(work, "consumer");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
    run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], project);
  }, 600_000); // npm run build + npm pack + npm install: slow on a loaded machine

  afterAll(() => { if (work) rmSync(work, { recursive: true, force: true }); });

  it("has no runtime dependencies and ships the wasm", () => {
    expect(pkg.dependencies ?? {}).toEqual({});
    const files = run("tar", ["-tzf", tarball], work).split("\n");
    expect(files).toContain("package/build/release.wasm");
    expect(files).toContain("package/build/release.js");
    expect(files).toContain("package/dist/src/index.js");
    expect(files).toContain("package/dist/src/index.d.ts");
    expect(files.some((f) => f.startsWith("package/src/"))).toBe(false);
    expect(pkg.version).toBe(XENMM_VERSION);
  });

  it("imports and runs from a scratch ESM project", () => {
    writeFileSync(join(project, "use.mjs"), CONSUMER);
    const res = JSON.parse(run(process.execPath, ["use.mjs"], project).trim().split("\n").pop()!);
    expect(res).toEqual({
      version: pkg.version, setup: 0, map: 0, seen: ["GNTTABOP_setup_table", "XENMEM_add_to_physmap"],
      entry: 1, sameHash: true, desc: "p2m_ram_rw", roundTrip: true, frameTableBytes: 0x8000 * 56,
      badArg: "config.arch", badSnap: "truncated",
    });
  });

  it("its type declarations work for a TypeScript consumer", () => {
    writeFileSync(join(project, "use.ts"), [
      'import { createMachine, decodeDescriptor, snapshotMachine, type Machine, type Stage2Descriptor } from "xenmm";',
      "const m: Machine = await createMachine({ ramFrames: 0x8000 });",
      "const d: Stage2Descriptor = decodeDescriptor(1n);",
      "const bytes: Uint8Array = snapshotMachine(m);",
      "console.log(d.valid, m.arch, bytes.length, m.snapshot().length === bytes.length);",
    ].join("\n"));
    // Full library check: the declarations shipped in dist/ must resolve on their own.
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: false, types: ["node"], typeRoots: [join(repo, "node_modules/@types")] },
      files: ["use.ts"],
    }));
    run(join(repo, "node_modules/.bin/tsc"), ["-p", "."], project);
    // and a type error is caught (the declarations are really used)
    writeFileSync(join(project, "use.ts"), 'import { decodeDescriptor } from "xenmm";\nconst x: string = decodeDescriptor(1n).valid;\n');
    expect(() => run(join(repo, "node_modules/.bin/tsc"), ["-p", "."], project)).toThrow(/TS2322/);
  });

  it("installs the xenmm command", () => {
    const help = run(join(project, "node_modules/.bin/xenmm"), ["dump", "--help"], project);
    expect(help).toMatch(/^usage: xenmm dump/);
  });
});
