/* Prometheus text parsing and the vLLM metrics extraction built on it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/metrics.h"
#include "pool/prom.h"

#define MAXS 32

struct collected {
	size_t n;
	struct ig_prom_sample s[MAXS];
	int stop_at; /* return non-zero from the callback at this sample, 0: never */
};

static int collect(void *ctx, const struct ig_prom_sample *s)
{
	struct collected *c = ctx;
	if (c->n < MAXS)
		c->s[c->n] = *s;
	c->n++;
	if (c->stop_at && (int)c->n == c->stop_at)
		return 7;
	return 0;
}

static int parse(const char *text, struct collected *c, size_t *err_line)
{
	memset(c, 0, sizeof *c);
	return ig_prom_parse(text, strlen(text), collect, c, err_line);
}

static void assert_str(struct ig_str s, const char *want)
{
	char tmp[256];
	snprintf(tmp, sizeof tmp, "%.*s", IG_STR_FMT(s));
	assert_string_equal(tmp, want);
}

/* Returns the label's unescaped value as a C string ("<absent>" / "<bad>"). */
static const char *lbl(struct ig_str labels, const char *name)
{
	static char out[256];
	struct ig_buf b = {0};
	int rc = ig_prom_label(labels, name, &b);
	if (rc == 1)
		snprintf(out, sizeof out, "%.*s", (int)b.len, b.ptr ? b.ptr : "");
	else
		snprintf(out, sizeof out, "%s", rc == 0 ? "<absent>" : "<bad>");
	ig_buf_free(&b);
	return out;
}

static const char vllm_page[] =
	"# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
	"# TYPE vllm:num_requests_running gauge\n"
	"vllm:num_requests_running{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 1.0\n"
	"# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
	"# TYPE vllm:num_requests_waiting gauge\n"
	"vllm:num_requests_waiting{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 3.0\n"
	"vllm:gpu_cache_usage_perc{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 0.0021\n"
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"tweet-summary-1\","
	"waiting_lora_adapters=\"\"} 1.7425777334e+09\n"
	"vllm:request_success_total{finished_reason=\"length\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 1.0\n"
	"vllm:time_to_first_token_seconds_bucket{le=\"0.25\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 1.0\n"
	"vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 1.0\n"
	"vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",num_gpu_blocks=\"9362\"} 1.0\n";

