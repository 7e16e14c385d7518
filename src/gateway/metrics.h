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

/* One finished request, for the request and objective families. */
struct ig_gw_request_stats {
	const char *model;  /* as asked; NULL or "" when it was never read */
	const char *target; /* the target model; NULL or "" when unresolved */
	bool client_labels; /* model/target chosen by the client (v1 passthrough) */
	int priority;
	int status;	 /* what the client got; 499: it left first */
	bool pod_status; /* that status came from the model server */
	bool scheduled;	 /* parsed, admitted and sent to an endpoint */
	double seconds;
	size_t req_bytes, resp_bytes;
	long in_tokens, out_tokens;
	double ttft, tpot; /* streamed responses, seconds; < 0 when not measured */
};

/* Counts a finished request through a worker's cache of series handles (c
 * may be NULL): request_total when it was scheduled; error_total with
 * GIE's code names (BadRequest, NotFound / BadConfiguration,
 * ResourceExhausted / InferencePoolResourceExhausted, ServiceUnavailable,
 * ModelServerError, Internal) when it failed; the latency, size, token,
 * TTFT and TPOT histograms when it succeeded. */
struct ig_gw_metrics_cache;
struct ig_gw_metrics_cache *ig_gw_metrics_cache_new(void);
void ig_gw_metrics_cache_free(struct ig_gw_metrics_cache *c);
void ig_gw_metrics_done(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			const struct ig_gw_request_stats *st);
/* infergate_access_log_dropped_total, registered on first use. */
struct ig_series *ig_gw_metrics_access_log_dropped(struct ig_gw_metrics *m);
void ig_gw_metrics_scheduler(struct ig_gw_metrics *m, double seconds);
/* Renders every family; pool gauges come from `snap` (control thread). */
void ig_gw_metrics_render(struct ig_gw_metrics *m, const struct ig_snapshot *snap,
			  struct ig_buf *out);

#endif
