/* The access log (see accesslog.h). The rings (core/spsc.h) are byte
 * streams of whole lines: the worker publishes a line only whole, and the
 * control thread moves whole lines only into its pending buffer, so lines
 * of different workers never mix, and a write the file takes in part
 * resumes where it stopped. */
#include "gateway/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/spsc.h"
#include "metrics/registry.h"

#define PENDING_BYTES (1u << 20)
#define LINE_BYTES 16384
/* Client-supplied values are cut to these many bytes before escaping,
 * so a line always fits LINE_BYTES (escaping at most sextuples). */
#define MAX_PATH 1024
#define MAX_ID 128
#define MAX_NAME 256
#define MAX_REASON 512
#define MAX_SHORT 64
#define WARN_EVERY_NS (60ull * 1000000000u)

struct ig_alog_ring {
	struct ig_spsc q; /* the worker produces, the control thread consumes */
	enum ig_alog_format fmt;
	struct ig_series *dropped;
	/* The worker's cache of the current second as text. */
	time_t sec;
	char sec_text[20];
};

struct ig_access_log {
	char *path; /* NULL: standard output */
	enum ig_alog_format fmt;
	int fd;
	bool sock; /* a socket: send(MSG_DONTWAIT), no flag on a shared file */
	struct ig_alog_ring *rings;
	size_t nrings;
	char *pending;
	size_t plen, poff;
	struct ig_series *dropped;
	uint64_t warned_ns;
	double warned_count;
};

/* ---- formatting (worker) ---- */

struct out {
	char *p, *end;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > (size_t)(o->end - o->p))
		n = (size_t)(o->end - o->p);
	if (n) /* an empty value may have no pointer */
		memcpy(o->p, s, n);
	o->p += n;
}

static void put_c(struct out *o, char c)
{
	if (o->p < o->end)
		*o->p++ = c;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
	char d[24], *e = d + sizeof d, *s = e;
	do {
		*--s = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, s, (size_t)(e - s));
}

static void put_long(struct out *o, long v)
{
	if (v < 0) {
		put_c(o, '-');
		put_u64(o, (uint64_t) - (v + 1) + 1);
		return;
	}
	put_u64(o, (uint64_t)v);
}

/* Milliseconds with three decimals (microseconds). */
static void put_ms(struct out *o, uint64_t ns)
{
	uint64_t us = ns / 1000;
	put_u64(o, us / 1000);
	char f[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
		     (char)('0' + us % 10)};
	put(o, f, 4);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
	if (c > 0xf4 || len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
		return 0;
	return len;
}

/* The bytes of s (at most max) as the inside of a JSON string: quotes,
 * backslashes and control bytes escaped, invalid UTF-8 as U+FFFD. The
 * same text is a valid quoted logfmt value. */
static void put_escaped(struct out *o, struct ig_str s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t n = s.len < max ? s.len : max;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		put(o, (const char *)p + i, run - i);
		if ((i = run) >= n)
			break;
		unsigned c = p[i];
		if (c >= 0x80) {
			size_t len = utf8_len(p + i, n - i);
			if (len)
				put(o, (const char *)p + i, len);
			else
				PUT_LIT(o, "\\ufffd");
			i += len ? len : 1;
			continue;
		}
		char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		if (c == '"' || c == '\\')
			put(o, (char[]){'\\', (char)c}, 2);
		else if (c == '\n')
			PUT_LIT(o, "\\n");
		else if (c == '\t')
			PUT_LIT(o, "\\t");
		else if (c == '\r')
			PUT_LIT(o, "\\r");
		else
			put(o, e, 6);
		i++;
	}
}

/* RFC 3339 in UTC with milliseconds; the date and time of the second are
 * formatted once per second. */
static void put_time(struct out *o, struct ig_alog_ring *r)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != r->sec || !r->sec_text[0]) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(r->sec_text, sizeof r->sec_text, "%Y-%m-%dT%H:%M:%S", &tm);
		r->sec = ts.tv_sec;
	}
	put(o, r->sec_text, strlen(r->sec_text));
	long ms = ts.tv_nsec / 1000000;
	char f[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
		     'Z'};
	put(o, f, 5);
}

/* A field: `"key":` in JSON, ` key=` in text. */
static void key(struct out *o, bool json, const char *k)
{
	if (json) {
		put(o, ",\"", 2);
		put(o, k, strlen(k));
		put(o, "\":", 2);
	} else {
		put_c(o, ' ');
		put(o, k, strlen(k));
		put_c(o, '=');
	}
}

/* A string value: always quoted in JSON; in text bare when that reads the
 * same (no space, quote, '=' or byte to escape), else quoted. */
