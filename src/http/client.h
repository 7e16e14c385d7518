/* A non-blocking HTTP/1.1 client connection on the event loop, for the
 * gateway's upstream requests and the metrics scraper. The caller hands it
 * the request as spans (sent with sendmsg, never copied); the response
 * comes back through callbacks: the head, then decoded body pieces
 * (pausable: backpressure), then the end. A connection that ended cleanly
 * with keep-alive may carry another request.
 *
 * Ownership: the client never frees itself. Whoever opened it closes it
 * with ig_http_client_close() — after on_done (or hands it to a pool that
 * parks it), after on_error, or whenever it wants. Closing from inside a
 * callback is allowed; the memory goes when the callback returns. A parked
 * connection reports any event (the server closed it, sent something, an
 * error) to its owner's idle callback, and the owner closes it there.
 *
 * A connection speaks HTTP/1.1, or h2c: HTTP/2 over cleartext TCP with
 * prior knowledge (RFC 9113 §3.3), one request at a time, for model
 * servers of an InferencePool with appProtocol kubernetes.io/h2c. The
 * caller does not see the difference: the request is still given as
 * HTTP/1.1 bytes (translated to HEADERS and DATA frames), the response
 * comes through the same callbacks with the same faults. */
#ifndef IG_HTTP_CLIENT_H
#define IG_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/str.h"
#include "event/loop.h"
#include "http/parse.h"

struct ig_http_client;

/* What went wrong, for retry decisions. */
enum ig_client_error {
	IG_CLIENT_CONNECT,  /* refused, unreachable, or no connection within the timeout */
	IG_CLIENT_EARLY,    /* reset or closed before any response byte */
	IG_CLIENT_PROTOCOL, /* malformed or oversized response */
	IG_CLIENT_BROKEN,   /* failed after the response began */
	IG_CLIENT_TIMEOUT,  /* the server was silent for longer than the read timeout */
};

struct ig_http_client_fault {
	enum ig_client_error kind;
	int err;       /* errno-style cause; ETIMEDOUT for timeouts */
	bool reused;   /* the connection had carried a request before this one */
	bool sent_all; /* every byte of the request was written */
	bool got_byte; /* some byte of the response arrived */
	/* The server said that it did not process the request, so it may go
	 * anywhere again: h2c only (a GOAWAY whose last stream is below the
	 * request's, or RST_STREAM with REFUSED_STREAM, RFC 9113 §8.7). */
	bool refused;
	/* Bytes of an open body (ig_http_client_sendv_open) were waiting to
	 * go out: the server was not taking them. With a timeout, that tells
	 * a server that stopped reading from one waiting for more body. */
	bool body_waiting;
	/* Why a TLS handshake or session failed ("certificate verify failed:
	 * hostname mismatch"); "" otherwise. Valid during the callback. */
	const char *detail;
};

/* What a connection speaks. */
enum ig_http_proto {
	IG_PROTO_HTTP1 = 0,
	IG_PROTO_H2C, /* HTTP/2 cleartext with prior knowledge */
};

struct ig_http_client_cbs {
	/* The response head (valid during the call only); return non-zero to
	 * abandon the response (the client is then dead: close it). */
	int (*on_head)(struct ig_http_client *c, const struct ig_http_response *res, void *ud);
	/* Body bytes (decoded from chunked). Return 1 to pause reading. */
	int (*on_body)(struct ig_http_client *c, const char *data, size_t len, void *ud);
	/* The response is complete: reuse the connection if
	 * ig_http_client_reusable(), else close it. */
	void (*on_done)(struct ig_http_client *c, void *ud);
	/* Failure: the connection is dead; close it. */
	void (*on_error)(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud);
	/* A tunnel's output that was above the high-water mark has drained
	 * (ig_http_client_write returned 1). Optional. */
	void (*on_writable)(struct ig_http_client *c, void *ud);
};

/* Starts connecting; connect_timeout_ms 0 waits as long as the kernel
 * does. NULL on immediate failure (errno set: ECONNREFUSED, ENETUNREACH,
 * EMFILE...). */
