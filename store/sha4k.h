/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 of 4 KiB blocks, several at once (store/sha4k.c). */
#ifndef AG_STORE_SHA4K_H
#define AG_STORE_SHA4K_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_SHA4K_BLOCK 4096

/* out[i] = SHA-256 of the 4096 bytes at blocks + i * 4096, for i < n. */
void ag_sha256_4k(const void *blocks, size_t n, uint8_t (*out)[32]);
/* Whether the CPU's SHA instructions or AVX-512 do it (else OpenSSL, one
 * at a time). */
bool ag_sha4k_accelerated(void);

/* The ways of doing it, slowest first, and the fastest this CPU has. */
enum ag_sha4k_impl { AG_SHA4K_OPENSSL, AG_SHA4K_SHANI, AG_SHA4K_AVX512 };
enum ag_sha4k_impl ag_sha4k_best(void);
/* Whether this CPU can do it impl's way. */
bool ag_sha4k_has(enum ag_sha4k_impl impl);
/* ag_sha256_4k done no faster than impl (for tests: each way must agree). */
void ag_sha256_4k_impl(const void *blocks, size_t n, uint8_t (*out)[32], enum ag_sha4k_impl impl);

#endif
