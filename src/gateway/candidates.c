/* The pool's candidates for one request (candidates.h). A large pool is
 * read as a stream: the endpoints' own lines are prefetched some
 * iterations ahead, the worker slots that may hold pending counts fewer
 * iterations ahead, and the slots that hold nothing are not read at all.
 *
 * A list read again (a list id) is kept between reads, per thread: an
 * endpoint whose figures have not changed since the thread copied them
 * keeps that copy. Which ones changed the registry's change log says (the
 * indexes of the endpoints the scraper wrote since the thread's last
 * read), so a read of a pool between two of its scrapes costs the log's
 * few new entries, the held bitmaps (a word per slot per 64 endpoints)
 * and the pending counts of the endpoints some worker dispatched to, not a
 * line of every endpoint. Copies, metrics ages and pending counts are
 * written only where they change. */
#include "gateway/candidates.h"

#include <string.h>
#include <sys/types.h>

#include "core/scratch.h"

static _Thread_local struct ig_scratch cand_mem, full_mem;

/* A list as this thread last read it. */
struct kept {
	uint64_t id; /* 0: unused */
	struct ig_endpoint *const *src;
	size_t n;
	uint64_t last_use;
	struct ig_scratch mem, full_mem, map_mem;
	struct ig_sched_endpoint *se;
	struct ig_endpoint_load *load;
	struct ig_endpoint **eps;
	struct ig_endpoint_metrics *full; /* NULL until a read asks for them */
	unsigned *seq;			  /* the counter each copy was read at; odd: none */
	bool *oor;			  /* out of rotation at the last read */
	size_t noor;
	size_t *pend; /* positions whose pending counts are not zero */
	size_t npend;
	size_t *hold;	  /* positions some slot may hold pending counts of, */
	uint64_t *slots;  /* and those slots (ig_held_slots_at) */
	uint64_t aged_ns; /* metrics ages are as of this time */
	/* Where the endpoints of the list have neighbouring indexes in one
	 * registry (log not NULL): its change log, read up to log_pos; the
	 * positions by index (pos[idx - lo], SIZE_MAX: none) over the span
	 * [lo, lo + span); its held bitmaps and slot count; and the positions
	 * of endpoints without an index, read at every read (`other`). */
	const struct ig_endpoint_log *log;
	uint64_t log_pos;
	bool scanned; /* read whole once since log_pos was taken */
	uint32_t lo, span;
	size_t *pos;
	_Atomic uint64_t *held;
	size_t nslots;
	size_t *other;
	size_t nother;
};

#define KEPT 4
static _Thread_local struct kept kept[KEPT];
static _Thread_local uint64_t kept_clock;

/* Ages are recomputed when they are this old: a request sees its
 * candidates' metrics ages as of at most a millisecond before. */
#define AGE_STEP_NS 1000000u

static inline uint64_t age_ms(uint64_t updated_ns, uint64_t now_ns)
{
	if (!updated_ns)
		return UINT64_MAX;
	return now_ns > updated_ns ? (now_ns - updated_ns) / 1000000u : 0;
}

static int carve(struct ig_candidates *c, struct ig_scratch *mem, struct ig_scratch *fmem,
		 size_t cap, bool adapters)
{
	size_t per = sizeof(*c->se) + sizeof(*c->load) + sizeof(*c->eps);
	unsigned char *m = cap <= SIZE_MAX / per ? ig_scratch_get(mem, cap * per) : NULL;
	if (!m)
		return -1;
	c->se = (struct ig_sched_endpoint *)m;
	c->load = (struct ig_endpoint_load *)(c->se + cap);
	c->eps = (struct ig_endpoint **)(c->load + cap);
	c->full = NULL;
	if (adapters && !(c->full = ig_scratch_get(fmem, cap * sizeof(*c->full))))
		return -1;
	return 0;
}

/* The endpoint's figures (and its full metrics when full is not NULL),
 * and the sequence counter they were read at. */
static inline unsigned read_figures(const struct ig_endpoint *ep, struct ig_endpoint_load *load,
				    struct ig_endpoint_metrics *full)
{
	if (!full)
		return ig_endpoint_read_load(ep, load);
	unsigned seq = ig_endpoint_read_sched(ep, full);
	ig_endpoint_load_of(full, load);
	return seq;
}

