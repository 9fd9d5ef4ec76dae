/*
 * dnsmasq: the DHCP (and optionally DNS) server of a managed bridge, run the
 * way libvirt runs it: one dnsmasq per bridge, with a pid file under
 * <run_path>/net-bridge/, a static-only DHCP range (it answers only MACs
 * listed in the hosts file: one fixed lease per VM NIC), and its lease file
 * under <data_dir>/net-bridge/. The process (started daemonised, found by
 * its command line, stopped) is plugins/common/dhcp.c's; this file keeps
 * what is the bridge's own: the hosts file written from the store, reloads
 * by SIGHUP, and the lease file kept free of VMs that are gone.
 *
 * dnsmasq drops root for "nobody" (or dnsmasq_user) and reads the hosts
 * file as that user, even at start: the file and every directory above it
 * must be readable by others. nb_dns_start() checks that and says so.
 */
#include "nb.h"
#include "dhcp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The common server's settings for this bridge. */
static void server_of(const struct nb_config *c, struct cp_dhcp *d)
{
	char net[32], mask[32];
	memset(d, 0, sizeof(*d));
	nb_ip_str(c->net, net, sizeof(net));
	nb_ip_str(nb_mask(c->prefix), mask, sizeof(mask));
	snprintf(d->interface, sizeof(d->interface), "%s", c->bridge);
	snprintf(d->range, sizeof(d->range), "%s,static,%s,%s", net, mask, c->lease_time);
	snprintf(d->dnsmasq, sizeof(d->dnsmasq), "%s", c->dnsmasq);
	snprintf(d->user, sizeof(d->user), "%s", c->dnsmasq_user);
	snprintf(d->pid_file, sizeof(d->pid_file), "%s", c->pid_path);
	snprintf(d->lease_file, sizeof(d->lease_file), "%s", c->lease_path);
	snprintf(d->hosts_file, sizeof(d->hosts_file), "%s", c->hosts_path);
	snprintf(d->log_file, sizeof(d->log_file), "%s", c->dnsmasq_log);
	d->lease_max = ~nb_mask(c->prefix) > 1 ? ~nb_mask(c->prefix) - 1 : 1;
	d->authoritative = 1;
	d->dns = c->dns;
}

int nb_dns_pids(const struct nb_config *c, int *pids, int max)
{
	struct cp_dhcp d;
	server_of(c, &d);
	return cp_dhcp_pids(&d, pids, max);
}

int nb_dns_write_hosts(const struct nb_config *c, const struct nb_store *s)
{
	size_t cap = 64 + s->n * 48, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	buf[0] = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct nb_nic *n = &s->nics[i];
		if (!n->active || !n->ip)
			continue;
		char ip[32];
		nb_ip_str(n->ip, ip, sizeof(ip));
		len += (size_t)snprintf(buf + len, cap - len, "%s,%s\n", n->mac, ip);
	}
	int r = nb_mkdir_p(c->run_dir, 0755);
	if (r == 0)
		r = nb_write_atomic(c->hosts_path, buf, len, 0644);
	free(buf);
	return r;
}

