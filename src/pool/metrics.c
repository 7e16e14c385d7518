/* Endpoint load as GIE reads it from vLLM (gie-reference §3.3, §4.5), with
 * the differences our header documents: missing families never wipe what
 * we knew, the newer KV metric name wins, and waiting adapters are kept
 * apart from running ones as well as merged into `active`. */
#include "pool/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "core/buf.h"
#include "pool/prom.h"

/* A label value with escapes longer than this (unescaped) is not something
 * vLLM writes; refusing it keeps a hostile page from making us allocate
 * without bound. Values without escapes are read in place. */
#define LABEL_VALUE_MAX (64 * 1024)

/* Queue lengths beyond this are clamped so that the scheduler's arithmetic
 * (max - min) can never overflow, whatever a server reports. */
#define QUEUE_CLAMP 1e15

uint64_t ig_adapter_hash(struct ig_str name)
{
	return XXH64(name.ptr, name.len, 0);
}

bool ig_adapter_set_has_hash(const struct ig_adapter_set *s, uint64_t hash)
{
	for (uint32_t i = 0; i < s->n && i < IG_MAX_ADAPTERS; i++)
		if (s->hash[i] == hash)
			return true;
	return false;
}

bool ig_adapter_set_has(const struct ig_adapter_set *s, struct ig_str name)
{
	return ig_adapter_set_has_hash(s, ig_adapter_hash(name));
}

void ig_adapter_set_add(struct ig_adapter_set *s, struct ig_str name)
{
	uint64_t h = ig_adapter_hash(name);
	if (s->n >= IG_MAX_ADAPTERS || ig_adapter_set_has_hash(s, h))
		return;
	s->hash[s->n++] = h;
}

void ig_endpoint_load_of(const struct ig_endpoint_metrics *m, struct ig_endpoint_load *out)
{
	*out = (struct ig_endpoint_load){m->waiting, m->running, m->kv_usage, m->max_active,
					 m->updated_ns};
}

static void copy_text(char *dst, struct ig_str v)
{
	size_t n = v.len < IG_ADAPTER_TEXT_MAX - 1 ? v.len : IG_ADAPTER_TEXT_MAX - 1;
	memcpy(dst, v.ptr, n);
	dst[n] = '\0';
}

/* GIE keeps the sample with the greatest timestamp, a missing one counting
 * as 0, and lets a later sample win a tie; with no timestamps at all that
 * is simply the last sample. */
struct gauge_pick {
	bool found;
	int64_t ts;
	double value;
};

/* A family an engine's configuration names, with llm-d's label filter:
 * only samples whose label `label` is `value` count (label NULL: all). */
struct family {
	const char *name;
	const char *label, *value;
};

/* llm-d's built-in engine configurations (core-metrics-extractor,
 * factories.go) other than vLLM's, which on_sample reads by itself. */
struct engine_spec {
	struct family waiting, running, kv;
	struct family cache_info; /* block size and count in its labels... */
	const char *block_label, *blocks_label;
	struct family block_gauge, blocks_gauge; /* ...or as gauges */
};

