/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agfs [-f] [-d] [-o OPTIONS] STORE MOUNTPOINT
 *
 * Mounts the store read-only as Ollama's models tree (see agfs(8)).  Order
 * matters: fork first (the parent waits until the mount answers), then open
 * the store and build the tree (a bad store refuses to mount before anything
 * is mounted), then mount, then serve until SIGTERM or fusermount3 -u.
 */
#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/agfs.h"
#include "fs/journal.h"
#include "fs/metrics.h"
#include "sig/sig.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_SYSTEM = 4 };

static const char usage_text[] =
	"usage: agfs [-f] [-d] [-o OPTIONS] STORE MOUNTPOINT\n"
	"       agfs --help | --version\n"
	"Mounts the agfs store STORE read-only at MOUNTPOINT as Ollama's models tree;\n"
	"every byte served is verified first (man agfs).\n"
	"  -f  stay in the foreground      -d  debug (implies -f)\n"
	"  -o OPTIONS, a comma list of:\n"
	"     generation=N         serve generation N instead of following the current one\n"
	"     verify=chunks|full   full: also hash each whole blob at its first open\n"
	"     keyring=FILE         serve only generations whose catalog a key in FILE signed\n"
	"     signer=FPR           ... and only that key (repeatable; with keyring=)\n"
	"     grace=SECONDS        keep the previous generation's blobs reachable after a\n"
	"                          switch (default 600; 0 = off)\n"
	"     stuck=kill|ignore    kill a reader stuck re-reading a bad block (default kill)\n"
	"     backing=direct|buffered  O_DIRECT object reads (default) or page-cache reads\n"
	"     threads=N            FUSE worker threads (default 8)\n"
	"     cache=SIZE           read buffers of all threads together (default 32M)\n"
	"     readahead=SIZE       verified read-ahead per sequential reader (default 4M;\n"
	"                          0 = off)\n"
	"     metrics=PATH|none    Prometheus text file (default " FS_METRICS_DEFAULT "\n"
	"                          when its directory exists)\n"
	"     allow_other          let other users read the mount (default when root)\n"
	"     ro, rw, defaults, nofail, _netdev, x-*  accepted from fstab and ignored\n";

/* What each option with a value accepts, as said when a value is refused. */
static_assert(FS_MAX_READAHEAD == 16ull << 20 && FS_MAX_THREADS == 64 &&
		      FS_MIN_CACHE == 1ull << 20 && FS_MAX_CACHE == 4ull << 30 &&
		      FS_MAX_GRACE == 86400 && FS_MAX_SIGNERS == 16,
	      "the limits option_hint names");
static const struct {
	const char *key; /* with its '=' */
	const char *accepts;
} hints[] = {
	{"readahead=", "the read-ahead is whole MiB, from 0 (off) to 16M, such as 4M"},
	{"cache=", "the cache is a size from 1M to 4G, such as 32M"},
	{"threads=", "the number of threads is from 1 to 64"},
	{"grace=", "the grace period is seconds, from 0 (off) to 86400"},
	{"generation=", "the generation is a generation number, 1 or more"},
	{"verify=", "verify is chunks or full"},
	{"backing=", "backing is direct or buffered"},
	{"stuck=", "stuck is kill or ignore"},
	{"metrics=", "metrics is an absolute path or none"},
	{"keyring=", "keyring is the path of a keyring file"},
	{"signer=", "a signer is a key fingerprint of 16 to 40 hex digits, at most 16 of them"},
};

/* For an option fs_options_parse refused ("readahead=3K"): what its value
 * may be; NULL for an unknown option. */
static const char *option_hint(const char *opt)
{
	for (size_t i = 0; opt && i < sizeof(hints) / sizeof(hints[0]); i++)
		if (!strncmp(opt, hints[i].key, strlen(hints[i].key)))
			return hints[i].accepts;
	return NULL;
}

static bool log_perror; /* syslog also prints to stderr (-f) */

/* The one sentence a failed start prints (and logs). */
static int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!log_perror)
		fprintf(stderr, "agfs: %s\n", msg);
	syslog(LOG_ERR, "%s", msg);
	return code;
}

/*
 * libfuse's own messages.  One repeats for every request while the daemon
 * cannot start a worker thread ("fuse: error creating thread", thousands a
 * minute out of memory): a message the same as the one before is logged
 * once a minute, then with how many times it was not.
 */
static struct {
	pthread_mutex_t lock;
	char last[256];
	int64_t since;
	unsigned repeated;
} fuse_msgs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void log_repeats(unsigned n)
{
	if (n)
		syslog(LOG_ERR, "libfuse's message before was repeated %u more times", n);
}

