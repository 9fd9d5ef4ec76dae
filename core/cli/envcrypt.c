/*
 * envcrypt: see envcrypt.h. OpenSSL's libcrypto does X25519 and AES-GCM,
 * loaded with dlopen() when --env-file is used: every other command of the
 * CLI would otherwise pay for mapping and relocating it (README "A fast
 * CLI"). The header gives the types and constants.
 */
#include "envcrypt.h"

#include <json-c/json.h>
#include <openssl/evp.h>

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = 0;
}

#define CRYPTO_FNS(X)                                                                      \
	X(EVP_PKEY_new_raw_public_key)                                                     \
	X(EVP_PKEY_CTX_new_id)                                                             \
	X(EVP_PKEY_keygen_init)                                                            \
	X(EVP_PKEY_keygen)                                                                 \
	X(EVP_PKEY_get_raw_public_key)                                                     \
	X(EVP_PKEY_CTX_new)                                                                \
	X(EVP_PKEY_derive_init)                                                            \
	X(EVP_PKEY_derive_set_peer)                                                        \
	X(EVP_PKEY_derive)                                                                 \
	X(EVP_CIPHER_CTX_new)                                                              \
	X(EVP_EncryptInit_ex)                                                              \
	X(EVP_aes_256_gcm)                                                                 \
	X(EVP_CIPHER_CTX_ctrl)                                                             \
	X(EVP_EncryptUpdate)                                                               \
	X(EVP_EncryptFinal_ex)                                                             \
	X(EVP_CIPHER_CTX_free)                                                             \
	X(EVP_PKEY_CTX_free)                                                               \
	X(EVP_PKEY_free)

#define CRYPTO_DECL(f) static __typeof__(f) *p_##f;
CRYPTO_FNS(CRYPTO_DECL)

static int load_crypto(char *err, size_t errlen)
{
	static void *h;
	if (h)
		return 0;
#ifdef CVMM_CLI_STATIC
	/* The static cvmm runs cvmm-full for --env-file (cvmm.c): not reached. */
	snprintf(err, errlen, "--env-file needs cvmm-full (this cvmm is static)");
	return -ENOTSUP;
#else
	void *l = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!l) {
		snprintf(err, errlen, "--env-file needs OpenSSL's libcrypto (libssl3): %s", dlerror());
		return -ENOENT;
	}
#define CRYPTO_SYM(f)                                                                      \
	if (!(*(void **)&p_##f = dlsym(l, #f))) {                                          \
		snprintf(err, errlen, "libcrypto.so.3 has no %s", #f);                      \
		dlclose(l);                                                                \
		return -ENOENT;                                                            \
	}
	CRYPTO_FNS(CRYPTO_SYM)
	h = l;
	return 0;
#endif
}

int env_random_hex(size_t n, char *out)
{
	uint8_t b[64];
	if (n > sizeof(b) || getrandom(b, n, 0) != (ssize_t)n)
		return -EIO;
	hex(b, n, out);
	return 0;
}

int env_file_json(const char *path, char **json, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, r = 0;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	json_object *env = json_object_new_array();
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		if (!strncmp(p, "export ", 7))
			p += 7;
		char *eq = strchr(p, '=');
		if (!eq || eq == p) {
			snprintf(err, errlen, "%s:%d: not KEY=VALUE", path, lineno);
			r = -EINVAL;
			break;
		}
		*eq = 0;
		for (char *k = p; *k; k++)
			if (!isalnum((unsigned char)*k) && *k != '_') {
				snprintf(err, errlen, "%s:%d: '%s' is not a variable name", path, lineno, p);
				r = -EINVAL;
				break;
			}
		if (r)
			break;
		char *v = eq + 1;
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
			v[vl - 1] = 0;
			v++;
		}
		json_object *e = json_object_new_object();
		json_object_object_add(e, "key", json_object_new_string(p));
		json_object_object_add(e, "value", json_object_new_string(v));
		json_object_array_add(env, e);
	}
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	if (!r) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "env", json_object_get(env));
		*json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	}
	json_object_put(env);
	return r;
}

int env_encrypt(const uint8_t pub[32], const char *plain, size_t len, char **hexout, char *err,
		size_t errlen)
{
	EVP_PKEY *mine = NULL, *peer = NULL;
	EVP_PKEY_CTX *kx = NULL, *gen = NULL;
	EVP_CIPHER_CTX *c = NULL;
	uint8_t shared[32], eph[32], iv[12], tag[16];
	size_t sl = sizeof(shared), el = sizeof(eph);
	uint8_t *out = malloc(32 + 12 + len + 16);
	int r = -EIO, k;
	if (!out)
		return -ENOMEM;
	if ((r = load_crypto(err, errlen)) < 0) {
		free(out);
		return r;
	}
	r = -EIO;
	if (!(peer = p_EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32)) ||
	    !(gen = p_EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL)) || p_EVP_PKEY_keygen_init(gen) <= 0 ||
	    p_EVP_PKEY_keygen(gen, &mine) <= 0 || p_EVP_PKEY_get_raw_public_key(mine, eph, &el) <= 0 ||
	    !(kx = p_EVP_PKEY_CTX_new(mine, NULL)) || p_EVP_PKEY_derive_init(kx) <= 0 ||
	    p_EVP_PKEY_derive_set_peer(kx, peer) <= 0 || p_EVP_PKEY_derive(kx, shared, &sl) <= 0 ||
	    sl != 32) {
		snprintf(err, errlen, "X25519 key agreement with the KMS key failed");
		goto out;
	}
	if (getrandom(iv, sizeof(iv), 0) != (ssize_t)sizeof(iv) || !(c = p_EVP_CIPHER_CTX_new()) ||
	    p_EVP_EncryptInit_ex(c, p_EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    p_EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, sizeof(iv), NULL) != 1 ||
	    p_EVP_EncryptInit_ex(c, NULL, NULL, shared, iv) != 1 ||
	    p_EVP_EncryptUpdate(c, out + 44, &k, (const uint8_t *)plain, (int)len) != 1 ||
	    p_EVP_EncryptFinal_ex(c, out + 44 + k, &k) != 1 ||
	    p_EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1) {
		snprintf(err, errlen, "AES-256-GCM encryption failed");
		goto out;
	}
	memcpy(out, eph, 32);
	memcpy(out + 32, iv, 12);
	memcpy(out + 44 + len, tag, 16);
	*hexout = malloc(2 * (60 + len) + 1);
	if (!*hexout) {
		r = -ENOMEM;
		goto out;
	}
	hex(out, 60 + len, *hexout);
	r = 0;
out:
	explicit_bzero(shared, sizeof(shared));
	free(out);
	p_EVP_CIPHER_CTX_free(c);
	p_EVP_PKEY_CTX_free(kx);
	p_EVP_PKEY_CTX_free(gen);
	p_EVP_PKEY_free(mine);
	p_EVP_PKEY_free(peer);
	return r;
}
