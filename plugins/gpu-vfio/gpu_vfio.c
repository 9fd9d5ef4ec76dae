/*
 * gpu-vfio: whole PCI devices (GPUs, NVSwitches, their GPUDirect NICs)
 * passed to VMs through vfio-pci.
 *
 *   DEFINE     resolve the VM's "gpus" request and lease the devices
 *   PRE_START  bind every endpoint of their IOMMU groups to vfio-pci, add
 *              them to the launch spec as hostdevs
 *   POST_STOP  give each device back to the driver it had
 *   UNDEFINE   release the leases
 *
 * Leases and bindings live in <data_dir>/gpu-vfio/leases (store.c), so a
 * restarted daemon knows who holds what and what to give back; a VM that
 * still runs keeps its devices (nothing to do: the record says they are
 * its), and the core's POST_STOP for a VM whose start or run was cut short
 * restores what the record names.
 *
 * The guest topology (plan.c): a VM with devices, or any VM whose create
 * body says "topology": "mirror", gets NUMA cells, pinned vCPUs and a PCIe
 * tree mirroring the host's ("nccl": a flat tree and NCCL's topology file
 * through fw_cfg; "none": the devices on the root complex, no pinning).
 * The pins are leased at DEFINE with the devices, in the same record.
 *
 * plugin.gpu-vfio:
 *   root = "/";              # whose sys/ and proc/ are read and written
 *   write_timeout_ms = 5000; # per sysfs write
 *   hugepage_kb = 0;         # back mirrored cells with huge pages of this size
 * cvm.host_cpus = "0-15": host CPUs no vCPU is ever pinned to (the
 *   emulator threads of a pinned VM run there).
 * cvm.gpu (dstack's keys): enabled, listing, include, exclude,
 *   allow_attach_all; read here, with absolute lookups, so the core knows
 *   the section is handled.
 */
#include "gv.h"
#include "fwcfg.h"

#include <cvmm/plugin.h>
#include <json-c/json.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct gv_store store;
static int store_rc = 1; /* 1: not opened yet; else gv_store_open's result */
static struct gv_filter filter;
static char root[PATH_MAX] = "/";
static int timeout_ms = 5000;
static uint32_t hugepage_kb;

/* ---- configuration ---- */

static int cfg_fail(const char *key, const char *msg, const char *val)
{
	return host->error(self, NULL, -EINVAL, "%s: %s: \"%s\"", key, msg, val);
}

static int read_slots(const char *key, char (*out)[GV_SLOT_LEN], int *n)
{
	int c = host->cfg_count(self, key);
	if (c == -ENOENT)
		return 0;
	if (c < 0)
		return c;
	for (int i = 0; i < c; i++) {
		const char *s;
		int rc = host->cfg_string_at(self, key, (uint32_t)i, &s);
		if (rc < 0)
			return rc;
		if (*n == GV_MAX_IDS)
			return cfg_fail(key + 1, "too many entries at", s);
		if (gv_slot_normalise(s, out[*n]) < 0)
			return cfg_fail(key + 1, "not a PCI address (0000:12:00.0)", s);
		(*n)++;
	}
	return 0;
}

