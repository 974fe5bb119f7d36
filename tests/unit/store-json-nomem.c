/* SPDX-License-Identifier: Apache-2.0 */
/* Memory running out while a catalog or a generation record is parsed is
 * -ENOMEM ("could not check"), never -AG_ECORRUPT: the mount would reject a
 * good signed catalog for good, verify would call it malformed, and an
 * audit line would read as edited.  Each parse
 * runs in a child whose address space is capped (RLIMIT_AS) at what it
 * already uses plus a budget, for budgets from none to plenty: every result
 * must be 0 or -ENOMEM, some -ENOMEM, the last 0. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/catalog.h"
#include "store/internal.h"
#include "tests/tap.h"

#define NBLOBS 4000

enum { RES_PARSED, RES_NOMEM, RES_CORRUPT, RES_OTHER };

static ag_digest dig(unsigned n, uint8_t salt)
{
	ag_digest d;
	memset(d.b, salt, sizeof(d.b));
	memcpy(d.b, &n, sizeof(n));
	return d;
}

/* A valid catalog of NBLOBS blobs and as many models, in canonical form. */
static char *big_catalog(size_t *len)
{
	static struct ag_catalog_blob blobs[NBLOBS];
	static struct ag_catalog_entry models[NBLOBS];
	static char names[NBLOBS][64];
	for (unsigned i = 0; i < NBLOBS; i++) {
		blobs[i] = (struct ag_catalog_blob){dig(i, 1), 1000 + i, dig(i, 2)};
		snprintf(names[i], sizeof(names[i]), "registry.ollama.ai/library/m%u/latest", i);
		models[i] = (struct ag_catalog_entry){names[i], dig(i, 1)};
	}
	struct ag_catalog c = {.generation = 9,
			       .serial = 9,
			       .created = (char *)"2026-12-02T00:00:00Z",
			       .blobs = blobs,
			       .nblobs = NBLOBS,
			       .models = models,
			       .nmodels = NBLOBS};
	ag_catalog_sort(&c);
	char *out = NULL;
	if (ag_catalog_encode(&c, &out, len) < 0)
		bail("cannot encode the catalog");
	return out;
}

/* A valid generation record of NBLOBS models. */
static char *big_gen(size_t *len)
{
	ag_gen *g = ag_gen_new();
	if (!g)
		bail("no memory");
	g->id = 9;
	for (unsigned i = 0; i < NBLOBS; i++) {
		char name[64];
		snprintf(name, sizeof(name), "registry.ollama.ai/library/m%u/latest", i);
		ag_layer layer = {.digest = dig(i, 3),
				  .size = 100,
				  .media_type = (char *)"application/vnd.ollama.image.model"};
		ag_model m = {.name = name,
			      .manifest = dig(i, 1),
			      .manifest_size = 10,
			      .config = {.digest = dig(i, 4), .size = 10},
			      .layers = &layer,
			      .nlayers = 1};
		if (ag_gen_add_model(g, &m) < 0)
			bail("cannot add a model");
	}
	char *s = ag_gen_encode(g);
	ag_gen_free(g);
	if (!s)
		bail("cannot encode the generation");
	*len = strlen(s);
	return s;
}

/* make()'s bytes, made in a child so that this process's heap never held
 * the JSON trees behind them (freed, that memory would let a capped child
 * parse without growing), mapped from a memfd. */
static const char *made_apart(char *(*make)(size_t *), size_t *len)
{
	int fd = memfd_create("json", MFD_CLOEXEC);
	if (fd < 0)
		bail("memfd_create: %s", strerror(errno));
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (pid == 0) {
		size_t n;
		char *s = make(&n);
		_exit(write(fd, s, n) == (ssize_t)n ? 0 : 1);
	}
	int st;
	struct stat sb;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || fstat(fd, &sb) < 0)
		bail("cannot make the test input");
	void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	close(fd);
	*len = (size_t)sb.st_size;
	return m;
}

/* A whole audit log: STORE_INIT, then plain records, each line's "prev" the
 * SHA-256 of the line before; one record of 600 KB (parsing it needs about
 * three times that, reading the line once). */
