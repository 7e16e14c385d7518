/* The scheduler: each profile compiled from the config into flat arrays
 * of filters and scorers plus a picker; ig_schedule() asks the profile
 * handler which profile a request runs and runs it over the caller's
 * candidates (gie-reference §4.2-§4.4).
 *
 * Deviation from GIE, on purpose: the queue and running-requests scorers
 * add the requests this gateway dispatched since the last scrape
 * (inflight_requests) to the scraped counts. The token-load scorer reads
 * inflight_tokens, the prompt tokens of every request in flight there, as
 * llm-d's inflight-load-producer counts them. GIE scores only scraped values, so a burst
 * arriving between two scrapes all lands on the endpoint that looked idle.
 * The saturation detector and its filter keep GIE's scraped-only inputs,
 * because their thresholds are defined against vLLM's own queue.
 *
 * ig_schedule() allocates nothing per call: its per-candidate arrays are
 * scratch memory of the calling thread, kept between calls (it grows when
 * the thread first meets a larger pool). After the filters, one gather
 * pass reads each surviving candidate once for what the scorers read
 * (queue and running counts with their spread, KV usage, the prefix
 * count) into dense arrays; each scorer then runs over those, and the
 * picker ranks the best (sched/rank.c). */
#include "sched/picker.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/clock.h"
#include "core/scratch.h"
#include "sched/picker_int.h"
#include "sched/prefix.h"
#include "sched/rank.h"
#include "sched/sched.h"

#define MAX_STAGES MAX_PROFILE_ENTRIES
/* vLLM's rule of thumb, as in GIE: about four characters per token. */
#define CHARS_PER_TOKEN 4

struct stage {
	enum plugin_type type;
	double weight;
	struct plugin_params p;
	struct label_match *lm; /* the label filters' (owned) */
	struct nohit_lru *lru;	/* no-hit-lru-scorer's (owned) */
	char *name;		/* in the configuration (owned) */
};

/* Lookup statistics are counted per thread, so that schedules on different
 * workers never write one cache line. A thread's stripe is its thread
 * index (sched_thread_index); the first STAT_STRIPES threads each own one
 * and write it with a load and a store, later ones share the last stripe
 * and add to it atomically. */
#define STAT_STRIPES 64
struct stat_stripe {
	_Alignas(64) _Atomic uint64_t lookups;
	_Atomic uint64_t hit_blocks, lookup_blocks;
};

static _Atomic unsigned threads_seen;
static _Thread_local unsigned my_thread = UINT_MAX;

unsigned sched_thread_index(void)
{
	if (my_thread == UINT_MAX)
		my_thread = atomic_fetch_add_explicit(&threads_seen, 1, memory_order_relaxed);
	return my_thread;
}

/* One scheduling profile, compiled. */
struct sched_profile {
	struct stage filters[MAX_STAGES];
	size_t nfilters;
	struct stage scorers[MAX_STAGES];
	size_t nscorers;
	struct stage picker;
	bool reads_adapters; /* a LoRA scorer or the decision-tree filter */
	bool tree;	     /* the decision-tree filter, which sheds by itself */
	unsigned columns;    /* COL_*: what the scorers read, gathered first */
	bool counts_early;   /* a filter reads prefix counts */
	unsigned needs;	     /* IG_SCHED_NEEDS_* */
	char *name;
	/* Its plugins' numbers (ig_scheduler_plugin): filters from first,
	 * then scorers, then the picker; the prefix match is timed with
	 * scorer prefix_at (-1: no prefix-cache-scorer). */
	size_t first;
	int prefix_at;
};

/* Figures several scorers read, gathered in one pass over the candidates
 * into arrays of their own, so that each scorer's loop runs over one
 * dense array instead of reaching through every candidate's pointers. */
#define COL_QUEUE 1u   /* waiting + dispatched since the scrape */
#define COL_RUNNING 2u /* running + dispatched since the scrape */
#define COL_KV 4u      /* KV-cache usage */

struct ig_scheduler {
	struct stat_stripe stats[STAT_STRIPES + 1];
	struct sched_profile profiles[MAX_PROFILES];
	size_t nprofiles;
	/* The profile handler (see struct ig_picker_config): NULL for
	 * single-profile-handler, else header-profile-handler's header. */
	char *profile_header;
	size_t default_profile;
	bool reads_adapters; /* some profile does */
	bool tree;	     /* some profile runs the decision-tree filter */
	bool report_served;  /* destination-endpoint-served-verifier */
	bool raw_body;	     /* passthrough-parser */
	unsigned needs;	     /* IG_SCHED_NEEDS_* of every profile */
	struct plugin_params detector;
	/* Prefix hashing, when a prefix scorer or affinity filter runs. */
	struct ig_prefix_index *index;
	struct plugin_params prefix;	 /* its parameters */
	struct ig_sched_plugin *plugins; /* every profile's, for their timings */
	size_t nplugins;
};

/* Stands in for an endpoint that has never been scraped. */
static const struct ig_endpoint_load no_load;

static inline const struct ig_endpoint_load *load(const struct ig_sched_endpoint *e)
{
	return e->m ? e->m : &no_load;
}

static struct ig_str target_of(const struct ig_sched_req *req)
{
	return req->target_model.len ? req->target_model : req->model;
}

/* ---- construction ------------------------------------------------------------ */

/* With autoTune an endpoint's commits give it the capacity it reports,
 * whatever its size: the index reserves room for the most there can be. */
static int setup_prefix(struct ig_scheduler *s, const struct plugin_params *p)
{
	s->prefix = *p;
	s->index =
	    ig_prefix_new_sized(p->lru_capacity, p->auto_tune ? UINT32_MAX : p->lru_capacity);
	return s->index ? 0 : -1;
}

/* A reported block size above what blockSizeTokens may be set to is not
 * believed. */
#define MAX_BLOCK_TOKENS (1u << 20)

