/*
 * kms: the KMS side of a confidential VM, as dstack's VMM has it.
 *
 *   - kms_urls: the host's default (plugin.kms.urls) and the VM's own
 *     (create field "kms_urls"; a non-empty list on the VM wins), given to
 *     the guest (guest call GetKmsConfig) with its app_id and encrypted env;
 *   - the app's env-encryption public key, fetched from the KMS with
 *     dstack's RPC (POST {kms_url}/prpc/GetAppEnvEncryptPubKey?json,
 *     {"app_id": "<hex>"}) and accepted only when its secp256k1 signature
 *     recovers a signer listed in plugin.kms.trusted_signers:
 *     GET /v1/vms/{id}/env-pubkey (the VM's app_id and KMS) and
 *     POST /v1/kms/env-pubkey {"app_id", "kms_urls"?} (before a create:
 *     `cvmm create --env-file` encrypts against it);
 *   - create fields "app_id" (20 bytes, hex) and "encrypted_env" (hex of
 *     dstack's ephemeral_pk || iv || AES-256-GCM ciphertext): the daemon
 *     only ever holds the ciphertext.
 *
 * plugin.kms:
 *   urls = [ "https://kms.example:8000" ];   # host default
 *   trusted_signers = [ "0x<40 hex address>" or "0x<66 hex compressed key>" ];
 *   timeout_ms = 10000;                      # per KMS request
 *   signature_max_age = 300;   # s; a timestamped (v1) signature older than
 *                              # this is refused (0: any age)
 *   signature_max_skew = 60;   # s; one dated further ahead is refused
 *   guest_calls_route = false;               # test route, see below
 *
 * The guest asks GetKmsConfig over the guest channel (the VM is always the
 * channel's); with guest_calls_route, GET /v1/vms/{id}/guest-kms-config
 * answers the same (tests). kms_urls also reach the guest in its
 * sys-config document (sysconfig.h, fw_cfg opt/cvmm/sys-config.json).
 */
#include "guest_call.h"
#include "kms_http.h"
#include "kms_sig.h"
#include "sysconfig.h"

#include <cvmm/plugin.h>
#include <json-c/json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_URLS 8
#define MAX_TRUSTED 32
#define URL_MAX 256
#define ENV_MAX_HEX 49152 /* the create body is at most 64 KiB */
#define ANSWER_MAX 65536

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
static const char *urls[MAX_URLS];
static int n_urls;
static const char *trusted[MAX_TRUSTED];
static int n_trusted;
static long timeout_ms = 10000;
static int64_t sig_max_age = KMS_SIG_MAX_AGE_DEFAULT, sig_max_skew = KMS_SIG_MAX_SKEW_DEFAULT;

/* ---- values ---- */

static int url_ok(const char *u)
{
	size_t l = strlen(u);
	if (l == 0 || l > URL_MAX || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)))
		return 0;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return 0;
	return 1;
}

/* A JSON list of URLs (the field's text) into out (pointers into o). */
static int urls_from_json(json_object *o, const char **out, int *n, char *err, size_t errlen)
{
	*n = 0;
	if (!json_object_is_type(o, json_type_array)) {
		snprintf(err, errlen, "kms_urls: must be a list of URLs");
		return -EINVAL;
	}
	size_t len = json_object_array_length(o);
	if (len > MAX_URLS) {
		snprintf(err, errlen, "kms_urls: at most %d URLs", MAX_URLS);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		json_object *v = json_object_array_get_idx(o, i);
		if (!json_object_is_type(v, json_type_string) || !url_ok(json_object_get_string(v))) {
			snprintf(err, errlen,
				 "kms_urls[%zu]: must be an http:// or https:// URL of at most %d "
				 "bytes",
				 i, URL_MAX);
			return -EINVAL;
		}
		out[(*n)++] = json_object_get_string(v);
	}
	return 0;
}

static int v_kms_urls(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	const char *u[MAX_URLS];
	int n;
	json_object *o = json_tokener_parse(json);
	int r = urls_from_json(o, u, &n, err, errlen);
	json_object_put(o);
	return r;
}

