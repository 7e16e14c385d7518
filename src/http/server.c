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
#include <sys/uio.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/date.h"
#include "http/server_h2.h"
#include "http/server_int.h"
#include "http/tls.h"
#include "json/json.h"

static void conn_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events);
static void on_timer(struct ig_loop *loop, struct ig_timer *t);
static void process_input(struct ig_http_conn *c);
static void tls_update_events(struct ig_http_conn *c, unsigned ev);
static void tls_describe(struct ig_http_conn *c, struct ig_http_exchange *ex);
static int tls_send_out(struct ig_http_conn *c, const struct iovec *extra, int nextra);
static void tls_free(struct ig_http_conn *c);
static int tls_close_notify(struct ig_http_conn *c);
static ssize_t tls_recv(struct ig_http_conn *c, struct ig_buf *b, size_t room);
static unsigned tls_io(struct ig_http_conn *c, unsigned events);

void ig_http_server_config_defaults(struct ig_http_server_config *c)
{
	*c = (struct ig_http_server_config){0};
	c->max_header_bytes = 64 * 1024;
	c->max_headers = 128;
	c->max_body_bytes = 16 * 1024 * 1024;
	c->header_timeout_ms = 30000;
	c->body_timeout_ms = 60000;
	c->keepalive_timeout_ms = 75000;
	c->write_high_water = 256 * 1024;
	c->send_timeout_ms = 60000;
}

/* ---- connection lifetime ---- */

static void free_exchange(struct ig_http_conn *c)
{
	if (c->ex)
		ig_buf_free(&c->ex->body);
	c->ex = NULL;
	ig_arena_free(&c->arena);
}

/* Closes and frees the connection. Never called from inside a handler's
 * call into the server (those mark the connection broken and queue this):
 * on_abort runs here with nothing of the handler on the stack. */
static void conn_free(struct ig_http_conn *c)
{
	struct ig_http_server *s = c->srv;
	if (c->h2)
		ig_h2_free(c);
	if (c->in_handler) {
		c->in_handler = false;
		s->busy--;
		if (c->ex && c->ex->on_abort)
			c->ex->on_abort(c->ex);
	}
	ig_timer_stop(s->loop, &c->timer);
	ig_task_cancel(s->loop, &c->task);
	ig_task_cancel(s->loop, &c->flush_task);
	ig_task_cancel(s->loop, &c->tunnel_task);
	if (c->tls)
		tls_free(c);
	ig_io_stop(s->loop, &c->io);
	close(c->io.fd);
	s->nconns--;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free_exchange(c);
	ig_buf_free(&c->in);
	ig_buf_free(&c->out);
	free(c);
}

static void on_broken_task(struct ig_loop *loop, struct ig_task *t)
{
	conn_free(t->data);
}

/* A failure noticed inside a handler's call: the connection stops
 * watching its socket and is freed when the loop regains control. */
static void mark_broken(struct ig_http_conn *c)
{
	if (c->broken)
		return;
	c->broken = true;
	ig_io_set(c->srv->loop, &c->io, 0);
	ig_timer_stop(c->srv->loop, &c->timer);
	ig_task_cancel(c->srv->loop, &c->flush_task);
	ig_task_cancel(c->srv->loop, &c->tunnel_task);
	ig_task_queue(c->srv->loop, &c->task, on_broken_task, c);
}

static void arm_timer(struct ig_http_conn *c, enum timer_kind kind, uint64_t ms)
{
	c->tkind = ms ? kind : TM_NONE;
	if (ms)
		ig_timer_start(c->srv->loop, &c->timer, ms, on_timer, c);
	else
		ig_timer_stop(c->srv->loop, &c->timer);
}

static size_t out_pending(const struct ig_http_conn *c)
{
	return c->out.len - c->out_off;
}

/* Reads while a request is received; while busy, only up to a small
 * pipelining allowance (reading on lets us notice a client that hung up);
 * writes while output is pending. */
static bool read_wanted(const struct ig_http_conn *c)
{
	switch (c->state) {
	case ST_HEAD:
	case ST_BODY:
		return true;
	case ST_HANDLING:
		/* A streamed body is read while the handler keeps up. */
		if (c->streaming && !c->ex->body_done)
			return c->ex->body.len < STREAM_WINDOW;
		return c->in.len < PIPELINE_MAX && !c->peer_done;
	case ST_DONE:
	case ST_FLUSH:
		return c->in.len < PIPELINE_MAX && !c->peer_done;
	case ST_CLOSING:
		return c->lingering;
	case ST_TUNNEL:
		return !c->tunnel_paused && !c->in.len;
	case ST_H2:
		return true;
	case ST_HANDSHAKE:
		break;
	}
	return false;
}

static void update_events(struct ig_http_conn *c)
{
	if (c->broken)
		return;
	unsigned ev = read_wanted(c) ? IG_EV_READ : 0;
	if (out_pending(c))
		ev |= IG_EV_WRITE;
	if (__builtin_expect(c->tls != NULL, 0)) {
		tls_update_events(c, ev);
		return;
	}
	ig_io_set(c->srv->loop, &c->io, ev);
}

/* Output bookkeeping after a send: progress feeds the send timeout, an
 * emptied buffer is freed when large, and pending output arms the timer. */
static inline __attribute__((always_inline)) void after_send(struct ig_http_conn *c,
							     bool progressed)
{
	if (progressed)
		c->last_send_ns = c->srv->loop->now_ns;
	if (!out_pending(c)) {
		c->out.len = 0;
		c->out_off = 0;
		/* A tunnel may then stay silent for long: it holds nothing. */
		if (c->out.cap > OUT_KEEP || c->state == ST_TUNNEL)
			ig_buf_free(&c->out);
		if (c->tkind == TM_SEND)
			arm_timer(c, TM_NONE, 0);
	} else if (c->tkind != TM_SEND && c->tkind != TM_LINGER) {
		arm_timer(c, TM_SEND, c->srv->cfg.send_timeout_ms);
	}
}

/* Sends the pending output followed by `extra` spans in one sendmsg;
 * whatever the socket does not take is kept in the output buffer. Returns
 * 0, or -1 when the socket failed (the connection is left as it is). */
static int send_out(struct ig_http_conn *c, const struct iovec *extra, int nextra)
{
	if (c->tls)
		return tls_send_out(c, extra, nextra);
	struct iovec iov[8];
	int n = 0;
	size_t pend = out_pending(c);
	if (pend)
		iov[n++] = (struct iovec){c->out.ptr + c->out_off, pend};
	for (int i = 0; i < nextra && n < 8; i++)
		if (extra[i].iov_len)
			iov[n++] = extra[i];
	size_t total = 0, sent = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	int first = 0;
	while (sent < total) {
		struct msghdr msg = {.msg_iov = &iov[first], .msg_iovlen = (size_t)(n - first)};
		ssize_t w = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0)
			return -1;
		sent += (size_t)w;
		size_t left = (size_t)w;
		while (first < n && left >= iov[first].iov_len)
			left -= iov[first++].iov_len;
		if (left) {
			iov[first].iov_base = (char *)iov[first].iov_base + left;
			iov[first].iov_len -= left;
		}
	}
	if (sent < pend) {
		c->out_off += sent;
		first = pend ? 1 : 0; /* none of the extra spans went */
		for (int i = first; i < n; i++)
			if (ig_buf_append(&c->out, iov[i].iov_base, iov[i].iov_len) < 0)
				return -1;
		if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
			ig_buf_consume(&c->out, c->out_off);
			c->out_off = 0;
		}
	} else {
		/* The buffer went whole; iov[first..] is the unsent rest of the
		 * extra spans, already advanced past what went. */
		c->out.len = 0;
		c->out_off = 0;
		for (int i = first; i < n; i++)
			if (ig_buf_append(&c->out, iov[i].iov_base, iov[i].iov_len) < 0)
				return -1;
	}
	after_send(c, sent > 0);
	return 0;
}

static int flush_out(struct ig_http_conn *c)
{
	return out_pending(c) ? send_out(c, NULL, 0) : 0;
}

/* ---- after a response ---- */

/* Closes after the last response: the write side is shut and input is
 * read and dropped for a moment, so that a client still sending (say, the
 * body of a request answered 413) reads our answer instead of a reset. */
static void linger_close(struct ig_http_conn *c)
{
	c->state = ST_CLOSING;
	if (c->lingering)
		return;
	if (c->tls && tls_close_notify(c) == IG_AGAIN)
		return;
	c->lingering = true;
	shutdown(c->io.fd, SHUT_WR);
	ig_buf_free(&c->in);
	arm_timer(c, TM_LINGER, LINGER_MS);
	update_events(c);
}

