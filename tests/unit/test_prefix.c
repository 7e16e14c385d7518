/* The prefix-cache index: the hash chain (recomputed here from its
 * definition), match counting, per-endpoint LRU eviction, forgetting, and
 * concurrent commits and lookups that must stay exact, plus a smoke test of
 * commits racing schedules. */
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

#include "sched/blockhash.h"
#include "sched/picker.h"
#include "sched/prefix.h"

/* h_0 = XXH64(model), h_i = link(h_{i-1}, hash of block_i): the chain as
 * prefix.c defines it, written out again here over the block hash of
 * sched/blockhash.c (tested on its own below). */
static uint64_t expect_link(uint64_t prev, const char *block, size_t len)
{
	uint64_t v;
	ig_block_hashes(block, len, 1, &v);
	return prev * 0x9E3779B97F4A7C15ULL + v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The block hash both ways: XXH3-64 when portable; AES rounds where the
 * CPU has them, the same block by block as four at a time, different for
 * a flipped bit anywhere, for a different length, and spread over all 64
 * bits like random values. */
static void test_block_hashes(void **state)
{
	(void)state;
	static char buf[9 * 100];
	uint64_t batch[9], one;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i * 37 + 11);
	assert_false(ig_block_hash_use_portable(true));
	for (size_t len = 1; len <= 100; len++) {
		ig_block_hashes(buf, len, 9, batch);
		for (size_t i = 0; i < 9; i++)
			assert_true(batch[i] == XXH3_64bits(buf + i * len, len));
	}
	if (!ig_block_hash_use_portable(false)) {
		print_message("no AES-NI here: the AES way is not tested\n");
		return;
	}
	for (size_t len = 1; len <= 100; len++) {
		ig_block_hashes(buf, len, 9, batch);
		for (size_t i = 0; i < 9; i++) {
			ig_block_hashes(buf + i * len, len, 1, &one);
			assert_true(batch[i] == one);
			if (i)
				assert_true(batch[i] != batch[i - 1]);
		}
		for (size_t at = 0; at < len; at++)
			for (int bit = 0; bit < 8; bit += 7) {
				buf[at] ^= (char)(1 << bit);
				ig_block_hashes(buf, len, 1, &one);
				buf[at] ^= (char)(1 << bit);
				assert_true(one != batch[0]);
			}
	}
	/* "ab" and "ab\0": the padding of a short tail is not the block's. */
	char z[20] = "ab";
	uint64_t h2, h3;
	ig_block_hashes(z, 2, 1, &h2);
	ig_block_hashes(z, 3, 1, &h3);
	assert_true(h2 != h3);
	/* 2^17 blocks that differ in a counter only: no two hashes equal,
	 * and their low and high 16 bits take as many distinct values as
	 * random ones would (65536 * (1 - e^-2) = 56668, within 1 %). */
	enum { N = 1 << 17 };
	uint64_t *h = malloc(N * sizeof(*h));
	static unsigned char seen_lo[65536], seen_hi[65536];
	assert_non_null(h);
	char blk[64] = {0};
	size_t lo = 0, hi = 0;
	for (uint32_t c = 0; c < N; c++) {
		memcpy(blk + 30, &c, sizeof c);
		ig_block_hashes(blk, sizeof blk, 1, &h[c]);
		lo += !seen_lo[h[c] & 0xffff]++;
		hi += !seen_hi[h[c] >> 48]++;
	}
	assert_true(lo > 56100 && lo < 57240);
	assert_true(hi > 56100 && hi < 57240);
	qsort(h, N, sizeof(*h), cmp_u64);
	for (uint32_t c = 1; c < N; c++)
		assert_true(h[c] != h[c - 1]);
	free(h);
}

