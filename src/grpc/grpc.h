/* gRPC over HTTP/2 (nghttp2) on the event loop: a server that serves
 * registered methods, and a client channel that opens calls, both for
 * streams of protobuf messages the caller encodes and decodes itself
 * (bytes in, bytes out: this module knows gRPC's framing, status codes and
 * HTTP/2, not protobuf). Used by `infergate epp` (server: ext_proc and
 * health) and by the gateway when it follows an external picker (client).
 *
 * Transport. Clear text is h2c with prior knowledge (the 24-byte preface,
 * no HTTP/1.1 Upgrade), as Envoy and grpcio speak it; TLS offers and
 * requires ALPN "h2". Every connection belongs to one loop (one thread).
 *
 * Ceilings (server and client): HTTP/2 frames of at most 16 KiB are
 * announced (SETTINGS_MAX_FRAME_SIZE default), a header list of at most
 * max_header_bytes, max_streams concurrent streams per connection, and a
 * gRPC message of at most max_message_bytes once reassembled (a larger one
 * ends its call with RESOURCE_EXHAUSTED, or is dropped and reported to a
 * server method's on_oversize). Flow control: the receive window
 * is given back as the handler consumes messages, while what the server
 * queued for the peer is under a few MiB per connection: a peer that
 * does not read what we send is held by HTTP/2 flow control both ways,
 * our queued output per stream is bounded by max_message_bytes plus one
 * window, and what the peer takes none of for send_timeout_ms goes.
 *
 * Status codes are gRPC's (IG_GRPC_OK ...). Calls and server streams end
 * exactly once: the server's on_end and the client's on_done are the last
 * callback for their stream/call, after which its pointer is invalid. */
#ifndef IG_GRPC_GRPC_H
#define IG_GRPC_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "event/loop.h"

enum {
	IG_GRPC_OK = 0,
	IG_GRPC_CANCELLED = 1,
	IG_GRPC_UNKNOWN = 2,
	IG_GRPC_INVALID_ARGUMENT = 3,
	IG_GRPC_DEADLINE_EXCEEDED = 4,
	IG_GRPC_NOT_FOUND = 5,
	IG_GRPC_PERMISSION_DENIED = 7,
	IG_GRPC_RESOURCE_EXHAUSTED = 8,
	IG_GRPC_FAILED_PRECONDITION = 9,
	IG_GRPC_UNIMPLEMENTED = 12,
	IG_GRPC_INTERNAL = 13,
	IG_GRPC_UNAVAILABLE = 14,
};

struct ig_tls_ctx;

/* ---- server ---------------------------------------------------------- */

struct ig_grpc_server;
struct ig_grpc_stream; /* one call being served */

/* A method's handlers. Every callback runs on the server's loop. */
struct ig_grpc_method {
	const char *path; /* exact :path, "/envoy.service.ext_proc.v3.ExternalProcessor/Process" */
	/* A call arrived (its request headers): set the stream's data here. */
	void (*on_open)(struct ig_grpc_stream *s, void *arg);
	/* One whole request message (reassembled, uncompressed). The bytes
	 * are valid during the call only. */
	void (*on_message)(struct ig_grpc_stream *s, const uint8_t *msg, size_t len);
	/* The client half-closed: no more messages will come. The handler
	 * still answers and must end the call (ig_grpc_finish). */
	void (*on_half_close)(struct ig_grpc_stream *s);
	/* The stream is over: finished by us and flushed, reset by the client,
	 * or its connection closed. Last callback; free the stream's data. */
	void (*on_end)(struct ig_grpc_stream *s, bool reset);
	void *arg;
	/* Optional: a request message over max_message_bytes, of len bytes,
	 * instead of ending the call with RESOURCE_EXHAUSTED. It is called at
	 * the message's prefix; its bytes are dropped as they arrive, never
	 * held, and the call goes on (the handler may answer, or finish). */
	void (*on_oversize)(struct ig_grpc_stream *s, size_t len);
};

struct ig_grpc_server_config {
	struct ig_tls_ctx *tls;	       /* NULL: clear text (h2c) */
	size_t max_message_bytes;      /* default 16 MiB */
	size_t max_header_bytes;       /* default 16 KiB */
	uint32_t max_streams;	       /* SETTINGS_MAX_CONCURRENT_STREAMS, default 1024 */
	uint64_t handshake_timeout_ms; /* preface/TLS handshake, default 10 s */
	uint64_t idle_timeout_ms;      /* a connection without streams, default 5 min */
	/* A stream whose queued answer the peer takes none of for this long is
	 * reset (CANCEL), and a connection whose socket takes no byte that
	 * long is closed; default 60 s. */
	uint64_t send_timeout_ms;
	/* Answers queued by all the servers of the process: past it a stream
	 * that answers is reset, and past half of it no flow-control credit is
	 * given back; default 512 MiB. */
	size_t max_output_bytes;
	/* A call with no frame either way for this long ends (CANCELLED), as
	 * Envoy's stream_idle_timeout; default 5 min. */
	uint64_t stream_idle_timeout_ms;
	/* Silence inside a partly received request message: the call ends
	 * (CANCELLED) and the part goes; default 60 s. */
	uint64_t message_timeout_ms;
	/* Partly received request messages held by all the servers of the
	 * process: past it a call that sends more of one ends with
	 * RESOURCE_EXHAUSTED; default 256 MiB, at least two max messages. */
	size_t max_partial_bytes;
};

/* methods (n entries) are copied. Unknown :path → Trailers-Only
 * grpc-status 12; a content-type that is not application/grpc[+...] →
 * HTTP 415; :method other than POST → HTTP 405. */
