// Known findings: states the invariants flag that have been triaged to a cause
// in Xen's code, so that a campaign reports them under their own name and
// keeps looking for anything else. Each entry is matched by what caused the
// state, never by the invariant's name alone: a new bug that lands in the
// same invariant is still a violation.
//
// Nothing here steers the generator; it only files what the checker saw.

import { DOMID_SELF, type Arch } from "../machine/api.js";
import type { RevisionPolicy } from "../revisions/index.js";
import type { FuzzCall } from "./generator.js";

export type KnownId = "foreign-remap-leak" | "decrease-reservation-race" | "v2v1-crash-foreign-ref" | "arm32-v2v1-bug-on";

export interface KnownFinding {
  id: KnownId;
  title: string;
  /** Where the cause is written down. */
  reference: string;
}

export const KNOWN_FINDINGS: Readonly<Record<KnownId, KnownFinding>> = {
  "foreign-remap-leak": {
    id: "foreign-remap-leak",
    title:
      "mapping the same foreign frame again at the same GFN leaks a page reference: " +
      "__p2m_set_entry frees the old entry only when the MFN changes",
    reference: "fact sheet 11.3; every revision",
  },
  "decrease-reservation-race": {
    id: "decrease-reservation-race",
    title:
      "two decrease_reservation of one GFN: guest_remove_page looks the GFN up outside the P2M lock; " +
      "a stale lookup removes a hole (rc 0) and drops the allocation reference of a frame mapped elsewhere",
    reference: "fact sheet 6.8, 8.3; test/host/decrease-race.test.ts; every revision",
  },
  "v2v1-crash-foreign-ref": {
    id: "v2v1-crash-foreign-ref",
    title:
      "set_version 2->1 while another domain holds a foreign reference to a status frame: " +
      "Xen crashes the domain and leaves the frame without its allocation reference; " +
      "a vCPU already inside a hypercall may still map it",
    reference: "fact sheet 7.4 (gnttab_unpopulate_status_frames); only where the grant lock covers the P2M update (XSA-486 fixed)",
  },
  "arm32-v2v1-bug-on": {
    id: "arm32-v2v1-bug-on",
    title:
      "arm32: set_version 2->1 hits the BUG_ON in put_page_alloc_ref (a status frame holds only its allocation " +
      "reference and PGC_xen_heap is never set on arm32): any guest can panic Xen once gnttab=max-ver:2 is given",
    reference: "fact sheet 7.4; confirmed on real arm32 Xen at every revision",
  },
};

/** What the checker knows when it reports. */
export interface TriageContext {
  policy: RevisionPolicy;
  arch: Arch;
  /** The calls of the step that just ran (one for a sequential call, all of a `par` group). */
  calls: readonly FuzzCall[];
  inPar: boolean;
  /** Has Xen crashed this domain (domain_crash)? */
  crashed(domid: number): boolean;
}

/** A reported state, before it becomes a violation. */
export interface Candidate {
  invariant: string;
  /** The variant's sub-class (`free`, `count0`, ...), "" if none. */
  sub: string;
  domid?: number;
  gfn?: number;
  mfn?: number;
  /** For crashes: the fault path ("fn <- caller <- hypercall"). */
  path?: string;
}

/** GFNs of `decrease_reservation` calls in `calls`, per target domain. */
function decreasedGfns(calls: readonly FuzzCall[]): Map<number, number[][]> {
  const out = new Map<number, number[][]>();
  for (const c of calls) {
    const r = c.req;
    if (r.op !== "XENMEM_decrease_reservation") continue;
    const d = r.domid === DOMID_SELF ? c.caller : r.domid;
    const n = Math.min(r.nr_extents ?? r.extent_start.length, r.extent_start.length);
    const pages = 2 ** (r.extent_order ?? 0);
    const gfns: number[] = [];
    for (let i = 0; i < n && gfns.length < 4096; i++) {
      const g = Number(r.extent_start[i]);
      for (let j = 0; j < pages && j < 512; j++) gfns.push(g + j);
    }
    let l = out.get(d);
    if (l === undefined) out.set(d, (l = []));
    l.push(gfns);
  }
  return out;
}

/** Did two vCPUs of the group decrease a common GFN of one domain (the race's precondition)? */
export function racingDecreases(calls: readonly FuzzCall[]): boolean {
  for (const lists of decreasedGfns(calls).values()) {
    for (let a = 0; a < lists.length; a++) {
      const s = new Set(lists[a]);
      for (let b = a + 1; b < lists.length; b++) if (lists[b].some((g) => s.has(g))) return true;
    }
  }
  return false;
}

/**
 * Files candidates under known findings. A frame put in a bad state by a
 * known finding stays attributed to it for the rest of the episode: later
 * steps that see the same frame (sequential ones included) report the same
 * finding, not a new violation. One triage lives as long as one machine.
 */
export class KnownTriage {
  private readonly tainted = new Map<number, KnownId>();

  /** The known finding an earlier candidate attributed frame `mfn` to. */
  attributedTo(mfn: number): KnownId | undefined {
    return this.tainted.get(mfn);
  }

  /** The known finding behind `c`, or null if it is a violation. */
  classify(c: Candidate, ctx: TriageContext): KnownId | null {
    const prior = c.mfn !== undefined ? this.tainted.get(c.mfn) : undefined;
    if (prior !== undefined && c.invariant === "p2m-ref") return prior;
    let id: KnownId | null = null;
    if (
      c.invariant === "crash" &&
      c.sub === "BUG_ON" &&
      ctx.arch === "arm32" &&
      c.path !== undefined &&
      /^put_page_alloc_ref\b[^<]*<- gnttab_unpopulate_status_frames <- /.test(c.path)
    ) {
      return "arm32-v2v1-bug-on";
    }
    if (c.invariant === "p2m-ref" && ctx.inPar && racingDecreases(ctx.calls)) id = "decrease-reservation-race";
    else if (
      c.invariant === "p2m-ref" &&
      c.sub === "count0" &&
      ctx.policy.grantLockAcrossP2m &&
      c.domid !== undefined &&
      ctx.crashed(c.domid)
    ) {
      // With the grant lock held from the frame lookup to the end of the P2M
      // update, a mapping vCPU's own reference is never outstanding while
      // set_version runs; the extra reference that made Xen crash the domain
      // can only be another domain's foreign mapping.
      id = "v2v1-crash-foreign-ref";
    }
    if (id !== null && c.mfn !== undefined) this.tainted.set(c.mfn, id);
    return id;
  }
}
