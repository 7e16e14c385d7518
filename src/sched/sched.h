/* The endpoint picker: a pure function of (request features, endpoints and
 * their metrics, configuration) to a choice. No sockets, threads or clocks;
 * randomness comes from the caller's generator so tests are repeatable. */
#ifndef IG_SCHED_SCHED_H
#define IG_SCHED_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rand.h"
#include "core/str.h"
#include "pool/metrics.h"

/* GIE v0.2.0 thresholds (gie-reference §3.4). */
#define IG_KV_CACHE_THRESHOLD 0.8
#define IG_QUEUE_THRESHOLD_CRITICAL 5
#define IG_QUEUEING_THRESHOLD_LORA 128
#define IG_LORA_AFFINITY_THRESHOLD 0.999

struct ig_sched_request {
	struct ig_str model;	    /* as the client asked */
	struct ig_str target_model; /* after the InferenceModel's weighted draw */
	bool critical;		    /* criticality == Critical */
};

/* The candidates: eps[i] is endpoint i's metrics. Filters work on index
 * lists so the caller keeps its own endpoint objects. */
struct ig_sched_set {
	size_t *idx;
	size_t n;
};

/* The GIE v0.2.0 decision tree followed by a uniform choice among the
 * survivors. Returns 0 with *chosen set to an index into eps, or -1 when
 * the request must be dropped (429: "dropping request due to limited
 * backend resources"), including when n == 0. */
int ig_sched_decision_tree(const struct ig_sched_request *req,
			   const struct ig_endpoint_metrics *const *eps, size_t n,
			   struct ig_rng *rng, size_t *chosen);

/* The same tree used as a filter (the picker framework's
 * decision-tree-filter): runs it over the candidates `in` (indices into
 * eps) and writes the survivors the uniform choice would draw from to
 * `out` (room for in->n entries). Returns -1 when the request must be
 * dropped or on allocation failure (out->n is then 0), else 0. */
int ig_sched_decision_tree_filter(const struct ig_sched_request *req,
				  const struct ig_endpoint_metrics *const *eps,
				  const struct ig_sched_set *in, struct ig_rng *rng,
				  struct ig_sched_set *out);

/* The tree's filters, exposed for tests. Each reads `in` and writes the
 * survivors to `out` (out->idx has room for in->n entries). The predicate
 * filters return -1 when nothing passes ("no pods left"), else 0. */
void ig_filter_least_queuing(const struct ig_endpoint_metrics *const *eps,
			     const struct ig_sched_set *in, struct ig_sched_set *out);
void ig_filter_least_kv_cache(const struct ig_endpoint_metrics *const *eps,
			      const struct ig_sched_set *in, struct ig_sched_set *out);
int ig_filter_low_queueing(const struct ig_endpoint_metrics *const *eps,
			   const struct ig_sched_set *in, struct ig_sched_set *out);
int ig_filter_has_capacity_for_sheddable(const struct ig_endpoint_metrics *const *eps,
					 const struct ig_sched_set *in, struct ig_sched_set *out);
int ig_filter_lora_soft_affinity(const struct ig_sched_request *req,
				 const struct ig_endpoint_metrics *const *eps,
				 const struct ig_sched_set *in, struct ig_sched_set *out,
				 struct ig_rng *rng);

/* InferenceModel traffic split (gie-reference §3.5): with weights, index i
 * with probability w_i / sum(w); without weights (has_weights false),
 * uniform. n must be > 0. */
size_t ig_sched_weighted_draw(const int32_t *weights, size_t n, bool has_weights,
			      struct ig_rng *rng);

#endif
