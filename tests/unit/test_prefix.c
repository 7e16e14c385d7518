/* The prefix-cache index: the hash chain (recomputed here with XXH64
 * directly), match counting, per-endpoint LRU eviction, forgetting, and a
 * concurrency smoke test of commits racing schedules. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "sched/picker.h"
#include "sched/prefix.h"

/* h_i = XXH64(block_i || le64(h_{i-1})), written out byte by byte. */
static uint64_t expect_step(const char *block, size_t len, uint64_t prev)
{
	unsigned char buf[512];
	memcpy(buf, block, len);
	for (int b = 0; b < 8; b++)
		buf[len + (size_t)b] = (unsigned char)(prev >> (8 * b));
	return XXH64(buf, len + 8, 0);
}

static void test_hash_chain(void **state)
{
	char input[200];
	for (size_t i = 0; i < sizeof input; i++)
		input[i] = (char)('a' + i % 26);
	uint64_t out[IG_PREFIX_MAX_BLOCKS];
	struct ig_str model = IG_STR("llama");
	/* 200 bytes in 64-byte blocks: three full blocks, the tail ignored. */
	size_t n = ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 256, out);
	assert_int_equal(n, 3);
	uint64_t h = XXH64("llama", 5, 0);
	for (size_t i = 0; i < 3; i++) {
		h = expect_step(input + 64 * i, 64, h);
		assert_true(out[i] == h);
	}
	/* Truncation to max blocks; a shorter input; the model seeds the chain. */
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 2, out), 2);
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, 63}, 64, 256, out), 0);
	uint64_t other[4];
	ig_prefix_hashes(IG_STR("mistral"), (struct ig_str){input, 64}, 64, 256, other);
	ig_prefix_hashes(model, (struct ig_str){input, 64}, 64, 256, out);
	assert_true(other[0] != out[0]);
	/* Blocks over the inline size go through the streaming path. */
	static char big[4096];
	memset(big, 'q', sizeof big);
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){big, sizeof big}, 2048, 256, out), 2);
	XXH64_state_t *st = XXH64_createState();
	h = XXH64("llama", 5, 0);
	for (int i = 0; i < 2; i++) {
		unsigned char le[8];
		for (int b = 0; b < 8; b++)
			le[b] = (unsigned char)(h >> (8 * b));
		XXH64_reset(st, 0);
		XXH64_update(st, big + 2048 * i, 2048);
		XXH64_update(st, le, 8);
		h = XXH64_digest(st);
		assert_true(out[i] == h);
	}
	XXH64_freeState(st);
}

/* The inline hash and the streaming one must agree with XXH64 of the
 * concatenation for every block size, whatever part of the block falls
 * in the tail, and for bytes with the high bit set. */
static void test_hash_chain_every_block_size(void **state)
{
	(void)state;
	static char input[3 * 300];
	uint64_t out[IG_PREFIX_MAX_BLOCKS];
	for (size_t i = 0; i < sizeof input; i++)
		input[i] = (char)(i * 131 + 7);
	for (size_t bs = 1; bs <= 300; bs++) {
		size_t n = ig_prefix_hashes(IG_STR("m"), (struct ig_str){input, 3 * bs}, bs, 256, out);
		assert_int_equal(n, 3);
		uint64_t h = XXH64("m", 1, 0);
		for (size_t i = 0; i < 3; i++) {
			h = expect_step(input + bs * i, bs, h);
			assert_true(out[i] == h);
		}
	}
}

static void test_match_counting(void **state)
{
	struct ig_prefix_index *x = ig_prefix_new(100);
	uint64_t h[5] = {11, 12, 13, 14, 15};
	/* Endpoint 1 holds 11..13, endpoint 2 holds 11 and 14 (not 12 or 13),
	 * endpoint 3 holds only 15. */
	assert_int_equal(ig_prefix_add(x, 1, h, 3), 0);
	assert_int_equal(ig_prefix_add(x, 2, &h[0], 1), 0);
	assert_int_equal(ig_prefix_add(x, 2, &h[3], 1), 0);
	assert_int_equal(ig_prefix_add(x, 3, &h[4], 1), 0);
	uint64_t keys[4] = {3, 2, 1, 9};
	uint32_t counts[4];
	/* Walk: 11 (1,2), 12 (1), 13 (1), 14 (2), 15 (3): nobody misses. */
	size_t walked = ig_prefix_match(x, h, 5, keys, 4, counts);
	assert_int_equal(walked, 5);
	assert_int_equal(counts[0], 1);
	assert_int_equal(counts[1], 2);
	assert_int_equal(counts[2], 3);
	assert_int_equal(counts[3], 0);
	/* A hash nobody holds stops the walk: 15 after it is not counted. */
	uint64_t gap[3] = {11, 99, 15};
	walked = ig_prefix_match(x, gap, 3, keys, 4, counts);
	assert_int_equal(walked, 1);
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[1], 1);
	assert_int_equal(counts[2], 1);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	assert_true(bytes > 0);
	ig_prefix_free(x);
}

