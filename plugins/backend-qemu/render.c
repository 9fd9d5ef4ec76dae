/*
 * render: see render.h. QEMU's -device/-netdev/-drive values are comma
 * separated key=value lists in which a literal comma is written ",,"; every
 * value that comes from outside (paths, names) goes through opt_escape so it
 * cannot add options of its own.
 */
#include "render.h"
#include "spec_check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void push(struct argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = realloc(a->v, sizeof(char *) * (size_t)a->cap);
		if (!a->v)
			abort();
	}
	a->v[a->n] = strdup(s);
	if (!a->v[a->n])
		abort();
	a->n++;
	a->v[a->n] = NULL;
}

static void pushf(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pushf(struct argv *a, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	push(a, s);
	free(s);
}

void argv_free(struct argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* Doubles commas; the result lives in one of a few rotating buffers. */
static const char *opt_escape(const char *s)
{
	static __thread char bufs[4][1024];
	static __thread int k;
	char *out = bufs[k++ & 3];
	size_t o = 0;
	for (; *s && o + 2 < sizeof(bufs[0]); s++) {
		if (*s == ',')
			out[o++] = ',';
		out[o++] = *s;
	}
	out[o] = 0;
	return out;
}

static int check_plain(const char *what, const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p; p++)
		if (*p == ',' || *p == '=' || (unsigned char)*p < 0x20) {
			snprintf(err, errlen, "%s '%s' may not contain ',', '=' or control characters",
				 what, v);
			return -EINVAL;
		}
	return 0;
}

/* virtio-net tells the guest its MTU (VIRTIO_NET_F_MTU); other models cannot. */
static int is_virtio_net(const char *model)
{
	return !model[0] || !strncmp(model, "virtio-net", 10);
}

/* macvtap_k: this NIC's ordinal among the spec's macvtap NICs. */
/* root_bus: ",bus=pcie.0" for a device the spec does not place, when the
 * spec has expander buses; else "" (see qemu_render). */
static int render_nic(const struct cvmm_spec_nic *n, int macvtap_k, const char *root_bus,
		      struct argv *a, char *err, size_t errlen)
{
	/* A memstream, not a fixed buffer: a user NIC carries any number of
	 * port forwards. */
	char *netdev = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int r;
	char mtu[32] = "";
	if ((r = check_plain("NIC id", n->id, err, errlen)) ||
	    (r = check_plain("MAC address", n->mac, err, errlen)))
		return r;
	if (n->mtu) {
		if (n->mtu < 68 || n->mtu > 65535) {
			snprintf(err, errlen, "NIC %s: MTU %u is outside 68..65535", n->id, n->mtu);
			return -EINVAL;
		}
		/* Other models have no way to tell the guest: it keeps its default. */
		if (is_virtio_net(n->model))
			snprintf(mtu, sizeof(mtu), ",host_mtu=%u", n->mtu);
	}
	if (!(f = open_memstream(&netdev, &len)))
		abort();
	switch (n->kind) {
	case CVMM_NIC_USER:
		fprintf(f, "user,id=%s", n->id);
		if (n->user_net[0])
			fprintf(f, ",net=%s", opt_escape(n->user_net));
		if (n->user_dhcp_start[0])
			fprintf(f, ",dhcpstart=%s", opt_escape(n->user_dhcp_start));
		fprintf(f, ",restrict=%s", n->user_restrict ? "on" : "off");
		for (uint32_t i = 0; i < n->n_ports; i++) {
			const struct cvmm_port_map *p = n->ports[i];
			const char *proto = p->protocol == CVMM_PROTO_UDP ? "udp" : "tcp";
			struct in_addr in;
			/* QEMU's hostfwd parses the bind address with inet_aton: IPv4
			 * only (7.2 refuses "[::1]" as "Bad host address"). */
			if (p->host_address[0] && inet_pton(AF_INET, p->host_address, &in) != 1) {
				snprintf(err, errlen,
					 "NIC %s: port %s/%u: host address '%s' is not an IPv4 address; "
					 "QEMU's user network forwards IPv4 only",
					 n->id, proto, p->host_port, p->host_address);
				r = -EINVAL;
				goto out;
			}
			fprintf(f, ",hostfwd=%s:%s:%u-:%u", proto, p->host_address, p->host_port,
				p->vm_port);
		}
		break;
	case CVMM_NIC_STREAM:
		fprintf(f, "stream,id=%s,server=off,addr.type=unix,addr.path=%s", n->id,
			opt_escape(n->socket));
		break;
	case CVMM_NIC_TAP:
		if ((r = check_plain("TAP device", n->ifname, err, errlen)))
			goto out;
		fprintf(f, "tap,id=%s,ifname=%s,script=no,downscript=no", n->id, n->ifname);
		break;
	case CVMM_NIC_MACVTAP:
		/* The device's fd, opened and placed by the spawner (render.h).
		 * vhost stays off: with fd= QEMU would have to open
		 * /dev/vhost-net itself, which may be absent; passing a vhostfd
		 * as well is the way to add it for KVM hosts. */
		if ((r = check_plain("macvtap device", n->ifname, err, errlen)))
			goto out;
		if (!n->ifname[0]) {
			snprintf(err, errlen, "NIC %s: a macvtap NIC needs its device name", n->id);
			r = -EINVAL;
			goto out;
		}
		if (macvtap_k >= QEMU_MACVTAP_MAX) {
			snprintf(err, errlen, "NIC %s: at most %d macvtap NICs per VM", n->id,
				 QEMU_MACVTAP_MAX);
			r = -EINVAL;
			goto out;
		}
		fprintf(f, "tap,id=%s,fd=%d,vhost=off", n->id, QEMU_MACVTAP_FD_BASE + macvtap_k);
		break;
	default:
		snprintf(err, errlen, "NIC %s: kind %u is not supported by the QEMU backend", n->id,
			 n->kind);
		r = -EINVAL;
		goto out;
	}
	if (fclose(f) != 0)
		abort();
	f = NULL;
	push(a, "-netdev");
	push(a, netdev);
	char bus[64];
	if (cp_nic_bus(n)[0])
		snprintf(bus, sizeof(bus), ",bus=%s,addr=0", cp_nic_bus(n));
	else
		snprintf(bus, sizeof(bus), "%s", root_bus);
	push(a, "-device");
	pushf(a, "%s,netdev=%s%s%s%s%s", n->model[0] ? opt_escape(n->model) : "virtio-net-pci",
	      n->id, n->mac[0] ? ",mac=" : "", n->mac, mtu, bus);
out:
	if (f)
		fclose(f);
	free(netdev);
	return r;
}

int qemu_needs_pinning(const struct cvmm_launch_spec *s)
{
	return cp_spec_has_12(s) && (s->n_pins || s->emulator_cpus[0]);
}

/* -numa: one memory backend per cell, bound to its host node. */
static void render_numa(const struct cvmm_launch_spec *s, struct argv *a)
{
	for (uint32_t i = 0; i < s->n_numa; i++) {
		const struct cvmm_spec_numa *c = s->numa[i];
		char bind[48] = "";
		if (c->host_node >= 0)
			snprintf(bind, sizeof(bind), ",host-nodes=%d,policy=bind", c->host_node);
		push(a, "-object");
		if (c->hugepage_kb)
			/* The page size is the hugetlbfs mount's: /dev/hugepages must
			 * be mounted with pagesize=<hugepage_kb>K. prealloc: a VM
			 * with passthrough devices pins all its memory anyway. */
			pushf(a,
			      "memory-backend-file,id=ram-node%u,size=%lluM,mem-path=/dev/hugepages,"
			      "prealloc=on%s",
			      i, (unsigned long long)c->memory_mb, bind);
		else
			pushf(a, "memory-backend-ram,id=ram-node%u,size=%lluM%s", i,
			      (unsigned long long)c->memory_mb, bind);
		/* One cpus= per range: QEMU's list syntax is a repeated key. */
		cpu_set_t set;
		char list[256], cpus[512] = "";
		size_t o = 0;
		cp_cpulist_parse(c->cpus, &set);
		cp_cpulist_format(&set, list, sizeof(list));
		for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
		     t = strtok_r(NULL, ",", &save))
			o += (size_t)snprintf(cpus + o, sizeof(cpus) - o, ",cpus=%s", t);
		push(a, "-numa");
		pushf(a, "node,nodeid=%u%s,memdev=ram-node%u", i, cpus, i);
	}
}

