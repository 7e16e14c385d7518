/* HTTP/2 for the HTTP server (server_h2.h): one nghttp2 server session per
 * connection, each request stream an exchange of server.h.
 *
 * nghttp2 does the protocol; this file moves bytes and translates, as the
 * client's h2c mode does (client_h2.c). nghttp2's callbacks only take note
 * (a stream began, a header, body bytes, the request ended, a stream
 * closed); what follows from them runs after nghttp2 has returned: the
 * handler is called, errors are answered, closed streams are freed (with
 * on_abort for a stream a handler still held). The handler's calls only
 * hand nghttp2 what to send and queue the task that sends it, so nothing
 * the handler calls frees anything under it.
 *
 * What HTTP/1.1 has and HTTP/2 says otherwise:
 * - a request is its pseudo-headers (:method, :path, :authority; :scheme
 *   is not looked at) and its fields; :authority becomes the Host field
 *   (RFC 9113 §8.3.1), so the handler sees what an HTTP/1.1 request
 *   would show it; header names arrive lowercase;
 * - the same ceilings: head bytes and field count (431; a :path over it
 *   alone, 414; a block far over them, or trailers over them, reset),
 *   body bytes (413,
 *   also when content-length says so up front), silence in a body (408);
 *   the keep-alive timeout closes a connection without streams, the send
 *   timeout one whose client takes nothing;
 * - responses carry no connection-specific fields (Connection,
 *   Transfer-Encoding, Keep-Alive, Upgrade are dropped) and their names
 *   go out lowercase; a body goes out in DATA frames under the client's
 *   flow control, and ig_http_write's backpressure counts the stream's
 *   queued bytes, the connection's, and all the streams' together;
 * - ig_http_abort resets the stream (RST_STREAM INTERNAL_ERROR) instead
 *   of closing the connection: the other streams go on;
 * - no protocol switch (a WebSocket over HTTP/2 would need RFC 8441's
 *   extended CONNECT, which the SETTINGS do not offer).
 *
 * Memory: a stream holds its exchange (arena, body) and the response
 * bytes not yet framed; at most MAX_STREAMS run at once (SETTINGS), each
 * body under the server's ceiling. An idle session holds nghttp2's state
 * (its frame buffer, stream map, HPACK tables of 4 KiB for requests and
 * DEFLATE_TABLE for responses: about 25 KiB, 7 once the frame buffer's
 * and the empty stream map's pages went back after a second idle) and no
 * buffers of ours, nor closed streams. */
#include "http/server_h2.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <nghttp2/nghttp2.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/smallblock.h"
#include "http/date.h"

#define MAX_STREAMS 100
#define STREAM_WINDOW (1024 * 1024)
#define CONN_WINDOW (4 * 1024 * 1024)
#define OUT_HIGH (256 * 1024) /* frames taken from nghttp2 ahead of the socket */
#define RESETS_BURST 200      /* RST_STREAMs a client may send at once */
#define RESETS_PER_S 100      /* and then per second */
/* A drain's PING (its 8 bytes of opaque data), and how long its ACK is
 * waited for before the final GOAWAY goes anyway. */
#define DRAIN_PING "igdrain"
#define DRAIN_PING_MS 1000
#define BLOCK_OVER 4	  /* a header block this many times over the limits: reset */
#define DEFLATE_TABLE 512 /* bytes of HPACK dynamic table for responses */
/* nghttp2's frame buffer (nghttp2 1.x: a frame header, a pad-length byte
 * and a 16 KiB payload), allocated whole with the session and written
 * before it is read: once a connection has been idle FRAMEBUF_IDLE_MS
 * its pages go back to the kernel and come back zeroed when written. */
#define FRAMEBUF_BYTES (9 + 1 + 16384)
#define FRAMEBUF_IDLE_MS 1000
#define PAGE_BYTES 4096

struct ig_h2_stream {
	struct ig_http_exchange ex; /* ex.h2 points back here */
	struct ig_arena arena;
	struct ig_h2 *h;
	int32_t id;
	struct ig_h2_stream *prev, *next;
	/* The request as it arrives. */
	struct ig_http_header *hdrs;
	size_t nh, caph, head_bytes;
	size_t cookie;			  /* 1 + the cookie field's index in hdrs; 0: none yet */
	size_t block_bytes, block_fields; /* decoded of the header block arriving */
	struct ig_str method, path, authority, scheme;
	int refuse;	/* a status the server answers itself once the head is in */
	bool head_done; /* the request head is complete */
	bool body_done; /* the client's END_STREAM arrived */
	bool progress;	/* body bytes arrived since the hook last ran */
	uint64_t body_last_ns;
	/* The exchange's life. */
	bool dispatched;   /* handed to the handler */
	bool stream_asked; /* stream_body was asked about this request */
	bool long_body;	   /* its content-length is over the ceiling: 413 unless streamed */
	bool in_handler;   /* ... and not ended */
	bool answered;	   /* a response was submitted */
	bool no_body;	   /* HEAD, 204, 304: headers only */
	bool eof;	   /* the response body is complete in `out` */
	bool deferred;	   /* nghttp2 waits for more of `out` */
	bool want_writable;
	bool continued;	      /* an Expect: 100-continue was looked for (settle) */
	bool closed;	      /* nghttp2 closed the stream: free it */
	bool reset_after;     /* reset once the answer is out: the body is unwanted */
	bool reset_seen;      /* a reset charged to the budget, or one of ours */
	nghttp2_nv *trailers; /* sent when the body's end is framed (in the arena) */
	size_t ntrailers;
	struct ig_buf out; /* response body bytes not yet framed */
	size_t out_off;
	uint64_t sent_ns; /* when the client last let body bytes go out */
	size_t unacked;	  /* body bytes received, flow-control credit not given back */
};

