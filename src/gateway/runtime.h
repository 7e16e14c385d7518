/* The gateway's runtime: its options and everything one running gateway
 * owns (workers, the control loop, the current snapshot, the endpoint
 * registry, the scraper, session affinity, metrics, the admin listener).
 * No file-level mutable state: a gateway can be built and driven inside a
 * test. */
#ifndef IG_GATEWAY_RUNTIME_H
#define IG_GATEWAY_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "event/loop.h"
#include "gateway/snapshot.h"
#include "http/server.h"
#include "kube/kube.h"
#include "pool/endpoint.h"
#include "pool/scrape.h"
#include "pool/upstream.h"

struct ig_worker;
struct ig_snapshot;
struct ig_sessions;
struct ig_gw_metrics;

/* The service each worker runs instead of the Gateways' HTTP listeners, for
 * `infergate epp` (its ext_proc server; src/epp/): the gateway's runtime
 * (configuration, scraping, snapshots, workers, the request stages) with a
 * different front door. The manifests' Gateway listeners are then not
 * opened: a picker given a directory that holds Gateways must not take
 * their ports. start runs on the worker's thread before its loop does, and
 * the process does not start unless it succeeds on every worker; busy keeps
 * a draining worker alive; stop runs when the worker is freed.
 * ctl_start/ctl_stop run on the control loop (health service). Any of
 * them may be NULL. */
struct ig_worker;
struct ig_gateway_rt;
struct ig_gw_frontend {
	int (*start)(struct ig_worker *w, void *arg);
	void (*drain)(struct ig_worker *w, void *arg);
	bool (*busy)(struct ig_worker *w, void *arg);
	void (*stop)(struct ig_worker *w, void *arg);
	int (*ctl_start)(struct ig_gateway_rt *G, void *arg);
	void (*ctl_stop)(struct ig_gateway_rt *G, void *arg);
	/* Why /readyz is 503 beyond draining and configuration (a line, as
	 * "pool default/p is not in the configuration\n"), or NULL; may
	 * itself be NULL. Called on the control thread. */
	const char *(*not_ready)(struct ig_gateway_rt *G, void *arg);
	void *arg;
};

