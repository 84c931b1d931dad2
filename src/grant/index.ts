// Grant tables on Arm (FS 7): frames, growth, status frames, the frame-GFN
// hooks of the four revisions, and gnttab_map_frame (+ the HEAD split).
// Every function that takes locks is a generator (yield* at lock points),
// made dual (src/locks/twin.ts). Every change of a table's frames, counts,
// version or stored GFNs bumps d.grantGen (for observers: Domain.grantGen).

import type { LockGen } from "../locks/index.js";
import { assertWriteLocked, dualIn } from "../locks/index.js";
import type { Domain, MachineImpl } from "../machine/machine.js";
import { EBUSY, EINVAL, ENOMEM } from "../machine/errno.js";

// Twins are compiled here so they see this module's bindings.
const dual = dualIn((src) => eval(src));

export const INITIAL_NR_GRANT_FRAMES = 1;
export const XENMAPIDX_grant_table_status = 0x80000000n;

export const grantToStatusFrames = (n: number) => Math.ceil(n / 8);
export const statusToGrantFrames = (s: number) => 8 * s;

export class GrantTable {
  version = 1;
  nrGrantFrames = 0;
  nrStatusFrames = 0;
  /** shared_raw[i] as MFNs (xenheap). */
  readonly shared: bigint[] = [];
  /** status[i] as MFNs. */
  readonly status: bigint[] = [];
  /** PRE/HARDEN struct grant_table_arch (FS 7.2); null from GFN on. */
  sharedGfn: bigint[] | null = null;
  statusGfn: bigint[] | null = null;

  constructor(
    readonly maxGrantFrames: number,
    readonly maxMaptrackFrames: number,
    readonly maxVersion: number,
  ) {}
}

/** grant_table_init (FS 7.1). Caller: domain creation (cpu given). */
export const grantTableInit = dual(function* grantTableInit(m: MachineImpl, cpu: number, d: Domain, maxGrant: number, maxMaptrack: number): LockGen<number> {
  const opt = m.xenOptions;
  const optMaxGrant = opt.gnttabMaxFrames ?? 64;
  const optMaxMaptrack = opt.gnttabMaxMaptrackFrames ?? 1024;
  if (maxGrant < 0) maxGrant = optMaxGrant;
  if (maxMaptrack < 0) maxMaptrack = optMaxMaptrack;
  if (maxGrant < INITIAL_NR_GRANT_FRAMES) return -EINVAL;
  if (m.policy.grantLimitUpperBound && (maxGrant > optMaxGrant || maxMaptrack > optMaxMaptrack)) return -EINVAL;
  const gt = new GrantTable(maxGrant, maxMaptrack, opt.gnttabMaxVersion ?? 1);
  d.grant = gt;
  d.grantGen++;
  yield* d.grantLock.writeLock(cpu);
  if (m.policy.grantGfnArrays) {
    // gnttab_init_arch: arrays of INVALID_GFN.
    gt.sharedGfn = new Array<bigint>(maxGrant).fill(m.INVALID);
    gt.statusGfn = new Array<bigint>(grantToStatusFrames(maxGrant)).fill(m.INVALID);
    d.grantGen++;
  }
  const rc = yield* gnttabGrowTable(m, cpu, d, 0);
  yield* d.grantLock.writeUnlock(cpu);
  return rc;
});

