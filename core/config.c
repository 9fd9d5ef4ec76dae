/*
 * config: reads the daemon's libconfig file into struct cvmm_config. Every key
 * of the sections the core owns is type-checked and validated here, and the
 * first problem is reported as one line "FILE:LINE: KEY: what is wrong" so
 * that `cvmmd --check-config` points at the exact spot. Sections owned by
 * plugins (plugin.*, cvm.gpu, gateway, host_api, key_provider, supervisor,
 * kms) are left in the tree for their owners to read and validate.
 */
#include "config.h"

#include <cvmm/plugin.h>

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef CVMM_PLUGIN_DEFAULT_DIR
#define CVMM_PLUGIN_DEFAULT_DIR "/usr/local/lib/cvmm/plugins"
#endif

#define CONFIG_MAX_BYTES (16u << 20)
#define STRING_NAME "<string>"

/* Longest path a unix socket address can hold (without the NUL). */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct loader {
	struct cvmm_config *c;
	const char *file; /* how the main file is named in messages */
	char *base;       /* absolute directory relative paths are resolved against */
	char *err;
	size_t errlen;
};

static struct config_host host_override;
static bool have_host_override;

void config_set_host_override(const struct config_host *h)
{
	if (h) {
		host_override = *h;
		have_host_override = true;
	} else {
		have_host_override = false;
	}
}

/*
 * All online CPUs of the host, not the daemon's affinity mask: the limit is
 * about what the host can give to guests, whatever cpuset cvmmd runs in.
 */
static struct config_host host_figures(void)
{
	struct config_host h;
	long n, pages, psize;

	if (have_host_override)
		return host_override;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	pages = sysconf(_SC_PHYS_PAGES);
	psize = sysconf(_SC_PAGESIZE);
	h.ncpus = n > 0 ? (int)n : 1;
	h.mem_mb = pages > 0 && psize > 0 ? ((uint64_t)pages * (uint64_t)psize) >> 20 : 0;
	return h;
}

/* ---- messages ----------------------------------------------------------- */

static void set_err(struct loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct loader *L, const char *fmt, ...)
{
	va_list ap;

	if (!L->err || !L->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(L->err, L->errlen, fmt, ap);
	va_end(ap);
}

/* Dotted path of a setting, list elements as [i]: cvm.port_mapping.range[0].to */
static void key_path(const config_setting_t *s, char *buf, size_t len)
{
	size_t n;

	buf[0] = '\0';
	if (!s || config_setting_is_root(s))
		return;
	key_path(config_setting_parent(s), buf, len);
	n = strlen(buf);
	if (n >= len - 1)
		return;
	if (config_setting_name(s))
		snprintf(buf + n, len - n, "%s%s", n ? "." : "", config_setting_name(s));
	else
		snprintf(buf + n, len - n, "[%d]", config_setting_index(s));
}

/*
 * How a file is named in messages: NULL is the main text (parsed from memory);
 * libconfig records an @include as written, but opens it relative to the
 * config's directory, so name it that way.
 */
static const char *display_file(struct loader *L, const char *name, char *buf, size_t len)
{
	if (!name)
		return L->file;
	if (name[0] == '/' || !L->base)
		return name;
	snprintf(buf, len, "%s/%s", L->base, name);
	return buf;
}

/*
 * Reports a problem at setting s; child names a key of s that is missing (the
 * message then points at the line of s, the closest thing that exists).
 */
static int vfail(struct loader *L, const config_setting_t *s, const char *child, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));
static int vfail(struct loader *L, const config_setting_t *s, const char *child, const char *fmt,
                 va_list ap)
{
	char key[512], msg[1024], file[PATH_MAX];
	size_t n;

	key_path(s, key, sizeof(key));
	if (child) {
		n = strlen(key);
		snprintf(key + n, sizeof(key) - n, "%s%s", n ? "." : "", child);
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	set_err(L, "%s:%u: %s: %s",
	        display_file(L, s ? config_setting_source_file(s) : NULL, file, sizeof(file)),
	        s ? (unsigned)config_setting_source_line(s) : 0, key[0] ? key : "(top level)", msg);
	return -EINVAL;
}

static int fail(struct loader *L, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct loader *L, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(L, s, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

static int fail_child(struct loader *L, const config_setting_t *s, const char *child,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_child(struct loader *L, const config_setting_t *s, const char *child,
                      const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(L, s, child, fmt, ap);
	va_end(ap);
	return rc;
}

static int oom(struct loader *L)
{
	set_err(L, "%s: out of memory", L->file);
	return -ENOMEM;
}

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
		return "an integer";
	case CONFIG_TYPE_INT64:
		return "a 64-bit integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "an unknown type";
}

/* ---- typed getters -------------------------------------------------------
 * Each returns 1 when the key is set (value stored), 0 when it is absent
 * (output untouched, so the caller's default stays), or -EINVAL. libconfig's
 * own lookups cannot tell a missing key from a wrong type, hence the explicit
 * type checks. */

static config_setting_t *member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

static int check_int(struct loader *L, const config_setting_t *s, long long min, long long max,
                     long long *out)
{
	int t = config_setting_type(s);
	long long v;

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(L, s, "must be an integer, got %s", type_name(t));
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return fail(L, s, "must be between %lld and %lld, got %lld", min, max, v);
	*out = v;
	return 1;
}

static int opt_int(struct loader *L, const config_setting_t *g, const char *name, long long min,
                   long long max, long long *out)
{
	config_setting_t *s = member(g, name);

	return s ? check_int(L, s, min, max, out) : 0;
}

/* Time values: an integer or a float, > 0. */
static int opt_seconds(struct loader *L, const config_setting_t *g, const char *name, double *out)
{
	config_setting_t *s = member(g, name);
	double v;
	int t;

	if (!s)
		return 0;
	t = config_setting_type(s);
	if (t == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
		v = (double)config_setting_get_int64(s);
	else
		return fail(L, s, "must be a number of seconds, got %s", type_name(t));
	if (!(v > 0))
		return fail(L, s, "must be positive, got %g", v);
	*out = v;
	return 1;
}

static int opt_bool(struct loader *L, const config_setting_t *g, const char *name, bool *out)
{
	config_setting_t *s = member(g, name);
	int t;

	if (!s)
		return 0;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_BOOL)
		return fail(L, s, "must be a boolean (true or false), got %s", type_name(t));
	*out = config_setting_get_bool(s) != 0;
	return 1;
}

/* The string stays owned by the tree. */
static int check_string(struct loader *L, const config_setting_t *s, bool allow_empty,
                        const char **out)
{
	int t = config_setting_type(s);
	const char *v;

	if (t != CONFIG_TYPE_STRING)
		return fail(L, s, "must be a string, got %s", type_name(t));
	v = config_setting_get_string(s);
	if (!allow_empty && !v[0])
		return fail(L, s, "must not be empty");
	*out = v;
	return 1;
}

static int opt_string(struct loader *L, const config_setting_t *g, const char *name,
                      bool allow_empty, const char **out)
{
	config_setting_t *s = member(g, name);

	return s ? check_string(L, s, allow_empty, out) : 0;
}

static int opt_group(struct loader *L, const config_setting_t *g, const char *name,
                     config_setting_t **out)
{
	config_setting_t *s = member(g, name);
	int t;

	*out = NULL;
	if (!s)
		return 0;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_GROUP)
		return fail(L, s, "must be a group { ... }, got %s", type_name(t));
	*out = s;
	return 1;
}

/* A sequence: ( ... ) or [ ... ]; the elements are checked by the caller. */
static int opt_seq(struct loader *L, const config_setting_t *g, const char *name,
                   config_setting_t **out)
{
	config_setting_t *s = member(g, name);
	int t;

	*out = NULL;
	if (!s)
		return 0;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY)
		return fail(L, s, "must be a list ( ... ) or an array [ ... ], got %s",
		            type_name(t));
	*out = s;
	return 1;
}

/* Typos are errors: every member of g must be one of known. */
static int check_keys(struct loader *L, const config_setting_t *g, const char *const *known)
{
	char list[1024];
	size_t n;
	int i, k, len;

	if (!g)
		return 0;
	len = config_setting_length(g);
	for (i = 0; i < len; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);

		for (k = 0; known[k]; k++)
			if (name && !strcmp(name, known[k]))
				break;
		if (known[k])
			continue;
		list[0] = '\0';
		for (k = 0, n = 0; known[k] && n < sizeof(list); k++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", k ? ", " : "",
			                      known[k]);
		return fail(L, s, "unknown key (expected one of: %s)", list);
	}
	return 0;
}

