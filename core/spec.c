/*
 * spec: see spec.h. Builders copy what plugins hand them: a plugin's structs
 * are borrowed for the call only, and may be of an older (shorter) layout,
 * so copies honour the caller's struct_size.
 */
#include "spec.h"
#include "spec_check.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SPEC_MAX_ITEMS 64

struct cvmm_spec *spec_new(void)
{
	struct cvmm_spec *s = xzalloc(sizeof(*s));
	s->pub.struct_size = sizeof(s->pub);
	return s;
}

void spec_free(struct cvmm_spec *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->pub.n_disks; i++)
		free(s->disks[i]);
	for (uint32_t i = 0; i < s->pub.n_nics; i++) {
		for (uint32_t j = 0; j < s->nics[i]->n_ports; j++)
			free(s->nic_ports[i][j]);
		free(s->nic_ports[i]);
		free(s->nics[i]);
	}
	for (uint32_t i = 0; i < s->pub.n_args; i++)
		free(s->args[i]);
	for (uint32_t i = 0; i < s->pub.n_hostdevs; i++)
		free(s->hostdevs[i]);
	for (uint32_t i = 0; i < s->pub.n_numa; i++)
		free(s->numa[i]);
	for (uint32_t i = 0; i < s->pub.n_pins; i++)
		free(s->pins[i]);
	for (uint32_t i = 0; i < s->pub.n_pcie; i++)
		free(s->pcie[i]);
	free(s->hostdevs);
	free(s->numa);
	free(s->pins);
	free(s->pcie);
	free(s->disks);
	free(s->nics);
	free(s->nic_ports);
	free(s->args);
	free(s->cc);
	free(s);
}

/* Copy a versioned struct: the caller's size decides what it provided. */
static void *copy_versioned(const void *src, size_t ours)
{
	uint32_t theirs = *(const uint32_t *)src;
	void *dst = xzalloc(ours);
	memcpy(dst, src, theirs < ours ? theirs : ours);
	*(uint32_t *)dst = (uint32_t)ours;
	return dst;
}

#define GROW(arr, n) ((arr) = realloc((arr), sizeof(*(arr)) * ((n) + 1)), (arr) ? 0 : (abort(), 0))

int spec_add_nic(struct cvmm_spec *s, const struct cvmm_spec_nic *nic)
{
	if (!nic || nic->struct_size < offsetof(struct cvmm_spec_nic, n_ports))
		return -EINVAL;
	if (s->pub.n_nics >= SPEC_MAX_ITEMS)
		return -E2BIG;
	struct cvmm_spec_nic *n = copy_versioned(nic, sizeof(*n));
	n->bus[sizeof(n->bus) - 1] = 0;
	uint32_t np = nic->struct_size >= offsetof(struct cvmm_spec_nic, ports) + sizeof(void *)
			      ? nic->n_ports
			      : 0;
	struct cvmm_port_map **ports = xzalloc(sizeof(*ports) * (np + 1));
	for (uint32_t i = 0; i < np; i++)
		ports[i] = copy_versioned(nic->ports[i], sizeof(struct cvmm_port_map));
	n->n_ports = np;
	n->ports = (const struct cvmm_port_map *const *)ports;
	uint32_t i = s->pub.n_nics;
	GROW(s->nics, i);
	GROW(s->nic_ports, i);
	s->nics[i] = n;
	s->nic_ports[i] = ports;
	s->pub.n_nics = i + 1;
	s->pub.nics = (const struct cvmm_spec_nic *const *)s->nics;
	return 0;
}

int spec_add_disk(struct cvmm_spec *s, const struct cvmm_spec_disk *disk)
{
	if (!disk || disk->struct_size < offsetof(struct cvmm_spec_disk, readonly))
		return -EINVAL;
	if (s->pub.n_disks >= SPEC_MAX_ITEMS)
		return -E2BIG;
	uint32_t i = s->pub.n_disks;
	GROW(s->disks, i);
	s->disks[i] = copy_versioned(disk, sizeof(struct cvmm_spec_disk));
	s->pub.n_disks = i + 1;
	s->pub.disks = (const struct cvmm_spec_disk *const *)s->disks;
	return 0;
}

int spec_add_arg(struct cvmm_spec *s, const char *backend, const char *value)
{
	if (!backend || !value)
		return -EINVAL;
	if (s->pub.n_args >= SPEC_MAX_ITEMS * 4)
		return -E2BIG;
	struct cvmm_spec_arg *a = xzalloc(sizeof(*a));
	a->struct_size = sizeof(*a);
	if (str_copy(a->backend, sizeof(a->backend), backend) < 0 ||
	    str_copy(a->value, sizeof(a->value), value) < 0) {
		free(a);
		return -ENAMETOOLONG;
	}
	uint32_t i = s->pub.n_args;
	GROW(s->args, i);
	s->args[i] = a;
	s->pub.n_args = i + 1;
	s->pub.args = (const struct cvmm_spec_arg *const *)s->args;
	return 0;
}

