/* One request through the gateway: route it, resolve its model through the
 * pool's InferenceModels, pick an endpoint, and stream the answer back.
 *
 * The request body is read whole by the server (bounded), the `model`
 * value is spliced in place so the rest of the body stays byte-identical,
 * and the response is relayed piece by piece: when the client cannot take
 * more, reading from the upstream pauses until it can. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "gateway/gw.h"
#include "http/client.h"
#include "json/json.h"
#include "sched/flowq.h"
#include "sched/picker.h"
#include "sched/sched.h"

#define MAX_ATTEMPTS 8
#define MAX_RANKED IG_SCHED_MAX_RANKED
#define USAGE_BODY_MAX (1024 * 1024)

struct proxy_req {
	struct ig_http_exchange *ex;
	struct ig_worker *w;
	struct ig_snapshot *snap;
	const struct ig_route_rule *rule;
	const struct ig_pool_rt *pool;
	struct ig_buf model;  /* as asked */
	struct ig_buf target; /* after the traffic split */
	bool critical;
	/* The body sent upstream is the client's with the `model` value
	 * replaced: the bytes before it and after it (spans of the request
	 * body, which lives as long as the exchange) around the new value. */
	struct ig_str body_pre, body_post;
	struct ig_buf model_json; /* the target as a JSON string */
	size_t body_len;
	struct ig_buf head; /* the upstream request head */
	struct ig_buf wire; /* head and Host line of one attempt */
	struct ig_endpoint *ep;
	struct ig_http_client *up;
	/* The picker's ranking; attempts go down it in order. */
	struct ig_endpoint *ranked[MAX_RANKED];
	size_t nranked;
	int ntried;
	struct ig_sched_result res; /* prefix hashes for the commit */
	bool committed;
	int priority;
	struct ig_str prefix_input;   /* into the request body */
	struct ig_str test_endpoints; /* test-epp-endpoint-selection */
	struct ig_str session;        /* session affinity header */
	struct ig_buf flow_id;        /* x-gateway-inference-fairness-id */
	struct ig_flowq_item qitem;
	uint64_t qdeadline;
	bool queued;
	struct ig_timer req_timer, backend_timer;
	bool resp_started, sse;
	int status;
	size_t resp_bytes;
	struct ig_buf scan; /* JSON body or current SSE line, for usage */
	long in_tokens, out_tokens;
	uint64_t start_ns; /* copied: the exchange may be gone when we finish */
	bool recorded;
	int64_t resp_length; /* Content-Length of the response, -1 if none */
};

static const struct ig_http_client_cbs upstream_cbs;
static void attempt(struct proxy_req *p);

/* ---- finishing ---- */

static void release_endpoint(struct proxy_req *p)
{
	if (p->ep) {
		atomic_fetch_sub_explicit(&p->ep->inflight, 1, memory_order_relaxed);
		p->ep = NULL;
	}
}

/* Request metrics are recorded before the last byte goes to the client, so
 * a client that reads /metrics right after its answer sees its request. */
static void record_metrics(struct proxy_req *p)
{
	/* Only resolved models get series: label values stay a bounded set. */
	if (p->recorded || !p->target.len)
		return;
	p->recorded = true;
	double secs = (double)(ig_now_ns() - p->start_ns) / 1e9;
	ig_gw_metrics_request(ig_buf_cstr(&p->model), ig_buf_cstr(&p->target), p->status, secs,
			      p->body_len, p->resp_bytes, p->in_tokens, p->out_tokens);
	ig_gw_metrics_objective(ig_buf_cstr(&p->model), ig_buf_cstr(&p->target), p->priority,
				p->status, secs, p->in_tokens, p->out_tokens);
}

static void finish(struct proxy_req *p)
{
	struct ig_worker *w = p->w;
	if (p->queued) {
		/* Answered while waiting (a timeout, the client left). */
		ig_flowq_remove(w->queue, &p->qitem);
		p->queued = false;
	}
	ig_timer_stop(&w->loop, &p->req_timer);
	ig_timer_stop(&w->loop, &p->backend_timer);
	release_endpoint(p);
	record_metrics(p);
	ig_buf_free(&p->model);
	ig_buf_free(&p->target);
	ig_buf_free(&p->model_json);
	ig_buf_free(&p->head);
	ig_buf_free(&p->wire);
	ig_buf_free(&p->scan);
	ig_buf_free(&p->flow_id);
	ig_snapshot_unref(p->snap);
	free(p);
	ig_worker_request_done(w);
}

static void fail_request(struct proxy_req *p, int status, const char *type, const char *code,
			 const char *msg)
{
	p->status = status;
	record_metrics(p);
	ig_http_respond_error(p->ex, status, type, code, "%s", msg);
	finish(p);
}