static void test_parse_vllm_page(void **state)
{
	struct collected c;
	assert_int_equal(parse(vllm_page, &c, NULL), 0);
	assert_int_equal(c.n, 8);
	assert_str(c.s[0].name, "vllm:num_requests_running");
	assert_str(c.s[0].labels, "model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"");
	assert_true(c.s[0].value == 1.0);
	assert_false(c.s[0].has_timestamp);
	assert_true(c.s[3].value == 1.7425777334e+09);
	assert_string_equal(lbl(c.s[3].labels, "max_lora"), "4");
	assert_string_equal(lbl(c.s[3].labels, "waiting_lora_adapters"), "");
	assert_string_equal(lbl(c.s[3].labels, "nope"), "<absent>");
	assert_string_equal(lbl(c.s[6].labels, "le"), "+Inf");
}

static void test_parse_values(void **state)
{
	struct collected c;
	assert_int_equal(parse("a 1\nb -2.5e-3\nc NaN\nd +Inf\ne -Inf\nf Inf\ng 1E3\nh .5\ni 0\n"
			       "j inf\nk 1e400\n",
			       &c, NULL),
			 0);
	assert_int_equal(c.n, 11);
	assert_true(c.s[0].value == 1.0);
	assert_true(c.s[1].value == -2.5e-3);
	assert_true(isnan(c.s[2].value));
	assert_true(isinf(c.s[3].value) && c.s[3].value > 0);
	assert_true(isinf(c.s[4].value) && c.s[4].value < 0);
	assert_true(isinf(c.s[5].value) && c.s[5].value > 0);
	assert_true(c.s[6].value == 1000.0);
	assert_true(c.s[7].value == 0.5);
	assert_true(c.s[8].value == 0.0);
	assert_true(isinf(c.s[9].value));
	assert_true(isinf(c.s[10].value));
}

/* Values come out as strtod's doubles, bit for bit, whether the quick
 * conversion takes them (digits below 2^53, powers of ten up to 22) or
 * not; and the forms strtod would not read whole are refused. */
static void test_parse_values_match_strtod(void **state)
{
	static const char *const forms[] = {
	    "0",	 "-0",	      "+0.0",	  "5.",		"-.5",	      "00012.50",
	    "1e+0",	 "1E-5",      "3.14159",  "1.7339872349912e+09",	"9007199254740993",
	    "9007199254740992", "1e22", "1e23", "123456789012345678901234", "0.1",
	    "4.35e-23", "1e-22", "2.2250738585072014e-308", "1.7976931348623157e308",
	    "12345678901234567.8", "0.000000000000000000001", "1e400", "-1e-400",
	};
	char text[64];
	struct collected c;
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		snprintf(text, sizeof text, "m %s\n", forms[i]);
		assert_int_equal(parse(text, &c, NULL), 0);
		double want = strtod(forms[i], NULL);
		if (memcmp(&c.s[0].value, &want, sizeof want) != 0)
			fail_msg("%s: %.17g, strtod %.17g", forms[i], c.s[0].value, want);
	}
	/* Random mantissas and exponents on both sides of the quick path. */
	uint64_t r = 42;
	for (int i = 0; i < 20000; i++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		int digits = 1 + (int)((r >> 59) % 20), point = (int)((r >> 40) % 22);
		int e = (int)((r >> 20) % 61) - 30;
		char mant[32];
		uint64_t x = r;
		for (int d = 0; d < digits; d++, x /= 10)
			mant[d] = (char)('0' + x % 10);
		mant[digits] = '\0';
		if (point < digits)
			snprintf(text, sizeof text, "m %s%.*s.%se%d\n", (r >> 17) & 1 ? "-" : "", point,
				 mant, mant + point, e);
		else
			snprintf(text, sizeof text, "m %se%d\n", mant, e);
		assert_int_equal(parse(text, &c, NULL), 0);
		text[strlen(text) - 1] = '\0';
		double want = strtod(text + 2, NULL);
		if (memcmp(&c.s[0].value, &want, sizeof want) != 0)
			fail_msg("%s: %.17g, strtod %.17g", text + 2, c.s[0].value, want);
	}
	static const char *const bad[] = {"m 1e\n",   "m .\n",	"m +.e5\n", "m 1e5.5\n",
					  "m --1\n",  "m 1-2\n",	"m 1e+\n",  "m -\n",
					  "m 1..2\n", "m 0x1p3\n", "m 1e5e5\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t line = 0;
		if (parse(bad[i], &c, &line) != -1 || line != 1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void test_parse_timestamps(void **state)
{
	struct collected c;
	assert_int_equal(parse("a 1 1700000000000\nb{x=\"y\"} 2 -5\nc 3\t 42 \n", &c, NULL), 0);
	assert_int_equal(c.n, 3);
	assert_true(c.s[0].has_timestamp);
	assert_int_equal(c.s[0].timestamp_ms, 1700000000000LL);
	assert_int_equal(c.s[1].timestamp_ms, -5);
	assert_int_equal(c.s[2].timestamp_ms, 42);
	assert_true(c.s[2].value == 3.0);
}

static void test_parse_whitespace_crlf_no_final_newline(void **state)
{
	struct collected c;
	const char *t = "  # comment\r\n\r\n\t\nm_1 { a = \"x\" , b=\"y\", } 5\r\nlast{} 6";
	assert_int_equal(parse(t, &c, NULL), 0);
	assert_int_equal(c.n, 2);
	assert_str(c.s[0].name, "m_1");
	assert_string_equal(lbl(c.s[0].labels, "a"), "x");
	assert_string_equal(lbl(c.s[0].labels, "b"), "y");
	assert_str(c.s[1].name, "last");
	assert_int_equal(c.s[1].labels.len, 0);
	assert_true(c.s[1].value == 6.0);
}

static void test_parse_escapes(void **state)
{
	struct collected c;
	const char *t = "m{a=\"q\\\"uo}te\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"x,y=z\"} 1\n";
	assert_int_equal(parse(t, &c, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(lbl(c.s[0].labels, "a"), "q\"uo}te");
	assert_string_equal(lbl(c.s[0].labels, "b"), "back\\slash");
	assert_string_equal(lbl(c.s[0].labels, "c"), "new\nline");
	assert_string_equal(lbl(c.s[0].labels, "d"), "x,y=z");
}

static void expect_error(const char *text, size_t line)
{
	struct collected c;
	size_t err = 0;
	assert_int_equal(parse(text, &c, &err), -1);
	assert_int_equal(err, line);
}

static void test_parse_malformed(void **state)
{
	expect_error("9bad 1\n", 1);
	expect_error("ok 1\n# x\nm\n", 3);
	expect_error("ok 1\nm{a=\"x\" 1\n", 2);
	expect_error("m{a=\"x\"", 1);
	expect_error("m{a=x} 1\n", 1);
	expect_error("m{a=\"x\"b=\"y\"} 1\n", 1);
	expect_error("m{,} 1\n", 1);
	expect_error("m{a:b=\"x\"} 1\n", 1);
	expect_error("m{a=\"\\t\"} 1\n", 1);
	expect_error("m 1x\n", 1);
	expect_error("m 0x10\n", 1);
	expect_error("m nan(1)\n", 1);
	expect_error("m 1 2 3\n", 1);
	expect_error("m 1 1.5\n", 1);
	expect_error("m 1 99999999999999999999\n", 1);
	expect_error("m-x 1\n", 1);
	expect_error("a 1\r\nb 2\r\nc\r\n", 3);
	expect_error("m e\n", 1);
	expect_error("m{a=\"x\"}\n", 1);
}

static void test_parse_callback_stops(void **state)
{
	struct collected c = {.stop_at = 2};
	const char *t = "a 1\nb 2\nc 3\n";
	assert_int_equal(ig_prom_parse(t, strlen(t), collect, &c, NULL), 7);
	assert_int_equal(c.n, 2);
}

static void test_parse_respects_length(void **state)
{
	/* The length bounds the parse even with valid-looking bytes after it. */
	struct collected c = {0};
	const char *t = "a 12junk";
	assert_int_equal(ig_prom_parse(t, 4, collect, &c, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_true(c.s[0].value == 12.0);
}

static void test_label_malformed(void **state)
{
	struct ig_buf b = {0};
	assert_int_equal(ig_prom_label(IG_STR("a=\"x"), "a", &b), -1);
	assert_int_equal(ig_prom_label(IG_STR("a=\"x\" b"), "b", &b), -1);
	assert_int_equal(ig_prom_label(IG_STR(""), "a", &b), 0);
	ig_buf_free(&b);
}

/* ---- extraction ---------------------------------------------------------- */

static int extract(const char *text, struct ig_endpoint_metrics *m)
{
	return ig_vllm_metrics_extract(text, strlen(text), IG_LORA_NEWEST, m);
}

/* GIE v0.2.0's rule: the newest series that names an adapter. */
static int extract_v02(const char *text, struct ig_endpoint_metrics *m)
{
	return ig_vllm_metrics_extract(text, strlen(text), IG_LORA_NAMING_ADAPTERS, m);
}

static void test_extract_seed_page(void **state)
{
	struct ig_endpoint_metrics m = {0};
	int found = extract(vllm_page, &m);
	assert_int_equal(found,
			 IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_LORA | IG_FAM_CACHE);
	assert_int_equal(m.cache.block_tokens, 16);
	assert_int_equal(m.cache.gpu_blocks, 9362);
	assert_int_equal(m.waiting, 3);
	assert_int_equal(m.running, 1);
	assert_true(m.kv_usage == 0.0021);
	assert_int_equal(m.max_active, 4);
	assert_int_equal(m.active.n, 1);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("tweet-summary-1")));
	assert_false(ig_adapter_set_has(&m.active, IG_STR("tweet-summary-0")));
	assert_int_equal(m.running_adapters.n, 1);
	assert_int_equal(m.waiting_adapters.n, 0);
	/* The served model, from the running gauge's model_name. */
	assert_true(m.base_model == ig_adapter_hash(IG_STR("Qwen/Qwen2.5-1.5B-Instruct")));
	assert_true(m.base_model != 0);
}

static void test_extract_missing_families_keep_old(void **state)
{
	struct ig_endpoint_metrics m = {.waiting = 9, .running = 8, .kv_usage = 0.5, .max_active = 2};
	ig_adapter_set_add(&m.active, IG_STR("old"));
	m.base_model = 77;
	int found = extract("vllm:num_requests_running 4\nother 1\n", &m);
	assert_int_equal(found, IG_FAM_RUNNING);
	assert_int_equal(m.running, 4);
	assert_true(m.base_model == 0); /* a running gauge without model_name */
	assert_int_equal(m.waiting, 9);
	assert_true(m.kv_usage == 0.5);
	assert_int_equal(m.max_active, 2);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("old")));
	assert_int_equal(extract("", &m), 0);
	assert_int_equal(m.running, 4);
}

static void test_extract_invalid_page_changes_nothing(void **state)
{
	struct ig_endpoint_metrics m = {.waiting = 9};
	assert_int_equal(extract("vllm:num_requests_waiting 1\ngarbage here\n", &m), -1);
	assert_int_equal(m.waiting, 9);
}

static void test_extract_kv_names(void **state)
{
	struct ig_endpoint_metrics m = {0};
	/* The new name wins whichever order the two appear in. */
	assert_int_equal(extract("vllm:kv_cache_usage_perc 0.25\nvllm:gpu_cache_usage_perc 0.75\n", &m),
			 IG_FAM_KV);
	assert_true(m.kv_usage == 0.25);
	assert_int_equal(extract("vllm:gpu_cache_usage_perc 0.75\nvllm:kv_cache_usage_perc 0.5\n", &m),
			 IG_FAM_KV);
	assert_true(m.kv_usage == 0.5);
	assert_int_equal(extract("vllm:gpu_cache_usage_perc 0.75\n", &m), IG_FAM_KV);
	assert_true(m.kv_usage == 0.75);
}

static void test_extract_latest_sample(void **state)
{
	struct ig_endpoint_metrics m = {0};
	/* No timestamps: the last sample (e.g. several engines). */
	extract("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2\n"
		"vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 7\n",
		&m);
	assert_int_equal(m.waiting, 7);
	/* Timestamps: the greatest, a later sample winning ties, and a
	 * sample without one counting as time 0. */
	extract("vllm:num_requests_waiting 5 200\n"
		"vllm:num_requests_waiting 6 100\n"
		"vllm:num_requests_waiting 1\n",
		&m);
	assert_int_equal(m.waiting, 5);
	extract("vllm:num_requests_waiting 5 200\nvllm:num_requests_waiting 11 200\n", &m);
	assert_int_equal(m.waiting, 11);
	/* Go's int() truncates. */
	extract("vllm:num_requests_running 3.9\n", &m);
	assert_int_equal(m.running, 3);
}

/* vllm:cache_config_info: the labels of the latest sample (vLLM V1 writes
 * one per engine); each label is taken when it is a count that fits, and
 * left as it was otherwise; a page without the family keeps both. */
static void test_extract_cache_config(void **state)
{
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(
	    extract(
		"vllm:cache_config_info{block_size=\"32\",cache_dtype=\"auto\",engine=\"0\","
		"enable_prefix_caching=\"True\",num_cpu_blocks=\"0\",num_gpu_blocks=\"700\"} 1.0\n"
		"vllm:cache_config_info{block_size=\"64\",engine=\"1\",num_gpu_blocks=\"800\"} "
		"1.0\n",
		&m),
	    IG_FAM_CACHE);
	assert_int_equal(m.cache.block_tokens, 64);
	assert_int_equal(m.cache.gpu_blocks, 800);
	/* With timestamps, the greatest wins. */
	extract("vllm:cache_config_info{block_size=\"8\",num_gpu_blocks=\"10\"} 1 300\n"
		"vllm:cache_config_info{block_size=\"128\",num_gpu_blocks=\"20\"} 1 100\n",
		&m);
	assert_int_equal(m.cache.block_tokens, 8);
	assert_int_equal(m.cache.gpu_blocks, 10);
	/* Unreadable, zero, negative or too large: that label keeps its value. */
	assert_int_equal(
	    extract("vllm:cache_config_info{block_size=\"x\",num_gpu_blocks=\"30\"} 1\n", &m),
	    IG_FAM_CACHE);
	assert_int_equal(m.cache.block_tokens, 8);
	assert_int_equal(m.cache.gpu_blocks, 30);
	assert_int_equal(
	    extract("vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"4294967296\"} 1\n",
		    &m),
	    IG_FAM_CACHE);
	assert_int_equal(m.cache.block_tokens, 16);
	assert_int_equal(m.cache.gpu_blocks, 30);
	assert_int_equal(
	    extract("vllm:cache_config_info{block_size=\"0\",num_gpu_blocks=\"-5\"} 1\n", &m), 0);
	assert_int_equal(extract("vllm:cache_config_info{cache_dtype=\"auto\"} 1\n", &m), 0);
	assert_int_equal(m.cache.block_tokens, 16);
	assert_int_equal(m.cache.gpu_blocks, 30);
	/* Other families leave it alone. */
	assert_int_equal(extract("vllm:num_requests_waiting 2\n", &m), IG_FAM_WAITING);
	assert_int_equal(m.cache.block_tokens, 16);
	assert_int_equal(m.cache.gpu_blocks, 30);
}

static void test_extract_nan_and_huge(void **state)
{
	struct ig_endpoint_metrics m = {.waiting = 4, .kv_usage = 0.1};
	assert_int_equal(
	    extract("vllm:num_requests_waiting NaN\nvllm:kv_cache_usage_perc NaN\n", &m), 0);
	assert_int_equal(m.waiting, 4);
	assert_true(m.kv_usage == 0.1);
	assert_int_equal(extract("vllm:num_requests_waiting +Inf\n", &m), IG_FAM_WAITING);
	assert_true(m.waiting > 0 && m.waiting <= (int64_t)1e15);
}

static const char lora_page[] =
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 1.9e9\n"
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"a,b\",waiting_lora_adapters=\"\"} 1.5e9\n"
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"c,,d\",waiting_lora_adapters=\"e,c\"} 1.7e9\n"
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"z\",waiting_lora_adapters=\"\"} 1.7e9\n"
	"vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"y\",waiting_lora_adapters=\"\"} 1.6e9\n";

static void test_extract_lora_many_series(void **state)
{
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(extract_v02(lora_page, &m), IG_FAM_LORA);
	/* The all-empty series is newest but ignored; of the two at 1.7e9 the
	 * first wins; empty pieces are skipped; active is the union. */
	assert_int_equal(m.running_adapters.n, 2);
	assert_true(ig_adapter_set_has(&m.running_adapters, IG_STR("c")));
	assert_true(ig_adapter_set_has(&m.running_adapters, IG_STR("d")));
	assert_int_equal(m.waiting_adapters.n, 2);
	assert_true(ig_adapter_set_has(&m.waiting_adapters, IG_STR("e")));
	assert_int_equal(m.active.n, 3);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("e")));
	assert_false(ig_adapter_set_has(&m.active, IG_STR("z")));
	assert_false(ig_adapter_set_has(&m.active, IG_STR("")));
	assert_int_equal(m.max_active, 4);
}

/* GIE v1.5's extractor takes the newest series whatever it names: the
 * adapters that ran before are no longer loaded. */
static void test_extract_lora_newest_series(void **state)
{
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(
	    extract("vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"a\","
		    "waiting_lora_adapters=\"\"} 5\n",
		    &m),
	    IG_FAM_LORA);
	assert_true(ig_adapter_set_has(&m.running_adapters, IG_STR("a")));
	assert_int_equal(extract(lora_page, &m), IG_FAM_LORA);
	assert_int_equal(m.running_adapters.n, 0);
	assert_int_equal(m.waiting_adapters.n, 0);
	assert_int_equal(m.active.n, 0);
	assert_int_equal(m.max_active, 4);
}

static void test_extract_lora_none_qualifies(void **state)
{
	struct ig_endpoint_metrics m = {.max_active = 2};
	ig_adapter_set_add(&m.active, IG_STR("kept"));
	const char *t = "vllm:lora_requests_info{max_lora=\"8\",running_lora_adapters=\"\",waiting_"
			"lora_adapters=\"\"} 1.9e9\n"
			"vllm:lora_requests_info{max_lora=\"8\",running_lora_adapters=\"x\"} 0\n"
			"vllm:lora_requests_info{max_lora=\"8\",running_lora_adapters=\"w\"} NaN\n";
	assert_int_equal(extract_v02(t, &m), 0);
	/* v0.2's rule keeps the adapters, but the limit is the server's:
	 * the newest series' max_lora, whatever it names. */
	assert_int_equal(m.max_active, 8);
	assert_int_equal(m.active.n, 1);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("kept")));
	/* A fresh server under v0.2's rule (vLLM writes one series naming
	 * no adapter until one runs) has its slots, not none: every LoRA
	 * scorer kept adapters off such a pod for good. */
	struct ig_endpoint_metrics fresh = {0};
	assert_int_equal(extract_v02("vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"\","
				     "waiting_lora_adapters=\"\"} 1.7e9\n",
				     &fresh),
			 0);
	assert_int_equal(fresh.max_active, 2);
	assert_int_equal(fresh.active.n, 0);
	/* An unparsable max_lora there changes nothing. */
	fresh.max_active = 3;
	assert_int_equal(extract_v02("vllm:lora_requests_info{max_lora=\"two\",running_lora_adapters=\"\"} 1\n",
				     &fresh),
			 0);
	assert_int_equal(fresh.max_active, 3);
	m.max_active = 2;
	/* GIE v1.5: a server that never ran an adapter still tells its
	 * max_lora; a series valued 0 counts (compared from -1), NaN never. */
	assert_int_equal(extract(t, &m), IG_FAM_LORA);
	assert_int_equal(m.max_active, 8);
	assert_int_equal(m.active.n, 0);
	m.max_active = 2;
	assert_int_equal(
	    extract("vllm:lora_requests_info{max_lora=\"8\",running_lora_adapters=\"w\"} NaN\n"
		    "vllm:lora_requests_info{max_lora=\"6\",running_lora_adapters=\"x\"} 0\n",
		    &m),
	    IG_FAM_LORA);
	assert_int_equal(m.max_active, 6);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("x")));
}

