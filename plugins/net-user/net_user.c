/*
 * net-user: QEMU's user-mode network (slirp). No host resources: the NIC
 * lives inside the VM's process, so setup only describes it in the spec, and
 * port mappings become hostfwd rules of that process. The subnet, DHCP start
 * and restrict flag come from cvm.networking (dstack's place for them; this
 * plugin is their one reader and validator, at load, so that
 * `cvmmd --check-config` sees every mistake), overridable per NIC with
 * "net", "dhcp_start" and "restrict".
 */
#include <cvmm/plugin.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

/* cvm.networking, read once at load. */
static struct {
	char net[64];
	char dhcp_start[64];
	int restrict_;
} conf;

static int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = 1;
	else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "off"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int restrict_of(cvmm_vm *vm, uint32_t i, int *out)
{
	const char *v = host->vm_nic_param(vm, i, "restrict");
	if (v)
		return parse_bool(v, out);
	*out = conf.restrict_;
	return 0;
}

/* a.b.c.d/n with n 8..30 and no host bits; 0 or -EINVAL. */
static int parse_net(const char *net, uint32_t *base, uint32_t *mask)
{
	char buf[64];
	struct in_addr a;
	snprintf(buf, sizeof(buf), "%s", net);
	char *slash = strchr(buf, '/'), *end = NULL;
	if (!slash)
		return -EINVAL;
	*slash = 0;
	long prefix = strtol(slash + 1, &end, 10);
	if (!slash[1] || *end || inet_pton(AF_INET, buf, &a) != 1 || prefix < 8 || prefix > 30)
		return -EINVAL;
	*mask = ~0u << (32 - prefix);
	*base = ntohl(a.s_addr);
	return *base & ~*mask ? -EINVAL : 0;
}

/* QEMU's own choice: the 15th address of the network (10.0.2.15 in 10.0.2.0/24). */
static int default_dhcp_start(uint32_t base, uint32_t mask, char *out, size_t len)
{
	uint32_t a = base + 15;
	if ((a & mask) != base || (a | mask) == 0xffffffffu)
		return -ERANGE;
	snprintf(out, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	return 0;
}

/* dhcp must be a host address of base/mask. */
static int dhcp_inside(const char *dhcp, uint32_t base, uint32_t mask)
{
	struct in_addr d;
	if (inet_pton(AF_INET, dhcp, &d) != 1)
		return -EINVAL;
	uint32_t a = ntohl(d.s_addr);
	return (a & mask) == base && a != base && (a | mask) != 0xffffffffu ? 0 : -ERANGE;
}

/*
 * A NIC's net and DHCP start: its own, else the configured ones. A NIC that
 * sets only net gets that network's default DHCP start, not the configured
 * one (which belongs to another network).
 */
static int nic_addresses(cvmm_vm *vm, uint32_t i, const char **net, char *dhcp, size_t len)
{
	const char *n = host->vm_nic_param(vm, i, "net"), *d = host->vm_nic_param(vm, i, "dhcp_start");
	uint32_t base, mask;
	*net = n ? n : conf.net;
	if (parse_net(*net, &base, &mask) < 0)
		return host->error(self, vm, -EINVAL,
				   "networks[%u].net: must be an IPv4 network a.b.c.d/n with n 8..30 and no host bits, got '%s'",
				   i, *net);
	if (!d && !n)
		d = conf.dhcp_start;
	if (d) {
		int r = dhcp_inside(d, base, mask);
		if (r == -EINVAL)
			return host->error(self, vm, r,
					   "networks[%u].dhcp_start: must be an IPv4 address, got '%s'", i, d);
		if (r < 0)
			return host->error(self, vm, -EINVAL,
					   "networks[%u].dhcp_start: %s is not a host address of %s", i, d,
					   *net);
		snprintf(dhcp, len, "%s", d);
		return 0;
	}
	if (default_dhcp_start(base, mask, dhcp, len) < 0)
		return host->error(self, vm, -EINVAL,
				   "networks[%u].net: %s is too small for the default DHCP start (network + 15); set dhcp_start",
				   i, *net);
	return 0;
}

/* cvm.networking.{net,dhcp_start,restrict}: read and checked at load. */
static int read_config(void)
{
	const char *net = "10.0.2.0/24", *dhcp = NULL;
	uint32_t base, mask;
	int32_t b = 0;
	int r;
	if ((r = host->cfg_string(self, ".cvm.networking.net", &net)) < 0 && r != -ENOENT)
		return r;
	if ((r = host->cfg_string(self, ".cvm.networking.dhcp_start", &dhcp)) < 0 && r != -ENOENT)
		return r;
	if ((r = host->cfg_bool(self, ".cvm.networking.restrict", &b)) < 0 && r != -ENOENT)
		return r;
	if (parse_net(net, &base, &mask) < 0 || strlen(net) >= sizeof(conf.net))
		return host->error(self, NULL, -EINVAL,
				   "cvm.networking.net: must be an IPv4 network a.b.c.d/n with n from 8 to 30 and no host bits, got \"%s\"",
				   net);
	snprintf(conf.net, sizeof(conf.net), "%s", net);
	if (dhcp) {
		r = dhcp_inside(dhcp, base, mask);
		if (r == -EINVAL)
			return host->error(self, NULL, r,
					   "cvm.networking.dhcp_start: must be an IPv4 address, got \"%s\"",
					   dhcp);
		if (r < 0)
			return host->error(self, NULL, -EINVAL,
					   "cvm.networking.dhcp_start: must be a host address inside cvm.networking.net %s, got \"%s\"",
					   net, dhcp);
		snprintf(conf.dhcp_start, sizeof(conf.dhcp_start), "%s", dhcp);
	} else if (default_dhcp_start(base, mask, conf.dhcp_start, sizeof(conf.dhcp_start)) < 0) {
		return host->error(self, NULL, -EINVAL,
				   "cvm.networking.net: %s is too small for the default dhcp_start (network + 15); set cvm.networking.dhcp_start",
				   net);
	}
	conf.restrict_ = b != 0;
	return 0;
}

/* Locally administered, stable across boots: 52:54:00 + bytes of the id. */
static void mac_for(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	const char *id = host->vm_id(vm);
	unsigned h = 2166136261u;
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ i) * 16777619u;
	snprintf(out, len, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}

/* NIC i's MAC: the one chosen at DEFINE and published as "nic<i>.mac"
 * (what the API shows); for a VM defined before that, chosen now. */
static void nic_mac(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	char key[32];
	snprintf(key, sizeof(key), "nic%u.mac", i);
	if (host->state_get(self, vm, key, out, len) > 0)
		return;
	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac)
		snprintf(out, len, "%s", mac);
	else
		mac_for(vm, i, out, len);
	host->state_set(self, vm, key, out);
}

