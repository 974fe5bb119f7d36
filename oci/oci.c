/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI distribution client over libcurl (see oci.h).  Every request goes
 * through request(), which configure() sets up (TLS, auth, timeouts, the
 * method, URL, header lines and body): the response's status and headers, a
 * bounded body or a sink; call() repeats what may be repeated with back-off
 * and checks the status.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "oci/oci.h"
#include "store/store.h"

#define ERR_BODY_MAX (64u * 1024u)

struct oci {
	char *base; /* "https://host:port", no trailing slash */
	struct oci_opts o;
	char *bearer;
	char *userpwd;
	CURL *h;
	struct oci_stats st;
	char err[640];
};

struct resp {
	long status;
	char *location, *ctype, *range, *crange, *docker_digest;
	uint64_t clen;
	bool has_clen;
	char *body;
	size_t len, cap, max;
	oci_sink sink; /* blob bytes of a 200/206 go here */
	void *arg;
	uint64_t range_from; /* the Range asked for */
	uint64_t skip;	     /* bytes of a 200 to drop (the server ignored Range) */
	uint64_t delivered;  /* bytes the sink took */
	int sink_err;
	bool overflow; /* the body was larger than max */
};

/* One request: method, absolute URL, extra header lines (up to three), the
 * body to send (not for GET or HEAD). */