int spec_append_cmdline(struct cvmm_spec *s, const char *text)
{
	size_t l = strlen(s->pub.cmdline);
	if (l + 1 + strlen(text) + 1 > sizeof(s->pub.cmdline))
		return -ENAMETOOLONG;
	if (l)
		s->pub.cmdline[l++] = ' ';
	strcpy(s->pub.cmdline + l, text);
	return 0;
}

/* ---- 1.2: topology and passthrough ---- */

/* A fixed char array from a plugin may lack its NUL. */
#define TERMINATE(arr) ((arr)[sizeof(arr) - 1] = 0)

static int id_taken(const struct cvmm_spec *s, const char *id)
{
	const struct cvmm_launch_spec *p = &s->pub;
	for (uint32_t i = 0; i < p->n_hostdevs; i++)
		if (!strcmp(p->hostdevs[i]->id, id))
			return 1;
	for (uint32_t i = 0; i < p->n_pcie; i++)
		if (!strcmp(p->pcie[i]->id, id))
			return 1;
	for (uint32_t i = 0; i < p->n_nics; i++)
		if (!strcmp(p->nics[i]->id, id))
			return 1;
	for (uint32_t i = 0; i < p->n_disks; i++)
		if (!strcmp(p->disks[i]->id, id))
			return 1;
	return 0;
}

static uint32_t vcpus_of(const struct cvmm_spec *s)
{
	return s->pub.vcpus ? s->pub.vcpus : 1;
}

int spec_add_hostdev(struct cvmm_spec *s, const struct cvmm_spec_hostdev *dev)
{
	if (!dev || dev->struct_size < offsetof(struct cvmm_spec_hostdev, bus) + sizeof(dev->bus))
		return -EINVAL;
	if (s->pub.n_hostdevs >= SPEC_MAX_ITEMS)
		return -E2BIG;
	struct cvmm_spec_hostdev *h = copy_versioned(dev, sizeof(*h));
	TERMINATE(h->id);
	TERMINATE(h->host);
	TERMINATE(h->rom_file);
	TERMINATE(h->group);
	TERMINATE(h->bus);
	if (!cp_id_ok(h->id) || !cp_pci_addr_ok(h->host) || h->function > 7 ||
	    (h->function && !h->group[0]) || (h->bus[0] && !cp_id_ok(h->bus))) {
		free(h);
		return -EINVAL;
	}
	if (id_taken(s, h->id)) {
		free(h);
		return -EEXIST;
	}
	for (uint32_t i = 0; i < s->pub.n_hostdevs; i++)
		if (!strcmp(s->hostdevs[i]->host, h->host)) {
			free(h);
			return -EEXIST;
		}
	uint32_t i = s->pub.n_hostdevs;
	GROW(s->hostdevs, i);
	s->hostdevs[i] = h;
	s->pub.n_hostdevs = i + 1;
	s->pub.hostdevs = (const struct cvmm_spec_hostdev *const *)s->hostdevs;
	return 0;
}

int spec_set_topology(struct cvmm_spec *s, uint32_t sockets, uint32_t cores, uint32_t threads)
{
	if (!sockets || !cores || !threads ||
	    (uint64_t)sockets * cores * threads != vcpus_of(s))
		return -EINVAL;
	s->pub.sockets = sockets;
	s->pub.cores = cores;
	s->pub.threads = threads;
	return 0;
}

int spec_add_numa(struct cvmm_spec *s, const struct cvmm_spec_numa *cell)
{
	if (!cell || cell->struct_size < offsetof(struct cvmm_spec_numa, hugepage_kb) +
						 sizeof(cell->hugepage_kb))
		return -EINVAL;
	if (s->pub.n_numa >= SPEC_MAX_ITEMS)
		return -E2BIG;
	struct cvmm_spec_numa *c = copy_versioned(cell, sizeof(*c));
	TERMINATE(c->cpus);
	cpu_set_t mine, other, both;
	int ok = c->id == s->pub.n_numa && cp_cpulist_parse(c->cpus, &mine) > 0 &&
		 c->memory_mb && c->host_node >= -1;
	for (uint32_t v = vcpus_of(s); ok && v < CPU_SETSIZE; v++)
		ok = !CPU_ISSET(v, &mine);
	for (uint32_t i = 0; ok && i < s->pub.n_numa; i++) {
		cp_cpulist_parse(s->numa[i]->cpus, &other);
		CPU_AND(&both, &mine, &other);
		ok = CPU_COUNT(&both) == 0;
	}
	if (!ok) {
		free(c);
		return -EINVAL;
	}
	uint32_t i = s->pub.n_numa;
	GROW(s->numa, i);
	s->numa[i] = c;
	s->pub.n_numa = i + 1;
	s->pub.numa = (const struct cvmm_spec_numa *const *)s->numa;
	return 0;
}

