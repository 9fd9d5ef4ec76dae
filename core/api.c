/*
 * api: see api.h. libmicrohttpd runs a thread per connection, so a handler
 * may take its time (write a list of thousands of VMs, wait for a job, follow
 * a console log) without holding up any other request or the daemon's loop.
 * Every handler holds a reference to the VM it works on for the whole call.
 *
 * Starvation: connections are bounded as a whole and by class — those that
 * have not finished their headers (unauthenticated), and log followers — so
 * some capacity is always left for control requests; a connection that has
 * not sent its headers within API_HEADER_DEADLINE seconds is shut.
 */
#include "api.h"
#include "console.h"
#include "daemon.h"
#include "events.h"
#include "image.h"
#include "jsonw.h"
#include "job.h"
#include "metrics.h"
#include "registry.h"
#include "routes.h"
#include "spec.h"
#include "check.h"
#include "util.h"
#include "web.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

struct conn {
	int fd;
	double since; /* when it started waiting for its (next) request's headers */
	bool in_request;
	bool upgraded; /* a console session: never swept as idle */
	struct conn *prev, *next;
};

struct api {
	struct cvmm_daemon *d;
	struct MHD_Daemon *mhd;
	int listen_fd;
	char sock_path[108];
	pthread_mutex_t mu; /* conns, counters */
	struct conn *conns;
	int n_conns, n_waiting, n_followers;
	bool closing;
	ev_timer sweep;
	struct console_set *consoles;
};

struct req {
	struct api *api;
	struct MHD_Connection *conn;
	char *body;
	size_t len;
	bool too_large;
	bool follower;
	/* Log stream. */
	struct cvmm_vm *vm; /* a reference, for a log stream */
	int fd;              /* the client's socket */
	char log_path[600];
	char *head; /* initial tail text */
	size_t head_len, head_off;
	uint64_t offset; /* in console.log, after head */
	bool follow;
	struct console_client *console; /* GET .../console: its place on the hub */
	/* Event stream (GET /v1/events), and what the request metrics need. */
	struct events_sub *sub;
	double t0;
	char path[256], method[8];
};

/* ---- responses ---- */

/* The length of the well-formed UTF-8 sequence at s (shortest form, no
 * UTF-16 surrogates, at most U+10FFFF), or 0. */
static int utf8_len(const unsigned char *s, const unsigned char *end)
{
	int len = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3
		: (*s & 0xf8) == 0xf0 ? 4 : 0;
	if (!len || s + len > end || (len == 2 && *s < 0xc2))
		return 0;
	for (int i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((len == 3 && *s == 0xe0 && s[1] < 0xa0) || (len == 3 && *s == 0xed && s[1] >= 0xa0) ||
	    (len == 4 && *s == 0xf0 && s[1] < 0x90) || (len == 4 && (*s > 0xf4 || (*s == 0xf4 && s[1] >= 0x90))))
		return 0;
	return len;
}

/* Text that goes into a JSON string must be valid UTF-8 (a name from the URL
 * may not be): invalid bytes become '?'. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
	while (p < end) {
		int n = utf8_len(p, end);
		if (n)
			p += n;
		else
			*p++ = '?';
	}
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
				 const char *text, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", ctype);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes ownership of o. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	enum MHD_Result r = send_text(c, status, "application/json", s, len);
	json_object_put(o);
	return r;
}

static json_object *error_obj(const char *code, const char *msg)
{
	char clean[1400];
	str_copy(clean, sizeof(clean), msg);
	utf8_sanitize(clean);
	json_object *e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(clean));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", e);
	return o;
}

static const char *code_for(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	case 501:
		return "not_implemented";
	case 503:
		return "unavailable";
	}
	return "internal";
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_json(c, status, error_obj(code_for(status), msg));
}

/* HTTP status for a failed job or check. */
static unsigned status_for(int err)
{
	switch (err) {
	case -EINVAL:
	case -ENOENT:
	case -ERANGE:
	case -ENOTSUP:
		return 400;
	case -EBUSY:
	case -EEXIST:
	case -EADDRINUSE:
		return 409;
	case -ESHUTDOWN:
		return 503;
	}
	return 500;
}

/* ---- auth ---- */

static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Time depends on the presented length only, never on where it differs. */
	unsigned char diff = (unsigned char)(alen != blen);
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
	return diff == 0;
}

int api_token_ok(struct cvmm_daemon *d, const char *hdr)
{
	struct cvmm_config *c = d->cfg;
	if (!c->auth_enabled)
		return 1;
	if (!hdr || strncmp(hdr, "Bearer ", 7))
		return 0;
	const char *tok = hdr + 7;
	size_t tl = strlen(tok);
	int ok = 0;
	for (int i = 0; i < c->n_tokens; i++)
		ok |= ct_equal(tok, tl, c->tokens[i], strlen(c->tokens[i]));
	return ok;
}

static void add_plugin_infos(struct cvmm_daemon *d, json_object *o, struct cvmm_vm *vm);

static json_object *host_json(struct cvmm_daemon *d)
{
	struct cvmm_config *c = d->cfg;
	struct registry *r = d->reg;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(CVMM_VERSION));
	char abi[16];
	snprintf(abi, sizeof(abi), "%d.%d", CVMM_ABI_MAJOR, CVMM_ABI_MINOR);
	json_object_object_add(o, "abi", json_object_new_string(abi));
	json_object_object_add(o, "node_name", json_object_new_string(c->node_name ? c->node_name : ""));
	json_object *lim = json_object_new_object();
	json_object_object_add(lim, "vcpu", json_object_new_int(c->max_allocable_vcpu));
	json_object_object_add(lim, "memory_mb", json_object_new_int64((int64_t)c->max_allocable_memory_mb));
	json_object_object_add(lim, "vcpu_computed", json_object_new_boolean(c->vcpu_computed));
	json_object_object_add(lim, "memory_computed", json_object_new_boolean(c->memory_computed));
	json_object_object_add(o, "limits", lim);
	pthread_mutex_lock(&d->lock);
	json_object *use = json_object_new_object();
	json_object_object_add(use, "vcpu", json_object_new_int64(d->used_vcpu));
	json_object_object_add(use, "memory_mb", json_object_new_int64((int64_t)d->used_memory_mb));
	json_object_object_add(use, "vms", json_object_new_int(d->n_vms));
	int running = 0;
	for (int i = 0; i < d->n_vms; i++) {
		vm_lock(d->vms[i]);
		running += d->vms[i]->state == VM_RUNNING;
		vm_unlock(d->vms[i]);
	}
	json_object_object_add(use, "running", json_object_new_int(running));
	json_object_object_add(o, "usage", use);
	json_object *cid = json_object_new_object();
	json_object_object_add(cid, "start", json_object_new_int64(c->cid_start));
	json_object_object_add(cid, "size", json_object_new_int64(c->cid_pool_size));
	json_object_object_add(cid, "used", json_object_new_int64(d->cids_in_use));
	json_object_object_add(o, "cid_pool", cid);
	pthread_mutex_unlock(&d->lock);
	json_object *bs = json_object_new_array();
	const char *accel = "";
	char descs[8][256];
	for (int i = 0; i < r->n_backends && i < 8; i++) {
		struct reg_backend *b = &r->backends[i];
		json_object *bo = json_object_new_object();
		descs[i][0] = 0;
		if (b->ops.describe)
			b->ops.describe(b->data, descs[i], sizeof(descs[i]));
		json_object_object_add(bo, "name", json_object_new_string(b->name));
		json_object_object_add(bo, "default",
				       json_object_new_boolean(!strcmp(b->name, c->default_backend)));
		json_object_object_add(bo, "description", json_object_new_string(descs[i]));
		json_object_array_add(bs, bo);
		if (!strcmp(b->name, c->default_backend))
			accel = descs[i];
	}
	json_object_object_add(o, "backends", bs);
	json_object_object_add(o, "accelerator", json_object_new_string(accel));
	json_object *nm = json_object_new_array();
	for (int i = 0; i < r->n_netmodes; i++) {
		json_object *m = json_object_new_object();
		json_object_object_add(m, "name", json_object_new_string(r->netmodes[i].name));
		json_object_object_add(m, "ports", json_object_new_boolean(r->netmodes[i].ops.can_map_ports));
		json_object_object_add(m, "default", json_object_new_boolean(
			!strcmp(r->netmodes[i].name, c->net_mode)));
		json_object_array_add(nm, m);
	}
	json_object_object_add(o, "network_modes", nm);
	json_object *pm = json_object_new_object();
	json_object_object_add(pm, "enabled", json_object_new_boolean(c->pm_enabled));
	json_object_object_add(pm, "address", json_object_new_string(c->pm_address));
	json_object_object_add(o, "port_mapping", pm);
	json_object_object_add(o, "uptime", json_object_new_double(now_real() - d->started_at));
	add_plugin_infos(d, o, NULL);
	return o;
}

/* ---- request bodies ---- */

/*
 * What json-c lets through and a strict API must not: a key twice in one
 * object (json-c keeps the last), a NUL inside a string ("tiny\u0000x"
 * would be read as "tiny"), and bytes that are not UTF-8. Runs on text that
 * json-c has already accepted, so only strings need a real lexer.
 */
