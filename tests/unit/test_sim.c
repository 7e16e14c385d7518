/* Unit tests for the simulator's pure parts: the tokenizer, the command
 * line (vLLM's flag forms, --lora-modules items, errors), request parsing
 * for every API, the response and error bodies and the order of each
 * API's stream events, embeddings, number formatting, histograms, the
 * LoRA info history and the metrics exposition. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"
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

/* return_token_ids: the lists in the newer keys' places, null without. */
static void test_render_token_ids(void **state)
{
	struct ig_buf b = {0};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_COMPLETION,
	    .id = IG_STR("cmpl-1"),
	    .created = 5,
	    .model = IG_STR("m"),
	    .text = IG_STR(" x"),
	    .newer_keys = true,
	    .token_ids = IG_STR("[7]"),
	    .prompt_ids = IG_STR("[1,2]"),
	};
	render(&b, ig_sim_render_chunk, &r);
	assert_non_null(strstr(b.ptr, ",\"stop_reason\":null,\"prompt_token_ids\":[1,2],"
				      "\"token_ids\":[7]}],\"usage\":null}"));
	render(&b, ig_sim_render_full, &r);
	assert_non_null(strstr(b.ptr, "\"token_ids\":[7],\"prompt_logprobs\":null,"
				      "\"prompt_token_ids\":[1,2]}]"));
	r.kind = IG_SIM_CHAT;
	r.id = IG_STR("chatcmpl-1");
	render(&b, ig_sim_render_full, &r);
	assert_non_null(strstr(b.ptr, "\"stop_reason\":null,\"token_ids\":[7]}]"));
	assert_non_null(strstr(b.ptr, "\"prompt_logprobs\":null,\"prompt_token_ids\":[1,2],"));
	render(&b, ig_sim_render_role_chunk, &r);
	assert_non_null(strstr(b.ptr, "\"finish_reason\":null}],\"prompt_token_ids\":[1,2]}"));
	render(&b, ig_sim_render_chunk, &r);
	assert_non_null(strstr(b.ptr, "\"finish_reason\":null,\"token_ids\":[7]}]}"));
	r.token_ids = (struct ig_str){0};
	render(&b, ig_sim_render_chunk, &r);
	assert_non_null(strstr(b.ptr, "\"token_ids\":null}]}"));
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

static void expect_py(double v, const char *want)
{
	char out[64];
	ig_sim_py_float(out, sizeof out, v);
	assert_string_equal(out, want);
}

/* Python's repr(): what vLLM's JSON bodies hold. */
static void test_py_float(void **state)
{
	expect_py(-0.717, "-0.717");
	expect_py(100, "100.0");
	expect_py(1742577733.4, "1742577733.4");
	expect_py(1e16, "1e+16");
	expect_py(1e-5, "1e-05");
	expect_py(0.0001, "0.0001");
	expect_py(-0.0, "-0.0");
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
	struct ig_str q =
	    IG_STR("name%5B%5D=vllm:num_requests_waiting&name%5B%5D=vllm:num_requests_"
		   "running&name%5B%5D=vllm:kv_cache_usage_perc&name%5B%5D=vllm:gpu_"
		   "cache_usage_perc&name%5B%5D=vllm:lora_requests_info");
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page), q, &b), 0);
	const char *t = ig_buf_cstr(&b);
	assert_non_null(strstr(t, "# HELP vllm:num_requests_waiting "));
	assert_non_null(
	    strstr(t, "# TYPE vllm:num_requests_waiting gauge\n"
		      "vllm:num_requests_waiting{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-"
		      "Instruct\"} 2.0\n"));
	assert_non_null(strstr(t, "# TYPE vllm:lora_requests_info gauge\n"));
	assert_null(strstr(t, "time_to_first_token"));
	assert_null(strstr(t, "prompt_tokens"));
	assert_null(strstr(t, "cache_config_info"));
	assert_true(b.len < page.len / 3);
	struct ig_endpoint_metrics whole = {0}, part = {0};
	int fw = ig_vllm_metrics_extract(page.ptr, page.len, IG_LORA_NEWEST, &whole);
	assert_int_equal(fw,
			 IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_LORA | IG_FAM_CACHE);
	assert_int_equal(ig_vllm_metrics_extract(b.ptr, b.len, IG_LORA_NEWEST, &part),
			 fw & ~IG_FAM_CACHE);
	/* Now and then the scraper asks for cache_config_info too: then the
	 * answer gives what the whole page gives. */
	struct ig_str with_cache =
	    IG_STR("name%5B%5D=vllm:num_requests_waiting&name%5B%5D=vllm:num_requests_running&"
		   "name%5B%5D=vllm:kv_cache_usage_perc&name%5B%5D=vllm:gpu_cache_usage_perc&"
		   "name%5B%5D=vllm:lora_requests_info&name%5B%5D=vllm:cache_config_info");
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page), with_cache, &b), 0);
	memset(&part, 0, sizeof part);
	assert_int_equal(ig_vllm_metrics_extract(b.ptr, b.len, IG_LORA_NEWEST, &part), fw);
	assert_int_equal(part.cache.block_tokens, c.block_size);
	assert_int_equal(part.cache.gpu_blocks, c.num_gpu_blocks);
	assert_memory_equal(&whole, &part, sizeof whole);
	/* Decoded names, '+' for a blank; other parameters are ignored. */
	ig_buf_reset(&b);
	assert_int_equal(ig_sim_filter_metrics(ig_buf_str(&page),
					       IG_STR("x=1&name[]=vllm%3Anum_requests_running"),
					       &b),
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
	    "vllm:num_requests_running{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "3.0\n",
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "2.0\n",
	    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "0.5\n",
	    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"a,b\","
	    "waiting_lora_adapters=\"c\"} 1.742577734e+09\n",
	    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\","
	    "waiting_lora_adapters=\"\"} 1.742577733e+09\n",
	    "vllm:prompt_tokens_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "10.0\n",
	    "vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"Qwen/"
	    "Qwen2.5-1.5B-Instruct\"} 1.0\n",
	    "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"Qwen/"
	    "Qwen2.5-1.5B-Instruct\"} 0.0\n",
	    "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.1\",model_name=\"Qwen/"
	    "Qwen2.5-1.5B-Instruct\"} 0.0\n",
	    "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.25\",model_name=\"Qwen/"
	    "Qwen2.5-1.5B-Instruct\"} 1.0\n",
	    "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"Qwen/"
	    "Qwen2.5-1.5B-Instruct\"} 1.0\n",
	    "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 1.0\n",
	    "# TYPE vllm:e2e_request_latency_seconds histogram\n",
	    "vllm:cache_config_info{block_size=\"16\",",
	    "engine=\"0\",gpu_memory_utilization=\"0.9\"",
	    "num_cpu_blocks=\"None\",num_gpu_blocks=\"9362\",",
	    "enable_prefix_caching=\"True\"",
	    "vllm:num_preemptions_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "2.0\n",
	    "vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-"
	    "Instruct\"} 100.0\n",
	    "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} "
	    "32.0\n",
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
	assert_null(strstr(t, "engine="));
	assert_non_null(strstr(
	    t, "vllm:gpu_cache_usage_perc{model_name=\"Qwen/Qwen2.5-1.5B-Instruct\"} 0.5\n"));
	assert_null(strstr(t, "finished_reason=\"stop\""));
	assert_non_null(strstr(t, "finished_reason=\"length\""));
	assert_null(strstr(t, "le=\"2560.0\""));
	assert_null(strstr(t, "le=\"7680.0\""));
	assert_null(strstr(t, "prefix_cache_hits_total"));
	assert_non_null(strstr(t, "num_cpu_blocks=\"0\""));
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
	/* 0.8's V0 engine has prefix caching off unless it is asked for,
	 * the seed's CPU profile too; the latest (V1) has it on. */
	const char *v0[] = {"--vllm-version", "0.8", "--profile", "qwen2.5-1.5b-cpu", NULL};
	assert_int_equal(parse(&c, err, v0), 0);
	assert_false(c.enable_prefix_caching);
	ig_sim_config_free(&c);
	const char *v0on[] = {"--enable-prefix-caching", "--vllm-version", "0.8", NULL};
	assert_int_equal(parse(&c, err, v0on), 0);
	assert_true(c.enable_prefix_caching);
	ig_sim_config_free(&c);
	const char *cpu[] = {"--profile", "qwen2.5-1.5b-cpu", NULL};
	assert_int_equal(parse(&c, err, cpu), 0);
	assert_true(c.enable_prefix_caching);
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

/* Token spans carry the blanks before them; put together they give the
 * text back without its trailing blanks. */
static void test_token_spans(void **state)
{
	struct ig_str sp[8];
	const char *t = "  Hi,  there caf\xc3\xa9 ";
	assert_int_equal(ig_sim_token_spans(ig_str_from(t), sp, 8), 5);
	assert_true(ig_str_eq_cstr(sp[0], "  Hi"));
	assert_true(ig_str_eq_cstr(sp[1], ","));
	assert_true(ig_str_eq_cstr(sp[2], "  there"));
	assert_true(ig_str_eq_cstr(sp[3], " caf"));
	assert_true(ig_str_eq_cstr(sp[4], "\xc3\xa9"));
	/* At most max. */
	assert_int_equal(ig_sim_token_spans(ig_str_from(t), sp, 2), 2);
	assert_int_equal(ig_sim_token_spans(IG_STR("   "), sp, 8), 0);
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
	/* Answered with the first served name, as vLLM's model_name(). */
	assert_true(ig_str_eq_cstr(r.name, "base"));
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

	/* A text-only model takes no image. */
	const char *body = "{\"messages\":[{\"role\":\"system\",\"content\":null},"
			   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi "
			   "there\"},{\"type\":\"image_url\"}]}],\"ignore_eos\":true}";
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &r, &e), -1);
	assert_string_equal(e.msg, "base is not a multimodal model None");
	ig_sim_request_free(&r);

	/* Without max_tokens a chat answer may fill the context. */
	body = "{\"messages\":[{\"role\":\"system\",\"content\":null},"
	       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi "
	       "there\"}]}],\"ignore_eos\":true}";
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &r, &e), 0);
	long want = 2 + 2 * IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(r.max_tokens, 64 - want);
	assert_true(r.ignore_eos);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)want);
	ig_sim_request_free(&r);

	/* The edges of SamplingParams' ranges are in them. */
	body = "{\"prompt\":\"x\",\"temperature\":0,\"top_p\":1,\"min_p\":0,\"top_k\":-1,"
	       "\"presence_penalty\":-2,\"frequency_penalty\":2,\"repetition_penalty\":1e-9}";
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, body, &r, &e), 0);
	ig_sim_request_free(&r);

	/* echo with max_tokens 0: the prompt alone, one step run. */
	body = "{\"prompt\":\"a b\",\"echo\":true,\"max_tokens\":0}";
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, body, &r, &e), 0);
	assert_true(r.echo_only);
	assert_int_equal(r.max_tokens, 1);
	ig_sim_request_free(&r);
	body = "{\"prompt\":\"a b\",\"max_tokens\":0}";
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, body, &r, &e), -1);
	ig_sim_request_free(&r);

	/* max_completion_tokens wins over max_tokens. */
	body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":3,"
	       "\"max_completion_tokens\":4}";
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &r, &e), 0);
	assert_int_equal(r.max_tokens, 4);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

