/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing: what `gpg --armor --detach-sign FILE` does, through gpgme, with
 * exactly one secret key named by fingerprint (agbundle: bundle.json;
 * agimport --sign-key and agstore sign: a generation's catalog).
 * The key is checked when the run starts (present with its secret part, able
 * to sign, not expired, revoked or disabled), so a bad key is refused before
 * gigabytes are read; a passphrase is asked by gpg-agent's pinentry as usual.
 */
#include <errno.h>
#include <gpgme.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig/sig.h"

struct sig_signer {
	gpgme_ctx_t ctx;
	gpgme_key_t key;
};

static int set_why(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_why(char **why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(why, fmt, ap) < 0)
		*why = NULL;
	va_end(ap);
	return -EINVAL;
}

static const char *key_problem(gpgme_key_t k)
{
	if (k->revoked)
		return "is revoked";
	if (k->expired)
		return "has expired";
	if (k->disabled)
		return "is disabled";
	if (k->invalid)
		return "is invalid";
	if (!k->can_sign)
		return "cannot sign (no usable signing subkey with its secret part)";
	return NULL;
}

static int signer_setup(struct sig_signer *s, const char *home, const char *fpr, char **why)
{
	gpgme_error_t err;
	const char *p;

	gpgme_check_version(NULL);
	if (gpgme_new(&s->ctx) ||
	    gpgme_ctx_set_engine_info(s->ctx, GPGME_PROTOCOL_OpenPGP, NULL, home))
		return set_why(why, "gpgme cannot start gpg");
	gpgme_set_armor(s->ctx, 1);
	err = gpgme_get_key(s->ctx, fpr, &s->key, 1);
	if (err || !s->key)
		return set_why(why, "the key %s has no secret key in %s", fpr,
			       home ? home : "the GnuPG home");
	if ((p = key_problem(s->key)))
		return set_why(why, "the key %s %s", fpr, p);
	if (!s->key->subkeys || !s->key->subkeys->fpr)
		return set_why(why, "the key %s has no fingerprint", fpr);
	gpgme_signers_clear(s->ctx);
	if (gpgme_signers_add(s->ctx, s->key))
		return set_why(why, "the key %s cannot be used to sign", fpr);
	return 0;
}

int sig_signer_open(const char *home, const char *fpr, struct sig_signer **out, char **why)
{
	struct sig_signer *s = calloc(1, sizeof(*s));
	int r;

	*why = NULL;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	if ((r = signer_setup(s, home, fpr, why)) < 0) {
		sig_signer_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int sig_sign(struct sig_signer *s, const char *buf, size_t len, char **sig, size_t *siglen,
	     char **why)
{
	gpgme_data_t in = NULL, outd = NULL;
	gpgme_error_t err;
	int r = 0;

	*why = NULL;
	if (gpgme_data_new_from_mem(&in, buf, len, 0) || gpgme_data_new(&outd)) {
		r = -ENOMEM;
		goto out;
	}
	err = gpgme_op_sign(s->ctx, in, outd, GPGME_SIG_MODE_DETACH);
	gpgme_sign_result_t res = err ? NULL : gpgme_op_sign_result(s->ctx);
	if (err || !res || res->invalid_signers || !res->signatures) {
		r = set_why(why, "gpg could not sign with the key (%s)",
			    err ? gpgme_strerror(err) : "no signature made");
		goto out;
	}
	char *mem = gpgme_data_release_and_get_mem(outd, siglen);
	outd = NULL;
	*sig = mem ? malloc(*siglen + 1) : NULL;
	if (*sig) {
		memcpy(*sig, mem, *siglen);
		(*sig)[*siglen] = '\0';
	} else {
		r = -ENOMEM;
	}
	gpgme_free(mem);
out:
	gpgme_data_release(in);
	gpgme_data_release(outd);
	return r;
}

const char *sig_signer_fpr(const struct sig_signer *s)
{
	return s->key->subkeys->fpr;
}

void sig_signer_free(struct sig_signer *s)
{
	if (!s)
		return;
	if (s->key)
		gpgme_key_unref(s->key);
	if (s->ctx)
		gpgme_release(s->ctx);
	free(s);
}