static void test_lru_eviction(void **state)
{
	struct ig_prefix_index *x = ig_prefix_new(3);
	uint64_t h[5] = {1, 2, 3, 4, 5};
	uint64_t key = 7;
	uint32_t c;
	assert_int_equal(ig_prefix_add(x, key, h, 3), 0);
	/* Touching 1 makes 2 the oldest; adding 4 then evicts 2. */
	assert_int_equal(ig_prefix_add(x, key, &h[0], 1), 0);
	assert_int_equal(ig_prefix_add(x, key, &h[3], 1), 0);
	uint64_t q1[1] = {1}, q2[1] = {2}, q3[1] = {3}, q4[1] = {4};
	assert_int_equal(ig_prefix_match(x, q1, 1, &key, 1, &c), 1);
	assert_int_equal(c, 1);
	assert_int_equal(ig_prefix_match(x, q2, 1, &key, 1, &c), 0);
	assert_int_equal(c, 0);
	assert_int_equal(ig_prefix_match(x, q3, 1, &key, 1, &c), 1);
	assert_int_equal(ig_prefix_match(x, q4, 1, &key, 1, &c), 1);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 3);
	/* Eviction is per endpoint: another endpoint keeps its own three. */
	uint64_t other = 8;
	assert_int_equal(ig_prefix_add(x, other, &h[1], 3), 0);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	assert_int_equal(ig_prefix_match(x, q2, 1, &other, 1, &c), 1);
	/* Many adds stay within endpoints x capacity. */
	for (uint64_t k = 100; k < 1100; k++)
		assert_int_equal(ig_prefix_add(x, key, &k, 1), 0);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	/* Forgetting drops an endpoint's entries; its slot is reused. */
	ig_prefix_forget(x, key);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 3);
	assert_int_equal(ig_prefix_match(x, q3, 1, &key, 1, &c), 1); /* 8 still holds 3 */
	assert_int_equal(c, 0);
	assert_int_equal(ig_prefix_add(x, 9, h, 1), 0);
	uint64_t nine = 9;
	assert_int_equal(ig_prefix_match(x, q1, 1, &nine, 1, &c), 1);
	assert_int_equal(c, 1);
	ig_prefix_free(x);
}

/* ---- against a model -------------------------------------------------------- */

/* A plain model of the index: each endpoint's hashes, oldest first. */
#define MSERVERS 6
#define MCAP 80
struct model {
	uint64_t h[MSERVERS][MCAP];
	size_t n[MSERVERS];
};

static void model_add(struct model *m, size_t s, uint64_t h)
{
	size_t i;
	for (i = 0; i < m->n[s] && m->h[s][i] != h; i++)
		;
	if (i == m->n[s] && m->n[s] == MCAP)
		i = 0; /* evict the oldest */
	else if (i == m->n[s])
		m->n[s]++;
	memmove(&m->h[s][i], &m->h[s][i + 1], (m->n[s] - 1 - i) * sizeof(uint64_t));
	m->h[s][m->n[s] - 1] = h;
}

static bool model_holds(const struct model *m, size_t s, uint64_t h)
{
	for (size_t i = 0; i < m->n[s]; i++)
		if (m->h[s][i] == h)
			return true;
	return false;
}

/* Random adds and forgets over few hashes, so runs collide, entries are
 * evicted from the middle of runs and the table grows; after each step
 * every hash's holders must be what the model says. */
