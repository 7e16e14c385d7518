/* Unit tests for `infergate bench`: percentiles on known arrays, goodput
 * and error counting, the workload generators (length distributions,
 * shared-prefix grouping, weighted splits), arrival gaps, the SSE splitter
 * and chunk reader, and the shape of the JSON, CSV and SVG reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <limits.h>
#include <math.h>

#include "bench/bench.h"
#include "http/sse.h"
#include "json/json.h"
#include "sim/sim.h"

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

/* ---- statistics ---- */

static void test_percentile_linear(void **state)
{
	const double a[] = {1, 2, 3, 4};
	NEAR(ig_bench_percentile(a, 4, 0), 1, 1e-12);
	NEAR(ig_bench_percentile(a, 4, 50), 2.5, 1e-12);
	NEAR(ig_bench_percentile(a, 4, 90), 3.7, 1e-12);
	NEAR(ig_bench_percentile(a, 4, 100), 4, 1e-12);
	const double b[] = {15, 20, 35, 40, 50};
	NEAR(ig_bench_percentile(b, 5, 40), 29, 1e-12);
	NEAR(ig_bench_percentile(b, 5, 50), 35, 1e-12);
	NEAR(ig_bench_percentile(b, 5, 99), 49.6, 1e-9);
	const double one[] = {7};
	NEAR(ig_bench_percentile(one, 1, 99), 7, 0);
	assert_true(isnan(ig_bench_percentile(a, 0, 50)));
}

static void test_percentile_hundred_values(void **state)
{
	/* 1..100: h = 99 p / 100, so p90 = 90.1 and p99 = 99.01. */
	double v[100];
	for (int i = 0; i < 100; i++)
		v[i] = 100 - i; /* reversed: dist_of must sort */
	struct ig_bench_dist d;
	ig_bench_dist_of(v, 100, &d);
	assert_int_equal(d.n, 100);
	NEAR(d.mean, 50.5, 1e-12);
	NEAR(d.min, 1, 0);
	NEAR(d.max, 100, 0);
	NEAR(d.p50, 50.5, 1e-12);
	NEAR(d.p90, 90.1, 1e-9);
	NEAR(d.p95, 95.05, 1e-9);
	NEAR(d.p99, 99.01, 1e-9);
	ig_bench_dist_of(v, 0, &d);
	assert_int_equal(d.n, 0);
}

static struct ig_bench_sample ok_sample(double ttft, double e2e, int64_t out)
{
	struct ig_bench_sample s = {
	    .status = 200, .ttft_ms = ttft, .e2e_ms = e2e, .out_tokens = out, .in_tokens = 10};
	s.tpot_ms = out > 1 ? (e2e - ttft) / (double)(out - 1) : NAN;
	return s;
}

static void test_goodput_and_errors(void **state)
{
	struct ig_bench_sample s[6] = {
	    ok_sample(100, 1000, 10), /* tpot 100: meets all */
	    ok_sample(300, 1000, 10), /* ttft too slow */
	    ok_sample(100, 2000, 10), /* tpot 211 too slow */
	    ok_sample(150, 150, 1),   /* one token: tpot does not apply */
	    {.status = 503, .error = "503"}, {.status = 0, .error = "connect"},
	};
	struct ig_bench_slo slo;
	assert_int_equal(ig_bench_parse_slo("ttft=200ms,tpot=0.15s", &slo), 0);
	NEAR(slo.ttft_ms, 200, 0);
	NEAR(slo.tpot_ms, 150, 1e-9);
	NEAR(slo.e2e_ms, 0, 0);
	struct ig_bench_stage_result r;
	assert_int_equal(ig_bench_summarise(s, 6, 2.0, &slo, &r), 0);
	assert_int_equal(r.sent, 6);
	assert_int_equal(r.ok, 4);
	assert_int_equal(r.failed, 2);
	assert_int_equal(r.good, 2);
	NEAR(r.good_frac, 2.0 / 6.0, 1e-12);
	NEAR(r.good_rps, 1.0, 1e-12);
	NEAR(r.rps, 2.0, 1e-12);
	assert_int_equal(r.out_tokens, 31);
	NEAR(r.out_tps, 15.5, 1e-12);
	assert_int_equal(r.ttft.n, 4); /* errors are not latencies */
	assert_int_equal(r.tpot.n, 3); /* nor is a one-token answer a TPOT */
	NEAR(r.ttft.p50, 125, 1e-12);
	assert_int_equal(r.errors.n, 2);
	assert_string_equal(r.errors.e[0].kind, "503");
	assert_int_equal(r.errors.e[1].count, 1);
}

static void test_slo_parse_errors(void **state)
{
	struct ig_bench_slo slo;
	assert_int_equal(ig_bench_parse_slo("ttft=2s,tpot=100ms,e2e=10s", &slo), 0);
	NEAR(slo.e2e_ms, 10000, 0);
	assert_int_equal(ig_bench_parse_slo("ttft=abc", &slo), -1);
	assert_int_equal(ig_bench_parse_slo("latency=1s", &slo), -1);
	assert_int_equal(ig_bench_parse_slo("ttft=0s", &slo), -1);
	assert_int_equal(ig_bench_parse_slo("", &slo), -1);
	double ms;
	assert_int_equal(ig_bench_parse_duration("1.5", &ms), 0);
	NEAR(ms, 1500, 0);
	assert_int_equal(ig_bench_parse_duration("2m", &ms), 0);
	NEAR(ms, 120000, 0);
	assert_int_equal(ig_bench_parse_duration("5 s", &ms), -1);
	assert_int_equal(ig_bench_parse_duration("-1s", &ms), -1);
}

static void test_error_kinds_overflow(void **state)
{
	struct ig_bench_errors e = {0};
	char kind[16];
	size_t total = 0;
	for (int i = 0; i < 40; i++) {
		snprintf(kind, sizeof kind, "k%d", i);
		ig_bench_errors_add(&e, kind);
		ig_bench_errors_add(&e, kind);
		total += 2;
	}
	assert_int_equal(e.n, IG_BENCH_MAX_ERROR_KINDS);
	size_t sum = 0;
	for (size_t i = 0; i < e.n; i++)
		sum += e.e[i].count;
	assert_int_equal(sum, total);
	assert_string_equal(e.e[IG_BENCH_MAX_ERROR_KINDS - 1].kind, "other");
}

