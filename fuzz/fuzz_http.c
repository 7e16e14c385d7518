/* libFuzzer target for the HTTP/1.x parser: the same input goes through
 * the request parser, the response parser and the chunked decoder, and
 * each result is checked against invariants the callers rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/date.h"
#include "http/parse.h"

#define MAX_H 32

static void check_slice(struct ig_str s, const char *buf, size_t len)
{
	if (s.len && (s.ptr < buf || s.ptr + s.len > buf + len))
		abort();
}

static void check_headers(const struct ig_http_header *h, size_t n, const char *buf, size_t head)
{
	for (size_t i = 0; i < n; i++) {
		check_slice(h[i].name, buf, head);
		check_slice(h[i].value, buf, head);
		if (h[i].name.len == 0)
			abort();
		/* Values are trimmed and hold no CR, LF or NUL. */
		if (h[i].value.len &&
		    (h[i].value.ptr[0] == ' ' || h[i].value.ptr[h[i].value.len - 1] == ' '))
			abort();
		if (memchr(h[i].value.ptr, '\r', h[i].value.len) ||
		    memchr(h[i].value.ptr, '\n', h[i].value.len) ||
		    memchr(h[i].value.ptr, '\0', h[i].value.len))
			abort();
	}
}

/* A path's normal form never grows, is its own normal form, holds no
 * dot segment, and is the path itself when no change was foreseen. */
static void fuzz_path(struct ig_str path)
{
	if (!path.len || path.ptr[0] != '/')
		return;
	char *a = malloc(path.len), *b = malloc(path.len);
	if (!a || !b)
		abort();
	ssize_t len = ig_http_path_normalize(path, a);
	if (len < 0) { /* invalid ("%00"): foreseen by the quick test */
		if (!ig_http_path_needs_normalizing(path) || !memmem(path.ptr, path.len, "%00", 3))
			abort();
		free(a);
		free(b);
		return;
	}
	size_t n = (size_t)len;
	if (n == 0 || n > path.len || a[0] != '/' || memchr(a, '\\', n))
		abort();
	if (!ig_http_path_needs_normalizing(path) && (n != path.len || memcmp(a, path.ptr, n)))
		abort();
	struct ig_str once = {a, n};
	if (ig_http_path_needs_normalizing(once) || ig_http_path_normalize(once, b) != len ||
	    memcmp(a, b, n))
		abort();
	free(a);
	free(b);
}

static void fuzz_request(const char *buf, size_t len)
{
	struct ig_http_header h[MAX_H];
	struct ig_http_request req;
	struct ig_http_framing f;
	int rc = ig_http_parse_request(buf, len, &req, h, MAX_H);

	if (rc <= 0) {
		if (rc != IG_HTTP_INVALID && rc != IG_HTTP_INCOMPLETE &&
		    rc != IG_HTTP_TOO_MANY_HEADERS && rc != IG_HTTP_BAD_VERSION)
			abort();
		return;
	}
	/* A later 1.x is read as 1.1. */
	if ((size_t)rc > len || req.num_headers > MAX_H ||
	    (req.minor_version != 0 && req.minor_version != 1))
		abort();
	check_slice(req.method, buf, (size_t)rc);
	check_slice(req.target, buf, (size_t)rc);
	check_slice(req.path, buf, (size_t)rc);
	check_slice(req.query, buf, (size_t)rc);
	if (req.path.len + (req.query.ptr > req.path.ptr + req.path.len) + req.query.len !=
	    req.target.len)
		abort();
	fuzz_path(req.path);
	check_headers(h, req.num_headers, buf, (size_t)rc);
	/* The head alone parses to the same length; one byte less is
	 * incomplete. */
	if (ig_http_parse_request(buf, (size_t)rc, &req, h, MAX_H) != rc ||
	    ig_http_parse_request(buf, (size_t)rc - 1, &req, h, MAX_H) != IG_HTTP_INCOMPLETE)
		abort();
	if (ig_http_request_framing(&req, &f) == 0) {
		if (f.kind == IG_BODY_UNTIL_CLOSE)
			abort();
		if (f.kind == IG_BODY_LENGTH && f.length == 0)
			abort();
	}
}

