/* The third stage: admission and the picker. The pool's candidates are
 * read with what this gateway dispatched since their last scrape; a
 * sheddable request is refused (429) when the pool is saturated, or, with
 * flow control, any request waits in the worker's queue until the pool's
 * saturation is below its band's usage limit; then the scheduler ranks the
 * endpoints (the profile handler may pick the profile by a request header)
 * and session affinity may move the session's endpoint first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "gateway/candidates.h"
#include "gateway/metrics.h"
#include "gateway/request.h"
#include "gateway/sessions.h"
#include "http/parse.h"
#include "sched/picker.h"

/* Saturation as GIE's utilization detector computes it, but over metrics
 * that include what this gateway dispatched since the last scrape: a queue
 * that drains requests as fast as they come does not see a stale "idle". */
static double saturation(struct ig_scheduler *s, struct ig_candidates *c)
{
	for (size_t i = 0; i < c->n; i++)
		c->load[i].waiting += c->se[i].inflight_requests;
	double v = ig_scheduler_saturation(s, c->se, c->n);
	for (size_t i = 0; i < c->n; i++)
		c->load[i].waiting -= c->se[i].inflight_requests;
	return v;
}

/* Session affinity: keep the session's endpoint first while its load stays
 * within --session-slack requests of the best candidate's. */
