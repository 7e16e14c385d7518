/* Unit tests for the HTTP server's HTTP/2 side (http/server_h2.c), driven
 * on one thread as test_server.c drives HTTP/1.1: the server listens on
 * 127.0.0.1, the test's end is an nghttp2 client session over a plain
 * socket, and the loop runs one iteration at a time between the client's
 * sends and reads.
 *
 * The handler's behaviour is chosen by the request path:
 *   /echo...    answers at once: "<method> <target> <host> <n>:<body>"
 *   /hold       never answers; the test answers F->held itself
 *   /stream     head now, "hello" and "world" and the end from a timer
 *   /big/<n>    <n> pattern bytes streamed with backpressure
 *   /abort      head and "partial", then ig_http_abort */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "http/server.h"
#include "loopback.h"

#define WAIT_MS 3000
#define NSTREAMS 16

struct stream {
	int status;
	char *data;
	size_t len;
	bool closed;
	uint32_t code;	    /* of the close: 0 ended, else the reset's error code */
	char head[256];	    /* the response head's fields but :status, "name=value;" */
	char trailers[256]; /* the same for a trailing HEADERS frame */
	int data_frames;
	bool ended_on_head; /* END_STREAM came on the response HEADERS */
	int dates;	    /* date fields of the response head (kept out of head) */
	/* A request body given out as it is appended (up_eof: the end). */
	char *up;
	size_t up_len, up_off;
	bool up_eof;
};

struct client {
	struct peer *p;
	nghttp2_session *ng;
	size_t fed; /* bytes of p->data given to nghttp2 */
	struct stream st[NSTREAMS];
	bool goaway;
	uint32_t goaway_code;
};

struct fx {
	struct ig_loop loop;
	struct ig_http_server *srv;
	int port;
	int nreq, naborts, nwritable, nfull, nbody_calls;
	struct ig_http_exchange *held;
	struct peer peer;
	struct client cli;
};

static struct fx *F;

struct rq {
	struct ig_timer timer;
	struct ig_http_exchange *ex;
	size_t sent, total;
};

/* ---- the server's handler ---- */

static char pattern_byte(size_t i)
{
	return (char)('a' + i % 23);
}

static void on_abort(struct ig_http_exchange *ex)
{
	struct rq *r = ex->user;
	F->naborts++;
	ig_timer_stop(&F->loop, &r->timer);
	if (F->held == ex)
		F->held = NULL;
}

static void on_stream_step(struct ig_loop *loop, struct ig_timer *t)
{
	struct rq *r = t->data;
	assert_int_equal(ig_http_write(r->ex, "hello", 5), 0);
	assert_int_equal(ig_http_write(r->ex, "world", 5), 0);
	assert_int_equal(ig_http_end(r->ex), 0);
}

static void big_pump(struct rq *r)
{
	char block[4096];
	while (r->sent < r->total) {
		size_t n = r->total - r->sent < sizeof block ? r->total - r->sent : sizeof block;
		for (size_t i = 0; i < n; i++)
			block[i] = pattern_byte(r->sent + i);
		int rc = ig_http_write(r->ex, block, n);
		assert_true(rc >= 0);
		r->sent += n;
		if (rc == 1) {
			F->nfull++;
			return;
		}
	}
	assert_int_equal(ig_http_end(r->ex), 0);
}

static void on_big_writable(struct ig_http_exchange *ex)
{
	F->nwritable++;
	big_pump(ex->user);
}

static void on_streamed_body(struct ig_http_exchange *ex)
{
	F->nbody_calls++;
	if (ex->body.len) {
		assert_true(ig_http_write(ex, ex->body.ptr, ex->body.len) >= 0);
		ig_http_body_consume(ex, ex->body.len);
	}
	if (ex->body_done)
		assert_int_equal(ig_http_end(ex), 0);
}

/* Streams the bodies of requests to /stream-body and of nothing else. */
static bool stream_body(struct ig_http_exchange *ex, void *ctx)
{
	return ig_str_eq_cstr(ex->req.path, "/stream-body");
}

