/* SPDX-License-Identifier: Apache-2.0 */
/* agstore: what every command shares — options, failure messages, opening the store, audit. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/tool.h"

void tool_init(struct tool *t)
{
	static char uidbuf[32];
	const char *env = getenv("AGFS_STORE");
	struct passwd *pw;

	memset(t, 0, sizeof(*t));
	t->store_path = env && *env ? env : AG_DEFAULT_STORE;
	pw = getpwuid(geteuid());
	if (pw && pw->pw_name && *pw->pw_name) {
		t->operator_name = pw->pw_name;
	} else {
		snprintf(uidbuf, sizeof(uidbuf), "uid:%u", (unsigned)geteuid());
		t->operator_name = uidbuf;
	}
}

int tool_common_opt(struct tool *t, int c, const char *arg)
{
	switch (c) {
	case OPT_STORE:
		t->store_path = arg;
		return 0;
	case OPT_OPERATOR:
		t->operator_name = arg;
		return 0;
	case OPT_JSON:
		t->json = true;
		return 0;
	case 'h':
	case OPT_HELP:
		return 1;
	default:
		return -1;
	}
}

int tool_getopt(struct tool *t, int argc, char **argv, const struct option *opts, const char *usage,
		int (*handle)(struct tool *t, int c, const char *arg, void *arg2), void *arg2)
{
	int c, r;

	optind = 0; /* GNU: reinitialise; argv[0] is the command's name */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			return tool_fail(t, EX_AG_USAGE,
					 "%s: unknown option or missing argument '%s'", t->cmd,
					 bad ? bad : "?");
		}
		r = tool_common_opt(t, c, optarg);
		if (r == 1) {
			fputs(usage, stdout);
			return EX_AG_OK;
		}
		if (r == 0)
			continue;
		r = handle ? handle(t, c, optarg, arg2) : EX_AG_USAGE;
		if (r >= 0)
			return r;
	}
	return -1;
}

int tool_fail(struct tool *t, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	return code;
}

int tool_exit_code(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return EX_AG_OK;
	case AG_ENOTSTORE:
	case AG_EFORMAT:
	case AG_EOLDFORMAT: /* a format-1 store: agstore migrate */
	case AG_EDIGEST:
	case AG_ECORRUPT:
	case AG_EBADNAME:
	case AG_ECHAIN:
	case AG_EINDEX: /* the index is damaged */
	case EBADMSG:	/* a chunk that does not match its hash */
	case ENOENT:
	case EEXIST:
	case EBUSY:
	case EINVAL:
		return EX_AG_PROBLEM;
	default:
		return EX_AG_IO;
	}
}

int tool_fail_err(struct tool *t, int err, const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return tool_fail(t, tool_exit_code(err), "%s: %s", what, ag_strerror(err));
}

int tool_open(struct tool *t, unsigned flags, ag_store **out)
{
	int r;

	if (tool_interactive() && (flags & AG_WRITE) && !(flags & AG_NOWAIT)) {
		/* Say why we may sit here: an import or gc holds the lock. */
		r = ag_store_open(t->store_path, flags | AG_NOWAIT, out);
		if (r != -AG_ELOCKED)
			goto done;
		fprintf(stderr, "agstore: waiting for the store lock of %s (another writer)...\n",
			t->store_path);
	}
	r = ag_store_open(t->store_path, flags, out);
done:
	if (r == -ENOENT || r == -AG_ENOTSTORE)
		return tool_fail(
			t, EX_AG_PROBLEM,
			"%s is not an agfs store%s: create one with `agstore --store %s init` "
			"or by importing a bundle with `agimport --store %s`, or name an "
			"existing store with --store DIR or AGFS_STORE",
			t->store_path, r == -ENOENT ? " (it does not exist)" : "", t->store_path,
			t->store_path);
	if (r == -EACCES || r == -EPERM)
		return tool_fail(
			t, EX_AG_IO,
			"cannot open the store %s: %s (run as root, or as the store's owner)",
			t->store_path, ag_strerror(r));
	if (r < 0)
		return tool_fail_err(t, r, "cannot open the store %s", t->store_path);
	return 0;
}

int tool_audit(struct tool *t, ag_store *s, const char *event, json_t *fields)
{
	int r = ag_audit(s, event, t->operator_name, fields);

	json_decref(fields);
	return r;
}

bool tool_interactive(void)
{
	return isatty(STDERR_FILENO) == 1;
}

uint64_t model_size(const ag_model *m)
{
	uint64_t n = m->manifest_size + m->config.size;

	for (size_t i = 0; i < m->nlayers; i++)
		n += m->layers[i].size;
	return n;
}
