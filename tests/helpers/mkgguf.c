/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mkgguf: writes a small, valid GGUF (version 3) model of the llama
 * architecture with pseudo-random weights, loadable by llama.cpp.  Test
 * fixtures are made by the project itself: nothing is downloaded.
 *
 *   mkgguf [--preset tiny|load] [--size-mib N] [--seed N] [--type f32|f16]
 *          [--n-embd N] [--n-layer N] [--n-ff N] [--n-head N] [--n-head-kv N]
 *          [--ctx N] [--name NAME] [--layout] OUTPUT
 *
 * The vocabulary is byte-level SentencePiece style: <unk>, <s>, </s> and the
 * 256 byte tokens <0x00>..<0xFF> (tokenizer.ggml.model "llama"), so any text
 * tokenizes.  The same options and seed give the same bytes; a different seed
 * gives different weights (and so a different digest).  Options apply in order
 * (give --preset first).  --size-mib grows the
 * number of layers until the file is at least that large.  --layout prints one
 * line per tensor, "name offset bytes" with absolute file offsets, so tests
 * can aim a corruption at a tensor that inference must read.
 *
 * Exit status: 0 written, 2 usage error, 4 I/O error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_VERSION  3
#define GGUF_ALIGN    32
#define N_BYTE_TOKENS 256
#define N_SPECIAL     3
#define N_VOCAB	      (N_SPECIAL + N_BYTE_TOKENS)
#define MAX_LAYERS    512
#define MAX_TENSORS   (3 + 9 * MAX_LAYERS)
#define MAX_DIM	      (1u << 16)

/* GGUF metadata value types and ggml tensor types (the subset used here). */
enum { KV_U32 = 4, KV_I32 = 5, KV_F32 = 6, KV_BOOL = 7, KV_STRING = 8, KV_ARRAY = 9 };
enum { GGML_F32 = 0, GGML_F16 = 1 };
/* llama.cpp token types */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_BYTE = 6 };

struct params {
	uint32_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx;
	uint64_t seed, size_mib;
	int wtype; /* GGML_F32 or GGML_F16 for the matrices; norms are always F32 */
	const char *name;
	bool layout;
};

struct tensor {
	char name[64];
	uint32_t n_dims;
	uint64_t ne[2];
	int type;
	uint64_t offset; /* relative to the start of the data section */
	float scale;	 /* weights uniform in [-scale, scale]; 0 means all ones (norms) */
};

struct model {
	struct tensor t[MAX_TENSORS];
	size_t n;
	uint64_t data_size;
};

/* ---------- little-endian output ---------- */

struct out {
	FILE *f; /* NULL: a dry run that only counts bytes and keys */
	uint64_t pos;
	uint64_t nkv;
	int err;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->f && o->err == 0 && n > 0 && fwrite(p, 1, n, o->f) != n)
		o->err = errno ? -errno : -EIO;
	o->pos += n;
}

static void put_le(struct out *o, uint64_t v, unsigned bytes)
{
	uint8_t b[8];
	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(o, b, bytes);
}

static void put_u32(struct out *o, uint32_t v)
{
	put_le(o, v, 4);
}
static void put_u64(struct out *o, uint64_t v)
{
	put_le(o, v, 8);
}

static void put_f32(struct out *o, float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof(x));
	put_u32(o, x);
}

static void put_str(struct out *o, const char *s)
{
	put_u64(o, strlen(s));
	put(o, s, strlen(s));
}

static void put_pad(struct out *o)
{
	static const uint8_t zero[GGUF_ALIGN];
	put(o, zero, (GGUF_ALIGN - o->pos % GGUF_ALIGN) % GGUF_ALIGN);
}

/* ---------- metadata ---------- */

static void put_key(struct out *o, const char *key, uint32_t type)
{
	put_str(o, key);
	put_u32(o, type);
	o->nkv++;
}

static void kv_u32(struct out *o, const char *key, uint32_t v)
{
	put_key(o, key, KV_U32);
	put_u32(o, v);
}

static void kv_f32(struct out *o, const char *key, float v)
{
	put_key(o, key, KV_F32);
	put_f32(o, v);
}

static void kv_bool(struct out *o, const char *key, bool v)
{
	uint8_t b = v;
	put_key(o, key, KV_BOOL);
	put(o, &b, 1);
}

static void kv_str(struct out *o, const char *key, const char *v)
{
	put_key(o, key, KV_STRING);
	put_str(o, v);
}

static void kv_array_head(struct out *o, const char *key, uint32_t type, uint64_t n)
{
	put_key(o, key, KV_ARRAY);
	put_u32(o, type);
	put_u64(o, n);
}

