/*
 * render_xml: see render_xml.h. What libvirt 9.0 can express natively is
 * rendered natively (kernel boot, disks, serial console to a file, TAP and
 * macvtap NICs, vsock); the two NIC kinds it cannot express go through
 * <qemu:commandline>, exactly as the QEMU backend renders them:
 *
 *  - CVMM_NIC_USER: libvirt's <interface type='user'> is slirp without port
 *    forwarding (<portForward> needs the passt backend, which would change
 *    the network the guest sees: no net=, dhcpstart=, restrict=). So the
 *    netdev is "-netdev user,...,hostfwd=..." and the device a JSON -device.
 *    JSON on purpose: QEMU 7.2 creates keyval -devices before JSON ones, and
 *    a keyval device with no address would take the slot libvirt gave its
 *    first pcie-root-port; a JSON device is created in command-line order,
 *    after libvirt's, and lands on a free slot.
 *  - CVMM_NIC_STREAM: a unix socket served by a passt the network plugin
 *    runs itself. libvirt 9.0 only knows passt it starts itself (<backend
 *    type='passt'>), and its socket NICs are TCP/UDP only: "-netdev stream".
 *  - CVMM_NIC_TAP: <interface type='ethernet'> with <target managed='no'>:
 *    libvirt opens the existing TAP and leaves it alone.
 *  - CVMM_NIC_MACVTAP: the spec names the macvtap device itself (ifname, see
 *    plugin.h), which the network plugin made; <interface type='ethernet'>
 *    with managed='no' opens an existing macvtap's /dev/tapN (libvirt >= 5.7).
 *    <interface type='direct'> would instead make a second macvtap on top.
 *
 * NIC order: the guest names NICs in PCI order, and libvirt puts its own
 * NICs behind root ports while QEMU puts command-line ones on the root bus,
 * which would reorder mixed NICs. So NIC i sits at slot NIC_SLOT0 + i of
 * the root bus, whichever way it is rendered: the guest sees the spec's
 * order, as with the QEMU backend (eth0 is nics[0]). Past NIC_SLOTS NICs,
 * libvirt and QEMU place them.
 *
 * Values that go into QEMU option strings inside <qemu:arg> are escaped as
 * QEMU wants (',' doubled); every value is then XML-escaped. XML cannot hold
 * most control characters at all, so they are refused.
 */
#include "render_xml.h"
#include "spec_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
/* Root-bus slots 0x10..0x1e: libvirt fills its root ports from 0x01 up and
 * q35 has its LPC/SATA/SMBus at 0x1f. */
#define NIC_SLOT0 0x10
#define NIC_SLOTS 15

struct out {
	FILE *f;
	char *err;
	size_t errlen;
	int rc;
};

static int fail(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct out *o, const char *fmt, ...)
{
	if (o->rc == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(o->err, o->errlen, fmt, ap);
		va_end(ap);
		o->rc = -EINVAL;
	}
	return o->rc;
}

/* XML 1.0 allows tab, LF and CR among the control characters, escaped or not;
 * libvirt's attributes and names take none of them. */
static int check_text(struct out *o, const char *what, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return fail(
			    o, "%s '%s' contains a control character, which domain XML cannot hold",
			    what, v);
	return 0;
}

/* Values that go into a QEMU option list unescaped, or into a JSON string. */
static int check_plain(struct out *o, const char *what, const char *v)
{
	for (const char *p = v; *p; p++)
		if (*p == ',' || *p == '=' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			return fail(
			    o, "%s '%s' may not contain ',', '=', '\"', '\\' or control characters",
			    what, v);
		}
	return 0;
}

/* Writes s XML-escaped for text or a single-quoted attribute. */
static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '\'':
			fputs("&apos;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* Doubles commas: a value inside a QEMU option list. */
static char *qemu_opt_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;
	for (const char *p = s; *p; p++)
		extra += *p == ',';
	char *r = malloc(n + extra + 1), *w = r;
	if (!r)
		abort();
	for (; *s; s++) {
		if (*s == ',')
			*w++ = ',';
		*w++ = *s;
	}
	*w = 0;
	return r;
}

/* <tag>text</tag> on its own line at indent. */
static void elem(struct out *o, int indent, const char *tag, const char *text)
{
	fprintf(o->f, "%*s<%s>", indent, "", tag);
	esc(o->f, text);
	fprintf(o->f, "</%s>\n", tag);
}

static void qemu_arg(FILE *f, const char *value)
{
	fputs("    <qemu:arg value='", f);
	esc(f, value);
	fputs("'/>\n", f);
}

void lv_domain_name(const char *prefix, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s%s", prefix ? prefix : LV_DEFAULT_PREFIX, name);
}