static void apply_session(struct ig_req *p, struct ig_candidates *c)
{
	if (!p->session.len || !p->nranked)
		return;
	uint64_t key = ig_session_lookup(p->w->gw->sessions, p->session);
	if (!key)
		return;
	int64_t best = INT64_MAX, mine = -1;
	size_t at = SIZE_MAX;
	for (size_t i = 0; i < c->n; i++) {
		int64_t load = c->load[i].waiting + c->se[i].inflight_requests;
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

static struct ig_str req_header(const struct ig_req *p, const char *name)
{
	const struct ig_http_header *h =
	    ig_http_find_header(p->ex->req.headers, p->ex->req.num_headers, name);
	return h ? h->value : (struct ig_str){"", 0};
}

/* header-profile-handler named a profile the configuration lacks. llm-d
 * Router answers 429 there, for want of a way to say more; the request is
 * what is wrong, so this says 400. */
static void no_profile(struct ig_req *p, const char *header, struct ig_str value)
{
	char msg[256];
	snprintf(msg, sizeof msg, "the %s header names no scheduling profile: \"%.*s\"", header,
		 (int)(value.len > 64 ? 64 : value.len), value.ptr);
	ig_req_fail(p, 400, "invalid_request_error", NULL, msg);
}

/* The profile left no endpoint: 429, with GIE v0.2.0's words for a
 * request of an InferenceModel (the tree's drop) and GIE v1.5's otherwise
 * (requestcontrol/director.go wrapping the single profile handler's
 * error). */
static void no_endpoint(struct ig_req *p)
{
	char msg[192];
	const char *why = msg;
	if (p->resolved || !p->res.profile)
		why = "dropping request due to limited backend resources";
	else
		snprintf(msg, sizeof msg,
			 "failed to find target endpoint: failed to run scheduler profile '%.64s'",
			 p->res.profile);
	ig_req_fail(p, 429, "rate_limit_exceeded", "resource_exhausted", why);
}

/* Runs admission and the picker once. Returns 0 with the ranking in
 * p->ranked, 1 when the request must wait (flow control), or answers the
 * error itself and returns -1. */
/* Whether the subset hint names this endpoint: its "ip:port", or its ip
 * alone (any of its ports). */
static bool in_subset(const struct ig_req *p, const struct ig_endpoint *ep)
{
	struct ig_str addr = {ep->addr, ep->addr_len};
	const char *colon = memrchr(addr.ptr, ':', addr.len);
	struct ig_str ip = {addr.ptr, colon ? (size_t)(colon - addr.ptr) : addr.len};
	for (size_t i = 0; i < p->nsubset; i++)
		if (ig_str_eq(p->subset[i], addr) || ig_str_eq(p->subset[i], ip))
			return true;
	return false;
}

/* The identity of the request's pool's endpoint list for the worker's
 * candidate reads: its snapshot's generation (never reused) and its place
 * in the snapshot. 0 (not kept) past 2^24 pools. */
static uint64_t list_id(const struct ig_req *p)
{
	if (p->pool < p->snap->pools || p->pool >= p->snap->pools + p->snap->npools)
		return 0;
	size_t at = (size_t)(p->pool - p->snap->pools);
	if (at + 1 >= ((size_t)1 << 24))
		return 0;
	return (p->snap->generation << 24) | (at + 1);
}

/* Keeps the candidates the subset hint names, in order. */
static void restrict_to_subset(const struct ig_req *p, struct ig_candidates *c)
{
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (!in_subset(p, c->eps[i]))
			continue;
		if (k != i)
			ig_candidates_put(c, k, c->se[i], c->load[i], c->eps[i],
					  c->full ? &c->full[i] : NULL);
		k++;
	}
	c->n = k;
}

/* What the configuration's plugins read beyond the candidates' figures
 * (ig_scheduler_needs): each candidate's pod, from the pool's list, which
 * the candidates follow in order (a subsequence of it), and the requests
 * dispatched to each and not finished. */
static void add_needs(const struct ig_pool_rt *pool, struct ig_candidates *c, unsigned needs)
{
	size_t j = 0;
	for (size_t k = 0; k < c->n; k++) {
		if (needs & IG_SCHED_NEEDS_PODS) {
			size_t from = j;
			while (j < pool->neps && pool->eps[j] != c->eps[k])
				j++;
			if (j == pool->neps) /* not in order after all: look from the start */
				for (j = 0; j < from && pool->eps[j] != c->eps[k]; j++)
					;
			c->se[k].pod =
			    j < pool->neps && pool->eps[j] == c->eps[k] ? pool->ep_pods[j] : NULL;
		}
		if (needs & IG_SCHED_NEEDS_ACTIVE)
			c->se[k].active_requests = ig_endpoint_inflight(c->eps[k]);
	}
}

/* No body to route by (GIE v0.3+): any endpoint of the pool, the others in
 * a random order behind it for fallbacks. GIE v1.5 picks it as the
 * request headers come (HandleRequestHeaders, GetRandomEndpoint), from
 * every pod of the pool: no admission, no flow control, no subset hint.
 * The first places of a Fisher-Yates shuffle of the candidates (scratch
 * memory, ours to reorder) are a uniform draw of as many. */
static int pick_random(struct ig_req *p, struct ig_candidates *c)
{
	if (c->n == 0) {
		/* GIE's picker answers this with Internal (500); the gateway
		 * keeps its 503 for a pool without endpoints. */
		if (p->sink)
			ig_req_fail(p, 500, "server_error", NULL, "no pods available in datastore");
		else
			ig_req_fail(p, 503, "service_unavailable", NULL,
				    "no ready endpoints in the InferencePool");
		return -1;
	}
	p->nranked = c->n < IG_REQ_MAX_RANKED ? c->n : IG_REQ_MAX_RANKED;
	for (size_t i = 0; i < p->nranked; i++) {
		size_t j = i + (size_t)ig_rng_below(ig_rng_thread(), c->n - i);
		struct ig_endpoint *t = c->eps[j];
		c->eps[j] = c->eps[i];
		c->eps[i] = t;
		p->ranked[i] = t;
	}
	return 0;
}

static int schedule(struct ig_req *p, bool from_queue)
{
	struct ig_candidates c;
	struct ig_scheduler *sched = p->pool->sched->s;
	uint64_t t0 = ig_now_ns();
	bool adapters = ig_scheduler_reads_adapters(sched) && !p->random_endpoint;
	if (ig_candidates_read(&c, p->pool->eps, p->pool->neps, (size_t)p->w->id, adapters, t0,
			       list_id(p)) < 0 ||
	    ((p->has_subset || p->random_endpoint) && ig_candidates_own(&c) < 0)) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	if (p->random_endpoint)
		return pick_random(p, &c);
	if (p->has_subset)
		restrict_to_subset(p, &c);
	bool flow = p->snap->flow_control || p->w->gw->opt.flow_control;
	/* GIE v0.2.0's tree sheds non-critical requests by its own
	 * thresholds (inclusive ones: a queue of 5 and 80 % KV still take
	 * them); the detector does not refuse them first. */
	bool shed = p->sheddable && !ig_scheduler_sheds_itself(sched);
	/* Without flow control GIE v1.5's director admits before it looks
	 * for candidates (HandleRequest, then rejectIfSheddableAndSaturated
	 * over the candidates the hint leaves): the saturation of none is
	 * 1.0, so a sheddable request with no candidate is shed (429), not
	 * refused for want of endpoints (503). */
	if (shed && !flow && saturation(sched, &c) >= 1.0) {
		ig_req_fail(p, 429, "rate_limit_exceeded", "resource_exhausted",
			    "system saturated, sheddable request dropped");
		return -1;
	}
	if (c.n == 0) {
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    p->has_subset
				? "failed to find endpoint candidates: none of the pool's "
				  "endpoints is in the proxy's subset hint"
				: "no ready endpoints in the InferencePool");
		return -1;
	}
	/* A request the pool has room for goes on at once; the check is
	 * the dispatch cycle GIE would run for it, and is timed as one. */
	if (flow && !from_queue) {
		uint64_t t1 = ig_now_ns();
		if (saturation(sched, &c) >= ig_flow_usage_limit(&p->snap->flow, p->priority))
			return 1;
		ig_req_metrics_passed(p, t1);
	}
	struct ig_sched_req req = {
	    .model = p->model,
	    .target_model = p->target,
	    .critical = p->critical,
	    .priority = p->priority,
	    .prefix_input = p->prefix_input,
	    .prefix_seed = p->prefix_seed,
	    .cache_block_tokens = p->cache_block_tokens,
	    .test_endpoints = p->test_endpoints,
	    .prompt_tokens = p->prompt_bytes / 4,
	};
	const char *profile_header = ig_scheduler_profile_header(sched);
	if (profile_header)
		req.profile = req_header(p, profile_header);
	unsigned needs = ig_scheduler_needs(sched);
	if (needs & (IG_SCHED_NEEDS_PODS | IG_SCHED_NEEDS_ACTIVE))
		add_needs(p->pool, &c, needs);
	if (needs & IG_SCHED_NEEDS_SESSION)
		req.session_key =
		    ig_session_token_key(p->pool, req_header(p, IG_SESSION_TOKEN_HEADER));
	/* The prompt's block hashes stay with the request for its commit,
	 * in its arena: as many as its prompt has (a queued request is
	 * scheduled again with the same input and room). */
	size_t nblocks =
	    ig_scheduler_prefix_blocks(sched, req.cache_block_tokens, req.prefix_input.len);
	if (nblocks > p->res.prefix_room_len) {
		p->res.prefix_room = ig_arena_alloc(p->ex->arena, nblocks * sizeof(uint64_t));
		if (!p->res.prefix_room) {
			p->res.prefix_room_len = 0;
			ig_req_fail(p, 500, "server_error", NULL, "out of memory");
			return -1;
		}
		p->res.prefix_room_len = nblocks;
	}
	size_t ranked[IG_SCHED_MAX_RANKED];
	uint32_t ticks[IG_SCHED_MAX_TIMED];
	p->res.ranked = ranked;
	p->res.scores = NULL;
	p->res.plugin_ticks = ticks;
	int rc = ig_schedule(sched, &req, c.se, c.n, ig_rng_thread(), &p->res);
	p->res.ranked = NULL;
	p->res.plugin_ticks = NULL;
	ig_req_metrics_plugins(p, ticks);
	if (rc == IG_SCHED_NO_PROFILE) {
		ig_req_metrics_scheduled(p, t0, NULL);
		no_profile(p, profile_header, req.profile);
		return -1;
	}
	if (rc < 0 || p->res.nranked == 0) {
		ig_req_metrics_scheduled(p, t0, NULL);
		no_endpoint(p);
		return -1;
	}
	p->nranked = p->res.nranked < IG_REQ_MAX_RANKED ? p->res.nranked : IG_REQ_MAX_RANKED;
	for (size_t i = 0; i < p->nranked; i++)
		p->ranked[i] = c.eps[ranked[i]];
	ig_req_metrics_scheduled(p, t0, p->ranked[0]);
	apply_session(p, &c);
	ig_req_persist_ranking(p);
	return 0;
}

