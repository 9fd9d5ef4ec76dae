/*
 * test_kms: keccak-256 (and the sponge against Python's SHA3-256), signer
 * recovery (dstack's published vector, a well-known Ethereum address), the
 * signed message, the KMS answer parser and the trust decision.
 */
#include "keccak.h"
#include "kms_sig.h"

#include <CUnit/Basic.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <errno.h>
#include <string.h>

static void hexof(const uint8_t *b, size_t n, char *out)
{
	kms_hex_encode(b, n, out);
}

static void test_keccak_vectors(void)
{
	uint8_t h[32];
	char x[65];
	keccak256("", 0, h);
	hexof(h, 32, x);
	CU_ASSERT_STRING_EQUAL(x, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
	keccak256("abc", 3, h);
	hexof(h, 32, x);
	CU_ASSERT_STRING_EQUAL(x, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
	/* Not SHA3: the same input under FIPS 202 padding differs. */
	sha3_256("", 0, h);
	hexof(h, 32, x);
	CU_ASSERT_STRING_EQUAL(x, "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
}

/* Lengths around the 136-byte rate, against Python's hashlib.sha3_256 of
 * bytes((i*7+3)&255 for i in range(n)): the permutation and absorption are
 * what keccak256 shares with it. */
static void test_sponge_blocks(void)
{
	static const struct {
		size_t n;
		const char *hex;
	} v[] = {
	    {1, "e3ed56bd086d8958483a12734fa0ae7f5c8bb160ef9092c67e82ed9b19e4c7b2"},
	    {135, "d9dcf1f98e49a79b0643a9e68fef48079ff8777c5e7e7f93469ded65f192ac71"},
	    {136, "743bd32e775ac7387a57d4d574c89ddef5ebcb08bb5cc6b88c55a27b5035cc45"},
	    {137, "01d47e8d6dce6e3dcbf1baa6f845b6ace4ef74bd17da8176ecc49bc35dbe5d21"},
	    {271, "20bf2d2a8b462cf032927768963867773b04bcfdbf1419d1ac06aa23637e5b19"},
	    {272, "ddeb5151c079739970e780e6257d0c4d52d83bf82c6aa8d47d5195530b5d5f4b"},
	    {300, "064af3405aacb53d5d77ee858fec1e6e225480de3f14f06444e2b33d92d61879"},
	    {1000, "bd8b4d76041e0135e53fab1aaf425c7b1c129d8878ffb64cc31230ccafd7dc7c"},
	};
	uint8_t in[1000], h[32];
	char x[65];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)((i * 7 + 3) & 255);
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		sha3_256(in, v[k].n, h);
		hexof(h, 32, x);
		CU_ASSERT_STRING_EQUAL(x, v[k].hex);
	}
}

/* dstack's vmm-cli docstring: this key, signature and app id recover
 * 0x0217610d…c38f. */
static void test_recover_dstack_vector(void)
{
	struct kms_answer a = {0};
	struct kms_signer s;
	uint8_t app[20] = {0};
	char err[256];
	CU_ASSERT_EQUAL(kms_hex_decode("e33a1832c6562067ff8f844a61e51ad051f1180b66ec2551fb0251735f3ee90a",
				       a.public_key, 32),
			32);
	CU_ASSERT_EQUAL(kms_hex_decode("8542c49081fbf4e03f62034f13fbf70630bdf256a53032e38465a27c36fd6"
				       "bed7a5e7111652004aef37f7fd92fbfc1285212c4ae6a6154203a48f5e16"
				       "cad2cef00",
				       a.signature, 65),
			65);
	a.has_signature = 1;
	const char *t[] = {"0x0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f"};
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, t, 1, &s, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(s.compressed, t[0]);
	CU_ASSERT_EQUAL(s.version, 0);
	/* The same signer by its address is trusted too. */
	const char *t2[] = {s.address};
	struct kms_signer s2;
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, t2, 1, &s2, err, sizeof(err)), 0);
	/* One bit of the key changed: another signer, refused. */
	a.public_key[0] ^= 1;
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, t, 1, &s, err, sizeof(err)), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not in plugin.kms.trusted_signers"));
}

static secp256k1_context *ctx;