/* The blocks a request is hashed in: blockSizeTokens tokens of about four
 * characters each, or with autoTune the block size the pool's model
 * servers report (0: none reported); at most maxPrefixBlocksToMatch, or
 * maxPrefixTokensToMatch / the block size, and never more than the index
 * takes. GIE's producer computes the same per request. */
static void geometry(const struct ig_scheduler *s, uint32_t reported, size_t *block_bytes,
		     size_t *max_blocks)
{
	const struct plugin_params *p = &s->prefix;
	bool tuned = p->auto_tune && reported && reported <= MAX_BLOCK_TOKENS;
	uint32_t tokens = tuned ? reported : p->block_size_tokens;
	size_t n = p->max_prefix_blocks;
	if (p->max_prefix_tokens > 0)
		n = p->max_prefix_tokens / tokens;
	*block_bytes = (size_t)tokens * CHARS_PER_TOKEN;
	*max_blocks = n < IG_PREFIX_MAX_BLOCKS ? n : IG_PREFIX_MAX_BLOCKS;
}

/* How many hashes ig_prefix_hashes makes at most of len bytes: the full
 * blocks and the tail, at most max_blocks. */
static size_t blocks_of(size_t len, size_t block_bytes, size_t max_blocks)
{
	size_t n = block_bytes ? len / block_bytes + (len % block_bytes != 0) : 0;
	return n < max_blocks ? n : max_blocks;
}

/* What a stage reads beyond the figures (IG_SCHED_NEEDS_*). */
static unsigned needs_of(enum plugin_type t)
{
	switch (t) {
	case PT_DECODE_FILTER:
	case PT_PREFILL_FILTER:
	case PT_ENCODE_FILTER:
	case PT_LABEL_SELECTOR_FILTER:
	case PT_BY_LABEL_SELECTOR:
	case PT_BY_LABEL:
		return IG_SCHED_NEEDS_PODS;
	case PT_ACTIVE_REQUEST_SCORER:
		return IG_SCHED_NEEDS_ACTIVE;
	case PT_CONTEXT_LENGTH_AWARE:
		return IG_SCHED_NEEDS_PODS;
	case PT_SESSION_AFFINITY_SCORER:
		return IG_SCHED_NEEDS_SESSION;
	default:
		return 0;
	}
}

/* The state a stage keeps of its own: the label filters' match, a copy
 * (the configuration may go before the scheduler does), and
 * no-hit-lru-scorer's LRU. */
static int stage_state(struct stage *st, const struct plugin *pl)
{
	if (pl->labels && !(st->lm = label_match_clone(pl->labels)))
		return -1;
	if (pl->type == PT_NO_HIT_LRU_SCORER && !(st->lru = nohit_lru_new(pl->p.lru_size)))
		return -1;
	return 0;
}

static void stage_free(struct stage *st)
{
	label_match_free(st->lm);
	nohit_lru_free(st->lru);
	free(st->name);
}

static int compile_profile(struct sched_profile *sp, const struct ig_picker_config *c,
			   const struct profile *pr)
{
	sp->picker.type = PT_MAX_SCORE_PICKER;
	picker_default_params(&sp->picker.p);
	for (size_t i = 0; i < pr->n; i++) {
		const struct plugin *pl = &c->plugins[pr->e[i].plugin];
		struct stage st = {
		    pl->type, pr->e[i].weight,
		    pl->p,    NULL,
		    NULL,     strdup(pl->name ? pl->name : picker_type_name(pl->type))};
		if (!st.name || stage_state(&st, pl) < 0) {
			stage_free(&st);
			return -1;
		}
		sp->needs |= needs_of(pl->type);
		switch (picker_type_kind(pl->type)) {
		case PK_SCORER:
			/* context-length-aware filters too when asked, as llm-d's
			 * profile runs a plugin in every role it has. */
			if (pl->type == PT_CONTEXT_LENGTH_AWARE && pl->p.enable_filtering) {
				struct stage f = st;
				f.lru = NULL;
				f.name = strdup(st.name);
				if (!f.name || !(f.lm = label_match_clone(pl->labels))) {
					free(f.name);
					stage_free(&st);
					return -1;
				}
				sp->filters[sp->nfilters++] = f;
			}
			sp->scorers[sp->nscorers++] = st;
			break;
		case PK_PICKER:
			free(sp->picker.name);
			sp->picker = st;
			break;
		case PK_FILTER:
		case PK_DETECTOR:
			sp->filters[sp->nfilters++] = st;
			break;
		default:
			stage_free(&st);
			break;
		}
		sp->reads_adapters |= pl->type == PT_LORA_SCORER ||
				      pl->type == PT_LORA_SLOT_SCORER ||
				      pl->type == PT_DECISION_TREE_FILTER;
		sp->counts_early |= pl->type == PT_PREFIX_AFFINITY_FILTER;
		sp->tree |= pl->type == PT_DECISION_TREE_FILTER;
		if (picker_type_kind(pl->type) == PK_SCORER)
			sp->columns |= pl->type == PT_QUEUE_SCORER     ? COL_QUEUE
				       : pl->type == PT_RUNNING_SCORER ? COL_RUNNING
				       : pl->type == PT_KV_SCORER      ? COL_KV
								       : 0;
	}
	if (!sp->picker.name && !(sp->picker.name = strdup(picker_type_name(sp->picker.type))))
		return -1;
	sp->name = strdup(pr->name);
	return sp->name ? 0 : -1;
}

/* Numbers every profile's plugins for their timings (see
 * ig_scheduler_plugin). */