/* ---- strings and paths --------------------------------------------------- */

static int set_str(struct loader *L, char **dst, const char *src)
{
	char *d = strdup(src);

	if (!d)
		return oom(L);
	free(*dst);
	*dst = d;
	return 0;
}

/* base + "/" + rel, without leading "./" components of rel. */
static char *join_path(const char *base, const char *rel)
{
	char *out;
	size_t bl;

	while (rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		while (*rel == '/')
			rel++;
	}
	if (!rel[0] || !strcmp(rel, "."))
		return strdup(base);
	bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		bl--;
	if (asprintf(&out, "%.*s%s%s", (int)bl, base, bl == 1 && base[0] == '/' ? "" : "/", rel) <
	    0)
		return NULL;
	return out;
}

static int set_path(struct loader *L, char **dst, const char *value)
{
	char *p;

	if (value[0] == '/')
		return set_str(L, dst, value);
	p = join_path(L->base, value);
	if (!p)
		return oom(L);
	free(*dst);
	*dst = p;
	return 0;
}

/* ---- address ------------------------------------------------------------- */

static bool all_digits(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return false;
	return strspn(s, "0123456789") == n;
}

/* "tcp:" HOST ":" PORT with HOST a numeric IPv4 address or [IPv6]. */
static const char *check_tcp(const char *hp)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char buf[sizeof(struct in6_addr)];
	const char *port;
	size_t hl;
	int family = AF_INET;

	if (hp[0] == '[') {
		const char *close = strchr(hp, ']');

		if (!close || close[1] != ':')
			return "must be \"tcp:[IPv6]:PORT\"";
		hp++;
		hl = (size_t)(close - hp);
		port = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strrchr(hp, ':');

		if (!colon)
			return "must be \"unix:PATH\" or \"tcp:HOST:PORT\"";
		hl = (size_t)(colon - hp);
		port = colon + 1;
		if (memchr(hp, ':', hl))
			return "an IPv6 host must be in brackets, as tcp:[::1]:8080";
	}
	if (!hl || hl >= sizeof(host))
		return "HOST must be a numeric IPv4 address or a bracketed IPv6 address";
	memcpy(host, hp, hl);
	host[hl] = '\0';
	if (inet_pton(family, host, buf) != 1)
		return family == AF_INET6
		           ? "HOST must be a numeric IPv6 address inside the brackets"
		           : "HOST must be a numeric IPv4 address or a bracketed "
		             "IPv6 address";
	if (!all_digits(port, 5) || atoi(port) < 1 || atoi(port) > 65535)
		return "PORT must be between 1 and 65535";
	return NULL;
}

