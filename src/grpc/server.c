/* The gRPC server: accepts HTTP/2 connections (h2c prior knowledge or TLS
 * with ALPN h2) on a listening socket, checks each request's :method,
 * content-type and :path, and hands whole messages to the method's
 * handlers; answers go out as response HEADERS, DATA and trailers (or
 * Trailers-Only when nothing was sent), followed by RST_STREAM(NO_ERROR)
 * when the client had not half-closed (PROTOCOL-HTTP2 "early server
 * closure").
 *
 * Lifetimes. A stream's struct lives from its request HEADERS until
 * nghttp2 closes it (on_stream_close), or until its connection goes. A
 * connection that fails is torn down in two steps: its streams end at once
 * (on_end(reset=true)), and its memory goes from a task, because the
 * failure is found deep inside the connection's own I/O code.
 *
 * Back-pressure. Flow-control credit for request bytes is ours to give
 * (nghttp2's automatic WINDOW_UPDATEs are off): it goes back as the bytes
 * are taken in, except while the answers queued for the peer are over a
 * mark, the stream's own (STREAM_OUT_HIGH: that stream waits) or the
 * connection's (CONN_OUT_HIGH: every stream waits). Handlers answer what
 * they are sent (the picker echoes response bodies), so a client that
 * sends and does not read is held by its own windows: a connection queues
 * for it at most CONN_OUT_HIGH plus its receive window plus one answer,
 * and a stream whose answer none of the peer takes for send_timeout_ms is
 * reset, as is a connection whose socket takes nothing that long. Past
 * max_output_bytes queued by the whole process no answer is queued (the
 * stream is reset instead), and past half of it no credit is given. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "grpc/grpc_int.h"
#include "http/tls.h"

struct sconn;

struct ig_grpc_stream {
	struct sconn *conn;
	int32_t id;
	struct ig_grpc_stream *prev, *next;
	const struct ig_grpc_method *m; /* NULL until accepted (or when refused) */
	void *data;
	struct ig_buf hdrs; /* "name\0value\0" pairs */
	size_t hdr_bytes;   /* as HTTP/2 counts them: name + value + 32 */
	struct grpc_reasm in;
	struct grpc_outq out;
	size_t unacked;	      /* request bytes taken in, stream credit not given back */
	uint64_t out_ns;      /* answer bytes last taken, or queued into an empty queue */
	uint64_t active_ns;   /* a frame came or answer bytes went (stream_idle_timeout_ms) */
	uint64_t in_ns;	      /* request bytes last came (message_timeout_ms) */
	size_t held;	      /* of a partly received message, in c->held and partial_total */
	uint64_t deadline_ns; /* the client's grpc-timeout; 0: none */
	int status;
	char *message; /* grpc-message, percent-encoded */
	bool headers_sent, finishing, trailers_sent, remote_closed, ended;
	/* A message came compressed with a grpc-encoding we do not have: the
	 * answer names the ones we do (grpc-accept-encoding). */
	bool unknown_encoding;
};

struct sconn {
	struct h2conn h;
	struct ig_grpc_server *srv;
	struct sconn *prev, *next;
	struct ig_grpc_stream *streams;
	size_t active; /* streams with a handler */
	struct ig_timer timer;
	struct ig_task reap;
	bool got_settings;
	bool goaway; /* the idle timeout's GOAWAY was submitted */
	/* A drain's PING is out (see ig_grpc_server_drain); timer waits for
	 * its ACK. */
	bool drain_ping;
	char peer[64];
	/* Bytes of partly received messages held by all its streams: HTTP/2
	 * flow control gives the window back as we take bytes in, so this
	 * is what bounds a connection's memory (CONN_HELD_MAX). */
	size_t held;
	size_t pending;	     /* answer bytes its streams queued, not taken yet */
	size_t unacked;	     /* request bytes taken in, connection credit not given */
	bool stream_unacked; /* some stream holds credit back */
	/* The streams' timeouts (and the socket's), while any stream is open:
	 * at most TICK_MS apart. */
	struct ig_timer tick;
	uint64_t tick_ns; /* when it is due */
};

/* Marks of queued answers past which credit is held back (see above). */
#define STREAM_OUT_HIGH (512u << 10)
#define CONN_OUT_HIGH (2u << 20)
/* The connection's receive window: the gateway's front end's, the most
 * request bytes a client that reads nothing can still make us answer
 * (the 1 MiB per stream lets one large message cross in one flight). */
#define SERVER_CONN_WINDOW (4 << 20)
#define TICK_MS 1000
/* A drain's PING (its 8 bytes of opaque data), and how long its ACK is
 * waited for before the final GOAWAY goes anyway: the gateway's front
 * end's (http/server_h2.c). */
#define DRAIN_PING "igdrain"
#define DRAIN_PING_MS 1000

