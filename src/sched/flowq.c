/* The flow-control queue. Bands sit in an array sorted by priority, highest
 * first. A band keeps its non-empty flows in a ring; the ring's head is
 * the flow whose turn it is, and after serving one item the head moves on,
 * which is the round-robin. A global-strict band instead serves the flow
 * whose head item has the lowest (order, seq), found by walking the ring.
 * A flow's items are a list kept in (order, seq) order. Flows are found by
 * (priority, id) through a chained hash table and freed as soon as they
 * empty, so idle fairness ids cost nothing. Deadlines live in one binary
 * min-heap over all items. */
#include "sched/flowq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct band {
	int priority;
	struct ig_flowq_limits limits;
	enum ig_flowq_fairness fairness;
	size_t count;
	uint64_t bytes;
	struct ig_flowq_flow *turn; /* ring head: the flow served next */
};

struct ig_flowq_flow {
	struct ig_flowq_flow *hnext;	     /* hash chain */
	struct ig_flowq_flow *rprev, *rnext; /* the band's ring */
	struct ig_flowq_item *head, *tail;   /* FIFO */
	size_t band;			     /* index into q->bands */
	int priority;
	size_t idlen;
	char id[];
};

struct ig_flowq {
	struct ig_flowq_limits global;
	struct ig_flowq_band_config band_default;
	uint64_t seq; /* pushes so far */
	struct band *bands;
	size_t nbands;
	size_t count;
	uint64_t bytes;
	struct ig_flowq_flow **table;
	size_t ntable; /* power of two */
	size_t nflows;
	struct ig_flowq_item **heap;
	size_t nheap, capheap;
};

/* ---- bands -------------------------------------------------------------------- */

/* The band for `priority`, created (keeping the order) when new; -1 when
 * out of memory or past the band limit. Flows hold band indices, so an
 * insertion shifts theirs. */
static long band_index(struct ig_flowq *q, int priority, bool create)
{
	size_t i = 0;
	while (i < q->nbands && q->bands[i].priority > priority)
		i++;
	if (i < q->nbands && q->bands[i].priority == priority)
		return (long)i;
	if (!create || q->nbands == IG_FLOWQ_MAX_BANDS)
		return -1;
	struct band *b = realloc(q->bands, (q->nbands + 1) * sizeof(*b));
	if (!b)
		return -1;
	q->bands = b;
	memmove(&b[i + 1], &b[i], (q->nbands - i) * sizeof(*b));
	b[i] = (struct band){.priority = priority,
			     .limits = q->band_default.limits,
			     .fairness = q->band_default.fairness};
	q->nbands++;
	for (size_t h = 0; h < q->ntable; h++)
		for (struct ig_flowq_flow *f = q->table[h]; f; f = f->hnext)
			if (f->band >= i)
				f->band++;
	return (long)i;
}

int ig_flowq_configure(struct ig_flowq *q, const struct ig_flowq_limits *global,
		       const struct ig_flowq_band_config *bands, size_t nbands,
		       const struct ig_flowq_band_config *band_default)
{
	q->global = global ? *global : (struct ig_flowq_limits){0};
	q->band_default = band_default ? *band_default : (struct ig_flowq_band_config){0};
	for (size_t b = 0; b < q->nbands; b++) {
		q->bands[b].limits = q->band_default.limits;
		q->bands[b].fairness = q->band_default.fairness;
	}
	for (size_t i = 0; i < nbands; i++) {
		long b = band_index(q, bands[i].priority, true);
		if (b < 0)
			return q->nbands == IG_FLOWQ_MAX_BANDS ? -EINVAL : -ENOMEM;
		q->bands[b].limits = bands[i].limits;
		q->bands[b].fairness = bands[i].fairness;
	}
	return 0;
}

struct ig_flowq *ig_flowq_new(const struct ig_flowq_limits *global,
			      const struct ig_flowq_band_config *bands, size_t nbands,
			      const struct ig_flowq_band_config *band_default)
{
	struct ig_flowq *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->ntable = 64;
	q->table = calloc(q->ntable, sizeof(*q->table));
	if (!q->table || ig_flowq_configure(q, global, bands, nbands, band_default) < 0) {
		ig_flowq_free(q);
		return NULL;
	}
	return q;
}

void ig_flowq_free(struct ig_flowq *q)
{
	if (!q)
		return;
	for (size_t h = 0; h < q->ntable; h++)
		for (struct ig_flowq_flow *f = q->table[h], *next; f; f = next) {
			next = f->hnext;
			for (struct ig_flowq_item *it = f->head; it; it = it->next)
				it->flow = NULL;
			free(f);
		}
	free(q->table);
	free(q->bands);
	free(q->heap);
	free(q);
}

/* ---- flows -------------------------------------------------------------------- */

static size_t slot_of(const struct ig_flowq *q, int priority, struct ig_str id)
{
	return (size_t)XXH64(id.ptr, id.len, (uint64_t)(int64_t)priority) & (q->ntable - 1);
}

