/* One request through the gateway, shared by the stage files of the proxy
 * path (listener.c, rewrite.c, admit.c, relay.c; see proxy.h). Everything
 * here lives in the exchange's arena: nothing is freed one by one. */
#ifndef IG_GATEWAY_REQUEST_H
#define IG_GATEWAY_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"
#include "event/loop.h"
#include "gateway/metrics.h"
#include "gateway/snapshot.h"
#include "gateway/worker.h"
#include "http/client.h"
#include "http/server.h"
#include "http/sse.h"
#include "json/json.h"
#include "sched/flowq.h"
#include "sched/sched.h"

#define IG_REQ_MAX_RANKED IG_SCHED_MAX_RANKED
/* CLIENT spans kept per request: attempts past them take the last one. */
#define IG_TRACE_MAX_ATTEMPTS 8
/* A streamed body is kept for another attempt up to this size (as a body
 * of at most 1 MiB is read whole: listener.c's STREAM_MIN_BYTES). */
#define IG_REQ_REPLAY_MAX ((size_t)1 << 20)
#define IG_REQ_TAIL 4096 /* bytes of a JSON response kept to find its usage */

/* Members of a JSON request body the stages use (rewrite.c). */
enum ig_body_member {
	IG_BM_MODEL,
	IG_BM_PROMPT,
	IG_BM_MESSAGES,
	IG_BM_INPUT,
	IG_BM_INSTRUCTIONS,
	IG_BM_TOOLS,
	IG_BM_SYSTEM,
	IG_BM_SALT,
	IG_BM_ITEMS,
	IG_BM_N
};

/* Where a request that did not come from an HTTP client goes instead of
 * upstream: `infergate epp` runs the same stages for an ext_proc stream,
 * and when the picker has ranked the endpoints, or the request failed,
 * the answer goes back over that stream (src/epp/). */
struct ig_req;
struct ig_req_sink {
	/* The ranking is in p->ranked (p->ep, the first, counts as
	 * dispatched); the body to send is body_pre + model_json + body_post. */
	void (*picked)(struct ig_req *p);
	/* The request ends with this error; ig_req_finish follows. */
	void (*failed)(struct ig_req *p, int status, const char *type, const char *msg);
};

struct ig_req {
	struct ig_http_exchange *ex;
	const struct ig_req_sink *sink; /* NULL: an HTTP client, relayed upstream */
	void *sink_data;
	struct ig_worker *w;
	/* The worker's requests in flight (ig_worker_request_begin), which a
	 * drain that runs out ends (ig_req_shut). */
	struct ig_req *active_next, **active_prev;
	struct ig_snapshot *snap; /* held for it by the worker (ig_worker_snap_take) */
	const struct ig_route_rule *rule;
	const struct ig_route_match *match; /* of the rule, that matched */
	const struct ig_listener_rt *listener;
	const struct ig_backend_ref *backend; /* drawn from the rule */
	/* A CORS filter covers the request (it has an Origin): the backend's
	 * CORS headers are dropped; granted, the answer carries the filter's
	 * (in the exchange's resp_extra). */
	bool cors_applied, cors_granted;
	const struct ig_pool_rt *pool;	     /* an InferencePool backend, or */
	const struct ig_service_rt *service; /* a core Service backend */

