/*
 * onl: see onl.h. Links and addresses go through libnl-route's objects;
 * VXLAN FDB entries are built by hand, because libnl's neighbour messages
 * for AF_BRIDGE carry no NDA_DST (the remote VTEP), which is the point of
 * the entry.
 */
#include "onl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/rtnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* libnl's codes back to errno values. */
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
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_AGAIN:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

static int fail(int nlerr, char *err, const char *fmt, const char *what)
{
	snprintf(err, ONL_ERR, fmt, what);
	size_t l = strlen(err);
	snprintf(err + l, ONL_ERR - l, ": %s", nl_geterror(nlerr));
	return nl2errno(nlerr);
}

static int sock_open(struct nl_sock **out, char *err)
{
	struct nl_sock *s = nl_socket_alloc();
	if (!s) {
		snprintf(err, ONL_ERR, "netlink: out of memory");
		return -ENOMEM;
	}
	int r = nl_connect(s, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(s);
		return fail(r, err, "netlink: %s", "cannot connect");
	}
	*out = s;
	return 0;
}

static void sock_close(struct nl_sock *s)
{
	if (s)
		nl_socket_free(s);
}

static struct nl_addr *in4_addr(uint32_t a, uint32_t prefix)
{
	uint32_t be = htonl(a);
	struct nl_addr *n = nl_addr_build(AF_INET, &be, 4);
	if (n)
		nl_addr_set_prefixlen(n, (int)prefix);
	return n;
}

int onl_link_info(const char *name, char *kind, size_t kind_len, uint32_t *mtu, int *master,
                  char *err)
{
	struct nl_sock *s = NULL;
	struct rtnl_link *l = NULL;
	int r = sock_open(&s, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(s, 0, name, &l);
	sock_close(s);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV) {
		snprintf(err, ONL_ERR, "link '%s' does not exist", name);
		return -ENODEV;
	}
	if (r < 0)
		return fail(r, err, "link '%s'", name);
	if (kind) {
		const char *t = rtnl_link_get_type(l);
		snprintf(kind, kind_len, "%s", t ? t : "");
	}
	if (mtu)
		*mtu = rtnl_link_get_mtu(l);
	if (master)
		*master = rtnl_link_get_master(l);
	r = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	return r;
}

int onl_mtu_of_addr(uint32_t addr, int *ifindex, uint32_t *mtu, char *err)
{
	struct nl_sock *s = NULL;
	struct nl_cache *cache = NULL;
	int r = sock_open(&s, err), found = 0;
	if (r < 0)
		return r;
	if ((r = rtnl_addr_alloc_cache(s, &cache)) < 0) {
		r = fail(r, err, "netlink: %s", "listing addresses");
		goto out;
	}
	uint32_t be = htonl(addr);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		struct nl_addr *local = rtnl_addr_get_local(a);
		if (rtnl_addr_get_family(a) != AF_INET || !local || nl_addr_get_len(local) != 4 ||
		    memcmp(nl_addr_get_binary_addr(local), &be, 4))
			continue;
		found = rtnl_addr_get_ifindex(a);
		break;
	}
	if (!found) {
		char t[16];
		inet_ntop(AF_INET, &be, t, sizeof(t));
		snprintf(err, ONL_ERR, "no interface of this host has address %s", t);
		r = -EADDRNOTAVAIL;
		goto out;
	}
	struct rtnl_link *l = NULL;
	if ((r = rtnl_link_get_kernel(s, found, NULL, &l)) < 0) {
		r = fail(r, err, "link of the underlay address%s", "");
		goto out;
	}
	*mtu = rtnl_link_get_mtu(l);
	*ifindex = found;
	rtnl_link_put(l);
	r = 0;
out:
	nl_cache_free(cache);
	sock_close(s);
	return r;
}

