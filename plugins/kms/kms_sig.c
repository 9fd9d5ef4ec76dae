/*
 * kms_sig: see kms_sig.h. libsecp256k1 (with its recovery module) does the
 * curve work; keccak.c the hashing.
 */
#include "kms_sig.h"
#include "keccak.h"

#include <json-c/json.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char prefix[] = "dstack-env-encrypt-pubkey";

int kms_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
		hex += 2;
	size_t n = strlen(hex);
	if (n % 2 || n / 2 > cap)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = hex[2 * i + (size_t)k];
			if (!isxdigit((unsigned char)c))
				return -EINVAL;
			v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : (tolower(c) - 'a' + 10));
		}
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

void kms_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * len] = 0;
}

size_t kms_env_message(const uint8_t *app_id, size_t app_len, const uint64_t *timestamp,
		       const uint8_t pubkey[32], uint8_t *buf)
{
	size_t n = 0;
	memcpy(buf, prefix, sizeof(prefix) - 1);
	n += sizeof(prefix) - 1;
	buf[n++] = ':';
	memcpy(buf + n, app_id, app_len);
	n += app_len;
	if (timestamp)
		for (int i = 7; i >= 0; i--)
			buf[n++] = (uint8_t)(*timestamp >> (8 * i));
	memcpy(buf + n, pubkey, 32);
	return n + 32;
}

static secp256k1_context *ctx;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static void ctx_init(void)
{
	ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
}

int kms_recover(const uint8_t hash[32], const uint8_t sig[65], struct kms_signer *out)
{
	secp256k1_ecdsa_recoverable_signature rs;
	secp256k1_pubkey pk;
	uint8_t full[65], comp[33], h[32];
	size_t len;
	int v = sig[64] >= 27 ? sig[64] - 27 : sig[64];
	pthread_once(&ctx_once, ctx_init);
	if (!ctx || v < 0 || v > 3 ||
	    !secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &rs, sig, v) ||
	    !secp256k1_ecdsa_recover(ctx, &pk, &rs, hash))
		return -EBADMSG;
	len = sizeof(full);
	secp256k1_ec_pubkey_serialize(ctx, full, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
	len = sizeof(comp);
	secp256k1_ec_pubkey_serialize(ctx, comp, &len, &pk, SECP256K1_EC_COMPRESSED);
	/* An Ethereum address: the last 20 bytes of keccak(X || Y). */
	keccak256(full + 1, 64, h);
	out->address[0] = '0';
	out->address[1] = 'x';
	kms_hex_encode(h + 12, 20, out->address + 2);
	out->compressed[0] = '0';
	out->compressed[1] = 'x';
	kms_hex_encode(comp, 33, out->compressed + 2);
	return 0;
}

static int get_hex(json_object *o, const char *k, uint8_t *out, size_t want, int *has, char *err,
		   size_t errlen)
{
	json_object *v;
	*has = 0;
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return 0;
	const char *s = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "the KMS's %s is not a hex string", k);
		return -EBADMSG;
	}
	if (!*s) /* proto3 JSON writes empty bytes as "" */
		return 0;
	uint8_t tmp[128];
	int n = kms_hex_decode(s, tmp, sizeof(tmp));
	if (n != (int)want) {
		snprintf(err, errlen, "the KMS's %s is not %zu bytes of hex", k, want);
		return -EBADMSG;
	}
	memcpy(out, tmp, want);
	*has = 1;
	return 0;
}