	/* rewrite.c */
	int body_state; /* 0: no body; 1: a JSON object, members read; -1: not one */
	struct ig_json_value members[IG_BM_N];
	struct ig_str model;		 /* as asked, decoded */
	struct ig_str target;		 /* after the traffic split (points into the config) */
	const struct ig_model *resolved; /* its InferenceModel (NULL: v1 passthrough) */
	bool random_endpoint;		 /* no body: any endpoint (GIE v0.3+) */
	bool restore_model;		 /* GIE v1: the response names `model` as asked */
	bool critical;
	int priority;
	/* Refused (429) when the pool is saturated: a negative priority, or
	 * an InferenceModel not marked Critical (every GIE release with
	 * InferenceModels sheds those: the v0.2.0 tree and, from v0.3, the
	 * saturation detector's "non-critical request dropped"). */
	bool sheddable;
	/* The body sent upstream is the client's with the `model` value
	 * replaced: the bytes before and after it (spans of the request body)
	 * around the new value. */
	struct ig_str body_pre, model_json, body_post;
	size_t body_len;
	struct ig_str head;	      /* upstream head without Host and the blank line */
	struct ig_str prefix_input;   /* what the prefix index hashes (rewrite.c) */
	struct ig_str prefix_seed;    /* target model + cache_salt, or empty */
	uint32_t cache_block_tokens;  /* autoTune: the block size hashed (0: configured) */
	size_t prompt_bytes;	      /* of the prompt, messages or input as sent */
	struct ig_str test_endpoints; /* test-epp-endpoint-selection */
	struct ig_str session;	      /* session affinity header */
	struct ig_str flow_id;	      /* x-gateway-inference-fairness-id */
	struct ig_str request_id;     /* x-request-id sent upstream (the client's or ours) */
	bool request_id_made;	      /* ours: the client sent none, or an empty one */
	/* The proxy's subset hint (ext_proc metadata envoy.lb.subset_hint):
	 * only endpoints named here ("ip" or "ip:port") are candidates. */
	bool has_subset;
	const struct ig_str *subset;
	size_t nsubset;

	/* admit.c: the picker's ranking; attempts go down it in order. */
	struct ig_endpoint *ranked[IG_REQ_MAX_RANKED];
	size_t nranked;
	bool committed;
	struct ig_flowq_item qitem;
	uint64_t qdeadline;
	uint64_t qstart_ns, qend_ns; /* time in the queue, for the access log */
	bool queued;

	/* tracing.c: OpenTelemetry spans of this request (when sampled) */
	struct ig_req_trace {
		bool on;	 /* sampled: its spans are recorded */
		bool propagate;	 /* the pod gets our traceparent (tracing is on) */
		bool has_parent; /* the client's traceparent */
		/* The client's traceparent was invalid: it and its tracestate
		 * do not go on (W3C Trace Context §4.3), sampled or not. */
		bool drop_context;
		uint8_t trace_id[16], parent[8], server[8], internal[8];
		uint64_t wall_start_ns; /* CLOCK_REALTIME at start_ns */
		uint64_t dispatch_ns;	/* monotonic; 0: not yet */
		char traceparent[56];	/* what the pod gets */
		/* Its value in p->head (rewrite.c), which each attempt sets
		 * to its own span's id; NULL: not in the head. */
		char *head_tp;
		const char *endpoint; /* of the last attempt (snapshot's) */
		/* One CLIENT span per attempt sent (relay.c). */
		struct ig_trace_attempt {
			uint8_t span[8];
			uint64_t start_ns, end_ns; /* monotonic; end 0: still open */
			const char *endpoint;	   /* "ip:port" (snapshot's) */
			const char *error;	   /* error.type without an answer */
			int status;		   /* the answer's; 0: none */
			int resend;		   /* http.request.resend_count */
			bool h2, tls;
		} attempts[IG_TRACE_MAX_ATTEMPTS];
		uint8_t nattempts;
		int sent;
	} trace;

	/* extpick.c: the pool's picker is another process (ext_proc) */
	struct xp_call *xp;