int onl_bridge_add(const char *name, uint32_t mtu, const char *mac, char *err)
{
	struct nl_sock *s = NULL;
	struct nl_addr *a = NULL;
	struct rtnl_link *l = rtnl_link_alloc();
	int r = l ? sock_open(&s, err) : -ENOMEM;
	if (r < 0)
		goto out;
	if ((r = rtnl_link_set_type(l, "bridge")) < 0 || (r = nl_addr_parse(mac, AF_LLC, &a)) < 0) {
		r = fail(r, err, "bridge '%s'", name);
		goto out;
	}
	rtnl_link_set_name(l, name);
	rtnl_link_set_mtu(l, mtu);
	/* A MAC of its own: otherwise the bridge takes its ports' lowest and
	 * changes it as VMs come and go, which upsets ARP caches. */
	rtnl_link_set_addr(l, a);
	rtnl_link_set_flags(l, IFF_UP);
	if ((r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL)) < 0)
		r = fail(r, err, "bridge '%s' could not be created", name);
out:
	nl_addr_put(a);
	rtnl_link_put(l);
	sock_close(s);
	return r;
}

int onl_vxlan_matches(const struct onl_vxlan *v, char *err)
{
	struct nl_sock *s = NULL;
	struct rtnl_link *l = NULL;
	int r = sock_open(&s, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(s, 0, v->name, &l);
	sock_close(s);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return -ENODEV;
	if (r < 0)
		return fail(r, err, "link '%s'", v->name);
	uint32_t id = 0, port = 0, link = 0;
	struct nl_addr *local = NULL;
	uint32_t be = htonl(v->local);
	int same = rtnl_link_is_vxlan(l) && rtnl_link_vxlan_get_id(l, &id) == 0 && id == v->vni &&
	           rtnl_link_vxlan_get_port(l, &port) == 0 && port == v->port &&
	           rtnl_link_vxlan_get_local(l, &local) == 0 && nl_addr_get_len(local) == 4 &&
	           !memcmp(nl_addr_get_binary_addr(local), &be, 4);
	if (same && v->link)
		same = rtnl_link_vxlan_get_link(l, &link) == 0 && (int)link == v->link;
	nl_addr_put(local);
	rtnl_link_put(l);
	return same;
}

int onl_vxlan_add(const struct onl_vxlan *v, char *err)
{
	struct nl_sock *s = NULL;
	struct nl_addr *local = in4_addr(v->local, 32);
	struct rtnl_link *l = rtnl_link_vxlan_alloc();
	int r = l && local ? sock_open(&s, err) : -ENOMEM;
	if (r < 0)
		goto out;
	rtnl_link_set_name(l, v->name);
	/* No multicast group: broadcast and unknown unicast go to every peer
	 * through the all-zeros FDB entries (head-end replication). Learning
	 * stays on, so that known unicast goes to the one VTEP behind it. */
	if ((r = rtnl_link_vxlan_set_id(l, v->vni)) < 0 ||
	    (r = rtnl_link_vxlan_set_local(l, local)) < 0 ||
	    (r = rtnl_link_vxlan_set_port(l, v->port)) < 0 ||
	    (r = rtnl_link_vxlan_set_learning(l, 1)) < 0 ||
	    (v->link && (r = rtnl_link_vxlan_set_link(l, (uint32_t)v->link)) < 0)) {
		r = fail(r, err, "VXLAN device '%s'", v->name);
		goto out;
	}
	rtnl_link_set_mtu(l, v->mtu);
	rtnl_link_set_master(l, v->master);
	rtnl_link_set_flags(l, IFF_UP);
	if ((r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL)) < 0)
		r = fail(r, err, "VXLAN device '%s' could not be created", v->name);
out:
	nl_addr_put(local);
	rtnl_link_put(l);
	sock_close(s);
	return r;
}

static int link_set(struct nl_sock *s, const char *name, uint32_t mtu, int master, char *err)
{
	struct rtnl_link *orig = NULL, *ch = NULL;
	int r = rtnl_link_get_kernel(s, 0, name, &orig);
	if (r < 0)
		return fail(r, err, "link '%s'", name);
	if (!(ch = rtnl_link_alloc())) {
		rtnl_link_put(orig);
		return -ENOMEM;
	}
	if (mtu)
		rtnl_link_set_mtu(ch, mtu);
	if (master > 0)
		rtnl_link_set_master(ch, master);
	rtnl_link_set_flags(ch, IFF_UP);
	if ((r = rtnl_link_change(s, orig, ch, 0)) < 0)
		r = fail(r, err, "link '%s': cannot set MTU, master and up", name);
	rtnl_link_put(ch);
	rtnl_link_put(orig);
	return r;
}

