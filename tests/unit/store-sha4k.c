/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ag_sha256_4k (several 4 KiB blocks hashed at once, with the CPU's SHA
 * instructions when it has them) against OpenSSL block by block: every
 * count from 1 to 13 (each remainder of the lanes), a whole group of 64,
 * unaligned input, blocks of all zeros and all ones, one bit flipped in
 * each lane; and the known digest of 4096 zero bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/sha4k.h"
#include "tests/tap.h"

#define BLK AG_SHA4K_BLOCK

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint8_t next_byte(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (uint8_t)(rng >> 29);
}

/* ag_sha256_4k over n blocks at p equals OpenSSL's digest of each. */
static int same_as_openssl(const uint8_t *p, size_t n)
{
	uint8_t(*got)[32] = calloc(n, 32);
	int bad = got == NULL;
	if (got)
		ag_sha256_4k(p, n, got);
	for (size_t i = 0; !bad && i < n; i++) {
		uint8_t want[32];
		ag_sha256_fast(p + i * BLK, BLK, want);
		bad = memcmp(got[i], want, 32) != 0;
	}
	free(got);
	return !bad;
}

int main(void)
{
	diag("SHA instructions %s", ag_sha4k_accelerated() ? "used" : "not available: OpenSSL");
	size_t max = 64;
	uint8_t *buf = malloc(max * BLK + 1);
	if (!buf)
		bail("no memory");
	for (size_t i = 0; i < max * BLK + 1; i++)
		buf[i] = next_byte();

	for (size_t n = 1; n <= 13; n++)
		ok(same_as_openssl(buf, n), "%zu random blocks", n);
	ok(same_as_openssl(buf, max), "a group of %zu blocks", max);
	ok(same_as_openssl(buf + 1, 7), "7 blocks at an unaligned address");

	uint8_t zero[3][32];
	memset(buf, 0, 3 * BLK);
	ag_sha256_4k(buf, 3, zero);
	uint8_t want[32];
	static const char hex[] =
		"ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7";
	for (int i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &want[i]);
	ok(!memcmp(zero[0], want, 32) && !memcmp(zero[2], want, 32),
	   "4096 zero bytes hash to sha256:ad7facb2...");
	memset(buf, 0xff, 5 * BLK);
	ok(same_as_openssl(buf, 5), "blocks of 0xff");
	for (int lane = 0; lane < 3; lane++) {
		uint8_t h[3][32];
		memset(buf, 0, 3 * BLK);
		buf[lane * BLK + 4095] ^= 1;
		ag_sha256_4k(buf, 3, h);
		ok(memcmp(h[lane], want, 32) && !memcmp(h[(lane + 1) % 3], want, 32) &&
			   same_as_openssl(buf, 3),
		   "a bit flipped in the last byte of lane %d changes that lane only", lane);
	}
	free(buf);
	return done_testing();
}
