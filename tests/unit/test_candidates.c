/* The candidates a request reads (gateway/candidates.c): a list read under
 * a list id, kept between reads, must give what reading every endpoint
 * afresh gives, whatever changed in between: scraped figures, pending
 * dispatches and their ends, rotation, adapter sets asked for or not, other
 * lists read meanwhile, and callers reordering what they own. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/candidates.h"
#include "pool/endpoint.h"

#define SLOTS 3
#define NEPS 200
#define MS 1000000ull

struct fixture {
	struct ig_endpoints *reg;
	struct ig_endpoint *eps[NEPS];
};

/* n endpoints, the first `dense` of them with an index. */
static void setup_dense(struct fixture *f, size_t n, uint32_t dense)
{
	f->reg = ig_endpoints_new_dense(SLOTS, dense);
	assert_non_null(f->reg);
	for (size_t i = 0; i < n; i++) {
		char addr[32];
		snprintf(addr, sizeof addr, "10.0.%zu.%zu:8000", i / 200, i % 200);
		f->eps[i] = ig_endpoint_get(f->reg, addr);
		assert_non_null(f->eps[i]);
	}
}

static void setup(struct fixture *f, size_t n)
{
	setup_dense(f, n, IG_ENDPOINT_DENSE);
}

static void teardown(struct fixture *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ig_endpoint_put(f->eps[i]);
	ig_endpoints_free(f->reg);
}

static void scrape(struct ig_endpoint *ep, int64_t waiting, double kv, uint64_t at_ns,
		   uint64_t adapter)
{
	struct ig_endpoint_metrics m = {0};
	m.waiting = waiting;
	m.running = waiting + 1;
	m.kv_usage = kv;
	m.max_active = 4;
	m.active.n = adapter ? 1 : 0;
	m.active.hash[0] = adapter;
	m.updated_ns = at_ns;
	unsigned e = ig_endpoint_scrape_sent(ep);
	ig_endpoint_write_metrics(ep, &m);
	ig_endpoint_scrape_applied(ep, e);
}

/* A copy of a read: the arrays are the thread's until its next read. */
struct copy {
	size_t n;
	struct ig_endpoint *eps[NEPS];
	struct ig_endpoint_load load[NEPS];
	struct ig_sched_endpoint se[NEPS];
	bool full;
	struct ig_endpoint_metrics fullm[NEPS];
};

static void copy_of(const struct ig_candidates *c, struct copy *o)
{
	o->n = c->n;
	o->full = c->full != NULL;
	for (size_t i = 0; i < c->n; i++) {
		o->eps[i] = c->eps[i];
		o->load[i] = *c->se[i].m;
		assert_memory_equal(&c->load[i], c->se[i].m, sizeof c->load[i]);
		o->se[i] = c->se[i];
		if (c->full) {
			assert_ptr_equal(c->se[i].full, &c->full[i]);
			o->fullm[i] = c->full[i];
		}
	}
}

/* A kept read and a fresh one of the same list agree, field by field. */
static void check_same(struct ig_endpoint *const *eps, size_t n, size_t self, bool adapters,
		       uint64_t now, uint64_t list)
{
	struct ig_candidates c;
	struct copy kept, fresh;
	assert_int_equal(ig_candidates_read(&c, eps, n, self, adapters, now, list), 0);
	copy_of(&c, &kept);
	assert_int_equal(ig_candidates_read(&c, eps, n, self, adapters, now, 0), 0);
	copy_of(&c, &fresh);
	assert_int_equal(kept.n, fresh.n);
	for (size_t i = 0; i < fresh.n; i++) {
		assert_ptr_equal(kept.eps[i], fresh.eps[i]);
		assert_memory_equal(&kept.load[i], &fresh.load[i], sizeof fresh.load[i]);
		assert_int_equal(kept.se[i].metrics_age_ms, fresh.se[i].metrics_age_ms);
		assert_int_equal(kept.se[i].inflight_requests, fresh.se[i].inflight_requests);
		assert_int_equal(kept.se[i].inflight_tokens, fresh.se[i].inflight_tokens);
		assert_int_equal(kept.se[i].key, fresh.se[i].key);
		assert_true(ig_str_eq(kept.se[i].addr, fresh.se[i].addr));
		if (adapters) {
			assert_true(kept.full && fresh.full);
			assert_int_equal(kept.fullm[i].active.n, fresh.fullm[i].active.n);
			if (fresh.fullm[i].active.n) /* a set is copied up to its count */
				assert_int_equal(kept.fullm[i].active.hash[0],
						 fresh.fullm[i].active.hash[0]);
		}
	}
}

