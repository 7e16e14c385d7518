/* HTTP/1.x head parser and body framing rules. The head parser is
 * stateless: it either finds a complete, well-formed head in the buffer or
 * says why not, so the connection code simply calls it again when more
 * bytes arrive. It is strict on purpose, because a gateway that accepts
 * what its upstream reads differently is a request-smuggling vector. */
#include "http/parse.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Character classes. Token characters (RFC 9110 §5.6.2: ALPHA, DIGIT and
 * "!#$%&'*+-.^_`|~") as a table, one load a byte of a header name; the
 * other classes are ranges. */
static const bool tchar_table[256] = {
    ['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true, ['!'] = true,  ['#'] = true,
    ['$'] = true,	  ['%'] = true,		['&'] = true,	      ['\''] = true, ['*'] = true,
    ['+'] = true,	  ['-'] = true,		['.'] = true,	      ['^'] = true,  ['_'] = true,
    ['`'] = true,	  ['|'] = true,		['~'] = true,
};

enum {
	C_TCHAR,  /* token character */
	C_VALUE,  /* field-value byte: VCHAR, SP, HT or obs-text */
	C_TARGET, /* request-target byte: VCHAR */
};

static inline bool is_class(char ch, int cls)
{
	unsigned char c = (unsigned char)ch;

	switch (cls) {
	case C_TCHAR:
		return tchar_table[c];
	case C_VALUE:
		return (c >= 0x20 && c != 0x7f) || c == '\t';
	default:
		return c > 0x20 && c < 0x7f;
	}
}

bool ig_http_is_tchar(unsigned char c)
{
	return is_class((char)c, C_TCHAR);
}

/* A cursor over the input; every reader checks `p < end` and reports
 * IG_HTTP_INCOMPLETE when it runs out, so any prefix of a valid head is
 * "incomplete" and never "invalid". */
struct cursor {
	const char *p;
	const char *end;
};

/* Reads a token (at least one tchar). Stops at the first other byte. */
static int read_token(struct cursor *c, struct ig_str *out)
{
	const char *start = c->p, *p = start, *end = c->end;

	while (p < end && is_class(*p, C_TCHAR))
		p++;
	c->p = p;
	if (p == end)
		return IG_HTTP_INCOMPLETE;
	if (p == start)
		return IG_HTTP_INVALID;
	*out = (struct ig_str){start, (size_t)(p - start)};
	return 0;
}

static int expect_char(struct cursor *c, char ch)
{
	if (c->p == c->end)
		return IG_HTTP_INCOMPLETE;
	if (*c->p != ch)
		return IG_HTTP_INVALID;
	c->p++;
	return 0;
}

/* A line end is CRLF. A lone LF or a CR followed by anything else is
 * rejected: bare CR is a known smuggling trick. */
static int expect_crlf(struct cursor *c)
{
	int rc = expect_char(c, '\r');

	return rc ? rc : expect_char(c, '\n');
}

static int read_digit(struct cursor *c, int *out)
{
	if (c->p == c->end)
		return IG_HTTP_INCOMPLETE;
	if (*c->p < '0' || *c->p > '9')
		return IG_HTTP_INVALID;
	*out = *c->p++ - '0';
	return 0;
}

/* HTTP-version is "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3). A later 1.x
 * is spoken as HTTP/1.1, the highest minor version we conform to (RFC
 * 9110 §6.2), so *minor is 0 or 1; another major version is left to the
 * caller to refuse. */
static int read_version(struct cursor *c, int *major, int *minor)
{
	static const char prefix[] = "HTTP/";

	for (size_t i = 0; i < sizeof(prefix) - 1; i++) {
		int rc = expect_char(c, prefix[i]);
		if (rc)
			return rc;
	}
	int rc = read_digit(c, major);

	if (!rc)
		rc = expect_char(c, '.');
	if (!rc)
		rc = read_digit(c, minor);
	if (!rc && *minor > 1)
		*minor = 1;
	return rc;
}

/* Past the field-value bytes at p, sixteen at a time: to the first byte
 * below 0x20 (a tab, which the byte loop takes, or the CR) or DEL. */
static const char *skip_value_bytes(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i below = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop =
		    _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, below), v), _mm_cmpeq_epi8(v, del));
		unsigned mask = (unsigned)_mm_movemask_epi8(stop);
		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
	(void)end;
	return p;
}

