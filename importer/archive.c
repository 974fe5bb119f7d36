/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a bundle archive in one pass.  libarchive pulls the raw bytes
 * through our read callback, which hashes them (the outer SHA-256 the site
 * carries out of band) before handing them on; the compression is detected
 * from the content.  Each regular member is streamed into staging while the
 * store hashes it and builds its chunk table.  Members that are links,
 * devices or have unsafe paths refuse the whole source.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "importer/import.h"
#include "importer/sink.h"

#define RAW_BUF (1u << 20)

struct raw_reader {
	int fd;
	char *buf;
	ag_hash *hash;
	uint64_t bytes;
	int err;
	struct imp_progress *progress;
	struct imp_source *src;
};

static ssize_t raw_read(struct archive *a, void *arg, const void **out)
{
	struct raw_reader *rr = arg;
	ssize_t n;

	do
		n = read(rr->fd, rr->buf, RAW_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		rr->err = -errno;
		if (a)
			archive_set_error(a, errno, "read failed");
		return -1;
	}
	ag_hash_update(rr->hash, rr->buf, (size_t)n);
	rr->bytes += (uint64_t)n;
	rr->src->raw_bytes = rr->bytes;
	imp_progress_add(rr->progress, (uint64_t)n);
	*out = rr->buf;
	return n;
}

/* After the end of the archive: hash whatever follows (padding, trailers). */
static int raw_drain(struct raw_reader *rr)
{
	const void *p;
	ssize_t n;

	while ((n = raw_read(NULL, rr, &p)) > 0)
		;
	return n < 0 ? rr->err : 0;
}

static const char *type_refusal(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return "it is a hard link";
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
	case AE_IFDIR:
		return NULL;
	case AE_IFLNK:
		return "it is a symbolic link";
	default:
		return "it is a device, FIFO or socket";
	}
}

/* Zeros for a sparse member's holes, counted against IMP_MAX_HOLES. */
static int write_zeros(struct imp_sink *k, uint64_t n, struct imp_error *e)
{
	static const char zeros[64 * 1024];
	int r;

	k->src->hole_bytes += n;
	if (k->src->hole_bytes > IMP_MAX_HOLES)
		return imp_fail(e, IMP_REFUSED, -E2BIG, k->mb->path,
				"its sparse holes take the bundle beyond %llu bytes of holes",
				(unsigned long long)IMP_MAX_HOLES);
	while (n > 0) {
		size_t z = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;
		if ((r = imp_sink_write(k, zeros, z, e)) < 0)
			return r;
		n -= z;
	}
	return 0;
}

/*
 * Records a libarchive failure: the archive's (refused, rc, "what (libarchive's
 * words)") unless libarchive ran out of memory (zlib's or zstd's state, a
 * header buffer), which is the host's.
 */
static int la_fail(struct imp_error *e, struct archive *a, const char *member, int rc,
		   const char *what)
{
	const char *s = archive_error_string(a) ? archive_error_string(a) : "?";

	if (archive_errno(a) == ENOMEM)
		return imp_fail(e, IMP_IO, -ENOMEM, member, "out of memory (%s)", s);
	return imp_fail(e, IMP_REFUSED, rc, member, "%s (%s)", what, s);
}

/* The member's bytes; a sparse member's holes (also one at its end, which
 * libarchive reports as no block at all) are read as zeros up to its size. */
static int copy_data(struct archive *a, struct archive_entry *ae, struct imp_sink *k,
		     struct imp_error *e)
{
	const void *buf;
	size_t len;
	la_int64_t off, pos = 0;
	int r;

	for (;;) {
		r = archive_read_data_block(a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return la_fail(e, a, k->mb->path, -EIO,
				       "the archive is damaged or truncated");
		if (off < pos)
			return imp_fail(e, IMP_REFUSED, -EIO, k->mb->path,
					"its sparse map goes backwards");
		if (off > pos && (r = write_zeros(k, (uint64_t)(off - pos), e)) < 0)
			return r;
		k->src->data_bytes += len;
		if (k->src->data_bytes > IMP_MAX_RATIO * k->src->raw_bytes + IMP_RATIO_SLACK)
			return imp_fail(
				e, IMP_REFUSED, -E2BIG, k->mb->path,
				"the bundle expands to more than %d times its size by here (a "
				"decompression bomb)",
				IMP_MAX_RATIO);
		if ((r = imp_sink_write(k, buf, len, e)) < 0)
			return r;
		pos = off + (la_int64_t)len;
	}
	if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > pos)
		return write_zeros(k, (uint64_t)(archive_entry_size(ae) - pos), e);
	return 0;
}

/* Before anything is staged: a sparse map whose holes are beyond the limit. */
static int check_sparse(struct archive_entry *ae, struct imp_source *src, const char *path,
			struct imp_error *e)
{
	la_int64_t off, len, data = 0;