struct req {
	const char *method;
	const char *url;
	const char *hdr[4]; /* NULL after the last */
	const void *send;
	size_t send_len;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void seterr(oci *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(oci *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

const char *oci_error(const oci *c)
{
	return c->err;
}

const char *oci_url(const oci *c)
{
	return c->base;
}

const struct oci_stats *oci_stats(const oci *c)
{
	return &c->st;
}

/* Forgets the headers of the response so far (a redirect starts anew). */
static void resp_clear_headers(struct resp *r)
{
	free(r->location);
	free(r->ctype);
	free(r->range);
	free(r->docker_digest);
	free(r->crange);
	r->location = r->ctype = r->range = r->docker_digest = r->crange = NULL;
	r->has_clen = false;
}

static void resp_clear(struct resp *r)
{
	resp_clear_headers(r);
	free(r->body);
	*r = (struct resp){
		.max = r->max, .sink = r->sink, .arg = r->arg, .range_from = r->range_from};
}

/* A file curl will read for TLS: said now, as a usage error naming the
 * option, rather than as a TLS failure against the registry (a refusal). */
static int check_file(oci *c, const char *what, const char *file)
{
	struct stat st;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK), err;

	if (fd < 0 || fstat(fd, &st) < 0) {
		err = errno;
		if (fd >= 0)
			close(fd);
		seterr(c, "%s %s cannot be read (%s)", what, file, strerror(err));
		return -err;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		seterr(c, "%s %s is not a file", what, file);
		return -EINVAL;
	}
	return 0;
}

static int read_token(oci *c, const char *file)
{
	FILE *f = fopen(file, "re");
	char buf[8192];
	size_t n;

	if (!f) {
		seterr(c, "the token file %s cannot be read (%s)", file, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	if (n == 0 || strpbrk(buf, "\r\n")) {
		seterr(c, "the token file %s holds no token on one line", file);
		return -EINVAL;
	}
	if (strchr(buf, ':'))
		c->userpwd = strdup(buf);
	else
		c->bearer = strdup(buf);
	return c->userpwd || c->bearer ? 0 : -ENOMEM;
}

int oci_open(const char *url, const struct oci_opts *o, oci **out)
{
	oci *c;
	size_t n;
	int r;

	pthread_once(&once, global_init);
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	*out = c;
	c->o = *o;
	if (!c->o.timeout)
		c->o.timeout = 30;
	if (!c->o.chunk)
		c->o.chunk = 16u << 20;
	if (!(c->base = strdup(url)) || !(c->h = curl_easy_init()))
		return -ENOMEM;
	n = strlen(c->base);
	while (n && c->base[n - 1] == '/')
		c->base[--n] = 0;
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		seterr(c, "%s is not an https:// URL", url);
		return -EINVAL;
	}
	if (strncmp(url, "http://", 7) == 0 && !o->insecure_http) {
		seterr(c, "%s is plain http: give --insecure-http to allow it", url);
		return -EINVAL;
	}
	if (strlen(c->base) <= 8 || strchr(c->base + 8, '/') || strpbrk(c->base, " ?#")) {
		seterr(c, "%s is not a registry URL (scheme://host[:port])", url);
		return -EINVAL;
	}
	if (!!o->cert != !!o->key) {
		seterr(c, "a client certificate needs both --cert and --key");
		return -EINVAL;
	}
	if ((o->ca_file && (r = check_file(c, "the CA file (--ca-file)", o->ca_file)) < 0) ||
	    (o->cert && (r = check_file(c, "the client certificate (--cert)", o->cert)) < 0) ||
	    (o->key && (r = check_file(c, "the client key (--key)", o->key)) < 0))
		return r;
	if (o->token_file && (r = read_token(c, o->token_file)) < 0)
		return r;
	return 0;
}

void oci_close(oci *c)
{
	if (!c)
		return;
	if (c->h)
		curl_easy_cleanup(c->h);
	free(c->base);
	free(c->bearer);
	if (c->userpwd)
		explicit_bzero(c->userpwd, strlen(c->userpwd));
	free(c->userpwd);
	free(c);
}

static char *hdr_value(const char *buf, size_t n, size_t namelen)
{
	const char *v = buf + namelen;
	size_t len = n - namelen;

	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	return strndup(v, len);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nitems;
	char **slot = NULL;

	if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new response (redirect) */
		resp_clear_headers(r);
		return n;
	}
	if (n > 9 && strncasecmp(buf, "location:", 9) == 0)
		slot = &r->location;
	else if (n > 13 && strncasecmp(buf, "content-type:", 13) == 0)
		slot = &r->ctype;
	else if (n > 14 && strncasecmp(buf, "content-range:", 14) == 0)
		slot = &r->crange;
	else if (n > 6 && strncasecmp(buf, "range:", 6) == 0)
		slot = &r->range;
	else if (n > 22 && strncasecmp(buf, "docker-content-digest:", 22) == 0)
		slot = &r->docker_digest;
	else if (n > 15 && strncasecmp(buf, "content-length:", 15) == 0) {
		r->clen = strtoull(buf + 15, NULL, 10);
		r->has_clen = true;
	}
	if (slot) {
		free(*slot);
		*slot = hdr_value(buf, n, strchr(buf, ':') - buf + 1);
	}
	return n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb, take = n;

	if (r->sink && (r->status == 200 || r->status == 206)) {
		if (r->skip) {
			size_t s = r->skip < take ? (size_t)r->skip : take;
			r->skip -= s;
			buf += s;
			take -= s;
		}
		if (take && (r->sink_err = r->sink(r->arg, buf, take)) != 0)
			return 0; /* abort the transfer */
		r->delivered += take;
		return n;
	}
	if (r->len + n > r->max) {
		r->overflow = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = (r->len + n + 1) * 2;
		char *b = realloc(r->body, cap < r->max + 1 ? cap : r->max + 1);
		if (!b)
			return 0;
		r->body = b;
		r->cap = cap < r->max + 1 ? cap : r->max + 1;
	}
	memcpy(r->body + r->len, buf, n);
	r->len += n;
	r->body[r->len] = 0;
	return n;
}

/* The sink needs the status before the first byte: libcurl has it in the
 * handle by then, so on_body asks through this per-thread pointer. */
static __thread CURL *cur_handle;
static size_t on_body_status(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;

	if (r->status == 0) {
		curl_easy_getinfo(cur_handle, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->status == 200)
			r->skip = r->range_from;
	}
	return on_body(buf, size, nmemb, arg);
}

static int map_curl(oci *c, CURLcode cc, const char *what)
{
	seterr(c, "%s failed: %s", what, curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		seterr(c, "%s timed out (no answer for %u s)", what, c->o.timeout);
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
		seterr(c,
		       "%s failed: the registry's TLS certificate is not trusted (%s; check "
		       "--ca-file)",
		       what, curl_easy_strerror(cc));
		return -EPROTO;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		seterr(c, "%s failed: TLS: %s", what, curl_easy_strerror(cc));
		return -EPROTO;
	case CURLE_WRITE_ERROR:
		return -EIO;
	default:
		return -ECONNRESET;
	}
}

/* The options every request has: TLS (protocols, CA, client certificate),
 * auth, timeouts, and the callbacks that fill rs. */
static void common_opts(oci *c, struct resp *rs)
{
	CURL *h = c->h;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->o.insecure_http ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
			 c->o.insecure_http ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->o.timeout);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->o.timeout);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "agfs/" AGFS_VERSION);
	if (c->o.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->o.ca_file);
	if (c->o.cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->o.cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->o.key);
	}
	if (c->bearer) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, c->bearer);
	} else if (c->userpwd) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_status);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
}