static void fuse_log_to_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[sizeof(fuse_msgs.last)];
	unsigned repeated = 0;
	int64_t now = fs_mono_s();

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pthread_mutex_lock(&fuse_msgs.lock);
	bool same = strcmp(msg, fuse_msgs.last) == 0 && now - fuse_msgs.since < 60;
	if (same) {
		fuse_msgs.repeated++;
	} else {
		repeated = fuse_msgs.repeated;
		fuse_msgs.repeated = 0;
		fuse_msgs.since = now;
		memcpy(fuse_msgs.last, msg, sizeof(msg));
	}
	pthread_mutex_unlock(&fuse_msgs.lock);
	if (same)
		return;
	log_repeats(repeated);
	syslog((int)level, "%s", msg);
}

/* The count of a message still repeating when the session ends. */
static void fuse_log_flush(void)
{
	pthread_mutex_lock(&fuse_msgs.lock);
	unsigned repeated = fuse_msgs.repeated;
	fuse_msgs.repeated = 0;
	pthread_mutex_unlock(&fuse_msgs.lock);
	log_repeats(repeated);
}

struct args {
	bool foreground, debug;
	const char *store, *mountpoint;
};

static int parse_args(int argc, char **argv, struct args *a, struct fs_options *o)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "fdo:h", longopts, NULL)) != -1) {
		_cleanup_free_ char *bad = NULL;
		switch (ch) {
		case 'f':
			a->foreground = true;
			break;
		case 'd':
			a->foreground = a->debug = true;
			break;
		case 'o':
			if (fs_options_parse(o, optarg, strlen(optarg), &bad) < 0) {
				const char *hint = option_hint(bad);
				if (hint)
					return die(EXIT_USAGE, "-o %s: %s", bad, hint);
				return die(EXIT_USAGE, "-o %s: unknown option or bad value \"%s\"",
					   optarg, bad ? bad : "?");
			}
			break;
		case 'V':
			printf("agfs %s\n", AGFS_VERSION);
			exit(0);
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	a->store = argv[optind];
	a->mountpoint = argv[optind + 1];
	return 0;
}

/* "\040" and friends in /proc/self/mountinfo, in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
}

/* The file system type mounted at path (caller frees), NULL if none. */
static char *mounted_type(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *type = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		char mnt[4096], fstype[256];
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%255s", fstype) != 1)
			continue;
		unescape_octal(mnt);
		if (!strcmp(mnt, path)) {
			free(type); /* the last one is on top */
			type = strdup(fstype);
		}
	}
	free(line);
	if (f)
		fclose(f);
	return type;
}

/* A dead FUSE mount (its daemon killed) answers ENOTCONN: detach it. */
static int recover_dead_mount(const char *path)
{
	if (umount2(path, MNT_DETACH) == 0)
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", path, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -EBUSY;
	return 0;
}

static int check_mountpoint(struct fs_ctx *c, const struct args *a)
{
	struct statfs sf;
	/* statfs always asks the daemon (stat may answer from the kernel's cache) */
	if (statfs(a->mountpoint, &sf) < 0 && errno == ENOTCONN) {
		if (recover_dead_mount(a->mountpoint) < 0)
			return die(EXIT_REFUSED,
				   "%s: a dead mount (its daemon is gone) is in the way and "
				   "cannot be detached; run fusermount3 -u -z %s",
				   a->mountpoint, a->mountpoint);
		fprintf(stderr, "agfs: %s: recovered a dead mount (lazy unmount) before mounting\n",
			a->mountpoint);
		syslog(LOG_WARNING, "%s: recovered a dead mount (lazy unmount) before mounting",
		       a->mountpoint);
	}
	return 0;
}

