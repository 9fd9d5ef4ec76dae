/*
 * ipam: net-overlay's address arithmetic and its lease table. Pure code
 * (no netlink, no host API), so unit tests cover it. Addresses are IPv4 in
 * host byte order.
 */
#ifndef CVMM_OVERLAY_IPAM_H
#define CVMM_OVERLAY_IPAM_H

#include <stddef.h>
#include <stdint.h>

struct ipam_net {
	uint32_t subnet, subnet_prefix; /* the whole overlay, e.g. 10.200.0.0/16 */
	uint32_t slice, slice_prefix;   /* this host's part, e.g. 10.200.1.0/24 */
	uint32_t gateway;               /* in the slice, or 0 = none */
};

/* "a.b.c.d" -> 0 and *out; -EINVAL otherwise. */
int ipam_parse_addr(const char *s, uint32_t *out);
/* "a.b.c.d/n" with no host bits set -> 0; -EINVAL otherwise, with why. */
int ipam_parse_cidr(const char *s, uint32_t *net, uint32_t *prefix, char *why, size_t len);
void ipam_format(uint32_t a, char *out, size_t len);
uint32_t ipam_mask(uint32_t prefix);
int ipam_contains(uint32_t net, uint32_t prefix, uint32_t a);

/* Checks slice inside subnet (prefix 8..30 for both) and the gateway in
 * the slice and usable. 0, or -EINVAL with the reason (naming the key). */
int ipam_check(const struct ipam_net *n, char *why, size_t len);
/* Whether a may be given to a guest: inside the slice, and neither the
 * slice's nor the subnet's network or broadcast address, nor the gateway. */
int ipam_usable(const struct ipam_net *n, uint32_t a);

struct lease {
	uint32_t addr;
	uint32_t nic;
	char vm[40]; /* the VM's UUID */
};

struct leases {
	struct lease *v;
	size_t n;
};

void leases_free(struct leases *l);
/* Parses "ADDR VMID NIC" lines; '#' starts a comment. */
int leases_parse(const char *text, struct leases *l, char *why, size_t len);
/* The file's text (malloc'd). */
char *leases_format(const struct leases *l);
int leases_add(struct leases *l, uint32_t addr, const char *vm, uint32_t nic);
/* Removes the lease of (vm, nic); returns how many were removed. */
int leases_remove(struct leases *l, const char *vm, uint32_t nic);
const struct lease *leases_by_addr(const struct leases *l, uint32_t addr);
const struct lease *leases_by_owner(const struct leases *l, const char *vm, uint32_t nic);
/* The lowest usable address of the slice nobody holds, or 0 if full. */
uint32_t ipam_pick(const struct ipam_net *n, const struct leases *l);

/* Writes dir/name atomically: temp file, fsync, rename, fsync of dir. */
int file_write_atomic(const char *dir, const char *name, const char *text);
/* Reads dir/name (malloc'd, NUL-terminated); -ENOENT if absent. */
int file_read(const char *dir, const char *name, char **out);

#endif
