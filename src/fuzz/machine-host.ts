// FuzzHost over the real host layer (src/machine).

import type { Domain, MachineImpl } from "../machine/machine.js";
import { createMachine } from "../api/machine.js";
import type { DomainConfig, HypercallRequest, HypercallResult, MachineConfig } from "../machine/api.js";
import type { LockGen } from "../locks/index.js";
import type { FrameTableLayout, FuzzHost, GrantView, LockFinding, P2mWrite, PageView } from "./host.js";
import { defaultDomains, type FuzzDomainSpec } from "./generator.js";
import type { WorldConfig } from "./replay.js";
import { headerAddress, type InspectCore } from "../inspect/core-info.js";
import { P2M_LOG_BREAK, P2M_LOG_LEVEL_MASK } from "../hooks/index.js";
import { captureTemplate, resetMachine, type MachineTemplate } from "../snapshot/template.js";
import { clear } from "./clear.js";

/** RAM of a fuzz machine: small, so full frame-table scans stay cheap. */
export const FUZZ_RAM_FRAMES = 0x4000;

export function fuzzMachineConfig(world: WorldConfig): MachineConfig {
  return {
    arch: world.arch,
    revision: world.revision,
    ramFrames: FUZZ_RAM_FRAMES,
    ipaBits: world.ipaBits,
    xenOptions: { gnttabMaxVersion: world.gnttabMaxVersion ?? 2 },
  };
}

export function domainConfig(s: FuzzDomainSpec): DomainConfig {
  return { domid: s.domid, privileged: s.privileged, ramPages: s.ramPages, ramBaseGfn: s.ramBaseGfn, maxPages: s.maxPages, maxGrantFrames: s.maxGrantFrames };
}

type Snap = Map<number, { mfn: number; t: number }>;

/** drainLockFindings() when there is nothing new (callers only read it). */
const NO_FINDINGS: LockFinding[] = [];

export class MachineHost implements FuzzHost {
  readonly revision;
  readonly arch;
  readonly ipaBits: number;
  private readonly specs = new Map<number, FuzzDomainSpec>();
  private readonly snaps = new Map<number, Snap>();
  private lockdepSeen = 0;
  private auditSeen = 0;
  private readonly is64: boolean;
  private dv: DataView | null = null;
  private ftPtr = 0;
  private ftBase = 0;
  private piSize = 0;
  private ram: [number, number];

  constructor(readonly m: MachineImpl, domains: FuzzDomainSpec[]) {
    this.revision = m.revision;
    this.arch = m.arch;
    this.ipaBits = m.ipaBits;
    this.is64 = m.arch === "arm64";
    for (const s of domains) this.specs.set(s.domid, s);
    const c = m.core;
    this.ftPtr = c.frame_table_ptr();
    this.ftBase = Number(c.frametable_base_pdx());
    this.piSize = c.page_info_size();
    this.ram = [Number(c.ram_start_mfn()), Number(c.max_page())];
    const nv = (c as unknown as { check_next_valid_entry?: (table: number, from: number) => number }).check_next_valid_entry;
    this.nextValid = typeof nv === "function" ? nv : null;
  }

  get machine(): object {
    return this.m;
  }

  crash(): { kind: string; path: string } | null {
    return this.m.crashed;
  }

  /** call()'s options, reused (hypercall reads them before it returns). */
  private readonly callOpts = { caller: 0, vcpu: 0 };

  call(caller: number, req: HypercallRequest): HypercallResult {
    this.initial = null;
    this.callOpts.caller = caller;
    return this.m.hypercall(req, this.callOpts);
  }

  gen(caller: number, vcpu: number, req: HypercallRequest): LockGen<HypercallResult> {
    this.initial = null;
    return this.m.hypercallGen(req, { caller, vcpu });
  }

  afterGroup(): void {
    this.initial = null;
    const m = this.m as unknown as { reapZombies?: () => void };
    if (typeof m.reapZombies === "function") m.reapZombies();
  }

  createDomain(domid: number): void {
    const s = this.specs.get(domid);
    if (s === undefined || this.m.domain(domid) !== undefined) return;
    this.initial = null;
    this.createGen++;
    try {
      this.m.createDomain(domainConfig(s));
    } finally {
      this.createGen++;
    }
  }

  destroyDomain(domid: number): void {
    this.initial = null;
    this.destroyGen++;
    this.m.destroyDomain(domid);
  }

  /** destroyDomain calls (domain_kill is what makes a domain dying). */
  private destroyGen = 0;

  lifeGen(): number {
    return this.createGen + this.destroyGen;
  }

  /**
   * The ids domids() returned last, valid while the machine's domain count
   * and createGen are what they were then. Domains are added only by
   * createDomain (which bumps createGen) and otherwise only leave the map, so
   * an unchanged count means an unchanged set (in the same order).
   */
  private ids: readonly number[] = [];
  /** The domains of `ids`, in order (valid as long as `ids` is). */
  private idDoms: Domain[] = [];
  private idsSize = -1;
  private idsGen = -1;
  private createGen = 0;