/* c's handle set up for q: the common options, then q's method, URL, header
 * lines and body.  *hl: the header list to free after the transfer (also on
 * failure). */
static int configure(oci *c, const struct req *q, struct resp *rs, struct curl_slist **hl)
{
	CURL *h = c->h;

	*hl = NULL;
	for (size_t i = 0; i < sizeof(q->hdr) / sizeof(q->hdr[0]) && q->hdr[i]; i++) {
		struct curl_slist *n = curl_slist_append(*hl, q->hdr[i]);
		if (!n)
			return -ENOMEM;
		*hl = n;
	}
	common_opts(c, rs);
	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->send ? q->send : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->send_len);
	}
	if (strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	}
	return 0;
}

/* The registry's own error code ("BLOB_UNKNOWN", ...) from a JSON body. */
static const char *reg_code(const struct resp *rs, char *buf, size_t n)
{
	json_t *j = rs->body ? ag_json_loadb(rs->body, rs->len, 0, NULL) : NULL;
	const char *code = json_string_value(
		json_object_get(json_array_get(json_object_get(j, "errors"), 0), "code"));

	snprintf(buf, n, "%s%s%s", code ? " (" : "", code ? code : "", code ? ")" : "");
	json_decref(j);
	return buf;
}

/* One request, its answer in rs. */
static int request(oci *c, const struct req *q, struct resp *rs)
{
	struct curl_slist *hl;
	CURLcode cc;
	char what[1200];
	int r;

	resp_clear(rs);
	if (!rs->max)
		rs->max = ERR_BODY_MAX;
	if ((r = configure(c, q, rs, &hl)) < 0) {
		curl_slist_free_all(hl);
		return r;
	}
	cur_handle = c->h;
	c->st.requests++;
	cc = curl_easy_perform(c->h);
	curl_slist_free_all(hl);
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &rs->status);
	snprintf(what, sizeof(what), "%s %s", q->method, q->url);
	if (cc == CURLE_WRITE_ERROR && rs->sink_err)
		return rs->sink_err;
	if (cc != CURLE_OK)
		return map_curl(c, cc, what);
	return 0;
}

/* An HTTP status that is not the one wanted, as -errno and a sentence. */
static int status_err(oci *c, const struct req *q, const struct resp *rs)
{
	char code[128];

	seterr(c, "%s %s answered HTTP %ld%s", q->method, q->url, rs->status,
	       reg_code(rs, code, sizeof(code)));
	if (rs->status == 404)
		return -ENOENT;
	if (rs->status == 401 || rs->status == 403)
		return -EACCES;
	if (rs->status >= 500 || rs->status == 429)
		return -EIO;
	return -EPROTO;
}

static bool retryable(int r, const struct resp *rs)
{
	if (r == -ETIMEDOUT || r == -ECONNRESET || r == -ECONNREFUSED)
		return true;
	return r == 0 && (rs->status >= 500 || rs->status == 429);
}