static const struct engine_spec engines[] = {
    [IG_ENGINE_SGLANG] = {.waiting = {"sglang:num_queue_reqs"},
			  .running = {"sglang:num_running_reqs"},
			  .kv = {"sglang:token_usage"},
			  .cache_info = {"sglang:cache_config_info"},
			  .block_label = "page_size",
			  .blocks_label = "num_pages"},
    [IG_ENGINE_TRTLLM_SERVE] = {.waiting = {"trtllm_num_requests_waiting"},
				.running = {"trtllm_num_requests_running"},
				.kv = {"trtllm_kv_cache_utilization"},
				.block_gauge = {"trtllm_kv_cache_tokens_per_block"},
				.blocks_gauge = {"trtllm_kv_cache_max_blocks"}},
    [IG_ENGINE_TRITON_TRTLLM] =
	{.waiting = {"nv_trt_llm_request_metrics", "request_type", "waiting"},
	 .running = {"nv_trt_llm_request_metrics", "request_type", "scheduled"},
	 .kv = {"nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "fraction"},
	 .block_gauge = {"nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "tokens_per"},
	 .blocks_gauge = {"nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "max"}},
};

static const char *const engine_names[] = {
    [IG_ENGINE_VLLM] = "vllm",
    [IG_ENGINE_SGLANG] = "sglang",
    [IG_ENGINE_TRTLLM_SERVE] = "trtllm-serve",
    [IG_ENGINE_TRITON_TRTLLM] = "triton-tensorrt-llm",
};

int ig_engine_parse(struct ig_str name)
{
	for (size_t i = 0; i < sizeof engine_names / sizeof *engine_names; i++)
		if (name.len == strlen(engine_names[i]) &&
		    memcmp(name.ptr, engine_names[i], name.len) == 0)
			return (int)i;
	return -1;
}

const char *ig_engine_name(enum ig_engine e)
{
	return (size_t)e < sizeof engine_names / sizeof *engine_names ? engine_names[e] : "vllm";
}

void ig_engine_families(enum ig_engine e, unsigned mask, char *buf, size_t size)
{
	static const struct family vllm[] = {{.name = "vllm:num_requests_waiting"},
					     {.name = "vllm:num_requests_running"},
					     {.name = "vllm:kv_cache_usage_perc"}};
	static const unsigned fams[] = {IG_FAM_WAITING, IG_FAM_RUNNING, IG_FAM_KV};
	const struct engine_spec *spec =
	    e != IG_ENGINE_VLLM && (size_t)e < sizeof engines / sizeof *engines ? &engines[e]
										: NULL;
	size_t len = 0;
	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
		if (!(mask & fams[i]))
			continue;
		const struct family *f = !spec	  ? &vllm[i]
					 : i == 0 ? &spec->waiting
					 : i == 1 ? &spec->running
						  : &spec->kv;
		int n = snprintf(buf + len, size - len, f->label ? "%s%s{%s=\"%s\"}" : "%s%s",
				 len ? ", " : "", f->name, f->label, f->value);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

struct scan {
	struct gauge_pick waiting, running, kv_new, kv_old;
	struct gauge_pick cache; /* its value unused: the labels matter */
	struct ig_str cache_labels;
	/* Another engine than vLLM: its families, and its cache as gauges. */
	const struct engine_spec *spec;
	struct gauge_pick block_gauge, blocks_gauge;
	enum ig_lora_rule lora_rule;
	bool lora_found;
	double lora_best;
	struct ig_str lora_labels;
	/* The newest series whatever it names, for max_lora under v0.2's rule. */
	bool slots_found;
	double slots_best;
	struct ig_str slots_labels;
	struct ig_str running_labels; /* of the running pick: model_name */
	struct ig_buf tmp;
};

/* Returns whether s is now the pick. */
static bool pick(struct gauge_pick *g, const struct ig_prom_sample *s)
{
	int64_t ts = s->has_timestamp ? s->timestamp_ms : 0;
	if (g->found && ts < g->ts)
		return false;
	g->found = true;
	g->ts = ts;
	g->value = s->value;
	return true;
}

/* Reads one label; absent labels read as "". A value with no escape (all
 * that vLLM writes) is a slice of the page; one with escapes is unescaped
 * into the scratch buffer, valid until the next such value. */
static int label(struct scan *sc, struct ig_str labels, const char *name, struct ig_str *out)
{
	struct ig_str raw;
	int rc = ig_prom_label_raw(labels, name, &raw);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		*out = (struct ig_str){"", 0};
		return 0;
	}
	if (!memchr(raw.ptr, '\\', raw.len)) {
		*out = raw;
		return 0;
	}
	ig_buf_reset(&sc->tmp);
	if (ig_prom_label(labels, name, &sc->tmp) < 0)
		return -1;
	*out = ig_buf_str(&sc->tmp);
	return 0;
}

/* vLLM keeps every label set lora_requests_info ever had as a series of
 * its own, valued the time it was last set, so the newest series is the
 * present one. GIE keeps the first series of the greatest value, by a
 * strict comparison: v1.5's extractor from -1 (a series valued 0 can win,
 * NaN never does), whatever its labels, so an idle server (its newest
 * series names no adapter) has none loaded and still tells its max_lora.
 * GIE v0.2, and v1.5 under enableLegacyMetrics, skip the series that name
 * no adapter at all and compare from 0 (series <= 0 never win): the last
 * adapters that ran are kept while the server idles. Under that rule a
 * server that has not run an adapter yet would have no slots at all (GIE
 * v0.2's MaxActiveModels stays 0), and every LoRA scorer would keep
 * adapters off it for good; max_lora is the server's setting, so it is
 * read from the newest series, as v1.5 reads it, whatever that names. */
static int consider_lora(struct scan *sc, const struct ig_prom_sample *s)
{
	if (s->value > sc->slots_best) {
		sc->slots_best = s->value;
		sc->slots_labels = s->labels;
		sc->slots_found = true;
	}
	if (sc->lora_rule == IG_LORA_NAMING_ADAPTERS) {
		struct ig_str running, waiting;
		if (label(sc, s->labels, "running_lora_adapters", &running) < 0)
			return -1;
		size_t running_len = running.len;
		if (label(sc, s->labels, "waiting_lora_adapters", &waiting) < 0)
			return -1;
		if (running_len == 0 && waiting.len == 0)
			return 0;
	}
	if (s->value > sc->lora_best) {
		sc->lora_best = s->value;
		sc->lora_labels = s->labels;
		sc->lora_found = true;
	}
	return 0;
}

static bool named(struct ig_str name, const char *want, size_t len)
{
	return name.len == len && memcmp(name.ptr, want, len) == 0;
}

#define NAMED(name, lit) named(name, lit, sizeof lit - 1)

/* Whether sample s is of family f. -1 when out of memory. */
static int of_family(struct scan *sc, const struct family *f, const struct ig_prom_sample *s)
{
	if (!f->name || !named(s->name, f->name, strlen(f->name)))
		return 0;
	if (!f->label)
		return 1;
	struct ig_str v;
	if (label(sc, s->labels, f->label, &v) < 0)
		return -1;
	return named(v, f->value, strlen(f->value));
}

/* A sample of a page of another engine than vLLM. */
static int on_engine_sample(struct scan *sc, const struct ig_prom_sample *s)
{
	const struct engine_spec *e = sc->spec;
	const struct family *fams[] = {&e->waiting,    &e->running,	&e->kv,
				       &e->cache_info, &e->block_gauge, &e->blocks_gauge};
	struct gauge_pick *picks[] = {&sc->waiting, &sc->running,     &sc->kv_new,
				      &sc->cache,   &sc->block_gauge, &sc->blocks_gauge};
	for (size_t i = 0; i < sizeof fams / sizeof *fams; i++) {
		int rc = of_family(sc, fams[i], s);
		if (rc < 0)
			return -1;
		if (rc == 0 || !pick(picks[i], s))
			continue;
		if (picks[i] == &sc->running)
			sc->running_labels = s->labels;
		else if (picks[i] == &sc->cache)
			sc->cache_labels = s->labels;
	}
	return 0;
}

/* Most samples of a page are other families: they are told apart by
 * their prefix and length before any comparison of the whole name. */
static int on_sample(void *ctx, const struct ig_prom_sample *s)
{
	struct scan *sc = ctx;
	struct ig_str n = s->name;
	if (sc->spec)
		return on_engine_sample(sc, s);
	if (n.len < 22 || n.len > 25 || memcmp(n.ptr, "vllm:", 5) != 0)
		return 0;
	if (NAMED(n, "vllm:num_requests_waiting"))
		pick(&sc->waiting, s);
	else if (NAMED(n, "vllm:num_requests_running") && pick(&sc->running, s))
		sc->running_labels = s->labels;
	else if (NAMED(n, "vllm:kv_cache_usage_perc"))
		pick(&sc->kv_new, s);
	else if (NAMED(n, "vllm:gpu_cache_usage_perc"))
		pick(&sc->kv_old, s);
	else if (NAMED(n, "vllm:lora_requests_info"))
		return consider_lora(sc, s);
	else if (NAMED(n, "vllm:cache_config_info") && pick(&sc->cache, s))
		sc->cache_labels = s->labels;
	return 0;
}

/* Go's int(float64) truncates toward zero. NaN has no integer meaning, so
 * such a sample counts as absent; infinities and huge values are clamped. */
static bool to_count(const struct gauge_pick *g, int64_t *out)
{
	if (!g->found || isnan(g->value))
		return false;
	double v = g->value;
	if (v > QUEUE_CLAMP)
		v = QUEUE_CLAMP;
	if (v < -QUEUE_CLAMP)
		v = -QUEUE_CLAMP;
	*out = (int64_t)v;
	return true;
}

/* strconv.Atoi: optional sign, decimal digits, no blanks. */
static int parse_int(struct ig_str s, int64_t *out)
{
	bool neg = false;
	if (s.len && (s.ptr[0] == '+' || s.ptr[0] == '-')) {
		neg = s.ptr[0] == '-';
		s.ptr++, s.len--;
	}
	uint64_t v;
	if (ig_str_to_u64(s, &v) < 0 || v > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static void add_names(struct ig_adapter_set *a, struct ig_adapter_set *b, struct ig_str list)
{
	size_t i = 0;
	while (i < list.len) {
		size_t j = i;
		while (j < list.len && list.ptr[j] != ',')
			j++;
		struct ig_str name = {list.ptr + i, j - i};
		if (name.len) {
			ig_adapter_set_add(a, name);
			ig_adapter_set_add(b, name);
		}
		i = j + 1;
	}
}

/* Applies the chosen lora_requests_info series. An unparsable max_lora
 * makes the whole family count as absent so that the adapters and the
 * limit stay consistent with each other. Returns 1 if applied. */
static int apply_lora(struct scan *sc, struct ig_endpoint_metrics *m)
{
	struct ig_str v;
	int64_t max_active = m->max_active;
	if (label(sc, sc->lora_labels, "max_lora", &v) < 0)
		return -1;
	if (v.len && parse_int(v, &max_active) < 0)
		return 0;
	struct ig_adapter_set active = {0}, running = {0}, waiting = {0};
	char running_text[IG_ADAPTER_TEXT_MAX], waiting_text[IG_ADAPTER_TEXT_MAX];
	if (label(sc, sc->lora_labels, "running_lora_adapters", &v) < 0)
		return -1;
	add_names(&active, &running, v);
	copy_text(running_text, v);
	if (label(sc, sc->lora_labels, "waiting_lora_adapters", &v) < 0)
		return -1;
	add_names(&active, &waiting, v);
	copy_text(waiting_text, v);
	memcpy(m->running_text, running_text, sizeof running_text);
	memcpy(m->waiting_text, waiting_text, sizeof waiting_text);
	m->active = active;
	m->running_adapters = running;
	m->waiting_adapters = waiting;
	m->max_active = max_active;
	return 1;
}

/* A label of cache_config_info as a count: 1 .. 2^32 - 1, else 0. */
static int cache_label(struct scan *sc, const char *name, uint32_t *out)
{
	struct ig_str v;
	int64_t n;
	*out = 0;
	if (label(sc, sc->cache_labels, name, &v) < 0)
		return -1;
	if (v.len && parse_int(v, &n) == 0 && n > 0 && n <= UINT32_MAX)
		*out = (uint32_t)n;
	return 0;
}

/* GIE's extractor sets CacheBlockSize and CacheNumGPUBlocks from the
 * labels it can read and leaves the others as they were. Returns 1 when
 * either was read, 0 when neither, -1 when out of memory. */
static int apply_cache(struct scan *sc, struct ig_cache_config *c)
{
	uint32_t block, blocks;
	const char *block_label = sc->spec ? sc->spec->block_label : "block_size";
	const char *blocks_label = sc->spec ? sc->spec->blocks_label : "num_gpu_blocks";
	if (cache_label(sc, block_label, &block) < 0 || cache_label(sc, blocks_label, &blocks) < 0)
		return -1;
	if (block)
		c->block_tokens = block;
	if (blocks)
		c->gpu_blocks = blocks;
	return block || blocks;
}

/* A cache gauge (trtllm-serve, Triton) as a count, as cache_label reads a
 * label: Go's int() of the value, 1 .. 2^32 - 1, else 0. */
static uint32_t cache_gauge(const struct gauge_pick *g)
{
	if (!g->found || !(g->value >= 1 && g->value < 4294967296.0))
		return 0;
	return (uint32_t)g->value;
}

/* The cache figures given as gauges: as apply_cache. */
static int apply_cache_gauges(struct scan *sc, struct ig_cache_config *c)
{
	uint32_t block = cache_gauge(&sc->block_gauge), blocks = cache_gauge(&sc->blocks_gauge);
	if (block)
		c->block_tokens = block;
	if (blocks)
		c->gpu_blocks = blocks;
	return block || blocks;
}

int ig_vllm_metrics_extract(const char *text, size_t len, enum ig_lora_rule rule,
			    struct ig_endpoint_metrics *m)
{
	return ig_metrics_extract(text, len, IG_ENGINE_VLLM, rule, m);
}

int ig_metrics_extract(const char *text, size_t len, enum ig_engine engine, enum ig_lora_rule rule,
		       struct ig_endpoint_metrics *m)
{
	struct scan sc = {
	    .lora_rule = rule, .lora_best = rule == IG_LORA_NEWEST ? -1 : 0, .slots_best = -1};
	int found = 0;
	if (engine != IG_ENGINE_VLLM && (size_t)engine < sizeof engines / sizeof *engines)
		sc.spec = &engines[engine];
	ig_buf_init(&sc.tmp, LABEL_VALUE_MAX);
	if (ig_prom_parse(text, len, on_sample, &sc, NULL) != 0)
		goto fail;
	/* Everything below reads only what the parse proved well-formed, so
	 * the sole possible failure is the label buffer, checked before any
	 * field of *m changes. */
	struct ig_cache_config cache = m->cache;
	int cache_rc = sc.cache.found ? apply_cache(&sc, &cache) : 0;
	if (cache_rc < 0)
		goto fail;
	if (apply_cache_gauges(&sc, &cache))
		cache_rc = 1;
	uint64_t base_model = 0;
	if (sc.running.found) {
		struct ig_str model;
		if (label(&sc, sc.running_labels, "model_name", &model) < 0)
			goto fail;
		base_model = model.len ? ig_adapter_hash(model) : 0;
	}
	if (sc.lora_found) {
		int rc = apply_lora(&sc, m);
		if (rc < 0)
			goto fail;
		if (rc > 0)
			found |= IG_FAM_LORA;
	} else if (sc.slots_found) {
		/* v0.2's rule and no series naming an adapter: the adapters
		 * stay, the limit is the server's (see consider_lora). */
		struct ig_str v;
		int64_t slots;
		if (label(&sc, sc.slots_labels, "max_lora", &v) < 0)
			goto fail;
		if (v.len && parse_int(v, &slots) == 0)
			m->max_active = slots;
	}
	if (to_count(&sc.waiting, &m->waiting))
		found |= IG_FAM_WAITING;
	if (to_count(&sc.running, &m->running)) {
		found |= IG_FAM_RUNNING;
		m->base_model = base_model;
	}
	const struct gauge_pick *kv = sc.kv_new.found ? &sc.kv_new : &sc.kv_old;
	if (kv->found && !isnan(kv->value)) {
		m->kv_usage = kv->value;
		found |= IG_FAM_KV;
	}
	if (cache_rc > 0) {
		m->cache = cache;
		found |= IG_FAM_CACHE;
	}
	ig_buf_free(&sc.tmp);
	return found;
fail:
	ig_buf_free(&sc.tmp);
	return -1;
}
