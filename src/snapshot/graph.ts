// A JSON codec for the host layer's object graph (MachineImpl and what hangs
// off it), used by snapshots and the state hash.
//
// Encoding walks own enumerable fields. Data (numbers, strings, bigints,
// arrays, Maps, Sets, typed arrays, plain objects, class instances) is kept;
// functions are skipped (closures are rebuilt by the constructors on
// restore); locks must be free (a snapshot is taken between hypercalls) and
// are kept by reference only; the core and the machine/domain back-pointers
// are references. Objects reachable twice are written once and referenced
// by id afterwards, so shared state stays shared.
//
// Restoring *patches* a freshly constructed machine: fields of objects that
// exist there (same class) are updated in place, which keeps the closures
// the constructors installed; other objects are created from their class's
// prototype (looked up by name in a registry built from the fresh machine).

import { Lock } from "../locks/index.js";
import { SnapshotFormatError, XenmmStateError } from "../api/errors.js";

export type Enc = null | boolean | number | bigint | string | Enc[] | { [k: string]: Enc };

export interface GraphRefs {
  /** Objects written as named references (e.g. the machine itself). */
  named: Map<object, string>;
  /** Objects with a key-based reference (e.g. domains by domid). */
  keyed: (o: object) => string | undefined;
  /** Field names never written (on any object). */
  skipFields: Set<string>;
  /** Buffers of Wasm memories: views over them are skipped. */
  memoryBuffers?: () => ArrayBuffer[];
}

export class GraphEncoder {
  private ids = new Map<object, number>();
  private next = 0;
  constructor(private readonly refs: GraphRefs) {}

