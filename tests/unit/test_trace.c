/* W3C trace context and the OTLP/JSON spans of trace/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"
#include "trace/trace.h"

static int parse(const char *s, struct ig_trace_parent *p)
{
	return ig_traceparent_parse(ig_str_from(s), p);
}

static void test_traceparent(void **state)
{
	struct ig_trace_parent p;
	assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &p), 0);
	assert_true(p.sampled);
	assert_int_equal(p.trace_id[0], 0x4b);
	assert_int_equal(p.trace_id[15], 0x36);
	assert_int_equal(p.span_id[7], 0xb7);
	assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &p), 0);
	assert_false(p.sampled);
	/* Invalid: all-zero ids, upper case, version ff, wrong lengths,
	 * version 00 with more fields. */
	const char *bad[] = {
	    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
	    "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	    "",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(parse(bad[i], &p), -1);
	/* A later version with extra fields is read as version 00. */
	assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", &p),
			 0);
}

static void test_format_round_trip(void **state)
{
	uint8_t trace[16], span[8];
	ig_trace_random_id(ig_rng_thread(), trace, 16);
	ig_trace_random_id(ig_rng_thread(), span, 8);
	char out[56];
	ig_traceparent_format(trace, span, true, out);
	assert_int_equal(strlen(out), 55);
	struct ig_trace_parent p;
	assert_int_equal(parse(out, &p), 0);
	assert_memory_equal(p.trace_id, trace, 16);
	assert_memory_equal(p.span_id, span, 8);
	assert_true(p.sampled);
}

static void test_span_json(void **state)
{
	uint8_t trace[16] = {1, 2, 3}, span[8] = {9}, parent[8] = {7};
	struct ig_span_attr a[] = {
	    {.key = "gen_ai.request.model", .s = IG_STR("m\"odel")},
	    {.key = "gen_ai.usage.input_tokens", .is_int = true, .i = 42},
	};
	struct ig_span s = {.trace_id = trace,
			    .span_id = span,
			    .parent = parent,
			    .kind = IG_SPAN_SERVER,
			    .name = IG_STR("POST /v1/completions"),
			    .start_unix_ns = 1700000000000000000ull,
			    .end_unix_ns = 1700000000000001000ull,
			    .status = IG_SPAN_ERROR,
			    .status_message = "bad",
			    .attrs = a,
			    .nattrs = 2};
	struct ig_buf b = {0};
	assert_int_equal(ig_span_json(&b, &s), 0);
	struct ig_json_value v, f;
	assert_int_equal(ig_json_parse(b.ptr, b.len, &v), 0);
	assert_int_equal(ig_json_get(v, "traceId", &f), 0);
	assert_memory_equal(f.raw.ptr, "\"01020300000000000000000000000000\"", 34);
	assert_int_equal(ig_json_get(v, "parentSpanId", &f), 0);
	assert_memory_equal(f.raw.ptr, "\"0700000000000000\"", 18);
	assert_int_equal(ig_json_get(v, "kind", &f), 0);
	assert_memory_equal(f.raw.ptr, "2", 1);
	assert_int_equal(ig_json_get(v, "startTimeUnixNano", &f), 0);
	assert_memory_equal(f.raw.ptr, "\"1700000000000000000\"", 21);
	assert_non_null(strstr(ig_buf_cstr(&b), "\"intValue\":\"42\""));
	assert_non_null(strstr(ig_buf_cstr(&b), "\"stringValue\":\"m\\\"odel\""));
	assert_non_null(strstr(ig_buf_cstr(&b), "\"status\":{\"code\":2,\"message\":\"bad\"}"));
	/* A root span has no parentSpanId. */
	b.len = 0;
	s.parent = NULL;
	assert_int_equal(ig_span_json(&b, &s), 0);
	assert_null(strstr(ig_buf_cstr(&b), "parentSpanId"));
	/* A full buffer: -1 and nothing half written. */
	struct ig_buf small = {0};
	ig_buf_init(&small, 40);
	assert_int_equal(ig_span_json(&small, &s), -1);
	assert_int_equal(small.len, 0);
	ig_buf_free(&small);
	ig_buf_free(&b);
}

/* A worker's ring that is full drops the spans that do not fit and counts
 * them, without touching another worker's ring. Asked for 4000 bytes, the
 * ring has 4096 (a power of two); each span takes its JSON and a 4-byte
 * length. */
static void test_full_ring_drops_counted(void **state)
{
	struct ig_tracer_config c = {
	    .endpoint = "http://127.0.0.1:9", .nrings = 2, .ring_bytes = 4000};
	char err[256];
	struct ig_tracer *t = ig_tracer_new(&c, err, sizeof err);
	assert_non_null(t);
	uint8_t trace[16] = {1}, span[8] = {2};
	struct ig_span s = {.trace_id = trace,
			    .span_id = span,
			    .kind = IG_SPAN_SERVER,
			    .name = IG_STR("POST /v1/completions"),
			    .start_unix_ns = 1,
			    .end_unix_ns = 2};
	struct ig_buf b = {0};
	assert_int_equal(ig_span_json(&b, &s), 0);
	size_t fit = 4096 / (b.len + 4);
	ig_buf_free(&b);
	struct ig_span spans[40];
	for (size_t i = 0; i < 40; i++)
		spans[i] = s;
	assert_true(fit > 0 && fit < 40);
	struct ig_tracer_stats st;
	ig_tracer_emit(t, 0, spans, 40);
	ig_tracer_stats(t, &st);
	assert_int_equal(st.spans_dropped, 40 - fit);
	ig_tracer_emit(t, 1, spans, fit);
	ig_tracer_stats(t, &st);
	assert_int_equal(st.spans_dropped, 40 - fit);
	ig_tracer_emit(t, 1, spans, 1);
	ig_tracer_stats(t, &st);
	assert_int_equal(st.spans_dropped, 40 - fit + 1);
	assert_int_equal(st.spans_exported, 0);
	ig_tracer_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_traceparent),
	    cmocka_unit_test(test_format_round_trip),
	    cmocka_unit_test(test_span_json),
	    cmocka_unit_test(test_full_ring_drops_counted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
