// The host side of a machine: domains, locks, crash handling and the P2M /
// heap wrappers that the grant code and the hypercall handlers share.

import { createCoreInstance, type CoreExports } from "../core/wasm.js";
import {
  GfnAudit, LockAssertionError, LockBugError, LockDep, RecursiveSpinLock, RwLock, SpinLock,
  assertWriteLocked, dualIn, dualMethods, runTwin, twinMode, type LockGen,
} from "../locks/index.js";
import { policyFor, type RevisionPolicy } from "../revisions/index.js";
import { GrantTable, grantTableDestroy, grantTableInit } from "../grant/index.js";
import { dispatch } from "../hypercall/dispatch.js";
import { GuestMemory, decodeRaw, type RawCall } from "../hypercall/abi.js";
import {
  defaultIpaBits,
  DOMID_IO, DOMID_SELF, DOMID_XEN,
  type Arch, type DomainConfig, type HypercallRequest, type HypercallResult, type HypervisorCrash,
  type MachineConfig, type P2mEntry, type PageInfo, type Revision, type XenOptions,
} from "./api.js";
import { XenCrash, XenError, crashKindOfCode } from "./crash.js";
import { CRASHED_RC, EINVAL, ENOMEM, EEXIST, p2m_invalid, p2m_is_any_ram, p2m_is_foreign, p2m_ram_rw } from "./errno.js";
import { CoreP2m, type P2mBackend, type P2mLookup, type P2mRun } from "./p2m.js";
import { snapshotMachine, stateHash } from "../snapshot/index.js";

// Core domain flags (assembly/mm/domain.ts).
const D_DYING = 1, D_PRIVILEGED = 2, D_DIRECTMAP = 4, D_HARDWARE = 8;
const SHARE_rw = 0;

export interface CallOptions { caller: number; vcpu?: number }

export class Domain {
  readonly p2mLock: RwLock;
  readonly grantLock: RwLock;
  readonly pageAllocLock: RecursiveSpinLock;
  grant: GrantTable | null = null;
  sharedInfo: bigint;
  dying = false;
  /** domain_crash() reason (the domain, not the hypervisor). */
  crashed: string | null = null;
  readonly iomem: Array<[bigint, bigint]>;
  /**
   * Bumped by every change of what describes this domain's xenheap frames to
   * an observer: the grant table object, its version, frame lists and counts,
   * PRE/HARDEN's stored-GFN arrays, shared_info. A checker compares this
   * number instead of the lists after every operation. Observer state, not
   * machine state: non-enumerable, so snapshots and stateHash() do not see it
   * (a restore bumps it instead).
   */
  declare grantGen: number;

  constructor(
    m: MachineImpl,
    readonly domid: number,
    readonly slot: number,
    readonly cfg: DomainConfig,
    readonly system: boolean,
  ) {
    const ld = m.lockdep;
    this.p2mLock = new RwLock(`d${domid}.p2m_lock`, "p2m_lock", { lockdep: ld });
    this.p2mLock.onBeforeWriteUnlock = () => m.p2m.flushSync(slot); // p2m_write_unlock
    this.grantLock = new RwLock(`d${domid}.grant_lock`, "grant_lock", { lockdep: ld });
    this.pageAllocLock = new RecursiveSpinLock(`d${domid}.page_alloc_lock`, "page_alloc_lock", { lockdep: ld });
    this.sharedInfo = m.INVALID;
    Object.defineProperty(this, "grantGen", { value: 0, writable: true, enumerable: false });
    this.iomem = (cfg.iomem ?? []).map(([a, b]) => [BigInt(a), BigInt(b)]);
    this.getPageFromGfnName = `p2m_get_page_from_gfn(d${domid === DOMID_IO ? "om_io" : domid === DOMID_XEN ? "om_xen" : domid})`;
  }
  /** Fault-path label, built once. */
  readonly getPageFromGfnName: string;
  get privileged(): boolean { return !!this.cfg.privileged; }
  get hardware(): boolean { return !!this.cfg.hardware; }
  get directMapped(): boolean { return !!this.cfg.directMapped; }
}

