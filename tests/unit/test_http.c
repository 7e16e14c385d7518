/* Unit tests for the HTTP/1.x head parser, the framing rules and the
 * chunked decoder. Inputs are copied into exact-size heap blocks so that
 * ASan catches any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/parse.h"

#define MAX_H 16

/* Moves a slice that points into `from` to the same offset in `to`. */
static void rebase(struct ig_str *x, const char *from, const char *to)
{
	x->ptr = to + (x->ptr - from);
}

static int parse_req_n(const char *s, size_t len, struct ig_http_request *req,
		       struct ig_http_header *h, size_t max)
{
	char *copy = malloc(len ? len : 1);
	memcpy(copy, s, len);
	int rc = ig_http_parse_request(copy, len, req, h, max);
	/* Point the results back into the caller's string so they outlive
	 * the copy. */
	if (rc > 0) {
		rebase(&req->method, copy, s);
		rebase(&req->target, copy, s);
		rebase(&req->path, copy, s);
		rebase(&req->query, copy, s);
		for (size_t i = 0; i < req->num_headers; i++)
			rebase(&h[i].name, copy, s), rebase(&h[i].value, copy, s);
	}
	free(copy);
	return rc;
}

static int parse_req(const char *s, struct ig_http_request *req, struct ig_http_header *h)
{
	return parse_req_n(s, strlen(s), req, h, MAX_H);
}

static int parse_res(const char *s, struct ig_http_response *res, struct ig_http_header *h)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	memcpy(copy, s, len);
	int rc = ig_http_parse_response(copy, len, res, h, MAX_H);
	if (rc > 0) {
		rebase(&res->reason, copy, s);
		for (size_t i = 0; i < res->num_headers; i++)
			rebase(&h[i].name, copy, s), rebase(&h[i].value, copy, s);
	}
	free(copy);
	return rc;
}

static const char sample_req[] = "POST /v1/chat/completions?x=1&y HTTP/1.1\r\n"
				 "Host: gw.example\r\n"
				 "Content-Type:application/json  \r\n"
				 "X-Empty:\r\n"
				 "Content-Length: 12\r\n"
				 "\r\n"
				 "{\"a\":\"b\"}xyz";

static void test_request_complete(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	size_t head = strlen(sample_req) - 12;

	assert_int_equal(parse_req(sample_req, &req, h), (int)head);
	assert_true(ig_str_eq_cstr(req.method, "POST"));
	assert_true(ig_str_eq_cstr(req.target, "/v1/chat/completions?x=1&y"));
	assert_true(ig_str_eq_cstr(req.path, "/v1/chat/completions"));
	assert_true(ig_str_eq_cstr(req.query, "x=1&y"));
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.num_headers, 4);
	assert_ptr_equal(req.headers, h);
	assert_true(ig_str_eq_cstr(h[0].name, "Host"));
	assert_true(ig_str_eq_cstr(h[0].value, "gw.example"));
	assert_true(ig_str_eq_cstr(h[1].value, "application/json"));
	assert_true(ig_str_eq_cstr(h[2].name, "X-Empty"));
	assert_int_equal(h[2].value.len, 0);

	const struct ig_http_header *cl = ig_http_find_header(h, req.num_headers, "content-LENGTH");
	assert_non_null(cl);
	assert_true(ig_str_eq_cstr(cl->value, "12"));
	assert_null(ig_http_find_header(h, req.num_headers, "Content"));
}

static void test_request_no_query(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];

	assert_true(parse_req("GET /healthz HTTP/1.0\r\n\r\n", &req, h) > 0);
	assert_true(ig_str_eq_cstr(req.path, "/healthz"));
	assert_int_equal(req.query.len, 0);
	assert_int_equal(req.minor_version, 0);
	assert_int_equal(req.num_headers, 0);

	assert_true(parse_req("GET /a? HTTP/1.1\r\n\r\n", &req, h) > 0);
	assert_true(ig_str_eq_cstr(req.path, "/a"));
	assert_int_equal(req.query.len, 0);
}

/* Every proper prefix of a valid head is incomplete, never invalid. */
static void test_request_every_split(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	size_t head = strlen(sample_req) - 12;

	for (size_t i = 0; i < head; i++)
		assert_int_equal(parse_req_n(sample_req, i, &req, h, MAX_H), IG_HTTP_INCOMPLETE);
	for (size_t i = head; i <= strlen(sample_req); i++)
		assert_int_equal(parse_req_n(sample_req, i, &req, h, MAX_H), (int)head);
}