int onl_link_set(const char *name, uint32_t mtu, int master, char *err)
{
	struct nl_sock *s = NULL;
	int r = sock_open(&s, err);
	if (r < 0)
		return r;
	r = link_set(s, name, mtu, master, err);
	sock_close(s);
	return r;
}

int onl_link_del(const char *name, char *err)
{
	struct nl_sock *s = NULL;
	struct rtnl_link *l = rtnl_link_alloc();
	int r = l ? sock_open(&s, err) : -ENOMEM;
	if (r == 0) {
		rtnl_link_set_name(l, name);
		r = rtnl_link_delete(s, l);
		if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
			r = 0;
		else if (r < 0)
			r = fail(r, err, "link '%s' could not be deleted", name);
	}
	rtnl_link_put(l);
	sock_close(s);
	return r;
}

int onl_count_ports(int br, int except, char *err)
{
	struct nl_sock *s = NULL;
	struct nl_cache *cache = NULL;
	int r = sock_open(&s, err), n = 0;
	if (r < 0)
		return r;
	if ((r = rtnl_link_alloc_cache(s, AF_UNSPEC, &cache)) < 0) {
		r = fail(r, err, "netlink: %s", "listing links");
		goto out;
	}
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		if (rtnl_link_get_master(l) == br && rtnl_link_get_ifindex(l) != except)
			n++;
	}
	r = n;
out:
	nl_cache_free(cache);
	sock_close(s);
	return r;
}

/* ---- FDB ---- */

#define FDB_MAX 1024

struct fdb_dump {
	int ifindex;
	uint32_t dst[FDB_MAX]; /* network order */
	size_t n;
};

static int fdb_cb(struct nl_msg *msg, void *arg)
{
	struct fdb_dump *d = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[NDA_MAX + 1];
	static const uint8_t zero[6];
	if (h->nlmsg_type != RTM_NEWNEIGH || nlmsg_datalen(h) < (int)sizeof(struct ndmsg))
		return NL_OK;
	struct ndmsg *ndm = nlmsg_data(h);
	if (ndm->ndm_family != AF_BRIDGE || ndm->ndm_ifindex != d->ifindex ||
	    nlmsg_parse(h, sizeof(*ndm), tb, NDA_MAX, NULL) < 0)
		return NL_OK;
	if (!tb[NDA_LLADDR] || nla_len(tb[NDA_LLADDR]) != 6 ||
	    memcmp(nla_data(tb[NDA_LLADDR]), zero, 6) || !tb[NDA_DST] ||
	    nla_len(tb[NDA_DST]) != 4 || d->n >= FDB_MAX)
		return NL_OK;
	memcpy(&d->dst[d->n++], nla_data(tb[NDA_DST]), 4);
	return NL_OK;
}

static int fdb_change(struct nl_sock *s, int cmd, int flags, int ifindex, uint32_t dst_be)
{
	static const uint8_t zero[6];
	struct ndmsg ndm = {
	    .ndm_family = AF_BRIDGE,
	    .ndm_ifindex = ifindex,
	    .ndm_state = NUD_PERMANENT | NUD_NOARP,
	    .ndm_flags = NTF_SELF,
	};
	struct nl_msg *m = nlmsg_alloc_simple(cmd, flags);
	if (!m)
		return -NLE_NOMEM;
	if (nlmsg_append(m, &ndm, sizeof(ndm), NLMSG_ALIGNTO) < 0 ||
	    nla_put(m, NDA_LLADDR, 6, zero) < 0 || nla_put(m, NDA_DST, 4, &dst_be) < 0) {
		nlmsg_free(m);
		return -NLE_MSGSIZE;
	}
	return nl_send_sync(s, m); /* frees m */
}

