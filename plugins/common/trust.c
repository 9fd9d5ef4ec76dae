/* trust: see trust.h. */
#include "trust.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int cp_plugin_open(struct cp_plugin *pl, uint32_t major, const struct cvmm_host_api *h,
                   cvmm_plugin *p, const char *name, int has, const char *what)
{
	if (major != CVMM_ABI_MAJOR)
		return -EPROTO;
	pl->host = h;
	pl->self = p;
	pl->name = name;
	if (!has)
		return h->error(p, NULL, -EPROTO, "%s needs the daemon's ABI 1.2 with %s", name,
		                what);
	return 0;
}

/* The key in the fallback section, or NULL. */
static const char *fallback_key(const struct cp_plugin *pl, const char *key, char *buf, size_t len)
{
	if (!pl->fallback)
		return NULL;
	int w = snprintf(buf, len, "%s.%s", pl->fallback, key);
	return w > 0 && (size_t)w < len ? buf : NULL;
}

int cp_cfg_string(const struct cp_plugin *pl, const char *key, const char **v)
{
	char abs[128];
	int r = pl->host->cfg_string(pl->self, key, v);
	const char *k = r == -ENOENT ? fallback_key(pl, key, abs, sizeof(abs)) : NULL;
	return k ? pl->host->cfg_string(pl->self, k, v) : r;
}

int cp_cfg_bool(const struct cp_plugin *pl, const char *key, int32_t *v)
{
	char abs[128];
	int r = pl->host->cfg_bool(pl->self, key, v);
	const char *k = r == -ENOENT ? fallback_key(pl, key, abs, sizeof(abs)) : NULL;
	return k ? pl->host->cfg_bool(pl->self, k, v) : r;
}

int cp_cfg_int(const struct cp_plugin *pl, const char *key, int64_t *v)
{
	char abs[128];
	int r = pl->host->cfg_int(pl->self, key, v);
	const char *k = r == -ENOENT ? fallback_key(pl, key, abs, sizeof(abs)) : NULL;
	return k ? pl->host->cfg_int(pl->self, k, v) : r;
}

int cp_cfg_range(const struct cp_plugin *pl, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
	int64_t x;
	int r = cp_cfg_int(pl, key, &x);
	if (r == -ENOENT)
		return 1;
	if (r < 0)
		return r;
	if (x < lo || x > hi)
		return pl->host->error(pl->self, NULL, -EINVAL, "plugin.%s.%s: must be %lld..%lld",
		                       pl->name, key, (long long)lo, (long long)hi);
	*v = x;
	return 0;
}

int cp_answer(char *buf, size_t len, const char *text)
{
	int w = snprintf(buf, len, "%s", text ? text : "");
	return w < 0 || (size_t)w >= len ? -ENOSPC : w;
}

int cp_guest_call_serve(const struct cp_plugin *pl, guest_call_fn fn, cvmm_vm *vm, const char *body,
                        char *buf, size_t len)
{
	char err[1024] = "";
	int r = fn(vm, body, buf, len, err, sizeof(err));
	return r < 0 ? pl->host->error(pl->self, NULL, r, "%s", err[0] ? err : strerror(-r)) : r;
}