static void publish(cvmm_vm *vm, uint32_t i, const char *what, const char *value)
{
	char key[48];
	snprintf(key, sizeof(key), "nic%u.%s", i, what);
	host->state_set(self, vm, key, value);
}

static int nu_define(void *data, cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
		     uint32_t n_ports)
{
	/* QEMU's user network binds forwarded ports on IPv4 only. */
	for (uint32_t k = 0; k < n_ports; k++)
		if (strchr(ports[k]->host_address, ':'))
			return host->error(self, vm, -EINVAL,
					   "ports[%u].host_address: %s is IPv6; mode 'user' forwards IPv4 only",
					   k, ports[k]->host_address);
	static const char *const known[] = {"mode", "net", "dhcp_start", "restrict", "mac", NULL};
	const char *key;
	for (uint32_t k = 0; (key = host->vm_nic_param_at(vm, i, k, NULL)); k++) {
		int ok = 0;
		for (int n = 0; known[n]; n++)
			ok |= !strcmp(key, known[n]);
		if (!ok)
			return host->error(self, vm, -EINVAL,
					   "networks[%u].%s: not a parameter of mode 'user' (known: net, dhcp_start, restrict, mac)",
					   i, key);
	}
	int r;
	const char *net;
	char dhcp[64];
	if ((r = nic_addresses(vm, i, &net, dhcp, sizeof(dhcp))) < 0)
		return r;
	int rs;
	if (restrict_of(vm, i, &rs) < 0)
		return host->error(self, vm, -EINVAL, "networks[%u].restrict: must be true or false", i);
	/* Chosen now, so that it is known (and shown) before the first boot. */
	char mac[18];
	nic_mac(vm, i, mac, sizeof(mac));
	/* The address the guest's DHCP gets (slirp's first lease, the only
	 * client on its network), its gateway (.2) and resolver (.3): published
	 * for plugins that configure the guest statically (cloud-init). */
	uint32_t base, mask;
	char v[64];
	parse_net(net, &base, &mask);
	int prefix = 32 - __builtin_popcount(~mask);
	snprintf(v, sizeof(v), "%s/%d", dhcp, prefix);
	publish(vm, i, "address", v);
	snprintf(v, sizeof(v), "%u.%u.%u.%u", (base + 2) >> 24, ((base + 2) >> 16) & 255,
		 ((base + 2) >> 8) & 255, (base + 2) & 255);
	publish(vm, i, "gateway", v);
	snprintf(v, sizeof(v), "%u.%u.%u.%u", (base + 3) >> 24, ((base + 3) >> 16) & 255,
		 ((base + 3) >> 8) & 255, (base + 3) & 255);
	publish(vm, i, "dns", v);
	return 0;
}

static int nu_setup(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
		    const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	struct cvmm_spec_nic nic;
	memset(&nic, 0, sizeof(nic));
	nic.struct_size = sizeof(nic);
	nic.kind = CVMM_NIC_USER;
	snprintf(nic.id, sizeof(nic.id), "net%u", i);
	nic_mac(vm, i, nic.mac, sizeof(nic.mac));
	const char *net;
	int r = nic_addresses(vm, i, &net, nic.user_dhcp_start, sizeof(nic.user_dhcp_start));
	if (r < 0)
		return r;
	snprintf(nic.user_net, sizeof(nic.user_net), "%s", net);
	int rs = 0;
	restrict_of(vm, i, &rs);
	nic.user_restrict = (uint32_t)rs;
	nic.n_ports = n_ports;
	nic.ports = ports;
	r = host->spec_add_nic(spec, &nic);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: cannot add the NIC: %s", i, strerror(-r));
	/* Where versions before "nic<i>.mac" kept it (unseen by the API). */
	char old[32];
	if (host->state_get(self, vm, "mac", old, sizeof(old)) >= 0)
		host->state_set(self, vm, "mac", NULL);
	return 0;
}

/* Dry run: define and setup change nothing outside the VM object here
 * (the MAC is chosen and kept in its state, which a dry run throws away). */
static int nu_plan(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
		   const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	int r = nu_define(data, vm, i, ports, n_ports);
	return r < 0 ? r : nu_setup(data, vm, i, spec, ports, n_ports);
}

static const struct cvmm_netmode_ops ops = {
	.struct_size = sizeof(struct cvmm_netmode_ops),
	.can_map_ports = 1,
	.define = nu_define,
	.setup = nu_setup,
	.plan = nu_plan,
};

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "net-user", "0.1.0",
			     "QEMU user-mode networking with hostfwd port mapping");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	return host->register_netmode(self, "user", &ops, NULL);
}
