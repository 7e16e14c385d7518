/* The endpoint metrics seqlock: a reader never gets a mix of two writes,
 * and (under ThreadSanitizer, make tsan) readers racing the writer are no
 * data race. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/gw.h"

enum { N_WRITES = 20000, N_READERS = 3 };

/* Every field of write k says k, so a torn copy shows as a disagreement. */
static void fill(struct ig_endpoint_metrics *m, int64_t k)
{
	memset(m, 0, sizeof *m);
	m->waiting = k;
	m->running = k;
	m->kv_usage = (double)k;
	m->active.n = (uint32_t)k;
	m->running_adapters.hash[IG_MAX_ADAPTERS - 1] = (uint64_t)k;
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
	int64_t prev = 0;
	do {
		ig_endpoint_read_metrics(a->sh->ep, &m);
		if (!consistent(&m) || m.waiting < prev)
			a->sh->torn[a->i]++;
		prev = m.waiting;
	} while (!atomic_load(&a->sh->done));
	/* done was set after the last write: a read from now on sees it. */
	ig_endpoint_read_metrics(a->sh->ep, &m);
	a->sh->last[a->i] = m.waiting;
	return NULL;
}

static void test_readers_never_see_a_torn_copy(void **state)
{
	struct shared sh = {.ep = ig_endpoint_get("127.0.0.1:9")};
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
	ig_endpoint_put(sh.ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_readers_never_see_a_torn_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