/** gnttab_grow_table(d, req) — grant write lock held. */
export const gnttabGrowTable = dual(function* gnttabGrowTable(m: MachineImpl, cpu: number, d: Domain, req: number): LockGen<number> {
  const gt = d.grant!;
  assertWriteLocked(d.grantLock, cpu);
  if (req < INITIAL_NR_GRANT_FRAMES) req = INITIAL_NR_GRANT_FRAMES;
  const first = gt.nrGrantFrames;
  for (let i = first; i < req; i++) {
    const mfn = yield* m.allocXenheapPage(cpu);
    if (mfn === m.INVALID) {
      for (let j = first; j < i; j++) yield* m.freeXenheapPage(cpu, gt.shared[j]);
      gt.shared.length = first;
      d.grantGen++;
      return -ENOMEM;
    }
    gt.shared[i] = mfn;
    d.grantGen++;
  }
  if (gt.version > 1) {
    const rc = yield* gnttabPopulateStatusFrames(m, cpu, d, req);
    if (rc !== 0) {
      for (let j = first; j < req; j++) yield* m.freeXenheapPage(cpu, gt.shared[j]);
      gt.shared.length = first;
      d.grantGen++;
      return -ENOMEM;
    }
  }
  for (let i = first; i < req; i++) yield* m.shareXenPage(cpu, d, gt.shared[i]);
  gt.nrGrantFrames = req;
  d.grantGen++;
  return 0;
});

/** gnttab_populate_status_frames (FS 7.4). */
export const gnttabPopulateStatusFrames = dual(function* gnttabPopulateStatusFrames(m: MachineImpl, cpu: number, d: Domain, reqNrFrames: number): LockGen<number> {
  const gt = d.grant!;
  const reqStatus = grantToStatusFrames(reqNrFrames);
  const first = gt.nrStatusFrames;
  for (let i = first; i < reqStatus; i++) {
    const mfn = yield* m.allocXenheapPage(cpu);
    if (mfn === m.INVALID) {
      for (let j = first; j < i; j++) yield* m.freeXenheapPage(cpu, gt.status[j]);
      gt.status.length = first;
      d.grantGen++;
      return -ENOMEM;
    }
    gt.status[i] = mfn;
    d.grantGen++;
  }
  for (let i = first; i < reqStatus; i++) yield* m.shareXenPage(cpu, d, gt.status[i]);
  gt.nrStatusFrames = Math.max(first, reqStatus);
  d.grantGen++;
  return 0;
});

/** gnttab_get_frame_gfn(gt, status, idx): PRE/HARDEN array (bounds-checked), GFN+ page (unlocked read). */
export function gnttabGetFrameGfn(m: MachineImpl, cpu: number, d: Domain, status: boolean, idx: number): bigint {
  const gt = d.grant!;
  if (m.policy.grantGfnArrays) {
    const arr = status ? gt.statusGfn! : gt.sharedGfn!;
    const nr = status ? gt.nrStatusFrames : gt.nrGrantFrames;
    return idx >= nr ? m.INVALID : arr[idx];
  }
  const mfn = status ? gt.status[idx] : gt.shared[idx];
  m.gfnAudit.read(mfn, cpu, "unprotected"); // single load, but outside the P2M lock: may be stale (FS 2.4, 11.5)
  m.setCoreFn(cpu, "page_get_xenheap_gfn");
  return m.core.page_get_xenheap_gfn(mfn);
}

/**
 * gnttab_set_frame_gfn(gt, status, idx, gfn, mfn) (FS 7.2 / 7.3). Grant write
 * lock held. PRE/HARDEN: remove the recorded GFN (unless invalid/equal), store on
 * success. GFN: only the INVALID_GFN form removes. HEAD: does not exist (callers
 * skip it; the unpopulate path removes directly).
 */
export const gnttabSetFrameGfn = dual(function* gnttabSetFrameGfn(m: MachineImpl, cpu: number, d: Domain, status: boolean, idx: number, gfn: bigint, mfn: bigint): LockGen<number> {
  const gt = d.grant!;
  if (m.policy.grantGfnArrays) {
    const arr = status ? gt.statusGfn! : gt.sharedGfn!;
    const ogfn = gnttabGetFrameGfn(m, cpu, d, status, idx);
    let rc = 0;
    if (ogfn === m.INVALID || ogfn === gfn || (rc = yield* m.guestPhysmapRemovePage(cpu, d, ogfn, mfn)) === 0) {
      arr[idx] = gfn;
      d.grantGen++;
    }
    return rc;
  }
  if (gfn === m.INVALID) {
    const cur = gnttabGetFrameGfn(m, cpu, d, status, idx);
    return yield* m.guestPhysmapRemovePage(cpu, d, cur, mfn);
  }
  return 0;
});