static void close_upstream(struct proxy_req *p)
{
	if (p->up) {
		ig_http_client_close(p->up);
		p->up = NULL;
	}
}

/* The client went away or the server shut its connection. */
static void on_client_abort(struct ig_http_exchange *ex)
{
	struct proxy_req *p = ex->user;
	close_upstream(p);
	if (!p->status)
		p->status = 499;
	finish(p);
}

static void on_client_writable(struct ig_http_exchange *ex)
{
	struct proxy_req *p = ex->user;
	if (p->up)
		ig_http_client_pause(p->up, false);
}

static void on_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct proxy_req *p = t->data;
	close_upstream(p);
	if (!p->resp_started) {
		fail_request(p, 504, "timeout", NULL, "upstream request timeout");
		return;
	}
	p->ex->on_abort = NULL;
	ig_http_abort(p->ex);
	finish(p);
}

/* ---- usage accounting from the response ---- */

static void read_usage(struct proxy_req *p, const char *json, size_t len)
{
	struct ig_json_value root, usage, v;
	if (ig_json_parse(json, len, &root) < 0 || ig_json_get(root, "usage", &usage) < 0 ||
	    usage.type != IG_JSON_OBJECT)
		return;
	int64_t n;
	if (ig_json_get(usage, "prompt_tokens", &v) == 0 && ig_json_int64(v, &n) == 0)
		p->in_tokens = (long)n;
	if (ig_json_get(usage, "completion_tokens", &v) == 0 && ig_json_int64(v, &n) == 0)
		p->out_tokens = (long)n;
}

/* SSE: look at each complete `data: ` line that mentions usage. */
static void scan_sse(struct proxy_req *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (ch != '\n') {
			if (ig_buf_append(&p->scan, &ch, 1) < 0)
				ig_buf_reset(&p->scan); /* an over-long line: skip it */
			continue;
		}
		struct ig_str line = ig_buf_str(&p->scan);
		if (line.len && line.ptr[line.len - 1] == '\r')
			line.len--;
		if (ig_str_has_prefix(line, IG_STR("data: ")) && memmem(line.ptr, line.len, "\"usage\"", 7))
			read_usage(p, line.ptr + 6, line.len - 6);
		ig_buf_reset(&p->scan);
	}
}

/* ---- upstream callbacks ---- */

static bool hop_by_hop(struct ig_str name)
{
	static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
					    "transfer-encoding", "upgrade", "te", "trailer",
					    "content-length"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq_cstr(name, names[i]))
			return true;
	return false;
}

static int on_up_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct proxy_req *p = ud;
	struct ig_http_header hdrs[104];
	size_t n = 0;
	for (size_t i = 0; i < res->num_headers && n < 100; i++) {
		if (hop_by_hop(res->headers[i].name))
			continue;
		if (ig_str_ieq_cstr(res->headers[i].name, "content-type") &&
		    memmem(res->headers[i].value.ptr, res->headers[i].value.len, "text/event-stream", 17))
			p->sse = true;
		hdrs[n++] = res->headers[i];
	}
	hdrs[n].name = IG_STR("x-gateway-destination-endpoint-served");
	hdrs[n++].value = ig_str_from(p->ep->addr);
	const struct ig_http_header *cl = ig_http_find_header(res->headers, res->num_headers,
							       "content-length");
	int64_t length = -1;
	uint64_t v;
	if (cl && ig_str_to_u64(cl->value, &v) == 0)
		length = (int64_t)v;
	p->status = res->status;
	p->resp_started = true;
	p->resp_length = length;
	/* PreRequest: this endpoint now holds the prompt's prefix. */
	if (!p->committed && p->pool->sched) {
		ig_schedule_commit(p->pool->sched->s, &p->res, p->ep->key);
		p->committed = true;
		if (p->session.len)
			ig_session_store(p->session, p->ep->key);
	}
	ig_timer_stop(&p->w->loop, &p->backend_timer);
	ig_buf_init(&p->scan, p->sse ? 256 * 1024 : USAGE_BODY_MAX);
	if (ig_http_start_response(p->ex, res->status, hdrs, n, length) < 0)
		return -1;
	return 0;
}

static int on_up_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct proxy_req *p = ud;
	p->resp_bytes += len;
	if (p->sse)
		scan_sse(p, data, len);
	else if (p->scan.max && ig_buf_append(&p->scan, data, len) < 0)
		p->scan.max = 0, ig_buf_free(&p->scan); /* too big to look into */
	/* The last piece of a response with a length completes it for the
	 * client as soon as it is written: count the request first. */
	if (p->resp_length >= 0 && p->resp_bytes == (size_t)p->resp_length) {
		if (!p->sse && p->scan.len)
			read_usage(p, p->scan.ptr, p->scan.len);
		record_metrics(p);
	}
	int rc = ig_http_write(p->ex, data, len);
	if (rc < 0) {
		/* The client is gone; on_abort follows from the server. */
		return 0;
	}
	return rc == 1 ? 1 : 0;
}