int lv_metadata_is_ours(const char *xml, const char *uuid)
{
	if (!xml || !uuid || !*uuid)
		return 0;
	/* libvirt re-serialises the element; accept either quote style, and
	 * only an element named vm (with or without a prefix). */
	const char *lt = strchr(xml, '<');
	if (!lt)
		return 0;
	const char *name = lt + 1, *colon = strchr(name, ':'), *sp = strpbrk(name, " \t\n/>");
	if (colon && sp && colon < sp)
		name = colon + 1;
	if (strncmp(name, "vm", 2) || !strchr(" \t\n/>", name[2]))
		return 0;
	char a[64], b[64];
	snprintf(a, sizeof(a), " id=\"%s\"", uuid);
	snprintf(b, sizeof(b), " id='%s'", uuid);
	const char *end = strchr(lt, '>');
	const char *hit = strstr(lt, a);
	if (!hit)
		hit = strstr(lt, b);
	return hit && end && hit < end;
}

/* The NIC's MTU; 0 from a host older than ABI 1.1, whose NICs end before it. */
static uint32_t mtu_of(const struct cvmm_spec_nic *n)
{
	return n->struct_size >= offsetof(struct cvmm_spec_nic, mtu) + sizeof(n->mtu) ? n->mtu : 0;
}

static const char *model_of(const struct cvmm_spec_nic *n)
{
	return n->model[0] ? n->model : "virtio-net-pci";
}

/* virtio-net tells the guest its MTU (host_mtu); other models cannot, and
 * then the guest keeps its default, as with the QEMU backend. */
static int mtu_for_guest(const struct cvmm_spec_nic *n)
{
	return mtu_of(n) && !strncmp(model_of(n), "virtio-net", 10);
}

/* The JSON -device of a NIC whose netdev is in <qemu:commandline>, at slot
 * of bus (a QEMU id), or wherever QEMU puts it for a NULL bus. */
static void nic_device_json(FILE *f, const struct cvmm_spec_nic *n, const char *bus, int slot)
{
	char mtu[32] = "", addr[64] = "", *dev = NULL;
	if (mtu_for_guest(n))
		snprintf(mtu, sizeof(mtu), ",\"host_mtu\":%u", mtu_of(n));
	if (bus)
		snprintf(addr, sizeof(addr), ",\"bus\":\"%s\",\"addr\":\"0x%x\"", bus, slot);
	if (asprintf(&dev, "{\"driver\":\"%s\",\"netdev\":\"%s\",\"id\":\"ua-%s\"%s%s%s%s%s}",
	             model_of(n), n->id, n->id, n->mac[0] ? ",\"mac\":\"" : "", n->mac,
	             n->mac[0] ? "\"" : "", mtu, addr) < 0)
		abort();
	qemu_arg(f, "-device");
	qemu_arg(f, dev);
	free(dev);
}

/* A user or stream NIC: its -netdev and -device go to cmd (qemu:commandline). */
static int nic_commandline(struct out *o, FILE *cmd, const struct cvmm_spec_nic *n, const char *bus,
                           int slot)
{
	char *netdev = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&netdev, &len);
	if (!f)
		abort();
	if (n->kind == CVMM_NIC_USER) {
		fprintf(f, "user,id=%s", n->id);
		if (n->user_net[0]) {
			char *v = qemu_opt_escape(n->user_net);
			fprintf(f, ",net=%s", v);
			free(v);
		}
		if (n->user_dhcp_start[0]) {
			char *v = qemu_opt_escape(n->user_dhcp_start);
			fprintf(f, ",dhcpstart=%s", v);
			free(v);
		}
		fprintf(f, ",restrict=%s", n->user_restrict ? "on" : "off");
		for (uint32_t i = 0; i < n->n_ports; i++) {
			const struct cvmm_port_map *p = n->ports[i];
			const char *proto = p->protocol == CVMM_PROTO_UDP ? "udp" : "tcp";
			struct in_addr in;
			/* It is QEMU's slirp under libvirt too: IPv4 binds only. */
			if (p->host_address[0] && inet_pton(AF_INET, p->host_address, &in) != 1) {
				fail(
				    o,
				    "NIC %s: port %s/%u: host address '%s' is not an IPv4 address; "
				    "QEMU's user network forwards IPv4 only",
				    n->id, proto, p->host_port, p->host_address);
				break;
			}
			fprintf(f, ",hostfwd=%s:%s:%u-:%u", proto, p->host_address, p->host_port,
			        p->vm_port);
		}
	} else {
		char *v = qemu_opt_escape(n->socket);
		fprintf(f, "stream,id=%s,server=off,addr.type=unix,addr.path=%s", n->id, v);
		free(v);
	}
	if (fclose(f) != 0)
		abort();
	if (o->rc == 0) {
		qemu_arg(cmd, "-netdev");
		qemu_arg(cmd, netdev);
		nic_device_json(cmd, n, bus, slot);
	}
	free(netdev);
	return o->rc;
}