/* The PCIe hierarchy, parents first (the spec's order): QEMU creates keyval
 * -devices in command-line order and a bus must exist before its users. */
static void render_pcie(const struct cvmm_launch_spec *s, struct argv *a)
{
	for (uint32_t i = 0; i < s->n_pcie; i++) {
		const struct cvmm_spec_pcie *e = s->pcie[i];
		const char *parent = e->parent[0] ? e->parent : "pcie.0";
		char cell[32] = "";
		push(a, "-device");
		switch (e->kind) {
		case CVMM_PCIE_EXPANDER:
			if (e->numa_cell >= 0)
				snprintf(cell, sizeof(cell), ",numa_node=%d", e->numa_cell);
			pushf(a, "pxb-pcie,id=%s,bus_nr=%u%s,bus=pcie.0", e->id, e->bus_nr, cell);
			break;
		case CVMM_PCIE_ROOT_PORT:
			pushf(a, "pcie-root-port,id=%s,bus=%s,chassis=%u,port=%u", e->id, parent,
			      cp_pcie_chassis(s, i), cp_pcie_port(s, i));
			break;
		case CVMM_PCIE_SWITCH_UP:
			pushf(a, "x3130-upstream,id=%s,bus=%s", e->id, parent);
			break;
		case CVMM_PCIE_SWITCH_DOWN:
			pushf(a, "xio3130-downstream,id=%s,bus=%s,chassis=%u,port=%u", e->id, parent,
			      cp_pcie_chassis(s, i), cp_pcie_port(s, i));
			break;
		}
	}
}