static void test_extract_lora_max_lora(void **state)
{
	struct ig_endpoint_metrics m = {.max_active = 2};
	/* Unparsable max_lora: the family counts as absent. */
	assert_int_equal(extract("vllm:lora_requests_info{max_lora=\"four\",running_lora_adapters=\"x\"} 5\n", &m), 0);
	assert_int_equal(m.max_active, 2);
	assert_int_equal(m.active.n, 0);
	/* Missing max_lora: the adapters update, the limit stays. */
	assert_int_equal(extract("vllm:lora_requests_info{waiting_lora_adapters=\"x\"} 5\n", &m), IG_FAM_LORA);
	assert_int_equal(m.max_active, 2);
	assert_true(ig_adapter_set_has(&m.active, IG_STR("x")));
	assert_true(ig_adapter_set_has(&m.waiting_adapters, IG_STR("x")));
	assert_int_equal(m.running_adapters.n, 0);
	assert_int_equal(extract("vllm:lora_requests_info{max_lora=\"0\",running_lora_adapters=\"q\"} 5\n", &m),
			 IG_FAM_LORA);
	assert_int_equal(m.max_active, 0);
}

static void test_adapter_set_limits(void **state)
{
	struct ig_adapter_set s = {0};
	/* Names are kept as hashes, so any length works and stays distinct. */
	char name[300];
	memset(name, 'a', sizeof name);
	ig_adapter_set_add(&s, (struct ig_str){name, sizeof name});
	assert_int_equal(s.n, 1);
	ig_adapter_set_add(&s, (struct ig_str){name, sizeof name});
	assert_int_equal(s.n, 1);
	assert_true(ig_adapter_set_has(&s, (struct ig_str){name, sizeof name}));
	assert_false(ig_adapter_set_has(&s, (struct ig_str){name, sizeof name - 1}));
	for (int i = 0; i < 40; i++) {
		char n[16];
		snprintf(n, sizeof n, "n%d", i);
		ig_adapter_set_add(&s, ig_str_from(n));
	}
	assert_int_equal(s.n, IG_MAX_ADAPTERS);
	assert_true(ig_adapter_set_has(&s, IG_STR("n30")));
	assert_false(ig_adapter_set_has(&s, IG_STR("n31")));
}