static int app_id_from(const char *hex, uint8_t out[20], const char *field, char *err, size_t errlen)
{
	if (kms_hex_decode(hex, out, 20) != 20) {
		snprintf(err, errlen, "%s: must be 40 hex digits (20 bytes)", field);
		return -EINVAL;
	}
	return 0;
}

static int v_app_id(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	uint8_t id[20];
	json_object *o = json_tokener_parse(json);
	int r = -EINVAL;
	if (json_object_is_type(o, json_type_string))
		r = app_id_from(json_object_get_string(o), id, "app_id", err, errlen);
	else
		snprintf(err, errlen, "app_id: must be 40 hex digits (20 bytes)");
	json_object_put(o);
	return r;
}

static int v_encrypted_env(void *data, const char *json, char *err, size_t errlen)
{
	(void)data;
	json_object *o = json_tokener_parse(json);
	int r = -EINVAL;
	const char *s = json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
	size_t l = s ? strlen(s) : 0;
	uint8_t b[64];
	/* Only the form is checked: the daemon cannot (and must not) read it. */
	if (!s || l % 2 || l > ENV_MAX_HEX || l < 2 * (32 + 12 + 16))
		snprintf(err, errlen,
			 "encrypted_env: must be hex of ephemeral key (32 bytes) || iv (12) || "
			 "AES-GCM ciphertext and tag (>= 16), at most %d hex digits",
			 ENV_MAX_HEX);
	else if (kms_hex_decode(s + l - 64, b, sizeof(b)) < 0 ||
		 strspn(s, "0123456789abcdefABCDEF") != l)
		snprintf(err, errlen, "encrypted_env: not hex");
	else
		r = 0;
	json_object_put(o);
	return r;
}

/* The VM's KMS URLs (its own when non-empty, else the host's). */
static json_object *vm_urls(cvmm_vm *vm, const char **out, int *n, int *own)
{
	const char *t = host->vm_request_field(vm, "kms_urls");
	json_object *o = t ? json_tokener_parse(t) : NULL;
	char err[128];
	*own = 0;
	if (o && urls_from_json(o, out, n, err, sizeof(err)) == 0 && *n > 0) {
		*own = 1;
		return o;
	}
	json_object_put(o);
	for (*n = 0; *n < n_urls; (*n)++)
		out[*n] = urls[*n];
	return NULL;
}

static const char *vm_string_field(cvmm_vm *vm, const char *field, json_object **hold)
{
	const char *t = host->vm_request_field(vm, field);
	*hold = t ? json_tokener_parse(t) : NULL;
	return json_object_is_type(*hold, json_type_string) ? json_object_get_string(*hold) : NULL;
}

/* ---- the public key ---- */

static int fetch_pubkey(const uint8_t app_id[20], const char *const *u, int n, char *buf,
			size_t len, char *err, size_t errlen)
{
	char hex[41], body[96], url[URL_MAX + 64];
	int r = -ENOENT;
	kms_hex_encode(app_id, 20, hex);
	snprintf(body, sizeof(body), "{\"app_id\":\"%s\"}", hex);
	if (n == 0) {
		snprintf(err, errlen, "no KMS: set plugin.kms.urls or the VM's kms_urls");
		return -ENOENT;
	}
	if (n_trusted == 0) {
		snprintf(err, errlen,
			 "plugin.kms.trusted_signers is empty: no KMS key can be trusted");
		return -EBADMSG;
	}
	for (int i = 0; i < n; i++) {
		char *answer = NULL;
		long status;
		struct kms_answer a;
		struct kms_signer s;
		size_t ul = strlen(u[i]);
		while (ul && u[i][ul - 1] == '/')
			ul--;
		snprintf(url, sizeof(url), "%.*s/prpc/GetAppEnvEncryptPubKey?json", (int)ul, u[i]);
		r = http_call("POST", url, body, timeout_ms, ANSWER_MAX, &answer, &status, err, errlen);
		if (r == 0) {
			char why[512];
			r = kms_parse_answer(answer, &a, why, sizeof(why));
			if (r == 0)
				r = kms_check(&a, app_id, 20, trusted, n_trusted, &s, why, sizeof(why));
			if (r == 0)
				r = kms_check_fresh(&a, &s, (uint64_t)time(NULL), (uint64_t)sig_max_age,
						    (uint64_t)sig_max_skew, why, sizeof(why));
			if (r == -ESTALE)
				r = -EBADMSG; /* a stale answer is a bad answer */
			if (r == -EPERM)
				r = -EBADMSG; /* an untrusted signer is a bad answer */
			if (r)
				snprintf(err, errlen, "%s: %s", u[i], why);
		}
		free(answer);
		if (r)
			continue;
		char pk[65];
		kms_hex_encode(a.public_key, 32, pk);
		int w = snprintf(buf, len,
				 "{\"app_id\":\"%s\",\"public_key\":\"%s\",\"signer\":\"%s\","
				 "\"signer_pubkey\":\"%s\",\"signature_version\":\"%s\","
				 "\"timestamp\":%llu,\"kms_url\":\"%.*s\"}",
				 hex, pk, s.address, s.compressed, s.version ? "v1" : "legacy",
				 (unsigned long long)(s.version ? a.timestamp : 0), (int)ul, u[i]);
		return w < 0 || (size_t)w >= len ? -ENOSPC : w;
	}
	return r;
}

