/*
 * net-overlay: network mode "overlay". VMs of several hosts share one L2
 * segment (and one IPv4 subnet) carried over VXLAN between the hosts.
 *
 * Per host: a bridge and a VXLAN device enslaved to it, with one all-zeros
 * FDB entry per peer (broadcast and unknown unicast are copied to every
 * peer: head-end replication, no multicast needed in the underlay; the
 * device learns where known MACs live). They are made through netlink at
 * the first PRE_START that needs them and deleted by the POST_STOP that
 * takes the last TAP off the bridge (or by any later UNDEFINE, as a
 * catch-up), so a host without running overlay VMs carries nothing. Which
 * devices this plugin made is recorded in <data_dir>/net-overlay/devices
 * before they are made, so that after a crash a device of that name is
 * known to be ours (and one not recorded is somebody else's, which is
 * refused rather than taken over or deleted). Peers are re-synced with the
 * configuration at every PRE_START and re-adoption.
 *
 * Per VM: DEFINE leases an address inside this host's slice of the overlay
 * subnet; slices of different hosts are disjoint (the operator's contract,
 * see the config), so addresses never collide across hosts. Leases live in
 * <data_dir>/net-overlay/leases and in the VM's own state, have no expiry,
 * and are released only at UNDEFINE (or found stale when the VM's data
 * directory is gone). PRE_START makes a persistent TAP on the bridge, tells
 * the guest its address on the kernel command line
 * (cvmm.ip=ethN:ADDR/PREFIX[:GATEWAY]) and its MTU through the NIC (the
 * backend renders virtio-net's host_mtu); POST_STOP deletes the TAP.
 *
 * Names: TAP "cvo" + 12 hex digits of a hash of the VM id and NIC index (15
 * characters). MAC 52:54 + the four bytes of the VM's overlay address:
 * fixed for the VM's lifetime, and unique across all hosts because the
 * addresses are (a hash of the id could collide across hosts, silently
 * breaking both VMs). The bridge takes 52:54 + its slice's network address,
 * which no VM can hold. MTU: the underlay interface's MTU minus 50 (outer
 * IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14), on bridge, VXLAN device,
 * TAPs and guests alike.
 *
 * Port mapping is not offered (can_map_ports = 0): the guests are reached
 * at their overlay addresses; the core refuses a VM whose ports no NIC can
 * carry.
 *
 * plugin.net-overlay:
 *   vni = 4242;                     # VXLAN network identifier, 1..16777215
 *   local = "10.99.0.1";            # this host's underlay address
 *   interface = "eth1";             # underlay interface (default: the one with `local`)
 *   peers = [ "10.99.0.2" ];        # the other hosts' underlay addresses
 *   port = 4789;                    # VXLAN UDP port
 *   subnet = "10.200.0.0/16";       # the whole overlay (same on every host)
 *   slice = "10.200.1.0/24";        # this host's part: disjoint across hosts
 *   gateway = "10.200.1.1";         # in the slice; put on the bridge; default
 *                                   # the slice's first address; "none": none
 *   bridge = "cvobr4242";           # default cvobr<vni>
 *   vxlan = "cvovx4242";            # default cvovx<vni>
 *   mtu = 1450;                     # default: underlay MTU - 50
 *   dnsmasq = "dnsmasq";            # the DHCP server's program
 *   dnsmasq_user = "nobody";        # --user; default dnsmasq's own (nobody):
 *                                   # run_path must then be searchable by others
 */
#include "dhcp.h"
#include "ipam.h"
#include "onl.h"

#include <cvmm/plugin.h>

#include <errno.h>
#include <libgen.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VXLAN_OVERHEAD 50
#define MAX_PEERS 256

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static struct {
	uint32_t vni;
	uint32_t local;
	const char *interface; /* NULL: found by the local address */
	uint32_t peers[MAX_PEERS];
	size_t n_peers;
	uint32_t port;
	struct ipam_net net;
	char bridge[IFNAMSIZ], vxlan[IFNAMSIZ];
	uint32_t mtu;   /* configured, 0 = from the underlay */
	char dir[4096]; /* <data_dir>/net-overlay */
	struct cp_dhcp dhcp; /* its dir: <run_path>/net-overlay-dhcp */
} conf;

/* Serialises the shared devices and the lease table across worker threads
 * (jobs of different VMs run in parallel). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

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

static void tap_for(cvmm_vm *vm, uint32_t i, char *out, size_t len)
{
	snprintf(out, len, "cvo%012llx", (unsigned long long)(fnv1a64(host->vm_id(vm), i) >> 16));
}

static void mac_of_addr(uint32_t a, char *out, size_t len)
{
	snprintf(out, len, "52:54:%02x:%02x:%02x:%02x", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
	         a & 0xff);
}

static int valid_mac(const char *m)
{
	unsigned b[6];
	char tail;
	return strlen(m) == 17 &&
	       sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	              &tail) == 6 &&
	       !(b[0] & 1);
}

/* State keys "nic<i>.<field>" are what the API shows of the NIC (address,
 * gateway, MAC, TAP); they double as this plugin's per-VM state. */