static void test_adapter_text_kept_for_display(void **state)
{
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(extract("vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a,b\","
				 "waiting_lora_adapters=\"c\"} 5\n", &m),
			 IG_FAM_LORA);
	assert_string_equal(m.running_text, "a,b");
	assert_string_equal(m.waiting_text, "c");
}

/* ---- engines (llm-d's core-metrics-extractor, factories.go) ---- */

static const char sglang_page[] =
    "# TYPE sglang:num_queue_reqs gauge\n"
    "sglang:num_queue_reqs{model_name=\"qwen\",engine_type=\"unified\"} 7.0\n"
    "# TYPE sglang:num_running_reqs gauge\n"
    "sglang:num_running_reqs{model_name=\"qwen\",engine_type=\"unified\"} 3.0\n"
    "# TYPE sglang:token_usage gauge\n"
    "sglang:token_usage{model_name=\"qwen\",engine_type=\"unified\"} 0.62\n"
    "# TYPE sglang:cache_config_info gauge\n"
    "sglang:cache_config_info{page_size=\"64\",num_pages=\"5000\"} 1.0\n"
    /* vLLM's names on an SGLang page are not SGLang's figures. */
    "vllm:num_requests_waiting 99\n";

static void test_extract_sglang(void **state)
{
	struct ig_endpoint_metrics m = {0};
	int found = ig_metrics_extract(sglang_page, strlen(sglang_page), IG_ENGINE_SGLANG,
				       IG_LORA_NEWEST, &m);
	assert_int_equal(found, IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_CACHE);
	assert_int_equal(m.waiting, 7);
	assert_int_equal(m.running, 3);
	assert_true(m.kv_usage == 0.62);
	assert_int_equal(m.cache.block_tokens, 64);
	assert_int_equal(m.cache.gpu_blocks, 5000);
	assert_true(m.base_model == ig_adapter_hash(IG_STR("qwen")));
	/* Read as vLLM's, the same page has vLLM's queue alone. */
	struct ig_endpoint_metrics v = {0};
	assert_int_equal(extract(sglang_page, &v), IG_FAM_WAITING);
	assert_int_equal(v.waiting, 99);
	assert_int_equal(v.running, 0);
}

