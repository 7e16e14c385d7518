/* Unit tests for the simulator's pure parts: the tokenizer, the command
 * line (vLLM's flag forms, --lora-modules items, errors), the response and
 * error bodies, number formatting, histograms, the LoRA info history and
 * the metrics exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/metrics.h"
#include "sim/sim.h"

static size_t tokens(const char *s)
{
	return ig_sim_count_tokens(ig_str_from(s));
}

static void test_tokenizer(void **state)
{
	/* The seed guide's prompt is 10 tokens for vLLM's Qwen tokenizer. */
	assert_int_equal(tokens("Write as if you were a critic: San Francisco"), 10);
	assert_int_equal(tokens(""), 0);
	assert_int_equal(tokens("   \t\n"), 0);
	assert_int_equal(tokens("abc123"), 1);
	assert_int_equal(tokens("a,b"), 3);
	assert_int_equal(tokens("!!"), 2);
	assert_int_equal(tokens("hello world."), 3);
	/* One multi-byte character is one token, not one per byte. */
	assert_int_equal(tokens("caf\xc3\xa9"), 2);
	assert_int_equal(tokens("\xe2\x82\xac\xe2\x82\xac"), 2);
}

static void test_generator_deterministic(void **state)
{
	uint64_t a = ig_sim_text_seed(IG_STR("\"p\""), IG_STR("m"), 0);
	uint64_t b = ig_sim_text_seed(IG_STR("\"p\""), IG_STR("m"), 0);
	uint64_t c = ig_sim_text_seed(IG_STR("\"p\""), IG_STR("m2"), 0);
	uint64_t d = ig_sim_text_seed(IG_STR("\"p\""), IG_STR("m"), 1);
	assert_int_equal(a, b);
	assert_int_not_equal(a, c);
	assert_int_not_equal(a, d);
	struct ig_rng r1, r2;
	ig_rng_seed(&r1, a);
	ig_rng_seed(&r2, a);
	for (int i = 0; i < 50; i++) {
		const char *w = ig_sim_next_word(&r1);
		assert_string_equal(w, ig_sim_next_word(&r2));
		/* Every generated token carries its leading space and is one
		 * token for our own tokenizer. */
		assert_int_equal(w[0], ' ');
		assert_int_equal(tokens(w), 1);
	}
	for (uint64_t s = 0; s < 1000; s += 7) {
		long n = ig_sim_natural_len(s * 0x9E3779B97F4A7C15ull);
		assert_true(n >= 8 && n <= 64);
	}
}

/* Parses argv (NULL-terminated, without the command name). */
static int parse(struct ig_sim_config *c, char *err, const char **args)
{
	const char *argv[64] = {"sim"};
	int argc = 1;
	while (args[argc - 1])
		argv[argc] = args[argc - 1], argc++;
	ig_sim_config_init(c);
	return ig_sim_parse_args(c, argc, (char **)argv, err, 256);
}

static void test_args_defaults(void **state)
{
	struct ig_sim_config c;
	char err[256];
	const char *a[] = {NULL};
	assert_int_equal(parse(&c, err, a), 0);
	assert_string_equal(c.model, "Qwen/Qwen2.5-1.5B-Instruct");
	assert_string_equal(c.host, "0.0.0.0");
	assert_int_equal(c.port, 8000);
	assert_int_equal(c.max_loras, 1);
	assert_int_equal(c.max_num_seqs, 256);
	assert_int_equal(c.max_model_len, 32768);
	assert_int_equal(c.num_gpu_blocks, 9362);
	assert_int_equal(c.block_size, 16);
	assert_int_equal(c.version, IG_SIM_V_LATEST);
	assert_string_equal(ig_sim_label_name(&c), "Qwen/Qwen2.5-1.5B-Instruct");
	ig_sim_config_free(&c);
}

static void test_args_seed_deployment(void **state)
{
	struct ig_sim_config c;
	char err[256];
	const char *a[] = {"--model",
			   "Qwen/Qwen2.5-1.5B-Instruct",
			   "--port",
			   "8000",
			   "--enable-lora",
			   "--max-loras",
			   "4",
			   "--lora-modules",
			   "{\"name\": \"tweet-summary-0\", \"path\": "
			   "\"SriSanth2345/Qwen-1.5B-Tweet-Generations\", \"base_model_name\": "
			   "\"Qwen/Qwen2.5-1.5B\"}",
			   "{\"name\": \"tweet-summary-1\", \"path\": \"p1\"}",
			   "ad=/x/y",
			   "--dtype",
			   "bfloat16",
			   "--enforce-eager",
			   "--gpu-memory-utilization=0.9",
			   NULL};
	assert_int_equal(parse(&c, err, a), 0);
	assert_true(c.enable_lora);
	assert_int_equal(c.max_loras, 4);
	assert_int_equal(c.nadapters, 3);
	assert_string_equal(c.adapters[0].name, "tweet-summary-0");
	assert_string_equal(c.adapters[0].path, "SriSanth2345/Qwen-1.5B-Tweet-Generations");
	assert_string_equal(c.adapters[0].base, "Qwen/Qwen2.5-1.5B");
	assert_null(c.adapters[1].base);
	assert_string_equal(c.adapters[2].name, "ad");
	assert_string_equal(c.adapters[2].path, "/x/y");
	assert_int_equal(ig_sim_find_adapter(&c, IG_STR("tweet-summary-1")), 1);
	assert_int_equal(ig_sim_find_adapter(&c, IG_STR("tweet-summary")), -1);
	ig_sim_config_free(&c);
}

