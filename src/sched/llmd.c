/* llm-d Router's own filters and scorers (llm-d-router
 * pkg/epp/framework/plugins/scheduling), with llm-d's arithmetic: the
 * filters on pod labels (filter/bylabel) here; the scorers that keep
 * state between requests too (no-hit-lru-scorer's LRU). The picker
 * (picker.c) runs them like its other stages. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/scratch.h"
#include "sched/picker_int.h"

/* ---- label filters (filter/bylabel) ------------------------------------------ */

#define ROLE_LABEL "llm-d.ai/role"

/* llm-d's roles.go: which llm-d.ai/role values each role filter keeps,
 * and whether it keeps pods without the label (only decode-filter does,
 * so that a pool without roles serves as it did). */
static const struct {
	enum plugin_type type;
	const char *values[6];
	bool allows_no_label;
} roles[] = {
    {PT_DECODE_FILTER, {"decode", "prefill-decode", "both", "encode-prefill-decode"}, true},
    {PT_PREFILL_FILTER,
     {"prefill", "encode-prefill", "prefill-decode", "both", "encode-prefill-decode"},
     false},
    {PT_ENCODE_FILTER, {"encode", "encode-prefill", "encode-prefill-decode"}, false},
};

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

struct label_match *label_match_role(enum plugin_type t)
{
	for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
		if (roles[r].type != t)
			continue;
		struct label_match *m = calloc(1, sizeof *m);
		if (!m)
			return NULL;
		while (m->nvalues < 6 && roles[r].values[m->nvalues])
			m->nvalues++;
		m->allows_no_label = roles[r].allows_no_label;
		m->label = strdup(ROLE_LABEL);
		m->values = ig_strv_dup(roles[r].values, m->nvalues);
		if (!m->label || !m->values) {
			label_match_free(m);
			return NULL;
		}
		return m;
	}
	return NULL;
}

static int clone_selector(struct ig_label_selector *out, const struct ig_label_selector *in)
{
	*out = (struct ig_label_selector){0};
	if (in->nmatch_labels &&
	    !(out->match_labels = calloc(in->nmatch_labels, sizeof *out->match_labels)))
		return -1;
	for (; out->nmatch_labels < in->nmatch_labels; out->nmatch_labels++) {
		struct ig_kv *d = &out->match_labels[out->nmatch_labels];
		const struct ig_kv *s = &in->match_labels[out->nmatch_labels];
		d->key = strdup(s->key);
		d->value = strdup(s->value);
		if (!d->key || !d->value) {
			out->nmatch_labels++;
			return -1;
		}
	}
	if (in->nexprs && !(out->exprs = calloc(in->nexprs, sizeof *out->exprs)))
		return -1;
	for (; out->nexprs < in->nexprs; out->nexprs++) {
		struct ig_selector_req *d = &out->exprs[out->nexprs];
		const struct ig_selector_req *s = &in->exprs[out->nexprs];
		d->op = s->op;
		d->key = strdup(s->key);
		d->values = ig_strv_dup((const char *const *)s->values, s->nvalues);
		d->nvalues = d->values ? s->nvalues : 0;
		if (!d->key || !d->values) {
			out->nexprs++;
			return -1;
		}
	}
	return 0;
}

static void free_selector(struct ig_label_selector *sel)
{
	for (size_t i = 0; i < sel->nmatch_labels; i++) {
		free(sel->match_labels[i].key);
		free(sel->match_labels[i].value);
	}
	free(sel->match_labels);
	for (size_t i = 0; i < sel->nexprs; i++) {
		free(sel->exprs[i].key);
		free_strings(sel->exprs[i].values, sel->exprs[i].nvalues);
	}
	free(sel->exprs);
	*sel = (struct ig_label_selector){0};
}

struct label_match *label_match_clone(const struct label_match *m)
{
	struct label_match *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->selector = m->selector;
	c->allows_no_label = m->allows_no_label;
	if (clone_selector(&c->sel, &m->sel) < 0)
		goto fail;
	if (m->label && !(c->label = strdup(m->label)))
		goto fail;
	if (!(c->values = ig_strv_dup((const char *const *)m->values, m->nvalues)))
		goto fail;
	c->nvalues = m->nvalues;
	return c;
fail:
	label_match_free(c);
	return NULL;
}

void label_match_free(struct label_match *m)
{
	if (!m)
		return;
	free_selector(&m->sel);
	free(m->label);
	free_strings(m->values, m->nvalues);
	free(m);
}