/* What all the servers of the process queue for their peers, and hold
 * of partly received messages, against the process's ceilings. The
 * servers run on several workers' loops, so none writes these per
 * message: each takes a share in blocks (struct budget) and counts its
 * own use inside it, and only a block taken or given back touches the
 * process's total. The total is what the shares add up to, so it is never
 * over the ceiling; a server may be refused while others hold unused
 * parts of their blocks, at most two blocks each. */
static atomic_size_t output_total, partial_total;

struct budget {
	atomic_size_t *total; /* the process's, over every server's share */
	size_t share;	      /* taken from *total */
	size_t used;	      /* of share */
	size_t block;	      /* how much is taken or given back at once */
	size_t max;	      /* the process's ceiling */
};

/* A connection may hold this much of unfinished request messages across
 * its streams (at least one whole message of the largest size); a stream
 * that would go over is ended with RESOURCE_EXHAUSTED. */
#define CONN_HELD_MAX(srv)                                                                         \
	((srv)->cfg.max_message_bytes > (32u << 20) ? (srv)->cfg.max_message_bytes : (32u << 20))

struct ig_grpc_server {
	struct ig_loop *loop;
	struct ig_grpc_server_config cfg;
	struct budget output, partial; /* answers queued, partial messages held */
	struct ig_grpc_method *methods;
	size_t nmethods;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	int listen_fd;
	struct ig_acceptor acceptor;
	struct sconn *conns;
	size_t streams;
	bool draining;
};

static void conn_close(struct sconn *c);

/* ---- streams ---- */

static struct ig_grpc_stream *stream_of(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static void arm_idle(struct sconn *c);
static void tick_at(struct sconn *c, uint64_t due);
static void final_goaway(struct sconn *c);

static uint64_t now_of(const struct sconn *c)
{
	return ig_loop_now(c->h.loop);
}

static uint64_t ms_ns(uint64_t ms)
{
	return ms * 1000000u;
}

static void budget_init(struct budget *b, atomic_size_t *total, size_t max)
{
	/* 64 blocks to the ceiling, at most 1 MiB each. */
	size_t block = max / 64;
	*b = (struct budget){.total = total,
			     .block = block > (1u << 20) ? 1u << 20
				      : block		 ? block
							 : 1,
			     .max = max};
}

/* Whether n more bytes fit under the ceiling, with what the other servers hold:
 * the share grows by whole blocks when it must. A server's use may go
 * over its share only by what budget_use is told without asking. */
static bool budget_fits(struct budget *b, size_t n)
{
	if (b->used + n <= b->share)
		return true;
	size_t need = b->used + n - b->share;
	need = (need + b->block - 1) / b->block * b->block;
	size_t total = atomic_load_explicit(b->total, memory_order_relaxed);
	do {
		if (total + need > b->max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    b->total, &total, total + need, memory_order_relaxed, memory_order_relaxed));
	b->share += need;
	return true;
}

/* Use goes up by more and down by less. */
static void budget_use(struct budget *b, size_t more, size_t less)
{
	b->used = b->used + more - less;
	if (b->used > b->share) {
		/* Taken without asking: the share follows. */
		size_t need = b->used - b->share;
		atomic_fetch_add_explicit(b->total, need, memory_order_relaxed);
		b->share += need;
	} else if (b->share - b->used > 2 * b->block) {
		/* Give back all but one block of what is not used. */
		size_t give = b->share - b->used - b->block;
		atomic_fetch_sub_explicit(b->total, give, memory_order_relaxed);
		b->share -= give;
	}
}

/* What the whole process holds, shares taken. */
static size_t budget_total(const struct budget *b)
{
	return atomic_load_explicit(b->total, memory_order_relaxed);
}

/* n bytes of the stream's queue were taken (or dropped). */
static void out_less(struct ig_grpc_stream *s, size_t n)
{
	s->conn->pending -= n;
	budget_use(&s->conn->srv->output, 0, n);
}

/* The stream now holds n bytes of a partly received message. */
static void set_held(struct ig_grpc_stream *s, size_t n)
{
	s->conn->held = s->conn->held - s->held + n;
	budget_use(&s->conn->srv->partial, n, s->held);
	s->held = n;
}

/* A stream that is finishing takes no more request bytes: what it holds
 * of a message goes at once, not when the stream closes (its answer may
 * wait on a peer that does not read). Never from inside grpc_reasm_feed,
 * which may be delivering those bytes. */
static void drop_partial(struct ig_grpc_stream *s)
{
	set_held(s, 0);
	grpc_reasm_free(&s->in);
	s->in.in_body = false;
	s->in.hdr_len = s->in.need = s->in.skip = 0;
}

/* The stream goes without its answer: its queue is dropped. */
static void reset_stream(struct ig_grpc_stream *s, uint32_t code)
{
	out_less(s, grpc_outq_len(&s->out));
	grpc_outq_free(&s->out);
	s->finishing = true;
	nghttp2_submit_rst_stream(s->conn->h.ng, NGHTTP2_FLAG_NONE, s->id, code);
	h2conn_kick(&s->conn->h);
}

/* The stream's last moment: the handler's on_end when it had one. */
static void stream_free(struct ig_grpc_stream *s, bool reset)
{
	struct sconn *c = s->conn;
	if (s->m && !s->ended) {
		s->ended = true;
		c->active--;
		c->srv->streams--;
		s->m->on_end(s, reset);
	}
	if (c->h.ng && s->id)
		nghttp2_session_set_stream_user_data(c->h.ng, s->id, NULL);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	ig_buf_free(&s->hdrs);
	set_held(s, 0);
	grpc_reasm_free(&s->in);
	out_less(s, grpc_outq_len(&s->out));
	grpc_outq_free(&s->out);
	free(s->message);
	free(s);
	if (!c->active)
		arm_idle(c);
}

static struct ig_str header_of(const struct ig_grpc_stream *s, const char *name)
{
	const char *p = s->hdrs.ptr, *end = p + s->hdrs.len;
	while (p && p < end) {
		size_t nl = strlen(p);
		const char *v = p + nl + 1;
		size_t vl = strlen(v);
		if (strcmp(p, name) == 0)
			return (struct ig_str){v, vl};
		p = v + vl + 1;
	}
	return (struct ig_str){"", 0};
}

/* The next DATA frame's length; its bytes are taken from the queue by
 * send_data (h2conn_send_data), not copied into nghttp2's buffer. */
static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct ig_grpc_stream *s = src->ptr;
	size_t queued = grpc_outq_len(&s->out);
	size_t n = queued < length ? queued : length;
	if (n > GRPC_DATA_MAX)
		n = GRPC_DATA_MAX;
	if (n < queued) {
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
		return (ssize_t)n;
	}
	if (!s->finishing && !n)
		return NGHTTP2_ERR_DEFERRED;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (!s->finishing)
		return (ssize_t)n;
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	char code[16];
	snprintf(code, sizeof code, "%d", s->status);
	nghttp2_nv nv[3] = {{(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code), 0}};
	size_t nnv = 1;
	if (s->message)
		nv[nnv++] = (nghttp2_nv){(uint8_t *)"grpc-message", (uint8_t *)s->message, 12,
					 strlen(s->message), 0};
	if (s->unknown_encoding)
		nv[nnv++] = (nghttp2_nv){(uint8_t *)"grpc-accept-encoding", (uint8_t *)"identity",
					 20, 8, 0};
	if (nghttp2_submit_trailer(ng, id, nv, nnv) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return (ssize_t)n;
}

static int send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *hd, size_t len,
		     nghttp2_data_source *src, void *ud)
{
	struct sconn *c = ud;
	struct ig_grpc_stream *s = src->ptr;
	size_t before = grpc_outq_len(&s->out);
	int rv = h2conn_send_data(&c->h, f, hd, &s->out, len);
	out_less(s, before - grpc_outq_len(&s->out));
	s->out_ns = s->active_ns = now_of(c);
	return rv;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), 0                        \
	}