static void key_of(uint32_t i, const char *what, char *out, size_t len)
{
	snprintf(out, len, "nic%u.%s", i, what);
}

/* Sets a state key only when it changes: every set rewrites the manifest. */
static int state_put(cvmm_vm *vm, uint32_t i, const char *what, const char *value)
{
	char key[32], cur[256];
	key_of(i, what, key, sizeof(key));
	int r = host->state_get(self, vm, key, cur, sizeof(cur));
	if (value ? (r >= 0 && !strcmp(cur, value)) : r < 0)
		return 0;
	return host->state_set(self, vm, key, value);
}

/* ---- the plugin's files ---- */

static int ensure_dir(char *err, size_t len)
{
	if (mkdir(conf.dir, 0750) < 0 && errno != EEXIST) {
		int e = -errno;
		snprintf(err, len, "%s: %s", conf.dir, strerror(-e));
		return e;
	}
	return 0;
}

/* Drops the directory once it holds nothing: nothing of ours outlives use. */
static void tidy_dir(void)
{
	rmdir(conf.dir);
}

static int leases_load(struct leases *l, char *err, size_t len)
{
	char *text = NULL, why[256];
	int r = file_read(conf.dir, "leases", &text);
	if (r == -ENOENT) {
		l->v = NULL;
		l->n = 0;
		return 0;
	}
	if (r < 0) {
		snprintf(err, len, "%s/leases: %s", conf.dir, strerror(-r));
		return r;
	}
	r = leases_parse(text, l, why, sizeof(why));
	free(text);
	if (r < 0) {
		snprintf(err, len, "%s/leases: %s; refusing to hand out addresses", conf.dir, why);
		return -EIO; /* the host's fault, not the request's */
	}
	return 0;
}

static int leases_store(const struct leases *l, char *err, size_t len)
{
	int r;
	if (!l->n) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/leases", conf.dir);
		r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
		tidy_dir();
	} else {
		char *text = leases_format(l);
		r = text ? ensure_dir(err, len) : -ENOMEM;
		if (r == 0)
			r = file_write_atomic(conf.dir, "leases", text);
		free(text);
	}
	if (r < 0)
		snprintf(err, len, "%s/leases: cannot write: %s", conf.dir, strerror(-r));
	return r;
}

/* Leases of VMs whose data directory is gone (a removal that died half-way)
 * are stale. A VM's directory exists before its DEFINE runs and goes only
 * after its UNDEFINE, so a live VM's lease is never taken for stale. */
static int leases_prune(struct leases *l, cvmm_vm *vm)
{
	char vms[4096], path[4200];
	snprintf(vms, sizeof(vms), "%s", host->vm_data_dir(vm));
	char *parent = dirname(vms);
	int pruned = 0;
	for (size_t k = 0; k < l->n;) {
		snprintf(path, sizeof(path), "%s/%s", parent, l->v[k].vm);
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			char a[16];
			ipam_format(l->v[k].addr, a, sizeof(a));
			host->log(self, CVMM_LOG_WARN,
			          "lease %s of VM %s: the VM is gone; released", a, l->v[k].vm);
			l->v[k] = l->v[--l->n];
			pruned++;
		} else {
			k++;
		}
	}
	return pruned;
}

struct devices {
	char bridge[IFNAMSIZ], vxlan[IFNAMSIZ]; /* "" = none recorded */
};

static int devices_load(struct devices *d, char *err, size_t len)
{
	char *text = NULL;
	memset(d, 0, sizeof(*d));
	int r = file_read(conf.dir, "devices", &text);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		snprintf(err, len, "%s/devices: %s", conf.dir, strerror(-r));
		return r;
	}
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char k[16], v[32];
		if (line[0] == '#' || sscanf(line, "%15s %31s", k, v) != 2 || strlen(v) >= IFNAMSIZ)
			continue;
		if (!strcmp(k, "bridge"))
			snprintf(d->bridge, sizeof(d->bridge), "%s", v);
		else if (!strcmp(k, "vxlan"))
			snprintf(d->vxlan, sizeof(d->vxlan), "%s", v);
	}
	free(text);
	return 0;
}

