/*
 * request: the create body's "gpus" value, checked twice: its syntax on the
 * request thread (gv_request_parse), and which devices it means against
 * the host, the filters and the holders at DEFINE (gv_resolve), where the
 * devices are then leased. Every refusal names the field and the rule.
 *
 *   {"attach_mode": "listed", "gpus": [{"slot": "0000:12:00.0"}]}
 *   {"attach_mode": "all"}          every offered GPU and NVSwitch
 *   {"count": 2}                    free GPUs of one NUMA node
 *   "peer_nics": true               with each GPU's GPUDirect NIC
 *
 * A device comes with every endpoint of its IOMMU group (vfio needs the
 * whole group), so a group member held by another VM, or a GPU the
 * filters keep back, makes the device unavailable too.
 */
#include "gv.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(rc, ...) (snprintf(err, errlen, __VA_ARGS__), (rc))

int gv_request_parse(const char *json, struct gv_request *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	enum json_tokener_error jerr;
	struct json_object *o = json_tokener_parse_verbose(json ? json : "", &jerr), *v;
	int rc = 0;
	if (!o || !json_object_is_type(o, json_type_object)) {
		rc = ERR(-EINVAL, "gpus: must be an object (attach_mode, gpus, count, peer_nics)");
		goto out;
	}
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		if (strcmp(key, "attach_mode") && strcmp(key, "gpus") && strcmp(key, "count") &&
		    strcmp(key, "peer_nics")) {
			rc = ERR(-EINVAL,
				 "gpus.%s: unknown key (known: attach_mode, gpus, count, peer_nics)",
				 key);
			goto out;
		}
	}
	if (json_object_object_get_ex(o, "peer_nics", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			rc = ERR(-EINVAL, "gpus.peer_nics: must be true or false");
			goto out;
		}
		r->peer_nics = json_object_get_boolean(v);
	}
	struct json_object *mode = NULL, *list = NULL, *count = NULL;
	json_object_object_get_ex(o, "attach_mode", &mode);
	json_object_object_get_ex(o, "gpus", &list);
	json_object_object_get_ex(o, "count", &count);
	if (count) {
		if (mode || list) {
			rc = ERR(-EINVAL, "gpus.count: goes without attach_mode and gpus (cvmm "
					  "chooses the GPUs)");
			goto out;
		}
		int64_t n = json_object_is_type(count, json_type_int) ? json_object_get_int64(count)
								       : 0;
		if (n < 1 || n > GV_MAX_SEL) {
			rc = ERR(-EINVAL, "gpus.count: must be an integer from 1 to %d", GV_MAX_SEL);
			goto out;
		}
		r->mode = GV_COUNT;
		r->count = (int)n;
		goto out;
	}
	if (!mode) {
		rc = ERR(-EINVAL, "gpus: attach_mode (\"listed\" or \"all\") or count is needed");
		goto out;
	}
	const char *m = json_object_is_type(mode, json_type_string) ? json_object_get_string(mode)
								      : "";
	if (!strcmp(m, "all")) {
		if (list) {
			rc = ERR(-EINVAL, "gpus.gpus: goes with attach_mode \"listed\" only");
			goto out;
		}
		r->mode = GV_ALL;
		goto out;
	}
	if (strcmp(m, "listed")) {
		rc = ERR(-EINVAL, "gpus.attach_mode: must be \"listed\" or \"all\"");
		goto out;
	}
	r->mode = GV_LISTED;
	if (!list || !json_object_is_type(list, json_type_array) ||
	    !json_object_array_length(list)) {
		rc = ERR(-EINVAL, "gpus.gpus: attach_mode \"listed\" needs a non-empty list of "
				  "{\"slot\": \"0000:12:00.0\"}");
		goto out;
	}
	size_t n = json_object_array_length(list);
	if (n > GV_MAX_SEL) {
		rc = ERR(-EINVAL, "gpus.gpus: at most %d devices", GV_MAX_SEL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(list, i), *s;
		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "slot", &s) || json_object_object_length(e) != 1) {
			rc = ERR(-EINVAL, "gpus.gpus[%zu]: must be {\"slot\": \"0000:12:00.0\"}", i);
			goto out;
		}
		const char *t = json_object_is_type(s, json_type_string) ? json_object_get_string(s)
									 : "";
		if (gv_slot_normalise(t, r->slots[r->n_slots]) < 0) {
			rc = ERR(-EINVAL,
				 "gpus.gpus[%zu].slot: \"%s\" is not a PCI address (0000:12:00.0 or "
				 "12:00.0)",
				 i, t);
			goto out;
		}
		for (int k = 0; k < r->n_slots; k++)
			if (!strcmp(r->slots[k], r->slots[r->n_slots])) {
				rc = ERR(-EINVAL, "gpus.gpus[%zu].slot: %s is listed twice", i,
					 r->slots[k]);
				goto out;
			}
		r->n_slots++;
	}
out:
	json_object_put(o);
	return rc;
}

/* ---- resolution ---- */

struct sel {
	int n, max;
	char (*slots)[GV_SLOT_LEN];
};

static int sel_has(const struct sel *s, const char *slot)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->slots[i], slot))
			return 1;
	return 0;
}