	/* relay.c */
	struct ig_endpoint *ep; /* of the current attempt, counted as dispatched */
	unsigned ep_epoch;	/* the scrape epoch it was dispatched in */
	long ep_tokens;		/* prompt tokens counted for it */
	bool ep_done;		/* its dispatch accounting already ended */
	struct ig_http_client *up;
	struct ig_http_client *probe; /* is the endpoint still there? */
	int probes;		      /* probes that connected, for this loss */
	char host_line[192]; /* [x-gateway-destination-endpoint: ip:port\r\n]Host: ...\r\n\r\n */
	size_t host_len;
	int ntried;
	int route_retries; /* attempts a route's retry block made */
	struct ig_timer retry_timer;
	bool fresh_retry; /* the one retry on a fresh connection was used */
	struct ig_timer req_timer, backend_timer;
	bool resp_started, sse;
	/* A WebSocket handshake that may switch protocols (an HTTP/1.1 backend),
	 * and whether it did: the exchange is then a tunnel (relay.c). */
	bool upgrade, tunnel;
	size_t tunnel_in; /* bytes the client sent through the tunnel */
	int status;
	size_t resp_bytes;
	int64_t resp_length; /* Content-Length of the response, -1 if none */
	/* restore_model: `"model":"<target>"` (and `"model": "<target>"`)
	 * in the response become the name asked for; a piece's last bytes
	 * that may begin one wait for the next piece in `carry`. */
	struct ig_str restore_from[2], restore_to[2];
	char *carry;
	size_t carry_len;
	/* The response's trailer fields (a gRPC status), copied into the
	 * exchange's arena when the pod's answer ends; they end the client's. */
	struct ig_http_header *trailers;
	size_t ntrailers;
	/* The answer's grpc-status, for the access log. */
	bool has_grpc_status;
	int grpc_status;
	/* The client's body is streamed to the pod as it comes (a gRPC call,
	 * a large upload: ig_proxy_stream_body): stream_sent bytes of it were
	 * taken from the client and passed on; stream_ended once its end went
	 * too (on the current attempt). Until the answer starts, and while it
	 * is at most IG_REQ_REPLAY_MAX bytes, what was passed on is also kept
	 * (`replay`): an attempt that fails before the answer can then be
	 * made again, elsewhere or on a new connection, sending the kept bytes
	 * first (from replay_at on), as a body read whole would be. `keeping`
	 * is false once the body outgrew that or the answer started; then a
	 * failure after attempt_sent > 0 bytes of this attempt is a 502 (a
	 * timeout stays a 504, or a 408 when the client was the silent side). */
	bool streaming, stream_ended, keeping;
	uint64_t stream_sent, attempt_sent;
	/* Until the answer starts, the client's silence inside a streamed body
	 * is bounded by the body timeout: body_last_ns is when the gateway last
	 * took its bytes, or last held it back (relay.c: on_body_silence). */
	struct ig_timer body_timer;
	uint64_t body_last_ns;
	size_t replay_at;
	struct ig_buf replay;
	char *tail; /* last bytes of a JSON response, for `usage` */
	size_t tail_len;
	struct ig_sse sse_state; /* data: lines of an event stream */
	long in_tokens, out_tokens;
	long cached_tokens; /* the usage's cached prompt tokens, when cached_known */
	bool cached_known;
	/* inference_objective_running_requests and llm_d_epp_request_running,
	 * counted up at dispatch and down with the request's metrics (NULL:
	 * not counted). */
	struct ig_series *running[IG_GW_RUNNING_SERIES];
	/* SSE data events with output (the Responses API's lifecycle events
	 * before any output do not count as the first): TTFT, TPOT. */
	uint64_t first_event_ns, last_event_ns;
	size_t nevents;
	uint64_t start_ns;
	uint64_t first_byte_ns; /* the response head from the model server */
	char served[64];	/* the endpoint that answered, "ip:port" */
	const char *reason;	/* why the gateway answered an error (access log) */
	/* Flow control refused or evicted it: llm-d Router's
	 * x-llm-d-request-dropped-reason on the error (rejected-saturated,
	 * rejected-ttl-expired); NULL otherwise. */
	const char *drop_reason;
	bool recorded, finished;

	/* admit.c: the schedule's result, with the prefix hashes for the
	 * commit (in the exchange's arena, as many as the prompt has). Last:
	 * a new request (ig_proxy_handle) zeroes the struct up to here and
	 * clears the result. */
	struct ig_sched_result res;
};

/* Arrival to the first token of a streamed response, else to the
 * model server's response head (a whole response, or a stream that
 * carried no output); 0 when no pod answered. What the access log and
 * the trace call ttft. */
static inline uint64_t ig_req_ttft_ns(const struct ig_req *p)
{
	uint64_t t = p->first_event_ns ? p->first_event_ns : p->first_byte_ns;
	return t ? t - p->start_ns : 0;
}

/* The protocol a backend's model servers speak: h2c when its pool's (or
 * Service port's) appProtocol is kubernetes.io/h2c, else HTTP/1.1. */
static inline enum ig_http_proto ig_backend_proto(const struct ig_pool_rt *pool,
						  const struct ig_service_rt *svc)
{
	bool h2c = pool ? pool->h2c : svc ? svc->h2c : false;
	return h2c ? IG_PROTO_H2C : IG_PROTO_HTTP1;
}

