#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "json/json.h"

/* A connection is in one of these states; the state decides what a
 * readable socket means. */
enum conn_state {
	ST_HEAD,     /* waiting for (the rest of) a request head */
	ST_BODY,     /* reading the body of the request whose head is parsed */
	ST_HANDLING, /* handler owns the exchange; response not finished */
	ST_FLUSH,    /* response finished; waiting for the output to drain */
	ST_CLOSING,  /* output drained or abandoned: close when flushed */
};

#define READ_CHUNK 65536
#define PIPELINE_MAX 65536 /* bytes of a next request buffered while busy */

struct ig_http_conn {
	struct ig_http_server *srv;
	struct ig_io io;
	struct ig_timer timer;
	enum conn_state state;
	struct ig_buf in;   /* received bytes not yet processed */
	struct ig_buf head; /* copy of the current request head; req points here */
	struct ig_buf out;  /* response bytes not yet written */
	size_t out_off;
	struct ig_http_header *hdrs;
	struct ig_http_exchange ex;
	struct ig_http_framing framing;
	struct ig_chunked_decoder chunked;
	uint64_t body_left; /* Content-Length bytes still to read */
	bool keep_alive;     /* of the current exchange */
	bool resp_started, resp_chunked, resp_no_body, resp_close_delimited;
	bool want_writable;
	bool in_handler; /* exchange handed to the handler and not ended */
	bool is_head;
	bool head_timer; /* the header deadline runs (not the idle one) */
	bool lingering;  /* closing: write side shut, draining the input */
	bool broken;     /* a send failed under a handler call: free from the loop */
	/* While conn_process runs, a response finished inside its call (usually
	 * the handler answering at once) does not process the next pipelined
	 * request itself: that would recurse once per request, thousands deep
	 * for a buffer of tiny ones. It sets `again` and conn_process loops.
	 * conn_free then keeps the memory (`freed`) for conn_process to let go. */
	bool processing, again, freed;
	char peer[64];
	struct ig_http_conn *prev, *next;
};

struct ig_http_server {
	struct ig_loop *loop;
	struct ig_io listen_io;
	int listen_fd;
	struct ig_http_server_config cfg;
	ig_http_handler handler;
	void *ctx;
	struct ig_http_conn *conns;
	size_t busy;
	bool draining;
};

static void conn_process(struct ig_http_conn *c);
static void conn_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events);

void ig_http_server_config_defaults(struct ig_http_server_config *c)
{
	c->max_header_bytes = 64 * 1024;
	c->max_headers = 128;
	c->max_body_bytes = 16 * 1024 * 1024;
	c->header_timeout_ms = 30000;
	c->body_timeout_ms = 60000;
	c->keepalive_timeout_ms = 75000;
	c->write_high_water = 256 * 1024;
}

/* ---- connection lifetime ---- */