/** Lookup helpers (grant write lock held); return the MFN or a negative errno as number. */
const getSharedFrameMfn = dual(function* getSharedFrameMfn(m: MachineImpl, cpu: number, d: Domain, idx: number): LockGen<bigint | number> {
  const gt = d.grant!;
  if (idx >= gt.nrGrantFrames) {
    const need = idx + 1;
    if (need > 0xffffffff) return -EINVAL;
    if (need <= gt.maxGrantFrames) yield* gnttabGrowTable(m, cpu, d, need);
    if (idx >= gt.nrGrantFrames) return -EINVAL;
  }
  return gt.shared[idx];
});

const getStatusFrameMfn = dual(function* getStatusFrameMfn(m: MachineImpl, cpu: number, d: Domain, idx: number): LockGen<bigint | number> {
  const gt = d.grant!;
  if (idx >= gt.nrStatusFrames) {
    const nrStatus = idx + 1;
    const nrGrant = statusToGrantFrames(nrStatus);
    if (nrStatus > 0xffffffff || nrGrant > 0xffffffff) return -EINVAL;
    if (nrGrant <= gt.maxGrantFrames) yield* gnttabGrowTable(m, cpu, d, nrGrant);
    if (idx >= gt.nrStatusFrames) return -EINVAL;
  }
  return gt.status[idx];
});

export interface MapFrameOut { mfn: bigint }

/**
 * gnttab_map_frame (PRE..GFN) or gnttab_map_frame_begin (HEAD, `keepLock`):
 * on success the caller owns one page reference; with keepLock the grant
 * write lock is still held (release with gnttabMapFrameEnd).
 */
export const gnttabMapFrame = dual(function* gnttabMapFrame(m: MachineImpl, cpu: number, d: Domain, idx: bigint, gfn: bigint, out: MapFrameOut, keepLock: boolean): LockGen<number> {
  if (gfn === m.INVALID) return -EINVAL; // ASSERT_UNREACHABLE
  const gt = d.grant!;
  // Open question 4 (FS 11): at PRE/HARDEN an index >= 2^32 would index the
  // arrays out of bounds; refuse it. From GFN on it is truncated to unsigned int.
  if (idx > 0xffffffffn) {
    if (m.policy.grantGfnArrays) return -EINVAL;
    idx &= 0xffffffffn;
  }
  yield* d.grantLock.writeLock(cpu);
  let status = false;
  let r: bigint | number;
  let i: number;
  if (gt.version === 2 && (idx & XENMAPIDX_grant_table_status) !== 0n) {
    status = true;
    i = Number(idx & ~XENMAPIDX_grant_table_status);
    r = yield* getStatusFrameMfn(m, cpu, d, i);
  } else {
    i = Number(idx);
    r = yield* getSharedFrameMfn(m, cpu, d, i);
  }
  let rc = 0;
  if (typeof r === "number") rc = r;
  else {
    m.setCoreFn(cpu, "get_page");
    if (!m.core.get_page(r, d.slot)) rc = -EBUSY;
    else {
      if (!m.policy.grantSetFrameGfnRemoved) rc = yield* gnttabSetFrameGfn(m, cpu, d, status, i, gfn, r);
      if (rc !== 0) m.putPage(cpu, r);
      else out.mfn = r;
    }
  }
  if (rc !== 0 || !keepLock) yield* d.grantLock.writeUnlock(cpu);
  return rc;
});

/** gnttab_map_frame_end (HEAD): put_page + release the grant write lock. */
export const gnttabMapFrameEnd = dual(function* gnttabMapFrameEnd(m: MachineImpl, cpu: number, d: Domain, mfn: bigint): LockGen<void> {
  m.putPage(cpu, mfn);
  yield* d.grantLock.writeUnlock(cpu);
});

