/* What an endpoint (a model server) reports about its load, as the
 * scheduler sees it, and the extraction of it from a vLLM /metrics page. */
#ifndef IG_POOL_METRICS_H
#define IG_POOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define IG_MAX_ADAPTERS 32
#define IG_ADAPTER_TEXT_MAX 256

/* A small set of adapter names, kept as 64-bit hashes (xxhash64 of the
 * name) so that the metrics struct stays small: workers copy it for every
 * endpoint on every request. */
struct ig_adapter_set {
	uint32_t n;
	uint64_t hash[IG_MAX_ADAPTERS];
};

bool ig_adapter_set_has(const struct ig_adapter_set *s, struct ig_str name);
bool ig_adapter_set_has_hash(const struct ig_adapter_set *s, uint64_t hash);
uint64_t ig_adapter_hash(struct ig_str name);
/* Adds name unless present or the set is full. */
void ig_adapter_set_add(struct ig_adapter_set *s, struct ig_str name);

/* The KV cache as vllm:cache_config_info describes it (its block_size and
 * num_gpu_blocks labels); 0 where the server did not say. Static for the
 * life of a server; the prefix-cache index reads it under autoTune. */
struct ig_cache_config {
	uint32_t block_tokens; /* tokens per KV-cache block */
	uint32_t gpu_blocks;   /* blocks the GPU (or CPU) cache holds */
};

struct ig_endpoint_metrics {
	int64_t waiting; /* vllm:num_requests_waiting */
	int64_t running; /* vllm:num_requests_running */
	double kv_usage; /* 0..1: vllm:kv_cache_usage_perc or gpu_cache_usage_perc */
	/* Adapters from vllm:lora_requests_info. GIE v0.2.0 counts running and
	 * waiting adapters together as "active"; both lists are also kept. */
	struct ig_adapter_set active; /* running ∪ waiting */
	struct ig_adapter_set running_adapters;
	struct ig_adapter_set waiting_adapters;
	int64_t max_active; /* max_lora */
	struct ig_cache_config cache;
	/* ig_adapter_hash of the model_name label of vllm:num_requests_running
	 * (the served model, which needs no adapter slot); 0: not given. */
	uint64_t base_model;
	/* The adapter lists as the server wrote them, for display (cut at
	 * IG_ADAPTER_TEXT_MAX - 1 bytes). */
	char running_text[IG_ADAPTER_TEXT_MAX];
	char waiting_text[IG_ADAPTER_TEXT_MAX];
	uint64_t updated_ns; /* ig_now_ns() of the last successful scrape; 0: never */
};

/* The few figures of an endpoint that the picker reads for every request,
 * published by the scraper beside the full metrics (pool/endpoint.h) so
 * that a worker copies five words per endpoint, not the whole struct with
 * its adapter sets and display text. Adapter sets are read from the full
 * metrics, and only by profiles that use them. */
struct ig_endpoint_load {
	int64_t waiting;
	int64_t running;
	double kv_usage;
	int64_t max_active;  /* max_lora */
	uint64_t updated_ns; /* as in ig_endpoint_metrics; 0: never scraped */
};

/* The load figures of m. */
void ig_endpoint_load_of(const struct ig_endpoint_metrics *m, struct ig_endpoint_load *out);

/* Families found by ig_vllm_metrics_extract (bit mask). */
#define IG_FAM_WAITING 0x1u
#define IG_FAM_RUNNING 0x2u
#define IG_FAM_KV 0x4u
#define IG_FAM_LORA 0x8u
#define IG_FAM_CACHE 0x10u

/* Which vllm:lora_requests_info series gives the adapters and max_lora:
 * the one with the greatest value (the time vLLM last set its labels),
 * the first of equals. */
enum ig_lora_rule {
	/* GIE v1.5's extractor: whatever adapters it names, none included. */
	IG_LORA_NEWEST,
	/* GIE v0.2.0 (and v1.5 under the enableLegacyMetrics gate): among the
	 * series naming a running or waiting adapter, so the adapters that
	 * ran last stay while a server idles. */
	IG_LORA_NAMING_ADAPTERS,
};

/* The inference engine of a model server, which names the families its
 * /metrics page gives: llm-d Router's core-metrics-extractor selects one
 * of its built-in engine configurations per pod by the pod's label
 * llm-d.ai/engine-type (GIE's inference.networking.k8s.io/engine-type
 * when that one is absent or empty), vLLM's for a pod without either. */
enum ig_engine {
	IG_ENGINE_VLLM,		/* vllm:num_requests_waiting, ..._running, kv_cache_usage_perc */
	IG_ENGINE_SGLANG,	/* sglang:num_queue_reqs, num_running_reqs, token_usage */
	IG_ENGINE_TRTLLM_SERVE, /* trtllm_num_requests_waiting, ..._running, kv_cache_utilization */
	IG_ENGINE_TRITON_TRTLLM, /* nv_trt_llm_request_metrics{request_type=...}, ... */
};

#define IG_ENGINE_LABEL "llm-d.ai/engine-type"
#define IG_ENGINE_LABEL_GIE "inference.networking.k8s.io/engine-type"

/* The engine a label value names (llm-d's names: vllm, sglang,
 * trtllm-serve, triton-tensorrt-llm), or -1 for a value that names none
 * (llm-d reads such a pod with the default engine's, vLLM's, names). */
int ig_engine_parse(struct ig_str name);
const char *ig_engine_name(enum ig_engine e);

/* For logs: the families an engine gives the load figures of `mask` by
 * (IG_FAM_WAITING, _RUNNING, _KV; vLLM's KV by its newer name), with
 * their label filters, comma-separated into buf (cut to fit). */
void ig_engine_families(enum ig_engine e, unsigned mask, char *buf, size_t size);

/* Families found that tell an endpoint's load. A page may lack some or
 * all of them (an SGLang server exports a gauge only once it has set it,
 * at its first request's statistics; a server of another engine than its
 * label says): the figures it lacks keep their last values. */
#define IG_FAM_LOAD (IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV)

/* Parses a /metrics page of an `engine` server as llm-d's extractor reads
 * it with that engine's built-in configuration (below, for vLLM), into *m:
 * SGLang's sglang:cache_config_info gives the cache by its page_size and
 * num_pages labels; trtllm-serve and Triton give it as gauges
 * (trtllm_kv_cache_tokens_per_block and _max_blocks;
 * nv_trt_llm_kv_cache_block_metrics of kv_cache_block_type tokens_per and
 * max); only vLLM reports LoRA adapters. A family of a label filter counts
 * only its samples with that label value. */
int ig_metrics_extract(const char *text, size_t len, enum ig_engine engine, enum ig_lora_rule rule,
		       struct ig_endpoint_metrics *m);

/* Parses a vLLM /metrics page and updates *m with every family it finds,
 * following GIE's rules (gauges: the sample with the latest timestamp, the
 * last one when none has a timestamp; vllm:kv_cache_usage_perc preferred
 * over vllm:gpu_cache_usage_perc; lora_requests_info: the series `rule`
 * chooses, max_lora from it; cache_config_info: block_size and
 * num_gpu_blocks from the labels of its latest sample, each when it is an
 * integer from 1 to 2^32 - 1). A family that is missing leaves its fields
 * as they were. Returns the mask of families found (>= 0), or -1 if the
 * text is not valid exposition format (then *m is unchanged). Does not
 * touch updated_ns. */
int ig_vllm_metrics_extract(const char *text, size_t len, enum ig_lora_rule rule,
			    struct ig_endpoint_metrics *m);

#endif
