/*
 * Fuzz target: net-bridge's state file (nb_store_load in
 * plugins/net-bridge/store.c) and the dnsmasq lease file it is checked
 * against (nb_dns_lease_conflict, nb_dns_purge_leases in dnsmasq.c).
 * Input: the state file, optionally followed by a NUL byte and a dnsmasq
 * lease file. Both are handed over as real files on tmpfs. A store that
 * loads must save and load back to the same store, and the allocators must
 * keep their promises on it (a fresh address is unused, in the pool and not
 * the gateway; a fresh MAC is unused).
 */
#include "nb.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char dir[] = "/dev/shm/cvmm-fuzz-bridge.XXXXXX";
static char state_path[128], saved_path[128];
static struct nb_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(state_path, sizeof(state_path), "%s/state", dir);
	snprintf(saved_path, sizeof(saved_path), "%s/saved", dir);
	cfg.managed = 1;
	snprintf(cfg.bridge, sizeof(cfg.bridge), "cvbr0");
	nb_net_parse("192.168.150.0/24", &cfg.net, &cfg.prefix);
	nb_ip_parse("192.168.150.1", &cfg.gateway);
	nb_ip_parse("192.168.150.10", &cfg.pool_first);
	nb_ip_parse("192.168.150.250", &cfg.pool_last);
	snprintf(cfg.run_dir, sizeof(cfg.run_dir), "%s", dir);
	snprintf(cfg.lease_path, sizeof(cfg.lease_path), "%s/leases", dir);
	return 0;
}

static void put(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
		abort();
	close(fd);
}

static void same_store(const struct nb_store *a, const struct nb_store *b)
{
	CHECK(a->n == b->n);
	/* An empty store is no file at all (nb_store_save): its cursor goes
	 * with it, as designed, since nothing can hold a stale lease then. */
	if (a->n || a->infra.up)
		CHECK(a->cursor == b->cursor);
	CHECK(a->infra.up == b->infra.up);
	if (a->infra.up) {
		CHECK(a->infra.managed == b->infra.managed);
		CHECK(!strcmp(a->infra.bridge, b->infra.bridge));
		CHECK(!strcmp(a->infra.table, b->infra.table));
		if (a->infra.managed)
			CHECK(a->infra.net == b->infra.net && a->infra.prefix == b->infra.prefix &&
			      a->infra.gateway == b->infra.gateway);
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct nb_nic *x = &a->nics[i], *y = &b->nics[i];
		CHECK(!strcmp(x->vm, y->vm) && x->idx == y->idx && !strcmp(x->mac, y->mac) &&
		      !strcmp(x->tap, y->tap) && x->ip == y->ip && !!x->active == !!y->active);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	const uint8_t *nul = memchr(data, 0, size);
	size_t state_len = nul ? (size_t)(nul - data) : size;
	put(state_path, data, state_len);
	unlink(cfg.lease_path);
	if (nul)
		put(cfg.lease_path, nul + 1, size - state_len - 1);

	struct nb_store s, back;
	char err[512];
	if (nb_store_load(&s, state_path, err, sizeof(err)) < 0) {
		CHECK(s.n == 0 && s.nics == NULL);
		return 0;
	}
	/* What the plugin writes, it reads back the same. */
	unlink(saved_path);
	if (nb_store_save(&s, saved_path) == 0) {
		CHECK(nb_store_load(&back, saved_path, err, sizeof(err)) == 0);
		same_store(&s, &back);
		nb_store_free(&back);
	}

	/* The lease file checked against the store. */
	nb_dns_lease_conflict(&cfg, &s);
	nb_dns_purge_leases(&cfg, &s);

	/* Allocation for a new NIC, then for each existing one. */
	struct nb_nic *fresh = nb_store_add(&s, "00000000-0000-4000-8000-0000000000ff", 3);
	CHECK(fresh);
	uint32_t ip;
	char mac[18];
	if (nb_alloc_ip(&s, &cfg, fresh, 0, &ip) == 0) {
		CHECK(ip >= cfg.pool_first && ip <= cfg.pool_last && ip != cfg.gateway);
		for (size_t i = 0; i + 1 < s.n; i++)
			CHECK(s.nics[i].ip != ip);
		fresh->ip = ip;
	}
	if (nb_alloc_mac(&s, fresh, NULL, mac, sizeof(mac)) == 0) {
		for (size_t i = 0; i + 1 < s.n; i++)
			CHECK(strcasecmp(s.nics[i].mac, mac));
		snprintf(fresh->mac, sizeof(fresh->mac), "%s", mac);
	}
	for (size_t i = 0; i < s.n; i++) {
		struct nb_nic *n = &s.nics[i];
		if (n->ip)
			nb_alloc_ip(&s, &cfg, n, n->ip, &ip);
		nb_alloc_mac(&s, n, n->mac, mac, sizeof(mac));
		CHECK(nb_store_find(&s, n->vm, n->idx) != NULL);
	}
	nb_store_remove(&s, nb_store_find(&s, fresh->vm, fresh->idx));
	nb_store_free(&s);
	return 0;
}
