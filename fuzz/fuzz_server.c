/* libFuzzer target for the whole HTTP server path: accept, head and body
 * reading within limits, keep-alive and pipelining, synchronous, deferred,
 * streamed (with backpressure) and aborted answers, timeouts, drain and
 * teardown. Every input gets a fresh event loop and server; the input is
 * written by a client socket, in pieces, while the loop is run one
 * iteration at a time, so runs are deterministic and never sleep.
 *
 * Input: one control byte, then the bytes the client sends.
 *   bits 0-1  number of pieces the bytes are split into, minus one
 *   bit 2     client shuts its write side after the last piece
 *   bit 3     ig_http_server_drain() after the first piece
 *   bit 4     1 ms header/body/keep-alive timeouts, and one 3 ms wait at
 *             the end so that they fire (the only input kind that waits)
 *   bit 5     client closes right after sending the last piece, before
 *             the server has read it
 *   bit 6     HTTP/2: the server serves it, the client sends HTTP/2's
 *             preface first and the bytes are its frames (the corpus has
 *             seeds made with an HTTP/2 client library); each stream is
 *             an exchange of the same handler, a tunnel is answered 501
 *
 * The handler picks its behaviour from the first byte of the path after
 * '/': a abort, s streamed (sk: with Content-Length), b big streamed body
 * with backpressure, d deferred to a loop timer, w abort mid-stream,
 * e error, n 204, t a tunnel (101, then the client's bytes echoed; a
 * piece holding 'P' pauses reading until a loop timer resumes it, 'E'
 * ends the tunnel, 'A' aborts it), anything else an echo of the body.
 * A request to /q, /Q or /r still sending its body is streamed
 * (stream_body, over HTTP/1.1 or HTTP/2): /q echoes each piece as it comes
 * and ends with the body, /Q answers at once and never takes a byte
 * (HTTP/2's window holds the rest; over HTTP/1.1 the connection closes
 * after), /r takes the body as it comes and answers only at its end (so a
 * malformed chunked body is refused before any answer began).
 *
 * The listening socket is a Unix stream socket in the abstract namespace,
 * made once; each server gets a dup of it (and closes that). Unix sockets
 * leave no TIME_WAIT behind, which at thousands of connections a second
 * would exhaust loopback ports. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "event/loop.h"
#include "http/server.h"

#define MAX_HEADER_BYTES 4096
#define MAX_HEADERS 16
#define MAX_BODY 65536
#define HIGH_WATER 4096
#define BIG_TOTAL (128 * 1024)
#define MAX_ITERATIONS 256

enum {
	F_SHUT_WR = 1 << 2,
	F_DRAIN = 1 << 3,
	F_TIMEOUTS = 1 << 4,
	F_CLOSE_EARLY = 1 << 5,
	F_H2 = 1 << 6,
};

struct harness {
	struct ig_loop loop;
	struct ig_timer tick;
	struct ig_http_server *srv;
	unsigned long progress; /* bumped by everything that happens */
	size_t live;		/* deferred and streaming states allocated */
	bool h2;		/* the client speaks HTTP/2 */
};

/* State of an answer that outlives the handler call. */
struct pending {
	struct harness *h;
	struct ig_http_exchange *ex;
	struct ig_timer timer;
	size_t sent;
};

static int listen_fd = -1;
static struct sockaddr_un listen_addr;
static socklen_t listen_len;

/* ---- the handler ----------------------------------------------------------- */

static void pending_free(struct pending *p)
{
	ig_timer_stop(&p->h->loop, &p->timer);
	p->h->live--;
	free(p);
}

static void pending_abort(struct ig_http_exchange *ex)
{
	pending_free(ex->user);
}

static struct pending *pending_new(struct harness *h, struct ig_http_exchange *ex)
{
	struct pending *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->h = h;
	p->ex = ex;
	h->live++;
	ex->user = p;
	ex->on_abort = pending_abort;
	return p;
}

static const struct ig_http_header mode_hdr[] = {{IG_STR("X-Fuzz"), IG_STR("1")}};