/* The text a structured answer gets from `spec`, with seed `seed`. */
static char *structured(enum ig_sim_structured kind, const char *spec, uint64_t seed)
{
	struct ig_rng rng;
	struct ig_buf out = {0};
	ig_rng_seed(&rng, seed);
	assert_int_equal(ig_sim_structured_text(kind, ig_str_from(spec), &rng, &out), 0);
	assert_int_equal(ig_buf_append(&out, "", 1), 0);
	return out.ptr;
}

static struct ig_json_value member(struct ig_json_value o, const char *key)
{
	struct ig_json_value v;
	assert_int_equal(ig_json_get(o, key, &v), 0);
	return v;
}

static void test_structured_text(void **state)
{
	static const char schema[] =
	    "{\"type\":\"object\",\"properties\":{"
	    "\"name\":{\"type\":\"string\",\"minLength\":12,\"maxLength\":20},"
	    "\"age\":{\"type\":\"integer\",\"minimum\":18,\"maximum\":20},"
	    "\"score\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1},"
	    "\"kind\":{\"enum\":[\"a\",2,null]},"
	    "\"fixed\":{\"const\":{\"k\":[1,2]}},"
	    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2,"
	    "\"maxItems\":2},"
	    "\"when\":{\"type\":\"string\",\"format\":\"date\"},"
	    "\"nick\":{\"anyOf\":[{\"type\":\"null\"},{\"$ref\":\"#/$defs/Nick\"}]},"
	    "\"pair\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},"
	    "{\"type\":\"string\"}],\"minItems\":2,\"maxItems\":2},"
	    "\"opt\":{\"type\":[\"null\",\"boolean\"]}},"
	    "\"$defs\":{\"Nick\":{\"type\":\"string\",\"maxLength\":3}}}";
	for (uint64_t seed = 1; seed <= 50; seed++) {
		char *t = structured(IG_SIM_JSON, schema, seed);
		struct ig_json_value root, v, e;
		struct ig_buf str = {0};
		int64_t n;
		double d;
		assert_int_equal(ig_json_parse(t, strlen(t), &root), 0);
		assert_int_equal(root.type, IG_JSON_OBJECT);
		/* Every property, in the schema's order. */
		assert_ptr_equal(strstr(t, "{\"name\": \""), t);
		v = member(root, "name");
		assert_int_equal(ig_json_string(v, &str), 0);
		assert_in_range(str.len, 12, 20);
		ig_buf_free(&str);
		assert_int_equal(ig_json_int64(member(root, "age"), &n), 0);
		assert_in_range(n, 18, 20);
		assert_int_equal(ig_json_double(member(root, "score"), &d), 0);
		assert_true(d > 0 && d < 1);
		v = member(root, "kind");
		assert_true(ig_json_string_eq(v, "a") || v.type == IG_JSON_NULL ||
			    (ig_json_int64(v, &n) == 0 && n == 2));
		v = member(root, "fixed");
		assert_int_equal(v.raw.len, 11);
		assert_memory_equal(v.raw.ptr, "{\"k\":[1,2]}", 11);
		v = member(root, "tags");
		size_t pos = 0, count = 0;
		while (ig_json_array_next(v, &pos, &e) == 1) {
			assert_int_equal(e.type, IG_JSON_BOOL);
			count++;
		}
		assert_int_equal(count, 2);
		assert_true(ig_json_string_eq(member(root, "when"), "2026-12-05"));
		v = member(root, "nick"); /* the branch that is not null, through $ref */
		assert_int_equal(ig_json_string(v, &str), 0);
		assert_in_range(str.len, 1, 3);
		ig_buf_free(&str);
		v = member(root, "pair");
		pos = 0;
		assert_int_equal(ig_json_array_next(v, &pos, &e), 1);
		assert_int_equal(ig_json_int64(e, &n), 0);
		assert_int_equal(ig_json_array_next(v, &pos, &e), 1);
		assert_int_equal(e.type, IG_JSON_STRING);
		assert_int_equal(member(root, "opt").type, IG_JSON_BOOL);
		free(t);
	}
	/* The same seed writes the same answer; another seed another. */
	char *a = structured(IG_SIM_JSON, schema, 3), *b = structured(IG_SIM_JSON, schema, 3),
	     *c = structured(IG_SIM_JSON, schema, 4);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	free(a), free(b), free(c);
	/* json_object (no schema): an object. */
	char *t = structured(IG_SIM_JSON, "", 1);
	assert_ptr_equal(strstr(t, "{\"answer\": \""), t);
	struct ig_json_value root;
	assert_int_equal(ig_json_parse(t, strlen(t), &root), 0);
	free(t);
	/* A schema that refers to itself ends in null, not in a loop. */
	t = structured(IG_SIM_JSON,
		       "{\"$ref\":\"#/$defs/N\",\"$defs\":{\"N\":{\"type\":\"object\","
		       "\"properties\":{\"next\":{\"$ref\":\"#/$defs/N\"}}}}}",
		       1);
	assert_int_equal(ig_json_parse(t, strlen(t), &root), 0);
	assert_non_null(strstr(t, "null"));
	free(t);
	/* A choice is one of the strings, decoded. */
	bool seen[2] = {false, false};
	for (uint64_t seed = 1; seed <= 20; seed++) {
		t = structured(IG_SIM_CHOICE, "[\"yes\",\"n\\u00f6\"]", seed);
		assert_true(strcmp(t, "yes") == 0 || strcmp(t, "n\xc3\xb6") == 0);
		seen[t[0] == 'n'] = true;
		free(t);
	}
	assert_true(seen[0] && seen[1]);
	struct ig_rng rng;
	struct ig_buf out = {0};
	ig_rng_seed(&rng, 1);
	assert_int_equal(ig_sim_structured_text(IG_SIM_CHOICE, IG_STR("[]"), &rng, &out), -1);
	assert_int_equal(ig_sim_structured_text(IG_SIM_JSON, IG_STR("{"), &rng, &out), -1);
	ig_buf_free(&out);
}

/* Which tool calls a chat asks for, with the server's tool flags. */
static void test_request_tool_choice(void **state)
{
	char err[256];
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	const char *args[] = {"--model",
			      "base",
			      "--enable-auto-tool-choice",
			      "--tool-call-parser",
			      "hermes",
			      "--vllm-version",
			      "latest",
			      NULL};
	assert_int_equal(parse(&c, err, args), 0);
	assert_true(c.auto_tool_choice);
	assert_string_equal(c.tool_call_parser, "hermes");
#define TOOLS                                                                                      \
	"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},"                        \
	"{\"type\":\"function\",\"function\":{\"name\":\"b\",\"parameters\":{}}}]"
	static const struct {
		const char *body;
		enum ig_sim_tool_mode mode;
		long pick;
	} cases[] = {
	    /* tools and no tool_choice: "auto"; the user spoke last: a call. */
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS "}", IG_SIM_TOOL_AUTO,
	     0},
	    /* After the tool's result: words. */
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"content\":"
	     "\"y\"}]," TOOLS "}",
	     IG_SIM_TOOL_NONE, 0},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":\"none\"}",
	     IG_SIM_TOOL_NONE, 0},
	    {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":\"required\"}",
	     IG_SIM_TOOL_REQUIRED, 0},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"b\"}}}",
	     IG_SIM_TOOL_NAMED, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(parse_req(&c, IG_SIM_CHAT, cases[i].body, &r, &e), 0);
		assert_int_equal(r.tool_mode, cases[i].mode);
		assert_int_equal(r.ntools, 2);
		if (cases[i].mode == IG_SIM_TOOL_NAMED)
			assert_int_equal(r.tool_pick, cases[i].pick);
		ig_sim_request_free(&r);
	}
	/* The Responses API: flat tools, a named choice by "name"; the user's
	 * input string asks, a function_call_output answers. */
