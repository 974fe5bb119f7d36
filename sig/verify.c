/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verifying OpenPGP signatures through gpgme, against a pinned keyring only.
 *
 * A private temporary GNUPGHOME is made for each run (agimport: in the
 * store's tmp/, which the next writer empties if this run is killed; else in
 * $TMPDIR, where homes of dead runs are removed by the next run) and holds
 * nothing but the keys given with --keyring (an armored or binary key file,
 * or a GnuPG home whose public keys are exported); the operator's own
 * keyring is never consulted.  A signature counts when it is good, made by a key that is not
 * expired or revoked, and (with --signer) by an allowed key.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <gpgme.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sig/sig.h"

struct sig_keyring {
	char home[4096];
	gpgme_ctx_t ctx;
	char **signers;
	size_t nsigners;
};

static int system_errno(gpgme_error_t ge);

static int new_ctx(const char *home, gpgme_ctx_t *out)
{
	gpgme_check_version(NULL);
	gpgme_error_t ge = gpgme_new(out);
	if (ge)
		return system_errno(ge) ? -system_errno(ge) : -ENOMEM;
	if ((ge = gpgme_ctx_set_engine_info(*out, GPGME_PROTOCOL_OpenPGP, NULL, home))) {
		gpgme_release(*out);
		*out = NULL;
		return system_errno(ge) ? -system_errno(ge) : -ENOENT;
	}
	gpgme_set_armor(*out, 0);
	return 0;
}

static void rm_tree(int dfd);

