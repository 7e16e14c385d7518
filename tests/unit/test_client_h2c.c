/* Unit tests for the h2c mode of the upstream client, driven on one
 * thread: the "model server" is an nghttp2 server session of the test on
 * the accepted end of a loopback connection. The test pumps both sides in
 * turn (one loop iteration, then whatever the server has to read and
 * write), decides what the server answers (HEADERS, DATA in pieces,
 * RST_STREAM, GOAWAY, PING, raw bytes), and checks what the client's
 * callbacks saw and what the server received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "core/buf.h"
#include "core/log.h"
#include "http/client.h"
#include "loopback.h"

#define WAIT_MS 3000

enum cb_kind { CB_NONE, CB_HEAD, CB_BODY, CB_DONE, CB_ERROR, CB_IDLE };

/* The test's server: one connection, one nghttp2 server session. */
struct srv {
	int fd;
	nghttp2_session *ng;
	bool eof;
	/* What the current request brought: "name: value\n" lines (pseudo
	 * fields too), the body, its stream and whether it ended. */
	struct ig_buf hdrs, body;
	int32_t sid;
	int requests_ended;
	int pings_acked;
	/* The response body, given out as it is appended. */
	struct ig_buf out;
	size_t out_pos;
	bool out_eof;
	/* Trailer fields (name, value, ..., NULL) that end the body, if set. */
	const char *const *trailers;
};

struct cx {
	struct ig_loop loop;
	int lfd, port;
	struct srv s;
	struct ig_http_client *c; /* NULL once closed */
	int nhead, nbody, ndone, nerror, nidle, nwritable;
	int status;
	char hdr[64];	    /* the value of X-H in the head */
	char trailers[128]; /* the trailer fields at on_done, "name=value;" each */
	int64_t body_length;
	struct ig_buf body;
	struct ig_http_client_fault fault;
	bool reusable_at_done;
	enum cb_kind close_in;
	int head_rc;
	bool pause_on_body;
	bool park_in_done;
};

static struct cx *X;

/* ---- the client's callbacks ---- */

static void maybe_close(enum cb_kind where, struct ig_http_client *c)
{
	assert_ptr_equal(c, X->c);
	if (X->close_in == where) {
		ig_http_client_close(c);
		X->c = NULL;
	}
}

static void on_idle(struct ig_http_client *c, void *ud)
{
	assert_ptr_equal(ud, X);
	X->nidle++;
	maybe_close(CB_IDLE, c);
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	assert_ptr_equal(ud, X);
	assert_int_equal(X->nbody + X->ndone + X->nerror, 0);
	X->nhead++;
	X->status = res->status;
	X->body_length = ig_http_client_body_length(c);
	const struct ig_http_header *h = ig_http_find_header(res->headers, res->num_headers, "X-H");
	snprintf(X->hdr, sizeof X->hdr, "%.*s", h ? (int)h->value.len : 0, h ? h->value.ptr : "");
	maybe_close(CB_HEAD, c);
	return X->head_rc;
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	assert_int_equal(X->nhead, 1);
	X->nbody++;
	ig_buf_append(&X->body, data, len);
	maybe_close(CB_BODY, c);
	return X->pause_on_body ? 1 : 0;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	assert_int_equal(X->ndone + X->nerror, 0);
	X->ndone++;
	X->reusable_at_done = ig_http_client_reusable(c);
	struct ig_http_header t[4];
	size_t nt = ig_http_client_trailers(c, t, 4), at = 0;
	X->trailers[0] = '\0';
	for (size_t i = 0; i < nt && at < sizeof X->trailers; i++)
		at += (size_t)snprintf(X->trailers + at, sizeof X->trailers - at, "%.*s=%.*s;",
				       (int)t[i].name.len, t[i].name.ptr, (int)t[i].value.len,
				       t[i].value.ptr);
	if (X->park_in_done && X->close_in != CB_DONE)
		ig_http_client_park(c, on_idle, X);
	maybe_close(CB_DONE, c);
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	assert_int_equal(X->ndone + X->nerror, 0);
	X->nerror++;
	X->fault = *f;
	maybe_close(CB_ERROR, c);
}

