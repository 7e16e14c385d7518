/* Loading an EndpointPickerConfig (gie-reference §4.2, §4.4): libyaml's
 * document API, decoding by the known structure, GIE's defaults, and every
 * rule we can check up front. Problems become diags "file:line: path:
 * message"; decoding carries on after an error so that one run reports all
 * of them.
 *
 * Nothing is accepted and then ignored: every field either changes what
 * the gateway does or is refused with a message that says what infergate
 * supports instead. Like GIE (which decodes strictly), unknown fields are
 * errors; a plugin nothing refers to is a warning.
 *
 * Decoding follows the schema, never the document's own shape, so its
 * cost is bounded by the fixed limits below; a node-visit budget guards
 * against alias tricks on top of that. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/yaml_node.h"

#include "sched/picker_int.h"
#include "sched/prefix.h"

#define MAX_TEXT_BYTES (1u << 20)
#define MAX_NESTING 32
#define MAX_ANCHORS 100u
#define MAX_VISITS 200000u
#define MAX_DIAGS 200u
#define MAX_NAME 253
#define MAX_HEADER_NAME 128
#define PATH_LEN 160

struct session {
	const char *file;
	struct ig_diags *diags;
	size_t nerrors;
	yaml_document_t *doc;
	size_t visits;
	struct ig_picker_config *cfg;
	int detector_ref;	     /* plugin index named by saturationDetector, or -1 */
	int detector_line;	     /* line of the top-level saturationDetector, 0 if none */
	bool thresholds;	     /* saturationDetector gave GIE v1.2-v1.4 thresholds */
	struct plugin_params legacy; /* ... and these are they */
	int profiles_line;
	int handler;	 /* plugin index of the declared profile handler, or -1 */
	bool data_layer; /* a dataLayer section was given */
	bool parser;	 /* a parser section was given */
	bool usage_ref;	 /* flowControl.usageLimitPolicyPluginRef was given */
};

/* ---- plugin types -------------------------------------------------------- */

static const struct {
	const char *name;
	enum plugin_kind kind;
} types[PT_COUNT] = {
    [PT_QUEUE_SCORER] = {"queue-scorer", PK_SCORER},
    [PT_RUNNING_SCORER] = {"running-requests-size-scorer", PK_SCORER},
    [PT_KV_SCORER] = {"kv-cache-utilization-scorer", PK_SCORER},
    [PT_LORA_SCORER] = {"lora-affinity-scorer", PK_SCORER},
    [PT_TOKEN_LOAD_SCORER] = {"token-load-scorer", PK_SCORER},
    [PT_LOAD_AWARE_SCORER] = {"load-aware-scorer", PK_SCORER},
    [PT_PREFIX_SCORER] = {"prefix-cache-scorer", PK_SCORER},
    [PT_MAX_SCORE_PICKER] = {"max-score-picker", PK_PICKER},
    [PT_RANDOM_PICKER] = {"random-picker", PK_PICKER},
    [PT_WEIGHTED_RANDOM_PICKER] = {"weighted-random-picker", PK_PICKER},
    [PT_DECISION_TREE_FILTER] = {"decision-tree-filter", PK_FILTER},
    [PT_UTILIZATION_DETECTOR] = {"utilization-detector", PK_DETECTOR},
    [PT_PREFIX_AFFINITY_FILTER] = {"prefix-cache-affinity-filter", PK_FILTER},
    [PT_LOAD_BOUND_SCORER] = {"load-bound-scorer", PK_SCORER},
    [PT_LORA_SLOT_SCORER] = {"lora-slot-scorer", PK_SCORER},
    [PT_HEADER_TESTING_FILTER] = {"header-based-testing-filter", PK_FILTER},
    [PT_SINGLE_PROFILE_HANDLER] = {"single-profile-handler", PK_HANDLER},
    [PT_HEADER_PROFILE_HANDLER] = {"header-profile-handler", PK_HANDLER},
    [PT_GLOBAL_STRICT_FAIRNESS] = {"global-strict-fairness-policy", PK_FAIRNESS},
    [PT_ROUND_ROBIN_FAIRNESS] = {"round-robin-fairness-policy", PK_FAIRNESS},
    [PT_FCFS_ORDERING] = {"fcfs-ordering-policy", PK_ORDERING},
    [PT_EDF_ORDERING] = {"edf-ordering-policy", PK_ORDERING},
    [PT_SLO_DEADLINE_ORDERING] = {"slo-deadline-ordering-policy", PK_ORDERING},
    [PT_STATIC_USAGE_LIMIT] = {"static-usage-limit-policy", PK_USAGE_LIMIT},
    [PT_METRICS_DATA_SOURCE] = {"metrics-data-source", PK_SOURCE},
    [PT_CORE_METRICS_EXTRACTOR] = {"core-metrics-extractor", PK_EXTRACTOR},
    [PT_PREFIX_PRODUCER] = {"approx-prefix-cache-producer", PK_PRODUCER},
    [PT_INFLIGHT_LOAD_PRODUCER] = {"inflight-load-producer", PK_PRODUCER},
    [PT_OPENAI_PARSER] = {"openai-parser", PK_PARSER},
    [PT_PASSTHROUGH_PARSER] = {"passthrough-parser", PK_PARSER},
    [PT_SERVED_VERIFIER] = {"destination-endpoint-served-verifier", PK_RESPONSE},
    [PT_DECODE_FILTER] = {"decode-filter", PK_FILTER},
    [PT_PREFILL_FILTER] = {"prefill-filter", PK_FILTER},
    [PT_ENCODE_FILTER] = {"encode-filter", PK_FILTER},
    [PT_LABEL_SELECTOR_FILTER] = {"label-selector-filter", PK_FILTER},
    [PT_BY_LABEL_SELECTOR] = {"by-label-selector", PK_FILTER},
    [PT_BY_LABEL] = {"by-label", PK_FILTER},
    [PT_SESSION_AFFINITY_SCORER] = {"session-affinity-scorer", PK_SCORER},
    [PT_ACTIVE_REQUEST_SCORER] = {"active-request-scorer", PK_SCORER},
    [PT_NO_HIT_LRU_SCORER] = {"no-hit-lru-scorer", PK_SCORER},
    [PT_CONTEXT_LENGTH_AWARE] = {"context-length-aware", PK_SCORER},
};

/* Plugin types of GIE v1.x and llm-d Router that infergate does not run,
 * and why: a config naming one gets that reason rather than "unknown". */
static const struct {
	const char *name;
	const char *why;
} unsupported[] = {
    {"pd-profile-handler", "prefill/decode disaggregation needs llm-d's routing sidecar on "
			   "the decode pods, which infergate does not drive"},
    {"disagg-profile-handler", "prefill/decode disaggregation needs llm-d's routing sidecar on "
			       "the decode pods, which infergate does not drive"},
    {"data-parallel-profile-handler",
     "infergate sends to each ip:port itself; use single-profile-handler"},
    {"slo-aware-profile-handler", "it needs GIE's latency predictor"},
    {"predicted-latency-scorer", "it needs GIE's latency predictor"},
    {"predicted-latency-producer", "it needs GIE's latency predictor"},
    {"latency-scorer", "it needs GIE's latency predictor"},
    {"latency-slo-admitter", "it needs GIE's latency predictor"},
    {"slo-headroom-tier-filter", "it needs GIE's latency predictor"},
    {"concurrency-detector", "the saturation detector is utilization-detector"},
    {"k8s-notification-source", "infergate reads pods from the manifests it is given"},
    {"endpoint-notification-source", "infergate reads pods from the manifests it is given"},
    {"vllmgrpc-parser", "infergate parses OpenAI-style JSON bodies (openai-parser)"},
    {"request-attribute-reporter", "it is not implemented"},
    /* llm-d Router's own registry (pkg/epp/framework/plugins/register.go). */
    {"precise-prefix-cache-scorer",
     "it reads the KV-cache events of vLLM's llm-d-kv-cache indexer, which infergate does not "
     "subscribe to; prefix-cache-scorer estimates the same from the prompts it routed"},
    {"token-producer", "infergate does not tokenize prompts (it estimates four characters a "
		       "token); no plugin here reads token IDs"},
    {"tokenizer", "infergate does not tokenize prompts (it estimates four characters a token); "
		  "no plugin here reads token IDs"},
    {"probabilistic-admitter",
     "admission here is the saturation detector (utilization-detector) and flow control"},
    {"prefix-based-pd-decider", "prefill/decode disaggregation needs llm-d's routing sidecar "
				"on the decode pods, which infergate does not drive"},
    {"always-disagg-pd-decider", "prefill/decode disaggregation needs llm-d's routing sidecar "
				 "on the decode pods, which infergate does not drive"},
    {"always-disagg-multimodal-decider",
     "encode/prefill/decode disaggregation needs llm-d's routing sidecar on the decode pods, "
     "which infergate does not drive"},
    {"prefill-header-handler", "it only carries the prefill pod to llm-d's routing sidecar "
			       "(prefill/decode disaggregation), which infergate does not drive"},
    {"disagg-headers-handler", "it only carries the prefill pod to llm-d's routing sidecar "
			       "(prefill/decode disaggregation), which infergate does not drive"},
    {"vertexai-parser", "infergate parses OpenAI-style JSON bodies (openai-parser)"},
    {"models-data-source",
     "infergate takes a pool's models from its InferenceModels/InferenceObjectives and the "
     "request, not from each server's /v1/models"},
    {"models-data-extractor",
     "infergate takes a pool's models from its InferenceModels/InferenceObjectives and the "
     "request, not from each server's /v1/models"},
    {"precise-prefix-cache-producer",
     "it reads the KV-cache events of vLLM's llm-d-kv-cache indexer, which infergate does not "
     "subscribe to; prefix-cache-scorer estimates the same from the prompts it routed"},
    {"burst-prefix-cache-producer",
     "it is not implemented; prefix-cache-scorer's index (approx-prefix-cache-producer) "
     "serves the prefix scorers here"},
    {"mm-embeddings-cache-producer", "infergate does not hash multimodal inputs"},
    {"mm-embeddings-cache-scorer", "infergate does not hash multimodal inputs"},
    {"topology-extractor", "infergate reads no topology labels of pods for routing"},
    {"topology-affinity-filter", "infergate reads no topology labels of pods for routing"},
    {"topology-affinity-scorer", "infergate reads no topology labels of pods for routing"},
    {"dcgm-data-source", "infergate scrapes the model servers' own /metrics only, not DCGM"},
    {"dcgm-extractor", "infergate scrapes the model servers' own /metrics only, not DCGM"},
    {"endpoint-attribute-filter",
     "it reads attributes of other data sources (DCGM), which infergate does not scrape"},
    {"endpoint-attribute-scorer",
     "it reads attributes of other data sources (DCGM), which infergate does not scrape"},
    {"program-aware-fairness", "flow control here offers round-robin-fairness-policy and "
			       "global-strict-fairness-policy"},
    {"soft-reflective-ceiling-policy",
     "flow control here offers static-usage-limit-policy (usageLimitPolicyPluginRef)"},
    {"sheddable-eviction-filter", "flow control here never evicts a request once dispatched"},
    {"priority-then-time-eviction-order-policy",
     "flow control here never evicts a request once dispatched"},
};

const char *picker_type_name(enum plugin_type t)
{
	return types[t].name;
}

enum plugin_kind picker_type_kind(enum plugin_type t)
{
	return types[t].kind;
}

void picker_default_params(struct plugin_params *p)
{
	*p = (struct plugin_params){
	    .queue_threshold_tokens = 4194304,
	    .load_threshold = 128,
	    .block_size_tokens = 16,
	    .max_prefix_blocks = 256,
	    .lru_capacity = 31250,
	    .queue_depth_threshold = 5,
	    .kv_threshold = 0.8,
	    .staleness_ms = 200,
	    .affinity_threshold = 0.80,
	    .exploration = 0.01,
	    .ttft_penalty_ms = 5000,
	    .bound_slack = 0.25,
	    .bound_headroom = 4,
	    .usage_threshold = 1.0,
	    .max_busy_score = 1.0,
	    .lru_size = 1024,
	    .auto_tune = true, /* GIE's default */
	};
}

/* ---- diags ----------------------------------------------------------------- */

static void vdiag(struct session *s, bool warning, int line, const char *path, const char *fmt,
		  va_list ap)
{
	if (!warning)
		s->nerrors++;
	if (s->diags->n >= MAX_DIAGS)
		return;
	struct ig_diag *items = realloc(s->diags->items, (s->diags->n + 1) * sizeof(*items));
	if (!items) {
		ig_diags_resource(s->diags, ENOMEM);
		return;
	}
	s->diags->items = items;
	struct ig_diag *g = &items[s->diags->n];
	*g = (struct ig_diag){.line = line, .warning = warning};
	g->file = strdup(s->file);
	g->path = strdup(path ? path : "");
	if (vasprintf(&g->msg, fmt, ap) < 0)
		g->msg = NULL;
	if (!g->file || !g->path || !g->msg) {
		free(g->file);
		free(g->path);
		free(g->msg);
		ig_diags_resource(s->diags, ENOMEM);
		return;
	}
	s->diags->n++;
}