struct keylist {
	char **keys;
	size_t n, cap;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Decodes the JSON string at *p (after its opening quote) into out (may be
 * NULL); advances *p past the closing quote. -1: NUL or bad UTF-8. */
static int lex_string(const char **p, const char *end, char **out)
{
	const unsigned char *s = (const unsigned char *)*p;
	size_t cap = 32, n = 0;
	char *buf = out ? xzalloc(cap) : NULL;
#define PUT(ch)                                                                                    \
	do {                                                                                       \
		if (buf) {                                                                         \
			if (n + 2 > cap)                                                           \
				buf = realloc(buf, cap *= 2);                                      \
			buf[n++] = (char)(ch);                                                     \
		}                                                                                  \
	} while (0)
	while ((const char *)s < end && *s != '"') {
		if (*s == '\\') {
			s++;
			if (*s != 'u') {
				PUT(*s == 'n' ? '\n' : *s == 't' ? '\t' : *s);
				s++;
				continue;
			}
			unsigned cp = 0;
			sscanf((const char *)s + 1, "%4x", &cp);
			s += 5;
			if (cp >= 0xd800 && cp < 0xdc00 && s[0] == '\\' && s[1] == 'u') {
				unsigned lo = 0;
				sscanf((const char *)s + 2, "%4x", &lo);
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
			}
			if (cp == 0)
				goto bad;
			if (cp < 0x80) {
				PUT(cp);
			} else if (cp < 0x800) {
				PUT(0xc0 | (cp >> 6));
				PUT(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				PUT(0xe0 | (cp >> 12));
				PUT(0x80 | ((cp >> 6) & 0x3f));
				PUT(0x80 | (cp & 0x3f));
			} else {
				PUT(0xf0 | (cp >> 18));
				PUT(0x80 | ((cp >> 12) & 0x3f));
				PUT(0x80 | ((cp >> 6) & 0x3f));
				PUT(0x80 | (cp & 0x3f));
			}
			continue;
		}
		/* A raw byte: a whole UTF-8 sequence, shortest form, no surrogates. */
		int len = utf8_len(s, (const unsigned char *)end);
		if (!len)
			goto bad;
		for (int i = 0; i < len; i++)
			PUT(s[i]);
		s += len;
	}
	*p = (const char *)s + 1;
	if (buf) {
		buf[n] = 0;
		*out = buf;
	}
	return 0;
bad:
	free(buf);
	return -1;
#undef PUT
}

int api_json_strict(const char *text, size_t len, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	struct keylist stack[64];
	const char *field[64]; /* the key whose value is being read, per object */
	int depth = 0, rc = 0;
	bool expect_key = false;
	while (p < end && rc == 0) {
		char c = *p;
		if (c == '{') {
			if (depth == 64) {
				snprintf(err, errlen, "body: nested too deeply");
				rc = -1;
				break;
			}
			field[depth] = NULL;
			stack[depth++] = (struct keylist){0};
			expect_key = true;
			p++;
		} else if (c == '}' || c == ']') {
			if (c == '}' && depth > 0) {
				struct keylist *k = &stack[--depth];
				if (k->n > 1)
					qsort(k->keys, k->n, sizeof(char *), cmp_str);
				for (size_t i = 1; i < k->n && rc == 0; i++)
					if (!strcmp(k->keys[i - 1], k->keys[i])) {
						char clean[80];
						str_copy(clean, sizeof(clean), k->keys[i]);
						utf8_sanitize(clean);
						snprintf(err, errlen, "%s: appears twice in one object",
							 clean);
						rc = -1;
					}
				for (size_t i = 0; i < k->n; i++)
					free(k->keys[i]);
				free(k->keys);
			}
			expect_key = false;
			p++;
		} else if (c == ',') {
			/* After a comma inside an object comes a key. */
			expect_key = depth > 0;
			p++;
		} else if (c == '[' || c == ':') {
			expect_key = false;
			p++;
		} else if (c == '"') {
			p++;
			char *key = NULL;
			bool is_key = expect_key && depth > 0;
			if (lex_string(&p, end, is_key ? &key : NULL) < 0) {
				const char *f = !is_key && depth > 0 ? field[depth - 1] : NULL;
				char clean[80];
				str_copy(clean, sizeof(clean), f ? f : "body");
				utf8_sanitize(clean);
				snprintf(err, errlen,
					 "%s: must be UTF-8 text without NUL (\\u0000), at byte %zu",
					 clean, (size_t)(p - text));
				rc = -1;
				break;
			}
			if (is_key) {
				struct keylist *k = &stack[depth - 1];
				if (k->n == k->cap) {
					k->cap = k->cap ? k->cap * 2 : 8;
					k->keys = realloc(k->keys, k->cap * sizeof(char *));
				}
				k->keys[k->n++] = key;
				field[depth - 1] = key;
			}
			expect_key = false;
		} else {
			p++;
		}
	}
	while (depth > 0) {
		struct keylist *k = &stack[--depth];
		for (size_t i = 0; i < k->n; i++)
			free(k->keys[i]);
		free(k->keys);
	}
	return rc;
}

/* Parses the request body as a JSON object; an empty body counts as {}. */
json_object *api_parse_body(const char *text, size_t len, char *err, size_t errlen)
{
	if (!len)
		return json_object_new_object();
	struct json_tokener *tok = json_tokener_new_ex(16);
	/* Only JSON: no single quotes, comments, trailing commas or 01. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (e == json_tokener_continue) {
		snprintf(err, errlen, "body: invalid JSON: it ends at byte %zu before the value does",
			 len);
		json_object_put(o);
		return NULL;
	}
	if (e != json_tokener_success) {
		snprintf(err, errlen, "body: invalid JSON at byte %zu: %s", end,
			 json_tokener_error_desc(e));
		json_object_put(o);
		return NULL;
	}
	while (end < len && strchr(" \t\r\n", text[end]))
		end++;
	if (end != len) {
		snprintf(err, errlen, "body: unexpected data after the JSON value at byte %zu", end);
	} else if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "body: must be a JSON object");
	} else if (api_json_strict(text, len, err, errlen) == 0) {
		return o;
	}
	json_object_put(o);
	return NULL;
}

static json_object *parse_body(struct req *q, char *err, size_t errlen)
{
	return api_parse_body(q->body, q->len, err, errlen);
}

/* ---- what plugins add (ABI 1.2) ---- */

#define PLUGIN_JSON_MAX (256 * 1024)

/* A plugin's JSON text, checked, as a json-c object (NULL if it failed:
 * logged; an answer never breaks for one plugin). */
static json_object *plugin_json(struct reg_info *in, struct cvmm_vm *vm)
{
	char *buf = malloc(PLUGIN_JSON_MAX), err[512];
	if (!buf)
		return NULL;
	registry_call_begin(err, sizeof(err));
	int n = vm ? in->vm_info(in->data, vm, buf, PLUGIN_JSON_MAX)
		   : in->host_info(in->data, buf, PLUGIN_JSON_MAX);
	registry_call_end();
	json_object *o = NULL;
	if (n >= 0 && n < PLUGIN_JSON_MAX) {
		buf[n] = 0;
		o = json_tokener_parse(buf);
		if (!o)
			log_warn("plugin %s: its \"%s\" is not JSON; left out", in->plugin->name, in->key);
	} else {
		log_warn("plugin %s: \"%s\": %s", in->plugin->name, in->key, err[0] ? err : strerror(n < 0 ? -n : ENOSPC));
	}
	free(buf);
	return o;
}

static void add_plugin_infos(struct cvmm_daemon *d, json_object *o, struct cvmm_vm *vm)
{
	for (int i = 0; i < d->reg->n_infos; i++) {
		struct reg_info *in = &d->reg->infos[i];
		if (vm ? !in->vm_info : !in->host_info)
			continue;
		json_object *v = plugin_json(in, vm);
		if (v)
			json_object_object_add(o, in->key, v);
	}
}

static void write_plugin_infos(struct cvmm_daemon *d, struct jw *w, struct cvmm_vm *vm)
{
	for (int i = 0; i < d->reg->n_infos; i++) {
		struct reg_info *in = &d->reg->infos[i];
		if (!in->vm_info)
			continue;
		json_object *v = plugin_json(in, vm);
		if (!v)
			continue;
		size_t len;
		const char *t = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
		jw_key(w, in->key);
		jw_raw(w, t, len);
		json_object_put(v);
	}
}

static bool has_vm_infos(struct cvmm_daemon *d)
{
	for (int i = 0; i < d->reg->n_infos; i++)
		if (d->reg->infos[i].vm_info)
			return true;
	return false;
}

static enum MHD_Result plugin_route(struct api *a, struct req *q, struct reg_route *rt,
				   struct cvmm_vm *vm)
{
	char err[1024];
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (!buf)
		return send_error(q->conn, 500, "out of memory");
	registry_call_begin(err, sizeof(err));
	int n = rt->vmfn ? rt->vmfn(rt->data, vm, q->body ? q->body : "", buf, cap)
			 : rt->fn(rt->data, q->body ? q->body : "", buf, cap);
	registry_call_end();
	enum MHD_Result ret;
	if (n < 0 || (size_t)n >= cap) {
		int e = n < 0 ? n : -ENOSPC;
		unsigned st = status_for(e);
		/* A plugin route that asked a remote service (a KMS) and got
		 * no usable answer: the gateway's status, not ours. */
		if (e == -EBADMSG || e == -EPROTO || e == -ECONNREFUSED || e == -ETIMEDOUT ||
		    e == -EHOSTUNREACH)
			st = 502;
		ret = send_error(q->conn, st, "%s", err[0] ? err : strerror(-e));
	} else {
		ret = send_text(q->conn, 200, "application/json", buf, (size_t)n);
	}
	free(buf);
	return ret;
}

/* ---- routes ---- */

static bool active(enum vm_state s)
{
	return s == VM_STARTING || s == VM_RUNNING || s == VM_STOPPING || s == VM_PAUSED;
}

/* The list is written as text into one buffer that MHD frees after
 * sending: no object tree, no copy. Each VM is locked only while its own
 * entry is written. */
char *api_vm_list_text(struct cvmm_daemon *d, const char *fields, size_t *len, char *err,
		       size_t errlen)
{
	if (fields && vm_check_fields(fields, err, errlen) < 0)
		return NULL;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "vms");
	jw_arr(&w);
	int n;
	struct cvmm_vm **vms = daemon_get_vms(d, &n);
	bool infos = !fields && has_vm_infos(d);
	for (int i = 0; i < n; i++) {
		vm_lock(vms[i]);
		bool gone = vms[i]->gone;
		if (!gone) {
			jw_obj(&w);
			vm_write_api_members(vms[i], &w, fields);
		}
		vm_unlock(vms[i]);
		if (gone)
			continue;
		if (infos) /* outside the VM's lock: plugin code may take it */
			write_plugin_infos(d, &w, vms[i]);
		jw_end_obj(&w);
	}
	daemon_put_vms(vms, n);
	jw_end_arr(&w);
	jw_end_obj(&w);
	return jw_take(&w, len);
}

static enum MHD_Result send_vm_list(struct cvmm_daemon *d, struct MHD_Connection *c)
{
	const char *fields = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fields");
	char err[160];
	size_t len;
	char *text = api_vm_list_text(d, fields, &len, err, sizeof(err));
	if (!text)
		return send_error(c, 400, "%s", err);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

json_object *api_vm_json(struct cvmm_vm *vm)
{
	vm_lock(vm);
	json_object *o = vm_to_api(vm);
	vm_unlock(vm);
	add_plugin_infos(vm->d, o, vm);
	return o;
}

/* 409 for a VM that is being created or removed; NULL when it may be used.
 * Caller holds vm->lock. */
static const char *busy_reason(struct cvmm_vm *vm)
{
	if (vm->removing || vm->gone)
		return "is being removed";
	if (vm->creating)
		return "is being created";
	return NULL;
}

/* What a create checks against the other VMs and the limits, and reserves
 * (a unique name, its ports, vCPUs, memory and a CID). Caller holds d->lock. */
static int admit(struct cvmm_daemon *d, struct cvmm_vm *vm, char *err, size_t errlen)
{
	if (daemon_find_vm(d, vm->name)) {
		snprintf(err, errlen, "name: a VM named '%s' exists already", vm->name);
		return -EEXIST;
	}
	int r = daemon_check_ports(d, vm, err, errlen);
	return r < 0 ? r : daemon_reserve(d, vm, false, err, errlen);
}

/* POST /v1/vms?dry_run=1: the create's validation, and what its start
 * would launch, rendered by the VM's backend; nothing is reserved, written
 * or bound. */
static enum MHD_Result vm_dry_run(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	struct cvmm_daemon *d = a->d;
	char err[1024];
	pthread_mutex_lock(&d->lock);
	int r = admit(d, vm, err, sizeof(err));
	if (r == 0)
		daemon_release(d, vm); /* the numbers fit; the CID shown is the next free one */
	pthread_mutex_unlock(&d->lock);
	if (r < 0) {
		vm_free(vm);
		return send_error(q->conn, status_for(r), "%s", err);
	}
	struct cvmm_spec *spec = NULL;
	char missing[512];
	r = job_plan(d, vm, &spec, missing, sizeof(missing));
	if (r < 0) {
		enum MHD_Result ret = send_error(q->conn, status_for(r), "VM '%s': %s", vm->name, missing);
		vm_free(vm);
		return ret;
	}
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	char why[512];
	registry_call_begin(why, sizeof(why));
	int n = b && b->ops.render && buf ? b->ops.render(b->data, &spec->pub, buf, cap) : -ENOTSUP;
	registry_call_end();
	/* the launch spec itself, in the fixtures' form (tests/fixtures/spec):
	 * what the plugins built, whichever backend renders it */
	json_object *spec_json = n >= 0 ? spec_to_json(&spec->pub) : NULL;
	spec_free(spec);
	if (n < 0) {
		free(buf);
		/* The renderer's own reason when it gave one (host->error). */
		enum MHD_Result ret = send_error(q->conn, status_for(n), "VM '%s': backend '%s' cannot render it: %s",
						 vm->name, vm->backend, why[0] ? why : strerror(-n));
		vm_free(vm);
		return ret;
	}
	json_object *render = json_object_new_object();
	json_object_object_add(render, "backend", json_object_new_string(vm->backend));
	if (n > 0 && buf[0] == '<') { /* a document (libvirt's XML) */
		json_object_object_add(render, "xml", json_object_new_string_len(buf, n));
	} else { /* NUL-separated arguments */
		json_object *argv = json_object_new_array();
		for (int i = 0; i < n;) {
			size_t l = strnlen(buf + i, (size_t)(n - i));
			json_object_array_add(argv, json_object_new_string_len(buf + i, (int)l));
			i += (int)l + 1;
		}
		json_object_object_add(render, "argv", argv);
	}
	free(buf);
	if (missing[0])
		json_object_object_add(render, "missing", json_object_new_string(missing));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vm", vm_to_api(vm));
	json_object_object_add(o, "render", render);
	if (spec_json)
		json_object_object_add(o, "spec", spec_json);
	vm_free(vm);
	return send_json(q->conn, 200, o);
}

static enum MHD_Result vm_create(struct api *a, struct req *q)
{
	struct cvmm_daemon *d = a->d;
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err));
	if (!body)
		return send_error(q->conn, 400, "%s", err);
	struct cvmm_vm *vm = NULL;
	bool start = true;
	int r = vm_from_request(d, body, &vm, &start, err, sizeof(err));
	json_object_put(body);
	if (r < 0) /* a plugin's field may be busy (409), not only wrong */
		return send_error(q->conn, r == -EBUSY ? 409 : 400, "%s", err);
	const char *dry = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "dry_run");
	if (dry && (!strcmp(dry, "1") || !strcmp(dry, "true")))
		return vm_dry_run(a, q, vm);
	if (dry && strcmp(dry, "0") && strcmp(dry, "false")) {
		vm_free(vm);
		return send_error(q->conn, 400, "dry_run: must be 1, true, 0 or false");
	}
	json_object *o;
	r = api_vm_define(d, vm, start, &o, err, sizeof(err));
	return r < 0 ? send_error(q->conn, status_for(r), "%s", err) : send_json(q->conn, 201, o);
}

