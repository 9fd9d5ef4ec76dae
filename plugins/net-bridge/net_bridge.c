/*
 * net-bridge: network mode "bridge", a TAP per VM NIC on a Linux bridge.
 *
 * Either the bridge exists already (cvmm only attaches TAPs), or cvmm makes
 * and owns it ("managed"): the bridge with the gateway address, NAT for the
 * subnet (nftables) and a DHCP server (dnsmasq) handing each VM NIC one
 * fixed address, as libvirt's NAT networks do. Port mappings are DNAT rules
 * that exist exactly while the VM runs.
 *
 *   plugin = { net-bridge = {
 *     # an existing bridge: TAPs only; port mapping needs networks[].ip
 *     bridge = "br0";
 *     # or one that cvmm makes (the default, with these defaults):
 *     managed = {
 *       name = "cvmmbr0";                 # at most 15 characters
 *       subnet = "192.168.123.0/24";      # IPv4, prefix 8..30
 *       gateway = "192.168.123.1";        # default: first address
 *       dhcp_range = [ "192.168.123.2", "192.168.123.254" ];
 *                                         # where VM addresses come from;
 *                                         # default: the whole subnet
 *       lease_time = "1h";                # dnsmasq lease time ("infinite")
 *       dns = true;                       # dnsmasq also serves DNS
 *       nat = true;                       # masquerade towards other networks
 *     };
 *     nft = "nft"; dnsmasq = "dnsmasq";   # programs (PATH, /usr/sbin, /sbin)
 *     dnsmasq_user = "nobody";            # --user; default: dnsmasq's own
 *     dnsmasq_log = "/var/log/cvmm-dnsmasq.log";  # optional, with --log-dhcp
 *   }; };
 *
 * Per NIC ("networks": [{"mode": "bridge", ...}]): "mac" (default derived
 * from the VM id) and "ip" (managed: ask for that fixed address; existing
 * bridge: the address the guest will have, which port mapping needs).
 *
 * Life cycle. DEFINE reserves the NIC's MAC, TAP name and (managed) address
 * in the plugin's record (store.c) and in the VM's state; UNDEFINE releases
 * them. PRE_START marks the NIC active, brings up the shared pieces if this
 * is the first active NIC (bridge, nft table, dnsmasq), creates the TAP, adds
 * the DHCP host entry and the DNAT chains; POST_STOP removes them, and the
 * last NIC going takes the shared pieces with it. Everything is recorded
 * before it is made, and every undo is idempotent, so an undo after a crash
 * or a half-done start finds and removes exactly what exists. At load the
 * plugin drops what belongs to VMs that no longer exist and, when no NIC is
 * active, what is still up; a restarted daemon's adopt() takes back the rest.
 *
 * Port mappings to 127.0.0.1 work on a managed bridge (output-chain DNAT,
 * route_localnet on the bridge, masquerade of the loopback source, and a
 * guard so that guests cannot use route_localnet to reach the host's
 * loopback). On an existing bridge they are refused: cvmm will not change
 * sysctls of a bridge it does not own. Connections from other hosts need the
 * host to forward on their incoming interface: host policy, not ours.
 */
#include <cvmm/plugin.h>

#include "nb.h"
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

/* One lock for all: the record, the shared pieces and dnsmasq are common to
 * every VM, and jobs for different VMs run in parallel. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct nb_config cfg;
static struct nb_store store;

#define ERRLEN 1024

/* ---- configuration ---- */

__attribute__((format(printf, 2, 3))) static int cfg_fail(const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return host->error(self, NULL, -EINVAL, "plugin.net-bridge.%s: %s", key, msg);
}

static int str_opt(const char *key, const char *def, char *out, size_t len)
{
	const char *v = def;
	int r = host->cfg_string(self, key, &v);
	if (r < 0 && r != -ENOENT)
		return r; /* the host named file, line and key */
	if (!v)
		v = "";
	if (strlen(v) >= len)
		return cfg_fail(key, "longer than allowed: '%s'", v);
	snprintf(out, len, "%s", v);
	return 0;
}

static int bool_opt(const char *key, int def, int *out)
{
	int32_t b = def;
	int r = host->cfg_bool(self, key, &b);
	if (r < 0 && r != -ENOENT)
		return r;
	*out = b;
	return 0;
}

