/* The last stage: the request goes to the endpoints of the ranking in
 * order, the response is streamed back piece by piece (reading from the
 * pod pauses while the client cannot take more), usage is read on the
 * way, and the request ends.
 *
 * Retries (docs/ARCHITECTURE.md, "Retries"): a request moves to the next
 * endpoint when it cannot have reached a pod (the connection failed, or
 * the request was not fully written) or when the pod is proven gone; a
 * reused keep-alive connection that dies before any response byte (the
 * pod's idle timeout racing us) is retried once on a fresh connection to
 * the same endpoint. A fully written request is never sent to a second pod
 * while the first may still be running it, unless the pod said it did not
 * process it (h2c: a GOAWAY below its stream, or REFUSED_STREAM; the
 * fault's `refused`). After the first response byte nothing is retried:
 * the client's stream is cut.
 *
 * A pool whose appProtocol is kubernetes.io/h2c (and a Service port that
 * says so) is spoken to over HTTP/2 cleartext with prior knowledge: the
 * client's h2c mode, with the same callbacks and faults as HTTP/1.1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/scratch.h"
#include "gateway/accesslog.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/sessions.h"
#include "grpc/grpc.h"
#include "http/sse.h"
#include "json/json.h"
#include "json/usage.h"
#include "sched/flowq.h"
#include "sched/picker.h"

#define MAX_ATTEMPTS 8

static const struct ig_http_client_cbs upstream_cbs;
static void attempt(struct ig_req *p);

/* ---- the end of a request ---- */

/* The attempt no longer counts as load on its endpoint. Done before the
 * last byte of an answer goes to the client: a client that sends its next
 * request the moment it has the answer must find the pod as the pod now
 * is (another worker may schedule that request before this one runs
 * ig_req_finish). */
static void account_done(struct ig_req *p)
{
	if (p->ep && !p->ep_done) {
		ig_endpoint_finish(p->ep, (size_t)p->w->id, p->ep_epoch, p->ep_tokens);
		p->ep_done = true;
	}
}

static void release_endpoint(struct ig_req *p)
{
	if (p->ep) {
		account_done(p);
		p->ep = NULL;
	}
}

/* Request metrics are recorded before the last byte goes to the client, so
 * a client that reads /metrics right after its answer sees its request.
 * Only resolved models get series: label values stay a bounded set. `cut`:
 * the response began and will not reach its end (the client left, or the
 * stream was cut), which GIE does not time. */
static void record_metrics(struct ig_req *p, bool cut)
{
	if (p->recorded || p->service)
		return; /* Service backends are not inference requests */
	p->recorded = true;
	uint64_t now = ig_now_ns();
	struct ig_gw_request_stats st = {
	    .model = p->model.ptr,
	    .target = p->target.ptr,
	    .client_labels = !p->resolved,
	    .priority = p->priority,
	    .status = p->status,
	    .pod_status = p->resp_started,
	    /* A request without a body names no model: it is no inference
	     * request, and GIE counts none for it (request_total is recorded
	     * only once a body was parsed); its errors still count. */
	    .scheduled = p->ntried > 0 && !p->random_endpoint,
	    .cut = cut,
	    .seconds = (double)(now - p->start_ns) / 1e9,
	    .req_bytes = p->body_len,
	    .resp_bytes = p->resp_bytes,
	    .in_tokens = p->in_tokens,
	    .out_tokens = p->out_tokens,
	    .cached_tokens = p->cached_known ? p->cached_tokens : -1,
	    .ttft = -1,
	    .tpot = -1,
	    .running = {p->running[0], p->running[1]},
	    .fairness_id = p->flow_id,
	};
	/* Streamed: the first event is the first token; the rest spread
	 * over the output tokens (the usage's count, else the events). */
	if (p->first_event_ns) {
		st.ttft = (double)(p->first_event_ns - p->start_ns) / 1e9;
		long tokens = p->out_tokens > 0 ? p->out_tokens : (long)p->nevents;
		if (tokens > 1 && p->last_event_ns > p->first_event_ns)
			st.tpot = (double)(p->last_event_ns - p->first_event_ns) / 1e9 /
				  (double)(tokens - 1);
	}
	ig_gw_metrics_done(p->w->gw->metrics, p->w->mcache, &st);
	/* The endpoint of the last attempt: a sink's request has only its
	 * first, which send_to did not see. */
	const char *ep = p->trace.endpoint;
	if (!ep && p->ntried > 0 && (size_t)p->ntried <= p->nranked)
		ep = p->ranked[p->ntried - 1]->addr;
	ig_activity_record(p->w->activity, st.model, st.target,
			   p->pool ? p->pool->pool->meta.name : NULL, ep, p->status, p->start_ns,
			   now);
}

static struct ig_str cstr(const char *s)
{
	return s ? ig_str_from(s) : (struct ig_str){"", 0};
}

static struct ig_str protocol_of(const struct ig_http_exchange *ex)
{
	return ex->h2			    ? IG_STR("HTTP/2")
	       : ex->req.minor_version == 0 ? IG_STR("HTTP/1.0")
					    : IG_STR("HTTP/1.1");
}

static struct ig_str client_request_id(const struct ig_http_exchange *ex)
{
	const struct ig_http_header *h =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "x-request-id");
	return h ? h->value : (struct ig_str){"", 0};
}

/* The request's line in the access log (accesslog.h), from its worker. */
static void access_log(struct ig_req *p)
{
	const struct ig_http_exchange *ex = p->ex;
	uint64_t now = ig_now_ns();
	struct ig_str id = p->request_id;
	char made[36];
	if (!id.len) /* ended before its head was built: the client's id */
		id = client_request_id(ex);
	if (!id.len) {
		/* else one of ours, as Envoy gives every request whose head it
		 * decoded one, those it answers itself (404, 400) included. */
		ig_req_uuid4(made);
		id = (struct ig_str){made, sizeof made};
	}
	struct ig_alog_entry e = {
	    .request_id = id,
	    .client = ex->peer,
	    .method = ex->req.method,
	    .path = ex->req.path,
	    .protocol = protocol_of(ex),
	    .model = p->model,
	    .target = p->target,
	    .pool = p->pool ? cstr(p->pool->pool->meta.name) : (struct ig_str){"", 0},
	    .endpoint = cstr(p->served),
	    .reason = cstr(p->reason),
	    .status = p->status,
	    .attempts = p->ntried,
	    .duration_ns = now - p->start_ns,
	    .ttft_ns = ig_req_ttft_ns(p),
	    .prompt_tokens = p->in_tokens,
	    .completion_tokens = p->out_tokens,
	    .bytes_in = ex->body.len + p->tunnel_in + p->stream_sent,
	    .bytes_out = p->resp_bytes,
	    .has_grpc_status = p->has_grpc_status,
	    .grpc_status = p->grpc_status,
	};
	if (p->qstart_ns)
		e.queue_ns = (p->qend_ns ? p->qend_ns : now) - p->qstart_ns;
	ig_alog_write(p->w->alog, &e);
}

void ig_proxy_refused(struct ig_http_exchange *ex, int status, const char *reason, void *ctx)
{
	struct ig_listen_slot *slot = ctx;
	if (!slot->worker->alog)
		return;
	/* Before its request line parsed, an HTTP/1.x request has no known
	 * version: the protocol stays empty, as its method and path do. */
	bool parsed = ex->h2 || ex->req.method.len;
	struct ig_alog_entry e = {
	    .request_id = client_request_id(ex),
	    .client = ex->peer,
	    .method = ex->req.method,
	    .path = ex->req.path,
	    .protocol = parsed ? protocol_of(ex) : (struct ig_str){"", 0},
	    .reason = ig_str_from(reason),
	    .status = status,
	    .bytes_in = ex->body.len,
	};
	ig_alog_write(slot->worker->alog, &e);
}

/* No more keeping a streamed body (relay.c's stream_pump): the answer
 * started, the body outgrew IG_REQ_REPLAY_MAX, or the request ended. */
static void stop_keeping(struct ig_req *p)
{
	p->keeping = false;
	ig_buf_free(&p->replay);
	p->replay_at = 0;
}