static int read_config(void)
{
	const char *s;
	int64_t v;
	int32_t b;
	int rc;
	if ((rc = host->cfg_string(self, "root", &s)) == 0)
		snprintf(root, sizeof(root), "%s", s);
	else if (rc != -ENOENT)
		return rc;
	if ((rc = host->cfg_int(self, "write_timeout_ms", &v)) == 0) {
		if (v < 10 || v > 600000)
			return host->error(self, NULL, -EINVAL,
					   "plugin.gpu-vfio.write_timeout_ms: from 10 to 600000");
		timeout_ms = (int)v;
	} else if (rc != -ENOENT) {
		return rc;
	}
	if ((rc = host->cfg_int(self, "hugepage_kb", &v)) == 0) {
		if (v != 0 && v != 2048 && v != 1048576)
			return host->error(self, NULL, -EINVAL,
					   "plugin.gpu-vfio.hugepage_kb: 0, 2048 or 1048576");
		hugepage_kb = (uint32_t)v;
	} else if (rc != -ENOENT) {
		return rc;
	}
	if ((rc = host->cfg_string(self, ".cvm.host_cpus", &s)) == 0) {
		/* kept in the filter: the request resolver counts around them too */
		filter.n_reserved = gv_parse_cpulist(
			s, filter.reserved, (int)(sizeof(filter.reserved) / sizeof(*filter.reserved)));
		if (filter.n_reserved < 0)
			return cfg_fail("cvm.host_cpus", "not a CPU list (0-15,32)", s);
	} else if (rc != -ENOENT) {
		return rc;
	}
	/* dstack's defaults, except allow_attach_all: off until asked for */
	filter.enabled = 0;
	if ((rc = host->cfg_bool(self, ".cvm.gpu.enabled", &b)) == 0)
		filter.enabled = b;
	else if (rc != -ENOENT)
		return rc;
	if ((rc = host->cfg_bool(self, ".cvm.gpu.allow_attach_all", &b)) == 0)
		filter.allow_attach_all = b;
	else if (rc != -ENOENT)
		return rc;
	int c = host->cfg_count(self, ".cvm.gpu.listing");
	if (c < 0 && c != -ENOENT)
		return c;
	for (int i = 0; i < c; i++) {
		if ((rc = host->cfg_string_at(self, ".cvm.gpu.listing", (uint32_t)i, &s)) < 0)
			return rc;
		if (filter.n_listing == GV_MAX_IDS)
			return cfg_fail("cvm.gpu.listing", "too many entries at", s);
		if (gv_parse_id(s, &filter.listing[filter.n_listing++]) < 0)
			return cfg_fail("cvm.gpu.listing", "not a vendor:device id (10de:2335)", s);
	}
	if ((rc = read_slots(".cvm.gpu.include", filter.include, &filter.n_include)) < 0 ||
	    (rc = read_slots(".cvm.gpu.exclude", filter.exclude, &filter.n_exclude)) < 0)
		return rc;
	return 0;
}

/* nvidia-persistenced keeps /dev/nvidia* open and reopens devices as they
 * appear: stopped while devices move, it cannot race them (bind.c). */
static struct gv_pause persist;

static void pause_persistenced(void *data, int on)
{
	int n = persist.n;
	gv_pause_persistenced(data, on);
	if (on)
		n = persist.n;
	if (n)
		host->log(self, CVMM_LOG_INFO, "nvidia-persistenced (%d process%s) %s", n,
			  n > 1 ? "es" : "", on ? "paused" : "resumed");
}

/* The record is opened at DAEMON_START (never at load: --check-config
 * loads plugins too, and must not touch the host), or at first use by a
 * core that does not send DAEMON_START. Called with lock held. */
static int ensure_store(void)
{
	char dir[PATH_MAX];
	if (store_rc <= 0)
		return store_rc;
	snprintf(dir, sizeof(dir), "%s/gpu-vfio", host->data_dir(self));
	store_rc = gv_store_open(&store, dir);
	if (store_rc < 0)
		host->log(self, CVMM_LOG_ERROR, "%s/leases: %s", dir,
			  store_rc == -EINVAL ? "not a gpu-vfio lease file" : strerror(-store_rc));
	return store_rc;
}

static void bind_ctx(struct gv_bind_ctx *c, const char *vm)
{
	memset(c, 0, sizeof(*c));
	c->root = root;
	c->timeout_ms = timeout_ms;
	c->store = &store;
	c->vm = vm;
	c->pause = pause_persistenced;
	c->pause_data = &persist;
	persist.root = root;
}

/* ---- hooks ---- */

static void state_slots(cvmm_vm *vm, char (*slots)[GV_SLOT_LEN], int n)
{
	char buf[GV_MAX_SEL * GV_SLOT_LEN] = "";
	size_t l = 0;
	for (int i = 0; i < n; i++)
		l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s", i ? "," : "", slots[i]);
	host->state_set(self, vm, "slots", n ? buf : NULL);
}

/* The VM's "topology": asked for, or "mirror" for a VM with devices. */
static int vm_topo(cvmm_vm *vm, int has_devs, enum gv_topo *mode)
{
	const char *json = CVMM_HOST_HAS(host, vm_request_field)
				   ? host->vm_request_field(vm, "topology")
				   : NULL;
	char err[256];
	*mode = has_devs ? GV_TOPO_MIRROR : GV_TOPO_NONE;
	if (!json || !strcmp(json, "null"))
		return 0;
	int rc = gv_topo_parse(json, mode, err, sizeof(err));
	return rc < 0 ? host->error(self, vm, rc, "%s", err) : 0;
}

