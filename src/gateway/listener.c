/* The first stage of a request: the listener of its port whose hostname
 * fits the Host header, the HTTPRoute rule that matches it, the backendRef
 * drawn by weight and its InferencePool. GET /v1/models routed to a pool
 * of InferenceModels is answered here, with the InferenceModels of every
 * pool the listener's routes reach, and OPTIONS * too. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rand.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "json/canon.h"
#include "json/json.h"

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

/* A name with the root's trailing dot ("a.example.com.") is the same
 * host (RFC 1034 §3.1): it is matched without the dot, as the TLS server
 * name is (http/tls.c), so SNI and Host pick listeners alike. */
static struct ig_str without_root_dot(struct ig_str h)
{
	if (h.len > 1 && h.ptr[h.len - 1] == '.')
		h.len--;
	return h;
}

/* The listener of this port whose hostname fits the Host header best:
 * exact, then the longest wildcard, then one without a hostname. */
static const struct ig_listener_rt *pick_listener(const struct ig_port_rt *port, struct ig_str host)
{
	host = without_root_dot(host);
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

/* Every pool that the routes of this listener reach. */
static void listener_pools(struct ig_req *p, const struct ig_listener_rt *li,
			   const struct ig_pool_rt **out, size_t *n, size_t max)
{
	const struct ig_config *cfg = p->snap->cfg;
	*n = 0;
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct ig_httproute *rt = &cfg->routes[r];
		bool attached = ig_route_attaches(cfg, rt, li->gw, li->listener);
		for (size_t i = 0; attached && i < rt->nrules; i++)
			for (size_t b = 0; b < rt->rules[i].nbackends; b++) {
				const struct ig_backend_ref *be = &rt->rules[i].backends[b];
				if (strcmp(be->kind, "InferencePool") != 0)
					continue;
				const struct ig_pool_rt *pool =
				    ig_snapshot_pool(p->snap, be->ns, be->name);
				bool dup = !pool;
				for (size_t j = 0; j < *n && !dup; j++)
					dup = out[j] == pool;
				if (!dup && *n < max)
					out[(*n)++] = pool;
			}
	}
}

/* GET /v1/models routed to a pool of InferenceModels: every
 * InferenceModel of the pools the listener's routes reach, in OpenAI's
 * list format (a v1 pool has no list: the request goes to a pod). */
static void answer_models(struct ig_req *p, const struct ig_listener_rt *li)
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
			served =
			    !strcmp(im->pool_name, pools[k]->pool->meta.name) &&
			    !strcmp(im->meta.ns, pools[k]->pool->meta.ns) &&
			    (!im->pool_group || !strcmp(im->pool_group, pools[k]->pool->group));
		bool dup = false;
		for (size_t j = 0; j < m && !dup; j++)
			dup = cfg->models[j].accepted &&
			      !strcmp(cfg->models[j].model_name, im->model_name);
		if (!served || dup)
			continue;
		if (!first)
			ig_buf_append_cstr(&b, ",");
		first = false;
		ig_buf_append_cstr(&b, "{\"id\":");
		ig_json_write_string(&b, im->model_name, strlen(im->model_name));
		ig_buf_printf(
		    &b,
		    ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"infergate\",\"root\":",
		    created);
		ig_json_write_string(&b, im->model_name, strlen(im->model_name));
		ig_buf_append_cstr(&b, ",\"parent\":null}");
	}
	ig_buf_append_cstr(&b, "]}");
	p->status = 200;
	ig_http_respond(p->ex, 200, "application/json", b.ptr, b.len, NULL, 0);
	ig_buf_free(&b);
	ig_req_finish(p);
}

