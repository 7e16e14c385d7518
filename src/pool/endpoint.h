/* Endpoints: the model-server addresses (ip:port) of the pools. They live
 * in a registry across configuration snapshots, so a reload that keeps a
 * pod keeps its metrics and counters; a snapshot, an idle upstream
 * connection or a scrape holds a reference.
 *
 * What the scraper learns is published through a sequence counter (the
 * scraper writes, workers copy). What workers learn is counted per worker:
 * each worker writes only its own slot, on its own cache line, and readers
 * sum the slots; nothing on an endpoint is written by two threads. */
#ifndef IG_POOL_ENDPOINT_H
#define IG_POOL_ENDPOINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pool/metrics.h"

/* One worker's view of an endpoint: written by that worker only, with
 * relaxed load+store (no read-modify-write), read by anyone. */
struct ig_endpoint_slot {
	_Alignas(64) atomic_long inflight; /* dispatched and not finished */
	atomic_ulong requests;		   /* dispatched, ever */
	atomic_ulong tokens;		   /* prompt tokens dispatched, ever */
};

struct ig_endpoints;

struct ig_endpoint {
	char addr[64]; /* "ip:port" or "[v6]:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
	uint64_t key; /* hash of addr: the endpoint's identity for the picker */
	atomic_int refs;
	struct ig_endpoints *reg;
	struct ig_endpoint *next; /* registry list */

	/* Scraped metrics, under a sequence counter: odd while written. */
	atomic_uint seq;
	struct ig_endpoint_metrics metrics;
	/* Set by the scraper after repeated failed scrapes, cleared when the
	 * endpoint answers again: such an endpoint gets no traffic. */
	atomic_bool out_of_rotation;
	/* The sums of the slots' requests and tokens when the scrape that is
	 * now applied was sent: what was dispatched later is not in it yet.
	 * Written by the scraper only. */
	atomic_ulong scraped_requests, scraped_tokens;

	size_t nslots;
	struct ig_endpoint_slot *slots; /* one per worker */
};

/* The registry. nslots: worker slots per endpoint (the worker count). */
struct ig_endpoints *ig_endpoints_new(size_t nslots);
/* Frees the registry; every endpoint must have been put back. */
void ig_endpoints_free(struct ig_endpoints *r);

/* Finds or creates the endpoint for a numeric addr, with a new reference.
 * NULL for an address that does not parse, or out of memory. */
struct ig_endpoint *ig_endpoint_get(struct ig_endpoints *r, const char *addr);
struct ig_endpoint *ig_endpoint_ref(struct ig_endpoint *ep);
void ig_endpoint_put(struct ig_endpoint *ep);

void ig_endpoint_read_metrics(const struct ig_endpoint *ep, struct ig_endpoint_metrics *out);
void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m);

/* Worker-side accounting; `slot` is the worker's index. */
void ig_endpoint_dispatch(struct ig_endpoint *ep, size_t slot, long tokens);
void ig_endpoint_finish(struct ig_endpoint *ep, size_t slot);

/* Sums over the slots. */
long ig_endpoint_inflight(const struct ig_endpoint *ep);
unsigned long ig_endpoint_requests(const struct ig_endpoint *ep);
/* Requests and prompt tokens dispatched since the applied scrape was sent. */
long ig_endpoint_pending_requests(const struct ig_endpoint *ep);
long ig_endpoint_pending_tokens(const struct ig_endpoint *ep);

/* Scraper side: the dispatch totals at the moment a scrape is sent, and
 * making them the baseline when that scrape's page is applied. */
void ig_endpoint_totals(const struct ig_endpoint *ep, unsigned long *requests,
			unsigned long *tokens);
void ig_endpoint_set_scraped(struct ig_endpoint *ep, unsigned long requests, unsigned long tokens);

#endif
