// Raw hypercall ABI: Xen's hypercall numbers, cmd encodings and the Arm
// struct layouts of FS 8.2 / 7.5, read from and written back to a guest
// memory map. Guest handles are 8-byte guest addresses in the caller's map;
// address 0 is a NULL handle; an unmapped address is a copy fault (-EFAULT).

import type { HypercallRequest, HypercallResult } from "../machine/api.js";
import { EFAULT, EINVAL, ENOSYS } from "../machine/errno.js";
import { GNTTABOP, MEMOP_EXTENT_SHIFT, XENMEM, __HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op, __HYPERVISOR_xen_version } from "./dispatch.js";

interface Region { base: bigint; bytes: Uint8Array }

/** Per-domain guest memory: byte regions at guest addresses. */
export class GuestMemory {
  private readonly spaces = new Map<number, Region[]>();

  /** Map `size` zeroed bytes at `addr` in `domid`'s space; returns the bytes. */
  map(domid: number, addr: bigint | number, size: number): Uint8Array {
    const r = { base: BigInt(addr), bytes: new Uint8Array(size) };
    let s = this.spaces.get(domid);
    if (!s) this.spaces.set(domid, (s = []));
    s.push(r);
    return r.bytes;
  }

  private find(domid: number, addr: bigint, len: number): { r: Region; off: number } | null {
    if (addr === 0n) return null;
    for (const r of this.spaces.get(domid) ?? []) {
      if (addr >= r.base && addr + BigInt(len) <= r.base + BigInt(r.bytes.length)) return { r, off: Number(addr - r.base) };
    }
    return null;
  }

  /** A DataView over [addr, addr+len), or null on a copy fault. */
  view(domid: number, addr: bigint, len: number): DataView | null {
    const f = this.find(domid, addr, len);
    return f ? new DataView(f.r.bytes.buffer, f.r.bytes.byteOffset + f.off, len) : null;
  }

  write(domid: number, addr: bigint | number, data: Uint8Array): boolean {
    const f = this.find(domid, BigInt(addr), data.length);
    if (!f) return false;
    f.r.bytes.set(data, f.off);
    return true;
  }

  /** Read up to n u64s; stops at the first fault. */
  readU64s(domid: number, addr: bigint, n: number): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const v = this.view(domid, addr + BigInt(8 * i), 8);
      if (!v) break;
      out.push(v.getBigUint64(0, true));
    }
    return out;
  }

  writeU64s(domid: number, addr: bigint, vals: bigint[]): boolean {
    for (let i = 0; i < vals.length; i++) {
      const v = this.view(domid, addr + BigInt(8 * i), 8);
      if (!v) return false;
      v.setBigUint64(0, vals[i], true);
    }
    return true;
  }
}

export interface RawCall { nr: number; cmd: number; arg: bigint | number; count?: number }

/** Decoded request, or a result to return at once (copy fault &c.), plus the write-back. */
export type Decoded =
  | { req: HypercallRequest; writeBack: (r: HypercallResult) => void }
  | { early: HypercallResult };

