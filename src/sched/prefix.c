/* The prefix-cache index, shared by the worker threads of a pool with no
 * pool-wide lock: a lookup takes no lock and writes nothing shared, and a
 * commit locks only the endpoint it records for, plus one cache line of
 * the bucket table at a time for the few stores that link or unlink a pair.
 *
 * Layout. One node per (hash, endpoint) pair, kept in two lists at once:
 * the chain of its hash bucket (so a lookup finds every holder of a hash by
 * walking one bucket) and its endpoint's LRU (so the oldest pair of an
 * endpoint can be dropped in O(1)), and naming the endpoint's node for the
 * block before it (its parent). Nodes link by 32-bit index into one array.
 * The bucket table is made of cache lines, each holding 14 bucket heads, a
 * count of the nodes in its chains and a sequence counter that is also the
 * line's lock: odd while a writer holds the line.
 *
 * Prefixes. The hashes of a request form a chain (a hash stands for its
 * whole prefix), and a commit refreshes them last block first, so each
 * block of a prompt ends newer than every block after it, in every chain
 * through it. An LRU then never evicts a block before the blocks that
 * follow it: what an endpoint holds of any chain is a prefix. So a lookup
 * need not read every hash (see "lookups" below): the holders of block j
 * include the holders of every later block, and an endpoint's count is
 * the position of the last block it holds, plus one. And a commit finds
 * the endpoint's held blocks from the deepest by parent links.
 *
 * - A lookup reads, for each hash it reads, the counter of the hash's
 *   line, walks the chain, and reads the counter again; when it changed, a
 *   writer linked or unlinked in that line meanwhile, and the lookup
 *   starts over (a seqlock). The counter shares the line with the bucket
 *   head the walk needs anyway, so checking it costs no extra cache miss.
 *   Every field a lookup reads is an atomic, written with release stores
 *   and read with acquire loads (plain moves on x86). The map from
 *   endpoint key to slot has a counter of its own, bumped when an endpoint
 *   comes or goes. A lookup writes down the holders it met and each read
 *   line's counter, in memory of its thread's own, and returns the
 *   endpoints it counted with their keys, so the caller maps them to its
 *   candidates instead of the index mapping every candidate's key to a
 *   slot.
 * - A commit that follows a lookup starts from what the lookup found for
 *   its endpoint (ig_prefix_seen): how many blocks it held, its node for
 *   the last of them, and the counter of the next block's line. When that
 *   node is still the endpoint's pair for the hash and the counter did not
 *   move (only the endpoint's own commits, serialised on its mutex, could
 *   have given it the next pair, and they would have moved the counter),
 *   the endpoint still holds exactly that prefix; otherwise a binary
 *   search over its pairs finds it. The blocks it lacks are linked without
 *   a walk, last first; then the held ones are refreshed from the deepest
 *   along the parent links, each checked, and looked up when one fails.
 * - A commit for endpoint E holds E's mutex throughout, so two commits wait
 *   for each other only when they record for the same endpoint; E's LRU and
 *   E's spare nodes are E's alone. Refreshing a pair E already holds touches
 *   nothing but E's LRU. Adding one locks the line of its hash for the few
 *   stores of the link; evicting E's oldest pair first locks the line of
 *   that pair to unlink it. A commit holds one line at a time.
 * - The table doubles when the index has handed out more nodes than 3/8 of
 *   its buckets (short chains: every node a walk passes is a likely cache
 *   miss, and a lookup spent half its time waiting for nodes; 3/8 instead
 *   of 3/4 made a decision 7 % faster for 1.4 times the memory): the commit that finds it so takes
 * every line of the old table in order, relinks the nodes into the new one and publishes it. The
 * old table's lines stay odd for ever, which sends its late readers and writers to the new one.
 * - An endpoint's first commit and ig_prefix_forget() take the index's
 *   servers mutex: once per endpoint, not per request.
 * - Memory a lookup may still read is never freed while the index lives:
 *   the node array is one reservation of address space (room for 2^31
 *   nodes at most, made writable 2 MiB at a time as ids are handed out)
 *   that never moves, endpoints live in segments that never move, and a
 *   table or key map outgrown by a bigger one stays allocated until
 *   ig_prefix_free() (together less than the current one: they double).
 *
 * Why this and not the alternatives: sharding the whole index by hash,
 * each shard with its own LRU of capacity / N per endpoint, would turn
 * GIE's per-endpoint LRU into an approximation of it; staging commits per
 * worker and merging them elsewhere would make a commit visible only after
 * the next merge, so a burst of requests sharing a new prefix would not see
 * where the first of them went, and lock-free readers would need two copies
 * of the index or a grace period before a merge reuses memory. Here a
 * commit is visible to the next lookup, and the LRU is exact (the model
 * tests in test_prefix.c hold it to that). Memory: 32 bytes per pair (24
 * before the parent link), plus a bucket table (4.6 bytes a bucket, kept
 * under 3/8 full: 12-25 bytes a pair), the tables it outgrew (less than
 * its own size) and the endpoints' unused ids (see BATCH_MAX): 3.4-3.9
 * MiB in make bench-picker, 18.3 MiB for 333,666 pairs.
 *
 * A lookup that read every hash, and a commit that started from every
 * holder node it met, took 1.6 us per decision at 16 endpoints in make
 * bench-picker (0.87-0.94 now), and 3.6-3.7 us with an index of 333,666
 * pairs (PICKER_PROMPTS=16384; 3.5 now). An index keeping a hash's
 * holders together in one cache line was measured too: a lookup in cache
 * took half the time, but at 333K pairs decisions were slower, in four
 * times the memory. */
#include "sched/prefix.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/scratch.h"
#include "sched/blockhash.h"

#define NIL UINT32_MAX

/* Bucket heads per cache line of the table, beside its counter and count. */
#define LINE_HEADS 14
#define FIRST_LINES_LOG 6 /* 896 buckets */

/* Node ids stay below 2^31, as they did with one growing array. The
 * reservation is made writable CHUNK nodes (2 MiB, a whole number of
 * pages) at a time. An endpoint takes ids in batches as big as what it
 * holds, between BATCH_MIN and BATCH_MAX: its nodes lie in long runs, so
 * the nodes of one prompt's blocks share cache lines, as they did when
 * one array grew in commit order, and a small endpoint wastes little. */
#define MAX_NODES ((uint64_t)1 << 31)
#define CHUNK ((uint64_t)1 << 16)
#define BATCH_MIN 8u
#define BATCH_MAX 64u

/* Endpoint segments: segment k holds 16 << k endpoints; 13 cover 65536. */
#define SSEG0_LOG 4
#define NSSEGS 13

/* A key-map entry whose endpoint was forgotten. */
#define TOMB UINT32_MAX

struct node {
	_Atomic uint64_t hash;
	/* The slot whose pair this is while linked, NIL while not, so that a
	 * commit can trust a node of its own that it meets in any walk. */
	_Atomic uint32_t server;
	_Atomic uint32_t bnext; /* next in the bucket chain */
	/* The endpoint's LRU, under its mutex; spare nodes link through `older`. */
	uint32_t newer, older;
	/* Under the endpoint's mutex: its node for the block before this one
	 * (NIL for a first block), as the commit that linked this one knew
	 * it. A hint, checked before use: see held_path(). */
	uint32_t parent;
};

_Static_assert(sizeof(struct node) == 32, "two nodes a cache line");

