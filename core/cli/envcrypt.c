/*
 * envcrypt: see envcrypt.h. OpenSSL's libcrypto does X25519 and AES-GCM.
 */
#include "envcrypt.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = 0;
}

int env_random_hex(size_t n, char *out)
{
	uint8_t b[64];
	if (n > sizeof(b) || RAND_bytes(b, (int)n) != 1)
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
		OPENSSL_cleanse(line, cap);
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
	if (!(peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32)) ||
	    !(gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL)) || EVP_PKEY_keygen_init(gen) <= 0 ||
	    EVP_PKEY_keygen(gen, &mine) <= 0 || EVP_PKEY_get_raw_public_key(mine, eph, &el) <= 0 ||
	    !(kx = EVP_PKEY_CTX_new(mine, NULL)) || EVP_PKEY_derive_init(kx) <= 0 ||
	    EVP_PKEY_derive_set_peer(kx, peer) <= 0 || EVP_PKEY_derive(kx, shared, &sl) <= 0 ||
	    sl != 32) {
		snprintf(err, errlen, "X25519 key agreement with the KMS key failed");
		goto out;
	}
	if (RAND_bytes(iv, sizeof(iv)) != 1 || !(c = EVP_CIPHER_CTX_new()) ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, sizeof(iv), NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, shared, iv) != 1 ||
	    EVP_EncryptUpdate(c, out + 44, &k, (const uint8_t *)plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, out + 44 + k, &k) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1) {
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
	OPENSSL_cleanse(shared, sizeof(shared));
	free(out);
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(kx);
	EVP_PKEY_CTX_free(gen);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(peer);
	return r;
}
