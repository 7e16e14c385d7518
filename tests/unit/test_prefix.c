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
#include <stdio.h>
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
	/* 200 bytes in 64-byte blocks: three full blocks, and the last 8
	 * bytes a block of their own (llm-d, GIE#2823). */
	size_t n = ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 256, out);
	assert_int_equal(n, 4);
	uint64_t h = XXH64("llama", 5, 0);
	for (size_t i = 0; i < 3; i++) {
		h = expect_link(h, input + 64 * i, 64);
		assert_true(out[i] == h);
	}
	assert_true(out[3] == expect_link(h, input + 192, 8));
	/* A different tail changes the last hash only. */
	uint64_t same[IG_PREFIX_MAX_BLOCKS];
	input[199] = '#';
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 256, same),
			 4);
	assert_true(same[2] == out[2] && same[3] != out[3]);
	/* Truncation to max blocks (no tail then), and with room for the tail
	 * only; a shorter input; the model seeds the chain. */
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 2, out),
			 2);
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){input, sizeof input}, 64, 3, out),
			 3);
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

/* Chains for the index's tests: a hash stands for its whole prefix, as
 * ig_prefix_hashes() makes them. chain_step() is any good 64-bit mix of
 * the previous link and a symbol; chain_of() links syms[0, len) from a
 * root. */
static uint64_t chain_step(uint64_t prev, uint64_t sym)
{
	uint64_t k = prev ^ (sym + 1) * 0x9E3779B97F4A7C15ULL;
	k ^= k >> 31;
	k *= 0xbf58476d1ce4e5b9ULL;
	k ^= k >> 29;
	return k;
}

static void chain_of(uint64_t root, const uint8_t *syms, size_t len, uint64_t *out)
{
	uint64_t h = root;
	for (size_t j = 0; j < len; j++)
		out[j] = h = chain_step(h, syms[j]);
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

/* A random chain of len hashes from one of `roots` roots, its symbols
 * mostly 0 so that chains share long prefixes and branch now and then. */
static void random_chain(uint64_t *rng, unsigned roots, size_t len, uint64_t *out)
{
	uint8_t syms[IG_PREFIX_MAX_BLOCKS];
	uint64_t root = lcg(rng) % roots;
	for (size_t j = 0; j < len; j++) {
		uint64_t r = lcg(rng);
		syms[j] = r % 4 == 0 ? (uint8_t)(1 + (r >> 8) % 2) : 0;
	}
	chain_of(root, syms, len, out);
}

static void test_match_counting(void **state)
{
	struct ig_prefix_index *x = ig_prefix_new(100);
	static const uint8_t syms[5] = {1, 2, 3, 4, 5};
	uint64_t h[5];
	chain_of(7, syms, 5, h);
	/* Endpoint 1 holds the first three blocks, 2 the first, 3 all five. */
	assert_int_equal(ig_prefix_add(x, 1, h, 3), 0);
	assert_int_equal(ig_prefix_add(x, 2, h, 1), 0);
	assert_int_equal(ig_prefix_add(x, 3, h, 5), 0);
	uint64_t keys[4] = {3, 2, 1, 9};
	uint32_t counts[4];
	size_t walked = ig_prefix_match(x, h, 5, keys, 4, counts);
	assert_int_equal(walked, 5);
	assert_int_equal(counts[0], 5);
	assert_int_equal(counts[1], 1);
	assert_int_equal(counts[2], 3);
	assert_int_equal(counts[3], 0);
	/* A prompt that leaves the chain after two blocks: nobody holds its
	 * third, and nothing after it counts. */
	uint64_t other[4];
	static const uint8_t osyms[4] = {1, 2, 9, 4};
	chain_of(7, osyms, 4, other);
	assert_true(other[1] == h[1] && other[2] != h[2]);
	walked = ig_prefix_match(x, other, 4, keys, 4, counts);
	assert_int_equal(walked, 2);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 1);
	assert_int_equal(counts[2], 2);
	/* Only endpoint 3 reaches past the third block; nobody holds the
	 * first of another root. */
	assert_int_equal(ig_prefix_match(x, h, 4, keys, 4, counts), 4);
	assert_int_equal(counts[0], 4);
	assert_int_equal(counts[2], 3);
	uint64_t stranger[2];
	chain_of(8, syms, 2, stranger);
	assert_int_equal(ig_prefix_match(x, stranger, 2, keys, 4, counts), 0);
	assert_int_equal(counts[0] + counts[1] + counts[2] + counts[3], 0);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 9);
	assert_true(bytes > 0);
	ig_prefix_free(x);
}