/* ---- workloads ---- */

static void test_length_fixed_and_uniform(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 1);
	struct ig_bench_len l;
	assert_int_equal(ig_bench_parse_len("20", &l), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ig_bench_len_sample(&l, &rng), 20);
	assert_int_equal(ig_bench_parse_len("5-9", &l), 0);
	int seen[10] = {0};
	double sum = 0;
	for (int i = 0; i < 50000; i++) {
		long v = ig_bench_len_sample(&l, &rng);
		assert_true(v >= 5 && v <= 9);
		seen[v]++;
		sum += (double)v;
	}
	for (int v = 5; v <= 9; v++)
		NEAR(seen[v], 10000, 400);
	NEAR(sum / 50000, 7, 0.05);
	assert_int_equal(ig_bench_parse_len("abc", &l), -1);
	assert_int_equal(ig_bench_parse_len("9-5", &l), -1);
	assert_int_equal(ig_bench_parse_len("1.5", &l), -1);
	assert_int_equal(ig_bench_parse_len("10:", &l), -1);
}

static void test_length_normal(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 2);
	struct ig_bench_len l;
	assert_int_equal(ig_bench_parse_len("200:20", &l), 0);
	double sum = 0, sq = 0;
	const int n = 50000;
	for (int i = 0; i < n; i++) {
		double v = (double)ig_bench_len_sample(&l, &rng);
		sum += v;
		sq += v * v;
	}
	double mean = sum / n, sd = sqrt(sq / n - mean * mean);
	NEAR(mean, 200, 0.5);
	NEAR(sd, 20, 0.5);
	/* A wide spread around a small mean is clamped, never below one. */
	assert_int_equal(ig_bench_parse_len("1:5", &l), 0);
	for (int i = 0; i < 1000; i++)
		assert_true(ig_bench_len_sample(&l, &rng) >= 1);
}

static size_t count_tokens(const struct ig_buf *b)
{
	return ig_sim_count_tokens(ig_buf_str(b));
}

static void test_random_workload_token_counts(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 3);
	struct ig_bench_workload w = {.kind = IG_WL_RANDOM};
	assert_int_equal(ig_bench_parse_len("10-40", &w.input), 0);
	assert_int_equal(ig_bench_parse_len("7", &w.output), 0);
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	struct ig_bench_prompt p = {0};
	for (int i = 0; i < 200; i++) {
		assert_int_equal(ig_bench_workload_next(&w, &rng, &p), 0);
		assert_true(p.in_tokens >= 10 && p.in_tokens <= 40);
		/* One word is one token for the simulator's tokenizer. */
		assert_int_equal(count_tokens(&p.user), (size_t)p.in_tokens);
		assert_int_equal(p.system.len, 0);
		assert_int_equal(p.out_tokens, 7);
		assert_int_equal(p.group, -1);
	}
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_workload_free(&w);
}

static void test_shared_prefix_grouping(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 4);
	struct ig_bench_workload w = {.kind = IG_WL_SHARED_PREFIX,
				      .groups = 3,
				      .per_group = 4,
				      .system_len = 10,
				      .question_len = 5};
	assert_int_equal(ig_bench_parse_len("16", &w.output), 0);
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	for (long g = 0; g < 3; g++) {
		assert_int_equal(count_tokens(&w.systems[g]), 10);
		for (long h = 0; h < g; h++)
			assert_false(
			    ig_str_eq(ig_buf_str(&w.systems[g]), ig_buf_str(&w.systems[h])));
	}
	struct ig_bench_prompt p = {0};
	int per_group[3] = {0};
	char *first_q[3] = {0};
	bool distinct_q[3] = {0};
	for (int i = 0; i < 3000; i++) {
		assert_int_equal(ig_bench_workload_next(&w, &rng, &p), 0);
		assert_true(p.group >= 0 && p.group < 3);
		per_group[p.group]++;
		/* Every prompt of a group carries that group's system prompt. */
		assert_true(ig_str_eq(ig_buf_str(&p.system), ig_buf_str(&w.systems[p.group])));
		assert_int_equal(count_tokens(&p.user), 5);
		assert_int_equal(p.in_tokens, 15);
		const char *q = ig_buf_cstr(&p.user);
		if (!first_q[p.group])
			first_q[p.group] = strdup(q);
		else if (strcmp(first_q[p.group], q) != 0)
			distinct_q[p.group] = true;
	}
	for (int g = 0; g < 3; g++) {
		NEAR(per_group[g], 1000, 120);
		assert_true(distinct_q[g]); /* several questions per group */
		free(first_q[g]);
	}
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_workload_free(&w);
}

/* ---- agentic sessions ---- */

static struct ig_bench_workload agentic(long sessions, long turns, long system_len,
					const char *turn_len, const char *out_len, bool chat)
{
	struct ig_bench_workload w = {.kind = IG_WL_AGENTIC,
				      .chat = chat,
				      .groups = 2,
				      .system_len = system_len,
				      .sessions = sessions,
				      .turns = turns};
	assert_int_equal(ig_bench_parse_len(turn_len, &w.turn), 0);
	assert_int_equal(ig_bench_parse_len(out_len, &w.output), 0);
	return w;
}

/* What the test remembers of a session between its turns. */
struct seen {
	char id[24];
	char *json;
	long turn, tokens, out;
};

static struct seen *seen_find(struct seen *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0)
			return &v[i];
	return NULL;
}