/* A refusal at the HTTP level: only a :status. */
static void respond_http(struct ig_grpc_stream *s, const char *status)
{
	nghttp2_nv nv[] = {NV(":status", status)};
	s->headers_sent = s->finishing = true;
	nghttp2_submit_response(s->conn->h.ng, s->id, nv, 1, NULL);
}

static void trailers_only(struct ig_grpc_stream *s)
{
	char code[16];
	snprintf(code, sizeof code, "%d", s->status);
	nghttp2_nv nv[5] = {
	    NV(":status", "200"),
	    NV("content-type", "application/grpc"),
	    NV("grpc-status", code),
	};
	size_t nnv = 3;
	if (s->message)
		nv[nnv++] = (nghttp2_nv)NV("grpc-message", s->message);
	if (s->unknown_encoding)
		nv[nnv++] = (nghttp2_nv)NV("grpc-accept-encoding", "identity");
	s->headers_sent = true;
	nghttp2_submit_response(s->conn->h.ng, s->id, nv, nnv, NULL);
}

static int send_headers(struct ig_grpc_stream *s)
{
	nghttp2_nv nv[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
	nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
	s->headers_sent = true;
	return nghttp2_submit_response(s->conn->h.ng, s->id, nv, 2, &prd);
}

static void finish(struct ig_grpc_stream *s, int status, const char *message)
{
	if (s->finishing)
		return;
	s->finishing = true;
	s->status = status;
	if (message) {
		size_t cap = strlen(message) * 3 + 1;
		if (cap > 4096)
			cap = 4096;
		s->message = malloc(cap);
		if (s->message)
			ig_grpc_percent_encode(message, s->message, cap);
	}
	if (!s->headers_sent)
		trailers_only(s);
	else
		nghttp2_session_resume_data(s->conn->h.ng, s->id);
	h2conn_kick(&s->conn->h);
}

static bool content_type_ok(struct ig_str ct)
{
	static const char p[] = "application/grpc";
	size_t n = sizeof p - 1;
	if (ct.len < n || strncasecmp(ct.ptr, p, n) != 0)
		return false;
	return ct.len == n || ct.ptr[n] == '+' || ct.ptr[n] == ';';
}

/* The request's headers are complete: accept it or refuse it. */
static bool on_request_oversize(void *arg, size_t len)
{
	struct ig_grpc_stream *s = arg;
	s->m->on_oversize(s, len);
	return !s->finishing;
}

static void stream_open(struct ig_grpc_stream *s)
{
	struct ig_grpc_server *srv = s->conn->srv;
	if (!ig_str_eq_cstr(header_of(s, ":method"), "POST")) {
		respond_http(s, "405");
		return;
	}
	if (!content_type_ok(header_of(s, "content-type"))) {
		respond_http(s, "415");
		return;
	}
	struct ig_str path = header_of(s, ":path");
	for (size_t i = 0; i < srv->nmethods; i++) {
		if (ig_str_eq_cstr(path, srv->methods[i].path)) {
			s->m = &srv->methods[i];
			break;
		}
	}
	if (!s->m) {
		s->finishing = true;
		s->status = IG_GRPC_UNIMPLEMENTED;
		s->message = strdup("unknown method");
		trailers_only(s);
		return;
	}
	s->in.max = srv->cfg.max_message_bytes;
	if (s->m->on_oversize)
		s->in.on_oversize = on_request_oversize;
	s->out.max = srv->cfg.max_message_bytes + GRPC_FRAME_HEADER + (1u << 20);
	s->conn->active++;
	srv->streams++;
	if (!s->conn->drain_ping)
		ig_timer_stop(srv->loop, &s->conn->timer);
	tick_at(s->conn, now_of(s->conn) + ms_ns(TICK_MS));
	uint64_t timeout = grpc_timeout_parse(header_of(s, "grpc-timeout"));
	if (timeout) {
		s->deadline_ns = now_of(s->conn) + timeout;
		tick_at(s->conn, s->deadline_ns);
	}
	if (s->m->on_open)
		s->m->on_open(s, s->m->arg);
}

static void half_close(struct ig_grpc_stream *s)
{
	s->remote_closed = true;
	if (!s->m || s->finishing)
		return;
	if (grpc_reasm_partial(&s->in)) {
		finish(s, IG_GRPC_INTERNAL, "request ended inside a message");
		return;
	}
	if (s->m->on_half_close)
		s->m->on_half_close(s);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct sconn *c = ud;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct ig_grpc_stream *s = calloc(1, sizeof *s);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->conn = c;
	s->id = f->hd.stream_id;
	ig_buf_init(&s->hdrs, c->srv->cfg.max_header_bytes + 64);
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	nghttp2_session_set_stream_user_data(ng, s->id, s);
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct ig_grpc_stream *s = stream_of(ng, f->hd.stream_id);
	if (!s || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers of a request carry nothing we use */
	s->hdr_bytes += namelen + valuelen + 32;
	if (s->hdr_bytes > s->conn->srv->cfg.max_header_bytes)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (ig_buf_append(&s->hdrs, name, namelen) < 0 || ig_buf_append(&s->hdrs, "", 1) < 0 ||
	    ig_buf_append(&s->hdrs, value, valuelen) < 0 || ig_buf_append(&s->hdrs, "", 1) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct sconn *c = ud;
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		if (!c->got_settings) {
			c->got_settings = true;
			ig_timer_stop(c->h.loop, &c->timer);
			if (!c->active)
				arm_idle(c);
		}
		return 0;
	}
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && c->drain_ping &&
	    memcmp(f->ping.opaque_data, DRAIN_PING, 8) == 0) {
		final_goaway(c);
		return 0;
	}
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	struct ig_grpc_stream *s = stream_of(ng, f->hd.stream_id);
	if (!s)
		return 0;
	s->active_ns = now_of(c);
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		stream_open(s);
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		half_close(s);
	return 0;
}

static bool on_request_message(void *arg, const uint8_t *msg, size_t len)
{
	struct ig_grpc_stream *s = arg;
	if (s->m->on_message)
		s->m->on_message(s, msg, len);
	return !s->finishing;
}

/* Whether the connection gives credit back now (see the top). */
static bool conn_takes_more(const struct sconn *c)
{
	return c->pending <= CONN_OUT_HIGH &&
	       budget_total(&c->srv->output) <= c->srv->output.max / 2;
}

/* len request bytes of s were taken in: their credit goes back unless
 * the answers queued are over a mark (then give_credit does it later). */
static void take_credit(struct ig_grpc_stream *s, size_t len)
{
	struct sconn *c = s->conn;
	if (conn_takes_more(c))
		nghttp2_session_consume_connection(c->h.ng, len);
	else
		c->unacked += len;
	if (grpc_outq_len(&s->out) <= STREAM_OUT_HIGH) {
		nghttp2_session_consume_stream(c->h.ng, s->id, len);
	} else {
		s->unacked += len;
		c->stream_unacked = true;
	}
}

/* After a round of I/O: credit held back goes once the answers it waited
 * on were taken. */
static void give_credit(struct h2conn *h)
{
	struct sconn *c = h->owner;
	bool gave = false;
	if (c->unacked && conn_takes_more(c)) {
		nghttp2_session_consume_connection(h->ng, c->unacked);
		c->unacked = 0;
		gave = true;
	}
	if (c->stream_unacked) {
		c->stream_unacked = false;
		for (struct ig_grpc_stream *s = c->streams; s; s = s->next) {
			if (!s->unacked)
				continue;
			if (grpc_outq_len(&s->out) > STREAM_OUT_HIGH) {
				c->stream_unacked = true;
				continue;
			}
			nghttp2_session_consume_stream(h->ng, s->id, s->unacked);
			s->unacked = 0;
			gave = true;
		}
	}
	if (gave)
		h2conn_kick(h);
}

/* A compressed message. gRPC's compression.md: one compressed with an
 * encoding the server does not support is UNIMPLEMENTED, with
 * grpc-accept-encoding naming those it does (identity only: none is ever
 * offered); the flag without any grpc-encoding is a protocol error. */
static void unsupported_compression(struct ig_grpc_stream *s)
{
	struct ig_str enc = header_of(s, "grpc-encoding");
	if (!enc.len || ig_str_eq_cstr(enc, "identity")) {
		finish(s, IG_GRPC_INTERNAL, "compressed message without grpc-encoding");
		return;
	}
	char why[96];
	snprintf(why, sizeof why, "grpc-encoding %.*s is not supported",
		 (int)(enc.len > 32 ? 32 : enc.len), enc.ptr);
	s->unknown_encoding = true;
	finish(s, IG_GRPC_UNIMPLEMENTED, why);
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *ud)
{
	struct ig_grpc_stream *s = stream_of(ng, id);
	if (!s || !s->m || s->finishing) {
		/* Bytes nobody keeps: their credit goes back at once. */
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	struct sconn *c = s->conn;
	s->active_ns = s->in_ns = now_of(c);
	const char *full = NULL;
	if (c->held + len > CONN_HELD_MAX(c->srv))
		full = "the connection holds too much of unfinished request messages";
	else if (!budget_fits(&c->srv->partial, len))
		full = "the server holds too much of unfinished request messages";
	if (full) {
		finish(s, IG_GRPC_RESOURCE_EXHAUSTED, full);
		drop_partial(s);
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	int rc = grpc_reasm_feed(&s->in, data, len, on_request_message, s);
	set_held(s, s->in.in_body ? s->in.msg.len : 0);
	if (rc == IG_GRPC_RESOURCE_EXHAUSTED)
		finish(s, rc, "request message larger than the server's limit");
	else if (rc == IG_GRPC_INTERNAL)
		unsupported_compression(s);
	if (s->finishing)
		drop_partial(s);
	take_credit(s, len);
	return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct ig_grpc_stream *s = stream_of(ng, f->hd.stream_id);
	if (!s)
		return 0;
	s->trailers_sent = true;
	if (!s->remote_closed)
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud)
{
	struct ig_grpc_stream *s = stream_of(ng, id);
	if (s)
		stream_free(s, !s->trailers_sent);
	return 0;
}

/* ---- timeouts ---- */

/* When the stream is due for a timeout; UINT64_MAX: none. */
static uint64_t stream_due(const struct sconn *c, const struct ig_grpc_stream *s)
{
	const struct ig_grpc_server_config *cfg = &c->srv->cfg;
	uint64_t due = UINT64_MAX;
	if (!s->m || s->ended)
		return due;
	if (grpc_outq_len(&s->out))
		due = s->out_ns + ms_ns(cfg->send_timeout_ms);
	if (s->finishing) /* it waits for its answer to go, nothing else */
		return due;
	if (s->deadline_ns && s->deadline_ns < due)
		due = s->deadline_ns;
	if (s->active_ns + ms_ns(cfg->stream_idle_timeout_ms) < due)
		due = s->active_ns + ms_ns(cfg->stream_idle_timeout_ms);
	if (grpc_reasm_partial(&s->in) && s->in_ns + ms_ns(cfg->message_timeout_ms) < due)
		due = s->in_ns + ms_ns(cfg->message_timeout_ms);
	return due;
}

static void expire(struct ig_grpc_stream *s, uint64_t now)
{
	const struct ig_grpc_server_config *cfg = &s->conn->srv->cfg;
	if (grpc_outq_len(&s->out) && now >= s->out_ns + ms_ns(cfg->send_timeout_ms)) {
		ig_info("grpc: client %s took none of stream %d's answer for %llu ms: reset",
			s->conn->peer, s->id, (unsigned long long)cfg->send_timeout_ms);
		reset_stream(s, NGHTTP2_CANCEL);
		return;
	}
	if (s->finishing)
		return;
	char why[96];
	if (s->deadline_ns && now >= s->deadline_ns) {
		/* PROTOCOL-HTTP2: the server ends a call whose grpc-timeout
		 * passed with DEADLINE_EXCEEDED. */
		drop_partial(s);
		finish(s, IG_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
	} else if (grpc_reasm_partial(&s->in) && now >= s->in_ns + ms_ns(cfg->message_timeout_ms)) {
		snprintf(why, sizeof why, "request message incomplete for %llu ms",
			 (unsigned long long)cfg->message_timeout_ms);
		drop_partial(s);
		finish(s, IG_GRPC_CANCELLED, why);
	} else if (now >= s->active_ns + ms_ns(cfg->stream_idle_timeout_ms)) {
		snprintf(why, sizeof why, "stream idle for %llu ms",
			 (unsigned long long)cfg->stream_idle_timeout_ms);
		finish(s, IG_GRPC_CANCELLED, why);
	}
}

static void on_tick(struct ig_loop *loop, struct ig_timer *t);

/* Makes sure the tick comes by due. */
static void tick_at(struct sconn *c, uint64_t due)
{
	if (c->h.closed || (ig_timer_armed(&c->tick) && c->tick_ns <= due))
		return;
	uint64_t now = now_of(c);
	c->tick_ns = due;
	ig_timer_start_ns(c->h.loop, &c->tick, due > now ? due - now : 1, on_tick, c);
}

static void on_tick(struct ig_loop *loop, struct ig_timer *t)
{
	struct sconn *c = t->data;
	const struct ig_grpc_server_config *cfg = &c->srv->cfg;
	if (c->h.closed)
		return;
	if (h2conn_write_stalled_ns(&c->h) >= ms_ns(cfg->send_timeout_ms)) {
		ig_info("grpc: client %s took no bytes for %llu ms: closed", c->peer,
			(unsigned long long)cfg->send_timeout_ms);
		conn_close(c);
		return;
	}
	uint64_t now = now_of(c), next = now + ms_ns(TICK_MS);
	for (struct ig_grpc_stream *s = c->streams; s; s = s->next) {
		uint64_t due = stream_due(c, s);
		if (due <= now) {
			expire(s, now);
			due = stream_due(c, s);
		}
		if (due < next)
			next = due > now ? due : now + 1000000u;
	}
	if (c->streams || h2conn_write_stalled_ns(&c->h))
		tick_at(c, next);
}

/* ---- connections ---- */

static void reap(struct ig_loop *loop, struct ig_task *t)
{
	struct sconn *c = t->data;
	struct ig_grpc_server *srv = c->srv;
	ig_timer_stop(loop, &c->timer);
	ig_timer_stop(loop, &c->tick);
	h2conn_free(&c->h);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* Ends the connection's streams now; its memory goes from a task. */
static void on_conn_close(struct h2conn *h, const char *why)
{
	struct sconn *c = h->owner;
	ig_timer_stop(c->h.loop, &c->timer);
	while (c->streams)
		stream_free(c->streams, true);
	ig_timer_stop(c->h.loop, &c->timer);
	ig_timer_stop(c->h.loop, &c->tick);
	ig_task_queue(c->h.loop, &c->reap, reap, c);
}

static int on_conn_ready(struct h2conn *h)
{
	struct sconn *c = h->owner;
	struct ig_grpc_server *srv = c->srv;
	if (nghttp2_session_server_new2(&h->ng, srv->cbs, c, srv->opt) != 0)
		return -1;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->cfg.max_streams},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)srv->cfg.max_header_bytes},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, IG_GRPC_STREAM_WINDOW},
	};
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0,
						  SERVER_CONN_WINDOW) != 0)
		return -1;
	if (srv->draining)
		nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
	return 0;
}