/* Host devices: a group's functions share the slot of its port (slot 0,
 * the only one a PCIe port's link has), function 0 announcing the others. */
static void render_hostdevs(const struct cvmm_launch_spec *s, struct argv *a)
{
	for (uint32_t i = 0; i < s->n_hostdevs; i++) {
		const struct cvmm_spec_hostdev *h = s->hostdevs[i];
		char place[96] = "", rom[320] = "";
		if (h->bus[0])
			snprintf(place, sizeof(place), ",bus=%s,addr=0.%u%s", h->bus, h->function,
				 h->group[0] && h->function == 0 ? ",multifunction=on" : "");
		if (h->flags & CVMM_HOSTDEV_ROM_OFF)
			snprintf(rom, sizeof(rom), ",rombar=0");
		else if (h->rom_file[0])
			snprintf(rom, sizeof(rom), ",romfile=%s", opt_escape(h->rom_file));
		push(a, "-device");
		pushf(a, "vfio-pci,host=%s,id=%s%s%s", h->host, h->id, place, rom);
	}
}

/* ---- confidential guests (ABI 1.2, trust) ----
 * As dstack runs them (qemu.rs): TDX is a tdx-guest object named by
 * confidential-guest-support with a split irqchip; SEV-SNP adds a shared
 * memfd RAM backend; plain SEV is the sev-guest object. Each boots the
 * firmware its type needs instead of -bios. */

const struct cvmm_spec_confidential *qemu_confidential(const struct cvmm_launch_spec *s)
{
	if (s->struct_size < offsetof(struct cvmm_launch_spec, confidential) + sizeof(s->confidential))
		return NULL;
	return s->confidential;
}

static int check_confidential(const struct cvmm_launch_spec *s,
			      const struct cvmm_spec_confidential *cc, const struct qemu_opts *o,
			      char *err, size_t errlen)
{
	const char *t = cc->type == CVMM_CC_TDX ? "tdx" : cc->type == CVMM_CC_SEV_SNP ? "sev-snp" : "sev";
	if (strcmp(o->accel, "kvm")) {
		snprintf(err, errlen,
			 "confidential %s: a confidential guest runs under KVM only (accel is %s)", t,
			 o->accel);
		return -ENOTSUP;
	}
	if (!cc->firmware[0]) {
		snprintf(err, errlen, "confidential %s: no firmware (OVMF) given", t);
		return -EINVAL;
	}
	if (cc->type == CVMM_CC_SEV_SNP && s->n_numa) {
		/* SNP's RAM is one shared memfd backend: NUMA cells would need
		 * one each, which dstack does not do either. */
		snprintf(err, errlen, "confidential sev-snp: NUMA cells are not supported");
		return -ENOTSUP;
	}
	const char *b64[] = {cc->mrconfigid, cc->host_data};
	for (int i = 0; i < 2; i++)
		for (const char *c = b64[i]; *c; c++)
			if (!isalnum((unsigned char)*c) && *c != '+' && *c != '/' && *c != '=') {
				snprintf(err, errlen, "confidential %s: %s is not base64", t,
					 i ? "host_data" : "mrconfigid");
				return -EINVAL;
			}
	return 0;
}

