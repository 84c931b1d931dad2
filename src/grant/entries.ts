// Grant entries in the frames' bytes (FS 7.1, public/grant_table.h), for the
// conversion of the 8 reserved entries across a version switch (FS 7.5).
//
//   v1 entry (8 B, 512/frame):   +0 u16 flags  +2 u16 domid  +4 u32 frame
//   v2 entry (16 B, 256/frame):  +0 u16 flags  +2 u16 domid  +4 u32 pad0  +8 u64 full_page.frame
//   status entry (u16, 2048/frame, v2 only): GTF_reading | GTF_writing

import type { CoreExports } from "../core/wasm.js";
import type { GrantTable } from "./index.js";

export const GNTTAB_NR_RESERVED_ENTRIES = 8;
export const GTF_type_mask = 3;
export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_transitive = 3;
export const GTF_reading = 1 << 3;
export const GTF_writing = 1 << 4;

export interface ReservedEntry { flags: number; domid: number; frame: bigint }

/** The frame's bytes, created on first write; reads of a frame never written see zeros. */
function frame(core: CoreExports, mfn: bigint, write: boolean): DataView | null {
  const p = write ? core.backing_get(mfn) : core.backing_lookup(mfn);
  return p ? new DataView(core.memory.buffer, p, 4096) : null;
}

/** Xen's out-of-range test for v2→v1: a permit_access frame above 32 bits, or a transitive grant. */
export function reservedNotRepresentableInV1(core: CoreExports, gt: GrantTable): boolean {
  const f = frame(core, gt.shared[0], false);
  if (!f) return false;
  for (let i = 0; i < GNTTAB_NR_RESERVED_ENTRIES; i++) {
    const type = f.getUint16(16 * i, true) & GTF_type_mask;
    if (type === GTF_permit_access && f.getBigUint64(16 * i + 8, true) >> 32n !== 0n) return true;
    if (type === GTF_transitive) return true;
  }
  return false;
}

/**
 * Copy out entries 0..7 in the current layout (v2: status bits folded into
 * flags); null when all of them are zero because frame 0 was never written.
 */
export function saveReservedEntries(core: CoreExports, gt: GrantTable): ReservedEntry[] | null {
  const f = frame(core, gt.shared[0], false);
  if (!f) return null;
  const out: ReservedEntry[] = [];
  const st = gt.version === 2 && gt.status.length ? frame(core, gt.status[0], false) : null;
  for (let i = 0; i < GNTTAB_NR_RESERVED_ENTRIES; i++) {
    if (gt.version === 1) {
      out.push({ flags: f.getUint16(8 * i, true), domid: f.getUint16(8 * i + 2, true), frame: BigInt(f.getUint32(8 * i + 4, true)) });
      continue;
    }
    const flags = f.getUint16(16 * i, true);
    if ((flags & GTF_type_mask) === GTF_permit_access) {
      out.push({ flags: flags | (st ? st.getUint16(2 * i, true) : 0), domid: f.getUint16(16 * i + 2, true), frame: f.getBigUint64(16 * i + 8, true) });
    } else {
      out.push({ flags: 0, domid: 0, frame: 0n }); // GTF_invalid, or "bad flags" (logged by Xen) → zeroed
    }
  }
  return out;
}

/** Clear every shared frame, then write entries 0..7 back in `version`'s layout. */
export function clearAndRestoreReserved(core: CoreExports, gt: GrantTable, version: number, saved: ReservedEntry[] | null): void {
  for (const mfn of gt.shared) {
    const p = core.backing_lookup(mfn);
    if (p) new Uint8Array(core.memory.buffer, p, 4096).fill(0);
  }
  if (saved === null || saved.every((e) => e.flags === 0 && e.domid === 0 && e.frame === 0n)) return;
  if (version === 2 && gt.status.length) frame(core, gt.status[0], true); // create before taking views
  const f = frame(core, gt.shared[0], true)!;
  const st = version === 2 && gt.status.length ? frame(core, gt.status[0], true) : null;
  saved.forEach((e, i) => {
    if (version === 1) {
      f.setUint16(8 * i, e.flags, true);
      f.setUint16(8 * i + 2, e.domid, true);
      f.setUint32(8 * i + 4, Number(e.frame & 0xffffffffn), true);
    } else {
      st?.setUint16(2 * i, e.flags & (GTF_reading | GTF_writing), true);
      f.setUint16(16 * i, e.flags & ~(GTF_reading | GTF_writing), true);
      f.setUint16(16 * i + 2, e.domid, true);
      f.setBigUint64(16 * i + 8, e.frame, true);
    }
  });
}
