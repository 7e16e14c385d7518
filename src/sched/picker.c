/* The scheduler: each profile compiled from the config into flat arrays
 * of filters and scorers plus a picker; ig_schedule() asks the profile
 * handler which profile a request runs and runs it over the caller's
 * candidates (gie-reference §4.2-§4.4).
 *
 * Deviation from GIE, on purpose: the queue and running-requests scorers
 * add the requests this gateway dispatched since the last scrape
 * (inflight_requests) to the scraped counts, and the token-load scorer
 * reads inflight_tokens. GIE scores only scraped values, so a burst
 * arriving between two scrapes all lands on the endpoint that looked idle.
 * The saturation detector and its filter keep GIE's scraped-only inputs,
 * because their thresholds are defined against vLLM's own queue.
 *
 * ig_schedule() allocates nothing for pools up to STACK_ENDPOINTS; larger
 * pools take one malloc per call. */
#include "sched/picker.h"

#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sched/picker_int.h"
#include "sched/prefix.h"
#include "sched/sched.h"

#define STACK_ENDPOINTS 256
#define MAX_STAGES MAX_PROFILE_ENTRIES
/* vLLM's rule of thumb, as in GIE: about four characters per token. */
#define CHARS_PER_TOKEN 4

struct stage {
	enum plugin_type type;
	double weight;
	struct plugin_params p;
};

/* Lookup statistics are counted per thread, so that schedules on different
 * workers never write one cache line. A thread takes the next stripe the
 * first time it counts and keeps it; the first STAT_STRIPES threads each
 * own one and write it with a load and a store, later ones share the last
 * stripe and add to it atomically. */
#define STAT_STRIPES 64
struct stat_stripe {
	_Alignas(64) _Atomic uint64_t lookups;
	_Atomic uint64_t hit_blocks, lookup_blocks;
};

static _Atomic unsigned stripes_taken;
static _Thread_local unsigned my_stripe = UINT_MAX;

/* One scheduling profile, compiled. */
struct sched_profile {
	struct stage filters[MAX_STAGES];
	size_t nfilters;
	struct stage scorers[MAX_STAGES];
	size_t nscorers;
	struct stage picker;
	char *name;
};

struct ig_scheduler {
	struct stat_stripe stats[STAT_STRIPES + 1];
	struct sched_profile profiles[MAX_PROFILES];
	size_t nprofiles;
	/* The profile handler (see struct ig_picker_config): NULL for
	 * single-profile-handler, else header-profile-handler's header. */
	char *profile_header;
	size_t default_profile;
	struct plugin_params detector;
	/* Prefix hashing, when a prefix scorer or affinity filter runs. */
	struct ig_prefix_index *index;
	size_t block_bytes;
	size_t max_blocks;
};

/* Stands in for an endpoint that has never been scraped. */
static const struct ig_endpoint_metrics no_metrics;

static const struct ig_endpoint_metrics *metrics(const struct ig_sched_endpoint *e)
{
	return e->m ? e->m : &no_metrics;
}

static struct ig_str target_of(const struct ig_sched_req *req)
{
	return req->target_model.len ? req->target_model : req->model;
}

/* ---- construction ------------------------------------------------------------ */

static int setup_prefix(struct ig_scheduler *s, const struct plugin_params *p)
{
	s->block_bytes = (size_t)p->block_size_tokens * CHARS_PER_TOKEN;
	s->max_blocks = p->max_prefix_blocks;
	if (p->max_prefix_tokens > 0)
		s->max_blocks = p->max_prefix_tokens / p->block_size_tokens;
	if (s->max_blocks > IG_PREFIX_MAX_BLOCKS)
		s->max_blocks = IG_PREFIX_MAX_BLOCKS;
	s->index = ig_prefix_new(p->lru_capacity);
	return s->index ? 0 : -1;
}