struct ig_http_client *ig_http_client_connect(struct ig_loop *loop, const struct sockaddr *addr,
					      socklen_t addrlen, uint64_t connect_timeout_ms);
/* The same for an h2c connection: the client preface and SETTINGS go out
 * with the first request. */
struct ig_http_client *ig_http_client_connect_h2c(struct ig_loop *loop, const struct sockaddr *addr,
						  socklen_t addrlen, uint64_t connect_timeout_ms);
/* The same over TLS (BackendTLSPolicy): the handshake follows the TCP
 * connection, within the same connect timeout, and a handshake that fails
 * (verification included) is an IG_CLIENT_CONNECT fault with EPROTO and
 * the reason in `detail`. HTTP/1.1, or HTTP/2 (the h2c mode's framing,
 * over TLS) when ctx offers h2 (ig_tls_client_ctx_h2): a server that does
 * not choose h2 by ALPN fails the connection the same way. The connection
 * holds a reference to ctx. */
struct ig_tls_client_ctx;
struct ig_http_client *ig_http_client_connect_tls(struct ig_loop *loop, const struct sockaddr *addr,
						  socklen_t addrlen, uint64_t connect_timeout_ms,
						  struct ig_tls_client_ctx *ctx);
enum ig_http_proto ig_http_client_proto(const struct ig_http_client *c);
/* The TLS version and cipher of a connection that finished its handshake
 * ("TLSv1.3"); NULL for a cleartext one or before the handshake. */
const char *ig_http_client_tls_version(const struct ig_http_client *c);
/* Whether its TLS handshake resumed an earlier session. */
bool ig_http_client_tls_resumed(const struct ig_http_client *c);
/* The TLS context the connection was made with (NULL: clear text). */
struct ig_tls_client_ctx *ig_http_client_tls_ctx(const struct ig_http_client *c);

/* Sends a request made of `nparts` spans, in order. The spans are not
 * copied: they must stay valid until the response head arrives or the
 * client is closed. In h2c mode the head (request line and headers, which
 * may straddle spans) is translated into a HEADERS frame: :method,
 * :scheme http, :authority from Host, :path from the target, the other
 * fields lower-cased without the connection-specific ones (Connection,
 * Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, Host, TE other
 * than "trailers"); the body goes as DATA. A chunked request, a body that
 * is not its Content-Length, a CONNECT, or a connection that can open no
 * more streams (GOAWAY received, stream ids spent) makes it fail (-1). `is_head` tells that the
 * response has no body. read_timeout_ms (0: none) bounds the silence of the server from now on,
 * before and during the response: no request byte accepted and no
 * response byte received for that long fails the request with
 * IG_CLIENT_TIMEOUT. Callbacks never run inside this call. */
int ig_http_client_sendv(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			 bool is_head, uint64_t read_timeout_ms,
			 const struct ig_http_client_cbs *cbs, void *ud);
int ig_http_client_send(struct ig_http_client *c, const void *req, size_t len, bool is_head,
			uint64_t read_timeout_ms, const struct ig_http_client_cbs *cbs, void *ud);

/* The same with an open body: the spans are the head alone, and the body
 * follows with ig_http_client_body as the caller gets it (a gRPC call's
 * stream, an upload passed on as it arrives). Over HTTP/2 the head has no
 * Content-Length and body_length is not used. Over HTTP/1.1 the head
 * frames the body itself: with "Content-Length: N", body_length is N and
 * the body's bytes go as they are (past N, dropped); with
 * "Transfer-Encoding: chunked", body_length is -1 and each piece goes as
 * a chunk, the end as the last chunk. on_writable says when to write:
 * once the connection is up (bytes written before wait there), and after
 * ig_http_client_body returned 1, when the buffer has drained below half.
 * The response comes as for any request, and may come (and end) before
 * the body does: the connection is then not reusable. */
int ig_http_client_sendv_open(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			      int64_t body_length, uint64_t read_timeout_ms,
			      const struct ig_http_client_cbs *cbs, void *ud);
/* More of an open body, its end with `end`: 0, 1 when more than 256 KiB
 * wait to go out (write no more until on_writable), -1 when the request
 * is no longer open (ended, failed, answered). */
