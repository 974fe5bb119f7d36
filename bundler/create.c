/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agbundle create: the bundle the README's low-side procedure makes, in one
 * pass over the inputs.
 *
 * Each input file is read once: hashed (SHA-256, as sha256sum does) while
 * its bytes go into the tar stream.  Everything the procedure's commands
 * compute from those hashes follows from them: signatures/models.sha256
 * (`sha256sum -b`, binary-mode lines, in byte order of the paths),
 * signatures/ollama.sha256 and open-webui.sha256 (text mode),
 * models_directory_hash (`find models -type f -exec sha256sum {} \; | sort |
 * sha256sum`, C-locale byte order), bundle.json with the signed per-path
 * "files" field, and its armored detached signature.  manifest/ comes last,
 * as in `tar czf … binaries/ images/ models/ packages/ signatures/ manifest/`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundler/bundle.h"

#define READ_BUF (1u << 20)

struct ctx {
	const struct bnd_create_opts *o;
	struct bnd_set set;
	int models_fd, outfd;
	struct bnd_delta *delta;
	struct sig_signer *signer;
	struct bnd_out *out;
	struct imp_progress *prog;
	ag_hash *hash;
	char *buf;
	struct imp_error *e;
	char tarname[128], shaname[128];
	uint64_t bytes_in, nfiles;
	ag_digest models_hash, bundle_json_sha;
};

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* The file's name in messages: the models directory's files by their path
 * there, the others as given. */
static void src_name(const struct ctx *c, const struct bnd_member *m, char *out, size_t n)
{
	if (m->dirfd == c->models_fd)
		snprintf(out, n, "%s/%s", c->o->in.models, m->src);
	else
		snprintf(out, n, "%s", m->src);
}

static int changed(struct ctx *c, const struct bnd_member *m)
{
	char name[IMP_MAX_PATH + 256];

	src_name(c, m, name, sizeof(name));
	return imp_fail(c->e, IMP_REFUSED, -EAGAIN, name,
			"it changed while the bundle was being made");
}

