/* The GIE v0.2.0 decision tree (gie-reference §3.4) and the InferenceModel
 * traffic split (§3.5).
 *
 * The tree is data, shaped exactly like GIE's: each node runs one filter
 * and names what runs next on success, on failure, or on either. Success
 * means no error and a non-empty result; a successful node hands its
 * result on, a failing one hands on its *input*, so a filter that rules
 * everything out is simply skipped. */
#include "sched/sched.h"

#include <stdlib.h>

#include "core/scratch.h"

enum filter_id {
	F_CRITICAL, /* request predicate: all endpoints if critical, else none */
	F_LOW_QUEUEING,
	F_HAS_CAPACITY,
	F_LEAST_QUEUING,
	F_LEAST_KV,
	F_LORA_AFFINITY,
	F_DROP,
};

struct node {
	enum filter_id filter;
	const struct node *on_success;
	const struct node *on_failure;
	const struct node *on_either;
};

static const struct node least_kv = {F_LEAST_KV, NULL, NULL, NULL};
static const struct node lora_then_kv = {F_LORA_AFFINITY, NULL, NULL, &least_kv};
static const struct node queue_lora_kv = {F_LEAST_QUEUING, NULL, NULL, &lora_then_kv};
static const struct node queue_kv = {F_LEAST_QUEUING, NULL, NULL, &least_kv};
static const struct node affinity_first = {F_LORA_AFFINITY, NULL, NULL, &queue_kv};
static const struct node low_latency = {F_LOW_QUEUEING, &affinity_first, &queue_lora_kv, NULL};
static const struct node drop = {F_DROP, NULL, NULL, NULL};
static const struct node sheddable = {F_HAS_CAPACITY, &queue_lora_kv, &drop, NULL};
static const struct node root = {F_CRITICAL, &low_latency, &sheddable, NULL};

/* The longest path through the tree visits five nodes; each needs its own
 * output so that a failing node's input survives for the next one. */
#define TREE_DEPTH 5
/* Pools up to this size are scheduled on the stack, larger ones in the
 * thread's scratch memory (kept between calls): no allocation per call. */
#define STACK_ENDPOINTS 64

static _Thread_local struct ig_scratch tree_mem;

struct run {
	const struct ig_sched_request *req;
	const struct ig_endpoint_metrics *const *eps;
	struct ig_rng *rng;
};

static int critical(const struct run *r, const struct ig_sched_set *in, struct ig_sched_set *out)
{
	out->n = 0;
	if (r->req->critical)
		for (size_t k = 0; k < in->n; k++)
			out->idx[out->n++] = in->idx[k];
	return out->n ? 0 : -1;
}

static int apply(const struct run *r, enum filter_id f, const struct ig_sched_set *in,
		 struct ig_sched_set *out)
{
	switch (f) {
	case F_CRITICAL:
		return critical(r, in, out);
	case F_LOW_QUEUEING:
		return ig_filter_low_queueing(r->eps, in, out);
	case F_HAS_CAPACITY:
		return ig_filter_has_capacity_for_sheddable(r->eps, in, out);
	case F_LEAST_QUEUING:
		ig_filter_least_queuing(r->eps, in, out);
		return 0;
	case F_LEAST_KV:
		ig_filter_least_kv_cache(r->eps, in, out);
		return 0;
	case F_LORA_AFFINITY:
		return ig_filter_lora_soft_affinity(r->req, r->eps, in, out, r->rng);
	case F_DROP:
		break;
	}
	out->n = 0;
	return -1;
}

/* Walks the tree from the root. `scratch` holds TREE_DEPTH * all->n slots.
 * Returns the last node's error (0 or -1) with its output in *result. */
static int walk(const struct run *r, const struct ig_sched_set *all, size_t *scratch,
		struct ig_sched_set *result)
{
	const struct node *node = &root;
	struct ig_sched_set in = *all;
	for (size_t level = 0; level < TREE_DEPTH; level++) {
		struct ig_sched_set out = {scratch + level * all->n, 0};
		int rc = apply(r, node->filter, &in, &out);
		bool ok = rc == 0 && out.n > 0;
		const struct node *next = ok ? node->on_success : node->on_failure;
		if (!next)
			next = node->on_either;
		if (!next) {
			*result = out;
			return rc;
		}
		if (ok)
			in = out;
		node = next;
	}
	return -1; /* unreachable: the tree is no deeper than TREE_DEPTH */
}

int ig_sched_decision_tree(const struct ig_sched_request *req,
			   const struct ig_endpoint_metrics *const *eps, size_t n,
			   struct ig_rng *rng, size_t *chosen)
{
	size_t stack[(TREE_DEPTH + 1) * STACK_ENDPOINTS];
	size_t *mem = stack;
	if (n == 0)
		return -1;
	if (n > STACK_ENDPOINTS) {
		if (n > SIZE_MAX / sizeof(size_t) / (TREE_DEPTH + 1))
			return -1;
		mem = ig_scratch_get(&tree_mem, (TREE_DEPTH + 1) * n * sizeof(size_t));
		if (!mem)
			return -1;
	}
	struct ig_sched_set all = {mem, n};
	for (size_t i = 0; i < n; i++)
		all.idx[i] = i;
	const struct run r = {req, eps, rng};
	struct ig_sched_set result;
	int rc = walk(&r, &all, mem + n, &result);
	if (rc == 0 && result.n > 0)
		*chosen = result.idx[ig_rng_below(rng, result.n)];
	else
		rc = -1;
	return rc;
}

int ig_sched_decision_tree_filter(const struct ig_sched_request *req,
				  const struct ig_endpoint_metrics *const *eps,
				  const struct ig_sched_set *in, struct ig_rng *rng,
				  struct ig_sched_set *out)
{
	size_t stack[TREE_DEPTH * STACK_ENDPOINTS];
	size_t *mem = stack;
	out->n = 0;
	if (in->n == 0)
		return -1;
	if (in->n > STACK_ENDPOINTS) {
		if (in->n > SIZE_MAX / sizeof(size_t) / TREE_DEPTH)
			return -1;
		mem = ig_scratch_get(&tree_mem, TREE_DEPTH * in->n * sizeof(size_t));
		if (!mem)
			return -1;
	}
	const struct run r = {req, eps, rng};
	struct ig_sched_set result;
	int rc = walk(&r, in, mem, &result);
	if (rc == 0 && result.n > 0) {
		for (size_t k = 0; k < result.n; k++)
			out->idx[k] = result.idx[k];
		out->n = result.n;
	} else {
		rc = -1;
	}
	return rc;
}

/* GIE draws r in [0, sum) and walks the list subtracting weights: index i
 * is chosen with probability w_i / sum. Weights below 1 cannot pass CRD
 * validation; they are treated as 0 here so a bad value cannot skew the
 * others, and an all-zero list falls back to a uniform draw. */
size_t ig_sched_weighted_draw(const int32_t *weights, size_t n, bool has_weights,
			      struct ig_rng *rng)
{
	uint64_t sum = 0;
	if (has_weights)
		for (size_t i = 0; i < n; i++)
			sum += weights[i] > 0 ? (uint64_t)weights[i] : 0;
	if (sum == 0)
		return (size_t)ig_rng_below(rng, n);
	uint64_t r = ig_rng_below(rng, sum);
	for (size_t i = 0; i < n; i++) {
		uint64_t w = weights[i] > 0 ? (uint64_t)weights[i] : 0;
		if (r < w)
			return i;
		r -= w;
	}
	return n - 1; /* unreachable: r < sum */
}
