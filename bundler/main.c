/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agbundle: build the site's air-gap bundle on the low side (create), or
 * verify one as the high side will (verify).  Options, the one-sentence
 * report and the exit codes live here: 0 done, 1 refused input or
 * verification failure, 2 usage error, 4 I/O or system failure.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bundler/bundle.h"

#ifndef AGFS_VERSION
#define AGFS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: agbundle create --models DIR --sign-key FPR -o OUTDIR [OPTIONS]\n"
		   "       agbundle verify BUNDLE --keyring FILE [OPTIONS]\n"
		   "create (writes OUTDIR/airgap-bundle-LABEL.tar.gz and .sha256):\n"
		   "  --models DIR          the Ollama models directory (~/.ollama/models)\n"
		   "  --binary FILE         a file for binaries/ (repeatable)\n"
		   "  --image FILE          a file for images/ (repeatable)\n"
		   "  --package FILE        a file for packages/ (repeatable)\n"
		   "  --sign-key FPR        the signing key's fingerprint\n"
		   "  --homedir DIR         its GnuPG home (default $GNUPGHOME, else ~/.gnupg)\n"
		   "  --label YYYYMMDD      bundle_version (default: today, UTC)\n"
		   "  --creator NAME        default: the login name\n"
		   "  --low-side-host H     default: the host name\n"
		   "  --since FILE          a delta: leave out the blobs the previous bundle.json\n"
		   "                        (or the previous bundle) FILE carried\n"
		   "  --zstd                write .tar.zst instead of .tar.gz\n"
		   "  --threads N           compressing threads (default: one per CPU)\n"
		   "  --force               replace an existing bundle of that label\n"
		   "  -o, --output DIR      the output directory\n"
		   "verify (the high side's checks, without a store):\n"
		   "  --keyring FILE|DIR    trusted public keys\n"
		   "  --signer FPR          allowed signing key (repeatable)\n"
		   "  --sha256 HEX          the tarball's expected SHA-256\n"
		   "  --sha256-file FILE    the same, from a sha256sum line\n"
		   "both:\n"
		   "  --json                print a summary (create) or the report (verify) on "
		   "stdout\n"
		   "  --help, --version\n");
}

static int die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "agbundle: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see agbundle --help).\n");
	return IMP_USAGE;
}

enum {
	OPT_MODELS = 256,
	OPT_BINARY,
	OPT_IMAGE,
	OPT_PACKAGE,
	OPT_SIGN_KEY,
	OPT_HOMEDIR,
	OPT_LABEL,
	OPT_CREATOR,
	OPT_HOST,
	OPT_SINCE,
	OPT_ZSTD,
	OPT_THREADS,
	OPT_FORCE,
	OPT_KEYRING,
	OPT_SIGNER,
	OPT_SHA256,
	OPT_SHA256_FILE,
	OPT_JSON,
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{"models", required_argument, NULL, OPT_MODELS},
	{"binary", required_argument, NULL, OPT_BINARY},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"package", required_argument, NULL, OPT_PACKAGE},
	{"sign-key", required_argument, NULL, OPT_SIGN_KEY},
	{"homedir", required_argument, NULL, OPT_HOMEDIR},
	{"label", required_argument, NULL, OPT_LABEL},
	{"creator", required_argument, NULL, OPT_CREATOR},
	{"low-side-host", required_argument, NULL, OPT_HOST},
	{"since", required_argument, NULL, OPT_SINCE},
	{"zstd", no_argument, NULL, OPT_ZSTD},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"force", no_argument, NULL, OPT_FORCE},
	{"output", required_argument, NULL, 'o'},
	{"keyring", required_argument, NULL, OPT_KEYRING},
	{"signer", required_argument, NULL, OPT_SIGNER},
	{"sha256", required_argument, NULL, OPT_SHA256},
	{"sha256-file", required_argument, NULL, OPT_SHA256_FILE},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

struct args {
	const char *cmd;
	struct bnd_create_opts c;
	struct bnd_verify_opts v;
	const char *sha_file;
	bool has_label_time;
	char host[256];
	char label[16];
	char *login;
};

static int push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = s;
	return 0;
}