#define FLAT_TOOLS                                                                                 \
	"\"tools\":[{\"type\":\"function\",\"name\":\"a\"},{\"type\":\"function\",\"name\":\"b\"}" \
	"]"
	static const struct {
		const char *body;
		enum ig_sim_tool_mode mode;
	} resp[] = {
	    {"{\"input\":\"x\"," FLAT_TOOLS "}", IG_SIM_TOOL_AUTO},
	    {"{\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":"
	     "\"y\"}]," FLAT_TOOLS "}",
	     IG_SIM_TOOL_NONE},
	    {"{\"input\":\"x\"," FLAT_TOOLS
	     ",\"tool_choice\":{\"type\":\"function\",\"name\":\"b\"}}",
	     IG_SIM_TOOL_NAMED},
	};
	for (size_t i = 0; i < sizeof resp / sizeof resp[0]; i++) {
		assert_int_equal(parse_req(&c, IG_SIM_RESPONSES, resp[i].body, &r, &e), 0);
		assert_int_equal(r.tool_mode, resp[i].mode);
		if (resp[i].mode == IG_SIM_TOOL_NAMED)
			assert_int_equal(r.tool_pick, 1);
		ig_sim_request_free(&r);
	}
	/* Anthropic's Messages: tools with input_schema, tool_choice by type;
	 * a tool_result answers. */
#define ANT                                                                                        \
	"{\"model\":\"base\",\"max_tokens\":5,\"tools\":[{\"name\":\"a\",\"input_schema\":{}},"    \
	"{\"name\":\"b\"}],"
	static const struct {
		const char *body;
		enum ig_sim_tool_mode mode;
	} ant[] = {
	    {ANT "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", IG_SIM_TOOL_AUTO},
	    {ANT "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
		 "\"tool_use_id\":\"t\",\"content\":\"y\"}]}]}",
	     IG_SIM_TOOL_NONE},
	    {ANT "\"tool_choice\":{\"type\":\"any\"},\"messages\":[{\"role\":\"user\",\"content\":"
		 "\"x\"}]}",
	     IG_SIM_TOOL_REQUIRED},
	    {ANT "\"tool_choice\":{\"type\":\"tool\",\"name\":\"b\"},\"messages\":[{\"role\":"
		 "\"user\",\"content\":\"x\"}]}",
	     IG_SIM_TOOL_NAMED},
	    {ANT "\"tool_choice\":{\"type\":\"none\"},\"messages\":[{\"role\":\"user\",\"content\":"
		 "\"x\"}]}",
	     IG_SIM_TOOL_NONE},
	};
	for (size_t i = 0; i < sizeof ant / sizeof ant[0]; i++) {
		assert_int_equal(parse_req(&c, IG_SIM_MESSAGES, ant[i].body, &r, &e), 0);
		assert_int_equal(r.tool_mode, ant[i].mode);
		if (ant[i].mode == IG_SIM_TOOL_NAMED)
			assert_int_equal(r.tool_pick, 1);
		ig_sim_request_free(&r);
	}
	assert_int_equal(parse_req(&c, IG_SIM_MESSAGES,
				   ANT "\"tool_choice\":{\"type\":\"tool\",\"name\":\"z\"},"
				       "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
				   &r, &e),
			 -1);
	assert_non_null(strstr(e.msg, "not in `tools`"));
	ig_sim_request_free(&r);
#undef ANT
	struct ig_json_value fn, v;
	assert_int_equal(
	    ig_sim_tool_at(IG_STR("[{\"type\":\"function\",\"name\":\"a\"},"
				  "{\"type\":\"function\",\"function\":{\"name\":\"b\"}}]"),
			   1, &fn),
	    0);
	assert_int_equal(ig_json_get(fn, "name", &v), 0);
	assert_true(ig_json_string_eq(v, "b"));
	assert_int_equal(ig_sim_tool_at(IG_STR("[]"), 0, &fn), -1);
#undef FLAT_TOOLS
	ig_sim_config_free(&c);
	/* vLLM 0.8: tools alone mean "none". */
	const char *old[] = {"--model", "base", "--vllm-version", "0.8", NULL};
	assert_int_equal(parse(&c, err, old), 0);
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, cases[0].body, &r, &e), 0);
	assert_int_equal(r.tool_mode, IG_SIM_TOOL_NONE);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
#undef TOOLS
}

/* A chat whose last message is the user's, and a list of one tool. */
#define USER_ASKS "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
#define ONE_TOOL "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"g\"}}]"

/* The error's param as the latest release writes it: a validation
 * error's is FastAPI's location ("body.<field>", or "body" for the whole
 * request) and its type the HTTP phrase; others name the field. */
static void expect_param(const struct ig_sim_error *e, const char *field)
{
	char want[128];
	if (!e->validation) {
		if (field)
			assert_string_equal(e->param, field);
		else
			assert_null(e->param);
		return;
	}
	snprintf(want, sizeof want, "body%s%s", field ? "." : "", field ? field : "");
	assert_string_equal(e->param, want);
	assert_string_equal(e->type, "Bad Request");
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
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream\":2}", 400, "stream", "boolean"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream_options\":{\"include_usage\":true}}",
	     400, NULL, "stream=True"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stream\":true,\"stream_options\":[]}", 400,
	     "stream_options", "object"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"n\":0}", 400, "n",
	     "n must be at least 1, got 0."},
	    {IG_SIM_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"n\":129}", 400, "n",
	     "n up to 128"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"seed\":1.5}", 400, "seed", "integer"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"temperature\":\"zero\"}", 400, "temperature",
	     "number"},
	    /* Structured outputs. */
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"response_format\":{\"type\":\"xml\"}}", 400,
	     "response_format", "response_format.type must be"},
	    {IG_SIM_CHAT,
	     "{\"messages\":[{\"role\":\"user\"}],\"response_format\":{\"type\":\"json_schema\"}}",
	     400, "response_format", "json_schema is required"},
	    {IG_SIM_COMPLETION,
	     "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
	     "{\"name\":\"n\",\"schema\":[1]}}}",
	     400, "response_format", "must be an object"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"guided_json\":\"{\"}", 400, "guided_json",
	     "JSON schema"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"guided_choice\":[1]}", 400, "guided_choice",
	     "non-empty list of strings"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"guided_regex\":\"a\"}", 400, "guided_regex",
	     "does not generate"},
	    {IG_SIM_COMPLETION,
	     "{\"prompt\":\"x\",\"guided_choice\":[\"a\"],\"structured_outputs\":{\"json\":{}}}",
	     400, NULL, "multiple are specified: guided_choice and structured_outputs.json"},
	    {IG_SIM_CHAT,
	     "{\"messages\":[{\"role\":\"user\"}],\"logprobs\":true,"
	     "\"response_format\":{\"type\":\"json_object\"}}",
	     400, "logprobs", "no logprobs with structured outputs"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"grammar\"}}}",
	     400, "text.format", "text.format.type must be"},
	    /* Tools: "auto" (the default with tools) needs the server's flags. */
	    {IG_SIM_CHAT, USER_ASKS ONE_TOOL "}", 400, NULL,
	     "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser "
	     "to be set"},
	    {IG_SIM_CHAT, USER_ASKS "\"tool_choice\":\"required\"}", 400, NULL,
	     "When using `tool_choice`, `tools` must be set."},
	    {IG_SIM_CHAT,
	     USER_ASKS ONE_TOOL
	     ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"zz\"}}}",
	     400, NULL, "Tool 'zz' has not been passed in `tools`."},
	    {IG_SIM_CHAT, USER_ASKS "\"tools\":[{\"type\":\"function\"}]}", 400, "tools",
	     "each tool must be"},
	    {IG_SIM_CHAT, USER_ASKS ONE_TOOL ",\"tool_choice\":5}", 400, "tool_choice",
	     "'tool_choice' must be"},
	    {IG_SIM_CHAT,
	     USER_ASKS ONE_TOOL
	     ",\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}}",
	     400, NULL, "multiple are specified"},
	    /* SamplingParams' ranges, the value as Python prints the float. */
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"temperature\":-1}", 400, "temperature",
	     "temperature must be non-negative, got -1.0."},
	    {IG_SIM_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"top_p\":0}", 400, "top_p",
	     "top_p must be in (0, 1], got 0.0."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"top_p\":1.25}", 400, "top_p",
	     "top_p must be in (0, 1], got 1.25."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"min_p\":1.1}", 400, NULL,
	     "min_p must be in [0, 1], got 1.1."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"presence_penalty\":2.5}", 400, NULL,
	     "presence_penalty must be in [-2, 2], got 2.5."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"frequency_penalty\":-3}", 400, NULL,
	     "frequency_penalty must be in [-2, 2], got -3.0."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"repetition_penalty\":0}", 400, NULL,
	     "repetition_penalty must be greater than zero, got 0.0."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"top_k\":-2}", 400, NULL,
	     "top_k must be 0 (disable), or at least 1, got -2."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"top_k\":0.5}", 400, "top_k", "integer"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"min_p\":\"a\"}", 400, "min_p", "number"},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"max_tokens\":0}", 400, "max_tokens",
	     "max_tokens must be at least 1, got 0."},
	    {IG_SIM_COMPLETION, "{\"prompt\":null}", 400, "prompt", "Field required"},
	    {IG_SIM_COMPLETION, "{\"prompt\":[]}", 400, "prompt", "non-empty list"},
	    {IG_SIM_COMPLETION, "{\"prompt\":[\"a\",[1]]}", 400, "prompt", "non-empty list"},
	    {IG_SIM_COMPLETION, "{\"prompt\":[1,\"b\"]}", 400, "prompt", "token ids"},
	    {IG_SIM_COMPLETION, "{\"model\":\"nope\",\"prompt\":\"x\"}", 404, "model",
	     "The model `nope` does not exist."},
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"max_tokens\":64}", 400, "input_tokens",
	     "you requested 64 output tokens and your prompt contains at least 1 input tokens, "
	     "for a total of at least 65 tokens."},
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
		if (!e.validation)
			assert_string_equal(e.type,
					    e.status == 404 ? "NotFoundError" : "BadRequestError");
		expect_param(&e, cases[i].param);
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
	snprintf(msg, sizeof msg,
		 "you requested 0 output tokens and your prompt contains at least %ld", want);
	assert_non_null(strstr(e.msg, msg));
	assert_string_equal(e.param, "input_tokens");
	ig_sim_request_free(&r);
	/* 0.8's words. */
	c.version = IG_SIM_V_0_8;
	assert_int_equal(ig_sim_parse_request(&c, IG_SIM_CHAT, b.ptr, b.len, &r, &e), -1);
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

