/* The gateway's own metrics, under GIE v0.2.0's names (gie-reference
 * §3.8) plus inference_pool_ready_pods and GIE v1.5's objective and
 * scheduler families (GIE v1.5 pkg/epp/metrics/metrics.go: names, labels,
 * buckets, and when each is recorded), and under llm-d Router's names
 * (llm_d_epp_*, its docs/metrics.md), which replaced GIE's when the picker
 * moved there: its request families carry the flow's fairness_id and the
 * priority, its pool gauges the spread beside the average. Each set is
 * recorded at the same points, so dashboards of either age read the
 * same figures. */
#include <math.h>
#include "gateway/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/clock.h"
#include "core/version.h"
#include "gateway/snapshot.h"
#include "metrics/registry.h"

struct ig_gw_metrics {
	struct ig_registry *reg;
	struct ig_metric_family *req_total, *req_errors, *req_duration, *req_sizes, *resp_sizes,
	    *in_tokens_h, *out_tokens_h;
	struct ig_metric_family *obj_total, *obj_errors, *obj_duration, *obj_req_sizes,
	    *obj_resp_sizes, *obj_in_tokens, *obj_out_tokens, *obj_ttft, *obj_tpot, *obj_cached,
	    *obj_running, *obj_ntpot, *sched_e2e, *sched_attempts, *hit_bytes, *hit_ratio,
	    *rewrites, *plugin_dur;
	/* llm-d Router's names. */
	struct ig_metric_family *ld_total, *ld_errors, *ld_duration, *ld_req_size, *ld_resp_size,
	    *ld_in, *ld_out, *ld_cached, *ld_running, *ld_ntpot, *ld_ttft, *ld_tpot, *ld_attempts,
	    *ld_plugin, *ld_rewrites;
	struct ig_metric_family *ld_fc_queue_duration, *ld_fc_enqueue_duration, *ld_fc_queue_size,
	    *ld_fc_queue_bytes, *ld_fc_requests;
	struct ig_series *ld_e2e_s, *ld_fc_dispatch_s;
	struct ig_metric_family *fc_queue_duration, *fc_enqueue_duration, *fc_queue_size,
	    *fc_queue_bytes;
	/* The unlabelled families' series. */
	struct ig_series *sched_e2e_s, *hit_bytes_s, *hit_ratio_s, *fc_dispatch_s;
	/* Configuration reloads (ig_gw_metrics_config). */
	struct ig_series *reloads_ok, *reloads_failed, *last_reload_ok, *last_ok_time;
	bool flow_control;     /* --flow-control */
	uint64_t staleness_ms; /* the pool gauges' */
	/* Model label values that come from clients (GIE v1 passes any model
	 * through) are admitted up to a bound; later ones are counted as
	 * "other", so a client cannot grow the series without end. */
	pthread_mutex_t labels_lock;
	char **labels;
	size_t nlabels;
	/* Fairness ids, the client's always, as llm-d caps them: the first
	 * MAX_FAIRNESS_LABELS, then "other" (under labels_lock too). */
	char **fids;
	size_t nfids;
	/* The snapshot the gauges of the render in progress read (the
	 * registry runs one render at a time). */
	const struct ig_snapshot *render_snap;
	/* The pools' averages as renders found them, one per pool of
	 * render_snap, in its order (follow_pools). */
	struct pool_avg *avgs;
	size_t navgs;
};

static const double duration_bounds[] = {0.005, 0.025, 0.05, 0.1, 0.2,	0.4,  0.6,  0.8, 1.0,
					 1.25,	1.5,   2,    3,	  4,	5,    6,    8,	 10,
					 15,	20,    30,   45,  60,	120,  180,  240, 300,
					 360,	480,   600,  900, 1200, 1800, 2700, 3600};
static const double response_size_bounds[] = {1,    8,	  16,	32,   64,    128,   256,  512,
					      1024, 2048, 4096, 8192, 16384, 32778, 65536};

/* The metrics ages as the picker's candidates have them (candidates.c). */
static uint64_t age_ms(uint64_t updated_ns, uint64_t now_ns)
{
	if (!updated_ns)
		return UINT64_MAX;
	return now_ns > updated_ns ? (now_ns - updated_ns) / 1000000u : 0;
}

enum pool_gauge { KV, QUEUE, READY, RUNNING, KV_SD, QUEUE_SD, RUNNING_SD };

/* GIE's --metrics-staleness-threshold default (v1.5 server/options.go). */
#define POOL_STALENESS_MS 2000

/* A pool's averages as renders last found them: GIE sets them only while
 * the pool has an endpoint with fresh metrics, and otherwise they keep
 * what they said. Renders alone (one at a time, on the control thread)
 * read and write these. `key` names the pool by its namespace and name:
 * an older snapshot's strings may be gone by the next render. */
struct pool_avg {
	uint64_t key;
	bool set[RUNNING + 1];
	double v[RUNNING + 1];
};

static uint64_t pool_key(const struct ig_pool_rt *rt)
{
	const struct ig_meta *m = &rt->pool->meta;
	return XXH3_64bits_withSeed(m->name, strlen(m->name), XXH3_64bits(m->ns, strlen(m->ns)));
}

/* Makes gm->avgs the pools of `s`, in its order, each with what the last
 * render kept for it (found at the same place first: a reload seldom
 * moves pools); a pool that left the configuration leaves the table, so
 * nothing of it is rendered again. Out of memory the table is empty and
 * the averages of pools without fresh endpoints are left out. */
static void follow_pools(struct ig_gw_metrics *gm, const struct ig_snapshot *s)
{
	size_t n = s ? s->npools : 0;
	struct pool_avg *next = n ? calloc(n, sizeof *next) : NULL;
	for (size_t p = 0; next && p < n; p++) {
		next[p].key = pool_key(&s->pools[p]);
		size_t at = p < gm->navgs && gm->avgs[p].key == next[p].key ? p : 0;
		while (at < gm->navgs && gm->avgs[at].key != next[p].key)
			at++;
		if (at < gm->navgs)
			next[p] = gm->avgs[at];
	}
	free(gm->avgs);
	gm->avgs = next;
	gm->navgs = next ? n : 0;
}

/* The pool gauges as GIE v1.5's refreshPrometheusMetrics sets them: over
 * the endpoints whose metrics are fresh (scraped within the staleness
 * threshold), the ready pods their number and the averages float means;
 * without such an endpoint only ready_pods is set (0), the averages keep
 * what they last said. A pool under GIE v0.2's decision tree (--picker
 * v0.2) gets v0.2's: every endpoint, the queue as an integer mean. Rows,
 * labelled by the pool's name and namespace: GIE's EPP serves one pool,
 * a gateway pools of one name in several namespaces, and a pool the
 * configuration no longer has is not written. */
/* The endpoints of a pool the gauges count (those with fresh metrics;
 * every one under v0.2), and the sum and sum of squares of one figure
 * over them (KV or KV_SD: KV use; RUNNING or RUNNING_SD: running
 * requests; else the waiting queue). */
static size_t fresh_sums(const struct ig_gw_metrics *gm, const struct ig_pool_rt *rt,
			 enum pool_gauge what, uint64_t now, double *sum, double *sq)
{
	bool v02 = ig_scheduler_sheds_itself(rt->sched->s);
	size_t n = 0;
	*sum = *sq = 0;
	for (size_t e = 0; e < rt->neps; e++) {
		struct ig_endpoint_metrics m;
		ig_endpoint_read_metrics(rt->eps[e], &m);
		if (!v02 && age_ms(m.updated_ns, now) > gm->staleness_ms)
			continue;
		double x = what == KV || what == KV_SD		   ? m.kv_usage
			   : what == RUNNING || what == RUNNING_SD ? (double)m.running
								   : (double)m.waiting;
		n++;
		*sum += x;
		*sq += x * x;
	}
	return n;
}

static void pool_rows(struct ig_gw_metrics *gm, struct ig_metric_rows *rows, enum pool_gauge what)
{
	const struct ig_snapshot *s = gm->render_snap;
	if (!s)
		return;
	uint64_t now = ig_now_ns();
	for (size_t p = 0; p < s->npools; p++) {
		const struct ig_pool_rt *rt = &s->pools[p];
		bool v02 = ig_scheduler_sheds_itself(rt->sched->s);
		double sum, sq;
		size_t n = fresh_sums(gm, rt, what, now, &sum, &sq);
		const char *labels[] = {rt->pool->meta.name, rt->pool->meta.ns};
		struct pool_avg *last = p < gm->navgs ? &gm->avgs[p] : NULL;
		double v = what == READY ? (double)n : n ? sum / (double)n : 0;
		if (what == QUEUE && v02 && n)
			v = (double)(long long)v; /* v0.2's queueTotal/podTotalCount */
		if (what != READY && n && last) {
			last->v[what] = v;
			last->set[what] = true;
		} else if (what != READY && !n) {
			if (!last || !last->set[what])
				continue;
			v = last->v[what];
		}
		ig_metrics_row(rows, labels, v);
	}
}