struct ig_grpc_server *ig_grpc_server_new(struct ig_loop *loop,
					  const struct ig_grpc_server_config *cfg,
					  const struct ig_grpc_method *methods, size_t n);
/* Serves a listening socket (non-blocking, owned by the caller). */
int ig_grpc_server_listen(struct ig_grpc_server *srv, int listen_fd);
/* GOAWAY to every connection; streams in progress finish; no new ones. */
void ig_grpc_server_drain(struct ig_grpc_server *srv);
size_t ig_grpc_server_streams(const struct ig_grpc_server *srv); /* open now */
/* Closes everything at once (each open stream gets on_end(reset=true)). */
void ig_grpc_server_free(struct ig_grpc_server *srv);

void ig_grpc_stream_set_data(struct ig_grpc_stream *s, void *data);
void *ig_grpc_stream_data(const struct ig_grpc_stream *s);
/* A request header (metadata) by lower-case name; empty when absent. */
struct ig_str ig_grpc_stream_header(const struct ig_grpc_stream *s, const char *name);
/* The client's address "ip:port". */
const char *ig_grpc_stream_peer(const struct ig_grpc_stream *s);
/* Queues one response message (framed here; response headers go first,
 * once). Returns 0, or -1 when the stream is finished or reset. */
int ig_grpc_send(struct ig_grpc_stream *s, const uint8_t *msg, size_t len);
/* The same for one message given in n parts (sent as their concatenation):
 * the parts are copied once, into the stream's queue, so that an encoder
 * can leave a large body where it lies instead of gathering it first. */
int ig_grpc_sendv(struct ig_grpc_stream *s, const struct ig_str *parts, size_t n);
/* Ends the call after the queued messages: trailers grpc-status and, when
 * message is not NULL, grpc-message (percent-encoded here). A call with no
 * message sent yet ends Trailers-Only. If the client has not half-closed,
 * RST_STREAM(NO_ERROR) follows the trailers. on_end comes once flushed. */
void ig_grpc_finish(struct ig_grpc_stream *s, int status, const char *message);

/* ---- client ---------------------------------------------------------- */

struct ig_grpc_channel; /* one target, one HTTP/2 connection at a time */
struct ig_grpc_call;

struct ig_grpc_channel_config {
	const char *host; /* IP literal or name (resolved at connect) */
	int port;
	const char *authority; /* :authority; default "host:port" */
	bool tls;
	bool tls_verify;	     /* verify the server's certificate (default: not) */
	const char *ca_file;	     /* with tls_verify: PEM roots; NULL: system's */
	const char *sni;	     /* default host (when a name) */
	uint64_t connect_timeout_ms; /* TCP + TLS + SETTINGS, default 1 s */
	size_t max_message_bytes;    /* default 16 MiB */
	/* After a connection fails, new calls fail at once with UNAVAILABLE
	 * for this long before a new connect is tried (default 100 ms,
	 * doubling to 5 s while it keeps failing). */
	uint64_t backoff_ms;
};

struct ig_grpc_call_handlers {
	/* One whole response message; bytes valid during the call only. */
	void (*on_message)(struct ig_grpc_call *c, const uint8_t *msg, size_t len, void *data);
	/* The call ended: status (IG_GRPC_UNAVAILABLE when the connection
	 * could not be made or was lost, IG_GRPC_DEADLINE_EXCEEDED when the
	 * deadline passed, IG_GRPC_CANCELLED after ig_grpc_call_cancel is NOT
	 * reported: cancel is silent), message from grpc-message or our own
	 * words. Last callback for the call. */
	void (*on_done)(struct ig_grpc_call *c, int status, const char *message, void *data);
};

struct ig_grpc_channel *ig_grpc_channel_new(struct ig_loop *loop,
					    const struct ig_grpc_channel_config *cfg);
/* Cancels every call (silently) and closes the connection. */
void ig_grpc_channel_free(struct ig_grpc_channel *ch);
/* Whether a connection is up with its SETTINGS exchanged. */
bool ig_grpc_channel_ready(const struct ig_grpc_channel *ch);

/* Starts a call (connecting first when needed; calls wait for the
 * connection). deadline_ms 0: none (else grpc-timeout is sent and the
 * call ends with DEADLINE_EXCEEDED when it passes). headers: extra
 * metadata, n pairs of lower-case name, value; may be NULL. Returns NULL
 * only when out of memory; every other failure comes through on_done,
 * never from inside this call. */
struct ig_grpc_call *ig_grpc_call_start(struct ig_grpc_channel *ch, const char *path,
					uint64_t deadline_ms, const char *const *headers, size_t n,
					const struct ig_grpc_call_handlers *h, void *data);
/* Queues a request message; 0, or -1 after the call ended or half-closed. */
int ig_grpc_call_send(struct ig_grpc_call *c, const uint8_t *msg, size_t len);
/* The same for one message in n parts (as ig_grpc_sendv). */
int ig_grpc_call_sendv(struct ig_grpc_call *c, const struct ig_str *parts, size_t n);
/* Half-closes: no more messages from us. */
void ig_grpc_call_close_send(struct ig_grpc_call *c);
/* Ends the call now (RST_STREAM CANCEL); no callback follows. */
void ig_grpc_call_cancel(struct ig_grpc_call *c);

/* Percent-encodes a grpc-message value into out (at most cap - 1 bytes,
 * NUL-terminated; a longer text is cut at a character boundary). */
void ig_grpc_percent_encode(const char *in, char *out, size_t cap);

#endif
