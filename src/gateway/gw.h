/* The gateway's runtime state, shared by its files: endpoints that live
 * across reloads, immutable snapshots built from a config, worker threads
 * and the control thread. */
#ifndef IG_GATEWAY_GW_H
#define IG_GATEWAY_GW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/buf.h"
#include "event/loop.h"
#include "gateway/route.h"
#include "http/server.h"
#include "pool/metrics.h"
#include "sched/flowq.h"
#include "sched/picker.h"

/* ---- endpoints (pool/ data, kept across snapshots) ---- */

#define IG_ENDPOINT_METRICS_WORDS ((sizeof(struct ig_endpoint_metrics) + 7) / 8)

struct ig_endpoint {
	char addr[64]; /* "ip:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
	atomic_int refs;
	/* Metrics are written by the control thread and read by workers under
	 * a sequence counter: odd while a write is in progress. The struct is
	 * kept as words copied with relaxed atomic accesses, so a reader that
	 * overlaps a write reads a torn copy it then throws away, never a data
	 * race (ig_endpoint_read_metrics). */
	atomic_uint seq;
	_Atomic uint64_t metrics[IG_ENDPOINT_METRICS_WORDS];
	/* Scrape state (control thread only). */
	void *scrape;
	uint64_t key; /* hash of addr: the endpoint's identity for the picker */
	/* What workers dispatched and has not finished yet. */
	atomic_long inflight;
	atomic_ulong requests_total;
	/* Dispatched since the last successful scrape (requests, prompt
	 * tokens): what the scraped figures cannot know yet. Reset by the
	 * scraper. */
	atomic_long pending_requests;
	atomic_long pending_tokens;
	/* Set by the scraper after repeated failed scrapes, cleared when the
	 * endpoint answers again: such an endpoint gets no traffic. */
	atomic_bool out_of_rotation;
	struct ig_endpoint *next; /* registry list */
};

void ig_endpoint_read_metrics(struct ig_endpoint *ep, struct ig_endpoint_metrics *out);
void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m);
/* Finds or creates the endpoint for addr, with a new reference. */
struct ig_endpoint *ig_endpoint_get(const char *addr);
void ig_endpoint_put(struct ig_endpoint *ep);

/* ---- snapshots ---- */

/* A scheduler (with its prefix index) outlives snapshots when its pool
 * and picker configuration stay the same across a reload. */
struct ig_sched_ref {
	atomic_int refs;
	struct ig_scheduler *s;
	uint64_t config_hash;
	char pool_key[320]; /* "namespace/name" */
};

struct ig_pool_rt {
	const struct ig_pool *pool;
	struct ig_endpoint **eps;
	size_t neps;
	struct ig_sched_ref *sched;
};

struct ig_listener_rt {
	const struct ig_gateway *gw;
	const struct ig_listener *listener;
	struct ig_listener_routes *routes;
};

struct ig_port_rt {
	int port;
	struct ig_listener_rt *listeners;
	size_t nlisteners;
};

struct ig_snapshot {
	atomic_int refs;
	uint64_t generation;
	struct ig_config *cfg;
	struct ig_port_rt *ports;
	size_t nports;
	struct ig_pool_rt *pools;
	size_t npools;
	struct ig_picker_config *picker;
	uint64_t picker_hash;  /* of the picker configuration's text */
	bool flow_control;     /* requests wait in a queue when the pool is saturated */
	struct ig_flow_control_config flow;
};

/* Builds a snapshot that takes ownership of cfg and picker; schedulers of
 * `prev` (may be NULL) are kept for pools whose configuration is
 * unchanged. NULL on failure. */
struct ig_snapshot *ig_snapshot_build(struct ig_config *cfg, struct ig_picker_config *picker,
				      uint64_t picker_hash, const struct ig_snapshot *prev,
				      uint64_t generation);
/* The picker configuration: --picker-config FILE, else an
 * EndpointPickerConfig document among the manifests, else GIE's default.
 * 0, or -1 with errors in diags. */
int ig_gw_load_picker(const struct ig_config *cfg, const char *file,
		      struct ig_picker_config **out, uint64_t *hash, struct ig_diags *diags);
