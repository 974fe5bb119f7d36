/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agbundle verify: the high side's verification, run on the low side before
 * the media is written.  It is agimport --dry-run without a store: the same
 * reader (libarchive, one pass, the outer SHA-256 as the bytes go by), the
 * same keyring handling (a private GNUPGHOME holding only --keyring's keys)
 * and the same checks (imp_verify_source: signature, bundle.json, "files",
 * artifacts, every .sha256 line, models_directory_hash, every manifest and
 * blob).  With no store, a delta bundle's omitted blobs cannot be checked;
 * the report says so ("not checked (no store)").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundler/bundle.h"

int bnd_read_sha256_file(const char *file, const char *base, ag_digest *out)
{
	FILE *f = fopen(file, "re");
	char line[8192];
	int found = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		ag_digest d;
		const char *hex = line + (line[0] == '\\');
		char *name = (char *)hex + AG_HEX_LEN;
		if (strlen(hex) < AG_HEX_LEN || ag_digest_parse(hex, AG_HEX_LEN, &d) < 0)
			continue;
		name += strspn(name, " *");
		name[strcspn(name, "\r\n")] = '\0';
		if (found < 0 || (base && strcmp(name, base) == 0)) {
			*out = d;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/*
 * On a terminal, the tarball reaches the importer's reader through a pipe
 * fed by a thread that counts the bytes for the progress line (the reader
 * hashes what it reads either way, so the outer SHA-256 is the file's).
 */
struct feeder {
	int in, out;
	uint64_t size;
	int err; /* a read error of the tarball */
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	struct imp_progress *p = imp_progress_new("agbundle", f->size);
	static char buf[1 << 20];
	ssize_t n;

	while ((n = read(f->in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		for (ssize_t off = 0, w; n > 0 && off < n; off += w)
			if ((w = write(f->out, buf + off, (size_t)(n - off))) < 0) {
				if (errno == EINTR)
					w = 0;
				else
					goto out;
			}
		if (n > 0)
			imp_progress_add(p, (uint64_t)n);
	}
	if (n < 0)
		f->err = -errno;
out:
	imp_progress_done(p);
	close(f->out); /* EOF, or EPIPE for a reader that stopped early */
	return NULL;
}

static int read_archive_progress(int fd, uint64_t size, const struct imp_read *rd,
				 struct imp_source *src, struct imp_error *e)
{
	struct feeder f = {.in = fd, .size = size};
	int p[2], r;
	pthread_t th;

	if (pipe2(p, O_CLOEXEC) < 0)
		return imp_read_archive(fd, rd, src, e);
	signal(SIGPIPE, SIG_IGN); /* the reader may stop early: EPIPE, not death */
	f.out = p[1];
	if (pthread_create(&th, NULL, feed, &f) != 0) {
		close(p[0]);
		close(p[1]);
		return imp_read_archive(fd, rd, src, e);
	}
	r = imp_read_archive(p[0], rd, src, e);
	close(p[0]); /* a feeder still writing gets EPIPE and stops */
	pthread_join(th, NULL);
	if (f.err) { /* what looked like a truncated archive was a read error */
		memset(e, 0, sizeof(*e));
		r = imp_fail(e, IMP_IO, f.err, src->name, "reading it failed (%s)",
			     ag_strerror(f.err));
	}
	return r;
}

static int read_bundle(const struct bnd_verify_opts *vo, struct imp_source *src,
		       struct imp_error *e)
{
	struct imp_read rd = {.store = NULL, .dry_run = true};
	struct stat st;
	int fd = open(vo->bundle, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return imp_fail(e, r == -ENOENT ? IMP_USAGE : IMP_IO, r, vo->bundle,
				"it cannot be opened (%s)", ag_strerror(r));
	}
	if (!(src->name = strdup(vo->bundle))) {
		close(fd);
		return -ENOMEM;
	}
	if (S_ISDIR(st.st_mode))
		r = imp_read_dir(fd, &rd, src, e);
	else if (isatty(STDERR_FILENO) && S_ISREG(st.st_mode))
		r = read_archive_progress(fd, (uint64_t)st.st_size, &rd, src, e);
	else
		r = imp_read_archive(fd, &rd, src, e);
	close(fd);
	return r;
}

int bnd_verify(const struct bnd_verify_opts *vo, json_t **report, struct imp_error *e)
{
	struct imp_options o = {.keyring = vo->keyring,
				.signers = vo->signers,
				.nsigners = vo->nsigners,
				.has_sha256 = vo->has_sha256,
				.sha256 = vo->sha256,
				.operator_name = "agbundle",
				.dry_run = true};
	struct sig_keyring *ks = NULL;
	struct imp_source src = {0};
	struct imp_result res = {0};
	_cleanup_free_ char *why = NULL;
	int r;

	r = sig_keyring_open(vo->keyring, vo->signers, vo->nsigners, NULL, &ks, &why);
	if (r < 0) {
		imp_fail(e, r == -ENOMEM ? IMP_IO : IMP_USAGE, r, vo->keyring, "%s",
			 why ? why : ag_strerror(r));
		goto out;
	}
	if ((r = read_bundle(vo, &src, e)) < 0 || (r = imp_delta_allow_storeless(&src)) < 0)
		goto out;
	if ((r = imp_verify_source(&src, &o, ks, NULL, &res, e)) < 0)
		goto out;
	*report = json_incref(res.report);
	json_t *delta = imp_delta_report(&src);
	if (delta)
		json_object_set_new(*report, "delta", delta);
out:
	imp_result_free(&res);
	imp_source_free(&src);
	sig_keyring_free(ks);
	return r;
}