static const char *const special_tokens[N_SPECIAL] = {"<unk>", "<s>", "</s>"};
static const int32_t special_types[N_SPECIAL] = {TOK_UNKNOWN, TOK_CONTROL, TOK_CONTROL};

static void put_vocab(struct out *o)
{
	char piece[8];

	kv_str(o, "tokenizer.ggml.model", "llama");
	kv_array_head(o, "tokenizer.ggml.tokens", KV_STRING, N_VOCAB);
	for (int i = 0; i < N_SPECIAL; i++)
		put_str(o, special_tokens[i]);
	for (int b = 0; b < N_BYTE_TOKENS; b++) {
		snprintf(piece, sizeof(piece), "<0x%02X>", b);
		put_str(o, piece);
	}
	kv_array_head(o, "tokenizer.ggml.scores", KV_F32, N_VOCAB);
	for (int i = 0; i < N_VOCAB; i++)
		put_f32(o, 0.0f);
	kv_array_head(o, "tokenizer.ggml.token_type", KV_I32, N_VOCAB);
	for (int i = 0; i < N_VOCAB; i++)
		put_u32(o, (uint32_t)(i < N_SPECIAL ? special_types[i] : TOK_BYTE));
	kv_u32(o, "tokenizer.ggml.unknown_token_id", 0);
	kv_u32(o, "tokenizer.ggml.bos_token_id", 1);
	kv_u32(o, "tokenizer.ggml.eos_token_id", 2);
	kv_bool(o, "tokenizer.ggml.add_bos_token", true);
	kv_bool(o, "tokenizer.ggml.add_eos_token", false);
}