/* ---- Responses, embeddings, Messages: parsing ---- */

static void test_request_responses(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);

	/* instructions are a system turn, a string input one user turn. */
	const char *body =
	    "{\"model\":\"a1\",\"input\":\"hi there\",\"instructions\":\"Be brief.\","
	    "\"max_output_tokens\":5,\"stream\":true,\"temperature\":0.5,"
	    "\"metadata\":{\"k\": \"v\"},\"user\":\"u1\"}";
	assert_int_equal(parse_req(&c, IG_SIM_RESPONSES, body, &r, &e), 0);
	assert_true(r.adapter && ig_str_eq_cstr(r.name, "a1"));
	long want = 3 + IG_SIM_CHAT_MSG_OVERHEAD + 2 + IG_SIM_CHAT_MSG_OVERHEAD +
		    IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)want);
	assert_int_equal(r.max_tokens, 5);
	assert_true(r.stream && !r.include_usage);
	assert_true(ig_str_eq_cstr(r.prompt_key, "\"hi there\""));
	assert_true(ig_str_eq_cstr(r.echo.instructions, "\"Be brief.\""));
	assert_true(ig_str_eq_cstr(r.echo.metadata, "{\"k\": \"v\"}"));
	assert_true(ig_str_eq_cstr(r.echo.user, "\"u1\""));
	assert_int_equal(r.echo.tools.len, 0);
	assert_true(r.echo.has_temperature && r.echo.temperature == 0.5 && !r.echo.has_top_p);
	/* The ids are laid out as the template: system turn first. */
	uint64_t ids[4];
	memcpy(ids, r.ids.ptr, sizeof ids);
	assert_true(ids[0] == ig_sim_token_id("<|im_start|>"));
	assert_true(ids[1] == ig_sim_token_id("system"));
	ig_sim_request_free(&r);

	/* A list of items: messages with parts, a tool call and its output;
	 * tools come first. Without max_output_tokens the answer may fill the
	 * context. */
	body = "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
	       "\"text\":\"a b\"}]},{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":"
	       "\"{}\",\"call_id\":\"c\"},{\"type\":\"function_call_output\",\"call_id\":\"c\","
	       "\"output\":\"ok\"}],\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}";
	assert_int_equal(parse_req(&c, IG_SIM_RESPONSES, body, &r, &e), 0);
	long tools = (long)tokens("[{\"type\":\"function\",\"name\":\"f\"}]");
	want = tools + IG_SIM_CHAT_MSG_OVERHEAD + 2 + IG_SIM_CHAT_MSG_OVERHEAD + (1 + 2) +
	       IG_SIM_CHAT_MSG_OVERHEAD + 1 + IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(r.max_tokens, 64 - want);
	assert_true(ig_str_eq_cstr(r.echo.tools, "[{\"type\":\"function\",\"name\":\"f\"}]"));
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

static void test_request_messages(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);

	/* `system` and system-role messages join in one system turn; blocks
	 * count their text, a tool call its input, a tool result its content. */
	const char *body =
	    "{\"model\":\"base\",\"max_tokens\":7,\"system\":[{\"type\":\"text\",\"text\":\"be "
	    "nice\"}],\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\","
	    "\"content\":\"hello\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	    "\"id\":\"t\",\"name\":\"f\",\"input\":{\"q\":1}}]},{\"role\":\"user\",\"content\":[{"
	    "\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"done\"}]},{\"type\":\"image\",\"source\":{}}]}],\"stream\":true}";
	assert_int_equal(parse_req(&c, IG_SIM_MESSAGES, body, &r, &e), 0);
	long want = (2 + 1) + IG_SIM_CHAT_MSG_OVERHEAD + 1 + IG_SIM_CHAT_MSG_OVERHEAD +
		    (long)tokens("{\"q\":1}") + IG_SIM_CHAT_MSG_OVERHEAD + 1 +
		    IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)want);
	assert_int_equal(r.max_tokens, 7);
	assert_true(r.stream);
	ig_sim_request_free(&r);

	/* Odd parts inside a tool result are ignored, and what was counted
	 * is what the ids hold. */
	body =
	    "{\"model\":\"base\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":"
	    "[{\"type\":\"tool_result\",\"content\":[{\"type\":\"text\",\"text\":\"a b\"},5]}]}]}";
	assert_int_equal(parse_req(&c, IG_SIM_MESSAGES, body, &r, &e), 0);
	want = 2 + IG_SIM_CHAT_MSG_OVERHEAD + IG_SIM_CHAT_REPLY_OVERHEAD;
	assert_int_equal(r.prompt_tokens, want);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)want);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

static void test_request_embeddings(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	assert_int_equal(c.embedding_dim, 64);

	assert_int_equal(
	    parse_req(&c, IG_SIM_EMBEDDINGS, "{\"input\":\"a b c\",\"stream\":true}", &r, &e), 0);
	assert_int_equal(r.ninputs, 1);
	assert_int_equal(r.prompt_tokens, 3);
	assert_int_equal(r.max_tokens, 1);
	assert_int_equal(r.dims, 64);
	assert_false(r.base64 || r.stream);
	ig_sim_request_free(&r);

	/* Several inputs: their tokens add up; ids as given are the ids. */
	assert_int_equal(parse_req(&c, IG_SIM_EMBEDDINGS,
				   "{\"input\":[[5,6],[7]],\"dimensions\":8,"
				   "\"encoding_format\":\"base64\",\"model\":\"a1\"}",
				   &r, &e),
			 0);
	assert_int_equal(r.ninputs, 2);
	assert_int_equal(r.prompt_tokens, 3);
	assert_int_equal(r.dims, 8);
	assert_true(r.base64 && r.adapter);
	const uint64_t ids[] = {5, 6, 7};
	assert_memory_equal(r.ids.ptr, ids, sizeof ids);
	assert_true(ig_str_eq_cstr(r.input, "[[5,6],[7]]"));
	ig_sim_request_free(&r);
	assert_int_equal(
	    parse_req(&c, IG_SIM_EMBEDDINGS, "{\"input\":[\"x y\",\"z\",\"w\"]}", &r, &e), 0);
	assert_int_equal(r.ninputs, 3);
	assert_int_equal(r.prompt_tokens, 4);
	ig_sim_request_free(&r);

	/* The chat form: one input, the template's turn without the reply's
	 * opening; its ids as a JSON list are what the vector is drawn from. */
	assert_int_equal(parse_req(&c, IG_SIM_EMBEDDINGS,
				   "{\"messages\":[{\"role\":\"user\",\"content\":\"x y\"}]}", &r,
				   &e),
			 0);
	assert_int_equal(r.ninputs, 1);
	assert_int_equal(r.prompt_tokens, 2 + IG_SIM_CHAT_MSG_OVERHEAD);
	assert_int_equal(ig_sim_request_nids(&r), 2 + IG_SIM_CHAT_MSG_OVERHEAD);
	char want[64];
	snprintf(want, sizeof want, "%lld",
		 (long long)((const uint64_t *)(const void *)r.ids.ptr)[0]);
	assert_true(r.input.len > 2 && r.input.ptr[0] == '[' &&
		    r.input.ptr[r.input.len - 1] == ']');
	assert_memory_equal(r.input.ptr + 1, want, strlen(want));
	ig_sim_request_free(&r);
	/* Both forms: the input form, unless a field only the chat form
	 * declares is set. */
	assert_int_equal(parse_req(&c, IG_SIM_EMBEDDINGS,
				   "{\"input\":\"a\",\"messages\":[{\"role\":\"user\","
				   "\"content\":\"x y\"}]}",
				   &r, &e),
			 0);
	assert_int_equal(r.prompt_tokens, 1);
	ig_sim_request_free(&r);
	assert_int_equal(parse_req(&c, IG_SIM_EMBEDDINGS,
				   "{\"input\":\"a\",\"chat_template\":\"t\",\"messages\":[{"
				   "\"role\":\"user\",\"content\":\"x y\"}]}",
				   &r, &e),
			 0);
	assert_int_equal(r.prompt_tokens, 2 + IG_SIM_CHAT_MSG_OVERHEAD);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
}