static int open_src(struct ctx *c, struct bnd_member *m)
{
	char name[IMP_MAX_PATH + 256];
	struct stat st;
	int fd = m->dirfd == AT_FDCWD
			 ? open(m->src, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
			 : openat(m->dirfd, m->src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	src_name(c, m, name, sizeof(name));
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return imp_fail(c->e, IMP_REFUSED, r, name, "it cannot be read (%s)",
				ag_strerror(r));
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->size) {
		close(fd);
		return changed(c, m);
	}
	return fd;
}

static int stream_fd(struct ctx *c, struct bnd_member *m, int fd)
{
	char name[IMP_MAX_PATH + 256];
	uint64_t left = m->size;
	int r;

	while (left) {
		ssize_t n = read(fd, c->buf, left < READ_BUF ? (size_t)left : READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			src_name(c, m, name, sizeof(name));
			return imp_fail(c->e, IMP_IO, -errno, name, "reading it failed (%m)");
		}
		if (n == 0)
			return changed(c, m);
		ag_hash_update(c->hash, c->buf, (size_t)n);
		if ((r = bnd_out_data(c->out, c->buf, (size_t)n)) < 0)
			return imp_fail(c->e, IMP_IO, r, c->tarname, "writing it failed (%s)",
					ag_strerror(r));
		imp_progress_add(c->prog, (uint64_t)n);
		left -= (uint64_t)n;
	}
	if (read(fd, c->buf, 1) != 0)
		return changed(c, m);
	return 0;
}

static int write_member(struct ctx *c, struct bnd_member *m)
{
	char name[IMP_MAX_PATH + 256];
	int r, fd = -1;

	if (m->omitted)
		return 0;
	if (!m->is_dir && !m->data && (fd = open_src(c, m)) < 0)
		return fd;
	if ((r = bnd_out_header(c->out, m, c->o->mtime)) < 0) {
		if (fd >= 0)
			close(fd);
		return imp_fail(c->e, IMP_IO, r, c->tarname, "writing %s failed (%s)", m->path,
				ag_strerror(r));
	}
	if (m->is_dir)
		return 0;
	c->nfiles++;
	if (m->data) {
		ag_hash_update(c->hash, m->data, (size_t)m->size);
		r = bnd_out_data(c->out, m->data, (size_t)m->size);
		if (r < 0)
			return imp_fail(c->e, IMP_IO, r, c->tarname, "writing it failed (%s)",
					ag_strerror(r));
	} else {
		r = stream_fd(c, m, fd);
		close(fd);
		if (r < 0)
			return r;
	}
	ag_hash_final(c->hash, &m->digest);
	m->hashed = true;
	c->bytes_in += m->size;
	if (m->has_name_digest && !ag_digest_eq(&m->digest, &m->name_digest)) {
		src_name(c, m, name, sizeof(name));
		return imp_fail(c->e, IMP_REFUSED, -AG_EDIGEST, name,
				"its content does not hash to the digest in its name");
	}
	return 0;
}

/* ---------- signatures/ and the models hash ---------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lines of the files under prefix, sorted by path; binary: " *" form. */
static char *sum_list(struct ctx *c, const char *prefix, bool binary, ag_digest *lines_hash)
{
	char **lines = calloc(c->set.n + 1, sizeof(char *)), *out = NULL;
	size_t n = 0, len = 0;

	if (!lines)
		return NULL;
	for (size_t i = 0; i < c->set.n; i++) {
		struct bnd_member *m = &c->set.m[i];
		if (m->is_dir || m->omitted || !has_prefix(m->path, prefix))
			continue;
		if (!(lines[n] = imp_sumline_format(&m->digest, m->path)))
			goto out;
		len += strlen(lines[n++]);
	}
	if (lines_hash) { /* `| sort | sha256sum`: whole lines in byte order */
		ag_hash *h = ag_hash_new();
		qsort(lines, n, sizeof(char *), cmp_str);
		for (size_t i = 0; h && i < n; i++)
			ag_hash_update(h, lines[i], strlen(lines[i]));
		if (!h)
			goto out;
		ag_hash_final(h, lines_hash);
		ag_hash_free(h);
		out = strdup("");
		goto out;
	}
	if (!(out = malloc(len + 1)))
		goto out;
	out[0] = '\0';
	for (size_t i = 0, off = 0; i < n; i++) {
		char *l = lines[i];
		size_t ll = strlen(l), sp = (l[0] == '\\') + AG_HEX_LEN + 1;
		if (binary)
			l[sp] = '*'; /* "<hex>  path" -> "<hex> *path" */
		memcpy(out + off, l, ll + 1);
		off += ll;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	return out;
}

static int add_generated(struct ctx *c, const char *path, char *data)
{
	struct bnd_member *m;

	if (!data || !(m = bnd_add(&c->set, path))) {
		free(data);
		return -ENOMEM;
	}
	m->data = data;
	m->size = strlen(data);
	return 0;
}

static bool any_under(const struct ctx *c, const char *prefix)
{
	for (size_t i = 0; i < c->set.n; i++)
		if (!c->set.m[i].is_dir && has_prefix(c->set.m[i].path, prefix))
			return true;
	return false;
}

static int add_signatures(struct ctx *c)
{
	struct bnd_member *d;
	char *empty;
	int r;

	/* models_directory_hash: `find models -type f -exec sha256sum {} \; | sort | sha256sum` */
	if (!(empty = sum_list(c, "models/", false, &c->models_hash)))
		return -ENOMEM;
	free(empty);
	if (!(d = bnd_add(&c->set, "signatures")))
		return -ENOMEM;
	d->is_dir = true;
	d->mode = 0755;
	r = add_generated(c, "signatures/models.sha256", sum_list(c, "models/", true, NULL));
	if (r == 0 && any_under(c, "binaries/"))
		r = add_generated(c, "signatures/ollama.sha256",
				  sum_list(c, "binaries/", false, NULL));
	if (r == 0 && any_under(c, "images/"))
		r = add_generated(c, "signatures/open-webui.sha256",
				  sum_list(c, "images/", false, NULL));
	return r;
}

/* ---------- bundle.json ---------- */

/* The two artifacts the format names bind one path each (agimport checks
 * exactly these paths); other files are bound by "files". */
static const struct bnd_member *artifact(const struct ctx *c, const char *path)
{
	for (size_t i = 0; i < c->set.n; i++)
		if (!c->set.m[i].is_dir && strcmp(c->set.m[i].path, path) == 0)
			return &c->set.m[i];
	return NULL;
}

static json_t *hexj(const ag_digest *d)
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(d, hex);
	return json_string(hex);
}

static int cmp_member_path(const void *a, const void *b)
{
	return strcmp((*(const struct bnd_member *const *)a)->path,
		      (*(const struct bnd_member *const *)b)->path);
}

static json_t *files_json(const struct ctx *c)
{
	const struct bnd_member **v = calloc(c->set.n + 1, sizeof(*v));
	json_t *f = json_object();
	size_t n = 0;

	for (size_t i = 0; v && i < c->set.n; i++)
		if (!c->set.m[i].is_dir && !c->set.m[i].omitted && c->set.m[i].hashed)
			v[n++] = &c->set.m[i];
	qsort(v, n, sizeof(*v), cmp_member_path);
	for (size_t i = 0; f && v && i < n; i++)
		if (json_object_set_new(f, v[i]->path, hexj(&v[i]->digest)) < 0) {
			json_decref(f);
			f = NULL;
		}
	free(v);
	return v ? f : NULL;
}

static char *bundle_json(const struct ctx *c)
{
	const struct bnd_create_opts *o = c->o;
	const struct bnd_member *bin = artifact(c, "binaries/ollama-linux-amd64");
	const struct bnd_member *img = artifact(c, "images/open-webui.tar");
	char date[32];
	time_t t = (time_t)o->mtime;
	struct tm tm;
	json_t *arts = json_object(), *root;
	char *text = NULL, *out = NULL;

	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	if (bin)
		json_object_set_new(arts, "ollama_binary", hexj(&bin->digest));
	if (img)
		json_object_set_new(arts, "open_webui_image", hexj(&img->digest));
	json_object_set_new(arts, "models_directory_hash", hexj(&c->models_hash));
	root = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o?}", "bundle_version", o->label, "creator",
			 o->creator, "creation_date", date, "low_side_host", o->host, "artifacts",
			 arts, "files", files_json(c));
	if (root && c->delta)
		json_object_set_new(root, "delta", bnd_delta_json(c->delta, &c->set));
	if (root &&
	    (!json_object_get(root, "files") || (c->delta && !json_object_get(root, "delta"))))
		goto out;
	if (root && (text = json_dumps(root, JSON_INDENT(2))) && asprintf(&out, "%s\n", text) < 0)
		out = NULL;
