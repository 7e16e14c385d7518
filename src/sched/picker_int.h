/* The parsed EndpointPickerConfig, shared by the loader (picker_config.c)
 * and the scheduler (picker.c). Not part of the public interface. */
#ifndef IG_SCHED_PICKER_INT_H
#define IG_SCHED_PICKER_INT_H

#include "sched/picker.h"
#include "sched/sched.h"

/* What a plugin is for: which slot of the configuration may refer to it. */
enum plugin_kind {
	PK_FILTER,
	PK_SCORER,
	PK_PICKER,
	PK_DETECTOR,	/* a saturation detector, usable as a filter too */
	PK_HANDLER,	/* profile handler */
	PK_FAIRNESS,	/* flow control: which flow of a band goes next */
	PK_ORDERING,	/* flow control: which request of a flow goes next */
	PK_USAGE_LIMIT, /* flow control: the saturation a band may dispatch at */
	PK_SOURCE,	/* data layer */
	PK_EXTRACTOR,
	PK_PRODUCER, /* prefix hashing, in-flight load */
	PK_PARSER,
	PK_RESPONSE, /* request control: runs on the response headers */
};

enum plugin_type {
	PT_QUEUE_SCORER,
	PT_RUNNING_SCORER,
	PT_KV_SCORER,
	PT_LORA_SCORER,
	PT_TOKEN_LOAD_SCORER,
	PT_LOAD_AWARE_SCORER,
	PT_PREFIX_SCORER,
	PT_MAX_SCORE_PICKER,
	PT_RANDOM_PICKER,
	PT_WEIGHTED_RANDOM_PICKER,
	PT_DECISION_TREE_FILTER,
	PT_UTILIZATION_DETECTOR,
	PT_PREFIX_AFFINITY_FILTER,
	PT_LOAD_BOUND_SCORER,
	PT_LORA_SLOT_SCORER,
	PT_HEADER_TESTING_FILTER,
	PT_SINGLE_PROFILE_HANDLER,
	PT_HEADER_PROFILE_HANDLER,
	PT_GLOBAL_STRICT_FAIRNESS,
	PT_ROUND_ROBIN_FAIRNESS,
	PT_FCFS_ORDERING,
	PT_EDF_ORDERING,
	PT_SLO_DEADLINE_ORDERING,
	PT_STATIC_USAGE_LIMIT,
	/* What the gateway does itself (it scrapes vLLM's /metrics, hashes
	 * prompts, counts what it dispatched, parses OpenAI bodies): accepted
	 * with the parameters that describe exactly that. */
	PT_METRICS_DATA_SOURCE,
	PT_CORE_METRICS_EXTRACTOR,
	PT_PREFIX_PRODUCER,
	PT_INFLIGHT_LOAD_PRODUCER,
	PT_OPENAI_PARSER,
	/* llm-d Router's parser that reads nothing of the body: it goes to
	 * the pod as it came, with no model, API check or prompt. */
	PT_PASSTHROUGH_PARSER,
	/* GIE v1.5's conformance plugin: the response carries the endpoint
	 * the proxy reports it served in x-conformance-test-served-endpoint. */
	PT_SERVED_VERIFIER,
	/* llm-d Router's filters on pod labels: the llm-d.ai/role filters,
	 * label-selector-filter (a metav1.LabelSelector) with its deprecated
	 * name by-label-selector, and the deprecated by-label. */
	PT_DECODE_FILTER,
	PT_PREFILL_FILTER,
	PT_ENCODE_FILTER,
	PT_LABEL_SELECTOR_FILTER,
	PT_BY_LABEL_SELECTOR,
	PT_BY_LABEL,
	/* llm-d Router's scorers */
	PT_SESSION_AFFINITY_SCORER,
	PT_ACTIVE_REQUEST_SCORER,
	PT_NO_HIT_LRU_SCORER,
	/* llm-d's context-length-aware: a scorer, and a filter too with
	 * enableFiltering. */
	PT_CONTEXT_LENGTH_AWARE,
	PT_COUNT
};

/* Every numeric parameter any plugin type takes, with GIE's defaults. */
struct plugin_params {
	uint64_t queue_threshold_tokens; /* token-load-scorer */
	double load_threshold;		 /* load-aware-scorer: waiting requests that score 0 */
	uint32_t block_size_tokens;	 /* prefix-cache-scorer, approx-prefix-cache-producer */
	uint32_t max_prefix_blocks;
	uint64_t max_prefix_tokens;
	uint32_t lru_capacity;
	/* autoTune: block size and capacity from each endpoint's
	 * vllm:cache_config_info where it gives them (off by default here,
	 * unlike GIE: see docs/ARCHITECTURE.md) */
	bool auto_tune;
	size_t max_endpoints;	      /* pickers; 0 ranks every survivor */
	double queue_depth_threshold; /* utilization-detector */
	double kv_threshold;
	uint64_t staleness_ms;
	double headroom;
	/* prefix-cache-affinity-filter: the share of the prompt's blocks an
	 * endpoint holds to be sticky; the chance a request keeps everyone;
	 * maxTTFTPenaltyMs (no effect: it compares latency predictions) */
	double affinity_threshold;
	double exploration;
	double ttft_penalty_ms;
	double bound_slack;	/* load-bound-scorer: share above the mean load */
	double bound_headroom;	/* load-bound-scorer: requests above that */
	double usage_threshold; /* static-usage-limit-policy */
	double idle_threshold;	/* active-request-scorer: requests that still count idle */
	double max_busy_score;	/* active-request-scorer: the best score of a busy pod */
	uint32_t lru_size;	/* no-hit-lru-scorer: endpoints its LRU holds */
	bool enable_filtering;	/* context-length-aware */
};