static void on_writable(struct ig_http_client *c, void *ud)
{
	X->nwritable++;
}

static const struct ig_http_client_cbs cbs = {on_head, on_body, on_done, on_error, on_writable};

/* ---- the server ---- */

static int s_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct srv *S = ud;
	S->sid = f->hd.stream_id;
	ig_buf_reset(&S->hdrs);
	ig_buf_reset(&S->body);
	return 0;
}

static int s_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
		    const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct srv *S = ud;
	ig_buf_append(&S->hdrs, name, namelen);
	ig_buf_append(&S->hdrs, ": ", 2);
	ig_buf_append(&S->hdrs, value, valuelen);
	ig_buf_append(&S->hdrs, "\n", 1);
	return 0;
}

static int s_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
		  void *ud)
{
	struct srv *S = ud;
	ig_buf_append(&S->body, data, len);
	return 0;
}

static int s_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct srv *S = ud;
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		S->requests_ended++;
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
		S->pings_acked++;
	return 0;
}

static ssize_t s_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
		      nghttp2_data_source *src, void *ud)
{
	struct srv *S = ud;
	size_t avail = S->out.len - S->out_pos;
	if (!avail && !S->out_eof)
		return NGHTTP2_ERR_DEFERRED;
	size_t n = avail < len ? avail : len;
	memcpy(buf, S->out.ptr + S->out_pos, n);
	S->out_pos += n;
	if (S->out_pos == S->out.len && S->out_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (S->trailers) {
			nghttp2_nv nva[16];
			size_t k = 0;
			for (size_t i = 0; S->trailers[i]; i += 2)
				nva[k++] = (nghttp2_nv){
				    (uint8_t *)S->trailers[i], (uint8_t *)S->trailers[i + 1],
				    strlen(S->trailers[i]), strlen(S->trailers[i + 1]), 0};
			assert_int_equal(nghttp2_submit_trailer(s, sid, nva, k), 0);
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		}
	}
	return (ssize_t)n;
}

static void srv_flush(void)
{
	struct srv *S = &X->s;
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(S->ng, &p);
		assert_true(n >= 0);
		if (n == 0)
			return;
		peer_write_loop(&X->loop, &(struct peer){.fd = S->fd}, p, (size_t)n);
	}
}

/* Reads what the client sent and answers what nghttp2 answers by itself. */
static void srv_io(void)
{
	struct srv *S = &X->s;
	if (S->fd < 0 || !S->ng)
		return;
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = recv(S->fd, buf, sizeof buf, 0);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				S->eof = true;
			break;
		}
		assert_int_equal(nghttp2_session_mem_recv(S->ng, buf, (size_t)n), n);
	}
	srv_flush();
}

static void pump(void)
{
	ig_loop_run_once(&X->loop, 2);
	srv_io();
}

#define PUMP_UNTIL(cond)                                                                           \
	do {                                                                                       \
		uint64_t t0_ = ig_now_ns();                                                        \
		while (!(cond) && ms_since(t0_) < WAIT_MS)                                         \
			pump();                                                                    \
	} while (0)

static void pump_for(unsigned ms)
{
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < ms)
		pump();
}