/* The reference extractor (GIE v1.5.0, llm-d Router: extractor.go) keeps
 * a figure whose family the page lacks and updates the others; a family
 * with its TYPE line but no sample (prometheus_client's labelled gauge
 * before its first set, as a new SGLang server writes it) is lacking. */
static void test_extract_sglang_missing_families(void **state)
{
	struct ig_endpoint_metrics m = {0};
	assert_true(ig_metrics_extract(sglang_page, strlen(sglang_page), IG_ENGINE_SGLANG,
				       IG_LORA_NEWEST, &m) > 0);
	static const char no_queue[] = "# TYPE sglang:num_queue_reqs gauge\n"
				       "sglang:token_usage{model_name=\"qwen\"} 0.25\n";
	assert_int_equal(
	    ig_metrics_extract(no_queue, strlen(no_queue), IG_ENGINE_SGLANG, IG_LORA_NEWEST, &m),
	    IG_FAM_KV);
	assert_int_equal(m.waiting, 7);
	assert_int_equal(m.running, 3);
	assert_true(m.kv_usage == 0.25);
	static const char none[] = "# HELP sglang:num_queue_reqs The number of requests.\n"
				   "# TYPE sglang:num_queue_reqs gauge\n"
				   "# TYPE sglang:num_running_reqs gauge\n"
				   "# TYPE sglang:token_usage gauge\n"
				   "vllm:num_requests_waiting 99\n";
	struct ig_endpoint_metrics before = m;
	assert_int_equal(
	    ig_metrics_extract(none, strlen(none), IG_ENGINE_SGLANG, IG_LORA_NEWEST, &m), 0);
	assert_memory_equal(&m, &before, sizeof m);
}

