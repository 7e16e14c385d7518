/* Internals shared by the gRPC server and client: one HTTP/2 connection
 * (a non-blocking socket, optional TLS, an nghttp2 session) pumped by the
 * event loop, and the 5-byte gRPC message framing. */
#ifndef IG_GRPC_GRPC_INT_H
#define IG_GRPC_GRPC_INT_H

/* Receive windows we announce: 1 MiB per stream and 16 MiB per
 * connection instead of HTTP/2's 64 KiB, so that a 400 KB prompt crosses
 * in one flight rather than waiting on WINDOW_UPDATEs (Envoy's defaults
 * are larger still). What a stream may hold is bounded by
 * max_message_bytes regardless. The server's connection window is 4 MiB
 * (server.c): what it receives it may have to answer. */
#define IG_GRPC_STREAM_WINDOW (1u << 20)
#define IG_GRPC_CONN_WINDOW (16 << 20)

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "event/loop.h"
#include "grpc/grpc.h"

#define GRPC_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)
#define GRPC_FRAME_HEADER 5

/* ---- message framing (frame.c) ---- */

/* Reassembles the messages of one direction of one stream. A zeroed
 * struct with max set is ready; the partial message is held in `msg`,
 * whose ceiling is max. */
struct grpc_reasm {
	uint8_t hdr[GRPC_FRAME_HEADER];
	size_t hdr_len; /* bytes of hdr filled */
	size_t need;	/* body bytes of the current message still missing */
	bool in_body;
	struct ig_buf msg;
	size_t max;
	/* With on_oversize set, a message over max is not an error: it is
	 * reported once, at its prefix, and its bytes are dropped as they
	 * come (skip counts those still to drop), never held. */
	bool (*on_oversize)(void *arg, size_t len);
	size_t skip;
};

/* Called for each whole message; returns false to stop feeding. */
typedef bool (*grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len);

/* Feeds DATA bytes: 0, IG_GRPC_RESOURCE_EXHAUSTED for a message over the
 * ceiling (without on_oversize), IG_GRPC_INTERNAL for a compressed one (no
 * encoding is ever supported: the server answers UNIMPLEMENTED when the
 * call named one), or -1 when fn or on_oversize asked to stop. */
int grpc_reasm_feed(struct grpc_reasm *r, const uint8_t *p, size_t len, grpc_msg_fn fn, void *arg);
/* True when a message has started and not ended (a truncated stream). */
bool grpc_reasm_partial(const struct grpc_reasm *r);
void grpc_reasm_free(struct grpc_reasm *r);

/* Decodes in place-free: into out (cap), NUL-terminated. */
void grpc_percent_decode(const uint8_t *in, size_t len, char *out, size_t cap);
/* "100m", "5S": the grpc-timeout value for ms milliseconds. */
void grpc_timeout_format(uint64_t ms, char *out, size_t cap);
/* A grpc-timeout value (PROTOCOL-HTTP2: at most 8 digits and a unit of
 * H, M, S, m, u or n) in nanoseconds; 0 when it is not one. */
uint64_t grpc_timeout_parse(struct ig_str v);
/* The gRPC status for an HTTP status other than 200. */
int grpc_status_from_http(int http_status);

/* Outgoing bytes of one stream: framed messages in a queue of blocks, read
 * by nghttp2's data source. A message is copied once, from its parts into
 * its block (small ones share the last block), and blocks are freed as
 * they are sent: nothing is moved or grown as the queue fills, which a
 * 400 KB body answered in 62 KB chunks would otherwise pay for in copies.
 * A zeroed struct is an empty queue; max bounds the bytes not yet taken
 * (0: no bound). */
struct grpc_outq_block;
struct grpc_outq {
	struct grpc_outq_block *head, *tail;
	size_t len; /* bytes queued and not taken */
	size_t max;
};
/* Queues one message, the concatenation of n parts, with its 5-byte
 * prefix. Returns 0, or -1 when it is over 4 GiB, would take the queue
 * past max, or memory ran out (nothing is queued then). */
