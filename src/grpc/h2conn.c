/* One HTTP/2 connection on the event loop: TCP connect and TLS handshake
 * when there are any, then nghttp2's session fed from the socket and
 * drained into it. nghttp2 does the protocol; this file only moves bytes.
 *
 * Output: nghttp2_session_mem_send hands out one frame at a time, and a
 * write per frame made a 400 KB body answer two dozen sends of 16 KiB,
 * whose fixed cost in loopback TCP was most of the picker's CPU. Frames
 * are therefore gathered into a WRITE_CHUNK buffer and written together:
 * DATA frames are copied there from the stream's queue by the send_data
 * callback (nghttp2 copies nothing), other frames from nghttp2's buffer;
 * one that does not fit in what is left is written after the buffer
 * straight from nghttp2's (a pointer valid until the next mem_send), in
 * the same sendmsg. What is not written waits for writability before
 * more is asked for, so what the connection holds for a peer that does
 * not read is that buffer (freed once all is written) and nghttp2's one,
 * plus what the streams queued, which HTTP/2 flow control keeps in their
 * own queues.
 *
 * Input: read in 64 KiB pieces, at most READ_BUDGET per wake-up so that
 * one busy connection cannot starve the others on the loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "grpc/grpc_int.h"
#include "http/tls.h"

#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (256 * 1024)
#define WRITE_CHUNK (64 * 1024)
#define FRAME_HEADER 9 /* an HTTP/2 frame header */

static void on_io(struct ig_loop *loop, struct ig_io *io, unsigned events);
static void on_flush(struct ig_loop *loop, struct ig_task *t);
static void after_io(struct h2conn *c);

void h2conn_fail(struct h2conn *c, const char *why)
{
	if (c->closed)
		return;
	c->closed = true;
	snprintf(c->why, sizeof c->why, "%s", why);
	ig_io_set(c->loop, &c->io, 0);
	ig_task_cancel(c->loop, &c->flush);
	c->ops->on_close(c, c->why);
}

static void update_events(struct h2conn *c)
{
	if (c->closed)
		return;
	unsigned ev = IG_EV_READ;
	if (c->connecting || c->wlen > c->woff || c->outlen || c->tls_wants_write)
		ev |= IG_EV_WRITE;
	if (c->io.events != ev)
		ig_io_set(c->loop, &c->io, ev);
}