static int number_plugins(struct ig_scheduler *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nprofiles; i++)
		n += s->profiles[i].nfilters + s->profiles[i].nscorers + 1;
	if (!(s->plugins = calloc(n, sizeof *s->plugins)))
		return -1;
	for (size_t i = 0; i < s->nprofiles; i++) {
		struct sched_profile *sp = &s->profiles[i];
		sp->first = s->nplugins;
		sp->prefix_at = -1;
		for (size_t k = 0; k < sp->nfilters; k++)
			s->plugins[s->nplugins++] = (struct ig_sched_plugin){
			    "Filter", picker_type_name(sp->filters[k].type), sp->filters[k].name};
		for (size_t k = 0; k < sp->nscorers; k++) {
			if (sp->prefix_at < 0 && sp->scorers[k].type == PT_PREFIX_SCORER)
				sp->prefix_at = (int)k;
			s->plugins[s->nplugins++] = (struct ig_sched_plugin){
			    "Scorer", picker_type_name(sp->scorers[k].type), sp->scorers[k].name};
		}
		s->plugins[s->nplugins++] = (struct ig_sched_plugin){
		    "Picker", picker_type_name(sp->picker.type), sp->picker.name};
	}
	return 0;
}

size_t ig_scheduler_nplugins(const struct ig_scheduler *s)
{
	return s->nplugins;
}

const struct ig_sched_plugin *ig_scheduler_plugin(const struct ig_scheduler *s, size_t i)
{
	return i < s->nplugins ? &s->plugins[i] : NULL;
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
	/* Counted before it is compiled, so that a failure frees it too. */
	for (size_t i = 0; i < c->nprofiles; i++) {
		s->nprofiles = i + 1;
		if (compile_profile(&s->profiles[i], c, &c->profiles[i]) < 0)
			goto fail;
	}
	if (c->profile_header && !(s->profile_header = strdup(c->profile_header)))
		goto fail;
	s->default_profile = c->default_profile < c->nprofiles ? c->default_profile : 0;
	for (size_t i = 0; i < s->nprofiles; i++) {
		s->reads_adapters |= s->profiles[i].reads_adapters;
		s->tree |= s->profiles[i].tree;
		s->needs |= s->profiles[i].needs;
	}
	s->detector = c->detector;
	s->report_served = c->report_served;
	s->raw_body = c->raw_body;
	if (c->prefix_index && setup_prefix(s, &c->prefix) < 0)
		goto fail;
	if (number_plugins(s) < 0)
		goto fail;
	/* The clock of the plugins' timings is measured now, not on a
	 * request. */
	ig_ticks_init();
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
	for (size_t i = 0; i < s->nprofiles; i++) {
		struct sched_profile *sp = &s->profiles[i];
		for (size_t k = 0; k < sp->nfilters; k++)
			stage_free(&sp->filters[k]);
		for (size_t k = 0; k < sp->nscorers; k++)
			stage_free(&sp->scorers[k]);
		stage_free(&sp->picker);
		free(sp->name);
	}
	free(s->plugins);
	free(s->profile_header);
	free(s);
}

bool ig_scheduler_reads_adapters(const struct ig_scheduler *s)
{
	return s->reads_adapters;
}

bool ig_scheduler_sheds_itself(const struct ig_scheduler *s)
{
	return s->tree;
}

bool ig_scheduler_reports_served(const struct ig_scheduler *s)
{
	return s->report_served;
}

bool ig_scheduler_raw_body(const struct ig_scheduler *s)
{
	return s->raw_body;
}

unsigned ig_scheduler_needs(const struct ig_scheduler *s)
{
	return s->needs;
}

const char *ig_scheduler_profile_header(const struct ig_scheduler *s)
{
	return s->profile_header;
}

/* ---- one call's state ---------------------------------------------------------- */

struct hit_slot;

struct call {
	const struct ig_sched_req *req;
	const struct ig_sched_endpoint *eps;
	size_t n;
	struct ig_rng *rng;
	size_t nhashes;
	const uint32_t *counts; /* prefix blocks matched, by endpoint index; NULL: none */
	double *scores;		/* by position in the candidate set */
	double *keys;		/* what a random picker ranks by, by position */
	int64_t *queue;		/* the COL_ columns, by position */
	int64_t *running;
	double *kv;
	size_t *a, *b;	     /* candidate index sets */
	uint32_t *count_mem; /* room for counts */
	/* The lookup's hits by key (see hits_index), when counts are found
	 * per candidate as the gather pass meets them. */
	struct hit_slot *hit_tab;
	size_t hit_mask;
	unsigned hit_log;
	uint64_t hit_filter[64];
	/* Positions in the set of the candidates with a count above 0, when
	 * the gather pass found the counts (else npos is SIZE_MAX): the only
	 * ones the prefix scorer has something to add to. */
	size_t *hit_pos, nhit_pos;
	/* The spread of the COL_QUEUE and COL_RUNNING columns. */
	int64_t qmin, qmax, rmin, rmax;
	uint64_t target_hash; /* of the target model, as adapter sets hold names */
	bool *lru_cold;	      /* no-hit-lru-scorer's finding, in the result */
};

/* Bytes of scratch per endpoint: scores, picker keys, three columns, two
 * index sets, prefix counts. */
#define PER_EP (3 * sizeof(double) + 2 * sizeof(int64_t) + 2 * sizeof(size_t) + sizeof(uint32_t))

static _Thread_local struct ig_scratch call_mem, hits_mem, tree_mem, ident_mem, hashes_mem;
static _Thread_local size_t ident_len;

/* 0, 1, ..., n - 1: the set of every candidate, filled once per thread
 * (again only when a bigger pool comes). */
static const size_t *identity(size_t n)
{
	size_t *id = ident_mem.ptr;
	if (n > ident_len || !id) {
		if (!(id = ig_scratch_get(&ident_mem, n * sizeof(*id))))
			return NULL;
		for (size_t i = 0; i < n; i++)
			id[i] = i;
		ident_len = n;
	}
	return id;
}

static int carve(struct call *c)
{
	size_t n = c->n;
	if (n > SIZE_MAX / PER_EP)
		return -1;
	unsigned char *mem = ig_scratch_get(&call_mem, n * PER_EP);
	if (!mem)
		return -1;
	c->scores = (double *)mem;
	c->keys = c->scores + n;
	c->kv = c->keys + n;
	c->queue = (int64_t *)(c->kv + n);
	c->running = c->queue + n;
	c->a = (size_t *)(c->running + n);
	c->b = c->a + n;
	c->count_mem = (uint32_t *)(c->b + n);
	return 0;
}

