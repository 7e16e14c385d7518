/* A non-blocking HTTP/1.1 client connection on the event loop, for the
 * gateway's upstream requests and the metrics scraper. The caller hands it
 * the request bytes; the response comes back through callbacks: the head,
 * then decoded body pieces (pausable: backpressure), then the end. A
 * connection that ended cleanly with keep-alive may carry another request. */
#ifndef IG_HTTP_CLIENT_H
#define IG_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "event/loop.h"
#include "http/parse.h"

struct ig_http_client;

/* Where a failure happened, for retry decisions. */
enum ig_client_error {
	IG_CLIENT_CONNECT,    /* connection refused / unreachable */
	IG_CLIENT_EARLY,      /* reset or closed before any response byte */
	IG_CLIENT_PROTOCOL,   /* malformed or oversized response */
	IG_CLIENT_BROKEN,     /* failed after the response began */
};

struct ig_http_client_cbs {
	/* The response head; return non-zero to abandon (connection closed). */
	int (*on_head)(struct ig_http_client *c, const struct ig_http_response *res, void *ud);
	/* Body bytes (decoded from chunked). Return 1 to pause reading. */
	int (*on_body)(struct ig_http_client *c, const char *data, size_t len, void *ud);
	/* The response is complete. The connection is the caller's again:
	 * reuse it if ig_http_client_reusable(), else close it. */
	void (*on_done)(struct ig_http_client *c, void *ud);
	/* Failure: the client is closed and freed right after this returns. */
	void (*on_error)(struct ig_http_client *c, enum ig_client_error e, int err, void *ud);
};

/* Starts connecting. NULL on immediate failure (errno set). */
struct ig_http_client *ig_http_client_connect(struct ig_loop *loop, const struct sockaddr *addr,
					      socklen_t addrlen);
/* Sends a request (bytes of a complete HTTP/1.1 message). `is_head` tells
 * that the response will have no body. */
int ig_http_client_send(struct ig_http_client *c, const void *req, size_t len, bool is_head,
			const struct ig_http_client_cbs *cbs, void *ud);
/* The same with the request in pieces, sent in order (no joining copy). */
int ig_http_client_sendv(struct ig_http_client *c, const struct ig_str *parts, size_t nparts,
			 bool is_head, const struct ig_http_client_cbs *cbs, void *ud);
void ig_http_client_pause(struct ig_http_client *c, bool paused);
bool ig_http_client_reusable(const struct ig_http_client *c);
/* True when the connection was used before (so an early reset may just be
 * the server's idle timeout racing us). */
bool ig_http_client_was_reused(const struct ig_http_client *c);
/* Parks an idle connection: no callbacks; a close by the peer frees it
 * quietly via the `gone` flag that ig_http_client_alive() reports. */
void ig_http_client_park(struct ig_http_client *c);
bool ig_http_client_alive(const struct ig_http_client *c);
void ig_http_client_close(struct ig_http_client *c);

/* Resolves "ip:port" (numeric) into a sockaddr. 0 or -1. */
int ig_sockaddr_parse(const char *hostport, struct sockaddr_storage *ss, socklen_t *len);

#endif