/* ---- flow control: requests waiting for the pool to have room ---- */

static void queue_tick(struct ig_loop *loop, struct ig_timer *t);

/* GIE's default byte limit of a priority band. */
#define BAND_MAX_BYTES 1000000000u

static struct ig_flowq_band_config band_config(const struct ig_flow_band_config *b)
{
	return (struct ig_flowq_band_config){
	    .priority = b->priority,
	    .limits = {b->max_requests, b->max_bytes ? b->max_bytes : BAND_MAX_BYTES},
	    .fairness = b->fairness == IG_FLOW_GLOBAL_STRICT ? IG_FLOWQ_GLOBAL_STRICT
							     : IG_FLOWQ_ROUND_ROBIN};
}

/* The worker's queue, set up by the flowControl section of `snap`: made
 * on first use, and given a newer snapshot's settings when a reload
 * brings one (the requests queued stay). */
static struct ig_flowq *worker_queue(struct ig_worker *w, const struct ig_snapshot *snap)
{
	if (w->queue && snap->generation <= w->queue_generation)
		return w->queue;
	const struct ig_flow_control_config *f = &snap->flow;
	struct ig_flowq_limits global = {.max_requests = w->gw->opt.queue_capacity,
					 .max_bytes = f->max_bytes};
	if (f->max_requests)
		global.max_requests = f->max_requests;
	struct ig_flowq_band_config bands[IG_FLOW_MAX_BANDS];
	for (size_t i = 0; i < f->nbands; i++)
		bands[i] = band_config(&f->bands[i]);
	struct ig_flowq_band_config def = band_config(&f->default_band);
	if (!w->queue)
		w->queue = ig_flowq_new(&global, bands, f->nbands, &def);
	else if (ig_flowq_configure(w->queue, &global, bands, f->nbands, &def) < 0)
		ig_warn("flow control: out of memory, the queue keeps some former settings");
	if (w->queue)
		w->queue_generation = snap->generation;
	return w->queue;
}

