// Hypercall handlers (FS 7.5, 8.3, 8.4): every check in Xen's order. Each
// handler is a generator that takes locks with `yield*`, made dual so a call
// that runs alone uses its synchronous twin (src/locks/twin.ts).

import { dualIn, LockBugError, type LockGen } from "../locks/index.js";
import { DOMID_IO, DOMID_SELF, DOMID_XEN, type HypercallRequest, type HypercallResult } from "../machine/api.js";
import type { Domain, MachineImpl } from "../machine/machine.js";
import {
  CRASHED_RC, EACCES, EDOM, ERANGE, EILSEQ, EINVAL, EIO, ENOENT, ENOSYS, ENXIO, EOPNOTSUPP, EOVERFLOW, EPERM, ESRCH,
  GNTST_bad_domain, GNTST_general_error, GNTST_okay, GNTST_permission_denied,
  p2m_is_ram, p2m_map_foreign_ro, p2m_map_foreign_rw, p2m_mmio_direct_c, p2m_ram_ro, p2m_ram_rw,
} from "../machine/errno.js";
import {
  gnttabGrowTable, gnttabMapFrame, gnttabMapFrameEnd, gnttabPopulateStatusFrames, gnttabSharedGfn,
  gnttabStatusGfn, gnttabUnpopulateStatusFrames, type MapFrameOut,
} from "../grant/index.js";
import { clearAndRestoreReserved, reservedNotRepresentableInV1, saveReservedEntries } from "../grant/entries.js";

export const __HYPERVISOR_memory_op = 12;
export const __HYPERVISOR_xen_version = 17;
export const __HYPERVISOR_grant_table_op = 20;

export const XENMEM = {
  increase_reservation: 0, decrease_reservation: 1, maximum_ram_page: 2, current_reservation: 3,
  maximum_reservation: 4, populate_physmap: 6, add_to_physmap: 7, maximum_gpfn: 14, remove_from_physmap: 15,
  add_to_physmap_batch: 23, acquire_resource: 28,
} as const;
export const GNTTABOP = { setup_table: 2, query_size: 6, set_version: 8, get_status_frames: 9, get_version: 10 } as const;
export const XENMAPSPACE = { shared_info: 0, grant_table: 1, gmfn: 2, gmfn_range: 3, gmfn_foreign: 4, dev_mmio: 5 } as const;
export const XENMEM_resource = { ioreq_server: 0, grant_table: 1, vmtrace_buf: 2 } as const;
export const XENMEMF_populate_on_demand = 1 << 16;
export const MEMOP_EXTENT_SHIFT = 6;

// Twins are compiled here so they see this module's bindings.
const dual = dualIn((src) => eval(src));

const big = (v: bigint | number | undefined): bigint => (v === undefined ? 0n : BigInt(v));

/**
 * A guest's xen_ulong_t argument as Xen's unsigned long (`inv` = all ones of
 * the arch width). Values already in range skip the mask, which costs a
 * BigInt operation and allocation per call; a u32 number is in range on
 * every arch.
 */
const ulong = (v: bigint | number | undefined, inv: bigint): bigint =>
  typeof v === "bigint" && v >= 0n && v <= inv ? v
  : typeof v === "number" && v >>> 0 === v ? BigInt(v)
  : big(v) & inv;

// ---- domain lookup / XSM dummy policy ----------------------------------------------

/** rcu_lock_domain_by_any_id: DOMID_SELF = caller; system domains are not in the hash. */
export function lockDomainByAnyId(m: MachineImpl, caller: Domain, domid: number): Domain | null {
  if (domid === DOMID_SELF) return caller;
  const d = m.domains.get(domid);
  return d && !d.system && !d.dying ? d : null;
}

/** xsm_default_action(XSM_TARGET, src, target). */
export function xsmTarget(src: Domain, target: Domain): number {
  if (src === target) return 0;
  if (src.cfg.dmTargetOf !== undefined && src.cfg.dmTargetOf === target.domid) return 0;
  return src.privileged ? 0 : -EPERM;
}

/** xsm_default_action(XSM_DM_PRIV, src, target). */
export function xsmDmPriv(src: Domain, target: Domain): number {
  if (src.cfg.dmTargetOf !== undefined && src.cfg.dmTargetOf === target.domid) return 0;
  return src.privileged ? 0 : -EPERM;
}