int kms_parse_answer(const char *json, struct kms_answer *a, char *err, size_t errlen)
{
	int has, r = 0;
	memset(a, 0, sizeof(*a));
	json_object *o = json_tokener_parse(json);
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "the KMS's answer is not a JSON object");
		r = -EBADMSG;
		goto out;
	}
	if ((r = get_hex(o, "public_key", a->public_key, 32, &has, err, errlen)))
		goto out;
	if (!has) {
		snprintf(err, errlen, "the KMS's answer has no public_key");
		r = -EBADMSG;
		goto out;
	}
	if ((r = get_hex(o, "signature", a->signature, 65, &a->has_signature, err, errlen)) ||
	    (r = get_hex(o, "signature_v1", a->signature_v1, 65, &a->has_signature_v1, err, errlen)))
		goto out;
	json_object *t;
	if (json_object_object_get_ex(o, "timestamp", &t) && !json_object_is_type(t, json_type_null)) {
		/* proto3 JSON may write a uint64 as a string */
		if (json_object_is_type(t, json_type_int) && json_object_get_int64(t) >= 0) {
			a->timestamp = (uint64_t)json_object_get_int64(t);
		} else if (json_object_is_type(t, json_type_string)) {
			char *end;
			errno = 0;
			a->timestamp = strtoull(json_object_get_string(t), &end, 10);
			if (errno || *end || !*json_object_get_string(t)) {
				snprintf(err, errlen, "the KMS's timestamp is not a number");
				r = -EBADMSG;
				goto out;
			}
		} else {
			snprintf(err, errlen, "the KMS's timestamp is not a number");
			r = -EBADMSG;
			goto out;
		}
		a->has_timestamp = 1;
	}
out:
	json_object_put(o);
	return r;
}

static int trusted_match(const struct kms_signer *s, const char *const *trusted, int n)
{
	for (int i = 0; i < n; i++) {
		const char *t = trusted[i];
		const char *h = (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) ? t + 2 : t;
		if (!strcasecmp(h, s->address + 2) || !strcasecmp(h, s->compressed + 2))
			return 1;
	}
	return 0;
}

int kms_check(const struct kms_answer *a, const uint8_t *app_id, size_t app_len,
	      const char *const *trusted, int n_trusted, struct kms_signer *signer, char *err,
	      size_t errlen)
{
	uint8_t msg[128 + KMS_APP_ID_MAX], h[32];
	const uint8_t *sig;
	size_t n;
	if (app_len > KMS_APP_ID_MAX)
		return -EINVAL;
	if (a->has_signature_v1 && a->has_timestamp) {
		n = kms_env_message(app_id, app_len, &a->timestamp, a->public_key, msg);
		sig = a->signature_v1;
		signer->version = 1;
	} else if (a->has_signature) {
		n = kms_env_message(app_id, app_len, NULL, a->public_key, msg);
		sig = a->signature;
		signer->version = 0;
	} else {
		snprintf(err, errlen, "the KMS's public key carries no signature");
		return -EBADMSG;
	}
	keccak256(msg, n, h);
	if (kms_recover(h, sig, signer) < 0) {
		snprintf(err, errlen, "the KMS's %s does not recover a signer",
			 signer->version ? "signature_v1" : "signature");
		return -EBADMSG;
	}
	if (!trusted_match(signer, trusted, n_trusted)) {
		snprintf(err, errlen,
			 "the KMS's public key is signed by %s (%s), which is not in "
			 "plugin.kms.trusted_signers",
			 signer->address, signer->compressed);
		return -EPERM;
	}
	return 0;
}

int kms_check_fresh(const struct kms_answer *a, const struct kms_signer *signer, uint64_t now,
		    uint64_t max_age, uint64_t max_skew, char *err, size_t errlen)
{
	if (signer->version != 1)
		return 0;
	/* A signature the KMS made in the future is a KMS whose clock is
	 * wrong or an answer made up ahead of time: either way not this
	 * moment's key. */
	if (a->timestamp > now && a->timestamp - now > max_skew) {
		snprintf(err, errlen,
			 "the KMS's signature_v1 is dated %llu s in the future (timestamp %llu, "
			 "more than plugin.kms.signature_max_skew = %llu s ahead of this host's "
			 "clock)",
			 (unsigned long long)(a->timestamp - now), (unsigned long long)a->timestamp,
			 (unsigned long long)max_skew);
		return -EBADMSG;
	}
	/* An old signature may be a replayed answer from before a key was
	 * rotated or revoked. */
	if (max_age && a->timestamp < now && now - a->timestamp > max_age) {
		snprintf(err, errlen,
			 "the KMS's signature_v1 is %llu s old (timestamp %llu), older than "
			 "plugin.kms.signature_max_age = %llu s",
			 (unsigned long long)(now - a->timestamp), (unsigned long long)a->timestamp,
			 (unsigned long long)max_age);
		return -ESTALE;
	}
	return 0;
}
