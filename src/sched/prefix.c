/* The prefix-cache index. One entry per (hash, endpoint) pair, in a single
 * open-addressed table keyed by the hash alone, with linear probing: all
 * holders of a hash therefore sit in the run of slots that starts at the
 * hash's home, so a lookup reads one or two adjacent cache lines per hash
 * instead of following a bucket chain. Each entry is also in its
 * endpoint's LRU list, linked by slot number, so the oldest pair of an
 * endpoint is dropped in O(1). Deletion shifts later entries of the run
 * back (no tombstones) and fixes their LRU neighbours' links. */
#include "sched/prefix.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NIL UINT32_MAX
/* Candidate lists up to this size are matched without the heap. */
#define LOCAL_SLOTS 2048
/* The table is kept at most half full: a hash's run then ends, on
 * average, within a few slots of its home. */
#define MIN_SLOTS 1024

/* A slot is 16 bytes so a run of a few slots stays in one cache line;
 * the LRU links, which only commits touch, live in a parallel array. */
struct slot {
	uint64_t hash;
	uint32_t server; /* NIL: the slot is empty */
};

struct link {
	uint32_t newer, older; /* the endpoint's LRU, by slot number */
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
	struct slot *slots;
	struct link *links;
	uint32_t nslots; /* power of two, 0 before the first add */
	uint32_t live;
	struct server *servers;
	uint32_t nservers, capservers;
	uint32_t freeserver; /* a slot below nservers to reuse, or NIL */
	uint32_t *smap;      /* key -> server slot + 1 (0: empty); open addressing */
	uint32_t nsmap;      /* power of two, >= 2 * servers */
};

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

/* The table slot where a hash's run starts. */
static uint32_t home(const struct ig_prefix_index *x, uint64_t hash)
{
	return (uint32_t)mix(hash) & (x->nslots - 1);
}

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

/* The chain of a request. With an index (read-locked, not empty), each
 * hash's home slot is prefetched as soon as the hash is known: hashing is
 * bound by multiplications, so the table's cache misses are served while
 * it runs instead of stalling the walk that follows. */
static size_t chain(const struct ig_prefix_index *x, struct ig_str target_model,
		    struct ig_str input, size_t block_bytes, size_t max_blocks, uint64_t *out)
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
		for (size_t i = 0; i < n; i++) {
			out[i] = h = chain_step(in + i * block_bytes, block_bytes, h);
			if (x)
				__builtin_prefetch(&x->slots[home(x, h)]);
		}
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

size_t ig_prefix_hashes(struct ig_str target_model, struct ig_str input, size_t block_bytes,
			size_t max_blocks, uint64_t *out)
{
	return chain(NULL, target_model, input, block_bytes, max_blocks, out);
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
	x->freeserver = NIL;
	return x;
}