static void backoff(oci *c, unsigned attempt)
{
	struct timespec ts;
	unsigned ms = 250u << (attempt < 6 ? attempt : 6);

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	c->st.retries++;
	nanosleep(&ts, NULL);
}

static unsigned max_retries(const oci *c)
{
	return c->o.retries ? c->o.retries : 4;
}

/* A request without a body to stream, repeated on what may be repeated;
 * an HTTP status other than ok1 or ok2 (0: none) is an error. */
static int call(oci *c, const struct req *q, struct resp *rs, long ok1, long ok2)
{
	int r;

	for (unsigned a = 0;; a++) {
		r = request(c, q, rs);
		if (!retryable(r, rs) || a >= max_retries(c))
			break;
		backoff(c, a);
	}
	if (r == 0 && rs->status != ok1 && rs->status != ok2)
		r = status_err(c, q, rs);
	return r;
}

static char *mkurl(const oci *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *mkurl(const oci *c, const char *fmt, ...)
{
	va_list ap;
	char *tail = NULL, *url = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&tail, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&url, "%s%s", c->base, tail) < 0)
		url = NULL;
	free(tail);
	return url;
}

int oci_ping(oci *c)
{
	struct resp rs = {0};
	_cleanup_free_ char *url = mkurl(c, "/v2/");
	int r;

	if (!url)
		return -ENOMEM;
	r = call(c, &(struct req){"GET", url}, &rs, 200, 0);
	resp_clear(&rs);
	return r;
}

int oci_blob_head(oci *c, const char *repo, const char *digest, bool *exists, uint64_t *size)
{
	struct resp rs = {0};
	_cleanup_free_ char *url = mkurl(c, "/v2/%s/blobs/%s", repo, digest);
	int r;

	if (!url)
		return -ENOMEM;
	r = call(c, &(struct req){"HEAD", url}, &rs, 200, 404);
	*exists = r == 0 && rs.status == 200;
	if (size)
		*size = rs.has_clen ? rs.clen : 0;
	resp_clear(&rs);
	return r;
}

/* "bytes a-b/total" of a 206: its start must be the offset asked for. */
static bool range_starts_at(const struct resp *rs, uint64_t off)
{
	const char *p = rs->crange;

	if (!p || strncmp(p, "bytes ", 6) != 0)
		return false;
	return strtoull(p + 6, NULL, 10) == off;
}

int oci_blob_get(oci *c, const char *repo, const char *digest, uint64_t offset, oci_sink sink,
		 void *arg, uint64_t *got)
{
	struct resp rs = {.sink = sink, .arg = arg};
	_cleanup_free_ char *url = mkurl(c, "/v2/%s/blobs/%s", repo, digest);
	uint64_t pos = offset, start;
	unsigned fails = 0;
	int r;

	*got = 0;
	if (!url)
		return -ENOMEM;
	for (;;) {
		char range[64];
		struct req q = {"GET", url, {pos ? range : NULL}};
		snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)pos);
		start = rs.range_from = pos;
		r = request(c, &q, &rs);
		pos += rs.delivered;
		*got += rs.delivered;
		c->st.received += rs.delivered;
		if (r == 0 && rs.status != 200 && rs.status != 206) {
			r = status_err(c, &q, &rs);
			if (rs.status == 416)
				r = -EPROTO;
		} else if (r == 0 && rs.status == 206 && !range_starts_at(&rs, start)) {
			seterr(c, "GET %s answered a range that does not start at %llu", url,
			       (unsigned long long)pos);
			r = -EPROTO;
		}
		if (rs.delivered) /* progress: the retry budget is per stall */
			fails = 0;
		if (!retryable(r, &rs) || fails >= max_retries(c))
			break;
		backoff(c, fails++);
	}
	resp_clear(&rs);
	return r;
}