static void test_lru_eviction(void **state)
{
	struct ig_prefix_index *x = ig_prefix_new(3);
	static const uint8_t syms[3] = {0, 0, 0};
	uint64_t h[3], r4, r5;
	chain_of(1, syms, 3, h);
	chain_of(4, syms, 1, &r4);
	chain_of(5, syms, 1, &r5);
	uint64_t key = 7;
	uint32_t c;
	assert_int_equal(ig_prefix_add(x, key, h, 3), 0);
	/* A new pair at capacity evicts the prompt's last block, not its
	 * first: the endpoint keeps a prefix, as vLLM's cache does. */
	assert_int_equal(ig_prefix_add(x, key, &r4, 1), 0);
	assert_int_equal(ig_prefix_match(x, h, 3, &key, 1, &c), 2);
	assert_int_equal(c, 2);
	assert_int_equal(ig_prefix_match(x, &r4, 1, &key, 1, &c), 1);
	/* Touching the first two makes the other root the oldest. */
	assert_int_equal(ig_prefix_add(x, key, h, 2), 0);
	assert_int_equal(ig_prefix_add(x, key, &r5, 1), 0);
	assert_int_equal(ig_prefix_match(x, &r4, 1, &key, 1, &c), 0);
	assert_int_equal(ig_prefix_match(x, h, 3, &key, 1, &c), 2);
	assert_int_equal(c, 2);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 3);
	/* A prompt longer than the capacity keeps its first blocks. */
	uint64_t other = 8, longer[5];
	static const uint8_t lsyms[5] = {3, 3, 3, 3, 3};
	chain_of(1, lsyms, 5, longer);
	assert_int_equal(ig_prefix_add(x, other, longer, 5), 0);
	assert_int_equal(ig_prefix_match(x, longer, 5, &other, 1, &c), 3);
	assert_int_equal(c, 3);
	/* Eviction is per endpoint: the first keeps its own three. */
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	assert_int_equal(ig_prefix_match(x, h, 2, &key, 1, &c), 2);
	/* Many adds stay within endpoints x capacity. */
	for (uint64_t k = 100; k < 1100; k++) {
		uint64_t r = chain_step(k, 0);
		assert_int_equal(ig_prefix_add(x, key, &r, 1), 0);
	}
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	/* Forgetting drops an endpoint's entries; its slot is reused. */
	ig_prefix_forget(x, other);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 3);
	assert_int_equal(ig_prefix_match(x, longer, 5, &other, 1, &c), 0);
	assert_int_equal(ig_prefix_add(x, 9, h, 1), 0);
	uint64_t nine = 9;
	assert_int_equal(ig_prefix_match(x, h, 3, &nine, 1, &c), 1);
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

/* A commit: each hash becomes the newest, the last first, so that the
 * first ends newest (ig_prefix_add). */
static void model_commit(struct model *m, size_t s, const uint64_t *run, size_t len, size_t cap)
{
	for (size_t j = len; j-- > 0;)
		model_add_cap(m, s, run[j], cap);
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

/* GIE's count, on the model: walk the run, stop at the first hash nobody
 * holds; each endpoint counts the hashes it holds before the stop. */
static size_t model_lookup(const struct model *m, const uint64_t *run, size_t len, uint32_t *counts)
{
	size_t walked = 0;
	memset(counts, 0, MSERVERS * sizeof(*counts));
	for (; walked < len; walked++) {
		bool any = false;
		for (size_t t = 0; t < MSERVERS; t++)
			if (model_holds(m, t, run[walked])) {
				counts[t]++;
				any = true;
			}
		if (!any)
			break;
	}
	return walked;
}

/* The index holds exactly the model's pairs: each of them (a one-hash
 * lookup reads that hash's holders), and as many as the model. */
static void check_pairs(struct ig_prefix_index *x, const struct model *m, const uint64_t *keys)
{
	uint64_t want = 0, entries, bytes;
	for (size_t t = 0; t < MSERVERS; t++) {
		want += m->n[t];
		for (size_t i = 0; i < m->n[t]; i++) {
			uint32_t counts[MSERVERS];
			ig_prefix_match(x, &m->h[t][i], 1, keys, MSERVERS, counts);
			for (size_t u = 0; u < MSERVERS; u++)
				assert_int_equal(counts[u], model_holds(m, u, m->h[t][i]));
		}
	}
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, want);
}

