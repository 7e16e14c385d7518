/* The configurable endpoint picker (GIE v1.x framework): scheduling
 * profiles of filters -> weighted scorers -> a picker, configured by an
 * EndpointPickerConfig document, plus the prefix-cache index and the
 * saturation detector. Pure like the rest of sched/: the caller passes the
 * candidates, their metrics and ages, the clock and the random generator.
 *
 * Threading: an ig_scheduler may be used by several worker threads at
 * once. ig_schedule() takes no lock and writes nothing another thread
 * writes: the prefix lookup only reads the index, and the lookup statistics
 * are counted per thread. ig_schedule_commit() (the PreRequest step that
 * records the prompt's blocks for the chosen endpoint in the prefix index)
 * locks that endpoint's part of the index and, briefly, the table lines it
 * links into; see sched/prefix.h. The state no-hit-lru-scorer keeps
 * between requests is each thread's own (the scheduler keeps one LRU per
 * thread): a thread's commits move endpoints in the LRU its own schedules
 * read, with no lock. */
#ifndef IG_SCHED_PICKER_H
#define IG_SCHED_PICKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/rand.h"
#include "core/str.h"
#include "pool/metrics.h"
#include "sched/prefix.h"

/* One candidate endpoint as the scheduler sees it. */
struct ig_sched_endpoint {
	/* The scraped figures every profile reads; NULL when never scraped
	 * (all zero, and stale for the saturation detector). */
	const struct ig_endpoint_load *m;
	/* The full metrics, read only for their adapter sets, by the LoRA
	 * scorer and the decision-tree filter: needed when
	 * ig_scheduler_reads_adapters() says so, else may be NULL, which reads
	 * as no adapters. Every figure comes from m. */
	const struct ig_endpoint_metrics *full;
	uint64_t metrics_age_ms; /* UINT64_MAX when never scraped */
	/* What the gateway dispatched to it since its last scrape and that
	 * has not finished: added to the scraped figures by the scorers so a
	 * burst does not herd onto the endpoint that looked idle. */
	int64_t inflight_requests;
	/* Prompt tokens of every request the gateway dispatched to it that
	 * has not finished, scraped or not (llm-d's inflight-load-producer,
	 * which the token-load scorer reads). */
	int64_t inflight_tokens;
	struct ig_str addr; /* "ip:port" */
	uint64_t key;	    /* stable identity (e.g. hash of addr), for the prefix index */
	/* Read only when ig_scheduler_needs() asks for them (else may be
	 * left 0): the endpoint's pod, whose labels llm-d's label filters
	 * read (NULL reads as a pod without labels), and the requests
	 * dispatched to it and not finished (active-request-scorer). */
	const struct ig_pod *pod;
	int64_t active_requests;
};

struct ig_sched_req {
	struct ig_str model;	    /* as asked */
	struct ig_str target_model; /* after the traffic split */
	bool critical;		    /* InferenceModel criticality == Critical */
	int priority;		    /* InferenceObjective priority (0 default); < 0 sheddable */
	/* Bytes the prefix-cache index hashes (gie-reference §4.3): the text of
	 * a completions prompt, the canonical JSON of chat `messages`, of a
	 * Responses request's instructions, tools and input, or of embeddings
	 * input. Only the first ig_scheduler_prefix_limit(s, cache_block_tokens)
	 * bytes are used.
	 * May be empty. */
	struct ig_str prefix_input;
	/* What the first block hash is seeded with when not just the target
	 * model: the target model followed by the request's `cache_salt`, so
	 * that salted requests share no cache entries with others. */
	struct ig_str prefix_seed;
	/* autoTune (ig_scheduler_auto_tunes): the KV-cache block size, in
	 * tokens, that the pool's model servers report (GIE reads the first
	 * candidate's vllm:cache_config_info block_size); 0 when none is
	 * reported, or to hash blocks of the configured blockSizeTokens. */
	uint32_t cache_block_tokens;
	/* Value of the test-epp-endpoint-selection header, empty if absent. */
	struct ig_str test_endpoints;
	/* Value of the header the profile handler reads (see
	 * ig_scheduler_profile_header), empty if absent or not read. */
	struct ig_str profile;
	uint64_t prompt_tokens; /* estimate, for token-load accounting */
	/* session-affinity-scorer: the key of the endpoint the request's
	 * x-session-token names (IG_SESSION_TOKEN_HEADER), 0 for none. */
	uint64_t session_key;
};

/* How many candidates a schedule ranks at most: the gateway falls back
 * down this list, and ordering a 1000-endpoint pool completely would cost
 * more than the rest of the schedule (see docs/BENCHMARKS.md). */
