/* Unit tests for the HTTP/1.1 server's state machine, driven on one
 * thread: the server listens on 127.0.0.1, the test connects plain
 * sockets, writes requests in chosen pieces and runs the loop one
 * iteration at a time until the exact expected bytes come back.
 *
 * The handler's behaviour is chosen by the request path:
 *   /echo...          answers at once: "<method> <target> <x-echo> <n>:<body>"
 *   /delay/<ms>       the same answer, from a timer <ms> later
 *   /hold             never answers; the test answers F->held itself
 *   /stream-hold      sends a chunked head, then holds like /hold
 *   /stream-chunked   head now, "hello" and "world" from timers, unknown length
 *   /stream-length    the same with Content-Length: 10
 *   /stream-sync      head, "hello", "world" and the end inside the handler
 *   /big/<n>          <n> pattern bytes streamed with backpressure
 *   /respond-big/<n>  <n> pattern bytes in one ig_http_respond
 *   /abort            head and "partial", then ig_http_abort
 *   /abort-later      the same, the abort from a timer
 *   /sbody...         (with stream_on_sbody) a streamed body, taken as it
 *                     comes; at its end "<length> <n>:<body>" (length as
 *                     announced, -1 if not)
 *   /sbody-hold       a streamed body left unread (F->held)
 *   /sbody-early      a streamed body answered "early" at once
 *   /sbody-started    a streamed body left unread, a chunked head sent */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "core/log.h"
#include "http/date.h"
#include "http/server.h"
#include "loopback.h"

#define WAIT_MS 3000 /* ceiling on any wait for bytes that should come */

struct fx {
	struct ig_loop loop;
	struct ig_http_server *srv;
	int port;
	int nreq;      /* handler calls */
	int naborts;   /* on_abort calls */
	int refused_status; /* the exchange's, at the last on_abort */
	int nwritable; /* on_writable calls */
	int nfull;     /* ig_http_write returned 1 */
	struct ig_http_exchange *held;
	/* EMFILE test: what to undo whatever happens. */
	bool rlimit_changed;
	struct rlimit old_rlimit;
	/* Peers the test opened, closed by the teardown whatever happens. */
	struct peer peers[16];
	int npeers;
	/* Memory a test allocated, freed by the teardown. */
	void *scratch[16];
	int nscratch;
	int fillers[1024];
	int nfillers;
	/* Streamed bodies (on_sbody). */
	struct ig_buf sbody;
	int nbody_calls;
};

static struct fx *F;

/* Per-request state, kept in the exchange's arena. */
struct rq {
	struct ig_timer timer;
	struct ig_http_exchange *ex;
	int step;
	size_t sent, total;
};

/* ---- the handler ---- */

static bool path_is(const struct ig_http_exchange *ex, const char *p)
{
	return ig_str_eq_cstr(ex->req.path, p);
}

static bool path_has_prefix(const struct ig_http_exchange *ex, const char *p, size_t *num)
{
	size_t n = strlen(p);
	if (ex->req.path.len < n || memcmp(ex->req.path.ptr, p, n) != 0)
		return false;
	*num = strtoul(ex->req.path.ptr + n, NULL, 10);
	return true;
}

static char pattern_byte(size_t i)
{
	return (char)('a' + i % 23);
}

static void answer(struct ig_http_exchange *ex)
{
	const struct ig_http_header *h =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "X-Echo");
	struct ig_buf b = {0};
	ig_buf_printf(&b, "%.*s %.*s %.*s %zu:", IG_STR_FMT(ex->req.method),
		      IG_STR_FMT(ex->req.target), h ? (int)h->value.len : 1, h ? h->value.ptr : "-",
		      ex->body.len);
	ig_buf_append(&b, ex->body.ptr, ex->body.len);
	assert_int_equal(ig_http_respond(ex, 200, "text/plain", b.ptr, b.len, NULL, 0), 0);
	ig_buf_free(&b);
}

static void on_abort(struct ig_http_exchange *ex)
{
	struct rq *r = ex->user;
	F->naborts++;
	F->refused_status = ex->refused_status;
	ig_timer_stop(&F->loop, &r->timer);
	if (F->held == ex)
		F->held = NULL;
}

static void on_delay(struct ig_loop *loop, struct ig_timer *t)
{
	struct rq *r = t->data;
	answer(r->ex);
}

static const struct ig_http_header stream_hdr = {IG_STR("X-A"), IG_STR("b")};

static void on_stream_step(struct ig_loop *loop, struct ig_timer *t)
{
	struct rq *r = t->data;
	if (r->step == 0) {
		assert_int_equal(ig_http_write(r->ex, "hello", 5), 0);
		r->step = 1;
		ig_timer_start(loop, &r->timer, 10, on_stream_step, r);
		return;
	}
	assert_int_equal(ig_http_write(r->ex, "world", 5), 0);
	assert_int_equal(ig_http_end(r->ex), 0);
}

static void big_pump(struct rq *r)
{
	char piece[16384];
	while (r->sent < r->total) {
		size_t n = r->total - r->sent < sizeof piece ? r->total - r->sent : sizeof piece;
		for (size_t i = 0; i < n; i++)
			piece[i] = pattern_byte(r->sent + i);
		int rc = ig_http_write(r->ex, piece, n);
		if (rc < 0)
			return;
		r->sent += n;
		if (rc == 1) {
			F->nfull++;
			return;
		}
	}
	ig_http_end(r->ex);
}

static void on_big_writable(struct ig_http_exchange *ex)
{
	F->nwritable++;
	big_pump(ex->user);
}

static void start_partial(struct rq *r)
{
	assert_int_equal(ig_http_start_response(r->ex, 200, NULL, 0, 100), 0);
	assert_int_equal(ig_http_write(r->ex, "partial", 7), 0);
}

static void on_abort_later(struct ig_loop *loop, struct ig_timer *t)
{
	struct rq *r = t->data;
	ig_http_abort(r->ex);
}

/* A tunnel that echoes what the client sends; "pause" makes it stop
 * reading (the test resumes it), "end" ends it after the echo. */
static int on_tunnel_data(struct ig_http_exchange *ex, const char *data, size_t len)
{
	int rc = ig_http_write(ex, data, len);
	assert_true(rc >= 0);
	if (len >= 3 && !memcmp(data + len - 3, "end", 3)) {
		assert_int_equal(ig_http_end(ex), 0);
		return 0;
	}
	if (len >= 5 && !memcmp(data + len - 5, "pause", 5)) {
		F->held = ex;
		return 1;
	}
	return 0;
}

static const struct ig_http_header upgrade_hdr = {IG_STR("Upgrade"), IG_STR("echo")};

/* A streamed body: what came is taken into the fixture's buffer; at its
 * end the answer says what it got. */
static void on_sbody(struct ig_http_exchange *ex)
{
	F->nbody_calls++;
	ig_buf_append(&F->sbody, ex->body.ptr, ex->body.len);
	ig_http_body_consume(ex, ex->body.len);
	assert_int_equal(ex->body.len, 0);
	if (!ex->body_done)
		return;
	struct ig_buf b = {0};
	ig_buf_printf(&b, "%lld %zu:", (long long)ex->body_length, F->sbody.len);
	ig_buf_append(&b, F->sbody.ptr, F->sbody.len < 64 ? F->sbody.len : 64);
	assert_int_equal(ig_http_respond(ex, 200, "text/plain", b.ptr, b.len, NULL, 0), 0);
	ig_buf_free(&b);
	ig_buf_reset(&F->sbody);
}

static bool stream_on_sbody(struct ig_http_exchange *ex, void *ctx)
{
	assert_ptr_equal(ctx, F);
	return ex->req.path.len >= 6 && memcmp(ex->req.path.ptr, "/sbody", 6) == 0;
}