static void test_request_invalid(void **state)
{
	static const char *bad[] = {
	    "GET  / HTTP/1.1\r\n\r\n",		     /* double space */
	    " GET / HTTP/1.1\r\n\r\n",		     /* leading space */
	    "G(T / HTTP/1.1\r\n\r\n",		     /* non-token method */
	    "GET / HTTP/1.10\r\n\r\n",		     /* two minor digits */
	    "GET / HTTP/1\r\n\r\n",		     /* no minor */
	    "GET / HTTP/x.1\r\n\r\n",		     /* no major */
	    "GET / http/1.1\r\n\r\n",		     /* lower-case name */
	    "GET / HTTP/1.1 \r\n\r\n",		     /* trailing space */
	    "GET /a b HTTP/1.1\r\n\r\n",	     /* space in target */
	    "GET /\x01 HTTP/1.1\r\n\r\n",	     /* control in target */
	    "GET / HTTP/1.1\n\r\n",		     /* bare LF */
	    "GET / HTTP/1.1\rX\r\n",		     /* bare CR */
	    "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",  /* bare CR in value */
	    "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", /* control in value */
	    "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", /* DEL in value */
	    "GET / HTTP/1.1\r\nHost : a\r\n\r\n",    /* space before colon */
	    "GET / HTTP/1.1\r\n: a\r\n\r\n",	     /* empty name */
	    "GET / HTTP/1.1\r\nX(y: a\r\n\r\n",	     /* non-token name */
	    "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",  /* obs-fold */
	    "GET / HTTP/1.1\r\n\tA: b\r\n\r\n",	     /* folded first line */
	    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	    "\r\nGET / HTTP/1.1\r\n\r\n",
	};
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_req(bad[i], &req, h);
		if (rc != IG_HTTP_INVALID)
			fail_msg("case %zu: rc %d for %s", i, rc, bad[i]);
	}

	/* NUL in a value, which strlen() could not express. */
	static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
	assert_int_equal(parse_req_n(nul, sizeof(nul) - 1, &req, h, MAX_H), IG_HTTP_INVALID);
}

/* RFC 9112 §2.3: a later HTTP/1.x is read as HTTP/1.1 (RFC 9110 §6.2);
 * a well-formed request line of another major version is told apart
 * from a malformed one (the server answers it 505), and only once the
 * line is whole. */
static void test_request_versions(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];

	assert_true(parse_req("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &req, h) > 0);
	assert_int_equal(req.minor_version, 1);
	assert_true(parse_req("GET / HTTP/1.9\r\n\r\n", &req, h) > 0);
	assert_int_equal(req.minor_version, 1);
	static const char two[] = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
	assert_int_equal(parse_req(two, &req, h), IG_HTTP_BAD_VERSION);
	assert_int_equal(parse_req("PRI * HTTP/2.0\r\n\r\n", &req, h), IG_HTTP_BAD_VERSION);
	assert_int_equal(parse_req("GET / HTTP/3.0\r\n\r\n", &req, h), IG_HTTP_BAD_VERSION);
	assert_int_equal(parse_req("GET / HTTP/0.9\r\n\r\n", &req, h), IG_HTTP_BAD_VERSION);
	for (size_t i = 0; i < strlen("GET / HTTP/2.0\r\n"); i++)
		assert_int_equal(parse_req_n(two, i, &req, h, MAX_H), IG_HTTP_INCOMPLETE);
}

static void test_request_obs_text_value(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];

	assert_true(parse_req("GET / HTTP/1.1\r\nX: caf\xc3\xa9\t ok\r\n\r\n", &req, h) > 0);
	assert_true(ig_str_eq_cstr(h[0].value, "caf\xc3\xa9\t ok"));
}

/* Long values are scanned sixteen bytes at a time: every byte position of
 * a value longer than that is checked, for the bytes a value may hold
 * (tab, obs-text) and the ones it may not (controls, DEL, NUL, a bare CR). */
static void test_request_long_values(void **state)
{
	static const char allowed[] = {'\t', (char)0x80, (char)0xff, ' '};
	static const char refused[] = {0x01, 0x1f, 0x7f, '\0', '\n'};
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	char buf[128], value[49];

	for (size_t at = 1; at < 47; at++) {
		for (size_t k = 0; k < sizeof allowed + sizeof refused; k++) {
			bool ok = k < sizeof allowed;
			memset(value, 'v', 48);
			value[48] = '\0';
			value[at] = ok ? allowed[k] : refused[k - sizeof allowed];
			int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: ");
			memcpy(buf + n, value, 48);
			memcpy(buf + n + 48, "\r\n\r\n", 4);
			int rc = parse_req_n(buf, (size_t)n + 52, &req, h, MAX_H);
			if (ok) {
				if (rc != n + 52)
					fail_msg("byte 0x%02x at %zu: rc %d",
						 (unsigned char)value[at], at, rc);
				assert_int_equal(h[0].value.len, 48);
				assert_memory_equal(h[0].value.ptr, value, 48);
			} else if (rc != IG_HTTP_INVALID) {
				fail_msg("byte 0x%02x at %zu: rc %d", (unsigned char)value[at], at,
					 rc);
			}
		}
	}
	/* A bare CR inside a long value, and a long value cut anywhere. */
	static const char cr[] = "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaa\rbbbb\r\n\r\n";
	assert_int_equal(parse_req_n(cr, sizeof cr - 1, &req, h, MAX_H), IG_HTTP_INVALID);
	static const char whole[] =
	    "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	for (size_t i = 0; i < sizeof whole - 1; i++)
		assert_int_equal(parse_req_n(whole, i, &req, h, MAX_H), IG_HTTP_INCOMPLETE);
}

static void test_request_too_many_headers(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	const char *s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

	assert_int_equal(parse_req_n(s, strlen(s), &req, h, 2), IG_HTTP_TOO_MANY_HEADERS);
	assert_true(parse_req_n(s, strlen(s), &req, h, 3) > 0);
	assert_int_equal(req.num_headers, 3);
	assert_int_equal(parse_req_n("GET / HTTP/1.1\r\nA: 1\r\n\r\n", 24, &req, h, 0),
			 IG_HTTP_TOO_MANY_HEADERS);
	assert_true(parse_req_n("GET / HTTP/1.1\r\n\r\n", 18, &req, h, 0) > 0);
}

