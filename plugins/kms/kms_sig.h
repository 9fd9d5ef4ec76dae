/*
 * kms_sig: checks a KMS's env-encryption public key the way dstack defines
 * it: the KMS signs keccak256("dstack-env-encrypt-pubkey" ":" app_id
 * [timestamp, 8 bytes big-endian] pubkey) with its secp256k1 key as a
 * recoverable signature (r || s || v); the signer is recovered from it and
 * must be one of the trusted signers (Ethereum addresses, or compressed
 * public keys as dstack's vmm-cli whitelist holds them).
 */
#ifndef CVMM_KMS_SIG_H
#define CVMM_KMS_SIG_H

#include <stddef.h>
#include <stdint.h>

#define KMS_APP_ID_MAX 64

struct kms_answer {
	uint8_t public_key[32];
	uint8_t signature[65];    /* legacy: without the timestamp */
	uint8_t signature_v1[65]; /* with the timestamp */
	uint64_t timestamp;
	int has_signature, has_signature_v1, has_timestamp;
};

struct kms_signer {
	char address[43];    /* "0x" + 40 hex (Ethereum address) */
	char compressed[69]; /* "0x" + 66 hex */
	int version;         /* 1: signature_v1 (timestamped), 0: legacy */
};

/* Hex with an optional "0x" into out (at most cap bytes); returns the
 * length or -EINVAL. */
int kms_hex_decode(const char *hex, uint8_t *out, size_t cap);
void kms_hex_encode(const uint8_t *in, size_t len, char *out); /* 2*len+1 */

/* The message dstack signs; returns its length (buf holds >= 128 bytes). */
size_t kms_env_message(const uint8_t *app_id, size_t app_len, const uint64_t *timestamp,
		       const uint8_t pubkey[32], uint8_t *buf);

/* Recovers the signer of hash from a 65-byte r||s||v signature (v 0..3 or
 * 27..30). 0, or -EBADMSG for a signature that recovers nothing. */
int kms_recover(const uint8_t hash[32], const uint8_t sig[65], struct kms_signer *out);

/* Parses a KMS's GetAppEnvEncryptPubKey JSON answer. */
int kms_parse_answer(const char *json, struct kms_answer *a, char *err, size_t errlen);

/* Checks the answer for app_id against the trusted signers: signature_v1
 * first (as dstack's vmm-cli), the legacy signature only when there is no
 * v1. 0 with the signer filled; -EBADMSG (bad or missing signature) or
 * -EPERM (a valid signature by a signer not trusted), reason in err. */
int kms_check(const struct kms_answer *a, const uint8_t *app_id, size_t app_len,
	      const char *const *trusted, int n_trusted, struct kms_signer *signer, char *err,
	      size_t errlen);

/* dstack's SDK default for the timestamped signature's age (seconds). */
#define KMS_SIG_MAX_AGE_DEFAULT 300
#define KMS_SIG_MAX_SKEW_DEFAULT 60

/* Freshness of a timestamped (v1) answer that kms_check accepted: its
 * timestamp (seconds since the epoch, as dstack's KMS writes it) must be at
 * most max_age seconds before now (0 = any age) and at most max_skew
 * seconds after it. An answer checked through its legacy signature has no
 * timestamp and passes. 0, or -ESTALE (too old) / -EBADMSG (in the future)
 * with the reason in err. */
int kms_check_fresh(const struct kms_answer *a, const struct kms_signer *signer, uint64_t now,
		    uint64_t max_age, uint64_t max_skew, char *err, size_t errlen);

#endif
