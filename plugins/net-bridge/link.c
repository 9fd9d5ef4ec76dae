/*
 * link: bridges and TAP devices, made through netlink with libnl (never by
 * running ip). A TAP is created with the TUN ioctls (TUNSETIFF, then
 * TUNSETPERSIST so that it outlives our descriptor and QEMU opens it by
 * name); everything else (MAC, master, up, addresses, per-device IPv4
 * settings) is rtnetlink. Each call opens its own netlink socket and closes
 * it: calls come from several worker threads, and the daemon's descriptor
 * count must not change with what the plugin did before.
 *
 * Deleting checks the kind first: a name of ours that turns out to be
 * something else (not a TAP, not a bridge) is left alone and reported.
 */
#include "nb.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/ip.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <arpa/inet.h>

static int nl_errno(int nlerr)
{
	switch (-nlerr) {
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_RANGE:
		return -ERANGE;
	}
	return -EIO;
}

static int sock_open(struct nl_sock **out, char *err, size_t errlen)
{
	/* Set on every path: gcc cannot see that nl_errno() is never 0 here. */
	*out = NULL;
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk) {
		snprintf(err, errlen, "netlink: out of memory");
		return -ENOMEM;
	}
	int r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		snprintf(err, errlen, "netlink: cannot connect: %s", nl_geterror(r));
		nl_socket_free(sk);
		return nl_errno(r);
	}
	*out = sk;
	return 0;
}

static int kind_of(struct rtnl_link *l)
{
	const char *t = rtnl_link_get_type(l);
	if (t && !strcmp(t, "bridge"))
		return NB_LINK_BRIDGE;
	if (t && !strcmp(t, "tun"))
		return NB_LINK_TUN;
	return NB_LINK_OTHER;
}

/* The link called name (a reference the caller puts), or NULL if none. */
static int get_link(struct nl_sock *sk, const char *name, struct rtnl_link **out)
{
	*out = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, out);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return 0;
	return r < 0 ? nl_errno(r) : 0;
}

int nb_link_kind(const char *name, int *ifindex, int *master)
{
	struct nl_sock *sk;
	char err[128];
	int r = sock_open(&sk, err, sizeof(err));
	if (r < 0)
		return r;
	struct rtnl_link *l;
	r = get_link(sk, name, &l);
	if (r == 0 && l) {
		r = kind_of(l);
		if (ifindex)
			*ifindex = rtnl_link_get_ifindex(l);
		if (master)
			*master = rtnl_link_get_master(l);
		rtnl_link_put(l);
	} else if (r == 0) {
		r = NB_LINK_NONE;
	}
	nl_socket_free(sk);
	return r;
}

static struct nl_addr *mac_addr(const char *mac)
{
	uint8_t m[6];
	if (nb_mac_parse(mac, m) < 0)
		return NULL;
	return nl_addr_build(AF_LLC, m, sizeof(m));
}

/* Applies changes to the existing link orig. */
static int change(struct nl_sock *sk, struct rtnl_link *orig, struct rtnl_link *chg,
		  const char *what, const char *name, char *err, size_t errlen)
{
	int r = rtnl_link_change(sk, orig, chg, 0);
	if (r < 0) {
		snprintf(err, errlen, "%s '%s': %s", what, name, nl_geterror(r));
		return nl_errno(r);
	}
	return 0;
}

int nb_bridge_create(const char *name, const char *mac, uint32_t gw, int prefix, char *err,
		     size_t errlen)
{
	struct nl_sock *sk = NULL;
	struct rtnl_link *l = NULL, *chg = NULL;
	struct rtnl_addr *ad = NULL;
	struct nl_addr *hw = NULL, *local = NULL;
	int r = sock_open(&sk, err, errlen);
	if (r < 0)
		return r;
	if ((r = get_link(sk, name, &l)) < 0) {
		snprintf(err, errlen, "bridge '%s': cannot look it up: %s", name, strerror(-r));
		goto cleanup;
	}
	if (l && kind_of(l) != NB_LINK_BRIDGE) {
		snprintf(err, errlen, "bridge '%s': a link of that name exists and is not a bridge",
			 name);
		r = -EEXIST;
		goto cleanup;
	}
	if (!l) {
		struct rtnl_link *nb = rtnl_link_bridge_alloc();
		hw = mac_addr(mac);
		if (!nb || !hw) {
			rtnl_link_put(nb);
			r = -ENOMEM;
			snprintf(err, errlen, "bridge '%s': out of memory", name);
			goto cleanup;
		}
		rtnl_link_set_name(nb, name);
		/* A fixed MAC: otherwise the bridge takes its ports' lowest one and
		 * changes it as VMs come and go, confusing the guests' ARP caches. */
		rtnl_link_set_addr(nb, hw);
		r = rtnl_link_add(sk, nb, NLM_F_CREATE | NLM_F_EXCL);
		rtnl_link_put(nb);
		if (r < 0) {
			snprintf(err, errlen, "bridge '%s' could not be created: %s", name,
				 nl_geterror(r));
			r = nl_errno(r);
			goto cleanup;
		}
		if ((r = get_link(sk, name, &l)) < 0 || !l) {
			snprintf(err, errlen, "bridge '%s' vanished after its creation", name);
			r = r < 0 ? r : -ENODEV;
			goto cleanup;
		}
	}
	/* forwarding: the guests' traffic may leave through other links (NAT);
	 * route_localnet: DNAT of 127.0.0.1 port mappings into the bridge. Both
	 * are settings of this bridge only and go away with it. */
	chg = rtnl_link_alloc();
	if (!chg) {
		r = -ENOMEM;
		goto cleanup;
	}
	rtnl_link_set_flags(chg, IFF_UP);
	rtnl_link_inet_set_conf(chg, IPV4_DEVCONF_FORWARDING, 1);
	rtnl_link_inet_set_conf(chg, IPV4_DEVCONF_ROUTE_LOCALNET, 1);
	if ((r = change(sk, l, chg, "bridge", name, err, errlen)) < 0)
		goto cleanup;
	ad = rtnl_addr_alloc();
	uint32_t be = htonl(gw);
	local = nl_addr_build(AF_INET, &be, sizeof(be));
	if (!ad || !local) {
		r = -ENOMEM;
		goto cleanup;
	}
	nl_addr_set_prefixlen(local, prefix);
	rtnl_addr_set_ifindex(ad, rtnl_link_get_ifindex(l));
	rtnl_addr_set_local(ad, local);
	rtnl_addr_set_prefixlen(ad, prefix);
	r = rtnl_addr_add(sk, ad, 0);
	if (r == -NLE_EXIST) {
		r = 0;
	} else if (r < 0) {
		char a[32];
		nb_ip_str(gw, a, sizeof(a));
		snprintf(err, errlen, "bridge '%s': address %s/%d could not be added: %s", name, a,
			 prefix, nl_geterror(r));
		r = nl_errno(r);
	}
cleanup:
	nl_addr_put(hw);
	nl_addr_put(local);
	if (ad)
		rtnl_addr_put(ad);
	rtnl_link_put(chg);
	rtnl_link_put(l);
	nl_socket_free(sk);
	return r;
}

