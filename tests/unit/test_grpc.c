/* Unit tests for grpc/: a server and a client channel on one loop in the
 * test thread, on 127.0.0.1 with a port the kernel picks, plus a "raw"
 * HTTP/2 client (an nghttp2 session of the test's own on a plain socket)
 * for what our channel never sends: wrong :method or content-type, a
 * message cut into one-byte DATA frames, several messages in one frame,
 * and for seeing the server's RST_STREAM(NO_ERROR).
 *
 * Server methods:
 *   /t.S/Echo   echoes each message; finishes OK on half-close
 *   /t.S/Unary  on half-close answers the reversed last message, then OK
 *   /t.S/Early  answers the first message and finishes at once (before
 *               the client half-closes)
 *   /t.S/Hold   never answers (for cancel and deadlines)
 *   /t.S/Fail   finishes with status 9 and a message needing escapes
 *   /t.S/EchoV  echoes each message sent in three parts (ig_grpc_sendv) */
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
#include "grpc/grpc.h"
#include "grpc/grpc_int.h"
#include "http/certgen.h"
#include "http/tls.h"
#include "loopback.h"

#define WAIT_MS 5000

/* ---- server side ---- */

struct srec {
	size_t opened, ended, resets, half_closes;
	size_t msgs, bytes;
	size_t last_len;
	char timeout[32];
	char peer[64];
	uint8_t *last; /* last request message */
};

static struct srec srec;
static struct ig_loop loop;

static void s_open(struct ig_grpc_stream *s, void *arg)
{
	srec.opened++;
	struct ig_str t = ig_grpc_stream_header(s, "grpc-timeout");
	snprintf(srec.timeout, sizeof srec.timeout, "%.*s", IG_STR_FMT(t));
	snprintf(srec.peer, sizeof srec.peer, "%s", ig_grpc_stream_peer(s));
	ig_grpc_stream_set_data(s, arg);
}

static void remember(const uint8_t *msg, size_t len)
{
	srec.msgs++;
	srec.bytes += len;
	free(srec.last);
	srec.last = malloc(len + 1);
	memcpy(srec.last, msg, len);
	srec.last_len = len;
}

static void s_echo_msg(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	remember(msg, len);
	assert_int_equal(ig_grpc_send(s, msg, len), 0);
}

/* The message in three parts: its first byte, an empty part without a
 * pointer, the rest. */
static void s_echov_msg(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	remember(msg, len);
	size_t first = len ? 1 : 0;
	const struct ig_str parts[3] = {
	    {(const char *)msg, first}, {NULL, 0}, {(const char *)msg + first, len - first}};
	assert_int_equal(ig_grpc_sendv(s, parts, 3), 0);
}