static void on_client_abort(struct ig_http_exchange *ex)
{
	struct ig_req *p = ex->user;
	if (ex->refused_status) {
		/* The server refuses the request's streamed body (a malformed
		 * chunked coding, trailers over the limits) and answers the
		 * client itself. */
		p->status = ex->refused_status;
		p->reason = ex->refused_reason;
	} else if (p->w->stopping) {
		/* The gateway closes its connections as it stops (a second
		 * signal, or a request the drain's end did not reach): nothing
		 * more can be written, but the log names who ended it. */
		if (!p->resp_started)
			p->status = 503;
		p->reason = p->resp_started
				? "the gateway stopped during the response: the response was cut"
				: "the gateway stopped before the model server answered";
	}
	if (p->up) {
		ig_http_client_close(p->up);
		p->up = NULL;
	}
	if (!p->status)
		p->status = 499;
	if (!p->reason)
		p->reason = "the client closed the connection before the response ended";
	ig_req_finish(p);
}

static void on_client_writable(struct ig_http_exchange *ex)
{
	struct ig_req *p = ex->user;
	if (p->up)
		ig_http_client_pause(p->up, false);
}

/* The Host header without its port and trailing dot. An HTTP/1.0
 * request may have none: over TLS the handshake's server name then says
 * which host the client meant (it chose the certificate and listener). */
static struct ig_str request_host(const struct ig_http_exchange *ex)
{
	const struct ig_http_request *r = &ex->req;
	struct ig_str host = {0};
	const struct ig_http_header *hh = ig_http_find_header(r->headers, r->num_headers, "host");
	if (hh) {
		host = hh->value;
		const char *colon = memrchr(host.ptr, ':', host.len);
		if (colon && host.len && host.ptr[0] != '[')
			host.len = (size_t)(colon - host.ptr);
	} else if (ex->tls) {
		host = ex->sni;
	}
	return without_root_dot(host);
}

/* What route matching reads of a request. */
static struct ig_route_request route_request(const struct ig_http_request *r, struct ig_str host)
{
	return (struct ig_route_request){.method = r->method,
					 .path = r->path,
					 .query = r->query,
					 .host = host,
					 .headers = r->headers,
					 .nheaders = r->num_headers};
}

/* An ExtensionRef filter among fs (the rule's, or the drawn backendRef's)
 * cannot be resolved, since infergate has no filter extensions: the
 * request it would process gets 500 rather than going on without it
 * (Gateway API, HTTPRouteFilter.extensionRef). True when answered. */
static bool unresolved_extension(struct ig_req *p, const struct ig_filter *fs, size_t n)
{
	const struct ig_filter *f = ig_filters_extension_ref(fs, n);
	if (!f)
		return false;
	char msg[640];
	snprintf(msg, sizeof msg,
		 "the route's ExtensionRef filter %s \"%s\" cannot be resolved: infergate has no "
		 "filter extensions",
		 f->u.ext.kind, f->u.ext.name);
	ig_req_fail(p, 500, "server_error", NULL, msg);
	return true;
}

/* Finds the pool of the request. 0; 1 when a RequestRedirect is to
 * answer; 2 when a CORS filter answered a preflight; or -1, the error
 * answered. */
