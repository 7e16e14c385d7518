#include "gateway/sessions.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/snapshot.h"

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

/* ---- llm-d's x-session-token ---- */

/* The token of the pool's i-th endpoint. */
static size_t token_at(const struct ig_pool_rt *pool, size_t i, char out[IG_SESSION_TOKEN_MAX])
{
	const struct ig_pod *pod = pool->ep_pods ? pool->ep_pods[i] : NULL;
	char name[IG_SESSION_TOKEN_MAX];
	if (!pod || !pod->meta.name)
		return 0;
	int n = snprintf(name, sizeof name, "%s/%s-rank-%u", pod->meta.ns ? pod->meta.ns : "",
			 pod->meta.name, pool->ep_ranks ? (unsigned)pool->ep_ranks[i] : 0u);
	if (n < 0 || (size_t)n >= sizeof name)
		return 0;
	if (IG_BASE64_LEN((size_t)n) + 1 > IG_SESSION_TOKEN_MAX)
		return 0;
	size_t len = ig_base64_encode(name, (size_t)n, out);
	out[len] = '\0';
	return len;
}

size_t ig_session_token_of(const struct ig_pool_rt *pool, const struct ig_endpoint *ep,
			   char out[IG_SESSION_TOKEN_MAX])
{
	for (size_t i = 0; pool && i < pool->neps; i++)
		if (pool->eps[i] == ep)
			return token_at(pool, i, out);
	return 0;
}

uint64_t ig_session_token_key(const struct ig_pool_rt *pool, struct ig_str token)
{
	char t[IG_SESSION_TOKEN_MAX];
	token = ig_str_trim(token);
	if (!token.len || token.len >= sizeof t)
		return 0;
	for (size_t i = 0; pool && i < pool->neps; i++) {
		size_t n = token_at(pool, i, t);
		if (n && ig_str_eq(token, (struct ig_str){t, n}))
			return pool->eps[i]->key;
	}
	return 0;
}