static void test_args_forms(void **state)
{
	struct ig_sim_config c;
	char err[256];
	const char *a[] = {"--port=9001",
			   "--served-model-name",
			   "a",
			   "b",
			   "--host",
			   "127.0.0.2",
			   "--ttft-ms",
			   "300",
			   "--itl-ms=0.5",
			   "--vllm-version",
			   "0.8",
			   "--fixed-waiting",
			   "7",
			   "--fixed-kv-usage",
			   "0.25",
			   "--fixed-lora-running",
			   "x,y",
			   "--seed",
			   "42",
			   NULL};
	assert_int_equal(parse(&c, err, a), 0);
	assert_int_equal(c.port, 9001);
	assert_int_equal(c.served.n, 2);
	assert_string_equal(c.served.v[1], "b");
	assert_string_equal(ig_sim_label_name(&c), "a");
	assert_true(ig_sim_is_base_name(&c, IG_STR("b")));
	/* With served names, --model itself is not a name the server answers to. */
	assert_false(ig_sim_is_base_name(&c, IG_STR("Qwen/Qwen2.5-1.5B-Instruct")));
	assert_string_equal(c.host, "127.0.0.2");
	assert_true(c.ttft_ms == 300);
	assert_true(c.itl_ms == 0.5);
	assert_int_equal(c.version, IG_SIM_V_0_8);
	assert_true(c.fixed.has_waiting);
	assert_int_equal(c.fixed.waiting, 7);
	assert_false(c.fixed.has_running);
	assert_true(c.fixed.kv == 0.25);
	assert_string_equal(c.fixed.lora_running, "x,y");
	assert_null(c.fixed.lora_waiting);
	assert_true(c.has_seed);
	assert_int_equal(c.seed, 42);
	ig_sim_config_free(&c);
}

static void expect_error(const char **a, const char *needle)
{
	struct ig_sim_config c;
	char err[256] = "";
	assert_int_equal(parse(&c, err, a), -1);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	ig_sim_config_free(&c);
}

static void test_args_errors(void **state)
{
	const char *unknown[] = {"--frobnicate", "3", NULL};
	expect_error(unknown, "--frobnicate");
	const char *unknown_eq[] = {"--bogus-flag=1", NULL};
	expect_error(unknown_eq, "--bogus-flag");
	const char *port[] = {"--port", "http", NULL};
	expect_error(port, "--port");
	const char *range[] = {"--port", "70000", NULL};
	expect_error(range, "--port");
	const char *missing[] = {"--max-num-seqs", NULL};
	expect_error(missing, "--max-num-seqs");
	const char *flag_as_value[] = {"--model", "--port", "1", NULL};
	expect_error(flag_as_value, "--model");
	const char *noval[] = {"--enable-lora=yes", NULL};
	expect_error(noval, "--enable-lora");
	const char *zero[] = {"--max-loras", "0", NULL};
	expect_error(zero, "--max-loras");
	const char *kv[] = {"--fixed-kv-usage", "1.5", NULL};
	expect_error(kv, "--fixed-kv-usage");
	const char *ver[] = {"--vllm-version", "0.7", NULL};
	expect_error(ver, "--vllm-version");
	const char *lora[] = {"--lora-modules", "{\"name\":\"a\"}", NULL};
	expect_error(lora, "--lora-modules");
	const char *dup[] = {"--lora-modules", "a=/p", "a=/q", NULL};
	expect_error(dup, "duplicate");
	const char *two_pos[] = {"m1", "m2", NULL};
	expect_error(two_pos, "m2");
	const char *empty_list[] = {"--served-model-name", "--port", "1", NULL};
	expect_error(empty_list, "--served-model-name");
}

static void test_lora_module_items(void **state)
{
	struct ig_sim_adapter a;
	char err[256];
	assert_int_equal(ig_sim_parse_lora_module("n=p", &a, err, sizeof err), 0);
	assert_string_equal(a.name, "n");
	assert_string_equal(a.path, "p");
	free(a.name), free(a.path);
	/* A ',' forces the JSON reading, so this is an error, not name=path. */
	assert_int_equal(ig_sim_parse_lora_module("n=p,q", &a, err, sizeof err), -1);
	assert_int_equal(ig_sim_parse_lora_module("=p", &a, err, sizeof err), -1);
	assert_int_equal(ig_sim_parse_lora_module("n=", &a, err, sizeof err), -1);
	assert_int_equal(
	    ig_sim_parse_lora_module("{\"name\":1,\"path\":\"p\"}", &a, err, sizeof err), -1);
	assert_int_equal(
	    ig_sim_parse_lora_module("{\"name\":\"\",\"path\":\"p\"}", &a, err, sizeof err), -1);
	assert_int_equal(ig_sim_parse_lora_module("[1]", &a, err, sizeof err), -1);
	assert_int_equal(ig_sim_parse_lora_module(
			     "{\"name\":\"n\\u0041\",\"path\":\"p\",\"base_model_name\":null}", &a,
			     err, sizeof err),
			 0);
	assert_string_equal(a.name, "nA");
	assert_null(a.base);
	free(a.name), free(a.path);
}