/* Waits for the next request on a kept-alive connection. */
static void start_next(struct ig_http_conn *c)
{
	if (c->srv->draining || c->peer_done) {
		/* A drain closes busy connections after their response. */
		linger_close(c);
		return;
	}
	c->state = ST_HEAD;
	c->scanned = 0;
	c->streaming = false;
	c->resp_started = false;
	c->want_writable = false;
	if (c->in.len) {
		arm_timer(c, TM_HEAD, c->srv->cfg.header_timeout_ms);
		update_events(c);
		process_input(c);
		return;
	}
	/* Idle: no buffers held. */
	ig_buf_free(&c->in);
	ig_buf_free(&c->out);
	c->out_off = 0;
	arm_timer(c, TM_IDLE, c->srv->cfg.keepalive_timeout_ms);
	update_events(c);
}

static void on_after_response(struct ig_loop *loop, struct ig_task *t)
{
	struct ig_http_conn *c = t->data;
	free_exchange(c);
	if (!c->keep_alive || c->srv->draining) {
		c->state = ST_CLOSING;
		if (!out_pending(c))
			linger_close(c);
		else
			update_events(c);
		return;
	}
	if (out_pending(c)) {
		c->state = ST_FLUSH;
		update_events(c);
		return;
	}
	start_next(c);
}

/* The response is complete in the output (or sent): the exchange ends
 * for the handler now and for the server when the loop regains control. */
static void end_exchange(struct ig_http_conn *c)
{
	ig_task_cancel(c->srv->loop, &c->flush_task);
	ig_task_cancel(c->srv->loop, &c->tunnel_task);
	if (c->in_handler) {
		c->in_handler = false;
		c->srv->busy--;
	}
	if (c->ex) {
		c->ex->on_abort = NULL;
		c->ex->on_writable = NULL;
		c->ex->on_body = NULL;
		/* The rest of a streamed body is still on its way: where the next
		 * request would start is not known. */
		if (c->streaming && !c->ex->body_done)
			c->keep_alive = false;
	}
	if (c->broken)
		return; /* the queued task frees it */
	c->state = ST_DONE;
	if (flush_out(c) < 0) {
		mark_broken(c);
		return;
	}
	update_events(c);
	ig_task_queue(c->srv->loop, &c->task, on_after_response, c);
}

/* ---- errors answered by the server itself ---- */

static struct ig_http_exchange *new_exchange(struct ig_http_conn *c)
{
	struct ig_http_exchange *ex = ig_arena_calloc(&c->arena, sizeof *ex);
	if (!ex)
		return NULL;
	ex->conn = c;
	ex->arena = &c->arena;
	ex->peer = (struct ig_str){c->peer, strlen(c->peer)};
	c->ex = ex;
	return ex;
}

/* The most a refusal_body hook may write. */
#define REFUSAL_BODY_MAX (64 * 1024)

void ig_srv_refuse(struct ig_http_server *s, struct ig_http_exchange *ex, int status,
		   const char *msg)
{
	if (s->cfg.refusal_body) {
		struct ig_buf b;
		ig_buf_init(&b, REFUSAL_BODY_MAX);
		if (s->cfg.refusal_body(ex, status, msg, &b, s->ctx) == 0) {
			ig_http_respond(ex, status, "application/json", b.ptr, b.len, NULL, 0);
			ig_buf_free(&b);
			return;
		}
		ig_buf_free(&b);
	}
	ig_http_respond_error(ex, status, status >= 500 ? "server_error" : "invalid_request_error",
			      NULL, "%s", msg);
}

/* The server's own answer to a request it refuses. The connection closes
 * after it, since the rest of the input cannot be trusted to be framed.
 * `seen`: a handler had the request and was told (on_abort), so
 * on_refused, which is for requests no handler saw, is not called. */
static void answer_error(struct ig_http_conn *c, int status, const char *msg, bool seen)
{
	if (!c->ex && !new_exchange(c)) {
		conn_free(c);
		return;
	}
	c->state = ST_HANDLING;
	c->in_handler = true;
	c->srv->busy++;
	c->keep_alive = false;
	c->is_head = false;
	arm_timer(c, TM_NONE, 0);
	if (c->srv->cfg.on_refused && !seen) {
		if (c->tls)
			tls_describe(c, c->ex);
		c->srv->cfg.on_refused(c->ex, status, msg, c->srv->ctx);
	}
	ig_srv_refuse(c->srv, c->ex, status, msg);
}

/* Before any handler ran. */
static void server_error(struct ig_http_conn *c, int status, const char *msg)
{
	answer_error(c, status, msg, false);
}

/* ---- reading a request ---- */

static void dispatch(struct ig_http_conn *c)
{
	struct ig_http_server *s = c->srv;
	arm_timer(c, TM_NONE, 0);
	c->state = ST_HANDLING;
	c->in_handler = true;
	s->busy++;
	c->ex->start_ns = ig_now_ns();
	if (c->tls)
		tls_describe(c, c->ex);
	if (!c->in.len)
		ig_buf_free(&c->in); /* generation may take minutes: hold nothing */
	update_events(c);
	s->handler(c->ex, s->ctx);
}

/* Where the head ends in `in`, scanning only bytes not scanned before:
 * the offset after its blank line, or 0 when it has not arrived yet. */
static size_t find_head_end(struct ig_http_conn *c)
{
	const char *p = c->in.ptr;
	size_t len = c->in.len;
	/* A terminator may straddle the previous scan's end: step back 3. */
	size_t i = c->scanned > 3 ? c->scanned - 3 : 0;
	while (i < len) {
		const char *nl = memchr(p + i, '\n', len - i);
		if (!nl)
			break;
		size_t k = (size_t)(nl - p) + 1;
		if (k < len && p[k] == '\n')
			return k + 1;
		if (k + 1 < len && p[k] == '\r' && p[k + 1] == '\n')
			return k + 2;
		if (k >= len || (k + 1 >= len && p[k] == '\r')) {
			i = (size_t)(nl - p);
			c->scanned = i;
			return 0;
		}
		i = k;
	}
	c->scanned = len;
	return 0;
}

/* The parsed head is copied once into the exchange's arena, its slices
 * moved along with it. A NUL follows the copy so that C string functions
 * (regexec on header values, in route matching) stop at its end. */
static int keep_head(struct ig_http_conn *c, struct ig_http_request *req,
		     struct ig_http_header *hdrs, size_t n)
{
	struct ig_http_exchange *ex = new_exchange(c);
	if (!ex)
		return -1;
	char *copy = ig_arena_alloc(&c->arena, n + 1);
	struct ig_http_header *h =
	    ig_arena_alloc(&c->arena, (req->num_headers ? req->num_headers : 1) * sizeof *h);
	if (!copy || !h)
		return -1;
	memcpy(copy, c->in.ptr, n);
	copy[n] = '\0';
	const char *base = c->in.ptr;
#define MOVE(s) ((s).ptr = (s).ptr ? copy + ((s).ptr - base) : NULL)
	ex->req = *req;
	MOVE(ex->req.method);
	MOVE(ex->req.target);
	MOVE(ex->req.path);
	MOVE(ex->req.query);
	for (size_t i = 0; i < req->num_headers; i++) {
		h[i] = hdrs[i];
		MOVE(h[i].name);
		MOVE(h[i].value);
	}
#undef MOVE
	ex->req.headers = h;
	return 0;
}

/* A byte of an authority (RFC 3986: unreserved, sub-delims, pct-encoded,
 * ':' and the brackets of an IP literal). */
static bool authority_byte(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("-._~%!$&'()*+,;=:[]", c);
}

bool ig_srv_authority_ok(struct ig_str v)
{
	for (size_t i = 0; i < v.len; i++)
		if (!authority_byte((unsigned char)v.ptr[i]))
			return false;
	return true;
}

int ig_srv_normalize_path(struct ig_arena *a, struct ig_http_request *r)
{
	if (!r->path.len || r->path.ptr[0] != '/' || !ig_http_path_needs_normalizing(r->path))
		return 0;
	size_t rest = r->target.len - r->path.len; /* "?query", or nothing */
	char *t = ig_arena_alloc(a, r->path.len + rest + 1);
	if (!t)
		return -1;
	ssize_t len = ig_http_path_normalize(r->path, t);
	if (len < 0)
		return -2;
	size_t n = (size_t)len;
	memcpy(t + n, r->path.ptr + r->path.len, rest);
	t[n + rest] = '\0';
	r->target = (struct ig_str){t, n + rest};
	r->path = (struct ig_str){t, n};
	r->query = rest ? (struct ig_str){t + n + 1, rest - 1} : (struct ig_str){t + n, 0};
	return 0;
}

/* ig_srv_normalize_path's result as a 400's reason, NULL when fine. */
static const char *path_fault(int rc)
{
	return rc == -2 ? "invalid path (an escaped NUL)" : rc < 0 ? "out of memory" : NULL;
}

