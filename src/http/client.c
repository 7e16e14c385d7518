#include "http/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RESP_HEAD (64 * 1024)
#define MAX_RESP_HEADERS 100
#define READ_CHUNK 65536

enum client_state {
	CL_CONNECTING,
	CL_READY,   /* connected, no request */
	CL_SENDING, /* request bytes going out (the response may already start) */
	CL_HEAD,
	CL_BODY,
	CL_PARKED,
	CL_DEAD,
};

struct ig_http_client {
	struct ig_loop *loop;
	struct ig_io io;
	enum client_state state;
	bool connected, sent_all, paused, reused, got_byte, is_head, keep_alive, in_cb;
	bool close_requested;
	struct ig_buf out;
	size_t out_off;
	struct ig_buf in;
	struct ig_http_header hdrs[MAX_RESP_HEADERS];
	struct ig_http_response res;
	struct ig_http_framing framing;
	struct ig_chunked_decoder chunked;
	uint64_t body_left;
	const struct ig_http_client_cbs *cbs;
	void *ud;
	int requests;
};

static void client_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events);

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
	ig_io_stop(c->loop, &c->io);
	close(c->io.fd);
	ig_buf_free(&c->in);
	ig_buf_free(&c->out);
	free(c);
}

struct ig_http_client *ig_http_client_connect(struct ig_loop *loop, const struct sockaddr *addr,
					      socklen_t addrlen)
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
	ig_buf_init(&c->in, 0);
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
		return NULL;
	}
	return c;
}

static void fail(struct ig_http_client *c, enum ig_client_error e, int err)
{
	c->state = CL_DEAD;
	ig_io_set(c->loop, &c->io, 0);
	if (c->cbs && c->cbs->on_error)
		c->cbs->on_error(c, e, err, c->ud);
	client_free(c);
}

static enum ig_client_error early_or_broken(struct ig_http_client *c)
{
	return c->got_byte ? IG_CLIENT_BROKEN : IG_CLIENT_EARLY;
}

static void update_events(struct ig_http_client *c)
{
	unsigned ev = 0;
	if (!c->connected)
		ev = IG_EV_WRITE;
	else {
		if (c->out_off < c->out.len)
			ev |= IG_EV_WRITE;
		if ((c->state == CL_SENDING || c->state == CL_HEAD || c->state == CL_BODY) &&
		    !c->paused)
			ev |= IG_EV_READ;
		if (c->state == CL_PARKED)
			ev |= IG_EV_READ;
	}
	ig_io_set(c->loop, &c->io, ev);
}

static int flush(struct ig_http_client *c)
{
	int rc = ig_send_buf(c->io.fd, &c->out, &c->out_off);
	if (rc < 0)
		return rc;
	if (rc == 1)
		c->sent_all = true;
	return 0;
}

/* The response ended: hand the connection back. */
static void finish(struct ig_http_client *c)
{
	/* Events stay as they are: the owner parks (read), reuses (read) or
	 * closes the connection next, so changing them now would cost a
	 * syscall for nothing. */
	c->state = CL_READY;
	c->cbs->on_done(c, c->ud);
}

/* Feeds buffered input through the parser. Returns -1 if the client is
 * gone (failed or handed back), 0 to continue reading. */
static int process(struct ig_http_client *c)
{
	if (c->state == CL_SENDING || c->state == CL_HEAD) {
		int n = ig_http_parse_response(c->in.ptr, c->in.len, &c->res, c->hdrs,
					       MAX_RESP_HEADERS);
		if (n == IG_HTTP_INCOMPLETE) {
			if (c->in.len > MAX_RESP_HEAD) {
				fail(c, IG_CLIENT_PROTOCOL, EMSGSIZE);
				return -1;
			}
			return 0;
		}
		if (n < 0) {
			fail(c, IG_CLIENT_PROTOCOL, EPROTO);
			return -1;
		}
		if (c->res.status >= 100 && c->res.status < 200) {
			/* Interim responses (100 Continue) are dropped. */
			ig_buf_consume(&c->in, (size_t)n);
			return c->in.len ? process(c) : 0;
		}
		if (ig_http_response_framing(&c->res, c->is_head ? IG_STR("HEAD") : IG_STR("GET"),
					     &c->framing) < 0) {
			fail(c, IG_CLIENT_PROTOCOL, EPROTO);
			return -1;
		}
		c->keep_alive = c->framing.keep_alive;
		c->body_left = c->framing.length;
		memset(&c->chunked, 0, sizeof c->chunked);
		c->state = CL_BODY;
		c->in_cb = true;
		int rc = c->cbs->on_head(c, &c->res, c->ud);
		c->in_cb = false;
		/* The head's slices point into `in`; drop it only now. */
		ig_buf_consume(&c->in, (size_t)n);
		if (rc != 0 || c->close_requested) {
			c->state = CL_DEAD;
			client_free(c);
			return -1;
		}
		if (c->framing.kind == IG_BODY_NONE ||
		    (c->framing.kind == IG_BODY_LENGTH && c->framing.length == 0)) {
			if (!c->sent_all)
				c->keep_alive = false;
			finish(c);
			return -1;
		}
	}
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
			if (rest == IG_HTTP_INVALID) {
				fail(c, IG_CLIENT_PROTOCOL, EPROTO);
				return -1;
			}
			done = rest >= 0;
			if (rest < 0)
				rest = 0;
		}
		c->in_cb = true;
		int prc = len ? c->cbs->on_body(c, c->in.ptr, len, c->ud) : 0;
		c->in_cb = false;
		if (c->close_requested) {
			c->state = CL_DEAD;
			client_free(c);
			return -1;
		}
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
			if (c->in.len || !c->sent_all)
				c->keep_alive = false;
			finish(c);
			return -1;
		}
	}
	return 0;
}

