/* The gRPC client channel: one HTTP/2 connection to one target at a time,
 * made when a call needs it, with calls waiting until its SETTINGS came.
 *
 * Failures reach a call's on_done from the loop only: ig_grpc_call_start
 * queues the channel's task, which connects, submits the waiting calls or
 * fails them. A connection that fails before it is ready starts a back-off
 * during which new calls fail at once; a connection lost after it was
 * ready fails its calls and the next call connects again. A connection
 * the server sends GOAWAY on is draining: its calls go on there, and
 * new calls get a new connection.
 *
 * Lifetimes. A user callback may start calls, cancel calls and free the
 * channel: the channel counts the callbacks on the stack (in_cb), and a
 * free asked for inside one is done by a task once they have returned; a
 * call cancelled from its own on_message is freed once the message
 * delivery has returned. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "grpc/grpc_int.h"
#include "http/tls.h"

#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)
#define MAX_BACKOFF_MS 5000
/* How long a PING sent to a connection that went silent may wait for its
 * ACK before the connection is taken for dead (see probe). */
#define PROBE_MS 1000

struct cconn {
	struct h2conn h;
	struct ig_grpc_channel *ch;
	struct ig_timer timer; /* connect timeout, then the PING probe's */
	struct ig_task reap;
	bool ready, goaway, probing;
	struct cconn *next_draining; /* in ch->draining */
};

struct ig_grpc_call {
	struct ig_grpc_channel *ch;
	struct ig_grpc_call *prev, *next;
	struct cconn *conn; /* once submitted */
	int32_t id;
	uint64_t serial;
	uint64_t submitted_ns; /* ig_loop_now's clock */
	char *path;
	struct ig_buf meta; /* "name\0value\0" pairs */
	size_t nmeta;
	uint64_t deadline_ms, deadline_ns;
	struct ig_timer timer;
	struct ig_grpc_call_handlers h;
	void *data;
	struct grpc_outq out;
	struct grpc_reasm in;
	int http_status, grpc_status; /* grpc_status -1: none yet */
	char *grpc_message;
	size_t hdr_bytes;
	int in_cb;
	bool half_closed, done;
	int end_status; /* an end decided inside a call of the user's */
	const char *end_msg;
};

struct ig_grpc_channel {
	struct ig_loop *loop;
	struct ig_grpc_channel_config cfg;
	char *host, *authority, *sni, *ca_file;
	struct cconn *conn;
	/* Connections that got a GOAWAY after they were ready: they end the
	 * calls they carry, and take no new ones. */
	struct cconn *draining;
	struct ig_grpc_call *calls;
	struct ig_task kick, free_task;
	nghttp2_session_callbacks *cbs;
	uint64_t serial;
	uint64_t backoff_cur_ms, backoff_until_ns;
	int in_cb;
	bool freeing;
};

static void channel_destroy(struct ig_grpc_channel *ch);
static void on_kick(struct ig_loop *loop, struct ig_task *t);
static void kick(struct ig_grpc_channel *ch);

/* ---- calls ---- */

static void call_free(struct ig_grpc_call *c)
{
	struct ig_grpc_channel *ch = c->ch;
	ig_timer_stop(ch->loop, &c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		ch->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->path);
	ig_buf_free(&c->meta);
	grpc_outq_free(&c->out);
	grpc_reasm_free(&c->in);
	free(c->grpc_message);
	free(c);
}

static void on_probe_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct cconn *k = t->data;
	h2conn_fail(&k->h, "no answer to a PING");
}

/* A call given up on whose connection has sent nothing since the call
 * began: the peer may be gone without a word (a picker stopped, a node
 * lost, a connection a middlebox dropped), and the kernel would take many
 * minutes to say so, every call on it timing out meanwhile. A PING is
 * sent; without its ACK within PROBE_MS the connection is closed, so the
 * next call connects again (what gRPC's keepalive does, asked for only
 * when a call suggests it). */