static void srv_accept(void)
{
	struct srv *S = &X->s;
	int fd = -1;
	uint64_t t0 = ig_now_ns();
	while (fd < 0 && ms_since(t0) < WAIT_MS) {
		fd = accept4(X->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			ig_loop_run_once(&X->loop, 2);
	}
	assert_true(fd >= 0);
	S->fd = fd;
	nghttp2_session_callbacks *cb;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, s_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, s_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_frame);
	assert_int_equal(nghttp2_session_server_new(&S->ng, cb, S), 0);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(S->ng, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	srv_flush();
}

/* Closes the server's end (with a reset when `rst`). */
static void srv_close(bool rst)
{
	struct srv *S = &X->s;
	if (rst)
		set_linger0(S->fd);
	close(S->fd);
	S->fd = -1;
}

/* The response head on the current stream; with `end`, no body follows. */
static void srv_head(int status, const char *const *fields, bool end)
{
	struct srv *S = &X->s;
	char st[8];
	snprintf(st, sizeof st, "%d", status);
	nghttp2_nv nva[128];
	size_t n = 0;
	nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), 0};
	for (size_t i = 0; fields && fields[i]; i += 2)
		nva[n++] = (nghttp2_nv){(uint8_t *)fields[i], (uint8_t *)fields[i + 1],
					strlen(fields[i]), strlen(fields[i + 1]), 0};
	ig_buf_reset(&S->out);
	S->out_pos = 0;
	S->out_eof = false;
	nghttp2_data_provider prd = {.read_callback = s_read};
	assert_int_equal(nghttp2_submit_response(S->ng, S->sid, nva, n, end ? NULL : &prd), 0);
	srv_flush();
}

/* More response body (the last piece with `eof`). */
static void srv_body(const void *data, size_t len, bool eof)
{
	struct srv *S = &X->s;
	ig_buf_append(&S->out, data, len);
	S->out_eof = eof;
	nghttp2_session_resume_data(S->ng, S->sid);
	srv_flush();
}

static void srv_rst(uint32_t code)
{
	assert_int_equal(nghttp2_submit_rst_stream(X->s.ng, NGHTTP2_FLAG_NONE, X->s.sid, code), 0);
	srv_flush();
}

static void srv_goaway(int32_t last)
{
	assert_int_equal(
	    nghttp2_submit_goaway(X->s.ng, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0), 0);
	srv_flush();
}

/* ---- fixture ---- */

static int setup(void **state)
{
	X = calloc(1, sizeof *X);
	assert_int_equal(ig_loop_init(&X->loop), 0);
	X->lfd = tcp_listen(16, &X->port);
	assert_true(X->lfd >= 0);
	X->s.fd = -1;
	return 0;
}

static int teardown(void **state)
{
	ig_http_client_close(X->c);
	if (X->s.fd >= 0)
		close(X->s.fd);
	if (X->s.ng)
		nghttp2_session_del(X->s.ng);
	ig_buf_free(&X->s.hdrs);
	ig_buf_free(&X->s.body);
	ig_buf_free(&X->s.out);
	close(X->lfd);
	ig_buf_free(&X->body);
	ig_loop_free(&X->loop);
	free(X);
	X = NULL;
	return 0;
}

static void reset_seen(void)
{
	X->nhead = X->nbody = X->ndone = X->nerror = X->nidle = 0;
	X->status = 0;
	X->hdr[0] = '\0';
	X->body_length = -2;
	ig_buf_reset(&X->body);
	memset(&X->fault, 0, sizeof X->fault);
}

static bool ended(void)
{
	return X->ndone || X->nerror;
}

static void connect_h2c(void)
{
	struct sockaddr_in sin = loopback_addr(X->port);
	X->c = ig_http_client_connect_h2c(&X->loop, (struct sockaddr *)&sin, sizeof sin, 1000);
	assert_non_null(X->c);
	assert_int_equal(ig_http_client_proto(X->c), IG_PROTO_H2C);
}

static void sendv(const struct ig_str *parts, size_t n, bool is_head, uint64_t timeout_ms)
{
	reset_seen();
	assert_int_equal(ig_http_client_sendv(X->c, parts, n, is_head, timeout_ms, &cbs, X), 0);
}

static void send_str(const char *req, uint64_t timeout_ms)
{
	struct ig_str part = ig_str_from(req);
	sendv(&part, 1, false, timeout_ms);
}

/* Waits until the server has the whole request. */
static void expect_request(void)
{
	int before = X->s.requests_ended;
	PUMP_UNTIL(X->s.requests_ended > before);
	assert_int_equal(X->s.requests_ended, before + 1);
}

