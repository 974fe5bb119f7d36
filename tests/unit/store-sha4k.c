/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ag_sha256_4k (several 4 KiB blocks hashed at once, with AVX-512 or the
 * CPU's SHA instructions when it has them) against OpenSSL block by block,
 * done each way this CPU can (OpenSSL, SHA-NI, AVX-512): every count from 1
 * to 40 (each remainder of the two and the sixteen lanes, full and masked
 * sixteen-lane passes), a group of 64, unaligned input, blocks of all zeros
 * and all ones, one bit flipped in each of 19 lanes; and the known digest
 * of 4096 zero bytes.
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

static enum ag_sha4k_impl impl;

/* impl's digests of n blocks at p equal OpenSSL's digest of each. */
static int same_as_openssl(const uint8_t *p, size_t n)
{
	uint8_t(*got)[32] = calloc(n, 32);
	int bad = got == NULL;
	if (got)
		ag_sha256_4k_impl(p, n, got, impl);
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
	static const char *const names[] = {"OpenSSL", "SHA-NI", "AVX-512"};
	enum ag_sha4k_impl best = ag_sha4k_best();
	diag("fastest way on this CPU: %s", names[best]);
	size_t max = 64;
	uint8_t *buf = malloc(max * BLK + 1);
	if (!buf)
		bail("no memory");
	uint8_t want[32];
	static const char hex[] =
		"ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7";
	for (int i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &want[i]);

	for (impl = AG_SHA4K_OPENSSL; impl <= AG_SHA4K_AVX512; impl++) {
		const char *w = names[impl];
		if (!ag_sha4k_has(impl)) {
			diag("skip: the %s way is not tested, this CPU cannot do it", w);
			continue;
		}
		rng = 0x243f6a8885a308d3ull;
		for (size_t i = 0; i < max * BLK + 1; i++)
			buf[i] = next_byte();
		int all = 1;
		for (size_t n = 1; n <= 40; n++)
			all &= same_as_openssl(buf, n);
		ok(all, "%s: every count of random blocks from 1 to 40", w);
		ok(same_as_openssl(buf, max), "%s: a group of %zu blocks", w, max);
		ok(same_as_openssl(buf + 1, 7) && same_as_openssl(buf + 1, 21),
		   "%s: 7 and 21 blocks at an unaligned address", w);

		uint8_t zero[3][32];
		memset(buf, 0, 3 * BLK);
		ag_sha256_4k_impl(buf, 3, zero, impl);
		ok(!memcmp(zero[0], want, 32) && !memcmp(zero[2], want, 32),
		   "%s: 4096 zero bytes hash to sha256:ad7facb2...", w);
		memset(buf, 0xff, 17 * BLK);
		ok(same_as_openssl(buf, 17), "%s: blocks of 0xff", w);
		int lanes_ok = 1;
		for (int lane = 0; lane < 19; lane++) {
			uint8_t h[19][32];
			memset(buf, 0, 19 * BLK);
			buf[lane * BLK + 4095] ^= 1;
			ag_sha256_4k_impl(buf, 19, h, impl);
			for (int l = 0; l < 19; l++)
				lanes_ok &= (memcmp(h[l], want, 32) != 0) == (l == lane);
			lanes_ok &= same_as_openssl(buf, 19);
		}
		ok(lanes_ok,
		   "%s: a bit flipped in the last byte of any of 19 lanes changes that lane only",
		   w);
	}
	uint8_t z[1][32];
	memset(buf, 0, BLK);
	ag_sha256_4k(buf, 1, z);
	ok(!memcmp(z[0], want, 32), "ag_sha256_4k (the fastest way) agrees");
	free(buf);
	return done_testing();
}
