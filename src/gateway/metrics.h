/* The gateway's own Prometheus metrics, under GIE's names (gie-reference
 * §3.8, §4.5, §7; GIE v1.5 pkg/epp/metrics/metrics.go). Updated by the
 * workers through the registry's per-thread shards (gauges that requests
 * move up and down are summed gauges); pool gauges are computed from the
 * current snapshot at render time. */
#ifndef IG_GATEWAY_METRICS_H
#define IG_GATEWAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

struct ig_gw_metrics;
struct ig_snapshot;
struct ig_pool_rt;
struct ig_endpoint;
struct ig_series;

struct ig_gw_metrics *ig_gw_metrics_new(void);
void ig_gw_metrics_free(struct ig_gw_metrics *m);

/* One finished request, for the request and objective families. */
/* The running-requests gauges a request moves: GIE's
 * inference_objective_running_requests and llm-d's llm_d_epp_request_running. */
#define IG_GW_RUNNING_SERIES 2
struct ig_gw_request_stats {
	const char *model;  /* as asked; NULL or "" when it was never read */
	const char *target; /* the target model; NULL or "" when unresolved */
	bool client_labels; /* model/target chosen by the client (v1 passthrough) */
	int priority;
	struct ig_str fairness_id; /* the flow's (llm-d's families carry it) */
	int status;		   /* what the client got; 499: it left first */
	bool pod_status;	   /* that status came from the model server */
	bool scheduled;		   /* parsed, admitted and sent to an endpoint */
	/* The response began but never reached its end: the client left
	 * mid-stream, or the stream was cut. */
	bool cut;
	double seconds;
	size_t req_bytes, resp_bytes;
	long in_tokens, out_tokens;
	long cached_tokens; /* the usage's cached prompt tokens; < 0 when it has none */
	double ttft, tpot;  /* streamed responses, seconds; < 0 when not measured */
	/* From ig_gw_metrics_running when the request was dispatched (NULL:
	 * it was not): taken back down now. */
	struct ig_series *running[IG_GW_RUNNING_SERIES];
};

/* Counts a finished request through a worker's cache of series handles (c
 * may be NULL): request_total and request_sizes when it was scheduled;
 * error_total with GIE's code names (BadRequest, NotFound /
 * BadConfiguration, ResourceExhausted / InferencePoolResourceExhausted,
 * ServiceUnavailable, ModelServerError, Internal) when it failed; the
 * token and cached-token histograms when the model server answered (an
 * error too), TTFT and TPOT when it succeeded, and the latency, response
 * size and NTPOT (duration over output tokens) ones when the model
 * server answered and its response reached its end (not `cut`), as GIE's
 * response path records them whatever the status; running_requests back
 * down. */
struct ig_gw_metrics_cache;
struct ig_gw_metrics_cache *ig_gw_metrics_cache_new(void);
void ig_gw_metrics_cache_free(struct ig_gw_metrics_cache *c);
void ig_gw_metrics_done(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			const struct ig_gw_request_stats *st);
/* A request goes to a model server: inference_objective_running_requests
 * of its model (as asked) and llm-d's llm_d_epp_request_running go up,
 * until ig_gw_metrics_done takes them down through the series written to
 * out (NULL: no model, nothing counted). */
void ig_gw_metrics_running(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			   const char *model, const char *target, int priority,
			   struct ig_str fairness_id, bool client_labels,
			   struct ig_series *out[IG_GW_RUNNING_SERIES]);

/* One run of the picker for a request (GIE's Scheduler.Schedule): the
 * end-to-end latency, scheduler_attempts_total (success with the picked
 * endpoint's pod name, namespace and port; failure with those empty) and,
 * on success, the bytes of the prompt's prefix the picked endpoint holds
 * (prefix_indexer_hit_bytes) and their share of the blocks hashed
 * (prefix_indexer_hit_ratio). */
struct ig_gw_sched_stats {
	const char *target; /* the target model */
	bool client_labels; /* chosen by the client (v1 passthrough) */
	const struct ig_snapshot *snap;
	const struct ig_pool_rt *pool;
	const struct ig_endpoint *picked; /* the picker's first; NULL: it failed */
	double seconds;
	long hit_bytes;	  /* < 0: no prefix index */
	double hit_ratio; /* hit_bytes of the prompt's hashed bytes; < 0: none hashed */
};
/* The series of inference_extension_plugin_duration_seconds for a plugin
 * of a scheduler (created the first time: callers keep it, per
 * scheduler). NULL when out of memory. */