/* A lookup of run counts as the model does. */
static void check_lookup(struct ig_prefix_index *x, const struct model *m, const uint64_t *keys,
			 const uint64_t *run, size_t len)
{
	uint32_t counts[MSERVERS], want[MSERVERS];
	size_t walked = ig_prefix_match(x, run, len, keys, MSERVERS, counts);
	assert_int_equal(walked, model_lookup(m, run, len, want));
	for (size_t t = 0; t < MSERVERS; t++)
		assert_int_equal(counts[t], want[t]);
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
 * record: chains from few roots that share long prefixes and branch (so
 * endpoints share pairs and LRUs evict from the middle of what a record
 * names), with commits of any endpoint and forgets between the lookup and
 * the commit it prepared. Every lookup must count as GIE's walk over the
 * model does, and after each step the index hold the model's pairs. */
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
		size_t len = 1 + lcg(&rng) % 24;
		size_t s = lcg(&rng) % MSERVERS;
		random_chain(&rng, 6, len, run);
		check_lookup(x, &m, keys, run, len);
		const struct ig_prefix_hit *hits;
		const struct ig_prefix_walk *w;
		size_t nhits;
		struct ig_prefix_seen seen;
		ig_prefix_lookup(x, run, len, &hits, &nhits, &w);
		ig_prefix_seen(x, w, keys[s], &seen);
		/* Meanwhile: nothing (most often), other commits, a forget. */
		for (uint64_t r = lcg(&rng); r % 8 < 3; r = lcg(&rng)) {
			size_t o = lcg(&rng) % MSERVERS;
			if (r % 64 < 3) {
				ig_prefix_forget(x, keys[o]);
				m.n[o] = 0;
				continue;
			}
			uint64_t orun[12];
			size_t olen = 1 + lcg(&rng) % 12;
			random_chain(&rng, 6, olen, orun);
			assert_int_equal(ig_prefix_add(x, keys[o], orun, olen), 0);
			model_commit(&m, o, orun, olen, MCAP);
		}
		assert_int_equal(ig_prefix_add_seen(x, keys[s], run, len, &seen), 0);
		model_commit(&m, s, run, len, MCAP);
		if (step % 4 == 0)
			check_pairs(x, &m, keys);
	}
	check_pairs(x, &m, keys);
	ig_prefix_free(x);
}

/* Commits giving endpoints capacities of their own (autoTune: the
 * blocks their caches hold), changing from one commit to the next, 0
 * standing for the index's, some below the run's length: each endpoint's
 * LRU is the model's at its latest capacity, whatever its lookups'
 * records saw. */
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
		size_t len = 1 + lcg(&rng) % 24;
		size_t s = lcg(&rng) % MSERVERS;
		uint32_t cap = caps[lcg(&rng) % 6];
		size_t mcap = cap ? cap : MCAP / 2;
		random_chain(&rng, 6, len, run);
		check_lookup(x, &m, keys, run, len);
		const struct ig_prefix_hit *hits;
		const struct ig_prefix_walk *w;
		size_t nhits;
		struct ig_prefix_seen seen;
		ig_prefix_lookup(x, run, len, &hits, &nhits, &w);
		ig_prefix_seen(x, w, keys[s], &seen);
		if (lcg(&rng) % 64 == 0) {
			ig_prefix_forget(x, keys[s]);
			m.n[s] = 0;
		}
		assert_int_equal(ig_prefix_add_capped(x, keys[s], run, len, &seen, cap), 0);
		model_trim(&m, s, mcap);
		model_commit(&m, s, run, len, mcap);
		if (step % 4 == 0)
			check_pairs(x, &m, keys);
	}
	check_pairs(x, &m, keys);
	ig_prefix_free(x);
}

/* A lookup's hits and its record: which endpoints hold how many of the
 * blocks walked, and for one of them where (the commit finds nothing left
 * to add: the entries stay as they were). */
static void test_lookup_hits_and_seen(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(100);
	static const uint8_t syms[4] = {0, 0, 0, 0};
	uint64_t h[4];
	chain_of(21, syms, 4, h);
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
	assert_int_equal(seen.n, 4);
	assert_int_equal(seen.held, 3);
	assert_true(seen.deep != UINT32_MAX);
	struct ig_prefix_seen none;
	ig_prefix_seen(x, w, 77, &none); /* an endpoint the index never saw */
	assert_int_equal(none.n, 4);
	assert_int_equal(none.held, 0);
	assert_int_equal(ig_prefix_add_seen(x, 1, h, 4, &seen), 0);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 5);
	/* A record for another endpoint is not used, and changes nothing. */
	assert_int_equal(ig_prefix_add_seen(x, 2, h, 2, &seen), 0);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 6);
	/* A stale record: endpoint 2 commits the whole chain after the
	 * lookup that saw it hold two blocks, then commits from the record. */
	ig_prefix_lookup(x, h, 4, &hits, &nhits, &w);
	ig_prefix_seen(x, w, 2, &seen);
	assert_int_equal(seen.held, 2);
	assert_int_equal(ig_prefix_add(x, 2, h, 4), 0);
	assert_int_equal(ig_prefix_add_seen(x, 2, h, 4, &seen), 0);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 8);
	uint64_t keys[2] = {1, 2};
	uint32_t counts[2];
	assert_int_equal(ig_prefix_match(x, h, 4, keys, 2, counts), 4);
	assert_int_equal(counts[0], 4);
	assert_int_equal(counts[1], 4);
	ig_prefix_free(x);
}