void ig_req_finish(struct ig_req *p)
{
	if (p->finished)
		return;
	p->finished = true;
	struct ig_worker *w = p->w;
	if (p->queued) {
		/* Answered while waiting (a timeout, the client left). */
		ig_flowq_remove(w->queue, &p->qitem);
		p->queued = false;
		ig_req_metrics_unqueued(p);
	}
	ig_timer_stop(&w->loop, &p->req_timer);
	ig_timer_stop(&w->loop, &p->backend_timer);
	ig_timer_stop(&w->loop, &p->retry_timer);
	ig_timer_stop(&w->loop, &p->body_timer);
	p->ex->on_body = NULL;
	ig_http_client_close(p->up);
	p->up = NULL;
	ig_http_client_close(p->probe);
	p->probe = NULL;
	if (p->xp)
		ig_req_extpick_end(p);
	release_endpoint(p);
	/* Not recorded yet with its response begun: the response's end did
	 * not come (a tunnel ends when either side closes, its normal end). */
	record_metrics(p, p->resp_started && !p->tunnel);
	if (p->trace.on)
		ig_req_trace_end(p);
	if (w->alog)
		access_log(p);
	ig_sse_free(&p->sse_state);
	if (p->streaming)
		stop_keeping(p);
	ig_worker_snap_release(w, p->snap);
	p->snap = NULL;
	ig_worker_request_done(w, p);
}

/* Anthropic's error object for the Messages API: clients of /v1/messages
 * parse {"type":"error","error":{"type":...,"message":...}}. */
static void respond_anthropic_error(struct ig_http_exchange *ex, int status, const char *msg,
				    const struct ig_http_header *extra, size_t nextra)
{
	const char *type = status == 400   ? "invalid_request_error"
			   : status == 401 ? "authentication_error"
			   : status == 403 ? "permission_error"
			   : status == 404 ? "not_found_error"
			   : status == 413 ? "request_too_large"
			   : status == 429 ? "rate_limit_error"
			   : status == 503 ? "overloaded_error"
			   : status == 504 ? "timeout_error"
					   : "api_error";
	struct ig_buf b = {0};
	ig_buf_append_cstrs(&b, "{\"type\":\"error\",\"error\":{\"type\":\"", type,
			    "\",\"message\":", (char *)NULL);
	ig_json_write_string(&b, msg, strlen(msg));
	ig_buf_append_cstr(&b, "}}");
	ig_http_respond(ex, status, "application/json", b.ptr, b.len, extra, nextra);
	ig_buf_free(&b);
}

/* A gRPC client reads a call's outcome from grpc-status, not from the
 * HTTP status: the gateway's own errors go to it as a Trailers-Only
 * answer (200, one HEADERS frame over HTTP/2), as Envoy sends them, with
 * the code gRPC's HTTP mapping gives and UNAVAILABLE for a backend that
 * cannot be used (GRPCRouteRule.backendRefs) or reached. */
bool ig_req_is_grpc(const struct ig_http_request *r)
{
	const struct ig_http_header *ct =
	    ig_http_find_header(r->headers, r->num_headers, "content-type");
	return ct && ct->value.len >= 16 &&
	       ig_str_ieq((struct ig_str){ct->value.ptr, 16}, IG_STR("application/grpc")) &&
	       (ct->value.len == 16 || ct->value.ptr[16] == '+' || ct->value.ptr[16] == ';');
}

static void respond_grpc_error(struct ig_req *p, int status, const char *msg)
{
	int code = status == 400   ? 13 /* INTERNAL */
		   : status == 401 ? 16 /* UNAUTHENTICATED */
		   : status == 403 ? 7	/* PERMISSION_DENIED */
		   : status == 404 ? 12 /* UNIMPLEMENTED */
		   : status == 413 ? 8	/* RESOURCE_EXHAUSTED */
		   : status == 504 ? 4	/* DEADLINE_EXCEEDED */
		   : status == 429 || status == 500 || status == 502 || status == 503
		       ? 14 /* UNAVAILABLE */
		       : 2; /* UNKNOWN */
	char num[4], enc[1024];
	snprintf(num, sizeof num, "%d", code);
	ig_grpc_percent_encode(msg, enc, sizeof enc);
	const struct ig_http_header h[] = {{IG_STR("grpc-status"), ig_str_from(num)},
					   {IG_STR("grpc-message"), ig_str_from(enc)}};
	p->has_grpc_status = true;
	p->grpc_status = code;
	ig_http_respond(p->ex, 200, "application/grpc", "", 0, h, 2);
}

void ig_req_fail(struct ig_req *p, int status, const char *type, const char *code, const char *msg)
{
	p->status = status;
	if (!p->reason) /* msg may be the caller's stack */
		p->reason = ig_arena_strdup(p->ex->arena, ig_str_from(msg)).ptr;
	record_metrics(p, false);
	const struct ig_http_header drop = {IG_STR("x-llm-d-request-dropped-reason"),
					    ig_str_from(p->drop_reason ? p->drop_reason : "")};
	size_t ndrop = p->drop_reason ? 1 : 0;
	if (p->sink)
		p->sink->failed(p, status, type, msg);
	else if (ig_str_eq_cstr(p->ex->req.path, "/v1/messages"))
		respond_anthropic_error(p->ex, status, msg, &drop, ndrop);
	else if (ig_req_is_grpc(&p->ex->req))
		respond_grpc_error(p, status, msg);
	else
		ig_http_respond_error_with(p->ex, status, type, code, msg, &drop, ndrop);
	ig_req_finish(p);
}

/* After the first response byte: the client sees the connection end
 * without the final chunk, which tells it the response is incomplete. */
static void cut(struct ig_req *p, const char *why)
{
	p->reason = why;
	p->ex->on_abort = NULL;
	ig_http_abort(p->ex);
	ig_req_finish(p);
}

void ig_req_shut(struct ig_req *p, const char *why)
{
	if (p->finished)
		return;
	char msg[160];
	if (p->resp_started) {
		snprintf(msg, sizeof msg,
			 "the gateway shut down during the response (%s): the response was cut",
			 why);
		cut(p, ig_arena_strdup(p->ex->arena, ig_str_from(msg)).ptr);
		return;
	}
	ig_http_client_close(p->up);
	p->up = NULL;
	release_endpoint(p);
	snprintf(msg, sizeof msg, "the gateway shut down before the model server answered (%s)",
		 why);
	ig_req_fail(p, 503, "service_unavailable", NULL, msg);
}

static void retry_now(struct ig_loop *loop, struct ig_timer *t);

/* The route's retry block (Gateway API GEP-1731) asks for another attempt:
 * after a listed status, and for a connection error or a backendRequest
 * timeout before the response began (HTTPRouteRetryConnectionError,
 * HTTPRouteRetryBackendTimeout), while attempts remain. The route asked
 * for it, so the request goes again even when it was sent whole: the
 * rule of ARCHITECTURE.md for requests that may have run is the default
 * of routes without a retry block. The attempt goes to the next endpoint
 * of the ranking (round the list) after the backoff. */
static bool retry_route(struct ig_req *p, const char *why)
{
	if (p->resp_started || p->finished || !ig_req_retry_left(p))
		return false;
	p->route_retries++;
	ig_warn("upstream %s: %s: retrying (%d of the route's attempts)", p->ep ? p->ep->addr : "-",
		why, p->route_retries);
	if (p->up) {
		ig_http_client_close(p->up);
		p->up = NULL;
	}
	ig_timer_stop(&p->w->loop, &p->backend_timer);
	if (p->ep)
		release_endpoint(p);
	const struct ig_retry *rt = &p->rule->retry;
	ig_timer_start(&p->w->loop, &p->retry_timer, rt->has_backoff ? rt->backoff_ms : 0,
		       retry_now, p);
	return true;
}

static void on_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_req *p = t->data;
	ig_req_trace_attempt_error(p, "timeout");
	if (t == &p->backend_timer &&
	    retry_route(p, "no answer within the route's backendRequest timeout"))
		return;
	ig_http_client_close(p->up);
	p->up = NULL;
	if (!p->resp_started) {
		ig_req_fail(p, 504, "timeout", NULL, "upstream request timeout");
		return;
	}
	cut(p, "the request timed out during the response: the response was cut");
}

void ig_req_arm_timeout(struct ig_req *p)
{
	if (p->rule && p->rule->timeout_request_ms)
		ig_timer_start(&p->w->loop, &p->req_timer, p->rule->timeout_request_ms, on_timeout,
			       p);
}

