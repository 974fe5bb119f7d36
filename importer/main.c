/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agimport: verify a signed air-gap bundle (or a plain Ollama models tree)
 * and publish its models into an agfs store as a new generation, all or
 * nothing.  Options, the one-sentence report and the exit codes live here:
 * 0 imported (or verified, with --dry-run), 1 verification failure or
 * refused input, 2 usage error, 4 I/O or system failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "importer/import.h"
#include "importer/registry.h"

struct run {
	struct imp_options o;
	const char *source;
	ag_store *store;
	struct sig_keyring *ks;
	struct imp_source src;
	struct imp_result res;
	struct imp_error err;
	char *artifacts_tmp;
	uint64_t gen_id;
	bool committed; /* the generation is in, a later step failed */
	bool no_audit;	/* refused before the source was looked at */
	int fd;		/* the source */
	struct stat st;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: agimport [OPTIONS] SOURCE     (a .tar[.gz|.zst|.xz], a bundle "
		   "directory, or -)\n"
		   "       agimport [OPTIONS] --ollama-dir DIR\n"
		   "       agimport --registry URL [OPTIONS]  (agimport --registry URL --help)\n"
		   "  --store DIR          the store (default $AGFS_STORE, else " AG_DEFAULT_STORE
		   ")\n"
		   "  --keyring FILE|DIR   trusted public keys (a key file or a GnuPG home)\n"
		   "  --signer FPR         allowed signing key (repeatable)\n"
		   "  --sha256 HEX         the tarball's expected SHA-256\n"
		   "  --sha256-file FILE   the same, from a sha256sum line\n"
		   "  --label L            the generation's label (default: bundle_version)\n"
		   "  --replace            the new generation holds only this source's models\n"
		   "  --allow-downgrade    accept a bundle_version older than the current label\n"
		   "  --artifacts-dir DIR  copy signed non-model artifacts to DIR/<label>/\n"
		   "  --copy-unverified    also copy hash-listed, unsigned ones to "
		   "DIR/<label>/unverified/\n"
		   "  --transfer-log FILE  append the site's transfer record\n"
		   "  --operator NAME      recorded operator (default: the login name)\n"
		   "  --dry-run            verify only; the store is not touched\n"
		   "  --json               print the verification report on stdout\n"
		   "  --no-signature       accept an unsigned source (audited)\n"
		   "  --sign-key FPR       sign the new generation's catalog with this key\n"
		   "  --sign-homedir DIR   the GnuPG home holding it (default $GNUPGHOME)\n");
}

static int die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "agimport: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see agimport --help).\n");
	return IMP_USAGE;
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;
	return s ? s + 1 : p;
}

/*
 * --sha256-file: sha256sum lines ("<hex>  name", "<hex> *name", and the
 * "\<hex>  name" form GNU writes for a name holding "\\" or a newline), or
 * a bare hex digest typed by the operator.  With one digest in the file it
 * is the one; with several, the line naming the source is.
 */
static int read_sha256_file(const char *file, const char *source, ag_digest *out)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0, ndig = 0;
	ssize_t n;
	bool named = false;
	const char *base = base_name(source);

	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0 && n < 65536) {
		struct imp_sumlist l = {0};
		size_t bad;
		ag_digest d;
		size_t len = strcspn(line, "\r\n");
		if (len == AG_HEX_LEN && ag_digest_parse(line, len, &d) == 0) {
			if (!named && ndig++ == 0)
				*out = d;
			continue;
		}
		if (imp_sumlist_parse(line, (size_t)n, &l, &bad) < 0 || l.n != 1)
			continue;
		if (base && strcmp(base_name(l.lines[0].path), base) == 0) {
			*out = l.lines[0].digest;
			named = true;
		} else if (!named && ndig == 0) {
			*out = l.lines[0].digest;
		}
		ndig++;
		imp_sumlist_free(&l);
	}
	free(line);
	fclose(f);
	return named || ndig == 1 ? 0 : ndig ? -EEXIST : -ENODATA;
}

static char *login_name(void)
{
	struct passwd *pw = getpwuid(geteuid());
	return strdup(pw ? pw->pw_name : "unknown");
}

