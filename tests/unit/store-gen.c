/* SPDX-License-Identifier: Apache-2.0 */
/* Generations: round trip, current/previous, refusal of dangling references,
 * and readers that never see half a generation while a writer commits. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/store-common.h"

static ag_digest put_text(ag_store *s, const char *text)
{
	ag_blob_info bi;
	if (ag_put_buf(s, text, strlen(text), 0, NULL, &bi) < 0)
		bail("put failed");
	return bi.digest;
}

/* A model whose manifest, config and one layer are real blobs in s. */
static void make_model(ag_store *s, ag_model *m, const char *name, int variant)
{
	char buf[128];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	snprintf(buf, sizeof(buf), "{\"manifest\":\"%s\",\"v\":%d}", name, variant);
	m->manifest = put_text(s, buf);
	m->manifest_size = strlen(buf);
	m->added = 1700000000 + variant;
	snprintf(buf, sizeof(buf), "config %s %d", name, variant);
	m->config = (ag_layer){strdup("application/vnd.docker.container.image.v1+json"),
			       put_text(s, buf), strlen(buf)};
	snprintf(buf, sizeof(buf), "weights %s %d", name, variant);
	m->nlayers = 1;
	m->layers = calloc(1, sizeof(ag_layer));
	m->layers[0] = (ag_layer){strdup("application/vnd.ollama.image.model"), put_text(s, buf),
				  strlen(buf)};
}

static uint64_t commit_gen(ag_store *s, int nmodels, int variant, const char *label)
{
	ag_gen *g = ag_gen_new();
	g->label = strdup(label);
	g->operator_name = strdup("tester");
	g->source = strdup("bundle.tar.gz");
	g->signer = strdup("ABCDEF0123456789");
	g->report = strdup("{\"ok\":true}");
	g->has_source_sha256 = true;
	ag_sha256("src", 3, &g->source_sha256);
	for (int i = nmodels - 1; i >= 0; i--) {
		char name[64];
		snprintf(name, sizeof(name), "registry.ollama.ai/library/m%03d/latest", i);
		ag_model m;
		make_model(s, &m, name, variant);
		ag_gen_add_model(g, &m);
		ag_model_clear(&m);
	}
	ag_txn *t;
	int r = ag_txn_begin(s, &t);
	if (r == 0)
		r = ag_txn_gen_add(t, g);
	if (r == 0)
		r = ag_txn_set_current(t, g->id);
	if (r == 0)
		r = ag_txn_commit(t);
	else
		ag_txn_abort(t);
	if (r < 0)
		bail("commit generation: %s", ag_strerror(r));
	uint64_t id = g->id;
	ag_gen_free(g);
	return id;
}