static inline uint32_t count_of(const struct call *c, size_t i)
{
	return c->counts ? c->counts[i] : 0;
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

/* GIE v1.5's prefix-cache-affinity-filter: the endpoints holding at least
 * affinityThreshold of the prompt's blocks, else everyone; everyone too
 * with one endpoint or fewer, a threshold <= 0, and with probability
 * explorationProbability. Its TTFT gate compares latency predictions,
 * which infergate does not make: as in GIE without a predictor, it never
 * breaks stickiness. */
static void affinity_filter(const struct call *c, const struct plugin_params *p,
			    const struct ig_sched_set *in, struct ig_sched_set *out)
{
	out->n = 0;
	if (in->n <= 1 || p->affinity_threshold <= 0 || ig_rng_double(c->rng) < p->exploration) {
		keep_all(in, out);
		return;
	}
	if (c->nhashes > 0)
		for (size_t k = 0; k < in->n; k++)
			if ((double)count_of(c, in->idx[k]) / (double)c->nhashes >=
			    p->affinity_threshold)
				out->idx[out->n++] = in->idx[k];
	if (out->n == 0)
		keep_all(in, out);
}

/* Requests an endpoint holds: waiting and running as last scraped, plus
 * those dispatched since that the scrape did not see. */
static inline int64_t total_load(const struct ig_sched_endpoint *e)
{
	return load(e)->waiting + load(e)->running + e->inflight_requests;
}

/* infergate's load-bound-scorer: consistent hashing with bounded loads
 * applied to prefix affinity. An endpoint whose load is at most
 * mean * (1 + slack) + headroom over the candidates scores 1, one above it
 * 0; with a weight above the other scorers' sum, the ones over the bound
 * rank after every one under it, so affinity cannot pile requests onto one
 * pod while others have room, and they stay in the ranking as fallbacks
 * (a filter would drop them). */
static void load_bound_score(const struct call *c, const struct plugin_params *p,
			     const struct ig_sched_set *set, double w)
{
	double sum = 0;
	for (size_t k = 0; k < set->n; k++)
		sum += (double)total_load(&c->eps[set->idx[k]]);
	double bound =
	    sum / (double)(set->n ? set->n : 1) * (1 + p->bound_slack) + p->bound_headroom;
	for (size_t k = 0; k < set->n; k++)
		if ((double)total_load(&c->eps[set->idx[k]]) <= bound)
			c->scores[k] += w;
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
 * none when the header is missing or blank (GIE v1.5's
 * request_header_based_filter.go: the request then fails with 429). */
static void header_filter(const struct call *c, const struct ig_sched_set *in,
			  struct ig_sched_set *out)
{
	out->n = 0;
	if (ig_str_trim(c->req->test_endpoints).len == 0)
		return;
	for (size_t k = 0; k < in->n; k++)
		if (listed(c->req->test_endpoints, c->eps[in->idx[k]].addr))
			out->idx[out->n++] = in->idx[k];
}

/* The v0.2.0 tree reads full metrics: stand-ins in the thread's scratch
 * memory, with the candidates' figures and the active adapters of their
 * full metrics (none without them). */
static int tree_filter(const struct call *c, const struct ig_sched_set *in,
		       struct ig_sched_set *out)
{
	size_t ptrs = (c->n * sizeof(void *) + 63) & ~(size_t)63;
	if (in->n > (SIZE_MAX - ptrs) / sizeof(struct ig_endpoint_metrics))
		return -1;
	unsigned char *mem =
	    ig_scratch_get(&tree_mem, ptrs + in->n * sizeof(struct ig_endpoint_metrics));
	if (!mem)
		return -1;
	const struct ig_endpoint_metrics **m = (const struct ig_endpoint_metrics **)mem;
	struct ig_endpoint_metrics *own = (struct ig_endpoint_metrics *)(mem + ptrs);
	for (size_t k = 0; k < in->n; k++, own++) {
		const struct ig_sched_endpoint *e = &c->eps[in->idx[k]];
		const struct ig_endpoint_load *l = load(e);
		/* The fields the tree reads. */
		own->waiting = l->waiting;
		own->kv_usage = l->kv_usage;
		own->max_active = l->max_active;
		own->active.n = 0;
		if (e->full) {
			uint32_t na = e->full->active.n;
			own->active.n = na < IG_MAX_ADAPTERS ? na : IG_MAX_ADAPTERS;
			memcpy(own->active.hash, e->full->active.hash,
			       own->active.n * sizeof(own->active.hash[0]));
		}
		m[in->idx[k]] = own;
	}
	struct ig_sched_request r = {c->req->model, c->req->target_model, c->req->critical};
	return ig_sched_decision_tree_filter(&r, m, in, c->rng, out);
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
	case PT_DECODE_FILTER:
	case PT_PREFILL_FILTER:
	case PT_ENCODE_FILTER:
	case PT_LABEL_SELECTOR_FILTER:
	case PT_BY_LABEL_SELECTOR:
	case PT_BY_LABEL:
		out->n = 0;
		for (size_t k = 0; k < in->n; k++)
			if (label_match_keeps(st->lm, c->eps[in->idx[k]].pod))
				out->idx[out->n++] = in->idx[k];
		break;
	case PT_CONTEXT_LENGTH_AWARE:
		out->n = 0;
		for (size_t k = 0; k < in->n; k++)
			if (context_length_keeps(st->lm, c->eps[in->idx[k]].pod,
						 c->req->prompt_tokens))
				out->idx[out->n++] = in->idx[k];
		break;
	default:
		keep_all(in, out);
		break;
	}
	return 0;
}

/* ---- scorers and picker ------------------------------------------------------ */

static inline int64_t queue_of(const struct ig_sched_endpoint *e)
{
	return load(e)->waiting + e->inflight_requests;
}

static inline int64_t running_of(const struct ig_sched_endpoint *e)
{
	return load(e)->running + e->inflight_requests;
}

/* The adapter sets come from the full metrics, the limit from the load. */
static double lora_score(const struct ig_sched_endpoint *e, uint64_t target)
{
	const struct ig_endpoint_metrics *f = e->full;
	uint32_t nrun = f ? f->running_adapters.n : 0, nwait = f ? f->waiting_adapters.n : 0;
	if (f && ig_adapter_set_has_hash(&f->running_adapters, target))
		return 1.0;
	if ((int64_t)(nrun + nwait) < load(e)->max_active)
		return 0.8;
	if (f && ig_adapter_set_has_hash(&f->waiting_adapters, target))
		return 0.6;
	return 0.0;
}

/* infergate's lora-slot-scorer: GIE's LoRA affinity for a request that
 * needs an adapter, 1 on a pod for a request for the model it serves
 * (vLLM's model_name label): that one needs no slot, and GIE's formula
 * would send it to pods with a free slot as if it did. */
static double slot_score(const struct ig_sched_endpoint *e, uint64_t target)
{
	if (e->full && e->full->base_model == target)
		return 1.0;
	return lora_score(e, target);
}

static double token_load_score(const struct ig_sched_endpoint *e, const struct plugin_params *p)
{
	if (e->inflight_tokens <= 0)
		return 1.0;
	double t = (double)e->inflight_tokens;
	double thr = (double)p->queue_threshold_tokens;
	return 1.0 - (t < thr ? t : thr) / thr;
}

/* llm-d's load-aware-scorer: the scraped waiting queue alone, 0.5 when
 * it is empty, falling linearly from 0.5 to 0 at `threshold` waiting
 * requests. (A busy but unqueued pod scores as an idle one: that is what
 * keeps llm-d's prefix affinity sticky until pods saturate.) */
static double load_aware_score(const struct ig_sched_endpoint *e, const struct plugin_params *p)
{
	double q = (double)load(e)->waiting;
	if (q <= 0)
		return 0.5;
	return q >= p->load_threshold ? 0.0 : 0.5 * (1.0 - q / p->load_threshold);
}

/* NaN becomes 0. */
static inline double clamp01(double v)
{
	v = v > 0 ? v : 0;
	return v < 1 ? v : 1;
}

/* scores[k] += clamp01(1 - v[k]) * w over n candidates, two at a time
 * where SSE2 is there: maxpd/minpd clamp without a branch (and turn NaN
 * into 0 as clamp01 does, maxpd returning its second operand). */
static void add_inverse_clamped(double *restrict scores, const double *restrict v, size_t n,
				double w)
{
	size_t k = 0;
#ifdef __SSE2__
	const __m128d one = _mm_set1_pd(1.0), zero = _mm_setzero_pd(), wv = _mm_set1_pd(w);
	for (; k + 2 <= n; k += 2) {
		__m128d x = _mm_sub_pd(one, _mm_loadu_pd(v + k));
		x = _mm_min_pd(_mm_max_pd(x, zero), one);
		_mm_storeu_pd(scores + k, _mm_add_pd(_mm_loadu_pd(scores + k), _mm_mul_pd(x, wv)));
	}
#endif
	for (; k < n; k++)
		scores[k] += clamp01(1.0 - v[k]) * w;
}

/* Spreads up to this wide get their scores from a table. */
#define SPREAD_TABLE 512

static uint32_t hit_count(struct call *c, uint64_t key);

/* One pass over the set's candidates: the COL_ columns the profile's
 * scorers read, with the spread of the queue and running columns, and the
 * candidates' prefix counts when they are found here (c->hit_tab). The
 * flags are constants in each copy the dispatcher below makes, so that a
 * copy does only its own work. */
static inline __attribute__((always_inline)) void gather_cols(struct call *c,
							      const struct ig_sched_set *set,
							      bool queue, bool running, bool kv,
							      bool counts)
{
	int64_t qmin = INT64_MAX, qmax = INT64_MIN, rmin = INT64_MAX, rmax = INT64_MIN;
	size_t np = 0;
	for (size_t k = 0; k < set->n; k++) {
		const struct ig_sched_endpoint *e = &c->eps[set->idx[k]];
		const struct ig_endpoint_load *l = load(e);
		if (queue) {
			int64_t q = l->waiting + e->inflight_requests;
			c->queue[k] = q;
			qmin = q < qmin ? q : qmin;
			qmax = q > qmax ? q : qmax;
		}
		if (running) {
			int64_t r = l->running + e->inflight_requests;
			c->running[k] = r;
			rmin = r < rmin ? r : rmin;
			rmax = r > rmax ? r : rmax;
		}
		if (kv)
			c->kv[k] = l->kv_usage;
		if (counts) {
			uint32_t n = hit_count(c, e->key);
			c->count_mem[set->idx[k]] = n;
			if (n)
				c->hit_pos[np++] = k;
		}
	}
	c->qmin = qmin;
	c->qmax = qmax;
	c->rmin = rmin;
	c->rmax = rmax;
	if (counts) {
		c->nhit_pos = np;
		c->counts = c->count_mem;
	}
}

static void gather(struct call *c, const struct ig_sched_set *set, unsigned cols)
{
	bool counts = c->hit_tab != NULL;
	if (cols == (COL_QUEUE | COL_KV)) { /* GIE's default profile, infergate's */
		if (counts)
			gather_cols(c, set, true, false, true, true);
		else
			gather_cols(c, set, true, false, true, false);
	} else if (cols || counts) {
		gather_cols(c, set, true, true, true, counts);
	}
}

/* (max - v) / (max - min) over the candidates' values v; 1.0 when all are
 * equal. Queues are short integers, so a table of the few values
 * (max - v) takes can hold every score, each computed by the same
 * expression. */
static void score_spread(const struct call *c, const struct ig_sched_set *set, const int64_t *vals,
			 int64_t min, int64_t max, double w)
{
	if (max == min) {
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += w;
		return;
	}
	double range = (double)(max - min);
	/* max - min may not fit an int64 (queues are clamped to 1e15 when
	 * read): the table only for small spreads. */
	if ((uint64_t)max - (uint64_t)min < SPREAD_TABLE) {
		double table[SPREAD_TABLE];
		for (int64_t d = 0; d <= max - min; d++)
			table[d] = clamp01((double)d / range) * w;
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += table[max - vals[k]];
		return;
	}
	for (size_t k = 0; k < set->n; k++)
		c->scores[k] += clamp01((double)(max - vals[k]) / range) * w;
}

/* llm-d's active-request-scorer: a pod with at most idleThreshold requests
 * in flight scores 1; a busier one (max - count) / max * maxBusyScore,
 * max the most any candidate has (0 and up). */
static void active_request_score(const struct call *c, const struct plugin_params *p,
				 const struct ig_sched_set *set, double w)
{
	int64_t max = 0;
	for (size_t k = 0; k < set->n; k++) {
		int64_t a = c->eps[set->idx[k]].active_requests;
		max = a > max ? a : max;
	}
	for (size_t k = 0; k < set->n; k++) {
		int64_t a = c->eps[set->idx[k]].active_requests;
		if ((double)a <= p->idle_threshold)
			c->scores[k] += w;
		else
			c->scores[k] += (double)(max - a) / (double)max * p->max_busy_score * w;
	}
}

/* no-hit-lru-scorer's "cold": no candidate holds any block of the
 * request's prompt in the prefix index (llm-d reads the same from the
 * approx-prefix-cache-producer's match of each candidate; without a prefix
 * index every request is cold, as in llm-d without the producer). */
static bool cold(const struct call *c, const struct ig_sched_set *set)
{
	if (!c->counts || !c->nhashes)
		return true;
	if (c->nhit_pos != SIZE_MAX)
		return c->nhit_pos == 0;
	for (size_t k = 0; k < set->n; k++)
		if (c->counts[set->idx[k]])
			return false;
	return true;
}

/* One scorer over the candidates of the set, each in its own loop so that
 * the loop does one thing. */
/* The prefix scorer's table of scores by count, for prompts of at most
 * this many blocks (the default maxPrefixBlocksToMatch). */
#define SCORE_TABLE 256

static void run_scorer(const struct call *c, const struct stage *st, const struct ig_sched_set *set)
{
	double w = st->weight;
	switch (st->type) {
	case PT_QUEUE_SCORER:
		score_spread(c, set, c->queue, c->qmin, c->qmax, w);
		break;
	case PT_RUNNING_SCORER:
		score_spread(c, set, c->running, c->rmin, c->rmax, w);
		break;
	case PT_KV_SCORER:
		add_inverse_clamped(c->scores, c->kv, set->n, w);
		break;
	case PT_LORA_SCORER:
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += lora_score(&c->eps[set->idx[k]], c->target_hash) * w;
		break;
	case PT_LORA_SLOT_SCORER:
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += slot_score(&c->eps[set->idx[k]], c->target_hash) * w;
		break;
	case PT_TOKEN_LOAD_SCORER:
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += clamp01(token_load_score(&c->eps[set->idx[k]], &st->p)) * w;
		break;
	case PT_LOAD_AWARE_SCORER:
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += load_aware_score(&c->eps[set->idx[k]], &st->p) * w;
		break;
	case PT_LOAD_BOUND_SCORER:
		load_bound_score(c, &st->p, set, w);
		break;
	case PT_SESSION_AFFINITY_SCORER:
		for (size_t k = 0; c->req->session_key && k < set->n; k++)
			if (c->eps[set->idx[k]].key == c->req->session_key)
				c->scores[k] += w;
		break;
	case PT_ACTIVE_REQUEST_SCORER:
		active_request_score(c, &st->p, set, w);
		break;
	case PT_CONTEXT_LENGTH_AWARE:
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += context_length_score(st->lm, c->eps[set->idx[k]].pod,
							     c->req->prompt_tokens) *
					w;
		break;
	case PT_NO_HIT_LRU_SCORER:
		*c->lru_cold = cold(c, set);
		nohit_lru_score(st->lru, *c->lru_cold, c->eps, set, c->scores, w);
		break;
	case PT_PREFIX_SCORER: {
		/* Without a match every score is 0: adding 0 changes nothing.
		 * The few candidates that hold blocks, when the gather pass
		 * listed them, get their score worked out one by one; every
		 * candidate otherwise: from a table of the scores of every
		 * count up to nhashes, which costs a division per entry,
		 * when there are at most SCORE_TABLE, else one by one. */
		if (!c->counts || !c->nhashes)
			break;
		double nh = (double)c->nhashes;
		if (c->nhit_pos != SIZE_MAX) {
			for (size_t j = 0; j < c->nhit_pos; j++) {
				size_t k = c->hit_pos[j];
				c->scores[k] += clamp01((double)c->counts[set->idx[k]] / nh) * w;
			}
			break;
		}
		if (c->nhashes > SCORE_TABLE) {
			for (size_t k = 0; k < set->n; k++)
				c->scores[k] += clamp01((double)c->counts[set->idx[k]] / nh) * w;
			break;
		}
		double table[SCORE_TABLE + 1];
		for (size_t b = 0; b <= c->nhashes; b++)
			table[b] = clamp01((double)b / nh);
		for (size_t k = 0; k < set->n; k++)
			c->scores[k] += table[c->counts[set->idx[k]]] * w;
		break;
	}
	default:
		break;
	}
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

/* Ticks from t to u. A thread moved to another core between the two may
 * read a counter a little behind: that is no time, not 2^64 ticks. */
static inline uint32_t ticks_between(uint64_t t, uint64_t u)
{
	return u <= t ? 0 : u - t > UINT32_MAX ? UINT32_MAX : (uint32_t)(u - t);
}

/* Scores every candidate of the set and ranks the best into res (ties in
 * random order: sched/rank.c), timing each scorer and the picker when
 * asked (res->plugin_ticks: the scorers' slots may already hold the
 * prefix match). */
static void score_and_pick(const struct sched_profile *s, struct call *c,
			   const struct ig_sched_set *set, struct ig_sched_result *res)
{
	size_t best[IG_SCHED_MAX_RANKED];
	size_t k = IG_SCHED_MAX_RANKED;
	if (s->picker.p.max_endpoints && s->picker.p.max_endpoints < k)
		k = s->picker.p.max_endpoints;
	memset(c->scores, 0, set->n * sizeof(*c->scores));
	gather(c, set, s->columns);
	uint32_t *ticks = res->plugin_ticks;
	size_t at = s->nfilters;
	uint64_t t = ticks ? ig_ticks() : 0;
	for (size_t j = 0; j < s->nscorers; j++) {
		run_scorer(c, &s->scorers[j], set);
		if (ticks) {
			uint64_t u = ig_ticks();
			ticks[at + j] += ticks_between(t, u);
			t = u;
		}
	}
	const double *keys = c->scores;
	if (s->picker.type != PT_MAX_SCORE_PICKER) {
		for (size_t pos = 0; pos < set->n; pos++)
			c->keys[pos] = key_of(s->picker.type, c->scores[pos], c->rng);
		keys = c->keys;
	}
	size_t m = ig_rank_top(keys, set->n, k, c->rng, best);
	if (ticks) {
		ticks[at + s->nscorers] = ticks_between(t, ig_ticks());
		res->nplugin_ticks = at + s->nscorers + 1;
	}
	res->nranked = m;
	for (size_t j = 0; j < m; j++) {
		res->ranked[j] = set->idx[best[j]];
		if (res->scores)
			res->scores[j] = c->scores[best[j]];
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
	unsigned k = sched_thread_index();
	bool owned = k < STAT_STRIPES;
	struct stat_stripe *st = &s->stats[owned ? k : STAT_STRIPES];
	add_to(&st->lookups, 1, owned);
	add_to(&st->lookup_blocks, blocks, owned);
	add_to(&st->hit_blocks, hit, owned);
}

/* The candidates' prefix counts from the lookup's hits, through a small
 * table of the hit keys and a 4096-bit filter of their low bits, which
 * most candidates fail at the cost of one load. A key listed twice counts
 * once, the first time. Without memory for the table the counts stay 0. */
struct hit_slot {
	uint64_t key;
	uint32_t blocks; /* 0: empty */
	uint32_t taken;
};

static inline size_t hit_home(uint64_t key, unsigned log)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - log));
}

