/* Per-thread scratch memory for work whose size follows its input (the
 * candidates of a pool), so that a hot path allocates only when a thread
 * first meets a bigger input, never per call. Each user keeps its own
 * scratch in a _Thread_local variable; the memory goes back when the
 * thread exits. */
#ifndef IG_CORE_SCRATCH_H
#define IG_CORE_SCRATCH_H

#include <stddef.h>

struct ig_scratch {
	void *ptr;
	size_t cap;
	struct ig_scratch *next; /* the thread's scratches, freed at its exit */
	int listed;
};

/* At least n bytes, 64-byte aligned, valid until the next call on the same
 * scratch (the contents are not kept when it grows); NULL when out of
 * memory. A zeroed scratch is empty and valid. */
void *ig_scratch_get(struct ig_scratch *s, size_t n);

#endif