static void test_engine_families_for_logs(void **state)
{
	char buf[256];
	ig_engine_families(IG_ENGINE_SGLANG, IG_FAM_LOAD, buf, sizeof buf);
	assert_string_equal(buf,
			    "sglang:num_queue_reqs, sglang:num_running_reqs, sglang:token_usage");
	ig_engine_families(IG_ENGINE_VLLM, IG_FAM_KV, buf, sizeof buf);
	assert_string_equal(buf, "vllm:kv_cache_usage_perc");
	ig_engine_families(IG_ENGINE_TRITON_TRTLLM, IG_FAM_WAITING | IG_FAM_KV, buf, sizeof buf);
	assert_string_equal(buf,
			    "nv_trt_llm_request_metrics{request_type=\"waiting\"}, "
			    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"}");
	ig_engine_families(IG_ENGINE_SGLANG, IG_FAM_LOAD, buf, 10); /* cut to fit */
	assert_string_equal(buf, "sglang:nu");
}

static void test_extract_trtllm(void **state)
{
	static const char page[] = "trtllm_num_requests_waiting 4\n"
				   "trtllm_num_requests_running 2\n"
				   "trtllm_kv_cache_utilization 0.25\n"
				   "trtllm_kv_cache_tokens_per_block 32\n"
				   "trtllm_kv_cache_max_blocks 1200\n";
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(
	    ig_metrics_extract(page, strlen(page), IG_ENGINE_TRTLLM_SERVE, IG_LORA_NEWEST, &m),
	    IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_CACHE);
	assert_int_equal(m.waiting, 4);
	assert_int_equal(m.running, 2);
	assert_true(m.kv_usage == 0.25);
	assert_int_equal(m.cache.block_tokens, 32);
	assert_int_equal(m.cache.gpu_blocks, 1200);
}