static const struct h2conn_ops server_ops = {on_conn_ready, on_conn_close, give_credit};

static void on_conn_timer(struct ig_loop *loop, struct ig_timer *t)
{
	struct sconn *c = t->data;
	if (c->h.closed)
		return;
	if (c->drain_ping) {
		final_goaway(c); /* the client did not answer the PING */
		return;
	}
	if (!c->got_settings || !c->h.ng) {
		conn_close(c); /* no preface, TLS handshake or SETTINGS in time */
		return;
	}
	/* Idle: GOAWAY, and the connection ends once it is sent, or after
	 * send_timeout_ms more if the peer does not take it. */
	if (c->goaway) {
		conn_close(c);
		return;
	}
	c->goaway = true;
	nghttp2_session_terminate_session(c->h.ng, NGHTTP2_NO_ERROR);
	h2conn_kick(&c->h);
	ig_timer_start(c->h.loop, &c->timer, c->srv->cfg.send_timeout_ms, on_conn_timer, c);
}

static void arm_idle(struct sconn *c)
{
	if (c->got_settings && !c->h.closed && !c->drain_ping && c->srv->cfg.idle_timeout_ms)
		ig_timer_start(c->h.loop, &c->timer, c->srv->cfg.idle_timeout_ms, on_conn_timer, c);
}