static int devices_store(const struct devices *d, char *err, size_t len)
{
	int r;
	if (!d->bridge[0] && !d->vxlan[0]) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/devices", conf.dir);
		r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
		tidy_dir();
	} else {
		char text[256];
		snprintf(text, sizeof(text),
		         "# net-overlay: links this host's cvmmd made and deletes when unused\n"
		         "bridge %s\nvxlan %s\n",
		         d->bridge, d->vxlan);
		r = ensure_dir(err, len);
		if (r == 0)
			r = file_write_atomic(conf.dir, "devices", text);
	}
	if (r < 0)
		snprintf(err, len, "%s/devices: cannot write: %s", conf.dir, strerror(-r));
	return r;
}

/* ---- the shared devices (lock held) ---- */

/* Deletes the recorded devices when no port but the VXLAN device is left
 * on the bridge. Returns 1 if deleted (or none), 0 if still in use. */
static int shared_gc(char *err, size_t len)
{
	struct devices d;
	char why[ONL_ERR];
	int r = devices_load(&d, err, len);
	if (r < 0)
		return r;
	if (!d.bridge[0] && !d.vxlan[0])
		return 1;
	int br = onl_link_info(d.bridge, NULL, 0, NULL, NULL, why);
	int vx = d.vxlan[0] ? onl_link_info(d.vxlan, NULL, 0, NULL, NULL, why) : -ENODEV;
	if ((br < 0 && br != -ENODEV) || (vx < 0 && vx != -ENODEV)) {
		snprintf(err, len, "%s", why); /* cannot tell: delete nothing */
		return br < 0 && br != -ENODEV ? br : vx;
	}
	if (br >= 0) {
		int n = onl_count_ports(br, vx, why);
		if (n < 0) {
			snprintf(err, len, "%s", why);
			return n;
		}
		if (n > 0)
			return 0;
	}
	if ((d.vxlan[0] && (r = onl_link_del(d.vxlan, why)) < 0) ||
	    (d.bridge[0] && (r = onl_link_del(d.bridge, why)) < 0)) {
		snprintf(err, len, "%s", why);
		return r;
	}
	cp_dhcp_stop(&conf.dhcp);
	host->log(self, CVMM_LOG_INFO, "no VM on the overlay any more: deleted %s and %s", d.bridge,
	          d.vxlan);
	memset(&d, 0, sizeof(d));
	return devices_store(&d, err, len) < 0 ? -EIO : 1;
}

/* The MTU for the overlay, from the config or the underlay. */
static int overlay_mtu(uint32_t *mtu, int *link, char *err, size_t len)
{
	char why[ONL_ERR];
	uint32_t under = 0;
	int idx;
	*link = 0;
	if (conf.interface) {
		/* Named: the VXLAN device is bound to it. */
		idx = onl_link_info(conf.interface, NULL, 0, &under, NULL, why);
		*link = idx;
	} else {
		int found;
		idx = onl_mtu_of_addr(conf.local, &found, &under, why);
	}
	if (idx < 0) {
		snprintf(err, len, "underlay: %s", why);
		return idx;
	}
	if (under < 68 + VXLAN_OVERHEAD) {
		snprintf(err, len, "underlay MTU %u leaves no room for VXLAN", under);
		return -ERANGE;
	}
	if (conf.mtu && conf.mtu > under - VXLAN_OVERHEAD) {
		snprintf(err, len,
		         "plugin.net-overlay.mtu: %u does not fit the underlay's MTU %u minus "
		         "VXLAN's %d bytes",
		         conf.mtu, under, VXLAN_OVERHEAD);
		return -ERANGE;
	}
	*mtu = conf.mtu ? conf.mtu : under - VXLAN_OVERHEAD;
	return 0;
}

/* Makes the bridge, the VXLAN device, the FDB and the gateway address be
 * as configured. Idempotent. *br_out: the bridge's ifindex. */
