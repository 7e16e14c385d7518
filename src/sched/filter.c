/* The GIE v0.2.0 filters (gie-reference §3.4), reproduced with their exact
 * arithmetic: integer division in leastQueuing, float in leastKVCache,
 * inclusive thresholds where GIE uses <=, and the same starting values for
 * the min/max scans (max starts at 0, not at the first element). */
#include "sched/sched.h"

#include <float.h>
#include <string.h>

static void keep(struct ig_sched_set *out, size_t i)
{
	out->idx[out->n++] = i;
}

void ig_filter_least_queuing(const struct ig_endpoint_metrics *const *eps,
			     const struct ig_sched_set *in, struct ig_sched_set *out)
{
	int64_t min = INT64_MAX, max = 0;
	out->n = 0;
	if (in->n == 0)
		return;
	for (size_t k = 0; k < in->n; k++) {
		int64_t q = eps[in->idx[k]]->waiting;
		if (q <= min)
			min = q;
		if (q >= max)
			max = q;
	}
	int64_t limit = min + (max - min) / (int64_t)in->n;
	for (size_t k = 0; k < in->n; k++) {
		int64_t q = eps[in->idx[k]]->waiting;
		if (q >= min && q <= limit)
			keep(out, in->idx[k]);
	}
}

void ig_filter_least_kv_cache(const struct ig_endpoint_metrics *const *eps,
			      const struct ig_sched_set *in, struct ig_sched_set *out)
{
	double min = DBL_MAX, max = 0;
	out->n = 0;
	if (in->n == 0)
		return;
	for (size_t k = 0; k < in->n; k++) {
		double kv = eps[in->idx[k]]->kv_usage;
		if (kv <= min)
			min = kv;
		if (kv >= max)
			max = kv;
	}
	double limit = min + (max - min) / (double)in->n;
	for (size_t k = 0; k < in->n; k++) {
		double kv = eps[in->idx[k]]->kv_usage;
		if (kv >= min && kv <= limit)
			keep(out, in->idx[k]);
	}
}

int ig_filter_low_queueing(const struct ig_endpoint_metrics *const *eps,
			   const struct ig_sched_set *in, struct ig_sched_set *out)
{
	out->n = 0;
	for (size_t k = 0; k < in->n; k++)
		if (eps[in->idx[k]]->waiting < IG_QUEUEING_THRESHOLD_LORA)
			keep(out, in->idx[k]);
	return out->n ? 0 : -1;
}

int ig_filter_has_capacity_for_sheddable(const struct ig_endpoint_metrics *const *eps,
					 const struct ig_sched_set *in, struct ig_sched_set *out)
{
	out->n = 0;
	for (size_t k = 0; k < in->n; k++) {
		const struct ig_endpoint_metrics *m = eps[in->idx[k]];
		if (m->waiting <= IG_QUEUE_THRESHOLD_CRITICAL &&
		    m->kv_usage <= IG_KV_CACHE_THRESHOLD)
			keep(out, in->idx[k]);
	}
	return out->n ? 0 : -1;
}

/* The model a request runs as: the drawn target, or the requested name
 * when the caller did no traffic split. */
static struct ig_str target_of(const struct ig_sched_request *req)
{
	return req->target_model.len ? req->target_model : req->model;
}

/* Endpoints with the adapter already active are preferred with probability
 * 0.999; the rest of the time (and whenever none has it) endpoints with
 * room for one more adapter are used, which spreads adapters over time.
 * The generator is only consulted when both groups are non-empty, as in
 * GIE. Writes the affinity group to `out` and the available group after
 * it, then keeps one of them. Returns -1 when both are empty. */
int ig_filter_lora_soft_affinity(const struct ig_sched_request *req,
				 const struct ig_endpoint_metrics *const *eps,
				 const struct ig_sched_set *in, struct ig_sched_set *out,
				 struct ig_rng *rng)
{
	uint64_t target = ig_adapter_hash(target_of(req));
	size_t n_aff = 0, n_avail = 0;
	/* Affinity indices fill out->idx from the front, available ones from
	 * the back; together they never exceed in->n. */
	for (size_t k = 0; k < in->n; k++) {
		const struct ig_endpoint_metrics *m = eps[in->idx[k]];
		if (ig_adapter_set_has_hash(&m->active, target))
			out->idx[n_aff++] = in->idx[k];
		else if ((int64_t)m->active.n < m->max_active)
			out->idx[in->n - ++n_avail] = in->idx[k];
	}
	bool use_affinity = n_aff > 0;
	if (n_aff > 0 && n_avail > 0)
		use_affinity = ig_rng_double(rng) < IG_LORA_AFFINITY_THRESHOLD;
	if (use_affinity) {
		out->n = n_aff;
		return 0;
	}
	/* The back part is in reverse input order: reverse it in place, then
	 * move it to the front (the regions may overlap). */
	size_t *back = out->idx + (in->n - n_avail);
	for (size_t a = 0, b = n_avail; a + 1 < b; a++, b--) {
		size_t t = back[a];
		back[a] = back[b - 1];
		back[b - 1] = t;
	}
	memmove(out->idx, back, n_avail * sizeof *back);
	out->n = n_avail;
	return n_avail ? 0 : -1;
}
