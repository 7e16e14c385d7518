/* The gateway's own metrics (gateway/metrics.c) against GIE v1.5's
 * pkg/epp/metrics/metrics.go: buckets, label sets, and which events record
 * what. Rendered without a snapshot, so no pool family shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "gateway/metrics.h"

static const char *render(struct ig_gw_metrics *m, struct ig_buf *b)
{
	ig_buf_reset(b);
	ig_gw_metrics_render(m, NULL, b);
	return ig_buf_cstr(b);
}

/* The value of the series written as exactly `series` (name and labels),
 * or -1 when the page has no such line. */
static double value(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

/* How many lines of the page start with `prefix`. */
static int lines(const char *text, const char *prefix)
{
	int k = 0;
	size_t n = strlen(prefix);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		k += strncmp(l, prefix, n) == 0;
	return k;
}

static struct ig_gw_request_stats ok_request(void)
{
	return (struct ig_gw_request_stats){
	    .model = "m",
	    .target = "t",
	    .priority = 5,
	    .status = 200,
	    .pod_status = true,
	    .scheduled = true,
	    .seconds = 0.3,
	    .req_bytes = 100,
	    .resp_bytes = 700,
	    .in_tokens = 4,
	    .out_tokens = 5,
	    .cached_tokens = -1,
	    .ttft = -1,
	    .tpot = -1,
	};
}

/* GIE v1.2 to v1.5 time request_ttft_seconds with generalLatencyBuckets,
 * the request latency's, and request_tpot_seconds with tpotBuckets. */
static void test_ttft_and_tpot_buckets_are_gies(void **state)
{
	(void)state;
	struct ig_gw_metrics *m = ig_gw_metrics_new();
	struct ig_gw_metrics_cache *c = ig_gw_metrics_cache_new();
	struct ig_buf b = {0};
	struct ig_gw_request_stats st = ok_request();
	st.ttft = 0.003;
	st.tpot = 0.003;
	ig_gw_metrics_done(m, c, &st);
	const char *text = render(m, &b);
	static const char *const general[] = {
	    "0.005", "0.025", "0.05", "0.1", "0.2",  "0.4",  "0.6",  "0.8",  "1",
	    "1.25",  "1.5",   "2",    "3",   "4",    "5",    "6",    "8",    "10",
	    "15",    "20",    "30",   "45",  "60",   "120",  "180",  "240",  "300",
	    "360",   "480",   "600",  "900", "1200", "1800", "2700", "3600", "+Inf"};
	static const char *const tpot[] = {
	    "0.0005", "0.00205", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",
	    "0.125",  "0.15",	 "0.2",	  "0.3",  "0.4",  "0.5",  "0.6",  "0.8",  "1",
	    "1.5",    "2",	 "3",	  "4.5",  "6",	  "12",	  "18",	  "24",	  "30",
	    "36",     "48",	 "60",	  "90",	  "120",  "180",  "270",  "360",  "+Inf"};
	const struct {
		const char *family;
		const char *const *le;
		size_t n;
	} want[] = {
	    {"inference_objective_request_ttft_seconds", general,
	     sizeof general / sizeof general[0]},
	    {"inference_objective_request_tpot_seconds", tpot, sizeof tpot / sizeof tpot[0]},
	};
	for (size_t f = 0; f < sizeof want / sizeof want[0]; f++) {
		char prefix[128], line[256];
		snprintf(prefix, sizeof prefix, "%s_bucket{", want[f].family);
		assert_int_equal(lines(text, prefix), (int)want[f].n);
		for (size_t i = 0; i < want[f].n; i++) {
			snprintf(line, sizeof line,
				 "%s_bucket{model_name=\"m\",target_model_name=\"t\",le=\"%s\"}",
				 want[f].family, want[f].le[i]);
			/* 3 ms is in every bucket of GIE's TTFT list. */
			double v = value(text, line);
			assert_true(v == 0 || v == 1);
			if (f == 0)
				assert_true(v == 1);
		}
	}
	ig_buf_free(&b);
	ig_gw_metrics_cache_free(c);
	ig_gw_metrics_free(m);
}

/* GIE v1.5's requestErrCounter is {model_name, target_model_name,
 * error_code}: the priority is on request_total only. */
static void test_error_total_has_no_priority(void **state)
{
	(void)state;
	struct ig_gw_metrics *m = ig_gw_metrics_new();
	struct ig_gw_metrics_cache *c = ig_gw_metrics_cache_new();
	struct ig_buf b = {0};
	struct ig_gw_request_stats st = ok_request();
	st.status = 429;
	st.pod_status = false;
	st.scheduled = false;
	ig_gw_metrics_done(m, c, &st);
	st.priority = -1;
	ig_gw_metrics_done(m, c, &st);
	const char *text = render(m, &b);
	assert_true(value(text, "inference_objective_request_error_total{model_name=\"m\","
				"target_model_name=\"t\",error_code=\"ResourceExhausted\"}") == 2);
	assert_true(value(text, "inference_model_request_error_total{model_name=\"m\","
				"target_model_name=\"t\","
				"error_code=\"InferencePoolResourceExhausted\"}") == 2);
	assert_int_equal(lines(text, "inference_objective_request_error_total{"), 1);
	assert_null(strstr(text, "# TYPE inference_objective_request_total"));
	ig_buf_free(&b);
	ig_gw_metrics_cache_free(c);
	ig_gw_metrics_free(m);
}

/* GIE records the latency and the response's size at the end of the
 * response's stream whatever its status (handlers/response.go
 * HandleResponseBody): a model server's error answer is timed as a
 * success is; a response cut before its end, or an error the gateway
 * answered itself, is not. */
static void test_model_server_errors_are_timed(void **state)
{
	(void)state;
	struct ig_gw_metrics *m = ig_gw_metrics_new();
	struct ig_gw_metrics_cache *c = ig_gw_metrics_cache_new();
	struct ig_buf b = {0};
	struct ig_gw_request_stats st = ok_request();
	st.status = 500;
	st.resp_bytes = 40;
	st.in_tokens = st.out_tokens = 0;
	ig_gw_metrics_done(m, c, &st);
	/* Cut mid-response: no end, nothing timed. */
	st.cut = true;
	ig_gw_metrics_done(m, c, &st);
	/* The gateway's own 503 after a pick: no model server's answer. */
	st.cut = false;
	st.status = 503;
	st.pod_status = false;
	ig_gw_metrics_done(m, c, &st);
	const char *text = render(m, &b);
	const char *const fam[] = {"inference_objective", "inference_model"};
	for (size_t i = 0; i < 2; i++) {
		char s[160];
		snprintf(s, sizeof s,
			 "%s_request_duration_seconds_count{model_name=\"m\","
			 "target_model_name=\"t\"}",
			 fam[i]);
		assert_true(value(text, s) == 1);
		snprintf(s, sizeof s,
			 "%s_request_duration_seconds_sum{model_name=\"m\","
			 "target_model_name=\"t\"}",
			 fam[i]);
		assert_true(value(text, s) == 0.3);
		snprintf(s, sizeof s,
			 "%s_response_sizes_sum{model_name=\"m\",target_model_name=\"t\"}", fam[i]);
		assert_true(value(text, s) == 40);
		snprintf(s, sizeof s,
			 "%s_request_error_total{model_name=\"m\",target_model_name=\"t\","
			 "error_code=\"ModelServerError\"}",
			 fam[i]);
		assert_true(value(text, s) == 2);
	}
	/* No output tokens: no NTPOT, as GIE records none then. */
	assert_true(value(text, "inference_objective_normalized_time_per_output_token_seconds_"
				"count{model_name=\"m\",target_model_name=\"t\"}") == 0);
	ig_buf_free(&b);
	ig_gw_metrics_cache_free(c);
	ig_gw_metrics_free(m);
}

/* GIE enqueues every request flow control sees: one admitted at once
 * still records its enqueue step (outcome NotYetFinalized, processor.go
 * enqueue) and the dispatch cycle that sent it on. */
static void test_passed_request_is_enqueued_and_dispatched(void **state)
{
	(void)state;
	struct ig_gw_metrics *m = ig_gw_metrics_new();
	struct ig_gw_metrics_cache *c = ig_gw_metrics_cache_new();
	struct ig_buf b = {0};
	struct ig_gw_flow_stats st = {
	    .fairness_id = ig_str_from("tenant"),
	    .priority = 2,
	    .pool = "pool",
	    .pool_ns = "team-a",
	    .model = "m",
	    .target = "t",
	    .bytes = 100,
	    .seconds = 0.00003,
	};
	ig_gw_metrics_flow(m, c, IG_GW_FLOW_PASSED, &st);
	ig_gw_metrics_flow(m, c, IG_GW_FLOW_PASSED, &st);
	const char *text = render(m, &b);
	assert_true(value(text, "inference_extension_flow_control_request_enqueue_duration_"
				"seconds_count{fairness_id=\"tenant\",priority=\"2\","
				"outcome=\"NotYetFinalized\"}") == 2);
	assert_true(value(text, "inference_extension_flow_control_request_enqueue_duration_"
				"seconds_bucket{fairness_id=\"tenant\",priority=\"2\","
				"outcome=\"NotYetFinalized\",le=\"0.0001\"}") == 2);
	assert_true(value(text, "inference_extension_flow_control_dispatch_cycle_duration_"
				"seconds_count") == 2);
	/* Admitted without a wait: 0 s in flow control, and never queued. */
	assert_true(value(text,
			  "inference_extension_flow_control_request_queue_duration_"
			  "seconds_sum{fairness_id=\"tenant\",priority=\"2\","
			  "outcome=\"Dispatched\",inference_pool=\"pool\","
			  "namespace=\"team-a\",model_name=\"m\",target_model_name=\"t\"}") == 0);
	assert_null(strstr(text, "inference_extension_flow_control_queue_size{"));
	ig_buf_free(&b);
	ig_gw_metrics_cache_free(c);
	ig_gw_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ttft_and_tpot_buckets_are_gies),
	    cmocka_unit_test(test_error_total_has_no_priority),
	    cmocka_unit_test(test_model_server_errors_are_timed),
	    cmocka_unit_test(test_passed_request_is_enqueued_and_dispatched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