static void test_request_new_api_errors(void **state)
{
	static const struct {
		enum ig_sim_kind kind;
		const char *body;
		int status;
		const char *param;
		const char *msg;
	} cases[] = {
	    {IG_SIM_RESPONSES, "{}", 400, "input", "Field required"},
	    {IG_SIM_RESPONSES, "{\"input\":3}", 400, "input", "string or a list"},
	    {IG_SIM_RESPONSES, "{\"input\":[1]}", 400, "input", "item"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"tools\":{}}", 400, "tools", "list"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"instructions\":1}", 400, "instructions",
	     "string"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"max_output_tokens\":0}", 400,
	     "max_output_tokens", "at least 1"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"model\":\"nope\"}", 404, "model",
	     "The model `nope` does not exist."},
	    /* Only the prompt is checked: a limit past the context is cut. */
	    {IG_SIM_RESPONSES,
	     "{\"input\":\"w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w "
	     "w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w\","
	     "\"max_output_tokens\":6}",
	     400, "input", "exceeds the max_model_len 64"},
	    {IG_SIM_MESSAGES,
	     "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
	     "model", "model: Field required"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"base\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
	     "max_tokens", "max_tokens: Field required"},
	    {IG_SIM_MESSAGES, "{\"model\":\"base\",\"max_tokens\":0,\"messages\":[]}", 400,
	     "max_tokens", "at least 1"},
	    {IG_SIM_MESSAGES, "{\"model\":\"base\",\"max_tokens\":5}", 400, "messages",
	     "messages: Field required"},
	    {IG_SIM_MESSAGES, "{\"model\":\"base\",\"max_tokens\":5,\"messages\":[]}", 400,
	     "messages", "non-empty"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"base\",\"max_tokens\":5,\"messages\":[{\"role\":\"tool\",\"content\":"
	     "\"x\"}]}",
	     400, "messages", "user|assistant"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"base\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":1}]"
	     "}",
	     400, "messages", "content"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"base\",\"max_tokens\":5,\"system\":3,\"messages\":[{\"role\":\"user\","
	     "\"content\":\"x\"}]}",
	     400, "system", "system"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"nope\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
	     "\"x\"}]}",
	     404, "model", "does not exist"},
	    {IG_SIM_MESSAGES,
	     "{\"model\":\"base\",\"max_tokens\":60,\"messages\":[{\"role\":\"user\",\"content\":"
	     "\"x\"}]}",
	     400, "input_tokens", "maximum context length is 64 tokens"},
	    {IG_SIM_EMBEDDINGS, "{}", 400, "input", "Field required"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"\"}", 400, "input", "non-empty"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":[]}", 400, "input", "empty"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":[\"a\",\"\"]}", 400, "input", "non-empty"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":[[1],[\"a\"]]}", 400, "input", "token ids"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":{}}", 400, "input", "a string"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"a\",\"encoding_format\":\"hex\"}", 400,
	     "encoding_format", "base64"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"a\",\"dimensions\":0}", 400, "dimensions",
	     "from 1 to 64"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"a\",\"dimensions\":65}", 400, "dimensions",
	     "from 1 to 64"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"a\",\"model\":\"nope\"}", 404, "model",
	     "does not exist"},
	    {IG_SIM_EMBEDDINGS, "{\"messages\":{}}", 400, "messages", "non-empty list"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":[\"a\",\"b c\"],\"truncate_prompt_tokens\":0}", 400,
	     NULL, "prompt cannot be empty"},
	    {IG_SIM_EMBEDDINGS,
	     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"truncate_prompt_tokens\":0}",
	     400, NULL, "prompt cannot be empty"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":null,\"messages\":null}", 400, "input", "'messages'"},
	    {IG_SIM_EMBEDDINGS,
	     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"add_generation_prompt\":true,\"continue_final_message\":true}",
	     400, NULL, "Cannot set both"},
	};
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(&e, 0, sizeof e);
		if (parse_req(&c, cases[i].kind, cases[i].body, &r, &e) != -1)
			fail_msg("case %zu accepted", i);
		assert_int_equal(e.status, cases[i].status);
		expect_param(&e, cases[i].param);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].msg);
		ig_sim_request_free(&r);
	}
	/* An embeddings input is checked on its own against the context. */
	struct ig_buf b = {0};
	ig_buf_append_cstr(&b, "{\"input\":[\"a\",\"");
	for (int i = 0; i < 65; i++)
		ig_buf_append_cstr(&b, "w ");
	ig_buf_append_cstr(&b, "\"]}");
	assert_int_equal(ig_sim_parse_request(&c, IG_SIM_EMBEDDINGS, b.ptr, b.len, &r, &e), -1);
	assert_non_null(strstr(e.msg, "you requested 65 tokens in the input for embedding"));
	ig_sim_request_free(&r);
	ig_buf_free(&b);
	ig_sim_config_free(&c);
}

/* ---- Responses, embeddings, Messages: rendering ---- */

/* The events of an SSE stream: names ("" when a frame has none) and data. */
struct sse_event {
	char name[64];
	char data[8192];
};

static size_t split_sse(const char *s, struct sse_event *ev, size_t max)
{
	size_t n = 0;
	while (*s && n < max) {
		const char *end = strstr(s, "\n\n");
		assert_non_null(end);
		memset(&ev[n], 0, sizeof ev[n]);
		if (strncmp(s, "event: ", 7) == 0) {
			const char *nl = strchr(s, '\n');
			memcpy(ev[n].name, s + 7, (size_t)(nl - s - 7));
			s = nl + 1;
		}
		assert_int_equal(strncmp(s, "data: ", 6), 0);
		s += 6;
		assert_true((size_t)(end - s) < sizeof ev[n].data);
		memcpy(ev[n].data, s, (size_t)(end - s));
		/* One line per data field: nothing in it may break the frame. */
		assert_null(strchr(ev[n].data, '\n'));
		s = end + 2;
		n++;
	}
	return n;
}

/* The data of an event is JSON whose "type" is the event's name. */
static void check_named(const struct sse_event *ev)
{
	struct ig_json_value root, type;
	assert_int_equal(ig_json_parse(ev->data, strlen(ev->data), &root), 0);
	assert_int_equal(ig_json_get(root, "type", &type), 0);
	if (!ig_json_string_eq(type, ev->name))
		fail_msg("event %s has type %.*s", ev->name, IG_STR_FMT(type.raw));
}

static long member_int(const char *json, const char *key)
{
	struct ig_json_value root, v;
	int64_t n = -1;
	assert_int_equal(ig_json_parse(json, strlen(json), &root), 0);
	assert_int_equal(ig_json_get(root, key, &v), 0);
	assert_int_equal(ig_json_int64(v, &n), 0);
	return (long)n;
}

/* Streams `words` through the renderer as the engine would. */
static void render_stream(struct ig_buf *b, struct ig_sim_resp *r, const char *const *words,
			  size_t n, long *seq)
{
	struct ig_buf full = {0};
	assert_int_equal(ig_sim_render_stream_open(b, r, seq), 0);
	for (size_t i = 0; i < n; i++) {
		ig_buf_append_cstr(&full, words[i]);
		r->text = ig_str_from(words[i]);
		r->full_text = ig_buf_str(&full);
		r->first = i == 0;
		r->completion_tokens = (long)i + 1;
		if (i == n - 1)
			r->finish = "stop";
		assert_int_equal(ig_sim_render_token(b, r, seq), 0);
	}
	ig_buf_free(&full);
	assert_non_null(ig_buf_cstr(b));
}

static void test_render_responses(void **state)
{
	struct ig_buf b = {0}, store = {0};
	struct ig_sim_echo raw = {.instructions = IG_STR("\"Be\\u0020brief\""),
				  .metadata = IG_STR("{ \"b\" : 1,\n \"a\" : [ 2 ] }"),
				  .has_temperature = true,
				  .temperature = 0.5};
	struct ig_sim_echo echo;
	assert_int_equal(ig_sim_echo_compact(&raw, &store, &echo), 0);
	assert_true(ig_str_eq_cstr(echo.instructions, "\"Be brief\""));
	assert_true(ig_str_eq_cstr(echo.metadata, "{\"a\":[2],\"b\":1}"));
	assert_int_equal(echo.tools.len, 0);
	struct ig_sim_resp r = {
	    .kind = IG_SIM_RESPONSES,
	    .id = IG_STR("resp_1"),
	    .created = 7,
	    .model = IG_STR("m"),
	    .text = IG_STR(" hi"),
	    .finish = "length",
	    .prompt_tokens = 10,
	    .completion_tokens = 1,
	    .cached_tokens = 4,
	    .max_output_tokens = 1,
	    .item_id = IG_STR("msg_9"),
	    .echo = &echo,
	};
	render(&b, ig_sim_render_full, &r);
	assert_string_equal(
	    b.ptr,
	    "{\"id\":\"resp_1\",\"created_at\":7,\"incomplete_details\":{\"reason\":"
	    "\"max_output_tokens\"},\"instructions\":\"Be brief\",\"metadata\":{\"a\":[2],"
	    "\"b\":1},\"model\":\"m\",\"object\":\"response\",\"output\":[{\"id\":\"msg_9\","
	    "\"content\":[{\"annotations\":[],\"text\":\" hi\",\"type\":\"output_text\","
	    "\"logprobs\":null}],\"role\":\"assistant\",\"status\":\"completed\",\"type\":"
	    "\"message\"}],\"parallel_tool_calls\":true,\"temperature\":0.5,\"tool_choice\":"
	    "\"auto\",\"tools\":[],\"top_p\":1.0,\"background\":false,\"max_output_tokens\":1,"
	    "\"max_tool_calls\":null,\"previous_response_id\":null,\"prompt\":null,\"reasoning\":"
	    "null,\"service_tier\":\"auto\",\"status\":\"incomplete\",\"text\":null,"
	    "\"top_logprobs\":null,\"truncation\":\"disabled\",\"usage\":{\"input_tokens\":10,"
	    "\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":1,"
	    "\"output_tokens_details\":{\"reasoning_tokens\":0,\"tool_output_tokens\":0},"
	    "\"total_tokens\":11},\"user\":null}");
	r.finish = "stop";
	render(&b, ig_sim_render_full, &r);
	assert_non_null(strstr(b.ptr, "\"incomplete_details\":null,"));
	assert_non_null(strstr(b.ptr, "\"status\":\"completed\""));

	/* The stream: vLLM's event order, numbered from 0 without gaps. */
	static const char *const words[] = {" a", " b", " c"};
	static const char *const order[] = {
	    "response.created",		  "response.in_progress",
	    "response.output_item.added", "response.content_part.added",
	    "response.output_text.delta", "response.output_text.delta",
	    "response.output_text.delta", "response.output_text.done",
	    "response.content_part.done", "response.output_item.done",
	    "response.completed"};
	struct sse_event ev[16];
	long seq = 0;
	r.finish = NULL;
	ig_buf_reset(&b);
	render_stream(&b, &r, words, 3, &seq);
	size_t n = split_sse(b.ptr, ev, 16);
	assert_int_equal(n, sizeof order / sizeof order[0]);
	assert_int_equal(seq, (long)n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ev[i].name, order[i]);
		check_named(&ev[i]);
		assert_int_equal(member_int(ev[i].data, "sequence_number"), (long)i);
	}
	assert_non_null(strstr(ev[0].data, "\"status\":\"in_progress\""));
	assert_non_null(strstr(ev[0].data, "\"output\":[]"));
	assert_non_null(strstr(ev[0].data, "\"usage\":null"));
	assert_non_null(strstr(ev[5].data, "\"delta\":\" b\""));
	assert_non_null(strstr(ev[7].data, "\"text\":\" a b c\""));
	assert_non_null(strstr(ev[10].data, "\"status\":\"completed\""));
	assert_non_null(strstr(ev[10].data, "\"output_tokens\":3,"));
	assert_non_null(strstr(ev[10].data, "\"text\":\" a b c\""));
	ig_buf_free(&b);
	ig_buf_free(&store);
}