/* ---- usage accounting from the response ---- */

static void take_usage(struct ig_req *p, const struct ig_usage *u)
{
	if (u->prompt_tokens >= 0)
		p->in_tokens = (long)u->prompt_tokens;
	if (u->completion_tokens >= 0)
		p->out_tokens = (long)u->completion_tokens;
	if (u->cached_tokens >= 0) {
		p->cached_tokens = (long)u->cached_tokens;
		p->cached_known = true;
	}
}

/* A JSON response's usage, from the last bytes kept of it: vLLM and
 * OpenAI put usage at the end, so the body is never kept whole or parsed. */
static void usage_from_tail(struct ig_req *p)
{
	struct ig_usage u;
	if (p->tail_len && ig_json_find_usage(p->tail, p->tail_len, &u) == 0)
		take_usage(p, &u);
}

static void keep_tail(struct ig_req *p, const char *data, size_t len)
{
	if (!p->tail && !(p->tail = ig_arena_alloc(p->ex->arena, IG_REQ_TAIL)))
		return;
	if (len >= IG_REQ_TAIL) {
		memcpy(p->tail, data + len - IG_REQ_TAIL, IG_REQ_TAIL);
		p->tail_len = IG_REQ_TAIL;
		return;
	}
	if (p->tail_len + len > IG_REQ_TAIL) {
		size_t drop = p->tail_len + len - IG_REQ_TAIL;
		memmove(p->tail, p->tail + drop, p->tail_len - drop);
		p->tail_len -= drop;
	}
	memcpy(p->tail + p->tail_len, data, len);
	p->tail_len += len;
}

/* Usage an event carries inside an object of its own: the Responses
 * API's response.completed (`response.usage`) and Anthropic's
 * message_start (`message.usage`, the input tokens). */
static void nested_usage(struct ig_req *p, const char *data, size_t len)
{
	static const char *const holders[] = {"response", "message"};
	struct ig_json_value root, holder, usage;
	if (ig_json_parse(data, len, &root) < 0)
		return;
	for (size_t i = 0; i < 2; i++) {
		if (ig_json_get(root, holders[i], &holder) < 0 || holder.type != IG_JSON_OBJECT ||
		    ig_json_get(holder, "usage", &usage) < 0 || usage.type != IG_JSON_OBJECT)
			continue;
		struct ig_usage u;
		if (ig_json_find_usage(holder.raw.ptr, holder.raw.len, &u) == 0)
			take_usage(p, &u);
	}
}

/* The position after `key` (quoted) where it names a member, the colon
 * and the space after it skipped, looking from p on; NULL when it names
 * none. Outside strings a quote is never escaped and inside them it
 * always is, so a quoted name followed by a colon is a member's name. */
static const char *member_value(const char *p, const char *end, struct ig_str key)
{
	while ((p = memmem(p, (size_t)(end - p), key.ptr, key.len))) {
		p += key.len;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end || *p++ != ':')
			continue;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		return p;
	}
	return NULL;
}

static bool has_member(const char *p, const char *end, struct ig_str key)
{
	return member_value(p, end, key) != NULL;
}

/* Whether some member `key` has the string `value` (quoted). */
static bool member_is(const char *p, const char *end, struct ig_str key, struct ig_str value)
{
	while ((p = member_value(p, end, key)))
		if ((size_t)(end - p) >= value.len && memcmp(p, value.ptr, value.len) == 0)
			return true;
	return false;
}

/* Whether the member `key` (quoted, with its quotes) is, somewhere in
 * the event, a non-empty string (or, for an array, a non-empty one). */
static bool member_nonempty(const char *p, const char *end, struct ig_str key, char open)
{
	while ((p = member_value(p, end, key))) {
		if (p + 1 < end && p[0] == open) {
			const char *q = p + 1;
			while (open == '[' && q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && *q != (open == '[' ? ']' : '"'))
				return true;
		}
	}
	return false;
}

/* Whether a completions or chat chunk carries output: text, content,
 * reasoning (vLLM's reasoning_content, or reasoning) or a tool call. A
 * chat stream opens with a chunk of only the assistant's role, a
 * completions one may send an empty text, and the usage chunk has no
 * choices: none of them is a token. */
static bool chunk_has_output(const char *data, size_t len)
{
	static const struct ig_str strings[] = {IG_STR("\"text\""), IG_STR("\"content\""),
						IG_STR("\"reasoning_content\""),
						IG_STR("\"reasoning\"")};
	const char *end = data + len;
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
		if (member_nonempty(data, end, strings[i], '"'))
			return true;
	return member_nonempty(data, end, IG_STR("\"tool_calls\""), '[');
}

/* Whether an event comes before any output, so that it says nothing of
 * the time to the first token. A completions or chat chunk (it has
 * "choices") without output is one. So are the events the Responses API
 * sends before any output: vLLM writes response.created and
 * response.in_progress (OpenAI also response.queued) as soon as the
 * request is accepted, then the ones that add an item or a part
 * (response.output_item.added, response.content_part.added, a reasoning
 * model's response.reasoning_part.added, OpenAI's
 * response.reasoning_summary_part.added: every "*.added") or say a tool
 * call is under way (response.mcp_call.in_progress) before the first
 * delta; and those of
 * Anthropic's Messages API before its first content_block_delta:
 * message_start, content_block_start and ping. Such an event holds one of
 * those names as a JSON string (its type); no other event does, since a
 * quote inside a string is escaped, so a scan finds it without parsing
 * the object the event carries (instructions and all). This runs only
 * until the first output, on a few events. */
static bool ends_with(const char *p, size_t n, struct ig_str tail)
{
	return n >= tail.len && memcmp(p + n - tail.len, tail.ptr, tail.len) == 0;
}

static bool before_output(const char *data, size_t len)
{
	static const struct ig_str messages[] = {
	    IG_STR("\"message_start\""), IG_STR("\"content_block_start\""), IG_STR("\"ping\"")};
	if (memmem(data, len, "\"choices\"", 9))
		return !chunk_has_output(data, len);
	const char *p = data, *end = data + len;
	while ((p = memmem(p, (size_t)(end - p), "\"response.", 10))) {
		p += 10;
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			break;
		size_t n = (size_t)(q - p);
		if ((n == 7 && memcmp(p, "created", 7) == 0) ||
		    (n == 6 && memcmp(p, "queued", 6) == 0) ||
		    ends_with(p, n, IG_STR("in_progress")) || ends_with(p, n, IG_STR(".added")))
			return true;
	}
	if (memmem(data, len, "\"content_block_delta\"", 21))
		return false;
	for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++)
		if (memmem(data, len, messages[i].ptr, messages[i].len))
			return true;
	/* An error reported after the 200 is no token either: vLLM's
	 * {"error": ...} event, Anthropic's {"type": "error", "error": ...},
	 * the Responses API's {"type": "error", "code": ..., ...}. */
	return has_member(data, data + len, IG_STR("\"error\"")) ||
	       member_is(data, data + len, IG_STR("\"type\""), IG_STR("\"error\""));
}

/* One SSE `data:` payload: the final chunk carries the usage (chat and
 * completions), or an event names it (Responses, Anthropic Messages). The
 * first event with output is the first token (TTFT). */
static int on_sse_data(void *ud, const char *data, size_t len)
{
	struct ig_req *p = ud;
	struct ig_usage u;
	if (!(len == 6 && memcmp(data, "[DONE]", 6) == 0)) {
		p->last_event_ns = p->w->loop.now_ns;
		if (!p->first_event_ns && !before_output(data, len))
			p->first_event_ns = p->last_event_ns;
		/* Tokens, for the TPOT of a stream without usage: the events
		 * from the first with output on (each a token in vLLM's
		 * streams, the finishing one with the EOS too); a chat
		 * stream's role chunk before them is none. */
		if (p->first_event_ns)
			p->nevents++;
	}
	/* Every vLLM completions chunk but the last ends with "usage": null:
	 * no usage, in the root or in a holder, and nothing to search for
	 * (searching, then parsing the chunk whole in nested_usage, was half
	 * of the gateway's user CPU per streamed token). */
	if (len <= 9 || ig_json_ends_with_null_usage(data, len) ||
	    !memmem(data, len, "\"usage\"", 7))
		return 0;
	if (ig_json_find_usage(data, len, &u) == 0)
		take_usage(p, &u);
	else
		nested_usage(p, data, len);
	return 0;
}

