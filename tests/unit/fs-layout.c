/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the mount's pure parts: -o options, sizes, the Ollama layout
 * built from a generation (tree.c) and the INFO text. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/agfs.h"
#include "tests/unit/fs-common.h"
#include "tests/tap.h"

static void test_options(void)
{
	struct fs_options o;
	char *bad = NULL;
	fs_options_init(&o);
	const char *s = "rw,nofail,generation=3,verify=full,allow_other,threads=4,cache=64M,x-"
			"systemd.automount";
	is_int(fs_options_parse(&o, s, strlen(s), &bad), 0, "a full fstab option list parses");
	is_int(o.generation, 3, "generation=3");
	is_int(o.verify, FS_VERIFY_FULL, "verify=full");
	is_int(o.allow_other, 1, "allow_other");
	is_int(o.threads, 4, "threads=4");
	is_int(o.cache, 64ull << 20, "cache=64M");
	static const char *const wrong[] = {
		"verify=all", "generation=0", "generation=-1", "threads=0",   "threads=65",
		"cache=1K",   "cache=12X",    "bogus",	       "generation=", "threads=1x"};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		fs_options_init(&o);
		int r = fs_options_parse(&o, wrong[i], strlen(wrong[i]), &bad);
		ok(r == -EINVAL && bad && !strcmp(bad, wrong[i]), "\"%s\" is refused and named",
		   wrong[i]);
		free(bad);
		bad = NULL;
	}
	ok(fs_options_parse(&o, "a\0b", 3, &bad) == -EINVAL, "a NUL inside the options is refused");
	free(bad);
}

static void test_sizes(void)
{
	uint64_t v;
	ok(fs_parse_size("4096", &v) == 0 && v == 4096, "4096");
	ok(fs_parse_size("64M", &v) == 0 && v == 64ull << 20, "64M");
	ok(fs_parse_size("1GiB", &v) == 0 && v == 1ull << 30, "1GiB");
	ok(fs_parse_size("2k", &v) == 0 && v == 2048, "2k");
	ok(fs_parse_size("", &v) == -EINVAL, "empty");
	ok(fs_parse_size("M", &v) == -EINVAL, "no digits");
	ok(fs_parse_size("99999999999999999999", &v) == -EINVAL, "overflow");
	ok(fs_parse_size("99999999999T", &v) == -EINVAL, "overflow by the suffix");
	struct fs_options o;
	fs_options_init(&o);
	is_int(fs_max_read(&o), FS_MAX_REQUEST, "the default buffers allow 1 MiB reads");
	o.cache = 1 << 20;
	o.threads = 64;
	is_int(fs_max_read(&o), 128 * 1024, "a tiny cache still allows 128 KiB reads");
}

static void layer(ag_layer *l, const char *mt, uint8_t seed, uint64_t size)
{
	l->media_type = strdup(mt);
	memset(l->digest.b, seed, sizeof(l->digest.b));
	l->size = size;
}

static ag_gen *make_gen(void)
{
	ag_gen *g = ag_gen_new();
	static const char *names[] = {"registry.ollama.ai/library/tiny/latest",
				      "registry.ollama.ai/library/tiny/q8", "hf.co/a/B-GGUF/Q4",
				      "bad/../name/x", "registry.ollama.ai/library/tiny"};
	g->id = 7;
	g->created = 1700000000;
	g->label = strdup("a label\nwith a line break");
	for (size_t i = 0; i < 5; i++) {
		ag_model m = {0};
		m.name = strdup(names[i]);
		memset(m.manifest.b, 0x10 + (int)i, 32);
		m.manifest_size = 500 + i;
		m.added = 1600000000 + (int64_t)i;
		layer(&m.config, "application/vnd.docker.container.image.v1+json",
		      0x20 + (uint8_t)i, 100);
		m.nlayers = 2;
		m.layers = calloc(2, sizeof(ag_layer));
		layer(&m.layers[0], "application/vnd.ollama.image.model", 0x30, 1000000);
		layer(&m.layers[1], "application/vnd.ollama.image.template", 0x40, 13);
		ag_gen_add_model(g, &m);
		ag_model_clear(&m);
	}
	ag_gen_sort(g);
	return g;
}