static int compile_profile(struct sched_profile *sp, const struct ig_picker_config *c,
			   const struct profile *pr)
{
	sp->picker.type = PT_MAX_SCORE_PICKER;
	picker_default_params(&sp->picker.p);
	for (size_t i = 0; i < pr->n; i++) {
		const struct plugin *pl = &c->plugins[pr->e[i].plugin];
		struct stage st = {pl->type, pr->e[i].weight, pl->p};
		switch (picker_type_kind(pl->type)) {
		case PK_SCORER:
			sp->scorers[sp->nscorers++] = st;
			break;
		case PK_PICKER:
			sp->picker = st;
			break;
		case PK_FILTER:
		case PK_DETECTOR:
			sp->filters[sp->nfilters++] = st;
			break;
		default:
			break;
		}
	}
	sp->name = strdup(pr->name);
	return sp->name ? 0 : -1;
}

struct ig_scheduler *ig_scheduler_new(const struct ig_picker_config *c)
{
	if (!c || c->nprofiles == 0 || c->nprofiles > MAX_PROFILES)
		return NULL;
	size_t size = (sizeof(struct ig_scheduler) + 63) & ~(size_t)63;
	struct ig_scheduler *s = aligned_alloc(64, size);
	if (!s)
		return NULL;
	memset(s, 0, size);
	for (size_t i = 0; i < c->nprofiles; i++, s->nprofiles++)
		if (compile_profile(&s->profiles[i], c, &c->profiles[i]) < 0)
			goto fail;
	if (c->profile_header && !(s->profile_header = strdup(c->profile_header)))
		goto fail;
	s->default_profile = c->default_profile < c->nprofiles ? c->default_profile : 0;
	s->detector = c->detector;
	if (c->prefix_index && setup_prefix(s, &c->prefix) < 0)
		goto fail;
	return s;
fail:
	ig_scheduler_free(s);
	return NULL;
}

void ig_scheduler_free(struct ig_scheduler *s)
{
	if (!s)
		return;
	ig_prefix_free(s->index);
	for (size_t i = 0; i < s->nprofiles; i++)
		free(s->profiles[i].name);
	free(s->profile_header);
	free(s);
}

const char *ig_scheduler_profile_header(const struct ig_scheduler *s)
{
	return s->profile_header;
}

/* ---- one call's state ---------------------------------------------------------- */

struct call {
	const struct ig_sched_req *req;
	const struct ig_sched_endpoint *eps;
	size_t n;
	struct ig_rng *rng;
	size_t nhashes;
	uint32_t *counts; /* prefix blocks matched, by endpoint index */
	double *scores;   /* by position in the candidate set */
	int64_t *vals;    /* a scorer's input, by position */
	size_t *a, *b;    /* candidate index sets */
	uint64_t *keys;
};

/* Bytes of scratch per endpoint: two index sets, scores, scorer inputs,
 * keys and counts. */
#define PER_EP (2 * sizeof(size_t) + sizeof(double) + sizeof(int64_t) + sizeof(uint64_t) + \
		sizeof(uint32_t))

static void carve(struct call *c, unsigned char *mem)
{
	size_t n = c->n;
	c->scores = (double *)mem;
	c->vals = (int64_t *)(c->scores + n);
	c->a = (size_t *)(c->vals + n);
	c->b = c->a + n;
	c->keys = (uint64_t *)(c->b + n);
	c->counts = (uint32_t *)(c->keys + n);
}

/* ---- filters ----------------------------------------------------------------- */

static void keep_all(const struct ig_sched_set *in, struct ig_sched_set *out)
{
	memcpy(out->idx, in->idx, in->n * sizeof(*in->idx));
	out->n = in->n;
}

static bool fresh(const struct ig_sched_endpoint *e, const struct plugin_params *p)
{
	return e->m && e->metrics_age_ms <= p->staleness_ms;
}

/* The utilization detector as a filter: endpoints fresh and under both
 * thresholds (raised by headroom); all of them when none qualifies. */
static void saturation_filter(const struct call *c, const struct plugin_params *p,
			      const struct ig_sched_set *in, struct ig_sched_set *out)
{
	double qmax = p->queue_depth_threshold * (1 + p->headroom);
	double kvmax = p->kv_threshold * (1 + p->headroom);
	out->n = 0;
	for (size_t k = 0; k < in->n; k++) {
		const struct ig_sched_endpoint *e = &c->eps[in->idx[k]];
		if (fresh(e, p) && (double)e->m->waiting < qmax && e->m->kv_usage < kvmax)
			out->idx[out->n++] = in->idx[k];
	}
	if (out->n == 0)
		keep_all(in, out);
}

