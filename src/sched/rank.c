/* Top-k ranking by histogram refinement (see rank.h).
 *
 * One round over a candidate set: the lowest and highest key, then a
 * histogram of NBINS equal-width buckets between them. Walking the buckets
 * down from the top finds the one where the count reaches the places
 * still to fill: every candidate above it is in (fewer than those places,
 * sorted and appended), and only that bucket's candidates go to the next
 * round. The bucket of a key is monotone in the key ((key - lo) * scale
 * rounds monotonically, and truncation keeps the order), so a candidate in
 * a higher bucket has a strictly higher key than any in a lower one; the
 * lowest key lands in bucket 0 and the highest in the top one, so each
 * round drops at least one candidate and narrows the range 256-fold. A
 * round ends the ranking when the set is small (sorted whole), or when its
 * keys are all equal (a uniform random sample, drawn in order). For a
 * thousand distinct keys one round and a sort of a few dozen do it.
 *
 * Equal keys are put in random order by shuffling each run of them after
 * the sort; the run cut by the k-th place is shuffled whole before the
 * cut, so every subset of it is equally likely to make the list. */
#include "sched/rank.h"

#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/scratch.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define NBINS 256
#define SMALL_BINS 64
/* Sets this small are sorted outright. */
#define SMALL 48

struct kp;

struct work {
	size_t *a, *b;	/* candidate sets of successive rounds */
	struct kp *kp;	/* room to sort */
	uint8_t *bin;	/* bucket of each candidate of the round */
};

static _Thread_local struct ig_scratch rank_mem;

static int work_get(struct work *w, size_t n)
{
	/* Two position arrays, n sort pairs (16 bytes each), n buckets. */
	if (n > (SIZE_MAX - 256) / (4 * sizeof(size_t) + 1))
		return -1;
	size_t pos = (n * sizeof(size_t) + 63) & ~(size_t)63;
	unsigned char *m = ig_scratch_get(&rank_mem, 4 * pos + n + 1);
	if (!m)
		return -1;
	w->a = (size_t *)m;
	w->b = (size_t *)(m + pos);
	w->kp = (struct kp *)(m + 2 * pos);
	w->bin = m + 4 * pos;
	return 0;
}

static inline size_t at(const size_t *set, size_t i)
{
	return set ? set[i] : i;
}

static void shuffle(size_t *p, size_t m, struct ig_rng *rng)
{
	for (size_t i = m; i > 1; i--) {
		size_t j = (size_t)ig_rng_below(rng, i);
		size_t t = p[i - 1];
		p[i - 1] = p[j];
		p[j] = t;
	}
}

/* A key beside its position, so that sorting compares keys in hand. */
struct kp {
	double key;
	size_t pos;
};

static int kp_desc(const void *a, const void *b)
{
	double x = ((const struct kp *)a)->key, y = ((const struct kp *)b)->key;
	return x > y ? -1 : x < y;
}

/* The place of k[i] among k[0, m) sorted highest first, equal keys in
 * order: how many are above it, or equal and before it. k is 16-byte
 * aligned and padded with NaN to an even count. */
#ifdef __SSE2__
#define P4(b) b, b + 1, b + 2, b + 3
#define P16(b) P4(b), P4(b + 4), P4(b + 8), P4(b + 12)
static _Alignas(16) const double positions[64] = {P16(0), P16(16), P16(32), P16(48)};
#undef P16
#undef P4

static inline size_t place(const double *k, size_t m, size_t i)
{
	__m128d v = _mm_set1_pd(k[i]), at = _mm_set1_pd((double)i);
	/* Integer sums of the all-ones masks (-1 each), and positions from a
	 * table: no floating add on the loop's path, which would wait four
	 * cycles a step. */
	__m128i r = _mm_setzero_si128();
	for (size_t x = 0; x < m; x += 2) {
		__m128d kj = _mm_load_pd(k + x);
		__m128d in =
		    _mm_or_pd(_mm_cmpgt_pd(kj, v), _mm_and_pd(_mm_cmpeq_pd(kj, v),
							      _mm_cmplt_pd(_mm_load_pd(positions + x), at)));
		r = _mm_sub_epi64(r, _mm_castpd_si128(in));
	}
	return (size_t)(_mm_cvtsi128_si64(r) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r)));
}
#else
static inline size_t place(const double *k, size_t m, size_t i)
{
	size_t r = 0;
	for (size_t j = 0; j < i; j++)
		r += k[j] >= k[i];
	for (size_t j = i + 1; j < m; j++)
		r += k[j] > k[i];
	return r;
}
#endif

