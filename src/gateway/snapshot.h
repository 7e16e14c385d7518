/* A snapshot is everything a request needs, built once per config: route
 * tables per listening port and the endpoints and scheduler of every pool.
 * It is immutable; workers and requests hold references, so a reload never
 * changes what an in-flight request sees. */
#ifndef IG_GATEWAY_SNAPSHOT_H
#define IG_GATEWAY_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/route.h"
#include "pool/endpoint.h"
#include "sched/flowq.h"
#include "sched/picker.h"

struct ig_session_tokens;
struct ig_tls_ctx;

/* A scheduler (with its prefix index) outlives snapshots when its pool
 * and picker configuration stay the same across a reload. */
struct ig_sched_ref {
	atomic_int refs;
	struct ig_scheduler *s;
	uint64_t config_hash;
	char pool_key[320]; /* "namespace/name" */
	/* The series of each of its plugins' durations, GIE's at 2i and
	 * llm-d's at 2i + 1 for plugin i (ig_scheduler_plugin's numbers),
	 * looked up by the first request that ran it. */
	struct ig_series *_Atomic *plugin_series;
};

/* A pool's endpoint picker when it is another process: the pool's
 * endpointPickerRef (v1) / extensionRef (v1alpha2) names a Service of the
 * configuration. The gateway asks it over ext_proc (extpick.c) at these
 * addresses, in order: the Service's clusterIP, else its ready endpoints. */
#define IG_EPP_MAX_ADDRS 8
struct ig_epp_target {
	char addrs[IG_EPP_MAX_ADDRS][64]; /* "ip:port" */
	size_t naddrs;			  /* 0: the Service has no address now */
	bool plaintext;			  /* appProtocol kubernetes.io/h2c: no TLS */
	bool fail_open;
};

struct ig_pool_rt {
	const struct ig_pool *pool;
	struct ig_endpoint **eps;
	size_t neps;
	/* For each endpoint: its pod (of the snapshot's configuration) and
	 * the index of its port in the pool's targetPorts, GIE's rank. */
	const struct ig_pod **ep_pods;
	unsigned char *ep_ranks;
	/* llm-d's x-session-token of each endpoint (gateway/sessions.h). */
	struct ig_session_tokens *tokens;
	/* appProtocol kubernetes.io/h2c: requests go to the endpoints over
	 * HTTP/2 cleartext (prior knowledge), else HTTP/1.1. */
	bool h2c;
	struct ig_sched_ref *sched;
	/* NULL: the built-in picker. With epp_missing the pool names a
	 * Service that is not in the configuration. */
	struct ig_epp_target *epp;
	bool epp_missing;
};

/* A core Service backend (port) with its ready endpoints, round-robined
 * by the workers; resolved from EndpointSlices, Endpoints or Pods. */
struct ig_service_rt {
	const struct ig_service *svc;
	int port;
	struct ig_endpoint **eps;
	size_t neps;
	bool h2c; /* the backendRef's h2c: appProtocol kubernetes.io/h2c, or a GRPCRoute's */
	/* A BackendTLSPolicy targets the port: its pods are reached over TLS
	 * with this context (http/tls.h), the previous snapshot's when the
	 * policy's settings did not change (so parked connections stay
	 * usable across reloads). tls_error: the context could not be made
	 * (a CA the loader let through that OpenSSL refuses): requests get
	 * 500, never clear text. */
	const struct ig_backend_tls_policy *policy;
	struct ig_tls_client_ctx *tls;
	uint64_t tls_hash;
	bool tls_error;
	/* Gateways with a client certificate (spec.tls.backend) reach the
	 * port with a context of their own that presents it (ig_backend_tls);
	 * tls NULL: it could not be made, and their requests get 500. */
	struct ig_service_gw_tls {
		const struct ig_gateway *gw;
		struct ig_tls_client_ctx *tls;
		uint64_t hash;
	} * gw_tls;
	size_t ngw_tls;
};

struct ig_listener_rt {
	const struct ig_gateway *gw;
	const struct ig_listener *listener;
	struct ig_listener_routes *routes;
};

/* A listening port: plain HTTP, or HTTPS with a TLS context (http/tls.h)
 * holding the certificates of all its listeners. The context outlives
 * snapshots: a reload that keeps the port hands the same one on, with its
 * certificate set swapped when the Secrets changed, so the workers' open
 * sockets keep serving and established connections are not dropped. */
struct ig_port_rt {
	int port;
	struct ig_listener_rt *listeners;
	size_t nlisteners;
	struct ig_tls_ctx *tls; /* NULL: plain HTTP */
	uint64_t tls_hash;	/* of the certificate set it was last given */
};

