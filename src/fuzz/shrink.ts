// Reduce a failing fuzz run to a minimal reproducer:
//   1. cut everything after the step where the violation appeared;
//   2. ddmin (Zeller's delta debugging) over the steps;
//   3. per step: split `par` groups into sequential calls or drop calls from
//      them (fewer interleaving switches), drop pinned decisions;
//   4. drop domains the remaining steps never mention;
//   5. smaller numbers: each numeric argument towards 0 / values already used.
// The predicate is "replaying the candidate shows the same invariant".

import type { FuzzCall, FuzzDomainSpec, FuzzStep } from "./generator.js";
import type { InvariantName } from "./invariants.js";
import type { Arch, Revision } from "../machine/api.js";

export interface FuzzRepro {
  revision: Revision;
  arch: Arch;
  ipaBits?: number;
  domains: FuzzDomainSpec[];
  /** The world's `gnttab=max-ver` (WorldConfig.gnttabMaxVersion; absent = 2). */
  gnttabMaxVersion?: 1 | 2;
  steps: FuzzStep[];
  /** What the replay must show (variant: see Violation.variant, without "/par"). */
  expect?: { invariant: InvariantName; variant?: string; op: number; message: string };
  /** Provenance. */
  seed?: number;
}

/** Replays a candidate; returns the index of the first step showing `target` (see matches()), or -1. */
export type ReproTest = (r: FuzzRepro, target: string) => Promise<number>;

export interface ShrinkOptions {
  /** Give up after this many candidate replays (default 4000). */
  maxTests?: number;
  /** Wall-clock budget in ms (default 60 s). */
  timeoutMs?: number;
}

export async function shrink(repro: FuzzRepro, target: string, test: ReproTest, opts: ShrinkOptions = {}): Promise<FuzzRepro> {
  const maxTests = opts.maxTests ?? 4000;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let tests = 0;
  const budget = () => tests < maxTests && Date.now() < deadline;
  let best: FuzzRepro = { ...repro, steps: repro.steps.slice() };
  let bestOp = await test(best, target);
  if (bestOp < 0) return repro; // not reproducible: keep as is
  best.steps = best.steps.slice(0, bestOp + 1);

  const attempt = async (cand: FuzzRepro): Promise<boolean> => {
    if (!budget()) return false;
    tests++;
    let at: number;
    try {
      at = await test(cand, target);
    } catch {
      return false;
    }
    if (at < 0) return false;
    cand.steps = cand.steps.slice(0, at + 1);
    best = cand;
    bestOp = at;
    return true;
  };
  const withSteps = (steps: FuzzStep[]): FuzzRepro => ({ ...best, steps });

  for (let round = 0; round < 4 && budget(); round++) {
    const before = JSON.stringify(best.steps, bigintJson);
    // ---- ddmin over steps
    let n = 2;
    while (best.steps.length >= 2 && budget()) {
      const steps = best.steps;
      const chunk = Math.ceil(steps.length / n);
      let reduced = false;
      for (let i = 0; i < n && !reduced; i++) {
        const lo = i * chunk;
        if (lo >= steps.length) break;
        // complement first (remove one chunk)
        const comp = steps.slice(0, lo).concat(steps.slice(lo + chunk));
        if (comp.length > 0 && (await attempt(withSteps(comp)))) {
          n = Math.max(n - 1, 2);
          reduced = true;
        }
      }
      if (!reduced) {
        if (n >= steps.length) break;
        n = Math.min(n * 2, steps.length);
      }
    }
    // ---- one by one removal (ddmin's last level, cheap for short runs)
    for (let i = best.steps.length - 1; i >= 0 && budget(); i--) {
      if (best.steps.length <= 1) break;
      const s = best.steps.slice(0, i).concat(best.steps.slice(i + 1));
      await attempt(withSteps(s));
    }
    // ---- par groups: sequentialise, drop calls, unpin
    for (let i = 0; i < best.steps.length && budget(); i++) {
      const st = best.steps[i];
      if (st.kind !== "par") continue;
      const seq: FuzzStep[] = st.calls.map((call) => ({ kind: "call", call }));
      if (await attempt(withSteps(best.steps.slice(0, i).concat(seq, best.steps.slice(i + 1))))) continue;
      for (let k = 0; k < st.calls.length && st.calls.length > 2; k++) {
        const calls = st.calls.filter((_, j) => j !== k);
        const g: FuzzStep = { kind: "par", calls, sched: st.sched };
        if (await attempt(withSteps(replaceAt(best.steps, i, g)))) break;
      }
      // fewer switches: drop decision pairs one at a time (runPinned accepts any sub-log)
      for (let k = 0; budget(); ) {
        const cur = best.steps[i];
        if (cur.kind !== "par" || !cur.decisions || k >= cur.decisions.length / 2) break;
        const d = cur.decisions.slice(0, 2 * k).concat(cur.decisions.slice(2 * k + 2));
        const g: FuzzStep = { kind: "par", calls: cur.calls, sched: cur.sched, decisions: d };
        const was = cur.decisions.length;
        if (!(await attempt(withSteps(replaceAt(best.steps, i, g))))) k++;
        else {
          // The replay pins the decisions it really took (forced switches come back): progress only if shorter.
          const now = best.steps[i];
          if (now.kind !== "par" || !now.decisions || now.decisions.length >= was) k++;
        }
      }
    }
    // ---- domains never mentioned
    for (const d of best.domains.slice()) {
      if (best.domains.length <= 1 || mentions(best.steps, d.domid)) continue;
      await attempt({ ...best, domains: best.domains.filter((x) => x.domid !== d.domid) });
    }
    // ---- smaller numbers
    for (let i = 0; i < best.steps.length && budget(); i++) {
      await shrinkNumbers(i);
    }
    if (JSON.stringify(best.steps, bigintJson) === before) break;
  }
  best.expect = best.expect ? { ...best.expect, op: bestOp } : { invariant: target.split(":")[0] as InvariantName, variant: target, op: bestOp, message: "" };
  return best;

  async function shrinkNumbers(i: number): Promise<void> {
    const st = best.steps[i];
    const calls = st.kind === "call" ? [st.call] : st.kind === "par" ? st.calls : [];
    for (let c = 0; c < calls.length; c++) {
      const req = calls[c].req as unknown as Record<string, unknown>;
      for (const key of Object.keys(req)) {
        const v = req[key];
        if (key === "op") continue;
        if (Array.isArray(v)) {
          for (let k = 0; k < v.length; k++) {
            for (const cand of smaller(v[k] as number | bigint)) {
              const arr = v.slice();
              arr[k] = cand;
              if (await attempt(withSteps(replaceAt(best.steps, i, withReq(st, c, { ...req, [key]: arr }))))) break;
            }
          }
        } else if (typeof v === "number" || typeof v === "bigint") {
          for (const cand of smaller(v)) {
            if (await attempt(withSteps(replaceAt(best.steps, i, withReq(best.steps[i], c, { ...(reqOf(best.steps[i], c) as object), [key]: cand }))))) break;
          }
        }
      }
    }
  }
}