/* Sorts p[0, m) by key, highest first, and shuffles each run of equal
 * keys. For the few dozen a schedule ranks, each key's place is counted
 * (the keys above it, and the equal ones before it) and the key put
 * there: m * m comparisons without a branch on their outcome (two at a
 * time with SSE2), which costs less than the mispredicted branches of an
 * insertion sort. The C library's sort for more (a caller asking for
 * hundreds). */
#define COUNT_SORT_MAX 64
static void sort_desc(const double *key, size_t *p, size_t m, struct ig_rng *rng, struct kp *kp)
{
	if (m > COUNT_SORT_MAX) {
		for (size_t i = 0; i < m; i++)
			kp[i] = (struct kp){key[p[i]], p[i]};
		qsort(kp, m, sizeof(*kp), kp_desc);
	} else {
		/* Padded to an even count with NaN, which compares false. */
		_Alignas(16) double k[COUNT_SORT_MAX + 2];
		for (size_t i = 0; i < m; i++)
			k[i] = key[p[i]];
		k[m | 1] = k[m] = NAN;
		for (size_t i = 0; i < m; i++)
			kp[place(k, m, i)] = (struct kp){k[i], p[i]};
	}
	for (size_t i = 0; i < m; i++)
		p[i] = kp[i].pos;
	for (size_t i = 0; i < m;) {
		size_t j = i + 1;
		while (j < m && kp[j].key == kp[i].key)
			j++;
		if (j - i > 1)
			shuffle(p + i, j - i, rng);
		i = j;
	}
}

/* The loops over a round's candidates are written for both kinds of set,
 * the first round's (every position) and a list: the compiler makes a
 * copy of each for each, without the test inside. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* The lowest and highest of the m keys of set, in four independent
 * chains so that the comparisons of successive keys overlap. */
ALWAYS_INLINE void bounds_of(const double *key, const size_t *set, size_t m, double *lo,
			     double *hi)
{
	double l0 = key[at(set, 0)], l1 = l0, l2 = l0, l3 = l0;
	double h0 = l0, h1 = l0, h2 = l0, h3 = l0;
	size_t i = 0;
	for (; i + 4 <= m; i += 4) {
		double v0 = key[at(set, i)], v1 = key[at(set, i + 1)];
		double v2 = key[at(set, i + 2)], v3 = key[at(set, i + 3)];
		l0 = v0 < l0 ? v0 : l0;
		l1 = v1 < l1 ? v1 : l1;
		l2 = v2 < l2 ? v2 : l2;
		l3 = v3 < l3 ? v3 : l3;
		h0 = v0 > h0 ? v0 : h0;
		h1 = v1 > h1 ? v1 : h1;
		h2 = v2 > h2 ? v2 : h2;
		h3 = v3 > h3 ? v3 : h3;
	}
	for (; i < m; i++) {
		double v = key[at(set, i)];
		l0 = v < l0 ? v : l0;
		h0 = v > h0 ? v : h0;
	}
	l0 = l1 < l0 ? l1 : l0;
	l2 = l3 < l2 ? l3 : l2;
	h0 = h1 > h0 ? h1 : h0;
	h2 = h3 > h2 ? h3 : h2;
	*lo = l2 < l0 ? l2 : l0;
	*hi = h2 > h0 ? h2 : h0;
}

static void bounds(const double *key, const size_t *set, size_t m, double *lo, double *hi)
{
	if (set)
		bounds_of(key, set, m, lo, hi);
	else
		bounds_of(key, NULL, m, lo, hi);
}

/* Bucket of each key (to bin) and the count of each bucket. Keys bunch
 * in few buckets, and one counter bumped again before its last store has
 * landed would serialise the loop: four sets of counters, summed after. */