__attribute__((format(printf, 4, 5))) static void err(struct session *s, int line, const char *path,
						      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(s, false, line, path, fmt, ap);
	va_end(ap);
}

/* Out of memory: an error, and a failure for want of resources, which a
 * reload tries again. */
static void oom(struct session *s, int line, const char *path)
{
	err(s, line, path, "out of memory");
	ig_diags_resource(s->diags, ENOMEM);
}

__attribute__((format(printf, 4, 5))) static void warn(struct session *s, int line,
						       const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(s, true, line, path, fmt, ap);
	va_end(ap);
}

/* out = parent.key, parent[i] when key is NULL. */
static void sub(char *out, const char *parent, const char *key, size_t i)
{
	int n;
	if (key)
		n = snprintf(out, PATH_LEN, "%s%s%s", parent, *parent ? "." : "", key);
	else
		n = snprintf(out, PATH_LEN, "%s[%zu]", parent, i);
	if (n < 0 || n >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

/* ---- YAML access --------------------------------------------------------- */

static yaml_node_t *node_at(struct session *s, int idx)
{
	if (++s->visits > MAX_VISITS)
		return NULL;
	return yaml_document_get_node(s->doc, idx);
}

static struct ig_str scalar(const yaml_node_t *n)
{
	return (struct ig_str){(const char *)n->data.scalar.value, n->data.scalar.length};
}

/* Calls fn for each (key, value) pair of a mapping whose key is a scalar. */
#define FOR_PAIRS(s, map, k, v)                                                                    \
	for (yaml_node_pair_t *p_ = (map)->data.mapping.pairs.start;                               \
	     p_ < (map)->data.mapping.pairs.top; p_++)                                             \
		for (yaml_node_t *k = node_at(s, p_->key), *v = node_at(s, p_->value); k && v;     \
		     k = NULL)

static size_t seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_item(struct session *s, yaml_node_t *seq, size_t i)
{
	return node_at(s, seq->data.sequence.items.start[i]);
}

/* The value of `key`, NULL when absent or null; *line is the key's line
 * (the mapping's when absent). */
static yaml_node_t *get(struct session *s, yaml_node_t *map, const char *key, int *line)
{
	*line = ig_yaml_line(map);
	FOR_PAIRS(s, map, k, v)
	{
		if (!ig_yaml_scalar_is(k, key))
			continue;
		*line = ig_yaml_line(k);
		return ig_yaml_is_null(v) ? NULL : v;
	}
	return NULL;
}

static bool expect(struct session *s, yaml_node_t *v, yaml_node_type_t type, int line,
		   const char *path)
{
	static const char *const what[] = {
	    [YAML_SCALAR_NODE] = "a string",
	    [YAML_SEQUENCE_NODE] = "a list",
	    [YAML_MAPPING_NODE] = "an object",
	};
	if (v->type == type)
		return true;
	err(s, line, path, "must be %s", what[type]);
	return false;
}

static char *dup_scalar(const yaml_node_t *n)
{
	return ig_str_dup(scalar(n));
}

/* Refuses the key `k` of the pair `at` of `map` when an earlier pair has
 * it too: only one would count. */
static void check_twice(struct session *s, yaml_node_t *map, yaml_node_pair_t *at, yaml_node_t *k,
			const char *path)
{
	for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < at; b++) {
		yaml_node_t *o = node_at(s, b->key);
		if (o && o->type == YAML_SCALAR_NODE && ig_str_eq(scalar(o), scalar(k))) {
			err(s, ig_yaml_line(k), path, "given twice (first on line %d)",
			    ig_yaml_line(o));
			return;
		}
	}
}

/* Fields of llm-d Router v0.10's EndpointPickerConfig that infergate
 * does not honour, by their path, and why: refused with the reason rather
 * than as unknown (a typo). */
static const struct {
	const char *path, *why;
} unsupported_fields[] = {
    {"flowControl.enableEviction", "flow control here never evicts a request once dispatched"},
    {"flowControl.defaultNegativePriorityBand",
     "list the negative priorities' bands in priorityBands, or let defaultPriorityBand serve "
     "them"},
    {"dataLayer.injectDefaults", "infergate's data layer is its built-in scraper; its sources "
				 "are those of dataLayer.sources"},
    {"dataLayer.discovery", "infergate reads pods from the manifests or the API server it is "
			    "given"},
    {"dataLayer.crossReplicaSyncerPluginRef",
     "each infergate replica keeps its own view (no state is shared between replicas)"},
    {"dataLayer.crossReplicaSyncInterval",
     "each infergate replica keeps its own view (no state is shared between replicas)"},
};

/* Refuses the fields of a mapping that its schema does not have (GIE
 * decodes strictly) and keys given twice (only one would count). */
static void check_keys(struct session *s, yaml_node_t *map, const char *path,
		       const char *const *known)
{
	for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
	     a++) {
		yaml_node_t *k = node_at(s, a->key);
		if (!k)
			return;
		if (k->type != YAML_SCALAR_NODE) {
			err(s, ig_yaml_line(k), path, "field names must be strings");
			continue;
		}
		char kp[PATH_LEN];
		sub(kp, path, (const char *)k->data.scalar.value, 0);
		const char *const *q = known;
		while (*q && !ig_yaml_scalar_is(k, *q))
			q++;
		if (!*q) {
			const char *why = NULL;
			for (size_t i = 0;
			     i < sizeof unsupported_fields / sizeof unsupported_fields[0]; i++)
				if (strcmp(kp, unsupported_fields[i].path) == 0)
					why = unsupported_fields[i].why;
			if (why)
				err(s, ig_yaml_line(k), kp, "not supported by infergate: %s", why);
			else
				err(s, ig_yaml_line(k), kp, "unknown field");
			continue;
		}
		check_twice(s, map, a, k, kp);
	}
}

/* ---- numbers ------------------------------------------------------------- */

/* A plain scalar holding a finite decimal number. */
static int to_double(const yaml_node_t *n, double *out)
{
	char buf[64];
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    n->data.scalar.length == 0 || n->data.scalar.length >= sizeof buf)
		return -1;
	memcpy(buf, n->data.scalar.value, n->data.scalar.length);
	buf[n->data.scalar.length] = '\0';
	for (const char *c = buf; *c; c++)
		if (!strchr("0123456789.eE+-", *c))
			return -1; /* refuses inf, nan and hex floats */
	char *end;
	errno = 0;
	double d = strtod(buf, &end);
	if (*end || errno || !isfinite(d))
		return -1;
	*out = d;
	return 0;
}

static int to_u64(const yaml_node_t *n, uint64_t *out)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return -1;
	return ig_str_to_u64(scalar(n), out);
}

/* Go's time.ParseDuration, which metav1.Duration uses: an optional sign,
 * then "0" alone or numbers each with a unit (ns, us, µs, μs, ms, s, m,
 * h), decimal fractions allowed ("1m30s", "1.5h", "-2s"); in nanoseconds,
 * refused past int64 as Go does. A plain scalar YAML reads as a number
 * ("200", "0") is refused: it reaches metav1.Duration as a JSON number,
 * which it does not take. */
static int to_duration_ns(const yaml_node_t *n, int64_t *out)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {{"ns", 1},	  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		     {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},	   {"h", 3600e9}};
	if (n->type != YAML_SCALAR_NODE)
		return -1;
	struct ig_str v = scalar(n);
	double num;
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && to_double(n, &num) == 0)
		return -1;
	size_t i = 0;
	bool neg = false;
	if (i < v.len && (v.ptr[i] == '-' || v.ptr[i] == '+'))
		neg = v.ptr[i++] == '-';
	if (v.len - i == 1 && v.ptr[i] == '0') {
		*out = 0;
		return 0;
	}
	if (i == v.len)
		return -1;
	double total = 0;
	while (i < v.len) {
		size_t start = i, digits = 0;
		double x = 0, scale = 1;
		for (; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++, digits++)
			x = x * 10 + (v.ptr[i] - '0');
		if (i < v.len && v.ptr[i] == '.')
			for (i++; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++, digits++)
				x += (v.ptr[i] - '0') * (scale /= 10);
		if (digits == 0 || i - start > 40)
			return -1;
		size_t u = 0, ulen = 0;
		for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
			size_t l = strlen(units[k].unit);
			if (l > ulen && v.len - i >= l && memcmp(v.ptr + i, units[k].unit, l) == 0)
				u = k, ulen = l;
		}
		if (ulen == 0)
			return -1;
		i += ulen;
		total += x * units[u].ns;
		if (total > 9223372036854775807.0)
			return -1;
	}
	*out = (int64_t)(neg ? -total : total);
	return 0;
}

/* A duration in milliseconds, a part of one counting as a whole one (so a
 * positive duration stays positive); -1 for a negative one. */
static int to_duration_ms(const yaml_node_t *n, uint64_t *out)
{
	int64_t ns;
	if (to_duration_ns(n, &ns) < 0 || ns < 0)
		return -1;
	*out = (uint64_t)(ns / 1000000 + (ns % 1000000 != 0));
	return 0;
}

/* An integer or a Kubernetes quantity with a binary or decimal suffix
 * ("1Gi", "500M", "1k"). */
static int to_quantity(const yaml_node_t *n, uint64_t *out)
{
	static const struct {
		const char *sfx;
		uint64_t mul;
	} sfx[] = {{"Ki", 1ull << 10}, {"Mi", 1ull << 20},   {"Gi", 1ull << 30},
		   {"Ti", 1ull << 40}, {"k", 1000},	     {"M", 1000000},
		   {"G", 1000000000},  {"T", 1000000000000}, {"", 1}};
	if (n->type != YAML_SCALAR_NODE)
		return -1;
	struct ig_str v = scalar(n);
	size_t digits = 0;
	while (digits < v.len && v.ptr[digits] >= '0' && v.ptr[digits] <= '9')
		digits++;
	uint64_t base;
	if (ig_str_to_u64((struct ig_str){v.ptr, digits}, &base) < 0)
		return -1;
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		if (!ig_str_eq_cstr((struct ig_str){v.ptr + digits, v.len - digits}, sfx[i].sfx))
			continue;
		if (base > UINT64_MAX / sfx[i].mul)
			return -1;
		*out = base * sfx[i].mul;
		return 0;
	}
	return -1;
}

/* ---- parameters ---------------------------------------------------------- */

enum param_kind { P_U64, P_U32, P_SIZE, P_BOOL, P_DOUBLE, P_INT, P_DURATION };

struct param_desc {
	const char *name;
	enum param_kind kind;
	size_t off;
	double lo, hi;
	bool lo_open; /* (lo, hi] instead of [lo, hi] */
};

#define PD(n, k, f, l, h, o)                                                                       \
	{                                                                                          \
		n, k, offsetof(struct plugin_params, f), l, h, o                                   \
	}

static const struct param_desc token_params[] = {
    PD("queueThresholdTokens", P_U64, queue_threshold_tokens, 1, 1e12, false),
    {0},
};
static const struct param_desc load_aware_params[] = {
    PD("threshold", P_DOUBLE, load_threshold, 0, 1e9, true),
    {0},
};
static const struct param_desc prefix_params[] = {
    PD("blockSizeTokens", P_U32, block_size_tokens, 1, 1 << 20, false),
    /* llm-d Router takes any value >= 0 and cuts the prompt at that many
     * blocks (0: none); the index matches at most IG_PREFIX_MAX_BLOCKS. */
    PD("maxPrefixBlocksToMatch", P_U32, max_prefix_blocks, 0, IG_PREFIX_MAX_BLOCKS, false),
    PD("maxPrefixTokensToMatch", P_U64, max_prefix_tokens, 0, 1e12, false),
    PD("lruCapacityPerServer", P_U32, lru_capacity, 1, 1 << 24, false),
    {0},
};
static const struct param_desc picker_params[] = {
    /* The gateway falls back down at most IG_SCHED_MAX_RANKED endpoints. */
    PD("maxNumOfEndpoints", P_SIZE, max_endpoints, 1, IG_SCHED_MAX_RANKED, false),
    {0},
};
/* GIE v1.5 utilization/config.go: queueDepthThreshold is a Go int, and
 * both thresholds and the staleness must be strictly positive. */
static const struct param_desc detector_params[] = {
    PD("queueDepthThreshold", P_INT, queue_depth_threshold, 0, 1e9, true),
    PD("kvCacheUtilThreshold", P_DOUBLE, kv_threshold, 0, 1, true),
    PD("metricsStalenessThreshold", P_DURATION, staleness_ms, 0, 1e9, true),
    PD("headroom", P_DOUBLE, headroom, 0, 100, false),
    {0},
};
/* GIE v1.5 bounds affinityThreshold above only: at or below 0 the filter
 * keeps everyone. */