struct server {
	/* Taken by commits and forgets of this endpoint. */
	_Alignas(64) pthread_mutex_t lock;
	/* Under `lock` (key and used also under the servers mutex). */
	uint64_t key;
	uint32_t newest, oldest;
	uint32_t count;
	uint32_t capacity; /* of its last commit */
	uint32_t spare;	   /* nodes of this slot not in use */
	uint32_t nspare;   /* how many */
	bool used;
	/* Under the servers mutex: the next unused slot. */
	uint32_t next_free;
	/* The key again, for lookups, which read it without a lock: written
	 * when the slot is given to a key, inside the key map's change. */
	_Atomic uint64_t pub_key;
};

struct line {
	_Alignas(64) _Atomic uint32_t seq; /* odd while held: the line's lock */
	_Atomic uint32_t live;		   /* nodes in this line's chains */
	_Atomic uint32_t head[LINE_HEADS];
};

struct table {
	struct table *older; /* the table this one replaced, still readable */
	unsigned log;	     /* 1 << log lines */
	struct line lines[];
};

_Static_assert(sizeof(struct line) == 64, "a line of the table is one cache line");
_Static_assert(offsetof(struct table, lines) == 64, "lines start on a cache line");

struct smap_entry {
	_Atomic uint64_t key;
	_Atomic uint32_t slot; /* slot + 1; 0 empty; TOMB forgotten */
};

/* key -> slot, open addressing; written under the servers mutex only. */
struct smap {
	uint32_t mask;
	uint32_t fill; /* entries used, tombstones included */
	struct smap *older;
	struct smap_entry e[];
};

struct ig_prefix_index {
	/* Read by every lookup, written when the table grows or an endpoint
	 * comes or goes. The table pointer carries the log2 of its line count
	 * in its low bits, so a reader gets both from one load. */
	_Atomic uintptr_t table;
	struct node *nodes; /* the reservation, max_nodes long */
	uint64_t max_nodes;
	uint64_t node_limit; /* ids handed out stay below this (tests lower it) */
	uint32_t capacity;
	_Atomic uint32_t map_seq; /* odd while an endpoint comes or goes */
	_Atomic uint32_t nservers;
	_Atomic(struct smap *) smap;
	_Atomic(struct server *) ssegs[NSSEGS];
	/* Written once per batch of new nodes, on a line of its own. */
	_Alignas(64) _Atomic uint64_t next_node;
	_Atomic uint64_t writable; /* nodes made writable so far */
	pthread_mutex_t arena_lock;
	_Alignas(64) pthread_mutex_t servers_lock;
	uint32_t free_slot; /* under servers_lock */
};

/* ---- the hash chain ------------------------------------------------------------ */

/* A block's hash is a 64-bit hash of the block's bytes alone
 * (sched/blockhash.c: AES rounds where the CPU has them, XXH3-64
 * elsewhere), so the blocks of a prompt hash independently of each other,
 * four side by side; the chain then folds each block's hash into the
 * previous link with one multiply and one add: h_i = K * h_{i-1} +
 * H(block_i) (mod 2^64), K odd. For a given block, h_{i-1} -> h_i is a
 * bijection (K is invertible mod 2^64): two prefixes that agree up to
 * block i-1 and differ in block i get different links unless the block
 * hash itself collides, and a difference once
 * made is carried on through equal blocks (multiplied by K, never
 * cancelled); prefixes that differ in several blocks collide only as
 * random 64-bit values do. The serial path is 4 cycles a block (the
 * multiply-xorshift link it replaced took about 10, a third of the time
 * of hashing a 4 KB prompt). GIE chains XXH64(block_i || le64(h_{i-1}))
 * instead, which puts a whole hash on the serial path of every block; the
 * values never leave the index, so only their collision rate matters
 * (docs/ARCHITECTURE.md, "Where infergate differs from GIE on purpose"). */
static inline uint64_t link_step(uint64_t prev, uint64_t block)
{
	return prev * 0x9E3779B97F4A7C15ULL + block;
}

/* Blocks are hashed this many at a time, then linked. */
#define HASH_BATCH 16

size_t ig_prefix_hashes(struct ig_str target_model, struct ig_str input, size_t block_bytes,
			size_t max_blocks, uint64_t *out)
{
	if (block_bytes == 0)
		return 0;
	size_t n = input.len / block_bytes;
	if (max_blocks > IG_PREFIX_MAX_BLOCKS)
		max_blocks = IG_PREFIX_MAX_BLOCKS;
	if (n > max_blocks)
		n = max_blocks;
	if (n == 0)
		return 0;
	uint64_t h = XXH64(target_model.ptr, target_model.len, 0);
	const char *in = input.ptr;
	for (size_t i = 0; i < n; i += HASH_BATCH) {
		size_t m = n - i < HASH_BATCH ? n - i : HASH_BATCH;
		ig_block_hashes(in + i * block_bytes, block_bytes, m, out + i);
		for (size_t j = 0; j < m; j++)
			out[i + j] = h = link_step(h, out[i + j]);
	}
	/* The bytes after the last full block are a block of their own, as
	 * llm-d hashes them (GIE#2823: prompts that differ only in their tail,
	 * a multimodal URL, no longer share every hash and pile onto one pod);
	 * not when the input was cut at max_blocks. */
	size_t tail = input.len - n * block_bytes;
	if (tail && n < max_blocks) {
		ig_block_hashes(in + n * block_bytes, tail, 1, out + n);
		out[n] = link_step(h, out[n]);
		n++;
	}
	return n;
}

static inline uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

/* ---- waiting ------------------------------------------------------------------- */

/* A line is held for a few stores, so waiting spins; past that, the
 * holder was probably descheduled and the waiter yields its CPU to it. */
static void backoff(unsigned *spins)
{
	if (++*spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		return;
	}
	sched_yield();
}

static bool try_lock(_Atomic uint32_t *seq)
{
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
	return !(s & 1) && atomic_compare_exchange_weak_explicit(
			       seq, &s, s + 1, memory_order_acquire, memory_order_relaxed);
}

/* One more on a sequence counter that only its holder writes: unlocks a
 * line, or marks the key map as changing (odd) and changed (even). Every
 * store a reader may see while the counter is odd is a release store, so
 * a reader that sees one also sees the counter odd or moved on. */
static void bump(_Atomic uint32_t *seq)
{
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
	atomic_store_explicit(seq, s + 1, memory_order_release);
}

/* ---- the table ------------------------------------------------------------------ */

static inline struct table *table_of(uintptr_t word)
{
	return (struct table *)(word & ~(uintptr_t)63);
}

/* The line and the head within it of mixed hash m: the line from the low
 * bits, the head from the high ones. */
static inline struct line *line_of(uintptr_t word, uint64_t m)
{
	return &table_of(word)->lines[m & (((uint64_t)1 << (word & 63)) - 1)];
}

static inline unsigned head_of(uint64_t m)
{
	return (unsigned)(((m >> 32) * LINE_HEADS) >> 32);
}

/* Where a hash lives, worked out once per call: its line is the low bits
 * of m (as many as the table has), its head h within the line. */
struct spot {
	uint64_t m;
	unsigned h;
};

static inline struct spot spot_of(uint64_t hash)
{
	uint64_t m = mix(hash);
	return (struct spot){m, head_of(m)};
}

/* A table as readers use it, from one load of the table word. */
struct view {
	const struct line *lines;
	uint64_t mask;
};

static inline struct view view_load(const struct ig_prefix_index *x)
{
	uintptr_t word = atomic_load_explicit(&x->table, memory_order_acquire);
	return (struct view){table_of(word)->lines, ((uint64_t)1 << (word & 63)) - 1};
}