static void sign(const uint8_t priv[32], const uint8_t *msg, size_t n, uint8_t sig[65])
{
	uint8_t h[32];
	secp256k1_ecdsa_recoverable_signature rs;
	int v;
	keccak256(msg, n, h);
	CU_ASSERT_FATAL(secp256k1_ecdsa_sign_recoverable(ctx, &rs, h, priv, NULL, NULL));
	secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig, &v, &rs);
	sig[64] = (uint8_t)v;
}

/* Private key 1's address is well known. */
static void test_eth_address(void)
{
	uint8_t priv[32] = {0}, h[32], sig[65];
	struct kms_signer s;
	priv[31] = 1;
	sign(priv, (const uint8_t *)"x", 1, sig);
	keccak256("x", 1, h);
	CU_ASSERT_EQUAL(kms_recover(h, sig, &s), 0);
	CU_ASSERT_STRING_EQUAL(s.address, "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
	CU_ASSERT_STRING_EQUAL(s.compressed,
			       "0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
	/* Ethereum's v = 27/28 is the same signature. */
	sig[64] += 27;
	CU_ASSERT_EQUAL(kms_recover(h, sig, &s), 0);
	CU_ASSERT_STRING_EQUAL(s.address, "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
	sig[64] = 9;
	CU_ASSERT_EQUAL(kms_recover(h, sig, &s), -EBADMSG);
	memset(sig, 0, 64); /* r = s = 0 recovers nothing */
	sig[64] = 0;
	CU_ASSERT_EQUAL(kms_recover(h, sig, &s), -EBADMSG);
}

static void test_message_layout(void)
{
	uint8_t app[20], pub[32], buf[200];
	uint64_t ts = 0x0102030405060708ULL;
	memset(app, 0xaa, sizeof(app));
	memset(pub, 0xbb, sizeof(pub));
	size_t n = kms_env_message(app, 20, &ts, pub, buf);
	CU_ASSERT_EQUAL(n, 25 + 1 + 20 + 8 + 32);
	CU_ASSERT_EQUAL(memcmp(buf, "dstack-env-encrypt-pubkey:", 26), 0);
	CU_ASSERT_EQUAL(buf[26], 0xaa);
	CU_ASSERT_EQUAL(buf[46], 0x01); /* big-endian timestamp */
	CU_ASSERT_EQUAL(buf[53], 0x08);
	CU_ASSERT_EQUAL(buf[54], 0xbb);
	CU_ASSERT_EQUAL(kms_env_message(app, 20, NULL, pub, buf), 25 + 1 + 20 + 32);
}

/* A KMS signing with a real key (v1 with timestamp, and legacy); the
 * wrong key is refused; v1 is preferred over legacy. */
static void test_check_signed(void)
{
	uint8_t good[32], bad[32], app[20], msg[200], h[32];
	struct kms_answer a = {0};
	struct kms_signer s, want;
	char err[512];
	memset(good, 0x11, 32);
	memset(bad, 0x22, 32);
	memset(app, 0x5a, 20);
	memset(a.public_key, 0x33, 32);
	sign(good, (const uint8_t *)"k", 1, a.signature);
	keccak256("k", 1, h);
	kms_recover(h, a.signature, &want);
	const char *trusted[] = {"0x1111111111111111111111111111111111111111", want.address};

	a.timestamp = 1700000000;
	a.has_timestamp = a.has_signature_v1 = 1;
	sign(good, msg, kms_env_message(app, 20, &a.timestamp, a.public_key, msg), a.signature_v1);
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s.version, 1);
	CU_ASSERT_STRING_EQUAL(s.address, want.address);
	/* The timestamp is signed: another one recovers another signer. */
	a.timestamp++;
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), -EPERM);
	a.timestamp--;
	/* Another app id: refused. */
	app[0] ^= 1;
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), -EPERM);
	app[0] ^= 1;
	/* Signed with the wrong key: refused, naming the signer. */
	sign(bad, msg, kms_env_message(app, 20, &a.timestamp, a.public_key, msg), a.signature_v1);
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, s.address));
	/* Legacy only (no v1): the signature without timestamp. */
	a.has_signature_v1 = a.has_timestamp = 0;
	a.has_signature = 1;
	sign(good, msg, kms_env_message(app, 20, NULL, a.public_key, msg), a.signature);
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s.version, 0);
	/* No signature at all. */
	a.has_signature = 0;
	CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 2, &s, err, sizeof(err)), -EBADMSG);
}

/* The timestamped signature is fresh: signed with a real key at an old,
 * a future and a near timestamp, checked against a fixed "now". */
