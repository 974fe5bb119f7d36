/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Publishing a verified source: the staged manifests and blobs go into
 * objects/ (existing objects are deduplication), then one LMDB transaction
 * adds the new generation and makes it current.  By default the generation
 * holds the current generation's models plus this source's (same names
 * replaced); with --replace only this source's.  A model keeps its "added"
 * time when the current generation already has it with the same manifest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "importer/import.h"

static int publish_member(struct imp_member *mb, ag_txn *t, const ag_digest *d, size_t *nnew,
			  struct imp_error *e)
{
	bool was_new = false;
	int r;

	if (!mb || mb->published || !mb->stage)
		return 0;
	r = ag_stage_publish(mb->stage, t, d, &was_new);
	if (r < 0)
		return imp_fail(e, r == -AG_EDIGEST ? IMP_REFUSED : IMP_IO, r, mb->path,
				"publishing it failed (%s)", ag_strerror(r));
	mb->published = true;
	*nnew += was_new;
	return 0;
}

static int publish_objects(struct imp_source *src, struct imp_result *res, ag_txn *t, size_t *nnew,
			   struct imp_error *e)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < res->nmodels; i++) {
		ag_model *m = &res->models[i].model;
		r = publish_member(res->models[i].manifest, t, &m->manifest, nnew, e);
		for (size_t j = 1; r == 0 && j < ag_model_nblobs(m); j++) /* config, layers */
			r = publish_member(imp_find_blob(src, ag_model_blob(m, j)), t,
					   ag_model_blob(m, j), nnew, e);
	}
	return r;
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

static int commit_gen(ag_store *store, ag_txn **t, ag_gen *g, uint64_t *gen_id, struct imp_error *e)
{
	int r = ag_txn_gen_add(*t, g);

	if (r == 0)
		r = ag_txn_set_current(*t, g->id);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, "", "writing the generation failed (%s)",
				ag_strerror(r));
	r = ag_txn_commit(TAKE_PTR(*t));
	if (r < 0)
		return imp_fail(e, IMP_IO, r, "", "committing the generation failed (%s)",
				ag_strerror(r));
	*gen_id = g->id;
	return 0;
}

int imp_publish(struct imp_source *src, const struct imp_options *o, ag_store *store,
		struct imp_result *res, uint64_t *gen_id, struct imp_error *e)
{
	_cleanup_gen_ ag_gen *cur = NULL, *g = ag_gen_new();
	_cleanup_txn_ ag_txn *t = NULL;
	size_t nnew = 0;
	int r;

	if (!g)
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	r = ag_gen_get(store, 0, &cur);
	if (r < 0 && r != -ENOENT)
		return imp_fail(e, IMP_IO, r, "", "the current generation cannot be read (%s)",
				ag_strerror(r));
	if ((r = fill_gen(g, src, o, res)) < 0 || (r = fill_models(g, cur, o, res)) < 0)
		return imp_fail(e, IMP_IO, r, "", "out of memory");
	if ((r = ag_txn_begin(store, &t)) < 0)
		return imp_fail(e, IMP_IO, r, "", "the store cannot be written (%s)",
				ag_strerror(r));
	if ((r = publish_objects(src, res, t, &nnew, e)) < 0)
		return r;
	json_object_set_new(res->report, "new_objects", json_integer((json_int_t)nnew));
	return commit_gen(store, &t, g, gen_id, e);
}

int imp_transfer_log(const char *path, const char *operator_name, const char *label,
		     const char *hex)
{
	char ts[32], *line = NULL;
	time_t t = time(NULL);
	struct tm tm;
	int fd, r = 0, n;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	n = asprintf(&line, "%s BUNDLE_INGEST %s bundle_%s sha256=%s\n", ts, operator_name, label,
		     hex);
	if (n < 0)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		r = -errno;
	else if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
		r = -EIO;
	if (fd >= 0)
		close(fd);
	free(line);
	return r;
}