/* The plan for vm's devices; CPUs pinned to other VMs are avoided. Called
 * with lock held. p is the caller's (large). */
static int make_plan(cvmm_vm *vm, const struct gv_host *h, char (*slots)[GV_SLOT_LEN], int n,
		     enum gv_topo mode, struct gv_plan *p)
{
	static int taken[GV_MAX_VCPUS * 8]; /* under lock */
	char err[512];
	int n_taken = gv_store_taken(&store, host->vm_id(vm), taken,
				     (int)(sizeof(taken) / sizeof(*taken)));
	struct gv_plan_in in = {.h = h,
				.slots = slots,
				.n = n,
				.vcpus = host->vm_vcpus(vm),
				.memory_mb = host->vm_memory_mb(vm),
				.mode = mode,
				.reserved = filter.reserved,
				.n_reserved = filter.n_reserved,
				.taken = taken,
				.n_taken = n_taken,
				.hugepage_kb = hugepage_kb};
	int rc = gv_plan(&in, p, err, sizeof(err));
	return rc < 0 ? host->error(self, vm, rc, "%s", err) : 0;
}

static int on_define(cvmm_vm *vm)
{
	const char *json = CVMM_HOST_HAS(host, vm_request_field)
				   ? host->vm_request_field(vm, "gpus")
				   : NULL;
	struct gv_request r;
	struct gv_host h = {0};
	struct gv_plan *plan = NULL;
	enum gv_topo mode;
	char err[512], slots[GV_MAX_SEL][GV_SLOT_LEN];
	const char *id = host->vm_id(vm);
	int rc, n = 0, want = json && strcmp(json, "null");
	if ((rc = vm_topo(vm, want, &mode)) < 0)
		return rc;
	if (!want && mode == GV_TOPO_NONE)
		return 0;
	if (want && (rc = gv_request_parse(json, &r, err, sizeof(err))) < 0)
		return host->error(self, vm, rc, "%s", err);
	if ((rc = gv_discover(root, &filter, &h)) < 0)
		return host->error(self, vm, rc, "reading %s/sys/bus/pci: %s", root,
				   strerror(-rc));
	if (mode != GV_TOPO_NONE && !(plan = malloc(sizeof(*plan)))) {
		gv_host_free(&h);
		return -ENOMEM;
	}
	pthread_mutex_lock(&lock);
	if ((rc = ensure_store()) < 0) {
		rc = host->error(self, vm, rc, "the GPU lease record cannot be read");
		goto out;
	}
	if (want) {
		n = gv_resolve(&h, &filter, &store, id, host->vm_vcpus(vm), &r, slots, GV_MAX_SEL,
			       err, sizeof(err));
		if (n < 0) {
			rc = host->error(self, vm, n, "%s", err);
			goto out;
		}
	}
	/* the pins are chosen and leased with the devices, under the same
	 * lock: two creates cannot pick the same CPUs */
	if (plan && (rc = make_plan(vm, &h, slots, n, mode, plan)) < 0)
		goto out;
	for (int i = 0; i < n && !rc; i++)
		rc = gv_store_lease(&store, slots[i], id, host->vm_vcpus(vm));
	if (!rc && plan && plan->n_pins)
		rc = gv_store_set_pins(&store, id, plan->pins, plan->n_pins);
	if (!rc)
		rc = gv_store_save(&store);
	if (rc < 0) {
		gv_store_release_vm(&store, id);
		rc = host->error(self, vm, rc, "leasing GPUs: %s", strerror(-rc));
		goto out;
	}
	state_slots(vm, slots, n);
	if (n)
		host->log(self, CVMM_LOG_INFO, "VM '%s': %d devices leased", host->vm_name(vm), n);
	if (plan && plan->n_pins) {
		char cpus[2600];
		gv_format_cpulist(plan->pins, plan->n_pins, cpus, sizeof(cpus));
		host->log(self, CVMM_LOG_INFO, "VM '%s': %d cells, vCPUs pinned to host CPUs %s",
			  host->vm_name(vm), plan->n_cells, cpus);
	}
out:
	pthread_mutex_unlock(&lock);
	gv_host_free(&h);
	free(plan);
	return rc;
}