/* Triton's families hold several figures, told apart by a label. */
static void test_extract_triton(void **state)
{
	static const char page[] =
	    "nv_trt_llm_request_metrics{model=\"m\",request_type=\"context\",version=\"1\"} 9\n"
	    "nv_trt_llm_request_metrics{model=\"m\",request_type=\"scheduled\",version=\"1\"} 5\n"
	    "nv_trt_llm_request_metrics{model=\"m\",request_type=\"waiting\",version=\"1\"} 6\n"
	    "nv_trt_llm_request_metrics{model=\"m\",request_type=\"max\",version=\"1\"} 512\n"
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"m\"} "
	    "0.5\n"
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"tokens_per\",model=\"m\"} "
	    "64\n"
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\",model=\"m\"} 800\n"
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"used\",model=\"m\"} 400\n";
	struct ig_endpoint_metrics m = {0};
	assert_int_equal(
	    ig_metrics_extract(page, strlen(page), IG_ENGINE_TRITON_TRTLLM, IG_LORA_NEWEST, &m),
	    IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_CACHE);
	assert_int_equal(m.waiting, 6);
	assert_int_equal(m.running, 5);
	assert_true(m.kv_usage == 0.5);
	assert_int_equal(m.cache.block_tokens, 64);
	assert_int_equal(m.cache.gpu_blocks, 800);
}

