/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore sign [GEN] --sign-key FPR [--sign-homedir DIR]: a detached,
 * armored OpenPGP signature over an existing generation's catalog (the
 * exact bytes the store keeps), stored beside it in one write transaction
 * with its CATALOG_SIGNED audit record.  An earlier signature is replaced.
 * The key is checked before the store is opened for writing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig/sig.h"
#include "tools/tool.h"

enum { OPT_SIGN_KEY = OPT_FIRST_CMD, OPT_SIGN_HOMEDIR };

struct sign_opts {
	const char *key;
	const char *homedir;
};

static const char sign_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] [--json] sign [GEN] --sign-key FPR\n"
	"                [--sign-homedir DIR]\n"
	"Sign generation GEN's catalog (default: the current generation) with the\n"
	"secret key FPR from DIR (default $GNUPGHOME): a detached, armored OpenPGP\n"
	"signature that `agstore verify` and `agfs -o keyring=` check.\n";

static int sign_opt(struct tool *t, int c, const char *arg, void *arg2)
{
	struct sign_opts *o = arg2;

	if (c == OPT_SIGN_KEY)
		o->key = arg;
	else if (c == OPT_SIGN_HOMEDIR)
		o->homedir = arg;
	else
		return tool_fail(t, EX_AG_USAGE, "unknown option");
	return -1; /* go on */
}

static int sign_gen(struct tool *t, ag_store *s, uint64_t id, struct sig_signer *sg)
{
	_cleanup_txn_ ag_txn *txn = NULL;
	_cleanup_free_ char *cat = NULL, *asc = NULL, *why = NULL, *old = NULL;
	size_t len = 0, asclen = 0, oldlen = 0;
	char hex[AG_HEX_LEN + 1];
	ag_digest d;
	int r = ag_txn_begin(s, &txn);

	if (r < 0)
		return tool_fail_err(t, r, "cannot write to the store %s", t->store_path);
	if (id == 0 && (r = ag_txn_current(txn, &id)) < 0)
		return r == -ENOENT
			       ? tool_fail(t, EX_AG_PROBLEM,
					   "the store %s has no current generation", t->store_path)
			       : tool_fail_err(t, r, "cannot read the current generation of %s",
					       t->store_path);
	r = ag_txn_gen_catalog(txn, id, &d, &cat, &len);
	if (r == -ENOENT) {
		_cleanup_gen_ ag_gen *g = NULL;
		if (ag_txn_gen_get(txn, id, &g) == -ENOENT)
			return tool_fail(t, EX_AG_PROBLEM,
					 "the store %s has no generation %" PRIu64, t->store_path,
					 id);
		return tool_fail(t, EX_AG_PROBLEM,
				 "generation %" PRIu64
				 " has no catalog (a format-1 store: run agstore migrate)",
				 id);
	}
	if (r < 0)
		return tool_fail_err(t, r, "cannot read the catalog of generation %" PRIu64, id);
	if ((r = sig_sign(sg, cat, len, &asc, &asclen, &why)) < 0)
		return tool_fail(t, EX_AG_IO,
				 "gpg could not sign the catalog of generation %" PRIu64 ": %s", id,
				 why ? why : ag_strerror(r));
	bool replaced = ag_txn_gen_signature(txn, id, &old, &oldlen) == 0;
	if ((r = ag_txn_gen_sign(txn, id, asc, asclen)) < 0)
		return tool_fail_err(t, r, "cannot store the signature of generation %" PRIu64, id);
	ag_digest_hex(&d, hex);
	_cleanup_json_ json_t *f =
		json_pack("{s:I,s:s,s:s,s:b}", "generation", (json_int_t)id, "catalog", hex,
			  "signer", sig_signer_fpr(sg), "replaced", replaced);
	r = f ? ag_txn_commit_audit(TAKE_PTR(txn), "CATALOG_SIGNED", t->operator_name, f) : -ENOMEM;
	if (r < 0)
		return tool_fail_err(t, r,
				     "cannot commit the signature of generation %" PRIu64
				     " (with its record in audit.log)",
				     id);
	if (t->json)
		out_json(json_pack("{s:I,s:s,s:s,s:b}", "generation", (json_int_t)id, "catalog",
				   hex, "signer", sig_signer_fpr(sg), "replaced", replaced));
	else
		printf("generation %" PRIu64 ": catalog sha256:%s signed by %s%s\n", id, hex,
		       sig_signer_fpr(sg), replaced ? " (an earlier signature replaced)" : "");
	return EX_AG_OK;
}

int cmd_sign(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		TOOL_COMMON_OPTIONS,
		{"sign-key", required_argument, NULL, OPT_SIGN_KEY},
		{"sign-homedir", required_argument, NULL, OPT_SIGN_HOMEDIR},
		{NULL, 0, NULL, 0}};
	struct sign_opts o = {0};
	struct sig_signer *sg = NULL;
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_free_ char *why = NULL;
	uint64_t id = 0;
	int r = tool_getopt(t, argc, argv, opts, sign_usage, sign_opt, &o);

	if (r >= 0)
		return r;
	if (!o.key)
		return tool_fail(t, EX_AG_USAGE, "sign needs --sign-key FPR");
	if (argc - optind > 1)
		return tool_fail(t, EX_AG_USAGE, "sign takes at most one generation");
	if (argc - optind == 1 && strcmp(argv[optind], "current") != 0 &&
	    parse_u64(argv[optind], 1, UINT64_MAX, &id) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number (or 'current')",
				 argv[optind]);
	if ((r = sig_signer_open(o.homedir, o.key, &sg, &why)) < 0)
		return tool_fail(t, r == -ENOMEM ? EX_AG_IO : EX_AG_USAGE, "--sign-key: %s",
				 why ? why : ag_strerror(r));
	r = tool_open(t, AG_WRITE, &s);
	if (r == 0)
		r = sign_gen(t, s, id, sg);
	sig_signer_free(sg);
	return r;
}