export class MachineImpl {
  readonly arch: Arch;
  readonly revision: Revision;
  readonly policy: RevisionPolicy;
  readonly is64: boolean;
  /** unsigned long all-ones = INVALID_GFN / INVALID_MFN. */
  readonly INVALID: bigint;
  readonly PGC_xen_heap: bigint;
  /**
   * mfn_valid(mfn) is ramStartMfn <= mfn < maxPage (one bank, PDX = PFN; fixed
   * by machine_init). Derived from the core, so kept out of the host state
   * (non-enumerable: snapshots and stateHash() do not see it).
   */
  declare readonly ramStartMfn: bigint;
  declare readonly maxPage: bigint;
  readonly xenOptions: XenOptions;
  readonly lockdep = new LockDep();
  readonly gfnAudit: GfnAudit;
  readonly heapLock: SpinLock;
  readonly p2m: P2mBackend;
  readonly domains = new Map<number, Domain>();
  readonly bySlot: (Domain | undefined)[] = [];
  readonly domXen: Domain;
  readonly domIo: Domain;
  readonly ipaBits: number;
  crashed: HypervisorCrash | null = null;
  opIndex: number | undefined = undefined;
  private readonly where: string[][] = [];
  private coreFn: string[] = [];
  private freeSlots: number[] = [];

  constructor(readonly core: CoreExports, readonly cfg: MachineConfig) {
    this.arch = cfg.arch ?? "arm64";
    this.revision = cfg.revision ?? "head";
    this.policy = policyFor(this.revision);
    this.is64 = this.arch === "arm64";
    this.INVALID = this.is64 ? 0xffffffffffffffffn : 0xffffffffn;
    this.xenOptions = cfg.xenOptions ?? {};
    const ramStart = BigInt(cfg.ramStartMfn ?? 0x40000);
    const ramFrames = cfg.ramFrames ?? 0x80000;
    const st = cfg.staticBank;
    core.machine_init(this.is64 ? 0 : 1, this.policy.index, this.policy.features, ramStart, BigInt(ramFrames),
      st ? BigInt(st.startMfn) : 0n, st ? BigInt(st.frames) : 0n);
    this.PGC_xen_heap = core.PGC_xen_heap();
    Object.defineProperty(this, "ramStartMfn", { value: core.ram_start_mfn(), enumerable: false });
    Object.defineProperty(this, "maxPage", { value: core.max_page(), enumerable: false });
    const wantIpa = cfg.ipaBits ?? defaultIpaBits(this.arch);
    const rc = core.p2m_geometry_init(wantIpa, false);
    if (rc !== 0) throw new RangeError(`ipaBits ${wantIpa}: Xen has no stage-2 configuration for it on ${this.arch}`);
    this.ipaBits = core.p2m_geometry_ipa_bits();
    this.p2m = new CoreP2m(core, this.INVALID);
    this.heapLock = new SpinLock("heap_lock", "heap_lock", { lockdep: this.lockdep });
    this.gfnAudit = new GfnAudit({
      lockdep: this.lockdep,
      p2mLockOf: (mfn) => {
        const d = this.bySlot[this.core.page_owner(BigInt(mfn))];
        return d ? d.p2mLock : null;
      },
    });
    for (let s = 64; s >= 1; s--) this.freeSlots.push(s);
    // System domains (no arch_domain_create: the P2M stays all-zero, FS 6.3).
    this.domXen = this.addDomain({ domid: DOMID_XEN }, true);
    this.domIo = this.addDomain({ domid: DOMID_IO }, true);
  }

  /** cpu whose code is running (for audit callbacks from the P2M backend). */
  curCpu = 0;

  // ---- crash bookkeeping ------------------------------------------------------

