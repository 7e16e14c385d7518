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

/* ---- endpoints (pool/ data, kept across snapshots) ---- */

struct ig_endpoint {
	char addr[64]; /* "ip:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
	atomic_int refs;
	/* Metrics are written by the control thread and read by workers under
	 * a sequence counter: odd while a write is in progress. */
	atomic_uint seq;
	struct ig_endpoint_metrics metrics;
	/* Scrape state (control thread only). */
	void *scrape;
	/* What workers dispatched and has not finished yet. */
	atomic_long inflight;
	atomic_ulong requests_total;
	struct ig_endpoint *next; /* registry list */
};

void ig_endpoint_read_metrics(struct ig_endpoint *ep, struct ig_endpoint_metrics *out);
void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m);
/* Finds or creates the endpoint for addr, with a new reference. */
struct ig_endpoint *ig_endpoint_get(const char *addr);
void ig_endpoint_put(struct ig_endpoint *ep);

/* ---- snapshots ---- */

struct ig_pool_rt {
	const struct ig_pool *pool;
	struct ig_endpoint **eps;
	size_t neps;
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
};

/* Builds a snapshot that takes ownership of cfg. NULL on failure. */
struct ig_snapshot *ig_snapshot_build(struct ig_config *cfg, uint64_t generation);
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

#endif
