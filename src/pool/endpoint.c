#include "pool/endpoint.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/asan.h"
#include "http/client.h"

/* The registry is touched only when snapshots are built and freed (control
 * thread) and when idle connections take or drop references, under a
 * mutex; the request path reads endpoints through the snapshot it holds. */
#define HELD_WORDS (IG_ENDPOINT_DENSE / 64)

/* Endpoints given back are poisoned for AddressSanitizer (core/asan.h),
 * as free() would, so that a use after the last reference is still
 * caught. */
#define POISON(p, n) IG_POISON(p, n)
#define UNPOISON(p, n) IG_UNPOISON(p, n)

struct ig_endpoints {
	pthread_mutex_t lock;
	struct ig_endpoint *list;
	size_t nslots;
	uint32_t dense; /* indexes handed out are below this */
	/* Each slot's held bitmap, HELD_WORDS words apart (endpoint.h). An
	 * index given back keeps the bits its endpoint left: the next
	 * endpoint given the index has nothing pending, so a stale bit only
	 * costs a read until that slot's worker clears it. */
	_Atomic uint64_t *held;
	struct ig_endpoint_log *log; /* endpoint.h */
	uint64_t used[HELD_WORDS];   /* indexes in use, under lock */
	/* The endpoints with an index, by index, room for `dense` of them:
	 * pages are touched as indexes are handed out (the lowest free
	 * first). */
	struct ig_endpoint *array;
	size_t array_bytes;
};

struct ig_endpoints *ig_endpoints_new_dense(size_t nslots, uint32_t dense)
{
	struct ig_endpoints *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->nslots = nslots ? nslots : 1;
	r->dense = dense < IG_ENDPOINT_DENSE ? dense : IG_ENDPOINT_DENSE;
	r->held = calloc(r->nslots * HELD_WORDS, sizeof(*r->held));
	r->log = aligned_alloc(64, sizeof *r->log);
	if (r->log) {
		/* Entry p reads as not written until it is (endpoint.h). */
		atomic_init(&r->log->head, 0);
		for (uint32_t i = 0; i < IG_ENDPOINT_LOG; i++)
			atomic_init(&r->log->entries[i], (uint64_t)(i - IG_ENDPOINT_LOG) << 32);
	}
	r->array_bytes = (size_t)(r->dense ? r->dense : 1) * sizeof(struct ig_endpoint);
	/* Heap memory (which the C library maps fresh at this size, its pages
	 * touched only as entries are used), not an mmap of our own: leak
	 * checkers look for pointers in the heap, and entries hold some. */
	r->array = aligned_alloc(64, r->array_bytes);
	if (!r->held || !r->log || !r->array) {
		free(r->array);
		free(r->log);
		free(r->held);
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

struct ig_endpoints *ig_endpoints_new(size_t nslots)
{
	return ig_endpoints_new_dense(nslots, IG_ENDPOINT_DENSE);
}

void ig_endpoints_free(struct ig_endpoints *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	UNPOISON(r->array, r->array_bytes);
	free(r->array);
	free(r->log);
	free(r->held);
	free(r);
}

/* The lowest free dense index, under the registry's lock. */
static uint32_t index_take(struct ig_endpoints *r)
{
	for (uint32_t w = 0; w * 64 < r->dense; w++) {
		if (r->used[w] == UINT64_MAX)
			continue;
		uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(~r->used[w]);
		if (i >= r->dense)
			break;
		r->used[w] |= (uint64_t)1 << (i % 64);
		return i;
	}
	return IG_ENDPOINT_NO_INDEX;
}

/* Copies n bytes word by word with atomic accesses, so that no access is
 * a data race in C11 terms; the reader may see a mix of two versions,
 * which the sequence check then rejects. The reader loads with acquire
 * (a plain move on x86), so that its second look at the counter cannot be
 * made before the copy; where it reads a word of a write in progress, it
 * synchronises with the writer's release fence, which follows the odd
 * counter, and so sees the counter changed. */
static inline void copy_words(void *dst, const void *src, size_t n, memory_order load)
{
	_Atomic uint64_t *s = (_Atomic uint64_t *)src;
	_Atomic uint64_t *d = (_Atomic uint64_t *)dst;
	for (size_t i = 0; i < n / sizeof(uint64_t); i++)
		atomic_store_explicit(&d[i], atomic_load_explicit(&s[i], load),
				      memory_order_relaxed);
}

/* The writer's copy: only the words that differ are stored. A scrape
 * usually changes a few words of the 1.3 KB of metrics (the time, a
 * queue length), and every word stored takes the cache line away from
 * the workers that read it. The writer is the only one that stores, so
 * it may read what it stored last without the sequence counter. */
static inline void store_changed_words(void *dst, const void *src, size_t n)
{
	const uint64_t *s = src;
	_Atomic uint64_t *d = (_Atomic uint64_t *)dst;
	for (size_t i = 0; i < n / sizeof(uint64_t); i++)
		if (atomic_load_explicit(&d[i], memory_order_relaxed) != s[i])
			atomic_store_explicit(&d[i], s[i], memory_order_relaxed);
}

_Static_assert(sizeof(struct ig_endpoint_metrics) % sizeof(uint64_t) == 0,
	       "metrics copied in 64-bit words");
_Static_assert(sizeof(struct ig_endpoint_load) % sizeof(uint64_t) == 0,
	       "load copied in 64-bit words");
_Static_assert(sizeof(struct ig_cache_config) == sizeof(uint64_t) &&
		   offsetof(struct ig_endpoint_metrics, cache) % sizeof(uint64_t) == 0,
	       "the cache configuration is one word of the metrics");
_Static_assert(offsetof(struct ig_endpoint, idx) + sizeof(uint32_t) <= 64,
	       "what a read of a kept list needs of most endpoints is one cache line...");
_Static_assert(offsetof(struct ig_endpoint, log) + sizeof(void *) <= 128,
	       "...and what a fresh read needs, the next (prefetched with it)");

/* A seqlock read of n bytes at src (a field of ep). */
static inline void read_under_seq(const struct ig_endpoint *ep, const void *src, void *out,
				  size_t n)
{
	struct ig_endpoint *e = (struct ig_endpoint *)ep;
	for (;;) {
		unsigned s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1u)
			continue;
		copy_words(out, src, n, memory_order_acquire);
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1)
			return;
	}
}