/* Writes big blocks until the server pushes back; on_writable resumes. */
static void big_more(struct ig_http_exchange *ex)
{
	static const char block[8192];
	struct pending *p = ex->user;
	p->h->progress++;
	while (p->sent < BIG_TOTAL) {
		int rc = ig_http_write(ex, block, sizeof block);
		if (rc < 0)
			return; /* connection gone: on_abort has freed p */
		p->sent += sizeof block;
		if (rc == 1)
			return;
	}
	pending_free(p);
	ig_http_end(ex);
}

static void start_big(struct harness *h, struct ig_http_exchange *ex)
{
	struct pending *p = pending_new(h, ex);
	ex->on_writable = big_more;
	if (ig_http_start_response(ex, 200, mode_hdr, 1, -1) < 0)
		return;
	big_more(ex);
	(void)p;
}

static void deferred_fire(struct ig_loop *loop, struct ig_timer *t)
{
	struct pending *p = t->data;
	struct ig_http_exchange *ex = p->ex;
	p->h->progress++;
	pending_free(p);
	ig_http_respond(ex, 202, "text/plain", "later", 5, NULL, 0);
}

static void streamed(struct ig_http_exchange *ex, bool known_length, bool abort_midway)
{
	const char *body = ex->body.ptr ? ex->body.ptr : "";
	size_t len = ex->body.len, half = len / 2;
	if (ig_http_start_response(ex, 200, mode_hdr, 1, known_length ? (int64_t)len : -1) < 0)
		return;
	if (ig_http_write(ex, body, half) < 0)
		return;
	if (abort_midway) {
		ig_http_abort(ex);
		return;
	}
	if (ig_http_write(ex, body + half, len - half) < 0)
		return;
	ig_http_end(ex);
}

static void tunnel_resume(struct ig_loop *loop, struct ig_timer *t)
{
	struct pending *p = t->data;
	p->h->progress++;
	ig_http_tunnel_pause(p->ex, false);
}

static int tunnel_data(struct ig_http_exchange *ex, const char *data, size_t len)
{
	struct pending *p = ex->user;
	p->h->progress++;
	if (!len)
		abort(); /* the server hands over bytes, never nothing */
	if (ig_http_write(ex, data, len) < 0)
		return 1; /* gone: on_abort frees p */
	if (memchr(data, 'E', len)) {
		pending_free(p);
		ig_http_end(ex);
		return 0;
	}
	if (memchr(data, 'A', len)) {
		pending_free(p);
		ig_http_abort(ex);
		return 1;
	}
	if (memchr(data, 'P', len)) {
		ig_timer_start(&p->h->loop, &p->timer, 0, tunnel_resume, p);
		return 1;
	}
	return 0;
}

static void check_exchange(const struct ig_http_exchange *ex)
{
	const struct ig_http_request *r = &ex->req;
	if (r->num_headers > MAX_HEADERS || ex->body.len > MAX_BODY)
		abort();
	if (r->method.len == 0 || r->target.len == 0 || r->path.len > r->target.len)
		abort();
	for (size_t i = 0; i < r->num_headers; i++)
		if (r->headers[i].name.len == 0)
			abort();
}

static bool stream_body(struct ig_http_exchange *ex, void *ctx)
{
	struct ig_str path = ex->req.path;
	return path.len > 1 && (path.ptr[1] == 'q' || path.ptr[1] == 'Q' || path.ptr[1] == 'r');
}

static void counted_body(struct ig_http_exchange *ex)
{
	ig_http_body_consume(ex, ex->body.len);
	if (ex->body_done)
		ig_http_respond(ex, 200, NULL, "", 0, NULL, 0);
}

static void streamed_body(struct ig_http_exchange *ex)
{
	if (ex->body.len) {
		if (ig_http_write(ex, ex->body.ptr, ex->body.len) < 0)
			return;
		ig_http_body_consume(ex, ex->body.len);
	}
	if (ex->body_done)
		ig_http_end(ex);
}

