/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Publishing a verified source: the staged manifests and blobs go into
 * objects/ (existing objects are deduplication), then one LMDB transaction
 * adds the new generation and makes it current.  By default the generation
 * holds the current generation's models plus this source's (same names
 * replaced); with --replace only this source's.  A model keeps its "added"
 * time when the current generation already has it with the same manifest.
 * A damaged object already in the store is replaced by the verified bytes
 * (ag_stage_publish_ex) and reported as repaired.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "importer/import.h"

/* A spooled member staged for real now, from the spool (one descriptor at a
 * time); the store re-hashes it, so the spool is not trusted. */
static int restage(struct imp_source *src, struct imp_member *mb, ag_store *store, ag_stage **out)
{
	enum { BUFSZ = 1 << 20 };
	_cleanup_free_ char *buf = malloc(BUFSZ);
	uint64_t off = mb->spool_off, left = mb->size;
	ag_blob_info bi;
	int r;

	if (!buf)
		return -ENOMEM;
	if ((r = ag_stage_begin(store, 0, out)) < 0)
		return r;
	while (r == 0 && left > 0) {
		ssize_t n =
			pread(src->spool_fd, buf, left < BUFSZ ? (size_t)left : BUFSZ, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		else
			r = ag_stage_write(*out, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
		left -= n > 0 ? (uint64_t)n : 0;
	}
	if (r == 0)
		r = ag_stage_end(*out, &bi);
	return r;
}

static int publish_member(struct imp_source *src, struct imp_member *mb, ag_store *store, ag_txn *t,
			  const ag_digest *d, struct imp_result *res, size_t *nnew,
			  struct imp_error *e)
{
	_cleanup_stage_ ag_stage *tmp = NULL;
	enum ag_publish how = AG_PUBLISH_DEDUP;
	char hex[AG_HEX_LEN + 1];
	int r;

	if (!mb || mb->published || (!mb->stage && !mb->spooled))
		return 0;
	r = mb->stage ? 0 : restage(src, mb, store, &tmp);
	if (r == 0)
		r = ag_stage_publish_ex(mb->stage ? mb->stage : tmp, t, d, &how);
	if (r < 0)
		return imp_fail(e, r == -AG_EDIGEST ? IMP_REFUSED : IMP_IO, r, mb->path,
				"publishing it failed (%s)", ag_strerror(r));
	mb->published = true;
	*nnew += how == AG_PUBLISH_NEW;
	if (how == AG_PUBLISH_REPAIRED) {
		ag_digest_hex(d, hex);
		if (!res->repaired && !(res->repaired = json_array()))
			return -ENOMEM;
		json_array_append_new(res->repaired, json_string(hex));
	}
	return 0;
}

static int publish_objects(struct imp_source *src, struct imp_result *res, ag_store *store,
			   ag_txn *t, size_t *nnew, struct imp_error *e)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < res->nmodels; i++) {
		ag_model *m = &res->models[i].model;
		r = publish_member(src, res->models[i].manifest, store, t, &m->manifest, res, nnew,
				   e);
		for (size_t j = 1; r == 0 && j < ag_model_nblobs(m); j++) /* config, layers */
			r = publish_member(src, imp_find_blob(src, ag_model_blob(m, j)), store, t,
					   ag_model_blob(m, j), res, nnew, e);
	}
	return r;
}

/* The bundle's own files (bundle.json, its .asc, the signatures/ lists, the
 * manifests' .sig files) kept as blobs of the generation, so its catalog
 * lists them and an auditor can replay the low side's signature from the
 * store alone. */
static bool is_bundle_file(const struct imp_member *mb)
{
	size_t n = strlen(mb->path);

	if (!mb->data)
		return false;
	if (strncmp(mb->path, "manifest/", 9) == 0 || strncmp(mb->path, "signatures/", 11) == 0)
		return true;
	return n > 4 && strcmp(mb->path + n - 4, ".sig") == 0 &&
	       imp_is_pgp_signature(mb->data, mb->size);
}

static int publish_bundle_files(struct imp_source *src, ag_store *store, ag_txn *t, ag_gen *g,
				struct imp_error *e)
{
	for (size_t i = 0; i < src->n; i++) {
		struct imp_member *mb = &src->m[i];
		_cleanup_stage_ ag_stage *st = NULL;
		ag_blob_info bi;
		int r;

		if (!is_bundle_file(mb))
			continue;
		r = ag_stage_begin(store, 0, &st);
		if (r == 0)
			r = ag_stage_write(st, mb->data, (size_t)mb->size);
		if (r == 0)
			r = ag_stage_end(st, &bi);
		if (r == 0)
			r = ag_stage_publish_ex(st, t, &mb->digest, NULL);
		if (r == 0)
			r = ag_gen_add_bundle_file(g, mb->path, &mb->digest);
		if (r < 0)
			return imp_fail(e, r == -AG_EDIGEST ? IMP_REFUSED : IMP_IO, r, mb->path,
					"keeping it in the store failed (%s)", ag_strerror(r));
	}
	return 0;
}

