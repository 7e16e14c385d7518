/* Worker threads: each runs its own event loop with its own listening
 * sockets (SO_REUSEPORT spreads connections among them), its own idle
 * upstream connections and its own flow-control queue, so the request
 * path takes no lock. The control thread talks to a worker only by posting
 * to its loop. */
#ifndef IG_GATEWAY_WORKER_H
#define IG_GATEWAY_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "event/loop.h"
#include "gateway/activity.h"
#include "gateway/runtime.h"
#include "http/server.h"
#include "pool/upstream.h"
#include "gateway/metrics.h"
#include "sched/flowq.h"

#define IG_MAX_LISTEN_PORTS 64

struct ig_listen_slot {
	int port; /* -1: retired */
	struct ig_http_server *server;
	struct ig_worker *worker;
	struct ig_tls_ctx
	    *tls; /* the port's TLS context (the server holds a reference); NULL: HTTP */
};

struct ig_worker {
	int id;
	pthread_t thread;
	struct ig_loop loop;
	struct ig_gateway_rt *gw;
	/* The current snapshot and the requests using it. A request does not
	 * take a reference of its own (an atomic on a counter all workers
	 * share): the worker counts its users, and keeps a replaced snapshot
	 * (with its reference) until its last request ends. */
	struct ig_snapshot *snap;
	size_t snap_users;
	struct ig_retired_snap {
		struct ig_snapshot *s;
		size_t users;
	} * retired;
	size_t nretired, cap_retired;
	struct ig_listen_slot slots[IG_MAX_LISTEN_PORTS];
	size_t nslots;
	struct ig_upstreams *upstreams;
	struct ig_gw_metrics_cache *mcache; /* series handles of recent requests */
	struct ig_activity *activity;	    /* recent picks, for the admin page */
	size_t mirrors;			    /* RequestMirror copies in flight */
	struct mirror *mirror_list;
	uint32_t rr;   /* round robin over Service endpoints */
	size_t active; /* requests in flight on this worker */
	/* Upstream connects that failed for want of descriptors since the
	 * last log line about it, and when that was. */
	unsigned long fd_failures;
	uint64_t fd_log_ns;
	struct ig_req *requests; /* the same, listed (ig_req.active_next) */
	bool draining;
	/* Stopping: a request ended now is the gateway's doing, not its
	 * client's (the drain ran out, or a second signal). */
	bool stopping;
	struct ig_flowq *queue;	   /* flow control: requests waiting for capacity */
	uint64_t queue_generation; /* of the snapshot whose settings it has */
	struct ig_timer queue_timer;
	struct ig_timer drain_recheck;
	/* A listener of the snapshot this worker could not open for want of
	 * resources (descriptors, memory) is tried again (worker.c). */
	struct ig_timer listen_retry;
	uint64_t listen_retry_ms;     /* the last wait; 0: none failed */
	void *fe;		      /* the front end's state on this worker (ig_gw_frontend) */
	struct ig_extpick_conns *xpc; /* channels to external pickers (extpick.c) */
	struct ig_alog_ring *alog;    /* its access log buffer; NULL: no access log */
};

/* Sets up the worker's loop and upstream pool; 0 or -errno. */
int ig_worker_init(struct ig_worker *w, struct ig_gateway_rt *gw, int id);
int ig_worker_start(struct ig_worker *w);
void ig_worker_set_snapshot(struct ig_worker *w, struct ig_snapshot *s); /* posts */
/* The same on the worker's own thread, now (takes a reference). */
void ig_worker_apply_snapshot(struct ig_worker *w, struct ig_snapshot *s);
/* A shutdown delay began: the listeners go on, their responses close
 * connections (ig_http_server_going_away; posts). */
void ig_worker_going_away(struct ig_worker *w);
void ig_worker_drain(struct ig_worker *w); /* posts */
/* The drain's grace period is over: the requests still in flight are
 * ended with a 503, or cut (posts). */
void ig_worker_drain_expired(struct ig_worker *w);
struct ig_req;
void ig_worker_request_begin(struct ig_worker *w, struct ig_req *p);
void ig_worker_request_done(struct ig_worker *w, struct ig_req *p);
/* The snapshot a new request uses, and its release when the request ends. */
struct ig_snapshot *ig_worker_snap_take(struct ig_worker *w);
void ig_worker_snap_release(struct ig_worker *w, struct ig_snapshot *s);
/* After the thread has been joined. */
void ig_worker_free(struct ig_worker *w);

#endif
