/*
 * store: the plugin-level record of net-bridge (see nb.h) and the pure
 * helpers around it: addresses, names and allocation. The record is one
 * small text file, <data_dir>/net-bridge/state, rewritten atomically on every
 * change:
 *
 *   cvmm-net-bridge 1
 *   cursor 192.168.123.12
 *   infra 1 cvmmbr0 cvmm_cvmmbr0 192.168.123.0/24 192.168.123.1
 *   nic <vm-id> <index> <mac> <tap> <ip or -> <active 0|1>
 *
 * It holds what must be known across VMs and across daemon restarts: which
 * addresses and MACs are taken (so they are never handed out twice while
 * their VM exists), which TAPs are up, and which shared pieces (bridge, nft
 * table, dnsmasq) exist. Each VM also keeps its own NICs' MAC, TAP and
 * address in its manifest (host->state_set); this file is what the plugin
 * needs when it has no VM at hand (allocation, the last TAP going, a restart).
 */
#include "nb.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- addresses ---- */

uint32_t nb_mask(int prefix)
{
	return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~0u << (32 - prefix);
}

void nb_ip_str(uint32_t ip, char *out, size_t len)
{
	struct in_addr a = {.s_addr = htonl(ip)};
	if (!inet_ntop(AF_INET, &a, out, (socklen_t)len) && len)
		out[0] = 0;
}

int nb_ip_parse(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

int nb_net_parse(const char *s, uint32_t *net, int *prefix)
{
	char buf[64], *end;
	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (!slash || !slash[1])
		return -EINVAL;
	*slash = 0;
	long p = strtol(slash + 1, &end, 10);
	uint32_t ip;
	if (*end || p < 8 || p > 30 || nb_ip_parse(buf, &ip) < 0)
		return -EINVAL;
	if (ip & ~nb_mask((int)p))
		return -EINVAL; /* host bits set: say 10.0.0.0/24, not 10.0.0.1/24 */
	*net = ip;
	*prefix = (int)p;
	return 0;
}

int nb_mac_parse(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (!s || strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[i * 3]) || !isxdigit((unsigned char)s[i * 3 + 1]))
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

void nb_mac_str(const uint8_t m[6], char *out, size_t len)
{
	snprintf(out, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* ---- names ---- */

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

int nb_tap_name(const char *vm_id, uint32_t nic, char *out, size_t len)
{
	char hex[11];
	size_t n = 0;
	for (const char *p = vm_id; *p && n < 10; p++)
		if (isxdigit((unsigned char)*p))
			hex[n++] = (char)tolower((unsigned char)*p);
	hex[n] = 0;
	if (n < 10 || nic > 99)
		return -EINVAL;
	int r = snprintf(out, len, "cv%sn%u", hex, nic);
	return r < 0 || (size_t)r >= len || r >= NB_IFNAMSIZ ? -ENAMETOOLONG : 0;
}

void nb_guest_mac(const char *vm_id, uint32_t nic, uint32_t salt, char *out, size_t len)
{
	uint32_t h = fnv1a(2166136261u, vm_id, strlen(vm_id));
	h = fnv1a(h, &nic, sizeof(nic));
	h = fnv1a(h, &salt, sizeof(salt));
	uint8_t m[6] = {0x52, 0x54, 0x00, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h};
	nb_mac_str(m, out, len);
}

void nb_tap_mac(const char *guest_mac, char *out, size_t len)
{
	uint8_t m[6];
	if (nb_mac_parse(guest_mac, m) < 0)
		memset(m, 0, sizeof(m));
	m[0] = 0xfe;
	nb_mac_str(m, out, len);
}

void nb_bridge_mac(const char *name, char *out, size_t len)
{
	uint32_t h = fnv1a(2166136261u, name, strlen(name));
	uint8_t m[6] = {0x02, 0x63, 0x76, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h};
	nb_mac_str(m, out, len);
}

void nb_table_name(const char *bridge, char *out, size_t len)
{
	int r = snprintf(out, len, "cvmm_%s", bridge);
	for (char *p = out + 5; r > 0 && *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			*p = '_';
}

/* ---- the store ---- */

void nb_store_free(struct nb_store *s)
{
	if (!s)
		return;
	free(s->nics);
	memset(s, 0, sizeof(*s));
}

struct nb_nic *nb_store_find(struct nb_store *s, const char *vm, uint32_t idx)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->nics[i].idx == idx && !strcmp(s->nics[i].vm, vm))
			return &s->nics[i];
	return NULL;
}

struct nb_nic *nb_store_add(struct nb_store *s, const char *vm, uint32_t idx)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct nb_nic *n = realloc(s->nics, cap * sizeof(*n));
		if (!n)
			return NULL;
		s->nics = n;
		s->cap = cap;
	}
	struct nb_nic *n = &s->nics[s->n++];
	memset(n, 0, sizeof(*n));
	snprintf(n->vm, sizeof(n->vm), "%s", vm);
	n->idx = idx;
	return n;
}

