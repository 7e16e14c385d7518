#include "gateway/sessions.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <xxhash.h>

#define SLOTS 65536u

struct slot {
	atomic_uint_least64_t session;
	atomic_uint_least64_t endpoint;
};

struct ig_sessions {
	struct slot table[SLOTS];
};

struct ig_sessions *ig_sessions_new(void)
{
	return calloc(1, sizeof(struct ig_sessions));
}

void ig_sessions_free(struct ig_sessions *s)
{
	free(s);
}

static uint64_t session_hash(struct ig_str s)
{
	uint64_t h = XXH64(s.ptr, s.len, 7);
	return h ? h : 1; /* 0 marks an empty slot */
}

uint64_t ig_session_lookup(struct ig_sessions *s, struct ig_str session)
{
	uint64_t h = session_hash(session);
	struct slot *sl = &s->table[h & (SLOTS - 1)];
	/* The endpoint is read between two reads of the session: a writer
	 * replacing the slot in between makes them differ. */
	uint64_t a = atomic_load_explicit(&sl->session, memory_order_acquire);
	uint64_t ep = atomic_load_explicit(&sl->endpoint, memory_order_acquire);
	uint64_t b = atomic_load_explicit(&sl->session, memory_order_acquire);
	return a == h && b == h ? ep : 0;
}

void ig_session_store(struct ig_sessions *s, struct ig_str session, uint64_t endpoint_key)
{
	uint64_t h = session_hash(session);
	struct slot *sl = &s->table[h & (SLOTS - 1)];
	/* Most requests of a session land where it already is: no write. */
	if (atomic_load_explicit(&sl->session, memory_order_relaxed) == h &&
	    atomic_load_explicit(&sl->endpoint, memory_order_relaxed) == endpoint_key)
		return;
	atomic_store_explicit(&sl->session, 0, memory_order_release);
	atomic_store_explicit(&sl->endpoint, endpoint_key, memory_order_release);
	atomic_store_explicit(&sl->session, h, memory_order_release);
}
