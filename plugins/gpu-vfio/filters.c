/*
 * filters: dstack's cvm.gpu keys with dstack's meanings, but holding in
 * every attach mode ("all" included, where dstack ignores them):
 *   enabled          - no GPU is given to any VM while false;
 *   listing          - vendor:device ids offered as GPUs (empty: every
 *                      NVIDIA GPU); NVSwitches are offered whatever it says,
 *                      since they are not GPUs and dstack's listing never
 *                      named them;
 *   include          - when non-empty, only these slots are offered;
 *   exclude          - these slots never are.
 */
#include "gv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gv_parse_id(const char *s, uint32_t *out)
{
	unsigned v, d;
	char tail;
	if (!s || strlen(s) != 9 || sscanf(s, "%4x:%4x%c", &v, &d, &tail) != 2)
		return -EINVAL;
	*out = v << 16 | d;
	return 0;
}

static int in_slots(const char (*list)[GV_SLOT_LEN], int n, const char *slot)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(list[i], slot))
			return 1;
	return 0;
}

int gv_offered(const struct gv_filter *f, const struct gv_dev *d, char *why, size_t len)
{
	uint32_t id = (uint32_t)d->vendor << 16 | d->device;
	if (d->kind != GV_GPU && d->kind != GV_NVSWITCH) {
		snprintf(why, len, "not a GPU or NVSwitch (class %06x)", d->class_code);
		return -EPERM;
	}
	if (in_slots(f->exclude, f->n_exclude, d->slot)) {
		snprintf(why, len, "excluded by cvm.gpu.exclude");
		return -EPERM;
	}
	if (f->n_include && !in_slots(f->include, f->n_include, d->slot)) {
		snprintf(why, len, "not in cvm.gpu.include");
		return -EPERM;
	}
	if (d->kind == GV_GPU && f->n_listing) {
		int listed = 0;
		for (int i = 0; i < f->n_listing; i++)
			listed |= f->listing[i] == id;
		if (!listed) {
			snprintf(why, len, "%04x:%04x is not in cvm.gpu.listing", d->vendor,
				 d->device);
			return -EPERM;
		}
	}
	return 0;
}