static void kv_rows(void *ctx, struct ig_metric_rows *rows)
{
	pool_rows(ctx, rows, KV);
}
static void queue_rows(void *ctx, struct ig_metric_rows *rows)
{
	pool_rows(ctx, rows, QUEUE);
}
static void ready_rows(void *ctx, struct ig_metric_rows *rows)
{
	pool_rows(ctx, rows, READY);
}
static void running_rows(void *ctx, struct ig_metric_rows *rows)
{
	pool_rows(ctx, rows, RUNNING);
}

/* llm-d's llm_d_epp_std_dev_*: the population standard deviation over the
 * same endpoints as the averages; no row while none is fresh. */
static void sd_rows(struct ig_gw_metrics *gm, struct ig_metric_rows *rows, enum pool_gauge what)
{
	const struct ig_snapshot *s = gm->render_snap;
	uint64_t now = ig_now_ns();
	for (size_t p = 0; s && p < s->npools; p++) {
		const struct ig_pool_rt *rt = &s->pools[p];
		double sum, sq;
		size_t n = fresh_sums(gm, rt, what, now, &sum, &sq);
		if (!n)
			continue;
		double mean = sum / (double)n, var = sq / (double)n - mean * mean;
		const char *labels[] = {rt->pool->meta.name, rt->pool->meta.ns};
		ig_metrics_row(rows, labels, var > 0 ? sqrt(var) : 0);
	}
}
static void kv_sd_rows(void *ctx, struct ig_metric_rows *rows)
{
	sd_rows(ctx, rows, KV_SD);
}
static void queue_sd_rows(void *ctx, struct ig_metric_rows *rows)
{
	sd_rows(ctx, rows, QUEUE_SD);
}
static void running_sd_rows(void *ctx, struct ig_metric_rows *rows)
{
	sd_rows(ctx, rows, RUNNING_SD);
}

/* Per endpoint (GIE's inference_pool_per_pod_queue_size, and the same
 * for KV use): rows, not series, so an endpoint that leaves its pool
 * leaves the scrape with it. model_server_pod is GIE v1.5's endpoint name
 * (datastore.go createEndpointNamespacedName): the pod's name and
 * "-rank-" the index of the endpoint's port in the pool's targetPorts. */
static void pod_rows(struct ig_gw_metrics *gm, struct ig_metric_rows *rows, enum pool_gauge what)
{
	const struct ig_snapshot *s = gm->render_snap;
	for (size_t p = 0; s && p < s->npools; p++) {
		const struct ig_pool_rt *rt = &s->pools[p];
		for (size_t e = 0; e < rt->neps; e++) {
			struct ig_endpoint_metrics m;
			ig_endpoint_read_metrics(rt->eps[e], &m);
			char name[320];
			snprintf(name, sizeof name, "%s-rank-%u", rt->ep_pods[e]->meta.name,
				 (unsigned)rt->ep_ranks[e]);
			const char *labels[] = {rt->pool->meta.name, rt->pool->meta.ns, name};
			ig_metrics_row(rows, labels, what == KV ? m.kv_usage : (double)m.waiting);
		}
	}
}
static void pod_queue_fn(void *ctx, struct ig_metric_rows *rows)
{
	pod_rows(ctx, rows, QUEUE);
}
static void pod_kv_fn(void *ctx, struct ig_metric_rows *rows)
{
	pod_rows(ctx, rows, KV);
}

/* One pool's saturation as admission computes it (admit.c): the
 * detector over the endpoints in rotation (all of them when none is),
 * their waiting queues with what the gateway dispatched since their
 * scrapes added. Read at render time, from the control thread, which is
 * no worker: it writes nothing. -1 out of memory. */
static double pool_saturation(const struct ig_pool_rt *rt, uint64_t now)
{
	size_t n = 0, cap = rt->neps ? rt->neps : 1;
	struct ig_sched_endpoint *se = calloc(cap, sizeof *se);
	struct ig_endpoint_load *load = calloc(cap, sizeof *load);
	if (!se || !load) {
		free(se);
		free(load);
		return -1;
	}
	for (int pass = 0; pass < 2 && n == 0; pass++) {
		for (size_t i = 0; i < rt->neps; i++) {
			const struct ig_endpoint *ep = rt->eps[i];
			if (pass == 0 &&
			    atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed))
				continue;
			long requests = 0, tokens = 0;
			ig_endpoint_read_load(ep, &load[n]);
			ig_endpoint_pending(ep, SIZE_MAX, &requests, &tokens);
			load[n].waiting += requests;
			se[n] = (struct ig_sched_endpoint){
			    .m = &load[n],
			    .metrics_age_ms = age_ms(load[n].updated_ns, now),
			    .addr = {ep->addr, ep->addr_len},
			    .key = ep->key,
			};
			n++;
		}
	}
	double v = ig_scheduler_saturation(rt->sched->s, se, n);
	free(se);
	free(load);
	return v;
}

/* GIE's flow controller records each pool's saturation every dispatch
 * cycle; here it is computed when scraped, while flow control is on (the
 * snapshot's feature gate or --flow-control). Rows: a pool that leaves
 * the configuration leaves the scrape. */
static void saturation_rows(void *ctx, struct ig_metric_rows *rows)
{
	struct ig_gw_metrics *gm = ctx;
	const struct ig_snapshot *s = gm->render_snap;
	if (!s || !(s->flow_control || gm->flow_control))
		return;
	uint64_t now = ig_now_ns();
	for (size_t p = 0; p < s->npools; p++) {
		double v = pool_saturation(&s->pools[p], now);
		const char *labels[] = {s->pools[p].pool->meta.name, s->pools[p].pool->meta.ns};
		if (v >= 0)
			ig_metrics_row(rows, labels, v);
	}
}

/* llm-d's llm_d_epp_flow_control_pool_saturation{inference_pool, stage}:
 * with no roles every endpoint is in the decode stage, and the effective
 * saturation, the one that gates, is the decode stage's. */
static void ld_saturation_rows(void *ctx, struct ig_metric_rows *rows)
{
	struct ig_gw_metrics *gm = ctx;
	const struct ig_snapshot *s = gm->render_snap;
	if (!s || !(s->flow_control || gm->flow_control))
		return;
	uint64_t now = ig_now_ns();
	for (size_t p = 0; p < s->npools; p++) {
		double v = pool_saturation(&s->pools[p], now);
		if (v < 0)
			continue;
		const char *pool = s->pools[p].pool->meta.name, *ns = s->pools[p].pool->meta.ns;
		ig_metrics_row(rows, (const char *[]){pool, ns, "decode"}, v);
		ig_metrics_row(rows, (const char *[]){pool, ns, "effective"}, v);
	}
}

/* The prefix indexes of every pool, summed. */
static void prefix_stats(struct ig_gw_metrics *gm, struct ig_prefix_stats *sum)
{
	*sum = (struct ig_prefix_stats){0};
	const struct ig_snapshot *s = gm->render_snap;
	for (size_t p = 0; s && p < s->npools; p++) {
		struct ig_prefix_stats st;
		ig_scheduler_prefix_stats(s->pools[p].sched->s, &st);
		sum->entries += st.entries;
		sum->bytes += st.bytes;
		sum->lookups += st.lookups;
		sum->hit_blocks += st.hit_blocks;
		sum->lookup_blocks += st.lookup_blocks;
	}
}
static void indexer_size_fn(void *ctx, struct ig_metric_family *f)
{
	struct ig_prefix_stats st;
	prefix_stats(ctx, &st);
	struct ig_series *s = ig_metrics_series(f, NULL);
	if (s)
		ig_gauge_set(s, (double)st.entries);
}

/* The configuration's reloads, as nginx-ingress exports them
 * (nginx_ingress_controller_config_last_reload_successful and
 * _successful_timestamp_seconds) and Envoy counts them, under infergate's
 * prefix. Both results' series are there from the start, at 0, so that a
 * rate or an alert on failures has a series before the first one. */
static void config_families(struct ig_gw_metrics *gm)
{
	const char *result[] = {"result"};
	struct ig_metric_family *reloads = ig_metrics_counter(
	    gm->reg, "infergate_config_reloads_total",
	    "Configuration reloads (SIGHUP, changed files, changed API objects), by result: "
	    "success, or failure (the previous configuration kept serving).",
	    result, 1);
	struct ig_metric_family *last = ig_metrics_gauge(
	    gm->reg, "infergate_config_last_reload_successful",
	    "Whether the last configuration load succeeded (1) or was refused (0); 0 until "
	    "the first configuration.",
	    NULL, 0);
	struct ig_metric_family *when = ig_metrics_gauge(
	    gm->reg, "infergate_config_last_reload_success_timestamp_seconds",
	    "Unix time of the configuration being served: the start, or the last successful "
	    "reload.",
	    NULL, 0);
	gm->reloads_ok = reloads ? ig_metrics_series(reloads, (const char *[]){"success"}) : NULL;
	gm->reloads_failed =
	    reloads ? ig_metrics_series(reloads, (const char *[]){"failure"}) : NULL;
	gm->last_reload_ok = last ? ig_metrics_series(last, NULL) : NULL;
	gm->last_ok_time = when ? ig_metrics_series(when, NULL) : NULL;
}

