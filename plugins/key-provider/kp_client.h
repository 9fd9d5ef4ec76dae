/*
 * kp_client: dstack's local key-provider protocol (key-provider-client,
 * host.rs): over TCP, the request is a 4-byte big-endian length then JSON
 * {"quote": [bytes as numbers]}; the answer the same framing around
 * {"encrypted_key": [...], "provider_quote": [...]}. Connect, send and the
 * whole read are bounded in time, the answer in size.
 */
#ifndef CVMM_KP_CLIENT_H
#define CVMM_KP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define KP_QUOTE_MAX (1024 * 1024) /* dstack caps quotes at 1 MiB */

struct kp_opts {
	const char *address; /* numeric IPv4 or IPv6 */
	uint16_t port;
	int connect_timeout_ms;
	int timeout_ms;   /* the whole exchange */
	size_t max_answer; /* bytes of the answer's JSON */
};

struct kp_key {
	uint8_t *encrypted_key, *provider_quote; /* malloc'd */
	size_t encrypted_key_len, provider_quote_len;
};

/* The framed request: 4-byte length + JSON. malloc'd into *out. */
int kp_frame_request(const uint8_t *quote, size_t n, uint8_t **out, size_t *outlen);
/* The 4-byte big-endian length of a frame header. */
uint32_t kp_frame_length(const uint8_t hdr[4]);
/* The answer's JSON into key; -EBADMSG with the reason in err. */
int kp_parse_answer(const char *json, size_t len, struct kp_key *key, char *err, size_t errlen);
void kp_key_free(struct kp_key *key);

/* One exchange. -ECONNREFUSED, -ETIMEDOUT, -EMSGSIZE, -EBADMSG, -EPROTO
 * (connection closed early), with the reason in err. */
int kp_get_key(const struct kp_opts *o, const uint8_t *quote, size_t n, struct kp_key *key,
	       char *err, size_t errlen);

#endif
