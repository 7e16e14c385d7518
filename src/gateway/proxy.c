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
#include "sched/sched.h"

#define MAX_ATTEMPTS 8
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
	struct ig_buf body; /* the body sent upstream (spliced) */
	struct ig_buf head; /* the upstream request head */
	struct ig_buf wire; /* head + body for one attempt */
	struct ig_endpoint *ep;
	struct ig_http_client *up;
	struct ig_endpoint *tried[MAX_ATTEMPTS];
	int ntried;
	struct ig_timer req_timer, backend_timer;
	bool resp_started, sse;
	int status;
	size_t resp_bytes;
	struct ig_buf scan; /* JSON body or current SSE line, for usage */
	long in_tokens, out_tokens;
	uint64_t start_ns; /* copied: the exchange may be gone when we finish */
	bool recorded;
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
			      p->body.len, p->resp_bytes, p->in_tokens, p->out_tokens);
}

static void finish(struct proxy_req *p)
{
	struct ig_worker *w = p->w;
	ig_timer_stop(&w->loop, &p->req_timer);
	ig_timer_stop(&w->loop, &p->backend_timer);
	release_endpoint(p);
	record_metrics(p);
	ig_buf_free(&p->model);
	ig_buf_free(&p->target);
	ig_buf_free(&p->body);
	ig_buf_free(&p->head);
	ig_buf_free(&p->wire);
	ig_buf_free(&p->scan);
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
	if (!p->sse && p->scan.len)
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

static bool tried(const struct proxy_req *p, const struct ig_endpoint *ep)
{
	for (int i = 0; i < p->ntried; i++)
		if (p->tried[i] == ep)
			return true;
	return false;
}

/* Runs the picker over the endpoints not tried yet. Returns the endpoint,
 * or NULL with *shed set when the picker refused (429). */
static struct ig_endpoint *pick(struct proxy_req *p, bool *shed)
{
	const struct ig_pool_rt *pool = p->pool;
	size_t n = 0;
	size_t cap = pool->neps ? pool->neps : 1;
	struct ig_endpoint *cand[cap];
	/* Metrics copies live on the stack for ordinary pools. */
	struct ig_endpoint_metrics small[16];
	struct ig_endpoint_metrics *m = cap <= 16 ? small : malloc(cap * sizeof *m);
	const struct ig_endpoint_metrics *mp[cap];
	*shed = false;
	if (!m)
		return NULL;
	for (size_t i = 0; i < pool->neps; i++) {
		if (tried(p, pool->eps[i]))
			continue;
		cand[n] = pool->eps[i];
		ig_endpoint_read_metrics(pool->eps[i], &m[n]);
		mp[n] = &m[n];
		n++;
	}
	struct ig_endpoint *ep = NULL;
	if (n) {
		struct ig_sched_request req = {
			.model = ig_buf_str(&p->model),
			.target_model = ig_buf_str(&p->target),
			.critical = p->critical,
		};
		size_t chosen;
		if (ig_sched_decision_tree(&req, mp, n, ig_rng_thread(), &chosen) == 0)
			ep = cand[chosen];
		else
			*shed = true;
	}
	if (m != small)
		free(m);
	return ep;
}

static void on_backend_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	on_timeout(loop, t);
}

static void attempt(struct proxy_req *p)
{
	struct ig_worker *w = p->w;
	int max = w->gw->opt.max_attempts;
	if (max > MAX_ATTEMPTS)
		max = MAX_ATTEMPTS;
	for (;;) {
		if (p->ntried >= max) {
			fail_request(p, 502, "bad_gateway", NULL,
				     "no model server could be reached");
			return;
		}
		bool shed;
		struct ig_endpoint *ep = pick(p, &shed);
		if (!ep) {
			if (p->ntried == 0 && p->pool->neps == 0)
				fail_request(p, 503, "service_unavailable", NULL,
					     "no ready endpoints in the InferencePool");
			else if (p->ntried == 0 && shed)
				fail_request(p, 429, "rate_limit_exceeded", "resource_exhausted",
					     "dropping request due to limited backend resources");
			else
				fail_request(p, 502, "bad_gateway", NULL,
					     "no model server could be reached");
			return;
		}
		p->tried[p->ntried++] = ep;
		p->ep = ep;
		atomic_fetch_add_explicit(&ep->inflight, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ep->requests_total, 1, memory_order_relaxed);
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
		rc |= ig_buf_printf(&p->wire, "Host: %s\r\n\r\n", ep->addr);
		rc |= ig_buf_append_str(&p->wire, ig_buf_str(&p->body));
		if (rc) {
			fail_request(p, 500, "server_error", NULL, "out of memory");
			return;
		}
		bool is_head = ig_str_eq_cstr(p->ex->req.method, "HEAD");
		if (ig_http_client_send(p->up, p->wire.ptr, p->wire.len, is_head, &upstream_cbs,
					p) < 0) {
			ig_http_client_close(p->up);
			p->up = NULL;
			release_endpoint(p);
			continue;
		}
		return;
	}
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
	int rc = ig_buf_printf(h, "%.*s %.*s HTTP/1.1\r\n", IG_STR_FMT(r->method),
			       IG_STR_FMT(r->target));
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
		rc |= ig_buf_printf(h, "x-request-id: %s\r\n", id);
	}
	struct ig_str peer = p->ex->peer;
	const char *colon = memrchr(peer.ptr, ':', peer.len);
	if (colon)
		peer.len = (size_t)(colon - peer.ptr);
	if (xff)
		rc |= ig_buf_printf(h, "X-Forwarded-For: %.*s, %.*s\r\n", IG_STR_FMT(xff->value),
				    IG_STR_FMT(peer));
	else
		rc |= ig_buf_printf(h, "X-Forwarded-For: %.*s\r\n", IG_STR_FMT(peer));
	if (p->body.len || ig_str_eq_cstr(r->method, "POST") || ig_str_eq_cstr(r->method, "PUT"))
		rc |= ig_buf_printf(h, "Content-Length: %zu\r\n", p->body.len);
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
		ig_http_respond_error(p->ex, 404, "NotFoundError", "model_not_found", "%s", msg);
		finish(p);
		return -1;
	}
	p->critical = m->criticality == IG_CRIT_CRITICAL;
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
		ig_buf_append(&p->body, in->ptr, in->len);
	} else {
		size_t off = (size_t)(mv.raw.ptr - in->ptr);
		ig_buf_append(&p->body, in->ptr, off);
		ig_json_write_string(&p->body, target, strlen(target));
		ig_buf_append(&p->body, mv.raw.ptr + mv.raw.len, in->len - off - mv.raw.len);
	}
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
	ig_buf_init(&p->body, 0);

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
	if (resolve_model(p) < 0)
		return;
	if (build_head(p) < 0) {
		fail_request(p, 500, "server_error", NULL, "out of memory");
		return;
	}
	if (p->rule->timeout_request_ms)
		ig_timer_start(&w->loop, &p->req_timer, p->rule->timeout_request_ms, on_timeout, p);
	attempt(p);
}