out:
	free(text);
	json_decref(root);
	return out;
}

static int add_manifest(struct ctx *c)
{
	_cleanup_free_ char *why = NULL;
	struct bnd_member *d;
	char *bj = bundle_json(c), *sig = NULL;
	size_t siglen;
	int r;

	if (!bj || !(d = bnd_add(&c->set, "manifest"))) {
		free(bj);
		return -ENOMEM;
	}
	d->is_dir = true;
	d->mode = 0755;
	if (strlen(bj) > IMP_MAX_BUNDLE_JSON) {
		free(bj);
		return imp_fail(
			c->e, IMP_REFUSED, -E2BIG, "manifest/bundle.json",
			"it would be larger than the %u MiB agimport reads (too many files)",
			IMP_MAX_BUNDLE_JSON >> 20);
	}
	ag_sha256(bj, strlen(bj), &c->bundle_json_sha);
	if ((r = sig_sign(c->signer, bj, strlen(bj), &sig, &siglen, &why)) < 0) {
		free(bj);
		return r == -ENOMEM ? r
				    : imp_fail(c->e, IMP_REFUSED, r, c->o->sign_key, "%s",
					       why ? why : "signing failed");
	}
	if ((r = add_generated(c, "manifest/bundle.json", bj)) < 0) {
		free(sig);
		return r;
	}
	return add_generated(c, "manifest/bundle.json.asc", sig);
}