int spec_add_pin(struct cvmm_spec *s, const struct cvmm_spec_pin *pin)
{
	cpu_set_t set;
	if (!pin || pin->struct_size < offsetof(struct cvmm_spec_pin, host_cpus) +
						sizeof(pin->host_cpus))
		return -EINVAL;
	if (s->pub.n_pins >= CPU_SETSIZE)
		return -E2BIG;
	struct cvmm_spec_pin *p = copy_versioned(pin, sizeof(*p));
	TERMINATE(p->host_cpus);
	int ok = p->vcpu < vcpus_of(s) && cp_cpulist_parse(p->host_cpus, &set) > 0;
	for (uint32_t i = 0; ok && i < s->pub.n_pins; i++)
		ok = s->pins[i]->vcpu != p->vcpu;
	if (!ok) {
		free(p);
		return -EINVAL;
	}
	uint32_t i = s->pub.n_pins;
	GROW(s->pins, i);
	s->pins[i] = p;
	s->pub.n_pins = i + 1;
	s->pub.pins = (const struct cvmm_spec_pin *const *)s->pins;
	return 0;
}

int spec_set_emulator_cpus(struct cvmm_spec *s, const char *host_cpus)
{
	cpu_set_t set;
	if (!host_cpus || cp_cpulist_parse(host_cpus, &set) < 0)
		return -EINVAL;
	if (str_copy(s->pub.emulator_cpus, sizeof(s->pub.emulator_cpus), host_cpus) < 0)
		return -ENAMETOOLONG;
	return 0;
}

int spec_set_confidential(struct cvmm_spec *s, const struct cvmm_spec_confidential *cc)
{
	if (!cc || cc->struct_size < offsetof(struct cvmm_spec_confidential, type) + sizeof(cc->type))
		return -EINVAL;
	struct cvmm_spec_confidential *c = copy_versioned(cc, sizeof(*c));
	TERMINATE(c->firmware);
	TERMINATE(c->mrconfigid);
	TERMINATE(c->host_data);
	if (c->type < CVMM_CC_TDX || c->type > CVMM_CC_SEV) {
		free(c);
		return -EINVAL;
	}
	free(s->cc);
	s->cc = c;
	s->pub.confidential = c;
	return 0;
}

int spec_add_pcie(struct cvmm_spec *s, const struct cvmm_spec_pcie *elem)
{
	if (!elem ||
	    elem->struct_size < offsetof(struct cvmm_spec_pcie, port) + sizeof(elem->port))
		return -EINVAL;
	if (s->pub.n_pcie >= SPEC_MAX_ITEMS * 4)
		return -E2BIG;
	struct cvmm_spec_pcie *e = copy_versioned(elem, sizeof(*e));
	TERMINATE(e->id);
	TERMINATE(e->parent);
	int r = 0;
	if (e->kind < CVMM_PCIE_EXPANDER || e->kind > CVMM_PCIE_SWITCH_DOWN || !cp_id_ok(e->id))
		r = -EINVAL;
	else if (id_taken(s, e->id))
		r = -EEXIST;
	/* Parents come first: the renderers create devices in spec order. */
	else if (e->parent[0] && !cp_pcie_find(&s->pub, e->parent, NULL))
		r = -ENOENT;
	if (r) {
		free(e);
		return r;
	}
	uint32_t i = s->pub.n_pcie;
	GROW(s->pcie, i);
	s->pcie[i] = e;
	s->pub.n_pcie = i + 1;
	s->pub.pcie = (const struct cvmm_spec_pcie *const *)s->pcie;
	return 0;
}

int spec_check(const struct cvmm_spec *s, char *err, size_t errlen)
{
	return cp_spec_check(&s->pub, err, errlen);
}

/* ---- JSON ---- */

static const char *nic_kinds[] = {NULL, "user", "stream", "tap", "macvtap"};
static const char *disk_formats[] = {NULL, "qcow2", "raw"};
static const char *firmwares[] = {"", "bios", "uefi"}; /* CVMM_FW_* */
static const char *pcie_kinds[] = {NULL, "expander", "root-port", "switch-up", "switch-down"};
static const char *cc_types[] = {NULL, "tdx", "sev-snp", "sev"};

