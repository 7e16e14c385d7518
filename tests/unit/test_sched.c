/* The GIE v0.2.0 decision tree, its filters, and the weighted draw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched/sched.h"

#define MAXE 128

struct pool {
	size_t n;
	struct ig_endpoint_metrics m[MAXE];
	const struct ig_endpoint_metrics *p[MAXE];
};

static struct pool pool;

/* Adds an endpoint with queue q, KV use kv, room for max_active adapters
 * and (optionally) one active adapter. Returns its index. */
static size_t ep(int64_t q, double kv, int64_t max_active, const char *adapter)
{
	size_t i = pool.n++;
	pool.m[i] = (struct ig_endpoint_metrics){.waiting = q, .kv_usage = kv, .max_active = max_active};
	if (adapter)
		ig_adapter_set_add(&pool.m[i].active, ig_str_from(adapter));
	pool.p[i] = &pool.m[i];
	return i;
}

static int setup(void **state)
{
	memset(&pool, 0, sizeof pool);
	return 0;
}

static const struct ig_sched_request crit = {IG_STR("base"), IG_STR("lora-a"), true};
static const struct ig_sched_request shed = {IG_STR("base"), IG_STR("lora-a"), false};

static int pick(const struct ig_sched_request *req, uint64_t seed, size_t *chosen)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, seed);
	return ig_sched_decision_tree(req, pool.p, pool.n, &rng, chosen);
}

/* Picks many times and asserts every pick is `want`. */
static void always(const struct ig_sched_request *req, size_t want)
{
	for (uint64_t seed = 1; seed <= 200; seed++) {
		size_t c = 999;
		assert_int_equal(pick(req, seed, &c), 0);
		assert_int_equal(c, want);
	}
}

/* ---- the tree ------------------------------------------------------------- */

static void test_tree_zero_endpoints(void **state)
{
	size_t c = 7;
	assert_int_equal(pick(&crit, 1, &c), -1);
	assert_int_equal(pick(&shed, 1, &c), -1);
	assert_int_equal(c, 7);
}

static void test_tree_critical_low_queue_prefers_affinity(void **state)
{
	/* lowQueueing drops the 200-deep one; affinity then beats a shorter
	 * queue, since affinity runs before leastQueuing on this branch. */
	ep(200, 0.0, 4, "lora-a");
	size_t b = ep(10, 0.5, 0, "lora-a");
	ep(0, 0.0, 0, NULL);
	always(&crit, b);
}

static void test_tree_critical_all_queues_long(void **state)
{
	/* All q >= 128: lowQueueing fails and leastQueuing gets the original
	 * input: min 128, limit 128 + (300-128)/3 = 185 keeps 128 and 129;
	 * then affinity picks the one with the adapter. */
	ep(128, 0.0, 0, NULL);
	ep(300, 0.0, 0, "lora-a");
	size_t c = ep(129, 0.9, 0, "lora-a");
	always(&crit, c);
}

static void test_tree_critical_lora_fails_passes_input_on(void **state)
{
	/* No endpoint has the adapter or room: the affinity node fails and
	 * leastQueuing receives lowQueueing's output {3, 4}, whose limit is
	 * 3 + 1/2 = 3. Had it received all three endpoints the limit would be
	 * 3 + 127/3 = 45 and the KV filter would have picked the 4-deep one. */
	ep(130, 0.0, 0, NULL);
	size_t b = ep(3, 0.9, 0, NULL);
	ep(4, 0.1, 0, NULL);
	always(&crit, b);
}

static void test_tree_critical_ignores_kv_threshold(void **state)
{
	size_t a = ep(100, 0.99, 0, NULL);
	always(&crit, a);
}

static void test_tree_sheddable_with_capacity(void **state)
{
	ep(6, 0.1, 0, NULL);
	size_t b = ep(5, 0.8, 0, NULL); /* both thresholds inclusive */
	ep(0, 0.81, 0, NULL);
	always(&shed, b);
}

static void test_tree_sheddable_without_capacity_drops(void **state)
{
	ep(6, 0.0, 4, "lora-a");
	ep(0, 0.81, 4, NULL);
	ep(1000, 1.0, 4, NULL);
	size_t c = 99;
	for (uint64_t seed = 1; seed < 50; seed++)
		assert_int_equal(pick(&shed, seed, &c), -1);
	assert_int_equal(c, 99);
}

