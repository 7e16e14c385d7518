/* An HTTP/1.1 server on the event loop: accepts connections, reads request
 * heads and whole bodies within limits (431, 413, 408 answered here; a
 * body may be streamed to the handler instead, stream_body), hands
 * each exchange to a handler, and writes the response, whole or streamed,
 * with backpressure. One request at a time per connection (pipelined bytes
 * wait in the buffer); keep-alive per RFC 9112. Used by the gateway's
 * listeners, the admin listener and the simulator.
 *
 * Costs: a request head is scanned once for its end, incrementally as its
 * bytes arrive, then parsed once and copied once into the exchange's arena.
 * An idle keep-alive connection holds no buffer. When accept() runs out of
 * file descriptors the server stops accepting for a back-off period
 * instead of spinning on a listener that stays readable.
 *
 * TLS (ig_http_server_new_tls): each accepted connection first completes
 * a non-blocking handshake within header_timeout_ms (the same deadline
 * then covers the request head), then the same HTTP/1.1 machinery runs
 * over SSL_read/SSL_write: limits, timeouts, keep-alive, pipelining,
 * backpressure and the send timeout behave as in clear text. A client that
 * sends plain HTTP to a TLS server gets a 400 in clear text and a clean
 * close; any other failed handshake is closed after OpenSSL's alert. Every
 * close after a handshake sends close_notify. An idle TLS connection holds
 * its SSL object (a few KiB) but no record buffers. A plain-text server
 * runs none of the TLS code. */
#ifndef IG_HTTP_SERVER_H
#define IG_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "event/loop.h"
#include "http/parse.h"

struct ig_http_server;
struct ig_http_conn;
struct ig_http_exchange;
struct ig_h2_stream;
struct ig_tls_ctx;

struct ig_http_server_config {
	size_t max_header_bytes;       /* head larger: 431 (default 64 KiB) */
	size_t max_headers;	       /* more header lines: 431 (default 128) */
	size_t max_body_bytes;	       /* body larger: 413 (default 16 MiB) */
	uint64_t header_timeout_ms;    /* whole head must arrive within: 408 (default 30 s) */
	uint64_t body_timeout_ms;      /* max silence while reading a body: 408 (default 60 s) */
	uint64_t keepalive_timeout_ms; /* idle keep-alive connection closed after (default 75 s) */
	size_t write_high_water;       /* ig_http_write returns 1 above this (default 256 KiB) */
	uint64_t send_timeout_ms;      /* a client taking none of our pending output for this
					  long is closed; the handler gets on_abort (default 60 s) */
	/* Called (with the handler's ctx) each time part of a request body has
	 * arrived and more is to come, so that work on the body can go on
	 * while it arrives (the gateway validates JSON: json/stream.h). It may
	 * read ex->req and ex->body and keep state in ex->body_user (arena
	 * memory); it must not answer. NULL: none. */
	void (*body_progress)(struct ig_http_exchange *ex, void *ctx);
	/* Called once for a request whose head is complete and whose body is
	 * still to come (with the handler's ctx; it may read ex->req and
	 * ex->body_length). True streams the body: the exchange goes to the
	 * handler at once, body bytes (decoded: no chunk framing) then
	 * collect in ex->body as they arrive, and the handler's on_body runs
	 * when new ones came or the body ended (ex->body_done). The handler
	 * takes bytes with ig_http_body_consume, which makes room for more:
	 * what waits is bounded by HTTP/2's stream window, or over HTTP/1.1
	 * by the server reading no more while 1 MiB waits. max_body_bytes
	 * does not apply (nothing is held whole), and no body timeout runs:
	 * the handler bounds the silence. A response that ends before the
	 * body did closes an HTTP/1.1 connection after it (the rest of the
	 * body is read and dropped for a moment, as after a 413). NULL:
	 * bodies are read whole. */
	bool (*stream_body)(struct ig_http_exchange *ex, void *ctx);
	/* Serve HTTP/2 too: a client that opens with HTTP/2's preface (prior
	 * knowledge, as curl --http2-prior-knowledge and gRPC clients do) or
	 * that picks "h2" by ALPN over TLS gets an HTTP/2 session, each of
	 * its streams an exchange like any other (ex->h2 set). */
	bool http2;
	/* Connections held at most (0: no limit). At the limit a new one
	 * takes the place of the oldest that has no request in hand (idle,
	 * a head still arriving, a TLS handshake), else it is closed: a
	 * listener that is not the data plane (the admin port) cannot use up
	 * the process's descriptors. */
	size_t max_conns;
	/* Called (with the handler's ctx) when the server answers a request
	 * itself, before any handler saw it: a head that does not parse or
	 * breaks HTTP's rules (400), one over the limits (414, 431), a body
	 * over them (413), a head or body that stalled (408), and the like.
	 * `ex` holds what was known: the peer and TLS always, the request's
	 * method, path and headers once its head parsed (empty before), ex->h2
	 * for an HTTP/2 stream, the body bytes read in ex->body; `reason` is
	 * the message the client gets. Nothing may be answered from it. So a
	 * log sees every request, as nginx's and Envoy's access logs do.
	 * NULL: none. */
	void (*on_refused)(struct ig_http_exchange *ex, int status, const char *reason, void *ctx);
	/* Writes the JSON body of such an answer into `out` (whose ceiling
	 * is set) for a server whose clients expect another error shape than
	 * ig_http_respond_error's (the simulator answers as vLLM would), and
	 * may add headers through ex->resp_extra; `ex` is what on_refused
	 * sees. Returns 0, or -1 to keep the default body. NULL: the default. */
	int (*refusal_body)(struct ig_http_exchange *ex, int status, const char *reason,
			    struct ig_buf *out, void *ctx);
};