static int load_address(struct loader *L, const config_setting_t *root)
{
	struct cvmm_config *c = L->c;
	config_setting_t *s = member(root, "address");
	const char *v, *why;
	char *path = NULL;
	int rc;

	if (!s) {
		if (asprintf(&c->address, "unix:%s/cvmm.sock", c->run_path) < 0) {
			c->address = NULL;
			return oom(L);
		}
		return 0;
	}
	rc = check_string(L, s, false, &v);
	if (rc < 0)
		return rc;
	if (!strncmp(v, "unix:", 5)) {
		if (!v[5])
			return fail(L, s, "unix socket path is empty, got \"%s\"", v);
		rc = set_path(L, &path, v + 5);
		if (rc < 0)
			return rc;
		if (strlen(path) > SUN_PATH_MAX) {
			rc = fail(L, s,
			          "unix socket path must be at most %zu bytes, got %zu (\"%s\")",
			          SUN_PATH_MAX, strlen(path), path);
			free(path);
			return rc;
		}
		rc = asprintf(&c->address, "unix:%s", path);
		free(path);
		if (rc < 0) {
			c->address = NULL;
			return oom(L);
		}
		return 0;
	}
	if (strncmp(v, "tcp:", 4))
		return fail(L, s, "must be \"unix:PATH\" or \"tcp:HOST:PORT\", got \"%s\"", v);
	why = check_tcp(v + 4);
	if (why)
		return fail(L, s, "%s, got \"%s\"", why, v);
	return set_str(L, &c->address, v);
}

/* ---- sections -------------------------------------------------------------- */

static const char *const top_keys[] = {
    "address", "run_path",       "data_dir", "plugin_dir",   "log_level",  "node_name",
    "workers", "serial_log_max", "image",    "cvm",          "auth",       "plugins",
    "plugin",  "gateway",        "host_api", "key_provider", "supervisor", "kms",
    NULL,
};
/* Sections owned by plugins: only their type is checked here; the registry
 * refuses one that no loaded plugin reads. */