static void probe(struct cconn *k, const struct ig_grpc_call *c)
{
	if (!k->ready || k->probing || k->h.closed || !k->h.ng || k->h.rmoved_ns >= c->submitted_ns)
		return;
	if (nghttp2_submit_ping(k->h.ng, NGHTTP2_FLAG_NONE, NULL) != 0)
		return;
	k->probing = true;
	ig_timer_start(k->h.loop, &k->timer, PROBE_MS, on_probe_timeout, k);
	h2conn_kick(&k->h);
}

/* Detaches the call from its stream; reset: RST_STREAM(CANCEL) it. */
static void call_detach(struct ig_grpc_call *c, bool reset)
{
	struct cconn *k = c->conn;
	if (!k || !c->id || !k->h.ng)
		return;
	nghttp2_session_set_stream_user_data(k->h.ng, c->id, NULL);
	if (reset && !k->h.closed) {
		nghttp2_submit_rst_stream(k->h.ng, NGHTTP2_FLAG_NONE, c->id, NGHTTP2_CANCEL);
		h2conn_kick(&k->h);
		probe(k, c);
	}
	c->conn = NULL;
}

/* The call's end: on_done, then its memory. */
static void call_end(struct ig_grpc_call *c, int status, const char *message, bool reset)
{
	if (c->done)
		return;
	struct ig_grpc_channel *ch = c->ch;
	c->done = true;
	ig_timer_stop(ch->loop, &c->timer);
	call_detach(c, reset);
	c->in_cb++;
	ch->in_cb++;
	if (c->h.on_done)
		c->h.on_done(c, status, message ? message : "", c->data);
	ch->in_cb--;
	c->in_cb--;
	call_free(c);
}

static void on_deadline(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_grpc_call *c = t->data;
	if (c->end_msg)
		call_end(c, c->end_status, c->end_msg, false);
	else
		call_end(c, IG_GRPC_DEADLINE_EXCEEDED, "deadline exceeded", true);
}

/* Ends the call from the loop, not from inside the user's call. */
static void end_later(struct ig_grpc_call *c, int status, const char *msg)
{
	call_detach(c, true);
	c->end_status = status;
	c->end_msg = msg;
	ig_timer_start(c->ch->loop, &c->timer, 0, on_deadline, c);
}

/* A connection attempt failed: no new one before the channel's back-off,
 * doubled at each failure in a row (up to MAX_BACKOFF_MS). */
static void back_off(struct ig_grpc_channel *ch)
{
	ch->backoff_cur_ms =
	    ig_backoff_next(ch->backoff_cur_ms, ch->cfg.backoff_ms, MAX_BACKOFF_MS);
	ch->backoff_until_ns = ig_now_ns() + ch->backoff_cur_ms * 1000000u;
}

/* Ends, with status, the calls made before now that match: on conn k, or
 * (k NULL) not yet submitted. Calls started from their callbacks are left. */
static void fail_calls(struct ig_grpc_channel *ch, struct cconn *k, int status, const char *msg)
{
	uint64_t before = ch->serial;
	for (;;) {
		struct ig_grpc_call *c = ch->calls;
		while (c && (c->done || c->serial >= before || c->conn != k || (!k && c->id)))
			c = c->next;
		if (!c)
			return;
		c->conn = NULL; /* the session is going: no RST_STREAM */
		call_end(c, status, msg, false);
	}
}

/* ---- request side ---- */

/* The next DATA frame's length; its bytes are taken from the queue by
 * send_data (h2conn_send_data), not copied into nghttp2's buffer. */
static ssize_t read_request(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
			    uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct ig_grpc_call *c = src->ptr;
	size_t queued = grpc_outq_len(&c->out);
	size_t n = queued < length ? queued : length;
	if (n > GRPC_DATA_MAX)
		n = GRPC_DATA_MAX;
	if (n == queued && c->half_closed)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	else if (!n)
		return NGHTTP2_ERR_DEFERRED;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	return (ssize_t)n;
}

static int send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *hd, size_t len,
		     nghttp2_data_source *src, void *ud)
{
	struct cconn *k = ud;
	struct ig_grpc_call *c = src->ptr;
	return h2conn_send_data(&k->h, f, hd, &c->out, len);
}

#define NVS(n, v, vl)                                                                              \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), strlen(n), (vl), NGHTTP2_NV_FLAG_NONE              \
	}

