/* vLLM's scheduler and KV-cache manager in miniature (docs/SIMULATOR.md).
 *
 * Each engine step has a token budget (--max-num-batched-tokens). Running
 * requests are served first: a decoding request needs one token, one still
 * in prefill takes what is left of its prompt up to the budget (chunked
 * prefill). Waiting requests are then admitted in arrival order while the
 * batch is below --max-num-seqs, the budget lasts and the KV cache has
 * blocks for them; a request whose LoRA adapter cannot join the batch is
 * skipped and keeps waiting. When a running request needs a new block and
 * none is free, the newest running request is preempted: its blocks are
 * freed and it goes back to the head of the queue to be recomputed.
 *
 * Full prompt blocks are indexed by a chained hash. Blocks of finished
 * requests stay indexed while they sit in the free queue, so a later
 * request with the same prefix takes them back instead of computing them
 * again, until they are evicted for new allocations (oldest freed first). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sim/model.h"

/* ---- queues --------------------------------------------------------------------- */

static void q_push(struct ig_sim_seq_queue *q, struct ig_sim_seq *s)
{
	s->next = NULL;
	s->prev = q->tail;
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	q->len++;
}

static void q_push_front(struct ig_sim_seq_queue *q, struct ig_sim_seq *s)
{
	s->prev = NULL;
	s->next = q->head;
	if (q->head)
		q->head->prev = s;
	else
		q->tail = s;
	q->head = s;
	q->len++;
}

static void q_remove(struct ig_sim_seq_queue *q, struct ig_sim_seq *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		q->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		q->tail = s->prev;
	s->next = s->prev = NULL;
	q->len--;
}

/* ---- the free queue and the prefix index ------------------------------------------- */

static void free_unlink(struct ig_sim_model *m, int b)
{
	struct ig_sim_kv_block *k = &m->blk[b];
	if (k->prev >= 0)
		m->blk[k->prev].next = k->next;
	else
		m->free_head = k->next;
	if (k->next >= 0)
		m->blk[k->next].prev = k->prev;
	else
		m->free_tail = k->prev;
	k->prev = k->next = -1;
	k->in_free = false;
	m->nfree--;
}

static void free_append(struct ig_sim_model *m, int b)
{
	struct ig_sim_kv_block *k = &m->blk[b];
	k->next = -1;
	k->prev = m->free_tail;
	if (m->free_tail >= 0)
		m->blk[m->free_tail].next = b;
	else
		m->free_head = b;
	m->free_tail = b;
	k->in_free = true;
	m->nfree++;
}

static size_t bucket_of(const struct ig_sim_model *m, uint64_t h)
{
	return (size_t)(h & (m->nbuckets - 1));
}

static int cache_lookup(const struct ig_sim_model *m, uint64_t h)
{
	for (int b = m->buckets[bucket_of(m, h)]; b >= 0; b = m->blk[b].hnext)
		if (m->blk[b].hash == h)
			return b;
	return -1;
}

static void cache_insert(struct ig_sim_model *m, int b, uint64_t h)
{
	size_t i = bucket_of(m, h);
	m->blk[b].hash = h;
	m->blk[b].hashed = true;
	m->blk[b].hnext = m->buckets[i];
	m->buckets[i] = b;
}

static void cache_remove(struct ig_sim_model *m, int b)
{
	int *p = &m->buckets[bucket_of(m, m->blk[b].hash)];
	while (*p != b)
		p = &m->blk[*p].hnext;
	*p = m->blk[b].hnext;
	m->blk[b].hnext = -1;
	m->blk[b].hashed = false;
}

/* A block for new KV entries: the least recently freed one, whose cached
 * prefix (if any) is forgotten. -1 when every block is in use. */
static int take_block(struct ig_sim_model *m)
{
	int b = m->free_head;
	if (b < 0)
		return -1;
	free_unlink(m, b);
	if (m->blk[b].hashed)
		cache_remove(m, b);
	m->blk[b].ref = 1;
	return b;
}