/** Foreign owner lookup of FS 8.4's table; Domain or negative errno. */
function lookupForeign(m: MachineImpl, caller: Domain, domid: number): Domain | number {
  if (m.policy.foreignLookup === "get_pg_owner") {
    if (domid === DOMID_SELF) return caller;
    if (domid === caller.domid) return -ESRCH; // "Cannot specify itself as foreign domain"
    if (domid === DOMID_IO) return m.domIo;
    if (domid === DOMID_XEN) return m.domXen;
    const d = lockDomainByAnyId(m, caller, domid);
    return d ?? -ESRCH;
  }
  if (domid === DOMID_XEN) return m.domXen;
  return lockRemoteDomainById(m, caller, domid);
}

/** rcu_lock_remote_domain_by_id: DOMID_SELF not resolved; own id → -EPERM. */
function lockRemoteDomainById(m: MachineImpl, caller: Domain, domid: number): Domain | number {
  if (domid === DOMID_SELF) return -ESRCH;
  const d = m.domains.get(domid);
  if (!d || d.system || d.dying) return -ESRCH;
  if (d === caller) return -EPERM;
  return d;
}

// ---- dispatch --------------------------------------------------------------------

export const dispatch = dual(function* dispatch(m: MachineImpl, req: HypercallRequest, caller: Domain, cpu: number): LockGen<HypercallResult> {
  m.enter(cpu, req.op);
  try {
    switch (req.op) {
      case "XENMEM_add_to_physmap": return { rc: yield* addToPhysmap(m, req, caller, cpu) };
      case "XENMEM_add_to_physmap_batch": return yield* addToPhysmapBatch(m, req, caller, cpu);
      case "XENMEM_remove_from_physmap": return { rc: yield* removeFromPhysmap(m, req, caller, cpu) };
      case "XENMEM_populate_physmap":
      case "XENMEM_increase_reservation":
      case "XENMEM_decrease_reservation": return { rc: yield* reservationOp(m, req, caller, cpu) };
      case "XENMEM_acquire_resource": return yield* acquireResource(m, req, caller, cpu);
      case "XENMEM_current_reservation":
      case "XENMEM_maximum_reservation":
      case "XENMEM_maximum_gpfn": return { rc: statOp(m, req, caller) };
      case "GNTTABOP_setup_table": return yield* gnttabSetupTable(m, req, caller, cpu);
      case "GNTTABOP_set_version": return yield* gnttabSetVersion(m, req, caller, cpu);
      case "GNTTABOP_get_version": {
        const d = lockDomainByAnyId(m, caller, req.dom);
        if (!d) return { rc: -ESRCH };
        const x = xsmTarget(caller, d);
        if (x) return { rc: x };
        return { rc: 0, version: d.grant!.version };
      }
      case "GNTTABOP_get_status_frames": return yield* gnttabGetStatusFrames(m, req, caller, cpu);
      case "GNTTABOP_query_size": return yield* gnttabQuerySize(m, req, caller, cpu);
      case "XENVER_version": return { rc: m.policy.xenVersion };
      default:
        return { rc: -ENOSYS };
    }
  } catch (e) {
    // Blocking while alone escapes the handler from runToCompletion, outside
    // this generator; the twin throws it from inside, so it passes through.
    if (e instanceof LockBugError && e.kind === "blocked-alone") throw e;
    return { rc: CRASHED_RC, crash: m.recordCrash(e, cpu) };
  }
});

// ---- XENMEM_add_to_physmap ----------------------------------------------------------

/** xatp_permission_check. */
function xatpPermissionCheck(caller: Domain, d: Domain, space: number): number {
  if (space === XENMAPSPACE.dev_mmio && (!d.hardware || d !== caller)) return -EACCES;
  return xsmTarget(caller, d);
}

type Req<K extends HypercallRequest["op"]> = Extract<HypercallRequest, { op: K }>;

