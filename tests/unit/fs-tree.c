/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the mount's node lifetimes (tree.c): a generation's trees are
 * freed once nothing serves them and nothing holds a node of them; a held
 * node (a kernel lookup, an open handle) keeps its tree, and its names and
 * the names looked up in vain in it are handed out for invalidation; shared
 * files go with the last directory that lists them; the inode table finds
 * every live node after many removals; versions/ resolves hundreds of
 * generations; a namespace of thousands of models builds right. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/agfs.h"
#include "tests/unit/fs-common.h"
#include "tests/tap.h"

static void layer(ag_layer *l, const char *mt, unsigned seed, uint64_t size)
{
	l->media_type = strdup(mt);
	memset(l->digest.b, 0, sizeof(l->digest.b));
	memcpy(l->digest.b, &seed, sizeof(seed));
	l->digest.b[31] = 0x5a;
	l->size = size;
}

/* Generation id with models m<first>..m<first+n-1>: model k's blobs are the
 * same in every generation that has it. */
static ag_gen *make_gen(uint64_t id, unsigned first, unsigned n)
{
	ag_gen *g = ag_gen_new();
	g->id = id;
	g->created = 1700000000 + (int64_t)id;
	for (unsigned k = first; k < first + n; k++) {
		ag_model m = {0};
		if (asprintf(&m.name, "registry.ollama.ai/library/m%u/latest", k) < 0)
			bail("asprintf");
		memset(m.manifest.b, 0, 32);
		memcpy(m.manifest.b, &k, sizeof(k));
		m.manifest_size = 500;
		m.added = 1600000000;
		layer(&m.config, "application/vnd.docker.container.image.v1+json", 1000 + k, 100);
		m.nlayers = 1;
		m.layers = calloc(1, sizeof(ag_layer));
		layer(&m.layers[0], "application/vnd.ollama.image.model", 2000 + k, 1000);
		ag_gen_add_model(g, &m);
		ag_model_clear(&m);
	}
	ag_gen_sort(g);
	return g;
}

static struct gtree *add(struct fs_tree *t, ag_store *s, uint64_t id, unsigned first, unsigned n)
{
	struct gtree *gt = NULL;
	if (tree_add_gen(t, s, make_gen(id, first, n), &gt) < 0)
		bail("tree_add_gen %llu", (unsigned long long)id);
	return gt;
}

/* How many of the held entries name parent's child name, and how many there are. */
static size_t held_count(struct fs_tree *t, fuse_ino_t parent, const char *name, size_t *all)
{
	struct fs_inval *v = NULL;
	size_t n = tree_held_entries(t, &v, 4096), k = 0;
	for (size_t i = 0; i < n; i++) {
		k += v[i].parent == parent && !strcmp(v[i].name, name);
		free(v[i].name);
	}
	free(v);
	*all = n;
	return k;
}