static void hash_chain_once(void)
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
		h = expect_link(h, input + 64 * i, 64);
		assert_true(out[i] == h);
	}
	/* Truncation to max blocks; a shorter input; the model seeds the chain. */
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 2, out),
			 2);
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, 63}, 64, 256, out), 0);
	uint64_t other[4];
	ig_prefix_hashes(IG_STR("mistral"), (struct ig_str){input, 64}, 64, 256, other);
	ig_prefix_hashes(model, (struct ig_str){input, 64}, 64, 256, out);
	assert_true(other[0] != out[0]);
	/* Big blocks. */
	static char big[4096];
	memset(big, 'q', sizeof big);
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){big, sizeof big}, 2048, 256, out),
			 2);
	h = XXH64("llama", 5, 0);
	for (int i = 0; i < 2; i++) {
		h = expect_link(h, big + 2048 * i, 2048);
		assert_true(out[i] == h);
	}
	/* Equal blocks at different depths hash differently. */
	assert_true(out[0] != out[1]);
}

/* The chain is the same over either block hash. */
static void test_hash_chain(void **state)
{
	(void)state;
	for (int portable = 1; portable >= 0; portable--) {
		ig_block_hash_use_portable(portable);
		hash_chain_once();
	}
}

/* What the index relies on, for every block size and past a batch of
 * blocks hashed together: the hash of block i stands for the whole prefix
 * up to it. Two inputs agree on every hash before the first block they
 * differ in, and on none from there on. */
static void hash_chain_is_a_prefix_chain_once(void)
{
	static char a[40 * 100], b[40 * 100];
	uint64_t ha[IG_PREFIX_MAX_BLOCKS], hb[IG_PREFIX_MAX_BLOCKS];
	for (size_t i = 0; i < sizeof a; i++)
		a[i] = (char)(i * 131 + 7);
	for (size_t bs = 1; bs <= 100; bs += 3) {
		size_t nblocks = sizeof a / bs < 40 ? sizeof a / bs : 40;
		for (size_t d = 0; d < nblocks; d += 7) {
			memcpy(b, a, sizeof a);
			b[d * bs + bs / 2] ^= 0x80; /* a byte of block d */
			size_t na = ig_prefix_hashes(IG_STR("m"), (struct ig_str){a, nblocks * bs},
						     bs, 256, ha);
			size_t nb = ig_prefix_hashes(IG_STR("m"), (struct ig_str){b, nblocks * bs},
						     bs, 256, hb);
			assert_int_equal(na, nblocks);
			assert_int_equal(nb, nblocks);
			uint64_t h = XXH64("m", 1, 0);
			for (size_t i = 0; i < nblocks; i++) {
				h = expect_link(h, a + i * bs, bs);
				assert_true(ha[i] == h);
				if (i < d)
					assert_true(ha[i] == hb[i]);
				else
					assert_true(ha[i] != hb[i]);
			}
		}
	}
}