static void test_kept_follows_changes(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, 5);
	uint64_t now = 1000 * MS;
	for (size_t i = 0; i < 5; i++)
		scrape(f.eps[i], (int64_t)i, 0.1 * (double)i, now - i * MS, 0);
	struct ig_candidates c;
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_true(c.kept);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.se[3].m->waiting, 3);
	assert_int_equal(c.se[3].metrics_age_ms, 3);
	/* A scrape of one endpoint. */
	scrape(f.eps[3], 9, 0.9, now, 0);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_int_equal(c.se[3].m->waiting, 9);
	assert_int_equal(c.load[3].waiting, 9);
	assert_int_equal(c.se[3].metrics_age_ms, 0);
	/* Another worker's dispatch shows, and its end clears it. */
	unsigned e = ig_endpoint_dispatch(f.eps[2], 1, 100);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_int_equal(c.se[2].inflight_requests, 1);
	assert_int_equal(c.se[2].inflight_tokens, 100);
	ig_endpoint_finish(f.eps[2], 1, e, 100);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_int_equal(c.se[2].inflight_requests, 0);
	assert_int_equal(c.se[2].inflight_tokens, 0);
	/* Out of rotation: left out, in order; back: all five, kept again. */
	ig_endpoint_set_out_of_rotation(f.eps[1], true);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_false(c.kept);
	assert_int_equal(c.n, 4);
	assert_ptr_equal(c.eps[0], f.eps[0]);
	assert_ptr_equal(c.eps[1], f.eps[2]);
	assert_ptr_equal(c.se[1].m, &c.load[1]);
	assert_int_equal(c.se[3].m->waiting, 4);
	/* All out: all in. */
	for (size_t i = 0; i < 5; i++)
		ig_endpoint_set_out_of_rotation(f.eps[i], true);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_int_equal(c.n, 5);
	for (size_t i = 0; i < 5; i++)
		ig_endpoint_set_out_of_rotation(f.eps[i], false);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_true(c.kept);
	assert_int_equal(c.n, 5);
	/* Ages move with time, a millisecond at a time. */
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now + 10 * MS, 7), 0);
	assert_int_equal(c.se[0].metrics_age_ms, 10);
	assert_int_equal(c.se[4].metrics_age_ms, 14);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now + 10 * MS + MS / 2, 7), 0);
	assert_true(c.se[0].metrics_age_ms == 10);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now + 12 * MS, 7), 0);
	assert_int_equal(c.se[0].metrics_age_ms, 12);
	/* Adapter sets asked for after reads without them. */
	scrape(f.eps[0], 0, 0.0, now, 77);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, true, now + 12 * MS, 7), 0);
	assert_non_null(c.full);
	assert_int_equal(c.full[0].active.n, 1);
	assert_int_equal(c.full[0].active.hash[0], 77);
	assert_ptr_equal(c.se[0].full, &c.full[0]);
	teardown(&f, 5);
}