static const struct param_desc affinity_params[] = {
    PD("affinityThreshold", P_DOUBLE, affinity_threshold, -1e9, 1, false),
    PD("explorationProbability", P_DOUBLE, exploration, 0, 1, false),
    PD("maxTTFTPenaltyMs", P_DOUBLE, ttft_penalty_ms, 0, 1e12, false),
    {0},
};
static const struct param_desc bound_params[] = {
    PD("slack", P_DOUBLE, bound_slack, 0, 100, false),
    PD("headroom", P_DOUBLE, bound_headroom, 0, 1e6, false),
    {0},
};
static const struct param_desc usage_params[] = {
    PD("threshold", P_DOUBLE, usage_threshold, 0, 1e6, true),
    {0},
};

static const struct param_desc *params_of(enum plugin_type t)
{
	switch (t) {
	case PT_TOKEN_LOAD_SCORER:
		return token_params;
	case PT_LOAD_AWARE_SCORER:
		return load_aware_params;
	case PT_PREFIX_SCORER:
	case PT_PREFIX_PRODUCER:
		return prefix_params;
	case PT_MAX_SCORE_PICKER:
	case PT_RANDOM_PICKER:
	case PT_WEIGHTED_RANDOM_PICKER:
		return picker_params;
	case PT_UTILIZATION_DETECTOR:
		return detector_params;
	case PT_PREFIX_AFFINITY_FILTER:
		return affinity_params;
	case PT_LOAD_BOUND_SCORER:
		return bound_params;
	case PT_STATIC_USAGE_LIMIT:
		return usage_params;
	default:
		return NULL;
	}
}

/* The parameters decoded by hand (strings, refusals), per type. */
static const char *const handler_params[] = {"headerName", "defaultProfile", NULL};
static const char *const source_params[] = {"scheme", "path", "insecureSkipVerify", NULL};
static const char *const extractor_params[] = {"defaultEngine", "engineLabelKey", "engineConfigs",
					       NULL};
static const char *const prefix_extra[] = {"autoTune", "blockSize", NULL};
static const char *const by_label_params[] = {"label", "validValues", "allowsNoLabel", NULL};
static const char *const selector_params[] = {"matchLabels", "matchExpressions", NULL};
static const char *const active_params[] = {"idleThreshold", "maxBusyScore", "requestTimeout",
					    NULL};
static const char *const nohit_params[] = {"lruSize", "prefixPluginType", "prefixPluginName", NULL};
static const char *const context_params[] = {"label", "enableFiltering", NULL};

static const char *const *special_of(enum plugin_type t)
{
	switch (t) {
	case PT_HEADER_PROFILE_HANDLER:
		return handler_params;
	case PT_METRICS_DATA_SOURCE:
		return source_params;
	case PT_CORE_METRICS_EXTRACTOR:
		return extractor_params;
	case PT_PREFIX_SCORER:
	case PT_PREFIX_PRODUCER:
		return prefix_extra;
	case PT_BY_LABEL:
		return by_label_params;
	case PT_LABEL_SELECTOR_FILTER:
	case PT_BY_LABEL_SELECTOR:
		return selector_params;
	case PT_ACTIVE_REQUEST_SCORER:
		return active_params;
	case PT_NO_HIT_LRU_SCORER:
		return nohit_params;
	case PT_CONTEXT_LENGTH_AWARE:
		return context_params;
	default:
		return NULL;
	}
}

static const char *kind_word(enum param_kind k)
{
	switch (k) {
	case P_BOOL:
		return "a boolean";
	case P_DURATION:
		return "a duration such as 200ms";
	case P_DOUBLE:
		return "a number";
	case P_INT:
		return "an integer";
	default:
		return "a non-negative integer";
	}
}

static bool is_bool(const yaml_node_t *v, bool *out)
{
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    !(ig_yaml_scalar_is(v, "true") || ig_yaml_scalar_is(v, "false")))
		return false;
	*out = ig_yaml_scalar_is(v, "true");
	return true;
}

/* Reads one value into *p; returns 0, -1 for the wrong type, -2 when out
 * of range. */
static int read_param(const struct param_desc *d, const yaml_node_t *v, struct plugin_params *p)
{
	char *field = (char *)p + d->off;
	uint64_t u;
	double x;
	switch (d->kind) {
	case P_BOOL:
		return is_bool(v, (bool *)field) ? 0 : -1;
	case P_DOUBLE:
	case P_INT:
		if (to_double(v, &x) < 0 || (d->kind == P_INT && x != floor(x)))
			return -1;
		if (x < d->lo || x > d->hi || (d->lo_open && x == d->lo))
			return -2;
		*(double *)field = x;
		return 0;
	case P_DURATION: {
		int64_t ns;
		if (to_duration_ns(v, &ns) < 0)
			return -1;
		if (ns < 0 || (d->lo_open && ns == 0))
			return -2;
		u = (uint64_t)(ns / 1000000 + (ns % 1000000 != 0));
		if ((double)u > d->hi)
			return -2;
		*(uint64_t *)field = u;
		return 0;
	}
	default:
		if (to_u64(v, &u) < 0)
			return -1;
		break;
	}
	if ((double)u < d->lo || (double)u > d->hi)
		return -2;
	if (d->kind == P_U32)
		*(uint32_t *)field = (uint32_t)u;
	else if (d->kind == P_SIZE)
		*(size_t *)field = (size_t)u;
	else
		*(uint64_t *)field = u;
	return 0;
}

static void range_err(struct session *s, int line, const char *path, const struct param_desc *d)
{
	if (d->kind == P_DURATION)
		err(s, line, path, "must be %s and at most %.0fms",
		    d->lo_open ? "strictly positive" : "0 or more", d->hi);
	else if (d->kind == P_INT && d->lo_open && d->lo == 0)
		err(s, line, path, "must be strictly positive and at most %g", d->hi);
	else if (d->kind == P_DOUBLE || d->kind == P_INT)
		err(s, line, path, "must be %s %g and at most %g",
		    d->lo_open ? "greater than" : "at least", d->lo, d->hi);
	else
		err(s, line, path, "must be between %.0f and %.0f", d->lo, d->hi);
}

/* An HTTP field name (RFC 9110 token). */
static bool header_token(struct ig_str v)
{
	if (v.len == 0 || v.len > MAX_HEADER_NAME)
		return false;
	for (size_t i = 0; i < v.len; i++)
		if (!strchr("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
			    v.ptr[i]) ||
		    v.ptr[i] == '\0')
			return false;
	return true;
}

static bool want_string(struct session *s, yaml_node_t *v, int line, const char *path)
{
	return expect(s, v, YAML_SCALAR_NODE, line, path);
}

/* header-profile-handler: headerName (llm-d's default EPP-Profile; header
 * names are compared in lower case) and defaultProfile (checked against
 * the profiles once they are read). */