static const char *proto_name(uint32_t p)
{
	return p == CVMM_PROTO_UDP ? "udp" : "tcp";
}

static void add_str(json_object *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static void add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

/* The 1.2 parts; arrays only when non-empty, so older fixtures stay as
 * they are. host_node and numa_cell are always written: -1 is a value. */
static void topology_to_json(json_object *o, const struct cvmm_launch_spec *s)
{
	if (s->sockets || s->cores || s->threads) {
		add_int(o, "sockets", s->sockets);
		add_int(o, "cores", s->cores);
		add_int(o, "threads", s->threads);
	}
	add_str(o, "emulator_cpus", s->emulator_cpus);
	if (s->n_numa) {
		json_object *a = json_object_new_array();
		for (uint32_t i = 0; i < s->n_numa; i++) {
			const struct cvmm_spec_numa *c = s->numa[i];
			json_object *j = json_object_new_object();
			add_int(j, "id", c->id);
			add_str(j, "cpus", c->cpus);
			add_int(j, "memory_mb", (int64_t)c->memory_mb);
			add_int(j, "host_node", c->host_node);
			if (c->hugepage_kb)
				add_int(j, "hugepage_kb", c->hugepage_kb);
			json_object_array_add(a, j);
		}
		json_object_object_add(o, "numa", a);
	}
	if (s->n_pins) {
		json_object *a = json_object_new_array();
		for (uint32_t i = 0; i < s->n_pins; i++) {
			json_object *j = json_object_new_object();
			add_int(j, "vcpu", s->pins[i]->vcpu);
			add_str(j, "host_cpus", s->pins[i]->host_cpus);
			json_object_array_add(a, j);
		}
		json_object_object_add(o, "pins", a);
	}
	if (s->n_pcie) {
		json_object *a = json_object_new_array();
		for (uint32_t i = 0; i < s->n_pcie; i++) {
			const struct cvmm_spec_pcie *e = s->pcie[i];
			json_object *j = json_object_new_object();
			add_str(j, "kind", e->kind < ARRAY_SIZE(pcie_kinds) ? pcie_kinds[e->kind] : NULL);
			add_str(j, "id", e->id);
			add_str(j, "parent", e->parent);
			if (e->kind == CVMM_PCIE_EXPANDER) {
				add_int(j, "numa_cell", e->numa_cell);
				add_int(j, "bus_nr", e->bus_nr);
			}
			if (e->chassis)
				add_int(j, "chassis", e->chassis);
			if (e->port)
				add_int(j, "port", e->port);
			json_object_array_add(a, j);
		}
		json_object_object_add(o, "pcie", a);
	}
	if (s->n_hostdevs) {
		json_object *a = json_object_new_array();
		for (uint32_t i = 0; i < s->n_hostdevs; i++) {
			const struct cvmm_spec_hostdev *h = s->hostdevs[i];
			json_object *j = json_object_new_object();
			add_str(j, "id", h->id);
			add_str(j, "host", h->host);
			add_str(j, "bus", h->bus);
			add_str(j, "group", h->group);
			if (h->function)
				add_int(j, "function", h->function);
			if (h->flags & CVMM_HOSTDEV_ROM_OFF)
				json_object_object_add(j, "rom_off", json_object_new_boolean(1));
			add_str(j, "rom_file", h->rom_file);
			json_object_array_add(a, j);
		}
		json_object_object_add(o, "hostdevs", a);
	}
	if (s->struct_size >= offsetof(struct cvmm_launch_spec, confidential) + sizeof(s->confidential) &&
	    s->confidential) {
		const struct cvmm_spec_confidential *cc = s->confidential;
		json_object *j = json_object_new_object();
		add_str(j, "type", cc->type < ARRAY_SIZE(cc_types) ? cc_types[cc->type] : NULL);
		add_str(j, "firmware", cc->firmware);
		if (cc->policy)
			add_int(j, "policy", (int64_t)cc->policy);
		if (cc->cbitpos)
			add_int(j, "cbitpos", cc->cbitpos);
		if (cc->reduced_phys_bits)
			add_int(j, "reduced_phys_bits", cc->reduced_phys_bits);
		add_str(j, "mrconfigid", cc->mrconfigid);
		add_str(j, "host_data", cc->host_data);
		if (cc->kernel_hashes)
			add_int(j, "kernel_hashes", cc->kernel_hashes);
		json_object_object_add(o, "confidential", j);
	}
}

struct json_object *spec_to_json(const struct cvmm_launch_spec *s)
{
	json_object *o = json_object_new_object();
	add_str(o, "name", s->name);
	add_str(o, "uuid", s->uuid);
	json_object_object_add(o, "vcpus", json_object_new_int64(s->vcpus));
	json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)s->memory_mb));
	add_str(o, "machine", s->machine);
	add_str(o, "kernel", s->kernel);
	add_str(o, "initrd", s->initrd);
	add_str(o, "cmdline", s->cmdline);
	add_str(o, "bios", s->bios);
	if (s->firmware && s->firmware < ARRAY_SIZE(firmwares))
		add_str(o, "firmware", firmwares[s->firmware]);
	add_str(o, "firmware_code", s->firmware_code);
	add_str(o, "firmware_vars", s->firmware_vars);
	if (s->cid)
		json_object_object_add(o, "cid", json_object_new_int64(s->cid));
	add_str(o, "serial_log", s->serial_log);
	add_str(o, "run_dir", s->run_dir);
	add_str(o, "channel_name", s->channel_name);
	add_str(o, "channel_path", s->channel_path);
	if (s->serial_log_max)
		json_object_object_add(o, "serial_log_max",
				       json_object_new_int64((int64_t)s->serial_log_max));
	json_object *disks = json_object_new_array();
	for (uint32_t i = 0; i < s->n_disks; i++) {
		const struct cvmm_spec_disk *d = s->disks[i];
		json_object *j = json_object_new_object();
		add_str(j, "id", d->id);
		add_str(j, "path", d->path);
		add_str(j, "format", d->format < ARRAY_SIZE(disk_formats) ? disk_formats[d->format] : NULL);
		if (d->readonly)
			json_object_object_add(j, "readonly", json_object_new_boolean(1));
		json_object_array_add(disks, j);
	}
	json_object_object_add(o, "disks", disks);
	json_object *nics = json_object_new_array();
	for (uint32_t i = 0; i < s->n_nics; i++) {
		const struct cvmm_spec_nic *n = s->nics[i];
		json_object *j = json_object_new_object();
		add_str(j, "kind", n->kind < ARRAY_SIZE(nic_kinds) ? nic_kinds[n->kind] : NULL);
		add_str(j, "id", n->id);
		add_str(j, "mac", n->mac);
		add_str(j, "model", n->model);
		add_str(j, "ifname", n->ifname);
		add_str(j, "socket", n->socket);
		add_str(j, "user_net", n->user_net);
		add_str(j, "user_dhcp_start", n->user_dhcp_start);
		if (n->user_restrict)
			json_object_object_add(j, "user_restrict", json_object_new_boolean(1));
		if (n->mtu)
			json_object_object_add(j, "mtu", json_object_new_int64(n->mtu));
		add_str(j, "bus", n->bus);
		if (n->n_ports) {
			json_object *ports = json_object_new_array();
			for (uint32_t k = 0; k < n->n_ports; k++) {
				const struct cvmm_port_map *p = n->ports[k];
				json_object *pj = json_object_new_object();
				add_str(pj, "protocol", proto_name(p->protocol));
				add_str(pj, "host_address", p->host_address);
				json_object_object_add(pj, "host_port", json_object_new_int64(p->host_port));
				json_object_object_add(pj, "vm_port", json_object_new_int64(p->vm_port));
				json_object_array_add(ports, pj);
			}
			json_object_object_add(j, "ports", ports);
		}
		json_object_array_add(nics, j);
	}
	json_object_object_add(o, "nics", nics);
	json_object *args = json_object_new_array();
	for (uint32_t i = 0; i < s->n_args; i++) {
		json_object *j = json_object_new_object();
		add_str(j, "backend", s->args[i]->backend);
		add_str(j, "value", s->args[i]->value);
		json_object_array_add(args, j);
	}
	json_object_object_add(o, "args", args);
	topology_to_json(o, s);
	return o;
}