  encode(v: unknown, path: string): Enc {
    switch (typeof v) {
      case "undefined": return { $u: 1 };
      case "boolean": case "string": return v;
      case "number": return Number.isFinite(v) ? (Object.is(v, -0) ? { $n: "-0" } : v) : { $n: String(v) };
      case "bigint": return { $b: v.toString() };
      case "function": return { $skip: 1 };
      case "symbol": throw new XenmmStateError(`cannot snapshot a symbol at ${path}`);
    }
    if (v === null) return null;
    const o = v as object;
    const name = this.refs.named.get(o);
    if (name !== undefined) return { $ref: name };
    const key = this.refs.keyed(o);
    if (key !== undefined) return { $key: key };
    if (o instanceof Lock) {
      if (o.isLocked()) throw new XenmmStateError(`cannot snapshot while ${o.name} is held (${o.describeHolders()}); snapshot between hypercalls`);
      return { $lock: o.name };
    }
    if (o instanceof WebAssembly.Memory || o instanceof WebAssembly.Instance || o instanceof WebAssembly.Module) return { $skip: 1 };
    if (ArrayBuffer.isView(o)) {
      // views over Wasm memory (live or detached by growth) are caches, not state
      const buf = (o as any).buffer as ArrayBuffer;
      let detached = false;
      try { detached = (buf as any).detached === true || buf.byteLength === 0; } catch { detached = true; }
      if (detached || this.refs.memoryBuffers?.().includes(buf)) return { $skip: 1 };
    }
    const seen = this.ids.get(o);
    if (seen !== undefined) return { $id: seen };
    const id = this.next++;
    this.ids.set(o, id);
    if (ArrayBuffer.isView(o)) {
      const b = o as unknown as { buffer: ArrayBuffer; byteOffset: number; byteLength: number };
      return { $ta: o.constructor.name, id, d: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64") };
    }
    if (Array.isArray(o)) {
      const a: Enc[] = new Array(o.length);
      for (let i = 0; i < o.length; i++) a[i] = this.encode(o[i], `${path}[${i}]`);
      return { $a: a, id };
    }
    if (o instanceof Map) return { $map: [...o.entries()].map(([k, x], i) => [this.encode(k, `${path}<k${i}>`), this.encode(x, `${path}<${i}>`)]), id };
    if (o instanceof Set) return { $set: [...o.values()].map((x, i) => this.encode(x, `${path}{${i}}`)), id };
    return this.fields(o, id, path);
  }

  /** Encode `o`'s fields even if `o` itself is a named/keyed reference (a root). */
  encodeRoot(o: object, path: string): Enc {
    const id = this.next++;
    this.ids.set(o, id);
    return this.fields(o, id, path);
  }

  private fields(o: object, id: number, path: string): Enc {
    const f: { [k: string]: Enc } = {};
    for (const k of Object.keys(o)) {
      if (this.refs.skipFields.has(k)) continue;
      const x = (o as any)[k];
      if (typeof x === "function") continue;
      f[k] = this.encode(x, `${path}.${k}`);
    }
    return { $o: o.constructor?.name ?? "Object", id, f };
  }
}

export interface DecodeCtx {
  named: Map<string, object>;
  keyed: (key: string) => object | undefined;
  /** Class name -> prototype. */
  protos: Map<string, object>;
  skipFields: Set<string>;
  /** Called with each live lock that patch() finds where the encoding has one (which says: free). */
  onLock?: (live: Lock) => void;
}

const enum T { Value, Ref, Key, Id, Lock, Skip, Typed, Arr, Map, Set, Obj }

/**
 * An Enc node read once: its kind, its scalar (undefined, -0 and bigints
 * already converted: they are immutable values, so every decode may share
 * them) and its children. A template (src/snapshot/template.ts) patches from
 * the same tree on every reset; walking the JSON form each time asked each
 * node "$skip" in ..., "$lock" in ... and so on through megamorphic lookups,
 * which was most of a reset's host-side cost.
 */
export class GraphPlan {
  constructor(
    readonly t: T,
    /** Value: the value; Ref, Key, Lock: the name; Id: the id referred to; Typed: the constructor; Obj: the class name. */
    readonly v: unknown,
    /** The id this node defines (Typed, Arr, Map, Set, Obj). */
    readonly id: number,
    readonly path: string,
    /** Arr and Set: the items; Map: keys and values alternating; Obj: the field values. */
    readonly kids: GraphPlan[],
    /** Obj: the field names (parallel to kids). */
    readonly keys: string[],
    /** Typed: the payload. */
    readonly bytes: Uint8Array | null,
  ) {}
}

const NONE: GraphPlan[] = [];
const NO_KEYS: string[] = [];

function bad(path: string, why: string): never {
  throw new SnapshotFormatError("host", `${path}: ${why}`);
}

/** Check and convert `e` (the structural errors the decoder reports are found here). */
export function planGraph(e: Enc, path: string): GraphPlan {
  const leaf = (t: T, v: unknown, id = -1) => new GraphPlan(t, v, id, path, NONE, NO_KEYS, null);
  if (e === null || typeof e === "boolean" || typeof e === "string" || typeof e === "number" || typeof e === "bigint") return leaf(T.Value, e);
  if (Array.isArray(e)) bad(path, "bare array");
  if ("$u" in e) return leaf(T.Value, undefined);
  if ("$n" in e) return leaf(T.Value, Number(e.$n));
  if ("$b" in e) return leaf(T.Value, BigInt(e.$b as string));
  if ("$ref" in e) return leaf(T.Ref, e.$ref);
  if ("$key" in e) return leaf(T.Key, e.$key);
  if ("$id" in e) return leaf(T.Id, e.$id);
  if ("$lock" in e) return leaf(T.Lock, e.$lock);
  if ("$skip" in e) return leaf(T.Skip, undefined);
  const id = e.id as number;
  if ("$ta" in e) {
    const C = (globalThis as any)[e.$ta as string];
    if (typeof C !== "function" || !ArrayBuffer.isView(C.prototype) && !(C.BYTES_PER_ELEMENT > 0)) bad(path, `unknown typed array ${e.$ta}`);
    return new GraphPlan(T.Typed, C, id, path, NONE, NO_KEYS, Buffer.from(e.d as string, "base64"));
  }
  if ("$a" in e) return new GraphPlan(T.Arr, undefined, id, path, (e.$a as Enc[]).map((x, i) => planGraph(x, `${path}[${i}]`)), NO_KEYS, null);
  if ("$map" in e) return new GraphPlan(T.Map, undefined, id, path, (e.$map as Enc[][]).flatMap(([k, x]) => [planGraph(k, path), planGraph(x, path)]), NO_KEYS, null);
  if ("$set" in e) return new GraphPlan(T.Set, undefined, id, path, (e.$set as Enc[]).map((x) => planGraph(x, path)), NO_KEYS, null);
  if ("$o" in e) {
    const f = e.f as { [k: string]: Enc };
    const keys = Object.keys(f);
    return new GraphPlan(T.Obj, e.$o, id, path, keys.map((k) => planGraph(f[k], `${path}.${k}`)), keys, null);
  }
  bad(path, "unrecognised value");
}

export class GraphDecoder {
  private byId = new Map<number, unknown>();
  /**
   * Live objects patch() has already made into some node. A live graph may
   * share one object where the snapshot has two (an episode assigned one
   * field from another): the second node must get an object of its own, or
   * the restore would keep the sharing.
   */
  private readonly claimed = new Set<object>();
  constructor(private readonly ctx: DecodeCtx) {}