static void on_up_done(struct ig_http_client *c, void *ud)
{
	struct proxy_req *p = ud;
	if (!p->sse && p->scan.len && !p->recorded)
		read_usage(p, p->scan.ptr, p->scan.len);
	struct ig_endpoint *ep = p->ep;
	p->up = NULL;
	ig_worker_release_upstream(p->w, ep, c);
	record_metrics(p);
	p->ex->on_abort = NULL;
	ig_http_end(p->ex);
	finish(p);
}

static void on_up_error(struct ig_http_client *c, enum ig_client_error e, int err, void *ud)
{
	struct proxy_req *p = ud;
	p->up = NULL;
	ig_timer_stop(&p->w->loop, &p->backend_timer);
	if (!p->resp_started && (e == IG_CLIENT_CONNECT || e == IG_CLIENT_EARLY)) {
		ig_warn("upstream %s: %s before the response (%s); trying another endpoint",
			p->ep->addr, e == IG_CLIENT_CONNECT ? "connect failed" : "connection lost",
			strerror(err));
		release_endpoint(p);
		attempt(p);
		return;
	}
	if (!p->resp_started) {
		fail_request(p, 502, "bad_gateway", NULL, "invalid response from the model server");
		return;
	}
	/* Mid-stream: the client sees the connection end without the final
	 * chunk, which tells it the response is incomplete. */
	p->ex->on_abort = NULL;
	ig_http_abort(p->ex);
	finish(p);
}

static const struct ig_http_client_cbs upstream_cbs = {
	.on_head = on_up_head,
	.on_body = on_up_body,
	.on_done = on_up_done,
	.on_error = on_up_error,
};

/* ---- choosing an endpoint ---- */

/* ---- choosing endpoints ---- */

/* The candidates of the pool as the picker sees them. Endpoints whose
 * scrapes keep failing are left out, unless that leaves nothing. */
struct candidates {
	size_t n;
	struct ig_endpoint **eps;
	struct ig_sched_endpoint *se;
	struct ig_endpoint_metrics *m;
	/* Storage for ordinary pools, so no allocation happens per request. */
	struct ig_endpoint *eps_small[16];
	struct ig_sched_endpoint se_small[16];
	struct ig_endpoint_metrics m_small[16];
};

static int candidates_load(struct candidates *c, const struct ig_pool_rt *pool, uint64_t now_ns)
{
	size_t cap = pool->neps ? pool->neps : 1;
	c->n = 0;
	if (cap <= 16) {
		c->eps = c->eps_small, c->se = c->se_small, c->m = c->m_small;
	} else {
		c->eps = malloc(cap * sizeof *c->eps);
		c->se = malloc(cap * sizeof *c->se);
		c->m = malloc(cap * sizeof *c->m);
		if (!c->eps || !c->se || !c->m)
			return -1;
	}
	for (int pass = 0; pass < 2 && c->n == 0; pass++) {
		for (size_t i = 0; i < pool->neps; i++) {
			struct ig_endpoint *ep = pool->eps[i];
			if (pass == 0 && atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed))
				continue;
			size_t k = c->n++;
			c->eps[k] = ep;
			ig_endpoint_read_metrics(ep, &c->m[k]);
			uint64_t upd = c->m[k].updated_ns;
			c->se[k] = (struct ig_sched_endpoint){
				.m = &c->m[k],
				.metrics_age_ms = upd ? (now_ns > upd ? (now_ns - upd) / 1000000u : 0)
						      : UINT64_MAX,
				.inflight_requests = atomic_load_explicit(&ep->pending_requests,
									  memory_order_relaxed),
				.inflight_tokens = atomic_load_explicit(&ep->pending_tokens,
									memory_order_relaxed),
				.addr = ig_str_from(ep->addr),
				.key = ep->key,
			};
		}
	}
	return 0;
}

static void candidates_free(struct candidates *c)
{
	if (c->eps != c->eps_small) {
		free(c->eps);
		free(c->se);
		free(c->m);
	}
}

/* Saturation as GIE's utilization detector computes it, but over metrics
 * that include what this gateway dispatched since the last scrape: a queue
 * that drains requests as fast as they come does not see a stale "idle". */
static double saturation(struct ig_scheduler *s, struct candidates *c)
{
	for (size_t i = 0; i < c->n; i++)
		c->m[i].waiting += c->se[i].inflight_requests;
	double v = ig_scheduler_saturation(s, c->se, c->n);
	for (size_t i = 0; i < c->n; i++)
		c->m[i].waiting -= c->se[i].inflight_requests;
	return v;
}

/* Session affinity: keep the session's endpoint first while its load stays
 * within --session-slack requests of the best candidate's. */
