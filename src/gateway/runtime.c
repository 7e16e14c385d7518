#include "gateway/runtime.h"

#include "gateway/proxy.h"

#include <stdlib.h>
#include <unistd.h>

#include "gateway/metrics.h"
#include "gateway/request.h"
#include "gateway/sessions.h"

void ig_gw_options_defaults(struct ig_gw_options *o)
{
	*o = (struct ig_gw_options){0};
	o->bind = "0.0.0.0";
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o->workers = ncpu > 0 ? (uint64_t)ncpu : 1;
	o->scrape_interval_ms = 50;
	o->scrape_timeout_ms = 5000;
	o->drain_timeout_ms = 30000;
	o->max_attempts = 3;
	/* A pod may be silent for minutes before its first token when long
	 * prompts queue; the OpenAI client's own default is 600 s. */
	o->upstream_read_timeout_ms = 600000;
	o->upstream.connect_timeout_ms = 5000;
	o->upstream.idle_timeout_ms = 4000;
	o->upstream.max_idle = 32;
	o->session_header = "x-session-id";
	o->session_slack = 4;
	o->queue_timeout_ms = 30000;
	o->queue_capacity = 1000;
	o->scrape_failures_out = 3;
	o->watch_interval_ms = 1000;
	o->epp_timeout_ms = 10000;
	o->trace_sample_ratio = 1.0;
	ig_http_server_config_defaults(&o->http);
	o->http.body_progress = ig_req_body_progress;
	o->http.stream_body = ig_proxy_stream_body;
	o->http.on_refused = ig_proxy_refused;
	o->http.http2 = true;
	o->served_header = true;
}

int ig_gateway_init(struct ig_gateway_rt *G)
{
	G->endpoints = ig_endpoints_new(G->opt.workers ? (size_t)G->opt.workers : 1);
	G->sessions = ig_sessions_new();
	G->metrics = ig_gw_metrics_new();
	if (!G->endpoints || !G->sessions || !G->metrics) {
		ig_gateway_fini(G);
		return -1;
	}
	ig_gw_metrics_flow_control(G->metrics, G->opt.flow_control);
	ig_gw_metrics_staleness(G->metrics, G->opt.metrics_staleness_ms);
	return 0;
}

void ig_gateway_fini(struct ig_gateway_rt *G)
{
	ig_sessions_free(G->sessions);
	ig_gw_metrics_free(G->metrics);
	ig_endpoints_free(G->endpoints);
	G->sessions = NULL;
	G->metrics = NULL;
	G->endpoints = NULL;
	free(G->reload.errors);
	free(G->attach_json);
	G->reload.errors = G->attach_json = NULL;
}
