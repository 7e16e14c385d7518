/* The metrics registry. Families and their series form append-only linked
 * lists: writers link new nodes with a release store under the registry
 * mutex, readers walk them with acquire loads and no lock. Values are
 * doubles kept as their bit patterns in 64-bit atomics.
 *
 * Each series keeps its values in shards, one block of cache lines per
 * shard. A thread that declared a shard index (ig_metrics_set_shard) is
 * that shard's only writer, so it updates with a relaxed load and a
 * relaxed store: no read-modify-write and no cache line shared with
 * another writer. Shard 0 is the shared one, for threads that declared
 * nothing; it is updated with atomic read-modify-writes. Rendering adds
 * the shards up with relaxed loads. Gauges are set, not summed, so a gauge
 * keeps its one value in shard 0 whoever writes it; a summed gauge is
 * added to, so its shards work as a counter's do. */
#include "metrics/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

/* One shard's values of one series: a counter's or gauge's value or a
 * histogram's sum, then a histogram's per-bucket counts. A block starts on
 * a cache line and is padded to whole lines. */
struct shard {
	_Atomic uint64_t bits; /* double bits */
	_Atomic uint64_t buckets[];
};

struct ig_series {
	_Atomic(struct ig_series *) next;
	const struct ig_metric_family *family; /* histograms need its bounds */
	uint64_t hash;
	char **values; /* one per label name */
	unsigned nshards;
	/* [0] is allocated with the series; any other the first time its
	 * owner writes, so a series costs one pointer per unused shard. Each
	 * slot is stored once, by its owner, with release. */
	_Atomic(struct shard *) shards[];
};

struct ig_metric_family {
	_Atomic(struct ig_metric_family *) next;
	struct ig_registry *reg;
	enum kind kind;
	bool summed; /* a gauge whose adds go to the thread's shard */
	char *name;
	char *help;
	char **label_names;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	/* The registry's first histogram with these bounds: two histograms
	 * with the same one put a value in the same bucket. */
	const struct ig_metric_family *bounds_of;
	ig_gauge_fn fn;
	ig_rows_fn rows_fn;
	void *fn_ctx;
	_Atomic(struct ig_series *) head;
	struct ig_series *tail; /* under reg->lock */
};

struct ig_registry {
	pthread_mutex_t lock;	     /* creation of families and series */
	pthread_mutex_t render_lock; /* one render (and its callbacks) at a time */
	_Atomic(struct ig_metric_family *) head;
	struct ig_metric_family *tail;
	unsigned nshards;
};

/* The shard this thread writes; 0 is the shared one. */
static _Thread_local unsigned my_shard;

void ig_metrics_set_shard(unsigned idx)
{
	my_shard = idx;
}

static uint64_t to_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