ALWAYS_INLINE void histogram_of(const double *key, const size_t *set, size_t m, double lo,
				double scale, double top, uint8_t *bin, uint32_t (*c)[NBINS])
{
	size_t i = 0;
	for (; i + 4 <= m; i += 4)
		for (size_t j = 0; j < 4; j++) {
			double f = (key[at(set, i + j)] - lo) * scale;
			f = f < top ? f : top;
			unsigned b = (unsigned)(int)f;
			bin[i + j] = (uint8_t)b;
			c[j][b]++;
		}
	for (; i < m; i++) {
		double f = (key[at(set, i)] - lo) * scale;
		f = f < top ? f : top;
		unsigned b = (unsigned)(int)f;
		bin[i] = (uint8_t)b;
		c[0][b]++;
	}
}

/* nbins buckets (at most NBINS) over [lo, hi]. */
static void histogram(const double *key, const size_t *set, size_t m, double lo, double hi,
		      unsigned nbins, uint8_t *bin, uint32_t *count)
{
	uint32_t c[4][NBINS];
	for (int j = 0; j < 4; j++)
		memset(c[j], 0, nbins * sizeof(c[j][0]));
	double scale = (double)nbins / (hi - lo), top = (double)(nbins - 1);
	if (set)
		histogram_of(key, set, m, lo, scale, top, bin, c);
	else
		histogram_of(key, NULL, m, lo, scale, top, bin, c);
	for (unsigned b = 0; b < nbins; b++)
		count[b] = c[0][b] + c[1][b] + c[2][b] + c[3][b];
}

/* Candidates of set whose bucket is above the cut go to top, those in
 * the cut's bucket to next; returns how many went to top (*nnext the
 * others). */
ALWAYS_INLINE size_t split_of(const size_t *set, size_t m, const uint8_t *bin, unsigned cut,
			      size_t *top, size_t *next, size_t *nnext)
{
	size_t na = 0, nb = 0;
	for (size_t i = 0; i < m; i++) {
		size_t p = at(set, i);
		/* Both stores always, the counts say which one stays. */
		top[na] = p;
		next[nb] = p;
		na += bin[i] > cut;
		nb += bin[i] == cut;
	}
	*nnext = nb;
	return na;
}

static size_t split(const size_t *set, size_t m, const uint8_t *bin, unsigned cut, size_t *top,
		    size_t *next, size_t *nnext)
{
	if (set)
		return split_of(set, m, bin, cut, top, next, nnext);
	return split_of(NULL, m, bin, cut, top, next, nnext);
}

/* A first cut for a large set, from a sample: the r-th highest of SAMPLE
 * keys spread over the set, r chosen so that about 2 * need keys of the
 * set reach it. Every key at or above the cut goes to next (NaN and
 * -infinity never do: the cut is finite). Returns how many, or 0 when
 * the cut kept too few (fewer than need) or too many to have helped. */
#define SAMPLE 128
static size_t presift(const double *key, size_t m, size_t need, size_t *next)
{
	double top[SAMPLE];
	size_t r = (2 * need * SAMPLE + m - 1) / m, nt = 0;
	if (r < 2)
		r = 2;
	size_t stride = m / SAMPLE;
	/* The r highest of the sample, highest first. */
	for (size_t s = 0; s < SAMPLE; s++) {
		double v = key[s * stride];
		if (nt == r && !(v > top[r - 1]))
			continue;
		size_t j = nt < r ? nt++ : r - 1;
		for (; j > 0 && top[j - 1] < v; j--)
			top[j] = top[j - 1];
		top[j] = v;
	}
	double cut = top[nt - 1];
	if (!(cut >= -DBL_MAX && cut <= DBL_MAX))
		return 0;
	size_t c = 0;
	for (size_t i = 0; i < m; i++) {
		next[c] = i;
		c += key[i] >= cut;
	}
	return c >= need && c <= m / 4 ? c : 0;
}

/* The best `need` of the m candidates of set (NULL: positions 0..m-1),
 * appended to out; returns how many were appended. set may be w->a or
 * w->b; the rounds take turns between them. */