int api_vm_define(struct cvmm_daemon *d, struct cvmm_vm *vm, bool start, json_object **out,
		  char *err, size_t errlen)
{
	pthread_mutex_lock(&d->lock);
	int r = admit(d, vm, err, errlen);
	if (r < 0) {
		pthread_mutex_unlock(&d->lock);
		vm_free(vm);
		return r;
	}
	vm->want_running = start;
	vm->creating = true;
	daemon_add_vm(d, vm); /* the table takes the allocation's reference */
	struct job *j = job_new(JOB_DEFINE, vm); /* and the job one of its own */
	pthread_mutex_unlock(&d->lock);
	job_ref(j);
	jobs_submit(d, j);
	job_wait(d, j);
	if (j->result < 0) {
		snprintf(err, errlen, "VM '%s': %s", vm->name, j->err);
		r = j->result;
		job_unref(j);
		return r;
	}
	job_unref(j);
	vm_event(vm, "created", "created from image '%s'", vm->image);
	/* The manifest says it should run (state defined, desired running): a
	 * crash from here resumes it. The start is queued while the VM still
	 * refuses other requests, so a stop sent after it is queued after it.
	 * It is starting from here (said at once, and on the event feed before
	 * anything the job says). */
	if (start) {
		vm_lock(vm);
		bool moved = vm->state == VM_DEFINED;
		if (moved)
			vm->state = VM_STARTING;
		vm_unlock(vm);
		if (moved)
			vm_event(vm, "state", "defined -> starting");
		jobs_submit(d, job_new(JOB_START, vm));
	}
	vm_lock(vm);
	vm->creating = false;
	*out = vm_to_api(vm);
	vm_unlock(vm);
	add_plugin_infos(d, *out, vm);
	return 0;
}

