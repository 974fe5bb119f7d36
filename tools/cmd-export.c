/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore export GEN DIR: a plain Ollama models directory (manifests/ and
 * blobs/sha256-<hex>) holding generation GEN, for a node without agfs or a
 * disaster-recovery copy.  Every byte is written through verified reads
 * (ag_blob_read: each chunk checked against its recorded hash before it is
 * written) into a temporary directory next to DIR, each file fsynced, and
 * the directory renamed to DIR at the end: DIR holds a whole, verified
 * export or nothing.  A non-empty DIR is refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"

static const char export_usage[] =
	"Usage: agstore [--store DIR] [--json] export GEN DIR\n"
	"Write generation GEN (a number, or 'current') as a plain Ollama models\n"
	"directory DIR (manifests/, blobs/sha256-<hex>), every chunk verified\n"
	"before it is written.  DIR must not exist or be empty; it appears whole\n"
	"at the end (written next to it first, then renamed).\n";

#define EXPORT_STEP (1024u * 1024u)

struct export
{
	struct tool *t;
	ag_store *s;
	int dirfd; /* the temporary directory */
	void *buf;
	size_t bufsize;
	uint64_t blobs, bytes;
	char where[128]; /* what failed: "blob sha256:..." */
	uint64_t bad_chunk;
};

