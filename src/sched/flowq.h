/* The flow-control queue (gie-reference §4.4) as a pure data structure:
 * requests wait here while the pool is saturated and leave in the order
 * a dispatcher should send them.
 *
 * Ordering: priority bands, highest priority first. Within a band, the
 * band's fairness policy picks the flow (fairness id): round-robin, the
 * flows take turns, one item per turn; global-strict, the flow whose head
 * item comes first, as if the band were one queue. Within a flow, items go
 * by the order key the caller gives each one, lowest first, ties (and
 * equal keys, such as all zero: first come first served) in push order.
 * The key is how the caller expresses GIE's ordering policies (an
 * earliest-deadline-first key is the deadline). Capacity: a global and a
 * per-band limit on requests and bytes; a push over any of them is
 * refused (the gateway answers 429). Every item may carry a deadline (its queue TTL);
 * ig_flowq_pop_expired() hands back the overdue ones (503). An item can be
 * taken out at any time (the client went away).
 *
 * Items are the caller's: it embeds a struct ig_flowq_item in its own
 * request object, so queueing allocates nothing per item (flows and bands
 * are allocated on first use and flows freed when they empty).
 * Costs: push/pop/remove O(log n) (the deadline heap) plus O(bands) to
 * find the first non-empty band; a push whose key is below those of its
 * flow's tail walks back to its place; global-strict fairness looks at
 * the head of every flow of the band. Not thread-safe: the caller locks. */
#ifndef IG_SCHED_FLOWQ_H
#define IG_SCHED_FLOWQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define IG_FLOWQ_MAX_FLOW_ID 256
#define IG_FLOWQ_MAX_BANDS 256

struct ig_flowq_flow;

/* Embedded in the caller's object and zeroed before its first push;
 * fields are private to flowq.c except data, which the pops return. */
struct ig_flowq_item {
	void *data;
	struct ig_flowq_item *prev, *next; /* in its flow, in (order, seq) order */
	struct ig_flowq_flow *flow;	   /* NULL when not queued */
	uint64_t bytes;
	uint64_t deadline_ns; /* 0: none */
	uint64_t order;	      /* lower goes first */
	uint64_t seq;	      /* push order */
	size_t heap_pos;
};

/* Zero means unlimited. */
struct ig_flowq_limits {
	uint64_t max_requests;
	uint64_t max_bytes;
};

/* Which flow of a band goes next (see above). */
enum ig_flowq_fairness { IG_FLOWQ_ROUND_ROBIN, IG_FLOWQ_GLOBAL_STRICT };

struct ig_flowq_band_config {
	int priority; /* not used in band_default */
	struct ig_flowq_limits limits;
	enum ig_flowq_fairness fairness;
};

struct ig_flowq;

/* global: the limits over everything queued (NULL: none); bands: the
 * settings of known priorities; band_default (NULL: no limits,
 * round-robin): those of a band created for any other priority on first
 * use. */
struct ig_flowq *ig_flowq_new(const struct ig_flowq_limits *global,
			      const struct ig_flowq_band_config *bands, size_t nbands,
			      const struct ig_flowq_band_config *band_default);
/* Changes the settings (a configuration reload) with the same meaning as
 * ig_flowq_new's: bands not listed take band_default's. Queued items stay,
 * even beyond new limits; later pushes and pops follow the new settings.
 * 0, or -ENOMEM / -EINVAL (too many bands) with the settings partly
 * applied. */
int ig_flowq_configure(struct ig_flowq *q, const struct ig_flowq_limits *global,
		       const struct ig_flowq_band_config *bands, size_t nbands,
		       const struct ig_flowq_band_config *band_default);
/* Frees the queue; items still in it are simply forgotten. */
void ig_flowq_free(struct ig_flowq *q);

/* Queues `it` (carrying data) for flow `flow_id` at `priority`, with its
 * size in bytes, a deadline (0: none) and its order key within the flow.
 * Returns 0; -ENOSPC when a limit would be exceeded; -EINVAL for an
 * over-long flow id, an item already queued or too many bands; -ENOMEM. */
int ig_flowq_push(struct ig_flowq *q, struct ig_flowq_item *it, void *data, struct ig_str flow_id,
		  int priority, uint64_t bytes, uint64_t deadline_ns, uint64_t order);
/* The next item to dispatch (its data), or NULL when empty. */
void *ig_flowq_pop(struct ig_flowq *q);
/* The item the next pop would return (its data), left in place, or NULL
 * when empty: a dispatcher that must wait keeps the queue's order. */
void *ig_flowq_peek(const struct ig_flowq *q);
/* The priority of the band the next pop takes from; false when empty.
 * Lets the dispatcher stop at a band its usage limit forbids. */
bool ig_flowq_next_priority(const struct ig_flowq *q, int *priority);
/* One item whose deadline is <= now_ns (the most overdue), or NULL. */
void *ig_flowq_pop_expired(struct ig_flowq *q, uint64_t now_ns);
/* Takes `it` out if queued; a no-op otherwise. */
void ig_flowq_remove(struct ig_flowq *q, struct ig_flowq_item *it);
bool ig_flowq_queued(const struct ig_flowq_item *it);

size_t ig_flowq_len(const struct ig_flowq *q);
uint64_t ig_flowq_bytes(const struct ig_flowq *q);

#endif