static int shared_ensure(int *br_out, uint32_t *mtu_out, char *err, size_t len)
{
	char why[ONL_ERR], kind[32];
	uint32_t mtu;
	int link, r;
	if ((r = overlay_mtu(&mtu, &link, err, len)) < 0)
		return r;
	struct devices d;
	if ((r = devices_load(&d, err, len)) < 0)
		return r;
	if ((d.bridge[0] && strcmp(d.bridge, conf.bridge)) ||
	    (d.vxlan[0] && strcmp(d.vxlan, conf.vxlan))) {
		/* Renamed in the config: the old pair goes once unused. */
		if ((r = shared_gc(err, len)) <= 0) {
			if (r == 0)
				snprintf(err, len,
				         "bridge %s (made under an earlier configuration) still "
				         "has VMs; stop them before renaming it to %s",
				         d.bridge, conf.bridge);
			return r < 0 ? r : -EBUSY;
		}
		memset(&d, 0, sizeof(d));
	}
	int owned = !strcmp(d.bridge, conf.bridge);
	int br = onl_link_info(conf.bridge, kind, sizeof(kind), NULL, NULL, why);
	if (br >= 0 && !owned) {
		snprintf(err, len,
		         "bridge '%s' exists but was not made by net-overlay; set "
		         "plugin.net-overlay.bridge to another name or delete it",
		         conf.bridge);
		return -EEXIST;
	}
	if (br >= 0 && strcmp(kind, "bridge")) {
		snprintf(err, len, "link '%s' is a '%s', not a bridge", conf.bridge, kind);
		return -EEXIST;
	}
	if (br == -ENODEV) {
		if (onl_link_info(conf.vxlan, NULL, 0, NULL, NULL, why) >= 0 && !owned) {
			snprintf(err, len,
			         "VXLAN device '%s' exists but was not made by net-overlay; set "
			         "plugin.net-overlay.vxlan to another name or delete it",
			         conf.vxlan);
			return -EEXIST;
		}
		/* Recorded first: after a crash a link of this name is ours. */
		snprintf(d.bridge, sizeof(d.bridge), "%s", conf.bridge);
		snprintf(d.vxlan, sizeof(d.vxlan), "%s", conf.vxlan);
		if ((r = devices_store(&d, err, len)) < 0)
			return r;
		char mac[18];
		mac_of_addr(conf.net.slice, mac, sizeof(mac));
		if ((r = onl_bridge_add(conf.bridge, mtu, mac, why)) < 0 ||
		    (r = br = onl_link_info(conf.bridge, NULL, 0, NULL, NULL, why)) < 0) {
			snprintf(err, len, "%s", why);
			return r;
		}
		host->log(self, CVMM_LOG_INFO, "bridge %s made (MTU %u)", conf.bridge, mtu);
	} else if (br < 0) {
		snprintf(err, len, "%s", why);
		return br;
	} else if ((r = onl_link_set(conf.bridge, mtu, 0, why)) < 0) {
		snprintf(err, len, "%s", why);
		return r;
	}
	struct onl_vxlan v = {conf.vxlan, conf.vni, conf.local, conf.port, link, mtu, br};
	r = onl_vxlan_matches(&v, why);
	if (r == 0) {
		/* Ours (recorded with the bridge) but made under another
		 * configuration: remade; the TAPs stay on the bridge. */
		host->log(self, CVMM_LOG_INFO,
		          "VXLAN device %s differs from the configuration; remaking it",
		          conf.vxlan);
		if ((r = onl_link_del(conf.vxlan, why)) < 0) {
			snprintf(err, len, "%s", why);
			return r;
		}
		r = -ENODEV;
	}
	if (r == -ENODEV) {
		if ((r = onl_vxlan_add(&v, why)) < 0) {
			snprintf(err, len, "%s", why);
			return r;
		}
		host->log(self, CVMM_LOG_INFO, "VXLAN device %s made (VNI %u, port %u, MTU %u)",
		          conf.vxlan, conf.vni, conf.port, mtu);
	} else if (r < 0 || (r = onl_link_set(conf.vxlan, mtu, br, why)) < 0) {
		snprintf(err, len, "%s", why);
		return r;
	}
	int vx = onl_link_info(conf.vxlan, NULL, 0, NULL, NULL, why);
	if (vx < 0 || (r = onl_fdb_sync(vx, conf.peers, conf.n_peers, why)) < 0 ||
	    (conf.net.gateway &&
	     (r = onl_addr_add(br, conf.net.gateway, conf.net.subnet_prefix, why)) < 0)) {
		snprintf(err, len, "%s", why);
		return vx < 0 ? vx : r;
	}
	if (conf.net.gateway && (r = cp_dhcp_ensure(&conf.dhcp, err, len)) < 0)
		return r;
	*br_out = br;
	*mtu_out = mtu;
	return 0;
}

/* ---- addresses (lock held) ---- */

