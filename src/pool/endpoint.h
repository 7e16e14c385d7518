/* Endpoints: the model-server addresses (ip:port) of the pools. They live
 * in a registry across configuration snapshots, so a reload that keeps a
 * pod keeps its metrics and counters; a snapshot, an idle upstream
 * connection or a scrape holds a reference.
 *
 * What the scraper learns is published through a sequence counter (the
 * scraper writes, workers copy). What workers learn is counted per worker:
 * each worker writes only its own slot, on its own cache line, and readers
 * sum the slots; nothing on an endpoint is written by two threads. */
#ifndef IG_POOL_ENDPOINT_H
#define IG_POOL_ENDPOINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "pool/metrics.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* What a worker dispatched to an endpoint during one scrape epoch and has
 * not seen finish. */
struct ig_endpoint_epoch {
	atomic_uint tag; /* the epoch these counts belong to */
	atomic_int requests;
};

#define IG_ENDPOINT_EPOCHS 4

/* Endpoints of a registry that get a dense index, and with it a bit in
 * each worker slot's "held" bitmap (below); more are read the slow way. */
#define IG_ENDPOINT_DENSE 65536
#define IG_ENDPOINT_NO_INDEX UINT32_MAX

/* One worker's view of an endpoint: written by that worker only, with
 * relaxed load+store (no read-modify-write), read by anyone. The epochs,
 * which every request reads for every candidate (ig_endpoint_pending), fill
 * a cache line alone; an endpoint's slots are contiguous, so that a reader
 * streams through them, and the totals, which only the admin pages read,
 * lie apart (struct ig_endpoint_tally) instead of sharing the slots' stride. */
struct ig_endpoint_slot {
	_Alignas(64) struct ig_endpoint_epoch epochs[IG_ENDPOINT_EPOCHS];
	/* Prompt tokens of the requests the worker dispatched here and has
	 * not seen finish, whatever the scrapes say: llm-d's
	 * inflight-load-producer counts them from PreRequest to the response's
	 * end. On the epochs' line, which dispatch and finish write anyway. */
	atomic_long tokens;
};

struct ig_endpoint_tally {
	_Alignas(64) atomic_long inflight; /* dispatched and not finished */
	atomic_ulong requests;		   /* dispatched, ever */
};

struct ig_endpoints;

struct ig_endpoint {
	/* What every request reads of every candidate, on one cache line,
	 * written by the scraper only. The load figures and the full metrics
	 * are published together under a sequence counter, odd while written. */
	_Alignas(64) atomic_uint seq;
	/* Scrape epochs. Sending a scrape starts a new epoch; applying its page
	 * makes the epoch before it the first one still pending: requests
	 * dispatched before the previous scrape was sent are in the page's
	 * figures; later ones may not be yet (below). */
	atomic_uint epoch;   /* the current epoch: new dispatches count in it */
	atomic_uint applied; /* epochs before this one are covered by a page */
	/* Set by the scraper after repeated failed scrapes, cleared when the
	 * endpoint answers again: such an endpoint gets no traffic. */
	atomic_bool out_of_rotation;
	struct ig_endpoint_load load; /* under seq */
	/* The endpoint's dense index in its registry (IG_ENDPOINT_NO_INDEX
	 * past IG_ENDPOINT_DENSE): bit idx of worker slot s's held bitmap is
	 * set while slot s may have pending counts here (ig_endpoint_slot_held).
	 * On the first line: a read of a kept list (gateway/candidates.c)
	 * needs no other line of an endpoint nobody dispatched to. */
	uint32_t idx;

	/* The rest of what a request reads of the candidates it has to read
	 * afresh, on the next line (addr's bytes are not read, only its
	 * address). */
	uint64_t key; /* hash of addr: the endpoint's identity for the picker */
	size_t nslots;
	struct ig_endpoint_slot *slots;	   /* one per worker */
	struct ig_endpoint_tally *tallies; /* one per worker, after the slots */
	size_t addr_len;
	_Atomic uint64_t *held;	     /* the registry's held bitmaps */
	struct ig_endpoint_log *log; /* the registry's change log */
	char addr[64];		     /* "ip:port" or "[v6]:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
	atomic_int refs;
	struct ig_endpoints *reg;
	struct ig_endpoint *next; /* registry list */
	/* Which lora_requests_info series its scrapes read: set by whoever
	 * hands the endpoint to the scraper, on the scraper's thread. */
	enum ig_lora_rule lora_rule;
	/* Which engine's families its scrapes read (its pod's engine-type
	 * label), set the same way. */
	enum ig_engine engine;
	/* Everything the scraper knows (adapter sets, display text), under
	 * seq; apart, in the slots' block, so that endpoints lie close
	 * together (below). */
	struct ig_endpoint_metrics *metrics;
};

