/*
 * fwcfg: a file given to the guest as a QEMU fw_cfg entry, on both
 * backends. libvirt has fw_cfg entries of its own only from 7.x (<sysinfo
 * type='fwcfg'>); the same two QEMU arguments reach its QEMU on every
 * version (rendered as <qemu:commandline>).
 */
#ifndef CVMM_PLUGIN_COMMON_FWCFG_H
#define CVMM_PLUGIN_COMMON_FWCFG_H

#include <cvmm/plugin.h>

/* Adds "-fw_cfg name=NAME,file=PATH" (',' in PATH written ',,' as QEMU's
 * option syntax wants) for the qemu and libvirt backends. 0 or -errno
 * (-ENAMETOOLONG when the argument would not fit). */
int cp_spec_add_fw_cfg(const struct cvmm_host_api *host, cvmm_spec *spec, const char *name,
		       const char *path);

#endif