static void s_finish_ok(struct ig_grpc_stream *s)
{
	srec.half_closes++;
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

static void s_unary_msg(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	remember(msg, len);
}

static void s_unary_half(struct ig_grpc_stream *s)
{
	srec.half_closes++;
	uint8_t *r = malloc(srec.last_len + 1);
	for (size_t i = 0; i < srec.last_len; i++)
		r[i] = srec.last[srec.last_len - 1 - i];
	ig_grpc_send(s, r, srec.last_len);
	free(r);
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

static void s_early_msg(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	remember(msg, len);
	ig_grpc_send(s, msg, len);
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

static void s_hold_msg(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	remember(msg, len);
}

static void s_fail_open(struct ig_grpc_stream *s, void *arg)
{
	s_open(s, arg);
	ig_grpc_finish(s, IG_GRPC_FAILED_PRECONDITION, "bad: 100% \xc3\xa9\n");
}

static void s_end(struct ig_grpc_stream *s, bool reset)
{
	srec.ended++;
	srec.resets += reset;
}

static const struct ig_grpc_method methods[] = {
    {"/t.S/Echo", s_open, s_echo_msg, s_finish_ok, s_end, NULL, NULL},
    {"/t.S/Unary", s_open, s_unary_msg, s_unary_half, s_end, NULL, NULL},
    {"/t.S/Early", s_open, s_early_msg, NULL, s_end, NULL, NULL},
    {"/t.S/Hold", s_open, s_hold_msg, NULL, s_end, NULL, NULL},
    {"/t.S/Fail", s_fail_open, NULL, NULL, s_end, NULL, NULL},
    {"/t.S/EchoV", s_open, s_echov_msg, s_finish_ok, s_end, NULL, NULL},
};

/* ---- client side ---- */

struct crec {
	size_t msgs, bytes, done;
	int status;
	char message[256];
	struct ig_buf all; /* every response message, concatenated */
	bool in_start;	   /* inside ig_grpc_call_start */
	bool done_in_start;
};

static void c_msg(struct ig_grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
	struct crec *r = data;
	r->msgs++;
	r->bytes += len;
	ig_buf_append(&r->all, msg, len);
}

static void c_done(struct ig_grpc_call *c, int status, const char *message, void *data)
{
	struct crec *r = data;
	r->done++;
	r->status = status;
	snprintf(r->message, sizeof r->message, "%s", message);
	if (r->in_start)
		r->done_in_start = true;
}

static const struct ig_grpc_call_handlers handlers = {c_msg, c_done};

/* ---- harness ---- */

struct fixture {
	struct ig_grpc_server *srv;
	struct ig_grpc_channel *ch;
	int lfd, port;
	struct ig_tls_ctx *tls;
	char ca_path[64];
};

static struct fixture fx;

static int listen_any(int *port)
{
	int fd = ig_listen_tcp("127.0.0.1", 0, false, 64);
	assert_true(fd >= 0);
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void start(const struct ig_grpc_server_config *scfg, bool tls, bool verify)
{
	memset(&srec, 0, sizeof srec);
	assert_int_equal(ig_loop_init(&loop), 0);
	fx.lfd = listen_any(&fx.port);
	fx.srv = ig_grpc_server_new(&loop, scfg, methods, sizeof methods / sizeof methods[0]);
	assert_non_null(fx.srv);
	assert_int_equal(ig_grpc_server_listen(fx.srv, fx.lfd), 0);
	struct ig_grpc_channel_config cc = {.host = "127.0.0.1", .port = fx.port, .tls = tls};
	if (verify) {
		cc.tls_verify = true;
		cc.ca_file = fx.ca_path;
	}
	fx.ch = ig_grpc_channel_new(&loop, &cc);
	assert_non_null(fx.ch);
}

static void run_ms(int ms)
{
	uint64_t end = ig_now_ms() + (uint64_t)ms;
	while (ig_now_ms() < end)
		ig_loop_run_once(&loop, 5);
}

#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		uint64_t end_ = ig_now_ms() + WAIT_MS;                                             \
		while (!(cond) && ig_now_ms() < end_)                                              \
			ig_loop_run_once(&loop, 5);                                                \
		assert_true(cond);                                                                 \
	} while (0)

static void stop(void)
{
	if (fx.ch)
		ig_grpc_channel_free(fx.ch);
	run_ms(20);
	ig_grpc_server_free(fx.srv);
	run_ms(5);
	close(fx.lfd);
	ig_loop_free(&loop);
	free(srec.last);
	srec.last = NULL;
	fx.ch = NULL;
}

static struct ig_grpc_call *call(const char *path, uint64_t deadline, struct crec *r)
{
	r->in_start = true;
	struct ig_grpc_call *c = ig_grpc_call_start(fx.ch, path, deadline, NULL, 0, &handlers, r);
	r->in_start = false;
	assert_non_null(c);
	return c;
}

/* ---- tests through our own client ---- */

static void test_unary(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Unary", 0, &r);
	assert_int_equal(ig_grpc_call_send(c, (const uint8_t *)"hello", 5), 0);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_int_equal(r.msgs, 1);
	assert_memory_equal(r.all.ptr, "olleh", 5);
	assert_int_equal(srec.msgs, 1);
	assert_int_equal(srec.half_closes, 1);
	RUN_UNTIL(srec.ended == 1);
	assert_int_equal(srec.resets, 0);
	assert_int_equal(ig_grpc_server_streams(fx.srv), 0);
	assert_true(ig_grpc_channel_ready(fx.ch));
	assert_string_equal(srec.timeout, "");
	assert_memory_equal(srec.peer, "127.0.0.1:", 10);
	ig_buf_free(&r.all);
	stop();
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static void test_bidi_many(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Echo", 0, &r);
	uint8_t buf[3000];
	struct ig_buf sent = {0};
	for (unsigned i = 0; i < 200; i++) {
		size_t len = (i * 37) % sizeof buf; /* includes empty messages */
		fill(buf, len, i);
		ig_buf_append(&sent, buf, len);
		assert_int_equal(ig_grpc_call_send(c, buf, len), 0);
		if (i == 99)
			RUN_UNTIL(r.msgs == 100); /* answers come while the stream is open */
	}
	assert_int_equal(ig_grpc_server_streams(fx.srv), 1);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_int_equal(r.msgs, 200);
	assert_int_equal(srec.msgs, 200);
	assert_int_equal(r.all.len, sent.len);
	assert_memory_equal(r.all.ptr, sent.ptr, sent.len);
	ig_buf_free(&sent);
	ig_buf_free(&r.all);
	stop();
}

static void test_one_mib(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	size_t len = 1u << 20;
	uint8_t *big = malloc(len);
	fill(big, len, 7);
	struct ig_grpc_call *c = call("/t.S/Echo", 0, &r);
	assert_int_equal(ig_grpc_call_send(c, big, len), 0);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_int_equal(r.msgs, 1);
	assert_int_equal(r.all.len, len);
	assert_memory_equal(r.all.ptr, big, len);
	free(big);
	ig_buf_free(&r.all);
	stop();
}

/* Messages given in parts both ways arrive as their concatenation: large
 * ones (each part copied into the queue once), empty ones, and parts
 * without a pointer. */
static void test_sendv_parts(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	size_t len = 300 * 1000;
	uint8_t *big = malloc(len);
	fill(big, len, 3);
	struct ig_buf sent = {0};
	struct ig_grpc_call *c = call("/t.S/EchoV", 0, &r);
	const size_t cuts[][2] = {{0, 0}, {1, 1}, {100, 70000}, {0, len}, {len / 2, len}};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		size_t a = cuts[i][0], b = cuts[i][1];
		const struct ig_str parts[4] = {{(const char *)big, a},
						{NULL, 0},
						{(const char *)big + a, b - a},
						{(const char *)big + b, len - b}};
		/* The last cut sends only the first three parts. */
		size_t n = i + 1 < sizeof cuts / sizeof cuts[0] ? 4 : 3;
		for (size_t k = 0; k < n; k++)
			ig_buf_append(&sent, parts[k].ptr, parts[k].len);
		assert_int_equal(ig_grpc_call_sendv(c, parts, n), 0);
	}
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_int_equal(r.msgs, 5);
	assert_int_equal(srec.msgs, 5);
	assert_int_equal(srec.bytes, sent.len);
	assert_int_equal(r.all.len, sent.len);
	assert_memory_equal(r.all.ptr, sent.ptr, sent.len);
	free(big);
	ig_buf_free(&sent);
	ig_buf_free(&r.all);
	stop();
}

/* ---- reassembly: a message over the ceiling, dropped and reported ---- */

struct reasm_rec {
	size_t msgs, oversize, last_len;
};

static bool reasm_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct reasm_rec *r = arg;
	r->msgs++;
	r->last_len = len;
	return true;
}

static bool reasm_oversize(void *arg, size_t len)
{
	struct reasm_rec *r = arg;
	r->oversize++;
	r->last_len = len;
	return true;
}

static void put_frame(struct ig_buf *b, size_t n, uint8_t fill_byte)
{
	uint8_t pre[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	ig_buf_append(b, pre, 5);
	for (size_t i = 0; i < n; i++)
		ig_buf_append(b, &fill_byte, 1);
}

static void test_reasm_oversize(void **state)
{
	struct ig_buf in = {0};
	put_frame(&in, 10, 'a');
	put_frame(&in, 5000, 'b'); /* over the ceiling */
	put_frame(&in, 7, 'c');
	/* Without on_oversize: the call's end. */
	struct grpc_reasm r = {.max = 100};
	struct reasm_rec rec = {0};
	assert_int_equal(grpc_reasm_feed(&r, (uint8_t *)in.ptr, in.len, reasm_msg, &rec),
			 IG_GRPC_RESOURCE_EXHAUSTED);
	assert_int_equal(rec.msgs, 1);
	grpc_reasm_free(&r);
	/* With it: reported once, dropped unheld, and the next message comes
	 * whole, however the bytes are cut. */
	for (size_t step = 1; step <= in.len; step = step * 7 + 1) {
		struct grpc_reasm q = {.max = 100, .on_oversize = reasm_oversize};
		struct reasm_rec got = {0};
		for (size_t off = 0; off < in.len; off += step) {
			size_t n = in.len - off < step ? in.len - off : step;
			assert_int_equal(
			    grpc_reasm_feed(&q, (uint8_t *)in.ptr + off, n, reasm_msg, &got), 0);
			assert_true(q.msg.len <= 100);
		}
		assert_int_equal(got.msgs, 2);
		assert_int_equal(got.oversize, 1);
		assert_int_equal(got.last_len, 7);
		assert_false(grpc_reasm_partial(&q));
		grpc_reasm_free(&q);
	}
	ig_buf_free(&in);
}

/* The outgoing queue on its own: framing of messages in parts, reads in
 * pieces of any size across its blocks, and its ceiling on the bytes not
 * yet read. */
static void test_outq(void **state)
{
	struct grpc_outq q = {0};
	struct ig_buf want = {0};
	uint8_t *big = malloc(20000);
	fill(big, 20000, 9);
	const size_t sizes[] = {0, 1, 4000, 20000, 3, 4090, 0, 17};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i], h = n / 3;
		const struct ig_str parts[3] = {
		    {(const char *)big, h}, {NULL, 0}, {(const char *)big + h, n - h}};
		uint8_t pre[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
				  (uint8_t)n};
		ig_buf_append(&want, pre, 5);
		ig_buf_append(&want, big, n);
		assert_int_equal(grpc_outq_pushv(&q, parts, 3), 0);
		assert_int_equal(grpc_outq_len(&q), want.len);
	}
	/* Read back in uneven pieces, the last one asking for more than is
	 * left. */
	uint8_t *got = malloc(want.len + 10);
	size_t off = 0, step = 1;
	while (grpc_outq_len(&q)) {
		size_t n = grpc_outq_take(&q, got + off, step);
		assert_true(n > 0 && n <= step);
		off += n;
		step = step * 3 + 1;
	}
	assert_int_equal(off, want.len);
	assert_memory_equal(got, want.ptr, want.len);
	assert_int_equal(grpc_outq_take(&q, got, 10), 0);

	/* The ceiling counts the 5-byte prefix and only bytes not yet read;
	 * a push over it queues nothing. */
	q.max = 100;
	const struct ig_str p95 = {(const char *)big, 95};
	const struct ig_str p0 = {NULL, 0};
	assert_int_equal(grpc_outq_pushv(&q, &p95, 1), 0);
	assert_int_equal(grpc_outq_pushv(&q, &p0, 1), -1);
	assert_int_equal(grpc_outq_len(&q), 100);
	assert_int_equal(grpc_outq_take(&q, got, 5), 5);
	assert_memory_equal(got, "\0\0\0\0\x5f", 5);
	assert_int_equal(grpc_outq_pushv(&q, &p0, 1), 0);
	assert_int_equal(grpc_outq_pushv(&q, &p0, 1), -1);
	assert_int_equal(grpc_outq_take(&q, got, 200), 100);
	assert_memory_equal(got, big, 95);
	assert_memory_equal(got + 95, "\0\0\0\0\0", 5);
	grpc_outq_free(&q);
	assert_int_equal(grpc_outq_len(&q), 0);
	free(got);
	free(big);
	ig_buf_free(&want);
}

static void test_over_limit(void **state)
{
	struct ig_grpc_server_config cfg = {.max_message_bytes = 64 * 1024};
	start(&cfg, false, false);
	struct crec r = {0};
	size_t len = 64 * 1024 + 1;
	uint8_t *big = calloc(1, len);
	struct ig_grpc_call *c = call("/t.S/Echo", 0, &r);
	assert_int_equal(ig_grpc_call_send(c, big, 100), 0);
	assert_int_equal(ig_grpc_call_send(c, big, len), 0);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_RESOURCE_EXHAUSTED);
	assert_int_equal(srec.msgs, 1); /* the first message went through */
	RUN_UNTIL(srec.ended == 1);
	/* The connection is still good for other calls. */
	struct crec r2 = {0};
	c = call("/t.S/Unary", 0, &r2);
	ig_grpc_call_send(c, big, 10);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r2.done == 1);
	assert_int_equal(r2.status, IG_GRPC_OK);
	free(big);
	ig_buf_free(&r.all);
	ig_buf_free(&r2.all);
	stop();
}