/* The registry. nslots: worker slots per endpoint (the worker count).
 * Endpoints with a dense index live in one array by index, so that a pool
 * whose endpoints came together is read in one stream of memory.
 * _dense: at most `dense` endpoints (<= IG_ENDPOINT_DENSE) get an index. */
struct ig_endpoints *ig_endpoints_new(size_t nslots);
struct ig_endpoints *ig_endpoints_new_dense(size_t nslots, uint32_t dense);
/* Frees the registry; every endpoint must have been put back. */
void ig_endpoints_free(struct ig_endpoints *r);

/* Finds or creates the endpoint for a numeric addr, with a new reference.
 * NULL for an address that does not parse, or out of memory. */
struct ig_endpoint *ig_endpoint_get(struct ig_endpoints *r, const char *addr);
struct ig_endpoint *ig_endpoint_ref(struct ig_endpoint *ep);
void ig_endpoint_put(struct ig_endpoint *ep);

/* The full metrics (/pools, the admin page, profiles that read adapter
 * sets) and the load figures alone (every request); writing publishes
 * both. Readers never wait for each other; there is one writer at a time
 * (the scraper). */
void ig_endpoint_read_metrics(const struct ig_endpoint *ep, struct ig_endpoint_metrics *out);
static inline unsigned ig_endpoint_read_load(const struct ig_endpoint *ep,
					     struct ig_endpoint_load *out);
/* What the picker reads of the full metrics: all but the display texts
 * (left empty), each adapter set up to its count, so a copy is a few dozen
 * words instead of 1.3 KB. Returns the sequence counter it was read at, as
 * ig_endpoint_read_load() does. */
unsigned ig_endpoint_read_sched(const struct ig_endpoint *ep, struct ig_endpoint_metrics *out);
void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m);
/* Only the cache configuration of the full metrics (one word). */
void ig_endpoint_read_cache(const struct ig_endpoint *ep, struct ig_cache_config *out);

/* Worker-side accounting; `slot` is the worker's index. A request counts
 * as pending on the endpoint from its dispatch until it finishes or the
 * page of a scrape taken after the pod counted it is applied, whichever
 * comes first: so a finished request never inflates the estimate, and a
 * burst between two scrapes still spreads. A scrape *sent* just after the
 * dispatch can be answered before the pod has counted the request (a new
 * connection not yet accepted, the pod's own order of events, the parsing
 * and tokenizing before vLLM's engine queues it), so it is the second
 * scrape sent after the dispatch, a whole interval later, whose page ends
 * the count. dispatch returns the epoch to give to finish. */
unsigned ig_endpoint_dispatch(struct ig_endpoint *ep, size_t slot, long tokens);
void ig_endpoint_finish(struct ig_endpoint *ep, size_t slot, unsigned epoch, long tokens);
/* Takes back the request dispatch counted in the endpoint's total (in the
 * caller's own slot, after dispatch there): the proxy in front reported
 * that another endpoint served it. */
void ig_endpoint_uncount(struct ig_endpoint *ep, size_t slot);

/* Sums over the slots. */
long ig_endpoint_inflight(const struct ig_endpoint *ep);
unsigned long ig_endpoint_requests(const struct ig_endpoint *ep);

/* Whether worker slot `slot` may have pending counts on the endpoint.
 * A reader of pending counts needs only the slots that may: every request
 * reads every candidate's counts, and most slots of most endpoints of a
 * large pool have none (a slot is a cache line). Each slot has a bitmap of
 * its own over the registry's endpoints, written by its worker only: a
 * dispatch sets the endpoint's bit, and the worker clears it when it
 * reads the endpoint's counts and finds nothing of its own pending there.
 * An endpoint without an index is always read. */
/* Slot `slot`'s word of the held bitmaps that holds ep's bit (ep->idx %
 * 64); ep must have an index. */
static inline _Atomic uint64_t *ig_endpoint_held_word(const struct ig_endpoint *ep, size_t slot)
{
	return &ep->held[slot * (IG_ENDPOINT_DENSE / 64) + ep->idx / 64];
}

static inline bool ig_endpoint_slot_held(const struct ig_endpoint *ep, size_t slot)
{
	if (ep->idx == IG_ENDPOINT_NO_INDEX)
		return true;
	uint64_t w = atomic_load_explicit(ig_endpoint_held_word(ep, slot), memory_order_relaxed);
	return (w >> (ep->idx % 64)) & 1;
}

