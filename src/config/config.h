/* The resource model: the Kubernetes objects infergate understands, loaded
 * from manifest files (multi-document YAML, files or directories), with
 * Kubernetes defaults applied and validated per the CRDs. A loaded
 * struct ig_config is immutable and owns all its memory; the gateway turns
 * it into routing tables and publishes it as a snapshot. */
#ifndef IG_CONFIG_CONFIG_H
#define IG_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ig_kv {
	char *key;
	char *value;
};

/* What every object has. */
struct ig_meta {
	char *api_version;
	char *kind;
	char *name;
	char *ns;                 /* "default" when the manifest gives none */
	char *creation_timestamp; /* RFC 3339 text or NULL */
	struct ig_kv *labels;
	size_t nlabels;
	char *file; /* where the object was read from */
	int line;   /* 1-based line of the document's first key */
	size_t seq; /* load order: position among all loaded objects */
};

/* ---- gateway.networking.k8s.io/v1 ---- */

struct ig_listener {
	char *name;
	char *protocol; /* HTTP, HTTPS, TLS, TCP, UDP */
	int port;
	char *hostname; /* NULL: any */
};

struct ig_gateway {
	struct ig_meta meta;
	char *class_name;
	struct ig_listener *listeners;
	size_t nlisteners;
};

struct ig_parent_ref {
	char *group; /* default gateway.networking.k8s.io */
	char *kind;  /* default Gateway */
	char *ns;    /* default: the route's namespace */
	char *name;
	char *section_name; /* NULL: all listeners */
	int port;           /* 0: any */
};

enum ig_path_type { IG_PATH_PREFIX, IG_PATH_EXACT, IG_PATH_REGEX };
enum ig_value_match { IG_MATCH_EXACT, IG_MATCH_REGEX };

struct ig_header_match {
	enum ig_value_match type;
	char *name;
	char *value;
};

struct ig_route_match {
	enum ig_path_type path_type; /* default PathPrefix */
	char *path;                  /* default "/" */
	struct ig_header_match *headers;
	size_t nheaders;
	struct ig_header_match *query; /* queryParams */
	size_t nquery;
	char *method; /* NULL: any */
};

struct ig_backend_ref {
	char *group; /* "" core (Service), or inference.networking.(x-)k8s.io */
	char *kind;  /* default Service */
	char *ns;    /* default: the route's namespace */
	char *name;
	int port;   /* 0: unset */
	int weight; /* default 1; 0 allowed */
};

struct ig_route_rule {
	char *name; /* optional */
	struct ig_route_match *matches; /* never empty after defaults */
	size_t nmatches;
	struct ig_backend_ref *backends;
	size_t nbackends;
	uint64_t timeout_request_ms; /* 0: none */
	uint64_t timeout_backend_ms; /* 0: none */
};

struct ig_httproute {
	struct ig_meta meta;
	struct ig_parent_ref *parents;
	size_t nparents;
	char **hostnames;
	size_t nhostnames;
	struct ig_route_rule *rules; /* never empty after defaults */
	size_t nrules;
};

/* ---- inference.networking.(x-)k8s.io ---- */

enum ig_failure_mode { IG_FAIL_CLOSE, IG_FAIL_OPEN };

struct ig_pool {
	struct ig_meta meta;
	bool v1; /* inference.networking.k8s.io/v1 (else x-k8s v1alpha2) */
	struct ig_kv *selector; /* v1alpha2 map or v1 matchLabels */
	size_t nselector;
	int *target_ports; /* v1alpha2: one (targetPortNumber); v1: targetPorts */
	size_t nports;
	char *epp_name;  /* extensionRef / endpointPickerRef name, may be NULL in v1 */
	char *epp_kind;  /* default Service */
	int epp_port;    /* 0: unset (9002 inferred for Service) */
	enum ig_failure_mode failure_mode;
};

enum ig_criticality { IG_CRIT_UNSET, IG_CRIT_CRITICAL, IG_CRIT_STANDARD, IG_CRIT_SHEDDABLE };

struct ig_target_model {
	char *name;
	int32_t weight; /* valid when has_weight */
	bool has_weight;
};

struct ig_model { /* InferenceModel, x-k8s v1alpha2 */
	struct ig_meta meta;
	char *model_name;
	enum ig_criticality criticality;
	char *pool_name; /* poolRef.name, same namespace */
	char *pool_group;
	struct ig_target_model *targets;
	size_t ntargets;
	/* False when another InferenceModel of the same pool already claims
	 * model_name and is older (GIE's ModelNameInUse). */
	bool accepted;
};

struct ig_objective { /* InferenceObjective, x-k8s v1alpha2 */
	struct ig_meta meta;
	int priority; /* 0 when unset */
	bool has_priority;
	char *pool_name;
	char *pool_group;
};

