/*
 * Fuzz target: net-overlay's address store (plugins/net-overlay/ipam.c).
 * Input: a first line "SUBNET SLICE GATEWAY" (the plugin's configuration,
 * checked by ipam_check), then the text of a leases file. Whatever parses
 * must survive the plugin's own operations: format and parse again to the
 * same table, pick a free address (usable and unleased), remove and re-add.
 */
#include "ipam.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void default_net(struct ipam_net *n)
{
	char why[128];
	ipam_parse_cidr("10.200.0.0/16", &n->subnet, &n->subnet_prefix, why, sizeof(why));
	ipam_parse_cidr("10.200.1.0/24", &n->slice, &n->slice_prefix, why, sizeof(why));
	ipam_parse_addr("10.200.1.1", &n->gateway);
}

/* The first line as a configuration; the default one when it is not valid. */
static void parse_net(const char *line, struct ipam_net *n)
{
	char sub[64], sl[64], gw[64], why[256];
	struct ipam_net t = {0};
	default_net(n);
	int k = sscanf(line, "%63s %63s %63s", sub, sl, gw);
	if (k < 2 || ipam_parse_cidr(sub, &t.subnet, &t.subnet_prefix, why, sizeof(why)) < 0 ||
	    ipam_parse_cidr(sl, &t.slice, &t.slice_prefix, why, sizeof(why)) < 0)
		return;
	if (k == 3 && ipam_parse_addr(gw, &t.gateway) < 0)
		return;
	if (ipam_check(&t, why, sizeof(why)) < 0)
		return;
	/* ipam_pick walks the slice: keep one input's work bounded (a /22 at
	 * most), the plugin's own limit being /8. */
	if (t.slice_prefix < 22)
		return;
	*n = t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return -1;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	char *nl = strchr(text, '\n');
	const char *body = nl ? nl + 1 : "";
	if (nl)
		*nl = 0;
	struct ipam_net n;
	parse_net(text, &n);

	struct leases l = {0}, again = {0};
	char why[256];
	if (leases_parse(body, &l, why, sizeof(why)) < 0) {
		CHECK(l.n == 0 && l.v == NULL);
		free(text);
		return 0;
	}
	/* The file the plugin writes reads back as the same table. */
	char *out = leases_format(&l);
	CHECK(out);
	CHECK(leases_parse(out, &again, why, sizeof(why)) == 0);
	CHECK(again.n == l.n);
	for (size_t i = 0; i < l.n; i++)
		CHECK(again.v[i].addr == l.v[i].addr && again.v[i].nic == l.v[i].nic &&
		      !strcmp(again.v[i].vm, l.v[i].vm));
	free(out);
	leases_free(&again);

	/* A picked address is one the plugin may give and nobody holds. */
	uint32_t a = ipam_pick(&n, &l);
	if (a) {
		CHECK(ipam_usable(&n, a));
		CHECK(!leases_by_addr(&l, a));
		CHECK(leases_add(&l, a, "00000000-0000-4000-8000-00000000fuzz", 7) == 0);
		CHECK(leases_by_addr(&l, a) != NULL);
		CHECK(ipam_pick(&n, &l) != a);
		CHECK(leases_remove(&l, "00000000-0000-4000-8000-00000000fuzz", 7) >= 1);
	}
	/* Removing each owner leaves none of its leases behind. */
	while (l.n) {
		char vm[40];
		uint32_t nic = l.v[0].nic;
		snprintf(vm, sizeof(vm), "%s", l.v[0].vm);
		CHECK(leases_by_owner(&l, vm, nic) != NULL);
		CHECK(leases_remove(&l, vm, nic) >= 1);
		CHECK(leases_by_owner(&l, vm, nic) == NULL);
	}
	leases_free(&l);
	free(text);
	return 0;
}