static int sel_add(struct sel *s, const char *slot)
{
	if (sel_has(s, slot))
		return 0;
	if (s->n == s->max)
		return -E2BIG;
	snprintf(s->slots[s->n++], GV_SLOT_LEN, "%s", slot);
	return 0;
}

/* Held by a VM other than vm: its id, else NULL. */
static const char *other_holder(const struct gv_store *s, const char *slot, const char *vm)
{
	const char *h = gv_store_holder(s, slot);
	return h && strcmp(h, vm) ? h : NULL;
}

/* Whether d and its group can go to vm: 0, or the reason in why. */
static int group_ok(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
		    const char *vm, const struct gv_dev *d, char *why, size_t len)
{
	char r[160];
	for (int i = 0; i < d->n_members; i++) {
		const struct gv_dev *m = gv_find(h, d->members[i]);
		const char *o = other_holder(s, d->members[i], vm);
		if (o) {
			if (!strcmp(d->members[i], d->slot))
				snprintf(why, len, "%s is held by VM %s", d->slot, o);
			else
				snprintf(why, len, "%s shares IOMMU group %d with %s, held by VM %s",
					 d->slot, d->iommu_group, d->members[i], o);
			return -EBUSY;
		}
		if (m && m != d && (m->kind == GV_GPU || m->kind == GV_NVSWITCH) &&
		    gv_offered(f, m, r, sizeof(r)) < 0) {
			snprintf(why, len, "%s shares IOMMU group %d with %s, which is not offered (%s)",
				 d->slot, d->iommu_group, m->slot, r);
			return -EPERM;
		}
	}
	return 0;
}

static int add_group(const struct gv_host *h, const struct gv_dev *d, struct sel *out)
{
	int rc = 0;
	for (int i = 0; i < d->n_members && !rc; i++) {
		const struct gv_dev *m = gv_find(h, d->members[i]);
		if (!m || gv_is_endpoint(m))
			rc = sel_add(out, d->members[i]);
	}
	return rc;
}

/* CPUs of node a VM could still be pinned to: neither kept for the host
 * (cvm.host_cpus) nor pinned to another VM (the pins of the lease record);
 * a VM holding GPUs there without pins (topology "none") counts with the
 * vCPUs it asked for. */
static int free_cpus(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
		     int node, const char *vm)
{
	const struct gv_node *nd = NULL;
	for (int i = 0; i < h->n_nodes; i++)
		if (h->nodes[i].id == node)
			nd = &h->nodes[i];
	if (!nd)
		return 1 << 20; /* the platform names no node: no constraint known */
	static __thread int taken[GV_MAX_VCPUS * 8];
	int n_taken = gv_store_taken(s, vm, taken, (int)(sizeof(taken) / sizeof(*taken)));
	int total = 0;
	for (int k = 0; k < nd->n_cpus; k++) {
		int c = nd->cpus[k], busy = 0;
		for (int i = 0; i < f->n_reserved && !busy; i++)
			busy = f->reserved[i] == c;
		for (int i = 0; i < n_taken && !busy; i++)
			busy = taken[i] == c;
		total += !busy;
	}
	for (int i = 0; i < s->n_leases; i++) {
		const struct gv_dev *d = gv_find(h, s->leases[i].slot);
		if (!d || d->kind != GV_GPU || d->numa_node != node || !strcmp(s->leases[i].vm, vm))
			continue;
		int first = 1, pinned = 0;
		for (int j = 0; j < i && first; j++) {
			const struct gv_dev *e = gv_find(h, s->leases[j].slot);
			first = !(e && e->kind == GV_GPU && e->numa_node == node &&
				  !strcmp(s->leases[j].vm, s->leases[i].vm));
		}
		for (int j = 0; j < s->n_pins && !pinned; j++)
			pinned = !strcmp(s->pins[j].vm, s->leases[i].vm);
		if (first && !pinned)
			total -= (int)s->leases[i].vcpus;
	}
	return total;
}