static void test_held(ag_store *s)
{
	struct fs_tree t;
	if (tree_init(&t) < 0)
		bail("tree_init");
	size_t empty = t.ninodes;
	struct gtree *g1 = add(&t, s, 1, 0, 2); /* m0 m1 */
	struct gtree *g2 = add(&t, s, 2, 1, 2); /* m1 m2 */
	is_int(tree_set_current(&t, s, g1), 0, "generation 1 at the root");
	t.store_current = g1;
	tree_sweep(&t, 0);
	size_t both = t.ninodes;
	struct node *dir1 = walk(&t, t.root, "versions/1/manifests/registry.ollama.ai/library/m0");
	struct node *only1 = walk(&t, dir1, "latest");
	struct node *shared =
		walk(&t, t.root, "versions/2/manifests/registry.ollama.ai/library/m1/latest");
	ok(dir1 && only1 && shared, "the nodes are there");
	if (!dir1 || !only1 || !shared)
		return;
	fuse_ino_t dino = dir1->ino, fino = only1->ino, sino = shared->ino;
	node_ref(dir1, 1); /* a kernel lookup of versions/1/.../m0/ */
	node_ref(only1, 2);

	/* the store drops 1 and makes 2 current */
	uint64_t ids[] = {2};
	tree_set_listed(&t, ids, 1);
	t.store_current = g2;
	is_int(tree_set_current(&t, s, g2), 0, "generation 2 at the root");
	t.grace = g1;
	t.grace_until = 100;
	tree_sweep(&t, 50);
	ok(!walk(&t, t.root, "versions/1"), "versions/1 is gone from versions/");
	ok(tree_node(&t, dino) == dir1 && walk(&t, dir1, "latest") == only1,
	   "but a held directory of it still resolves its names");
	ok(tree_find_gen(&t, 1) && tree_find_gen(&t, 1)->rgroup,
	   "the previous root stays during the grace period");
	tree_sweep(&t, 100);
	ok(tree_find_gen(&t, 1) && !tree_find_gen(&t, 1)->rgroup,
	   "and goes after it (nothing holds a node of it)");
	ok(tree_find_gen(&t, 1) && tree_find_gen(&t, 1)->vgroup,
	   "versions/1/ stays while a node of it is held");
	size_t all = 0;
	is_int(held_count(&t, dino, "latest", &all), 1, "its held file is an entry to invalidate");
	is_int(all, 1, "the only one");
	/* names looked up in vain there: the kernel's negative dentries hold it */
	tree_note_miss(&t, dir1, "no-such-tag");
	tree_note_miss(&t, dir1, "no-such-tag");
	tree_note_miss(&t, t.root, "no-such-dir"); /* the root: always reachable */
	is_int(held_count(&t, dino, "no-such-tag", &all), 1,
	       "a name looked up in vain in a held directory is one too (once)");
	is_int(all, 2, "and nothing else");
	char nm[32];
	for (int i = 0; i < GROUP_MISSES + 4; i++) {
		snprintf(nm, sizeof(nm), "miss%d", i);
		tree_note_miss(&t, dir1, nm);
	}
	is_int(held_count(&t, dino, "no-such-tag", &all), 0, "only the last few are kept");
	is_int(all, 1 + GROUP_MISSES, "%d of them", GROUP_MISSES);
	node_unref(dir1, 1);
	tree_sweep(&t, 100);
	ok(!tree_find_gen(&t, 1), "let go, generation 1's trees are freed");
	ok(!tree_node(&t, dino), "its directory's inode number resolves no more");
	ok(tree_node(&t, fino) != NULL, "a file of it still held stays");
	ok(tree_node(&t, sino) == shared, "a file generation 2 also lists stays");
	node_unref(only1, 2);
	tree_sweep(&t, 100);
	ok(!tree_node(&t, fino), "the held file goes once let go");
	ok(t.ninodes < both, "fewer live nodes than with both (%zu < %zu)", t.ninodes, both);

	/* 2 goes too: back to the empty tree's nodes */
	tree_set_listed(&t, NULL, 0);
	t.store_current = NULL;
	is_int(tree_set_current(&t, s, NULL), 0, "no generation at the root");
	t.grace = NULL;
	tree_sweep(&t, 100);
	is_int(t.ngens, 0, "no generation tree left");
	is_int(t.ninodes, empty, "only the fixed nodes are left");
	is_int(t.nfiles, 0, "and no shared file");
	tree_destroy(&t);
}

static void test_rebuild(ag_store *s)
{
	struct fs_tree t;
	if (tree_init(&t) < 0)
		bail("tree_init");
	struct gtree *g1 = add(&t, s, 1, 0, 3), *g2 = add(&t, s, 2, 3, 3);
	tree_set_current(&t, s, g1);
	struct node *m = walk(&t, t.root, "manifests/registry.ollama.ai/library/m1");
	fuse_ino_t ino = m ? m->ino : 0;
	tree_set_current(&t, s, g2);
	tree_sweep(&t, 0);
	ok(!g1->rgroup && !tree_node(&t, ino), "a root tree no longer served is freed");
	tree_set_current(&t, s, g1);
	m = walk(&t, t.root, "manifests/registry.ollama.ai/library/m1");
	ok(m && m->ino == ino, "served again, it is built with the same inode numbers");
	tree_destroy(&t);
}

/* Many generations: every versions/N resolves; after most go, every live
 * node is still found by its inode number (removals from the table). */
static void test_many(ag_store *s)
{
	enum { N = 600 };
	struct fs_tree t;
	if (tree_init(&t) < 0)
		bail("tree_init");
	static uint64_t ids[N];
	for (unsigned i = 0; i < N; i++) {
		ids[i] = 3 * i + 1;
		add(&t, s, ids[i], i % 7, 2);
	}
	tree_set_current(&t, s, tree_find_gen(&t, ids[N - 1]));
	t.store_current = tree_find_gen(&t, ids[N - 1]);
	size_t bad = 0;
	for (unsigned i = 0; i < N; i++) {
		char p[64];
		snprintf(p, sizeof(p), "versions/%llu/INFO", (unsigned long long)ids[i]);
		struct node *n = walk(&t, t.root, p);
		bad += !n || n->kind != N_TEXT || !strstr(n->text, "models: 2");
		snprintf(p, sizeof(p), "versions/%llu", (unsigned long long)ids[i] + 1);
		bad += walk(&t, t.root, p) != NULL;
	}
	is_int(bad, 0, "each of %d versions/N resolves, and no other number", N);
	struct dent *ents;
	size_t n;
	is_int(tree_list(&t, t.versions, &ents, &n), 0, "versions/ lists");
	is_int(n, N + 1, "every generation and current");
	free(ents);
	/* keep every 10th generation */
	static uint64_t keep[N];
	size_t nk = 0;
	for (unsigned i = 0; i < N; i += 10)
		keep[nk++] = ids[i];
	keep[nk++] = ids[N - 1];
	tree_set_listed(&t, keep, nk);
	tree_sweep(&t, 0);
	is_int(t.ngens, nk, "the generations the store dropped are freed");
	bad = 0;
	for (size_t i = 0; i < nk; i++) {
		struct gtree *gt = tree_find_gen(&t, keep[i]);
		struct node *v = gt ? gt->vdir : NULL;
		struct dent *e;
		size_t ne;
		if (!v || tree_node(&t, v->ino) != v || tree_list(&t, v, &e, &ne) < 0) {
			bad++;
			continue;
		}
		for (size_t j = 0; j < ne; j++)
			bad += tree_node(&t, e[j].node->ino) != e[j].node;
		free(e);
	}
	is_int(bad, 0, "every node left is found by its inode number");
	size_t live = 0, files = 0;
	bad = 0;
	for (size_t i = 0; i < t.imap_cap; i++)
		if (t.imap[i] && ++live)
			bad += tree_node(&t, t.imap[i]->ino) != t.imap[i];
	for (size_t i = 0; i < t.files_cap; i++)
		files += t.files[i] != NULL;
	ok(bad == 0 && live == t.ninodes && files == t.nfiles,
	   "the inode table holds every live node once, each found by its number (%zu)", live);
	tree_destroy(&t);
}