static enum MHD_Result vm_remove(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	char err[1200];
	json_object *kept = NULL;
	int r = api_vm_remove(a->d, vm, &kept, err, sizeof(err));
	if (r < 0) /* busy; a failed removal is the daemon's fault, or it is stopping */
		return send_error(q->conn, r == -EBUSY ? 409 : r == -ESHUTDOWN ? 503 : 500, "%s", err);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "removed", json_object_new_string(vm->id));
	if (kept) /* volumes marked keep: where they are now */
		json_object_object_add(o, "kept_volumes", kept);
	return send_json(q->conn, 200, o);
}

int api_vm_remove(struct cvmm_daemon *d, struct cvmm_vm *vm, json_object **kept_volumes, char *err,
		  size_t errlen)
{
	if (kept_volumes)
		*kept_volumes = NULL;
	vm_lock(vm);
	const char *busy = busy_reason(vm);
	if (busy) {
		snprintf(err, errlen, "VM '%s' %s", vm->name, busy);
		vm_unlock(vm);
		return -EBUSY;
	}
	/* Only "removing" changes here: the desired state goes to disk with
	 * the removal's own first write (REMOVING), so that a job writing the
	 * manifest meanwhile cannot record "should not run" for a VM whose
	 * removal a crash then never carries out. */
	vm->removing = true;
	vm->next_restart = 0;
	vm_unlock(vm);
	/* What was queued for the VM is moot now: the removal need not wait
	 * for starts and graceful stops that would be undone at once. */
	jobs_cancel_queued(d, vm, "superseded by the VM's removal");
	struct job *j = job_ref(job_new(JOB_REMOVE, vm));
	char kept[4096] = ""; /* the paths of the volumes the removal keeps */
	j->out = kept;
	j->out_len = sizeof(kept);
	jobs_submit(d, j);
	job_wait(d, j);
	int r = j->result;
	if (r < 0) {
		snprintf(err, errlen, "VM '%s': %s", vm->name, j->err);
		if (r != -ESHUTDOWN) /* 503 then; any other failure is 500 */
			r = -EIO;
	} else if (kept_volumes && kept[0]) {
		json_object *arr = json_object_new_array();
		for (char *save = NULL, *l = strtok_r(kept, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			json_object_array_add(arr, json_object_new_string(l));
		*kept_volumes = arr;
	}
	job_unref(j);
	return r;
}

static enum MHD_Result vm_action(struct api *a, struct req *q, struct cvmm_vm *vm, const char *action)
{
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err)), *v;
	if (!body)
		return send_error(q->conn, 400, "%s", err);
	uint32_t timeout = 30;
	bool force = !strcmp(action, "kill");
	enum MHD_Result ret = MHD_YES;
	json_object_object_foreach(body, k, val)
	{
		(void)val;
		if (strcmp(action, "stop") || (strcmp(k, "timeout") && strcmp(k, "force"))) {
			char clean[80];
			str_copy(clean, sizeof(clean), k);
			ret = send_error(q->conn, 400, "%s: unknown field", clean);
			goto out;
		}
	}
	if (json_object_object_get_ex(body, "timeout", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > 3600) {
			ret = send_error(q->conn, 400, "timeout: must be an integer between 0 and 3600 (seconds)");
			goto out;
		}
		timeout = (uint32_t)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(body, "force", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			ret = send_error(q->conn, 400, "force: must be true or false");
			goto out;
		}
		force = json_object_get_boolean(v);
	}
	json_object *o;
	int r = api_vm_action(a->d, vm, action, timeout, force, &o, err, sizeof(err));
	/* 409: busy, or already where it was asked to go; 503: stopping. */
	ret = r < 0 ? send_error(q->conn, r == -EBUSY ? 409 : r == -ESHUTDOWN ? 503 : 500, "%s", err)
		    : send_json(q->conn, 202, o);
out:
	json_object_put(body);
	return ret;
}

int api_vm_action(struct cvmm_daemon *d, struct cvmm_vm *vm, const char *action, uint32_t timeout,
		  bool force, json_object **out, char *err, size_t errlen)
{
	vm_lock(vm);
	enum vm_state st = vm->state;
	const char *busy = busy_reason(vm);
	if (busy) {
		snprintf(err, errlen, "VM '%s' %s", vm->name, busy);
		vm_unlock(vm);
		return -EBUSY;
	}
	enum job_op op;
	if (!strcmp(action, "start")) {
		if (active(st) && vm->want_running) {
			snprintf(err, errlen, "VM '%s' is already %s", vm->name, vm_state_name(st));
			vm_unlock(vm);
			return -EBUSY;
		}
		op = JOB_START;
		vm->restarts = 0;
	} else if (!strcmp(action, "restart")) {
		op = active(st) ? JOB_RESTART : JOB_START;
	} else {
		if (!active(st) && !vm->want_running) {
			snprintf(err, errlen, "VM '%s' is not running (%s)", vm->name, vm_state_name(st));
			vm_unlock(vm);
			return -EBUSY;
		}
		op = JOB_STOP;
	}
	vm->want_running = op != JOB_STOP;
	vm->next_restart = 0;
	/* A start is under way from here (queued counts): the state says so,
	 * and so does the manifest written below, so that a daemon killed at
	 * any point looks for the VM's process at its next start. */
	if (op == JOB_START && !active(st))
		vm->state = VM_STARTING;
	vm_unlock(vm);
	if (op == JOB_START && !active(st))
		vm_event(vm, "state", "%s -> starting", vm_state_name(st));
	/* The desired state is on disk before the answer: a daemon killed right
	 * after the 202 still knows what was asked. */
	int rc = vm_save(vm);
	if (rc < 0) {
		snprintf(err, errlen, "VM '%s': cannot write its manifest: %s", vm->name, strerror(-rc));
		return rc == -EBUSY || rc == -ESHUTDOWN ? -EIO : rc;
	}
	struct job *j = job_new(op, vm);
	j->timeout = timeout;
	j->force = force;
	j->intent_saved = true;
	if ((rc = jobs_submit(d, j)) < 0) {
		snprintf(err, errlen, "VM '%s': the daemon is stopping; the request resumes when it starts again", vm->name);
		return -ESHUTDOWN;
	}
	json_object *o = api_vm_json(vm);
	/* The state the request leads to (the VM may still finish a stop
	 * queued before it); "desired" says the same. */
	json_object_object_add(o, "state",
			       json_object_new_string(op == JOB_STOP ? (active(st) ? "stopping" : vm_state_name(st))
								     : "starting"));
	*out = o;
	return 0;
}

/* ---- pause, snapshots, resize (issue 11) ----
 * Short operations on one VM, run as jobs on its queue (behind whatever it
 * has queued) and answered once done. */

static unsigned ext_status(int err)
{
	switch (err) {
	case -ENOTSUP:
		return 501; /* the VM's backend has no such op */
	case -EBUSY:
	case -EEXIST:
	case -ECANCELED:
		return 409;
	case -ENOENT:
		return 404;
	case -EINVAL:
		return 400;
	case -ESHUTDOWN:
		return 503;
	}
	return 500;
}

/* A body of no fields but the allowed ones (NULL-terminated); NULL and an
 * answer sent otherwise. */
static json_object *strict_body(struct req *q, const char *const *allowed, enum MHD_Result *ret)
{
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err));
	if (!body) {
		*ret = send_error(q->conn, 400, "%s", err);
		return NULL;
	}
	json_object_object_foreach(body, k, val)
	{
		(void)val;
		bool ok = false;
		for (int i = 0; allowed && allowed[i]; i++)
			ok |= !strcmp(k, allowed[i]);
		if (!ok) {
			char clean[80];
			str_copy(clean, sizeof(clean), k);
			utf8_sanitize(clean);
			*ret = send_error(q->conn, 400, "%s: unknown field", clean);
			json_object_put(body);
			return NULL;
		}
	}
	return body;
}

/* Queues j (a reference the caller holds) and waits for it; false with
 * the answer sent when the VM is busy or the job failed. */
static bool run_waited(struct api *a, struct req *q, struct cvmm_vm *vm, struct job *j,
		       enum MHD_Result *ret)
{
	vm_lock(vm);
	const char *busy = busy_reason(vm);
	vm_unlock(vm);
	if (busy) {
		*ret = send_error(q->conn, 409, "VM '%s' %s", vm->name, busy);
		return false;
	}
	job_ref(j);
	jobs_submit(a->d, j);
	job_wait(a->d, j);
	if (j->result < 0) {
		unsigned st = ext_status(j->result);
		char msg[1200], named[80];
		/* Most messages of these ops name the VM already. */
		snprintf(named, sizeof(named), "VM '%s'", vm->name);
		snprintf(msg, sizeof(msg), "%s%s%s", strncmp(j->err, named, strlen(named)) ? named : "",
			 strncmp(j->err, named, strlen(named)) ? ": " : "", j->err);
		*ret = send_json(q->conn, st, error_obj(code_for(st), msg));
		return false;
	}
	return true;
}