/* Out of memory in the middle of a commit: the commit fails whole, and
 * the endpoint does not hold the tail of a chain without its head (which
 * a lookup would count wrong). */
static void test_out_of_nodes(void **state)
{
	(void)state;
	struct ig_prefix_index *x = ig_prefix_new(100);
	ig_prefix_limit_nodes(x, 16);
	uint8_t syms[30] = {0};
	uint64_t h[30];
	chain_of(3, syms, 30, h);
	assert_int_equal(ig_prefix_add(x, 1, h, 4), 0); /* a batch of 8 */
	uint64_t entries, bytes, keys[2] = {1, 2};
	uint32_t counts[2];
	/* Endpoint 2 needs 30 nodes; 8 are left. */
	assert_int_equal(ig_prefix_add(x, 2, h, 30), -1);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 4);
	assert_int_equal(ig_prefix_match(x, h, 30, keys, 2, counts), 4);
	assert_int_equal(counts[0], 4);
	assert_int_equal(counts[1], 0);
	assert_int_equal(ig_prefix_match(x, &h[29], 1, keys, 2, counts), 0);
	/* What fits still commits. */
	assert_int_equal(ig_prefix_add(x, 2, h, 8), 0);
	assert_int_equal(ig_prefix_match(x, h, 30, keys, 2, counts), 8);
	assert_int_equal(counts[0], 4);
	assert_int_equal(counts[1], 8);
	ig_prefix_free(x);

	/* Input that breaks the chain contract (an endpoint given blocks 1
	 * and 2 of a chain as roots of their own), out of nodes: the commit
	 * of the whole chain finds block 0 missing under the held ones and
	 * cannot link it; it fails, and does not follow a node it lacks. */
	x = ig_prefix_new(100);
	ig_prefix_limit_nodes(x, 8);
	for (size_t k = 1; k < 3; k++)
		assert_int_equal(ig_prefix_add(x, 5, &h[k], 1), 0);
	uint64_t roots[6];
	for (size_t k = 0; k < 6; k++) {
		roots[k] = chain_step(50 + k, 0);
		assert_int_equal(ig_prefix_add(x, 5, &roots[k], 1), 0); /* the batch's last */
	}
	assert_int_equal(ig_prefix_add(x, 5, h, 3), -1);
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 8);
	ig_prefix_free(x);
}

/* ---- concurrency: exact results while others write ------------------------------ */

/* Each thread drives endpoints of its own through random commits (chains
 * from roots every thread shares, so bucket chains mix the threads' nodes,
 * lines are written under the readers' feet and the table grows
 * meanwhile) and forgets, keeping the same plain model as
 * test_against_model. Nobody else touches its endpoints, so every lookup
 * it makes must count them exactly as its model says, however the other
 * threads' commits interleave. */
#define CT_THREADS 8
#define CT_EPS 2
#define CT_ROOTS 40
#define CT_ROUNDS 20000

struct ct_thread {
	struct ig_prefix_index *x;
	int id;
	uint64_t keys[CT_EPS];
	struct model m; /* endpoints 0..CT_EPS-1 used */
	int failures;
	unsigned long lookups, checked_holds;
};