#define IG_SCHED_MAX_RANKED 32

/* The result: the best min(survivors, IG_SCHED_MAX_RANKED,
 * maxNumOfEndpoints) candidates ranked best first (indices into the eps
 * array given to ig_schedule), so the gateway can fall back in order. */
struct ig_sched_result {
	size_t *ranked; /* caller-provided room for min(n, IG_SCHED_MAX_RANKED) */
	size_t nranked;
	double *scores; /* optional (may be NULL): total score per ranked entry */
	/* Room for the prompt's block hashes, which the commit reads: when
	 * the result is kept past the thread's next ig_schedule (the gateway
	 * commits when the answer comes), the caller's, prefix_room_len
	 * hashes long (ig_scheduler_prefix_blocks: how many a request needs;
	 * with less room only the first blocks are matched); NULL: the
	 * thread's scratch memory, valid until its next ig_schedule. */
	uint64_t *prefix_room;
	size_t prefix_room_len;
	/* Filled by the prefix scorer for the commit step and for metrics
	 * (in prefix_room or the thread's memory). */
	const uint64_t *prefix_hashes;
	size_t nprefix_hashes;
	size_t prefix_match_blocks; /* of the best-ranked endpoint */
	size_t prefix_block_bytes;  /* bytes a block covers; 0: no prefix index */
	/* Where the lookup found the best-ranked endpoint's blocks, so that a
	 * commit for it needs no second lookup. */
	struct ig_prefix_seen prefix_seen;
	/* The primary profile: the one whose ranking this is, or that left
	 * no endpoint (ig_schedule returned -1). */
	const char *profile;
	/* Its picker's maxNumOfEndpoints; 0 when the configuration does not
	 * set it (the ranking is then the fallback list, and GIE's default
	 * is 1). */
	size_t max_endpoints;
	/* A no-hit-lru-scorer found the request cold (no candidate holds a
	 * block of its prompt): the commit moves the endpoint used to the
	 * recent end of its LRU. */
	bool lru_cold;
	/* Per-plugin durations, GIE's inference_extension_plugin_duration_seconds:
	 * with plugin_ticks (caller's room for IG_SCHED_MAX_TIMED), each plugin
	 * the schedule ran is timed in ig_ticks: plugin_ticks[k] is plugin
	 * number plugin_first + k of ig_scheduler_plugin, for k below
	 * nplugin_ticks. NULL: nothing is timed. */
	uint32_t *plugin_ticks;
	size_t nplugin_ticks;
	size_t plugin_first;
};

/* Empties a result, its room for hashes included. */
static inline void ig_sched_result_clear(struct ig_sched_result *res)
{
	res->ranked = NULL;
	res->nranked = 0;
	res->scores = NULL;
	res->prefix_room = NULL;
	res->prefix_room_len = 0;
	res->prefix_hashes = NULL;
	res->nprefix_hashes = 0;
	res->prefix_match_blocks = 0;
	res->prefix_block_bytes = 0;
	res->prefix_seen.key = 0;
	res->prefix_seen.table = 0;
	res->prefix_seen.n = 0;
	res->profile = NULL;
	res->max_endpoints = 0;
	res->lru_cold = false;
	res->plugin_ticks = NULL;
	res->nplugin_ticks = 0;
	res->plugin_first = 0;
}

struct ig_picker_config; /* parsed EndpointPickerConfig */

/* Parses an EndpointPickerConfig document (apiVersion
 * inference.networking.x-k8s.io/v1alpha1 or llm-d.ai/v1alpha1, kind
 * EndpointPickerConfig: featureGates, plugins[{name, type, parameters}],
 * schedulingProfiles[{name, plugins[{pluginRef, weight}]}],
 * saturationDetector, flowControl, dataLayer, parser) from YAML text.
 * Every field is either honoured or refused: errors (and warnings, such as
 * a plugin nothing refers to) go to diags as file:line: path: message;
 * returns 0 or -1. */
int ig_picker_config_parse(const char *file, const char *text, size_t len,
			   struct ig_picker_config **out, struct ig_diags *diags);
/* GIE's default (the "gie" configuration): queue-scorer 2, kv-cache-utilization-scorer 2,
 * prefix-cache-scorer 3, max-score-picker. */
struct ig_picker_config *ig_picker_config_default(void);
/* The EndpointPickerConfig text of a named configuration (sched/presets.c):
 * "infergate" (the gateway's default), "gie" (GIE's default profile),
 * "llm-d" (the llm-d router's prefix + load-aware profile), "v0.2" (GIE
 * v0.2.0's decision tree); NULL for another name. ig_picker_preset_name
 * lists them (NULL past the last). */