static void test_agentic_prompt_growth(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 5);
	struct ig_bench_workload w = agentic(3, 4, 10, "5", "1-3", false);
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	struct ig_bench_agent a;
	assert_int_equal(ig_bench_agent_init(&a, &w, &rng), 0);
	/* Slot i starts i * turns / sessions turns in: 0, 1, 2. */
	for (long i = 0; i < 3; i++)
		assert_int_equal(a.slots[i].turn, i * 4 / 3);
	struct ig_bench_prompt p = {0};
	struct seen seen[64] = {0};
	size_t nseen = 0, sessions_ended = 0;
	for (int n = 0; n < 60; n++) {
		assert_int_equal(ig_bench_agent_next(&a, &rng, &p), 0);
		/* Sessions take turns: request n belongs to slot n mod 3. */
		assert_string_equal(p.session, a.slots[n % 3].id);
		assert_int_equal(p.json.len, a.slots[n % 3].json.len);
		struct ig_str sys = ig_buf_str(&w.systems[p.group]);
		/* Every prompt opens with its group's system prompt ... */
		assert_true(p.json.len > sys.len && memcmp(p.json.ptr, sys.ptr, sys.len) == 0);
		/* ... and counts its tokens exactly, one word one token. */
		assert_int_equal(ig_sim_count_tokens(p.json), (size_t)p.in_tokens);
		assert_true(p.out_tokens >= 1 && p.out_tokens <= 3);
		assert_true(p.turn >= 0 && p.turn < 4);
		struct seen *s = seen_find(seen, nseen, p.session);
		if (s) {
			/* The next turn extends the previous prompt by the previous
			 * answer (its max_tokens words) and five new words. */
			assert_int_equal(p.turn, s->turn + 1);
			assert_int_equal(p.in_tokens, s->tokens + s->out + 5);
			size_t old = strlen(s->json);
			assert_true(p.json.len > old + 1 && memcmp(p.json.ptr, s->json, old) == 0);
			assert_int_equal(p.json.ptr[old], ' ');
			free(s->json);
		} else {
			assert_true(nseen < 64);
			s = &seen[nseen++];
			snprintf(s->id, sizeof s->id, "%s", p.session);
			/* A session seen first at turn t > 0 is one of the
			 * staggered first ones. */
			if (p.turn > 0)
				assert_true(n < 3);
			else
				assert_int_equal(p.in_tokens, 10 + 5);
		}
		if (p.turn == 3)
			sessions_ended++;
		s->json = strndup(p.json.ptr, p.json.len);
		s->turn = p.turn;
		s->tokens = p.in_tokens;
		s->out = p.out_tokens;
	}
	/* 60 requests of 4-turn sessions in 3 slots: each slot ran 20 turns. */
	assert_true(sessions_ended >= 13 && nseen >= 15);
	for (size_t i = 0; i < nseen; i++) {
		free(seen[i].json);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(seen[i].id, seen[j].id);
	}
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_agent_free(&a);
	ig_bench_workload_free(&w);
}

/* Chat: the conversation is a list of messages, system first, then user
 * and assistant turns alternating, each turn appending to the list. */
static void test_agentic_chat_messages(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 6);
	struct ig_bench_workload w = agentic(1, 3, 7, "4", "2", true);
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	struct ig_bench_agent a;
	assert_int_equal(ig_bench_agent_init(&a, &w, &rng), 0);
	struct ig_bench_prompt p = {0};
	struct ig_buf doc = {0}, text = {0};
	char *prev = NULL;
	for (int n = 0; n < 6; n++) {
		assert_int_equal(ig_bench_agent_next(&a, &rng, &p), 0);
		assert_int_equal(p.turn, n % 3);
		ig_buf_reset(&doc);
		assert_int_equal(ig_buf_append_cstr(&doc, "["), 0);
		assert_int_equal(ig_buf_append_str(&doc, p.json), 0);
		assert_int_equal(ig_buf_append_cstr(&doc, "]"), 0);
		struct ig_json_value root, m, v;
		assert_int_equal(ig_json_parse(doc.ptr, doc.len, &root), 0);
		size_t pos = 0, i = 0;
		long tokens = 0;
		/* system, user, then (assistant, user) per later turn */
		static const char *const roles[] = {"system", "user",	   "assistant",
						    "user",   "assistant", "user"};
		static const long words[] = {7, 4, 2, 4, 2, 4};
		while (ig_json_array_next(root, &pos, &m) == 1) {
			assert_true(i < 2 + 2 * (size_t)p.turn);
			assert_int_equal(ig_json_get(m, "role", &v), 0);
			assert_true(ig_json_string_eq(v, roles[i]));
			assert_int_equal(ig_json_get(m, "content", &v), 0);
			ig_buf_reset(&text);
			assert_int_equal(ig_json_string(v, &text), 0);
			assert_int_equal(count_tokens(&text), words[i]);
			tokens += words[i++];
		}
		assert_int_equal(i, 2 + 2 * (size_t)p.turn);
		assert_int_equal(p.in_tokens, tokens);
		if (p.turn > 0) {
			size_t old = strlen(prev);
			assert_true(memcmp(p.json.ptr, prev, old) == 0);
			assert_int_equal(p.json.ptr[old], ',');
		}
		free(prev);
		prev = strndup(p.json.ptr, p.json.len);
	}
	free(prev);
	ig_buf_free(&doc);
	ig_buf_free(&text);
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_agent_free(&a);
	ig_bench_workload_free(&w);
}

/* A hash of n requests: session ids, turns, token counts and texts. */
static uint64_t agentic_run(uint64_t seed, int n)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, seed);
	struct ig_bench_workload w = agentic(4, 5, 20, "3-9", "1-4", false);
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	struct ig_bench_agent a;
	assert_int_equal(ig_bench_agent_init(&a, &w, &rng), 0);
	struct ig_bench_prompt p = {0};
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < n; i++) {
		assert_int_equal(ig_bench_agent_next(&a, &rng, &p), 0);
		uint64_t parts[] = {ig_sim_token_id(p.session), (uint64_t)p.turn,
				    (uint64_t)p.in_tokens, (uint64_t)p.out_tokens,
				    ig_sim_text_seed(p.json, (struct ig_str){0}, 0)};
		for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
			h = (h ^ parts[k]) * 1099511628211ull;
	}
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_agent_free(&a);
	ig_bench_workload_free(&w);
	return h;
}

