/* Internals shared by the simulator's HTTP side (sim_main.c) and its
 * batch model (engine.c). Not for other modules. */
#ifndef IG_SIM_SIM_INT_H
#define IG_SIM_SIM_INT_H

#include "core/buf.h"
#include "core/rand.h"
#include "event/loop.h"
#include "http/server.h"
#include "sim/sim.h"

struct sim_req;

/* An intrusive FIFO of requests. */
struct sim_queue {
	struct sim_req *head, *tail;
	long len;
};

/* A LoRA adapter loaded into one of the --max-loras GPU slots. */
struct sim_slot {
	char *name;
	uint64_t last_used; /* loop time, for least-recently-used eviction */
};

struct sim {
	struct ig_sim_config cfg;
	struct ig_loop loop;
	struct ig_http_server *server;
	struct ig_sim_stats stats;
	struct sim_queue waiting, running;
	long blocks_used;
	struct sim_slot *slots; /* max_loras entries */
	struct ig_rng rng;	/* sampling, seeded by --seed when given */
};

enum sim_state { REQ_WAITING, REQ_RUNNING };

struct sim_req {
	struct sim *sim;
	struct ig_http_exchange *ex;
	struct sim_req *next, *prev;
	enum sim_state state;
	enum ig_sim_kind kind;
	bool stream, include_usage;
	bool paused; /* output above the high-water mark: no token until drained */
	char *id;    /* "cmpl-..." */
	int64_t created;
	char *model;   /* the name answered with */
	char *adapter; /* NULL for the base model */
	long prompt_tokens;
	long target;	    /* tokens to generate */
	const char *finish; /* reason given when target is reached */
	long generated;
	long blocks;
	struct ig_rng rng;
	struct ig_timer timer;
	uint64_t arrival_ns;
	struct ig_buf text; /* non-streamed answer */
};

/* Queues a parsed request; the engine owns it from here on, answers it and
 * frees it. */
void ig_sim_engine_submit(struct sim *s, struct sim_req *r);
void ig_sim_req_free(struct sim_req *r);
void ig_sim_engine_gauges(const struct sim *s, struct ig_sim_gauges *g);
/* Re-reads the LoRA state (with overrides) into the info series. */
void ig_sim_lora_update(struct sim *s);
/* Frees the engine's own memory (requests are gone by then). */
void ig_sim_engine_free(struct sim *s);

#endif