/* Where a request goes among those of its flow (lowest first, see
 * sched/flowq.h), by its band's ordering policy. EDF: its deadline, the
 * earlier of the queue timeout and the route's request timeout.
 * slo-deadline: arrival plus x-slo-ttft-ms; without a valid one, after all
 * that have it. FCFS: the same key for all, so arrival order. */
static uint64_t order_key(const struct ig_req *p)
{
	const struct ig_flow_band_config *b = ig_flow_band(&p->snap->flow, p->priority);
	uint64_t ms;
	switch (b->ordering) {
	case IG_FLOW_EDF:
		if (p->rule && p->rule->timeout_request_ms &&
		    p->start_ns + p->rule->timeout_request_ms * 1000000u < p->qdeadline)
			return p->start_ns + p->rule->timeout_request_ms * 1000000u;
		return p->qdeadline;
	case IG_FLOW_SLO_DEADLINE:
		if (ig_str_to_u64(ig_str_trim(req_header(p, "x-slo-ttft-ms")), &ms) < 0 ||
		    ms > (UINT64_MAX - p->start_ns) / 1000000u - 1)
			return UINT64_MAX;
		return p->start_ns + ms * 1000000u;
	default:
		return 0;
	}
}

static void dispatch_queued(struct ig_req *p)
{
	p->queued = false;
	p->qend_ns = ig_now_ns();
	ig_req_metrics_flow(p, IG_GW_FLOW_DISPATCHED, p->qend_ns);
	if (schedule(p, true) == 0)
		ig_req_send(p);
}