/* Field readers for spec_from_json: each names the field on error. */
struct jctx {
	char *err;
	size_t errlen;
	const char *where;
};

static int j_str(struct jctx *c, json_object *o, const char *k, char *dst, size_t n)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(c->err, c->errlen, "%s%s: must be a string", c->where, k);
		return -EINVAL;
	}
	if (str_copy(dst, n, json_object_get_string(v)) < 0) {
		snprintf(c->err, c->errlen, "%s%s: longer than %zu bytes", c->where, k, n - 1);
		return -EINVAL;
	}
	return 0;
}

static int j_u64(struct jctx *c, json_object *o, const char *k, uint64_t *dst)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	if (json_object_is_type(v, json_type_boolean)) {
		*dst = json_object_get_boolean(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
		snprintf(c->err, c->errlen, "%s%s: must be a non-negative integer", c->where, k);
		return -EINVAL;
	}
	*dst = (uint64_t)json_object_get_int64(v);
	return 0;
}

static int j_u32(struct jctx *c, json_object *o, const char *k, uint32_t *dst)
{
	uint64_t v = *dst;
	int r = j_u64(c, o, k, &v);
	if (r)
		return r;
	if (v > UINT32_MAX) {
		snprintf(c->err, c->errlen, "%s%s: too large", c->where, k);
		return -EINVAL;
	}
	*dst = (uint32_t)v;
	return 0;
}