  pushWhere(cpu: number, fn: string): void { (this.where[cpu] ??= []).push(fn); }
  popWhere(cpu: number): void { this.where[cpu]?.pop(); }
  setCoreFn(cpu: number, fn: string): void { this.coreFn[cpu] = fn; }
  private path(cpu: number, inner: string): string {
    const w = this.where[cpu] ?? [];
    const parts = inner ? [inner] : [];
    for (let i = w.length - 1; i >= 0; i--) parts.push(w[i]);
    return parts.join(" <- ");
  }
  bug(cpu: number, kind: HypervisorCrash["kind"], inner: string): never {
    throw new XenCrash({ kind, path: this.path(cpu, inner) });
  }

  /** Turn an exception into a recorded crash, or rethrow host bugs. */
  recordCrash(e: unknown, cpu: number): HypervisorCrash {
    let crash: HypervisorCrash;
    if (e instanceof XenCrash) {
      crash = { ...e.crash };
      const w = this.where[cpu];
      if (w && w.length && !crash.path.includes(w[0])) crash.path = `${crash.path} <- ${this.path(cpu, "")}`;
    } else if (e instanceof WebAssembly.RuntimeError) {
      const code = this.core.last_error();
      crash = {
        // 0x431: p2m_get_root_pointer of a never-initialised P2M (dom_io, FS 6.3):
        // debug Xen fails the maddr_to_virt ASSERT, release Xen takes a data abort.
        kind: (code & 0xffffff) === 0x431 ? "data_abort" : crashKindOfCode(code),
        path: this.path(cpu, `${this.coreFn[cpu] ?? "core"} [core code 0x${code.toString(16)}]`),
      };
    } else if (e instanceof LockAssertionError) {
      crash = { kind: "ASSERT", path: `${e.message} in ${this.path(cpu, "")}` };
    } else if (e instanceof LockBugError) {
      crash = { kind: "emulator", path: `${e.message} in ${this.path(cpu, "")}` };
    } else {
      throw e;
    }
    if (this.opIndex !== undefined) crash.opIndex = this.opIndex;
    if (!this.crashed) this.crashed = crash;
    for (const d of this.domains.values()) { d.p2mLock.reset(); d.grantLock.reset(); d.pageAllocLock.reset(); }
    this.heapLock.reset();
    this.lockdep.resetHeld();
    for (const w of this.where) if (w) w.length = 0;
    return crash;
  }

  domainCrash(d: Domain, why: string): void {
    if (!d.crashed) d.crashed = why;
  }

  // ---- domains -----------------------------------------------------------------

  private addDomain(cfg: DomainConfig, system: boolean): Domain {
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new XenError(-ENOMEM, "no free domain slot (64 max)");
    let flags = 0;
    if (cfg.privileged) flags |= D_PRIVILEGED;
    if (cfg.directMapped) flags |= D_DIRECTMAP;
    if (cfg.hardware) flags |= D_HARDWARE;
    const maxPages = cfg.maxPages ?? (cfg.ramPages ?? 0) + 1024;
    this.core.domain_slot_init(slot, cfg.domid, flags, BigInt(maxPages));
    const d = new Domain(this, cfg.domid, slot, cfg, system);
    this.domains.set(cfg.domid, d);
    this.bySlot[slot] = d;
    return d;
  }

  /** domain_create: grant_table_init, then arch_domain_create (P2M, shared_info), then RAM. */
  createDomain(cfg: DomainConfig): Domain {
    if (this.crashed) throw new XenError(CRASHED_RC, "hypervisor has crashed");
    const id = cfg.domid;
    if (!Number.isInteger(id) || id < 0 || id >= DOMID_SELF) throw new XenError(-EINVAL, `domid ${id}: not a valid domain id`);
    if (this.domains.has(id)) throw new XenError(-EEXIST, `domain ${id} already exists`);
    const d = this.addDomain(cfg, false);
    const cpu = 0;
    this.pushWhere(cpu, "domain_create");
    // Runs alone: the synchronous twins (src/locks/twin.ts).
    const outer = twinMode.on;
    twinMode.on = true;
    try {
      const rc = grantTableInit(this, cpu, d, cfg.maxGrantFrames ?? -1, cfg.maxMaptrackFrames ?? -1) as unknown as number;
      if (rc !== 0) { this.forgetDomain(d); throw new XenError(rc, `grant_table_init: ${rc}`); }
      this.p2m.init(d.slot);
      this.createSharedInfo(cpu, d);
      if (cfg.ramPages) this.allocRam(cpu, d, cfg.ramPages, BigInt(cfg.ramBaseGfn ?? 0x40000));
    } catch (e) {
      if (e instanceof XenError) throw e;
      this.recordCrash(e, cpu);
      throw new XenError(CRASHED_RC, `hypervisor crash during domain creation: ${(this.crashed as HypervisorCrash | null)?.path}`);
    } finally {
      twinMode.on = outer;
      this.popWhere(cpu);
    }
    return d;
  }