static const char get_req[] = "GET /v1/models?x=1 HTTP/1.1\r\nHost: pod:8000\r\n"
			      "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\n"
			      "Upgrade: h2c\r\nProxy-Connection: x\r\nX-Mixed-Case: Yes\r\n\r\n";

/* A client connected, a GET sent and taken whole by the server. */
static void start_get(uint64_t timeout_ms)
{
	connect_h2c();
	send_str(get_req, timeout_ms);
	srv_accept();
	expect_request();
}

static void assert_body(const char *s)
{
	assert_int_equal(X->body.len, strlen(s));
	assert_memory_equal(X->body.ptr, s, strlen(s));
}

static void assert_srv_hdrs(const char *s)
{
	ig_buf_append(&X->s.hdrs, "", 1);
	assert_string_equal(X->s.hdrs.ptr, s);
}

/* ---- tests ---- */

static void test_get(void **state)
{
	start_get(1000);
	/* Pseudo-fields first, names lower-cased, connection-specific ones
	 * and Host gone. */
	assert_srv_hdrs(":method: GET\n:scheme: http\n:authority: pod:8000\n"
			":path: /v1/models?x=1\nx-mixed-case: Yes\n");
	assert_int_equal(X->s.body.len, 0);
	static const char *const f[] = {"x-h", "v", "content-length", "5", NULL};
	srv_head(200, f, false);
	srv_body("hello", 5, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nhead, 1);
	assert_int_equal(X->status, 200);
	assert_string_equal(X->hdr, "v");
	assert_int_equal(X->body_length, 5);
	assert_body("hello");
	assert_int_equal(X->ndone, 1);
	assert_true(X->reusable_at_done);
	assert_false(ig_http_client_was_reused(X->c));
}

static void test_post_spans(void **state)
{
	connect_h2c();
	/* The head straddles spans (as the gateway sends it: its head, then
	 * the Host line), the body is three more, and the head's last span
	 * already holds body bytes. */
	const struct ig_str parts[] = {
	    IG_STR("POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
		   "Content-Length: 28\r\n"),
	    IG_STR("Host: 127.0.0.1:8000\r\n\r\n{\"model\":"),
	    IG_STR("\"m1\""),
	    IG_STR(",\"prompt\":\"hi\""),
	    IG_STR("}"),
	};
	sendv(parts, 5, false, 1000);
	srv_accept();
	expect_request();
	assert_srv_hdrs(":method: POST\n:scheme: http\n:authority: 127.0.0.1:8000\n"
			":path: /v1/completions\ncontent-type: application/json\n"
			"content-length: 28\n");
	assert_int_equal(X->s.body.len, 28);
	assert_memory_equal(X->s.body.ptr, "{\"model\":\"m1\",\"prompt\":\"hi\"}", 28);

	/* No Content-Length: the length is unknown; pieces in several DATA
	 * frames make one body. */
	static const char *const f[] = {"content-type", "text/event-stream", NULL};
	srv_head(201, f, false);
	PUMP_UNTIL(X->nhead);
	assert_int_equal(X->status, 201);
	assert_int_equal(X->body_length, -1);
	srv_body("data: 1\n\n", 9, false);
	PUMP_UNTIL(X->body.len == 9);
	assert_int_equal(X->ndone, 0);
	srv_body("data: 2\n\n", 9, true);
	PUMP_UNTIL(ended());
	assert_body("data: 1\n\ndata: 2\n\n");
	assert_int_equal(X->ndone, 1);
	assert_true(X->nbody >= 2);
}