static int on_undefine(cvmm_vm *vm)
{
	struct gv_bind_ctx c;
	const char *id = host->vm_id(vm);
	pthread_mutex_lock(&lock);
	if (ensure_store() < 0) {
		pthread_mutex_unlock(&lock);
		return host->error(self, vm, -EIO, "the GPU lease record cannot be read");
	}
	bind_ctx(&c, id);
	int rc = gv_restore(&c); /* nothing, unless a POST_STOP failed */
	if (gv_store_release_vm(&store, id) > 0) {
		int e = gv_store_save(&store);
		if (e < 0 && !rc)
			rc = host->error(self, vm, e, "saving %s: %s", store.path, strerror(-e));
	}
	pthread_mutex_unlock(&lock);
	host->state_set(self, vm, "slots", NULL);
	if (rc < 0 && c.err[0])
		host->log(self, CVMM_LOG_WARN, "VM '%s': %s", host->vm_name(vm), c.err);
	return 0; /* the leases are gone; a device left on vfio-pci is in the log */
}

static int add_hostdevs(cvmm_spec *spec, char (*slots)[GV_SLOT_LEN], int n)
{
	struct cvmm_spec_hostdev devs[GV_MAX_SEL];
	int rc;
	gv_hostdevs(slots, n, devs);
	for (int i = 0; i < n; i++)
		if ((rc = host->spec_add_hostdev(spec, &devs[i])) < 0)
			return rc;
	return 0;
}

/* Where a VM's NCCL topology file is written, and the name the guest reads
 * it under (/sys/firmware/qemu_fw_cfg/by_name/opt/cvmm/nccl-topo.xml/raw). */
#define NCCL_FW_CFG "opt/cvmm/nccl-topo.xml"

static int write_file(const char *path, const char *text, size_t len)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	int rc = fwrite(text, 1, len, f) == len ? 0 : -EIO;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* The plan into the spec. write: the NCCL file is written (a start), not
 * only named (a dry run). */
static int apply_plan(cvmm_vm *vm, cvmm_spec *spec, const struct gv_host *h,
		      char (*slots)[GV_SLOT_LEN], int n, const struct gv_plan *p, int write)
{
	int rc;
	char what[64] = "";
	if (p->mode == GV_TOPO_NONE)
		return n ? add_hostdevs(spec, slots, n) : 0;
	if (!CVMM_HOST_HAS(host, spec_add_pcie))
		return host->error(self, vm, -ENOTSUP,
				   "this cvmmd cannot build a guest topology (no spec_add_pcie)");
	if ((rc = host->spec_set_topology(spec, p->sockets, p->cores, p->threads)) < 0) {
		snprintf(what, sizeof(what), "the CPU topology");
		goto refused;
	}
	for (int c = 0; c < p->n_cells; c++) {
		struct cvmm_spec_numa cell = {.struct_size = sizeof(cell),
					      .id = (uint32_t)c,
					      .memory_mb = p->cells[c].memory_mb,
					      .host_node = p->cells[c].host_node,
					      .hugepage_kb = p->hugepage_kb};
		snprintf(cell.cpus, sizeof(cell.cpus), "%u-%u", p->cells[c].first_vcpu,
			 p->cells[c].first_vcpu + p->cells[c].n_vcpus - 1);
		if ((rc = host->spec_add_numa(spec, &cell)) < 0) {
			snprintf(what, sizeof(what), "NUMA cell %d", c);
			goto refused;
		}
	}
	for (int v = 0; v < p->n_pins; v++) {
		struct cvmm_spec_pin pin = {.struct_size = sizeof(pin), .vcpu = (uint32_t)v};
		snprintf(pin.host_cpus, sizeof(pin.host_cpus), "%d", p->pins[v]);
		if ((rc = host->spec_add_pin(spec, &pin)) < 0) {
			snprintf(what, sizeof(what), "the pin of vCPU %d", v);
			goto refused;
		}
	}
	if (p->emulator_cpus[0] && (rc = host->spec_set_emulator_cpus(spec, p->emulator_cpus)) < 0) {
		snprintf(what, sizeof(what), "the emulator CPUs");
		goto refused;
	}
	for (int i = 0; i < p->n_pcie; i++)
		if ((rc = host->spec_add_pcie(spec, &p->pcie[i])) < 0) {
			snprintf(what, sizeof(what), "PCIe element %s", p->pcie[i].id);
			goto refused;
		}
	for (int i = 0; i < p->n_devs; i++)
		if ((rc = host->spec_add_hostdev(spec, &p->devs[i])) < 0) {
			snprintf(what, sizeof(what), "hostdev %s", p->devs[i].id);
			goto refused;
		}
	if (p->mode == GV_TOPO_NCCL) {
		struct gv_plan_in in = {.h = h, .slots = slots, .n = n};
		char path[PATH_MAX];
		size_t cap = 1 << 16;
		char *xml = malloc(cap);
		int len = xml ? gv_nccl_xml(&in, p, xml, cap) : -ENOMEM;
		snprintf(path, sizeof(path), "%s/nccl-topo.xml", host->vm_run_dir(vm));
		if (len >= 0 && write) {
			int w = write_file(path, xml, (size_t)len);
			len = w < 0 ? w : len;
		}
		free(xml);
		if (len < 0)
			return host->error(self, vm, len, "writing %s: %s", path, strerror(-len));
		if ((rc = cp_spec_add_fw_cfg(host, spec, NCCL_FW_CFG, path)) < 0) {
			snprintf(what, sizeof(what), "the fw_cfg argument");
			goto refused;
		}
	}
	return 0;
refused:
	return host->error(self, vm, rc, "the launch spec refused %s of the planned topology: %s",
			   what, strerror(-rc));
}