static void conn_close(struct sconn *c)
{
	if (c->h.closed)
		return;
	c->h.closed = true;
	ig_io_set(c->h.loop, &c->h.io, 0);
	on_conn_close(&c->h, "closed");
}

static void conn_new(struct ig_grpc_server *srv, int fd, const struct sockaddr_storage *ss)
{
	struct sconn *c = calloc(1, sizeof *c);
	struct ig_tls_conn *tls = NULL;
	if (!c || (srv->cfg.tls && !(tls = ig_tls_conn_new(srv->cfg.tls, fd)))) {
		free(c);
		close(fd);
		return;
	}
	c->srv = srv;
	ig_sockaddr_text(ss, c->peer, sizeof c->peer);
	if (h2conn_start(&c->h, srv->loop, fd, false, tls, &server_ops, c) < 0) {
		ig_tls_conn_free(tls);
		close(fd);
		free(c);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	ig_timer_start(srv->loop, &c->timer, srv->cfg.handshake_timeout_ms, on_conn_timer, c);
}

/* A connection from the acceptor (event/accept.c, which pauses on EMFILE
 * instead of spinning on the listener). */
static void on_accept(void *data, int fd, const struct sockaddr_storage *ss)
{
	conn_new(data, fd, ss);
}

/* ---- public ---- */

static int make_callbacks(struct ig_grpc_server *srv)
{
	if (nghttp2_session_callbacks_new(&srv->cbs) != 0)
		return -1;
	nghttp2_session_callbacks *cb = srv->cbs;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data);
	if (nghttp2_option_new(&srv->opt) != 0)
		return -1;
	/* Closed streams are not kept for priority bookkeeping (memory a
	 * stream flood would grow). */
	nghttp2_option_set_no_closed_streams(srv->opt, 1);
	/* Credit is ours to give (take_credit, give_credit). */
	nghttp2_option_set_no_auto_window_update(srv->opt, 1);
	return 0;
}