/* The options that keep their argument as it is: where it goes, or NULL. */
static const char **str_slot(struct args *a, int c)
{
	const struct {
		int id;
		const char **to;
	} slots[] = {
		{OPT_MODELS, &a->c.in.models},	{OPT_SINCE, &a->c.in.since},
		{OPT_SIGN_KEY, &a->c.sign_key}, {OPT_HOMEDIR, &a->c.homedir},
		{OPT_LABEL, &a->c.label},	{OPT_CREATOR, &a->c.creator},
		{OPT_HOST, &a->c.host},		{'o', &a->c.outdir},
		{OPT_KEYRING, &a->v.keyring},	{OPT_SHA256_FILE, &a->sha_file},
	};

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		if (slots[i].id == c)
			return slots[i].to;
	return NULL;
}

static int set_opt(struct args *a, int c, char *arg)
{
	struct bnd_inputs *in = &a->c.in;
	const char **slot = str_slot(a, c);
	char *end;

	if (slot) {
		*slot = arg;
		return 0;
	}
	switch (c) {
	case OPT_BINARY:
		return push(&in->binaries, &in->nbinaries, arg);
	case OPT_IMAGE:
		return push(&in->images, &in->nimages, arg);
	case OPT_PACKAGE:
		return push(&in->packages, &in->npackages, arg);
	case OPT_SIGNER:
		return push(&a->v.signers, &a->v.nsigners, arg);
	case OPT_ZSTD:
		a->c.comp = BND_ZSTD;
		return 0;
	case OPT_FORCE:
		a->c.force = true;
		return 0;
	case OPT_JSON:
		a->c.json = true;
		return 0;
	case OPT_THREADS:
		errno = 0;
		unsigned long n = strtoul(arg, &end, 10);
		if (errno || *end || !*arg || n > 64)
			return die_usage("--threads %s is not a number from 0 to 64", arg);
		a->c.threads = (unsigned)n;
		return 0;
	case OPT_SHA256:
		if (ag_digest_parse(arg, strlen(arg), &a->v.sha256) < 0)
			return die_usage("--sha256 %s is not 64 hex digits", arg);
		a->v.has_sha256 = true;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	case OPT_VERSION:
		printf("agbundle (agfs) %s\n", AGFS_VERSION);
		exit(0);
	default:
		return IMP_USAGE;
	}
}

static int create_defaults(struct args *a)
{
	struct bnd_create_opts *c = &a->c;
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	time_t now = time(NULL);
	struct tm tm;
	struct passwd *pw;

	if (!c->label) {
		strftime(a->label, sizeof(a->label), "%Y%m%d", gmtime_r(&now, &tm));
		c->label = a->label;
	}
	if (bnd_label_time(c->label, &c->mtime) < 0)
		return die_usage("--label %s is not a date YYYYMMDD", c->label);
	if (sde && *sde) {
		char *end;
		errno = 0;
		long long v = strtoll(sde, &end, 10);
		if (errno || *end || v < 0)
			return die_usage("SOURCE_DATE_EPOCH=%s is not a number of seconds", sde);
		c->mtime = (int64_t)v;
	}
	if (!c->creator) {
		pw = getpwuid(geteuid());
		a->login = strdup(pw ? pw->pw_name : "unknown");
		c->creator = a->login ? a->login : "unknown";
	}
	if (!c->host) {
		if (gethostname(a->host, sizeof(a->host) - 1) < 0)
			snprintf(a->host, sizeof(a->host), "unknown");
		c->host = a->host;
	}
	return 0;
}

static int check_create(struct args *a)
{
	const struct bnd_create_opts *c = &a->c;

	if (a->v.keyring || a->v.nsigners || a->v.has_sha256 || a->sha_file)
		return die_usage("--keyring, --signer and --sha256 are options of verify, not %s",
				 "create");
	if (!c->in.models)
		return die_usage("create needs --models DIR%s", "");
	if (!c->sign_key)
		return die_usage("create needs --sign-key FPR (the bundle is always signed)%s", "");
	if (!c->outdir)
		return die_usage("create needs -o OUTDIR%s", "");
	return create_defaults(a);
}

static int check_verify(struct args *a)
{
	const struct bnd_create_opts *c = &a->c;
	const char *base;
	int r;

	if (c->in.models || c->sign_key || c->outdir || c->in.since || c->in.nbinaries ||
	    c->in.nimages || c->in.npackages)
		return die_usage("--models, --sign-key, -o and the inputs are options of create, "
				 "not %s",
				 "verify");
	if (!a->v.bundle)
		return die_usage("verify needs a BUNDLE%s", "");
	if (!a->v.keyring)
		return die_usage("verify needs --keyring to check %s's signature", a->v.bundle);
	if (!a->sha_file)
		return 0;
	base = strrchr(a->v.bundle, '/');
	base = base ? base + 1 : a->v.bundle;
	if ((r = bnd_read_sha256_file(a->sha_file, base, &a->v.sha256)) < 0)
		return die_usage("--sha256-file %s holds no SHA-256 line", a->sha_file);
	a->v.has_sha256 = true;
	return 0;
}

