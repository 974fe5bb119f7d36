/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verified reads.  A blob's chunk table (the SHA-256 of every chunk, taken in
 * the same pass as the blob's digest) is loaded page by page as reads need
 * it, each page checked against the hash in the blob's record, so opening a
 * blob costs the same whatever its size.  Every read hashes each chunk it
 * touches and compares before handing out a single byte.
 *
 * Errors: -EBADMSG is a verdict (a chunk, or a table page, hashed
 * differently); -AG_ECORRUPT and -AG_EDIGEST too.  Everything else (no
 * memory, LMDB's reader table full, a disk error, a damaged index) means
 * nothing could be checked, and is returned as itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

static int open_object_fd(ag_blob *b, bool direct)
{
	int fd = ag_object_open(b->s, &b->info.digest, O_RDONLY | (direct ? O_DIRECT : 0));
	if (fd == -EINVAL && direct) /* file system without O_DIRECT */
		return open_object_fd(b, false);
	if (fd >= 0)
		b->direct = direct && (fcntl(fd, F_GETFL) & O_DIRECT);
	return fd;
}

static int rec_get_fn(MDB_txn *txn, void *arg)
{
	ag_blob *b = arg;
	return ag_blob_rec_get(txn, b->s, &b->info.digest, &b->info, &b->page_hashes, &b->npages);
}

int ag_blob_open(ag_store *s, const ag_digest *d, unsigned flags, ag_blob **out)
{
	ag_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->s = s;
	b->fd = b->fd_buffered = -1;
	b->info.digest = *d;
	pthread_mutex_init(&b->lock, NULL);
	int r = ag_read_guarded(s, rec_get_fn, b);
	if (r == 0 && !(b->pages = calloc(b->npages + 1, sizeof(uint8_t *))))
		r = -ENOMEM;
	if (r == 0) {
		b->fd = open_object_fd(b, flags & AG_BLOB_DIRECT);
		r = b->fd < 0 ? b->fd : 0;
	}
	if (r == 0 && (flags & AG_BLOB_STREAM) && !b->direct) {
		posix_fadvise(b->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		b->dropbehind = true;
	}
	struct stat st;
	if (r == 0 && fstat(b->fd, &st) < 0)
		r = ag_errno();
	if (r == 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != b->info.size))
		r = -AG_ECORRUPT;
	if (r < 0) {
		ag_blob_close(b);
		return r;
	}
	*out = b;
	return 0;
}

void ag_blob_close(ag_blob *b)
{
	if (!b)
		return;
	if (b->fd >= 0 && b->dropbehind)
		posix_fadvise(b->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (b->fd >= 0)
		close(b->fd);
	if (b->fd_buffered >= 0)
		close(b->fd_buffered);
	pthread_mutex_destroy(&b->lock);
	for (uint64_t p = 0; b->pages && p < b->npages; p++)
		free(b->pages[p]);
	free(b->pages);
	free(b->page_hashes);
	free(b);
}

const ag_blob_info *ag_blob_get_info(const ag_blob *b)
{
	return &b->info;
}

size_t ag_blob_bufsize(const ag_blob *b, size_t len)
{
	size_t cs = b->info.chunk_size;
	return (len + cs - 1) / cs * cs + cs;
}

/* A buffered descriptor for when O_DIRECT reads are refused. */
static int buffered_fd(ag_blob *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->fd_buffered < 0)
		b->fd_buffered = ag_object_open(b->s, &b->info.digest, O_RDONLY);
	int fd = b->fd_buffered;
	pthread_mutex_unlock(&b->lock);
	return fd;
}

#define DROP_LAG (16u << 20)

static ssize_t read_span(ag_blob *b, void *buf, size_t len, uint64_t off)
{
	size_t want = len;
	if (b->direct)
		want = (len + AG_ALIGN - 1) / AG_ALIGN * AG_ALIGN;
	ssize_t n = ag_pread_all(b->fd, buf, want, off);
	if (n == -EINVAL && b->direct) {
		int fd = buffered_fd(b);
		if (fd < 0)
			return fd;
		n = ag_pread_all(fd, buf, len, off);
	}
	/* The verified copy is what the mount caches; the object's pages would
	 * only be a second, unverified copy.  Drop them a little behind the
	 * reader: pages just read may still sit in per-CPU LRU batches, where
	 * DONTNEED cannot reach them. */
	if (n > 0 && b->dropbehind && off >= DROP_LAG)
		posix_fadvise(b->fd, (off_t)(off - DROP_LAG), n, POSIX_FADV_DONTNEED);
	return n;
}

/* The page of the chunk table holding chunk idx, loaded once per blob.
 * -EBADMSG when the page does not match its hash in the record; any other
 * error means it could not be loaded (nothing was checked). */
static int table_page(ag_blob *b, uint64_t page, const uint8_t **out)
{
	uint8_t *p = __atomic_load_n(&b->pages[page], __ATOMIC_ACQUIRE);
	int r = 0;
	if (!p) {
		pthread_mutex_lock(&b->lock);
		p = b->pages[page];
		if (!p) {
			uint64_t first = page * AG_PAGE_CHUNKS;
			uint64_t n = b->info.nchunks - first < AG_PAGE_CHUNKS
					     ? b->info.nchunks - first
					     : AG_PAGE_CHUNKS;
			r = ag_table_page_get(b->s, &b->info.digest, page, n,
					      b->page_hashes + page * 32, &p);
			if (r == 0)
				__atomic_store_n(&b->pages[page], p, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&b->lock);
	}
	*out = p;
	return r;
}

/* 0 when the chunk's bytes match the table, -EBADMSG when they do not (or
 * its table page does not match the record), another error when the table
 * could not be loaded. */
static int chunk_check(ag_blob *b, uint64_t idx, const uint8_t *p, size_t len)
{
	const uint8_t *page;
	int r = table_page(b, idx / AG_PAGE_CHUNKS, &page);
	if (r < 0)
		return r;
	uint8_t h[32];
	ag_sha256_fast(p, len, h);
	return memcmp(h, page + (idx % AG_PAGE_CHUNKS) * 32, 32) == 0 ? 0 : -EBADMSG;
}

ssize_t ag_blob_read(ag_blob *b, uint64_t off, size_t len, void *buf, size_t bufsize,
		     const uint8_t **out, uint64_t *bad_chunk)
{
	const uint64_t size = b->info.size, cs = b->info.chunk_size;
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = size - off;
	uint64_t first = off / cs, last = (off + len - 1) / cs;
	uint64_t start = first * cs, end = (last + 1) * cs;
	if (end > size)
		end = size;
	size_t span = (size_t)(end - start);
	if (bufsize < ag_blob_bufsize(b, len) || ((uintptr_t)buf % AG_ALIGN))
		return -EINVAL;
	ssize_t n = read_span(b, buf, span, start);
	if (n < 0)
		return n;
	for (uint64_t c = first; c <= last; c++) {
		size_t at = (size_t)((c - first) * cs);
		size_t clen = (size_t)((c == last) ? end - c * cs : cs);
		/* Fewer bytes than the record: the object shrank since it was opened. */
		int r = (size_t)n < at + clen ? -AG_ECORRUPT
					      : chunk_check(b, c, (const uint8_t *)buf + at, clen);
		if (r < 0) {
			if (bad_chunk && (r == -EBADMSG || r == -AG_ECORRUPT))
				*bad_chunk = c;
			return r;
		}
	}
	*out = (const uint8_t *)buf + (off - start);
	return (ssize_t)len;
}

ssize_t ag_blob_pread(ag_blob *b, void *dst, size_t len, uint64_t off, uint64_t *bad_chunk)
{
	size_t step = (size_t)b->info.chunk_size * 16;
	size_t bufsize = ag_blob_bufsize(b, step);
	void *buf;
	if (posix_memalign(&buf, AG_ALIGN, bufsize))
		return -ENOMEM;
	size_t done = 0;
	ssize_t r = 0;
	while (done < len) {
		size_t want = len - done < step ? len - done : step;
		const uint8_t *p;
		r = ag_blob_read(b, off + done, want, buf, bufsize, &p, bad_chunk);
		if (r <= 0)
			break;
		memcpy((uint8_t *)dst + done, p, (size_t)r);
		done += (size_t)r;
	}
	free(buf);
	return r < 0 ? r : (ssize_t)done;
}

int ag_blob_verify_full(ag_blob *b, uint64_t *bad_chunk)
{
	const uint64_t cs = b->info.chunk_size;
	size_t step = cs >= (1u << 20) ? cs : (1u << 20);
	void *buf;
	if (posix_memalign(&buf, AG_ALIGN, step))
		return -ENOMEM;
	ag_hash *h = ag_hash_new();
	int r = h ? 0 : -ENOMEM;
	for (uint64_t off = 0; r == 0 && off < b->info.size; off += step) {
		size_t want = b->info.size - off < step ? (size_t)(b->info.size - off) : step;
		ssize_t n = read_span(b, buf, want, off);
		if (n < 0) {
			r = (int)n;
			break;
		}
		for (size_t at = 0; at < want; at += cs) {
			size_t clen = want - at < cs ? want - at : cs;
			uint64_t c = (off + at) / cs;
			r = (size_t)n < at + clen ? -AG_ECORRUPT
						  : chunk_check(b, c, (uint8_t *)buf + at, clen);
			if (r < 0) {
				if (bad_chunk && (r == -EBADMSG || r == -AG_ECORRUPT))
					*bad_chunk = c;
				break;
			}
		}
		if (r == 0)
			ag_hash_update(h, buf, want);
	}
	if (r == 0) {
		ag_digest d;
		ag_hash_final(h, &d);
		if (!ag_digest_eq(&d, &b->info.digest))
			r = -AG_EDIGEST;
	}
	ag_hash_free(h);
	free(buf);
	return r;
}

int ag_object_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk)
{
	_cleanup_blob_ ag_blob *b = NULL;
	int r = ag_blob_open(s, &bi->digest, AG_BLOB_DIRECT, &b);
	if (r < 0)
		return r;
	return ag_blob_verify_full(b, bad_chunk);
}