/* Bytes of class `mask` up to a CR, then CRLF. Leading blanks are skipped
 * and trailing ones cut, which is what header values want. */
static int read_line_rest(struct cursor *c, int mask, struct ig_str *out)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;

	const char *start = c->p;

	if (mask == C_VALUE)
		c->p = skip_value_bytes(c->p, c->end);
	while (c->p < c->end && is_class(*c->p, mask))
		c->p++;
	if (c->p == c->end)
		return IG_HTTP_INCOMPLETE;

	const char *stop = c->p;
	int rc = expect_crlf(c);

	if (rc)
		return rc;
	while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
		stop--;
	*out = (struct ig_str){start, (size_t)(stop - start)};
	return 0;
}

/* Header fields up to and including the blank line. Returns the offset of
 * the end of the head from `base`. */
static int read_headers(struct cursor *c, const char *base, struct ig_http_header *headers,
			size_t max_headers, size_t *num)
{
	*num = 0;
	for (;;) {
		if (c->p == c->end)
			return IG_HTTP_INCOMPLETE;
		if (*c->p == '\r') {
			int rc = expect_crlf(c);
			if (rc)
				return rc;
			return (int)(c->p - base);
		}
		/* A line starting with a blank is obsolete line folding (or
		 * whitespace before the first field): rejected, RFC 9112 §5.2. */
		if (!is_class(*c->p, C_TCHAR))
			return IG_HTTP_INVALID;
		if (*num == max_headers)
			return IG_HTTP_TOO_MANY_HEADERS;

		struct ig_http_header *h = &headers[*num];
		int rc = read_token(c, &h->name);

		if (!rc)
			rc = expect_char(c, ':');
		if (!rc)
			rc = read_line_rest(c, C_VALUE, &h->value);
		if (rc)
			return rc;
		(*num)++;
	}
}

/* The head must fit an int return value; larger buffers are only scanned
 * up to that size, which makes an oversized head "incomplete" and leaves
 * the ceiling to the caller's buffer. */
static size_t clamp_len(size_t len)
{
	return len > 0x7fffffff ? 0x7fffffff : len;
}

int ig_http_parse_fields(const char *buf, size_t len, struct ig_http_header *headers,
			 size_t max_headers)
{
	struct cursor c = {buf, buf + clamp_len(len)};
	size_t n;
	int rc = read_headers(&c, buf, headers, max_headers, &n);
	return rc < 0 ? rc : (int)n;
}

static int parse_request_line(struct cursor *c, struct ig_http_request *req)
{
	int rc = read_token(c, &req->method);

	if (!rc)
		rc = expect_char(c, ' ');
	if (rc)
		return rc;

	const char *start = c->p;

	while (c->p < c->end && is_class(*c->p, C_TARGET))
		c->p++;
	if (c->p == c->end)
		return IG_HTTP_INCOMPLETE;
	if (c->p == start)
		return IG_HTTP_INVALID;
	req->target = (struct ig_str){start, (size_t)(c->p - start)};

	int major = 1;
	rc = expect_char(c, ' ');
	if (!rc)
		rc = read_version(c, &major, &req->minor_version);
	if (!rc)
		rc = expect_crlf(c);
	/* HTTP/2.0 or 3.0 in an HTTP/1 request line: a well-formed line of
	 * a version this parser does not speak, refused once the line is. */
	if (!rc && major != 1)
		return IG_HTTP_BAD_VERSION;
	return rc;
}

static void split_target(struct ig_http_request *req)
{
	const char *q = memchr(req->target.ptr, '?', req->target.len);

	req->path = req->target;
	req->query = (struct ig_str){req->target.ptr + req->target.len, 0};
	if (q) {
		req->path.len = (size_t)(q - req->target.ptr);
		req->query = (struct ig_str){q + 1, req->target.len - req->path.len - 1};
	}
}

int ig_http_parse_request(const char *buf, size_t len, struct ig_http_request *req,
			  struct ig_http_header *headers, size_t max_headers)
{
	struct cursor c = {buf, buf + clamp_len(len)};