static void handler(struct ig_http_exchange *ex, void *ctx)
{
	F->nreq++;
	assert_non_null(ex->h2);
	struct rq *r = ig_arena_calloc(ex->arena, sizeof *r);
	assert_non_null(r);
	r->ex = ex;
	ex->user = r;
	ex->on_abort = on_abort;
	struct ig_str path = ex->req.path;
	if (ig_str_eq_cstr(path, "/hold")) {
		F->held = ex;
	} else if (ig_str_eq_cstr(path, "/stream")) {
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, -1), 0);
		ig_timer_start(&F->loop, &r->timer, 10, on_stream_step, r);
	} else if (path.len > 5 && memcmp(path.ptr, "/big/", 5) == 0) {
		r->total = strtoul(path.ptr + 5, NULL, 10);
		ex->on_writable = on_big_writable;
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, (int64_t)r->total), 0);
		big_pump(r);
	} else if (ig_str_eq_cstr(path, "/trailers") || ig_str_eq_cstr(path, "/trailers-only")) {
		static const struct ig_http_header t[] = {
		    {IG_STR("grpc-status"), IG_STR("0")},
		    {IG_STR("Content-Length"), IG_STR("5")},
		    {IG_STR("X-T"), IG_STR("v")},
		};
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, -1), 0);
		if (ig_str_eq_cstr(path, "/trailers"))
			assert_int_equal(ig_http_write(ex, "hello", 5), 0);
		assert_int_equal(ig_http_end_trailers(ex, t, 3), 0);
	} else if (ig_str_eq_cstr(path, "/empty")) {
		static const struct ig_http_header h = {IG_STR("grpc-status"), IG_STR("5")};
		assert_int_equal(ig_http_start_response(ex, 200, &h, 1, 0), 0);
		assert_int_equal(ig_http_end(ex), 0);
	} else if (ig_str_eq_cstr(path, "/stream-body")) {
		/* The body as it comes: each piece echoed back, the end ends. */
		assert_true(ex->body_streaming);
		ex->on_body = on_streamed_body;
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, -1), 0);
		on_streamed_body(ex);
	} else if (ig_str_eq_cstr(path, "/abort")) {
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, -1), 0);
		assert_int_equal(ig_http_write(ex, "partial", 7), 0);
		ig_http_abort(ex);
	} else {
		const struct ig_http_header *h =
		    ig_http_find_header(ex->req.headers, ex->req.num_headers, "host");
		char out[512];
		int n = snprintf(out, sizeof out, "%.*s %.*s %.*s %zu:%.*s",
				 IG_STR_FMT(ex->req.method), IG_STR_FMT(ex->req.target),
				 h ? (int)h->value.len : 1, h ? h->value.ptr : "-", ex->body.len,
				 (int)ex->body.len, ex->body.ptr ? ex->body.ptr : "");
		assert_int_equal(ig_http_respond(ex, 200, "text/plain", out, (size_t)n, NULL, 0),
				 0);
	}
}

/* ---- the test's nghttp2 client ---- */

static struct stream *stream_at(struct client *c, int32_t id)
{
	assert_true(id > 0 && (id - 1) / 2 < NSTREAMS);
	return &c->st[(id - 1) / 2];
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct stream *s = stream_at(ud, f->hd.stream_id);
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		s->status = atoi((const char *)value);
	else if (namelen == 4 && memcmp(name, "date", 4) == 0 &&
		 f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
		/* RFC 9110 §6.6.1: an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". */
		assert_int_equal(valuelen, 29);
		assert_memory_equal(value + 25, " GMT", 4);
		s->dates++;
	} else {
		char *to = f->headers.cat == NGHTTP2_HCAT_HEADERS ? s->trailers : s->head;
		size_t at = strlen(to);
		snprintf(to + at, sizeof s->head - at, "%.*s=%.*s;", (int)namelen, name,
			 (int)valuelen, value);
	}
	/* No connection-specific field, and every name lowercase. */
	assert_false(namelen == 10 && memcmp(name, "connection", 10) == 0);
	for (size_t i = 0; i < namelen; i++)
		assert_false(name[i] >= 'A' && name[i] <= 'Z');
	return 0;
}