/* RFC 9112 §3.2: the request target is origin-form ("/path?query") or,
 * as proxies are sent, absolute-form ("http://authority/path"), which is
 * brought to origin-form here with the authority as the Host (it
 * overrides any Host line); "*" is OPTIONS's alone. An HTTP/1.1 request
 * needs exactly one Host (nginx and Envoy answer 400 too). A fragment is
 * the client's own (RFC 9110 §7.1: never sent): one in the target is a
 * 400, as Envoy answers, rather than something to pass on. NULL when
 * fine, else the reason for a 400. */
static const char *normalize_target(struct ig_http_conn *c, struct ig_http_request *r)
{
	struct ig_str t = r->target;
	size_t hosts = 0, at = 0;
	if (memchr(t.ptr, '#', t.len))
		return "the request target carries a fragment";
	for (size_t i = 0; i < r->num_headers; i++)
		if (ig_str_ieq_cstr(r->headers[i].name, "host"))
			hosts++, at = i;
	if (hosts > 1)
		return "more than one Host header";
	/* RFC 9112 §3.2: a Host field value that is not an authority (a
	 * reg-name or IP literal, and a port) is a 400, as nginx answers. */
	if (hosts && !ig_srv_authority_ok(r->headers[at].value))
		return "invalid Host header";
	bool origin = t.len && t.ptr[0] == '/', star = t.len == 1 && t.ptr[0] == '*';
	if ((origin || star) && hosts == 0 && r->minor_version >= 1)
		return "HTTP/1.1 request without a Host header";
	if (origin)
		return path_fault(ig_srv_normalize_path(&c->arena, r));
	if (star)
		return ig_str_eq_cstr(r->method, "OPTIONS") ? NULL
							    : "\"*\" is a target for OPTIONS only";
	size_t scheme = t.len > 7 && ig_str_ieq_cstr((struct ig_str){t.ptr, 7}, "http://")    ? 7
			: t.len > 8 && ig_str_ieq_cstr((struct ig_str){t.ptr, 8}, "https://") ? 8
											      : 0;
	if (!scheme)
		return "the request target is neither a path nor an absolute http URI";
	/* Envoy refuses https in the target of a request that came in clear
	 * (the one scheme check it makes over HTTP/1.1): passed on, it would
	 * tell the backend the request was encrypted when it was not. */
	if (scheme == 8 && !c->tls)
		return "an https request target over a connection without TLS";
	struct ig_str auth = {t.ptr + scheme, 0};
	while (scheme + auth.len < t.len && !strchr("/?#", auth.ptr[auth.len]))
		auth.len++;
	if (auth.len == 0 || memchr(auth.ptr, '@', auth.len))
		return "the absolute URI names no host (or carries userinfo)";
	struct ig_str rest = {auth.ptr + auth.len, t.len - scheme - auth.len};
	if (rest.len == 0 || rest.ptr[0] != '/') { /* "http://h" or "http://h?q" */
		char *p = ig_arena_alloc(&c->arena, rest.len + 2);
		if (!p)
			return "out of memory";
		p[0] = '/';
		memcpy(p + 1, rest.ptr, rest.len);
		p[rest.len + 1] = '\0';
		rest = (struct ig_str){p, rest.len + 1};
	}
	r->target = rest;
	const char *q = memchr(rest.ptr, '?', rest.len);
	r->path = (struct ig_str){rest.ptr, q ? (size_t)(q - rest.ptr) : rest.len};
	r->query = q ? (struct ig_str){q + 1, rest.len - r->path.len - 1}
		     : (struct ig_str){rest.ptr + rest.len, 0};
	const char *bad = path_fault(ig_srv_normalize_path(&c->arena, r));
	if (bad)
		return bad;
	if (hosts) {
		r->headers[at].value = auth;
		return NULL;
	}
	struct ig_http_header *h = ig_arena_alloc(&c->arena, (r->num_headers + 1) * sizeof *h);
	if (!h)
		return "out of memory";
	memcpy(h, r->headers, r->num_headers * sizeof *h);
	h[r->num_headers++] = (struct ig_http_header){IG_STR("Host"), auth};
	r->headers = h;
	return NULL;
}

/* The head in `in` is over the limit: 414 when its request line alone is
 * (RFC 9112 §3: a target longer than the server will parse), else 431
 * for the fields. */
static void head_too_large(struct ig_http_conn *c)
{
	size_t max = c->srv->cfg.max_header_bytes;
	if (!memchr(c->in.ptr, '\n', c->in.len < max ? c->in.len : max))
		server_error(c, 414, "request target too long");
	else
		server_error(c, 431, "request header fields too large");
}

/* A complete head is at the start of `in` (n bytes): parse it, set up the
 * body. Returns 1 to dispatch, 2 when a body follows, 0 when the head was
 * not complete after all, -1 when answered with an error. */
static int take_head(struct ig_http_conn *c, size_t n)
{
	struct ig_http_server_config *cfg = &c->srv->cfg;
	size_t maxh = cfg->max_headers < HEADERS_CAP ? cfg->max_headers : HEADERS_CAP;
	struct ig_http_header hdrs[maxh];
	struct ig_http_request req;
	int rc = ig_http_parse_request(c->in.ptr, n, &req, hdrs, maxh);
	if (rc == IG_HTTP_INCOMPLETE)
		return 0; /* blank lines before a request line */
	if (rc == IG_HTTP_TOO_MANY_HEADERS) {
		server_error(c, 431, "request header fields too large");
		return -1;
	}
	if (rc > 0 && (size_t)rc > cfg->max_header_bytes) {
		head_too_large(c);
		return -1;
	}
	if (rc == IG_HTTP_BAD_VERSION) {
		server_error(c, 505, "HTTP version not supported");
		return -1;
	}
	if (rc < 0) {
		server_error(c, 400, "malformed HTTP request");
		return -1;
	}
	c->h1 = true;
	if (keep_head(c, &req, hdrs, (size_t)rc) < 0) {
		server_error(c, 500, "out of memory");
		return -1;
	}
	ig_buf_consume(&c->in, (size_t)rc);
	c->scanned = 0;
	struct ig_http_exchange *ex = c->ex;
	const char *bad = normalize_target(c, &ex->req);
	if (bad) {
		server_error(c, 400, bad);
		return -1;
	}
	rc = ig_http_request_framing(&ex->req, &c->framing);
	if (rc == IG_HTTP_NOT_IMPLEMENTED) {
		server_error(c, 501, "unsupported transfer coding (only chunked is)");
		return -1;
	}
	if (rc < 0) {
		server_error(c, 400,
			     "invalid message framing (Content-Length / Transfer-Encoding)");
		return -1;
	}
	c->keep_alive = c->framing.keep_alive;
	c->is_head = ig_str_eq_cstr(ex->req.method, "HEAD");
	bool has_body = c->framing.kind == IG_BODY_CHUNKED ||
			(c->framing.kind == IG_BODY_LENGTH && c->framing.length > 0);
	ex->body_length = c->framing.kind == IG_BODY_LENGTH ? (int64_t)c->framing.length
			  : c->framing.kind == IG_BODY_NONE ? 0
							    : -1;
	c->streaming = has_body && cfg->stream_body && cfg->stream_body(ex, c->srv->ctx);
	/* A streamed body waits in ex->body up to the window, plus what one
	 * read brings. */
	ig_buf_init(&ex->body, c->streaming ? STREAM_WINDOW + READ_CHUNK : cfg->max_body_bytes);
	if (!c->streaming && c->framing.kind == IG_BODY_LENGTH &&
	    c->framing.length > cfg->max_body_bytes) {
		server_error(c, 413, "request body too large");
		return -1;
	}
	/* A known length is allocated once, not grown by doubling (up to 8 MiB:
	 * a client that announces more must send it before we hold more). */
	if (!c->streaming && c->framing.kind == IG_BODY_LENGTH &&
	    ig_buf_reserve(&ex->body,
			   c->framing.length < (8u << 20) ? c->framing.length : (8u << 20)) < 0) {
		server_error(c, 500, "out of memory for the request body");
		return -1;
	}
	memset(&c->chunked, 0, sizeof c->chunked);
	/* Trailers count against the head's limits (as Envoy and llhttp
	 * count them). */
	c->chunked.max_trailer_bytes = cfg->max_header_bytes;
	c->chunked.max_trailer_lines = cfg->max_headers;
	c->body_left = c->framing.kind == IG_BODY_LENGTH ? c->framing.length : 0;
	if (!has_body)
		return 1;
	if (c->framing.expect_continue && !c->in.len) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (ig_buf_append(&c->out, cont, sizeof cont - 1) < 0 || flush_out(c) < 0) {
			conn_free(c);
			return -1;
		}
	}
	if (c->streaming) {
		ex->body_streaming = true;
		return 3;
	}
	c->state = ST_BODY;
	arm_timer(c, TM_BODY, cfg->body_timeout_ms);
	return 2;
}

