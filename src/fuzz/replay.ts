// Replaying fuzz reproducers (and fuzz episodes) with the invariants on.

import type { Arch, Revision } from "../machine/api.js";
import { OpGenerator, defaultDomains, type FuzzDomainSpec, type FuzzStep } from "./generator.js";
import { acquireFuzzHost, releaseFuzzHost } from "./machine-host.js";
import { matches, type KnownSighting, type Violation } from "./invariants.js";
import { FuzzSession } from "./runner.js";
import type { FuzzRepro } from "./shrink.js";

export interface WorldConfig {
  revision: Revision;
  arch: Arch;
  ipaBits?: number;
  domains?: FuzzDomainSpec[];
  /**
   * Xen's `gnttab=max-ver:N`. Default 2 here, unlike Xen on Arm (1): with
   * it set_version 1<->2 and status frames are reachable, which is where the
   * grant-table bugs are; 1 fuzzes Arm's default configuration, where they
   * are not (and arm32's set_version 2->1 BUG_ON cannot end every episode).
   */
  gnttabMaxVersion?: 1 | 2;
}

/** The world a reproducer was found in. */
export function worldOf(r: FuzzRepro): WorldConfig {
  return { revision: r.revision, arch: r.arch, ipaBits: r.ipaBits, domains: r.domains, gnttabMaxVersion: r.gnttabMaxVersion };
}

export interface ReplayResult {
  violations: Violation[];
  /** States filed under known findings (./known.ts). */
  known: KnownSighting[];
  /** Steps executed (with pinned decisions filled in for `par` steps). */
  steps: FuzzStep[];
  /** Per executed step: the per-scheduling-point vCPU trace of `par` steps. */
  traces: Array<number[] | undefined>;
  hash: string;
  crashed: boolean;
}

/** Run `steps` on a machine in the world's initial state (acquireFuzzHost); stops after the first step showing `stopOn` (if given). */
export async function replaySteps(world: WorldConfig, steps: FuzzStep[], stopOn?: string, fullEvery = 16): Promise<ReplayResult> {
  const host = await acquireFuzzHost(world);
  try {
    const s = new FuzzSession(host, { fullEvery });
    const done: FuzzStep[] = [];
    const traces: Array<number[] | undefined> = [];
    for (const st of steps) {
      const out = s.exec(st);
      traces.push(out.trace);
      done.push(st.kind === "par" && out.decisions ? { ...st, decisions: out.decisions } : st);
      if (s.stopped) break;
      if (stopOn !== undefined && s.violations.some((v) => matches(v, stopOn))) break;
    }
    const stoppedEarly = stopOn !== undefined && s.violations.some((v) => matches(v, stopOn));
    if (!stoppedEarly) s.finish();
    return { violations: s.violations, known: s.checker.known, steps: done, traces, hash: s.hash(), crashed: host.crash() !== null };
  } finally {
    releaseFuzzHost(host);
  }
}

/** Replay a reproducer; returns the violations seen (the first one of the expected invariant first). */
export async function replayRepro(r: FuzzRepro): Promise<ReplayResult> {
  return replaySteps(worldOf(r), r.steps, r.expect?.variant ?? r.expect?.invariant ?? "any");
}

/** The shrinker's predicate: index of the step where `invariant` shows up, or -1. Pins decisions into `r`. */
export async function reproTest(r: FuzzRepro, target: string): Promise<number> {
  const res = await replaySteps(worldOf(r), r.steps, target);
  const v = res.violations.find((x) => matches(x, target));
  if (v === undefined) return -1;
  r.steps = res.steps.concat(r.steps.slice(res.steps.length));
  return v.op;
}

/** A fuzz episode from a seed: the generated steps, run until `ops` or a crash. */
export async function runSeed(
  world: WorldConfig,
  seed: number,
  ops: number,
  opts: { interleave?: boolean; fullEvery?: number; stopOnFirst?: boolean } = {},
): Promise<ReplayResult & { generated: FuzzStep[] }> {
  const domains = world.domains ?? defaultDomains();
  const gen = new OpGenerator(seed, { domains, interleave: opts.interleave, arch: world.arch, ipaBits: world.ipaBits });
  const host = await acquireFuzzHost({ ...world, domains });
  try {
    const s = new FuzzSession(host, { fullEvery: opts.fullEvery ?? 64 });
    const done: FuzzStep[] = [];
    for (let i = 0; i < ops; i++) {
      const st = gen.next();
      const out = s.exec(st);
      done.push(st.kind === "par" && out.decisions ? { ...st, decisions: out.decisions } : st);
      if (s.stopped) break;
      if (opts.stopOnFirst && s.violations.length > 0) break;
    }
    if (!s.stopped) s.finish();
    return { violations: s.violations, known: s.checker.known, steps: done, traces: [], generated: done, hash: s.hash(), crashed: host.crash() !== null };
  } finally {
    releaseFuzzHost(host);
  }
}