static void test_agentic_seed_determinism(void **state)
{
	assert_true(agentic_run(7, 50) == agentic_run(7, 50));
	assert_true(agentic_run(7, 50) != agentic_run(8, 50));
	assert_true(agentic_run(7, 50) != agentic_run(7, 51));
}

/* The sizes `make bench-longprompt` sends: a 75,000-word system prompt and
 * 10 turns of 5,000 words; prompts from 80k to 125k tokens, ~100k on
 * average, of about 5 bytes a token. */
static void test_agentic_long_prompt_sizes(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 9);
	struct ig_bench_workload w = agentic(32, 10, 75000, "5000", "10", false);
	w.groups = 1;
	assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
	struct ig_bench_agent a;
	assert_int_equal(ig_bench_agent_init(&a, &w, &rng), 0);
	struct ig_bench_prompt p = {0};
	double tokens = 0, bytes = 0;
	long lo = LONG_MAX, hi = 0;
	for (int n = 0; n < 320; n++) {
		assert_int_equal(ig_bench_agent_next(&a, &rng, &p), 0);
		/* turn t: 75000 + 5000 (t + 1) + 10 t */
		assert_int_equal(p.in_tokens, 75000 + 5000 * (p.turn + 1) + 10 * p.turn);
		tokens += (double)p.in_tokens;
		bytes += (double)p.json.len;
		lo = p.in_tokens < lo ? p.in_tokens : lo;
		hi = p.in_tokens > hi ? p.in_tokens : hi;
	}
	assert_int_equal(lo, 80000);
	assert_int_equal(hi, 125090);
	/* Every turn is sent equally often, from the first request on. */
	NEAR(tokens / 320, 102545, 1);
	double per_token = bytes / tokens;
	assert_true(per_token > 4.5 && per_token < 5.7);
	ig_buf_free(&p.system);
	ig_buf_free(&p.user);
	ig_bench_agent_free(&a);
	ig_bench_workload_free(&w);
}

/* Drawn turn lengths: each turn adds the previous answer and a draw from
 * --turn-len, within its bounds, around its mean; a session's first prompt
 * is its system prompt and one draw. Sizes follow the request, so a 100K
 * average asked is about 100K sent. */
static void test_agentic_drawn_turn_lengths(void **state)
{
	static const char *const lens[] = {"200-400", "300:50"};
	for (size_t k = 0; k < 2; k++) {
		struct ig_rng rng;
		ig_rng_seed(&rng, 11 + k);
		struct ig_bench_workload w = agentic(8, 6, 1000, lens[k], "2-6", false);
		w.groups = 1;
		assert_int_equal(ig_bench_workload_init(&w, &rng), 0);
		struct ig_bench_agent a;
		assert_int_equal(ig_bench_agent_init(&a, &w, &rng), 0);
		struct ig_bench_prompt p = {0};
		long prev_tokens[8] = {0}, prev_out[8] = {0}, prev_turn[8];
		for (int i = 0; i < 8; i++)
			prev_turn[i] = -1;
		double added = 0, lo = 1e9, hi = 0;
		int n_added = 0;
		for (int n = 0; n < 800; n++) {
			assert_int_equal(ig_bench_agent_next(&a, &rng, &p), 0);
			int slot = n % 8;
			assert_int_equal(ig_sim_count_tokens(p.json), (size_t)p.in_tokens);
			assert_true(p.out_tokens >= 2 && p.out_tokens <= 6);
			long turn_words;
			if (p.turn == prev_turn[slot] + 1 && prev_turn[slot] >= 0)
				turn_words = p.in_tokens - prev_tokens[slot] - prev_out[slot];
			else if (p.turn == 0)
				turn_words = p.in_tokens - 1000;
			else
				turn_words = -1; /* a staggered first turn: several draws */
			if (turn_words >= 0) {
				added += (double)turn_words;
				n_added++;
				lo = turn_words < lo ? (double)turn_words : lo;
				hi = turn_words > hi ? (double)turn_words : hi;
			}
			prev_turn[slot] = p.turn;
			prev_tokens[slot] = p.in_tokens;
			prev_out[slot] = p.out_tokens;
		}
		assert_true(n_added >= 790);
		if (k == 0) {
			assert_true(lo >= 200 && hi <= 400);
			/* 800 uniform draws: both ends of the range are reached
			 * closely. */
			assert_true(lo < 210 && hi > 390);
		} else {
			assert_true(lo >= 1);
			assert_true(lo < 250 && hi > 350); /* a spread of about 50 */
		}
		NEAR(added / n_added, 300, 8);
		ig_buf_free(&p.system);
		ig_buf_free(&p.user);
		ig_bench_agent_free(&a);
		ig_bench_workload_free(&w);
	}
}

static void test_weighted_split(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 5);
	struct ig_bench_choices c;
	assert_int_equal(
	    ig_bench_parse_choices("tweet-summary-0:50,tweet-summary-1:30,base:20,off:0", &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.name[1], "tweet-summary-1");
	size_t count[4] = {0};
	const int n = 100000;
	for (int i = 0; i < n; i++)
		count[ig_bench_pick(&c, &rng)]++;
	NEAR(count[0], 50000, 700);
	NEAR(count[1], 30000, 700);
	NEAR(count[2], 20000, 700);
	assert_int_equal(count[3], 0);
	ig_bench_choices_free(&c);
	assert_int_equal(ig_bench_parse_choices("a:x", &c), -1);
	assert_int_equal(ig_bench_parse_choices("a:0", &c), -1);
	assert_int_equal(ig_bench_parse_choices(":5", &c), -1);
	assert_int_equal(ig_bench_parse_choices("solo", &c), 0);
	assert_int_equal(ig_bench_pick(&c, &rng), 0);
	ig_bench_choices_free(&c);
}

/* ---- arrivals ---- */

