/* Ranking the best k of n keys (sched/rank.c): the same keys as a full
 * sort would pick, best first, for small and large sets and keys that
 * bunch, tie or are not finite; equal keys in uniformly random order. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rand.h"
#include "sched/rank.h"

/* Where a key sorts: NaN lowest, then -inf, the finite keys, +inf. */
static int order(double a, double b)
{
	int na = isnan(a), nb = isnan(b);
	if (na || nb)
		return na == nb ? 0 : na ? -1 : 1;
	return a < b ? -1 : a > b;
}

static int desc(const void *x, const void *y)
{
	return -order(*(const double *)x, *(const double *)y);
}

/* out must hold min(k, n) distinct positions whose keys, in order, are
 * the first min(k, n) of the keys sorted highest first. */
static void check_top(const double *keys, size_t n, size_t k, const size_t *out, size_t got)
{
	size_t want = k < n ? k : n;
	assert_int_equal(got, want);
	double *sorted = malloc(n * sizeof(*sorted) + 1);
	bool *seen = calloc(n + 1, 1);
	assert_non_null(sorted);
	assert_non_null(seen);
	memcpy(sorted, keys, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), desc);
	for (size_t i = 0; i < got; i++) {
		assert_true(out[i] < n);
		assert_false(seen[out[i]]);
		seen[out[i]] = true;
		assert_int_equal(order(keys[out[i]], sorted[i]), 0);
	}
	free(sorted);
	free(seen);
}

static void fill(double *keys, size_t n, int shape, struct ig_rng *rng)
{
	for (size_t i = 0; i < n; i++) {
		switch (shape) {
		case 0: /* distinct */
			keys[i] = ig_rng_double(rng) * 7;
			break;
		case 1: /* a few values: ties everywhere */
			keys[i] = (double)ig_rng_below(rng, 5);
			break;
		case 2: /* a scheduler's: steps of a queue table plus a KV term, a few
			 * prefix hits far above */
			keys[i] = (double)ig_rng_below(rng, 8) / 7 * 2 + ig_rng_double(rng) * 2 +
				  (ig_rng_below(rng, 50) == 0 ? 3 : 0);
			break;
		case 3: /* one huge outlier, the rest bunched within 1e-9 */
			keys[i] = 1 + ig_rng_double(rng) * 1e-9;
			if (i == n / 2)
				keys[i] = 1e300;
			break;
		case 4: /* mostly one value, which the sample's cut lands on */
			keys[i] = ig_rng_below(rng, 10) ? 2.0 : ig_rng_double(rng) * 4;
			break;
		case 5: /* a range wider than a double holds */
			keys[i] = ig_rng_below(rng, 2) ? 1.5e308 * ig_rng_double(rng)
						       : -1.5e308 * ig_rng_double(rng);
			break;
		case 6: /* a range of subnormals */
			keys[i] = 5e-324 * (double)ig_rng_below(rng, 4);
			break;
		default: /* all equal */
			keys[i] = 0.5;
			break;
		}
	}
}

static void test_top_matches_a_sort(void **state)
{
	(void)state;
	struct ig_rng rng;
	ig_rng_seed(&rng, 11);
	const size_t sizes[] = {1, 2, 3, 16, 47, 48, 49, 100, 128, 511, 512, 1024, 1500, 4096};
	const size_t ks[] = {1, 3, 8, 32, 200, 5000};
	size_t out[5000];
	double *keys = malloc(4096 * sizeof(*keys));
	assert_non_null(keys);
	for (int shape = 0; shape < 8; shape++)
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
			for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
				for (int rep = 0; rep < 3; rep++) {
					size_t n = sizes[s], k = ks[j];
					fill(keys, n, shape, &rng);
					size_t got = ig_rank_top(keys, n, k, &rng, out);
					check_top(keys, n, k, out, got);
				}
	free(keys);
}

static void test_nothing_to_rank(void **state)
{
	(void)state;
	struct ig_rng rng;
	ig_rng_seed(&rng, 1);
	double key = 1;
	size_t out[1] = {77};
	assert_int_equal(ig_rank_top(&key, 0, 5, &rng, out), 0);
	assert_int_equal(ig_rank_top(&key, 1, 0, &rng, out), 0);
	assert_int_equal(out[0], 77);
}

static void test_not_finite(void **state)
{
	(void)state;
	struct ig_rng rng;
	ig_rng_seed(&rng, 3);
	double keys[2000];
	size_t out[2000];
	for (int rep = 0; rep < 50; rep++) {
		size_t n = rep % 2 ? 2000 : 40;
		for (size_t i = 0; i < n; i++) {
			unsigned r = (unsigned)ig_rng_below(&rng, 20);
			keys[i] = r == 0   ? NAN
				  : r == 1 ? -INFINITY
				  : r == 2 ? INFINITY
					   : ig_rng_double(&rng);
		}
		check_top(keys, n, n, out, ig_rank_top(keys, n, n, &rng, out));
		check_top(keys, n, 32, out, ig_rank_top(keys, n, 32, &rng, out));
	}
	/* A weighted-random picker's keys: log(u)/score, -inf for score 0. */
	for (size_t i = 0; i < 1024; i++)
		keys[i] = i % 3 ? log(ig_rng_double(&rng) + 1e-12) / (double)(i % 7 + 1) : -INFINITY;
	check_top(keys, 1024, 32, out, ig_rank_top(keys, 1024, 32, &rng, out));
}

/* Ties are broken uniformly: with keys 5, 4, 4, 4, 4, 1... and k = 3, the
 * 5 comes first and each 4 makes the list half the time, and is second a
 * quarter of the time. The same with every key equal, over a large set
 * (the path that samples without ranking). */
static void test_ties_are_uniform(void **state)
{
	(void)state;
	struct ig_rng rng;
	ig_rng_seed(&rng, 5);
	double keys[12] = {1, 4, 1, 4, 5, 1, 4, 1, 1, 4, 1, 1};
	unsigned in[12] = {0}, second[12] = {0};
	size_t out[3];
	const unsigned trials = 40000;
	for (unsigned t = 0; t < trials; t++) {
		assert_int_equal(ig_rank_top(keys, 12, 3, &rng, out), 3);
		assert_int_equal(out[0], 4);
		for (int j = 1; j < 3; j++) {
			assert_true(keys[out[j]] == 4);
			in[out[j]]++;
		}
		second[out[1]]++;
	}
	for (size_t i = 0; i < 12; i++)
		if (keys[i] == 4) {
			/* Expected trials / 2 and / 4; five standard deviations. */
			assert_in_range(in[i], trials / 2 - 500, trials / 2 + 500);
			assert_in_range(second[i], trials / 4 - 435, trials / 4 + 435);
		}

	enum { N = 1000, K = 4 };
	static double flat[N];
	static unsigned first[N];
	size_t top[K];
	for (size_t i = 0; i < N; i++)
		flat[i] = 0.25;
	const unsigned draws = 200000;
	for (unsigned t = 0; t < draws; t++) {
		assert_int_equal(ig_rank_top(flat, N, K, &rng, top), K);
		first[top[0]]++;
	}
	/* Each position first 200 times on average; a chi-square with 999
	 * degrees of freedom stays under 1200 but for one run in 10^4. */
	double chi = 0;
	for (size_t i = 0; i < N; i++) {
		double d = (double)first[i] - (double)draws / N;
		chi += d * d / ((double)draws / N);
	}
	assert_true(chi < 1200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_top_matches_a_sort),
	    cmocka_unit_test(test_nothing_to_rank),
	    cmocka_unit_test(test_not_finite),
	    cmocka_unit_test(test_ties_are_uniform),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