static enum MHD_Result vm_pause(struct api *a, struct req *q, struct cvmm_vm *vm, bool pause)
{
	enum MHD_Result ret = MHD_YES;
	json_object *body = strict_body(q, NULL, &ret);
	if (!body)
		return ret;
	json_object_put(body);
	struct job *j = job_new(pause ? JOB_PAUSE : JOB_RESUME, vm);
	if (run_waited(a, q, vm, j, &ret))
		ret = send_json(q->conn, 200, api_vm_json(vm));
	job_unref(j);
	return ret;
}

static enum MHD_Result vm_resize(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	static const char *const keys[] = {"disk_gb", NULL};
	enum MHD_Result ret = MHD_YES;
	json_object *body = strict_body(q, keys, &ret), *v;
	if (!body)
		return ret;
	if (!json_object_object_get_ex(body, "disk_gb", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
	    json_object_get_int64(v) > 65536) {
		json_object_put(body);
		return send_error(q->conn, 400, "disk_gb: required, an integer from 1 to 65536");
	}
	struct job *j = job_new(JOB_RESIZE, vm);
	j->disk_gb = (uint32_t)json_object_get_int64(v);
	json_object_put(body);
	if (run_waited(a, q, vm, j, &ret))
		ret = send_json(q->conn, 200, api_vm_json(vm));
	job_unref(j);
	return ret;
}

#define SNAP_LIST_MAX (256 * 1024)

/* The VM's snapshots as the backend lists them: a JSON array, or NULL with
 * the answer sent. */
static json_object *snapshot_list(struct api *a, struct req *q, struct cvmm_vm *vm,
				  enum MHD_Result *ret)
{
	struct job *j = job_new(JOB_SNAPSHOT, vm);
	j->snap_op = CVMM_SNAP_LIST;
	j->out = xzalloc(SNAP_LIST_MAX);
	j->out_len = SNAP_LIST_MAX;
	json_object *list = NULL;
	if (run_waited(a, q, vm, j, ret)) {
		list = json_tokener_parse(j->out);
		if (!json_object_is_type(list, json_type_array)) {
			json_object_put(list);
			list = NULL;
			*ret = send_error(q->conn, 500, "VM '%s': backend '%s' listed its snapshots in a form "
					  "that is not a JSON array",
					  vm->name, vm->backend);
		}
	}
	free(j->out);
	j->out = NULL;
	job_unref(j);
	return list;
}

/* /v1/vms/{id}/snapshots[/{name}[/revert]] */
static enum MHD_Result vm_snapshots(struct api *a, struct req *q, struct cvmm_vm *vm,
				    const char *rest, const char *url, const char *method)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
	     del = !strcmp(method, "DELETE");
	enum MHD_Result ret = MHD_YES;
	char name[80] = "";
	uint32_t op;
	if (!*rest) {
		if (get) {
			json_object *list = snapshot_list(a, q, vm, &ret);
			if (!list)
				return ret;
			json_object *o = json_object_new_object();
			json_object_object_add(o, "snapshots", list);
			return send_json(q->conn, 200, o);
		}
		if (!post)
			return send_error(q->conn, 405, "%s %s: use GET or POST", method, url);
		static const char *const keys[] = {"name", NULL};
		json_object *body = strict_body(q, keys, &ret), *v;
		if (!body)
			return ret;
		if (json_object_object_get_ex(body, "name", &v) &&
		    json_object_is_type(v, json_type_string) &&
		    (size_t)json_object_get_string_len(v) < sizeof(name))
			str_copy(name, sizeof(name), json_object_get_string(v));
		json_object_put(body);
		op = CVMM_SNAP_CREATE;
	} else {
		const char *slash = strchr(rest, '/');
		size_t nl = slash ? (size_t)(slash - rest) : strlen(rest);
		if (nl < sizeof(name)) {
			memcpy(name, rest, nl);
			name[nl] = 0;
		}
		if (!slash) {
			if (!del)
				return send_error(q->conn, 405, "%s %s: use DELETE", method, url);
			op = CVMM_SNAP_DELETE;
		} else if (!strcmp(slash, "/revert")) {
			if (!post)
				return send_error(q->conn, 405, "%s %s: use POST", method, url);
			op = CVMM_SNAP_REVERT;
		} else {
			return send_error(q->conn, 404, "no such endpoint: %s", url);
		}
		json_object *body = strict_body(q, NULL, &ret);
		if (!body)
			return ret;
		json_object_put(body);
	}
	if (!vm_snapshot_name_valid(name)) {
		utf8_sanitize(name);
		return send_error(q->conn, 400,
				  "name: a snapshot name is 1-64 characters of [A-Za-z0-9._-] starting "
				  "with a letter or digit, got '%s'",
				  name);
	}
	struct job *j = job_new(JOB_SNAPSHOT, vm);
	j->snap_op = op;
	str_copy(j->snap_name, sizeof(j->snap_name), name);
	if (run_waited(a, q, vm, j, &ret)) {
		json_object *o = json_object_new_object();
		const char *key = op == CVMM_SNAP_CREATE ? "created"
				  : op == CVMM_SNAP_REVERT ? "reverted"
							   : "deleted";
		json_object_object_add(o, key, json_object_new_string(name));
		ret = send_json(q->conn, op == CVMM_SNAP_CREATE ? 201 : 200, o);
	}
	job_unref(j);
	return ret;
}

/* The routes of this block, or NULL when sub is none of them. */
static bool route_vm_ext(struct api *a, struct req *q, struct cvmm_vm *vm, const char *sub,
			 const char *url, const char *method, enum MHD_Result *ret)
{
	bool post = !strcmp(method, "POST");
	if (!strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "resize")) {
		if (!post)
			*ret = send_error(q->conn, 405, "%s %s: use POST", method, url);
		else if (!strcmp(sub, "resize"))
			*ret = vm_resize(a, q, vm);
		else
			*ret = vm_pause(a, q, vm, !strcmp(sub, "pause"));
		return true;
	}
	if (!strcmp(sub, "snapshots")) {
		*ret = vm_snapshots(a, q, vm, "", url, method);
		return true;
	}
	if (!strncmp(sub, "snapshots/", 10)) {
		*ret = vm_snapshots(a, q, vm, sub + 10, url, method);
		return true;
	}
	return false;
}

/* ---- logs ---- */

static bool vm_still_live(struct cvmm_vm *vm)
{
	vm_lock(vm);
	bool live = !vm->gone && (active(vm->state) || (vm->want_running && vm->state != VM_FAILED));
	vm_unlock(vm);
	return live;
}

/* The client of a parked stream went away (or broke the protocol by
 * sending more): its socket reads as closed, or hangs up. */
static bool client_gone(int fd, int wait_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	int n = poll(&p, 1, wait_ms);
	if (n <= 0)
		return false;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
		return true;
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
}

/* Runs on the connection's own thread: it may wait. */
static ssize_t log_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *q = cls;
	struct api *a = q->api;
	if (q->head_off < q->head_len) {
		size_t n = q->head_len - q->head_off < max ? q->head_len - q->head_off : max;
		memcpy(buf, q->head + q->head_off, n);
		q->head_off += n;
		return (ssize_t)n;
	}
	if (!q->follow)
		return MHD_CONTENT_READER_END_OF_STREAM;
	for (int round = 0; round < 8; round++) {
		int fd = open(q->log_path, O_RDONLY | O_CLOEXEC);
		ssize_t n = 0;
		if (fd >= 0) {
			struct stat st;
			if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < q->offset)
				q->offset = 0; /* rotated */
			n = pread(fd, buf, max, (off_t)q->offset);
			close(fd);
		}
		if (n > 0) {
			q->offset += (uint64_t)n;
			return n;
		}
		if (a->closing || !vm_still_live(q->vm))
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* Nothing new: wait a little, noticing at once a client that left. */
		if (client_gone(q->fd, 125))
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return 0; /* MHD calls again */
}

/* Appends up to the last `lines` lines (0: everything) of path to buf. */
static void read_tail(const char *path, char **buf, size_t *len, size_t lines, uint64_t *size)
{
	char *text = NULL;
	size_t tl = 0;
	if (read_file(path, &text, &tl, 64 << 20) < 0)
		return;
	if (size)
		*size = tl;
	size_t start = 0;
	if (lines) {
		size_t seen = 0;
		for (size_t i = tl; i > 0; i--)
			if (text[i - 1] == '\n' && i != tl && ++seen == lines) {
				start = i;
				break;
			}
	}
	*buf = realloc(*buf, *len + (tl - start) + 1);
	memcpy(*buf + *len, text + start, tl - start);
	*len += tl - start;
	free(text);
}