static void test_adapters_runtime(void **state)
{
	struct ig_sim_config c;
	ig_sim_config_init(&c);
	assert_int_equal(ig_sim_add_adapter(&c, IG_STR("a"), IG_STR("/a"), (struct ig_str){0}), 0);
	assert_int_equal(ig_sim_add_adapter(&c, IG_STR("b"), IG_STR("/b"), IG_STR("base")), 0);
	assert_int_not_equal(ig_sim_add_adapter(&c, IG_STR("a"), IG_STR("/x"), (struct ig_str){0}),
			     0);
	assert_int_equal(ig_sim_remove_adapter(&c, IG_STR("a")), 0);
	assert_int_not_equal(ig_sim_remove_adapter(&c, IG_STR("a")), 0);
	assert_int_equal(c.nadapters, 1);
	assert_string_equal(c.adapters[0].name, "b");
	assert_string_equal(c.adapters[0].base, "base");
	ig_sim_config_free(&c);
}

static void render(struct ig_buf *b, int (*fn)(struct ig_buf *, const struct ig_sim_resp *),
		   const struct ig_sim_resp *r)
{
	ig_buf_reset(b);
	assert_int_equal(fn(b, r), 0);
	assert_non_null(ig_buf_cstr(b));
}

static void test_render_completion(void **state)
{
	struct ig_buf b = {0};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_COMPLETION,
	    .id = IG_STR("cmpl-1"),
	    .created = 1742577733,
	    .model = IG_STR("tweet-summary-1"),
	    .text = IG_STR(" a \"q\""),
	    .finish = "length",
	    .prompt_tokens = 10,
	    .completion_tokens = 100,
	};
	render(&b, ig_sim_render_full, &r);
	assert_string_equal(
	    b.ptr,
	    "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1742577733,"
	    "\"model\":\"tweet-summary-1\",\"choices\":[{\"index\":0,\"text\":\" a \\\"q\\\"\","
	    "\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null,"
	    "\"prompt_logprobs\":null}],\"usage\":{\"prompt_tokens\":10,\"total_tokens\":110,"
	    "\"completion_tokens\":100,\"prompt_tokens_details\":null}}");
	r.finish = NULL;
	r.text = IG_STR(" x");
	render(&b, ig_sim_render_chunk, &r);
	assert_string_equal(b.ptr,
			    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\","
			    "\"created\":1742577733,\"model\":\"tweet-summary-1\","
			    "\"choices\":[{\"index\":0,\"text\":\" x\",\"logprobs\":null,"
			    "\"finish_reason\":null,\"stop_reason\":null}],\"usage\":null}\n\n");
	render(&b, ig_sim_render_usage_chunk, &r);
	assert_string_equal(b.ptr, "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\","
				   "\"created\":1742577733,\"model\":\"tweet-summary-1\","
				   "\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
				   "\"total_tokens\":110,\"completion_tokens\":100}}\n\n");
	ig_buf_free(&b);
}

static void test_render_chat(void **state)
{
	struct ig_buf b = {0};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_CHAT,
	    .id = IG_STR("chatcmpl-9"),
	    .created = 5,
	    .model = IG_STR("m"),
	    .text = IG_STR("Hi!"),
	    .finish = "stop",
	    .prompt_tokens = 25,
	    .completion_tokens = 3,
	};
	render(&b, ig_sim_render_full, &r);
	assert_string_equal(
	    b.ptr, "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":5,"
		   "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		   "\"content\":\"Hi!\",\"reasoning_content\":null,\"tool_calls\":[]},"
		   "\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}],"
		   "\"usage\":{\"prompt_tokens\":25,\"total_tokens\":28,\"completion_tokens\":3,"
		   "\"prompt_tokens_details\":null},\"prompt_logprobs\":null}");
	render(&b, ig_sim_render_role_chunk, &r);
	assert_string_equal(b.ptr,
			    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
			    "\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,"
			    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
			    "\"logprobs\":null,\"finish_reason\":null}]}\n\n");
	render(&b, ig_sim_render_chunk, &r);
	assert_string_equal(b.ptr,
			    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
			    "\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,"
			    "\"delta\":{\"content\":\"Hi!\"},\"logprobs\":null,"
			    "\"finish_reason\":\"stop\",\"stop_reason\":null}]}\n\n");
	r.finish = NULL;
	render(&b, ig_sim_render_chunk, &r);
	assert_non_null(strstr(b.ptr, "\"finish_reason\":null}]}\n\n"));
	assert_null(strstr(b.ptr, "stop_reason"));
	ig_buf_free(&b);
}

