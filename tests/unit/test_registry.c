/* The metrics registry: exact exposition text, validation, concurrency, and
 * a round trip through our own parser. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/registry.h"
#include "pool/prom.h"

static const char *render(struct ig_registry *r, struct ig_buf *b)
{
	ig_buf_reset(b);
	assert_int_equal(ig_registry_render(r, b), 0);
	return ig_buf_cstr(b);
}

static void test_counter_text(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	const char *names[] = {"model_name", "target_model_name"};
	struct ig_metric_family *f = ig_metrics_counter(r, "inference_model_request_total",
							"Counter of requests.", names, 2);
	assert_non_null(f);
	/* A labelled family with no series is not written at all. */
	assert_string_equal(render(r, &b), "");
	struct ig_series *a = ig_metrics_series(f, (const char *[]){"m", "m-1"});
	struct ig_series *c = ig_metrics_series(f, (const char *[]){"m", "m-2"});
	assert_ptr_equal(ig_metrics_series(f, (const char *[]){"m", "m-1"}), a);
	ig_counter_add(a, 1);
	ig_counter_add(a, 2);
	ig_counter_add(a, -5); /* ignored: counters only go up */
	ig_counter_add(a, NAN);
	ig_counter_add(c, 0.5);
	assert_string_equal(render(r, &b),
			    "# HELP inference_model_request_total Counter of requests.\n"
			    "# TYPE inference_model_request_total counter\n"
			    "inference_model_request_total{model_name=\"m\",target_model_name=\"m-1\"} 3\n"
			    "inference_model_request_total{model_name=\"m\",target_model_name=\"m-2\"} 0.5\n");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_gauge_text_and_numbers(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	struct ig_metric_family *plain = ig_metrics_gauge(r, "up", "Up.", NULL, 0);
	struct ig_metric_family *g = ig_metrics_gauge(r, "g", "Values.", (const char *[]){"v"}, 1);
	/* An unlabelled family shows its single series as 0 right away. */
	assert_string_equal(render(r, &b), "# HELP up Up.\n# TYPE up gauge\nup 0\n");
	struct ig_series *up = ig_metrics_series(plain, NULL);
	ig_gauge_set(up, 2);
	ig_gauge_add(up, -0.5);
	static const struct {
		const char *label;
		double v;
	} cases[] = {
		{"a", 1e6},  {"b", 100000}, {"c", 1.5e-5}, {"d", 0.0001}, {"e", NAN},
		{"f", -INFINITY}, {"g", 0.1}, {"h", 123456789}, {"i", -3}, {"j", 1.0 / 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ig_gauge_set(ig_metrics_series(g, (const char *[]){cases[i].label}), cases[i].v);
	assert_string_equal(render(r, &b), "# HELP up Up.\n# TYPE up gauge\nup 1.5\n"
					   "# HELP g Values.\n# TYPE g gauge\n"
					   "g{v=\"a\"} 1e+06\n"
					   "g{v=\"b\"} 100000\n"
					   "g{v=\"c\"} 1.5e-05\n"
					   "g{v=\"d\"} 0.0001\n"
					   "g{v=\"e\"} NaN\n"
					   "g{v=\"f\"} -Inf\n"
					   "g{v=\"g\"} 0.1\n"
					   "g{v=\"h\"} 1.23456789e+08\n"
					   "g{v=\"i\"} -3\n"
					   "g{v=\"j\"} 0.3333333333333333\n");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_histogram_text(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	const double bounds[] = {0.5, 1, 2.5};
	struct ig_metric_family *h =
		ig_metrics_histogram(r, "d_seconds", "Durations.", (const char *[]){"m"}, 1, bounds, 3);
	struct ig_series *s = ig_metrics_series(h, (const char *[]){"x"});
	ig_hist_observe(s, 0.25);
	ig_hist_observe(s, 0.5); /* le is inclusive */
	ig_hist_observe(s, 2);
	ig_hist_observe(s, 8);
	assert_true(ig_series_value(s) == 10.75);
	struct ig_metric_family *n = ig_metrics_histogram(r, "n", "No labels.", NULL, 0, bounds, 1);
	ig_hist_observe(ig_metrics_series(n, NULL), 1);
	assert_string_equal(render(r, &b), "# HELP d_seconds Durations.\n"
					   "# TYPE d_seconds histogram\n"
					   "d_seconds_bucket{m=\"x\",le=\"0.5\"} 2\n"
					   "d_seconds_bucket{m=\"x\",le=\"1\"} 2\n"
					   "d_seconds_bucket{m=\"x\",le=\"2.5\"} 3\n"
					   "d_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\n"
					   "d_seconds_sum{m=\"x\"} 10.75\n"
					   "d_seconds_count{m=\"x\"} 4\n"
					   "# HELP n No labels.\n"
					   "# TYPE n histogram\n"
					   "n_bucket{le=\"0.5\"} 0\n"
					   "n_bucket{le=\"+Inf\"} 1\n"
					   "n_sum 1\n"
					   "n_count 1\n");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_histogram_observe2(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	const double bounds[] = {0.5, 1, 2.5}, same[] = {0.5, 1, 2.5}, other[] = {4};
	struct ig_series *a =
	    ig_metrics_series(ig_metrics_histogram(r, "a", "", NULL, 0, bounds, 3), NULL);
	struct ig_series *s =
	    ig_metrics_series(ig_metrics_histogram(r, "s", "", NULL, 0, same, 3), NULL);
	struct ig_series *o =
	    ig_metrics_series(ig_metrics_histogram(r, "o", "", NULL, 0, other, 1), NULL);
	/* Equal bounds share the bucket; others find their own. */
	ig_hist_observe2(a, s, 2);
	ig_hist_observe2(a, o, 2);
	ig_hist_observe2(o, s, 8);
	assert_string_equal(render(r, &b), "# HELP a \n"
					   "# TYPE a histogram\n"
					   "a_bucket{le=\"0.5\"} 0\n"
					   "a_bucket{le=\"1\"} 0\n"
					   "a_bucket{le=\"2.5\"} 2\n"
					   "a_bucket{le=\"+Inf\"} 2\n"
					   "a_sum 4\n"
					   "a_count 2\n"
					   "# HELP s \n"
					   "# TYPE s histogram\n"
					   "s_bucket{le=\"0.5\"} 0\n"
					   "s_bucket{le=\"1\"} 0\n"
					   "s_bucket{le=\"2.5\"} 1\n"
					   "s_bucket{le=\"+Inf\"} 2\n"
					   "s_sum 10\n"
					   "s_count 2\n"
					   "# HELP o \n"
					   "# TYPE o histogram\n"
					   "o_bucket{le=\"4\"} 1\n"
					   "o_bucket{le=\"+Inf\"} 2\n"
					   "o_sum 10\n"
					   "o_count 2\n");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_escaping(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	struct ig_metric_family *f =
		ig_metrics_counter(r, "c", "Back\\slash and\nnewline \"q\".", (const char *[]){"l"}, 1);
	ig_counter_add(ig_metrics_series(f, (const char *[]){"a\"b\\c\nd"}), 1);
	assert_string_equal(render(r, &b), "# HELP c Back\\\\slash and\\nnewline \"q\".\n"
					   "# TYPE c counter\n"
					   "c{l=\"a\\\"b\\\\c\\nd\"} 1\n");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_validation(void **state)
{
	struct ig_registry *r = ig_registry_new();
	const double up[] = {1, 2}, flat[] = {1, 1}, inf[] = {1, INFINITY};
	assert_non_null(ig_metrics_counter(r, "ok:name_1", "", NULL, 0));
	assert_null(ig_metrics_counter(r, "ok:name_1", "", NULL, 0)); /* duplicate */
	assert_null(ig_metrics_gauge(r, "1bad", "", NULL, 0));
	assert_null(ig_metrics_gauge(r, "", "", NULL, 0));
	assert_null(ig_metrics_gauge(r, "g", "", (const char *[]){"a:b"}, 1));
	assert_null(ig_metrics_gauge(r, "g", "", (const char *[]){"__x"}, 1));
	assert_null(ig_metrics_gauge(r, "g", "", (const char *[]){"a", "a"}, 2));
	assert_null(ig_metrics_histogram(r, "h", "", (const char *[]){"le"}, 1, up, 2));
	assert_null(ig_metrics_histogram(r, "h", "", NULL, 0, flat, 2));
	assert_null(ig_metrics_histogram(r, "h", "", NULL, 0, inf, 2));
	assert_non_null(ig_metrics_histogram(r, "h", "", NULL, 0, up, 2));
	assert_non_null(ig_metrics_gauge(r, "g", "", (const char *[]){"le"}, 1));
	ig_registry_free(r);
}

static void test_series_identity(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_metric_family *f = ig_metrics_counter(r, "c", "", (const char *[]){"a", "b"}, 2);
	struct ig_series *s1 = ig_metrics_series(f, (const char *[]){"a", "b"});
	struct ig_series *s2 = ig_metrics_series(f, (const char *[]){"ab", ""});
	struct ig_series *s3 = ig_metrics_series(f, (const char *[]){"ab", NULL});
	assert_non_null(s1);
	assert_ptr_not_equal(s1, s2);
	assert_ptr_equal(s2, s3); /* NULL reads as "" */
	for (int i = 0; i < 200; i++) {
		char v[16];
		snprintf(v, sizeof v, "v%d", i);
		ig_counter_add(ig_metrics_series(f, (const char *[]){v, "x"}), i);
	}
	assert_true(ig_series_value(ig_metrics_series(f, (const char *[]){"v150", "x"})) == 150);
	ig_registry_free(r);
}

struct shared {
	struct ig_metric_family *c, *g, *h;
};

static void *worker(void *arg)
{
	struct shared *sh = arg;
	/* Every thread looks the series up itself, racing on creation. */
	struct ig_series *c = ig_metrics_series(sh->c, (const char *[]){"same"});
	struct ig_series *g = ig_metrics_series(sh->g, NULL);
	struct ig_series *h = ig_metrics_series(sh->h, (const char *[]){"same"});
	for (int i = 0; i < 100000; i++) {
		ig_counter_add(c, 1);
		ig_gauge_add(g, 0.5);
		ig_hist_observe(h, (double)(i % 4));
	}
	return c;
}

static void test_concurrent_updates(void **state)
{
	struct ig_registry *r = ig_registry_new();
	const double bounds[] = {0, 1, 2};
	struct shared sh = {
		ig_metrics_counter(r, "c", "", (const char *[]){"l"}, 1),
		ig_metrics_gauge(r, "g", "", NULL, 0),
		ig_metrics_histogram(r, "h", "", (const char *[]){"l"}, 1, bounds, 3),
	};
	pthread_t t[4];
	void *ret[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, &sh), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], &ret[i]);
	for (int i = 1; i < 4; i++)
		assert_ptr_equal(ret[i], ret[0]);
	assert_true(ig_series_value(ret[0]) == 400000);
	assert_true(ig_series_value(ig_metrics_series(sh.g, NULL)) == 200000);
	struct ig_series *h = ig_metrics_series(sh.h, (const char *[]){"same"});
	assert_true(ig_series_value(h) == 600000); /* (0+1+2+3) * 25000 * 4 */
	struct ig_buf b = {0};
	const char *text = render(r, &b);
	assert_non_null(strstr(text, "h_bucket{l=\"same\",le=\"0\"} 100000\n"));
	assert_non_null(strstr(text, "h_bucket{l=\"same\",le=\"2\"} 300000\n"));
	assert_non_null(strstr(text, "h_count{l=\"same\"} 400000\n"));
	ig_buf_free(&b);
	ig_registry_free(r);
}

/* Threads that own shards, threads on the shared shard 0 (one that never
 * declared a shard, one whose index the registry does not have) and a
 * reader rendering all along: the totals are exact once they are joined,
 * and every render in between keeps _count equal to the +Inf bucket. */
enum { N_OWNERS = 6, N_SHARDED = 8, N_ITER = 50000 };

struct sharded_arg {
	struct shared *sh;
	unsigned shard;
	const char *label;
};

static void *sharded_worker(void *arg)
{
	struct sharded_arg *a = arg;
	ig_metrics_set_shard(a->shard);
	struct ig_series *c = ig_metrics_series(a->sh->c, (const char *[]){"all"});
	struct ig_series *mine = ig_metrics_series(a->sh->c, (const char *[]){a->label});
	struct ig_series *h = ig_metrics_series(a->sh->h, (const char *[]){"all"});
	for (int i = 0; i < N_ITER; i++) {
		ig_counter_add(c, 1);
		ig_counter_add(mine, 0.5);
		ig_hist_observe(h, (double)(i % 4));
		if (i % 1000 == 0)
			ig_gauge_set(ig_metrics_series(a->sh->g, NULL), a->shard);
	}
	return NULL;
}

struct render_arg {
	struct ig_registry *r;
	atomic_int stop;
	int renders, bad;
};

static uint64_t sample(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static void *render_loop(void *arg)
{
	struct render_arg *a = arg;
	struct ig_buf b = {0};
	/* At least one render, even if the writers are done before it starts. */
	do {
		ig_buf_reset(&b);
		if (ig_registry_render(a->r, &b) != 0)
			a->bad++;
		const char *t = ig_buf_cstr(&b);
		uint64_t inf = sample(t, "h_bucket{l=\"all\",le=\"+Inf\"} ");
		uint64_t le0 = sample(t, "h_bucket{l=\"all\",le=\"0\"} ");
		if (inf != UINT64_MAX && (inf != sample(t, "h_count{l=\"all\"} ") || le0 > inf))
			a->bad++;
		a->renders++;
	} while (!atomic_load(&a->stop));
	ig_buf_free(&b);
	return NULL;
}

static void test_sharded_exact_totals(void **state)
{
	struct ig_registry *r = ig_registry_new_sharded(N_SHARDED);
	const double bounds[] = {0, 1, 2};
	struct shared sh = {
	    ig_metrics_counter(r, "c", "", (const char *[]){"l"}, 1),
	    ig_metrics_gauge(r, "g", "", NULL, 0),
	    ig_metrics_histogram(r, "h", "", (const char *[]){"l"}, 1, bounds, 3),
	};
	/* Owners 1..6, then 0 (shared) and 8 (out of range: shared too). */
	static const char *const labels[] = {"t1", "t2", "t3", "t4", "t5", "t6", "t0", "t8"};
	struct sharded_arg args[N_OWNERS + 2];
	pthread_t t[N_OWNERS + 2], rt;
	struct render_arg ra = {.r = r};
	atomic_init(&ra.stop, 0);
	assert_int_equal(pthread_create(&rt, NULL, render_loop, &ra), 0);
	for (int i = 0; i < N_OWNERS + 2; i++) {
		unsigned shard = i < N_OWNERS ? (unsigned)i + 1 : i == N_OWNERS ? 0 : N_SHARDED;
		args[i] = (struct sharded_arg){&sh, shard, labels[i]};
		assert_int_equal(pthread_create(&t[i], NULL, sharded_worker, &args[i]), 0);
	}
	for (int i = 0; i < N_OWNERS + 2; i++)
		pthread_join(t[i], NULL);
	atomic_store(&ra.stop, 1);
	pthread_join(rt, NULL);
	assert_int_equal(ra.bad, 0);
	assert_true(ra.renders > 0);

	const int nthreads = N_OWNERS + 2;
	assert_true(ig_series_value(ig_metrics_series(sh.c, (const char *[]){"all"})) ==
		    (double)nthreads * N_ITER);
	for (int i = 0; i < nthreads; i++)
		assert_true(ig_series_value(ig_metrics_series(sh.c, (const char *[]){labels[i]})) ==
			    N_ITER * 0.5);
	struct ig_series *h = ig_metrics_series(sh.h, (const char *[]){"all"});
	assert_true(ig_series_value(h) == (0 + 1 + 2 + 3) * (N_ITER / 4.0) * nthreads);
	/* The gauge holds one thread's last set, whichever came last. */
	double g = ig_series_value(ig_metrics_series(sh.g, NULL));
	assert_true(g == 0 || g == N_SHARDED || (g >= 1 && g <= N_OWNERS));
	struct ig_buf b = {0};
	const char *text = render(r, &b);
	char want[128];
	snprintf(want, sizeof want, "h_bucket{l=\"all\",le=\"0\"} %d\n", nthreads * N_ITER / 4);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "h_bucket{l=\"all\",le=\"2\"} %d\n", nthreads * N_ITER / 4 * 3);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "h_count{l=\"all\"} %d\n", nthreads * N_ITER);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "c{l=\"all\"} %d\n", nthreads * N_ITER);
	assert_non_null(strstr(text, want));
	ig_buf_free(&b);
	ig_registry_free(r);
}

/* The same updates render the same text whether the main thread makes
 * them (shared shard), a thread with its own shard does, or a thread that
 * asks for a shard the registry does not have (one shard: all shared). */
struct mix {
	struct ig_registry *r;
	unsigned shard;
};

static void make_updates(struct ig_registry *r)
{
	const double bounds[] = {0.5, 1, 2.5};
	struct ig_metric_family *c =
	    ig_metrics_counter(r, "req_total", "Requests.", (const char *[]){"m"}, 1);
	struct ig_metric_family *g = ig_metrics_gauge(r, "up", "Up.", NULL, 0);
	struct ig_metric_family *h =
	    ig_metrics_histogram(r, "d_seconds", "Durations.", (const char *[]){"m"}, 1, bounds, 3);
	for (int i = 0; i < 10; i++) {
		ig_counter_add(ig_metrics_series(c, (const char *[]){i % 2 ? "a" : "b"}), 0.1);
		ig_hist_observe(ig_metrics_series(h, (const char *[]){"x"}), i * 0.3);
	}
	ig_counter_add(ig_metrics_series(c, (const char *[]){"a"}), 1e7);
	ig_gauge_set(ig_metrics_series(g, NULL), 3);
	ig_gauge_add(ig_metrics_series(g, NULL), -0.25);
}

static void *updates_on_shard(void *arg)
{
	struct mix *m = arg;
	ig_metrics_set_shard(m->shard);
	make_updates(m->r);
	return NULL;
}

static void test_sharded_render_unchanged(void **state)
{
	static const char want[] = "# HELP req_total Requests.\n"
				   "# TYPE req_total counter\n"
				   "req_total{m=\"b\"} 0.5\n"
				   "req_total{m=\"a\"} 1.00000005e+07\n"
				   "# HELP up Up.\n"
				   "# TYPE up gauge\n"
				   "up 2.75\n"
				   "# HELP d_seconds Durations.\n"
				   "# TYPE d_seconds histogram\n"
				   "d_seconds_bucket{m=\"x\",le=\"0.5\"} 2\n"
				   "d_seconds_bucket{m=\"x\",le=\"1\"} 4\n"
				   "d_seconds_bucket{m=\"x\",le=\"2.5\"} 9\n"
				   "d_seconds_bucket{m=\"x\",le=\"+Inf\"} 10\n"
				   "d_seconds_sum{m=\"x\"} 13.5\n"
				   "d_seconds_count{m=\"x\"} 10\n";
	struct ig_buf b = {0};
	struct ig_registry *main_r = ig_registry_new();
	make_updates(main_r);
	assert_string_equal(render(main_r, &b), want);
	struct mix cases[] = {
	    {ig_registry_new(), 5},
	    {ig_registry_new_sharded(1), 5},
	    {ig_registry_new_sharded(0), 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, updates_on_shard, &cases[i]), 0);
		pthread_join(t, NULL);
		assert_string_equal(render(cases[i].r, &b), want);
		ig_registry_free(cases[i].r);
	}
	ig_buf_free(&b);
	ig_registry_free(main_r);
}

/* A summed gauge: threads with shards of their own, one on the shared
 * shard, each moving it up and down; the value is the sum of what they
 * left. A thread may take back what another added (a request counted on
 * one shard and ended on another): only the sum is seen. */
struct updown_arg {
	struct ig_metric_family *f;
	unsigned shard;
	int ups, downs;
};

static void *updown_worker(void *arg)
{
	struct updown_arg *a = arg;
	ig_metrics_set_shard(a->shard);
	struct ig_series *s = ig_metrics_series(a->f, (const char *[]){"m"});
	for (int i = 0; i < a->ups || i < a->downs; i++) {
		if (i < a->ups)
			ig_gauge_add(s, 1);
		if (i < a->downs)
			ig_gauge_add(s, -1);
	}
	return NULL;
}

static void test_summed_gauge(void **state)
{
	struct ig_registry *r = ig_registry_new_sharded(N_SHARDED);
	struct ig_buf b = {0};
	struct ig_metric_family *f =
	    ig_metrics_gauge_summed(r, "running", "In flight.", (const char *[]){"model_name"}, 1);
	assert_non_null(f);
	/* Owners 1..4 leave 7 each; shard 0 takes back 10 it never added. */
	struct updown_arg args[] = {{f, 1, N_ITER, N_ITER - 7},
				    {f, 2, N_ITER, N_ITER - 7},
				    {f, 3, N_ITER, N_ITER - 7},
				    {f, 4, N_ITER, N_ITER - 7},
				    {f, 0, 0, 10}};
	pthread_t t[5];
	for (int i = 0; i < 5; i++)
		assert_int_equal(pthread_create(&t[i], NULL, updown_worker, &args[i]), 0);
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	struct ig_series *s = ig_metrics_series(f, (const char *[]){"m"});
	assert_true(ig_series_value(s) == 4 * 7 - 10);
	assert_string_equal(render(r, &b), "# HELP running In flight.\n"
					   "# TYPE running gauge\n"
					   "running{model_name=\"m\"} 18\n");
	/* Taken back to zero on another shard than the one that added. */
	ig_metrics_set_shard(5);
	ig_gauge_add(s, -18);
	ig_metrics_set_shard(0);
	assert_true(ig_series_value(s) == 0);
	assert_non_null(strstr(render(r, &b), "running{model_name=\"m\"} 0\n"));
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void pool_avg(void *ctx, struct ig_metric_family *f)
{
	int *calls = ctx;
	(*calls)++;
	ig_gauge_set(ig_metrics_series(f, (const char *[]){"pool-a"}), *calls * 0.25);
}

static void test_gauge_callback(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	int calls = 0;
	assert_non_null(ig_metrics_gauge_fn(r, "inference_pool_average_queue_size", "Avg.",
					    (const char *[]){"name"}, 1, pool_avg, &calls));
	render(r, &b);
	assert_string_equal(render(r, &b), "# HELP inference_pool_average_queue_size Avg.\n"
					   "# TYPE inference_pool_average_queue_size gauge\n"
					   "inference_pool_average_queue_size{name=\"pool-a\"} 0.5\n");
	assert_int_equal(calls, 2);
	ig_buf_free(&b);
	ig_registry_free(r);
}

/* Emits one row per name in the NULL-terminated list ctx points to. */
static void pod_rows(void *ctx, struct ig_metric_rows *rows)
{
	const char *const *pods = *(const char *const **)ctx;
	for (size_t i = 0; pods[i]; i++)
		ig_metrics_row(rows, (const char *[]){"pool-a", pods[i]}, (double)i + 0.5);
}

/* Rows exist only while rendered: a pod that is gone leaves no series, and
 * a family with no rows renders nothing, not even its header. */
static void test_gauge_rows(void **state)
{
	struct ig_registry *r = ig_registry_new();
	struct ig_buf b = {0};
	const char *two[] = {"10.0.0.1:8000", "a\"b", NULL}, *none[] = {NULL};
	const char *const *pods = two;
	assert_non_null(ig_metrics_gauge_rows(r, "inference_pool_per_pod_queue_size", "Per pod.",
					      (const char *[]){"name", "model_server_pod"}, 2,
					      pod_rows, &pods));
	assert_null(ig_metrics_gauge_rows(r, "inference_pool_per_pod_queue_size", "Again.", NULL, 0,
					  pod_rows, &pods));
	assert_string_equal(
	    render(r, &b),
	    "# HELP inference_pool_per_pod_queue_size Per pod.\n"
	    "# TYPE inference_pool_per_pod_queue_size gauge\n"
	    "inference_pool_per_pod_queue_size{name=\"pool-a\",model_server_pod=\"10.0.0.1:8000\"} "
	    "0.5\n"
	    "inference_pool_per_pod_queue_size{name=\"pool-a\",model_server_pod=\"a\\\"b\"} 1.5\n");
	two[1] = NULL;
	assert_string_equal(
	    render(r, &b),
	    "# HELP inference_pool_per_pod_queue_size Per pod.\n"
	    "# TYPE inference_pool_per_pod_queue_size gauge\n"
	    "inference_pool_per_pod_queue_size{name=\"pool-a\",model_server_pod=\"10.0.0.1:8000\"} "
	    "0.5\n");
	pods = none;
	assert_string_equal(render(r, &b), "");
	ig_buf_free(&b);
	ig_registry_free(r);
}

struct parsed {
	size_t n;
	double sum_le_inf;
	char label[64];
};

static int on_sample(void *ctx, const struct ig_prom_sample *s)
{
	struct parsed *p = ctx;
	struct ig_buf v = {0};
	p->n++;
	if (ig_prom_label(s->labels, "le", &v) == 1 && ig_str_eq_cstr(ig_buf_str(&v), "+Inf"))
		p->sum_le_inf += s->value;
	ig_buf_reset(&v);
	if (ig_str_eq_cstr(s->name, "esc") && ig_prom_label(s->labels, "l", &v) == 1)
		snprintf(p->label, sizeof p->label, "%.*s", (int)v.len, v.ptr);
	ig_buf_free(&v);
	return 0;
}

static void test_output_parses(void **state)
{
	struct ig_registry *r = ig_registry_new();
	const double bounds[] = {0.005, 0.025, 1, 3600};
	const char *l2[] = {"model_name", "target_model_name"};
	struct ig_metric_family *h = ig_metrics_histogram(r, "lat", "L.", l2, 2, bounds, 4);
	struct ig_metric_family *e = ig_metrics_counter(r, "esc", "E\n.", (const char *[]){"l"}, 1);
	ig_metrics_gauge(r, "nan", "", NULL, 0);
	for (int i = 0; i < 10; i++)
		ig_hist_observe(ig_metrics_series(h, (const char *[]){"m", i % 2 ? "a" : "b"}), i * 0.01);
	ig_counter_add(ig_metrics_series(e, (const char *[]){"x\"y\\z\n,}"}), 1e-7);
	struct ig_buf b = {0};
	render(r, &b);
	struct parsed p = {0};
	size_t line = 0;
	assert_int_equal(ig_prom_parse(b.ptr, b.len, on_sample, &p, &line), 0);
	assert_int_equal(p.n, 2 * (4 + 1 + 2) + 1 + 1);
	assert_true(p.sum_le_inf == 10);
	assert_string_equal(p.label, "x\"y\\z\n,}");
	ig_buf_free(&b);
	ig_registry_free(r);
}

static void test_render_respects_buffer_ceiling(void **state)
{
	struct ig_registry *r = ig_registry_new();
	ig_metrics_counter(r, "a_rather_long_metric_name_total", "Help text.", NULL, 0);
	struct ig_buf b;
	ig_buf_init(&b, 16);
	assert_true(ig_registry_render(r, &b) < 0);
	assert_true(b.len <= 16);
	ig_buf_free(&b);
	ig_registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_text),
		cmocka_unit_test(test_gauge_text_and_numbers),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_histogram_observe2),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_series_identity),
		cmocka_unit_test(test_concurrent_updates),
		cmocka_unit_test(test_sharded_exact_totals),
		cmocka_unit_test(test_sharded_render_unchanged),
		cmocka_unit_test(test_summed_gauge),
		cmocka_unit_test(test_gauge_callback),
		cmocka_unit_test(test_gauge_rows),
		cmocka_unit_test(test_output_parses),
		cmocka_unit_test(test_render_respects_buffer_ceiling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