static void test_tree_sheddable_queue_then_affinity(void **state)
{
	/* Sheddable branch: leastQueuing first (limit 0 + 5/3 = 1 keeps
	 * q 0 and 1), then affinity among those. */
	ep(0, 0.0, 0, NULL);
	size_t b = ep(1, 0.5, 0, "lora-a");
	ep(5, 0.0, 0, "lora-a");
	always(&shed, b);
}

static void test_tree_affinity_probability(void **state)
{
	/* One endpoint has the adapter, the other has room: the available one
	 * must be picked about 0.1% of the time. */
	ep(0, 0.0, 4, "lora-a");
	size_t avail = ep(0, 0.0, 4, NULL);
	struct ig_rng rng;
	ig_rng_seed(&rng, 42);
	size_t hits = 0, draws = 1000000;
	for (size_t i = 0; i < draws; i++) {
		size_t c;
		assert_int_equal(ig_sched_decision_tree(&crit, pool.p, pool.n, &rng, &c), 0);
		hits += c == avail;
	}
	/* Expected 1000, standard deviation ~31.6. */
	assert_in_range(hits, 850, 1150);
}

static void test_tree_available_when_no_affinity(void **state)
{
	ep(0, 0.0, 1, "other"); /* full: 1 active, max 1 */
	size_t b = ep(0, 0.0, 2, "other");
	always(&crit, b);
	always(&shed, b);
}

static void test_tree_uniform_among_survivors(void **state)
{
	for (int i = 0; i < 4; i++)
		ep(2, 0.5, 0, NULL);
	struct ig_rng rng;
	ig_rng_seed(&rng, 7);
	size_t counts[4] = {0};
	for (int i = 0; i < 40000; i++) {
		size_t c;
		assert_int_equal(ig_sched_decision_tree(&shed, pool.p, pool.n, &rng, &c), 0);
		counts[c]++;
	}
	for (int i = 0; i < 4; i++)
		assert_in_range(counts[i], 9500, 10500);
}

static void test_tree_deterministic_with_seed(void **state)
{
	for (int i = 0; i < 6; i++)
		ep(i % 2, 0.1, 0, NULL);
	for (uint64_t seed = 1; seed < 20; seed++) {
		size_t a, b;
		assert_int_equal(pick(&shed, seed, &a), 0);
		assert_int_equal(pick(&shed, seed, &b), 0);
		assert_int_equal(a, b);
		assert_int_equal(pool.m[a].waiting, 0);
	}
}

static void test_tree_large_pool(void **state)
{
	/* More endpoints than the on-stack scratch holds. */
	for (int i = 0; i < 100; i++)
		ep(100 + i, 0.5, 0, NULL);
	pool.m[77].waiting = 1;
	always(&shed, 77);
	always(&crit, 77);
}

/* ---- the filters ---------------------------------------------------------- */

static struct ig_sched_set all_set(size_t *idx)
{
	for (size_t i = 0; i < pool.n; i++)
		idx[i] = i;
	return (struct ig_sched_set){idx, pool.n};
}

static void assert_set(const struct ig_sched_set *s, const size_t *want, size_t n)
{
	assert_int_equal(s->n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(s->idx[i], want[i]);
}

static void test_filter_least_queuing(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	ep(0, 0, 0, NULL), ep(3, 0, 0, NULL), ep(7, 0, 0, NULL);
	struct ig_sched_set in = all_set(in_idx);
	ig_filter_least_queuing(pool.p, &in, &out); /* limit 0 + 7/3 = 2 */
	assert_set(&out, (size_t[]){0}, 1);
	pool.m[1].waiting = 2; /* exactly at the limit: kept */
	ig_filter_least_queuing(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0, 1}, 2);
	pool.m[2].waiting = 2; /* limit 0 + 2/3 = 0 in integers (0.67 in floats) */
	ig_filter_least_queuing(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0}, 1);
	pool.m[0].waiting = 2;
	ig_filter_least_queuing(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0, 1, 2}, 3);
	in.n = 0;
	ig_filter_least_queuing(pool.p, &in, &out);
	assert_int_equal(out.n, 0);
}

static void test_filter_least_queuing_max_starts_at_zero(void **state)
{
	/* GIE starts max at 0, so with negative queues the spread is measured
	 * from 0: limit -5 + (0 - -5)/2 = -3 keeps both. */
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	ep(-5, 0, 0, NULL), ep(-3, 0, 0, NULL);
	struct ig_sched_set in = all_set(in_idx);
	ig_filter_least_queuing(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0, 1}, 2);
}

