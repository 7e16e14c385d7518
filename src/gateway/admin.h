/* The admin listener, on the control thread: Prometheus /metrics, /healthz
 * for probes, /pools, a JSON view of pools, endpoints and their latest
 * metrics, and the live page at / with its /api/status (admin_page.c). */
#ifndef IG_GATEWAY_ADMIN_H
#define IG_GATEWAY_ADMIN_H

#include "gateway/runtime.h"

/* Connections the admin listener holds at most; past it the oldest idle
 * one makes room (http/server.h, max_conns). */
#define IG_ADMIN_MAX_CONNS 128

int ig_admin_start(struct ig_gateway_rt *gw, const char *hostport);
void ig_admin_stop(struct ig_gateway_rt *gw);
/* /pools' JSON object (generation, pools, endpoints, prefix index). */
void ig_admin_render_pools(struct ig_gateway_rt *gw, struct ig_buf *b);

#endif