/* A TAP or macvtap NIC: libvirt-native, at slot of the bus with index bus
 * (slot -1: libvirt places it). */
static void nic_ethernet(struct out *o, const struct cvmm_spec_nic *n, unsigned bus, int slot)
{
	fprintf(o->f, "    <interface type='ethernet'>\n");
	if (n->mac[0])
		fprintf(o->f, "      <mac address='%s'/>\n", n->mac);
	fprintf(o->f, "      <target dev='");
	esc(o->f, n->ifname);
	fprintf(o->f, "' managed='no'/>\n");
	/* libvirt calls virtio-net-pci "virtio"; other models pass through. */
	const char *model = model_of(n);
	fprintf(o->f, "      <model type='");
	esc(o->f, strcmp(model, "virtio-net-pci") ? model : "virtio");
	fprintf(o->f, "'/>\n");
	if (mtu_for_guest(n))
		fprintf(o->f, "      <mtu size='%u'/>\n", mtu_of(n));
	fprintf(o->f, "      <alias name='ua-%s'/>\n", n->id);
	if (slot >= 0)
		fprintf(o->f,
		        "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x%02x' "
		        "function='0x0'/>\n",
		        bus, slot);
	fprintf(o->f, "    </interface>\n");
}

/* A user alias ("ua-" + [A-Za-z0-9_-]) when the id allows one. */
static int alias_ok(const char *id)
{
	if (!*id)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

static void disk_target(uint32_t i, char *out, size_t len)
{
	if (i < 26)
		snprintf(out, len, "vd%c", 'a' + i);
	else
		snprintf(out, len, "vd%c%c", 'a' + (int)(i / 26) - 1, 'a' + (int)(i % 26));
}

static int check_spec(struct out *o, const struct cvmm_launch_spec *s, const struct lv_opts *opt)
{
	if (!s->name[0])
		return fail(o, "VM name is empty");
	if (strchr(s->name, '/'))
		return fail(
		    o, "VM name '%s' may not contain '/' (libvirt refuses it in a domain name)",
		    s->name);
	if (check_text(o, "VM name", s->name) || check_text(o, "machine", s->machine) ||
	    check_text(o, "kernel", s->kernel) || check_text(o, "initrd", s->initrd) ||
	    check_text(o, "cmdline", s->cmdline) || check_text(o, "bios", s->bios) ||
	    check_text(o, "serial log", s->serial_log) ||
	    check_text(o, "name prefix", opt->name_prefix ? opt->name_prefix : "") ||
	    check_text(o, "emulator", opt->emulator ? opt->emulator : "") ||
	    check_text(o, "DAC label", opt->dac_label ? opt->dac_label : ""))
		return o->rc;
	if (s->uuid[0] && check_plain(o, "UUID", s->uuid))
		return o->rc;
	if (cp_spec_firmware(s) == CVMM_FW_UEFI &&
	    (check_text(o, "firmware code", s->firmware_code) ||
	     check_text(o, "firmware vars", s->firmware_vars)))
		return o->rc;
	if (cp_spec_firmware(s) == CVMM_FW_UEFI && (!s->firmware_code[0] || !s->firmware_vars[0]))
		return fail(o, "firmware uefi: needs firmware_code and firmware_vars");
	if (strcmp(opt->type, "qemu") && strcmp(opt->type, "kvm"))
		return fail(o, "domain type '%s' is not \"qemu\" or \"kvm\"", opt->type);
	const struct cvmm_spec_confidential *cc = lv_confidential(s);
	if (cc) {
		const char *t = lv_cc_type(cc);
		if (strcmp(opt->type, "kvm"))
			return fail(o, "confidential %s: a confidential guest runs under KVM only "
				       "(domain type is %s)", t, opt->type);
		if (!cc->firmware[0])
			return fail(o, "confidential %s: no firmware (OVMF) given", t);
		if (check_text(o, "firmware", cc->firmware) ||
		    check_text(o, "mrconfigid", cc->mrconfigid) ||
		    check_text(o, "host_data", cc->host_data))
			return o->rc;
		if (cc->type == CVMM_CC_SEV_SNP && s->n_numa)
			return fail(o, "confidential sev-snp: NUMA cells are not supported");
	}
	for (uint32_t i = 0; i < s->n_disks; i++)
		if (check_text(o, "disk path", s->disks[i]->path) ||
		    check_text(o, "disk id", s->disks[i]->id))
			return o->rc;
	for (uint32_t i = 0; i < s->n_nics; i++) {
		const struct cvmm_spec_nic *n = s->nics[i];
		if (check_plain(o, "NIC id", n->id) || check_plain(o, "MAC address", n->mac) ||
		    check_plain(o, "NIC model", n->model) ||
		    check_text(o, "NIC device", n->ifname) ||
		    check_text(o, "NIC socket", n->socket))
			return o->rc;
		if (n->kind < CVMM_NIC_USER || n->kind > CVMM_NIC_MACVTAP)
			return fail(o, "NIC %s: kind %u is not supported by the libvirt backend",
			            n->id, n->kind);
		if (mtu_of(n) && (mtu_of(n) < 68 || mtu_of(n) > 65535))
			return fail(o, "NIC %s: MTU %u is outside 68..65535", n->id, mtu_of(n));
		if (!alias_ok(n->id))
			return fail(o, "NIC id '%s' must be letters, digits, '_' or '-'", n->id);
		if ((n->kind == CVMM_NIC_TAP || n->kind == CVMM_NIC_MACVTAP) && !n->ifname[0])
			return fail(o, "NIC %s: a %s NIC needs its device name (ifname)", n->id,
			            n->kind == CVMM_NIC_TAP ? "TAP" : "macvtap");
		if (n->kind == CVMM_NIC_STREAM && !n->socket[0])
			return fail(o, "NIC %s: a stream NIC needs its socket path", n->id);
	}
	for (uint32_t i = 0; i < s->n_args; i++)
		if (!strcmp(s->args[i]->backend, "libvirt") &&
		    check_text(o, "libvirt argument", s->args[i]->value))
			return o->rc;
	return 0;
}

/* ---- 1.2: topology and passthrough ----
 * PCIe element i of the spec is the controller with index i + 1 (index 0 is
 * q35's pcie-root); children name their parent's index as their bus, as in
 * NVIDIA's HGX guide. libvirt adds root ports of its own for the devices it
 * places (disks), with indexes after ours. */

static unsigned bus_index(const struct cvmm_launch_spec *s, const char *id)
{
	uint32_t i = 0;
	return cp_pcie_find(s, id, &i) ? i + 1 : 0;
}

static void cpus_attr(FILE *f, const char *list)
{
	cpu_set_t set;
	char canon[512];
	cp_cpulist_parse(list, &set);
	cp_cpulist_format(&set, canon, sizeof(canon));
	fputs(canon, f);
}

static void render_cputune(struct out *o, const struct cvmm_launch_spec *s)
{
	if (!s->n_pins && !s->emulator_cpus[0])
		return;
	fprintf(o->f, "  <cputune>\n");
	for (uint32_t i = 0; i < s->n_pins; i++) {
		fprintf(o->f, "    <vcpupin vcpu='%u' cpuset='", s->pins[i]->vcpu);
		cpus_attr(o->f, s->pins[i]->host_cpus);
		fprintf(o->f, "'/>\n");
	}
	if (s->emulator_cpus[0]) {
		fprintf(o->f, "    <emulatorpin cpuset='");
		cpus_attr(o->f, s->emulator_cpus);
		fprintf(o->f, "'/>\n");
	}
	fprintf(o->f, "  </cputune>\n");
}

static void render_numatune(struct out *o, const struct cvmm_launch_spec *s)
{
	int any = 0;
	for (uint32_t i = 0; i < s->n_numa; i++)
		any |= s->numa[i]->host_node >= 0;
	if (!any)
		return;
	fprintf(o->f, "  <numatune>\n");
	for (uint32_t i = 0; i < s->n_numa; i++)
		if (s->numa[i]->host_node >= 0)
			fprintf(o->f, "    <memnode cellid='%u' mode='strict' nodeset='%d'/>\n", i,
			        s->numa[i]->host_node);
	fprintf(o->f, "  </numatune>\n");
}

/* One <page> per page size, naming the cells (guest nodes) it backs. */
static void render_hugepages(struct out *o, const struct cvmm_launch_spec *s)
{
	int any = 0;
	for (uint32_t i = 0; i < s->n_numa; i++)
		any |= s->numa[i]->hugepage_kb != 0;
	if (!any)
		return;
	fprintf(o->f, "  <memoryBacking>\n    <hugepages>\n");
	for (uint32_t i = 0; i < s->n_numa; i++) {
		uint32_t kb = s->numa[i]->hugepage_kb;
		int first = 1;
		for (uint32_t j = 0; j < i; j++)
			first &= s->numa[j]->hugepage_kb != kb;
		if (!kb || !first)
			continue;
		cpu_set_t cells;
		char list[256];
		CPU_ZERO(&cells);
		for (uint32_t j = i; j < s->n_numa; j++)
			if (s->numa[j]->hugepage_kb == kb)
				CPU_SET(j, &cells);
		cp_cpulist_format(&cells, list, sizeof(list));
		fprintf(o->f, "      <page size='%u' unit='KiB' nodeset='%s'/>\n", kb, list);
	}
	fprintf(o->f, "    </hugepages>\n  </memoryBacking>\n");
}

/* <cpu>'s children: the topology and the guest's NUMA cells. */
static void render_cpu_body(struct out *o, const struct cvmm_launch_spec *s)
{
	if (s->sockets)
		fprintf(o->f, "    <topology sockets='%u' dies='1' cores='%u' threads='%u'/>\n",
		        s->sockets, s->cores, s->threads);
	if (!s->n_numa)
		return;
	fprintf(o->f, "    <numa>\n");
	for (uint32_t i = 0; i < s->n_numa; i++) {
		fprintf(o->f, "      <cell id='%u' cpus='", i);
		cpus_attr(o->f, s->numa[i]->cpus);
		fprintf(o->f, "' memory='%llu' unit='MiB'/>\n",
		        (unsigned long long)s->numa[i]->memory_mb);
	}
	fprintf(o->f, "    </numa>\n");
}

static void render_controllers(struct out *o, const struct cvmm_launch_spec *s)
{
	static const char *const models[] = {
	    [CVMM_PCIE_EXPANDER] = "pcie-expander-bus",
	    [CVMM_PCIE_ROOT_PORT] = "pcie-root-port",
	    [CVMM_PCIE_SWITCH_UP] = "pcie-switch-upstream-port",
	    [CVMM_PCIE_SWITCH_DOWN] = "pcie-switch-downstream-port",
	};
	for (uint32_t i = 0; i < s->n_pcie; i++) {
		const struct cvmm_spec_pcie *e = s->pcie[i];
		fprintf(o->f, "    <controller type='pci' index='%u' model='%s'>\n", i + 1,
		        models[e->kind]);
		if (e->kind == CVMM_PCIE_EXPANDER) {
			fprintf(o->f, "      <target busNr='%u'>\n", e->bus_nr);
			if (e->numa_cell >= 0)
				fprintf(o->f, "        <node>%d</node>\n", e->numa_cell);
			fprintf(o->f, "      </target>\n");
		} else if (e->kind != CVMM_PCIE_SWITCH_UP) {
			fprintf(o->f, "      <target chassis='%u' port='0x%x'/>\n",
			        cp_pcie_chassis(s, i), cp_pcie_port(s, i));
		}
		/* No user alias: libvirt's QEMU id "pci.<index>" is what a
		 * command-line NIC names as its bus. */
		/* On the root complex libvirt chooses the slot; below our own
		 * elements, slot k is the element's place among its siblings. */
		if (e->parent[0]) {
			uint32_t k = 0;
			for (uint32_t j = 0; j < i; j++)
				k += !strcmp(s->pcie[j]->parent, e->parent);
			fprintf(o->f,
			        "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x%02x' "
			        "function='0x0'/>\n",
			        bus_index(s, e->parent), k);
		}
		fprintf(o->f, "    </controller>\n");
	}
}

static void render_hostdevs(struct out *o, const struct cvmm_launch_spec *s)
{
	for (uint32_t i = 0; i < s->n_hostdevs; i++) {
		const struct cvmm_spec_hostdev *h = s->hostdevs[i];
		unsigned dom, bus, slot, fn;
		/* cp_spec_check accepted the form 0000:12:00.0. */
		sscanf(h->host, "%x:%x:%x.%x", &dom, &bus, &slot, &fn);
		/* managed='no': binding to vfio-pci is cvmm's (gpu-vfio), which
		 * restores the driver it found; libvirt must not rebind. */
		fprintf(o->f, "    <hostdev mode='subsystem' type='pci' managed='no'>\n");
		fprintf(o->f, "      <driver name='vfio'/>\n");
		fprintf(o->f,
		        "      <source>\n        <address domain='0x%04x' bus='0x%02x' slot='0x%02x' "
		        "function='0x%x'/>\n      </source>\n",
		        dom, bus, slot, fn);
		fprintf(o->f, "      <alias name='ua-%s'/>\n", h->id);
		if (h->flags & CVMM_HOSTDEV_ROM_OFF) {
			fprintf(o->f, "      <rom bar='off'/>\n");
		} else if (h->rom_file[0]) {
			fprintf(o->f, "      <rom file='");
			esc(o->f, h->rom_file);
			fprintf(o->f, "'/>\n");
		}
		if (h->bus[0])
			fprintf(o->f,
			        "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' "
			        "function='0x%x'%s/>\n",
			        bus_index(s, h->bus), h->function,
			        h->group[0] && h->function == 0 ? " multifunction='on'" : "");
		fprintf(o->f, "    </hostdev>\n");
	}
}

/* ---- confidential guests (ABI 1.2, trust): <launchSecurity> ---- */

const struct cvmm_spec_confidential *lv_confidential(const struct cvmm_launch_spec *s)
{
	if (s->struct_size < offsetof(struct cvmm_launch_spec, confidential) + sizeof(s->confidential))
		return NULL;
	return s->confidential;
}

const char *lv_cc_type(const struct cvmm_spec_confidential *cc)
{
	return cc->type == CVMM_CC_TDX ? "tdx" : cc->type == CVMM_CC_SEV_SNP ? "sev-snp" : "sev";
}

static void render_launch_security(struct out *o, const struct cvmm_spec_confidential *cc)
{
	fprintf(o->f, "  <launchSecurity type='%s'", lv_cc_type(cc));
	if (cc->type != CVMM_CC_TDX && cc->kernel_hashes)
		fprintf(o->f, " kernelHashes='yes'");
	fprintf(o->f, ">\n");
	if (cc->type == CVMM_CC_TDX) {
		if (cc->policy)
			fprintf(o->f, "    <policy>0x%llx</policy>\n", (unsigned long long)cc->policy);
		if (cc->mrconfigid[0])
			elem(o, 4, "mrConfigId", cc->mrconfigid);
	} else {
		fprintf(o->f, "    <cbitpos>%u</cbitpos>\n", cc->cbitpos ? cc->cbitpos : 51);
		fprintf(o->f, "    <reducedPhysBits>%u</reducedPhysBits>\n",
			cc->reduced_phys_bits ? cc->reduced_phys_bits : 1);
		if (cc->type == CVMM_CC_SEV_SNP)
			fprintf(o->f, "    <policy>0x%08llx</policy>\n",
				(unsigned long long)(cc->policy ? cc->policy : 0x30000));
		else if (cc->policy)
			fprintf(o->f, "    <policy>0x%04llx</policy>\n", (unsigned long long)cc->policy);
		if (cc->type == CVMM_CC_SEV_SNP && cc->host_data[0])
			elem(o, 4, "hostData", cc->host_data);
	}
	fprintf(o->f, "  </launchSecurity>\n");
}

int lv_render(const struct cvmm_launch_spec *s, const struct lv_opts *opt, char **xml, char *err,
              size_t errlen)
{
	char *buf = NULL, *cmdbuf = NULL;
	size_t len = 0, cmdlen = 0;
	struct out o = {.err = err, .errlen = errlen};
	*xml = NULL;
	if (errlen)
		err[0] = 0;
	if (check_spec(&o, s, opt))
		return o.rc;
	if ((o.rc = cp_spec_check(s, err, errlen)))
		return o.rc;
	int v12 = cp_spec_has_12(s);
	const struct cvmm_spec_confidential *cc = lv_confidential(s);
	o.f = open_memstream(&buf, &len);
	FILE *cmd = open_memstream(&cmdbuf, &cmdlen);
	if (!o.f || !cmd)
		abort();
	int kvm = !strcmp(opt->type, "kvm");
	char name[128];
	lv_domain_name(opt->name_prefix, s->name, name, sizeof(name));

	fprintf(o.f, "<domain type='%s' xmlns:qemu='%s'>\n", kvm ? "kvm" : "qemu", QEMU_NS);
	elem(&o, 2, "name", name);
	if (s->uuid[0])
		elem(&o, 2, "uuid", s->uuid);
	/* What makes a domain cvmm's: this element with the VM's id. */
	fprintf(o.f, "  <metadata>\n    <cvmm:vm xmlns:cvmm='%s'", LV_XMLNS);
	if (s->uuid[0])
		fprintf(o.f, " id='%s'", s->uuid);
	fprintf(o.f, " name='");
	esc(o.f, s->name);
	fprintf(o.f, "'/>\n  </metadata>\n");
	fprintf(o.f, "  <memory unit='MiB'>%llu</memory>\n",
	        (unsigned long long)(s->memory_mb ? s->memory_mb : 256));
	fprintf(o.f, "  <vcpu placement='static'>%u</vcpu>\n", s->vcpus ? s->vcpus : 1);
	if (v12) {
		render_cputune(&o, s);
		render_numatune(&o, s);
		render_hugepages(&o, s);
	}
	if (cc && cc->type == CVMM_CC_SEV_SNP) /* guest memory the host may share */
		fprintf(o.f, "  <memoryBacking>\n    <source type='memfd'/>\n"
			     "    <access mode='shared'/>\n  </memoryBacking>\n");

	fprintf(o.f, "  <os>\n    <type arch='x86_64' machine='");
	esc(o.f, s->machine[0] ? s->machine : "q35");
	fprintf(o.f, "'>hvm</type>\n");
	/* A confidential guest boots its type's own firmware (measured):
	 * an image's firmware choice does not apply to it. */
	uint32_t fw = cc ? CVMM_FW_NONE : cp_spec_firmware(s);
	if (cc) {
		/* The type's OVMF build, stateless (no NVRAM): measured as is. */
		fprintf(o.f, "    <loader readonly='yes' type='rom'>");
		esc(o.f, cc->firmware);
		fprintf(o.f, "</loader>\n");
	} else if (s->bios[0]) {
		fprintf(o.f, "    <loader type='rom'>");
		esc(o.f, s->bios);
		fprintf(o.f, "</loader>\n");
	} else if (fw == CVMM_FW_UEFI) {
		/* OVMF: the code read-only, the VM's own variable store. */
		fprintf(o.f, "    <loader readonly='yes' type='pflash'>");
		esc(o.f, s->firmware_code);
		fprintf(o.f, "</loader>\n    <nvram>");
		esc(o.f, s->firmware_vars);
		fprintf(o.f, "</nvram>\n");
	}
	if (s->kernel[0]) {
		elem(&o, 4, "kernel", s->kernel);
		if (s->initrd[0])
			elem(&o, 4, "initrd", s->initrd);
		if (s->cmdline[0])
			elem(&o, 4, "cmdline", s->cmdline);
	}
	fprintf(o.f, "  </os>\n");
	/* ACPI: graceful stop is the ACPI power button. */
	if (cc) /* split irqchip, as QEMU's kernel-irqchip=split */
		fprintf(o.f, "  <features>\n    <acpi/>\n    <ioapic driver='qemu'/>\n  </features>\n");
	else
		fprintf(o.f, "  <features>\n    <acpi/>\n  </features>\n");
	/* The QEMU backend's -cpu max under TCG, -cpu host under KVM. */
	if (v12 && (s->sockets || s->n_numa)) {
		fprintf(o.f, "  <cpu mode='%s' check='none'>\n", kvm ? "host-passthrough" : "maximum");
		render_cpu_body(&o, s);
		fprintf(o.f, "  </cpu>\n");
	} else {
		fprintf(o.f, "  <cpu mode='%s' check='none'/>\n", kvm ? "host-passthrough" : "maximum");
	}
	fprintf(o.f, "  <on_poweroff>destroy</on_poweroff>\n");
	fprintf(o.f, "  <on_crash>destroy</on_crash>\n");

	fprintf(o.f, "  <devices>\n");
	if (opt->emulator && opt->emulator[0])
		elem(&o, 4, "emulator", opt->emulator);
	for (uint32_t i = 0; i < s->n_disks; i++) {
		const struct cvmm_spec_disk *d = s->disks[i];
		char target[8];
		disk_target(i, target, sizeof(target));
		fprintf(o.f, "    <disk type='file' device='disk'>\n");
		fprintf(o.f, "      <driver name='qemu' type='%s'/>\n",
		        d->format == CVMM_DISK_RAW ? "raw" : "qcow2");
		fprintf(o.f, "      <source file='");
		esc(o.f, d->path);
		fprintf(o.f, "'/>\n      <target dev='%s' bus='virtio'/>\n", target);
		if (d->readonly)
			fprintf(o.f, "      <readonly/>\n");
		if (fw != CVMM_FW_NONE && i == 0) /* firmware boots the first disk */
			fprintf(o.f, "      <boot order='1'/>\n");
		if (alias_ok(d->id))
			fprintf(o.f, "      <alias name='ua-%s'/>\n", d->id);
		fprintf(o.f, "    </disk>\n");
	}
	/* Nothing the QEMU backend's machine lacks: no USB, no balloon. */
	fprintf(o.f, "    <controller type='usb' model='none'/>\n");
	/* QEMU's name of the root bus: q35's PCIe root, or i440fx's PCI bus. */
	const char *root_bus =
	    strstr(s->machine[0] ? s->machine : "q35", "q35") ? "pcie.0" : "pci.0";
	if (cp_spec_has_12(s)) {
		render_controllers(&o, s);
		render_hostdevs(&o, s);
	}
	for (uint32_t i = 0; i < s->n_nics && o.rc == 0; i++) {
		const struct cvmm_spec_nic *n = s->nics[i];
		int slot = i < NIC_SLOTS ? NIC_SLOT0 + (int)i : -1;
		unsigned bus = 0;
		char qbus[48];
		/* Under its port: slot 0 of the port's bus, libvirt's "pci.<index>". */
		if (cp_nic_bus(n)[0]) {
			bus = bus_index(s, cp_nic_bus(n));
			slot = 0;
		}
		if (bus)
			snprintf(qbus, sizeof(qbus), "pci.%u", bus);
		else
			snprintf(qbus, sizeof(qbus), "%s", root_bus);
		if (n->kind == CVMM_NIC_TAP || n->kind == CVMM_NIC_MACVTAP)
			nic_ethernet(&o, n, bus, slot);
		else
			nic_commandline(&o, cmd, n, slot >= 0 ? qbus : NULL, slot);
	}
	if (s->serial_log[0] && s->run_dir[0]) {
		/* A socket the daemon connects to (cvmm console), the guest's
		 * output logged all the same; append: the daemon bounds the
		 * file by truncating it. */
		fprintf(o.f, "    <serial type='unix'>\n      <source mode='bind' path='");
		esc(o.f, s->run_dir);
		fprintf(o.f, "/console.sock'/>\n      <log file='");
		esc(o.f, s->serial_log);
		fprintf(o.f, "' append='on'/>\n      <target port='0'/>\n    </serial>\n");
	} else if (s->serial_log[0]) {
		/* append: the daemon bounds the file by truncating it. */
		fprintf(o.f, "    <serial type='file'>\n      <source path='");
		esc(o.f, s->serial_log);
		fprintf(o.f, "' append='on'/>\n      <target port='0'/>\n    </serial>\n");
	}
	if (s->struct_size >= offsetof(struct cvmm_launch_spec, channel_path) +
				  sizeof(s->channel_path) &&
	    s->channel_path[0]) {
		/* mode='bind': QEMU listens, the daemon connects. */
		fprintf(o.f, "    <channel type='unix'>\n      <source mode='bind' path='");
		esc(o.f, s->channel_path);
		fprintf(o.f, "'/>\n      <target type='virtio' name='");
		esc(o.f, s->channel_name);
		fprintf(o.f, "'/>\n    </channel>\n");
	}
	if (s->cid && opt->vsock)
		fprintf(o.f,
		        "    <vsock model='virtio'>\n      <cid auto='no' address='%u'/>\n    "
		        "</vsock>\n",
		        s->cid);
	fprintf(o.f, "    <memballoon model='none'/>\n");
	fprintf(o.f, "  </devices>\n");
	if (opt->dac_label && opt->dac_label[0]) {
		/* libvirt's QEMU runs as this user and changes no file's owner:
		 * the files live in cvmm's own (root-only) directories. */
		fprintf(o.f, "  <seclabel type='static' model='dac' relabel='no'>\n    <label>");
		esc(o.f, opt->dac_label);
		fprintf(o.f, "</label>\n  </seclabel>\n");
	}
	for (uint32_t i = 0; i < s->n_args; i++)
		if (!strcmp(s->args[i]->backend, "libvirt"))
			qemu_arg(cmd, s->args[i]->value);
	if (fclose(cmd) != 0)
		abort();
	if (cmdlen)
		fprintf(o.f, "  <qemu:commandline>\n%s  </qemu:commandline>\n", cmdbuf);
	if (cc)
		render_launch_security(&o, cc);
	fprintf(o.f, "</domain>\n");
	if (fclose(o.f) != 0)
		abort();
	free(cmdbuf);
	if (o.rc) {
		free(buf);
		return o.rc;
	}
	*xml = buf;
	return 0;
}

/* ---- what libvirt's domain capabilities allow (confidential guests) ---- */

/* The element <name ...> or <name/> inside [from, to), or NULL. */
static const char *find_elem(const char *from, const char *to, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = from; p && p < to && (p = strstr(p, "<")) && p < to; p++)
		if (!strncmp(p + 1, name, n) && (p[1 + n] == ' ' || p[1 + n] == '/' || p[1 + n] == '>'))
			return p;
	return NULL;
}

