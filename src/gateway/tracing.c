/* A request's OpenTelemetry spans (trace/): a SERVER span for the whole
 * request, an INTERNAL child for routing and scheduling (flow-control
 * waiting included) up to the dispatch, and a CLIENT child for each
 * attempt at a model server, whose id is the parent the pod sees in the
 * `traceparent` that attempt carries. A client's valid traceparent is
 * continued (same trace, its span the SERVER span's parent; its sampled
 * flag decides); without one the SERVER span is a root and
 * --trace-sample-ratio decides. Unsampled, no span is recorded but the pod
 * still gets a traceparent of ours with the sampled flag off. An invalid
 * one is dropped with its tracestate whatever the decision (W3C Trace
 * Context). Attributes follow OpenTelemetry's semantic conventions
 * 1.37.0: HTTP server and client spans, and GenAI's
 * gen_ai.* where a model was asked for. */
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
	uint8_t span[8];
	ig_trace_random_id(rng, span, 8);
	ig_traceparent_format(tr->trace_id, span, sampled, tr->traceparent);
	if (!sampled)
		return;
	tr->on = true;
	ig_trace_random_id(rng, tr->server, 8);
	ig_trace_random_id(rng, tr->internal, 8);
	uint64_t mono = ig_now_ns();
	uint64_t wall = wall_ns();
	tr->wall_start_ns = wall - (mono > p->start_ns ? mono - p->start_ns : 0);
}

/* ---- attempts: one CLIENT span each ---- */

static void attempt_close(struct ig_req_trace *tr, uint64_t now)
{
	struct ig_trace_attempt *a = &tr->attempts[tr->nattempts - 1];
	if (!a->end_ns)
		a->end_ns = now;
}

void ig_req_trace_attempt(struct ig_req *p, const char *endpoint, bool h2, bool tls)
{
	struct ig_req_trace *tr = &p->trace;
	if (!tr->on)
		return;
	uint64_t now = ig_now_ns();
	if (!tr->dispatch_ns)
		tr->dispatch_ns = now;
	/* Past the last slot, the newest attempt takes it: the attempts
	 * before it keep their spans. */
	if (tr->nattempts) {
		attempt_close(tr, now);
		if (tr->nattempts == IG_TRACE_MAX_ATTEMPTS)
			tr->nattempts--;
	}
	struct ig_trace_attempt *a = &tr->attempts[tr->nattempts++];
	*a = (struct ig_trace_attempt){
	    .start_ns = now, .endpoint = endpoint, .resend = tr->sent++, .h2 = h2, .tls = tls};
	ig_trace_random_id(ig_rng_thread(), a->span, 8);
	/* The pod's parent is this attempt's span: its id goes in the
	 * traceparent, the head's too when it is built. */
	ig_traceparent_format(tr->trace_id, a->span, true, tr->traceparent);
	if (tr->head_tp)
		memcpy(tr->head_tp, tr->traceparent, 55);
}

void ig_req_trace_attempt_status(struct ig_req *p, int status)
{
	struct ig_req_trace *tr = &p->trace;
	if (tr->on && tr->nattempts)
		tr->attempts[tr->nattempts - 1].status = status;
}

void ig_req_trace_attempt_error(struct ig_req *p, const char *type)
{
	struct ig_req_trace *tr = &p->trace;
	if (!tr->on || !tr->nattempts)
		return;
	struct ig_trace_attempt *a = &tr->attempts[tr->nattempts - 1];
	if (!a->error && !a->end_ns)
		a->error = type;
	attempt_close(tr, ig_now_ns());
}

/* ---- the spans, at the request's end ---- */

static uint64_t at(const struct ig_req *p, uint64_t mono)
{
	return p->trace.wall_start_ns + (mono > p->start_ns ? mono - p->start_ns : 0);
}

#define ATTR_S(k, v) ((struct ig_span_attr){.key = (k), .s = (v)})
#define ATTR_I(k, v) ((struct ig_span_attr){.key = (k), .is_int = true, .i = (v)})

/* HTTP semantic conventions: a method outside the known ones is "_OTHER"
 * (its original in http.request.method_original) and names spans "HTTP". */