static void handler_param(struct session *s, struct plugin *pl, yaml_node_t *k, yaml_node_t *v,
			  const char *kp)
{
	int line = ig_yaml_line(k);
	if (!want_string(s, v, line, kp))
		return;
	struct ig_str val = ig_str_trim(scalar(v));
	if (ig_yaml_scalar_is(k, "headerName")) {
		if (!header_token(val)) {
			err(s, line, kp, "must be an HTTP header name of 1 to %d characters",
			    MAX_HEADER_NAME);
			return;
		}
		free(pl->header);
		pl->header = ig_str_dup(val);
		for (char *c = pl->header; c && *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		return;
	}
	if (val.len == 0 || val.len > MAX_NAME) {
		err(s, line, kp, "must be 1 to %d characters", MAX_NAME);
		return;
	}
	free(pl->default_profile);
	pl->default_profile = ig_str_dup(val);
	pl->default_profile_line = line;
}

/* metrics-data-source: the gateway scrapes http://ENDPOINT/metrics. */
static void source_param(struct session *s, yaml_node_t *k, yaml_node_t *v, const char *kp)
{
	int line = ig_yaml_line(k);
	bool b;
	if (ig_yaml_scalar_is(k, "insecureSkipVerify")) {
		/* Certificates only matter over https, which is refused below;
		 * over http GIE does not look at this either. */
		if (!is_bool(v, &b))
			err(s, line, kp, "must be a boolean");
		return;
	}
	if (!want_string(s, v, line, kp))
		return;
	if (ig_yaml_scalar_is(k, "scheme") && !ig_yaml_scalar_is(v, "http"))
		err(s, line, kp,
		    "\"%.*s\" is not supported: infergate scrapes model servers over http only",
		    IG_STR_FMT(scalar(v)));
	else if (ig_yaml_scalar_is(k, "path") && !ig_yaml_scalar_is(v, "/metrics"))
		err(s, line, kp,
		    "\"%.*s\" is not supported: infergate scrapes each endpoint's /metrics",
		    IG_STR_FMT(scalar(v)));
}

/* core-metrics-extractor: its defaults. Each endpoint is read with the
 * names of the built-in engine its pod's llm-d.ai/engine-type label names,
 * vLLM's without one (pool/metrics.h). */
static void extractor_param(struct session *s, yaml_node_t *k, yaml_node_t *v, const char *kp)
{
	int line = ig_yaml_line(k);
	if (ig_yaml_scalar_is(k, "defaultEngine")) {
		if (want_string(s, v, line, kp) && !ig_yaml_scalar_is(v, "vllm"))
			err(s, line, kp,
			    "\"%.*s\" is not supported: infergate reads pods without the "
			    "llm-d.ai/engine-type label with vLLM's metric names (label the pods "
			    "with their engine instead)",
			    IG_STR_FMT(scalar(v)));
		return;
	}
	if (ig_yaml_scalar_is(k, "engineLabelKey"))
		err(s, line, kp,
		    "is not supported: infergate reads the engine from the pod label "
		    "llm-d.ai/engine-type (or inference.networking.k8s.io/engine-type)");
	else
		err(s, line, kp,
		    "is not supported: infergate reads the built-in engines' metric names only "
		    "(vllm, sglang, trtllm-serve, triton-tensorrt-llm)");
}

/* prefix-cache-scorer and approx-prefix-cache-producer: autoTune and the
 * deprecated blockSize (characters). */
static void prefix_param(struct session *s, struct plugin *pl, yaml_node_t *k, yaml_node_t *v,
			 const char *kp, bool *block_chars)
{
	if (ig_yaml_scalar_is(k, "blockSize")) {
		*block_chars = true;
		return;
	}
	if (!is_bool(v, &pl->p.auto_tune))
		err(s, ig_yaml_line(k), kp, "must be a boolean");
}

/* A value llm-d decodes into a Go string: a scalar that YAML does not read
 * as a number, boolean or null (those reach the JSON decoder as other
 * types, which it refuses). */
static bool go_string(const yaml_node_t *v)
{
	double d;
	if (v->type != YAML_SCALAR_NODE)
		return false;
	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return true;
	return to_double(v, &d) < 0 && !ig_yaml_scalar_is(v, "true") &&
	       !ig_yaml_scalar_is(v, "false") && !ig_yaml_is_null(v);
}

/* A list of strings, as a NULL-free array of n copies; -1 after an error. */
static int string_list(struct session *s, yaml_node_t *v, int line, const char *path, char ***out,
		       size_t *n)
{
	if (!expect(s, v, YAML_SEQUENCE_NODE, line, path))
		return -1;
	char **list = calloc(seq_len(v) + 1, sizeof *list);
	size_t k = 0;
	if (!list) {
		oom(s, line, path);
		return -1;
	}
	for (size_t i = 0; i < seq_len(v); i++) {
		char ip[PATH_LEN];
		yaml_node_t *e = seq_item(s, v, i);
		sub(ip, path, NULL, i);
		if (!e)
			break;
		if (!go_string(e)) {
			err(s, ig_yaml_line(e), ip, "must be a string");
			continue;
		}
		if (!(list[k] = dup_scalar(e)))
			break;
		k++;
	}
	*out = list;
	*n = k;
	return 0;
}

/* label-selector-filter's matchLabels: label keys and values as
 * metav1.LabelSelectorAsSelector validates them. */
static void match_labels(struct session *s, struct ig_label_selector *sel, yaml_node_t *v, int line,
			 const char *path)
{
	if (!expect(s, v, YAML_MAPPING_NODE, line, path))
		return;
	size_t cap = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	sel->match_labels = calloc(cap ? cap : 1, sizeof *sel->match_labels);
	if (!sel->match_labels)
		return;
	FOR_PAIRS(s, v, k, val)
	{
		char kp[PATH_LEN];
		if (k->type != YAML_SCALAR_NODE || !go_string(val)) {
			err(s, ig_yaml_line(k), path, "must map label names to strings");
			continue;
		}
		sub(kp, path, (const char *)k->data.scalar.value, 0);
		struct ig_kv kv = {dup_scalar(k), dup_scalar(val)};
		sel->match_labels[sel->nmatch_labels++] = kv;
		if (kv.key && !ig_label_key_valid(kv.key))
			err(s, ig_yaml_line(k), kp, "invalid label key");
		else if (kv.value && !ig_label_value_valid(kv.value))
			err(s, ig_yaml_line(k), kp, "invalid label value \"%s\"", kv.value);
	}
}

/* One of matchExpressions: {key, operator, values} as
 * metav1.LabelSelectorAsSelector takes them. */
static void match_expression(struct session *s, struct ig_selector_req *r, yaml_node_t *e,
			     const char *path)
{
	static const char *const fields[] = {"key", "operator", "values", NULL};
	static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
	char p[PATH_LEN];
	int line, oline, vline;
	if (!expect(s, e, YAML_MAPPING_NODE, ig_yaml_line(e), path))
		return;
	check_keys(s, e, path, fields);
	yaml_node_t *key = get(s, e, "key", &line);
	sub(p, path, "key", 0);
	if (!key || !go_string(key)) {
		err(s, line, p, key ? "must be a string" : "is required");
		return;
	}
	r->key = dup_scalar(key);
	if (r->key && !ig_label_key_valid(r->key))
		err(s, line, p, "invalid label key \"%s\"", r->key);
	yaml_node_t *op = get(s, e, "operator", &oline);
	sub(p, path, "operator", 0);
	size_t o = 0;
	while (op && o < 4 && !ig_yaml_scalar_is(op, ops[o]))
		o++;
	if (!op || o == 4) {
		err(s, oline, p, "must be In, NotIn, Exists or DoesNotExist");
		return;
	}
	r->op = (enum ig_selector_op)o; /* the order of enum ig_selector_op */
	yaml_node_t *vals = get(s, e, "values", &vline);
	sub(p, path, "values", 0);
	if (vals && string_list(s, vals, vline, p, &r->values, &r->nvalues) < 0)
		return;
	for (size_t i = 0; i < r->nvalues; i++)
		if (!ig_label_value_valid(r->values[i]))
			err(s, vline, p, "invalid label value \"%s\"", r->values[i]);
	bool wants = r->op == IG_SEL_IN || r->op == IG_SEL_NOT_IN;
	if (wants && r->nvalues == 0)
		err(s, oline, path, "values must be given for the In and NotIn operators");
	else if (!wants && r->nvalues > 0)
		err(s, vline, p, "must be empty for the Exists and DoesNotExist operators");
}

/* by-label (label, validValues, allowsNoLabel) and label-selector-filter
 * (matchLabels, matchExpressions). */
static void label_param(struct session *s, struct label_match *lm, yaml_node_t *k, yaml_node_t *v,
			const char *kp)
{
	int line = ig_yaml_line(k);
	/* A parameter given twice is an error already (check_twice): the
	 * first one read stays. */
	if (!lm || (ig_yaml_scalar_is(k, "validValues") && lm->values) ||
	    (ig_yaml_scalar_is(k, "matchLabels") && lm->sel.match_labels) ||
	    (ig_yaml_scalar_is(k, "matchExpressions") && lm->sel.exprs))
		return;
	if (ig_yaml_scalar_is(k, "label")) {
		if (!go_string(v)) {
			err(s, line, kp, "must be a string");
			return;
		}
		free(lm->label);
		lm->label = dup_scalar(v);
	} else if (ig_yaml_scalar_is(k, "validValues")) {
		(void)string_list(s, v, line, kp, &lm->values, &lm->nvalues);
	} else if (ig_yaml_scalar_is(k, "allowsNoLabel")) {
		if (!is_bool(v, &lm->allows_no_label))
			err(s, line, kp, "must be a boolean");
	} else if (ig_yaml_scalar_is(k, "matchLabels")) {
		match_labels(s, &lm->sel, v, line, kp);
	} else if (expect(s, v, YAML_SEQUENCE_NODE, line, kp)) {
		lm->sel.exprs = calloc(seq_len(v) + 1, sizeof *lm->sel.exprs);
		for (size_t i = 0; lm->sel.exprs && i < seq_len(v); i++) {
			char ip[PATH_LEN];
			yaml_node_t *e = seq_item(s, v, i);
			sub(ip, kp, NULL, i);
			if (e)
				match_expression(s, &lm->sel.exprs[lm->sel.nexprs++], e, ip);
		}
	}
}

/* The most endpoints a no-hit-lru-scorer's LRU holds: it is scanned per
 * commit and copied per cold request. */
#define MAX_LRU_SIZE 65536

/* active-request-scorer (idleThreshold, maxBusyScore, the deprecated
 * requestTimeout) and no-hit-lru-scorer (lruSize, prefixPluginType,
 * prefixPluginName). Where llm-d's factory quietly takes its default for
 * a value out of range, so does this, with a warning. */
static void llmd_scorer_param(struct session *s, struct plugin *pl, yaml_node_t *k, yaml_node_t *v,
			      const char *kp)
{
	int line = ig_yaml_line(k);
	double x;
	if (ig_yaml_scalar_is(k, "requestTimeout") || ig_yaml_scalar_is(k, "prefixPluginType") ||
	    ig_yaml_scalar_is(k, "prefixPluginName")) {
		if (!go_string(v))
			err(s, line, kp, "must be a string");
		else if (ig_yaml_scalar_is(k, "requestTimeout"))
			warn(s, line, kp,
			     "is deprecated and ignored (llm-d Router too): in-flight requests "
			     "are counted from dispatch to the end of the response");
		else
			warn(s, line, kp,
			     "has no effect (llm-d Router's no longer reads it either): a request "
			     "is cold when the prefix index matches no block of it on any "
			     "candidate");
		return;
	}
	bool integer = !ig_yaml_scalar_is(k, "maxBusyScore");
	if (to_double(v, &x) < 0 || (integer && x != floor(x))) {
		err(s, line, kp, "must be %s", integer ? "an integer" : "a number");
		return;
	}
	if (ig_yaml_scalar_is(k, "idleThreshold")) {
		if (x < 0)
			warn(s, line, kp, "is negative: the default, 0, is used (as in llm-d)");
		else if (x > 1e9)
			err(s, line, kp, "must be at most 1000000000");
		else
			pl->p.idle_threshold = x;
	} else if (ig_yaml_scalar_is(k, "maxBusyScore")) {
		if (x < 0 || x > 1)
			warn(s, line, kp,
			     "is outside [0, 1]: the default, 1, is used (as in llm-d)");
		else
			pl->p.max_busy_score = x;
	} else if (x <= 0) {
		warn(s, line, kp, "is not positive: the default, 1024, is used (as in llm-d)");
	} else if (x > MAX_LRU_SIZE) {
		err(s, line, kp, "must be at most %d", MAX_LRU_SIZE);
	} else {
		pl->p.lru_size = (uint32_t)x;
	}
}

/* The label filters' match, made before their parameters are read: the
 * role filters' fixed one, an empty one for the others. */
static int label_setup(struct plugin *pl)
{
	switch (pl->type) {
	case PT_DECODE_FILTER:
	case PT_PREFILL_FILTER:
	case PT_ENCODE_FILTER:
		pl->labels = label_match_role(pl->type);
		break;
	case PT_LABEL_SELECTOR_FILTER:
	case PT_BY_LABEL_SELECTOR:
	case PT_BY_LABEL:
		pl->labels = calloc(1, sizeof *pl->labels);
		if (pl->labels)
			pl->labels->selector = pl->type != PT_BY_LABEL;
		break;
	case PT_CONTEXT_LENGTH_AWARE:
		pl->labels = calloc(1, sizeof *pl->labels);
		if (pl->labels && !(pl->labels->label = strdup("llm-d.ai/context-length-range")))
			return -1;
		break;
	default:
		return 0;
	}
	return pl->labels ? 0 : -1;
}

/* llm-d's by-label factory: a label is required, and validValues unless
 * allowsNoLabel (it would keep no pod). */
static void label_check(struct session *s, const struct plugin *pl, const char *path)
{
	const struct label_match *lm = pl->labels;
	if (pl->type == PT_CONTEXT_LENGTH_AWARE && lm && (!lm->label || !*lm->label))
		err(s, pl->line, path, "context-length-aware: parameters.label must be specified");
	if (pl->type != PT_BY_LABEL || !lm)
		return;
	if (!lm->label || !*lm->label)
		err(s, pl->line, path, "by-label: parameters.label must be specified");
	else if (lm->nvalues == 0 && !lm->allows_no_label)
		err(s, pl->line, path,
		    "by-label: either parameters.validValues must be non-empty or "
		    "parameters.allowsNoLabel must be true");
}

/* How many blocks a prompt is cut at: llm-d Router's producer computes
 * maxPrefixTokensToMatch / the block size when the tokens are set, else
 * takes maxPrefixBlocksToMatch, and hashes the prompt up to that many
 * blocks, none for 0 (its README calls 0 unlimited; its code cuts the
 * prompt at 0 bytes, and so does infergate, with a warning). */
static void check_prefix_blocks(struct session *s, int line, const char *path,
				const struct plugin *pl, int max_blocks_line)
{
	const struct plugin_params *p = &pl->p;
	if (p->max_prefix_tokens &&
	    p->max_prefix_tokens / p->block_size_tokens > IG_PREFIX_MAX_BLOCKS)
		err(s, line, path,
		    "maxPrefixTokensToMatch / blockSizeTokens is %llu blocks; at most %d are "
		    "matched",
		    (unsigned long long)(p->max_prefix_tokens / p->block_size_tokens),
		    IG_PREFIX_MAX_BLOCKS);
	else if (!p->max_prefix_tokens && p->max_prefix_blocks == 0) {
		char kp[PATH_LEN];
		sub(kp, path, "maxPrefixBlocksToMatch", 0);
		warn(s, max_blocks_line ? max_blocks_line : line, kp,
		     "0 hashes no block of any prompt: no endpoint matches a prefix and none "
		     "is recorded (as in llm-d Router)");
	}
}

static void decode_params(struct session *s, yaml_node_t *map, int line, const char *path,
			  struct plugin *pl)
{
	const struct param_desc *desc = params_of(pl->type);
	const char *const *special = special_of(pl->type);
	bool has_block_tokens = false, block_chars = false;
	int block_chars_line = 0, max_blocks_line = 0;
	if (!expect(s, map, YAML_MAPPING_NODE, line, path))
		return;
	pl->has_params = map->data.mapping.pairs.top > map->data.mapping.pairs.start;
	for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
	     a++) {
		yaml_node_t *k = node_at(s, a->key), *v = node_at(s, a->value);
		char kp[PATH_LEN];
		const struct param_desc *d = NULL;
		const char *const *sp = special;
		if (!k || !v)
			return;
		if (k->type != YAML_SCALAR_NODE) {
			err(s, ig_yaml_line(k), path, "parameter names must be strings");
			continue;
		}
		sub(kp, path, (const char *)k->data.scalar.value, 0);
		check_twice(s, map, a, k, kp);
		for (const struct param_desc *e = desc; e && e->name; e++)
			if (ig_yaml_scalar_is(k, e->name))
				d = e;
		while (sp && *sp && !ig_yaml_scalar_is(k, *sp))
			sp++;
		if (d) {
			has_block_tokens |=
			    d->off == offsetof(struct plugin_params, block_size_tokens);
			if (d->off == offsetof(struct plugin_params, max_prefix_blocks))
				max_blocks_line = ig_yaml_line(k);
			int rc = read_param(d, v, &pl->p);
			if (rc == -1)
				err(s, ig_yaml_line(k), kp, "must be %s", kind_word(d->kind));
			else if (rc == -2)
				range_err(s, ig_yaml_line(k), kp, d);
		} else if (sp && *sp) {
			switch (pl->type) {
			case PT_HEADER_PROFILE_HANDLER:
				handler_param(s, pl, k, v, kp);
				break;
			case PT_METRICS_DATA_SOURCE:
				source_param(s, k, v, kp);
				break;
			case PT_CORE_METRICS_EXTRACTOR:
				extractor_param(s, k, v, kp);
				break;
			case PT_BY_LABEL:
			case PT_LABEL_SELECTOR_FILTER:
			case PT_BY_LABEL_SELECTOR:
				label_param(s, pl->labels, k, v, kp);
				break;
			case PT_CONTEXT_LENGTH_AWARE:
				if (ig_yaml_scalar_is(k, "label"))
					label_param(s, pl->labels, k, v, kp);
				else if (!is_bool(v, &pl->p.enable_filtering))
					err(s, ig_yaml_line(k), kp, "must be a boolean");
				break;
			case PT_ACTIVE_REQUEST_SCORER:
			case PT_NO_HIT_LRU_SCORER:
				llmd_scorer_param(s, pl, k, v, kp);
				break;
			default:
				prefix_param(s, pl, k, v, kp, &block_chars);
				if (block_chars && !block_chars_line)
					block_chars_line = ig_yaml_line(k);
				break;
			}
		} else {
			err(s, ig_yaml_line(k), kp, "unknown parameter for %s%s",
			    picker_type_name(pl->type),
			    desc || special ? "" : ": it takes no parameters");
		}
	}
	if (block_chars && !has_block_tokens)
		err(s, line, path, "blockSize (characters) is deprecated: set blockSizeTokens");
	else if (block_chars)
		warn(s, block_chars_line, path,
		     "blockSize (characters) is deprecated and ignored: blockSizeTokens is used");
	if (params_of(pl->type) == prefix_params)
		check_prefix_blocks(s, line, path, pl, max_blocks_line);
}