enum {
	OPT_STORE = 256,
	OPT_KEYRING,
	OPT_SIGNER,
	OPT_SHA256,
	OPT_SHA256_FILE,
	OPT_LABEL,
	OPT_REPLACE,
	OPT_DOWNGRADE,
	OPT_ARTIFACTS,
	OPT_TRANSFER,
	OPT_OPERATOR,
	OPT_DRY_RUN,
	OPT_JSON,
	OPT_NO_SIG,
	OPT_OLLAMA,
	OPT_COPY_UNVERIFIED,
	OPT_SIGN_KEY,
	OPT_SIGN_HOMEDIR,
};

static const struct option long_opts[] = {
	{"store", required_argument, NULL, OPT_STORE},
	{"keyring", required_argument, NULL, OPT_KEYRING},
	{"signer", required_argument, NULL, OPT_SIGNER},
	{"sha256", required_argument, NULL, OPT_SHA256},
	{"sha256-file", required_argument, NULL, OPT_SHA256_FILE},
	{"label", required_argument, NULL, OPT_LABEL},
	{"replace", no_argument, NULL, OPT_REPLACE},
	{"allow-downgrade", no_argument, NULL, OPT_DOWNGRADE},
	{"artifacts-dir", required_argument, NULL, OPT_ARTIFACTS},
	{"transfer-log", required_argument, NULL, OPT_TRANSFER},
	{"operator", required_argument, NULL, OPT_OPERATOR},
	{"dry-run", no_argument, NULL, OPT_DRY_RUN},
	{"json", no_argument, NULL, OPT_JSON},
	{"no-signature", no_argument, NULL, OPT_NO_SIG},
	{"ollama-dir", required_argument, NULL, OPT_OLLAMA},
	{"copy-unverified", no_argument, NULL, OPT_COPY_UNVERIFIED},
	{"sign-key", required_argument, NULL, OPT_SIGN_KEY},
	{"sign-homedir", required_argument, NULL, OPT_SIGN_HOMEDIR},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static bool label_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Options that only set a flag or keep their argument. */
static bool set_simple(struct imp_options *o, int c, const char *arg)
{
	bool *flag = c == OPT_REPLACE		? &o->replace
		     : c == OPT_DOWNGRADE	? &o->allow_downgrade
		     : c == OPT_DRY_RUN		? &o->dry_run
		     : c == OPT_JSON		? &o->json
		     : c == OPT_NO_SIG		? &o->no_signature
		     : c == OPT_COPY_UNVERIFIED ? &o->copy_unverified
						: NULL;
	const char **str = c == OPT_STORE	   ? &o->store_path
			   : c == OPT_KEYRING	   ? &o->keyring
			   : c == OPT_ARTIFACTS	   ? &o->artifacts_dir
			   : c == OPT_TRANSFER	   ? &o->transfer_log
			   : c == OPT_OPERATOR	   ? &o->operator_name
			   : c == OPT_SIGN_KEY	   ? &o->sign_key
			   : c == OPT_SIGN_HOMEDIR ? &o->sign_homedir
						   : NULL;

	if (flag)
		*flag = true;
	if (str)
		*str = arg;
	return flag || str;
}

static int add_signer(struct imp_options *o, const char *arg)
{
	char **ns = realloc(o->signers, (o->nsigners + 1) * sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	o->signers = ns;
	o->signers[o->nsigners++] = (char *)arg;
	return 0;
}

static int set_opt(struct run *rn, int c, const char *arg, const char **sha_file)
{
	struct imp_options *o = &rn->o;

	if (set_simple(o, c, arg))
		return 0;
	switch (c) {
	case OPT_SIGNER:
		return add_signer(o, arg);
	case OPT_SHA256:
		if (ag_digest_parse(arg, strlen(arg), &o->sha256) < 0)
			return die_usage("--sha256 %s is not 64 hex digits", arg);
		o->has_sha256 = true;
		return 0;
	case OPT_SHA256_FILE:
		*sha_file = arg;
		return 0;
	case OPT_LABEL:
		if (!label_ok(arg))
			return die_usage(
				"--label %s is not a plain label ([A-Za-z0-9._-], at most 64)",
				arg);
		o->label = arg;
		return 0;
	case OPT_OLLAMA:
		o->ollama_dir = true;
		rn->source = arg;
		return 0;
	case 'V':
		printf("agimport (agfs) %s\n", AGFS_VERSION);
		exit(0);
	case 'h':
		usage(stdout);
		exit(0);
	default:
		return IMP_USAGE;
	}
}

static int check_args(struct run *rn, const char *sha_file)
{
	struct imp_options *o = &rn->o;
	int r;

	if (!rn->source)
		return die_usage("needs a SOURCE (a bundle, a directory, -) or --ollama-dir DIR%s",
				 "");
	if (!o->keyring && !o->no_signature)
		return die_usage("%s needs --keyring to verify its signature, or --no-signature",
				 rn->source);
	if (sha_file && (r = read_sha256_file(sha_file, rn->source, &o->sha256)) == -EEXIST)
		return die_usage("--sha256-file %s holds several SHA-256 lines, none for %s",
				 sha_file, base_name(rn->source));
	if (sha_file && r == -ENOENT)
		return die_usage("--sha256-file %s does not exist", sha_file);
	if (sha_file && r == -ENODATA)
		return die_usage("--sha256-file %s holds no SHA-256 line", sha_file);
	if (sha_file && r < 0)
		return die_usage("--sha256-file %s cannot be read: %s", sha_file, strerror(-r));
	if (o->copy_unverified && !o->artifacts_dir)
		return die_usage("--copy-unverified needs --artifacts-dir%s", "");
	if (o->sign_homedir && !o->sign_key)
		return die_usage("--sign-homedir needs --sign-key%s", "");
	if (sha_file)
		o->has_sha256 = true;
	if (!o->store_path)
		o->store_path = getenv("AGFS_STORE") && *getenv("AGFS_STORE") ? getenv("AGFS_STORE")
									      : AG_DEFAULT_STORE;
	return 0;
}

static int parse_args(struct run *rn, int argc, char **argv)
{
	const char *sha_file = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		if ((r = set_opt(rn, c, optarg, &sha_file)) != 0)
			return r < 0 ? IMP_IO : IMP_USAGE;
	if (optind < argc && rn->o.ollama_dir)
		return die_usage("takes either SOURCE or --ollama-dir, not both (%s)",
				 argv[optind]);
	if (optind < argc)
		rn->source = argv[optind++];
	if (optind < argc)
		return die_usage("takes one SOURCE, not also %s", argv[optind]);
	return check_args(rn, sha_file);
}

static int open_store(struct run *rn)
{
	const char *path = rn->o.store_path;
	int r;

	if (rn->o.dry_run) {
		r = ag_store_open(path, AG_RDONLY, &rn->store);
		if (r == -ENOENT || r == -AG_ENOTSTORE) /* a store yet to be made: empty */
			return 0;
	} else {
		/* GnuPG homes of killed runs are directories in tmp/: gone before
		 * the store's own cleaning of tmp/ sees them. */
		_cleanup_free_ char *tmp = NULL;
		if (asprintf(&tmp, "%s/tmp", path) >= 0)
			sig_keyring_remove_stale(tmp);
		r = ag_store_open(path, AG_WRITE | AG_CREATE, &rn->store);
	}
	if (r == -EACCES || r == -EPERM)
		return imp_fail(&rn->err, IMP_IO, r, path,
				"the store cannot be opened (%s): run as root, or as the store's "
				"owner",
				ag_strerror(r));
	if (r < 0)
		return imp_fail(&rn->err, IMP_IO, r, path, "the store cannot be opened (%s)",
				ag_strerror(r));
	return 0;
}

static int open_source(struct run *rn)
{
	const char *s = rn->source;
	struct stat *st = &rn->st;

	rn->fd = strcmp(s, "-") == 0 ? dup(STDIN_FILENO) : open(s, O_RDONLY | O_CLOEXEC);
	if (rn->fd < 0 || fstat(rn->fd, st) < 0)
		return imp_fail(&rn->err, errno == ENOENT ? IMP_USAGE : IMP_IO, -errno, "",
				"it cannot be opened (%m)");
	if (rn->o.has_sha256 && S_ISDIR(st->st_mode))
		return imp_fail(&rn->err, IMP_USAGE, -EISDIR, "",
				"it is a directory, and --sha256 applies to a tarball");
	if (rn->o.ollama_dir && !S_ISDIR(st->st_mode))
		return imp_fail(&rn->err, IMP_USAGE, -ENOTDIR, "",
				"it is not a directory, as --ollama-dir needs");
	return 0;
}

static int check_space(struct run *rn, const struct stat *st)
{
	uint64_t avail;
	int r;

	if (!rn->store || rn->o.dry_run || !S_ISREG(st->st_mode))
		return 0;
	if ((r = ag_store_free_space(rn->store, &avail)) < 0)
		return imp_fail(&rn->err, IMP_IO, r, rn->o.store_path,
				"its free space cannot be read (%s)", ag_strerror(r));
	if ((uint64_t)st->st_size > avail)
		return imp_fail(&rn->err, IMP_IO, -ENOSPC, "",
				"it is %llu bytes and the store has only %llu free",
				(unsigned long long)st->st_size, (unsigned long long)avail);
	return 0;
}

static int read_source(struct run *rn)
{
	struct imp_read rd = {.store = rn->store, .dry_run = rn->o.dry_run};
	int fd = rn->fd, r;

	if ((r = check_space(rn, &rn->st)) < 0)
		return r;
	if (!(rn->src.name = strdup(rn->source)))
		return imp_fail(&rn->err, IMP_IO, -ENOMEM, "", "out of memory");
	rn->src.stage_all = rn->o.artifacts_dir != NULL;
	if (rn->store && !rn->o.dry_run &&
	    (r = imp_staging_setup(&rn->src, rn->store, &rn->err)) < 0)
		return r;
	if (rn->store && !rn->o.dry_run && (r = imp_pipe_new(&rd.pipe)) < 0)
		return imp_fail(&rn->err, IMP_IO, r, "", "the staging thread cannot start");
	if (rn->store && !rn->o.dry_run && (r = imp_smallq_new(rn->store, &rd.smallq)) < 0) {
		imp_pipe_free(rd.pipe);
		return imp_fail(&rn->err, IMP_IO, r, "", "the staging thread cannot start");
	}
	rd.progress = imp_progress_new("agimport",
				       S_ISREG(rn->st.st_mode) ? (uint64_t)rn->st.st_size : 0);
	if (rn->o.ollama_dir)
		r = imp_read_ollama_dir(fd, &rd, &rn->src, &rn->err);
	else if (S_ISDIR(rn->st.st_mode))
		r = imp_read_dir(fd, &rd, &rn->src, &rn->err);
	else
		r = imp_read_archive(fd, &rd, &rn->src, &rn->err);
	int fin = imp_smallq_finish(rd.smallq, &rn->src, &rn->err);
	if (r == 0)
		r = fin;
	imp_progress_done(rd.progress);
	imp_pipe_free(rd.pipe);
	return r;
}

/* The private GnuPG home goes into the store's tmp/ (emptied by the next
 * writer if this run is killed); a dry run without a writable store uses
 * $TMPDIR. */
static int open_keyring(struct run *rn)
{
	_cleanup_free_ char *why = NULL, *parent = NULL;
	int r;

	if (!rn->o.keyring)
		return 0;
	if (rn->store && ag_store_writable(rn->store) &&
	    asprintf(&parent, "%s/tmp", ag_store_path(rn->store)) < 0)
		return imp_fail(&rn->err, IMP_IO, -ENOMEM, "", "out of memory");
	r = sig_keyring_open(rn->o.keyring, rn->o.signers, rn->o.nsigners, parent, &rn->ks, &why);
	if (r < 0)
		return imp_fail(&rn->err, sig_keyring_err_is_input(r) ? IMP_USAGE : IMP_IO, r,
				rn->o.keyring, "%s", why ? why : ag_strerror(r));
	return 0;
}

static json_t *model_names(const struct imp_result *res)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < res->nmodels; i++)
		json_array_append_new(a, json_string(res->models[i].model.name));
	return a;
}