static void call_submit(struct ig_grpc_call *c, struct cconn *k)
{
	struct ig_grpc_channel *ch = c->ch;
	size_t n = 0;
	nghttp2_nv *nv = calloc(8 + c->nmeta, sizeof *nv);
	if (!nv) {
		call_end(c, IG_GRPC_INTERNAL, "out of memory", false);
		return;
	}
	const char *scheme = ch->cfg.tls ? "https" : "http";
	char timeout[24];
	nv[n++] = (nghttp2_nv)NVS(":method", "POST", 4);
	nv[n++] = (nghttp2_nv)NVS(":scheme", scheme, strlen(scheme));
	nv[n++] = (nghttp2_nv)NVS(":path", c->path, strlen(c->path));
	nv[n++] = (nghttp2_nv)NVS(":authority", ch->authority, strlen(ch->authority));
	nv[n++] = (nghttp2_nv)NVS("te", "trailers", 8);
	nv[n++] = (nghttp2_nv)NVS("content-type", "application/grpc", 16);
	nv[n++] = (nghttp2_nv)NVS("user-agent", "infergate-grpc", 14);
	if (c->deadline_ns) {
		uint64_t now = ig_now_ns();
		uint64_t left =
		    c->deadline_ns > now ? (c->deadline_ns - now + 999999) / 1000000 : 1;
		grpc_timeout_format(left, timeout, sizeof timeout);
		nv[n++] = (nghttp2_nv)NVS("grpc-timeout", timeout, strlen(timeout));
	}
	const char *p = c->meta.ptr;
	for (size_t i = 0; i < c->nmeta; i++) {
		const char *v = p + strlen(p) + 1;
		nv[n++] = (nghttp2_nv)NVS(p, v, strlen(v));
		p = v + strlen(v) + 1;
	}
	nghttp2_data_provider prd = {.source.ptr = c, .read_callback = read_request};
	int32_t id = nghttp2_submit_request(k->h.ng, NULL, nv, n, &prd, c);
	free(nv);
	if (id < 0) {
		call_end(c, IG_GRPC_UNAVAILABLE, nghttp2_strerror(id), false);
		return;
	}
	c->id = id;
	c->conn = k;
	c->submitted_ns = ig_loop_now(ch->loop);
	c->http_status = 0;
	c->grpc_status = -1;
}

static void submit_waiting(struct ig_grpc_channel *ch)
{
	struct cconn *k = ch->conn;
	for (struct ig_grpc_call *c = ch->calls; c; c = c->next)
		if (!c->done && !c->id && !c->end_msg)
			call_submit(c, k);
	h2conn_kick(&k->h);
}

/* ---- response side ---- */

static struct ig_grpc_call *call_of(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct ig_grpc_call *c = call_of(ng, f->hd.stream_id);
	if (!c)
		return 0;
	c->hdr_bytes += namelen + valuelen + 32;
	if (c->hdr_bytes > MAX_RESPONSE_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int st = 0;
		for (size_t i = 0; i < valuelen && i < 3; i++)
			st = st * 10 + (value[i] - '0');
		c->http_status = st;
	} else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int st = 0;
		for (size_t i = 0; i < valuelen && i < 9 && value[i] >= '0' && value[i] <= '9'; i++)
			st = st * 10 + (value[i] - '0');
		c->grpc_status = valuelen ? st : IG_GRPC_UNKNOWN;
	} else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		free(c->grpc_message);
		c->grpc_message = malloc(valuelen + 1);
		if (c->grpc_message)
			grpc_percent_decode(value, valuelen, c->grpc_message, valuelen + 1);
	}
	return 0;
}

static bool on_response_message(void *arg, const uint8_t *msg, size_t len)
{
	struct ig_grpc_call *c = arg;
	c->in_cb++;
	c->ch->in_cb++;
	if (c->h.on_message)
		c->h.on_message(c, msg, len, c->data);
	c->ch->in_cb--;
	c->in_cb--;
	return !c->done;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *ud)
{
	struct ig_grpc_call *c = call_of(ng, id);
	if (!c || c->http_status != 200)
		return 0;
	int rc = grpc_reasm_feed(&c->in, data, len, on_response_message, c);
	if (c->done) {
		call_free(c); /* cancelled from on_message */
		return 0;
	}
	if (rc == IG_GRPC_RESOURCE_EXHAUSTED)
		call_end(c, rc, "response message larger than the channel's limit", true);
	else if (rc == IG_GRPC_INTERNAL)
		call_end(c, rc, "compressed response message without grpc-encoding", true);
	return 0;
}

