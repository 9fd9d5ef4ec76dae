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

/* ---- the readiness report's GPU items (GET /v1/host/check) ---- */

static void check_item(struct json_object *list, const char *name, const char *status,
		       const char *detail, const char *fix)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	json_object_object_add(o, "fix", json_object_new_string(fix));
	json_object_array_add(list, o);
}

static int read_flag(const char *root, const char *rel, char *buf, size_t len)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	int rc = fgets(buf, (int)len, f) ? 0 : -1;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return rc;
}

int gv_check_json(const char *root, const struct gv_host *h, const struct gv_filter *f,
		  const struct gv_store *s, char *buf, size_t len)
{
	struct json_object *list = json_object_new_array();
	char detail[1024], name[64], flag[16], why[256];
	int gpus = 0, switches = 0;
	int modeset = read_flag(root, "sys/module/nvidia_drm/parameters/modeset", flag,
				sizeof(flag)) == 0 &&
		      (!strcmp(flag, "Y") || !strcmp(flag, "1"));
	for (int i = 0; i < h->n_devs; i++)
		gpus += h->devs[i].kind == GV_GPU, switches += h->devs[i].kind == GV_NVSWITCH;
	snprintf(detail, sizeof(detail), "%d GPUs and %d NVSwitches under %s%s", gpus, switches,
		 root, f->enabled ? "" : "; passthrough is disabled (cvm.gpu.enabled is false)");
	check_item(list, "gpu passthrough", f->enabled ? "ok" : "warn", detail,
		   f->enabled ? "" : "set cvm.gpu.enabled = true to offer them to VMs");
	for (int i = 0; i < h->n_devs; i++) {
		const struct gv_dev *d = &h->devs[i];
		if (d->kind != GV_GPU && d->kind != GV_NVSWITCH)
			continue;
		snprintf(name, sizeof(name), "%s %s", d->kind == GV_GPU ? "gpu" : "nvswitch", d->slot);
		char rel[128];
		snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/boot_vga", d->slot);
		if (d->iommu_group < 0) {
			check_item(list, name, "fail", "no IOMMU group: the IOMMU is off",
				   "turn the IOMMU on (see the iommu item)");
			continue;
		}
		if (read_flag(root, rel, flag, sizeof(flag)) == 0 && !strcmp(flag, "1")) {
			check_item(list, name, "fail",
				   "the host's boot display (boot_vga): the console and the "
				   "firmware's framebuffer use it",
				   "boot the host headless or on another display device, or "
				   "exclude this slot (cvm.gpu.exclude)");
			continue;
		}
		/* vfio takes a whole group: an endpoint of it that is neither
		 * this device's own function nor another GPU would be taken
		 * from the host with it */
		char others[512] = "";
		size_t ol = 0;
		for (int k = 0; k < d->n_members; k++) {
			const struct gv_dev *m = gv_find(h, d->members[k]);
			if (!m || m == d || !gv_is_endpoint(m) || !strncmp(m->slot, d->slot, 10) ||
			    m->kind == GV_GPU || m->kind == GV_NVSWITCH)
				continue;
			ol += (size_t)snprintf(others + ol, ol < sizeof(others) ? sizeof(others) - ol : 0,
					       "%s%s (%s)", ol ? ", " : "", m->slot,
					       m->driver[0] ? m->driver : "no driver");
		}
		const char *holder = gv_store_holder(s, d->slot);
		snprintf(detail, sizeof(detail), "%04x:%04x %s, node %d, IOMMU group %d (%d member%s), "
			 "driver %s%s%s",
			 d->vendor, d->device, d->product[0] ? d->product : "", d->numa_node,
			 d->iommu_group, d->n_members, d->n_members > 1 ? "s" : "",
			 d->driver[0] ? d->driver : "none", holder ? ", held by VM " : "",
			 holder ? holder : "");
		if (others[0]) {
			size_t l = strlen(detail);
			snprintf(detail + l, sizeof(detail) - l,
				 "; its group also holds %s, which would leave the host with it", others);
			check_item(list, name, "warn", detail,
				   "move the card to a slot with an IOMMU group of its own (or one "
				   "behind a switch with ACS), or exclude it (cvm.gpu.exclude)");
		} else if (gv_offered(f, d, why, sizeof(why)) < 0) {
			size_t l = strlen(detail);
			snprintf(detail + l, sizeof(detail) - l, "; not offered: %s", why);
			check_item(list, name, "warn", detail,
				   "cvm.gpu.listing, include and exclude decide what is offered");
		} else if (modeset && !strcmp(d->driver, "nvidia")) {
			size_t l = strlen(detail);
			snprintf(detail + l, sizeof(detail) - l,
				 "; nvidia_drm has modeset=Y: unbinding it from nvidia may hang");
			check_item(list, name, "warn", detail,
				   "options nvidia-drm modeset=0 (see the nvidia_drm item)");
		} else {
			check_item(list, name, "ok", detail, "");
		}
	}
	return emit(list, buf, len);
}