static struct table *table_new(unsigned log)
{
	size_t n = (size_t)1 << log;
	struct table *t = aligned_alloc(64, sizeof(*t) + n * sizeof(t->lines[0]));
	if (!t)
		return NULL;
	t->older = NULL;
	t->log = log;
	for (size_t l = 0; l < n; l++) {
		atomic_init(&t->lines[l].seq, 0);
		atomic_init(&t->lines[l].live, 0);
		for (unsigned h = 0; h < LINE_HEADS; h++)
			atomic_init(&t->lines[l].head[h], NIL);
	}
	return t;
}

static inline struct node *node_at(const struct ig_prefix_index *x, uint32_t id)
{
	return &x->nodes[id];
}

static inline uint64_t hash_of(const struct node *nd)
{
	return atomic_load_explicit(&nd->hash, memory_order_acquire);
}

static inline uint32_t next_of(const struct node *nd)
{
	return atomic_load_explicit(&nd->bnext, memory_order_acquire);
}

/* ---- construction ------------------------------------------------------------- */

static struct smap *smap_new(uint32_t size)
{
	struct smap *m = calloc(1, sizeof(*m) + (size_t)size * sizeof(m->e[0]));
	if (!m)
		return NULL;
	m->mask = size - 1;
	return m;
}

/* Address space for every node the index may need, none of it usable
 * yet; halved until the system grants it. */
static int arena_reserve(struct ig_prefix_index *x, uint32_t max_capacity)
{
	uint64_t want = (uint64_t)IG_PREFIX_MAX_SERVERS * ((uint64_t)max_capacity + BATCH_MAX);
	if (want > MAX_NODES)
		want = MAX_NODES;
	want = (want + CHUNK - 1) & ~(CHUNK - 1);
	for (; want >= CHUNK; want /= 2) {
		void *p = mmap(NULL, want * sizeof(struct node), PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			x->nodes = p;
			x->max_nodes = want;
			x->node_limit = want;
			return 0;
		}
	}
	return -1;
}

struct ig_prefix_index *ig_prefix_new(uint32_t capacity_per_server)
{
	return ig_prefix_new_sized(capacity_per_server, capacity_per_server);
}

struct ig_prefix_index *ig_prefix_new_sized(uint32_t capacity_per_server, uint32_t max_capacity)
{
	size_t size = (sizeof(struct ig_prefix_index) + 63) & ~(size_t)63;
	struct ig_prefix_index *x = aligned_alloc(64, size);
	if (!x)
		return NULL;
	memset(x, 0, size);
	x->capacity = capacity_per_server ? capacity_per_server : 1;
	x->free_slot = NIL;
	pthread_mutex_init(&x->servers_lock, NULL);
	pthread_mutex_init(&x->arena_lock, NULL);
	struct smap *m = smap_new(16);
	struct table *t = table_new(FIRST_LINES_LOG);
	atomic_init(&x->smap, m);
	atomic_init(&x->table, t ? (uintptr_t)t | FIRST_LINES_LOG : 0);
	if (max_capacity < x->capacity)
		max_capacity = x->capacity;
	if (!m || !t || arena_reserve(x, max_capacity) < 0) {
		ig_prefix_free(x);
		return NULL;
	}
	return x;
}

static size_t sseg_len(unsigned k)
{
	return (size_t)1 << (SSEG0_LOG + k);
}

void ig_prefix_free(struct ig_prefix_index *x)
{
	if (!x)
		return;
	for (struct table *t = table_of(atomic_load(&x->table)), *o; t; t = o) {
		o = t->older;
		free(t);
	}
	for (struct smap *m = atomic_load(&x->smap), *o; m; m = o) {
		o = m->older;
		free(m);
	}
	if (x->nodes)
		munmap(x->nodes, x->max_nodes * sizeof(struct node));
	for (unsigned k = 0; k < NSSEGS; k++) {
		struct server *seg = atomic_load(&x->ssegs[k]);
		for (size_t i = 0; seg && i < sseg_len(k); i++)
			pthread_mutex_destroy(&seg[i].lock);
		free(seg);
	}
	pthread_mutex_destroy(&x->arena_lock);
	pthread_mutex_destroy(&x->servers_lock);
	free(x);
}

/* ---- endpoints -------------------------------------------------------------- */

static inline unsigned sseg_of(uint32_t slot)
{
	return 31u - (unsigned)__builtin_clz((slot >> SSEG0_LOG) + 1);
}

static inline struct server *server_at(const struct ig_prefix_index *x, uint32_t slot)
{
	unsigned k = sseg_of(slot);
	struct server *seg = atomic_load_explicit(&x->ssegs[k], memory_order_acquire);
	return &seg[slot - (((uint32_t)1 << (SSEG0_LOG + k)) - ((uint32_t)1 << SSEG0_LOG))];
}

/* Safe without the servers mutex: entries are published key first, then
 * slot with a release store. Under concurrent change the answer may be
 * stale; commits check the slot under its lock, lookups check map_seq. */
static uint32_t server_find(const struct ig_prefix_index *x, uint64_t key)
{
	const struct smap *m = atomic_load_explicit(&x->smap, memory_order_acquire);
	for (uint32_t i = (uint32_t)mix(key) & m->mask;; i = (i + 1) & m->mask) {
		uint32_t v = atomic_load_explicit(&m->e[i].slot, memory_order_acquire);
		if (v == 0)
			return NIL;
		if (v != TOMB && atomic_load_explicit(&m->e[i].key, memory_order_relaxed) == key)
			return v - 1;
	}
}

static void smap_put(struct smap *m, uint64_t key, uint32_t slot)
{
	uint32_t i = (uint32_t)mix(key) & m->mask;
	while (atomic_load_explicit(&m->e[i].slot, memory_order_relaxed) != 0)
		i = (i + 1) & m->mask;
	atomic_store_explicit(&m->e[i].key, key, memory_order_relaxed);
	atomic_store_explicit(&m->e[i].slot, slot + 1, memory_order_release);
	m->fill++;
}

/* Makes room for one more entry: a map half full is replaced by one at
 * least four times the live endpoints, without tombstones. Servers mutex
 * held. */
static int smap_reserve(struct ig_prefix_index *x)
{
	struct smap *m = atomic_load_explicit(&x->smap, memory_order_relaxed);
	if (2 * (m->fill + 1) <= m->mask + 1)
		return 0;
	uint32_t n = atomic_load_explicit(&x->nservers, memory_order_relaxed), live = 0;
	for (uint32_t s = 0; s < n; s++)
		live += server_at(x, s)->used;
	uint32_t size = 16;
	while (size < 4 * (live + 1))
		size *= 2;
	struct smap *nm = smap_new(size);
	if (!nm)
		return -1;
	for (uint32_t s = 0; s < n; s++)
		if (server_at(x, s)->used)
			smap_put(nm, server_at(x, s)->key, s);
	nm->older = m;
	atomic_store_explicit(&x->smap, nm, memory_order_release);
	return 0;
}

/* A slot never used before; its segment is allocated on first use. */
static uint32_t slot_fresh(struct ig_prefix_index *x)
{
	uint32_t slot = atomic_load_explicit(&x->nservers, memory_order_relaxed);
	if (slot == IG_PREFIX_MAX_SERVERS)
		return NIL;
	unsigned k = sseg_of(slot);
	if (!atomic_load_explicit(&x->ssegs[k], memory_order_relaxed)) {
		size_t len = sseg_len(k);
		struct server *seg = aligned_alloc(64, len * sizeof(*seg));
		if (!seg)
			return NIL;
		memset(seg, 0, len * sizeof(*seg));
		for (size_t i = 0; i < len; i++) {
			pthread_mutex_init(&seg[i].lock, NULL);
			seg[i].newest = seg[i].oldest = seg[i].spare = NIL;
		}
		atomic_store_explicit(&x->ssegs[k], seg, memory_order_release);
	}
	atomic_store_explicit(&x->nservers, slot + 1, memory_order_release);
	return slot;
}