static void test_unknown_path(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Nope", 0, &r);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_UNIMPLEMENTED);
	assert_int_equal(srec.opened, 0);
	ig_buf_free(&r.all);
	stop();
}

static void test_status_message(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	call("/t.S/Fail", 0, &r);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_FAILED_PRECONDITION);
	assert_string_equal(r.message, "bad: 100% \xc3\xa9\n");
	RUN_UNTIL(srec.ended == 1);
	assert_int_equal(srec.resets, 0);
	stop();
}

static void test_early_finish(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Early", 0, &r);
	ig_grpc_call_send(c, (const uint8_t *)"abc", 3);
	/* No half-close from us: the server finishes first. */
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_int_equal(r.msgs, 1);
	RUN_UNTIL(srec.ended == 1);
	assert_int_equal(srec.resets, 0);
	ig_buf_free(&r.all);
	stop();
}

static void test_cancel(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Hold", 0, &r);
	ig_grpc_call_send(c, (const uint8_t *)"x", 1);
	RUN_UNTIL(srec.msgs == 1);
	ig_grpc_call_cancel(c);
	RUN_UNTIL(srec.ended == 1);
	assert_int_equal(srec.resets, 1);
	run_ms(20);
	assert_int_equal(r.done, 0); /* cancel is silent */
	assert_int_equal(ig_grpc_server_streams(fx.srv), 0);
	stop();
}

