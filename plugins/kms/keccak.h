/*
 * keccak: Keccak-256 as Ethereum and dstack's KMS use it (the original
 * Keccak padding 0x01, not SHA3-256's 0x06).
 */
#ifndef CVMM_KECCAK_H
#define CVMM_KECCAK_H

#include <stddef.h>
#include <stdint.h>

void keccak256(const void *data, size_t len, uint8_t out[32]);
/* The same permutation with FIPS 202's padding: only for the unit test,
 * which checks the sponge against an independent SHA3-256 (Python's). */
void sha3_256(const void *data, size_t len, uint8_t out[32]);

#endif