/* ---- plugins --------------------------------------------------------------- */

/* Types that other releases named otherwise: GIE v1.3-v1.4 called the
 * core-metrics-extractor model-server-protocol-metrics (v1.4's takes the
 * same parameters; a plugin without a name is named after the type as
 * written). */
static const struct {
	const char *name;
	enum plugin_type type;
} renamed[] = {{"model-server-protocol-metrics", PT_CORE_METRICS_EXTRACTOR}};

static int find_type(const yaml_node_t *n)
{
	for (int t = 0; t < PT_COUNT; t++)
		if (ig_yaml_scalar_is(n, types[t].name))
			return t;
	for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++)
		if (ig_yaml_scalar_is(n, renamed[i].name))
			return (int)renamed[i].type;
	return -1;
}

static int find_plugin(const struct ig_picker_config *c, struct ig_str name)
{
	for (size_t i = 0; i < c->nplugins; i++)
		if (ig_str_eq_cstr(name, c->plugins[i].name))
			return (int)i;
	return -1;
}

static void unknown_type(struct session *s, int line, const char *path, const yaml_node_t *type)
{
	for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
		if (ig_yaml_scalar_is(type, unsupported[i].name)) {
			err(s, line, path, "plugin type \"%s\" is not supported: %s",
			    unsupported[i].name, unsupported[i].why);
			return;
		}
	err(s, line, path, "unknown plugin type \"%.*s\"", IG_STR_FMT(scalar(type)));
}

static void free_plugin(struct plugin *pl)
{
	label_match_free(pl->labels);
	free(pl->name);
	free(pl->header);
	free(pl->default_profile);
}

static void decode_plugin(struct session *s, yaml_node_t *n, const char *path)
{
	static const char *const fields[] = {"name", "type", "parameters", NULL};
	struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
	check_keys(s, n, path, fields);
	yaml_node_t *type = get(s, n, "type", &line);
	sub(p, path, "type", 0);
	if (!type) {
		err(s, line, p, "is required");
		return;
	}
	if (!expect(s, type, YAML_SCALAR_NODE, line, p))
		return;
	int t = find_type(type);
	if (t < 0) {
		unknown_type(s, line, p, type);
		return;
	}
	struct plugin pl = {.type = (enum plugin_type)t, .line = ig_yaml_line(n)};
	picker_default_params(&pl.p);
	yaml_node_t *name = get(s, n, "name", &line);
	sub(p, path, "name", 0);
	if (name && !expect(s, name, YAML_SCALAR_NODE, line, p))
		return;
	/* GIE's applyStaticDefaults names a plugin without a name, "" too,
	 * after its type. */
	struct ig_str nm = name ? scalar(name) : scalar(type);
	if (nm.len == 0)
		nm = scalar(type);
	if (nm.len > MAX_NAME) {
		err(s, line, p, "must be at most %d characters", MAX_NAME);
		return;
	}
	if (find_plugin(c, nm) >= 0) {
		err(s, line, p, "duplicate plugin name \"%.*s\"", IG_STR_FMT(nm));
		return;
	}
	if (label_setup(&pl) < 0) {
		oom(s, ig_yaml_line(n), path);
		return;
	}
	yaml_node_t *params = get(s, n, "parameters", &line);
	sub(p, path, "parameters", 0);
	if (params)
		decode_params(s, params, line, p, &pl);
	label_check(s, &pl, path);
	if (c->nplugins == MAX_PLUGINS) {
		err(s, ig_yaml_line(n), path, "more than %d plugins", MAX_PLUGINS);
		free_plugin(&pl);
		return;
	}
	pl.name = ig_str_dup(nm);
	if (!pl.name) {
		oom(s, ig_yaml_line(n), path);
		free_plugin(&pl);
		return;
	}
	if (picker_type_kind(pl.type) == PK_HANDLER) {
		/* GIE: "multiple profile handlers found; only one is allowed". */
		if (s->handler >= 0) {
			err(s, pl.line, path,
			    "a second profile handler (\"%s\" is one); only one is allowed",
			    c->plugins[s->handler].name);
			free_plugin(&pl);
			return;
		}
		s->handler = (int)c->nplugins;
	}
	/* GIE runs a request-control plugin because it is declared: no
	 * profile refers to it. */
	c->report_served |= pl.type == PT_SERVED_VERIFIER;
	c->plugins[c->nplugins++] = pl;
}

static int add_plugin(struct ig_picker_config *c, enum plugin_type t, const char *name)
{
	if (c->nplugins == MAX_PLUGINS)
		return -1;
	struct plugin *p = &c->plugins[c->nplugins];
	*p = (struct plugin){.type = t, .name = strdup(name), .used = true};
	picker_default_params(&p->p);
	if (!p->name)
		return -1;
	return (int)c->nplugins++;
}

/* The plugins GIE's loader registers under their type names when nothing
 * declares them, so that references may name them undeclared. */
static const enum plugin_type system_defaults[] = {PT_UTILIZATION_DETECTOR, PT_OPENAI_PARSER,
						   PT_GLOBAL_STRICT_FAIRNESS, PT_FCFS_ORDERING,
						   PT_STATIC_USAGE_LIMIT};

/* The plugin a *Ref field names, of one of the kinds in the mask `kinds`
 * (described by `what` in errors); -1 after an error. The plugin counts as
 * used. */
static int resolve_ref(struct session *s, yaml_node_t *ref, int line, const char *path,
		       unsigned kinds, const char *what)
{
	struct ig_picker_config *c = s->cfg;
	if (!expect(s, ref, YAML_SCALAR_NODE, line, path))
		return -1;
	struct ig_str name = scalar(ref);
	int pi = find_plugin(c, name);
	enum plugin_type t = PT_COUNT;
	for (size_t i = 0; i < sizeof system_defaults / sizeof system_defaults[0]; i++)
		if (ig_str_eq_cstr(name, types[system_defaults[i]].name))
			t = system_defaults[i];
	if (pi < 0 && t != PT_COUNT) {
		pi = add_plugin(c, t, types[t].name);
		if (pi < 0) {
			err(s, line, path, "more than %d plugins", MAX_PLUGINS);
			return -1;
		}
	}
	if (pi < 0) {
		err(s, line, path, "no plugin named \"%.*s\"", IG_STR_FMT(name));
		return -1;
	}
	if (!(kinds & (1u << picker_type_kind(c->plugins[pi].type)))) {
		err(s, line, path, "plugin \"%s\" (%s) is not %s", c->plugins[pi].name,
		    picker_type_name(c->plugins[pi].type), what);
		return -1;
	}
	c->plugins[pi].used = true;
	return pi;
}

/* ---- profiles ---------------------------------------------------------------- */

static void decode_weight(struct session *s, yaml_node_t *entry, const char *path,
			  const struct plugin *pl, struct profile_entry *e)
{
	static const char *const kind_names[] = {
	    [PK_FILTER] = "a filter", [PK_PICKER] = "a picker", [PK_DETECTOR] = "a filter"};
	char p[PATH_LEN];
	int line;
	yaml_node_t *w = get(s, entry, "weight", &line);
	sub(p, path, "weight", 0);
	e->weight = 1.0;
	if (!w)
		return;
	double x;
	enum plugin_kind kind = picker_type_kind(pl->type);
	if (kind != PK_SCORER)
		err(s, line, p, "weight applies to scorers only; \"%s\" is %s", pl->name,
		    kind_names[kind]);
	else if (to_double(w, &x) < 0)
		err(s, line, p, "must be a number");
	else if (x < 0 || x > 1e6)
		err(s, line, p, "must be between 0 and 1000000");
	else
		e->weight = x;
}

/* Adds pluginRef `ref` to the profile unless that breaks a rule. */
static void add_entry(struct session *s, struct profile *pr, yaml_node_t *entry, const char *path)
{
	static const char *const fields[] = {"pluginRef", "weight", NULL};
	struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, entry, YAML_MAPPING_NODE, ig_yaml_line(entry), path))
		return;
	check_keys(s, entry, path, fields);
	yaml_node_t *ref = get(s, entry, "pluginRef", &line);
	sub(p, path, "pluginRef", 0);
	if (!ref) {
		err(s, line, p, "is required");
		return;
	}
	int pi =
	    resolve_ref(s, ref, line, p,
			1u << PK_FILTER | 1u << PK_SCORER | 1u << PK_PICKER | 1u << PK_DETECTOR,
			"a filter, scorer or picker");
	if (pi < 0)
		return;
	enum plugin_kind kind = picker_type_kind(c->plugins[pi].type);
	for (size_t i = 0; i < pr->n; i++) {
		const struct plugin *o = &c->plugins[pr->e[i].plugin];
		if ((size_t)pi == pr->e[i].plugin) {
			err(s, line, p, "plugin \"%s\" is already in this profile", o->name);
			return;
		}
		if (kind == PK_PICKER && picker_type_kind(o->type) == PK_PICKER) {
			err(s, line, p, "a profile takes one picker: \"%s\" and \"%s\"", o->name,
			    c->plugins[pi].name);
			return;
		}
	}
	struct profile_entry e = {.plugin = (size_t)pi};
	decode_weight(s, entry, path, &c->plugins[pi], &e);
	if (pr->n == MAX_PROFILE_ENTRIES - 1) { /* one slot stays free for a default picker */
		err(s, ig_yaml_line(entry), path, "more than %d plugins in one profile",
		    MAX_PROFILE_ENTRIES - 1);
		return;
	}
	pr->e[pr->n++] = e;
}

static void decode_profile(struct session *s, yaml_node_t *n, const char *path)
{
	static const char *const fields[] = {"name", "plugins", NULL};
	struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
	check_keys(s, n, path, fields);
	if (c->nprofiles == MAX_PROFILES) {
		err(s, ig_yaml_line(n), path, "more than %d profiles", MAX_PROFILES);
		return;
	}
	struct profile *pr = &c->profiles[c->nprofiles];
	*pr = (struct profile){.line = ig_yaml_line(n)};
	yaml_node_t *name = get(s, n, "name", &line);
	sub(p, path, "name", 0);
	if (!name) {
		err(s, line, p, "is required");
		return;
	}
	if (!expect(s, name, YAML_SCALAR_NODE, line, p))
		return;
	if (scalar(name).len == 0 || scalar(name).len > MAX_NAME) {
		err(s, line, p, "must be 1 to %d characters", MAX_NAME);
		return;
	}
	for (size_t i = 0; i < c->nprofiles; i++)
		if (ig_str_eq_cstr(scalar(name), c->profiles[i].name)) {
			err(s, line, p, "duplicate profile name \"%s\"", c->profiles[i].name);
			return;
		}
	yaml_node_t *plugins = get(s, n, "plugins", &line);
	sub(p, path, "plugins", 0);
	if (plugins && expect(s, plugins, YAML_SEQUENCE_NODE, line, p)) {
		for (size_t i = 0; i < seq_len(plugins); i++) {
			char ip[PATH_LEN];
			yaml_node_t *e = seq_item(s, plugins, i);
			sub(ip, p, NULL, i);
			if (e)
				add_entry(s, pr, e, ip);
		}
	}
	pr->name = dup_scalar(name);
	if (!pr->name) {
		oom(s, ig_yaml_line(n), path);
		return;
	}
	c->nprofiles++;
}

/* ---- saturationDetector, parser -------------------------------------------- */

/* GIE v1.2-v1.4's saturationDetector: no detector plugins then, the
 * section set the one detector's thresholds, each absent one at its
 * default (buildSaturationConfig). GIE replaced a value out of range by
 * the default without a word; here it is refused. Returns whether any
 * threshold was given. */