static void test_deadline(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	uint64_t t0 = ig_now_ms();
	struct ig_grpc_call *c = call("/t.S/Hold", 80, &r);
	ig_grpc_call_send(c, (const uint8_t *)"x", 1);
	RUN_UNTIL(r.done == 1);
	assert_true(ig_now_ms() - t0 >= 79);
	assert_int_equal(r.status, IG_GRPC_DEADLINE_EXCEEDED);
	/* grpc-timeout went out in milliseconds, no more than the deadline. */
	size_t n = strlen(srec.timeout);
	assert_true(n >= 2 && srec.timeout[n - 1] == 'm');
	long ms = strtol(srec.timeout, NULL, 10);
	assert_true(ms > 0 && ms <= 80);
	/* Ended by the client's RST_STREAM or by the server's own
	 * DEADLINE_EXCEEDED for that grpc-timeout, whichever came first. */
	RUN_UNTIL(srec.ended == 1);
	stop();
}

static void test_connect_refused(void **state)
{
	memset(&srec, 0, sizeof srec);
	assert_int_equal(ig_loop_init(&loop), 0);
	int port;
	int lfd = listen_any(&port);
	close(lfd); /* nobody listens there now */
	struct ig_grpc_channel_config cc = {.host = "127.0.0.1", .port = port, .backoff_ms = 200};
	struct ig_grpc_channel *ch = ig_grpc_channel_new(&loop, &cc);
	struct crec r = {0};
	r.in_start = true;
	struct ig_grpc_call *c = ig_grpc_call_start(ch, "/t.S/Unary", 0, NULL, 0, &handlers, &r);
	r.in_start = false;
	assert_non_null(c);
	assert_int_equal(r.done, 0);
	RUN_UNTIL(r.done == 1);
	assert_false(r.done_in_start);
	assert_int_equal(r.status, IG_GRPC_UNAVAILABLE);
	assert_false(ig_grpc_channel_ready(ch));
	/* During the back-off a new call fails at once, from the loop. */
	struct crec r2 = {0};
	uint64_t t0 = ig_now_ms();
	r2.in_start = true;
	ig_grpc_call_start(ch, "/t.S/Unary", 0, NULL, 0, &handlers, &r2);
	r2.in_start = false;
	RUN_UNTIL(r2.done == 1);
	assert_false(r2.done_in_start);
	assert_int_equal(r2.status, IG_GRPC_UNAVAILABLE);
	assert_true(ig_now_ms() - t0 < 150);
	ig_grpc_channel_free(ch);
	run_ms(5);
	ig_loop_free(&loop);
}