/* Every endpoint read afresh, into the thread's scratch. */
static int read_all(struct ig_candidates *c, struct ig_endpoint *const *eps, size_t neps,
		    size_t self, bool adapters, uint64_t now_ns)
{
	c->n = 0;
	c->kept = false;
	if (carve(c, &cand_mem, &full_mem, neps ? neps : 1, adapters) < 0)
		return -1;
	/* Locals, not c's fields: stores through the arrays could alias c, and
	 * the compiler would reload every field per endpoint. */
	struct ig_sched_endpoint *restrict se = c->se;
	struct ig_endpoint_load *restrict load = c->load;
	struct ig_endpoint **restrict out = c->eps;
	struct ig_endpoint_metrics *restrict full = c->full;
	size_t n = 0;
	for (int pass = 0; pass < 2 && n == 0; pass++) {
		/* Each endpoint's held slots are found 8 ahead, for the
		 * prefetch, and kept until its turn. */
		struct ig_held_memo memo;
		ig_held_memo_init(&memo);
		uint64_t held_at[8];
		for (size_t i = 0; i < neps && i < 8; i++)
			held_at[i] = ig_endpoint_held_slots(eps[i], &memo);
		for (size_t i = 0; i < neps; i++) {
			struct ig_endpoint *ep = eps[i];
			uint64_t held = held_at[i % 8];
			if (i + 16 < neps)
				ig_endpoint_prefetch_head(eps[i + 16]);
			if (i + 8 < neps) {
				held_at[i % 8] = ig_endpoint_held_slots(eps[i + 8], &memo);
				ig_endpoint_prefetch_held(eps[i + 8], held_at[i % 8]);
			}
			if (pass == 0 &&
			    atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed))
				continue;
			size_t k = n++;
			out[k] = ep;
			long pend_r = 0, pend_t = 0;
			if (held)
				ig_endpoint_pending_of(ep, self, held, &pend_r, &pend_t);
			read_figures(ep, &load[k], full ? &full[k] : NULL);
			se[k] = (struct ig_sched_endpoint){
			    .m = &load[k],
			    .full = full ? &full[k] : NULL,
			    .metrics_age_ms = age_ms(load[k].updated_ns, now_ns),
			    .inflight_requests = pend_r,
			    .inflight_tokens = pend_t,
			    .addr = {ep->addr, ep->addr_len},
			    .key = ep->key,
			};
		}
	}
	c->n = n;
	return 0;
}

/* Whether the list can be followed through its registry's change log:
 * its endpoints have indexes in one registry, each once, within a span
 * not much wider than the list (the map from index to position is that
 * wide). Sets up k->log and the map, or leaves k->log NULL. */
static void kept_map(struct kept *k)
{
	k->log = NULL;
	k->nother = 0;
	uint32_t lo = UINT32_MAX, hi = 0;
	const struct ig_endpoint *first = NULL;
	for (size_t i = 0; i < k->n; i++) {
		const struct ig_endpoint *ep = k->eps[i];
		if (!ig_endpoint_log_of(ep)) {
			k->other[k->nother++] = i;
			continue;
		}
		if (!first)
			first = ep;
		if (ep->log != first->log)
			return;
		lo = ep->idx < lo ? ep->idx : lo;
		hi = ep->idx > hi ? ep->idx : hi;
	}
	if (!first)
		return;
	size_t span = (size_t)hi - lo + 1;
	if (span > 4 * k->n + 64)
		return;
	size_t *pos = ig_scratch_get(&k->map_mem, span * sizeof(*pos));
	if (!pos)
		return;
	for (size_t x = 0; x < span; x++)
		pos[x] = SIZE_MAX;
	for (size_t i = 0; i < k->n; i++) {
		const struct ig_endpoint *ep = k->eps[i];
		if (!ig_endpoint_log_of(ep))
			continue;
		if (pos[ep->idx - lo] != SIZE_MAX)
			return; /* twice in the list */
		pos[ep->idx - lo] = i;
	}
	k->pos = pos;
	k->lo = lo;
	k->span = (uint32_t)span;
	k->held = first->held;
	k->nslots = first->nslots;
	k->log = ig_endpoint_log_of(first);
	k->scanned = false;
}

/* The kept list for id, or a new one in place of the least recently used;
 * NULL when out of memory. */