static void test_roundtrip(void)
{
	ag_store *s = new_store("gen");
	uint64_t cur;
	is_int(ag_current(s, &cur), -ENOENT, "a new store has no current generation");
	uint64_t id1 = commit_gen(s, 3, 1, "20260101");
	uint64_t id2 = commit_gen(s, 2, 2, "20260201");
	is_int(id1, 1, "first generation is 1");
	is_int(id2, 2, "second generation is 2");
	ok(ag_current(s, &cur) == 0 && cur == 2, "current is 2");
	ok(ag_previous(s, &cur) == 0 && cur == 1, "previous is 1");
	ag_gen *g = NULL;
	ok(ag_gen_get(s, 1, &g) == 0, "read generation 1");
	if (g) {
		ok(g->nmodels == 3 && !strcmp(g->label, "20260101") &&
			   !strcmp(g->operator_name, "tester") &&
			   !strcmp(g->signer, "ABCDEF0123456789") && g->has_source_sha256 &&
			   !strcmp(g->report, "{\"ok\":true}"),
		   "metadata round trip");
		ok(!strcmp(g->models[0].name, "registry.ollama.ai/library/m000/latest") &&
			   !strcmp(g->models[2].name, "registry.ollama.ai/library/m002/latest"),
		   "models sorted by name");
		ag_model *m = ag_gen_find(g, "registry.ollama.ai/library/m001/latest");
		ok(m && m->nlayers == 1 && m->added == 1700000001 &&
			   !strcmp(m->layers[0].media_type, "application/vnd.ollama.image.model") &&
			   !strcmp(m->config.media_type,
				   "application/vnd.docker.container.image.v1+json"),
		   "model record round trip");
		ok(!ag_gen_find(g, "registry.ollama.ai/library/zzz/latest"),
		   "find of a missing name");
		ag_gen_free(g);
	}
	uint64_t *ids;
	size_t n;
	ok(ag_gen_list(s, &ids, &n) == 0 && n == 2 && ids[0] == 1 && ids[1] == 2, "list 1, 2");
	free(ids);

	ag_txn *t;
	ag_txn_begin(s, &t);
	is_int(ag_txn_gen_del(t, 2), -EBUSY, "the current generation cannot be deleted");
	ok(ag_txn_set_current(t, 1) == 0, "activate 1");
	is_int(ag_txn_set_current(t, 9), -ENOENT, "activating a missing generation fails");
	ok(ag_txn_gen_del(t, 2) == 0, "delete 2 once 1 is current");
	ok(ag_txn_commit(t) == 0, "commit");
	ok(ag_current(s, &cur) == 0 && cur == 1, "current is 1 again");
	uint64_t id3 = commit_gen(s, 1, 3, "20260301");
	is_int(id3, 3, "ids are never reused after a delete");

	/* A generation naming a blob the store does not have is refused. */
	ag_gen *bad = ag_gen_new();
	ag_model m;
	make_model(s, &m, "registry.ollama.ai/library/ghost/latest", 4);
	memset(&m.layers[0].digest, 0x42, 32);
	ag_gen_add_model(bad, &m);
	ag_model_clear(&m);
	ag_txn_begin(s, &t);
	is_int(ag_txn_gen_add(t, bad), -ENOENT, "a generation with a missing blob is refused");
	ag_txn_abort(t);
	ag_gen_free(bad);
	ok(ag_gen_list(s, &ids, &n) == 0 && n == 2, "and nothing was added");
	free(ids);
	ag_store_close(s);
}

/* A reader loops while a child writer commits generations of different sizes:
 * each generation i has exactly i models, so a torn read would show. */
static void test_reader_during_commit(void)
{
	ag_store *w = new_store("concurrent");
	commit_gen(w, 1, 0, "g1");
	ag_store_close(w);
	const char *path = temp_store_path("concurrent");
	pid_t pid = fork();
	if (pid == 0) {
		ag_store *cw;
		if (ag_store_open(path, AG_WRITE, &cw) < 0)
			_exit(2);
		for (int i = 2; i <= 30; i++)
			commit_gen(cw, i, i, "g");
		ag_store_close(cw);
		_exit(0);
	}
	ag_store *r;
	if (ag_store_open(path, AG_RDONLY, &r) < 0)
		bail("reader open");
	int reads = 0, torn = 0, status = 0;
	uint64_t maxseen = 0;
	for (;;) {
		ag_gen *g;
		if (ag_gen_get(r, 0, &g) == 0) {
			reads++;
			torn += g->nmodels != g->id;
			if (g->id > maxseen)
				maxseen = g->id;
			ag_gen_free(g);
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer finished");
	ok(reads > 0 && torn == 0, "%d reads during commits, none saw half a generation", reads);
	ag_gen *g;
	ok(ag_gen_get(r, 0, &g) == 0 && g->id == 30 && g->nmodels == 30,
	   "after the writer: the last generation, whole (max seen during: %llu)",
	   (unsigned long long)maxseen);
	ag_gen_free(g);
	ag_store_close(r);
}

static void test_meta(void)
{
	ag_store *s = new_store("meta");
	ag_txn *t;
	ag_txn_begin(s, &t);
	ok(ag_txn_meta_put(t, "last_fsck", "{\"ok\":true}") == 0, "meta put");
	is_int(ag_txn_meta_put(t, "format", "9"), -EPERM, "format key is reserved");
	ag_txn_commit(t);
	char *v = NULL;
	ok(ag_meta_get(s, "last_fsck", &v) == 0 && !strcmp(v, "{\"ok\":true}"), "meta get");
	free(v);
	is_int(ag_meta_get(s, "nothing", &v), -ENOENT, "missing meta key");
	ag_store_close(s);
}

int main(void)
{
	test_roundtrip();
	test_reader_during_commit();
	test_meta();
	return done_testing();
}