static void test_server_gone(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Hold", 0, &r);
	ig_grpc_call_send(c, (const uint8_t *)"x", 1);
	RUN_UNTIL(srec.msgs == 1);
	ig_grpc_server_free(fx.srv);
	fx.srv = ig_grpc_server_new(&loop, NULL, methods, 1);
	assert_int_equal(srec.ended, 1);
	assert_int_equal(srec.resets, 1);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_UNAVAILABLE);
	stop();
}

static void test_drain(void **state)
{
	start(NULL, false, false);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Echo", 0, &r);
	ig_grpc_call_send(c, (const uint8_t *)"a", 1);
	RUN_UNTIL(r.msgs == 1);
	ig_grpc_server_drain(fx.srv);
	run_ms(20);
	/* The stream in progress goes on. */
	ig_grpc_call_send(c, (const uint8_t *)"b", 1);
	RUN_UNTIL(r.msgs == 2);
	assert_false(ig_grpc_channel_ready(fx.ch)); /* GOAWAY seen */
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	ig_buf_free(&r.all);
	stop();
}

static void make_tls(void)
{
	const char *names[] = {"localhost", "127.0.0.1"};
	struct ig_buf cert = {0}, key = {0};
	char err[256];
	assert_int_equal(ig_certgen_selfsigned(names, 2, 1, &cert, &key, err, sizeof err), 0);
	struct ig_tls_cert tc = {
	    .cert_pem = cert.ptr, .cert_len = cert.len, .key_pem = key.ptr, .key_len = key.len};
	fx.tls = ig_tls_ctx_new(&tc, 1, err, sizeof err);
	assert_non_null(fx.tls);
	assert_int_equal(ig_tls_ctx_set_alpn(fx.tls, "h2"), 0);
	snprintf(fx.ca_path, sizeof fx.ca_path, "/tmp/test_grpc_ca_%d.pem", (int)getpid());
	FILE *f = fopen(fx.ca_path, "w");
	fwrite(cert.ptr, 1, cert.len, f);
	fclose(f);
	ig_buf_free(&cert);
	ig_buf_free(&key);
}

static void tls_unary(bool verify)
{
	make_tls();
	struct ig_grpc_server_config cfg = {.tls = fx.tls};
	start(&cfg, true, verify);
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Unary", 0, &r);
	ig_grpc_call_send(c, (const uint8_t *)"tls!", 4);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_OK);
	assert_memory_equal(r.all.ptr, "!slt", 4);
	ig_buf_free(&r.all);
	stop();
	ig_tls_ctx_unref(fx.tls);
	unlink(fx.ca_path);
}

static void test_tls(void **state)
{
	tls_unary(false);
	tls_unary(true);
}

static void test_tls_verify_fails(void **state)
{
	make_tls();
	struct ig_grpc_server_config cfg = {.tls = fx.tls};
	start(&cfg, true, false);
	ig_grpc_channel_free(fx.ch);
	/* The roots file holds an unrelated certificate: verification fails. */
	const char *names[] = {"elsewhere"};
	struct ig_buf cert = {0}, key = {0};
	char err[256], other[64];
	assert_int_equal(ig_certgen_selfsigned(names, 1, 1, &cert, &key, err, sizeof err), 0);
	snprintf(other, sizeof other, "/tmp/test_grpc_other_%d.pem", (int)getpid());
	FILE *f = fopen(other, "w");
	fwrite(cert.ptr, 1, cert.len, f);
	fclose(f);
	struct ig_grpc_channel_config cc = {.host = "127.0.0.1",
					    .port = fx.port,
					    .tls = true,
					    .tls_verify = true,
					    .ca_file = other};
	fx.ch = ig_grpc_channel_new(&loop, &cc);
	struct crec r = {0};
	call("/t.S/Unary", 0, &r);
	RUN_UNTIL(r.done == 1);
	assert_int_equal(r.status, IG_GRPC_UNAVAILABLE);
	assert_non_null(strstr(r.message, "certificate"));
	assert_int_equal(srec.opened, 0);
	ig_buf_free(&cert);
	ig_buf_free(&key);
	unlink(other);
	stop();
	ig_tls_ctx_unref(fx.tls);
	unlink(fx.ca_path);
}

/* ---- the raw HTTP/2 client ---- */

struct raw {
	int fd;
	nghttp2_session *ng;
	int status, grpc_status;
	char accept_encoding[32];
	bool closed;
	uint32_t close_code;
	size_t data_bytes;
	const uint8_t *body;
	size_t body_len, body_off, chunk;
	bool end_stream;
};

static ssize_t raw_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct raw *r = ud;
	ssize_t n = send(r->fd, data, len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return NGHTTP2_ERR_WOULDBLOCK;
	return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t raw_recv(nghttp2_session *ng, uint8_t *buf, size_t len, int flags, void *ud)
{
	struct raw *r = ud;
	ssize_t n = recv(r->fd, buf, len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return NGHTTP2_ERR_WOULDBLOCK;
	return n <= 0 ? NGHTTP2_ERR_EOF : n;
}

static int raw_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		      const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct raw *r = ud;
	if (nl == 7 && !memcmp(name, ":status", 7))
		r->status = atoi((const char *)value);
	if (nl == 11 && !memcmp(name, "grpc-status", 11))
		r->grpc_status = atoi((const char *)value);
	if (nl == 20 && !memcmp(name, "grpc-accept-encoding", 20))
		snprintf(r->accept_encoding, sizeof r->accept_encoding, "%.*s", (int)vl, value);
	return 0;
}

static int raw_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
		    void *ud)
{
	((struct raw *)ud)->data_bytes += len;
	return 0;
}