static void conn_free(struct ig_http_conn *c)
{
	struct ig_http_server *s = c->srv;
	if (c->in_handler) {
		c->in_handler = false;
		s->busy--;
		if (c->ex.on_abort)
			c->ex.on_abort(&c->ex);
	}
	ig_timer_stop(s->loop, &c->timer);
	ig_io_stop(s->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ig_buf_free(&c->in);
	ig_buf_free(&c->head);
	ig_buf_free(&c->out);
	ig_buf_free(&c->ex.body);
	free(c->hdrs);
	c->hdrs = NULL;
	if (c->processing)
		c->freed = true;
	else
		free(c);
}

static void on_timeout(struct ig_loop *loop, struct ig_timer *t);

static void arm_timer(struct ig_http_conn *c, uint64_t ms)
{
	if (ms)
		ig_timer_start(c->srv->loop, &c->timer, ms, on_timeout, c);
	else
		ig_timer_stop(c->srv->loop, &c->timer);
}

/* Chooses the events to watch from the state: read while a request is
 * being received, and while busy only up to a small pipelining allowance
 * (reading on lets us notice a client that hung up); write while output
 * is pending. */
static void update_events(struct ig_http_conn *c)
{
	unsigned ev = 0;
	if (c->state == ST_HEAD || c->state == ST_BODY)
		ev |= IG_EV_READ;
	else if ((c->state == ST_HANDLING || c->state == ST_FLUSH) && c->in.len < PIPELINE_MAX)
		ev |= IG_EV_READ;
	if (c->out.len > c->out_off)
		ev |= IG_EV_WRITE;
	ig_io_set(c->srv->loop, &c->io, ev);
}

/* Writes what it can. Returns -1 if the socket failed (the connection is
 * left as it is). */
static int send_out(struct ig_http_conn *c)
{
	return ig_send_buf(c->io.fd, &c->out, &c->out_off) < 0 ? -1 : 0;
}

/* Writes what it can. Returns -1 if the connection failed (and was freed). */
static int flush_out(struct ig_http_conn *c)
{
	if (send_out(c) < 0) {
		conn_free(c);
		return -1;
	}
	return 0;
}

/* The same for calls a handler makes (start_response, write): freeing the
 * connection there would run on_abort inside the handler's own call, with
 * its state still on the stack. The connection is marked broken instead and
 * freed by the loop right after; the call returns -1. */
static int flush_from_handler(struct ig_http_conn *c)
{
	if (c->broken)
		return -1;
	if (send_out(c) == 0)
		return 0;
	c->broken = true;
	ig_io_set(c->srv->loop, &c->io, 0);
	ig_timer_start(c->srv->loop, &c->timer, 0, on_timeout, c);
	return -1;
}

static size_t out_pending(const struct ig_http_conn *c)
{
	return c->out.len - c->out_off;
}

/* Starts waiting for the next request on a kept-alive connection. */
static void start_next(struct ig_http_conn *c)
{
	c->state = ST_HEAD;
	ig_buf_reset(&c->head);
	ig_buf_free(&c->ex.body);
	memset(&c->ex, 0, sizeof c->ex);
	c->ex.conn = c;
	c->resp_started = false;
	c->want_writable = false;
	c->head_timer = c->in.len > 0;
	arm_timer(c, c->in.len ? c->srv->cfg.header_timeout_ms : c->srv->cfg.keepalive_timeout_ms);
}

/* Closes after the last response: the write side is shut and input is
 * read and dropped for a moment, so that a client still sending (say, the
 * body of a request answered 413) reads our answer instead of a reset. */
static void linger_close(struct ig_http_conn *c)
{
	c->state = ST_CLOSING;
	if (c->lingering)
		return;
	c->lingering = true;
	shutdown(c->io.fd, SHUT_WR);
	arm_timer(c, 2000);
	ig_io_set(c->srv->loop, &c->io, IG_EV_READ);
}

/* Called when the response is complete in the output buffer. */
static void after_response(struct ig_http_conn *c)
{
	if (c->broken) {
		conn_free(c); /* the exchange has ended: no on_abort */
		return;
	}
	if (flush_out(c) < 0)
		return;
	if (!c->keep_alive || c->srv->draining) {
		c->state = ST_CLOSING;
		if (out_pending(c) == 0) {
			linger_close(c);
			return;
		}
		update_events(c);
		return;
	}
	if (out_pending(c)) {
		c->state = ST_FLUSH;
		update_events(c);
		return;
	}
	start_next(c);
	update_events(c);
	if (!c->in.len)
		return;
	conn_process(c);
}

/* An error answered by the server itself, before any handler ran. The
 * connection closes after it, since the rest of the input cannot be
 * trusted to be framed. */
static void server_error(struct ig_http_conn *c, int status, const char *msg)
{
	if (!c->in_handler) {
		c->in_handler = true; /* so ig_http_respond_error can account */
		c->srv->busy++;
	}
	c->keep_alive = false;
	c->is_head = false;
	ig_http_respond_error(&c->ex, status, status >= 500 ? "server_error" : "invalid_request_error",
			      NULL, "%s", msg);
}

static void on_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_http_conn *c = t->data;
	if (c->state == ST_CLOSING || c->broken) {
		conn_free(c);
		return;
	}
	if (c->state == ST_HANDLING) {
		/* The deferred flush of a response head. */
		if (flush_out(c) == 0)
			update_events(c);
		return;
	}
	if (c->state == ST_BODY || (c->state == ST_HEAD && c->in.len > 0)) {
		server_error(c, 408, "request timed out");
		return;
	}
	conn_free(c);
}

/* ---- reading a request ---- */