static bool decode_thresholds(struct session *s, yaml_node_t *n, const char *path)
{
	picker_default_params(&s->legacy);
	s->thresholds = false;
	for (const struct param_desc *d = detector_params; d->name; d++) {
		char p[PATH_LEN];
		int l;
		if (d->off == offsetof(struct plugin_params, headroom))
			continue; /* v1.5's utilization-detector only */
		yaml_node_t *v = get(s, n, d->name, &l);
		if (!v)
			continue;
		s->thresholds = true;
		sub(p, path, d->name, 0);
		int rc = read_param(d, v, &s->legacy);
		if (rc == -1)
			err(s, l, p, "must be %s", kind_word(d->kind));
		else if (rc == -2)
			range_err(s, l, p, d);
		else if (d->off == offsetof(struct plugin_params, kv_threshold) &&
			 s->legacy.kv_threshold >= 1)
			err(s, l, p,
			    "must be below 1 (GIE v1.2-v1.4 took the default 0.8 for 1 and above)");
	}
	return s->thresholds;
}

/* saturationDetector has two shapes under one apiVersion, told apart by
 * their keys. GIE v1.5 and llm-d Router name a detector plugin
 * (pluginRef; absent or empty: "utilization-detector"); GIE v1.2-v1.4 gave
 * its thresholds (`thresholds` allows them: llm-d Router's
 * flowControl.saturationDetector has pluginRef only). No version took
 * both. */
static void decode_detector(struct session *s, yaml_node_t *n, int line, const char *path,
			    bool thresholds)
{
	static const char *const fields[] = {"pluginRef", NULL};
	static const char *const v14[] = {"pluginRef", "queueDepthThreshold",
					  "kvCacheUtilThreshold", "metricsStalenessThreshold",
					  NULL};
	char p[PATH_LEN];
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, path))
		return;
	check_keys(s, n, path, thresholds ? v14 : fields);
	yaml_node_t *ref = get(s, n, "pluginRef", &l);
	sub(p, path, "pluginRef", 0);
	if (thresholds && decode_thresholds(s, n, path)) {
		if (ref)
			err(s, l, p,
			    "names a detector plugin (GIE v1.5, llm-d Router), beside GIE "
			    "v1.2-v1.4's thresholds: give the thresholds as the parameters of the "
			    "utilization-detector it names, or drop pluginRef");
		return;
	}
	if (ref && ref->type == YAML_SCALAR_NODE && scalar(ref).len == 0)
		ref = NULL;
	if (!ref) {
		int pi = find_plugin(s->cfg, ig_str_from("utilization-detector"));
		if (pi < 0)
			pi = add_plugin(s->cfg, PT_UTILIZATION_DETECTOR, "utilization-detector");
		if (pi < 0)
			err(s, l, p, "more than %d plugins", MAX_PLUGINS);
		else if (s->cfg->plugins[pi].type != PT_UTILIZATION_DETECTOR)
			err(s, l, p,
			    "an empty pluginRef means \"utilization-detector\", which names a %s "
			    "here",
			    picker_type_name(s->cfg->plugins[pi].type));
		else
			s->detector_ref = pi;
		if (pi >= 0)
			s->cfg->plugins[pi].used = true;
		return;
	}
	s->detector_ref = resolve_ref(s, ref, l, p, 1u << PK_DETECTOR,
				      "a saturation detector (utilization-detector)");
}

/* llm-d Router v0.9 moved saturationDetector into flowControl; the
 * top-level one is deprecated there, and when both are given the one in
 * flowControl counts. It names the detector of admission and flow control
 * alike, so it counts here whether flow control is on or not. */
static void decode_flow_detector(struct session *s, yaml_node_t *n, int line)
{
	if (s->detector_line)
		warn(s, s->detector_line, "saturationDetector",
		     "is ignored: flowControl.saturationDetector names the detector (llm-d Router "
		     "reads the top-level one only without it)");
	s->thresholds = false;
	s->detector_ref = -1;
	decode_detector(s, n, line, "flowControl.saturationDetector", false);
}

static void decode_parser(struct session *s, yaml_node_t *n, int line, const char *path)
{
	static const char *const fields[] = {"pluginRef", NULL};
	char p[PATH_LEN];
	int l;
	s->parser = true;
	if (!expect(s, n, YAML_MAPPING_NODE, line, path))
		return;
	check_keys(s, n, path, fields);
	yaml_node_t *ref = get(s, n, "pluginRef", &l);
	sub(p, path, "pluginRef", 0);
	if (!ref) {
		err(s, l, p, "is required");
		return;
	}
	int pi = resolve_ref(s, ref, l, p, 1u << PK_PARSER,
			     "a parser (openai-parser, passthrough-parser)");
	s->cfg->raw_body = pi >= 0 && s->cfg->plugins[pi].type == PT_PASSTHROUGH_PARSER;
}

/* llm-d Router v0.9 moved the parser to requestHandler.parsers, a list;
 * the top-level parser is deprecated there, and counts only while the
 * list is empty. llm-d chooses among several parsers by the request paths
 * each claims; infergate runs one parser for every request, so the list
 * takes one. */
static void decode_request_handler(struct session *s, yaml_node_t *n, int line, int parser_line)
{
	static const char *const fields[] = {"parsers", NULL};
	const char *path = "requestHandler.parsers";
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, "requestHandler"))
		return;
	check_keys(s, n, "requestHandler", fields);
	yaml_node_t *list = get(s, n, "parsers", &l);
	if (!list || !expect(s, list, YAML_SEQUENCE_NODE, l, path) || seq_len(list) == 0)
		return;
	if (parser_line)
		warn(s, parser_line, "parser",
		     "is ignored: requestHandler.parsers names the parser (llm-d Router reads the "
		     "top-level one only without it)");
	for (size_t i = 1; i < seq_len(list); i++) {
		char p[PATH_LEN];
		yaml_node_t *e = seq_item(s, list, i);
		sub(p, path, NULL, i);
		err(s, e ? ig_yaml_line(e) : l, p,
		    "a second parser: llm-d Router chooses among several by the request paths "
		    "each claims; infergate runs one parser (openai-parser or passthrough-parser) "
		    "for every request");
	}
	char p[PATH_LEN];
	yaml_node_t *e = seq_item(s, list, 0);
	sub(p, path, NULL, 0);
	if (e)
		decode_parser(s, e, ig_yaml_line(e), p);
}

/* ---- flowControl ------------------------------------------------------------- */

static void flow_quantity(struct session *s, yaml_node_t *map, const char *parent, const char *key,
			  uint64_t *out)
{
	char p[PATH_LEN];
	int line;
	yaml_node_t *v = get(s, map, key, &line);
	sub(p, parent, key, 0);
	if (v && to_quantity(v, out) < 0)
		err(s, line, p, "must be a non-negative integer or quantity");
}

/* fairnessPolicyRef and orderingPolicyRef of a band. A band that names
 * neither gets round-robin fairness (infergate's default; GIE's is
 * global-strict) and first-come-first-served ordering. */
static void decode_policies(struct session *s, yaml_node_t *n, const char *path,
			    struct ig_flow_band_config *b)
{
	const struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	yaml_node_t *v = get(s, n, "fairnessPolicyRef", &line);
	sub(p, path, "fairnessPolicyRef", 0);
	int pi;
	if (v && (pi = resolve_ref(s, v, line, p, 1u << PK_FAIRNESS,
				   "a fairness policy (global-strict-fairness-policy or "
				   "round-robin-fairness-policy)")) >= 0)
		b->fairness = c->plugins[pi].type == PT_GLOBAL_STRICT_FAIRNESS
				  ? IG_FLOW_GLOBAL_STRICT
				  : IG_FLOW_ROUND_ROBIN;
	v = get(s, n, "orderingPolicyRef", &line);
	sub(p, path, "orderingPolicyRef", 0);
	if (v && (pi = resolve_ref(s, v, line, p, 1u << PK_ORDERING,
				   "an ordering policy (fcfs-ordering-policy, edf-ordering-policy "
				   "or slo-deadline-ordering-policy)")) >= 0)
		b->ordering = c->plugins[pi].type == PT_EDF_ORDERING ? IG_FLOW_EDF
			      : c->plugins[pi].type == PT_SLO_DEADLINE_ORDERING
				  ? IG_FLOW_SLO_DEADLINE
				  : IG_FLOW_FCFS;
}

static void decode_band(struct session *s, yaml_node_t *n, const char *path)
{
	static const char *const fields[] = {
	    "priority", "maxBytes", "maxRequests", "fairnessPolicyRef", "orderingPolicyRef", NULL};
	struct ig_flow_control_config *f = &s->cfg->flow;
	char p[PATH_LEN];
	int line;
	double prio;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
	check_keys(s, n, path, fields);
	struct ig_flow_band_config b = {0};
	yaml_node_t *v = get(s, n, "priority", &line);
	sub(p, path, "priority", 0);
	if (!v) {
		err(s, line, p, "is required");
		return;
	}
	if (to_double(v, &prio) < 0 || prio != floor(prio) || fabs(prio) > 1e9) {
		err(s, line, p, "must be an integer");
		return;
	}
	b.priority = (int)prio;
	for (size_t i = 0; i < f->nbands; i++)
		if (f->bands[i].priority == b.priority) {
			err(s, line, p, "duplicate priority band %d", b.priority);
			return;
		}
	flow_quantity(s, n, path, "maxRequests", &b.max_requests);
	flow_quantity(s, n, path, "maxBytes", &b.max_bytes);
	decode_policies(s, n, path, &b);
	if (f->nbands == IG_FLOW_MAX_BANDS) {
		err(s, ig_yaml_line(n), path, "more than %d priority bands", IG_FLOW_MAX_BANDS);
		return;
	}
	f->bands[f->nbands++] = b;
}

/* defaultPriorityBand: the template of bands for priorities not listed. */
static void decode_default_band(struct session *s, yaml_node_t *n, int line)
{
	static const char *const fields[] = {
	    "priority", "maxBytes", "maxRequests", "fairnessPolicyRef", "orderingPolicyRef", NULL};
	const char *path = "flowControl.defaultPriorityBand";
	struct ig_flow_band_config *b = &s->cfg->flow.default_band;
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, path))
		return;
	check_keys(s, n, path, fields);
	if (get(s, n, "priority", &l) != NULL)
		err(s, l, "flowControl.defaultPriorityBand.priority",
		    "has no meaning here: the default band serves every priority not listed in "
		    "priorityBands");
	flow_quantity(s, n, path, "maxRequests", &b->max_requests);
	flow_quantity(s, n, path, "maxBytes", &b->max_bytes);
	decode_policies(s, n, path, b);
}

static void decode_flow(struct session *s, yaml_node_t *n, int line)
{
	static const char *const fields[] = {"maxBytes",	   "maxRequests",
					     "defaultRequestTTL",  "defaultPriorityBand",
					     "priorityBands",	   "usageLimitPolicyPluginRef",
					     "saturationDetector", NULL};
	struct ig_flow_control_config *f = &s->cfg->flow;
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, "flowControl"))
		return;
	check_keys(s, n, "flowControl", fields);
	f->present = true;
	f->line = line;
	flow_quantity(s, n, "flowControl", "maxRequests", &f->max_requests);
	flow_quantity(s, n, "flowControl", "maxBytes", &f->max_bytes);
	yaml_node_t *ttl = get(s, n, "defaultRequestTTL", &l);
	if (ttl && to_duration_ms(ttl, &f->default_request_ttl_ms) < 0)
		err(s, l, "flowControl.defaultRequestTTL", "must be a duration such as 30s");
	yaml_node_t *def = get(s, n, "defaultPriorityBand", &l);
	if (def)
		decode_default_band(s, def, l);
	yaml_node_t *bands = get(s, n, "priorityBands", &l);
	if (bands && expect(s, bands, YAML_SEQUENCE_NODE, l, "flowControl.priorityBands")) {
		for (size_t i = 0; i < seq_len(bands); i++) {
			char p[PATH_LEN];
			yaml_node_t *b = seq_item(s, bands, i);
			sub(p, "flowControl.priorityBands", NULL, i);
			if (b)
				decode_band(s, b, p);
		}
	}
	yaml_node_t *ul = get(s, n, "usageLimitPolicyPluginRef", &l);
	int pi;
	s->usage_ref = ul != NULL;
	if (ul && (pi = resolve_ref(s, ul, l, "flowControl.usageLimitPolicyPluginRef",
				    1u << PK_USAGE_LIMIT,
				    "a usage limit policy (static-usage-limit-policy)")) >= 0)
		f->usage_limit = s->cfg->plugins[pi].p.usage_threshold;
	yaml_node_t *sd = get(s, n, "saturationDetector", &l);
	if (sd)
		decode_flow_detector(s, sd, l);
}

/* ---- featureGates, dataLayer --------------------------------------------------- */

/* flowControl turns the queue on; dataLayer is a no-op in GIE v1.5 (the
 * data layer is always on), and so here; enableLegacyMetrics selects GIE's
 * older scraper, which reads the same metrics infergate reads, and makes
 * GIE ignore a dataLayer section (refused below). */