/* The plan of a defined VM, from its lease (PRE_START). */
static int plan_defined(cvmm_vm *vm, const struct gv_host *h, char (*slots)[GV_SLOT_LEN], int n,
			struct gv_plan *p)
{
	enum gv_topo mode;
	int rc = vm_topo(vm, n > 0, &mode);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&lock);
	rc = make_plan(vm, h, slots, n, mode, p);
	/* the same choice as at DEFINE unless cvm.host_cpus changed since:
	 * the record follows what this boot uses */
	if (!rc && p->n_pins && gv_store_set_pins(&store, host->vm_id(vm), p->pins, p->n_pins) == 0)
		gv_store_save(&store);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int on_pre_start(cvmm_vm *vm, cvmm_spec *spec)
{
	char slots[GV_MAX_SEL][GV_SLOT_LEN];
	struct gv_bind_ctx c;
	struct gv_host h;
	enum gv_topo mode;
	const char *id = host->vm_id(vm);
	pthread_mutex_lock(&lock);
	int n = ensure_store() < 0 ? -EIO : gv_store_vm_slots(&store, id, slots, GV_MAX_SEL);
	pthread_mutex_unlock(&lock);
	if (n < 0)
		return host->error(self, vm, n, "the GPU lease record cannot be read");
	int rc = vm_topo(vm, n > 0, &mode);
	if (rc < 0)
		return rc;
	if (!n && mode == GV_TOPO_NONE)
		return 0;
	if (n && !CVMM_HOST_HAS(host, spec_add_hostdev))
		return host->error(self, vm, -ENOTSUP,
				   "this cvmmd cannot pass host devices (no spec_add_hostdev)");
	struct gv_plan *plan = malloc(sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	rc = gv_discover(root, &filter, &h);
	if (rc < 0) {
		free(plan);
		return host->error(self, vm, rc, "reading %s/sys/bus/pci: %s", root,
				   strerror(-rc));
	}
	/* planned before anything moves: a VM that cannot take its shape
	 * fails with nothing to undo */
	if ((rc = plan_defined(vm, &h, slots, n, plan)) < 0)
		goto out;
	if (n) {
		pthread_mutex_lock(&lock);
		bind_ctx(&c, id);
		rc = gv_bind(&c, &h, slots, n);
		pthread_mutex_unlock(&lock);
		if (rc < 0) {
			rc = host->error(self, vm, rc, "%s", c.err);
			goto out;
		}
	}
	rc = apply_plan(vm, spec, &h, slots, n, plan, 1);
out:
	gv_host_free(&h);
	free(plan);
	return rc;
}

static int on_post_stop(cvmm_vm *vm)
{
	struct gv_bind_ctx c;
	pthread_mutex_lock(&lock);
	if (ensure_store() < 0) {
		pthread_mutex_unlock(&lock);
		return host->error(self, vm, -EIO, "the GPU lease record cannot be read");
	}
	bind_ctx(&c, host->vm_id(vm));
	int rc = gv_restore(&c);
	pthread_mutex_unlock(&lock);
	return rc < 0 ? host->error(self, vm, rc, "%s", c.err) : 0;
}

/* Dry run: the devices a create would get and the topology its start
 * would build; nothing leased, bound or written. */
static int on_plan(cvmm_vm *vm, cvmm_spec *spec)
{
	const char *json = CVMM_HOST_HAS(host, vm_request_field)
				   ? host->vm_request_field(vm, "gpus")
				   : NULL;
	struct gv_request r;
	struct gv_host h;
	enum gv_topo mode;
	char err[512], slots[GV_MAX_SEL][GV_SLOT_LEN];
	int rc, n = 0, want = json && strcmp(json, "null");
	if ((rc = vm_topo(vm, want, &mode)) < 0)
		return rc;
	if (!want && mode == GV_TOPO_NONE)
		return 0;
	if (want && !CVMM_HOST_HAS(host, spec_add_hostdev))
		return host->error(self, vm, -ENOTSUP,
				   "this cvmmd cannot pass host devices (no spec_add_hostdev)");
	if (want && (rc = gv_request_parse(json, &r, err, sizeof(err))) < 0)
		return host->error(self, vm, rc, "%s", err);
	struct gv_plan *plan = malloc(sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	if ((rc = gv_discover(root, &filter, &h)) < 0) {
		free(plan);
		return host->error(self, vm, rc, "reading %s/sys/bus/pci: %s", root,
				   strerror(-rc));
	}
	pthread_mutex_lock(&lock);
	if (ensure_store() < 0)
		rc = host->error(self, vm, -EIO, "the GPU lease record cannot be read");
	else if (want && (n = gv_resolve(&h, &filter, &store, host->vm_id(vm), host->vm_vcpus(vm),
					 &r, slots, GV_MAX_SEL, err, sizeof(err))) < 0)
		rc = host->error(self, vm, n, "%s", err);
	else
		rc = make_plan(vm, &h, slots, n, mode, plan);
	pthread_mutex_unlock(&lock);
	if (!rc)
		rc = apply_plan(vm, spec, &h, slots, n, plan, 0);
	gv_host_free(&h);
	free(plan);
	return rc;
}

static int on_daemon_start(void);

static int hook(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	switch (event) {
	case CVMM_EV_DEFINE:
		return on_define(vm);
	case CVMM_EV_UNDEFINE:
		return on_undefine(vm);
	case CVMM_EV_PRE_START:
		return on_pre_start(vm, spec);
	case CVMM_EV_POST_STOP:
		return on_post_stop(vm);
	case CVMM_EV_DAEMON_START:
		return on_daemon_start();
	case CVMM_EV_PLAN:
		return on_plan(vm, spec);
	}
	return 0;
}

/* ---- API parts ---- */

static int validate(void *data, const char *json, char *err, size_t errlen)
{
	struct gv_request r;
	struct gv_host h;
	char slots[GV_MAX_SEL][GV_SLOT_LEN];
	(void)data;
	int rc = gv_request_parse(json, &r, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = gv_discover(root, &filter, &h)) < 0) {
		snprintf(err, errlen, "gpus: reading %s/sys/bus/pci: %s", root, strerror(-rc));
		return rc;
	}
	/* A first answer, before anything is reserved; DEFINE decides. */
	pthread_mutex_lock(&lock);
	rc = ensure_store();
	if (rc < 0)
		snprintf(err, errlen, "gpus: the GPU lease record cannot be read");
	else
		rc = gv_resolve(&h, &filter, &store, "", 0, &r, slots, GV_MAX_SEL, err, errlen);
	pthread_mutex_unlock(&lock);
	gv_host_free(&h);
	return rc < 0 ? rc : 0;
}

static int validate_topology(void *data, const char *json, char *err, size_t errlen)
{
	enum gv_topo mode;
	(void)data;
	return gv_topo_parse(json, &mode, err, errlen);
}

static int route_gpus(void *data, const char *body, char *buf, size_t len)
{
	struct gv_host h;
	(void)data;
	(void)body;
	int rc = gv_discover(root, &filter, &h);
	if (rc < 0)
		return host->error(self, NULL, rc, "reading %s/sys/bus/pci: %s", root,
				   strerror(-rc));
	pthread_mutex_lock(&lock);
	rc = ensure_store() < 0 ? host->error(self, NULL, -EIO, "the GPU lease record cannot be read")
				: gv_gpus_json(&h, &filter, &store, buf, len);
	pthread_mutex_unlock(&lock);
	gv_host_free(&h);
	return rc;
}

/* The readiness report's GPU items (GET /v1/host/check). */
static int check_items(void *data, char *buf, size_t len)
{
	struct gv_host h;
	(void)data;
	int rc = gv_discover(root, &filter, &h);
	if (rc < 0)
		return snprintf(buf, len,
				"[{\"name\": \"gpu passthrough\", \"status\": \"fail\", \"detail\": "
				"\"cannot read %s/sys/bus/pci\", \"fix\": \"check plugin.gpu-vfio.root\"}]",
				root);
	pthread_mutex_lock(&lock);
	rc = ensure_store() < 0 ? -EIO : gv_check_json(root, &h, &filter, &store, buf, len);
	pthread_mutex_unlock(&lock);
	gv_host_free(&h);
	return rc;
}

/* GET /v1/host's "gpus": how many devices are offered and held (the list
 * itself is GET /v1/gpus). */
static int host_info_now(void *data, char *buf, size_t len);

/* GET /v1/host is the cheap question operators and monitors ask often: its
 * part is re-read from sysfs at most every few seconds, not per request
 * (GET /v1/gpus always reads afresh). */
static int host_info(void *data, char *buf, size_t len)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static char cached[512];
	static int cached_len = -1;
	static struct timespec at;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&mu);
	if (cached_len < 0 || now.tv_sec - at.tv_sec >= 3) {
		cached_len = host_info_now(data, cached, sizeof(cached));
		at = now;
	}
	int n = cached_len;
	if (n >= 0 && (size_t)n < len)
		memcpy(buf, cached, (size_t)n + 1);
	else if (n >= 0)
		n = -ENOSPC;
	if (n < 0)
		cached_len = -1; /* an error is not kept */
	pthread_mutex_unlock(&mu);
	return n;
}

