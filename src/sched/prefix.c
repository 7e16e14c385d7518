/* The prefix-cache index. One node per (hash, endpoint) pair, kept in two
 * lists at once: the chain of its hash bucket (so a lookup finds every
 * holder of a hash by walking one bucket) and its endpoint's LRU (so the
 * oldest pair of an endpoint can be dropped in O(1)). Nodes live in one
 * array and link by index, which halves their size and makes the whole
 * index a handful of allocations. */
#include "sched/prefix.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NIL UINT32_MAX
/* Candidate lists up to this size are matched without the heap. */
#define LOCAL_SLOTS 2048

struct node {
	uint64_t hash;
	uint32_t server;
	uint32_t bnext;          /* next in the bucket chain */
	uint32_t newer, older;   /* the endpoint's LRU; next free node in `older` */
};

struct server {
	uint64_t key;
	uint32_t newest, oldest;
	uint32_t count;
	bool used;
};

struct ig_prefix_index {
	pthread_rwlock_t lock;
	uint32_t capacity;
	struct node *nodes;
	uint32_t nnodes, capnodes; /* slots handed out, and allocated */
	uint32_t free;             /* free list through `older` */
	uint32_t live;
	uint32_t *buckets; /* heads, NIL when empty */
	uint32_t nbuckets; /* power of two */
	struct server *servers;
	uint32_t nservers, capservers;
	uint32_t freeserver; /* a slot below nservers to reuse, or NIL */
	uint32_t *smap;      /* key -> server slot + 1 (0: empty); open addressing */
	uint32_t nsmap;      /* power of two, >= 2 * servers */
};

/* ---- the hash chain ------------------------------------------------------------ */

/* XXH64 (its published specification), split in two so the chain costs
 * less than one full hash per block. For an input block || le64(prev)
 * whose 32-byte stripes all lie inside the block, the stripes and their
 * merge depend on the block alone; only the tail (the block's last
 * len % 32 bytes, then the 8 bytes of prev) and the final avalanche depend
 * on the previous hash. Written inline here, the independent part of
 * block i+1 runs while the serial tail of block i waits on its
 * multiplications, which the library call cannot offer. */
#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Unaligned little-endian loads; memcpy compiles to a single load. */
static inline uint64_t le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint32_t le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t in)
{
	return rotl64(acc + in * P2, 31) * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v)
{
	return (acc ^ xround(0, v)) * P1 + P4;
}

/* The accumulator after the `stripes` 32-byte stripes of p (seed 0),
 * before the length is added. */
static inline uint64_t xxh64_stripes(const unsigned char *p, size_t stripes)
{
	if (stripes == 0)
		return P5;
	uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
	for (size_t s = 0; s < stripes; s++, p += 32) {
		v1 = xround(v1, le64(p));
		v2 = xround(v2, le64(p + 8));
		v3 = xround(v3, le64(p + 16));
		v4 = xround(v4, le64(p + 24));
	}
	uint64_t h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
	return xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
}