/* Returns -1 when the client is gone or handed back, else 0. */
static int do_read(struct ig_http_client *c)
{
	for (int rounds = 0; rounds < 16 && !c->paused; rounds++) {
		if (ig_buf_reserve(&c->in, READ_CHUNK) < 0) {
			fail(c, IG_CLIENT_PROTOCOL, ENOMEM);
			return -1;
		}
		ssize_t n = recv(c->io.fd, c->in.ptr + c->in.len, READ_CHUNK, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			fail(c, early_or_broken(c), errno);
			return -1;
		}
		if (n == 0) {
			if (c->state == CL_BODY && c->framing.kind == IG_BODY_UNTIL_CLOSE) {
				c->keep_alive = false;
				finish(c);
				return -1;
			}
			fail(c, early_or_broken(c), ECONNRESET);
			return -1;
		}
		c->got_byte = true;
		c->in.len += (size_t)n;
		if (process(c) < 0)
			return -1;
	}
	return 0;
}

static void client_on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_http_client *c = io->data;
	if (c->state == CL_PARKED) {
		/* Anything on an idle connection means it is over. */
		c->state = CL_DEAD;
		ig_io_set(loop, &c->io, 0);
		return;
	}
	if (!c->connected) {
		int err = 0;
		socklen_t el = sizeof err;
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			fail(c, IG_CLIENT_CONNECT, err);
			return;
		}
		c->connected = true;
		if (c->state == CL_CONNECTING)
			c->state = CL_READY;
	}
	if (c->out_off < c->out.len) {
		int rc = flush(c);
		if (rc < 0) {
			fail(c, early_or_broken(c), -rc);
			return;
		}
	}
	if ((events & IG_EV_READ) && c->state != CL_READY) {
		if (do_read(c) < 0)
			return;
	}
	if (c->state != CL_DEAD)
		update_events(c);
}

int ig_http_client_send(struct ig_http_client *c, const void *req, size_t len, bool is_head,
			const struct ig_http_client_cbs *cbs, void *ud)
{
	struct ig_str part = {req, len};
	return ig_http_client_sendv(c, &part, 1, is_head, cbs, ud);
}

int ig_http_client_sendv(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			 bool is_head, const struct ig_http_client_cbs *cbs, void *ud)
{
	if (c->state != CL_READY && c->state != CL_CONNECTING && c->state != CL_PARKED)
		return -1;
	c->reused = c->requests++ > 0;
	c->cbs = cbs;
	c->ud = ud;
	c->is_head = is_head;
	c->got_byte = false;
	c->sent_all = false;
	c->paused = false;
	c->close_requested = false;
	ig_buf_reset(&c->in);
	size_t total = 0;
	for (size_t i = 0; i < nparts; i++)
		total += parts[i].len;
	if (ig_buf_reserve(&c->out, total) < 0)
		return -1;
	for (size_t i = 0; i < nparts; i++)
		ig_buf_append_str(&c->out, parts[i]);
	bool was_connecting = !c->connected;
	c->state = CL_SENDING;
	/* Write at once when connected (the usual case); a failure here shows
	 * up again on the next write attempt from the loop, so callbacks never
	 * run inside this call. */
	if (!was_connecting)
		(void)flush(c);
	update_events(c);
	return 0;
}

void ig_http_client_pause(struct ig_http_client *c, bool paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	if (!paused && c->in.len && !c->in_cb) {
		if (process(c) < 0)
			return;
	}
	if (!c->in_cb)
		update_events(c);
}

bool ig_http_client_reusable(const struct ig_http_client *c)
{
	return c->state == CL_READY && c->keep_alive && c->in.len == 0;
}

bool ig_http_client_was_reused(const struct ig_http_client *c)
{
	return c->reused;
}

void ig_http_client_park(struct ig_http_client *c)
{
	c->state = CL_PARKED;
	c->cbs = NULL;
	c->ud = NULL;
	update_events(c);
}

bool ig_http_client_alive(const struct ig_http_client *c)
{
	return c->state == CL_PARKED;
}

void ig_http_client_close(struct ig_http_client *c)
{
	if (c->in_cb) {
		/* Inside one of our callbacks: free on the way out. */
		c->close_requested = true;
		return;
	}
	client_free(c);
}
