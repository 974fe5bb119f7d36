/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libagsig: detached OpenPGP signatures through gpgme, the only code of the
 * tree that includes gpgme (DESIGN.md "Where the next code goes").  Used by
 * importer/ (bundle.json, manifest .sig files, signing a new generation's
 * catalog), agbundle (signing bundle.json), tools/ (`agstore sign`,
 * `agstore verify`) and fs/ (catalogs at mount and at every switch).
 *
 * Verifying is done against a pinned keyring only: a private temporary
 * GNUPGHOME holds nothing but the keys given (the operator's own keyring is
 * never consulted).  Signing uses the signer's own GnuPG home.
 *
 * Functions return 0 or a negative errno / -AG_E* code and never print; a
 * refusal comes with *why, one clause the caller frees.  A keyring or a
 * signer is used by one thread at a time (callers serialise).
 */
#ifndef AGFS_SIG_H
#define AGFS_SIG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* ---------- verifying (verify.c) ---------- */

struct sig_keyring;
/* A private temporary GNUPGHOME "<program>-gnupg.<pid>.XXXXXX" in home_parent
 * (NULL: $TMPDIR or /tmp), holding only the keys from path (an armored or
 * binary key file, a directory of key files, or a GnuPG home whose public
 * keys are exported).  signers: allow-list of fingerprints (may be empty):
 * a primary fingerprint allows the key's signing subkeys, a subkey
 * fingerprint only that subkey; a long key id (16 hex) matches too. */
int sig_keyring_open(const char *path, char *const *signers, size_t nsigners,
		     const char *home_parent, struct sig_keyring **out, char **why);
void sig_keyring_free(struct sig_keyring *k); /* removes the private home; accepts NULL */
/* Whether sig_keyring_open's error is the keyring the admin named (missing,
 * not readable for permission, not a key file, no usable key): a usage
 * error.  Otherwise the host failed (no memory or descriptor, gpg could not
 * run, a disk error): exit 4, not the admin's input. */
static inline bool sig_keyring_err_is_input(int r)
{
	return r == -ENOENT || r == -ENOTDIR || r == -EISDIR || r == -ELOOP || r == -EACCES ||
	       r == -EPERM || r == -EINVAL;
}
/* Removes the private homes in parent of runs that are gone (pid dead). */
void sig_keyring_remove_stale(const char *parent);
/* Verifies a detached signature (armored or binary) over data.  Returns 0
 * and the signer's primary key fingerprint (*fpr, caller frees), or
 * -AG_EDIGEST (bad, unknown key, expired, revoked, not allowed, no
 * signature) with *why, or another negative errno when gpg could not be run
 * or asked (no descriptor, no memory): could not check, not a verdict. */
int sig_verify_detached(struct sig_keyring *k, const char *data, size_t len, const char *sig,
			size_t siglen, char **fpr, char **why);

/* ---------- signing (sign.c) ---------- */

struct sig_signer;
/* The secret key fpr in GnuPG home (NULL: $GNUPGHOME or ~/.gnupg); refuses
 * a key that is missing, has no secret part, cannot sign, is expired,
 * revoked or disabled, with *why (caller frees).  Checked when opened, so a
 * bad key is refused before any work is done. */
int sig_signer_open(const char *home, const char *fpr, struct sig_signer **out, char **why);
/* An armored detached signature of buf (*sig NUL-terminated, caller frees). */
int sig_sign(struct sig_signer *s, const char *buf, size_t len, char **sig, size_t *siglen,
	     char **why);
/* The signing key's primary fingerprint (owned by s). */
const char *sig_signer_fpr(const struct sig_signer *s);
void sig_signer_free(struct sig_signer *s); /* accepts NULL */

#endif