static void str_field(struct out *o, bool json, const char *k, struct ig_str v, size_t max)
{
	key(o, json, k);
	bool bare = !json && v.len && v.len <= max;
	for (size_t i = 0; bare && i < v.len; i++) {
		unsigned char c = (unsigned char)v.ptr[i];
		bare = c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\';
	}
	if (bare) {
		put(o, v.ptr, v.len);
		return;
	}
	put_c(o, '"');
	put_escaped(o, v, max);
	put_c(o, '"');
}

static void format_line(struct ig_alog_ring *r, const struct ig_alog_entry *e, struct out *o)
{
	bool json = r->fmt == IG_ALOG_JSON;
	if (json)
		PUT_LIT(o, "{\"time\":\"");
	else
		PUT_LIT(o, "time=");
	put_time(o, r);
	if (json)
		put_c(o, '"');
	str_field(o, json, "request_id", e->request_id, MAX_ID);
	str_field(o, json, "client", e->client, MAX_SHORT);
	str_field(o, json, "method", e->method, MAX_SHORT);
	str_field(o, json, "path", e->path, MAX_PATH);
	str_field(o, json, "protocol", e->protocol, MAX_SHORT);
	key(o, json, "status");
	put_long(o, e->status);
	str_field(o, json, "model", e->model, MAX_NAME);
	str_field(o, json, "target_model", e->target, MAX_NAME);
	str_field(o, json, "pool", e->pool, MAX_NAME);
	str_field(o, json, "endpoint", e->endpoint, MAX_SHORT);
	key(o, json, "queue_ms");
	put_ms(o, e->queue_ns);
	key(o, json, "ttft_ms");
	if (e->ttft_ns)
		put_ms(o, e->ttft_ns);
	else if (json)
		PUT_LIT(o, "null");
	else
		put_c(o, '-');
	key(o, json, "duration_ms");
	put_ms(o, e->duration_ns);
	key(o, json, "prompt_tokens");
	put_long(o, e->prompt_tokens);
	key(o, json, "completion_tokens");
	put_long(o, e->completion_tokens);
	key(o, json, "bytes_in");
	put_u64(o, e->bytes_in);
	key(o, json, "bytes_out");
	put_u64(o, e->bytes_out);
	key(o, json, "attempts");
	put_long(o, e->attempts);
	str_field(o, json, "reason", e->reason, MAX_REASON);
	if (e->has_grpc_status) {
		key(o, json, "grpc_status");
		put_long(o, e->grpc_status);
	}
	if (json)
		put_c(o, '}');
	put_c(o, '\n');
}

void ig_alog_write(struct ig_alog_ring *r, const struct ig_alog_entry *e)
{
	char line[LINE_BYTES];
	struct out o = {line, line + sizeof line};
	format_line(r, e, &o);
	size_t len = (size_t)(o.p - line);
	if (line[len - 1] != '\n') /* cannot happen with the field limits */
		line[len - 1] = '\n';
	if (!ig_spsc_put(&r->q, line, len) && r->dropped)
		ig_counter_add(r->dropped, 1);
}

/* ---- writing (control thread) ---- */

static size_t count_lines(const char *s, size_t n)
{
	size_t k = 0;
	for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++)
		k++;
	return k;
}

static void drop(struct ig_access_log *l, size_t lines, int err)
{
	if (!lines)
		return;
	if (l->dropped)
		ig_counter_add(l->dropped, (double)lines);
	uint64_t now = ig_now_ns();
	if (!l->warned_ns || now - l->warned_ns >= WARN_EVERY_NS) {
		l->warned_ns = now;
		ig_warn("access log %s: %s; lines dropped (infergate_access_log_dropped_total)",
			l->path ? l->path : "(stdout)", strerror(err));
	}
}

/* Whole lines of a ring into the pending buffer, as many as fit. */
static void take_ring(struct ig_access_log *l, struct ig_alog_ring *r)
{
	char *dst = l->pending + l->plen;
	size_t n = ig_spsc_readable(&r->q), room = PENDING_BYTES - l->plen;
	if (n > room) {
		/* What fits, kept up to its last line end. */
		ig_spsc_read(&r->q, 0, dst, room);
		const char *nl = room ? memrchr(dst, '\n', room) : NULL;
		n = nl ? (size_t)(nl - dst) + 1 : 0;
	} else {
		ig_spsc_read(&r->q, 0, dst, n);
	}
	if (!n)
		return;
	l->plen += n;
	ig_spsc_consume(&r->q, n);
}

/* Writes what the file takes without waiting. A full pipe keeps the rest
 * for the next flush; any other failure (a full disk, a reader gone)
 * drops what is pending. Returns whether everything was written. */