/* ---- block tables ----------------------------------------------------------------- */

static long blocks_for(const struct ig_sim_model *m, long tokens)
{
	return (tokens + m->cfg->block_size - 1) / m->cfg->block_size;
}

static long total_tokens(const struct ig_sim_seq *q)
{
	return q->prompt_tokens + q->generated;
}

static int table_push(struct ig_sim_seq *q, int b)
{
	if (q->nblocks == q->blocks_cap) {
		long cap = q->blocks_cap ? q->blocks_cap * 2 : 8;
		int *t = realloc(q->blocks, (size_t)cap * sizeof *t);
		if (!t)
			return -ENOMEM;
		q->blocks = t;
		q->blocks_cap = cap;
	}
	q->blocks[q->nblocks++] = b;
	return 0;
}

/* Gives q blocks for its first `tokens` tokens. False when the cache runs
 * out (the blocks taken so far stay with q). */
static bool ensure_blocks(struct ig_sim_model *m, struct ig_sim_seq *q, long tokens)
{
	long need = blocks_for(m, tokens);
	while (q->nblocks < need) {
		if (m->free_head < 0)
			return false;
		int b = take_block(m);
		if (table_push(q, b) < 0) {
			m->blk[b].ref = 0;
			free_append(m, b);
			return false;
		}
	}
	return true;
}

/* Releases q's blocks, the last first so that the ends of prefixes are
 * evicted before their beginnings. Indexed blocks stay findable. */
static void release_blocks(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	for (long i = q->nblocks - 1; i >= 0; i--) {
		int b = q->blocks[i];
		if (--m->blk[b].ref == 0)
			free_append(m, b);
	}
	q->nblocks = 0;
	q->hashed = 0;
}

/* Takes the cached blocks of q's longest indexed prefix. At least one
 * prompt token is always computed, as vLLM does, so the step that
 * produces the first token has work to do. Returns the tokens covered. */
static long take_prefix(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	if (!m->cfg->enable_prefix_caching)
		return 0;
	long bs = m->cfg->block_size;
	size_t max = (size_t)((total_tokens(q) - 1) / bs);
	size_t n = q->nhashes < max ? q->nhashes : max;
	size_t i;
	for (i = 0; i < n; i++) {
		int b = cache_lookup(m, q->hashes[i]);
		if (b < 0)
			break;
		if (m->blk[b].in_free)
			free_unlink(m, b);
		m->blk[b].ref++;
		if (table_push(q, b) < 0) {
			if (--m->blk[b].ref == 0)
				free_append(m, b);
			break;
		}
	}
	q->hashed = (long)i;
	return (long)i * bs;
}

/* Indexes the prompt blocks that q's computed tokens have filled. A block
 * whose prefix another request indexed first stays private. */
static void index_blocks(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	if (!m->cfg->enable_prefix_caching)
		return;
	long full = q->computed / m->cfg->block_size;
	if (full > (long)q->nhashes)
		full = (long)q->nhashes;
	for (; q->hashed < full; q->hashed++) {
		int b = q->blocks[q->hashed];
		uint64_t h = q->hashes[q->hashed];
		if (!m->blk[b].hashed && cache_lookup(m, h) < 0)
			cache_insert(m, b, h);
	}
}

/* ---- LoRA slots -------------------------------------------------------------------- */

static bool adapter_in(const struct ig_sim_seq_queue *q, const char *name)
{
	for (const struct ig_sim_seq *s = q->head; s; s = s->next)
		if (s->adapter && strcmp(s->adapter, name) == 0)
			return true;
	return false;
}

static long distinct_adapters(const struct ig_sim_seq_queue *q)
{
	long n = 0;
	for (const struct ig_sim_seq *s = q->head; s; s = s->next) {
		if (!s->adapter)
			continue;
		const struct ig_sim_seq *p = q->head;
		while (p != s && !(p->adapter && strcmp(p->adapter, s->adapter) == 0))
			p = p->next;
		n += p == s;
	}
	return n;
}

