// Revision policies: the single place that states how the four code states of
// the fact sheet (FS §0.1) differ. The core reads feature bits (assembly/
// revision.ts); the host asks the named booleans below. Nothing else in the
// host compares revision names.

import type { Revision } from "../machine/api.js";

// Core feature bits (must match assembly/revision.ts).
export const F_REMOVE_CHECKS_MFN = 1 << 0;
export const F_GFN_IN_PAGE_INFO = 1 << 1;
export const F_TYPE_INFO_INITIALIZER = 1 << 2;
export const F_PUT_L2_FOREIGN_SUPERPAGE = 1 << 3;
export const F_DYING_REFUSES_P2M = 1 << 4;
export const F_NEED_SCRUB_OWN_BIT = 1 << 5;
export const F_FT_BASE_ROUNDED = 1 << 6;
export const F_GET_PAGE_NR = 1 << 7;
export const F_GET_PAGE_FROM_GFN_LOCKED = 1 << 8;
export const F_STATIC_FREE_DOMSTATIC = 1 << 9;
export const F_ARM32_PA_RANGE_32 = 1 << 10;
export const F_INVALIDATE_ROOT_PAGES = 1 << 11; // 14c57887f3 (4.21)

/** Foreign-domain lookup used by XENMAPSPACE_gmfn_foreign (FS 8.4 table). */
export type ForeignLookup = "get_pg_owner" | "rcu_lock_remote_domain_by_id";

export interface RevisionPolicy {
  readonly name: Revision;
  /** Index written to the machine header (history order). */
  readonly index: number;
  /** Core feature bitmask (F_*). */
  readonly features: number;
  /** Commit the state is taken from (FS §0.1). */
  readonly commit: string;

  // ---- host-side behaviours ------------------------------------------------
  /** Grant frame GFNs live in struct page_info (FS 7.3) instead of per-table arrays (FS 7.2). */
  readonly grantGfnInPageInfo: boolean;
  /** PRE/HARDEN: gnttab_set_frame_gfn removes the recorded old GFN and records the new one (FS 7.2). */
  readonly grantGfnArrays: boolean;
  /** HEAD: gnttab_set_frame_gfn no longer exists; unpopulate removes the GFN it read directly (FS 7.3). */
  readonly grantSetFrameGfnRemoved: boolean;
  /** GFN+: mapping an already-mapped xenheap page gives -EBUSY (FS 8.4). */
  readonly xenheapMappedEbusy: boolean;
  /** HARDEN+: p2m_remove_mapping verifies the MFN (-EILSEQ, FS 6.8). */
  readonly removeChecksMfn: boolean;
  /** HEAD (XSA-486): grant write lock held across the P2M update of add_to_physmap(grant_table) (FS 7.4). */
  readonly grantLockAcrossP2m: boolean;
  /** FS 8.4 foreign-domid lookup. */
  readonly foreignLookup: ForeignLookup;
  /** FS 7.1: HEAD only refuses max_grant_frames < 1 (no upper bound against the options). */
  readonly grantLimitUpperBound: boolean;
  /** XENVER_version value ((major << 16) | minor). */
  readonly xenVersion: number;
  /** FS 8.3: resource_max_frames for an unknown type (PRE..GFN: -EOPNOTSUPP through unsigned int). */
  readonly unknownResourceMaxFrames: number;
  /** FS 6.3: p2m_get_page_from_gfn holds the read lock across reference taking (HEAD). */
  readonly getPageFromGfnLocked: boolean;
  /** FS 6.4: p2m_set_entry refuses with -ENOMEM when the domain is dying (4.17-rc2+). */
  readonly dyingRefusesP2m: boolean;
  /** FS 6.10: relinquish_p2m_mapping BUG_ON(!is_dying) (4.17-rc2+). */
  readonly relinquishBugOnNotDying: boolean;
  /** FS 2.1: bit 61/29 is PGC_reserved in the 2022 trees, PGC_static after 283abca299. */
  readonly pgcStaticName: "PGC_reserved" | "PGC_static";
  /** FS 6.10: HEAD frees the P2M tables while relinquishing; before, only at final destruction. */
  readonly p2mTeardownInRelinquish: boolean;
  /** FS 6.7: p2m_put_l3_page resets the stored xenheap GFN. */
  readonly putL3ClearsXenheapGfn: boolean;
}

