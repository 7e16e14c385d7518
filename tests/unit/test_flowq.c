/* The flow-control queue: band order, round-robin or global-strict between
 * flows, FIFO or by order key within a flow, capacity, reconfiguration,
 * deadlines and removal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sched/flowq.h"

#define N 64

static struct ig_flowq_item items[N];
static int ids[N];

static int setup(void **state)
{
	memset(items, 0, sizeof items);
	for (int i = 0; i < N; i++)
		ids[i] = i;
	return 0;
}

static int push(struct ig_flowq *q, int i, const char *flow, int prio, uint64_t bytes,
		uint64_t deadline)
{
	return ig_flowq_push(q, &items[i], &ids[i], ig_str_from(flow), prio, bytes, deadline, 0);
}

static int push_key(struct ig_flowq *q, int i, const char *flow, int prio, uint64_t order)
{
	return ig_flowq_push(q, &items[i], &ids[i], ig_str_from(flow), prio, 1, 0, order);
}

static int peek(const struct ig_flowq *q)
{
	const int *p = ig_flowq_peek(q);
	return p ? *p : -1;
}

static int pop(struct ig_flowq *q)
{
	int *p = ig_flowq_pop(q);
	return p ? *p : -1;
}

static void test_bands_highest_first(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	assert_non_null(q);
	assert_int_equal(push(q, 0, "a", 0, 1, 0), 0);
	assert_int_equal(push(q, 1, "a", -1, 1, 0), 0);
	assert_int_equal(push(q, 2, "a", 5, 1, 0), 0);
	assert_int_equal(push(q, 3, "b", 0, 1, 0), 0);
	int prio;
	assert_true(ig_flowq_next_priority(q, &prio));
	assert_int_equal(prio, 5);
	assert_int_equal(pop(q), 2);
	assert_int_equal(pop(q), 0);
	assert_int_equal(pop(q), 3);
	assert_int_equal(pop(q), 1);
	assert_int_equal(pop(q), -1);
	assert_false(ig_flowq_next_priority(q, &prio));
	assert_int_equal(ig_flowq_len(q), 0);
	ig_flowq_free(q);
}

static void test_round_robin_and_fifo(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	/* Flow a floods first with 0..3; b and c arrive later with one or two
	 * items: they must not wait behind all of a. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(push(q, i, "a", 0, 1, 0), 0);
	assert_int_equal(push(q, 4, "b", 0, 1, 0), 0);
	assert_int_equal(push(q, 5, "b", 0, 1, 0), 0);
	assert_int_equal(push(q, 6, "c", 0, 1, 0), 0);
	int want[] = {0, 4, 6, 1, 5, 2, 3};
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
		assert_int_equal(pop(q), want[k]);
	assert_int_equal(pop(q), -1);
	ig_flowq_free(q);
}

/* GIE's default fairness: the band is one queue; who pushed first goes
 * first, whichever flow it is in. */
static void test_global_strict(void **state)
{
	struct ig_flowq_band_config gs = {.fairness = IG_FLOWQ_GLOBAL_STRICT};
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, &gs);
	for (int i = 0; i < 4; i++)
		assert_int_equal(push(q, i, "a", 0, 1, 0), 0);
	assert_int_equal(push(q, 4, "b", 0, 1, 0), 0);
	assert_int_equal(push(q, 5, "b", 0, 1, 0), 0);
	assert_int_equal(push(q, 6, "c", 0, 1, 0), 0);
	assert_int_equal(push(q, 7, "a", 0, 1, 0), 0);
	for (int want = 0; want < 8; want++) {
		assert_int_equal(peek(q), want);
		assert_int_equal(pop(q), want);
	}
	assert_int_equal(pop(q), -1);
	/* With keys: the flow whose head has the lowest key, across flows. */
	assert_int_equal(push_key(q, 0, "a", 0, 30), 0);
	assert_int_equal(push_key(q, 1, "a", 0, 40), 0);
	assert_int_equal(push_key(q, 2, "b", 0, 35), 0);
	assert_int_equal(push_key(q, 3, "c", 0, 10), 0);
	int want[] = {3, 0, 2, 1};
	for (size_t k = 0; k < 4; k++) {
		assert_int_equal(peek(q), want[k]);
		assert_int_equal(pop(q), want[k]);
	}
	ig_flowq_free(q);
}

/* Order keys within a flow (how the gateway expresses EDF and SLO
 * deadlines): lowest first, equal keys in push order, in any band mode. */
