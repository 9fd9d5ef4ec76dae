/*
 * ipam: see ipam.h. The lease table is a small text file, one lease a line,
 * rewritten whole and atomically on every change: it is read and written
 * only at DEFINE and UNDEFINE, under the plugin's lock.
 */
#include "ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ipam_parse_addr(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

uint32_t ipam_mask(uint32_t prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

int ipam_contains(uint32_t net, uint32_t prefix, uint32_t a)
{
	return (a & ipam_mask(prefix)) == net;
}

void ipam_format(uint32_t a, char *out, size_t len)
{
	snprintf(out, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

int ipam_parse_cidr(const char *s, uint32_t *net, uint32_t *prefix, char *why, size_t len)
{
	char buf[64], *end;
	if (!s || strlen(s) >= sizeof(buf)) {
		snprintf(why, len, "must be an IPv4 network a.b.c.d/n");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	char *slash = strchr(buf, '/');
	if (!slash) {
		snprintf(why, len, "must be an IPv4 network a.b.c.d/n, got '%s'", s);
		return -EINVAL;
	}
	*slash = 0;
	errno = 0;
	long p = strtol(slash + 1, &end, 10);
	uint32_t a;
	if (ipam_parse_addr(buf, &a) < 0 || *end || end == slash + 1 || errno || p < 0 || p > 32) {
		snprintf(why, len, "must be an IPv4 network a.b.c.d/n, got '%s'", s);
		return -EINVAL;
	}
	if (a & ~ipam_mask((uint32_t)p)) {
		char n[16];
		ipam_format(a & ipam_mask((uint32_t)p), n, sizeof(n));
		snprintf(why, len, "'%s' has host bits set (the network is %s/%ld)", s, n, p);
		return -EINVAL;
	}
	*net = a;
	*prefix = (uint32_t)p;
	return 0;
}

static int is_edge(uint32_t net, uint32_t prefix, uint32_t a)
{
	return a == net || a == (net | ~ipam_mask(prefix));
}

int ipam_usable(const struct ipam_net *n, uint32_t a)
{
	return ipam_contains(n->slice, n->slice_prefix, a) &&
	       !is_edge(n->slice, n->slice_prefix, a) && !is_edge(n->subnet, n->subnet_prefix, a) &&
	       a != n->gateway;
}

int ipam_check(const struct ipam_net *n, char *why, size_t len)
{
	char s[16], g[16];
	if (n->subnet_prefix < 8 || n->subnet_prefix > 30) {
		snprintf(why, len, "subnet: the prefix must be 8..30, got /%u", n->subnet_prefix);
		return -EINVAL;
	}
	if (n->slice_prefix < n->subnet_prefix || n->slice_prefix > 30 ||
	    !ipam_contains(n->subnet, n->subnet_prefix, n->slice)) {
		ipam_format(n->subnet, s, sizeof(s));
		snprintf(why, len, "slice: must lie inside subnet %s/%u with a prefix of /%u..30",
		         s, n->subnet_prefix, n->subnet_prefix);
		return -EINVAL;
	}
	if (n->gateway) {
		ipam_format(n->gateway, g, sizeof(g));
		ipam_format(n->slice, s, sizeof(s));
		if (!ipam_contains(n->slice, n->slice_prefix, n->gateway) ||
		    is_edge(n->slice, n->slice_prefix, n->gateway) ||
		    is_edge(n->subnet, n->subnet_prefix, n->gateway)) {
			snprintf(
			    why, len,
			    "gateway: %s must be a host address inside this host's slice %s/%u", g,
			    s, n->slice_prefix);
			return -EINVAL;
		}
	}
	return 0;
}

void leases_free(struct leases *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int leases_add(struct leases *l, uint32_t addr, const char *vm, uint32_t nic)
{
	if (strlen(vm) >= sizeof(l->v[0].vm))
		return -EINVAL;
	struct lease *v = realloc(l->v, sizeof(*v) * (l->n + 1));
	if (!v)
		return -ENOMEM;
	l->v = v;
	v[l->n].addr = addr;
	v[l->n].nic = nic;
	snprintf(v[l->n].vm, sizeof(v[l->n].vm), "%s", vm);
	l->n++;
	return 0;
}

int leases_remove(struct leases *l, const char *vm, uint32_t nic)
{
	int removed = 0;
	for (size_t i = 0; i < l->n;) {
		if (!strcmp(l->v[i].vm, vm) && l->v[i].nic == nic) {
			l->v[i] = l->v[--l->n];
			removed++;
		} else {
			i++;
		}
	}
	return removed;
}

const struct lease *leases_by_addr(const struct leases *l, uint32_t addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].addr == addr)
			return &l->v[i];
	return NULL;
}

const struct lease *leases_by_owner(const struct leases *l, const char *vm, uint32_t nic)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].vm, vm) && l->v[i].nic == nic)
			return &l->v[i];
	return NULL;
}

int leases_parse(const char *text, struct leases *l, char *why, size_t len)
{
	int line = 0;
	l->v = NULL;
	l->n = 0;
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char buf[256], addr[64], vm[64], extra[8];
		unsigned nic;
		line++;
		if (n >= sizeof(buf))
			goto bad;
		memcpy(buf, p, n);
		buf[n] = 0;
		p = nl ? nl + 1 : NULL;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = 0;
		if (strspn(buf, " \t\r") == strlen(buf))
			continue;
		uint32_t a;
		if (sscanf(buf, "%63s %63s %u %7s", addr, vm, &nic, extra) != 3 ||
		    ipam_parse_addr(addr, &a) < 0 || strlen(vm) >= sizeof(l->v[0].vm))
			goto bad;
		if (leases_add(l, a, vm, nic) < 0) {
			leases_free(l);
			return -ENOMEM;
		}
		continue;
	bad:
		snprintf(why, len, "line %d: not \"ADDRESS VM-ID NIC\"", line);
		leases_free(l);
		return -EINVAL;
	}
	return 0;
}

char *leases_format(const struct leases *l)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	fprintf(f, "# net-overlay leases of this host's slice: ADDRESS VM-ID NIC\n");
	for (size_t i = 0; i < l->n; i++) {
		char a[16];
		ipam_format(l->v[i].addr, a, sizeof(a));
		fprintf(f, "%s %s %u\n", a, l->v[i].vm, l->v[i].nic);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

uint32_t ipam_pick(const struct ipam_net *n, const struct leases *l)
{
	uint32_t first = n->slice, last = n->slice | ~ipam_mask(n->slice_prefix);
	for (uint32_t a = first; a <= last && a >= first; a++)
		if (ipam_usable(n, a) && !leases_by_addr(l, a))
			return a;
	return 0;
}

int file_write_atomic(const char *dir, const char *name, const char *text)
{
	char tmp[4200], path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = -errno;
			close(fd);
			unlink(tmp);
			return e;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	if (rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int file_read(const char *dir, const char *name, char **out)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, 4096, f);
		len += n;
		if (n < 4096)
			break;
	}
	int e = ferror(f) ? -EIO : 0;
	fclose(f);
	if (e) {
		free(buf);
		return e;
	}
	buf[len] = 0;
	*out = buf;
	return 0;
}