/* The VM's address for NIC i: its lease, made now if it has none. */
static int lease_for(cvmm_vm *vm, uint32_t i, uint32_t *out, char *err, size_t len)
{
	struct leases l;
	char key[32], buf[64], a[16];
	int r = leases_load(&l, err, len);
	if (r < 0)
		return r;
	leases_prune(&l, vm);
	const char *id = host->vm_id(vm);
	const struct lease *mine = leases_by_owner(&l, id, i);
	uint32_t addr = mine ? mine->addr : 0, want = 0;
	key_of(i, "address", key, sizeof(key));
	if (!addr && host->state_get(self, vm, key, buf, sizeof(buf)) > 0) {
		buf[strcspn(buf, "/")] = 0;
		ipam_parse_addr(buf, &want); /* the VM knows its address; the table lost it */
	}
	const char *asked = host->vm_nic_param(vm, i, "ip");
	if (!addr && !want && asked && ipam_parse_addr(asked, &want) < 0) {
		snprintf(err, len, "networks[%u].ip: must be an IPv4 address, got '%s'", i, asked);
		r = -EINVAL;
		goto out;
	}
	if (!addr && want) {
		const struct lease *other = leases_by_addr(&l, want);
		ipam_format(want, a, sizeof(a));
		if (!ipam_usable(&conf.net, want)) {
			char s[16];
			ipam_format(conf.net.slice, s, sizeof(s));
			snprintf(err, len,
			         "networks[%u].ip: %s is not an address this host may hand out "
			         "(slice %s/%u, not its first or last address, nor the gateway)",
			         i, a, s, conf.net.slice_prefix);
			r = -EINVAL;
			goto out;
		}
		if (other) {
			snprintf(err, len, "networks[%u].ip: %s is already leased to VM %s", i, a,
			         other->vm);
			r = -EADDRINUSE;
			goto out;
		}
		addr = want;
	}
	if (!addr && !(addr = ipam_pick(&conf.net, &l))) {
		char s[16];
		ipam_format(conf.net.slice, s, sizeof(s));
		snprintf(
		    err, len,
		    "networks[%u]: no free address left in this host's slice %s/%u (%zu leased)", i,
		    s, conf.net.slice_prefix, l.n);
		r = -EBUSY; /* like an exhausted CID pool: 409 */
		goto out;
	}
	if (!mine &&
	    ((r = leases_add(&l, addr, id, i)) < 0 || (r = leases_store(&l, err, len)) < 0))
		goto out;
	char cidr[32], mac[18], gw[16];
	ipam_format(addr, a, sizeof(a));
	snprintf(cidr, sizeof(cidr), "%s/%u", a, conf.net.subnet_prefix);
	const char *own_mac = host->vm_nic_param(vm, i, "mac");
	mac_of_addr(addr, mac, sizeof(mac));
	ipam_format(conf.net.gateway, gw, sizeof(gw));
	if ((r = state_put(vm, i, "address", cidr)) < 0 ||
	    (r = state_put(vm, i, "mac", own_mac ? own_mac : mac)) < 0 ||
	    (r = state_put(vm, i, "gateway", conf.net.gateway ? gw : NULL)) < 0) {
		snprintf(err, len, "cannot save the VM's state: %s", strerror(-r));
		goto out;
	}
	*out = addr;
	r = 0;
out:
	leases_free(&l);
	return r;
}

/* ---- network mode ops ---- */

static int no_define(void *data, cvmm_vm *vm, uint32_t i, const struct cvmm_port_map *const *ports,
                     uint32_t n_ports)
{
	static const char *const known[] = {"mode", "ip", "mac", NULL};
	const char *key;
	for (uint32_t k = 0; (key = host->vm_nic_param_at(vm, i, k, NULL)); k++) {
		int ok = 0;
		for (int n = 0; known[n]; n++)
			ok |= !strcmp(key, known[n]);
		if (!ok)
			return host->error(
			    self, vm, -EINVAL,
			    "networks[%u].%s: not a parameter of mode 'overlay' (known: ip, mac)",
			    i, key);
	}
	if (n_ports)
		return host->error(self, vm, -EINVAL,
		                   "ports: mode 'overlay' cannot map ports: reach the guest at its "
		                   "overlay address");
	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac && !valid_mac(mac))
		return host->error(
		    self, vm, -EINVAL,
		    "networks[%u].mac: must be a unicast MAC address aa:bb:cc:dd:ee:ff, got '%s'",
		    i, mac);
	char err[1024];
	uint32_t addr;
	pthread_mutex_lock(&lock);
	int r = lease_for(vm, i, &addr, err, sizeof(err));
	pthread_mutex_unlock(&lock);
	if (r < 0)
		return host->error(self, vm, r, "%s", err);
	char a[16];
	ipam_format(addr, a, sizeof(a));
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: address %s/%u leased",
	          host->vm_name(vm), i, a, conf.net.subnet_prefix);
	return 0;
}

static int no_undefine(void *data, cvmm_vm *vm, uint32_t i)
{
	struct leases l;
	char err[1024];
	pthread_mutex_lock(&lock);
	int r = leases_load(&l, err, sizeof(err));
	if (r == 0) {
		if (leases_remove(&l, host->vm_id(vm), i) + leases_prune(&l, vm) > 0)
			r = leases_store(&l, err, sizeof(err));
		leases_free(&l);
	}
	/* Catch-up: shared devices a crash left unused go now. */
	char gerr[1024];
	if (shared_gc(gerr, sizeof(gerr)) < 0)
		host->log(self, CVMM_LOG_WARN, "overlay devices: %s", gerr);
	pthread_mutex_unlock(&lock);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: %s", i, err);
	state_put(vm, i, "address", NULL);
	state_put(vm, i, "mac", NULL);
	state_put(vm, i, "gateway", NULL);
	return 0;
}