static double from_bits(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &old, to_bits(from_bits(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* Single-writer updates: readers may run at any time, so these are still
 * atomic accesses, but nobody else stores here, so no read-modify-write. */
static void owned_add_double(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	atomic_store_explicit(a, to_bits(from_bits(old) + v), memory_order_relaxed);
}

static void owned_inc(_Atomic uint64_t *a)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	atomic_store_explicit(a, old + 1, memory_order_relaxed);
}

/* ---- shards ------------------------------------------------------------------ */

static size_t nbuckets(const struct ig_metric_family *f)
{
	return f->kind == K_HISTOGRAM ? f->nbounds + 1 : 0;
}

static struct shard *new_shard(const struct ig_metric_family *f)
{
	size_t nb = nbuckets(f);
	size_t size = sizeof(struct shard) + nb * sizeof(_Atomic uint64_t);
	size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	struct shard *sh = aligned_alloc(CACHE_LINE, size);
	if (!sh)
		return NULL;
	atomic_init(&sh->bits, to_bits(0.0));
	for (size_t i = 0; i < nb; i++)
		atomic_init(&sh->buckets[i], 0);
	return sh;
}

/* The shard this thread owns in s, created on its first write, or NULL
 * when the thread must use the shared shard 0 (it declared none, declared
 * one the registry does not have, or memory ran out). The owner reads its
 * own slot relaxed: only it ever stores there. */
static __attribute__((noinline)) struct shard *first_own_shard(struct ig_series *s, unsigned i)
{
	struct shard *sh = new_shard(s->family);
	if (sh)
		atomic_store_explicit(&s->shards[i], sh, memory_order_release);
	return sh;
}

static inline struct shard *own_shard(struct ig_series *s)
{
	unsigned i = my_shard;
	if (i == 0 || i >= s->nshards)
		return NULL;
	struct shard *sh = atomic_load_explicit(&s->shards[i], memory_order_relaxed);
	return sh ? sh : first_own_shard(s, i);
}

static struct shard *shared_shard(const struct ig_series *s)
{
	return atomic_load_explicit((_Atomic(struct shard *) *)&s->shards[0], memory_order_relaxed);
}

/* Shard i of s for a reader, or NULL if nobody wrote it yet. Acquire pairs
 * with the owner's release so the block's initial zeros are seen. */
static const struct shard *read_shard(const struct ig_series *s, unsigned i)
{
	return atomic_load_explicit((_Atomic(struct shard *) *)&s->shards[i], memory_order_acquire);
}

static uint64_t load_u64(const _Atomic uint64_t *a)
{
	return atomic_load_explicit((_Atomic uint64_t *)a, memory_order_relaxed);
}

/* ---- updates ----------------------------------------------------------------- */

void ig_counter_add(struct ig_series *s, double v)
{
	if (!(v >= 0))
		return;
	struct shard *sh = own_shard(s);
	if (sh)
		owned_add_double(&sh->bits, v);
	else
		atomic_add_double(&shared_shard(s)->bits, v);
}

void ig_gauge_set(struct ig_series *s, double v)
{
	atomic_store_explicit(&shared_shard(s)->bits, to_bits(v), memory_order_relaxed);
}

void ig_gauge_add(struct ig_series *s, double v)
{
	struct shard *sh = s->family->summed ? own_shard(s) : NULL;
	if (sh)
		owned_add_double(&sh->bits, v);
	else
		atomic_add_double(&shared_shard(s)->bits, v);
}

/* The first bucket whose upper bound is >= v (le is inclusive), found by
 * binary search; NaN and values above every bound land in +Inf. */
static size_t bucket_of(const struct ig_metric_family *f, double v)
{
	size_t lo = 0, hi = f->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= f->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return isnan(v) ? f->nbounds : lo;
}

static void observe_at(struct ig_series *s, size_t b, double v)
{
	struct shard *sh = own_shard(s);
	if (sh) {
		owned_inc(&sh->buckets[b]);
		owned_add_double(&sh->bits, v);
		return;
	}
	sh = shared_shard(s);
	atomic_fetch_add_explicit(&sh->buckets[b], 1, memory_order_relaxed);
	atomic_add_double(&sh->bits, v);
}

void ig_hist_observe(struct ig_series *s, double v)
{
	observe_at(s, bucket_of(s->family, v), v);
}

void ig_hist_observe2(struct ig_series *a, struct ig_series *b, double v)
{
	size_t i = bucket_of(a->family, v);
	observe_at(a, i, v);
	observe_at(b, b->family->bounds_of == a->family->bounds_of ? i : bucket_of(b->family, v),
		   v);
}

double ig_series_value(const struct ig_series *s)
{
	if (s->family->kind == K_GAUGE && !s->family->summed)
		return from_bits(load_u64(&shared_shard(s)->bits));
	double v = 0;
	for (unsigned i = 0; i < s->nshards; i++) {
		const struct shard *sh = read_shard(s, i);
		if (sh)
			v += from_bits(load_u64(&sh->bits));
	}
	return v;
}

/* A histogram bucket's count over all shards. */
static uint64_t bucket_count(const struct ig_series *s, size_t b)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < s->nshards; i++) {
		const struct shard *sh = read_shard(s, i);
		if (sh)
			n += load_u64(&sh->buckets[b]);
	}
	return n;
}