/* An exchange and everything in its arena live until the server lets go
 * of it: right after on_abort returns, or when the loop regains control
 * after ig_http_end / ig_http_respond / ig_http_abort. So a handler keeps
 * its per-request state in the arena and may still read it on its way out
 * of the call that ended the exchange. */
struct ig_http_exchange {
	struct ig_http_request req; /* points into the arena */
	struct ig_buf body;	    /* the whole request body, decoded */
	struct ig_str peer;	    /* client address "ip:port" */
	bool tls;		    /* the request came over TLS */
	struct ig_str sni;	    /* its TLS server name, lowercase; empty when none */
	/* The client certificate the TLS connection verified, as Envoy's
	 * x-forwarded-client-cert element (ig_tls_conn_client_cert); empty
	 * when none. */
	struct ig_str client_cert;
	uint64_t start_ns;	/* when the head was complete */
	struct ig_arena *arena; /* memory freed with the exchange */
	void *user;		/* the handler's state */
	void *body_user;	/* the body_progress hook's state; NULL until it sets it */
	/* Set by the handler when it answers asynchronously. on_writable runs
	 * when output it was told to hold back (ig_http_write returned 1) has
	 * drained; on_abort runs when the client went away or the server shuts
	 * the connection before ig_http_end: the handler releases its state
	 * and must not touch the exchange afterwards. */
	void (*on_writable)(struct ig_http_exchange *ex);
	void (*on_abort)(struct ig_http_exchange *ex);
	/* A streamed body (stream_body): set, on_body runs as it arrives. */
	bool body_streaming;
	/* The body's length as the request announced it: its Content-Length,
	 * 0 when its framing says it has none (HTTP/1.1 with neither
	 * Content-Length nor Transfer-Encoding, RFC 9112 §6.3; an HTTP/2
	 * HEADERS frame with END_STREAM), -1 when a body of unknown length
	 * follows (chunked, or HTTP/2 DATA without content-length); set
	 * before stream_body is asked. */
	int64_t body_length;
	bool body_done; /* the client's body ended (all of it is in, or was, in body) */
	void (*on_body)(struct ig_http_exchange *ex);
	/* Set before on_abort when the server refuses a streamed body it
	 * found malformed before any response began (it then answers the
	 * client itself): the status it answers (400, 431) and why, so
	 * that the handler's log tells what the client got, not that the
	 * client left. 0 and NULL otherwise. */
	int refused_status;
	const char *refused_reason;
	/* Headers the response head carries besides those of the call that
	 * answers, set by the handler before it answers (arena memory, say):
	 * the simulator's X-Request-Id. */
	const struct ig_http_header *resp_extra;
	size_t nresp_extra;
	struct ig_http_conn *conn;
	struct ig_h2_stream *h2; /* the HTTP/2 stream; NULL for HTTP/1.x */
};

/* Called once per request after its body has been read. The handler
 * answers now or later, on the same loop thread. */
typedef void (*ig_http_handler)(struct ig_http_exchange *ex, void *ctx);

void ig_http_server_config_defaults(struct ig_http_server_config *c);

/* Serves listen_fd (non-blocking, listening) on loop. */
struct ig_http_server *ig_http_server_new(struct ig_loop *loop, int listen_fd,
					  const struct ig_http_server_config *cfg,
					  ig_http_handler handler, void *ctx);
/* The same, over TLS with the certificates of `tls` (http/tls.h) when it
 * is not NULL. The server takes a reference to it: servers of several
 * workers share one context, and a reload of it applies to all of them. */
struct ig_http_server *ig_http_server_new_tls(struct ig_loop *loop, int listen_fd,
					      const struct ig_http_server_config *cfg,
					      struct ig_tls_ctx *tls, ig_http_handler handler,
					      void *ctx);
