// Xen's errno values (public/errno.h, FS 8.5; unchanged PRE..HEAD). Core
// functions return them negated, as hypercalls do.

export const EPERM: i32 = 1;
export const ENOENT: i32 = 2;
export const ESRCH: i32 = 3;
export const E2BIG: i32 = 7;
export const ENOMEM: i32 = 12;
export const EBUSY: i32 = 16;
export const EINVAL: i32 = 22;
export const EILSEQ: i32 = 84;
export const ERESTART: i32 = 85; // Xen-internal: preempted, continue later