/* The BUNDLE_INGEST record's fields (publishing adds the generation). */
static json_t *ingest_fields(struct run *rn)
{
	char hex[AG_HEX_LEN + 1] = "";
	json_t *f;

	if (rn->src.has_outer)
		ag_digest_hex(&rn->src.outer, hex);
	f = json_pack("{s:s, s:s?, s:s, s:s?, s:o, s:b, s:O}", "source", rn->source,
		      "source_sha256", hex[0] ? hex : NULL, "label", rn->res.label, "signer",
		      rn->res.signer, "models", model_names(&rn->res), "unsigned",
		      rn->res.signer == NULL, "uncovered",
		      json_object_get(rn->res.report, "uncovered"));
	if (f && rn->res.artifacts)
		json_object_set(f, "artifacts", rn->res.artifacts);
	if (f && rn->res.unverified && json_array_size(rn->res.unverified))
		json_object_set(f, "unverified_copied", rn->res.unverified);
	if (f && rn->res.downgrade)
		json_object_set_new(f, "downgrade",
				    json_pack("{s:s, s:s}", "from", rn->res.max_version, "to",
					      rn->res.bundle.bundle_version));
	return f;
}

static void audit_reject(struct run *rn)
{
	json_t *f;

	if (!rn->store || !ag_store_writable(rn->store))
		return;
	f = json_pack("{s:s, s:s, s:s}", "source", rn->source ? rn->source : "", "member",
		      rn->err.member, "reason", rn->err.reason);
	if (f && rn->err.cls == IMP_IO) /* not found wrong: could not be imported */
		json_object_set_new(f, "io_error", json_true());
	ag_audit(rn->store, "BUNDLE_REJECTED", rn->o.operator_name, f);
	json_decref(f);
}