static void test_bodyless(void **state)
{
	/* END_STREAM on the head: no body, length 0. */
	start_get(1000);
	srv_head(204, NULL, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->status, 204);
	assert_int_equal(X->body_length, 0);
	assert_int_equal(X->nbody, 0);
	assert_int_equal(X->ndone, 1);
	assert_true(X->reusable_at_done);

	/* HEAD: the length the head gives is not a body to wait for. */
	struct ig_str part = IG_STR("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
	sendv(&part, 1, true, 1000);
	expect_request();
	static const char *const f[] = {"content-length", "10", NULL};
	srv_head(200, f, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->body_length, 0);
	assert_int_equal(X->ndone, 1);
	assert_true(ig_http_client_was_reused(X->c));
}

static void test_interim_dropped(void **state)
{
	start_get(1000);
	nghttp2_nv nv100[] = {{(uint8_t *)":status", (uint8_t *)"103", 7, 3, 0},
			      {(uint8_t *)"x-h", (uint8_t *)"interim", 3, 7, 0}};
	assert_int_equal(
	    nghttp2_submit_headers(X->s.ng, NGHTTP2_FLAG_NONE, X->s.sid, NULL, nv100, 2, NULL), 0);
	srv_flush();
	pump_for(20);
	assert_int_equal(X->nhead, 0);
	static const char *const f[] = {"x-h", "final", "content-length", "2", NULL};
	srv_head(200, f, false);
	srv_body("ok", 2, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nhead, 1);
	assert_string_equal(X->hdr, "final");
	assert_body("ok");
}

/* A trailing HEADERS frame (gRPC's status) comes out as the response's
 * trailer fields, after the whole body; the next response has its own. */
static void test_trailers(void **state)
{
	start_get(1000);
	static const char *const f[] = {"content-type", "application/grpc", NULL};
	static const char *const t[] = {"grpc-status", "5", "grpc-message", "not found", NULL};
	X->s.trailers = t;
	srv_head(200, f, false);
	srv_body("\0\0\0\0\1x", 6, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_int_equal(X->body.len, 6);
	assert_string_equal(X->trailers, "grpc-status=5;grpc-message=not found;");
	assert_true(X->reusable_at_done);

	X->s.trailers = NULL;
	struct ig_str part = IG_STR("GET /again HTTP/1.1\r\nHost: a\r\n\r\n");
	sendv(&part, 1, false, 1000);
	expect_request();
	srv_head(200, NULL, false);
	srv_body("ok", 2, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_string_equal(X->trailers, "");
}

/* An open body (ig_http_client_sendv_open): the HEADERS go without
 * END_STREAM, on_writable says the connection is up, each piece written
 * reaches the server as it is written, the end ends the stream; the
 * response can begin before the body ends. Not on HTTP/1.1, nor with a
 * Content-Length. */
static void test_open_body(void **state)
{
	connect_h2c();
	struct ig_str head = IG_STR("POST /svc/Chat HTTP/1.1\r\nHost: pod\r\n"
				    "Content-Type: application/grpc\r\n\r\n");
	reset_seen();
	assert_int_equal(ig_http_client_sendv_open(X->c, &head, 1, -1, 1000, &cbs, X), 0);
	srv_accept();
	PUMP_UNTIL(X->nwritable == 1 && X->s.hdrs.len);
	assert_int_equal(X->s.requests_ended, 0);
	assert_int_equal(ig_http_client_body(X->c, "one", 3, false), 0);
	PUMP_UNTIL(X->s.body.len == 3);
	assert_memory_equal(X->s.body.ptr, "one", 3);
	assert_int_equal(X->s.requests_ended, 0);
	/* The answer begins while the body is still open. */
	srv_head(200, NULL, false);
	srv_body("re:one", 6, false);
	PUMP_UNTIL(X->body.len == 6);
	assert_int_equal(ig_http_client_body(X->c, "two", 3, true), 0);
	PUMP_UNTIL(X->s.requests_ended == 1);
	assert_int_equal(X->s.body.len, 6);
	assert_memory_equal(X->s.body.ptr, "onetwo", 6);
	assert_int_equal(ig_http_client_body(X->c, "x", 1, false), -1); /* ended */
	srv_body("re:two", 6, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_body("re:onere:two");
	assert_true(X->reusable_at_done);
	assert_int_equal(ig_http_client_body(X->c, "x", 1, false), -1); /* answered */
	/* A Content-Length says the body is whole: refused as open. */
	struct ig_str sized =
	    IG_STR("POST /x HTTP/1.1\r\nHost: pod\r\nContent-Length: 3\r\n\r\nabc");
	assert_int_equal(ig_http_client_sendv_open(X->c, &sized, 1, 3, 1000, &cbs, X), -1);
}

/* Reading paused: no more body, and no WINDOW_UPDATE for what was taken,
 * so the server stops at its flow-control window; resumed, all of it. */
static void test_pause_flow_control(void **state)
{
	start_get(1000);
	X->pause_on_body = true;
	srv_head(200, NULL, false);
	enum { TOTAL = 600 * 1024 };
	char *big = malloc(TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		big[i] = (char)('a' + i % 26);
	srv_body(big, TOTAL, true);
	PUMP_UNTIL(X->nbody >= 1);
	pump_for(50);
	assert_int_equal(X->nbody, 1);
	size_t got = X->body.len;
	/* The server could not send more than the stream window. */
	int32_t window = nghttp2_session_get_stream_remote_window_size(X->s.ng, X->s.sid);
	pump_for(50);
	assert_int_equal(nghttp2_session_get_stream_remote_window_size(X->s.ng, X->s.sid), window);
	assert_true(X->s.out_pos <= 256 * 1024);
	assert_int_equal(X->body.len, got);

	X->pause_on_body = false;
	ig_http_client_pause(X->c, false);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_int_equal(X->body.len, TOTAL);
	assert_memory_equal(X->body.ptr, big, TOTAL);
	assert_true(X->reusable_at_done);
	free(big);
}

/* The connection is reset while the owner is paused: nothing is said
 * until it resumes, then the request fails at once (no wait for the read
 * timeout, no busy loop on the error meanwhile). */
static void test_reset_while_paused(void **state)
{
	start_get(5000);
	X->pause_on_body = true;
	srv_head(200, NULL, false);
	srv_body("first", 5, false);
	PUMP_UNTIL(X->nbody == 1);
	srv_close(true);
	uint64_t t0 = ig_now_ns();
	int iterations = 0;
	while (ms_since(t0) < 50) {
		ig_loop_run_once(&X->loop, 10);
		iterations++;
	}
	assert_true(iterations < 40);
	assert_int_equal(X->nerror, 0);
	X->pause_on_body = false;
	ig_http_client_pause(X->c, false);
	PUMP_UNTIL(ended());
	assert_true(ms_since(t0) < 1000);
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_BROKEN);
	assert_body("first");
}

static void test_reuse_and_parked_ping(void **state)
{
	X->park_in_done = true;
	start_get(1000);
	srv_head(200, NULL, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	/* Parked: a PING is answered without a word to the owner. */
	assert_int_equal(nghttp2_submit_ping(X->s.ng, NGHTTP2_FLAG_NONE, NULL), 0);
	srv_flush();
	PUMP_UNTIL(X->s.pings_acked == 1);
	assert_int_equal(X->s.pings_acked, 1);
	pump_for(20);
	assert_int_equal(X->nidle, 0);

	/* The next request goes on the same connection, stream 3. */
	send_str(get_req, 1000);
	expect_request();
	assert_int_equal(X->s.sid, 3);
	static const char *const f[] = {"content-length", "3", NULL};
	srv_head(200, f, false);
	srv_body("two", 3, true);
	PUMP_UNTIL(ended());
	assert_body("two");
	assert_true(ig_http_client_was_reused(X->c));

	/* A GOAWAY on the parked connection ends it: the owner hears. */
	X->close_in = CB_IDLE;
	srv_goaway(3);
	PUMP_UNTIL(X->nidle);
	assert_int_equal(X->nidle, 1);
	assert_null(X->c);
}

static void test_parked_close(void **state)
{
	X->park_in_done = true;
	start_get(1000);
	srv_head(200, NULL, true);
	PUMP_UNTIL(ended());
	X->close_in = CB_IDLE;
	srv_close(false);
	PUMP_UNTIL(X->nidle);
	assert_int_equal(X->nidle, 1);
	assert_null(X->c);
}

static void test_rst_before_response(void **state)
{
	start_get(1000);
	srv_rst(NGHTTP2_INTERNAL_ERROR);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->nhead, 0);
	assert_int_equal(X->fault.kind, IG_CLIENT_EARLY);
	assert_true(X->fault.sent_all);
	assert_false(X->fault.got_byte);
	assert_false(X->fault.refused);
	assert_false(X->fault.reused);
}

static void test_refused_stream(void **state)
{
	start_get(1000);
	srv_rst(NGHTTP2_REFUSED_STREAM);
	PUMP_UNTIL(ended());
	assert_int_equal(X->fault.kind, IG_CLIENT_EARLY);
	assert_true(X->fault.refused);
}

static void test_rst_after_response_began(void **state)
{
	start_get(1000);
	srv_head(200, NULL, false);
	srv_body("par", 3, false);
	PUMP_UNTIL(X->body.len == 3);
	srv_rst(NGHTTP2_INTERNAL_ERROR);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_BROKEN);
	assert_true(X->fault.got_byte);
	assert_false(X->fault.refused);
}

static void test_goaway(void **state)
{
	/* Last stream 0: ours was not processed, so it may go elsewhere. */
	start_get(1000);
	srv_goaway(0);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_EARLY);
	assert_true(X->fault.refused);
	assert_true(X->fault.sent_all);
	ig_http_client_close(X->c);
	X->c = NULL;
	nghttp2_session_del(X->s.ng);
	X->s.ng = NULL;
	srv_close(false);

	/* Last stream 1: ours is processed and finishes, but the connection
	 * carries no other. */
	start_get(1000);
	srv_goaway(1);
	static const char *const f[] = {"content-length", "2", NULL};
	srv_head(200, f, false);
	srv_body("ok", 2, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_body("ok");
	assert_false(X->reusable_at_done);
}

static void test_eof_before_response(void **state)
{
	start_get(1000);
	srv_close(true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_EARLY);
	assert_false(X->fault.got_byte);
	assert_false(X->fault.refused);
}

static void test_read_timeout(void **state)
{
	start_get(60);
	uint64_t t0 = ig_now_ns();
	PUMP_UNTIL(ended());
	assert_true(ms_since(t0) >= 50);
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_TIMEOUT);
	assert_int_equal(X->fault.err, ETIMEDOUT);
	assert_true(X->fault.sent_all);

	/* Server PINGs are not progress of the response. */
	ig_http_client_close(X->c);
	X->c = NULL;
	nghttp2_session_del(X->s.ng);
	X->s.ng = NULL;
	srv_close(false);
	start_get(100);
	t0 = ig_now_ns();
	while (!ended() && ms_since(t0) < WAIT_MS) {
		pump_for(20);
		nghttp2_submit_ping(X->s.ng, NGHTTP2_FLAG_NONE, NULL);
		srv_flush();
	}
	assert_int_equal(X->fault.kind, IG_CLIENT_TIMEOUT);
	assert_true(ms_since(t0) < 1000);
}

static void test_garbage_is_protocol(void **state)
{
	/* An HTTP/1.1 server's answer to the preface. */
	connect_h2c();
	send_str(get_req, 1000);
	int fd = -1;
	uint64_t t0 = ig_now_ns();
	while (fd < 0 && ms_since(t0) < WAIT_MS) {
		fd = accept4(X->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		ig_loop_run_once(&X->loop, 2);
	}
	assert_true(fd >= 0);
	X->s.fd = fd;
	static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(send(fd, bad, sizeof bad - 1, 0), (ssize_t)sizeof bad - 1);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->fault.kind, IG_CLIENT_PROTOCOL);
}

static void test_head_too_big(void **state)
{
	start_get(1000);
	/* 101 fields: one over the ceiling HTTP/1.1 has too. */
	static char names[101][16];
	const char *f[203];
	for (int i = 0; i < 101; i++) {
		snprintf(names[i], sizeof names[i], "x-%d", i);
		f[2 * i] = names[i];
		f[2 * i + 1] = "v";
	}
	f[202] = NULL;
	srv_head(200, f, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->nhead, 0);
	assert_int_equal(X->fault.kind, IG_CLIENT_PROTOCOL);
	assert_int_equal(X->fault.err, EMSGSIZE);
}

/* Three digits nghttp2 accepts, no status code (RFC 9110 §15: 100 to
 * 599), as no HTTP/1.1 head is: the head and the body that follows go
 * nowhere. */
static void status_refused(const char *status)
{
	start_get(1000);
	nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)status, 7, 3, 0}};
	nghttp2_data_provider prd = {.read_callback = s_read};
	ig_buf_append(&X->s.out, "body", 4);
	X->s.out_eof = true;
	assert_int_equal(nghttp2_submit_response(X->s.ng, X->s.sid, nv, 1, &prd), 0);
	srv_flush();
	PUMP_UNTIL(ended());
	assert_int_equal(X->nerror, 1);
	assert_int_equal(X->nhead + X->nbody + X->ndone, 0);
	assert_int_equal(X->fault.kind, IG_CLIENT_PROTOCOL);
}

