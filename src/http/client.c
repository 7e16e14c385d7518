#include "http/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "http/client_int.h"
#include "http/tls.h"

#define MAX_RESP_HEAD (64 * 1024)
#define MAX_RESP_HEADERS 100
#define READ_CHUNK CLIENT_READ_CHUNK
#define MAX_PARTS CLIENT_MAX_PARTS

static void client_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events);
static void on_timer(struct ig_loop *loop, struct ig_timer *t);

int ig_sockaddr_parse(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	int port;
	if (ig_parse_hostport(hostport, "127.0.0.1", host, sizeof host, &port) < 0)
		return -1;
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
		return 0;
	}
	return -1;
}

static void client_free(struct ig_http_client *c)
{
	if (c->h2)
		h2c_free(c);
	ig_timer_stop(c->loop, &c->timer);
	ig_io_stop(c->loop, &c->io);
	ig_tls_conn_free(c->tls);
	ig_tls_client_ctx_unref(c->tls_ctx);
	close(c->io.fd);
	ig_buf_free(&c->in);
	ig_buf_free(&c->out);
	ig_buf_free(&c->trailers);
	ig_buf_free(&c->open_buf);
	free(c);
}

/* Callbacks run between these two: a close asked for inside one is done by
 * the outermost cb_end, which then reports that the client is gone. */
void client_cb_begin(struct ig_http_client *c)
{
	c->in_cb++;
}

bool client_cb_end(struct ig_http_client *c)
{
	if (--c->in_cb == 0 && c->close_requested) {
		client_free(c);
		return true;
	}
	return false;
}

struct ig_http_client *ig_http_client_connect(struct ig_loop *loop, const struct sockaddr *addr,
					      socklen_t addrlen, uint64_t connect_timeout_ms)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct ig_http_client *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->loop = loop;
	int rc = connect(fd, addr, addrlen);
	if (rc < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		free(c);
		errno = e;
		return NULL;
	}
	c->connected = rc == 0;
	c->state = c->connected ? CL_READY : CL_CONNECTING;
	if (ig_io_start(loop, &c->io, fd, c->connected ? 0 : IG_EV_WRITE, client_on_io, c) < 0) {
		close(fd);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	if (!c->connected && connect_timeout_ms) {
		c->connect_deadline_ns = ig_now_ns() + connect_timeout_ms * 1000000u;
		ig_timer_start(loop, &c->timer, connect_timeout_ms, on_timer, c);
	}
	return c;
}