static int status_of_reset(uint32_t code)
{
	switch (code) {
	case NGHTTP2_REFUSED_STREAM:
		return IG_GRPC_UNAVAILABLE;
	case NGHTTP2_CANCEL:
		return IG_GRPC_CANCELLED;
	case NGHTTP2_ENHANCE_YOUR_CALM:
		return IG_GRPC_RESOURCE_EXHAUSTED;
	default:
		return IG_GRPC_INTERNAL;
	}
}

/* The call's status at the end of the server's side: its trailers, else
 * what the stream's end says (code: the RST_STREAM's, or NO_ERROR). */
static void end_by_server(struct ig_grpc_call *c, uint32_t code, bool reset)
{
	char why[96];
	if (c->grpc_status >= 0) {
		bool cut = c->grpc_status == IG_GRPC_OK && grpc_reasm_partial(&c->in);
		call_end(c, cut ? IG_GRPC_INTERNAL : c->grpc_status,
			 cut ? "response ended inside a message" : c->grpc_message, reset);
	} else if (c->http_status && c->http_status != 200) {
		snprintf(why, sizeof why, "HTTP status %d", c->http_status);
		call_end(c, grpc_status_from_http(c->http_status), why, reset);
	} else if (code != NGHTTP2_NO_ERROR) {
		snprintf(why, sizeof why, "stream reset by the server: %s",
			 nghttp2_http2_strerror(code));
		call_end(c, status_of_reset(code), why, reset);
	} else {
		call_end(c, IG_GRPC_UNKNOWN, "response without grpc-status", reset);
	}
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct ig_grpc_call *c = call_of(ng, id);
	if (!c)
		return 0;
	c->conn = NULL; /* closed already: nothing to reset */
	end_by_server(c, code, false);
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct cconn *k = ud;
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		/* The server's side is over (trailers, Trailers-Only): so is
		 * the call, as for any gRPC client, even while ours is open (a
		 * bidi stream the caller has not half-closed). Waiting for the
		 * stream to close would wait for a RST_STREAM the server need
		 * not send (PROTOCOL-HTTP2 only says it should), so a picker's
		 * UNAVAILABLE would hang until the caller's own timeout. Our
		 * side is reset (CANCEL) unless it is closed already. */
		struct ig_grpc_call *c = call_of(ng, f->hd.stream_id);
		if (c && !c->done)
			end_by_server(c, NGHTTP2_NO_ERROR,
				      !nghttp2_session_get_stream_local_close(ng, f->hd.stream_id));
		return 0;
	}
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && !k->ready) {
		k->ready = true;
		k->ch->backoff_cur_ms = 0;
		ig_timer_stop(k->h.loop, &k->timer);
		submit_waiting(k->ch);
	} else if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && k->probing) {
		k->probing = false;
		ig_timer_stop(k->h.loop, &k->timer);
	} else if (f->hd.type == NGHTTP2_GOAWAY && !k->goaway) {
		/* Streams past the last one come back refused (UNAVAILABLE).
		 * Those below it go on here (a picker draining: the GOAWAY of
		 * 2^31-1 comes first, then the last stream it took); new calls
		 * go to a new connection at once, as Envoy's connection pool
		 * and gRPC's clients do, rather than wait for this one to end,
		 * which takes as long as its longest call. */
		k->goaway = true;
		struct ig_grpc_channel *ch = k->ch;
		if (k->ready && ch->conn == k) {
			ch->conn = NULL;
			k->next_draining = ch->draining;
			ch->draining = k;
			kick(ch);
		}
	}
	return 0;
}

/* ---- connections ---- */