static void handler(struct ig_http_exchange *ex, void *ctx)
{
	struct fx *f = ctx;
	f->nreq++;
	struct rq *r = ig_arena_calloc(ex->arena, sizeof *r);
	assert_non_null(r);
	r->ex = ex;
	ex->user = r;
	ex->on_abort = on_abort;
	size_t num;
	if (path_has_prefix(ex, "/delay/", &num)) {
		ig_timer_start(&f->loop, &r->timer, num, on_delay, r);
	} else if (path_is(ex, "/dated")) {
		/* A response that has its Date (a pod's, relayed): kept. */
		static const struct ig_http_header dated = {
		    IG_STR("date"), IG_STR("Sun, 06 Nov 1994 08:49:37 GMT")};
		assert_int_equal(ig_http_respond(ex, 200, NULL, "", 0, &dated, 1), 0);
	} else if (path_is(ex, "/length")) {
		char out[32];
		int n = snprintf(out, sizeof out, "%lld", (long long)ex->body_length);
		assert_int_equal(ig_http_respond(ex, 200, "text/plain", out, (size_t)n, NULL, 0),
				 0);
	} else if (path_is(ex, "/hold")) {
		f->held = ex;
	} else if (path_is(ex, "/stream-hold")) {
		assert_int_equal(ig_http_start_response(ex, 200, &stream_hdr, 1, -1), 0);
		f->held = ex;
	} else if (path_is(ex, "/stream-chunked") || path_is(ex, "/stream-length")) {
		int64_t cl = path_is(ex, "/stream-length") ? 10 : -1;
		assert_int_equal(ig_http_start_response(ex, 200, &stream_hdr, 1, cl), 0);
		ig_timer_start(&f->loop, &r->timer, 10, on_stream_step, r);
	} else if (path_is(ex, "/stream-sync")) {
		assert_int_equal(ig_http_start_response(ex, 200, &stream_hdr, 1, -1), 0);
		assert_int_equal(ig_http_write(ex, "hello", 5), 0);
		assert_int_equal(ig_http_write(ex, "world", 5), 0);
		assert_int_equal(ig_http_end(ex), 0);
	} else if (path_is(ex, "/trailers-chunked") || path_is(ex, "/trailers-length")) {
		/* Two fields a trailer may carry, and framing ones it may not. */
		static const struct ig_http_header t[] = {
		    {IG_STR("grpc-status"), IG_STR("0")},
		    {IG_STR("Content-Length"), IG_STR("5")},
		    {IG_STR("X-T"), IG_STR("v")},
		    {IG_STR("transfer-encoding"), IG_STR("chunked")},
		};
		int64_t cl = path_is(ex, "/trailers-length") ? 5 : -1;
		assert_int_equal(ig_http_start_response(ex, 200, &stream_hdr, 1, cl), 0);
		assert_int_equal(ig_http_write(ex, "hello", 5), 0);
		assert_int_equal(ig_http_end_trailers(ex, t, 4), 0);
	} else if (path_has_prefix(ex, "/big/", &num)) {
		r->total = num;
		ex->on_writable = on_big_writable;
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, (int64_t)num), 0);
		big_pump(r);
	} else if (path_has_prefix(ex, "/respond-big/", &num)) {
		char *body = malloc(num);
		for (size_t i = 0; i < num; i++)
			body[i] = pattern_byte(i);
		assert_int_equal(ig_http_respond(ex, 200, NULL, body, num, NULL, 0), 0);
		free(body);
	} else if (path_is(ex, "/host")) {
		const struct ig_http_header *h =
		    ig_http_find_header(ex->req.headers, ex->req.num_headers, "host");
		char out[256];
		int n = snprintf(out, sizeof out, "%.*s %.*s %.*s", IG_STR_FMT(ex->req.target),
				 IG_STR_FMT(ex->req.path), h ? (int)h->value.len : 1,
				 h ? h->value.ptr : "-");
		assert_int_equal(ig_http_respond(ex, 200, "text/plain", out, (size_t)n, NULL, 0),
				 0);
	} else if (path_is(ex, "/tunnel")) {
		assert_int_equal(ig_http_switch_protocols(ex, &upgrade_hdr, 1, on_tunnel_data), 0);
		/* Once switched, nothing else may answer it. */
		assert_int_equal(ig_http_switch_protocols(ex, &upgrade_hdr, 1, on_tunnel_data), -1);
		assert_int_equal(ig_http_respond(ex, 200, NULL, "", 0, NULL, 0), -1);
	} else if (path_is(ex, "/sbody-hold")) {
		assert_true(ex->body_streaming);
		f->held = ex;
	} else if (path_is(ex, "/sbody-started")) {
		assert_true(ex->body_streaming);
		assert_int_equal(ig_http_start_response(ex, 200, &stream_hdr, 1, -1), 0);
		f->held = ex;
	} else if (path_is(ex, "/sbody-early")) {
		assert_true(ex->body_streaming);
		assert_int_equal(ig_http_respond(ex, 200, "text/plain", "early", 5, NULL, 0), 0);
	} else if (ex->body_streaming) {
		assert_false(ex->body_done && ex->body.len == 0 && ex->body_length != 0 &&
			     ex->body_length != -1);
		ex->on_body = on_sbody;
		if (ex->body.len || ex->body_done)
			on_sbody(ex);
	} else if (path_is(ex, "/abort")) {
		start_partial(r);
		ig_http_abort(ex);
	} else if (path_is(ex, "/abort-later")) {
		start_partial(r);
		ig_timer_start(&f->loop, &r->timer, 10, on_abort_later, r);
	} else {
		answer(ex);
	}
}

/* ---- fixture ---- */

static int setup(void **state)
{
	F = calloc(1, sizeof *F);
	assert_int_equal(ig_loop_init(&F->loop), 0);
	*state = F;
	return 0;
}

static void restore_fds(void)
{
	for (int i = 0; i < F->nfillers; i++)
		close(F->fillers[i]);
	F->nfillers = 0;
	if (F->rlimit_changed)
		setrlimit(RLIMIT_NOFILE, &F->old_rlimit);
	F->rlimit_changed = false;
}

static int teardown(void **state)
{
	restore_fds();
	for (int i = 0; i < F->npeers; i++)
		peer_close(&F->peers[i]);
	ig_http_server_free(F->srv);
	ig_loop_free(&F->loop);
	for (int i = 0; i < F->nscratch; i++)
		free(F->scratch[i]);
	ig_buf_free(&F->sbody);
	free(F);
	F = NULL;
	return 0;
}

/* sndbuf (0: the kernel's autotuned default) is inherited by accepted
 * sockets: a small one makes the server's own output buffer fill. */
static void start_server_sndbuf(const struct ig_http_server_config *cfg, int sndbuf)
{
	int fd = tcp_listen(64, &F->port);
	assert_true(fd >= 0);
	if (sndbuf)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	F->srv = ig_http_server_new(&F->loop, fd, cfg, handler, F);
	assert_non_null(F->srv);
}

static void start_server(const struct ig_http_server_config *cfg)
{
	start_server_sndbuf(cfg, 0);
}

static struct ig_http_server_config small_config(void)
{
	struct ig_http_server_config c;
	ig_http_server_config_defaults(&c);
	return c;
}

/* A client connection to the server; the fixture owns it (the teardown
 * closes it if a failed assertion cut the test short). */
