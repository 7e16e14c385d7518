/* The proxy path: the handler of every gateway listener. One request goes
 * through these stages, one file each:
 *   listener.c  the listener and HTTPRoute rule, the pool, GET /v1/models
 *   rewrite.c   the body's model resolved and spliced, the upstream head
 *   admit.c     admission (shedding, the flow-control queue) and the picker,
 *               over the pool's endpoints as candidates.c reads them
 *   relay.c     attempts on endpoints, retries, timeouts, the response
 *               streamed back with usage read on the way, the end. */
#ifndef IG_GATEWAY_PROXY_H
#define IG_GATEWAY_PROXY_H

#include "http/server.h"

/* ctx is the struct ig_listen_slot of the listener. */
void ig_proxy_handle(struct ig_http_exchange *ex, void *ctx);
/* The server's stream_body question for a request still sending its
 * body: true when its route sends it to Services with nothing that needs
 * the whole body first (no RequestMirror), for a gRPC call (over HTTP/2,
 * to HTTP/2 backends: its messages go on as they come, bidirectional
 * streams) and for any other body over 1 MiB or of unannounced length
 * (an upload goes on as it comes, in bounded memory, at any size). */
bool ig_proxy_stream_body(struct ig_http_exchange *ex, void *ctx);
/* The server's on_refused: a request the HTTP server answered itself
 * (400, 408, 413, 414, 431, ...) gets its access-log line, with empty
 * fields for what was not known and the answer's message as reason. */
void ig_proxy_refused(struct ig_http_exchange *ex, int status, const char *reason, void *ctx);

#endif