  private forgetDomain(d: Domain): void {
    this.core.domain_slot_release(d.slot);
    this.domains.delete(d.domid);
    this.bySlot[d.slot] = undefined;
    this.freeSlots.push(d.slot);
  }

  private *createSharedInfo(cpu: number, d: Domain): LockGen<void> {
    const mfn = yield* this.allocXenheapPage(cpu);
    if (mfn === this.INVALID) throw new XenError(-ENOMEM, "shared_info allocation failed");
    yield* this.shareXenPage(cpu, d, mfn);
    d.sharedInfo = mfn;
    d.grantGen++;
    this.core.set_domain_shared_info(d.slot, mfn);
  }

  private *allocRam(cpu: number, d: Domain, pages: number, base: bigint): LockGen<void> {
    let left = pages;
    let gfn = base;
    while (left > 0) {
      let order = 0;
      while (order < 18 && 2 ** (order + 1) <= left) order++;
      let mfn = this.INVALID;
      while (true) {
        yield* d.pageAllocLock.lock(cpu);
        yield* this.heapLock.lock(cpu);
        this.setCoreFn(cpu, "alloc_domheap_pages");
        mfn = this.core.alloc_domheap_pages(d.slot, order, 0);
        yield* this.heapLock.unlock(cpu);
        yield* d.pageAllocLock.unlock(cpu);
        if (mfn !== this.INVALID || order === 0) break;
        order--;
      }
      if (mfn === this.INVALID) throw new XenError(-ENOMEM, `domain ${d.domid}: RAM allocation failed`);
      const n = BigInt(1 << order);
      const at = d.directMapped ? mfn : gfn;
      const rc = yield* this.p2mInsert(cpu, d, at, n, mfn, p2m_ram_rw);
      if (rc !== 0) throw new XenError(rc, `domain ${d.domid}: RAM mapping failed (${rc})`);
      gfn += n;
      left -= 1 << order;
    }
  }

  /**
   * domain_kill: relinquish the domain's resources (FS 6.10). The final
   * destruction (grant_table_destroy, shared_info, P2M root) waits, as in Xen,
   * until nothing holds a reference on the domain any more: a page of it that
   * another domain still maps (a foreign mapping of its shared_info or of a
   * grant frame) keeps it a zombie until that mapping goes.
   */
  destroyDomain(domid: number): number {
    const d = this.domains.get(domid);
    if (!d || d.system) return -3; // -ESRCH
    if (this.crashed) return CRASHED_RC;
    if (d.dying) return 0; // domain_kill of a dying domain: nothing more to do
    const cpu = 0;
    this.pushWhere(cpu, "domain_kill");
    const outer = twinMode.on;
    twinMode.on = true;
    try {
      this.killGen(cpu, d);
      this.reapZombies();
    } catch (e) {
      this.recordCrash(e, cpu);
      return CRASHED_RC;
    } finally {
      twinMode.on = outer;
      this.popWhere(cpu);
    }
    return 0;
  }

  /** Dying domains whose final destruction waits for their last reference. */
  readonly zombies: Domain[] = [];