function reqOf(st: FuzzStep, c: number): unknown {
  return st.kind === "call" ? st.call.req : st.kind === "par" ? st.calls[c].req : null;
}

function withReq(st: FuzzStep, c: number, req: Record<string, unknown>): FuzzStep {
  const r = req as unknown as FuzzCall["req"];
  if (st.kind === "call") return { kind: "call", call: { caller: st.call.caller, req: r } };
  if (st.kind === "par") {
    const calls = st.calls.slice();
    calls[c] = { caller: calls[c].caller, req: r };
    return { ...st, calls };
  }
  return st;
}

function replaceAt<T>(xs: T[], i: number, x: T): T[] {
  const out = xs.slice();
  out[i] = x;
  return out;
}

/** Candidates below v, smallest first (only meaningful reductions). */
function smaller(v: number | bigint): Array<number | bigint> {
  const n = typeof v === "bigint" ? v : BigInt(v);
  if (n <= 0n) return [];
  const out: bigint[] = [0n, 1n];
  if (n > 0x100n) out.push(n >> 8n, n / 2n);
  const r = [...new Set(out.filter((x) => x < n))];
  return r.map((x) => (typeof v === "bigint" ? x : Number(x)));
}

function mentions(steps: FuzzStep[], domid: number): boolean {
  const s = JSON.stringify(steps, bigintJson);
  const calls: FuzzCall[] = steps.flatMap((st) => (st.kind === "call" ? [st.call] : st.kind === "par" ? st.calls : []));
  if (steps.some((st) => (st.kind === "create" || st.kind === "destroy") && st.domid === domid)) return true;
  for (const c of calls) {
    if (c.caller === domid) return true;
    const r = c.req as unknown as Record<string, unknown>;
    if (r.domid === domid || r.dom === domid || r.foreign_domid === domid) return true;
  }
  return s.length < 0;
}

export function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? "0x" + v.toString(16) : v;
}