  domids(): number[] {
    const doms = this.m.domains;
    if (doms.size !== this.idsSize || this.createGen !== this.idsGen) {
      const out: number[] = [];
      const ds: Domain[] = [];
      for (const [id, d] of doms) if (!d.system) out.push(id), ds.push(d);
      this.ids = out;
      this.idDoms = ds;
      this.idsSize = doms.size;
      this.idsGen = this.createGen;
    }
    // Shared between calls: callers only read it.
    return this.ids as number[];
  }

  dying(domid: number): boolean {
    const d = this.m.domain(domid);
    return d === undefined || d.dying;
  }

  canCall(domid: number): boolean {
    const d = this.m.domain(domid);
    return d !== undefined && !d.system && !d.dying && !d.crashed;
  }

  private snapshot(domid: number): Snap {
    const s: Snap = new Map();
    for (const r of this.m.p2mRuns(domid)) {
      const g = Number(r.gfn), mfn = Number(r.mfn), n = Number(r.nr);
      for (let i = 0; i < n; i++) s.set(g + i, { mfn: mfn + i, t: r.type });
    }
    return s;
  }

  // ---- P2M-change log of the core (assembly/p2m/log.ts) ----------------------
  private logPtr = 0;
  private logSeen = 0;
  private logCap = 0;

  /** Turn on the core's P2M-change log (header hooks bit 0); false if the core has none. */
  private enableLog(): boolean {
    const c = this.m.core as any;
    if (typeof c.p2m_log_ptr !== "function") return false;
    const ptr = Number(c.p2m_log_ptr());
    if (ptr === 0) return false;
    const u32 = new Uint32Array(c.memory.buffer);
    let hdr = -1;
    try {
      hdr = headerAddress(c as InspectCore);
    } catch {
      return false;
    }
    if (hdr < 0) return false;
    this.hdr = hdr;
    u32[(hdr + 144) >>> 2] |= 1; // H_HOOKS |= HOOK_P2M_LOG
    this.logPtr = ptr;
    this.logCap = u32[ptr >>> 2];
    this.logSeen = Number(c.p2m_log_count());
    return true;
  }

  // ---- frame-record change log of the core (assembly/mm/frame_log.ts) ----------
  /** Ring address (0: not started, -1: the core has none). */
  private flogPtr = 0;
  private flogSeen = 0;
  private flogCap = 0;

  /**
   * Records read from the ring but not yet handed to changedFrames (nextInUse
   * reads the ring too, to keep its in-use set current); null after an
   * overflow, until changedFrames reports it.
   */
  private flogPending: number[] | null = [];

  /** Start the ring (false if the core has none); the in-use set is rebuilt from a scan. */
  private flogStart(): boolean {
    if (this.flogPtr !== 0) return this.flogPtr > 0;
    const c = this.m.core as any;
    const ptr = typeof c.frame_log_ptr === "function" ? Number(c.frame_log_ptr()) : 0;
    let hdr = -1;
    try {
      hdr = headerAddress(c as InspectCore);
    } catch {
      hdr = -1;
    }
    if (ptr === 0 || (ptr & 7) !== 0 || hdr < 0) {
      this.flogPtr = -1;
      return false;
    }
    const u = this.u32();
    u[(hdr + 144) >>> 2] |= 2; // H_HOOKS |= HOOK_FRAME_LOG
    this.flogPtr = ptr;
    this.flogCap = u[ptr >>> 2];
    this.flogSeen = u[(ptr >>> 2) + 2] + u[(ptr >>> 2) + 3] * 0x100000000;
    u[(ptr >>> 2) + 4] = u[(ptr >>> 2) + 5] = 0; // the next store is logged whatever frame it is
    if (this.initial !== null) this.inUseFromTemplate(this.initial);
    else this.inUseOk = false;
    return true;
  }

  /** Read the ring's new records into flogPending and the in-use set. */
  private flogPull(): void {
    const u = this.u32();
    const p = this.flogPtr >>> 2;
    const total = u[p + 2] + u[p + 3] * 0x100000000;
    const n = total - this.flogSeen;
    if (n === 0) return;
    this.flogSeen = total;
    // Read: the next store to the last frame logged must be logged again.
    u[p + 4] = u[p + 5] = 0;
    const pend = this.flogPending;
    if (n > this.flogCap || pend === null || pend.length + n > this.flogCap) {
      // Lost records: both consumers start over (changedFrames says so; the in-use set is rescanned).
      this.flogPending = null;
      this.inUseOk = false;
      return;
    }
    const mask = this.flogCap - 1;
    const track = this.inUseOk;
    for (let i = total - n; i < total; i++) {
      const r = p + 8 + (i & mask) * 2;
      const mfn = u[r] + u[r + 1] * 0x100000000;
      pend.push(mfn);
      if (track) this.inUseNote(u, mfn);
    }
  }

