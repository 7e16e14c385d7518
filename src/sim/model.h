/* The simulator's engine model: vLLM's continuous batching as discrete
 * engine steps over a paged KV cache with prefix caching and LoRA slots.
 *
 * It knows nothing of sockets or clocks. The owner asks it to plan a step
 * at a (simulated) time, waits the step's duration however it likes (a
 * loop timer, or a fake clock in tests) and then ends the step, which
 * emits one token for every request that finished its prefill or decoded
 * in that step. All times are simulated nanoseconds. */
#ifndef IG_SIM_MODEL_H
#define IG_SIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

/* One request as the engine sees it. The owner fills the first group,
 * embeds the struct in its own request and keeps it alive until
 * on_release or ig_sim_model_abort. */
struct ig_sim_seq {
	long prompt_tokens;
	long target;		/* tokens to generate, at least 1 */
	const char *adapter;	/* LoRA adapter, NULL for the base model */
	const uint64_t *hashes; /* chain hashes of the prompt's full blocks */
	size_t nhashes;
	bool paused;   /* skip this request in steps until cleared */
	long priority; /* with a priority policy: lower waits less (ties FCFS) */

	/* Engine state, read-only for the owner. */
	struct ig_sim_seq *next, *prev;
	bool running;
	long computed;	    /* tokens whose KV entries exist */
	long generated;	    /* tokens produced so far */
	long cached_tokens; /* prefix-cache hit of the last admission */
	long step_tokens;   /* tokens in the step being run */
	/* When the engine first admitted it (simulated ns): the end of its
	 * time queued, the start of its prefill. */
	bool scheduled;
	uint64_t scheduled_at;
	long hashed; /* leading blocks registered in the cache */
	int *blocks; /* block table */
	long nblocks, blocks_cap;
};

struct ig_sim_seq_queue {
	struct ig_sim_seq *head, *tail;
	long len;
};

struct ig_sim_kv_block {
	uint64_t hash;
	int ref;
	int prev, next; /* free queue links, -1 at the ends */
	int hnext;	/* next block in the same hash bucket */
	bool hashed, in_free;
};

/* What the model tells its owner. on_token runs for each new token (the
 * seq's generated count includes it); it returns -1 when the consumer is
 * gone. on_release runs once the engine has let go of a seq because it
 * reached its target or its consumer was gone (gone true). */
struct ig_sim_model_ops {
	int (*on_token)(void *ctx, struct ig_sim_seq *q);
	void (*on_release)(void *ctx, struct ig_sim_seq *q, bool gone);
};

struct ig_sim_model {
	const struct ig_sim_config *cfg;
	struct ig_sim_model_ops ops;
	void *ctx;
	struct ig_sim_seq_queue waiting, running;
	/* KV cache: blocks, the queue of free ones (least recently freed
	 * first, evicted first) and the prefix index from hash to block. */
	struct ig_sim_kv_block *blk;
	long nblk, nfree;
	int free_head, free_tail;
	int *buckets;
	size_t nbuckets;
	/* LoRA adapters resident in the --max-loras slots. */
	char **slot_name;
	uint64_t *slot_used;
	/* The step being run, and the tokens it computes (prefill chunks and
	 * one per decoding request). */
	struct ig_sim_seq **step;
	long nstep, step_cap;
	bool in_step;
	long step_total;
	/* Counters for /metrics. */
	double preemptions, prefix_queries, prefix_hits;
	double prompt_tokens; /* prefill tokens actually computed */
};

int ig_sim_model_init(struct ig_sim_model *m, const struct ig_sim_config *cfg,
		      const struct ig_sim_model_ops *ops, void *ctx);
/* Seqs still queued are the owner's to free; their block tables go here. */
void ig_sim_model_free(struct ig_sim_model *m);
/* True when a request of this size can ever fit in the KV cache. */
bool ig_sim_model_fits(const struct ig_sim_model *m, long prompt_tokens, long target);
/* Queues a request; it joins the batch in a later step. */
void ig_sim_model_add(struct ig_sim_model *m, struct ig_sim_seq *q);
/* Takes a request out (its consumer went away); on_release is not called. */
void ig_sim_model_abort(struct ig_sim_model *m, struct ig_sim_seq *q);
/* Plans the next step at `now`. Returns true and its duration when there
 * is work, false when idle (or a step is already running). */
bool ig_sim_model_begin(struct ig_sim_model *m, uint64_t now, uint64_t *dur_ns);
/* Ends the running step: advances its requests and emits their tokens. */
void ig_sim_model_end(struct ig_sim_model *m);
long ig_sim_model_used_blocks(const struct ig_sim_model *m);
/* Distinct adapters of a queue, comma-joined in order of appearance. */
int ig_sim_model_adapters(const struct ig_sim_seq_queue *q, struct ig_buf *out);

/* Prefix-cache keys: the hash of each full block of token ids, chained
 * to the previous block's hash (the first to `seed`), so equal hashes mean
 * equal prefixes. Returns the number of full blocks written to out. */
size_t ig_sim_block_hashes(const uint64_t *ids, size_t n, long block_size, uint64_t seed,
			   uint64_t *out);
/* Simulated milliseconds as a real delay under --time-scale. */
uint64_t ig_sim_real_ns(uint64_t sim_ns, double time_scale);

#endif