  private *killGen(cpu: number, d: Domain): LockGen<void> {
    d.dying = true;
    this.core.domain_set_flags(d.slot, this.domainFlags(d) | D_DYING);
    yield* this.relinquishMemory(cpu, d, true);
    yield* this.relinquishMemory(cpu, d, false);
    yield* d.p2mLock.writeLock(cpu);
    this.p2m.relinquish(d.slot);
    yield* d.p2mLock.writeUnlock(cpu);
    if (this.policy.p2mTeardownInRelinquish) this.p2m.teardown(d.slot);
    this.zombies.push(d);
  }

  /**
   * complete_domain_destroy for every dying domain nobody references any more.
   * Drivers call it between hypercalls (never while a vCPU holds a lock):
   * hypercall(), destroyDomain() and the run/fuzz schedulers after a group.
   */
  reapZombies(): void {
    if (this.zombies.length === 0 || this.crashed) return;
    for (let i = 0; i < this.zombies.length; ) {
      const d = this.zombies[i];
      if (this.core.domain_refcnt(d.slot) !== 0) { i++; continue; }
      this.zombies.splice(i, 1);
      const cpu = 0;
      this.pushWhere(cpu, "complete_domain_destroy");
      const outer = twinMode.on;
      twinMode.on = true;
      try {
        this.finalDestroyGen(cpu, d);
      } catch (e) {
        this.recordCrash(e, cpu);
        return;
      } finally {
        twinMode.on = outer;
        this.popWhere(cpu);
      }
    }
  }

  private *finalDestroyGen(cpu: number, d: Domain): LockGen<void> {
    yield* grantTableDestroy(this, cpu, d);
    if (!this.policy.p2mTeardownInRelinquish) this.p2m.teardown(d.slot);
    if (d.sharedInfo !== this.INVALID) {
      yield* this.freeXenheapPage(cpu, d.sharedInfo);
      d.sharedInfo = this.INVALID;
      d.grantGen++;
    }
    this.forgetDomain(d);
  }

  private domainFlags(d: Domain): number {
    let f = 0;
    if (d.privileged) f |= D_PRIVILEGED;
    if (d.directMapped) f |= D_DIRECTMAP;
    if (d.hardware) f |= D_HARDWARE;
    if (d.dying) f |= D_DYING;
    return f;
  }

  /** relinquish_memory(list): get_page, put_page_alloc_ref, put_page for each page. */
  private *relinquishMemory(cpu: number, d: Domain, xen: boolean): LockGen<void> {
    const c = this.core as any;
    const mfns: bigint[] = [];
    const END = 0xffffffffffffffffn;
    if (typeof c.domain_page_first === "function") {
      const first = xen ? c.domain_xenpage_first : c.domain_page_first;
      const next = xen ? c.domain_xenpage_next : c.domain_page_next;
      for (let m: bigint = first(d.slot); m !== END && m !== this.INVALID; m = next(d.slot, m)) mfns.push(m);
    } else {
      const start = this.core.ram_start_mfn(), end = this.core.max_page();
      for (let m = start; m < end; m++) {
        if (this.core.page_owner(m) !== d.slot) continue;
        if (this.core.is_xen_heap_page(m) === xen && (this.core.count_info(m) & this.core.PGC_allocated()) !== 0n) mfns.push(m);
      }
    }
    yield* d.pageAllocLock.lockRecursive(cpu);
    this.pushWhere(cpu, "relinquish_memory");
    for (const m of mfns) {
      this.setCoreFn(cpu, "get_page");
      if (!this.core.get_page(m, d.slot)) continue;
      this.putPageAllocRef(cpu, m);
      this.putPage(cpu, m);
    }
    this.popWhere(cpu);
    yield* d.pageAllocLock.unlockRecursive(cpu);
  }

  // ---- heap / page wrappers (locks per FS 6.1) ----------------------------------

  *allocXenheapPage(cpu: number): LockGen<bigint> {
    yield* this.heapLock.lock(cpu);
    this.setCoreFn(cpu, "alloc_xenheap_pages");
    const mfn = this.core.alloc_xenheap_pages(0, 0);
    yield* this.heapLock.unlock(cpu);
    if (mfn !== this.INVALID) {
      const p = this.core.backing_lookup(mfn);
      if (p) new Uint8Array(this.core.memory.buffer, p, 4096).fill(0); // clear_page
    }
    return mfn;
  }