struct ig_h2 {
	nghttp2_session *ng;
	struct ig_http_conn *c;
	struct ig_h2_stream *streams; /* every stream not yet freed */
	size_t nstreams;
	struct ig_task task; /* sends what nghttp2 has, then the aftermath */
	bool draining;	     /* GOAWAY sent: close when no stream is left */
	/* A graceful shutdown (RFC 9113 §6.8): GOAWAY with the last stream
	 * id 2^31-1 first (notice_sent), then a PING (ping_ns: when), whose
	 * ACK, or DRAIN_PING_MS without one, sends the GOAWAY naming the last
	 * stream taken: streams the client opened before it saw the notice
	 * are all served. */
	bool notice_sent;
	uint64_t ping_ns;
	/* When the last stream closed (or the session began): the idle
	 * timeout counts from here, not from the last frame, so PINGs or
	 * WINDOW_UPDATEs alone do not keep a connection without streams
	 * open (Envoy's idle_timeout, Go's http2 idle timer). */
	uint64_t idle_ns;
	/* nghttp2's frame buffer (page-aligned, FRAMEBUF_BYTES; NULL if
	 * this nghttp2 allocates it otherwise) and whether its pages were
	 * given back since the session last framed anything. */
	void *framebuf;
	/* The session's first zeroed page-sized allocation (nghttp2 1.52's
	 * stream map: its buckets read all zeros again once no stream is
	 * open), page-aligned, given back with the frame buffer when it
	 * holds only zeros. */
	void *zeropage;
	bool framebuf_dropped;
	uint64_t quiet_ns; /* a frame last written with no stream open */
	bool failed;	   /* the session is over: close */
	/* Streams the client may still reset (a bucket refilled over time):
	 * opening streams and resetting them at once costs us a request each
	 * without counting against the concurrent streams (the "rapid reset"
	 * of 2023), so past this the session ends with ENHANCE_YOUR_CALM.
	 * Streams the client makes nghttp2 reset count alike. */
	uint32_t resets_left;
	uint64_t resets_ns;
	/* Bytes of the bodies of requests still arriving. Credit for body
	 * bytes is given back (WINDOW_UPDATE) while this stays within two
	 * bodies' ceiling, and past it only to the oldest such stream, which
	 * can always complete: a client may keep that much, plus the 4 MiB
	 * connection window, of unfinished bodies here, instead of 100
	 * streams' worth. */
	size_t arriving;
	/* Response bytes the streams hold, not yet framed. Past twice the
	 * write high-water mark (with what the connection has queued) every
	 * stream is told to hold back, not just the one over its own mark:
	 * a client that reads nothing would otherwise have 100 streams each
	 * buffer their own 256 KiB. */
	size_t pending;
};

static const struct ig_http_server_config *cfg_of(const struct ig_h2 *h)
{
	return &h->c->srv->cfg;
}

/* The loop iteration's time, what a stream's stamps take (a clock read
 * per DATA frame was 1.2 % of the gateway's CPU relaying token streams
 * over h2c; 0.3 % so). It may be behind ig_now_ns(): a stamp is only ever
 * subtracted from a later reading, never the other way round. */
static uint64_t now_of(const struct ig_h2 *h)
{
	return ig_loop_now(h->c->srv->loop);
}

static struct ig_h2_stream *stream_of(struct ig_h2 *h, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h->ng, id);
}

/* The stream's body stops counting as arriving: it was handed over, or
 * answered by the server, or the stream is gone. */
static void leave_arriving(struct ig_h2 *h, struct ig_h2_stream *st)
{
	if (!st->dispatched)
		h->arriving -= st->ex.body.len;
	st->dispatched = true;
}

static void stream_free(struct ig_h2 *h, struct ig_h2_stream *st)
{
	leave_arriving(h, st);
	/* The stream is closed: what it held of the connection's window. */
	if (st->unacked)
		nghttp2_session_consume_connection(h->ng, st->unacked);
	h->pending -= st->out.len - st->out_off;
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	if (--h->nstreams == 0)
		h->idle_ns = now_of(h);
	ig_buf_free(&st->ex.body);
	ig_buf_free(&st->out);
	ig_arena_free(&st->arena);
	ig_smallblock_free(st);
}

static void pump_task(struct ig_loop *loop, struct ig_task *t);

/* Something for nghttp2 to send: the task sends it after the caller's
 * call has returned. */
static void kick(struct ig_h2 *h)
{
	ig_task_queue(h->c->srv->loop, &h->task, pump_task, h);
}

/* ---- nghttp2's callbacks: they only take note ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct ig_h2 *h = ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
		struct ig_h2_stream *st = stream_of(h, f->hd.stream_id);
		if (st) /* trailers: a block of their own */
			st->block_bytes = st->block_fields = 0;
		return 0;
	}
	struct ig_h2_stream *st = ig_smallblock_calloc(1, sizeof *st);
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	st->h = h;
	st->id = f->hd.stream_id;
	st->body_last_ns = now_of(h); /* the head's silence counts too */
	st->ex.arena = &st->arena;
	st->ex.conn = h->c;
	st->ex.h2 = st;
	ig_buf_init(&st->ex.body, cfg_of(h)->max_body_bytes);
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	h->nstreams++;
	nghttp2_session_set_stream_user_data(ng, st->id, st);
	return 0;
}