void ig_prefix_free(struct ig_prefix_index *x)
{
	if (!x)
		return;
	pthread_rwlock_destroy(&x->lock);
	free(x->slots);
	free(x->links);
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

/* ---- the table ---------------------------------------------------------------- */

static uint32_t next_slot(const struct ig_prefix_index *x, uint32_t i)
{
	return (i + 1) & (x->nslots - 1);
}

static void lru_unlink(struct ig_prefix_index *x, uint32_t i)
{
	struct link *e = &x->links[i];
	struct server *s = &x->servers[x->slots[i].server];
	if (e->newer != NIL)
		x->links[e->newer].older = e->older;
	else
		s->newest = e->older;
	if (e->older != NIL)
		x->links[e->older].newer = e->newer;
	else
		s->oldest = e->newer;
}

static void lru_push_newest(struct ig_prefix_index *x, uint32_t i)
{
	struct link *e = &x->links[i];
	struct server *s = &x->servers[x->slots[i].server];
	e->newer = NIL;
	e->older = s->newest;
	if (s->newest != NIL)
		x->links[s->newest].newer = i;
	s->newest = i;
	if (s->oldest == NIL)
		s->oldest = i;
}

/* Puts (hash, server) in the first empty slot of the hash's run, as the
 * server's newest. The caller has made room. */
static void place(struct ig_prefix_index *x, uint64_t hash, uint32_t server)
{
	uint32_t i = home(x, hash);
	while (x->slots[i].server != NIL)
		i = next_slot(x, i);
	x->slots[i] = (struct slot){.hash = hash, .server = server};
	lru_push_newest(x, i);
}

/* Doubles the table. Every server's list is replayed oldest first into
 * the new table, which rebuilds the LRU links for the new slot numbers. */
static int grow(struct ig_prefix_index *x)
{
	uint32_t n = x->nslots ? x->nslots * 2 : MIN_SLOTS;
	if (x->nslots >= UINT32_MAX / 4)
		return -1;
	struct slot *t = malloc((size_t)n * sizeof(*t));
	struct link *lk = malloc((size_t)n * sizeof(*lk));
	if (!t || !lk) {
		free(t);
		free(lk);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		t[i].server = NIL;
	struct slot *old = x->slots;
	struct link *oldlk = x->links;
	x->slots = t;
	x->links = lk;
	x->nslots = n;
	for (uint32_t s = 0; s < x->nservers; s++) {
		struct server *sv = &x->servers[s];
		if (!sv->used)
			continue; /* `newest` links the free list */
		uint32_t i = sv->oldest;
		sv->newest = sv->oldest = NIL;
		for (; i != NIL; i = oldlk[i].newer)
			place(x, old[i].hash, s);
	}
	free(old);
	free(oldlk);
	return 0;
}

/* Moves the entry in slot `from` to the empty slot `to`, telling its LRU
 * neighbours (or its server) where it went. */
static void move_slot(struct ig_prefix_index *x, uint32_t from, uint32_t to)
{
	x->slots[to] = x->slots[from];
	x->links[to] = x->links[from];
	x->slots[from].server = NIL;
	struct link *e = &x->links[to];
	struct server *s = &x->servers[x->slots[to].server];
	if (e->newer != NIL)
		x->links[e->newer].older = to;
	else
		s->newest = to;
	if (e->older != NIL)
		x->links[e->older].newer = to;
	else
		s->oldest = to;
}

/* Empties slot i, then closes the gap: a later entry of the run moves back
 * into it unless its home lies cyclically after the gap (it would then be
 * found before its home), and so on to the end of the run. */
static void remove_slot(struct ig_prefix_index *x, uint32_t i)
{
	lru_unlink(x, i);
	x->servers[x->slots[i].server].count--;
	x->slots[i].server = NIL;
	x->live--;
	for (uint32_t j = next_slot(x, i); x->slots[j].server != NIL; j = next_slot(x, j)) {
		uint32_t k = home(x, x->slots[j].hash);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		move_slot(x, j, i);
		i = j;
	}
}

/* The slot of (hash, server), or NIL. */
static uint32_t find(const struct ig_prefix_index *x, uint64_t hash, uint32_t server)
{
	for (uint32_t i = home(x, hash); x->slots[i].server != NIL; i = next_slot(x, i))
		if (x->slots[i].hash == hash && x->slots[i].server == server)
			return i;
	return NIL;
}

/* The runs of a request's hashes are scattered over the table; asking for
 * all their first lines up front lets the memory system fetch them in
 * parallel instead of one miss after another. */
static void prefetch(const struct ig_prefix_index *x, const uint64_t *hashes, size_t n)
{
	for (size_t k = 0; k < n; k++)
		__builtin_prefetch(&x->slots[home(x, hashes[k])]);
}

static int add_one(struct ig_prefix_index *x, uint32_t server, uint64_t hash)
{
	if (x->nslots == 0 && grow(x) < 0)
		return -1;
	uint32_t i = find(x, hash, server);
	if (i != NIL) {
		lru_unlink(x, i);
		lru_push_newest(x, i);
		return 0;
	}
	if (x->servers[server].count >= x->capacity)
		remove_slot(x, x->servers[server].oldest);
	if (2 * ((uint64_t)x->live + 1) > x->nslots && grow(x) < 0)
		return -1;
	place(x, hash, server);
	x->servers[server].count++;
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
	if (rc == 0 && x->nslots)
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
			remove_slot(x, s->oldest);
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

static size_t walk(const struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		   const struct local *l, uint32_t *counts)
{
	size_t k;
	prefetch(x, hashes, nhashes);
	for (k = 0; k < nhashes; k++) {
		bool held = false;
		uint64_t h = hashes[k];
		for (uint32_t i = home(x, h); x->slots[i].server != NIL; i = next_slot(x, i)) {
			if (x->slots[i].hash != h)
				continue;
			held = true;
			uint32_t c = local_get(l, x->slots[i].server);
			if (c != NIL)
				counts[c]++;
		}
		if (!held)
			break;
	}
	return k;
}

/* What to hash before matching, for ig_prefix_lookup(). */
struct chain_args {
	struct ig_str target_model, input;
	size_t block_bytes, max_blocks;
	uint64_t *out;
	size_t n;
};

static void chain_into(const struct ig_prefix_index *x, struct chain_args *ca)
{
	ca->n = chain(x, ca->target_model, ca->input, ca->block_bytes, ca->max_blocks, ca->out);
}

/* Match counting under one read lock. With `ca`, the request is hashed
 * first under the same lock and its hashes are the ones matched. */
static size_t match(struct ig_prefix_index *x, struct chain_args *ca, const uint64_t *hashes,
		    size_t nhashes, const uint64_t *keys, size_t nkeys, uint32_t *counts)
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
		if (!l.slot || !l.cand) {
			/* No matching, but the commit still needs the hashes. */
			if (ca)
				chain_into(NULL, ca);
			goto out;
		}
	}
	l.mask = (uint32_t)size - 1;
	memset(l.slot, 0, size * sizeof(uint32_t));
	pthread_rwlock_rdlock(&x->lock);
	if (ca) {
		chain_into(x->live ? x : NULL, ca);
		hashes = ca->out;
		nhashes = ca->n;
	}
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

size_t ig_prefix_match(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		       const uint64_t *keys, size_t nkeys, uint32_t *counts)
{
	return match(x, NULL, hashes, nhashes, keys, nkeys, counts);
}

size_t ig_prefix_lookup(struct ig_prefix_index *x, struct ig_str target_model, struct ig_str input,
			size_t block_bytes, size_t max_blocks, uint64_t *hashes, const uint64_t *keys,
			size_t nkeys, uint32_t *counts)
{
	struct chain_args ca = {target_model, input, block_bytes, max_blocks, hashes, 0};
	match(x, &ca, NULL, 0, keys, nkeys, counts);
	return ca.n;
}

void ig_prefix_size(struct ig_prefix_index *x, uint64_t *entries, uint64_t *bytes)
{
	pthread_rwlock_rdlock(&x->lock);
	*entries = x->live;
	*bytes = sizeof(*x) + (uint64_t)x->nslots * (sizeof(struct slot) + sizeof(struct link)) +
		 (uint64_t)x->capservers * sizeof(struct server) + (uint64_t)x->nsmap * sizeof(uint32_t);
	pthread_rwlock_unlock(&x->lock);
}