static void kick(struct ig_grpc_channel *ch)
{
	ig_task_queue(ch->loop, &ch->kick, on_kick, ch);
}

static void reap(struct ig_loop *loop, struct ig_task *t)
{
	struct cconn *k = t->data;
	ig_timer_stop(loop, &k->timer);
	h2conn_free(&k->h);
	free(k);
}

static void on_conn_close(struct h2conn *h, const char *why)
{
	struct cconn *k = h->owner;
	struct ig_grpc_channel *ch = k->ch;
	ig_timer_stop(ch->loop, &k->timer);
	if (ch->conn == k)
		ch->conn = NULL;
	for (struct cconn **d = &ch->draining; *d; d = &(*d)->next_draining)
		if (*d == k) {
			*d = k->next_draining;
			break;
		}
	ig_task_queue(ch->loop, &k->reap, reap, k);
	char msg[128];
	if (!k->ready) {
		back_off(ch);
		snprintf(msg, sizeof msg, "cannot connect to %s:%d: %s", ch->host, ch->cfg.port,
			 why);
		fail_calls(ch, NULL, IG_GRPC_UNAVAILABLE, msg);
		return;
	}
	snprintf(msg, sizeof msg, "connection to %s:%d lost: %s", ch->host, ch->cfg.port, why);
	fail_calls(ch, k, IG_GRPC_UNAVAILABLE, msg);
	kick(ch); /* calls that waited behind a GOAWAY get a new connection */
}

static int on_conn_ready(struct h2conn *h)
{
	struct cconn *k = h->owner;
	if (nghttp2_session_client_new(&h->ng, k->ch->cbs, k) != 0)
		return -1;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_RESPONSE_HEADER_BYTES},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, IG_GRPC_STREAM_WINDOW},
	};
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, 3) != 0)
		return -1;
	return nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0,
						     IG_GRPC_CONN_WINDOW) == 0
		   ? 0
		   : -1;
}

static const struct h2conn_ops client_ops = {on_conn_ready, on_conn_close, NULL};

static void on_connect_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct cconn *k = t->data;
	h2conn_fail(&k->h, "connect timeout");
}

/* A socket connecting to the target, or -errno. */
static int open_socket(struct ig_grpc_channel *ch, bool *connecting)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char port[8];
	snprintf(port, sizeof port, "%d", ch->cfg.port);
	/* A name is resolved here, blocking the loop: targets are IPs or
	 * names /etc/hosts or a nearby resolver answers at once. */
	if (getaddrinfo(ch->host, port, &hints, &ai) != 0 || !ai)
		return -EHOSTUNREACH;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		freeaddrinfo(ai);
		return -e;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	int e = errno;
	freeaddrinfo(ai);
	if (rc < 0 && e != EINPROGRESS) {
		close(fd);
		return -e;
	}
	*connecting = rc < 0;
	return fd;
}

/* Starts a connection; false when it failed at once (calls failed). */
static void connect_start(struct ig_grpc_channel *ch)
{
	char why[160] = "";
	struct cconn *k = calloc(1, sizeof *k);
	bool connecting = false;
	int fd = k ? open_socket(ch, &connecting) : -ENOMEM;
	struct ig_tls_conn *tls = NULL;
	if (fd < 0) {
		snprintf(why, sizeof why, "%s", strerror(-fd));
		goto fail;
	}
	if (ch->cfg.tls) {
		tls = ig_tls_client_new(fd, ch->sni ? ch->sni : ch->host, "h2", ch->cfg.tls_verify,
					ch->ca_file, why, sizeof why);
		if (!tls)
			goto fail_fd;
	}
	k->ch = ch;
	if (h2conn_start(&k->h, ch->loop, fd, connecting, tls, &client_ops, k) < 0) {
		snprintf(why, sizeof why, "out of memory");
		ig_tls_conn_free(tls);
		goto fail_fd;
	}
	ch->conn = k;
	ig_timer_start(ch->loop, &k->timer, ch->cfg.connect_timeout_ms, on_connect_timeout, k);
	return;
fail_fd:
	close(fd);
fail:
	free(k);
	back_off(ch);
	char msg[256];
	snprintf(msg, sizeof msg, "cannot connect to %s:%d: %s", ch->host, ch->cfg.port, why);
	fail_calls(ch, NULL, IG_GRPC_UNAVAILABLE, msg);
}