static bool known_method(struct ig_str m)
{
	static const char *const known[] = {"GET",     "HEAD",	  "POST",  "PUT",  "DELETE",
					    "CONNECT", "OPTIONS", "TRACE", "PATCH"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (ig_str_eq_cstr(m, known[i]))
			return true;
	return false;
}

/* "host:port", "[v6]:port" or "host" into address and port (0: none). */
static struct ig_str split_host_port(struct ig_str hp, int *port)
{
	*port = 0;
	size_t end = hp.len;
	const char *colon = NULL;
	for (size_t i = hp.len; i-- > 0;) {
		if (hp.ptr[i] == ':') {
			colon = hp.ptr + i;
			break;
		}
		if (hp.ptr[i] < '0' || hp.ptr[i] > '9')
			break;
	}
	if (colon) {
		end = (size_t)(colon - hp.ptr);
		uint64_t v;
		if (ig_str_to_u64((struct ig_str){colon + 1, hp.len - end - 1}, &v) == 0 &&
		    v <= 65535)
			*port = (int)v;
	}
	if (end >= 2 && hp.ptr[0] == '[' && hp.ptr[end - 1] == ']')
		return (struct ig_str){hp.ptr + 1, end - 2};
	return (struct ig_str){hp.ptr, end};
}

/* GenAI semantic conventions' gen_ai.operation.name, by the API the path
 * names (as rewrite.c reads it); NULL for one without a known name. */
static const char *operation_of(struct ig_str path)
{
	static const struct {
		const char *suffix, *op;
	} ops[] = {{"/chat/completions", "chat"},
		   {"/completions", "text_completion"},
		   {"/embeddings", "embeddings"},
		   {"/messages", "chat"}};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		struct ig_str sfx = ig_str_from(ops[i].suffix);
		if (path.len >= sfx.len &&
		    ig_str_eq((struct ig_str){path.ptr + path.len - sfx.len, sfx.len}, sfx))
			return ops[i].op;
	}
	return NULL;
}

/* The request-target sent upstream: the head's request line's second
 * word (a URLRewrite's path included), else the client's. */
static struct ig_str upstream_target(const struct ig_req *p)
{
	const char *h = p->head.ptr, *e = h ? h + p->head.len : NULL;
	const char *sp = h ? memchr(h, ' ', p->head.len) : NULL;
	const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(e - sp - 1)) : NULL;
	if (sp2)
		return (struct ig_str){sp + 1, (size_t)(sp2 - sp - 1)};
	return p->ex->req.target;
}

#define MAX_SERVER_ATTRS 24
#define MAX_CLIENT_ATTRS 10

struct client_span {
	struct ig_span_attr attrs[MAX_CLIENT_ATTRS];
	char code[12];
};

/* The CLIENT span of attempt i (HTTP semantic conventions, client). */
static void client_span(struct ig_req *p, size_t i, struct ig_str method, bool known,
			struct client_span *cs, struct ig_span *out, uint64_t end)
{
	const struct ig_req_trace *tr = &p->trace;
	const struct ig_trace_attempt *a = &tr->attempts[i];
	struct ig_span_attr *ca = cs->attrs;
	size_t nc = 0;
	int port;
	struct ig_str ep = ig_str_from(a->endpoint ? a->endpoint : "");
	struct ig_str host = split_host_port(ep, &port);
	struct ig_str target = upstream_target(p);
	const char *scheme = a->tls ? "https://" : "http://";
	size_t ulen = strlen(scheme) + ep.len + target.len;
	char *url = ig_arena_alloc(p->ex->arena, ulen + 1);
	ca[nc++] = ATTR_S("http.request.method", known ? method : IG_STR("_OTHER"));
	if (!known)
		ca[nc++] = ATTR_S("http.request.method_original", method);
	if (url) {
		snprintf(url, ulen + 1, "%s%.*s%.*s", scheme, (int)ep.len, ep.ptr, (int)target.len,
			 target.ptr);
		ca[nc++] = ATTR_S("url.full", ((struct ig_str){url, ulen}));
	}
	ca[nc++] = ATTR_S("server.address", host);
	if (port)
		ca[nc++] = ATTR_I("server.port", port);
	ca[nc++] = ATTR_S("network.protocol.version", a->h2 ? IG_STR("2") : IG_STR("1.1"));
	if (a->resend)
		ca[nc++] = ATTR_I("http.request.resend_count", a->resend);
	/* Error for a 4xx or 5xx answer, and for none (error.type: the
	 * status code, or what went wrong). */
	const char *error = NULL;
	if (a->status) {
		ca[nc++] = ATTR_I("http.response.status_code", a->status);
		if (a->status >= 400) {
			snprintf(cs->code, sizeof cs->code, "%d", a->status);
			error = cs->code;
		}
	}
	if (!error && a->error)
		error = a->error;
	if (!error && !a->status)
		error = p->status == 499 ? "cancelled" : "_OTHER";
	if (error)
		ca[nc++] = ATTR_S("error.type", ig_str_from(error));
	*out = (struct ig_span){.trace_id = tr->trace_id,
				.span_id = a->span,
				.parent = tr->server,
				.kind = IG_SPAN_CLIENT,
				.name = known ? method : IG_STR("HTTP"),
				.start_unix_ns = at(p, a->start_ns),
				.end_unix_ns = at(p, a->end_ns ? a->end_ns : end),
				.status = error ? IG_SPAN_ERROR : IG_SPAN_UNSET,
				.attrs = ca,
				.nattrs = nc};
}

/* The SERVER span's attributes (HTTP semantic conventions, server; GenAI
 * ones where a model was asked for). */