	if (archive_entry_sparse_reset(ae) <= 0 || !archive_entry_size_is_set(ae))
		return 0;
	while (archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK)
		data += len;
	la_int64_t holes = archive_entry_size(ae) - data;
	if (holes > 0 && src->hole_bytes + (uint64_t)holes > IMP_MAX_HOLES)
		return imp_fail(e, IMP_REFUSED, -E2BIG, path,
				"it is a sparse member of %lld bytes with only %lld bytes of data, "
				"beyond the limit of %llu bytes of holes",
				(long long)archive_entry_size(ae), (long long)data,
				(unsigned long long)IMP_MAX_HOLES);
	return 0;
}

static int read_member(struct archive *a, struct archive_entry *ae, const struct imp_read *rd,
		       struct imp_source *src, struct imp_error *e)
{
	const char *raw = archive_entry_pathname(ae), *why;
	_cleanup_free_ char *path = NULL;
	struct imp_sink k;
	int r;

	if (!raw)
		return imp_fail(e, IMP_REFUSED, -EINVAL, "", "a member has no readable path");
	r = imp_tarpath_check(raw, strlen(raw), &path, &why);
	if (r < 0 && r != -ENOMEM && archive_entry_filetype(ae) == AE_IFDIR &&
	    strstr(why, "bundle root"))
		return 0;
	if (r < 0)
		return imp_fail(e, IMP_REFUSED, r, raw, "%s", why);
	if ((why = type_refusal(ae)))
		return imp_fail(e, IMP_REFUSED, -EINVAL, path, "%s", why);
	if (archive_entry_filetype(ae) == AE_IFDIR)
		return 0;
	struct imp_member *mb = imp_member_add(src, path);
	if (!mb && errno != E2BIG)
		return imp_fail(e, IMP_IO, -ENOMEM, path, "out of memory");
	if (!mb)
		return imp_fail(e, IMP_REFUSED, -E2BIG, path,
				"the bundle has too many members or path bytes");
	int64_t hint = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : -1;
	if ((r = check_sparse(ae, src, path, e)) < 0 ||
	    (r = imp_sink_begin(&k, mb, rd, src, hint, e)) < 0)
		return r;
	if ((r = copy_data(a, ae, &k, e)) < 0) {
		imp_sink_abort(&k);
		return r;
	}
	return imp_sink_end(&k, e);
}

static int read_entries(struct archive *a, const struct imp_read *rd, struct imp_source *src,
			struct imp_error *e)
{
	struct archive_entry *ae;
	size_t count = 0;
	int r;

	for (;;) {
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return la_fail(e, a, src->n ? src->m[src->n - 1].path : "", -EIO,
				       count ? "the archive is damaged or truncated after it"
					     : "the source is not a readable tar archive");
		/* One compression at most, as the format's commands make: layers of
		 * gzip over gzip multiply a bomb's ratio (~1000x each). */
		if (count++ == 0 && archive_filter_count(a) > 2)
			return imp_fail(e, IMP_REFUSED, -EINVAL, "",
					"the source is compressed more than once (%s inside %s)",
					archive_filter_name(a, 0), archive_filter_name(a, 1));
		if ((r = read_member(a, ae, rd, src, e)) < 0)
			return r;
	}
	if (count == 0)
		return imp_fail(e, IMP_REFUSED, -ENOENT, "", "the archive is empty");
	return 0;
}

static struct archive *new_reader(void)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_format_tar(a);
	return a;
}

int imp_read_archive(int fd, const struct imp_read *rd, struct imp_source *src, struct imp_error *e)
{
	struct raw_reader rr = {.fd = fd, .progress = rd->progress, .src = src};
	struct archive *a;
	int r;

	rr.buf = malloc(RAW_BUF);
	rr.hash = ag_hash_new();
	a = new_reader();
	if (!rr.buf || !rr.hash || !a) {
		r = imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
		goto out;
	}
	if (archive_read_open(a, &rr, NULL, raw_read, NULL) != ARCHIVE_OK) {
		r = rr.err ? imp_fail(e, IMP_IO, rr.err, "", "the source cannot be read")
			   : la_fail(e, a, "", -EINVAL, "the source is not a readable tar archive");
		goto out;
	}
	r = read_entries(a, rd, src, e);
	if (r < 0 && rr.err)
		e->cls = IMP_IO;
	if (r == 0 && (r = raw_drain(&rr)) < 0)
		imp_fail(e, IMP_IO, r, "", "the source cannot be read");
	ag_hash_final(rr.hash, &src->outer);
	src->has_outer = true;
	src->raw_bytes = rr.bytes;
out:
	if (a)
		archive_read_free(a);
	ag_hash_free(rr.hash);
	free(rr.buf);
	return r;
}
