/*
 * plan: the guest topology a VM's devices call for, as gv.h describes it.
 * A pure function of what discovery found, the VM's devices and sizes, and
 * which host CPUs are off limits; gpu_vfio.c turns the plan into launch
 * spec entries, leases the pins, and writes the NCCL file.
 *
 * Why the shape is what it is:
 *  - a cell per host node of the VM's devices, so that the guest kernel
 *    and NCCL see each GPU near the CPUs and memory it is near on the host;
 *  - every vCPU on a CPU of its own (1:1), taken from the top of the node's
 *    list down: NVIDIA's HGX guide pins vCPU 0 to CPU 94 and leaves the low
 *    CPUs to the host, and the low CPUs are where hosts keep their own work;
 *  - a guest switch per host switch: GPUDirect RDMA between a GPU and its
 *    NIC goes peer to peer through the switch they share, and the guest
 *    driver decides whether to use it from the tree it sees;
 *  - a cell with no device still gets an (empty) root port: firmware does
 *    not enumerate an expander bus with nothing under it, and the guest
 *    would then not see the cell's bus at all.
 */
#include "gv.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(rc, ...) (snprintf(err, errlen, __VA_ARGS__), (rc))

int gv_topo_parse(const char *json, enum gv_topo *out, char *err, size_t errlen)
{
	struct json_object *o = json_tokener_parse(json ? json : "");
	const char *v = o && json_object_is_type(o, json_type_string) ? json_object_get_string(o)
								       : "";
	int rc = 0;
	if (!strcmp(v, "mirror"))
		*out = GV_TOPO_MIRROR;
	else if (!strcmp(v, "nccl"))
		*out = GV_TOPO_NCCL;
	else if (!strcmp(v, "none"))
		*out = GV_TOPO_NONE;
	else
		rc = ERR(-EINVAL, "topology: must be \"mirror\", \"nccl\" or \"none\"");
	json_object_put(o);
	return rc;
}

void gv_format_cpulist(const int *cpus, int n, char *buf, size_t len)
{
	int *s = malloc(sizeof(int) * (size_t)(n ? n : 1));
	size_t l = 0;
	buf[0] = 0;
	if (!s)
		return;
	memcpy(s, cpus, sizeof(int) * (size_t)n);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
			int t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	for (int i = 0; i < n && l < len;) {
		int j = i;
		while (j + 1 < n && s[j + 1] <= s[j] + 1)
			j++;
		if (s[j] == s[i])
			l += (size_t)snprintf(buf + l, len - l, "%s%d", l ? "," : "", s[i]);
		else
			l += (size_t)snprintf(buf + l, len - l, "%s%d-%d", l ? "," : "", s[i], s[j]);
		i = j + 1;
	}
	free(s);
}

static int in_list(const int *l, int n, int v)
{
	for (int i = 0; i < n; i++)
		if (l[i] == v)
			return 1;
	return 0;
}

static const struct gv_node *node_of(const struct gv_host *h, int id)
{
	for (int i = 0; i < h->n_nodes; i++)
		if (h->nodes[i].id == id)
			return &h->nodes[i];
	return NULL;
}

/* The node a device counts for: its own, or the only node a host has
 * (desktops report -1 and have one). */
static int dev_node(const struct gv_host *h, const struct gv_dev *d)
{
	if (d && d->numa_node >= 0)
		return d->numa_node;
	return h->n_nodes == 1 ? h->nodes[0].id : -1;
}

/* "0000:b2:00.0" and "0000:b2:00.1" are functions of one slot. */
static int same_slot(const char *a, const char *b)
{
	return !strncmp(a, b, 10);
}