int ig_sim_model_adapters(const struct ig_sim_seq_queue *q, struct ig_buf *out)
{
	int rc = 0;
	for (const struct ig_sim_seq *s = q->head; s; s = s->next) {
		if (!s->adapter)
			continue;
		const struct ig_sim_seq *p = q->head;
		while (p != s && !(p->adapter && strcmp(p->adapter, s->adapter) == 0))
			p = p->next;
		if (p != s)
			continue;
		if (out->len)
			rc |= ig_buf_append_cstr(out, ",");
		rc |= ig_buf_append_cstr(out, s->adapter);
	}
	return rc ? -1 : 0;
}

/* Whether a request for this adapter may join the running batch now. */
static bool adapter_admissible(const struct ig_sim_model *m, const char *name)
{
	return !name || adapter_in(&m->running, name) ||
	       distinct_adapters(&m->running) < m->cfg->max_loras;
}

/* Makes the adapter resident in a slot; true when it had to be loaded.
 * The slot reused is a free one, else the least recently used one whose
 * adapter is not running (adapter_admissible guarantees there is one). */
static bool make_resident(struct ig_sim_model *m, const char *name, uint64_t now)
{
	long victim = -1;
	for (long i = 0; i < m->cfg->max_loras; i++) {
		const char *s = m->slot_name[i];
		if (s && strcmp(s, name) == 0) {
			m->slot_used[i] = now;
			return false;
		}
		if (!s) {
			if (victim < 0 || m->slot_name[victim])
				victim = i;
		} else if (!adapter_in(&m->running, s) &&
			   (victim < 0 ||
			    (m->slot_name[victim] && m->slot_used[i] < m->slot_used[victim]))) {
			victim = i;
		}
	}
	if (victim >= 0) {
		free(m->slot_name[victim]);
		m->slot_name[victim] = strdup(name);
		m->slot_used[victim] = now;
	}
	return true;
}

/* ---- life cycle ---------------------------------------------------------------------- */

int ig_sim_model_init(struct ig_sim_model *m, const struct ig_sim_config *cfg,
		      const struct ig_sim_model_ops *ops, void *ctx)
{
	memset(m, 0, sizeof *m);
	m->cfg = cfg;
	m->ops = *ops;
	m->ctx = ctx;
	m->nblk = cfg->num_gpu_blocks;
	m->nbuckets = 1;
	while (m->nbuckets < (size_t)m->nblk)
		m->nbuckets <<= 1;
	m->blk = calloc((size_t)m->nblk, sizeof *m->blk);
	m->buckets = malloc(m->nbuckets * sizeof *m->buckets);
	m->slot_name = calloc((size_t)cfg->max_loras, sizeof *m->slot_name);
	m->slot_used = calloc((size_t)cfg->max_loras, sizeof *m->slot_used);
	if (!m->blk || !m->buckets || !m->slot_name || !m->slot_used) {
		ig_sim_model_free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->nbuckets; i++)
		m->buckets[i] = -1;
	m->free_head = m->free_tail = -1;
	for (long b = 0; b < m->nblk; b++) {
		m->blk[b].hnext = -1;
		free_append(m, (int)b);
	}
	return 0;
}

void ig_sim_model_free(struct ig_sim_model *m)
{
	struct ig_sim_seq_queue *qs[] = {&m->waiting, &m->running};
	for (size_t i = 0; i < 2; i++)
		for (struct ig_sim_seq *s = qs[i]->head; s; s = s->next) {
			free(s->blocks);
			s->blocks = NULL;
			s->nblocks = s->blocks_cap = 0;
		}
	if (m->slot_name)
		for (long i = 0; i < m->cfg->max_loras; i++)
			free(m->slot_name[i]);
	free(m->slot_name);
	free(m->slot_used);
	free(m->blk);
	free(m->buckets);
	free(m->step);
	memset(m, 0, sizeof *m);
}