  *freeXenheapPage(cpu: number, mfn: bigint): LockGen<void> {
    yield* this.heapLock.lock(cpu);
    this.setCoreFn(cpu, "free_xenheap_pages");
    this.core.free_xenheap_pages(mfn, 0);
    yield* this.heapLock.unlock(cpu);
  }

  *shareXenPage(cpu: number, d: Domain, mfn: bigint): LockGen<void> {
    yield* d.pageAllocLock.lock(cpu);
    this.setCoreFn(cpu, "share_xen_page_with_guest");
    this.core.share_xen_page_with_guest(mfn, d.slot, SHARE_rw);
    yield* d.pageAllocLock.unlock(cpu);
  }

  putPage(cpu: number, mfn: bigint): void {
    this.setCoreFn(cpu, "put_page");
    this.core.put_page(mfn);
  }

  putPageAllocRef(cpu: number, mfn: bigint): void {
    this.setCoreFn(cpu, "put_page_alloc_ref");
    this.core.put_page_alloc_ref(mfn);
  }

  setPageOwnerNull(mfn: bigint): void {
    const c = this.core as any;
    if (typeof c.page_clear_owner === "function") c.page_clear_owner(mfn);
  }

  // ---- P2M wrappers (FS 6.8 / 6.9) ------------------------------------------------

  /** p2m_set_entry: the caller must hold the P2M write lock (asserted as in __p2m_set_entry). */
  p2mSetEntryLocked(cpu: number, d: Domain, gfn: bigint, nr: bigint, mfn: bigint, t: number): number {
    assertWriteLocked(d.p2mLock, cpu);
    this.setCoreFn(cpu, "p2m_set_entry");
    this.curCpu = cpu;
    return this.p2m.setEntry(d.slot, gfn, nr, mfn, t, d.dying);
  }

  /** p2m_get_entry: caller holds the P2M lock (read or write). */
  p2mGetEntryLocked(cpu: number, d: Domain, gfn: bigint, out: P2mLookup): void {
    if (!d.p2mLock.holds(cpu)) throw new LockAssertionError(`assertLocked failed: ${d.p2mLock.name}, cpu${cpu} (p2m_get_entry)`);
    this.setCoreFn(cpu, "p2m_get_entry");
    this.p2m.getEntry(d.slot, gfn, out);
  }

  /** p2m_insert_mapping. */
  *p2mInsert(cpu: number, d: Domain, gfn: bigint, nr: bigint, mfn: bigint, t: number): LockGen<number> {
    yield* d.p2mLock.writeLock(cpu);
    const rc = this.p2mSetEntryLocked(cpu, d, gfn, nr, mfn, t);
    yield* d.p2mLock.writeUnlock(cpu);
    return rc;
  }

  /** p2m_remove_mapping (PRE ignores mfn; HARDEN+ checks it, FS 6.8). */
  *p2mRemove(cpu: number, d: Domain, gfn: bigint, nr: bigint, mfn: bigint): LockGen<number> {
    yield* d.p2mLock.writeLock(cpu);
    const rc = this.p2mRemoveLocked(cpu, d, gfn, nr, mfn);
    yield* d.p2mLock.writeUnlock(cpu);
    return rc;
  }

  /** Body of p2m_remove_mapping between p2m_write_lock and p2m_write_unlock. */
  p2mRemoveLocked(cpu: number, d: Domain, gfn: bigint, nr: bigint, mfn: bigint): number {
    assertWriteLocked(d.p2mLock, cpu);
    this.setCoreFn(cpu, "p2m_remove_mapping");
    this.curCpu = cpu;
    return this.p2m.removeMapping(d.slot, gfn, nr, mfn, d.dying);
  }

  /** guest_physmap_remove_page(d, gfn, mfn, 0). */
  *guestPhysmapRemovePage(cpu: number, d: Domain, gfn: bigint, mfn: bigint): LockGen<number> {
    return yield* this.p2mRemove(cpu, d, gfn, 1n, mfn);
  }