int bnd_label_time(const char *label, int64_t *t)
{
	struct tm tm = {0}, back;
	time_t tt;

	if (strlen(label) != 8 || strspn(label, "0123456789") != 8)
		return -EINVAL;
	tm.tm_year = (label[0] - '0') * 1000 + (label[1] - '0') * 100 + (label[2] - '0') * 10 +
		     (label[3] - '0') - 1900;
	tm.tm_mon = (label[4] - '0') * 10 + (label[5] - '0') - 1;
	tm.tm_mday = (label[6] - '0') * 10 + (label[7] - '0');
	int mday = tm.tm_mday, mon = tm.tm_mon; /* timegm() normalizes tm */
	tt = timegm(&tm);
	if (tt == (time_t)-1 || !gmtime_r(&tt, &back) || back.tm_mday != mday || back.tm_mon != mon)
		return -EINVAL;
	*t = (int64_t)tt;
	return 0;
}

/* ---------- the run ---------- */

static int write_from(struct ctx *c, size_t from)
{
	int r = 0;

	for (size_t i = from; r == 0 && i < c->set.n; i++)
		r = write_member(c, &c->set.m[i]);
	return r;
}

static int prepare(struct ctx *c)
{
	const struct bnd_create_opts *o = c->o;
	_cleanup_free_ char *why = NULL;
	struct stat st;
	int r;

	c->outfd = open(o->outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->outfd < 0)
		return imp_fail(c->e, IMP_USAGE, -errno, o->outdir,
				"the output directory cannot be opened (%m)");
	snprintf(c->tarname, sizeof(c->tarname), "airgap-bundle-%s.tar.%s", o->label,
		 o->comp == BND_ZSTD ? "zst" : "gz");
	snprintf(c->shaname, sizeof(c->shaname), "airgap-bundle-%s.sha256", o->label);
	if (!o->force && (fstatat(c->outfd, c->tarname, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
			  fstatat(c->outfd, c->shaname, &st, AT_SYMLINK_NOFOLLOW) == 0))
		return imp_fail(c->e, IMP_REFUSED, -EEXIST, o->outdir,
				"a bundle labelled %s is already there (--force replaces it)",
				o->label);
	bnd_remove_stale(c->outfd); /* of runs killed before they could clean up */
	r = sig_signer_open(o->homedir, o->sign_key, &c->signer, &why);
	if (r < 0)
		return r == -ENOMEM ? r
				    : imp_fail(c->e, IMP_REFUSED, r, o->sign_key, "%s",
					       why ? why : "the key cannot sign");
	if (o->in.since && (r = bnd_delta_load(o->in.since, &c->delta, c->e)) < 0)
		return r;
	if ((r = bnd_scan(&o->in, c->delta, &c->set, &c->models_fd, c->e)) < 0)
		return r;
	if (!(c->buf = malloc(READ_BUF)) || !(c->hash = ag_hash_new()))
		return -ENOMEM;
	return 0;
}

static json_t *summary(struct ctx *c, const ag_digest *outer, uint64_t out_bytes)
{
	size_t omitted = 0;
	char path[4400];
	json_t *j;

	for (size_t i = 0; i < c->set.n; i++)
		omitted += c->set.m[i].omitted;
	snprintf(path, sizeof(path), "%s/%s", c->o->outdir, c->tarname);
	j = json_pack("{s:s, s:o, s:s, s:o, s:s, s:o, s:I, s:I, s:I, s:b, s:I}", "bundle", path,
		      "sha256", hexj(outer), "label", c->o->label, "bundle_json_sha256",
		      hexj(&c->bundle_json_sha), "signer", c->o->sign_key, "models_directory_hash",
		      hexj(&c->models_hash), "files", (json_int_t)c->nfiles, "bytes_read",
		      (json_int_t)c->bytes_in, "bytes_written", (json_int_t)out_bytes, "delta",
		      c->delta != NULL, "omitted_blobs", (json_int_t)omitted);
	if (j) {
		snprintf(path, sizeof(path), "%s/%s", c->o->outdir, c->shaname);
		json_object_set_new(j, "sha256_file", json_string(path));
	}
	return j;
}

static int finish(struct ctx *c, json_t **sum)
{
	char hex[AG_HEX_LEN + 1], line[400];
	ag_digest outer;
	uint64_t bytes;
	int r;

	if ((r = bnd_out_finish(c->out, &outer, &bytes)) < 0)
		return imp_fail(c->e, IMP_IO, r, c->tarname, "writing it failed (%s)",
				ag_strerror(r));
	if ((r = bnd_out_commit(c->out, c->o->force)) < 0)
		return imp_fail(c->e, r == -EEXIST ? IMP_REFUSED : IMP_IO, r, c->tarname,
				"it cannot be put in place (%s)", ag_strerror(r));
	ag_digest_hex(&outer, hex);
	snprintf(line, sizeof(line), "%s  %s\n", hex, c->tarname);
	r = bnd_write_file_atomic(c->outfd, c->shaname, line, strlen(line), c->o->force);
	if (r < 0) {
		unlinkat(c->outfd, c->tarname, 0); /* no bundle without its hash */
		return imp_fail(c->e, IMP_IO, r, c->shaname, "it cannot be written (%s)",
				ag_strerror(r));
	}
	*sum = summary(c, &outer, bytes);
	return *sum ? 0 : -ENOMEM;
}

static uint64_t total_bytes(const struct ctx *c)
{
	uint64_t t = 0;

	for (size_t i = 0; i < c->set.n; i++)
		if (!c->set.m[i].is_dir && !c->set.m[i].omitted)
			t += c->set.m[i].size;
	return t;
}

int bnd_create(const struct bnd_create_opts *o, json_t **sum, struct imp_error *e)
{
	struct ctx c = {.o = o, .models_fd = -1, .outfd = -1, .e = e};
	size_t from;
	int r;

	if ((r = prepare(&c)) < 0)
		goto out;
	r = bnd_out_open(c.outfd, c.tarname, o->comp, o->threads, &c.out);
	if (r < 0) {
		imp_fail(e, IMP_IO, r, o->outdir, "the bundle cannot be started there (%s)",
			 ag_strerror(r));
		goto out;
	}
	c.prog = imp_progress_new("agbundle", total_bytes(&c));
	if ((r = write_from(&c, 0)) < 0)
		goto out;
	from = c.set.n;
	if ((r = add_signatures(&c)) < 0 || (r = write_from(&c, from)) < 0)
		goto out;
	from = c.set.n;
	if ((r = add_manifest(&c)) < 0 || (r = write_from(&c, from)) < 0)
		goto out;
	r = finish(&c, sum);
out:
	imp_progress_done(c.prog);
	bnd_out_free(c.out); /* removes the temporary file unless it was renamed */
	sig_signer_free(c.signer);
	bnd_delta_free(c.delta);
	bnd_set_free(&c.set);
	ag_hash_free(c.hash);
	free(c.buf);
	if (c.models_fd >= 0)
		close(c.models_fd);
	if (c.outfd >= 0)
		close(c.outfd);
	return r;
}
