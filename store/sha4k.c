/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 of many 4 KiB blocks at once (every data and tree block of a
 * verified read).  With the x86 SHA extensions one message is bound by the
 * latency of sha256rnds2, each round waiting for the last; the blocks of a
 * read are independent messages, so they are hashed LANES at a time with
 * their rounds interleaved, which keeps the SHA unit busier: 1.2-1.3x the
 * throughput of OpenSSL's one-message code on the Xeon (Sapphire Rapids)
 * this was measured on; three or four lanes gave no more (too few xmm
 * registers for the SSE-encoded SHA instructions).
 *
 * With AVX-512 there is a faster way still: sixteen messages in the sixteen
 * 32-bit lanes of a zmm register, each round's rotations, additions and
 * Ch/Maj (one vpternlogd each) done for all sixteen at once.  On the same
 * Xeon that is 2.8 GB/s against 1.5 for the two SHA-NI lanes and 1.2 for
 * OpenSSL; a read's blocks go sixteen at a time this way, and a remainder
 * of fewer than nine goes to the SHA instructions (a masked sixteen-lane
 * pass costs as much as a full one).  The constant padding block's message
 * schedule is worked out once.  Written from the SHA-256 specification
 * (FIPS 180-4) and Intel's description of the instructions; without them,
 * OpenSSL hashes each block.
 *
 * A 4 KiB message is 64 blocks of 64 bytes plus one padding block that is
 * always the same (0x80, zeros, the length 32768 in bits).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "store/internal.h"
#include "store/sha4k.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

#define LANES  2
#define TARGET __attribute__((target("sha,sse4.1,ssse3")))
#define INLINE __attribute__((always_inline)) inline

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2};
static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
static const uint8_t PAD[64] = {0x80, [62] = 0x80}; /* 4096 * 8 = 0x8000 bits */

/* One 64-byte block of each of n messages: the state is (s0, s1) = (ABEF,
 * CDGH), the word order the instructions use. */
TARGET static INLINE void compress(__m128i *s0, __m128i *s1, const uint8_t *const *p, int n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
	__m128i w[LANES][4], a0[LANES], a1[LANES];
	for (int l = 0; l < n; l++) {
		a0[l] = s0[l];
		a1[l] = s1[l];
	}
#pragma GCC unroll 16
	for (int g = 0; g < 16; g++) {
		const __m128i k = _mm_loadu_si128((const __m128i *)&K[4 * g]);
#pragma GCC unroll 2
		for (int l = 0; l < n; l++) {
			if (g < 4) {
				__m128i m = _mm_loadu_si128((const __m128i *)(p[l] + 16 * g));
				w[l][g] = _mm_shuffle_epi8(m, bswap);
			} else {
				/* W[i..i+3] from W[i-16..i-1] (message schedule) */
				__m128i t = _mm_sha256msg1_epu32(w[l][g & 3], w[l][(g + 1) & 3]);
				t = _mm_add_epi32(t, _mm_alignr_epi8(w[l][(g + 3) & 3],
								     w[l][(g + 2) & 3], 4));
				w[l][g & 3] = _mm_sha256msg2_epu32(t, w[l][(g + 3) & 3]);
			}
			__m128i m = _mm_add_epi32(w[l][g & 3], k);
			s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], m);
			s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(m, 0x0e));
		}
	}
	for (int l = 0; l < n; l++) {
		s0[l] = _mm_add_epi32(s0[l], a0[l]);
		s1[l] = _mm_add_epi32(s1[l], a1[l]);
	}
}