void ig_gw_metrics_config(struct ig_gw_metrics *gm, bool reload, bool ok, double unix_seconds)
{
	if (reload && (ok ? gm->reloads_ok : gm->reloads_failed))
		ig_counter_add(ok ? gm->reloads_ok : gm->reloads_failed, 1);
	if (gm->last_reload_ok)
		ig_gauge_set(gm->last_reload_ok, ok);
	if (ok && gm->last_ok_time)
		ig_gauge_set(gm->last_ok_time, unix_seconds);
}

struct ig_gw_metrics *ig_gw_metrics_new(void)
{
	struct ig_gw_metrics *gm = calloc(1, sizeof *gm);
	if (!gm)
		return NULL;
	double request_size_bounds[64], input_token_bounds[32], output_token_bounds[32];
	size_t n_request_size_bounds = 0, n_input_token_bounds = 0, n_output_token_bounds = 0;
	/* Request sizes: 64..65536 by 2, 131072..8388608 by 2, 16 MiB..1 GiB by 2. */
	for (double b = 64; b <= 1073741824.0; b *= 2)
		request_size_bounds[n_request_size_bounds++] = b;
	static const double in_fixed[] = {32778, 65536, 131072, 262144, 524288, 1048576};
	for (double b = 1; b <= 16384; b = b == 1 ? 8 : b * 2)
		input_token_bounds[n_input_token_bounds++] = b;
	for (size_t i = 0; i < sizeof in_fixed / sizeof in_fixed[0]; i++)
		input_token_bounds[n_input_token_bounds++] = in_fixed[i];
	for (double b = 1; b <= 8192; b = b == 1 ? 8 : b * 2)
		output_token_bounds[n_output_token_bounds++] = b;