/* The transfer line's digest: the tarball's, else bundle.json's. */
static void transfer_hex(struct run *rn, char hex[AG_HEX_LEN + 1])
{
	struct imp_member *bj = imp_member_find(&rn->src, "manifest/bundle.json");

	if (rn->src.has_outer)
		ag_digest_hex(&rn->src.outer, hex);
	else if (bj)
		ag_digest_hex(&bj->digest, hex);
	else
		snprintf(hex, AG_HEX_LEN + 1, "-");
}

/* Output places (and the --sign-key key) are checked before anything is
 * read: a missing directory or an unusable key is the operator's mistake,
 * not the bundle's. */
static int check_outputs(struct run *rn)
{
	struct imp_options *o = &rn->o;
	int r;

	if (o->sign_key) {
		_cleanup_free_ char *why = NULL;
		if ((r = sig_signer_open(o->sign_homedir, o->sign_key, &o->signer, &why)) < 0)
			return imp_fail(&rn->err, IMP_USAGE, r, "--sign-key", "%s",
					why ? why : ag_strerror(r));
	}
	if (o->dry_run)
		return 0;
	if (o->artifacts_dir && (r = imp_artifacts_dir_check(o->artifacts_dir, &rn->err)) < 0)
		return r;
	if (!o->transfer_log)
		return 0;
	o->transfer_fd =
		open(o->transfer_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (o->transfer_fd < 0)
		return imp_fail(&rn->err, errno == ENOENT || errno == ENOTDIR ? IMP_USAGE : IMP_IO,
				-errno, o->transfer_log,
				"the transfer log cannot be opened for appending (%m)");
	return 0;
}

static int publish(struct run *rn)
{
	char hex[AG_HEX_LEN + 1];
	json_t *fields;
	int r;

	if (rn->o.artifacts_dir &&
	    (r = imp_copy_artifacts(&rn->src, &rn->o, &rn->res, &rn->artifacts_tmp, &rn->err)) < 0)
		return r;
	if (!(fields = ingest_fields(rn)))
		return imp_fail(&rn->err, IMP_IO, -ENOMEM, "", "out of memory");
	transfer_hex(rn, hex);
	r = imp_publish(&rn->src, &rn->o, rn->store, &rn->res, fields, hex, &rn->gen_id, &rn->err);
	json_decref(fields);
	if (r < 0)
		return r;
	imp_test_kill("after-commit");
	if (rn->artifacts_tmp && (r = imp_artifacts_place(rn->artifacts_tmp, rn->o.artifacts_dir,
							  rn->res.label, &rn->err)) < 0) {
		rn->committed = true;
		return r;
	}
	free(rn->artifacts_tmp);
	rn->artifacts_tmp = NULL;
	return 0;
}

/* The staged bytes are written back while the source is verified and
 * published: a head start for the one syncfs that makes them durable
 * before the audit record and the commit (ag_txn_sync), which still comes
 * in its place. */
static void *early_writeback(void *arg)
{
	syncfs((int)(intptr_t)arg);
	return NULL;
}

static int run(struct run *rn)
{
	pthread_t wb;
	bool wb_on = false;
	int r;

	if ((r = check_outputs(rn)) < 0) {
		rn->no_audit = true;
		return r;
	}
	if ((r = open_source(rn)) < 0 || (r = open_store(rn)) < 0 || (r = open_keyring(rn)) < 0 ||
	    (r = read_source(rn)) < 0)
		return r;
	if (rn->store && !rn->o.dry_run)
		wb_on = pthread_create(&wb, NULL, early_writeback,
				       (void *)(intptr_t)ag_store_dirfd(rn->store)) == 0;
	rn->res.require_manifest_sig = rn->o.ollama_dir && rn->ks;
	r = imp_verify_source(&rn->src, &rn->o, rn->ks, rn->store, &rn->res, &rn->err);
	if (r == 0 && !rn->o.dry_run)
		r = publish(rn);
	if (wb_on)
		pthread_join(wb, NULL);
	return r;
}

/* What the one-line summary does not say: repairs, downgrades, unsigned files. */
static void report_notes(struct run *rn)
{
	json_t *v;
	size_t i;
	json_t *unc = json_object_get(rn->res.report, "uncovered");

	json_array_foreach(rn->res.repaired, i, v)
		printf("agimport: repaired the damaged object sha256:%s with the verified bytes.\n",
		       json_string_value(v));
	if (rn->res.downgrade)
		printf("agimport: bundle_version %s is older than %s, accepted "
		       "(--allow-downgrade).\n",
		       rn->res.bundle.bundle_version, rn->res.max_version);
	json_array_foreach(rn->res.unverified, i, v)
		printf("agimport: %s is hash-listed, not signed: copied to unverified/.\n",
		       json_string_value(v));
	if (json_integer_value(json_object_get(unc, "count")) > 0)
		printf("agimport: %lld files no hash covers were ignored.\n",
		       (long long)json_integer_value(json_object_get(unc, "count")));
}

static void report(struct run *rn, int r)
{
	if (rn->o.json && r == 0) {
		json_dumpf(rn->res.report, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (rn->o.json) {
		json_t *j =
			json_pack("{s:s, s:s, s:s, s:s}", "source", rn->source ? rn->source : "",
				  "result", imp_result(rn->err.cls), "member", rn->err.member,
				  "reason", rn->err.reason);
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(j);
	} else if (r == 0 && rn->o.dry_run) {
		printf("agimport: %s verified (%zu models, label %s); nothing was imported "
		       "(--dry-run).\n",
		       rn->source, rn->res.nmodels, rn->res.label);
	} else if (r == 0) {
		printf("agimport: %s imported as generation %llu (%s, %zu models, %lld new "
		       "objects).\n",
		       rn->source, (unsigned long long)rn->gen_id, rn->res.label, rn->res.nmodels,
		       (long long)json_integer_value(
			       json_object_get(rn->res.report, "new_objects")));
		report_notes(rn);
	}
	if (r < 0 && rn->committed) {
		fprintf(stderr, "agimport: %s was imported as generation %llu, but %s: %s.\n",
			rn->source, (unsigned long long)rn->gen_id,
			rn->err.member[0] ? rn->err.member : "a later step", rn->err.reason);
		return;
	}
	/* A source found wrong is refused; one that could not be imported (a
	 * disk error, no space) or an option that cannot be used is not called
	 * bad. */
	const char *what = imp_verdict(rn->err.cls, "could not import", "cannot import");
	if (r < 0 && rn->err.member[0])
		fprintf(stderr, "agimport: %s %s: %s: %s.\n", what, rn->source ? rn->source : "-",
			rn->err.member, rn->err.reason);
	else if (r < 0)
		fprintf(stderr, "agimport: %s %s: %s.\n", what, rn->source ? rn->source : "-",
			rn->err.reason[0] ? rn->err.reason : ag_strerror(r));
}

int main(int argc, char **argv)
{
	struct run rn = {.fd = -1, .o.transfer_fd = -1};
	_cleanup_free_ char *login = login_name();
	int r, cls;

	if (imp_registry_wanted(argc, argv)) /* agimport --registry URL: registry.c */
		return imp_registry_main(argc, argv);
	r = parse_args(&rn, argc, argv);
	if (r != 0)
		return r;
	if (!rn.o.operator_name)
		rn.o.operator_name = login ? login : "unknown";
	r = run(&rn);
	if (r < 0 && rn.err.cls == IMP_OK)
		imp_fail(&rn.err, IMP_IO, r, "", "%s", ag_strerror(r));
	cls = r < 0 ? rn.err.cls : IMP_OK;
	report(&rn, r);
	imp_source_free(&rn.src); /* removes everything still staged */
	if (r < 0 && !rn.o.dry_run && !rn.no_audit && !rn.committed)
		audit_reject(&rn);
	if (rn.artifacts_tmp)
		imp_remove_tree(rn.artifacts_tmp);
	if (rn.o.transfer_fd >= 0)
		close(rn.o.transfer_fd);
	imp_result_free(&rn.res);
	sig_keyring_free(rn.ks);
	sig_signer_free(rn.o.signer);
	ag_store_close(rn.store);
	free(rn.artifacts_tmp);
	free(rn.o.signers);
	if (rn.fd >= 0)
		close(rn.fd);
	return cls;
}
