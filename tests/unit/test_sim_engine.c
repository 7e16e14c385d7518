/* The simulator's engine model (src/sim/model.c) driven by a fake clock:
 * batching bounds, chunked prefill, step costs, prefix caching, KV
 * accounting, preemption and LoRA slots, without sockets or timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/model.h"

#define MS 1000000ull

struct tseq {
	struct ig_sim_seq seq; /* first: the callbacks cast back */
	uint64_t hashes[4096];
	uint64_t arrival, first_token, done_at;
	long tokens;
	long gone_after; /* report the consumer gone at this token (0: never) */
	bool released, gone;
};

struct harness {
	struct ig_sim_config cfg;
	struct ig_sim_model m;
	uint64_t now;
	long max_running;	   /* the largest batch seen */
	long max_running_adapters; /* the most distinct adapters running at once */
};

static int on_token(void *ctx, struct ig_sim_seq *q)
{
	struct harness *h = ctx;
	struct tseq *t = (struct tseq *)q;
	if (++t->tokens == 1)
		t->first_token = h->now;
	assert_int_equal(t->tokens, q->generated);
	return t->gone_after && t->tokens >= t->gone_after ? -1 : 0;
}

static void on_release(void *ctx, struct ig_sim_seq *q, bool gone)
{
	struct harness *h = ctx;
	struct tseq *t = (struct tseq *)q;
	assert_false(t->released);
	t->released = true;
	t->gone = gone;
	t->done_at = h->now;
}

static const struct ig_sim_model_ops ops = {on_token, on_release};

/* Round numbers so that expected times are easy to write down. */
static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof *h);
	ig_sim_config_init(&h->cfg);
	h->cfg.ttft_ms = 10;
	h->cfg.prefill_us_per_token = 100;
	h->cfg.itl_ms = 2;
	h->cfg.decode_us_per_seq = 500;
	h->cfg.lora_load_ms = 50;
	h->cfg.num_gpu_blocks = 1000;
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;
	ig_sim_model_free(&h->m);
	ig_sim_config_free(&h->cfg);
	free(h);
	return 0;
}

static void start(struct harness *h)
{
	assert_int_equal(ig_sim_model_init(&h->m, &h->cfg, &ops, h), 0);
}

/* A prompt of n tokens whose ids are base, base+1, ...; its block keys. */
static struct tseq *new_seq(struct harness *h, long n, long base, long target, const char *adapter)
{
	struct tseq *t = calloc(1, sizeof *t);
	uint64_t *ids = calloc((size_t)n + 1, sizeof *ids);
	for (long i = 0; i < n; i++)
		ids[i] = (uint64_t)(base + i);
	t->seq.prompt_tokens = n;
	t->seq.target = target;
	t->seq.adapter = adapter;
	t->seq.nhashes = ig_sim_block_hashes(ids, (size_t)n, h->cfg.block_size, 0, t->hashes);
	t->seq.hashes = t->hashes;
	free(ids);
	return t;
}

static void add(struct harness *h, struct tseq *t)
{
	t->arrival = h->now;
	ig_sim_model_add(&h->m, &t->seq);
}

/* Runs one step on the fake clock; false when the engine is idle. */
static bool step(struct harness *h, uint64_t *dur_out)
{
	uint64_t dur;
	if (!ig_sim_model_begin(&h->m, h->now, &dur))
		return false;
	if (h->m.running.len > h->max_running)
		h->max_running = h->m.running.len;
	struct ig_buf b = {0};
	ig_sim_model_adapters(&h->m.running, &b);
	long n = b.len ? 1 : 0;
	for (size_t i = 0; i < b.len; i++)
		n += b.ptr[i] == ',';
	if (n > h->max_running_adapters)
		h->max_running_adapters = n;
	ig_buf_free(&b);
	h->now += dur;
	if (dur_out)
		*dur_out = dur;
	ig_sim_model_end(&h->m);
	return true;
}

static void run(struct harness *h)
{
	for (int i = 0; i < 100000 && step(h, NULL); i++)
		;
	assert_false(step(h, NULL));
}

static uint64_t ttft(const struct tseq *t)
{
	return t->first_token - t->arrival;
}