static void test_tree(ag_store *s)
{
	struct fs_tree t;
	struct gtree *gt;
	is_int(tree_init(&t), 0, "tree_init");
	struct node *m = walk(&t, t.root, "manifests/.keep");
	ok(m && m->kind == N_TEXT && m->size == 0,
	   "with no generation, manifests/ holds only .keep");
	ok(walk(&t, t.root, "blobs/.keep") == NULL, "but blobs/ holds no .keep (Ollama's prune)");
	is_int(tree_add_gen(&t, s, make_gen(), &gt), 0, "a generation becomes a tree");
	is_int(tree_set_current(&t, s, gt), 0, "and the current one");
	t.store_current = gt;
	struct node *a = walk(&t, t.root, "manifests/registry.ollama.ai/library/tiny/latest");
	struct node *b =
		walk(&t, t.root, "versions/7/manifests/registry.ollama.ai/library/tiny/latest");
	ok(a && a->kind == N_BLOB && a->size == 500 && a->mtime == 1600000000,
	   "a manifest's size and mtime");
	ok(a == b, "the root and versions/7 share the file's inode");
	ok(walk(&t, t.root, "manifests") != walk(&t, t.root, "versions/7/manifests"),
	   "but not directories");
	ok(!walk(&t, t.root, "manifests/bad"), "a model name with .. is left out");
	ok(!walk(&t, t.root, "manifests/registry.ollama.ai/library/tiny/latest/x"),
	   "files have no children");
	struct node *blobs = walk(&t, t.root, "blobs");
	struct dent *ents;
	size_t n;
	is_int(tree_list(&t, blobs, &ents, &n), 0, "blobs/ lists");
	is_int(n, 5,
	       "one entry per distinct config and layer digest (3 configs, 1 model, 1 template)");
	bool sorted = true, named = true;
	for (size_t i = 0; i < n; i++) {
		named &= !strncmp(ents[i].name, "sha256-", 7) && strlen(ents[i].name) == 71 &&
			 !strchr(ents[i].name, ':');
		if (i)
			sorted &= strcmp(ents[i - 1].name, ents[i].name) < 0;
	}
	free(ents);
	ok(sorted && named, "sorted sha256-<hex> names, no colon");
	char name[80] = "blobs/sha256-";
	ag_digest d;
	memset(d.b, 0x30, 32);
	ag_digest_hex(&d, name + 13);
	struct node *model = walk(&t, t.root, name);
	ok(model && model->is_model && model->size == 1000000,
	   "the weights blob is marked as a model layer");
	char *users = tree_models_using(&t, &d);
	ok(users && strstr(users, "tiny:latest") && strstr(users, "hf.co/a/B-GGUF:Q4"),
	   "tree_models_using names the models of a blob (%s)", users ? users : "NULL");
	free(users);
	is_int(tree_list(&t, t.versions, &ents, &n), 0, "versions/ lists");
	ok(n == 2 && !strcmp(ents[0].name, "7") && !strcmp(ents[1].name, "current"),
	   "versions/ holds 7 and current");
	free(ents);
	struct node *cur = walk(&t, t.root, "versions/current");
	ok(cur && cur->kind == N_LINK && !strcmp(cur->text, "7"), "versions/current -> 7");
	struct node *info = walk(&t, t.root, "versions/7/INFO");
	ok(info && strstr(info->text, "id: 7\n") &&
		   strstr(info->text, "created: 2023-11-14T22:13:20Z\n") &&
		   strstr(info->text, "label: a label with a line break\n") &&
		   strstr(info->text, "models: 5\n") && strstr(info->text, "signer: -\n"),
	   "INFO: key: value lines, one line per value");
	ok(info && info->size == strlen(info->text), "INFO's size is its length");
	uint64_t ids[1] = {8};
	tree_set_listed(&t, ids, 1);
	t.store_current = NULL;
	ok(!walk(&t, t.root, "versions/7"), "a generation the store dropped leaves versions/");
	ok(walk(&t, t.root, "versions/.keep") != NULL, "and an empty versions/ holds .keep");
	ok(walk(&t, t.root, "manifests/hf.co") != NULL, "the root keeps serving its generation");
	tree_destroy(&t);
}

int main(void)
{
	test_options();
	test_sizes();
	char dir[] = "/tmp/fs-layout.XXXXXX";
	ag_store *s = test_store_new(dir);
	test_tree(s);
	test_store_remove(s, dir);
	return done_testing();
}