static int route(struct ig_req *p, int port_num, const struct ig_listener_rt **li_out)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str host = request_host(p->ex);
	const struct ig_port_rt *port = ig_snapshot_port(p->snap, port_num);
	const struct ig_listener_rt *li = port ? pick_listener(port, host) : NULL;
	struct ig_route_request rr = route_request(r, host);
	/* HTTPS: the server name of the handshake chose the certificate, and
	 * with the same rule the listener; a Host that another listener of
	 * this port owns is misdirected (Gateway API, 421). */
	if (li && p->ex->tls && pick_listener(port, p->ex->sni) != li) {
		ig_req_fail(p, 421, "misdirected_request", NULL,
			    "the Host header names a listener other than the TLS server name");
		return -1;
	}
	struct ig_route_result res;
	if (!li || ig_routes_match(li->routes, (size_t)p->w->id, &rr, &res) < 0) {
		/* Body-based routing found no model in a body that is not
		 * JSON: GIE's body-based router refuses such a body (400,
		 * "failed to parse request body") rather than route it. An
		 * empty one (chunked, or an HTTP/2 DATA frame ending the
		 * stream) is no body to it. */
		if (li && p->body_state < 0 && p->ex->body.len > 0 &&
		    ig_routes_match_model(li->routes)) {
			ig_req_fail(p, 400, "invalid_request_error", NULL,
				    "failed to parse request body: not a JSON object, so no model "
				    "to route by");
			return -1;
		}
		ig_req_fail(p, 404, "not_found_error", NULL, "no route matches this request");
		return -1;
	}
	p->rule = res.rule;
	p->match = &res.rule->matches[res.match_index];
	p->listener = li;
	*li_out = li;
	if (unresolved_extension(p, res.rule->filters, res.rule->nfilters))
		return -1;
	if (ig_req_cors(p))
		return 2; /* a preflight, answered by the rule's CORS filter */
	if (ig_req_has_redirect(p))
		return 1; /* answered by the filter, with no backend */
	const struct ig_backend_ref *be = ig_route_pick_backend(res.rule, ig_rng_thread());
	if (!be) {
		ig_req_fail(p, 500, "server_error", NULL, "the matching route has no backend");
		return -1;
	}
	p->backend = be;
	if (unresolved_extension(p, be->filters, be->nfilters))
		return -1;
	if (ig_req_has_redirect(p))
		return 1; /* the drawn backendRef's RequestRedirect answers; none is reached */
	/* A backend the config could not resolve keeps its share of the
	 * traffic, and that share gets 500 (Gateway API). */
	static const char *const why[] = {
	    [IG_REF_NOT_FOUND] = "the route's backend does not exist",
	    [IG_REF_INVALID_KIND] = "the route's backend is of a kind infergate cannot route to",
	    [IG_REF_NOT_PERMITTED] =
		"the route's backend is in another namespace and no ReferenceGrant allows it",
	    [IG_REF_UNSUPPORTED_PROTOCOL] =
		"the route's backend port speaks an unsupported protocol",
	    [IG_REF_INVALID] = "the route's backend is invalid",
	};
	if (be->status != IG_REF_OK) {
		ig_req_fail(p, 500, "server_error", NULL,
			    (size_t)be->status < sizeof why / sizeof why[0] && why[be->status]
				? why[be->status]
				: "the route's backend is invalid");
		return -1;
	}
	if (ig_req_cors(p))
		return 2; /* the drawn backendRef's CORS filter answered */
	if (be->pool)
		p->pool = ig_snapshot_pool_of(p->snap, be->pool);
	else if (be->service)
		p->service = ig_snapshot_service(p->snap, be);
	if (!p->pool && !p->service) {
		ig_req_fail(p, 500, "server_error", NULL, "the route's backend does not exist");
		return -1;
	}
	if (ig_backend_tls_failed(p->service, p->listener ? p->listener->gw : NULL)) {
		ig_req_fail(
		    p, 500, "server_error", NULL,
		    "the route's backend needs TLS that its BackendTLSPolicy cannot set up");
		return -1;
	}
	return 0;
}

/* Body-based routing (GIE's BBR): the body's model becomes the request
 * header X-Gateway-Model-Name before HTTPRoute matching, so header matches
 * can pick a pool per model, and its base model (GIE v1.3-v1.5: the model
 * itself or the base of the LoRA adapter it names, by the ConfigMaps
 * labelled inference.networking.k8s.io/bbr-managed) the header
 * X-Gateway-Base-Model-Name, so one route can take a base model and all
 * its adapters. They replace those the client sent; one that is not known
 * is not sent (GIE's router sets it empty, which Envoy drops). They go
 * upstream like any other header. A model a header cannot carry (control
 * bytes) sets neither. */