static int delete_kind(const char *name, int want, const char *what, char *err, size_t errlen)
{
	struct nl_sock *sk;
	struct rtnl_link *l = NULL;
	int r = sock_open(&sk, err, errlen);
	if (r < 0)
		return r;
	if ((r = get_link(sk, name, &l)) < 0) {
		snprintf(err, errlen, "%s '%s': cannot look it up: %s", what, name, strerror(-r));
	} else if (l && kind_of(l) != want) {
		snprintf(err, errlen, "%s '%s': a link of that name is not a %s; left alone", what,
			 name, what);
		r = -EEXIST;
	} else if (l) {
		r = rtnl_link_delete(sk, l);
		if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV) {
			r = 0; /* gone meanwhile */
		} else if (r < 0) {
			snprintf(err, errlen, "%s '%s' could not be deleted: %s", what, name,
				 nl_geterror(r));
			r = nl_errno(r);
		}
	}
	rtnl_link_put(l);
	nl_socket_free(sk);
	return r;
}

int nb_bridge_delete(const char *name, char *err, size_t errlen)
{
	return delete_kind(name, NB_LINK_BRIDGE, "bridge", err, errlen);
}

int nb_tap_delete(const char *name, char *err, size_t errlen)
{
	return delete_kind(name, NB_LINK_TUN, "TAP device", err, errlen);
}

static int tun_create(const char *name, char *err, size_t errlen)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "TAP device '%s' could not be created: /dev/net/tun: %s", name,
			 strerror(e));
		return -e;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = 0;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		r = -errno;
		snprintf(err, errlen, "TAP device '%s' could not be created: %s", name, strerror(-r));
	}
	close(fd);
	return r;
}

int nb_tap_create(const char *name, const char *mac, const char *bridge, char *err,
		  size_t errlen)
{
	struct nl_sock *sk = NULL;
	struct rtnl_link *l = NULL, *br = NULL, *chg = NULL;
	struct nl_addr *hw = NULL;
	int r = sock_open(&sk, err, errlen);
	if (r < 0)
		return r;
	if ((r = get_link(sk, bridge, &br)) < 0 || !br || kind_of(br) != NB_LINK_BRIDGE) {
		snprintf(err, errlen, "bridge '%s' %s", bridge,
			 r < 0 ? strerror(-r) : !br ? "does not exist" : "is not a bridge");
		r = r < 0 ? r : -ENODEV;
		goto cleanup;
	}
	if ((r = get_link(sk, name, &l)) < 0) {
		snprintf(err, errlen, "TAP device '%s': cannot look it up: %s", name, strerror(-r));
		goto cleanup;
	}
	if (l && kind_of(l) != NB_LINK_TUN) {
		snprintf(err, errlen, "TAP device '%s': a link of that name exists and is not a TAP",
			 name);
		r = -EEXIST;
		goto cleanup;
	}
	if (!l) { /* else a TAP left by an interrupted start: take it back */
		if ((r = tun_create(name, err, errlen)) < 0)
			goto cleanup;
		if ((r = get_link(sk, name, &l)) < 0 || !l) {
			snprintf(err, errlen, "TAP device '%s' vanished after its creation", name);
			r = r < 0 ? r : -ENODEV;
			goto cleanup;
		}
	}
	chg = rtnl_link_alloc();
	hw = mac_addr(mac);
	if (!chg || !hw) {
		r = -ENOMEM;
		snprintf(err, errlen, "TAP device '%s': out of memory", name);
		goto cleanup;
	}
	rtnl_link_set_addr(chg, hw);
	rtnl_link_set_master(chg, rtnl_link_get_ifindex(br));
	rtnl_link_set_flags(chg, IFF_UP);
	r = change(sk, l, chg, "TAP device", name, err, errlen);
cleanup:
	nl_addr_put(hw);
	rtnl_link_put(chg);
	rtnl_link_put(l);
	rtnl_link_put(br);
	nl_socket_free(sk);
	return r;
}