static void render_confidential(const struct cvmm_launch_spec *s,
				const struct cvmm_spec_confidential *cc, struct argv *a)
{
	char extra[160] = "";
	size_t n = 0;
	if (cc->type == CVMM_CC_TDX) {
		if (cc->mrconfigid[0])
			snprintf(extra, sizeof(extra), ",mrconfigid=%s", cc->mrconfigid);
		push(a, "-object");
		pushf(a, "tdx-guest,id=tdx%s", extra);
	} else {
		if (cc->policy)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, ",policy=0x%llx",
					      (unsigned long long)cc->policy);
		else if (cc->type == CVMM_CC_SEV_SNP)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, ",policy=0x30000");
		if (cc->kernel_hashes)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, ",kernel-hashes=on");
		if (cc->type == CVMM_CC_SEV_SNP && cc->host_data[0])
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, ",host-data=%s",
					      cc->host_data);
		if (cc->type == CVMM_CC_SEV_SNP) {
			push(a, "-object");
			pushf(a, "memory-backend-memfd,id=ram1,size=%lluM,share=true,prealloc=false",
			      (unsigned long long)(s->memory_mb ? s->memory_mb : 256));
		}
		push(a, "-object");
		pushf(a, "%s,id=sev0,cbitpos=%u,reduced-phys-bits=%u%s",
		      cc->type == CVMM_CC_SEV_SNP ? "sev-snp-guest" : "sev-guest",
		      cc->cbitpos ? cc->cbitpos : 51, cc->reduced_phys_bits ? cc->reduced_phys_bits : 1,
		      extra);
	}
	push(a, "-bios");
	push(a, cc->firmware);
}