static void test_engine_names(void **state)
{
	assert_int_equal(ig_engine_parse(IG_STR("vllm")), IG_ENGINE_VLLM);
	assert_int_equal(ig_engine_parse(IG_STR("sglang")), IG_ENGINE_SGLANG);
	assert_int_equal(ig_engine_parse(IG_STR("trtllm-serve")), IG_ENGINE_TRTLLM_SERVE);
	assert_int_equal(ig_engine_parse(IG_STR("triton-tensorrt-llm")), IG_ENGINE_TRITON_TRTLLM);
	assert_int_equal(ig_engine_parse(IG_STR("SGLang")), -1);
	assert_int_equal(ig_engine_parse(IG_STR("")), -1);
	assert_string_equal(ig_engine_name(IG_ENGINE_TRITON_TRTLLM), "triton-tensorrt-llm");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_vllm_page),
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_parse_values_match_strtod),
		cmocka_unit_test(test_parse_timestamps),
		cmocka_unit_test(test_parse_whitespace_crlf_no_final_newline),
		cmocka_unit_test(test_parse_escapes),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_callback_stops),
		cmocka_unit_test(test_parse_respects_length),
		cmocka_unit_test(test_label_malformed),
		cmocka_unit_test(test_extract_seed_page),
		cmocka_unit_test(test_extract_missing_families_keep_old),
		cmocka_unit_test(test_extract_invalid_page_changes_nothing),
		cmocka_unit_test(test_extract_kv_names),
		cmocka_unit_test(test_extract_latest_sample),
		cmocka_unit_test(test_extract_cache_config),
		cmocka_unit_test(test_extract_nan_and_huge),
		cmocka_unit_test(test_extract_lora_many_series),
		cmocka_unit_test(test_extract_lora_newest_series),
		cmocka_unit_test(test_extract_lora_none_qualifies),
		cmocka_unit_test(test_extract_lora_max_lora),
		cmocka_unit_test(test_adapter_set_limits),
		cmocka_unit_test(test_adapter_text_kept_for_display),
		cmocka_unit_test(test_extract_sglang),
		cmocka_unit_test(test_extract_sglang_missing_families),
		cmocka_unit_test(test_engine_families_for_logs),
		cmocka_unit_test(test_extract_trtllm),
		cmocka_unit_test(test_extract_triton),
		cmocka_unit_test(test_engine_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