static int cb_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *ud)
{
	struct stream *s = stream_at(ud, id);
	s->data = realloc(s->data, s->len + len + 1);
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
	return 0;
}

static int cb_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct stream *s = stream_at(ud, id);
	s->closed = true;
	s->code = code;
	return 0;
}

static int cb_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct client *c = ud;
	if (f->hd.type == NGHTTP2_DATA)
		stream_at(c, f->hd.stream_id)->data_frames++;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		stream_at(c, f->hd.stream_id)->ended_on_head = true;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = true;
		c->goaway_code = f->goaway.error_code;
	}
	return 0;
}

/* Connects and sends the preface; auto_window: give flow-control credit
 * back as data arrives (else only client_consume does). */
static struct client *client_open(bool auto_window)
{
	struct client *c = &F->cli;
	int fd = tcp_connect(F->port);
	assert_true(fd >= 0);
	peer_init(&F->peer, fd);
	c->p = &F->peer;
	nghttp2_session_callbacks *cb;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, cb_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, cb_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cb_frame);
	nghttp2_option *opt;
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, !auto_window);
	assert_int_equal(nghttp2_session_client_new2(&c->ng, cb, c, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	return c;
}

/* Sends what the client has, runs the loop once, takes what came. */
static void pump(struct client *c)
{
	const uint8_t *d;
	ssize_t n;
	while ((n = nghttp2_session_mem_send(c->ng, &d)) > 0)
		peer_write_loop(&F->loop, c->p, d, (size_t)n);
	ig_loop_run_once(&F->loop, 1);
	peer_read(c->p);
	if (c->p->len > c->fed) {
		ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)c->p->data + c->fed,
						     c->p->len - c->fed);
		assert_true(r >= 0);
		c->fed = c->p->len;
	}
}

#define PUMP_UNTIL(c, cond)                                                                        \
	do {                                                                                       \
		uint64_t t0_ = ig_now_ns();                                                        \
		while (!(cond)) {                                                                  \
			assert_true(ms_since(t0_) < WAIT_MS);                                      \
			pump(c);                                                                   \
		}                                                                                  \
	} while (0)