struct ig_grpc_server *ig_grpc_server_new(struct ig_loop *loop,
					  const struct ig_grpc_server_config *cfg,
					  const struct ig_grpc_method *methods, size_t n)
{
	struct ig_grpc_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return NULL;
	srv->loop = loop;
	srv->listen_fd = -1;
	if (cfg)
		srv->cfg = *cfg;
	if (!srv->cfg.max_message_bytes)
		srv->cfg.max_message_bytes = GRPC_DEFAULT_MAX_MESSAGE;
	if (!srv->cfg.max_header_bytes)
		srv->cfg.max_header_bytes = 16 * 1024;
	if (!srv->cfg.max_streams)
		srv->cfg.max_streams = 1024;
	if (!srv->cfg.handshake_timeout_ms)
		srv->cfg.handshake_timeout_ms = 10000;
	if (!srv->cfg.idle_timeout_ms)
		srv->cfg.idle_timeout_ms = 5 * 60 * 1000;
	if (!srv->cfg.send_timeout_ms)
		srv->cfg.send_timeout_ms = 60 * 1000;
	if (!srv->cfg.max_output_bytes)
		srv->cfg.max_output_bytes = (size_t)512 << 20;
	if (!srv->cfg.stream_idle_timeout_ms)
		srv->cfg.stream_idle_timeout_ms = 5 * 60 * 1000;
	if (!srv->cfg.message_timeout_ms)
		srv->cfg.message_timeout_ms = 60 * 1000;
	/* At least two messages of the largest size can arrive at once. */
	if (!srv->cfg.max_partial_bytes)
		srv->cfg.max_partial_bytes = (size_t)256 << 20;
	if (srv->cfg.max_partial_bytes < 2 * srv->cfg.max_message_bytes)
		srv->cfg.max_partial_bytes = 2 * srv->cfg.max_message_bytes;
	budget_init(&srv->output, &output_total, srv->cfg.max_output_bytes);
	budget_init(&srv->partial, &partial_total, srv->cfg.max_partial_bytes);
	srv->methods = calloc(n ? n : 1, sizeof *srv->methods);
	if (!srv->methods || make_callbacks(srv) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		srv->methods[i] = methods[i];
		srv->methods[i].path = strdup(methods[i].path);
		srv->nmethods++;
		if (!srv->methods[i].path)
			goto fail;
	}
	if (srv->cfg.tls)
		ig_tls_ctx_ref(srv->cfg.tls);
	return srv;
fail:
	ig_grpc_server_free(srv);
	return NULL;
}