/* The hits by key, in c->hit_tab (NULL without memory: counts stay 0). */
static void hits_index(struct call *c, const struct ig_prefix_hit *hits, size_t nhits)
{
	unsigned log = 4;
	while (((size_t)1 << log) < 2 * nhits)
		log++;
	size_t mask = ((size_t)1 << log) - 1;
	size_t tab_bytes = (mask + 1) * sizeof(struct hit_slot);
	unsigned char *mem = ig_scratch_get(&hits_mem, tab_bytes + nhits * sizeof(size_t));
	if (!mem)
		return;
	struct hit_slot *tab = (struct hit_slot *)mem;
	/* A key counts once: at most nhits candidates get a count. */
	c->hit_pos = (size_t *)(mem + tab_bytes);
	memset(tab, 0, (mask + 1) * sizeof(*tab));
	memset(c->hit_filter, 0, sizeof c->hit_filter);
	for (size_t h = 0; h < nhits; h++) {
		uint64_t key = hits[h].key;
		c->hit_filter[(key >> 6) & 63] |= (uint64_t)1 << (key & 63);
		size_t i = hit_home(key, log);
		while (tab[i].blocks)
			i = (i + 1) & mask;
		tab[i] = (struct hit_slot){key, hits[h].blocks, 0};
	}
	c->hit_tab = tab;
	c->hit_mask = mask;
	c->hit_log = log;
}