static int cells(const struct gv_plan_in *in, struct gv_plan *p, char *err, size_t errlen)
{
	int nodes[GV_MAX_NODES], n = 0;
	for (int i = 0; i < in->n; i++) {
		int node = dev_node(in->h, gv_find(in->h, in->slots[i]));
		if (node >= 0 && !in_list(nodes, n, node) && n < GV_MAX_NODES)
			nodes[n++] = node;
	}
	if (!n) /* no device says where: the host's nodes, as many as vCPUs allow */
		for (int i = 0; i < in->h->n_nodes && n < (int)in->vcpus; i++)
			if (in->h->nodes[i].n_cpus)
				nodes[n++] = in->h->nodes[i].id;
	if (!n)
		return ERR(-EINVAL, "topology: the host reports no NUMA node with CPUs "
				    "(sys/devices/system/node)");
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && nodes[j - 1] > nodes[j]; j--) {
			int t = nodes[j];
			nodes[j] = nodes[j - 1];
			nodes[j - 1] = t;
		}
	if (in->vcpus % (uint32_t)n)
		return ERR(-EINVAL,
			   "topology: %u vCPUs cannot be split evenly over the %d host NUMA nodes "
			   "the VM's devices sit on (ask for a multiple of %d)",
			   in->vcpus, n, n);
	if (in->vcpus > GV_MAX_VCPUS)
		return ERR(-EINVAL, "topology: at most %d vCPUs can be pinned", GV_MAX_VCPUS);
	uint64_t per = in->memory_mb / (uint64_t)n;
	if (in->hugepage_kb && ((per * 1024) % in->hugepage_kb ||
				((in->memory_mb - per * (uint64_t)(n - 1)) * 1024) % in->hugepage_kb))
		return ERR(-EINVAL,
			   "topology: each of the %d cells' memory (%llu MiB) must be a whole number "
			   "of %u KiB huge pages",
			   n, (unsigned long long)per, in->hugepage_kb);
	p->n_cells = n;
	p->sockets = (uint32_t)n;
	p->cores = in->vcpus / (uint32_t)n;
	p->threads = 1;
	for (int i = 0; i < n; i++) {
		struct gv_plan_cell *c = &p->cells[i];
		c->host_node = nodes[i];
		c->first_vcpu = p->cores * (uint32_t)i;
		c->n_vcpus = p->cores;
		c->memory_mb = i == n - 1 ? in->memory_mb - per * (uint64_t)(n - 1) : per;
	}
	return 0;
}

static int pins(const struct gv_plan_in *in, struct gv_plan *p, char *err, size_t errlen)
{
	int emu[GV_MAX_VCPUS], n_emu = 0;
	for (int c = 0; c < p->n_cells; c++) {
		const struct gv_plan_cell *cell = &p->cells[c];
		const struct gv_node *nd = node_of(in->h, cell->host_node);
		int got = 0, reserved = 0, taken = 0;
		if (!nd)
			return ERR(-EINVAL, "topology: host node %d has no CPU list", cell->host_node);
		/* the node's list is ascending: walk it from the top */
		for (int k = nd->n_cpus - 1; k >= 0; k--) {
			int cpu = nd->cpus[k];
			if (in_list(in->reserved, in->n_reserved, cpu)) {
				reserved++;
				if (n_emu < GV_MAX_VCPUS)
					emu[n_emu++] = cpu;
				continue;
			}
			if (in_list(in->taken, in->n_taken, cpu)) {
				taken++;
				continue;
			}
			if ((uint32_t)got < cell->n_vcpus)
				p->pins[cell->first_vcpu + (uint32_t)got++] = cpu;
		}
		if ((uint32_t)got < cell->n_vcpus)
			return ERR(-EBUSY,
				   "topology: host node %d has %d free CPUs for the %u vCPUs of cell "
				   "%d (%d CPUs, %d kept for the host by cvm.host_cpus, %d pinned to "
				   "other VMs)",
				   cell->host_node, got, cell->n_vcpus, c, nd->n_cpus, reserved, taken);
	}
	p->n_pins = (int)in->vcpus;
	/* QEMU's own threads (I/O, the main loop) run on the host's CPUs of
	 * the same nodes, never on a vCPU's */
	gv_format_cpulist(emu, n_emu, p->emulator_cpus, sizeof(p->emulator_cpus));
	if (strlen(p->emulator_cpus) >= sizeof(p->emulator_cpus) - 1)
		p->emulator_cpus[0] = 0; /* too long to say: anywhere */
	return 0;
}

