/*
 * nft: the nftables side of net-bridge. Everything lives in one table of
 * family ip owned by the plugin ("cvmm_<bridge>"), so that nothing of ours
 * mixes with the host's rules and one "delete table" removes it all:
 *
 *   chain guard     filter/prerouting -300: a guest may not address the
 *                   host's 127.0.0.0/8 (route_localnet is on for the bridge)
 *   chain nat_post  nat/postrouting 100: masquerade of the subnet towards
 *                   other networks, of host-local connections that a
 *                   loopback port mapping sends into the bridge, and of
 *                   guest-to-guest connections through a mapped port
 *   chain pre_<tap> nat/prerouting -100, one per VM NIC with port mappings:
 *                   DNAT of connections arriving from other hosts
 *   chain out_<tap> nat/output -100, the same for connections made on the
 *                   host itself (including 127.0.0.1)
 *
 * The per-VM chains are base chains of their own rather than rules in a
 * shared chain: adding and removing them needs no rule handles, each change
 * is one atomic `nft -f -` transaction, and "add chain; flush chain; delete
 * chain" removes one whether or not it exists. Scripts are rendered by pure
 * functions (unit-tested); nb_nft_run() hands them to the nft program.
 */
#include "nb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
	char *p;
	size_t len, cap;
	int over;
};

__attribute__((format(printf, 2, 3))) static void put(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->over = 1;
		b->len = b->cap ? b->cap - 1 : 0;
		return;
	}
	b->len += (size_t)n;
}

static int done(struct sbuf *b)
{
	return b->over ? -ENOSPC : (int)b->len;
}

/* ---- port lists ---- */

int nb_ports_format(const struct nb_port *p, size_t n, char *out, size_t len)
{
	struct sbuf b = {out, 0, len, 0};
	if (len)
		out[0] = 0;
	for (size_t i = 0; i < n; i++) {
		char a[32];
		nb_ip_str(p[i].addr, a, sizeof(a));
		put(&b, "%s%s:%s:%u:%u", i ? "," : "", p[i].udp ? "udp" : "tcp", a, p[i].host_port,
		    p[i].vm_port);
	}
	return done(&b);
}

int nb_ports_parse(const char *s, struct nb_port *p, size_t max)
{
	char buf[4096], *save = NULL;
	size_t n = 0;
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char proto[8], addr[32];
		unsigned hp, vp;
		char tail;
		if (n == max)
			return -E2BIG;
		if (sscanf(t, "%7[a-z]:%31[0-9.]:%u:%u%c", proto, addr, &hp, &vp, &tail) != 4 ||
		    (strcmp(proto, "tcp") && strcmp(proto, "udp")) || !hp || hp > 65535 || !vp ||
		    vp > 65535 || nb_ip_parse(addr, &p[n].addr) < 0)
			return -EINVAL;
		p[n].udp = !strcmp(proto, "udp");
		p[n].host_port = hp;
		p[n].vm_port = vp;
		n++;
	}
	return (int)n;
}

/* ---- scripts ---- */

int nb_nft_base(const struct nb_config *c, char *buf, size_t len)
{
	struct sbuf b = {buf, 0, len, 0};
	const char *t = c->table;
	put(&b, "add table ip %s\n", t);
	if (c->managed) {
		char net[32];
		nb_ip_str(c->net, net, sizeof(net));
		/* Static chains are flushed and refilled in the same transaction:
		 * running this again (a restarted daemon) leaves one copy. */
		put(&b, "add chain ip %s guard { type filter hook prerouting priority -300; policy accept; }\n",
		    t);
		put(&b, "flush chain ip %s guard\n", t);
		put(&b, "add rule ip %s guard iifname \"%s\" ip daddr 127.0.0.0/8 drop\n", t, c->bridge);
		put(&b, "add chain ip %s nat_post { type nat hook postrouting priority 100; policy accept; }\n",
		    t);
		put(&b, "flush chain ip %s nat_post\n", t);
		if (c->nat)
			put(&b,
			    "add rule ip %s nat_post ip saddr %s/%d ip daddr != { %s/%d, 224.0.0.0/24, 255.255.255.255 } masquerade\n",
			    t, net, c->prefix, net, c->prefix);
		put(&b, "add rule ip %s nat_post oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n", t,
		    c->bridge);
		/* Hairpin: a guest reaching another through a mapped port must
		 * see the answer come back from the gateway it talked to. */
		put(&b,
		    "add rule ip %s nat_post oifname \"%s\" ip saddr %s/%d ct status dnat masquerade\n",
		    t, c->bridge, net, c->prefix);
	}
	return done(&b);
}

static void chain_decl(struct sbuf *b, const char *table, const char *kind, const char *tap)
{
	put(b, "add chain ip %s %s_%s { type nat hook %s priority -100; policy accept; }\n", table,
	    kind, tap, !strcmp(kind, "pre") ? "prerouting" : "output");
}

int nb_nft_vm(const char *table, const char *tap, const char *vm_id, uint32_t vm_ip,
	      const struct nb_port *p, size_t n, char *buf, size_t len)
{
	struct sbuf b = {buf, 0, len, 0};
	char ip[32];
	nb_ip_str(vm_ip, ip, sizeof(ip));
	put(&b, "add table ip %s\n", table);
	chain_decl(&b, table, "pre", tap);
	chain_decl(&b, table, "out", tap);
	put(&b, "flush chain ip %s pre_%s\n", table, tap);
	put(&b, "flush chain ip %s out_%s\n", table, tap);
	for (size_t i = 0; i < n; i++) {
		char match[64];
		if (p[i].addr) {
			char a[32];
			nb_ip_str(p[i].addr, a, sizeof(a));
			snprintf(match, sizeof(match), "ip daddr %s", a);
		} else {
			snprintf(match, sizeof(match), "fib daddr type local");
		}
		const char *proto = p[i].udp ? "udp" : "tcp";
		/* 127.0.0.0/8 never arrives from outside: output chain only. */
		int loopback = (p[i].addr >> 24) == 127;
		for (int k = loopback ? 1 : 0; k < 2; k++)
			put(&b, "add rule ip %s %s_%s %s %s dport %u dnat to %s:%u comment \"cvmm vm %s\"\n",
			    table, k ? "out" : "pre", tap, match, proto, p[i].host_port, ip, p[i].vm_port,
			    vm_id);
	}
	return done(&b);
}

int nb_nft_vm_delete(const char *table, const char *tap, char *buf, size_t len)
{
	struct sbuf b = {buf, 0, len, 0};
	put(&b, "add table ip %s\n", table);
	static const char *const kinds[] = {"pre", "out"};
	for (int k = 0; k < 2; k++) {
		chain_decl(&b, table, kinds[k], tap);
		put(&b, "flush chain ip %s %s_%s\n", table, kinds[k], tap);
		put(&b, "delete chain ip %s %s_%s\n", table, kinds[k], tap);
	}
	return done(&b);
}

int nb_nft_table_delete(const char *table, char *buf, size_t len)
{
	struct sbuf b = {buf, 0, len, 0};
	put(&b, "add table ip %s\ndelete table ip %s\n", table, table);
	return done(&b);
}

int nb_nft_run(const char *nft, const char *script, char *err, size_t errlen)
{
	char *argv[] = {(char *)nft, "-f", "-", NULL};
	int r = nb_run(argv, script, err, errlen);
	if (r < 0) {
		snprintf(err, errlen, "cannot run %s: %s", nft, strerror(-r));
		return r;
	}
	if (r != 0) {
		if (!err[0])
			snprintf(err, errlen, "%s exited with status %d", nft, r);
		return -EIO;
	}
	return 0;
}