static void queue_tick(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_worker *w = t->data;
	if (!w->queue)
		return;
	struct ig_req *p;
	uint64_t t0 = ig_now_ns();
	while ((p = ig_flowq_pop_expired(w->queue, t0)) != NULL) {
		p->queued = false;
		ig_req_metrics_flow(p, IG_GW_FLOW_EVICTED_TTL, t0);
		p->drop_reason = "rejected-ttl-expired";
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    "timed out waiting in the gateway queue for a model server");
	}
	/* Highest priority first; the head waits while its pool is saturated
	 * (head-of-line blocking, as GIE's dispatcher does). It is looked at
	 * in place, so waiting does not reorder the queue. */
	while ((p = ig_flowq_peek(w->queue)) != NULL) {
		struct ig_candidates c;
		/* On failure dispatch_queued answers the error. */
		if (ig_candidates_read(&c, p->pool->eps, p->pool->neps, (size_t)w->id, false,
				       ig_now_ns(), list_id(p)) == 0 &&
		    c.n > 0 &&
		    saturation(p->pool->sched->s, &c) >=
			ig_flow_usage_limit(&p->snap->flow, p->priority))
			break;
		ig_flowq_pop(w->queue);
		dispatch_queued(p);
	}
	ig_gw_metrics_dispatch_cycle(w->gw->metrics, (double)(ig_now_ns() - t0) / 1e9);
	if (ig_flowq_len(w->queue))
		ig_timer_start(loop, t, 5, queue_tick, w);
}

static int enqueue(struct ig_req *p)
{
	struct ig_worker *w = p->w;
	struct ig_flowq *q = worker_queue(w, p->snap);
	if (!q)
		return -ENOMEM;
	uint64_t ttl = p->snap->flow.default_request_ttl_ms ? p->snap->flow.default_request_ttl_ms
							    : w->gw->opt.queue_timeout_ms;
	p->qstart_ns = ig_now_ns();
	p->qdeadline = p->qstart_ns + ttl * 1000000u;
	memset(&p->qitem, 0, sizeof p->qitem);
	int rc = ig_flowq_push(q, &p->qitem, p, p->flow_id, p->priority, p->body_len, p->qdeadline,
			       order_key(p));
	ig_req_metrics_pushed(p, rc);
	if (rc < 0)
		return rc;
	p->queued = true;
	if (!ig_timer_armed(&w->queue_timer))
		ig_timer_start(&w->loop, &w->queue_timer, 5, queue_tick, w);
	return 0;
}

/* A Service backend: its ready endpoints in round-robin order (per
 * worker), no picker, no admission. */
static int rank_service(struct ig_req *p)
{
	const struct ig_service_rt *svc = p->service;
	if (!svc->neps) {
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    "no ready endpoints for the route's Service");
		return -1;
	}
	uint32_t start = p->w->rr++;
	p->nranked = svc->neps < IG_REQ_MAX_RANKED ? svc->neps : IG_REQ_MAX_RANKED;
	for (size_t i = 0; i < p->nranked; i++)
		p->ranked[i] = svc->eps[(start + i) % svc->neps];
	ig_req_persist_ranking(p);
	return 0;
}

int ig_req_admit(struct ig_req *p)
{
	if (p->service)
		return rank_service(p);
	int rc = schedule(p, false);
	if (rc != 1)
		return rc;
	if (enqueue(p) < 0) {
		p->drop_reason = "rejected-saturated";
		ig_req_fail(p, 429, "rate_limit_exceeded", "queue_full",
			    "the pool is saturated and the gateway queue is full");
		return -1;
	}
	return 1;
}