const char *ig_picker_preset(const char *name);
const char *ig_picker_preset_name(size_t i);
/* The GIE v0.2.0 behaviour (the "v0.2" configuration: decision-tree filter,
 * random picker among the survivors). */
struct ig_picker_config *ig_picker_config_decision_tree(void);
void ig_picker_config_free(struct ig_picker_config *c);

/* flowControl section, for the gateway's flow-control layer (0 means
 * "not set": the layer applies its own defaults). */
#define IG_FLOW_MAX_BANDS 16
/* Which flow of a priority band dispatches next: round-robin-fairness-policy
 * (flows take turns; infergate's default) or global-strict-fairness-policy
 * (the flow whose head request comes first by the band's ordering, as if
 * the band were one queue; GIE's default). */
enum ig_flow_fairness { IG_FLOW_ROUND_ROBIN, IG_FLOW_GLOBAL_STRICT };
/* Which request of a flow dispatches next: fcfs-ordering-policy (arrival
 * order), edf-ordering-policy (earliest deadline: the queue timeout or the
 * route's request timeout, whichever comes first) or
 * slo-deadline-ordering-policy (arrival plus the x-slo-ttft-ms header;
 * requests without it after those with it). Ties go by arrival. */
enum ig_flow_ordering { IG_FLOW_FCFS, IG_FLOW_EDF, IG_FLOW_SLO_DEADLINE };
struct ig_flow_band_config {
	int priority;
	uint64_t max_requests;
	uint64_t max_bytes;
	enum ig_flow_fairness fairness;
	enum ig_flow_ordering ordering;
};
struct ig_flow_control_config {
	bool present;
	int line; /* of the flowControl key */
	uint64_t max_bytes;
	uint64_t max_requests;
	uint64_t default_request_ttl_ms;
	/* Bands for priorities not listed in bands (defaultPriorityBand). */
	struct ig_flow_band_config default_band;
	struct ig_flow_band_config bands[IG_FLOW_MAX_BANDS];
	size_t nbands;
	/* static-usage-limit-policy: a band dispatches while the pool's
	 * saturation is below this (0: not set, 1.0). */
	double usage_limit;
};
const struct ig_flow_control_config *
ig_picker_config_flow_control(const struct ig_picker_config *c);
/* The settings of `priority`'s band: a listed band, else the default. */
const struct ig_flow_band_config *ig_flow_band(const struct ig_flow_control_config *f,
					       int priority);
/* The saturation below which `priority`'s band may dispatch. */
double ig_flow_usage_limit(const struct ig_flow_control_config *f, int priority);
/* True when featureGates lists `gate` (flowControl, enableLegacyMetrics,
 * dataLayer). */
bool ig_picker_config_feature(const struct ig_picker_config *c, const char *gate);

struct ig_scheduler;
struct ig_scheduler *ig_scheduler_new(const struct ig_picker_config *c);
/* A plugin a schedule runs, as GIE labels its durations: the extension
 * point ("Filter", "Scorer" or "Picker"), its type and its name in the
 * configuration (the type's when it was given none, as for the
 * max-score-picker a profile gets by default). */
struct ig_sched_plugin {
	const char *extension_point, *type, *name;
};
/* Every plugin of every profile is numbered, profile after profile, in
 * the order a schedule runs them: filters, scorers, picker (a plugin in
 * two roles counts twice). The prefix match of the request is timed as
 * part of the first prefix-cache-scorer of the profile, whose Score does
 * that work in GIE. */
#define IG_SCHED_MAX_TIMED 72
size_t ig_scheduler_nplugins(const struct ig_scheduler *s);
const struct ig_sched_plugin *ig_scheduler_plugin(const struct ig_scheduler *s, size_t i);
void ig_scheduler_free(struct ig_scheduler *s);
/* Whether some profile reads adapter sets (a LoRA scorer, the decision-tree
 * filter): then each candidate's `full` metrics are wanted. */
bool ig_scheduler_reads_adapters(const struct ig_scheduler *s);
/* Whether some profile runs GIE v0.2.0's decision tree, which sheds
 * non-critical requests by its own thresholds (the pool's saturation
 * detector then does not refuse them as well). */
bool ig_scheduler_sheds_itself(const struct ig_scheduler *s);

/* Whether the configuration declares destination-endpoint-served-verifier
 * (GIE v1.5's conformance plugin): each response then carries
 * IG_SERVED_TEST_HEADER with the endpoint that served it. */
bool ig_scheduler_reports_served(const struct ig_scheduler *s);
/* Whether the configuration's parser is llm-d Router's passthrough-parser:
 * a request's body is not read (no model, no API check, no prompt for the
 * prefix index) and goes to the pod as it came. */