static void test_render_messages(void **state)
{
	struct ig_buf b = {0};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_MESSAGES,
	    .id = IG_STR("msg_1"),
	    .model = IG_STR("m"),
	    .text = IG_STR("Hi \"x\""),
	    .finish = "stop",
	    .prompt_tokens = 12,
	    .completion_tokens = 2,
	};
	render(&b, ig_sim_render_full, &r);
	assert_string_equal(
	    b.ptr, "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
		   "\"content\":[{\"type\":\"text\",\"text\":\"Hi \\\"x\\\"\"}],\"stop_reason\":"
		   "\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
		   "\"output_tokens\":2}}");
	r.finish = "length";
	render(&b, ig_sim_render_full, &r);
	assert_non_null(strstr(b.ptr, "\"stop_reason\":\"max_tokens\""));

	static const char *const words[] = {" a", " b", " c"};
	static const char *const order[] = {
	    "message_start",	   "content_block_start", "ping",
	    "content_block_delta", "content_block_delta", "content_block_delta",
	    "content_block_stop",  "message_delta",	  "message_stop"};
	struct sse_event ev[16];
	long seq = 0;
	r.finish = NULL;
	ig_buf_reset(&b);
	render_stream(&b, &r, words, 3, &seq);
	size_t n = split_sse(b.ptr, ev, 16);
	assert_int_equal(n, sizeof order / sizeof order[0]);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ev[i].name, order[i]);
		check_named(&ev[i]);
	}
	assert_string_equal(
	    ev[0].data, "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":"
			"\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],"
			"\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":"
			"12,\"output_tokens\":0}}}");
	assert_string_equal(ev[4].data, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
					"\"type\":\"text_delta\",\"text\":\" b\"}}");
	assert_string_equal(ev[7].data,
			    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
			    "\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,"
			    "\"output_tokens\":3}}");
	ig_buf_free(&b);
}

/* Completions and chat through ig_sim_render_token: the role chunk first
 * (chat), usage only when asked, [DONE] last. */
static void test_render_token_openai(void **state)
{
	struct ig_buf b = {0};
	struct sse_event ev[8];
	static const char *const words[] = {" a", " b"};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_CHAT, .id = IG_STR("chatcmpl-1"), .model = IG_STR("m")};
	long seq = 0;
	render_stream(&b, &r, words, 2, &seq);
	size_t n = split_sse(b.ptr, ev, 8);
	assert_int_equal(n, 4);
	assert_non_null(strstr(ev[0].data, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"));
	assert_non_null(strstr(ev[2].data, "\"finish_reason\":\"stop\""));
	assert_string_equal(ev[3].data, "[DONE]");
	assert_string_equal(ev[0].name, "");
	r = (struct ig_sim_resp){.kind = IG_SIM_COMPLETION,
				 .id = IG_STR("cmpl-1"),
				 .model = IG_STR("m"),
				 .include_usage = true};
	ig_buf_reset(&b);
	render_stream(&b, &r, words, 2, &seq);
	n = split_sse(b.ptr, ev, 8);
	assert_int_equal(n, 4);
	assert_non_null(strstr(ev[2].data, "\"choices\":[],\"usage\":{\"prompt_tokens\":0,"));
	assert_string_equal(ev[3].data, "[DONE]");
	/* Embeddings are never streamed. */
	r.kind = IG_SIM_EMBEDDINGS;
	assert_int_equal(ig_sim_render_token(&b, &r, &seq), -1);
	ig_buf_free(&b);
}

static void test_render_anthropic_error(void **state)
{
	struct ig_buf b = {0};
	assert_int_equal(ig_sim_render_api_error(&b, IG_SIM_V_LATEST, IG_SIM_MESSAGES, 404,
						 "NotFoundError", "model", "no \"x\""),
			 0);
	assert_string_equal(ig_buf_cstr(&b), "{\"type\":\"error\",\"error\":{\"type\":"
					     "\"not_found_error\",\"message\":\"no \\\"x\\\"\"}}");
	ig_buf_reset(&b);
	/* The other APIs keep vLLM's shape of the configured generation. */
	ig_sim_render_api_error(&b, IG_SIM_V_0_8, IG_SIM_RESPONSES, 404, "NotFoundError", "model",
				"m");
	assert_non_null(strstr(ig_buf_cstr(&b), "{\"object\":\"error\""));
	ig_buf_free(&b);
	static const struct {
		int status;
		const char *type;
	} types[] = {{400, "invalid_request_error"},
		     {401, "authentication_error"},
		     {403, "permission_error"},
		     {404, "not_found_error"},
		     {413, "request_too_large"},
		     {422, "invalid_request_error"},
		     {429, "rate_limit_error"},
		     {500, "api_error"},
		     {503, "api_error"},
		     {529, "overloaded_error"}};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		assert_string_equal(ig_sim_anthropic_error_type(types[i].status), types[i].type);
}

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * (double)b[i];
	return s;
}

static void embed_text(const char *json, uint64_t seed, float *v, size_t dims)
{
	struct ig_json_value one;
	assert_int_equal(ig_json_parse(json, strlen(json), &one), 0);
	assert_int_equal(ig_sim_embedding(one, seed, v, dims), 0);
}

static void test_embeddings(void **state)
{
	enum { D = 64 };
	float a[D], a2[D], b[D], c[D], s[D], ids[D];
	embed_text("\"the city by the bay\"", 0, a, D);
	embed_text("\"the  city by the bay\"", 0, a2, D);
	embed_text("\"the city by the water\"", 0, b, D);
	embed_text("\"quantum chromodynamics lattice\"", 0, c, D);
	embed_text("\"the city by the bay\"", 7, s, D);
	/* Unit length, and a function of the tokens only. */
	assert_true(fabs(dot(a, a, D) - 1) < 1e-5);
	assert_memory_equal(a, a2, sizeof a);
	/* Shared words point the same way; another seed (an adapter) differs. */
	assert_true(dot(a, b, D) > 0.5);
	assert_true(dot(a, b, D) > dot(a, c, D) + 0.3);
	assert_true(fabs(dot(a, s, D)) < 0.9);
	/* Token ids embed like the tokens they are. */
	uint64_t tok[5];
	assert_int_equal(ig_sim_tokenize(IG_STR("the city by the bay"), tok, 5), 5);
	char json[256];
	snprintf(json, sizeof json, "[%lld,%lld,%lld,%lld,%lld]", (long long)tok[0],
		 (long long)tok[1], (long long)tok[2], (long long)tok[3], (long long)tok[4]);
	embed_text(json, 0, ids, D);
	/* Ids past INT64_MAX are written negative and read back as the same bits. */
	assert_memory_equal(a, ids, sizeof a);

	/* Several inputs: one entry each, in order. */
	struct ig_json_value in, one;
	const char *list = "[\"x\",[1,2],\"y\"]";
	size_t pos = 0, k = 0;
	assert_int_equal(ig_json_parse(list, strlen(list), &in), 0);
	while (ig_sim_embed_next(in, &pos, &one) == 1)
		k++;
	assert_int_equal(k, 3);
	pos = 0;
	assert_int_equal(ig_json_parse("[1,2]", 5, &in), 0);
	assert_int_equal(ig_sim_embed_next(in, &pos, &one), 1);
	assert_true(ig_str_eq_cstr(one.raw, "[1,2]"));
	assert_int_equal(ig_sim_embed_next(in, &pos, &one), 0);

	struct ig_buf b64 = {0};
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const coded[] = {"",		"Zg==",	    "Zm8=",    "Zm9v",
					    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		ig_buf_reset(&b64);
		assert_int_equal(ig_sim_base64(&b64, plain[i], strlen(plain[i])), 0);
		assert_non_null(ig_buf_cstr(&b64));
		assert_string_equal(b64.ptr, coded[i]);
	}
	ig_buf_free(&b64);
}