static void apply_session(struct proxy_req *p, struct candidates *c)
{
	if (!p->session.len || !p->nranked)
		return;
	uint64_t key = ig_session_lookup(p->session);
	if (!key)
		return;
	int64_t best = INT64_MAX, mine = -1;
	size_t at = SIZE_MAX;
	for (size_t i = 0; i < c->n; i++) {
		int64_t load = c->m[i].waiting + c->se[i].inflight_requests;
		if (load < best)
			best = load;
		if (c->eps[i]->key == key)
			mine = load;
	}
	for (size_t r = 0; r < p->nranked; r++)
		if (p->ranked[r]->key == key)
			at = r;
	if (at == SIZE_MAX || mine < 0 || (double)mine > (double)best + p->w->gw->opt.session_slack)
		return;
	struct ig_endpoint *ep = p->ranked[at];
	memmove(&p->ranked[1], &p->ranked[0], at * sizeof p->ranked[0]);
	p->ranked[0] = ep;
}

/* Runs admission and the picker once per request. Returns 0 with the
 * ranked endpoints in p->ranked, 1 when the request must wait in the
 * queue (flow control), or answers the error itself and returns -1. */
static int schedule(struct proxy_req *p, bool from_queue)
{
	struct candidates c;
	struct ig_scheduler *sched = p->pool->sched->s;
	uint64_t t0 = ig_now_ns();
	if (candidates_load(&c, p->pool, t0) < 0) {
		candidates_free(&c);
		fail_request(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	if (c.n == 0) {
		candidates_free(&c);
		fail_request(p, 503, "service_unavailable", NULL,
			     "no ready endpoints in the InferencePool");
		return -1;
	}
	bool flow = p->snap->flow_control || p->w->gw->opt.flow_control;
	if (flow || p->priority < 0) {
		double sat = saturation(sched, &c);
		if (sat >= 1.0 && flow && !from_queue) {
			candidates_free(&c);
			return 1;
		}
		if (sat >= 1.0 && p->priority < 0 && !flow) {
			candidates_free(&c);
			fail_request(p, 429, "rate_limit_exceeded", "resource_exhausted",
				     "system saturated, sheddable request dropped");
			return -1;
		}
	}
	struct ig_sched_req req = {
		.model = ig_buf_str(&p->model),
		.target_model = ig_buf_str(&p->target),
		.critical = p->critical,
		.priority = p->priority,
		.prefix_input = p->prefix_input,
		.test_endpoints = p->test_endpoints,
		.prompt_tokens = p->prefix_input.len / 4,
	};
	size_t ranked[c.n];
	p->res.ranked = ranked;
	p->res.scores = NULL;
	int rc = ig_schedule(sched, &req, c.se, c.n, ig_rng_thread(), &p->res);
	p->res.ranked = NULL;
	if (rc < 0 || p->res.nranked == 0) {
		candidates_free(&c);
		fail_request(p, 429, "rate_limit_exceeded", "resource_exhausted",
			     "dropping request due to limited backend resources");
		return -1;
	}
	p->nranked = p->res.nranked < MAX_RANKED ? p->res.nranked : MAX_RANKED;
	for (size_t i = 0; i < p->nranked; i++)
		p->ranked[i] = c.eps[ranked[i]];
	apply_session(p, &c);
	candidates_free(&c);
	ig_gw_metrics_scheduler((double)(ig_now_ns() - t0) / 1e9);
	return 0;
}

static void on_backend_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	on_timeout(loop, t);
}

/* Sends the request to the next endpoint of the ranking: the first on the
 * first attempt, the next one in order after a refused connection. */
static void attempt(struct proxy_req *p)
{
	struct ig_worker *w = p->w;
	int max = w->gw->opt.max_attempts;
	if (max > MAX_ATTEMPTS)
		max = MAX_ATTEMPTS;
	for (;;) {
		if (p->ntried >= max || (size_t)p->ntried >= p->nranked) {
			fail_request(p, 502, "bad_gateway", NULL,
				     "no model server could be reached");
			return;
		}
		struct ig_endpoint *ep = p->ranked[p->ntried++];
		p->ep = ep;
		atomic_fetch_add_explicit(&ep->inflight, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ep->requests_total, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ep->pending_requests, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ep->pending_tokens, (long)(p->prefix_input.len / 4),
					  memory_order_relaxed);
		bool reused;
		p->up = ig_worker_upstream(w, ep, &reused);
		if (!p->up) {
			release_endpoint(p);
			continue;
		}
		if (p->rule && p->rule->timeout_backend_ms)
			ig_timer_start(&w->loop, &p->backend_timer, p->rule->timeout_backend_ms,
				       on_backend_timeout, p);
		/* The Host line names the endpoint on every attempt. */
		ig_buf_reset(&p->wire);
		int rc = ig_buf_append_str(&p->wire, ig_buf_str(&p->head));
		rc |= ig_buf_append_cstrs(&p->wire, "Host: ", ep->addr, "\r\n\r\n", (char *)NULL);
		if (rc) {
			fail_request(p, 500, "server_error", NULL, "out of memory");
			return;
		}
		bool is_head = ig_str_eq_cstr(p->ex->req.method, "HEAD");
		const struct ig_str parts[] = {ig_buf_str(&p->wire), p->body_pre,
					       ig_buf_str(&p->model_json), p->body_post};
		if (ig_http_client_sendv(p->up, parts, 4, is_head, &upstream_cbs, p) < 0) {
			ig_http_client_close(p->up);
			p->up = NULL;
			release_endpoint(p);
			continue;
		}
		return;
	}
}

/* ---- flow control: requests waiting for the pool to have room ---- */

static void queue_tick(struct ig_loop *loop, struct ig_timer *t);

static struct ig_flowq *worker_queue(struct ig_worker *w, const struct ig_snapshot *snap)
{
	if (w->queue)
		return w->queue;
	struct ig_flowq_limits global = {.max_requests = w->gw->opt.queue_capacity,
					 .max_bytes = snap->flow.max_bytes};
	if (snap->flow.max_requests)
		global.max_requests = snap->flow.max_requests;
	struct ig_flowq_band_limits bands[IG_FLOW_MAX_BANDS];
	for (size_t i = 0; i < snap->flow.nbands; i++)
		bands[i] = (struct ig_flowq_band_limits){
			.priority = snap->flow.bands[i].priority,
			.limits = {snap->flow.bands[i].max_requests, snap->flow.bands[i].max_bytes}};
	struct ig_flowq_limits band_default = {0};
	w->queue = ig_flowq_new(&global, bands, snap->flow.nbands, &band_default);
	return w->queue;
}

static void dispatch_queued(struct proxy_req *p)
{
	p->queued = false;
	int rc = schedule(p, true);
	if (rc == 0)
		attempt(p);
}

static void queue_tick(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_worker *w = t->data;
	if (!w->queue)
		return;
	struct proxy_req *p;
	while ((p = ig_flowq_pop_expired(w->queue, ig_now_ns())) != NULL) {
		p->queued = false;
		fail_request(p, 503, "service_unavailable", NULL,
			     "timed out waiting in the gateway queue for a model server");
	}
	/* Highest priority first; the head waits while its pool is saturated
	 * (head-of-line blocking, as GIE's dispatcher does). It is looked at
	 * in place, so waiting does not reorder the queue. */
	while ((p = ig_flowq_peek(w->queue)) != NULL) {
		struct candidates c;
		if (candidates_load(&c, p->pool, ig_now_ns()) == 0 && c.n > 0) {
			double sat = saturation(p->pool->sched->s, &c);
			candidates_free(&c);
			if (sat >= 1.0)
				break;
		} else {
			candidates_free(&c); /* dispatch_queued answers the error */
		}
		ig_flowq_pop(w->queue);
		dispatch_queued(p);
	}
	if (ig_flowq_len(w->queue))
		ig_timer_start(loop, t, 5, queue_tick, w);
}

static int enqueue(struct proxy_req *p)
{
	struct ig_worker *w = p->w;
	struct ig_flowq *q = worker_queue(w, p->snap);
	if (!q)
		return -ENOMEM;
	uint64_t ttl = p->snap->flow.default_request_ttl_ms ? p->snap->flow.default_request_ttl_ms
							      : w->gw->opt.queue_timeout_ms;
	p->qdeadline = ig_now_ns() + ttl * 1000000u;
	memset(&p->qitem, 0, sizeof p->qitem);
	int rc = ig_flowq_push(q, &p->qitem, p, ig_buf_str(&p->flow_id), p->priority, p->body_len,
			       p->qdeadline);
	if (rc < 0)
		return rc;
	p->queued = true;
	if (!ig_timer_armed(&w->queue_timer))
		ig_timer_start(&w->loop, &w->queue_timer, 5, queue_tick, w);
	return 0;
}

/* ---- the request ---- */

static bool skip_request_header(struct ig_str name)
{
	return hop_by_hop(name) || ig_str_ieq_cstr(name, "host") || ig_str_ieq_cstr(name, "expect");
}

static void uuid4(char out[37])
{
	char hex[33];
	ig_rng_hex128(ig_rng_thread(), hex);
	hex[12] = '4';
	hex[16] = "89ab"[hex[16] % 4];
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static int build_head(struct proxy_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_buf *h = &p->head;
	int rc = ig_buf_append_str(h, r->method);
	rc |= ig_buf_append(h, " ", 1);
	rc |= ig_buf_append_str(h, r->target);
	rc |= ig_buf_append_cstr(h, " HTTP/1.1\r\n");
	bool have_id = false;
	const struct ig_http_header *xff = NULL;
	for (size_t i = 0; i < r->num_headers; i++) {
		const struct ig_http_header *hd = &r->headers[i];
		if (skip_request_header(hd->name))
			continue;
		if (ig_str_ieq_cstr(hd->name, "x-forwarded-for")) {
			xff = hd;
			continue;
		}
		have_id |= ig_str_ieq_cstr(hd->name, "x-request-id");
		rc |= ig_buf_append_str(h, hd->name);
		rc |= ig_buf_append(h, ": ", 2);
		rc |= ig_buf_append_str(h, hd->value);
		rc |= ig_buf_append(h, "\r\n", 2);
	}
	/* Like Envoy, give every request an id; vLLM uses it in its answer. */
	if (!have_id) {
		char id[37];
		uuid4(id);
		rc |= ig_buf_append_cstrs(h, "x-request-id: ", id, "\r\n", (char *)NULL);
	}
	struct ig_str peer = p->ex->peer;
	const char *colon = memrchr(peer.ptr, ':', peer.len);
	if (colon)
		peer.len = (size_t)(colon - peer.ptr);
	if (xff)
		rc |= ig_buf_printf(h, "X-Forwarded-For: %.*s, %.*s\r\n", IG_STR_FMT(xff->value),
				    IG_STR_FMT(peer));
	else {
		rc |= ig_buf_append_cstr(h, "X-Forwarded-For: ");
		rc |= ig_buf_append_str(h, peer);
		rc |= ig_buf_append(h, "\r\n", 2);
	}
	if (p->body_len || ig_str_eq_cstr(r->method, "POST") || ig_str_eq_cstr(r->method, "PUT")) {
		rc |= ig_buf_append_cstr(h, "Content-Length: ");
		rc |= ig_buf_append_u64(h, p->body_len);
		rc |= ig_buf_append(h, "\r\n", 2);
	}
	return rc ? -1 : 0;
}

/* Reads `model`, resolves it, draws the target and splices the body.
 * Returns 0, or answers the error itself and returns -1. */
static int resolve_model(struct proxy_req *p)
{
	struct ig_buf *in = &p->ex->body;
	struct ig_json_value root, mv;
	if (ig_json_parse(in->ptr, in->len, &root) < 0 || root.type != IG_JSON_OBJECT) {
		fail_request(p, 400, "invalid_request_error", NULL,
			     "the request body is not a JSON object");
		return -1;
	}
	if (ig_json_get(root, "model", &mv) < 0 || mv.type != IG_JSON_STRING) {
		fail_request(p, 400, "invalid_request_error", NULL,
			     "model not found in request: the body needs a string \"model\"");
		return -1;
	}
	ig_buf_init(&p->model, 1024);
	if (ig_json_string(mv, &p->model) < 0) {
		fail_request(p, 400, "invalid_request_error", NULL, "model name too long");
		return -1;
	}
	const struct ig_model *m = ig_config_find_model(p->snap->cfg, p->pool->pool, p->model.ptr,
							p->model.len);
	if (!m) {
		char msg[600];
		snprintf(msg, sizeof msg, "The model `%.*s` does not exist.",
			 (int)(p->model.len > 400 ? 400 : p->model.len), p->model.ptr);
		p->status = 404;
		ig_http_respond_error(p->ex, 404, "invalid_request_error", "model_not_found", "%s", msg);
		finish(p);
		return -1;
	}
	p->critical = m->criticality == IG_CRIT_CRITICAL;
	/* Outside the decision-tree profile only a negative priority makes a
	 * request sheddable; an InferenceModel marked Sheddable counts as -1. */
	p->priority = m->criticality == IG_CRIT_SHEDDABLE ? -1 : 0;
	/* What the prefix-cache index hashes: the prompt text of a completion,
	 * the messages of a chat (their JSON as sent). */
	struct ig_json_value pv;
	if ((ig_json_get(root, "prompt", &pv) == 0 && pv.type == IG_JSON_STRING) ||
	    (ig_json_get(root, "messages", &pv) == 0 && pv.type == IG_JSON_ARRAY))
		p->prefix_input = pv.raw;
	else if (ig_json_get(root, "prompt", &pv) == 0)
		p->prefix_input = pv.raw;
	const char *target = m->model_name;
	if (m->ntargets) {
		int32_t weights[m->ntargets];
		for (size_t i = 0; i < m->ntargets; i++)
			weights[i] = m->targets[i].weight;
		size_t k = ig_sched_weighted_draw(weights, m->ntargets, m->targets[0].has_weight,
						  ig_rng_thread());
		target = m->targets[k].name;
	}
	ig_buf_append_cstr(&p->target, target);
	/* Splice: everything but the model value stays byte-identical. */
	if (ig_str_eq_cstr(ig_buf_str(&p->model), target)) {
		p->body_pre = (struct ig_str){in->ptr, in->len};
	} else {
		size_t off = (size_t)(mv.raw.ptr - in->ptr);
		p->body_pre = (struct ig_str){in->ptr, off};
		if (ig_json_write_string(&p->model_json, target, strlen(target)) < 0) {
			fail_request(p, 500, "server_error", NULL, "out of memory");
			return -1;
		}
		p->body_post = (struct ig_str){mv.raw.ptr + mv.raw.len, in->len - off - mv.raw.len};
	}
	p->body_len = p->body_pre.len + p->model_json.len + p->body_post.len;
	return 0;
}

static bool host_matches(const char *pattern, struct ig_str host)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		struct ig_str suffix = ig_str_from(pattern + 1);
		return host.len > suffix.len &&
		       ig_str_ieq((struct ig_str){host.ptr + host.len - suffix.len, suffix.len},
				  suffix);
	}
	return ig_str_ieq_cstr(host, pattern);
}

