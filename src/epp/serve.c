/* The picker's side of ext_proc (spec/extproc.md §5, §6): one Process
 * stream is one HTTP request of the proxy in front. Its headers and body
 * become a request of the gateway's pipeline (gateway/request.h) with a
 * sink instead of an upstream; the picker's ranking, or the error, goes
 * back as the answers Envoy expects for the body mode it announced (without
 * protocol_config, the one --default-body-mode assumes):
 *
 *   BUFFERED,            headers → continue; the body, one message
 *   BUFFERED_PARTIAL     answered at once (end_of_stream is false when
 *                        trailers follow) → endpoint header, the body when
 *                        the model changed (with content-length in
 *                        BUFFERED), dynamic metadata. BUFFERED_PARTIAL's
 *                        part of a body over Envoy's buffer is picked from
 *                        the headers alone.
 *   FULL_DUPLEX_STREAMED chunks are taken without answering; at the end of
 *                        the body (or at its trailers) the headers answer
 *                        (endpoint header, metadata), then the body as
 *                        streamed_response chunks, the last with
 *                        end_of_stream when Envoy's last had it.
 *   NONE / STREAMED, or a request without a body: the pick is made at
 *                        header time, from the headers alone, and goes
 *                        with the headers' answer.
 *
 * Exactly one answer per message, in order (spec/extproc.md §5.1):
 * request trailers are answered after the pick's answer.
 *
 * The response path is read for usage and metrics (and answered as its
 * mode asks: FULL_DUPLEX chunks are echoed, since Envoy drains them); the
 * request's accounting on its endpoint ends with the stream. The endpoint
 * the proxy reports in x-gateway-destination-endpoint-served, when it fell
 * back to another of the list, takes over that accounting. An error is
 * an immediate_response with the status and an OpenAI error body. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "epp/epp.h"
#include "kube/kube.h"
#include "extproc/msg.h"
#include "gateway/request.h"
#include "gateway/runtime.h"
#include "gateway/sessions.h"
#include "gateway/snapshot.h"
#include "gateway/worker.h"
#include "grpc/grpc.h"
#include "http/certgen.h"
#include "http/tls.h"
#include "json/json.h"
#include "sched/picker.h"

#define PROCESS_PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define HEALTH_PATH "/grpc.health.v1.Health/Check"
#define LIST_PATH "/grpc.health.v1.Health/List"
#define WATCH_PATH "/grpc.health.v1.Health/Watch"
/* How often open Watch calls are compared with the status they were sent. */
#define WATCH_POLL_MS 200
#define EXTPROC_SERVICE "envoy.service.ext_proc.v3.ExternalProcessor"
#define DEST_HEADER "x-gateway-destination-endpoint"
/* GIE re-chunks a streamed body at this size. */
#define CHUNK_BYTES 62000
#define MAX_HEADERS 128

/* The Watch calls of one loop (the control loop's health port, or a
 * worker's ext_proc port), polled while there are any: the readiness
 * they follow changes with a snapshot or the Lease, read where Check
 * reads it. */
struct health_watch;
struct health_watchers {
	struct health_watch *head;
	struct ig_timer timer;
	struct ig_loop *loop;
	bool (*ready)(void *arg);
	void *arg;
	bool draining; /* calls are answered NOT_SERVING and ended */
};

struct epp {
	struct ig_epp_options opt;
	struct ig_gw_frontend fe;
	struct ig_tls_ctx *tls;	       /* ext_proc port; NULL: plain text */
	struct ig_grpc_server *health; /* the health port, on the control loop */
	int health_fd;
	struct ig_gateway_rt *G;
	/* --enable-cert-reload: the files' state when last read. */
	struct ig_timer cert_timer;
	uint64_t cert_sig;
	/* --ha-enable-leader-election: the control loop copies whether this
	 * replica holds the Lease here, for the workers' readiness. */
	struct ig_timer leader_timer;
	atomic_bool follower;
	struct health_watchers watchers; /* on the health port */
};

struct epp_worker {
	struct ig_grpc_server *srv;
	struct health_watchers watchers; /* on the ext_proc port */
	int fd;
	size_t streams;
	size_t held; /* request body bytes its streams hold */
};

/* What one worker's streams may hold of request bodies between them:
 * a client opening many streams and sending bodies it never ends gets
 * 503s past this, not the picker's memory. */
#define WORKER_HELD_MAX ((size_t)256 << 20)

/* The message whose answer carries the pick: Envoy wants exactly one
 * answer per message, in order (spec/extproc.md §5.1, §7: a spurious or
 * missing one is a 500 or a stalled stream). */
enum pick_due {
	DUE_HEADERS, /* request_headers (then, in FULL_DUPLEX, the body back) */
	DUE_BODY,    /* request_body (BUFFERED, BUFFERED_PARTIAL) */
	DUE_NONE,    /* nothing can carry it: trailers came without a body */
};

/* One Process stream. */
struct xstream {
	struct epp *E;
	struct ig_worker *w;
	struct ig_grpc_stream *gs;
	enum ig_xp_body_mode req_mode, resp_mode;
	bool got_headers, body_done, answered, failed;
	bool headers_answered; /* "continue": the pick goes on a body answer */
	bool body_seen;	       /* a request body message came */
	size_t body_in;	       /* the body's bytes that came, kept or not */
	bool body_eos;	       /* its last one had end_of_stream (no trailers) */
	bool trailers_due;     /* request_trailers is answered after the pick */
	enum pick_due due;
	struct ig_arena arena;
	struct ig_http_exchange ex;
	struct ig_buf body; /* the request body as it came */
	struct ig_req *p;
	struct ig_str *subset;
	size_t nsubset;
	bool has_subset;
	/* The pool's picker configuration declares
	 * destination-endpoint-served-verifier. */
	bool report_served;
};

/* ---- sending answers ---- */

static void send_buf(struct xstream *xs, struct ig_buf *b)
{
	ig_grpc_send(xs->gs, (const uint8_t *)b->ptr, b->len);
	ig_buf_free(b);
}

static void answer_continue(struct xstream *xs, enum ig_xp_req_kind kind)
{
	struct ig_buf b = {0};
	switch (kind) {
	case IG_XP_REQ_REQUEST_HEADERS:
	case IG_XP_REQ_RESPONSE_HEADERS:
		ig_xp_encode_headers_answer(
		    &b,
		    &(struct ig_xp_headers_answer){.response = kind == IG_XP_REQ_RESPONSE_HEADERS});
		break;
	case IG_XP_REQ_REQUEST_BODY:
	case IG_XP_REQ_RESPONSE_BODY:
		ig_xp_encode_body_answer(
		    &b, &(struct ig_xp_body_answer){.response = kind == IG_XP_REQ_RESPONSE_BODY,
						    .mode = IG_XP_BODY_STREAMED});
		break;
	case IG_XP_REQ_REQUEST_TRAILERS:
	case IG_XP_REQ_RESPONSE_TRAILERS:
		ig_xp_encode_trailers_answer(&b, kind == IG_XP_REQ_RESPONSE_TRAILERS);
		break;
	default:
		return;
	}
	send_buf(xs, &b);
}

/* The response headers' answer. It sets x-went-into-resp-headers: true,
 * as GIE's picker (v0.2 to v1.5) and llm-d Router's do on every response
 * ("for debugging"; clients behind Envoy see it). With
 * destination-endpoint-served-verifier (GIE v1.5's conformance plugin) it
 * sets x-conformance-test-served-endpoint to the endpoint the proxy
 * reports in envoy.lb metadata, or to GIE's words for what is missing, as
 * GIE's plugin and v1.6's lwepp do. GIE also sets every response header
 * again to its own value, which changes nothing but a repeated header
 * (two Set-Cookie become one): not done here. */