static void test_fresh(void)
{
	uint8_t good[32], app[20], msg[200];
	struct kms_answer a = {0};
	struct kms_signer s;
	char err[512] = "";
	const uint64_t now = 1800000000;
	memset(good, 0x11, 32);
	memset(app, 0x5a, 20);
	memset(a.public_key, 0x33, 32);
	a.has_timestamp = a.has_signature_v1 = 1;
	const char *trusted[1];
	struct {
		int64_t off;
		uint64_t max_age;
		int want;
	} cases[] = {
	    {0, 300, 0},	   {-300, 300, 0},	   {-301, 300, -ESTALE}, {-86400, 300, -ESTALE},
	    {-86400, 0, 0},	   {60, 300, 0},	   {61, 300, -EBADMSG},  {3600, 0, -EBADMSG},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		a.timestamp = (uint64_t)((int64_t)now + cases[i].off);
		sign(good, msg, kms_env_message(app, 20, &a.timestamp, a.public_key, msg),
		     a.signature_v1);
		trusted[0] = NULL;
		struct kms_signer probe;
		uint8_t h[32];
		keccak256(msg, kms_env_message(app, 20, &a.timestamp, a.public_key, msg), h);
		CU_ASSERT_EQUAL_FATAL(kms_recover(h, a.signature_v1, &probe), 0);
		trusted[0] = probe.address;
		CU_ASSERT_EQUAL(kms_check(&a, app, 20, trusted, 1, &s, err, sizeof(err)), 0);
		int r = kms_check_fresh(&a, &s, now, cases[i].max_age, 60, err, sizeof(err));
		CU_ASSERT_EQUAL(r, cases[i].want);
		if (r == -ESTALE)
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "signature_max_age"));
		if (r == -EBADMSG)
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "in the future"));
	}
	/* A legacy signature has no timestamp to check. */
	s.version = 0;
	a.timestamp = 1;
	CU_ASSERT_EQUAL(kms_check_fresh(&a, &s, now, 300, 60, err, sizeof(err)), 0);
}

static void test_parse_answer(void)
{
	struct kms_answer a;
	char err[256];
	char pk[65], sig[131], js[512];
	memset(pk, 'a', 64);
	pk[64] = 0;
	memset(sig, 'b', 130);
	sig[130] = 0;
	snprintf(js, sizeof(js),
		 "{\"public_key\":\"%s\",\"signature\":\"0x%s\",\"timestamp\":\"42\","
		 "\"signature_v1\":\"%s\"}",
		 pk, sig, sig);
	CU_ASSERT_EQUAL(kms_parse_answer(js, &a, err, sizeof(err)), 0);
	CU_ASSERT(a.has_signature && a.has_signature_v1 && a.has_timestamp);
	CU_ASSERT_EQUAL(a.timestamp, 42);
	CU_ASSERT_EQUAL(a.public_key[0], 0xaa);
	CU_ASSERT_EQUAL(kms_parse_answer("not json", &a, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_EQUAL(kms_parse_answer("{\"signature\":\"00\"}", &a, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_EQUAL(kms_parse_answer("{\"public_key\":\"abcd\"}", &a, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "32 bytes"));
	snprintf(js, sizeof(js), "{\"public_key\":\"%s\",\"timestamp\":-1}", pk);
	CU_ASSERT_EQUAL(kms_parse_answer(js, &a, err, sizeof(err)), -EBADMSG);
	snprintf(js, sizeof(js), "{\"public_key\":\"%s\",\"signature\":\"\"}", pk);
	CU_ASSERT_EQUAL(kms_parse_answer(js, &a, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(a.has_signature, 0);
}

int main(void)
{
	ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	CU_initialize_registry();
	CU_pSuite s = CU_add_suite("kms", NULL, NULL);
	CU_add_test(s, "keccak-256 vectors", test_keccak_vectors);
	CU_add_test(s, "sponge across block boundaries", test_sponge_blocks);
	CU_add_test(s, "dstack's signature vector", test_recover_dstack_vector);
	CU_add_test(s, "Ethereum address of a recovered key", test_eth_address);
	CU_add_test(s, "the signed message", test_message_layout);
	CU_add_test(s, "trust decision", test_check_signed);
	CU_add_test(s, "KMS answer parsing", test_parse_answer);
	CU_add_test(s, "timestamped signature freshness", test_fresh);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	int f = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	secp256k1_context_destroy(ctx);
	return f ? 1 : 0;
}