static int raw_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct raw *r = ud;
	r->closed = true;
	r->close_code = code;
	return 0;
}

static ssize_t raw_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	struct raw *r = ud;
	size_t n = r->body_len - r->body_off;
	if (n > r->chunk)
		n = r->chunk;
	if (n > len)
		n = len;
	memcpy(buf, r->body + r->body_off, n);
	r->body_off += n;
	if (r->body_off == r->body_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (!r->end_stream)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)n;
}

/* Sends one request (headers nv, then body in DATA frames of at most
 * chunk bytes) and runs until the stream is closed. */
static void raw_exchange(struct raw *r, const nghttp2_nv *nv, size_t n)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, raw_send);
	nghttp2_session_callbacks_set_recv_callback(cbs, raw_recv);
	nghttp2_session_callbacks_set_on_header_callback(cbs, raw_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, raw_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_close);
	nghttp2_session_client_new(&r->ng, cbs, r);
	nghttp2_session_callbacks_del(cbs);
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	fcntl(r->fd, F_SETFL, O_NONBLOCK);
	nghttp2_submit_settings(r->ng, NGHTTP2_FLAG_NONE, NULL, 0);
	nghttp2_data_provider prd = {.read_callback = raw_body};
	assert_true(nghttp2_submit_request(r->ng, NULL, nv, n, r->body ? &prd : NULL, r) > 0);
	uint64_t end = ig_now_ms() + WAIT_MS;
	while (!r->closed && ig_now_ms() < end) {
		nghttp2_session_send(r->ng);
		ig_loop_run_once(&loop, 2);
		if (nghttp2_session_recv(r->ng) != 0)
			break;
	}
	nghttp2_session_del(r->ng);
	close(r->fd);
}

#define RNV(n, v)                                                                                  \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

static void test_raw_bad_requests(void **state)
{
	start(NULL, false, false);
	nghttp2_nv get[] = {RNV(":method", "GET"), RNV(":scheme", "http"),
			    RNV(":path", "/t.S/Echo"), RNV(":authority", "x"),
			    RNV("content-type", "application/grpc")};
	struct raw r = {0};
	raw_exchange(&r, get, 5);
	assert_true(r.closed);
	assert_int_equal(r.status, 405);
	nghttp2_nv json[] = {RNV(":method", "POST"), RNV(":scheme", "http"),
			     RNV(":path", "/t.S/Echo"), RNV(":authority", "x"),
			     RNV("content-type", "application/json")};
	memset(&r, 0, sizeof r);
	raw_exchange(&r, json, 5);
	assert_true(r.closed);
	assert_int_equal(r.status, 415);
	assert_int_equal(srec.opened, 0);
	stop();
}

static size_t frame_into(uint8_t *out, const uint8_t *msg, size_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	memcpy(out + 5, msg, len);
	return len + 5;
}

static nghttp2_nv grpc_nv[] = {
    RNV(":method", "POST"), RNV(":scheme", "http"), RNV(":path", "/t.S/Echo"),
    RNV(":authority", "x"), RNV("te", "trailers"),  RNV("content-type", "application/grpc+proto")};

static void test_raw_framing(void **state)
{
	start(NULL, false, false);
	/* One 1000-byte message in one-byte DATA frames. */
	uint8_t msg[1000], body[4096];
	fill(msg, sizeof msg, 3);
	size_t blen = frame_into(body, msg, sizeof msg);
	struct raw r = {.body = body, .body_len = blen, .chunk = 1, .end_stream = true};
	raw_exchange(&r, grpc_nv, 6);
	assert_true(r.closed);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.grpc_status, 0);
	assert_int_equal(srec.msgs, 1);
	assert_int_equal(srec.last_len, sizeof msg);
	assert_memory_equal(srec.last, msg, sizeof msg);
	assert_int_equal(r.data_bytes, blen);

	/* Three messages (one empty) in a single DATA frame. */
	free(srec.last);
	memset(&srec, 0, sizeof srec);
	blen = frame_into(body, msg, 10);
	blen += frame_into(body + blen, msg, 0);
	blen += frame_into(body + blen, msg + 10, 20);
	memset(&r, 0, sizeof r);
	r = (struct raw){.body = body, .body_len = blen, .chunk = sizeof body, .end_stream = true};
	raw_exchange(&r, grpc_nv, 6);
	assert_int_equal(r.grpc_status, 0);
	assert_int_equal(srec.msgs, 3);
	assert_int_equal(srec.bytes, 30);
	assert_memory_equal(srec.last, msg + 10, 20);

	/* A compressed flag without grpc-encoding: INTERNAL. */
	memset(&r, 0, sizeof r);
	body[0] = 1;
	r = (struct raw){.body = body, .body_len = 15, .chunk = sizeof body, .end_stream = true};
	raw_exchange(&r, grpc_nv, 6);
	assert_int_equal(r.grpc_status, IG_GRPC_INTERNAL);

	/* Compressed with an encoding the server lacks: UNIMPLEMENTED, and
	 * grpc-accept-encoding names what it takes (compression.md). */
	memset(&r, 0, sizeof r);
	nghttp2_nv gz[7];
	memcpy(gz, grpc_nv, sizeof grpc_nv);
	gz[6] = (nghttp2_nv)RNV("grpc-encoding", "gzip");
	r = (struct raw){.body = body, .body_len = 15, .chunk = sizeof body, .end_stream = true};
	raw_exchange(&r, gz, 7);
	assert_int_equal(r.grpc_status, IG_GRPC_UNIMPLEMENTED);
	assert_string_equal(r.accept_encoding, "identity");

	/* A stream that ends inside a message: INTERNAL. */
	memset(&r, 0, sizeof r);
	frame_into(body, msg, 100);
	r = (struct raw){.body = body, .body_len = 50, .chunk = sizeof body, .end_stream = true};
	raw_exchange(&r, grpc_nv, 6);
	assert_int_equal(r.grpc_status, IG_GRPC_INTERNAL);
	free(srec.last);
	srec.last = NULL;
	stop();
}

