/*
 * test-topology: adds a CPU topology, NUMA cells, pins and a PCIe hierarchy
 * to the launch spec at PRE_START through the ABI 1.2 builders, for VMs whose
 * name starts with a prefix, so the integration tests can boot a VM with them
 * before a plugin that computes them (gpu-vfio) exists. Section
 * plugin.test-topology:
 *
 *   name_prefix   = "topo";                  # required
 *   sockets       = 2;                       # cores = vCPUs / sockets, 1 thread
 *   cells         = ["0@0", "1@0"];          # guest CPUs[@host node]; the VM's
 *                                            # memory split evenly
 *   pins          = ["0=1", "1=0"];          # vCPU=host CPU list
 *   emulator_cpus = "0";
 *   pcie          = ["expander:pxb0::0:32",  # kind:id:parent[:cell:bus_nr]
 *                    "root-port:rp0:pxb0", "switch-up:sw0:rp0",
 *                    "switch-down:sw0d0:sw0"];
 *
 * Every setting but name_prefix is optional. A builder's refusal fails the
 * start with the element named.
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRIORITY 100

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static const char *prefix;

/* Read at init: the host refuses keys a plugin does not read there. */
#define MAX_ITEMS 64
static struct {
	int64_t sockets;
	const char *emulator_cpus;
	const char *cells[MAX_ITEMS], *pins[MAX_ITEMS], *pcie[MAX_ITEMS];
	int n_cells, n_pins, n_pcie;
} cfg;

static int read_list(const char *key, const char **out, int *n)
{
	int c = host->cfg_count(self, key);
	if (c < 0)
		return c == -ENOENT ? 0 : c;
	if (c > MAX_ITEMS)
		return host->error(self, NULL, -E2BIG, "plugin.test-topology.%s: at most %d", key,
				   MAX_ITEMS);
	for (int i = 0; i < c; i++) {
		int r = host->cfg_string_at(self, key, (uint32_t)i, &out[i]);
		if (r < 0)
			return r;
	}
	*n = c;
	return 0;
}

static int read_config(void)
{
	int r = host->cfg_string(self, "name_prefix", &prefix);
	if (r < 0)
		return r == -ENOENT ? host->error(self, NULL, -EINVAL,
						  "plugin.test-topology.name_prefix: required")
				    : r;
	if ((r = host->cfg_int(self, "sockets", &cfg.sockets)) < 0 && r != -ENOENT)
		return r;
	if ((r = host->cfg_string(self, "emulator_cpus", &cfg.emulator_cpus)) < 0 && r != -ENOENT)
		return r;
	if ((r = read_list("cells", cfg.cells, &cfg.n_cells)) < 0 ||
	    (r = read_list("pins", cfg.pins, &cfg.n_pins)) < 0 ||
	    (r = read_list("pcie", cfg.pcie, &cfg.n_pcie)) < 0)
		return r;
	return 0;
}

static int copy(char *dst, size_t n, const char *src, size_t len)
{
	if (len >= n)
		return -ENAMETOOLONG;
	memcpy(dst, src, len);
	dst[len] = 0;
	return 0;
}

static int add_cells(cvmm_vm *vm, cvmm_spec *spec)
{
	int n = cfg.n_cells, r;
	for (int i = 0; i < n; i++) {
		const char *v = cfg.cells[i];
		struct cvmm_spec_numa c = {.struct_size = sizeof(c), .id = (uint32_t)i,
					   .host_node = -1};
		const char *at = strchr(v, '@');
		if (copy(c.cpus, sizeof(c.cpus), v, at ? (size_t)(at - v) : strlen(v)) < 0)
			return host->error(self, vm, -EINVAL, "cells[%d]: too long", i);
		if (at)
			c.host_node = atoi(at + 1);
		c.memory_mb = host->vm_memory_mb(vm) / (uint64_t)n;
		if (i == n - 1)
			c.memory_mb = host->vm_memory_mb(vm) - c.memory_mb * (uint64_t)(n - 1);
		if ((r = host->spec_add_numa(spec, &c)) < 0)
			return host->error(self, vm, r, "cells[%d] '%s': refused: %s", i, v,
					   strerror(-r));
	}
	return 0;
}