static ssize_t sock_read(struct h2conn *c, uint8_t *buf, size_t len)
{
	if (c->tls)
		return ig_tls_read(c->tls, buf, len);
	ssize_t n;
	do
		n = recv(c->io.fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? IG_AGAIN : IG_ERROR;
	return n;
}

/* Writes what is pending: the gathered bytes, then nghttp2's own (one
 * sendmsg; over TLS one record stream write at a time). */
static ssize_t sock_write(struct h2conn *c)
{
	struct iovec iov[2];
	int n = 0;
	if (c->wlen > c->woff)
		iov[n++] = (struct iovec){c->wbuf + c->woff, c->wlen - c->woff};
	if (c->outlen)
		iov[n++] = (struct iovec){(void *)c->out, c->outlen};
	if (c->tls)
		return ig_tls_write(c->tls, iov[0].iov_base, iov[0].iov_len);
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t w;
	do
		w = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? IG_AGAIN : IG_ERROR;
	return w;
}

/* Asks nghttp2 for frames while the buffer has room for a whole DATA
 * frame, until a frame does not fit in it (then held in out) or there are
 * none: 0, or nghttp2's error. A DATA frame is written into the buffer by
 * h2conn_send_data, which then pauses nghttp2 (mem_send returns 0), so
 * that the room is checked again before the next one. */
static int gather(struct h2conn *c)
{
	c->wlen = c->woff = 0;
	c->wmoved_ns = ig_loop_now(c->loop);
	if (!c->wbuf && !(c->wbuf = malloc(WRITE_CHUNK)))
		return NGHTTP2_ERR_NOMEM;
	while (WRITE_CHUNK - c->wlen >= FRAME_HEADER + GRPC_DATA_MAX) {
		const uint8_t *p;
		size_t before = c->wlen;
		c->depth++;
		ssize_t n = nghttp2_session_mem_send(c->ng, &p);
		c->depth--;
		if (n == 0 && c->wlen > before)
			continue;
		if (n <= 0)
			return (int)n;
		if ((size_t)n > WRITE_CHUNK - c->wlen) {
			c->out = p;
			c->outlen = (size_t)n;
			return 0;
		}
		memcpy(c->wbuf + c->wlen, p, (size_t)n);
		c->wlen += (size_t)n;
	}
	return 0;
}

int h2conn_send_data(struct h2conn *c, const nghttp2_frame *f, const uint8_t *hd,
		     struct grpc_outq *q, size_t len)
{
	if (!c->wbuf || f->data.padlen || WRITE_CHUNK - c->wlen < FRAME_HEADER + len)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	uint8_t *p = c->wbuf + c->wlen;
	memcpy(p, hd, FRAME_HEADER);
	if (grpc_outq_take(q, p + FRAME_HEADER, len) != len)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	c->wlen += FRAME_HEADER + len;
	return NGHTTP2_ERR_PAUSE;
}

/* Writes what nghttp2 has until the socket is full. false: connection
 * failed. */
static bool pump_write(struct h2conn *c)
{
	c->tls_wants_write = false;
	for (;;) {
		if (c->woff == c->wlen && !c->outlen) {
			int rv = gather(c);
			if (rv < 0) {
				h2conn_fail(c, nghttp2_strerror(rv));
				return false;
			}
			if (!c->wlen && !c->outlen) {
				/* Nothing to write: an idle connection holds no
				 * buffer (a malloc from the heap's free lists
				 * costs less than 64 KiB per connection). */
				free(c->wbuf);
				c->wbuf = NULL;
				return true;
			}
		}
		ssize_t w = sock_write(c);
		if (w == IG_AGAIN)
			return true;
		if (w == IG_TLS_WANT_WRITE) {
			c->tls_wants_write = true;
			return true;
		}
		if (w <= 0) {
			h2conn_fail(c, "write failed");
			return false;
		}
		c->wmoved_ns = ig_loop_now(c->loop);
		size_t k = (size_t)w, in_buf = c->wlen - c->woff;
		if (k <= in_buf) {
			c->woff += k;
			continue;
		}
		c->woff = c->wlen;
		c->out += k - in_buf;
		c->outlen -= k - in_buf;
	}
}

/* Reads and feeds nghttp2. false: connection failed or closed. */
static bool pump_read(struct h2conn *c)
{
	uint8_t buf[READ_CHUNK];
	size_t total = 0;
	while (total < READ_BUDGET) {
		ssize_t n = sock_read(c, buf, sizeof buf);
		if (n == IG_AGAIN)
			return true;
		if (n == IG_TLS_WANT_WRITE) {
			c->tls_wants_write = true;
			return true;
		}
		if (n == 0) {
			h2conn_fail(c, "closed by the peer");
			return false;
		}
		if (n < 0) {
			h2conn_fail(c, "read failed");
			return false;
		}
		total += (size_t)n;
		c->rmoved_ns = ig_loop_now(c->loop);
		c->depth++;
		ssize_t rv = nghttp2_session_mem_recv(c->ng, buf, (size_t)n);
		c->depth--;
		if (c->closed)
			return false;
		if (rv < 0) {
			/* nghttp2 queued a GOAWAY for most errors: try to send it. */
			pump_write(c);
			h2conn_fail(c, nghttp2_strerror((int)rv));
			return false;
		}
	}
	/* Out of budget: bytes inside OpenSSL would get no readiness event. */
	if (c->tls && ig_tls_pending(c->tls)) {
		c->read_more = true;
		ig_task_queue(c->loop, &c->flush, on_flush, c);
	}
	return true;
}

/* After reading and writing: the session may be over. */
static void settle(struct h2conn *c)
{
	if (c->closed)
		return;
	if (c->woff == c->wlen && !c->outlen && !nghttp2_session_want_read(c->ng) &&
	    !nghttp2_session_want_write(c->ng)) {
		h2conn_fail(c, "session over");
		return;
	}
	update_events(c);
}

static void on_flush(struct ig_loop *loop, struct ig_task *t)
{
	struct h2conn *c = t->data;
	if (c->closed || !c->ng || c->connecting || c->handshaking)
		return;
	if (c->read_more) {
		c->read_more = false;
		if (!pump_read(c))
			return;
	}
	if (pump_write(c))
		settle(c);
	after_io(c);
}

uint64_t h2conn_write_stalled_ns(const struct h2conn *c)
{
	if (c->closed || (c->woff == c->wlen && !c->outlen && !c->tls_wants_write))
		return 0;
	uint64_t now = ig_loop_now(c->loop);
	return now > c->wmoved_ns ? now - c->wmoved_ns : 0;
}

/* The owner's turn after a round of I/O; what it submits goes out from
 * the flush task. */
static void after_io(struct h2conn *c)
{
	if (!c->closed && c->ng && c->ops->after_io)
		c->ops->after_io(c);
}

void h2conn_kick(struct h2conn *c)
{
	if (!c->closed && c->ng)
		ig_task_queue(c->loop, &c->flush, on_flush, c);
}

static void become_ready(struct h2conn *c)
{
	if (c->ops->on_ready(c) < 0 || !c->ng) {
		h2conn_fail(c, "session setup failed");
		return;
	}
	if (pump_write(c))
		settle(c);
}

static void do_handshake(struct h2conn *c)
{
	int rc = ig_tls_handshake(c->tls);
	if (rc == IG_TLS_WANT_READ || rc == IG_TLS_WANT_WRITE) {
		c->tls_wants_write = rc == IG_TLS_WANT_WRITE;
		update_events(c);
		return;
	}
	if (rc != IG_OK) {
		char why[64];
		snprintf(why, sizeof why, "TLS: %s", ig_tls_conn_error(c->tls));
		h2conn_fail(c, why);
		return;
	}
	if (strcmp(ig_tls_conn_alpn(c->tls), "h2") != 0) {
		h2conn_fail(c, "TLS: ALPN h2 not agreed");
		return;
	}
	c->handshaking = false;
	c->tls_wants_write = false;
	become_ready(c);
}

static void on_connected(struct h2conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char why[64];
		snprintf(why, sizeof why, "connect: %s", strerror(err));
		h2conn_fail(c, why);
		return;
	}
	c->connecting = false;
	if (c->tls) {
		do_handshake(c);
		return;
	}
	become_ready(c);
}

