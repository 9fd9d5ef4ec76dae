/*
 * spec_check: see spec_check.h. Messages name the element by its id, as the
 * user (or the plugin author) wrote it.
 */
#include "spec_check.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_num(const char **p, unsigned long *out)
{
	if (!isdigit((unsigned char)**p))
		return -EINVAL;
	char *end;
	errno = 0;
	*out = strtoul(*p, &end, 10);
	if (errno || *out >= CPU_SETSIZE)
		return -EINVAL;
	*p = end;
	return 0;
}

int cp_cpulist_parse(const char *text, cpu_set_t *set)
{
	CPU_ZERO(set);
	const char *p = text;
	if (!*p)
		return 0;
	for (;;) {
		int neg = *p == '^';
		unsigned long a, b;
		if (neg)
			p++;
		if (parse_num(&p, &a) < 0)
			return -EINVAL;
		b = a;
		if (*p == '-' && !neg) {
			p++;
			if (parse_num(&p, &b) < 0 || b < a)
				return -EINVAL;
		}
		for (unsigned long c = a; c <= b; c++) {
			if (neg)
				CPU_CLR(c, set);
			else
				CPU_SET(c, set);
		}
		if (!*p)
			break;
		if (*p++ != ',' || !*p)
			return -EINVAL;
	}
	return CPU_COUNT(set);
}

void cp_cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t o = 0;
	if (len)
		buf[0] = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		int n = e > c ? snprintf(buf + o, len - o, "%s%d-%d", o ? "," : "", c, e)
			      : snprintf(buf + o, len - o, "%s%d", o ? "," : "", c);
		if (n < 0 || (size_t)n >= len - o)
			return; /* truncated: callers size buf for the worst case they allow */
		o += (size_t)n;
		c = e;
	}
}

int cp_spec_has_12(const struct cvmm_launch_spec *s)
{
	return s->struct_size >= offsetof(struct cvmm_launch_spec, pcie) + sizeof(s->pcie);
}

uint32_t cp_spec_firmware(const struct cvmm_launch_spec *s)
{
	return s->struct_size >= offsetof(struct cvmm_launch_spec, firmware_vars) +
					 sizeof(s->firmware_vars)
		   ? s->firmware
		   : CVMM_FW_NONE;
}

const char *cp_nic_bus(const struct cvmm_spec_nic *n)
{
	return n->struct_size >= offsetof(struct cvmm_spec_nic, bus) + sizeof(n->bus) ? n->bus : "";
}

const struct cvmm_spec_pcie *cp_pcie_find(const struct cvmm_launch_spec *s, const char *id,
					  uint32_t *index)
{
	if (!cp_spec_has_12(s) || !id[0])
		return NULL;
	for (uint32_t i = 0; i < s->n_pcie; i++)
		if (!strcmp(s->pcie[i]->id, id)) {
			if (index)
				*index = i;
			return s->pcie[i];
		}
	return NULL;
}

int cp_id_ok(const char *id)
{
	if (!isalpha((unsigned char)id[0]))
		return 0;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return 1;
}

