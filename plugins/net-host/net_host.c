/*
 * net-host: network mode "host". The guest sits directly on a host
 * interface through a macvtap device: best throughput, no isolation, no
 * address management (the guest takes its address from the segment, e.g.
 * its DHCP server). The macvtap is made through netlink (libnl) at
 * PRE_START and deleted at POST_STOP; the QEMU backend opens its character
 * device and hands QEMU the descriptor.
 *
 * Names and addresses are functions of the VM's id and the NIC's index, so
 * a restarted daemon finds what it made: device "cvh" + 12 hex digits (15
 * characters, IFNAMSIZ - 1), MAC 52:54 + 4 bytes of the same hash (the
 * first octet's locally-administered bit is set). In macvtap's bridge mode
 * the host itself cannot reach the guest through the lower interface (the
 * kernel does not loop frames back); other machines on the segment can.
 *
 * Port mapping cannot exist here: the guest is a machine of its own on the
 * host's segment, reached at its own address. The mode says so
 * (can_map_ports = 0) and the core refuses a VM whose ports no NIC carries.
 *
 * plugin.net-host:
 *   interface = "eth0";   # host interface the guests join (per NIC: "interface")
 *   macvtap_mode = "bridge"; # bridge, vepa, private or passthru
 */
#include <cvmm/plugin.h>

#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/macvtap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static struct {
	const char *interface; /* NULL: every NIC must name one */
	const char *mode_name;
	uint32_t mode; /* MACVLAN_MODE_* */
} conf;

/* ---- names ---- */

static uint64_t fnv1a64(const char *s, uint32_t nic)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((nic >> (8 * i)) & 0xff)) * 0x100000001b3ull;
	return h;
}

static void name_for(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	snprintf(out, len, "cvh%012llx", (unsigned long long)(fnv1a64(host->vm_id(vm), i) >> 16));
}

static void mac_for(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	uint64_t h = fnv1a64(host->vm_id(vm), i);
	snprintf(out, len, "52:54:%02x:%02x:%02x:%02x", (unsigned)(h >> 24) & 0xff,
	         (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff, (unsigned)h & 0xff);
}

static int valid_mac(const char *m)
{
	unsigned b[6];
	char tail;
	if (strlen(m) != 17 || sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
	                              &b[4], &b[5], &tail) != 6)
		return 0;
	return !(b[0] & 1); /* unicast */
}

static const char *interface_of(cvmm_vm *vm, uint32_t i)
{
	const char *v = host->vm_nic_param(vm, i, "interface");
	return v ? v : conf.interface;
}

/* ---- netlink ---- */

/* libnl's codes back to errno values, for host->error(). */
static int nl2errno(int e)
{
	switch (-e) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_RANGE:
		return -ERANGE;
	default:
		return -EIO;
	}
}

/* One socket per operation: nothing stays open between jobs. */
static int sock_open(struct nl_sock **out)
{
	struct nl_sock *s = nl_socket_alloc();
	if (!s)
		return -NLE_NOMEM;
	int r = nl_connect(s, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(s);
		return r;
	}
	*out = s;
	return 0;
}

static void sock_close(struct nl_sock *s)
{
	if (s)
		nl_socket_free(s);
}

/* Deletes link name; a missing link is success. */
static int link_del(struct nl_sock *s, const char *name)
{
	struct rtnl_link *l = rtnl_link_alloc();
	if (!l)
		return -NLE_NOMEM;
	rtnl_link_set_name(l, name);
	int r = rtnl_link_delete(s, l);
	rtnl_link_put(l);
	return r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV ? 0 : r;
}

static int macvtap_add(struct nl_sock *s, const char *name, int lower, const char *mac)
{
	struct rtnl_link *l = rtnl_link_macvtap_alloc();
	struct nl_addr *a = NULL;
	int r;
	if (!l)
		return -NLE_NOMEM;
	if ((r = nl_addr_parse(mac, AF_LLC, &a)) < 0)
		goto out;
	rtnl_link_set_name(l, name);
	rtnl_link_set_link(l, lower);
	rtnl_link_set_addr(l, a);
	rtnl_link_set_flags(l, IFF_UP);
	if ((r = rtnl_link_macvtap_set_mode(l, conf.mode)) < 0)
		goto out;
	r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL);
