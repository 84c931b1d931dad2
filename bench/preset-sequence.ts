// A 400-operation sequence a booted dom0 plausibly issues (qemu-virt-dom0 preset
// plus one domU, domid 1, with 64 RAM pages at gfn 0x1000): grant-table growth and
// mapping (gnttab_init/expand), ballooning (decrease + populate back, 1:1),
// privcmd foreign mappings of the domU (batch + remove_from_physmap), dev_mmio,
// and the usual queries. The sequence leaves the machine in the state it found
// it (modulo P2M table pages), so it can be replayed back to back.
// Every op's expected rc is recorded: replay checks them.

import type { HypercallRequest } from "../src/machine/api.js";
import type { PresetPlan } from "../src/presets/index.js";

export interface SeqOp { req: HypercallRequest; rc: number; errs?: number[] }

const SELF = 0x7ff0;

export function dom0Sequence(plan: PresetPlan): SeqOp[] {
  const g = (i: number) => plan.grant.region.gfn + BigInt(i);    // grant region (holes above frame 0)
  const ram = plan.dom0.ramBanks[0].gfn + 0x8000n;                 // balloon target inside dom0 RAM
  const fgfn = 0x50000n;                                           // privcmd window: host RAM not owned by dom0 (a hole)
  const tot = plan.dom0.totPages;
  const blocks: SeqOp[][] = [];

  // gnttab: map frames 1..4, read them back, unmap (8 x 10 = 80)
  for (let k = 0; k < 8; k++) {
    const b: SeqOp[] = [];
    for (let f = 1; f <= 4; f++) b.push({ req: { op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: f, gpfn: g(f) }, rc: 0 });
    b.push({ req: { op: "GNTTABOP_setup_table", dom: SELF, nr_frames: 5 }, rc: 0 });
    b.push({ req: { op: "GNTTABOP_query_size", dom: SELF }, rc: 0 });
    for (let f = 1; f <= 4; f++) b.push({ req: { op: "XENMEM_remove_from_physmap", domid: SELF, gpfn: g(f) }, rc: 0 });
    blocks.push(b);
  }
  // balloon out 4 pages and back in (10 x 3 = 30)
  for (let k = 0; k < 10; k++) {
    const ext = [0, 1, 2, 3].map((i) => ram + BigInt(k * 4 + i));
    blocks.push([
      { req: { op: "XENMEM_decrease_reservation", domid: SELF, extent_start: ext, extent_order: 0 }, rc: 4 },
      { req: { op: "XENMEM_populate_physmap", domid: SELF, extent_start: ext, extent_order: 0 }, rc: 4 },
      { req: { op: "XENMEM_current_reservation", domid: SELF }, rc: tot },
    ]);
  }
  // privcmd: map 8 domU pages, unmap them one by one (20 x 9 = 180)
  for (let k = 0; k < 20; k++) {
    const idxs = Array.from({ length: 8 }, (_, i) => 0x1000n + BigInt((k * 8 + i) % 64));
    const gpfns = Array.from({ length: 8 }, (_, i) => fgfn + BigInt(i));
    const b: SeqOp[] = [{ req: { op: "XENMEM_add_to_physmap_batch", domid: SELF, space: 4, size: 8, foreign_domid: 1, idxs, gpfns }, rc: 0, errs: Array(8).fill(0) }];
    for (const gp of gpfns) b.push({ req: { op: "XENMEM_remove_from_physmap", domid: SELF, gpfn: gp }, rc: 0 });
    blocks.push(b);
  }
  // queries (40)
  for (let k = 0; k < 40; k++) {
    blocks.push([k % 2 === 0
      ? { req: { op: "XENMEM_maximum_gpfn", domid: SELF }, rc: Number(plan.expect.maximumGpfn) }
      : { req: { op: "GNTTABOP_get_version", dom: SELF }, rc: 0 }]);
  }
  // dev_mmio: the RTC at a fixed hole (idempotent) (20)
  for (let k = 0; k < 20; k++) blocks.push([{ req: { op: "XENMEM_add_to_physmap", domid: SELF, space: 5, idx: 0x9010, gpfn: g(40) }, rc: 0 }]);
  // grant frame 5 mapped and unmapped (25 x 2 = 50)
  for (let k = 0; k < 25; k++) {
    blocks.push([
      { req: { op: "XENMEM_add_to_physmap", domid: SELF, space: 1, idx: 5, gpfn: g(50) }, rc: 0 },
      { req: { op: "XENMEM_remove_from_physmap", domid: SELF, gpfn: g(50) }, rc: 0 },
    ]);
  }
  // Interleave the blocks deterministically (a stride through the block list).
  const out: SeqOp[] = [];
  const n = blocks.length;
  for (let i = 0, j = 0; i < n; i++, j = (j + 37) % n) out.push(...blocks[j]);
  if (out.length !== 400) throw new Error(`sequence has ${out.length} ops`);
  return out;
}

export const DOMU = { domid: 1, ramPages: 64, ramBaseGfn: 0x1000 };