	memset(req, 0, sizeof(*req));
	req->headers = headers;

	int rc = parse_request_line(&c, req);

	if (rc)
		return rc;
	split_target(req);
	return read_headers(&c, buf, headers, max_headers, &req->num_headers);
}

static int parse_status_line(struct cursor *c, struct ig_http_response *res)
{
	int major = 1;
	int rc = read_version(c, &major, &res->minor_version);

	if (!rc && major != 1)
		return IG_HTTP_INVALID;
	if (!rc)
		rc = expect_char(c, ' ');
	if (rc)
		return rc;

	res->status = 0;
	for (int i = 0; i < 3; i++) {
		if (c->p == c->end)
			return IG_HTTP_INCOMPLETE;
		if (*c->p < '0' || *c->p > '9')
			return IG_HTTP_INVALID;
		res->status = res->status * 10 + (*c->p++ - '0');
	}
	/* RFC 9110 §15: a status code is of 100 to 599; 600 or 999 is not
	 * one a client could be given. */
	if (res->status < 100 || res->status > 599)
		return IG_HTTP_INVALID;
	if (c->p == c->end)
		return IG_HTTP_INCOMPLETE;
	/* The reason phrase is optional; some servers drop the space before
	 * an empty one too, which is harmless to accept. */
	if (*c->p == ' ')
		c->p++;
	else if (*c->p != '\r')
		return IG_HTTP_INVALID;
	return read_line_rest(c, C_VALUE, &res->reason);
}

int ig_http_parse_response(const char *buf, size_t len, struct ig_http_response *res,
			   struct ig_http_header *headers, size_t max_headers)
{
	struct cursor c = {buf, buf + clamp_len(len)};

	memset(res, 0, sizeof(*res));
	res->headers = headers;

	int rc = parse_status_line(&c, res);

	if (rc)
		return rc;
	return read_headers(&c, buf, headers, max_headers, &res->num_headers);
}

/* ---- path normalization ---------------------------------------------- */

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* The byte "%XY" at p[i] stands for when it is an unreserved one, else -1. */
static int unreserved_escape(const char *p, size_t n, size_t i)
{
	if (i + 2 >= n)
		return -1;
	int hi = ig_hex_value((unsigned char)p[i + 1]), lo = ig_hex_value((unsigned char)p[i + 2]);
	if (hi < 0 || lo < 0 || !unreserved((unsigned char)(hi << 4 | lo)))
		return -1;
	return hi << 4 | lo;
}

/* Whether decoding v after out[0..n) would make a new escape ("%%341"
 * becoming "%41"), which a second normalization would decode again: such
 * an escape is kept, so that the normal form is its own normal form. */
static bool forms_escape(const char *out, size_t n, int v)
{
	if (ig_hex_value((unsigned char)v) < 0)
		return false;
	return (n >= 1 && out[n - 1] == '%') ||
	       (n >= 2 && out[n - 2] == '%' && ig_hex_value((unsigned char)out[n - 1]) >= 0);
}

bool ig_http_path_needs_normalizing(struct ig_str path)
{
	const char *p = path.ptr;
	size_t n = path.len;
	/* Most paths have neither an escape, nor a dot, nor a backslash. */
	if (!memchr(p, '%', n) && !memchr(p, '.', n) && !memchr(p, '\\', n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' ||
		    (p[i] == '%' && i + 2 < n && p[i + 1] == '0' && p[i + 2] == '0'))
			return true;
		int v = p[i] == '%' ? unreserved_escape(p, n, i) : -1;
		if (v >= 0 && !forms_escape(p, i, v))
			return true;
		if (p[i] != '.' || i == 0 || p[i - 1] != '/')
			continue;
		size_t j = i + 1 < n && p[i + 1] == '.' ? i + 2 : i + 1; /* "." or ".." */
		if (j == n || p[j] == '/')
			return true;
	}
	return false;
}