/* The TLS context to reach a backend's pods with (a BackendTLSPolicy on
 * its Service port) for a request that came through Gateway gw (its
 * client certificate, if it has one), NULL for clear text. */
static inline struct ig_tls_client_ctx *ig_backend_tls(const struct ig_pool_rt *pool,
						       const struct ig_service_rt *svc,
						       const struct ig_gateway *gw)
{
	if (pool || !svc)
		return NULL;
	for (size_t i = 0; i < svc->ngw_tls; i++)
		if (svc->gw_tls[i].gw == gw)
			return svc->gw_tls[i].tls;
	return svc->tls;
}

/* The backend is to be reached over TLS with a context that could not be
 * made: the request gets 500, never clear text. */
static inline bool ig_backend_tls_failed(const struct ig_service_rt *svc,
					 const struct ig_gateway *gw)
{
	if (!svc)
		return false;
	if (svc->tls_error)
		return true;
	for (size_t i = 0; i < svc->ngw_tls; i++)
		if (svc->gw_tls[i].gw == gw)
			return !svc->gw_tls[i].tls;
	return false;
}

/* filters.c: the rule's and the backendRef's filters. */
bool ig_req_has_redirect(const struct ig_req *p);
void ig_req_redirect(struct ig_req *p); /* answers 3xx and ends the request */
/* The CORS filter of the rule, else of the drawn backendRef (before one is
 * drawn, the rule's only): a preflight it covers is answered here (1, the
 * request ended); a request from an allowed Origin gets the filter's
 * headers on its answer (0). */
int ig_req_cors(struct ig_req *p);
/* The request-target the backend gets (URLRewrite path), and the Host
 * (URLRewrite hostname; NULL: none). */
struct ig_str ig_req_upstream_target(struct ig_req *p);
const char *ig_req_upstream_host(const struct ig_req *p);
/* The Host an endpoint is sent: a URLRewrite's hostname, else the
 * client's, as Envoy and any HTTP proxy keep it, for a Service and a pool
 * alike (GIE's conformance tests check the pod sees the client's Host);
 * the endpoint's address only when the client sent none (HTTP/1.0). */
struct ig_str ig_req_forward_host(const struct ig_req *p, const struct ig_endpoint *ep);
/* Header modifiers of `type` (request or response): whether a header of
 * that name is removed or replaced, and the set/add entries to emit. */
bool ig_req_header_dropped(const struct ig_req *p, enum ig_filter_type type, struct ig_str name);
void ig_req_header_additions(const struct ig_req *p, enum ig_filter_type type,
			     void (*emit)(void *ud, const char *name, const char *value), void *ud);
/* sessionPersistence: moves the session's endpoint first in the ranking;
 * the header (Set-Cookie, or the session header) naming the endpoint that
 * answered. */
void ig_req_persist_ranking(struct ig_req *p);
bool ig_req_session_header(struct ig_req *p, struct ig_http_header *out);
/* A route `retry` block asks for another attempt after this status; it
 * has attempts left (for connection errors and backend timeouts). */
bool ig_req_should_retry(struct ig_req *p, int status);
bool ig_req_retry_left(const struct ig_req *p);
/* RequestMirror: copies sent, answers forgotten; at most 64 per worker. */
void ig_req_mirror(struct ig_req *p);
void ig_req_mirrors_free(struct ig_worker *w);

/* rewrite.c: validates the body once and records its members (before
 * routing: body-based routing reads the model). */
void ig_req_parse_body(struct ig_req *p);
/* The listeners' body_progress hook (http/server.h): validates a request
 * body as JSON while it arrives, for ig_req_parse_body to finish. */
void ig_req_body_progress(struct ig_http_exchange *ex, void *ctx);
/* A gRPC call: content-type application/grpc, alone or with a +format
 * or parameters. */
bool ig_req_is_grpc(const struct ig_http_request *r);
/* rewrite.c: reads and resolves the body's model, splices it, reads the
 * request's features and builds the upstream head. 0, or the error is
 * answered and -1. */
