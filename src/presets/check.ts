// Compare a machine with the measured state of its preset (spec.ts). Returns
// the mismatches; an empty list means every checked value equals real Xen's.
//
// Read-only: the hypercalls issued (maximum_gpfn, reservations, query_size,
// get_version, setup_table(nr = current frames)) change nothing.

import type { Machine } from "../machine/machine.js";
import type { PresetPlan, PresetRegion } from "./spec.js";

export interface PresetMismatch { what: string; want: string; got: string }

const h = (v: bigint | number) => (typeof v === "bigint" ? `0x${v.toString(16)}` : String(v));

interface Run { gfn: bigint; nr: bigint; mfn: bigint | null; type: number }

/** Coalesce runs of equal type and contiguous mfn (what the Xen `q` walk printed). */
export function coalesce(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.type === r.type && last.gfn + last.nr === r.gfn && last.mfn !== null && r.mfn !== null && last.mfn + last.nr === r.mfn) {
      last.nr += r.nr;
    } else out.push({ ...r });
  }
  return out;
}

/** The runs the plan expects, with the xenheap remaps resolved to this machine's MFNs. */
export function expectedRuns(m: Machine, plan: PresetPlan): Run[] {
  const d = m.domain(plan.dom0.domid);
  const grantMfn = (gfn: bigint) => m.p2mEntry(plan.dom0.domid, gfn).mfn;
  const regions: Run[] = plan.regions.map((r: PresetRegion) => {
    let mfn = r.mfn;
    if (mfn === null) mfn = r.gfn === plan.sharedInfo.gfn ? (d?.sharedInfo ?? null) : grantMfn(r.gfn);
    return { gfn: r.gfn, nr: r.nr, mfn, type: r.type };
  });
  return coalesce(regions);
}

export function checkPreset(m: Machine, plan: PresetPlan, opts: { stats?: boolean } = {}): PresetMismatch[] {
  const bad: PresetMismatch[] = [];
  const eq = (what: string, want: unknown, got: unknown) => {
    const w = typeof want === "bigint" || typeof want === "number" ? h(want) : JSON.stringify(want, (_k, v) => typeof v === "bigint" ? h(v) : v);
    const g = typeof got === "bigint" || typeof got === "number" ? h(got) : JSON.stringify(got, (_k, v) => typeof v === "bigint" ? h(v) : v);
    if (w !== g) bad.push({ what, want: w, got: g });
  };
  const dom = plan.dom0.domid;
  const d = m.domain(dom);
  if (!d) return [{ what: "dom0", want: "exists", got: "missing" }];
  const c: any = m.core;

  // Geometry.
  if (typeof c.p2m_vtcr === "function") eq("VTCR", plan.p2m.vtcr, BigInt(c.p2m_vtcr() >>> 0));
  if (typeof c.p2m_vmid === "function") eq("VMID", plan.p2m.vmid, c.p2m_vmid(d.slot));
  eq("ipa bits", plan.machine.ipaBits, m.ipaBits);

  // P2M runs.
  const want = expectedRuns(m, plan);
  const got = coalesce(m.p2mRuns(dom).map((r) => ({ gfn: r.gfn, nr: r.nr, mfn: r.mfn, type: r.type })));
  const fmt = (r: Run) => `${h(r.gfn)}+${h(r.nr)}→${r.mfn === null ? "?" : h(r.mfn)} t${r.type}`;
  const n = Math.max(want.length, got.length);
  for (let i = 0; i < n; i++) {
    const a = want[i] ? fmt(want[i]) : "-", b = got[i] ? fmt(got[i]) : "-";
    if (a !== b) bad.push({ what: `P2M run ${i}`, want: a, got: b });
  }
  // The remapped leaves are Xen heap pages owned by dom0.
  for (const g of [plan.sharedInfo.gfn, ...plan.grantFrames.map((f) => f.gfn)]) {
    const e = m.p2mEntry(dom, g);
    if (!c.is_xen_heap_mfn(e.mfn)) bad.push({ what: `gfn ${h(g)} is a Xen heap page`, want: "true", got: `mfn ${h(e.mfn)}` });
  }
  // The displaced RAM page stays dom0's.
  const si = plan.sharedInfo.gfn;
  eq(`owner of displaced RAM page ${h(si)}`, dom, m.pageInfo(si).owner);

  // Stats (the q key).
  if (opts.stats !== false && typeof c.p2m_mappings === "function" && plan.deviations.length === 0) {
    eq("stats 1G", plan.expect.stats["1G"], Number(c.p2m_mappings(d.slot, 1)));
    eq("stats 2M", plan.expect.stats["2M"], Number(c.p2m_mappings(d.slot, 2)));
    eq("stats 2M shattered", plan.expect.stats["2M_shattered"], Number(c.p2m_shattered(d.slot, 2)));
    eq("stats 4K", plan.expect.stats["4K"], Number(c.p2m_mappings(d.slot, 3)));
  }

  // Domain accounting.
  eq("tot_pages", plan.dom0.totPages, Number(c.domain_tot_pages(d.slot)));
  eq("max_pages", plan.dom0.maxPages, Number(c.domain_max_pages(d.slot)));
  eq("xenheap_pages", plan.dom0.xenheapPages, Number(c.domain_xenheap_pages(d.slot)));
  eq("lowest_mapped_gfn", plan.expect.lowestMappedGfn, m.p2m.lowestMappedGfn(d.slot));

  // What dom0 observed through hypercalls.
  const call = (req: any) => m.hypercall(req, { caller: dom });
  const DOMID_SELF = 0x7ff0;
  eq("XENMEM_maximum_gpfn", plan.expect.maximumGpfn, BigInt(call({ op: "XENMEM_maximum_gpfn", domid: DOMID_SELF }).rc));
  eq("XENMEM_current_reservation", plan.expect.currentReservation, Number(call({ op: "XENMEM_current_reservation", domid: DOMID_SELF }).rc));
  eq("XENMEM_current_reservation(0)", plan.expect.currentReservation, Number(call({ op: "XENMEM_current_reservation", domid: dom }).rc));
  eq("XENMEM_maximum_reservation", plan.expect.maximumReservation, Number(call({ op: "XENMEM_maximum_reservation", domid: DOMID_SELF }).rc));
  const qs = call({ op: "GNTTABOP_query_size", dom: DOMID_SELF });
  eq("GNTTABOP_query_size", { rc: 0, ...plan.expect.querySize }, { rc: qs.rc, nr_frames: qs.nr_frames, max_nr_frames: qs.max_nr_frames, status: qs.status });
  const gv = call({ op: "GNTTABOP_get_version", dom: DOMID_SELF });
  eq("GNTTABOP_get_version", { rc: 0, version: plan.expect.getVersion }, { rc: gv.rc, version: gv.version });
  const st = call({ op: "GNTTABOP_setup_table", dom: DOMID_SELF, nr_frames: plan.expect.setupTable1.length });
  eq("GNTTABOP_setup_table", { rc: 0, status: 0, frame_list: plan.expect.setupTable1 },
    { rc: st.rc, status: st.status, frame_list: (st.frame_list as bigint[] | undefined)?.map((x) => BigInt(x)) });
  return bad;
}