static int host_info_now(void *data, char *buf, size_t len)
{
	char *all = malloc(1 << 20);
	if (!all)
		return -ENOMEM;
	int n = route_gpus(data, "", all, 1 << 20);
	if (n < 0 || n >= (1 << 20)) {
		free(all);
		return n < 0 ? n : -ENOSPC;
	}
	all[n] = 0;
	json_object *o = json_tokener_parse(all), *gpus, *v;
	free(all);
	int gpu = 0, nvswitch = 0, held = 0;
	if (o && json_object_object_get_ex(o, "gpus", &gpus))
		for (size_t i = 0; i < json_object_array_length(gpus); i++) {
			json_object *g = json_object_array_get_idx(gpus, i);
			const char *kind = json_object_object_get_ex(g, "kind", &v) ? json_object_get_string(v) : "";
			gpu += !strcmp(kind, "gpu");
			nvswitch += !strcmp(kind, "nvswitch");
			held += json_object_object_get_ex(g, "vm", &v) && v != NULL;
		}
	int all_ok = o && json_object_object_get_ex(o, "allow_attach_all", &v) && json_object_get_boolean(v);
	json_object_put(o);
	return snprintf(buf, len, "{\"root\": \"%s\", \"gpus\": %d, \"nvswitches\": %d, \"held\": %d, "
			"\"allow_attach_all\": %s}", root, gpu, nvswitch, held, all_ok ? "true" : "false");
}