/* A copy in the exchange's arena, NUL-terminated. */
static struct ig_str keep(struct ig_h2_stream *st, const uint8_t *p, size_t n)
{
	char *q = ig_arena_alloc(&st->arena, n + 1);
	if (!q)
		return (struct ig_str){NULL, 0};
	memcpy(q, p, n);
	q[n] = '\0';
	return (struct ig_str){q, n};
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct ig_h2 *h = ud;
	struct ig_h2_stream *st = stream_of(h, f->hd.stream_id);
	if (!st)
		return 0;
	const struct ig_http_server_config *cfg = cfg_of(h);
	size_t maxh = cfg->max_headers < HEADERS_CAP ? cfg->max_headers : HEADERS_CAP;
	/* Every field decoded counts, a refused head's and trailers' too: a
	 * few bytes on the wire can name a large entry of the HPACK table
	 * again and again. A head a little over the limits is answered 431
	 * (the client learns why); far over them, or trailers over them at
	 * all, the stream is reset and nghttp2 stops handing us the rest of
	 * the block (as Envoy, Apache httpd and Node.js do). */
	st->block_bytes += namelen + valuelen + 4;
	st->block_fields++;
	bool over = st->block_bytes > cfg->max_header_bytes || st->block_fields > maxh + 4;
	if ((over && st->head_done) || st->block_bytes > BLOCK_OVER * cfg->max_header_bytes ||
	    st->block_fields > BLOCK_OVER * (maxh + 4)) {
		ig_debug("client %s: HTTP/2 stream %d: header block over the limits: reset",
			 h->c->peer, st->id);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (st->head_done || st->refuse)
		return 0; /* trailers are not kept */
	st->head_bytes += namelen + valuelen + 4;
	if (st->head_bytes > cfg->max_header_bytes) {
		/* A :path over the limit by itself is a target too long (414),
		 * as on HTTP/1.1; else the fields are (431). */
		bool path = namelen == 5 && !memcmp(name, ":path", 5);
		st->refuse = path && namelen + valuelen + 4 > cfg->max_header_bytes ? 414 : 431;
		return 0;
	}
	struct ig_str n = keep(st, name, namelen), v = keep(st, value, valuelen);
	if (!n.ptr || !v.ptr) {
		st->refuse = 500;
		return 0;
	}
	if (namelen && name[0] == ':') {
		if (ig_str_eq_cstr(n, ":method"))
			st->method = v;
		else if (ig_str_eq_cstr(n, ":path"))
			st->path = v;
		else if (ig_str_eq_cstr(n, ":authority"))
			st->authority = v;
		else if (ig_str_eq_cstr(n, ":scheme"))
			st->scheme = v;
		return 0;
	}
	/* Cookie fields are joined with "; " for the HTTP/1.1 hop (RFC 9113
	 * §8.2.3: clients split them into many), one field however many. */
	if (st->cookie && ig_str_eq_cstr(n, "cookie")) {
		struct ig_str *c = &st->hdrs[st->cookie - 1].value;
		char *j = ig_arena_alloc(&st->arena, c->len + 2 + v.len);
		if (!j) {
			st->refuse = 500;
			return 0;
		}
		memcpy(j, c->ptr, c->len);
		memcpy(j + c->len, "; ", 2);
		memcpy(j + c->len + 2, v.ptr, v.len);
		*c = (struct ig_str){j, c->len + 2 + v.len};
		return 0;
	}
	if (st->nh >= maxh) {
		st->refuse = 431;
		return 0;
	}
	if (st->nh == st->caph) {
		size_t cap = st->caph ? 2 * st->caph : 16;
		struct ig_http_header *a = ig_arena_alloc(&st->arena, (cap + 1) * sizeof *a);
		if (!a) {
			st->refuse = 500;
			return 0;
		}
		if (st->nh)
			memcpy(a, st->hdrs, st->nh * sizeof *a);
		st->hdrs = a;
		st->caph = cap;
	}
	st->hdrs[st->nh++] = (struct ig_http_header){n, v};
	if (!st->cookie && ig_str_eq_cstr(n, "cookie"))
		st->cookie = st->nh;
	return 0;
}

/* An authority as scheme-based normalization (RFC 3986 §6.2.3) compares
 * it: without the scheme's default port, or an empty one. */
static struct ig_str without_default_port(struct ig_str a, struct ig_str scheme)
{
	struct ig_str port = ig_str_eq_cstr(scheme, "https") ? IG_STR(":443") : IG_STR(":80");
	if (a.len > port.len && !memcmp(a.ptr + a.len - port.len, port.ptr, port.len))
		a.len -= port.len;
	else if (a.len && a.ptr[a.len - 1] == ':')
		a.len--;
	return a;
}

/* What the HTTP/1.1 front end refuses is malformed here too, and answered
 * 400 as a request without :method or :path is: a :path with a byte that
 * is no VCHAR (obs-text, controls: nghttp2 lets 0x80-0xff through) or
 * with a fragment; an authority that is not one, userinfo included (RFC
 * 9113 §8.3.1: it MUST NOT be in :authority); more than one host field;
 * and a host field that names another authority than :authority (RFC
 * 9113 §8.3.1), compared after scheme-based normalization. */
static bool request_well_formed(const struct ig_h2_stream *st)
{
	for (size_t i = 0; i < st->path.len; i++) {
		unsigned char ch = (unsigned char)st->path.ptr[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '#')
			return false;
	}
	/* "*" is OPTIONS's alone (RFC 9113 §8.3.1), as over HTTP/1.1. */
	if (ig_str_eq_cstr(st->path, "*") && !ig_str_eq_cstr(st->method, "OPTIONS"))
		return false;
	if (!ig_srv_authority_ok(st->authority))
		return false;
	const struct ig_http_header *host = NULL;
	for (size_t i = 0; i < st->nh; i++) {
		if (!ig_str_eq_cstr(st->hdrs[i].name, "host"))
			continue;
		if (host || !ig_srv_authority_ok(st->hdrs[i].value))
			return false;
		host = &st->hdrs[i];
	}
	return !host || !st->authority.len ||
	       ig_str_ieq(without_default_port(host->value, st->scheme),
			  without_default_port(st->authority, st->scheme));
}

/* The head is complete: the request as an HTTP/1.1 one would look. */
static void head_complete(struct ig_h2 *h, struct ig_h2_stream *st, const nghttp2_frame *f)
{
	st->head_done = true;
	st->body_last_ns = now_of(h);
	/* A head that ends the stream ends the request, refused or not: an
	 * answer to it closes the stream, with no reset after (RFC 9113
	 * §5.1: nothing but PRIORITY on a closed stream). */
	bool ends = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (ends) {
		st->body_done = true;
		st->ex.body_length = 0;
	}
	if (st->refuse)
		return;
	struct ig_http_request *r = &st->ex.req;
	if (!st->method.len || !st->path.len) {
		st->refuse = ig_str_eq_cstr(st->method, "CONNECT") ? 405 : 400;
		return;
	}
	if (!request_well_formed(st)) {
		st->refuse = 400;
		return;
	}
	r->method = st->method;
	r->target = st->path;
	const char *q = memchr(st->path.ptr, '?', st->path.len);
	r->path = (struct ig_str){st->path.ptr, q ? (size_t)(q - st->path.ptr) : st->path.len};
	r->query = q ? (struct ig_str){q + 1, st->path.len - r->path.len - 1}
		     : (struct ig_str){st->path.ptr + st->path.len, 0};
	int norm = ig_srv_normalize_path(&st->arena, r);
	if (norm < 0) {
		st->refuse = norm == -2 ? 400 : 500;
		return;
	}
	r->minor_version = 1;
	/* :authority is the Host (RFC 9113 §8.3.1); a Host field alone is
	 * kept as it came, and one with :authority names the same (checked
	 * above). Room for one more was left in the array. */
	if (st->authority.len) {
		size_t i = 0;
		while (i < st->nh && !ig_str_eq_cstr(st->hdrs[i].name, "host"))
			i++;
		if (i < st->nh) {
			st->hdrs[i].value = st->authority;
		} else {
			if (st->nh == st->caph) {
				struct ig_http_header *a =
				    ig_arena_alloc(&st->arena, (st->nh + 1) * sizeof *a);
				if (!a) {
					st->refuse = 500;
					return;
				}
				if (st->nh)
					memcpy(a, st->hdrs, st->nh * sizeof *a);
				st->hdrs = a;
				st->caph = st->nh + 1;
			}
			st->hdrs[st->nh++] = (struct ig_http_header){IG_STR("host"), st->authority};
		}
	}
	r->headers = st->hdrs;
	r->num_headers = st->nh;
	/* A declared length over the ceiling is refused before the body,
	 * unless the body is to be streamed (settle); the framing rules are
	 * HTTP/1.1's (nghttp2 has already refused what HTTP/2 forbids,
	 * Transfer-Encoding among them). */
	struct ig_http_framing fr;
	if (ig_http_request_framing(r, &fr) < 0)
		st->refuse = 400;
	else if (fr.kind == IG_BODY_LENGTH && fr.length > cfg_of(h)->max_body_bytes)
		st->long_body = true;
	st->ex.body_length = ends ? 0 : fr.kind == IG_BODY_LENGTH ? (int64_t)fr.length : -1;
}

/* One more reset from the client; false when it has sent too many. */
static bool reset_allowed(struct ig_h2 *h)
{
	uint64_t now = ig_now_ns();
	uint64_t earned = (now - h->resets_ns) / (1000000000u / RESETS_PER_S);
	if (earned) {
		uint64_t left = h->resets_left + earned;
		h->resets_left = left > RESETS_BURST ? RESETS_BURST : (uint32_t)left;
		h->resets_ns = now;
	}
	if (h->resets_left == 0)
		return false;
	h->resets_left--;
	return true;
}

/* Charges a reset to the budget; past it, the session ends. */
static void charge_reset(struct ig_h2 *h)
{
	if (reset_allowed(h))
		return;
	ig_info("client %s: HTTP/2: too many streams reset: closing", h->c->peer);
	nghttp2_session_terminate_session(h->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

static void final_goaway(struct ig_h2 *h);

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct ig_h2 *h = ud;
	struct ig_h2_stream *st = f->hd.stream_id ? stream_of(h, f->hd.stream_id) : NULL;
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && h->ping_ns &&
	    memcmp(f->ping.opaque_data, DRAIN_PING, 8) == 0) {
		final_goaway(h);
		return 0;
	}
	if (f->hd.type == NGHTTP2_RST_STREAM) {
		if (st)
			st->reset_seen = true;
		charge_reset(h);
		return 0;
	}
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && !st->head_done) {
		head_complete(h, st, f);
		return 0;
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		st->body_done = true;
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct ig_h2 *h = ud;
	struct ig_h2_stream *st = stream_of(h, id);
	if (st && st->ex.body_streaming && st->in_handler) {
		/* A streamed body: kept until the handler takes it, credit with
		 * it (ig_http_body_consume). */
		st->body_last_ns = now_of(h);
		if (ig_buf_append(&st->ex.body, data, len) == 0) {
			st->progress = true;
			st->unacked += len;
			return 0; /* settle() tells the handler, after the input */
		}
		/* Out of memory: the stream cannot go on whole. */
		st->reset_seen = true;
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
	} else if (st && !st->refuse && !st->dispatched) {
		st->body_last_ns = now_of(h);
		if (ig_buf_append(&st->ex.body, data, len) == 0) {
			st->progress = true;
			st->unacked += len;
			h->arriving += len;
			return 0;
		}
		st->refuse = 413;
	}
	/* Bytes nobody keeps: their credit goes back at once. */
	nghttp2_session_consume_connection(ng, len);
	if (st && !st->closed)
		nghttp2_session_consume_stream(ng, id, len);
	return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct ig_h2 *h = ud;
	struct ig_h2_stream *st = f->hd.stream_id ? stream_of(h, f->hd.stream_id) : NULL;
	if (st && st->reset_after && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) {
		st->reset_after = false;
		if (!st->body_done)
			nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct ig_h2 *h = ud;
	struct ig_h2_stream *st = stream_of(h, id);
	if (!st)
		return 0;
	st->closed = true;
	/* A stream the client made nghttp2 reset (a WINDOW_UPDATE that
	 * overflows its window, a frame the stream's state forbids, a head
	 * too large) frees its slot as a client's reset does, after costing
	 * us a request: it is charged alike ("MadeYouReset",
	 * CVE-2025-8671; Envoy counts every premature reset). */
	if (code != NGHTTP2_NO_ERROR && !st->reset_seen)
		charge_reset(h);
	return 0;
}

/* The response body as nghttp2 frames it. */
static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct ig_h2_stream *st = src->ptr;
	size_t pend = st->out.len - st->out_off;
	if (pend == 0 && !st->eof) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = pend < length ? pend : length;
	if (n) /* (an empty end has no buffer to copy from) */
		memcpy(buf, st->out.ptr + st->out_off, n);
	st->out_off += n;
	st->h->pending -= n;
	st->sent_ns = now_of(st->h);
	if (st->out_off == st->out.len) {
		st->out.len = 0;
		st->out_off = 0;
		if (st->eof)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		/* The stream ends with the trailing HEADERS instead (nghttp2
		 * copies the fields; an empty last DATA frame is not sent). */
		if (st->eof && st->ntrailers &&
		    nghttp2_submit_trailer(ng, id, st->trailers, st->ntrailers) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)n;
}

/* ---- after nghttp2 returns ---- */

static void server_answer(struct ig_h2 *h, struct ig_h2_stream *st, int status)
{
	const char *msg = status == 431	  ? "request header fields too large"
			  : status == 414 ? "request target too long"
			  : status == 413 ? "request body too large"
			  : status == 408 ? "request timed out"
			  : status == 405 ? "CONNECT is not served"
			  : status == 500 ? "out of memory"
					  : "malformed HTTP/2 request";
	st->in_handler = true;
	h->c->srv->busy++;
	ig_srv_describe(h->c, &st->ex);
	if (cfg_of(h)->on_refused) {
		/* A head refused before it was complete still names what it
		 * had (the pseudo-headers come first). */
		struct ig_http_request *r = &st->ex.req;
		if (!r->method.len && !r->path.len) {
			const char *q = memchr(st->path.ptr ? st->path.ptr : "", '?', st->path.len);
			r->method = st->method;
			r->path = (struct ig_str){st->path.ptr,
						  q ? (size_t)(q - st->path.ptr) : st->path.len};
		}
		cfg_of(h)->on_refused(&st->ex, status, msg, h->c->srv->ctx);
	}
	ig_srv_refuse(h->c->srv, &st->ex, status, msg);
	leave_arriving(h, st);
	/* The client may still be sending a body we will not read: once the
	 * answer is out, a reset (NO_ERROR) tells it to stop (RFC 9113
	 * §8.1); sooner, it would overtake the answer. */
	st->reset_after = !st->body_done;
}

/* Flow-control credit back for body bytes received (see `arriving`). */
static void give_credit(struct ig_h2 *h)
{
	size_t budget = 2 * cfg_of(h)->max_body_bytes;
	int32_t oldest = INT32_MAX;
	for (struct ig_h2_stream *st = h->streams; st; st = st->next)
		if (!st->dispatched && !st->closed && st->id < oldest)
			oldest = st->id;
	for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
		if (!st->unacked || st->closed || (st->ex.body_streaming && st->in_handler))
			continue;
		if (st->dispatched || h->arriving <= budget || st->id == oldest) {
			nghttp2_session_consume(h->ng, st->id, st->unacked);
			st->unacked = 0;
		}
	}
}

/* Expect: 100-continue (RFC 9110 §10.1.1): the gateway reads the body
 * to route on it, so it answers the 100 itself, as over HTTP/1.1 (and as
 * Envoy does); the expectation is not passed on. */
static void expect_continue(struct ig_h2 *h, struct ig_h2_stream *st)
{
	for (size_t i = 0; i < st->nh; i++) {
		if (!ig_str_eq_cstr(st->hdrs[i].name, "expect") ||
		    !ig_str_ieq_cstr(ig_str_trim(st->hdrs[i].value), "100-continue"))
			continue;
		static const nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3,
					      NGHTTP2_NV_FLAG_NONE};
		nghttp2_submit_headers(h->ng, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
		return;
	}
}

/* Answers, hands over and frees, for every stream that is due. The
 * handler may answer at once; nothing is freed while it runs. */
static void settle(struct ig_h2 *h)
{
	struct ig_http_server *s = h->c->srv;
	for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
		if (st->dispatched || !st->head_done || st->closed)
			continue;
		if (st->refuse) {
			server_answer(h, st, st->refuse);
			continue;
		}
		bool stream = false;
		if (!st->body_done && !st->stream_asked && s->cfg.stream_body) {
			st->stream_asked = true;
			stream = s->cfg.stream_body(&st->ex, s->ctx);
		}
		if (st->long_body && !stream) {
			st->refuse = 413;
			server_answer(h, st, st->refuse);
			continue;
		}
		if (!st->body_done && !st->continued) {
			st->continued = true;
			expect_continue(h, st);
		}
		if (!st->body_done && !stream) {
			if (st->progress && s->cfg.body_progress && st->ex.body.len) {
				st->progress = false;
				s->cfg.body_progress(&st->ex, s->ctx);
			}
			continue;
		}
		leave_arriving(h, st);
		st->in_handler = true;
		s->busy++;
		st->ex.body_streaming = stream;
		st->ex.body_done = st->body_done;
		st->progress = false;
		st->ex.start_ns = ig_now_ns();
		ig_srv_describe(h->c, &st->ex);
		s->handler(&st->ex, s->ctx);
	}
	/* Streamed bodies: the handler hears of new bytes and of the end. */
	for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
		if (!st->ex.body_streaming || !st->in_handler || st->closed)
			continue;
		if (!st->progress && st->ex.body_done == st->body_done)
			continue;
		st->progress = false;
		st->ex.body_done = st->body_done;
		if (st->ex.on_body)
			st->ex.on_body(&st->ex);
	}
	give_credit(h);
	for (struct ig_h2_stream *st = h->streams, *next; st; st = next) {
		next = st->next;
		if (!st->closed)
			continue;
		if (st->in_handler) {
			/* The client reset the stream (or the session ended). */
			st->in_handler = false;
			s->busy--;
			void (*abort_cb)(struct ig_http_exchange *) = st->ex.on_abort;
			st->ex.on_abort = NULL;
			st->ex.on_writable = NULL;
			if (abort_cb)
				abort_cb(&st->ex);
		}
		stream_free(h, st);
	}
}