static void test_render_error(void **state)
{
	struct ig_buf b = {0};
	assert_int_equal(ig_sim_render_error(&b, IG_SIM_V_LATEST, 404, "NotFoundError", "model",
					     "The model `x` does not exist."),
			 0);
	assert_string_equal(ig_buf_cstr(&b),
			    "{\"error\":{\"message\":\"The model `x` does not exist.\","
			    "\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}");
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_render_error(&b, IG_SIM_V_0_8, 404, "NotFoundError", "model",
					     "The model `x` does not exist."),
			 0);
	assert_string_equal(ig_buf_cstr(&b),
			    "{\"object\":\"error\",\"message\":\"The model `x` does not exist.\","
			    "\"type\":\"NotFoundError\",\"param\":null,\"code\":404}");
	ig_buf_reset(&b);
	ig_sim_render_error(&b, IG_SIM_V_LATEST, 400, "BadRequestError", NULL, "a\"b");
	assert_string_equal(ig_buf_cstr(&b), "{\"error\":{\"message\":\"a\\\"b\","
					     "\"type\":\"BadRequestError\",\"param\":null,"
					     "\"code\":400}}");
	ig_buf_free(&b);
}

static void expect_float(double v, const char *want)
{
	char out[64];
	ig_sim_fmt_float(out, sizeof out, v);
	assert_string_equal(out, want);
}

static void test_float_format(void **state)
{
	expect_float(0, "0.0");
	expect_float(1, "1.0");
	expect_float(3, "3.0");
	expect_float(0.0021, "0.0021");
	expect_float(0.25, "0.25");
	expect_float(2.5, "2.5");
	expect_float(123456, "123456.0");
	expect_float(1742577733.4, "1.7425777334e+09");
	expect_float(1234567, "1.234567e+06");
	expect_float(1e-5, "1e-05");
	expect_float(-2.5, "-2.5");
	expect_float(1.0 / 0.0, "+Inf");
}

static void test_histogram(void **state)
{
	struct ig_sim_hist h = {0};
	size_t n;
	const double *b = ig_sim_ttft_buckets(IG_SIM_V_0_8, &n);
	assert_int_equal(n, 16);
	assert_true(b[n - 1] == 10.0);
	ig_sim_hist_observe(&h, b, n, 0.001); /* on a bound: that bucket (le) */
	ig_sim_hist_observe(&h, b, n, 0.3);
	ig_sim_hist_observe(&h, b, n, 11);
	assert_int_equal(h.counts[0], 1);
	assert_int_equal(h.counts[9], 1); /* 0.5 */
	assert_int_equal(h.counts[n], 1); /* +Inf */
	assert_int_equal(h.count, 3);
	assert_true(h.sum > 11.3 && h.sum < 11.302);
	ig_sim_e2e_buckets(IG_SIM_V_LATEST, &n);
	assert_int_equal(n, 21);
	ig_sim_e2e_buckets(IG_SIM_V_0_8, &n);
	assert_int_equal(n, 15);
}

static void test_lora_history(void **state)
{
	struct ig_sim_stats s = {0};
	assert_int_equal(ig_sim_lora_note(&s, "", "", 100), 0);
	assert_int_equal(ig_sim_lora_note(&s, "a", "", 100), 0);
	assert_int_equal(s.nlora, 2);
	/* Same clock reading: the newer state must still be larger. */
	assert_true(s.lora[1].t > s.lora[0].t);
	assert_string_equal(s.lora[1].running, "a");
	/* An old state coming back moves to the end with a new value. */
	assert_int_equal(ig_sim_lora_note(&s, "", "", 101), 0);
	assert_int_equal(s.nlora, 2);
	assert_string_equal(s.lora[1].running, "");
	assert_true(s.lora[1].t == 101);
	char name[16];
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "x%d", i);
		ig_sim_lora_note(&s, name, "w", 200 + i);
	}
	assert_int_equal(s.nlora, IG_SIM_LORA_HISTORY);
	assert_string_equal(s.lora[IG_SIM_LORA_HISTORY - 1].running, "x39");
	assert_string_equal(s.lora[0].running, "x24");
	ig_sim_stats_free(&s);
}

/* /metrics with name[] parameters answers what prometheus_client's
 * restricted registry does: the named samples with their families' HELP
 * and TYPE lines, nothing else; and the figures a scraper reads from it
 * are those of the whole page. */
