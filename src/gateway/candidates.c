/* The pool's candidates for one request (candidates.h). A large pool is
 * read as a stream: the endpoints' own lines are prefetched some
 * iterations ahead, the worker slots that may hold pending counts fewer
 * iterations ahead, and the slots that hold nothing are not read at all.
 *
 * A list read again (a list id) is kept between reads, per thread: an
 * endpoint whose sequence counter has not moved since the thread copied
 * its figures keeps that copy, so a read of a pool between two of its
 * scrapes costs a load of each endpoint's counter and rotation flag, and
 * the pending counts of the endpoints some worker dispatched to. Copies,
 * metrics ages and pending counts are written only where they change. */
#include "gateway/candidates.h"

#include <string.h>

#include "core/scratch.h"

static _Thread_local struct ig_scratch cand_mem, full_mem;

/* A list as this thread last read it. */
struct kept {
	uint64_t id; /* 0: unused */
	struct ig_endpoint *const *src;
	size_t n;
	uint64_t last_use;
	struct ig_scratch mem, full_mem;
	struct ig_sched_endpoint *se;
	struct ig_endpoint_load *load;
	struct ig_endpoint **eps;
	struct ig_endpoint_metrics *full; /* NULL until a read asks for them */
	unsigned *seq;			  /* the counter each copy was read at; odd: none */
	bool *oor;			  /* out of rotation at the last read */
	size_t noor;
	size_t *pend; /* positions whose pending counts are not zero */
	size_t npend;
	uint64_t aged_ns; /* metrics ages are as of this time */
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
		struct ig_held_memo ahead = {0}, here = {0};
		for (size_t i = 0; i < neps; i++) {
			struct ig_endpoint *ep = eps[i];
			if (i + 16 < neps)
				ig_endpoint_prefetch_head(eps[i + 16]);
			if (i + 8 < neps && ig_endpoint_some_held(eps[i + 8], &ahead))
				ig_endpoint_prefetch_slots(eps[i + 8]);
			if (pass == 0 &&
			    atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed))
				continue;
			size_t k = n++;
			out[k] = ep;
			long pend_r = 0, pend_t = 0;
			if (ig_endpoint_some_held(ep, &here))
				ig_endpoint_pending(ep, self, &pend_r, &pend_t);
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
			     sizeof(*k->oor) + sizeof(*k->pend) + 64;
		unsigned char *m =
		    cap <= SIZE_MAX / per ? ig_scratch_get(&k->mem, cap * per) : NULL;
		if (!m)
			return NULL;
		k->se = (struct ig_sched_endpoint *)m;
		k->load = (struct ig_endpoint_load *)(k->se + cap);
		k->eps = (struct ig_endpoint **)(k->load + cap);
		k->pend = (size_t *)(k->eps + cap);
		k->seq = (unsigned *)(k->pend + cap);
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
		k->noor = 0;
		k->npend = 0;
		k->aged_ns = 0;
		k->id = id;
		k->src = eps;
		k->n = neps;
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
	}
	k->last_use = ++kept_clock;
	return k;
}

/* Reads the kept list again: what moved since the last read. (The worker
 * slots of endpoints 8 ahead are not prefetched here as read_all does:
 * with pending counts on most endpoints, the bit tests that find them
 * cost more than the misses they save, 13.3 against 10.8 us a decision
 * at 1,024 endpoints in picker_bench gw.) */
static void kept_update(struct kept *k, size_t self, uint64_t now_ns)
{
	struct ig_sched_endpoint *restrict se = k->se;
	struct ig_endpoint_load *restrict load = k->load;
	struct ig_endpoint_metrics *restrict full = k->full;
	struct ig_endpoint *const *eps = k->eps;
	size_t n = k->n;
	for (size_t j = 0; j < k->npend; j++) {
		se[k->pend[j]].inflight_requests = 0;
		se[k->pend[j]].inflight_tokens = 0;
	}
	k->npend = 0;
	bool age_all = now_ns - k->aged_ns >= AGE_STEP_NS || now_ns < k->aged_ns;
	if (age_all)
		k->aged_ns = now_ns;
	struct ig_held_memo here = {0};
	for (size_t i = 0; i < n; i++) {
		struct ig_endpoint *ep = eps[i];
		if (i + 16 < n)
			ig_endpoint_prefetch_head(eps[i + 16]);
		bool moved = ig_endpoint_seq(ep) != k->seq[i];
		if (moved)
			k->seq[i] = read_figures(ep, &load[i], full ? &full[i] : NULL);
		if (moved || age_all)
			se[i].metrics_age_ms = age_ms(load[i].updated_ns, k->aged_ns);
		bool oor = atomic_load_explicit(&ep->out_of_rotation, memory_order_relaxed);
		if (oor != k->oor[i]) {
			k->oor[i] = oor;
			k->noor += oor ? 1 : (size_t)-1;
		}
		if (ig_endpoint_some_held(ep, &here)) {
			long r = 0, t = 0;
			ig_endpoint_pending(ep, self, &r, &t);
			if (r || t) {
				se[i].inflight_requests = r;
				se[i].inflight_tokens = t;
				k->pend[k->npend++] = i;
			}
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