/* Streams that were told to hold back and may write again. */
static void notify_writable(struct ig_h2 *h)
{
	size_t conn_pend = h->c->out.len - h->c->out_off;
	size_t hw = cfg_of(h)->write_high_water;
	if (conn_pend > hw / 2 || h->pending + conn_pend > hw)
		return;
	for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
		if (!st->want_writable || !st->in_handler || st->closed)
			continue;
		if (st->out.len - st->out_off > hw / 2)
			continue;
		st->want_writable = false;
		if (st->ex.on_writable)
			st->ex.on_writable(&st->ex);
	}
}

/* When a stream is due for its timeout: a request whose head or body went
 * silent for body_timeout, or a response the client's flow control has
 * held back for send_timeout (its window never opening, which no socket
 * timer sees). UINT64_MAX: none. */
static uint64_t due_of(const struct ig_h2 *h, const struct ig_h2_stream *st)
{
	const struct ig_http_server_config *cfg = cfg_of(h);
	if (st->closed)
		return UINT64_MAX;
	if (!st->dispatched)
		return st->body_last_ns + cfg->body_timeout_ms * 1000000u;
	/* (A streamed body's silence is the handler's to bound.) */
	if (st->out.len > st->out_off)
		return st->sent_ns + cfg->send_timeout_ms * 1000000u;
	return UINT64_MAX;
}