/* --sign-key: the new generation's catalog, as the store built it inside
 * this transaction, is signed before anything commits, so a generation is
 * never published half-signed. */
static int sign_gen(ag_txn *t, uint64_t id, const struct imp_options *o, json_t *fields,
		    struct imp_error *e)
{
	_cleanup_free_ char *cat = NULL, *asc = NULL, *why = NULL;
	size_t len = 0, asclen = 0;
	ag_digest d;
	char hex[AG_HEX_LEN + 1];
	int r = ag_txn_gen_catalog(t, id, &d, &cat, &len);

	if (r < 0)
		return imp_fail(e, IMP_IO, r, "",
				"the new generation's catalog cannot be read (%s)", ag_strerror(r));
	if ((r = sig_sign(o->signer, cat, len, &asc, &asclen, &why)) < 0)
		return imp_fail(e, IMP_IO, r, "--sign-key",
				"the catalog cannot be signed (%s), so nothing was imported",
				why ? why : ag_strerror(r));
	if ((r = ag_txn_gen_sign(t, id, asc, asclen)) < 0)
		return imp_fail(e, IMP_IO, r, "", "the catalog's signature cannot be stored (%s)",
				ag_strerror(r));
	ag_digest_hex(&d, hex);
	json_object_set_new(fields, "catalog", json_string(hex));
	json_object_set_new(fields, "catalog_signer", json_string(sig_signer_fpr(o->signer)));
	return 0;
}

static bool in_result(const struct imp_result *res, const char *name)
{
	for (size_t i = 0; i < res->nmodels; i++)
		if (strcmp(res->models[i].model.name, name) == 0)
			return true;
	return false;
}

static int fill_models(ag_gen *g, const ag_gen *cur, const struct imp_options *o,
		       struct imp_result *res)
{
	int64_t now = (int64_t)time(NULL);
	int r;

	for (size_t i = 0; cur && !o->replace && i < cur->nmodels; i++)
		if (!in_result(res, cur->models[i].name) &&
		    (r = ag_gen_add_model(g, &cur->models[i])) < 0)
			return r;
	for (size_t i = 0; i < res->nmodels; i++) {
		ag_model *m = &res->models[i].model;
		ag_model *old = cur ? ag_gen_find(cur, m->name) : NULL;
		m->added = old && ag_digest_eq(&old->manifest, &m->manifest) ? old->added : now;
		if ((r = ag_gen_add_model(g, m)) < 0)
			return r;
	}
	return 0;
}

static int fill_gen(ag_gen *g, struct imp_source *src, const struct imp_options *o,
		    struct imp_result *res)
{
	g->label = strdup(res->label);
	g->operator_name = strdup(o->operator_name);
	g->source = strdup(src->name);
	g->signer = res->signer ? strdup(res->signer) : NULL;
	g->has_source_sha256 = src->has_outer;
	g->source_sha256 = src->outer;
	g->report = json_dumps(res->report, JSON_COMPACT | JSON_SORT_KEYS);
	if (!g->label || !g->operator_name || !g->source || !g->report ||
	    (res->signer && !g->signer))
		return -ENOMEM;
	return 0;
}

/* The high-water mark of anti-rollback (never lowered, also not by
 * --allow-downgrade; agstore never touches it). */
static int put_max_version(ag_txn *t, const struct imp_result *res)
{
	const char *v = res->bundle.bundle_version;

	if (!v || !imp_version_like(v))
		return res->max_version ? ag_txn_meta_put(t, "max_bundle_version", res->max_version)
					: 0;
	if (res->max_version && imp_label_cmp(v, res->max_version) < 0)
		v = res->max_version;
	return ag_txn_meta_put(t, "max_bundle_version", v);
}

/* Test-only (documented in doc/agimport.8): AGIMPORT_TEST_KILL=<point> makes
 * the run kill itself there, so tests can retry after a kill. */
void imp_test_kill(const char *point)
{
	const char *want = getenv("AGIMPORT_TEST_KILL");

	if (want && strcmp(want, point) == 0)
		raise(SIGKILL);
}

static int publish_and_commit(struct imp_source *src, const struct imp_options *o, ag_store *store,
			      struct imp_result *res, ag_txn **t, json_t *fields, uint64_t *gen_id,
			      struct imp_error *e);