  /** A new value for `p` (objects created from prototypes). */
  decode(p: GraphPlan): unknown {
    switch (p.t) {
      case T.Value: return p.v;
      case T.Skip: return undefined;
      case T.Ref: { const r = this.ctx.named.get(p.v as string); if (!r) bad(p.path, `unknown reference ${p.v}`); return r; }
      case T.Key: { const r = this.ctx.keyed(p.v as string); if (!r) bad(p.path, `unknown reference ${p.v}`); return r; }
      case T.Id: { if (!this.byId.has(p.v as number)) bad(p.path, `dangling id ${p.v}`); return this.byId.get(p.v as number); }
      case T.Lock: bad(p.path, `lock ${p.v} cannot be created from a snapshot`);
      case T.Typed: {
        const bytes = p.bytes!;
        const ab = new ArrayBuffer(bytes.length);
        new Uint8Array(ab).set(bytes);
        const t = new (p.v as new (b: ArrayBuffer) => unknown)(ab);
        this.byId.set(p.id, t);
        return t;
      }
      case T.Arr: {
        const src = p.kids;
        const a: unknown[] = new Array(src.length);
        this.byId.set(p.id, a);
        for (let i = 0; i < src.length; i++) a[i] = this.decode(src[i]);
        return a;
      }
      case T.Map: {
        const m = new Map();
        this.byId.set(p.id, m);
        const kv = p.kids;
        for (let i = 0; i < kv.length; i += 2) { const k = this.decode(kv[i]); m.set(k, this.decode(kv[i + 1])); }
        return m;
      }
      case T.Set: {
        const s = new Set();
        this.byId.set(p.id, s);
        for (const x of p.kids) s.add(this.decode(x));
        return s;
      }
      case T.Obj: {
        const cls = p.v as string;
        const proto = cls === "Object" ? Object.prototype : this.ctx.protos.get(cls);
        if (!proto) bad(p.path, `unknown class ${cls}`);
        const o = Object.create(proto);
        this.byId.set(p.id, o);
        for (let i = 0; i < p.keys.length; i++) {
          const x = p.kids[i];
          if (x.t !== T.Skip) o[p.keys[i]] = this.decode(x);
        }
        return o;
      }
    }
  }

  /**
   * A typed array of the same class and size that owns its whole buffer gets
   * the bytes in place: an ArrayBuffer per field and reset is what a template
   * reset would otherwise spend its time (and the GC's) on.
   */
  private fillTypedArray(cur: unknown, p: GraphPlan): boolean {
    if (!ArrayBuffer.isView(cur) || cur.constructor !== p.v || this.byId.has(p.id) || this.claimed.has(cur)) return false;
    const bytes = p.bytes!;
    const buf = cur.buffer as ArrayBuffer;
    // Views into a larger buffer (or whole Wasm memories, 64 KiB pages) are not the field's own bytes.
    if (cur.byteOffset !== 0 || cur.byteLength !== bytes.length || buf.byteLength !== bytes.length || buf.byteLength % 65536 === 0) return false;
    new Uint8Array(buf).set(bytes);
    this.byId.set(p.id, cur);
    this.claimed.add(cur);
    return true;
  }

  /** Update `live` (an object of the same class) from `e` (or its plan, made once and patched from many times) in place. */
  patch(live: any, e: Enc | GraphPlan, path: string): void {
    const p = e instanceof GraphPlan ? e : planGraph(e, path);
    if (p.t !== T.Obj) bad(path, "expected an object");
    const cls = p.v as string;
    const liveCls = live?.constructor?.name ?? "Object";
    if (liveCls !== cls) bad(path, `class ${cls} in the snapshot, ${liveCls} in this build`);
    this.byId.set(p.id, live);
    this.claimed.add(live);
    const frozen = Object.isFrozen(live);
    for (let i = 0; i < p.keys.length; i++) {
      const k = p.keys[i];
      const x = p.kids[i];
      const cur = live[k];
      if (x.t === T.Skip) continue;
      if (x.t === T.Lock) {
        if (!(cur instanceof Lock)) bad(x.path, "lock missing in this build");
        this.ctx.onLock?.(cur);
        continue;
      }
      if (typeof cur === "function") continue;
      if (x.t === T.Typed && this.fillTypedArray(cur, x)) continue;
      if (x.t === T.Id && cur && typeof cur === "object" && this.byId.get(x.v as number) === cur) continue;
      if (x.t === T.Obj && cur && typeof cur === "object" && (cur.constructor?.name ?? "Object") === x.v && !Object.isFrozen(cur) && !this.claimed.has(cur)) {
        this.patch(cur, x, x.path);
        continue;
      }
      const v = this.decode(x);
      if (frozen) continue;
      try { live[k] = v; } catch (err) { bad(x.path, `cannot assign (${(err as Error).message})`); }
    }
  }
}

/** Class name -> prototype for every class instance reachable from `roots`. */
export function collectPrototypes(roots: unknown[], extra: Array<{ name: string; prototype: object }>, skip: Set<string>): Map<string, object> {
  const protos = new Map<string, object>();
  for (const c of extra) protos.set(c.name, c.prototype);
  const seen = new Set<unknown>();
  const visit = (v: unknown, depth: number) => {
    if (!v || typeof v !== "object" || seen.has(v) || depth > 8) return;
    seen.add(v);
    if (v instanceof WebAssembly.Memory || ArrayBuffer.isView(v)) return;
    const p = Object.getPrototypeOf(v);
    if (p && p !== Object.prototype && p !== Array.prototype && p !== Map.prototype && p !== Set.prototype) {
      const n = p.constructor?.name;
      if (n && !protos.has(n)) protos.set(n, p);
    }
    if (v instanceof Map) { for (const x of v.values()) visit(x, depth + 1); return; }
    if (v instanceof Set || Array.isArray(v)) { for (const x of v) visit(x, depth + 1); return; }
    for (const k of Object.keys(v)) if (!skip.has(k)) visit((v as any)[k], depth + 1);
  };
  for (const r of roots) visit(r, 0);
  return protos;
}