/* The timer the session needs now: the first stream due, or the
 * keep-alive timeout with no stream open. Pending output has the send
 * timer (server.c). */
static void arm(struct ig_h2 *h)
{
	struct ig_http_conn *c = h->c;
	if (c->out.len > c->out_off)
		return;
	const struct ig_http_server_config *cfg = cfg_of(h);
	uint64_t now = ig_now_ns(), first = UINT64_MAX;
	for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
		uint64_t due = due_of(h, st);
		if (due < first)
			first = due;
	}
	if (h->ping_ns && h->ping_ns + DRAIN_PING_MS * 1000000u < first)
		first = h->ping_ns + DRAIN_PING_MS * 1000000u;
	if (first != UINT64_MAX) {
		uint64_t ms = first > now ? (first - now + 999999) / 1000000u : 0;
		ig_srv_arm(c, TM_BODY, ms ? ms : 1);
	} else if (h->nstreams == 0) {
		uint64_t idle_ms = (now - h->idle_ns) / 1000000u;
		uint64_t left =
		    cfg->keepalive_timeout_ms > idle_ms ? cfg->keepalive_timeout_ms - idle_ms : 0;
		/* First a wake-up to give the frame buffer's pages back, a
		 * second after the last stream or the last frame since (a
		 * PING's ACK writes into it again). */
		if (h->framebuf && !h->framebuf_dropped) {
			uint64_t quiet = h->quiet_ns > h->idle_ns ? h->quiet_ns : h->idle_ns;
			uint64_t quiet_ms = (now - quiet) / 1000000u;
			uint64_t in = quiet_ms < FRAMEBUF_IDLE_MS ? FRAMEBUF_IDLE_MS - quiet_ms : 1;
			if (in < left)
				left = in;
		}
		ig_srv_arm(c, TM_IDLE, left ? left : 1);
	} else {
		ig_srv_arm(c, TM_NONE, 0);
	}
}