static void ct_lookup(struct ct_thread *t, uint64_t *rng)
{
	uint64_t q[8];
	size_t len = 1 + lcg(rng) % 8;
	random_chain(rng, CT_ROOTS, len, q);
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
		size_t e = lcg(&rng) % CT_EPS;
		if (lcg(&rng) % 400 == 0) {
			ig_prefix_forget(t->x, t->keys[e]);
			t->m.n[e] = 0;
		} else {
			uint64_t run[8];
			size_t len = 1 + lcg(&rng) % 8;
			random_chain(&rng, CT_ROOTS, len, run);
			if (ig_prefix_add(t->x, t->keys[e], run, len) != 0)
				t->failures++;
			model_commit(&t->m, e, run, len, MCAP);
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
	for (int i = 0; i < CT_THREADS; i++)
		for (int e = 0; e < CT_EPS; e++)
			for (size_t k = 0; k < t[i].m.n[e]; k++) {
				uint64_t q = t[i].m.h[e][k];
				uint32_t counts[CT_THREADS * CT_EPS];
				ig_prefix_match(x, &q, 1, all, CT_THREADS * CT_EPS, counts);
				for (int i2 = 0; i2 < CT_THREADS; i2++)
					for (int e2 = 0; e2 < CT_EPS; e2++)
						assert_int_equal(
						    counts[i2 * CT_EPS + e2],
						    model_holds(&t[i2].m, (size_t)e2, q));
			}
	free(t);
	ig_prefix_free(x);
}

/* Several threads commit for the same endpoints (their commits serialize
 * on the endpoint), half of them from a lookup's record made before other
 * threads' commits, while others look up; nothing is evicted or forgotten,
 * so a run a thread has committed must stay found in full by every lookup
 * it makes afterwards, and at the end the index holds exactly the union
 * of what was committed. The runs are prefixes of SH_FAMILIES chains of
 * SH_LEN blocks that branch in two at block SH_LEN / 2. */
#define SH_THREADS 4
#define SH_EPS 2
#define SH_FAMILIES 90
#define SH_LEN 16
#define SH_ROUNDS 2000
#define SH_SPOTS (SH_FAMILIES * 2 * SH_LEN)

static uint64_t sh_chains[SH_FAMILIES][2][SH_LEN];

/* Where block j of family f, branch b, is counted: the blocks before the
 * branch are both branches'. */
static size_t sh_spot(size_t f, size_t b, size_t j)
{
	return (f * 2 + (j < SH_LEN / 2 ? 0 : b)) * SH_LEN + j;
}

struct sh_thread {
	struct ig_prefix_index *x;
	int id;
	bool *done; /* [SH_EPS][SH_SPOTS]: committed by this thread */
	int failures;
};

static void *sh_run(void *arg)
{
	struct sh_thread *t = arg;
	uint64_t rng = 1000 + (uint64_t)t->id, keys[SH_EPS] = {42, 43};
	for (int r = 0; r < SH_ROUNDS; r++) {
		size_t e = lcg(&rng) % SH_EPS;
		size_t f = lcg(&rng) % SH_FAMILIES, b = lcg(&rng) % 2, len = 1 + lcg(&rng) % SH_LEN;
		const uint64_t *run = sh_chains[f][b];
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
			t->done[e * SH_SPOTS + sh_spot(f, b, j)] = true;
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
	struct ig_prefix_index *x = ig_prefix_new(SH_SPOTS);
	assert_non_null(x);
	for (size_t f = 0; f < SH_FAMILIES; f++)
		for (size_t b = 0; b < 2; b++) {
			uint8_t syms[SH_LEN];
			for (size_t j = 0; j < SH_LEN; j++)
				syms[j] = j < SH_LEN / 2 ? 0 : (uint8_t)(1 + b);
			chain_of(1000 + f, syms, SH_LEN, sh_chains[f][b]);
		}
	struct sh_thread t[SH_THREADS];
	pthread_t th[SH_THREADS];
	for (int i = 0; i < SH_THREADS; i++) {
		t[i] = (struct sh_thread){.x = x, .id = i};
		t[i].done = calloc(SH_EPS * SH_SPOTS, sizeof(bool));
		assert_non_null(t[i].done);
		assert_int_equal(pthread_create(&th[i], NULL, sh_run, &t[i]), 0);
	}
	for (int i = 0; i < SH_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	uint64_t want = 0, entries, bytes, keys[SH_EPS] = {42, 43};
	for (size_t e = 0; e < SH_EPS; e++)
		for (size_t f = 0; f < SH_FAMILIES; f++)
			for (size_t b = 0; b < 2; b++)
				for (size_t j = b ? SH_LEN / 2 : 0; j < SH_LEN; j++) {
					size_t spot = sh_spot(f, b, j);
					bool any = false;
					for (int i = 0; i < SH_THREADS; i++)
						any |= t[i].done[e * SH_SPOTS + spot];
					want += any;
					uint32_t counts[SH_EPS];
					ig_prefix_match(x, &sh_chains[f][b][j], 1, keys, SH_EPS,
							counts);
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

/* ---- long prompts: llm-d Router's long-context settings ---------------------- */

/* 16 tokens of 4 characters, vLLM's default block. */
#define LBS 64
#define LONG_BLOCKS 4096

/* A prompt of `blocks` blocks of LBS bytes, each different (its number
 * and `seed` at its start), and a tail of `tail` bytes; blocks before
 * `from` are seed 1's. */
static char *long_prompt(size_t blocks, size_t tail, unsigned seed, size_t from)
{
	char *p = malloc(blocks * LBS + tail + 1);
	assert_non_null(p);
	for (size_t i = 0; i < blocks; i++) {
		char *b = p + i * LBS;
		memset(b, (char)('a' + i % 26), LBS);
		snprintf(b, LBS, "%u:%zu|", i < from ? 1 : seed, i);
		b[strlen(b)] = '-';
	}
	memset(p + blocks * LBS, 't', tail);
	return p;
}

/* A 4096-block prompt hashes to 4096 links of the chain and its tail,
 * cut at the caller's maximum as llm-d cuts the input at maxPrefixBlocks
 * times the block size (then without a tail), and at IG_PREFIX_MAX_BLOCKS
 * at most. */
static void test_long_prompt_hashes(void **state)
{
	(void)state;
	size_t len = LONG_BLOCKS * LBS + 10;
	char *p = long_prompt(LONG_BLOCKS, 10, 1, 0);
	uint64_t *out = malloc((IG_PREFIX_MAX_BLOCKS + 1) * sizeof(*out));
	uint64_t *cut = malloc(LONG_BLOCKS * sizeof(*cut));
	assert_non_null(out);
	assert_non_null(cut);
	struct ig_str model = IG_STR("llama");
	assert_int_equal(
	    ig_prefix_hashes(model, (struct ig_str){p, len}, LBS, IG_PREFIX_MAX_BLOCKS, out),
	    LONG_BLOCKS + 1);
	uint64_t h = XXH64("llama", 5, 0);
	for (size_t i = 0; i < LONG_BLOCKS; i++) {
		h = expect_link(h, p + i * LBS, LBS);
		assert_true(out[i] == h);
	}
	assert_true(out[LONG_BLOCKS] == expect_link(h, p + LONG_BLOCKS * LBS, 10));
	/* Cut at 1024 and at 4096 blocks: the same first links, no tail. */
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){p, len}, LBS, 1024, cut), 1024);
	assert_memory_equal(cut, out, 1024 * sizeof(*out));
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){p, len}, LBS, LONG_BLOCKS, cut),
			 LONG_BLOCKS);
	assert_memory_equal(cut, out, LONG_BLOCKS * sizeof(*out));
	/* 0 blocks hash nothing (llm-d cuts the input at 0 bytes). */
	assert_int_equal(ig_prefix_hashes(model, (struct ig_str){p, len}, LBS, 0, cut), 0);
	/* Past IG_PREFIX_MAX_BLOCKS, in one-byte blocks. */
	assert_int_equal(
	    ig_prefix_hashes(model, (struct ig_str){p, IG_PREFIX_MAX_BLOCKS + 7}, 1, SIZE_MAX, out),
	    IG_PREFIX_MAX_BLOCKS);
	free(cut);
	free(out);
	free(p);
}