int ig_req_rewrite(struct ig_req *p);
/* rewrite.c: a version 4 UUID in its 8-4-4-4-12 text form (36 bytes, no
 * NUL), as the request ids the gateway makes. */
void ig_req_uuid4(char out[36]);
/* rewrite.c: whether a request header is for this hop alone (hop-by-hop,
 * framing, Host, Expect, the picker's own headers): no pod gets it. */
bool ig_req_hop_header(struct ig_str name);
/* rewrite.c: p->request_id set: the client's x-request-id, else one made
 * now (request_id_made), the same the upstream head sends. 0, or -1 when
 * out of memory. */
int ig_req_make_id(struct ig_req *p);
/* rewrite.c: X-Forwarded-For as the pod gets it: the client's lines
 * joined, then the client's address (in the request's arena; empty when
 * out of memory). */
struct ig_str ig_req_forwarded_for(struct ig_req *p);

/* admit.c: admission and the picker. Returns 0 with p->ranked filled, 1
 * when the request waits in the worker's queue (it is sent from there), or
 * -1 when an error was answered. */
int ig_req_admit(struct ig_req *p);

/* request_metrics.c: the request's part in the metrics (gateway/metrics.h),
 * at the points where GIE v1.5 records them. _dispatched: it goes to a
 * model server (running_requests up, until its metrics are recorded).
 * _scheduled: the picker ran, from t0 (ig_now_ns), and ranked `picked`
 * first (NULL: it failed); p->res holds its prefix match. */
void ig_req_metrics_dispatched(struct ig_req *p);
void ig_req_metrics_scheduled(struct ig_req *p, uint64_t t0, const struct ig_endpoint *picked);
/* Each plugin the schedule ran, timed in ticks (p->res.plugin_ticks's
 * room), into inference_extension_plugin_duration_seconds. */
void ig_req_metrics_plugins(struct ig_req *p, const uint32_t *ticks);
/* _rewrite: `rule` of InferenceModelRewrite `rw` chose `target`. */
void ig_req_metrics_rewrite(struct ig_req *p, const struct ig_model_rewrite *rw,
			    const struct ig_rewrite_rule *rule, const char *target);
/* _flow: what flow control did with the request (metrics.h's events), at
 * now_ns: the time in flow control counts from p->qstart_ns. _pushed: the
 * queue's push answered rc (ig_flowq_push). _unqueued: the request ended
 * while it waited (p->status says why: 499 the client left, 504 the
 * route's request timeout). */
void ig_req_metrics_flow(struct ig_req *p, enum ig_gw_flow_event ev, uint64_t now_ns);
/* _passed: flow control admitted the request at once, by a check that
 * began at t0 (ig_now_ns). */
void ig_req_metrics_passed(struct ig_req *p, uint64_t t0);
void ig_req_metrics_pushed(struct ig_req *p, int rc);
void ig_req_metrics_unqueued(struct ig_req *p);

/* relay.c */
/* Starts the route's timeouts.request clock, which covers queueing too. */
void ig_req_arm_timeout(struct ig_req *p);
void ig_req_send(struct ig_req *p);
void ig_req_fail(struct ig_req *p, int status, const char *type, const char *code, const char *msg);
void ig_req_finish(struct ig_req *p);
/* The gateway is stopping (the drain's grace period is over) with the
 * request in flight: answered 503 when no response byte went yet, else its
 * response cut; `why` is the reason the access log gives. */
void ig_req_shut(struct ig_req *p, const char *why);
/* tracing.c: decides whether the request is traced (a client's sampled
 * traceparent is continued; otherwise --trace-sample-ratio) and makes its
 * ids, or that the client's invalid trace context is dropped; _end
 * records its spans (from ig_req_finish). Without a tracer nothing is
 * looked at: the headers go on as sent, as through an Envoy without a
 * tracing provider. */
void ig_req_trace_begin(struct ig_req *p);
/* relay.c's attempts, each a CLIENT span when sampled: _attempt as one is
 * sent to endpoint (its span's id goes in the head's traceparent),
 * _attempt_status when its answer's head came, _attempt_error when it
 * failed without one (error.type: a short name such as "timeout"). */
