/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore: the administrator's tool for an agfs store.
 * Global options, then a command; each command lives in tools/cmd-*.c.
 * This is the one place that reports a failure, in one sentence.
 */
#include <stdio.h>
#include <string.h>

#include "tools/tool.h"

static const char usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] [--json] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  init                     create an empty store\n"
	"  ls [GEN]                 models of the current (or given) generation\n"
	"  versions                 list generations; * marks the current one\n"
	"  show NAME[:TAG]          one model: manifest, config and layers\n"
	"  cat DIGEST               write a blob's verified bytes to stdout\n"
	"  activate N               make generation N current\n"
	"  rollback                 go back to the generation current before\n"
	"  rm NAME[:TAG]...         new current generation without those models\n"
	"  gc [--keep N] [--dry-run]  delete old generations and unreferenced objects\n"
	"  fsck [--jobs N]          re-hash every object, report problems\n"
	"  audit [--since TIME]     print the audit log;  audit verify: check its chain\n"
	"  status [--max-age DAYS] [--mount DIR]  staleness, last fsck, audit chain, mount\n"
	"  diff A B                 models generation B adds, removes, changes vs A\n"
	"  log                      which generation was current when (audit log)\n"
	"  export GEN DIR           write GEN as a plain Ollama models directory\n"
	"  pin N | unpin N | pins   keep generation N through gc; list pins and leases\n"
	"  push URL [--generation N]  upload a generation to an OCI registry\n"
	"  migrate                  convert a format-1 store to format 2 (all or nothing)\n"
	"  sign [GEN] --sign-key FPR  sign a generation's catalog (OpenPGP, detached)\n"
	"  verify --keyring FILE [GEN|--all]  replay signature -> catalog -> blobs -> bytes\n"
	"\n"
	"Options (also accepted after the command):\n"
	"  --store DIR       the store (default $AGFS_STORE, else /var/lib/agfs)\n"
	"  --operator NAME   who acts, for the audit log (default: login name)\n"
	"  --json            one JSON document instead of a table\n"
	"  --help            this text; `agstore COMMAND --help` for a command\n"
	"\n"
	"Exit: 0 ok, 1 problem found or refused, 2 usage, 3 stale (status), 4 I/O error.\n";

struct command {
	const char *name;
	int (*run)(struct tool *t, int argc, char **argv);
};

static const struct command commands[] = {
	{"init", cmd_init},	    {"ls", cmd_ls},	  {"versions", cmd_versions},
	{"show", cmd_show},	    {"cat", cmd_cat},	  {"activate", cmd_activate},
	{"rollback", cmd_rollback}, {"rm", cmd_rm},	  {"gc", cmd_gc},
	{"fsck", cmd_fsck},	    {"audit", cmd_audit}, {"status", cmd_status},
	{"diff", cmd_diff},	    {"log", cmd_log},	  {"export", cmd_export},
	{"pin", cmd_pin},	    {"unpin", cmd_unpin}, {"pins", cmd_pins},
	{"migrate", cmd_migrate},   {"push", cmd_push},	  {"sign", cmd_sign},
	{"verify", cmd_verify},
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Global options before the command; returns -1 to go on, else an exit code. */
static int global_options(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		TOOL_COMMON_OPTIONS, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		int r = tool_common_opt(t, c, optarg);
		if (r == 1) {
			fputs(usage, stdout);
			return EX_AG_OK;
		}
		if (c == 'V') {
			printf("agstore (agfs) %s, store format %d\n", AGFS_VERSION,
			       AG_FORMAT_VERSION);
			return EX_AG_OK;
		}
		if (r < 0)
			return tool_fail(
				t, EX_AG_USAGE,
				"unknown option or missing argument '%s' (see agstore --help)",
				argv[optind - 1]);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct tool t;
	const struct command *cmd;
	int r;

	tool_init(&t);
	r = global_options(&t, argc, argv);
	if (r < 0 && optind >= argc)
		r = tool_fail(&t, EX_AG_USAGE, "no command given (see agstore --help)");
	if (r < 0) {
		cmd = find_command(argv[optind]);
		if (cmd) {
			t.cmd = cmd->name;
			r = cmd->run(&t, argc - optind, argv + optind);
		} else {
			r = tool_fail(&t, EX_AG_USAGE, "unknown command '%s' (see agstore --help)",
				      argv[optind]);
		}
	}
	if (fflush(stdout) != 0 && r == 0)
		r = tool_fail(&t, EX_AG_IO, "cannot write to standard output: %m");
	if (r != 0 && t.msg[0])
		fprintf(stderr, "agstore: %s.\n", t.msg);
	if (r == EX_AG_USAGE && !t.msg[0])
		fputs(usage, stderr);
	return r;
}
