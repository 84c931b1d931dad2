// Garbage through the raw ABI (hypercall number, cmd with start-extent bits,
// a guest address, structs and handle targets of random bytes): a guest gets
// an rc Xen could give (a count, or -E* of FS 8.5), never a JavaScript
// exception, and leaves no lock held and a machine that still snapshots and
// restores to itself.

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createMachine, type MachineImpl } from "../../src/machine/machine.js";
import * as errno from "../../src/machine/errno.js";
import { GNTTABOP, XENMEM, __HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op, __HYPERVISOR_xen_version } from "../../src/hypercall/dispatch.js";
import { restoreMachine } from "../../src/snapshot/index.js";
import type { Arch, Revision } from "../../src/machine/api.js";

const ERRNOS = new Set([
  errno.EPERM, errno.ENOENT, errno.ESRCH, errno.EIO, errno.ENXIO, errno.E2BIG, errno.EAGAIN, errno.ENOMEM, errno.EACCES,
  errno.EFAULT, errno.EBUSY, errno.EEXIST, errno.EINVAL, errno.ENOSPC, errno.EDOM, errno.ERANGE, errno.ENOSYS,
  errno.ENODATA, errno.EOVERFLOW, errno.EILSEQ, errno.ERESTART, errno.EOPNOTSUPP,
]);

/** Guest memory of every domain: one 64 KiB window at 0x10000 (structs, handle targets). */
const WINDOW = 0x10000n;
const WINDOW_BYTES = 0x10000;

async function world(revision: Revision, arch: Arch): Promise<MachineImpl> {
  const m = await createMachine({ revision, arch, ramFrames: 0x4000, xenOptions: { gnttabMaxVersion: 2 } });
  m.createDomain({ domid: 0, privileged: true, ramPages: 16, maxPages: 64 });
  m.createDomain({ domid: 1, ramPages: 16, maxPages: 64 });
  for (const d of [0, 1]) m.guestMemory.map(d, WINDOW, WINDOW_BYTES);
  return m;
}

const memOps = Object.values(XENMEM) as number[];
const gntOps = Object.values(GNTTABOP) as number[];

/** A raw call: mostly real hypercall numbers and sub-ops, with random start extents, counts and addresses. */
const rawCall = fc.record({
  caller: fc.constantFrom(0, 1),
  nr: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(__HYPERVISOR_memory_op, __HYPERVISOR_grant_table_op) },
    { weight: 1, arbitrary: fc.constantFrom(__HYPERVISOR_xen_version, 0, 13, 0xffffffff) },
  ),
  op: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...memOps, ...gntOps) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
  extent: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: (1 << 26) - 1 }) }),
  count: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 0xffffffff })),
  // An address in the window (a struct that may run past its end), NULL, or anywhere.
  arg: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: WINDOW_BYTES - 1 }).map((o) => WINDOW + BigInt(o)) },
    { weight: 1, arbitrary: fc.constant(0n) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
  ),
});

/** Bytes written into the window before the call: a struct at the call's address, plus scattered handle targets. */
const patch = fc.record({
  at: fc.integer({ min: 0, max: WINDOW_BYTES - 1 }),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  // Handles (8-byte guest addresses) pointing back into the window, so lists get read and written.
  handles: fc.array(fc.tuple(fc.integer({ min: 0, max: WINDOW_BYTES / 8 - 1 }), fc.integer({ min: 0, max: WINDOW_BYTES - 8 })), { maxLength: 4 }),
  // Small values at a few places: GFNs, domids and sizes in range take the deeper paths.
  small: fc.array(fc.tuple(fc.integer({ min: 0, max: WINDOW_BYTES / 8 - 1 }), fc.constantFrom(0n, 1n, 2n, 0x7ff0n, 0x40000n, 0x40001n, 0x50000n, 0x80000000n)), { maxLength: 6 }),
});

function apply(m: MachineImpl, caller: number, p: { at: number; bytes: Uint8Array; handles: Array<[number, number]>; small: Array<[number, bigint]> }, arg: bigint): void {
  const mem = m.guestMemory;
  mem.write(caller, WINDOW + BigInt(Math.min(p.at, WINDOW_BYTES - p.bytes.length)), p.bytes);
  for (const [slot, target] of p.handles) mem.writeU64s(caller, WINDOW + BigInt(slot * 8), [WINDOW + BigInt(target)]);
  for (const [slot, v] of p.small) mem.writeU64s(caller, WINDOW + BigInt(slot * 8), [v]);
  // The struct's own first words, when the call points into the window.
  if (arg >= WINDOW && arg < WINDOW + BigInt(WINDOW_BYTES - 16)) for (const [k, [, v]] of p.small.slice(0, 2).entries()) mem.writeU64s(caller, arg + BigInt(8 * k), [v]);
}

function rcOk(rc: unknown): boolean {
  if (typeof rc === "bigint") return rc >= 0n || ERRNOS.has(Number(-rc));
  if (typeof rc !== "number" || !Number.isInteger(rc)) return false;
  return rc >= 0 || ERRNOS.has(-rc) || rc === errno.CRASHED_RC;
}

const held = (m: MachineImpl) => [...m.domains.values()].some((d) => d.grantLock.isLocked() || d.p2mLock.isLocked() || d.pageAllocLock.isLocked()) || m.heapLock.isLocked();

describe("raw ABI with garbage", () => {
  for (const [revision, arch] of [["head", "arm64"], ["pre", "arm32"]] as const) {
    it(`${revision} ${arch}: every call answers an rc Xen could give, holds no lock, and the machine restores to itself`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(rawCall, patch), { minLength: 1, maxLength: 24 }), async (calls) => {
          const m = await world(revision, arch);
          for (const [c, p] of calls) {
            apply(m, c.caller, p, c.arg);
            const cmd = c.nr === __HYPERVISOR_memory_op ? ((c.op & 63) | (c.extent << 6)) >>> 0 : c.op;
            const r = m.hypercallRaw({ nr: c.nr, cmd, arg: c.arg, count: c.count }, { caller: c.caller });
            expect(rcOk(r.rc), `rc ${String(r.rc)} of nr ${c.nr} cmd 0x${cmd.toString(16)}`).toBe(true);
            expect(held(m)).toBe(false);
            if (m.crashed) break; // the known hypervisor crashes (gmfn_foreign from DOMID_IO, arm32's BUG_ON): nothing runs after
          }
          const again = await restoreMachine(m.snapshot());
          expect(again.stateHash()).toBe(m.stateHash());
        }),
        { numRuns: 150, seed: 20261126 },
      );
    });
  }
});
