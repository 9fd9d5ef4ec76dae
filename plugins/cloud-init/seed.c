/* seed: see seed.h. YAML is written as JSON values (YAML 1.2 reads JSON),
 * so every string is quoted and escaped by json-c, never by hand. */
#include "seed.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE);
}

static json_object *field(json_object *req, const char *k)
{
	json_object *v;
	return req && json_object_object_get_ex(req, k, &v) ? v : NULL;
}

static const char *hostname_of(const struct ci_input *in)
{
	json_object *h = field(in->req, "hostname");
	return h ? json_object_get_string(h) : in->vm_name;
}

int ci_validate(json_object *v, char *err, size_t errlen)
{
	if (json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v))
		return 0;
	if (!json_object_is_type(v, json_type_object)) {
		snprintf(err, errlen, "cloud_init: must be an object (or false)");
		return -EINVAL;
	}
	json_object_object_foreach(v, k, val)
	{
		if (!strcmp(k, "hostname") || !strcmp(k, "user")) {
			const char *s = json_object_get_string(val);
			bool ok =
			    json_object_is_type(val, json_type_string) && *s && strlen(s) <= 63;
			for (const char *c = s; ok && *c; c++)
				ok = isalnum((unsigned char)*c) || *c == '-' ||
				     (*c == '_' && !strcmp(k, "user")) ||
				     (*c == '.' && !strcmp(k, "hostname"));
			if (!ok || s[0] == '-') {
				snprintf(err, errlen,
				         "cloud_init.%s: 1 to 63 letters, digits and '-'%s, not "
				         "starting "
				         "with '-'",
				         k, !strcmp(k, "user") ? " or '_'" : " or '.'");
				return -EINVAL;
			}
		} else if (!strcmp(k, "ssh_authorized_keys") || !strcmp(k, "packages") ||
		           !strcmp(k, "runcmd")) {
			bool ok = json_object_is_type(val, json_type_array);
			for (size_t i = 0; ok && i < json_object_array_length(val); i++) {
				json_object *e = json_object_array_get_idx(val, i);
				ok = json_object_is_type(e, json_type_string) &&
				     !strchr(json_object_get_string(e), '\n');
			}
			if (!ok) {
				snprintf(err, errlen,
				         "cloud_init.%s: must be an array of one-line strings", k);
				return -EINVAL;
			}
		} else if (!strcmp(k, "dhcp")) {
			if (!json_object_is_type(val, json_type_boolean)) {
				snprintf(err, errlen, "cloud_init.dhcp: must be true or false");
				return -EINVAL;
			}
		} else if (!strcmp(k, "user_data")) {
			if (!json_object_is_type(val, json_type_string) ||
			    strncmp(json_object_get_string(val), "#cloud-config", 13)) {
				snprintf(err, errlen,
				         "cloud_init.user_data: must be a string starting with "
				         "\"#cloud-config\"");
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen,
			         "cloud_init.%s: unknown field (known: hostname, user, "
			         "ssh_authorized_keys, packages, runcmd, user_data, dhcp)",
			         k);
			return -EINVAL;
		}
	}
	return 0;
}

char *ci_meta_data(const struct ci_input *in)
{
	json_object *id = json_object_new_string(in->instance_id);
	json_object *h = json_object_new_string(hostname_of(in));
	char *s = NULL;
	if (asprintf(&s, "instance-id: %s\nlocal-hostname: %s\n", jstr(id), jstr(h)) < 0)
		s = NULL;
	json_object_put(id);
	json_object_put(h);
	return s;
}

struct buf {
	char *p;
	size_t len;
	FILE *f;
};

/* Whether the top-level key of line (a "key:" at column 0) is one the
 * generated part sets. */
static bool generated_key(const char *line, size_t n, const char *const *keys)
{
	for (int i = 0; keys[i]; i++) {
		size_t kl = strlen(keys[i]);
		if (n > kl && !strncmp(line, keys[i], kl) && (line[kl] == ':' || line[kl] == ' '))
			return true;
	}
	return false;
}

/* The user's #cloud-config without the top-level keys we generate: "merged
 * under" them at the granularity of top-level keys. A key's block is its
 * line and every following line that is indented, a list item, blank or a
 * comment. */