int qemu_render(const struct cvmm_launch_spec *s, const struct qemu_opts *o, struct argv *a,
		char *err, size_t errlen)
{
	int r;
	if ((r = check_plain("VM name", s->name, err, errlen)) ||
	    (r = check_plain("machine", s->machine, err, errlen)) ||
	    (r = cp_spec_check(s, err, errlen)))
		return r;
	int v12 = cp_spec_has_12(s);
	/* QEMU gives a device without bus= the first PCI bus it finds, which
	 * with a pxb-pcie can be the expander's (where only bridges fit): the
	 * devices the spec does not place go on the root bus by name. */
	const char *root_bus = v12 && s->n_pcie ? ",bus=pcie.0" : "";

	push(a, o->binary);
	push(a, "-name");
	pushf(a, "guest=%s,debug-threads=on", s->name);
	if (s->uuid[0]) {
		push(a, "-uuid");
		push(a, s->uuid);
	}
	const struct cvmm_spec_confidential *cc = qemu_confidential(s);
	if (cc && (r = check_confidential(s, cc, o, err, errlen)))
		return r;
	push(a, "-machine");
	if (cc)
		pushf(a, "%s,accel=%s,kernel-irqchip=split,confidential-guest-support=%s%s,hpet=off",
		      s->machine[0] ? s->machine : "q35", o->accel,
		      cc->type == CVMM_CC_TDX ? "tdx" : "sev0",
		      cc->type == CVMM_CC_SEV_SNP ? ",memory-backend=ram1" : "");
	else
		pushf(a, "%s,accel=%s", s->machine[0] ? s->machine : "q35", o->accel);
	push(a, "-cpu");
	push(a, strcmp(o->accel, "kvm") ? "max" : "host");
	push(a, "-smp");
	if (v12 && s->sockets)
		pushf(a, "%u,sockets=%u,cores=%u,threads=%u", s->vcpus ? s->vcpus : 1, s->sockets,
		      s->cores, s->threads);
	else
		pushf(a, "%u", s->vcpus ? s->vcpus : 1);
	push(a, "-m");
	pushf(a, "%lluM", (unsigned long long)(s->memory_mb ? s->memory_mb : 256));
	if (v12)
		render_numa(s, a);
	push(a, "-nodefaults");
	push(a, "-no-user-config");
	push(a, "-display");
	push(a, "none");
	if (o->sandbox) {
		push(a, "-sandbox");
		push(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	}
	/* A confidential guest boots its type's own firmware (measured):
	 * an image's firmware choice does not apply to it. */
	uint32_t fw = cc ? CVMM_FW_NONE : cp_spec_firmware(s);
	if (cc) {
		render_confidential(s, cc, a);
	} else if (s->bios[0]) {
		push(a, "-bios");
		push(a, s->bios);
	}
	if (fw == CVMM_FW_UEFI) {
		if (!s->firmware_code[0] || !s->firmware_vars[0] || s->bios[0]) {
			snprintf(err, errlen, "firmware uefi: needs firmware_code and firmware_vars, "
					      "and no bios");
			return -EINVAL;
		}
		/* OVMF as two flash chips: the code read-only and shared, the
		 * variable store the VM's own copy. */
		push(a, "-drive");
		pushf(a, "if=pflash,format=raw,unit=0,readonly=on,file=%s", opt_escape(s->firmware_code));
		push(a, "-drive");
		pushf(a, "if=pflash,format=raw,unit=1,file=%s", opt_escape(s->firmware_vars));
	}
	if (s->kernel[0]) {
		push(a, "-kernel");
		push(a, s->kernel);
		if (s->initrd[0]) {
			push(a, "-initrd");
			push(a, s->initrd);
		}
		if (s->cmdline[0]) {
			push(a, "-append");
			push(a, s->cmdline);
		}
	}
	if (s->serial_log[0] && s->run_dir[0]) {
		/* The console is a socket the daemon connects to (cvmm console:
		 * it reads and types there), and QEMU also logs every byte the
		 * guest writes, whether a client is connected or not. logappend:
		 * the daemon may truncate the file to bound it. */
		push(a, "-chardev");
		pushf(a, "socket,id=serial0,path=%s/console.sock,server=on,wait=off,logfile=%s,"
		         "logappend=on",
		      opt_escape(s->run_dir), opt_escape(s->serial_log));
		push(a, "-serial");
		push(a, "chardev:serial0");
	} else if (s->serial_log[0]) {
		/* append=on: the daemon may truncate the file to bound it. */
		push(a, "-chardev");
		pushf(a, "file,id=serial0,path=%s,append=on", opt_escape(s->serial_log));
		push(a, "-serial");
		push(a, "chardev:serial0");
	}
	/* Paused until the backend has pinned the threads (pin.c), so that no
	 * vCPU runs a single instruction elsewhere; it then sends "cont". */
	if (qemu_needs_pinning(s))
		push(a, "-S");
	if (s->run_dir[0]) {
		/* Not "-qmp unix:PATH": there PATH is an implied value, which
		 * QEMU cuts at the first '=' even when commas are doubled. */
		push(a, "-chardev");
		pushf(a, "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off",
		      opt_escape(s->run_dir));
		push(a, "-mon");
		push(a, "chardev=qmp,mode=control");
		push(a, "-pidfile");
		pushf(a, "%s/qemu.pid", s->run_dir);
	}
	if (s->struct_size >= offsetof(struct cvmm_launch_spec, channel_path) +
				  sizeof(s->channel_path) &&
	    s->channel_path[0]) {
		/* The guest channel: QEMU listens, the daemon connects (and
		 * again after a daemon restart: wait=off, one client at a time). */
		if ((r = check_plain("channel name", s->channel_name, err, errlen)))
			return r;
		push(a, "-device");
		pushf(a, "virtio-serial-pci,id=vser0%s", root_bus);
		push(a, "-chardev");
		pushf(a, "socket,id=chan0,path=%s,server=on,wait=off", opt_escape(s->channel_path));
		push(a, "-device");
		pushf(a, "virtserialport,bus=vser0.0,chardev=chan0,name=%s", s->channel_name);
	}
	if (v12) {
		render_pcie(s, a);
		render_hostdevs(s, a);
	}
	for (uint32_t i = 0; i < s->n_disks; i++) {
		const struct cvmm_spec_disk *dk = s->disks[i];
		if ((r = check_plain("disk id", dk->id, err, errlen)))
			return r;
		push(a, "-drive");
		pushf(a, "file=%s,if=none,id=%s,format=%s%s", opt_escape(dk->path), dk->id,
		      dk->format == CVMM_DISK_RAW ? "raw" : "qcow2", dk->readonly ? ",readonly=on" : "");
		push(a, "-device");
		/* Firmware that boots a disk boots the first one, whatever
		 * else (a cloud-init seed) follows it. */
		pushf(a, "virtio-blk-pci,drive=%s%s%s", dk->id, root_bus,
		      fw != CVMM_FW_NONE && i == 0 ? ",bootindex=0" : "");
	}
	for (uint32_t i = 0, k = 0; i < s->n_nics; i++) {
		if ((r = render_nic(s->nics[i], (int)k, root_bus, a, err, errlen)))
			return r;
		k += s->nics[i]->kind == CVMM_NIC_MACVTAP;
	}
	if (s->cid && o->vsock) {
		push(a, "-device");
		pushf(a, "vhost-vsock-pci,guest-cid=%u%s", s->cid, root_bus);
	}
	for (uint32_t i = 0; i < s->n_args; i++)
		if (!strcmp(s->args[i]->backend, "qemu"))
			push(a, s->args[i]->value);
	return 0;
}