/* Frames out while the socket takes them; then what follows. Returns -1
 * when the connection is to close. */
static int pump(struct ig_h2 *h)
{
	struct ig_http_conn *c = h->c;
	for (int round = 0; round < 2; round++) {
		while (c->out.len - c->out_off < OUT_HIGH) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(h->ng, &p);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			h->framebuf_dropped = false;
			if (h->nstreams == 0)
				h->quiet_ns = now_of(h);
			if (ig_buf_append(&c->out, p, (size_t)n) < 0)
				return -1;
		}
		if (ig_srv_flush(c) < 0)
			return -1;
		settle(h);
		notify_writable(h);
		/* The handler's answers and on_writable may have queued more. */
		if (!nghttp2_session_want_write(h->ng))
			break;
	}
	if (h->failed)
		return -1;
	bool done = !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
	if ((done || (h->draining && h->nstreams == 0)) && c->out.len == c->out_off)
		return -1;
	if (c->in.len == 0)
		ig_buf_free(&c->in);
	if (c->out.len == c->out_off) {
		ig_buf_free(&c->out);
		c->out_off = 0;
	}
	arm(h);
	ig_srv_update(c);
	return 0;
}

static void pump_task(struct ig_loop *loop, struct ig_task *t)
{
	struct ig_h2 *h = t->data;
	if (pump(h) < 0)
		ig_srv_free(h->c);
}

/* ---- nghttp2's memory ---- */

/* The session's allocations are small blocks kept per thread
 * (core/smallblock.h: dozens of streams in flight allocate the same few
 * sizes), but for its frame buffer and its first zeroed page, which are
 * the C library's, page-aligned, so that their pages can be given back
 * while the connection idles (drop_framebuf). */
static void *h2_malloc(size_t size, void *ud)
{
	struct ig_h2 *h = ud;
	if (size != FRAMEBUF_BYTES || h->framebuf)
		return ig_smallblock_alloc(size);
	void *p = NULL;
	if (posix_memalign(&p, PAGE_BYTES, size) != 0)
		return NULL;
	h->framebuf = p;
	h->framebuf_dropped = false;
	return p;
}

static void h2_free(void *p, void *ud)
{
	struct ig_h2 *h = ud;
	if (!p)
		return;
	if (p == h->zeropage) {
		h->zeropage = NULL;
		free(p);
	} else if (p == h->framebuf) {
		h->framebuf = NULL;
		free(p);
	} else {
		ig_smallblock_free(p);
	}
}

static void *h2_calloc(size_t n, size_t size, void *ud)
{
	struct ig_h2 *h = ud;
	if (size && n == PAGE_BYTES / size && n * size == PAGE_BYTES && !h->zeropage) {
		void *p = NULL;
		if (posix_memalign(&p, PAGE_BYTES, PAGE_BYTES) != 0)
			return NULL;
		memset(p, 0, PAGE_BYTES);
		h->zeropage = p;
		return p;
	}
	return ig_smallblock_calloc(n, size);
}

static void *h2_realloc(void *p, size_t size, void *ud)
{
	struct ig_h2 *h = ud;
	if (!p) /* how nghttp2 1.52 allocates the frame buffer */
		return h2_malloc(size, ud);
	size_t had = p == h->framebuf ? FRAMEBUF_BYTES : p == h->zeropage ? PAGE_BYTES : 0;
	if (!had)
		return ig_smallblock_realloc(p, size);
	/* The frame buffer or the zeroed page, grown or shrunk: a block of
	 * ours from now on. */
	void *q = ig_smallblock_alloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, had < size ? had : size);
	h2_free(p, ud);
	return q;
}

/* The frame buffer's whole pages back to the kernel: nothing of it is
 * read before it is written again (each frame is serialized into it by
 * nghttp2_session_mem_send, and pump copies it out at once), and nothing
 * is pending while the session wants to write nothing. */
static void drop_framebuf(struct ig_h2 *h)
{
	if (!h->framebuf || h->framebuf_dropped)
		return;
	if (nghttp2_session_want_write(h->ng)) {
		h->quiet_ns = ig_now_ns(); /* not now: a second on */
		return;
	}
	madvise(h->framebuf, FRAMEBUF_BYTES / PAGE_BYTES * PAGE_BYTES, MADV_DONTNEED);
	h->framebuf_dropped = true;
	/* A page that holds only zeros comes back as zeros: giving it back
	 * changes nothing nghttp2 could read. */
	static const char zero[PAGE_BYTES];
	if (h->zeropage && !memcmp(h->zeropage, zero, PAGE_BYTES))
		madvise(h->zeropage, PAGE_BYTES, MADV_DONTNEED);
}

/* ---- server.c's side ---- */

int ig_h2_start(struct ig_http_conn *c)
{
	struct ig_h2 *h = calloc(1, sizeof *h);
	nghttp2_session_callbacks *cb = NULL;
	if (!h || nghttp2_session_callbacks_new(&cb) != 0)
		goto fail;
	h->c = c;
	h->resets_left = RESETS_BURST;
	h->resets_ns = ig_now_ns();
	h->idle_ns = h->resets_ns;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	/* Flow-control credit is ours to give (give_credit). Closed streams
	 * are not kept: nghttp2 would keep up to MAX_STREAMS of them per
	 * connection for RFC 7540's priority tree, which RFC 9113 §5.3.2
	 * deprecates and nothing here uses, so an idle connection would hold
	 * tens of KiB (Envoy and our gRPC server turn it off alike). */
	nghttp2_option *opt = NULL;
	int rc = nghttp2_option_new(&opt);
	if (rc == 0) {
		nghttp2_option_set_no_auto_window_update(opt, 1);
		nghttp2_option_set_no_closed_streams(opt, 1);
		/* Responses are encoded with a small HPACK dynamic table:
		 * what they carry that changes (Date each second, a pod's
		 * X-Request-Id) would fill 4 KiB with entries that cost an idle
		 * connection about 15 KiB; DEFLATE_TABLE still indexes the
		 * fields a connection's responses repeat. */
		nghttp2_option_set_max_deflate_dynamic_table_size(opt, DEFLATE_TABLE);
		nghttp2_mem mem = {h, h2_malloc, h2_free, h2_calloc, h2_realloc};
		rc = nghttp2_session_server_new3(&h->ng, cb, h, opt, &mem);
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cb);
	if (rc != 0) {
		h->ng = NULL;
		goto fail;
	}
	const struct ig_http_server_config *cfg = &c->srv->cfg;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
	     (uint32_t)(cfg->max_header_bytes < UINT32_MAX ? cfg->max_header_bytes : UINT32_MAX)},
	};
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	c->h2 = h;
	c->state = ST_H2;
	if (c->srv->going_away)
		ig_h2_notice(c);
	return ig_h2_input(c);