  private readonly look: P2mLookup = { mfn: 0n, t: 0, order: 0, valid: false };

  /** p2m_lookup / gfn_to_mfn (read lock). */
  *p2mLookup(cpu: number, d: Domain, gfn: bigint): LockGen<bigint> {
    yield* d.p2mLock.readLock(cpu);
    this.p2mGetEntryLocked(cpu, d, gfn, this.look);
    const mfn = this.look.mfn;
    yield* d.p2mLock.readUnlock(cpu);
    return mfn;
  }

  /**
   * get_page_from_gfn(d, gfn, &t, P2M_ALLOC) (FS 6.3). Returns the MFN with a
   * reference taken, or INVALID (NULL). `outT` receives the type.
   */
  *getPageFromGfn(cpu: number, d: Domain, gfn: bigint, outT: { t: number }): LockGen<bigint> {
    const c = this.core;
    if (d === this.domXen) {
      // GFN taken as MFN (asm/p2m.h).
      if (!c.mfn_valid(gfn)) return this.INVALID;
      if (!c.get_page(gfn, d.slot)) return this.INVALID;
      outT.t = (c.type_info(gfn) & c.PGT_writable_page()) !== 0n ? p2m_ram_rw : 2;
      return gfn;
    }
    this.pushWhere(cpu, d.getPageFromGfnName);
    const locked = this.policy.getPageFromGfnLocked;
    yield* d.p2mLock.readLock(cpu);
    const look = this.look;
    this.p2mGetEntryLocked(cpu, d, gfn, look);
    const t = look.t, mfn = look.mfn;
    if (!locked) yield* d.p2mLock.readUnlock(cpu);
    let res = this.INVALID;
    if (p2m_is_any_ram(t) && mfn >= this.ramStartMfn && mfn < this.maxPage) { // mfn_valid
      if (p2m_is_foreign(t)) {
        this.setCoreFn(cpu, "page_get_owner_and_reference");
        const owner = c.page_get_owner_and_reference(mfn);
        if (locked) {
          if (owner === 0 || owner === d.slot) { if (owner !== 0) c.put_page(mfn); }
          else res = mfn;
        } else {
          if (owner === 0 || owner === d.slot) this.bug(cpu, "ASSERT", "p2m_get_page_from_gfn (foreign owner NULL or self)");
          res = mfn;
        }
      } else if (c.get_page(mfn, d.slot)) {
        res = mfn;
      }
    }
    if (locked) yield* d.p2mLock.readUnlock(cpu);
    outT.t = t;
    this.popWhere(cpu);
    return res;
  }

  // ---- hypercalls --------------------------------------------------------------

  /** The handler generator for the scheduler; never throws for guest-reachable conditions. */
  hypercallGen(req: HypercallRequest, opts: CallOptions): LockGen<HypercallResult> {
    if (this.crashed) return refused(this.crashed);
    const caller = this.domains.get(opts.caller);
    if (!caller || caller.system) throw new Error(`hypercall: caller domain ${opts.caller} does not exist`);
    return dispatch(this, req, caller, opts.vcpu ?? 0);
  }

  /** Start-of-hypercall bookkeeping (lockdep context, fault path). */
  enter(cpu: number, op: string): void {
    this.lockdep.setContext(cpu, op);
    let w = this.where[cpu];
    if (w === undefined) this.where[cpu] = w = [];
    // A finished hypercall leaves just its own name: overwrite it rather than
    // truncate (setting length costs more than the rest of enter()).
    if (w.length === 1) w[0] = op;
    else {
      if (w.length !== 0) w.length = 0;
      w.push(op);
    }
  }

  leave(cpu: number): void {
    const w = this.where[cpu];
    if (w !== undefined && w.length !== 0) w.length = 0;
  }

  /** The whole machine as bytes (src/snapshot/); `restoreMachine(bytes)` gives it back. */
  snapshot(): Uint8Array { return snapshotMachine(this); }