/* Whether any worker slot may have pending counts on the endpoint: one
 * word per slot covers 64 indexes, so a loop over a pool whose endpoints
 * have neighbouring indexes ORs the slots' words once per 64 endpoints
 * and keeps the result in a memo of its own (ig_held_memo_init before
 * the loop). The _at forms take the registry's bitmaps, its slot count and
 * the endpoint's index, which a reader of a kept list has without
 * reading the endpoint. */
struct ig_held_memo {
	uint32_t block;		/* 64-index block + 1 of `any`; 0: none yet */
	_Atomic uint64_t *held; /* the bitmaps the block was read from */
	uint64_t any;
	/* Each slot's word for the block, with at most IG_HELD_MASK_SLOTS
	 * slots (ig_held_slots_at), and a zero after an odd count. */
	uint64_t words[64];
};

#define IG_HELD_MASK_SLOTS 64

/* A memo before its loop (the words need no zeroing). */
static inline void ig_held_memo_init(struct ig_held_memo *m)
{
	m->block = 0;
	m->held = NULL;
	m->any = 0;
}

static inline bool ig_held_any_at(struct ig_held_memo *m, _Atomic uint64_t *held, size_t nslots,
				  uint32_t idx)
{
	uint32_t b = idx / 64;
	if (m->block != b + 1 || m->held != held) {
		uint64_t any = 0;
		for (size_t s = 0; s < nslots; s++) {
			uint64_t w = atomic_load_explicit(&held[s * (IG_ENDPOINT_DENSE / 64) + b],
							  memory_order_relaxed);
			if (s < IG_HELD_MASK_SLOTS)
				m->words[s] = w;
			any |= w;
		}
		if (nslots % 2 && nslots < IG_HELD_MASK_SLOTS)
			m->words[nslots] = 0; /* read in pairs */
		m->block = b + 1;
		m->held = held;
		m->any = any;
	}
	return (m->any >> (idx % 64)) & 1;
}

static inline bool ig_endpoint_some_held(const struct ig_endpoint *ep, struct ig_held_memo *m)
{
	if (ep->idx == IG_ENDPOINT_NO_INDEX)
		return true;
	return ig_held_any_at(m, ep->held, ep->nslots, ep->idx);
}

/* The worker slots that may have pending counts on the endpoint, bit s for
 * slot s (0: none); all ones for an endpoint without an index or a
 * registry of more than IG_HELD_MASK_SLOTS slots, whose slots
 * ig_endpoint_pending_of() then tests one by one. */
static inline uint64_t ig_held_slots_at(struct ig_held_memo *m, _Atomic uint64_t *held,
					size_t nslots, uint32_t idx)
{
	if (idx == IG_ENDPOINT_NO_INDEX)
		return UINT64_MAX;
	if (!ig_held_any_at(m, held, nslots, idx))
		return 0;
	if (nslots > IG_HELD_MASK_SLOTS)
		return UINT64_MAX;
	unsigned bit = idx % 64;
	uint64_t mask = 0;
#ifdef __SSE2__
	/* Two slots a step: each word shifted so that the endpoint's bit is
	 * its sign, the two signs taken at once. */
	__m128i by = _mm_cvtsi32_si128((int)(63 - bit));
	for (size_t s = 0; s < nslots; s += 2) {
		__m128i w = _mm_loadu_si128((const __m128i *)&m->words[s]);
		unsigned two = (unsigned)_mm_movemask_pd(_mm_castsi128_pd(_mm_sll_epi64(w, by)));
		mask |= (uint64_t)two << s;
	}
#else
	for (size_t s = 0; s < nslots; s++)
		mask |= ((m->words[s] >> bit) & 1) << s;
#endif
	return mask;
}

static inline uint64_t ig_endpoint_held_slots(const struct ig_endpoint *ep, struct ig_held_memo *m)
{
	return ig_held_slots_at(m, ep->held, ep->nslots, ep->idx);
}

/* Requests pending as defined above, and the prompt tokens of requests in
 * flight (dispatched and not finished, scrapes or not). `self` is the
 * calling worker's slot, whose bit is cleared when it holds nothing here,
 * neither pending requests nor tokens in flight (SIZE_MAX: a reader that
 * is no worker). */
void ig_endpoint_pending(const struct ig_endpoint *ep, size_t self, long *requests, long *tokens);
/* The same, reading only the slots of a mask from ig_endpoint_held_slots()
 * (a loop over many endpoints finds them once per 64 of them), and its
 * prefetch: the held slots' lines, some iterations ahead. */
void ig_endpoint_pending_of(const struct ig_endpoint *ep, size_t self, uint64_t slots,
			    long *requests, long *tokens);

/* Prefetches for a loop over many endpoints that reads each one's load
 * and pending counts: the endpoint's own lines some iterations ahead,
 * its held slots (found through those lines) fewer iterations ahead. */