static void user_part(FILE *f, const char *text, const char *const *keys)
{
	bool skip = false;
	const char *p = strchr(text, '\n');
	p = p ? p + 1 : text + strlen(text); /* the "#cloud-config" line */
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		bool top = n && (isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == '"');
		if (top)
			skip = generated_key(p, n, keys);
		if (!skip && !(n == 3 && !strncmp(p, "---", 3)))
			fprintf(f, "%.*s\n", (int)n, p);
		p = e ? e + 1 : p + n;
	}
}

char *ci_user_data(const struct ci_input *in)
{
	struct buf b = {0};
	FILE *f = open_memstream(&b.p, &b.len);
	if (!f)
		return NULL;
	const char *keys[8];
	int nk = 0;
	fprintf(f, "#cloud-config\n");
	json_object *h = json_object_new_string(hostname_of(in));
	fprintf(f, "hostname: %s\npreserve_hostname: false\n", jstr(h));
	json_object_put(h);
	keys[nk++] = "hostname";
	keys[nk++] = "preserve_hostname";
	json_object *user = field(in->req, "user"), *sshk = field(in->req, "ssh_authorized_keys");
	if (user) {
		fprintf(f, "users:\n  - name: %s\n", jstr(user));
		fprintf(f, "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    shell: /bin/bash\n"
		           "    lock_passwd: true\n");
		if (sshk)
			fprintf(f, "    ssh_authorized_keys: %s\n", jstr(sshk));
		keys[nk++] = "users";
	} else if (sshk) {
		fprintf(f, "ssh_authorized_keys: %s\n", jstr(sshk)); /* the image's default user */
		keys[nk++] = "ssh_authorized_keys";
	}
	static const char *const lists[] = {"packages", "runcmd", NULL};
	for (int i = 0; lists[i]; i++) {
		json_object *v = field(in->req, lists[i]);
		if (!v)
			continue;
		fprintf(f, "%s: %s\n", lists[i], jstr(v));
		keys[nk++] = lists[i];
	}
	keys[nk] = NULL;
	json_object *ud = field(in->req, "user_data");
	if (ud)
		user_part(f, json_object_get_string(ud), keys);
	if (fclose(f) != 0) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* A comma-separated list as a JSON array of strings. */
static json_object *list_of(const char *csv)
{
	json_object *a = json_object_new_array();
	char *dup = strdup(csv), *save = NULL;
	for (char *t = dup ? strtok_r(dup, ", ", &save) : NULL; t; t = strtok_r(NULL, ", ", &save))
		json_object_array_add(a, json_object_new_string(t));
	free(dup);
	return a;
}

char *ci_network_config(const struct ci_input *in)
{
	struct buf b = {0};
	FILE *f = open_memstream(&b.p, &b.len);
	if (!f)
		return NULL;
	int n = 0;
	for (int i = 0; i < in->n_nics; i++)
		n += in->nics[i].mac[0] != 0;
	fprintf(f, "version: 2\nethernets:%s\n", n ? "" : " {}");
	for (int i = 0; i < in->n_nics; i++) {
		const struct ci_nic *c = &in->nics[i];
		if (!c->mac[0])
			continue; /* nothing to match it by */
		json_object *mac = json_object_new_string(c->mac);
		fprintf(f, "  nic%d:\n    match:\n      macaddress: %s\n", i, jstr(mac));
		json_object_put(mac);
		json_object *dhcp = field(in->req, "dhcp");
		/* An address without its prefix (a mode that does not know the
		 * guest's subnet) is left to that mode's DHCP, which serves it. */
		if (!strchr(c->addr, '/') || (dhcp && json_object_get_boolean(dhcp))) {
			fprintf(f, "    dhcp4: true\n");
			continue;
		}
		json_object *a = list_of(c->addr);
		fprintf(f, "    dhcp4: false\n    addresses: %s\n", jstr(a));
		json_object_put(a);
		if (c->gateway[0]) {
			json_object *g = json_object_new_string(c->gateway);
			fprintf(f, "    routes:\n      - to: 0.0.0.0/0\n        via: %s\n",
			        jstr(g));
			json_object_put(g);
		}
		if (c->dns[0]) {
			json_object *d = list_of(c->dns);
			fprintf(f, "    nameservers:\n      addresses: %s\n", jstr(d));
			json_object_put(d);
		}
	}
	if (fclose(f) != 0) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