const addToPhysmap = dual(function* addToPhysmap(m: MachineImpl, req: Req<"XENMEM_add_to_physmap">, caller: Domain, cpu: number): LockGen<number> {
  const start = req.startExtent ?? 0;
  if (start > 0xffff) return -EDOM;
  const space = req.space >>> 0;
  if (space === XENMAPSPACE.gmfn_foreign) return -ENOSYS;
  const d = lockDomainByAnyId(m, caller, req.domid);
  if (!d) return -ESRCH;
  const p = xatpPermissionCheck(caller, d, space);
  if (p) return p;
  const inv = m.INVALID;
  const idx = ulong(req.idx, inv);
  const gpfn = ulong(req.gpfn, inv);
  if (gpfn === inv) return -EINVAL;
  if (space !== XENMAPSPACE.gmfn_range) return yield* addToPhysmapOne(m, cpu, caller, d, space, 0x7ff4 /* DOMID_INVALID */, idx, gpfn);
  const size = BigInt((req.size ?? 0) & 0xffff);
  if (size < BigInt(start)) return -EILSEQ;
  if (idx + size > inv || gpfn + size > inv) return -EOVERFLOW;
  // idx/gpfn/size advance by the start extent; nothing left to do is success.
  if (size === BigInt(start)) return 0;
  // Each item is XENMAPSPACE_gmfn, which Arm rejects.
  return yield* addToPhysmapOne(m, cpu, caller, d, XENMAPSPACE.gmfn, 0, idx + BigInt(start), gpfn + BigInt(start));
});


/** xenmem_add_to_physmap_one on Arm (FS 8.4). */
export const addToPhysmapOne = dual(function* addToPhysmapOne(m: MachineImpl, cpu: number, caller: Domain, d: Domain, space: number, extra: number, idx: bigint, gfn: bigint): LockGen<number> {
  let mfn = m.INVALID;
  let t = p2m_ram_rw;
  let grantPage = false;
  let foreignPage = false;
  const head = m.policy.grantLockAcrossP2m;
  switch (space) {
    case XENMAPSPACE.shared_info:
      if (idx !== 0n) return -EINVAL;
      mfn = d.sharedInfo;
      break;
    case XENMAPSPACE.grant_table: {
      m.pushWhere(cpu, head ? "gnttab_map_frame_begin" : "gnttab_map_frame");
      const mapOut: MapFrameOut = { mfn: 0n };
      const rc = yield* gnttabMapFrame(m, cpu, d, idx, gfn, mapOut, head);
      m.popWhere(cpu);
      if (rc !== 0) return rc;
      mfn = mapOut.mfn;
      grantPage = true;
      break;
    }
    case XENMAPSPACE.gmfn_foreign: {
      const od = lookupForeign(m, caller, extra);
      if (typeof od === "number") return od;
      if (od === d) return -EINVAL;
      const x = xsmTarget(d, od); // xsm_map_gmfn_foreign(XSM_TARGET, d, od)
      if (x) return x;
      m.pushWhere(cpu, "xenmem_add_to_physmap_one(gmfn_foreign)");
      const tOut = { t: 0 };
      const page = yield* m.getPageFromGfn(cpu, od, idx, tOut);
      m.popWhere(cpu);
      if (page === m.INVALID) return -EINVAL;
      if (tOut.t === p2m_ram_rw) t = p2m_map_foreign_rw;
      else if (tOut.t === p2m_ram_ro) t = p2m_map_foreign_ro;
      else { m.putPage(cpu, page); return -EINVAL; }
      mfn = page;
      foreignPage = true;
      break;
    }
    case XENMAPSPACE.dev_mmio:
      return yield* mapDevMmioPage(m, cpu, d, gfn, idx);
    default:
      return -ENOSYS;
  }

  let rc: number;
  if (!m.policy.xenheapMappedEbusy || !p2m_is_ram(t) || !m.core.is_xen_heap_mfn(mfn)) {
    // guest_physmap_add_entry -> p2m_insert_mapping (inlined: one generator level less)
    yield* d.p2mLock.writeLock(cpu);
    rc = m.p2mSetEntryLocked(cpu, d, gfn, 1n, mfn, t);
    yield* d.p2mLock.writeUnlock(cpu);
  } else {
    // GFN+: xenheap pages are mapped at most once (FS 8.4).
    yield* d.p2mLock.writeLock(cpu);
    m.gfnAudit.read(mfn, cpu, "p2m_locked");
    m.setCoreFn(cpu, "page_get_xenheap_gfn");
    if (m.core.page_get_xenheap_gfn(mfn) === m.INVALID) {
      rc = m.p2mSetEntryLocked(cpu, d, gfn, 1n, mfn, t);
      if (rc === 0) {
        m.gfnAudit.write(mfn, cpu, "p2m_locked");
        m.setCoreFn(cpu, "page_set_xenheap_gfn");
        m.core.page_set_xenheap_gfn(mfn, gfn);
      }
    } else {
      rc = -16; // -EBUSY
    }
    yield* d.p2mLock.writeUnlock(cpu);
  }

  if (grantPage) {
    if (head) yield* gnttabMapFrameEnd(m, cpu, d, mfn);
    else m.putPage(cpu, mfn);
  } else if (foreignPage && rc !== 0) {
    m.putPage(cpu, mfn);
  }
  return rc;
});