static int valid_ifname(const char *s)
{
	if (!*s || strlen(s) >= NB_IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (const char *p = s; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr("_.-", *p))
			return 0;
	return 1;
}

static int valid_lease_time(const char *s)
{
	if (!strcmp(s, "infinite"))
		return 1;
	size_t n = strspn(s, "0123456789");
	return n > 0 && (!s[n] || (strchr("smhdw", s[n]) && !s[n + 1]));
}

/* Paths and table of a bridge, from which infra_down() also works on the
 * pieces of a bridge the configuration no longer names. */
static void set_bridge(struct nb_config *c, const char *bridge)
{
	snprintf(c->bridge, sizeof(c->bridge), "%s", bridge);
	nb_table_name(bridge, c->table, sizeof(c->table));
	snprintf(c->hosts_path, sizeof(c->hosts_path), "%s/%s.hosts", c->run_dir, bridge);
	snprintf(c->pid_path, sizeof(c->pid_path), "%s/%s.pid", c->run_dir, bridge);
	snprintf(c->lease_path, sizeof(c->lease_path), "%s/%s.leases", c->data_dir, bridge);
}

static int read_config(void)
{
	struct nb_config *c = &cfg;
	char br[64] = "", name[64], sub[64], gw[64], prog[256];
	int r;
	if ((r = str_opt("bridge", NULL, br, sizeof(br))) < 0)
		return r;
	int has_managed = host->cfg_count(self, "managed");
	if (has_managed < 0 && has_managed != -ENOENT)
		return has_managed;
	if (br[0] && has_managed >= 0)
		return cfg_fail("bridge", "set either bridge (an existing one) or managed, not both");
	c->managed = !br[0];
	if (!c->managed) {
		if (!valid_ifname(br))
			return cfg_fail("bridge", "not a valid interface name: '%s'", br);
	} else {
		if ((r = str_opt("managed.name", "cvmmbr0", name, sizeof(name))) < 0 ||
		    (r = str_opt("managed.subnet", "192.168.123.0/24", sub, sizeof(sub))) < 0 ||
		    (r = str_opt("managed.gateway", "", gw, sizeof(gw))) < 0 ||
		    (r = str_opt("managed.lease_time", "1h", c->lease_time, sizeof(c->lease_time))) <
			    0 ||
		    (r = bool_opt("managed.dns", 1, &c->dns)) < 0 ||
		    (r = bool_opt("managed.nat", 1, &c->nat)) < 0)
			return r;
		if (!valid_ifname(name))
			return cfg_fail("managed.name",
					"not a valid interface name (at most 15 of A-Z a-z 0-9 _ . -): '%s'",
					name);
		snprintf(br, sizeof(br), "%s", name);
		if (nb_net_parse(sub, &c->net, &c->prefix) < 0)
			return cfg_fail("managed.subnet",
					"must be an IPv4 network a.b.c.d/n, n 8..30, host bits zero; got '%s'",
					sub);
		uint32_t mask = nb_mask(c->prefix), bcast = c->net | ~mask;
		c->gateway = c->net + 1;
		if (gw[0] && (nb_ip_parse(gw, &c->gateway) < 0 || (c->gateway & mask) != c->net ||
			      c->gateway == c->net || c->gateway == bcast))
			return cfg_fail("managed.gateway", "must be a host address of the subnet; got '%s'",
					gw);
		c->pool_first = c->net + 1;
		c->pool_last = bcast - 1;
		int nr = host->cfg_count(self, "managed.dhcp_range");
		if (nr >= 0) {
			const char *a = NULL, *b = NULL;
			if (nr != 2 || host->cfg_string_at(self, "managed.dhcp_range", 0, &a) < 0 ||
			    host->cfg_string_at(self, "managed.dhcp_range", 1, &b) < 0 ||
			    nb_ip_parse(a, &c->pool_first) < 0 || nb_ip_parse(b, &c->pool_last) < 0 ||
			    (c->pool_first & mask) != c->net || (c->pool_last & mask) != c->net ||
			    c->pool_first == c->net || c->pool_last == bcast ||
			    c->pool_first > c->pool_last)
				return cfg_fail("managed.dhcp_range",
						"must be [ \"first\", \"last\" ]: two host addresses of the subnet, first <= last");
		} else if (nr != -ENOENT) {
			return nr;
		}
		if (!valid_lease_time(c->lease_time))
			return cfg_fail("managed.lease_time",
					"must be a number of seconds with an optional unit s, m, h, d or w, or \"infinite\"; got '%s'",
					c->lease_time);
	}
	if ((r = str_opt("dnsmasq_user", "", c->dnsmasq_user, sizeof(c->dnsmasq_user))) < 0 ||
	    (r = str_opt("dnsmasq_log", "", c->dnsmasq_log, sizeof(c->dnsmasq_log))) < 0)
		return r;
	if ((r = str_opt("nft", "nft", prog, sizeof(prog))) < 0)
		return r;
	if (cp_find_program(prog, c->nft, sizeof(c->nft)) < 0)
		return cfg_fail("nft", "program '%s' not found (install nftables or set the path)",
				prog);
	if (c->managed) {
		if ((r = str_opt("dnsmasq", "dnsmasq", prog, sizeof(prog))) < 0)
			return r;
		if (cp_find_program(prog, c->dnsmasq, sizeof(c->dnsmasq)) < 0)
			return cfg_fail("dnsmasq",
					"program '%s' not found (install dnsmasq-base or set the path)",
					prog);
	}
	snprintf(c->data_dir, sizeof(c->data_dir), "%s/net-bridge", host->data_dir(self));
	snprintf(c->run_dir, sizeof(c->run_dir), "%s/net-bridge", host->run_dir(self));
	snprintf(c->vms_dir, sizeof(c->vms_dir), "%s/vms", host->data_dir(self));
	snprintf(c->state_path, sizeof(c->state_path), "%s/state", c->data_dir);
	set_bridge(c, br);
	return 0;
}

/* ---- the shared pieces ---- */

/* The plugin's data directory exists while it records something: a host
 * without bridged VMs has none. */
static int save(void)
{
	int empty = !store.n && !store.infra.up, r = 0;
	if (!empty && (r = nb_mkdir_p(cfg.data_dir, 0750)) < 0) {
		host->log(self, CVMM_LOG_ERROR, "cannot create %s: %s", cfg.data_dir, strerror(-r));
		return r;
	}
	r = nb_store_save(&store, cfg.state_path);
	if (r < 0)
		host->log(self, CVMM_LOG_ERROR, "cannot write %s: %s", cfg.state_path, strerror(-r));
	else if (empty)
		rmdir(cfg.data_dir); /* fails, harmlessly, while a lease file is left */
	return r;
}

/* The configuration as it was when the recorded pieces were made. */
static void recorded_cfg(struct nb_config *out)
{
	*out = cfg;
	const struct nb_infra *in = &store.infra;
	out->managed = in->managed;
	set_bridge(out, in->bridge);
	snprintf(out->table, sizeof(out->table), "%s", in->table);
	out->net = in->net;
	out->prefix = in->prefix;
	out->gateway = in->gateway;
}

static int infra_matches_config(void)
{
	const struct nb_infra *in = &store.infra;
	return in->managed == cfg.managed && !strcmp(in->bridge, cfg.bridge) &&
	       !strcmp(in->table, cfg.table) &&
	       (!cfg.managed ||
		(in->net == cfg.net && in->prefix == cfg.prefix && in->gateway == cfg.gateway));
}

/* Removes every shared piece that the record says is up; best effort, and
 * the record stays (to be retried) if something could not be removed. */
static int infra_down(void)
{
	if (!store.infra.up)
		return 0;
	struct nb_config c;
	recorded_cfg(&c);
	char err[ERRLEN], script[512];
	int r = 0, e;
	if (c.managed && (e = nb_dns_stop(&c)) < 0) {
		host->log(self, CVMM_LOG_WARN, "dnsmasq of bridge '%s': %s", c.bridge, strerror(-e));
		r = e;
	}
	nb_nft_table_delete(c.table, script, sizeof(script));
	if ((e = nb_nft_run(c.nft, script, err, sizeof(err))) < 0) {
		host->log(self, CVMM_LOG_WARN, "nft table %s could not be deleted: %s", c.table, err);
		r = e;
	}
	if (c.managed && (e = nb_bridge_delete(c.bridge, err, sizeof(err))) < 0) {
		host->log(self, CVMM_LOG_WARN, "%s", err);
		r = e;
	}
	if (r < 0)
		return r;
	if (c.managed)
		nb_dns_purge_leases(&c, &store);
	rmdir(c.run_dir); /* only if empty: another bridge's files may be there */
	store.infra.up = 0;
	host->log(self, CVMM_LOG_INFO, "bridge '%s': no VM uses it any more; %s", c.bridge,
		  c.managed ? "bridge, NAT and DHCP removed" : "rules removed");
	return save();
}

/* Brings the shared pieces up, or checks that they still are. */
static int infra_up(char *err, size_t errlen)
{
	int r;
	if (!store.infra.up) {
		int kind = nb_link_kind(cfg.bridge, NULL, NULL);
		if (kind < 0) {
			snprintf(err, errlen, "bridge '%s': cannot look it up: %s", cfg.bridge,
				 strerror(-kind));
			return kind;
		}
		/* A bridge of that name that we did not record making is someone
		 * else's: taking it over (and deleting it later) would be wrong. */
		if (cfg.managed && kind != NB_LINK_NONE) {
			snprintf(err, errlen,
				 "bridge '%s' already exists and this cvmmd did not create it; choose another plugin.net-bridge.managed.name, or use it as plugin.net-bridge.bridge",
				 cfg.bridge);
			return -EEXIST;
		}
		if (!cfg.managed && kind != NB_LINK_BRIDGE) {
			snprintf(err, errlen, "bridge '%s' (plugin.net-bridge.bridge) %s", cfg.bridge,
				 kind == NB_LINK_NONE ? "does not exist" : "is not a bridge");
			return -ENODEV;
		}
		struct nb_infra *in = &store.infra;
		memset(in, 0, sizeof(*in));
		in->up = 1;
		in->managed = cfg.managed;
		snprintf(in->bridge, sizeof(in->bridge), "%s", cfg.bridge);
		snprintf(in->table, sizeof(in->table), "%s", cfg.table);
		in->net = cfg.net;
		in->prefix = cfg.prefix;
		in->gateway = cfg.gateway;
		if ((r = save()) < 0) {
			in->up = 0;
			snprintf(err, errlen, "cannot record the bridge in %s: %s", cfg.state_path,
				 strerror(-r));
			return r;
		}
		host->log(self, CVMM_LOG_INFO, "bridge '%s': first VM; setting up%s", cfg.bridge,
			  cfg.managed ? " bridge, NAT and DHCP" : " its rules");
	}
	if (cfg.managed) {
		char mac[18];
		nb_bridge_mac(cfg.bridge, mac, sizeof(mac));
		if ((r = nb_bridge_create(cfg.bridge, mac, cfg.gateway, cfg.prefix, err, errlen)) < 0)
			return r;
	}
	char script[2048];
	if (nb_nft_base(&cfg, script, sizeof(script)) < 0)
		return -ENOSPC;
	char nerr[ERRLEN];
	if ((r = nb_nft_run(cfg.nft, script, nerr, sizeof(nerr))) < 0) {
		snprintf(err, errlen, "nft table %s could not be set up: %s", cfg.table, nerr);
		return r;
	}
	if (cfg.managed) {
		int pids[4];
		if (nb_dns_pids(&cfg, pids, 4) < 1 && (r = nb_dns_start(&cfg, &store, err, errlen)) < 0)
			return r;
	}
	return 0;
}

/* ---- per NIC ---- */

static int check_params(cvmm_vm *vm, uint32_t i, uint32_t *ip)
{
	const char *key, *val;
	*ip = 0;
	for (uint32_t k = 0; (key = host->vm_nic_param_at(vm, i, k, &val)); k++) {
		if (!strcmp(key, "mode"))
			continue;
		if (!strcmp(key, "mac")) {
			uint8_t m[6];
			if (nb_mac_parse(val, m) < 0 || (m[0] & 1))
				return host->error(self, vm, -EINVAL,
						   "networks[%u].mac: must be a unicast MAC aa:bb:cc:dd:ee:ff, got '%s'",
						   i, val);
		} else if (!strcmp(key, "ip")) {
			uint32_t mask = nb_mask(cfg.prefix);
			if (nb_ip_parse(val, ip) < 0 || !*ip || *ip == 0xffffffffu)
				return host->error(self, vm, -EINVAL,
						   "networks[%u].ip: must be an IPv4 address, got '%s'", i,
						   val);
			if (cfg.managed && ((*ip & mask) != cfg.net || *ip == cfg.net ||
					    *ip == (cfg.net | ~mask) || *ip == cfg.gateway)) {
				char net[32];
				nb_ip_str(cfg.net, net, sizeof(net));
				return host->error(self, vm, -EINVAL,
						   "networks[%u].ip: %s is not a free host address of the bridge's subnet %s/%d",
						   i, val, net, cfg.prefix);
			}
		} else {
			return host->error(self, vm, -EINVAL,
					   "networks[%u].%s: not a parameter of mode 'bridge' (known: mac, ip)",
					   i, key);
		}
	}
	return 0;
}

/* The VM's port mappings as DNAT needs them; refuses what cannot be. */
static int convert_ports(cvmm_vm *vm, uint32_t i, uint32_t vm_ip,
			 const struct cvmm_port_map *const *ports, uint32_t n, struct nb_port *out)
{
	if (n > NB_MAX_PORTS)
		return host->error(self, vm, -E2BIG, "ports: at most %d with mode 'bridge'",
				   NB_MAX_PORTS);
	for (uint32_t k = 0; k < n; k++) {
		const struct cvmm_port_map *p = ports[k];
		if (nb_ip_parse(p->host_address, &out[k].addr) < 0)
			return host->error(self, vm, -EINVAL,
					   "ports[%u].host_address: %s is not IPv4; mode 'bridge' maps IPv4 only",
					   k, p->host_address);
		if (!cfg.managed && (out[k].addr >> 24) == 127)
			return host->error(self, vm, -EINVAL,
					   "ports[%u].host_address: %s is a loopback address; on bridge '%s', which cvmm does not manage, ports can only be mapped on a non-loopback host address (set cvm.port_mapping.address)",
					   k, p->host_address, cfg.bridge);
		if (!vm_ip)
			return host->error(self, vm, -EINVAL,
					   "ports: the guest's address on bridge '%s' is unknown (cvmm does not manage it); set networks[%u].ip to the address the guest will have",
					   cfg.bridge, i);
		out[k].udp = p->protocol == CVMM_PROTO_UDP;
		out[k].host_port = p->host_port;
		out[k].vm_port = p->vm_port;
	}
	return 0;
}

/* State keys: "nic<i>.<field>" for what users see in the VM's "nics" (mac,
 * tap, address, bridge); "net<i>.ports" for what only the plugin reads. */
static void state_put(cvmm_vm *vm, uint32_t i, const char *key, const char *val)
{
	char k[64], cur[4096];
	snprintf(k, sizeof(k), "%s%u.%s", strcmp(key, "ports") ? "nic" : "net", i, key);
	/* Each change rewrites the manifest (fsync): skip the ones that are not. */
	int have = host->state_get(self, vm, k, cur, sizeof(cur));
	if (val ? have >= 0 && !strcmp(cur, val) : have == -ENOENT)
		return;
	int r = host->state_set(self, vm, k, val);
	if (r < 0)
		host->log(self, CVMM_LOG_WARN, "VM '%s': cannot save %s: %s", host->vm_name(vm), k,
			  strerror(-r));
}

/* What `cvmm info` and a restarted daemon read: MAC, TAP, address, bridge. */
static void state_nic(cvmm_vm *vm, uint32_t i, const struct nb_nic *n)
{
	state_put(vm, i, "mac", n->mac);
	state_put(vm, i, "tap", n->tap);
	state_put(vm, i, "bridge", cfg.bridge);
	if (n->ip) {
		char a[32], v[48];
		nb_ip_str(n->ip, a, sizeof(a));
		if (cfg.managed)
			snprintf(v, sizeof(v), "%s/%d", a, cfg.prefix);
		else
			snprintf(v, sizeof(v), "%s", a);
		state_put(vm, i, "address", v);
	} else {
		state_put(vm, i, "address", NULL);
	}
}

/* The NIC's record: found, or made (DEFINE, or a VM defined before this
 * plugin knew it). Its address is (re)allocated if the subnet changed. */
static int ensure_nic(cvmm_vm *vm, uint32_t i, uint32_t want_ip, struct nb_nic **out)
{
	const char *id = host->vm_id(vm);
	struct nb_nic *n = nb_store_find(&store, id, i);
	int r, fresh = 0;
	if (!n) {
		if (!(n = nb_store_add(&store, id, i)))
			return host->error(self, vm, -ENOMEM, "out of memory");
		fresh = 1;
	}
	char tap[NB_IFNAMSIZ];
	if ((r = nb_tap_name(id, i, tap, sizeof(tap))) < 0)
		goto fail;
	for (size_t k = 0; k < store.n; k++)
		if (&store.nics[k] != n && !strcmp(store.nics[k].tap, tap)) {
			r = host->error(self, vm, -EEXIST,
					"networks[%u]: TAP name %s is already VM %s's (their ids share the first 10 hex digits); create the VM again",
					i, tap, store.nics[k].vm);
			goto fail;
		}
	snprintf(n->tap, sizeof(n->tap), "%s", tap);
	const char *want_mac = host->vm_nic_param(vm, i, "mac");
	char mac[18];
	if (!n->mac[0] || (want_mac && strcasecmp(want_mac, n->mac))) {
		if ((r = nb_alloc_mac(&store, n, want_mac, mac, sizeof(mac))) < 0) {
			r = host->error(self, vm, r, "networks[%u].mac: %s is used by another VM's NIC", i,
					want_mac ? want_mac : "(derived)");
			goto fail;
		}
		snprintf(n->mac, sizeof(n->mac), "%s", mac);
	}
	uint32_t ip = n->ip;
	if (cfg.managed) {
		uint32_t mask = nb_mask(cfg.prefix);
		int stale = !ip || (ip & mask) != cfg.net || ip == cfg.gateway ||
			    (want_ip && want_ip != ip);
		if (stale && (r = nb_alloc_ip(&store, &cfg, n, want_ip, &ip)) < 0) {
			char a[32], b[32];
			nb_ip_str(want_ip, a, sizeof(a));
			nb_ip_str(cfg.pool_first, b, sizeof(b));
			if (r == -EADDRINUSE)
				r = host->error(self, vm, r, "networks[%u].ip: %s is taken by another VM", i,
						a);
			else
				r = host->error(self, vm, r,
						"networks[%u]: no free address left in the bridge's DHCP range (from %s, %zu NICs hold one)",
						i, b, store.n - 1);
			goto fail;
		}
	} else if (want_ip != ip) {
		for (size_t k = 0; want_ip && k < store.n; k++)
			if (&store.nics[k] != n && store.nics[k].ip == want_ip) {
				r = host->error(self, vm, -EADDRINUSE,
						"networks[%u].ip: another VM's NIC declares the same address", i);
				goto fail;
			}
		ip = want_ip;
	}
	n->ip = ip;
	*out = n;
	return 0;
fail:
	if (fresh)
		nb_store_remove(&store, n);
	return r;
}

/* Removes what setup() made for n, as far as it exists. */
static int nic_down(const char *vm_name, struct nb_nic *n)
{
	char err[ERRLEN], script[1024];
	int r = 0, e;
	if (store.infra.up) {
		nb_nft_vm_delete(store.infra.table, n->tap, script, sizeof(script));
		if ((e = nb_nft_run(cfg.nft, script, err, sizeof(err))) < 0) {
			host->log(self, CVMM_LOG_WARN, "VM '%s': port mapping rules of %s: %s", vm_name,
				  n->tap, err);
			r = e;
		}
	}
	if ((e = nb_tap_delete(n->tap, err, sizeof(err))) < 0) {
		host->log(self, CVMM_LOG_WARN, "VM '%s': %s", vm_name, err);
		return e; /* still active: a later undo retries */
	}
	if (n->active) {
		n->active = 0;
		save();
	}
	return r;
}

/* After a NIC went: the DHCP server forgets it, the last NIC takes the
 * shared pieces along. */
static void after_nic_down(void)
{
	if (!store.infra.up)
		return;
	if (!nb_store_active(&store)) {
		infra_down();
		return;
	}
	char err[ERRLEN];
	struct nb_config c;
	recorded_cfg(&c);
	if (c.managed && nb_dns_reload(&c, &store, err, sizeof(err)) < 0)
		host->log(self, CVMM_LOG_WARN, "%s", err);
}

static int apply_ports(cvmm_vm *vm, uint32_t i, const struct nb_nic *n, const struct nb_port *p,
		       size_t np)
{
	char script[16384], err[ERRLEN];
	if (!np)
		return 0;
	if (nb_nft_vm(cfg.table, n->tap, n->vm, n->ip, p, np, script, sizeof(script)) < 0)
		return host->error(self, vm, -ENOSPC, "ports: too many mappings");
	int r = nb_nft_run(cfg.nft, script, err, sizeof(err));
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: port mapping rules: %s", i, err);
	return 0;
}

/* ---- network mode ops ---- */

static int nb_define(void *data, cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
		     uint32_t n_ports)
{
	uint32_t want_ip;
	struct nb_port p[NB_MAX_PORTS];
	int r;
	if ((r = check_params(vm, i, &want_ip)) < 0)
		return r;
	/* Refused now rather than at the first start. The address does not
	 * matter here, only whether one will be known. */
	if ((r = convert_ports(vm, i, cfg.managed ? 1 : want_ip, ports, n_ports, p)) < 0)
		return r;
	pthread_mutex_lock(&lock);
	struct nb_nic *n;
	if ((r = ensure_nic(vm, i, want_ip, &n)) == 0) {
		if ((r = save()) < 0) {
			nb_store_remove(&store, n);
			r = host->error(self, vm, r, "networks[%u]: cannot record the address: %s", i,
					strerror(-r));
		} else {
			state_nic(vm, i, n);
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

static int nb_undefine(void *data, cvmm_vm *vm, uint32_t i)
{
	int r = 0;
	pthread_mutex_lock(&lock);
	struct nb_nic *n = nb_store_find(&store, host->vm_id(vm), i);
	if (n && n->active) { /* a teardown that failed earlier: try again */
		r = nic_down(host->vm_name(vm), n);
		after_nic_down();
	}
	if (n && r == 0) {
		nb_store_remove(&store, n);
		/* Its lease goes too; while dnsmasq runs it owns the lease file,
		 * and its next start drops what belongs to nobody. */
		if (cfg.managed && !store.infra.up)
			nb_dns_purge_leases(&cfg, &store);
		r = save();
	}
	pthread_mutex_unlock(&lock);
	static const char *const keys[] = {"mac", "tap", "bridge", "address", "ports"};
	for (size_t k = 0; r == 0 && k < sizeof(keys) / sizeof(keys[0]); k++)
		state_put(vm, i, keys[k], NULL);
	return r;
}

static int nb_setup(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
		    const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	char err[ERRLEN] = "", pstr[4096];
	struct nb_port p[NB_MAX_PORTS];
	uint32_t want_ip;
	int r;
	if ((r = check_params(vm, i, &want_ip)) < 0)
		return r;
	pthread_mutex_lock(&lock);
	struct nb_nic *n;
	if ((r = ensure_nic(vm, i, want_ip, &n)) < 0)
		goto out;
	if ((r = convert_ports(vm, i, n->ip, ports, n_ports, p)) < 0)
		goto out;
	/* Recorded before anything is made: an undo after a crash finds it. */
	nb_ports_format(p, n_ports, pstr, sizeof(pstr));
	state_nic(vm, i, n);
	state_put(vm, i, "ports", n_ports ? pstr : NULL);
	n->active = 1;
	if ((r = save()) < 0) {
		r = host->error(self, vm, r, "networks[%u]: cannot record the NIC: %s", i,
				strerror(-r));
		goto out;
	}
	if ((r = infra_up(err, sizeof(err))) < 0) {
		r = host->error(self, vm, r, "networks[%u]: %s", i, err);
		goto out;
	}
	char tmac[18];
	nb_tap_mac(n->mac, tmac, sizeof(tmac));
	if ((r = nb_tap_create(n->tap, tmac, cfg.bridge, err, sizeof(err))) < 0) {
		r = host->error(self, vm, r, "networks[%u]: %s", i, err);
		goto out;
	}
	if (cfg.managed && (r = nb_dns_reload(&cfg, &store, err, sizeof(err))) < 0) {
		r = host->error(self, vm, r, "networks[%u]: %s", i, err);
		goto out;
	}
	if ((r = apply_ports(vm, i, n, p, n_ports)) < 0)
		goto out;
	struct cvmm_spec_nic nic;
	memset(&nic, 0, sizeof(nic));
	nic.struct_size = sizeof(nic);
	nic.kind = CVMM_NIC_TAP;
	snprintf(nic.id, sizeof(nic.id), "net%u", i);
	snprintf(nic.mac, sizeof(nic.mac), "%s", n->mac);
	snprintf(nic.ifname, sizeof(nic.ifname), "%s", n->tap);
	if ((r = host->spec_add_nic(spec, &nic)) < 0) {
		r = host->error(self, vm, r, "networks[%u]: cannot add the NIC: %s", i, strerror(-r));
		goto out;
	}
	char a[32];
	nb_ip_str(n->ip, a, sizeof(a));
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: TAP %s on bridge %s, MAC %s%s%s%s%s",
		  host->vm_name(vm), i, n->tap, cfg.bridge, n->mac, n->ip ? ", address " : "",
		  n->ip ? a : "", n_ports ? ", ports " : "", n_ports ? pstr : "");
out:
	pthread_mutex_unlock(&lock);
	return r;
}

static int nb_teardown(void *data, cvmm_vm *vm, uint32_t i)
{
	pthread_mutex_lock(&lock);
	struct nb_nic *n = nb_store_find(&store, host->vm_id(vm), i), tmp;
	if (!n) { /* never defined here: the name is still ours to clean */
		memset(&tmp, 0, sizeof(tmp));
		snprintf(tmp.vm, sizeof(tmp.vm), "%s", host->vm_id(vm));
		if (nb_tap_name(tmp.vm, i, tmp.tap, sizeof(tmp.tap)) < 0) {
			pthread_mutex_unlock(&lock);
			return 0;
		}
		n = &tmp;
	}
	int was_active = n->active;
	int r = nic_down(host->vm_name(vm), n);
	if (was_active || !nb_store_active(&store))
		after_nic_down();
	pthread_mutex_unlock(&lock);
	return r;
}

static int nb_adopt(void *data, cvmm_vm *vm, uint32_t i)
{
	char err[ERRLEN], pstr[4096], key[32];
	struct nb_port p[NB_MAX_PORTS];
	uint32_t want_ip;
	int r, np = 0;
	if ((r = check_params(vm, i, &want_ip)) < 0)
		return r;
	pthread_mutex_lock(&lock);
	struct nb_nic *n;
	if ((r = ensure_nic(vm, i, want_ip, &n)) < 0)
		goto out;
	n->active = 1;
	save();
	if ((r = infra_up(err, sizeof(err))) < 0) {
		host->log(self, CVMM_LOG_ERROR, "VM '%s': networks[%u]: %s", host->vm_name(vm), i,
			  err);
		goto out;
	}
	int master = 0, br = -1;
	int kind = nb_link_kind(n->tap, NULL, &master);
	nb_link_kind(cfg.bridge, &br, NULL);
	if (kind == NB_LINK_TUN && master != br) {
		/* Someone took it off the bridge meanwhile: put it back. */
		char tmac[18];
		nb_tap_mac(n->mac, tmac, sizeof(tmac));
		if (nb_tap_create(n->tap, tmac, cfg.bridge, err, sizeof(err)) < 0)
			host->log(self, CVMM_LOG_WARN, "VM '%s': %s", host->vm_name(vm), err);
		else
			host->log(self, CVMM_LOG_WARN, "VM '%s': TAP %s was off bridge %s; re-attached",
				  host->vm_name(vm), n->tap, cfg.bridge);
	} else if (kind != NB_LINK_TUN) {
		host->log(self, CVMM_LOG_ERROR,
			  "VM '%s': networks[%u]: TAP device %s is gone; the VM has no network until it restarts",
			  host->vm_name(vm), i, n->tap);
	}
	if (cfg.managed && nb_dns_reload(&cfg, &store, err, sizeof(err)) < 0)
		host->log(self, CVMM_LOG_WARN, "VM '%s': %s", host->vm_name(vm), err);
	snprintf(key, sizeof(key), "net%u.ports", i);
	if (host->state_get(self, vm, key, pstr, sizeof(pstr)) > 0 &&
	    (np = nb_ports_parse(pstr, p, NB_MAX_PORTS)) < 0)
		host->log(self, CVMM_LOG_WARN, "VM '%s': %s: unreadable: %s", host->vm_name(vm), key,
			  pstr);
	/* Recreates whatever rule went missing: the chains are refilled whole. */
	if (np > 0)
		r = apply_ports(vm, i, n, p, (size_t)np);
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: re-adopted TAP %s", host->vm_name(vm),
		  i, n->tap);
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/* ---- load: forget what belongs to no VM, take down what nothing uses ---- */

static int vm_exists(const char *id)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s/manifest.json", cfg.vms_dir, id);
	return access(path, F_OK) == 0;
}

static int reconcile(void)
{
	char err[ERRLEN];
	int r = nb_store_load(&store, cfg.state_path, err, sizeof(err));
	if (r < 0)
		return host->error(self, NULL, r, "%s (repair or remove it)", err);
	for (size_t k = 0; k < store.n;) {
		struct nb_nic *n = &store.nics[k];
		if (vm_exists(n->vm)) {
			k++;
			continue;
		}
		host->log(self, CVMM_LOG_INFO, "VM %s no longer exists; releasing %s", n->vm, n->tap);
		if (nic_down(n->vm, n) < 0) {
			k++;
			continue;
		}
		nb_store_remove(&store, n);
	}
	if (store.infra.up && !infra_matches_config()) {
		if (nb_store_active(&store))
			return host->error(
				self, NULL, -EBUSY,
				"plugin.net-bridge: the bridge changed (was '%s', table %s) while VMs still use it; revert the configuration, stop those VMs, then change it",
				store.infra.bridge, store.infra.table);
		host->log(self, CVMM_LOG_INFO, "bridge configuration changed; removing the old '%s'",
			  store.infra.bridge);
	}
	/* With no NIC active, anything still up is a leftover of a crash. The
	 * NICs marked active belong to VMs the daemon is about to re-adopt or,
	 * if they died meanwhile, to undo; either path ends here again. */
	if (store.infra.up && (!nb_store_active(&store) || !infra_matches_config()))
		infra_down();
	return save();
}

/* At daemon start, not at load: `cvmmd --check-config` loads the plugin too,
 * and must not take down a bridge the running daemon uses. */
static int on_daemon_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	return reconcile();
}

static const struct cvmm_netmode_ops ops = {
	.struct_size = sizeof(struct cvmm_netmode_ops),
	.can_map_ports = 1,
	.define = nb_define,
	.undefine = nb_undefine,
	.setup = nb_setup,
	.teardown = nb_teardown,
	.adopt = nb_adopt,
};

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "net-bridge", "0.1.0",
			     "TAP on a Linux bridge: existing, or managed with NAT (nftables) and fixed DHCP leases (dnsmasq)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r;
	if ((r = read_config()) < 0)
		return r;
	if ((r = host->register_hook(self, CVMM_EV_DAEMON_START, 0, on_daemon_start, NULL)) < 0)
		return r;
	return host->register_netmode(self, "bridge", &ops, NULL);
}