/* ---- registry ---------------------------------------------------------------- */

struct ig_registry *ig_registry_new_sharded(unsigned nshards)
{
	struct ig_registry *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->nshards = nshards ? nshards : 1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->render_lock, NULL);
	return r;
}

struct ig_registry *ig_registry_new(void)
{
	return ig_registry_new_sharded(IG_METRICS_DEFAULT_SHARDS);
}

static void free_strings(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void free_series(struct ig_series *s, size_t nlabels)
{
	for (unsigned i = 0; i < s->nshards; i++)
		free(atomic_load_explicit(&s->shards[i], memory_order_relaxed));
	free_strings(s->values, nlabels);
	free(s);
}

static void free_family(struct ig_metric_family *f)
{
	struct ig_series *s = atomic_load(&f->head);
	while (s) {
		struct ig_series *next = atomic_load(&s->next);
		free_series(s, f->nlabels);
		s = next;
	}
	free(f->name);
	free(f->help);
	free_strings(f->label_names, f->nlabels);
	free(f->bounds);
	free(f);
}

void ig_registry_free(struct ig_registry *r)
{
	if (!r)
		return;
	struct ig_metric_family *f = atomic_load(&r->head);
	while (f) {
		struct ig_metric_family *next = atomic_load(&f->next);
		free_family(f);
		f = next;
	}
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->render_lock);
	free(r);
}

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool valid_labels(const char *const *names, size_t n, enum kind kind)
{
	for (size_t i = 0; i < n; i++) {
		/* Names starting with "__" are reserved by Prometheus. */
		if (!valid_name(names[i], false) || strncmp(names[i], "__", 2) == 0)
			return false;
		if (kind == K_HISTOGRAM && strcmp(names[i], "le") == 0)
			return false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return false;
	}
	return true;
}

static bool valid_bounds(const double *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
			return false;
	return true;
}

static char **dup_strings(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof *out);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v && v[i] ? v[i] : "");
		if (!out[i]) {
			free_strings(out, i);
			return NULL;
		}
	}
	return out;
}