static bool write_pending(struct ig_access_log *l)
{
	while (l->poff < l->plen) {
		const char *p = l->pending + l->poff;
		size_t len = l->plen - l->poff;
		ssize_t n = l->sock ? send(l->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL)
				    : write(l->fd, p, len);
		if (n > 0) {
			l->poff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		drop(l, count_lines(p, len), n < 0 ? errno : EIO);
		l->poff = l->plen;
	}
	if (l->poff == l->plen) {
		l->poff = l->plen = 0;
		return true;
	}
	if (l->poff > PENDING_BYTES / 2) {
		memmove(l->pending, l->pending + l->poff, l->plen - l->poff);
		l->plen -= l->poff;
		l->poff = 0;
	}
	return false;
}

void ig_access_log_flush(struct ig_access_log *l)
{
	if (!l)
		return;
	/* A few rounds: the rings may hold more than the pending buffer. */
	for (int round = 0; round < 8; round++) {
		for (size_t i = 0; i < l->nrings; i++)
			take_ring(l, &l->rings[i]);
		if (!l->plen || !write_pending(l))
			return;
	}
}

/* ---- opening ---- */

static int open_path(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
}

/* Standard output, without ever blocking on it. A regular file never
 * blocks; a socket is written with MSG_DONTWAIT. A pipe or a terminal is
 * opened again through /proc: a file description of our own, so its
 * O_NONBLOCK does not change the one stdout shares with the shell (or with
 * stderr after 2>&1). Failing that, the flag goes on the shared one. */
static int open_stdout(bool *sock)
{
	struct stat st;
	*sock = false;
	if (fstat(STDOUT_FILENO, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) {
		*sock = S_ISSOCK(st.st_mode);
		return fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	}
	int fd = open("/proc/self/fd/1", O_WRONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

struct ig_access_log *ig_access_log_open(const char *path, enum ig_alog_format fmt, size_t nrings,
					 struct ig_series *dropped)
{
	struct ig_access_log *l = calloc(1, sizeof *l);
	if (!l)
		goto fail_mem;
	l->fd = -1;
	l->fmt = fmt;
	l->dropped = dropped;
	l->pending = malloc(PENDING_BYTES);
	/* Aligned for the ring's cache-line-aligned counters. */
	size_t nalloc = nrings ? nrings : 1;
	l->rings = aligned_alloc(_Alignof(struct ig_alog_ring), nalloc * sizeof *l->rings);
	if (!l->pending || !l->rings)
		goto fail_mem;
	memset(l->rings, 0, nalloc * sizeof *l->rings);
	l->nrings = nrings;
	for (size_t i = 0; i < nrings; i++) {
		struct ig_alog_ring *r = &l->rings[i];
		r->fmt = fmt;
		r->dropped = dropped;
		if (ig_spsc_init(&r->q, IG_ALOG_RING_BYTES) < 0)
			goto fail_mem;
	}
	if (strcmp(path, "-") == 0) {
		l->fd = open_stdout(&l->sock);
	} else {
		if (!(l->path = strdup(path)))
			goto fail_mem;
		l->fd = open_path(path);
	}
	if (l->fd < 0) {
		ig_err("access log %s: %s", l->path ? l->path : "(stdout)", strerror(errno));
		ig_access_log_close(l);
		return NULL;
	}
	return l;
fail_mem:
	ig_err("access log: out of memory");
	ig_access_log_close(l);
	return NULL;
}

struct ig_alog_ring *ig_access_log_ring(struct ig_access_log *l, size_t i)
{
	return l && i < l->nrings ? &l->rings[i] : NULL;
}

void ig_access_log_reopen(struct ig_access_log *l)
{
	if (!l || !l->path)
		return; /* standard output is not reopened */
	ig_access_log_flush(l);
	int fd = open_path(l->path);
	if (fd < 0) {
		ig_err("access log %s: reopen: %s; writing on to the old file", l->path,
		       strerror(errno));
		return;
	}
	close(l->fd);
	l->fd = fd;
	ig_info("access log %s reopened", l->path);
}

void ig_access_log_close(struct ig_access_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0) {
		ig_access_log_flush(l);
		/* What the file still refuses now is lost: what is pending,
		 * then the lines left in the rings, moved out through the
		 * pending buffer to be counted. */
		size_t lost = count_lines(l->pending + l->poff, l->plen - l->poff);
		for (size_t i = 0; i < l->nrings; i++) {
			do {
				l->plen = l->poff = 0;
				take_ring(l, &l->rings[i]);
				lost += count_lines(l->pending, l->plen);
			} while (l->plen);
		}
		drop(l, lost, EAGAIN);
		close(l->fd);
	}
	for (size_t i = 0; l->rings && i < l->nrings; i++)
		ig_spsc_free(&l->rings[i].q);
	free(l->rings);
	free(l->pending);
	free(l->path);
	free(l);
}