/* Lease file lines: "<expiry> <mac> <ip> <hostname> <client-id>". */
static int for_each_lease(const struct nb_config *c, int (*fn)(void *, const char *mac,
							   const char *ip, const char *line),
			  void *arg)
{
	FILE *f = fopen(c->lease_path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[512];
	int r = 0;
	while (!r && fgets(line, sizeof(line), f)) {
		char exp[32], mac[64], ip[64];
		if (sscanf(line, "%31s %63s %63s", exp, mac, ip) != 3 || !strcmp(exp, "duid"))
			continue;
		r = fn(arg, mac, ip, line);
	}
	fclose(f);
	return r;
}

static const struct nb_nic *owner_of(const struct nb_store *s, const char *mac, const char *ip,
				     int *ip_match)
{
	uint32_t a;
	*ip_match = 0;
	if (nb_ip_parse(ip, &a) < 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->nics[i].ip == a) {
			*ip_match = 1;
			if (!strcasecmp(s->nics[i].mac, mac))
				return &s->nics[i];
		}
	return NULL;
}

struct purge {
	const struct nb_store *s;
	char *buf;
	size_t len, cap;
	int dropped;
};

static int purge_line(void *arg, const char *mac, const char *ip, const char *line)
{
	struct purge *p = arg;
	int m;
	if (!owner_of(p->s, mac, ip, &m)) {
		p->dropped++;
		return 0;
	}
	size_t l = strlen(line);
	if (p->len + l + 1 > p->cap) {
		size_t cap = (p->cap + l + 1) * 2;
		char *b = realloc(p->buf, cap);
		if (!b)
			return -ENOMEM;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, line, l);
	p->len += l;
	return 0;
}

int nb_dns_purge_leases(const struct nb_config *c, const struct nb_store *s)
{
	struct purge p = {s, NULL, 0, 0, 0};
	int r = for_each_lease(c, purge_line, &p);
	if (r == 0 && !p.len) {
		r = nb_unlink(c->lease_path);
	} else if (r == 0 && p.dropped) {
		r = nb_write_atomic(c->lease_path, p.buf, p.len, 0644);
	}
	free(p.buf);
	return r;
}

static int conflict_line(void *arg, const char *mac, const char *ip, const char *line)
{
	int m;
	return !owner_of(arg, mac, ip, &m) && m ? 1 : 0;
}

/* Every directory above path searchable by others, path readable by them. */
static int readable_by_others(const char *path, char *bad, size_t len)
{
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%s", path);
	struct stat st;
	if (stat(tmp, &st) == 0 && !(st.st_mode & S_IROTH)) {
		snprintf(bad, len, "%s", tmp);
		return 0;
	}
	for (char *slash = strrchr(tmp, '/'); slash && slash > tmp; slash = strrchr(tmp, '/')) {
		*slash = 0;
		if (stat(tmp, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			snprintf(bad, len, "%s", tmp);
			return 0;
		}
	}
	return 1;
}

int nb_dns_start(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen)
{
	int r;
	if ((r = nb_dns_write_hosts(c, s)) < 0) {
		snprintf(err, errlen, "dnsmasq hosts file %s: %s", c->hosts_path, strerror(-r));
		return r;
	}
	/* Leases of VMs that are gone would keep their addresses from the VMs
	 * they now belong to: dnsmasq starts from what we know is current. */
	if ((r = nb_dns_purge_leases(c, s)) < 0) {
		snprintf(err, errlen, "dnsmasq lease file %s: %s", c->lease_path, strerror(-r));
		return r;
	}
	char bad[700];
	if (strcmp(c->dnsmasq_user, "root") && !readable_by_others(c->hosts_path, bad, sizeof(bad))) {
		snprintf(err, errlen,
			 "dnsmasq reads %s after dropping root (as user %s) and %s is not %s by others; make run_path world-searchable or set plugin.net-bridge.dnsmasq_user",
			 c->hosts_path, c->dnsmasq_user[0] ? c->dnsmasq_user : "nobody", bad,
			 strcmp(bad, c->hosts_path) ? "searchable" : "readable");
		return -EACCES;
	}
	struct cp_dhcp d;
	server_of(c, &d);
	return cp_dhcp_start(&d, err, errlen);
}

int nb_dns_stop(const struct nb_config *c)
{
	struct cp_dhcp d;
	server_of(c, &d);
	cp_dhcp_kill(&d);
	int r = nb_unlink(c->pid_path);
	int e = nb_unlink(c->hosts_path);
	return r < 0 ? r : e;
}

int nb_dns_lease_conflict(const struct nb_config *c, const struct nb_store *s)
{
	return for_each_lease(c, conflict_line, (void *)s) == 1;
}

int nb_dns_reload(const struct nb_config *c, const struct nb_store *s, char *err, size_t errlen)
{
	int pids[4];
	if (nb_dns_pids(c, pids, 4) <= 0)
		return nb_dns_start(c, s, err, errlen);
	if (nb_dns_lease_conflict(c, s)) {
		nb_dns_stop(c);
		return nb_dns_start(c, s, err, errlen);
	}
	int r = nb_dns_write_hosts(c, s);
	if (r < 0) {
		snprintf(err, errlen, "dnsmasq hosts file %s: %s", c->hosts_path, strerror(-r));
		return r;
	}
	struct cp_dhcp d;
	server_of(c, &d);
	cp_dhcp_reload(&d);
	return 0;
}