/* The tail: len < 32 bytes after the stripes, then the avalanche. */
static inline uint64_t xxh64_tail(uint64_t h, const unsigned char *p, size_t len)
{
	for (; len >= 8; len -= 8, p += 8)
		h = rotl64(h ^ xround(0, le64(p)), 27) * P1 + P4;
	if (len >= 4) {
		h = rotl64(h ^ (uint64_t)le32(p) * P1, 23) * P2 + P3;
		len -= 4;
		p += 4;
	}
	for (; len > 0; len--, p++)
		h = rotl64(h ^ *p * P5, 11) * P1;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

/* XXH64(block || le64(prev), 0) when len % 32 < 24, so that no stripe
 * reaches into prev. In the usual case (len % 32 == 0) the tail is prev
 * alone and is fed as a value: spelling it out in bytes and loading them
 * back would stall on store forwarding in the middle of the serial part.
 * Otherwise the block's remainder and prev go side by side in a buffer. */
static inline uint64_t chain_step(const unsigned char *block, size_t len, uint64_t prev)
{
	size_t body = len & ~(size_t)31, rest = len - body;
	uint64_t h = xxh64_stripes(block, body / 32) + (uint64_t)(len + 8);
	if (rest == 0) {
		h = rotl64(h ^ xround(0, prev), 27) * P1 + P4;
		return xxh64_tail(h, NULL, 0);
	}
	unsigned char tail[32];
	memcpy(tail, block + body, rest);
	for (int b = 0; b < 8; b++)
		tail[rest + (size_t)b] = (unsigned char)(prev >> (8 * b));
	return xxh64_tail(h, tail, rest + 8);
}

/* The general case, through the library's streaming state: no copy of
 * the block, and any block size. */
static uint64_t chain_step_stream(XXH64_state_t *st, const char *block, size_t len, uint64_t prev)
{
	unsigned char le[8];
	for (int b = 0; b < 8; b++)
		le[b] = (unsigned char)(prev >> (8 * b));
	XXH64_reset(st, 0);
	XXH64_update(st, block, len);
	XXH64_update(st, le, sizeof le);
	return XXH64_digest(st);
}

size_t ig_prefix_hashes(struct ig_str target_model, struct ig_str input, size_t block_bytes,
			size_t max_blocks, uint64_t *out)
{
	if (block_bytes == 0)
		return 0;
	size_t n = input.len / block_bytes;
	if (n > max_blocks)
		n = max_blocks;
	if (n > IG_PREFIX_MAX_BLOCKS)
		n = IG_PREFIX_MAX_BLOCKS;
	if (n == 0)
		return 0;
	uint64_t h = XXH64(target_model.ptr, target_model.len, 0);
	const unsigned char *in = (const unsigned char *)input.ptr;
	if (block_bytes % 32 < 24) {
		for (size_t i = 0; i < n; i++)
			out[i] = h = chain_step(in + i * block_bytes, block_bytes, h);
		return n;
	}
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return 0;
	for (size_t i = 0; i < n; i++)
		out[i] = h = chain_step_stream(st, input.ptr + i * block_bytes, block_bytes, h);
	XXH64_freeState(st);
	return n;
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

struct ig_prefix_index *ig_prefix_new(uint32_t capacity_per_server)
{
	struct ig_prefix_index *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* Lookups are many and commits few: without this a steady stream of
	 * readers could keep a commit waiting for ever. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&x->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	x->capacity = capacity_per_server ? capacity_per_server : 1;
	x->free = NIL;
	x->freeserver = NIL;
	return x;
}

void ig_prefix_free(struct ig_prefix_index *x)
{
	if (!x)
		return;
	pthread_rwlock_destroy(&x->lock);
	free(x->nodes);
	free(x->buckets);
	free(x->servers);
	free(x->smap);
	free(x);
}

/* ---- servers ---------------------------------------------------------------- */

static uint32_t server_find(const struct ig_prefix_index *x, uint64_t key)
{
	if (!x->nsmap)
		return NIL;
	for (uint32_t i = (uint32_t)mix(key) & (x->nsmap - 1);; i = (i + 1) & (x->nsmap - 1)) {
		uint32_t v = x->smap[i];
		if (v == 0)
			return NIL;
		if (x->servers[v - 1].key == key && x->servers[v - 1].used)
			return v - 1;
	}
}

static void smap_put(uint32_t *map, uint32_t size, uint64_t key, uint32_t slot)
{
	uint32_t i = (uint32_t)mix(key) & (size - 1);
	while (map[i])
		i = (i + 1) & (size - 1);
	map[i] = slot + 1;
}

/* Rebuilds the key map at a size for `want` servers (also how removal
 * works: forgetting is rare). */
static int smap_rebuild(struct ig_prefix_index *x, uint32_t want)
{
	uint32_t size = 16;
	while (size < 2 * want)
		size *= 2;
	uint32_t *map = calloc(size, sizeof(*map));
	if (!map)
		return -1;
	for (uint32_t s = 0; s < x->nservers; s++)
		if (x->servers[s].used)
			smap_put(map, size, x->servers[s].key, s);
	free(x->smap);
	x->smap = map;
	x->nsmap = size;
	return 0;
}

static uint32_t server_add(struct ig_prefix_index *x, uint64_t key)
{
	uint32_t slot = x->freeserver;
	if (slot == NIL) {
		if (x->nservers == IG_PREFIX_MAX_SERVERS)
			return NIL;
		if (x->nservers == x->capservers) {
			uint32_t cap = x->capservers ? x->capservers * 2 : 16;
			struct server *s = realloc(x->servers, cap * sizeof(*s));
			if (!s)
				return NIL;
			x->servers = s;
			x->capservers = cap;
		}
		if (2 * (x->nservers + 1) > x->nsmap && smap_rebuild(x, x->nservers + 1) < 0)
			return NIL;
		slot = x->nservers++;
	} else {
		x->freeserver = x->servers[slot].newest;
	}
	x->servers[slot] = (struct server){key, NIL, NIL, 0, true};
	smap_put(x->smap, x->nsmap, key, slot);
	return slot;
}

/* ---- nodes -------------------------------------------------------------------- */

static uint32_t *bucket_of(struct ig_prefix_index *x, uint64_t hash)
{
	return &x->buckets[mix(hash) & (x->nbuckets - 1)];
}

static int grow_buckets(struct ig_prefix_index *x)
{
	uint32_t n = x->nbuckets ? x->nbuckets * 2 : 1024;
	uint32_t *b = malloc(n * sizeof(*b));
	if (!b)
		return -1;
	memset(b, 0xff, n * sizeof(*b));
	free(x->buckets);
	x->buckets = b;
	x->nbuckets = n;
	/* Relink every live node: a node is live when its server is set. */
	for (uint32_t i = 0; i < x->nnodes; i++) {
		struct node *nd = &x->nodes[i];
		if (nd->server == NIL)
			continue;
		uint32_t *head = bucket_of(x, nd->hash);
		nd->bnext = *head;
		*head = i;
	}
	return 0;
}

static uint32_t node_alloc(struct ig_prefix_index *x)
{
	if (x->free != NIL) {
		uint32_t i = x->free;
		x->free = x->nodes[i].older;
		return i;
	}
	if (x->nnodes == x->capnodes) {
		if (x->capnodes >= UINT32_MAX / 2)
			return NIL;
		uint32_t cap = x->capnodes ? x->capnodes * 2 : 1024;
		struct node *n = realloc(x->nodes, (size_t)cap * sizeof(*n));
		if (!n)
			return NIL;
		x->nodes = n;
		x->capnodes = cap;
	}
	return x->nnodes++;
}

static void bucket_unlink(struct ig_prefix_index *x, uint32_t i)
{
	uint32_t *p = bucket_of(x, x->nodes[i].hash);
	while (*p != i)
		p = &x->nodes[*p].bnext;
	*p = x->nodes[i].bnext;
}

static void lru_unlink(struct ig_prefix_index *x, struct server *s, uint32_t i)
{
	struct node *nd = &x->nodes[i];
	if (nd->newer != NIL)
		x->nodes[nd->newer].older = nd->older;
	else
		s->newest = nd->older;
	if (nd->older != NIL)
		x->nodes[nd->older].newer = nd->newer;
	else
		s->oldest = nd->newer;
}

static void lru_push_newest(struct ig_prefix_index *x, struct server *s, uint32_t i)
{
	struct node *nd = &x->nodes[i];
	nd->newer = NIL;
	nd->older = s->newest;
	if (s->newest != NIL)
		x->nodes[s->newest].newer = i;
	s->newest = i;
	if (s->oldest == NIL)
		s->oldest = i;
}

static void node_release(struct ig_prefix_index *x, struct server *s, uint32_t i)
{
	bucket_unlink(x, i);
	lru_unlink(x, s, i);
	x->nodes[i].server = NIL;
	x->nodes[i].older = x->free;
	x->free = i;
	s->count--;
	x->live--;
}

static uint32_t node_find(struct ig_prefix_index *x, uint64_t hash, uint32_t server)
{
	for (uint32_t i = *bucket_of(x, hash); i != NIL; i = x->nodes[i].bnext)
		if (x->nodes[i].hash == hash && x->nodes[i].server == server)
			return i;
	return NIL;
}

/* The buckets of a request's hashes are scattered over the table; asking
 * for all of them first lets the memory system fetch them in parallel
 * instead of one miss after another, then the same for the first nodes. */
static void prefetch(const struct ig_prefix_index *x, const uint64_t *hashes, size_t n)
{
	for (size_t k = 0; k < n; k++)
		__builtin_prefetch(&x->buckets[mix(hashes[k]) & (x->nbuckets - 1)]);
	for (size_t k = 0; k < n; k++) {
		uint32_t i = x->buckets[mix(hashes[k]) & (x->nbuckets - 1)];
		if (i != NIL)
			__builtin_prefetch(&x->nodes[i]);
	}
}

static int add_one(struct ig_prefix_index *x, uint32_t slot, uint64_t hash)
{
	struct server *s = &x->servers[slot];
	if (x->nbuckets == 0 && grow_buckets(x) < 0)
		return -1;
	uint32_t i = node_find(x, hash, slot);
	if (i != NIL) {
		lru_unlink(x, s, i);
		lru_push_newest(x, s, i);
		return 0;
	}
	if (s->count >= x->capacity)
		node_release(x, s, s->oldest);
	if (x->live + 1 > x->nbuckets && grow_buckets(x) < 0)
		return -1;
	i = node_alloc(x);
	if (i == NIL)
		return -1;
	s = &x->servers[slot];
	x->nodes[i] = (struct node){.hash = hash, .server = slot};
	uint32_t *head = bucket_of(x, hash);
	x->nodes[i].bnext = *head;
	*head = i;
	lru_push_newest(x, s, i);
	s->count++;
	x->live++;
	return 0;
}

int ig_prefix_add(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n)
{
	int rc = 0;
	if (n == 0)
		return 0;
	pthread_rwlock_wrlock(&x->lock);
	uint32_t slot = server_find(x, key);
	if (slot == NIL)
		slot = server_add(x, key);
	if (slot == NIL)
		rc = -1;
	if (rc == 0 && x->nbuckets)
		prefetch(x, hashes, n);
	for (size_t k = 0; rc == 0 && k < n; k++)
		rc = add_one(x, slot, hashes[k]);
	pthread_rwlock_unlock(&x->lock);
	return rc;
}

void ig_prefix_forget(struct ig_prefix_index *x, uint64_t key)
{
	pthread_rwlock_wrlock(&x->lock);
	uint32_t slot = server_find(x, key);
	if (slot != NIL) {
		struct server *s = &x->servers[slot];
		while (s->oldest != NIL)
			node_release(x, s, s->oldest);
		s->used = false;
		/* Unused slots form a free list through `newest`. */
		s->newest = x->freeserver;
		x->freeserver = slot;
		/* Rebuilding at the same size cannot need more memory than the
		 * map already has, but calloc may still fail: then the stale
		 * entry stays, harmless since the slot is marked unused and
		 * server_find checks the key. */
		smap_rebuild(x, x->nservers);
	}
	pthread_rwlock_unlock(&x->lock);
}

/* ---- matching ------------------------------------------------------------------ */

/* A per-call map from server slot to candidate index, open addressing. */
struct local {
	uint32_t *slot; /* server slot + 1; 0 empty */
	uint32_t *cand;
	uint32_t mask;
};

static uint32_t local_get(const struct local *l, uint32_t slot)
{
	for (uint32_t i = (slot * 0x9e3779b1u) & l->mask;; i = (i + 1) & l->mask) {
		if (l->slot[i] == 0)
			return NIL;
		if (l->slot[i] == slot + 1)
			return l->cand[i];
	}
}

static void local_put(struct local *l, uint32_t slot, uint32_t cand)
{
	uint32_t i = (slot * 0x9e3779b1u) & l->mask;
	while (l->slot[i] != 0) {
		if (l->slot[i] == slot + 1)
			return; /* the same endpoint twice: the first one counts */
		i = (i + 1) & l->mask;
	}
	l->slot[i] = slot + 1;
	l->cand[i] = cand;
}

static size_t walk(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		   const struct local *l, uint32_t *counts)
{
	size_t k;
	prefetch(x, hashes, nhashes);
	for (k = 0; k < nhashes; k++) {
		bool held = false;
		for (uint32_t i = *bucket_of(x, hashes[k]); i != NIL; i = x->nodes[i].bnext) {
			if (x->nodes[i].hash != hashes[k])
				continue;
			held = true;
			uint32_t c = local_get(l, x->nodes[i].server);
			if (c != NIL)
				counts[c]++;
		}
		if (!held)
			break;
	}
	return k;
}

size_t ig_prefix_match(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		       const uint64_t *keys, size_t nkeys, uint32_t *counts)
{
	uint32_t stack_slot[LOCAL_SLOTS], stack_cand[LOCAL_SLOTS];
	struct local l = {stack_slot, stack_cand, 0};
	size_t size = 16, walked = 0;
	memset(counts, 0, nkeys * sizeof(*counts));
	while (size < 2 * nkeys)
		size *= 2;
	if (size > LOCAL_SLOTS) {
		l.slot = malloc(size * sizeof(uint32_t));
		l.cand = malloc(size * sizeof(uint32_t));
		if (!l.slot || !l.cand)
			goto out;
	}
	l.mask = (uint32_t)size - 1;
	memset(l.slot, 0, size * sizeof(uint32_t));
	pthread_rwlock_rdlock(&x->lock);
	if (x->live) {
		for (size_t c = 0; c < nkeys; c++) {
			uint32_t slot = server_find(x, keys[c]);
			if (slot != NIL)
				local_put(&l, slot, (uint32_t)c);
		}
		walked = walk(x, hashes, nhashes, &l, counts);
	}
	pthread_rwlock_unlock(&x->lock);
out:
	if (l.slot != stack_slot) {
		free(l.slot);
		free(l.cand);
	}
	return walked;
}

void ig_prefix_size(struct ig_prefix_index *x, uint64_t *entries, uint64_t *bytes)
{
	pthread_rwlock_rdlock(&x->lock);
	*entries = x->live;
	*bytes = sizeof(*x) + (uint64_t)x->capnodes * sizeof(struct node) +
		 (uint64_t)x->nbuckets * sizeof(uint32_t) +
		 (uint64_t)x->capservers * sizeof(struct server) + (uint64_t)x->nsmap * sizeof(uint32_t);
	pthread_rwlock_unlock(&x->lock);
}
