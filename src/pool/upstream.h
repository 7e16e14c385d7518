/* A worker's idle upstream connections, per endpoint, protocol and TLS
 * context: the keep-alive pool. An endpoint's HTTP/1.1, h2c and TLS
 * connections are kept apart, so a connection is only ever handed to a
 * request that would have made it the same way (an address may be in
 * several pools: h2c, or TLS as one BackendTLSPolicy says).
 *
 * The pool owns what it holds. An idle connection holds a reference on its
 * endpoint (so an endpoint freed by a reload can never be confused with a
 * new one at the same address), is closed by the pool when its server
 * closes or resets it (the client reports any event on a parked
 * connection), after `idle_timeout_ms` (below the 5 s keep-alive of
 * uvicorn, vLLM's server, so we close first), or when its endpoint already
 * has `max_idle` connections parked (the least recently parked goes).
 * Single-threaded: one pool per worker loop. */
#ifndef IG_POOL_UPSTREAM_H
#define IG_POOL_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "event/loop.h"
#include "http/client.h"
#include "pool/endpoint.h"

struct ig_upstream_config {
	uint64_t connect_timeout_ms; /* 0: the kernel's */
	uint64_t idle_timeout_ms;    /* 0: idle connections are not kept */
	size_t max_idle;	     /* per endpoint */
};

struct ig_upstreams;

struct ig_upstreams *ig_upstreams_new(struct ig_loop *loop, const struct ig_upstream_config *cfg);
/* Closes every idle connection and frees the pool. */
void ig_upstreams_free(struct ig_upstreams *u);

/* The most recently parked connection to ep speaking proto over tls (NULL:
 * clear text), or NULL. */
struct ig_http_client *ig_upstreams_take(struct ig_upstreams *u, struct ig_endpoint *ep,
					 enum ig_http_proto proto, struct ig_tls_client_ctx *tls);
/* A new connection to ep speaking proto, over TLS with tls when not NULL
 * (HTTP/1.1, or HTTP/2 when the context offers h2), or NULL with errno set
 * when it failed at once. */
struct ig_http_client *ig_upstreams_connect(struct ig_upstreams *u, struct ig_endpoint *ep,
					    enum ig_http_proto proto,
					    struct ig_tls_client_ctx *tls);
/* Gives back a connection whose response ended: parked when reusable and
 * the pool keeps idle connections, closed otherwise. */
void ig_upstreams_release(struct ig_upstreams *u, struct ig_endpoint *ep, struct ig_http_client *c);
/* Closes every idle connection (drain, shutdown). */
void ig_upstreams_close_idle(struct ig_upstreams *u);
/* Idle connections held, in all / to one endpoint (every protocol). */
size_t ig_upstreams_idle(const struct ig_upstreams *u);
size_t ig_upstreams_idle_to(const struct ig_upstreams *u, const struct ig_endpoint *ep);

#endif