/* PROTOCOL-HTTP2: a call whose grpc-timeout passes ends with
 * DEADLINE_EXCEEDED from the server, even when the client never enforces
 * it; a value that is not a timeout is no deadline. */
static void test_raw_grpc_timeout(void **state)
{
	start(NULL, false, false);
	nghttp2_nv nv[7];
	memcpy(nv, grpc_nv, sizeof grpc_nv);
	nv[2] = (nghttp2_nv)RNV(":path", "/t.S/Hold");
	nv[6] = (nghttp2_nv)RNV("grpc-timeout", "100m");
	uint8_t body[16];
	size_t blen = frame_into(body, (const uint8_t *)"hi", 2);
	struct raw r = {.body = body, .body_len = blen, .chunk = sizeof body, .end_stream = false};
	uint64_t t0 = ig_now_ms();
	raw_exchange(&r, nv, 7);
	assert_true(r.closed);
	assert_int_equal(r.grpc_status, IG_GRPC_DEADLINE_EXCEEDED);
	assert_true(ig_now_ms() - t0 >= 95);
	RUN_UNTIL(srec.ended == 1);
	stop();

	assert_int_equal(grpc_timeout_parse(IG_STR("100m")), 100000000u);
	assert_int_equal(grpc_timeout_parse(IG_STR("2S")), 2000000000u);
	assert_int_equal(grpc_timeout_parse(IG_STR("1H")), 3600000000000ull);
	assert_int_equal(grpc_timeout_parse(IG_STR("5n")), 5);
	assert_int_equal(grpc_timeout_parse(IG_STR("0u")), 1);
	assert_true(grpc_timeout_parse(IG_STR("99999999H")) > 0);
	assert_int_equal(grpc_timeout_parse(IG_STR("123456789m")), 0); /* 9 digits */
	assert_int_equal(grpc_timeout_parse(IG_STR("10x")), 0);
	assert_int_equal(grpc_timeout_parse(IG_STR("m")), 0);
	assert_int_equal(grpc_timeout_parse(IG_STR("-1S")), 0);
}

static void test_raw_early_rst(void **state)
{
	start(NULL, false, false);
	nghttp2_nv nv[6];
	memcpy(nv, grpc_nv, sizeof nv);
	nv[2] = (nghttp2_nv)RNV(":path", "/t.S/Early");
	uint8_t body[16];
	size_t blen = frame_into(body, (const uint8_t *)"hi", 2);
	struct raw r = {.body = body, .body_len = blen, .chunk = sizeof body, .end_stream = false};
	raw_exchange(&r, nv, 6);
	assert_true(r.closed);
	assert_int_equal(r.grpc_status, 0);
	assert_int_equal(r.close_code, NGHTTP2_NO_ERROR);
	RUN_UNTIL(srec.ended == 1);
	assert_int_equal(srec.resets, 0);
	stop();
}

/* Many streams each holding most of a large message on one connection:
 * HTTP/2 flow control gives the window back as the server takes bytes in,
 * so only the server's own ceiling on what a connection holds (32 MiB
 * here) stops the connection from growing without bound. */
#define HOLD_STREAMS 48
#define HOLD_PART (800u << 10)
struct hold_stream {
	size_t off;
	int grpc_status;
	bool closed;
};
static struct hold_stream holds[HOLD_STREAMS + 1];
static uint8_t *hold_body;

static ssize_t hold_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct hold_stream *h = src->ptr;
	size_t n = HOLD_PART - h->off;
	if (n > len)
		n = len;
	if (n == 0)
		return NGHTTP2_ERR_DEFERRED; /* the message never ends */
	memcpy(buf, hold_body + h->off, n);
	h->off += n;
	return (ssize_t)n;
}

static int hold_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		       const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct hold_stream *h = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (h && nl == 11 && !memcmp(name, "grpc-status", 11))
		h->grpc_status = atoi((const char *)value);
	return 0;
}