/* getopt_long over argv into a: IMP_USAGE for a bad option, IMP_IO when
 * memory ran out. */
static int read_opts(struct args *a, int argc, char **argv, const char *shortopts)
{
	int c, r;

	while ((c = getopt_long(argc, argv, shortopts, long_opts, NULL)) != -1)
		if ((r = set_opt(a, c, optarg)) != 0)
			return r < 0 ? IMP_IO : IMP_USAGE;
	return 0;
}

static int parse_args(struct args *a, int argc, char **argv)
{
	int r;

	if ((r = read_opts(a, argc, argv, "+ho:")) != 0)
		return r;
	if (optind >= argc)
		return die_usage("needs a command, create or verify%s", "");
	a->cmd = argv[optind];
	if (strcmp(a->cmd, "create") != 0 && strcmp(a->cmd, "verify") != 0)
		return die_usage("%s is not a command (create, verify)", a->cmd);
	/* the command's own options: argv from the command on, getopt reset */
	argc -= optind;
	argv += optind;
	optind = 0;
	if ((r = read_opts(a, argc, argv, "ho:")) != 0)
		return r;
	if (strcmp(a->cmd, "verify") == 0 && optind < argc)
		a->v.bundle = argv[optind++];
	if (optind < argc)
		return die_usage("does not take %s", argv[optind]);
	return strcmp(a->cmd, "create") == 0 ? check_create(a) : check_verify(a);
}

static void report_error(const char *what, const struct imp_error *e, int r)
{
	if (e->member[0])
		fprintf(stderr, "agbundle: %s: %s: %s.\n", what, e->member, e->reason);
	else
		fprintf(stderr, "agbundle: %s: %s.\n", what,
			e->reason[0] ? e->reason : ag_strerror(r));
}

static void print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

static void print_created(const struct args *a, json_t *sum)
{
	printf("agbundle: wrote %s (%s, %lld files%s), sha256 %s, and %s.\n",
	       json_string_value(json_object_get(sum, "bundle")), a->c.label,
	       (long long)json_integer_value(json_object_get(sum, "files")),
	       a->c.in.since ? ", a delta" : "", json_string_value(json_object_get(sum, "sha256")),
	       json_string_value(json_object_get(sum, "sha256_file")));
}

static void print_verified(const struct args *a, json_t *rep)
{
	printf("agbundle: %s verified (%zu members, label %s, signed by %s)%s.\n", a->v.bundle,
	       json_array_size(json_object_get(rep, "members")),
	       json_string_value(json_object_get(rep, "label")),
	       json_string_value(json_object_get(rep, "signer")),
	       json_object_get(rep, "delta")
		       ? "; a delta: its omitted blobs must be in the high side's store"
		       : "");
}

/* verify's refusal: the report (--json) on stdout, the sentence on stderr. */
static void report_refused(const struct args *a, const struct imp_error *e, int r)
{
	char what[4200];

	if (a->c.json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "source", a->v.bundle, "result",
				      "refused", "member", e->member, "reason", e->reason);
		print_json(j);
		json_decref(j);
	}
	snprintf(what, sizeof(what), "refused %s", a->v.bundle);
	report_error(what, e, r);
}

/* The command; its summary or report on stdout (--json: the document), a
 * failure in one sentence on stderr.  The exit code. */
static int run(struct args *a, struct imp_error *e)
{
	bool create = strcmp(a->cmd, "create") == 0;
	json_t *j = NULL;
	int r = create ? bnd_create(&a->c, &j, e) : bnd_verify(&a->v, &j, e);

	if (r < 0) {
		if (e->cls == IMP_OK)
			imp_fail(e, IMP_IO, r, "", "%s", ag_strerror(r));
		if (create)
			report_error("no bundle was written", e, r);
		else
			report_refused(a, e, r);
		return e->cls;
	}
	if (a->c.json)
		print_json(j);
	else if (create)
		print_created(a, j);
	else
		print_verified(a, j);
	json_decref(j);
	return IMP_OK;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	struct imp_error e = {0};
	int r;

	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	r = parse_args(&a, argc, argv);
	if (r == 0)
		r = run(&a, &e);
	free(a.c.in.binaries);
	free(a.c.in.images);
	free(a.c.in.packages);
	free(a.v.signers);
	free(a.login);
	return r;
}
