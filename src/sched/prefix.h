/* The approximate prefix-cache index (gie-reference §4.3): which endpoint
 * probably holds which prompt-prefix blocks in its KV cache, inferred from
 * where the gateway sent earlier prompts. A block is identified by a chain
 * hash, so a hash stands for the whole prefix up to that block.
 *
 * The index maps hash -> endpoints holding it; each endpoint keeps its own
 * LRU of at most `capacity` hashes (the index's, or the one its commits
 * give it), and evicting one removes the endpoint from that hash's
 * holders. Memory is bounded by the sum of the endpoints' capacities.
 *
 * Threading: every function may run on many threads at once, with no
 * pool-wide lock. ig_prefix_match() takes no lock and writes no shared
 * memory (a seqlock read: it walks again when a commit changed what it
 * read). ig_prefix_add() locks the endpoint it records for and, for each
 * pair it links or evicts, the one cache line of the bucket table that
 * holds it; ig_prefix_forget() and an endpoint's first commit also take a
 * mutex of the index. A commit is seen by every lookup that starts after
 * it returns. See prefix.c for the design. */
#ifndef IG_SCHED_PREFIX_H
#define IG_SCHED_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* The most blocks of a prompt the index hashes and matches: 16384 blocks
 * of vLLM's default 16 tokens are 262,144 tokens, the longest context
 * windows served today (llm-d Router sets no bound; its default is 256
 * blocks, as the pickers' here). What a request needs grows with the
 * blocks its prompt has, not with this bound: its hashes (8 bytes a
 * block, in memory the caller keeps until the commit) and a lookup's and
 * a commit's working memory (52 bytes a block of the thread's scratch,
 * kept for its next lookup: 0.8 MiB a thread at most). */
#define IG_PREFIX_MAX_BLOCKS 16384
/* Distinct endpoints the index remembers; commits for more are dropped. */
#define IG_PREFIX_MAX_SERVERS 65536

/* The block hashes of a request: h0 = XXH64(target_model, 0); block i is
 * block_bytes bytes of input, the bytes after the last full block one
 * more block (as llm-d's hashPrompt since GIE#2823; GIE v1.5.0 dropped
 * them), at most max_blocks in all, and h_i = link(h_{i-1}, H(block_i))
 * (prefix.c). Writes h_1.. to out and returns how many (0 when the input
 * is shorter than one block). */
size_t ig_prefix_hashes(struct ig_str target_model, struct ig_str input, size_t block_bytes,
			size_t max_blocks, uint64_t *out);

struct ig_prefix_index;

struct ig_prefix_index *ig_prefix_new(uint32_t capacity_per_server);
/* The same for endpoints whose commits may give them capacities up to
 * max_capacity (address space is reserved for that many nodes each). */
struct ig_prefix_index *ig_prefix_new_sized(uint32_t capacity_per_server, uint32_t max_capacity);
void ig_prefix_free(struct ig_prefix_index *x);

/* An endpoint holding blocks of a request, and how many of them. */
struct ig_prefix_hit {
	uint64_t key;
	uint32_t blocks;
};

/* What a lookup met on its way (opaque), in memory of the calling thread's
 * own that stays valid until the thread's next lookup. */
struct ig_prefix_walk;

/* Match counting as GIE does it: walk the hashes in order, stop at the
 * first one no endpoint holds; each endpoint counts the hashes it holds
 * before the stop. Returns the number of hashes before the stop, i.e.
 * the longest prefix anyone holds, and sets *hits to the endpoints
 * holding any of them with how many each holds (*nhits of them, in the
 * lookup's memory), and *walk (when not NULL) to the lookup's record.
 *
 * The hashes of every call must form a chain, as ig_prefix_hashes()
 * makes them: a hash stands for its whole prefix, so two sequences that
 * share hashes[j] share hashes[0..j]. Commits then keep each endpoint's
 * pairs prefix-closed (it holds a block only with every block before it:
 * see ig_prefix_add), and a lookup need not read every hash: it reads a
 * few and finds where each endpoint's held prefix ends between them. */
size_t ig_prefix_lookup(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
			const struct ig_prefix_hit **hits, size_t *nhits,
			const struct ig_prefix_walk **walk);

/* The same counts by candidate: each candidate (keys[i]) holding a hash
 * gets one more in counts[i] (zeroed first); a key listed twice counts
 * once, the first time. */
size_t ig_prefix_match(struct ig_prefix_index *x, const uint64_t *hashes, size_t nhashes,
		       const uint64_t *keys, size_t nkeys, uint32_t *counts);

/* What a lookup found of endpoint `key`, kept with the request for its
 * commit: of the n hashes looked up, the endpoint held the first `held`;
 * `deep` is its node for hash held - 1 (NIL when it held none), and when
 * held < n, `next_seq` the counter of the line of hash `held` (in table
 * `table`) when the lookup found the endpoint not there. n == 0: nothing
 * known. */
struct ig_prefix_seen {
	uint64_t key;
	uintptr_t table;
	size_t n;
	uint32_t held;
	uint32_t deep;
	uint32_t next_seq;
};

/* Fills *out for endpoint `key` from a walk (from ig_prefix_lookup, on
 * this thread, before its next lookup). */
void ig_prefix_seen(struct ig_prefix_index *x, const struct ig_prefix_walk *walk, uint64_t key,
		    struct ig_prefix_seen *out);

/* Records the hashes (a chain, at most IG_PREFIX_MAX_BLOCKS of them) for
 * endpoint `key`: each becomes its most recent pair, the first hash the
 * newest, so that when its LRU evicts it drops the last blocks of a
 * prompt before the first (as vLLM frees a request's KV blocks: tail
 * first) and what it holds of any prompt stays a prefix. Returns 0, or
 * -1 when out of memory or past IG_PREFIX_MAX_SERVERS. */
int ig_prefix_add(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n);
/* The same, starting from what a lookup saw (seen may be NULL, or for
 * another endpoint: then it is not used). The result is the same; only
 * the work differs: what the lookup found needs no second walk when the
 * index did not change there since. */
int ig_prefix_add_seen(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n,
		       const struct ig_prefix_seen *seen);
/* The same, giving the endpoint `capacity` pairs from now on (0: the
 * index's capacity); a lower one than before drops its oldest pairs. */
int ig_prefix_add_capped(struct ig_prefix_index *x, uint64_t key, const uint64_t *hashes, size_t n,
			 const struct ig_prefix_seen *seen, uint32_t capacity);
void ig_prefix_forget(struct ig_prefix_index *x, uint64_t key);

/* For tests: no more than n nodes will ever be handed out, as if memory
 * ran out there. */
void ig_prefix_limit_nodes(struct ig_prefix_index *x, uint64_t n);

/* (hash, endpoint) pairs held, and bytes of memory in use. */
void ig_prefix_size(struct ig_prefix_index *x, uint64_t *entries, uint64_t *bytes);

#endif
