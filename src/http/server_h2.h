/* HTTP/2 on the HTTP server's connections (server_h2.c), for server.c:
 * a connection whose first bytes are HTTP/2's client preface (prior
 * knowledge, RFC 9113 §3.3) or that chose "h2" by ALPN turns into an
 * HTTP/2 session, and each request stream becomes an exchange of the
 * server's API (server.h), answered with the same calls. */
#ifndef IG_HTTP_SERVER_H2_H
#define IG_HTTP_SERVER_H2_H

#include <stdbool.h>
#include <stddef.h>

#include "http/server_int.h"

#define IG_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define IG_H2_PREFACE_LEN 24

/* These return -1 when they closed (and freed) the connection.
 * Turns connection c (whose `in` holds what the client sent so far) into
 * an HTTP/2 session and takes that input: */
int ig_h2_start(struct ig_http_conn *c);
/* New bytes in c->in: */
int ig_h2_input(struct ig_http_conn *c);
/* The socket took output: more frames, and streams may write again. */
int ig_h2_writable(struct ig_http_conn *c);
/* A timer of the connection fired (not TM_SEND, which server.c handles). */
int ig_h2_timer(struct ig_http_conn *c, enum timer_kind kind);
/* The server will stop: GOAWAY's shutdown notice (last stream 2^31-1);
 * streams are still taken. */
void ig_h2_notice(struct ig_http_conn *c);
/* The server drains: the notice, a PING, and once it is answered (or a
 * second went by) GOAWAY with the last stream taken; the connection
 * closes once the streams are done. */
void ig_h2_drain(struct ig_http_conn *c);
/* Streams open (for a drain's count); memory held (for tests). */
bool ig_h2_busy(const struct ig_http_conn *c);
size_t ig_h2_memory(const struct ig_http_conn *c);
/* The connection closes: streams a handler holds get on_abort. */
void ig_h2_free(struct ig_http_conn *c);

/* The exchange calls of server.h for a stream's exchange (ex->h2 set). */
int ig_h2_respond(struct ig_http_exchange *ex, int status, const char *content_type,
		  const void *body, size_t len, const struct ig_http_header *extra, size_t nextra);
int ig_h2_start_response(struct ig_http_exchange *ex, int status, const struct ig_http_header *hdrs,
			 size_t n, int64_t content_length);
int ig_h2_write(struct ig_http_exchange *ex, const void *data, size_t len);
int ig_h2_end(struct ig_http_exchange *ex);
int ig_h2_end_trailers(struct ig_http_exchange *ex, const struct ig_http_header *t, size_t n);
void ig_h2_body_consume(struct ig_http_exchange *ex, size_t n);
void ig_h2_abort(struct ig_http_exchange *ex);

#endif
