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

/** Decoded typed-array payloads by encoding node: a template (src/snapshot/template.ts) decodes the same nodes on every reset. */
const taBytes = new WeakMap<object, Uint8Array>();

function taPayload(e: { [k: string]: Enc }): Uint8Array {
  let bytes = taBytes.get(e);
  if (bytes === undefined) {
    bytes = Buffer.from(e.d as string, "base64");
    taBytes.set(e, bytes);
  }
  return bytes;
}

const isObj = (e: Enc): e is { [k: string]: Enc } => typeof e === "object" && e !== null && !Array.isArray(e);

export class GraphDecoder {
  private byId = new Map<number, unknown>();
  constructor(private readonly ctx: DecodeCtx) {}

  private bad(path: string, why: string): never {
    throw new SnapshotFormatError("host", `${path}: ${why}`);
  }

  /** A new value for `e` (objects created from prototypes). */
  decode(e: Enc, path: string): unknown {
    if (e === null || typeof e === "boolean" || typeof e === "string" || typeof e === "number" || typeof e === "bigint") return e;
    if (Array.isArray(e)) this.bad(path, "bare array");
    if ("$u" in e) return undefined;
    if ("$n" in e) return Number(e.$n);
    if ("$b" in e) return BigInt(e.$b as string);
    if ("$ref" in e) { const r = this.ctx.named.get(e.$ref as string); if (!r) this.bad(path, `unknown reference ${e.$ref}`); return r; }
    if ("$key" in e) { const r = this.ctx.keyed(e.$key as string); if (!r) this.bad(path, `unknown reference ${e.$key}`); return r; }
    if ("$id" in e) { if (!this.byId.has(e.$id as number)) this.bad(path, `dangling id ${e.$id}`); return this.byId.get(e.$id as number); }
    if ("$lock" in e) this.bad(path, `lock ${e.$lock} cannot be created from a snapshot`);
    if ("$skip" in e) return undefined;
    const id = e.id as number;
    if ("$ta" in e) {
      const C = (globalThis as any)[e.$ta as string];
      if (typeof C !== "function" || !ArrayBuffer.isView(C.prototype) && !(C.BYTES_PER_ELEMENT > 0)) this.bad(path, `unknown typed array ${e.$ta}`);
      const bytes = taPayload(e);
      const ab = new ArrayBuffer(bytes.length);
      new Uint8Array(ab).set(bytes);
      const t = new C(ab);
      this.byId.set(id, t);
      return t;
    }
    if ("$a" in e) {
      const src = e.$a as Enc[];
      const a: unknown[] = new Array(src.length);
      this.byId.set(id, a);
      for (let i = 0; i < src.length; i++) { const x = src[i]; if (!(isObj(x) && "$u" in x)) a[i] = this.decode(x, `${path}[${i}]`); else a[i] = undefined; }
      // keep holes as holes where the source had undefined? undefined and holes behave alike for our code
      return a;
    }
    if ("$map" in e) {
      const m = new Map();
      this.byId.set(id, m);
      for (const [k, x] of e.$map as Enc[][]) m.set(this.decode(k, path), this.decode(x, path));
      return m;
    }
    if ("$set" in e) {
      const s = new Set();
      this.byId.set(id, s);
      for (const x of e.$set as Enc[]) s.add(this.decode(x, path));
      return s;
    }
    if ("$o" in e) {
      const cls = e.$o as string;
      const proto = cls === "Object" ? Object.prototype : this.ctx.protos.get(cls);
      if (!proto) this.bad(path, `unknown class ${cls}`);
      const o = Object.create(proto);
      this.byId.set(id, o);
      const f = e.f as { [k: string]: Enc };
      for (const k of Object.keys(f)) {
        const x = f[k];
        if (isObj(x) && "$skip" in x) continue;
        o[k] = this.decode(x, `${path}.${k}`);
      }
      return o;
    }
    this.bad(path, "unrecognised value");
  }

  /**
   * A typed array of the same class and size that owns its whole buffer gets
   * the bytes in place: an ArrayBuffer per field and reset is what a template
   * reset would otherwise spend its time (and the GC's) on.
   */
  private fillTypedArray(cur: unknown, x: { [k: string]: Enc }): boolean {
    if (!ArrayBuffer.isView(cur) || cur.constructor.name !== x.$ta || this.byId.has(x.id as number)) return false;
    const bytes = taPayload(x);
    const buf = cur.buffer as ArrayBuffer;
    // Views into a larger buffer (or whole Wasm memories, 64 KiB pages) are not the field's own bytes.
    if (cur.byteOffset !== 0 || cur.byteLength !== bytes.length || buf.byteLength !== bytes.length || buf.byteLength % 65536 === 0) return false;
    new Uint8Array(buf).set(bytes);
    this.byId.set(x.id as number, cur);
    return true;
  }

  /** Update `live` (an object of the same class) from `e` in place. */
  patch(live: any, e: Enc, path: string): void {
    if (!isObj(e) || !("$o" in e)) this.bad(path, "expected an object");
    const cls = e.$o as string;
    const liveCls = live?.constructor?.name ?? "Object";
    if (liveCls !== cls) this.bad(path, `class ${cls} in the snapshot, ${liveCls} in this build`);
    this.byId.set(e.id as number, live);
    const f = e.f as { [k: string]: Enc };
    for (const k of Object.keys(f)) {
      const x = f[k];
      const cur = live[k];
      if (isObj(x) && ("$skip" in x || "$lock" in x)) {
        if ("$lock" in x) {
          if (!(cur instanceof Lock)) this.bad(`${path}.${k}`, "lock missing in this build");
          this.ctx.onLock?.(cur);
        }
        continue;
      }
      if (typeof cur === "function") continue;
      if (isObj(x) && "$ta" in x && this.fillTypedArray(cur, x)) continue;
      if (isObj(x) && "$id" in x && cur && typeof cur === "object" && this.byId.get(x.$id as number) === cur) continue;
      if (isObj(x) && "$o" in x && cur && typeof cur === "object" && (cur.constructor?.name ?? "Object") === x.$o && !Object.isFrozen(cur)) {
        this.patch(cur, x, `${path}.${k}`);
        continue;
      }
      const v = this.decode(x, `${path}.${k}`);
      if (Object.isFrozen(live)) continue;
      try { live[k] = v; } catch (err) { this.bad(`${path}.${k}`, `cannot assign (${(err as Error).message})`); }
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