/* The listener of this port whose hostname fits the Host header best:
 * exact, then the longest wildcard, then one without a hostname. */
static const struct ig_listener_rt *pick_listener(const struct ig_port_rt *port, struct ig_str host)
{
	const struct ig_listener_rt *best = NULL;
	size_t best_score = 0;
	for (size_t i = 0; i < port->nlisteners; i++) {
		const char *hn = port->listeners[i].listener->hostname;
		size_t score;
		if (!hn)
			score = 1;
		else if (!host_matches(hn, host))
			continue;
		else
			score = hn[0] == '*' ? 2 + strlen(hn) : 100000;
		if (score > best_score) {
			best = &port->listeners[i];
			best_score = score;
		}
	}
	return best;
}

static struct ig_str header(const struct ig_http_request *r, const char *name)
{
	const struct ig_http_header *h = ig_http_find_header(r->headers, r->num_headers, name);
	return h ? h->value : (struct ig_str){"", 0};
}

/* Priority (InferenceObjective named by x-gateway-inference-objective),
 * fairness id, session and the test endpoint header. */
static int request_features(struct proxy_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str obj = header(r, "x-gateway-inference-objective");
	if (obj.len) {
		const struct ig_objective *o = ig_config_find_objective(
			p->snap->cfg, p->pool->pool->meta.ns, obj.ptr, obj.len);
		if (o)
			p->priority = o->has_priority ? o->priority : 0;
	}
	struct ig_str flow = header(r, "x-gateway-inference-fairness-id");
	ig_buf_init(&p->flow_id, IG_FLOWQ_MAX_FLOW_ID);
	if (ig_buf_append_str(&p->flow_id, flow.len ? flow : IG_STR("default-flow")) < 0)
		ig_buf_append_cstr(&p->flow_id, "default-flow");
	p->session = header(r, p->w->gw->opt.session_header);
	p->test_endpoints = header(r, "test-epp-endpoint-selection");
	return 0;
}

