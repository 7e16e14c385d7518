/* The gateway's own Prometheus metrics, under GIE's names (gie-reference
 * §3.8). Updated by the workers through the registry's per-thread shards;
 * pool gauges are computed from the current snapshot at render time. */
#ifndef IG_GATEWAY_METRICS_H
#define IG_GATEWAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct ig_gw_metrics;
struct ig_snapshot;

struct ig_gw_metrics *ig_gw_metrics_new(void);
void ig_gw_metrics_free(struct ig_gw_metrics *m);

void ig_gw_metrics_request(struct ig_gw_metrics *m, const char *model, const char *target,
			   int status, double seconds, size_t req_bytes, size_t resp_bytes,
			   long in_tokens, long out_tokens);
void ig_gw_metrics_objective(struct ig_gw_metrics *m, const char *model, const char *target,
			     int priority, int status, double seconds, long in_tokens,
			     long out_tokens);
/* Both of the above for one finished request, through a worker's cache of
 * series handles (c may be NULL). */
struct ig_gw_metrics_cache;
struct ig_gw_metrics_cache *ig_gw_metrics_cache_new(void);
void ig_gw_metrics_cache_free(struct ig_gw_metrics_cache *c);
void ig_gw_metrics_done(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c, const char *model,
			const char *target, int priority, int status, double seconds,
			size_t req_bytes, size_t resp_bytes, long in_tokens, long out_tokens);
void ig_gw_metrics_scheduler(struct ig_gw_metrics *m, double seconds);
/* Renders every family; pool gauges come from `snap` (control thread). */
void ig_gw_metrics_render(struct ig_gw_metrics *m, const struct ig_snapshot *snap,
			  struct ig_buf *out);

#endif