/* Decodes base64 (no checks beyond what the test needs). */
static size_t unbase64(const char *s, size_t len, unsigned char *out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len && s[i] != '='; i++) {
		acc = acc << 6 | (uint32_t)(strchr(alphabet, s[i]) - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

static void test_render_embeddings(void **state)
{
	struct ig_buf b = {0};
	struct ig_sim_resp r = {
	    .kind = IG_SIM_EMBEDDINGS,
	    .id = IG_STR("embd-1"),
	    .created = 3,
	    .model = IG_STR("m"),
	    .prompt_tokens = 5,
	    .completion_tokens = 1,
	    .input = IG_STR("[\"a b\", \"c d e\"]"),
	    .dims = 4,
	};
	render(&b, ig_sim_render_full, &r);
	struct ig_json_value root, data, e0, vec, x;
	assert_int_equal(ig_json_parse(b.ptr, b.len, &root), 0);
	const char *head = "{\"id\":\"embd-1\",\"object\":\"list\",\"created\":3,\"model\":"
			   "\"m\",\"data\":[{\"index\":0,\"object\":\"embedding\",\"embedding\":[";
	assert_int_equal(strncmp(b.ptr, head, strlen(head)), 0);
	assert_non_null(strstr(b.ptr, "},{\"index\":1,\"object\":\"embedding\",\"embedding\":["));
	assert_non_null(strstr(b.ptr, "\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5,"
				      "\"completion_tokens\":0,\"prompt_tokens_details\":null}}"));
	/* The floats are the vector of "a b". */
	float want[4], got[4];
	embed_text("\"a b\"", 0, want, 4);
	assert_int_equal(ig_json_get(root, "data", &data), 0);
	size_t pos = 0, i = 0;
	assert_int_equal(ig_json_array_next(data, &pos, &e0), 1);
	assert_int_equal(ig_json_get(e0, "embedding", &vec), 0);
	pos = 0;
	while (ig_json_array_next(vec, &pos, &x) == 1) {
		double d;
		assert_int_equal(ig_json_double(x, &d), 0);
		got[i++] = (float)d;
	}
	assert_int_equal(i, 4);
	assert_memory_equal(got, want, sizeof want);
	/* base64: the same float32 values, little-endian. */
	r.base64 = true;
	render(&b, ig_sim_render_full, &r);
	assert_int_equal(ig_json_parse(b.ptr, b.len, &root), 0);
	assert_int_equal(ig_json_get(root, "data", &data), 0);
	pos = 0;
	assert_int_equal(ig_json_array_next(data, &pos, &e0), 1);
	assert_int_equal(ig_json_get(e0, "embedding", &vec), 0);
	assert_int_equal(vec.type, IG_JSON_STRING);
	unsigned char bytes[16];
	assert_int_equal(unbase64(vec.raw.ptr + 1, vec.raw.len - 2, bytes), 16);
	for (int d = 0; d < 4; d++) {
		uint32_t u = (uint32_t)bytes[d * 4] | (uint32_t)bytes[d * 4 + 1] << 8 |
			     (uint32_t)bytes[d * 4 + 2] << 16 | (uint32_t)bytes[d * 4 + 3] << 24;
		float f;
		memcpy(&f, &u, sizeof f);
		assert_true(f == want[d]);
	}
	ig_buf_free(&b);
}

/* vLLM refuses `suffix`, and a `priority` other than 0 unless
 * --scheduling-policy priority. */
static void test_request_priority_and_suffix(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	assert_int_equal(
	    parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"suffix\":\"y\"}", &r, &e), -1);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.msg, "suffix is not currently supported");
	ig_sim_request_free(&r);
	assert_int_equal(
	    parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"suffix\":null}", &r, &e), 0);
	ig_sim_request_free(&r);
	static const struct {
		enum ig_sim_kind kind;
		const char *body;
	} with_priority[] = {
	    {IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"priority\":3}"},
	    {IG_SIM_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"priority\":-2}"},
	    {IG_SIM_RESPONSES, "{\"input\":\"x\",\"priority\":1}"},
	    {IG_SIM_EMBEDDINGS, "{\"input\":\"x\",\"priority\":1}"},
	};
	for (size_t i = 0; i < sizeof with_priority / sizeof with_priority[0]; i++) {
		c.priority_policy = false;
		assert_int_equal(
		    parse_req(&c, with_priority[i].kind, with_priority[i].body, &r, &e), -1);
		assert_int_equal(e.status, 400);
		assert_non_null(strstr(e.msg, "but Priority scheduling is not enabled."));
		ig_sim_request_free(&r);
		c.priority_policy = true;
		assert_int_equal(
		    parse_req(&c, with_priority[i].kind, with_priority[i].body, &r, &e), 0);
		assert_true(r.priority != 0);
		ig_sim_request_free(&r);
	}
	c.priority_policy = false;
	assert_int_equal(
	    parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"priority\":0}", &r, &e), 0);
	ig_sim_request_free(&r);
	assert_int_equal(
	    parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"priority\":\"1\"}", &r, &e), -1);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
	/* The flag takes vLLM's two choices. */
	char err[256];
	const char *ok[] = {"--scheduling-policy", "priority", NULL};
	assert_int_equal(parse(&c, err, ok), 0);
	assert_true(c.priority_policy);
	ig_sim_config_free(&c);
	const char *bad[] = {"--scheduling-policy", "lifo", NULL};
	assert_int_equal(parse(&c, err, bad), -1);
	ig_sim_config_free(&c);
	(void)state;
}

/* `stop` decoded to NUL-separated strings; stop_reason rendered as the
 * string that ended the answer. */
static void test_request_stop(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION,
				   "{\"prompt\":\"x\",\"stop\":[\"a\\nb\",\"\\u00e9\"],"
				   "\"include_stop_str_in_output\":true}",
				   &r, &e),
			 0);
	assert_int_equal(r.nstop, 2);
	assert_true(r.include_stop);
	assert_int_equal(r.stop.len, 7);
	assert_memory_equal(r.stop.ptr, "a\nb\0\xc3\xa9", 7);
	ig_sim_request_free(&r);
	assert_int_equal(
	    parse_req(&c, IG_SIM_CHAT,
		      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":\"end\"}", &r,
		      &e),
	    0);
	assert_int_equal(r.nstop, 1);
	ig_sim_request_free(&r);
	assert_int_equal(
	    parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"x\",\"stop\":[\"\"]}", &r, &e), -1);
	assert_string_equal(e.msg, "stop cannot contain an empty string.");
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);

	struct ig_buf b = {0};
	struct ig_sim_resp resp = {.kind = IG_SIM_COMPLETION,
				   .id = IG_STR("cmpl-1"),
				   .model = IG_STR("m"),
				   .text = IG_STR(" a"),
				   .finish = "stop",
				   .stop_reason = IG_STR("b\"c")};
	assert_int_equal(ig_sim_render_full(&b, &resp), 0);
	assert_non_null(
	    strstr(ig_buf_cstr(&b), "\"finish_reason\":\"stop\",\"stop_reason\":\"b\\\"c\""));
	ig_buf_reset(&b);
	resp.kind = IG_SIM_MESSAGES;
	resp.id = IG_STR("msg_1");
	assert_int_equal(ig_sim_render_full(&b, &resp), 0);
	assert_non_null(strstr(ig_buf_cstr(&b),
			       "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"b\\\"c\""));
	ig_buf_free(&b);
	(void)state;
}

/* prompt_logprobs, logit_bias and truncate_prompt_tokens as the request
 * reads them: truncation keeps the last ids, the prompt_logprobs value
 * lists the kept tokens. */
static void test_request_prompt_extras(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, "{\"prompt\":\"a b c d\"}", &r, &e), 0);
	assert_int_equal(r.prompt_lp, -1);
	assert_int_equal(r.prompt_lp_json.len, 0);
	uint64_t all[4];
	assert_int_equal(ig_sim_request_nids(&r), 4);
	memcpy(all, r.ids.ptr, sizeof all);
	ig_sim_request_free(&r);
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION,
				   "{\"prompt\":\"a b c d\",\"truncate_prompt_tokens\":2,"
				   "\"prompt_logprobs\":0,\"logit_bias\":{\" 5 \":1,\"+6\":-1}}",
				   &r, &e),
			 0);
	assert_int_equal(r.prompt_tokens, 2);
	assert_int_equal(ig_sim_request_nids(&r), 2);
	assert_memory_equal(r.ids.ptr, all + 2, 2 * sizeof(uint64_t));
	char want[256];
	snprintf(want, sizeof want, "[null,{\"%u\":", ig_sim_vocab_id(all[3]));
	assert_true(r.prompt_lp_json.len > strlen(want));
	assert_memory_equal(r.prompt_lp_json.ptr, want, strlen(want));
	assert_non_null(
	    memmem(r.prompt_lp_json.ptr, r.prompt_lp_json.len, "\"decoded_token\":\" d\"}}]", 23));
	ig_sim_request_free(&r);
	static const struct {
		const char *body, *msg;
	} bad[] = {
	    {"{\"prompt\":\"x\",\"logit_bias\":[1]}",
	     "'logit_bias' must be an object of token ids to numbers."},
	    {"{\"prompt\":\"x\",\"logit_bias\":{\"1\":\"a\"}}",
	     "'logit_bias' values must be numbers."},
	    {"{\"prompt\":\"x\",\"logit_bias\":{\"\":1}}",
	     "Found token_id `` in logit_bias but token_id must be an integer or string "
	     "representing an integer"},
	    {"{\"prompt\":\"x\",\"logit_bias\":{\"1.5\":1}}",
	     "Found token_id `1.5` in logit_bias but token_id must be an integer or string "
	     "representing an integer"},
	    {"{\"prompt\":\"x\",\"logit_bias\":{\"151935\":1,\"151936\":1,\"-2\":1}}",
	     "token_id(s) [151936, -2] in logit_bias contain out-of-vocab token ids. Vocabulary "
	     "size: 151936"},
	    {"{\"prompt\":\"x\",\"truncate_prompt_tokens\":\"three\"}",
	     "'truncate_prompt_tokens' must be an integer."},
	    {"{\"prompt\":\"x\",\"prompt_logprobs\":2,\"stream\":true}",
	     "`prompt_logprobs` are not available when `stream=True`."},
	    {"{\"prompt\":\"x\",\"prompt_logprobs\":-1}",
	     "Requested prompt logprobs of 151936, which is greater than max allowed: 20"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, bad[i].body, &r, &e), -1);
		assert_int_equal(e.status, 400);
		assert_string_equal(e.msg, bad[i].msg);
		ig_sim_request_free(&r);
	}
	/* Streaming with prompt_logprobs 0 asks for nothing: accepted. */
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION,
				   "{\"prompt\":\"x\",\"prompt_logprobs\":0,\"stream\":true}", &r,
				   &e),
			 0);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
	(void)state;
}