static int no_setup(void *data, cvmm_vm *vm, uint32_t i, cvmm_spec *spec,
                    const struct cvmm_port_map *const *ports, uint32_t n_ports)
{
	struct cvmm_spec_nic nic;
	char err[1024], why[ONL_ERR], key[32];
	uint32_t addr = 0, mtu = 0;
	int br = 0, r;
	memset(&nic, 0, sizeof(nic));
	nic.struct_size = sizeof(nic);
	nic.kind = CVMM_NIC_TAP;
	snprintf(nic.id, sizeof(nic.id), "net%u", i);
	tap_for(vm, i, nic.ifname, sizeof(nic.ifname));
	key_of(i, "tap", key, sizeof(key));
	/* Saved before the TAP exists: a teardown after a crash finds it. */
	if ((r = host->state_set(self, vm, key, nic.ifname)) < 0)
		return host->error(self, vm, r, "networks[%u]: cannot save state: %s", i,
		                   strerror(-r));
	pthread_mutex_lock(&lock);
	if ((r = lease_for(vm, i, &addr, err, sizeof(err))) < 0 ||
	    (r = shared_ensure(&br, &mtu, err, sizeof(err))) < 0)
		goto fail;
	/* A TAP of this name is this VM's own from a boot that was not torn
	 * down (the daemon died): replace it. */
	if ((r = onl_link_del(nic.ifname, why)) < 0 ||
	    (r = onl_tap_add(nic.ifname, mtu, br, why)) < 0) {
		snprintf(err, sizeof(err), "%s", why);
		goto fail;
	}
	pthread_mutex_unlock(&lock);

	const char *mac = host->vm_nic_param(vm, i, "mac");
	if (mac)
		snprintf(nic.mac, sizeof(nic.mac), "%s", mac);
	else
		mac_of_addr(addr, nic.mac, sizeof(nic.mac));
	nic.mtu = mtu;
	char a[16], gw[16] = "", arg[96];
	ipam_format(addr, a, sizeof(a));
	if (conf.net.gateway)
		ipam_format(conf.net.gateway, gw, sizeof(gw));
	/* One NIC per network entry, in order: NIC i is the guest's ethi. */
	snprintf(arg, sizeof(arg), "cvmm.ip=eth%u:%s/%u%s%s", i, a, conf.net.subnet_prefix,
	         gw[0] ? ":" : "", gw);
	if ((r = host->spec_add_nic(spec, &nic)) < 0 ||
	    (r = host->spec_append_cmdline(spec, arg)) < 0) {
		snprintf(err, sizeof(err), "cannot add the NIC: %s", strerror(-r));
		pthread_mutex_lock(&lock);
		goto fail;
	}
	if (conf.net.gateway) {
		/* Under the lock: the server restarts for a changed set of
		 * leases, and parallel starts must not restart it at once. */
		pthread_mutex_lock(&lock);
		r = cp_dhcp_host(&conf.dhcp, nic.ifname, nic.mac, a);
		if (r < 0) {
			snprintf(err, sizeof(err), "DHCP lease for %s: %s", nic.mac, strerror(-r));
			cp_dhcp_host(&conf.dhcp, nic.ifname, NULL, NULL);
			goto fail;
		}
		pthread_mutex_unlock(&lock);
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: TAP %s on %s, %s/%u, MTU %u, mac %s",
	          host->vm_name(vm), i, nic.ifname, conf.bridge, a, conf.net.subnet_prefix, mtu,
	          nic.mac);
	return 0;
fail:
	/* Under the lock. Leave no TAP and no unused shared device behind (the
	 * core tears down only the NICs whose setup succeeded); the lease stays
	 * (it is the VM's until UNDEFINE). */
	onl_link_del(nic.ifname, why);
	shared_gc(why, sizeof(why));
	pthread_mutex_unlock(&lock);
	if (!strncmp(err, "networks[", 9)) /* lease_for named the NIC already */
		return host->error(self, vm, r, "%s", err);
	return host->error(self, vm, r, "networks[%u]: %s", i, err);
}

static int no_teardown(void *data, cvmm_vm *vm, uint32_t i)
{
	char key[32], tap[IFNAMSIZ + 8], why[ONL_ERR], err[1024];
	key_of(i, "tap", key, sizeof(key));
	if (host->state_get(self, vm, key, tap, sizeof(tap)) < 0)
		tap_for(vm, i, tap, sizeof(tap));
	pthread_mutex_lock(&lock);
	cp_dhcp_host(&conf.dhcp, tap, NULL, NULL);
	int r = onl_link_del(tap, why);
	if (r < 0)
		snprintf(err, sizeof(err), "%s", why);
	else if ((r = shared_gc(err, sizeof(err))) > 0)
		r = 0;
	pthread_mutex_unlock(&lock);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: %s", i, err);
	host->state_set(self, vm, key, NULL);
	return 0;
}