static void test_poisson_mean_rate(void **state)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 6);
	const int n = 200000;
	double sum = 0, sq = 0;
	for (int i = 0; i < n; i++) {
		double g = ig_bench_next_gap(IG_LOAD_POISSON, 8.0, &rng);
		assert_true(g >= 0);
		sum += g;
		sq += g * g;
	}
	double mean = sum / n, var = sq / n - mean * mean;
	NEAR(n / sum, 8.0, 0.08);
	/* Exponential gaps: the standard deviation equals the mean. */
	NEAR(sqrt(var) / mean, 1.0, 0.02);
	NEAR(ig_bench_next_gap(IG_LOAD_CONSTANT, 8.0, &rng), 0.125, 1e-15);
	assert_true(isinf(ig_bench_next_gap(IG_LOAD_CONSTANT, 0, &rng)));
}

/* ---- SSE and chunks ---- */

struct collected {
	char data[8][128];
	int n;
};

static int collect(void *ud, const char *data, size_t len)
{
	struct collected *c = ud;
	if (c->n >= 8 || len >= 128)
		return 1;
	memcpy(c->data[c->n], data, len);
	c->data[c->n++][len] = '\0';
	return 0;
}

/* The splitter as run.c sets it up (http/sse.h, strict), with the chunk
 * reader behind it; every cut of the stream reads the same. */
static void test_sse_any_cut(void **state)
{
	static const char stream[] =
	    "data: {\"a\":1}\n\n: comment\nevent: x\r\ndata:{\"b\":2}\r\n\r\n"
	    "data: [DONE]\n\n";
	size_t len = sizeof stream - 1;
	for (size_t cut = 0; cut <= len; cut++) {
		struct ig_sse s;
		struct collected c = {0};
		ig_sse_init(&s, 64, IG_SSE_STRICT);
		assert_int_equal(ig_sse_feed(&s, stream, cut, collect, &c), 0);
		assert_int_equal(ig_sse_feed(&s, stream + cut, len - cut, collect, &c), 0);
		assert_int_equal(c.n, 3);
		assert_string_equal(c.data[0], "{\"a\":1}");
		assert_string_equal(c.data[1], "{\"b\":2}");
		assert_string_equal(c.data[2], "[DONE]");
		struct ig_bench_chunk ch;
		assert_int_equal(ig_bench_chunk_parse(c.data[2], strlen(c.data[2]), &ch), 0);
		assert_true(ch.done);
		ig_sse_free(&s);
	}
	struct ig_sse s;
	struct collected c = {0};
	ig_sse_init(&s, 16, IG_SSE_STRICT);
	assert_true(ig_sse_feed(&s, "data: 0123456789abcdefghij\n", 27, collect, &c) < 0);
	assert_int_equal(c.n, 0);
	ig_sse_free(&s);
}

static void test_chunk_parse(void **state)
{
	struct ig_bench_chunk ch;
	const char *cmpl = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\" Giants\","
			   "\"finish_reason\":null}],\"usage\":null}";
	assert_int_equal(ig_bench_chunk_parse(cmpl, strlen(cmpl), &ch), 0);
	assert_int_equal(ch.content, 7);
	assert_int_equal(ch.completion_tokens, -1);
	const char *role = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
			   "\"content\":\"\"}}]}";
	assert_int_equal(ig_bench_chunk_parse(role, strlen(role), &ch), 0);
	assert_int_equal(ch.content, 0);
	const char *delta = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}";
	assert_int_equal(ig_bench_chunk_parse(delta, strlen(delta), &ch), 0);
	assert_int_equal(ch.content, 2);
	const char *usage = "{\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
			    "\"total_tokens\":110,\"completion_tokens\":100}}";
	assert_int_equal(ig_bench_chunk_parse(usage, strlen(usage), &ch), 0);
	assert_int_equal(ch.completion_tokens, 100);
	assert_int_equal(ch.prompt_tokens, 10);
	assert_int_equal(ch.content, 0);
	assert_int_equal(ig_bench_chunk_parse("[DONE]", 6, &ch), 0);
	assert_true(ch.done);
	const char *err = "{\"error\": {\"object\": \"error\", \"message\": \"x\", \"code\": 400}}";
	assert_int_equal(ig_bench_chunk_parse(err, strlen(err), &ch), 0);
	assert_true(ch.error);
	assert_int_equal(ig_bench_chunk_parse("{\"a\":", 5, &ch), -1);
	const char *whole =
	    "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hi!\"}}],"
	    "\"usage\":{\"completion_tokens\":3}}";
	assert_int_equal(ig_bench_response_parse(whole, strlen(whole), &ch), 0);
	assert_int_equal(ch.content, 3);
	assert_int_equal(ch.completion_tokens, 3);
}

/* Reasoning and tool calls are output: a reasoning model streams its
 * thoughts before any content, and a tool call carries no content. */
static void test_chunk_reasoning_and_tool_calls(void **state)
{
	struct ig_bench_chunk ch;
	const char *rc = "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}";
	assert_int_equal(ig_bench_chunk_parse(rc, strlen(rc), &ch), 0);
	assert_int_equal(ch.content, 3);
	const char *r = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":null,"
			"\"reasoning\":\"so\"}}]}";
	assert_int_equal(ig_bench_chunk_parse(r, strlen(r), &ch), 0);
	assert_int_equal(ch.content, 2);
	const char *tc = "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
			 "\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}";
	assert_int_equal(ig_bench_chunk_parse(tc, strlen(tc), &ch), 0);
	assert_int_equal(ch.content, 9);
	const char *name = "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
			   "\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get\","
			   "\"arguments\":\"\"}}]}}]}";
	assert_int_equal(ig_bench_chunk_parse(name, strlen(name), &ch), 0);
	assert_int_equal(ch.content, 3);
	const char *role = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
			   "\"content\":null,\"tool_calls\":[]}}]}";
	assert_int_equal(ig_bench_chunk_parse(role, strlen(role), &ch), 0);
	assert_int_equal(ch.content, 0);
	const char *whole = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
			    "\"reasoning_content\":\"ab\",\"tool_calls\":[{\"id\":\"c\","
			    "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}";
	assert_int_equal(ig_bench_response_parse(whole, strlen(whole), &ch), 0);
	assert_int_equal(ch.content, 5);
	const char *none = "{\"id\":\"x\",\"object\":\"text_completion\"}";
	assert_int_equal(ig_bench_response_parse(none, strlen(none), &ch), 0);
	assert_int_equal(ch.content, 0);
}