static size_t server_attrs(struct ig_req *p, struct ig_span_attr *sa, bool known, char *code,
			   size_t codelen)
{
	const struct ig_http_exchange *ex = p->ex;
	const struct ig_http_request *r = &ex->req;
	size_t ns = 0;
	sa[ns++] = ATTR_S("http.request.method", known ? r->method : IG_STR("_OTHER"));
	if (!known)
		sa[ns++] = ATTR_S("http.request.method_original", r->method);
	sa[ns++] = ATTR_S("url.scheme", ex->tls ? IG_STR("https") : IG_STR("http"));
	sa[ns++] = ATTR_S("url.path", r->path);
	if (r->query.len)
		sa[ns++] = ATTR_S("url.query", r->query);
	const struct ig_http_header *h = ig_http_find_header(r->headers, r->num_headers, "host");
	if (h) {
		int port;
		sa[ns++] = ATTR_S("server.address", split_host_port(h->value, &port));
		sa[ns++] = ATTR_I("server.port", port ? port : ex->tls ? 443 : 80);
	}
	sa[ns++] = ATTR_S("network.protocol.version", ex->h2		      ? IG_STR("2")
						      : r->minor_version == 0 ? IG_STR("1.0")
									      : IG_STR("1.1"));
	h = ig_http_find_header(r->headers, r->num_headers, "user-agent");
	if (h)
		sa[ns++] = ATTR_S("user_agent.original", h->value);
	int port;
	sa[ns++] = ATTR_S("client.address", split_host_port(ex->peer, &port));
	if (port)
		sa[ns++] = ATTR_I("client.port", port);
	sa[ns++] = ATTR_I("http.response.status_code", p->status);
	if (p->status >= 500) {
		snprintf(code, codelen, "%d", p->status);
		sa[ns++] = ATTR_S("error.type", ig_str_from(code));
	}
	if (p->model.len) {
		const char *op = operation_of(r->path);
		if (op)
			sa[ns++] = ATTR_S("gen_ai.operation.name", ig_str_from(op));
		/* No well-known value names a self-hosted model server: vLLM
		 * (the pools' model servers) goes as a custom value. */
		if (p->pool)
			sa[ns++] = ATTR_S("gen_ai.provider.name", IG_STR("vllm"));
		sa[ns++] = ATTR_S("gen_ai.request.model", p->model);
	}
	/* The model that answered: none when no model server did. */
	if (p->target.len && p->resp_started)
		sa[ns++] = ATTR_S("gen_ai.response.model", p->target);
	if (p->in_tokens > 0)
		sa[ns++] = ATTR_I("gen_ai.usage.input_tokens", p->in_tokens);
	if (p->out_tokens > 0)
		sa[ns++] = ATTR_I("gen_ai.usage.output_tokens", p->out_tokens);
	if (p->pool)
		sa[ns++] = ATTR_S("infergate.pool", ig_str_from(p->pool->pool->meta.name));
	uint64_t ttft = ig_req_ttft_ns(p);
	if (ttft)
		sa[ns++] = ATTR_I("infergate.ttft_ms", (int64_t)(ttft / 1000000u));
	return ns;
}

void ig_req_trace_end(struct ig_req *p)
{
	struct ig_tracer *t = p->w->gw->tracer;
	struct ig_req_trace *tr = &p->trace;
	if (!t || !tr->on)
		return;
	tr->on = false;
	uint64_t end = ig_now_ns();
	uint64_t dispatch = tr->dispatch_ns ? tr->dispatch_ns : end;
	struct ig_str method = p->ex->req.method;
	bool known = known_method(method);
	const char *pool = p->pool ? p->pool->pool->meta.name : NULL;
	struct ig_span_attr sa[MAX_SERVER_ATTRS], ia[4];
	char code[12];
	size_t ns = server_attrs(p, sa, known, code, sizeof code), ni = 0;
	if (pool)
		ia[ni++] = ATTR_S("infergate.pool", ig_str_from(pool));
	if (tr->endpoint)
		ia[ni++] = ATTR_S("infergate.endpoint", ig_str_from(tr->endpoint));
	ia[ni++] = ATTR_I("infergate.candidates_ranked", (int64_t)p->nranked);
	/* No route template exists for a Gateway API path match: the SERVER
	 * span is named by its method alone, never by the raw path. */
	struct ig_span spans[2 + IG_TRACE_MAX_ATTEMPTS] = {
	    {.trace_id = tr->trace_id,
	     .span_id = tr->server,
	     .parent = tr->has_parent ? tr->parent : NULL,
	     .kind = IG_SPAN_SERVER,
	     .name = known ? method : IG_STR("HTTP"),
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
	struct client_span cs[IG_TRACE_MAX_ATTEMPTS];
	size_t n = 2;
	for (size_t i = 0; i < tr->nattempts; i++)
		client_span(p, i, method, known, &cs[i], &spans[n++], end);
	ig_tracer_emit(t, (size_t)p->w->id, spans, n);
}
