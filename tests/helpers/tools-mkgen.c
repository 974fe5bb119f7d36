/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools-mkgen: test fixture writer for agstore's tests.  Puts every model of
 * a plain Ollama tree (manifests/<host>/<ns>/<model>/<tag>, blobs/sha256-<hex>)
 * into a store through store.h and writes one generation holding exactly
 * those models, with a chosen label, operator, signer and created time.
 *
 *   tools-mkgen --store S [--label L] [--created UNIX] [--operator O]
 *               [--signer FPR] [--source SRC] [--chunk BYTES] [--no-activate]
 *               [--hold SECONDS] [--ready FILE] TREE
 *   tools-mkgen --store S --del-record HEX
 *
 * --hold keeps the store lock and the uncommitted transaction for SECONDS
 * after the objects are in objects/ (touching FILE first): an import in
 * progress, for testing what runs beside one.  Prints the new generation id.
 * --del-record drops one blob record (not its object) so that fsck has a
 * generation pointing at a digest without a record to find.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

struct opts {
	const char *store, *label, *operator_name, *signer, *source, *ready, *del;
	int64_t created;
	uint32_t chunk;
	unsigned hold;
	bool activate;
};

static char **manifests; /* relative to TREE/manifests */
static size_t nmanifests;
static size_t tree_prefix;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type != FTW_F || ftw->level != 4)
		return 0;
	manifests = realloc(manifests, (nmanifests + 1) * sizeof(char *));
	if (!manifests)
		return -1;
	manifests[nmanifests++] = strdup(path + tree_prefix);
	return 0;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "tools-mkgen: %s: %s\n", what, err ? ag_strerror(err) : "failed");
	exit(1);
}

/* Stages the file at path and publishes it into txn, checking its digest. */
static void put_file(ag_store *s, ag_txn *txn, const char *path, const ag_digest *want,
		     uint32_t chunk, ag_blob_info *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_stage_ ag_stage *st = NULL;
	char buf[65536];
	ssize_t n;
	int r;

	if (fd < 0)
		die(path, -errno);
	r = ag_stage_begin(s, chunk, &st);
	while (r >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		r = ag_stage_write(st, buf, (size_t)n);
	if (r >= 0)
		r = ag_stage_end(st, out);
	if (r >= 0)
		r = ag_stage_publish(st, txn, want, NULL);
	if (r < 0)
		die(path, r);
}

static void put_layer(ag_store *s, ag_txn *txn, const char *tree, json_t *j, ag_layer *l,
		      uint32_t chunk)
{
	const char *dg = json_string_value(json_object_get(j, "digest"));
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	char path[4096];
	ag_blob_info bi;

	if (!dg || strncmp(dg, "sha256:", 7) || ag_digest_parse(dg + 7, strlen(dg + 7), &l->digest))
		die("a layer digest", -AG_EBADNAME);
	l->media_type = mt ? strdup(mt) : NULL;
	l->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
	snprintf(path, sizeof(path), "%s/blobs/sha256-%s", tree, dg + 7);
	put_file(s, txn, path, &l->digest, chunk, &bi);
}

/* One manifest: its bytes, config and layers into txn; the model into g. */
static void put_model(ag_store *s, ag_txn *txn, ag_gen *g, const char *tree, const char *rel,
		      uint32_t chunk)
{
	char path[4096];
	ag_model m = {0};
	ag_blob_info bi, old;
	json_error_t jerr;
	json_t *j, *layers, *l;
	size_t i;

	snprintf(path, sizeof(path), "%s/manifests/%s", tree, rel);
	put_file(s, txn, path, NULL, chunk, &bi);
	j = json_load_file(path, 0, &jerr);
	if (!j)
		die(path, -EINVAL);
	m.name = strdup(rel);
	m.manifest = bi.digest;
	m.manifest_size = bi.size;
	m.added = ag_blob_lookup(s, &bi.digest, &old) == 0 ? old.created : (int64_t)time(NULL);
	put_layer(s, txn, tree, json_object_get(j, "config"), &m.config, chunk);
	layers = json_object_get(j, "layers");
	m.layers = calloc(json_array_size(layers) + 1, sizeof(ag_layer));
	json_array_foreach(layers, i, l)
	{
		put_layer(s, txn, tree, l, &m.layers[i], chunk);
		m.nlayers++;
	}
	if (ag_gen_add_model(g, &m) < 0)
		die("a model", -ENOMEM);
	ag_model_clear(&m);
	json_decref(j);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"store", 1, NULL, 's'},      {"label", 1, NULL, 'l'},
		{"created", 1, NULL, 'c'},    {"operator", 1, NULL, 'o'},
		{"signer", 1, NULL, 'g'},     {"source", 1, NULL, 'S'},
		{"chunk", 1, NULL, 'k'},      {"hold", 1, NULL, 'H'},
		{"ready", 1, NULL, 'r'},      {"no-activate", 0, NULL, 'n'},
		{"del-record", 1, NULL, 'D'}, {NULL, 0, NULL, 0}};
	int c;

	*o = (struct opts){.operator_name = "mkgen", .source = "tools-mkgen", .activate = true};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			o->store = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'c':
			o->created = strtoll(optarg, NULL, 10);
			break;
		case 'o':
			o->operator_name = optarg;
			break;
		case 'g':
			o->signer = optarg;
			break;
		case 'S':
			o->source = optarg;
			break;
		case 'k':
			o->chunk = 0; /* format 2: 4 KiB blocks whatever was asked */
			break;
		case 'H':
			o->hold = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o->ready = optarg;
			break;
		case 'n':
			o->activate = false;
			break;
		case 'D':
			o->del = optarg;
			break;
		default:
			exit(2);
		}
	}
	if (!o->store || (optind + 1 != argc && !o->del)) {
		fprintf(stderr, "usage: tools-mkgen --store S [options] TREE\n");
		exit(2);
	}
}