static void on_kick(struct ig_loop *loop, struct ig_task *t)
{
	struct ig_grpc_channel *ch = t->data;
	if (ch->freeing)
		return;
	if (ch->conn) {
		if (ch->conn->ready && !ch->conn->goaway)
			submit_waiting(ch);
		return;
	}
	bool waiting = false;
	for (struct ig_grpc_call *c = ch->calls; c && !waiting; c = c->next)
		waiting = !c->done && !c->id;
	if (!waiting)
		return;
	if (ig_now_ns() < ch->backoff_until_ns) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s:%d unreachable a moment ago (backing off)", ch->host,
			 ch->cfg.port);
		fail_calls(ch, NULL, IG_GRPC_UNAVAILABLE, msg);
		return;
	}
	connect_start(ch);
}

/* ---- public ---- */

static int make_callbacks(struct ig_grpc_channel *ch)
{
	if (nghttp2_session_callbacks_new(&ch->cbs) != 0)
		return -1;
	nghttp2_session_callbacks_set_on_header_callback(ch->cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(ch->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ch->cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(ch->cbs, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(ch->cbs, send_data);
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct ig_grpc_channel *ig_grpc_channel_new(struct ig_loop *loop,
					    const struct ig_grpc_channel_config *cfg)
{
	struct ig_grpc_channel *ch = calloc(1, sizeof *ch);
	if (!ch)
		return NULL;
	ch->loop = loop;
	ch->cfg = *cfg;
	ch->kick.fn = on_kick;
	if (!ch->cfg.connect_timeout_ms)
		ch->cfg.connect_timeout_ms = 1000;
	if (!ch->cfg.max_message_bytes)
		ch->cfg.max_message_bytes = GRPC_DEFAULT_MAX_MESSAGE;
	if (!ch->cfg.backoff_ms)
		ch->cfg.backoff_ms = 100;
	ch->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
	ch->sni = dup_or_null(cfg->sni);
	ch->ca_file = dup_or_null(cfg->ca_file);
	if (cfg->authority) {
		ch->authority = strdup(cfg->authority);
	} else if (ch->host) {
		size_t n = strlen(ch->host) + 16;
		ch->authority = malloc(n);
		if (ch->authority)
			snprintf(ch->authority, n, strchr(ch->host, ':') ? "[%s]:%d" : "%s:%d",
				 ch->host, cfg->port);
	}
	ch->cfg.host = ch->host;
	ch->cfg.authority = ch->authority;
	ch->cfg.sni = ch->sni;
	ch->cfg.ca_file = ch->ca_file;
	if (!ch->host || !ch->authority || (cfg->sni && !ch->sni) ||
	    (cfg->ca_file && !ch->ca_file) || make_callbacks(ch) < 0) {
		channel_destroy(ch);
		return NULL;
	}
	return ch;
}

static void channel_destroy(struct ig_grpc_channel *ch)
{
	ig_task_cancel(ch->loop, &ch->kick);
	ig_task_cancel(ch->loop, &ch->free_task);
	while (ch->calls) {
		ch->calls->done = true;
		call_free(ch->calls);
	}
	while (ch->draining) {
		struct cconn *k = ch->draining;
		ch->draining = k->next_draining;
		ig_task_cancel(ch->loop, &k->reap);
		k->reap.data = k;
		reap(ch->loop, &k->reap);
	}
	if (ch->conn) {
		ig_task_cancel(ch->loop, &ch->conn->reap);
		ch->conn->reap.data = ch->conn;
		reap(ch->loop, &ch->conn->reap);
	}
	if (ch->cbs)
		nghttp2_session_callbacks_del(ch->cbs);
	free(ch->host);
	free(ch->authority);
	free(ch->sni);
	free(ch->ca_file);
	free(ch);
}

static void on_free_task(struct ig_loop *loop, struct ig_task *t)
{
	channel_destroy(t->data);
}

void ig_grpc_channel_free(struct ig_grpc_channel *ch)
{
	if (!ch || ch->freeing)
		return;
	ch->freeing = true;
	if (ch->in_cb) {
		/* Inside one of our callbacks: the stack still uses the channel
		 * and its connection. Calls are silenced now, memory goes later. */
		for (struct ig_grpc_call *c = ch->calls; c; c = c->next) {
			c->done = true;
			call_detach(c, false);
		}
		if (ch->conn && !ch->conn->h.closed) {
			ch->conn->h.closed = true;
			ig_io_set(ch->loop, &ch->conn->h.io, 0);
		}
		for (struct cconn *k = ch->draining; k; k = k->next_draining)
			if (!k->h.closed) {
				k->h.closed = true;
				ig_io_set(ch->loop, &k->h.io, 0);
			}
		ig_task_queue(ch->loop, &ch->free_task, on_free_task, ch);
		return;
	}
	channel_destroy(ch);
}

bool ig_grpc_channel_ready(const struct ig_grpc_channel *ch)
{
	return ch->conn && ch->conn->ready && !ch->conn->goaway;
}

struct ig_grpc_call *ig_grpc_call_start(struct ig_grpc_channel *ch, const char *path,
					uint64_t deadline_ms, const char *const *headers, size_t n,
					const struct ig_grpc_call_handlers *h, void *data)
{
	struct ig_grpc_call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->ch = ch;
	c->path = strdup(path);
	c->h = *h;
	c->data = data;
	c->grpc_status = -1;
	c->in.max = ch->cfg.max_message_bytes;
	c->out.max = ch->cfg.max_message_bytes + GRPC_FRAME_HEADER + (1u << 20);
	bool ok = c->path != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		ok = ig_buf_append_cstr(&c->meta, headers[2 * i]) == 0 &&
		     ig_buf_append(&c->meta, "", 1) == 0 &&
		     ig_buf_append_cstr(&c->meta, headers[2 * i + 1]) == 0 &&
		     ig_buf_append(&c->meta, "", 1) == 0;
		c->nmeta++;
	}
	if (!ok) {
		free(c->path);
		ig_buf_free(&c->meta);
		free(c);
		return NULL;
	}
	c->serial = ch->serial++;
	c->next = ch->calls;
	if (ch->calls)
		ch->calls->prev = c;
	ch->calls = c;
	if (deadline_ms) {
		c->deadline_ms = deadline_ms;
		c->deadline_ns = ig_now_ns() + deadline_ms * 1000000u;
		ig_timer_start(ch->loop, &c->timer, deadline_ms, on_deadline, c);
	}
	if (!ch->freeing)
		ig_task_queue(ch->loop, &ch->kick, on_kick, ch);
	return c;
}

int ig_grpc_call_send(struct ig_grpc_call *c, const uint8_t *msg, size_t len)
{
	const struct ig_str part = {(const char *)msg, len};
	return ig_grpc_call_sendv(c, &part, 1);
}

int ig_grpc_call_sendv(struct ig_grpc_call *c, const struct ig_str *parts, size_t n)
{
	if (c->done || c->half_closed)
		return -1;
	if (c->end_msg)
		return -1;
	if (grpc_outq_pushv(&c->out, parts, n) < 0) {
		end_later(c, IG_GRPC_RESOURCE_EXHAUSTED, "request queue over its ceiling");
		return -1;
	}
	if (c->conn && c->id && c->conn->h.ng) {
		nghttp2_session_resume_data(c->conn->h.ng, c->id);
		h2conn_kick(&c->conn->h);
	}
	return 0;
}

void ig_grpc_call_close_send(struct ig_grpc_call *c)
{
	if (c->done || c->half_closed)
		return;
	c->half_closed = true;
	if (c->conn && c->id && c->conn->h.ng) {
		nghttp2_session_resume_data(c->conn->h.ng, c->id);
		h2conn_kick(&c->conn->h);
	}
}

void ig_grpc_call_cancel(struct ig_grpc_call *c)
{
	if (c->done)
		return;
	c->done = true;
	ig_timer_stop(c->ch->loop, &c->timer);
	call_detach(c, true);
	if (!c->in_cb)
		call_free(c);
}