static int hold_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct hold_stream *h = nghttp2_session_get_stream_user_data(ng, id);
	if (h)
		h->closed = true;
	return 0;
}

static void test_connection_memory_bounded(void **state)
{
	struct ig_grpc_server_config cfg = {.max_message_bytes = 1u << 20};
	start(&cfg, false, false);
	hold_body = calloc(1, HOLD_PART);
	assert_non_null(hold_body);
	/* Each message announces 1000000 bytes and sends 800 KiB of it. */
	hold_body[1] = 0x00;
	hold_body[2] = 0x0f;
	hold_body[3] = 0x42;
	hold_body[4] = 0x40;
	memset(holds, 0, sizeof holds);
	struct raw r = {0};
	nghttp2_session_callbacks *cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, raw_send);
	nghttp2_session_callbacks_set_recv_callback(cbs, raw_recv);
	nghttp2_session_callbacks_set_on_header_callback(cbs, hold_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, hold_close);
	nghttp2_session_client_new(&r.ng, cbs, &r);
	nghttp2_session_callbacks_del(cbs);
	r.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(r.fd, (struct sockaddr *)&sin, sizeof sin), 0);
	fcntl(r.fd, F_SETFL, O_NONBLOCK);
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20}};
	nghttp2_submit_settings(r.ng, NGHTTP2_FLAG_NONE, iv, 1);
	for (int i = 0; i < HOLD_STREAMS; i++) {
		nghttp2_data_provider prd = {.source.ptr = &holds[i], .read_callback = hold_read};
		assert_true(nghttp2_submit_request(r.ng, NULL, grpc_nv, 6, &prd, &holds[i]) > 0);
	}
	size_t refused = 0;
	uint64_t end = ig_now_ms() + WAIT_MS;
	while (ig_now_ms() < end && refused < HOLD_STREAMS - 40) {
		nghttp2_session_send(r.ng);
		ig_loop_run_once(&loop, 2);
		if (nghttp2_session_recv(r.ng) != 0)
			break;
		refused = 0;
		for (int i = 0; i < HOLD_STREAMS; i++)
			refused += holds[i].grpc_status == IG_GRPC_RESOURCE_EXHAUSTED;
	}
	for (int i = 0; i < 50; i++) { /* the refused ones end */
		nghttp2_session_send(r.ng);
		ig_loop_run_once(&loop, 2);
		nghttp2_session_recv(r.ng);
	}
	/* 32 MiB hold 40 of the 800 KiB parts; the others are refused, and
	 * the connection lives on. */
	assert_true(refused >= HOLD_STREAMS - 40);
	assert_true(refused < HOLD_STREAMS);
	assert_int_equal(ig_grpc_server_streams(fx.srv), HOLD_STREAMS - refused);
	nghttp2_session_del(r.ng);
	close(r.fd);
	free(hold_body);
	stop();
}

static void test_garbage_and_timeout(void **state)
{
	struct ig_grpc_server_config cfg = {.handshake_timeout_ms = 50, .idle_timeout_ms = 80};
	start(&cfg, false, false);
	/* Garbage instead of the preface: closed. */
	struct peer p;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	peer_init(&p, fd);
	peer_write_loop(&loop, &p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	uint64_t end = ig_now_ms() + WAIT_MS;
	while (!peer_closed(&p) && ig_now_ms() < end) {
		ig_loop_run_once(&loop, 5);
		peer_read(&p);
	}
	assert_true(peer_closed(&p));
	peer_close(&p);
	/* Silence: the handshake timeout closes it. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	peer_init(&p, fd);
	uint64_t t0 = ig_now_ms();
	end = t0 + WAIT_MS;
	while (!peer_closed(&p) && ig_now_ms() < end) {
		ig_loop_run_once(&loop, 5);
		peer_read(&p);
	}
	assert_true(peer_closed(&p));
	assert_true(ig_now_ms() - t0 >= 45);
	peer_close(&p);
	/* An idle client connection is closed (GOAWAY) after idle_timeout. */
	struct crec r = {0};
	struct ig_grpc_call *c = call("/t.S/Unary", 0, &r);
	ig_grpc_call_close_send(c);
	RUN_UNTIL(r.done == 1);
	assert_true(ig_grpc_channel_ready(fx.ch));
	RUN_UNTIL(!ig_grpc_channel_ready(fx.ch));
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unary),
	    cmocka_unit_test(test_bidi_many),
	    cmocka_unit_test(test_one_mib),
	    cmocka_unit_test(test_sendv_parts),
	    cmocka_unit_test(test_outq),
	    cmocka_unit_test(test_reasm_oversize),
	    cmocka_unit_test(test_over_limit),
	    cmocka_unit_test(test_unknown_path),
	    cmocka_unit_test(test_status_message),
	    cmocka_unit_test(test_early_finish),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_server_gone),
	    cmocka_unit_test(test_drain),
	    cmocka_unit_test(test_tls),
	    cmocka_unit_test(test_tls_verify_fails),
	    cmocka_unit_test(test_raw_bad_requests),
	    cmocka_unit_test(test_raw_framing),
	    cmocka_unit_test(test_raw_grpc_timeout),
	    cmocka_unit_test(test_raw_early_rst),
	    cmocka_unit_test(test_connection_memory_bounded),
	    cmocka_unit_test(test_garbage_and_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