int ig_grpc_server_listen(struct ig_grpc_server *srv, int listen_fd)
{
	if (srv->listen_fd >= 0 || srv->draining)
		return -1;
	if (ig_acceptor_start(&srv->acceptor, srv->loop, listen_fd, "grpc", on_accept, srv) < 0)
		return -1;
	srv->listen_fd = listen_fd;
	return 0;
}

static void stop_listening(struct ig_grpc_server *srv)
{
	if (srv->listen_fd >= 0)
		ig_acceptor_stop(&srv->acceptor);
	srv->listen_fd = -1;
}

static void final_goaway(struct sconn *c)
{
	c->drain_ping = false;
	ig_timer_stop(c->h.loop, &c->timer);
	nghttp2_submit_goaway(c->h.ng, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->h.ng), NGHTTP2_NO_ERROR,
			      NULL, 0);
	h2conn_kick(&c->h);
}

void ig_grpc_server_drain(struct ig_grpc_server *srv)
{
	if (srv->draining)
		return;
	srv->draining = true;
	stop_listening(srv);
	for (struct sconn *c = srv->conns; c; c = c->next) {
		if (c->h.closed)
			continue;
		if (!c->h.ng || !c->got_settings) {
			conn_close(c);
			continue;
		}
		/* A graceful shutdown (RFC 9113 §6.8), as the gateway's front
		 * end does it: GOAWAY with the last stream id 2^31-1 first,
		 * then a PING, whose ACK (or DRAIN_PING_MS without one) sends
		 * the GOAWAY naming the last stream taken, so that a stream the
		 * client opened before the notice reached it is served rather
		 * than dropped. */
		nghttp2_submit_shutdown_notice(c->h.ng);
		if (nghttp2_submit_ping(c->h.ng, NGHTTP2_FLAG_NONE, (const uint8_t *)DRAIN_PING) !=
		    0) {
			final_goaway(c);
			continue;
		}
		c->drain_ping = true;
		ig_timer_start(srv->loop, &c->timer, DRAIN_PING_MS, on_conn_timer, c);
		h2conn_kick(&c->h);
	}
}