/* A streamed chunked body turned out malformed (or its trailers over the
 * limits). Before any response began, the client is answered as a body
 * read whole is (400, 431) and the connection closes: the handler lets
 * go of the request first, through on_abort with the status and reason
 * in the exchange so that it can say what the client got, and with it of
 * its upstream request, which went out with part of a body that cannot
 * be finished. Once a response began, closing is all that is left. */
static void refuse_streamed_body(struct ig_http_conn *c, int status, const char *msg)
{
	struct ig_http_exchange *ex = c->ex;
	if (c->resp_started) {
		ig_info("client %s: %s: closing", c->peer, msg);
		mark_broken(c);
		return;
	}
	ig_info("client %s: %s: answering %d", c->peer, msg, status);
	void (*abort_cb)(struct ig_http_exchange *) = ex->on_abort;
	ex->on_abort = NULL;
	ex->on_body = NULL;
	ex->on_writable = NULL;
	ex->refused_status = status;
	ex->refused_reason = msg;
	c->in_handler = false;
	c->srv->busy--;
	if (abort_cb)
		abort_cb(ex);
	answer_error(c, status, msg, true);
}

/* Moves what the input holds of a streamed body into ex->body (decoded)
 * and tells the handler. The rest of the input, past the body's end, is
 * the next request's. A chunked body that turns out malformed is refused
 * (refuse_streamed_body). */
static void stream_input(struct ig_http_conn *c, size_t direct)
{
	struct ig_http_exchange *ex = c->ex;
	if (c->state != ST_HANDLING || !c->streaming || !c->in_handler || c->broken ||
	    ex->body_done)
		return;
	bool more = direct > 0;
	int bad = 0;
	if (c->framing.kind == IG_BODY_LENGTH) {
		c->body_left -= direct;
		size_t take = c->in.len < c->body_left ? c->in.len : (size_t)c->body_left;
		if (take) {
			bad = ig_buf_append(&ex->body, c->in.ptr, take);
			ig_buf_consume(&c->in, take);
			c->body_left -= take;
			more = true;
		}
		ex->body_done = c->body_left == 0;
	} else if (c->in.len) {
		size_t len = c->in.len;
		ssize_t rest = ig_chunked_decode(&c->chunked, c->in.ptr, &len);
		if (rest == IG_HTTP_INVALID) {
			refuse_streamed_body(c, 400, "malformed chunked request body");
			return;
		}
		if (rest == IG_HTTP_TOO_MANY_HEADERS) {
			refuse_streamed_body(c, 431, "request trailer fields too large");
			return;
		}
		bad = ig_buf_append(&ex->body, c->in.ptr, len);
		more = len > 0;
		if (rest == IG_HTTP_INCOMPLETE) {
			c->in.len = 0;
		} else {
			memmove(c->in.ptr, c->in.ptr + len, (size_t)rest);
			c->in.len = (size_t)rest;
			ex->body_done = true;
		}
	}
	if (bad < 0) {
		mark_broken(c);
		return;
	}
	if ((more || ex->body_done) && ex->on_body)
		ex->on_body(ex);
	if (!c->broken)
		update_events(c);
}

/* Part of a body has arrived and more is to come: the configured hook
 * may look at it meanwhile. */
static void body_progress(struct ig_http_conn *c)
{
	if (c->srv->cfg.body_progress && c->ex->body.len)
		c->srv->cfg.body_progress(c->ex, c->srv->ctx);
}

/* Moves body bytes from the input into the exchange. Returns 1 when the
 * body is complete, 0 when more is needed, -1 on error (answered). */