static void dispatch(struct ig_http_conn *c)
{
	struct ig_http_server *s = c->srv;
	ig_timer_stop(s->loop, &c->timer);
	c->state = ST_HANDLING;
	c->in_handler = true;
	s->busy++;
	c->ex.start_ns = ig_now_ns();
	update_events(c);
	s->handler(&c->ex, s->ctx);
}

static int parse_head(struct ig_http_conn *c)
{
	struct ig_http_server_config *cfg = &c->srv->cfg;
	int n = ig_http_parse_request(c->in.ptr, c->in.len, &c->ex.req, c->hdrs, cfg->max_headers);
	if (n == IG_HTTP_INCOMPLETE) {
		if (c->in.len >= cfg->max_header_bytes) {
			server_error(c, 431, "request header fields too large");
			return -1;
		}
		return 0;
	}
	if (n == IG_HTTP_TOO_MANY_HEADERS || (n > 0 && (size_t)n > cfg->max_header_bytes)) {
		server_error(c, 431, "request header fields too large");
		return -1;
	}
	if (n < 0) {
		server_error(c, 400, "malformed HTTP request");
		return -1;
	}
	/* Keep the head apart from the input so that the request's slices stay
	 * valid while the input buffer moves. */
	ig_buf_reset(&c->head);
	/* The NUL after the copy lets C string functions (regexec on header
	 * values, in route matching) stop at the head's end, not read past it. */
	if (ig_buf_append(&c->head, c->in.ptr, (size_t)n) < 0 || !ig_buf_cstr(&c->head)) {
		server_error(c, 500, "out of memory");
		return -1;
	}
	ig_http_parse_request(c->head.ptr, c->head.len, &c->ex.req, c->hdrs, cfg->max_headers);
	ig_buf_consume(&c->in, (size_t)n);
	if (ig_http_request_framing(&c->ex.req, &c->framing) < 0) {
		server_error(c, 400, "invalid message framing (Content-Length / Transfer-Encoding)");
		return -1;
	}
	c->keep_alive = c->framing.keep_alive;
	c->is_head = ig_str_eq_cstr(c->ex.req.method, "HEAD");
	ig_buf_init(&c->ex.body, cfg->max_body_bytes);
	if (c->framing.kind == IG_BODY_LENGTH && c->framing.length > cfg->max_body_bytes) {
		server_error(c, 413, "request body too large");
		return -1;
	}
	/* A known length is allocated once, not grown by doubling (up to 8 MiB:
	 * a client that announces more must send it before we hold more). */
	if (c->framing.kind == IG_BODY_LENGTH &&
	    ig_buf_reserve(&c->ex.body, c->framing.length < (8u << 20) ? c->framing.length
								       : (8u << 20)) < 0) {
		server_error(c, 500, "out of memory for the request body");
		return -1;
	}
	c->ex.peer = (struct ig_str){c->peer, strlen(c->peer)};
	memset(&c->chunked, 0, sizeof c->chunked);
	c->body_left = c->framing.kind == IG_BODY_LENGTH ? c->framing.length : 0;
	if (c->framing.kind == IG_BODY_NONE ||
	    (c->framing.kind == IG_BODY_LENGTH && c->framing.length == 0))
		return 1;
	if (c->framing.expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		ig_buf_append(&c->out, cont, sizeof cont - 1);
		if (flush_out(c) < 0)
			return -2;
	}
	c->state = ST_BODY;
	arm_timer(c, cfg->body_timeout_ms);
	return 2;
}

/* parse_head returns -1 (answered with an error; the connection may be
 * gone), -2 (connection gone), 0 (head incomplete), 1 (request complete,
 * no body) or 2 (body follows). */

/* Moves body bytes from the input into the exchange. Returns 1 when the
 * body is complete, 0 when more is needed, -1 on error (answered). */
