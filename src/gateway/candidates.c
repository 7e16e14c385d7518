/* The pool's candidates for one request (candidates.h). A large pool is
 * read as a stream: the endpoints' own lines are prefetched some
 * iterations ahead, the worker slots that may hold pending counts fewer
 * iterations ahead, and the slots that hold nothing are not read at all. */
#include "gateway/candidates.h"

#include "core/scratch.h"

static _Thread_local struct ig_scratch cand_mem, full_mem;

int ig_candidates_read(struct ig_candidates *c, struct ig_endpoint *const *eps, size_t neps,
		       size_t self, bool adapters, uint64_t now_ns)
{
	size_t cap = neps ? neps : 1;
	size_t per = sizeof(*c->se) + sizeof(*c->load) + sizeof(*c->eps);
	c->n = 0;
	unsigned char *mem = cap <= SIZE_MAX / per ? ig_scratch_get(&cand_mem, cap * per) : NULL;
	if (!mem)
		return -1;
	c->se = (struct ig_sched_endpoint *)mem;
	c->load = (struct ig_endpoint_load *)(c->se + cap);
	c->eps = (struct ig_endpoint **)(c->load + cap);
	c->full = NULL;
	if (adapters && !(c->full = ig_scratch_get(&full_mem, cap * sizeof(*c->full))))
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
			if (full) {
				ig_endpoint_read_sched(ep, &full[k]);
				ig_endpoint_load_of(&full[k], &load[k]);
			} else {
				ig_endpoint_read_load(ep, &load[k]);
			}
			uint64_t upd = load[k].updated_ns;
			se[k] = (struct ig_sched_endpoint){
			    .m = &load[k],
			    .full = full ? &full[k] : NULL,
			    .metrics_age_ms =
				upd ? (now_ns > upd ? (now_ns - upd) / 1000000u : 0) : UINT64_MAX,
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
