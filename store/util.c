/* SPDX-License-Identifier: Apache-2.0 */
/* Errors, digests, SHA-256 and small I/O helpers. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "store/internal.h"

static const char *const ag_errstr[] = {
	[AG_ENOTSTORE - AG_EBASE] = "not an agfs store",
	[AG_EFORMAT - AG_EBASE] = "store format version not supported by this build",
	[AG_EDIGEST - AG_EBASE] = "content does not match its SHA-256 digest",
	[AG_ECORRUPT - AG_EBASE] = "object or record is corrupt",
	[AG_EBADNAME - AG_EBASE] = "malformed name or digest",
	[AG_ELOCKED - AG_EBASE] = "another writer holds the store lock",
	[AG_ECHAIN - AG_EBASE] = "audit hash chain is broken",
	[AG_EINDEX - AG_EBASE] = "the store's index is damaged",
	[AG_EOLDFORMAT - AG_EBASE] = "the store is in format 1; run `agstore migrate` (or "
				     "re-import) to convert it to format 2",
};

const char *ag_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err > AG_EBASE && err < AG_ELAST)
		return ag_errstr[err - AG_EBASE];
	return strerror(err);
}

int ag_errno(void)
{
	return errno ? -errno : -EIO;
}

void ag_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void ag_digest_hex(const ag_digest *d, char out[AG_HEX_LEN + 1])
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hx[d->b[i] >> 4];
		out[2 * i + 1] = hx[d->b[i] & 15];
	}
	out[AG_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ag_digest_parse(const char *hex, size_t len, ag_digest *out)
{
	if (!hex || len != AG_HEX_LEN)
		return -AG_EBADNAME;
	for (size_t i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -AG_EBADNAME;
		out->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool ag_digest_eq(const ag_digest *a, const ag_digest *b)
{
	return memcmp(a->b, b->b, 32) == 0;
}

/* One fetched SHA-256 implementation for the whole process: OpenSSL 3's
 * implicit fetch on every init is measurably slow on the read path. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}
static const EVP_MD *md(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

struct ag_hash {
	EVP_MD_CTX *ctx;
};

ag_hash *ag_hash_new(void)
{
	ag_hash *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, md(), NULL)) {
		ag_hash_free(h);
		return NULL;
	}
	return h;
}

void ag_hash_update(ag_hash *h, const void *buf, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, buf, len);
}

void ag_hash_final(ag_hash *h, ag_digest *out)
{
	unsigned int n = 32;
	EVP_DigestFinal_ex(h->ctx, out->b, &n);
	EVP_DigestInit_ex(h->ctx, md(), NULL);
}

void ag_hash_free(ag_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

/* One context per thread, reused: EVP_Digest() allocates and frees one per
 * call, a cost that shows at one call per 4 KiB block.  Freed at thread
 * exit. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void ctx_key_init(void)
{
	pthread_key_create(&ctx_key, ctx_free);
}

void ag_sha256_fast(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	pthread_once(&ctx_once, ctx_key_init);
	EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
	if (!ctx && (ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(ctx_key, ctx) != 0) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	if (!ctx || !EVP_DigestInit_ex(ctx, md(), NULL) || !EVP_DigestUpdate(ctx, buf, len) ||
	    !EVP_DigestFinal_ex(ctx, out, &n))
		EVP_Digest(buf, len, out, &n, md(), NULL);
}

void ag_sha256(const void *buf, size_t len, ag_digest *out)
{
	ag_sha256_fast(buf, len, out->b);
}

int ag_fsync_dir(int dirfd, const char *rel)
{
	_cleanup_close_ int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ag_errno();
	if (fsync(fd) < 0)
		return ag_errno();
	return 0;
}

int64_t ag_now(void)
{
	return (int64_t)time(NULL);
}

void ag_time_iso(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool ag_chunk_size_ok(uint32_t cs)
{
	return cs >= AG_MIN_CHUNK && cs <= AG_MAX_CHUNK && (cs & (cs - 1)) == 0;
}

uint64_t ag_nchunks(uint64_t size, uint32_t cs)
{
	return (size + cs - 1) / cs;
}

int ag_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ag_errno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to len bytes, fewer only at end of file. */
ssize_t ag_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ag_errno();
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}