/* The index matches 4096-block prompts as it does short ones: each
 * endpoint counts the blocks it holds up to the first nobody holds, from
 * a lookup or a commit that starts from what the lookup saw; an endpoint
 * whose capacity is below the prompt keeps its first blocks. */
static void test_long_prompt_matching(void **state)
{
	(void)state;
	size_t len = LONG_BLOCKS * LBS;
	char *a = long_prompt(LONG_BLOCKS, 0, 1, 0);
	char *b = long_prompt(LONG_BLOCKS, 0, 2, 3000); /* a's first 3000 blocks */
	uint64_t *ha = malloc(LONG_BLOCKS * sizeof(*ha)), *hb = malloc(LONG_BLOCKS * sizeof(*hb));
	assert_non_null(ha);
	assert_non_null(hb);
	assert_int_equal(
	    ig_prefix_hashes(IG_STR("m"), (struct ig_str){a, len}, LBS, LONG_BLOCKS, ha),
	    LONG_BLOCKS);
	assert_int_equal(
	    ig_prefix_hashes(IG_STR("m"), (struct ig_str){b, len}, LBS, LONG_BLOCKS, hb),
	    LONG_BLOCKS);
	assert_true(ha[2999] == hb[2999] && ha[3000] != hb[3000]);
	struct ig_prefix_index *x = ig_prefix_new(3 * LONG_BLOCKS);
	assert_non_null(x);
	assert_int_equal(ig_prefix_add(x, 1, ha, LONG_BLOCKS), 0);
	assert_int_equal(ig_prefix_add(x, 2, hb, LONG_BLOCKS), 0);
	assert_int_equal(ig_prefix_add(x, 3, ha, 100), 0);
	uint64_t keys[4] = {1, 2, 3, 4};
	uint32_t counts[4];
	assert_int_equal(ig_prefix_match(x, ha, LONG_BLOCKS, keys, 4, counts), LONG_BLOCKS);
	assert_int_equal(counts[0], LONG_BLOCKS);
	assert_int_equal(counts[1], 3000);
	assert_int_equal(counts[2], 100);
	assert_int_equal(counts[3], 0);
	assert_int_equal(ig_prefix_match(x, hb, LONG_BLOCKS, keys, 4, counts), LONG_BLOCKS);
	assert_int_equal(counts[0], 3000);
	assert_int_equal(counts[1], LONG_BLOCKS);
	assert_int_equal(counts[2], 100);
	/* A commit for endpoint 3 from what the lookup saw of it. */
	const struct ig_prefix_hit *hits;
	const struct ig_prefix_walk *walk;
	size_t nhits;
	assert_int_equal(ig_prefix_lookup(x, hb, LONG_BLOCKS, &hits, &nhits, &walk), LONG_BLOCKS);
	assert_int_equal(nhits, 3);
	struct ig_prefix_seen seen;
	ig_prefix_seen(x, walk, 3, &seen);
	assert_int_equal(seen.n, LONG_BLOCKS);
	assert_int_equal(seen.held, 100);
	assert_int_equal(ig_prefix_add_seen(x, 3, hb, LONG_BLOCKS, &seen), 0);
	assert_int_equal(ig_prefix_match(x, hb, LONG_BLOCKS, keys, 4, counts), LONG_BLOCKS);
	assert_int_equal(counts[2], LONG_BLOCKS);
	/* Room for 2048 pairs: the first 2048 blocks stay. */
	assert_int_equal(ig_prefix_add_capped(x, 4, ha, LONG_BLOCKS, NULL, 2048), 0);
	assert_int_equal(ig_prefix_match(x, ha, LONG_BLOCKS, keys, 4, counts), LONG_BLOCKS);
	assert_int_equal(counts[3], 2048);
	assert_int_equal(counts[2], 3000);
	uint64_t entries, bytes;
	ig_prefix_size(x, &entries, &bytes);
	assert_int_equal(entries, 3 * LONG_BLOCKS + 2048);
	ig_prefix_free(x);
	free(ha);
	free(hb);
	free(a);
	free(b);
}