/** map_dev_mmio_page (FS 6.9): no permission → 0 without mapping. */
const mapDevMmioPage = dual(function* mapDevMmioPage(m: MachineImpl, cpu: number, d: Domain, gfn: bigint, mfn: bigint): LockGen<number> {
  let ok = false;
  for (const [a, b] of d.iomem) if (mfn >= a && mfn < b) { ok = true; break; }
  if (!ok) return 0;
  return yield* m.p2mInsert(cpu, d, gfn, 1n, mfn, p2m_mmio_direct_c);
});

// ---- XENMEM_add_to_physmap_batch -------------------------------------------------------

const addToPhysmapBatch = dual(function* addToPhysmapBatch(m: MachineImpl, req: Req<"XENMEM_add_to_physmap_batch">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const start = req.startExtent ?? 0;
  if (start > 0xffff) return { rc: -EDOM };
  const space = req.space & 0xffff;
  if (space === XENMAPSPACE.gmfn_range) return { rc: -EOPNOTSUPP };
  const d = lockDomainByAnyId(m, caller, req.domid);
  if (!d) return { rc: -ESRCH };
  const p = xatpPermissionCheck(caller, d, space);
  if (p) return { rc: p };
  const size = req.size & 0xffff;
  if (size < start) return { rc: -EILSEQ };
  if (size === start) return { rc: start ? -EILSEQ : 0 };
  const extra = (req.foreign_domid ?? 0) & 0xffff;
  if (space === XENMAPSPACE.dev_mmio && extra !== 0) return { rc: -EOPNOTSUPP };
  const errs: (number | null)[] = new Array(size).fill(null);
  const inv = m.INVALID;
  for (let i = start; i < size; i++) {
    if (i >= req.idxs.length || i >= req.gpfns.length) return { rc: -14, errs }; // -EFAULT: beyond the guest arrays
    const idx = ulong(req.idxs[i], inv);
    const gpfn = ulong(req.gpfns[i], inv);
    if (gpfn === inv) return { rc: -EINVAL, errs };
    errs[i] = yield* addToPhysmapOne(m, cpu, caller, d, space, extra, idx, gpfn);
  }
  return { rc: 0, errs };
});

// ---- XENMEM_remove_from_physmap --------------------------------------------------------

const removeFromPhysmap = dual(function* removeFromPhysmap(m: MachineImpl, req: Req<"XENMEM_remove_from_physmap">, caller: Domain, cpu: number): LockGen<number> {
  if ((req.startExtent ?? 0) !== 0) return -EINVAL;
  const d = lockDomainByAnyId(m, caller, req.domid);
  if (!d) return -ESRCH;
  const x = xsmTarget(caller, d);
  if (x) return x;
  const gpfn = ulong(req.gpfn, m.INVALID);
  const page = yield* m.getPageFromGfn(cpu, d, gpfn, { t: 0 });
  if (page === m.INVALID) return -ENOENT;
  // guest_physmap_remove_page -> p2m_remove_mapping (inlined: one generator level less)
  yield* d.p2mLock.writeLock(cpu);
  const rc = m.p2mRemoveLocked(cpu, d, gpfn, 1n, page);
  yield* d.p2mLock.writeUnlock(cpu);
  m.putPage(cpu, page);
  return rc;
});

// ---- reservations (FS 8.3, 8.6) --------------------------------------------------------

export function maxOrder(d: Domain): number {
  let o = 9;
  if (d.privileged) o = Math.max(o, 18);
  if (d.hardware) o = Math.max(o, 10);
  return Math.min(o, 18);
}

