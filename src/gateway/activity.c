/* A worker's recent picks and request counts (activity.h). */
#include "gateway/activity.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WORDS ((sizeof(struct ig_decision) + 7) / 8)
#define CACHE_LINE 64

/* A decision is stored as words written and read with relaxed atomics, so
 * a reader racing the writer reads torn data (which the sequence number
 * tells it to drop) but never races in the C memory model's sense. */
struct slot {
	_Atomic uint32_t seq; /* odd while written; 0: never written */
	_Atomic uint64_t words[WORDS];
};

/* Counters have one writer, the worker: it adds with a relaxed load and
 * store, not a read-modify-write. */
struct ig_activity {
	int worker;
	uint64_t next; /* the slot written next (the worker's own) */
	_Atomic uint64_t requests, ok, client_errors, server_errors, cancelled;
	_Atomic uint64_t latency[IG_ACTIVITY_BUCKETS];
	struct slot slots[IG_ACTIVITY_SLOTS];
};

struct ig_activity *ig_activity_new(int worker)
{
	/* Its own cache lines: another worker's writes never contend with it. */
	size_t size = (sizeof(struct ig_activity) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	struct ig_activity *a = aligned_alloc(CACHE_LINE, size);
	if (!a)
		return NULL;
	memset(a, 0, size);
	a->worker = worker;
	return a;
}

void ig_activity_free(struct ig_activity *a)
{
	free(a);
}

static void bump(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static size_t bucket_of(double ms)
{
	if (!(ms > 0.5))
		return 0;
	double x = ceil(2 * log2(ms / 0.5));
	return x >= IG_ACTIVITY_BUCKETS - 1 ? IG_ACTIVITY_BUCKETS - 1 : (size_t)x;
}

double ig_activity_bucket_ms(size_t i)
{
	return i + 1 >= IG_ACTIVITY_BUCKETS ? INFINITY : 0.5 * exp2((double)i / 2);
}

static void copy_name(char *dst, const char *src)
{
	size_t n = src ? strnlen(src, IG_ACTIVITY_NAME - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = 0;
}

static void count(struct ig_activity *a, int status, uint64_t duration_ns)
{
	bump(&a->requests);
	if (status == 499)
		bump(&a->cancelled);
	else if (status >= 500 || status == 0)
		bump(&a->server_errors);
	else if (status >= 400)
		bump(&a->client_errors);
	else {
		bump(&a->ok);
		bump(&a->latency[bucket_of((double)duration_ns / 1e6)]);
	}
}

void ig_activity_record(struct ig_activity *a, const char *model, const char *target,
			const char *pool, const char *endpoint, int status, uint64_t start_ns,
			uint64_t end_ns)
{
	if (!a)
		return;
	struct ig_decision d = {
	    .end_ns = end_ns,
	    .duration_ns = end_ns > start_ns ? end_ns - start_ns : 0,
	    .status = status,
	    .worker = a->worker,
	};
	copy_name(d.model, model);
	copy_name(d.target, target);
	copy_name(d.pool, pool);
	copy_name(d.endpoint, endpoint);
	count(a, status, d.duration_ns);
	uint64_t words[WORDS] = {0};
	memcpy(words, &d, sizeof d);

	struct slot *s = &a->slots[a->next++ % IG_ACTIVITY_SLOTS];
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
	atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < WORDS; i++)
		atomic_store_explicit(&s->words[i], words[i], memory_order_relaxed);
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

size_t ig_activity_decisions(const struct ig_activity *a, struct ig_decision *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; a && i < IG_ACTIVITY_SLOTS && n < max; i++) {
		const struct slot *s = &a->slots[i];
		uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (before == 0 || before & 1)
			continue;
		uint64_t words[WORDS];
		for (size_t k = 0; k < WORDS; k++)
			words[k] = atomic_load_explicit(&s->words[k], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) != before)
			continue; /* rewritten while we read it */
		memcpy(&out[n++], words, sizeof out[0]);
	}
	return n;
}

void ig_activity_add(const struct ig_activity *a, struct ig_activity_totals *t)
{
	if (!a)
		return;
	t->requests += atomic_load_explicit(&a->requests, memory_order_relaxed);
	t->ok += atomic_load_explicit(&a->ok, memory_order_relaxed);
	t->client_errors += atomic_load_explicit(&a->client_errors, memory_order_relaxed);
	t->server_errors += atomic_load_explicit(&a->server_errors, memory_order_relaxed);
	t->cancelled += atomic_load_explicit(&a->cancelled, memory_order_relaxed);
	for (size_t i = 0; i < IG_ACTIVITY_BUCKETS; i++)
		t->latency[i] += atomic_load_explicit(&a->latency[i], memory_order_relaxed);
}

double ig_activity_quantile_ms(const struct ig_activity_totals *t, double q)
{
	uint64_t total = 0;
	for (size_t i = 0; i < IG_ACTIVITY_BUCKETS; i++)
		total += t->latency[i];
	if (!total)
		return -1;
	double rank = q * (double)total, seen = 0;
	for (size_t i = 0; i < IG_ACTIVITY_BUCKETS; i++) {
		double c = (double)t->latency[i];
		if (c > 0 && seen + c >= rank) {
			double lo = i ? ig_activity_bucket_ms(i - 1) : 0;
			/* Past the last bound there is nothing to interpolate to. */
			if (i + 1 == IG_ACTIVITY_BUCKETS)
				return lo;
			return lo + (ig_activity_bucket_ms(i) - lo) * (rank - seen) / c;
		}
		seen += c;
	}
	return ig_activity_bucket_ms(IG_ACTIVITY_BUCKETS - 2);
}
