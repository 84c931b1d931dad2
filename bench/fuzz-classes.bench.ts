// Where a checked fuzz op's time goes, by kind of op: for each hypercall (and
// create / destroy), split by what the step did to the machine:
//   W  it wrote the P2M or a frame record (the core's two logs say so),
//   E  it wrote neither and failed (rc < 0),
//   Q  it wrote neither and succeeded (queries, no-op requests),
//   S  a call not issued (its caller or target domain is gone or crashed).
// Per class: its share of the ops, its share of the checked loop's time, and
// how that time splits between the host (the hypercall, or createDomain /
// destroyDomain) and the rest (the checker and the runner). Each step is
// timed with performance.now(), which adds a fixed cost to every row: read
// the shares, not the microseconds.
//   npx tsx bench/fuzz-classes.bench.ts [episodes]
import { OpGenerator, defaultDomains } from "../src/fuzz/generator.js";
import { acquireFuzzHost, releaseFuzzHost } from "../src/fuzz/machine-host.js";
import { FuzzSession } from "../src/fuzz/runner.js";
import type { FuzzHost } from "../src/fuzz/host.js";

const world = { revision: "head" as const, arch: "arm64" as const };
const EP = 2000;
const episodes = Number(process.argv[2] ?? 300);

interface Row { n: number; ms: number; callMs: number }
const rows = new Map<string, Row>();

/** Wrap the host's log readers and its entry points in place: notes whether the step wrote, and the time in the host. */
function instrument(host: FuzzHost): { wrote: () => boolean; callMs: () => number; reset: () => void } {
  const h = host as unknown as Record<string, (...a: unknown[]) => unknown>;
  const drain = h.drainP2m.bind(host), changed = h.changedFrames.bind(host);
  let w = false, t = 0;
  h.drainP2m = () => {
    const r = drain() as unknown[] | null;
    if (r === null || r.length > 0) w = true;
    return r;
  };
  h.changedFrames = (out: unknown) => {
    const ok = changed(out) as boolean;
    if (!ok || (out as number[]).length > 0) w = true;
    return ok;
  };
  for (const name of ["call", "createDomain", "destroyDomain"]) {
    const f = h[name].bind(host);
    h[name] = (...a: unknown[]) => {
      const t0 = performance.now();
      try {
        return f(...a);
      } finally {
        t += performance.now() - t0;
      }
    };
  }
  return { wrote: () => w, callMs: () => t, reset: () => ((w = false), (t = 0)) };
}

async function run(n: number, record: boolean): Promise<void> {
  for (let e = 0; e < n; e++) {
    const gen = new OpGenerator(e + 1, { domains: defaultDomains(), interleave: false });
    const host = await acquireFuzzHost(world);
    const ses = new FuzzSession(host, { fullEvery: 1e9 });
    const probe = instrument(host);
    for (let i = 0; i < EP && !ses.stopped; i++) {
      const step = gen.next();
      probe.reset();
      const t0 = performance.now();
      const out = ses.exec(step);
      const ms = performance.now() - t0;
      if (!record) continue;
      const r = out.results[0];
      const failed = r !== undefined && Number(r.rc) < 0;
      const name = step.kind === "call" ? step.call.req.op : step.kind;
      const k = `${name} ${probe.wrote() ? "W" : step.kind === "call" && r === undefined ? "S" : failed ? "E" : "Q"}`;
      let row = rows.get(k);
      if (row === undefined) rows.set(k, (row = { n: 0, ms: 0, callMs: 0 }));
      row.n++;
      row.ms += ms;
      row.callMs += probe.callMs();
    }
    releaseFuzzHost(host);
  }
}

await run(Math.max(1, episodes >> 1), false); // warm-up
await run(episodes, true);

let N = 0, T = 0, C = 0;
for (const r of rows.values()) (N += r.n), (T += r.ms), (C += r.callMs);
const byClass = new Map<string, Row>();
for (const [k, r] of rows) {
  const c = k.slice(-1);
  const b = byClass.get(c) ?? { n: 0, ms: 0, callMs: 0 };
  b.n += r.n;
  b.ms += r.ms;
  b.callMs += r.callMs;
  byClass.set(c, b);
}
const pct = (a: number, b: number) => ((a / b) * 100).toFixed(1).padStart(5) + "%";
console.log(`checked fuzz loop by kind of step: revision head, arm64, ${episodes} episodes of ${EP} ops (${N} steps)`);
console.log(`  of the checked loop's time: ${pct(C, T)} in the host, ${pct(T - C, T)} in the checker and runner`);
const line = (label: string, r: Row) =>
  console.log(`  ${label.padEnd(36)} ${pct(r.n, N)} ${pct(r.ms, T)}   ${r.callMs > 0 ? ((r.ms - r.callMs) / r.callMs).toFixed(1) + ":1" : "-"}`);
const byTime = (m: Map<string, Row>) => [...m].sort((a, b) => b[1].ms - a[1].ms);
console.log("  class                                   ops    time   checker:host");
for (const [c, r] of byTime(byClass)) line("all " + c, r);
for (const [k, r] of byTime(rows).slice(0, 16)) line(k, r);