const reservationOp = dual(function* reservationOp(m: MachineImpl, req: Req<"XENMEM_populate_physmap" | "XENMEM_increase_reservation" | "XENMEM_decrease_reservation">, caller: Domain, cpu: number): LockGen<number> {
  const start = req.startExtent ?? 0;
  const nr = req.nr_extents ?? req.extent_start.length;
  if (nr > 0x3ffffff) return start;
  if (start >= nr) return start;
  const d = lockDomainByAnyId(m, caller, req.domid);
  if (!d) return start;
  const order = req.extent_order ?? 0;
  const flags = req.mem_flags ?? 0;
  const pod = req.op === "XENMEM_populate_physmap" && (flags & XENMEMF_populate_on_demand) !== 0;
  if (xsmTarget(caller, d)) return start;
  if (order > (pod ? 18 : maxOrder(caller))) return start;
  const inv = m.INVALID;
  const c = m.core;
  let i = start;
  for (; i < nr; i++) {
    if (req.op !== "XENMEM_increase_reservation" && i >= req.extent_start.length) break; // copy fault
    if (req.op === "XENMEM_increase_reservation") {
      const mfn = yield* allocDomheap(m, cpu, d, order);
      if (mfn === inv) break;
      continue;
    }
    const gpfn = ulong(req.extent_start[i], inv);
    if (req.op === "XENMEM_populate_physmap") {
      if (pod) break; // guest_physmap_mark_populate_on_demand → -ENOSYS
      let mfn: bigint;
      if (d.directMapped) {
        let ok = true;
        for (let j = 0n; j < 1n << BigInt(order); j++) {
          const mm = gpfn + j;
          if (!c.mfn_valid(mm) || !c.get_page(mm, d.slot)) { ok = false; break; }
          m.putPage(cpu, mm);
        }
        if (!ok) break;
        mfn = gpfn;
      } else {
        mfn = yield* allocDomheap(m, cpu, d, order);
        if (mfn === inv) break;
      }
      const rc = yield* m.p2mInsert(cpu, d, gpfn, 1n << BigInt(order), mfn, p2m_ram_rw);
      if (rc !== 0) break;
    } else {
      let ok = true;
      for (let j = 0n; j < 1n << BigInt(order); j++) {
        if ((yield* guestRemovePage(m, cpu, d, (gpfn + j) & inv)) !== 0) { ok = false; break; }
      }
      if (!ok) break;
    }
  }
  return i;
});

const allocDomheap = dual(function* allocDomheap(m: MachineImpl, cpu: number, d: Domain, order: number): LockGen<bigint> {
  yield* d.pageAllocLock.lock(cpu);
  yield* m.heapLock.lock(cpu);
  m.setCoreFn(cpu, "alloc_domheap_pages");
  const mfn = m.core.alloc_domheap_pages(d.slot, order, 0);
  yield* m.heapLock.unlock(cpu);
  yield* d.pageAllocLock.unlock(cpu);
  return mfn;
});

/** guest_remove_page on Arm (FS 8.3). */
const guestRemovePage = dual(function* guestRemovePage(m: MachineImpl, cpu: number, d: Domain, gfn: bigint): LockGen<number> {
  const mfn = yield* m.p2mLookup(cpu, d, gfn);
  if (!m.core.mfn_valid(mfn)) return -EINVAL;
  if (!m.core.get_page(mfn, d.slot)) return -ENXIO;
  let rc = yield* m.p2mRemove(cpu, d, gfn, 1n, mfn); // guest_physmap_remove_page
  if (rc === 0 && !d.directMapped) m.putPageAllocRef(cpu, mfn);
  m.putPage(cpu, mfn);
  if (rc === -ENOENT) rc = -EINVAL;
  return rc;
});

