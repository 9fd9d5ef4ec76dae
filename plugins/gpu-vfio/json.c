/*
 * json: the text of GET /v1/gpus and of a VM's "gpus" object. The plugin
 * builds it with json-c; only the finished text crosses the ABI.
 *
 * GET /v1/gpus lists the devices the filters offer, each with where it sits
 * (NUMA node, IOMMU group and its members, the switch above it, the NIC
 * under the same switch), its current driver and the VM holding it.
 */
#include "gv.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static struct json_object *str_or_null(const char *s)
{
	return s && s[0] ? json_object_new_string(s) : NULL;
}

static int emit(struct json_object *o, char *buf, size_t len)
{
	const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(t);
	int rc = n < len ? (int)n : -ENOSPC;
	if (rc >= 0)
		memcpy(buf, t, n + 1);
	json_object_put(o);
	return rc;
}

int gv_gpus_json(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
		 char *buf, size_t len)
{
	struct json_object *root = json_object_new_object(), *list = json_object_new_array();
	char why[256], hex[8];
	for (int i = 0; i < h->n_devs; i++) {
		const struct gv_dev *d = &h->devs[i];
		if (gv_offered(f, d, why, sizeof(why)) < 0)
			continue;
		struct json_object *o = json_object_new_object(), *m = json_object_new_array();
		json_object_object_add(o, "slot", json_object_new_string(d->slot));
		snprintf(hex, sizeof(hex), "%04x", d->vendor);
		json_object_object_add(o, "vendor", json_object_new_string(hex));
		snprintf(hex, sizeof(hex), "%04x", d->device);
		json_object_object_add(o, "device", json_object_new_string(hex));
		json_object_object_add(o, "product", json_object_new_string(d->product));
		json_object_object_add(o, "kind", json_object_new_string(
							  d->kind == GV_NVSWITCH ? "nvswitch" : "gpu"));
		json_object_object_add(o, "numa_node", json_object_new_int(d->numa_node));
		json_object_object_add(o, "iommu_group", d->iommu_group >= 0
								 ? json_object_new_int(d->iommu_group)
								 : NULL);
		for (int k = 0; k < d->n_members; k++)
			json_object_array_add(m, json_object_new_string(d->members[k]));
		json_object_object_add(o, "group_members", m);
		json_object_object_add(o, "switch", str_or_null(d->sw));
		json_object_object_add(o, "peer_nic", str_or_null(d->peer_nic));
		json_object_object_add(o, "driver", str_or_null(d->driver));
		json_object_object_add(o, "vm", str_or_null(gv_store_holder(s, d->slot)));
		json_object_array_add(list, o);
	}
	json_object_object_add(root, "gpus", list);
	json_object_object_add(root, "allow_attach_all",
			       json_object_new_boolean(f->allow_attach_all != 0));
	return emit(root, buf, len);
}

int gv_vm_json(const struct gv_store *s, const char *vm, char *buf, size_t len)
{
	char slots[GV_MAX_SEL][GV_SLOT_LEN];
	int n = gv_store_vm_slots(s, vm, slots, GV_MAX_SEL);
	struct json_object *a = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(slots[i]));
	return emit(a, buf, len);
}