void ig_endpoint_read_metrics(const struct ig_endpoint *ep, struct ig_endpoint_metrics *out)
{
	read_under_seq(ep, ep->metrics, out, sizeof *out);
}

/* An adapter set up to its count: its first word holds the count. */
static inline void copy_set(struct ig_adapter_set *d, const struct ig_adapter_set *s)
{
	copy_words(d, s, sizeof(uint64_t), memory_order_acquire);
	if (d->n > IG_MAX_ADAPTERS)
		d->n = IG_MAX_ADAPTERS; /* a torn read, which the counter retries */
	copy_words(d->hash, s->hash, d->n * sizeof(d->hash[0]), memory_order_acquire);
}

_Static_assert(offsetof(struct ig_endpoint_metrics, active) % 8 == 0 &&
		   offsetof(struct ig_adapter_set, hash) == 8 &&
		   offsetof(struct ig_endpoint_metrics, max_active) % 8 == 0 &&
		   offsetof(struct ig_endpoint_metrics, running_text) % 8 == 0 &&
		   offsetof(struct ig_endpoint_metrics, updated_ns) % 8 == 0,
	       "the metrics copy by words");

unsigned ig_endpoint_read_sched(const struct ig_endpoint *ep, struct ig_endpoint_metrics *out)
{
	struct ig_endpoint *e = (struct ig_endpoint *)ep;
	const struct ig_endpoint_metrics *m = ep->metrics;
	const size_t head = offsetof(struct ig_endpoint_metrics, active);
	const size_t mid = offsetof(struct ig_endpoint_metrics, max_active);
	const size_t mid_len = offsetof(struct ig_endpoint_metrics, running_text) - mid;
	unsigned s1;
	for (;;) {
		s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1u)
			continue;
		copy_words(out, m, head, memory_order_acquire);
		copy_set(&out->active, &m->active);
		copy_set(&out->running_adapters, &m->running_adapters);
		copy_set(&out->waiting_adapters, &m->waiting_adapters);
		copy_words((char *)out + mid, (const char *)m + mid, mid_len, memory_order_acquire);
		copy_words(&out->updated_ns, &m->updated_ns, sizeof out->updated_ns,
			   memory_order_acquire);
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1)
			break;
	}
	out->running_text[0] = '\0';
	out->waiting_text[0] = '\0';
	return s1;
}

