/* The admin listener, on the control thread: Prometheus /metrics, /healthz
 * for probes, and /pools, a JSON view of pools, endpoints and their latest
 * metrics. */
#ifndef IG_GATEWAY_ADMIN_H
#define IG_GATEWAY_ADMIN_H

#include "gateway/runtime.h"

int ig_admin_start(struct ig_gateway_rt *gw, const char *hostport);
void ig_admin_stop(struct ig_gateway_rt *gw);

#endif
