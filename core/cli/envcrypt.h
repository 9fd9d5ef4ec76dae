/*
 * envcrypt: `cvmm create --env-file`: the environment encrypted for the
 * guest as dstack does it (docs/encrypted-env-spec.md upstream): JSON
 * {"env": [{"key", "value"}...]}, an ephemeral X25519 key agreed with the
 * KMS's env-encryption public key, the shared secret used directly as the
 * AES-256-GCM key, 12-byte random IV, no AAD; the result is
 * ephemeral_pk (32) || iv (12) || ciphertext || tag (16). The daemon only
 * ever sees this.
 */
#ifndef CVMM_CLI_ENVCRYPT_H
#define CVMM_CLI_ENVCRYPT_H

#include <stddef.h>
#include <stdint.h>

/* KEY=VALUE lines of path (blank lines and # comments skipped, "export "
 * and one pair of surrounding quotes dropped) into the plaintext JSON;
 * malloc'd. 0 or -errno with the reason in err. */
int env_file_json(const char *path, char **json, char *err, size_t errlen);
/* Encrypts plain (len bytes) to pub; *hex malloc'd. */
int env_encrypt(const uint8_t pub[32], const char *plain, size_t len, char **hex, char *err,
		size_t errlen);
/* n random bytes as hex into out (2n+1). */
int env_random_hex(size_t n, char *out);

#endif