/* n (1..LANES) 4 KiB messages in[0..n-1] into out[0..n-1]. */
TARGET static INLINE void hash_lanes(const uint8_t *const *in, uint8_t (*out)[32], int n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
	__m128i s0[LANES], s1[LANES];
	const uint8_t *p[LANES];
	__m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&H0[0]), 0xb1);
	__m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&H0[4]), 0x1b);
	for (int l = 0; l < n; l++) {
		s0[l] = _mm_alignr_epi8(abcd, efgh, 8);	   /* ABEF */
		s1[l] = _mm_blend_epi16(efgh, abcd, 0xf0); /* CDGH */
	}
	for (int b = 0; b < AG_SHA4K_BLOCK / 64; b++) {
		for (int l = 0; l < n; l++)
			p[l] = in[l] + 64 * b;
		compress(s0, s1, p, n);
	}
	for (int l = 0; l < n; l++)
		p[l] = PAD;
	compress(s0, s1, p, n);
	for (int l = 0; l < n; l++) {
		__m128i t = _mm_shuffle_epi32(s0[l], 0x1b); /* FEBA -> ABEF in memory order */
		__m128i u = _mm_shuffle_epi32(s1[l], 0xb1);
		__m128i a = _mm_blend_epi16(t, u, 0xf0); /* ABCD */
		__m128i e = _mm_alignr_epi8(u, t, 8);	 /* EFGH */
		_mm_storeu_si128((__m128i *)out[l], _mm_shuffle_epi8(a, bswap));
		_mm_storeu_si128((__m128i *)(out[l] + 16), _mm_shuffle_epi8(e, bswap));
	}
}

TARGET static void hash1(const uint8_t *const *in, uint8_t (*out)[32])
{
	hash_lanes(in, out, 1);
}
TARGET static void hash2(const uint8_t *const *in, uint8_t (*out)[32])
{
	hash_lanes(in, out, 2);
}

static bool have_sha_ni(void)
{
	/* every thread that finds it unset computes the same value */
	static atomic_int have = -1;
	int h = atomic_load_explicit(&have, memory_order_relaxed);
	if (h < 0) {
		/* CPUID leaf 7 EBX bit 29: the SHA extensions (asked directly:
		 * clang's __builtin_cpu_supports does not know "sha") */
		unsigned a, b, c, d;
		h = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
		    __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
		atomic_store_explicit(&have, h, memory_order_relaxed);
	}
	return h > 0;
}

static void hash_ni(const uint8_t *blocks, size_t n, uint8_t (*out)[32])
{
	size_t i = 0;
	for (; i + LANES <= n; i += LANES) {
		const uint8_t *in[LANES] = {blocks + i * AG_SHA4K_BLOCK,
					    blocks + (i + 1) * AG_SHA4K_BLOCK};
		hash2(in, out + i);
	}
	if (i < n) {
		const uint8_t *in[1] = {blocks + i * AG_SHA4K_BLOCK};
		hash1(in, out + i);
	}
}

/* ---- sixteen messages in the lanes of AVX-512 registers ---- */

#define T512	      __attribute__((target("avx512f,avx512bw")))
#define ROR(x, n)     _mm512_ror_epi32((x), (n))
#define XOR3(a, b, c) _mm512_ternarylogic_epi32((a), (b), (c), 0x96)
#define CH(e, f, g)   _mm512_ternarylogic_epi32((e), (f), (g), 0xca) /* e ? f : g */
#define MAJ(a, b, c)  _mm512_ternarylogic_epi32((a), (b), (c), 0xe8)
#define ADD(a, b)     _mm512_add_epi32((a), (b))

/* K[t] + W[t] of the padding block, whose schedule is the same for every
 * 4 KiB message: worked out on first use. */
static uint32_t kpad[64];
static pthread_once_t kpad_once = PTHREAD_ONCE_INIT;

static uint32_t ror32(uint32_t x, int n)
{
	return (x >> n) | (x << (32 - n));
}

static void kpad_init(void)
{
	uint32_t w[64] = {0};
	for (int t = 0; t < 16; t++)
		w[t] = (uint32_t)PAD[4 * t] << 24 | (uint32_t)PAD[4 * t + 1] << 16 |
		       (uint32_t)PAD[4 * t + 2] << 8 | PAD[4 * t + 3];
	for (int t = 16; t < 64; t++) {
		uint32_t x = w[t - 15], y = w[t - 2];
		w[t] = w[t - 16] + (ror32(x, 7) ^ ror32(x, 18) ^ (x >> 3)) + w[t - 7] +
		       (ror32(y, 17) ^ ror32(y, 19) ^ (y >> 10));
	}
	for (int t = 0; t < 64; t++)
		kpad[t] = K[t] + w[t];
}

