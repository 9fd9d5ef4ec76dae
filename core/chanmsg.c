/*
 * chanmsg: see chanmsg.h. Runs inside the unprivileged reader on bytes a
 * guest chose: every bound is checked before the work it limits, the parser
 * is json-c with a small nesting limit, and only the fields named below are
 * copied into the message the daemon reads.
 */
#include "chanmsg.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *const chanmsg_events[] = {
    "boot.progress", "boot.error", "shutdown.progress", "instance.info",
    "agent.hello",   "agent.heartbeat", "agent.config", NULL,
};

/* agent.heartbeat: these numbers and nothing else. */
static const char *const heartbeat_keys[] = {
    "uptime_s",     "mem_total_kb", "mem_avail_kb", "disk_total_kb", "disk_free_kb",
    "load1",        "load5",        "load15",       "seq",           NULL,
};
/* agent.hello: these short strings and nothing else. */
static const char *const hello_keys[] = {"version", "hostname", "host_name", "host_id", "sealing", NULL};

/* Requests without parameters that a plugin answers (chanmsg.h). */
const char *const chanmsg_plugin_calls[] = {"GetKmsConfig", "GetGatewayConfig", NULL};

#define DEPTH_MAX 6
#define ID_MAX ((int64_t)1 << 53)

static int refuse(char *why, size_t whylen, int err, const char *fmt, const char *arg)
{
	snprintf(why, whylen, fmt, arg ? arg : "");
	return err;
}

static bool in_list(const char *const *list, const char *s)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