bool ig_sim_model_fits(const struct ig_sim_model *m, long prompt_tokens, long target)
{
	return blocks_for(m, prompt_tokens + target) <= m->nblk;
}

void ig_sim_model_add(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	q->running = false;
	q->scheduled = false;
	q->computed = q->generated = q->cached_tokens = q->step_tokens = q->hashed = 0;
	struct ig_sim_seq *after = m->waiting.tail;
	/* A priority policy: behind every waiting request of the same or a
	 * lower value (vLLM serves lower values first, ties in arrival order). */
	if (m->cfg->priority_policy)
		while (after && after->priority > q->priority)
			after = after->prev;
	if (!after) {
		q_push_front(&m->waiting, q);
	} else if (after == m->waiting.tail) {
		q_push(&m->waiting, q);
	} else {
		q->prev = after;
		q->next = after->next;
		after->next->prev = q;
		after->next = q;
		m->waiting.len++;
	}
}

/* Forgets q (no callback) and frees its blocks. */
static void retire(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	q_remove(q->running ? &m->running : &m->waiting, q);
	release_blocks(m, q);
	free(q->blocks);
	q->blocks = NULL;
	q->blocks_cap = 0;
	q->running = false;
	for (long i = 0; i < m->nstep; i++)
		if (m->step[i] == q)
			m->step[i] = NULL;
}

void ig_sim_model_abort(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	retire(m, q);
}

long ig_sim_model_used_blocks(const struct ig_sim_model *m)
{
	return m->nblk - m->nfree;
}

/* ---- one step ---------------------------------------------------------------------- */

static int step_add(struct ig_sim_model *m, struct ig_sim_seq *q, long tokens)
{
	if (m->nstep == m->step_cap) {
		long cap = m->step_cap ? m->step_cap * 2 : 64;
		struct ig_sim_seq **s = realloc(m->step, (size_t)cap * sizeof *s);
		if (!s)
			return -ENOMEM;
		m->step = s;
		m->step_cap = cap;
	}
	q->step_tokens = tokens;
	m->step[m->nstep++] = q;
	return 0;
}

/* Sends q back to the head of the queue to be computed again. */
static void preempt(struct ig_sim_model *m, struct ig_sim_seq *q)
{
	q_remove(&m->running, q);
	release_blocks(m, q);
	q->running = false;
	q->computed = 0;
	q->step_tokens = 0;
	q_push_front(&m->waiting, q);
	m->preemptions += 1;
}

/* Costs gathered while planning a step. */
struct step_cost {
	long budget;
	long decode_seqs, prefill_tokens, lora_loads;
};

static void cost_add(struct step_cost *c, const struct ig_sim_seq *q, long tokens)
{
	c->budget -= tokens;
	/* A request past its prefill computes just the token it produced last. */
	if (q->generated > 0 && q->computed == total_tokens(q) - 1)
		c->decode_seqs++;
	else
		c->prefill_tokens += tokens;
}

/* Serves the running batch. Returns true when something was preempted. */
static bool plan_running(struct ig_sim_model *m, struct step_cost *c)
{
	bool preempted = false;
	struct ig_sim_seq *q = m->running.head;
	while (q && c->budget > 0) {
		struct ig_sim_seq *next = q->next;
		long n = total_tokens(q) - q->computed;
		if (n > c->budget)
			n = c->budget;
		if (q->paused || n <= 0) {
			q = next;
			continue;
		}
		bool scheduled = true;
		while (!ensure_blocks(m, q, q->computed + n)) {
			struct ig_sim_seq *victim = m->running.tail;
			preempt(m, victim);
			preempted = true;
			if (victim == q) {
				scheduled = false;
				break;
			}
		}
		if (!scheduled || step_add(m, q, n) < 0)
			break;
		cost_add(c, q, n);
		/* next may have been preempted; the tail is where we stop. */
		q = q->running ? q->next : NULL;
	}
	return preempted;
}

