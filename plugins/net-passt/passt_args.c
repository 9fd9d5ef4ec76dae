/*
 * passt_args: see passt_args.h. Messages name the setting they are about;
 * the caller supplies those names, since the same check serves the plugin's
 * config section and a VM's per-NIC parameters.
 */
#include "passt_args.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int passt_ip_family(const char *s)
{
	unsigned char buf[16];
	if (!s || !*s)
		return 0;
	if (inet_pton(AF_INET, s, buf) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, buf) == 1)
		return 6;
	return 0;
}

int passt_netmask_prefix(const char *s)
{
	if (!s || !*s)
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		if (strlen(s) > 2)
			return -1;
		int p = atoi(s);
		return p <= 32 ? p : -1;
	}
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	uint32_t m = ntohl(a.s_addr);
	int p = 0;
	while (p < 32 && (m & (0x80000000u >> p)))
		p++;
	/* Contiguous: nothing may be set after the first zero bit. */
	if (p < 32 && (m << p))
		return -1;
	return p;
}

void passt_netmask_from_prefix(int prefix, char *out, size_t len)
{
	uint32_t m = prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~0u << (32 - prefix);
	snprintf(out, len, "%u.%u.%u.%u", m >> 24, (m >> 16) & 0xff, (m >> 8) & 0xff, m & 0xff);
}

int passt_mac_valid(const char *s)
{
	unsigned b[6];
	char tail;
	if (!s || strlen(s) != 17)
		return 0;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return 0;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return 0;
	if (b[0] & 1) /* multicast / broadcast */
		return 0;
	return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) != 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static uint32_t v4(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return ntohl(a.s_addr);
}

int passt_check_l3(const char *address, const char *netmask, const char *gateway,
                   const char *const names[3], char *err, size_t errlen)
{
	const char *vals[3] = {address, netmask, gateway};
	for (int i = 0; i < 3; i += 2) {
		if (!vals[i][0])
			continue;
		int fam = passt_ip_family(vals[i]);
		if (fam == 6)
			return fail(err, errlen,
			            "%s: must be an IPv4 address, got '%s' (passt takes the "
			            "guest's IPv6 address and gateway from the host)",
			            names[i], vals[i]);
		if (fam != 4)
			return fail(err, errlen, "%s: must be an IPv4 address, got '%s'", names[i],
			            vals[i]);
	}
	int prefix = -1;
	if (netmask[0]) {
		prefix = passt_netmask_prefix(netmask);
		if (prefix < 0)
			return fail(err, errlen,
			            "%s: must be a contiguous IPv4 netmask (255.255.255.0) or a "
			            "prefix length (24), got '%s'",
			            names[1], netmask);
		if (prefix < 1 || prefix > 30)
			return fail(err, errlen,
			            "%s: a prefix of /%d leaves no room for a guest and its "
			            "gateway (use /1 to /30)",
			            names[1], prefix);
	}
	if (address[0] && gateway[0] && !strcmp(address, gateway))
		return fail(err, errlen, "%s: %s is also the guest's address (%s)", names[2],
		            gateway, names[0]);
	if (prefix < 0)
		return 0;
	uint32_t mask = ~0u << (32 - prefix);
	const char *which[2] = {address, gateway};
	const char *wname[2] = {names[0], names[2]};
	for (int i = 0; i < 2; i++) {
		if (!which[i][0])
			continue;
		uint32_t a = v4(which[i]);
		if ((a & ~mask) == 0 || (a & ~mask) == ~mask)
			return fail(err, errlen,
			            "%s: %s is the network or broadcast address of /%d", wname[i],
			            which[i], prefix);
	}
	if (address[0] && gateway[0] && (v4(address) & mask) != (v4(gateway) & mask)) {
		char net[16];
		struct in_addr n = {.s_addr = htonl(v4(address) & mask)};
		inet_ntop(AF_INET, &n, net, sizeof(net));
		return fail(err, errlen,
		            "%s: %s is outside the guest's subnet %s/%d (%s, %s): the guest could "
		            "not reach it",
		            names[2], gateway, net, prefix, names[0], names[1]);
	}
	return 0;
}

int passt_check_ports(const struct passt_port *ports, int n, int ipv4_only, char *err,
                      size_t errlen)
{
	if (n > PASST_MAX_PORTS)
		return fail(err, errlen, "ports: mode 'passt' carries at most %d mappings",
		            PASST_MAX_PORTS);
	for (int i = 0; i < n; i++) {
		const struct passt_port *p = &ports[i];
		int fam = passt_ip_family(p->addr);
		if (!fam)
			return fail(err, errlen,
			            "ports[%d].host_address: '%s' is not a numeric address", i,
			            p->addr);
		if (fam == 6 && ipv4_only)
			return fail(err, errlen,
			            "ports[%d].host_address: %s is IPv6, but passt runs IPv4-only "
			            "here (plugin.net-passt.ipv4_only = true)",
			            i, p->addr);
		if (!p->host_port || p->host_port > 65535 || !p->vm_port || p->vm_port > 65535)
			return fail(err, errlen, "ports[%d]: ports must be 1..65535", i);
		for (int k = 0; k < i; k++)
			if (ports[k].udp == p->udp && ports[k].host_port == p->host_port &&
			    ports[k].vm_port != p->vm_port)
				return fail(
				    err, errlen,
				    "ports[%d]: %s host port %u goes to VM port %u in ports[%d]; "
				    "passt forwards a host port to one VM port only",
				    i, p->udp ? "udp" : "tcp", p->host_port, ports[k].vm_port, k);
	}
	return 0;
}

static void push(struct passt_argv *a, const char *s)
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
	a->v[++a->n] = NULL;
}

static void push2(struct passt_argv *a, const char *opt, const char *val)
{
	push(a, opt);
	push(a, val);
}

void passt_argv_free(struct passt_argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

int passt_build_argv(const struct passt_nic *n, struct passt_argv *a, char *err, size_t errlen)
{
	if (!n->socket[0]) {
		snprintf(err, errlen, "no socket path");
		return -EINVAL;
	}
	push(a, n->binary);
	/* Our process, not a daemonised grandchild: its pid is the one we
	 * spawned; it ends when its one client (QEMU) goes. */
	push(a, "--foreground");
	push(a, "--one-off");
	if (n->runas[0])
		push2(a, "--runas", n->runas);
	push2(a, "--socket", n->socket);
	if (n->pidfile[0])
		push2(a, "--pid", n->pidfile);
	if (n->logfile[0])
		push2(a, "--log-file", n->logfile);
	if (n->interface[0])
		push2(a, "--interface", n->interface);
	if (n->address[0])
		push2(a, "--address", n->address);
	if (n->netmask[0])
		push2(a, "--netmask", n->netmask);
	if (n->gateway[0])
		push2(a, "--gateway", n->gateway);
	for (int i = 0; i < n->n_dns; i++)
		push2(a, "--dns", n->dns[i]);
	if (n->no_map_gw)
		push(a, "--no-map-gw");
	if (n->map_host_loopback[0])
		push2(a, "--map-host-loopback", n->map_host_loopback);
	if (n->map_guest_addr[0])
		push2(a, "--map-guest-addr", n->map_guest_addr);
	if (n->ipv4_only)
		push(a, "--ipv4-only");
	for (int i = 0; i < n->n_ports; i++) {
		const struct passt_port *p = &n->ports[i];
		char spec[96];
		snprintf(spec, sizeof(spec), "%s/%u:%u", p->addr, p->host_port, p->vm_port);
		push2(a, p->udp ? "--udp-ports" : "--tcp-ports", spec);
	}
	return 0;
}