/* ---- upstream callbacks ---- */

static bool hop_by_hop(struct ig_str name)
{
	static const struct ig_str names[] = {
	    IG_STR("connection"),	 IG_STR("keep-alive"),	  IG_STR("proxy-connection"),
	    IG_STR("transfer-encoding"), IG_STR("upgrade"),	  IG_STR("te"),
	    IG_STR("trailer"),		 IG_STR("content-length")};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq(name, names[i]))
			return true;
	return false;
}

/* Notes the answer's grpc-status when h is one (in its head, a
 * Trailers-Only answer, or its trailers). */
static void note_grpc_status(struct ig_req *p, const struct ig_http_header *h)
{
	uint64_t v;
	if (ig_str_ieq_cstr(h->name, "grpc-status") && ig_str_to_u64(h->value, &v) == 0 &&
	    v < 1000) {
		p->has_grpc_status = true;
		p->grpc_status = (int)v;
	}
}

struct resp_add {
	struct ig_http_header *h;
	size_t *n;
	size_t cap;
};

static void add_resp_header(void *ud, const char *name, const char *value)
{
	struct resp_add *ra = ud;
	if (*ra->n < ra->cap)
		ra->h[(*ra->n)++] = (struct ig_http_header){ig_str_from(name), ig_str_from(value)};
}

/* PreRequest: the endpoint now holds the prompt's prefix (as many of its
 * blocks as its KV cache holds, under autoTune). */
static void commit_prefix(struct ig_req *p)
{
	if (p->committed || !p->pool || !p->pool->sched || !p->ep)
		return;
	struct ig_scheduler *s = p->pool->sched->s;
	struct ig_cache_config cache = {0};
	if (ig_scheduler_auto_tunes(s))
		ig_endpoint_read_cache(p->ep, &cache);
	ig_schedule_commit_blocks(s, &p->res, p->ep->key, cache.gpu_blocks);
	p->committed = true;
	if (p->session.len)
		ig_session_store(p->w->gw->sessions, p->session, p->ep->key);
}

static int on_up_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct ig_req *p = ud;
	ig_req_trace_attempt_status(p, res->status);
	if (ig_req_should_retry(p, res->status)) {
		/* Nothing has gone to the client yet: the answer is dropped
		 * with its connection. */
		char why[40];
		snprintf(why, sizeof why, "answered %d", res->status);
		retry_route(p, why);
		return 0;
	}
	/* The length the client is told is the one the body will have as the
	 * framing reads it, not the pod's Content-Length header: with both
	 * Transfer-Encoding and Content-Length the chunked coding wins, and
	 * announcing the header's count would let the decoded body spill into
	 * (or fall short of) the client's next response. A HEAD answer keeps
	 * the length of the body it describes. */
	if (ig_str_eq_cstr(p->ex->req.method, "HEAD")) {
		const struct ig_http_header *cl =
		    ig_http_find_header(res->headers, res->num_headers, "content-length");
		uint64_t v;
		if (cl && ig_str_to_u64(cl->value, &v) == 0)
			p->resp_length = (int64_t)v;
	} else {
		p->resp_length = ig_http_client_body_length(c);
	}
	p->status = res->status;
	p->resp_started = true;
	p->first_byte_ns = ig_now_ns();
	ig_cstr_copy(p->served, sizeof p->served, p->ep->addr);
	if (p->streaming) {
		stop_keeping(p); /* no other attempt now */
		/* The client may now be silent while the answer streams (a
		 * bidirectional gRPC call): the read timeout bounds that. */
		ig_timer_stop(&p->w->loop, &p->body_timer);
	}
	/* An external picker sees the response head first (extpick.c). */
	if (p->xp && ig_req_extpick_hold(p, c, res))
		return 0;
	ig_req_relay_head(p, res);
	return 0;
}

/* ---- WebSocket tunnels ----
 *
 * A handshake the backend accepts (101) turns the exchange into a tunnel:
 * the client's bytes go to the backend as they come and the backend's to
 * the client, each side pausing the other when it cannot take more. The
 * route's request and backend timeouts bound the handshake only; in the
 * tunnel the upstream read timeout bounds silence both ways, and the
 * client send timeout a client that takes nothing. Either side closing
 * ends it: the backend's close after the client has its last bytes. */

static int on_tunnel_data(struct ig_http_exchange *ex, const char *data, size_t len)
{
	struct ig_req *p = ex->user;
	if (!p->up)
		return 1;
	p->tunnel_in += len;
	int rc = ig_http_client_write(p->up, data, len);
	if (rc < 0) {
		cut(p, "the model server's side of the WebSocket failed");
		return 1;
	}
	return rc; /* 1: the backend is full; resumed by on_up_writable */
}

/* ---- a streamed request body ----
 *
 * A body still coming that goes to a Service as it comes
 * (ig_proxy_stream_body: a gRPC call, a large upload): the head first
 * (over HTTP/2 with no content-length; over HTTP/1.1 with the client's
 * Content-Length, else chunked), then what the client sends, once the
 * connection is up and as far as the upstream client takes it; the
 * client may send more only as what was passed on leaves the exchange
 * (HTTP/2 flow-control credit, or the server reading on). What went is
 * kept too, up to IG_REQ_REPLAY_MAX and until the answer starts, so that
 * an attempt that fails before the answer can be made again as for a
 * body read whole (request.h: replay); past that, once a byte went, a
 * failure before the answer is a 502 (UNAVAILABLE to a gRPC client). */

/* The client stalled inside its streamed body, before the answer: 408,
 * as the body timeout answers a body read whole (nginx's
 * client_body_timeout; Envoy's stream idle timeout before the response
 * headers). The pod may have started on what it got: its connection is
 * closed, and the request goes nowhere else. */
static void client_stalled(struct ig_req *p, const char *why)
{
	ig_info("client %.*s: stalled while sending its request body (%s)", (int)p->ex->peer.len,
		p->ex->peer.ptr, why);
	ig_http_client_close(p->up);
	p->up = NULL;
	release_endpoint(p);
	char msg[160];
	snprintf(msg, sizeof msg, "the client stalled while sending the request body (%s)", why);
	ig_req_fail(p, 408, "timeout", NULL, msg);
}

/* Whether the gateway waits on the client: it holds nothing of the body
 * (every byte the client sent was taken, so the client may send more), and
 * more is to come. Silence then is the client's. */
static bool awaits_client(const struct ig_req *p)
{
	return p->streaming && !p->resp_started && !p->ex->body_done && p->ex->body.len == 0;
}

/* The body timeout, for a streamed body: client silence while the gateway
 * waits on it. While the gateway holds bytes back (the pod or its
 * connection is slower than the client) the silence is not the client's,
 * and the clock starts again. */
static void on_body_silence(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_req *p = t->data;
	if (p->resp_started || p->ex->body_done)
		return;
	uint64_t limit = p->w->gw->opt.http.body_timeout_ms * 1000000u, now = ig_loop_now(loop);
	if (!awaits_client(p))
		p->body_last_ns = now;
	if (now - p->body_last_ns >= limit) {
		client_stalled(p, "body timeout");
		return;
	}
	ig_timer_start_ns(loop, t, p->body_last_ns + limit - now, on_body_silence, p);
}