/* ---- the gateway's access log ---- */

#define GW_LINE(id, st, ep, q, ttft, dur, att, reason)                                             \
	"{\"time\":\"2025-01-02T03:04:05.678Z\",\"request_id\":\"" id "\",\"client\":"             \
	"\"127.0.0.1:5555\",\"method\":\"POST\",\"path\":\"/v1/completions\",\"status\":" st       \
	",\"model\":\"m\",\"target_model\":\"m\",\"pool\":\"p\",\"endpoint\":\"" ep                \
	"\",\"queue_ms\":" q ",\"ttft_ms\":" ttft ",\"duration_ms\":" dur                          \
	",\"prompt_tokens\":3,\"completion_tokens\":4,\"bytes_in\":50,\"bytes_out\":90,"           \
	"\"attempts\":" att ",\"reason\":\"" reason "\"}"

static void test_alog_parse(void **state)
{
	char id[32];
	struct ig_bench_gw_rec g;
	const char *ok =
	    GW_LINE("bench-ab-7", "200", "10.0.0.1:8000", "1.250", "30.500", "90.125", "1", "");
	assert_int_equal(ig_bench_alog_parse(ok, strlen(ok), id, sizeof id, &g), 0);
	assert_string_equal(id, "bench-ab-7");
	assert_int_equal(g.status, 200);
	assert_int_equal(g.attempts, 1);
	assert_string_equal(g.endpoint, "10.0.0.1:8000");
	NEAR(g.queue_ms, 1.25, 1e-9);
	NEAR(g.ttft_ms, 30.5, 1e-9);
	NEAR(g.duration_ms, 90.125, 1e-9);
	assert_string_equal(g.reason, "");
	/* No pod answered: ttft null; an escaped reason is decoded and cut. */
	const char *none = GW_LINE("x\\u0041", "503", "", "0.000", "null", "2.000", "3",
				   "no endpoint: \\\"p\\\" has none ready, waited 1000 ms in the "
				   "flow-control queue for a free slot and gave up");
	assert_int_equal(ig_bench_alog_parse(none, strlen(none), id, sizeof id, &g), 0);
	assert_string_equal(id, "xA");
	assert_true(isnan(g.ttft_ms));
	assert_int_equal(g.attempts, 3);
	assert_int_equal(strlen(g.reason), sizeof g.reason - 1);
	assert_true(strncmp(g.reason, "no endpoint: \"p\" has", 20) == 0);
	/* The text format is told apart from garbage. */
	const char *text = "time=2025-01-02T03:04:05.678Z request_id=a status=200";
	assert_int_equal(ig_bench_alog_parse(text, strlen(text), id, sizeof id, &g), 1);
	const char *bad[] = {
	    "",
	    "{",
	    "[1,2]",
	    "{\"request_id\":\"a\"}",
	    "{\"request_id\":1,\"status\":200,\"queue_ms\":0,\"ttft_ms\":null,"
	    "\"duration_ms\":1,\"attempts\":1}",
	    "{\"request_id\":\"a\",\"status\":200,\"queue_ms\":\"0\",\"ttft_ms\":null,"
	    "\"duration_ms\":1,\"attempts\":1}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(ig_bench_alog_parse(bad[i], strlen(bad[i]), id, sizeof id, &g),
				 -1);
}

static void test_alog_join(void **state)
{
	struct ig_bench_join j;
	assert_int_equal(ig_bench_join_init(&j, "r1", 4), 0);
	char log[4096];
	int n = snprintf(
	    log, sizeof log, "%s\n%s\n%s\n%s\n%s\n%s\r\n%s\n%s\n%s",
	    GW_LINE("bench-r1-0", "200", "a:1", "0.5", "10.0", "40.0", "1", ""),
	    GW_LINE("someone-else", "200", "a:1", "0.5", "10.0", "40.0", "1", ""),
	    GW_LINE("bench-r2-1", "200", "a:1", "0.5", "10.0", "40.0", "1", ""), /* other run */
	    GW_LINE("bench-r1-9", "200", "a:1", "0.5", "10.0", "40.0", "1", ""), /* past n_ids */
	    "not json at all",
	    GW_LINE("bench-r1-2", "429", "", "0.0", "null", "1.0", "1", "too many"),
	    GW_LINE("bench-r1-0", "200", "b:1", "0.5", "10.0", "40.0", "1", ""), /* again */
	    GW_LINE("bench-r1-01x", "200", "a:1", "0.5", "10.0", "40.0", "1", ""),
	    GW_LINE("bench-r1-1", "200", "b:1", "2.0", "20.0", "60.0", "2", ""));
	assert_true(n > 0 && (size_t)n < sizeof log);
	/* The last line has no newline yet: it is left for the next read. */
	size_t used = ig_bench_join_feed(&j, log, (size_t)n);
	assert_int_equal(used, (size_t)(strrchr(log, '\n') - log) + 1);
	assert_true(j.rec[0].seen && j.rec[2].seen);
	assert_false(j.rec[1].seen || j.rec[3].seen);
	assert_string_equal(j.rec[0].endpoint, "a:1"); /* the first line of an id wins */
	assert_int_equal(j.rec[2].status, 429);
	assert_int_equal(j.other, 4);
	assert_int_equal(j.bad, 1);
	assert_int_equal(j.duplicates, 1);
	assert_int_equal(j.text, 0);
	char rest[1024];
	int m = snprintf(rest, sizeof rest, "%s\n", log + used);
	assert_int_equal(ig_bench_join_feed(&j, rest, (size_t)m), (size_t)m);
	assert_true(j.rec[1].seen);
	assert_int_equal(j.rec[1].attempts, 2);
	const char *text = "time=2025-01-02T03:04:05.678Z request_id=bench-r1-3\n";
	ig_bench_join_feed(&j, text, strlen(text));
	assert_int_equal(j.text, 1);
	assert_false(j.rec[3].seen);

	/* The per-stage summary: ids 0-2 matched (2 failed at the gateway and
	 * the client), 3 not in the log. */
	struct ig_bench_sample s[4] = {ok_sample(12, 45, 5),
				       ok_sample(25, 61, 5),
				       {.status = 429, .error = "429", .ttft_ms = NAN},
				       ok_sample(9, 9, 1)};
	for (uint64_t i = 0; i < 4; i++)
		s[i].id = i;
	struct ig_bench_gw_stages g;
	assert_int_equal(ig_bench_gw_summarise(&j, s, 4, &g), 0);
	assert_int_equal(g.matched, 3);
	assert_int_equal(g.unmatched, 1);
	assert_int_equal(g.retried, 1);
	assert_int_equal(g.queue.n, 2); /* successes only */
	NEAR(g.queue.max, 2.0, 1e-9);
	NEAR(g.gw_ttft.min, 10.0, 1e-9);
	NEAR(g.ttft_delta.min, 2.0, 1e-9); /* 12 - 10 */
	NEAR(g.ttft_delta.max, 5.0, 1e-9); /* 25 - 20 */
	NEAR(g.e2e_delta.min, 1.0, 1e-9);  /* 61 - 60 */
	NEAR(g.e2e_delta.max, 5.0, 1e-9);  /* 45 - 40 */
	NEAR(g.gw_e2e.p50, 50.0, 1e-9);
	assert_int_equal(g.endpoints.n, 2);
	assert_string_equal(g.endpoints.e[0].name, "a:1");
	assert_int_equal(g.reasons.n, 1);
	assert_string_equal(g.reasons.e[0].name, "too many");
	ig_bench_join_free(&j);
	assert_int_equal(
	    ig_bench_join_init(&j, "a-very-long-run-id-that-does-not-fit-the-prefix", 1), -1);
}