	struct ig_registry *reg = gm->reg = ig_registry_new();
	if (!reg) {
		free(gm);
		return NULL;
	}
	const char *mt[] = {"model_name", "target_model_name"};
	const char *mte[] = {"model_name", "target_model_name", "error_code"};
	gm->req_total = ig_metrics_counter(reg, "inference_model_request_total",
					   "[ALPHA] Counter of inference model requests broken out "
					   "for each model and target model.",
					   mt, 2);
	gm->req_errors = ig_metrics_counter(reg, "inference_model_request_error_total",
					    "[ALPHA] Counter of inference model requests errors "
					    "broken out for each model and target model.",
					    mte, 3);
	gm->req_duration = ig_metrics_histogram(
	    reg, "inference_model_request_duration_seconds",
	    "[ALPHA] Inference model response latency distribution in seconds for each model and "
	    "target model.",
	    mt, 2, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0]);
	gm->req_sizes = ig_metrics_histogram(reg, "inference_model_request_sizes",
					     "[ALPHA] Inference model requests size distribution "
					     "in bytes for each model and target model.",
					     mt, 2, request_size_bounds, n_request_size_bounds);
	gm->resp_sizes =
	    ig_metrics_histogram(reg, "inference_model_response_sizes",
				 "[ALPHA] Inference model responses size distribution in bytes for "
				 "each model and target model.",
				 mt, 2, response_size_bounds,
				 sizeof response_size_bounds / sizeof response_size_bounds[0]);
	gm->in_tokens_h = ig_metrics_histogram(
	    reg, "inference_model_input_tokens",
	    "[ALPHA] Inference model input token count distribution for requests in each model.",
	    mt, 2, input_token_bounds, n_input_token_bounds);
	gm->out_tokens_h = ig_metrics_histogram(
	    reg, "inference_model_output_tokens",
	    "[ALPHA] Inference model output token count distribution for requests in each model.",
	    mt, 2, output_token_bounds, n_output_token_bounds);
	/* GIE's pool labels ({name}) and the pool's namespace. */
	const char *pool_ns[] = {"name", "namespace"};
	ig_metrics_gauge_rows(
	    reg, "inference_pool_average_kv_cache_utilization",
	    "[ALPHA] The average kv cache utilization for an inference server pool.", pool_ns, 2,
	    kv_rows, gm);
	ig_metrics_gauge_rows(
	    reg, "inference_pool_average_queue_size",
	    "[ALPHA] The average number of requests pending in the model server queue.", pool_ns, 2,
	    queue_rows, gm);
	ig_metrics_gauge_rows(reg, "inference_pool_ready_pods",
			      "[ALPHA] The number of ready pods in the inference server pool.",
			      pool_ns, 2, ready_rows, gm);
	ig_metrics_gauge_rows(
	    reg, "inference_pool_average_running_requests",
	    "[ALPHA] The average number of requests running on the model servers of the pool.",
	    pool_ns, 2, running_rows, gm);
	const char *name_pod[] = {"name", "namespace", "model_server_pod"};
	ig_metrics_gauge_rows(
	    reg, "inference_pool_per_pod_queue_size",
	    "[ALPHA] The number of requests waiting in each model server's queue.", name_pod, 3,
	    pod_queue_fn, gm);
	ig_metrics_gauge_rows(reg, "inference_pool_per_pod_kv_cache_utilization",
			      "[ALPHA] The KV cache utilization of each model server of the pool.",
			      name_pod, 3, pod_kv_fn, gm);
	/* GIE v1.5 names. */
	const char *mtp[] = {"model_name", "target_model_name", "priority"};
	gm->obj_total = ig_metrics_counter(reg, "inference_objective_request_total",
					   "[ALPHA] Counter of inference objective requests broken "
					   "out for each model and target model.",
					   mtp, 3);
	/* GIE v1.5 added the priority to request_total only: its
	 * requestErrCounter keeps v0.2's labels. */
	gm->obj_errors = ig_metrics_counter(reg, "inference_objective_request_error_total",
					    "[ALPHA] Counter of inference objective requests "
					    "errors broken out for each model and target model.",
					    mte, 3);
	gm->obj_duration = ig_metrics_histogram(
	    reg, "inference_objective_request_duration_seconds",
	    "[ALPHA] Inference objective response latency distribution in seconds for each model "
	    "and target model.",
	    mt, 2, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0]);
	gm->obj_req_sizes =
	    ig_metrics_histogram(reg, "inference_objective_request_sizes",
				 "[ALPHA] Inference objective requests size "
				 "distribution in bytes for each model and target model.",
				 mt, 2, request_size_bounds, n_request_size_bounds);
	gm->obj_resp_sizes =
	    ig_metrics_histogram(reg, "inference_objective_response_sizes",
				 "[ALPHA] Inference objective responses size distribution in bytes "
				 "for each model and target model.",
				 mt, 2, response_size_bounds,
				 sizeof response_size_bounds / sizeof response_size_bounds[0]);
	gm->obj_in_tokens = ig_metrics_histogram(reg, "inference_objective_input_tokens",
						 "[ALPHA] Inference objective input token count "
						 "distribution for requests in each model.",
						 mt, 2, input_token_bounds, n_input_token_bounds);
	gm->obj_out_tokens =
	    ig_metrics_histogram(reg, "inference_objective_output_tokens",
				 "[ALPHA] Inference objective output token count distribution for "
				 "requests in each model.",
				 mt, 2, output_token_bounds, n_output_token_bounds);
	/* Time to first token and per output token of streamed responses,
	 * measured at the gateway (GIE v1.5's request_ttft/tpot_seconds):
	 * TTFT with GIE's generalLatencyBuckets, the request latency's, and
	 * TPOT with its tpotBuckets, so that GIE's dashboards' quantiles read
	 * the same buckets here as there. */
	static const double tpot_bounds[] = {
	    0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2,
	    0.3,    0.4,     0.5,   0.6,  0.8,	1,    1.5,  2,	  3,   4.5,   6,    12,
	    18,	    24,	     30,    36,	  48,	60,   90,   120,  180, 270,   360};
	gm->obj_ttft = ig_metrics_histogram(
	    reg, "inference_objective_request_ttft_seconds",
	    "[ALPHA] Inference model TTFT distribution in seconds for each model and target model.",
	    mt, 2, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0]);
	gm->obj_tpot = ig_metrics_histogram(
	    reg, "inference_objective_request_tpot_seconds",
	    "[ALPHA] Inference model TPOT distribution in seconds for each model and target model.",
	    mt, 2, tpot_bounds, sizeof tpot_bounds / sizeof tpot_bounds[0]);
	/* The usage's cached prompt tokens, with the input tokens' buckets. */
	gm->obj_cached = ig_metrics_histogram(reg, "inference_objective_prompt_cached_tokens",
					      "[ALPHA] Inference objective prompt cached token "
					      "count distribution for requests in each model.",
					      mt, 2, input_token_bounds, n_input_token_bounds);
	/* Requests sent to a model server and not finished, by the model
	 * asked for: each worker counts its own (a summed gauge). */
	const char *model_only[] = {"model_name"};
	gm->obj_running = ig_metrics_gauge_summed(
	    reg, "inference_objective_running_requests",
	    "[ALPHA] Inference objective number of running requests in each model.", model_only, 1);
	static const double ntpot_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
					      0.2,   0.5,   1.0,   2.0,	 5.0,  10.0};
	gm->obj_ntpot = ig_metrics_histogram(
	    reg, "inference_objective_normalized_time_per_output_token_seconds",
	    "[ALPHA] Inference objective latency divided by number of output tokens in seconds for "
	    "each model and target model.",
	    mt, 2, ntpot_bounds, sizeof ntpot_bounds / sizeof ntpot_bounds[0]);
	static const double sched_bounds[] = {0.0001, 0.0002, 0.0005, 0.001, 0.002,
					      0.005,  0.01,   0.02,   0.05,  0.1};
	gm->sched_e2e = ig_metrics_histogram(
	    reg, "inference_extension_scheduler_e2e_duration_seconds",
	    "[ALPHA] End-to-end scheduling latency distribution in seconds.", NULL, 0, sched_bounds,
	    sizeof sched_bounds / sizeof sched_bounds[0]);
	const char *plugin_labels[] = {"extension_point", "plugin_type", "plugin_name"};
	gm->plugin_dur = ig_metrics_histogram(
	    reg, "inference_extension_plugin_duration_seconds",
	    "[ALPHA] Plugin processing latency distribution in seconds for each extension point, "
	    "plugin type and plugin name.",
	    plugin_labels, 3, sched_bounds, sizeof sched_bounds / sizeof sched_bounds[0]);
	const char *attempt_labels[] = {"status", "target_model_name", "pod_name", "namespace",
					"port"};
	gm->sched_attempts =
	    ig_metrics_counter(reg, "inference_extension_scheduler_attempts_total",
			       "[ALPHA] Total number of scheduling attempts.", attempt_labels, 5);
	ig_metrics_gauge_fn(reg, "inference_extension_prefix_indexer_size",
			    "[ALPHA] Size of the prefix indexer (entries).", NULL, 0,
			    indexer_size_fn, gm);
	/* As GIE v1.5 and llm-d (pkg/epp/metrics): a histogram observed at each
	 * pick, the picked endpoint's matched share of the prompt's blocks. */
	static const double hit_ratio_bounds[] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5,
						  0.6, 0.7, 0.8, 0.9, 1.0};
	gm->hit_ratio = ig_metrics_histogram(
	    reg, "inference_extension_prefix_indexer_hit_ratio",
	    "[ALPHA] Ratio of prefix length matched to total prefix length in the cache lookup.",
	    NULL, 0, hit_ratio_bounds, sizeof hit_ratio_bounds / sizeof hit_ratio_bounds[0]);
	static const double hit_bytes_bounds[] = {0,	16,   32,   64,	  128,	 256,	512,
						  1024, 2048, 4096, 8192, 16384, 32768, 65536};
	gm->hit_bytes = ig_metrics_histogram(
	    reg, "inference_extension_prefix_indexer_hit_bytes",
	    "[ALPHA] Length of the prefix match in number of bytes in the cache lookup.", NULL, 0,
	    hit_bytes_bounds, sizeof hit_bytes_bounds / sizeof hit_bytes_bounds[0]);
	const char *rewrite_labels[] = {"model_rewrite_name", "model_name", "target_model"};
	gm->rewrites = ig_metrics_counter(
	    reg, "inference_extension_model_rewrite_decisions_total",
	    "[ALPHA] Total number of inference model rewrite decisions.", rewrite_labels, 3);
	/* Flow control (GIE's flow controller, gie-reference §4.4). */
	static const double fc_queue_bounds[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025,
						 0.05,	 0.1,	 0.25,	0.5,   1.0,  2.5,
						 5.0,	 10.0,	 30.0,	60.0};
	static const double fc_cycle_bounds[] = {0.0001, 0.0002, 0.0005, 0.001, 0.002,
						 0.005,	 0.01,	 0.02,	 0.05,	0.1};
	/* GIE's labels, and the namespace after each pool's name (GIE's EPP
	 * serves one pool; pools here may share a name). */
	const char *fc_duration_labels[] = {"fairness_id",	"priority",  "outcome",
					    "inference_pool",	"namespace", "model_name",
					    "target_model_name"};
	const char *fc_queue_labels[] = {"fairness_id", "priority",   "inference_pool",
					 "namespace",	"model_name", "target_model_name"};
	const char *fc_enqueue_labels[] = {"fairness_id", "priority", "outcome"};
	const char *pool_label[] = {"inference_pool", "namespace"};
	gm->fc_queue_duration = ig_metrics_histogram(
	    reg, "inference_extension_flow_control_request_queue_duration_seconds",
	    "[ALPHA] Distribution of total time requests spend in the Flow Control "
	    "layer (from enqueue to final outcome).",
	    fc_duration_labels, 7, fc_queue_bounds,
	    sizeof fc_queue_bounds / sizeof fc_queue_bounds[0]);
	struct ig_metric_family *fc_dispatch = ig_metrics_histogram(
	    reg, "inference_extension_flow_control_dispatch_cycle_duration_seconds",
	    "[ALPHA] Distribution of time taken for each internal dispatch cycle in the Flow "
	    "Control "
	    "layer.",
	    NULL, 0, fc_cycle_bounds, sizeof fc_cycle_bounds / sizeof fc_cycle_bounds[0]);
	gm->fc_queue_size = ig_metrics_gauge_summed(
	    reg, "inference_extension_flow_control_queue_size",
	    "[ALPHA] Current number of requests actively held in the Flow Control queue.",
	    fc_queue_labels, 6);
	gm->fc_queue_bytes = ig_metrics_gauge_summed(
	    reg, "inference_extension_flow_control_queue_bytes",
	    "[ALPHA] Current total size in bytes of requests actively held in the Flow Control "
	    "queue.",
	    fc_queue_labels, 6);
	ig_metrics_gauge_rows(
	    reg, "inference_extension_flow_control_pool_saturation",
	    "[ALPHA] Current saturation level of the inference pool (0.0 = empty, "
	    "1.0 = fully saturated).",
	    pool_label, 2, saturation_rows, gm);
	gm->fc_enqueue_duration = ig_metrics_histogram(
	    reg, "inference_extension_flow_control_request_enqueue_duration_seconds",
	    "[ALPHA] Distribution of time taken to enqueue requests into the Flow Control layer.",
	    fc_enqueue_labels, 3, fc_cycle_bounds,
	    sizeof fc_cycle_bounds / sizeof fc_cycle_bounds[0]);
	gm->fc_dispatch_s = fc_dispatch ? ig_metrics_series(fc_dispatch, NULL) : NULL;
	/* llm-d Router's flow-control names: its labels (the pool's
	 * namespace after its name, as on GIE's). */
	gm->ld_fc_queue_duration = ig_metrics_histogram(
	    reg, "llm_d_epp_flow_control_request_queue_duration_seconds",
	    "[ALPHA] Time from queue entry to terminal outcome.", fc_duration_labels, 7,
	    fc_queue_bounds, sizeof fc_queue_bounds / sizeof fc_queue_bounds[0]);
	struct ig_metric_family *ld_fc_dispatch =
	    ig_metrics_histogram(reg, "llm_d_epp_flow_control_dispatch_cycle_duration_seconds",
				 "[ALPHA] Cost of one dispatch cycle.", NULL, 0, fc_cycle_bounds,
				 sizeof fc_cycle_bounds / sizeof fc_cycle_bounds[0]);
	gm->ld_fc_dispatch_s = ld_fc_dispatch ? ig_metrics_series(ld_fc_dispatch, NULL) : NULL;
	gm->ld_fc_enqueue_duration = ig_metrics_histogram(
	    reg, "llm_d_epp_flow_control_request_enqueue_duration_seconds",
	    "[ALPHA] Time spent admitting a request to the queue.", fc_enqueue_labels, 3,
	    fc_cycle_bounds, sizeof fc_cycle_bounds / sizeof fc_cycle_bounds[0]);
	gm->ld_fc_queue_size = ig_metrics_gauge_summed(
	    reg, "llm_d_epp_flow_control_queue_size",
	    "[ALPHA] Requests currently held in the queue.", fc_queue_labels, 6);
	gm->ld_fc_queue_bytes = ig_metrics_gauge_summed(
	    reg, "llm_d_epp_flow_control_queue_bytes", "[ALPHA] Bytes currently held in the queue.",
	    fc_queue_labels, 6);
	const char *pool_stage[] = {"inference_pool", "namespace", "stage"};
	ig_metrics_gauge_rows(reg, "llm_d_epp_flow_control_pool_saturation",
			      "[ALPHA] Saturation signal used to gate dispatch.", pool_stage, 3,
			      ld_saturation_rows, gm);
	const char *fc_req_labels[] = {"outcome", "priority", "inference_pool", "namespace"};
	gm->ld_fc_requests =
	    ig_metrics_counter(reg, "llm_d_epp_flow_control_requests_total",
			       "[ALPHA] Requests by terminal outcome.", fc_req_labels, 4);
	/* The build: GIE's commit SHA and build ref (its image's branch or
	 * tag); infergate's version stands for the ref (core/version.h). */
	const char *info_labels[] = {"commit", "build_ref"};
	struct ig_metric_family *info = ig_metrics_gauge(
	    reg, "inference_extension_info",
	    "[ALPHA] General information of the current build of Inference Extension.", info_labels,
	    2);
	struct ig_series *info_s =
	    info ? ig_metrics_series(info, (const char *[]){IG_COMMIT, IG_VERSION}) : NULL;
	if (info_s)
		ig_gauge_set(info_s, 1);
	/* llm-d Router's names (docs/metrics.md), GIE's buckets. */
	const char *ld_req[] = {"model_name", "target_model_name", "fairness_id", "priority"};
	const char *ld_err[] = {"model_name", "target_model_name", "fairness_id", "priority",
				"error_code"};
	const char *ld_ttft_labels[] = {"model_name", "target_model_name", "fairness_id",
					"priority", "streaming"};
	gm->ld_total = ig_metrics_counter(reg, "llm_d_epp_request_total", "[ALPHA] Total requests.",
					  ld_req, 4);
	gm->ld_errors = ig_metrics_counter(reg, "llm_d_epp_request_error_total",
					   "[ALPHA] Errored requests.", ld_err, 5);
	gm->ld_duration = ig_metrics_histogram(
	    reg, "llm_d_epp_request_duration_seconds", "[ALPHA] End-to-end request latency.",
	    ld_req, 4, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0]);
	gm->ld_req_size =
	    ig_metrics_histogram(reg, "llm_d_epp_request_size_bytes", "[ALPHA] Request body size.",
				 ld_req, 4, request_size_bounds, n_request_size_bounds);
	gm->ld_resp_size = ig_metrics_histogram(
	    reg, "llm_d_epp_response_size_bytes", "[ALPHA] Response body size.", ld_req, 4,
	    response_size_bounds, sizeof response_size_bounds / sizeof response_size_bounds[0]);
	gm->ld_in = ig_metrics_histogram(reg, "llm_d_epp_request_input_tokens",
					 "[ALPHA] Input token count.", ld_req, 4,
					 input_token_bounds, n_input_token_bounds);
	gm->ld_out = ig_metrics_histogram(reg, "llm_d_epp_request_output_tokens",
					  "[ALPHA] Output token count.", ld_req, 4,
					  output_token_bounds, n_output_token_bounds);
	gm->ld_cached = ig_metrics_histogram(reg, "llm_d_epp_request_cached_tokens",
					     "[ALPHA] Prompt tokens served from cache.", ld_req, 4,
					     input_token_bounds, n_input_token_bounds);
	gm->ld_running = ig_metrics_gauge_summed(
	    reg, "llm_d_epp_request_running", "[ALPHA] Requests currently in flight.", ld_req, 4);
	gm->ld_ntpot = ig_metrics_histogram(
	    reg, "llm_d_epp_request_ntpot_seconds", "[ALPHA] Normalized time per output token.",
	    ld_req, 4, ntpot_bounds, sizeof ntpot_bounds / sizeof ntpot_bounds[0]);
	gm->ld_ttft = ig_metrics_histogram(
	    reg, "llm_d_epp_request_ttft_seconds", "[ALPHA] Time to first token.", ld_ttft_labels,
	    5, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0]);
	gm->ld_tpot =
	    ig_metrics_histogram(reg, "llm_d_epp_request_streaming_tpot_seconds",
				 "[ALPHA] Time per output token for streaming.", ld_req, 4,
				 tpot_bounds, sizeof tpot_bounds / sizeof tpot_bounds[0]);
	ig_metrics_gauge_rows(reg, "llm_d_epp_average_kv_cache_utilization",
			      "[ALPHA] Mean KV-cache utilization across the pool.", pool_ns, 2,
			      kv_rows, gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_average_queue_size", "[ALPHA] Mean queue depth.",
			      pool_ns, 2, queue_rows, gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_average_running_requests",
			      "[ALPHA] Mean in-flight requests.", pool_ns, 2, running_rows, gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_std_dev_kv_cache_utilization",
			      "[ALPHA] Spread of KV-cache utilization.", pool_ns, 2, kv_sd_rows,
			      gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_std_dev_queue_size", "[ALPHA] Spread of queue depth.",
			      pool_ns, 2, queue_sd_rows, gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_std_dev_running_requests",
			      "[ALPHA] Spread of in-flight requests.", pool_ns, 2, running_sd_rows,
			      gm);
	ig_metrics_gauge_rows(reg, "llm_d_epp_ready_endpoints",
			      "[ALPHA] Ready endpoints in the pool.", pool_ns, 2, ready_rows, gm);
	const char *name_ep[] = {"name", "namespace", "model_server_endpoint"};
	ig_metrics_gauge_rows(reg, "llm_d_epp_per_endpoint_queue_size",
			      "[ALPHA] Per-endpoint queue depth.", name_ep, 3, pod_queue_fn, gm);
	struct ig_metric_family *ld_e2e =
	    ig_metrics_histogram(reg, "llm_d_epp_scheduler_e2e_duration_seconds",
				 "[ALPHA] End-to-end scheduling latency.", NULL, 0, sched_bounds,
				 sizeof sched_bounds / sizeof sched_bounds[0]);
	gm->ld_e2e_s = ld_e2e ? ig_metrics_series(ld_e2e, NULL) : NULL;
	const char *ld_attempt_labels[] = {"status", "target_model_name", "endpoint_name",
					   "namespace", "port"};
	gm->ld_attempts = ig_metrics_counter(reg, "llm_d_epp_scheduler_attempts_total",
					     "[ALPHA] Scheduling attempts.", ld_attempt_labels, 5);
	gm->ld_plugin = ig_metrics_histogram(
	    reg, "llm_d_epp_plugin_duration_seconds", "[ALPHA] Per-plugin execution time.",
	    plugin_labels, 3, sched_bounds, sizeof sched_bounds / sizeof sched_bounds[0]);
	gm->ld_rewrites = ig_metrics_counter(reg, "llm_d_epp_model_rewrite_decisions_total",
					     "[ALPHA] Model-rewrite decisions.", rewrite_labels, 3);
	struct ig_metric_family *ld_info =
	    ig_metrics_gauge(reg, "llm_d_epp_info", "[ALPHA] Build info.", info_labels, 2);
	struct ig_series *ld_info_s =
	    ld_info ? ig_metrics_series(ld_info, (const char *[]){IG_COMMIT, IG_VERSION}) : NULL;
	if (ld_info_s)
		ig_gauge_set(ld_info_s, 1);
	config_families(gm);
	gm->sched_e2e_s = gm->sched_e2e ? ig_metrics_series(gm->sched_e2e, NULL) : NULL;
	gm->hit_bytes_s = gm->hit_bytes ? ig_metrics_series(gm->hit_bytes, NULL) : NULL;
	gm->hit_ratio_s = gm->hit_ratio ? ig_metrics_series(gm->hit_ratio, NULL) : NULL;
	gm->staleness_ms = POOL_STALENESS_MS;
	pthread_mutex_init(&gm->labels_lock, NULL);
	return gm;
}