static void body_based_routing(struct ig_req *p)
{
	struct ig_json_value mv = p->members[IG_BM_MODEL];
	/* An empty model is no model: the router sets nothing (GIE
	 * v1.4-v1.5). */
	if (p->body_state != 1 || mv.type != IG_JSON_STRING || mv.raw.len <= 2 ||
	    mv.raw.len > 1024 + 2)
		return;
	struct ig_http_exchange *ex = p->ex;
	char *val = ig_arena_alloc(ex->arena, mv.raw.len);
	if (!val)
		return;
	size_t n = ig_json_canonical_text(mv, val, mv.raw.len);
	if (ig_str_has_ctl((struct ig_str){val, n}))
		return;
	struct ig_http_request *r = &ex->req;
	struct ig_http_header *h = ig_arena_alloc(ex->arena, (r->num_headers + 2) * sizeof *h);
	if (!h)
		return;
	size_t k = 0;
	for (size_t i = 0; i < r->num_headers; i++)
		if (!ig_str_ieq_cstr(r->headers[i].name, "x-gateway-model-name") &&
		    !ig_str_ieq_cstr(r->headers[i].name, "x-gateway-base-model-name"))
			h[k++] = r->headers[i];
	h[k].name = IG_STR("X-Gateway-Model-Name");
	h[k++].value = (struct ig_str){val, n};
	const char *base = p->snap ? ig_config_base_model(p->snap->cfg, val, n) : NULL;
	if (base) {
		h[k].name = IG_STR("X-Gateway-Base-Model-Name");
		h[k++].value = (struct ig_str){base, strlen(base)};
	}
	r->headers = h;
	r->num_headers = k;
}

/* A request body other than a gRPC call's streams when it is larger than
 * this or its length is not announced: a smaller one is read whole, so
 * that a failure before its pod took it can still send it elsewhere. */
#define STREAM_MIN_BYTES ((int64_t)1 << 20)

/* Whether a rule's requests may stream their bodies: every backend a
 * Service (an InferencePool reads the body to pick), a gRPC call's one
 * that speaks HTTP/2, and no mirror (it would need the whole body). */
static bool rule_streams(const struct ig_route_rule *rule, bool grpc)
{
	if (!rule->nbackends || ig_filters_extension_ref(rule->filters, rule->nfilters))
		return false; /* an ExtensionRef's 500 goes after a body read whole */
	for (size_t i = 0; i < rule->nfilters; i++)
		if (rule->filters[i].type == IG_FILTER_REQUEST_MIRROR)
			return false;
	for (size_t b = 0; b < rule->nbackends; b++) {
		const struct ig_backend_ref *be = &rule->backends[b];
		if (be->status != IG_REF_OK || !be->service || (grpc && !be->h2c))
			return false;
		for (size_t i = 0; i < be->nfilters; i++)
			if (be->filters[i].type == IG_FILTER_REQUEST_MIRROR ||
			    be->filters[i].type == IG_FILTER_EXTENSION_REF)
				return false;
	}
	return true;
}

bool ig_proxy_stream_body(struct ig_http_exchange *ex, void *ctx)
{
	struct ig_listen_slot *slot = ctx;
	struct ig_worker *w = slot->worker;
	const struct ig_http_request *r = &ex->req;
	/* Most requests leave here, with no header scanned: an HTTP/1.1
	 * inference request is a small sized body. */
	bool grpc = ex->h2 && ig_req_is_grpc(r);
	if ((!grpc && ex->body_length >= 0 && ex->body_length <= STREAM_MIN_BYTES) || !w->snap ||
	    ig_http_is_websocket_upgrade(r))
		return false;
	struct ig_str host = request_host(ex);
	const struct ig_port_rt *port = ig_snapshot_port(w->snap, slot->port);
	const struct ig_listener_rt *li = port ? pick_listener(port, host) : NULL;
	/* Body-based routing may give the request another rule once its
	 * body is read: then it is read whole (a gRPC body names no model). */
	if (!li || (!grpc && ig_routes_match_model(li->routes)))
		return false;
	struct ig_route_request rr = route_request(r, host);
	struct ig_route_result res;
	return ig_routes_match(li->routes, (size_t)w->id, &rr, &res) == 0 &&
	       rule_streams(res.rule, grpc);
}