static void stream_pump(struct ig_req *p)
{
	struct ig_http_exchange *ex = p->ex;
	/* A full upstream client (ig_http_client_body said so) takes more
	 * only after on_writable: until then what comes from the client waits
	 * in the exchange, which holds the client back. */
	if (!p->up || p->stream_ended || !ig_http_client_connected(p->up) ||
	    ig_http_client_body_full(p->up))
		return;
	bool all_taken = ex->body_done && ex->body.len == 0;
	if (p->keeping && p->replay_at < p->replay.len) {
		/* Another attempt: what the last one passed on goes first. */
		size_t n = p->replay.len - p->replay_at;
		if (ig_http_client_body(p->up, p->replay.ptr + p->replay_at, n, all_taken) < 0)
			return;
		p->replay_at += n;
		p->attempt_sent += n;
		p->stream_ended = all_taken;
		if (all_taken || ig_http_client_body_full(p->up))
			return;
	}
	size_t n = ex->body.len;
	if (!n && !ex->body_done)
		return;
	if (ig_http_client_body(p->up, ex->body.ptr, n, ex->body_done) < 0)
		return; /* the answer came and ended first: the rest is not wanted */
	if (p->keeping) {
		if (ig_buf_append(&p->replay, ex->body.ptr, n) == 0)
			p->replay_at = p->replay.len;
		else
			stop_keeping(p); /* past IG_REQ_REPLAY_MAX */
	}
	ig_http_body_consume(ex, n);
	p->body_last_ns = ig_loop_now(&p->w->loop);
	p->stream_sent += n;
	p->attempt_sent += n;
	p->stream_ended = ex->body_done;
}

static void on_client_body(struct ig_http_exchange *ex)
{
	struct ig_req *p = ex->user;
	p->body_last_ns = ig_loop_now(&p->w->loop);
	stream_pump(p);
}

static void on_up_writable(struct ig_http_client *c, void *ud)
{
	struct ig_req *p = ud;
	if (p->streaming)
		stream_pump(p);
	else
		ig_http_tunnel_pause(p->ex, false);
}

static void switch_protocols(struct ig_req *p, const struct ig_http_response *res,
			     struct ig_http_header *hdrs, size_t n)
{
	/* hop_by_hop() left Upgrade out: the 101 names the protocol. */
	const struct ig_http_header *up =
	    ig_http_find_header(res->headers, res->num_headers, "upgrade");
	if (!up) {
		ig_warn("upstream %s: 101 without an Upgrade header", p->ep->addr);
		ig_http_client_close(p->up);
		p->up = NULL;
		p->resp_started = false;
		ig_req_fail(p, 502, "bad_gateway", NULL,
			    "invalid response from the model server: 101 without Upgrade");
		return;
	}
	hdrs[n++] = *up;
	p->tunnel = true;
	ig_timer_stop(&p->w->loop, &p->req_timer);
	ig_timer_stop(&p->w->loop, &p->backend_timer);
	account_done(p); /* the pod's own figures tell its load from now on */
	if (ig_http_switch_protocols(p->ex, hdrs, n, on_tunnel_data) < 0) {
		/* Only when out of memory: nothing went to the client. */
		ig_http_client_close(p->up);
		p->up = NULL;
		p->resp_started = false;
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
	}
}

/* ---- the model's name as asked, in the response (GIE v1) ---- */

static _Thread_local struct ig_scratch restore_mem;

/* `"model":"<name>"` (spaced: `"model": "<name>"`) in the arena. */
static struct ig_str model_member(struct ig_arena *a, struct ig_str name, bool spaced)
{
	const char *head = spaced ? "\"model\": \"" : "\"model\":\"";
	size_t hl = strlen(head);
	char *b = ig_arena_alloc(a, hl + name.len + 1);
	if (!b)
		return (struct ig_str){NULL, 0};
	memcpy(b, head, hl);
	memcpy(b + hl, name.ptr, name.len);
	b[hl + name.len] = '"';
	return (struct ig_str){b, hl + name.len + 1};
}

int ig_req_restore_setup(struct ig_req *p)
{
	struct ig_arena *a = p->ex->arena;
	for (int k = 0; k < 2; k++) {
		p->restore_from[k] = model_member(a, p->target, k == 1);
		p->restore_to[k] = model_member(a, p->model, k == 1);
		if (!p->restore_from[k].ptr || !p->restore_to[k].ptr)
			return -1;
	}
	p->carry = ig_arena_alloc(a, p->restore_from[1].len);
	p->carry_len = 0;
	return p->carry ? 0 : -1;
}

size_t ig_req_restore_bound(const struct ig_req *p, size_t len)
{
	size_t n = p->carry_len + len, from = p->restore_from[0].len, to = p->restore_to[0].len;
	return n + (to > from ? (n / from + 1) * (to - from) : 0);
}

/* Chains emit's results: -1 sticks, 1 (the receiver is full) is kept. */
static int emit_out(ig_req_emit_fn emit, void *ud, const char *data, size_t len, int rc)
{
	if (rc < 0 || !len)
		return rc;
	int r = emit(ud, data, len);
	return r < 0 ? -1 : (r | rc);
}

/* As GIE v1.5 does with bytes.ReplaceAll over each piece, but also
 * across pieces: a member cut between two pieces is held until the next
 * one (or the end) decides it. Only bytes that may begin a member are
 * held, so an SSE event's end always goes at once. */
int ig_req_restore_feed(struct ig_req *p, const char *data, size_t len, bool last,
			ig_req_emit_fn emit, void *ud)
{
	static const char key[] = "\"model\":";
	const size_t klen = sizeof key - 1;
	const char *s = data;
	size_t n = len;
	if (p->carry_len) {
		char *j = ig_scratch_get(&restore_mem, p->carry_len + len);
		if (!j) {
			/* Out of memory: what is held goes as it is. */
			int rc = emit_out(emit, ud, p->carry, p->carry_len, 0);
			p->carry_len = 0;
			return emit_out(emit, ud, data, len, rc);
		}
		memcpy(j, p->carry, p->carry_len);
		memcpy(j + p->carry_len, data, len);
		s = j;
		n = p->carry_len + len;
		p->carry_len = 0;
	}
	size_t out = 0, pos = 0, hold = n;
	int rc = 0;
	const char *m;
	while (pos < n && (m = memmem(s + pos, n - pos, key, klen))) {
		size_t at = (size_t)(m - s), have = n - at;
		int which = -1;
		bool open = false;
		for (int k = 0; k < 2 && which < 0; k++) {
			struct ig_str f = p->restore_from[k];
			if (have >= f.len)
				which = memcmp(s + at, f.ptr, f.len) == 0 ? k : -1;
			else
				open |= memcmp(s + at, f.ptr, have) == 0;
		}
		if (which >= 0) {
			rc = emit_out(emit, ud, s + out, at - out, rc);
			rc = emit_out(emit, ud, p->restore_to[which].ptr, p->restore_to[which].len,
				      rc);
			out = pos = at + p->restore_from[which].len;
			continue;
		}
		if (open && !last) {
			hold = at;
			break;
		}
		pos = at + 1;
	}
	if (hold == n && !last) {
		/* The key itself may be cut at the end. */
		for (size_t k = n > out + klen - 1 ? n - (klen - 1) : out; k < n; k++)
			if (s[k] == '"' && memcmp(s + k, key, n - k) == 0) {
				hold = k;
				break;
			}
	}
	rc = emit_out(emit, ud, s + out, hold - out, rc);
	memcpy(p->carry, s + hold, n - hold);
	p->carry_len = n - hold;
	return rc;
}

/* A piece's output is gathered and written once: one send (one chunk)
 * per piece, as without the replacement. The room is the thread's
 * scratch (given back when the thread ends), reserved for the most the
 * piece can become, so gathering never grows it. */
static _Thread_local struct ig_scratch restore_out_mem;

struct gathered {
	char *ptr;
	size_t len;
};

static int emit_gather(void *ud, const char *data, size_t len)
{
	struct gathered *g = ud;
	memcpy(g->ptr + g->len, data, len);
	g->len += len;
	return 0;
}

static int restore_write(struct ig_req *p, const char *data, size_t len, bool last)
{
	struct gathered g = {ig_scratch_get(&restore_out_mem, ig_req_restore_bound(p, len)), 0};
	if (!g.ptr) {
		/* Out of memory: what is held and the piece go as they came,
		 * and nothing more is replaced. */
		p->restore_model = false;
		int rc = p->carry_len ? ig_http_write(p->ex, p->carry, p->carry_len) : 0;
		p->carry_len = 0;
		int r = rc < 0 ? -1 : ig_http_write(p->ex, data, len);
		return r < 0 ? -1 : (r | rc);
	}
	ig_req_restore_feed(p, data, len, last, emit_gather, &g);
	return ig_http_write(p->ex, g.ptr, g.len);
}