// F_GET_PAGE_NR (5951b856d8) is tagged 4.17.0-rc1, but 4.17.0-rc1 is a tag
// that contains every commit up to October 2022; the three 2022 revisions are
// snapshots of 2022-07-20 (PRE is the parent of HARDEN = 4.17.0-rc1~255, GFN =
// 4.17.0-rc1~254). The put_page_nr/get_page_nr series (static shared memory)
// was merged after those July commits, i.e. it is NOT in PRE/HARDEN/GFN; only
// HEAD has it. Same reasoning for F_DYING_REFUSES_P2M (4.17.0-rc2) and
// F_ARM32_PA_RANGE_32 (4.18.0-rc1): HEAD only.
const PRE_FEATURES = 0;
const HARDEN_FEATURES = PRE_FEATURES | F_REMOVE_CHECKS_MFN;
const GFN_FEATURES = HARDEN_FEATURES | F_GFN_IN_PAGE_INFO | F_TYPE_INFO_INITIALIZER;
const HEAD_FEATURES =
  GFN_FEATURES | F_PUT_L2_FOREIGN_SUPERPAGE | F_DYING_REFUSES_P2M | F_NEED_SCRUB_OWN_BIT | F_FT_BASE_ROUNDED |
  F_GET_PAGE_FROM_GFN_LOCKED | F_STATIC_FREE_DOMSTATIC | F_GET_PAGE_NR | F_ARM32_PA_RANGE_32 | F_INVALIDATE_ROOT_PAGES;

const EOPNOTSUPP_AS_UINT = 0x100000000 - 95; // 0xFFFFFFA1

function make(name: Revision, index: number, features: number, commit: string): RevisionPolicy {
  const gfn = (features & F_GFN_IN_PAGE_INFO) !== 0;
  const head = name === "head";
  return Object.freeze({
    name,
    index,
    features,
    commit,
    grantGfnInPageInfo: gfn,
    grantGfnArrays: !gfn,
    grantSetFrameGfnRemoved: head, // eff88c4d35 (4.22)
    xenheapMappedEbusy: gfn,
    removeChecksMfn: (features & F_REMOVE_CHECKS_MFN) !== 0,
    grantLockAcrossP2m: head, // 02708d3b51 (4.22, XSA-486)
    foreignLookup: head ? "rcu_lock_remote_domain_by_id" : "get_pg_owner", // f795a9c491
    grantLimitUpperBound: !head, // b2ea81d2b9 (4.18)
    // The three 2022 revisions are 4.17-dev trees; HEAD is 4.23-dev.
    xenVersion: head ? (4 << 16) | 23 : (4 << 16) | 17,
    unknownResourceMaxFrames: head ? 0 : EOPNOTSUPP_AS_UINT, // 9b87082900 (4.20.0-rc5)
    getPageFromGfnLocked: (features & F_GET_PAGE_FROM_GFN_LOCKED) !== 0,
    dyingRefusesP2m: (features & F_DYING_REFUSES_P2M) !== 0,
    relinquishBugOnNotDying: (features & F_DYING_REFUSES_P2M) !== 0,
    pgcStaticName: head ? "PGC_static" : "PGC_reserved",
    p2mTeardownInRelinquish: head,
    putL3ClearsXenheapGfn: gfn,
  });
}

export const POLICIES: Readonly<Record<Revision, RevisionPolicy>> = Object.freeze({
  pre: make("pre", 0, PRE_FEATURES, "52196c8cd9"),
  harden: make("harden", 1, HARDEN_FEATURES, "5a4a2cef08"),
  gfn: make("gfn", 2, GFN_FEATURES, "71320946d5"),
  head: make("head", 3, HEAD_FEATURES, "c447b7308b"),
});

export function policyFor(rev: Revision): RevisionPolicy {
  const p = POLICIES[rev];
  if (!p) throw new Error(`unknown revision "${rev}" (expected pre, harden, gfn or head)`);
  return p;
}