static void test_prefix_cache_shortens_ttft(void **state)
{
	struct harness *h = *state;
	start(h);
	struct tseq *a = new_seq(h, 1000, 7, 4, NULL), *b = new_seq(h, 1000, 7, 4, NULL);
	add(h, a);
	run(h);
	/* A cold prompt: one prefill step of 10 ms + 1000 x 0.1 ms. */
	assert_int_equal(ttft(a), 110 * MS);
	assert_true(a->released && !a->gone && a->tokens == 4);
	add(h, b);
	run(h);
	/* 62 full blocks (992 tokens) come from the cache: 8 left to compute. */
	assert_int_equal(h->m.prefix_hits, 992);
	assert_int_equal(h->m.prefix_queries, 2000);
	assert_int_equal(b->seq.cached_tokens, 992);
	assert_int_equal(ttft(b), 10 * MS + 8 * 100000);
	assert_true(ttft(b) * 5 < ttft(a));
	/* A different first token changes every key down the chain. */
	struct tseq *c = new_seq(h, 1000, 8, 1, NULL);
	for (size_t i = 0; i < c->seq.nhashes; i++)
		assert_true(c->hashes[i] != a->hashes[i]);
	add(h, c);
	run(h);
	assert_int_equal(c->seq.cached_tokens, 0);
	assert_int_equal(ttft(c), 110 * MS);
	free(a);
	free(b);
	free(c);
}

static void test_no_prefix_caching(void **state)
{
	struct harness *h = *state;
	h->cfg.enable_prefix_caching = false;
	start(h);
	struct tseq *a = new_seq(h, 1000, 7, 2, NULL), *b = new_seq(h, 1000, 7, 2, NULL);
	add(h, a);
	run(h);
	add(h, b);
	run(h);
	assert_int_equal(ttft(b), ttft(a));
	assert_int_equal(h->m.prefix_hits, 0);
	free(a);
	free(b);
}

static void test_prefix_needs_whole_blocks(void **state)
{
	struct harness *h = *state;
	start(h);
	/* Same first 40 tokens: two full blocks in common, the third differs. */
	struct tseq *a = new_seq(h, 48, 100, 1, NULL);
	struct tseq *b = new_seq(h, 48, 100, 1, NULL);
	b->hashes[2] ^= 1;
	add(h, a);
	run(h);
	add(h, b);
	run(h);
	assert_int_equal(b->seq.cached_tokens, 32);
	/* An adapter's keys differ from the base model's (seeded by name). */
	uint64_t ids[16] = {0}, k0, k1;
	ig_sim_block_hashes(ids, 16, 16, 0, &k0);
	ig_sim_block_hashes(ids, 16, 16, 42, &k1);
	assert_true(k0 != k1);
	assert_int_equal(ig_sim_block_hashes(ids, 15, 16, 0, &k0), 0);
	free(a);
	free(b);
}

/* --scheduling-policy priority: the waiting queue in priority order (lower
 * first), ties in arrival order; fcfs keeps arrival order whatever the
 * priorities. One request runs at a time, so the order of the first
 * tokens is the queue's. */
static void check_priority_order(struct harness *h, bool policy, const int *want)
{
	static const long prio[5] = {0, 5, -1, 5, 0};
	h->cfg.max_num_seqs = 1;
	h->cfg.priority_policy = policy;
	start(h);
	struct tseq *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = new_seq(h, 10, 1000 * i, 1, NULL);
		t[i]->seq.priority = prio[i];
		add(h, t[i]);
	}
	assert_int_equal(h->m.waiting.len, 5);
	run(h);
	for (int k = 0; k + 1 < 5; k++)
		assert_true(t[want[k]]->first_token < t[want[k + 1]]->first_token);
	for (int i = 0; i < 5; i++)
		free(t[i]);
}

static void test_priority_policy(void **state)
{
	static const int by_priority[5] = {2, 0, 4, 1, 3};
	check_priority_order(*state, true, by_priority);
}

static void test_fcfs_ignores_priority(void **state)
{
	static const int by_arrival[5] = {0, 1, 2, 3, 4};
	check_priority_order(*state, false, by_arrival);
}

