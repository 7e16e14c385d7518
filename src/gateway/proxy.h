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
/* The server's stream_body question for an HTTP/2 request still sending
 * its body: true for a gRPC call whose route sends it to Services over
 * HTTP/2 with nothing that needs the whole body first (no RequestMirror),
 * so that its messages go on as they come (bidirectional streams). */
bool ig_proxy_stream_body(struct ig_http_exchange *ex, void *ctx);

#endif