static struct cvmm_spec_pcie *add_pcie(struct gv_plan *p, uint32_t kind, const char *parent,
				       const char *fmt, int a, int b)
{
	struct cvmm_spec_pcie *e = &p->pcie[p->n_pcie++];
	memset(e, 0, sizeof(*e));
	e->struct_size = sizeof(*e);
	e->kind = kind;
	e->numa_cell = -1;
	snprintf(e->id, sizeof(e->id), fmt, a, b);
	snprintf(e->parent, sizeof(e->parent), "%s", parent);
	return e;
}

/* A unit: the functions of one host slot, which become one guest slot. */
struct unit {
	int first, n; /* indexes into in->slots */
	int cell;
	const char *sw; /* the host switch above it, "" none */
};

static int cell_of(const struct gv_plan *p, int node)
{
	for (int c = 0; c < p->n_cells; c++)
		if (p->cells[c].host_node == node)
			return c;
	return 0;
}

static void name_devs(const struct gv_plan_in *in, struct gv_plan *p)
{
	int counts[5] = {0};
	static const char *const names[] = {"hostdev", "gpu", "nvswitch", "nic", "hostdev"};
	for (int i = 0; i < in->n; i++) {
		struct cvmm_spec_hostdev *d = &p->devs[i];
		const struct gv_dev *g = gv_find(in->h, in->slots[i]);
		memset(d, 0, sizeof(*d));
		d->struct_size = sizeof(*d);
		snprintf(d->host, sizeof(d->host), "%s", in->slots[i]);
		int lead = i;
		while (lead > 0 && same_slot(in->slots[lead - 1], in->slots[i]))
			lead--;
		char lead_id[32];
		if (lead == i) {
			int k = g ? (int)g->kind : 0;
			snprintf(d->id, sizeof(d->id), "%s%d", names[k], counts[k]++);
			memcpy(lead_id, d->id, sizeof(lead_id));
		} else {
			memcpy(lead_id, p->devs[lead].id, sizeof(lead_id));
			snprintf(d->id, sizeof(d->id), "%.20s-fn%d", lead_id, i - lead);
		}
		if (lead != i || (i + 1 < in->n && same_slot(in->slots[i + 1], in->slots[i])))
			snprintf(d->group, sizeof(d->group), "%s", lead_id);
		d->function = (uint32_t)(i - lead);
		/* an NVSwitch's option ROM is of no use to a guest and only slows
		 * its firmware down */
		if (g && g->kind == GV_NVSWITCH)
			d->flags |= CVMM_HOSTDEV_ROM_OFF;
	}
	p->n_devs = in->n;
}

static void place(const struct gv_plan_in *in, struct gv_plan *p, const struct unit *u,
		  const char *bus)
{
	for (int k = 0; k < u->n; k++)
		snprintf(p->devs[u->first + k].bus, sizeof(p->devs[0].bus), "%s", bus);
}

