/* A request's OpenTelemetry spans (trace/): a SERVER span for the whole
 * request, an INTERNAL child for routing and scheduling (flow-control
 * waiting included) up to the dispatch, and a CLIENT child for the
 * exchange with the model server, whose id is the parent the pod sees in
 * the `traceparent` it receives. A client's valid traceparent is continued
 * (same trace, its span the SERVER span's parent; its sampled flag
 * decides); without one the SERVER span is a root and
 * --trace-sample-ratio decides. Unsampled, no span is recorded but the pod
 * still gets a traceparent of ours with the sampled flag off. An invalid one is dropped with its
 * tracestate whatever the decision (W3C Trace Context). GenAI attributes follow OpenTelemetry's
 * semantic conventions (gen_ai.request.model, gen_ai.response.model,
 * gen_ai.usage.input_tokens / output_tokens). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "gateway/request.h"
#include "trace/trace.h"

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ig_req_trace_begin(struct ig_req *p)
{
	struct ig_tracer *t = p->w->gw->tracer;
	struct ig_req_trace *tr = &p->trace;
	if (!t)
		return;
	const struct ig_http_request *r = &p->ex->req;
	const struct ig_http_header *h =
	    ig_http_find_header(r->headers, r->num_headers, "traceparent");
	struct ig_trace_parent parent;
	struct ig_rng *rng = ig_rng_thread();
	bool sampled;
	if (h && ig_traceparent_parse(h->value, &parent) == 0) {
		/* Parent-based: the client's decision. */
		sampled = parent.sampled;
		tr->has_parent = true;
		memcpy(tr->trace_id, parent.trace_id, 16);
		memcpy(tr->parent, parent.span_id, 8);
	} else {
		/* An invalid traceparent is no parent: the trace starts here,
		 * and the client's tracestate, which belongs to it, is
		 * deleted (W3C Trace Context, "Processing model"). */
		tr->drop_context = h != NULL;
		sampled = ig_tracer_sample(t, rng);
		ig_trace_random_id(rng, tr->trace_id, 16);
	}
	/* Sampled or not, the pod gets our traceparent: an unsampled request
	 * is the OTel SDK's non-recording span, a valid context with an id
	 * of its own and the sampled flag off, so that parent-based samplers
	 * downstream drop it too (as Envoy's OpenTelemetry tracer does). It
	 * costs two ids from the worker's generator and no span. */
	tr->propagate = true;
	ig_trace_random_id(rng, tr->client, 8);
	ig_traceparent_format(tr->trace_id, tr->client, sampled, tr->traceparent);
	if (!sampled)
		return;
	tr->on = true;
	ig_trace_random_id(rng, tr->server, 8);
	ig_trace_random_id(rng, tr->internal, 8);
	uint64_t mono = ig_now_ns();
	uint64_t wall = wall_ns();
	tr->wall_start_ns = wall - (mono > p->start_ns ? mono - p->start_ns : 0);
}

static uint64_t at(const struct ig_req *p, uint64_t mono)
{
	return p->trace.wall_start_ns + (mono > p->start_ns ? mono - p->start_ns : 0);
}

#define ATTR_S(k, v) ((struct ig_span_attr){.key = (k), .s = (v)})
#define ATTR_I(k, v) ((struct ig_span_attr){.key = (k), .is_int = true, .i = (v)})

void ig_req_trace_end(struct ig_req *p)
{
	struct ig_tracer *t = p->w->gw->tracer;
	struct ig_req_trace *tr = &p->trace;
	if (!t || !tr->on)
		return;
	tr->on = false;
	uint64_t end = ig_now_ns();
	uint64_t dispatch = tr->dispatch_ns ? tr->dispatch_ns : end;
	const struct ig_http_request *r = &p->ex->req;
	char name[96];
	snprintf(name, sizeof name, "%.*s %.*s", (int)(r->method.len > 16 ? 16 : r->method.len),
		 r->method.ptr, (int)(r->path.len > 64 ? 64 : r->path.len), r->path.ptr);
	const char *pool = p->pool ? p->pool->pool->meta.name : NULL;
	struct ig_span_attr sa[12], ia[4], ca[5];
	size_t ns = 0, ni = 0, nc = 0;
	sa[ns++] = ATTR_S("http.request.method", r->method);
	sa[ns++] = ATTR_S("url.path", r->path);
	sa[ns++] = ATTR_I("http.response.status_code", p->status);
	sa[ns++] = ATTR_S("client.address", p->ex->peer);
	if (p->model.len)
		sa[ns++] = ATTR_S("gen_ai.request.model", p->model);
	if (p->target.len)
		sa[ns++] = ATTR_S("gen_ai.response.model", p->target);
	if (p->in_tokens > 0)
		sa[ns++] = ATTR_I("gen_ai.usage.input_tokens", p->in_tokens);
	if (p->out_tokens > 0)
		sa[ns++] = ATTR_I("gen_ai.usage.output_tokens", p->out_tokens);
	if (pool)
		sa[ns++] = ATTR_S("infergate.pool", ig_str_from(pool));
	uint64_t ttft = ig_req_ttft_ns(p);
	if (ttft)
		sa[ns++] = ATTR_I("infergate.ttft_ms", (int64_t)(ttft / 1000000u));
	if (pool)
		ia[ni++] = ATTR_S("infergate.pool", ig_str_from(pool));
	if (tr->endpoint)
		ia[ni++] = ATTR_S("infergate.endpoint", ig_str_from(tr->endpoint));
	ia[ni++] = ATTR_I("infergate.candidates_ranked", (int64_t)p->nranked);
	struct ig_span spans[3] = {
	    {.trace_id = tr->trace_id,
	     .span_id = tr->server,
	     .parent = tr->has_parent ? tr->parent : NULL,
	     .kind = IG_SPAN_SERVER,
	     .name = ig_str_from(name),
	     .start_unix_ns = tr->wall_start_ns,
	     .end_unix_ns = at(p, end),
	     .status = p->status >= 500 ? IG_SPAN_ERROR : IG_SPAN_UNSET,
	     .attrs = sa,
	     .nattrs = ns},
	    {.trace_id = tr->trace_id,
	     .span_id = tr->internal,
	     .parent = tr->server,
	     .kind = IG_SPAN_INTERNAL,
	     .name = IG_STR("route and schedule"),
	     .start_unix_ns = tr->wall_start_ns,
	     .end_unix_ns = at(p, dispatch),
	     .attrs = ia,
	     .nattrs = ni},
	};
	size_t n = 2;
	if (tr->dispatch_ns) {
		const char *addr = tr->endpoint ? tr->endpoint : "";
		const char *colon = strrchr(addr, ':');
		ca[nc++] =
		    ATTR_S("server.address",
			   ((struct ig_str){addr, colon ? (size_t)(colon - addr) : strlen(addr)}));
		if (colon)
			ca[nc++] = ATTR_I("server.port", atoi(colon + 1));
		if (p->resp_started)
			ca[nc++] = ATTR_I("http.response.status_code", p->status);
		spans[n++] = (struct ig_span){
		    .trace_id = tr->trace_id,
		    .span_id = tr->client,
		    .parent = tr->server,
		    .kind = IG_SPAN_CLIENT,
		    .name = IG_STR("upstream"),
		    .start_unix_ns = at(p, tr->dispatch_ns),
		    .end_unix_ns = at(p, end),
		    .status = p->resp_started && p->status >= 500 ? IG_SPAN_ERROR : IG_SPAN_UNSET,
		    .attrs = ca,
		    .nattrs = nc};
	}
	ig_tracer_emit(t, (size_t)p->w->id, spans, n);
}