static void test_response_parse(void **state)
{
	struct ig_http_response res;
	struct ig_http_header h[MAX_H];
	const char *s = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

	assert_int_equal(parse_res(s, &res, h), (int)strlen(s));
	assert_int_equal(res.status, 404);
	assert_int_equal(res.minor_version, 1);
	assert_true(ig_str_eq_cstr(res.reason, "Not Found"));
	assert_int_equal(res.num_headers, 1);

	assert_true(parse_res("HTTP/1.0 200 \r\n\r\n", &res, h) > 0);
	assert_int_equal(res.reason.len, 0);
	assert_true(parse_res("HTTP/1.1 200\r\n\r\n", &res, h) > 0);
	assert_int_equal(res.status, 200);
	/* A later 1.x is read as 1.1 (RFC 9110 §6.2). */
	assert_true(parse_res("HTTP/1.3 200 OK\r\n\r\n", &res, h) > 0);
	assert_int_equal(res.minor_version, 1);

	for (size_t i = 0; i < strlen(s); i++) {
		char *copy = malloc(i + 1);
		memcpy(copy, s, i);
		assert_int_equal(ig_http_parse_response(copy, i, &res, h, MAX_H),
				 IG_HTTP_INCOMPLETE);
		free(copy);
	}
}

static void test_response_invalid(void **state)
{
	static const char *bad[] = {
	    "HTTP/1.1 20 OK\r\n\r\n",	"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n",
	    "HTTP/1.1 abc OK\r\n\r\n",	"HTTP/2.0 200 OK\r\n\r\n",  "HTTP/1.1 200 O\x01K\r\n\r\n",
	    "HTTP/1.10 200 OK\r\n\r\n", "HTTP/0.9 200 OK\r\n\r\n",  "HTTP/1.1 200 OK\r\n x\r\n\r\n",
	    "ICY 200 OK\r\n\r\n",	"HTTP/1.1 600 X\r\n\r\n",   "HTTP/1.1 999 X\r\n\r\n",
	};
	struct ig_http_response res;
	struct ig_http_header h[MAX_H];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_res(bad[i], &res, h);
		if (rc != IG_HTTP_INVALID)
			fail_msg("case %zu: rc %d", i, rc);
	}
}

/* ---- framing ------------------------------------------------------------ */

static int req_framing(const char *s, struct ig_http_framing *f)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];

	if (parse_req(s, &req, h) <= 0)
		fail_msg("head did not parse: %s", s);
	return ig_http_request_framing(&req, f);
}