static void test_order_keys(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	uint64_t keys[] = {50, 10, 30, 10, UINT64_MAX, 5};
	for (int i = 0; i < 6; i++)
		assert_int_equal(push_key(q, i, "a", 0, keys[i]), 0);
	/* Removal from the middle keeps the order of the rest. */
	ig_flowq_remove(q, &items[2]);
	int want[] = {5, 1, 3, 0, 4};
	for (size_t k = 0; k < 5; k++)
		assert_int_equal(pop(q), want[k]);
	assert_int_equal(pop(q), -1);
	/* Round-robin still alternates flows; each flow serves its lowest key. */
	assert_int_equal(push_key(q, 0, "a", 0, 9), 0);
	assert_int_equal(push_key(q, 1, "a", 0, 1), 0);
	assert_int_equal(push_key(q, 2, "b", 0, 7), 0);
	assert_int_equal(push_key(q, 3, "b", 0, 2), 0);
	int rr[] = {1, 3, 0, 2};
	for (size_t k = 0; k < 4; k++)
		assert_int_equal(pop(q), rr[k]);
	ig_flowq_free(q);
}

/* A reload changes limits and fairness; queued items stay. */
static void test_configure(void **state)
{
	struct ig_flowq_band_config bands[] = {{.priority = 5, .limits = {.max_requests = 1}}};
	struct ig_flowq *q = ig_flowq_new(NULL, bands, 1, NULL);
	assert_int_equal(push(q, 0, "a", 5, 1, 0), 0);
	assert_int_equal(push(q, 1, "b", 5, 1, 0), -ENOSPC);
	for (int i = 2; i < 5; i++)
		assert_int_equal(push(q, i, "a", 0, 1, 0), 0);
	assert_int_equal(push(q, 5, "b", 0, 1, 0), 0);
	/* Band 5 now unlimited (not listed: the default), band 0 global-strict
	 * and at most 3 requests, 4 overall. */
	struct ig_flowq_band_config now[] = {
	    {.priority = 0, .limits = {.max_requests = 3}, .fairness = IG_FLOWQ_GLOBAL_STRICT}};
	struct ig_flowq_limits global = {.max_requests = 6};
	assert_int_equal(ig_flowq_configure(q, &global, now, 1, NULL), 0);
	assert_int_equal(ig_flowq_len(q), 5);
	assert_int_equal(push(q, 1, "b", 5, 1, 0), 0);
	assert_int_equal(push(q, 6, "c", 0, 1, 0), -ENOSPC); /* band 0 holds 4 > 3 */
	assert_int_equal(push(q, 6, "c", 7, 1, 0), -ENOSPC); /* 6 overall */
	/* Band 5 first, then band 0 in push order (global-strict): 2, 3, 4, 5,
	 * where round-robin would have served b's 5 second. */
	int want[] = {0, 1, 2, 3, 4, 5};
	for (size_t k = 0; k < 6; k++)
		assert_int_equal(pop(q), want[k]);
	ig_flowq_free(q);
}

static void test_same_id_different_band_is_another_flow(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	assert_int_equal(push(q, 0, "x", 0, 1, 0), 0);
	assert_int_equal(push(q, 1, "x", 1, 1, 0), 0);
	assert_int_equal(pop(q), 1);
	assert_int_equal(pop(q), 0);
	ig_flowq_free(q);
}

static void test_capacity(void **state)
{
	struct ig_flowq_limits global = {.max_requests = 4, .max_bytes = 1000};
	struct ig_flowq_band_config bands[] = {{.priority = 0, .limits = {.max_requests = 2}},
					       {.priority = 1, .limits = {.max_bytes = 100}}};
	struct ig_flowq *q = ig_flowq_new(&global, bands, 2, NULL);
	assert_int_equal(push(q, 0, "a", 0, 10, 0), 0);
	assert_int_equal(push(q, 1, "b", 0, 10, 0), 0);
	assert_int_equal(push(q, 2, "c", 0, 10, 0), -ENOSPC); /* band 0: 2 requests */
	assert_int_equal(push(q, 3, "a", 1, 90, 0), 0);
	assert_int_equal(push(q, 4, "a", 1, 11, 0), -ENOSPC); /* band 1: 100 bytes */
	assert_int_equal(push(q, 5, "a", 1, 10, 0), 0);
	assert_int_equal(push(q, 6, "z", 7, 1, 0), -ENOSPC); /* global: 4 requests */
	assert_int_equal(ig_flowq_len(q), 4);
	assert_int_equal(ig_flowq_bytes(q), 120);
	assert_false(ig_flowq_queued(&items[2]));
	/* Room again after a pop. */
	assert_int_equal(pop(q), 3);
	assert_int_equal(push(q, 6, "z", 7, 1, 0), 0);
	ig_flowq_free(q);

	struct ig_flowq_limits small = {.max_bytes = 50};
	q = ig_flowq_new(&small, NULL, 0, NULL);
	assert_int_equal(push(q, 0, "a", 0, 51, 0), -ENOSPC);
	assert_int_equal(push(q, 0, "a", 0, UINT64_MAX, 0), -ENOSPC);
	assert_int_equal(push(q, 0, "a", 0, 50, 0), 0);
	ig_flowq_free(q);
}