/** gnttab_unpopulate_status_frames (v2 → v1), grant write lock held. */
export const gnttabUnpopulateStatusFrames = dual(function* gnttabUnpopulateStatusFrames(m: MachineImpl, cpu: number, d: Domain): LockGen<number> {
  const gt = d.grant!;
  m.pushWhere(cpu, "gnttab_unpopulate_status_frames");
  for (let i = 0; i < gt.nrStatusFrames; i++) {
    const mfn = gt.status[i];
    const gfn = gnttabGetFrameGfn(m, cpu, d, true, i);
    if (gfn !== m.INVALID) {
      let rc: number;
      if (m.policy.grantSetFrameGfnRemoved) rc = yield* m.guestPhysmapRemovePage(cpu, d, gfn, mfn);
      else rc = yield* gnttabSetFrameGfn(m, cpu, d, true, i, m.INVALID, mfn);
      if (rc !== 0) {
        m.domainCrash(d, `Could not remove status frame ${i} (GFN 0x${gfn.toString(16)}) from P2M: ${rc}`);
        m.popWhere(cpu);
        return rc;
      }
    }
    m.setCoreFn(cpu, "page_get_owner");
    if (m.core.page_owner(mfn) !== d.slot) m.bug(cpu, "BUG_ON", "gnttab_unpopulate_status_frames (owner != d)");
    m.putPageAllocRef(cpu, mfn);
    if ((m.core.count_info(mfn) & ~m.PGC_xen_heap) !== 0n) {
      m.domainCrash(d, `Wrong page state 0x${m.core.count_info(mfn).toString(16)} of status frame ${i}`);
      m.popWhere(cpu);
      return -EBUSY;
    }
    m.setPageOwnerNull(mfn);
  }
  for (let i = 0; i < gt.nrStatusFrames; i++) yield* m.freeXenheapPage(cpu, gt.status[i]);
  gt.status.length = 0;
  gt.nrStatusFrames = 0;
  d.grantGen++;
  m.popWhere(cpu);
  return 0;
});

/** gnttab_shared_gfn for setup_table (GFN+: unlocked page read, FS 11.5). */
export function gnttabSharedGfn(m: MachineImpl, cpu: number, d: Domain, i: number): bigint {
  const gt = d.grant!;
  if (m.policy.grantGfnArrays) return i >= gt.nrGrantFrames ? m.INVALID : gt.sharedGfn![i];
  m.gfnAudit.read(gt.shared[i], cpu, "unprotected");
  return m.core.page_get_xenheap_gfn(gt.shared[i]);
}

export function gnttabStatusGfn(m: MachineImpl, cpu: number, d: Domain, i: number): bigint {
  const gt = d.grant!;
  if (m.policy.grantGfnArrays) return i >= gt.nrStatusFrames ? m.INVALID : gt.statusGfn![i];
  m.gfnAudit.read(gt.status[i], cpu, "unprotected");
  return m.core.page_get_xenheap_gfn(gt.status[i]);
}

/** grant_table_destroy: free grant and status frames (free_xenheap_page). */
export const grantTableDestroy = dual(function* grantTableDestroy(m: MachineImpl, cpu: number, d: Domain): LockGen<void> {
  const gt = d.grant;
  if (!gt) return;
  gt.sharedGfn = null; // gnttab_destroy_arch
  gt.statusGfn = null;
  d.grantGen++;
  for (let i = 0; i < gt.nrGrantFrames; i++) yield* m.freeXenheapPage(cpu, gt.shared[i]);
  for (let i = 0; i < gt.nrStatusFrames; i++) yield* m.freeXenheapPage(cpu, gt.status[i]);
  gt.shared.length = 0;
  gt.status.length = 0;
  gt.nrGrantFrames = 0;
  gt.nrStatusFrames = 0;
  d.grant = null;
  d.grantGen++;
});
