/* The splitter behind http/sse.h. The common case, a piece holding whole
 * lines, costs one memchr per line and no copy; only a line that straddles
 * two pieces goes through s->line. */
#include "http/sse.h"

#include <errno.h>
#include <string.h>

void ig_sse_init(struct ig_sse *s, size_t max_line, unsigned flags)
{
	memset(s, 0, sizeof *s);
	s->max_line = max_line;
	s->flags = flags;
	/* keep_cut_line() and finish_cut_line() check the ceiling before they
	 * append (a zeroed splitter has none on its buffer); this is a
	 * backstop. */
	ig_buf_init(&s->line, (max_line ? max_line : IG_SSE_DEFAULT_MAX_LINE) + 1);
}

void ig_sse_free(struct ig_sse *s)
{
	ig_buf_free(&s->line);
	s->skipping = false;
}

static size_t max_line(const struct ig_sse *s)
{
	return s->max_line ? s->max_line : IG_SSE_DEFAULT_MAX_LINE;
}

/* One complete line, its line end removed. */
static int line(struct ig_sse *s, const char *p, size_t len, ig_sse_cb cb, void *ud)
{
	if (!s->started) {
		s->started = true;
		if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
			p += 3;
			len -= 3;
		}
	}
	if (len < 4 || memcmp(p, "data", 4) != 0)
		return 0;
	if (len == 4)
		return cb(ud, p + 4, 0);
	if (p[4] != ':')
		return 0; /* another field whose name starts with "data" */
	p += 5;
	len -= 5;
	if (len && *p == ' ') {
		p++;
		len--;
	}
	return cb(ud, p, len);
}

static int overlong(struct ig_sse *s)
{
	s->started = true; /* a BOM on the next line is not at the start */
	s->dropped++;
	ig_buf_reset(&s->line);
	return s->flags & IG_SSE_STRICT ? -ENOBUFS : 0;
}

/* The end of a line that started in an earlier piece: [p, p + n) followed
 * by a LF. Hands the whole line to line() or drops it. */
static int finish_cut_line(struct ig_sse *s, const char *p, size_t n, ig_sse_cb cb, void *ud)
{
	size_t max = max_line(s);

	if (s->line.len + n > max + 1)
		return overlong(s);

	int rc = ig_buf_append(&s->line, p, n);

	if (rc < 0)
		return rc;

	size_t len = s->line.len;

	if (s->line.ptr[len - 1] == '\r')
		len--;
	rc = len > max ? overlong(s) : line(s, s->line.ptr, len, cb, ud);
	ig_buf_reset(&s->line);
	return rc;
}

/* Keeps the start of a line cut by the end of the piece, while it may
 * still turn out short enough (max_line bytes and a CR). */
static int keep_cut_line(struct ig_sse *s, const char *p, size_t n)
{
	if (s->line.len + n > max_line(s) + 1) {
		s->skipping = true;
		return overlong(s);
	}
	return ig_buf_append(&s->line, p, n);
}

int ig_sse_feed(struct ig_sse *s, const char *p, size_t len, ig_sse_cb cb, void *ud)
{
	const char *end = p + len;
	int rc = 0;

	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (s->skipping) {
			s->skipping = nl == NULL;
		} else if (!nl) {
			rc = keep_cut_line(s, p, n);
		} else if (s->line.len) {
			rc = finish_cut_line(s, p, n, cb, ud);
		} else {
			size_t l = n && p[n - 1] == '\r' ? n - 1 : n;
			rc = l > max_line(s) ? overlong(s) : line(s, p, l, cb, ud);
		}
		p = nl ? nl + 1 : end;
	}
	return rc;
}

bool ig_sse_media_type(struct ig_str v)
{
	if (v.len < 17) /* application/json, at once */
		return false;
	v = ig_str_trim(v);
	const char *semi = memchr(v.ptr, ';', v.len);
	if (semi)
		v.len = (size_t)(semi - v.ptr);
	return ig_str_ieq(ig_str_trim(v), IG_STR("text/event-stream"));
}