static bool hex_ok(const char *s, size_t n)
{
	if (n == 0 || n % 2)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* The request id: absent is 0; else an integer in [0, 2^53]. */
static int get_id(json_object *o, int64_t *id, char *why, size_t whylen)
{
	json_object *v;
	*id = 0;
	if (!json_object_object_get_ex(o, "id", &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return refuse(why, whylen, -EINVAL, "id: must be an integer%s", NULL);
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (errno || n < 0 || n > ID_MAX)
		return refuse(why, whylen, -EINVAL, "id: out of range%s", NULL);
	*id = n;
	return 0;
}

/* A payload object with only the listed keys, each a number (nums) or a
 * string of at most 128 bytes: a fresh object, or NULL with why. */
static json_object *filtered(json_object *p, const char *const *keys, bool nums, char *why,
			     size_t whylen)
{
	json_object *out = json_object_new_object();
	json_object_object_foreach(p, k, v)
	{
		if (!in_list(keys, k))
			continue;
		if (nums) {
			if (json_object_is_type(v, json_type_int))
				json_object_object_add(out, k,
						       json_object_new_int64(json_object_get_int64(v)));
			else if (json_object_is_type(v, json_type_double))
				json_object_object_add(out, k,
						       json_object_new_double(json_object_get_double(v)));
			else
				goto bad;
		} else {
			if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 128)
				goto bad;
			json_object_object_add(out, k, json_object_new_string(json_object_get_string(v)));
		}
		continue;
	bad:
		refuse(why, whylen, 0, "payload.%s: wrong type or too long", k);
		json_object_put(out);
		return NULL;
	}
	return out;
}

static int notify(json_object *params, json_object *msg, char *why, size_t whylen)
{
	json_object *ev, *p;
	if (!params || !json_object_is_type(params, json_type_object))
		return refuse(why, whylen, -EINVAL, "params: must be an object%s", NULL);
	if (!json_object_object_get_ex(params, "event", &ev) || !json_object_is_type(ev, json_type_string))
		return refuse(why, whylen, -EINVAL, "params.event: must be a string%s", NULL);
	const char *e = json_object_get_string(ev);
	if (!in_list(chanmsg_events, e))
		return refuse(why, whylen, -EINVAL, "params.event: unknown event '%.64s'", e);
	json_object_object_add(msg, "event", json_object_new_string(e));
	json_object *out = NULL;
	if (!json_object_object_get_ex(params, "payload", &p) || json_object_is_type(p, json_type_null)) {
		out = json_object_new_string("");
	} else if (json_object_is_type(p, json_type_string)) {
		if (json_object_get_string_len(p) > 1024)
			return refuse(why, whylen, -EMSGSIZE, "params.payload: longer than 1024 bytes%s",
				      NULL);
		out = json_object_new_string(json_object_get_string(p));
	} else if (json_object_is_type(p, json_type_object)) {
		if (!strcmp(e, "agent.heartbeat"))
			out = filtered(p, heartbeat_keys, true, why, whylen);
		else if (!strcmp(e, "agent.hello"))
			out = filtered(p, hello_keys, false, why, whylen);
		else if (!strcmp(e, "instance.info"))
			out = json_object_get(p); /* re-serialized below, bounded */
		else
			return refuse(why, whylen, -EINVAL, "params.payload: must be a string for %s", e);
		if (!out)
			return -EINVAL;
	} else {
		return refuse(why, whylen, -EINVAL, "params.payload: must be a string or an object%s",
			      NULL);
	}
	size_t n = 0;
	json_object_to_json_string_length(out, JSON_C_TO_STRING_PLAIN, &n);
	json_object_object_add(msg, "payload", out);
	if (n > CHAN_PAYLOAD_MAX)
		return refuse(why, whylen, -EMSGSIZE, "params.payload: longer than 3072 bytes%s", NULL);
	return 0;
}

int chanmsg_validate(const char *line, size_t len, char *out, size_t outlen, char *why,
		     size_t whylen)
{
	int rc;
	json_object *o = NULL, *msg = NULL, *m, *params = NULL;
	why[0] = 0;
	if (len > CHAN_QUOTE_MAX)
		return refuse(why, whylen, -EMSGSIZE, "message longer than 1 MiB%s", NULL);
	if (memchr(line, 0, len))
		return refuse(why, whylen, -EINVAL, "NUL byte in the message%s", NULL);
	json_tokener *tok = json_tokener_new_ex(DEPTH_MAX);
	if (!tok)
		return refuse(why, whylen, -ENOMEM, "out of memory%s", NULL);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error te = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || te != json_tokener_success) {
		rc = refuse(why, whylen, -EINVAL, "not JSON: %s",
			    te == json_tokener_continue ? "incomplete" : json_tokener_error_desc(te));
		goto out;
	}
	for (; used < len; used++)
		if (line[used] != ' ' && line[used] != '\t' && line[used] != '\r') {
			rc = refuse(why, whylen, -EINVAL, "trailing bytes after the object%s", NULL);
			goto out;
		}
	if (!json_object_is_type(o, json_type_object)) {
		rc = refuse(why, whylen, -EINVAL, "not a JSON object%s", NULL);
		goto out;
	}
	if (!json_object_object_get_ex(o, "method", &m) || !json_object_is_type(m, json_type_string)) {
		rc = refuse(why, whylen, -EINVAL, "method: must be a string%s", NULL);
		goto out;
	}
	const char *method = json_object_get_string(m);
	json_object_object_get_ex(o, "params", &params);
	bool quote = !strcmp(method, "GetSealingKey");
	if (!quote && len > CHAN_NOTIFY_MAX) {
		rc = refuse(why, whylen, -EMSGSIZE, "message longer than 4 KiB%s", NULL);
		goto out;
	}
	int64_t id;
	if ((rc = get_id(o, &id, why, whylen)) < 0)
		goto out;
	msg = json_object_new_object();
	if (!strcmp(method, "Info")) {
		json_object_object_add(msg, "m", json_object_new_string("Info"));
		json_object_object_add(msg, "id", json_object_new_int64(id));
	} else if (!strcmp(method, "Notify")) {
		json_object_object_add(msg, "m", json_object_new_string("Notify"));
		if ((rc = notify(params, msg, why, whylen)) < 0)
			goto out;
	} else if (quote) {
		json_object *q;
		if (!params || !json_object_is_type(params, json_type_object) ||
		    !json_object_object_get_ex(params, "quote", &q) ||
		    !json_object_is_type(q, json_type_string) ||
		    !hex_ok(json_object_get_string(q), (size_t)json_object_get_string_len(q))) {
			rc = refuse(why, whylen, -EINVAL, "params.quote: must be a hex string%s", NULL);
			goto out;
		}
		json_object_object_add(msg, "m", json_object_new_string("GetSealingKey"));
		json_object_object_add(msg, "id", json_object_new_int64(id));
		json_object_object_add(msg, "quote", json_object_get(q));
	} else if (in_list(chanmsg_plugin_calls, method)) {
		/* Nothing of the guest's is passed on but the request id: a
		 * VM id or name in its params or beside them names nothing,
		 * the answer is always about the channel's VM. */
		json_object_object_add(msg, "m", json_object_new_string(method));
		json_object_object_add(msg, "id", json_object_new_int64(id));
	} else {
		rc = refuse(why, whylen, -EINVAL, "method: unknown method '%.64s'", method);
		goto out;
	}
	size_t n = 0;
	const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &n);
	if (n + 1 > outlen) {
		rc = refuse(why, whylen, -ENOSPC, "message too large to pass on%s", NULL);
		goto out;
	}
	memcpy(out, text, n + 1);
	rc = (int)n;
out:
	json_object_put(msg);
	json_object_put(o);
	return rc;
}