static size_t count_lines(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

static enum MHD_Result vm_logs(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	const char *tail = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "tail");
	const char *follow = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "follow");
	long n = 0;
	if (tail) {
		char *end;
		n = strtol(tail, &end, 10);
		if (!*tail || *end || n < 0 || n > 1000000)
			return send_error(q->conn, 400, "tail: must be a number of lines from 0 to 1000000");
	}
	q->follow = follow && (!strcmp(follow, "1") || !strcmp(follow, "true"));
	if (q->follow) {
		pthread_mutex_lock(&a->mu);
		bool full = a->n_followers >= API_MAX_FOLLOWERS;
		if (!full)
			a->n_followers++;
		pthread_mutex_unlock(&a->mu);
		if (full)
			return send_error(q->conn, 503,
					  "too many log followers (%d): try again later", API_MAX_FOLLOWERS);
		q->follower = true;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		q->fd = ci ? ci->connect_fd : -1;
	}
	q->vm = vm_ref(vm);
	snprintf(q->log_path, sizeof(q->log_path), "%s/console.log", vm->data_dir);
	char old[620];
	snprintf(old, sizeof(old), "%s.0", q->log_path);
	/* Current file first to learn its size; the rotated half goes before it. */
	char *cur = NULL, *prev = NULL;
	size_t cur_len = 0, prev_len = 0;
	read_tail(q->log_path, &cur, &cur_len, (size_t)n, &q->offset);
	if (!n || count_lines(cur, cur_len) < (size_t)n)
		read_tail(old, &prev, &prev_len, n ? (size_t)n - count_lines(cur, cur_len) : 0, NULL);
	q->head = xzalloc(prev_len + cur_len + 1);
	if (prev_len)
		memcpy(q->head, prev, prev_len);
	if (cur_len)
		memcpy(q->head + prev_len, cur, cur_len);
	q->head_len = prev_len + cur_len;
	free(cur);
	free(prev);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								   log_reader, q, NULL);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(q->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- console: an upgraded connection ---- */

#define CONSOLE_PROTOCOL "cvmm-console"

/* A console session holds its connection for as long as it likes: out of
 * the idle sweep and the header-wait count for good. */
static void conn_upgraded(struct api *a, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&a->mu);
	if (!k->in_request)
		a->n_waiting--;
	k->in_request = true;
	k->upgraded = true;
	pthread_mutex_unlock(&a->mu);
}

static void console_close(void *urh)
{
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* On the connection's thread, once the 101 went out: the socket (or, over
 * TLS, MHD's end of a socket pair it encrypts for us) is the console's. */
static void console_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
			     const char *extra_in, size_t extra_in_size, MHD_socket sock,
			     struct MHD_UpgradeResponseHandle *urh)
{
	struct req *q = cls;
	/* Bytes sent before the 101 arrived are dropped: a client starts
	 * typing once it has read the answer. */
	(void)extra_in;
	(void)extra_in_size;
	conn_upgraded(q->api, connection);
	console_attach(q->console, sock, console_close, urh);
}

static bool header_has(struct MHD_Connection *c, const char *key, const char *token)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, key);
	return v && strcasestr(v, token);
}

static enum MHD_Result vm_console(struct api *a, struct req *q, struct cvmm_vm *vm)
{
	const char *ro = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "readonly");
	bool writer = !(ro && (!strcmp(ro, "1") || !strcmp(ro, "true")));
	char err[512], sock[600], name[128], id[64];
	/* A browser's console pane: the same session in WebSocket frames. */
	bool ws = header_has(q->conn, "Upgrade", "websocket");
	char accept[WS_ACCEPT_LEN + 1];

	if (!header_has(q->conn, "Connection", "upgrade") ||
	    (!ws && !header_has(q->conn, "Upgrade", CONSOLE_PROTOCOL)))
		return send_error(q->conn, 400,
				  "the console is an upgraded connection: send \"Connection: Upgrade\" "
				  "and \"Upgrade: " CONSOLE_PROTOCOL "\" (cvmm console VM does), or "
				  "\"Upgrade: websocket\"");
	if (ws) {
		const char *ver = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
							      "Sec-WebSocket-Version");
		if (!ver || strcmp(ver, "13"))
			return send_error(q->conn, 400, "Sec-WebSocket-Version: only 13 is supported");
		if (ws_accept_key(MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
							      "Sec-WebSocket-Key"), accept) < 0)
			return send_error(q->conn, 400, "Sec-WebSocket-Key: expected 16 bytes in base64");
	}
	vm_lock(vm);
	enum vm_state st = vm->state;
	bool gone = vm->gone;
	str_copy(name, sizeof(name), vm->name);
	str_copy(id, sizeof(id), vm->id);
	snprintf(sock, sizeof(sock), "%s/console.sock", vm->run_dir);
	vm_unlock(vm);
	if (gone || (st != VM_RUNNING && st != VM_PAUSED)) /* paused: QEMU and its socket are there */
		return send_error(q->conn, 409, "VM '%s' is not running (state %s): its console "
				  "exists while it runs (cvmm logs VM shows what it printed)",
				  name, vm_state_name(st));
	pthread_mutex_lock(&a->mu);
	bool full = a->n_followers >= API_MAX_FOLLOWERS;
	if (!full)
		a->n_followers++;
	pthread_mutex_unlock(&a->mu);
	if (full)
		return send_error(q->conn, 503, "too many log followers and console clients (%d): "
				  "try again later", API_MAX_FOLLOWERS);
	q->follower = true;
	int r = console_reserve(a->consoles, id, sock, writer, &q->console, err, sizeof(err));
	if (r == -EBUSY)
		return send_error(q->conn, 409, "VM '%s': %s", name, err);
	if (r == -ENOENT)
		return send_error(q->conn, 409, "VM '%s' has no console socket (%s); a VM started "
				  "before cvmm had interactive consoles gets one at its next start",
				  name, err);
	if (r < 0)
		return send_error(q->conn, status_for(r), "VM '%s': console: %s", name, err);
	if (ws && console_websocket(q->console) < 0)
		return send_error(q->conn, 500, "VM '%s': console: out of memory", name);
	/* The session may stay quiet for hours. */
	MHD_set_connection_option(q->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
	struct MHD_Response *resp = MHD_create_response_for_upgrade(console_upgraded, q);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, ws ? "websocket" : CONSOLE_PROTOCOL);
	if (ws)
		MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	enum MHD_Result ret = MHD_queue_response(q->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- live events (GET /v1/events) and metrics (GET /metrics) ---- */

static int header_value(struct MHD_Connection *c, const char *key, const char **out);

/* Runs on the connection's own thread: it waits for events, 250 ms at a
 * time, noticing between waits a client that left or a daemon that stops.
 * The ring never waits for it (events.c): a reader that falls behind is
 * told what it lost. */
static ssize_t events_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *q = cls;
	for (;;) {
		pthread_mutex_lock(&q->api->mu);
		bool closing = q->api->closing;
		pthread_mutex_unlock(&q->api->mu);
		if (closing)
			return MHD_CONTENT_READER_END_OF_STREAM;
		size_t n = events_sub_read(q->sub, buf, max, 250);
		if (n)
			return (ssize_t)n;
		if (client_gone(q->fd, 0))
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
}

static enum MHD_Result events_stream(struct api *a, struct req *q)
{
	const char *last = NULL, *vm, *type;
	if (header_value(q->conn, "Last-Event-ID", &last) < 0)
		return send_error(q->conn, 400, "Last-Event-ID: must not hold a NUL byte");
	if (!last || !*last)
		last = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "last_event_id");
	vm = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "vm");
	type = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "type");
	char err[256];
	if (events_sub_new(a->d->events, last && *last ? last : NULL, vm && *vm ? vm : NULL,
			   type && *type ? type : NULL, &q->sub, err, sizeof(err)) < 0)
		return send_error(q->conn, 400, "%s", err);
	/* One class with the log followers: both park a thread each. */
	pthread_mutex_lock(&a->mu);
	bool full = a->n_followers >= API_MAX_FOLLOWERS;
	if (!full)
		a->n_followers++;
	pthread_mutex_unlock(&a->mu);
	if (full)
		return send_error(q->conn, 503, "too many followers (%d): try again later",
				  API_MAX_FOLLOWERS);
	q->follower = true;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	q->fd = ci ? ci->connect_fd : -1;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768,
								   events_reader, q, NULL);
	MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	enum MHD_Result ret = MHD_queue_response(q->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result route_live(struct api *a, struct req *q, const char *url, const char *method)
{
	if (strcmp(method, "GET"))
		return send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(url, "/v1/events"))
		return events_stream(a, q);
	size_t len;
	char *text = metrics_render(a->d, &len);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(q->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- dispatch ---- */

static enum MHD_Result route_vm(struct api *a, struct req *q, struct cvmm_vm *vm, const char *sub,
				const char *url, const char *method)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
	     del = !strcmp(method, "DELETE");
	if (!*sub) {
		if (get)
			return send_json(q->conn, 200, api_vm_json(vm));
		if (del)
			return vm_remove(a, q, vm);
		return send_error(q->conn, 405, "%s %s: use GET or DELETE", method, url);
	}
	if (!strcmp(sub, "events"))
		return get ? send_json(q->conn, 200, vm_events_json(vm, VM_EVENTS_KEPT))
			   : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(sub, "logs"))
		return get ? vm_logs(a, q, vm) : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(sub, "console"))
		return get ? vm_console(a, q, vm)
			   : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(sub, "start") || !strcmp(sub, "stop") || !strcmp(sub, "restart") ||
	    !strcmp(sub, "kill"))
		return post ? vm_action(a, q, vm, sub)
			    : send_error(q->conn, 405, "%s %s: use POST", method, url);
	struct reg_route *rt = registry_vm_route(a->d->reg, method, sub);
	if (rt)
		return plugin_route(a, q, rt, vm);
	enum MHD_Result ext;
	if (route_vm_ext(a, q, vm, sub, url, method, &ext))
		return ext;
	return send_error(q->conn, 404, "no such endpoint: %s", url);
}

