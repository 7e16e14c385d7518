/* What a worker did lately, for the admin page (admin_page.c): a ring of
 * its last picks and its request counts and latency histogram. Each
 * worker has its own, written only by that worker at the end of a
 * request; the control thread reads every worker's while it renders
 * /api/status. Nothing shared is written on the request path: each ring
 * slot is a seqlock (a reader that raced the writer skips the slot), and
 * the counters are single-writer words read with relaxed loads. */
#ifndef IG_GATEWAY_ACTIVITY_H
#define IG_GATEWAY_ACTIVITY_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define IG_ACTIVITY_SLOTS 32   /* picks kept per worker */
#define IG_ACTIVITY_NAME 48    /* bytes kept of each name, with its NUL */
#define IG_ACTIVITY_BUCKETS 42 /* latency buckets, the last one unbounded */

/* One finished request as the page shows it. */
struct ig_decision {
	uint64_t end_ns;      /* CLOCK_MONOTONIC */
	uint64_t duration_ns; /* from the request's start */
	int status;	      /* what the client got; 499: it left first */
	int worker;
	char model[IG_ACTIVITY_NAME];
	char target[IG_ACTIVITY_NAME];
	char pool[IG_ACTIVITY_NAME];
	char endpoint[IG_ACTIVITY_NAME]; /* "" when none was chosen */
};

struct ig_activity;

struct ig_activity *ig_activity_new(int worker);
void ig_activity_free(struct ig_activity *a);

/* The owning worker records one finished request (NULL strings read as
 * ""; longer ones are cut). */
void ig_activity_record(struct ig_activity *a, const char *model, const char *target,
			const char *pool, const char *endpoint, int status, uint64_t start_ns,
			uint64_t end_ns);

/* Totals of a set of workers, summed by ig_activity_add. */
struct ig_activity_totals {
	uint64_t requests, ok, client_errors, server_errors, cancelled;
	uint64_t latency[IG_ACTIVITY_BUCKETS]; /* requests that succeeded, by duration */
};

/* Any thread: adds a worker's counts to t. */
void ig_activity_add(const struct ig_activity *a, struct ig_activity_totals *t);
/* Any thread: copies up to `max` of the worker's recorded picks into out
 * (slots being written at that moment are skipped); returns how many. */
size_t ig_activity_decisions(const struct ig_activity *a, struct ig_decision *out, size_t max);

/* The upper bound of latency bucket i in milliseconds (the last is +Inf). */
double ig_activity_bucket_ms(size_t i);
/* The q-quantile (0..1) of the latency histogram in milliseconds,
 * interpolated inside its bucket; -1 when it is empty. */
double ig_activity_quantile_ms(const struct ig_activity_totals *t, double q);

#endif