/* Every pool that the routes of this listener reach. */
static void listener_pools(struct proxy_req *p, const struct ig_listener_rt *li,
			   const struct ig_pool_rt **out, size_t *n, size_t max)
{
	const struct ig_config *cfg = p->snap->cfg;
	*n = 0;
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct ig_httproute *rt = &cfg->routes[r];
		bool attached = false;
		for (size_t k = 0; k < rt->nparents; k++) {
			const struct ig_parent_ref *pr = &rt->parents[k];
			attached |= strcmp(pr->name, li->gw->meta.name) == 0 &&
				    strcmp(pr->ns, li->gw->meta.ns) == 0 &&
				    (!pr->section_name || !strcmp(pr->section_name, li->listener->name)) &&
				    (!pr->port || pr->port == li->listener->port);
		}
		for (size_t i = 0; attached && i < rt->nrules; i++)
			for (size_t b = 0; b < rt->rules[i].nbackends; b++) {
				const struct ig_backend_ref *be = &rt->rules[i].backends[b];
				if (strcmp(be->kind, "InferencePool") != 0)
					continue;
				const struct ig_pool_rt *pool = ig_snapshot_pool(p->snap, be->ns, be->name);
				bool dup = !pool;
				for (size_t j = 0; j < *n && !dup; j++)
					dup = out[j] == pool;
				if (!dup && *n < max)
					out[(*n)++] = pool;
			}
	}
}