bool label_match_keeps(const struct label_match *m, const struct ig_pod *pod)
{
	const struct ig_kv *labels = pod ? pod->meta.labels : NULL;
	size_t n = pod ? pod->meta.nlabels : 0;
	if (m->selector)
		return ig_selector_matches(&m->sel, labels, n);
	const char *v = NULL;
	for (size_t i = 0; i < n && !v; i++)
		if (strcmp(labels[i].key, m->label) == 0)
			v = labels[i].value;
	if (!v && m->allows_no_label)
		return true;
	for (size_t i = 0; i < m->nvalues; i++)
		if (strcmp(m->values[i], v ? v : "") == 0)
			return true;
	return false;
}

/* ---- context-length-aware (scorer/contextlengthaware) ----------------------------- */

/* The pod's value of the label, NULL when absent. */
static const char *label_value(const struct ig_pod *pod, const char *key)
{
	for (size_t i = 0; pod && i < pod->meta.nlabels; i++)
		if (strcmp(pod->meta.labels[i].key, key) == 0)
			return pod->meta.labels[i].value;
	return NULL;
}

/* Go's strconv.Atoi of a trimmed part: an optional sign and decimal
 * digits that fit an int64. */
static int atoi_go(const char *p, size_t len, int64_t *out)
{
	struct ig_str v = ig_str_trim((struct ig_str){p, len});
	bool neg = false;
	size_t i = 0;
	uint64_t x = 0;
	if (v.len && (v.ptr[0] == '+' || v.ptr[0] == '-'))
		neg = v.ptr[i++] == '-';
	if (i == v.len)
		return -1;
	for (; i < v.len; i++) {
		if (v.ptr[i] < '0' || v.ptr[i] > '9' || x > (INT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(v.ptr[i] - '0');
	}
	*out = neg ? -(int64_t)x : (int64_t)x;
	return 0;
}

/* llm-d's parseContextRange: "min-max", exactly one '-', min <= max. */
static int parse_range(const char *s, int64_t *min, int64_t *max)
{
	const char *dash = strchr(s, '-');
	if (!*s || !dash || strchr(dash + 1, '-'))
		return -1;
	if (atoi_go(s, (size_t)(dash - s), min) < 0 ||
	    atoi_go(dash + 1, strlen(dash + 1), max) < 0 || *min > *max)
		return -1;
	return 0;
}

/* llm-d's calculateRangeScore: in range, 0.3 plus 0.7 of a mix of the
 * range's narrowness (70 %) and the headroom left (30 %); out of range,
 * at most 0.3, less the farther away. */
static double range_score(int64_t len, int64_t min, int64_t max)
{
	const double fallback = 0.3;
	if (len >= min && len <= max) {
		int64_t width = max - min;
		if (width == 0)
			return 1.0;
		double width_score = 1.0 / (1.0 + (double)width / 10000.0);
		double position = (double)(max - len) / (double)width;
		return fallback + (0.7 * width_score + 0.3 * position) * (1.0 - fallback);
	}
	int64_t distance = len > max ? len - max : min - len;
	return fallback / (1.0 + (double)distance / 1000.0);
}

double context_length_score(const struct label_match *m, const struct ig_pod *pod, uint64_t tokens)
{
	const char *v = label_value(pod, m->label);
	int64_t min, max;
	if (!v)
		return 0.5;
	if (parse_range(v, &min, &max) < 0)
		return 0.0;
	return range_score((int64_t)(tokens > INT64_MAX ? INT64_MAX : tokens), min, max);
}

bool context_length_keeps(const struct label_match *m, const struct ig_pod *pod, uint64_t tokens)
{
	const char *v = label_value(pod, m->label);
	int64_t min, max;
	if (!v)
		return true;
	return parse_range(v, &min, &max) == 0 && (int64_t)tokens >= min && (int64_t)tokens <= max;
}

/* ---- no-hit-lru-scorer (scorer/nohitlru) ---------------------------------------- */

/* llm-d keeps one LRU of the endpoints that served cold requests
 * (hashicorp's lru.Cache, keyed by the endpoint's name; here by its key,
 * the same identity), shared by every request. Here each worker thread
 * keeps its own, of the endpoints it sent cold requests to, as the
 * gateway's other per-worker figures are kept: ig_schedule() and the
 * commit write nothing another thread writes, and take no lock. It is an
 * approximation of llm-d's: each worker spreads its own cold requests
 * over the endpoints, but two workers may send theirs to the same one,
 * which one LRU would not; the load scorers beside it (and the requests
 * the gateway counts in flight) see that endpoint busier.
 *
 * A thread's LRU is a list of nodes, oldest to newest, each stamped with
 * the touch that put it there, and a table of the nodes by key (linear
 * probing, at most half full): a touch and a lookup cost O(1). It grows
 * by doubling to the configured size, so a pool of a few endpoints holds
 * a few nodes; only a touch that grows it allocates. */
struct lru_node {
	uint64_t key;
	uint64_t stamp; /* the thread's touch count when last touched */
	uint32_t older, newer;
};

#define NO_NODE UINT32_MAX

struct thread_lru {
	uint32_t n, room; /* nodes used, nodes allocated */
	uint32_t oldest, newest;
	uint64_t clock;
	unsigned log;  /* the table has 2^log slots, at least 2 * room */
	uint32_t *tab; /* node index + 1; 0: empty */
	struct lru_node *nodes;
};

/* Threads past this many (the most workers --workers allows) share the
 * last LRU, under a mutex: the gateway never has that many. */
#define LRU_THREADS 256

struct nohit_lru {
	uint32_t cap;
	pthread_mutex_t shared_mu; /* of per[LRU_THREADS] */
	struct thread_lru *per[LRU_THREADS + 1];
};

struct nohit_lru *nohit_lru_new(uint32_t size)
{
	struct nohit_lru *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	if (pthread_mutex_init(&l->shared_mu, NULL) != 0) {
		free(l);
		return NULL;
	}
	l->cap = size;
	return l;
}

static void thread_lru_free(struct thread_lru *t)
{
	if (!t)
		return;
	free(t->tab);
	free(t->nodes);
	free(t);
}

void nohit_lru_free(struct nohit_lru *l)
{
	if (!l)
		return;
	for (size_t i = 0; i <= LRU_THREADS; i++)
		thread_lru_free(l->per[i]);
	pthread_mutex_destroy(&l->shared_mu);
	free(l);
}

static inline size_t lru_home(uint64_t key, unsigned log)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - log));
}

