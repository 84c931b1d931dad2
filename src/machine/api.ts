// The public shape of a machine, shared by the host layer, the CLI, the
// fuzzer and embedders. Implementations live beside this file; this file
// only states the contract.

export type Arch = "arm64" | "arm32";
export type Revision = "pre" | "harden" | "gfn" | "head";
export const REVISIONS: readonly Revision[] = ["pre", "harden", "gfn", "head"];

/** Xen boot options that change behaviour (FS 7.1, issue 8). */
export interface XenOptions {
  /** `gnttab=max-ver:N`; Arm's default is 1. */
  gnttabMaxVersion?: 1 | 2;
  /** `gnttab_max_frames` (default 64). */
  gnttabMaxFrames?: number;
  /** `gnttab_max_maptrack_frames` (default 1024). */
  gnttabMaxMaptrackFrames?: number;
  /** `dom0_mem` in pages. */
  dom0MemPages?: number;
}

/** The IPA size a machine gets when its config names none: Xen's PADDR_BITS (48 on arm64, 40 on arm32; FS 5.2). */
export function defaultIpaBits(arch: Arch): number {
  return arch === "arm32" ? 40 : 48;
}

export interface MachineConfig {
  arch?: Arch;                 // default "arm64"
  revision?: Revision;         // default "head"
  /** First RAM MFN (default 0x40000, QEMU virt's 0x4000_0000). */
  ramStartMfn?: number | bigint;
  /** RAM frames (default 0x80000 = 2 GiB). */
  ramFrames?: number;
  /** Stage-2 IPA bits: 32, 36, 40, 42, 44, 48 (arm64 default 48; arm32 fixed 40). */
  ipaBits?: number;
  /** Static-memory bank (CONFIG_STATIC_MEMORY), frames not given to the heap. */
  staticBank?: { startMfn: number | bigint; frames: number };
  xenOptions?: XenOptions;
  /** Use the debug core build (asserts). */
  debugCore?: boolean;
}

export interface DomainConfig {
  domid: number;
  /** Control domain (XSM: may map foreign pages of anyone). */
  privileged?: boolean;
  /** Hardware domain (dev_mmio on itself). */
  hardware?: boolean;
  /** gfn == mfn RAM (Arm dom0); populate/decrease behave as FS 8.6. */
  directMapped?: boolean;
  /** Pages allocated at creation and placed in the P2M (at gfn = ramBaseGfn + i, or 1:1 when direct-mapped). */
  ramPages?: number;
  ramBaseGfn?: number | bigint;
  maxPages?: number;
  maxGrantFrames?: number;
  maxMaptrackFrames?: number;
  /** Device-model target: the domain may map this domain's pages (XSM dm). */
  dmTargetOf?: number;
  /** iomem permission ranges [startMfn, endMfnExclusive). */
  iomem?: Array<[number | bigint, number | bigint]>;
}

/** A hypercall as the guest issues it. Field names are Xen's public headers'. */
export type HypercallRequest =
  | { op: "XENMEM_add_to_physmap"; domid: number; space: number; idx: bigint | number; gpfn: bigint | number; size?: number; startExtent?: number }
  | { op: "XENMEM_add_to_physmap_batch"; domid: number; space: number; size: number; foreign_domid?: number; idxs: Array<bigint | number>; gpfns: Array<bigint | number>; startExtent?: number }
  | { op: "XENMEM_remove_from_physmap"; domid: number; gpfn: bigint | number; startExtent?: number }
  | { op: "XENMEM_populate_physmap" | "XENMEM_increase_reservation" | "XENMEM_decrease_reservation"; domid: number; extent_start: Array<bigint | number>; nr_extents?: number; extent_order?: number; mem_flags?: number; startExtent?: number }
  | { op: "XENMEM_acquire_resource"; domid: number; type: number; id: number; frame: bigint | number; nr_frames: number; pad?: number; frame_list: Array<bigint | number> | null; startExtent?: number }
  | { op: "XENMEM_current_reservation" | "XENMEM_maximum_reservation" | "XENMEM_maximum_gpfn"; domid: number; startExtent?: number }
  | { op: "GNTTABOP_setup_table"; dom: number; nr_frames: number; count?: number }
  | { op: "GNTTABOP_set_version"; version: number }
  | { op: "GNTTABOP_get_version"; dom: number }
  | { op: "GNTTABOP_get_status_frames"; dom: number; nr_frames: number; count?: number }
  | { op: "GNTTABOP_query_size"; dom: number; count?: number }
  | { op: "XENVER_version" };

/** Result: the return value plus every field the hypercall writes back, under Xen's names. */
export interface HypercallResult {
  rc: number | bigint;
  [field: string]: unknown;
}

/** Where real Xen itself dies (BUG_ON, data abort): the machine stops. */
export interface HypervisorCrash {
  kind: "BUG_ON" | "ASSERT" | "data_abort" | "emulator";
  /** Human-readable fault path, e.g. "put_page_alloc_ref <- gnttab_unpopulate_status_frames <- GNTTABOP_set_version". */
  path: string;
  opIndex?: number;
}

export interface P2mEntry { gfn: bigint; mfn: bigint; type: number; order: number; valid: boolean }
export interface PageInfo { mfn: bigint; countInfo: bigint; typeInfo: bigint; owner: number | null }

export const DOMID_SELF = 0x7ff0;
export const DOMID_IO = 0x7ff1;
export const DOMID_XEN = 0x7ff2;
