/**
 * Synchronous twins of lock-point generators.
 *
 * Handlers are written once, as generators that `yield*` at every lock
 * operation, because that is what lets the scheduler interleave vCPUs. A
 * hypercall that runs alone has nobody to interleave with, yet it would still
 * pay for a generator object per call level and the iterator protocol at every
 * lock point (about 30 ns a level in V8, more than the core work of a P2M
 * update). So each generator gets a twin compiled from its own source text:
 * the same code with every `yield* EXPR` turned into a plain `EXPR`. The twin
 * runs while `twinMode.on` is set (Machine.hypercall); then every dual function
 * called from it runs its twin and returns the value, and every lock method
 * takes or drops the lock on the spot (Lock.acquireNow / releaseNow), with the
 * same held-lock, self-deadlock and lockdep checks as the generator path.
 * There is no second copy of any handler in the source tree.
 *
 * The text is compiled by a direct `eval` inside the handler's own module (the
 * module passes `(src) => eval(src)`), so the twin resolves names exactly as
 * the generator does, whatever the TypeScript toolchain made of the imports.
 * It sees that module's top-level scope only: a dual generator must be
 * declared at module level (or be a class method) and use no closure variables.
 * What the transformation cannot express fails when the module loads: a plain
 * `yield` (a scheduling point without a lock has no synchronous meaning). What
 * it cannot see fails on the first call: a `yield*` operand that is still an
 * iterator in twin mode (a generator that was not made dual).
 */

import type { LockGen } from "./lock.js";

/** Set while a twin runs: dual functions run their twins, locks act at once. */
export const twinMode = { on: false };

/** Evaluates source text in the scope of the module that owns the generator. */
export type ModuleEval = (src: string) => unknown;

type GenFn = (this: any, ...args: any[]) => LockGen<any>;

// `yield*` binds as loosely as an assignment, but every operand in this code
// base is a call chain (`m.p2mInsert(...)`, `(0, ns.gnttabMapFrame)(...)`,
// `d.p2mLock.writeLock(cpu)`); the scanner takes exactly such a chain.
function chainEnd(s: string, i: number): number {
  const n = s.length;
  const skipGroup = (j: number): number => {
    const open = s[j];
    const close = open === "(" ? ")" : open === "[" ? "]" : "}";
    let depth = 0;
    for (; j < n; j++) {
      const c = s[j];
      if (c === '"' || c === "'" || c === "`") {
        for (j++; j < n && s[j] !== c; j++) if (s[j] === "\\") j++;
        continue;
      }
      if (c === "(" || c === "[" || c === "{") depth++;
      else if (c === ")" || c === "]" || c === "}") {
        depth--;
        if (depth === 0) {
          if (c !== close) break;
          return j + 1;
        }
      }
    }
    throw new Error(`twin: unbalanced ${open} in ${s.slice(i, i + 80)}`);
  };
  let j = i;
  if (s[j] === "(") j = skipGroup(j);
  else {
    const m = /^[A-Za-z_$][\w$]*/.exec(s.slice(j));
    if (!m) throw new Error(`twin: unsupported yield* operand at: ${s.slice(i, i + 80)}`);
    j += m[0].length;
  }
  for (;;) {
    if (s[j] === "(" || s[j] === "[") j = skipGroup(j);
    else if (s[j] === "." || (s[j] === "?" && s[j + 1] === ".")) {
      j += s[j] === "." ? 1 : 2;
      const m = /^[A-Za-z_$][\w$]*/.exec(s.slice(j));
      if (!m) throw new Error(`twin: unsupported member access at: ${s.slice(i, i + 80)}`);
      j += m[0].length;
    } else return j;
  }
}

/** The twin's source: a factory taking the operand check, returning the function. */
export function twinSource(gen: GenFn): string {
  let src = Function.prototype.toString.call(gen);
  // Function declaration/expression or class method, sync form.
  const head = /^\s*(?:function\s*\*\s*([\w$]*)|\*\s*([\w$]+))\s*\(/.exec(src);
  if (!head) throw new Error(`twin: ${gen.name || "function"} is not a generator function`);
  const name = (head[1] || head[2] || "anonymous") + "$twin";
  src = `function ${name}(` + src.slice(head[0].length);
  let out = "";
  let at = 0;
  const re = /\byield\s*\*/g;
  for (let m = re.exec(src); m !== null; m = re.exec(src)) {
    let k = m.index + m[0].length;
    while (/\s/.test(src[k])) k++;
    const end = chainEnd(src, k);
    out += src.slice(at, m.index) + "$done(" + src.slice(k, end) + ")";
    at = end;
    re.lastIndex = end;
  }
  out += src.slice(at);
  if (/\byield\b/.test(out)) throw new Error(`twin: ${gen.name} has a plain yield, which has no synchronous form`);
  return `(($done) => (${out}))`;
}

function notIterator(v: unknown): unknown {
  if (typeof v === "object" && v !== null && typeof (v as { next?: unknown }).next === "function") {
    throw new Error("twin: a yield* operand is still an iterator in twin mode (a generator that is not dual?)");
  }
  return v;
}

/** The twin of `gen`, compiled in the scope `evaluate` belongs to. */
export function twinOf(gen: GenFn, evaluate: ModuleEval): (...args: any[]) => any {
  const factory = evaluate(twinSource(gen)) as (done: typeof notIterator) => (...args: any[]) => any;
  return factory(notIterator);
}

/**
 * Make generator functions of one module dual: `const dual = dualIn((s) => eval(s));`
 * then `export const f = dual(function* f(...) {...})`. The result has the
 * generator's type; in twin mode it returns the value instead of a generator.
 */
export function dualIn(evaluate: ModuleEval) {
  return function dual<F extends GenFn>(gen: F): F {
    const twin = twinOf(gen, evaluate);
    const f = function (this: unknown) {
      // eslint-disable-next-line prefer-rest-params
      return twinMode.on ? twin.apply(this, arguments as any) : gen.apply(this, arguments as any);
    };
    Object.defineProperty(f, "name", { value: gen.name });
    return f as unknown as F;
  };
}

/** Make the named generator methods of a class dual (on its prototype). */
export function dualMethods(proto: object, evaluate: ModuleEval, names: readonly string[]): void {
  const dual = dualIn(evaluate);
  for (const n of names) {
    const g = (proto as Record<string, unknown>)[n];
    if (typeof g !== "function") throw new Error(`twin: no method ${n}`);
    Object.defineProperty(proto, n, { value: dual(g as GenFn), writable: true, configurable: true, enumerable: false });
  }
}

/**
 * Run `call` (which calls a dual generator) in twin mode and return the
 * value: a twin-mode call returns what the generator would have returned
 * (the types still say generator: they describe the source both forms come from).
 */
export function runTwin<R>(call: () => LockGen<R>): R {
  const outer = twinMode.on;
  twinMode.on = true;
  try {
    return call() as unknown as R;
  } finally {
    twinMode.on = outer;
  }
}