void nb_store_remove(struct nb_store *s, struct nb_nic *n)
{
	size_t i = (size_t)(n - s->nics);
	if (i >= s->n)
		return;
	memmove(&s->nics[i], &s->nics[i + 1], (s->n - i - 1) * sizeof(*n));
	s->n--;
}

size_t nb_store_active(const struct nb_store *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		k += s->nics[i].active != 0;
	return k;
}

static int fail(char *err, size_t errlen, const char *path, int line, const char *what)
{
	snprintf(err, errlen, "%s:%d: %s", path, line, what);
	return -EINVAL;
}

int nb_store_load(struct nb_store *s, const char *path, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	char line[512];
	int ln = 0, r = 0;
	while (fgets(line, sizeof(line), f)) {
		ln++;
		line[strcspn(line, "\n")] = 0;
		char *save = NULL, *tok[8];
		int nt = 0;
		for (char *t = strtok_r(line, " \t", &save); t && nt < 8; t = strtok_r(NULL, " \t", &save))
			tok[nt++] = t;
		if (!nt || tok[0][0] == '#')
			continue;
		if (ln == 1) {
			if (nt != 2 || strcmp(tok[0], "cvmm-net-bridge") || strcmp(tok[1], "1")) {
				r = fail(err, errlen, path, ln, "not a version 1 net-bridge state file");
				break;
			}
			continue;
		}
		if (!strcmp(tok[0], "cursor") && nt == 2) {
			if (nb_ip_parse(tok[1], &s->cursor) < 0) {
				r = fail(err, errlen, path, ln, "bad cursor");
				break;
			}
		} else if (!strcmp(tok[0], "infra") && nt == 6) {
			struct nb_infra *in = &s->infra;
			in->up = 1;
			in->managed = !strcmp(tok[1], "1");
			snprintf(in->bridge, sizeof(in->bridge), "%s", tok[2]);
			snprintf(in->table, sizeof(in->table), "%s", tok[3]);
			if (in->managed && (nb_net_parse(tok[4], &in->net, &in->prefix) < 0 ||
					    nb_ip_parse(tok[5], &in->gateway) < 0)) {
				r = fail(err, errlen, path, ln, "bad infra line");
				break;
			}
		} else if (!strcmp(tok[0], "nic") && nt == 7) {
			char *end;
			unsigned long idx = strtoul(tok[2], &end, 10);
			uint8_t mac[6];
			if (*end || strlen(tok[1]) != 36 || idx > 99 || nb_mac_parse(tok[3], mac) < 0 ||
			    strlen(tok[4]) >= NB_IFNAMSIZ) {
				r = fail(err, errlen, path, ln, "bad nic line");
				break;
			}
			struct nb_nic *n = nb_store_add(s, tok[1], (uint32_t)idx);
			if (!n) {
				r = -ENOMEM;
				break;
			}
			snprintf(n->mac, sizeof(n->mac), "%s", tok[3]);
			snprintf(n->tap, sizeof(n->tap), "%s", tok[4]);
			if (strcmp(tok[5], "-") && nb_ip_parse(tok[5], &n->ip) < 0) {
				r = fail(err, errlen, path, ln, "bad address");
				break;
			}
			n->active = !strcmp(tok[6], "1");
		} else {
			r = fail(err, errlen, path, ln, "unknown line");
			break;
		}
	}
	fclose(f);
	if (r < 0)
		nb_store_free(s);
	return r;
}