static int resolve_paths(struct fs_ctx *c, const struct args *a)
{
	struct stat st;
	int r = check_mountpoint(c, a);
	if (r)
		return r;
	if (!(c->store_path = realpath(a->store, NULL)))
		return die(EXIT_REFUSED, "%s: cannot use this store (%s); refusing to mount",
			   a->store, strerror(errno));
	if (!(c->mountpoint = realpath(a->mountpoint, NULL)) || stat(c->mountpoint, &st) < 0)
		return die(EXIT_REFUSED, "%s: cannot mount here (%s)", a->mountpoint,
			   strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return die(EXIT_REFUSED, "%s: cannot mount here (not a directory)", a->mountpoint);
	_cleanup_free_ char *type = mounted_type(c->mountpoint);
	if (type && !strcmp(type, "fuse.agfs"))
		return die(EXIT_REFUSED,
			   "%s: an agfs mount is already live here; refusing to mount twice "
			   "(unmount it first: fusermount3 -u %s)",
			   c->mountpoint, c->mountpoint);
	return 0;
}

static int open_store(struct fs_ctx *c)
{
	int r = ag_store_open(c->store_path, AG_RDONLY, &c->store);
	if (r < 0)
		return die(-r >= AG_EBASE || r == -ENOENT || r == -ENOTDIR ? EXIT_REFUSED
									   : EXIT_SYSTEM,
			   "%s: %s; refusing to mount", c->store_path, ag_strerror(r));
	if ((r = tree_init(&c->tree)) < 0 || (r = blobs_init(&c->blobs)) < 0)
		return die(EXIT_SYSTEM, "cannot start: %s", strerror(-r));
	if (c->opt.buffered)
		c->blobs.open_flags = AG_BLOB_STREAM;
	c->blobs.keep_large = c->opt.readahead ? FS_KEEP_LARGE : c->opt.threads;
	lease_start(c); /* before anything is served */
	_cleanup_free_ char *why = NULL;
	if ((r = trust_start(c, &why)) < 0)
		return die(sig_keyring_err_is_input(r) ? EXIT_REFUSED : EXIT_SYSTEM,
			   "keyring=%s: %s; refusing to mount", c->opt.keyring,
			   why ? why : ag_strerror(r));
	r = watch_load(c);
	ag_gen *pinned = NULL;
	if (r == -ENOENT && c->opt.generation && c->trust &&
	    ag_gen_get(c->store, c->opt.generation, &pinned) == 0) {
		ag_gen_free(pinned);
		return die(EXIT_REFUSED,
			   "%s: generation %" PRIu64
			   "'s catalog does not verify against keyring=%s (see the log); refusing "
			   "to mount",
			   c->store_path, c->opt.generation, c->opt.keyring);
	}
	if (r == -ENOENT && c->opt.generation)
		return die(EXIT_REFUSED,
			   "%s: generation %" PRIu64 " does not exist; refusing to mount",
			   c->store_path, c->opt.generation);
	if (r == -AG_EINDEX)
		return die(EXIT_REFUSED,
			   "%s: the store's index (index/data.mdb) is damaged; refusing to mount "
			   "(run agstore fsck)",
			   c->store_path);
	if (r < 0)
		return die(-r >= AG_EBASE ? EXIT_REFUSED : EXIT_SYSTEM,
			   "%s: cannot read its generations (%s); refusing to mount", c->store_path,
			   ag_strerror(r));
	return 0;
}

/* "-o ro,...,fsname=agfs:STORE,..." with the store's commas escaped. */
static char *mount_options(const struct fs_ctx *c)
{
	size_t len = strlen(c->store_path);
	_cleanup_free_ char *esc = malloc(2 * len + 1);
	if (!esc)
		return NULL;
	char *p = esc;
	for (const char *s = c->store_path; *s; s++) {
		if (*s == ',' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	bool other = c->opt.allow_other > 0 || (c->opt.allow_other < 0 && geteuid() == 0);
	char *out = NULL;
	if (asprintf(
		    &out,
		    "ro,nodev,nosuid,default_permissions,fsname=agfs:%s,subtype=agfs,max_read=%u%s",
		    esc, fs_max_read(&c->opt), other ? ",allow_other" : "") < 0)
		return NULL;
	return out;
}

static void free_args(struct fuse_args *a)
{
	fuse_opt_free_args(a); /* fuse_session_new() may have copied them */
}

static int serve(struct fs_ctx *c, bool debug)
{
	_cleanup_free_ char *opts = mount_options(c);
	char *argv[] = {"agfs", "-o", opts, debug ? "-d" : NULL, NULL};
	_cleanup_(free_args) struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, argv);
	if (!opts)
		return die(EXIT_SYSTEM, "cannot start: %s", strerror(ENOMEM));
	c->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), c);
	if (!c->se)
		return die(EXIT_SYSTEM, "%s: cannot set up the FUSE session", c->mountpoint);
	if (fuse_set_signal_handlers(c->se) < 0 || fuse_session_mount(c->se, c->mountpoint) < 0)
		return die(EXIT_SYSTEM,
			   "%s: cannot mount (is /dev/fuse usable and fuse3 installed?)",
			   c->mountpoint);
	int r = events_start(c);
	if (r == 0)
		r = watch_start(c);
	if (r == 0 && c->opt.verify == FS_VERIFY_FULL)
		r = hash_start(c);
	if (r < 0) {
		hash_stop(c);
		events_stop(c);
		fuse_session_unmount(c->se);
		return die(EXIT_SYSTEM, "cannot start the daemon's threads: %s", strerror(-r));
	}
	uint64_t gen = c->tree.current ? c->tree.current->id : 0;
	fs_log(LOG_INFO, FS_MSG_MOUNT_START, gen, NULL,
	       "mounted %s on %s, generation %" PRIu64 ", verify=%s", c->store_path, c->mountpoint,
	       gen, c->opt.verify == FS_VERIFY_FULL ? "full" : "chunks");
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (cfg) {
		fuse_loop_cfg_set_max_threads(cfg, c->opt.threads);
		fuse_loop_cfg_set_idle_threads(cfg, c->opt.threads);
	}
	r = fuse_session_loop_mt(c->se, cfg);
	fuse_log_flush();
	fuse_loop_cfg_destroy(cfg);
	hash_stop(c);
	watch_stop(c);
	events_stop(c);
	fuse_session_unmount(c->se);
	fuse_remove_signal_handlers(c->se);
	/* libfuse 3.14 returns -1 when it cannot start the first worker
	 * thread (after logging why), not an errno. */
	if (r == -1)
		return die(EXIT_SYSTEM,
			   "%s: the FUSE session stopped: it could not start a worker "
			   "thread",
			   c->mountpoint);
	if (r < 0 || !atomic_load(&c->initialized))
		return die(EXIT_SYSTEM, "%s: the FUSE session failed (%s)", c->mountpoint,
			   strerror(r < 0 ? -r : EPROTO));
	fs_log(LOG_INFO, FS_MSG_MOUNT_STOP, 0, NULL, "unmounted %s", c->mountpoint);
	return 0;
}