const char *const config_plugin_owned[] = {
    "cvm.gpu",      "gpu-vfio", "cvm.host_cpus", "gpu-vfio",
    "gateway",      "gateway",  "host_api", "host-api",
    "key_provider", "key-provider", "supervisor", "supervisor", "kms",      "kms",
    NULL,
};
static const char *const image_keys[] = {"path", NULL};
static const char *const cvm_keys[] = {
    "backend",      "max_allocable_vcpu", "max_allocable_memory_in_mb", "hook_timeout",
    "cid_start",    "cid_pool_size",      "networking",
    "port_mapping", "auto_restart",       "gpu",                "host_cpus",
    "tls_cert",     "tls_key",            "unix_sock_group", "unix_sock_mode",
    "metrics_public", "channel",          "agent",
    NULL,
};
static const char *const chan_keys[] = {"enabled", "reader", NULL};
static const char *const agent_keys[] = {"unresponsive_after", "restart_unresponsive", NULL};
static const char *const pm_keys[] = {"enabled", "address", "range", NULL};
static const char *const range_keys[] = {"protocol", "from", "to", NULL};
static const char *const ar_keys[] = {
    "enabled", "interval", "max_retries", "initial_backoff", "max_backoff", "reset_window", NULL,
};
static const char *const auth_keys[] = {"enabled", "tokens", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static int load_server(struct loader *L, const config_setting_t *root)
{
	struct cvmm_config *c = L->c;
	config_setting_t *image;
	const char *v;
	long long n;
	int rc, k;

	v = "info";
	rc = opt_string(L, root, "log_level", false, &v);
	if (rc < 0)
		return rc;
	for (k = 0; log_levels[k] && strcmp(v, log_levels[k]); k++)
		;
	if (!log_levels[k])
		return fail(L, member(root, "log_level"),
		            "must be one of debug, info, warn, error, got \"%s\"", v);
	if ((rc = set_str(L, &c->log_level, v)) < 0)
		return rc;

	v = "/run/cvmm";
	if ((rc = opt_string(L, root, "run_path", false, &v)) < 0 ||
	    (rc = set_path(L, &c->run_path, v)) < 0)
		return rc;
	v = "/var/lib/cvmm";
	if ((rc = opt_string(L, root, "data_dir", false, &v)) < 0 ||
	    (rc = set_path(L, &c->data_dir, v)) < 0)
		return rc;
	v = CVMM_PLUGIN_DEFAULT_DIR;
	if ((rc = opt_string(L, root, "plugin_dir", false, &v)) < 0 ||
	    (rc = set_path(L, &c->plugin_dir, v)) < 0)
		return rc;
	if ((rc = load_address(L, root)) < 0)
		return rc;
	v = "";
	if ((rc = opt_string(L, root, "node_name", true, &v)) < 0 ||
	    (rc = set_str(L, &c->node_name, v)) < 0)
		return rc;

	rc = opt_int(L, root, "workers", 1, 256, &n);
	if (rc < 0)
		return rc;
	if (rc) {
		c->workers = (int)n;
	} else {
		struct config_host h = host_figures();
		int w = h.ncpus / 8;

		c->workers = w < 4 ? 4 : w > 32 ? 32 : w;
		c->workers_computed = true;
	}
	c->serial_log_max = 1u << 20;
	rc = opt_int(L, root, "serial_log_max", 1, 1LL << 40, &n);
	if (rc < 0)
		return rc;
	if (rc)
		c->serial_log_max = (uint64_t)n;

	if ((rc = opt_group(L, root, "image", &image)) < 0 ||
	    (rc = check_keys(L, image, image_keys)))
		return rc;
	rc = opt_string(L, image, "path", false, &v);
	if (rc < 0)
		return rc;
	if (rc)
		return set_path(L, &c->image_path, v);
	if (asprintf(&c->image_path, "%s/images", c->data_dir) < 0) {
		c->image_path = NULL;
		return oom(L);
	}
	return 0;
}

/* Only the default mode is the core's: the keys of a mode (cvm.networking.net,
 * dhcp_start, restrict for "user") are read and validated by its plugin, and
 * the registry refuses those that no loaded plugin reads. */
static int load_networking(struct loader *L, const config_setting_t *cvm)
{
	struct cvmm_config *c = L->c;
	config_setting_t *g;
	const char *mode = "user";
	int rc;

	if ((rc = opt_group(L, cvm, "networking", &g)) < 0)
		return rc;
	/* Which modes exist is known only once the plugins are loaded. */
	if ((rc = opt_string(L, g, "mode", false, &mode)) < 0 ||
	    (rc = set_str(L, &c->net_mode, mode)) < 0)
		return rc;
	return 0;
}

static int load_range(struct loader *L, config_setting_t *e, struct cvmm_port_range *r)
{
	const char *proto;
	long long from, to;
	int rc;

	if (config_setting_type(e) != CONFIG_TYPE_GROUP)
		return fail(L, e,
		            "must be a group { protocol = \"tcp\"; from = N; to = N; }, got %s",
		            type_name(config_setting_type(e)));
	if ((rc = check_keys(L, e, range_keys)))
		return rc;
	if ((rc = opt_string(L, e, "protocol", false, &proto)) < 0)
		return rc;
	if (!rc)
		return fail_child(L, e, "protocol", "required (\"tcp\" or \"udp\")");
	if (!strcmp(proto, "tcp"))
		r->protocol = CVMM_PROTO_TCP;
	else if (!strcmp(proto, "udp"))
		r->protocol = CVMM_PROTO_UDP;
	else
		return fail(L, member(e, "protocol"), "must be \"tcp\" or \"udp\", got \"%s\"",
		            proto);
	if ((rc = opt_int(L, e, "from", 1, 65535, &from)) < 0)
		return rc;
	if (!rc)
		return fail_child(L, e, "from", "required (a port from 1 to 65535)");
	if ((rc = opt_int(L, e, "to", 1, 65535, &to)) < 0)
		return rc;
	if (!rc)
		return fail_child(L, e, "to", "required (a port from 1 to 65535)");
	if (from > to)
		return fail(L, member(e, "from"), "must not be greater than to (%lld), got %lld",
		            to, from);
	r->from = (uint32_t)from;
	r->to = (uint32_t)to;
	return 0;
}

static int load_port_mapping(struct loader *L, const config_setting_t *cvm)
{
	struct cvmm_config *c = L->c;
	config_setting_t *g, *seq;
	unsigned char buf[sizeof(struct in6_addr)];
	const char *addr = "127.0.0.1";
	int rc, i, n;

	if ((rc = opt_group(L, cvm, "port_mapping", &g)) < 0 || (rc = check_keys(L, g, pm_keys)))
		return rc;
	if ((rc = opt_bool(L, g, "enabled", &c->pm_enabled)) < 0 ||
	    (rc = opt_string(L, g, "address", false, &addr)) < 0)
		return rc;
	if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
		return fail(L, member(g, "address"),
		            "must be a numeric IPv4 or IPv6 address, got \"%s\"", addr);
	if ((rc = set_str(L, &c->pm_address, addr)) < 0)
		return rc;
	if ((rc = opt_seq(L, g, "range", &seq)) < 0)
		return rc;
	if (!seq) {
		/* Unprivileged ports of both protocols; "range = ();" allows none. */
		c->pm_ranges[0] = (struct cvmm_port_range){CVMM_PROTO_TCP, 1024, 65535};
		c->pm_ranges[1] = (struct cvmm_port_range){CVMM_PROTO_UDP, 1024, 65535};
		c->n_pm_ranges = 2;
		return 0;
	}
	n = config_setting_length(seq);
	if (n > CVMM_MAX_PORT_RANGES)
		return fail(L, seq, "must hold at most %d ranges, got %d", CVMM_MAX_PORT_RANGES, n);
	for (i = 0; i < n; i++) {
		rc = load_range(L, config_setting_get_elem(seq, (unsigned)i), &c->pm_ranges[i]);
		if (rc < 0)
			return rc;
	}
	c->n_pm_ranges = n;
	return 0;
}

static int load_auto_restart(struct loader *L, const config_setting_t *cvm)
{
	struct cvmm_config *c = L->c;
	config_setting_t *g;
	long long n;
	int rc, set_init, set_max;

	c->ar_enabled = true;
	c->ar_interval = 20;
	c->ar_max_retries = 5;
	c->ar_initial_backoff = 1;
	c->ar_max_backoff = 60;
	c->ar_reset_window = 300;
	if ((rc = opt_group(L, cvm, "auto_restart", &g)) < 0 || (rc = check_keys(L, g, ar_keys)))
		return rc;
	if ((rc = opt_bool(L, g, "enabled", &c->ar_enabled)) < 0 ||
	    (rc = opt_seconds(L, g, "interval", &c->ar_interval)) < 0)
		return rc;
	if ((rc = opt_int(L, g, "max_retries", 0, 1000, &n)) < 0)
		return rc;
	if (rc)
		c->ar_max_retries = (int)n;
	if ((set_init = opt_seconds(L, g, "initial_backoff", &c->ar_initial_backoff)) < 0)
		return set_init;
	if ((set_max = opt_seconds(L, g, "max_backoff", &c->ar_max_backoff)) < 0)
		return set_max;
	if ((rc = opt_seconds(L, g, "reset_window", &c->ar_reset_window)) < 0)
		return rc;
	if (c->ar_initial_backoff > c->ar_max_backoff) {
		if (set_init)
			return fail(L, member(g, "initial_backoff"),
			            "must not exceed cvm.auto_restart.max_backoff (%g), got %g",
			            c->ar_max_backoff, c->ar_initial_backoff);
		return fail(L, member(g, "max_backoff"),
		            "must not be less than cvm.auto_restart.initial_backoff (%g), got %g",
		            c->ar_initial_backoff, c->ar_max_backoff);
	}
	return 0;
}

/* ---- the listener: TLS, socket group and mode -------------------------------- */

static int read_text(const char *path, char **out);

/* 127.0.0.0/8 or ::1 (also as ::ffff:127.x.y.z): plain HTTP is acceptable only
 * where no one else can see the token go by. addr is a checked "tcp:" value. */
static bool tcp_is_loopback(const char *hp)
{
	char host[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	struct in_addr a4;

	if (hp[0] == '[') {
		size_t n = strcspn(hp + 1, "]");

		snprintf(host, sizeof(host), "%.*s", (int)n, hp + 1);
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	snprintf(host, sizeof(host), "%.*s", (int)strcspn(hp, ":"), hp);
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Reads a PEM file named by key into *pem; the error names the key. */
static int read_pem(struct loader *L, const config_setting_t *s, const char *path, char **pem)
{
	int rc = read_text(path, pem);

	if (rc == -ENOMEM)
		return oom(L);
	if (rc < 0)
		return fail(L, s, "cannot read %s: %s", path, strerror(-rc));
	return 0;
}

/* The certificate chain and key must load into GnuTLS together (which also
 * checks that the key belongs to the certificate), as libmicrohttpd will. */
static int check_tls_pair(struct loader *L, const config_setting_t *cert_s,
                          const config_setting_t *key_s)
{
	struct cvmm_config *c = L->c;
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t cert = {(unsigned char *)c->tls_cert_pem, (unsigned)strlen(c->tls_cert_pem)};
	gnutls_datum_t key = {(unsigned char *)c->tls_key_pem, (unsigned)strlen(c->tls_key_pem)};
	gnutls_x509_crt_t crt;
	int r;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return oom(L);
	r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (r >= 0)
		return 0;
	/* Which of the two is wrong: the certificate alone tells. */
	if (gnutls_x509_crt_init(&crt) < 0)
		return oom(L);
	if (gnutls_x509_crt_import(crt, &cert, GNUTLS_X509_FMT_PEM) < 0) {
		gnutls_x509_crt_deinit(crt);
		return fail(L, cert_s, "%s is not a PEM certificate", c->tls_cert);
	}
	gnutls_x509_crt_deinit(crt);
	if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		return fail(L, key_s, "%s is not the key of the certificate %s (cvm.tls_cert)",
		            c->tls_key, c->tls_cert);
	return fail(L, key_s, "%s is not a usable PEM private key: %s", c->tls_key,
	            gnutls_strerror(r));
}

static int load_listener(struct loader *L, const config_setting_t *root,
                         const config_setting_t *cvm)
{
	struct cvmm_config *c = L->c;
	config_setting_t *cert_s = member(cvm, "tls_cert"), *key_s = member(cvm, "tls_key");
	config_setting_t *group_s = member(cvm, "unix_sock_group");
	config_setting_t *mode_s = member(cvm, "unix_sock_mode");
	bool tcp = !strncmp(c->address, "tcp:", 4);
	const char *v;
	int rc;

	c->unix_sock_gid = -1;
	c->unix_sock_mode = 0660;
	if ((group_s || mode_s) && tcp)
		return fail(L, group_s ?: mode_s,
		            "applies to a unix socket, but address is \"%s\"", c->address);
	if (group_s) {
		struct group *gr;
		char *end;
		long gid;

		if ((rc = check_string(L, group_s, false, &v)) < 0)
			return rc;
		errno = 0;
		gid = strtol(v, &end, 10);
		if (!*end && !errno && gid >= 0 && gid < INT32_MAX) {
			c->unix_sock_gid = gid;
		} else if ((gr = getgrnam(v))) {
			c->unix_sock_gid = gr->gr_gid;
		} else {
			return fail(L, group_s, "no such group \"%s\"", v);
		}
	}
	if (mode_s) {
		char *end;
		long mode;

		if ((rc = check_string(L, mode_s, false, &v)) < 0)
			return rc;
		mode = strtol(v, &end, 8);
		if (*end || mode < 0 || mode > 0777)
			return fail(L, mode_s, "must be an octal mode from \"0000\" to \"0777\", got \"%s\"",
			            v);
		c->unix_sock_mode = (unsigned)mode;
	}

	if (!cert_s != !key_s)
		return fail_child(L, cvm, cert_s ? "tls_key" : "tls_cert",
		                  "missing: cvm.tls_cert and cvm.tls_key go together");
	if (cert_s && !tcp)
		return fail(L, cert_s, "TLS is for a tcp: address, but address is \"%s\"",
		            c->address);
	if (!cert_s) {
		if (tcp && !tcp_is_loopback(c->address + 4))
			return fail(L, member(root, "address"),
			            "plain HTTP is accepted only on a loopback address (127.0.0.0/8, "
			            "[::1]): the token would cross the network in clear; set "
			            "cvm.tls_cert and cvm.tls_key for TLS, got \"%s\"",
			            c->address);
		return 0;
	}
	if ((rc = check_string(L, cert_s, false, &v)) < 0 || (rc = set_path(L, &c->tls_cert, v)) < 0 ||
	    (rc = check_string(L, key_s, false, &v)) < 0 || (rc = set_path(L, &c->tls_key, v)) < 0)
		return rc;
	if ((rc = read_pem(L, cert_s, c->tls_cert, &c->tls_cert_pem)) < 0 ||
	    (rc = read_pem(L, key_s, c->tls_key, &c->tls_key_pem)) < 0)
		return rc;
	return check_tls_pair(L, cert_s, key_s);
}

/* The guest channel and what the daemon makes of the agent's heartbeats. */
static int load_channel(struct loader *L, const config_setting_t *cvm)
{
	struct cvmm_config *c = L->c;
	config_setting_t *g;
	const char *v = NULL;
	int rc;

	c->chan_enabled = true;
	c->agent_unresponsive = 30;
	c->agent_restart = false;
	if ((rc = opt_group(L, cvm, "channel", &g)) < 0 || (rc = check_keys(L, g, chan_keys)) ||
	    (rc = opt_bool(L, g, "enabled", &c->chan_enabled)) < 0 ||
	    (rc = opt_string(L, g, "reader", false, &v)) < 0)
		return rc;
	if (v && (rc = set_path(L, &c->chan_reader, v)) < 0)
		return rc;
	if ((rc = opt_group(L, cvm, "agent", &g)) < 0 || (rc = check_keys(L, g, agent_keys)) ||
	    (rc = opt_seconds(L, g, "unresponsive_after", &c->agent_unresponsive)) < 0 ||
	    (rc = opt_bool(L, g, "restart_unresponsive", &c->agent_restart)) < 0)
		return rc;
	if (c->agent_unresponsive <= 0)
		return fail(L, member(g, "unresponsive_after"), "must be more than 0 seconds, got %g",
		            c->agent_unresponsive);
	return 0;
}

static int load_cvm(struct loader *L, const config_setting_t *root)
{
	struct cvmm_config *c = L->c;
	struct config_host h = host_figures();
	config_setting_t *cvm, *gpu;
	const char *backend = "qemu";
	long long n, start = 1000, size = 1000;
	int rc;

	if ((rc = opt_group(L, root, "cvm", &cvm)) < 0 || (rc = check_keys(L, cvm, cvm_keys)))
		return rc;
	if ((rc = opt_string(L, cvm, "backend", false, &backend)) < 0 ||
	    (rc = set_str(L, &c->default_backend, backend)) < 0)
		return rc;
	c->hook_timeout = 300;
	if ((rc = opt_seconds(L, cvm, "hook_timeout", &c->hook_timeout)) < 0)
		return rc;
	if (c->hook_timeout <= 0)
		return fail(L, member(cvm, "hook_timeout"), "must be more than 0 seconds, got %g",
		            c->hook_timeout);

	if ((rc = opt_int(L, cvm, "max_allocable_vcpu", 1, 65536, &n)) < 0)
		return rc;
	if (rc) {
		c->max_allocable_vcpu = (int)n;
	} else {
		c->max_allocable_vcpu = h.ncpus > 5 ? h.ncpus - 4 : 1;
		c->vcpu_computed = true;
	}
	if ((rc = opt_int(L, cvm, "max_allocable_memory_in_mb", 1, 1LL << 40, &n)) < 0)
		return rc;
	if (rc) {
		c->max_allocable_memory_mb = (uint64_t)n;
	} else {
		c->max_allocable_memory_mb = h.mem_mb > 16384 + 512 ? h.mem_mb - 16384 : 512;
		c->memory_computed = true;
	}

	/* 0, 1 and 2 are the hypervisor, loopback and host CIDs; -1 is VMADDR_CID_ANY. */
	if ((rc = opt_int(L, cvm, "cid_start", 3, 0xfffffffeLL, &start)) < 0 ||
	    (rc = opt_int(L, cvm, "cid_pool_size", 1, 1000000, &size)) < 0)
		return rc;
	if (start + size > 0xffffffffLL)
		return fail(L, member(cvm, "cid_pool_size") ?: member(cvm, "cid_start"),
		            "cid_start + cid_pool_size must not exceed 4294967295, got %lld + %lld",
		            start, size);
	c->cid_start = (uint32_t)start;
	c->cid_pool_size = (uint32_t)size;
	if ((rc = opt_bool(L, cvm, "metrics_public", &c->metrics_public)) < 0)
		return rc;

	if ((rc = load_networking(L, cvm)) < 0 || (rc = load_port_mapping(L, cvm)) < 0 ||
	    (rc = load_auto_restart(L, cvm)) < 0 || (rc = load_listener(L, root, cvm)) < 0 ||
	    (rc = load_channel(L, cvm)) < 0)
		return rc;
	/* Owned by the GPU plugin (the registry refuses them while none reads
	 * them; it parses the CPU list). */
	const char *host_cpus;
	if ((rc = opt_string(L, cvm, "host_cpus", false, &host_cpus)) < 0)
		return rc;
	return opt_group(L, cvm, "gpu", &gpu) < 0 ? -EINVAL : 0;
}

static int load_auth(struct loader *L, const config_setting_t *root)
{
	struct cvmm_config *c = L->c;
	config_setting_t *g, *seq;
	const char *tok;
	int rc, i, n;

	if ((rc = opt_group(L, root, "auth", &g)) < 0 || (rc = check_keys(L, g, auth_keys)))
		return rc;
	if ((rc = opt_bool(L, g, "enabled", &c->auth_enabled)) < 0 ||
	    (rc = opt_seq(L, g, "tokens", &seq)) < 0)
		return rc;
	if (!seq) {
		if (c->auth_enabled)
			return fail(L, member(g, "enabled"),
			            "is true but auth.tokens is not set (at least one token is "
			            "required)");
		return 0;
	}
	n = config_setting_length(seq);
	if (n > CVMM_MAX_TOKENS)
		return fail(L, seq, "must hold at most %d tokens, got %d", CVMM_MAX_TOKENS, n);
	if (!n && c->auth_enabled)
		return fail(L, seq, "must hold at least one token when auth.enabled is true");
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(seq, (unsigned)i);

		if ((rc = check_string(L, e, false, &tok)) < 0)
			return rc;
		if (c->auth_enabled && strlen(tok) < 16)
			return fail(L, e,
			            "must be at least 16 characters when auth.enabled is true, got "
			            "%zu",
			            strlen(tok));
		if ((rc = set_str(L, &c->tokens[i], tok)) < 0)
			return rc;
		c->n_tokens = i + 1;
	}
	return 0;
}

static int load_plugins(struct loader *L, const config_setting_t *root)
{
	static const char *const defaults[] = {"backend-qemu", "net-user"};
	struct cvmm_config *c = L->c;
	config_setting_t *seq, *g;
	const char *name;
	size_t len;
	int rc, i, j, n;

	if ((rc = opt_seq(L, root, "plugins", &seq)) < 0)
		return rc;
	if (!seq) {
		/* What the defaults cvm.backend = "qemu" and networking.mode = "user" need. */
		for (i = 0; i < 2; i++) {
			if ((rc = set_str(L, &c->plugins[i], defaults[i])) < 0)
				return rc;
			c->n_plugins = i + 1;
		}
	} else {
		n = config_setting_length(seq);
		if (n > CVMM_MAX_PLUGINS)
			return fail(L, seq, "must hold at most %d plugins, got %d",
			            CVMM_MAX_PLUGINS, n);
		for (i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(seq, (unsigned)i);

			if ((rc = check_string(L, e, false, &name)) < 0)
				return rc;
			len = strlen(name);
			if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			                 "0123456789._-") != len ||
			    !strcmp(name, ".") || !strcmp(name, ".."))
				return fail(L, e,
				            "must be a plugin file name of letters, digits, '.', "
				            "'_' and '-', got \"%s\"",
				            name);
			if (len > 3 && !strcmp(name + len - 3, ".so"))
				return fail(
				    L, e, "must be given without the .so suffix, got \"%s\"", name);
			for (j = 0; j < i; j++)
				if (!strcmp(c->plugins[j], name))
					return fail(L, e, "\"%s\" is listed twice", name);
			if ((rc = set_str(L, &c->plugins[i], name)) < 0)
				return rc;
			c->n_plugins = i + 1;
		}
	}

	/* Per-plugin sections: each plugin validates its own. */
	if ((rc = opt_group(L, root, "plugin", &g)) < 0)
		return rc;
	n = g ? config_setting_length(g) : 0;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(g, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return fail(L, e,
			            "must be a group { ... } of the plugin's settings, got %s",
			            type_name(config_setting_type(e)));
		/* Nobody would read it: a typo of the name, or a plugin left out. */
		for (j = 0; j < c->n_plugins; j++)
			if (!strcmp(c->plugins[j], config_setting_name(e)))
				break;
		if (j == c->n_plugins)
			return fail(L, e,
			            "no plugin \"%s\" in plugins (add it there, or remove this "
			            "section)",
			            config_setting_name(e));
	}
	for (i = 4; config_plugin_owned[i]; i += 2) /* past the two cvm.* ones */
		if ((rc = opt_group(L, root, config_plugin_owned[i], &g)) < 0)
			return rc;
	return 0;
}

/* ---- 32-bit truncation guard -------------------------------------------
 * libconfig 1.5 (Debian 12) stores an integer literal without an L suffix in
 * an int, silently: "serial_log_max = 5000000000;" reads as 705032704 and a
 * hex literal above 0x7fffffff turns negative. Later versions promote such
 * literals to int64. Probe which behaviour this library has, and if it
 * truncates, scan the text for such literals and reject them. */

static bool truncates(const char *probe)
{
	config_t t;
	config_setting_t *s;
	bool r;

	config_init(&t);
	r = config_read_string(&t, probe) == CONFIG_TRUE && (s = config_lookup(&t, "x")) &&
	    config_setting_type(s) == CONFIG_TYPE_INT;
	config_destroy(&t);
	return r;
}

static bool is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '*';
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_xdigit(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/*
 * Finds the first integer literal the library would truncate; returns 1 with
 * its line and text, 0 if none. Skips comments, strings and names the way
 * libconfig's scanner does.
 */
static int find_wide_literal(const char *p, bool dec, bool hex, unsigned *line, char *lit,
                             size_t litlen)
{
	unsigned ln = 1;

	while (*p) {
		const char *start = p;

		if (*p == '\n') {
			ln++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					ln++;
			if (*p)
				p += 2;
		} else if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (*p == '\n')
					ln++;
			}
			if (*p)
				p++;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '*' ||
		           *p == '@') {
			for (p++; is_name_char(*p); p++)
				;
		} else if (is_digit(*p) || ((*p == '-' || *p == '+') && is_digit(p[1]))) {
			bool is_hex = false, is_float = false, wide;
			const char *digits;
			unsigned long long u;
			long long v;

			if (*p == '-' || *p == '+')
				p++;
			digits = p;
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && is_xdigit(p[2])) {
				is_hex = true;
				for (p += 2; is_xdigit(*p); p++)
					;
			} else {
				while (is_digit(*p))
					p++;
				if (*p == '.') {
					is_float = true;
					for (p++; is_digit(*p); p++)
						;
				}
				if ((*p == 'e' || *p == 'E') &&
				    (is_digit(p[1]) ||
				     ((p[1] == '-' || p[1] == '+') && is_digit(p[2])))) {
					is_float = true;
					for (p += 2; is_digit(*p); p++)
						;
				}
			}
			if (*p == 'L') {
				while (*p == 'L')
					p++;
				continue;
			}
			if (is_float)
				continue;
			errno = 0;
			if (is_hex) {
				u = strtoull(digits, NULL, 16);
				wide = hex && (errno == ERANGE || u > 0x7fffffffULL);
			} else {
				v = strtoll(start, NULL, 10);
				wide = dec && (errno == ERANGE || v < INT_MIN || v > INT_MAX);
			}
			if (wide) {
				snprintf(lit, litlen, "%.*s", (int)(p - start), start);
				*line = ln;
				return 1;
			}
		} else {
			p++;
		}
	}
	return 0;
}