static int j_i32(struct jctx *c, json_object *o, const char *k, int32_t *dst)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	int64_t x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || x < INT32_MIN || x > INT32_MAX) {
		snprintf(c->err, c->errlen, "%s%s: must be an integer", c->where, k);
		return -EINVAL;
	}
	*dst = (int32_t)x;
	return 0;
}

static int j_enum(struct jctx *c, json_object *o, const char *k, const char **names, size_t n,
		  uint32_t *dst)
{
	char buf[32] = "";
	int r = j_str(c, o, k, buf, sizeof(buf));
	if (r || !*buf)
		return r;
	for (size_t i = 1; i < n; i++)
		if (!strcmp(buf, names[i])) {
			*dst = (uint32_t)i;
			return 0;
		}
	snprintf(c->err, c->errlen, "%s%s: unknown value '%s'", c->where, k, buf);
	return -EINVAL;
}

static json_object *j_array(json_object *o, const char *k)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* A builder's refusal, named: the builders return an errno only. */
static int refused(struct jctx *c, const char *part, size_t i, const char *id, int r)
{
	snprintf(c->err, c->errlen, "%s[%zu]%s%s%s: refused by the spec builder: %s", part, i,
		 id && *id ? " '" : "", id ? id : "", id && *id ? "'" : "", strerror(-r));
	return r;
}