struct ig_gw_options {
	const char *bind;  /* listener address, default 0.0.0.0; an IP once parsed */
	char bind_ip[64];  /* a name given as --bind, resolved */
	const char *admin; /* admin "host:port" or NULL */
	/* The admin listener answers only requests that carry
	 * "Authorization: Bearer <token>" when one of these is set. */
	const char *admin_token;      /* --admin-token */
	const char *admin_token_file; /* --admin-token-file: the token is its content */
	uint64_t workers;
	uint64_t scrape_interval_ms;
	uint64_t scrape_timeout_ms; /* one /metrics scrape, connect included */
	uint64_t drain_timeout_ms;
	/* --shutdown-delay: after SIGTERM, /readyz says 503 while the
	 * listeners go on serving this long before the drain begins. */
	uint64_t shutdown_delay_ms;
	uint64_t max_attempts;		   /* endpoints tried per request */
	uint64_t upstream_read_timeout_ms; /* silence from a pod before and during its answer */
	struct ig_upstream_config upstream;
	/* x-gateway-destination-endpoint-served on responses from
	 * InferencePool backends (default; --no-served-endpoint-header). */
	bool served_header;
	const char *picker_config;     /* --picker-config FILE */
	const char *picker_text;       /* the same as text (epp --config-text) */
	uint64_t metrics_staleness_ms; /* the pool gauges' only; 0: 2 s */
	const char *picker_preset;     /* --picker NAME */
	const char *session_header;    /* default x-session-id */
	double session_slack;	       /* load above the best allowed to stay (requests) */
	uint64_t scrape_failures_out;  /* failed scrapes before out of rotation */
	bool flow_control;	       /* --flow-control: queue instead of refusing */
	uint64_t queue_timeout_ms;     /* time a request may wait in the queue */
	uint64_t queue_capacity;       /* requests the queue holds per worker */
	uint64_t watch_interval_ms;    /* manifest files polled this often */
	struct ig_http_server_config http;
	const char **paths;
	size_t npaths;
	/* A manifest loaded with the files (epp --endpoint-selector's pool);
	 * with --kube, kube_opt.extra_text carries it. */
	const char *extra_text;
	/* A pool's external endpoint picker (extpick.c). */
	uint64_t epp_timeout_ms; /* per answer, default 10 s */
	bool epp_tls_verify;	 /* verify its certificate (default: not, as GIE's charts) */
	const char *epp_ca_file; /* roots for that; NULL: the system's */
	bool epp_plaintext;	 /* h2c to every picker (default: TLS unless appProtocol h2c) */
	/* OpenTelemetry (trace/): spans of each request to this OTLP/HTTP
	 * collector (NULL: none). */
	const char *otlp_endpoint;
	bool otlp_endpoint_is_url; /* used as-is; else the base of URL/v1/traces */
	/* service.name: --otlp-service-name, else OTEL_SERVICE_NAME, else
	 * OTEL_RESOURCE_ATTRIBUTES's, else the default ("infergate"). */
	const char *otlp_service_name;
	const char *otlp_service_default;
	double trace_sample_ratio;	       /* roots traced; default 1.0 */
	const struct ig_gw_frontend *frontend; /* NULL: the HTTP listeners */
	const char *job;		       /* "gateway" or "epp", for log lines */
	const char *access_log;		       /* --access-log PATH or "-"; NULL: none */
	int access_log_format;		       /* enum ig_alog_format */
	/* The pools served, scraped and shown (epp: its --pool-name only);
	 * name NULL: all. */
	struct ig_pool_scope pool_scope;
	/* --kube: the configuration comes from the Kubernetes API. */
	bool kube;
	struct ig_kube_options kube_opt;
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
	/* Workers whose front end has started, or failed to (start waits). */
	atomic_int workers_up, workers_failed;
	struct ig_endpoints *endpoints;
	struct ig_scraper *scraper;
	struct ig_sessions *sessions;
	struct ig_gw_metrics *metrics;
	struct ig_http_server *admin;
	char *admin_token; /* NULL: the admin listener is open */
	size_t admin_token_len;
	struct ig_kube *kube;	  /* --kube: the API source; NULL with files */
	struct ig_tracer *tracer; /* --otlp-endpoint; NULL without */
	struct ig_access_log *alog;
	/* The configuration's loads (gateway_main.c), for /metrics and
	 * /api/status: reloads taken and refused, the last one's result, and
	 * the errors of the last refused one. Times are Unix seconds, 0: never. */
	struct {
		uint64_t ok, failed;
		bool last_failed;
		const char *last_why; /* "SIGHUP", "files changed", ... */
		double last_at, ok_at;
		char *errors;	 /* one per line; NULL after a success */
		double retry_at; /* the next try of a reload refused for want of
				    resources; 0: none due */
	} reload;
	/* /api/status's "gateways" and "routes" (attachment of the current
	 * snapshot), made when it is published. */
	char *attach_json;
	/* Control loop state. */
	uint64_t watch_signature;
	/* A fingerprint that differs from watch_signature, seen on the last
	 * poll (watch_changed): the reload waits until the next poll sees it
	 * again, so that a file being written is not read half-way. */
	uint64_t watch_seen;
	bool watch_changed;
	uint64_t watch_err_log_ns; /* when a poll that could not look was last logged */
	/* The back-off of a reload refused for want of resources, and the
	 * timer that tries it again (gateway_main.c); 0: none due. */
	uint64_t retry_ms;
	struct ig_timer watch_timer, drain_poll, alog_timer, shutdown_timer, retry_timer;
	/* The check of freed memory kept past its budget (gateway_main.c),
	 * and what malloc held free just after the last trim. */
	struct ig_timer trim_timer;
	size_t trimmed_free;
	struct ig_io sig_io;
	int sigfd;
	uint64_t drain_deadline_ns;
	bool drain_expired; /* the workers were told to end what is left */
	bool drain_started; /* the listeners closed (after any shutdown delay) */
};

void ig_gw_options_defaults(struct ig_gw_options *o);

/* What the workers of a gateway share (endpoint registry, session table,
 * metrics), made from G->opt. Starting threads, listeners and the control
 * loop is gateway_main.c's; a test or a fuzzer builds workers itself
 * (ig_worker_init, ig_worker_apply_snapshot) and drives their loops with
 * ig_loop_run_once. 0, or -1 out of memory. */
int ig_gateway_init(struct ig_gateway_rt *G);
/* With --kube: writes the status of the objects of the current snapshot
 * (kube_status.c). */
void ig_gw_kube_status(struct ig_gateway_rt *G);
void ig_gateway_fini(struct ig_gateway_rt *G);

#endif