/* The integer setting the literal belongs to: the nearest one starting at or above its line. */
static void find_int_setting(config_setting_t *s, unsigned line, config_setting_t **best)
{
	int i, n, t = config_setting_type(s);

	if (t == CONFIG_TYPE_GROUP || t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY) {
		n = config_setting_length(s);
		for (i = 0; i < n; i++)
			find_int_setting(config_setting_get_elem(s, (unsigned)i), line, best);
		return;
	}
	if (t != CONFIG_TYPE_INT || config_setting_source_file(s) ||
	    config_setting_source_line(s) > line)
		return;
	if (!*best || config_setting_source_line(s) > config_setting_source_line(*best))
		*best = s;
}

static int check_wide_literals(struct loader *L, const char *text)
{
	bool dec = truncates("x = 5000000000;"), hex = truncates("x = 0xffffffff;");
	config_setting_t *s = NULL;
	char lit[64], key[512];
	unsigned line;

	if ((!dec && !hex) || !find_wide_literal(text, dec, hex, &line, lit, sizeof(lit)))
		return 0;
	find_int_setting(config_root_setting(&L->c->cfg), line, &s);
	key_path(s, key, sizeof(key));
	set_err(L,
	        "%s:%u: %s: %s does not fit in a 32-bit integer and this libconfig would silently "
	        "truncate it; write %sL",
	        L->file, line, s && key[0] ? key : "(value)", lit, lit);
	return -EINVAL;
}

