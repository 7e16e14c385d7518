/* What a request's stages record in the gateway's metrics (metrics.h),
 * made from the request: each stage makes one call at the point where
 * GIE v1.5 records the same thing, and the labels are gathered here. */
#include <errno.h>

#include "core/clock.h"
#include "gateway/metrics.h"
#include "gateway/request.h"
#include "gateway/snapshot.h"
#include "metrics/registry.h"

void ig_req_metrics_dispatched(struct ig_req *p)
{
	if (p->service || p->running[0])
		return; /* Service backends are not inference requests */
	ig_gw_metrics_running(p->w->gw->metrics, p->w->mcache, p->model.ptr, p->target.ptr,
			      p->priority, p->flow_id, !p->resolved, p->running);
}

/* The bytes of the prompt the picked endpoint holds: its matched blocks,
 * the last one as long as it is when it is the prompt's tail (the bytes
 * after the last full block, hashed as one more block). Matched blocks
 * are a prefix of the hashed ones, and only the last hashed block can be
 * short, so that is the blocks' bytes, at most the input's length. */
static long hit_bytes(const struct ig_sched_result *r, size_t input_len)
{
	if (!r->prefix_block_bytes)
		return -1;
	size_t bytes = r->prefix_match_blocks * r->prefix_block_bytes;
	return (long)(bytes < input_len ? bytes : input_len);
}

void ig_req_metrics_scheduled(struct ig_req *p, uint64_t t0, const struct ig_endpoint *picked)
{
	const struct ig_sched_result *r = &p->res;
	struct ig_gw_sched_stats st = {
	    .target = p->target.ptr,
	    .client_labels = !p->resolved,
	    .snap = p->snap,
	    .pool = p->pool,
	    .picked = picked,
	    .seconds = (double)(ig_now_ns() - t0) / 1e9,
	    .hit_bytes = hit_bytes(r, p->prefix_input.len),
	    .hit_ratio = r->prefix_block_bytes && r->nprefix_hashes
			     ? (double)r->prefix_match_blocks / (double)r->nprefix_hashes
			     : -1,
	};
	ig_gw_metrics_schedule(p->w->gw->metrics, p->w->mcache, &st);
}

void ig_req_metrics_plugins(struct ig_req *p, const uint32_t *ticks)
{
	const struct ig_sched_result *r = &p->res;
	struct ig_sched_ref *ref = p->pool->sched;
	if (!r->nplugin_ticks)
		return;
	double per_tick = ig_ticks_seconds(1);
	for (size_t k = 0; k < r->nplugin_ticks; k++) {
		size_t i = r->plugin_first + k;
		/* GIE's series and llm-d's, side by side. */
		for (size_t j = 2 * i; j < 2 * i + 2; j++) {
			struct ig_series *s =
			    atomic_load_explicit(&ref->plugin_series[j], memory_order_acquire);
			if (!s) {
				/* The first request a scheduler runs this plugin
				 * for finds its series (every worker finds the
				 * same). */
				s = ig_gw_metrics_plugin_series(
				    p->w->gw->metrics, ig_scheduler_plugin(ref->s, i), j & 1);
				if (!s)
					continue;
				atomic_store_explicit(&ref->plugin_series[j], s,
						      memory_order_release);
			}
			ig_hist_observe(s, (double)ticks[k] * per_tick);
		}
	}
}

void ig_req_metrics_rewrite(struct ig_req *p, const struct ig_model_rewrite *rw,
			    const struct ig_rewrite_rule *rule, const char *target)
{
	/* A rule without matches takes any model: the client's choice. */
	ig_gw_metrics_rewrite(p->w->gw->metrics, p->w->mcache, rw ? rw->meta.name : "",
			      p->model.ptr, target, rule->nmodels == 0);
}

static void flow(struct ig_req *p, enum ig_gw_flow_event ev, double seconds)
{
	struct ig_gw_flow_stats st = {
	    .fairness_id = p->flow_id,
	    .priority = p->priority,
	    .pool = p->pool ? p->pool->pool->meta.name : "",
	    .pool_ns = p->pool ? p->pool->pool->meta.ns : "",
	    .model = p->model.ptr,
	    .target = p->target.ptr,
	    .client_labels = !p->resolved,
	    .bytes = p->body_len,
	    .seconds = seconds,
	};
	ig_gw_metrics_flow(p->w->gw->metrics, p->w->mcache, ev, &st);
}

void ig_req_metrics_flow(struct ig_req *p, enum ig_gw_flow_event ev, uint64_t now_ns)
{
	flow(p, ev, now_ns > p->qstart_ns ? (double)(now_ns - p->qstart_ns) / 1e9 : 0);
}

void ig_req_metrics_passed(struct ig_req *p, uint64_t t0)
{
	uint64_t now = ig_now_ns();
	flow(p, IG_GW_FLOW_PASSED, now > t0 ? (double)(now - t0) / 1e9 : 0);
}

void ig_req_metrics_pushed(struct ig_req *p, int rc)
{
	ig_req_metrics_flow(p,
			    rc == 0	    ? IG_GW_FLOW_QUEUED
			    : rc == -ENOSPC ? IG_GW_FLOW_REJECTED_CAPACITY
					    : IG_GW_FLOW_REJECTED_OTHER,
			    ig_now_ns());
}

/* GIE's outcomes of a wait that ended early (item.go inferOutcome): its
 * context's deadline, EvictedTTL; the client gone, EvictedContextCancelled. */
void ig_req_metrics_unqueued(struct ig_req *p)
{
	ig_req_metrics_flow(p,
			    p->status == 499   ? IG_GW_FLOW_EVICTED_CANCELLED
			    : p->status == 504 ? IG_GW_FLOW_EVICTED_TTL
					       : IG_GW_FLOW_EVICTED_OTHER,
			    ig_now_ns());
}