static inline struct ig_snapshot *ig_snapshot_ref(struct ig_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}
void ig_snapshot_unref(struct ig_snapshot *s);
const struct ig_pool_rt *ig_snapshot_pool(const struct ig_snapshot *s, const char *ns,
					  const char *name);
const struct ig_port_rt *ig_snapshot_port(const struct ig_snapshot *s, int port);

/* ---- options ---- */

struct ig_gw_options {
	const char *bind;  /* listener address, default 0.0.0.0 */
	const char *admin; /* admin "host:port" or NULL */
	int workers;
	uint64_t scrape_interval_ms;
	uint64_t drain_timeout_ms;
	uint64_t connect_timeout_ms;
	int max_attempts; /* endpoints tried per request */
	const char *picker_config; /* --picker-config FILE */
	const char *session_header; /* default x-session-id */
	double session_slack;       /* load above the best allowed to stay (requests) */
	unsigned scrape_failures_out; /* failed scrapes before out of rotation */
	bool flow_control;          /* --flow-control: queue instead of refusing */
	uint64_t queue_timeout_ms;  /* time a request may wait in the queue */
	uint64_t queue_capacity;    /* requests the queue holds per worker */
	struct ig_http_server_config http;
	const char **paths;
	size_t npaths;
};

/* ---- workers ---- */

struct ig_worker;
struct ig_gateway_rt;

struct ig_listen_slot {
	int port;
	struct ig_http_server *server;
	struct ig_worker *worker;
};

struct ig_idle_conn {
	struct ig_endpoint *ep;
	struct ig_http_client *client;
};

struct ig_worker {
	int id;
	pthread_t thread;
	struct ig_loop loop;
	struct ig_gateway_rt *gw;
	struct ig_snapshot *snap; /* current; each request takes a reference */
	struct ig_listen_slot *slots;
	size_t nslots;
	struct ig_idle_conn *idle; /* upstream keep-alive pool */
	size_t nidle, idle_cap;
	size_t active; /* requests in flight on this worker */
	bool draining;
	struct ig_flowq *queue; /* flow control: requests waiting for capacity */
	struct ig_timer queue_timer;
};

struct ig_gateway_rt {
	struct ig_gw_options opt;
	struct ig_worker *workers;
	int nworkers;
	struct ig_loop ctl; /* the control thread's loop (main thread) */
	struct ig_snapshot *snap;
	uint64_t generation;
	atomic_bool draining;
	atomic_int workers_done;
};

/* worker.c */
int ig_worker_start(struct ig_worker *w);
void ig_worker_set_snapshot(struct ig_worker *w, struct ig_snapshot *s); /* posts */
void ig_worker_drain(struct ig_worker *w);                                /* posts */
struct ig_http_client *ig_worker_upstream(struct ig_worker *w, struct ig_endpoint *ep,
					  bool *reused);
void ig_worker_release_upstream(struct ig_worker *w, struct ig_endpoint *ep,
				struct ig_http_client *c);
void ig_worker_request_done(struct ig_worker *w);
void ig_worker_free(struct ig_worker *w);

/* proxy.c: the handler of every gateway listener. */
void ig_proxy_handle(struct ig_http_exchange *ex, void *slot /* struct ig_listen_slot */);

/* scrape.c: the control thread's metrics scraper. */
void ig_scraper_start(struct ig_gateway_rt *gw);
void ig_scraper_stop(struct ig_gateway_rt *gw);

/* admin.c */
int ig_admin_start(struct ig_gateway_rt *gw, const char *hostport);
void ig_admin_stop(void);

/* metrics.c: the gateway's own Prometheus metrics. */
void ig_gw_metrics_request(const char *model, const char *target, int status, double seconds,
			   size_t req_bytes, size_t resp_bytes, long in_tokens, long out_tokens);
void ig_gw_metrics_render(struct ig_gateway_rt *gw, struct ig_buf *out);
void ig_gw_metrics_objective(const char *model, const char *target, int priority, int status,
			     double seconds, long in_tokens, long out_tokens);
void ig_gw_metrics_scheduler(double seconds);

/* sessions.c: session affinity, shared by the workers. */
uint64_t ig_session_lookup(struct ig_str session);
void ig_session_store(struct ig_str session, uint64_t endpoint_key);

#endif
