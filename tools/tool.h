/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore internals: the per-run context, the commands, and the small
 * helpers they share (option handling, store opening, output, parsing).
 *
 * A command returns the program's exit code.  It prints its results on
 * stdout; on failure it leaves ONE sentence in tool->msg (via tool_fail)
 * and main() prints it, prefixed by "agstore: ", on stderr.
 */
#ifndef AGFS_TOOL_H
#define AGFS_TOOL_H

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "store/isotime.h"
#include "store/store.h"

/* Exit codes shared by every agfs program. */
enum {
	EX_AG_OK = 0,
	EX_AG_PROBLEM = 1, /* verification failure, refused input, problem found */
	EX_AG_USAGE = 2,
	EX_AG_STALE = 3, /* agstore status only */
	EX_AG_IO = 4,	 /* I/O or system failure */
};

struct tool {
	const char *store_path;	   /* --store, $AGFS_STORE, or AG_DEFAULT_STORE */
	const char *operator_name; /* --operator or the login name */
	bool json;
	const char *cmd; /* the command's name, for messages */
	char msg[1024];	 /* the one sentence main() prints on failure */
};

/* ---------- common.c ---------- */

/* Long options every command accepts, before or after its name. */
enum {
	OPT_STORE = 0x100,
	OPT_OPERATOR,
	OPT_JSON,
	OPT_HELP,
	OPT_FIRST_CMD = 0x200, /* commands number their own options from here */
};
#define TOOL_COMMON_OPTIONS                                          \
	{"store", required_argument, NULL, OPT_STORE},               \
		{"operator", required_argument, NULL, OPT_OPERATOR}, \
		{"json", no_argument, NULL, OPT_JSON},               \
	{                                                            \
		"help", no_argument, NULL, 'h'                       \
	}

void tool_init(struct tool *t);
/* Handles a common option: 0 if handled, 1 for --help, -1 if not a common option. */
int tool_common_opt(struct tool *t, int c, const char *arg);
/* Runs getopt_long over a command's arguments.  handle() gets the command's
 * own options; common ones are handled here.  Returns -1 to go on (optind
 * points at the first operand), otherwise the exit code to return (0 after
 * --help, 2 for a usage error). */
int tool_getopt(struct tool *t, int argc, char **argv, const struct option *opts, const char *usage,
		int (*handle)(struct tool *t, int c, const char *arg, void *arg2), void *arg2);