/* The table slot that holds key, or the empty one where it would go. */
static size_t lru_slot(const struct thread_lru *t, uint64_t key)
{
	size_t mask = ((size_t)1 << t->log) - 1;
	size_t h = lru_home(key, t->log);
	while (t->tab[h] && t->nodes[t->tab[h] - 1].key != key)
		h = (h + 1) & mask;
	return h;
}

/* Empties slot h, moving back the entries after it that probed past it
 * (so that no lookup stops early at the hole). */
static void lru_slot_clear(struct thread_lru *t, size_t h)
{
	size_t mask = ((size_t)1 << t->log) - 1;
	t->tab[h] = 0;
	for (size_t j = (h + 1) & mask; t->tab[j]; j = (j + 1) & mask) {
		size_t home = lru_home(t->nodes[t->tab[j] - 1].key, t->log);
		if (((j - home) & mask) >= ((j - h) & mask)) {
			t->tab[h] = t->tab[j];
			t->tab[j] = 0;
			h = j;
		}
	}
}

static void lru_unlink(struct thread_lru *t, uint32_t i)
{
	struct lru_node *x = &t->nodes[i];
	if (x->older != NO_NODE)
		t->nodes[x->older].newer = x->newer;
	else
		t->oldest = x->newer;
	if (x->newer != NO_NODE)
		t->nodes[x->newer].older = x->older;
	else
		t->newest = x->older;
}

static void lru_push_newest(struct thread_lru *t, uint32_t i)
{
	t->nodes[i].older = t->newest;
	t->nodes[i].newer = NO_NODE;
	t->nodes[i].stamp = ++t->clock;
	if (t->newest != NO_NODE)
		t->nodes[t->newest].newer = i;
	else
		t->oldest = i;
	t->newest = i;
}

/* Room for `room` nodes (more than t holds), the table rebuilt for it;
 * -1 out of memory, t unchanged. */
static int lru_grow(struct thread_lru *t, uint32_t room)
{
	unsigned log = 4;
	while (((size_t)1 << log) < 2 * (size_t)room)
		log++;
	struct lru_node *nodes = realloc(t->nodes, (size_t)room * sizeof *nodes);
	if (!nodes)
		return -1;
	t->nodes = nodes;
	uint32_t *tab = calloc((size_t)1 << log, sizeof *tab);
	if (!tab)
		return -1;
	free(t->tab);
	t->tab = tab;
	t->log = log;
	t->room = room;
	for (uint32_t i = 0; i < t->n; i++)
		t->tab[lru_slot(t, t->nodes[i].key)] = i + 1;
	return 0;
}

static struct thread_lru *thread_lru_new(uint32_t cap)
{
	struct thread_lru *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->oldest = t->newest = NO_NODE;
	if (lru_grow(t, cap < 16 ? cap : 16) < 0) {
		thread_lru_free(t);
		return NULL;
	}
	return t;
}