static struct ig_flowq_flow *flow_find(const struct ig_flowq *q, int priority, struct ig_str id)
{
	for (struct ig_flowq_flow *f = q->table[slot_of(q, priority, id)]; f; f = f->hnext)
		if (f->priority == priority && f->idlen == id.len &&
		    memcmp(f->id, id.ptr, id.len) == 0)
			return f;
	return NULL;
}

static void table_grow(struct ig_flowq *q)
{
	size_t n = q->ntable * 2;
	struct ig_flowq_flow **t = calloc(n, sizeof(*t));
	if (!t)
		return; /* longer chains, still correct */
	struct ig_flowq_flow **old = q->table;
	size_t oldn = q->ntable;
	q->table = t;
	q->ntable = n;
	for (size_t h = 0; h < oldn; h++)
		for (struct ig_flowq_flow *f = old[h], *next; f; f = next) {
			next = f->hnext;
			size_t s = slot_of(q, f->priority, (struct ig_str){f->id, f->idlen});
			f->hnext = t[s];
			t[s] = f;
		}
	free(old);
}

/* A new, empty flow, entered in the table and at the end of its band's
 * ring (so it waits one full round before its first turn). */
static struct ig_flowq_flow *flow_new(struct ig_flowq *q, size_t band, int priority,
				      struct ig_str id)
{
	struct ig_flowq_flow *f = calloc(1, sizeof(*f) + id.len + 1);
	if (!f)
		return NULL;
	f->band = band;
	f->priority = priority;
	f->idlen = id.len;
	memcpy(f->id, id.ptr, id.len);
	if (q->nflows + 1 > q->ntable)
		table_grow(q);
	size_t s = slot_of(q, priority, id);
	f->hnext = q->table[s];
	q->table[s] = f;
	q->nflows++;
	struct band *b = &q->bands[band];
	if (!b->turn) {
		f->rprev = f->rnext = f;
		b->turn = f;
	} else {
		f->rnext = b->turn;
		f->rprev = b->turn->rprev;
		f->rprev->rnext = f;
		b->turn->rprev = f;
	}
	return f;
}

static void flow_drop(struct ig_flowq *q, struct ig_flowq_flow *f)
{
	struct band *b = &q->bands[f->band];
	if (f->rnext == f) {
		b->turn = NULL;
	} else {
		f->rprev->rnext = f->rnext;
		f->rnext->rprev = f->rprev;
		if (b->turn == f)
			b->turn = f->rnext;
	}
	struct ig_flowq_flow **p =
	    &q->table[slot_of(q, f->priority, (struct ig_str){f->id, f->idlen})];
	while (*p != f)
		p = &(*p)->hnext;
	*p = f->hnext;
	q->nflows--;
	free(f);
}

/* ---- deadline heap --------------------------------------------------------------- */

static void heap_set(struct ig_flowq *q, size_t pos, struct ig_flowq_item *it)
{
	q->heap[pos] = it;
	it->heap_pos = pos;
}

static void sift_up(struct ig_flowq *q, size_t pos)
{
	struct ig_flowq_item *it = q->heap[pos];
	while (pos > 0) {
		size_t parent = (pos - 1) / 2;
		if (q->heap[parent]->deadline_ns <= it->deadline_ns)
			break;
		heap_set(q, pos, q->heap[parent]);
		pos = parent;
	}
	heap_set(q, pos, it);
}

static void sift_down(struct ig_flowq *q, size_t pos)
{
	struct ig_flowq_item *it = q->heap[pos];
	for (;;) {
		size_t c = 2 * pos + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && q->heap[c + 1]->deadline_ns < q->heap[c]->deadline_ns)
			c++;
		if (q->heap[c]->deadline_ns >= it->deadline_ns)
			break;
		heap_set(q, pos, q->heap[c]);
		pos = c;
	}
	heap_set(q, pos, it);
}