static void on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct h2conn *c = io->data;
	if (c->closed)
		return;
	if (c->connecting) {
		on_connected(c);
		return;
	}
	if (c->handshaking) {
		do_handshake(c);
		return;
	}
	if (!c->ng) {
		become_ready(c);
		return;
	}
	if ((events & (IG_EV_READ | IG_EV_ERROR)) || (c->tls && ig_tls_pending(c->tls))) {
		if (!pump_read(c))
			return;
	}
	if (pump_write(c))
		settle(c);
	after_io(c);
}

int h2conn_start(struct h2conn *c, struct ig_loop *loop, int fd, bool connecting,
		 struct ig_tls_conn *tls, const struct h2conn_ops *ops, void *owner)
{
	c->loop = loop;
	c->ops = ops;
	c->owner = owner;
	c->tls = tls;
	c->connecting = connecting;
	c->handshaking = tls != NULL;
	c->rmoved_ns = ig_loop_now(loop);
	if (ig_io_start(loop, &c->io, fd, IG_EV_WRITE, on_io, c) < 0) {
		c->tls = NULL;
		return -1;
	}
	/* Without a connect to wait for, the first writability event starts
	 * the handshake (a client) or the session (the server's SETTINGS). */
	return 0;
}

void h2conn_free(struct h2conn *c)
{
	if (!c->loop)
		return;
	ig_task_cancel(c->loop, &c->flush);
	if (c->ng)
		nghttp2_session_del(c->ng);
	c->ng = NULL;
	if (c->tls)
		ig_tls_conn_free(c->tls);
	c->tls = NULL;
	free(c->wbuf);
	c->wbuf = NULL;
	c->wlen = c->woff = 0;
	ig_io_stop(c->loop, &c->io);
	close(c->io.fd);
	c->loop = NULL;
	c->closed = true;
}
