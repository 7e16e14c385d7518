/* The candidates a request reads (gateway/candidates.c): a list read under
 * a list id, kept between reads, must give what reading every endpoint
 * afresh gives, whatever changed in between: scraped figures, pending
 * dispatches and their ends, rotation, adapter sets asked for or not, other
 * lists read meanwhile, and callers reordering what they own. */
#include <setjmp.h>
#include <stdarg.h>
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
#define NEPS 40
#define MS 1000000ull

struct fixture {
	struct ig_endpoints *reg;
	struct ig_endpoint *eps[NEPS];
};

static void setup(struct fixture *f, size_t n)
{
	f->reg = ig_endpoints_new(SLOTS);
	assert_non_null(f->reg);
	for (size_t i = 0; i < n; i++) {
		char addr[32];
		snprintf(addr, sizeof addr, "10.0.%zu.%zu:8000", i / 200, i % 200);
		f->eps[i] = ig_endpoint_get(f->reg, addr);
		assert_non_null(f->eps[i]);
	}
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
	atomic_store(&f.eps[1]->out_of_rotation, true);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_false(c.kept);
	assert_int_equal(c.n, 4);
	assert_ptr_equal(c.eps[0], f.eps[0]);
	assert_ptr_equal(c.eps[1], f.eps[2]);
	assert_ptr_equal(c.se[1].m, &c.load[1]);
	assert_int_equal(c.se[3].m->waiting, 4);
	/* All out: all in. */
	for (size_t i = 0; i < 5; i++)
		atomic_store(&f.eps[i]->out_of_rotation, true);
	assert_int_equal(ig_candidates_read(&c, f.eps, 5, 0, false, now, 7), 0);
	assert_int_equal(c.n, 5);
	for (size_t i = 0; i < 5; i++)
		atomic_store(&f.eps[i]->out_of_rotation, false);
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
 * kept read is what a fresh read says. */
static void test_kept_against_fresh(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, NEPS);
	/* Six lists over the endpoints: overlapping slices, one reversed. */
	struct ig_endpoint *lists[6][NEPS];
	size_t lens[6];
	for (size_t l = 0; l < 6; l++) {
		lens[l] = 5 + 7 * l;
		for (size_t i = 0; i < lens[l]; i++)
			lists[l][i] = f.eps[l == 5 ? NEPS - 1 - i : (i + l) % NEPS];
	}
	struct {
		size_t ep, slot;
		unsigned epoch;
	} open[64];
	size_t nopen = 0;
	uint64_t rng = 99, now = 100 * MS;
	for (int step = 0; step < 4000; step++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t r = rng >> 33;
		size_t ep = r % NEPS;
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
			atomic_store(&f.eps[ep]->out_of_rotation, (r >> 16) % 4 == 0);
			break;
		default:
			break;
		}
		if ((r >> 24) % 3 == 0)
			now += MS + (r >> 26) % MS;
		size_t l = (r >> 28) % 6;
		check_same(lists[l], lens[l], (r >> 4) % SLOTS, (r >> 30) % 2, now, 100 + l);
	}
	teardown(&f, NEPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kept_follows_changes),
	    cmocka_unit_test(test_own_leaves_the_kept_list),
	    cmocka_unit_test(test_kept_against_fresh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