static void affinity_filter(const struct call *c, const struct plugin_params *p,
			    const struct ig_sched_set *in, struct ig_sched_set *out)
{
	out->n = 0;
	if (c->nhashes > 0)
		for (size_t k = 0; k < in->n; k++)
			if ((double)c->counts[in->idx[k]] / (double)c->nhashes >= p->affinity_threshold)
				out->idx[out->n++] = in->idx[k];
	if (out->n == 0)
		keep_all(in, out);
}

/* An address's host: "10.0.0.1" of "10.0.0.1:8000", "::1" of "[::1]:8000". */
static struct ig_str host_of(struct ig_str addr)
{
	size_t p = addr.len;
	while (p > 0 && addr.ptr[p - 1] != ':')
		p--;
	struct ig_str h = {addr.ptr, p ? p - 1 : addr.len};
	if (h.len >= 2 && h.ptr[0] == '[' && h.ptr[h.len - 1] == ']')
		h = (struct ig_str){h.ptr + 1, h.len - 2};
	return h;
}

static bool listed(struct ig_str list, struct ig_str addr)
{
	struct ig_str host = host_of(addr);
	while (list.len) {
		const char *comma = memchr(list.ptr, ',', list.len);
		size_t len = comma ? (size_t)(comma - list.ptr) : list.len;
		struct ig_str e = ig_str_trim((struct ig_str){list.ptr, len});
		if (e.len >= 2 && e.ptr[0] == '[' && e.ptr[e.len - 1] == ']')
			e = (struct ig_str){e.ptr + 1, e.len - 2};
		if (e.len && (ig_str_eq(e, addr) || ig_str_eq(e, host)))
			return true;
		list = comma ? (struct ig_str){comma + 1, list.len - len - 1} : (struct ig_str){0};
	}
	return false;
}

/* test-epp-endpoint-selection: only the listed ip or ip:port endpoints;
 * without the header, everyone. */
static void header_filter(const struct call *c, const struct ig_sched_set *in,
			  struct ig_sched_set *out)
{
	if (c->req->test_endpoints.len == 0) {
		keep_all(in, out);
		return;
	}
	out->n = 0;
	for (size_t k = 0; k < in->n; k++)
		if (listed(c->req->test_endpoints, c->eps[in->idx[k]].addr))
			out->idx[out->n++] = in->idx[k];
}