static int resolve_count(const struct gv_host *h, const struct gv_filter *f,
			 const struct gv_store *s, const char *vm, uint32_t vcpus, int count,
			 struct sel *gpus, char *err, size_t errlen)
{
	int nodes[GV_MAX_NODES + 1], n_nodes = 0, offered = 0;
	char why[256];
	for (int i = 0; i < h->n_devs; i++) {
		const struct gv_dev *d = &h->devs[i];
		if (d->kind != GV_GPU || gv_offered(f, d, why, sizeof(why)) < 0)
			continue;
		offered++;
		int seen = 0;
		for (int k = 0; k < n_nodes; k++)
			seen |= nodes[k] == d->numa_node;
		if (!seen && n_nodes <= GV_MAX_NODES)
			nodes[n_nodes++] = d->numa_node;
	}
	if (count > offered)
		return ERR(-EINVAL, "gpus.count: %d GPUs asked, this host offers %d", count,
			   offered);
	for (int i = 1; i < n_nodes; i++)
		for (int j = i; j > 0 && nodes[j - 1] > nodes[j]; j--) {
			int t = nodes[j];
			nodes[j] = nodes[j - 1];
			nodes[j - 1] = t;
		}
	/* Two passes: nodes with enough free CPUs for the VM, then any. */
	char summary[256] = "";
	size_t sl = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < n_nodes; k++) {
			int node = nodes[k], nfree = 0;
			if (pass == 0 && free_cpus(h, f, s, node, vm) < (int)vcpus)
				continue;
			gpus->n = 0;
			for (int i = 0; i < h->n_devs && nfree < count; i++) {
				const struct gv_dev *d = &h->devs[i];
				if (d->kind != GV_GPU || d->numa_node != node ||
				    gv_offered(f, d, why, sizeof(why)) < 0 ||
				    group_ok(h, f, s, vm, d, why, sizeof(why)) < 0)
					continue;
				sel_add(gpus, d->slot);
				nfree++;
			}
			if (nfree == count)
				return 0;
			if (pass == 1 && sl < sizeof(summary))
				sl += (size_t)snprintf(summary + sl, sizeof(summary) - sl,
						       "%snode %d: %d", sl ? ", " : "", node,
						       nfree);
		}
	}
	gpus->n = 0;
	return ERR(-EBUSY, "gpus.count: no NUMA node has %d free GPUs (free: %s)", count, summary);
}

static int cmp_slot(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int gv_resolve(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
	       const char *vm, uint32_t vcpus, const struct gv_request *r,
	       char (*out)[GV_SLOT_LEN], int max, char *err, size_t errlen)
{
	char why[300];
	char chosen[GV_MAX_SEL][GV_SLOT_LEN];
	struct sel gpus = {0, GV_MAX_SEL, chosen}, all = {0, max, out};
	int rc;

	if (!f->enabled)
		return ERR(-EPERM, "gpus: GPU passthrough is disabled on this host "
				   "(cvm.gpu.enabled is false)");
	switch (r->mode) {
	case GV_LISTED:
		for (int i = 0; i < r->n_slots; i++) {
			const struct gv_dev *d = gv_find(h, r->slots[i]);
			if (!d)
				return ERR(-EINVAL,
					   "gpus.gpus[%d].slot: %s is not a GPU this host offers "
					   "(not found)",
					   i, r->slots[i]);
			if (gv_offered(f, d, why, sizeof(why)) < 0)
				return ERR(-EINVAL,
					   "gpus.gpus[%d].slot: %s is not a GPU this host offers (%s)",
					   i, r->slots[i], why);
			if ((rc = group_ok(h, f, s, vm, d, why, sizeof(why))) < 0)
				return ERR(rc == -EBUSY ? -EBUSY : -EINVAL, "gpus.gpus[%d].slot: %s",
					   i, why);
			sel_add(&gpus, d->slot);
		}
		break;
	case GV_ALL:
		if (!f->allow_attach_all)
			return ERR(-EPERM, "gpus.attach_mode: \"all\" is refused on this host "
					   "(cvm.gpu.allow_attach_all is false)");
		for (int i = 0; i < h->n_devs; i++) {
			const struct gv_dev *d = &h->devs[i];
			if (gv_offered(f, d, why, sizeof(why)) < 0)
				continue;
			if ((rc = group_ok(h, f, s, vm, d, why, sizeof(why))) < 0)
				return ERR(rc == -EBUSY ? -EBUSY : -EINVAL, "gpus.attach_mode: %s",
					   why);
			if (sel_add(&gpus, d->slot) < 0)
				return ERR(-E2BIG, "gpus.attach_mode: more than %d devices",
					   GV_MAX_SEL);
		}
		if (!gpus.n)
			return ERR(-EINVAL, "gpus.attach_mode: this host offers no GPU");
		break;
	case GV_COUNT:
		if ((rc = resolve_count(h, f, s, vm, vcpus, r->count, &gpus, err, errlen)) < 0)
			return rc;
		break;
	default:
		return ERR(-EINVAL, "gpus: no attach mode");
	}
	for (int i = 0; i < gpus.n; i++) {
		const struct gv_dev *d = gv_find(h, gpus.slots[i]);
		if (add_group(h, d, &all) < 0)
			return ERR(-E2BIG, "gpus: more than %d devices", max);
		if (!r->peer_nics || !d->peer_nic[0] || d->kind != GV_GPU)
			continue;
		const struct gv_dev *nic = gv_find(h, d->peer_nic);
		for (int k = 0; k < f->n_exclude; k++)
			if (!strcmp(f->exclude[k], nic->slot))
				return ERR(-EINVAL,
					   "gpus.peer_nics: %s (GPUDirect peer of %s) is excluded by "
					   "cvm.gpu.exclude",
					   nic->slot, d->slot);
		if ((rc = group_ok(h, f, s, vm, nic, why, sizeof(why))) < 0)
			return ERR(rc == -EBUSY ? -EBUSY : -EINVAL,
				   "gpus.peer_nics: GPUDirect peer of %s: %s", d->slot, why);
		if (add_group(h, nic, &all) < 0)
			return ERR(-E2BIG, "gpus: more than %d devices", max);
	}
	qsort(out, (size_t)all.n, GV_SLOT_LEN, cmp_slot);
	return all.n;
}