static int no_adopt(void *data, cvmm_vm *vm, uint32_t i)
{
	char key[32], tap[IFNAMSIZ + 8], why[ONL_ERR], err[1024];
	uint32_t mtu, addr;
	int br, master = 0, r;
	key_of(i, "tap", key, sizeof(key));
	if (host->state_get(self, vm, key, tap, sizeof(tap)) < 0)
		tap_for(vm, i, tap, sizeof(tap));
	pthread_mutex_lock(&lock);
	/* The lease, the shared devices and the peers as configured now; the
	 * TAP back on the bridge if the bridge had to be remade. */
	if ((r = lease_for(vm, i, &addr, err, sizeof(err))) < 0 ||
	    (r = shared_ensure(&br, &mtu, err, sizeof(err))) < 0)
		goto out;
	if ((r = onl_link_info(tap, NULL, 0, NULL, &master, why)) < 0) {
		snprintf(err, sizeof(err),
		         "TAP %s is gone; the guest has no network until it restarts", tap);
		goto out;
	}
	if (master != br && (r = onl_link_set(tap, mtu, br, why)) < 0) {
		snprintf(err, sizeof(err), "%s", why);
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&lock);
	if (r < 0 && !strncmp(err, "networks[", 9))
		return host->error(self, vm, r, "%s", err);
	if (r < 0)
		return host->error(self, vm, r, "networks[%u]: %s", i, err);
	host->log(self, CVMM_LOG_INFO, "VM '%s': networks[%u]: TAP %s re-adopted on %s",
	          host->vm_name(vm), i, tap, conf.bridge);
	return 0;
}

static const struct cvmm_netmode_ops ops = {
    .struct_size = sizeof(struct cvmm_netmode_ops),
    .can_map_ports = 0,
    .define = no_define,
    .undefine = no_undefine,
    .setup = no_setup,
    .teardown = no_teardown,
    .adopt = no_adopt,
};

/* ---- configuration ---- */

static int bad(const char *fmt, const char *key, const char *v)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, v);
	return host->error(self, NULL, -EINVAL, "plugin.net-overlay.%s: %s", key, msg);
}

static int name_setting(const char *key, const char *dflt, char *out)
{
	const char *v = NULL;
	int r = host->cfg_string(self, key, &v);
	if (r == -ENOENT) {
		snprintf(out, IFNAMSIZ, "%s", dflt);
		return 0;
	}
	if (r < 0)
		return r;
	if (!v[0] || strlen(v) >= IFNAMSIZ || strchr(v, '/') || strchr(v, ' '))
		return bad("must be an interface name of 1 to 15 characters, got '%s'", key, v);
	snprintf(out, IFNAMSIZ, "%s", v);
	return 0;
}