static void test_band_default_limits(void **state)
{
	struct ig_flowq_band_config def = {.limits = {.max_requests = 1}};
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, &def);
	assert_int_equal(push(q, 0, "a", 3, 1, 0), 0);
	assert_int_equal(push(q, 1, "b", 3, 1, 0), -ENOSPC);
	assert_int_equal(push(q, 2, "b", 4, 1, 0), 0);
	ig_flowq_free(q);
}

static void test_expiry(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	assert_int_equal(push(q, 0, "a", 0, 1, 300), 0);
	assert_int_equal(push(q, 1, "a", 0, 1, 100), 0);
	assert_int_equal(push(q, 2, "b", 0, 1, 0), 0); /* never expires */
	assert_int_equal(push(q, 3, "c", 0, 1, 200), 0);
	assert_null(ig_flowq_pop_expired(q, 99));
	int *p = ig_flowq_pop_expired(q, 250);
	assert_non_null(p);
	assert_int_equal(*p, 1);
	p = ig_flowq_pop_expired(q, 250);
	assert_non_null(p);
	assert_int_equal(*p, 3);
	assert_null(ig_flowq_pop_expired(q, 250));
	assert_int_equal(ig_flowq_len(q), 2);
	assert_int_equal(pop(q), 0);
	assert_null(ig_flowq_pop_expired(q, 1000)); /* 0 left with its deadline */
	assert_int_equal(pop(q), 2);
	ig_flowq_free(q);
}

static void test_remove(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(push(q, i, "a", 0, 5, 100 + (uint64_t)i), 0);
	assert_int_equal(push(q, 3, "b", 0, 5, 50), 0);
	ig_flowq_remove(q, &items[1]); /* middle of a flow */
	ig_flowq_remove(q, &items[3]); /* a whole flow */
	ig_flowq_remove(q, &items[3]); /* twice: no-op */
	assert_false(ig_flowq_queued(&items[3]));
	assert_int_equal(ig_flowq_len(q), 2);
	assert_int_equal(ig_flowq_bytes(q), 10);
	/* The removed items are gone from the deadline heap too. */
	int *p = ig_flowq_pop_expired(q, 1000);
	assert_int_equal(*p, 0);
	assert_int_equal(pop(q), 2);
	assert_int_equal(pop(q), -1);
	/* An item can be queued again once out. */
	assert_int_equal(push(q, 1, "a", 0, 5, 0), 0);
	assert_int_equal(push(q, 1, "a", 0, 5, 0), -EINVAL);
	ig_flowq_free(q);
}

static void test_many_flows_and_heap(void **state)
{
	struct ig_flowq *q = ig_flowq_new(NULL, NULL, 0, NULL);
	char name[16];
	/* 64 items over 64 flows (forces the table to grow) with shuffled
	 * deadlines: expiry comes out in deadline order. */
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "f%d", i);
		assert_int_equal(push(q, i, name, i % 3, 1, 1 + (uint64_t)((i * 37) % N)), 0);
	}
	uint64_t last = 0;
	for (int k = 0; k < N; k++) {
		int *p = ig_flowq_pop_expired(q, UINT64_MAX);
		assert_non_null(p);
		uint64_t d = 1 + (uint64_t)((*p * 37) % N);
		assert_true(d >= last);
		last = d;
	}
	assert_int_equal(ig_flowq_len(q), 0);
	assert_int_equal(push(q, 0, "x", 0, 1, 0), 0);
	assert_int_equal(pop(q), 0);
	char longid[IG_FLOWQ_MAX_FLOW_ID + 2];
	memset(longid, 'x', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	assert_int_equal(push(q, 1, longid, 0, 1, 0), -EINVAL);
	ig_flowq_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_bands_highest_first, setup),
		cmocka_unit_test_setup(test_round_robin_and_fifo, setup),
		cmocka_unit_test_setup(test_global_strict, setup),
		cmocka_unit_test_setup(test_order_keys, setup),
		cmocka_unit_test_setup(test_configure, setup),
		cmocka_unit_test_setup(test_same_id_different_band_is_another_flow, setup),
		cmocka_unit_test_setup(test_capacity, setup),
		cmocka_unit_test_setup(test_band_default_limits, setup),
		cmocka_unit_test_setup(test_expiry, setup),
		cmocka_unit_test_setup(test_remove, setup),
		cmocka_unit_test_setup(test_many_flows_and_heap, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