/* The server will drain soon (a shutdown delay): it goes on accepting and
 * serving, but each HTTP/1.1 response from now on ends its connection
 * (Connection: close) and HTTP/2 sessions get GOAWAY's shutdown notice,
 * so that clients move to other replicas without a request failing. */
void ig_http_server_going_away(struct ig_http_server *s);
/* Stops accepting and closes the listening fd; connections go on.
 * Idle keep-alive connections are closed, busy ones close after their
 * current response. */
void ig_http_server_drain(struct ig_http_server *s);
/* Requests being handled now (for a graceful drain). */
size_t ig_http_server_busy(const struct ig_http_server *s);
/* Closes every connection (in-flight exchanges get on_abort) and frees. */
void ig_http_server_free(struct ig_http_server *s);

/* A whole response with Content-Length. `extra` headers are added after
 * Content-Type/Content-Length (may be NULL). Ends the exchange. */
int ig_http_respond(struct ig_http_exchange *ex, int status, const char *content_type,
		    const void *body, size_t len, const struct ig_http_header *extra,
		    size_t nextra);
/* An error in OpenAI's form {"error":{"message":..,"type":..,"code":..}};
 * code NULL uses the status number. Ends the exchange. */
int ig_http_respond_error(struct ig_http_exchange *ex, int status, const char *type,
			  const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same with the message as it is and `extra` headers (may be NULL). */
int ig_http_respond_error_with(struct ig_http_exchange *ex, int status, const char *type,
			       const char *code, const char *msg,
			       const struct ig_http_header *extra, size_t nextra);

/* Streaming: the head, then body pieces, then the end. content_length < 0
 * means unknown length: chunked for HTTP/1.1 clients, close-delimited for
 * HTTP/1.0. Headers given must not include Content-Length,
 * Transfer-Encoding or Connection (the server adds them). */
int ig_http_start_response(struct ig_http_exchange *ex, int status,
			   const struct ig_http_header *hdrs, size_t n, int64_t content_length);
/* Queues data. Returns 0, or 1 when the queued output is above the high
 * water mark (produce no more until on_writable), or -1 if the connection
 * is gone. */
int ig_http_write(struct ig_http_exchange *ex, const void *data, size_t len);
/* Finishes the response; the exchange is freed by the server afterwards
 * and must not be touched. */
int ig_http_end(struct ig_http_exchange *ex);
/* Finishes the response with trailer fields (a gRPC status, say): over
 * HTTP/2 a trailing HEADERS frame; over HTTP/1.1 a chunked body's trailer
 * section when the client's TE says "trailers", else they are dropped.
 * Fields a trailer may not carry are left out (ig_http_trailer_allowed).
 * With n == 0 it is ig_http_end. */
int ig_http_end_trailers(struct ig_http_exchange *ex, const struct ig_http_header *t, size_t n);
/* Whether a field may be sent as a trailer (RFC 9110 §6.5.1): not one
 * that frames, routes, authenticates or describes the content. */
bool ig_http_trailer_allowed(struct ig_str name);
/* Takes the first n bytes of a streamed body (body_streaming): they leave
 * ex->body and the client may send as many more. */
void ig_http_body_consume(struct ig_http_exchange *ex, size_t n);
/* Drops the connection now (e.g. upstream failed mid-stream): on_abort is
 * not called; no exchange function may be called afterwards. */
void ig_http_abort(struct ig_http_exchange *ex);

/* Switching protocols (RFC 9110 §7.8, §15.2.2; WebSocket, RFC 6455 §4):
 * answers 101 with `hdrs` (which name the protocol: Upgrade) and
 * "Connection: Upgrade", and from then on the connection carries raw
 * bytes both ways until it closes. Bytes from the client go to on_data
 * (the handler takes them all; returning 1 pauses reading until
 * ig_http_tunnel_pause(ex, false)), bytes from the handler go out with
 * ig_http_write (unframed, with the same backpressure), and ig_http_end
 * closes the connection once the output has drained. The client closing
 * or failing calls on_abort. No timer of the server runs on a tunnel but
 * the send timeout: the handler bounds its silence. Bytes the client sent
 * after the request head, before the switch, reach on_data from the loop.
 * -1 when a response has already begun. */
typedef int (*ig_http_tunnel_data)(struct ig_http_exchange *ex, const char *data, size_t len);
int ig_http_switch_protocols(struct ig_http_exchange *ex, const struct ig_http_header *hdrs,
			     size_t n, ig_http_tunnel_data on_data);
void ig_http_tunnel_pause(struct ig_http_exchange *ex, bool paused);

/* For tests: the bytes a connection holds in buffers (input, output,
 * exchange arena), summed over the server's connections, and their count. */
void ig_http_server_memory(const struct ig_http_server *s, size_t *conns, size_t *bytes);

#endif