/* The 1.2 parts, through the builders, so that their checks apply. */
static int topology_from_json(struct cvmm_spec *s, json_object *o, struct jctx *c)
{
	int r;
	uint32_t so = 0, co = 0, th = 0;
	char emu[64] = "";
	json_object *a;
	c->where = "";
	if ((r = j_u32(c, o, "sockets", &so)) || (r = j_u32(c, o, "cores", &co)) ||
	    (r = j_u32(c, o, "threads", &th)) ||
	    (r = j_str(c, o, "emulator_cpus", emu, sizeof(emu))))
		return r;
	if ((so || co || th) && (r = spec_set_topology(s, so, co, th))) {
		snprintf(c->err, c->errlen,
			 "topology: %u sockets x %u cores x %u threads does not make %u vCPUs", so,
			 co, th, s->pub.vcpus);
		return r;
	}
	if (emu[0] && (r = spec_set_emulator_cpus(s, emu))) {
		snprintf(c->err, c->errlen, "emulator_cpus: '%s' is not a CPU list", emu);
		return r;
	}
	if ((a = j_array(o, "numa")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_numa n = {.struct_size = sizeof(n), .host_node = -1};
			c->where = "numa[].";
			if ((r = j_u32(c, j, "id", &n.id)) ||
			    (r = j_str(c, j, "cpus", n.cpus, sizeof(n.cpus))) ||
			    (r = j_u64(c, j, "memory_mb", &n.memory_mb)) ||
			    (r = j_i32(c, j, "host_node", &n.host_node)) ||
			    (r = j_u32(c, j, "hugepage_kb", &n.hugepage_kb)))
				return r;
			if ((r = spec_add_numa(s, &n)))
				return refused(c, "numa", i, NULL, r);
		}
	if ((a = j_array(o, "pins")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_pin p = {.struct_size = sizeof(p)};
			c->where = "pins[].";
			if ((r = j_u32(c, j, "vcpu", &p.vcpu)) ||
			    (r = j_str(c, j, "host_cpus", p.host_cpus, sizeof(p.host_cpus))))
				return r;
			if ((r = spec_add_pin(s, &p)))
				return refused(c, "pins", i, NULL, r);
		}
	if ((a = j_array(o, "pcie")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_pcie e = {.struct_size = sizeof(e), .numa_cell = -1};
			c->where = "pcie[].";
			if ((r = j_enum(c, j, "kind", pcie_kinds, ARRAY_SIZE(pcie_kinds), &e.kind)) ||
			    (r = j_str(c, j, "id", e.id, sizeof(e.id))) ||
			    (r = j_str(c, j, "parent", e.parent, sizeof(e.parent))) ||
			    (r = j_i32(c, j, "numa_cell", &e.numa_cell)) ||
			    (r = j_u32(c, j, "bus_nr", &e.bus_nr)) ||
			    (r = j_u32(c, j, "chassis", &e.chassis)) ||
			    (r = j_u32(c, j, "port", &e.port)))
				return r;
			if ((r = spec_add_pcie(s, &e)) == -ENOENT) {
				snprintf(c->err, c->errlen,
					 "pcie[%zu] '%s': parent '%s' is not defined before it", i, e.id,
					 e.parent);
				return r;
			}
			if (r)
				return refused(c, "pcie", i, e.id, r);
		}
	if ((a = j_array(o, "hostdevs")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_hostdev h = {.struct_size = sizeof(h)};
			uint32_t rom_off = 0;
			c->where = "hostdevs[].";
			if ((r = j_str(c, j, "id", h.id, sizeof(h.id))) ||
			    (r = j_str(c, j, "host", h.host, sizeof(h.host))) ||
			    (r = j_str(c, j, "bus", h.bus, sizeof(h.bus))) ||
			    (r = j_str(c, j, "group", h.group, sizeof(h.group))) ||
			    (r = j_u32(c, j, "function", &h.function)) ||
			    (r = j_u32(c, j, "rom_off", &rom_off)) ||
			    (r = j_str(c, j, "rom_file", h.rom_file, sizeof(h.rom_file))))
				return r;
			h.flags = rom_off ? CVMM_HOSTDEV_ROM_OFF : 0;
			if ((r = spec_add_hostdev(s, &h)))
				return refused(c, "hostdevs", i, h.id, r);
		}
	return 0;
}

int spec_from_json(struct json_object *o, struct cvmm_spec **out, char *err, size_t errlen)
{
	struct cvmm_spec *s = spec_new();
	struct cvmm_launch_spec *p = &s->pub;
	struct jctx c = {err, errlen, ""};
	int r = 0;
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "spec: must be an object");
		r = -EINVAL;
		goto out;
	}
	if ((r = j_str(&c, o, "name", p->name, sizeof(p->name))) ||
	    (r = j_str(&c, o, "uuid", p->uuid, sizeof(p->uuid))) ||
	    (r = j_u32(&c, o, "vcpus", &p->vcpus)) || (r = j_u64(&c, o, "memory_mb", &p->memory_mb)) ||
	    (r = j_str(&c, o, "machine", p->machine, sizeof(p->machine))) ||
	    (r = j_str(&c, o, "kernel", p->kernel, sizeof(p->kernel))) ||
	    (r = j_str(&c, o, "initrd", p->initrd, sizeof(p->initrd))) ||
	    (r = j_str(&c, o, "cmdline", p->cmdline, sizeof(p->cmdline))) ||
	    (r = j_str(&c, o, "bios", p->bios, sizeof(p->bios))) || (r = j_u32(&c, o, "cid", &p->cid)) ||
	    (r = j_str(&c, o, "serial_log", p->serial_log, sizeof(p->serial_log))) ||
	    (r = j_str(&c, o, "run_dir", p->run_dir, sizeof(p->run_dir))) ||
	    (r = j_u64(&c, o, "serial_log_max", &p->serial_log_max)) ||
	    (r = j_enum(&c, o, "firmware", firmwares, ARRAY_SIZE(firmwares), &p->firmware)) ||
	    (r = j_str(&c, o, "firmware_code", p->firmware_code, sizeof(p->firmware_code))) ||
	    (r = j_str(&c, o, "firmware_vars", p->firmware_vars, sizeof(p->firmware_vars))) ||
	    (r = j_str(&c, o, "channel_name", p->channel_name, sizeof(p->channel_name))) ||
	    (r = j_str(&c, o, "channel_path", p->channel_path, sizeof(p->channel_path))))
		goto out;
	json_object *a;
	if ((a = j_array(o, "disks")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_disk d = {.struct_size = sizeof(d), .format = CVMM_DISK_QCOW2};
			uint64_t ro = 0;
			c.where = "disks[].";
			if ((r = j_str(&c, j, "id", d.id, sizeof(d.id))) ||
			    (r = j_str(&c, j, "path", d.path, sizeof(d.path))) ||
			    (r = j_enum(&c, j, "format", disk_formats, ARRAY_SIZE(disk_formats), &d.format)) ||
			    (r = j_u64(&c, j, "readonly", &ro)))
				goto out;
			d.readonly = (uint32_t)ro;
			if ((r = spec_add_disk(s, &d))) {
				snprintf(err, errlen, "disks: at most %d entries", SPEC_MAX_ITEMS);
				goto out;
			}
		}
	if ((a = j_array(o, "nics")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			struct cvmm_spec_nic n = {.struct_size = sizeof(n)};
			c.where = "nics[].";
			if ((r = j_enum(&c, j, "kind", nic_kinds, ARRAY_SIZE(nic_kinds), &n.kind)) ||
			    (r = j_str(&c, j, "id", n.id, sizeof(n.id))) ||
			    (r = j_str(&c, j, "mac", n.mac, sizeof(n.mac))) ||
			    (r = j_str(&c, j, "model", n.model, sizeof(n.model))) ||
			    (r = j_str(&c, j, "ifname", n.ifname, sizeof(n.ifname))) ||
			    (r = j_str(&c, j, "socket", n.socket, sizeof(n.socket))) ||
			    (r = j_str(&c, j, "user_net", n.user_net, sizeof(n.user_net))) ||
			    (r = j_str(&c, j, "user_dhcp_start", n.user_dhcp_start,
				       sizeof(n.user_dhcp_start))) ||
			    (r = j_u32(&c, j, "user_restrict", &n.user_restrict)) ||
			    (r = j_u32(&c, j, "mtu", &n.mtu)) ||
			    (r = j_str(&c, j, "bus", n.bus, sizeof(n.bus))))
				goto out;
			json_object *pa = j_array(j, "ports");
			size_t np = pa ? json_object_array_length(pa) : 0;
			_cleanup_free_ struct cvmm_port_map *pm = xzalloc(sizeof(*pm) * (np + 1));
			_cleanup_free_ struct cvmm_port_map **pp = xzalloc(sizeof(*pp) * (np + 1));
			c.where = "nics[].ports[].";
			for (size_t k = 0; k < np; k++) {
				json_object *pj = json_object_array_get_idx(pa, k);
				char proto[8] = "tcp";
				memset(&pm[k], 0, sizeof(pm[k]));
				pm[k].struct_size = sizeof(pm[k]);
				if ((r = j_str(&c, pj, "protocol", proto, sizeof(proto))) ||
				    (r = j_str(&c, pj, "host_address", pm[k].host_address,
					       sizeof(pm[k].host_address))) ||
				    (r = j_u32(&c, pj, "host_port", &pm[k].host_port)) ||
				    (r = j_u32(&c, pj, "vm_port", &pm[k].vm_port)))
					goto out;
				if (strcmp(proto, "tcp") && strcmp(proto, "udp")) {
					snprintf(err, errlen, "%sprotocol: unknown value '%s'", c.where,
						 proto);
					r = -EINVAL;
					goto out;
				}
				pm[k].protocol = strcmp(proto, "udp") ? CVMM_PROTO_TCP : CVMM_PROTO_UDP;
				pp[k] = &pm[k];
			}
			n.n_ports = (uint32_t)np;
			n.ports = (const struct cvmm_port_map *const *)pp;
			if ((r = spec_add_nic(s, &n))) {
				snprintf(err, errlen, "nics: at most %d entries", SPEC_MAX_ITEMS);
				goto out;
			}
		}
	if ((a = j_array(o, "args")))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *j = json_object_array_get_idx(a, i);
			char be[32] = "", val[480] = "";
			c.where = "args[].";
			if ((r = j_str(&c, j, "backend", be, sizeof(be))) ||
			    (r = j_str(&c, j, "value", val, sizeof(val))))
				goto out;
			if ((r = spec_add_arg(s, be, val))) {
				snprintf(err, errlen, "args: at most %d entries", SPEC_MAX_ITEMS * 4);
				goto out;
			}
		}
	if ((r = topology_from_json(s, o, &c)))
		goto out;
	json_object *cj;
	if (json_object_object_get_ex(o, "confidential", &cj)) {
		struct cvmm_spec_confidential cc = {.struct_size = sizeof(cc)};
		c.where = "confidential.";
		if ((r = j_enum(&c, cj, "type", cc_types, ARRAY_SIZE(cc_types), &cc.type)) ||
		    (r = j_str(&c, cj, "firmware", cc.firmware, sizeof(cc.firmware))) ||
		    (r = j_u64(&c, cj, "policy", &cc.policy)) ||
		    (r = j_u32(&c, cj, "cbitpos", &cc.cbitpos)) ||
		    (r = j_u32(&c, cj, "reduced_phys_bits", &cc.reduced_phys_bits)) ||
		    (r = j_str(&c, cj, "mrconfigid", cc.mrconfigid, sizeof(cc.mrconfigid))) ||
		    (r = j_str(&c, cj, "host_data", cc.host_data, sizeof(cc.host_data))) ||
		    (r = j_u32(&c, cj, "kernel_hashes", &cc.kernel_hashes)))
			goto out;
		if ((r = spec_set_confidential(s, &cc))) {
			snprintf(err, errlen, "confidential.type: missing");
			goto out;
		}
	}
out:
	if (r) {
		spec_free(s);
		return r;
	}
	*out = s;
	return 0;
}