void ig_req_relay_head(struct ig_req *p, const struct ig_http_response *res)
{
	struct ig_http_header hdrs[104 + 64];
	size_t n = 0;
	bool mods = (p->rule && p->rule->nfilters) || (p->backend && p->backend->nfilters);
	bool nominated = ig_http_connection_nominates(res->headers, res->num_headers);
	for (size_t i = 0; i < res->num_headers && n < 100; i++) {
		/* Also what the pod's Connection names (RFC 9110 §7.6.1). */
		if (hop_by_hop(res->headers[i].name) ||
		    (nominated && ig_http_connection_names(res->headers, res->num_headers,
							   res->headers[i].name)))
			continue;
		if (mods && ig_req_header_dropped(p, IG_FILTER_RESPONSE_HEADER_MODIFIER,
						  res->headers[i].name))
			continue;
		/* A CORS filter decides alone what the origin may read. */
		if (p->cors_applied && res->headers[i].name.len > 15 &&
		    ig_str_ieq((struct ig_str){res->headers[i].name.ptr, 15},
			       IG_STR("access-control-")))
			continue;
		if (ig_str_ieq_cstr(res->headers[i].name, "content-type") &&
		    ig_sse_media_type(res->headers[i].value))
			p->sse = true;
		note_grpc_status(p, &res->headers[i]);
		hdrs[n++] = res->headers[i];
	}
	/* Which pod answered, for InferencePool backends only: a debugging
	 * aid (GIE reports it to the picker in metadata only, and Envoy tells
	 * clients no pod address), off with --no-served-endpoint-header. */
	if (p->pool && p->w->gw->opt.served_header) {
		hdrs[n].name = IG_STR("x-gateway-destination-endpoint-served");
		hdrs[n++].value = ig_str_from(p->ep->addr);
	}
	/* destination-endpoint-served-verifier in the built-in picker's
	 * configuration: what GIE's conformance picker sets from the served
	 * endpoint the proxy reports (an external picker sets its own). */
	if (p->pool && !p->xp && p->pool->sched && ig_scheduler_reports_served(p->pool->sched->s)) {
		hdrs[n].name = IG_STR(IG_SERVED_TEST_HEADER);
		hdrs[n++].value = ig_str_from(p->ep->addr);
	}
	/* session-affinity-scorer: the endpoint that served, for the client
	 * to send back in the next request of its session (llm-d sets it
	 * from its response plugin). */
	struct ig_str token = {0};
	if (p->pool && !p->xp && p->pool->sched &&
	    (ig_scheduler_needs(p->pool->sched->s) & IG_SCHED_NEEDS_SESSION) &&
	    (token = ig_session_token_of(p->pool, p->ep)).len) {
		hdrs[n].name = IG_STR(IG_SESSION_TOKEN_HEADER);
		hdrs[n++].value = token;
	}
	if (mods) {
		struct resp_add ra = {hdrs, &n, 104 + 64};
		ig_req_header_additions(p, IG_FILTER_RESPONSE_HEADER_MODIFIER, add_resp_header,
					&ra);
	}
	commit_prefix(p);
	struct ig_http_header sess;
	if (n < sizeof hdrs / sizeof hdrs[0] && ig_req_session_header(p, &sess))
		hdrs[n++] = sess;
	if (res->status == 101 && p->upgrade) {
		switch_protocols(p, res, hdrs, n);
		return;
	}
	/* A body that goes through an external picker comes back in its
	 * pieces, of a length known at the end (Envoy drops Content-Length
	 * in FULL_DUPLEX_STREAMED). */
	int64_t length = ig_req_extpick_takes_body(p) ? -1 : p->resp_length;
	if (p->restore_model) {
		if (ig_http_bodyless(res->status, p->ex->req.method) || ig_req_restore_setup(p) < 0)
			p->restore_model = false;
		else if (p->restore_from[0].len != p->restore_to[0].len)
			length = -1; /* the names' lengths differ: known at the end */
	}
	if (ig_http_start_response(p->ex, res->status, hdrs, n, length) < 0) {
		/* The client is gone: its on_abort ends the request. */
		ig_http_client_close(p->up);
		p->up = NULL;
	}
}

static int on_up_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct ig_req *p = ud;
	p->resp_bytes += len;
	if (p->tunnel)
		return ig_http_write(p->ex, data, len) != 0 ? 1 : 0;
	if (p->sse)
		ig_sse_feed(&p->sse_state, data, len, on_sse_data, p);
	else
		keep_tail(p, data, len);
	/* The last piece of a response with a length completes it for the
	 * client as soon as it is written: count the request first. */
	bool last = p->resp_length >= 0 && p->resp_bytes == (size_t)p->resp_length;
	if (last) {
		if (!p->sse)
			usage_from_tail(p);
		record_metrics(p, false);
		account_done(p);
	}
	/* An external picker takes the body and answers the client. */
	int xrc = p->xp ? ig_req_extpick_body(p, data, len, last) : -1;
	if (xrc >= 0)
		return xrc;
	/* 1: the client is full (resume on_client_writable); -1: it is gone
	 * (on_abort follows): either way, stop reading. */
	if (p->restore_model)
		return restore_write(p, data, len, last) != 0 ? 1 : 0;
	return ig_http_write(p->ex, data, len) != 0 ? 1 : 0;
}

/* The pod's trailer fields, kept past its connection (which goes back
 * to the pool) for the end of the client's response. */
static void keep_trailers(struct ig_req *p, struct ig_http_client *c)
{
	struct ig_http_header t[64];
	size_t n = ig_http_client_trailers(c, t, sizeof t / sizeof t[0]);
	if (!n)
		return;
	struct ig_http_header *kept = ig_arena_alloc(p->ex->arena, n * sizeof *kept);
	if (!kept)
		return;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ig_http_trailer_allowed(t[i].name))
			continue;
		note_grpc_status(p, &t[i]);
		kept[k].name = ig_arena_strdup(p->ex->arena, t[i].name);
		kept[k].value = ig_arena_strdup(p->ex->arena, t[i].value);
		if (!kept[k].name.ptr || !kept[k].value.ptr)
			return;
		k++;
	}
	p->trailers = kept;
	p->ntrailers = k;
}

static void on_up_done(struct ig_http_client *c, void *ud)
{
	struct ig_req *p = ud;
	if (p->restore_model && p->carry_len) {
		/* Bytes held for a member the body ended without. */
		ig_http_write(p->ex, p->carry, p->carry_len);
		p->carry_len = 0;
	}
	if (!p->sse && !p->recorded && !p->tunnel)
		usage_from_tail(p);
	if (!p->tunnel)
		keep_trailers(p, c);
	p->up = NULL;
	ig_upstreams_release(p->w->upstreams, p->ep, c);
	record_metrics(p, false);
	account_done(p);
	if (p->xp && ig_req_extpick_holding(p)) {
		/* The head waits for the picker; the end goes with it. */
		ig_req_extpick_up_done(p);
		return;
	}
	ig_req_relay_end(p);
}

void ig_req_relay_end(struct ig_req *p)
{
	p->ex->on_abort = NULL;
	ig_http_end_trailers(p->ex, p->trailers, p->ntrailers);
	ig_req_finish(p);
}

/* ---- is a pod that dropped a request still there? ---- */

static void probe(struct ig_req *p);

static void probe_again(struct ig_loop *loop, struct ig_timer *t)
{
	probe(t->data);
}

/* A probe that connected is asked again, PROBE_AGAIN_MS later and then
 * twice as long each time, PROBE_TRIES times in all: a pod being killed
 * closes its connections before its listening socket, so a probe can still
 * get in while the pod is already gone, and on a loaded node the dying
 * process may wait tens of milliseconds for a CPU between the two (under
 * 1 ms on an idle one; a CI run under TSan saw 140 ms pass before the
 * listener went). A live pod that dropped a request is answered 503 after
 * 300 ms of probing. */
#define PROBE_AGAIN_MS 20
#define PROBE_TRIES 5