static uint32_t server_add(struct ig_prefix_index *x, uint64_t key)
{
	pthread_mutex_lock(&x->servers_lock);
	uint32_t slot = server_find(x, key);
	if (slot != NIL || smap_reserve(x) < 0)
		goto out;
	slot = x->free_slot;
	if (slot != NIL)
		x->free_slot = server_at(x, slot)->next_free;
	else if ((slot = slot_fresh(x)) == NIL)
		goto out;
	struct server *s = server_at(x, slot);
	/* A commit that found this slot under its old key may hold it. */
	pthread_mutex_lock(&s->lock);
	s->key = key;
	s->used = true;
	pthread_mutex_unlock(&s->lock);
	bump(&x->map_seq); /* odd: lookups now running will start over */
	atomic_store_explicit(&s->pub_key, key, memory_order_release);
	smap_put(atomic_load_explicit(&x->smap, memory_order_relaxed), key, slot);
	bump(&x->map_seq);
out:
	pthread_mutex_unlock(&x->servers_lock);
	return slot;
}

/* Locks the endpoint of `key`, adding it when new. NULL when out of memory
 * or past IG_PREFIX_MAX_SERVERS. */
static struct server *server_lock(struct ig_prefix_index *x, uint64_t key, uint32_t *slot)
{
	for (;;) {
		uint32_t i = server_find(x, key);
		if (i == NIL && (i = server_add(x, key)) == NIL)
			return NULL;
		struct server *s = server_at(x, i);
		pthread_mutex_lock(&s->lock);
		if (s->used && s->key == key) {
			*slot = i;
			return s;
		}
		/* Forgotten since it was found: look again. */
		pthread_mutex_unlock(&s->lock);
	}
}

/* ---- nodes ----------------------------------------------------------------- */

/* Makes the reservation writable up to node `end`. */
static int arena_ready(struct ig_prefix_index *x, uint64_t end)
{
	int rc = 0;
	if (atomic_load_explicit(&x->writable, memory_order_acquire) >= end)
		return 0;
	pthread_mutex_lock(&x->arena_lock);
	uint64_t w = atomic_load_explicit(&x->writable, memory_order_relaxed);
	while (w < end) {
		if (mprotect((char *)x->nodes + w * sizeof(struct node),
			     CHUNK * sizeof(struct node), PROT_READ | PROT_WRITE) != 0) {
			rc = -1;
			break;
		}
		w += CHUNK;
		atomic_store_explicit(&x->writable, w, memory_order_release);
	}
	pthread_mutex_unlock(&x->arena_lock);
	return rc;
}

/* The first of n new node ids, NIL when the ids or memory ran out. */
static uint32_t arena_take(struct ig_prefix_index *x, uint32_t n)
{
	uint64_t first = atomic_fetch_add_explicit(&x->next_node, n, memory_order_relaxed);
	if (first + n > x->node_limit || arena_ready(x, first + n) < 0)
		return NIL;
	return (uint32_t)first;
}

/* A batch of new nodes for endpoint s's spares. */
static int spare_batch(struct ig_prefix_index *x, struct server *s)
{
	uint32_t n = s->count < BATCH_MIN ? BATCH_MIN : s->count;
	if (n > BATCH_MAX)
		n = BATCH_MAX;
	uint32_t first = arena_take(x, n);
	if (first == NIL)
		return -1;
	for (uint32_t j = 0; j < n; j++) {
		struct node *nd = node_at(x, first + j);
		atomic_store_explicit(&nd->server, NIL, memory_order_relaxed);
		nd->older = j + 1 < n ? first + j + 1 : s->spare;
	}
	s->spare = first;
	s->nspare += n;
	return 0;
}

/* At least `want` spare nodes for endpoint s, so that a commit that needs
 * them cannot fail half done. */
static int spare_reserve(struct ig_prefix_index *x, struct server *s, size_t want)
{
	while (s->nspare < want)
		if (spare_batch(x, s) < 0)
			return -1;
	return 0;
}

/* A node for endpoint s, from its spares or a new batch. */
static uint32_t node_take(struct ig_prefix_index *x, struct server *s)
{
	if (s->spare == NIL && spare_batch(x, s) < 0)
		return NIL;
	uint32_t i = s->spare;
	s->spare = node_at(x, i)->older;
	s->nspare--;
	return i;
}

/* Gives node i (unlinked) back to endpoint s's spares. */
static void spare_put(struct ig_prefix_index *x, struct server *s, uint32_t i)
{
	node_at(x, i)->older = s->spare;
	s->spare = i;
	s->nspare++;
}

static void lru_unlink(struct node *nodes, struct server *s, uint32_t i)
{
	struct node *nd = &nodes[i];
	if (nd->newer != NIL)
		nodes[nd->newer].older = nd->older;
	else
		s->newest = nd->older;
	if (nd->older != NIL)
		nodes[nd->older].newer = nd->newer;
	else
		s->oldest = nd->newer;
}

static void lru_push_newest(struct node *nodes, struct server *s, uint32_t i)
{
	struct node *nd = &nodes[i];
	nd->newer = NIL;
	nd->older = s->newest;
	if (s->newest != NIL)
		nodes[s->newest].newer = i;
	s->newest = i;
	if (s->oldest == NIL)
		s->oldest = i;
}

/* ---- linking ------------------------------------------------------------------ */

/* Locks the line of mixed hash m in the current table; *word is that table. */
static struct line *line_lock(struct ig_prefix_index *x, uint64_t m, uintptr_t *word)
{
	unsigned spins = 0;
	for (;;) {
		*word = atomic_load_explicit(&x->table, memory_order_acquire);
		struct line *ln = line_of(*word, m);
		if (try_lock(&ln->seq))
			return ln;
		backoff(&spins);
	}
}

/* Takes every line of the table `word` in order. The first grower to take
 * line 0 is the only one: a second finds line 0 held for good and leaves
 * when the table changes. */
static bool lock_all(struct ig_prefix_index *x, uintptr_t word)
{
	struct table *t = table_of(word);
	size_t n = (size_t)1 << t->log;
	for (size_t l = 0; l < n; l++) {
		unsigned spins = 0;
		while (!try_lock(&t->lines[l].seq)) {
			if (atomic_load_explicit(&x->table, memory_order_acquire) != word) {
				while (l-- > 0)
					bump(&t->lines[l].seq);
				return false;
			}
			backoff(&spins);
		}
	}
	return true;
}

/* Doubles the table `word`, unless another commit already did. On
 * allocation failure the chains just grow longer. */