/* ---- entry points -------------------------------------------------------- */

static int load_text(struct loader *L, const char *text)
{
	struct cvmm_config *c = L->c;
	config_setting_t *root;
	char file[PATH_MAX];
	int rc;

	config_init(&c->cfg);
	config_set_include_dir(&c->cfg, L->base);
	if (config_read_string(&c->cfg, text) != CONFIG_TRUE) {
		set_err(L, "%s:%d: %s",
		        display_file(L, config_error_file(&c->cfg), file, sizeof(file)),
		        config_error_line(&c->cfg),
		        config_error_text(&c->cfg) ? config_error_text(&c->cfg) : "parse error");
		return -EINVAL;
	}
	if ((rc = check_wide_literals(L, text)) < 0)
		return rc;
	root = config_root_setting(&c->cfg);
	if ((rc = check_keys(L, root, top_keys)) < 0 || (rc = load_server(L, root)) < 0 ||
	    (rc = load_cvm(L, root)) < 0 || (rc = load_auth(L, root)) < 0 ||
	    (rc = load_plugins(L, root)) < 0)
		return rc;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *cwd, *out;

	if (slash == path)
		return strdup("/");
	if (path[0] == '/')
		return strndup(path, (size_t)(slash - path));
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (!slash)
		return cwd;
	if (asprintf(&out, "%s/%.*s", cwd, (int)(slash - path), path) < 0)
		out = NULL;
	free(cwd);
	return out;
}