static int read_config(void)
{
	const char *v;
	int64_t n;
	char why[256];
	int r;
	if ((r = host->cfg_int(self, "vni", &n)) == -ENOENT)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.net-overlay.vni: required (1..16777215)");
	if (r < 0)
		return r;
	if (n < 1 || n > 16777215) {
		snprintf(why, sizeof(why), "%lld", (long long)n);
		return bad("must be between 1 and 16777215, got %s", "vni", why);
	}
	conf.vni = (uint32_t)n;
	if ((r = host->cfg_string(self, "local", &v)) == -ENOENT)
		return host->error(
		    self, NULL, -EINVAL,
		    "plugin.net-overlay.local: required (this host's underlay IPv4 address)");
	if (r < 0)
		return r;
	if (ipam_parse_addr(v, &conf.local) < 0)
		return bad("must be an IPv4 address, got '%s'", "local", v);
	conf.interface = NULL;
	if ((r = host->cfg_string(self, "interface", &conf.interface)) < 0 && r != -ENOENT)
		return r;
	if (r == 0 && (!conf.interface[0] || strlen(conf.interface) >= IFNAMSIZ))
		return bad("must be an interface name of 1 to 15 characters, got '%s'", "interface",
		           conf.interface);
	int count = host->cfg_count(self, "peers");
	if (count == -EINVAL)
		return count;
	if (count > MAX_PEERS) {
		snprintf(why, sizeof(why), "%d", count);
		return bad("at most 256 peers, got %s", "peers", why);
	}
	conf.n_peers = 0;
	for (int k = 0; k < count; k++) {
		uint32_t a;
		if ((r = host->cfg_string_at(self, "peers", (uint32_t)k, &v)) < 0)
			return r;
		if (ipam_parse_addr(v, &a) < 0)
			return bad("must list IPv4 addresses, got '%s'", "peers", v);
		if (a == conf.local)
			return bad("lists this host's own address %s (plugin.net-overlay.local)",
			           "peers", v);
		for (size_t j = 0; j < conf.n_peers; j++)
			if (conf.peers[j] == a)
				return bad("lists %s twice", "peers", v);
		conf.peers[conf.n_peers++] = a;
	}
	conf.port = 4789;
	if ((r = host->cfg_int(self, "port", &n)) == 0) {
		if (n < 1 || n > 65535) {
			snprintf(why, sizeof(why), "%lld", (long long)n);
			return bad("must be between 1 and 65535, got %s", "port", why);
		}
		conf.port = (uint32_t)n;
	} else if (r != -ENOENT) {
		return r;
	}
	const char *keys[] = {"subnet", "slice"};
	uint32_t *nets[] = {&conf.net.subnet, &conf.net.slice};
	uint32_t *prefixes[] = {&conf.net.subnet_prefix, &conf.net.slice_prefix};
	for (int k = 0; k < 2; k++) {
		if ((r = host->cfg_string(self, keys[k], &v)) == -ENOENT)
			return host->error(
			    self, NULL, -EINVAL,
			    "plugin.net-overlay.%s: required (an IPv4 network a.b.c.d/n)", keys[k]);
		if (r < 0)
			return r;
		if (ipam_parse_cidr(v, nets[k], prefixes[k], why, sizeof(why)) < 0)
			return bad("%s", keys[k], why);
	}
	conf.net.gateway = 0;
	r = host->cfg_string(self, "gateway", &v);
	if (r == -ENOENT)
		conf.net.gateway = conf.net.slice + 1;
	else if (r < 0)
		return r;
	else if (strcmp(v, "none") && ipam_parse_addr(v, &conf.net.gateway) < 0)
		return bad("must be an IPv4 address or \"none\", got '%s'", "gateway", v);
	if (ipam_check(&conf.net, why, sizeof(why)) < 0)
		return host->error(self, NULL, -EINVAL, "plugin.net-overlay.%s", why);
	char dflt[IFNAMSIZ];
	snprintf(dflt, sizeof(dflt), "cvobr%u", conf.vni);
	if ((r = name_setting("bridge", dflt, conf.bridge)) < 0)
		return r;
	snprintf(dflt, sizeof(dflt), "cvovx%u", conf.vni);
	if ((r = name_setting("vxlan", dflt, conf.vxlan)) < 0)
		return r;
	if (!strcmp(conf.bridge, conf.vxlan))
		return bad("must differ from plugin.net-overlay.bridge ('%s')", "vxlan",
		           conf.bridge);
	conf.mtu = 0;
	if ((r = host->cfg_int(self, "mtu", &n)) == 0) {
		if (n < 68 || n > 65535) {
			snprintf(why, sizeof(why), "%lld", (long long)n);
			return bad("must be between 68 and 65535, got %s", "mtu", why);
		}
		conf.mtu = (uint32_t)n;
	} else if (r != -ENOENT) {
		return r;
	}
	snprintf(conf.dir, sizeof(conf.dir), "%s/net-overlay", host->data_dir(self));
	/* DHCP over the whole overlay subnet, answering only this host's MACs. */
	struct cp_dhcp *dh = &conf.dhcp;
	char sub[16], mask[16];
	ipam_format(conf.net.subnet, sub, sizeof(sub));
	ipam_format(ipam_mask(conf.net.subnet_prefix), mask, sizeof(mask));
	snprintf(dh->dir, sizeof(dh->dir), "%s/net-overlay-dhcp", host->run_dir(self));
	snprintf(dh->interface, sizeof(dh->interface), "%s", conf.bridge);
	snprintf(dh->range, sizeof(dh->range), "%s,static,%s,infinite", sub, mask);
	if ((r = host->cfg_string(self, "dnsmasq", &v)) == 0)
		snprintf(dh->dnsmasq, sizeof(dh->dnsmasq), "%s", v);
	else if (r != -ENOENT)
		return r;
	if ((r = host->cfg_string(self, "dnsmasq_user", &v)) == 0)
		snprintf(dh->user, sizeof(dh->user), "%s", v);
	else if (r != -ENOENT)
		return r;
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(
	    desc, "net-overlay", "0.1.0",
	    "VMs of several hosts on one VXLAN overlay (bridge, VXLAN, FDB via netlink)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	char s[16], g[16] = "none";
	ipam_format(conf.net.slice, s, sizeof(s));
	if (conf.net.gateway)
		ipam_format(conf.net.gateway, g, sizeof(g));
	host->log(self, CVMM_LOG_INFO, "VNI %u on %s and %s, slice %s/%u, gateway %s, %zu peers",
	          conf.vni, conf.bridge, conf.vxlan, s, conf.net.slice_prefix, g, conf.n_peers);
	return host->register_netmode(self, "overlay", &ops, NULL);
}
