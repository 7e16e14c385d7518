#include "core/scratch.h"

#include <pthread.h>
#include <stdlib.h>

/* The scratches a thread has allocated, freed by the key's destructor when
 * the thread exits (TLS is still valid while destructors run). The main
 * thread's are reachable from its TLS until the process ends. */
static _Thread_local struct ig_scratch *mine;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void release(void *unused)
{
	(void)unused;
	for (struct ig_scratch *s = mine, *next; s; s = next) {
		next = s->next;
		free(s->ptr);
		*s = (struct ig_scratch){0};
	}
	mine = NULL;
}

static void make_key(void)
{
	(void)pthread_key_create(&key, release);
}

void *ig_scratch_get(struct ig_scratch *s, size_t n)
{
	if (n <= s->cap && s->ptr)
		return s->ptr;
	size_t cap = s->cap * 2 > n ? s->cap * 2 : n;
	cap = (cap + 63) & ~(size_t)63;
	if (cap < n)
		return NULL;
	void *p = aligned_alloc(64, cap ? cap : 64);
	if (!p)
		return NULL;
	free(s->ptr);
	s->ptr = p;
	s->cap = cap;
	if (!s->listed) {
		pthread_once(&key_once, make_key);
		/* Any non-NULL value makes the destructor run at thread exit. */
		(void)pthread_setspecific(key, &mine);
		s->next = mine;
		s->listed = 1;
		mine = s;
	}
	return p;
}