static void test_metrics_name_filter(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_stats s = {0};
	struct ig_sim_gauges g = {.running = 3, .waiting = 2, .kv_usage = 0.5};
	struct ig_buf page = {0}, b = {0};
	size_t n;
	ig_sim_config_init(&c);
	c.enable_lora = true;
	c.max_loras = 4;
	ig_sim_lora_note(&s, "a,b", "c", 1742577734.0);
	const double *tb = ig_sim_ttft_buckets(c.version, &n);
	ig_sim_hist_observe(&s.ttft, tb, n, 0.2);
	assert_int_equal(ig_sim_render_metrics(&page, &c, &s, &g), 0);
	/* The scraper's query (pool/scrape.c). */
	struct ig_str q = IG_STR("name%5B%5D=vllm:num_requests_waiting&name%5B%5D=vllm:num_requests_"
				 "running&name%5B%5D=vllm:kv_cache_usage_perc&name%5B%5D=vllm:gpu_"
				 "cache_usage_perc&name%5B%5D=vllm:lora_requests_info");
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page), q, &b), 0);
	const char *t = ig_buf_cstr(&b);
	assert_non_null(strstr(t, "# HELP vllm:num_requests_waiting "));
	assert_non_null(strstr(t, "# TYPE vllm:num_requests_waiting gauge\n"
				  "vllm:num_requests_waiting{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
				  "2.0\n"));
	assert_non_null(strstr(t, "# TYPE vllm:lora_requests_info gauge\n"));
	assert_null(strstr(t, "time_to_first_token"));
	assert_null(strstr(t, "prompt_tokens"));
	assert_null(strstr(t, "cache_config_info"));
	assert_true(b.len < page.len / 3);
	struct ig_endpoint_metrics whole = {0}, part = {0};
	int fw = ig_vllm_metrics_extract(page.ptr, page.len, &whole);
	assert_int_equal(ig_vllm_metrics_extract(b.ptr, b.len, &part), fw);
	assert_int_equal(fw, IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_LORA);
	assert_memory_equal(&whole, &part, sizeof whole);
	/* Decoded names, '+' for a blank; other parameters are ignored. */
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page),
					       IG_STR("x=1&name[]=vllm%3Anum_requests_running"), &b),
			 0);
	assert_non_null(strstr(ig_buf_cstr(&b), "vllm:num_requests_running{"));
	assert_null(strstr(ig_buf_cstr(&b), "waiting"));
	/* No name[]: the whole page; an unknown name: nothing. */
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page), IG_STR("x=1"), &b), 0);
	assert_int_equal(b.len, page.len);
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page), IG_STR("name%5B%5D=nope"), &b),
			 0);
	assert_int_equal(b.len, 0);
	ig_buf_free(&b);
	ig_buf_free(&page);
	ig_sim_stats_free(&s);
	ig_sim_config_free(&c);
}