static int vm_info(void *data, cvmm_vm *vm, char *buf, size_t len)
{
	(void)data;
	pthread_mutex_lock(&lock);
	int rc = ensure_store() < 0 ? -EIO : gv_vm_json(&store, host->vm_id(vm), buf, len);
	pthread_mutex_unlock(&lock);
	return rc;
}

/* A VM's "host_cpus": the host CPUs its vCPUs are pinned to (vCPU order
 * aside), null when it is not pinned. */
static int vm_pins_info(void *data, cvmm_vm *vm, char *buf, size_t len)
{
	(void)data;
	int rc = -ENOENT;
	pthread_mutex_lock(&lock);
	if (ensure_store() < 0)
		rc = -EIO;
	for (int i = 0; rc == -ENOENT && i < store.n_pins; i++)
		if (!strcmp(store.pins[i].vm, host->vm_id(vm)))
			rc = snprintf(buf, len, "\"%s\"", store.pins[i].cpus);
	pthread_mutex_unlock(&lock);
	if (rc == -ENOENT)
		rc = snprintf(buf, len, "null");
	return rc >= 0 && (size_t)rc >= len ? -ENOSPC : rc;
}

/* ---- start-up: the record against what exists ---- */

static int on_daemon_start(void)
{
	char vms[PATH_MAX];
	struct stat st;
	pthread_mutex_lock(&lock);
	int rc = ensure_store();
	if (rc < 0) {
		pthread_mutex_unlock(&lock);
		return host->error(self, NULL, rc, "%s: %s", store.path[0] ? store.path : "leases",
				   rc == -EINVAL ? "not a gpu-vfio lease file" : strerror(-rc));
	}
	snprintf(vms, sizeof(vms), "%s/vms", host->data_dir(self));
	/* A VM whose folder is gone was removed (or never finished its
	 * define): its leases go, and what is still bound for it goes back. */
	for (int i = 0; i < store.n_leases + store.n_bound + store.n_pins; i++) {
		const char *vm = i < store.n_leases ? store.leases[i].vm
				 : i < store.n_leases + store.n_bound
					 ? store.bound[i - store.n_leases].vm
					 : store.pins[i - store.n_leases - store.n_bound].vm;
		char dir[PATH_MAX + 80], id[64];
		snprintf(dir, sizeof(dir), "%s/%s", vms, vm);
		if (stat(dir, &st) == 0)
			continue;
		snprintf(id, sizeof(id), "%s", vm);
		struct gv_bind_ctx c;
		bind_ctx(&c, id);
		if (gv_restore(&c) < 0)
			host->log(self, CVMM_LOG_WARN, "VM %s (gone): %s", id, c.err);
		gv_store_release_vm(&store, id);
		gv_store_save(&store);
		host->log(self, CVMM_LOG_INFO, "VM %s is gone: its GPU leases are released", id);
		i = -1; /* the arrays changed */
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	int rc;
	CVMM_PLUGIN_DESCRIBE(desc, "gpu-vfio", "0.1.0",
			     "whole GPUs, NVSwitches and their NICs passed through with vfio-pci");
	(void)abi_minor;
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if ((rc = read_config()) < 0)
		return rc;
	static const uint32_t evs[] = {CVMM_EV_DEFINE,	  CVMM_EV_UNDEFINE,     CVMM_EV_PRE_START,
				       CVMM_EV_POST_STOP, CVMM_EV_DAEMON_START, CVMM_EV_PLAN};
	for (size_t i = 0; i < sizeof(evs) / sizeof(*evs); i++)
		if ((rc = host->register_hook(self, evs[i], 50, hook, NULL)) < 0)
			return rc;
	if (CVMM_HOST_HAS(host, register_request_field) &&
	    ((rc = host->register_request_field(self, "gpus", validate, NULL)) < 0 ||
	     (rc = host->register_request_field(self, "topology", validate_topology, NULL)) < 0))
		return rc;
	if (CVMM_HOST_HAS(host, register_info) &&
	    (rc = host->register_info(self, "gpus", host_info, vm_info, NULL)) < 0)
		return rc;
	if (CVMM_HOST_HAS(host, register_route) &&
	    (rc = host->register_route(self, "GET", "gpus", route_gpus, NULL)) < 0)
		return rc;
	if (CVMM_HOST_HAS(host, register_info) &&
	    (rc = host->register_info(self, "host_cpus", NULL, vm_pins_info, NULL)) < 0)
		return rc;
	if (CVMM_HOST_HAS(host, register_check) &&
	    (rc = host->register_check(self, check_items, NULL)) < 0)
		return rc;
	if (!CVMM_HOST_HAS(host, register_request_field))
		host->log(self, CVMM_LOG_WARN,
			  "this cvmmd has no plugin request fields: no VM can ask for GPUs");
	return 0;
}