void ig_gw_metrics_free(struct ig_gw_metrics *gm)
{
	if (!gm)
		return;
	ig_registry_free(gm->reg);
	free(gm->avgs);
	for (size_t i = 0; i < gm->nlabels; i++)
		free(gm->labels[i]);
	free(gm->labels);
	for (size_t i = 0; i < gm->nfids; i++)
		free(gm->fids[i]);
	free(gm->fids);
	pthread_mutex_destroy(&gm->labels_lock);
	free(gm);
}

#define MAX_CLIENT_LABELS 256
/* llm-d's --fairness-id-metric-label-limit default. */
#define MAX_FAIRNESS_LABELS 1000

/* v as a label value from a capped set: itself while fewer than max
 * distinct ones were seen, "other" after. */
static const char *capped_label(struct ig_gw_metrics *gm, char ***set, size_t *n, size_t max,
				const char *v)
{
	const char *out = "other";
	pthread_mutex_lock(&gm->labels_lock);
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*set)[i], v) == 0) {
			out = (*set)[i];
			goto done;
		}
	if (*n < max) {
		char **l = realloc(*set, (*n + 1) * sizeof *l);
		char *d = strdup(v);
		if (l)
			*set = l;
		if (l && d) {
			(*set)[(*n)++] = d;
			out = d;
		} else {
			free(d);
		}
	}
done:
	pthread_mutex_unlock(&gm->labels_lock);
	return out;
}

/* A model name a client chose, as a label value: itself while fewer than
 * MAX_CLIENT_LABELS distinct ones were seen, "other" after. Called on a
 * worker's cache miss and for errors, not per request. */
static const char *client_label(struct ig_gw_metrics *gm, const char *v)
{
	return capped_label(gm, &gm->labels, &gm->nlabels, MAX_CLIENT_LABELS, v);
}

