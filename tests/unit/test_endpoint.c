/* The endpoint metrics seqlock: a reader never gets a mix of two writes,
 * of the full metrics, of the picker's part of them or of the load figures
 * published with them, and
 * (under ThreadSanitizer, make tsan) readers racing the writer are no data
 * race. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool/endpoint.h"

enum { N_WRITES = 20000, N_READERS = 3 };

/* Every field of write k says k, so a torn copy shows as a disagreement. */
static void fill(struct ig_endpoint_metrics *m, int64_t k)
{
	memset(m, 0, sizeof *m);
	m->waiting = k;
	m->running = k;
	m->kv_usage = (double)k;
	m->active.n = (uint32_t)(k % (IG_MAX_ADAPTERS + 1));
	for (uint32_t i = 0; i < m->active.n; i++)
		m->active.hash[i] = (uint64_t)k + i;
	m->running_adapters.n = IG_MAX_ADAPTERS;
	m->running_adapters.hash[IG_MAX_ADAPTERS - 1] = (uint64_t)k;
	m->waiting_adapters.n = 1;
	m->waiting_adapters.hash[0] = (uint64_t)k;
	m->base_model = (uint64_t)k;
	m->max_active = k;
	snprintf(m->running_text, sizeof m->running_text, "%lld", (long long)k);
	memset(m->waiting_text, 'a' + (int)(k % 26), sizeof m->waiting_text - 1);
	m->updated_ns = (uint64_t)k;
}

static int consistent(const struct ig_endpoint_metrics *m)
{
	struct ig_endpoint_metrics want;
	fill(&want, m->waiting);
	return memcmp(m, &want, sizeof want) == 0;
}

static int set_eq(const struct ig_adapter_set *a, const struct ig_adapter_set *b)
{
	return a->n == b->n && memcmp(a->hash, b->hash, a->n * sizeof(a->hash[0])) == 0;
}

/* What ig_endpoint_read_sched copies of write k: all but the texts. */
static int sched_consistent(const struct ig_endpoint_metrics *m)
{
	struct ig_endpoint_metrics w;
	fill(&w, m->waiting);
	return m->running == w.running && m->kv_usage == w.kv_usage &&
	       set_eq(&m->active, &w.active) && set_eq(&m->running_adapters, &w.running_adapters) &&
	       set_eq(&m->waiting_adapters, &w.waiting_adapters) && m->max_active == w.max_active &&
	       m->base_model == w.base_model && m->updated_ns == w.updated_ns &&
	       m->running_text[0] == '\0' && m->waiting_text[0] == '\0';
}

/* The load figures of write k. */
static int load_consistent(const struct ig_endpoint_load *l)
{
	int64_t k = l->waiting;
	return l->running == k && l->kv_usage == (double)k && l->max_active == k &&
	       l->updated_ns == (uint64_t)k;
}

struct shared {
	struct ig_endpoint *ep;
	atomic_int done;
	int torn[N_READERS];
	int64_t last[N_READERS];
};

struct reader_arg {
	struct shared *sh;
	int i;
};

static void *reader(void *arg)
{
	struct reader_arg *a = arg;
	struct ig_endpoint_metrics m;
	struct ig_endpoint_load l;
	int64_t prev = 0, prev_load = 0, prev_sched = 0;
	do {
		ig_endpoint_read_metrics(a->sh->ep, &m);
		if (!consistent(&m) || m.waiting < prev)
			a->sh->torn[a->i]++;
		prev = m.waiting;
		ig_endpoint_read_load(a->sh->ep, &l);
		if (!load_consistent(&l) || l.waiting < prev_load)
			a->sh->torn[a->i]++;
		prev_load = l.waiting;
		ig_endpoint_read_sched(a->sh->ep, &m);
		if (!sched_consistent(&m) || m.waiting < prev_sched)
			a->sh->torn[a->i]++;
		prev_sched = m.waiting;
	} while (!atomic_load(&a->sh->done));
	/* done was set after the last write: a read from now on sees it. */
	ig_endpoint_read_metrics(a->sh->ep, &m);
	a->sh->last[a->i] = m.waiting;
	return NULL;
}