static struct ig_metric_family *find_family(struct ig_registry *r, const char *name)
{
	for (struct ig_metric_family *f = atomic_load_explicit(&r->head, memory_order_acquire); f;
	     f = atomic_load_explicit(&f->next, memory_order_acquire))
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static struct ig_metric_family *alloc_family(enum kind kind, const char *name, const char *help,
					     const char *const *label_names, size_t nlabels,
					     const double *bounds, size_t nbounds)
{
	struct ig_metric_family *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->kind = kind;
	f->nlabels = nlabels;
	f->nbounds = nbounds;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->label_names = dup_strings(label_names, nlabels);
	f->bounds = malloc((nbounds ? nbounds : 1) * sizeof(double));
	if (!f->name || !f->help || !f->label_names || !f->bounds) {
		free_family(f);
		return NULL;
	}
	if (nbounds)
		memcpy(f->bounds, bounds, nbounds * sizeof(double));
	return f;
}

/* The registry's first histogram whose bounds are f's, or f; under
 * r->lock. */
static const struct ig_metric_family *same_bounds(struct ig_registry *r,
						  const struct ig_metric_family *f)
{
	for (const struct ig_metric_family *g =
		 atomic_load_explicit(&r->head, memory_order_relaxed);
	     g; g = atomic_load_explicit(&g->next, memory_order_relaxed))
		if (g->kind == K_HISTOGRAM && g->nbounds == f->nbounds &&
		    memcmp(g->bounds, f->bounds, f->nbounds * sizeof(double)) == 0)
			return g->bounds_of;
	return f;
}

struct family_args {
	enum kind kind;
	bool summed;
	const double *bounds;
	size_t nbounds;
	ig_gauge_fn fn;
	ig_rows_fn rows_fn;
	void *fn_ctx;
};

static struct ig_metric_family *add_family(struct ig_registry *r, const struct family_args *a,
					   const char *name, const char *help,
					   const char *const *label_names, size_t nlabels)
{
	enum kind kind = a->kind;
	const double *bounds = a->bounds;
	size_t nbounds = a->nbounds;
	if (!valid_name(name, true) || !valid_labels(label_names, nlabels, kind) ||
	    !valid_bounds(bounds, nbounds))
		return NULL;
	struct ig_metric_family *f =
	    alloc_family(kind, name, help, label_names, nlabels, bounds, nbounds);
	if (!f)
		return NULL;
	f->reg = r;
	f->summed = a->summed;
	f->fn = a->fn;
	f->rows_fn = a->rows_fn;
	f->fn_ctx = a->fn_ctx;
	pthread_mutex_lock(&r->lock);
	if (find_family(r, name)) {
		pthread_mutex_unlock(&r->lock);
		free_family(f);
		return NULL;
	}
	f->bounds_of = kind == K_HISTOGRAM ? same_bounds(r, f) : NULL;
	if (r->tail)
		atomic_store_explicit(&r->tail->next, f, memory_order_release);
	else
		atomic_store_explicit(&r->head, f, memory_order_release);
	r->tail = f;
	pthread_mutex_unlock(&r->lock);
	/* A family without labels has exactly one series; creating it now
	 * makes it visible as 0 from the first scrape. */
	if (nlabels == 0 && !f->rows_fn && !ig_metrics_series(f, NULL))
		return NULL; /* stays registered, empty; only on allocation failure */
	return f;
}

struct ig_metric_family *ig_metrics_counter(struct ig_registry *r, const char *name,
					    const char *help, const char *const *label_names,
					    size_t nlabels)
{
	const struct family_args a = {.kind = K_COUNTER};
	return add_family(r, &a, name, help, label_names, nlabels);
}

struct ig_metric_family *ig_metrics_gauge(struct ig_registry *r, const char *name, const char *help,
					  const char *const *label_names, size_t nlabels)
{
	const struct family_args a = {.kind = K_GAUGE};
	return add_family(r, &a, name, help, label_names, nlabels);
}

struct ig_metric_family *ig_metrics_gauge_summed(struct ig_registry *r, const char *name,
						 const char *help, const char *const *label_names,
						 size_t nlabels)
{
	const struct family_args a = {.kind = K_GAUGE, .summed = true};
	return add_family(r, &a, name, help, label_names, nlabels);
}

struct ig_metric_family *ig_metrics_histogram(struct ig_registry *r, const char *name,
					      const char *help, const char *const *label_names,
					      size_t nlabels, const double *bounds, size_t nbounds)
{
	const struct family_args a = {.kind = K_HISTOGRAM, .bounds = bounds, .nbounds = nbounds};
	return add_family(r, &a, name, help, label_names, nlabels);
}

struct ig_metric_family *ig_metrics_gauge_fn(struct ig_registry *r, const char *name,
					     const char *help, const char *const *label_names,
					     size_t nlabels, ig_gauge_fn fn, void *ctx)
{
	const struct family_args a = {.kind = K_GAUGE, .fn = fn, .fn_ctx = ctx};
	return add_family(r, &a, name, help, label_names, nlabels);
}

struct ig_metric_family *ig_metrics_gauge_rows(struct ig_registry *r, const char *name,
					       const char *help, const char *const *label_names,
					       size_t nlabels, ig_rows_fn fn, void *ctx)
{
	const struct family_args a = {.kind = K_GAUGE, .rows_fn = fn, .fn_ctx = ctx};
	return add_family(r, &a, name, help, label_names, nlabels);
}

/* ---- series ------------------------------------------------------------------ */

static uint64_t hash_values(const char *const *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		for (const char *p = v && v[i] ? v[i] : ""; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3u;
		h = (h ^ 0xffu) * 0x100000001b3u; /* separator: "a","b" != "ab","" */
	}
	return h;
}

static struct ig_series *find_series(struct ig_metric_family *f, const char *const *v, uint64_t h)
{
	for (struct ig_series *s = atomic_load_explicit(&f->head, memory_order_acquire); s;
	     s = atomic_load_explicit(&s->next, memory_order_acquire)) {
		if (s->hash != h)
			continue;
		size_t i = 0;
		while (i < f->nlabels && strcmp(s->values[i], v && v[i] ? v[i] : "") == 0)
			i++;
		if (i == f->nlabels)
			return s;
	}
	return NULL;
}

static struct ig_series *new_series(struct ig_metric_family *f, const char *const *v, uint64_t h)
{
	unsigned n = f->reg->nshards;
	struct ig_series *s = calloc(1, sizeof *s + n * sizeof s->shards[0]);
	if (!s)
		return NULL;
	s->nshards = n;
	for (unsigned i = 0; i < n; i++)
		atomic_init(&s->shards[i], NULL);
	s->family = f;
	s->hash = h;
	atomic_init(&s->next, NULL);
	struct shard *sh = new_shard(f);
	s->values = dup_strings(v, f->nlabels);
	if (!sh || !s->values) {
		free(sh);
		free_series(s, f->nlabels);
		return NULL;
	}
	atomic_init(&s->shards[0], sh);
	return s;
}

struct ig_series *ig_metrics_series(struct ig_metric_family *f, const char *const *label_values)
{
	uint64_t h = hash_values(label_values, f->nlabels);
	struct ig_series *s = find_series(f, label_values, h);
	if (s)
		return s;
	pthread_mutex_lock(&f->reg->lock);
	s = find_series(f, label_values, h);
	if (!s) {
		s = new_series(f, label_values, h);
		if (s) {
			if (f->tail)
				atomic_store_explicit(&f->tail->next, s, memory_order_release);
			else
				atomic_store_explicit(&f->head, s, memory_order_release);
			f->tail = s;
		}
	}
	pthread_mutex_unlock(&f->reg->lock);
	return s;
}

/* ---- rendering --------------------------------------------------------------- */

/* Numbers as Go's strconv.FormatFloat(v, 'g', -1, 64) writes them, which is
 * what Prometheus client libraries emit: the fewest digits that read back
 * exactly, exponent form only below 1e-4 or from 1e6 up. */
static int put_double(struct ig_buf *out, double v)
{
	if (isnan(v))
		return ig_buf_append_cstr(out, "NaN");
	if (isinf(v))
		return ig_buf_append_cstr(out, v > 0 ? "+Inf" : "-Inf");
	char tmp[40];
	int prec = 1;
	for (; prec < 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
	int exp = atoi(strchr(tmp, 'e') + 1);
	if (exp < -4 || exp >= 6)
		return ig_buf_append_cstr(out, tmp);
	int decimals = prec - 1 - exp;
	return ig_buf_printf(out, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* HELP text escapes backslash and newline; label values also the quote. */
static int put_escaped(struct ig_buf *out, const char *s, bool quote)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		if (*s == '\\')
			rc = ig_buf_append_cstr(out, "\\\\");
		else if (*s == '\n')
			rc = ig_buf_append_cstr(out, "\\n");
		else if (quote && *s == '"')
			rc = ig_buf_append_cstr(out, "\\\"");
		else
			rc = ig_buf_append(out, s, 1);
	}
	return rc;
}

/* Writes `name<suffix>{labels[,le="..."]} ` (the braces only when there is
 * at least one label). le_bound is ignored unless `le` is true. */
static int put_head(struct ig_buf *out, const struct ig_metric_family *f, const char *const *values,
		    const char *suffix, bool le, double le_bound)
{
	int rc = ig_buf_printf(out, "%s%s", f->name, suffix);
	if (rc == 0 && (f->nlabels || le))
		rc = ig_buf_append_cstr(out, "{");
	for (size_t i = 0; rc == 0 && i < f->nlabels; i++) {
		rc = ig_buf_printf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
		if (rc == 0)
			rc = put_escaped(out, values[i] ? values[i] : "", true);
		if (rc == 0)
			rc = ig_buf_append_cstr(out, "\"");
	}
	if (rc == 0 && le) {
		rc = ig_buf_append_cstr(out, f->nlabels ? ",le=\"" : "le=\"");
		if (rc == 0)
			rc = put_double(out, le_bound);
		if (rc == 0)
			rc = ig_buf_append_cstr(out, "\"");
	}
	if (rc == 0 && (f->nlabels || le))
		rc = ig_buf_append_cstr(out, "}");
	if (rc == 0)
		rc = ig_buf_append_cstr(out, " ");
	return rc;
}

/* Buckets are stored per bucket and shard and summed here, so _count is
 * the +Inf bucket by construction even while observations keep arriving. */
static int put_histogram(struct ig_buf *out, const struct ig_metric_family *f, struct ig_series *s)
{
	uint64_t cum = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i <= f->nbounds; i++) {
		cum += bucket_count(s, i);
		double bound = i < f->nbounds ? f->bounds[i] : INFINITY;
		rc = put_head(out, f, (const char *const *)s->values, "_bucket", true, bound);
		if (rc == 0)
			rc = ig_buf_printf(out, "%" PRIu64 "\n", cum);
	}
	if (rc == 0)
		rc = put_head(out, f, (const char *const *)s->values, "_sum", false, 0);
	if (rc == 0)
		rc = put_double(out, ig_series_value(s));
	if (rc == 0)
		rc = ig_buf_append_cstr(out, "\n");
	if (rc == 0)
		rc = put_head(out, f, (const char *const *)s->values, "_count", false, 0);
	if (rc == 0)
		rc = ig_buf_printf(out, "%" PRIu64 "\n", cum);
	return rc;
}

static int put_help_type(struct ig_buf *out, const struct ig_metric_family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	int rc = ig_buf_printf(out, "# HELP %s ", f->name);
	if (rc == 0)
		rc = put_escaped(out, f->help, false);
	if (rc == 0)
		rc = ig_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->kind]);
	return rc;
}