/* Sets t->msg and returns code. */
int tool_fail(struct tool *t, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Exit code for a negative errno / -AG_E* code: problem (1) or I/O (4). */
int tool_exit_code(int err);
/* Fails with "<what>: <ag_strerror(err)>" and the matching exit code. */
int tool_fail_err(struct tool *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Opens the store; on failure fills t->msg and returns the exit code (>0). */
int tool_open(struct tool *t, unsigned flags, ag_store **out);
/* Appends an audit event with the operator; fields is stolen (may be NULL). */
int tool_audit(struct tool *t, ag_store *s, const char *event, json_t *fields);
bool tool_interactive(void); /* stderr is a terminal: progress allowed */

/* ---------- output.c ---------- */

struct table;
/* Header names; a name starting with '>' is a right-aligned column. */
struct table *table_new(size_t ncols, const char *const *headers);
/* Appends a row of ncols strings (copied; NULL prints as "-"). */
int table_add(struct table *tb, const char *const *cells);
void table_print(const struct table *tb, FILE *f);
void table_free(struct table *tb);
static inline void table_freep(struct table **tb)
{
	table_free(*tb);
}
#define _cleanup_table_ _cleanup_(table_freep)

/* Prints one JSON document (indent 2) and a newline; steals doc. */
int out_json(json_t *doc);
/* jansson >= 2.9 provides json_decrefp(). */
#define _cleanup_json_ _cleanup_(json_decrefp)

#define TOOL_TIME_LEN 32
/* "2026-04-23T10:00:00Z" (UTC); "-" for 0. */
void fmt_time(int64_t t, char out[TOOL_TIME_LEN]);
#define TOOL_SIZE_LEN 24
/* "512 B", "1.5 KiB", "2.0 GiB". */
void fmt_size(uint64_t n, char out[TOOL_SIZE_LEN]);
/* "sha256:<hex>" into out (at least 72 bytes). */
void fmt_digest(const ag_digest *d, char *out, size_t outlen);
/* The first 12 hex digits, like `ollama list`'s ID. */
void fmt_digest_short(const ag_digest *d, char out[13]);
/* The JSON form of a time: ISO-8601 string, or null for 0. */
json_t *json_time(int64_t t);
json_t *json_digest(const ag_digest *d);
json_t *json_str_or_null(const char *s);

/* ---------- parse.c (pure parsers, unit-tested) ---------- */

/* Times: ag_parse_time() (store/isotime.h), which agfs uses too. */
/* A decimal number in [min, max]; -EINVAL or -ERANGE. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* "sha256:<hex>", "sha256-<hex>" or "<hex>"; -AG_EBADNAME otherwise. */
int parse_digest_arg(const char *s, ag_digest *out);

/* ---------- the commands (cmd-*.c) ---------- */

int cmd_init(struct tool *t, int argc, char **argv);
int cmd_ls(struct tool *t, int argc, char **argv);
int cmd_versions(struct tool *t, int argc, char **argv);
int cmd_show(struct tool *t, int argc, char **argv);
int cmd_cat(struct tool *t, int argc, char **argv);
int cmd_activate(struct tool *t, int argc, char **argv);
int cmd_rollback(struct tool *t, int argc, char **argv);
int cmd_rm(struct tool *t, int argc, char **argv);
int cmd_gc(struct tool *t, int argc, char **argv);
int cmd_pin(struct tool *t, int argc, char **argv);
int cmd_unpin(struct tool *t, int argc, char **argv);
int cmd_pins(struct tool *t, int argc, char **argv);
int cmd_fsck(struct tool *t, int argc, char **argv);
int cmd_audit(struct tool *t, int argc, char **argv);
int cmd_status(struct tool *t, int argc, char **argv);
int cmd_diff(struct tool *t, int argc, char **argv);
int cmd_log(struct tool *t, int argc, char **argv);
int cmd_export(struct tool *t, int argc, char **argv);
int cmd_push(struct tool *t, int argc, char **argv);
int cmd_migrate(struct tool *t, int argc, char **argv); /* cmd-migrate.c */
int cmd_sign(struct tool *t, int argc, char **argv);
int cmd_verify(struct tool *t, int argc, char **argv);
/* "N" or "current" into a loaded generation; fails saying which exist (cmd-diff.c). */
int gen_arg_load(struct tool *t, ag_store *s, const char *arg, ag_gen **out);

/* ---------- genfacts.c (read-only facts about generations) ---------- */

/* Where a generation's data date comes from. */
enum data_date_from {
	DATE_CREATED,	      /* the generation's created time (no bundle date known) */
	DATE_UNSIGNED_BUNDLE, /* bundle.json's creation_date, signature not checked */
	DATE_SIGNED_BUNDLE,   /* bundle.json's creation_date, signature good */
};
struct data_date {
	int64_t when;
	enum data_date_from from;
	uint64_t via_gen; /* the generation whose report gave the date */
};
/* The age of g's data: its bundle's creation_date, followed back through
 * `agstore rm` generations (audit MODELS_REMOVED), else g->created. */
void gen_data_date(ag_store *s, const ag_gen *g, struct data_date *dd);
const char *data_date_source(enum data_date_from f);
/* Whether the agfs mount at dir serves g: versions/current names g and its
 * manifests/ are exactly g's.  0 yes, 1 no (*why: a phrase, caller frees),
 * <0 error.  *shown_current: what versions/current names (0: unreadable). */
int mount_serves(const char *dir, const ag_gen *g, uint64_t *shown_current, char **why);
/* "name:tag, name:tag, ..." of at most max models (caller frees). */
char *gen_names_list(const ag_gen *g, size_t max);

/* Model size as `ollama list` shows it: manifest + config + layers. */
uint64_t model_size(const ag_model *m);

#endif