static void test_metrics_text(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_stats s = {0};
	struct ig_sim_gauges g = {.running = 3, .waiting = 2, .kv_usage = 0.5};
	struct ig_buf b = {0};
	size_t n;
	ig_sim_config_init(&c);
	c.enable_lora = true;
	c.max_loras = 4;
	ig_sim_lora_note(&s, "", "", 1742577733.0);
	ig_sim_lora_note(&s, "a,b", "c", 1742577734.0);
	s.prompt_tokens = 10;
	s.preemptions = 2;
	s.prefix_queries = 100;
	s.prefix_hits = 32;
	s.success[IG_SIM_FIN_LENGTH] = 1;
	/* n must be set before it is passed: argument order is unspecified. */
	const double *tb = ig_sim_ttft_buckets(c.version, &n);
	ig_sim_hist_observe(&s.ttft, tb, n, 0.2);
	assert_int_equal(ig_sim_render_metrics(&b, &c, &s, &g), 0);
	const char *t = ig_buf_cstr(&b);
	const char *want[] = {
	    "vllm:num_requests_running{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 3.0\n",
	    "vllm:num_requests_waiting{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 2.0\n",
	    "vllm:gpu_cache_usage_perc{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 0.5\n",
	    "vllm:kv_cache_usage_perc{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 0.5\n",
	    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"a,b\","
	    "waiting_lora_adapters=\"c\"} 1.742577734e+09\n",
	    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\","
	    "waiting_lora_adapters=\"\"} 1.742577733e+09\n",
	    "vllm:prompt_tokens_total{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 10.0\n",
	    "vllm:request_success_total{finished_reason=\"length\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 1.0\n",
	    "vllm:request_success_total{finished_reason=\"stop\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 0.0\n",
	    "vllm:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 0.0\n",
	    "vllm:time_to_first_token_seconds_bucket{le=\"0.25\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 1.0\n",
	    "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 1.0\n",
	    "vllm:time_to_first_token_seconds_count{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "1.0\n",
	    "# TYPE vllm:e2e_request_latency_seconds histogram\n",
	    "vllm:cache_config_info{block_size=\"16\",",
	    "num_gpu_blocks=\"9362\"} 1.0\n",
	    "enable_prefix_caching=\"True\"",
	    "vllm:num_preemptions_total{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 2.0\n",
	    "vllm:prefix_cache_queries_total{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 100.0\n",
	    "vllm:prefix_cache_hits_total{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 32.0\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(t, want[i]))
			fail_msg("missing: %s\n in:\n%s", want[i], t);
	/* 0.8: the old name only, and success series only once used. */
	c.version = IG_SIM_V_0_8;
	ig_buf_reset(&b);
	s.success_seen[IG_SIM_FIN_LENGTH] = true;
	assert_int_equal(ig_sim_render_metrics(&b, &c, &s, &g), 0);
	t = ig_buf_cstr(&b);
	assert_null(strstr(t, "kv_cache_usage_perc"));
	assert_non_null(strstr(t, "gpu_cache_usage_perc"));
	assert_null(strstr(t, "finished_reason=\"stop\""));
	assert_non_null(strstr(t, "finished_reason=\"length\""));
	assert_null(strstr(t, "le=\"2560.0\""));
	assert_null(strstr(t, "le=\"7680.0\""));
	assert_null(strstr(t, "vllm:prefix_cache_hits_total"));
	assert_non_null(strstr(t, "vllm:gpu_prefix_cache_hits_total{model_name=\"Qwen/Qwen2.5-1.5B-"
				  "Instruct\"} 32.0\n"));
	assert_non_null(strstr(t, "vllm:gpu_prefix_cache_hit_rate{model_name=\"Qwen/Qwen2.5-1.5B-"
				  "Instruct\"} 0.32\n"));
	/* latest without LoRA has no lora_requests_info; 0.8 always has it. */
	c.enable_lora = false;
	ig_buf_reset(&b);
	ig_sim_render_metrics(&b, &c, &s, &g);
	assert_non_null(strstr(ig_buf_cstr(&b), "vllm:lora_requests_info{max_lora=\"0\""));
	c.version = IG_SIM_V_LATEST;
	ig_buf_reset(&b);
	ig_sim_render_metrics(&b, &c, &s, &g);
	assert_null(strstr(ig_buf_cstr(&b), "lora_requests_info"));
	ig_buf_free(&b);
	ig_sim_stats_free(&s);
	ig_sim_config_free(&c);
}

static void test_args_profile_and_failures(void **state)
{
	struct ig_sim_config c;
	char err[256];
	/* A flag wins over the profile wherever it stands on the line. */
	const char *a[] = {"--itl-ms",
			   "3",
			   "--profile",
			   "llama3.1-8b-h100",
			   "--num-gpu-blocks",
			   "100",
			   "--no-enable-prefix-caching",
			   "--time-scale",
			   "20",
			   "--failure-injection-rate",
			   "25",
			   "--failure-types",
			   "rate_limit,server_error",
			   "model_not_found",
			   NULL};
	assert_int_equal(parse(&c, err, a), 0);
	assert_string_equal(c.profile, "llama3.1-8b-h100");
	assert_true(c.itl_ms == 3);
	assert_true(c.ttft_ms == 20 && c.prefill_us_per_token == 30 && c.decode_us_per_seq == 70);
	assert_int_equal(c.num_gpu_blocks, 100);
	assert_int_equal(c.max_num_batched_tokens, 8192);
	assert_false(c.enable_prefix_caching);
	assert_true(c.time_scale == 20);
	assert_true(c.failure_rate == 25);
	assert_int_equal(c.failure_types, (1u << IG_SIM_FAIL_RATE_LIMIT) |
					      (1u << IG_SIM_FAIL_SERVER_ERROR) |
					      (1u << IG_SIM_FAIL_MODEL_NOT_FOUND));
	assert_int_equal(ig_sim_failure_info(IG_SIM_FAIL_RATE_LIMIT)->status, 429);
	assert_string_equal(ig_sim_error_type(503), "ServiceUnavailableError");
	ig_sim_config_free(&c);
	/* Defaults: prefix caching on, budget 8192, real time. */
	const char *d[] = {"--max-num-batched-tokens", "512", NULL};
	assert_int_equal(parse(&c, err, d), 0);
	assert_true(c.enable_prefix_caching);
	assert_int_equal(c.max_num_batched_tokens, 512);
	assert_true(c.time_scale == 1);
	assert_null(c.profile);
	ig_sim_config_free(&c);
	const char *bad[][3] = {{"--profile", "a100", NULL},
				{"--time-scale", "0", NULL},
				{"--failure-injection-rate", "101", NULL},
				{"--failure-types", "timeout", NULL}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse(&c, err, bad[i]), -1);
		assert_non_null(strstr(err, bad[i][0]));
		ig_sim_config_free(&c);
	}
}

/* What the table alone does not say: flags known through having been
 * given, the positional model, aliases and vLLM's ignored flags. */