static void test_against_model(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(MCAP);
	struct model m = {0};
	uint64_t keys[MSERVERS];
	uint64_t rng = 12345;
	for (size_t s = 0; s < MSERVERS; s++)
		keys[s] = 1000 + s;
	for (int step = 0; step < 20000; step++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t s = (size_t)(rng >> 33) % MSERVERS;
		uint64_t h = (rng >> 20) % 300;
		if ((rng >> 50) % 512 == 0) {
			ig_prefix_forget(x, keys[s]);
			m.n[s] = 0;
		} else {
			assert_int_equal(ig_prefix_add(x, keys[s], &h, 1), 0);
			model_add(&m, s, h);
		}
		uint64_t want = 0, entries, bytes;
		for (size_t t = 0; t < MSERVERS; t++)
			want += m.n[t];
		ig_prefix_size(x, &entries, &bytes);
		assert_int_equal(entries, want);
		uint64_t q = (rng >> 40) % 300;
		uint32_t counts[MSERVERS];
		size_t walked = ig_prefix_match(x, &q, 1, keys, MSERVERS, counts);
		size_t held = 0;
		for (size_t t = 0; t < MSERVERS; t++) {
			assert_int_equal(counts[t], model_holds(&m, t, q));
			held += counts[t];
		}
		assert_int_equal(walked, held > 0);
	}
	ig_prefix_free(x);
}

/* ---- concurrency: two threads commit while two schedule ----------------------- */

#define NEP 16
#define ROUNDS 3000

struct shared {
	struct ig_scheduler *s;
	struct ig_endpoint_metrics m[NEP];
	struct ig_sched_endpoint eps[NEP];
	char prompts[8][512];
};

static void make_req(struct shared *sh, unsigned i, struct ig_sched_req *req)
{
	*req = (struct ig_sched_req){.model = IG_STR("m"), .target_model = IG_STR("m")};
	req->prefix_input = (struct ig_str){sh->prompts[i % 8], 64 * (1 + i % 8)};
}

static void *scheduler_thread(void *arg)
{
	struct shared *sh = arg;
	struct ig_rng rng;
	ig_rng_seed(&rng, (uint64_t)(uintptr_t)&rng);
	size_t ranked[NEP];
	for (unsigned i = 0; i < ROUNDS; i++) {
		struct ig_sched_req req;
		struct ig_sched_result res = {.ranked = ranked};
		make_req(sh, i, &req);
		if (ig_schedule(sh->s, &req, sh->eps, NEP, &rng, &res) != 0 || res.nranked != NEP)
			return (void *)1;
	}
	return NULL;
}

static void *committer_thread(void *arg)
{
	struct shared *sh = arg;
	struct ig_rng rng;
	ig_rng_seed(&rng, 99 + (uint64_t)(uintptr_t)&rng);
	size_t ranked[NEP];
	for (unsigned i = 0; i < ROUNDS; i++) {
		struct ig_sched_req req;
		struct ig_sched_result res = {.ranked = ranked};
		make_req(sh, i, &req);
		if (ig_schedule(sh->s, &req, sh->eps, NEP, &rng, &res) != 0)
			return (void *)1;
		ig_schedule_commit(sh->s, &res, sh->eps[ig_rng_below(&rng, NEP)].key);
		if (i % 500 == 0)
			ig_scheduler_forget(sh->s, sh->eps[i % NEP].key);
	}
	return NULL;
}

static void test_concurrent_commit_and_schedule(void **state)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	assert_non_null(sh);
	for (int i = 0; i < NEP; i++) {
		sh->m[i].waiting = i % 4;
		sh->m[i].kv_usage = 0.1 * (i % 5);
		sh->eps[i] = (struct ig_sched_endpoint){.m = &sh->m[i], .key = 1000 + (uint64_t)i,
							.addr = IG_STR("10.0.0.1:8000")};
	}
	for (int p = 0; p < 8; p++)
		for (int j = 0; j < 512; j++)
			sh->prompts[p][j] = (char)('a' + (j < 128 ? 0 : (p + j) % 26));
	struct ig_picker_config *c = ig_picker_config_default();
	sh->s = ig_scheduler_new(c);
	assert_non_null(sh->s);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, i < 2 ? committer_thread : scheduler_thread, sh), 0);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	struct ig_prefix_stats st;
	ig_scheduler_prefix_stats(sh->s, &st);
	assert_true(st.entries > 0);
	assert_int_equal(st.lookups, 4 * ROUNDS);
	assert_true(st.hit_blocks > 0 && st.hit_blocks <= st.lookup_blocks);
	ig_scheduler_free(sh->s);
	ig_picker_config_free(c);
	free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_chain),
		cmocka_unit_test(test_hash_chain_every_block_size),
		cmocka_unit_test(test_match_counting),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_concurrent_commit_and_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