/* A candidate's count: a key met before in this call counts 0. */
static inline uint32_t hit_count(struct call *c, uint64_t key)
{
	if (!((c->hit_filter[(key >> 6) & 63] >> (key & 63)) & 1))
		return 0;
	struct hit_slot *tab = c->hit_tab;
	for (size_t i = hit_home(key, c->hit_log); tab[i].blocks; i = (i + 1) & c->hit_mask)
		if (tab[i].key == key) {
			uint32_t n = tab[i].taken ? 0 : tab[i].blocks;
			tab[i].taken = 1;
			return n;
		}
	return 0;
}

/* Every candidate's count, for a filter that reads them before the
 * gather pass; the pass then finds them done. */
static void count_all(struct call *c)
{
	if (!c->hit_tab)
		return;
	for (size_t e = 0; e < c->n; e++)
		c->count_mem[e] = hit_count(c, c->eps[e].key);
	c->counts = c->count_mem;
	c->hit_tab = NULL;
}

/* Hashes the prompt and looks its blocks up: c->nhashes and the counts;
 * returns the lookup's record for the commit (NULL when none). */
static const struct ig_prefix_walk *match_prefix(struct ig_scheduler *s,
						 const struct sched_profile *pr, struct call *c,
						 struct ig_sched_result *res)
{
	const struct ig_prefix_hit *hits;
	const struct ig_prefix_walk *walk = NULL;
	size_t nhits = 0;
	if (!s->index)
		return NULL;
	struct ig_str seed = c->req->prefix_seed.len ? c->req->prefix_seed : target_of(c->req);
	size_t block_bytes, max_blocks;
	geometry(s, c->req->cache_block_tokens, &block_bytes, &max_blocks);
	res->prefix_block_bytes = block_bytes;
	/* The caller's room, or the thread's (for as many as the input has). */
	uint64_t *out = res->prefix_room;
	if (out) {
		if (max_blocks > res->prefix_room_len)
			max_blocks = res->prefix_room_len;
	} else {
		size_t need = blocks_of(c->req->prefix_input.len, block_bytes, max_blocks);
		if (need && !(out = ig_scratch_get(&hashes_mem, need * sizeof(*out))))
			return NULL;
	}
	c->nhashes = ig_prefix_hashes(seed, c->req->prefix_input, block_bytes, max_blocks, out);
	res->prefix_hashes = out;
	res->nprefix_hashes = c->nhashes;
	if (c->nhashes == 0)
		return NULL;
	ig_prefix_lookup(s->index, res->prefix_hashes, c->nhashes, &hits, &nhits, &walk);
	if (nhits) {
		hits_index(c, hits, nhits);
		if (pr->counts_early)
			count_all(c);
	}
	return walk;
}