static void test_args_given(void **state)
{
	struct ig_sim_config c;
	char err[256];
	const char *a[] = {"Qwen/Qwen2.5-7B",
			   "--dtype",
			   "bfloat16",
			   "--enforce-eager",
			   "--num-gpu-blocks-override",
			   "64",
			   "--profile=qwen2.5-1.5b-cpu",
			   "--fixed-running",
			   "0",
			   "--failure-types",
			   "rate_limit",
			   "--failure-types=server_error",
			   "--tensor-parallel-size=2",
			   NULL};
	assert_int_equal(parse(&c, err, a), 0);
	assert_string_equal(c.model, "Qwen/Qwen2.5-7B");
	/* The alias counts as given: the profile leaves it alone. */
	assert_int_equal(c.num_gpu_blocks, 64);
	assert_int_equal(c.max_num_batched_tokens, 32768);
	assert_true(c.fixed.has_running);
	assert_int_equal(c.fixed.running, 0);
	assert_false(c.fixed.has_waiting);
	assert_false(c.fixed.has_kv);
	assert_false(c.has_seed);
	/* Every --failure-types adds to the set. */
	assert_int_equal(c.failure_types,
			 (1u << IG_SIM_FAIL_RATE_LIMIT) | (1u << IG_SIM_FAIL_SERVER_ERROR));
	ig_sim_config_free(&c);
	const char *seed0[] = {"--seed", "0", NULL};
	assert_int_equal(parse(&c, err, seed0), 0);
	assert_true(c.has_seed);
	assert_int_equal(c.seed, 0);
	ig_sim_config_free(&c);
	const char *ignored_missing[] = {"--dtype", "--port", "1", NULL};
	expect_error(ignored_missing, "--dtype needs a value");
	const char *ignored_switch[] = {"--enforce-eager=1", NULL};
	expect_error(ignored_switch, "--enforce-eager takes no value");
	const char *single_dash[] = {"-x", NULL};
	expect_error(single_dash, "'-x'");
}

static void test_prompt_token_ids(void **state)
{
	uint64_t a[8], b[8];
	assert_int_equal(ig_sim_tokenize(IG_STR("San Francisco, CA"), a, 8), 4);
	assert_int_equal(ig_sim_tokenize(IG_STR("San  Francisco ,CA"), b, 8), 4);
	assert_memory_equal(a, b, sizeof a[0] * 4);
	assert_true(a[0] != a[1]);
	/* Only max ids are written; the count is still whole. */
	assert_int_equal(ig_sim_tokenize(IG_STR("a b c"), b, 1), 3);
	assert_true(ig_sim_token_id("<|im_start|>") != ig_sim_token_id("assistant"));
}

/* ---- generation requests ---- */

/* base (also served as alias), adapter a1, a 64-token context. */
static void request_config(struct ig_sim_config *c)
{
	char err[256];
	const char *args[] = {
	    "--model",	      "base",  "--served-model-name", "base", "alias", "--enable-lora",
	    "--lora-modules", "a1=/p", "--max-model-len",     "64",   NULL};
	assert_int_equal(parse(c, err, args), 0);
}

static int parse_req(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
		     struct ig_sim_request *r, struct ig_sim_error *e)
{
	return ig_sim_parse_request(c, kind, body, strlen(body), r, e);
}

static void test_request_completion(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);

	const char *body = "{\"model\":\"alias\",\"prompt\":\"a b, c\",\"max_tokens\":5,"
			   "\"stream\":true,\"stream_options\":{},\"temperature\":0,\"seed\":9}";
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, body, &r, &e), 0);
	assert_true(ig_str_eq_cstr(r.name, "alias"));
	assert_false(r.adapter);
	assert_true(ig_str_eq_cstr(r.prompt_key, "\"a b, c\""));
	assert_int_equal(r.prompt_tokens, 4);
	assert_int_equal(r.max_tokens, 5);
	assert_true(r.stream && r.include_usage && !r.ignore_eos);
	assert_true(r.has_temp && r.temperature == 0);
	assert_true(r.has_seed && r.seed == 9);
	/* The ids are the tokenizer's. */
	uint64_t want[4];
	assert_int_equal(ig_sim_tokenize(IG_STR("a b, c"), want, 4), 4);
	assert_int_equal(ig_sim_request_nids(&r), 4);
	assert_memory_equal(r.ids.ptr, want, sizeof want);
	ig_sim_request_free(&r);

	/* No model: the label name, 16 tokens by default; an adapter by name. */
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":[\"x\"]}", &r, &e), 0);
	assert_true(ig_str_eq_cstr(r.name, "base"));
	assert_int_equal(r.max_tokens, 16);
	assert_false(r.stream || r.include_usage || r.has_temp || r.has_seed);
	ig_sim_request_free(&r);
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION,
				   "{\"model\":\"a1\",\"prompt\":[7,8,9],\"stream\":true,"
				   "\"stream_options\":{\"include_usage\":false}}",
				   &r, &e),
			 0);
	assert_true(ig_str_eq_cstr(r.name, "a1"));
	assert_true(r.adapter);
	assert_false(r.include_usage);
	assert_int_equal(r.prompt_tokens, 3);
	const uint64_t ids[] = {7, 8, 9};
	assert_int_equal(ig_sim_request_nids(&r), 3);
	assert_memory_equal(r.ids.ptr, ids, sizeof ids);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

static void test_request_chat(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);

	/* Without max_tokens a chat answer may fill the context. */
	const char *body = "{\"messages\":[{\"role\":\"system\",\"content\":null},"
			   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi "
			   "there\"},{\"type\":\"image_url\"}]}],\"ignore_eos\":true}";
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &r, &e), 0);
	long want = 2 + 2 * IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(r.max_tokens, 64 - want);
	assert_true(r.ignore_eos);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)want);
	ig_sim_request_free(&r);

	/* max_completion_tokens wins over max_tokens. */
	body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":3,"
	       "\"max_completion_tokens\":4}";
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &r, &e), 0);
	assert_int_equal(r.max_tokens, 4);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