/* ---- reports ---- */

static struct ig_bench_stage_result stages_a[2], stages_b[2];
static struct ig_bench_target_result targets[2];

static struct ig_bench_report sample_report(void)
{
	for (int i = 0; i < 2; i++) {
		struct ig_bench_sample s[3] = {ok_sample(50 + i, 240, 20),
					       ok_sample(60, 250, 20),
					       {.status = 429, .error = "429"}};
		ig_bench_summarise(s, 3, 1.0, &(struct ig_bench_slo){.ttft_ms = 55}, &stages_a[i]);
		stages_a[i].offered = 5.0 * (i + 1);
		stages_b[i] = stages_a[i];
		stages_b[i].ttft.p50 *= 2;
	}
	stages_b[1].ttft.n = 0; /* a stage without any success */
	targets[0] = (struct ig_bench_target_result){"base", "http://127.0.0.1:1", 2, stages_a};
	targets[1] =
	    (struct ig_bench_target_result){"gw <x>,\"q\"", "http://127.0.0.1:2", 2, stages_b};
	return (struct ig_bench_report){.load = "constant",
					.api = "completions",
					.stream = true,
					.slo = {.ttft_ms = 55},
					.n_targets = 2,
					.targets = targets};
}

static char *render(int (*fn)(FILE *, const struct ig_bench_report *), size_t *len)
{
	struct ig_bench_report r = sample_report();
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	assert_non_null(f);
	assert_int_equal(fn(f, &r), 0);
	fclose(f);
	return buf;
}

static void test_json_report_shape(void **state)
{
	size_t len;
	char *text = render(ig_bench_write_json, &len);
	struct ig_json_value root, v, arr, t, stages, st, lat, ttft;
	assert_int_equal(ig_json_parse(text, len, &root), 0);
	assert_int_equal(ig_json_get(root, "percentile_method", &v), 0);
	assert_true(ig_json_string_eq(v, "linear"));
	assert_int_equal(ig_json_get(root, "targets", &arr), 0);
	size_t pos = 0, n = 0;
	while (ig_json_array_next(arr, &pos, &t) == 1) {
		n++;
		assert_int_equal(ig_json_get(t, "stages", &stages), 0);
		size_t sp = 0;
		assert_int_equal(ig_json_array_next(stages, &sp, &st), 1);
		int64_t x;
		assert_int_equal(ig_json_get(st, "sent", &v), 0);
		assert_int_equal(ig_json_int64(v, &x), 0);
		assert_int_equal(x, 3);
		assert_int_equal(ig_json_get(st, "errors", &v), 0);
		assert_int_equal(ig_json_get(v, "429", &v), 0);
		assert_int_equal(ig_json_get(st, "latency_ms", &lat), 0);
		assert_int_equal(ig_json_get(lat, "ttft", &ttft), 0);
		assert_int_equal(ig_json_get(ttft, "p50", &v), 0);
		assert_int_equal(v.type, IG_JSON_NUMBER);
	}
	assert_int_equal(n, 2);
	/* The second target's second stage has no TTFT samples: null, not NaN. */
	assert_non_null(strstr(text, "\"ttft\":{\"n\":0,\"mean\":null"));
	free(text);
}

static size_t fields(const char *line, size_t len)
{
	size_t n = 1;
	bool quoted = false;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '"')
			quoted = !quoted;
		else if (line[i] == ',' && !quoted)
			n++;
	}
	return n;
}

static void test_csv_report_shape(void **state)
{
	size_t len;
	char *text = render(ig_bench_write_csv, &len);
	size_t lines = 0, cols = 0;
	for (char *p = text; *p;) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);
		size_t f = fields(p, (size_t)(nl - p));
		if (lines == 0)
			cols = f;
		else
			assert_int_equal(f, cols);
		lines++;
		p = nl + 1;
	}
	assert_int_equal(lines, 1 + 4); /* header, 2 targets x 2 stages */
	/* 17 counts and rates, 5 distributions of 8 columns (n, mean, min,
	 * p50, p90, p95, p99, max), itl_dropped and errors */
	assert_int_equal(cols, 17 + 5 * 8 + 2);
	assert_non_null(strstr(text, ",ttft_n,ttft_mean_ms,ttft_min_ms,ttft_p50_ms,"));
	assert_non_null(strstr(text, ",input_tokens,output_tokens,"));
	assert_non_null(strstr(text, "\"gw <x>,\"\"q\"\"\",1,5,"));
	free(text);
}