static void decode_gates(struct session *s, yaml_node_t *n, int line)
{
	static const struct {
		const char *name;
		unsigned bit;
	} gates[] = {{"flowControl", GATE_FLOW_CONTROL},
		     {"enableLegacyMetrics", GATE_LEGACY_METRICS},
		     {"dataLayer", GATE_DATA_LAYER}};
	if (!expect(s, n, YAML_SEQUENCE_NODE, line, "featureGates"))
		return;
	for (size_t i = 0; i < seq_len(n); i++) {
		char p[PATH_LEN];
		yaml_node_t *g = seq_item(s, n, i);
		sub(p, "featureGates", NULL, i);
		if (!g || !expect(s, g, YAML_SCALAR_NODE, g ? ig_yaml_line(g) : line, p))
			continue;
		size_t k = 0;
		while (k < sizeof gates / sizeof gates[0] && !ig_yaml_scalar_is(g, gates[k].name))
			k++;
		if (k == sizeof gates / sizeof gates[0])
			err(s, ig_yaml_line(g), p, "unknown feature gate \"%.*s\"",
			    IG_STR_FMT(scalar(g)));
		else
			s->cfg->gates |= gates[k].bit;
	}
}

static void decode_source(struct session *s, yaml_node_t *n, const char *path)
{
	static const char *const fields[] = {"pluginRef", "extractors", NULL};
	static const char *const efields[] = {"pluginRef", NULL};
	char p[PATH_LEN];
	int line;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
	check_keys(s, n, path, fields);
	yaml_node_t *ref = get(s, n, "pluginRef", &line);
	sub(p, path, "pluginRef", 0);
	if (!ref)
		err(s, line, p, "is required");
	else
		(void)resolve_ref(s, ref, line, p, 1u << PK_SOURCE,
				  "a data source (metrics-data-source)");
	yaml_node_t *ex = get(s, n, "extractors", &line);
	sub(p, path, "extractors", 0);
	if (ex && !expect(s, ex, YAML_SEQUENCE_NODE, line, p))
		return;
	if (!ex || seq_len(ex) == 0) {
		err(s, line, p,
		    "a source without a core-metrics-extractor gives the picker nothing; "
		    "infergate reads every endpoint's metrics");
		return;
	}
	for (size_t i = 0; i < seq_len(ex); i++) {
		char ep[PATH_LEN], rp[PATH_LEN];
		int l;
		yaml_node_t *e = seq_item(s, ex, i);
		sub(ep, p, NULL, i);
		if (!e || !expect(s, e, YAML_MAPPING_NODE, ig_yaml_line(e), ep))
			continue;
		check_keys(s, e, ep, efields);
		yaml_node_t *r = get(s, e, "pluginRef", &l);
		sub(rp, ep, "pluginRef", 0);
		if (!r)
			err(s, l, rp, "is required");
		else
			(void)resolve_ref(s, r, l, rp, 1u << PK_EXTRACTOR,
					  "an extractor (core-metrics-extractor)");
	}
}

/* dataLayer: what GIE's EPP scrapes. infergate always scrapes
 * http://ENDPOINT/metrics and reads vLLM's names, which is what a
 * metrics-data-source with a core-metrics-extractor describes; a section
 * that asks for anything else is refused. GIE v1.3-v1.4 called the
 * section `data` (`key` says which name the document used). */
static void decode_data_layer(struct session *s, yaml_node_t *n, int line, const char *key)
{
	static const char *const fields[] = {"sources", NULL};
	char sp[PATH_LEN];
	int l;
	s->data_layer = true;
	if (!expect(s, n, YAML_MAPPING_NODE, line, key))
		return;
	check_keys(s, n, key, fields);
	if (s->cfg->gates & GATE_LEGACY_METRICS)
		err(s, line, key,
		    "is not used with the enableLegacyMetrics feature gate (GIE then ignores it): "
		    "remove one of them");
	yaml_node_t *src = get(s, n, "sources", &l);
	sub(sp, key, "sources", 0);
	if (src && !expect(s, src, YAML_SEQUENCE_NODE, l, sp))
		return;
	if (!src || seq_len(src) == 0) {
		err(s, l, sp,
		    "no sources turns metrics collection off in GIE; infergate always scrapes "
		    "each endpoint's /metrics, which the picker needs");
		return;
	}
	for (size_t i = 0; i < seq_len(src); i++) {
		char p[PATH_LEN];
		yaml_node_t *e = seq_item(s, src, i);
		sub(p, sp, NULL, i);
		if (e)
			decode_source(s, e, p);
	}
}

/* ---- the document ------------------------------------------------------------ */

static void decode_list(struct session *s, yaml_node_t *root, const char *key,
			void (*fn)(struct session *, yaml_node_t *, const char *), int *keyline)
{
	yaml_node_t *v = get(s, root, key, keyline);
	if (!v || !expect(s, v, YAML_SEQUENCE_NODE, *keyline, key))
		return;
	for (size_t i = 0; i < seq_len(v); i++) {
		char p[PATH_LEN];
		yaml_node_t *item = seq_item(s, v, i);
		sub(p, key, NULL, i);
		if (item)
			fn(s, item, p);
	}
}

static void check_header(struct session *s, yaml_node_t *root)
{
	static const char *const known[] = {"apiVersion",
					    "kind",
					    "plugins",
					    "schedulingProfiles",
					    "saturationDetector",
					    "flowControl",
					    "featureGates",
					    "dataLayer",
					    "parser",
					    "requestHandler",
					    "data",
					    NULL};
	int line;
	yaml_node_t *kind = get(s, root, "kind", &line);
	if (kind && !ig_yaml_scalar_is(kind, "EndpointPickerConfig"))
		err(s, line, "kind", "must be EndpointPickerConfig");
	/* The manifests loader hands over the same three (config_load.c). */
	yaml_node_t *api = get(s, root, "apiVersion", &line);
	if (api && !ig_yaml_scalar_is(api, "inference.networking.x-k8s.io/v1alpha1") &&
	    !ig_yaml_scalar_is(
		api, "config.apix.gateway-api-inference-extension.sigs.k8s.io/v1alpha1") &&
	    !ig_yaml_scalar_is(api, "llm-d.ai/v1alpha1"))
		err(s, line, "apiVersion",
		    "must be inference.networking.x-k8s.io/v1alpha1 (GIE) or llm-d.ai/v1alpha1 "
		    "(llm-d Router)");
	check_keys(s, root, "", known);
}

static void decode_root(struct session *s, yaml_node_t *root)
{
	int line;
	if (!expect(s, root, YAML_MAPPING_NODE, ig_yaml_line(root), ""))
		return;
	check_header(s, root);
	yaml_node_t *g = get(s, root, "featureGates", &line);
	if (g)
		decode_gates(s, g, line);
	decode_list(s, root, "plugins", decode_plugin, &line);
	decode_list(s, root, "schedulingProfiles", decode_profile, &s->profiles_line);
	yaml_node_t *d = get(s, root, "saturationDetector", &line);
	if (d) {
		s->detector_line = line;
		decode_detector(s, d, line, "saturationDetector", true);
	}
	yaml_node_t *f = get(s, root, "flowControl", &line);
	if (f)
		decode_flow(s, f, line);
	yaml_node_t *dl = get(s, root, "dataLayer", &line);
	int dline;
	yaml_node_t *data = get(s, root, "data", &dline);
	if (dl && data)
		err(s, dline, "data",
		    "is GIE v1.3-v1.4's name for dataLayer (v1.5): give the section once");
	else if (dl)
		decode_data_layer(s, dl, line, "dataLayer");
	else if (data)
		decode_data_layer(s, data, dline, "data");
	int parser_line = 0;
	yaml_node_t *pa = get(s, root, "parser", &line);
	if (pa) {
		parser_line = line;
		decode_parser(s, pa, line, "parser");
	}
	yaml_node_t *rh = get(s, root, "requestHandler", &line);
	if (rh)
		decode_request_handler(s, rh, line, parser_line);
}

/* ---- system defaults --------------------------------------------------------- */

/* Without profiles, one "default" profile runs every filter, scorer and
 * picker defined, in order, with weight 1 (GIE puts every plugin that can
 * filter in it, the utilization detector too). */
static int default_profile(struct session *s)
{
	struct ig_picker_config *c = s->cfg;
	struct profile *pr = &c->profiles[0];
	*pr = (struct profile){.name = strdup("default")};
	if (!pr->name)
		return -1;
	c->nprofiles = 1;
	int picker = -1;
	for (size_t i = 0; i < c->nplugins; i++) {
		struct plugin *pl = &c->plugins[i];
		enum plugin_kind k = picker_type_kind(pl->type);
		char p[PATH_LEN];
		if (k != PK_FILTER && k != PK_SCORER && k != PK_PICKER && k != PK_DETECTOR)
			continue;
		sub(p, "plugins", NULL, i);
		if (k == PK_PICKER && picker >= 0) {
			err(s, pl->line, p,
			    "without schedulingProfiles every filter, scorer and picker runs in "
			    "one "
			    "profile, which takes one picker: \"%s\" and \"%s\"",
			    c->plugins[picker].name, pl->name);
			continue;
		}
		if (pr->n == MAX_PROFILE_ENTRIES - 1) {
			err(s, pl->line, p,
			    "without schedulingProfiles every filter, scorer and picker runs in "
			    "one "
			    "profile, which takes at most %d",
			    MAX_PROFILE_ENTRIES - 1);
			break;
		}
		if (k == PK_PICKER)
			picker = (int)i;
		pl->used = true;
		pr->e[pr->n++] = (struct profile_entry){i, 1.0};
	}
	return 0;
}

/* A profile lacking a picker gets one (GIE v1.5 ensureSchedulingLayer):
 * a picker among the plugins, whatever its type, else a max-score-picker
 * registered once for all such profiles. GIE takes the first picker its
 * plugin map yields, which is random when there are several; this takes
 * the first declared. */
static int default_picker(struct ig_picker_config *c, struct profile *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		if (picker_type_kind(c->plugins[pr->e[i].plugin].type) == PK_PICKER)
			return 0;
	int pi = -1;
	for (size_t i = 0; i < c->nplugins && pi < 0; i++)
		if (picker_type_kind(c->plugins[i].type) == PK_PICKER)
			pi = (int)i;
	if (pi < 0)
		pi = add_plugin(c, PT_MAX_SCORE_PICKER, "max-score-picker");
	if (pi < 0)
		return -1;
	c->plugins[pi].used = true;
	pr->e[pr->n++] = (struct profile_entry){(size_t)pi, 1.0};
	return 0;
}