static int heap_push(struct ig_flowq *q, struct ig_flowq_item *it)
{
	if (q->nheap == q->capheap) {
		size_t cap = q->capheap ? q->capheap * 2 : 64;
		struct ig_flowq_item **h = realloc(q->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->capheap = cap;
	}
	q->heap[q->nheap++] = it;
	sift_up(q, q->nheap - 1);
	return 0;
}

static void heap_remove(struct ig_flowq *q, struct ig_flowq_item *it)
{
	size_t pos = it->heap_pos;
	struct ig_flowq_item *last = q->heap[--q->nheap];
	if (pos == q->nheap)
		return;
	heap_set(q, pos, last);
	sift_down(q, pos);
	sift_up(q, last->heap_pos);
}

/* ---- items -------------------------------------------------------------------- */

static bool over(const struct ig_flowq_limits *l, size_t count, uint64_t bytes, uint64_t add)
{
	return (l->max_requests && count + 1 > l->max_requests) ||
	       (l->max_bytes && (bytes + add > l->max_bytes || bytes + add < bytes));
}

/* Links `it` into its flow after every item with a key not above its
 * own: equal keys keep push order. Keys mostly arrive in order (all zero,
 * or deadlines a constant TTL ahead), so the walk is usually empty. */
static void flow_insert(struct ig_flowq_flow *f, struct ig_flowq_item *it)
{
	struct ig_flowq_item *after = f->tail;
	while (after && after->order > it->order)
		after = after->prev;
	it->prev = after;
	it->next = after ? after->next : f->head;
	if (it->next)
		it->next->prev = it;
	else
		f->tail = it;
	if (after)
		after->next = it;
	else
		f->head = it;
}

int ig_flowq_push(struct ig_flowq *q, struct ig_flowq_item *it, void *data, struct ig_str flow_id,
		  int priority, uint64_t bytes, uint64_t deadline_ns, uint64_t order)
{
	if (flow_id.len > IG_FLOWQ_MAX_FLOW_ID || it->flow)
		return -EINVAL;
	if (over(&q->global, q->count, q->bytes, bytes))
		return -ENOSPC;
	long bi = band_index(q, priority, true);
	if (bi < 0)
		return q->nbands == IG_FLOWQ_MAX_BANDS ? -EINVAL : -ENOMEM;
	struct band *b = &q->bands[bi];
	if (over(&b->limits, b->count, b->bytes, bytes))
		return -ENOSPC;
	*it = (struct ig_flowq_item){.data = data,
				     .bytes = bytes,
				     .deadline_ns = deadline_ns,
				     .order = order,
				     .seq = q->seq};
	if (deadline_ns && heap_push(q, it) < 0)
		return -ENOMEM;
	struct ig_flowq_flow *f = flow_find(q, priority, flow_id);
	if (!f && !(f = flow_new(q, (size_t)bi, priority, flow_id))) {
		if (deadline_ns)
			heap_remove(q, it);
		return -ENOMEM;
	}
	it->flow = f;
	flow_insert(f, it);
	q->seq++;
	b->count++;
	b->bytes += bytes;
	q->count++;
	q->bytes += bytes;
	return 0;
}

void ig_flowq_remove(struct ig_flowq *q, struct ig_flowq_item *it)
{
	struct ig_flowq_flow *f = it->flow;
	if (!f)
		return;
	struct band *b = &q->bands[f->band];
	if (it->prev)
		it->prev->next = it->next;
	else
		f->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		f->tail = it->prev;
	if (it->deadline_ns)
		heap_remove(q, it);
	b->count--;
	b->bytes -= it->bytes;
	q->count--;
	q->bytes -= it->bytes;
	it->flow = NULL;
	it->prev = it->next = NULL;
	if (!f->head)
		flow_drop(q, f);
}

static struct band *first_band(const struct ig_flowq *q)
{
	for (size_t i = 0; i < q->nbands; i++)
		if (q->bands[i].turn)
			return &q->bands[i];
	return NULL;
}

static bool goes_before(const struct ig_flowq_item *a, const struct ig_flowq_item *b)
{
	return a->order < b->order || (a->order == b->order && a->seq < b->seq);
}

/* The flow a band serves next (it has one: the band is not empty). */
static struct ig_flowq_flow *next_flow(const struct band *b)
{
	struct ig_flowq_flow *best = b->turn;
	if (b->fairness == IG_FLOWQ_GLOBAL_STRICT)
		for (struct ig_flowq_flow *f = b->turn->rnext; f != b->turn; f = f->rnext)
			if (goes_before(f->head, best->head))
				best = f;
	return best;
}

void *ig_flowq_pop(struct ig_flowq *q)
{
	struct band *b = first_band(q);
	if (!b)
		return NULL;
	struct ig_flowq_flow *f = next_flow(b);
	struct ig_flowq_item *it = f->head;
	/* The turn passes on before the removal, which may free the flow. */
	if (b->fairness == IG_FLOWQ_ROUND_ROBIN)
		b->turn = f->rnext;
	ig_flowq_remove(q, it);
	return it->data;
}

void *ig_flowq_peek(const struct ig_flowq *q)
{
	const struct band *b = first_band(q);
	return b ? next_flow(b)->head->data : NULL;
}

bool ig_flowq_next_priority(const struct ig_flowq *q, int *priority)
{
	const struct band *b = first_band(q);
	if (b)
		*priority = b->priority;
	return b != NULL;
}

void *ig_flowq_pop_expired(struct ig_flowq *q, uint64_t now_ns)
{
	if (q->nheap == 0 || q->heap[0]->deadline_ns > now_ns)
		return NULL;
	struct ig_flowq_item *it = q->heap[0];
	ig_flowq_remove(q, it);
	return it->data;
}

bool ig_flowq_queued(const struct ig_flowq_item *it)
{
	return it->flow != NULL;
}

size_t ig_flowq_len(const struct ig_flowq *q)
{
	return q->count;
}

uint64_t ig_flowq_bytes(const struct ig_flowq *q)
{
	return q->bytes;
}
