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

/* The keys of the endpoints that served cold requests, oldest first, at
 * most cap of them (hashicorp's lru.Cache in llm-d, keyed by the
 * endpoint's name; here by its key, the same identity). A touch moves a
 * key with one memmove over at most cap keys, under the mutex that
 * scoring takes too. */
struct nohit_lru {
	pthread_mutex_t mu;
	uint32_t cap, n;
	uint64_t keys[];
};

struct nohit_lru *nohit_lru_new(uint32_t size)
{
	struct nohit_lru *l = calloc(1, sizeof *l + (size_t)size * sizeof l->keys[0]);
	if (!l)
		return NULL;
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l);
		return NULL;
	}
	l->cap = size;
	return l;
}

void nohit_lru_free(struct nohit_lru *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void nohit_lru_touch(struct nohit_lru *l, uint64_t key)
{
	if (!l || !l->cap)
		return;
	pthread_mutex_lock(&l->mu);
	uint32_t at = 0;
	while (at < l->n && l->keys[at] != key)
		at++;
	if (at == l->n && l->n == l->cap)
		at = 0; /* full: the oldest goes */
	else if (at == l->n)
		l->n++;
	memmove(&l->keys[at], &l->keys[at + 1], (size_t)(l->n - 1 - at) * sizeof l->keys[0]);
	l->keys[l->n - 1] = key;
	pthread_mutex_unlock(&l->mu);
}

/* The LRU's positions by key, in a table of the thread's scratch memory
 * (open addressing; slot.pos 0: empty, else position + 1). */
struct lru_slot {
	uint64_t key;
	uint32_t pos;
};

static _Thread_local struct ig_scratch lru_mem, used_mem;

static int by_pos(const void *a, const void *b)
{
	uint32_t x = ((const struct lru_slot *)a)->pos, y = ((const struct lru_slot *)b)->pos;
	return (x > y) - (x < y);
}

static inline size_t lru_home(uint64_t key, unsigned log)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - log));
}

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
	pthread_mutex_lock(&l->mu);
	unsigned log = 4;
	while (((size_t)1 << log) < 2 * (size_t)l->n)
		log++;
	size_t mask = ((size_t)1 << log) - 1;
	struct lru_slot *tab = ig_scratch_get(&lru_mem, (mask + 1) * sizeof *tab);
	if (tab) {
		memset(tab, 0, (mask + 1) * sizeof *tab);
		for (uint32_t i = 0; i < l->n; i++) {
			size_t h = lru_home(l->keys[i], log);
			while (tab[h].pos)
				h = (h + 1) & mask;
			tab[h] = (struct lru_slot){l->keys[i], i + 1};
		}
	}
	pthread_mutex_unlock(&l->mu);
	/* Without memory for the table every endpoint counts as never used. */
	size_t never = 0;
	for (size_t k = 0; k < n; k++) {
		uint32_t pos = 0;
		uint64_t key = eps[set->idx[k]].key;
		for (size_t h = lru_home(key, log); tab && tab[h].pos; h = (h + 1) & mask)
			if (tab[h].key == key) {
				pos = tab[h].pos;
				break;
			}
		if (!pos)
			scores[k] += (1.0 - (double)never++ / (double)(n - 1)) * w;
	}
	/* The others ranked among themselves, oldest first: the LRU's keys
	 * that are not candidates (filtered out, or gone from the pool) take
	 * no rank. llm-d ranks by the place in its whole LRU, which puts
	 * every candidate at 0 once a filter or a departed pod leaves
	 * n - 1 keys ahead of them. */
	struct lru_slot *used = tab ? ig_scratch_get(&used_mem, n * sizeof *used) : NULL;
	size_t nused = 0;
	for (size_t k = 0; k < n && used; k++) {
		uint64_t key = eps[set->idx[k]].key;
		for (size_t h = lru_home(key, log); tab[h].pos; h = (h + 1) & mask)
			if (tab[h].key == key) {
				used[nused++] = (struct lru_slot){k, tab[h].pos};
				break;
			}
	}
	if (nused > 1)
		qsort(used, nused, sizeof *used, by_pos);
	for (size_t i = 0; i < nused; i++)
		scores[used[i].key] += (1.0 - (double)(never + i) / (double)(n - 1)) * w;
}
