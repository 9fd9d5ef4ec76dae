/*
 * seed: the three files of a NoCloud seed (meta-data, user-data,
 * network-config), rendered from the "cloud_init" request and the VM's NICs.
 * Pure functions: no I/O, so the unit tests compare them with expected text.
 */
#ifndef CI_SEED_H
#define CI_SEED_H

#include <json-c/json.h>
#include <stddef.h>

#define CI_MAX_NICS 16

struct ci_nic {
	char mac[18];
	char addr[64]; /* "10.0.0.5/24"; "" = DHCP */
	char gateway[64];
	char dns[128]; /* comma-separated */
};

struct ci_input {
	const char *instance_id; /* the VM's id */
	const char *vm_name;     /* hostname when the request names none */
	json_object *req;        /* the "cloud_init" object (may be NULL) */
	int n_nics;
	struct ci_nic nics[CI_MAX_NICS];
};

/* Checks a "cloud_init" value: an object of hostname, user (strings),
 * ssh_authorized_keys, packages, runcmd (arrays of strings), user_data (a
 * string starting "#cloud-config"), dhcp (true: every NIC by DHCP even
 * where the network plugin chose an address, which its DHCP server then
 * hands out); or false (no seed). 0 or -EINVAL with
 * the reason in err. */
int ci_validate(json_object *v, char *err, size_t errlen);

/* Each returns a malloc'd text, or NULL on OOM. */
char *ci_meta_data(const struct ci_input *in);
char *ci_user_data(const struct ci_input *in);
char *ci_network_config(const struct ci_input *in);

#endif