int grpc_outq_pushv(struct grpc_outq *q, const struct ig_str *parts, size_t n);
size_t grpc_outq_len(const struct grpc_outq *q);
/* Copies at most len bytes out. */
size_t grpc_outq_take(struct grpc_outq *q, uint8_t *dst, size_t len);
void grpc_outq_free(struct grpc_outq *q);

/* ---- one HTTP/2 connection (h2conn.c) ---- */

struct ig_tls_conn;
struct h2conn;

struct h2conn_ops {
	/* TCP connected and TLS done (ALPN h2 when TLS): make the session. */
	int (*on_ready)(struct h2conn *c);
	/* The connection is over (error, peer close, both sides done). The
	 * owner ends its streams and calls h2conn_free. why: a few words. */
	void (*on_close)(struct h2conn *c, const char *why);
	/* Optional: after each round of reading and writing, while the
	 * connection lives (the server gives flow-control credit back here,
	 * once it knows how much of its output the peer took). */
	void (*after_io)(struct h2conn *c);
};

struct h2conn {
	struct ig_loop *loop;
	struct ig_io io;
	struct ig_task flush;
	struct ig_tls_conn *tls;
	nghttp2_session *ng;
	const struct h2conn_ops *ops;
	void *owner;
	uint8_t *wbuf; /* frames gathered to be written together; [woff, wlen) left */
	size_t wlen, woff;
	const uint8_t *out; /* a frame from nghttp2_session_mem_send not yet written */
	size_t outlen;
	bool connecting;  /* TCP connect in progress */
	bool handshaking; /* TLS handshake in progress */
	bool tls_wants_write;
	bool read_more; /* TLS bytes left unread when the read budget ran out */
	bool closed;	/* on_close was called */
	/* When the bytes waiting for the socket last moved: written, or
	 * gathered into an empty buffer (ig_loop_now's clock). */
	uint64_t wmoved_ns;
	/* When bytes last came in (ig_loop_now's clock; the start until
	 * then). */
	uint64_t rmoved_ns;
	int depth; /* pump calls on the stack */
	char why[64];
};

/* Takes fd (non-blocking). connecting: a TCP connect is in progress. tls:
 * taken too (its handshake is run first). on_ready comes from the loop,
 * never from here. Returns 0 or -1 (fd and tls are then the caller's). */
int h2conn_start(struct h2conn *c, struct ig_loop *loop, int fd, bool connecting,
		 struct ig_tls_conn *tls, const struct h2conn_ops *ops, void *owner);
/* DATA frames carry at most this much (and no more than the peer allows).
 * The writer keeps room for a whole one in its buffer each time it asks
 * nghttp2 for a frame, so that the streams' data sources can hand their
 * bytes over without nghttp2 copying them (NGHTTP2_DATA_FLAG_NO_COPY):
 * h2conn_send_data copies them from the stream's queue straight into the
 * buffer the socket is written from. */
#define GRPC_DATA_MAX (16 * 1024)
/* The send_data callback's work: the 9-byte frame header hd and len bytes
 * taken from q, into the write buffer. NGHTTP2_ERR_PAUSE (done; the
 * writer checks its room before the next frame), or
 * NGHTTP2_ERR_CALLBACK_FAILURE (no room, or padding, which we never ask
 * for). */
int h2conn_send_data(struct h2conn *c, const nghttp2_frame *f, const uint8_t *hd,
		     struct grpc_outq *q, size_t len);
/* How long bytes gathered for the socket have waited for it to take any
 * (0 when nothing waits): a peer that stops reading its socket. */
uint64_t h2conn_write_stalled_ns(const struct h2conn *c);
/* Ends the connection: on_close is called now (not from inside nghttp2). */
void h2conn_fail(struct h2conn *c, const char *why);
/* Something was submitted to the session: send it soon (from a task). */
void h2conn_kick(struct h2conn *c);
/* Stops everything now and frees the session and the socket; the struct
 * itself is the owner's. on_close is not called. */
void h2conn_free(struct h2conn *c);

#endif