/* With --access-log: a per_stage object in JSON, the same columns on every
 * CSV row (empty for a stage without them), a block in the table. */
static void test_reports_with_access_log(void **state)
{
	struct ig_bench_report r = sample_report();
	r.access_log = true;
	struct ig_bench_gw_stages g = {.matched = 2, .unmatched = 1, .retried = 1};
	double q[] = {0.5, 1.5};
	ig_bench_dist_of(q, 2, &g.queue);
	ig_bench_tally_add(&g.endpoints, "10.0.0.1:8000");
	ig_bench_tally_add(&g.reasons, "upstream reset, retried");
	stages_a[0].gw = &g;
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(ig_bench_write_json(f, &r), 0);
	fclose(f);
	struct ig_json_value root, v, ps, lat;
	assert_int_equal(ig_json_parse(buf, len, &root), 0);
	const char *p = strstr(buf, "\"per_stage\":");
	assert_non_null(p);
	assert_null(strstr(p + 1, "\"per_stage\":")); /* only the stage that has one */
	assert_int_equal(ig_json_parse_value(p + 12, len - (size_t)(p + 12 - buf), &ps), 0);
	int64_t x;
	assert_int_equal(ig_json_get(ps, "matched", &v), 0);
	assert_int_equal(ig_json_int64(v, &x), 0);
	assert_int_equal(x, 2);
	assert_int_equal(ig_json_get(ps, "latency_ms", &lat), 0);
	assert_int_equal(ig_json_get(lat, "queue", &v), 0);
	assert_int_equal(ig_json_get(v, "p50", &v), 0);
	double d;
	assert_int_equal(ig_json_double(v, &d), 0);
	NEAR(d, 1.0, 1e-9);
	assert_int_equal(ig_json_get(lat, "client_minus_gateway_ttft", &v), 0);
	assert_int_equal(ig_json_get(ps, "reasons", &v), 0);
	assert_int_equal(ig_json_get(v, "upstream reset, retried", &v), 0);
	free(buf);

	f = open_memstream(&buf, &len);
	assert_int_equal(ig_bench_write_csv(f, &r), 0);
	fclose(f);
	size_t lines = 0, cols = 0;
	for (char *c = buf; *c;) {
		char *nl = strchr(c, '\n');
		size_t n = fields(c, (size_t)(nl - c));
		if (lines++ == 0)
			cols = n;
		else
			assert_int_equal(n, cols);
		c = nl + 1;
	}
	assert_int_equal(cols, 17 + 5 * 8 + 2 + 3 + 5 * 8 + 2);
	assert_non_null(strstr(buf, ",gw_matched,gw_unmatched,gw_retried,queue_n,queue_mean_ms,"));
	assert_non_null(strstr(buf, ",2,1,1,2,1,0.5,1,"));
	assert_non_null(strstr(buf, "10.0.0.1:8000=1,\"upstream reset, retried=1\"\n"));
	free(buf);

	f = open_memstream(&buf, &len);
	ig_bench_print_table(f, &r);
	fclose(f);
	assert_non_null(strstr(buf, "per-stage (gateway access log): matched 2, unmatched 1"));
	assert_non_null(strstr(buf, "\"upstream reset, retried\"=1"));
	free(buf);
	stages_a[0].gw = NULL;
}

static void test_svg_report_shape(void **state)
{
	size_t len;
	char *text = render(ig_bench_write_svg, &len);
	assert_true(strncmp(text, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
	assert_true(len > 7 && strcmp(text + len - 7, "</svg>\n") == 0);
	size_t lines = 0;
	for (const char *p = text; (p = strstr(p, "<polyline")); p++)
		lines++;
	assert_int_equal(lines, 2 * 3); /* TTFT p50, p90, tokens/s per target */
	assert_non_null(strstr(text, "gw &lt;x&gt;,&quot;q&quot;"));
	assert_null(strstr(text, "<x>"));
	assert_non_null(strstr(text, "offered load (requests/s)"));
	assert_non_null(strstr(text, "TTFT (ms)"));
	assert_null(strstr(text, "nan"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_percentile_linear),
	    cmocka_unit_test(test_percentile_hundred_values),
	    cmocka_unit_test(test_goodput_and_errors),
	    cmocka_unit_test(test_slo_parse_errors),
	    cmocka_unit_test(test_error_kinds_overflow),
	    cmocka_unit_test(test_length_fixed_and_uniform),
	    cmocka_unit_test(test_length_normal),
	    cmocka_unit_test(test_random_workload_token_counts),
	    cmocka_unit_test(test_shared_prefix_grouping),
	    cmocka_unit_test(test_agentic_prompt_growth),
	    cmocka_unit_test(test_agentic_chat_messages),
	    cmocka_unit_test(test_agentic_seed_determinism),
	    cmocka_unit_test(test_agentic_long_prompt_sizes),
	    cmocka_unit_test(test_agentic_drawn_turn_lengths),
	    cmocka_unit_test(test_weighted_split),
	    cmocka_unit_test(test_poisson_mean_rate),
	    cmocka_unit_test(test_sse_any_cut),
	    cmocka_unit_test(test_chunk_parse),
	    cmocka_unit_test(test_chunk_reasoning_and_tool_calls),
	    cmocka_unit_test(test_alog_parse),
	    cmocka_unit_test(test_alog_join),
	    cmocka_unit_test(test_json_report_shape),
	    cmocka_unit_test(test_csv_report_shape),
	    cmocka_unit_test(test_reports_with_access_log),
	    cmocka_unit_test(test_svg_report_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
