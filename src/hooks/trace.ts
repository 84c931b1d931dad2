// A trace writer: every hypercall entry/exit, P2M change and (optionally)
// lock event of a machine as JSON lines.
//
//   {"ev":"enter","seq":0,"req":{...},"caller":1,"vcpu":0}
//   {"ev":"p2m","seq":0,"domid":1,"slot":1,"gfn":"0x40000","level":3,"old":"0x0","new":"0x...","oldDecoded":...}
//   {"ev":"exit","seq":0,"rc":0,"result":{...}}
//   {"ev":"lock","seq":0,"kind":"acquire","lock":"d1.p2m_lock","cpu":0,"mode":"write"}
// bigints are written as "0x..." strings (GFNs, MFNs, descriptors) so a line
// parses with plain JSON.parse.

import { observe, type HookableMachine, type Observer } from "./index.js";
import { checkObject, XenmmArgumentError } from "../api/errors.js";
import { describeDescriptor } from "../inspect/decode.js";

export interface TraceOptions {
  /** Also record lock events (verbose). Default false. */
  locks?: boolean;
  /** Add a one-line description of P2M descriptors. Default true. */
  describe?: boolean;
}

export type LineSink = ((line: string) => void) | { write(s: string): unknown };

const big = (_k: string, v: unknown) => (typeof v === "bigint" ? "0x" + v.toString(16) : v);
export const traceLine = (o: unknown): string => JSON.stringify(o, big);

/**
 * Start tracing `machine` into `sink` (a function receiving lines without the
 * newline, or a writable stream receiving "line\n"). Returns stop().
 */
export function traceMachine(machine: HookableMachine, sink: LineSink, opt: TraceOptions = {}): () => void {
  checkObject("machine", machine);
  const write = typeof sink === "function" ? sink
    : sink && typeof (sink as any).write === "function" ? (l: string) => { (sink as any).write(l + "\n"); }
    : (() => { throw new XenmmArgumentError("sink", "expected a function or a writable stream", sink); })();
  const desc = opt.describe !== false;
  const o: Observer = {
    hypercallEntry: (e) => write(traceLine({ ev: "enter", seq: e.seq, ...(e.raw ? { raw: true } : {}), req: e.req, caller: e.ctx?.caller, vcpu: e.ctx?.vcpu })),
    hypercallExit: (e) => write(traceLine(e.error !== undefined
      ? { ev: "exit", seq: e.seq, error: String((e.error as Error)?.message ?? e.error) }
      : { ev: "exit", seq: e.seq, rc: e.result?.rc, result: e.result })),
    p2mChange: (e) => write(traceLine({
      ev: "p2m", seq: e.seq, domid: e.domid, slot: e.slot, gfn: e.gfn, level: e.level, old: e.old, new: e.new,
      ...(desc ? { oldDesc: describeDescriptor(e.old, e.level), newDesc: describeDescriptor(e.new, e.level) } : {}),
    })),
    p2mLost: (n) => write(traceLine({ ev: "p2m-lost", count: n })),
  };
  if (opt.locks) o.lock = (e) => write(traceLine({ ev: "lock", ...e }));
  try {
    return observe(machine, o);
  } catch {
    // no P2M log in this core build: trace hypercalls (and locks) only, and say so
    delete o.p2mChange; delete o.p2mLost;
    write(traceLine({ ev: "note", message: "P2M-change log unavailable in this core build; P2M events not traced" }));
    return observe(machine, o);
  }
}

/** Collect a trace in memory (array of lines). */
export function traceToArray(machine: HookableMachine, opt?: TraceOptions): { lines: string[]; stop: () => void } {
  const lines: string[] = [];
  const stop = traceMachine(machine, (l) => lines.push(l), opt);
  return { lines, stop };
}

/**
 * Execute a run document with a tracer attached from the start; every event
 * goes to `sink` as one JSON line. Returns the machine at the end.
 */
export async function traceRun(doc: unknown, sink: LineSink, opt?: TraceOptions) {
  const { runDocumentMachine } = await import("../inspect/run-machine.js");
  let stop: (() => void) | undefined;
  try {
    return await runDocumentMachine(doc as object, { onMachine: (m) => { stop = traceMachine(m, sink, opt); } });
  } finally {
    stop?.();
  }
}