fail:
	if (h && h->ng)
		nghttp2_session_del(h->ng);
	free(h);
	ig_srv_free(c);
	return -1;
}

int ig_h2_input(struct ig_http_conn *c)
{
	struct ig_h2 *h = c->h2;
	if (c->in.len) {
		ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)c->in.ptr, c->in.len);
		if (n < 0) {
			ig_debug("client %s: HTTP/2: %s", c->peer, nghttp2_strerror((int)n));
			h->failed = true;
		}
		c->in.len = 0;
	}
	return ig_h2_writable(c);
}

int ig_h2_writable(struct ig_http_conn *c)
{
	if (pump(c->h2) == 0)
		return 0;
	ig_srv_free(c);
	return -1;
}

int ig_h2_timer(struct ig_http_conn *c, enum timer_kind kind)
{
	struct ig_h2 *h = c->h2;
	if (kind == TM_BODY) {
		uint64_t now = ig_now_ns();
		if (h->ping_ns && now >= h->ping_ns + DRAIN_PING_MS * 1000000u)
			final_goaway(h); /* the client did not answer the PING */
		for (struct ig_h2_stream *st = h->streams; st; st = st->next) {
			if (due_of(h, st) > now)
				continue;
			if (st->dispatched) {
				ig_info(
				    "client %s: HTTP/2 stream %d took no response bytes for %llu "
				    "ms: reset",
				    c->peer, st->id,
				    (unsigned long long)cfg_of(h)->send_timeout_ms);
				h->pending -= st->out.len - st->out_off;
				st->out.len = st->out_off = 0;
				st->reset_seen = true;
				nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->id,
							  NGHTTP2_CANCEL);
			} else if (st->head_done && !st->refuse) {
				st->refuse = 408;
				server_answer(h, st, 408);
			} else if (!st->head_done) {
				leave_arriving(h, st); /* nothing more to wait for */
				st->reset_seen = true;
				nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->id,
							  NGHTTP2_CANCEL);
			}
		}
		return ig_h2_writable(c);
	}
	/* The frame buffer's wake-up while the keep-alive time lasts. */
	if (kind == TM_IDLE && h->nstreams == 0 && !h->draining &&
	    (ig_now_ns() - h->idle_ns) / 1000000u < cfg_of(h)->keepalive_timeout_ms) {
		drop_framebuf(h);
		arm(h);
		return 0;
	}
	/* Idle (no stream) or a head that never came: say goodbye. */
	nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
			      NULL, 0);
	h->draining = true;
	return ig_h2_writable(c);
}

void ig_h2_notice(struct ig_http_conn *c)
{
	struct ig_h2 *h = c->h2;
	if (h->notice_sent || h->draining)
		return;
	h->notice_sent = true;
	nghttp2_submit_shutdown_notice(h->ng);
	kick(h);
}

static void final_goaway(struct ig_h2 *h)
{
	h->ping_ns = 0;
	h->draining = true;
	nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
			      NULL, 0);
	kick(h);
}

void ig_h2_drain(struct ig_http_conn *c)
{
	struct ig_h2 *h = c->h2;
	if (h->draining || h->ping_ns)
		return;
	ig_h2_notice(c);
	/* The round trip that lets streams the client opened before the
	 * notice reached it arrive (RFC 9113 §6.8). */
	if (nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, (const uint8_t *)DRAIN_PING) != 0) {
		final_goaway(h);
		return;
	}
	h->ping_ns = ig_now_ns();
	kick(h);
}

bool ig_h2_busy(const struct ig_http_conn *c)
{
	/* A connection waiting for the PING's answer may still get streams. */
	return c->h2->nstreams > 0 || c->h2->ping_ns;
}

size_t ig_h2_memory(const struct ig_http_conn *c)
{
	size_t b = sizeof *c->h2;
	for (const struct ig_h2_stream *st = c->h2->streams; st; st = st->next)
		b += sizeof *st + st->arena.used + st->ex.body.cap + st->out.cap;
	return b;
}

void ig_h2_free(struct ig_http_conn *c)
{
	struct ig_h2 *h = c->h2;
	if (!h)
		return;
	c->h2 = NULL;
	ig_task_cancel(c->srv->loop, &h->task);
	while (h->streams) {
		struct ig_h2_stream *st = h->streams;
		if (st->in_handler) {
			st->in_handler = false;
			c->srv->busy--;
			if (st->ex.on_abort)
				st->ex.on_abort(&st->ex);
		}
		stream_free(h, st);
	}
	nghttp2_session_del(h->ng);
	free(h);
}

/* ---- the exchange calls ---- */

static bool hop_by_hop(struct ig_str name)
{
	return ig_str_ieq_cstr(name, "connection") || ig_str_ieq_cstr(name, "keep-alive") ||
	       ig_str_ieq_cstr(name, "proxy-connection") ||
	       ig_str_ieq_cstr(name, "transfer-encoding") || ig_str_ieq_cstr(name, "upgrade") ||
	       ig_str_ieq_cstr(name, "content-length");
}