static int read_body(struct ig_http_conn *c)
{
	struct ig_buf *body = &c->ex->body;
	if (c->framing.kind == IG_BODY_LENGTH) {
		size_t take = c->in.len < c->body_left ? c->in.len : (size_t)c->body_left;
		if (ig_buf_append(body, c->in.ptr, take) < 0) {
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
	if (rest == IG_HTTP_TOO_MANY_HEADERS) {
		server_error(c, 431, "request trailer fields too large");
		return -1;
	}
	if (ig_buf_append(body, c->in.ptr, len) < 0) {
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

/* Whether the request line's first bytes already cannot start a request:
 * its method must be a token (RFC 9110 §9.1) followed by a space. Binary
 * sent to a plain listener (a TLS ClientHello, say) is so answered 400 at
 * its first bytes, as nginx does, not after the header timeout. */
static bool method_cannot_be(const struct ig_buf *in)
{
	/* Methods are short: a long token is left to the whole head's check,
	 * so that a request line sent a byte at a time costs no more than
	 * this bound per read. */
	size_t n = in->len < 64 ? in->len : 64;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in->ptr[i];
		if (ch == ' ')
			return i == 0;
		if (!ig_http_is_tchar(ch))
			return true;
	}
	return false;
}

/* Takes what the input holds: the head once it is complete, then body
 * bytes, then hands the request over. */
static void process_input(struct ig_http_conn *c)
{
	if (c->state == ST_HEAD) {
		/* Empty lines before a request line are ignored (RFC 9112 §2.2):
		 * some clients send a CRLF after a POST body. */
		size_t blank = 0;
		while (blank < c->in.len && (c->in.ptr[blank] == '\r' || c->in.ptr[blank] == '\n'))
			blank++;
		if (blank) {
			ig_buf_consume(&c->in, blank);
			c->scanned = 0;
		}
		if (!c->in.len)
			return;
		/* HTTP/2 with prior knowledge opens a connection with its
		 * preface (not a connection that carried HTTP/1.1 before). */
		if (c->srv->cfg.http2 && !c->h1 && c->in.ptr[0] == 'P') {
			size_t k = c->in.len < IG_H2_PREFACE_LEN ? c->in.len : IG_H2_PREFACE_LEN;
			if (memcmp(c->in.ptr, IG_H2_PREFACE, k) == 0) {
				if (k == IG_H2_PREFACE_LEN)
					ig_h2_start(c);
				return; /* or the rest of the preface is on its way */
			}
		}
		if (c->tkind != TM_HEAD)
			arm_timer(c, TM_HEAD, c->srv->cfg.header_timeout_ms);
		size_t n;
		int rc = 0;
		while (rc == 0) {
			n = find_head_end(c);
			if (!n) {
				if (method_cannot_be(&c->in))
					server_error(c, 400, "malformed HTTP request");
				else if (c->in.len > c->srv->cfg.max_header_bytes)
					head_too_large(c);
				return;
			}
			rc = take_head(c, n);
			if (rc == 0) {
				/* Only blank lines so far: drop them, look further. */
				ig_buf_consume(&c->in, n);
				c->scanned = 0;
				if (!c->in.len)
					return;
			}
		}
		if (rc < 0)
			return;
		if (rc == 1) {
			dispatch(c);
			return;
		}
		if (rc == 3) {
			dispatch(c);
			stream_input(c, 0); /* body bytes that came with the head */
			return;
		}
	}
	if (c->state == ST_BODY) {
		int rc = read_body(c);
		if (rc == 1) {
			dispatch(c);
		} else if (rc == 0) {
			arm_timer(c, TM_BODY, c->srv->cfg.body_timeout_ms);
			body_progress(c);
		}
	}
}

/* recv() into buf[len..len+room); the room is reserved first. Returns the
 * bytes read, 0 at EOF, -1 on error, -2 when nothing is there, -3 when
 * the buffer cannot grow. */
static ssize_t recv_into(struct ig_http_conn *c, struct ig_buf *b, size_t room)
{
	if (ig_buf_reserve(b, room) < 0)
		return -3;
	if (c->tls)
		return tls_recv(c, b, room);
	for (;;) {
		ssize_t n = recv(c->io.fd, b->ptr + b->len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -2;
		if (n > 0)
			b->len += (size_t)n;
		return n;
	}
}

/* Hands what the client sent to the tunnel's handler, which takes it all
 * (its callback may end or abort the exchange). `drained`: the socket had
 * no more, so the tunnel may now stay silent for long and holds no input
 * buffer; while bytes keep coming the buffer is kept for the next read. */
static void tunnel_deliver(struct ig_http_conn *c, bool drained)
{
	if (c->state != ST_TUNNEL || c->broken || c->tunnel_paused || !c->in.len)
		return;
	size_t len = c->in.len;
	c->in.len = 0; /* the bytes stay where they are during the call */
	int rc = c->tunnel_data(c->ex, c->in.ptr, len);
	if (c->broken || c->state != ST_TUNNEL)
		return;
	if (rc == 1)
		c->tunnel_paused = true;
	if (drained || rc == 1)
		ig_buf_free(&c->in);
	update_events(c);
}

static void on_tunnel_task(struct ig_loop *loop, struct ig_task *t)
{
	tunnel_deliver(t->data, true);
}

static void conn_read(struct ig_http_conn *c)
{
	size_t room;
	struct ig_buf *into = &c->in;
	bool direct = false; /* reading a sized body straight into the exchange */
	switch (c->state) {
	case ST_HEAD: {
		/* Never hold more than one head's worth while looking for it. */
		size_t lim = c->srv->cfg.max_header_bytes + 1;
		room = c->in.len < lim ? lim - c->in.len : 0;
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		if (room == 0) {
			process_input(c);
			return;
		}
		break;
	}
	case ST_BODY:
		room = READ_CHUNK;
		/* A sized body goes straight into the exchange, no copy. */
		if (c->framing.kind == IG_BODY_LENGTH && !c->in.len) {
			direct = true;
			into = &c->ex->body;
			room = c->body_left < (1u << 20) ? (size_t)c->body_left : (1u << 20);
		}
		break;
	case ST_TUNNEL:
	case ST_H2:
		room = READ_CHUNK;
		break;
	default:
		if (c->state == ST_HANDLING && c->streaming && !c->ex->body_done) {
			room = c->ex->body.len < STREAM_WINDOW ? READ_CHUNK : 0;
			/* A sized body goes straight into the exchange, no copy. */
			if (c->framing.kind == IG_BODY_LENGTH && !c->in.len) {
				direct = true;
				into = &c->ex->body;
				if (room > c->body_left)
					room = (size_t)c->body_left;
			}
			if (room == 0) {
				update_events(c);
				return;
			}
			break;
		}
		room = c->in.len < PIPELINE_MAX ? PIPELINE_MAX - c->in.len : 0;
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		if (room == 0) {
			update_events(c);
			return;
		}
		break;
	}
	ssize_t n = recv_into(c, into, room);
	if (n == -2)
		return;
	if (n == -3 && (c->state == ST_HEAD || c->state == ST_BODY)) {
		server_error(c, c->state == ST_BODY ? 413 : 500,
			     c->state == ST_BODY ? "request body too large" : "out of memory");
		return;
	}
	if (n == 0 && (c->state == ST_DONE || c->state == ST_FLUSH)) {
		/* The client half-closed after its request: its response is
		 * complete and still going out; send it, then close. */
		c->peer_done = true;
		c->keep_alive = false;
		update_events(c);
		return;
	}
	if (n <= 0) {
		/* Peer closed or failed. A response still being written for it
		 * has no reader: drop everything. */
		conn_free(c);
		return;
	}
	if (c->state == ST_HANDLING && c->streaming && !c->ex->body_done) {
		stream_input(c, direct ? (size_t)n : 0);
		return;
	}
	if (direct) {
		c->body_left -= (uint64_t)n;
		if (c->body_left == 0) {
			dispatch(c);
		} else {
			arm_timer(c, TM_BODY, c->srv->cfg.body_timeout_ms);
			body_progress(c);
		}
		return;
	}
	if (c->state == ST_HEAD || c->state == ST_BODY)
		process_input(c);
	else if (c->state == ST_H2)
		ig_h2_input(c);
	else if (c->state == ST_TUNNEL)
		tunnel_deliver(c, (size_t)n < room);
	else
		update_events(c);
}

static void on_writable(struct ig_http_conn *c)
{
	if (flush_out(c) < 0) {
		conn_free(c);
		return;
	}
	if (out_pending(c)) {
		update_events(c);
		return;
	}
	switch (c->state) {
	case ST_CLOSING:
		linger_close(c);
		return;
	case ST_FLUSH:
		start_next(c);
		return;
	default:
		break;
	}
	update_events(c);
	if (c->want_writable && c->in_handler) {
		c->want_writable = false;
		if (c->ex->on_writable)
			c->ex->on_writable(c->ex);
	}
}

static void conn_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_http_conn *c = io->data;
	if (c->broken)
		return;
	if (events & IG_EV_ERROR) {
		/* Reset, or shut both ways: nothing can reach the client any more
		 * (epoll reports this even when we asked for no events, so it must
		 * not wait for a read that may never be tried). */
		conn_free(c);
		return;
	}
	if (c->tls && !(events = tls_io(c, events)))
		return;
	if ((events & IG_EV_WRITE) && c->state == ST_H2) {
		if (flush_out(c) < 0) {
			conn_free(c);
			return;
		}
		if (ig_h2_writable(c) < 0)
			return;
		events &= ~(unsigned)IG_EV_WRITE;
	}
	if (events & IG_EV_WRITE) {
		/* Below half the high-water mark the handler may produce again. */
		bool was_full = c->want_writable;
		if (flush_out(c) < 0) {
			conn_free(c);
			return;
		}
		if (!out_pending(c) ||
		    (was_full && out_pending(c) <= c->srv->cfg.write_high_water / 2)) {
			on_writable(c);
			return;
		}
		update_events(c);
	}
	if (events & IG_EV_READ) {
		if (c->state == ST_CLOSING) {
			/* Discard input while a final response drains (after
			 * close_notify, TLS records are dropped undecrypted). */
			if (c->tls && !c->lingering)
				return;
			char sink[4096];
			ssize_t n = recv(c->io.fd, sink, sizeof sink, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				conn_free(c);
			return;
		}
		conn_read(c);
	}
}

static void on_timer(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_http_conn *c = t->data;
	enum timer_kind kind = c->tkind;
	c->tkind = TM_NONE;
	if (c->state == ST_H2 && kind != TM_SEND) {
		ig_h2_timer(c, kind);
		return;
	}
	switch (kind) {
	case TM_SEND: {
		/* The deadline moves with every byte the client takes. */
		uint64_t limit = c->srv->cfg.send_timeout_ms * 1000000u;
		uint64_t now = ig_now_ns();
		if (now - c->last_send_ns < limit) {
			c->tkind = TM_SEND;
			ig_timer_start_ns(loop, t, limit - (now - c->last_send_ns), on_timer, c);
			return;
		}
		ig_info("client %s: took no response bytes for %llu ms: closing", c->peer,
			(unsigned long long)c->srv->cfg.send_timeout_ms);
		conn_free(c);
		return;
	}
	case TM_HEAD:
		if (c->state == ST_HEAD && c->in.len) {
			server_error(c, 408, "request timed out");
			return;
		}
		conn_free(c);
		return;
	case TM_BODY:
		if (c->state == ST_BODY) {
			server_error(c, 408, "request timed out");
			return;
		}
		conn_free(c);
		return;
	case TM_IDLE:
	case TM_LINGER:
		conn_free(c);
		return;
	case TM_NONE:
		return;
	}
}

/* ---- TLS ----
 *
 * A TLS connection runs the same state machine with three differences:
 * it starts in ST_HANDSHAKE, its bytes go through SSL_read/SSL_write, and
 * each direction may wait on the other's readiness. None of this code runs
 * for a plain connection. */

struct tls_conn_alloc {
	struct ig_http_conn c;
	struct conn_tls tls;
};

/* As if the socket were readable (conn_on_io, so that conn_read keeps
 * one caller and stays inlined in the plain path). */
static void on_tls_read_task(struct ig_loop *loop, struct ig_task *task)
{
	struct ig_http_conn *c = task->data;
	if (!c->broken && c->state != ST_CLOSING && read_wanted(c))
		conn_on_io(loop, &c->io, IG_EV_READ);
}

/* Bytes inside OpenSSL are not announced by a level-triggered epoll: when
 * the connection reads and OpenSSL holds some, a task reads on. */
static void tls_read_on(struct ig_http_conn *c)
{
	struct conn_tls *t = c->tls;
	if (c->state != ST_CLOSING && !t->read_wants_write && read_wanted(c) &&
	    ig_tls_pending(t->t))
		ig_task_queue(c->srv->loop, &t->read_task, on_tls_read_task, c);
}

/* The events to wait for, given those of the plain-text connection: a
 * read blocked on a write waits for the socket to be writable, a write
 * blocked on a read for it to be readable (and not for their own
 * direction, which would spin). */
static void tls_update_events(struct ig_http_conn *c, unsigned ev)
{
	struct conn_tls *t = c->tls;
	unsigned want = t->notify_wait ? IG_EV_WRITE : 0;
	if (c->state == ST_HANDSHAKE)
		want = t->hs_events;
	if (ev & IG_EV_READ)
		want |= t->read_wants_write ? IG_EV_WRITE : IG_EV_READ;
	if (ev & IG_EV_WRITE)
		want |= t->write_wants_read ? IG_EV_READ : IG_EV_WRITE;
	tls_read_on(c);
	ig_io_set(c->srv->loop, &c->io, want);
}

/* What the exchange tells the handler about the connection. */
static void tls_describe(struct ig_http_conn *c, struct ig_http_exchange *ex)
{
	const char *sni = ig_tls_conn_sni(c->tls->t);
	ex->tls = true;
	if (sni)
		ex->sni = (struct ig_str){sni, strlen(sni)};
	const char *cert = ig_tls_conn_client_cert(c->tls->t);
	if (cert)
		ex->client_cert = (struct ig_str){cert, strlen(cert)};
}

static void tls_free(struct ig_http_conn *c)
{
	struct conn_tls *t = c->tls;
	ig_task_cancel(c->srv->loop, &t->read_task);
	if (t->t) {
		/* close_notify on every close after a handshake, as far as the
		 * socket takes it; a failed connection sends nothing. */
		ig_tls_shutdown(t->t);
		ig_tls_conn_free(t->t);
		t->t = NULL;
	}
}

/* A failed handshake (OpenSSL has sent its alert). The connection goes on
 * in clear text only to close cleanly: a client that spoke plain HTTP gets
 * a 400 it can read, any other the lingering close, so that the bytes it
 * sent and we did not read do not turn our FIN into a reset. */
static void tls_fail(struct ig_http_conn *c, bool plain_http)
{
	ig_debug("client %s: TLS handshake failed: %s", c->peer, ig_tls_conn_error(c->tls->t));
	tls_free(c);
	c->tls = NULL;
	c->state = ST_HEAD;
	if (plain_http)
		server_error(c, 400, "plain HTTP request sent to a TLS port");
	else
		linger_close(c);
}

static void tls_handshake(struct ig_http_conn *c)
{
	struct conn_tls *t = c->tls;
	int rc = ig_tls_handshake(t->t);
	if (rc == IG_TLS_WANT_READ || rc == IG_TLS_WANT_WRITE) {
		t->hs_events = rc == IG_TLS_WANT_READ ? IG_EV_READ : IG_EV_WRITE;
		update_events(c);
		return;
	}
	if (rc != IG_OK) {
		tls_fail(c, rc == IG_TLS_PLAIN_HTTP);
		return;
	}
	/* The header timer started at accept goes on. The request may have
	 * come with the client's last handshake flight: update_events reads
	 * it from OpenSSL. */
	c->state = ST_HEAD;
	if (c->srv->cfg.http2 && strcmp(ig_tls_conn_alpn(t->t), "h2") == 0) {
		ig_h2_start(c);
		return;
	}
	update_events(c);
}

/* An event for a TLS connection: the handshake takes them all; after it,
 * readiness a direction waited for on the other's behalf is handed to it.
 * Returns the events left for the plain-text code (0: none). */
static unsigned tls_io(struct ig_http_conn *c, unsigned events)
{
	struct conn_tls *t = c->tls;
	if (c->state == ST_HANDSHAKE) {
		tls_handshake(c);
		return 0;
	}
	if (t->read_wants_write && (events & IG_EV_WRITE)) {
		t->read_wants_write = false;
		ig_task_queue(c->srv->loop, &t->read_task, on_tls_read_task, c);
	}
	if (t->write_wants_read && (events & IG_EV_READ)) {
		t->write_wants_read = false;
		events |= IG_EV_WRITE;
	}
	return events;
}

static ssize_t tls_recv(struct ig_http_conn *c, struct ig_buf *b, size_t room)
{
	struct conn_tls *t = c->tls;
	ssize_t n = ig_tls_read(t->t, b->ptr + b->len, room);
	if (n > 0) {
		b->len += (size_t)n;
		tls_read_on(c);
		return n;
	}
	if (n == 0)
		return 0;
	if (n == IG_TLS_WANT_READ)
		return -2;
	if (n == IG_TLS_WANT_WRITE) {
		t->read_wants_write = true;
		update_events(c);
		return -2;
	}
	ig_debug("client %s: TLS read: %s", c->peer, ig_tls_conn_error(t->t));
	return -1;
}

/* The spans join the output buffer, which SSL_write takes a record at a
 * time (one send each). After IG_TLS_WANT_* the bytes stay where they
 * are, so the next call offers OpenSSL the same bytes again, as it
 * requires (from wherever the buffer has moved). */
static int tls_send_out(struct ig_http_conn *c, const struct iovec *extra, int nextra)
{
	struct conn_tls *t = c->tls;
	for (int i = 0; i < nextra; i++)
		if (extra[i].iov_len &&
		    ig_buf_append(&c->out, extra[i].iov_base, extra[i].iov_len) < 0)
			return -1;
	size_t sent = 0;
	while (out_pending(c)) {
		ssize_t w = ig_tls_write(t->t, c->out.ptr + c->out_off, out_pending(c));
		if (w > 0) {
			c->out_off += (size_t)w;
			sent += (size_t)w;
			continue;
		}
		if (w == IG_TLS_WANT_READ)
			t->write_wants_read = true;
		else if (w != IG_TLS_WANT_WRITE) {
			ig_debug("client %s: TLS write: %s", c->peer, ig_tls_conn_error(t->t));
			return -1;
		}
		break;
	}
	if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
		ig_buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	after_send(c, sent > 0);
	return 0;
}

/* close_notify goes out before the FIN. When the socket has no room for
 * it, the close waits for writability (on_writable comes back to
 * linger_close) under the linger timer. Returns IG_AGAIN while it waits. */
static int tls_close_notify(struct ig_http_conn *c)
{
	struct conn_tls *t = c->tls;
	if (ig_tls_shutdown(t->t) != IG_TLS_WANT_WRITE) {
		t->notify_wait = false;
		return IG_OK;
	}
	if (!t->notify_wait) {
		t->notify_wait = true;
		arm_timer(c, TM_LINGER, LINGER_MS);
	}
	update_events(c);
	return IG_AGAIN;
}

/* ---- accepting ---- */

/* At most one line per this interval about the limit of connections. */
#define FULL_LOG_INTERVAL_NS 5000000000u

/* With max_conns held, the oldest connection that has no request in hand
 * makes room (nginx's reuse of idle connections when worker_connections
 * run out does the same); with none such, the new one is refused. A
 * client that opens connections and sends nothing thus only ever pushes
 * out its own. Returns whether there is room now. */
static bool make_room(struct ig_http_server *s)
{
	if (!s->cfg.max_conns || s->nconns < s->cfg.max_conns)
		return true;
	struct ig_http_conn *oldest = NULL;
	for (struct ig_http_conn *c = s->conns; c; c = c->next)
		if ((c->state == ST_HEAD || c->state == ST_HANDSHAKE) && !c->in_handler &&
		    !c->broken && !c->lingering)
			oldest = c;
	s->full_count++;
	uint64_t now = ig_now_ns();
	if (!s->full_log_ns || now - s->full_log_ns >= FULL_LOG_INTERVAL_NS) {
		ig_warn("%s: %zu connections, the most it takes: %s (%lu since the last report)",
			s->acceptor.name, s->nconns,
			oldest ? "closing the oldest idle ones" : "refusing new ones",
			s->full_count);
		s->full_log_ns = now;
		s->full_count = 0;
	}
	if (!oldest)
		return false;
	conn_free(oldest);
	return true;
}

/* A connection from the acceptor (event/accept.c, which also pauses on
 * EMFILE): set it up and wait for the head under the header timeout. */
static void on_accept(void *data, int fd, const struct sockaddr_storage *ss)
{
	struct ig_http_server *s = data;
	struct ig_loop *loop = s->loop;
	if (!make_room(s)) {
		close(fd);
		return;
	}
	struct ig_http_conn *c = calloc(1, s->tls ? sizeof(struct tls_conn_alloc) : sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->srv = s;
	if (s->tls)
		c->tls = &((struct tls_conn_alloc *)c)->tls;
	ig_sockaddr_text(ss, c->peer, sizeof c->peer);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (ig_io_start(loop, &c->io, fd, IG_EV_READ, conn_on_io, c) < 0) {
		c->io.fd = fd;
		conn_free(c);
		return;
	}
	c->state = ST_HEAD;
	if (c->tls) {
		/* The header timeout covers the handshake and the head. */
		c->tls->t = ig_tls_conn_new(s->tls, fd);
		if (!c->tls->t) {
			conn_free(c);
			return;
		}
		c->state = ST_HANDSHAKE;
		c->tls->hs_events = IG_EV_READ;
	}
	arm_timer(c, TM_HEAD, s->cfg.header_timeout_ms);
}

struct ig_http_server *ig_http_server_new(struct ig_loop *loop, int listen_fd,
					  const struct ig_http_server_config *cfg,
					  ig_http_handler handler, void *ctx)
{
	return ig_http_server_new_tls(loop, listen_fd, cfg, NULL, handler, ctx);
}

struct ig_http_server *ig_http_server_new_tls(struct ig_loop *loop, int listen_fd,
					      const struct ig_http_server_config *cfg,
					      struct ig_tls_ctx *tls, ig_http_handler handler,
					      void *ctx)
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
	if (s->cfg.send_timeout_ms == 0)
		s->cfg.send_timeout_ms = 60000;
	s->handler = handler;
	s->ctx = ctx;
	if (ig_acceptor_start(&s->acceptor, loop, listen_fd, "http", on_accept, s) < 0) {
		free(s);
		return NULL;
	}
	s->tls = ig_tls_ctx_ref(tls);
	/* A server of HTTP/2 says so in ALPN, preferring it. */
	if (tls && s->cfg.http2)
		ig_tls_ctx_set_alpn(tls, "h2 http/1.1");
	return s;
}

void ig_http_server_going_away(struct ig_http_server *s)
{
	if (s->going_away || s->draining)
		return;
	s->going_away = true;
	for (struct ig_http_conn *c = s->conns; c; c = c->next)
		if (c->state == ST_H2 && !c->broken)
			ig_h2_notice(c);
}

void ig_http_server_drain(struct ig_http_server *s)
{
	if (s->draining)
		return;
	s->draining = true;
	if (s->listen_fd >= 0) {
		ig_acceptor_stop(&s->acceptor);
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	struct ig_http_conn *c = s->conns;
	while (c) {
		struct ig_http_conn *next = c->next;
		/* Idle, or still in a TLS handshake: no request was sent. */
		if (((c->state == ST_HEAD && c->in.len == 0) || c->state == ST_HANDSHAKE) &&
		    !c->broken)
			conn_free(c);
		else if (c->state == ST_H2 && !c->broken)
			ig_h2_drain(c);
		c = next;
	}
}

size_t ig_http_server_busy(const struct ig_http_server *s)
{
	size_t n = 0;
	for (const struct ig_http_conn *c = s->conns; c; c = c->next)
		if (c->state == ST_H2 ? ig_h2_busy(c)
				      : (c->state != ST_HEAD || c->in.len) &&
					    c->state != ST_HANDSHAKE && !c->lingering)
			n++;
	return n;
}

void ig_http_server_memory(const struct ig_http_server *s, size_t *conns, size_t *bytes)
{
	size_t n = 0, b = 0;
	for (const struct ig_http_conn *c = s->conns; c; c = c->next) {
		n++;
		b += sizeof *c + c->in.cap + c->out.cap + c->arena.used;
		if (c->state == ST_H2)
			b += ig_h2_memory(c);
	}
	*conns = n;
	*bytes = b;
}

void ig_http_server_free(struct ig_http_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_free(s->conns);
	if (s->listen_fd >= 0) {
		ig_acceptor_stop(&s->acceptor);
		close(s->listen_fd);
	}
	ig_tls_ctx_unref(s->tls);
	free(s);
}

/* ---- responses ---- */

/* Date (RFC 9110 §6.6.1), first after the status line as nginx writes
 * it, unless the response has one: a pod's stays as it sent it. */
static int append_date(struct ig_buf *o, const struct ig_http_header *hdrs, size_t n,
		       const struct ig_http_exchange *ex)
{
	if (ig_http_has_date(hdrs, n, ex->resp_extra, ex->nresp_extra))
		return 0;
	struct ig_str d = ig_http_date_now();
	int rc = ig_buf_append(o, "Date: ", 6);
	rc |= ig_buf_append_str(o, d);
	rc |= ig_buf_append(o, "\r\n", 2);
	return rc;
}

static char *put(char *w, const void *p, size_t n)
{
	if (n)
		memcpy(w, p, n);
	return w + n;
}

/* A literal's copy has a constant size: the compiler writes it inline. */
#define PUT_LIT(w, lit) (memcpy(w, lit, sizeof(lit) - 1), (w) + sizeof(lit) - 1)

/* The pieces of a response head (append_head), measured first and written
 * into room reserved once: a head of a few headers used to take some
 * twenty appends. */
struct head {
	struct ig_str status, text, date, content_type, content_length, framing;
	const struct ig_http_header *hdrs, *extra;
	size_t n, nextra;
};

static size_t head_size(const struct head *h)
{
	size_t size = sizeof "HTTP/1.1  \r\n" - 1 + h->status.len + h->text.len + h->framing.len +
		      sizeof "\r\n" - 1;
	if (h->date.len)
		size += sizeof "Date: \r\n" - 1 + h->date.len;
	if (h->content_type.ptr)
		size += sizeof "Content-Type: \r\n" - 1 + h->content_type.len;
	for (size_t i = 0; i < h->n + h->nextra; i++) {
		const struct ig_http_header *f = i < h->n ? &h->hdrs[i] : &h->extra[i - h->n];
		size += f->name.len + f->value.len + 4;
	}
	if (h->content_length.len)
		size += sizeof "Content-Length: \r\n" - 1 + h->content_length.len;
	return size;
}

/* "name: value\r\n" (inlined: a literal name's length is a constant). */
static inline char *put_field(char *w, struct ig_str name, struct ig_str value)
{
	w = put(w, name.ptr, name.len);
	w = PUT_LIT(w, ": ");
	w = put(w, value.ptr, value.len);
	return PUT_LIT(w, "\r\n");
}

static char *head_write(char *w, const struct head *h)
{
	w = PUT_LIT(w, "HTTP/1.1 ");
	w = put(w, h->status.ptr, h->status.len);
	*w++ = ' ';
	w = put(w, h->text.ptr, h->text.len);
	w = PUT_LIT(w, "\r\n");
	if (h->date.len)
		w = put_field(w, IG_STR("Date"), h->date);
	if (h->content_type.ptr)
		w = put_field(w, IG_STR("Content-Type"), h->content_type);
	for (size_t i = 0; i < h->n + h->nextra; i++) {
		const struct ig_http_header *f = i < h->n ? &h->hdrs[i] : &h->extra[i - h->n];
		w = put_field(w, f->name, f->value);
	}
	if (h->content_length.len)
		w = put_field(w, IG_STR("Content-Length"), h->content_length);
	w = put(w, h->framing.ptr, h->framing.len);
	return PUT_LIT(w, "\r\n");
}

#undef PUT_LIT

static struct ig_str lit(const char *s)
{
	return (struct ig_str){s, strlen(s)};
}

static int append_head(struct ig_http_conn *c, int status, const char *content_type,
		       const struct ig_http_header *hdrs, size_t n, int64_t content_length)
{
	struct ig_http_exchange *ex = c->ex;
	int minor = ex->req.minor_version;
	bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
	char st[20], cl[20];
	const char *stp = ig_srv_decimal(st, (uint64_t)status);
	struct head h = {.status = {stp, (size_t)(st + sizeof st - stp)},
			 .text = lit(ig_http_status_text(status)),
			 .content_type = content_type ? lit(content_type) : (struct ig_str){0},
			 .hdrs = hdrs,
			 .extra = ex->resp_extra,
			 .n = n,
			 .nextra = ex->nresp_extra};
	/* Date, as append_date writes it. */
	if (!ig_http_has_date(hdrs, n, ex->resp_extra, ex->nresp_extra))
		h.date = ig_http_date_now();
	c->resp_chunked = false;
	c->resp_close_delimited = false;
	if (content_length >= 0) {
		const char *clp =
		    bodyless ? cl + sizeof cl : ig_srv_decimal(cl, (uint64_t)content_length);
		h.content_length = (struct ig_str){clp, (size_t)(cl + sizeof cl - clp)};
	} else if (minor >= 1) {
		h.framing = lit("Transfer-Encoding: chunked\r\n");
		c->resp_chunked = true;
	} else {
		c->resp_close_delimited = true;
		c->keep_alive = false;
	}
	/* A streamed body still coming: the connection ends with this
	 * response (end_exchange). */
	if (c->srv->draining || c->srv->going_away || (c->streaming && !ex->body_done))
		c->keep_alive = false;
	/* Connection follows the framing; HTTP/1.0 has no chunked framing. */
	if (!c->keep_alive)
		h.framing =
		    lit(h.framing.len ? "Transfer-Encoding: chunked\r\nConnection: close\r\n"
				      : "Connection: close\r\n");
	else if (minor == 0)
		h.framing = lit("Connection: keep-alive\r\n");
	c->resp_no_body = c->is_head || bodyless;
	c->resp_started = true;
	if (ig_buf_reserve(&c->out, head_size(&h)) < 0)
		return -1;
	c->out.len = (size_t)(head_write(c->out.ptr + c->out.len, &h) - c->out.ptr);
	return 0;
}

int ig_http_respond(struct ig_http_exchange *ex, int status, const char *content_type,
		    const void *body, size_t len, const struct ig_http_header *extra, size_t nextra)
{
	if (ex->h2)
		return ig_h2_respond(ex, status, content_type, body, len, extra, nextra);
	struct ig_http_conn *c = ex->conn;
	if (c->resp_started || !c->in_handler)
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
	return ig_http_respond_error_with(ex, status, type, code, msg, NULL, 0);
}

int ig_http_respond_error_with(struct ig_http_exchange *ex, int status, const char *type,
			       const char *code, const char *msg,
			       const struct ig_http_header *extra, size_t nextra)
{
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
	int rc = ig_http_respond(ex, status, "application/json", b.ptr, b.len, extra, nextra);
	ig_buf_free(&b);
	return rc;
}

static void on_flush_task(struct ig_loop *loop, struct ig_task *t)
{
	struct ig_http_conn *c = t->data;
	if (flush_out(c) < 0) {
		conn_free(c);
		return;
	}
	update_events(c);
}

int ig_http_start_response(struct ig_http_exchange *ex, int status,
			   const struct ig_http_header *hdrs, size_t n, int64_t content_length)
{
	if (ex->h2)
		return ig_h2_start_response(ex, status, hdrs, n, content_length);
	struct ig_http_conn *c = ex->conn;
	if (c->resp_started || c->broken)
		return -1;
	if (append_head(c, status, NULL, hdrs, n, content_length) < 0)
		return -1;
	/* The head waits for the first body piece (usually in the same event
	 * batch) so both leave in one send; if none comes, the task sends it
	 * at the end of this loop iteration. */
	ig_task_queue(c->srv->loop, &c->flush_task, on_flush_task, c);
	return 0;
}

int ig_http_write(struct ig_http_exchange *ex, const void *data, size_t len)
{
	if (ex->h2)
		return ig_h2_write(ex, data, len);
	struct ig_http_conn *c = ex->conn;
	if (!c->resp_started || c->broken)
		return -1;
	if (len == 0 || c->resp_no_body)
		return 0;
	ig_task_cancel(c->srv->loop, &c->flush_task);
	char size_line[24];
	struct iovec iov[3];
	int n = 0;
	if (c->resp_chunked) {
		/* The chunk size in hex, then CRLF, written backwards. */
		char *end = size_line + sizeof size_line, *p = end - 2;
		end[-2] = '\r';
		end[-1] = '\n';
		size_t v = len;
		do {
			*--p = "0123456789abcdef"[v & 15];
			v >>= 4;
		} while (v);
		iov[n++] = (struct iovec){p, (size_t)(end - p)};
	}
	iov[n++] = (struct iovec){(void *)data, len};
	if (c->resp_chunked)
		iov[n++] = (struct iovec){"\r\n", 2};
	/* Write now, straight from the caller's bytes: the socket is usually
	 * ready, and what it does not take is buffered. */
	if (send_out(c, iov, n) < 0) {
		mark_broken(c);
		return -1;
	}
	update_events(c);
	if (out_pending(c) > c->srv->cfg.write_high_water) {
		c->want_writable = true;
		return 1;
	}
	return 0;
}

int ig_http_end(struct ig_http_exchange *ex)
{
	if (ex->h2)
		return ig_h2_end(ex);
	struct ig_http_conn *c = ex->conn;
	if (!c->resp_started || !c->in_handler)
		return -1;
	if (c->resp_chunked && !c->resp_no_body)
		ig_buf_append(&c->out, "0\r\n\r\n", 5);
	if (c->resp_close_delimited)
		c->keep_alive = false;
	end_exchange(c);
	return 0;
}

void ig_http_body_consume(struct ig_http_exchange *ex, size_t n)
{
	if (!ex->body_streaming)
		return;
	if (ex->h2) {
		ig_h2_body_consume(ex, n);
		return;
	}
	ig_buf_consume(&ex->body, n < ex->body.len ? n : ex->body.len);
	struct ig_http_conn *c = ex->conn;
	if (c->ex == ex && !c->broken)
		update_events(c); /* reading may go on */
}

bool ig_http_trailer_allowed(struct ig_str name)
{
	/* Framing, routing, connection and authentication fields a trailer
	 * may not carry (RFC 9110 §6.5.1), and HTTP/2's pseudo-fields. */
	static const struct ig_str banned[] = {
	    IG_STR("content-length"),
	    IG_STR("transfer-encoding"),
	    IG_STR("connection"),
	    IG_STR("keep-alive"),
	    IG_STR("proxy-connection"),
	    IG_STR("upgrade"),
	    IG_STR("te"),
	    IG_STR("trailer"),
	    IG_STR("host"),
	    IG_STR("content-type"),
	    IG_STR("content-encoding"),
	    IG_STR("content-range"),
	    IG_STR("authorization"),
	    IG_STR("set-cookie"),
	    IG_STR("www-authenticate"),
	    IG_STR("proxy-authenticate"),
	    IG_STR("cache-control"),
	    IG_STR("expect"),
	};
	if (!name.len || name.ptr[0] == ':')
		return false;
	for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
		if (ig_str_ieq(name, banned[i]))
			return false;
	return true;
}

int ig_http_end_trailers(struct ig_http_exchange *ex, const struct ig_http_header *t, size_t n)
{
	if (ex->h2)
		return ig_h2_end_trailers(ex, t, n);
	struct ig_http_conn *c = ex->conn;
	if (!c->resp_started || !c->in_handler)
		return -1;
	/* Over HTTP/1.1 only a chunked body has a trailer section, and a
	 * client gets one only when its TE said it takes them (§10.1.4). */
	if (!n || !c->resp_chunked || c->resp_no_body ||
	    !ig_http_has_token(ex->req.headers, ex->req.num_headers, "te", "trailers"))
		return ig_http_end(ex);
	struct ig_buf *o = &c->out;
	size_t before = o->len;
	int rc = ig_buf_append(o, "0\r\n", 3);
	for (size_t i = 0; i < n; i++) {
		if (!ig_http_trailer_allowed(t[i].name))
			continue;
		rc |= ig_buf_append_str(o, t[i].name);
		rc |= ig_buf_append(o, ": ", 2);
		rc |= ig_buf_append_str(o, t[i].value);
		rc |= ig_buf_append(o, "\r\n", 2);
	}
	rc |= ig_buf_append(o, "\r\n", 2);
	if (rc) {
		o->len = before;
		return ig_http_end(ex); /* out of memory: the body still ends */
	}
	c->resp_chunked = false; /* the last chunk is written */
	return ig_http_end(ex);
}

int ig_http_switch_protocols(struct ig_http_exchange *ex, const struct ig_http_header *hdrs,
			     size_t n, ig_http_tunnel_data on_data)
{
	struct ig_http_conn *c = ex->conn;
	if (ex->h2 || c->resp_started || c->broken || !c->in_handler || !on_data)
		return -1;
	struct ig_buf *o = &c->out;
	size_t before = o->len;
	int rc = ig_buf_append_cstr(o, "HTTP/1.1 101 Switching Protocols\r\n");
	rc |= append_date(o, hdrs, n, ex);
	for (size_t i = 0; i < n + ex->nresp_extra; i++) {
		const struct ig_http_header *h = i < n ? &hdrs[i] : &ex->resp_extra[i - n];
		rc |= ig_buf_append_str(o, h->name);
		rc |= ig_buf_append(o, ": ", 2);
		rc |= ig_buf_append_str(o, h->value);
		rc |= ig_buf_append(o, "\r\n", 2);
	}
	rc |= ig_buf_append_cstr(o, "Connection: Upgrade\r\n\r\n");
	if (rc) {
		o->len = before; /* no half head: the caller may still answer */
		return -1;
	}
	c->resp_started = true;
	c->resp_chunked = false;
	c->resp_no_body = false;
	c->resp_close_delimited = true;
	c->keep_alive = false;
	c->state = ST_TUNNEL;
	c->tunnel_data = on_data;
	c->tunnel_paused = false;
	ig_task_queue(c->srv->loop, &c->flush_task, on_flush_task, c);
	if (c->in.len)
		ig_task_queue(c->srv->loop, &c->tunnel_task, on_tunnel_task, c);
	update_events(c);
	return 0;
}

void ig_http_tunnel_pause(struct ig_http_exchange *ex, bool paused)
{
	struct ig_http_conn *c = ex->conn;
	if (ex->h2 || c->state != ST_TUNNEL || c->broken || c->tunnel_paused == paused)
		return;
	c->tunnel_paused = paused;
	if (!paused && c->in.len)
		ig_task_queue(c->srv->loop, &c->tunnel_task, on_tunnel_task, c);
	update_events(c);
}

void ig_http_abort(struct ig_http_exchange *ex)
{
	if (ex->h2) {
		ig_h2_abort(ex);
		return;
	}
	struct ig_http_conn *c = ex->conn;
	if (c->in_handler) {
		c->in_handler = false;
		c->srv->busy--;
	}
	ex->on_abort = NULL;
	ex->on_writable = NULL;
	mark_broken(c);
}

/* ---- what server_h2.c borrows ---- */

int ig_srv_flush(struct ig_http_conn *c)
{
	return flush_out(c);
}

void ig_srv_update(struct ig_http_conn *c)
{
	update_events(c);
}

void ig_srv_arm(struct ig_http_conn *c, enum timer_kind kind, uint64_t ms)
{
	arm_timer(c, kind, ms);
}

void ig_srv_free(struct ig_http_conn *c)
{
	conn_free(c);
}

void ig_srv_describe(struct ig_http_conn *c, struct ig_http_exchange *ex)
{
	ex->peer = (struct ig_str){c->peer, strlen(c->peer)};
	if (c->tls)
		tls_describe(c, ex);
}