ssize_t ig_http_path_normalize(struct ig_str path, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < path.len; i++) {
		char c = path.ptr[i];
		if (c == '%' && i + 2 < path.len && path.ptr[i + 1] == '0' &&
		    path.ptr[i + 2] == '0')
			return -1;
		int v = c == '%' ? unreserved_escape(path.ptr, path.len, i) : -1;
		if (v >= 0 && forms_escape(out, n, v))
			v = -1;
		out[n++] = v >= 0 ? (char)v : c == '\\' ? '/' : c;
		if (v >= 0)
			i += 2;
	}
	/* §5.2.4 over out[0..n) in place: segments are read at i and
	 * written at o <= i. */
	size_t o = 0, i = 0;
	while (i < n) {
		size_t j = i + 1; /* out[i] is a '/' (origin-form) */
		while (j < n && out[j] != '/')
			j++;
		size_t len = j - i - 1;
		bool last = j == n;
		if (len == 1 && out[i + 1] == '.') {
			if (last)
				out[o++] = '/';
		} else if (len == 2 && out[i + 1] == '.' && out[i + 2] == '.') {
			while (o > 0 && out[--o] != '/')
				;
			if (last)
				out[o++] = '/';
		} else {
			memmove(out + o, out + i, len + 1);
			o += len + 1;
		}
		i = j;
	}
	if (o == 0)
		out[o++] = '/';
	return (ssize_t)o;
}

const struct ig_http_header *ig_http_find_header(const struct ig_http_header *h, size_t n,
						 const char *name)
{
	struct ig_str want = ig_str_from(name);

	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq(h[i].name, want))
			return &h[i];
	return NULL;
}

/* ---- framing ---------------------------------------------------------- */

/* What the framing headers of one message say, before the request and
 * response rules are applied. */
struct framing_headers {
	bool has_te;
	bool chunked_last;   /* the final transfer coding is chunked */
	bool other_coding;   /* a transfer coding other than chunked is listed */
	bool unknown_coding; /* ... and it is not a transfer coding at all */
	bool has_cl;
	uint64_t cl;
	bool conn_close;
	bool conn_keep_alive;
	bool expect_continue;
};

/* Walks a comma-separated list, calling `fn` on each trimmed element
 * (empty elements included, so callers can reject them). */
static int for_each_element(struct ig_str list, int (*fn)(struct ig_str, void *), void *arg)
{
	size_t i = 0;

	while (i <= list.len) {
		size_t j = i;
		while (j < list.len && list.ptr[j] != ',')
			j++;
		int rc = fn(ig_str_trim((struct ig_str){list.ptr + i, j - i}), arg);
		if (rc)
			return rc;
		i = j + 1;
	}
	return 0;
}

/* The codings of the HTTP Transfer Coding Registry (RFC 9110 §16.7) but
 * chunked, and "identity" of RFC 2616: codings a peer may well mean, but
 * that we do not implement. */
static bool registered_coding(struct ig_str e)
{
	static const char *const names[] = {"gzip",	"x-gzip",     "deflate",
					    "compress", "x-compress", "identity"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq_cstr(e, names[i]))
			return true;
	return false;
}

/* Transfer codings arrive in order; chunked must be the last one and may
 * appear only once (RFC 9112 §6.1). A coding after chunked cannot be
 * framed at all. Any other coding is noted: the caller refuses it. */
static int te_element(struct ig_str e, void *arg)
{
	struct framing_headers *f = arg;

	if (e.len == 0)
		return 0; /* empty list elements are allowed and ignored */
	if (f->chunked_last)
		return -1;
	if (ig_str_ieq_cstr(e, "chunked")) {
		f->chunked_last = true;
		return 0;
	}
	f->other_coding = true;
	if (!registered_coding(e))
		f->unknown_coding = true;
	return 0;
}

/* Content-Length may be a list of identical values ("5, 5") or repeated
 * in several fields; any disagreement or non-digit is an error. */
static int cl_element(struct ig_str e, void *arg)
{
	struct framing_headers *f = arg;
	uint64_t v;

	if (ig_str_to_u64(e, &v) < 0)
		return -1;
	if (f->has_cl && f->cl != v)
		return -1;
	f->has_cl = true;
	f->cl = v;
	return 0;
}

static int connection_element(struct ig_str e, void *arg)
{
	struct framing_headers *f = arg;

	if (ig_str_ieq_cstr(e, "close"))
		f->conn_close = true;
	else if (ig_str_ieq_cstr(e, "keep-alive"))
		f->conn_keep_alive = true;
	return 0;
}

