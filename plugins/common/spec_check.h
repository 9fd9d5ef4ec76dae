/*
 * spec_check: the rules of the launch spec's 1.2 parts (CPU topology, NUMA
 * cells, pinning, the PCIe hierarchy, host devices) that only hold for the
 * spec as a whole, and the CPU-list syntax they use. Shared by the core
 * (its builders and spec_check) and by both renderers, so that a spec is
 * judged the same way wherever it is read.
 */
#ifndef CVMM_PLUGIN_COMMON_SPEC_CHECK_H
#define CVMM_PLUGIN_COMMON_SPEC_CHECK_H

#include <cvmm/plugin.h>
#include <sched.h>
#include <stddef.h>

/* "0-3,8,10-11", "^N" removes N (libvirt's syntax). Returns the number of
 * CPUs in the list (0 for ""), or -EINVAL (a syntax error or a CPU number
 * >= CPU_SETSIZE). */
int cp_cpulist_parse(const char *text, cpu_set_t *set);
/* The canonical form ("0-3,8"); "" for an empty set. */
void cp_cpulist_format(const cpu_set_t *set, char *buf, size_t len);

/* The 1.2 parts as a reader sees them: empty when the spec (or the NIC) is
 * of an older, shorter layout. */
int cp_spec_has_12(const struct cvmm_launch_spec *s);
/* The spec's firmware (CVMM_FW_*); CVMM_FW_NONE from a spec older than the
 * field. */
uint32_t cp_spec_firmware(const struct cvmm_launch_spec *s);
const char *cp_nic_bus(const struct cvmm_spec_nic *n);
/* The PCIe element with id, or NULL; *index gets its position. */
const struct cvmm_spec_pcie *cp_pcie_find(const struct cvmm_launch_spec *s, const char *id,
					  uint32_t *index);
/* An id usable as a QEMU device id and a libvirt alias: a letter, then
 * letters, digits, '_' or '-'. */
int cp_id_ok(const char *id);
/* A host PCI address "0000:12:00.0" (lower-case hex). */
int cp_pci_addr_ok(const char *addr);

/* The chassis and port numbers of PCIe element i (a root or downstream
 * port; 0 for other kinds), the same for both renderers: the spec's own when
 * set; else chassis = the smallest number >= 1 no other port uses, taken in
 * spec order, and port = the element's position among its parent's ports. */
uint32_t cp_pcie_chassis(const struct cvmm_launch_spec *s, uint32_t i);
uint32_t cp_pcie_port(const struct cvmm_launch_spec *s, uint32_t i);

/*
 * The whole-spec rules: topology product = vCPUs; NUMA cells numbered 0..n-1
 * in order, their vCPUs covering 0..vcpus-1 exactly once and their memory
 * summing to memory_mb; pins of existing vCPUs, once each; ids unique across
 * disks, NICs, hostdevs and PCIe elements; every PCIe element's parent before
 * it and of the right kind (expander on the root complex, root port on the
 * root complex or an expander, switch upstream port under a port, downstream
 * port under an upstream port); an expander's cell exists; a hostdev's or a
 * NIC's bus names a root or downstream port; one device per port (a group of
 * functions counts as one). Returns 0 or -EINVAL with the reason in err.
 */
int cp_spec_check(const struct cvmm_launch_spec *s, char *err, size_t errlen);

#endif