/* One descriptor per open blob (shared by its opens), more with
 * backing=buffered: the soft limit of 1024 would be every client's EMFILE. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			syslog(LOG_WARNING, "cannot raise the descriptor limit: %s",
			       strerror(errno));
	}
}

/*
 * glibc loads the unwinder (libgcc_s) the first time a thread is cancelled,
 * and aborts when it cannot open it.  libfuse cancels its worker threads at
 * unmount, so a daemon that had run out of descriptors would die there with
 * SIGABRT and leave a dead mount.  Loaded now, it is found without a
 * descriptor then.
 */
static void load_unwinder(void)
{
	if (!dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE))
		syslog(LOG_WARNING,
		       "cannot load libgcc_s.so.1 (%s): an unmount with no descriptor free would "
		       "abort",
		       dlerror());
}

static char *login_name(void)
{
	struct passwd *pw = getpwuid(geteuid());
	char *s = NULL;
	if (pw && pw->pw_name)
		return strdup(pw->pw_name);
	if (asprintf(&s, "uid:%u", (unsigned)geteuid()) < 0)
		return NULL;
	return s;
}

static void cleanup(struct fs_ctx *c)
{
	if (c->se)
		fuse_session_destroy(c->se);
	trust_stop(c);
	if (c->store) {
		blobs_destroy(&c->blobs);
		lease_stop(c);
		tree_destroy(&c->tree);
	}
	ag_store_close(c->store);
	free(c->store_path);
	free(c->mountpoint);
	free(c->operator_name);
	fs_options_clear(&c->opt);
	if (c->ready_fd >= 0)
		close(c->ready_fd);
}

int main(int argc, char **argv)
{
	static struct fs_ctx c = {.ready_fd = -1};
	struct args a = {0};
	fs_options_init(&c.opt);
	int r = parse_args(argc, argv, &a, &c.opt);
	if (r)
		return r;
	c.foreground = log_perror = a.foreground;
	openlog("agfs", LOG_PID | LOG_NDELAY | (a.foreground ? LOG_PERROR : 0), LOG_DAEMON);
	fuse_set_log_func(fuse_log_to_syslog);
	pthread_mutex_init(&c.ev_lock, NULL);
	raise_nofile();
	load_unwinder();
	if (!(c.operator_name = login_name()))
		return die(EXIT_SYSTEM, "cannot start: %s", strerror(ENOMEM));
	if ((r = resolve_paths(&c, &a)))
		return r;
	if (!a.foreground && (r = daemon_fork(&c.ready_fd)) < 0)
		return die(EXIT_SYSTEM, "cannot become a daemon: %s", strerror(-r));
	journal_start(a.foreground);
	if (!(r = open_store(&c)))
		r = serve(&c, a.debug);
	cleanup(&c);
	journal_stop();
	return r;
}