static int token_element(struct ig_str e, void *arg)
{
	return ig_str_ieq_cstr(e, arg) ? 1 : 0;
}

bool ig_http_has_token(const struct ig_http_header *h, size_t n, const char *name,
		       const char *token)
{
	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq_cstr(h[i].name, name) &&
		    for_each_element(h[i].value, token_element, (void *)token) == 1)
			return true;
	return false;
}

static int name_element(struct ig_str e, void *arg)
{
	return ig_str_ieq(e, *(const struct ig_str *)arg) ? 1 : 0;
}

bool ig_http_connection_names(const struct ig_http_header *h, size_t n, struct ig_str name)
{
	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq_cstr(h[i].name, "connection") &&
		    for_each_element(h[i].value, name_element, &name) == 1)
			return true;
	return false;
}

/* An option other than those whose names are hop-by-hop already. */
static int other_option(struct ig_str e, void *arg)
{
	(void)arg;
	return ig_str_ieq_cstr(e, "close") || ig_str_ieq_cstr(e, "keep-alive") ||
		       ig_str_ieq_cstr(e, "upgrade")
		   ? 0
		   : 1;
}

bool ig_http_connection_nominates(const struct ig_http_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq_cstr(h[i].name, "connection") &&
		    for_each_element(h[i].value, other_option, NULL) == 1)
			return true;
	return false;
}

bool ig_http_is_websocket_upgrade(const struct ig_http_request *r)
{
	return r->minor_version >= 1 && ig_str_eq_cstr(r->method, "GET") &&
	       ig_http_has_token(r->headers, r->num_headers, "connection", "upgrade") &&
	       ig_http_has_token(r->headers, r->num_headers, "upgrade", "websocket");
}