/* An approx-prefix-cache-producer and prefix-cache-scorer profile with
 * these producer parameters. */
#define LONG_PROFILE(params)                                                                       \
	"plugins:\n- type: approx-prefix-cache-producer\n  parameters: {autoTune: false, "         \
	"blockSizeTokens: 16, lruCapacityPerServer: 20000, " params "}\n"                          \
	"- type: prefix-cache-scorer\n- type: max-score-picker\n"                                  \
	"schedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: prefix-cache-scorer\n"         \
	"  - pluginRef: max-score-picker\n"

static struct ig_scheduler *long_sched(const char *yaml, size_t nwarnings)
{
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("epp.yaml", yaml, strlen(yaml), &c, &d);
	ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, nwarnings);
	ig_diags_free(&d);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	assert_non_null(s);
	return s;
}

/* Schedules input among eps (three, no metrics), into res with the given
 * room (NULL: the thread's). */
static void long_schedule(struct ig_scheduler *s, struct ig_str input,
			  const struct ig_sched_endpoint *eps, uint64_t *room, size_t room_len,
			  struct ig_sched_result *res, size_t *ranked, double *scores)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 5);
	struct ig_sched_req req = {
	    .model = IG_STR("m"), .target_model = IG_STR("m"), .prefix_input = input};
	*res = (struct ig_sched_result){
	    .ranked = ranked, .scores = scores, .prefix_room = room, .prefix_room_len = room_len};
	assert_int_equal(ig_schedule(s, &req, eps, 3, &rng, res), 0);
}

/* llm-d's long-context settings through the picker: maxPrefixBlocksToMatch
 * 4096 cuts a 5000-block prompt at 4096 blocks, matched and scored on
 * all of them (3000 of 4096 held: a score of 3000/4096), in the caller's
 * room or the thread's; a room shorter than the prompt matches its first
 * blocks. */
static void test_long_prompt_scheduling(void **state)
{
	(void)state;
	struct ig_scheduler *s = long_sched(LONG_PROFILE("maxPrefixBlocksToMatch: 4096"), 0);
	struct ig_endpoint_load m[3] = {{0}};
	struct ig_sched_endpoint eps[3];
	for (size_t i = 0; i < 3; i++)
		eps[i] = (struct ig_sched_endpoint){
		    .m = &m[i], .key = 100 + i, .addr = IG_STR("10.0.0.1:8000")};
	size_t len = 5000 * LBS + 10;
	char *a = long_prompt(5000, 10, 1, 0);
	char *b = long_prompt(5000, 10, 2, 3000);
	assert_int_equal(ig_scheduler_prefix_limit(s, 0), LBS * LONG_BLOCKS);
	assert_int_equal(ig_scheduler_prefix_blocks(s, 0, len), LONG_BLOCKS);
	assert_int_equal(ig_scheduler_prefix_blocks(s, 0, 100 * LBS + 1), 101);
	uint64_t *room = malloc(LONG_BLOCKS * sizeof(*room));
	assert_non_null(room);
	size_t ranked[3];
	double scores[3];
	struct ig_sched_result res;
	long_schedule(s, (struct ig_str){a, len}, eps, room, LONG_BLOCKS, &res, ranked, scores);
	assert_int_equal(res.nprefix_hashes, LONG_BLOCKS);
	assert_ptr_equal(res.prefix_hashes, room);
	ig_schedule_commit(s, &res, eps[1].key);
	struct ig_prefix_stats st;
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, LONG_BLOCKS);
	/* b shares a's first 3000 blocks: endpoint 1 holds them. */
	long_schedule(s, (struct ig_str){b, len}, eps, NULL, 0, &res, ranked, scores);
	assert_int_equal(res.nprefix_hashes, LONG_BLOCKS);
	assert_int_equal(ranked[0], 1);
	assert_int_equal(res.prefix_match_blocks, 3000);
	assert_float_equal(scores[0], 3000.0 / LONG_BLOCKS, 1e-12);
	assert_float_equal(scores[1], 0, 1e-12);
	assert_float_equal(scores[2], 0, 1e-12);
	ig_schedule_commit(s, &res, eps[2].key);
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 2 * LONG_BLOCKS);
	/* Room for 2000: the first 2000 blocks, all held by endpoints 1 and 2. */
	long_schedule(s, (struct ig_str){b, len}, eps, room, 2000, &res, ranked, scores);
	assert_int_equal(res.nprefix_hashes, 2000);
	assert_int_equal(res.prefix_match_blocks, 2000);
	assert_float_equal(scores[0], 1.0, 1e-12);
	assert_float_equal(scores[1], 1.0, 1e-12);
	ig_scheduler_free(s);
	free(room);
	free(a);
	free(b);
}