/* GET /v1/models on a listener: every model its routes can serve, across
 * pools, in OpenAI's list format. */
static void answer_models(struct proxy_req *p, const struct ig_listener_rt *li)
{
	const struct ig_pool_rt *pools[64];
	size_t npools;
	listener_pools(p, li, pools, &npools, 64);
	const struct ig_config *cfg = p->snap->cfg;
	struct ig_buf b = {0};
	long created = (long)ig_wall_seconds();
	ig_buf_append_cstr(&b, "{\"object\":\"list\",\"data\":[");
	bool first = true;
	for (size_t m = 0; m < cfg->nmodels; m++) {
		const struct ig_model *im = &cfg->models[m];
		if (!im->accepted)
			continue;
		bool served = false;
		for (size_t k = 0; k < npools && !served; k++)
			served = !strcmp(im->pool_name, pools[k]->pool->meta.name) &&
				 !strcmp(im->meta.ns, pools[k]->pool->meta.ns);
		bool dup = false;
		for (size_t j = 0; j < m && !dup; j++)
			dup = cfg->models[j].accepted && !strcmp(cfg->models[j].model_name, im->model_name);
		if (!served || dup)
			continue;
		if (!first)
			ig_buf_append_cstr(&b, ",");
		first = false;
		ig_buf_append_cstr(&b, "{\"id\":");
		ig_json_write_string(&b, im->model_name, strlen(im->model_name));
		ig_buf_printf(&b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"infergate\",\"root\":",
			      created);
		ig_json_write_string(&b, im->model_name, strlen(im->model_name));
		ig_buf_append_cstr(&b, ",\"parent\":null}");
	}
	ig_buf_append_cstr(&b, "]}");
	p->status = 200;
	ig_http_respond(p->ex, 200, "application/json", b.ptr, b.len, NULL, 0);
	ig_buf_free(&b);
	finish(p);
}