/* ---- images: import and removal (issue 9) ----
 * On the request thread: an import copies a disk file (seconds), which the
 * loop thread must never do. */

static enum MHD_Result image_import_req(struct api *a, struct req *q)
{
	char err[1024];
	json_object *body = parse_body(q, err, sizeof(err));
	if (!body)
		return send_error(q->conn, 400, "%s", err);
	const char *name = NULL, *file = NULL, *firmware = NULL;
	bool cloud_init = false;
	int r = 0;
	json_object_object_foreach(body, k, val)
	{
		if (!strcmp(k, "name") && json_object_is_type(val, json_type_string))
			name = json_object_get_string(val);
		else if (!strcmp(k, "file") && json_object_is_type(val, json_type_string))
			file = json_object_get_string(val);
		else if (!strcmp(k, "firmware") && json_object_is_type(val, json_type_string))
			firmware = json_object_get_string(val);
		else if (!strcmp(k, "cloud_init") && json_object_is_type(val, json_type_boolean))
			cloud_init = json_object_get_boolean(val);
		else {
			snprintf(err, sizeof(err),
				 "%s: unknown field or wrong type (name, file, firmware: strings; "
				 "cloud_init: boolean)",
				 k);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && (!name || !file)) {
		snprintf(err, sizeof(err), "name and file are required");
		r = -EINVAL;
	}
	if (r == 0)
		r = image_import(a->d->cfg->image_path, name, file, firmware, cloud_init, err,
				 sizeof(err));
	enum MHD_Result ret;
	if (r < 0) {
		ret = send_error(q->conn, r == -EEXIST ? 409 : r == -ENOENT ? 404 : 400, "%s", err);
	} else {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "imported", json_object_new_string(name));
		ret = send_json(q->conn, 201, o);
	}
	json_object_put(body);
	return ret;
}

static enum MHD_Result image_remove_req(struct api *a, struct req *q, const char *name)
{
	struct cvmm_daemon *d = a->d;
	char users[512] = "", err[1024];
	int n = 0;
	/* Every VM made from it overlays its disk (or boots its kernel). An
	 * image created from in the moment between this check and the
	 * rename fails its start with "no image". */
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->n_vms; i++) {
		struct cvmm_vm *vm = d->vms[i];
		if (strcmp(vm->image, name))
			continue;
		size_t l = strlen(users);
		if (n++ < 8 && l < sizeof(users))
			snprintf(users + l, sizeof(users) - l, "%s'%s'", l ? ", " : "", vm->name);
	}
	pthread_mutex_unlock(&d->lock);
	if (n)
		return send_error(q->conn, 409, "image '%s' is the base of %d VM%s (%s%s): remove them first",
				  name, n, n == 1 ? "" : "s", users, n > 8 ? ", ..." : "");
	int r = image_remove(d->cfg->image_path, name, err, sizeof(err));
	if (r < 0)
		return send_error(q->conn, r == -ENOENT ? 404 : r == -EINVAL ? 400 : 500, "%s", err);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "removed", json_object_new_string(name));
	return send_json(q->conn, 200, o);
}

static enum MHD_Result route(struct api *a, struct req *q, const char *url, const char *method)
{
	struct cvmm_daemon *d = a->d;
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	if (!strcmp(url, "/metrics") || !strcmp(url, "/v1/events"))
		return route_live(a, q, url, method);
	if (web_public(url, method)) /* the web console's files (core/web.c) */
		return web_serve(q->conn, url, method);
	if (strncmp(url, "/v1/", 4))
		return send_error(q->conn, 404, "no such endpoint: %s (the API lives under /v1)", url);
	const char *p = url + 4;
	if (!strcmp(p, "host"))
		return get ? send_json(q->conn, 200, host_json(d))
			   : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strcmp(p, "plugins")) {
		if (!get)
			return send_error(q->conn, 405, "%s %s: use GET", method, url);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "plugins", registry_plugins_json(d->reg));
		return send_json(q->conn, 200, o);
	}
	if (!strcmp(p, "images")) {
		if (post)
			return image_import_req(a, q);
		if (!get)
			return send_error(q->conn, 405, "%s %s: use GET or POST", method, url);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "images", image_list_json(d->cfg->image_path));
		return send_json(q->conn, 200, o);
	}
	/* GET /v1/host/check: the readiness report (core/check.c). It reads
	 * files and runs programs: fine here, on the connection's thread. */
	if (!strcmp(p, "host/check"))
		return get ? send_json(q->conn, 200, check_report(d, "/"))
			   : send_error(q->conn, 405, "%s %s: use GET", method, url);
	if (!strncmp(p, "images/", 7)) {
		if (strcmp(method, "DELETE"))
			return send_error(q->conn, 405, "%s %s: use DELETE", method, url);
		return image_remove_req(a, q, p + 7);
	}
	/* The API's description (doc/openapi.json, built in) and the list of
	 * routes it must cover (core/routes.c). */
	if (!strcmp(p, "openapi.json") || !strcmp(p, "routes")) {
		if (!get)
			return send_error(q->conn, 405, "%s %s: use GET", method, url);
		if (!strcmp(p, "routes"))
			return send_json(q->conn, 200, routes_json(d->reg));
		return send_text(q->conn, 200, "application/json", routes_openapi, routes_openapi_len);
	}
	struct reg_route *rt = registry_route(d->reg, method, p);
	if (rt)
		return plugin_route(a, q, rt, NULL);
	if (!strcmp(p, "vms") || !strcmp(p, "vms/")) {
		if (get)
			return send_vm_list(d, q->conn);
		if (post)
			return vm_create(a, q);
		return send_error(q->conn, 405, "%s %s: use GET or POST", method, url);
	}
	if (strncmp(p, "vms/", 4))
		return send_error(q->conn, 404, "no such endpoint: %s", url);
	char key[128];
	const char *rest = p + 4, *slash = strchr(rest, '/');
	size_t kl = slash ? (size_t)(slash - rest) : strlen(rest);
	if (kl == 0 || kl >= sizeof(key))
		return send_error(q->conn, 404, "no such VM");
	memcpy(key, rest, kl);
	key[kl] = 0;
	struct cvmm_vm *vm = daemon_get_vm(d, key);
	if (!vm)
		return send_error(q->conn, 404, "no VM with id or name '%s'", key);
	enum MHD_Result ret = route_vm(a, q, vm, slash ? slash + 1 : "", url, method);
	vm_unref(vm);
	return ret;
}

/* Header values are C strings to MHD's lookup: a NUL inside one would cut
 * it short, so the whole value's length must match. */
static int header_value(struct MHD_Connection *c, const char *key, const char **out)
{
	size_t vlen = 0;
	*out = NULL;
	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, key, strlen(key), out, &vlen) != MHD_YES)
		return 0;
	return *out && strlen(*out) == vlen ? 1 : -1;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	int *n = cls;
	if (key && !strcasecmp(key, "Content-Length"))
		(*n)++;
	return MHD_YES;
}

static void conn_mark(struct api *a, struct MHD_Connection *c, bool in_request)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&a->mu);
	if (!k->upgraded && k->in_request != in_request) {
		k->in_request = in_request;
		a->n_waiting += in_request ? -1 : 1;
		k->since = now_mono();
	}
	pthread_mutex_unlock(&a->mu);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	struct api *a = cls;
	struct req *q = *con_cls;
	if (!q) {
		q = xzalloc(sizeof(*q));
		q->api = a;
		q->conn = conn;
		q->fd = -1;
		q->t0 = now_mono();
		str_copy(q->path, sizeof(q->path), url);
		str_copy(q->method, sizeof(q->method), method);
		*con_cls = q;
		conn_mark(a, conn, true);
		/* Refuse early, before reading a body we will not use. */
		const char *auth;
		bool open = (a->d->cfg->metrics_public && !strcmp(url, "/metrics")) ||
			    web_public(url, method);
		if (!open && (header_value(conn, "Authorization", &auth) < 0 || !api_token_ok(a->d, auth)) &&
		    !web_query_token_ok(a->d, conn, url, method))
			return send_error(conn, 401,
					  "missing or wrong bearer token (Authorization: Bearer <token>)");
		int n_cl = 0;
		MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &n_cl);
		if (n_cl > 1)
			return send_error(conn, 400, "Content-Length: given more than once");
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY)
			return send_error(conn, 413, "body: larger than %d bytes", API_MAX_BODY);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!q->too_large && q->len + *upload_data_size <= API_MAX_BODY) {
			q->body = realloc(q->body, q->len + *upload_data_size + 1);
			memcpy(q->body + q->len, upload_data, *upload_data_size);
			q->len += *upload_data_size;
			q->body[q->len] = 0;
		} else {
			q->too_large = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->too_large)
		return send_error(conn, 413, "body: larger than %d bytes", API_MAX_BODY);
	return route(a, q, url, method);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct api *a = cls;
	struct req *q = *con_cls;
	conn_mark(a, conn, false); /* waits for its next request's headers */
	if (!q)
		return;
	const union MHD_ConnectionInfo *st = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	if (st && st->http_status) {
		char route[128];
		metrics_route(q->path, st->http_status, route, sizeof(route));
		metrics_request(a->d->metrics, q->method, route, st->http_status, now_mono() - q->t0);
	}
	events_sub_free(q->sub);
	if (q->follower) {
		pthread_mutex_lock(&a->mu);
		a->n_followers--;
		pthread_mutex_unlock(&a->mu);
	}
	console_release(q->console);
	vm_unref(q->vm);
	free(q->body);
	free(q->head);
	free(q);
	*con_cls = NULL;
}