static void test_batch_bound_and_step_cost(void **state)
{
	struct harness *h = *state;
	h->cfg.max_num_seqs = 2;
	start(h);
	struct tseq *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = new_seq(h, 10, 1000 * i, 3, NULL);
		add(h, t[i]);
	}
	uint64_t dur;
	assert_true(step(h, &dur));
	assert_int_equal(h->m.running.len, 2);
	assert_int_equal(h->m.waiting.len, 3);
	/* Two 10-token prompts in one prefill step. */
	assert_int_equal(dur, 10 * MS + 20 * 100000);
	assert_true(step(h, &dur));
	/* Two decoding requests: 2 ms + 0.5 ms for the second. */
	assert_int_equal(dur, 2 * MS + 500000);
	run(h);
	assert_int_equal(h->max_running, 2);
	for (int i = 0; i < 5; i++)
		assert_true(t[i]->released && t[i]->tokens == 3);
	/* The first two ran together; the others queued behind them. */
	assert_int_equal(ttft(t[0]), ttft(t[1]));
	assert_true(ttft(t[2]) > ttft(t[1]));
	for (int i = 0; i < 5; i++)
		free(t[i]);
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 0);
}

static void test_chunked_prefill(void **state)
{
	struct harness *h = *state;
	h->cfg.max_num_batched_tokens = 256;
	start(h);
	struct tseq *a = new_seq(h, 1000, 1, 2, NULL);
	add(h, a);
	int steps = 0;
	while (a->tokens == 0 && step(h, NULL))
		steps++;
	/* 256 + 256 + 256 + 232 tokens, each step paying its overhead. */
	assert_int_equal(steps, 4);
	assert_int_equal(ttft(a), 4 * 10 * MS + 1000 * 100000);
	/* A newcomer shares the budget with the decoding request. */
	struct tseq *b = new_seq(h, 300, 5000, 1, NULL);
	add(h, b);
	uint64_t dur;
	assert_true(step(h, &dur));
	assert_int_equal(b->seq.computed, 255);
	assert_int_equal(dur, 2 * MS + 10 * MS + 255 * 100000);
	run(h);
	free(a);
	free(b);
}

static void test_kv_usage_tracks_blocks(void **state)
{
	struct harness *h = *state;
	start(h);
	struct tseq *a = new_seq(h, 20, 1, 20, NULL);
	add(h, a);
	assert_true(step(h, NULL));
	/* 20 prompt tokens in two blocks of 16. */
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 2);
	for (int i = 0; i < 12; i++)
		assert_true(step(h, NULL));
	/* 32 tokens (20 + 12 decoded, the last not yet computed): still 2. */
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 2);
	assert_true(step(h, NULL));
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 3);
	run(h);
	/* Freed blocks count as free even while they stay cached. */
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 0);
	assert_true(ig_sim_model_fits(&h->m, 1000 * 16 - 10, 10));
	assert_false(ig_sim_model_fits(&h->m, 1000 * 16, 1));
	free(a);
}

static void test_waits_when_cache_full_and_preempts(void **state)
{
	struct harness *h = *state;
	h->cfg.num_gpu_blocks = 4;
	h->cfg.block_size = 4;
	start(h);
	/* Each needs 3 blocks by its end; the cache holds 4. */
	struct tseq *a = new_seq(h, 4, 1, 8, NULL), *b = new_seq(h, 4, 100, 8, NULL);
	add(h, a);
	add(h, b);
	assert_true(step(h, NULL));
	assert_int_equal(h->m.running.len, 2);
	run(h);
	assert_true(h->m.preemptions >= 1);
	assert_true(a->released && b->released);
	assert_int_equal(a->tokens, 8);
	assert_int_equal(b->tokens, 8);
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 0);
	free(a);
	free(b);

	/* A cache full of running work keeps a newcomer waiting. */
	struct tseq *c = new_seq(h, 14, 1, 2, NULL), *d = new_seq(h, 8, 500, 1, NULL);
	add(h, c);
	assert_true(step(h, NULL));
	add(h, d);
	assert_true(step(h, NULL));
	assert_int_equal(h->m.waiting.len, 1);
	assert_false(d->seq.running);
	run(h);
	assert_true(c->released && d->released);
	free(c);
	free(d);
}