static void test_status_below_100(void **state)
{
	status_refused("050");
}

static void test_status_over_599(void **state)
{
	status_refused("600");
}

static void test_status_999(void **state)
{
	status_refused("999");
}

static void test_close_inside_callbacks(void **state)
{
	static const enum cb_kind where[] = {CB_HEAD, CB_BODY, CB_DONE};
	for (size_t i = 0; i < 3; i++) {
		X->close_in = where[i];
		start_get(1000);
		srv_head(200, NULL, false);
		srv_body("abc", 3, true);
		PUMP_UNTIL(X->c == NULL);
		assert_null(X->c);
		pump_for(10);
		nghttp2_session_del(X->s.ng);
		X->s.ng = NULL;
		srv_close(false);
	}
	/* on_head asking to abandon: no more callbacks. */
	X->close_in = CB_NONE;
	X->head_rc = 1;
	start_get(1000);
	srv_head(200, NULL, false);
	srv_body("abc", 3, true);
	pump_for(30);
	assert_int_equal(X->nhead, 1);
	assert_int_equal(X->nbody + X->ndone + X->nerror, 0);
}

static void test_refused_requests(void **state)
{
	connect_h2c();
	/* Chunked: not decoded; a body that is not its Content-Length; no
	 * head at all. Nothing is sent for any of them. */
	static const char *const bad[] = {
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc",
	    "GET / HTTP/1.1\r\nHost: a\r\n\r\nextra",
	    "GET / HTTP/1.1\r\nHost: a\r\n",
	    "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(
		    ig_http_client_send(X->c, bad[i], strlen(bad[i]), false, 1000, &cbs, X), -1);
	/* A good one after them still works. */
	send_str(get_req, 1000);
	srv_accept();
	expect_request();
	srv_head(200, NULL, true);
	PUMP_UNTIL(ended());
	assert_int_equal(X->ndone, 1);
	assert_false(ig_http_client_was_reused(X->c));
}

int main(void)
{
	ig_log_level = IG_LOG_ERROR;
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_get),
	    T(test_post_spans),
	    T(test_bodyless),
	    T(test_interim_dropped),
	    T(test_trailers),
	    T(test_open_body),
	    T(test_pause_flow_control),
	    T(test_reset_while_paused),
	    T(test_reuse_and_parked_ping),
	    T(test_parked_close),
	    T(test_rst_before_response),
	    T(test_refused_stream),
	    T(test_rst_after_response_began),
	    T(test_goaway),
	    T(test_eof_before_response),
	    T(test_read_timeout),
	    T(test_garbage_is_protocol),
	    T(test_head_too_big),
	    T(test_status_below_100),
	    T(test_status_over_599),
	    T(test_status_999),
	    T(test_close_inside_callbacks),
	    T(test_refused_requests),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
