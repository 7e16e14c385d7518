/* A worker's ring of recent picks and its counts (gateway/activity.c). */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/activity.h"

#define MS 1000000ull

static void test_record_and_read(void **state)
{
	struct ig_activity *a = ig_activity_new(3);
	assert_non_null(a);
	struct ig_decision d[IG_ACTIVITY_SLOTS];
	assert_int_equal(ig_activity_decisions(a, d, IG_ACTIVITY_SLOTS), 0);
	char long_name[100];
	memset(long_name, 'x', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = 0;
	ig_activity_record(a, "m", "t", "pool", "10.0.0.1:8000", 200, 5 * MS, 12 * MS);
	ig_activity_record(a, long_name, NULL, NULL, NULL, 404, 20 * MS, 21 * MS);
	size_t n = ig_activity_decisions(a, d, IG_ACTIVITY_SLOTS);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].model, "m");
	assert_string_equal(d[0].target, "t");
	assert_string_equal(d[0].pool, "pool");
	assert_string_equal(d[0].endpoint, "10.0.0.1:8000");
	assert_int_equal(d[0].status, 200);
	assert_int_equal(d[0].worker, 3);
	assert_int_equal(d[0].end_ns, 12 * MS);
	assert_int_equal(d[0].duration_ns, 7 * MS);
	/* Cut to the slot's size; missing names read as "". */
	assert_int_equal(strlen(d[1].model), IG_ACTIVITY_NAME - 1);
	assert_string_equal(d[1].target, "");
	assert_string_equal(d[1].endpoint, "");
	/* `max` bounds what is copied. */
	assert_int_equal(ig_activity_decisions(a, d, 1), 1);
	ig_activity_free(a);
}

static void test_ring_keeps_the_newest(void **state)
{
	struct ig_activity *a = ig_activity_new(0);
	for (uint64_t i = 1; i <= IG_ACTIVITY_SLOTS + 9; i++)
		ig_activity_record(a, "m", "t", "p", "e", 200, 0, i);
	struct ig_decision d[IG_ACTIVITY_SLOTS];
	size_t n = ig_activity_decisions(a, d, IG_ACTIVITY_SLOTS);
	assert_int_equal(n, IG_ACTIVITY_SLOTS);
	bool seen[IG_ACTIVITY_SLOTS + 10] = {0};
	for (size_t i = 0; i < n; i++) {
		assert_true(d[i].end_ns > 9 && d[i].end_ns <= IG_ACTIVITY_SLOTS + 9);
		assert_false(seen[d[i].end_ns]);
		seen[d[i].end_ns] = true;
	}
	ig_activity_free(a);
}

static void test_counts_and_quantiles(void **state)
{
	struct ig_activity *a = ig_activity_new(0);
	struct ig_activity_totals t = {0};
	ig_activity_add(a, &t);
	assert_true(ig_activity_quantile_ms(&t, 0.5) < 0);
	static const int statuses[] = {200, 201, 404, 429, 499, 502, 503, 0};
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		ig_activity_record(a, "m", "t", "p", "e", statuses[i], 0, 10 * MS);
	/* 90 fast requests and 10 slow ones. */
	for (int i = 0; i < 88; i++)
		ig_activity_record(a, "m", "t", "p", "e", 200, 0, 10 * MS);
	for (int i = 0; i < 10; i++)
		ig_activity_record(a, "m", "t", "p", "e", 200, 0, 1000 * MS);
	t = (struct ig_activity_totals){0};
	ig_activity_add(a, &t);
	ig_activity_add(a, &t); /* two workers' worth: sums */
	assert_int_equal(t.requests, 2 * 106);
	assert_int_equal(t.ok, 2 * 100);
	assert_int_equal(t.client_errors, 2 * 2);
	assert_int_equal(t.cancelled, 2 * 1);
	assert_int_equal(t.server_errors, 2 * 3); /* 502, 503 and no status at all */
	for (size_t i = 1; i + 1 < IG_ACTIVITY_BUCKETS; i++)
		assert_true(ig_activity_bucket_ms(i) > ig_activity_bucket_ms(i - 1));
	assert_true(isinf(ig_activity_bucket_ms(IG_ACTIVITY_BUCKETS - 1)));
	/* The estimates fall in the bucket of the true value: within a
	 * factor sqrt(2) of it. */
	double p50 = ig_activity_quantile_ms(&t, 0.5), p99 = ig_activity_quantile_ms(&t, 0.99);
	assert_true(p50 > 10 / 1.4143 && p50 <= 10 * 1.4143);
	assert_true(p99 > 1000 / 1.4143 && p99 <= 1000 * 1.4143);
	ig_activity_free(a);
}

/* A reader racing the writer never sees a torn record: each record's
 * fields are derived from its end time, and the reader checks they agree. */
static struct ig_activity *race_a;
static atomic_bool race_done;

static void *race_writer(void *arg)
{
	char name[IG_ACTIVITY_NAME];
	for (uint64_t i = 1; i <= 200000; i++) {
		memset(name, 'a' + (int)(i % 26), sizeof name - 1);
		name[i % (sizeof name - 1)] = 0;
		ig_activity_record(race_a, name, name, name, name, (int)(i % 600), 0, i);
	}
	atomic_store(&race_done, true);
	return NULL;
}

static void test_reader_never_sees_a_torn_record(void **state)
{
	race_a = ig_activity_new(1);
	atomic_store(&race_done, false);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, race_writer, NULL), 0);
	struct ig_decision d[IG_ACTIVITY_SLOTS];
	while (!atomic_load(&race_done)) {
		size_t n = ig_activity_decisions(race_a, d, IG_ACTIVITY_SLOTS);
		for (size_t k = 0; k < n; k++) {
			uint64_t i = d[k].end_ns;
			assert_int_equal(d[k].status, (int)(i % 600));
			assert_int_equal(strlen(d[k].model), i % (IG_ACTIVITY_NAME - 1));
			for (size_t c = 0; d[k].model[c]; c++)
				assert_int_equal(d[k].model[c], 'a' + (int)(i % 26));
			assert_string_equal(d[k].endpoint, d[k].model);
		}
	}
	pthread_join(th, NULL);
	assert_int_equal(ig_activity_decisions(race_a, d, IG_ACTIVITY_SLOTS), IG_ACTIVITY_SLOTS);
	ig_activity_free(race_a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_and_read),
	    cmocka_unit_test(test_ring_keeps_the_newest),
	    cmocka_unit_test(test_counts_and_quantiles),
	    cmocka_unit_test(test_reader_never_sees_a_torn_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