/* What a caller owns it may reorder; the next read is as before. */
static void test_own_leaves_the_kept_list(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, 6);
	for (size_t i = 0; i < 6; i++)
		scrape(f.eps[i], (int64_t)i, 0.0, 5 * MS, 0);
	struct ig_candidates c;
	assert_int_equal(ig_candidates_read(&c, f.eps, 6, 0, false, 6 * MS, 3), 0);
	assert_true(c.kept);
	assert_int_equal(ig_candidates_own(&c), 0);
	assert_false(c.kept);
	for (size_t i = 0; i < 6; i++) {
		assert_ptr_equal(c.eps[i], f.eps[i]);
		assert_ptr_equal(c.se[i].m, &c.load[i]);
		assert_int_equal(c.se[i].m->waiting, (int64_t)i);
	}
	/* Reverse, drop two, scribble on the loads. */
	for (size_t i = 0; i < 3; i++) {
		struct ig_endpoint *t = c.eps[i];
		c.eps[i] = c.eps[5 - i];
		c.eps[5 - i] = t;
	}
	c.n = 4;
	for (size_t i = 0; i < 6; i++)
		c.load[i].waiting = 1000;
	check_same(f.eps, 6, 0, false, 6 * MS, 3);
	teardown(&f, 6);
}

/* Random changes between reads of several lists, more than a thread
 * keeps, from several worker slots, with and without adapter sets: every
 * kept read is what a fresh read says. n endpoints, `dense` of them with
 * an index: lists of indexed endpoints are followed through the change
 * log, the others read whole. */
static void kept_against_fresh(size_t n, uint32_t dense, uint64_t seed)
{
	struct fixture f;
	setup_dense(&f, n, dense);
	/* Seven lists over the endpoints: overlapping slices, one reversed,
	 * one of four endpoints spread over the whole registry (indexes too
	 * far apart for the log's map). */
	struct ig_endpoint *lists[7][NEPS];
	size_t lens[7];
	for (size_t l = 0; l < 6; l++) {
		lens[l] = 5 + 7 * l;
		for (size_t i = 0; i < lens[l]; i++)
			lists[l][i] = f.eps[l == 5 ? n - 1 - i : (i + l) % n];
	}
	lens[6] = 4;
	for (size_t i = 0; i < 4; i++)
		lists[6][i] = f.eps[(i * n) / 4 + i];
	struct {
		size_t ep, slot;
		unsigned epoch;
	} open[64];
	size_t nopen = 0;
	uint64_t rng = seed, now = 100 * MS;
	for (int step = 0; step < 4000; step++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t r = rng >> 33;
		/* Most changes to the endpoints the lists read. */
		size_t ep = (r >> 40) % 4 ? r % 40 : r % n;
		switch ((r >> 8) % 6) {
		case 0:
			scrape(f.eps[ep], (int64_t)(r % 13), (double)(r % 10) / 10,
			       now - (r % 3) * MS, (r >> 20) % 3);
			break;
		case 1:
			if (nopen < 64) {
				size_t slot = (r >> 12) % SLOTS;
				open[nopen].ep = ep;
				open[nopen].slot = slot;
				open[nopen++].epoch = ig_endpoint_dispatch(f.eps[ep], slot, 10);
			}
			break;
		case 2:
			if (nopen) {
				size_t j = (r >> 12) % nopen;
				ig_endpoint_finish(f.eps[open[j].ep], open[j].slot, open[j].epoch,
						   10);
				open[j] = open[--nopen];
			}
			break;
		case 3:
			ig_endpoint_set_out_of_rotation(f.eps[ep], (r >> 16) % 4 == 0);
			break;
		default:
			break;
		}
		if ((r >> 24) % 3 == 0)
			now += MS + (r >> 26) % MS;
		size_t l = (r >> 28) % 7;
		check_same(lists[l], lens[l], (r >> 4) % SLOTS, (r >> 30) % 2, now, seed + 100 + l);
	}
	teardown(&f, n);
}

static void test_kept_against_fresh(void **state)
{
	(void)state;
	kept_against_fresh(40, IG_ENDPOINT_DENSE, 99);
	kept_against_fresh(NEPS, IG_ENDPOINT_DENSE, 1000);
	/* Endpoints with and without an index in one list. */
	kept_against_fresh(40, 24, 2000);
}

/* A thread that read a list, then fell behind by more than the change log
 * holds: what changed on the list meanwhile still shows in its next read
 * (the list is read whole). */
