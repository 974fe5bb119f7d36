/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --since PREVIOUS/manifest/bundle.json (or the previous bundle's tarball,
 * whose manifest/bundle.json is read): the blobs a previous bundle carried.
 *
 * Only a bundle.json made by agbundle names every file it carried (the
 * signed "files" field); a hand-made one does not, and is refused.  A blob
 * is one whose path lies in the previous bundle's Ollama tree, blobs/, named
 * sha256-<hex> or sha256:<hex>; its listed hash is what counts.  Blobs the
 * previous bundle itself omitted (a delta on a delta) were in the store
 * that imported it, so they are omitted again.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundler/bundle.h"

struct bnd_delta {
	ag_digest *d; /* sorted */
	size_t n;
	ag_digest file_sha256;
	char *version;
};

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static int read_file(const char *path, char **buf, size_t *len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IMP_MAX_BUNDLE_JSON)
		return -E2BIG;
	if (!(*buf = malloc((size_t)st.st_size + 1)))
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			free(*buf);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	*len = got;
	return 0;
}

/* manifest/bundle.json out of a previous bundle's tarball: 1 found, 0 not
 * an archive (the caller reads the file as bundle.json), <0 error. */
static int read_from_archive(const char *path, char **buf, size_t *len)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int r = 0;

	if (!a)
		return -ENOMEM;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK)
		goto out;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(ae);
		if (!name || strcmp(name + (strncmp(name, "./", 2) == 0 ? 2 : 0),
				    "manifest/bundle.json") != 0)
			continue;
		la_int64_t size = archive_entry_size(ae);
		if (size < 0 || size > IMP_MAX_BUNDLE_JSON || !(*buf = malloc((size_t)size + 1))) {
			r = size < 0 || size > IMP_MAX_BUNDLE_JSON ? -E2BIG : -ENOMEM;
			goto out;
		}
		if (archive_read_data(a, *buf, (size_t)size) != size) {
			free(*buf);
			r = -EIO;
			goto out;
		}
		*len = (size_t)size;
		r = 1;
		goto out;
	}
	/* a tar archive without it, or no archive at all */
	r = r == ARCHIVE_EOF ? -ENOENT : 0;
out:
	archive_read_free(a);
	return r;
}

static bool blob_path(const char *p)
{
	const char *b = strstr(p, "/blobs/");

	if (strncmp(p, "models/", 7) != 0 || !b)
		return false;
	b += 7;
	return (strncmp(b, "sha256-", 7) == 0 || strncmp(b, "sha256:", 7) == 0) &&
	       strlen(b) == 7 + AG_HEX_LEN;
}

static int add_digest(struct bnd_delta *d, json_t *v)
{
	if (!json_is_string(v) ||
	    ag_digest_parse(json_string_value(v), json_string_length(v), &d->d[d->n]) < 0)
		return -EINVAL;
	d->n++;
	return 0;
}

static int collect(struct bnd_delta *d, json_t *files, json_t *delta)
{
	json_t *omitted = json_object_get(delta, "omitted_blobs"), *v;
	const char *key;
	size_t i;

	d->d = calloc(json_object_size(files) + json_array_size(omitted) + 1, sizeof(ag_digest));
	if (!d->d)
		return -ENOMEM;
	json_object_foreach(files, key, v)
	{
		if (blob_path(key) && add_digest(d, v) < 0)
			return -EINVAL;
	}
	json_array_foreach(omitted, i, v)
	{
		if (add_digest(d, v) < 0)
			return -EINVAL;
	}
	qsort(d->d, d->n, sizeof(ag_digest), cmp_digest);
	return 0;
}

int bnd_delta_load(const char *path, struct bnd_delta **out, struct imp_error *e)
{
	_cleanup_free_ char *buf = NULL;
	struct imp_bundle_json bj;
	struct bnd_delta *d;
	const char *why;
	size_t len = 0;
	int r;

	if ((r = read_from_archive(path, &buf, &len)) == 0)
		r = read_file(path, &buf, &len);
	if (r == -ENOENT && access(path, F_OK) == 0)
		return imp_fail(e, IMP_REFUSED, r, path,
				"it is a tar archive without manifest/bundle.json");
	if (r < 0)
		return imp_fail(e, r == -ENOENT ? IMP_USAGE : IMP_REFUSED, r, path,
				"it cannot be read as a bundle.json (%s)",
				r == -E2BIG ? "not a regular file of at most 64 MiB"
					    : ag_strerror(r));
	if ((r = imp_bundle_json_parse(buf, len, &bj, &why)) < 0)
		return imp_fail(e, IMP_REFUSED, r, path, "it is not a valid bundle.json: %s", why);
	json_t *files = json_object_get(bj.raw, "files");
	if (!json_is_object(files)) {
		imp_bundle_json_free(&bj);
		return imp_fail(e, IMP_REFUSED, -EINVAL, path,
				"it has no \"files\" field (it was not made by agbundle), so "
				"--since cannot tell which blobs it carried");
	}
	if (!(d = calloc(1, sizeof(*d))) || !(d->version = strdup(bj.bundle_version))) {
		free(d);
		imp_bundle_json_free(&bj);
		return -ENOMEM;
	}
	r = collect(d, files, json_object_get(bj.raw, "delta"));
	imp_bundle_json_free(&bj);
	if (r < 0) {
		bnd_delta_free(d);
		return r == -ENOMEM
			       ? r
			       : imp_fail(e, IMP_REFUSED, r, path,
					  "a blob hash in \"files\" or \"omitted_blobs\" is not "
					  "a SHA-256 hex digest");
	}
	ag_sha256(buf, len, &d->file_sha256);
	*out = d;
	return 0;
}

bool bnd_delta_has(const struct bnd_delta *d, const ag_digest *dg)
{
	return d && bsearch(dg, d->d, d->n, sizeof(ag_digest), cmp_digest) != NULL;
}

json_t *bnd_delta_json(const struct bnd_delta *d, const struct bnd_set *set)
{
	char hex[AG_HEX_LEN + 1];
	json_t *o = json_object(), *a = json_array();
	ag_digest *seen = calloc(set->n + 1, sizeof(ag_digest));
	size_t n = 0;

	if (!o || !a || !seen)
		goto fail;
	for (size_t i = 0; i < set->n; i++)
		if (set->m[i].omitted)
			seen[n++] = set->m[i].name_digest;
	qsort(seen, n, sizeof(ag_digest), cmp_digest);
	for (size_t i = 0; i < n; i++) {
		if (i && ag_digest_eq(&seen[i], &seen[i - 1]))
			continue; /* sha256-<hex> and sha256:<hex> of one blob */
		ag_digest_hex(&seen[i], hex);
		if (json_array_append_new(a, json_string(hex)) < 0)
			goto fail;
	}
	ag_digest_hex(&d->file_sha256, hex);
	if (json_object_set_new(o, "since_bundle_json_sha256", json_string(hex)) < 0 ||
	    json_object_set_new(o, "since_bundle_version", json_string(d->version)) < 0 ||
	    json_object_set_new(o, "omitted_blobs", a) < 0)
		goto fail_o;
	free(seen);
	return o;
fail:
	json_decref(a);
fail_o:
	json_decref(o);
	free(seen);
	return NULL;
}

void bnd_delta_free(struct bnd_delta *d)
{
	if (!d)
		return;
	free(d->d);
	free(d->version);
	free(d);
}
