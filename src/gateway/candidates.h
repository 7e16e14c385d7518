/* What the picker reads of a pool's endpoints, once per request: for each
 * endpoint its compact load figures (under the endpoint's sequence
 * counter) and what this gateway's workers dispatched to it that its last
 * scrapes do not cover yet. Shared by admission (admit.c) and
 * `make bench-picker`, so that the benchmark times the gateway's own read. */
#ifndef IG_GATEWAY_CANDIDATES_H
#define IG_GATEWAY_CANDIDATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/endpoint.h"
#include "sched/picker.h"

/* The candidates as the picker sees them. Endpoints whose scrapes keep
 * failing are left out, unless that leaves nothing. Each candidate's load
 * figures are copied (a few words); the full metrics only for profiles
 * that read adapter sets. The arrays are the calling thread's scratch
 * memory, valid until its next read: no allocation per request. */
struct ig_candidates {
	size_t n;
	struct ig_sched_endpoint *se;
	struct ig_endpoint_load *load;
	struct ig_endpoint **eps;
	struct ig_endpoint_metrics *full; /* NULL unless adapter sets are read */
};

/* Reads the neps endpoints of eps as worker slot `self` sees them (its own
 * stale pending bits are cleared on the way: ig_endpoint_pending), with
 * metrics ages as of now_ns. Returns 0, or -1 out of memory. */
int ig_candidates_read(struct ig_candidates *c, struct ig_endpoint *const *eps, size_t neps,
		       size_t self, bool adapters, uint64_t now_ns);

#endif