/* A fairness id (always the client's) as llm-d labels it. */
static const char *fairness_label(struct ig_gw_metrics *gm, const char *v)
{
	return capped_label(gm, &gm->fids, &gm->nfids, MAX_FAIRNESS_LABELS, v);
}

/* GIE's error code names (gie-reference §4.1, §7): the v1.5 names on the
 * inference_objective_* families, v0.2's on inference_model_*. */
static const char *error_code(const struct ig_gw_request_stats *st, bool v02)
{
	if (st->pod_status)
		return "ModelServerError";
	switch (st->status) {
	case 400:
	case 413:
	case 431:
		return "BadRequest";
	case 404:
		return v02 ? "BadConfiguration" : "NotFound";
	case 429:
		return v02 ? "InferencePoolResourceExhausted" : "ResourceExhausted";
	case 502:
	case 504:
		return "ModelServerError";
	case 503:
		return "ServiceUnavailable";
	default:
		return "Internal";
	}
}

void ig_gw_metrics_render(struct ig_gw_metrics *gm, const struct ig_snapshot *snap,
			  struct ig_buf *out)
{
	gm->render_snap = snap;
	follow_pools(gm, snap);
	ig_registry_render(gm->reg, out);
	gm->render_snap = NULL;
}

struct ig_series *ig_gw_metrics_access_log_dropped(struct ig_gw_metrics *gm)
{
	struct ig_metric_family *f = ig_metrics_counter(
	    gm->reg, "infergate_access_log_dropped_total",
	    "Access log lines lost: a worker's buffer was full, or the file refused them (a full "
	    "disk, a reader gone).",
	    NULL, 0);
	return f ? ig_metrics_series(f, NULL) : NULL;
}

/* ---- a worker's cache of series handles ---- */

/* A request's series are found by their label values, which costs a hash
 * and string compares per family (a dozen families per request). A worker
 * keeps the handles of the (model, target, priority) combinations it saw
 * last; series live as long as the registry, so a handle never goes
 * stale. Direct-mapped: a collision simply replaces the entry. */
#define CACHE_SLOTS 64
#define CACHE_NAME 64

struct cache_entry {
	bool used;
	bool client; /* model and target went through client_label */
	int priority;
	char model[CACHE_NAME];
	char target[CACHE_NAME];
	char fid[CACHE_NAME];
	struct ig_series *req_total, *req_duration, *req_sizes, *resp_sizes, *in_tokens,
	    *out_tokens, *obj_total, *obj_duration, *obj_req_sizes, *obj_resp_sizes, *obj_in_tokens,
	    *obj_out_tokens, *obj_ttft, *obj_tpot, *obj_cached, *obj_ntpot, *running;
	struct ig_series *ld_total, *ld_duration, *ld_req_size, *ld_resp_size, *ld_in, *ld_out,
	    *ld_cached, *ld_running, *ld_ntpot, *ld_ttft, *ld_tpot;
};

/* scheduler_attempts_total's success series by picked endpoint and target
 * model: a pool of 1,024 endpoints has as many series per target, which
 * the registry would find by walking them. The snapshot's generation is
 * part of the key, as a reload may give the endpoint's address to another
 * pod. */
#define ATTEMPT_SLOTS 1024

struct attempt_entry {
	const struct ig_endpoint *ep;
	uint64_t generation;
	bool client;
	char target[CACHE_NAME];
	struct ig_series *s, *ld; /* GIE's, llm-d's */
};

/* Any other family's series by its label values (as the request has
 * them), for those recorded per request: the key is the values, each
 * followed by a NUL, and keys longer than KEYED_KEY are not kept. */
#define KEYED_SLOTS 256
#define KEYED_KEY 240
#define KEYED_LABELS 8
#define KEYED_BUF 4096 /* the longest key requests can make (names <= 1 KiB) */

struct keyed_entry {
	const struct ig_metric_family *f;
	uint32_t len;
	unsigned client;
	char key[KEYED_KEY];
	struct ig_series *s;
};

struct ig_gw_metrics_cache {
	struct cache_entry e[CACHE_SLOTS];
	struct attempt_entry attempts[ATTEMPT_SLOTS];
	struct keyed_entry keyed[KEYED_SLOTS];
};

struct ig_gw_metrics_cache *ig_gw_metrics_cache_new(void)
{
	return calloc(1, sizeof(struct ig_gw_metrics_cache));
}

void ig_gw_metrics_cache_free(struct ig_gw_metrics_cache *c)
{
	free(c);
}

static bool fill(struct ig_gw_metrics *gm, struct cache_entry *e, const char *model,
		 const char *target, int priority, const char *fid)
{
	char prio[16];
	snprintf(prio, sizeof prio, "%d", priority);
	const char *mt[] = {model, target};
	const char *mtp[] = {model, target, prio};
	const char *ld[] = {model, target, fid, prio};
	const char *ldt[] = {model, target, fid, prio, "true"};
	e->ld_total = ig_metrics_series(gm->ld_total, ld);
	e->ld_duration = ig_metrics_series(gm->ld_duration, ld);
	e->ld_req_size = ig_metrics_series(gm->ld_req_size, ld);
	e->ld_resp_size = ig_metrics_series(gm->ld_resp_size, ld);
	e->ld_in = ig_metrics_series(gm->ld_in, ld);
	e->ld_out = ig_metrics_series(gm->ld_out, ld);
	e->ld_cached = ig_metrics_series(gm->ld_cached, ld);
	e->ld_running = ig_metrics_series(gm->ld_running, ld);
	e->ld_ntpot = ig_metrics_series(gm->ld_ntpot, ld);
	e->ld_ttft = ig_metrics_series(gm->ld_ttft, ldt);
	e->ld_tpot = ig_metrics_series(gm->ld_tpot, ld);
	if (!e->ld_total || !e->ld_duration || !e->ld_req_size || !e->ld_resp_size || !e->ld_in ||
	    !e->ld_out || !e->ld_cached || !e->ld_running || !e->ld_ntpot || !e->ld_ttft ||
	    !e->ld_tpot)
		return false;
	e->req_total = ig_metrics_series(gm->req_total, mt);
	e->req_duration = ig_metrics_series(gm->req_duration, mt);
	e->req_sizes = ig_metrics_series(gm->req_sizes, mt);
	e->resp_sizes = ig_metrics_series(gm->resp_sizes, mt);
	e->in_tokens = ig_metrics_series(gm->in_tokens_h, mt);
	e->out_tokens = ig_metrics_series(gm->out_tokens_h, mt);
	e->obj_total = ig_metrics_series(gm->obj_total, mtp);
	e->obj_duration = ig_metrics_series(gm->obj_duration, mt);
	e->obj_req_sizes = ig_metrics_series(gm->obj_req_sizes, mt);
	e->obj_resp_sizes = ig_metrics_series(gm->obj_resp_sizes, mt);
	e->obj_in_tokens = ig_metrics_series(gm->obj_in_tokens, mt);
	e->obj_out_tokens = ig_metrics_series(gm->obj_out_tokens, mt);
	e->obj_ttft = ig_metrics_series(gm->obj_ttft, mt);
	e->obj_tpot = ig_metrics_series(gm->obj_tpot, mt);
	e->obj_cached = ig_metrics_series(gm->obj_cached, mt);
	e->obj_ntpot = ig_metrics_series(gm->obj_ntpot, mt);
	/* GIE counts no running request without a model name. */
	e->running = *model ? ig_metrics_series(gm->obj_running, (const char *[]){model}) : NULL;
	return e->req_total && e->req_duration && e->req_sizes && e->resp_sizes && e->in_tokens &&
	       e->out_tokens && e->obj_total && e->obj_duration && e->obj_req_sizes &&
	       e->obj_resp_sizes && e->obj_in_tokens && e->obj_out_tokens && e->obj_ttft &&
	       e->obj_tpot && e->obj_cached && e->obj_ntpot && (e->running || !*model);
}

/* The entry for a request's model and target (as the request names them)
 * and priority, filled on a miss; NULL out of memory. Names a client chose
 * become label values through client_label on a miss only: a worker that
 * sees the same names again takes no lock. */
static struct cache_entry *lookup(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
				  struct cache_entry *scratch, const char *model,
				  const char *target, int priority, struct ig_str fid_in,
				  bool client)
{
	char fid[CACHE_NAME * 4];
	size_t ml = strlen(model), tl = strlen(target);
	size_t fl = fid_in.len < sizeof fid ? fid_in.len : sizeof fid - 1;
	if (fl)
		memcpy(fid, fid_in.ptr, fl);
	fid[fl] = '\0';
	struct cache_entry *e = scratch;
	if (c && ml < CACHE_NAME && tl < CACHE_NAME && fl < CACHE_NAME) {
		uint64_t h = XXH3_64bits(model, ml) ^ (XXH3_64bits(target, tl) * 31) ^
			     (XXH3_64bits(fid, fl) * 37) ^
			     ((uint64_t)(unsigned)priority * 0x9e3779b97f4a7c15u) ^ client;
		e = &c->e[h % CACHE_SLOTS];
		if (e->used && e->priority == priority && e->client == client &&
		    strcmp(e->model, model) == 0 && strcmp(e->target, target) == 0 &&
		    strcmp(e->fid, fid) == 0)
			return e;
	}
	e->used = false;
	const char *lm = client ? client_label(gm, model) : model;
	const char *lt = client ? client_label(gm, target) : target;
	if (!fill(gm, e, lm, lt, priority, fairness_label(gm, fid)))
		return NULL;
	e->used = e != scratch;
	e->client = client;
	e->priority = priority;
	snprintf(e->model, sizeof e->model, "%s", model);
	snprintf(e->target, sizeof e->target, "%s", target);
	memcpy(e->fid, fid, fl < sizeof e->fid ? fl + 1 : 0); /* a scratch entry keeps none */
	return e;
}