bool ig_scheduler_raw_body(const struct ig_scheduler *s);
#define IG_SERVED_TEST_HEADER "x-conformance-test-served-endpoint"

/* What a schedule reads beyond the candidates' figures, by the plugins
 * the configuration runs: IG_SCHED_NEEDS_PODS, each candidate's pod (the
 * role and label filters); IG_SCHED_NEEDS_ACTIVE, its active_requests
 * (active-request-scorer); IG_SCHED_NEEDS_SESSION, the request's
 * session_key (session-affinity-scorer, which also makes each response
 * carry IG_SESSION_TOKEN_HEADER). */
#define IG_SCHED_NEEDS_PODS 1u
#define IG_SCHED_NEEDS_ACTIVE 2u
#define IG_SCHED_NEEDS_SESSION 4u
unsigned ig_scheduler_needs(const struct ig_scheduler *s);

/* llm-d's session-affinity-scorer: the request header naming the endpoint
 * that served the session before, and that each response sets, as the
 * standard base64 of the endpoint's namespaced name (GIE's:
 * "namespace/pod-rank-N", N the port's index in the pool's targetPorts). */
#define IG_SESSION_TOKEN_HEADER "x-session-token"

/* header-profile-handler: the (lower-case) request header whose value
 * names the profile to run; NULL when the handler reads no header. */
const char *ig_scheduler_profile_header(const struct ig_scheduler *s);

/* ig_schedule: the profile handler found no profile to run (the header
 * names none); the gateway answers 400. */
#define IG_SCHED_NO_PROFILE (-2)

/* Runs the profile handler and the profile(s) it picks: filters, scorers,
 * picker; the primary profile's ranking is the result. Returns 0 with the
 * ranked candidates, -1 when nothing is left (the gateway answers 429), or
 * IG_SCHED_NO_PROFILE. It allocates nothing once the thread has met a pool
 * as large: its scratch memory is the thread's own and kept between calls. */
int ig_schedule(struct ig_scheduler *s, const struct ig_sched_req *req,
		const struct ig_sched_endpoint *eps, size_t n, struct ig_rng *rng,
		struct ig_sched_result *res);
/* PreRequest: records the request's prefix blocks for the endpoint that
 * was finally used (key of that endpoint). */
void ig_schedule_commit(struct ig_scheduler *s, const struct ig_sched_result *res,
			uint64_t endpoint_key);
/* The same for an endpoint that reports how many blocks its KV cache holds
 * (vllm:cache_config_info num_gpu_blocks; 0: not reported): under
 * autoTune that is how many of its blocks the index keeps, instead of
 * lruCapacityPerServer. */
void ig_schedule_commit_blocks(struct ig_scheduler *s, const struct ig_sched_result *res,
			       uint64_t endpoint_key, uint32_t gpu_blocks);
/* Whether the prefix index tunes itself to what the endpoints report
 * (autoTune: true): then requests carry cache_block_tokens and commits
 * gpu_blocks. */
bool ig_scheduler_auto_tunes(const struct ig_scheduler *s);
/* How many bytes of prefix_input the prefix index hashes at most (blocks
 * times block size) for requests with that cache_block_tokens; 0 when no
 * profile uses the index. */
size_t ig_scheduler_prefix_limit(const struct ig_scheduler *s, uint32_t cache_block_tokens);
/* How many block hashes a request with input_len bytes of prefix_input
 * and that cache_block_tokens needs room for at most (see prefix_room);
 * 0 when no profile uses the index. */
size_t ig_scheduler_prefix_blocks(const struct ig_scheduler *s, uint32_t cache_block_tokens,
				  size_t input_len);
/* Forgets an endpoint that left the pool (prefix index entries). */
void ig_scheduler_forget(struct ig_scheduler *s, uint64_t endpoint_key);

/* Saturation (GIE utilization-detector, gie-reference §4.4): mean over the
 * candidates of max(waiting/queueDepthThreshold, kv/kvCacheUtilThreshold),
 * stale (age > metricsStalenessThreshold) or missing metrics counting 1.0;
 * no candidates: 1.0. Parameters from the config (defaults 5, 0.8, 200 ms). */
double ig_scheduler_saturation(const struct ig_scheduler *s, const struct ig_sched_endpoint *eps,
			       size_t n);

struct ig_prefix_stats {
	uint64_t entries; /* (hash, endpoint) pairs held */
	uint64_t bytes;	  /* memory the index uses */
	uint64_t lookups, hit_blocks, lookup_blocks;
};
void ig_scheduler_prefix_stats(const struct ig_scheduler *s, struct ig_prefix_stats *out);

#endif