struct ig_sched_plugin;
struct ig_series *ig_gw_metrics_plugin_series(struct ig_gw_metrics *m,
					      const struct ig_sched_plugin *pl, bool llmd);
void ig_gw_metrics_schedule(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			    const struct ig_gw_sched_stats *st);

/* An InferenceModelRewrite (the object's name) chose `target` for a
 * request for `model` (model_rewrite_decisions_total); client_labels: the
 * rule matches any model, so the model is the client's choice. */
void ig_gw_metrics_rewrite(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			   const char *rewrite_name, const char *model, const char *target,
			   bool client_labels);

/* Flow control (GIE v1.5's flow_control_* families), for a request that
 * flow control saw; each event records:
 * PASSED: admitted at once (no wait): request_queue_duration{Dispatched} and
 * enqueue_duration{NotYetFinalized} 0 s, as GIE enqueues and dispatches
 * every request, and one dispatch cycle of `seconds` (the admission check);
 * QUEUED: queue_size and queue_bytes up, enqueue_duration{NotYetFinalized};
 * REJECTED_*: enqueue and request_queue durations with the outcome;
 * DISPATCHED, EVICTED_*: queue_size and queue_bytes down, request_queue
 * duration with the outcome (GIE's QueueOutcome names). */
enum ig_gw_flow_event {
	IG_GW_FLOW_PASSED,
	IG_GW_FLOW_QUEUED,
	IG_GW_FLOW_REJECTED_CAPACITY,
	IG_GW_FLOW_REJECTED_OTHER,
	IG_GW_FLOW_DISPATCHED,
	IG_GW_FLOW_EVICTED_TTL,
	IG_GW_FLOW_EVICTED_CANCELLED,
	IG_GW_FLOW_EVICTED_OTHER,
};
struct ig_gw_flow_stats {
	struct ig_str fairness_id; /* the client's (x-gateway-inference-fairness-id) */
	int priority;
	const char *pool, *pool_ns; /* the pool's name and namespace */
	const char *model, *target;
	bool client_labels; /* model and target chosen by the client */
	uint64_t bytes;
	/* PASSED: the admission check; QUEUED, REJECTED_*: the push;
	 * DISPATCHED, EVICTED_*: the wait */
	double seconds;
};
void ig_gw_metrics_flow(struct ig_gw_metrics *m, struct ig_gw_metrics_cache *c,
			enum ig_gw_flow_event ev, const struct ig_gw_flow_stats *st);
/* One pass of a worker over its queue: expiries, then dispatches (a
 * request admitted at once counts its own cycle, with PASSED). */
void ig_gw_metrics_dispatch_cycle(struct ig_gw_metrics *m, double seconds);
/* --flow-control: flow control is on whatever the snapshot says, so the
 * pools' saturation is exported (flow_control_pool_saturation, rendered
 * while flow control is on, from the pools' scraped figures). */
void ig_gw_metrics_flow_control(struct ig_gw_metrics *m, bool on);
/* The age past which an endpoint's metrics are stale, so that it counts
 * in none of the pool gauges (inference_pool_ready_pods, the averages);
 * 0: GIE's default, 2 s (--metrics-staleness-threshold). */
void ig_gw_metrics_staleness(struct ig_gw_metrics *m, uint64_t ms);

/* A configuration taken (ok) or refused, at unix_seconds; reload: not the
 * start's first (infergate_config_reloads_total counts reloads only). */
void ig_gw_metrics_config(struct ig_gw_metrics *m, bool reload, bool ok, double unix_seconds);
/* infergate_access_log_dropped_total, registered on first use. */
struct ig_series *ig_gw_metrics_access_log_dropped(struct ig_gw_metrics *m);
/* Renders every family; pool gauges come from `snap` (control thread). */
void ig_gw_metrics_render(struct ig_gw_metrics *m, const struct ig_snapshot *snap,
			  struct ig_buf *out);

#endif