/* The configuration takes llm-d's long-context values (1024 blocks;
 * 32768 tokens: 2048 blocks of 16 tokens) and its 0, which hashes no
 * block: nothing matches, nothing is recorded (with a warning). */
static void test_long_prompt_config(void **state)
{
	(void)state;
	struct ig_endpoint_load m[3] = {{0}};
	struct ig_sched_endpoint eps[3];
	for (size_t i = 0; i < 3; i++)
		eps[i] = (struct ig_sched_endpoint){
		    .m = &m[i], .key = 100 + i, .addr = IG_STR("10.0.0.1:8000")};
	size_t len = 5000 * LBS;
	char *a = long_prompt(5000, 0, 1, 0);
	size_t ranked[3];
	double scores[3];
	struct ig_sched_result res;
	struct ig_prefix_stats st;
	static const struct {
		const char *yaml;
		size_t blocks, warnings;
	} cases[] = {
	    {LONG_PROFILE("maxPrefixBlocksToMatch: 1024"), 1024, 0},
	    {LONG_PROFILE("maxPrefixTokensToMatch: 32768"), 2048, 0},
	    {LONG_PROFILE("maxPrefixBlocksToMatch: 16384"), 5000, 0},
	    {LONG_PROFILE("maxPrefixBlocksToMatch: 0"), 0, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_scheduler *s = long_sched(cases[i].yaml, cases[i].warnings);
		size_t max = cases[i].blocks < 5000 ? cases[i].blocks : IG_PREFIX_MAX_BLOCKS;
		assert_int_equal(ig_scheduler_prefix_limit(s, 0), LBS * max);
		assert_int_equal(ig_scheduler_prefix_blocks(s, 0, len), cases[i].blocks);
		long_schedule(s, (struct ig_str){a, len}, eps, NULL, 0, &res, ranked, scores);
		assert_int_equal(res.nprefix_hashes, cases[i].blocks);
		ig_schedule_commit(s, &res, eps[0].key);
		long_schedule(s, (struct ig_str){a, len}, eps, NULL, 0, &res, ranked, scores);
		assert_int_equal(res.prefix_match_blocks, cases[i].blocks);
		ig_scheduler_prefix_stats(s, &st);
		assert_int_equal(st.entries, cases[i].blocks);
		ig_scheduler_free(s);
	}
	/* llm-d's 0 warns where it is written. */
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	const char *zero = LONG_PROFILE("maxPrefixBlocksToMatch: 0");
	assert_int_equal(ig_picker_config_parse("epp.yaml", zero, strlen(zero), &c, &d), 0);
	assert_int_equal(d.n, 1);
	assert_true(d.items[0].warning);
	assert_int_equal(d.items[0].line, 3);
	assert_string_equal(d.items[0].path, "plugins[0].parameters.maxPrefixBlocksToMatch");
	assert_non_null(strstr(d.items[0].msg, "hashes no block"));
	ig_diags_free(&d);
	ig_picker_config_free(c);
	free(a);
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
	    cmocka_unit_test(test_out_of_nodes),
	    cmocka_unit_test(test_concurrent_exact),
	    cmocka_unit_test(test_concurrent_same_endpoint),
	    cmocka_unit_test(test_concurrent_commit_and_schedule),
	    cmocka_unit_test(test_long_prompt_hashes),
	    cmocka_unit_test(test_long_prompt_matching),
	    cmocka_unit_test(test_long_prompt_scheduling),
	    cmocka_unit_test(test_long_prompt_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