function statOp(m: MachineImpl, req: Req<"XENMEM_current_reservation" | "XENMEM_maximum_reservation" | "XENMEM_maximum_gpfn">, caller: Domain): number | bigint {
  if ((req.startExtent ?? 0) !== 0) return -EINVAL;
  const d = lockDomainByAnyId(m, caller, req.domid);
  if (!d) return -ESRCH;
  const x = xsmTarget(caller, d);
  if (x) return x;
  let v: bigint;
  if (req.op === "XENMEM_current_reservation") v = m.core.domain_tot_pages(d.slot);
  else if (req.op === "XENMEM_maximum_reservation") v = m.core.domain_max_pages(d.slot);
  else v = m.p2m.maxMappedGfn(d.slot);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

// ---- XENMEM_acquire_resource (FS 7.6, 8.3) ------------------------------------------------

const acquireResource = dual(function* acquireResource(m: MachineImpl, req: Req<"XENMEM_acquire_resource">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const start = req.startExtent ?? 0;
  if ((req.pad ?? 0) !== 0) return { rc: -EINVAL };
  const frame = big(req.frame);
  const nrFrames = req.nr_frames >>> 0;
  if (frame >> 32n !== 0n || (frame + BigInt(nrFrames)) >> 32n !== 0n) return { rc: -EINVAL };
  const d = lockRemoteDomainById(m, caller, req.domid);
  if (typeof d === "number") return { rc: d };
  const x = xsmDmPriv(caller, d);
  if (x) return { rc: x };
  const type = req.type & 0xffff;
  let maxFrames: number;
  if (type === XENMEM_resource.grant_table) maxFrames = req.id === 0 ? d.grant!.maxGrantFrames : 0;
  else if (type === XENMEM_resource.vmtrace_buf) maxFrames = 0;
  else maxFrames = m.policy.unknownResourceMaxFrames;
  if (maxFrames === 0) return { rc: -EINVAL };
  if (req.frame_list === null) {
    if (nrFrames !== 0 || start !== 0) return { rc: -EINVAL };
    return { rc: 0, nr_frames: maxFrames };
  }
  if (nrFrames > 0x3ffffff || start >= nrFrames) return { rc: -EINVAL };
  if (type !== XENMEM_resource.grant_table) return { rc: -EOPNOTSUPP };
  let rc = 0;
  let s = start;
  while (s < nrFrames) {
    const done = Math.min(nrFrames - s, 32);
    // gnttab_acquire_resource
    const gt = d.grant!;
    yield* d.grantLock.writeLock(cpu);
    const final = Number(frame) + s + done - 1;
    if (final >= gt.nrGrantFrames && final + 1 <= gt.maxGrantFrames) yield* gnttabGrowTable(m, cpu, d, final + 1);
    const ok = final < gt.nrGrantFrames;
    const mfns = ok ? gt.shared.slice(Number(frame) + s, Number(frame) + s + done) : [];
    yield* d.grantLock.writeUnlock(cpu);
    if (!ok) { rc = -EINVAL; break; }
    for (let i = 0; i < done; i++) {
      if (s + i >= req.frame_list.length) { rc = -14; break; }
      const gfn = ulong(req.frame_list[s + i], m.INVALID);
      rc = yield* setForeignP2mEntry(m, cpu, caller, d, gfn, mfns[i]);
      if (rc && i) rc = -EIO;
      if (rc) break;
    }
    if (rc) break;
    s += done;
  }
  return { rc };
});

/** set_foreign_p2m_entry(d, fd, gfn, mfn). */
const setForeignP2mEntry = dual(function* setForeignP2mEntry(m: MachineImpl, cpu: number, d: Domain, fd: Domain, gfn: bigint, mfn: bigint): LockGen<number> {
  m.setCoreFn(cpu, "get_page");
  if (!m.core.get_page(mfn, fd.slot)) return -EINVAL;
  if (d === fd) m.bug(cpu, "ASSERT", "set_foreign_p2m_entry (d == fd)");
  const rc = yield* m.p2mInsert(cpu, d, gfn, 1n, mfn, p2m_map_foreign_rw);
  if (rc) m.putPage(cpu, mfn);
  return rc;
});

// ---- grant-table sub-ops (FS 7.5) -----------------------------------------------------

const gnttabSetupTable = dual(function* gnttabSetupTable(m: MachineImpl, req: Req<"GNTTABOP_setup_table">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const count = req.count ?? 1;
  if (count < 0 || count !== 1) return { rc: -EINVAL };
  const d = lockDomainByAnyId(m, caller, req.dom);
  if (!d) return { rc: 0, status: GNTST_bad_domain };
  if (xsmTarget(caller, d)) return { rc: 0, status: GNTST_permission_denied };
  const gt = d.grant!;
  const nr = req.nr_frames >>> 0;
  yield* d.grantLock.writeLock(cpu);
  let status = GNTST_okay;
  let list: bigint[] | undefined;
  if (nr > gt.maxGrantFrames) status = GNTST_general_error;
  else if (nr > gt.nrGrantFrames && (yield* gnttabGrowTable(m, cpu, d, nr)) !== 0) status = GNTST_general_error;
  else {
    list = new Array(nr);
    for (let i = 0; i < nr; i++) list[i] = gnttabSharedGfn(m, cpu, d, i); // u64 zero-extends on arm32
  }
  yield* d.grantLock.writeUnlock(cpu);
  return list ? { rc: 0, status, frame_list: list } : { rc: 0, status };
});

const gnttabSetVersion = dual(function* gnttabSetVersion(m: MachineImpl, req: Req<"GNTTABOP_set_version">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const d = caller;
  const gt = d.grant!;
  const v = req.version >>> 0;
  let rc = 0;
  if (v !== 1 && v !== 2) rc = -EINVAL;
  else if (v === 2 && gt.maxVersion === 1) rc = -ENOSYS;
  else if (gt.version !== v) {
    yield* d.grantLock.writeLock(cpu);
    m.pushWhere(cpu, "gnttab_set_version");
    // No active-entry pins are modelled (no map_grant_ref), so the -EBUSY scan never hits.
    if (gt.version === 2 && reservedNotRepresentableInV1(m.core, gt)) rc = -ERANGE;
    else {
      if (v === 2) rc = yield* gnttabPopulateStatusFrames(m, cpu, d, gt.nrGrantFrames);
      const saved = rc >= 0 ? saveReservedEntries(m.core, gt) : null;
      if (rc >= 0 && v === 1) rc = yield* gnttabUnpopulateStatusFrames(m, cpu, d);
      if (rc >= 0) {
        rc = 0;
        clearAndRestoreReserved(m.core, gt, v, saved);
        gt.version = v;
        d.grantGen++;
      }
    }
    m.popWhere(cpu);
    yield* d.grantLock.writeUnlock(cpu);
  }
  return { rc, version: gt.version };
});

const gnttabGetStatusFrames = dual(function* gnttabGetStatusFrames(m: MachineImpl, req: Req<"GNTTABOP_get_status_frames">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const count = req.count ?? 1;
  if (count !== 1) return { rc: -EINVAL };
  const d = lockDomainByAnyId(m, caller, req.dom);
  if (!d) return { rc: 0, status: GNTST_bad_domain };
  if (xsmTarget(caller, d)) return { rc: 0, status: GNTST_permission_denied };
  const gt = d.grant!;
  const nr = req.nr_frames >>> 0;
  yield* d.grantLock.readLock(cpu);
  let res: HypercallResult;
  if (nr > gt.nrStatusFrames) res = { rc: 0, status: GNTST_general_error };
  else {
    const list: bigint[] = new Array(nr);
    for (let i = 0; i < nr; i++) list[i] = gnttabStatusGfn(m, cpu, d, i);
    res = { rc: 0, status: GNTST_okay, frame_list: list };
  }
  yield* d.grantLock.readUnlock(cpu);
  return res;
});

const gnttabQuerySize = dual(function* gnttabQuerySize(m: MachineImpl, req: Req<"GNTTABOP_query_size">, caller: Domain, cpu: number): LockGen<HypercallResult> {
  const count = req.count ?? 1;
  if (count !== 1) return { rc: -EINVAL };
  const d = lockDomainByAnyId(m, caller, req.dom);
  if (!d) return { rc: 0, status: GNTST_bad_domain, dom: req.dom, nr_frames: 0, max_nr_frames: 0 };
  if (xsmTarget(caller, d)) return { rc: 0, status: GNTST_permission_denied, dom: req.dom, nr_frames: 0, max_nr_frames: 0 };
  const gt = d.grant!;
  yield* d.grantLock.readLock(cpu);
  const r = { rc: 0, status: GNTST_okay, dom: req.dom, nr_frames: gt.nrGrantFrames, max_nr_frames: gt.maxGrantFrames };
  yield* d.grantLock.readUnlock(cpu);
  return r;
});