static void handler(struct ig_http_exchange *ex, void *ctx)
{
	struct harness *h = ctx;
	struct ig_str path = ex->req.path;
	char mode = path.len > 1 ? path.ptr[1] : 0;

	h->progress++;
	check_exchange(ex);
	if (ex->body_streaming && mode == 'r') {
		ex->on_body = counted_body;
		counted_body(ex);
		return;
	}
	if (ex->body_streaming) {
		if (ig_http_start_response(ex, 200, NULL, 0, -1) < 0)
			abort();
		if (mode == 'Q') {
			ig_http_end(ex);
			return;
		}
		ex->on_body = streamed_body;
		streamed_body(ex);
		return;
	}
	switch (mode) {
	case 'a':
		ig_http_abort(ex);
		return;
	case 's':
		streamed(ex, path.len > 2 && path.ptr[2] == 'k', false);
		return;
	case 'w':
		streamed(ex, false, true);
		return;
	case 'b':
		start_big(h, ex);
		return;
	case 'd': {
		struct pending *p = pending_new(h, ex);
		ig_timer_start(&h->loop, &p->timer, 0, deferred_fire, p);
		return;
	}
	case 'e':
		ig_http_respond_error(ex, 429, "rate_limit", NULL, "slow down: %.*s",
				      IG_STR_FMT(path));
		return;
	case 'n':
		ig_http_respond(ex, 204, NULL, NULL, 0, NULL, 0);
		return;
	case 't': {
		if (ex->h2) {
			if (ig_http_switch_protocols(ex, mode_hdr, 1, tunnel_data) == 0)
				abort(); /* no protocol switch over HTTP/2 */
			ig_http_respond(ex, 501, NULL, NULL, 0, NULL, 0);
			return;
		}
		struct pending *p = pending_new(h, ex);
		if (ig_http_switch_protocols(ex, mode_hdr, 1, tunnel_data) < 0)
			abort(); /* nothing was answered yet */
		(void)p;
		return;
	}
	default:
		ig_http_respond(ex, 200, "application/octet-stream", ex->body.ptr, ex->body.len,
				mode_hdr, 1);
		return;
	}
}

/* ---- driving the loop ---------------------------------------------------------- */

static void on_tick(struct ig_loop *loop, struct ig_timer *t)
{
	ig_loop_stop(loop);
}

/* One pass of the loop: a timer due after delay_ns stops it. With 0 the
 * pass polls without blocking. */
static void iterate(struct harness *h, uint64_t delay_ns)
{
	ig_timer_start_ns(&h->loop, &h->tick, delay_ns, on_tick, h);
	if (ig_loop_run(&h->loop) < 0)
		abort();
}

/* Reads and drops what the server sent. The first bytes must be a status
 * line, or over HTTP/2 the header of a SETTINGS frame (its length aside:
 * '?' matches any byte). Returns false once the server has closed. */