static void count_error(struct ig_gw_metrics *gm, const struct ig_gw_request_stats *st,
			const char *model, const char *target)
{
	const char *v02[] = {model, target, error_code(st, true)};
	const char *v15[] = {model, target, error_code(st, false)};
	struct ig_series *e;
	if ((e = ig_metrics_series(gm->req_errors, v02)))
		ig_counter_add(e, 1);
	if ((e = ig_metrics_series(gm->obj_errors, v15)))
		ig_counter_add(e, 1);
	char prio[16], fid[CACHE_NAME * 4];
	snprintf(prio, sizeof prio, "%d", st->priority);
	snprintf(fid, sizeof fid, "%.*s", (int)st->fairness_id.len,
		 st->fairness_id.ptr ? st->fairness_id.ptr : "");
	const char *ld[] = {model, target, fairness_label(gm, fid), prio, error_code(st, false)};
	if ((e = ig_metrics_series(gm->ld_errors, ld)))
		ig_counter_add(e, 1);
}

/* The series of f for n label values; a value whose bit is set in
 * `client` was chosen by a client and becomes a label value through
 * client_label, on a miss only. NULL out of memory (or for values longer
 * than any request can send). */
static struct ig_series *keyed_series(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
				      struct ig_metric_family *f, const struct ig_str *v, size_t n,
				      unsigned client)
{
	char buf[KEYED_BUF];
	const char *lv[KEYED_LABELS];
	size_t len = 0;
	if (!f || n > KEYED_LABELS)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i].len >= sizeof buf - len)
			return NULL;
		if (v[i].len)
			memcpy(buf + len, v[i].ptr, v[i].len);
		lv[i] = buf + len;
		len += v[i].len;
		buf[len++] = '\0';
	}
	struct keyed_entry *e = NULL;
	if (c && len <= KEYED_KEY) {
		uint64_t h =
		    XXH3_64bits(buf, len) ^ ((uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15u) ^ client;
		e = &c->keyed[h % KEYED_SLOTS];
		if (e->s && e->f == f && e->len == len && e->client == client &&
		    memcmp(e->key, buf, len) == 0)
			return e->s;
	}
	for (size_t i = 0; i < n; i++)
		if (client >> i & 1)
			lv[i] = client_label(gm, lv[i]);
	struct ig_series *s = ig_metrics_series(f, lv);
	if (e && s) {
		e->f = f;
		e->len = (uint32_t)len;
		e->client = client;
		memcpy(e->key, buf, len);
		e->s = s;
	}
	return s;
}

static struct ig_str str_of(const char *s)
{
	return s ? ig_str_from(s) : (struct ig_str){"", 0};
}

/* GIE counts a decision each time a rule chose the target model
 * (requestcontrol/director.go applyWeightedModelRewrite). */
void ig_gw_metrics_rewrite(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
			   const char *rewrite_name, const char *model, const char *target,
			   bool client_labels)
{
	const struct ig_str v[] = {str_of(rewrite_name), str_of(model), str_of(target)};
	struct ig_series *s = keyed_series(gm, c, gm->rewrites, v, 3, client_labels ? 2u : 0u);
	if (s)
		ig_counter_add(s, 1);
	if ((s = keyed_series(gm, c, gm->ld_rewrites, v, 3, client_labels ? 2u : 0u)))
		ig_counter_add(s, 1);
}

/* The pod behind an endpoint of a pool: its name and namespace (empty when
 * no pod of the configuration has the endpoint's address, which a
 * snapshot's endpoints always do), and the endpoint's port. Scans the
 * pods: on a cache miss only. */
static void pod_of(const struct ig_snapshot *snap, const struct ig_pool_rt *rt,
		   const struct ig_endpoint *ep, const char **name, const char **ns,
		   char port[static 8])
{
	const char *colon = strrchr(ep->addr, ':');
	struct ig_str host = {ep->addr, colon ? (size_t)(colon - ep->addr) : strlen(ep->addr)};
	snprintf(port, 8, "%s", colon ? colon + 1 : "");
	if (host.len >= 2 && host.ptr[0] == '[') { /* [v6]:port */
		host.ptr++;
		host.len -= 2;
	}
	*name = *ns = "";
	const struct ig_config *cfg = snap ? snap->cfg : NULL;
	for (size_t i = 0; cfg && rt && i < cfg->npods; i++) {
		const struct ig_pod *pod = &cfg->pods[i];
		if (pod->ip && ig_str_eq_cstr(host, pod->ip) && ig_pool_selects(rt->pool, pod)) {
			*name = pod->meta.name;
			*ns = pod->meta.ns;
			return;
		}
	}
}

/* The success series for the picked endpoint and the target (GIE's, and
 * llm-d's in *ld). */
static struct ig_series *attempt_series(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
					const struct ig_gw_sched_stats *st, const char *target,
					struct ig_series **ld)
{
	size_t tl = strlen(target);
	uint64_t gen = st->snap ? st->snap->generation : 0;
	struct attempt_entry *e = NULL;
	if (c && tl < CACHE_NAME) {
		uint64_t h = st->picked->key ^ (XXH3_64bits(target, tl) * 31) ^
			     (gen * 0x9e3779b97f4a7c15u) ^ st->client_labels;
		e = &c->attempts[h % ATTEMPT_SLOTS];
		if (e->s && e->ep == st->picked && e->generation == gen &&
		    e->client == st->client_labels && strcmp(e->target, target) == 0) {
			*ld = e->ld;
			return e->s;
		}
	}
	const char *name, *ns;
	char port[8];
	pod_of(st->snap, st->pool, st->picked, &name, &ns, port);
	const char *v[] = {"success", st->client_labels ? client_label(gm, target) : target, name,
			   ns, port};
	struct ig_series *s = ig_metrics_series(gm->sched_attempts, v);
	*ld = ig_metrics_series(gm->ld_attempts, v);
	if (e && s && *ld) {
		*e = (struct attempt_entry){st->picked, gen, st->client_labels, "", s, *ld};
		memcpy(e->target, target, tl + 1);
	}
	return s;
}

struct ig_series *ig_gw_metrics_plugin_series(struct ig_gw_metrics *gm,
					      const struct ig_sched_plugin *pl, bool llmd)
{
	struct ig_metric_family *f = llmd ? gm->ld_plugin : gm->plugin_dur;
	if (!f || !pl)
		return NULL;
	const char *v[] = {pl->extension_point, pl->type, pl->name};
	return ig_metrics_series(f, v);
}

/* GIE records the latency and the attempt of every Schedule call, failed
 * ones included (scheduling/scheduler.go), and the prefix match of the
 * endpoint it picked (approximateprefix PreRequest). */
void ig_gw_metrics_schedule(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
			    const struct ig_gw_sched_stats *st)
{
	const char *target = st->target ? st->target : "";
	if (gm->sched_e2e_s)
		ig_hist_observe(gm->sched_e2e_s, st->seconds);
	if (gm->ld_e2e_s)
		ig_hist_observe(gm->ld_e2e_s, st->seconds);
	struct ig_series *s, *ld = NULL;
	if (!st->picked) {
		const char *v[] = {"failure", st->client_labels ? client_label(gm, target) : target,
				   "", "", ""};
		if ((s = ig_metrics_series(gm->sched_attempts, v)))
			ig_counter_add(s, 1);
		if ((s = ig_metrics_series(gm->ld_attempts, v)))
			ig_counter_add(s, 1);
		return;
	}
	if ((s = attempt_series(gm, c, st, target, &ld)))
		ig_counter_add(s, 1);
	if (ld)
		ig_counter_add(ld, 1);
	if (st->hit_bytes >= 0 && gm->hit_bytes_s)
		ig_hist_observe(gm->hit_bytes_s, (double)st->hit_bytes);
	if (st->hit_ratio >= 0 && gm->hit_ratio_s)
		ig_hist_observe(gm->hit_ratio_s, st->hit_ratio);
}

void ig_gw_metrics_running(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
			   const char *model, const char *target, int priority,
			   struct ig_str fairness_id, bool client_labels,
			   struct ig_series *out[IG_GW_RUNNING_SERIES])
{
	out[0] = out[1] = NULL;
	if (!model || !*model)
		return;
	struct cache_entry scratch;
	struct cache_entry *e = lookup(gm, c, &scratch, model, target ? target : "", priority,
				       fairness_id, client_labels);
	if (!e || !e->running)
		return;
	ig_gauge_add(e->running, 1);
	ig_gauge_add(e->ld_running, 1);
	out[0] = e->running;
	out[1] = e->ld_running;
}