  changedFrames(out: number[]): boolean {
    clear(out);
    if (this.flogPtr <= 0) {
      this.flogStart();
      return false;
    }
    this.flogPull();
    const pend = this.flogPending;
    if (pend === null) {
      this.flogPending = [];
      return false;
    }
    for (let i = 0; i < pend.length; i++) out.push(pend[i]);
    clear(pend);
    return true;
  }

  // ---- frames in use, kept from the frame-store log ----------------------------
  //
  // The checker's full scans and its destroy checks walk the frames whose
  // PGC_state is not free: a few dozen of 16 Ki. Every store to a count_info is
  // logged, so the set changes only at logged frames: each pulled record
  // re-tests its frame. A rescan (check_next_in_use) rebuilds it when the log
  // started or lost records.

  /** The in-use set is current as of the last pull. */
  private inUseOk = false;
  /** Per RAM frame (index mfn - ram start): 1 when in use. */
  private inUseBit: Uint8Array | null = null;
  /** The in-use frames, ascending. */
  private readonly inUseList: number[] = [];

  /** Re-test `mfn` after a logged store. */
  private inUseNote(u: Uint32Array, mfn: number): void {
    const lo = this.ram[0];
    if (mfn < lo || mfn >= this.ram[1]) return;
    const w = ((this.ftPtr + (mfn - this.ftBase) * this.piSize) >>> 2) + (this.is64 ? 5 : 2);
    const now = ((u[w] >>> 23) & 3) !== 3 ? 1 : 0;
    const bits = this.inUseBit!;
    if (bits[mfn - lo] === now) return;
    bits[mfn - lo] = now;
    // Insert or remove at k by hand: splice() would allocate the array of removed elements.
    const list = this.inUseList;
    const k = lowerBound(list, mfn);
    if (now === 1) {
      list.push(mfn);
      for (let i = list.length - 1; i > k; i--) list[i] = list[i - 1];
      list[k] = mfn;
    } else {
      for (let i = k; i < list.length - 1; i++) list[i] = list[i + 1];
      list.pop();
    }
  }

  private inUseRescan(): void {
    const [lo, hi] = this.ram;
    const bits = this.inUseBit ?? (this.inUseBit = new Uint8Array(hi - lo));
    bits.fill(0);
    const list = this.inUseList;
    list.length = 0;
    for (let m = this.scanInUse(lo); m >= 0; m = this.scanInUse(m + 1)) {
      bits[m - lo] = 1;
      list.push(m);
    }
    this.inUseOk = true;
  }

  /**
   * The world's pool, while the machine is in the state acquireFuzzHost left
   * it (the template's): the in-use set and walkP2m take what the pool found
   * in that state. Every method that runs anything on the machine drops it;
   * changing the machine behind the host, through `m`, does not, so such code
   * (tests) must do it after the checker is built, which reads both, as it
   * must log its frame stores anyway.
   */
  private initial: WorldPool | null = null;

  /** The in-use set as the template has it: found by the pool's first host's scan, copied by the others'. */
  private inUseFromTemplate(pool: WorldPool): void {
    if (pool.inUse === null) {
      this.inUseRescan();
      pool.inUse = this.inUseList.slice();
      return;
    }
    const lo = this.ram[0];
    const bits = this.inUseBit!;
    bits.fill(0);
    const list = this.inUseList;
    clear(list);
    for (let i = 0; i < pool.inUse.length; i++) {
      bits[pool.inUse[i] - lo] = 1;
      list.push(pool.inUse[i]);
    }
    this.inUseOk = true;
  }

  /** A host over `m` of `pool`'s world, just reset to the template (or new); the in-use bits are the machine's previous host's. */
  static fromPool(m: MachineImpl, domains: FuzzDomainSpec[], pool: WorldPool): MachineHost {
    const host = new MachineHost(m, domains);
    host.initial = pool;
    let bits = pool.inUseBits.get(m);
    if (bits === undefined) pool.inUseBits.set(m, (bits = new Uint8Array(host.ram[1] - host.ram[0])));
    host.inUseBit = bits;
    return host;
  }

  inUseFrames(out: number[]): void {
    clear(out);
    const lo = this.ram[0];
    if ((this.ftPtr & 3) === 0 && (this.piSize & 3) === 0 && this.flogStart()) {
      this.flogPull();
      if (!this.inUseOk) this.inUseRescan();
      const list = this.inUseList;
      for (let i = 0; i < list.length; i++) out.push(list[i]);
      return;
    }
    for (let m = this.scanInUse(lo); m >= 0; m = this.scanInUse(m + 1)) out.push(m);
  }

  nextInUse(from: number): number {
    const [lo, hi] = this.ram;
    const m0 = Math.max(from, lo);
    if (m0 >= hi) return -1;
    // The set needs direct reads of the records and the log.
    if ((this.ftPtr & 3) === 0 && (this.piSize & 3) === 0 && this.flogStart()) {
      this.flogPull();
      if (!this.inUseOk) this.inUseRescan();
      const list = this.inUseList;
      const k = lowerBound(list, m0);
      return k < list.length ? list[k] : -1;
    }
    return this.scanInUse(m0);
  }

