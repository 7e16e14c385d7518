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
 * that read adapter sets. The arrays are the calling thread's memory,
 * valid until its next read: no allocation per request. With `kept`
 * they are also what the next read of the same list starts from: the
 * caller may change a load figure and put it back before that read, but
 * must call ig_candidates_own() before reordering or dropping any. */
struct ig_candidates {
	size_t n;
	struct ig_sched_endpoint *se;
	struct ig_endpoint_load *load;
	struct ig_endpoint **eps;
	struct ig_endpoint_metrics *full; /* NULL unless adapter sets are read */
	bool kept;
};

/* Reads the neps endpoints of eps as worker slot `self` sees them (its own
 * stale pending bits are cleared on the way: ig_endpoint_pending_of), with
 * metrics ages as of now_ns. list_id, when not 0, names this list of
 * endpoints for the thread's whole life (no other list may ever be read
 * under it): the thread keeps what it read, and reads again only the
 * endpoints whose figures changed (metrics ages then as of at most 1 ms
 * before now_ns). Returns 0, or -1 out of memory. */
int ig_candidates_read(struct ig_candidates *c, struct ig_endpoint *const *eps, size_t neps,
		       size_t self, bool adapters, uint64_t now_ns, uint64_t list_id);

/* Makes the arrays the caller's to reorder (a copy, when kept). 0, or -1
 * out of memory. */
int ig_candidates_own(struct ig_candidates *c);

/* Writes candidate `at` of c (owned) from a candidate's parts. */
void ig_candidates_put(struct ig_candidates *c, size_t at, struct ig_sched_endpoint se,
		       struct ig_endpoint_load load, struct ig_endpoint *ep,
		       const struct ig_endpoint_metrics *full);

#endif