struct ig_snapshot {
	atomic_int refs;
	uint64_t generation;
	struct ig_config *cfg;
	struct ig_port_rt *ports;
	size_t nports;
	struct ig_pool_rt *pools;
	size_t npools;
	struct ig_service_rt *services;
	size_t nservices;
	struct ig_picker_config *picker;
	uint64_t picker_hash; /* of the picker configuration's text */
	bool flow_control;    /* requests wait in a queue when the pool is saturated */
	/* A pool whose picker Service is missing fails its requests (GIE's
	 * conformance, in Kubernetes mode) instead of using the built-in
	 * picker (files). Set by the owner after the build. */
	bool epp_required;
	struct ig_flow_control_config flow;
};

/* The pools a snapshot serves, scrapes and shows: every pool of the
 * configuration (name NULL), or the one pool of that namespace, name and
 * API group (group NULL: the v1 pool, else the v1alpha2 one), as GIE's
 * picker tracks only its --pool-name. */
struct ig_pool_scope {
	const char *ns, *name, *group;
};

/* Builds a snapshot that takes ownership of cfg and picker; endpoints come
 * from `reg`; schedulers of `prev` (may be NULL) are kept for pools whose
 * configuration is unchanged; route tables are built for `workers`
 * threads (see ig_routes_build). NULL on failure. */
struct ig_snapshot *ig_snapshot_build(struct ig_endpoints *reg, struct ig_config *cfg,
				      struct ig_picker_config *picker, uint64_t picker_hash,
				      const struct ig_snapshot *prev, uint64_t generation,
				      size_t workers);
/* The same for the pools of `scope` only (NULL: all). */
struct ig_snapshot *ig_snapshot_build_scoped(struct ig_endpoints *reg, struct ig_config *cfg,
					     struct ig_picker_config *picker, uint64_t picker_hash,
					     const struct ig_snapshot *prev, uint64_t generation,
					     size_t workers, const struct ig_pool_scope *scope);
static inline struct ig_snapshot *ig_snapshot_ref(struct ig_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}
void ig_snapshot_unref(struct ig_snapshot *s);
const struct ig_pool_rt *ig_snapshot_pool(const struct ig_snapshot *s, const char *ns,
					  const char *name);
/* The pool of that API group (IG_POOL_GROUP_V1 or _ALPHA); group NULL:
 * either, the v1 one when both exist. */
const struct ig_pool_rt *ig_snapshot_pool_group(const struct ig_snapshot *s, const char *ns,
						const char *name, const char *group);
const struct ig_port_rt *ig_snapshot_port(const struct ig_snapshot *s, int port);
/* Whether listener l of gw is served (Programmed): one of its port's. */
bool ig_snapshot_serves(const struct ig_snapshot *s, const struct ig_gateway *gw,
			const struct ig_listener *l);
/* The runtime of a pool / Service port the config resolved a backendRef to
 * (a Service port per protocol: HTTP/1.1 for an HTTPRoute and h2c for a
 * GRPCRoute may name the same one). */
const struct ig_pool_rt *ig_snapshot_pool_of(const struct ig_snapshot *s, const struct ig_pool *p);
const struct ig_service_rt *ig_snapshot_service(const struct ig_snapshot *s,
						const struct ig_backend_ref *be);
/* Every endpoint of every pool, each once, in a malloc'd array (*n set);
 * NULL with *n 0 when there are none or out of memory. */
struct ig_endpoint **ig_snapshot_endpoints(const struct ig_snapshot *s, size_t *n);
/* Sets each endpoint's lora_rule for the scraper (on its thread, before
 * handing it the endpoints): GIE v0.2.0's for the pools of that age
 * (InferenceModels, the decision tree) and under enableLegacyMetrics,
 * GIE v1.5's for the others; and its engine, from its pod's
 * llm-d.ai/engine-type label (pool/metrics.h), as llm-d's extractor
 * chooses: vLLM without one, and for a value that names no engine (logged
 * once per value). */
void ig_snapshot_set_lora_rules(const struct ig_snapshot *s);

/* The picker configuration (picker_load.c): --picker-config FILE, else an
 * EndpointPickerConfig document among the manifests, else GIE's default.
 * flow_control: the gateway queues whatever the configuration says
 * (--flow-control); without it, a flowControl section that no feature gate
 * turns on is a warning. 0, or -1 with errors in diags. */
int ig_gw_load_picker(const struct ig_config *cfg, const char *file, const char *preset,
		      bool flow_control, struct ig_picker_config **out, uint64_t *hash,
		      struct ig_diags *diags);
/* The same from a configuration given as text (epp --config-text). */
int ig_gw_load_picker_text(const char *text, bool flow_control, struct ig_picker_config **out,
			   uint64_t *hash, struct ig_diags *diags);

#endif