/* Admits waiting requests in order while they fit. */
static void plan_waiting(struct ig_sim_model *m, struct step_cost *c, uint64_t now)
{
	struct ig_sim_seq *q = m->waiting.head;
	while (q && c->budget > 0 && m->running.len < m->cfg->max_num_seqs) {
		struct ig_sim_seq *next = q->next;
		if (!adapter_admissible(m, q->adapter)) {
			q = next;
			continue;
		}
		long hit = take_prefix(m, q);
		q->computed = hit;
		long n = total_tokens(q) - hit;
		if (n > c->budget)
			n = c->budget;
		if (!ensure_blocks(m, q, hit + n) || step_add(m, q, n) < 0) {
			release_blocks(m, q);
			q->computed = 0;
			break;
		}
		q->cached_tokens = hit;
		if (!q->scheduled) {
			q->scheduled = true;
			q->scheduled_at = now;
		}
		m->prefix_queries += (double)total_tokens(q);
		m->prefix_hits += (double)hit;
		q_remove(&m->waiting, q);
		q_push(&m->running, q);
		q->running = true;
		if (q->adapter && make_resident(m, q->adapter, now))
			c->lora_loads++;
		cost_add(c, q, n);
		q = next;
	}
}

static uint64_t step_ns(const struct ig_sim_config *cfg, const struct step_cost *c)
{
	double ms = 0;
	if (c->decode_seqs)
		ms += cfg->itl_ms + cfg->decode_us_per_seq * (double)(c->decode_seqs - 1) / 1000;
	if (c->prefill_tokens)
		ms += cfg->ttft_ms + cfg->prefill_us_per_token * (double)c->prefill_tokens / 1000;
	ms += cfg->lora_load_ms * (double)c->lora_loads;
	return (uint64_t)(ms * 1e6);
}

bool ig_sim_model_begin(struct ig_sim_model *m, uint64_t now, uint64_t *dur_ns)
{
	if (m->in_step)
		return false;
	struct step_cost c = {.budget = m->cfg->max_num_batched_tokens};
	m->nstep = 0;
	/* Like vLLM, no newcomer joins a step that had to preempt. */
	if (!plan_running(m, &c))
		plan_waiting(m, &c, now);
	if (m->nstep == 0)
		return false;
	m->in_step = true;
	m->step_total = m->cfg->max_num_batched_tokens - c.budget;
	m->prompt_tokens += (double)c.prefill_tokens;
	*dur_ns = step_ns(m->cfg, &c);
	return true;
}

void ig_sim_model_end(struct ig_sim_model *m)
{
	if (!m->in_step)
		return;
	m->in_step = false;
	for (long i = 0; i < m->nstep; i++) {
		struct ig_sim_seq *q = m->step[i];
		if (!q)
			continue;
		q->computed += q->step_tokens;
		q->step_tokens = 0;
		index_blocks(m, q);
		if (q->computed < total_tokens(q))
			continue;
		q->generated++;
		bool gone = m->ops.on_token(m->ctx, q) < 0;
		if (gone || q->generated >= q->target) {
			retire(m, q);
			m->ops.on_release(m->ctx, q, gone);
		}
	}
	m->nstep = 0;
}

/* ---- keys and time ----------------------------------------------------------------- */

size_t ig_sim_block_hashes(const uint64_t *ids, size_t n, long block_size, uint64_t seed,
			   uint64_t *out)
{
	size_t bs = (size_t)block_size, full = n / bs;
	uint64_t parent = seed;
	for (size_t i = 0; i < full; i++) {
		parent = XXH64(ids + i * bs, bs * sizeof *ids, parent);
		out[i] = parent;
	}
	return full;
}

uint64_t ig_sim_real_ns(uint64_t sim_ns, double time_scale)
{
	if (time_scale <= 0)
		return sim_ns;
	return (uint64_t)((double)sim_ns / time_scale);
}
