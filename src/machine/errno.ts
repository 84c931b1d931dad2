// Xen errno values (FS 8.5) and grant status codes. Hypercalls return -E*.
export const EPERM = 1, ENOENT = 2, ESRCH = 3, EIO = 5, ENXIO = 6, E2BIG = 7, EAGAIN = 11, ENOMEM = 12,
  EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EINVAL = 22, ENOSPC = 28, EDOM = 33, ERANGE = 34,
  ENOSYS = 38, ENODATA = 61, EOVERFLOW = 75, EILSEQ = 84, ERESTART = 85, EOPNOTSUPP = 95;

export const GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_gntref = -3,
  GNTST_bad_handle = -4, GNTST_bad_virt_addr = -5, GNTST_bad_dev_addr = -6, GNTST_no_device_space = -7,
  GNTST_permission_denied = -8, GNTST_bad_page = -9, GNTST_bad_copy_arg = -10, GNTST_address_too_big = -11,
  GNTST_eagain = -12, GNTST_no_space = -13;

/** rc of a hypercall refused because the hypervisor already crashed. */
export const CRASHED_RC = -0xdead;

// p2m_type_t (FS 4.2)
export const p2m_invalid = 0, p2m_ram_rw = 1, p2m_ram_ro = 2, p2m_mmio_direct_dev = 3, p2m_mmio_direct_nc = 4,
  p2m_mmio_direct_c = 5, p2m_map_foreign_rw = 6, p2m_map_foreign_ro = 7, p2m_grant_map_rw = 8,
  p2m_grant_map_ro = 9, p2m_iommu_map_rw = 10, p2m_iommu_map_ro = 11;
export const P2M_TYPE_NAMES = [
  "invalid", "ram_rw", "ram_ro", "mmio_direct_dev", "mmio_direct_nc", "mmio_direct_c", "map_foreign_rw",
  "map_foreign_ro", "grant_map_rw", "grant_map_ro", "iommu_map_rw", "iommu_map_ro",
];
export const p2m_is_ram = (t: number) => t === p2m_ram_rw || t === p2m_ram_ro;
export const p2m_is_foreign = (t: number) => t === p2m_map_foreign_rw || t === p2m_map_foreign_ro;
export const p2m_is_any_ram = (t: number) => ((1 << t) & 0x3c6) !== 0;