static void touch(struct thread_lru *t, uint32_t cap, uint64_t key)
{
	size_t h = lru_slot(t, key);
	uint32_t i;
	if (t->tab[h]) {
		i = t->tab[h] - 1;
		lru_unlink(t, i);
	} else if (t->n == cap) {
		/* Full: the oldest node goes, and takes the new key. */
		i = t->oldest;
		lru_unlink(t, i);
		lru_slot_clear(t, lru_slot(t, t->nodes[i].key));
		t->nodes[i].key = key;
		t->tab[lru_slot(t, key)] = i + 1;
	} else {
		if (t->n == t->room) {
			uint32_t room = t->room * 2;
			if (lru_grow(t, room < cap ? room : cap) < 0)
				return;
			h = lru_slot(t, key);
		}
		i = t->n++;
		t->nodes[i].key = key;
		t->tab[h] = i + 1;
	}
	lru_push_newest(t, i);
}

/* The calling thread's LRU slot (picker.c's thread index), and whether it
 * is shared with other threads. */
static size_t my_lru(bool *shared)
{
	unsigned k = sched_thread_index();
	*shared = k >= LRU_THREADS;
	return *shared ? LRU_THREADS : k;
}

void nohit_lru_touch(struct nohit_lru *l, uint64_t key)
{
	if (!l || !l->cap)
		return;
	bool shared;
	size_t k = my_lru(&shared);
	if (shared)
		pthread_mutex_lock(&l->shared_mu);
	if (!l->per[k])
		l->per[k] = thread_lru_new(l->cap);
	if (l->per[k])
		touch(l->per[k], l->cap, key);
	if (shared)
		pthread_mutex_unlock(&l->shared_mu);
}

/* When the candidate at position k of the set was last touched: 0 for
 * never. */
struct lru_seen {
	uint64_t stamp;
	size_t k;
};

static void sift_down(struct lru_seen *v, size_t i, size_t n)
{
	for (size_t c; (c = 2 * i + 1) < n; i = c) {
		if (c + 1 < n && v[c + 1].stamp > v[c].stamp)
			c++;
		if (v[i].stamp >= v[c].stamp)
			return;
		struct lru_seen x = v[i];
		v[i] = v[c];
		v[c] = x;
	}
}

/* Oldest first, in place: a heap sort, because glibc's qsort allocates
 * for arrays of more than a few hundred bytes, and a schedule allocates
 * nothing once warm. */
static void sort_by_stamp(struct lru_seen *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(v, i, n);
	for (size_t end = n; end > 1; end--) {
		struct lru_seen x = v[0];
		v[0] = v[end - 1];
		v[end - 1] = x;
		sift_down(v, 0, end - 1);
	}
}

static _Thread_local struct ig_scratch lru_mem;

void nohit_lru_score(struct nohit_lru *l, bool cold, const struct ig_sched_endpoint *eps,
		     const struct ig_sched_set *set, double *scores, double w)
{
	size_t n = set->n;
	if (!cold) {
		for (size_t k = 0; k < n; k++)
			scores[k] += 0.5 * w;
		return;
	}
	if (n == 1) {
		scores[0] += w;
		return;
	}
	bool shared;
	size_t me = my_lru(&shared);
	if (shared)
		pthread_mutex_lock(&l->shared_mu);
	const struct thread_lru *t = l->per[me];
	/* Without memory for the list every endpoint counts as never used. */
	struct lru_seen *seen = t ? ig_scratch_get(&lru_mem, n * sizeof *seen) : NULL;
	size_t never = 0, nseen = 0;
	for (size_t k = 0; k < n; k++) {
		size_t h = seen ? lru_slot(t, eps[set->idx[k]].key) : 0;
		if (seen && t->tab[h])
			seen[nseen++] = (struct lru_seen){t->nodes[t->tab[h] - 1].stamp, k};
		else
			scores[k] += (1.0 - (double)never++ / (double)(n - 1)) * w;
	}
	if (shared)
		pthread_mutex_unlock(&l->shared_mu);
	/* The others ranked among themselves by their last cold request,
	 * oldest first: the LRU's keys that are not candidates take no rank
	 * (llm-d ranks by the place in its whole LRU, which puts every
	 * candidate at 0 once a filter or a pod that left the pool leaves
	 * n - 1 other keys ahead of them). */
	sort_by_stamp(seen, nseen);
	for (size_t i = 0; i < nseen; i++)
		scores[seen[i].k] += (1.0 - (double)(never + i) / (double)(n - 1)) * w;
}