static int route_env_pubkey(void *data, const char *body, char *buf, size_t len)
{
	(void)data;
	char err[1024] = "";
	uint8_t id[20];
	const char *u[MAX_URLS];
	int n = 0, r;
	json_object *o = json_tokener_parse(body), *v;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "app_id", &v) || !json_object_is_type(v, json_type_string)) {
		json_object_put(o);
		return host->error(self, NULL, -EINVAL,
				   "body must be {\"app_id\": \"<40 hex>\", \"kms_urls\": [...]}");
	}
	if ((r = app_id_from(json_object_get_string(v), id, "app_id", err, sizeof(err))) ||
	    (json_object_object_get_ex(o, "kms_urls", &v) &&
	     (r = urls_from_json(v, u, &n, err, sizeof(err))))) {
		json_object_put(o);
		return host->error(self, NULL, r, "%s", err);
	}
	if (n == 0)
		for (; n < n_urls; n++)
			u[n] = urls[n];
	r = fetch_pubkey(id, u, n, buf, len, err, sizeof(err));
	json_object_put(o);
	return r < 0 ? host->error(self, NULL, r, "%s", err) : r;
}

static int route_vm_env_pubkey(void *data, cvmm_vm *vm, const char *body, char *buf, size_t len)
{
	(void)data;
	(void)body;
	char err[1024] = "";
	uint8_t id[20];
	const char *u[MAX_URLS];
	int n, own;
	json_object *hold;
	const char *app = vm_string_field(vm, "app_id", &hold);
	if (!app) {
		json_object_put(hold);
		return host->error(self, NULL, -EINVAL, "VM '%s' has no app_id (a create field)",
				   host->vm_name(vm));
	}
	app_id_from(app, id, "app_id", err, sizeof(err));
	json_object_put(hold);
	json_object *uh = vm_urls(vm, u, &n, &own);
	int r = fetch_pubkey(id, u, n, buf, len, err, sizeof(err));
	json_object_put(uh);
	if (r < 0) {
		host->vm_event(self, vm, "kms", "env-encryption key refused: %s", err);
		return host->error(self, NULL, r, "%s", err);
	}
	return r;
}

/* ---- what the guest is told ---- */

static int write_urls(char *buf, size_t len, const char *const *u, int n)
{
	json_object *a = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(u[i]));
	int w = snprintf(buf, len, "%s", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
	return w;
}

/* Guest call GetKmsConfig: {"kms_urls": [...], "app_id": hex|null,
 * "encrypted_env": hex|null}. */