static void answer_response_headers(struct xstream *xs, const struct ig_xp_request *m)
{
	struct ig_xp_set_header set[3];
	size_t nset = 0;
	struct ig_str token;
	set[nset++] = (struct ig_xp_set_header){"x-went-into-resp-headers", IG_STR("true")};
	if (xs->report_served) {
		set[nset] = (struct ig_xp_set_header){IG_SERVED_TEST_HEADER, m->served};
		if (!m->has_lb)
			set[nset].value = IG_STR("fail: missing envoy lb metadata");
		else if (!m->served.len)
			set[nset].value =
			    IG_STR("fail: missing destination endpoint served metadata");
		nset++;
	}
	/* session-affinity-scorer: the endpoint that served (the one the
	 * proxy reported, else the pick), for the client's next request. */
	const struct ig_req *p = xs->p;
	if (p && !p->finished && p->pool && p->pool->sched && p->ep &&
	    (ig_scheduler_needs(p->pool->sched->s) & IG_SCHED_NEEDS_SESSION) &&
	    (token = ig_session_token_of(p->pool, p->ep)).len)
		set[nset++] = (struct ig_xp_set_header){IG_SESSION_TOKEN_HEADER, token};
	struct ig_buf b = {0};
	ig_xp_encode_headers_answer(
	    &b, &(struct ig_xp_headers_answer){.response = true, .set = set, .nset = nset});
	send_buf(xs, &b);
}

/* An answer with a body, sent in pieces: the body's bytes are copied once,
 * into the stream's queue. A failed encoding sends an empty message, as
 * an empty buffer did before. */
static void send_body_answer(struct xstream *xs, const struct ig_xp_body_answer *a)
{
	struct ig_xp_pieces pc;
	ig_xp_encode_body_answer_pieces(&pc, a);
	ig_grpc_sendv(xs->gs, pc.part, pc.nparts);
	ig_xp_pieces_free(&pc);
}

/* The body as the picker sends it on: the client's with `model` replaced,
 * as the parts the rewrite left (before the model, the new model, after
 * it), which point into the client's body and the arena: they are sent
 * as they are, never spliced into one buffer. */
struct body_out {
	struct ig_str part[IG_XP_BODY_PARTS];
	size_t n, len;
};

static bool body_out(struct xstream *xs, struct body_out *b)
{
	struct ig_req *p = xs->p;
	const struct ig_str parts[3] = {p->body_pre, p->model_json, p->body_post};
	bool changed = false;
	b->n = b->len = 0;
	if (!p->body_len && !xs->body.len)
		return false;
	if (p->body_pre.len + p->model_json.len + p->body_post.len == 0) {
		b->part[b->n++] = ig_buf_str(&xs->body);
		b->len = xs->body.len;
		return false;
	}
	/* Changed when it differs from the client's body; a part that is
	 * the client's own bytes in their place needs no comparing. */
	for (size_t i = 0; i < 3; i++) {
		if (!parts[i].len) /* an empty part may have no pointer */
			continue;
		/* Until a difference, b->len <= xs->body.len holds. */
		if (!changed && parts[i].len > xs->body.len - b->len)
			changed = true;
		else if (!changed && parts[i].ptr != xs->body.ptr + b->len)
			changed = memcmp(parts[i].ptr, xs->body.ptr + b->len, parts[i].len) != 0;
		b->part[b->n++] = parts[i];
		b->len += parts[i].len;
	}
	return changed || b->len != xs->body.len;
}

/* The parts of bytes [off, off + len) of b. */
static size_t body_slice(const struct body_out *b, size_t off, size_t len,
			 struct ig_str out[IG_XP_BODY_PARTS])
{
	size_t k = 0;
	for (size_t i = 0; i < b->n && len; i++) {
		if (off >= b->part[i].len) {
			off -= b->part[i].len;
			continue;
		}
		size_t n = b->part[i].len - off < len ? b->part[i].len - off : len;
		out[k++] = (struct ig_str){b->part[i].ptr + off, n};
		len -= n;
		off = 0;
	}
	return k;
}

/* "ip:port" of the pick, then its fallbacks: as many as --endpoints says,
 * else as the primary profile's picker ranked (GIE v1.5's director names
 * every endpoint it picked, maxNumOfEndpoints of them), else one. The
 * picker ranks no more than its maxNumOfEndpoints, so of the flag and the
 * parameter the smaller wins. */
static const char *endpoint_list(struct xstream *xs)
{
	struct ig_req *p = xs->p;
	size_t k = p->nranked;
	size_t want = xs->E->opt.endpoints   ? (size_t)xs->E->opt.endpoints
		      : p->res.max_endpoints ? p->res.max_endpoints
					     : 1;
	if (k > want)
		k = want;
	if (k == 0)
		k = 1;
	size_t len = 1;
	for (size_t i = 0; i < k; i++)
		len += p->ranked[i]->addr_len + 1;
	char *s = ig_arena_alloc(&xs->arena, len);
	if (!s)
		return p->ranked[0]->addr;
	size_t n = 0;
	for (size_t i = 0; i < k; i++) {
		if (i)
			s[n++] = ',';
		memcpy(s + n, p->ranked[i]->addr, p->ranked[i]->addr_len);
		n += p->ranked[i]->addr_len;
	}
	s[n] = '\0';
	return s;
}

/* BUFFERED and BUFFERED_PARTIAL: the headers were answered already, so
 * the pick goes with the body's answer, whose header mutation Envoy
 * applies in these modes (§3.2); so does a body whose model changed, with
 * its length in BUFFERED (Envoy checks the two agree, §4.4; in
 * BUFFERED_PARTIAL it drops content-length itself). */
static void answer_pick_body(struct xstream *xs, const struct ig_xp_set_header *set, size_t nset,
			     const char *const *remove, size_t nremove, const struct body_out *body,
			     bool changed, const char *eps)
{
	const struct epp *E = xs->E;
	bool length = changed && xs->req_mode == IG_XP_BODY_BUFFERED;
	send_body_answer(xs, &(struct ig_xp_body_answer){
				 .mode = IG_XP_BODY_BUFFERED,
				 .body = IG_STR(""),
				 .body_parts = body->part,
				 .nbody_parts = body->n,
				 .replace_body = changed,
				 .set = set,
				 .nset = length ? nset + 1 : nset,
				 .remove = remove,
				 .nremove = nremove,
				 .clear_route_cache = true,
				 .lb_endpoint = eps,
				 .lb_ns = E->opt.dest_ns,
				 .lb_key = E->opt.dest_key,
			     });
}

/* FULL_DUPLEX_STREAMED: Envoy drained the chunks, so the body goes back
 * after the headers answer, in chunks, the last with end_of_stream only
 * when Envoy's last had it (§5.3): a body that ended with trailers gets
 * no end_of_stream, and an empty one then needs no chunk at all. */
static void send_body_back(struct xstream *xs, const struct body_out *body)
{
	if (!body->len && !xs->body_eos)
		return;
	size_t off = 0;
	do {
		size_t n = body->len - off > CHUNK_BYTES ? CHUNK_BYTES : body->len - off;
		struct ig_str parts[IG_XP_BODY_PARTS];
		size_t k = body_slice(body, off, n, parts);
		send_body_answer(xs, &(struct ig_xp_body_answer){
					 .mode = IG_XP_BODY_FULL_DUPLEX_STREAMED,
					 .body = IG_STR(""),
					 .body_parts = parts,
					 .nbody_parts = k,
					 .end_of_stream = xs->body_eos && off + n == body->len,
				     });
		off += n;
	} while (off < body->len);
}

