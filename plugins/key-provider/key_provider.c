/*
 * key-provider: a guest's GetSealingKey, forwarded to the host's local key
 * provider with dstack's protocol (kp_client.c) and answered; every
 * failure (refused, silent, slow, malformed) reaches the guest as an error
 * and the VM's events as one line.
 *
 * plugin.key-provider (or dstack's top-level key_provider section):
 *   enabled = true; address = "127.0.0.1"; port = 3443;
 *   connect_timeout_ms = 2000; timeout_ms = 10000; max_answer = 1048576;
 *   guest_calls_route = false;  # POST /v1/vms/{id}/guest-sealing-key
 *                               # answers as the guest call (tests only)
 *
 * The guest call (guest_call.h) "GetSealingKey": {"quote": "<hex>"} ->
 * {"encrypted_key": "<hex>", "provider_quote": "<hex>"}. The VM is the
 * channel's: the quote is the guest's, and what it is given back is
 * encrypted to the key inside it.
 */
#include "kp_client.h"
#include "trust.h"

#include <cvmm/plugin.h>
#include <json-c/json.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cvmm_host_api *host;
static cvmm_plugin *self;
/* dstack's top-level key_provider { } says the same as plugin.key-provider. */
static struct cp_plugin pl = {.fallback = ".key_provider"};
static int enabled = 1;
static struct kp_opts opts = {
    .address = "127.0.0.1",
    .port = 3443,
    .connect_timeout_ms = 2000,
    .timeout_ms = 10000,
    .max_answer = 1024 * 1024,
};

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

static char *hex_of(const uint8_t *b, size_t n)
{
	static const char d[] = "0123456789abcdef";
	char *s = malloc(2 * n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = d[b[i] >> 4];
		s[2 * i + 1] = d[b[i] & 15];
	}
	s[2 * n] = 0;
	return s;
}

/* Guest call GetSealingKey. */
static int get_sealing_key(cvmm_vm *vm, const char *req, char *buf, size_t len, char *err,
			   size_t errlen)
{
	json_object *o = json_tokener_parse(req), *q;
	uint8_t *quote = NULL;
	struct kp_key key = {0};
	char *ek = NULL, *pq = NULL;
	int r;
	if (!enabled) {
		snprintf(err, errlen, "GetSealingKey: the key provider is disabled on this host");
		r = -ENOTSUP;
		goto out;
	}
	const char *hex = json_object_is_type(o, json_type_object) &&
					  json_object_object_get_ex(o, "quote", &q) &&
					  json_object_is_type(q, json_type_string)
				  ? json_object_get_string(q)
				  : NULL;
	size_t hl = hex ? strlen(hex) : 0;
	if (!hex || hl == 0 || hl % 2 || hl / 2 > KP_QUOTE_MAX) {
		snprintf(err, errlen, "GetSealingKey: needs {\"quote\": hex of 1 byte to 1 MiB}");
		r = -EINVAL;
		goto out;
	}
	quote = malloc(hl / 2);
	if (!quote) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < hl / 2; i++) {
		int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
		if (a < 0 || b < 0) {
			snprintf(err, errlen, "GetSealingKey: quote is not hex");
			r = -EINVAL;
			goto out;
		}
		quote[i] = (uint8_t)(a * 16 + b);
	}
	r = kp_get_key(&opts, quote, hl / 2, &key, err, errlen);
	if (r)
		goto out;
	ek = hex_of(key.encrypted_key, key.encrypted_key_len);
	pq = hex_of(key.provider_quote, key.provider_quote_len);
	if (!ek || !pq) {
		r = -ENOMEM;
		goto out;
	}
	int w = snprintf(buf, len, "{\"encrypted_key\":\"%s\",\"provider_quote\":\"%s\"}", ek, pq);
	if (w < 0 || (size_t)w >= len) {
		snprintf(err, errlen, "GetSealingKey: answer too large for the channel");
		r = -ENOSPC;
		goto out;
	}
	r = w;
	host->vm_event(self, vm, "key-provider",
		       "sealing key delivered (encrypted key %zu bytes, provider quote %zu bytes)",
		       key.encrypted_key_len, key.provider_quote_len);
out:
	if (r < 0)
		host->vm_event(self, vm, "key-provider", "GetSealingKey failed: %s", err);
	json_object_put(o);
	free(quote);
	free(ek);
	free(pq);
	kp_key_free(&key);
	return r;
}

static const struct guest_call calls[] = {{"GetSealingKey", get_sealing_key}};

static int route_guest(void *data, cvmm_vm *vm, const char *body, char *buf, size_t len)
{
	(void)data;
	return cp_guest_call_serve(&pl, calls[0].fn, vm, body, buf, len);
}

static int host_info(void *data, char *buf, size_t len)
{
	(void)data;
	int w = snprintf(buf, len,
			 "{\"enabled\":%s,\"address\":\"%s\",\"port\":%u,\"timeout_ms\":%d}",
			 enabled ? "true" : "false", opts.address, opts.port, opts.timeout_ms);
	return w < 0 || (size_t)w >= len ? -ENOSPC : w;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t major, uint32_t minor,
					const struct cvmm_host_api *h, cvmm_plugin *p,
					struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "key-provider", "1.0",
			     "a guest's GetSealingKey forwarded to the local key provider");
	(void)minor;
	int r = cp_plugin_open(&pl, major, h, p, "key-provider",
			       CVMM_HOST_HAS(h, spec_set_confidential), "vm_event");
	if (r < 0)
		return r;
	host = h;
	self = p;
	int32_t b;
	int64_t v;
	const char *s;
	if ((r = cp_cfg_bool(&pl, "enabled", &b)) == 0)
		enabled = b;
	else if (r != -ENOENT)
		return r;
	if ((r = cp_cfg_string(&pl, "address", &s)) == 0) {
		unsigned char a[16];
		if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1)
			return host->error(self, NULL, -EINVAL,
					   "plugin.key-provider.address: \"%s\" is not a numeric "
					   "IPv4 or IPv6 address",
					   s);
		opts.address = s;
	} else if (r != -ENOENT) {
		return r;
	}
	if ((r = cp_cfg_range(&pl, "port", 1, 65535, &v)) < 0)
		return r;
	if (r == 0)
		opts.port = (uint16_t)v;
	if ((r = cp_cfg_range(&pl, "connect_timeout_ms", 10, 60000, &v)) < 0)
		return r;
	if (r == 0)
		opts.connect_timeout_ms = (int)v;
	if ((r = cp_cfg_range(&pl, "timeout_ms", 10, 120000, &v)) < 0)
		return r;
	if (r == 0)
		opts.timeout_ms = (int)v;
	if ((r = cp_cfg_range(&pl, "max_answer", 64, 16 * 1024 * 1024, &v)) < 0)
		return r;
	if (r == 0)
		opts.max_answer = (size_t)v;
	b = 0;
	if ((r = host->cfg_bool(self, "guest_calls_route", &b)) < 0 && r != -ENOENT)
		return r;
	if ((r = host->register_info(self, "key_provider", host_info, NULL, NULL)))
		return r;
	if (b == 1 &&
	    (r = host->register_vm_route(self, "POST", "guest-sealing-key", route_guest, NULL)))
		return r;
	/* The guest's own way in: GetSealingKey over the guest channel, the
	 * VM being the channel's (route_guest has the handler's signature). */
	if (CVMM_HOST_HAS(host, register_channel_handler) &&
	    (r = host->register_channel_handler(self, "GetSealingKey", route_guest, NULL)))
		return r;
	return 0;
}