static struct kept *kept_get(uint64_t id, struct ig_endpoint *const *eps, size_t neps,
			     bool adapters)
{
	struct kept *k = NULL;
	for (size_t i = 0; i < KEPT; i++)
		if (kept[i].id == id && kept[i].src == eps && kept[i].n == neps) {
			k = &kept[i];
			break;
		}
	if (!k) {
		k = &kept[0];
		for (size_t i = 1; i < KEPT; i++)
			if (kept[i].last_use < k->last_use)
				k = &kept[i];
		k->id = 0;
		size_t cap = neps ? neps : 1;
		size_t per = sizeof(*k->se) + sizeof(*k->load) + sizeof(*k->eps) + sizeof(*k->seq) +
			     sizeof(*k->oor) + sizeof(*k->pend) + sizeof(*k->hold) +
			     sizeof(*k->slots) + sizeof(*k->other) + 64;
		unsigned char *m =
		    cap <= SIZE_MAX / per ? ig_scratch_get(&k->mem, cap * per) : NULL;
		if (!m)
			return NULL;
		k->se = (struct ig_sched_endpoint *)m;
		k->load = (struct ig_endpoint_load *)(k->se + cap);
		k->eps = (struct ig_endpoint **)(k->load + cap);
		k->pend = (size_t *)(k->eps + cap);
		k->hold = k->pend + cap;
		k->other = k->hold + cap;
		k->slots = (uint64_t *)(k->other + cap);
		k->seq = (unsigned *)(k->slots + cap);
		k->oor = (bool *)(k->seq + cap);
		k->full = NULL;
		for (size_t i = 0; i < neps; i++) {
			k->eps[i] = eps[i];
			k->seq[i] = 1; /* odd: no copy yet */
			k->oor[i] = false;
			k->se[i] = (struct ig_sched_endpoint){
			    .m = &k->load[i],
			    .addr = {eps[i]->addr, eps[i]->addr_len},
			    .key = eps[i]->key,
			};
		}
		k->n = neps;
		kept_map(k);
		k->noor = 0;
		k->npend = 0;
		k->aged_ns = 0;
		k->id = id;
		k->src = eps;
	}
	if (adapters && !k->full) {
		k->full = ig_scratch_get(&k->full_mem, (neps ? neps : 1) * sizeof(*k->full));
		if (!k->full) {
			k->id = 0;
			return NULL;
		}
		for (size_t i = 0; i < neps; i++) {
			k->seq[i] = 1; /* read again, with the full metrics */
			k->se[i].full = &k->full[i];
		}
		k->scanned = false;
	}
	k->last_use = ++kept_clock;
	return k;
}

/* Position i of the kept list read again if its sequence counter moved
 * (and its rotation flag in any case). */
static inline void kept_refresh(struct kept *k, size_t i)
{
	struct ig_endpoint *ep = k->eps[i];
	unsigned seq = ig_endpoint_seq(ep);
	if (seq != k->seq[i]) {
		k->seq[i] = read_figures(ep, &k->load[i], k->full ? &k->full[i] : NULL);
		k->se[i].metrics_age_ms = age_ms(k->load[i].updated_ns, k->aged_ns);
	}
	bool oor = atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed);
	if (oor != k->oor[i]) {
		k->oor[i] = oor;
		k->noor += oor ? 1 : (size_t)-1;
	}
}

/* Every endpoint of the kept list checked: its counter, its flag, and
 * which slots may hold pending counts of it. */
static size_t kept_scan(struct kept *k)
{
	struct ig_endpoint *const *eps = k->eps;
	size_t n = k->n, nhold = 0;
	struct ig_held_memo here;
	ig_held_memo_init(&here);
	for (size_t i = 0; i < n; i++) {
		if (i + 16 < n)
			ig_endpoint_prefetch_first(eps[i + 16]);
		kept_refresh(k, i);
		uint64_t held = ig_endpoint_held_slots(eps[i], &here);
		if (held) {
			k->hold[nhold] = i;
			k->slots[nhold++] = held;
		}
	}
	return nhold;
}

/* The list through the change log: the endpoints logged since the last
 * read, and those without an index; the held bitmaps over the list's span
 * of indexes. -1 when the log cannot tell (this thread fell too far
 * behind): then the list is read whole. */
static ssize_t kept_follow(struct kept *k)
{
	uint64_t head = ig_endpoint_log_head(k->log);
	if (!k->scanned || head - k->log_pos > IG_ENDPOINT_LOG)
		return -1;
	uint64_t p = k->log_pos;
	for (; p < head; p++) {
		uint32_t x;
		int got = ig_endpoint_log_at(k->log, p, &x);
		if (got < 0)
			return -1;
		if (got == 0)
			break; /* written soon: read from here next time */
		if (x - k->lo < k->span && k->pos[x - k->lo] != SIZE_MAX)
			kept_refresh(k, k->pos[x - k->lo]);
	}
	k->log_pos = p;
	size_t nhold = 0;
	for (size_t j = 0; j < k->nother; j++) {
		kept_refresh(k, k->other[j]);
		k->hold[nhold] = k->other[j];
		k->slots[nhold++] = UINT64_MAX;
	}
	struct ig_held_memo m;
	ig_held_memo_init(&m);
	uint32_t end = k->lo + k->span;
	for (uint32_t b = k->lo / 64; b <= (end - 1) / 64; b++) {
		ig_held_any_at(&m, k->held, k->nslots, b * 64);
		uint64_t any = m.any;
		if (b == k->lo / 64)
			any &= UINT64_MAX << (k->lo % 64);
		if (b == (end - 1) / 64 && end % 64)
			any &= UINT64_MAX >> (64 - end % 64);
		for (; any; any &= any - 1) {
			uint32_t x = b * 64 + (uint32_t)__builtin_ctzll(any);
			size_t i = k->pos[x - k->lo];
			if (i == SIZE_MAX)
				continue;
			k->hold[nhold] = i;
			k->slots[nhold++] = ig_held_slots_at(&m, k->held, k->nslots, x);
		}
	}
	return (ssize_t)nhold;
}