/* mkdir -p of rel (relative to dirfd), components separated by '/'. */
static int mkdirs(int dirfd, const char *rel)
{
	char path[1024];
	size_t len = strlen(rel);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, rel, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Copies blob d, verified chunk by chunk, into a new file rel under the export. */
static int copy_blob(struct export *x, const ag_digest *d, const char *rel)
{
	_cleanup_blob_ ag_blob *b = NULL;
	_cleanup_close_ int fd = -1;
	uint64_t off = 0;
	int r;

	fmt_digest(d, x->where, sizeof(x->where));
	if ((r = ag_blob_open(x->s, d, AG_BLOB_STREAM, &b)) < 0)
		return r;
	if (ag_blob_bufsize(b, EXPORT_STEP) > x->bufsize)
		return -EINVAL;
	fd = openat(x->dirfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno; /* a blob two models share */
	for (;;) {
		const uint8_t *p;
		ssize_t n =
			ag_blob_read(b, off, EXPORT_STEP, x->buf, x->bufsize, &p, &x->bad_chunk);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		if ((r = ag_write_all(fd, p, (size_t)n)) < 0)
			return r;
		off += (uint64_t)n;
	}
	if (off != ag_blob_get_info(b)->size)
		return -AG_ECORRUPT;
	if (fsync(fd) < 0)
		return -errno;
	x->blobs++;
	x->bytes += off;
	return 0;
}

static int export_model(struct export *x, const ag_model *m)
{
	char rel[1200], hex[AG_HEX_LEN + 1];
	int r;

	/* manifests/host/ns/model/tag: the manifest's bytes, a blob in the store. */
	snprintf(rel, sizeof(rel), "manifests/%s", m->name);
	*strrchr(rel, '/') = '\0';
	if ((r = mkdirs(x->dirfd, rel)) < 0)
		return r;
	snprintf(rel, sizeof(rel), "manifests/%s", m->name);
	if ((r = copy_blob(x, &m->manifest, rel)) < 0)
		return r;
	/* Ollama lists models by manifest mtime: keep when each entered the store. */
	if (m->added > 0) {
		struct timespec ts[2] = {{.tv_sec = (time_t)m->added},
					 {.tv_sec = (time_t)m->added}};
		if (utimensat(x->dirfd, rel, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	for (size_t i = 1; i < ag_model_nblobs(m); i++) {
		ag_digest_hex(ag_model_blob(m, i), hex);
		snprintf(rel, sizeof(rel), "blobs/sha256-%s", hex);
		if ((r = copy_blob(x, ag_model_blob(m, i), rel)) < 0)
			return r;
	}
	return 0;
}

/* Removes the temporary tree (best effort). */
static void rm_rf(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		unlinkat(at, name, 0);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			rm_rf(dirfd(d), de->d_name);
	closedir(d);
	unlinkat(at, name, AT_REMOVEDIR);
}

/* DIR must be absent or an empty directory. */
static int check_target(struct tool *t, const char *dir)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	bool empty = true;

	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? EX_AG_OK
				       : tool_fail(t, EX_AG_IO, "cannot check %s: %m", dir);
	if (!S_ISDIR(st.st_mode))
		return tool_fail(t, EX_AG_PROBLEM,
				 "%s exists and is not a directory: refusing to "
				 "export over it",
				 dir);
	if (!(d = opendir(dir)))
		return tool_fail(t, EX_AG_IO, "cannot read %s: %m", dir);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	closedir(d);
	if (!empty)
		return tool_fail(t, EX_AG_PROBLEM,
				 "%s is not empty: export writes into a new or empty directory",
				 dir);
	return EX_AG_OK;
}

static int export_fail(struct export *x, int r, const ag_gen *g)
{
	struct tool *t = x->t;

	if (r == -EBADMSG || r == -AG_EDIGEST || r == -AG_ECORRUPT)
		return tool_fail(
			t, EX_AG_PROBLEM,
			"%s in %s is corrupt (%s): nothing was exported (run agstore fsck; "
			"re-importing its bundle repairs it)",
			x->where, t->store_path,
			r == -EBADMSG ? "a chunk does not match its recorded hash"
				      : ag_strerror(r));
	return tool_fail_err(t, r, "cannot export generation %" PRIu64 " (at %s)", g->id,
			     x->where[0] ? x->where : "the start");
}

/* Writes g into a temporary directory in the parent of dir, renames it to dir. */
static int export_gen(struct export *x, const ag_gen *g, const char *dir)
{
	_cleanup_free_ char *copy = strdup(dir), *tmpl = NULL;
	_cleanup_close_ int parent = -1;
	const char *base;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	base = basename(copy);
	if (asprintf(&tmpl, "%s/.%s.export-XXXXXX", dirname(copy), base) < 0)
		return -ENOMEM;
	if (!mkdtemp(tmpl))
		return -errno;
	parent = open(dirname(strdupa(tmpl)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	x->dirfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0 || x->dirfd < 0)
		r = -errno;
	if (r == 0 &&
	    (mkdirat(x->dirfd, "manifests", 0755) < 0 || mkdirat(x->dirfd, "blobs", 0755) < 0))
		r = -errno;
	for (size_t i = 0; r == 0 && i < g->nmodels; i++)
		r = export_model(x, &g->models[i]);
	if (r == 0) {
		x->where[0] = '\0';
		if (fchmod(x->dirfd, 0755) < 0 || syncfs(x->dirfd) < 0 || rename(tmpl, dir) < 0 ||
		    fsync(parent) < 0)
			r = -errno;
	}
	if (x->dirfd >= 0)
		close(x->dirfd);
	if (r < 0)
		rm_rf(AT_FDCWD, tmpl);
	return r;
}

int cmd_export(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	struct export x = {.t = t, .dirfd = -1};
	const char *dir;
	char size[TOOL_SIZE_LEN];
	int r;

	r = tool_getopt(t, argc, argv, opts, export_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc - optind != 2)
		return tool_fail(
			t, EX_AG_USAGE,
			"export takes a generation and a directory (see agstore export --help)");
	dir = argv[optind + 1];
	if ((r = tool_open(t, AG_RDONLY, &s)) > 0 ||
	    (r = gen_arg_load(t, s, argv[optind], &g)) > 0 || (r = check_target(t, dir)) > 0)
		return r;
	x.s = s;
	x.bufsize = EXPORT_STEP + 2 * AG_MAX_CHUNK;
	if (posix_memalign(&x.buf, AG_ALIGN, x.bufsize) != 0)
		return tool_fail(t, EX_AG_IO, "out of memory");
	r = export_gen(&x, g, dir);
	free(x.buf);
	if (r < 0)
		return export_fail(&x, r, g);
	if (t->json)
		return out_json(json_pack("{s:I,s:s,s:I,s:I,s:I}", "generation", (json_int_t)g->id,
					  "dir", dir, "models", (json_int_t)g->nmodels, "blobs",
					  (json_int_t)x.blobs, "bytes", (json_int_t)x.bytes)) < 0
			       ? EX_AG_IO
			       : EX_AG_OK;
	fmt_size(x.bytes, size);
	printf("exported generation %" PRIu64 " (%zu model%s, %" PRIu64 " files, %s) to %s\n",
	       g->id, g->nmodels, g->nmodels == 1 ? "" : "s", x.blobs, size, dir);
	return EX_AG_OK;
}