  /** drainLog's records and array, reused by the next drain (the checker applies them at once). */
  private readonly logOut: P2mWrite[] = [];
  private readonly logPool: P2mWrite[] = [];

  private drainLog(): P2mWrite[] | null {
    const u = this.u32();
    const p = this.logPtr >>> 2;
    const total = u[p + 2] + u[p + 3] * 0x100000000;
    const n = total - this.logSeen;
    const out = this.logOut;
    clear(out);
    if (n > this.logCap) {
      this.logSeen = total;
      return null;
    }
    const pool = this.logPool;
    const bySlot = this.m.bySlot;
    const mask = this.logCap - 1;
    let k = 0;
    for (let i = this.logSeen; i < total; i++) {
      const r = p + 4 + (i & mask) * 8;
      const d = bySlot[u[r + 7]];
      if (d === undefined || d.system) continue;
      let w = pool[k];
      if (w === undefined) pool[k] = w = { domid: 0, gfn: 0, level: 0, bbm: false, oldLo: 0, oldHi: 0, newLo: 0, newHi: 0 };
      w.domid = d.domid;
      w.gfn = u[r] + u[r + 1] * 0x100000000;
      w.level = u[r + 6] & P2M_LOG_LEVEL_MASK;
      w.bbm = (u[r + 6] & P2M_LOG_BREAK) !== 0;
      w.oldLo = u[r + 2];
      w.oldHi = u[r + 3];
      w.newLo = u[r + 4];
      w.newHi = u[r + 5];
      out.push(w);
      k++;
    }
    this.logSeen = total;
    return out;
  }

  private u32view: Uint32Array | null = null;

  private u32(): Uint32Array {
    // memory.buffer is a slow getter: re-read it only when the old buffer was detached by a grow.
    if (this.u32view === null || this.u32view.length === 0) this.u32view = new Uint32Array(this.m.core.memory.buffer);
    return this.u32view;
  }

  private useLog: boolean | null = null;
  private hdr = -1;

  drainP2m(): P2mWrite[] | null {
    if (this.useLog === null) this.useLog = this.enableLog();
    if (this.useLog) return this.drainLog();
    return this.drainByDiff();
  }

  private drainByDiff(): P2mWrite[] | null {
    const out: P2mWrite[] = [];
    const seen = new Set<number>();
    for (const domid of this.domids()) {
      seen.add(domid);
      const now = this.snapshot(domid);
      const before = this.snaps.get(domid) ?? new Map();
      for (const [g, o] of before) {
        const n = now.get(g);
        if (n === undefined || n.mfn !== o.mfn || n.t !== o.t) out.push(write(domid, g, o, n ?? null));
      }
      for (const [g, n] of now) if (!before.has(g)) out.push(write(domid, g, null, n));
      this.snaps.set(domid, now);
    }
    for (const [domid, before] of this.snaps) {
      if (seen.has(domid)) continue;
      for (const [g, o] of before) out.push(write(domid, g, o, null));
      this.snaps.delete(domid);
    }
    return out;
  }

  walkP2m(domid: number): number[] | null {
    const d = this.m.domain(domid);
    if (d === undefined) return null;
    // (The first walk starts the P2M-change log, cached or not.)
    if (this.useLog === null) this.useLog = this.enableLog();
    // Every checker starts with a walk of each domain: in the template's state, the first host's stands for all.
    const pool = this.initial;
    const known = pool === null ? undefined : pool.walks.get(domid);
    if (known !== undefined) return known;
    const w = this.walkUncached(d);
    if (pool !== null) pool.walks.set(domid, w);
    return w;
  }

  private walkUncached(d: Domain): number[] {
    if (this.useLog && this.hdr >= 0) {
      // walkTables' walk without its closure and DataView (same leaves, same order).
      const wt = this.walkP2mTables(d.domid);
      if (wt !== null) return wt.leaves;
      return this.walkTables(d.slot);
    }
    return this.walkRuns(d.domid);
  }

  private readonly lastTables: number[] = [];

  tablePages(domid: number): { tables: number[]; expected: number } | null {
    const d = this.m.domain(domid);
    const c = this.m.core as any;
    if (d === undefined || typeof c.p2m_nr_table_pages !== "function" || !this.useLog) return null;
    this.walkTables(d.slot);
    return { tables: this.lastTables.slice(), expected: c.p2m_nr_table_pages(d.slot) };
  }