static int find_profile(const struct ig_picker_config *c, const char *name)
{
	for (size_t i = 0; i < c->nprofiles; i++)
		if (strcmp(c->profiles[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The profile handler: single-profile-handler (declared or by default)
 * runs the one profile, as GIE's loader insists; header-profile-handler
 * (llm-d Router) runs the profile a request header names. */
static void check_handler(struct session *s)
{
	struct ig_picker_config *c = s->cfg;
	const struct plugin *h = s->handler >= 0 ? &c->plugins[s->handler] : NULL;
	char p[PATH_LEN];
	if (h)
		c->plugins[s->handler].used = true;
	if (c->nprofiles > 1 && (!h || h->type == PT_SINGLE_PROFILE_HANDLER)) {
		sub(p, "schedulingProfiles", NULL, 1);
		if (!h)
			err(s, c->profiles[1].line, p,
			    "%zu scheduling profiles need a profile handler that chooses among "
			    "them: declare a plugin of type header-profile-handler (the default, "
			    "single-profile-handler, runs one profile)",
			    c->nprofiles);
		else
			err(s, c->profiles[1].line, p,
			    "plugin \"%s\" (single-profile-handler) runs one profile: "
			    "SingleProfileHandler cannot support multiple scheduling profiles "
			    "(header-profile-handler chooses one per request)",
			    h->name);
		return;
	}
	if (!h || h->type != PT_HEADER_PROFILE_HANDLER)
		return;
	c->profile_header = strdup(h->header ? h->header : "epp-profile");
	if (!c->profile_header) {
		oom(s, h->line, "");
		return;
	}
	/* With one profile there is nothing to choose: it always runs. */
	const char *def = h->default_profile ? h->default_profile : "decode";
	int d = find_profile(c, def);
	if (d >= 0 || c->nprofiles == 1) {
		c->default_profile = d >= 0 ? (size_t)d : 0;
		return;
	}
	char names[256];
	size_t len = 0;
	names[0] = '\0';
	for (size_t i = 0; i < c->nprofiles && len < sizeof names; i++)
		len += (size_t)snprintf(names + len, sizeof names - len, "%s\"%s\"", i ? ", " : "",
					c->profiles[i].name);
	sub(p, "plugins", NULL, (size_t)s->handler);
	if (h->default_profile) {
		char q[PATH_LEN];
		sub(q, p, "parameters.defaultProfile", 0);
		err(s, h->default_profile_line, q,
		    "\"%s\" is not a scheduling profile (there are %s): requests without the %s "
		    "header run it",
		    def, names, c->profile_header);
	} else {
		err(s, h->line, p,
		    "defaultProfile (by default \"decode\") is not a scheduling profile (there are "
		    "%s): set parameters.defaultProfile to the profile requests without the %s "
		    "header run",
		    names, c->profile_header);
	}
}

static bool same_prefix_params(const struct plugin_params *a, const struct plugin_params *b)
{
	return a->block_size_tokens == b->block_size_tokens &&
	       a->max_prefix_blocks == b->max_prefix_blocks &&
	       a->max_prefix_tokens == b->max_prefix_tokens && a->lru_capacity == b->lru_capacity;
}

/* One prefix index per pool, hashed one way. GIE hashes with the
 * approx-prefix-cache-producer's parameters when one is declared (the
 * scorers' are then ignored, so giving both is refused here), else with
 * those of the prefix-cache-scorer (GIE creates the producer from them; of
 * several scorers it takes the last, so they must agree here). A declared
 * producer keeps the index even when nothing scores with it, as in GIE. */
static void prefix_setup(struct session *s)
{
	struct ig_picker_config *c = s->cfg;
	int producer = -1, scorer = -1;
	bool affinity = false;
	char p[PATH_LEN];
	for (size_t i = 0; i < c->nplugins; i++) {
		const struct plugin *pl = &c->plugins[i];
		sub(p, "plugins", NULL, i);
		if (pl->type == PT_PREFIX_PRODUCER && producer >= 0)
			err(s, pl->line, p,
			    "a second approx-prefix-cache-producer (\"%s\" is one): one prefix "
			    "index serves the pool",
			    c->plugins[producer].name);
		else if (pl->type == PT_PREFIX_PRODUCER)
			producer = (int)i;
		if (pl->type == PT_PREFIX_SCORER && pl->used && scorer < 0)
			scorer = (int)i;
		else if (pl->type == PT_PREFIX_SCORER && pl->used &&
			 !same_prefix_params(&pl->p, &c->plugins[scorer].p))
			err(s, pl->line, p,
			    "parameters differ from prefix-cache-scorer \"%s\"'s: one prefix index "
			    "serves every profile, hashed one way",
			    c->plugins[scorer].name);
		affinity |= pl->type == PT_PREFIX_AFFINITY_FILTER && pl->used;
	}
	if (producer >= 0)
		for (size_t i = 0; i < c->nplugins; i++) {
			const struct plugin *pl = &c->plugins[i];
			if (pl->type != PT_PREFIX_SCORER || !pl->has_params)
				continue;
			char q[PATH_LEN];
			sub(q, "plugins", NULL, i);
			sub(p, q, "parameters", 0);
			err(s, pl->line, p,
			    "would be ignored next to approx-prefix-cache-producer \"%s\", whose "
			    "parameters GIE hashes with: set them there",
			    c->plugins[producer].name);
		}
	picker_default_params(&c->prefix);
	if (producer >= 0)
		c->prefix = c->plugins[producer].p;
	else if (scorer >= 0)
		c->prefix = c->plugins[scorer].p;
	c->prefix_index = producer >= 0 || scorer >= 0 || affinity;
}

/* A warning for each declared plugin no part of the configuration uses:
 * GIE instantiates it and lets it be, which is easy to mistake for a
 * setting that works. */
static void warn_unused(struct session *s)
{
	const struct ig_picker_config *c = s->cfg;
	for (size_t i = 0; i < c->nplugins; i++) {
		const struct plugin *pl = &c->plugins[i];
		const char *why = NULL;
		if (pl->used || pl->line == 0)
			continue;
		switch (picker_type_kind(pl->type)) {
		case PK_FILTER:
		case PK_SCORER:
		case PK_PICKER:
			why = "no scheduling profile refers to it";
			break;
		case PK_DETECTOR:
			why = "neither saturationDetector nor a scheduling profile refers to it";
			break;
		case PK_FAIRNESS:
			why = "no priority band refers to it (a band without fairnessPolicyRef is "
			      "round-robin here)";
			break;
		case PK_ORDERING:
			why = "no priority band refers to it";
			break;
		case PK_USAGE_LIMIT:
			why = "flowControl.usageLimitPolicyPluginRef does not refer to it";
			break;
		case PK_SOURCE:
		case PK_EXTRACTOR:
			/* Without a dataLayer section they describe GIE's default one. */
			if (s->data_layer)
				why = "the dataLayer section does not refer to it";
			break;
		case PK_PARSER:
			if (s->parser)
				why = "another plugin is the parser (parser, "
				      "requestHandler.parsers)";
			else if (pl->type == PT_PASSTHROUGH_PARSER)
				why = "no parser section names it, so openai-parser parses (as "
				      "in llm-d Router)";
			break;
		case PK_HANDLER:
		case PK_PRODUCER:
		case PK_RESPONSE: /* runs by being declared, as in GIE */
			break;
		}
		if (why) {
			char p[PATH_LEN];
			sub(p, "plugins", NULL, i);
			warn(s, pl->line, p, "plugin \"%s\" (%s) is not used: %s", pl->name,
			     picker_type_name(pl->type), why);
		}
	}
}

/* random-picker draws without looking at scores, so a profile's scorers
 * would count for nothing (GIE runs them all the same). */
static void warn_unscored(struct session *s)
{
	const struct ig_picker_config *c = s->cfg;
	for (size_t i = 0; i < c->nprofiles; i++) {
		const struct profile *pr = &c->profiles[i];
		size_t picker = SIZE_MAX, scorers = 0;
		for (size_t k = 0; k < pr->n; k++) {
			enum plugin_type t = c->plugins[pr->e[k].plugin].type;
			scorers += picker_type_kind(t) == PK_SCORER;
			if (t == PT_RANDOM_PICKER)
				picker = pr->e[k].plugin;
		}
		if (picker == SIZE_MAX || scorers == 0)
			continue;
		char p[PATH_LEN];
		if (pr->line)
			sub(p, "schedulingProfiles", NULL, i);
		else
			sub(p, "plugins", NULL, picker);
		warn(s, pr->line ? pr->line : c->plugins[picker].line, p,
		     "the scorers of profile \"%s\" have no effect: %s (random-picker) ignores "
		     "scores",
		     pr->name, c->plugins[picker].name);
	}
}

static void apply_defaults(struct session *s)
{
	struct ig_picker_config *c = s->cfg;
	if (c->nprofiles == 0 && default_profile(s) < 0)
		oom(s, 0, "");
	check_handler(s);
	for (size_t i = 0; i < c->nprofiles; i++)
		if (default_picker(c, &c->profiles[i]) < 0)
			err(s, 0, "schedulingProfiles", "too many plugins to add a default picker");
	picker_default_params(&c->detector);
	int d = s->detector_ref;
	for (size_t i = 0; i < c->nplugins && d < 0 && !s->thresholds; i++)
		if (c->plugins[i].type == PT_UTILIZATION_DETECTOR)
			d = (int)i;
	if (s->thresholds) {
		c->detector = s->legacy;
	} else if (d >= 0) {
		c->detector = c->plugins[d].p;
		c->plugins[d].used = true;
	}
	/* GIE's flow control looks the usage limit policy up by the name
	 * static-usage-limit-policy when nothing names one. */
	int u = s->usage_ref ? -1 : find_plugin(c, ig_str_from("static-usage-limit-policy"));
	if (u >= 0 && c->plugins[u].type == PT_STATIC_USAGE_LIMIT) {
		c->flow.usage_limit = c->plugins[u].p.usage_threshold;
		c->plugins[u].used = true;
	}
	prefix_setup(s);
	warn_unused(s);
	warn_unscored(s);
}

/* ---- entry points ------------------------------------------------------------ */

static void syntax_error(struct session *s, const yaml_parser_t *p)
{
	const char *what = p->problem ? p->problem : "unreadable YAML";
	if (p->error == YAML_MEMORY_ERROR)
		ig_diags_resource(s->diags, ENOMEM);
	err(s, (int)p->problem_mark.line + 1, "", "YAML syntax error: %s%s%s",
	    p->context ? p->context : "", p->context ? " " : "", what);
}

/* Refuses deep nesting and many anchors before the document loader sees
 * them (both make libyaml slow). Syntax errors are left to the load. */
static int prescan(struct session *s, const char *text, size_t len)
{
	char msg[128];
	int line;
	int rc = ig_yaml_prescan(text, len, MAX_NESTING, MAX_ANCHORS, &line, msg, sizeof msg);
	if (rc == 0)
		return 0;
	err(s, line, "", "%s", msg);
	ig_diags_resource(s->diags, rc);
	return -1;
}

/* A picker configuration is one document; one after it would be left
 * unread (the manifests loader hands each document over on its own). */
static void more_documents(struct session *s, yaml_parser_t *parser)
{
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next)) {
		syntax_error(s, parser);
		return;
	}
	yaml_node_t *root = yaml_document_get_root_node(&next);
	if (root && !ig_yaml_is_null(root))
		err(s, ig_yaml_line(root), "",
		    "a second YAML document: the picker configuration is one document");
	yaml_document_delete(&next);
}

static void load(struct session *s, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (len > MAX_TEXT_BYTES) {
		err(s, 0, "", "larger than %u bytes", MAX_TEXT_BYTES);
		return;
	}
	if (prescan(s, text, len) < 0)
		return;
	if (!yaml_parser_initialize(&parser)) {
		oom(s, 0, "");
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(s, &parser);
		yaml_parser_delete(&parser);
		return;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	char msg[128];
	int line;
	s->doc = &doc;
	/* Merge keys, as sigs.k8s.io/yaml reads them for GIE's picker. */
	int rc = root ? ig_yaml_expand_merges(&doc, MAX_VISITS, &line, msg, sizeof msg) : 0;
	if (rc < 0) {
		err(s, line, "", "%s", msg);
		ig_diags_resource(s->diags, rc);
	} else if (root && !ig_yaml_is_null(root)) {
		decode_root(s, root);
	}
	if (s->visits > MAX_VISITS)
		err(s, root ? ig_yaml_line(root) : 0, "", "document uses too many aliases");
	yaml_document_delete(&doc);
	more_documents(s, &parser);
	yaml_parser_delete(&parser);
}

int ig_picker_config_parse(const char *file, const char *text, size_t len,
			   struct ig_picker_config **out, struct ig_diags *diags)
{
	struct session s = {
	    .file = file ? file : "<text>", .diags = diags, .detector_ref = -1, .handler = -1};
	s.cfg = calloc(1, sizeof(*s.cfg));
	if (!s.cfg) {
		oom(&s, 0, "");
		return -1;
	}
	load(&s, text, len);
	if (s.nerrors == 0)
		apply_defaults(&s);
	if (s.nerrors) {
		ig_picker_config_free(s.cfg);
		return -1;
	}
	*out = s.cfg;
	return 0;
}

/* A built-in configuration, through the same parser as a file. */
static struct ig_picker_config *preset(const char *name)
{
	const char *text = ig_picker_preset(name);
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	if (ig_picker_config_parse(name, text, strlen(text), &c, &d) < 0)
		c = NULL;
	ig_diags_free(&d);
	return c;
}

struct ig_picker_config *ig_picker_config_default(void)
{
	return preset("gie");
}

struct ig_picker_config *ig_picker_config_decision_tree(void)
{
	return preset("v0.2");
}

void ig_picker_config_free(struct ig_picker_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nplugins; i++)
		free_plugin(&c->plugins[i]);
	for (size_t i = 0; i < c->nprofiles; i++)
		free(c->profiles[i].name);
	free(c->profile_header);
	free(c);
}

const struct ig_flow_control_config *ig_picker_config_flow_control(const struct ig_picker_config *c)
{
	return &c->flow;
}

const struct ig_flow_band_config *ig_flow_band(const struct ig_flow_control_config *f, int priority)
{
	for (size_t i = 0; i < f->nbands; i++)
		if (f->bands[i].priority == priority)
			return &f->bands[i];
	return &f->default_band;
}

double ig_flow_usage_limit(const struct ig_flow_control_config *f, int priority)
{
	(void)priority; /* the static policy gives every band the same limit */
	return f->usage_limit > 0 ? f->usage_limit : 1.0;
}

bool ig_picker_config_feature(const struct ig_picker_config *c, const char *gate)
{
	if (strcmp(gate, "flowControl") == 0)
		return c->gates & GATE_FLOW_CONTROL;
	if (strcmp(gate, "enableLegacyMetrics") == 0)
		return c->gates & GATE_LEGACY_METRICS;
	if (strcmp(gate, "dataLayer") == 0)
		return c->gates & GATE_DATA_LAYER;
	return false;
}