static void grow(struct ig_prefix_index *x, uintptr_t word)
{
	struct table *t = table_of(word);
	if (!lock_all(x, word))
		return;
	struct table *nt = table_new(t->log + 1);
	if (!nt) {
		for (size_t l = 0; l < (size_t)1 << t->log; l++)
			bump(&t->lines[l].seq);
		return;
	}
	uintptr_t nword = (uintptr_t)nt | nt->log;
	for (size_t l = 0; l < (size_t)1 << t->log; l++)
		for (unsigned h = 0; h < LINE_HEADS; h++) {
			uint32_t i =
			    atomic_load_explicit(&t->lines[l].head[h], memory_order_relaxed);
			while (i != NIL) {
				struct node *nd = node_at(x, i);
				uint32_t next =
				    atomic_load_explicit(&nd->bnext, memory_order_relaxed);
				uint64_t m = mix(hash_of(nd));
				struct line *nl = line_of(nword, m);
				_Atomic uint32_t *head = &nl->head[head_of(m)];
				atomic_store_explicit(
				    &nd->bnext, atomic_load_explicit(head, memory_order_relaxed),
				    memory_order_release);
				atomic_store_explicit(head, i, memory_order_relaxed);
				atomic_store_explicit(
				    &nl->live,
				    atomic_load_explicit(&nl->live, memory_order_relaxed) + 1,
				    memory_order_relaxed);
				i = next;
			}
		}
	nt->older = t;
	/* The old lines stay held: whoever still reads them starts over, and
	 * reloads the table. */
	atomic_store_explicit(&x->table, nword, memory_order_release);
}

/* Links node i under `hash`; the table grows first when the index has
 * handed out more nodes than 3/8 of its buckets. */