int cp_pci_addr_ok(const char *a)
{
	static const char pat[] = "xxxx:xx:xx.f";
	if (strlen(a) != sizeof(pat) - 1)
		return 0;
	for (size_t i = 0; pat[i]; i++) {
		char c = a[i];
		if (pat[i] == 'x' && !(isdigit((unsigned char)c) || (c >= 'a' && c <= 'f')))
			return 0;
		if (pat[i] == 'f' && !(c >= '0' && c <= '7'))
			return 0;
		if ((pat[i] == ':' || pat[i] == '.') && c != pat[i])
			return 0;
	}
	/* Slots go up to 0x1f. */
	return strtoul(a + 8, NULL, 16) <= 0x1f;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *kind_name(uint32_t k)
{
	switch (k) {
	case CVMM_PCIE_EXPANDER:
		return "expander bus";
	case CVMM_PCIE_ROOT_PORT:
		return "root port";
	case CVMM_PCIE_SWITCH_UP:
		return "switch upstream port";
	case CVMM_PCIE_SWITCH_DOWN:
		return "switch downstream port";
	}
	return "unknown kind";
}

static int is_port(const struct cvmm_spec_pcie *e)
{
	return e && (e->kind == CVMM_PCIE_ROOT_PORT || e->kind == CVMM_PCIE_SWITCH_DOWN);
}

static int chassis_taken(const struct cvmm_launch_spec *s, const uint32_t *autos, uint32_t upto,
			 uint32_t c)
{
	/* Explicit numbers anywhere, and automatic ones given before upto. */
	for (uint32_t j = 0; j < s->n_pcie; j++)
		if (is_port(s->pcie[j]) && (s->pcie[j]->chassis == c || (j < upto && autos[j] == c)))
			return 1;
	return 0;
}

uint32_t cp_pcie_chassis(const struct cvmm_launch_spec *s, uint32_t i)
{
	if (!is_port(s->pcie[i]))
		return 0;
	if (s->pcie[i]->chassis)
		return s->pcie[i]->chassis;
	uint32_t *autos = calloc(i + 1, sizeof(*autos)), c = 0;
	if (!autos)
		abort();
	for (uint32_t j = 0; j <= i; j++) {
		if (!is_port(s->pcie[j]) || s->pcie[j]->chassis)
			continue;
		c = 1;
		while (chassis_taken(s, autos, j, c))
			c++;
		autos[j] = c;
	}
	free(autos);
	return c;
}

uint32_t cp_pcie_port(const struct cvmm_launch_spec *s, uint32_t i)
{
	const struct cvmm_spec_pcie *e = s->pcie[i];
	if (!is_port(e))
		return 0;
	if (e->port)
		return e->port;
	uint32_t k = 0;
	for (uint32_t j = 0; j < i; j++)
		k += is_port(s->pcie[j]) && !strcmp(s->pcie[j]->parent, e->parent);
	return k;
}

/* Every id in the spec, to find duplicates: a QEMU device id and a libvirt
 * alias ("ua-" + id) share one namespace. */
static int ids_unique(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	size_t n = s->n_disks + s->n_nics + s->n_hostdevs + s->n_pcie, k = 0;
	const char **ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		abort();
	for (uint32_t i = 0; i < s->n_disks; i++)
		ids[k++] = s->disks[i]->id;
	for (uint32_t i = 0; i < s->n_nics; i++)
		ids[k++] = s->nics[i]->id;
	for (uint32_t i = 0; i < s->n_hostdevs; i++)
		ids[k++] = s->hostdevs[i]->id;
	for (uint32_t i = 0; i < s->n_pcie; i++)
		ids[k++] = s->pcie[i]->id;
	int r = 0;
	for (size_t i = 0; i < k && !r; i++)
		for (size_t j = i + 1; j < k && !r; j++)
			if (ids[i][0] && !strcmp(ids[i], ids[j]))
				r = fail(err, errlen, "id '%s' is used twice in the spec", ids[i]);
	free(ids);
	return r;
}

static int check_topology(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	uint32_t vcpus = s->vcpus ? s->vcpus : 1;
	if (!s->sockets && !s->cores && !s->threads)
		return 0;
	if (!s->sockets || !s->cores || !s->threads)
		return fail(err, errlen, "topology: sockets, cores and threads must all be set");
	if ((uint64_t)s->sockets * s->cores * s->threads != vcpus)
		return fail(err, errlen,
			    "topology: %u sockets x %u cores x %u threads is %llu vCPUs, not %u",
			    s->sockets, s->cores, s->threads,
			    (unsigned long long)s->sockets * s->cores * s->threads, vcpus);
	return 0;
}

static int check_numa(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	uint32_t vcpus = s->vcpus ? s->vcpus : 1;
	uint64_t mem = 0;
	cpu_set_t all, cell;
	CPU_ZERO(&all);
	if (!s->n_numa)
		return 0;
	for (uint32_t i = 0; i < s->n_numa; i++) {
		const struct cvmm_spec_numa *c = s->numa[i];
		if (c->id != i)
			return fail(err, errlen, "NUMA cell %u: cells must be numbered 0..%u in order",
				    c->id, s->n_numa - 1);
		int n = cp_cpulist_parse(c->cpus, &cell);
		if (n <= 0)
			return fail(err, errlen, "NUMA cell %u: cpus '%s' is not a CPU list", i,
				    c->cpus);
		for (uint32_t v = vcpus; v < CPU_SETSIZE; v++)
			if (CPU_ISSET(v, &cell))
				return fail(err, errlen, "NUMA cell %u: vCPU %u does not exist (%u vCPUs)",
					    i, v, vcpus);
		cpu_set_t both;
		CPU_AND(&both, &all, &cell);
		if (CPU_COUNT(&both)) {
			char l[64];
			cp_cpulist_format(&both, l, sizeof(l));
			return fail(err, errlen, "NUMA cell %u: vCPUs %s are in another cell too", i,
				    l);
		}
		CPU_OR(&all, &all, &cell);
		if (!c->memory_mb)
			return fail(err, errlen, "NUMA cell %u: memory_mb must be set", i);
		if (c->host_node < -1)
			return fail(err, errlen, "NUMA cell %u: host_node %d is not a node", i,
				    c->host_node);
		if (c->hugepage_kb && (c->hugepage_kb < 4 || (c->hugepage_kb & (c->hugepage_kb - 1))))
			return fail(err, errlen, "NUMA cell %u: hugepage_kb %u is not a page size",
				    i, c->hugepage_kb);
		if (c->hugepage_kb && (c->memory_mb * 1024) % c->hugepage_kb)
			return fail(err, errlen,
				    "NUMA cell %u: %llu MiB is not a whole number of %u KiB pages", i,
				    (unsigned long long)c->memory_mb, c->hugepage_kb);
		mem += c->memory_mb;
	}
	if ((uint32_t)CPU_COUNT(&all) != vcpus) {
		cpu_set_t missing;
		CPU_ZERO(&missing);
		for (uint32_t v = 0; v < vcpus && v < CPU_SETSIZE; v++)
			if (!CPU_ISSET(v, &all))
				CPU_SET(v, &missing);
		char l[128];
		cp_cpulist_format(&missing, l, sizeof(l));
		return fail(err, errlen, "NUMA: vCPUs %s are in no cell", l);
	}
	uint64_t want = s->memory_mb ? s->memory_mb : 256;
	if (mem != want)
		return fail(err, errlen, "NUMA: the cells hold %llu MiB, the VM %llu MiB",
			    (unsigned long long)mem, (unsigned long long)want);
	return 0;
}

static int check_pins(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	uint32_t vcpus = s->vcpus ? s->vcpus : 1;
	cpu_set_t seen, set;
	CPU_ZERO(&seen);
	for (uint32_t i = 0; i < s->n_pins; i++) {
		const struct cvmm_spec_pin *p = s->pins[i];
		if (p->vcpu >= vcpus)
			return fail(err, errlen, "pin: vCPU %u does not exist (%u vCPUs)", p->vcpu,
				    vcpus);
		if (CPU_ISSET(p->vcpu, &seen))
			return fail(err, errlen, "pin: vCPU %u is pinned twice", p->vcpu);
		CPU_SET(p->vcpu, &seen);
		if (cp_cpulist_parse(p->host_cpus, &set) <= 0)
			return fail(err, errlen, "pin: vCPU %u: host_cpus '%s' is not a CPU list",
				    p->vcpu, p->host_cpus);
	}
	if (s->emulator_cpus[0] && cp_cpulist_parse(s->emulator_cpus, &set) <= 0)
		return fail(err, errlen, "emulator_cpus '%s' is not a CPU list", s->emulator_cpus);
	return 0;
}

/* What sits directly under port i: counts devices (a group once). */
static int port_users(const struct cvmm_launch_spec *s, const char *port)
{
	int n = 0;
	for (uint32_t i = 0; i < s->n_pcie; i++)
		n += !strcmp(s->pcie[i]->parent, port);
	for (uint32_t i = 0; i < s->n_nics; i++)
		n += !strcmp(cp_nic_bus(s->nics[i]), port);
	for (uint32_t i = 0; i < s->n_hostdevs; i++) {
		const struct cvmm_spec_hostdev *h = s->hostdevs[i];
		if (strcmp(h->bus, port))
			continue;
		/* A group counts at its first member only. */
		int first = 1;
		for (uint32_t j = 0; j < i && h->group[0]; j++)
			if (!strcmp(s->hostdevs[j]->group, h->group))
				first = 0;
		n += first;
	}
	return n;
}

static int check_pcie(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	const char *machine = s->machine[0] ? s->machine : "q35";
	if (s->n_pcie && !strstr(machine, "q35"))
		return fail(err, errlen, "a PCIe hierarchy needs a q35 machine, not '%s'", machine);
	for (uint32_t i = 0; i < s->n_pcie; i++) {
		const struct cvmm_spec_pcie *e = s->pcie[i];
		if (e->kind < CVMM_PCIE_EXPANDER || e->kind > CVMM_PCIE_SWITCH_DOWN)
			return fail(err, errlen, "PCIe element '%s': kind %u is unknown", e->id,
				    e->kind);
		if (!cp_id_ok(e->id))
			return fail(err, errlen,
				    "PCIe element id '%s' must be a letter, then letters, digits, '_' "
				    "or '-'",
				    e->id);
		uint32_t pi = 0;
		const struct cvmm_spec_pcie *p = cp_pcie_find(s, e->parent, &pi);
		if (e->parent[0] && (!p || pi >= i))
			return fail(err, errlen, "PCIe %s '%s': parent '%s' is not defined before it",
				    kind_name(e->kind), e->id, e->parent);
		const char *want = NULL;
		switch (e->kind) {
		case CVMM_PCIE_EXPANDER:
			if (p)
				want = "the root complex (parent \"\")";
			if (e->numa_cell >= 0 && (uint32_t)e->numa_cell >= s->n_numa)
				return fail(err, errlen,
					    "PCIe expander bus '%s': NUMA cell %d does not exist", e->id,
					    e->numa_cell);
			if (e->bus_nr < 1 || e->bus_nr > 254)
				return fail(err, errlen,
					    "PCIe expander bus '%s': bus_nr %u is outside 1..254", e->id,
					    e->bus_nr);
			for (uint32_t j = 0; j < i; j++)
				if (s->pcie[j]->kind == CVMM_PCIE_EXPANDER &&
				    s->pcie[j]->bus_nr == e->bus_nr)
					return fail(err, errlen,
						    "PCIe expander bus '%s': bus_nr %u is taken by '%s'",
						    e->id, e->bus_nr, s->pcie[j]->id);
			break;
		case CVMM_PCIE_ROOT_PORT:
			if (p && p->kind != CVMM_PCIE_EXPANDER)
				want = "the root complex or an expander bus";
			break;
		case CVMM_PCIE_SWITCH_UP:
			if (!is_port(p))
				want = "a root port or a switch downstream port";
			break;
		case CVMM_PCIE_SWITCH_DOWN:
			if (!p || p->kind != CVMM_PCIE_SWITCH_UP)
				want = "a switch upstream port";
			break;
		}
		if (want)
			return fail(err, errlen, "PCIe %s '%s': its parent must be %s, not %s%s%s",
				    kind_name(e->kind), e->id, want, p ? kind_name(p->kind) : "the root complex",
				    p ? " " : "", p ? p->id : "");
		if (is_port(e) && port_users(s, e->id) > 1)
			return fail(err, errlen,
				    "PCIe %s '%s': a port holds one device (or one group of functions), "
				    "it has %d",
				    kind_name(e->kind), e->id, port_users(s, e->id));
	}
	/* Root and downstream ports need unique chassis/slot pairs in QEMU: with
	 * explicit chassis numbers, no two may be equal. */
	for (uint32_t i = 0; i < s->n_pcie; i++)
		for (uint32_t j = i + 1; j < s->n_pcie; j++)
			if (is_port(s->pcie[i]) && is_port(s->pcie[j]) && s->pcie[i]->chassis &&
			    s->pcie[i]->chassis == s->pcie[j]->chassis)
				return fail(err, errlen, "PCIe ports '%s' and '%s' have the same chassis %u",
					    s->pcie[i]->id, s->pcie[j]->id, s->pcie[i]->chassis);
	return 0;
}

static int check_bus(const struct cvmm_launch_spec *s, const char *what, const char *id,
		     const char *bus, char *err, size_t errlen)
{
	if (!bus[0])
		return 0;
	const struct cvmm_spec_pcie *p = cp_pcie_find(s, bus, NULL);
	if (!p)
		return fail(err, errlen, "%s '%s': bus '%s' is not a PCIe element of the spec", what,
			    id, bus);
	if (!is_port(p))
		return fail(err, errlen,
			    "%s '%s': bus '%s' is a %s; devices go under a root or downstream port",
			    what, id, bus, kind_name(p->kind));
	return 0;
}

static int check_hostdevs(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < s->n_hostdevs; i++) {
		const struct cvmm_spec_hostdev *h = s->hostdevs[i];
		if (!cp_id_ok(h->id))
			return fail(err, errlen,
				    "hostdev id '%s' must be a letter, then letters, digits, '_' or '-'",
				    h->id);
		if (!cp_pci_addr_ok(h->host))
			return fail(err, errlen,
				    "hostdev '%s': host address '%s' is not of the form 0000:12:00.0",
				    h->id, h->host);
		for (const char *c = h->rom_file; *c; c++)
			if ((unsigned char)*c < 0x20)
				return fail(err, errlen, "hostdev '%s': rom_file has a control character",
					    h->id);
		if (h->rom_file[0] && (h->flags & CVMM_HOSTDEV_ROM_OFF))
			return fail(err, errlen, "hostdev '%s': a rom_file and no ROM at once", h->id);
		if (check_bus(s, "hostdev", h->id, h->bus, err, errlen))
			return -EINVAL;
		if (h->function > 7)
			return fail(err, errlen, "hostdev '%s': function %u is outside 0..7", h->id,
				    h->function);
		if (!h->group[0] && h->function)
			return fail(err, errlen, "hostdev '%s': a function other than 0 needs a group",
				    h->id);
		int has0 = 0;
		for (uint32_t j = 0; j < s->n_hostdevs; j++) {
			const struct cvmm_spec_hostdev *o = s->hostdevs[j];
			if (j != i && !strcmp(o->host, h->host))
				return fail(err, errlen, "hostdevs '%s' and '%s' are both %s", h->id,
					    o->id, h->host);
			if (!h->group[0] || strcmp(o->group, h->group))
				continue;
			has0 |= o->function == 0;
			if (strcmp(o->bus, h->bus))
				return fail(err, errlen,
					    "hostdev group '%s': '%s' and '%s' sit under different buses",
					    h->group, h->id, o->id);
			if (j != i && o->function == h->function)
				return fail(err, errlen,
					    "hostdev group '%s': '%s' and '%s' are both function %u",
					    h->group, h->id, o->id, h->function);
		}
		if (h->group[0] && !has0)
			return fail(err, errlen, "hostdev group '%s' has no function 0", h->group);
		if (h->group[0] && !h->bus[0])
			return fail(err, errlen,
				    "hostdev group '%s': functions of one slot need a bus (a port)",
				    h->group);
	}
	for (uint32_t i = 0; i < s->n_nics; i++)
		if (check_bus(s, "NIC", s->nics[i]->id, cp_nic_bus(s->nics[i]), err, errlen))
			return -EINVAL;
	return 0;
}

int cp_spec_check(const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	if (!cp_spec_has_12(s))
		return 0;
	int r;
	if ((r = check_topology(s, err, errlen)) || (r = check_numa(s, err, errlen)) ||
	    (r = check_pins(s, err, errlen)) || (r = check_pcie(s, err, errlen)) ||
	    (r = check_hostdevs(s, err, errlen)))
		return r;
	if (s->n_hostdevs || s->n_pcie)
		return ids_unique(s, err, errlen);
	return 0;
}