static void test_kept_after_the_log_wrapped(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, 8);
	uint64_t now = 50 * MS;
	for (size_t i = 0; i < 8; i++)
		scrape(f.eps[i], 1, 0.5, now, 0);
	struct ig_candidates c;
	assert_int_equal(ig_candidates_read(&c, f.eps, 4, 0, false, now, 5), 0);
	assert_int_equal(c.se[2].m->waiting, 1);
	/* Read once through the log. */
	scrape(f.eps[1], 6, 0.5, now, 0);
	assert_int_equal(ig_candidates_read(&c, f.eps, 4, 0, false, now, 5), 0);
	assert_int_equal(c.se[1].m->waiting, 6);
	/* One change on the list, then a whole log's worth elsewhere. */
	scrape(f.eps[2], 7, 0.5, now, 0);
	for (uint32_t i = 0; i < IG_ENDPOINT_LOG; i++)
		scrape(f.eps[4 + i % 4], (int64_t)(i % 5), 0.5, now, 0);
	assert_int_equal(ig_candidates_read(&c, f.eps, 4, 0, false, now, 5), 0);
	assert_int_equal(c.se[2].m->waiting, 7);
	assert_int_equal(c.se[1].m->waiting, 6);
	/* And through the log again after that. */
	scrape(f.eps[3], 8, 0.5, now, 0);
	assert_int_equal(ig_candidates_read(&c, f.eps, 4, 0, false, now, 5), 0);
	assert_int_equal(c.se[3].m->waiting, 8);
	teardown(&f, 8);
}

/* A scraper thread writing while a worker thread reads kept lists: each
 * endpoint's figures only move forward in what the reader sees, and once
 * the scraper has stopped, a read shows every endpoint's last figures (no
 * change lost between the log and the reader). Fewer changes in all than
 * the log holds, so that the reader follows the log throughout. */
struct race {
	struct fixture f;
	size_t n;
	int rounds;
	atomic_bool go, done;
};

static void *race_scraper(void *arg)
{
	struct race *x = arg;
	while (!atomic_load(&x->go))
		;
	for (int round = 1; round <= x->rounds; round++)
		for (size_t i = 0; i < x->n; i++)
			if ((round + (int)i) % 3 != 0 || round == x->rounds)
				scrape(x->f.eps[i], round, 0.5, (uint64_t)round * MS, 0);
	atomic_store(&x->done, true);
	return NULL;
}

static void test_kept_while_scraped(void **state)
{
	(void)state;
	struct race x = {.n = 150, .rounds = 20};
	setup(&x.f, x.n);
	atomic_init(&x.go, false);
	atomic_init(&x.done, false);
	int64_t seen[NEPS] = {0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, race_scraper, &x), 0);
	struct ig_candidates c;
	uint64_t now = 1000 * MS;
	bool last = false;
	for (size_t l = 0; l < 2; l++)
		assert_int_equal(
		    ig_candidates_read(&c, x.f.eps, l ? x.n : 100, 0, false, now, 40 + l), 0);
	atomic_store(&x.go, true);
	while (!last) {
		last = atomic_load(&x.done);
		/* Two lists: the first 100 endpoints, and all of them. */
		for (size_t l = 0; l < 2; l++) {
			size_t n = l ? x.n : 100;
			assert_int_equal(ig_candidates_read(&c, x.f.eps, n, 0, false, now, 40 + l),
					 0);
			assert_int_equal(c.n, n);
			for (size_t i = 0; i < n; i++) {
				assert_true(c.se[i].m->waiting >= seen[i]);
				seen[i] = c.se[i].m->waiting;
				if (last)
					assert_int_equal(seen[i], x.rounds);
			}
		}
	}
	pthread_join(t, NULL);
	teardown(&x.f, x.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kept_follows_changes),
	    cmocka_unit_test(test_own_leaves_the_kept_list),
	    cmocka_unit_test(test_kept_against_fresh),
	    cmocka_unit_test(test_kept_after_the_log_wrapped),
	    cmocka_unit_test(test_kept_while_scraped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