static void test_filter_least_kv(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	ep(0, 0.25, 0, NULL), ep(0, 0.5, 0, NULL), ep(0, 1.0, 0, NULL);
	struct ig_sched_set in = all_set(in_idx);
	ig_filter_least_kv_cache(pool.p, &in, &out); /* limit 0.25 + 0.75/3 = 0.5 */
	assert_set(&out, (size_t[]){0, 1}, 2);
	pool.m[1].kv_usage = 0.5625;
	ig_filter_least_kv_cache(pool.p, &in, &out); /* limit 0.25 + 0.25 (float) */
	assert_set(&out, (size_t[]){0}, 1);
	pool.m[1].kv_usage = 0.3125;
	pool.m[2].kv_usage = 0.5;
	ig_filter_least_kv_cache(pool.p, &in, &out); /* limit 0.25 + 0.25/3 = 0.333 */
	assert_set(&out, (size_t[]){0, 1}, 2);
	pool.m[1].kv_usage = 0.34;
	ig_filter_least_kv_cache(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0}, 1);
	pool.m[2].kv_usage = 1.0;
	pool.m[1].kv_usage = 0.45;
	ig_filter_least_kv_cache(pool.p, &in, &out);
	assert_set(&out, (size_t[]){0, 1}, 2);
}

static void test_filter_low_queueing(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	ep(127, 0, 0, NULL), ep(128, 0, 0, NULL);
	struct ig_sched_set in = all_set(in_idx);
	assert_int_equal(ig_filter_low_queueing(pool.p, &in, &out), 0);
	assert_set(&out, (size_t[]){0}, 1);
	pool.m[0].waiting = 128;
	assert_int_equal(ig_filter_low_queueing(pool.p, &in, &out), -1);
	assert_int_equal(out.n, 0);
}

static void test_filter_has_capacity(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	ep(5, 0.8, 0, NULL), ep(6, 0.0, 0, NULL), ep(0, 0.8000001, 0, NULL), ep(0, 0.0, 0, NULL);
	struct ig_sched_set in = all_set(in_idx);
	assert_int_equal(ig_filter_has_capacity_for_sheddable(pool.p, &in, &out), 0);
	assert_set(&out, (size_t[]){0, 3}, 2);
	in.idx[0] = 1, in.idx[1] = 2, in.n = 2;
	assert_int_equal(ig_filter_has_capacity_for_sheddable(pool.p, &in, &out), -1);
	assert_int_equal(out.n, 0);
}

static void test_filter_lora(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	struct ig_rng rng;
	ig_rng_seed(&rng, 1);
	/* Available only: input order kept. */
	ep(0, 0, 1, NULL), ep(0, 0, 2, "x"), ep(0, 0, 1, "x"), ep(0, 0, 3, NULL);
	struct ig_sched_set in = all_set(in_idx);
	assert_int_equal(ig_filter_lora_soft_affinity(&crit, pool.p, &in, &out, &rng), 0);
	assert_set(&out, (size_t[]){0, 1, 3}, 3);
	/* Nothing: -1 and empty. */
	pool.m[0].max_active = pool.m[1].max_active = pool.m[3].max_active = 0;
	assert_int_equal(ig_filter_lora_soft_affinity(&crit, pool.p, &in, &out, &rng), -1);
	assert_int_equal(out.n, 0);
	/* Affinity only; an empty target_model falls back to model. */
	const struct ig_sched_request by_model = {IG_STR("x"), {NULL, 0}, false};
	assert_int_equal(ig_filter_lora_soft_affinity(&by_model, pool.p, &in, &out, &rng), 0);
	assert_set(&out, (size_t[]){1, 2}, 2);
}

static void test_filter_lora_both_groups(void **state)
{
	size_t in_idx[MAXE], out_idx[MAXE];
	struct ig_sched_set out = {out_idx, 0};
	struct ig_rng rng;
	ig_rng_seed(&rng, 3);
	ep(0, 0, 1, NULL), ep(0, 0, 1, "lora-a"), ep(0, 0, 2, NULL), ep(0, 0, 0, NULL), ep(0, 0, 5, NULL);
	struct ig_sched_set in = all_set(in_idx);
	size_t avail = 0;
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(ig_filter_lora_soft_affinity(&crit, pool.p, &in, &out, &rng), 0);
		if (out.n == 1) {
			assert_int_equal(out.idx[0], 1);
		} else {
			assert_set(&out, (size_t[]){0, 2, 4}, 3);
			avail++;
		}
	}
	assert_in_range(avail, 5, 45); /* expected 20 */
}