out:
	nl_addr_put(a);
	rtnl_link_put(l);
	return r;
}

/* ---- network mode ops ---- */

static int nh_define(void *data, cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
                     uint32_t n_ports)
{
	static const char *const known[] = {"mode", "interface", "mac", NULL};
	const char *key, *val;
	for (uint32_t k = 0; (key = host->vm_nic_param_at(vm, i, k, &val)); k++) {
		int ok = 0;
		for (int n = 0; known[n]; n++)
			ok |= !strcmp(key, known[n]);
		if (!ok)
			return host->error(self, vm, -EINVAL,
			                   "networks[%u].%s: not a parameter of mode 'host' "
			                   "(known: interface, mac)",
			                   i, key);
	}
	/* The core gives this mode no ports (can_map_ports = 0); say why if
	 * it ever does. */
	if (n_ports)
		return host->error(self, vm, -EINVAL,
		                   "ports: mode 'host' cannot map ports: the guest is directly on "
		                   "the host's segment, reach it at its own address");
	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac && !valid_mac(mac))
		return host->error(
		    self, vm, -EINVAL,
		    "networks[%u].mac: must be a unicast MAC address aa:bb:cc:dd:ee:ff, got '%s'",
		    i, mac);
	/* Shown from the create on, not only once the macvtap exists. */
	char mac_key[32], derived[18];
	if (!mac)
		mac_for(vm, i, derived, sizeof(derived));
	snprintf(mac_key, sizeof(mac_key), "nic%u.mac", i);
	host->state_set(self, vm, mac_key, mac ? mac : derived);
	const char *ifname = interface_of(vm, i);
	if (!ifname)
		return host->error(self, vm, -EINVAL,
		                   "networks[%u].interface: no host interface given (set "
		                   "plugin.net-host.interface or the NIC's interface)",
		                   i);
	if (strlen(ifname) < IFNAMSIZ && if_nametoindex(ifname))
		return 0;
	/* The request's mistake (400), or the host's configuration's (500). */
	if (host->vm_nic_param(vm, i, "interface"))
		return host->error(self, vm, -EINVAL,
		                   "networks[%u].interface: host interface '%s' does not exist", i,
		                   ifname);
	return host->error(
	    self, vm, -ENODEV,
	    "networks[%u]: host interface '%s' (plugin.net-host.interface) does not exist", i,
	    ifname);
}

static int nh_setup(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
                    const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	struct cvmm_spec_nic nic;
	memset(&nic, 0, sizeof(nic));
	nic.struct_size = sizeof(nic);
	nic.kind = CVMM_NIC_MACVTAP;
	snprintf(nic.id, sizeof(nic.id), "net%u", i);
	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac)
		snprintf(nic.mac, sizeof(nic.mac), "%s", mac);
	else
		mac_for(vm, i, nic.mac, sizeof(nic.mac));
	name_for(vm, i, nic.ifname, sizeof(nic.ifname));
	const char *lower = interface_of(vm, i);
	int lower_idx = lower ? (int)if_nametoindex(lower) : 0;
	if (!lower_idx)
		return host->error(self, vm, -ENODEV,
		                   "networks[%u]: host interface '%s' does not exist", i,
		                   lower ? lower : "(none)");
	char key[32];
	/* Saved before the device exists, so that a teardown after a crash
	 * knows what to delete even if the naming ever changes. */
	snprintf(key, sizeof(key), "nic%u.macvtap", i);
	int r = host->state_set(self, vm, key, nic.ifname);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: cannot save state: %s", i,
		                   strerror(-r));
	struct nl_sock *s = NULL;
	if ((r = sock_open(&s)) < 0)
		return host->error(self, vm, nl2errno(r), "networks[%u]: netlink: %s", i,
		                   nl_geterror(r));
	/* A device of this name is this VM's own from a boot that was not
	 * torn down (the daemon died): replace it. */
	if ((r = link_del(s, nic.ifname)) < 0 ||
	    (r = macvtap_add(s, nic.ifname, lower_idx, nic.mac)) < 0) {
		sock_close(s);
		return host->error(self, vm, nl2errno(r),
		                   "networks[%u]: macvtap '%s' on '%s' could not be created: %s", i,
		                   nic.ifname, lower, nl_geterror(r));
	}
	struct rtnl_link *l = NULL;
	if (rtnl_link_get_kernel(s, lower_idx, NULL, &l) == 0) {
		nic.mtu = rtnl_link_get_mtu(l); /* the guest uses the segment's MTU */
		rtnl_link_put(l);
	}
	sock_close(s);
	/* "nic<i>.*" keys are what the API shows of the NIC. */
	snprintf(key, sizeof(key), "nic%u.mac", i);
	host->state_set(self, vm, key, nic.mac);
	snprintf(key, sizeof(key), "nic%u.interface", i);
	host->state_set(self, vm, key, lower);
	if ((r = host->spec_add_nic(spec, &nic)) < 0)
		return host->error(self, vm, r, "networks[%u]: cannot add the NIC: %s", i,
		                   strerror(-r));
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: macvtap %s on %s (%s mode, mac %s)",
	          host->vm_name(vm), i, nic.ifname, lower, conf.mode_name, nic.mac);
	return 0;
}