/* The value of attribute attr in the start tag at tag ("" if absent). */
static void attr_of(const char *tag, const char *attr, char *out, size_t len)
{
	char pat[64];
	const char *end = strchr(tag, '>');
	out[0] = 0;
	for (int q = 0; q < 2; q++) {
		snprintf(pat, sizeof(pat), " %s=%c", attr, q ? '"' : '\'');
		const char *p = strstr(tag, pat);
		if (p && (!end || p < end)) {
			p += strlen(pat);
			size_t k = strcspn(p, q ? "\"" : "'");
			snprintf(out, len, "%.*s", (int)k, p);
			return;
		}
	}
}

int lv_domcaps_cc(const char *xml, const char *type, char *why, size_t len)
{
	char sup[16];
	const char *f = xml ? strstr(xml, "<features>") : NULL;
	const char *fe = f ? strstr(f, "</features>") : NULL;
	why[0] = 0;
	if (!f || !fe) {
		snprintf(why, len, "its domain capabilities have no <features>");
		return 0;
	}
	const char *ls = find_elem(f, fe, "launchSecurity");
	if (ls) {
		attr_of(ls, "supported", sup, sizeof(sup));
		const char *le = strstr(ls, "</launchSecurity>");
		char want[64];
		snprintf(want, sizeof(want), "<value>%s</value>", type);
		if (!strcmp(sup, "yes") && le && le < fe) {
			const char *v = strstr(ls, want);
			if (v && v < le)
				return 1;
		}
	}
	const char *e = find_elem(f, fe, type);
	if (e) {
		attr_of(e, "supported", sup, sizeof(sup));
		if (!strcmp(sup, "yes"))
			return 1;
		snprintf(why, len, "its domain capabilities say <%s supported='%s'/>", type, sup);
		return 0;
	}
	if (ls)
		snprintf(why, len,
			 "its domain capabilities' <launchSecurity supported='%s'> does not list "
			 "sectype '%s'",
			 sup, type);
	else
		snprintf(why, len,
			 "its domain capabilities have no <%s> feature (this libvirt does not know "
			 "%s guests)",
			 type, type);
	return 0;
}