size_t ig_grpc_server_streams(const struct ig_grpc_server *srv)
{
	return srv->streams;
}

void ig_grpc_server_free(struct ig_grpc_server *srv)
{
	if (!srv)
		return;
	stop_listening(srv);
	while (srv->conns) {
		struct sconn *c = srv->conns;
		conn_close(c);
		ig_task_cancel(srv->loop, &c->reap);
		reap(srv->loop, &c->reap);
	}
	/* Every connection gone, what is left of the shares goes back. */
	atomic_fetch_sub_explicit(srv->output.total, srv->output.share, memory_order_relaxed);
	atomic_fetch_sub_explicit(srv->partial.total, srv->partial.share, memory_order_relaxed);
	for (size_t i = 0; i < srv->nmethods; i++)
		free((char *)srv->methods[i].path);
	free(srv->methods);
	if (srv->cbs)
		nghttp2_session_callbacks_del(srv->cbs);
	if (srv->opt)
		nghttp2_option_del(srv->opt);
	ig_tls_ctx_unref(srv->cfg.tls);
	free(srv);
}

void ig_grpc_stream_set_data(struct ig_grpc_stream *s, void *data)
{
	s->data = data;
}

void *ig_grpc_stream_data(const struct ig_grpc_stream *s)
{
	return s->data;
}

struct ig_str ig_grpc_stream_header(const struct ig_grpc_stream *s, const char *name)
{
	return header_of(s, name);
}

const char *ig_grpc_stream_peer(const struct ig_grpc_stream *s)
{
	return s->conn->peer;
}

int ig_grpc_send(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	const struct ig_str part = {(const char *)msg, len};
	return ig_grpc_sendv(s, &part, 1);
}

int ig_grpc_sendv(struct ig_grpc_stream *s, const struct ig_str *parts, size_t n)
{
	if (!s->m || s->finishing || s->ended || s->conn->h.closed)
		return -1;
	struct sconn *c = s->conn;
	size_t len = GRPC_FRAME_HEADER;
	for (size_t i = 0; i < n; i++)
		len += parts[i].len;
	size_t before = grpc_outq_len(&s->out);
	if (!budget_fits(&c->srv->output, len) || grpc_outq_pushv(&s->out, parts, n) < 0) {
		/* The client does not read what we send (or the message is over
		 * the ceiling): the stream goes rather than memory. */
		reset_stream(s, NGHTTP2_INTERNAL_ERROR);
		return -1;
	}
	size_t added = grpc_outq_len(&s->out) - before;
	c->pending += added;
	budget_use(&c->srv->output, added, 0);
	if (!before) {
		s->out_ns = now_of(c);
		tick_at(c, s->out_ns + ms_ns(TICK_MS));
	}
	if (!s->headers_sent) {
		if (send_headers(s) != 0)
			return -1;
	} else {
		nghttp2_session_resume_data(s->conn->h.ng, s->id);
	}
	h2conn_kick(&s->conn->h);
	return 0;
}

void ig_grpc_finish(struct ig_grpc_stream *s, int status, const char *message)
{
	if (s->ended || s->conn->h.closed)
		return;
	finish(s, status, message);
}