struct ig_http_client *ig_http_client_connect_h2c(struct ig_loop *loop, const struct sockaddr *addr,
						  socklen_t addrlen, uint64_t connect_timeout_ms)
{
	struct ig_http_client *c = ig_http_client_connect(loop, addr, addrlen, connect_timeout_ms);
	if (c && h2c_init(c) < 0) {
		client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

struct ig_http_client *ig_http_client_connect_tls(struct ig_loop *loop, const struct sockaddr *addr,
						  socklen_t addrlen, uint64_t connect_timeout_ms,
						  struct ig_tls_client_ctx *ctx)
{
	struct ig_http_client *c = ig_http_client_connect(loop, addr, addrlen, connect_timeout_ms);
	if (!c)
		return NULL;
	c->tls_ctx = ig_tls_client_ctx_ref(ctx);
	/* HTTP/2 over TLS (a GRPCRoute's backend): the h2c mode's framing on
	 * the TLS connection, once the backend has chosen h2 by ALPN. */
	if (ig_tls_client_ctx_h2(ctx) && h2c_init(c) < 0) {
		client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	if (c->connected) {
		/* TCP is up at once (loopback can do that): the handshake is
		 * still to come, from the loop. */
		c->connected = false;
		c->tcp_up = true;
		c->state = CL_CONNECTING;
		c->hs_events = IG_EV_WRITE;
		ig_io_set(loop, &c->io, IG_EV_WRITE);
		if (connect_timeout_ms) {
			c->connect_deadline_ns = ig_now_ns() + connect_timeout_ms * 1000000u;
			ig_timer_start(loop, &c->timer, connect_timeout_ms, on_timer, c);
		}
	}
	return c;
}

const char *ig_http_client_tls_version(const struct ig_http_client *c)
{
	return c->tls && c->connected ? ig_tls_conn_version(c->tls) : NULL;
}

bool ig_http_client_tls_resumed(const struct ig_http_client *c)
{
	return c->tls && c->connected && ig_tls_conn_resumed(c->tls);
}

struct ig_tls_client_ctx *ig_http_client_tls_ctx(const struct ig_http_client *c)
{
	return c->tls_ctx;
}

enum ig_http_proto ig_http_client_proto(const struct ig_http_client *c)
{
	return c->h2 ? IG_PROTO_H2C : IG_PROTO_HTTP1;
}

void client_update_events(struct ig_http_client *c)
{
	/* Output waiting for room: the request's bytes, or in h2c mode the
	 * frames nghttp2 handed out that the socket did not take. */
	bool out = c->h2 ? h2c_out_pending(c) : c->iov_pos < c->iov_cnt || c->out.len > c->out_off;
	unsigned ev = 0;
	if (!c->connected && c->tcp_up) {
		/* The TLS handshake: what it waits for, whatever the state. */
		ig_io_set(c->loop, &c->io, c->state == CL_DEAD ? 0 : c->hs_events);
		return;
	}
	if (c->read_wants_write && c->state != CL_DEAD)
		ev |= IG_EV_WRITE;
	switch (c->state) {
	case CL_CONNECTING:
		ev = IG_EV_WRITE;
		break;
	case CL_HEAD:
	case CL_BODY:
		if (!c->connected)
			ev |= IG_EV_WRITE;
		else {
			if (out)
				ev |= IG_EV_WRITE;
			if (!c->paused)
				ev |= IG_EV_READ;
		}
		break;
	case CL_READY:
		ev |= c->connect_cb || out ? IG_EV_WRITE : 0;
		break;
	case CL_PARKED:
		ev |= IG_EV_READ | (out ? IG_EV_WRITE : 0);
		break;
	case CL_DEAD:
		break;
	}
	ig_io_set(c->loop, &c->io, ev);
}

static bool open_waiting(const struct ig_http_client *c);

/* The connection failed: it stops watching its socket and tells its owner.
 * Returns true when the owner closed it inside the callback. */
bool client_fail(struct ig_http_client *c, enum ig_client_error kind, int err)
{
	bool was_connecting = !c->connected;
	c->state = CL_DEAD;
	ig_timer_stop(c->loop, &c->timer);
	ig_io_stop(c->loop, &c->io);
	if (c->connect_cb && was_connecting) {
		ig_http_client_connect_cb cb = c->connect_cb;
		c->connect_cb = NULL;
		client_cb_begin(c);
		cb(c, err ? err : ECONNREFUSED, c->owner_ud);
		return client_cb_end(c);
	}
	if (!c->cbs || !c->cbs->on_error)
		return false;
	struct ig_http_client_fault f = {
	    .kind = kind,
	    .err = err,
	    .reused = c->reused,
	    .sent_all = c->sent_all,
	    .got_byte = c->got_byte,
	    .refused = c->refused,
	    .body_waiting = open_waiting(c),
	    .detail = c->fail_detail ? c->fail_detail
		      : c->tls	     ? ig_tls_conn_error(c->tls)
				     : "",
	};
	client_cb_begin(c);
	c->cbs->on_error(c, &f, c->ud);
	return client_cb_end(c);
}

static enum ig_client_error early_or_broken(const struct ig_http_client *c)
{
	return c->got_byte ? IG_CLIENT_BROKEN : IG_CLIENT_EARLY;
}

static void on_timer(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_http_client *c = t->data;
	uint64_t now = ig_now_ns();
	if (c->idle_failed && (c->state == CL_HEAD || c->state == CL_BODY)) {
		client_fail(c, IG_CLIENT_EARLY, ECONNRESET);
		return;
	}
	if (!c->connected && c->connect_deadline_ns) {
		if (now >= c->connect_deadline_ns) {
			client_fail(c, IG_CLIENT_CONNECT, ETIMEDOUT);
			return;
		}
		ig_timer_start_ns(loop, t, c->connect_deadline_ns - now, on_timer, c);
		return;
	}
	if ((c->state != CL_HEAD && c->state != CL_BODY) || !c->read_timeout_ns)
		return;
	/* The deadline moves with every sign of progress; the timer is only
	 * re-armed here, not on every read. Paused reading is our silence. */
	if (c->paused)
		c->last_ns = now;
	uint64_t deadline = c->last_ns + c->read_timeout_ns;
	if (now >= deadline) {
		client_fail(c, IG_CLIENT_TIMEOUT, ETIMEDOUT);
		return;
	}
	ig_timer_start_ns(loop, t, deadline - now, on_timer, c);
}

static void arm_read_timer(struct ig_http_client *c)
{
	if (c->read_timeout_ns)
		ig_timer_start_ns(c->loop, &c->timer, c->read_timeout_ns, on_timer, c);
	else
		ig_timer_stop(c->loop, &c->timer);
}

/* Sends bytes on the connection, through TLS when it has it: the count
 * taken, or -1 with errno (EAGAIN when the socket is full). After EAGAIN
 * on TLS, the next call must offer the same bytes again (at least as
 * many, from any address): a record may be half sent. */
ssize_t client_send(struct ig_http_client *c, const void *p, size_t len)
{
	if (!c->tls)
		return send(c->io.fd, p, len, MSG_NOSIGNAL);
	ssize_t n = ig_tls_write(c->tls, p, len);
	if (n >= 0)
		return n;
	errno = n == IG_TLS_WANT_WRITE || n == IG_TLS_WANT_READ ? EAGAIN : EPROTO;
	return -1;
}

/* The request's spans through TLS: up to one record's worth gathered at a
 * time, so that a small head and body go out as one record. */
#define TLS_GATHER (16 * 1024)

static ssize_t tls_flush_once(struct ig_http_client *c)
{
	const struct iovec *v = &c->iov[c->iov_pos];
	int left = c->iov_cnt - c->iov_pos;
	if (left == 1 || v->iov_len >= TLS_GATHER)
		return client_send(c, v->iov_base, v->iov_len);
	char buf[TLS_GATHER];
	size_t len = 0;
	for (int i = 0; i < left && len < sizeof buf; i++) {
		size_t take = v[i].iov_len < sizeof buf - len ? v[i].iov_len : sizeof buf - len;
		memcpy(buf + len, v[i].iov_base, take);
		len += take;
	}
	return client_send(c, buf, len);
}

/* Moves the request's spans past n bytes sent. */
static void iov_advance(struct ig_http_client *c, size_t n)
{
	while (c->iov_pos < c->iov_cnt && n >= c->iov[c->iov_pos].iov_len)
		n -= c->iov[c->iov_pos++].iov_len;
	if (n) {
		c->iov[c->iov_pos].iov_base = (char *)c->iov[c->iov_pos].iov_base + n;
		c->iov[c->iov_pos].iov_len -= n;
	}
}

/* Writes what it can of the request. 0, or -errno. */
static int flush(struct ig_http_client *c)
{
	while (c->iov_pos < c->iov_cnt) {
		ssize_t n;
		if (c->tls) {
			n = tls_flush_once(c);
		} else {
			struct msghdr msg = {.msg_iov = &c->iov[c->iov_pos],
					     .msg_iovlen = (size_t)(c->iov_cnt - c->iov_pos)};
			n = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		c->last_ns = c->loop->now_ns;
		iov_advance(c, (size_t)n);
	}
	/* An open HTTP/1.1 body is still to go after the head. */
	if (!c->open_body || c->h2)
		c->sent_all = true;
	return 0;
}

/* The response ended: the connection is its owner's again. Returns true
 * (the caller stops touching c) always. */
bool client_finish(struct ig_http_client *c)
{
	if (!c->sent_all) {
		/* The server answered before taking the whole request. */
		c->keep_alive = false;
		c->iov_pos = c->iov_cnt = 0;
		if (c->open_body && !c->h2) {
			ig_buf_free(&c->out);
			c->out_off = 0;
		}
	}
	c->state = CL_READY;
	ig_timer_stop(c->loop, &c->timer);
	/* Events stay as they are: the owner parks (read), reuses (read) or
	 * closes the connection next, so changing them now would cost a
	 * syscall for nothing. */
	client_cb_begin(c);
	c->cbs->on_done(c, c->ud);
	client_cb_end(c);
	return true;
}

/* The response head at the start of `in`, if complete. Returns true when
 * the client was handed back or failed (stop), false to go on. */
static bool process_head(struct ig_http_client *c)
{
	for (;;) {
		struct ig_http_header hdrs[MAX_RESP_HEADERS];
		struct ig_http_response res;
		int n = ig_http_parse_response(c->in.ptr, c->in.len, &res, hdrs, MAX_RESP_HEADERS);
		if (n == IG_HTTP_INCOMPLETE) {
			if (c->in.len > MAX_RESP_HEAD)
				return client_fail(c, IG_CLIENT_PROTOCOL, EMSGSIZE) || true;
			return false;
		}
		if (n < 0)
			return client_fail(c, IG_CLIENT_PROTOCOL, EPROTO) || true;
		/* The limit holds however the head was split: one that came
		 * whole in a large read is over it as much as one still
		 * coming. */
		if ((size_t)n > MAX_RESP_HEAD)
			return client_fail(c, IG_CLIENT_PROTOCOL, EMSGSIZE) || true;
		bool switched = res.status == 101 && c->upgrade;
		if (res.status >= 100 && res.status < 200 && !switched) {
			/* Interim responses (100 Continue) are dropped. */
			ig_buf_consume(&c->in, (size_t)n);
			if (!c->in.len)
				return false;
			continue;
		}
		if (switched) {
			/* A tunnel: everything after the head is the server's. */
			c->tunnel = true;
			c->framing = (struct ig_http_framing){.kind = IG_BODY_UNTIL_CLOSE};
		} else if (ig_http_response_framing(&res,
						    c->is_head ? IG_STR("HEAD") : IG_STR("GET"),
						    &c->framing) < 0) {
			return client_fail(c, IG_CLIENT_PROTOCOL, EPROTO) || true;
		}
		/* A malformed chunked body that came with its head fails the
		 * response before the head goes anywhere: the owner can still
		 * answer 502, where after the head it could only cut. */
		static const struct ig_chunked_decoder fresh;
		if (c->framing.kind == IG_BODY_CHUNKED && c->in.len > (size_t)n &&
		    ig_chunked_check(&fresh, c->in.ptr + n, c->in.len - (size_t)n) < 0)
			return client_fail(c, IG_CLIENT_PROTOCOL, EPROTO) || true;
		c->keep_alive = c->framing.keep_alive;
		c->body_left = c->framing.length;
		memset(&c->chunked, 0, sizeof c->chunked);
		c->chunked.trailers = &c->trailers;
		c->state = CL_BODY;
		client_cb_begin(c);
		int rc = c->cbs->on_head(c, &res, c->ud);
		/* The head's slices point into `in`; drop it only now. */
		ig_buf_consume(&c->in, (size_t)n);
		if (client_cb_end(c))
			return true;
		if (rc != 0) {
			c->state = CL_DEAD;
			ig_timer_stop(c->loop, &c->timer);
			ig_io_stop(c->loop, &c->io);
			return true;
		}
		if (c->framing.kind == IG_BODY_NONE ||
		    (c->framing.kind == IG_BODY_LENGTH && c->framing.length == 0))
			return client_finish(c);
		return false;
	}
}

/* Feeds buffered input through the parser. Returns true when the client
 * was handed back, failed or closed (stop touching it). */
static bool process(struct ig_http_client *c)
{
	if (c->state == CL_HEAD && process_head(c))
		return true;
	while (c->state == CL_BODY && c->in.len && !c->paused) {
		size_t len = c->in.len;
		ssize_t rest = 0;
		bool done = false;
		if (c->framing.kind == IG_BODY_LENGTH) {
			if (len > c->body_left)
				len = (size_t)c->body_left;
			c->body_left -= len;
			done = c->body_left == 0;
			rest = (ssize_t)(c->in.len - len);
		} else if (c->framing.kind == IG_BODY_CHUNKED) {
			rest = ig_chunked_decode(&c->chunked, c->in.ptr, &len);
			if (rest == IG_HTTP_INVALID)
				return client_fail(c, IG_CLIENT_PROTOCOL, EPROTO) || true;
			done = rest >= 0;
			if (rest < 0)
				rest = 0;
		}
		client_cb_begin(c);
		int prc = len ? c->cbs->on_body(c, c->in.ptr, len, c->ud) : 0;
		if (client_cb_end(c))
			return true;
		if (c->state != CL_BODY)
			return true; /* failed or abandoned inside the callback */
		if (c->framing.kind == IG_BODY_CHUNKED) {
			memmove(c->in.ptr, c->in.ptr + len, (size_t)rest);
			c->in.len = (size_t)rest;
		} else if (c->framing.kind == IG_BODY_LENGTH) {
			ig_buf_consume(&c->in, len);
		} else {
			c->in.len = 0;
		}
		if (prc == 1)
			c->paused = true;
		if (done) {
			/* Bytes after the response make the connection unusable. */
			if (c->in.len)
				c->keep_alive = false;
			return client_finish(c);
		}
	}
	return false;
}

/* A tunnel whose socket was drained may stay silent for long (a realtime
 * session waiting for its user): it holds no read buffer meanwhile. */
static void tunnel_idle(struct ig_http_client *c)
{
	if (c->tunnel && !c->in.len)
		ig_buf_free(&c->in);
}

/* Receives bytes, through TLS when the connection has it: the count, 0
 * at the end, or -1 with errno (EAGAIN when nothing more is there). */
ssize_t client_recv(struct ig_http_client *c, void *buf, size_t len)
{
	if (!c->tls)
		return recv(c->io.fd, buf, len, 0);
	c->read_wants_write = false;
	ssize_t n = ig_tls_read(c->tls, buf, len);
	if (n >= 0)
		return n;
	if (n == IG_TLS_WANT_READ || n == IG_TLS_WANT_WRITE) {
		c->read_wants_write = n == IG_TLS_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	}
	errno = EPROTO;
	return -1;
}

/* Returns true when the client is gone or handed back. */
static bool do_read(struct ig_http_client *c)
{
	for (int rounds = 0; rounds < 16 && !c->paused; rounds++) {
		if (ig_buf_reserve(&c->in, READ_CHUNK) < 0)
			return client_fail(c, IG_CLIENT_PROTOCOL, ENOMEM) || true;
		ssize_t n = client_recv(c, c->in.ptr + c->in.len, c->in.cap - c->in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			tunnel_idle(c);
			return false;
		}
		if (n < 0)
			return client_fail(c, early_or_broken(c), errno) || true;
		if (n == 0) {
			if (c->state == CL_BODY && c->framing.kind == IG_BODY_UNTIL_CLOSE) {
				c->keep_alive = false;
				return client_finish(c);
			}
			return client_fail(c, early_or_broken(c), ECONNRESET) || true;
		}
		c->got_byte = true;
		c->last_ns = c->loop->now_ns;
		c->in.len += (size_t)n;
		if (process(c))
			return true;
		/* A short read drained the socket: no need to ask again. A
		 * TLS read returns one record at a time, so it reads on. */
		if ((size_t)n < READ_CHUNK / 2 && !c->tls) {
			tunnel_idle(c);
			return false;
		}
	}
	return false;
}

/* ---- tunnels ---- */

#define TUNNEL_HIGH (256 * 1024) /* buffered tunnel output: above it, write no more */
#define TUNNEL_KEEP (64 * 1024)	 /* output taken beyond this is compacted away */

/* Sends what the tunnel's buffer holds. 0, or -errno. */
static int tunnel_flush(struct ig_http_client *c)
{
	while (c->out.len > c->out_off) {
		ssize_t n = client_send(c, c->out.ptr + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
		c->last_ns = c->loop->now_ns;
	}
	if (c->out.len == c->out_off) {
		ig_buf_free(&c->out); /* drained: a silent tunnel holds nothing */
		c->out_off = 0;
	} else if (c->out_off > TUNNEL_KEEP && c->out_off * 2 > c->out.len) {
		ig_buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	return 0;
}

/* The socket has room for the tunnel's output. Returns true when the
 * client failed or was closed (stop touching it). */
static bool tunnel_output(struct ig_http_client *c)
{
	int rc = tunnel_flush(c);
	if (rc < 0)
		return client_fail(c, IG_CLIENT_BROKEN, -rc) || true;
	if (c->out_full && c->out.len - c->out_off <= TUNNEL_HIGH / 2) {
		c->out_full = false;
		if (c->cbs && c->cbs->on_writable) {
			client_cb_begin(c);
			c->cbs->on_writable(c, c->ud);
			if (client_cb_end(c) || c->state == CL_DEAD)
				return true;
		}
	}
	return false;
}

/* The server closed or reset the connection while the request was still
 * going out (err), as a server does that answers before it read the whole
 * request (a 413, say) and closes: writing stops, and the response it
 * sent first is read. False when err is another failure. */
static bool write_closed(struct ig_http_client *c, int err)
{
	if (c->h2 || (err != EPIPE && err != ECONNRESET) ||
	    (c->state != CL_HEAD && c->state != CL_BODY))
		return false;
	c->write_dead = true;
	c->iov_pos = c->iov_cnt = 0;
	if (c->open_body) {
		ig_buf_free(&c->out);
		c->out_off = 0;
	}
	return true;
}

/* Writes what an open HTTP/1.1 body has framed, after the head; the
 * request is all sent once its end went. 0, or -errno. */
static int open_flush(struct ig_http_client *c)
{
	if (c->iov_pos < c->iov_cnt || !c->connected)
		return 0;
	int rc = tunnel_flush(c);
	if (rc == 0 && c->open_end && c->out.len == c->out_off)
		c->sent_all = true;
	return rc;
}

void ig_http_client_allow_upgrade(struct ig_http_client *c)
{
	if (!c->h2)
		c->upgrade = true;
}

int ig_http_client_write(struct ig_http_client *c, const void *data, size_t len)
{
	if (!c->tunnel || c->state != CL_BODY)
		return -1;
	/* Straight from the caller's bytes when nothing waits before them;
	 * only what the socket does not take is copied. */
	size_t sent = 0;
	while (c->out.len == c->out_off && sent < len) {
		ssize_t n = client_send(c, (const char *)data + sent, len - sent);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			return -1;
		sent += (size_t)n;
	}
	if (ig_buf_append(&c->out, (const char *)data + sent, len - sent) < 0)
		return -1;
	c->last_ns = c->loop->now_ns;
	client_update_events(c);
	if (c->out.len - c->out_off > TUNNEL_HIGH) {
		c->out_full = true;
		return 1;
	}
	return 0;
}

void client_parked_event(struct ig_http_client *c)
{
	/* Anything on an idle connection means it is over: the server closed
	 * or reset it, or sent bytes nobody asked for. The owner closes it. */
	c->state = CL_DEAD;
	ig_io_stop(c->loop, &c->io);
	ig_timer_stop(c->loop, &c->timer);
	ig_http_client_idle_cb cb = c->idle_cb;
	c->idle_cb = NULL;
	if (cb) {
		client_cb_begin(c);
		cb(c, c->owner_ud);
		client_cb_end(c);
	}
}

/* A parked TLS connection may receive records that carry no data (a TLS
 * 1.3 session ticket sent late): those leave it idle. True when so. */
static bool tls_parked_quiet(struct ig_http_client *c, unsigned events)
{
	if (events & IG_EV_ERROR)
		return false;
	char tmp[64];
	ssize_t n = client_recv(c, tmp, sizeof tmp);
	return n < 0 && errno == EAGAIN && !c->read_wants_write;
}

/* Advances the TLS handshake of a connection whose TCP part is up.
 * Returns true when the caller stops: it waits for the socket, or the
 * client failed. */
static bool tls_handshake_step(struct ig_http_client *c)
{
	if (!c->tls && !(c->tls = ig_tls_client_conn_new(c->tls_ctx, c->io.fd)))
		return client_fail(c, IG_CLIENT_CONNECT, ENOMEM) || true;
	int rc = ig_tls_handshake(c->tls);
	if (rc == IG_OK && c->h2 && strcmp(ig_tls_conn_alpn(c->tls), "h2") != 0) {
		c->fail_detail = "the backend did not choose h2 by ALPN";
		client_fail(c, IG_CLIENT_CONNECT, EPROTO);
		return true;
	}
	if (rc == IG_OK)
		return false;
	if (rc == IG_TLS_WANT_READ || rc == IG_TLS_WANT_WRITE) {
		c->hs_events = rc == IG_TLS_WANT_READ ? IG_EV_READ : IG_EV_WRITE;
		ig_io_set(c->loop, &c->io, c->hs_events);
		return true;
	}
	client_fail(c, IG_CLIENT_CONNECT, EPROTO);
	return true;
}

static void client_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_http_client *c = io->data;
	if (c->state == CL_DEAD)
		return;
	if (c->state == CL_PARKED) {
		if (c->h2)
			h2c_parked_io(c, events);
		else if (!c->tls || !tls_parked_quiet(c, events))
			client_parked_event(c);
		return;
	}
	if (!c->connected) {
		if (!c->tcp_up) {
			int err = 0;
			socklen_t el = sizeof err;
			if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
				err = errno;
			if (!err && (events & IG_EV_ERROR))
				err = ECONNREFUSED;
			if (err) {
				client_fail(c, IG_CLIENT_CONNECT, err);
				return;
			}
			c->tcp_up = true;
		}
		if (c->tls_ctx && tls_handshake_step(c))
			return;
		c->connected = true;
		c->last_ns = loop->now_ns;
		if (c->state == CL_CONNECTING)
			c->state = CL_READY;
		if (c->state == CL_HEAD)
			arm_read_timer(c);
		else
			ig_timer_stop(loop, &c->timer);
	}
	if (c->connect_cb && c->state == CL_READY) {
		ig_http_client_connect_cb cb = c->connect_cb;
		c->connect_cb = NULL;
		client_cb_begin(c);
		cb(c, 0, c->owner_ud);
		if (client_cb_end(c))
			return;
	}
	if (c->h2) {
		h2c_io(c, events);
		return;
	}
	if (c->iov_pos < c->iov_cnt) {
		int rc = flush(c);
		if (rc < 0 && !write_closed(c, -rc)) {
			client_fail(c, early_or_broken(c), -rc);
			return;
		}
	}
	if (c->tunnel && c->out.len > c->out_off && (events & IG_EV_WRITE) && tunnel_output(c))
		return;
	if (c->open_body && !c->h2 && !c->write_dead &&
	    (c->state == CL_HEAD || c->state == CL_BODY) && c->iov_pos == c->iov_cnt) {
		int rc = open_flush(c);
		if (rc < 0 && !write_closed(c, -rc)) {
			client_fail(c, early_or_broken(c), -rc);
			return;
		}
		if (!c->write_dead && client_open_writable(c))
			return;
	}
	/* The server stopped taking the request: what it answered first may
	 * be waiting to be read. */
	if (c->write_dead)
		events |= IG_EV_READ;
	if ((events & IG_EV_READ) && (c->state == CL_HEAD || c->state == CL_BODY)) {
		if (do_read(c))
			return;
	} else if ((events & IG_EV_ERROR) && c->state != CL_HEAD && c->state != CL_BODY) {
		client_idle_error(c);
		return;
	}
	if (c->state != CL_DEAD)
		client_update_events(c);
}

void client_idle_error(struct ig_http_client *c)
{
	/* An error on a connection with no request: nothing to tell now, but
	 * epoll would keep reporting it. It stops watching; the next request
	 * on it fails from the loop (an early failure of a reused connection,
	 * as when the reset comes a moment later). */
	c->idle_failed = true;
	ig_io_set(c->loop, &c->io, 0);
	ig_io_stop(c->loop, &c->io);
}

static int sendv(struct ig_http_client *c, const struct ig_str *parts, size_t nparts, bool is_head,
		 uint64_t read_timeout_ms, const struct ig_http_client_cbs *cbs, void *ud,
		 bool open, int64_t body_length)
{
	if (c->state != CL_READY && c->state != CL_CONNECTING && c->state != CL_PARKED)
		return -1;
	if (nparts > MAX_PARTS)
		return -1;
	c->open_body = open;
	c->open_end = c->open_full = c->open_deferred = c->open_told = false;
	c->open_chunked = open && body_length < 0;
	c->open_left = body_length > 0 ? (uint64_t)body_length : 0;
	ig_buf_reset(&c->open_buf);
	c->open_off = 0;
	if (open && !c->h2) {
		ig_buf_reset(&c->out);
		c->out_off = 0;
	}
	/* In h2c mode the stream is queued first: a request HTTP/2 cannot
	 * carry fails here, with nothing changed. It fills iov with the body. */
	if (c->h2 && !c->idle_failed && h2c_submit(c, parts, nparts) < 0)
		return -1;
	c->reused = c->requests++ > 0;
	c->cbs = cbs;
	c->ud = ud;
	c->idle_cb = NULL;
	c->is_head = is_head;
	c->got_byte = false;
	c->sent_all = false;
	c->paused = false;
	c->keep_alive = false;
	c->refused = false;
	c->upgrade = false;
	c->tunnel = false;
	c->write_dead = false;
	ig_buf_reset(&c->trailers);
	c->trailers.max = MAX_RESP_HEAD;
	if (!c->h2) {
		ig_buf_reset(&c->in);
		c->iov_cnt = 0;
		c->iov_pos = 0;
		for (size_t i = 0; i < nparts; i++)
			if (parts[i].len)
				c->iov[c->iov_cnt++] =
				    (struct iovec){(void *)parts[i].ptr, parts[i].len};
	}
	c->state = CL_HEAD;
	c->read_timeout_ns = read_timeout_ms * 1000000u;
	c->last_ns = ig_loop_now(c->loop);
	if (c->idle_failed) {
		/* Reported from the loop, never inside this call. */
		ig_timer_start(c->loop, &c->timer, 0, on_timer, c);
		return 0;
	}
	if (c->connected) {
		arm_read_timer(c);
		/* Write at once (the usual case); a failure here shows up again
		 * on the next attempt from the loop, so callbacks never run
		 * inside this call. The h2c frames go from the loop, which can
		 * report what writing them finds (a HEADERS frame nghttp2
		 * refuses closes the stream). */
		if (!c->h2)
			(void)flush(c);
	}
	client_update_events(c);
	return 0;
}

int ig_http_client_sendv(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			 bool is_head, uint64_t read_timeout_ms,
			 const struct ig_http_client_cbs *cbs, void *ud)
{
	return sendv(c, parts, nparts, is_head, read_timeout_ms, cbs, ud, false, 0);
}

int ig_http_client_sendv_open(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			      int64_t body_length, uint64_t read_timeout_ms,
			      const struct ig_http_client_cbs *cbs, void *ud)
{
	int rc = sendv(c, parts, nparts, false, read_timeout_ms, cbs, ud, true, body_length);
	if (rc < 0)
		c->open_body = false;
	return rc;
}

#define OPEN_HIGH (256 * 1024) /* an open body's bytes nghttp2 has not taken */

/* An open HTTP/1.1 body's bytes, framed, into `out`. 0, or -1. */
static int open_frame(struct ig_http_client *c, const void *data, size_t len, bool end)
{
	if (!c->open_chunked) {
		if (len > c->open_left)
			len = (size_t)c->open_left;
		c->open_left -= len;
		return len ? ig_buf_append(&c->out, data, len) : 0;
	}
	if (len && (ig_buf_append_hex(&c->out, len) < 0 || ig_buf_append(&c->out, "\r\n", 2) < 0 ||
		    ig_buf_append(&c->out, data, len) < 0 || ig_buf_append(&c->out, "\r\n", 2) < 0))
		return -1;
	return end ? ig_buf_append(&c->out, "0\r\n\r\n", 5) : 0;
}

/* What an open body holds that has not gone out. */
static size_t open_pending(const struct ig_http_client *c)
{
	return c->h2 ? c->open_buf.len - c->open_off : c->out.len - c->out_off;
}

/* Whether an open body has bytes the server has not taken: not yet
 * written, or (h2c) framed but not yet written. */
static bool open_waiting(const struct ig_http_client *c)
{
	return c->open_body && (open_pending(c) > 0 || (c->h2 && h2c_out_pending(c)));
}

int ig_http_client_body(struct ig_http_client *c, const void *data, size_t len, bool end)
{
	if (!c->open_body || c->open_end || c->write_dead ||
	    (c->state != CL_HEAD && c->state != CL_BODY))
		return -1;
	if (c->h2) {
		if (len && ig_buf_append(&c->open_buf, data, len) < 0)
			return -1;
		c->open_end = end;
		h2c_open_more(c);
	} else {
		if (open_frame(c, data, len, end) < 0)
			return -1;
		c->open_end = end;
		/* Write at once; a failure shows up from the loop. */
		(void)open_flush(c);
	}
	client_update_events(c);
	if (open_pending(c) > OPEN_HIGH) {
		c->open_full = true;
		return 1;
	}
	return 0;
}

bool ig_http_client_body_full(const struct ig_http_client *c)
{
	return c->open_body && c->open_full;
}

bool client_open_writable(struct ig_http_client *c)
{
	if (!c->open_body || (c->state != CL_HEAD && c->state != CL_BODY) || !c->connected)
		return false;
	bool tell = !c->open_told || (c->open_full && open_pending(c) < OPEN_HIGH / 2);
	if (!tell || !c->cbs->on_writable)
		return false;
	c->open_told = true;
	c->open_full = false;
	client_cb_begin(c);
	c->cbs->on_writable(c, c->ud);
	return client_cb_end(c) || (c->state != CL_HEAD && c->state != CL_BODY);
}

bool ig_http_client_connected(const struct ig_http_client *c)
{
	return c->connected;
}

int ig_http_client_send(struct ig_http_client *c, const void *req, size_t len, bool is_head,
			uint64_t read_timeout_ms, const struct ig_http_client_cbs *cbs, void *ud)
{
	struct ig_str part = {req, len};
	return ig_http_client_sendv(c, &part, 1, is_head, read_timeout_ms, cbs, ud);
}

void ig_http_client_pause(struct ig_http_client *c, bool paused)
{
	if (c->paused == paused || c->state == CL_DEAD)
		return;
	c->paused = paused;
	if (!paused) {
		c->last_ns = ig_now_ns();
		if (c->h2) {
			if (!c->in_cb && h2c_resume(c))
				return;
		} else if (c->in.len && !c->in_cb && process(c)) {
			return;
		}
	}
	if (c->state == CL_HEAD || c->state == CL_BODY)
		client_update_events(c);
}

bool ig_http_client_reusable(const struct ig_http_client *c)
{
	if (c->h2)
		return h2c_reusable(c);
	return c->state == CL_READY && c->keep_alive && c->in.len == 0 && !c->idle_failed;
}

int64_t ig_http_client_body_length(const struct ig_http_client *c)
{
	if (c->h2)
		return h2c_body_length(c);
	if (c->framing.kind == IG_BODY_LENGTH)
		return (int64_t)c->framing.length;
	if (c->framing.kind == IG_BODY_NONE)
		return 0;
	return -1;
}

size_t ig_http_client_trailers(const struct ig_http_client *c, struct ig_http_header *out,
			       size_t max)
{
	if (!c->trailers.len)
		return 0;
	int n = ig_http_parse_fields(c->trailers.ptr, c->trailers.len, out, max);
	return n > 0 ? (size_t)n : 0;
}

bool ig_http_client_was_reused(const struct ig_http_client *c)
{
	return c->reused;
}

void ig_http_client_park(struct ig_http_client *c, ig_http_client_idle_cb idle_cb, void *ud)
{
	c->state = CL_PARKED;
	c->cbs = NULL;
	c->ud = NULL;
	c->idle_cb = idle_cb;
	c->owner_ud = ud;
	c->iov_pos = c->iov_cnt = 0;
	ig_timer_stop(c->loop, &c->timer);
	ig_buf_free(&c->in);
	ig_buf_free(&c->trailers);
	ig_buf_free(&c->open_buf);
	c->open_body = false;
	if (c->h2)
		h2c_park(c);
	client_update_events(c);
}

void ig_http_client_on_connect(struct ig_http_client *c, ig_http_client_connect_cb cb, void *ud)
{
	c->connect_cb = cb;
	c->owner_ud = ud;
	client_update_events(c);
}

void ig_http_client_close(struct ig_http_client *c)
{
	if (!c)
		return;
	if (c->in_cb) {
		/* Inside one of our callbacks: stop everything now, free on the
		 * way out. */
		c->close_requested = true;
		c->state = CL_DEAD;
		ig_timer_stop(c->loop, &c->timer);
		ig_io_stop(c->loop, &c->io);
		return;
	}
	client_free(c);
}