export function decodeRaw(mem: GuestMemory, caller: number, call: RawCall): Decoded {
  const arg = BigInt(call.arg);
  const v = (len: number) => mem.view(caller, arg, len);
  const none = () => {};
  if (call.nr === __HYPERVISOR_xen_version) {
    return call.cmd === 0 ? { req: { op: "XENVER_version" }, writeBack: none } : { early: { rc: -ENOSYS } };
  }
  if (call.nr === __HYPERVISOR_grant_table_op) {
    if (call.cmd >>> 12 !== 0) return { early: { rc: -EINVAL } };
    const count = call.count ?? 1;
    switch (call.cmd) {
      case GNTTABOP.setup_table: {
        if (count !== 1) return { early: { rc: -EINVAL } };
        const s = v(24);
        if (!s) return { early: { rc: -EFAULT } };
        const list = s.getBigUint64(16, true);
        return {
          req: { op: "GNTTABOP_setup_table", dom: s.getUint16(0, true), nr_frames: s.getUint32(4, true), count },
          writeBack: (r) => {
            if (r.status !== undefined) s.setInt16(8, r.status as number, true);
            if (r.frame_list) mem.writeU64s(caller, list, r.frame_list as bigint[]);
          },
        };
      }
      case GNTTABOP.set_version: {
        const s = v(4);
        if (!s) return { early: { rc: -EFAULT } };
        return { req: { op: "GNTTABOP_set_version", version: s.getUint32(0, true) }, writeBack: (r) => s.setUint32(0, r.version as number, true) };
      }
      case GNTTABOP.get_version: {
        const s = v(8);
        if (!s) return { early: { rc: -EFAULT } };
        return { req: { op: "GNTTABOP_get_version", dom: s.getUint16(0, true) }, writeBack: (r) => { if (r.version !== undefined) s.setUint32(4, r.version as number, true); } };
      }
      case GNTTABOP.get_status_frames: {
        if (count !== 1) return { early: { rc: -EINVAL } };
        const s = v(16);
        if (!s) return { early: { rc: -EFAULT } };
        const list = s.getBigUint64(8, true);
        return {
          req: { op: "GNTTABOP_get_status_frames", nr_frames: s.getUint32(0, true), dom: s.getUint16(4, true), count },
          writeBack: (r) => {
            if (r.status !== undefined) s.setInt16(6, r.status as number, true);
            if (r.frame_list) mem.writeU64s(caller, list, r.frame_list as bigint[]);
          },
        };
      }
      case GNTTABOP.query_size: {
        if (count !== 1) return { early: { rc: -EINVAL } };
        const s = v(16);
        if (!s) return { early: { rc: -EFAULT } };
        return {
          req: { op: "GNTTABOP_query_size", dom: s.getUint16(0, true), count },
          writeBack: (r) => {
            s.setUint32(4, (r.nr_frames as number) ?? 0, true);
            s.setUint32(8, (r.max_nr_frames as number) ?? 0, true);
            s.setInt16(12, (r.status as number) ?? 0, true);
          },
        };
      }
      default:
        return { early: { rc: -ENOSYS } };
    }
  }
  if (call.nr !== __HYPERVISOR_memory_op) return { early: { rc: -ENOSYS } };
  const op = call.cmd & 63;
  const startExtent = call.cmd >>> MEMOP_EXTENT_SHIFT;
  switch (op) {
    case XENMEM.add_to_physmap: {
      if (startExtent > 0xffff) return { early: { rc: -33 } };
      const s = v(24);
      if (!s) return { early: { rc: -EFAULT } };
      return {
        req: { op: "XENMEM_add_to_physmap", domid: s.getUint16(0, true), size: s.getUint16(2, true), space: s.getUint32(4, true), idx: s.getBigUint64(8, true), gpfn: s.getBigUint64(16, true), startExtent },
        writeBack: none,
      };
    }
    case XENMEM.add_to_physmap_batch: {
      if (startExtent > 0xffff) return { early: { rc: -33 } };
      const s = v(32);
      if (!s) return { early: { rc: -EFAULT } };
      const size = s.getUint16(4, true);
      const errsH = s.getBigUint64(24, true);
      return {
        req: {
          op: "XENMEM_add_to_physmap_batch", domid: s.getUint16(0, true), space: s.getUint16(2, true), size,
          foreign_domid: s.getUint16(6, true), idxs: mem.readU64s(caller, s.getBigUint64(8, true), size),
          gpfns: mem.readU64s(caller, s.getBigUint64(16, true), size), startExtent,
        },
        writeBack: (r) => {
          const errs = (r.errs as (number | null)[] | undefined) ?? [];
          errs.forEach((e, i) => {
            if (e === null) return;
            const w = mem.view(caller, errsH + BigInt(4 * i), 4);
            if (w) w.setInt32(0, e, true);
          });
        },
      };
    }
    case XENMEM.remove_from_physmap: {
      const s = v(16);
      if (startExtent !== 0) return { early: { rc: -EINVAL } };
      if (!s) return { early: { rc: -EFAULT } };
      return { req: { op: "XENMEM_remove_from_physmap", domid: s.getUint16(0, true), gpfn: s.getBigUint64(8, true), startExtent }, writeBack: none };
    }
    case XENMEM.increase_reservation:
    case XENMEM.decrease_reservation:
    case XENMEM.populate_physmap: {
      const s = v(32);
      if (!s) return { early: { rc: startExtent } };
      const nr = Number(s.getBigUint64(8, true) & 0xffffffffn);
      const nrFull = s.getBigUint64(8, true);
      const h = s.getBigUint64(0, true);
      const name = op === XENMEM.increase_reservation ? "XENMEM_increase_reservation" : op === XENMEM.decrease_reservation ? "XENMEM_decrease_reservation" : "XENMEM_populate_physmap";
      const list = h === 0n ? [] : mem.readU64s(caller, h, Math.min(nr, 1 << 20));
      return {
        req: { op: name, domid: s.getUint16(24, true), extent_start: list, nr_extents: nrFull > 0x3ffffffn ? 0x4000000 : nr, extent_order: s.getUint32(16, true), mem_flags: s.getUint32(20, true), startExtent },
        writeBack: none,
      };
    }
    case XENMEM.acquire_resource: {
      const s = v(32);
      if (!s) return { early: { rc: -EFAULT } };
      const nr = s.getUint32(8, true);
      const h = s.getBigUint64(24, true);
      return {
        req: {
          op: "XENMEM_acquire_resource", domid: s.getUint16(0, true), type: s.getUint16(2, true), id: s.getUint32(4, true),
          nr_frames: nr, pad: s.getUint32(12, true), frame: s.getBigUint64(16, true),
          frame_list: h === 0n ? null : mem.readU64s(caller, h, Math.min(nr, 1 << 20)), startExtent,
        },
        writeBack: (r) => { if (r.nr_frames !== undefined) s.setUint32(8, r.nr_frames as number, true); },
      };
    }
    case XENMEM.current_reservation:
    case XENMEM.maximum_reservation:
    case XENMEM.maximum_gpfn: {
      if (startExtent !== 0) return { early: { rc: -EINVAL } };
      const s = v(2);
      if (!s) return { early: { rc: -EFAULT } };
      const name = op === XENMEM.current_reservation ? "XENMEM_current_reservation" : op === XENMEM.maximum_reservation ? "XENMEM_maximum_reservation" : "XENMEM_maximum_gpfn";
      return { req: { op: name, domid: s.getUint16(0, true), startExtent }, writeBack: none };
    }
    default:
      return { early: { rc: -ENOSYS } };
  }
}