static void test_request_framing(void **state)
{
	struct ig_http_framing f;

	assert_int_equal(req_framing("GET / HTTP/1.1\r\n\r\n", &f), 0);
	assert_int_equal(f.kind, IG_BODY_NONE);
	assert_true(f.keep_alive);
	assert_false(f.expect_continue);

	assert_int_equal(req_framing("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &f), 0);
	assert_int_equal(f.kind, IG_BODY_LENGTH);
	assert_int_equal(f.length, 42);

	assert_int_equal(req_framing("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &f), 0);
	assert_int_equal(f.kind, IG_BODY_NONE);

	assert_int_equal(req_framing("POST / HTTP/1.1\r\nContent-Length: 7\r\n"
				     "content-length: 7\r\n\r\n",
				     &f),
			 0);
	assert_int_equal(f.length, 7);
	assert_int_equal(req_framing("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n", &f), 0);
	assert_int_equal(f.length, 7);

	assert_int_equal(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &f),
			 0);
	assert_int_equal(f.kind, IG_BODY_CHUNKED);
	assert_int_equal(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: , Chunked\r\n\r\n", &f),
			 0);
	assert_int_equal(f.kind, IG_BODY_CHUNKED);
}

/* RFC 9112 §6.1: a transfer coding the server does not understand is
 * answered 501, never dropped (the body would go on still coded). */
static void test_request_framing_not_implemented(void **state)
{
	static const char *codings[] = {
	    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: deflate\r\n\r\n",
	};
	struct ig_http_framing f;

	for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++)
		if (req_framing(codings[i], &f) != IG_HTTP_NOT_IMPLEMENTED)
			fail_msg("case %zu: %s", i, codings[i]);
}

static void test_request_framing_errors(void **state)
{
	static const char *bad[] = {
	    "POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 7, 8\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, xchunked, chunked\r\n\r\n",
	    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
	};
	struct ig_http_framing f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (req_framing(bad[i], &f) != -1)
			fail_msg("case %zu accepted: %s", i, bad[i]);
}

/* RFC 9110 §7.6.1: the connection options a Connection field lists, in
 * any of its fields, case-insensitively, as whole list elements. */
static void test_connection_names(void **state)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	assert_true(parse_req("GET / HTTP/1.1\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n"
			      "connection: te ,  x-bar\r\n\r\n",
			      &req, h) > 0);
	assert_true(ig_http_connection_names(h, req.num_headers, IG_STR("x-foo")));
	assert_true(ig_http_connection_names(h, req.num_headers, IG_STR("X-BAR")));
	assert_true(ig_http_connection_names(h, req.num_headers, IG_STR("TE")));
	assert_false(ig_http_connection_names(h, req.num_headers, IG_STR("X-Fo")));
	assert_false(ig_http_connection_names(h, req.num_headers, IG_STR("X-Foo-2")));
	assert_false(ig_http_connection_names(h, req.num_headers, IG_STR("x-foo, x-bar")));
	assert_false(ig_http_connection_names(h, 0, IG_STR("x-foo")));
}

static void test_request_connection(void **state)
{
	struct ig_http_framing f;

	assert_int_equal(req_framing("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &f), 0);
	assert_false(f.keep_alive);
	assert_int_equal(req_framing("GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n", &f),
			 0);
	assert_false(f.keep_alive);
	assert_int_equal(req_framing("GET / HTTP/1.0\r\n\r\n", &f), 0);
	assert_false(f.keep_alive);
	assert_int_equal(req_framing("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &f), 0);
	assert_true(f.keep_alive);
	assert_int_equal(req_framing("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &f),
			 0);
	assert_false(f.keep_alive);
	assert_int_equal(req_framing("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", &f), 0);
	assert_true(f.keep_alive);

	assert_int_equal(req_framing("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n"
				     "Content-Length: 3\r\n\r\n",
				     &f),
			 0);
	assert_true(f.expect_continue);
	assert_int_equal(req_framing("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &f), 0);
	assert_false(f.expect_continue);
	assert_int_equal(req_framing("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &f), 0);
	assert_false(f.expect_continue);
}

static int res_framing(const char *s, const char *method, struct ig_http_framing *f)
{
	struct ig_http_response res;
	struct ig_http_header h[MAX_H];

	if (parse_res(s, &res, h) <= 0)
		fail_msg("head did not parse: %s", s);
	return ig_http_response_framing(&res, ig_str_from(method), f);
}

static bool is_ws(const char *s)
{
	struct ig_http_request req;
	struct ig_http_header h[MAX_H];
	assert_true(parse_req_n(s, strlen(s), &req, h, MAX_H) > 0);
	return ig_http_is_websocket_upgrade(&req);
}

static void test_websocket_handshake(void **state)
{
	assert_true(is_ws("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\n\r\n"));
	/* Tokens anywhere in a list, any case, in any of several fields. */
	assert_true(is_ws("GET /ws HTTP/1.1\r\nConnection: keep-alive\r\nUpgrade: WebSocket\r\n"
			  "Connection: x , UPGRADE \r\n\r\n"));
	assert_true(is_ws("GET /ws HTTP/1.1\r\nUpgrade: foo, websocket\r\n"
			  "Connection: upgrade\r\n\r\n"));
	/* Not a WebSocket handshake. */
	assert_false(is_ws("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
	assert_false(is_ws("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"));
	assert_false(is_ws("GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"));
	assert_false(is_ws("GET /ws HTTP/1.1\r\nUpgrade: websockets\r\n"
			   "Connection: Upgrade\r\n\r\n"));
	assert_false(is_ws("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
			   "Connection: Upgraded\r\n\r\n"));
	assert_false(is_ws("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
			   "Connection: Upgrade\r\n\r\n"));
	assert_false(is_ws("GET /ws HTTP/1.0\r\nUpgrade: websocket\r\n"
			   "Connection: Upgrade\r\n\r\n"));
}

static void test_response_framing(void **state)
{
	struct ig_http_framing f;

	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", &f), 0);
	assert_int_equal(f.kind, IG_BODY_LENGTH);
	assert_int_equal(f.length, 5);
	assert_true(f.keep_alive);

	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", &f),
			 0);
	assert_int_equal(f.kind, IG_BODY_NONE);
	assert_true(f.keep_alive);

	static const char *nobody[] = {"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
				       "HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
				       "HTTP/1.1 100 Continue\r\n\r\n",
				       "HTTP/1.1 101 Switching\r\nConnection: upgrade\r\n\r\n"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(res_framing(nobody[i], "POST", &f), 0);
		assert_int_equal(f.kind, IG_BODY_NONE);
	}

	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\n\r\n", "GET", &f), 0);
	assert_int_equal(f.kind, IG_BODY_UNTIL_CLOSE);
	assert_false(f.keep_alive);

	assert_int_equal(
	    res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", &f), 0);
	assert_int_equal(f.kind, IG_BODY_CHUNKED);
	assert_true(f.keep_alive);

	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				     "Content-Length: 10\r\n\r\n",
				     "GET", &f),
			 0);
	assert_int_equal(f.kind, IG_BODY_CHUNKED);
	assert_false(f.keep_alive);

	/* A coding other than chunked cannot be passed on as it was meant:
	 * the response is refused (nginx: "upstream sent unknown
	 * Transfer-Encoding"). */
	assert_int_equal(
	    res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", &f), -1);
	assert_int_equal(
	    res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET", &f),
	    -1);
	assert_int_equal(
	    res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", "GET", &f), -1);
	/* ... unless the response has no body to code. */
	assert_int_equal(
	    res_framing("HTTP/1.1 204 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", &f), 0);
	assert_int_equal(f.kind, IG_BODY_NONE);

	assert_int_equal(res_framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", &f), 0);
	assert_false(f.keep_alive);

	/* Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1),
	 * but a final chunked is decoded, as Envoy's codec does, and the
	 * connection is not kept, whatever Connection or Content-Length say. */
	static const char *const te10[] = {
	    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(res_framing(te10[i], "GET", &f), 0);
		assert_int_equal(f.kind, IG_BODY_CHUNKED);
		assert_false(f.keep_alive);
	}
	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
				     "Connection: close\r\n\r\n",
				     "GET", &f),
			 0);
	assert_false(f.keep_alive);

	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "GET", &f),
			 -1);
	assert_int_equal(res_framing("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "GET", &f),
			 -1);
}

/* ---- chunked decoding ------------------------------------------------- */

/* Decodes `in` fed in pieces of `step` bytes (0: all at once), collecting
 * the body into `body` and the bytes after the end into `rest`. Returns
 * the last decoder result. */
static ssize_t decode_all(const char *in, size_t len, size_t step, char *body, size_t *body_len,
			  char *rest, size_t *rest_len)
{
	struct ig_chunked_decoder d = {0};
	ssize_t rc = IG_HTTP_INCOMPLETE;
	size_t off = 0;

	*body_len = 0;
	*rest_len = 0;
	if (step == 0)
		step = len ? len : 1;
	while (off < len && rc == IG_HTTP_INCOMPLETE) {
		size_t n = len - off < step ? len - off : step;
		char *piece = malloc(n);
		memcpy(piece, in + off, n);
		size_t got = n;
		rc = ig_chunked_decode(&d, piece, &got);
		assert_true(got <= n);
		memcpy(body + *body_len, piece, got);
		*body_len += got;
		if (rc >= 0) {
			assert_true(got + (size_t)rc <= n);
			memcpy(rest, piece + got, (size_t)rc);
			*rest_len = (size_t)rc;
			/* Whatever was not fed yet follows the leftover. */
			memcpy(rest + *rest_len, in + off + n, len - off - n);
			*rest_len += len - off - n;
		}
		free(piece);
		off += n;
	}
	return rc;
}

/* The trailer section counts against ceilings like a head's, kept or
 * skipped, fed whole or a byte at a time: without them a client could
 * send trailer lines without end, each under the 4 KiB line limit. */
static void test_chunked_trailer_ceilings(void **state)
{
	(void)state;
	static const char ok[] = "1\r\na\r\n0\r\nA: 1\r\nB: 2\r\n\r\n";
	static const char many[] = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	char big[200];
	int k = snprintf(big, sizeof big, "0\r\nA: %0100d\r\n\r\n", 0);
	struct ig_buf kept;
	const struct {
		const char *in;
		size_t len;
		ssize_t want;
	} cases[] = {
	    {ok, sizeof ok - 1, 0},
	    {many, sizeof many - 1, IG_HTTP_TOO_MANY_HEADERS},
	    {big, (size_t)k, IG_HTTP_TOO_MANY_HEADERS},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int keep = 0; keep < 2; keep++) {
			for (size_t step = 1; step <= cases[i].len; step += cases[i].len - 1) {
				struct ig_chunked_decoder d = {.max_trailer_bytes = 64,
							       .max_trailer_lines = 3};
				ig_buf_init(&kept, 1024);
				d.trailers = keep ? &kept : NULL;
				ssize_t rc = IG_HTTP_INCOMPLETE;
				for (size_t off = 0; off < cases[i].len && rc == IG_HTTP_INCOMPLETE;
				     off += step) {
					char piece[256];
					size_t n =
					    cases[i].len - off < step ? cases[i].len - off : step;
					memcpy(piece, cases[i].in + off, n);
					rc = ig_chunked_decode(&d, piece, &n);
				}
				assert_int_equal(rc, cases[i].want);
				ig_buf_free(&kept);
			}
		}
	}
	/* Without ceilings (a client's decoder) the same section is fine. */
	struct ig_chunked_decoder d = {0};
	char copy[sizeof many];
	memcpy(copy, many, sizeof many);
	size_t n = sizeof many - 1;
	assert_int_equal(ig_chunked_decode(&d, copy, &n), 0);
}

static void test_chunked_basic(void **state)
{
	static const char in[] = "5\r\nhello\r\n7;ext=1;q=\"a b\"\r\n, world\r\n"
				 "A  \r\n0123456789\r\n0\r\nX-Trailer: t\r\nY: u\r\n\r\nNEXT";
	char body[128], rest[128];
	size_t bl, rl;

	for (size_t step = 0; step <= 7; step++) {
		ssize_t rc = decode_all(in, sizeof(in) - 1, step, body, &bl, rest, &rl);
		assert_true(rc >= 0);
		assert_int_equal(bl, 22);
		assert_memory_equal(body, "hello, world0123456789", 22);
		assert_int_equal(rl, 4);
		assert_memory_equal(rest, "NEXT", 4);
	}
	/* Fed whole, the leftover count is exactly the bytes after the end. */
	char buf[sizeof(in)];
	memcpy(buf, in, sizeof(in));
	size_t len = sizeof(in) - 1;
	struct ig_chunked_decoder d = {0};
	assert_int_equal(ig_chunked_decode(&d, buf, &len), 4);
	assert_int_equal(len, 22);
	assert_memory_equal(buf + len, "NEXT", 4);
}

/* The trailer section, kept when the decoder is given a buffer: the same
 * bytes however the input is cut, nothing kept (and nothing allocated)
 * for a body without one, and a section past the buffer's ceiling is an
 * invalid encoding. */
static void test_chunked_trailers(void **state)
{
	static const char in[] = "3\r\nabc\r\n0\r\nX-Trailer: t\r\ngrpc-status:0 \r\n\r\nNEXT";
	static const char section[] = "X-Trailer: t\r\ngrpc-status:0 \r\n\r\n";
	for (size_t step = 1; step <= sizeof in; step++) {
		struct ig_buf t;
		ig_buf_init(&t, 1024);
		struct ig_chunked_decoder d = {.trailers = &t};
		ssize_t rc = IG_HTTP_INCOMPLETE;
		for (size_t off = 0; off < sizeof in - 1 && rc == IG_HTTP_INCOMPLETE; off += step) {
			char piece[sizeof in];
			size_t n = sizeof in - 1 - off < step ? sizeof in - 1 - off : step;
			memcpy(piece, in + off, n);
			rc = ig_chunked_decode(&d, piece, &n);
		}
		assert_true(rc >= 0);
		assert_int_equal(t.len, sizeof section - 1);
		assert_memory_equal(t.ptr, section, t.len);
		struct ig_http_header h[4];
		assert_int_equal(ig_http_parse_fields(t.ptr, t.len, h, 4), 2);
		assert_true(ig_str_eq_cstr(h[0].name, "X-Trailer") &&
			    ig_str_eq_cstr(h[0].value, "t"));
		assert_true(ig_str_eq_cstr(h[1].name, "grpc-status") &&
			    ig_str_eq_cstr(h[1].value, "0"));
		assert_int_equal(ig_http_parse_fields(t.ptr, t.len, h, 1),
				 IG_HTTP_TOO_MANY_HEADERS);
		ig_buf_free(&t);
	}

	char plain[] = "2\r\nok\r\n0\r\n\r\n";
	size_t len = sizeof plain - 1;
	struct ig_buf t;
	ig_buf_init(&t, 1024);
	struct ig_chunked_decoder d = {.trailers = &t};
	assert_int_equal(ig_chunked_decode(&d, plain, &len), 0);
	assert_int_equal(t.len, 0);
	assert_null(t.ptr);

	char big[] = "0\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n";
	len = sizeof big - 1;
	struct ig_buf small;
	ig_buf_init(&small, 16);
	d = (struct ig_chunked_decoder){.trailers = &small};
	assert_int_equal(ig_chunked_decode(&d, big, &len), IG_HTTP_INVALID);
	ig_buf_free(&small);

	/* Malformed field lines are not fields. */
	struct ig_http_header h[2];
	assert_int_equal(ig_http_parse_fields("no colon\r\n\r\n", 12, h, 2), IG_HTTP_INVALID);
	assert_int_equal(ig_http_parse_fields(" x: folded\r\n\r\n", 15, h, 2), IG_HTTP_INVALID);
	assert_int_equal(ig_http_parse_fields("a: b\r\n", 6, h, 2), IG_HTTP_INCOMPLETE);
	assert_int_equal(ig_http_parse_fields("\r\n", 2, h, 2), 0);
}

static void test_chunked_empty_and_incomplete(void **state)
{
	char body[64], rest[64];
	size_t bl, rl;

	assert_int_equal(decode_all("0\r\n\r\n", 5, 1, body, &bl, rest, &rl), 0);
	assert_int_equal(bl, 0);
	assert_int_equal(decode_all("000\r\n\r\n", 7, 0, body, &bl, rest, &rl), 0);
	assert_int_equal(decode_all("3\r\nabc\r\n0\r\n", 11, 0, body, &bl, rest, &rl),
			 IG_HTTP_INCOMPLETE);
	assert_int_equal(bl, 3);
	assert_int_equal(decode_all("3\r\nab", 5, 0, body, &bl, rest, &rl), IG_HTTP_INCOMPLETE);
	assert_int_equal(bl, 2);
}

static void test_chunked_invalid(void **state)
{
	static const char *bad[] = {
	    "\r\n",			/* no size */
	    "g\r\n",			/* not hex */
	    "5\nhello\r\n0\r\n\r\n",	/* bare LF */
	    "5\r\nhelloX\r\n0\r\n\r\n", /* data longer than size */
	    "5\r\nhello\rX",		/* bad CR after data */
	    "1 2\r\n",			/* junk after size */
	    "-1\r\n",
	    "1;a\x01\r\n",	     /* control in extension */
	    "0\r\nX: a\rb\r\n\r\n",  /* bare CR in trailer */
	    "0\r\n\rX",		     /* bad final line */
	    "10000000000000000\r\n", /* 17 hex digits overflow */
	};
	char body[64], rest[64];
	size_t bl, rl;

	static const struct ig_chunked_decoder fresh;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (size_t step = 0; step <= 1; step++) {
			ssize_t rc = decode_all(bad[i], strlen(bad[i]), step, body, &bl, rest, &rl);
			if (rc != IG_HTTP_INVALID)
				fail_msg("case %zu step %zu: rc %zd", i, step, rc);
		}
		/* ig_chunked_check finds it too, without decoding. */
		if (ig_chunked_check(&fresh, bad[i], strlen(bad[i])) != IG_HTTP_INVALID)
			fail_msg("case %zu: check missed it", i);
	}
}

/* ig_chunked_check says what the decoder would, from any state, and
 * leaves the decoder and the bytes as they were. */
static void test_chunked_check(void **state)
{
	static const struct ig_chunked_decoder fresh;
	static const char good[] = "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\nnext";
	for (size_t i = 0; i <= strlen(good); i++)
		assert_int_equal(ig_chunked_check(&fresh, good, i), 0);
	/* From the middle of a chunk: its data, then a bad size. */
	struct ig_chunked_decoder d = {0};
	char buf[] = "5\r\nhel";
	size_t len = strlen(buf);
	assert_int_equal(ig_chunked_decode(&d, buf, &len), IG_HTTP_INCOMPLETE);
	struct ig_chunked_decoder before = d;
	assert_int_equal(ig_chunked_check(&d, "lo\r\n2\r\nok\r\n", 11), 0);
	assert_int_equal(ig_chunked_check(&d, "lo\r\nzz\r\n", 9), IG_HTTP_INVALID);
	assert_int_equal(ig_chunked_check(&d, "loX", 3), IG_HTTP_INVALID);
	assert_memory_equal(&d, &before, sizeof d);
}

static void test_chunked_limits(void **state)
{
	char body[64], rest[64];
	size_t bl, rl;
	char *in = malloc(8192);

	/* Max size fits: 16 hex digits of f. */
	assert_int_equal(decode_all("ffffffffffffffff\r\nab", 20, 0, body, &bl, rest, &rl),
			 IG_HTTP_INCOMPLETE);
	assert_int_equal(bl, 2);

	/* A size line of exactly 4 KiB including CR is fine... */
	memset(in, '0', 8192);
	memcpy(in + 4095, "\r\n\r\n", 4);
	assert_int_equal(decode_all(in, 4099, 0, body, &bl, rest, &rl), 0);
	/* ...one more byte is not. */
	memset(in, '0', 8192);
	memcpy(in + 4096, "\r\n\r\n", 4);
	assert_int_equal(decode_all(in, 4100, 0, body, &bl, rest, &rl), IG_HTTP_INVALID);

	/* Long extensions and trailer lines hit the same limit. */
	memset(in, 'a', 8192);
	memcpy(in, "1;", 2);
	assert_int_equal(decode_all(in, 5000, 0, body, &bl, rest, &rl), IG_HTTP_INVALID);
	memcpy(in, "0\r\nX:", 5);
	assert_int_equal(decode_all(in, 5000, 100, body, &bl, rest, &rl), IG_HTTP_INVALID);
	free(in);
}

/* Once the body has ended, every further byte belongs to the next
 * message, and a zero-length call is simply incomplete. */
static void test_chunked_after_end(void **state)
{
	struct ig_chunked_decoder d = {0};
	char buf[32];
	size_t len;

	len = 0;
	assert_int_equal(ig_chunked_decode(&d, buf, &len), IG_HTTP_INCOMPLETE);
	assert_int_equal(len, 0);

	memcpy(buf, "1\r\nA\r\n0\r\n\r\n", 11);
	len = 11;
	assert_int_equal(ig_chunked_decode(&d, buf, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 'A');

	memcpy(buf, "xyz", 3);
	len = 3;
	assert_int_equal(ig_chunked_decode(&d, buf, &len), 3);
	assert_int_equal(len, 0);
	assert_memory_equal(buf, "xyz", 3);
}

/* A chunk split so that the CRLF after the data and the size line of the
 * next chunk arrive in separate calls, with upper-case hex and a large
 * chunk that spans many calls. */
static void test_chunked_large_chunk(void **state)
{
	size_t data_len = 0x1F00;
	size_t in_len = 6 + data_len + 2 + 5;
	char *in = malloc(in_len);
	char *body = malloc(in_len), rest[8];
	size_t bl, rl;

	memcpy(in, "1F00\r\n", 6);
	for (size_t i = 0; i < data_len; i++)
		in[6 + i] = (char)('a' + i % 26);
	memcpy(in + 6 + data_len, "\r\n0\r\n\r\n", 7);
	for (size_t step = 1; step < 1000; step += 333) {
		assert_int_equal(decode_all(in, in_len, step, body, &bl, rest, &rl), 0);
		assert_int_equal(bl, data_len);
		assert_memory_equal(body, in + 6, data_len);
		assert_int_equal(rl, 0);
	}
	free(in);
	free(body);
}

static void test_status_text(void **state)
{
	assert_string_equal(ig_http_status_text(200), "OK");
	assert_string_equal(ig_http_status_text(404), "Not Found");
	assert_string_equal(ig_http_status_text(429), "Too Many Requests");
	assert_string_equal(ig_http_status_text(431), "Request Header Fields Too Large");
	assert_string_equal(ig_http_status_text(503), "Service Unavailable");
	assert_string_equal(ig_http_status_text(999), "Unknown");
	assert_string_equal(ig_http_status_text(-1), "Unknown");
	static const int codes[] = {100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 307,
				    308, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414,
				    415, 422, 429, 431, 500, 501, 502, 503, 504, 505};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_string_not_equal(ig_http_status_text(codes[i]), "Unknown");
}

/* Header names compare case-insensitively for letters only: bytes that
 * differ by 0x20 but are not letters ('@' and '`', '[' and '{') differ. */
static void test_str_ieq(void **state)
{
	(void)state;
	assert_true(ig_str_ieq_cstr(IG_STR("Content-Length"), "content-length"));
	assert_true(ig_str_ieq_cstr(IG_STR("CONTENT-LENGTH"), "content-length"));
	assert_true(ig_str_ieq_cstr(IG_STR(""), ""));
	assert_false(ig_str_ieq_cstr(IG_STR("content-lengt"), "content-length"));
	assert_false(ig_str_ieq_cstr(IG_STR("content-lengthx"), "content-length"));
	assert_false(ig_str_ieq_cstr(IG_STR("content_length"), "content-length"));
	assert_false(ig_str_ieq(IG_STR("a@b"), IG_STR("a`b")));
	assert_false(ig_str_ieq(IG_STR("x[y"), IG_STR("x{y")));
	assert_false(ig_str_ieq(IG_STR("1"), IG_STR("\x11")));
	assert_true(ig_str_ieq(IG_STR("aZ09-_"), IG_STR("Az09-_")));
	/* Every pair of bytes: equal exactly when the same byte or the same
	 * letter in two cases. */
	for (int x = 0; x < 256; x++)
		for (int y = 0; y < 256; y++) {
			char a = (char)x, b = (char)y;
			bool letter = (x | 0x20) >= 'a' && (x | 0x20) <= 'z';
			bool want = x == y || (letter && (x | 0x20) == (y | 0x20));
			assert_int_equal(ig_str_ieq((struct ig_str){&a, 1}, (struct ig_str){&b, 1}),
					 want);
		}
}

/* RFC 3986 §5.2.4's examples and Envoy's normalize_path cases: the
 * normal form, and whether the quick test saw a change coming. */
static void test_path_normalize(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"/", "/"},
	    {"/v1/completions", "/v1/completions"},
	    {"/a/b/c/./../../g", "/a/g"},
	    {"/mid/content=5/../6", "/mid/6"},
	    {"/public/../admin", "/admin"},
	    {"/public/%2e%2e/admin", "/admin"},
	    {"/public/%2E./admin", "/admin"},
	    {"/..", "/"},
	    {"/../../a", "/a"},
	    {"/.", "/"},
	    {"/a/.", "/a/"},
	    {"/a/..", "/"},
	    {"/a/b/..", "/a/"},
	    {"/a/./b/", "/a/b/"},
	    {"/a//../b", "/a/b"},
	    {"/a//b", "/a//b"},
	    {"/a/.b/..c/...", "/a/.b/..c/..."},
	    {"/file.txt", "/file.txt"},
	    {"/%7Euser/%41%62c", "/~user/Abc"},
	    {"/a%2Fb/%2f..", "/a%2Fb/%2f.."},
	    {"/%zz/%4", "/%zz/%4"},
	    {"/%2", "/%2"},
	    {"/caf%C3%A9", "/caf%C3%A9"},
	    {"/a%2e/b", "/a./b"},
	    /* no new escape made of decoded bytes: "%41" would decode again */
	    {"/%%341", "/%%341"},
	    {"/%4%31", "/%4%31"},
	    {"/%%34%31", "/%%341"},
	    {"/%%7E", "/%~"},
	    {"/%254%31", "/%2541"},
	    /* a backslash is a "/" (Envoy's canonicalizer): "..\\" is a segment */
	    {"/public/..\\admin", "/admin"},
	    {"/a\\b", "/a/b"},
	    {"/\\..\\x\\", "/x/"},
	    /* an escaped NUL is refused (Envoy: 400) */
	    {"/a%00b", NULL},
	    {"/xyz/.%00../abc", NULL},
	    {"/%2500", "/%2500"},
	};
	char out[64];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_str in = ig_str_from(cases[i].in);
		ssize_t n = ig_http_path_normalize(in, out);
		if (!cases[i].out) {
			assert_int_equal(n, -1);
			assert_true(ig_http_path_needs_normalizing(in));
			continue;
		}
		assert_true(n >= 0 && (size_t)n <= in.len);
		out[n] = '\0';
		assert_string_equal(out, cases[i].out);
		assert_int_equal(ig_http_path_needs_normalizing(in),
				 strcmp(cases[i].in, cases[i].out) != 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_str_ieq),
	    cmocka_unit_test(test_request_complete),
	    cmocka_unit_test(test_request_no_query),
	    cmocka_unit_test(test_request_every_split),
	    cmocka_unit_test(test_request_invalid),
	    cmocka_unit_test(test_request_long_values),
	    cmocka_unit_test(test_request_versions),
	    cmocka_unit_test(test_request_obs_text_value),
	    cmocka_unit_test(test_request_too_many_headers),
	    cmocka_unit_test(test_response_parse),
	    cmocka_unit_test(test_response_invalid),
	    cmocka_unit_test(test_request_framing),
	    cmocka_unit_test(test_request_framing_not_implemented),
	    cmocka_unit_test(test_request_framing_errors),
	    cmocka_unit_test(test_connection_names),
	    cmocka_unit_test(test_request_connection),
	    cmocka_unit_test(test_websocket_handshake),
	    cmocka_unit_test(test_response_framing),
	    cmocka_unit_test(test_chunked_basic),
	    cmocka_unit_test(test_chunked_trailer_ceilings),
	    cmocka_unit_test(test_chunked_trailers),
	    cmocka_unit_test(test_chunked_empty_and_incomplete),
	    cmocka_unit_test(test_chunked_invalid),
	    cmocka_unit_test(test_chunked_check),
	    cmocka_unit_test(test_chunked_limits),
	    cmocka_unit_test(test_chunked_after_end),
	    cmocka_unit_test(test_chunked_large_chunk),
	    cmocka_unit_test(test_status_text),
	    cmocka_unit_test(test_path_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