static void link_node(struct ig_prefix_index *x, uint32_t i, uint32_t slot, uint64_t hash,
		      struct spot sp)
{
	struct node *nd = node_at(x, i);
	bool grown = false;
	for (;;) {
		uintptr_t word;
		struct line *ln = line_lock(x, sp.m, &word);
		uint64_t buckets = ((uint64_t)1 << (word & 63)) * LINE_HEADS;
		uint64_t nodes = atomic_load_explicit(&x->next_node, memory_order_relaxed);
		if (!grown && 8 * nodes > 3 * buckets) {
			bump(&ln->seq);
			grow(x, word);
			grown = true;
			continue;
		}
		atomic_store_explicit(&nd->hash, hash, memory_order_release);
		atomic_store_explicit(&nd->server, slot, memory_order_release);
		_Atomic uint32_t *head = &ln->head[sp.h];
		atomic_store_explicit(&nd->bnext, atomic_load_explicit(head, memory_order_relaxed),
				      memory_order_release);
		atomic_store_explicit(head, i, memory_order_release);
		atomic_store_explicit(&ln->live,
				      atomic_load_explicit(&ln->live, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		bump(&ln->seq);
		return;
	}
}

/* A reader standing on node i keeps following its old bnext, into the
 * rest of the chain it was in; the counter tells it to walk again. */
static void unlink_node(struct ig_prefix_index *x, uint32_t i)
{
	struct node *nd = node_at(x, i);
	uint64_t m = mix(atomic_load_explicit(&nd->hash, memory_order_relaxed));
	uintptr_t word;
	struct line *ln = line_lock(x, m, &word);
	_Atomic uint32_t *p = &ln->head[head_of(m)];
	uint32_t cur;
	while ((cur = atomic_load_explicit(p, memory_order_relaxed)) != i)
		p = &node_at(x, cur)->bnext;
	atomic_store_explicit(p, atomic_load_explicit(&nd->bnext, memory_order_relaxed),
			      memory_order_release);
	atomic_store_explicit(&nd->server, NIL, memory_order_release);
	atomic_store_explicit(&ln->live, atomic_load_explicit(&ln->live, memory_order_relaxed) - 1,
			      memory_order_relaxed);
	bump(&ln->seq);
}

/* ---- reading a chain --------------------------------------------------------------- */

/* A walk of a chain read a consistent one when the line's counter was even
 * before and unchanged after, and the walk reached the end. A walk that
 * meets more nodes than the line holds raced a writer and stops short. */
static inline bool walk_ok(const struct line *ln, uint32_t seq, bool ended)
{
	return !(seq & 1) && ended && atomic_load_explicit(&ln->seq, memory_order_relaxed) == seq;
}

/* The node of (hash, slot) in the chain of line ln, head h, or NIL. The
 * caller holds slot's lock, so a node of slot's that it meets holds what
 * it says, even in a walk that raced a writer; not finding one must be
 * checked. */
static inline uint32_t find(const struct node *nodes, const struct line *ln, unsigned h,
			    uint64_t hash, uint32_t slot, bool *ok)
{
	uint32_t seq = atomic_load_explicit(&ln->seq, memory_order_acquire);
	uint32_t limit = atomic_load_explicit(&ln->live, memory_order_relaxed) + 1;
	uint32_t i = atomic_load_explicit(&ln->head[h], memory_order_acquire);
	for (; i != NIL && limit; i = next_of(&nodes[i]), limit--)
		if (atomic_load_explicit(&nodes[i].server, memory_order_relaxed) == slot &&
		    hash_of(&nodes[i]) == hash) {
			*ok = true;
			return i;
		}
	*ok = walk_ok(ln, seq, i == NIL);
	return NIL;
}

__attribute__((noinline)) static uint32_t find_slow(const struct ig_prefix_index *x, uint64_t hash,
						    struct spot sp, uint32_t slot)
{
	unsigned spins = 0;
	bool ok;
	for (;;) {
		backoff(&spins);
		struct view v = view_load(x);
		uint32_t i = find(x->nodes, &v.lines[sp.m & v.mask], sp.h, hash, slot, &ok);
		if (ok)
			return i;
	}
}

static inline uint32_t own_find(const struct ig_prefix_index *x, struct view v, uint64_t hash,
				struct spot sp, uint32_t slot)
{
	bool ok;
	uint32_t i = find(x->nodes, &v.lines[sp.m & v.mask], sp.h, hash, slot, &ok);
	return ok ? i : find_slow(x, hash, sp, slot);
}

/* ---- commits ------------------------------------------------------------------ */

/* Records a pair endpoint s does not hold: in a new node, or in the node
 * of its oldest pair when it holds its capacity. *id: the node. */
static int add_new(struct ig_prefix_index *x, struct server *s, uint32_t slot, uint64_t hash,
		   struct spot sp, uint32_t *id)
{
	struct node *nodes = x->nodes;
	uint32_t i;
	if (s->count >= s->capacity) {
		i = s->oldest;
		lru_unlink(nodes, s, i);
		unlink_node(x, i);
		s->count--;
	} else if ((i = node_take(x, s)) == NIL) {
		return -1;
	}
	link_node(x, i, slot, hash, sp);
	lru_push_newest(nodes, s, i);
	s->count++;
	*id = i;
	return 0;
}

/* Node i is endpoint slot's pair for hash (the caller holds slot's lock,
 * so what the node says of slot's pairs holds). */
static inline bool owns(const struct ig_prefix_index *x, uint32_t i, uint32_t slot, uint64_t hash)
{
	if (i == NIL)
		return false;
	const struct node *nd = node_at(x, i);
	return atomic_load_explicit(&nd->server, memory_order_relaxed) == slot &&
	       hash_of(nd) == hash;
}

/* Whether the lookup's record of endpoint s for these hashes still holds.
 * What s holds of a chain is a prefix (ig_prefix_add), and only its own
 * commits change it: the caller's, which holds its lock. So the record
 * holds when its deepest node is still the endpoint's pair for that hash
 * and the next hash is still not the endpoint's: its line's counter did
 * not move since the lookup (a link there would have moved it), or a
 * walk finds none. */
static bool seen_holds(struct ig_prefix_index *x, struct view v, const struct server *s,
		       uint32_t slot, const uint64_t *hashes, size_t n,
		       const struct ig_prefix_seen *seen)
{
	if (!seen || seen->n != n || seen->key != s->key || seen->held > n)
		return false;
	size_t h = seen->held;
	if (h > 0 && !owns(x, seen->deep, slot, hashes[h - 1]))
		return false;
	if (h == n)
		return true;
	struct spot sp = spot_of(hashes[h]);
	return atomic_load_explicit(&line_of(seen->table, sp.m)->seq, memory_order_relaxed) ==
		   seen->next_seq ||
	       own_find(x, v, hashes[h], sp, slot) == NIL;
}

/* How many of hashes[0, n) endpoint s holds, and in *deep its node for
 * the last of them: from the lookup's record when it still holds, else a
 * binary search over the endpoint's pairs. */
static size_t held_prefix(struct ig_prefix_index *x, struct server *s, uint32_t slot,
			  const uint64_t *hashes, size_t n, const struct ig_prefix_seen *seen,
			  uint32_t *deep)
{
	struct view v = view_load(x);
	if (seen_holds(x, v, s, slot, hashes, n, seen)) {
		*deep = seen->held ? seen->deep : NIL;
		return seen->held;
	}
	size_t lo = 0, hi = n;
	uint32_t d = NIL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		uint32_t i = own_find(x, v, hashes[mid - 1], spot_of(hashes[mid - 1]), slot);
		if (i != NIL) {
			lo = mid;
			d = i;
		} else {
			hi = mid - 1;
		}
	}
	*deep = d;
	return lo;
}

/* Drops endpoint s's oldest pairs down to its capacity (which a commit
 * may have lowered), their nodes back to its spares. */
static void trim(struct ig_prefix_index *x, struct server *s)
{
	while (s->count > s->capacity) {
		uint32_t i = s->oldest;
		lru_unlink(x->nodes, s, i);
		unlink_node(x, i);
		spare_put(x, s, i);
		s->count--;
	}
}

/* A commit: the pairs the endpoint lacks are linked, the last block
 * first, then the ones it holds are refreshed from the deepest, so that
 * every block ends newer than the blocks after it. Then the endpoint's
 * pairs stay prefix-closed through any eviction: a block is evicted only
 * after every block that follows it in any chain the endpoint holds.
 *
 * The held nodes are found from the deepest by their parent links, each
 * checked (a node this commit evicted, when the capacity is below n, has
 * changed hash) and looked up when it fails; one the endpoint lacks after
 * all is linked anew, which only a chain that breaks the contract of
 * ig_prefix_add could cause, or this commit's own evictions. */
/* A commit's nodes, one per hash: the thread's, grown with the prompts. */
static _Thread_local struct ig_scratch cur_mem;

int ig_prefix_add_capped(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n,
			 const struct ig_prefix_seen *seen, uint32_t capacity)
{
	uint32_t slot;
	int rc = 0;
	if (n == 0)
		return 0;
	if (n > IG_PREFIX_MAX_BLOCKS)
		n = IG_PREFIX_MAX_BLOCKS;
	uint32_t *cur = ig_scratch_get(&cur_mem, n * sizeof(*cur)), i;
	if (!cur)
		return -1;
	struct server *s = server_lock(x, key, &slot);
	if (!s)
		return -1;
	s->capacity = capacity ? capacity : x->capacity;
	trim(x, s);
	size_t held = held_prefix(x, s, slot, hashes, n, seen, &i);
	/* The nodes the new pairs need, before any is linked: a commit that
	 * ran out of memory half done would leave the endpoint holding a
	 * chain's tail without its head. */
	size_t room = s->capacity > s->count ? s->capacity - s->count : 0;
	if (spare_reserve(x, s, n - held < room ? n - held : room) < 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	/* The lines of the new pairs, asked for together. */
	struct view v = view_load(x);
	for (size_t j = held; j < n; j++)
		__builtin_prefetch(&v.lines[mix(hashes[j]) & v.mask], 1);
	for (size_t j = n; rc == 0 && j-- > held;)
		rc = add_new(x, s, slot, hashes[j], spot_of(hashes[j]), &cur[j]);
	size_t relinked = held;
	for (size_t j = held; rc == 0 && j-- > 0;) {
		if (!owns(x, i, slot, hashes[j]))
			i = own_find(x, view_load(x), hashes[j], spot_of(hashes[j]), slot);
		if (i != NIL) {
			lru_unlink(x->nodes, s, i);
			lru_push_newest(x->nodes, s, i);
		} else if ((rc = add_new(x, s, slot, hashes[j], spot_of(hashes[j]), &i)) < 0) {
			break; /* no node to follow */
		} else {
			relinked = j;
		}
		cur[j] = i;
		i = node_at(x, i)->parent;
	}
	/* Parent links of the nodes linked now. When the capacity is below n,
	 * this commit may have evicted some of them again: those are left. */
	bool evicted = s->capacity < n;
	if (rc == 0)
		for (size_t j = relinked; j < n; j++)
			if (!evicted || owns(x, cur[j], slot, hashes[j]))
				node_at(x, cur[j])->parent = j ? cur[j - 1] : NIL;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int ig_prefix_add_seen(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n,
		       const struct ig_prefix_seen *seen)
{
	return ig_prefix_add_capped(x, key, hashes, n, seen, 0);
}

int ig_prefix_add(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n)
{
	return ig_prefix_add_seen(x, key, hashes, n, NULL);
}

void ig_prefix_forget(struct ig_prefix_index *x, uint64_t key)
{
	pthread_mutex_lock(&x->servers_lock);
	uint32_t slot = server_find(x, key);
	if (slot == NIL)
		goto out;
	struct smap *m = atomic_load_explicit(&x->smap, memory_order_relaxed);
	uint32_t e = (uint32_t)mix(key) & m->mask;
	while (atomic_load_explicit(&m->e[e].slot, memory_order_relaxed) != slot + 1)
		e = (e + 1) & m->mask;
	bump(&x->map_seq);
	atomic_store_explicit(&m->e[e].slot, TOMB, memory_order_release);
	bump(&x->map_seq);
	struct server *s = server_at(x, slot);
	pthread_mutex_lock(&s->lock);
	while (s->oldest != NIL) {
		uint32_t i = s->oldest;
		lru_unlink(x->nodes, s, i);
		unlink_node(x, i);
		spare_put(x, s, i);
	}
	s->count = 0;
	s->used = false;
	pthread_mutex_unlock(&s->lock);
	s->next_free = x->free_slot;
	x->free_slot = slot;
out:
	pthread_mutex_unlock(&x->servers_lock);
}

/* ---- lookups ------------------------------------------------------------------- */

/* A lookup reads a few of the request's hashes, not all: each endpoint
 * holds a prefix of the chain (ig_prefix_add), so the holders of hash j
 * include the holders of every later hash, and an endpoint's count is one
 * more than the last position it holds. The lookup reads the first hash
 * and the last; between two positions it has read whose holders differ,
 * an endpoint's prefix ends, and it reads up to PROBES positions evenly
 * between them, all their lines asked for at once; again until every
 * such pair is adjacent. A prompt held the same by everyone costs two
 * reads; one whose holders change once in 64 blocks, 2 + 3 + 3 + 3.
 *
 * Holders are compared by set (their number and a sum of their mixed
 * slots), not by number alone: while other endpoints' commits change
 * the positions read, an endpoint that nobody else writes is still
 * counted exactly, because a pair of reads that differ in it is always
 * refined. Each read is checked by its line's counter (before
 * and after), and records what the commit needs: see ig_prefix_seen. */
#define PROBES 3

/* A slot's count in the current lookup: valid when gen is the lookup's,
 * which spares clearing the counts of every slot at each lookup. */
struct stamp {
	uint32_t gen, blocks;
};

/* A hash the lookup read: its position, its line's counter, and its
 * holders: nodes[first, first + count) of the record, with their slots. */
struct probe {
	uint32_t pos, seq, first, count;
	uint64_t sig; /* sum of mix(slot + 1) over the holders */
};

/* Probes are numbered in 16 bits (the order of a lookup's probes). */
_Static_assert(IG_PREFIX_MAX_BLOCKS <= 65536, "probe numbers fit in 16 bits");

struct ig_prefix_walk {
	uintptr_t table; /* the table word the lookup read */
	size_t n;	 /* hashes looked up */
	size_t nprobes;
	/* Room for cap_blocks of each (a lookup reads a position once at
	 * most, so n is enough): the probes, their order by position, and a
	 * round's positions, their spots and the order merged. Scratch
	 * memory of the thread's, grown when it meets a longer prompt. */
	struct probe *probes;
	uint16_t *order;
	uint32_t *pos;
	struct spot *sp;
	uint16_t *merged;
	size_t cap_blocks;
	uint32_t *nodes, *slots;
	size_t nnodes, capnodes;
	uint32_t *touched; /* the slots counted */
	size_t ntouched;
	struct stamp *by_slot; /* cap_slots long */
	size_t cap_slots;
	uint32_t gen;
	struct ig_prefix_hit *hits;
};

static _Thread_local struct ig_prefix_walk thread_walk;
static _Thread_local struct ig_scratch nodes_mem, hslots_mem, slots_mem, touched_mem, hits_mem;
static _Thread_local struct ig_scratch probes_mem, order_mem, pos_mem, sp_mem, merged_mem;

/* Room for lookups of nhashes hashes. */
static int walk_reserve_blocks(struct ig_prefix_walk *w, size_t nhashes)
{
	if (nhashes <= w->cap_blocks)
		return 0;
	w->probes = ig_scratch_get(&probes_mem, nhashes * sizeof(*w->probes));
	w->order = ig_scratch_get(&order_mem, nhashes * sizeof(*w->order));
	w->pos = ig_scratch_get(&pos_mem, nhashes * sizeof(*w->pos));
	w->sp = ig_scratch_get(&sp_mem, nhashes * sizeof(*w->sp));
	w->merged = ig_scratch_get(&merged_mem, nhashes * sizeof(*w->merged));
	if (!w->probes || !w->order || !w->pos || !w->sp || !w->merged) {
		w->cap_blocks = 0;
		return -1;
	}
	w->cap_blocks = nhashes;
	return 0;
}

/* Room for lookups of nhashes hashes among n endpoints. */
static int walk_reserve(struct ig_prefix_walk *w, size_t n, size_t nhashes)
{
	if (walk_reserve_blocks(w, nhashes) < 0)
		return -1;
	if (n > w->cap_slots) {
		struct stamp *st = ig_scratch_get(&slots_mem, n * sizeof(*st));
		if (!st)
			return -1;
		memset(st, 0, n * sizeof(*st));
		w->by_slot = st;
		w->cap_slots = n;
		w->gen = 0;
	}
	w->touched = ig_scratch_get(&touched_mem, n * sizeof(*w->touched));
	w->hits = ig_scratch_get(&hits_mem, n * sizeof(*w->hits));
	if (!w->nodes) {
		w->capnodes = 1024;
		w->nodes = ig_scratch_get(&nodes_mem, w->capnodes * sizeof(*w->nodes));
		w->slots = ig_scratch_get(&hslots_mem, w->capnodes * sizeof(*w->slots));
	}
	return w->touched && w->hits && w->nodes && w->slots ? 0 : -1;
}

#define RACED SIZE_MAX
#define FULL (SIZE_MAX - 1)

/* Reads the holders of hashes[pos] (line ln, head h) into the record; a
 * slot at or past nslots (an endpoint that arrived during the lookup) is
 * left out. 0, RACED when the walk raced a commit, FULL when the record
 * has no room. */
static inline size_t probe(const struct ig_prefix_index *x, const struct line *ln, unsigned h,
			   uint64_t hash, uint32_t pos, uint32_t nslots, struct ig_prefix_walk *w)
{
	const struct node *nodes = x->nodes;
	uint32_t seq = atomic_load_explicit(&ln->seq, memory_order_acquire);
	uint32_t limit = atomic_load_explicit(&ln->live, memory_order_relaxed) + 1;
	uint32_t i = atomic_load_explicit(&ln->head[h], memory_order_acquire);
	size_t first = w->nnodes, k = first;
	uint64_t sig = 0;
	for (; i != NIL && limit; i = next_of(&nodes[i]), limit--) {
		if (hash_of(&nodes[i]) != hash)
			continue;
		uint32_t slot = atomic_load_explicit(&nodes[i].server, memory_order_relaxed);
		if (slot >= nslots)
			continue;
		if (k == w->capnodes)
			return FULL;
		w->nodes[k] = i;
		w->slots[k++] = slot;
		sig += mix(slot + 1);
	}
	if (!walk_ok(ln, seq, i == NIL))
		return RACED;
	w->probes[w->nprobes++] =
	    (struct probe){pos, seq, (uint32_t)first, (uint32_t)(k - first), sig};
	w->nnodes = k;
	return 0;
}

static inline bool same_holders(const struct probe *a, const struct probe *b)
{
	return a->count == b->count && a->sig == b->sig;
}

/* Reads the positions pos[0, np) (ascending), all their lines and first
 * nodes asked for before any is walked, and merges them into the order. */
static size_t probe_round(const struct ig_prefix_index *x, struct view v, const uint64_t *hashes,
			  const uint32_t *pos, size_t np, uint32_t nslots, struct ig_prefix_walk *w)
{
	/* The lines are scattered over the table; asking for all of them
	 * first lets the memory system fetch them in parallel instead of one
	 * miss after another, then the same for the first nodes. These reads
	 * skip the counters: they are hints. No branch on the heads: a branch
	 * on a value still in flight from memory, mispredicted, would hold
	 * the next loads back until it arrives, and the misses would follow
	 * one another again. An empty bucket prefetches node 0. */
	struct spot *sp = w->sp;
	for (size_t k = 0; k < np; k++) {
		sp[k] = spot_of(hashes[pos[k]]);
		__builtin_prefetch(&v.lines[sp[k].m & v.mask]);
	}
	for (size_t k = 0; k < np; k++) {
		uint32_t i = atomic_load_explicit(&v.lines[sp[k].m & v.mask].head[sp[k].h],
						  memory_order_acquire);
		uint32_t keep = 0u - (uint32_t)(i != NIL);
		__builtin_prefetch(&x->nodes[i & keep]);
	}
	size_t old = w->nprobes;
	for (size_t k = 0; k < np; k++) {
		size_t r = probe(x, &v.lines[sp[k].m & v.mask], sp[k].h, hashes[pos[k]], pos[k],
				 nslots, w);
		if (r != 0)
			return r;
	}
	/* Merge: the order so far and the new probes, both by position. */
	uint16_t *merged = w->merged;
	size_t a = 0, b = old, m = 0;
	while (a < old || b < w->nprobes) {
		if (b == w->nprobes || (a < old && w->probes[w->order[a]].pos < w->probes[b].pos))
			merged[m++] = w->order[a++];
		else
			merged[m++] = (uint16_t)b++;
	}
	memcpy(w->order, merged, m * sizeof(merged[0]));
	return 0;
}

/* The search proper, into the record. 0, RACED or FULL. */
static size_t search(const struct ig_prefix_index *x, const uint64_t *hashes, size_t n,
		     uint32_t nslots, struct ig_prefix_walk *w)
{
	uintptr_t word = atomic_load_explicit(&x->table, memory_order_acquire);
	struct view v = {table_of(word)->lines, ((uint64_t)1 << (word & 63)) - 1};
	w->table = word;
	w->n = n;
	w->nprobes = 0;
	w->nnodes = 0;
	uint32_t *pos = w->pos;
	size_t np = 0;
	pos[np++] = 0;
	if (n > 1)
		pos[np++] = (uint32_t)n - 1;
	for (;;) {
		size_t r = probe_round(x, v, hashes, pos, np, nslots, w);
		if (r != 0)
			return r;
		np = 0;
		for (size_t k = 0; k + 1 < w->nprobes; k++) {
			const struct probe *a = &w->probes[w->order[k]];
			const struct probe *b = &w->probes[w->order[k + 1]];
			uint32_t gap = b->pos - a->pos;
			if (gap < 2 || same_holders(a, b))
				continue;
			if (gap - 1 <= PROBES) {
				for (uint32_t p = a->pos + 1; p < b->pos; p++)
					pos[np++] = p;
			} else {
				for (uint32_t i = 1; i <= PROBES; i++)
					pos[np++] = a->pos + gap * i / (PROBES + 1);
			}
		}
		if (np == 0)
			return 0;
	}
}

/* Each endpoint met counts one more than the last position it was met
 * at; the return is the longest count (the first position nobody holds). */
static size_t tally(const struct ig_prefix_index *x, struct ig_prefix_walk *w)
{
	if (++w->gen == 0) {
		memset(w->by_slot, 0, w->cap_slots * sizeof(*w->by_slot));
		w->gen = 1;
	}
	size_t walked = 0;
	w->ntouched = 0;
	for (size_t k = w->nprobes; k-- > 0;) {
		const struct probe *p = &w->probes[w->order[k]];
		if (p->count && walked == 0)
			walked = p->pos + 1;
		for (uint32_t j = p->first; j < p->first + p->count; j++) {
			struct stamp *st = &w->by_slot[w->slots[j]];
			if (st->gen == w->gen)
				continue;
			*st = (struct stamp){w->gen, p->pos + 1};
			uint32_t slot = w->slots[j];
			w->hits[w->ntouched++] = (struct ig_prefix_hit){
			    atomic_load_explicit(&server_at(x, slot)->pub_key,
						 memory_order_acquire),
			    p->pos + 1};
		}
	}
	return walked;
}

size_t ig_prefix_lookup(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
			const struct ig_prefix_hit **hits, size_t *nhits,
			const struct ig_prefix_walk **record)
{
	struct ig_prefix_walk *w = &thread_walk;
	size_t walked = 0;
	unsigned spins = 0;
	*hits = NULL;
	*nhits = 0;
	if (record)
		*record = NULL;
	/* Endpoints that arrive during the lookup are left out. */
	uint32_t n = atomic_load_explicit(&x->nservers, memory_order_acquire);
	if (nhashes > IG_PREFIX_MAX_BLOCKS)
		nhashes = IG_PREFIX_MAX_BLOCKS;
	if (n == 0 || nhashes == 0 || walk_reserve(w, n, nhashes) < 0)
		return 0;
	/* A read that raced a commit, or an endpoint forgotten and its slot
	 * given to another while this lookup ran, would count wrong: then the
	 * lookup starts over. Commits change a line only to add or drop a
	 * pair, so this is rare. */
	for (;; backoff(&spins)) {
		uint32_t seq = atomic_load_explicit(&x->map_seq, memory_order_acquire);
		if (seq & 1)
			continue;
		size_t r = search(x, hashes, nhashes, n, w);
		if (r == FULL) {
			size_t cap = 2 * w->capnodes;
			uint32_t *m = ig_scratch_get(&nodes_mem, cap * sizeof(*m));
			uint32_t *sl = ig_scratch_get(&hslots_mem, cap * sizeof(*sl));
			if (!m || !sl)
				return 0;
			w->nodes = m;
			w->slots = sl;
			w->capnodes = cap;
			spins = 0;
			continue;
		}
		if (r == RACED)
			continue;
		walked = tally(x, w);
		if (atomic_load_explicit(&x->map_seq, memory_order_relaxed) == seq)
			break;
	}
	*hits = w->hits;
	*nhits = w->ntouched;
	if (record)
		*record = w;
	return walked;
}

size_t ig_prefix_match(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		       const uint64_t *keys, size_t nkeys, uint32_t *counts)
{
	const struct ig_prefix_hit *hits;
	size_t nhits;
	size_t walked = ig_prefix_lookup(x, hashes, nhashes, &hits, &nhits, NULL);
	memset(counts, 0, nkeys * sizeof(*counts));
	/* An endpoint listed twice counts once, the first time. */
	for (size_t h = 0; h < nhits; h++)
		for (size_t c = 0; c < nkeys; c++)
			if (keys[c] == hits[h].key) {
				counts[c] = hits[h].blocks;
				break;
			}
	return walked;
}

/* The endpoint's deepest node the lookup met, and the counter of the line
 * of the position after it (always read: the holders differ there). */
void ig_prefix_seen(struct ig_prefix_index *x, const struct ig_prefix_walk *w, uint64_t key,
		    struct ig_prefix_seen *out)
{
	out->n = 0;
	out->key = key;
	if (!w || w->n == 0)
		return;
	uint32_t slot = server_find(x, key);
	uint32_t held = 0, deep = NIL;
	for (size_t k = 0; slot != NIL && k < w->nprobes; k++) {
		const struct probe *p = &w->probes[k];
		if (p->pos + 1 <= held)
			continue;
		for (uint32_t j = p->first; j < p->first + p->count; j++)
			if (w->slots[j] == slot) {
				held = p->pos + 1;
				deep = w->nodes[j];
				break;
			}
	}
	if (held < w->n) {
		size_t k = 0;
		while (k < w->nprobes && w->probes[k].pos != held)
			k++;
		if (k == w->nprobes)
			return; /* not read (the lookup raced): the commit looks */
		out->next_seq = w->probes[k].seq;
	}
	out->table = w->table;
	out->n = w->n;
	out->held = held;
	out->deep = deep;
}

void ig_prefix_limit_nodes(struct ig_prefix_index *x, uint64_t n)
{
	if (n < x->node_limit)
		x->node_limit = n;
}

void ig_prefix_size(struct ig_prefix_index *x, uint64_t *entries, uint64_t *bytes)
{
	uint64_t e = 0, b = sizeof(*x);
	uintptr_t word = atomic_load_explicit(&x->table, memory_order_acquire);
	const struct table *t = table_of(word);
	for (size_t l = 0; l < (size_t)1 << t->log; l++)
		e += atomic_load_explicit(&t->lines[l].live, memory_order_relaxed);
	for (; t; t = t->older)
		b += sizeof(*t) + ((uint64_t)1 << t->log) * sizeof(t->lines[0]);
	/* Nodes handed out, not the reservation: its pages are touched only
	 * as ids are used. */
	uint64_t nodes = atomic_load_explicit(&x->next_node, memory_order_relaxed);
	b += (nodes < x->max_nodes ? nodes : x->max_nodes) * sizeof(struct node);
	for (unsigned k = 0; k < NSSEGS; k++)
		if (atomic_load_explicit(&x->ssegs[k], memory_order_relaxed))
			b += sseg_len(k) * sizeof(struct server);
	const struct smap *m = atomic_load_explicit(&x->smap, memory_order_acquire);
	for (; m; m = m->older)
		b += sizeof(*m) + ((uint64_t)m->mask + 1) * sizeof(m->e[0]);
	*entries = e;
	*bytes = b;
}