int nb_store_save(const struct nb_store *s, const char *path)
{
	if (!s->n && !s->infra.up)
		return nb_unlink(path);
	size_t cap = 512 + s->n * 160, len = 0;
	char *buf = malloc(cap), a[32], b[32];
	if (!buf)
		return -ENOMEM;
	len += (size_t)snprintf(buf + len, cap - len, "cvmm-net-bridge 1\n");
	nb_ip_str(s->cursor, a, sizeof(a));
	len += (size_t)snprintf(buf + len, cap - len, "cursor %s\n", a);
	if (s->infra.up) {
		const struct nb_infra *in = &s->infra;
		nb_ip_str(in->net, a, sizeof(a));
		nb_ip_str(in->gateway, b, sizeof(b));
		if (in->managed)
			len += (size_t)snprintf(buf + len, cap - len, "infra 1 %s %s %s/%d %s\n",
						in->bridge, in->table, a, in->prefix, b);
		else
			len += (size_t)snprintf(buf + len, cap - len, "infra 0 %s %s - -\n",
						in->bridge, in->table);
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct nb_nic *n = &s->nics[i];
		if (n->ip)
			nb_ip_str(n->ip, a, sizeof(a));
		else
			strcpy(a, "-");
		len += (size_t)snprintf(buf + len, cap - len, "nic %s %u %s %s %s %d\n", n->vm,
					n->idx, n->mac, n->tap, a, n->active ? 1 : 0);
	}
	int r = len < cap ? nb_write_atomic(path, buf, len, 0640) : -ENOSPC;
	free(buf);
	return r;
}

/* ---- allocation ---- */

static int ip_taken(const struct nb_store *s, const struct nb_nic *self, uint32_t ip)
{
	for (size_t i = 0; i < s->n; i++)
		if (&s->nics[i] != self && s->nics[i].ip == ip)
			return 1;
	return 0;
}

int nb_alloc_ip(struct nb_store *s, const struct nb_config *c, const struct nb_nic *nic,
		uint32_t want, uint32_t *out)
{
	uint32_t mask = nb_mask(c->prefix), bcast = c->net | ~mask;
	if (want) {
		if ((want & mask) != c->net || want == c->net || want == bcast)
			return -ERANGE;
		if (want == c->gateway || ip_taken(s, nic, want))
			return -EADDRINUSE;
		*out = want;
		return 0;
	}
	if (c->pool_last < c->pool_first)
		return -ENOSPC;
	uint64_t size = (uint64_t)c->pool_last - c->pool_first + 1;
	uint32_t start = s->cursor >= c->pool_first && s->cursor <= c->pool_last ? s->cursor
										: c->pool_first;
	/* Round robin rather than lowest-free: an address given up by a removed
	 * VM is the last to be handed out again, which keeps a stale lease of
	 * that VM (in dnsmasq or in a guest's memory) from meeting a new owner. */
	for (uint64_t k = 0; k < size; k++) {
		uint32_t ip = c->pool_first + (uint32_t)(((uint64_t)(start - c->pool_first) + k) % size);
		if (ip == c->gateway || ip == c->net || ip == bcast || ip_taken(s, nic, ip))
			continue;
		*out = ip;
		s->cursor = ip == c->pool_last ? c->pool_first : ip + 1;
		return 0;
	}
	return -ENOSPC;
}

static int mac_taken(const struct nb_store *s, const struct nb_nic *self, const char *mac)
{
	for (size_t i = 0; i < s->n; i++)
		if (&s->nics[i] != self && !strcasecmp(s->nics[i].mac, mac))
			return 1;
	return 0;
}

int nb_alloc_mac(const struct nb_store *s, const struct nb_nic *nic, const char *want, char *out,
		 size_t len)
{
	if (want) {
		uint8_t m[6];
		if (nb_mac_parse(want, m) < 0 || (m[0] & 1))
			return -EINVAL;
		nb_mac_str(m, out, len);
		return mac_taken(s, nic, out) ? -EADDRINUSE : 0;
	}
	for (uint32_t salt = 0; salt < 4096; salt++) {
		nb_guest_mac(nic->vm, nic->idx, salt, out, len);
		if (!mac_taken(s, nic, out))
			return 0;
	}
	return -ENOSPC;
}