static ag_gen *named_gen(uint64_t id, const char *const *names, size_t n)
{
	ag_gen *g = ag_gen_new();
	g->id = id;
	g->created = 1700000000;
	for (unsigned k = 0; k < n; k++) {
		ag_model m = {0};
		m.name = strdup(names[k]);
		memcpy(m.manifest.b, &k, sizeof(k));
		m.manifest.b[31] = 0x77;
		m.manifest_size = 100 + k;
		m.added = 1600000000;
		layer(&m.config, "application/vnd.docker.container.image.v1+json", 5000 + k, 10);
		ag_gen_add_model(g, &m);
		ag_model_clear(&m);
	}
	ag_gen_sort(g);
	return g;
}

/* A namespace of thousands of models builds with a binary search per name;
 * names whose parts sort differently from the whole names ("b-c/..." before
 * "b/..." whole, after it as parts) still find their directories. */
static void test_build(ag_store *s)
{
	enum { M = 3000 };
	struct fs_tree t;
	struct gtree *gt = NULL;
	if (tree_init(&t) < 0)
		bail("tree_init");
	static char *names[M + 4];
	static const char *odd[] = {"registry.ollama.ai/odd/b-c/latest",
				    "registry.ollama.ai/odd/b/latest", "registry.ollama.ai/odd/b/x",
				    "registry.ollama.ai/od-d/b/latest"};
	for (unsigned k = 0; k < M; k++)
		if (asprintf(&names[k], "registry.ollama.ai/library/m%u/latest", k) < 0)
			bail("asprintf");
	for (unsigned k = 0; k < 4; k++)
		names[M + k] = (char *)odd[k];
	is_int(tree_add_gen(&t, s, named_gen(1, (const char *const *)names, M + 4), &gt), 0,
	       "a generation of %d models", M + 4);
	size_t bad = 0;
	for (unsigned k = 0; k < M + 4; k++) {
		char p[128];
		snprintf(p, sizeof(p), "versions/1/manifests/%s", names[k]);
		struct node *n = walk(&t, t.root, p);
		bad += !n || n->kind != N_BLOB || n->size != 100 + k;
	}
	is_int(bad, 0, "every manifest resolves to its own file");
	struct node *lib = walk(&t, t.root, "versions/1/manifests/registry.ollama.ai/library");
	struct dent *e = NULL;
	size_t ne = 0;
	bool sorted = lib && tree_list(&t, lib, &e, &ne) == 0 && ne == M;
	for (size_t i = 1; sorted && i < ne; i++)
		sorted = strcmp(e[i - 1].name, e[i].name) < 0;
	free(e);
	e = NULL;
	ok(sorted, "library/ lists %d model directories, sorted, each once", M);
	struct node *odd_dir = walk(&t, t.root, "versions/1/manifests/registry.ollama.ai/odd");
	sorted = odd_dir && tree_list(&t, odd_dir, &e, &ne) == 0 && ne == 2 &&
		 !strcmp(e[0].name, "b") && !strcmp(e[1].name, "b-c");
	free(e);
	ok(sorted, "odd/ (its parts came out of order) lists b and b-c, sorted");
	for (unsigned k = 0; k < M; k++)
		free(names[k]);
	tree_destroy(&t);
}

int main(void)
{
	char dir[] = "/tmp/fs-tree.XXXXXX";
	ag_store *s = test_store_new(dir);
	test_held(s);
	test_rebuild(s);
	test_many(s);
	test_build(s);
	test_store_remove(s, dir);
	return done_testing();
}