int onl_fdb_sync(int ifindex, const uint32_t *peers, size_t n_peers, char *err)
{
	struct nl_sock *s = NULL;
	struct fdb_dump *d = calloc(1, sizeof(*d));
	int r = d ? sock_open(&s, err) : -ENOMEM;
	if (r < 0)
		goto out;
	d->ifindex = ifindex;
	struct ndmsg req = {.ndm_family = AF_BRIDGE};
	if ((r = nl_socket_modify_cb(s, NL_CB_VALID, NL_CB_CUSTOM, fdb_cb, d)) < 0 ||
	    (r = nl_send_simple(s, RTM_GETNEIGH, NLM_F_DUMP, &req, sizeof(req))) < 0 ||
	    (r = nl_recvmsgs_default(s)) < 0) {
		r = fail(r, err, "netlink: %s", "listing FDB entries");
		goto out;
	}
	nl_socket_modify_cb(s, NL_CB_VALID, NL_CB_DEFAULT, NULL, NULL);
	char t[16];
	for (size_t i = 0; i < n_peers; i++) {
		uint32_t be = htonl(peers[i]);
		int have = 0;
		for (size_t k = 0; k < d->n; k++)
			have |= d->dst[k] == be;
		if (have)
			continue;
		r = fdb_change(s, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, ifindex, be);
		if (r < 0 && r != -NLE_EXIST) {
			inet_ntop(AF_INET, &be, t, sizeof(t));
			r = fail(r, err, "FDB entry 00:00:00:00:00:00 dst %s could not be added",
			         t);
			goto out;
		}
	}
	for (size_t k = 0; k < d->n; k++) {
		int wanted = 0;
		for (size_t i = 0; i < n_peers; i++)
			wanted |= d->dst[k] == htonl(peers[i]);
		if (wanted)
			continue;
		r = fdb_change(s, RTM_DELNEIGH, 0, ifindex, d->dst[k]);
		if (r < 0 && r != -NLE_OBJ_NOTFOUND) {
			inet_ntop(AF_INET, &d->dst[k], t, sizeof(t));
			r = fail(r, err, "FDB entry 00:00:00:00:00:00 dst %s could not be removed",
			         t);
			goto out;
		}
	}
	r = 0;
out:
	free(d);
	sock_close(s);
	return r;
}

int onl_addr_add(int ifindex, uint32_t addr, uint32_t prefix, char *err)
{
	struct nl_sock *s = NULL;
	struct nl_addr *local = in4_addr(addr, prefix);
	struct rtnl_addr *a = rtnl_addr_alloc();
	int r = a && local ? sock_open(&s, err) : -ENOMEM;
	if (r < 0)
		goto out;
	rtnl_addr_set_ifindex(a, ifindex);
	if ((r = rtnl_addr_set_local(a, local)) < 0) {
		r = fail(r, err, "address%s", "");
		goto out;
	}
	r = rtnl_addr_add(s, a, 0);
	if (r == -NLE_EXIST)
		r = 0;
	else if (r < 0)
		r = fail(r, err, "gateway address%s could not be added", "");
out:
	nl_addr_put(local);
	rtnl_addr_put(a);
	sock_close(s);
	return r;
}

int onl_tap_add(const char *name, uint32_t mtu, int master, char *err)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		snprintf(err, ONL_ERR, "TAP '%s': /dev/net/tun: %s", name, strerror(-e));
		return e;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		int e = -errno;
		close(fd);
		/* A TAP that is not persistent yet went away with fd. */
		snprintf(err, ONL_ERR, "TAP '%s' could not be created: %s", name, strerror(-e));
		return e;
	}
	close(fd);
	char why[ONL_ERR];
	int r = onl_link_set(name, mtu, master, why);
	if (r < 0) {
		snprintf(err, ONL_ERR, "TAP '%s': %s", name, why);
		onl_link_del(name, why);
	}
	return r;
}