/* One round on the state s[0..7] = a..h of every lane, kw = K[t] + W[t]. */
#define ROUND(s, kw)                                                                           \
	do {                                                                                   \
		__m512i t1_ = ADD(ADD(s[7], XOR3(ROR(s[4], 6), ROR(s[4], 11), ROR(s[4], 25))), \
				  ADD(CH(s[4], s[5], s[6]), (kw)));                            \
		__m512i t2_ = ADD(XOR3(ROR(s[0], 2), ROR(s[0], 13), ROR(s[0], 22)),            \
				  MAJ(s[0], s[1], s[2]));                                      \
		s[7] = s[6];                                                                   \
		s[6] = s[5];                                                                   \
		s[5] = s[4];                                                                   \
		s[4] = ADD(s[3], t1_);                                                         \
		s[3] = s[2];                                                                   \
		s[2] = s[1];                                                                   \
		s[1] = s[0];                                                                   \
		s[0] = ADD(t1_, t2_);                                                          \
	} while (0)

/* Lane l of w[j] = word j of the 64-byte block at p + l * 4096, for the
 * n messages there (zero in the other lanes): the blocks loaded whole and
 * the 16 x 16 words transposed, which costs less than sixteen gathers
 * (2.85 against 2.30 GB/s on a Xeon of the Ice Lake kind). */
T512 static INLINE void load16(const uint8_t *p, int n, __m512i w[16])
{
	__m512i r[16], t[16];
#pragma GCC unroll 16
	for (int l = 0; l < 16; l++) {
		r[l] = _mm512_setzero_si512();
		if (l < n)
			r[l] = _mm512_loadu_si512((const void *)(p + (size_t)l * AG_SHA4K_BLOCK));
	}
	/* 32-bit pairs, then 64-bit, then 128-bit lanes twice */
#pragma GCC unroll 8
	for (int l = 0; l < 16; l += 2) {
		t[l] = _mm512_unpacklo_epi32(r[l], r[l + 1]);
		t[l + 1] = _mm512_unpackhi_epi32(r[l], r[l + 1]);
	}
#pragma GCC unroll 4
	for (int l = 0; l < 16; l += 4) {
		r[l] = _mm512_unpacklo_epi64(t[l], t[l + 2]);
		r[l + 1] = _mm512_unpackhi_epi64(t[l], t[l + 2]);
		r[l + 2] = _mm512_unpacklo_epi64(t[l + 1], t[l + 3]);
		r[l + 3] = _mm512_unpackhi_epi64(t[l + 1], t[l + 3]);
	}
#pragma GCC unroll 2
	for (int l = 0; l < 16; l += 8)
		for (int k = 0; k < 4; k++) {
			t[l + k] = _mm512_shuffle_i32x4(r[l + k], r[l + 4 + k], 0x88);
			t[l + 4 + k] = _mm512_shuffle_i32x4(r[l + k], r[l + 4 + k], 0xdd);
		}
	for (int k = 0; k < 8; k++) {
		r[k] = _mm512_shuffle_i32x4(t[k], t[k + 8], 0x88);
		r[k + 8] = _mm512_shuffle_i32x4(t[k], t[k + 8], 0xdd);
	}
	for (int k = 0; k < 16; k++)
		w[k] = r[k];
}

/* The n (1..16) 4 KiB messages at base, base + 4096, ... into out[0..n-1];
 * lane l holds message l. */