struct ig_pod {
	struct ig_meta meta;
	char *ip;   /* status.podIP, else first of status.podIPs; NULL if none */
	bool ready; /* condition Ready=True, or no conditions at all */
	bool deleting; /* metadata.deletionTimestamp set */
};

/* apps/v1 Deployment: not routed, kept so that `demo`/`run` can replace
 * model-server Deployments with simulators. */
struct ig_container {
	char *name;
	char **command;
	size_t ncommand;
	char **args;
	size_t nargs;
	int *ports; /* containerPort values */
	size_t nports;
};

struct ig_deployment {
	struct ig_meta meta;
	int replicas; /* default 1 */
	struct ig_kv *template_labels;
	size_t ntemplate_labels;
	struct ig_container *containers;
	size_t ncontainers;
};

/* A document kept as text for another module to parse (the endpoint
 * picker's EndpointPickerConfig). The text is padded with newlines so that
 * its line numbers are the file's. */
struct ig_raw_doc {
	char *file;
	int line;
	char *text;
	size_t len;
};

struct ig_config_index;

struct ig_config {
	struct ig_raw_doc *picker_docs; /* kind EndpointPickerConfig */
	size_t npicker_docs;
	struct ig_gateway *gateways;
	size_t ngateways;
	struct ig_httproute *routes;
	size_t nroutes;
	struct ig_pool *pools;
	size_t npools;
	struct ig_model *models;
	size_t nmodels;
	struct ig_objective *objectives;
	size_t nobjectives;
	struct ig_pod *pods;
	size_t npods;
	struct ig_deployment *deployments;
	size_t ndeployments;
	size_t nskipped; /* documents of other kinds, ignored */
	/* Hash maps for the lookups of every request (InferenceModel by pool
	 * and modelName, InferenceObjective by name), built once the config
	 * is loaded; NULL for a config built otherwise, which is then
	 * searched linearly. */
	struct ig_config_index *index;
};

/* One problem found while loading: "file:line: path: message". */
struct ig_diag {
	char *file;
	int line;
	char *path; /* field path, e.g. spec.targetModels[1].weight */
	char *msg;
	bool warning; /* warnings do not make the load fail */
};

struct ig_diags {
	struct ig_diag *items;
	size_t n;
};

/* Loads every path (a file, or a directory whose *.yaml / *.yml / *.json
 * files are read in name order, recursively). Returns 0 and a new config,
 * or -1 when there were errors (all of them in diags; *out untouched).
 * Warnings (e.g. an HTTPRoute naming a pool that does not exist) are added
 * to diags either way. */
int ig_config_load(const char *const *paths, size_t npaths, struct ig_config **out,
		   struct ig_diags *diags);
/* Builds (or rebuilds) cfg->index from the models and objectives; the
 * loaders call it, and whoever changes those arrays afterwards must call
 * it again. Returns 0, or -1 when out of memory (the config then has no
 * index, and lookups scan). */
int ig_config_build_index(struct ig_config *cfg);
void ig_config_index_free(struct ig_config_index *x);
/* The same from text in memory, with `name` as the file name in messages. */
int ig_config_load_text(const char *name, const char *text, size_t len, struct ig_config **out,
			struct ig_diags *diags);
void ig_config_free(struct ig_config *cfg);
void ig_diags_free(struct ig_diags *d);
/* Writes every diag as "file:line: path: message" lines ("warning: " marks
 * warnings). */
void ig_diags_print(const struct ig_diags *d, void *file /* FILE* */);

/* Lookups (NULL when absent). */
const struct ig_pool *ig_config_find_pool(const struct ig_config *cfg, const char *ns,
					  const char *name);
const struct ig_gateway *ig_config_find_gateway(const struct ig_config *cfg, const char *ns,
						const char *name);
/* The accepted InferenceModel of `pool` whose modelName equals model. */
const struct ig_model *ig_config_find_model(const struct ig_config *cfg, const struct ig_pool *pool,
					    const char *model, size_t model_len);
const struct ig_objective *ig_config_find_objective(const struct ig_config *cfg, const char *ns,
						    const char *name, size_t name_len);
/* True when the pod is in the pool's namespace, matches its selector, is
 * Ready, has an IP and is not being deleted. */
bool ig_pool_selects(const struct ig_pool *pool, const struct ig_pod *pod);
bool ig_labels_match(const struct ig_kv *selector, size_t nsel, const struct ig_kv *labels,
		     size_t nlabels);

/* Adds a Pod (for `demo`/`run`, which create the simulators' Pods
 * themselves). Returns 0 or -ENOMEM. */
int ig_config_add_pod(struct ig_config *cfg, const char *ns, const char *name, const char *ip,
		      const struct ig_kv *labels, size_t nlabels);

/* `infergate check -f PATH...`: validates and prints every diag; exit 1 on errors. */
int ig_check_main(int argc, char **argv);

#endif