/* ---- weighted draw -------------------------------------------------------- */

static void draw_counts(const int32_t *w, size_t n, bool has, size_t draws, size_t *counts)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 12345);
	memset(counts, 0, n * sizeof *counts);
	for (size_t i = 0; i < draws; i++) {
		size_t k = ig_sched_weighted_draw(w, n, has, &rng);
		assert_true(k < n);
		counts[k]++;
	}
}

static void test_weighted_draw(void **state)
{
	size_t c[4];
	draw_counts((int32_t[]){50, 50}, 2, true, 100000, c);
	assert_in_range(c[0], 49000, 51000);
	draw_counts((int32_t[]){90, 10}, 2, true, 100000, c);
	assert_in_range(c[0], 89000, 91000);
	draw_counts((int32_t[]){1, 2, 7}, 3, true, 100000, c);
	assert_in_range(c[0], 9000, 11000);
	assert_in_range(c[1], 19000, 21000);
	assert_in_range(c[2], 69000, 71000);
	draw_counts((int32_t[]){1000000, 1}, 2, true, 100000, c);
	assert_in_range(c[1], 0, 5);
	draw_counts(NULL, 4, false, 100000, c);
	for (int i = 0; i < 4; i++)
		assert_in_range(c[i], 24000, 26000);
	draw_counts((int32_t[]){5}, 1, true, 100, c);
	assert_int_equal(c[0], 100);
}

static void test_weighted_draw_walk_and_seed(void **state)
{
	/* Same seed, same sequence; and the walk maps r to the index whose
	 * cumulative range holds it. */
	struct ig_rng a, b;
	ig_rng_seed(&a, 99);
	ig_rng_seed(&b, 99);
	const int32_t w[] = {3, 1, 6};
	for (int i = 0; i < 1000; i++) {
		struct ig_rng peek = a;
		uint64_t r = ig_rng_below(&peek, 10);
		size_t want = r < 3 ? 0 : r < 4 ? 1 : 2;
		size_t got = ig_sched_weighted_draw(w, 3, true, &a);
		assert_int_equal(got, want);
		assert_int_equal(ig_sched_weighted_draw(w, 3, true, &b), got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_tree_zero_endpoints, setup),
		cmocka_unit_test_setup(test_tree_critical_low_queue_prefers_affinity, setup),
		cmocka_unit_test_setup(test_tree_critical_all_queues_long, setup),
		cmocka_unit_test_setup(test_tree_critical_lora_fails_passes_input_on, setup),
		cmocka_unit_test_setup(test_tree_critical_ignores_kv_threshold, setup),
		cmocka_unit_test_setup(test_tree_sheddable_with_capacity, setup),
		cmocka_unit_test_setup(test_tree_sheddable_without_capacity_drops, setup),
		cmocka_unit_test_setup(test_tree_sheddable_queue_then_affinity, setup),
		cmocka_unit_test_setup(test_tree_affinity_probability, setup),
		cmocka_unit_test_setup(test_tree_available_when_no_affinity, setup),
		cmocka_unit_test_setup(test_tree_uniform_among_survivors, setup),
		cmocka_unit_test_setup(test_tree_deterministic_with_seed, setup),
		cmocka_unit_test_setup(test_tree_large_pool, setup),
		cmocka_unit_test_setup(test_filter_least_queuing, setup),
		cmocka_unit_test_setup(test_filter_least_queuing_max_starts_at_zero, setup),
		cmocka_unit_test_setup(test_filter_least_kv, setup),
		cmocka_unit_test_setup(test_filter_low_queueing, setup),
		cmocka_unit_test_setup(test_filter_has_capacity, setup),
		cmocka_unit_test_setup(test_filter_lora, setup),
		cmocka_unit_test_setup(test_filter_lora_both_groups, setup),
		cmocka_unit_test_setup(test_weighted_draw, setup),
		cmocka_unit_test_setup(test_weighted_draw_walk_and_seed, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