/* What llm-d's label filters keep. by-label (and the role filters): pods
 * whose `label` has one of `values`, and with allows_no_label those
 * without it (llm-d reads an absent label as the value "", so a "" among
 * the values keeps them too). label-selector-filter (selector true): pods
 * the metav1.LabelSelector selects; an empty one selects every pod. */
struct label_match {
	bool selector;
	struct ig_label_selector sel;
	char *label;
	char **values;
	size_t nvalues;
	bool allows_no_label;
};

/* sched/llmd.c */
struct label_match *label_match_role(enum plugin_type t);
struct label_match *label_match_clone(const struct label_match *m);
void label_match_free(struct label_match *m);
bool label_match_keeps(const struct label_match *m, const struct ig_pod *pod);

/* context-length-aware (its label in m->label): the pod's score for a
 * request of `tokens`, and whether its filter keeps the pod. */
double context_length_score(const struct label_match *m, const struct ig_pod *pod, uint64_t tokens);
bool context_length_keeps(const struct label_match *m, const struct ig_pod *pod, uint64_t tokens);

/* sched/picker.c: the calling thread's index, 0, 1, ... in the order
 * threads first asked, kept for the thread's life: which of the
 * scheduler's per-thread parts is its own. */
unsigned sched_thread_index(void);

/* no-hit-lru-scorer's LRUs of the endpoints that served cold requests:
 * one per thread, holding the endpoints the thread's own cold requests
 * went to (see llmd.c). */
struct nohit_lru;
struct nohit_lru *nohit_lru_new(uint32_t size);
void nohit_lru_free(struct nohit_lru *l);
/* Moves the endpoint to the recent end of the calling thread's LRU (adds
 * it, dropping the least recently used when full). */
void nohit_lru_touch(struct nohit_lru *l, uint64_t key);
/* Adds w times llm-d's score to scores[k] for each candidate k of set:
 * 0.5 each for a warm request; for a cold one, the candidates ranked
 * among themselves by the calling thread's LRU: those it never sent a
 * cold request first (in candidate order), then the least recently used,
 * each 1 - rank / (n - 1); 1 for a single candidate. */
void nohit_lru_score(struct nohit_lru *l, bool cold, const struct ig_sched_endpoint *eps,
		     const struct ig_sched_set *set, double *scores, double w);

struct plugin {
	char *name;
	enum plugin_type type;
	int line;
	bool has_params; /* a non-empty parameters object was given */
	bool used;	 /* some part of the configuration refers to it */
	struct plugin_params p;
	/* header-profile-handler */
	char *header;	       /* lower case */
	char *default_profile; /* run when the header is absent */
	int default_profile_line;
	struct label_match *labels; /* the label filters; NULL for others */
};

struct profile_entry {
	size_t plugin; /* index into plugins */
	double weight;
};

#define MAX_PROFILE_ENTRIES 32

struct profile {
	char *name;
	int line;
	struct profile_entry e[MAX_PROFILE_ENTRIES];
	size_t n;
};

#define MAX_PLUGINS 64
#define MAX_PROFILES 8

struct ig_picker_config {
	struct plugin plugins[MAX_PLUGINS];
	size_t nplugins;
	struct profile profiles[MAX_PROFILES];
	size_t nprofiles;
	/* The profile handler. single-profile-handler (the default) when
	 * profile_header is NULL: the one profile runs. header-profile-handler
	 * otherwise: the profile named by that request header runs, or
	 * default_profile when the header is absent. */
	char *profile_header;
	size_t default_profile;
	/* The saturation detector's parameters (the referenced or first
	 * utilization-detector, else defaults). */
	struct plugin_params detector;
	/* Prefix hashing and its index, when a prefix scorer, affinity filter
	 * or approx-prefix-cache-producer is configured. */
	bool prefix_index;
	struct plugin_params prefix;
	struct ig_flow_control_config flow;
	unsigned gates;	    /* GATE_* bits */
	bool report_served; /* a destination-endpoint-served-verifier is declared */
	bool raw_body;	    /* parser.pluginRef names a passthrough-parser */
};

#define GATE_FLOW_CONTROL 0x1u
#define GATE_LEGACY_METRICS 0x2u
#define GATE_DATA_LAYER 0x4u

const char *picker_type_name(enum plugin_type t);
enum plugin_kind picker_type_kind(enum plugin_type t);
void picker_default_params(struct plugin_params *p);

#endif