static size_t rank_set(const double *key, const size_t *set, size_t m, size_t need,
		       struct ig_rng *rng, size_t *out, struct work *w)
{
	size_t done = 0;
	if (need > m)
		need = m;
	while (need > 0) {
		size_t *spare = set == w->a ? w->b : w->a;
		if (m <= SMALL) {
			for (size_t i = 0; i < m; i++)
				spare[i] = at(set, i);
			sort_desc(key, spare, m, rng, w->kp);
			memcpy(out + done, spare, need * sizeof(*out));
			return done + need;
		}
		double lo, hi;
		bounds(key, set, m, &lo, &hi);
		if (lo == hi) {
			/* All equal: a uniform sample of `need`, in random order. */
			for (size_t i = 0; i < m; i++)
				spare[i] = at(set, i);
			for (size_t i = 0; i < need; i++) {
				size_t j = i + (size_t)ig_rng_below(rng, m - i);
				size_t t = spare[i];
				spare[i] = spare[j];
				spare[j] = t;
			}
			memcpy(out + done, spare, need * sizeof(*out));
			return done + need;
		}
		/* Fewer buckets for fewer keys: fewer counters to clear and sum. */
		unsigned nbins = m <= 2 * SMALL_BINS ? SMALL_BINS : NBINS;
		double scale = (double)nbins / (hi - lo);
		if (!(scale > 0 && scale <= DBL_MAX)) {
			/* A range too wide for a double (hi - lo overflows) or too
			 * narrow (nbins over a subnormal): sorted outright. */
			for (size_t i = 0; i < m; i++)
				spare[i] = at(set, i);
			sort_desc(key, spare, m, rng, w->kp);
			memcpy(out + done, spare, need * sizeof(*out));
			return done + need;
		}
		uint32_t count[NBINS];
		histogram(key, set, m, lo, hi, nbins, w->bin, count);
		unsigned cut = nbins - 1;
		size_t above = 0;
		while (above + count[cut] < need)
			above += count[cut--];
		/* Above the cut: in, sorted. The cut's bucket: the next round. */
		size_t *top = out + done, nb;
		size_t na = split(set, m, w->bin, cut, top, spare, &nb);
		sort_desc(key, top, na, rng, w->kp);
		done += na;
		need -= na;
		set = spare;
		m = nb;
	}
	return done;
}

/* Keys all finite (as rank_set needs)? */
static bool finite_all(const double *key, const size_t *set, size_t m)
{
	double lo, hi;
	if (m == 0)
		return true;
	bounds(key, set, m, &lo, &hi);
	/* NaN fails both comparisons in bounds and here. */
	for (size_t i = 0; i < m; i++)
		if (key[at(set, i)] != key[at(set, i)])
			return false;
	return lo >= -DBL_MAX && hi <= DBL_MAX;
}

size_t ig_rank_top(const double *keys, size_t n, size_t k, struct ig_rng *rng, size_t *out)
{
	struct work w;
	if (k > n)
		k = n;
	if (k == 0 || work_get(&w, n) < 0)
		return 0;
	/* A large set: what the sample's cut keeps, when that is enough and
	 * all finite. */
	if (n >= 4 * SAMPLE && k <= n / 16) {
		size_t c = presift(keys, n, k, w.b);
		if (c && finite_all(keys, w.b, c))
			return rank_set(keys, w.b, c, k, rng, out, &w);
	}
	size_t odd = 0;
	for (size_t i = 0; i < n; i++)
		odd += !(keys[i] >= -DBL_MAX && keys[i] <= DBL_MAX);
	if (odd == 0)
		return rank_set(keys, NULL, n, k, rng, out, &w);
	/* Finite keys first, ranked; then -infinity, then NaN, each group in
	 * random order (+infinity counts as the highest finite key would:
	 * above every finite one, so it goes first among equals of its own). */
	size_t nf = 0, got = 0;
	for (size_t i = 0; i < n; i++)
		if (keys[i] >= -DBL_MAX && keys[i] <= DBL_MAX)
			w.b[nf++] = i;
	size_t npinf = 0;
	for (size_t i = 0; i < n; i++)
		if (keys[i] > DBL_MAX)
			w.a[npinf++] = i;
	if (npinf) {
		shuffle(w.a, npinf, rng);
		got = npinf < k ? npinf : k;
		memcpy(out, w.a, got * sizeof(*out));
	}
	if (got < k && nf)
		got += rank_set(keys, w.b, nf, k - got, rng, out + got, &w);
	for (int pass = 0; pass < 2 && got < k; pass++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (pass == 0 ? keys[i] < -DBL_MAX : isnan(keys[i]))
				w.a[m++] = i;
		shuffle(w.a, m, rng);
		size_t take = m < k - got ? m : k - got;
		memcpy(out + got, w.a, take * sizeof(*out));
		got += take;
	}
	return got;
}