static inline void ig_endpoint_prefetch_head(const struct ig_endpoint *ep)
{
	__builtin_prefetch(ep);
	__builtin_prefetch((const char *)ep + 64);
}

static inline void ig_endpoint_prefetch_first(const struct ig_endpoint *ep)
{
	__builtin_prefetch(ep);
}

/* The lines of the slots a mask from ig_endpoint_held_slots() names (all
 * ones: each slot whose held bit is set). */
static inline void ig_endpoint_prefetch_held(const struct ig_endpoint *ep, uint64_t slots)
{
	if (slots == UINT64_MAX) {
		for (size_t i = 0; i < ep->nslots; i++)
			if (ig_endpoint_slot_held(ep, i))
				__builtin_prefetch(&ep->slots[i]);
		return;
	}
	for (; slots; slots &= slots - 1)
		__builtin_prefetch(&ep->slots[__builtin_ctzll(slots)]);
}

/* The load figures under the sequence counter (see endpoint.c's
 * copy_words for why each word is an acquire load): inline, as every
 * request reads them for every candidate. Returns the counter they were
 * read at (even): a later read of the counter that finds it unchanged
 * finds the same figures. */
static inline unsigned ig_endpoint_read_load(const struct ig_endpoint *ep,
					     struct ig_endpoint_load *out)
{
	struct ig_endpoint *e = (struct ig_endpoint *)ep;
	_Atomic uint64_t *src = (_Atomic uint64_t *)&e->load;
	for (;;) {
		unsigned s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1u)
			continue;
		for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++) {
			uint64_t w = atomic_load_explicit(&src[i], memory_order_acquire);
			memcpy((char *)out + i * sizeof w, &w, sizeof w);
		}
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1)
			return s1;
	}
}

/* The counter the figures are published under: odd while written, moved
 * on by every write. */
static inline unsigned ig_endpoint_seq(const struct ig_endpoint *ep)
{
	return atomic_load_explicit(&((struct ig_endpoint *)ep)->seq, memory_order_acquire);
}

/* The registry's change log. Each change of what an endpoint with an
 * index publishes (its figures, its rotation flag) appends the index, so
 * that a reader of a long list who kept what it read last finds what
 * changed since from a few entries instead of reading every endpoint.
 * Entry p of the log (p counts from 0) lies at p % IG_ENDPOINT_LOG and
 * carries p's low 32 bits beside the index: a reader tells an entry not
 * yet written (its writer took the place, the store is still to come) from
 * one already overwritten by a later round. */
#define IG_ENDPOINT_LOG 4096u

struct ig_endpoint_log {
	_Alignas(64) _Atomic uint64_t head; /* places taken */
	_Alignas(64) _Atomic uint64_t entries[IG_ENDPOINT_LOG];
};

/* The log of the endpoint's registry; NULL for an endpoint without an
 * index, whose changes no log records. */
static inline const struct ig_endpoint_log *ig_endpoint_log_of(const struct ig_endpoint *ep)
{
	return ep->idx != IG_ENDPOINT_NO_INDEX ? ep->log : NULL;
}

/* Where the next change will be written: a reader that reads this before
 * reading the endpoints misses none of the changes after its read. */
static inline uint64_t ig_endpoint_log_head(const struct ig_endpoint_log *l)
{
	return atomic_load_explicit(&((struct ig_endpoint_log *)l)->head, memory_order_acquire);
}

/* Entry p: 1 with the index in *idx (the endpoint's change is then
 * visible to the caller), 0 when not written yet, -1 when overwritten
 * (the reader fell more than IG_ENDPOINT_LOG changes behind). */
static inline int ig_endpoint_log_at(const struct ig_endpoint_log *l, uint64_t p, uint32_t *idx)
{
	uint64_t e = atomic_load_explicit(
	    &((struct ig_endpoint_log *)l)->entries[p % IG_ENDPOINT_LOG], memory_order_acquire);
	int32_t ahead = (int32_t)((uint32_t)(e >> 32) - (uint32_t)p);
	if (ahead != 0)
		return ahead > 0 ? -1 : 0;
	*idx = (uint32_t)e;
	return 1;
}

/* Takes the endpoint out of rotation, or puts it back (the scraper). */
void ig_endpoint_set_out_of_rotation(struct ig_endpoint *ep, bool out);

/* Scraper side: a scrape is being sent (returns its epoch); its page was
 * applied. */
unsigned ig_endpoint_scrape_sent(struct ig_endpoint *ep);
void ig_endpoint_scrape_applied(struct ig_endpoint *ep, unsigned epoch);

#endif