/* The upload's next URL from a Location header (absolute or a path). */
static int take_location(oci *c, struct resp *rs, char **loc, const char *what)
{
	if (!rs->location || !*rs->location) {
		seterr(c, "%s answered without a Location header", what);
		return -EPROTO;
	}
	free(*loc);
	if (rs->location[0] == '/')
		*loc = mkurl(c, "%s", rs->location);
	else
		*loc = strdup(rs->location);
	return *loc ? 0 : -ENOMEM;
}

/* Where a broken upload stands: GET its URL, "Range: 0-N" -> N + 1. */
static int upload_status(oci *c, char **loc, uint64_t *next)
{
	struct resp rs = {0};
	int r = call(c, &(struct req){"GET", *loc}, &rs, 204, 0);

	if (r == 0 && (r = take_location(c, &rs, loc, "the upload status")) == 0) {
		const char *dash = rs.range ? strchr(rs.range, '-') : NULL;
		*next = dash ? strtoull(dash + 1, NULL, 10) + 1 : 0;
		if (rs.range && strcmp(rs.range, "0-0") == 0)
			*next = 0; /* nothing yet (or exactly one byte: sent again, harmless) */
	}
	resp_clear(&rs);
	return r;
}

static int upload_start(oci *c, const char *repo, char **loc)
{
	struct resp rs = {0};
	_cleanup_free_ char *url = mkurl(c, "/v2/%s/blobs/uploads/", repo);
	int r;

	if (!url)
		return -ENOMEM;
	r = call(c, &(struct req){"POST", url}, &rs, 202, 0);
	if (r == 0)
		r = take_location(c, &rs, loc, "POST of an upload");
	resp_clear(&rs);
	return r;
}