static int run(const struct sched_profile *s, struct call *c, struct ig_sched_result *res)
{
	const size_t *all = identity(c->n);
	if (!all)
		return -1;
	/* Filters write their survivors to a and b in turn. */
	struct ig_sched_set cur = {(size_t *)all, c->n};
	uint32_t *ticks = res->plugin_ticks;
	uint64_t t = ticks ? ig_ticks() : 0;
	for (size_t f = 0; f < s->nfilters; f++) {
		struct ig_sched_set next = {f % 2 ? c->b : c->a, 0};
		int rc = run_filter(c, &s->filters[f], &cur, &next);
		if (ticks) {
			uint64_t u = ig_ticks();
			ticks[f] = ticks_between(t, u);
			res->nplugin_ticks = f + 1;
			t = u;
		}
		if (rc < 0 || next.n == 0)
			return -1;
		cur = next;
	}
	score_and_pick(s, c, &cur, res);
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
	res->nranked = 0;
	res->nprefix_hashes = 0;
	res->prefix_match_blocks = 0;
	res->prefix_block_bytes = 0;
	res->prefix_seen.n = 0;
	res->profile = NULL;
	res->max_endpoints = 0;
	res->lru_cold = false;
	res->nplugin_ticks = 0;
	const struct sched_profile *pr = handler_pick(s, req);
	if (!pr)
		return IG_SCHED_NO_PROFILE;
	res->plugin_first = pr->first;
	if (res->plugin_ticks)
		memset(res->plugin_ticks, 0,
		       (pr->nfilters + pr->nscorers + 1) * sizeof(*res->plugin_ticks));
	if (n == 0)
		return -1;
	struct call c = {.req = req,
			 .eps = eps,
			 .n = n,
			 .rng = rng,
			 .nhit_pos = SIZE_MAX,
			 .lru_cold = &res->lru_cold};
	if (carve(&c) < 0)
		return -1;
	if (pr->reads_adapters)
		c.target_hash = ig_adapter_hash(target_of(req));
	/* The prefix match is the request's, whichever profile runs: GIE's
	 * producer hashes every request (PrepareData). */
	uint64_t t = res->plugin_ticks && pr->prefix_at >= 0 ? ig_ticks() : 0;
	const struct ig_prefix_walk *walk = match_prefix(s, pr, &c, res);
	if (t)
		res->plugin_ticks[pr->nfilters + (size_t)pr->prefix_at] =
		    ticks_between(t, ig_ticks());
	int rc = run(pr, &c, res);
	res->profile = pr->name;
	res->max_endpoints = pr->picker.p.max_endpoints;
	if (rc == 0) {
		if (c.nhashes && res->nranked) {
			uint64_t hit = count_of(&c, res->ranked[0]);
			res->prefix_match_blocks = hit;
			count_lookup(s, c.nhashes, hit);
			ig_prefix_seen(s->index, walk, c.eps[res->ranked[0]].key,
				       &res->prefix_seen);
		}
	}
	return rc;
}

