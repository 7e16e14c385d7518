/* The parsed EndpointPickerConfig, shared by the loader (picker_config.c)
 * and the scheduler (picker.c). Not part of the public interface. */
#ifndef IG_SCHED_PICKER_INT_H
#define IG_SCHED_PICKER_INT_H

#include "sched/picker.h"

enum plugin_kind { PK_FILTER, PK_SCORER, PK_PICKER, PK_DETECTOR, PK_OTHER };

enum plugin_type {
	PT_QUEUE_SCORER,
	PT_RUNNING_SCORER,
	PT_KV_SCORER,
	PT_LORA_SCORER,
	PT_TOKEN_LOAD_SCORER,
	PT_PREFIX_SCORER,
	PT_MAX_SCORE_PICKER,
	PT_RANDOM_PICKER,
	PT_WEIGHTED_RANDOM_PICKER,
	PT_DECISION_TREE_FILTER,
	PT_UTILIZATION_DETECTOR, /* a saturation detector, usable as a filter */
	PT_PREFIX_AFFINITY_FILTER,
	PT_HEADER_TESTING_FILTER,
	/* Accepted so GIE's stock configs load, but they do nothing here: the
	 * gateway scrapes metrics and parses bodies itself. */
	PT_SINGLE_PROFILE_HANDLER,
	PT_METRICS_DATA_SOURCE,
	PT_CORE_METRICS_EXTRACTOR,
	PT_PREFIX_PRODUCER,
	PT_INFLIGHT_LOAD_PRODUCER,
	PT_OPENAI_PARSER,
	PT_COUNT
};

/* Every parameter any plugin type takes, with GIE's defaults. */
struct plugin_params {
	uint64_t queue_threshold_tokens; /* token-load-scorer */
	uint32_t block_size_tokens;      /* prefix-cache-scorer */
	uint32_t max_prefix_blocks;
	uint64_t max_prefix_tokens;
	uint32_t lru_capacity;
	bool auto_tune;
	size_t max_endpoints;          /* pickers; 0 ranks every survivor */
	double queue_depth_threshold;  /* utilization-detector */
	double kv_threshold;
	uint64_t staleness_ms;
	double headroom;
	double affinity_threshold;     /* prefix-cache-affinity-filter */
};

struct plugin {
	char *name;
	enum plugin_type type;
	int line;
	struct plugin_params p;
};

struct profile_entry {
	size_t plugin; /* index into plugins */
	double weight;
};

#define MAX_PROFILE_ENTRIES 32

struct profile {
	char *name;
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
	/* The saturation detector's parameters (the referenced or first
	 * utilization-detector, else defaults). */
	struct plugin_params detector;
	struct ig_flow_control_config flow;
	unsigned gates; /* GATE_* bits */
};

#define GATE_FLOW_CONTROL 0x1u
#define GATE_LEGACY_METRICS 0x2u
#define GATE_DATA_LAYER 0x4u

const char *picker_type_name(enum plugin_type t);
enum plugin_kind picker_type_kind(enum plugin_type t);
void picker_default_params(struct plugin_params *p);

#endif