/* One PATCH of buf at off; 0 and the next Location on success. */
static int upload_chunk(oci *c, char **loc, const void *buf, size_t len, uint64_t off)
{
	struct resp rs = {0};
	char cr[96];
	struct req q = {
		"PATCH", *loc, {"Content-Type: application/octet-stream", cr, "Expect:"}, buf, len};
	int r;

	snprintf(cr, sizeof(cr), "Content-Range: %llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	r = request(c, &q, &rs);
	if (r == 0 && rs.status != 202)
		r = status_err(c, &q, &rs);
	if (r == 0)
		r = take_location(c, &rs, loc, "PATCH of an upload");
	if (r == 0)
		c->st.sent += len;
	resp_clear(&rs);
	return r;
}

static int upload_finish(oci *c, const char *loc, const char *digest)
{
	struct resp rs = {0};
	_cleanup_free_ char *url = NULL;
	int r;

	if (asprintf(&url, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest) < 0)
		return -ENOMEM;
	r = call(c, &(struct req){"PUT", url}, &rs, 201, 0);
	resp_clear(&rs);
	return r;
}

static int read_full(oci_source src, void *arg, uint64_t off, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = src(arg, off + done, buf + done, len - done);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* POST ?mount=digest&from=repo: 1 when the registry linked the blob (201),
 * 0 with an upload session in *loc when it would not (202). */
static int upload_mount(oci *c, const char *repo, const char *digest, const char *from, char **loc)
{
	struct resp rs = {0};
	_cleanup_free_ char *url =
		mkurl(c, "/v2/%s/blobs/uploads/?mount=%s&from=%s", repo, digest, from);
	int r;

	if (!url)
		return -ENOMEM;
	r = call(c, &(struct req){"POST", url}, &rs, 201, 202);
	if (r == 0 && rs.status == 202)
		r = take_location(c, &rs, loc, "POST of an upload");
	else if (r == 0)
		r = 1;
	resp_clear(&rs);
	return r;
}

int oci_blob_upload(oci *c, const char *repo, const char *digest, uint64_t size, oci_source src,
		    void *arg)
{
	return oci_blob_upload_from(c, repo, digest, size, src, arg, NULL, NULL);
}

int oci_blob_upload_from(oci *c, const char *repo, const char *digest, uint64_t size,
			 oci_source src, void *arg, const char *from, bool *mounted)
{
	_cleanup_free_ char *loc = NULL, *buf = NULL;
	uint64_t off = 0, high = 0;
	unsigned fails = 0;
	int r;

	if (mounted)
		*mounted = false;
	if (from && (r = upload_mount(c, repo, digest, from, &loc)) != 0) {
		if (r == 1 && mounted)
			*mounted = true;
		return r == 1 ? 0 : r;
	}
	if (size && !(buf = malloc(size < c->o.chunk ? size : c->o.chunk)))
		return -ENOMEM;
	if (!loc && (r = upload_start(c, repo, &loc)) < 0)
		return r;
	while (off < size) {
		size_t len = size - off < c->o.chunk ? (size_t)(size - off) : (size_t)c->o.chunk;
		if ((r = read_full(src, arg, off, buf, len)) < 0) {
			seterr(c, "reading the bytes of %s failed (%s)", digest, strerror(-r));
			return r;
		}
		r = upload_chunk(c, &loc, buf, len, off);
		if (r == 0) {
			off += len;
			if (off > high) /* new ground: the retry budget is per stall */
				high = off, fails = 0;
			continue;
		}
		if (r != -ETIMEDOUT && r != -ECONNRESET && r != -EIO && r != -ECONNREFUSED)
			return r;
		if (fails >= max_retries(c))
			return r;
		backoff(c, fails++);
		/* Where the registry stands.  Docker Distribution drops a session
		 * whose PATCH broke off mid-body ("blob upload invalid"): then start
		 * a new one from 0. */
		if (upload_status(c, &loc, &off) < 0) {
			if ((r = upload_start(c, repo, &loc)) < 0)
				return r;
			off = 0;
		}
	}
	r = upload_finish(c, loc, digest);
	if (r < 0 && r != -EACCES && r != -EPROTO) {
		/* A PUT whose answer was lost and then retried finds its session
		 * closed (404): the blob is there if the first PUT went through. */
		bool exists = false;
		uint64_t have = 0;
		char keep[sizeof(c->err)];
		memcpy(keep, c->err, sizeof(keep));
		if (oci_blob_head(c, repo, digest, &exists, &have) == 0 && exists && have == size)
			return 0;
		memcpy(c->err, keep, sizeof(keep));
	}
	return r;
}

int oci_manifest_get(oci *c, const char *repo, const char *ref, const char *accept, char **body,
		     size_t *len, char **media_type)
{
	struct resp rs = {.max = OCI_MANIFEST_MAX};
	_cleanup_free_ char *url = mkurl(c, "/v2/%s/manifests/%s", repo, ref);
	_cleanup_free_ char *acc = NULL;
	int r;

	if (!url || asprintf(&acc, "Accept: %s", accept) < 0)
		return -ENOMEM;
	r = call(c, &(struct req){"GET", url, {acc}}, &rs, 200, 0);
	if (rs.overflow) { /* the transfer was cut: r is not 0 */
		seterr(c, "GET %s: the manifest is larger than %u bytes", url, OCI_MANIFEST_MAX);
		r = -EFBIG;
	}
	if (r == 0) {
		*body = rs.body ? rs.body : strdup("");
		*len = rs.len;
		rs.body = NULL;
		if (media_type) {
			*media_type = rs.ctype;
			rs.ctype = NULL;
		}
	}
	resp_clear(&rs);
	return r;
}

int oci_manifest_put(oci *c, const char *repo, const char *ref, const char *body, size_t len,
		     const char *media_type)
{
	struct resp rs = {0};
	_cleanup_free_ char *url = mkurl(c, "/v2/%s/manifests/%s", repo, ref);
	_cleanup_free_ char *ct = NULL;
	int r;

	if (!url || asprintf(&ct, "Content-Type: %s", media_type) < 0)
		return -ENOMEM;
	r = call(c, &(struct req){"PUT", url, {ct, "Expect:"}, body, len}, &rs, 201, 0);
	resp_clear(&rs);
	return r;
}