int ig_http_client_body(struct ig_http_client *c, const void *data, size_t len, bool end);
/* Whether ig_http_client_body returned 1 and on_writable has not come
 * since: the caller writes no more until it does. */
bool ig_http_client_body_full(const struct ig_http_client *c);
/* Whether the connection is up (TCP, and TLS when it has it). */
bool ig_http_client_connected(const struct ig_http_client *c);

/* Lets the request just sent switch protocols (an HTTP/1.1 Upgrade, such
 * as a WebSocket handshake; call right after ig_http_client_sendv). A 101
 * answer then goes to on_head like a final response, and the connection
 * becomes a tunnel: every later byte from the server goes to on_body as
 * it comes, the server's close ends it with on_done (never reusable), and
 * ig_http_client_write sends bytes the other way. The read timeout then
 * bounds silence in both directions. Without this call a 101 is dropped
 * like any interim response. Not in h2c mode. */
void ig_http_client_allow_upgrade(struct ig_http_client *c);
/* Sends raw bytes on a tunnel (after its 101): what the socket does not
 * take is buffered. Returns 0, 1 when the buffered output is above the
 * high-water mark (send no more until on_writable), or -1 when this is no
 * tunnel or the socket failed (the failure also reaches on_error or
 * on_done from the loop). */
int ig_http_client_write(struct ig_http_client *c, const void *data, size_t len);

/* Stops (true) or resumes reading the response. While paused the read
 * timeout does not run: the silence is ours. */
void ig_http_client_pause(struct ig_http_client *c, bool paused);

bool ig_http_client_reusable(const struct ig_http_client *c);
/* The length of the body of the response being read, as its framing says
 * (Transfer-Encoding wins over Content-Length, RFC 9112 §6.3): the exact
 * byte count, or -1 when it is chunked or runs until the close. Valid from
 * on_head on. In h2c mode: Content-Length when the head gives it, 0 when
 * there is no body (HEAD, 204, 304, END_STREAM on the head), else -1. */
int64_t ig_http_client_body_length(const struct ig_http_client *c);
/* The trailer fields of the response just read (HTTP/1.1 chunked
 * trailers, or an h2c trailing HEADERS frame), for on_done: up to `max`
 * of them into `out`, pointing into the client's memory, valid until the
 * client sends again, is parked or is closed. 0 when there were none, or
 * when the section was malformed (its fields are dropped, RFC 9110
 * §6.5.1 lets a recipient discard them). A section larger than a response
 * head may be fails the response as a protocol error. */
size_t ig_http_client_trailers(const struct ig_http_client *c, struct ig_http_header *out,
			       size_t max);
/* True when the connection carried a request before the current one (so
 * an early reset may be the server's idle timeout racing us). */
bool ig_http_client_was_reused(const struct ig_http_client *c);

/* Parks an idle, reusable connection: its buffers are freed and any event
 * on it (close, reset, stray bytes) calls idle_cb once; the owner then
 * closes it. Taken back into use by the next ig_http_client_sendv(). An
 * h2c connection answers the server's PING and SETTINGS by itself while
 * parked; a GOAWAY, the close, or a protocol error calls idle_cb. */
typedef void (*ig_http_client_idle_cb)(struct ig_http_client *c, void *ud);
void ig_http_client_park(struct ig_http_client *c, ig_http_client_idle_cb idle_cb, void *ud);

/* Calls cb once the connection is established (err 0) or has failed
 * (err != 0), without sending anything: a probe of whether a server
 * accepts connections. Only on a connection that has sent nothing. */
typedef void (*ig_http_client_connect_cb)(struct ig_http_client *c, int err, void *ud);
void ig_http_client_on_connect(struct ig_http_client *c, ig_http_client_connect_cb cb, void *ud);

void ig_http_client_close(struct ig_http_client *c);

/* Resolves a numeric "ip:port" or "[v6]:port" into a sockaddr. 0 or -1. */
int ig_sockaddr_parse(const char *hostport, struct sockaddr_storage *ss, socklen_t *len);

#endif