static void fuzz_response(const char *buf, size_t len)
{
	struct ig_http_header h[MAX_H];
	struct ig_http_response res;
	struct ig_http_framing f;
	int rc = ig_http_parse_response(buf, len, &res, h, MAX_H);

	if (rc <= 0)
		return;
	if ((size_t)rc > len || res.status < 100 || res.status > 599)
		abort();
	check_slice(res.reason, buf, (size_t)rc);
	check_headers(h, res.num_headers, buf, (size_t)rc);
	(void)ig_http_status_text(res.status);
	if (ig_http_response_framing(&res, IG_STR("GET"), &f) == 0 &&
	    f.kind == IG_BODY_UNTIL_CLOSE && f.keep_alive)
		abort();
	/* An HTTP/1.0 response with Transfer-Encoding never leaves its
	 * connection to be reused (RFC 9112 §6.1: faulty framing). */
	if (ig_http_response_framing(&res, IG_STR("GET"), &f) == 0 && res.minor_version == 0 &&
	    f.kind == IG_BODY_CHUNKED && f.keep_alive)
		abort();
	if (ig_http_response_framing(&res, IG_STR("HEAD"), &f) != 0 || f.kind != IG_BODY_NONE)
		abort();
}

/* Decodes in one piece and in small pieces; both must agree. */
static void fuzz_chunked(const char *data, size_t len)
{
	char *whole = malloc(len ? len : 1);
	char *body = malloc(len ? len : 1);
	struct ig_chunked_decoder d = {0};
	size_t n = len, got = 0, off = 0;

	memcpy(whole, data, len);
	ssize_t rc1 = ig_chunked_decode(&d, whole, &n);
	if (n > len || (rc1 >= 0 && n + (size_t)rc1 > len))
		abort();
	/* The check without decoding finds the same fault. */
	static const struct ig_chunked_decoder fresh;
	if ((ig_chunked_check(&fresh, data, len) == IG_HTTP_INVALID) != (rc1 == IG_HTTP_INVALID))
		abort();

	/* Piece sizes come from the data itself so that the fuzzer can steer
	 * them. */
	struct ig_chunked_decoder d2 = {0};
	ssize_t rc2 = IG_HTTP_INCOMPLETE;
	size_t step = len ? (unsigned char)data[0] % 7 + 1 : 1;

	while (off < len && rc2 == IG_HTTP_INCOMPLETE) {
		size_t m = len - off < step ? len - off : step;
		char piece[8];
		size_t plen = m;
		memcpy(piece, data + off, m);
		rc2 = ig_chunked_decode(&d2, piece, &plen);
		if (plen > m)
			abort();
		memcpy(body + got, piece, plen);
		got += plen;
		if (rc2 >= 0)
			rc2 += (ssize_t)(len - off - m);
		off += m;
	}
	if (rc1 != rc2)
		abort();
	if (rc1 >= 0 && (got != n || memcmp(body, whole, n) != 0))
		abort();
	if (rc1 == IG_HTTP_INCOMPLETE && (got != n || memcmp(body, whole, n) != 0))
		abort();
	free(whole);
	free(body);
}

/* With the server's trailer ceilings (small ones, so the fuzzer reaches
 * them): whole and byte by byte agree, and a section over them is the
 * only new answer. */
static void fuzz_chunked_ceilings(const char *data, size_t len)
{
	struct ig_chunked_decoder whole = {.max_trailer_bytes = 64, .max_trailer_lines = 4};
	struct ig_chunked_decoder bytes = whole, plain = {0};
	char *a = malloc(len ? len : 1), *b = malloc(len ? len : 1);
	memcpy(a, data, len);
	memcpy(b, data, len);
	size_t n = len;
	ssize_t rc1 = ig_chunked_decode(&whole, a, &n);
	n = len;
	ssize_t rc0 = ig_chunked_decode(&plain, b, &n);
	ssize_t rc2 = IG_HTTP_INCOMPLETE;
	for (size_t off = 0; off < len && rc2 == IG_HTTP_INCOMPLETE; off++) {
		char c = data[off];
		size_t one = 1;
		rc2 = ig_chunked_decode(&bytes, &c, &one);
		if (rc2 >= 0)
			rc2 += (ssize_t)(len - off - 1);
	}
	if (rc1 != rc2 || (rc1 != IG_HTTP_TOO_MANY_HEADERS && rc1 != rc0))
		abort();
	free(a);
	free(b);
}

/* A Retry-After's HTTP-date (the OTLP exporter reads a collector's): what
 * parses is an IMF-fixdate of 29 bytes once trimmed, whose time formats
 * and parses back to itself. */
static void fuzz_date(const char *buf, size_t len)
{
	int64_t t;
	if (ig_http_date_parse((struct ig_str){buf, len}, &t) != 0)
		return;
	if (ig_str_trim((struct ig_str){buf, len}).len != IG_HTTP_DATE_LEN)
		abort();
	char out[IG_HTTP_DATE_LEN];
	ig_http_date_format(t, out);
	int64_t back;
	if (ig_http_date_parse((struct ig_str){out, sizeof out}, &back) != 0 || back != t)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	fuzz_date(buf, size);
	fuzz_request(buf, size);
	fuzz_response(buf, size);
	fuzz_chunked(buf, size);
	fuzz_chunked_ceilings(buf, size);
	return 0;
}
