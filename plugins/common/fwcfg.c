/* fwcfg: see fwcfg.h. */
#include "fwcfg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

int cp_spec_add_fw_cfg(const struct cvmm_host_api *host, cvmm_spec *spec, const char *name,
		       const char *path)
{
	char arg[PATH_MAX * 2 + 64];
	int l = snprintf(arg, sizeof(arg), "name=%s,file=", name);
	if (l < 0 || (size_t)l >= sizeof(arg))
		return -ENAMETOOLONG;
	size_t n = (size_t)l;
	for (const char *c = path; *c; c++) {
		if (n + 3 > sizeof(arg))
			return -ENAMETOOLONG;
		if (*c == ',')
			arg[n++] = ',';
		arg[n++] = *c;
	}
	arg[n] = 0;
	static const char *const backends[] = {"qemu", "libvirt"};
	for (int b = 0; b < 2; b++) {
		int rc;
		if ((rc = host->spec_add_arg(spec, backends[b], "-fw_cfg")) < 0 ||
		    (rc = host->spec_add_arg(spec, backends[b], arg)) < 0)
			return rc;
	}
	return 0;
}
