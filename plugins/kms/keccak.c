/*
 * keccak: Keccak-f[1600] and the Keccak-256 sponge (rate 136 bytes).
 * Written out because no Debian 12 library offers the pre-standard padding
 * (OpenSSL 3.0 has SHA3-256 only; its KECCAK-256 came in 3.2).
 */
#include "keccak.h"

#include <string.h>

static const uint64_t rc[24] = {
	0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
	0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
	0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
	0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
	0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
	0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
	0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
	0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
/* rho rotation and pi destination, walked along the pi cycle from lane 1 */
static const unsigned rotc[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
				  27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const unsigned piln[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
				  15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static inline uint64_t rol(uint64_t x, unsigned n)
{
	return (x << n) | (x >> (64 - n));
}

static void keccakf(uint64_t st[25])
{
	uint64_t bc[5], t;
	for (int r = 0; r < 24; r++) {
		for (int i = 0; i < 5; i++) /* theta */
			bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
		for (int i = 0; i < 5; i++) {
			t = bc[(i + 4) % 5] ^ rol(bc[(i + 1) % 5], 1);
			for (int j = 0; j < 25; j += 5)
				st[j + i] ^= t;
		}
		t = st[1]; /* rho and pi */
		for (int i = 0; i < 24; i++) {
			unsigned j = piln[i];
			bc[0] = st[j];
			st[j] = rol(t, rotc[i]);
			t = bc[0];
		}
		for (int j = 0; j < 25; j += 5) { /* chi */
			for (int i = 0; i < 5; i++)
				bc[i] = st[j + i];
			for (int i = 0; i < 5; i++)
				st[j + i] ^= (~bc[(i + 1) % 5]) & bc[(i + 2) % 5];
		}
		st[0] ^= rc[r]; /* iota */
	}
}

/* Lanes are little-endian whatever the host's byte order. */
static void absorb_block(uint64_t st[25], const uint8_t *b, size_t rate)
{
	for (size_t i = 0; i < rate / 8; i++) {
		uint64_t v = 0;
		for (int k = 7; k >= 0; k--)
			v = (v << 8) | b[i * 8 + (size_t)k];
		st[i] ^= v;
	}
	keccakf(st);
}

static void sponge256(const void *data, size_t len, uint8_t pad, uint8_t out[32])
{
	enum { RATE = 136 };
	uint64_t st[25] = {0};
	const uint8_t *p = data;
	uint8_t last[RATE];
	while (len >= RATE) {
		absorb_block(st, p, RATE);
		p += RATE;
		len -= RATE;
	}
	memset(last, 0, sizeof(last));
	if (len)
		memcpy(last, p, len);
	last[len] ^= pad;
	last[RATE - 1] ^= 0x80;
	absorb_block(st, last, RATE);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 8; k++)
			out[i * 8 + k] = (uint8_t)(st[i] >> (8 * k));
}

void keccak256(const void *data, size_t len, uint8_t out[32])
{
	sponge256(data, len, 0x01, out); /* Keccak's padding */
}

void sha3_256(const void *data, size_t len, uint8_t out[32])
{
	sponge256(data, len, 0x06, out); /* FIPS 202's domain bits */
}
