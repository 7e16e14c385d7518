/* Ranking the candidates of a schedule: the best k of n keys, best first,
 * equal keys in uniformly random order (what GIE gets from shuffling the
 * candidates before a stable sort by score).
 *
 * A pool of a thousand endpoints ranked for a fallback list of 32 should
 * not cost a heap insertion per candidate that beats the current 32nd: a
 * histogram of the keys finds the bucket the 32nd falls in, everything
 * above it is in, and only that bucket is looked at again. The random
 * generator is drawn from only to order equal keys. */
#ifndef IG_SCHED_RANK_H
#define IG_SCHED_RANK_H

#include <stddef.h>

#include "core/rand.h"

/* Writes to out the positions of the best min(k, n) keys, highest first,
 * and returns how many. Any keys: +infinity ranks first, -infinity after
 * every finite key, NaN last. Allocates nothing once the calling thread
 * has ranked n keys before; returns 0 when it cannot get the memory. */
size_t ig_rank_top(const double *keys, size_t n, size_t k, struct ig_rng *rng, size_t *out);

#endif
