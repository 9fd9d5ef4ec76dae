/*
 * net-user: QEMU's user-mode network (slirp). No host resources: the NIC
 * lives inside the VM's process, so setup only describes it in the spec, and
 * port mappings become hostfwd rules of that process. The subnet, DHCP start
 * and restrict flag come from cvm.networking, overridable per NIC with
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

static const char *param(cvmm_vm *vm, uint32_t i, const char *key, const char *cfg_path,
			 const char *fallback)
{
	const char *v = host->vm_nic_param(vm, i, key);
	if (v)
		return v;
	if (host->cfg_string(self, cfg_path, &v) == 0)
		return v;
	return fallback;
}

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
	int32_t b = 0;
	host->cfg_bool(self, ".cvm.networking.restrict", &b);
	*out = b;
	return 0;
}

/* net must be a.b.c.d/n; dhcp_start an address inside it. */
static int check_net(cvmm_vm *vm, uint32_t i, const char *net, const char *dhcp)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", net);
	char *slash = strchr(buf, '/');
	struct in_addr a, d;
	long prefix = slash ? strtol(slash + 1, NULL, 10) : -1;
	if (slash)
		*slash = 0;
	if (!slash || inet_pton(AF_INET, buf, &a) != 1 || prefix < 8 || prefix > 30)
		return host->error(self, vm, -EINVAL,
				   "networks[%u].net: must be an IPv4 network a.b.c.d/n with n 8..30, got '%s'",
				   i, net);
	if (inet_pton(AF_INET, dhcp, &d) != 1)
		return host->error(self, vm, -EINVAL,
				   "networks[%u].dhcp_start: must be an IPv4 address, got '%s'", i, dhcp);
	uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
	if ((a.s_addr & mask) != (d.s_addr & mask))
		return host->error(self, vm, -EINVAL,
				   "networks[%u].dhcp_start: %s is outside %s", i, dhcp, net);
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
	const char *net = param(vm, i, "net", ".cvm.networking.net", "10.0.2.0/24");
	const char *dhcp = param(vm, i, "dhcp_start", ".cvm.networking.dhcp_start", "10.0.2.15");
	if ((r = check_net(vm, i, net, dhcp)) < 0)
		return r;
	int rs;
	if (restrict_of(vm, i, &rs) < 0)
		return host->error(self, vm, -EINVAL, "networks[%u].restrict: must be true or false", i);
	/* Chosen now, so that it is known (and shown) before the first boot. */
	char mac[18];
	nic_mac(vm, i, mac, sizeof(mac));
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
	snprintf(nic.user_net, sizeof(nic.user_net), "%s",
		 param(vm, i, "net", ".cvm.networking.net", "10.0.2.0/24"));
	snprintf(nic.user_dhcp_start, sizeof(nic.user_dhcp_start), "%s",
		 param(vm, i, "dhcp_start", ".cvm.networking.dhcp_start", "10.0.2.15"));
	int rs = 0;
	restrict_of(vm, i, &rs);
	nic.user_restrict = (uint32_t)rs;
	nic.n_ports = n_ports;
	nic.ports = ports;
	int r = host->spec_add_nic(spec, &nic);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: cannot add the NIC: %s", i, strerror(-r));
	/* Where versions before "nic<i>.mac" kept it (unseen by the API). */
	char old[32];
	if (host->state_get(self, vm, "mac", old, sizeof(old)) >= 0)
		host->state_set(self, vm, "mac", NULL);
	return 0;
}

static const struct cvmm_netmode_ops ops = {
	.struct_size = sizeof(struct cvmm_netmode_ops),
	.can_map_ports = 1,
	.define = nu_define,
	.setup = nu_setup,
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
	return host->register_netmode(self, "user", &ops, NULL);
}
