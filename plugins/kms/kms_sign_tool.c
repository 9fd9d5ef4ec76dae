/*
 * kms-sign: signs like dstack's KMS, for the test stand-ins (Debian 12 has
 * no Python secp256k1 package).
 *
 *   kms-sign address PRIV_HEX                   -> "0x<address> 0x<compressed>"
 *   kms-sign sign PRIV_HEX APP_ID_HEX PUBKEY_HEX [TIMESTAMP]
 *                                               -> 65-byte r||s||v, hex
 */
#include "keccak.h"
#include "kms_sig.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	uint8_t priv[32], app[KMS_APP_ID_MAX], pub[32], msg[256], h[32], sig[65];
	char hex[200];
	if (argc < 3 || kms_hex_decode(argv[2], priv, 32) != 32 ||
	    !secp256k1_ec_seckey_verify(ctx, priv)) {
		fprintf(stderr, "usage: kms-sign address|sign PRIV_HEX ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "address")) {
		struct kms_signer s;
		secp256k1_ecdsa_recoverable_signature rs;
		/* Recover from a signature of a fixed hash: the same path the
		 * plugin takes, so the printed address is what it computes. */
		memset(h, 7, sizeof(h));
		int v;
		if (!secp256k1_ecdsa_sign_recoverable(ctx, &rs, h, priv, NULL, NULL))
			return 1;
		secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig, &v, &rs);
		sig[64] = (uint8_t)v;
		if (kms_recover(h, sig, &s))
			return 1;
		printf("%s %s\n", s.address, s.compressed);
		return 0;
	}
	if (!strcmp(argv[1], "sign") && argc >= 5) {
		int al = kms_hex_decode(argv[3], app, sizeof(app));
		if (al < 0 || kms_hex_decode(argv[4], pub, 32) != 32)
			return 2;
		uint64_t ts = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
		size_t n = kms_env_message(app, (size_t)al, argc > 5 ? &ts : NULL, pub, msg);
		secp256k1_ecdsa_recoverable_signature rs;
		int v;
		keccak256(msg, n, h);
		if (!secp256k1_ecdsa_sign_recoverable(ctx, &rs, h, priv, NULL, NULL))
			return 1;
		secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig, &v, &rs);
		sig[64] = (uint8_t)v;
		kms_hex_encode(sig, 65, hex);
		printf("%s\n", hex);
		return 0;
	}
	fprintf(stderr, "usage: kms-sign address|sign PRIV_HEX ...\n");
	return 2;
}