void ig_endpoint_read_cache(const struct ig_endpoint *ep, struct ig_cache_config *out)
{
	read_under_seq(ep, &ep->metrics->cache, out, sizeof *out);
}

/* After a change of what ep publishes: a reader that finds the entry
 * finds the change, and so does one that finds the head past it (both
 * release; the reader's loads acquire), who then reads the endpoints
 * whole. */
static void log_change(struct ig_endpoint *ep)
{
	if (ep->idx == IG_ENDPOINT_NO_INDEX)
		return;
	uint64_t p = atomic_fetch_add_explicit(&ep->log->head, 1, memory_order_release);
	atomic_store_explicit(&ep->log->entries[p % IG_ENDPOINT_LOG],
			      (uint64_t)(uint32_t)p << 32 | ep->idx, memory_order_release);
}

void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m)
{
	struct ig_endpoint_load load;
	ig_endpoint_load_of(m, &load);
	unsigned s = atomic_load_explicit(&ep->seq, memory_order_relaxed);
	atomic_store_explicit(&ep->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	store_changed_words(&ep->load, &load, sizeof load);
	store_changed_words(ep->metrics, m, sizeof *m);
	atomic_store_explicit(&ep->seq, s + 2, memory_order_release);
	log_change(ep);
}

void ig_endpoint_set_out_of_rotation(struct ig_endpoint *ep, bool out)
{
	atomic_store_explicit(&ep->out_of_rotation, out, memory_order_relaxed);
	log_change(ep);
}

/* Gives back an endpoint's memory and index, under the registry's lock. */
static void endpoint_free(struct ig_endpoints *r, struct ig_endpoint *ep)
{
	uint32_t idx = ep->idx;
	if (idx == IG_ENDPOINT_NO_INDEX) {
		free(ep);
		return;
	}
	POISON(ep, sizeof *ep);
	r->used[idx / 64] &= ~((uint64_t)1 << (idx % 64));
}

struct ig_endpoint *ig_endpoint_get(struct ig_endpoints *r, const char *addr)
{
	pthread_mutex_lock(&r->lock);
	struct ig_endpoint *ep;
	for (ep = r->list; ep; ep = ep->next)
		if (strcmp(ep->addr, addr) == 0)
			break;
	if (ep) {
		atomic_fetch_add(&ep->refs, 1);
		goto out;
	}
	uint32_t idx = index_take(r);
	if (idx != IG_ENDPOINT_NO_INDEX) {
		ep = &r->array[idx];
		UNPOISON(ep, sizeof *ep);
	} else if (!(ep = aligned_alloc(64, sizeof *ep))) {
		goto out;
	}
	memset(ep, 0, sizeof *ep);
	ep->idx = idx;
	/* The slots, the tallies and the metrics, in one block. */
	size_t per = sizeof *ep->slots + sizeof *ep->tallies;
	size_t block = r->nslots * per + sizeof *ep->metrics;
	block = (block + 63) & ~(size_t)63;
	ep->slots = aligned_alloc(64, block);
	if (!ep->slots || strlen(addr) >= sizeof ep->addr ||
	    ig_sockaddr_parse(addr, &ep->sa, &ep->salen) < 0) {
		free(ep->slots);
		endpoint_free(r, ep);
		ep = NULL;
		goto out;
	}
	memset(ep->slots, 0, block);
	ep->tallies = (struct ig_endpoint_tally *)(ep->slots + r->nslots);
	ep->metrics = (struct ig_endpoint_metrics *)(ep->tallies + r->nslots);
	ep->nslots = r->nslots;
	ep->addr_len = strlen(addr);
	memcpy(ep->addr, addr, ep->addr_len + 1);
	atomic_init(&ep->refs, 1);
	ep->key = XXH64(ep->addr, ep->addr_len, 0);
	ep->reg = r;
	ep->held = r->held;
	ep->log = r->log;
	ep->next = r->list;
	r->list = ep;
out:
	pthread_mutex_unlock(&r->lock);
	return ep;
}

struct ig_endpoint *ig_endpoint_ref(struct ig_endpoint *ep)
{
	atomic_fetch_add(&ep->refs, 1);
	return ep;
}

void ig_endpoint_put(struct ig_endpoint *ep)
{
	if (!ep)
		return;
	struct ig_endpoints *r = ep->reg;
	pthread_mutex_lock(&r->lock);
	if (atomic_fetch_sub(&ep->refs, 1) == 1) {
		struct ig_endpoint **pp = &r->list;
		while (*pp && *pp != ep)
			pp = &(*pp)->next;
		if (*pp)
			*pp = ep->next;
		free(ep->slots);
		endpoint_free(r, ep);
	}
	pthread_mutex_unlock(&r->lock);
}

/* ---- per-worker counters ---- */

static void add_long(atomic_long *a, long v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void add_int(atomic_int *a, int v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void add_ulong(atomic_ulong *a, unsigned long v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* Slot `slot`'s word and bit for the endpoint; NULL without an index. */
static _Atomic uint64_t *held_word(const struct ig_endpoint *ep, size_t slot, uint64_t *bit)
{
	if (ep->idx == IG_ENDPOINT_NO_INDEX)
		return NULL;
	*bit = (uint64_t)1 << (ep->idx % 64);
	return ig_endpoint_held_word(ep, slot);
}

unsigned ig_endpoint_dispatch(struct ig_endpoint *ep, size_t slot, long tokens)
{
	slot %= ep->nslots;
	struct ig_endpoint_slot *s = &ep->slots[slot];
	uint64_t bit;
	_Atomic uint64_t *hw = held_word(ep, slot, &bit);
	if (hw) {
		uint64_t w = atomic_load_explicit(hw, memory_order_relaxed);
		if (!(w & bit))
			atomic_store_explicit(hw, w | bit, memory_order_relaxed);
	}
	struct ig_endpoint_tally *c = &ep->tallies[slot];
	unsigned e = atomic_load_explicit(&ep->epoch, memory_order_relaxed);
	struct ig_endpoint_epoch *x = &s->epochs[e % IG_ENDPOINT_EPOCHS];
	if (atomic_load_explicit(&x->tag, memory_order_relaxed) != e) {
		/* The ring slot held an epoch long covered by a scrape. */
		atomic_store_explicit(&x->requests, 0, memory_order_relaxed);
		atomic_store_explicit(&x->tag, e, memory_order_release);
	}
	add_int(&x->requests, 1);
	add_long(&s->tokens, tokens > 0 ? tokens : 0);
	add_long(&c->inflight, 1);
	add_ulong(&c->requests, 1);
	return e;
}

void ig_endpoint_uncount(struct ig_endpoint *ep, size_t slot)
{
	add_ulong(&ep->tallies[slot % ep->nslots].requests, (unsigned long)-1);
}

void ig_endpoint_finish(struct ig_endpoint *ep, size_t slot, unsigned epoch, long tokens)
{
	struct ig_endpoint_slot *s = &ep->slots[slot % ep->nslots];
	add_long(&ep->tallies[slot % ep->nslots].inflight, -1);
	add_long(&s->tokens, tokens > 0 ? -tokens : 0);
	struct ig_endpoint_epoch *x = &s->epochs[epoch % IG_ENDPOINT_EPOCHS];
	if (atomic_load_explicit(&x->tag, memory_order_relaxed) == epoch)
		add_int(&x->requests, -1);
}

long ig_endpoint_inflight(const struct ig_endpoint *ep)
{
	long n = 0;
	for (size_t i = 0; i < ep->nslots; i++)
		n += atomic_load_explicit(&ep->tallies[i].inflight, memory_order_relaxed);
	return n;
}

unsigned long ig_endpoint_requests(const struct ig_endpoint *ep)
{
	unsigned long n = 0;
	for (size_t i = 0; i < ep->nslots; i++)
		n += atomic_load_explicit(&ep->tallies[i].requests, memory_order_relaxed);
	return n;
}

/* Adds slot i's requests of epochs in [applied, cur] (modulo wrap-around)
 * to *r and its tokens in flight to *t, and clears the slot's held bit
 * when it is the caller's own (self) and holds nothing: an epoch outside
 * [applied, cur] never comes back into it, tokens come only with a
 * dispatch, and only this worker dispatches in its slot, setting the bit
 * again first. */
static inline void add_slot(struct ig_endpoint *e, size_t i, size_t self, unsigned applied,
			    unsigned cur, long *r, long *t)
{
	long xt = atomic_load_explicit(&e->slots[i].tokens, memory_order_relaxed);
	bool live = xt != 0;
	*t += xt;
	for (size_t k = 0; k < IG_ENDPOINT_EPOCHS; k++) {
		struct ig_endpoint_epoch *x = &e->slots[i].epochs[k];
		unsigned tag = atomic_load_explicit(&x->tag, memory_order_acquire);
		if (tag - applied > cur - applied)
			continue;
		int xr = atomic_load_explicit(&x->requests, memory_order_relaxed);
		live |= xr != 0;
		*r += xr;
	}
	uint64_t bit;
	_Atomic uint64_t *hw;
	if (i == self && !live && (hw = held_word(e, i, &bit)))
		atomic_store_explicit(hw, atomic_load_explicit(hw, memory_order_relaxed) & ~bit,
				      memory_order_relaxed);
}

void ig_endpoint_pending_of(const struct ig_endpoint *ep, size_t self, uint64_t slots,
			    long *requests, long *tokens)
{
	struct ig_endpoint *e = (struct ig_endpoint *)ep;
	unsigned applied = atomic_load_explicit(&e->applied, memory_order_relaxed);
	unsigned cur = atomic_load_explicit(&e->epoch, memory_order_relaxed);
	long r = 0, t = 0;
	if (slots == UINT64_MAX) {
		for (size_t i = 0; i < ep->nslots; i++)
			if (ig_endpoint_slot_held(ep, i))
				add_slot(e, i, self, applied, cur, &r, &t);
	} else {
		for (; slots; slots &= slots - 1)
			add_slot(e, (size_t)__builtin_ctzll(slots), self, applied, cur, &r, &t);
	}
	*requests = r > 0 ? r : 0;
	*tokens = t > 0 ? t : 0;
}

void ig_endpoint_pending(const struct ig_endpoint *ep, size_t self, long *requests, long *tokens)
{
	ig_endpoint_pending_of(ep, self, UINT64_MAX, requests, tokens);
}

unsigned ig_endpoint_scrape_sent(struct ig_endpoint *ep)
{
	unsigned e = atomic_load_explicit(&ep->epoch, memory_order_relaxed) + 1;
	atomic_store_explicit(&ep->epoch, e, memory_order_relaxed);
	return e;
}

void ig_endpoint_scrape_applied(struct ig_endpoint *ep, unsigned epoch)
{
	/* The page of the scrape that opened `epoch` covers what was
	 * dispatched before the scrape before it was sent: a request sent just
	 * before this scrape may not be in the pod's figures yet (see
	 * endpoint.h). Never backwards: a late page of an older scrape covers
	 * less. */
	unsigned covers = epoch - 1;
	unsigned cur = atomic_load_explicit(&ep->applied, memory_order_relaxed);
	if ((int)(covers - cur) > 0)
		atomic_store_explicit(&ep->applied, covers, memory_order_relaxed);
}