static void on_picked(struct ig_req *p)
{
	struct xstream *xs = p->sink_data;
	const char *eps = endpoint_list(xs);
	struct body_out body;
	bool changed = body_out(xs, &body);
	char clen[24];
	snprintf(clen, sizeof clen, "%zu", body.len);
	const struct epp *E = xs->w->gw->opt.frontend->arg;
	/* The pick; when tracing, the traceparent the pod is to see, as the
	 * gateway sends it (tracing.c): sampled, the picker's "upstream" span
	 * its parent; unsampled, the OTel SDK's non-recording span, an id of
	 * its own with the sampled flag off, since W3C Trace Context has a
	 * participant propagate the context whether it samples or not. Last,
	 * the length of a body that changed. The request id comes second. */
	struct ig_xp_set_header set[4];
	size_t nset = 0;
	set[nset++] = (struct ig_xp_set_header){E->opt.dest_key ? E->opt.dest_key : DEST_HEADER,
						ig_str_from(eps)};
	/* A request without x-request-id (or with an empty one) gets the one
	 * the rewrite made, as GIE's and llm-d Router's picker generate one
	 * (Envoy sends its own, so this is for proxies that do not). */
	if (p->request_id_made)
		set[nset++] = (struct ig_xp_set_header){"x-request-id", p->request_id};
	if (p->trace.on) {
		p->trace.endpoint = p->nranked ? p->ranked[0]->addr : NULL;
		ig_req_trace_attempt(p, p->trace.endpoint, false, false);
	}
	if (p->trace.propagate)
		set[nset++] =
		    (struct ig_xp_set_header){"traceparent", ig_str_from(p->trace.traceparent)};
	set[nset] = (struct ig_xp_set_header){"content-length", ig_str_from(clen)};
	/* An invalid traceparent is dropped with its tracestate (W3C Trace
	 * Context), as the gateway drops it: ours replaces it above. */
	static const char *const drop[] = {"tracestate", "traceparent"};
	size_t ndrop = p->trace.drop_context ? (p->trace.propagate ? 1 : 2) : 0;
	xs->answered = true;
	if (xs->due == DUE_BODY) {
		answer_pick_body(xs, set, nset, drop, ndrop, &body, changed, eps);
	} else if (xs->due == DUE_HEADERS) {
		bool with_length = xs->body_seen && body.len > 0;
		struct ig_buf b = {0};
		ig_xp_encode_headers_answer(&b, &(struct ig_xp_headers_answer){
						    .set = set,
						    .nset = with_length ? nset + 1 : nset,
						    .remove = drop,
						    .nremove = ndrop,
						    .clear_route_cache = true,
						    .lb_endpoint = eps,
						    .lb_ns = E->opt.dest_ns,
						    .lb_key = E->opt.dest_key,
						});
		send_buf(xs, &b);
		if (xs->req_mode == IG_XP_BODY_FULL_DUPLEX_STREAMED && xs->body_seen)
			send_body_back(xs, &body);
	} else {
		ig_warn("epp: request trailers came without a body message in body mode %d: the "
			"pick %s has no answer to go with",
			(int)xs->req_mode, eps);
	}
	if (xs->trailers_due)
		answer_continue(xs, IG_XP_REQ_REQUEST_TRAILERS);
}

static void on_failed(struct ig_req *p, int status, const char *type, const char *msg)
{
	struct xstream *xs = p->sink_data;
	xs->failed = true;
	struct ig_buf body = {0}, b = {0};
	ig_buf_append_cstr(&body, "{\"error\":{\"message\":");
	ig_json_write_string(&body, msg, strlen(msg));
	ig_buf_printf(&body, ",\"type\":\"%s\",\"code\":%d}}", type ? type : "server_error",
		      status);
	/* llm-d Router's word for flow control's refusal goes with it. */
	struct ig_xp_set_header hs[2] = {
	    {"content-type", IG_STR("application/json")},
	    {"x-llm-d-request-dropped-reason", ig_str_from(p->drop_reason ? p->drop_reason : "")}};
	char details[64];
	snprintf(details, sizeof details, "infergate_epp_%d", status);
	ig_xp_encode_immediate(&b, status, ig_buf_str(&body), hs, p->drop_reason ? 2 : 1, details);
	ig_buf_free(&body);
	send_buf(xs, &b);
	xs->answered = true;
}

static const struct ig_req_sink sink = {.picked = on_picked, .failed = on_failed};

/* ---- the request side ---- */

static struct ig_str arena_copy(struct xstream *xs, struct ig_str s)
{
	return ig_arena_strdup(&xs->arena, s);
}

/* The HTTP request the stages read, from the headers message. */
static int take_headers(struct xstream *xs, const struct ig_xp_request *m)
{
	struct ig_http_request *r = &xs->ex.req;
	size_t n = m->nheaders < MAX_HEADERS ? m->nheaders : MAX_HEADERS;
	struct ig_http_header *h = ig_arena_alloc(&xs->arena, (n + 1) * sizeof *h);
	if (!h)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct ig_str key = m->headers[i].key, val = arena_copy(xs, m->headers[i].value);
		if (ig_str_eq_cstr(key, ":method")) {
			r->method = val;
		} else if (ig_str_eq_cstr(key, ":path")) {
			r->target = val;
		} else if (ig_str_eq_cstr(key, ":authority")) {
			h[k++] = (struct ig_http_header){IG_STR("host"), val};
		} else if (key.len && key.ptr[0] != ':') {
			h[k++] = (struct ig_http_header){arena_copy(xs, key), val};
		}
	}
	if (!r->method.len)
		r->method = IG_STR("POST");
	if (!r->target.len)
		r->target = IG_STR("/");
	const char *q = memchr(r->target.ptr, '?', r->target.len);
	r->path = (struct ig_str){r->target.ptr, q ? (size_t)(q - r->target.ptr) : r->target.len};
	r->query = q ? (struct ig_str){q + 1, r->target.len - r->path.len - 1} : (struct ig_str){0};
	r->minor_version = 1;
	r->headers = h;
	r->num_headers = k;
	if (m->has_subset && !xs->E->opt.disable_subset) {
		xs->has_subset = true;
		xs->nsubset = m->nsubset;
		xs->subset = ig_arena_alloc(&xs->arena, (m->nsubset + 1) * sizeof *xs->subset);
		if (!xs->subset)
			return -1;
		for (size_t i = 0; i < m->nsubset; i++)
			xs->subset[i] = arena_copy(xs, m->subset[i]);
	}
	return 0;
}

/* Collects the response body as the rewrite is turned back in it. */
static int emit_buf(void *ud, const char *data, size_t len)
{
	return ig_buf_append(ud, data, len) < 0 ? -1 : 0;
}