static bool drain_client(struct harness *h, int fd, size_t *total)
{
	static const char status[] = "HTTP/1.1 ", settings[] = "???\x04\0\0\0\0\0";
	static char sink[65536];
	const char *first = h->h2 ? settings : status;
	size_t want = h->h2 ? sizeof settings - 1 : sizeof status - 1;
	for (;;) {
		ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
		if (n > 0) {
			for (size_t i = *total; i < want && i - *total < (size_t)n; i++)
				if (first[i] != '?' && sink[i - *total] != first[i])
					abort();
			*total += (size_t)n;
			h->progress++;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
}

static void send_all(struct harness *h, int fd, const uint8_t *p, size_t len, size_t *got)
{
	for (int tries = 0; len && tries < MAX_ITERATIONS; tries++) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return; /* the server closed on us */
		iterate(h, 0);
		drain_client(h, fd, got);
	}
}

/* Runs the loop until nothing happens for a few passes. */
static void settle(struct harness *h, int fd, size_t *got)
{
	int quiet = 0;
	for (int i = 0; i < MAX_ITERATIONS && quiet < 3; i++) {
		unsigned long before = h->progress;
		iterate(h, 0);
		if (fd >= 0 && !drain_client(h, fd, got))
			fd = -1; /* closed: the remaining passes only run timers */
		quiet = h->progress == before && h->live == 0 ? quiet + 1 : 0;
	}
}

/* ---- setup ------------------------------------------------------------------------ */

static void listen_once(void)
{
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		abort();
	/* Binding only the family autobinds a unique abstract address. */
	struct sockaddr_un any = {.sun_family = AF_UNIX};
	if (bind(listen_fd, (struct sockaddr *)&any, sizeof(sa_family_t)) < 0 ||
	    listen(listen_fd, 16) < 0)
		abort();
	listen_len = sizeof listen_addr;
	if (getsockname(listen_fd, (struct sockaddr *)&listen_addr, &listen_len) < 0)
		abort();
}

/* Descriptors are checked within one input: the sanitizers may open some
 * of their own between inputs (the symbolizer's pipes). */
#define FD_WINDOW 64

static uint64_t free_fds(void)
{
	uint64_t set = 0;
	for (int fd = 0; fd < FD_WINDOW; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			set |= (uint64_t)1 << fd;
	return set;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness h = {0};
	struct ig_http_server_config cfg;
	unsigned flags = size ? data[0] : 0;
	size_t pieces = (flags & 3) + 1, got = 0;

	if (listen_fd < 0)
		listen_once();
	uint64_t fds_before = free_fds();
	data += size != 0;
	size -= size != 0;

	ig_http_server_config_defaults(&cfg);
	cfg.max_header_bytes = MAX_HEADER_BYTES;
	cfg.max_headers = MAX_HEADERS;
	cfg.max_body_bytes = MAX_BODY;
	cfg.write_high_water = HIGH_WATER;
	if (flags & F_TIMEOUTS)
		cfg.header_timeout_ms = cfg.body_timeout_ms = cfg.keepalive_timeout_ms = 1;
	cfg.http2 = h.h2 = (flags & F_H2) != 0;
	cfg.stream_body = stream_body;

	if (ig_loop_init(&h.loop) < 0)
		abort();
	int sfd = dup(listen_fd); /* shares O_NONBLOCK with listen_fd */
	h.srv = sfd >= 0 ? ig_http_server_new(&h.loop, sfd, &cfg, handler, &h) : NULL;
	if (!h.srv)
		abort();
	int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&listen_addr, listen_len) < 0)
		abort();
	iterate(&h, 0); /* accept */
	if (flags & F_H2) {
		static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
		send_all(&h, cfd, (const uint8_t *)preface, sizeof preface - 1, &got);
	}

	for (size_t i = 0; i < pieces; i++) {
		size_t from = size * i / pieces, to = size * (i + 1) / pieces;
		send_all(&h, cfd, data + from, to - from, &got);
		if (i + 1 == pieces && (flags & F_CLOSE_EARLY)) {
			/* Gone before the server has read the last piece: its
			 * answers to it fail under the handler. */
			close(cfd);
			cfd = -1;
		}
		settle(&h, cfd, &got);
		if (i == 0 && (flags & F_DRAIN))
			ig_http_server_drain(h.srv);
	}
	if (cfd >= 0 && (flags & F_SHUT_WR))
		shutdown(cfd, SHUT_WR);
	settle(&h, cfd, &got);
	if (flags & F_TIMEOUTS) {
		iterate(&h, 3000000);
		settle(&h, cfd, &got);
	}
	if (cfd >= 0)
		close(cfd);
	settle(&h, -1, &got);

	ig_http_server_free(h.srv);
	if (h.live != 0)
		abort(); /* every pending answer ended or was aborted */
	ig_timer_stop(&h.loop, &h.tick);
	if (h.loop.heap_len != 0)
		abort(); /* the server left a timer armed */
	ig_loop_free(&h.loop);
	if ((free_fds() & fds_before) != fds_before)
		abort(); /* a descriptor leaked */
	return 0;
}
