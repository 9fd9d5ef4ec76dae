/*
 * hostdev: the launch-spec entries for a VM's devices. Functions of one
 * host slot (a GPU and its audio function) become functions of one guest
 * slot, as the guest driver expects to find them; every other device is a
 * slot of its own.
 */
#include "gv.h"

#include <cvmm/plugin.h>

#include <stdio.h>
#include <string.h>

/* "0000:b2:00.0" and "0000:b2:00.1" share the first 10 characters. */
static int same_slot(const char *a, const char *b)
{
	return !strncmp(a, b, 10);
}

int gv_hostdevs(char (*slots)[GV_SLOT_LEN], int n, struct cvmm_spec_hostdev *out)
{
	int groups = 0;
	for (int i = 0; i < n; i++) {
		int nfn = 0, first = -1, fn = 0;
		for (int k = 0; k < n; k++)
			if (same_slot(slots[k], slots[i])) {
				if (first < 0)
					first = k;
				nfn++;
				fn += k < i;
			}
		struct cvmm_spec_hostdev *d = &out[i];
		memset(d, 0, sizeof(*d));
		d->struct_size = sizeof(*d);
		snprintf(d->id, sizeof(d->id), "hostdev%d", i);
		snprintf(d->host, sizeof(d->host), "%s", slots[i]);
		if (nfn > 1) {
			if (first == i)
				groups++;
			snprintf(d->group, sizeof(d->group), "hostdev-fn%d", groups);
			d->function = (uint32_t)fn;
		}
	}
	return n;
}