void ig_req_trace_attempt(struct ig_req *p, const char *endpoint, bool h2, bool tls);
void ig_req_trace_attempt_status(struct ig_req *p, int status);
void ig_req_trace_attempt_error(struct ig_req *p, const char *type);
void ig_req_trace_end(struct ig_req *p);

/* relay.c, for extpick.c: the response head held for the picker goes to
 * the client (res with the picker's changes), and a response that ended
 * while it was held ends. */
void ig_req_relay_head(struct ig_req *p, const struct ig_http_response *res);
void ig_req_relay_end(struct ig_req *p);

/* rewrite.c: the upstream head, from the client's headers with the route's
 * filters and the external picker's header changes. 0 or -1 (memory). */
int ig_req_build_head(struct ig_req *p);

/* extpick.c: the pool's endpoint picker is another process, asked over
 * ext_proc in FULL_DUPLEX_STREAMED (docs/ARCHITECTURE.md). ig_req_extpick
 * starts it for a routed request (the answer, or the failure mode, goes on
 * from there). _hold keeps an upstream response head for the picker's
 * response-headers answer (true: held; the client is paused); _body takes
 * a piece of the response body for the picker, whose answers go to the
 * client (-1: not so, write it yourself; else on_body's 0 or 1); _holding
 * says the picker has the response's end to answer (its head or its
 * body); _up_done records that the pod's response ended meanwhile (the
 * picker's answer ends the client's); _end (from ig_req_finish) lets go
 * of the call. */
struct ig_http_client;
int ig_req_extpick(struct ig_req *p);
bool ig_req_extpick_hold(struct ig_req *p, struct ig_http_client *c,
			 const struct ig_http_response *res);
int ig_req_extpick_body(struct ig_req *p, const char *data, size_t len, bool last);
/* Whether the response's body goes through the external picker (its
 * length is then the picker's, known at the end). */
bool ig_req_extpick_takes_body(const struct ig_req *p);
bool ig_req_extpick_holding(const struct ig_req *p);
void ig_req_extpick_up_done(struct ig_req *p);
void ig_req_extpick_end(struct ig_req *p);
/* Whether the request header `name` is removed or replaced by the picker,
 * and its set headers (for ig_req_build_head). */
bool ig_req_extpick_drops(const struct ig_req *p, struct ig_str name);
void ig_req_extpick_additions(const struct ig_req *p,
			      void (*emit)(void *ud, const char *name, const char *value),
			      void *ud);
size_t ig_req_extpick_room(const struct ig_req *p);
void ig_extpick_worker_free(struct ig_worker *w);

/* A request with a sink: the response as the proxy in front of us reports
 * it (status, whether it is an event stream, then body pieces), read for
 * usage, metrics and the prefix-index commit; _end ends the request. */
void ig_req_sink_response_head(struct ig_req *p, int status, bool sse);
/* The proxy reports the endpoint that served (GIE's
 * x-gateway-destination-endpoint-served): when it is another of the
 * ranking (a fallback after a failed connect), the request's accounting
 * moves there, as a retry moves it; before ig_req_sink_response_head. */
void ig_req_sink_served(struct ig_req *p, struct ig_str addr);

/* GIE v1: a rewrite's target named in the response's "model" members is
 * turned back into the name asked for (when p->restore_model). Setup
 * once the response starts (0, or -1 out of memory: then pass it on as
 * it is); then each piece is fed, its output emitted in pieces (emit
 * returns 0, 1 when the receiver is full, -1 when it is gone; feed
 * returns the worst). `last`: nothing follows, nothing is held back. */
typedef int (*ig_req_emit_fn)(void *ud, const char *data, size_t len);
int ig_req_restore_setup(struct ig_req *p);
/* The most a piece of len bytes can become (reserve it, and emitting
 * into a buffer cannot fail half way). */
size_t ig_req_restore_bound(const struct ig_req *p, size_t len);
int ig_req_restore_feed(struct ig_req *p, const char *data, size_t len, bool last,
			ig_req_emit_fn emit, void *ud);
void ig_req_sink_response_body(struct ig_req *p, const char *data, size_t len);
/* cut: the proxy's stream ended without the response's end (the client
 * left, or the stream was reset), which the metrics do not time. */
void ig_req_sink_response_end(struct ig_req *p, bool cut);

#endif