/* A request without a body on a new stream. */
static int32_t request(struct client *c, const char *method, const char *path)
{
	nghttp2_nv nva[] = {
	    {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
	    {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
	    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
	    {(uint8_t *)":authority", (uint8_t *)"h2.test", 10, 7, 0},
	};
	int32_t id = nghttp2_submit_request(c->ng, NULL, nva, 4, NULL, NULL);
	assert_true(id > 0);
	return id;
}

/* A request with these fields after the pseudo-fields of request(). */
static int32_t request_with(struct client *c, const char *path, const char *const *fields)
{
	nghttp2_nv nva[16] = {
	    {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
	    {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
	    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
	    {(uint8_t *)":authority", (uint8_t *)"h2.test", 10, 7, 0},
	};
	size_t n = 4;
	for (size_t i = 0; fields && fields[i]; i += 2, n++) {
		assert_true(n < 16);
		nva[n] = (nghttp2_nv){(uint8_t *)fields[i], (uint8_t *)fields[i + 1],
				      strlen(fields[i]), strlen(fields[i + 1]), 0};
	}
	int32_t id = nghttp2_submit_request(c->ng, NULL, nva, n, NULL, NULL);
	assert_true(id > 0);
	return id;
}

/* ---- fixture ---- */

/* The head limit of the next setup (0: the default). */
static size_t next_max_header;

static int setup(void **state)
{
	F = calloc(1, sizeof *F);
	assert_int_equal(ig_loop_init(&F->loop), 0);
	F->peer.fd = -1;
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	if (next_max_header)
		cfg.max_header_bytes = next_max_header;
	cfg.http2 = true;
	cfg.write_high_water = 64 * 1024;
	cfg.stream_body = stream_body;
	int fd = tcp_listen(64, &F->port);
	assert_true(fd >= 0);
	F->srv = ig_http_server_new(&F->loop, fd, &cfg, handler, F);
	assert_non_null(F->srv);
	*state = F;
	return 0;
}

static int teardown(void **state)
{
	if (F->cli.ng)
		nghttp2_session_del(F->cli.ng);
	for (int i = 0; i < NSTREAMS; i++)
		free(F->cli.st[i].data);
	peer_close(&F->peer);
	ig_http_server_free(F->srv);
	ig_loop_free(&F->loop);
	free(F);
	F = NULL;
	return 0;
}

static size_t server_bytes(void)
{
	size_t n, b;
	ig_http_server_memory(F->srv, &n, &b);
	return b;
}

/* ---- tests ---- */

/* Streams side by side on one connection; the request as HTTP/1.1 would
 * show it (:authority as Host); nothing held once they are done. */
static void test_streams(void **state)
{
	struct client *c = client_open(true);
	/* The server's SETTINGS have come (its stream window is not the
	 * protocol's default). */
	PUMP_UNTIL(c, nghttp2_session_get_remote_settings(
			  c->ng, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) == 1024 * 1024);
	size_t idle = server_bytes();
	int32_t a = request(c, "GET", "/echo?x=1");
	int32_t b = request(c, "GET", "/stream");
	int32_t d = request(c, "HEAD", "/echo");
	PUMP_UNTIL(c,
		   stream_at(c, a)->closed && stream_at(c, b)->closed && stream_at(c, d)->closed);
	assert_int_equal(stream_at(c, a)->status, 200);
	assert_string_equal(stream_at(c, a)->data, "GET /echo?x=1 h2.test 0:");
	assert_int_equal(stream_at(c, b)->status, 200);
	assert_string_equal(stream_at(c, b)->data, "helloworld");
	assert_int_equal(stream_at(c, d)->status, 200);
	assert_int_equal(stream_at(c, d)->len, 0); /* HEAD: no body */
	assert_int_equal(F->nreq, 3);
	assert_int_equal(F->naborts, 0);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	PUMP_UNTIL(c, server_bytes() <= idle);
}

static ssize_t up_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct stream *s = stream_at(ud, id);
	size_t n = s->up_len - s->up_off < len ? s->up_len - s->up_off : len;
	if (!n && !s->up_eof)
		return NGHTTP2_ERR_DEFERRED;
	memcpy(buf, s->up + s->up_off, n);
	s->up_off += n;
	if (s->up_off == s->up_len && s->up_eof)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* A POST whose body is given later (up_send). */
static int32_t open_request(struct client *c, const char *path)
{
	nghttp2_nv nva[] = {
	    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
	    {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
	    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
	    {(uint8_t *)":authority", (uint8_t *)"h2.test", 10, 7, 0},
	};
	nghttp2_data_provider prd = {.read_callback = up_read};
	int32_t id = nghttp2_submit_request(c->ng, NULL, nva, 4, &prd, NULL);
	assert_true(id > 0);
	return id;
}

static void up_send(struct client *c, int32_t id, const void *data, size_t len, bool eof)
{
	struct stream *s = stream_at(c, id);
	s->up = realloc(s->up, s->up_len + len + 1);
	memcpy(s->up + s->up_len, data, len);
	s->up_len += len;
	s->up_eof = eof;
	nghttp2_session_resume_data(c->ng, id);
}

/* A streamed body (stream_body): the handler has the request at once and
 * each piece as it comes, answering before the body ends; credit goes
 * back as it consumes, so a body larger than the 1 MiB stream window and
 * the 4 MiB connection window goes through; a buffered request on the same
 * connection is unaffected. */
static void test_streamed_body(void **state)
{
	struct client *c = client_open(true);
	int32_t a = open_request(c, "/stream-body");
	PUMP_UNTIL(c, F->nreq == 1);
	assert_int_equal(stream_at(c, a)->len, 0);
	up_send(c, a, "ping", 4, false);
	PUMP_UNTIL(c, stream_at(c, a)->len == 4);
	assert_string_equal(stream_at(c, a)->data, "ping");
	assert_false(stream_at(c, a)->closed);
	up_send(c, a, "pong", 4, false);
	PUMP_UNTIL(c, stream_at(c, a)->len == 8);
	/* 6 MiB more in one go, then the end. */
	size_t big = 6u << 20;
	char *blk = malloc(big);
	memset(blk, 'x', big);
	up_send(c, a, blk, big, true);
	free(blk);
	int32_t b = request(c, "GET", "/echo");
	PUMP_UNTIL(c, stream_at(c, a)->closed && stream_at(c, b)->closed);
	assert_int_equal(stream_at(c, a)->code, 0);
	assert_int_equal(stream_at(c, a)->len, 8 + big);
	assert_string_equal(stream_at(c, b)->data, "GET /echo h2.test 0:");
	assert_true(F->nbody_calls >= 3);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	free(stream_at(c, a)->up);
}

/* Trailer fields end a stream as a trailing HEADERS frame (names lower
 * case, framing fields left out), after a body or none; an empty body
 * without trailers ends on the response HEADERS itself, with no
 * content-length (gRPC's Trailers-Only answer). */
static void test_trailers(void **state)
{
	struct client *c = client_open(true);
	int32_t a = request(c, "GET", "/trailers");
	int32_t b = request(c, "GET", "/trailers-only");
	int32_t d = request(c, "GET", "/empty");
	PUMP_UNTIL(c,
		   stream_at(c, a)->closed && stream_at(c, b)->closed && stream_at(c, d)->closed);
	struct stream *sa = stream_at(c, a), *sb = stream_at(c, b), *sd = stream_at(c, d);
	assert_int_equal(sa->code, 0);
	assert_string_equal(sa->data, "hello");
	assert_string_equal(sa->head, "");
	assert_string_equal(sa->trailers, "grpc-status=0;x-t=v;");
	assert_int_equal(sb->code, 0);
	assert_int_equal(sb->len, 0);
	assert_string_equal(sb->trailers, "grpc-status=0;x-t=v;");
	assert_false(sb->ended_on_head);
	assert_int_equal(sd->code, 0);
	assert_true(sd->ended_on_head);
	assert_int_equal(sd->data_frames, 0);
	assert_string_equal(sd->head, "grpc-status=5;");
	assert_string_equal(sd->trailers, "");
	/* Every response head has its one Date, Trailers-Only's too; no
	 * trailer section gets one. */
	assert_int_equal(sa->dates, 1);
	assert_int_equal(sb->dates, 1);
	assert_int_equal(sd->dates, 1);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
}

static int setup_small_head(void **state)
{
	next_max_header = 1024;
	int rc = setup(state);
	next_max_header = 0;
	return rc;
}

/* The head limit as on HTTP/1.1: a :path over it by itself is 414 (RFC
 * 9112 §3), other fields over it 431; the connection goes on. */
static void test_head_limits(void **state)
{
	struct client *c = client_open(true);
	char *big = malloc(2001);
	memset(big, 'a', 2000);
	big[0] = '/';
	big[2000] = '\0';
	int32_t a = request(c, "GET", big);
	const char *const fields[] = {"x-big", big, NULL};
	int32_t b = request_with(c, "/echo", fields);
	int32_t d = request(c, "GET", "/echo");
	PUMP_UNTIL(c,
		   stream_at(c, a)->closed && stream_at(c, b)->closed && stream_at(c, d)->closed);
	free(big);
	assert_int_equal(stream_at(c, a)->status, 414);
	assert_int_equal(stream_at(c, b)->status, 431);
	assert_int_equal(stream_at(c, d)->status, 200);
	assert_int_equal(F->nreq, 1);
}

/* The request as nghttp2 lets it through: `nv` are the fields after
 * :method and :scheme. */
static int32_t request_nv(struct client *c, const char *method, const nghttp2_nv *nv, size_t n)
{
	nghttp2_nv nva[16] = {
	    {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
	    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
	};
	assert_true(n <= 14);
	memcpy(nva + 2, nv, n * sizeof *nv);
	int32_t id = nghttp2_submit_request(c->ng, NULL, nva, n + 2, NULL, NULL);
	assert_true(id > 0);
	return id;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

/* Requests answered 400 before any handler: what the HTTP/1.1 front end
 * refuses is malformed over HTTP/2 too. */
static void expect_400s(struct client *c, const nghttp2_nv (*reqs)[3], size_t n)
{
	int32_t ids[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		ids[i] = request_nv(c, "GET", reqs[i], 3);
	for (size_t i = 0; i < n; i++) {
		PUMP_UNTIL(c, stream_at(c, ids[i])->closed);
		if (stream_at(c, ids[i])->status != 400)
			fail_msg("case %zu: status %d", i, stream_at(c, ids[i])->status);
	}
	assert_int_equal(F->nreq, 0);
}

/* A fragment is the client's own (RFC 9110 §7.1): a :path with one is
 * 400, as an HTTP/1.1 target with one is. */
static void test_fragment_refused(void **state)
{
	struct client *c = client_open(true);
	static const nghttp2_nv reqs[][3] = {
	    {NV(":path", "/echo#x"), NV(":authority", "h2.test"), NV("x", "1")},
	    {NV(":path", "/echo?a=1#"), NV(":authority", "h2.test"), NV("x", "1")},
	};
	expect_400s(c, reqs, sizeof reqs / sizeof reqs[0]);
}

/* RFC 9113 §8.3.1: no userinfo in :authority, and a host field that
 * names another authority makes the request malformed; :path bytes are
 * VCHARs, as in an HTTP/1.1 request-target. All 400, as on HTTP/1.1. */
static void test_authority_and_path_refused(void **state)
{
	struct client *c = client_open(true);
	static const nghttp2_nv reqs[][3] = {
	    {NV(":path", "/echo"), NV(":authority", "u@h2.test"), NV("x", "1")},
	    {NV(":path", "/echo"), NV(":authority", "u:p@h2.test"), NV("x", "1")},
	    {NV(":path", "/echo\xff"), NV(":authority", "h2.test"), NV("x", "1")},
	    {NV(":path", "/caf\xc3\xa9"), NV(":authority", "h2.test"), NV("x", "1")},
	    {NV(":path", "/echo"), NV(":authority", "h2.test"), NV("host", "other.test")},
	    {NV(":path", "/echo"), NV(":authority", "h2.test"), NV("host", "h2.test:8080")},
	    {NV(":path", "/echo"), NV("host", "u@h2.test"), NV("x", "1")},
	};
	expect_400s(c, reqs, sizeof reqs / sizeof reqs[0]);
	/* Two host fields: nghttp2 resets the stream itself. */
	static const nghttp2_nv two[] = {NV(":path", "/echo"), NV("host", "h2.test"),
					 NV("host", "h2.test")};
	int32_t t = request_nv(c, "GET", two, 3);
	PUMP_UNTIL(c, stream_at(c, t)->closed);
	assert_int_equal(stream_at(c, t)->code, NGHTTP2_PROTOCOL_ERROR);
	assert_int_equal(F->nreq, 0);
	/* The same authority written otherwise (case, the scheme's default
	 * port) is no conflict; a host field alone is the Host. */
	static const nghttp2_nv ok[][3] = {
	    {NV(":path", "/echo"), NV(":authority", "h2.test"), NV("host", "H2.Test:80")},
	    {NV(":path", "/echo"), NV(":authority", "h2.test:80"), NV("host", "h2.test")},
	    {NV(":path", "/echo"), NV("host", "alone.test"), NV("x", "1")},
	};
	int32_t ids[3];
	for (size_t i = 0; i < 3; i++)
		ids[i] = request_nv(c, "GET", ok[i], 3);
	PUMP_UNTIL(c, stream_at(c, ids[0])->closed && stream_at(c, ids[1])->closed &&
			  stream_at(c, ids[2])->closed);
	assert_string_equal(stream_at(c, ids[0])->data, "GET /echo h2.test 0:");
	assert_string_equal(stream_at(c, ids[1])->data, "GET /echo h2.test:80 0:");
	assert_string_equal(stream_at(c, ids[2])->data, "GET /echo alone.test 0:");
}

/* ":path *" is OPTIONS's alone (RFC 9113 §8.3.1), as "*" is over
 * HTTP/1.1: with OPTIONS it reaches the handler, with GET it does not
 * (nghttp2 or the server refuses it). */
static void test_asterisk_target(void **state)
{
	struct client *c = client_open(true);
	int32_t o = request(c, "OPTIONS", "*");
	int32_t g = request(c, "GET", "*");
	PUMP_UNTIL(c, stream_at(c, o)->closed && stream_at(c, g)->closed);
	assert_string_equal(stream_at(c, o)->data, "OPTIONS * h2.test 0:");
	assert_true(stream_at(c, g)->status == 400 || stream_at(c, g)->code != 0);
	assert_int_equal(F->nreq, 1);
}

/* A stream the client resets aborts its exchange alone. */
static void test_client_reset_aborts(void **state)
{
	struct client *c = client_open(true);
	int32_t h = request(c, "GET", "/hold");
	PUMP_UNTIL(c, F->held != NULL);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	assert_int_equal(nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, h, NGHTTP2_CANCEL), 0);
	PUMP_UNTIL(c, F->naborts == 1);
	assert_null(F->held);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	int32_t e = request(c, "GET", "/echo");
	PUMP_UNTIL(c, stream_at(c, e)->closed);
	assert_int_equal(stream_at(c, e)->status, 200);
}

/* ig_http_abort resets its stream (INTERNAL_ERROR), not the connection. */
static void test_abort_resets_one_stream(void **state)
{
	struct client *c = client_open(true);
	int32_t a = request(c, "GET", "/abort");
	int32_t e = request(c, "GET", "/echo");
	PUMP_UNTIL(c, stream_at(c, a)->closed && stream_at(c, e)->closed);
	assert_int_equal(stream_at(c, a)->code, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(stream_at(c, e)->code, 0);
	assert_int_equal(stream_at(c, e)->status, 200);
	assert_int_equal(F->naborts, 0); /* the handler's own abort calls no on_abort */
	assert_false(peer_closed(c->p));
}

/* A client that gives no flow-control credit holds the handler back
 * (ig_http_write returns 1) with bounded memory; credit given, the rest
 * flows and on_writable resumes the handler. */
static void test_backpressure(void **state)
{
	struct client *c = client_open(false);
	int32_t b = request(c, "GET", "/big/1000000");
	PUMP_UNTIL(c, F->nfull > 0);
	for (int i = 0; i < 50; i++)
		pump(c);
	assert_true(stream_at(c, b)->len <= 65535);
	assert_true(server_bytes() < 512 * 1024);
	uint64_t t0 = ig_now_ns();
	size_t consumed = 0;
	while (!stream_at(c, b)->closed) {
		if (ms_since(t0) > WAIT_MS)
			fail_msg("stuck at %zu bytes, %d full, %d writable", stream_at(c, b)->len,
				 F->nfull, F->nwritable);
		size_t got = stream_at(c, b)->len - consumed;
		if (got) {
			nghttp2_session_consume_connection(c->ng, got);
			nghttp2_session_consume_stream(c->ng, b, got);
			consumed += got;
		}
		pump(c);
	}
	struct stream *s = stream_at(c, b);
	assert_int_equal(s->code, 0);
	assert_int_equal(s->len, 1000000);
	for (size_t i = 0; i < s->len; i += 4999)
		assert_int_equal(s->data[i], pattern_byte(i));
	assert_true(F->nwritable > 0);
}

/* A drain sends GOAWAY, lets the open stream finish, then closes. */
static void test_drain(void **state)
{
	struct client *c = client_open(true);
	int32_t h = request(c, "GET", "/hold");
	PUMP_UNTIL(c, F->held != NULL);
	ig_http_server_drain(F->srv);
	PUMP_UNTIL(c, c->goaway);
	assert_int_equal(c->goaway_code, NGHTTP2_NO_ERROR);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	assert_int_equal(ig_http_respond(F->held, 200, NULL, "bye", 3, NULL, 0), 0);
	PUMP_UNTIL(c, stream_at(c, h)->closed);
	assert_string_equal(stream_at(c, h)->data, "bye");
	PUMP_UNTIL(c, peer_closed(c->p));
	assert_int_equal(ig_http_server_busy(F->srv), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trailers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_streamed_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_reset_aborts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_resets_one_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_limits, setup_small_head, teardown),
	    cmocka_unit_test_setup_teardown(test_fragment_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_asterisk_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_authority_and_path_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