/* The chain is the same over either block hash. */
static void test_hash_chain_is_a_prefix_chain(void **state)
{
	(void)state;
	for (int portable = 1; portable >= 0; portable--) {
		ig_block_hash_use_portable(portable);
		hash_chain_is_a_prefix_chain_once();
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

/* Adds h for endpoint s holding at most cap hashes. */
static void model_add_cap(struct model *m, size_t s, uint64_t h, size_t cap)
{
	size_t i;
	for (i = 0; i < m->n[s] && m->h[s][i] != h; i++)
		;
	if (i == m->n[s] && m->n[s] == cap)
		i = 0; /* evict the oldest */
	else if (i == m->n[s])
		m->n[s]++;
	memmove(&m->h[s][i], &m->h[s][i + 1], (m->n[s] - 1 - i) * sizeof(uint64_t));
	m->h[s][m->n[s] - 1] = h;
}

static void model_add(struct model *m, size_t s, uint64_t h)
{
	model_add_cap(m, s, h, MCAP);
}

/* A commit with a smaller capacity first drops the oldest beyond it. */
static void model_trim(struct model *m, size_t s, size_t cap)
{
	if (m->n[s] <= cap)
		return;
	size_t drop = m->n[s] - cap;
	memmove(&m->h[s][0], &m->h[s][drop], cap * sizeof(uint64_t));
	m->n[s] = cap;
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

/* Commits from a lookup's record (ig_prefix_seen, ig_prefix_add_seen)
 * must leave the index exactly as plain commits do, however stale the
 * record: runs of hashes over a small universe (so endpoints share them
 * and LRUs evict from the middle of runs, including nodes the record
 * names), with commits of any endpoint and forgets between the lookup and
 * the commit it prepared, checked against the model after every step. */
static void test_seen_against_model(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(MCAP);
	struct model m = {0};
	uint64_t keys[MSERVERS];
	uint64_t rng = 777;
	for (size_t s = 0; s < MSERVERS; s++)
		keys[s] = 5000 + s;
	for (int step = 0; step < 6000; step++) {
		uint64_t run[24];
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = 1 + (rng >> 59) % 24, start = (rng >> 20) % 200;
		size_t s = (size_t)(rng >> 40) % MSERVERS;
		for (size_t j = 0; j < len; j++)
			run[j] = 1 + (start + j) % 250;
		const struct ig_prefix_hit *hits;
		const struct ig_prefix_walk *w;
		size_t nhits;
		struct ig_prefix_seen seen;
		ig_prefix_lookup(x, run, len, &hits, &nhits, &w);
		ig_prefix_seen(x, w, keys[s], &seen);
		/* Meanwhile: nothing (most often), other commits, a forget. */
		for (uint64_t r = rng; (r >> 61) < 3; r = r * 6364136223846793005ULL + 1) {
			size_t o = (size_t)(r >> 30) % MSERVERS;
			if ((r >> 20) % 8 == 0) {
				ig_prefix_forget(x, keys[o]);
				m.n[o] = 0;
				continue;
			}
			size_t olen = 1 + (r >> 40) % 12, ostart = (r >> 10) % 240;
			for (size_t j = 0; j < olen; j++) {
				uint64_t h = 1 + (ostart + j) % 250;
				assert_int_equal(ig_prefix_add(x, keys[o], &h, 1), 0);
				model_add(&m, o, h);
			}
		}
		assert_int_equal(ig_prefix_add_seen(x, keys[s], run, len, &seen), 0);
		for (size_t j = 0; j < len; j++)
			model_add(&m, s, run[j]);
		uint64_t want = 0, entries, bytes;
		for (size_t t = 0; t < MSERVERS; t++)
			want += m.n[t];
		ig_prefix_size(x, &entries, &bytes);
		assert_int_equal(entries, want);
		for (uint64_t q = 1; q <= 250; q += 1 + step % 7) {
			uint32_t counts[MSERVERS];
			ig_prefix_match(x, &q, 1, keys, MSERVERS, counts);
			for (size_t t = 0; t < MSERVERS; t++)
				assert_int_equal(counts[t], model_holds(&m, t, q));
		}
	}
	ig_prefix_free(x);
}

/* Commits giving endpoints capacities of their own (autoTune: the
 * blocks their caches hold), changing from one commit to the next, 0
 * standing for the index's: each endpoint's LRU is the model's at its
 * latest capacity, whatever its lookups' records saw. */
static void test_capacities_against_model(void **state)
{
	(void)state;
	static const uint32_t caps[] = {0, 1, 5, 17, 40, MCAP};
	struct ig_prefix_index *x = ig_prefix_new_sized(MCAP / 2, MCAP);
	struct model m = {0};
	uint64_t keys[MSERVERS];
	uint64_t rng = 4242;
	for (size_t s = 0; s < MSERVERS; s++)
		keys[s] = 9000 + s;
	for (int step = 0; step < 6000; step++) {
		uint64_t run[24];
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = 1 + (rng >> 59) % 24, start = (rng >> 20) % 200;
		size_t s = (size_t)(rng >> 40) % MSERVERS;
		uint32_t cap = caps[(rng >> 33) % 6];
		size_t mcap = cap ? cap : MCAP / 2;
		for (size_t j = 0; j < len; j++)
			run[j] = 1 + (start + j) % 250;
		const struct ig_prefix_hit *hits;
		const struct ig_prefix_walk *w;
		size_t nhits;
		struct ig_prefix_seen seen;
		ig_prefix_lookup(x, run, len, &hits, &nhits, &w);
		ig_prefix_seen(x, w, keys[s], &seen);
		if ((rng >> 10) % 64 == 0) {
			ig_prefix_forget(x, keys[s]);
			m.n[s] = 0;
		}
		assert_int_equal(ig_prefix_add_capped(x, keys[s], run, len, &seen, cap), 0);
		model_trim(&m, s, mcap);
		for (size_t j = 0; j < len; j++)
			model_add_cap(&m, s, run[j], mcap);
		uint64_t want = 0, entries, bytes;
		for (size_t t = 0; t < MSERVERS; t++)
			want += m.n[t];
		ig_prefix_size(x, &entries, &bytes);
		assert_int_equal(entries, want);
		for (uint64_t q = 1; q <= 250; q += 1 + step % 5) {
			uint32_t counts[MSERVERS];
			ig_prefix_match(x, &q, 1, keys, MSERVERS, counts);
			for (size_t t = 0; t < MSERVERS; t++)
				assert_int_equal(counts[t], model_holds(&m, t, q));
		}
	}
	ig_prefix_free(x);
}

/* A lookup's hits and its record: which endpoints hold how many of the
 * blocks walked, and for one of them where (the commit finds nothing left
 * to add: the entries stay as they were). */
static void test_lookup_hits_and_seen(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(100);
	uint64_t h[4] = {21, 22, 23, 24};
	assert_int_equal(ig_prefix_add(x, 1, h, 3), 0);
	assert_int_equal(ig_prefix_add(x, 2, h, 1), 0);
	const struct ig_prefix_hit *hits;
	const struct ig_prefix_walk *w;
	size_t nhits;
	assert_int_equal(ig_prefix_lookup(x, h, 4, &hits, &nhits, &w), 3);
	assert_int_equal(nhits, 2);
	for (size_t i = 0; i < nhits; i++)
		assert_int_equal(hits[i].blocks, hits[i].key == 1 ? 3 : 1);
	struct ig_prefix_seen seen;
	ig_prefix_seen(x, w, 1, &seen);
	assert_int_equal(seen.key, 1);
	assert_int_equal(seen.n, 4); /* the whole block was walked */
	assert_true(seen.node[0] != UINT32_MAX && seen.node[2] != UINT32_MAX);
	assert_int_equal(seen.node[3], UINT32_MAX);
	assert_int_equal(ig_prefix_add_seen(x, 1, h, 4, &seen), 0);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 5);
	/* A record for another endpoint is not used, and changes nothing. */
	assert_int_equal(ig_prefix_add_seen(x, 2, h, 2, &seen), 0);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	ig_prefix_free(x);
}

/* ---- concurrency: exact results while others write ------------------------------ */

/* Each thread drives endpoints of its own through random commits (runs of
 * consecutive hashes from a universe every thread shares, so chains mix
 * the threads' nodes, lines are written under the readers' feet and the
 * table grows meanwhile) and forgets, keeping the same plain model as
 * test_against_model. Nobody else touches its endpoints, so every lookup
 * it makes for them must agree with its model exactly, however the other
 * threads' commits interleave. */
#define CT_THREADS 8
#define CT_EPS 2
#define CT_UNIVERSE 600
#define CT_ROUNDS 20000

struct ct_thread {
	struct ig_prefix_index *x;
	int id;
	uint64_t keys[CT_EPS];
	struct model m; /* endpoints 0..CT_EPS-1 used */
	int failures;
	unsigned long lookups, checked_holds;
};

static uint64_t ct_hash(uint64_t i)
{
	return 0x9e3779b97f4a7c15ULL * (i + 1) ^ 0x5bd1e995;
}

static uint64_t ct_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static void ct_lookup(struct ct_thread *t, uint64_t *rng)
{
	uint64_t q[8];
	size_t len = 1 + ct_rand(rng) % 8, start = ct_rand(rng) % CT_UNIVERSE;
	for (size_t j = 0; j < len; j++)
		q[j] = ct_hash((start + j) % CT_UNIVERSE);
	uint32_t counts[CT_EPS];
	size_t walked = ig_prefix_match(t->x, q, len, t->keys, CT_EPS, counts);
	t->lookups++;
	if (walked > len)
		t->failures++;
	for (size_t c = 0; c < CT_EPS; c++) {
		uint32_t want = 0;
		for (size_t j = 0; j < walked && j < len; j++)
			want += model_holds(&t->m, c, q[j]);
		if (counts[c] != want)
			t->failures++;
		t->checked_holds += want;
		/* The walk stops at a hash nobody holds: not ours either. */
		if (walked < len && model_holds(&t->m, c, q[walked]))
			t->failures++;
	}
}

static void *ct_run(void *arg)
{
	struct ct_thread *t = arg;
	uint64_t rng = 77 + (uint64_t)t->id;
	for (int r = 0; r < CT_ROUNDS; r++) {
		size_t e = ct_rand(&rng) % CT_EPS;
		if (ct_rand(&rng) % 400 == 0) {
			ig_prefix_forget(t->x, t->keys[e]);
			t->m.n[e] = 0;
		} else {
			uint64_t run[8];
			size_t len = 1 + ct_rand(&rng) % 8, start = ct_rand(&rng) % CT_UNIVERSE;
			for (size_t j = 0; j < len; j++)
				run[j] = ct_hash((start + j) % CT_UNIVERSE);
			if (ig_prefix_add(t->x, t->keys[e], run, len) != 0)
				t->failures++;
			for (size_t j = 0; j < len; j++)
				model_add(&t->m, e, run[j]);
		}
		ct_lookup(t, &rng);
	}
	return NULL;
}

static void test_concurrent_exact(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(MCAP);
	assert_non_null(x);
	struct ct_thread *t = calloc(CT_THREADS, sizeof(*t));
	assert_non_null(t);
	pthread_t th[CT_THREADS];
	for (int i = 0; i < CT_THREADS; i++) {
		t[i].x = x;
		t[i].id = i;
		for (int e = 0; e < CT_EPS; e++)
			t[i].keys[e] = 5000 + 100 * (uint64_t)i + (uint64_t)e;
		assert_int_equal(pthread_create(&th[i], NULL, ct_run, &t[i]), 0);
	}
	for (int i = 0; i < CT_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	/* Quiet now: the whole index is the union of the models. */
	uint64_t all[CT_THREADS * CT_EPS], want = 0, entries, bytes;
	for (int i = 0; i < CT_THREADS; i++) {
		assert_int_equal(t[i].failures, 0);
		assert_true(t[i].checked_holds > 0); /* the lookups did see pairs */
		for (int e = 0; e < CT_EPS; e++) {
			all[i * CT_EPS + e] = t[i].keys[e];
			want += t[i].m.n[e];
		}
	}
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, want);
	for (uint64_t h = 0; h < CT_UNIVERSE; h++) {
		uint64_t q = ct_hash(h);
		uint32_t counts[CT_THREADS * CT_EPS];
		size_t held = 0;
		size_t walked = ig_prefix_match(x, &q, 1, all, CT_THREADS * CT_EPS, counts);
		for (int i = 0; i < CT_THREADS; i++)
			for (int e = 0; e < CT_EPS; e++) {
				assert_int_equal(counts[i * CT_EPS + e],
						 model_holds(&t[i].m, (size_t)e, q));
				held += counts[i * CT_EPS + e];
			}
		assert_int_equal(walked, held > 0);
	}
	free(t);
	ig_prefix_free(x);
}

/* Several threads commit for the same endpoints (their commits serialize
 * on the endpoint), half of them from a lookup's record made before other
 * threads' commits, while others look up; nothing is evicted or forgotten,
 * so a run a thread has committed must stay found in full by every lookup
 * it makes afterwards, and at the end the index holds exactly the union
 * of what was committed. */
#define SH_THREADS 4
#define SH_EPS 2
#define SH_UNIVERSE 3000
#define SH_ROUNDS 2000

struct sh_thread {
	struct ig_prefix_index *x;
	int id;
	bool *done; /* [SH_EPS][SH_UNIVERSE]: committed by this thread */
	int failures;
};

static void *sh_run(void *arg)
{
	struct sh_thread *t = arg;
	uint64_t rng = 1000 + (uint64_t)t->id, keys[SH_EPS] = {42, 43};
	for (int r = 0; r < SH_ROUNDS; r++) {
		size_t e = ct_rand(&rng) % SH_EPS;
		size_t len = 1 + ct_rand(&rng) % 16, start = ct_rand(&rng) % (SH_UNIVERSE - 16);
		uint64_t run[16];
		for (size_t j = 0; j < len; j++)
			run[j] = ct_hash(start + j);
		/* Half the commits start from what a lookup saw, which other
		 * threads' commits for the same endpoint may have made stale. */
		int rc;
		if (r & 1) {
			const struct ig_prefix_hit *hits;
			const struct ig_prefix_walk *w;
			size_t nhits;
			struct ig_prefix_seen seen;
			ig_prefix_lookup(t->x, run, len, &hits, &nhits, &w);
			ig_prefix_seen(t->x, w, keys[e], &seen);
			rc = ig_prefix_add_seen(t->x, keys[e], run, len, &seen);
		} else {
			rc = ig_prefix_add(t->x, keys[e], run, len);
		}
		if (rc != 0)
			t->failures++;
		for (size_t j = 0; j < len; j++)
			t->done[e * SH_UNIVERSE + start + j] = true;
		/* Just committed: found in full, by both candidates' counts. */
		uint32_t counts[SH_EPS];
		if (ig_prefix_match(t->x, run, len, keys, SH_EPS, counts) != len ||
		    counts[e] != len)
			t->failures++;
	}
	return NULL;
}

static void test_concurrent_same_endpoint(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(SH_UNIVERSE);
	assert_non_null(x);
	struct sh_thread t[SH_THREADS];
	pthread_t th[SH_THREADS];
	for (int i = 0; i < SH_THREADS; i++) {
		t[i] = (struct sh_thread){.x = x, .id = i};
		t[i].done = calloc(SH_EPS * SH_UNIVERSE, sizeof(bool));
		assert_non_null(t[i].done);
		assert_int_equal(pthread_create(&th[i], NULL, sh_run, &t[i]), 0);
	}
	for (int i = 0; i < SH_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	uint64_t want = 0, entries, bytes, keys[SH_EPS] = {42, 43};
	for (size_t e = 0; e < SH_EPS; e++)
		for (size_t h = 0; h < SH_UNIVERSE; h++) {
			bool any = false;
			for (int i = 0; i < SH_THREADS; i++)
				any |= t[i].done[e * SH_UNIVERSE + h];
			want += any;
			uint64_t q = ct_hash(h);
			uint32_t counts[SH_EPS];
			ig_prefix_match(x, &q, 1, keys, SH_EPS, counts);
			assert_int_equal(counts[e], any);
		}
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, want);
	for (int i = 0; i < SH_THREADS; i++) {
		assert_int_equal(t[i].failures, 0);
		free(t[i].done);
	}
	ig_prefix_free(x);
}

/* ---- concurrency: two threads commit while two schedule ----------------------- */

#define NEP 16
#define ROUNDS 3000

struct shared {
	struct ig_scheduler *s;
	struct ig_endpoint_load m[NEP];
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
		sh->eps[i] = (struct ig_sched_endpoint){
		    .m = &sh->m[i], .key = 1000 + (uint64_t)i, .addr = IG_STR("10.0.0.1:8000")};
	}
	for (int p = 0; p < 8; p++)
		for (int j = 0; j < 512; j++)
			sh->prompts[p][j] = (char)('a' + (j < 128 ? 0 : (p + j) % 26));
	struct ig_picker_config *c = ig_picker_config_default();
	sh->s = ig_scheduler_new(c);
	assert_non_null(sh->s);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, i < 2 ? committer_thread : scheduler_thread, sh),
		    0);
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
	    cmocka_unit_test(test_block_hashes),
	    cmocka_unit_test(test_hash_chain),
	    cmocka_unit_test(test_hash_chain_is_a_prefix_chain),
	    cmocka_unit_test(test_match_counting),
	    cmocka_unit_test(test_lru_eviction),
	    cmocka_unit_test(test_against_model),
	    cmocka_unit_test(test_seen_against_model),
	    cmocka_unit_test(test_capacities_against_model),
	    cmocka_unit_test(test_lookup_hits_and_seen),
	    cmocka_unit_test(test_concurrent_exact),
	    cmocka_unit_test(test_concurrent_same_endpoint),
	    cmocka_unit_test(test_concurrent_commit_and_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