static void on_probe(struct ig_http_client *c, int err, void *ud)
{
	struct ig_req *p = ud;
	ig_http_client_close(c);
	p->probe = NULL;
	struct ig_endpoint *ep = p->ep;
	/* Only a refusal (or no route to the address at all) proves that
	 * nothing listens there any more. A probe that connects leaves the pod
	 * possibly running the request, and so does one that is reset after
	 * connecting: a dying pod's listener, closing, resets the connections
	 * in its queue, and a gateway short of CPU sees that reset before it
	 * saw the connect; both are asked again. One that times out (an
	 * overloaded pod drops SYNs) is not. */
	if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) {
		ig_warn("upstream %s: connection lost before the response and the endpoint is gone "
			"(%s): trying another endpoint",
			ep->addr, strerror(err));
		release_endpoint(p);
		attempt(p);
		return;
	}
	bool connected = !err || err == ECONNRESET || err == ECONNABORTED || err == EPIPE;
	if (connected && ++p->probes < PROBE_TRIES) {
		ig_timer_start(&p->w->loop, &p->retry_timer,
			       (uint64_t)PROBE_AGAIN_MS << (p->probes - 1), probe_again, p);
		return;
	}
	/* The pod may be up and dropped the request: it may have run it.
	 * 503, as Envoy answers a reset or close before the response
	 * headers (and the Gateway API's retry conformance test expects of
	 * one that outlasted the route's attempts); 502 stays for answers
	 * that are not HTTP. */
	ig_warn(
	    "upstream %s: closed the connection without answering a request it had received%s%s",
	    ep->addr, err ? "; a new connection: " : "", err ? strerror(err) : "");
	release_endpoint(p);
	ig_req_fail(p, 503, "service_unavailable", NULL,
		    "the model server closed the connection without answering");
}

static void probe(struct ig_req *p)
{
	/* Only a connection is made, whatever the pod speaks. */
	p->probe = ig_upstreams_connect(p->w->upstreams, p->ep, IG_PROTO_HTTP1, NULL);
	if (!p->probe) {
		on_probe(NULL, errno ? errno : ECONNREFUSED, p);
		return;
	}
	ig_http_client_on_connect(p->probe, on_probe, p);
}

static int send_to(struct ig_req *p, struct ig_endpoint *ep, bool fresh);
static void send_or_next(struct ig_req *p, struct ig_endpoint *ep, bool fresh);

/* The attempt's error.type (HTTP semantic conventions: a short,
 * low-cardinality name of what went wrong without an answer). */
static const char *fault_type(const struct ig_http_client_fault *f)
{
	switch (f->kind) {
	case IG_CLIENT_CONNECT:
		if (f->detail && *f->detail)
			return "tls_handshake_failed";
		return f->err == ECONNREFUSED ? "connection_refused"
		       : f->err == ETIMEDOUT  ? "connect_timeout"
					      : "connect_failed";
	case IG_CLIENT_TIMEOUT:
		return "timeout";
	case IG_CLIENT_PROTOCOL:
	case IG_CLIENT_BROKEN:
		return "invalid_response";
	case IG_CLIENT_EARLY:
		break;
	}
	return f->refused ? "refused_stream" : "connection_closed";
}

static void on_up_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	struct ig_req *p = ud;
	ig_req_trace_attempt_error(p, fault_type(f));
	ig_http_client_close(c);
	p->up = NULL;
	if (p->resp_started) {
		cut(p, "the model server failed during the response: the response was cut");
		return;
	}
	struct ig_endpoint *ep = p->ep;
	if (f->kind == IG_CLIENT_TIMEOUT && !f->body_waiting && awaits_client(p)) {
		/* Nothing went either way for the read timeout, and nothing of
		 * the body waited for the pod: the pod was waiting for the
		 * client's body, and the client sent none of it. */
		client_stalled(p, "upstream read timeout");
		return;
	}
	if (p->streaming && p->attempt_sent && !p->keeping && f->kind != IG_CLIENT_TIMEOUT) {
		/* Part of a streamed body went, and was not kept: it cannot be
		 * sent again. (A pod silent for the read timeout, reading none of
		 * the body or not answering it, is a 504 below.) */
		ig_warn("upstream %s: failed while the request's body was streaming (%s)", ep->addr,
			strerror(f->err));
		release_endpoint(p);
		ig_req_fail(p, 502, "bad_gateway", NULL,
			    "the model server failed while the request was streaming to it");
		return;
	}
	switch (f->kind) {
	case IG_CLIENT_CONNECT:
		if (f->detail && *f->detail)
			ig_warn("upstream %s: TLS handshake failed (%s); trying another endpoint",
				ep->addr, f->detail);
		else
			ig_warn("upstream %s: connect failed (%s); trying another endpoint",
				ep->addr, strerror(f->err));
		release_endpoint(p);
		attempt(p);
		return;
	case IG_CLIENT_TIMEOUT:
		ig_warn("upstream %s: no answer within %llu ms", ep->addr,
			(unsigned long long)p->w->gw->opt.upstream_read_timeout_ms);
		ig_req_fail(p, 504, "timeout", NULL,
			    "the model server did not answer in time (upstream read timeout)");
		return;
	case IG_CLIENT_PROTOCOL:
	case IG_CLIENT_BROKEN:
		ig_warn("upstream %s: invalid response (%s)", ep->addr, strerror(f->err));
		ig_req_fail(p, 502, "bad_gateway", NULL, "invalid response from the model server");
		return;
	case IG_CLIENT_EARLY:
		break;
	}
	if (f->reused && !p->fresh_retry && p->rule && p->rule->retry.set) {
		/* A route with a retry block counts every attempt: this one
		 * too, so that the pod sees at most 1 + attempts requests. */
		if (retry_route(p, "the kept-alive connection closed before the response"))
			return;
	} else if (f->reused && !p->fresh_retry) {
		/* The pod closed an idle connection as we reused it. */
		p->fresh_retry = true;
		ig_debug("upstream %s: kept-alive connection closed (%s); retrying on a new one",
			 ep->addr, strerror(f->err));
		release_endpoint(p);
		send_or_next(p, ep, true);
		return;
	}
	if (!f->sent_all) {
		ig_warn("upstream %s: connection lost before the request was sent (%s); trying "
			"another endpoint",
			ep->addr, strerror(f->err));
		release_endpoint(p);
		attempt(p);
		return;
	}
	if (f->refused) {
		ig_warn("upstream %s: refused the request without processing it; trying another "
			"endpoint",
			ep->addr);
		release_endpoint(p);
		attempt(p);
		return;
	}
	if (retry_route(p, "the connection closed before the response"))
		return;
	p->probes = 0;
	probe(p);
}

static const struct ig_http_client_cbs upstream_cbs = {
    .on_head = on_up_head,
    .on_body = on_up_body,
    .on_done = on_up_done,
    .on_error = on_up_error,
    .on_writable = on_up_writable,
};

/* ---- attempts ---- */

/* At most one line per this interval about connects without descriptors. */
#define FD_LOG_INTERVAL_NS 5000000000u

/* The process is out of file descriptors (EMFILE, ENFILE): no endpoint
 * is to blame and none other would do better, so the request is answered
 * 503 at once, as the gateway's own failure, and the log says so once in
 * a while (as event/accept.c does for accept) rather than per request. */
static void out_of_fds(struct ig_req *p, int err)
{
	struct ig_worker *w = p->w;
	w->fd_failures++;
	uint64_t now = ig_now_ns();
	if (!w->fd_log_ns || now - w->fd_log_ns >= FD_LOG_INTERVAL_NS) {
		ig_warn("upstream: connect: %s: answering 503 (%lu requests since the last report)",
			strerror(err), w->fd_failures);
		w->fd_log_ns = now;
		w->fd_failures = 0;
	}
	ig_req_fail(p, 503, "service_unavailable", NULL, "the gateway is out of file descriptors");
}

/* Sends the request to ep, on a parked connection unless `fresh`.
 * Returns 0, -1 when no connection could be made (nothing counted), or
 * -EMFILE/-ENFILE when the process is out of descriptors. */