static int put_family(struct ig_buf *out, struct ig_metric_family *f)
{
	struct ig_series *s = atomic_load_explicit(&f->head, memory_order_acquire);
	if (!s)
		return 0;
	int rc = put_help_type(out, f);
	for (; rc == 0 && s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
		if (f->kind == K_HISTOGRAM) {
			rc = put_histogram(out, f, s);
			continue;
		}
		rc = put_head(out, f, (const char *const *)s->values, "", false, 0);
		if (rc == 0)
			rc = put_double(out, ig_series_value(s));
		if (rc == 0)
			rc = ig_buf_append_cstr(out, "\n");
	}
	return rc;
}

/* The rows family being rendered; the header goes out with the first row. */
struct ig_metric_rows {
	const struct ig_metric_family *f;
	struct ig_buf *out;
	size_t nrows;
	int rc;
};

void ig_metrics_row(struct ig_metric_rows *rows, const char *const *label_values, double v)
{
	if (rows->rc == 0 && rows->nrows++ == 0)
		rows->rc = put_help_type(rows->out, rows->f);
	if (rows->rc == 0)
		rows->rc = put_head(rows->out, rows->f, label_values, "", false, 0);
	if (rows->rc == 0)
		rows->rc = put_double(rows->out, v);
	if (rows->rc == 0)
		rows->rc = ig_buf_append_cstr(rows->out, "\n");
}

static int put_rows(struct ig_buf *out, struct ig_metric_family *f)
{
	struct ig_metric_rows rows = {.f = f, .out = out};
	f->rows_fn(f->fn_ctx, &rows);
	return rows.rc;
}

int ig_registry_render(struct ig_registry *r, struct ig_buf *out)
{
	int rc = 0;
	pthread_mutex_lock(&r->render_lock);
	for (struct ig_metric_family *f = atomic_load_explicit(&r->head, memory_order_acquire);
	     rc == 0 && f; f = atomic_load_explicit(&f->next, memory_order_acquire)) {
		if (f->rows_fn) {
			rc = put_rows(out, f);
			continue;
		}
		if (f->fn)
			f->fn(f->fn_ctx, f);
		rc = put_family(out, f);
	}
	pthread_mutex_unlock(&r->render_lock);
	return rc;
}