  /** Walk the stage-2 tables in linear memory (header: root level/order, P2M array; record: root_ptr[8]). */
  private walkTables(slot: number): number[] {
    const dv = this.view();
    const out: number[] = [];
    const rootLevel = dv.getUint32(this.hdr + 96, true);
    const rootPages = 1 << dv.getUint32(this.hdr + 100, true);
    const rec = dv.getUint32(this.hdr + 152, true) + slot * 256;
    const c = this.m.core;
    const span = (l: number) => 2 ** (9 * (3 - l));
    const tables = this.lastTables;
    tables.length = 0;
    const walk = (table: number, level: number, base: number) => {
      const sz = span(level);
      for (let i = 0; i < 512; i++) {
        const lo = dv.getUint32(table + 8 * i, true);
        const hi = dv.getUint32(table + 8 * i + 4, true);
        if (((hi >>> 23) & 0xf) === 0) continue; // !p2m_is_valid
        if (level < 3 && (lo & 2) !== 0) {
          const cm = (hi & 0xffff) * 0x100000 + (lo >>> 12);
          tables.push(cm);
          const child = c.backing_lookup(BigInt(cm));
          if (child !== 0) walk(child, level + 1, base + i * sz);
        } else out.push(base + i * sz, lo, hi, level);
      }
    };
    for (let r = 0; r < rootPages; r++) {
      const t = dv.getUint32(rec + 152 + 4 * r, true);
      if (t !== 0) walk(t, rootLevel, r * 512 * span(rootLevel));
    }
    return out;
  }

  private walkRuns(domid: number): number[] {
    const out: number[] = [];
    for (const r of this.m.p2mRuns(domid)) {
      const g = Number(r.gfn), mfn = Number(r.mfn), n = Number(r.nr);
      for (let i = 0; i < n; i++) {
        const [lo, hi] = desc(mfn + i, r.type);
        out.push(g + i, lo, hi, 3);
      }
    }
    return out;
  }

  private view(): DataView {
    // memory.buffer is a slow getter: re-read it only when the old buffer was detached by a grow.
    if (this.dv === null || this.dv.byteLength === 0) this.dv = new DataView(this.m.core.memory.buffer);
    return this.dv;
  }

  page(mfn: number, withOwner = true): PageView | null {
    if (mfn < this.ram[0] || mfn >= this.ram[1]) return null;
    const p = this.ftPtr + (mfn - this.ftBase) * this.piSize;
    const dv = this.view();
    let countLo: number, countHi: number, typeLo: number, typeHi: number;
    if (this.is64) {
      countLo = dv.getUint32(p + 16, true);
      countHi = dv.getUint32(p + 20, true);
      typeLo = dv.getUint32(p + 24, true);
      typeHi = dv.getUint32(p + 28, true);
    } else {
      countLo = dv.getUint32(p + 8, true);
      countHi = 0;
      typeLo = dv.getUint32(p + 12, true);
      typeHi = 0;
    }
    if (!withOwner) return { countLo, countHi, typeLo, typeHi, owner: -3 };
    const slot = this.m.core.page_owner(BigInt(mfn));
    const d = slot === 0 ? undefined : this.m.bySlot[slot];
    const owner = slot === 0 ? -1 : d === undefined || d.system ? -2 : d.domid;
    return { countLo, countHi, typeLo, typeHi, owner };
  }

  isXenheap(mfn: number): boolean {
    return this.m.core.is_xen_heap_mfn(BigInt(mfn));
  }

  ramRange(): [number, number] {
    return this.ram;
  }

  /**
   * grant(domid) as of its first call since the last invalidate(). A view
   * equal to the previous one is the previous object, so callers can tell
   * "unchanged" by identity (xenheapChanged does).
   */
  private readonly grantCache = new Map<number, GrantCacheEntry>();
  /** Bumped by invalidate() (cheaper than clearing the cache every step). */
  private grantGen = 0;

  invalidate(): void {
    this.grantGen++;
  }

  /** nextInUse by scanning the frame table. */
  private scanInUse(from: number): number {
    const [lo, hi] = this.ram;
    const m0 = Math.max(from, lo);
    if (m0 >= hi) return -1;
    const c = this.m.core as unknown as { check_next_in_use?: (from: number, to: number) => number };
    if (typeof c.check_next_in_use === "function") {
      // assembly/check/scan.ts: the same test over linear memory (16 Ki records, a few dozen in use).
      const m = c.check_next_in_use(m0, hi) >>> 0;
      return m >= hi ? -1 : m;
    }
    const cnt = this.cnt;
    for (let m = m0; m < hi; m++) if (this.countInto(m, cnt) && ((((this.is64 ? cnt[1] : cnt[0]) >>> 23) & 3) !== 3)) return m;
    return -1;
  }

  private readonly cnt = new Uint32Array(2);

  countInto(mfn: number, out: Uint32Array): boolean {
    if (mfn < this.ram[0] || mfn >= this.ram[1]) return false;
    const p = this.ftPtr + (mfn - this.ftBase) * this.piSize;
    const dv = this.view();
    if (this.is64) {
      out[0] = dv.getUint32(p + 16, true);
      out[1] = dv.getUint32(p + 20, true);
    } else {
      out[0] = dv.getUint32(p + 8, true);
      out[1] = 0;
    }
    return true;
  }