static void test_readers_never_see_a_torn_copy(void **state)
{
	struct ig_endpoints *reg = ig_endpoints_new(2);
	assert_non_null(reg);
	struct shared sh = {.ep = ig_endpoint_get(reg, "127.0.0.1:9")};
	assert_non_null(sh.ep);
	atomic_init(&sh.done, 0);
	struct ig_endpoint_metrics m;
	fill(&m, 0);
	ig_endpoint_write_metrics(sh.ep, &m);
	pthread_t t[N_READERS];
	struct reader_arg args[N_READERS];
	for (int i = 0; i < N_READERS; i++) {
		args[i] = (struct reader_arg){&sh, i};
		assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	for (int64_t k = 1; k <= N_WRITES; k++) {
		fill(&m, k);
		ig_endpoint_write_metrics(sh.ep, &m);
	}
	atomic_store(&sh.done, 1);
	for (int i = 0; i < N_READERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(sh.torn[i], 0);
		assert_int_equal(sh.last[i], N_WRITES);
	}
	ig_endpoint_read_metrics(sh.ep, &m);
	assert_true(consistent(&m));
	assert_int_equal(m.waiting, N_WRITES);
	memset(&m, 0xff, sizeof m);
	ig_endpoint_read_sched(sh.ep, &m);
	assert_true(sched_consistent(&m));
	assert_int_equal(m.waiting, N_WRITES);
	assert_int_equal(m.active.n, N_WRITES % (IG_MAX_ADAPTERS + 1));
	struct ig_endpoint_load l;
	ig_endpoint_read_load(sh.ep, &l);
	assert_true(load_consistent(&l));
	assert_int_equal(l.waiting, N_WRITES);
	ig_endpoint_put(sh.ep);
	ig_endpoints_free(reg);
}

/* The registry hands out one endpoint per address, counted, and frees it
 * with its last reference. */
static void test_registry_refs(void **state)
{
	struct ig_endpoints *reg = ig_endpoints_new(4);
	struct ig_endpoint *a = ig_endpoint_get(reg, "10.0.0.1:8000");
	struct ig_endpoint *b = ig_endpoint_get(reg, "10.0.0.1:8000");
	struct ig_endpoint *c = ig_endpoint_get(reg, "[fd00::1]:8000");
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_non_null(c);
	assert_ptr_not_equal(a, c);
	assert_null(ig_endpoint_get(reg, "not-an-ip:8000"));
	assert_int_equal(atomic_load(&a->refs), 2);
	ig_endpoint_put(a);
	ig_endpoint_put(b);
	ig_endpoint_put(c);
	ig_endpoints_free(reg);
}

static long pending(struct ig_endpoint *ep, long *tokens)
{
	long r, t;
	ig_endpoint_pending(ep, SIZE_MAX, &r, &t);
	if (tokens)
		*tokens = t;
	return r;
}

/* Per-worker slots sum. A request is pending from dispatch until it
 * finishes or a scrape sent after its dispatch is applied. */
static void test_accounting(void **state)
{
	struct ig_endpoints *reg = ig_endpoints_new(3);
	struct ig_endpoint *ep = ig_endpoint_get(reg, "10.0.0.2:8000");
	long tok;
	unsigned e0 = ig_endpoint_dispatch(ep, 0, 100);
	unsigned e1 = ig_endpoint_dispatch(ep, 1, 50);
	unsigned e2 = ig_endpoint_dispatch(ep, 2, 10);
	assert_int_equal(ig_endpoint_inflight(ep), 3);
	assert_int_equal(ig_endpoint_requests(ep), 3);
	assert_int_equal(pending(ep, &tok), 3);
	assert_int_equal(tok, 160);
	/* A finished request stops counting at once. */
	ig_endpoint_finish(ep, 2, e2, 10);
	assert_int_equal(pending(ep, &tok), 2);
	assert_int_equal(tok, 150);
	/* A scrape is sent; one more request goes out while it is in flight. */
	unsigned s = ig_endpoint_scrape_sent(ep);
	unsigned e3 = ig_endpoint_dispatch(ep, 1, 7);
	assert_int_equal(pending(ep, NULL), 3);
	/* Its page is applied: the pod may not have counted the two sent just
	 * before it yet, so all three stay pending. */
	ig_endpoint_scrape_applied(ep, s);
	assert_int_equal(pending(ep, &tok), 3);
	/* The next scrape's page: the two dispatched before the previous
	 * scrape are in its figures, the one sent after it still pending. */
	ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	assert_int_equal(pending(ep, &tok), 1);
	/* Their tokens are in flight until they finish, whatever the pages
	 * say (llm-d's inflight-load-producer). */
	assert_int_equal(tok, 157);
	/* Covered requests finishing later change no request count... */
	ig_endpoint_finish(ep, 0, e0, 100);
	ig_endpoint_finish(ep, 1, e1, 50);
	assert_int_equal(pending(ep, &tok), 1);
	assert_int_equal(tok, 7);
	/* ...the pending one finishing ends it. */
	ig_endpoint_finish(ep, 1, e3, 7);
	assert_int_equal(pending(ep, &tok), 0);
	assert_int_equal(tok, 0);
	assert_int_equal(ig_endpoint_inflight(ep), 0);
	assert_int_equal(ig_endpoint_requests(ep), 4);
	/* An older page applied late does not move the baseline back. */
	unsigned s2 = ig_endpoint_scrape_sent(ep);
	unsigned s3 = ig_endpoint_scrape_sent(ep);
	unsigned e4 = ig_endpoint_dispatch(ep, 0, 1);
	ig_endpoint_scrape_applied(ep, s3);
	ig_endpoint_scrape_applied(ep, s2);
	assert_int_equal(pending(ep, NULL), 1);
	ig_endpoint_finish(ep, 0, e4, 1);
	ig_endpoint_put(ep);
	ig_endpoints_free(reg);
}

/* A scrape sent just after a dispatch can be answered before the pod has
 * read the request (a new connection still being accepted, the pod's own
 * order of events, parsing and tokenizing before the engine counts it):
 * its page must not end the request's pending count. The next scrape's
 * page, sent a whole interval after the dispatch, does. */
static void test_accounting_page_racing_the_request(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_endpoint *ep = ig_endpoint_get(reg, "10.0.0.4:8000");
	unsigned e = ig_endpoint_dispatch(ep, 0, 5);
	unsigned s1 = ig_endpoint_scrape_sent(ep);
	ig_endpoint_scrape_applied(ep, s1); /* may not hold the request yet */
	assert_int_equal(pending(ep, NULL), 1);
	unsigned s2 = ig_endpoint_scrape_sent(ep);
	unsigned late = ig_endpoint_dispatch(ep, 0, 5);
	ig_endpoint_scrape_applied(ep, s2);	/* sent an interval after: holds it */
	assert_int_equal(pending(ep, NULL), 1); /* the later one only */
	ig_endpoint_finish(ep, 0, e, 5);
	assert_int_equal(pending(ep, NULL), 1);
	ig_endpoint_finish(ep, 0, late, 5);
	assert_int_equal(pending(ep, NULL), 0);
	ig_endpoint_put(ep);
	ig_endpoints_free(reg);
}

/* Sequential requests, each finished before the next, never add up;
 * failed scrapes (sent, never applied) keep a burst pending. */
static void test_accounting_sequences(void **state)
{
	struct ig_endpoints *reg = ig_endpoints_new(2);
	struct ig_endpoint *ep = ig_endpoint_get(reg, "10.0.0.3:8000");
	for (int i = 0; i < 1000; i++) {
		unsigned e = ig_endpoint_dispatch(ep, (size_t)(i % 2), 10);
		assert_int_equal(pending(ep, NULL), 1);
		ig_endpoint_finish(ep, (size_t)(i % 2), e, 10);
		if (i % 7 == 0)
			ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	}
	assert_int_equal(pending(ep, NULL), 0);
	unsigned es[64];
	for (int i = 0; i < 64; i++) {
		es[i] = ig_endpoint_dispatch(ep, (size_t)(i % 2), 1);
		if (i % 16 == 15)
			ig_endpoint_scrape_sent(ep); /* pages that never come */
	}
	assert_int_equal(pending(ep, NULL), 64);
	for (int i = 0; i < 64; i++)
		ig_endpoint_finish(ep, (size_t)(i % 2), es[i], 1);
	assert_int_equal(pending(ep, NULL), 0);
	ig_endpoint_put(ep);
	ig_endpoints_free(reg);
}

static long pending_as(struct ig_endpoint *ep, size_t self)
{
	long r, t;
	ig_endpoint_pending(ep, self, &r, &t);
	return r;
}

/* A slot's held bit: set by a dispatch in that slot, kept while anything
 * of that slot's is pending, cleared only by that slot's own read once
 * nothing is (a finished request, or one a scrape has covered); other
 * readers see the counts either way. */
static void test_held_bits(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new(3);
	struct ig_endpoint *ep = ig_endpoint_get(reg, "10.0.0.5:8000");
	for (size_t s = 0; s < 3; s++)
		assert_false(ig_endpoint_slot_held(ep, s));
	unsigned e = ig_endpoint_dispatch(ep, 1, 10);
	assert_true(ig_endpoint_slot_held(ep, 1));
	assert_false(ig_endpoint_slot_held(ep, 0));
	assert_int_equal(pending_as(ep, 0), 1);
	assert_int_equal(pending_as(ep, 1), 1); /* still pending: kept */
	assert_true(ig_endpoint_slot_held(ep, 1));
	ig_endpoint_finish(ep, 1, e, 10);
	assert_int_equal(pending_as(ep, 0), 0); /* another slot's read */
	assert_int_equal(pending_as(ep, SIZE_MAX), 0);
	assert_true(ig_endpoint_slot_held(ep, 1));
	assert_int_equal(pending_as(ep, 1), 0); /* its own: cleared */
	assert_false(ig_endpoint_slot_held(ep, 1));
	/* Counts a scrape has covered are not pending: cleared too, and
	 * the late finish changes nothing. */
	e = ig_endpoint_dispatch(ep, 2, 0);
	ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	assert_int_equal(pending_as(ep, 2), 1);
	assert_true(ig_endpoint_slot_held(ep, 2));
	ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	assert_int_equal(pending_as(ep, 2), 0);
	assert_false(ig_endpoint_slot_held(ep, 2));
	ig_endpoint_finish(ep, 2, e, 0);
	assert_int_equal(pending_as(ep, 0), 0);
	/* A covered request's tokens are still in flight: the bit stays
	 * until it finishes. */
	e = ig_endpoint_dispatch(ep, 2, 5);
	ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	ig_endpoint_scrape_applied(ep, ig_endpoint_scrape_sent(ep));
	long r, t;
	ig_endpoint_pending(ep, 2, &r, &t);
	assert_int_equal(r, 0);
	assert_int_equal(t, 5);
	assert_true(ig_endpoint_slot_held(ep, 2));
	ig_endpoint_finish(ep, 2, e, 5);
	assert_int_equal(pending_as(ep, 2), 0);
	assert_false(ig_endpoint_slot_held(ep, 2));
	/* A dispatch sets the bit again. */
	e = ig_endpoint_dispatch(ep, 2, 5);
	assert_true(ig_endpoint_slot_held(ep, 2));
	assert_int_equal(pending_as(ep, 0), 1);
	ig_endpoint_finish(ep, 2, e, 5);
	ig_endpoint_put(ep);
	ig_endpoints_free(reg);
}

/* Dense indexes: handed out lowest first, given back with the endpoint;
 * an endpoint past the limit has none and is always read; a bit its
 * index's last endpoint left set costs a read and nothing else. */
static void test_held_bits_and_indexes(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new_dense(2, 2);
	struct ig_endpoint *a = ig_endpoint_get(reg, "10.0.1.1:8000");
	struct ig_endpoint *b = ig_endpoint_get(reg, "10.0.1.2:8000");
	struct ig_endpoint *c = ig_endpoint_get(reg, "10.0.1.3:8000");
	assert_int_equal(a->idx, 0);
	assert_int_equal(b->idx, 1);
	assert_int_equal(c->idx, IG_ENDPOINT_NO_INDEX);
	assert_true(ig_endpoint_slot_held(c, 0) && ig_endpoint_slot_held(c, 1));
	unsigned ec = ig_endpoint_dispatch(c, 1, 3);
	assert_int_equal(pending_as(c, 1), 1);
	ig_endpoint_finish(c, 1, ec, 3);
	assert_int_equal(pending_as(c, 1), 0);
	ig_endpoint_dispatch(a, 0, 1); /* never finished: a goes with it */
	assert_int_equal(pending_as(b, 0), 0);
	ig_endpoint_put(a);
	struct ig_endpoint *d = ig_endpoint_get(reg, "10.0.1.4:8000");
	assert_int_equal(d->idx, 0);
	assert_true(ig_endpoint_slot_held(d, 0)); /* a's bit */
	assert_int_equal(pending_as(d, 1), 0);
	assert_int_equal(pending_as(d, 0), 0);
	assert_false(ig_endpoint_slot_held(d, 0));
	ig_endpoint_put(b);
	ig_endpoint_put(c);
	ig_endpoint_put(d);
	ig_endpoints_free(reg);
}

/* The any-slot check a loop over a pool makes: one OR of the slots' words
 * per 64 indexes, kept in the loop's memo, right across blocks. And the
 * endpoints with an index lie in one array, in index order. */
static void test_some_held(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new(3);
	struct ig_endpoint *eps[130];
	for (int i = 0; i < 130; i++) {
		char addr[32];
		snprintf(addr, sizeof addr, "10.0.2.%d:%d", i % 250, 8000 + i);
		eps[i] = ig_endpoint_get(reg, addr);
		assert_non_null(eps[i]);
		assert_int_equal(eps[i]->idx, i);
		if (i)
			assert_ptr_equal(eps[i], eps[i - 1] + 1);
	}
	unsigned e1 = ig_endpoint_dispatch(eps[66], 2, 1);
	unsigned e2 = ig_endpoint_dispatch(eps[129], 0, 1);
	struct ig_held_memo memo = {0};
	for (int i = 0; i < 130; i++)
		assert_int_equal(ig_endpoint_some_held(eps[i], &memo), i == 66 || i == 129);
	/* Back and forth between blocks with one memo. */
	assert_false(ig_endpoint_some_held(eps[1], &memo));
	assert_true(ig_endpoint_some_held(eps[66], &memo));
	assert_false(ig_endpoint_some_held(eps[65], &memo));
	assert_true(ig_endpoint_some_held(eps[129], &memo));
	ig_endpoint_finish(eps[66], 2, e1, 1);
	ig_endpoint_finish(eps[129], 0, e2, 1);
	long r, t;
	ig_endpoint_pending(eps[66], 2, &r, &t);
	ig_endpoint_pending(eps[129], 0, &r, &t);
	memo = (struct ig_held_memo){0};
	for (int i = 0; i < 130; i++)
		assert_false(ig_endpoint_some_held(eps[i], &memo));
	for (int i = 0; i < 130; i++)
		ig_endpoint_put(eps[i]);
	ig_endpoints_free(reg);
}

/* The slots mask a loop takes from its memo: bit s for each slot that
 * dispatched to the endpoint, with an odd slot count (read in pairs) and
 * across blocks; the pending counts read through it are the slot-by-slot
 * ones. */
static void test_held_slots(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new(5);
	struct ig_endpoint *eps[70];
	for (int i = 0; i < 70; i++) {
		char addr[32];
		snprintf(addr, sizeof addr, "10.0.3.%d:%d", i % 250, 8000 + i);
		eps[i] = ig_endpoint_get(reg, addr);
		assert_non_null(eps[i]);
	}
	ig_endpoint_dispatch(eps[3], 0, 5);
	ig_endpoint_dispatch(eps[3], 4, 7);
	ig_endpoint_dispatch(eps[64], 2, 11);
	ig_endpoint_dispatch(eps[69], 4, 13);
	struct ig_held_memo memo = {0};
	for (int i = 0; i < 70; i++) {
		uint64_t want = i == 3 ? 0x11u : i == 64 ? 0x4u : i == 69 ? 0x10u : 0;
		assert_int_equal(ig_endpoint_held_slots(eps[i], &memo), want);
	}
	assert_int_equal(ig_endpoint_held_slots(eps[3], &memo), 0x11u);
	long r, t, r2, t2;
	ig_endpoint_pending_of(eps[3], SIZE_MAX, 0x11u, &r, &t);
	ig_endpoint_pending(eps[3], SIZE_MAX, &r2, &t2);
	assert_int_equal(r, 2);
	assert_int_equal(t, 12);
	assert_int_equal(r2, r);
	assert_int_equal(t2, t);
	/* One slot of the two: only its counts. */
	ig_endpoint_pending_of(eps[3], SIZE_MAX, 0x10u, &r, &t);
	assert_int_equal(r, 1);
	assert_int_equal(t, 7);
	/* A memo read from another registry's bitmaps is not reused. */
	struct ig_endpoints *other = ig_endpoints_new(5);
	struct ig_endpoint *o = ig_endpoint_get(other, "10.0.4.1:8000");
	assert_non_null(o);
	assert_int_equal(o->idx, 0);
	assert_int_equal(ig_endpoint_held_slots(eps[3], &memo), 0x11u);
	assert_int_equal(ig_endpoint_held_slots(o, &memo), 0);
	ig_endpoint_put(o);
	ig_endpoints_free(other);
	for (int i = 0; i < 70; i++)
		ig_endpoint_put(eps[i]);
	ig_endpoints_free(reg);
}

/* The change log: every write of an endpoint's figures and every change
 * of its rotation flag appends its index; a place not yet written reads
 * as such, and one overwritten by a later round too. Endpoints without an
 * index log nothing. */
static void test_change_log(void **state)
{
	(void)state;
	struct ig_endpoints *reg = ig_endpoints_new_dense(2, 2);
	struct ig_endpoint *a = ig_endpoint_get(reg, "10.0.5.1:8000");
	struct ig_endpoint *b = ig_endpoint_get(reg, "10.0.5.2:8000");
	struct ig_endpoint *c = ig_endpoint_get(reg, "10.0.5.3:8000");
	assert_true(a && b && c);
	assert_int_equal(b->idx, 1);
	assert_int_equal(c->idx, IG_ENDPOINT_NO_INDEX);
	assert_null(ig_endpoint_log_of(c));
	const struct ig_endpoint_log *log = ig_endpoint_log_of(a);
	assert_non_null(log);
	assert_ptr_equal(ig_endpoint_log_of(b), log);
	uint64_t h = ig_endpoint_log_head(log);
	uint32_t x = 99;
	assert_int_equal(ig_endpoint_log_at(log, h, &x), 0);
	struct ig_endpoint_metrics m = {.waiting = 1};
	ig_endpoint_write_metrics(b, &m);
	ig_endpoint_write_metrics(c, &m);
	ig_endpoint_set_out_of_rotation(a, true);
	assert_int_equal(ig_endpoint_log_head(log), h + 2);
	assert_int_equal(ig_endpoint_log_at(log, h, &x), 1);
	assert_int_equal(x, 1);
	assert_int_equal(ig_endpoint_log_at(log, h + 1, &x), 1);
	assert_int_equal(x, 0);
	assert_int_equal(ig_endpoint_log_at(log, h + 2, &x), 0);
	/* A whole round later, the first place holds a newer entry. */
	for (uint32_t i = 0; i < IG_ENDPOINT_LOG; i++)
		ig_endpoint_write_metrics(a, &m);
	assert_int_equal(ig_endpoint_log_at(log, h, &x), -1);
	assert_int_equal(ig_endpoint_log_at(log, h + IG_ENDPOINT_LOG, &x), 1);
	assert_int_equal(x, 0);
	assert_int_equal(ig_endpoint_log_at(log, h + IG_ENDPOINT_LOG + 2, &x), 0);
	ig_endpoint_put(a);
	ig_endpoint_put(b);
	ig_endpoint_put(c);
	ig_endpoints_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_readers_never_see_a_torn_copy),
	    cmocka_unit_test(test_registry_refs),
	    cmocka_unit_test(test_accounting),
	    cmocka_unit_test(test_accounting_sequences),
	    cmocka_unit_test(test_accounting_page_racing_the_request),
	    cmocka_unit_test(test_held_bits),
	    cmocka_unit_test(test_held_bits_and_indexes),
	    cmocka_unit_test(test_some_held),
	    cmocka_unit_test(test_held_slots),
	    cmocka_unit_test(test_change_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