T512 static void hash16(const uint8_t *base, uint8_t (*out)[32], int n)
{
	const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
	__m512i h[8], s[8];
	for (int i = 0; i < 8; i++)
		h[i] = _mm512_set1_epi32((int)H0[i]);
	for (int b = 0; b < AG_SHA4K_BLOCK / 64; b++) {
		const uint8_t *p = base + 64 * b;
		__m512i w[16];
		for (int i = 0; i < 8; i++)
			s[i] = h[i];
		load16(p, n, w);
#pragma GCC unroll 16
		for (int j = 0; j < 16; j++)
			w[j] = _mm512_shuffle_epi8(w[j], bswap);
#pragma GCC unroll 64
		for (int t = 0; t < 64; t++) {
			if (t >= 16) { /* W[t] into the slot of W[t - 16] */
				__m512i x = w[(t - 15) & 15], y = w[(t - 2) & 15];
				__m512i s0 = XOR3(ROR(x, 7), ROR(x, 18), _mm512_srli_epi32(x, 3));
				__m512i s1 = XOR3(ROR(y, 17), ROR(y, 19), _mm512_srli_epi32(y, 10));
				w[t & 15] = ADD(ADD(w[t & 15], s0), ADD(w[(t - 7) & 15], s1));
			}
			ROUND(s, ADD(w[t & 15], _mm512_set1_epi32((int)K[t])));
		}
		for (int i = 0; i < 8; i++)
			h[i] = ADD(h[i], s[i]);
	}
	for (int i = 0; i < 8; i++)
		s[i] = h[i];
#pragma GCC unroll 64
	for (int t = 0; t < 64; t++)
		ROUND(s, _mm512_set1_epi32((int)kpad[t]));
	uint32_t v[8][16];
	for (int i = 0; i < 8; i++)
		_mm512_storeu_si512(v[i], ADD(h[i], s[i]));
	for (int l = 0; l < n; l++)
		for (int i = 0; i < 8; i++) {
			uint32_t x = __builtin_bswap32(v[i][l]);
			memcpy(out[l] + 4 * i, &x, 4);
		}
}

static bool have_avx512(void)
{
	static atomic_int have = -1; /* as in have_sha_ni */
	int h = atomic_load_explicit(&have, memory_order_relaxed);
	if (h < 0) {
		/* libgcc also checks that the OS saves the zmm registers */
		h = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
		atomic_store_explicit(&have, h, memory_order_relaxed);
	}
	return h > 0;
}

static void hash_avx512(const uint8_t *blocks, size_t n, uint8_t (*out)[32], bool ni)
{
	pthread_once(&kpad_once, kpad_init);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		hash16(blocks + i * AG_SHA4K_BLOCK, out + i, 16);
	if (i == n)
		return;
	if (ni && n - i < 9)
		hash_ni(blocks + i * AG_SHA4K_BLOCK, n - i, out + i);
	else
		hash16(blocks + i * AG_SHA4K_BLOCK, out + i, (int)(n - i));
}
#endif

enum ag_sha4k_impl ag_sha4k_best(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx512())
		return AG_SHA4K_AVX512;
	if (have_sha_ni())
		return AG_SHA4K_SHANI;
#endif
	return AG_SHA4K_OPENSSL;
}

bool ag_sha4k_has(enum ag_sha4k_impl impl)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (impl == AG_SHA4K_AVX512)
		return have_avx512();
	if (impl == AG_SHA4K_SHANI)
		return have_sha_ni();
#endif
	return impl == AG_SHA4K_OPENSSL;
}

bool ag_sha4k_accelerated(void)
{
	return ag_sha4k_best() != AG_SHA4K_OPENSSL;
}

void ag_sha256_4k_impl(const void *blocks, size_t n, uint8_t (*out)[32], enum ag_sha4k_impl impl)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (impl == AG_SHA4K_AVX512 && have_avx512()) {
		hash_avx512(blocks, n, out, have_sha_ni());
		return;
	}
	if (impl >= AG_SHA4K_SHANI && have_sha_ni()) {
		hash_ni(blocks, n, out);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		ag_sha256_fast((const uint8_t *)blocks + i * AG_SHA4K_BLOCK, AG_SHA4K_BLOCK,
			       out[i]);
}

void ag_sha256_4k(const void *blocks, size_t n, uint8_t (*out)[32])
{
	static atomic_int best = -1;
	int b = atomic_load_explicit(&best, memory_order_relaxed);
	if (b < 0) {
		b = (int)ag_sha4k_best();
		atomic_store_explicit(&best, b, memory_order_relaxed);
	}
	ag_sha256_4k_impl(blocks, n, out, (enum ag_sha4k_impl)b);
}