static void test_lora_slots(void **state)
{
	struct harness *h = *state;
	h->cfg.max_loras = 1;
	start(h);
	struct tseq *a1 = new_seq(h, 10, 1, 4, "a"), *a2 = new_seq(h, 10, 1, 4, "a");
	struct tseq *b = new_seq(h, 10, 1, 4, "b"), *base = new_seq(h, 10, 1, 4, NULL);
	add(h, a1);
	add(h, b);
	add(h, a2);
	add(h, base);
	uint64_t dur;
	assert_true(step(h, &dur));
	/* b waits for the slot; a2 and the base model join past it. */
	struct ig_buf run_ad = {0}, wait_ad = {0};
	ig_sim_model_adapters(&h->m.running, &run_ad);
	ig_sim_model_adapters(&h->m.waiting, &wait_ad);
	assert_string_equal(ig_buf_cstr(&run_ad), "a");
	assert_string_equal(ig_buf_cstr(&wait_ad), "b");
	assert_int_equal(h->m.running.len, 3);
	/* Loading "a" cost 50 ms on top of the prefill of 30 tokens. */
	assert_int_equal(dur, 50 * MS + 10 * MS + 30 * 100000);
	run(h);
	assert_int_equal(h->max_running_adapters, 1);
	assert_true(b->released && b->tokens == 4);
	assert_true(b->first_token > a1->done_at);
	ig_buf_free(&run_ad);
	ig_buf_free(&wait_ad);
	free(a1);
	free(a2);
	free(b);
	free(base);
}

static void test_gone_paused_and_abort(void **state)
{
	struct harness *h = *state;
	start(h);
	struct tseq *a = new_seq(h, 10, 1, 100, NULL), *b = new_seq(h, 10, 50, 5, NULL);
	struct tseq *c = new_seq(h, 10, 90, 5, NULL);
	a->gone_after = 3;
	add(h, a);
	add(h, b);
	add(h, c);
	assert_true(step(h, NULL));
	/* A paused request sits out steps; an aborted one just disappears. */
	b->seq.paused = true;
	ig_sim_model_abort(&h->m, &c->seq);
	assert_true(step(h, NULL));
	assert_int_equal(b->tokens, 1);
	assert_int_equal(h->m.running.len, 2);
	b->seq.paused = false;
	run(h);
	assert_true(a->released && a->gone && a->tokens == 3);
	assert_true(b->released && !b->gone && b->tokens == 5);
	assert_false(c->released);
	assert_int_equal(ig_sim_model_used_blocks(&h->m), 0);
	free(a);
	free(b);
	free(c);
}

static void test_time_scale(void **state)
{
	(void)state;
	assert_int_equal(ig_sim_real_ns(100 * MS, 10), 10 * MS);
	assert_int_equal(ig_sim_real_ns(100 * MS, 1), 100 * MS);
	assert_int_equal(ig_sim_real_ns(3 * MS, 0.5), 6 * MS);
}

/* What the metrics read of a step and a request: the tokens each step
 * computes, and when a request was first admitted (the end of its queueing),
 * kept across a preemption. */
static void test_step_tokens_and_schedule_time(void **state)
{
	struct harness *h = *state;
	h->cfg.max_num_seqs = 1;
	start(h);
	struct tseq *a = new_seq(h, 40, 0, 3, NULL), *b = new_seq(h, 20, 1000, 2, NULL);
	add(h, a);
	add(h, b);
	uint64_t dur;
	assert_true(step(h, &dur));
	assert_int_equal(h->m.step_total, 40); /* a's prefill */
	assert_true(a->seq.scheduled && a->seq.scheduled_at == 0);
	assert_false(b->seq.scheduled);
	assert_true(step(h, NULL));
	assert_int_equal(h->m.step_total, 1); /* a's decode */
	uint64_t b_admitted = 0;
	while (!b->seq.scheduled) {
		b_admitted = h->now;
		assert_true(step(h, NULL));
	}
	assert_int_equal(b->seq.scheduled_at, b_admitted);
	assert_int_equal(h->m.step_total, 20);
	run(h);
	assert_true(a->released && b->released);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_prefix_cache_shortens_ttft, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_priority_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fcfs_ignores_priority, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_prefix_caching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prefix_needs_whole_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_bound_and_step_cost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunked_prefill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kv_usage_tracks_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_waits_when_cache_full_and_preempts, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_lora_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gone_paused_and_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_step_tokens_and_schedule_time, setup, teardown),
	    cmocka_unit_test(test_time_scale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
