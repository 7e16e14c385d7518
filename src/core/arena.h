/* Per-request memory, in nginx's pool idea: a request allocates from its
 * arena as it goes and everything is given back in one call when it ends.
 * Blocks come from a small per-thread cache, so a request on a warm worker
 * costs no malloc at all; allocations larger than a block get a block of
 * their own. An arena is used by one thread at a time. */
#ifndef IG_CORE_ARENA_H
#define IG_CORE_ARENA_H

#include <stddef.h>

#include "core/str.h"

#define IG_ARENA_BLOCK 8192

struct ig_arena_block;

struct ig_arena {
	struct ig_arena_block *blocks; /* newest first */
	char *ptr, *end;	       /* free space of the newest block */
	size_t used;		       /* bytes handed out, for limits and tests */
};

/* A zeroed arena is empty and valid. Returns 16-byte aligned memory, or
 * NULL when out of memory. */
void *ig_arena_alloc(struct ig_arena *a, size_t n);
/* The same, zero-filled. */
void *ig_arena_calloc(struct ig_arena *a, size_t n);
/* A copy of s in the arena with a NUL after it (not counted in len). */
struct ig_str ig_arena_strdup(struct ig_arena *a, struct ig_str s);
/* Gives every block back (to this thread's cache or to malloc) and leaves
 * the arena empty. */
void ig_arena_free(struct ig_arena *a);
/* Frees this thread's cache of spare blocks (at thread exit). */
void ig_arena_thread_cleanup(void);

#endif