/* no-hit-lru-scorer's PreRequest: after a cold request, the endpoint
 * used moves to the recent end of the LRU of each such scorer of the
 * profile that ran. */
static void touch_lrus(struct ig_scheduler *s, const struct ig_sched_result *res,
		       uint64_t endpoint_key)
{
	for (size_t i = 0; i < s->nprofiles; i++) {
		struct sched_profile *sp = &s->profiles[i];
		if (sp->name != res->profile)
			continue;
		for (size_t k = 0; k < sp->nscorers; k++)
			if (sp->scorers[k].lru)
				nohit_lru_touch(sp->scorers[k].lru, endpoint_key);
	}
}

void ig_schedule_commit_blocks(struct ig_scheduler *s, const struct ig_sched_result *res,
			       uint64_t endpoint_key, uint32_t gpu_blocks)
{
	if (res->lru_cold)
		touch_lrus(s, res, endpoint_key);
	if (s->index && res->nprefix_hashes)
		(void)ig_prefix_add_capped(s->index, endpoint_key, res->prefix_hashes,
					   res->nprefix_hashes, &res->prefix_seen,
					   s->prefix.auto_tune ? gpu_blocks : 0);
}

void ig_schedule_commit(struct ig_scheduler *s, const struct ig_sched_result *res,
			uint64_t endpoint_key)
{
	ig_schedule_commit_blocks(s, res, endpoint_key, 0);
}

bool ig_scheduler_auto_tunes(const struct ig_scheduler *s)
{
	return s->index && s->prefix.auto_tune;
}

size_t ig_scheduler_prefix_limit(const struct ig_scheduler *s, uint32_t cache_block_tokens)
{
	size_t block_bytes, max_blocks;
	if (!s->index)
		return 0;
	geometry(s, cache_block_tokens, &block_bytes, &max_blocks);
	return block_bytes * max_blocks;
}

size_t ig_scheduler_prefix_blocks(const struct ig_scheduler *s, uint32_t cache_block_tokens,
				  size_t input_len)
{
	size_t block_bytes, max_blocks;
	if (!s->index)
		return 0;
	geometry(s, cache_block_tokens, &block_bytes, &max_blocks);
	return blocks_of(input_len, block_bytes, max_blocks);
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