/* Homes "<program>-gnupg.<pid>.XXXXXX" of runs that are gone. */
void sig_keyring_remove_stale(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		long pid;
		struct stat st;
		const char *tag = strstr(de->d_name, "-gnupg.");
		if (!tag || sscanf(tag, "-gnupg.%ld.", &pid) != 1 || pid <= 0 ||
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		int fd = openat(dirfd(d), de->d_name,
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			rm_tree(fd);
			close(fd);
		}
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static int make_home(struct sig_keyring *k, const char *parent)
{
	const char *tmp = getenv("TMPDIR");
	char conf[sizeof(k->home) + 16];
	int fd;

	if (!parent)
		parent = tmp && *tmp && strlen(tmp) < 1024 ? tmp : "/tmp";
	sig_keyring_remove_stale(parent);
	if (snprintf(k->home, sizeof(k->home), "%s/%.64s-gnupg.%ld.XXXXXX", parent,
		     program_invocation_short_name, (long)getpid()) >= (int)sizeof(k->home))
		return -ENAMETOOLONG;
	if (!mkdtemp(k->home)) {
		k->home[0] = '\0';
		return -errno;
	}
	snprintf(conf, sizeof(conf), "%s/gpg.conf", k->home);
	fd = open(conf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Public keys only: no agent, no network, no trust database prompts. */
	static const char text[] = "no-autostart\nno-auto-key-retrieve\ntrust-model always\n";
	ssize_t n = write(fd, text, sizeof(text) - 1);
	close(fd);
	return n == (ssize_t)sizeof(text) - 1 ? 0 : -EIO;
}

/* Public keys of a GnuPG home, exported through a context of its own. */
static int export_home(const char *dir, gpgme_data_t *out)
{
	gpgme_ctx_t c;
	int r = new_ctx(dir, &c);

	if (r < 0)
		return r;
	if (gpgme_data_new(out) || gpgme_op_export(c, NULL, 0, *out))
		r = -EIO;
	gpgme_release(c);
	return r;
}

static char *sfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sfmt(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* The errno of a gpgme error that is the system's (gpg could not be started
 * or talked to: no descriptor, no memory, no gpg), or 0: the answer then is
 * "could not check", never a verdict on the signature. */
static int system_errno(gpgme_error_t ge)
{
	return ge ? gpgme_err_code_to_errno(gpgme_err_code(ge)) : 0;
}

/* Imports one blob of key material; returns the number of keys it held, or
 * a negative errno when gpg could not be run. */
static int import_data(struct sig_keyring *k, gpgme_data_t d)
{
	gpgme_data_seek(d, 0, SEEK_SET);
	gpgme_error_t ge = gpgme_op_import(k->ctx, d);
	if (system_errno(ge))
		return -system_errno(ge);
	if (ge)
		return 0;
	gpgme_import_result_t ir = gpgme_op_import_result(k->ctx);
	return ir ? ir->imported + ir->unchanged : 0;
}

static int import_file(struct sig_keyring *k, const char *path)
{
	gpgme_data_t d = NULL;
	int n;

	gpgme_error_t ge = gpgme_data_new_from_file(&d, path, 1);
	if (ge)
		return system_errno(ge) ? -system_errno(ge) : -EIO;
	n = import_data(k, d);
	gpgme_data_release(d);
	return n;
}

static bool is_gnupg_home(int dfd)
{
	return faccessat(dfd, "pubring.kbx", F_OK, 0) == 0 ||
	       faccessat(dfd, "pubring.gpg", F_OK, 0) == 0;
}

/* A directory: a GnuPG home (its public keys exported), or key files. */
static int import_dir(struct sig_keyring *k, const char *path)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	DIR *d;
	struct dirent *de;

	if (dfd < 0)
		return -errno;
	if (is_gnupg_home(dfd)) {
		gpgme_data_t data = NULL;
		close(dfd);
		if (export_home(path, &data) < 0)
			return -EIO;
		n = import_data(k, data);
		gpgme_data_release(data);
		return n;
	}
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char *f;
		if (de->d_name[0] == '.' || asprintf(&f, "%s/%s", path, de->d_name) < 0)
			continue;
		struct stat st;
		int m = stat(f, &st) == 0 && S_ISREG(st.st_mode) ? import_file(k, f) : 0;
		free(f);
		if (m < 0 && m != -EACCES) { /* a file we may not read is skipped */
			n = m;
			break;
		}
		if (m > 0)
			n++;
	}
	closedir(d);
	return n;
}

static int import_keys(struct sig_keyring *k, const char *path, char **why)
{
	struct stat st;
	int n;

	if (stat(path, &st) < 0) {
		*why = strdup("the keyring cannot be read");
		return -errno;
	}
	n = S_ISDIR(st.st_mode) ? import_dir(k, path) : import_file(k, path);
	if (n < 0) {
		*why = sfmt("the keyring cannot be read (%s)", strerror(-n));
		return n;
	}
	if (n == 0) {
		*why = strdup("the keyring holds no usable public key");
		return -EINVAL;
	}
	return 0;
}

int sig_keyring_open(const char *path, char *const *signers, size_t nsigners,
		     const char *home_parent, struct sig_keyring **out, char **why)
{
	struct sig_keyring *k = calloc(1, sizeof(*k));
	int r;

	*why = NULL;
	if (!k)
		return -ENOMEM;
	k->signers = (char **)signers;
	k->nsigners = nsigners;
	r = make_home(k, home_parent);
	if (r == 0)
		r = new_ctx(k->home, &k->ctx);
	/* Never the keyring's fault: whatever the errno, not an input error. */
	if (r < 0) {
		*why = sfmt("a private GnuPG home cannot be made (%s)", strerror(-r));
		if (sig_keyring_err_is_input(r))
			r = -EIO;
	}
	if (r == 0)
		r = import_keys(k, path, why);
	if (r < 0) {
		sig_keyring_free(k);
		return r;
	}
	*out = k;
	return 0;
}

static void rm_tree(int dfd)
{
	int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	struct dirent *de;

	if (!d) {
		if (dup >= 0)
			close(dup);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			continue;
		int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			rm_tree(sub);
			close(sub);
		}
		unlinkat(dfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void sig_keyring_free(struct sig_keyring *k)
{
	if (!k)
		return;
	if (k->ctx)
		gpgme_release(k->ctx);
	if (k->home[0]) {
		int fd = open(k->home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			rm_tree(fd);
			close(fd);
		}
		rmdir(k->home);
	}
	free(k);
}

static bool fpr_match(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* A long key id or fingerprint suffix matches too. */
	if (la < 16 || lb < 16)
		return false;
	return la >= lb ? strcasecmp(a + la - lb, b) == 0 : strcasecmp(b + lb - la, a) == 0;
}

/* A pinned primary fingerprint allows the key's signing subkeys; a pinned
 * subkey fingerprint allows only the subkey that made the signature. */
static bool allowed(struct sig_keyring *k, gpgme_key_t key, const char *sig_fpr)
{
	if (k->nsigners == 0)
		return true;
	for (size_t i = 0; i < k->nsigners; i++) {
		if (key->subkeys->fpr && fpr_match(key->subkeys->fpr, k->signers[i]))
			return true;
		if (sig_fpr && fpr_match(sig_fpr, k->signers[i]))
			return true;
	}
	return false;
}

static const char *status_clause(gpgme_error_t st)
{
	switch (gpg_err_code(st)) {
	case GPG_ERR_BAD_SIGNATURE:
		return "the signature does not match the signed file";
	case GPG_ERR_NO_PUBKEY:
		return "it is signed by a key that is not in the trusted keyring";
	case GPG_ERR_KEY_EXPIRED:
		return "the signing key has expired";
	case GPG_ERR_SIG_EXPIRED:
		return "the signature has expired";
	case GPG_ERR_CERT_REVOKED:
		return "the signing key is revoked";
	default:
		return NULL;
	}
}

static int check_key(struct sig_keyring *k, gpgme_signature_t s, char **fpr, char **why)
{
	gpgme_key_t key = NULL;
	gpgme_error_t ge = 0;
	int r = -AG_EDIGEST;

	if (s->fpr && !(s->summary & (GPGME_SIGSUM_KEY_REVOKED | GPGME_SIGSUM_KEY_EXPIRED |
				      GPGME_SIGSUM_SIG_EXPIRED)))
		ge = gpgme_get_key(k->ctx, s->fpr, &key, 0);
	if (system_errno(ge)) {
		*why = sfmt("the signing key cannot be looked up (%s)", gpgme_strerror(ge));
		r = -system_errno(ge);
	} else if (s->summary & GPGME_SIGSUM_KEY_REVOKED)
		*why = strdup("the signing key is revoked");
	else if (s->summary & GPGME_SIGSUM_KEY_EXPIRED)
		*why = strdup("the signing key has expired");
	else if (s->summary & GPGME_SIGSUM_SIG_EXPIRED)
		*why = strdup("the signature has expired");
	else if (!s->fpr || ge || !key || !key->subkeys)
		*why = strdup("the signing key is not in the trusted keyring");
	else if (key->revoked)
		*why = strdup("the signing key is revoked");
	else if (key->expired)
		*why = strdup("the signing key has expired");
	else if (!allowed(k, key, s->fpr))
		*why = sfmt("the signing key %s (subkey %s) is not an allowed signer",
			    key->subkeys->fpr, s->fpr);
	else
		r = (*fpr = strdup(key->subkeys->fpr)) ? 0 : -ENOMEM;
	if (key)
		gpgme_key_unref(key);
	return r;
}

static int check_result(struct sig_keyring *k, gpgme_verify_result_t res, char **fpr, char **why)
{
	int r = -AG_EDIGEST;

	if (!res || !res->signatures) {
		*why = strdup("the signature file holds no OpenPGP signature");
		return r;
	}
	for (gpgme_signature_t s = res->signatures; s; s = s->next) {
		const char *clause = status_clause(s->status);
		free(*fpr);
		*fpr = NULL;
		if (clause || s->status) {
			if (clause)
				*why = strdup(clause);
			else
				*why = sfmt("the signature is not good (%s)",
					    gpgme_strerror(s->status));
			return -AG_EDIGEST;
		}
		if ((r = check_key(k, s, fpr, why)) < 0)
			return r;
	}
	return 0;
}

int sig_verify_detached(struct sig_keyring *k, const char *data, size_t len, const char *sig,
			size_t siglen, char **fpr, char **why)
{
	gpgme_data_t dsig = NULL, dtext = NULL;
	gpgme_error_t ge;
	int r;

	*fpr = NULL;
	*why = NULL;
	if (gpgme_data_new_from_mem(&dsig, sig, siglen, 0) ||
	    gpgme_data_new_from_mem(&dtext, data, len, 0)) {
		r = -ENOMEM;
		goto out;
	}
	ge = gpgme_op_verify(k->ctx, dsig, dtext, NULL);
	if (ge) {
		if (gpg_err_code(ge) == GPG_ERR_NO_DATA || gpg_err_code(ge) == GPG_ERR_BAD_DATA)
			*why = strdup("the signature file holds no OpenPGP signature");
		else
			*why = sfmt("the signature cannot be checked (%s)", gpgme_strerror(ge));
		r = system_errno(ge) ? -system_errno(ge) : -AG_EDIGEST;
		goto out;
	}
	r = check_result(k, gpgme_op_verify_result(k->ctx), fpr, why);
out:
	if (r < 0) {
		free(*fpr);
		*fpr = NULL;
		if (!*why)
			*why = strdup("the signature cannot be checked");
	}
	gpgme_data_release(dsig);
	gpgme_data_release(dtext);
	return r;
}