static nghttp2_nv nv_of(const char *name, size_t nlen, const char *value, size_t vlen)
{
	return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

/* Submits the response head; the body, if any, follows from `out`. */
static int submit(struct ig_h2_stream *st, int status, const char *content_type,
		  const struct ig_http_header *hdrs, size_t n, int64_t content_length)
{
	struct ig_h2 *h = st->h;
	struct ig_http_exchange *ex = &st->ex;
	size_t total = n + ex->nresp_extra;
	/* Besides the fields: :status, date, content-type, content-length. */
	nghttp2_nv *nva = ig_arena_alloc(&st->arena, (total + 4) * sizeof *nva);
	char *status_s = ig_arena_alloc(&st->arena, 20), *len_s = ig_arena_alloc(&st->arena, 20);
	if (!nva || !status_s || !len_s)
		return -1;
	const char *code = ig_srv_decimal(status_s, (uint64_t)(status >= 0 ? status % 1000 : 0));
	size_t k = 0;
	nva[k++] = nv_of(":status", 7, code, (size_t)(status_s + 20 - code));
	/* RFC 9110 §6.6.1, unless the response has one (a pod's stays). The
	 * value is this thread's cached copy: nghttp2 copies every field it
	 * is given without NGHTTP2_NV_FLAG_NO_COPY_VALUE. */
	if (!ig_http_has_date(hdrs, n, ex->resp_extra, ex->nresp_extra)) {
		struct ig_str d = ig_http_date_now();
		nva[k++] = nv_of("date", 4, d.ptr, d.len);
	}
	if (content_type)
		nva[k++] = nv_of("content-type", 12, content_type, strlen(content_type));
	for (size_t i = 0; i < total; i++) {
		const struct ig_http_header *hd = i < n ? &hdrs[i] : &ex->resp_extra[i - n];
		if (hop_by_hop(hd->name))
			continue;
		char *lower = ig_arena_alloc(&st->arena, hd->name.len + 1);
		if (!lower)
			return -1;
		for (size_t j = 0; j < hd->name.len; j++)
			lower[j] = (char)tolower((unsigned char)hd->name.ptr[j]);
		nva[k++] = nv_of(lower, hd->name.len, hd->value.ptr, hd->value.len);
	}
	bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
	bool head = ig_str_eq_cstr(ex->req.method, "HEAD");
	st->no_body = bodyless || head;
	/* An empty body needs no length: END_STREAM on the HEADERS says it
	 * (and a gRPC client would take the field for trailing metadata). */
	if (content_length > 0 || (content_length == 0 && head && !bodyless)) {
		const char *d = ig_srv_decimal(len_s, (uint64_t)content_length);
		nva[k++] = nv_of("content-length", 14, d, (size_t)(len_s + 20 - d));
	}
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
	/* No body: END_STREAM goes on the HEADERS frame (a gRPC
	 * "Trailers-Only" answer must come as that one frame). */
	bool body = !st->no_body && !(st->eof && st->out.len == 0) && content_length != 0;
	if (nghttp2_submit_response(h->ng, st->id, nva, k, body ? &prd : NULL) != 0)
		return -1;
	st->answered = true;
	return 0;
}

static void ended(struct ig_h2_stream *st)
{
	if (st->in_handler) {
		st->in_handler = false;
		st->h->c->srv->busy--;
	}
	st->ex.on_abort = NULL;
	st->ex.on_writable = NULL;
	st->ex.on_body = NULL;
	kick(st->h);
}

int ig_h2_respond(struct ig_http_exchange *ex, int status, const char *content_type,
		  const void *body, size_t len, const struct ig_http_header *extra, size_t nextra)
{
	struct ig_h2_stream *st = ex->h2;
	if (st->answered || !st->in_handler)
		return -1;
	st->eof = true;
	bool head = ig_str_eq_cstr(ex->req.method, "HEAD");
	if (len && !head && ig_buf_append(&st->out, body, len) < 0) {
		ig_h2_abort(ex);
		return 0;
	}
	if (!head)
		st->h->pending += len;
	if (submit(st, status, content_type, extra, nextra, (int64_t)len) < 0) {
		ig_h2_abort(ex);
		return 0;
	}
	ended(st);
	return 0;
}

int ig_h2_start_response(struct ig_http_exchange *ex, int status, const struct ig_http_header *hdrs,
			 size_t n, int64_t content_length)
{
	struct ig_h2_stream *st = ex->h2;
	if (st->answered || !st->in_handler)
		return -1;
	if (submit(st, status, NULL, hdrs, n, content_length) < 0)
		return -1;
	kick(st->h);
	return 0;
}

int ig_h2_write(struct ig_http_exchange *ex, const void *data, size_t len)
{
	struct ig_h2_stream *st = ex->h2;
	if (!st->answered || !st->in_handler || st->closed)
		return -1;
	if (len == 0 || st->no_body)
		return 0;
	if (st->out.len == st->out_off)
		st->sent_ns = now_of(st->h); /* the send timeout starts from here */
	if (ig_buf_append(&st->out, data, len) < 0)
		return -1;
	st->h->pending += len;
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->h->ng, st->id);
	}
	kick(st->h);
	struct ig_http_conn *c = st->h->c;
	size_t hw = cfg_of(st->h)->write_high_water;
	size_t conn_pend = c->out.len - c->out_off;
	if (st->out.len - st->out_off > hw || conn_pend > hw ||
	    st->h->pending + conn_pend > 2 * hw) {
		st->want_writable = true;
		return 1;
	}
	return 0;
}

int ig_h2_end(struct ig_http_exchange *ex)
{
	struct ig_h2_stream *st = ex->h2;
	if (!st->answered || !st->in_handler)
		return -1;
	st->eof = true;
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->h->ng, st->id);
	}
	ended(st);
	return 0;
}

void ig_h2_body_consume(struct ig_http_exchange *ex, size_t n)
{
	struct ig_h2_stream *st = ex->h2;
	if (n > ex->body.len)
		n = ex->body.len;
	ig_buf_consume(&ex->body, n);
	if (n > st->unacked)
		n = st->unacked;
	st->unacked -= n;
	if (n && !st->closed) {
		nghttp2_session_consume(st->h->ng, st->id, n);
		kick(st->h);
	}
}

int ig_h2_end_trailers(struct ig_http_exchange *ex, const struct ig_http_header *t, size_t n)
{
	struct ig_h2_stream *st = ex->h2;
	if (!st->answered || !st->in_handler)
		return -1;
	/* A head sent with END_STREAM (no body) leaves no place for them. */
	nghttp2_nv *nva = n ? ig_arena_alloc(&st->arena, n * sizeof *nva) : NULL;
	size_t k = 0;
	for (size_t i = 0; nva && i < n; i++) {
		if (!ig_http_trailer_allowed(t[i].name))
			continue;
		char *lower = ig_arena_alloc(&st->arena, t[i].name.len + 1);
		if (!lower)
			break;
		for (size_t j = 0; j < t[i].name.len; j++)
			lower[j] = (char)tolower((unsigned char)t[i].name.ptr[j]);
		nva[k++] = nv_of(lower, t[i].name.len, t[i].value.ptr, t[i].value.len);
	}
	st->trailers = nva;
	st->ntrailers = k;
	return ig_h2_end(ex);
}

void ig_h2_abort(struct ig_http_exchange *ex)
{
	struct ig_h2_stream *st = ex->h2;
	if (!st->closed) {
		st->reset_seen = true;
		nghttp2_submit_rst_stream(st->h->ng, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_INTERNAL_ERROR);
	}
	ended(st);
}