static void put_metadata(struct out *o, const struct params *p)
{
	kv_str(o, "general.architecture", "llama");
	kv_str(o, "general.name", p->name);
	kv_u32(o, "general.file_type", p->wtype == GGML_F16 ? 1 : 0);
	kv_u32(o, "general.alignment", GGUF_ALIGN);
	kv_u32(o, "llama.context_length", p->n_ctx);
	kv_u32(o, "llama.embedding_length", p->n_embd);
	kv_u32(o, "llama.block_count", p->n_layer);
	kv_u32(o, "llama.feed_forward_length", p->n_ff);
	kv_u32(o, "llama.attention.head_count", p->n_head);
	kv_u32(o, "llama.attention.head_count_kv", p->n_head_kv);
	kv_u32(o, "llama.rope.dimension_count", p->n_embd / p->n_head);
	kv_f32(o, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	kv_u32(o, "llama.vocab_size", N_VOCAB);
	put_vocab(o);
}

/* ---------- tensors ---------- */

/* 1/sqrt(x) by Newton's method: the helper links no libm. */
static float inv_sqrt(float x)
{
	double y = 1.0;
	while (y * y * x > 1.0)
		y /= 2.0;
	for (int i = 0; i < 40; i++)
		y = y * (1.5 - 0.5 * x * y * y);
	return (float)y;
}

static size_t type_size(int type)
{
	return type == GGML_F16 ? 2 : 4;
}

static void add_tensor(struct model *m, const char *name, uint64_t ne0, uint64_t ne1, int type,
		       float scale)
{
	struct tensor *t = &m->t[m->n++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->n_dims = ne1 ? 2 : 1;
	t->ne[0] = ne0;
	t->ne[1] = ne1;
	t->type = ne1 ? type : GGML_F32;
	t->scale = scale;
	t->offset = m->data_size;
	m->data_size += ne0 * (ne1 ? ne1 : 1) * type_size(t->type);
	m->data_size = (m->data_size + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
}

static void add_block(struct model *m, const struct params *p, uint32_t i)
{
	uint64_t kv = (uint64_t)p->n_embd / p->n_head * p->n_head_kv;
	float s_embd = inv_sqrt((float)p->n_embd), s_ff = inv_sqrt((float)p->n_ff);
	static const char *const names[] = {"attn_norm", "attn_q",	"attn_k",
					    "attn_v",	 "attn_output", "ffn_norm",
					    "ffn_gate",	 "ffn_down",	"ffn_up"};
	const uint64_t ne[9][2] = {
		{p->n_embd, 0},	      {p->n_embd, p->n_embd}, {p->n_embd, kv},
		{p->n_embd, kv},      {p->n_embd, p->n_embd}, {p->n_embd, 0},
		{p->n_embd, p->n_ff}, {p->n_ff, p->n_embd},   {p->n_embd, p->n_ff}};
	char name[64];

	for (int k = 0; k < 9; k++) {
		snprintf(name, sizeof(name), "blk.%u.%s.weight", i, names[k]);
		add_tensor(m, name, ne[k][0], ne[k][1], p->wtype,
			   ne[k][1] == 0 ? 0.0f : (k == 7 ? s_ff : s_embd));
	}
}

static void build_model(struct model *m, const struct params *p)
{
	m->n = 0;
	m->data_size = 0;
	add_tensor(m, "token_embd.weight", p->n_embd, N_VOCAB, p->wtype, 1.0f);
	for (uint32_t i = 0; i < p->n_layer; i++)
		add_block(m, p, i);
	add_tensor(m, "output_norm.weight", p->n_embd, 0, GGML_F32, 0.0f);
	add_tensor(m, "output.weight", p->n_embd, N_VOCAB, p->wtype, inv_sqrt((float)p->n_embd));
}

static void put_tensor_infos(struct out *o, const struct model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct tensor *t = &m->t[i];
		put_str(o, t->name);
		put_u32(o, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			put_u64(o, t->ne[d]);
		put_u32(o, (uint32_t)t->type);
		put_u64(o, t->offset);
	}
}

/* ---------- weights ---------- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float uniform(uint64_t *state)
{
	return (float)(splitmix64(state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* IEEE 754 binary32 to binary16, round to nearest even, subnormals kept. */
static uint16_t f32_to_f16(float f)
{
	uint32_t x, mant, half, rem, shift;
	int32_t exp;

	memcpy(&x, &f, sizeof(x));
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	mant = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)
		return sign | 0x7c00 | (mant ? 0x200 : 0);
	if (exp >= 31)
		return sign | 0x7c00;
	if (exp <= 0) {
		if (exp < -10)
			return sign;
		mant |= 0x800000;
		shift = (uint32_t)(14 - exp);
		half = mant >> shift;
		rem = mant & ((1u << shift) - 1);
		if (rem > (1u << (shift - 1)) || (rem == (1u << (shift - 1)) && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	half = ((uint32_t)exp << 10) | (mant >> 13);
	rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
		half++; /* a carry into the exponent is the correct rounding */
	return (uint16_t)(sign | half);
}

/* Streams one tensor's values in row-major order, then the alignment padding.
 * Each tensor has its own PRNG stream, derived from the seed and its index. */
static void put_tensor_data(struct out *o, const struct tensor *t, uint64_t seed, size_t index)
{
	uint8_t buf[8192];
	uint64_t state = seed * 0x100000001b3ull + index, n = t->ne[0] * (t->ne[1] ? t->ne[1] : 1);
	size_t esz = type_size(t->type), fill = 0;

	for (uint64_t i = 0; i < n; i++) {
		float v = t->scale == 0.0f ? 1.0f : uniform(&state) * t->scale;
		if (t->type == GGML_F16) {
			uint16_t h = f32_to_f16(v);
			buf[fill] = (uint8_t)h;
			buf[fill + 1] = (uint8_t)(h >> 8);
		} else {
			uint32_t x;
			memcpy(&x, &v, sizeof(x));
			for (int b = 0; b < 4; b++)
				buf[fill + b] = (uint8_t)(x >> (8 * b));
		}
		fill += esz;
		if (fill == sizeof(buf)) {
			put(o, buf, fill);
			fill = 0;
		}
	}
	put(o, buf, fill);
	put_pad(o);
}

/* ---------- the file ---------- */

static void put_header(struct out *o, const struct params *p, const struct model *m, uint64_t nkv)
{
	put(o, "GGUF", 4);
	put_u32(o, GGUF_VERSION);
	put_u64(o, m->n);
	put_u64(o, nkv);
	put_metadata(o, p);
	put_tensor_infos(o, m);
	put_pad(o);
}

static int write_gguf(FILE *f, const struct params *p, const struct model *m)
{
	struct out dry = {0}, o = {.f = f};

	put_metadata(&dry, p);
	put_header(&o, p, m, dry.nkv);
	if (p->layout)
		for (size_t i = 0; i < m->n; i++)
			printf("%s %llu %llu\n", m->t[i].name,
			       (unsigned long long)(o.pos + m->t[i].offset),
			       (unsigned long long)(i + 1 < m->n
							    ? m->t[i + 1].offset - m->t[i].offset
							    : m->data_size - m->t[i].offset));
	for (size_t i = 0; i < m->n && o.err == 0; i++)
		put_tensor_data(&o, &m->t[i], p->seed, i);
	if (o.err == 0 && fflush(f) != 0)
		o.err = -errno;
	return o.err;
}

/* Grows n_layer until the file holds at least size_mib MiB of tensor data. */
static void fit_size(struct model *m, struct params *p)
{
	build_model(m, p);
	while (p->size_mib && m->data_size < p->size_mib * 1024 * 1024 && p->n_layer < MAX_LAYERS) {
		p->n_layer++;
		build_model(m, p);
	}
}

/* ---------- options ---------- */

/* Sets the dimensions and weight type; seed, size, name and --layout are kept. */
static void preset(struct params *p, const char *name)
{
	bool load = strcmp(name, "load") == 0;

	/* load: ~280 MB of F16, the load-time benchmark model;
	 * tiny: a few hundred KiB of F32, several 64 KiB chunks. */
	p->n_embd = load ? 1024 : 64;
	p->n_layer = load ? 11 : 2;
	p->n_ff = load ? 2816 : 128;
	p->n_head = p->n_head_kv = load ? 16 : 4;
	p->n_ctx = load ? 512 : 256;
	p->wtype = load ? GGML_F16 : GGML_F32;
	if (!p->name || strncmp(p->name, "agfs-", 5) == 0)
		p->name = load ? "agfs-load" : "agfs-tiny";
}

static int parse_u(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static const struct option longopts[] = {{"preset", required_argument, NULL, 'P'},
					 {"size-mib", required_argument, NULL, 'S'},
					 {"seed", required_argument, NULL, 's'},
					 {"type", required_argument, NULL, 't'},
					 {"n-embd", required_argument, NULL, 'e'},
					 {"n-layer", required_argument, NULL, 'l'},
					 {"n-ff", required_argument, NULL, 'f'},
					 {"n-head", required_argument, NULL, 'h'},
					 {"n-head-kv", required_argument, NULL, 'k'},
					 {"ctx", required_argument, NULL, 'c'},
					 {"name", required_argument, NULL, 'n'},
					 {"layout", no_argument, NULL, 'L'},
					 {NULL, 0, NULL, 0}};

static int set_dim(int c, const char *arg, struct params *p)
{
	uint64_t v;
	uint32_t *dims[] = {&p->n_embd, &p->n_layer,   &p->n_ff,
			    &p->n_head, &p->n_head_kv, &p->n_ctx};
	const char *which = strchr("elfhkc", c);

	if (parse_u(arg, c == 'l' ? MAX_LAYERS : MAX_DIM, &v) < 0)
		return -EINVAL;
	*dims[which - "elfhkc"] = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct params *p)
{
	int c;
	uint64_t seed = 1;

	p->seed = 1;
	preset(p, "tiny");
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'P' && (strcmp(optarg, "tiny") == 0 || strcmp(optarg, "load") == 0))
			preset(p, optarg);
		else if (c == 'S' && parse_u(optarg, 1u << 20, &p->size_mib) == 0)
			;
		else if (c == 's' &&
			 (strcmp(optarg, "0") == 0 || parse_u(optarg, UINT64_MAX, &seed) == 0))
			p->seed = strcmp(optarg, "0") == 0 ? 0 : seed;
		else if (c == 't' && (strcmp(optarg, "f32") == 0 || strcmp(optarg, "f16") == 0))
			p->wtype = optarg[1] == '3' ? GGML_F32 : GGML_F16;
		else if (c && strchr("elfhkc", c) && set_dim(c, optarg, p) == 0)
			;
		else if (c == 'n' && strlen(optarg) < 128)
			p->name = optarg;
		else if (c == 'L')
			p->layout = true;
		else
			return -EINVAL;
	}
	if (optind != argc - 1 || p->n_embd % p->n_head || p->n_head % p->n_head_kv ||
	    (p->n_embd / p->n_head) % 2)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	static struct model m;
	struct params p = {0};
	const char *path;
	FILE *f;
	int r;

	if (parse_args(argc, argv, &p) < 0) {
		fprintf(stderr,
			"usage: mkgguf [--preset tiny|load] [--size-mib N] [--seed N] "
			"[--type f32|f16] [--n-embd N] [--n-layer N] [--n-ff N] [--n-head N] "
			"[--n-head-kv N] [--ctx N] [--name NAME] [--layout] OUTPUT\n");
		return 2;
	}
	path = argv[optind];
	fit_size(&m, &p);
	f = fopen(path, "wbx");
	if (!f && errno == EEXIST && unlink(path) == 0)
		f = fopen(path, "wbx");
	if (!f) {
		fprintf(stderr, "mkgguf: cannot create %s: %s\n", path, strerror(errno));
		return 4;
	}
	r = write_gguf(f, &p, &m);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r < 0) {
		fprintf(stderr, "mkgguf: cannot write %s: %s\n", path, strerror(-r));
		unlink(path);
		return 4;
	}
	return 0;
}