static int add_pins(cvmm_vm *vm, cvmm_spec *spec)
{
	int r;
	for (int i = 0; i < cfg.n_pins; i++) {
		const char *v = cfg.pins[i];
		struct cvmm_spec_pin p = {.struct_size = sizeof(p)};
		const char *eq = strchr(v, '=');
		if (!eq || copy(p.host_cpus, sizeof(p.host_cpus), eq + 1, strlen(eq + 1)) < 0)
			return host->error(self, vm, -EINVAL, "pins[%d] '%s': not VCPU=CPUS", i, v);
		p.vcpu = (uint32_t)atoi(v);
		if ((r = host->spec_add_pin(spec, &p)) < 0)
			return host->error(self, vm, r, "pins[%d] '%s': refused: %s", i, v,
					   strerror(-r));
	}
	if (cfg.emulator_cpus && (r = host->spec_set_emulator_cpus(spec, cfg.emulator_cpus)) < 0)
		return host->error(self, vm, r, "emulator_cpus '%s': refused", cfg.emulator_cpus);
	return 0;
}

static int add_pcie(cvmm_vm *vm, cvmm_spec *spec)
{
	static const char *const kinds[] = {NULL, "expander", "root-port", "switch-up",
					    "switch-down"};
	int r;
	for (int i = 0; i < cfg.n_pcie; i++) {
		const char *v = cfg.pcie[i];
		char buf[160], *f[5] = {0};
		snprintf(buf, sizeof(buf), "%s", v);
		/* strsep, not strtok: an empty parent is a field. */
		char *p = buf;
		for (int k = 0; k < 5 && p; k++)
			f[k] = strsep(&p, ":");
		struct cvmm_spec_pcie e = {.struct_size = sizeof(e), .numa_cell = -1};
		for (uint32_t k = 1; k < 5; k++)
			if (f[0] && !strcmp(f[0], kinds[k]))
				e.kind = k;
		if (!e.kind || !f[1] || copy(e.id, sizeof(e.id), f[1], strlen(f[1])) < 0 ||
		    (f[2] && copy(e.parent, sizeof(e.parent), f[2], strlen(f[2])) < 0))
			return host->error(self, vm, -EINVAL, "pcie[%d] '%s': not KIND:ID:PARENT[:CELL:BUS_NR]",
					   i, v);
		if (f[3] && *f[3])
			e.numa_cell = atoi(f[3]);
		if (f[4])
			e.bus_nr = (uint32_t)atoi(f[4]);
		if ((r = host->spec_add_pcie(spec, &e)) < 0)
			return host->error(self, vm, r, "pcie[%d] '%s': refused: %s", i, v,
					   strerror(-r));
	}
	return 0;
}

static int on_pre_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	const char *name = host->vm_name(vm);
	if (strncmp(name, prefix, strlen(prefix)))
		return 0;
	int64_t sockets = cfg.sockets;
	int r;
	if (sockets > 0) {
		uint32_t vcpus = host->vm_vcpus(vm);
		if ((r = host->spec_set_topology(spec, (uint32_t)sockets, vcpus / (uint32_t)sockets,
						 1)) < 0)
			return host->error(self, vm, r, "%lld sockets for %u vCPUs: refused",
					   (long long)sockets, vcpus);
	}
	if ((r = add_cells(vm, spec)) < 0 || (r = add_pins(vm, spec)) < 0 ||
	    (r = add_pcie(vm, spec)) < 0)
		return r;
	host->log(self, CVMM_LOG_INFO, "VM '%s': topology added", name);
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "test-topology", "0.1.0",
			     "adds NUMA cells, pins and a PCIe hierarchy from its config (tests)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(host, spec_add_pcie))
		return host->error(self, NULL, -ENOTSUP, "the host lacks the ABI 1.2 spec builders");
	int r = read_config();
	if (r < 0)
		return r;
	return host->register_hook(self, CVMM_EV_PRE_START, PRIORITY, on_pre_start, NULL);
}