static int tree(const struct gv_plan_in *in, struct gv_plan *p, char *err, size_t errlen)
{
	struct unit units[GV_MAX_SEL];
	int n_units = 0, done[GV_MAX_SEL] = {0}, rp = 0;
	for (int i = 0; i < in->n; i++) {
		if (i && same_slot(in->slots[i - 1], in->slots[i])) {
			units[n_units - 1].n++;
			continue;
		}
		const struct gv_dev *d = gv_find(in->h, in->slots[i]);
		units[n_units++] = (struct unit){i, 1, cell_of(p, dev_node(in->h, d)),
						 d ? d->sw : ""};
	}
	if (p->mode == GV_TOPO_NCCL) { /* flat: a root port each, on the root complex */
		for (int u = 0; u < n_units; u++) {
			struct cvmm_spec_pcie *e = add_pcie(p, CVMM_PCIE_ROOT_PORT, "", "rp%d", rp++, 0);
			place(in, p, &units[u], e->id);
		}
		return 0;
	}
	uint32_t bus = 0x20;
	for (int c = 0; c < p->n_cells; c++) {
		struct cvmm_spec_pcie *x = add_pcie(p, CVMM_PCIE_EXPANDER, "", "pxb%d", c, 0);
		x->numa_cell = c;
		x->bus_nr = bus;
		char xid[32];
		snprintf(xid, sizeof(xid), "%s", x->id);
		int before = p->n_pcie, any = 0;
		for (int u = 0; u < n_units; u++) {
			if (done[u] || units[u].cell != c)
				continue;
			any = 1;
			int k = rp++;
			struct cvmm_spec_pcie *r = add_pcie(p, CVMM_PCIE_ROOT_PORT, xid, "rp%d", k, 0);
			char rid[32];
			snprintf(rid, sizeof(rid), "%s", r->id);
			done[u] = 1;
			if (!units[u].sw[0]) {
				place(in, p, &units[u], rid);
				continue;
			}
			/* the guest switch of this host switch: every unit of the
			 * VM behind it gets a downstream port, in slot order */
			struct cvmm_spec_pcie *up = add_pcie(p, CVMM_PCIE_SWITCH_UP, rid, "sw%d", k, 0);
			char uid[32];
			snprintf(uid, sizeof(uid), "%s", up->id);
			int port = 0;
			for (int v = u; v < n_units; v++) {
				if (v != u && (done[v] || units[v].cell != c ||
					       strcmp(units[v].sw, units[u].sw)))
					continue;
				done[v] = 1;
				struct cvmm_spec_pcie *dn =
					add_pcie(p, CVMM_PCIE_SWITCH_DOWN, uid, "sw%dp%d", k, port++);
				place(in, p, &units[v], dn->id);
			}
		}
		if (!any)
			add_pcie(p, CVMM_PCIE_ROOT_PORT, xid, "rp%d", rp++, 0);
		/* the expander's own bus, one per port below it, and room to
		 * spare; the next expander starts at the next multiple of 0x20 */
		uint32_t need = 1 + (uint32_t)(p->n_pcie - before);
		bus += (need + 0x1f) / 0x20 * 0x20;
		if (bus > 0x100)
			return ERR(-E2BIG, "topology: the guest's PCIe tree needs more than 256 buses");
	}
	return 0;
}

int gv_plan(const struct gv_plan_in *in, struct gv_plan *p, char *err, size_t errlen)
{
	int rc;
	memset(p, 0, sizeof(*p));
	p->mode = in->mode;
	p->hugepage_kb = in->hugepage_kb;
	if (in->mode == GV_TOPO_NONE)
		return 0;
	if (in->mode == GV_TOPO_NCCL && !in->n)
		return ERR(-EINVAL, "topology: \"nccl\" describes the VM's devices, and it has none "
				    "(ask for gpus, or use \"mirror\")");
	if (in->n > GV_MAX_SEL)
		return ERR(-E2BIG, "topology: more than %d devices", GV_MAX_SEL);
	if ((rc = cells(in, p, err, errlen)) < 0 || (rc = pins(in, p, err, errlen)) < 0)
		return rc;
	name_devs(in, p);
	return tree(in, p, err, errlen);
}

/* ---- NCCL's topology file ---- */