  grant(domid: number): GrantView | null {
    let e = this.grantCache.get(domid);
    if (e !== undefined && e.gen === this.grantGen) return e.view;
    const d = this.m.domain(domid);
    const g = d?.grant ?? null;
    if (e === undefined) this.grantCache.set(domid, (e = { gen: 0, d: undefined, dGen: -1, g: null, view: null, shared: [], status: [] }));
    e.gen = this.grantGen;
    // The domain's grantGen moves with every change the view describes: unmoved, the view stands.
    if (d !== undefined && e.d === d && e.dGen === d.grantGen) return e.view;
    e.d = d;
    e.dGen = d === undefined ? -1 : d.grantGen;
    if (g === null) {
      e.g = null;
      e.view = null;
    } else if (e.g !== g || e.view === null || !sameGrant(e, g)) {
      e.g = g;
      e.view = this.grantUncached(domid);
      // The frames as the table holds them (BigInts compare faster than they convert).
      e.shared = g.shared.slice(0, g.nrGrantFrames);
      e.status = g.status.slice(0, g.nrStatusFrames);
    }
    return e.view;
  }

  private grantUncached(domid: number): GrantView | null {
    const d = this.m.domain(domid);
    const g = d?.grant;
    if (!g) return null;
    return {
      version: g.version,
      nrGrantFrames: g.nrGrantFrames,
      nrStatusFrames: g.nrStatusFrames,
      shared: g.shared.slice(0, g.nrGrantFrames).map(Number),
      status: g.status.slice(0, g.nrStatusFrames).map(Number),
      sharedGfn: g.sharedGfn ? g.sharedGfn.slice(0, g.nrGrantFrames) : null,
      statusGfn: g.statusGfn ? g.statusGfn.slice(0, g.nrStatusFrames) : null,
    };
  }

  sharedInfoMfn(domid: number): number | null {
    const d = this.m.domain(domid);
    if (!d || d.sharedInfo === this.m.INVALID) return null;
    return Number(d.sharedInfo);
  }

  drainLockFindings(): LockFinding[] {
    const lv = this.m.lockdep.violations;
    const c = this.m.gfnAudit.counts.violations;
    if (this.lockdepSeen >= lv.length && c <= this.auditSeen) return NO_FINDINGS; // the usual case, without an array per op
    const out: LockFinding[] = [];
    for (; this.lockdepSeen < lv.length; this.lockdepSeen++) out.push({ kind: "lock-order", message: lv[this.lockdepSeen].message });
    if (c > this.auditSeen) {
      const v = this.m.gfnAudit.violations();
      const f = v[Math.min(this.auditSeen, v.length - 1)];
      out.push({ kind: "gfn-audit", message: f ? `${f.reason} (mfn 0x${BigInt(f.mfn).toString(16)}, cpu${f.cpu}, ${f.context})` : "GFN-bits write without protection" });
      this.auditSeen = c;
    }
    return out;
  }

  frameTable(): FrameTableLayout {
    return { memory: this.m.core.memory, ptr: this.ftPtr, basePdx: this.ftBase, entrySize: this.piSize };
  }

  walkP2mTables(domid: number): { leaves: number[]; tables: { tables: number[]; expected: number } | null } | null {
    const d = this.m.domain(domid);
    if (d === undefined) return null;
    if (this.useLog === null) this.useLog = this.enableLog();
    if (!this.useLog || this.hdr < 0) return { leaves: this.walkRuns(domid), tables: null };
    const c = this.m.core as any;
    const leaves: number[] = [];
    const tables: number[] = [];
    // The same walk as walkTables (same order), over a Uint32Array and without closures.
    let u = this.walkU32;
    if (u === null || u.length === 0) u = this.walkU32 = new Uint32Array(this.m.core.memory.buffer);
    const rootLevel = u[(this.hdr + 96) >>> 2];
    const rootPages = 1 << u[(this.hdr + 100) >>> 2];
    const rec = u[(this.hdr + 152) >>> 2] + d.slot * 256;
    if (((this.hdr | rec) & 3) !== 0) return { leaves: this.walkTables(d.slot), tables: this.tablePages(domid) };
    for (let r = 0; r < rootPages; r++) {
      const t = u[(rec + 152 + 4 * r) >>> 2];
      if (t !== 0) this.walkInto(u, t, rootLevel, r * 512 * 2 ** (9 * (3 - rootLevel)), leaves, tables);
    }
    return { leaves, tables: typeof c.p2m_nr_table_pages === "function" ? { tables, expected: c.p2m_nr_table_pages(d.slot) } : null };
  }

  private walkU32: Uint32Array | null = null;
  /** The core's check_next_valid_entry, when it has one. */
  private readonly nextValid: ((table: number, from: number) => number) | null;