/* "OPTIONS *" asks about the server in general, not about a resource a
 * route could match (RFC 9110 §9.3.7): the gateway answers for itself,
 * 200 with the methods its routes pass on (CONNECT is not one), and no
 * pod hears of it. The server refuses "*" with any other method. */
static void answer_options_star(struct ig_req *p)
{
	static const struct ig_http_header allow = {
	    IG_STR("Allow"), IG_STR("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")};
	p->status = 200;
	ig_http_respond(p->ex, 200, NULL, "", 0, &allow, 1);
	ig_req_finish(p);
}

void ig_proxy_handle(struct ig_http_exchange *ex, void *ctx)
{
	struct ig_listen_slot *slot = ctx;
	struct ig_worker *w = slot->worker;
	struct ig_req *p = ig_arena_alloc(ex->arena, sizeof *p);
	if (!p) {
		ig_http_respond_error(ex, 500, "server_error", NULL, "out of memory");
		return;
	}
	memset(p, 0, offsetof(struct ig_req, res));
	ig_sched_result_clear(&p->res);
	ig_worker_request_begin(w, p);
	p->ex = ex;
	p->start_ns = ex->start_ns;
	p->w = w;
	p->snap = ig_worker_snap_take(w);
	p->resp_length = -1;
	ex->user = p;
	ex->on_abort = on_client_abort;
	ex->on_writable = on_client_writable;
	ig_req_trace_begin(p);
	if (ig_str_eq_cstr(ex->req.target, "*")) {
		answer_options_star(p);
		return;
	}

	/* A streamed body (ig_proxy_stream_body) is not here yet: it goes to
	 * a Service as it comes, unread. */
	p->streaming = ex->body_streaming;
	if (p->streaming) {
		/* A body that may end small (its length unknown, or a gRPC
		 * call's) is kept for another attempt; a larger one cannot be. */
		p->keeping = ex->body_length < 0 || (uint64_t)ex->body_length <= IG_REQ_REPLAY_MAX;
		ig_buf_init(&p->replay, IG_REQ_REPLAY_MAX);
	} else {
		ig_req_parse_body(p);
		body_based_routing(p);
	}
	const struct ig_listener_rt *li;
	int rc = route(p, slot->port, &li);
	if (rc < 0 || rc == 2)
		return;
	p->upgrade = ig_http_is_websocket_upgrade(&ex->req) &&
		     ig_backend_proto(p->pool, p->service) == IG_PROTO_HTTP1;
	if (rc == 1) {
		ig_req_redirect(p);
		return;
	}
	/* GET /v1/models is answered from the InferenceModels (GIE v0.2); a
	 * v1 pool has none, and the request goes to one of its model servers
	 * like any request without a body. */
	if (ig_str_eq_cstr(ex->req.path, "/v1/models") && p->pool &&
	    ig_pool_model_mode(p->snap->cfg, p->pool->pool) == IG_MODELS_INFERENCE_MODEL &&
	    (ig_str_eq_cstr(ex->req.method, "GET") || ig_str_eq_cstr(ex->req.method, "HEAD"))) {
		answer_models(p, li);
		return;
	}
	if (p->pool && p->pool->epp && p->pool->epp->naddrs) {
		ig_req_extpick(p); /* the pool's own picker decides */
		return;
	}
	if (p->pool && (p->pool->epp_missing || p->pool->epp) && p->pool->pool->v1 &&
	    p->snap->epp_required && p->pool->pool->failure_mode != IG_FAIL_OPEN) {
		/* GIE's conformance (InferencePoolInvalidEPPService, a
		 * FailClose pool): a pool whose picker cannot be found serves
		 * nothing. Under FailOpen the built-in picker serves it, as
		 * when the picker is unreachable (the status still says
		 * ResolvedRefs False). */
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    "the InferencePool's endpoint picker Service does not exist or has no "
			    "address");
		return;
	}
	if (ig_req_rewrite(p) < 0)
		return;
	ig_req_arm_timeout(p);
	if (ig_req_admit(p) == 0)
		ig_req_send(p);
}