static int send_to(struct ig_req *p, struct ig_endpoint *ep, bool fresh)
{
	struct ig_worker *w = p->w;
	enum ig_http_proto proto = ig_backend_proto(p->pool, p->service);
	struct ig_tls_client_ctx *tls =
	    ig_backend_tls(p->pool, p->service, p->listener ? p->listener->gw : NULL);
	/* A body streamed over HTTP/1.1 goes on a new connection: a kept-alive
	 * one that the pod closes just as it is reused would take bytes that
	 * cannot be sent again. (An upload dwarfs a connect.) */
	if (p->streaming && proto == IG_PROTO_HTTP1)
		fresh = true;
	struct ig_http_client *c = fresh ? NULL : ig_upstreams_take(w->upstreams, ep, proto, tls);
	bool h2 = c ? ig_http_client_proto(c) == IG_PROTO_H2C : proto == IG_PROTO_H2C;
	ig_req_trace_attempt(p, ep->addr, h2, tls != NULL);
	if (!c && !(c = ig_upstreams_connect(w->upstreams, ep, proto, tls))) {
		int err = errno;
		ig_req_trace_attempt_error(p, err == ECONNREFUSED ? "connection_refused"
								  : "connect_failed");
		errno = err;
		if (errno == EMFILE || errno == ENFILE)
			return -errno;
		ig_warn("upstream %s: %s; trying another endpoint", ep->addr, strerror(errno));
		return -1;
	}
	p->ep = ep;
	p->ep_tokens = (long)(p->prompt_bytes / 4);
	p->ep_epoch = ig_endpoint_dispatch(ep, (size_t)w->id, p->ep_tokens);
	p->ep_done = false;
	p->trace.endpoint = ep->addr;
	if (p->rule && p->rule->timeout_backend_ms)
		ig_timer_start(&w->loop, &p->backend_timer, p->rule->timeout_backend_ms, on_timeout,
			       p);
	struct ig_str host = ig_req_forward_host(p, ep);
	/* A pool's pod also hears which endpoint was picked, as GIE's
	 * picker sets x-gateway-destination-endpoint on the request (the
	 * client's own copy was dropped with the head); an external picker's
	 * own header goes instead, as Envoy would send it. */
	static const char dest[] = "x-gateway-destination-endpoint: ";
	size_t at = 0, alen = ep->addr_len;
	if (!p->service && !p->xp && sizeof dest - 1 + alen + 2 <= sizeof p->host_line / 2) {
		memcpy(p->host_line, dest, sizeof dest - 1);
		memcpy(p->host_line + sizeof dest - 1, ep->addr, alen);
		at = sizeof dest - 1 + alen;
		memcpy(p->host_line + at, "\r\n", 2);
		at += 2;
	}
	if (host.len > sizeof p->host_line - at - 10)
		host = ig_str_from(ep->addr);
	memcpy(p->host_line + at, "Host: ", 6);
	memcpy(p->host_line + at + 6, host.ptr, host.len);
	memcpy(p->host_line + at + 6 + host.len, "\r\n\r\n", 4);
	p->host_len = at + host.len + 10;
	bool is_head = ig_str_eq_cstr(p->ex->req.method, "HEAD");
	const struct ig_str parts[] = {
	    p->head, {p->host_line, p->host_len}, p->body_pre, p->model_json, p->body_post};
	int rc =
	    p->streaming
		? ig_http_client_sendv_open(c, parts, 2, p->ex->body_length,
					    w->gw->opt.upstream_read_timeout_ms, &upstream_cbs, p)
		: ig_http_client_sendv(c, parts, 5, is_head, w->gw->opt.upstream_read_timeout_ms,
				       &upstream_cbs, p);
	if (rc < 0) {
		ig_req_trace_attempt_error(p, "_OTHER");
		ig_http_client_close(c);
		release_endpoint(p);
		return -1;
	}
	if (p->upgrade)
		ig_http_client_allow_upgrade(c);
	p->up = c;
	if (p->streaming) {
		/* From the start: the kept bytes, then what still comes. */
		p->replay_at = 0;
		p->attempt_sent = 0;
		p->stream_ended = false;
		p->ex->on_body = on_client_body;
		if (w->gw->opt.http.body_timeout_ms && !ig_timer_armed(&p->body_timer)) {
			p->body_last_ns = ig_loop_now(&w->loop);
			ig_timer_start(&w->loop, &p->body_timer, w->gw->opt.http.body_timeout_ms,
				       on_body_silence, p);
		}
		stream_pump(p); /* on a kept-alive connection; else once it is up */
	}
	return 0;
}

static void retry_now(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_req *p = t->data;
	/* Round the ranking: with one endpoint the retry goes to it again. */
	if ((size_t)p->ntried >= p->nranked)
		p->ntried = 0;
	send_or_next(p, p->ranked[p->ntried++], false);
}

/* send_to, and on failure the next endpoint, unless the failure is ours. */
static void send_or_next(struct ig_req *p, struct ig_endpoint *ep, bool fresh)
{
	int rc = send_to(p, ep, fresh);
	if (rc == -EMFILE || rc == -ENFILE)
		out_of_fds(p, -rc);
	else if (rc < 0)
		attempt(p);
}

/* Sends the request to the next endpoint of the ranking: the first on the
 * first attempt, the next one in order after a failure that proves the
 * request did not run. */
static void attempt(struct ig_req *p)
{
	uint64_t max = p->w->gw->opt.max_attempts;
	if (max > MAX_ATTEMPTS)
		max = MAX_ATTEMPTS;
	for (;;) {
		if ((uint64_t)p->ntried >= max || (size_t)p->ntried >= p->nranked) {
			if (retry_route(p, "no endpoint could be reached"))
				return;
			ig_req_fail(p, 502, "bad_gateway", NULL,
				    p->pool ? "no model server could be reached"
					    : "no backend could be reached");
			return;
		}
		int rc = send_to(p, p->ranked[p->ntried++], false);
		if (rc == -EMFILE || rc == -ENFILE) {
			out_of_fds(p, -rc);
			return;
		}
		if (rc == 0)
			return;
	}
}

void ig_req_send(struct ig_req *p)
{
	ig_req_metrics_dispatched(p);
	if (p->sink) {
		/* The proxy in front sends the request; the first of the
		 * ranking is where it goes, and counts as load from now. */
		struct ig_endpoint *ep = p->ranked[0];
		p->ep = ep;
		p->ep_tokens = (long)(p->prompt_bytes / 4);
		p->ep_epoch = ig_endpoint_dispatch(ep, (size_t)p->w->id, p->ep_tokens);
		p->ep_done = false;
		p->ntried = 1;
		p->sink->picked(p);
		return;
	}
	ig_req_mirror(p);
	attempt(p);
}

/* ---- a request with a sink: the response as reported to us ---- */

void ig_req_sink_response_head(struct ig_req *p, int status, bool sse)
{
	p->status = status;
	p->resp_started = true;
	p->first_byte_ns = ig_now_ns();
	ig_req_trace_attempt_status(p, status);
	if (p->ep)
		ig_cstr_copy(p->served, sizeof p->served, p->ep->addr);
	p->sse = sse;
	commit_prefix(p);
}

void ig_req_sink_served(struct ig_req *p, struct ig_str addr)
{
	if (!p->ep || ig_str_eq(addr, (struct ig_str){p->ep->addr, p->ep->addr_len}))
		return;
	for (size_t i = 0; i < p->nranked; i++) {
		struct ig_endpoint *ep = p->ranked[i];
		if (!ig_str_eq(addr, (struct ig_str){ep->addr, ep->addr_len}))
			continue;
		/* The pick never got the request: its total moves too, in
		 * this worker's own slot, where dispatch counted it. */
		ig_endpoint_uncount(p->ep, (size_t)p->w->id);
		release_endpoint(p);
		p->ep = ep;
		p->ep_epoch = ig_endpoint_dispatch(ep, (size_t)p->w->id, p->ep_tokens);
		p->ep_done = false;
		p->ntried = (int)i + 1;
		p->trace.endpoint = ep->addr;
		if (p->trace.on && p->trace.nattempts)
			p->trace.attempts[p->trace.nattempts - 1].endpoint = ep->addr;
		return;
	}
}

void ig_req_sink_response_body(struct ig_req *p, const char *data, size_t len)
{
	p->resp_bytes += len;
	if (p->sse)
		ig_sse_feed(&p->sse_state, data, len, on_sse_data, p);
	else
		keep_tail(p, data, len);
}

void ig_req_sink_response_end(struct ig_req *p, bool cut)
{
	if (p->finished)
		return;
	if (!p->sse && !p->recorded)
		usage_from_tail(p);
	if (!p->status)
		p->status = p->resp_started ? 200 : 499;
	record_metrics(p, cut && p->resp_started);
	account_done(p);
	ig_req_finish(p);
}