static int guest_kms_config(cvmm_vm *vm, const char *req, char *buf, size_t len, char *err,
			    size_t errlen)
{
	(void)req;
	const char *u[MAX_URLS];
	int n, own;
	json_object *uh = vm_urls(vm, u, &n, &own), *h1, *h2;
	const char *app = vm_string_field(vm, "app_id", &h1);
	const char *env = vm_string_field(vm, "encrypted_env", &h2);
	size_t w = 0;
	w += (size_t)snprintf(buf, len, "{\"kms_urls\":");
	if (w < len)
		w += (size_t)write_urls(buf + w, len - w, u, n);
	if (w < len)
		w += (size_t)snprintf(buf + w, len - w,
				      ",\"app_id\":%s%s%s,\"encrypted_env\":%s%s%s}", app ? "\"" : "",
				      app ? app : "null", app ? "\"" : "", env ? "\"" : "",
				      env ? env : "null", env ? "\"" : "");
	json_object_put(uh);
	json_object_put(h1);
	json_object_put(h2);
	if (w >= len) {
		snprintf(err, errlen, "answer too large");
		return -ENOSPC;
	}
	return (int)w;
}

static const struct guest_call calls[] = {{"GetKmsConfig", guest_kms_config}};

/* The guest's sys-config document: kms_urls (and app_id), like dstack's. */
static int sys_config_owner;
static int on_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	(void)data;
	const char *u[MAX_URLS];
	int n, own;
	json_object *uh = vm_urls(vm, u, &n, &own), *h1;
	const char *app = vm_string_field(vm, "app_id", &h1);
	json_object *part = json_object_new_object(), *a = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(u[i]));
	json_object_object_add(part, "kms_urls", a);
	if (app)
		json_object_object_add(part, "app_id", json_object_new_string(app));
	json_object_put(uh);
	json_object_put(h1);
	int r = sysconfig_put(host, self, vm, spec, event, sys_config_owner, part);
	json_object_put(part);
	return r;
}

static int route_guest_config(void *data, cvmm_vm *vm, const char *body, char *buf, size_t len)
{
	(void)data;
	char err[256] = "";
	int r = calls[0].fn(vm, body, buf, len, err, sizeof(err));
	return r < 0 ? host->error(self, NULL, r, "%s", err) : r;
}

/* ---- GET /v1/host and the VM object ---- */

static int host_info(void *data, char *buf, size_t len)
{
	(void)data;
	size_t w = (size_t)snprintf(buf, len, "{\"urls\":");
	if (w < len)
		w += (size_t)write_urls(buf + w, len - w, urls, n_urls);
	if (w < len)
		w += (size_t)snprintf(buf + w, len - w, ",\"trusted_signers\":");
	if (w < len)
		w += (size_t)write_urls(buf + w, len - w, trusted, n_trusted);
	if (w < len)
		w += (size_t)snprintf(buf + w, len - w, "}");
	return w < len ? (int)w : -ENOSPC;
}

static int vm_info(void *data, cvmm_vm *vm, char *buf, size_t len)
{
	(void)data;
	const char *u[MAX_URLS];
	int n, own;
	json_object *uh = vm_urls(vm, u, &n, &own), *h1, *h2;
	const char *app = vm_string_field(vm, "app_id", &h1);
	const char *env = vm_string_field(vm, "encrypted_env", &h2);
	size_t w = (size_t)snprintf(buf, len, "{\"urls\":");
	if (w < len)
		w += (size_t)write_urls(buf + w, len - w, u, n);
	if (w < len)
		w += (size_t)snprintf(buf + w, len - w,
				      ",\"urls_from\":\"%s\",\"app_id\":%s%s%s,\"encrypted_env_bytes\":%zu}",
				      own ? "vm" : "host", app ? "\"" : "", app ? app : "null",
				      app ? "\"" : "", env ? strlen(env) / 2 : 0);
	json_object_put(uh);
	json_object_put(h1);
	json_object_put(h2);
	return w < len ? (int)w : -ENOSPC;
}

/* ---- configuration ---- */