void ig_proxy_handle(struct ig_http_exchange *ex, void *ctx)
{
	struct ig_listen_slot *slot = ctx;
	struct ig_worker *w = slot->worker;
	struct proxy_req *p = calloc(1, sizeof *p);
	if (!p) {
		ig_http_respond_error(ex, 500, "server_error", NULL, "out of memory");
		return;
	}
	w->active++;
	p->ex = ex;
	p->start_ns = ex->start_ns;
	p->w = w;
	p->snap = ig_snapshot_ref(w->snap);
	ex->user = p;
	ex->on_abort = on_client_abort;
	ex->on_writable = on_client_writable;

	struct ig_str host = {0};
	const struct ig_http_header *hh = ig_http_find_header(ex->req.headers, ex->req.num_headers,
							       "host");
	if (hh) {
		host = hh->value;
		const char *colon = memrchr(host.ptr, ':', host.len);
		if (colon && host.len && host.ptr[0] != '[')
			host.len = (size_t)(colon - host.ptr);
	}
	const struct ig_port_rt *port = ig_snapshot_port(p->snap, slot->port);
	const struct ig_listener_rt *li = port ? pick_listener(port, host) : NULL;
	struct ig_route_request rr = {
		.method = ex->req.method, .path = ex->req.path, .query = ex->req.query,
		.host = host, .headers = ex->req.headers, .nheaders = ex->req.num_headers,
	};
	struct ig_route_result res;
	if (!li || ig_routes_match(li->routes, &rr, &res) < 0) {
		fail_request(p, 404, "not_found_error", NULL, "no route matches this request");
		return;
	}
	p->rule = res.rule;
	const struct ig_backend_ref *be = ig_route_pick_backend(res.rule, ig_rng_thread());
	if (!be) {
		fail_request(p, 500, "server_error", NULL, "the matching route has no backend");
		return;
	}
	if (strcmp(be->kind, "InferencePool") != 0) {
		fail_request(p, 500, "server_error", NULL,
			     "backends of this kind are not supported: only InferencePool");
		return;
	}
	p->pool = ig_snapshot_pool(p->snap, be->ns, be->name);
	if (!p->pool) {
		fail_request(p, 500, "server_error", NULL, "the route's InferencePool does not exist");
		return;
	}
	if (ig_str_eq_cstr(ex->req.path, "/v1/models") &&
	    (ig_str_eq_cstr(ex->req.method, "GET") || ig_str_eq_cstr(ex->req.method, "HEAD"))) {
		answer_models(p, li);
		return;
	}
	if (resolve_model(p) < 0)
		return;
	if (request_features(p) < 0)
		return;
	if (build_head(p) < 0) {
		fail_request(p, 500, "server_error", NULL, "out of memory");
		return;
	}
	if (p->rule->timeout_request_ms)
		ig_timer_start(&w->loop, &p->req_timer, p->rule->timeout_request_ms, on_timeout, p);
	int rc = schedule(p, false);
	if (rc == 1 && enqueue(p) < 0) {
		fail_request(p, 429, "rate_limit_exceeded", "queue_full",
			     "the pool is saturated and the gateway queue is full");
		return;
	}
	if (rc == 0)
		attempt(p);
}