  /** SHA-256 of core memory and host state: equal hashes, equal future behaviour. */
  stateHash(): string { return stateHash(this); }

  /** Runs alone: the handlers' synchronous twins (src/locks/twin.ts). */
  hypercall(req: HypercallRequest, opts: CallOptions): HypercallResult {
    // runTwin inlined: no closure per call.
    const outer = twinMode.on;
    twinMode.on = true;
    let r: HypercallResult;
    try {
      r = this.hypercallGen(req, opts) as unknown as HypercallResult;
    } finally {
      twinMode.on = outer;
    }
    if (this.zombies.length !== 0) this.reapZombies();
    return r;
  }

  /** Guest memory for raw hypercalls (per-domain address spaces). */
  readonly guestMemory = new GuestMemory();

  /** Raw form: hypercall number, cmd (with start extent bits), guest address of the argument. */
  *hypercallRawGen(call: RawCall, opts: CallOptions): LockGen<HypercallResult> {
    if (this.crashed) return { rc: CRASHED_RC, crash: this.crashed };
    const dec = decodeRaw(this.guestMemory, opts.caller, call);
    if ("early" in dec) return dec.early;
    const r = yield* this.hypercallGen(dec.req, opts);
    if (r.rc !== CRASHED_RC) dec.writeBack(r);
    return r;
  }

  hypercallRaw(call: RawCall, opts: CallOptions): HypercallResult {
    const r = runTwin(() => this.hypercallRawGen(call, opts));
    if (this.zombies.length !== 0) this.reapZombies();
    return r;
  }

  // ---- inspection ----------------------------------------------------------------

  domain(domid: number): Domain | undefined { return this.domains.get(domid); }

  p2mEntry(domid: number, gfn: bigint | number): P2mEntry {
    const d = this.domains.get(domid);
    if (!d) throw new Error(`no domain ${domid}`);
    const g = BigInt(gfn) & this.INVALID;
    const out: P2mLookup = { mfn: 0n, t: 0, order: 0, valid: false };
    if (!this.p2m.isInitialised(d.slot)) return { gfn: g, mfn: this.INVALID, type: p2m_invalid, order: 0, valid: false };
    this.p2m.getEntry(d.slot, g, out);
    return { gfn: g, mfn: out.mfn, type: out.t, order: out.order, valid: out.valid };
  }

  p2mRuns(domid: number): P2mRun[] {
    const d = this.domains.get(domid);
    return d ? this.p2m.runs(d.slot) : [];
  }

  pageInfo(mfn: bigint | number): PageInfo {
    const m = BigInt(mfn);
    const slot = this.core.page_owner(m);
    const d = this.bySlot[slot];
    return { mfn: m, countInfo: this.core.count_info(m), typeInfo: this.core.type_info(m), owner: slot === 0 ? null : d ? d.domid : -slot };
  }

  freePages(): bigint { return this.core.total_avail_pages(); }

  xenheapGfn(mfn: bigint): bigint { return this.core.page_get_xenheap_gfn(mfn); }
}

// Twins are compiled here so they see this module's bindings.
const moduleEval = (src: string): unknown => eval(src);
const dual = dualIn(moduleEval);

// eslint-disable-next-line require-yield
const refused = dual(function* refused(crash: HypervisorCrash): LockGen<HypercallResult> {
  return { rc: CRASHED_RC, crash };
});

dualMethods(MachineImpl.prototype, moduleEval, [
  "createSharedInfo", "allocRam", "killGen", "relinquishMemory", "finalDestroyGen", "allocXenheapPage", "freeXenheapPage", "shareXenPage", "p2mInsert", "p2mRemove", "guestPhysmapRemovePage",
  "p2mLookup", "getPageFromGfn", "hypercallRawGen",
]);

export async function createMachine(cfg: MachineConfig = {}): Promise<MachineImpl> {
  const core = await createCoreInstance(cfg.debugCore ? "debug" : undefined);
  return new MachineImpl(core, cfg);
}

export type Machine = MachineImpl;