/* NCCL's CPU affinity mask: 32-bit hex words, most significant first. */
static void affinity(uint32_t first, uint32_t n, char *buf, size_t len)
{
	uint32_t last = first + n - 1, words = last / 32 + 1;
	size_t l = 0;
	buf[0] = 0;
	for (int w = (int)words - 1; w >= 0 && l < len; w--) {
		uint32_t m = 0;
		for (uint32_t b = 0; b < 32; b++) {
			uint32_t cpu = (uint32_t)w * 32 + b;
			if (cpu >= first && cpu <= last)
				m |= 1u << b;
		}
		l += (size_t)snprintf(buf + l, len - l, "%s%08x", l ? "," : "", m);
	}
}

static size_t link_attrs(const struct gv_dev *d, char *buf, size_t len)
{
	size_t l = 0;
	buf[0] = 0;
	if (d && d->link_speed[0])
		l += (size_t)snprintf(buf + l, len - l, " link_speed=\"%s\"", d->link_speed);
	if (d && d->link_width)
		l += (size_t)snprintf(buf + l, len - l, " link_width=\"%d\"", d->link_width);
	return l;
}

/* The guest bus of root port rp<k> in a flat tree: the root ports are the
 * only bridges on the root complex and are created in order, so the
 * guest's depth-first numbering gives them buses 1, 2, ... */
static int guest_bus(const struct gv_plan *p, const char *port)
{
	int k = 0;
	for (int i = 0; i < p->n_pcie; i++)
		if (p->pcie[i].kind == CVMM_PCIE_ROOT_PORT) {
			k++;
			if (!strcmp(p->pcie[i].id, port))
				return k;
		}
	return 0;
}

#define OUT(...)                                                                                   \
	do {                                                                                       \
		l += (size_t)snprintf(buf + l, l < len ? len - l : 0, __VA_ARGS__);                \
	} while (0)

int gv_nccl_xml(const struct gv_plan_in *in, const struct gv_plan *p, char *buf, size_t len)
{
	size_t l = 0;
	char attrs[96], mask[160];
	int sw_n = 0;
	OUT("<system version=\"1\">\n");
	for (int c = 0; c < p->n_cells; c++) {
		affinity(p->cells[c].first_vcpu, p->cells[c].n_vcpus, mask, sizeof(mask));
		OUT("  <cpu numaid=\"%d\" affinity=\"%s\" arch=\"x86_64\">\n", c, mask);
		int seen[GV_MAX_SEL] = {0};
		for (int i = 0; i < p->n_devs; i++) {
			const struct gv_dev *d = gv_find(in->h, p->devs[i].host);
			if (seen[i] || cell_of(p, dev_node(in->h, d)) != c)
				continue;
			const char *sw = d ? d->sw : "";
			/* a host switch becomes a <pci> bridge of made-up id
			 * holding the devices behind it */
			if (sw[0]) {
				const struct gv_dev *up = gv_find(in->h, sw);
				link_attrs(up, attrs, sizeof(attrs));
				OUT("    <pci busid=\"ffff:ff:%02x.0\" class=\"0x060400\"%s>\n", sw_n++,
				    attrs);
			}
			for (int k = i; k < p->n_devs; k++) {
				const struct gv_dev *e = gv_find(in->h, p->devs[k].host);
				if (seen[k] || cell_of(p, dev_node(in->h, e)) != c ||
				    strcmp(e ? e->sw : "", sw) || (!sw[0] && k != i))
					continue;
				seen[k] = 1;
				link_attrs(e, attrs, sizeof(attrs));
				OUT("%s<pci busid=\"0000:%02x:00.%u\" class=\"0x%06x\" vendor=\"0x%04x\" "
				    "device=\"0x%04x\"%s/>\n",
				    sw[0] ? "      " : "    ", guest_bus(p, p->devs[k].bus),
				    p->devs[k].function, e ? e->class_code : 0, e ? e->vendor : 0,
				    e ? e->device : 0, attrs);
			}
			if (sw[0])
				OUT("    </pci>\n");
		}
		OUT("  </cpu>\n");
	}
	OUT("</system>\n");
	return l < len ? (int)l : -ENOSPC;
}