static int read_list(const char *key, const char **out, int max, int *n, int urls_only)
{
	int c = host->cfg_count(self, key);
	if (c == -ENOENT)
		return 0;
	if (c < 0)
		return c;
	if (c > max)
		return host->error(self, NULL, -EINVAL, "plugin.kms.%s: at most %d entries", key, max);
	for (int i = 0; i < c; i++) {
		const char *s;
		int r = host->cfg_string_at(self, key, (uint32_t)i, &s);
		if (r < 0)
			return r;
		if (urls_only && !url_ok(s))
			return host->error(self, NULL, -EINVAL,
					   "plugin.kms.%s: \"%s\" is not an http:// or https:// URL",
					   key, s);
		if (!urls_only) {
			uint8_t b[33];
			int l = kms_hex_decode(s, b, sizeof(b));
			if (l != 20 && l != 33)
				return host->error(self, NULL, -EINVAL,
						   "plugin.kms.%s: \"%s\" is neither an Ethereum "
						   "address (0x + 40 hex) nor a compressed public key "
						   "(0x + 66 hex)",
						   key, s);
		}
		out[(*n)++] = s;
	}
	return 0;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "kms", "1.0",
			     "KMS URLs for guests, the app's env-encryption key checked against "
			     "trusted KMS signers");
	(void)minor;
	if (major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	if (!CVMM_HOST_HAS(h, spec_set_confidential))
		return host->error(self, NULL, -EPROTO,
				   "kms needs the daemon's ABI 1.2 with vm_event and register_vm_route");
	int64_t t;
	int32_t b = 0;
	int r;
	if ((r = read_list("urls", urls, MAX_URLS, &n_urls, 1)) ||
	    (r = read_list("trusted_signers", trusted, MAX_TRUSTED, &n_trusted, 0)))
		return r;
	if ((r = host->cfg_int(self, "timeout_ms", &t)) == 0) {
		if (t < 100 || t > 120000)
			return host->error(self, NULL, -EINVAL,
					   "plugin.kms.timeout_ms: must be 100..120000");
		timeout_ms = (long)t;
	} else if (r != -ENOENT) {
		return r;
	}
	const char *const ages[] = {"signature_max_age", "signature_max_skew"};
	int64_t *agev[] = {&sig_max_age, &sig_max_skew};
	for (int i = 0; i < 2; i++) {
		if ((r = host->cfg_int(self, ages[i], &t)) == 0) {
			if (t < 0 || t > 10 * 365 * 86400LL)
				return host->error(self, NULL, -EINVAL,
						   "plugin.kms.%s: must be 0..315360000 (seconds)",
						   ages[i]);
			*agev[i] = t;
		} else if (r != -ENOENT) {
			return r;
		}
	}
	if ((r = host->cfg_bool(self, "guest_calls_route", &b)) < 0 && r != -ENOENT)
		return r;
	if ((r = host->register_request_field(self, "kms_urls", v_kms_urls, NULL)) ||
	    (r = host->register_request_field(self, "app_id", v_app_id, NULL)) ||
	    (r = host->register_request_field(self, "encrypted_env", v_encrypted_env, NULL)) ||
	    (r = host->register_info(self, "kms", host_info, vm_info, NULL)) ||
	    (r = host->register_route(self, "POST", "kms/env-pubkey", route_env_pubkey, NULL)) ||
	    (r = host->register_vm_route(self, "GET", "env-pubkey", route_vm_env_pubkey, NULL)))
		return r;
	if (b == 1 &&
	    (r = host->register_vm_route(self, "GET", "guest-kms-config", route_guest_config, NULL)))
		return r;
	static const char *const members[] = {"kms", "gateway", NULL};
	sys_config_owner = sysconfig_is_owner(host, self, "kms", members);
	int prio = sys_config_owner ? SYSCONFIG_PRIO_OWNER : SYSCONFIG_PRIO_MERGE;
	if ((r = host->register_hook(self, CVMM_EV_PRE_START, prio, on_start, NULL)) ||
	    (r = host->register_hook(self, CVMM_EV_PLAN, prio, on_start, NULL)))
		return r;
	/* The guest's own way in: GetKmsConfig over the guest channel, the VM
	 * being the channel's (route_guest_config has the handler's shape). */
	if (CVMM_HOST_HAS(host, register_channel_handler) &&
	    (r = host->register_channel_handler(self, calls[0].name, route_guest_config, NULL)))
		return r;
	return 0;
}