static int read_text(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	size_t len = 0, cap = 0, n;
	char *buf = NULL, *nb;
	int rc = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if (cap > CONFIG_MAX_BYTES + 8192) {
				rc = -EFBIG;
				break;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				rc = errno ? -errno : -EIO;
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static int load_common(struct cvmm_config *c, const char *name, const char *text,
                       const char *path_for_dir, char *err, size_t errlen)
{
	struct loader L = {.c = c, .file = name, .err = err, .errlen = errlen};
	int rc;

	if (err && errlen)
		err[0] = '\0';
	c->path = strdup(name);
	L.base = path_for_dir ? dir_of(path_for_dir) : getcwd(NULL, 0);
	c->dir = L.base ? strdup(L.base) : NULL;
	if (!c->path || !L.base || !c->dir)
		rc = oom(&L);
	else
		rc = load_text(&L, text);
	free(L.base);
	if (rc < 0)
		config_free(c);
	return rc;
}

int config_load(struct cvmm_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = read_text(path, &text);
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		return rc;
	}
	rc = load_common(c, path, text, path, err, errlen);
	free(text);
	return rc;
}

int config_load_string(struct cvmm_config *c, const char *text, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	return load_common(c, STRING_NAME, text, NULL, err, errlen);
}

void config_where(const struct cvmm_config *c, const config_setting_t *s, char *buf, size_t len)
{
	struct loader L = {.c = (struct cvmm_config *)c, .file = c->path, .base = c->dir};
	char file[PATH_MAX];

	if (!s) {
		snprintf(buf, len, "%s", c->path ? c->path : STRING_NAME);
		return;
	}
	snprintf(buf, len, "%s:%u", display_file(&L, config_setting_source_file(s), file, sizeof(file)),
	         (unsigned)config_setting_source_line(s));
}

void config_key(const config_setting_t *s, char *buf, size_t len)
{
	key_path(s, buf, len);
}

config_setting_t *config_plugin_section(const struct cvmm_config *c, const char *plugin)
{
	config_setting_t *g;

	if (!c || !c->cfg.root || !plugin)
		return NULL;
	g = config_setting_get_member(config_root_setting(&c->cfg), "plugin");
	if (!g || config_setting_type(g) != CONFIG_TYPE_GROUP)
		return NULL;
	return config_setting_get_member(g, plugin);
}

void config_free(struct cvmm_config *c)
{
	int i;

	if (!c)
		return;
	if (config_root_setting(&c->cfg))
		config_destroy(&c->cfg);
	free(c->path);
	free(c->dir);
	free(c->address);
	free(c->run_path);
	free(c->data_dir);
	free(c->image_path);
	free(c->plugin_dir);
	free(c->log_level);
	free(c->node_name);
	free(c->default_backend);
	free(c->chan_reader);
	free(c->net_mode);
	free(c->pm_address);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_cert_pem);
	if (c->tls_key_pem)
		explicit_bzero(c->tls_key_pem, strlen(c->tls_key_pem));
	free(c->tls_key_pem);
	for (i = 0; i < CVMM_MAX_TOKENS; i++) {
		if (c->tokens[i])
			explicit_bzero(c->tokens[i], strlen(c->tokens[i]));
		free(c->tokens[i]);
	}
	for (i = 0; i < CVMM_MAX_PLUGINS; i++)
		free(c->plugins[i]);
	memset(c, 0, sizeof(*c));
}