/* Reads the kept list again: what moved since the last read. Which
 * endpoints moved comes from the registry's change log where the list
 * allows (kept_map), else from each endpoint's counter; pending counts are
 * read in a second pass over the endpoints some slot holds counts of,
 * their lines prefetched a few ahead. */
static void kept_update(struct kept *k, size_t self, uint64_t now_ns)
{
	struct ig_sched_endpoint *restrict se = k->se;
	struct ig_endpoint *const *eps = k->eps;
	for (size_t j = 0; j < k->npend; j++) {
		se[k->pend[j]].inflight_requests = 0;
		se[k->pend[j]].inflight_tokens = 0;
	}
	k->npend = 0;
	if (now_ns - k->aged_ns >= AGE_STEP_NS || now_ns < k->aged_ns) {
		k->aged_ns = now_ns;
		for (size_t i = 0; i < k->n; i++)
			se[i].metrics_age_ms = age_ms(k->load[i].updated_ns, now_ns);
	}
	ssize_t got = k->log ? kept_follow(k) : -1;
	size_t nhold;
	if (got >= 0) {
		nhold = (size_t)got;
	} else {
		if (k->log) {
			k->log_pos = ig_endpoint_log_head(k->log);
			k->scanned = true;
		}
		nhold = kept_scan(k);
	}
	for (size_t j = 0; j < nhold; j++) {
		if (j + 8 < nhold)
			ig_endpoint_prefetch_head(eps[k->hold[j + 8]]);
		if (j + 4 < nhold)
			ig_endpoint_prefetch_held(eps[k->hold[j + 4]], k->slots[j + 4]);
		size_t i = k->hold[j];
		long r = 0, t = 0;
		ig_endpoint_pending_of(eps[i], self, k->slots[j], &r, &t);
		if (r || t) {
			se[i].inflight_requests = r;
			se[i].inflight_tokens = t;
			k->pend[k->npend++] = i;
		}
	}
}

int ig_candidates_read(struct ig_candidates *c, struct ig_endpoint *const *eps, size_t neps,
		       size_t self, bool adapters, uint64_t now_ns, uint64_t list_id)
{
	if (!list_id)
		return read_all(c, eps, neps, self, adapters, now_ns);
	struct kept *k = kept_get(list_id, eps, neps, adapters);
	if (!k)
		return read_all(c, eps, neps, self, adapters, now_ns);
	kept_update(k, self, now_ns);
	if (k->noor == 0 || k->noor == k->n) {
		/* All of them (none left out, or all out: then all in). */
		c->n = k->n;
		c->se = k->se;
		c->load = k->load;
		c->eps = k->eps;
		c->full = k->full;
		c->kept = true;
		return 0;
	}
	c->n = 0;
	c->kept = false;
	if (carve(c, &cand_mem, &full_mem, k->n, k->full != NULL) < 0)
		return -1;
	for (size_t i = 0; i < k->n; i++) {
		if (k->oor[i])
			continue;
		ig_candidates_put(c, c->n++, k->se[i], k->load[i], k->eps[i],
				  k->full ? &k->full[i] : NULL);
	}
	return 0;
}

void ig_candidates_put(struct ig_candidates *c, size_t at, struct ig_sched_endpoint se,
		       struct ig_endpoint_load load, struct ig_endpoint *ep,
		       const struct ig_endpoint_metrics *full)
{
	c->load[at] = load;
	c->eps[at] = ep;
	if (c->full && full)
		c->full[at] = *full;
	c->se[at] = se;
	c->se[at].m = &c->load[at];
	c->se[at].full = c->full ? &c->full[at] : NULL;
}

int ig_candidates_own(struct ig_candidates *c)
{
	if (!c->kept)
		return 0;
	struct ig_candidates o = *c;
	if (carve(c, &cand_mem, &full_mem, o.n ? o.n : 1, o.full != NULL) < 0)
		return -1;
	c->kept = false;
	for (size_t i = 0; i < o.n; i++)
		ig_candidates_put(c, i, o.se[i], o.load[i], o.eps[i], o.full ? &o.full[i] : NULL);
	return 0;
}