static int scan_framing(const struct ig_http_header *h, size_t n, struct framing_headers *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < n; i++) {
		int rc = 0;

		if (ig_str_ieq_cstr(h[i].name, "transfer-encoding")) {
			if (h[i].value.len == 0)
				return -1;
			f->has_te = true;
			rc = for_each_element(h[i].value, te_element, f);
		} else if (ig_str_ieq_cstr(h[i].name, "content-length")) {
			rc = for_each_element(h[i].value, cl_element, f);
		} else if (ig_str_ieq_cstr(h[i].name, "connection")) {
			rc = for_each_element(h[i].value, connection_element, f);
		} else if (ig_str_ieq_cstr(h[i].name, "expect")) {
			if (ig_str_ieq_cstr(h[i].value, "100-continue"))
				f->expect_continue = true;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive". */
static bool keep_alive(int minor, const struct framing_headers *f)
{
	if (f->conn_close)
		return false;
	return minor >= 1 || f->conn_keep_alive;
}

int ig_http_request_framing(const struct ig_http_request *req, struct ig_http_framing *out)
{
	struct framing_headers f;

	memset(out, 0, sizeof(*out));
	if (scan_framing(req->headers, req->num_headers, &f) < 0)
		return -1;
	/* TE with CL is the classic smuggling shape, and TE in HTTP/1.0 is
	 * faulty framing (RFC 9112 §6.1): both are refused outright, as is
	 * a name that is no transfer coding ("xchunked"). A coding we do
	 * not implement (gzip, with or without a final chunked) is refused
	 * as such (RFC 9112 §6.1: 501), never dropped: the body would reach
	 * the pod still coded. */
	if (f.has_te && (f.has_cl || req->minor_version == 0 || f.unknown_coding))
		return -1;
	if (f.other_coding)
		return IG_HTTP_NOT_IMPLEMENTED;

	if (f.has_te)
		out->kind = IG_BODY_CHUNKED;
	else if (f.has_cl && f.cl > 0)
		out->kind = IG_BODY_LENGTH;
	else
		out->kind = IG_BODY_NONE;
	out->length = f.has_cl ? f.cl : 0;
	out->keep_alive = keep_alive(req->minor_version, &f);
	/* RFC 9110 §10.1.1: a server ignores 100-continue from HTTP/1.0. */
	out->expect_continue = f.expect_continue && req->minor_version >= 1;
	return 0;
}

bool ig_http_bodyless(int status, struct ig_str method)
{
	return ig_str_eq_cstr(method, "HEAD") || status < 200 || status == 204 || status == 304;
}

int ig_http_response_framing(const struct ig_http_response *res, struct ig_str method,
			     struct ig_http_framing *out)
{
	struct framing_headers f;

	memset(out, 0, sizeof(*out));
	if (ig_http_bodyless(res->status, method)) {
		/* Framing headers of a bodiless response describe a body that is
		 * not sent; only the connection tokens matter. */
		struct framing_headers conn = {0};
		for (size_t i = 0; i < res->num_headers; i++)
			if (ig_str_ieq_cstr(res->headers[i].name, "connection"))
				for_each_element(res->headers[i].value, connection_element, &conn);
		out->kind = IG_BODY_NONE;
		out->keep_alive = keep_alive(res->minor_version, &conn);
		return 0;
	}
	if (scan_framing(res->headers, res->num_headers, &f) < 0)
		return -1;
	out->keep_alive = keep_alive(res->minor_version, &f);
	/* A coding other than chunked would reach the client still coded,
	 * without the header that says so: the response is refused, as
	 * nginx refuses "unknown Transfer-Encoding" from its upstream. */
	if (f.other_coding)
		return -1;
	if (f.has_te) {
		/* TE overrides CL, but the pair (or TE from an HTTP/1.0 peer:
		 * faulty framing, RFC 9112 §6.1) means the connection cannot be
		 * trusted for another message. A final chunked is decoded
		 * whatever the version, as Envoy's codec does: read until the
		 * close instead, the chunk lines would reach the client as body
		 * bytes, and a peer that kept the connection open would leave
		 * the response without an end. */
		if (f.has_cl || res->minor_version == 0)
			out->keep_alive = false;
		if (f.chunked_last) {
			out->kind = IG_BODY_CHUNKED;
		} else {
			out->kind = IG_BODY_UNTIL_CLOSE;
			out->keep_alive = false;
		}
	} else if (f.has_cl) {
		out->kind = f.cl ? IG_BODY_LENGTH : IG_BODY_NONE;
		out->length = f.cl;
	} else {
		out->kind = IG_BODY_UNTIL_CLOSE;
		out->keep_alive = false;
	}
	return 0;
}

/* ---- chunked decoding -------------------------------------------------- */

#define CHUNK_LINE_MAX 4096

enum {
	CH_SIZE = 0, /* hex digits of the chunk size */
	CH_SIZE_WS,  /* blanks after the size */
	CH_EXT,	     /* after ';': extensions up to CR */
	CH_SIZE_LF,  /* CR seen at the end of the size line */
	CH_DATA,     /* chunk bytes */
	CH_DATA_CR,  /* CRLF after the chunk data */
	CH_DATA_LF,
	CH_TRAILER, /* start of a trailer line, or the final blank line */
	CH_TRAILER_LINE,
	CH_TRAILER_LF,
	CH_END_LF, /* CR of the final blank line seen */
	CH_DONE,
};

static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* One byte of the size line: hex digits, optional blanks, then either CR
 * or ';' and extensions. Extensions are skipped without being parsed;
 * only bytes that can never appear in one are refused. */
static int size_byte(struct ig_chunked_decoder *d, unsigned char c)
{
	int v = ig_hex_value(c);

	switch (d->state) {
	case CH_SIZE:
		if (v >= 0) {
			if (d->remaining > (UINT64_MAX >> 4))
				return -1;
			d->remaining = (d->remaining << 4) | (uint64_t)v;
			return 0;
		}
		if (d->line_len == 1)
			return -1; /* the size needs at least one digit */
		d->state = CH_SIZE_WS;
		/* fallthrough */
	case CH_SIZE_WS:
		if (c == ' ' || c == '\t')
			return 0;
		if (c == ';')
			d->state = CH_EXT;
		else if (c == '\r')
			d->state = CH_SIZE_LF;
		else
			return -1;
		return 0;
	default: /* CH_EXT */
		if (c == '\r')
			d->state = CH_SIZE_LF;
		else if (is_ctl(c))
			return -1;
		return 0;
	}
}

/* One byte of a trailer line or of the blank line ending the body. */
static int trailer_byte(struct ig_chunked_decoder *d, unsigned char c)
{
	switch (d->state) {
	case CH_TRAILER:
		if (c == '\r') {
			d->state = CH_END_LF;
			return 0;
		}
		d->state = CH_TRAILER_LINE;
		/* fallthrough */
	case CH_TRAILER_LINE:
		if (c == '\r')
			d->state = CH_TRAILER_LF;
		else if (is_ctl(c))
			return -1;
		return 0;
	case CH_TRAILER_LF:
		if (c != '\n')
			return -1;
		d->state = CH_TRAILER;
		d->line_len = 0;
		return 0;
	default: /* CH_END_LF */
		if (c != '\n')
			return -1;
		d->state = CH_DONE;
		return 0;
	}
}

/* Processes the framing byte at buf[r]. */
static int framing_byte(struct ig_chunked_decoder *d, unsigned char c)
{
	switch (d->state) {
	case CH_SIZE:
	case CH_SIZE_WS:
	case CH_EXT:
		if (++d->line_len > CHUNK_LINE_MAX)
			return -1;
		return size_byte(d, c);
	case CH_SIZE_LF:
		if (c != '\n')
			return -1;
		d->line_len = 0;
		d->state = d->remaining ? CH_DATA : CH_TRAILER;
		return 0;
	case CH_DATA_CR:
		if (c != '\r')
			return -1;
		d->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (c != '\n')
			return -1;
		d->state = CH_SIZE;
		return 0;
	default:
		if (++d->line_len > CHUNK_LINE_MAX)
			return -1;
		/* The section counts against the head's limits whether it is
		 * kept or skipped: line by line it could go on without end. */
		d->trailer_bytes++;
		if (d->state == CH_TRAILER && c != '\r')
			d->trailer_lines++;
		if ((d->max_trailer_bytes && d->trailer_bytes > d->max_trailer_bytes) ||
		    (d->max_trailer_lines && d->trailer_lines > d->max_trailer_lines))
			return IG_HTTP_TOO_MANY_HEADERS;
		/* A section is kept from its first field on (a body without
		 * trailers costs no buffer). */
		if (d->trailers && (d->trailers->len || (d->state == CH_TRAILER && c != '\r')) &&
		    ig_buf_append(d->trailers, &c, 1) < 0)
			return -1;
		return trailer_byte(d, c);
	}
}

ssize_t ig_chunked_decode(struct ig_chunked_decoder *d, char *buf, size_t *len)
{
	size_t n = *len, r = 0, w = 0;

	while (r < n && d->state != CH_DONE) {
		if (d->state == CH_DATA) {
			size_t run = n - r;
			if (run > d->remaining)
				run = (size_t)d->remaining;
			if (w != r)
				memmove(buf + w, buf + r, run);
			w += run, r += run;
			d->remaining -= run;
			if (d->remaining == 0)
				d->state = CH_DATA_CR;
			continue;
		}
		int rc = framing_byte(d, (unsigned char)buf[r++]);
		if (rc < 0) {
			*len = w;
			return rc == IG_HTTP_TOO_MANY_HEADERS ? rc : IG_HTTP_INVALID;
		}
	}
	if (d->state != CH_DONE) {
		*len = w;
		return IG_HTTP_INCOMPLETE;
	}
	size_t left = n - r;
	if (left && w != r)
		memmove(buf + w, buf + r, left);
	*len = w;
	return (ssize_t)left;
}

int ig_chunked_check(const struct ig_chunked_decoder *d, const char *buf, size_t len)
{
	struct ig_chunked_decoder t = *d;
	size_t r = 0;

	t.trailers = NULL;
	while (r < len && t.state != CH_DONE) {
		if (t.state == CH_DATA) {
			size_t run = len - r < t.remaining ? len - r : (size_t)t.remaining;
			r += run;
			t.remaining -= run;
			if (t.remaining == 0)
				t.state = CH_DATA_CR;
			continue;
		}
		if (framing_byte(&t, (unsigned char)buf[r++]) < 0)
			return IG_HTTP_INVALID;
	}
	return 0;
}

/* ---- status text ------------------------------------------------------- */

static const struct {
	int code;
	const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *ig_http_status_text(int status)
{
	for (size_t i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++)
		if (status_texts[i].code == status)
			return status_texts[i].text;
	return "Unknown";
}