/* Runs the gateway's stages on the request: the sink answers. */
static void pick(struct xstream *xs)
{
	struct epp *E = xs->E;
	struct ig_worker *w = xs->w;
	xs->body_done = true;
	struct ig_req *p = ig_arena_calloc(&xs->arena, sizeof *p);
	if (!p) {
		ig_grpc_finish(xs->gs, IG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	xs->p = p;
	xs->ex.body = xs->body;
	/* What the picker holds no byte of, it picks without: headers with
	 * end_of_stream, or a mode that sends it no body to wait for. A body
	 * that came empty (request_body{"", end_of_stream}) is a body, and
	 * not a JSON object: GIE v1.5 parses every body that came, whatever
	 * the path or method (handlers/server.go, the openai parser's
	 * json.Unmarshal), and answers 400. */
	xs->ex.body_length = xs->body_seen && !xs->body_in ? -1 : 0;
	xs->ex.arena = &xs->arena;
	xs->ex.start_ns = ig_now_ns();
	xs->ex.peer = ig_str_from(ig_grpc_stream_peer(xs->gs));
	xs->ex.user = p;
	ig_worker_request_begin(w, p);
	p->ex = &xs->ex;
	p->sink = &sink;
	p->sink_data = xs;
	p->start_ns = xs->ex.start_ns;
	p->w = w;
	p->snap = ig_worker_snap_take(w);
	p->resp_length = -1;
	ig_req_trace_begin(p);
	p->has_subset = xs->has_subset;
	p->subset = xs->subset;
	p->nsubset = xs->nsubset;
	p->pool = p->snap ? ig_snapshot_pool_group(p->snap, E->opt.pool_ns, E->opt.pool_name,
						   E->opt.pool_group)
			  : NULL;
	if (!p->pool) {
		char msg[400];
		snprintf(msg, sizeof msg, "InferencePool %s/%s is not known (yet)", E->opt.pool_ns,
			 E->opt.pool_name);
		ig_req_fail(p, 503, "service_unavailable", NULL, msg);
		return;
	}
	if (p->pool->sched)
		xs->report_served = ig_scheduler_reports_served(p->pool->sched->s);
	ig_req_parse_body(p);
	if (ig_req_rewrite(p) < 0)
		return;
	if (ig_req_admit(p) == 0)
		ig_req_send(p);
}

static void fail_stream(struct xstream *xs, int status, const char *msg)
{
	ig_grpc_finish(xs->gs, status, msg);
}

/* A request body the picker will not hold: over --max-body-bytes (413,
 * as Envoy refuses a body over its buffer), or past what this worker's
 * streams may hold between them (503). Answered once; the rest of the
 * body is dropped. */
static void refuse_body(struct xstream *xs, bool too_large)
{
	struct ig_buf b = {0};
	ig_xp_encode_immediate(
	    &b, too_large ? 413 : 503,
	    too_large ? IG_STR("{\"error\":{\"message\":\"request body too "
			       "large\",\"type\":\"invalid_request_error\","
			       "\"code\":413}}")
		      : IG_STR("{\"error\":{\"message\":\"the endpoint picker "
			       "holds too many request bodies\",\"type\":"
			       "\"service_unavailable\",\"code\":503}}"),
	    &(struct ig_xp_set_header){"content-type", IG_STR("application/json")}, 1,
	    too_large ? "infergate_epp_413" : "infergate_epp_503");
	send_buf(xs, &b);
	xs->answered = xs->failed = true;
	xs->body_done = true;
}

static void on_request_headers(struct xstream *xs, const struct ig_xp_request *m)
{
	if (xs->got_headers) {
		fail_stream(xs, IG_GRPC_FAILED_PRECONDITION, "request headers sent twice");
		return;
	}
	xs->got_headers = true;
	if (m->has_protocol_config) {
		xs->req_mode = m->request_body_mode;
		xs->resp_mode = m->response_body_mode;
	}
	if (take_headers(xs, m) < 0) {
		fail_stream(xs, IG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	/* No body will come to pick by: pick from the headers now, and
	 * answer the headers with it, whatever the mode (§5.1). */
	if (m->end_of_stream || xs->req_mode == IG_XP_BODY_NONE ||
	    xs->req_mode == IG_XP_BODY_STREAMED) {
		xs->due = DUE_HEADERS;
		pick(xs);
		return;
	}
	if (xs->req_mode == IG_XP_BODY_BUFFERED || xs->req_mode == IG_XP_BODY_BUFFERED_PARTIAL) {
		answer_continue(xs, IG_XP_REQ_REQUEST_HEADERS);
		xs->headers_answered = true;
	}
}

/* BUFFERED_PARTIAL sends the body whole (end_of_stream, or not when
 * trailers follow) or, when it is over Envoy's buffer, only the part that
 * fit, and streams the rest on unseen. A part is no JSON document. */
static bool whole_document(const struct xstream *xs)
{
	struct ig_json_value root;
	return xs->body.len && ig_json_parse(xs->body.ptr, xs->body.len, &root) == 0;
}

static void on_request_body(struct xstream *xs, const struct ig_xp_request *m)
{
	if (!xs->got_headers) {
		fail_stream(xs, IG_GRPC_FAILED_PRECONDITION, "request body before headers");
		return;
	}
	if (xs->p) {
		/* Picked at header time (STREAMED): the chunks go on. */
		answer_continue(xs, IG_XP_REQ_REQUEST_BODY);
		return;
	}
	if (xs->body_done)
		return; /* answered already (413): the rest is dropped */
	struct epp_worker *ew = xs->w->fe;
	bool too_large = xs->body.len + m->body.len > xs->E->opt.max_body_bytes;
	if (too_large || ew->held + m->body.len > WORKER_HELD_MAX) {
		refuse_body(xs, too_large);
		return;
	}
	if (ig_buf_append(&xs->body, m->body.ptr, m->body.len) < 0) {
		fail_stream(xs, IG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	ew->held += m->body.len;
	xs->body_in += m->body.len;
	xs->body_seen = true;
	xs->body_eos = m->end_of_stream;
	switch (xs->req_mode) {
	case IG_XP_BODY_BUFFERED:
		/* The whole body, in one message: end_of_stream is false only
		 * when trailers follow, and they wait for this answer. */
		xs->due = DUE_BODY;
		pick(xs);
		return;
	case IG_XP_BODY_BUFFERED_PARTIAL:
		/* Answered now, whole or not. A part cannot name the model:
		 * the pick is made from the headers alone, as in STREAMED, and
		 * the body goes on as it is. */
		if (!m->end_of_stream && !whole_document(xs)) {
			ew->held -= xs->body.len;
			xs->body.len = 0;
		}
		xs->due = DUE_BODY;
		pick(xs);
		return;
	default:
		/* FULL_DUPLEX_STREAMED: the chunks are taken without answering
		 * until the body's end. */
		if (m->end_of_stream) {
			xs->due = DUE_HEADERS;
			pick(xs);
		}
		return;
	}
}

/* Request trailers come after the body's last message, which then had no
 * end_of_stream. Their answer follows the pick's (§5.1, §5.3). */
static void on_request_trailers(struct xstream *xs)
{
	if (xs->failed)
		return; /* an immediate_response ended the processing */
	if (xs->answered || !xs->got_headers) {
		answer_continue(xs, IG_XP_REQ_REQUEST_TRAILERS);
		return;
	}
	xs->trailers_due = true;
	if (xs->p || xs->body_done)
		return; /* the pick is on its way; on_picked answers them */
	/* The body ended here (FULL_DUPLEX), or none came. */
	xs->due = xs->headers_answered ? DUE_NONE : DUE_HEADERS;
	pick(xs);
}

static void on_request_message(struct xstream *xs, const struct ig_xp_request *m)
{
	switch (m->kind) {
	case IG_XP_REQ_REQUEST_HEADERS:
		on_request_headers(xs, m);
		return;
	case IG_XP_REQ_REQUEST_BODY:
		on_request_body(xs, m);
		return;
	case IG_XP_REQ_REQUEST_TRAILERS:
		on_request_trailers(xs);
		return;
	case IG_XP_REQ_RESPONSE_HEADERS: {
		struct ig_str st = ig_xp_header_get(m, ":status");
		struct ig_str ct = ig_xp_header_get(m, "content-type");
		uint64_t code = 0;
		if (ig_str_to_u64(st, &code) < 0)
			code = 200;
		bool sse = ct.len && memmem(ct.ptr, ct.len, "text/event-stream", 17);
		/* The proxy fell back to another endpoint of the list: the
		 * request counts there from now (gie-reference §7). */
		if (xs->p && !xs->p->finished && m->served.len)
			ig_req_sink_served(xs->p, m->served);
		if (xs->p && !xs->p->finished)
			ig_req_sink_response_head(xs->p, (int)code, sse);
		if (xs->p && xs->p->restore_model) {
			/* The rewrite is turned back in the body (GIE v1.5),
			 * when we answer for the body's pieces. */
			bool bodyless =
			    ig_http_bodyless((int)code, xs->ex.req.method) || m->end_of_stream;
			bool answers = xs->resp_mode == IG_XP_BODY_FULL_DUPLEX_STREAMED ||
				       xs->resp_mode == IG_XP_BODY_BUFFERED;
			if (bodyless || !answers || ig_req_restore_setup(xs->p) < 0)
				xs->p->restore_model = false;
		}
		answer_response_headers(xs, m);
		if (m->end_of_stream && xs->p && !xs->p->finished)
			ig_req_sink_response_end(xs->p, false);
		return;
	}
	case IG_XP_REQ_RESPONSE_BODY: {
		if (xs->p && !xs->p->finished)
			ig_req_sink_response_body(xs->p, m->body.ptr, m->body.len);
		struct ig_buf out = {0};
		bool restore = xs->p && xs->p->restore_model;
		if (restore && ig_buf_reserve(&out, ig_req_restore_bound(xs->p, m->body.len)) < 0) {
			/* Out of memory: this piece and the rest go as they come
			 * (what a cut member held back is lost with the room). */
			xs->p->restore_model = restore = false;
		}
		if (restore)
			ig_req_restore_feed(xs->p, m->body.ptr, m->body.len,
					    m->end_of_stream ||
						xs->resp_mode == IG_XP_BODY_BUFFERED,
					    emit_buf, &out);
		if (xs->resp_mode == IG_XP_BODY_FULL_DUPLEX_STREAMED) {
			/* Envoy drained the chunk: it goes on only if we send it
			 * (Envoy drops the Content-Length in this mode). */
			send_body_answer(xs, &(struct ig_xp_body_answer){
						 .response = true,
						 .mode = IG_XP_BODY_FULL_DUPLEX_STREAMED,
						 .body = restore ? ig_buf_str(&out) : m->body,
						 .end_of_stream = m->end_of_stream,
					     });
		} else if (restore && !ig_str_eq(ig_buf_str(&out), m->body)) {
			/* BUFFERED: the whole body, replaced, with its length
			 * in the same answer (Envoy checks the two agree). */
			char len[24];
			snprintf(len, sizeof len, "%zu", out.len);
			const struct ig_xp_set_header cl = {"content-length", ig_str_from(len)};
			send_body_answer(xs, &(struct ig_xp_body_answer){
						 .response = true,
						 .mode = IG_XP_BODY_BUFFERED,
						 .body = ig_buf_str(&out),
						 .replace_body = true,
						 .set = &cl,
						 .nset = 1,
					     });
		} else {
			answer_continue(xs, IG_XP_REQ_RESPONSE_BODY);
		}
		ig_buf_free(&out);
		if (m->end_of_stream && xs->p && !xs->p->finished)
			ig_req_sink_response_end(xs->p, false);
		return;
	}
	case IG_XP_REQ_RESPONSE_TRAILERS:
		answer_continue(xs, IG_XP_REQ_RESPONSE_TRAILERS);
		if (xs->p && !xs->p->finished)
			ig_req_sink_response_end(xs->p, false);
		return;
	default:
		fail_stream(xs, IG_GRPC_INVALID_ARGUMENT,
			    "a ProcessingRequest with no request set");
		return;
	}
}

/* ---- gRPC handlers ---- */

static void process_open(struct ig_grpc_stream *s, void *arg)
{
	struct ig_worker *w = arg;
	struct epp_worker *ew = w->fe;
	struct xstream *xs = calloc(1, sizeof *xs);
	if (!xs) {
		ig_grpc_finish(s, IG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	xs->E = w->gw->opt.frontend->arg;
	xs->w = w;
	xs->gs = s;
	/* Envoy announces its modes in protocol_config only since 1.34
	 * (envoyproxy/envoy#38755); before, the picker is configured to
	 * match the filter's processing_mode: FULL_DUPLEX_STREAMED both ways
	 * by default, as GIE v0.4+ and llm-d's pickers assume. */
	switch (xs->E->opt.body_default) {
	case IG_EPP_BODY_BUFFERED: /* GIE v0.2, v0.3 with USE_STREAMING=false */
		xs->req_mode = IG_XP_BODY_BUFFERED;
		xs->resp_mode = IG_XP_BODY_NONE;
		break;
	case IG_EPP_BODY_STREAMED:
		xs->req_mode = xs->resp_mode = IG_XP_BODY_STREAMED;
		break;
	default:
		xs->req_mode = xs->resp_mode = IG_XP_BODY_FULL_DUPLEX_STREAMED;
		break;
	}
	ig_buf_init(&xs->body, 0);
	ig_grpc_stream_set_data(s, xs);
	ew->streams++;
}

static void process_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct xstream *xs = ig_grpc_stream_data(s);
	if (!xs)
		return;
	struct ig_xp_request m;
	if (ig_xp_request_decode(msg, len, &m) < 0) {
		fail_stream(xs, IG_GRPC_INVALID_ARGUMENT, "malformed ProcessingRequest");
		return;
	}
	if (!m.observability_mode)
		on_request_message(xs, &m);
	ig_xp_request_free(&m);
}

/* A message over the gRPC ceiling (--grpc-max-recv-msg-size, else
 * --max-body-bytes + 64 KiB): the gRPC layer drops it unheld and tells us
 * its size. While the request's body is awaited it can only be that body
 * (BUFFERED sends it as one message): 413, as for a body over the limit
 * in pieces. Anything else ends the stream. */
static void process_oversize(struct ig_grpc_stream *s, size_t len)
{
	struct xstream *xs = ig_grpc_stream_data(s);
	if (!xs)
		return;
	if (xs->got_headers && !xs->body_done && !xs->p) {
		refuse_body(xs, true);
		return;
	}
	char msg[96];
	snprintf(msg, sizeof msg, "a message of %zu bytes is over the picker's limit", len);
	fail_stream(xs, IG_GRPC_RESOURCE_EXHAUSTED, msg);
}

/* The stream ends before the response's end_of_stream came, in a mode that
 * sends the response's body: Envoy's request ended early (the client left,
 * the pod's stream was reset), which GIE does not time either. Without
 * the body (mode NONE, GIE v0.2's setting) the stream's end is all there
 * is to go by. */
static bool body_cut(const struct xstream *xs)
{
	return xs->resp_mode != IG_XP_BODY_NONE;
}

static void process_half_close(struct ig_grpc_stream *s)
{
	struct xstream *xs = ig_grpc_stream_data(s);
	if (xs && xs->p && !xs->p->finished)
		ig_req_sink_response_end(xs->p, body_cut(xs));
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

static void process_end(struct ig_grpc_stream *s, bool reset)
{
	struct xstream *xs = ig_grpc_stream_data(s);
	if (!xs)
		return;
	if (xs->p && !xs->p->finished) {
		if (!xs->p->resp_started && reset)
			xs->p->status = 499;
		ig_req_sink_response_end(xs->p, body_cut(xs));
	}
	struct epp_worker *ew = xs->w->fe;
	ew->streams--;
	ew->held -= xs->body.len;
	ig_buf_free(&xs->body);
	ig_arena_free(&xs->arena);
	free(xs);
	ig_grpc_stream_set_data(s, NULL);
}

/* ---- health ---- */

static bool pool_known(struct ig_gateway_rt *G, const struct epp *E)
{
	return G && G->snap && !atomic_load_explicit(&E->follower, memory_order_relaxed) &&
	       ig_snapshot_pool_group(G->snap, E->opt.pool_ns, E->opt.pool_name, E->opt.pool_group);
}

/* /readyz on the metrics port says what the health service says: not
 * ready while the pool is unknown (a name the files do not have, or the
 * API not read yet) or another replica leads. */
static const char *fe_not_ready(struct ig_gateway_rt *G, void *arg)
{
	const struct epp *E = arg;
	if (atomic_load_explicit(&E->follower, memory_order_relaxed))
		return "not the leader\n";
	return pool_known(G, E) ? NULL : "the pool is not in the configuration\n";
}

static void health_answer(struct ig_grpc_stream *s, bool ready)
{
	struct ig_buf b = {0};
	ig_health_encode_response(&b, ready ? IG_HEALTH_SERVING : IG_HEALTH_NOT_SERVING);
	ig_grpc_send(s, (const uint8_t *)b.ptr, b.len);
	ig_buf_free(&b);
}

/* Check: liveness is always SERVING; any other name ("", the ext_proc
 * service, readiness, GIE v0.2's Deployment probe "inference-extension")
 * SERVING once the pool is known, NOT_SERVING before, as GIE's servers
 * answer every name (v0.2; v1.5 without leader election). A name a probe
 * spells differently must not fail it with NOT_FOUND. */
static void health_check(struct ig_grpc_stream *s, const uint8_t *msg, size_t len, bool ready)
{
	char service[256];
	if (ig_health_request_decode(msg, len, service, sizeof service) < 0) {
		ig_grpc_finish(s, IG_GRPC_INVALID_ARGUMENT, "malformed HealthCheckRequest");
		return;
	}
	health_answer(s, !strcmp(service, "liveness") || ready);
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

/* List, each service's status as Check answers it. The health port lists
 * what GIE v1.5's health server lists (cmd/epp/runner/health.go): the
 * ext_proc service, and with leader election liveness and readiness; the
 * ext_proc port what grpc-go's stock health service lists there (GIE
 * registers it with --health-checking): "" and the ext_proc service. */
static void health_list(struct ig_grpc_stream *s, const uint8_t *msg, size_t len, bool ready,
			bool ext_proc_port, bool leader_election)
{
	if (ig_health_list_request_decode(msg, len) < 0) {
		ig_grpc_finish(s, IG_GRPC_INVALID_ARGUMENT, "malformed HealthListRequest");
		return;
	}
	const char *names[3];
	enum ig_health_status st[3];
	size_t n = 0;
	enum ig_health_status rs = ready ? IG_HEALTH_SERVING : IG_HEALTH_NOT_SERVING;
	if (ext_proc_port) {
		names[n] = "";
		st[n++] = rs;
	}
	names[n] = EXTPROC_SERVICE;
	st[n++] = rs;
	if (!ext_proc_port && leader_election) {
		names[n] = "liveness";
		st[n++] = IG_HEALTH_SERVING;
		names[n] = "readiness";
		st[n++] = rs;
	}
	struct ig_buf b = {0};
	ig_health_encode_list(&b, names, st, n);
	ig_grpc_send(s, (const uint8_t *)b.ptr, b.len);
	ig_buf_free(&b);
	ig_grpc_finish(s, IG_GRPC_OK, NULL);
}

/* On a worker: the snapshot it has. */
static bool worker_ready(struct ig_worker *w, const struct epp *E)
{
	return w->snap && !atomic_load_explicit(&E->follower, memory_order_relaxed) &&
	       ig_snapshot_pool_group(w->snap, E->opt.pool_ns, E->opt.pool_name, E->opt.pool_group);
}

static void worker_health_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct ig_worker *w = ig_grpc_stream_data(s);
	struct epp *E = w->gw->opt.frontend->arg;
	ig_grpc_stream_set_data(s, NULL);
	health_check(s, msg, len, worker_ready(w, E));
}

static void worker_list_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct ig_worker *w = ig_grpc_stream_data(s);
	struct epp *E = w->gw->opt.frontend->arg;
	ig_grpc_stream_set_data(s, NULL);
	health_list(s, msg, len, worker_ready(w, E), true, E->opt.leader_election);
}

static void worker_health_open(struct ig_grpc_stream *s, void *arg)
{
	ig_grpc_stream_set_data(s, arg);
}

/* On the control loop (the health port). */
static void ctl_health_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct epp *E = ig_grpc_stream_data(s);
	ig_grpc_stream_set_data(s, NULL);
	health_check(s, msg, len, pool_known(E->G, E));
}

static void ctl_list_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct epp *E = ig_grpc_stream_data(s);
	ig_grpc_stream_set_data(s, NULL);
	health_list(s, msg, len, pool_known(E->G, E), false, E->opt.leader_election);
}

static void ctl_health_open(struct ig_grpc_stream *s, void *arg)
{
	ig_grpc_stream_set_data(s, arg);
}

/* Watch, as grpc-go's health server answers it (GIE registers that one
 * on the ext_proc port with --health-checking, and its lightweight
 * picker on its health port; GIE v1.5's and llm-d Router's own health
 * server answers UNIMPLEMENTED): the status at once, then each change,
 * the call left open until the client cancels it; at shutdown
 * NOT_SERVING, then the call ends (OK), so that a drain does not wait on
 * calls that never end. The status of a name is what Check answers for
 * it (any name, where grpc-go would say SERVICE_UNKNOWN for one it does
 * not know: a probe spelled differently must not fail). */
struct health_watch {
	struct health_watch *next, **pprev; /* in its loop's list once started */
	struct health_watchers *ws;
	struct ig_grpc_stream *s;
	bool liveness, started, ending;
	enum ig_health_status sent;
};

static enum ig_health_status watch_status(const struct health_watch *hw)
{
	if (hw->ws->draining)
		return IG_HEALTH_NOT_SERVING;
	return hw->liveness || hw->ws->ready(hw->ws->arg) ? IG_HEALTH_SERVING
							  : IG_HEALTH_NOT_SERVING;
}

static void watch_send(struct health_watch *hw, enum ig_health_status st)
{
	struct ig_buf b = {0};
	ig_health_encode_response(&b, st);
	ig_grpc_send(hw->s, (const uint8_t *)b.ptr, b.len);
	ig_buf_free(&b);
	hw->sent = st;
}

static void watch_poll(struct ig_loop *loop, struct ig_timer *t)
{
	struct health_watchers *ws = t->data;
	for (struct health_watch *hw = ws->head; hw; hw = hw->next) {
		enum ig_health_status st = watch_status(hw);
		if (st != hw->sent)
			watch_send(hw, st);
	}
	if (ws->head)
		ig_timer_start(loop, t, WATCH_POLL_MS, watch_poll, ws);
}

/* Shutdown: every call told NOT_SERVING and ended. Ending one may end
 * others of its connection (a failed write), so the list is walked from
 * its head each time, for a call not yet ended. */
static void watchers_drain(struct health_watchers *ws)
{
	ws->draining = true;
	for (;;) {
		struct health_watch *hw = ws->head;
		while (hw && hw->ending)
			hw = hw->next;
		if (!hw)
			break;
		hw->ending = true;
		if (hw->sent != IG_HEALTH_NOT_SERVING)
			watch_send(hw, IG_HEALTH_NOT_SERVING);
		ig_grpc_finish(hw->s, IG_GRPC_OK, NULL);
	}
}

static void watch_open(struct ig_grpc_stream *s, void *arg)
{
	struct health_watch *hw = calloc(1, sizeof *hw);
	if (!hw) {
		ig_grpc_finish(s, IG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	hw->ws = arg;
	hw->s = s;
	ig_grpc_stream_set_data(s, hw);
}

static void watch_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	struct health_watch *hw = ig_grpc_stream_data(s);
	if (!hw || hw->started) /* one request message; more are ignored */
		return;
	char service[256];
	if (ig_health_request_decode(msg, len, service, sizeof service) < 0) {
		ig_grpc_finish(s, IG_GRPC_INVALID_ARGUMENT, "malformed HealthCheckRequest");
		return;
	}
	struct health_watchers *ws = hw->ws;
	hw->started = true;
	hw->liveness = !strcmp(service, "liveness");
	watch_send(hw, watch_status(hw));
	if (ws->draining) {
		hw->ending = true;
		ig_grpc_finish(s, IG_GRPC_OK, NULL);
		return;
	}
	hw->next = ws->head;
	hw->pprev = &ws->head;
	if (ws->head)
		ws->head->pprev = &hw->next;
	ws->head = hw;
	if (!ig_timer_armed(&ws->timer))
		ig_timer_start(ws->loop, &ws->timer, WATCH_POLL_MS, watch_poll, ws);
}

static void watch_half_close(struct ig_grpc_stream *s)
{
	struct health_watch *hw = ig_grpc_stream_data(s);
	if (hw && !hw->started)
		ig_grpc_finish(s, IG_GRPC_INVALID_ARGUMENT, "no HealthCheckRequest");
}

static void watch_end(struct ig_grpc_stream *s, bool reset)
{
	(void)reset;
	struct health_watch *hw = ig_grpc_stream_data(s);
	if (!hw)
		return;
	if (hw->pprev) {
		*hw->pprev = hw->next;
		if (hw->next)
			hw->next->pprev = hw->pprev;
		if (!hw->ws->head)
			ig_timer_stop(hw->ws->loop, &hw->ws->timer);
	}
	free(hw);
	ig_grpc_stream_set_data(s, NULL);
}

static bool worker_ready_cb(void *arg)
{
	struct ig_worker *w = arg;
	return worker_ready(w, w->gw->opt.frontend->arg);
}

static bool ctl_ready_cb(void *arg)
{
	struct epp *E = arg;
	return pool_known(E->G, E);
}

static void health_half_close(struct ig_grpc_stream *s)
{
	if (ig_grpc_stream_data(s)) /* no request message came */
		ig_grpc_finish(s, IG_GRPC_INVALID_ARGUMENT, "no HealthCheckRequest");
}

static void health_end(struct ig_grpc_stream *s, bool reset)
{
	(void)s;
	(void)reset;
}

/* ---- the front end ---- */

static struct ig_grpc_server_config server_config(const struct epp *E, bool tls)
{
	return (struct ig_grpc_server_config){
	    .tls = tls ? E->tls : NULL,
	    .max_message_bytes = E->opt.max_msg_bytes ? (size_t)E->opt.max_msg_bytes
						      : (size_t)E->opt.max_body_bytes + 65536,
	    .send_timeout_ms = E->opt.send_timeout_ms,
	    .stream_idle_timeout_ms = E->opt.stream_idle_timeout_ms,
	    .message_timeout_ms = E->opt.message_timeout_ms,
	    .max_partial_bytes = (size_t)E->opt.max_partial_bytes,
	};
}

static int fe_start(struct ig_worker *w, void *arg)
{
	struct epp *E = arg;
	struct epp_worker *ew = calloc(1, sizeof *ew);
	if (!ew)
		return -1;
	w->fe = ew;
	ew->fd = ig_listen_tcp(E->opt.bind, E->opt.grpc_port, true, 1024);
	if (ew->fd < 0) {
		ig_err("epp: listen %s:%d: %s", E->opt.bind, E->opt.grpc_port, strerror(-ew->fd));
		return -1;
	}
	const struct ig_grpc_method methods[] = {
	    {.path = PROCESS_PATH,
	     .on_open = process_open,
	     .on_message = process_message,
	     .on_oversize = process_oversize,
	     .on_half_close = process_half_close,
	     .on_end = process_end,
	     .arg = w},
	    {.path = HEALTH_PATH,
	     .on_open = worker_health_open,
	     .on_message = worker_health_message,
	     .on_half_close = health_half_close,
	     .on_end = health_end,
	     .arg = w},
	    {.path = LIST_PATH,
	     .on_open = worker_health_open,
	     .on_message = worker_list_message,
	     .on_half_close = health_half_close,
	     .on_end = health_end,
	     .arg = w},
	    {.path = WATCH_PATH,
	     .on_open = watch_open,
	     .on_message = watch_message,
	     .on_half_close = watch_half_close,
	     .on_end = watch_end,
	     .arg = &ew->watchers},
	};
	ew->watchers =
	    (struct health_watchers){.loop = &w->loop, .ready = worker_ready_cb, .arg = w};
	struct ig_grpc_server_config cfg = server_config(E, true);
	ew->srv = ig_grpc_server_new(&w->loop, &cfg, methods, 4);
	if (!ew->srv || ig_grpc_server_listen(ew->srv, ew->fd) < 0)
		return -1;
	return 0;
}

static void fe_drain(struct ig_worker *w, void *arg)
{
	struct epp_worker *ew = w->fe;
	if (!ew || !ew->srv)
		return;
	watchers_drain(&ew->watchers);
	ig_grpc_server_drain(ew->srv);
	/* No more accepting, so no more listening: connections still coming
	 * are refused (Envoy goes to another picker at once) instead of
	 * waiting in the backlog to be reset when the drain ends, and a
	 * picker started in this one's place can bind the port. */
	if (ew->fd >= 0) {
		close(ew->fd);
		ew->fd = -1;
	}
}

static bool fe_busy(struct ig_worker *w, void *arg)
{
	struct epp_worker *ew = w->fe;
	return ew && ew->srv && ig_grpc_server_streams(ew->srv) > 0;
}

static void fe_stop(struct ig_worker *w, void *arg)
{
	struct epp_worker *ew = w->fe;
	if (!ew)
		return;
	ig_grpc_server_free(ew->srv); /* its Watch calls end: the list empties */
	ig_timer_stop(&w->loop, &ew->watchers.timer);
	if (ew->fd >= 0)
		close(ew->fd);
	free(ew);
	w->fe = NULL;
}

static char *read_file(const char *dir, const char *name, size_t *len);

/* tls.crt and tls.key as last seen (size, change time, inode; a mounted
 * Secret is renewed by swapping a symlink, which stat follows); 0 when one
 * is missing. */
static uint64_t cert_signature(const char *dir)
{
	uint64_t sig = 1469598103934665603ull;
	for (int i = 0; i < 2; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, i ? "tls.key" : "tls.crt");
		if (stat(path, &st) < 0)
			return 0;
		uint64_t v[4] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
				 (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_ino};
		for (int k = 0; k < 4; k++)
			sig = (sig ^ v[k]) * 1099511628211ull;
	}
	return sig;
}

#define CERT_POLL_MS 1000

static void cert_poll(struct ig_loop *loop, struct ig_timer *t)
{
	struct epp *E = t->data;
	uint64_t sig = cert_signature(E->opt.cert_path);
	if (sig && sig != E->cert_sig) {
		size_t clen = 0, klen = 0;
		char *c = read_file(E->opt.cert_path, "tls.crt", &clen);
		char *k = c ? read_file(E->opt.cert_path, "tls.key", &klen) : NULL;
		char err[512];
		if (c && k) {
			struct ig_tls_cert tc = {
			    .cert_pem = c, .cert_len = clen, .key_pem = k, .key_len = klen};
			/* A pair caught mid-renewal fails to match and is tried again
			 * at the next poll; the old one serves meanwhile. */
			if (ig_tls_ctx_reload(E->tls, &tc, 1, err, sizeof err) == 0) {
				E->cert_sig = sig;
				ig_info("epp: certificate reloaded from %s", E->opt.cert_path);
			} else {
				ig_warn("epp: %s: %s; keeping the previous certificate",
					E->opt.cert_path, err);
			}
		}
		free(c);
		free(k);
	}
	ig_timer_start(loop, t, CERT_POLL_MS, cert_poll, E);
}

#define LEADER_POLL_MS 100

static void leader_poll(struct ig_loop *loop, struct ig_timer *t)
{
	struct epp *E = t->data;
	bool follower = !E->G->kube || !ig_kube_leader(E->G->kube);
	if (follower != atomic_load_explicit(&E->follower, memory_order_relaxed))
		ig_info("epp: %s", follower ? "not the leader: not ready"
					    : "the leader: ready once the pool is known");
	atomic_store_explicit(&E->follower, follower, memory_order_relaxed);
	ig_timer_start(loop, t, LEADER_POLL_MS, leader_poll, E);
}

static int fe_ctl_start(struct ig_gateway_rt *G, void *arg)
{
	struct epp *E = arg;
	E->G = G;
	/* Read from files, a pool they do not have stays unknown until a
	 * reload brings it: said now, not only by a health check. */
	if (!G->opt.kube && G->snap && !pool_known(G, E))
		ig_warn("epp: pool %s/%s is not in the configuration: not ready until it is "
			"(--pool-name, --pool-namespace)",
			E->opt.pool_ns ? E->opt.pool_ns : "default", E->opt.pool_name);
	if (E->opt.leader_election)
		ig_timer_start(&G->ctl, &E->leader_timer, 0, leader_poll, E);
	if (E->opt.cert_reload && E->opt.cert_path && E->tls) {
		E->cert_sig = cert_signature(E->opt.cert_path);
		ig_timer_start(&G->ctl, &E->cert_timer, CERT_POLL_MS, cert_poll, E);
	}
	if (!E->opt.health_port)
		return 0;
	E->health_fd = ig_listen_tcp(E->opt.bind, E->opt.health_port, false, 64);
	if (E->health_fd < 0) {
		ig_err("epp: listen %s:%d (health): %s", E->opt.bind, E->opt.health_port,
		       strerror(-E->health_fd));
		return -1;
	}
	const struct ig_grpc_method m[] = {{.path = HEALTH_PATH,
					    .on_open = ctl_health_open,
					    .on_message = ctl_health_message,
					    .on_half_close = health_half_close,
					    .on_end = health_end,
					    .arg = E},
					   {.path = LIST_PATH,
					    .on_open = ctl_health_open,
					    .on_message = ctl_list_message,
					    .on_half_close = health_half_close,
					    .on_end = health_end,
					    .arg = E},
					   {.path = WATCH_PATH,
					    .on_open = watch_open,
					    .on_message = watch_message,
					    .on_half_close = watch_half_close,
					    .on_end = watch_end,
					    .arg = &E->watchers}};
	E->watchers = (struct health_watchers){.loop = &G->ctl, .ready = ctl_ready_cb, .arg = E};
	struct ig_grpc_server_config cfg = server_config(E, false);
	E->health = ig_grpc_server_new(&G->ctl, &cfg, m, 3);
	if (!E->health || ig_grpc_server_listen(E->health, E->health_fd) < 0)
		return -1;
	ig_info("epp: ext_proc on %s:%d (%s), health on %s:%d, pool %s/%s", E->opt.bind,
		E->opt.grpc_port, E->tls ? "TLS" : "plain text", E->opt.bind, E->opt.health_port,
		E->opt.pool_ns, E->opt.pool_name);
	return 0;
}

static void fe_ctl_stop(struct ig_gateway_rt *G, void *arg)
{
	struct epp *E = arg;
	ig_timer_stop(&G->ctl, &E->leader_timer);
	ig_timer_stop(&G->ctl, &E->cert_timer);
	ig_grpc_server_free(E->health); /* its Watch calls end: the list empties */
	ig_timer_stop(&G->ctl, &E->watchers.timer);
	E->health = NULL;
	if (E->health_fd >= 0)
		close(E->health_fd);
	E->health_fd = -1;
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		ig_err("epp: %s: %s", path, strerror(errno));
		return NULL;
	}
	struct ig_buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		ig_buf_append(&b, chunk, n);
	fclose(f);
	*len = b.len;
	ig_buf_append(&b, "", 1);
	return b.ptr;
}

/* The ext_proc port's certificate: -certPath's tls.crt and tls.key, else
 * a self-signed one for the host's names, made at start (as GIE does). */
static struct ig_tls_ctx *make_tls(const struct ig_epp_options *o)
{
	char err[512];
	struct ig_buf cert = {0}, key = {0};
	struct ig_tls_ctx *ctx = NULL;
	if (o->cert_path) {
		size_t clen = 0, klen = 0;
		char *c = read_file(o->cert_path, "tls.crt", &clen);
		char *k = c ? read_file(o->cert_path, "tls.key", &klen) : NULL;
		if (c && k) {
			struct ig_tls_cert tc = {
			    .cert_pem = c, .cert_len = clen, .key_pem = k, .key_len = klen};
			ctx = ig_tls_ctx_new(&tc, 1, err, sizeof err);
			if (!ctx)
				ig_err("epp: %s: %s", o->cert_path, err);
		}
		free(c);
		free(k);
	} else {
		char host[256] = "localhost";
		gethostname(host, sizeof host - 1);
		const char *names[3] = {host, "localhost", o->bind};
		size_t nn = strcmp(o->bind, "0.0.0.0") && strcmp(o->bind, "::") ? 3 : 2;
		if (ig_certgen_selfsigned(names, nn, 3650, &cert, &key, err, sizeof err) < 0) {
			ig_err("epp: self-signed certificate: %s", err);
		} else {
			struct ig_tls_cert tc = {.cert_pem = cert.ptr,
						 .cert_len = cert.len,
						 .key_pem = key.ptr,
						 .key_len = key.len};
			ctx = ig_tls_ctx_new(&tc, 1, err, sizeof err);
			if (!ctx)
				ig_err("epp: self-signed certificate: %s", err);
		}
		ig_buf_free(&cert);
		ig_buf_free(&key);
	}
	if (ctx && ig_tls_ctx_set_alpn(ctx, "h2") < 0) {
		ig_tls_ctx_unref(ctx);
		ctx = NULL;
	}
	return ctx;
}

const struct ig_gw_frontend *ig_epp_frontend(const struct ig_epp_options *o)
{
	struct epp *E = calloc(1, sizeof *E);
	if (!E)
		return NULL;
	E->opt = *o;
	atomic_init(&E->follower, o->leader_election);
	E->health_fd = -1;
	if (o->secure && !(E->tls = make_tls(o))) {
		free(E);
		return NULL;
	}
	/* The workers listen with SO_REUSEPORT, which would share the port
	 * with another picker already there: a socket without it says
	 * "address in use" first. */
	int probe = ig_listen_tcp(o->bind, o->grpc_port, false, 1);
	if (probe < 0) {
		ig_err("epp: cannot listen on %s:%d: %s: not starting", o->bind, o->grpc_port,
		       strerror(-probe));
		ig_tls_ctx_unref(E->tls);
		free(E);
		return NULL;
	}
	close(probe);
	E->fe = (struct ig_gw_frontend){
	    .start = fe_start,
	    .drain = fe_drain,
	    .busy = fe_busy,
	    .stop = fe_stop,
	    .ctl_start = fe_ctl_start,
	    .ctl_stop = fe_ctl_stop,
	    .not_ready = fe_not_ready,
	    .arg = E,
	};
	return &E->fe;
}

void ig_epp_frontend_free(const struct ig_gw_frontend *fe)
{
	if (!fe)
		return;
	struct epp *E = fe->arg;
	if (E->tls)
		ig_tls_ctx_unref(E->tls);
	free(E);
}
