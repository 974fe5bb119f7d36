/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore pin N, unpin N, pins: generations gc must keep whatever --keep
 * says (store/lease.c keeps the list in the index's meta key "pins").  Each
 * change is one write transaction under the store lock and one PIN/UNPIN
 * audit record.  `pins` also lists what live mounts lease.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/tool.h"

static int pin_change(struct tool *t, uint64_t id, bool pin)
{
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_txn_ ag_txn *txn = NULL;
	int r = tool_open(t, AG_WRITE, &s);

	if (r > 0)
		return r;
	r = ag_txn_begin(s, &txn);
	if (r == 0)
		r = ag_txn_pin(txn, id, pin);
	if (r == -ENOENT)
		return tool_fail(t, EX_AG_PROBLEM,
				 pin ? "generation %" PRIu64 " does not exist in %s"
				     : "generation %" PRIu64 " is not pinned in %s",
				 id, t->store_path);
	if (r == 0)
		r = ag_txn_commit(TAKE_PTR(txn));
	if (r < 0)
		return tool_fail_err(t, r, "cannot %s generation %" PRIu64 " in %s/index",
				     pin ? "pin" : "unpin", id, t->store_path);
	r = tool_audit(t, s, pin ? "GENERATION_PINNED" : "GENERATION_UNPINNED",
		       json_pack("{s:I}", "generation", (json_int_t)id));
	if (r < 0)
		return tool_fail_err(t, r, "generation %" PRIu64 " is %s but %s/audit.log", id,
				     pin ? "pinned" : "unpinned", t->store_path);
	if (t->json)
		out_json(json_pack("{s:I,s:b}", "generation", (json_int_t)id, "pinned", pin));
	else
		printf("generation %" PRIu64 " %s\n", id,
		       pin ? "is pinned: gc keeps it" : "is no longer pinned");
	return EX_AG_OK;
}

static const char pin_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] pin|unpin N\n"
	"Pin generation N so that gc keeps it (and its blobs) whatever --keep\n"
	"says, or take the pin away.\n";

static int pin_main(struct tool *t, int argc, char **argv, bool pin)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	uint64_t id;
	int r = tool_getopt(t, argc, argv, opts, pin_usage, NULL, NULL);

	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return tool_fail(t, EX_AG_USAGE, "%s takes one generation number",
				 pin ? "pin" : "unpin");
	if (parse_u64(argv[optind], 1, UINT64_MAX, &id) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number", argv[optind]);
	return pin_change(t, id, pin);
}

int cmd_pin(struct tool *t, int argc, char **argv)
{
	return pin_main(t, argc, argv, true);
}

int cmd_unpin(struct tool *t, int argc, char **argv)
{
	return pin_main(t, argc, argv, false);
}

static const char pins_usage[] =
	"Usage: agstore [--store DIR] [--json] pins\n"
	"List the pinned generations, and what live mounts lease (the generations\n"
	"they serve, the number of blobs they have open or serve): gc keeps all.\n";

static json_t *ids_json(const uint64_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)ids[i]));
	return a;
}

static void print_ids(const char *what, const uint64_t *ids, size_t n)
{
	printf("%s:", what);
	if (n == 0)
		printf(" none");
	for (size_t i = 0; i < n; i++)
		printf(" %" PRIu64, ids[i]);
	printf("\n");
}

int cmd_pins(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_free_ uint64_t *ids = NULL;
	ag_leases l;
	size_t n = 0;
	int r = tool_getopt(t, argc, argv, opts, pins_usage, NULL, NULL);

	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "pins takes no operand");
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	if ((r = ag_pins(s, &ids, &n)) < 0)
		return tool_fail_err(t, r, "cannot read the pins of %s", t->store_path);
	if ((r = ag_leases_read(s, false, &l)) < 0)
		return tool_fail_err(t, r, "cannot read %s/leases", t->store_path);
	if (t->json) {
		r = out_json(json_pack("{s:o,s:o,s:I,s:I}", "pinned", ids_json(ids, n),
				       "leased_generations", ids_json(l.gens, l.ngens),
				       "leased_blobs", (json_int_t)l.nblobs, "live_mounts",
				       (json_int_t)l.nlive)) < 0
			    ? EX_AG_IO
			    : EX_AG_OK;
	} else {
		print_ids("pinned generations", ids, n);
		print_ids("leased by live mounts", l.gens, l.ngens);
		printf("live mounts: %zu, leased blobs: %zu\n", l.nlive, l.nblobs);
		r = EX_AG_OK;
	}
	ag_leases_clear(&l);
	return r;
}