static int read_body(struct ig_http_conn *c)
{
	if (c->framing.kind == IG_BODY_LENGTH) {
		size_t take = c->in.len < c->body_left ? c->in.len : (size_t)c->body_left;
		if (ig_buf_append(&c->ex.body, c->in.ptr, take) < 0) {
			server_error(c, 413, "request body too large");
			return -1;
		}
		ig_buf_consume(&c->in, take);
		c->body_left -= take;
		return c->body_left == 0;
	}
	size_t len = c->in.len;
	ssize_t rest = ig_chunked_decode(&c->chunked, c->in.ptr, &len);
	if (rest == IG_HTTP_INVALID) {
		server_error(c, 400, "malformed chunked request body");
		return -1;
	}
	if (ig_buf_append(&c->ex.body, c->in.ptr, len) < 0) {
		server_error(c, 413, "request body too large");
		return -1;
	}
	if (rest == IG_HTTP_INCOMPLETE) {
		c->in.len = 0;
		return 0;
	}
	/* What follows the body belongs to the next request. */
	memmove(c->in.ptr, c->in.ptr + len, (size_t)rest);
	c->in.len = (size_t)rest;
	return 1;
}

/* One step: reads a head and maybe a body from the input and dispatches. */
static void conn_step(struct ig_http_conn *c)
{
	if (c->state == ST_HEAD) {
		if (c->in.len == 0)
			return;
		if (!c->head_timer) {
			c->head_timer = true;
			arm_timer(c, c->srv->cfg.header_timeout_ms);
		}
		int rc = parse_head(c);
		if (rc == 1) {
			dispatch(c);
			return;
		}
		if (rc != 2)
			return;
	}
	if (c->state == ST_BODY) {
		int rc = read_body(c);
		if (rc == 1)
			dispatch(c);
		else if (rc == 0)
			arm_timer(c, c->srv->cfg.body_timeout_ms);
	}
}

/* Processes buffered input for as long as responses finish at once and
 * leave more of it: pipelined requests are taken in this loop, never by
 * recursion (see `processing` in struct ig_http_conn). */
static void conn_process(struct ig_http_conn *c)
{
	if (c->processing) {
		/* Called from below a running conn_process: let it loop. */
		c->again = true;
		return;
	}
	c->processing = true;
	do {
		c->again = false;
		conn_step(c);
	} while (!c->freed && c->again && c->state == ST_HEAD);
	c->processing = false;
	if (c->freed)
		free(c);
}

static void conn_read(struct ig_http_conn *c)
{
	for (;;) {
		size_t room = READ_CHUNK;
		if (c->state == ST_HEAD) {
			/* Never hold more than one head's worth while looking for it. */
			size_t lim = c->srv->cfg.max_header_bytes + 1;
			room = c->in.len < lim ? lim - c->in.len : 0;
			if (room > READ_CHUNK)
				room = READ_CHUNK;
			if (room == 0) {
				conn_process(c);
				return;
			}
		} else if (c->state != ST_BODY) {
			room = c->in.len < PIPELINE_MAX ? PIPELINE_MAX - c->in.len : 0;
			if (room == 0) {
				update_events(c);
				return;
			}
		}
		if (ig_buf_reserve(&c->in, room) < 0) {
			conn_free(c);
			return;
		}
		ssize_t n = recv(c->io.fd, c->in.ptr + c->in.len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* Peer closed or failed. A response still being written for
			 * it has no reader: drop everything. */
			conn_free(c);
			return;
		}
		c->in.len += (size_t)n;
		if (c->state == ST_HEAD || c->state == ST_BODY) {
			/* The connection may be gone or busy after this; stop
			 * reading here and let the loop call again if there is more. */
			conn_process(c);
			return;
		}
	}
}

static void conn_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_http_conn *c = io->data;
	if (c->broken) {
		conn_free(c);
		return;
	}
	if (events & IG_EV_WRITE) {
		if (flush_out(c) < 0)
			return;
		if (out_pending(c) == 0) {
			if (c->state == ST_CLOSING) {
				linger_close(c);
				return;
			}
			if (c->state == ST_FLUSH) {
				start_next(c);
				update_events(c);
				if (c->in.len)
					conn_process(c);
				return;
			}
		}
		if (c->want_writable && out_pending(c) <= c->srv->cfg.write_high_water / 2) {
			c->want_writable = false;
			update_events(c);
			if (c->ex.on_writable)
				c->ex.on_writable(&c->ex);
			return;
		}
		update_events(c);
	}
	if (events & IG_EV_READ) {
		if (c->state == ST_CLOSING) {
			/* Discard input while a final response drains. */
			char sink[4096];
			ssize_t n = recv(c->io.fd, sink, sizeof sink, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				conn_free(c);
			return;
		}
		conn_read(c);
	}
}

/* ---- accepting ---- */