void ig_gw_metrics_done(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
			const struct ig_gw_request_stats *st)
{
	const char *model = st->model ? st->model : "", *target = st->target ? st->target : "";
	for (size_t i = 0; i < IG_GW_RUNNING_SERIES; i++)
		if (st->running[i])
			ig_gauge_add(st->running[i], -1);
	bool failed = st->status >= 400 || st->status == 0;
	if (failed && st->status != 499)
		count_error(gm, st, st->client_labels ? client_label(gm, model) : model,
			    st->client_labels ? client_label(gm, target) : target);
	/* request_total counts what was parsed, admitted and scheduled. */
	if (!st->scheduled)
		return;
	struct cache_entry scratch;
	struct cache_entry *e = lookup(gm, c, &scratch, model, target, st->priority,
				       st->fairness_id, st->client_labels);
	if (!e)
		return;
	ig_counter_add(e->req_total, 1);
	ig_counter_add(e->obj_total, 1);
	ig_counter_add(e->ld_total, 1);
	ig_hist_observe(e->ld_req_size, (double)st->req_bytes);
	/* GIE (v0.2's servers and v1.5's) records the request's size with its
	 * count, once the body is handled, whatever happens to it later. */
	ig_hist_observe2(e->req_sizes, e->obj_req_sizes, (double)st->req_bytes);
	/* GIE's response path handles a model server's error answer as any
	 * other response (v1.5 handlers/response.go HandleResponseBody):
	 * its usage, if any, and at the end of its stream its latency, size
	 * and NTPOT. A failure the gateway answered itself never got there. */
	if (failed && !st->pod_status)
		return;
	if (st->in_tokens > 0) {
		ig_hist_observe2(e->in_tokens, e->obj_in_tokens, (double)st->in_tokens);
		ig_hist_observe(e->ld_in, (double)st->in_tokens);
	}
	if (st->out_tokens > 0) {
		ig_hist_observe2(e->out_tokens, e->obj_out_tokens, (double)st->out_tokens);
		ig_hist_observe(e->ld_out, (double)st->out_tokens);
	}
	if (st->cached_tokens >= 0)
		ig_hist_observe2(e->obj_cached, e->ld_cached, (double)st->cached_tokens);
	/* GIE's latency plugins time the tokens of answers; an error
	 * answer streams none. */
	if (!failed && st->ttft >= 0)
		ig_hist_observe2(e->obj_ttft, e->ld_ttft, st->ttft);
	if (!failed && st->tpot >= 0)
		ig_hist_observe2(e->obj_tpot, e->ld_tpot, st->tpot);
	/* The latency, the response's size and NTPOT are GIE's at the end of
	 * the response's stream (v1.5 handlers/response.go; v0.2 once the
	 * whole body was read): a response that never got there records
	 * none of them. */
	if (st->cut)
		return;
	ig_hist_observe2(e->req_duration, e->obj_duration, st->seconds);
	ig_hist_observe(e->ld_duration, st->seconds);
	ig_hist_observe2(e->resp_sizes, e->obj_resp_sizes, (double)st->resp_bytes);
	ig_hist_observe(e->ld_resp_size, (double)st->resp_bytes);
	/* NTPOT: arrival to the response's end over the usage's output
	 * tokens; GIE records nothing without output tokens. */
	if (st->out_tokens > 0 && st->seconds > 0)
		ig_hist_observe2(e->obj_ntpot, e->ld_ntpot, st->seconds / (double)st->out_tokens);
}

/* ---- flow control ---- */

static const char *const queue_outcomes[] = {
    [IG_GW_FLOW_PASSED] = "Dispatched",
    [IG_GW_FLOW_REJECTED_CAPACITY] = "RejectedCapacity",
    [IG_GW_FLOW_REJECTED_OTHER] = "RejectedOther",
    [IG_GW_FLOW_DISPATCHED] = "Dispatched",
    [IG_GW_FLOW_EVICTED_TTL] = "EvictedTTL",
    [IG_GW_FLOW_EVICTED_CANCELLED] = "EvictedContextCancelled",
    [IG_GW_FLOW_EVICTED_OTHER] = "EvictedOther",
};

/* GIE records these at the points of its flow controller that infergate's
 * worker queue has too (controller.go EnqueueAndWait, processor.go
 * enqueue, item.go finalize): the gauges move while a request is queued,
 * and the outcome of every request flow control saw is timed. */
void ig_gw_metrics_flow(struct ig_gw_metrics *gm, struct ig_gw_metrics_cache *c,
			enum ig_gw_flow_event ev, const struct ig_gw_flow_stats *st)
{
	char prio[16];
	snprintf(prio, sizeof prio, "%d", st->priority);
	struct ig_str fid = st->fairness_id, pr = ig_str_from(prio), pool = str_of(st->pool),
		      ns = str_of(st->pool_ns), model = str_of(st->model),
		      target = str_of(st->target);
	/* The fairness id is always the client's; the models may be. */
	unsigned mt = st->client_labels ? 3u : 0u;
	int gauge = ev == IG_GW_FLOW_QUEUED ? 1 : ev >= IG_GW_FLOW_DISPATCHED ? -1 : 0;
	struct ig_series *s;
	if (gauge) {
		const struct ig_str v[] = {fid, pr, pool, ns, model, target};
		for (int ld = 0; ld < 2; ld++) {
			if ((s = keyed_series(gm, c, ld ? gm->ld_fc_queue_size : gm->fc_queue_size,
					      v, 6, 1u | mt << 4)))
				ig_gauge_add(s, gauge);
			if ((s = keyed_series(gm, c,
					      ld ? gm->ld_fc_queue_bytes : gm->fc_queue_bytes, v, 6,
					      1u | mt << 4)))
				ig_gauge_add(s, gauge * (double)st->bytes);
		}
	}
	if (ev != IG_GW_FLOW_QUEUED) {
		const struct ig_str v[] = {fid,	  pr,	 ig_str_from(queue_outcomes[ev]), pool, ns,
					   model, target};
		for (int ld = 0; ld < 2; ld++)
			if ((s = keyed_series(gm, c,
					      ld ? gm->ld_fc_queue_duration : gm->fc_queue_duration,
					      v, 7, 1u | mt << 5)))
				ig_hist_observe(s, ev == IG_GW_FLOW_PASSED ? 0 : st->seconds);
		/* llm-d counts each request once, at its terminal outcome. */
		const struct ig_str o[] = {ig_str_from(queue_outcomes[ev]), pr, pool, ns};
		if ((s = keyed_series(gm, c, gm->ld_fc_requests, o, 4, 0)))
			ig_counter_add(s, 1);
	}
	if (ev == IG_GW_FLOW_PASSED || ev == IG_GW_FLOW_QUEUED ||
	    ev == IG_GW_FLOW_REJECTED_CAPACITY || ev == IG_GW_FLOW_REJECTED_OTHER) {
		/* A request pushed is not finalized yet when GIE's enqueue
		 * step ends (processor.go enqueue). GIE pushes every request,
		 * one it then dispatches at once too; infergate pushes none
		 * while the pool has room, so that step takes it no time. */
		bool pushed = ev == IG_GW_FLOW_PASSED || ev == IG_GW_FLOW_QUEUED;
		const struct ig_str v[] = {
		    fid, pr, ig_str_from(pushed ? "NotYetFinalized" : queue_outcomes[ev])};
		for (int ld = 0; ld < 2; ld++)
			if ((s = keyed_series(
				 gm, c, ld ? gm->ld_fc_enqueue_duration : gm->fc_enqueue_duration,
				 v, 3, 1u)))
				ig_hist_observe(s, ev == IG_GW_FLOW_PASSED ? 0 : st->seconds);
	}
	/* GIE's processor runs a dispatch cycle as each request arrives,
	 * which sends one that finds room on; here the admission check is
	 * that cycle (the shard's series: no write to another worker's). */
	if (ev == IG_GW_FLOW_PASSED && gm->fc_dispatch_s)
		ig_hist_observe(gm->fc_dispatch_s, st->seconds);
	if (ev == IG_GW_FLOW_PASSED && gm->ld_fc_dispatch_s)
		ig_hist_observe(gm->ld_fc_dispatch_s, st->seconds);
}

void ig_gw_metrics_dispatch_cycle(struct ig_gw_metrics *gm, double seconds)
{
	if (gm->fc_dispatch_s)
		ig_hist_observe(gm->fc_dispatch_s, seconds);
	if (gm->ld_fc_dispatch_s)
		ig_hist_observe(gm->ld_fc_dispatch_s, seconds);
}

void ig_gw_metrics_flow_control(struct ig_gw_metrics *gm, bool on)
{
	gm->flow_control = on;
}

void ig_gw_metrics_staleness(struct ig_gw_metrics *gm, uint64_t ms)
{
	gm->staleness_ms = ms ? ms : POOL_STALENESS_MS;
}