static ag_gen *new_gen(const struct opts *o)
{
	ag_gen *g = ag_gen_new();

	g->created = o->created;
	g->label = o->label ? strdup(o->label) : NULL;
	g->operator_name = strdup(o->operator_name);
	g->source = strdup(o->source);
	g->signer = o->signer ? strdup(o->signer) : NULL;
	return g;
}

static void hold(const struct opts *o)
{
	if (o->ready) {
		int fd = open(o->ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
	sleep(o->hold);
}

static int del_record(const struct opts *o)
{
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_txn_ ag_txn *txn = NULL;
	ag_digest d;
	int r;

	if ((r = ag_digest_parse(o->del, strlen(o->del), &d)) < 0 ||
	    (r = ag_store_open(o->store, AG_WRITE, &s)) < 0 || (r = ag_txn_begin(s, &txn)) < 0 ||
	    (r = ag_txn_blob_del(txn, &d)) < 0 || (r = ag_txn_commit(TAKE_PTR(txn))) < 0)
		die(o->del, r);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_txn_ ag_txn *txn = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	char mdir[4096];
	const char *tree;
	int r;

	parse_opts(argc, argv, &o);
	if (o.del)
		return del_record(&o);
	tree = argv[optind];
	snprintf(mdir, sizeof(mdir), "%s/manifests", tree);
	tree_prefix = strlen(mdir) + 1;
	if (nftw(mdir, collect, 16, FTW_PHYS) != 0)
		die(mdir, -errno);
	if ((r = ag_store_open(o.store, AG_WRITE | AG_CREATE, &s)) < 0 ||
	    (r = ag_txn_begin(s, &txn)) < 0)
		die(o.store, r);
	g = new_gen(&o);
	for (size_t i = 0; i < nmanifests; i++)
		put_model(s, txn, g, tree, manifests[i], o.chunk);
	if (o.hold)
		hold(&o);
	if ((r = ag_txn_gen_add(txn, g)) < 0)
		die("adding the generation", r);
	if (o.activate && (r = ag_txn_set_current(txn, g->id)) < 0)
		die("activating the generation", r);
	if ((r = ag_txn_commit(TAKE_PTR(txn))) < 0)
		die("commit", r);
	printf("%" PRIu64 "\n", g->id);
	return 0;
}