static int nh_teardown(void *data, cvmm_vm *vm, uint32_t i)
{
	char key[32], name[IFNAMSIZ + 8];
	snprintf(key, sizeof(key), "nic%u.macvtap", i);
	if (host->state_get(self, vm, key, name, sizeof(name)) < 0)
		name_for(vm, i, name, sizeof(name));
	struct nl_sock *s = NULL;
	int r = sock_open(&s);
	if (r == 0)
		r = link_del(s, name);
	sock_close(s);
	if (r < 0)
		return host->error(self, vm, nl2errno(r),
		                   "networks[%u]: macvtap '%s' could not be deleted: %s", i, name,
		                   nl_geterror(r));
	host->state_set(self, vm, key, NULL);
	return 0;
}

static int nh_adopt(void *data, cvmm_vm *vm, uint32_t i)
{
	char key[32], name[IFNAMSIZ + 8];
	snprintf(key, sizeof(key), "nic%u.macvtap", i);
	if (host->state_get(self, vm, key, name, sizeof(name)) < 0)
		name_for(vm, i, name, sizeof(name));
	if (!if_nametoindex(name))
		return host->error(self, vm, -ENODEV,
		                   "networks[%u]: macvtap '%s' is gone; the guest has no network "
		                   "until it restarts",
		                   i, name);
	return 0;
}

static const struct cvmm_netmode_ops ops = {
    .struct_size = sizeof(struct cvmm_netmode_ops),
    .can_map_ports = 0,
    .define = nh_define,
    .setup = nh_setup,
    .teardown = nh_teardown,
    .adopt = nh_adopt,
};

static int read_config(void)
{
	int r = host->cfg_string(self, "interface", &conf.interface);
	if (r == -ENOENT)
		conf.interface = NULL;
	else if (r < 0)
		return r;
	else if (!conf.interface[0] || strlen(conf.interface) >= IFNAMSIZ)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.net-host.interface: must be an interface name of 1 to "
		                   "%d characters, got '%s'",
		                   IFNAMSIZ - 1, conf.interface);
	conf.mode_name = "bridge";
	r = host->cfg_string(self, "macvtap_mode", &conf.mode_name);
	if (r < 0 && r != -ENOENT)
		return r;
	static const struct {
		const char *name;
		uint32_t mode;
	} modes[] = {{"bridge", MACVLAN_MODE_BRIDGE},
	             {"vepa", MACVLAN_MODE_VEPA},
	             {"private", MACVLAN_MODE_PRIVATE},
	             {"passthru", MACVLAN_MODE_PASSTHRU}};
	for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++)
		if (!strcmp(conf.mode_name, modes[k].name)) {
			conf.mode = modes[k].mode;
			return 0;
		}
	return host->error(
	    self, NULL, -EINVAL,
	    "plugin.net-host.macvtap_mode: must be bridge, vepa, private or passthru, got '%s'",
	    conf.mode_name);
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "net-host", "0.1.0",
	                     "guests directly on a host interface (macvtap via netlink)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	return host->register_netmode(self, "host", &ops, NULL);
}