static void test_request_errors(void **state)
{
	static const struct {
		enum ig_sim_kind kind;
		const char *body;
		int status;
		const char *param; /* NULL: none */
		const char *msg;   /* a part of the message */
	} cases[] = {
	    {IG_SIM_COMPLETION, "[1]", 400, NULL, "JSON decode error"},
	    {IG_SIM_COMPLETION, "{\"prompt\":", 400, NULL, "JSON decode error"},
	    {IG_SIM_COMPLETION, "{\"model\":1,\"prompt\":\"x\"}", 400, "model", "string"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream\":1}", 400, "stream", "boolean"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream_options\":{}}", 400, "stream_options",
	     "stream=True"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream\":true,\"stream_options\":[]}", 400,
	     "stream_options", "object"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"n\":2}", 400, "n", "n=1"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"seed\":1.5}", 400, "seed", "integer"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"temperature\":\"0\"}", 400, "temperature",
	     "number"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"max_tokens\":0}", 400, "max_tokens",
	     "'max_tokens' must be an integer of at least 1."},
	    {IG_SIM_COMPLETION, "{\"prompt\":null}", 400, "prompt", "Field required"},
	    {IG_SIM_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", 400, "prompt", "list of one"},
	    {IG_SIM_COMPLETION, "{\"prompt\":[1,\"b\"]}", 400, "prompt", "token ids"},
	    {IG_SIM_COMPLETION, "{\"model\":\"nope\",\"prompt\":\"x\"}", 404, "model",
	     "The model `nope` does not exist."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"max_tokens\":64}", 400, NULL,
	     "you requested 65 tokens (1 in the messages, 64 in the completion)"},
	    {IG_SIM_CHAT, "{\"prompt\":\"x\"}", 400, "messages", "Field required"},
	    {IG_SIM_CHAT, "{\"messages\":[]}", 400, "messages", "non-empty"},
	    {IG_SIM_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", 400, "messages", "role"},
	    {IG_SIM_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":1}]}", 400, "messages",
	     "role"},
	    {IG_SIM_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"max_completion_tokens\":-1}", 400,
	     "max_completion_tokens", "at least 1"},
	};
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(&e, 0, sizeof e);
		assert_int_equal(parse_req(&c, cases[i].kind, cases[i].body, &r, &e), -1);
		assert_int_equal(e.status, cases[i].status);
		assert_string_equal(e.type, e.status == 404 ? "NotFoundError" : "BadRequestError");
		if (cases[i].param)
			assert_string_equal(e.param, cases[i].param);
		else
			assert_null(e.param);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].msg);
		ig_sim_request_free(&r);
	}
	ig_sim_config_free(&c);
}

/* A chat prompt that fills the context is refused with vLLM's message;
 * ids past the buffer's ceiling are dropped but the count stays whole. */
static void test_request_long_prompt(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	struct ig_buf b = {0};
	request_config(&c);

	ig_buf_append_cstr(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
	for (int i = 0; i < 300; i++)
		ig_buf_append_cstr(&b, "w ");
	ig_buf_append_cstr(&b, "\"}]}");
	assert_int_equal(ig_sim_parse_request(&c, IG_SIM_CHAT, b.ptr, b.len, &r, &e), -1);
	assert_int_equal(e.status, 400);
	long want = 300 + IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	char msg[160];
	snprintf(msg, sizeof msg, "you requested %ld tokens in the messages, Please", want);
	assert_non_null(strstr(e.msg, msg));
	assert_int_equal(r.prompt_tokens, want);
	assert_true(r.ids_truncated);
	assert_true(ig_sim_request_nids(&r) < (size_t)want);
	/* What was kept is the prompt's start: the chat template's marker. */
	uint64_t first;
	memcpy(&first, r.ids.ptr, sizeof first);
	assert_true(first == ig_sim_token_id("<|im_start|>"));
	ig_sim_request_free(&r);
	ig_buf_free(&b);
	ig_sim_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tokenizer),
	    cmocka_unit_test(test_generator_deterministic),
	    cmocka_unit_test(test_args_defaults),
	    cmocka_unit_test(test_args_seed_deployment),
	    cmocka_unit_test(test_args_forms),
	    cmocka_unit_test(test_args_errors),
	    cmocka_unit_test(test_lora_module_items),
	    cmocka_unit_test(test_adapters_runtime),
	    cmocka_unit_test(test_render_completion),
	    cmocka_unit_test(test_render_chat),
	    cmocka_unit_test(test_render_error),
	    cmocka_unit_test(test_float_format),
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_lora_history),
	    cmocka_unit_test(test_metrics_text),
	    cmocka_unit_test(test_metrics_name_filter),
	    cmocka_unit_test(test_args_profile_and_failures),
	    cmocka_unit_test(test_args_given),
	    cmocka_unit_test(test_prompt_token_ids),
	    cmocka_unit_test(test_request_completion),
	    cmocka_unit_test(test_request_chat),
	    cmocka_unit_test(test_request_errors),
	    cmocka_unit_test(test_request_long_prompt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