  private walkInto(u: Uint32Array, table: number, level: number, base: number, leaves: number[], tables: number[]): void {
    const sz = 2 ** (9 * (3 - level));
    const w0 = table >>> 2;
    // assembly/check/scan.ts skips the invalid entries (most of a fuzz P2M's tables) in Wasm.
    const nv = this.nextValid;
    for (let i = nv === null ? 0 : nv(table, 0); i < 512; i = nv === null ? i + 1 : nv(table, i + 1)) {
      const hi = u[w0 + 2 * i + 1];
      if (((hi >>> 23) & 0xf) === 0) continue; // !p2m_is_valid
      const lo = u[w0 + 2 * i];
      if (level < 3 && (lo & 2) !== 0) {
        const cm = (hi & 0xffff) * 0x100000 + (lo >>> 12);
        tables.push(cm);
        const child = this.m.core.backing_lookup(BigInt(cm));
        if (child !== 0) this.walkInto(u, child, level + 1, base + i * sz, leaves, tables);
      } else leaves.push(base + i * sz, lo, hi, level);
    }
  }

  xenheapGen(): number {
    this.domids();
    const ds = this.idDoms;
    let s = 0;
    for (let i = 0; i < ds.length; i++) s += ds[i].grantGen;
    return s;
  }

  xenheapChanged(domid: number, seen: unknown[]): boolean {
    // `seen` holds the domain, its grant view, shared_info and the domain's
    // grantGen. An unchanged grantGen means nothing changed (most ops touch no
    // grant table): one compare. Otherwise identity decides as before: grant()
    // hands out the same view object while the grant table's frames and
    // (PRE/HARDEN) stored GFNs stay equal (a grow that failed, say, bumps the
    // counter but changes nothing).
    const d = this.m.domain(domid);
    const gen = d === undefined ? -1 : d.grantGen;
    if (seen.length === 4 && seen[0] === d && seen[3] === gen) return false;
    const v = this.grant(domid);
    const si = d === undefined ? undefined : d.sharedInfo;
    if (seen.length === 4 && seen[0] === d && seen[1] === v && seen[2] === si) {
      seen[3] = gen;
      return false;
    }
    seen[0] = d;
    seen[1] = v;
    seen[2] = si;
    seen[3] = gen;
    return true;
  }
}

interface GrantTableFields {
  version: number;
  nrGrantFrames: number;
  nrStatusFrames: number;
  shared: bigint[];
  status: bigint[];
  sharedGfn: bigint[] | null;
  statusGfn: bigint[] | null;
}

/** MachineHost.grant's cache: the view of `g` made at generation `gen`, and the frames it was made from. */
interface GrantCacheEntry {
  gen: number;
  /** The domain and its grantGen when `view` was last checked. */
  d: Domain | undefined;
  dGen: number;
  g: GrantTableFields | null;
  view: GrantView | null;
  shared: bigint[];
  status: bigint[];
}

/** Does `e.view` (made from `g`) still describe `g`: version, frame counts, frames, stored GFNs? */
function sameGrant(e: GrantCacheEntry, g: GrantTableFields): boolean {
  const v = e.view!;
  if (v.version !== g.version || v.nrGrantFrames !== g.nrGrantFrames || v.nrStatusFrames !== g.nrStatusFrames) return false;
  const nG = Math.min(g.shared.length, g.nrGrantFrames);
  const nS = Math.min(g.status.length, g.nrStatusFrames);
  const sh = e.shared, st = e.status;
  if (sh.length !== nG || st.length !== nS) return false;
  for (let i = 0; i < nG; i++) if (sh[i] !== g.shared[i]) return false;
  for (let i = 0; i < nS; i++) if (st[i] !== g.status[i]) return false;
  if (!sameArr(v.sharedGfn, g.sharedGfn, g.nrGrantFrames) || !sameArr(v.statusGfn, g.statusGfn, g.nrStatusFrames)) return false;
  return true;
}