static int tree_filter(const struct call *c, const struct ig_sched_set *in,
		       struct ig_sched_set *out)
{
	const struct ig_endpoint_metrics *stack[STACK_ENDPOINTS];
	const struct ig_endpoint_metrics **m = stack;
	if (c->n > STACK_ENDPOINTS) {
		m = malloc(c->n * sizeof(*m));
		if (!m)
			return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		m[i] = metrics(&c->eps[i]);
	struct ig_sched_request r = {c->req->model, c->req->target_model, c->req->critical};
	int rc = ig_sched_decision_tree_filter(&r, m, in, c->rng, out);
	if (m != stack)
		free(m);
	return rc;
}

static int run_filter(const struct call *c, const struct stage *st, const struct ig_sched_set *in,
		      struct ig_sched_set *out)
{
	switch (st->type) {
	case PT_DECISION_TREE_FILTER:
		return tree_filter(c, in, out);
	case PT_UTILIZATION_DETECTOR:
		saturation_filter(c, &st->p, in, out);
		break;
	case PT_PREFIX_AFFINITY_FILTER:
		affinity_filter(c, &st->p, in, out);
		break;
	case PT_HEADER_TESTING_FILTER:
		header_filter(c, in, out);
		break;
	default:
		keep_all(in, out);
		break;
	}
	return 0;
}

/* ---- scorers ------------------------------------------------------------------ */

static int64_t queue_of(const struct ig_sched_endpoint *e)
{
	return metrics(e)->waiting + e->inflight_requests;
}

static int64_t running_of(const struct ig_sched_endpoint *e)
{
	return metrics(e)->running + e->inflight_requests;
}

/* (max - v) / (max - min) over the candidates; 1.0 when all are equal. */
static void score_spread(const struct call *c, const struct ig_sched_set *set,
			 int64_t (*value)(const struct ig_sched_endpoint *), double w)
{
	int64_t min = INT64_MAX, max = INT64_MIN;
	/* Each endpoint's metrics are read once: they may sit far apart. */
	for (size_t k = 0; k < set->n; k++) {
		int64_t v = value(&c->eps[set->idx[k]]);
		c->vals[k] = v;
		min = v < min ? v : min;
		max = v > max ? v : max;
	}
	for (size_t k = 0; k < set->n; k++) {
		double s = 1.0;
		if (max != min)
			s = (double)(max - c->vals[k]) / (double)(max - min);
		c->scores[k] += (s < 0 ? 0 : s > 1 ? 1 : s) * w;
	}
}

static double lora_score(const struct ig_endpoint_metrics *m, struct ig_str target)
{
	if (ig_adapter_set_has(&m->running_adapters, target))
		return 1.0;
	if ((int64_t)(m->running_adapters.n + m->waiting_adapters.n) < m->max_active)
		return 0.8;
	if (ig_adapter_set_has(&m->waiting_adapters, target))
		return 0.6;
	return 0.0;
}

static double token_load_score(const struct ig_sched_endpoint *e, const struct plugin_params *p)
{
	if (e->inflight_tokens <= 0)
		return 1.0;
	double t = (double)e->inflight_tokens;
	double thr = (double)p->queue_threshold_tokens;
	return 1.0 - (t < thr ? t : thr) / thr;
}

static double score_one(const struct call *c, const struct stage *st, size_t i)
{
	const struct ig_sched_endpoint *e = &c->eps[i];
	switch (st->type) {
	case PT_KV_SCORER:
		return 1.0 - metrics(e)->kv_usage;
	case PT_LORA_SCORER:
		return lora_score(metrics(e), target_of(c->req));
	case PT_TOKEN_LOAD_SCORER:
		return token_load_score(e, &st->p);
	case PT_PREFIX_SCORER:
		return c->nhashes ? (double)c->counts[i] / (double)c->nhashes : 0.0;
	default:
		return 0.0;
	}
}

static void run_scorer(const struct call *c, const struct stage *st, const struct ig_sched_set *set)
{
	if (st->type == PT_QUEUE_SCORER) {
		score_spread(c, set, queue_of, st->weight);
		return;
	}
	if (st->type == PT_RUNNING_SCORER) {
		score_spread(c, set, running_of, st->weight);
		return;
	}
	for (size_t k = 0; k < set->n; k++) {
		double s = score_one(c, st, set->idx[k]);
		c->scores[k] += (s < 0 ? 0 : s > 1 ? 1 : s) * st->weight;
	}
}

/* ---- pickers ----------------------------------------------------------------- */

/* A candidate's rank: key first (higher is better), then a random tie
 * breaker. Giving every candidate an independent random tie key orders
 * equal keys uniformly at random, which is what GIE gets from shuffling
 * before a stable sort, without the shuffle. */
struct rank {
	double key;
	uint64_t tie;
	size_t pos;
};

static bool better(const struct rank *a, const struct rank *b)
{
	return a->key > b->key || (a->key == b->key && a->tie < b->tie);
}

/* Keeps the best `k` of the candidates seen so far, sorted, in best[]:
 * one comparison against the worst kept for most candidates. */
static void offer(struct rank *best, size_t *m, size_t k, const struct rank *r)
{
	size_t j = *m;
	if (j == k) {
		if (!better(r, &best[k - 1]))
			return;
		j = k - 1;
	} else {
		(*m)++;
	}
	for (; j > 0 && better(r, &best[j - 1]); j--)
		best[j] = best[j - 1];
	best[j] = *r;
}

/* The key a picker ranks by. max-score: the score. random: nothing (ties
 * everywhere, so the order is the random tie order). weighted-random:
 * A-Res (Efraimidis-Spirakis) U^(1/score), compared as its logarithm
 * ln(U)/score which orders the same; score <= 0 ranks after every positive
 * one, and with no positive score the order is uniform, as GIE falls back
 * to the random picker. */
static double key_of(enum plugin_type picker, double score, struct ig_rng *rng)
{
	if (picker == PT_RANDOM_PICKER)
		return 0;
	if (picker != PT_WEIGHTED_RANDOM_PICKER)
		return score;
	if (score <= 0)
		return -INFINITY;
	double u = ig_rng_double(rng);
	return log(u > 0 ? u : 0x1p-60) / score;
}

static void pick(const struct sched_profile *s, const struct call *c,
		 const struct ig_sched_set *set, struct ig_sched_result *res)
{
	struct rank best[IG_SCHED_MAX_RANKED];
	size_t k = IG_SCHED_MAX_RANKED, m = 0;
	if (s->picker.p.max_endpoints && s->picker.p.max_endpoints < k)
		k = s->picker.p.max_endpoints;
	for (size_t pos = 0; pos < set->n; pos++) {
		struct rank r = {key_of(s->picker.type, c->scores[pos], c->rng), ig_rng_next(c->rng),
				 pos};
		offer(best, &m, k, &r);
	}
	res->nranked = m;
	for (size_t j = 0; j < m; j++) {
		res->ranked[j] = set->idx[best[j].pos];
		if (res->scores)
			res->scores[j] = c->scores[best[j].pos];
	}
}

/* ---- ig_schedule ---------------------------------------------------------------- */

static void add_to(_Atomic uint64_t *v, uint64_t n, bool owned)
{
	if (owned)
		atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

static void count_lookup(struct ig_scheduler *s, uint64_t blocks, uint64_t hit)
{
	if (my_stripe == UINT_MAX) {
		unsigned k = atomic_fetch_add_explicit(&stripes_taken, 1, memory_order_relaxed);
		my_stripe = k < STAT_STRIPES ? k : STAT_STRIPES;
	}
	struct stat_stripe *st = &s->stats[my_stripe];
	bool owned = my_stripe < STAT_STRIPES;
	add_to(&st->lookups, 1, owned);
	add_to(&st->lookup_blocks, blocks, owned);
	add_to(&st->hit_blocks, hit, owned);
}

static void match_prefix(struct ig_scheduler *s, struct call *c, struct ig_sched_result *res)
{
	memset(c->counts, 0, c->n * sizeof(*c->counts));
	if (!s->index)
		return;
	struct ig_str seed = c->req->prefix_seed.len ? c->req->prefix_seed : target_of(c->req);
	c->nhashes = ig_prefix_hashes(seed, c->req->prefix_input, s->block_bytes, s->max_blocks,
				      res->prefix_hashes);
	res->nprefix_hashes = c->nhashes;
	if (c->nhashes == 0)
		return;
	for (size_t i = 0; i < c->n; i++)
		c->keys[i] = c->eps[i].key;
	ig_prefix_match(s->index, res->prefix_hashes, c->nhashes, c->keys, c->n, c->counts);
}

static int run(const struct sched_profile *s, struct call *c, struct ig_sched_result *res)
{
	struct ig_sched_set cur = {c->a, c->n}, next = {c->b, 0};
	for (size_t i = 0; i < c->n; i++)
		c->a[i] = i;
	for (size_t f = 0; f < s->nfilters; f++) {
		if (run_filter(c, &s->filters[f], &cur, &next) < 0 || next.n == 0)
			return -1;
		struct ig_sched_set t = cur;
		cur = next;
		next = (struct ig_sched_set){t.idx, 0};
	}
	memset(c->scores, 0, cur.n * sizeof(*c->scores));
	for (size_t k = 0; k < s->nscorers; k++)
		run_scorer(c, &s->scorers[k], &cur);
	pick(s, c, &cur, res);
	return 0;
}

/* The profile handler's Pick: the profile this request runs, or NULL.
 * single-profile-handler: the one profile. header-profile-handler (llm-d
 * Router): with one profile, that one; else the profile the header names,
 * or the default profile when the header is absent or blank; a name no
 * profile has picks none. GIE loops Pick until it picks nothing more; both
 * handlers pick one profile in their first round and none after, so one
 * round is the whole loop, and that profile is the primary one. */
static const struct sched_profile *handler_pick(const struct ig_scheduler *s,
						const struct ig_sched_req *req)
{
	if (!s->profile_header || s->nprofiles == 1)
		return &s->profiles[0];
	struct ig_str want = ig_str_trim(req->profile);
	if (want.len == 0)
		return &s->profiles[s->default_profile];
	for (size_t i = 0; i < s->nprofiles; i++)
		if (ig_str_eq_cstr(want, s->profiles[i].name))
			return &s->profiles[i];
	return NULL;
}

int ig_schedule(struct ig_scheduler *s, const struct ig_sched_req *req,
		const struct ig_sched_endpoint *eps, size_t n, struct ig_rng *rng,
		struct ig_sched_result *res)
{
	alignas(max_align_t) unsigned char stack[STACK_ENDPOINTS * PER_EP];
	unsigned char *mem = stack;
	res->nranked = 0;
	res->nprefix_hashes = 0;
	res->prefix_match_blocks = 0;
	res->profile = NULL;
	const struct sched_profile *pr = handler_pick(s, req);
	if (!pr)
		return IG_SCHED_NO_PROFILE;
	if (n == 0)
		return -1;
	if (n > STACK_ENDPOINTS) {
		if (n > SIZE_MAX / PER_EP)
			return -1;
		mem = malloc(n * PER_EP);
		if (!mem)
			return -1;
	}
	struct call c = {.req = req, .eps = eps, .n = n, .rng = rng};
	carve(&c, mem);
	/* The prefix match is the request's, whichever profile runs: GIE's
	 * producer hashes every request (PrepareData). */
	match_prefix(s, &c, res);
	int rc = run(pr, &c, res);
	if (rc == 0) {
		res->profile = pr->name;
		if (c.nhashes) {
			uint64_t hit = c.counts[res->ranked[0]];
			res->prefix_match_blocks = hit;
			count_lookup(s, c.nhashes, hit);
		}
	}
	if (mem != stack)
		free(mem);
	return rc;
}

void ig_schedule_commit(struct ig_scheduler *s, const struct ig_sched_result *res,
			uint64_t endpoint_key)
{
	if (s->index && res->nprefix_hashes)
		(void)ig_prefix_add(s->index, endpoint_key, res->prefix_hashes, res->nprefix_hashes);
}

size_t ig_scheduler_prefix_limit(const struct ig_scheduler *s)
{
	return s->index ? s->block_bytes * s->max_blocks : 0;
}

void ig_scheduler_forget(struct ig_scheduler *s, uint64_t endpoint_key)
{
	if (s->index)
		ig_prefix_forget(s->index, endpoint_key);
}

/* ---- saturation and stats --------------------------------------------------------- */

double ig_scheduler_saturation(const struct ig_scheduler *s, const struct ig_sched_endpoint *eps,
			       size_t n)
{
	const struct plugin_params *p = &s->detector;
	double sum = 0;
	if (n == 0)
		return 1.0;
	for (size_t i = 0; i < n; i++) {
		if (!fresh(&eps[i], p)) {
			sum += 1.0;
			continue;
		}
		double q = (double)eps[i].m->waiting / p->queue_depth_threshold;
		double kv = eps[i].m->kv_usage / p->kv_threshold;
		sum += q > kv ? q : kv;
	}
	return sum / (double)n;
}

void ig_scheduler_prefix_stats(const struct ig_scheduler *s, struct ig_prefix_stats *out)
{
	*out = (struct ig_prefix_stats){0};
	if (!s->index)
		return;
	ig_prefix_size(s->index, &out->entries, &out->bytes);
	out->bytes += sizeof(*s);
	for (unsigned k = 0; k <= STAT_STRIPES; k++) {
		const struct stat_stripe *st = &s->stats[k];
		out->lookups += atomic_load_explicit(&st->lookups, memory_order_relaxed);
		out->hit_blocks += atomic_load_explicit(&st->hit_blocks, memory_order_relaxed);
		out->lookup_blocks +=
		    atomic_load_explicit(&st->lookup_blocks, memory_order_relaxed);
	}
}