/* A `prompt` listing several: each parse reads the one asked for, its
 * own tokens and ids; nprompts says how many. */
static void test_request_prompt_list(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r;
	struct ig_sim_error e;
	request_config(&c);
	const char *body = "{\"prompt\":[\"a b\",\"c d e\"],\"n\":2}";
	assert_int_equal(
	    ig_sim_parse_request_at(&c, IG_SIM_COMPLETION, body, strlen(body), 1, &r, &e), 0);
	assert_int_equal(r.nprompts, 2);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.prompt_tokens, 3);
	assert_true(ig_str_eq_cstr(r.prompt_key, "\"c d e\""));
	uint64_t want[3];
	ig_sim_tokenize(IG_STR("c d e"), want, 3);
	assert_memory_equal(r.ids.ptr, want, sizeof want);
	ig_sim_request_free(&r);
	const char *ids = "{\"prompt\":[[1,2],[3]]}";
	assert_int_equal(
	    ig_sim_parse_request_at(&c, IG_SIM_COMPLETION, ids, strlen(ids), 1, &r, &e), 0);
	assert_int_equal(r.nprompts, 2);
	assert_int_equal(r.prompt_tokens, 1);
	ig_sim_request_free(&r);
	/* One list of ids is one prompt. */
	const char *one = "{\"prompt\":[1,2,3]}";
	assert_int_equal(parse_req(&c, IG_SIM_COMPLETION, one, &r, &e), 0);
	assert_int_equal(r.nprompts, 1);
	assert_int_equal(r.prompt_tokens, 3);
	ig_sim_request_free(&r);
	ig_sim_config_free(&c);
	(void)state;
}

/* ---- /tokenize and /detokenize ---- */

static int tokenize(const struct ig_sim_config *c, const char *body, struct ig_sim_request *r,
		    struct ig_buf *texts, bool *strs, struct ig_sim_error *e)
{
	memset(r, 0, sizeof *r);
	r->texts = texts;
	return ig_sim_parse_tokenize(c, body, strlen(body), r, strs, e);
}

static void test_tokenize(void **state)
{
	struct ig_sim_config c;
	struct ig_sim_request r, chat;
	struct ig_sim_error e;
	struct ig_buf texts = {0}, out = {0};
	bool strs;
	struct ig_sim_vocab *v = ig_sim_vocab_new();
	assert_non_null(v);
	request_config(&c);

	/* A prompt: the tokenizer's count and ids folded into the vocabulary,
	 * no context check (a prompt past max_model_len is still listed). */
	const char *p =
	    "{\"model\":\"a1\",\"prompt\":\"Hi, there  you\",\"return_token_strs\":true}";
	assert_int_equal(tokenize(&c, p, &r, &texts, &strs, &e), 0);
	assert_true(strs);
	assert_true(r.adapter);
	uint64_t want[4];
	assert_int_equal(ig_sim_tokenize(IG_STR("Hi, there  you"), want, 4), 4);
	assert_int_equal(ig_sim_tokenize_answer(&c, v, &r, &texts, strs, &out), 0);
	char expect[256];
	snprintf(expect, sizeof expect,
		 "{\"count\":4,\"max_model_len\":64,\"tokens\":[%u,%u,%u,%u],"
		 "\"token_strs\":[\"Hi\",\",\",\" there\",\"  you\"]}",
		 ig_sim_vocab_id(want[0]), ig_sim_vocab_id(want[1]), ig_sim_vocab_id(want[2]),
		 ig_sim_vocab_id(want[3]));
	assert_string_equal(ig_buf_cstr(&out), expect);
	ig_sim_request_free(&r);

	/* /detokenize gives back what /tokenize listed; an id it did not
	 * list is one of the generator's words. */
	char body[256];
	snprintf(body, sizeof body, "{\"tokens\":[%u,%u,%u,%u,7]}", ig_sim_vocab_id(want[0]),
		 ig_sim_vocab_id(want[1]), ig_sim_vocab_id(want[2]), ig_sim_vocab_id(want[3]));
	assert_int_equal(ig_sim_parse_detokenize(&c, body, strlen(body), &r, &e), 0);
	out.len = 0;
	assert_int_equal(ig_sim_detokenize_answer(v, &r, &out), 0);
	snprintf(expect, sizeof expect, "{\"prompt\":\"Hi, there  you%s\"}", ig_sim_word(7));
	assert_string_equal(ig_buf_cstr(&out), expect);
	ig_sim_request_free(&r);

	/* Messages count as a chat completion counts them; without the
	 * reply's opening, three fewer. token_strs is null unless asked. */
	const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"a b\"}]";
	snprintf(body, sizeof body, "{%s}", msgs);
	texts.len = 0;
	assert_int_equal(tokenize(&c, body, &r, &texts, &strs, &e), 0);
	assert_false(strs);
	assert_int_equal(parse_req(&c, IG_SIM_CHAT, body, &chat, &e), 0);
	assert_int_equal(ig_sim_request_nids(&r), (size_t)chat.prompt_tokens);
	assert_memory_equal(r.ids.ptr, chat.ids.ptr, chat.ids.len);
	out.len = 0;
	assert_int_equal(ig_sim_tokenize_answer(&c, v, &r, &texts, strs, &out), 0);
	assert_non_null(strstr(ig_buf_cstr(&out), "\"token_strs\":null}"));
	ig_sim_request_free(&chat);
	ig_sim_request_free(&r);
	snprintf(body, sizeof body, "{%s,\"add_generation_prompt\":false}", msgs);
	assert_int_equal(tokenize(&c, body, &r, &texts, &strs, &e), 0);
	assert_int_equal(r.prompt_tokens, 2 + IG_SIM_CHAT_MSG_OVERHEAD);
	ig_sim_request_free(&r);

	/* Refusals. */
	static const struct {
		const char *body;
		int status;
		const char *msg;
	} bad[] = {
	    {"{}", 400, "'prompt' or 'messages'"},
	    {"{\"prompt\":[1,2]}", 400, "'prompt' must be a string"},
	    {"{\"prompt\":\"x\",\"model\":\"nope\"}", 404, "The model `nope` does not exist."},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"continue_final_message\":"
	     "true}",
	     400, "Cannot set both"},
	    {"{\"messages\":[]}", 400, "non-empty list"},
	    {"[1]", 400, "not a JSON object"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(tokenize(&c, bad[i].body, &r, &texts, &strs, &e), -1);
		assert_int_equal(e.status, bad[i].status);
		assert_non_null(strstr(e.msg, bad[i].msg));
		ig_sim_request_free(&r);
	}
	static const char *const bad_ids[] = {"{\"tokens\":[151936]}", "{\"tokens\":[-1]}",
					      "{\"tokens\":[1.5]}", "{\"tokens\":\"1\"}", "{}"};
	for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
		assert_int_equal(
		    ig_sim_parse_detokenize(&c, bad_ids[i], strlen(bad_ids[i]), &r, &e), -1);
		assert_int_equal(e.status, 400);
		ig_sim_request_free(&r);
	}
	ig_sim_vocab_free(v);
	ig_buf_free(&texts);
	ig_buf_free(&out);
	ig_sim_config_free(&c);
	(void)state;
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
	    cmocka_unit_test(test_render_token_ids),
	    cmocka_unit_test(test_render_chat),
	    cmocka_unit_test(test_py_float),
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
	    cmocka_unit_test(test_token_spans),
	    cmocka_unit_test(test_tokenize),
	    cmocka_unit_test(test_request_priority_and_suffix),
	    cmocka_unit_test(test_request_stop),
	    cmocka_unit_test(test_request_prompt_list),
	    cmocka_unit_test(test_request_prompt_extras),
	    cmocka_unit_test(test_request_chat),
	    cmocka_unit_test(test_structured_text),
	    cmocka_unit_test(test_request_tool_choice),
	    cmocka_unit_test(test_request_errors),
	    cmocka_unit_test(test_request_long_prompt),
	    cmocka_unit_test(test_request_responses),
	    cmocka_unit_test(test_request_messages),
	    cmocka_unit_test(test_request_embeddings),
	    cmocka_unit_test(test_request_new_api_errors),
	    cmocka_unit_test(test_render_responses),
	    cmocka_unit_test(test_render_messages),
	    cmocka_unit_test(test_render_token_openai),
	    cmocka_unit_test(test_render_anthropic_error),
	    cmocka_unit_test(test_embeddings),
	    cmocka_unit_test(test_render_embeddings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