/** Is `a` what `b.slice(0, n)` would give (null for null)? */
function sameArr(a: Array<number | bigint> | null, b: bigint[] | null, n: number): boolean {
  if (a === null || b === null) return a === b;
  const len = Math.max(0, Math.min(b.length, n));
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A stage-2 level-3 descriptor for (mfn, type) as (lo, hi). */
function desc(mfn: number, t: number): [number, number] {
  const lo = (((mfn % 0x100000) * 0x1000) | 3) >>> 0;
  const hi = ((Math.floor(mfn / 0x100000) & 0xffff) | (t << 23)) >>> 0;
  return [lo, hi];
}

function write(domid: number, gfn: number, o: { mfn: number; t: number } | null, n: { mfn: number; t: number } | null): P2mWrite {
  const [oldLo, oldHi] = o ? desc(o.mfn, o.t) : [0, 0];
  const [newLo, newHi] = n ? desc(n.mfn, n.t) : [0, 0];
  return { domid, gfn, level: 3, oldLo, oldHi, newLo, newHi };
}

/** A new machine in the world's initial state (a new Wasm instance; see acquireFuzzHost for the cheap way). */
export async function createFuzzHost(world: WorldConfig): Promise<MachineHost> {
  const domains = world.domains ?? defaultDomains();
  return new MachineHost(await createWorldMachine(world, domains), domains);
}

async function createWorldMachine(world: WorldConfig, domains: FuzzDomainSpec[]): Promise<MachineImpl> {
  const m = await createMachine(fuzzMachineConfig(world));
  for (const s of domains) m.createDomain(domainConfig(s));
  return m;
}

// ---- machines reused across episodes ---------------------------------------
//
// Creating a world costs a Wasm instance, machine_init and three domain
// creations (~1.5 ms, as much as hundreds of fuzz ops). Each thread keeps,
// per world, the world's initial state as a template and idle machines to
// reset to it (src/snapshot/template.ts: a memory copy and a host-graph patch).

interface WorldPool {
  template: MachineTemplate;
  idle: MachineImpl[];
  /** The frames in use in the template's state (null until a host needed them). */
  inUse: number[] | null;
  /** Per domain: walkP2m in the template's state (filled by the hosts that needed them). */
  walks: Map<number, number[]>;
  /** Per machine: its host's in-use bits, handed to the next host over it (hosts of a machine come one at a time). */
  inUseBits: WeakMap<MachineImpl, Uint8Array>;
}

/** Worlds kept per thread (a campaign uses one; a test suite several). */
const POOL_WORLDS = 8;
/** Idle machines kept per world (more than one only when episodes overlap). */
const POOL_IDLE = 2;
const pools = new Map<string, WorldPool>();
const poolKeys = new WeakMap<MachineHost, string>();

/**
 * The world worldKey was last asked about, with copies of its domain specs:
 * most calls ask about the same world again, and building the key and hashing
 * it anew cost as much as the rest of acquireFuzzHost but the reset.
 */
let lastWorld: { revision: string; arch: string; ipaBits: number | null; maxVer: number; domains: FuzzDomainSpec[]; key: string } | null = null;

function worldKey(world: WorldConfig, domains: FuzzDomainSpec[]): string {
  const l = lastWorld;
  const maxVer = world.gnttabMaxVersion ?? 2;
  if (l !== null && l.revision === world.revision && l.arch === world.arch && l.ipaBits === (world.ipaBits ?? null) && l.maxVer === maxVer && sameSpecs(l.domains, domains)) return l.key;
  const key = JSON.stringify([world.revision, world.arch, world.ipaBits ?? null, maxVer, domains]);
  lastWorld = { revision: world.revision, arch: world.arch, ipaBits: world.ipaBits ?? null, maxVer, domains: domains.map((s) => ({ ...s })), key };
  return key;
}

/** The same specs, field by field (of plain values: the copies are shallow), in the same order of domains? */
function sameSpecs(a: FuzzDomainSpec[], b: FuzzDomainSpec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as unknown as Record<string, unknown>, y = b[i] as unknown as Record<string, unknown>;
    for (const k in x) if (x[k] !== y[k] || (typeof x[k] === "object" && x[k] !== null)) return false;
    for (const k in y) if (!(k in x)) return false;
  }
  return true;
}

/**
 * A host in the world's initial state, equal in state and behaviour to
 * createFuzzHost(world)'s: a machine of this thread's pool reset to the
 * world's template, or a new one. Hand it back with releaseFuzzHost() when
 * the episode is over (a host that is never released is only garbage).
 */
export async function acquireFuzzHost(world: WorldConfig): Promise<MachineHost> {
  const domains = world.domains ?? defaultDomains();
  const key = worldKey(world, domains);
  let pool = pools.get(key);
  let m: MachineImpl | undefined;
  if (pool !== undefined) {
    pools.delete(key); // most recently used last
    pools.set(key, pool);
    m = pool.idle.pop();
    if (m !== undefined) {
      try {
        resetMachine(m, pool.template);
      } catch {
        m = undefined; // a machine the template does not fit any more is dropped; a new one is as good
      }
    }
  }
  if (m === undefined) {
    m = await createWorldMachine(world, domains);
    if (pool === undefined) {
      pool = { template: captureTemplate(m), idle: [], inUse: null, walks: new Map(), inUseBits: new WeakMap() };
      pools.set(key, pool);
      if (pools.size > POOL_WORLDS) pools.delete(pools.keys().next().value!);
    }
  }
  const host = MachineHost.fromPool(m, domains, pool!);
  poolKeys.set(host, key);
  return host;
}

/** Give a host from acquireFuzzHost() back to the pool; the host must not be used afterwards. */
export function releaseFuzzHost(host: MachineHost): void {
  const key = poolKeys.get(host);
  if (key === undefined) return;
  poolKeys.delete(host);
  const pool = pools.get(key);
  if (pool !== undefined && pool.idle.length < POOL_IDLE && !pool.idle.includes(host.m)) pool.idle.push(host.m);
}

/** The first index of the ascending `list` whose value is >= `x`. */
function lowerBound(list: number[], x: number): number {
  let a = 0, b = list.length;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (list[mid] < x) a = mid + 1;
    else b = mid;
  }
  return a;
}
