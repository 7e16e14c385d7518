/* Session affinity: which endpoint served a session last. A fixed-size
 * table indexed by the session's hash, shared by the workers; a newer
 * session that lands on a taken slot replaces the older one, so memory is
 * bounded whatever the clients send. Striped locks keep contention low. */
#include <pthread.h>
#include <xxhash.h>

#include "gateway/gw.h"

#define SLOTS 65536u
#define STRIPES 64u

struct slot {
	uint64_t session;
	uint64_t endpoint;
};

static struct slot table[SLOTS];
static pthread_mutex_t locks[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};

static uint64_t session_hash(struct ig_str s)
{
	uint64_t h = XXH64(s.ptr, s.len, 7);
	return h ? h : 1; /* 0 marks an empty slot */
}

uint64_t ig_session_lookup(struct ig_str session)
{
	uint64_t h = session_hash(session);
	size_t i = h & (SLOTS - 1);
	pthread_mutex_t *l = &locks[i % STRIPES];
	pthread_mutex_lock(l);
	uint64_t ep = table[i].session == h ? table[i].endpoint : 0;
	pthread_mutex_unlock(l);
	return ep;
}

void ig_session_store(struct ig_str session, uint64_t endpoint_key)
{
	uint64_t h = session_hash(session);
	size_t i = h & (SLOTS - 1);
	pthread_mutex_t *l = &locks[i % STRIPES];
	pthread_mutex_lock(l);
	table[i] = (struct slot){h, endpoint_key};
	pthread_mutex_unlock(l);
}