/* ---- connection classes ---- */

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
			enum MHD_ConnectionNotificationCode code)
{
	struct api *a = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct conn *k = xzalloc(sizeof(*k));
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		k->fd = ci ? ci->connect_fd : -1;
		k->since = now_mono();
		pthread_mutex_lock(&a->mu);
		k->next = a->conns;
		if (a->conns)
			a->conns->prev = k;
		a->conns = k;
		a->n_conns++;
		a->n_waiting++;
		/* Too many that have not said who they are: the one that has
		 * waited longest goes (a slow client, most likely); a real client
		 * sends its headers at once and is served. */
		if (a->n_waiting > API_MAX_WAITING) {
			struct conn *old = NULL;
			for (struct conn *o = a->conns; o; o = o->next)
				if (!o->in_request && o->fd >= 0)
					old = o;
			if (old) {
				shutdown(old->fd, SHUT_RDWR);
				old->fd = -1;
			}
		}
		pthread_mutex_unlock(&a->mu);
		*socket_context = k;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn *k = *socket_context;
		if (!k)
			return;
		pthread_mutex_lock(&a->mu);
		if (k->prev)
			k->prev->next = k->next;
		else
			a->conns = k->next;
		if (k->next)
			k->next->prev = k->prev;
		a->n_conns--;
		if (!k->in_request)
			a->n_waiting--;
		pthread_mutex_unlock(&a->mu);
		free(k);
		*socket_context = NULL;
	}
}

/* Shuts connections that have not sent their headers in time (a slow
 * client holding a slot before authentication). shutdown() only: the
 * connection's thread sees the end and MHD closes it. */
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct api *a = w->data;
	double now = now_mono();
	pthread_mutex_lock(&a->mu);
	for (struct conn *k = a->conns; k; k = k->next)
		if (!k->in_request && k->fd >= 0 && now - k->since > API_HEADER_DEADLINE) {
			shutdown(k->fd, SHUT_RDWR);
			k->fd = -1; /* once */
		}
	pthread_mutex_unlock(&a->mu);
}

static int listen_unix(const char *path, const struct cvmm_config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "address: socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	char dir[sizeof(sa.sun_path)];
	str_copy(dir, sizeof(dir), path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir_p(dir, 0755);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A live daemon answers on the socket; a stale file from a crash does
	 * not. Nor does the socket of a daemon killed while one of its children
	 * was between fork and exec: the child holds the listening socket for a
	 * moment, so a connect succeeds, but the process that listened (the
	 * peer's credentials are the listener's) is gone. */
	int c = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (c == 0 || errno == EAGAIN) {
		struct ucred uc = {0};
		socklen_t ul = sizeof(uc);
		bool gone = c == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0 &&
			    uc.pid > 0 && uc.pid != getpid() && kill(uc.pid, 0) < 0 && errno == ESRCH;
		close(fd);
		if (!gone) {
			snprintf(err, errlen, "address: %s: another cvmmd is listening there", path);
			return -EADDRINUSE;
		}
		log_warn("address: %s: held only by a leftover child of a daemon that is gone "
			 "(pid %d): listening anew", path, (int)uc.pid);
	} else {
		close(fd);
	}
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, cfg->unix_sock_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		snprintf(err, errlen, "address: cannot listen on %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	/* libvirt's unix_sock_group: that group's members may use the API
	 * without being root (and without a token when auth is off). */
	if (cfg->unix_sock_gid >= 0 && chown(path, (uid_t)-1, (gid_t)cfg->unix_sock_gid) < 0) {
		int e = errno;
		snprintf(err, errlen, "cvm.unix_sock_group: cannot give %s to group %ld: %s", path,
		         cfg->unix_sock_gid, strerror(e));
		close(fd);
		unlink(path);
		return -e;
	}
	return fd;
}

static int listen_tcp(const char *spec, char *err, size_t errlen)
{
	char host[256];
	str_copy(host, sizeof(host), spec);
	char *colon = strrchr(host, ':');
	if (!colon) {
		snprintf(err, errlen, "address: tcp:%s: expected tcp:HOST:PORT", spec);
		return -EINVAL;
	}
	*colon = 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE},
			*res;
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = 0;
	}
	if (getaddrinfo(h, colon + 1, &hints, &res) != 0) {
		snprintf(err, errlen, "address: tcp:%s: not a numeric address and port", spec);
		return -EINVAL;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int r = fd < 0 ? -1 : bind(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (r < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		snprintf(err, errlen, "address: cannot listen on tcp:%s: %s", spec, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

/* Room for many connections: each is a thread and a descriptor. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 65536) {
		rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int api_open(struct cvmm_daemon *d, char *err, size_t errlen)
{
	struct api *a = xzalloc(sizeof(*a));
	a->d = d;
	pthread_mutex_init(&a->mu, NULL);
	const char *addr = d->cfg->address;
	if (!strncmp(addr, "unix:", 5)) {
		a->listen_fd = listen_unix(addr + 5, d->cfg, err, errlen);
		str_copy(a->sock_path, sizeof(a->sock_path), addr + 5);
	} else if (!strncmp(addr, "tcp:", 4)) {
		a->listen_fd = listen_tcp(addr + 4, err, errlen);
	} else {
		snprintf(err, errlen, "address: %s: expected unix:PATH or tcp:HOST:PORT", addr);
		a->listen_fd = -EINVAL;
	}
	if (a->listen_fd < 0) {
		int r = a->listen_fd;
		pthread_mutex_destroy(&a->mu);
		free(a);
		return r;
	}
	raise_fd_limit();
	/* The config refused certificates on a unix socket and plain TCP off
	 * loopback: TLS here is exactly "a certificate was configured". */
	bool tls = d->cfg->tls_cert_pem != NULL;
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "cvm.tls_cert: this libmicrohttpd was built without TLS");
		close(a->listen_fd);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return -ENOTSUP;
	}
	/* Blocking accepts on the listener are MHD's business from here. The
	 * two TLS options come last so that plain HTTP passes them as the
	 * end of the list (NULL tls: MHD_OPTION_END). */
	a->consoles = console_set_new();
	a->mhd = a->consoles ? MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
			MHD_ALLOW_UPGRADE | (tls ? MHD_USE_TLS : 0),
		0, NULL, NULL, handler, a, MHD_OPTION_LISTEN_SOCKET, a->listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, completed, a, MHD_OPTION_NOTIFY_CONNECTION, notify_conn, a,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_THREAD_STACK_SIZE,
		(size_t)(512 * 1024),
		tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, d->cfg->tls_cert_pem,
		MHD_OPTION_HTTPS_MEM_KEY, d->cfg->tls_key_pem, MHD_OPTION_END) : NULL;
	if (!a->mhd) {
		console_set_free(a->consoles);
		snprintf(err, errlen, "cannot start the HTTP server on %s%s", addr,
		         tls ? " with TLS (cvm.tls_cert, cvm.tls_key)" : "");
		close(a->listen_fd);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return -EIO;
	}
	ev_timer_init(&a->sweep, sweep_cb, 1., 1.);
	a->sweep.data = a;
	ev_timer_start(d->loop, &a->sweep);
	d->api = a;
	log_info("API listening on %s%s", addr, tls ? " (TLS)" : "");
	return 0;
}

void api_close(struct cvmm_daemon *d)
{
	struct api *a = d->api;
	if (!a)
		return;
	ev_timer_stop(d->loop, &a->sweep);
	pthread_mutex_lock(&a->mu);
	a->closing = true; /* log followers end their streams */
	for (struct conn *k = a->conns; k; k = k->next)
		if (!k->in_request && k->fd >= 0)
			shutdown(k->fd, SHUT_RDWR);
	pthread_mutex_unlock(&a->mu);
	/* Console sessions first: MHD cannot stop under upgraded connections. */
	console_set_close(a->consoles);
	MHD_stop_daemon(a->mhd);
	console_set_free(a->consoles);
	close(a->listen_fd);
	if (a->sock_path[0])
		unlink(a->sock_path);
	pthread_mutex_destroy(&a->mu);
	free(a);
	d->api = NULL;
}