static void on_accept(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_http_server *s = io->data;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				ig_warn("accept: %s", strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct ig_http_conn *c = calloc(1, sizeof *c);
		if (c)
			c->hdrs = calloc(s->cfg.max_headers, sizeof *c->hdrs);
		if (!c || !c->hdrs) {
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->srv = s;
		c->ex.conn = c;
		ig_buf_init(&c->in, 0);
		char host[48] = "?";
		int port = 0;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
			port = ntohs(sin6->sin6_port);
		}
		snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		if (ig_io_start(loop, &c->io, fd, IG_EV_READ, conn_on_io, c) < 0) {
			c->io.fd = fd;
			conn_free(c);
			continue;
		}
		c->state = ST_HEAD;
		c->head_timer = true;
		arm_timer(c, s->cfg.header_timeout_ms);
	}
}

struct ig_http_server *ig_http_server_new(struct ig_loop *loop, int listen_fd,
					  const struct ig_http_server_config *cfg,
					  ig_http_handler handler, void *ctx)
{
	struct ig_http_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = loop;
	s->listen_fd = listen_fd;
	if (cfg)
		s->cfg = *cfg;
	else
		ig_http_server_config_defaults(&s->cfg);
	if (s->cfg.max_headers == 0)
		s->cfg.max_headers = 128;
	if (s->cfg.write_high_water == 0)
		s->cfg.write_high_water = 256 * 1024;
	s->handler = handler;
	s->ctx = ctx;
	if (ig_io_start(loop, &s->listen_io, listen_fd, IG_EV_READ, on_accept, s) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void ig_http_server_drain(struct ig_http_server *s)
{
	if (s->draining)
		return;
	s->draining = true;
	if (s->listen_fd >= 0) {
		ig_io_stop(s->loop, &s->listen_io);
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	struct ig_http_conn *c = s->conns;
	while (c) {
		struct ig_http_conn *next = c->next;
		if (c->state == ST_HEAD && c->in.len == 0)
			conn_free(c);
		c = next;
	}
}

size_t ig_http_server_busy(const struct ig_http_server *s)
{
	size_t n = 0;
	for (const struct ig_http_conn *c = s->conns; c; c = c->next)
		if (c->state != ST_HEAD || c->in.len)
			n++;
	return n;
}

void ig_http_server_free(struct ig_http_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_free(s->conns);
	if (s->listen_fd >= 0) {
		ig_io_stop(s->loop, &s->listen_io);
		close(s->listen_fd);
	}
	free(s);
}

/* ---- responses ---- */

static int append_head(struct ig_http_conn *c, int status, const char *content_type,
		       const struct ig_http_header *hdrs, size_t n, int64_t content_length)
{
	struct ig_buf *o = &c->out;
	int minor = c->ex.req.minor_version;
	int rc = ig_buf_append_cstr(o, "HTTP/1.1 ");
	rc |= ig_buf_append_u64(o, (uint64_t)status);
	rc |= ig_buf_append_cstrs(o, " ", ig_http_status_text(status), "\r\n", (char *)NULL);
	if (content_type)
		rc |= ig_buf_append_cstrs(o, "Content-Type: ", content_type, "\r\n", (char *)NULL);
	for (size_t i = 0; i < n; i++) {
		rc |= ig_buf_append_str(o, hdrs[i].name);
		rc |= ig_buf_append(o, ": ", 2);
		rc |= ig_buf_append_str(o, hdrs[i].value);
		rc |= ig_buf_append(o, "\r\n", 2);
	}
	bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
	c->resp_chunked = false;
	c->resp_close_delimited = false;
	if (content_length >= 0) {
		if (!bodyless) {
			rc |= ig_buf_append_cstr(o, "Content-Length: ");
			rc |= ig_buf_append_u64(o, (uint64_t)content_length);
			rc |= ig_buf_append(o, "\r\n", 2);
		}
	} else if (minor >= 1) {
		rc |= ig_buf_append_cstr(o, "Transfer-Encoding: chunked\r\n");
		c->resp_chunked = true;
	} else {
		c->resp_close_delimited = true;
		c->keep_alive = false;
	}
	if (c->srv->draining)
		c->keep_alive = false;
	if (!c->keep_alive)
		rc |= ig_buf_append_cstr(o, "Connection: close\r\n");
	else if (minor == 0)
		rc |= ig_buf_append_cstr(o, "Connection: keep-alive\r\n");
	rc |= ig_buf_append(o, "\r\n", 2);
	c->resp_no_body = c->is_head || bodyless;
	c->resp_started = true;
	return rc ? -1 : 0;
}

static void end_exchange(struct ig_http_conn *c)
{
	ig_timer_stop(c->srv->loop, &c->timer); /* a deferred head flush */
	if (c->in_handler) {
		c->in_handler = false;
		c->srv->busy--;
	}
	c->ex.on_abort = NULL;
	c->ex.on_writable = NULL;
	after_response(c);
}

int ig_http_respond(struct ig_http_exchange *ex, int status, const char *content_type,
		    const void *body, size_t len, const struct ig_http_header *extra, size_t nextra)
{
	struct ig_http_conn *c = ex->conn;
	if (c->resp_started)
		return -1;
	if (append_head(c, status, content_type, extra, nextra, (int64_t)len) < 0 ||
	    (!c->resp_no_body && ig_buf_append(&c->out, body, len) < 0)) {
		c->keep_alive = false;
	}
	end_exchange(c);
	return 0;
}

int ig_http_respond_error(struct ig_http_exchange *ex, int status, const char *type,
			  const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct ig_buf b = {0};
	ig_buf_append_cstr(&b, "{\"error\":{\"message\":");
	ig_json_write_string(&b, msg, strlen(msg));
	ig_buf_append_cstr(&b, ",\"type\":");
	ig_json_write_string(&b, type, strlen(type));
	ig_buf_append_cstr(&b, ",\"param\":null");
	if (code) {
		ig_buf_append_cstr(&b, ",\"code\":");
		ig_json_write_string(&b, code, strlen(code));
	} else {
		ig_buf_printf(&b, ",\"code\":%d", status);
	}
	ig_buf_append_cstr(&b, "}}");
	int rc = ig_http_respond(ex, status, "application/json", b.ptr, b.len, NULL, 0);
	ig_buf_free(&b);
	return rc;
}

int ig_http_start_response(struct ig_http_exchange *ex, int status,
			   const struct ig_http_header *hdrs, size_t n, int64_t content_length)
{
	struct ig_http_conn *c = ex->conn;
	if (c->resp_started)
		return -1;
	if (c->broken || append_head(c, status, NULL, hdrs, n, content_length) < 0)
		return -1;
	/* The head waits for the first body piece (usually in the same event
	 * batch) so both leave in one send; if none comes, the timer sends it
	 * at the end of this loop iteration. */
	ig_timer_start(c->srv->loop, &c->timer, 0, on_timeout, c);
	return 0;
}

int ig_http_write(struct ig_http_exchange *ex, const void *data, size_t len)
{
	struct ig_http_conn *c = ex->conn;
	if (!c->resp_started || c->broken)
		return -1;
	if (len == 0 || c->resp_no_body)
		return 0;
	int rc = 0;
	if (c->resp_chunked) {
		rc |= ig_buf_append_hex(&c->out, len);
		rc |= ig_buf_append(&c->out, "\r\n", 2);
	}
	rc |= ig_buf_append(&c->out, data, len);
	if (c->resp_chunked)
		rc |= ig_buf_append(&c->out, "\r\n", 2);
	if (rc)
		return -1;
	/* Write now: the socket is usually ready and this keeps latency low. */
	if (flush_from_handler(c) < 0)
		return -1;
	update_events(c);
	if (out_pending(c) > c->srv->cfg.write_high_water) {
		c->want_writable = true;
		return 1;
	}
	return 0;
}

int ig_http_end(struct ig_http_exchange *ex)
{
	struct ig_http_conn *c = ex->conn;
	if (!c->resp_started)
		return -1;
	if (c->resp_chunked && !c->resp_no_body)
		ig_buf_append(&c->out, "0\r\n\r\n", 5);
	if (c->resp_close_delimited)
		c->keep_alive = false;
	end_exchange(c);
	return 0;
}

void ig_http_abort(struct ig_http_exchange *ex)
{
	struct ig_http_conn *c = ex->conn;
	if (c->in_handler) {
		c->in_handler = false;
		c->srv->busy--;
	}
	conn_free(c);
}