/* The audit record and the LMDB transaction commit as one unit. */
static int commit_gen(ag_txn **t, ag_gen *g, const struct imp_options *o, struct imp_result *res,
		      json_t *fields, uint64_t *gen_id, struct imp_error *e)
{
	int r = ag_txn_gen_add(*t, g);

	if (r == 0 && o->signer && (r = sign_gen(*t, g->id, o, fields, e)) < 0)
		return r;
	if (r == 0)
		r = ag_txn_set_current(*t, g->id);
	if (r == 0)
		r = put_max_version(*t, res);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, "", "writing the generation failed (%s)",
				ag_strerror(r));
	json_object_set_new(fields, "generation", json_integer((json_int_t)g->id));
	imp_test_kill("before-commit");
	r = ag_txn_commit_audit(TAKE_PTR(*t), "BUNDLE_INGEST", o->operator_name, fields);
	if (r < 0) {
		return imp_fail(e, IMP_IO, r, "",
				"the generation and its audit record cannot be committed (%s), so "
				"nothing was imported",
				ag_strerror(r));
	}
	*gen_id = g->id;
	return 0;
}

/*
 * In this order: the transfer line is appended and fsynced (so no
 * generation is ever without it), the objects are published, then the
 * generation, its audit record and the max_bundle_version mark commit as one
 * unit.  On any failure the transfer line is cut off again.  A kill in
 * between leaves a transfer line for an import that did not happen; the
 * retry adds its own.
 */
int imp_publish(struct imp_source *src, const struct imp_options *o, ag_store *store,
		struct imp_result *res, json_t *fields, const char *hex, uint64_t *gen_id,
		struct imp_error *e)
{
	_cleanup_txn_ ag_txn *t = NULL;
	off_t old_len = -1;
	int r;

	if (o->transfer_fd >= 0 &&
	    (r = imp_transfer_log(o->transfer_fd, o->operator_name, res->label, hex, &old_len)) < 0)
		return imp_fail(e, IMP_IO, r, o->transfer_log,
				"the transfer record cannot be written (%s), so nothing was "
				"imported",
				ag_strerror(r));
	if ((r = ag_txn_begin(store, &t)) < 0)
		r = imp_fail(e, IMP_IO, r, "", "the store cannot be written (%s)", ag_strerror(r));
	else
		r = publish_and_commit(src, o, store, res, &t, fields, gen_id, e);
	if (r < 0 && old_len >= 0)
		imp_transfer_undo(o->transfer_fd, old_len);
	return r;
}

static int publish_and_commit(struct imp_source *src, const struct imp_options *o, ag_store *store,
			      struct imp_result *res, ag_txn **t, json_t *fields, uint64_t *gen_id,
			      struct imp_error *e)
{
	_cleanup_gen_ ag_gen *cur = NULL, *g = ag_gen_new();
	size_t nnew = 0;
	int r;

	if (!g)
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	uint64_t cur_id;
	r = ag_txn_current(*t, &cur_id);
	if (r == 0)
		r = ag_txn_gen_get(*t, cur_id, &cur);
	if (r < 0 && r != -ENOENT)
		return imp_fail(e, IMP_IO, r, "", "the current generation cannot be read (%s)",
				ag_strerror(r));
	if ((r = publish_objects(src, res, store, *t, &nnew, e)) < 0)
		return r;
	json_object_set_new(res->report, "new_objects", json_integer((json_int_t)nnew));
	json_object_set_new(fields, "new_objects", json_integer((json_int_t)nnew));
	if (res->repaired) {
		json_object_set(res->report, "repaired", res->repaired);
		json_object_set(fields, "repaired", res->repaired);
	}
	if ((r = fill_gen(g, src, o, res)) < 0 || (r = fill_models(g, cur, o, res)) < 0)
		return imp_fail(e, IMP_IO, r, "", "out of memory");
	if ((r = publish_bundle_files(src, store, *t, g, e)) < 0)
		return r;
	return commit_gen(t, g, o, res, fields, gen_id, e);
}

int imp_transfer_log(int fd, const char *operator_name, const char *label, const char *hex,
		     off_t *old_len)
{
	char ts[32], *line = NULL;
	time_t t = time(NULL);
	struct tm tm;
	struct stat st;
	int r = 0, n;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	n = asprintf(&line, "%s BUNDLE_INGEST %s bundle_%s sha256=%s\n", ts, operator_name, label,
		     hex);
	if (n < 0)
		return -ENOMEM;
	if (fstat(fd, &st) < 0) {
		free(line);
		return -errno;
	}
	*old_len = st.st_size;
	if (write(fd, line, (size_t)n) != n)
		r = errno ? -errno : -EIO;
	else if (fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		imp_transfer_undo(fd, *old_len);
	free(line);
	return r;
}

void imp_transfer_undo(int fd, off_t old_len)
{
	if (ftruncate(fd, old_len) == 0)
		fsync(fd);
}