static struct peer *open_peer_rcvbuf(int rcvbuf)
{
	assert_true(F->npeers < 16);
	struct peer *p = &F->peers[F->npeers++];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_in sin = loopback_addr(F->port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	peer_init(p, fd);
	return p;
}

static struct peer *open_peer(void)
{
	return open_peer_rcvbuf(0);
}

static size_t server_conns(void)
{
	size_t n, bytes;
	ig_http_server_memory(F->srv, &n, &bytes);
	return n;
}

static size_t server_bytes(void)
{
	size_t n, bytes;
	ig_http_server_memory(F->srv, &n, &bytes);
	return bytes;
}

/* Runs the loop until the server has `n` connections. */
static void wait_conns(size_t n)
{
	uint64_t t0 = ig_now_ns();
	while (server_conns() != n && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	assert_int_equal(server_conns(), n);
}

/* ---- talking to the server ---- */

static void send_str(struct peer *p, const char *s)
{
	peer_write_loop(&F->loop, p, s, strlen(s));
}

/* One byte per loop iteration: every split point of the input is seen. */
static void send_bytewise(struct peer *p, const char *s)
{
	for (size_t i = 0; s[i]; i++) {
		assert_int_equal(send(p->fd, s + i, 1, MSG_NOSIGNAL), 1);
		ig_loop_run_once(&F->loop, 0);
		peer_read(p);
	}
}

/* Runs the loop for about ms, reading p (if any) as it goes. */
static void pump_for(struct peer *p, unsigned ms)
{
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < ms) {
		ig_loop_run_once(&F->loop, 2);
		if (p)
			peer_read(p);
	}
}

/* In an expected response, where the server's Date value goes: any
 * IMF-fixdate matches it (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994
 * 08:49:37 GMT". */
#define DATE_MARK '\x01'
#define D "Date: \x01\r\n"

static bool is_date(const char *s)
{
	static const char shape[] = "Aaa, 00 Aaa 0000 00:00:00 GMT";
	for (size_t i = 0; i < IG_HTTP_DATE_LEN; i++) {
		char c = s[i], k = shape[i];
		bool ok = k == '0'   ? c >= '0' && c <= '9'
			  : k == 'A' ? c >= 'A' && c <= 'Z'
			  : k == 'a' ? c >= 'a' && c <= 'z'
				     : c == k;
		if (!ok)
			return false;
	}
	return true;
}

/* Waits for the bytes exp stands for on p and checks them; they are then
 * dropped from p so that the next expectation starts after them. With
 * dates, each DATE_MARK in exp matches a date of IG_HTTP_DATE_LEN bytes. */
static void expect_n_dates(struct peer *p, const char *exp, size_t n, bool dates, int line)
{
	size_t want = n;
	for (size_t i = 0; dates && i < n; i++)
		want += exp[i] == DATE_MARK ? IG_HTTP_DATE_LEN - 1 : 0;
	uint64_t t0 = ig_now_ns();
	while (p->len < want && !peer_closed(p) && ms_since(t0) < WAIT_MS) {
		ig_loop_run_once(&F->loop, 5);
		peer_read(p);
	}
	size_t at = 0, got = 0; /* in exp, in p->data */
	while (at < n && got < p->len) {
		if (dates && exp[at] == DATE_MARK) {
			if (p->len - got < IG_HTTP_DATE_LEN || !is_date(p->data + got))
				break;
			got += IG_HTTP_DATE_LEN;
		} else if (p->data[got] == exp[at]) {
			got++;
		} else {
			break;
		}
		at++;
	}
	if (at < n) {
		/* Show where they part (a window of up to 600 bytes). */
		size_t from = at > 300 ? at - 300 : 0, gfrom = got > 300 ? got - 300 : 0;
		size_t elen = n - from < 600 ? n - from : 600;
		size_t glen = p->len - gfrom < 600 ? p->len - gfrom : 600;
		print_error("line %d: expected %zu bytes, got %zu%s; they differ at %zu\n"
			    "--- expected from %zu:\n%.*s\n--- got from %zu:\n%.*s\n---\n",
			    line, want, p->len, peer_closed(p) ? " and a close" : "", got, from,
			    (int)elen, exp + from, gfrom, (int)glen, p->data + gfrom);
		fail();
	}
	memmove(p->data, p->data + got, p->len - got);
	p->len -= got;
	p->data[p->len] = '\0';
}
#define expect_n(p, exp, n, line) expect_n_dates((p), (exp), (n), false, (line))
#define expect(p, s) expect_n_dates((p), (s), strlen(s), true, __LINE__)

/* The server closes p with nothing more sent. */
static void expect_close_n(struct peer *p, int line)
{
	uint64_t t0 = ig_now_ns();
	while (!peer_closed(p) && ms_since(t0) < WAIT_MS) {
		ig_loop_run_once(&F->loop, 5);
		peer_read(p);
	}
	if (!peer_closed(p) || p->len) {
		print_error("line %d: expected a close, got %s and %zu more bytes:\n%s\n", line,
			    peer_closed(p) ? "a close" : "no close", p->len, p->data);
		fail();
	}
}
#define expect_close(p) expect_close_n((p), __LINE__)

/* Nothing comes on p for ms, and it stays open. */
static void expect_quiet_n(struct peer *p, unsigned ms, int line)
{
	pump_for(p, ms);
	if (peer_closed(p) || p->len) {
		print_error("line %d: expected silence, got %s and %zu bytes:\n%s\n", line,
			    peer_closed(p) ? "a close" : "no close", p->len, p->data);
		fail();
	}
}
#define expect_quiet(p, ms) expect_quiet_n((p), (ms), __LINE__)

/* The response answer() gives, for HTTP/1.1 keep-alive. */
static char *ok_resp(const char *echo, const char *conn_header)
{
	static char buf[8][4096];
	static int k;
	char *out = buf[k++ % 8];
	snprintf(out, sizeof buf[0],
		 "HTTP/1.1 200 OK\r\n" D
		 "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
		 strlen(echo), conn_header ? conn_header : "", echo);
	return out;
}
#define OK(echo) ok_resp((echo), NULL)

/* The answer to HEAD: the length of the body answer() would give. */
static char *head_resp(const char *echo)
{
	static char buf[4][256];
	static int k;
	char *out = buf[k++ % 4];
	snprintf(out, sizeof buf[0],
		 "HTTP/1.1 200 OK\r\n" D "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
		 strlen(echo));
	return out;
}

/* The error the server answers by itself (always followed by a close). */
static char *err_resp(int status, const char *reason, const char *msg)
{
	static char buf[4][4096];
	static int k;
	char body[1024];
	snprintf(body, sizeof body,
		 "{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
		 "\"param\":null,\"code\":%d}}",
		 msg, status >= 500 ? "server_error" : "invalid_request_error", status);
	char *out = buf[k++ % 4];
	snprintf(out, sizeof buf[0],
		 "HTTP/1.1 %d %s\r\n" D "Content-Type: application/json\r\nContent-Length: "
		 "%zu\r\nConnection: close\r\n\r\n%s",
		 status, reason, strlen(body), body);
	return out;
}

/* Memory that lives until the end of the test. */
/* Each request on a connection of its own gets `resp` and the close. */
static void expect_each_refused(const char *const *reqs, size_t n, const char *resp)
{
	for (size_t i = 0; i < n; i++) {
		struct peer *p = open_peer();
		send_str(p, reqs[i]);
		expect(p, resp);
		expect_close(p);
		peer_close(p);
	}
}

static void *scratch(size_t n)
{
	assert_true(F->nscratch < 16);
	void *m = malloc(n);
	assert_non_null(m);
	F->scratch[F->nscratch++] = m;
	return m;
}

static char *pattern(size_t n)
{
	char *s = scratch(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = pattern_byte(i);
	s[n] = '\0';
	return s;
}

/* ---- tests ---- */

static const char post_req[] = "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nX-Echo: v w\r\n"
			       "Content-Length: 5\r\n\r\nhello";
static const char chunked_req[] = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
				  "\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n";

static void test_one_piece_and_bytewise(void **state)
{
	start_server(NULL);
	struct peer *a, *b;
	a = open_peer();
	b = open_peer();

	send_str(a, post_req);
	expect(a, OK("POST /echo?x=1 v w 5:hello"));
	send_str(a, chunked_req);
	expect(a, OK("POST /echo - 11:hello world"));

	/* Byte by byte, twice on one connection (the second request is read
	 * by a kept-alive connection that had freed its buffers). */
	for (int i = 0; i < 2; i++) {
		send_bytewise(b, post_req);
		expect(b, OK("POST /echo?x=1 v w 5:hello"));
		send_bytewise(b, chunked_req);
		expect(b, OK("POST /echo - 11:hello world"));
	}
	assert_int_equal(F->nreq, 6);
	expect_quiet(a, 10);
	expect_quiet(b, 10);
	peer_close(a);
	peer_close(b);
}

/* RFC 9112 2.2: a server SHOULD ignore at least one empty line before a
 * request line (some clients send a CRLF after a POST body). The server
 * means to (take_head's IG_HTTP_INCOMPLETE case, "blank lines before a
 * request line"), but the parser answers IG_HTTP_INVALID for them. */
static void test_leading_blank_lines(void **state)
{
	start_server(NULL);
	struct peer *p;
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n");
	expect(p, OK("POST /echo - 2:hi"));
	send_str(p, "GET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("GET /echo?2 - 0:"));
	peer_close(p);

	p = open_peer();
	send_bytewise(p, "\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("GET /echo - 0:"));
	peer_close(p);
}

/* body_length says what the framing announced: a head without
 * Content-Length or Transfer-Encoding ends the request (RFC 9112 §6.3),
 * which a proxy tells from an empty chunked body (Envoy's end_of_stream on
 * the headers). */
static void test_body_length_of_framing(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET /length HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("0"));
	send_str(p, "POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
	expect(p, OK("0"));
	send_str(p, "POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
	expect(p, OK("3"));
	send_str(p, "POST /length HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "0\r\n\r\n");
	expect(p, OK("-1"));
	peer_close(p);
}

/* RFC 9110 §6.6.1: every response carries Date, the server's own unless
 * the handler gave one (a proxy keeps the origin's), and only one. */
static void test_date(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET /dated HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
		  "Content-Length: 0\r\n\r\n");
	/* The server's own is now, within the test's second or the next. */
	time_t before = time(NULL);
	send_str(p, "GET /length HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("0"));
	char now[2][IG_HTTP_DATE_LEN];
	ig_http_date_format(before, now[0]);
	ig_http_date_format(before + 1, now[1]);
	struct ig_str d = ig_http_date_now();
	assert_true(d.len == IG_HTTP_DATE_LEN &&
		    (memcmp(d.ptr, now[0], d.len) == 0 || memcmp(d.ptr, now[1], d.len) == 0));
	peer_close(p);
}

static void test_pipelined_in_order(void **state)
{
	start_server(NULL);
	struct peer *p;
	p = open_peer();
	/* Async (late), sync, async (soon), HEAD, a body: all in one write. */
	send_str(p, "GET /delay/150 HTTP/1.1\r\nHost: a\r\n\r\n"
		    "GET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n"
		    "GET /delay/1?3 HTTP/1.1\r\nHost: a\r\n\r\n"
		    "HEAD /echo?4 HTTP/1.1\r\nHost: a\r\n\r\n"
		    "POST /echo?5 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
		    "GET /stream-sync HTTP/1.1\r\nHost: a\r\n\r\n"
		    "GET /echo?7 HTTP/1.1\r\nHost: a\r\n\r\n");
	/* One exchange at a time: the second request waits for the first. */
	pump_for(p, 15);
	assert_int_equal(F->nreq, 1);
	assert_int_equal(p->len, 0);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	expect(p, OK("GET /delay/150 - 0:"));
	expect(p, OK("GET /echo?2 - 0:"));
	expect(p, OK("GET /delay/1?3 - 0:"));
	/* HEAD: the length of the body it would have had, and no body. */
	expect(p, head_resp("HEAD /echo?4 - 0:"));
	expect(p, OK("POST /echo?5 - 3:abc"));
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
	expect(p, OK("GET /echo?7 - 0:"));
	expect_quiet(p, 10);
	assert_int_equal(F->nreq, 7);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	peer_close(p);
}

static void test_head(void **state)
{
	start_server(NULL);
	struct peer *p;
	p = open_peer();
	/* A streamed HEAD answer has its head only: no chunks, no last chunk.
	 * The request after it must still be read right. */
	send_str(p, "HEAD /stream-chunked HTTP/1.1\r\nHost: a\r\n\r\n"
		    "HEAD /stream-length HTTP/1.1\r\nHost: a\r\n\r\n"
		    "HEAD /stream-sync HTTP/1.1\r\nHost: a\r\n\r\n"
		    "HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n"
		    "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nContent-Length: 10\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n");
	expect(p, head_resp("HEAD /echo - 0:"));
	expect(p, OK("GET /echo - 0:"));
	expect_quiet(p, 30);
	peer_close(p);
}

static void test_http10(void **state)
{
	start_server(NULL);
	struct peer *p;
	/* 1.0 without keep-alive: answered with Connection: close, closed. */
	p = open_peer();
	send_str(p, "GET /echo HTTP/1.0\r\n\r\n");
	expect(p, ok_resp("GET /echo - 0:", "Connection: close\r\n"));
	expect_close(p);
	peer_close(p);

	/* 1.0 with keep-alive: said back, the connection stays. */
	p = open_peer();
	send_str(p, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	expect(p, ok_resp("GET /echo - 0:", "Connection: keep-alive\r\n"));
	expect_quiet(p, 20);
	/* An unknown length to a 1.0 client: no chunked framing, the close
	 * ends the body. */
	send_str(p, "GET /stream-chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nConnection: close\r\n\r\nhelloworld");
	expect_close(p);
	peer_close(p);

	/* 1.1 with Connection: close. */
	p = open_peer();
	send_str(p, "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /echo?ignored "
		    "HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, ok_resp("GET /echo - 0:", "Connection: close\r\n"));
	expect_close(p);
	assert_int_equal(F->nreq, 4);
	peer_close(p);
	wait_conns(0);
}

static void test_chunked_request(void **state)
{
	start_server(NULL);
	struct peer *p;
	p = open_peer();
	/* Chunk sizes in hex and either case, the pipelined request right
	 * after the last chunk's trailer. */
	send_str(p,
		 "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n"
		 "POST /echo?2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		 "GET /echo?3 HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("POST /echo - 21:0123456789abcdefghijk"));
	expect(p, OK("POST /echo?2 - 0:"));
	expect(p, OK("GET /echo?3 - 0:"));
	/* A body in pieces with pauses between them. */
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab");
	expect_quiet(p, 10);
	send_str(p, "c\r\n");
	expect_quiet(p, 10);
	send_str(p, "0\r\n\r\n");
	expect(p, OK("POST /echo - 3:abc"));
	/* A malformed chunk size: 400, and the connection closes. */
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
	expect(p, err_resp(400, "Bad Request", "malformed chunked request body"));
	expect_close(p);
	peer_close(p);
}

/* The body_progress hook: called while a body arrives and more is to
 * come, with the body so far, sized or chunked; not once it is complete
 * (the handler has it then), nor for a body that came whole. Its state in
 * body_user stays with the exchange. */
static size_t progress_calls, progress_last;

static void count_progress(struct ig_http_exchange *ex, void *ctx)
{
	assert_ptr_equal(ctx, F);
	assert_true(ex->body.len > progress_last || progress_last == 0);
	if (!ex->body_user)
		ex->body_user = ig_arena_alloc(ex->arena, 1);
	assert_non_null(ex->body_user);
	progress_last = ex->body.len;
	progress_calls++;
}

static void test_body_progress(void **state)
{
	struct ig_http_server_config c = small_config();
	assert_null(c.body_progress); /* the defaults clear it */
	c.body_progress = count_progress;
	start_server(&c);
	progress_calls = progress_last = 0;
	struct peer *p = open_peer();
	send_str(p, post_req);
	expect(p, OK("POST /echo?x=1 v w 5:hello"));
	assert_int_equal(progress_calls, 0);
	/* Sized, in three pieces: two calls, the body so far each time. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc");
	pump_for(p, 20);
	assert_int_equal(progress_calls, 1);
	assert_int_equal(progress_last, 3);
	send_str(p, "def");
	pump_for(p, 20);
	assert_int_equal(progress_calls, 2);
	assert_int_equal(progress_last, 6);
	send_str(p, "ghi");
	expect(p, OK("POST /echo - 9:abcdefghi"));
	assert_int_equal(progress_calls, 2);
	/* Chunked: a call per piece that leaves the body incomplete. */
	progress_calls = progress_last = 0;
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab");
	pump_for(p, 20);
	send_str(p, "c\r\n");
	pump_for(p, 20);
	send_str(p, "0\r\n\r\n");
	expect(p, OK("POST /echo - 3:abc"));
	assert_true(progress_calls >= 2);
	assert_int_equal(progress_last, 3);
}

static void test_expect_continue(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.max_body_bytes = 100;
	start_server(&cfg);
	struct peer *p;
	p = open_peer();
	send_str(
	    p,
	    "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	expect(p, "HTTP/1.1 100 Continue\r\n\r\n");
	expect_quiet(p, 10);
	assert_int_equal(F->nreq, 0);
	send_str(p, "hello");
	expect(p, OK("POST /echo - 5:hello"));

	/* The body came with the head: no 100 is needed. */
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: "
		    "2\r\n\r\nhi");
	expect(p, OK("POST /echo - 2:hi"));

	/* Chunked, with the 100 first. */
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n");
	expect(p, "HTTP/1.1 100 Continue\r\n\r\n");
	send_str(p, "2\r\nok\r\n0\r\n\r\n");
	expect(p, OK("POST /echo - 2:ok"));

	/* Too large: 413 instead of 100, and the connection closes. */
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: "
		    "101\r\n\r\n");
	expect(p, err_resp(413, "Content Too Large", "request body too large"));
	expect_close(p);
	peer_close(p);
}

static void test_malformed_400(void **state)
{
	start_server(NULL);
	static const char *bad[] = {
	    "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n",
	    "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
	    "GET / HTTP/1\r\nHost: a\r\n\r\n",
	    "GET\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
	};
	expect_each_refused(bad, sizeof bad / sizeof bad[0],
			    err_resp(400, "Bad Request", "malformed HTTP request"));
	static const char *framing[] = {
	    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	};
	expect_each_refused(
	    framing, sizeof framing / sizeof framing[0],
	    err_resp(400, "Bad Request",
		     "invalid message framing (Content-Length / Transfer-Encoding)"));
	/* A transfer coding the server does not implement: 501 (RFC 9112
	 * §6.1), never dropped on the way. */
	static const char *codings[] = {
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n",
	    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
	};
	expect_each_refused(
	    codings, sizeof codings / sizeof codings[0],
	    err_resp(501, "Not Implemented", "unsupported transfer coding (only chunked is)"));
	assert_int_equal(F->nreq, 0);
	wait_conns(0);
}

/* RFC 9112 §2.3, RFC 9110 §6.2: a later HTTP/1.x is served as HTTP/1.1
 * (the highest minor version we speak); another major version in an
 * HTTP/1 request line is 505 (RFC 9110 §15.6.6), not a malformed head. */
static void test_http_versions(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET /echo HTTP/1.2\r\nHost: a\r\n\r\n");
	expect(p, OK("GET /echo - 0:"));
	send_str(p, "GET /echo HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n");
	expect(p, ok_resp("GET /echo - 0:", "Connection: close\r\n"));
	expect_close(p);
	peer_close(p);
	static const char *newer[] = {
	    "GET / HTTP/2.0\r\n\r\n",
	    "GET / HTTP/3.0\r\nHost: a\r\n\r\n",
	    "GET / HTTP/0.9\r\nHost: a\r\n\r\n",
	};
	expect_each_refused(
	    newer, sizeof newer / sizeof newer[0],
	    err_resp(505, "HTTP Version Not Supported", "HTTP version not supported"));
	assert_int_equal(F->nreq, 2);
	wait_conns(0);
}

/* A request line that cannot become one (its method not a token) is
 * answered at its first bytes, not after the header timeout: a TLS
 * ClientHello sent to a plain listener, say. A valid start waits. */
static void test_binary_head_400_at_once(void **state)
{
	start_server(NULL);
	static const char *bad[] = {"\x16\x03\x01\x02", "G@T", " GET"};
	expect_each_refused(bad, sizeof bad / sizeof bad[0],
			    err_resp(400, "Bad Request", "malformed HTTP request"));
	struct peer *p = open_peer();
	send_str(p, "M-SEARCH /x");
	expect_quiet(p, 100);
	send_str(p, " HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("M-SEARCH /x - 0:"));
	peer_close(p);
	assert_int_equal(F->nreq, 1);
	wait_conns(0);
}

/* RFC 9112 §3.2: absolute-form becomes origin-form with its authority as
 * the Host; HTTP/1.1 needs one Host; other target forms are refused. */
static void test_request_target_and_host(void **state)
{
	start_server(NULL);
	static const struct {
		const char *req, *echo;
	} ok[] = {
	    {"GET http://x.example/host?a=1 HTTP/1.1\r\nHost: y\r\n\r\n",
	     "/host?a=1 /host x.example"},
	    {"GET HTTP://x:8443/host HTTP/1.1\r\n\r\n", "/host /host x:8443"},
	    {"GET /host HTTP/1.0\r\n\r\n", "/host /host -"},
	    {"GET /host HTTP/1.1\r\nhOsT: z\r\n\r\n", "/host /host z"},
	    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * - 0:"},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct peer *p = open_peer();
		send_str(p, ok[i].req);
		expect(p, strstr(ok[i].req, "HTTP/1.0")
			      ? ok_resp(ok[i].echo, "Connection: close\r\n")
			      : OK(ok[i].echo));
		peer_close(p);
	}
	static const struct {
		const char *req, *msg;
	} bad[] = {
	    {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 request without a Host header"},
	    {"OPTIONS * HTTP/1.1\r\n\r\n", "HTTP/1.1 request without a Host header"},
	    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "more than one Host header"},
	    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "\\\"*\\\" is a target for OPTIONS only"},
	    {"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
	     "the request target is neither a path nor an absolute http URI"},
	    {"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	     "the request target is neither a path nor an absolute http URI"},
	    {"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
	     "the absolute URI names no host (or carries userinfo)"},
	    {"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n",
	     "the absolute URI names no host (or carries userinfo)"},
	    {"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "the request target carries a fragment"},
	    {"GET /a?q=1#b HTTP/1.1\r\nHost: a\r\n\r\n", "the request target carries a fragment"},
	    {"GET http://a#b HTTP/1.1\r\n\r\n", "the request target carries a fragment"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct peer *p = open_peer();
		send_str(p, bad[i].req);
		expect(p, err_resp(400, "Bad Request", bad[i].msg));
		expect_close(p);
		peer_close(p);
	}
	assert_int_equal(F->nreq, sizeof ok / sizeof ok[0]);
	wait_conns(0);
}

/* An https target over a connection in clear is refused, as Envoy
 * refuses it: passed on, it would tell the backend the request came
 * encrypted. */
static void test_https_target_in_clear(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET HTTPS://x:8443/host HTTP/1.1\r\n\r\n");
	expect(p, err_resp(400, "Bad Request",
			   "an https request target over a connection without TLS"));
	expect_close(p);
	assert_int_equal(F->nreq, 0);
}

/* A Host value must be an authority (RFC 9112 §3.2, as nginx checks):
 * a reg-name or IP literal and a port, or empty. */
static void test_host_values(void **state)
{
	start_server(NULL);
	static const struct {
		const char *req, *echo;
	} ok[] = {
	    {"GET /host HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "/host /host [::1]:8080"},
	    {"GET /host HTTP/1.1\r\nHost:\r\n\r\n", "/host /host "},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct peer *p = open_peer();
		send_str(p, ok[i].req);
		expect(p, OK(ok[i].echo));
		peer_close(p);
	}
	static const char *const bad[] = {
	    "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
	};
	expect_each_refused(bad, sizeof bad / sizeof bad[0],
			    err_resp(400, "Bad Request", "invalid Host header"));
	assert_int_equal(F->nreq, 2);
	wait_conns(0);
}

static void test_431(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.max_header_bytes = 200;
	cfg.max_headers = 4;
	start_server(&cfg);
	const char *too_big =
	    err_resp(431, "Request Header Fields Too Large", "request header fields too large");
	char big[512];
	struct peer *p;

	/* A whole head over the limit. */
	snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0250d\r\n\r\n", 0);
	p = open_peer();
	send_str(p, big);
	expect(p, too_big);
	expect_close(p);
	peer_close(p);

	/* A head that never ends, past the limit, byte by byte. */
	snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0250d", 0);
	p = open_peer();
	send_bytewise(p, big);
	expect(p, too_big);
	expect_close(p);
	peer_close(p);

	/* A request target longer than the limit is 414, not 431 (RFC 9112
	 * §3), whole or still coming. */
	const char *too_long = err_resp(414, "URI Too Long", "request target too long");
	snprintf(big, sizeof big, "GET /%0250d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
	p = open_peer();
	send_str(p, big);
	expect(p, too_long);
	expect_close(p);
	peer_close(p);
	snprintf(big, sizeof big, "GET /%0250d", 0);
	p = open_peer();
	send_bytewise(p, big);
	expect(p, too_long);
	expect_close(p);
	peer_close(p);

	/* Too many header lines. */
	p = open_peer();
	send_str(p, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
	expect(p, too_big);
	expect_close(p);
	peer_close(p);

	/* Just within both limits. */
	p = open_peer();
	const char *shape = "GET /echo HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nX-Echo: \r\n\r\n";
	char value[256];
	snprintf(value, sizeof value, "%0*d", (int)(200 - strlen(shape)), 7);
	snprintf(big, sizeof big,
		 "GET /echo HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nX-Echo: %s\r\n\r\n", value);
	assert_int_equal(strlen(big), 200);
	send_str(p, big);
	char echo[300];
	snprintf(echo, sizeof echo, "GET /echo %s 0:", value);
	expect(p, OK(echo));
	expect_quiet(p, 10);
	peer_close(p);
	assert_int_equal(F->nreq, 1);
}

static void test_413(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.max_body_bytes = 10;
	start_server(&cfg);
	const char *too_large = err_resp(413, "Content Too Large", "request body too large");
	struct peer *p;

	/* Announced over the limit: answered before any body byte. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
	expect(p, too_large);
	expect_close(p);
	peer_close(p);

	/* Chunked, growing over the limit on the second chunk. */
	p = open_peer();
	send_str(
	    p,
	    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n");
	expect_quiet(p, 10);
	send_str(p, "5\r\nghijk\r\n0\r\n\r\n");
	expect(p, too_large);
	expect_close(p);
	peer_close(p);

	/* Exactly the limit, sized (read straight into the exchange) and
	 * chunked. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
	pump_for(p, 5);
	send_str(p, "0123456789");
	expect(p, OK("POST /echo - 10:0123456789"));
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n");
	expect(p, OK("POST /echo - 10:abcdefghij"));
	peer_close(p);
	assert_int_equal(F->nreq, 2);
}

/* The refusal_body hook: its body for the refusals it takes (with its
 * extra headers), the server's own for those it declines. */
static int refusal_body_413(struct ig_http_exchange *ex, int status, const char *reason,
			    struct ig_buf *out, void *ctx)
{
	static const struct ig_http_header extra = {IG_STR("X-Who"), IG_STR("hook")};
	(void)ctx;
	if (status != 413)
		return -1;
	ex->resp_extra = &extra;
	ex->nresp_extra = 1;
	return ig_buf_printf(out, "{\"path\":\"%.*s\",\"why\":\"%s\"}", IG_STR_FMT(ex->req.path),
			     reason);
}

static void test_refusal_body(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.max_body_bytes = 10;
	cfg.refusal_body = refusal_body_413;
	start_server(&cfg);
	static const char body[] = "{\"path\":\"/echo\",\"why\":\"request body too large\"}";
	char want[512];
	snprintf(want, sizeof want,
		 "HTTP/1.1 413 Content Too Large\r\n" D "Content-Type: application/json\r\n"
		 "X-Who: hook\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 sizeof body - 1, body);
	struct peer *p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
	expect(p, want);
	expect_close(p);
	peer_close(p);
	static const char *bad[] = {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"};
	expect_each_refused(bad, 1, err_resp(400, "Bad Request", "malformed HTTP request"));
	assert_int_equal(F->nreq, 0);
}

/* ---- streamed request bodies (stream_body) ---- */

static struct ig_http_server_config stream_config(void)
{
	struct ig_http_server_config c = small_config();
	assert_null(c.stream_body);
	c.stream_body = stream_on_sbody;
	c.max_body_bytes = 1000; /* not for streamed bodies */
	return c;
}

/* A sized body goes to the handler as it comes, past max_body_bytes; the
 * connection stays for the next request; other paths are read whole as
 * before (and held to the limit). */
static void test_streamed_body_sized(void **state)
{
	struct ig_http_server_config c = stream_config();
	start_server(&c);
	struct peer *p = open_peer();
	send_str(p, "POST /sbody HTTP/1.1\r\nHost: a\r\nContent-Length: 2010\r\n\r\nabc");
	pump_for(p, 20);
	assert_int_equal(F->nreq, 1); /* handed over before the body came */
	assert_int_equal(F->sbody.len, 3);
	char *rest = scratch(2008);
	memset(rest, 'x', 2007);
	rest[2007] = '\0';
	send_str(p, rest);
	expect(p, OK("2010 2010:abcxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	assert_true(F->nbody_calls >= 2);
	send_str(p, post_req);
	expect(p, OK("POST /echo?x=1 v w 5:hello"));
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
	expect(p, err_resp(413, "Content Too Large", "request body too large"));
}

/* A chunked body is decoded as it comes (extensions and trailers are
 * not the body), and a request pipelined after it is served next. */
static void test_streamed_body_chunked(void **state)
{
	struct ig_http_server_config c = stream_config();
	start_server(&c);
	struct peer *p = open_peer();
	send_str(p, "POST /sbody HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "3;x=1\r\nabc\r\n");
	pump_for(p, 20);
	assert_int_equal(F->sbody.len, 3);
	send_str(p, "4\r\nde");
	pump_for(p, 20);
	assert_int_equal(F->sbody.len, 5);
	send_str(p, "fg\r\n0\r\nT: 1\r\n\r\n"
		    "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("-1 7:abcdefg"));
	expect(p, OK("GET /echo - 0:"));
	/* A malformed chunk once the handler has the exchange, before any
	 * response: the handler hears on_abort, told the status the server
	 * answers, and the client gets that 400, as for a body read whole;
	 * then the connection closes. */
	send_str(p, "POST /sbody HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "3\r\nabc\r\nzz\r\n");
	expect(p, err_resp(400, "Bad Request", "malformed chunked request body"));
	expect_close(p);
	assert_int_equal(F->naborts, 1);
	assert_int_equal(F->refused_status, 400);
	/* Trailers over the limits are 431, as for a body read whole. */
	p = open_peer();
	send_str(p, "POST /sbody HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "3\r\nabc\r\n0\r\n");
	for (int i = 0; i < 200; i++)
		send_str(p, "X-Trailer: 1\r\n");
	expect(p, err_resp(431, "Request Header Fields Too Large",
			   "request trailer fields too large"));
	expect_close(p);
	assert_int_equal(F->naborts, 2);
	assert_int_equal(F->refused_status, 431);
	/* Once the response began, closing is all there is. */
	p = open_peer();
	send_str(p, "POST /sbody-started HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		    "\r\n3\r\nabc\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n"
		  "Connection: close\r\n\r\n");
	send_str(p, "zz\r\n");
	expect_close(p);
	assert_int_equal(F->naborts, 3);
	assert_int_equal(F->refused_status, 0);
}

/* The server reads no more while 1 MiB of the body waits for the handler,
 * and reads on as the handler takes it. */
static void test_streamed_body_backpressure(void **state)
{
	struct ig_http_server_config c = stream_config();
	start_server(&c);
	struct peer *p = open_peer();
	enum { TOTAL = 8 << 20 };
	char head[128];
	snprintf(head, sizeof head,
		 "POST /sbody-hold HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", TOTAL);
	send_str(p, head);
	char *body = pattern(TOTAL);
	size_t sent = 0;
	/* Send what the sockets take while the handler takes nothing. */
	for (int round = 0; round < 200; round++) {
		ssize_t n = send(p->fd, body + sent, TOTAL - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
		ig_loop_run_once(&F->loop, 2);
	}
	assert_non_null(F->held);
	struct ig_http_exchange *ex = F->held;
	assert_true(ex->body.len >= (1u << 20));
	assert_true(ex->body.len <= (1u << 20) + 64 * 1024);
	assert_true(sent < TOTAL); /* the client is held back */
	/* Taken: the rest comes, in order. */
	size_t got = 0;
	uint64_t t0 = ig_now_ns();
	while (got < TOTAL && ms_since(t0) < 10 * WAIT_MS) {
		if (ex->body.len) {
			assert_memory_equal(ex->body.ptr, body + got, ex->body.len);
			got += ex->body.len;
			ig_http_body_consume(ex, ex->body.len);
		}
		if (sent < TOTAL) {
			ssize_t n =
			    send(p->fd, body + sent, TOTAL - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
		}
		ig_loop_run_once(&F->loop, 2);
	}
	assert_int_equal(got, TOTAL);
	assert_true(ex->body_done);
	assert_int_equal(ig_http_respond(ex, 204, NULL, "", 0, NULL, 0), 0);
	F->held = NULL;
	expect(p, "HTTP/1.1 204 No Content\r\n" D "\r\n");
}

/* Answered before the body ended: the answer says the connection closes,
 * the rest of the body is read and dropped, then it closes. */
static void test_streamed_body_answered_early(void **state)
{
	struct ig_http_server_config c = stream_config();
	start_server(&c);
	struct peer *p = open_peer();
	send_str(p, "POST /sbody-early HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nab");
	expect(p, "HTTP/1.1 200 OK\r\n" D "Content-Type: text/plain\r\nContent-Length: 5\r\n"
		  "Connection: close\r\n\r\nearly");
	send_str(p, "more of the body");
	expect_close(p);
	assert_int_equal(F->naborts, 0);
}

static void test_408(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.header_timeout_ms = 80;
	cfg.body_timeout_ms = 80;
	start_server(&cfg);
	const char *timed_out = err_resp(408, "Request Timeout", "request timed out");
	struct peer *p;

	/* Part of a head. */
	p = open_peer();
	uint64_t t0 = ig_now_ns();
	send_str(p, "GET / HT");
	expect(p, timed_out);
	assert_true(ms_since(t0) >= 75);
	expect_close(p);
	peer_close(p);

	/* Nothing at all: closed without an answer. */
	p = open_peer();
	t0 = ig_now_ns();
	expect_close(p);
	assert_true(ms_since(t0) >= 75);
	peer_close(p);

	/* Part of a body that came with the head. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
	expect(p, timed_out);
	expect_close(p);
	peer_close(p);

	/* Part of a body read straight into the exchange. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
	pump_for(p, 5);
	send_str(p, "abc");
	expect(p, timed_out);
	expect_close(p);
	peer_close(p);

	/* Part of a chunked body. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab");
	expect(p, timed_out);
	expect_close(p);
	peer_close(p);
	assert_int_equal(F->nreq, 0);
	wait_conns(0);
}

/* The body timeout bounds silence, not the whole body: a byte every 40 ms
 * keeps a slow body going past the 200 ms timeout, sized and chunked. */
static void test_body_timeout_is_silence(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.body_timeout_ms = 200;
	start_server(&cfg);
	struct peer *p;
	p = open_peer();
	uint64_t t0 = ig_now_ns();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n");
	for (int i = 0; i < 8; i++) {
		pump_for(p, 40);
		send_str(p, "x");
	}
	expect(p, OK("POST /echo - 8:xxxxxxxx"));
	assert_true(ms_since(t0) > 300);
	t0 = ig_now_ns();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
	static const char *pieces[] = {"1\r\n", "a", "\r\n", "1\r\nb", "\r\n0\r\n", "\r\n"};
	for (size_t i = 0; i < 6; i++) {
		pump_for(p, 40);
		send_str(p, pieces[i]);
	}
	expect(p, OK("POST /echo - 2:ab"));
	assert_true(ms_since(t0) > 220);
	assert_int_equal(F->nreq, 2);
}

static void test_keepalive_idle_timeout(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.keepalive_timeout_ms = 200;
	start_server(&cfg);
	struct peer *p;
	p = open_peer();
	send_str(p, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("GET /echo - 0:"));
	uint64_t t0 = ig_now_ns();
	expect_quiet(p, 100);
	expect_close(p);
	assert_true(ms_since(t0) >= 190);
	assert_int_equal(server_conns(), 0);
	peer_close(p);
}

static void test_streamed_response(void **state)
{
	start_server(NULL);
	struct peer *p;
	p = open_peer();
	/* The head leaves on its own when no body piece follows it in the
	 * same loop iteration. */
	send_str(p, "GET /stream-chunked HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n");
	expect(p, "5\r\nhello\r\n");
	expect(p, "5\r\nworld\r\n0\r\n\r\n");
	send_str(p, "GET /stream-length HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nContent-Length: 10\r\n\r\n");
	expect(p, "hello");
	expect(p, "world");
	send_str(p, "GET /stream-sync HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
	expect_quiet(p, 10);
	peer_close(p);
}

/* Trailers go to a client whose TE takes them, in a chunked body only;
 * the fields a trailer may not carry are left out. */
static void test_trailers(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET /trailers-chunked HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n0\r\ngrpc-status: 0\r\nX-T: v\r\n\r\n");
	/* TE as a list, with other codings. */
	send_str(p,
		 "GET /trailers-chunked HTTP/1.1\r\nHost: a\r\nTE: gzip;q=0.5, trailers\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n0\r\ngrpc-status: 0\r\nX-T: v\r\n\r\n");
	send_str(p, "GET /trailers-chunked HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n0\r\n\r\n");
	send_str(p, "GET /trailers-length HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nContent-Length: 5\r\n\r\nhello");
	/* The connection is still in step: a next request is answered. */
	send_str(p, "GET /stream-sync HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
	expect_quiet(p, 10);
	peer_close(p);
}

static const char tunnel_req[] =
    "GET /tunnel HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
static const char switched[] =
    "HTTP/1.1 101 Switching Protocols\r\n" D "Upgrade: echo\r\nConnection: Upgrade\r\n\r\n";

static void test_tunnel(void **state)
{
	start_server(NULL);
	/* Bytes sent behind the head, before the switch, are the tunnel's. */
	struct peer *p = open_peer();
	char first[256];
	snprintf(first, sizeof first, "%searly", tunnel_req);
	send_str(p, first);
	expect(p, switched);
	expect(p, "early");
	send_str(p, "abc");
	expect(p, "abc");
	/* Raw bytes both ways: no chunk framing, no HTTP parsing. */
	send_str(p, "GET / HTTP/1.1\r\n\r\n");
	expect(p, "GET / HTTP/1.1\r\n\r\n");
	/* A paused tunnel reads nothing until resumed. */
	send_str(p, "pause");
	expect(p, "pause");
	assert_non_null(F->held);
	send_str(p, "xyz");
	expect_quiet(p, 30);
	ig_http_tunnel_pause(F->held, false);
	expect(p, "xyz");
	/* The handler's end closes the connection once the echo is out. */
	send_str(p, "the end");
	expect(p, "the end");
	expect_close(p);
	peer_close(p);
	assert_int_equal(F->naborts, 0);
	/* The client's close aborts the exchange. */
	p = open_peer();
	send_str(p, tunnel_req);
	expect(p, switched);
	peer_close(p);
	uint64_t t0 = ig_now_ns();
	while (F->naborts == 0 && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	assert_int_equal(F->naborts, 1);
	wait_conns(0);
}

static void test_backpressure(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.write_high_water = 64 * 1024;
	start_server_sndbuf(&cfg, 65536);
	size_t total = 2u << 20;
	struct peer *p;
	p = open_peer_rcvbuf(4096);
	char req[64];
	snprintf(req, sizeof req, "GET /big/%zu HTTP/1.1\r\nHost: a\r\n\r\n", total);
	send_str(p, req);
	/* The client reads nothing: the handler is told to hold back once,
	 * and is not called back while nothing drains. */
	uint64_t t0 = ig_now_ns();
	while (F->nfull == 0 && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	pump_for(NULL, 30);
	assert_int_equal(F->nfull, 1);
	assert_int_equal(F->nwritable, 0);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	/* Now it reads: on_writable brings the rest. */
	char head[128];
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n" D "Content-Length: %zu\r\n\r\n", total);
	expect(p, head);
	char *body = pattern(total);
	expect_n(p, body, total, __LINE__);
	assert_true(F->nwritable >= 1);
	assert_int_equal(F->nwritable, F->nfull);
	assert_int_equal(F->naborts, 0);
	expect_quiet(p, 10);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	peer_close(p);
}

static void test_send_timeout(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.write_high_water = 64 * 1024;
	cfg.send_timeout_ms = 80;
	start_server_sndbuf(&cfg, 65536);
	struct peer *p;
	p = open_peer_rcvbuf(4096);
	send_str(p, "GET /big/4194304 HTTP/1.1\r\nHost: a\r\n\r\n");
	uint64_t t0 = ig_now_ns();
	while (F->nfull == 0 && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	assert_int_equal(F->nfull, 1);
	/* Never read: closed after the send timeout, the handler told. */
	t0 = ig_now_ns();
	while (F->naborts == 0 && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	assert_int_equal(F->naborts, 1);
	assert_true(ms_since(t0) >= 75);
	assert_int_equal(server_conns(), 0);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	peer_close(p);
}

static void test_send_timeout_moves_with_progress(void **state)
{
	struct ig_http_server_config cfg = small_config();
	cfg.write_high_water = 16 * 1024;
	cfg.send_timeout_ms = 200;
	start_server_sndbuf(&cfg, 16384);
	struct peer *p;
	p = open_peer_rcvbuf(32768);
	size_t total = 1u << 20;
	char req[64];
	snprintf(req, sizeof req, "GET /big/%zu HTTP/1.1\r\nHost: a\r\n\r\n", total);
	send_str(p, req);
	/* A slow reader that takes 32 KiB every 20 ms is not timed out,
	 * although its response stays pending far longer than 200 ms. */
	uint64_t t0 = ig_now_ns();
	size_t want = total + 40;
	while (p->len < want && !peer_closed(p) && ms_since(t0) < 8000) {
		pump_for(NULL, 20);
		peer_read_max(p, 32768);
	}
	assert_true(ms_since(t0) > 400);
	assert_true(F->nfull >= 1);
	assert_false(peer_closed(p));
	assert_int_equal(F->naborts, 0);
	assert_true(p->len >= want);
	peer_close(p);
}

static void test_abort_on_client_close(void **state)
{
	start_server(NULL);
	struct peer *p;
	/* Closed while the handler holds the exchange. */
	p = open_peer();
	send_str(p, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
	pump_for(p, 10);
	assert_non_null(F->held);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	peer_close(p);
	pump_for(NULL, 20);
	assert_int_equal(F->naborts, 1);
	assert_null(F->held);
	assert_int_equal(server_conns(), 0);
	assert_int_equal(ig_http_server_busy(F->srv), 0);

	/* Reset while an async answer is pending: its timer must not fire. */
	p = open_peer();
	send_str(p, "GET /delay/500 HTTP/1.1\r\nHost: a\r\n\r\n");
	pump_for(p, 5);
	set_linger0(p->fd);
	peer_close(p);
	pump_for(NULL, 60);
	assert_int_equal(F->naborts, 2);
	assert_int_equal(server_conns(), 0);

	/* Closed in the middle of a streamed response. */
	p = open_peer();
	send_str(p, "GET /stream-hold HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n");
	peer_close(p);
	pump_for(NULL, 40);
	assert_int_equal(F->naborts, 3);
	assert_int_equal(server_conns(), 0);
}

/* While the handler works the server reads on only up to a pipelining
 * allowance (64 KiB), then stops asking for input. A client that fills
 * the allowance and then resets must still be noticed: epoll reports HUP
 * and ERR on a registered socket whatever it was asked for, so the reset
 * must end the connection (on_abort) rather than spin the loop until the
 * handler answers. */
static void test_reset_with_full_pipeline(void **state)
{
	start_server(NULL);
	struct peer *p = open_peer();
	send_str(p, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
	pump_for(p, 10);
	assert_non_null(F->held);
	char *junk = pattern(100000);
	peer_write_loop(&F->loop, p, junk, 100000);
	pump_for(p, 20);
	set_linger0(p->fd);
	peer_close(p);
	int events = 0, iterations = 0;
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < 50) {
		int n = ig_loop_run_once(&F->loop, 10);
		assert_true(n >= 0);
		events += n;
		iterations++;
	}
	if (events > 20 || F->naborts != 1)
		print_error("after the reset: %d events in %d loop iterations over 50 ms, "
			    "%d on_abort calls\n",
			    events, iterations, F->naborts);
	assert_true(events <= 20);
	assert_int_equal(F->naborts, 1);
	assert_int_equal(server_conns(), 0);
}

static void test_http_abort(void **state)
{
	start_server(NULL);
	struct peer *p;
	/* From inside the handler: what was written goes, then the close. */
	p = open_peer();
	send_str(p, "GET /abort HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "Content-Length: 100\r\n\r\npartial");
	expect_close(p);
	peer_close(p);
	/* From a timer later. */
	p = open_peer();
	send_str(p, "GET /abort-later HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, "HTTP/1.1 200 OK\r\n" D "Content-Length: 100\r\n\r\npartial");
	expect_close(p);
	peer_close(p);
	assert_int_equal(F->naborts, 0);
	assert_int_equal(F->nreq, 2);
	wait_conns(0);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
}

static void test_half_close(void **state)
{
	start_server(NULL);
	struct peer *p;
	/* A request, then the client's FIN: the answer given at once is
	 * delivered whole, then the server closes too. */
	p = open_peer();
	send_str(p, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
	shutdown(p->fd, SHUT_WR);
	expect(p, OK("POST /echo - 2:hi"));
	expect_close(p);
	peer_close(p);
	wait_conns(0);

	/* Pipelined requests and the FIN in one go. */
	p = open_peer();
	send_str(p,
		 "GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n");
	shutdown(p->fd, SHUT_WR);
	expect(p, OK("GET /echo?1 - 0:"));
	expect(p, OK("GET /echo?2 - 0:"));
	expect_close(p);
	peer_close(p);

	/* A FIN in the middle of a head: closed, nothing answered. */
	p = open_peer();
	send_str(p, "GET /echo HTTP/1.1\r\nHost: a\r\n");
	shutdown(p->fd, SHUT_WR);
	expect_close(p);
	peer_close(p);

	/* While the handler is still working, a FIN reads as a client that
	 * went away (the server cannot tell a half-close from a close): the
	 * handler is told. */
	p = open_peer();
	send_str(p, "GET /delay/500 HTTP/1.1\r\nHost: a\r\n\r\n");
	pump_for(p, 5);
	shutdown(p->fd, SHUT_WR);
	expect_close(p);
	assert_int_equal(F->naborts, 1);
	peer_close(p);
	wait_conns(0);
}

/* A client that half-closes after its request and then reads: a response
 * that is complete but larger than the socket buffers must still arrive
 * whole. The server may treat the FIN as a client gone while the handler
 * works (see test_half_close), but once the response is complete there is
 * nothing to save by cutting it. */
static void test_half_close_large_response(void **state)
{
	start_server_sndbuf(NULL, 65536);
	struct peer *p = open_peer_rcvbuf(4096);
	size_t n = 1u << 20;
	char req[64];
	snprintf(req, sizeof req, "GET /respond-big/%zu HTTP/1.1\r\nHost: a\r\n\r\n", n);
	send_str(p, req);
	shutdown(p->fd, SHUT_WR);
	pump_for(NULL, 20);
	char head[128];
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n" D "Content-Length: %zu\r\n\r\n", n);
	expect(p, head);
	char *body = pattern(n);
	expect_n(p, body, n, __LINE__);
	expect_close(p);
}

static void test_idle_holds_no_buffer(void **state)
{
	start_server_sndbuf(NULL, 65536);
	struct peer *p;
	p = open_peer_rcvbuf(4096);
	wait_conns(1);
	/* A fresh connection holds no buffer: its size is the baseline. */
	size_t base = server_bytes();

	/* A held request with a large body and head: the exchange holds
	 * memory (the head in its arena). */
	char *hdr = pattern(20000);
	size_t reqcap = 30000 + 100000;
	char *req = scratch(reqcap);
	snprintf(req, reqcap,
		 "POST /hold HTTP/1.1\r\nHost: a\r\nX-Pad: %s\r\nContent-Length: 100000\r\n\r\n",
		 hdr);
	size_t rl = strlen(req);
	memset(req + rl, 'b', 100000);
	peer_write_loop(&F->loop, p, req, rl + 100000);
	uint64_t t0 = ig_now_ns();
	while (!F->held && ms_since(t0) < WAIT_MS)
		ig_loop_run_once(&F->loop, 5);
	assert_non_null(F->held);
	assert_int_equal(F->held->body.len, 100000);
	assert_true(server_bytes() > base + 20000);

	/* A large answer that the client does not read at first: the output
	 * buffer holds most of it. */
	size_t n = 1u << 20;
	char *body = pattern(n);
	assert_int_equal(ig_http_respond(F->held, 200, NULL, body, n, NULL, 0), 0);
	pump_for(NULL, 10);
	assert_true(server_bytes() > base + 65536);
	char head[128];
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n" D "Content-Length: %zu\r\n\r\n", n);
	expect(p, head);
	expect_n(p, body, n, __LINE__);
	pump_for(p, 10);
	/* Idle again: back to the baseline. */
	assert_int_equal(server_conns(), 1);
	assert_int_equal(server_bytes(), base);

	/* The same after pipelined requests and a chunked body. */
	send_str(p, chunked_req);
	send_str(p, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("POST /echo - 11:hello world"));
	expect(p, OK("GET /echo - 0:"));
	pump_for(p, 10);
	assert_int_equal(server_bytes(), base);
	peer_close(p);
}

static void test_drain(void **state)
{
	start_server(NULL);
	struct peer *idle, *busy, *partial;
	idle = open_peer();
	busy = open_peer();
	partial = open_peer();
	send_str(idle, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(idle, OK("GET /echo - 0:"));
	send_str(busy, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
	send_str(partial, "GET /echo HTTP/1.1\r\nHost: a\r\n");
	pump_for(NULL, 10);
	assert_non_null(F->held);
	assert_int_equal(ig_http_server_busy(F->srv), 2);

	ig_http_server_drain(F->srv);
	/* The idle connection closes; the listener is gone. */
	expect_close(idle);
	assert_true(tcp_connect(F->port) < 0);
	assert_int_equal(errno, ECONNREFUSED);
	expect_quiet(busy, 10);
	/* The busy ones answer with Connection: close and close after it. */
	assert_int_equal(ig_http_respond(F->held, 200, "text/plain", "bye", 3, NULL, 0), 0);
	expect(busy, "HTTP/1.1 200 OK\r\n" D "Content-Type: text/plain\r\nContent-Length: 3\r\n"
		     "Connection: close\r\n\r\nbye");
	expect_close(busy);
	send_str(partial, "\r\n");
	expect(partial, ok_resp("GET /echo - 0:", "Connection: close\r\n"));
	expect_close(partial);
	/* Both linger (write side shut, reading) until the clients close. */
	peer_close(idle);
	peer_close(busy);
	peer_close(partial);
	wait_conns(0);
	assert_int_equal(ig_http_server_busy(F->srv), 0);
}

/* A response that ended before the drain but is still being written: the
 * connection is busy, so it must close once the response is out rather
 * than wait as an idle keep-alive connection. */
static void test_drain_while_flushing(void **state)
{
	start_server_sndbuf(NULL, 65536);
	struct peer *p;
	p = open_peer_rcvbuf(4096);
	size_t n = 1u << 20;
	char req[64];
	snprintf(req, sizeof req, "GET /respond-big/%zu HTTP/1.1\r\nHost: a\r\n\r\n", n);
	send_str(p, req);
	pump_for(NULL, 20);
	assert_int_equal(F->nreq, 1);
	assert_int_equal(ig_http_server_busy(F->srv), 1);
	ig_http_server_drain(F->srv);
	char head[128];
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n" D "Content-Length: %zu\r\n\r\n", n);
	expect(p, head);
	char *body = pattern(n);
	expect_n(p, body, n, __LINE__);
	expect_close(p);
	peer_close(p);
}

static int highest_open_fd(void)
{
	int hi = -1;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

static void test_emfile_backoff(void **state)
{
	start_server(NULL);
	/* A limit just above what is open, then fill it but for one slot,
	 * which the client's socket takes: the server's accept fails. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &F->old_rlimit), 0);
	int hi = highest_open_fd();
	struct rlimit lim = F->old_rlimit;
	lim.rlim_cur = (rlim_t)hi + 1 + 8;
	assert_true(lim.rlim_cur <= F->old_rlimit.rlim_cur);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	F->rlimit_changed = true;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			assert_int_equal(errno, EMFILE);
			break;
		}
		assert_true(F->nfillers < 1024);
		F->fillers[F->nfillers++] = fd;
	}
	assert_true(F->nfillers >= 1);
	close(F->fillers[--F->nfillers]);
	struct peer *p;
	p = open_peer();
	int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(spare, -1); /* really full */

	/* The first accept fails; then no busy loop: over ~100 ms the loop
	 * wakes only for the back-off timer (10, 20, 40 ms...), not for a
	 * listener that stays readable. */
	ig_loop_run_once(&F->loop, 50);
	int iterations = 0, events = 0;
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < 100) {
		int n = ig_loop_run_once(&F->loop, 100);
		assert_true(n >= 0);
		events += n;
		iterations++;
	}
	assert_true(iterations < 20);
	assert_true(events < 10);
	assert_int_equal(server_conns(), 0);

	/* Descriptors free again: the server resumes and serves. */
	restore_fds();
	wait_conns(1);
	send_str(p, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(p, OK("GET /echo - 0:"));
	peer_close(p);
	struct peer *q;
	q = open_peer();
	send_str(q, "GET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n");
	expect(q, OK("GET /echo?2 - 0:"));
	peer_close(q);
}

int main(void)
{
	ig_log_level = IG_LOG_ERROR;
	/* TEST_FILTER=test_408 runs the tests whose names match. */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_one_piece_and_bytewise),
	    T(test_leading_blank_lines),
	    T(test_body_length_of_framing),
	    T(test_date),
	    T(test_pipelined_in_order),
	    T(test_head),
	    T(test_http10),
	    T(test_chunked_request),
	    T(test_body_progress),
	    T(test_expect_continue),
	    T(test_malformed_400),
	    T(test_binary_head_400_at_once),
	    T(test_request_target_and_host),
	    T(test_https_target_in_clear),
	    T(test_host_values),
	    T(test_431),
	    T(test_http_versions),
	    T(test_413),
	    T(test_refusal_body),
	    T(test_streamed_body_sized),
	    T(test_streamed_body_chunked),
	    T(test_streamed_body_backpressure),
	    T(test_streamed_body_answered_early),
	    T(test_408),
	    T(test_body_timeout_is_silence),
	    T(test_keepalive_idle_timeout),
	    T(test_streamed_response),
	    T(test_trailers),
	    T(test_backpressure),
	    T(test_tunnel),
	    T(test_send_timeout),
	    T(test_send_timeout_moves_with_progress),
	    T(test_abort_on_client_close),
	    T(test_reset_with_full_pipeline),
	    T(test_http_abort),
	    T(test_half_close),
	    T(test_half_close_large_response),
	    T(test_idle_holds_no_buffer),
	    T(test_drain),
	    T(test_drain_while_flushing),
	    T(test_emfile_backoff),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