#define BIG_FIELD (600u << 10)
static char *big_log(size_t *len)
{
	size_t cap = (size_t)NBLOBS * 256 + BIG_FIELD, n = 0;
	char *out = malloc(cap), prev[AG_HEX_LEN + 1], *big = malloc(BIG_FIELD + 1);
	if (!out || !big)
		bail("no memory");
	memset(big, 'x', BIG_FIELD);
	big[BIG_FIELD] = '\0';
	memset(prev, '0', AG_HEX_LEN);
	prev[AG_HEX_LEN] = '\0';
	for (unsigned i = 1; i <= NBLOBS; i++) {
		int w = snprintf(out + n, cap - n,
				 "{\"seq\":%u,\"time\":\"2026-12-02T00:00:00Z\",\"event\":\"%s\","
				 "\"operator\":\"t\",\"detail\":\"%s\",\"prev\":\"%s\"}",
				 i, i == 1 ? "STORE_INIT" : "FSCK", i == NBLOBS / 2 ? big : "-",
				 prev);
		ag_digest d;
		ag_sha256(out + n, (size_t)w, &d);
		ag_digest_hex(&d, prev);
		n += (size_t)w;
		out[n++] = '\n';
	}
	*len = n;
	return out;
}

static unsigned long vm_bytes(void)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%lu", &pages) != 1)
		bail("cannot read /proc/self/statm");
	fclose(f);
	return pages * (unsigned long)sysconf(_SC_PAGESIZE);
}

static int classify(int r)
{
	return r == 0		   ? RES_PARSED
	       : r == -ENOMEM	   ? RES_NOMEM
	       : r == -AG_ECORRUPT ? RES_CORRUPT
				   : RES_OTHER;
}

static int parse_catalog(const char *buf, size_t len)
{
	struct ag_catalog c;
	int r = ag_catalog_parse(buf, len, &c, NULL);
	ag_catalog_clear(&c);
	return classify(r);
}

static int parse_gen(const char *buf, size_t len)
{
	ag_gen *g = NULL;
	int r = ag_gen_decode(buf, len, &g);
	ag_gen_free(g);
	return classify(r);
}

static int check_log(const char *buf, size_t len)
{
	uint64_t bad = 0;
	char *why = NULL;
	size_t pending = 0;
	int r = ag_audit_check_buf(buf, len, 0, &bad, &why, &pending);
	free(why);
	return r == -AG_ECHAIN ? RES_CORRUPT : classify(r);
}

/* The parse in a child capped at its use now plus budget: its RES_ code. */
static int capped(int (*fn)(const char *, size_t), const char *buf, size_t len,
		  unsigned long budget)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (pid == 0) {
		unsigned long cap = vm_bytes() + budget;
		struct rlimit rl = {cap, cap};
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			_exit(RES_OTHER + 1);
		_exit(fn(buf, len));
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		bail("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st))
		diag("the child died of signal %d", WTERMSIG(st));
	if (!WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void under_budgets(const char *what, int (*fn)(const char *, size_t), const char *buf,
			  size_t len)
{
	unsigned nomem = 0, verdicts = 0, other = 0, last = RES_OTHER, runs = 0;
	is_int(capped(fn, buf, len, 1ul << 40), RES_PARSED, "%s (%zu bytes) parses with no cap",
	       what, len);
	for (unsigned long budget = 0; budget <= 256ul << 20;
	     budget = budget ? budget + budget / 4 : 64 << 10) {
		int r = capped(fn, buf, len, budget);
		runs++;
		last = (unsigned)r;
		if (r == RES_NOMEM) {
			nomem++;
		} else if (r == RES_CORRUPT) {
			verdicts++;
			diag("%s: malformed with %lu bytes to spare", what, budget);
		} else if (r != RES_PARSED) {
			other++;
			diag("%s: result %d with %lu bytes to spare", what, r, budget);
		}
	}
	diag("%s: %u capped parses, %u ran out of memory", what, runs, nomem);
	ok(nomem > 0, "%s: some capped parses ran out of memory", what);
	is_int(verdicts, 0, "%s: none of them called it malformed", what);
	is_int(other, 0, "%s: and none gave another error or died", what);
	is_int(last, RES_PARSED, "%s: with room to spare it parses", what);
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
	skip_all("AddressSanitizer reserves the address space RLIMIT_AS would cap");
#endif
	size_t clen, glen, llen;
	const char *cat = made_apart(big_catalog, &clen);
	const char *gen = made_apart(big_gen, &glen);
	const char *log = made_apart(big_log, &llen);
	under_budgets("a catalog", parse_catalog, cat, clen);
	under_budgets("a generation record", parse_gen, gen, glen);
	under_budgets("an audit log", check_log, log, llen);
	return done_testing();
}
