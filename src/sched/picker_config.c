/* Loading an EndpointPickerConfig (gie-reference §4.2): libyaml's document
 * API, decoding by the known structure, GIE's defaults, and every rule we
 * can check up front. Problems become diags "file:line: path: message";
 * decoding carries on after an error so that one run reports all of them.
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

#define MAX_TEXT_BYTES (1u << 20)
#define MAX_NESTING 32
#define MAX_ANCHORS 100u
#define MAX_VISITS 200000u
#define MAX_DIAGS 200u
#define MAX_NAME 253
#define PATH_LEN 160

struct session {
	const char *file;
	struct ig_diags *diags;
	size_t nerrors;
	yaml_document_t *doc;
	size_t visits;
	struct ig_picker_config *cfg;
	int detector_ref; /* plugin index named by saturationDetector, or -1 */
	int detector_line;
	int profiles_line;
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
	[PT_PREFIX_SCORER] = {"prefix-cache-scorer", PK_SCORER},
	[PT_MAX_SCORE_PICKER] = {"max-score-picker", PK_PICKER},
	[PT_RANDOM_PICKER] = {"random-picker", PK_PICKER},
	[PT_WEIGHTED_RANDOM_PICKER] = {"weighted-random-picker", PK_PICKER},
	[PT_DECISION_TREE_FILTER] = {"decision-tree-filter", PK_FILTER},
	[PT_UTILIZATION_DETECTOR] = {"utilization-detector", PK_DETECTOR},
	[PT_PREFIX_AFFINITY_FILTER] = {"prefix-cache-affinity-filter", PK_FILTER},
	[PT_HEADER_TESTING_FILTER] = {"header-based-testing-filter", PK_FILTER},
	[PT_SINGLE_PROFILE_HANDLER] = {"single-profile-handler", PK_OTHER},
	[PT_METRICS_DATA_SOURCE] = {"metrics-data-source", PK_OTHER},
	[PT_CORE_METRICS_EXTRACTOR] = {"core-metrics-extractor", PK_OTHER},
	[PT_PREFIX_PRODUCER] = {"approx-prefix-cache-producer", PK_OTHER},
	[PT_INFLIGHT_LOAD_PRODUCER] = {"inflight-load-producer", PK_OTHER},
	[PT_OPENAI_PARSER] = {"openai-parser", PK_OTHER},
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
		.block_size_tokens = 16,
		.max_prefix_blocks = 256,
		.lru_capacity = 31250,
		.auto_tune = true,
		.queue_depth_threshold = 5,
		.kv_threshold = 0.8,
		.staleness_ms = 200,
		.affinity_threshold = 0.5,
	};
}

/* ---- diags ----------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static void err(struct session *s, int line,
						      const char *path, const char *fmt, ...)
{
	s->nerrors++;
	if (s->diags->n >= MAX_DIAGS)
		return;
	struct ig_diag *items = realloc(s->diags->items, (s->diags->n + 1) * sizeof(*items));
	if (!items)
		return;
	s->diags->items = items;
	struct ig_diag *g = &items[s->diags->n];
	*g = (struct ig_diag){.line = line};
	g->file = strdup(s->file);
	g->path = strdup(path ? path : "");
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&g->msg, fmt, ap) < 0)
		g->msg = NULL;
	va_end(ap);
	if (!g->file || !g->path || !g->msg) {
		free(g->file);
		free(g->path);
		free(g->msg);
		return;
	}
	s->diags->n++;
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
#define FOR_PAIRS(s, map, k, v)                                                               \
	for (yaml_node_pair_t *p_ = (map)->data.mapping.pairs.start;                          \
	     p_ < (map)->data.mapping.pairs.top; p_++)                                        \
		for (yaml_node_t *k = node_at(s, p_->key), *v = node_at(s, p_->value); k && v; \
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

/* A Go duration with one unit ("200ms", "1.5s", "5m"), in milliseconds. */
static int to_duration_ms(const yaml_node_t *n, uint64_t *out)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ms", 1}, {"us", 1e-3}, {"ns", 1e-6}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
	if (n->type != YAML_SCALAR_NODE)
		return -1;
	struct ig_str v = scalar(n);
	size_t digits = 0;
	while (digits < v.len && (strchr("0123456789.", v.ptr[digits])))
		digits++;
	if (digits == 0 || digits > 20)
		return -1;
	for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
		if (!ig_str_eq_cstr((struct ig_str){v.ptr + digits, v.len - digits}, units[u].unit))
			continue;
		char buf[24];
		memcpy(buf, v.ptr, digits);
		buf[digits] = '\0';
		char *end;
		double d = strtod(buf, &end) * units[u].ms;
		if (*end || !isfinite(d) || d > 1e15)
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	return -1;
}

/* An integer or a Kubernetes quantity with a binary or decimal suffix
 * ("1Gi", "500M"). */
static int to_quantity(const yaml_node_t *n, uint64_t *out)
{
	static const struct {
		const char *sfx;
		uint64_t mul;
	} sfx[] = {{"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30}, {"Ti", 1ull << 40},
		   {"k", 1000}, {"M", 1000000}, {"G", 1000000000}, {"T", 1000000000000}, {"", 1}};
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

enum param_kind { P_U64, P_U32, P_SIZE, P_BOOL, P_DOUBLE, P_DURATION };

struct param_desc {
	const char *name;
	enum param_kind kind;
	size_t off;
	double lo, hi;
	bool lo_open; /* (lo, hi] instead of [lo, hi] */
};

#define PD(n, k, f, l, h, o) {n, k, offsetof(struct plugin_params, f), l, h, o}

static const struct param_desc token_params[] = {
	PD("queueThresholdTokens", P_U64, queue_threshold_tokens, 1, 1e12, false),
	{0},
};
static const struct param_desc prefix_params[] = {
	PD("blockSizeTokens", P_U32, block_size_tokens, 1, 1 << 20, false),
	PD("maxPrefixBlocksToMatch", P_U32, max_prefix_blocks, 1, 256, false),
	PD("maxPrefixTokensToMatch", P_U64, max_prefix_tokens, 0, 1e12, false),
	PD("lruCapacityPerServer", P_U32, lru_capacity, 1, 1 << 24, false),
	PD("autoTune", P_BOOL, auto_tune, 0, 0, false),
	{0},
};
static const struct param_desc picker_params[] = {
	PD("maxNumOfEndpoints", P_SIZE, max_endpoints, 1, 1e6, false),
	{0},
};
static const struct param_desc detector_params[] = {
	PD("queueDepthThreshold", P_DOUBLE, queue_depth_threshold, 0, 1e9, true),
	PD("kvCacheUtilThreshold", P_DOUBLE, kv_threshold, 0, 1, true),
	PD("metricsStalenessThreshold", P_DURATION, staleness_ms, 0, 1e9, false),
	PD("headroom", P_DOUBLE, headroom, 0, 100, false),
	{0},
};
static const struct param_desc affinity_params[] = {
	PD("threshold", P_DOUBLE, affinity_threshold, 0, 1, false),
	{0},
};

static const struct param_desc *params_of(enum plugin_type t)
{
	switch (t) {
	case PT_TOKEN_LOAD_SCORER:
		return token_params;
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
	default:
		return "a non-negative integer";
	}
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
		if (v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
		    !(ig_yaml_scalar_is(v, "true") || ig_yaml_scalar_is(v, "false")))
			return -1;
		*(bool *)field = ig_yaml_scalar_is(v, "true");
		return 0;
	case P_DOUBLE:
		if (to_double(v, &x) < 0)
			return -1;
		if (x < d->lo || x > d->hi || (d->lo_open && x == d->lo))
			return -2;
		*(double *)field = x;
		return 0;
	case P_DURATION:
		if (to_duration_ms(v, &u) < 0)
			return -1;
		break;
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
	if (d->kind == P_DOUBLE)
		err(s, line, path, "must be %s %g and at most %g", d->lo_open ? "greater than" : "at least",
		    d->lo, d->hi);
	else
		err(s, line, path, "must be between %.0f and %.0f", d->lo, d->hi);
}

static void decode_params(struct session *s, yaml_node_t *map, int line, const char *path,
			  struct plugin *pl)
{
	const struct param_desc *desc = params_of(pl->type);
	bool has_block_tokens = false, has_block_chars = false;
	if (!expect(s, map, YAML_MAPPING_NODE, line, path))
		return;
	FOR_PAIRS(s, map, k, v)
	{
		char kp[PATH_LEN];
		const struct param_desc *d = NULL;
		if (k->type != YAML_SCALAR_NODE)
			continue;
		sub(kp, path, (const char *)k->data.scalar.value, 0);
		for (const struct param_desc *e = desc; e && e->name; e++)
			if (ig_yaml_scalar_is(k, e->name))
				d = e;
		has_block_chars |= ig_yaml_scalar_is(k, "blockSize") && pl->type == PT_PREFIX_SCORER;
		if (!d) {
			/* Plugins we do not run take any parameters; ours refuse
			 * unknown ones, which are most likely typos. */
			if (picker_type_kind(pl->type) != PK_OTHER && !ig_yaml_scalar_is(k, "blockSize"))
				err(s, ig_yaml_line(k), kp, "unknown parameter for %s",
				    picker_type_name(pl->type));
			continue;
		}
		has_block_tokens |= d->off == offsetof(struct plugin_params, block_size_tokens);
		int rc = read_param(d, v, &pl->p);
		if (rc == -1)
			err(s, ig_yaml_line(k), kp, "must be %s", kind_word(d->kind));
		else if (rc == -2)
			range_err(s, ig_yaml_line(k), kp, d);
	}
	if (has_block_chars && !has_block_tokens)
		err(s, line, path, "blockSize (characters) is deprecated: set blockSizeTokens");
}

/* ---- plugins --------------------------------------------------------------- */

static int find_type(const yaml_node_t *n)
{
	for (int t = 0; t < PT_COUNT; t++)
		if (ig_yaml_scalar_is(n, types[t].name))
			return t;
	return -1;
}

static int find_plugin(const struct ig_picker_config *c, struct ig_str name)
{
	for (size_t i = 0; i < c->nplugins; i++)
		if (ig_str_eq_cstr(name, c->plugins[i].name))
			return (int)i;
	return -1;
}

static void decode_plugin(struct session *s, yaml_node_t *n, const char *path)
{
	struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
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
		err(s, line, p, "unknown plugin type \"%.*s\"", IG_STR_FMT(scalar(type)));
		return;
	}
	struct plugin pl = {.type = (enum plugin_type)t, .line = ig_yaml_line(n)};
	picker_default_params(&pl.p);
	yaml_node_t *name = get(s, n, "name", &line);
	sub(p, path, "name", 0);
	if (name && !expect(s, name, YAML_SCALAR_NODE, line, p))
		return;
	struct ig_str nm = name ? scalar(name) : ig_str_from(types[t].name);
	if (nm.len == 0 || nm.len > MAX_NAME) {
		err(s, line, p, "must be 1 to %d characters", MAX_NAME);
		return;
	}
	if (find_plugin(c, nm) >= 0) {
		err(s, line, p, "duplicate plugin name \"%.*s\"", IG_STR_FMT(nm));
		return;
	}
	yaml_node_t *params = get(s, n, "parameters", &line);
	sub(p, path, "parameters", 0);
	if (params)
		decode_params(s, params, line, p, &pl);
	if (c->nplugins == MAX_PLUGINS) {
		err(s, ig_yaml_line(n), path, "more than %d plugins", MAX_PLUGINS);
		return;
	}
	pl.name = ig_str_dup(nm);
	if (!pl.name) {
		err(s, ig_yaml_line(n), path, "out of memory");
		return;
	}
	c->plugins[c->nplugins++] = pl;
}

/* ---- profiles ---------------------------------------------------------------- */

static void decode_weight(struct session *s, yaml_node_t *entry, const char *path,
			  struct profile_entry *e)
{
	char p[PATH_LEN];
	int line;
	yaml_node_t *w = get(s, entry, "weight", &line);
	sub(p, path, "weight", 0);
	e->weight = 1.0;
	if (!w)
		return;
	double x;
	if (to_double(w, &x) < 0)
		err(s, line, p, "must be a number");
	else if (x < 0 || x > 1e6)
		err(s, line, p, "must be between 0 and 1000000");
	else
		e->weight = x;
}

/* Adds pluginRef `ref` to the profile unless that breaks a rule. */
static void add_entry(struct session *s, struct profile *pr, yaml_node_t *entry,
		      const char *path)
{
	const struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, entry, YAML_MAPPING_NODE, ig_yaml_line(entry), path))
		return;
	yaml_node_t *ref = get(s, entry, "pluginRef", &line);
	sub(p, path, "pluginRef", 0);
	if (!ref) {
		err(s, line, p, "is required");
		return;
	}
	if (!expect(s, ref, YAML_SCALAR_NODE, line, p))
		return;
	int pi = find_plugin(c, scalar(ref));
	if (pi < 0) {
		err(s, line, p, "no plugin named \"%.*s\"", IG_STR_FMT(scalar(ref)));
		return;
	}
	enum plugin_kind kind = picker_type_kind(c->plugins[pi].type);
	if (kind == PK_OTHER) {
		err(s, line, p, "plugin \"%s\" (%s) is not a filter, scorer or picker",
		    c->plugins[pi].name, picker_type_name(c->plugins[pi].type));
		return;
	}
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
	decode_weight(s, entry, path, &e);
	if (pr->n == MAX_PROFILE_ENTRIES - 1) { /* one slot stays free for a default picker */
		err(s, ig_yaml_line(entry), path, "more than %d plugins in one profile",
		    MAX_PROFILE_ENTRIES - 1);
		return;
	}
	pr->e[pr->n++] = e;
}

static void decode_profile(struct session *s, yaml_node_t *n, const char *path)
{
	struct ig_picker_config *c = s->cfg;
	char p[PATH_LEN];
	int line;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
	if (c->nprofiles == MAX_PROFILES) {
		err(s, ig_yaml_line(n), path, "more than %d profiles", MAX_PROFILES);
		return;
	}
	struct profile *pr = &c->profiles[c->nprofiles];
	*pr = (struct profile){0};
	yaml_node_t *name = get(s, n, "name", &line);
	sub(p, path, "name", 0);
	if (!name) {
		err(s, line, p, "is required");
		return;
	}
	if (!expect(s, name, YAML_SCALAR_NODE, line, p))
		return;
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
		err(s, ig_yaml_line(n), path, "out of memory");
		return;
	}
	c->nprofiles++;
}

/* ---- saturationDetector, flowControl, featureGates ------------------------- */

static void decode_detector(struct session *s, yaml_node_t *n, int line)
{
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, "saturationDetector"))
		return;
	yaml_node_t *ref = get(s, n, "pluginRef", &l);
	if (!ref) {
		err(s, l, "saturationDetector.pluginRef", "is required");
		return;
	}
	if (!expect(s, ref, YAML_SCALAR_NODE, l, "saturationDetector.pluginRef"))
		return;
	int pi = find_plugin(s->cfg, scalar(ref));
	if (pi < 0)
		err(s, l, "saturationDetector.pluginRef", "no plugin named \"%.*s\"",
		    IG_STR_FMT(scalar(ref)));
	else if (s->cfg->plugins[pi].type != PT_UTILIZATION_DETECTOR)
		err(s, l, "saturationDetector.pluginRef", "plugin \"%s\" is not a utilization-detector",
		    s->cfg->plugins[pi].name);
	else
		s->detector_ref = pi;
}

static void flow_u64(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		     bool quantity, uint64_t *out)
{
	char p[PATH_LEN];
	int line;
	yaml_node_t *v = get(s, map, key, &line);
	sub(p, parent, key, 0);
	if (v && (quantity ? to_quantity(v, out) : to_u64(v, out)) < 0)
		err(s, line, p, "must be a non-negative integer%s", quantity ? " or quantity" : "");
}

static void decode_band(struct session *s, yaml_node_t *n, const char *path)
{
	struct ig_flow_control_config *f = &s->cfg->flow;
	char p[PATH_LEN];
	int line;
	double prio;
	if (!expect(s, n, YAML_MAPPING_NODE, ig_yaml_line(n), path))
		return;
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
	flow_u64(s, n, path, "maxRequests", false, &b.max_requests);
	flow_u64(s, n, path, "maxBytes", true, &b.max_bytes);
	if (f->nbands == IG_FLOW_MAX_BANDS) {
		err(s, ig_yaml_line(n), path, "more than %d priority bands", IG_FLOW_MAX_BANDS);
		return;
	}
	f->bands[f->nbands++] = b;
}

static void decode_flow(struct session *s, yaml_node_t *n, int line)
{
	struct ig_flow_control_config *f = &s->cfg->flow;
	int l;
	if (!expect(s, n, YAML_MAPPING_NODE, line, "flowControl"))
		return;
	f->present = true;
	flow_u64(s, n, "flowControl", "maxRequests", false, &f->max_requests);
	flow_u64(s, n, "flowControl", "maxBytes", true, &f->max_bytes);
	yaml_node_t *ttl = get(s, n, "defaultRequestTTL", &l);
	if (ttl && to_duration_ms(ttl, &f->default_request_ttl_ms) < 0)
		err(s, l, "flowControl.defaultRequestTTL", "must be a duration such as 30s");
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
}

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
			err(s, ig_yaml_line(g), p, "unknown feature gate \"%.*s\"", IG_STR_FMT(scalar(g)));
		else
			s->cfg->gates |= gates[k].bit;
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
	static const char *const known[] = {"apiVersion", "kind", "plugins", "schedulingProfiles",
					    "saturationDetector", "flowControl", "featureGates",
					    "dataLayer", "parser", NULL};
	int line;
	yaml_node_t *kind = get(s, root, "kind", &line);
	if (kind && !ig_yaml_scalar_is(kind, "EndpointPickerConfig"))
		err(s, line, "kind", "must be EndpointPickerConfig");
	FOR_PAIRS(s, root, k, v)
	{
		const char *const *q = known;
		(void)v;
		while (*q && !ig_yaml_scalar_is(k, *q))
			q++;
		if (!*q && k->type == YAML_SCALAR_NODE)
			err(s, ig_yaml_line(k), (const char *)k->data.scalar.value, "unknown field");
	}
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
	yaml_node_t *d = get(s, root, "saturationDetector", &s->detector_line);
	if (d)
		decode_detector(s, d, s->detector_line);
	yaml_node_t *f = get(s, root, "flowControl", &line);
	if (f)
		decode_flow(s, f, line);
}

/* ---- system defaults --------------------------------------------------------- */

static int add_plugin(struct ig_picker_config *c, enum plugin_type t, const char *name)
{
	if (c->nplugins == MAX_PLUGINS)
		return -1;
	struct plugin *p = &c->plugins[c->nplugins];
	*p = (struct plugin){.type = t, .name = strdup(name)};
	picker_default_params(&p->p);
	if (!p->name)
		return -1;
	return (int)c->nplugins++;
}

/* Without profiles, one "default" profile runs every filter, scorer and
 * picker defined, in order, with weight 1. */
static int default_profile(struct ig_picker_config *c)
{
	struct profile *pr = &c->profiles[0];
	*pr = (struct profile){.name = strdup("default")};
	if (!pr->name)
		return -1;
	c->nprofiles = 1;
	bool picker = false;
	for (size_t i = 0; i < c->nplugins && pr->n < MAX_PROFILE_ENTRIES - 1; i++) {
		enum plugin_kind k = picker_type_kind(c->plugins[i].type);
		if (k == PK_OTHER || k == PK_DETECTOR || (k == PK_PICKER && picker))
			continue;
		picker |= k == PK_PICKER;
		pr->e[pr->n++] = (struct profile_entry){i, 1.0};
	}
	return 0;
}

/* A profile lacking a picker gets a max-score-picker (GIE's loader adds
 * one per profile). */
static int default_picker(struct ig_picker_config *c, struct profile *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		if (picker_type_kind(c->plugins[pr->e[i].plugin].type) == PK_PICKER)
			return 0;
	int pi = -1;
	for (size_t i = 0; i < c->nplugins && pi < 0; i++)
		if (c->plugins[i].type == PT_MAX_SCORE_PICKER)
			pi = (int)i;
	if (pi < 0)
		pi = add_plugin(c, PT_MAX_SCORE_PICKER, "max-score-picker");
	if (pi < 0)
		return -1;
	pr->e[pr->n++] = (struct profile_entry){(size_t)pi, 1.0};
	return 0;
}

static void apply_defaults(struct session *s)
{
	struct ig_picker_config *c = s->cfg;
	if (c->nprofiles > 1)
		err(s, s->profiles_line, "schedulingProfiles",
		    "only one profile is supported (single-profile-handler); got %zu", c->nprofiles);
	if (c->nprofiles == 0 && default_profile(c) < 0)
		err(s, 0, "", "out of memory");
	for (size_t i = 0; i < c->nprofiles; i++)
		if (default_picker(c, &c->profiles[i]) < 0)
			err(s, 0, "schedulingProfiles", "too many plugins to add a default picker");
	picker_default_params(&c->detector);
	int d = s->detector_ref;
	for (size_t i = 0; i < c->nplugins && d < 0; i++)
		if (c->plugins[i].type == PT_UTILIZATION_DETECTOR)
			d = (int)i;
	if (d >= 0)
		c->detector = c->plugins[d].p;
}

/* ---- entry points ------------------------------------------------------------ */

static void syntax_error(struct session *s, const yaml_parser_t *p)
{
	const char *what = p->problem ? p->problem : "unreadable YAML";
	err(s, (int)p->problem_mark.line + 1, "", "YAML syntax error: %s%s%s",
	    p->context ? p->context : "", p->context ? " " : "", what);
}

/* Refuses deep nesting and many anchors before the document loader sees
 * them (both make libyaml slow). Syntax errors are left to the load. */
static int prescan(struct session *s, const char *text, size_t len)
{
	char msg[128];
	int line;
	if (ig_yaml_prescan(text, len, MAX_NESTING, MAX_ANCHORS, &line, msg, sizeof msg) == 0)
		return 0;
	err(s, line, "", "%s", msg);
	return -1;
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
		err(s, 0, "", "out of memory");
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(s, &parser);
		yaml_parser_delete(&parser);
		return;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	s->doc = &doc;
	if (root && !ig_yaml_is_null(root))
		decode_root(s, root);
	if (s->visits > MAX_VISITS)
		err(s, root ? ig_yaml_line(root) : 0, "", "document uses too many aliases");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
}

int ig_picker_config_parse(const char *file, const char *text, size_t len,
			   struct ig_picker_config **out, struct ig_diags *diags)
{
	struct session s = {.file = file ? file : "<text>", .diags = diags, .detector_ref = -1};
	s.cfg = calloc(1, sizeof(*s.cfg));
	if (!s.cfg) {
		err(&s, 0, "", "out of memory");
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

static struct ig_picker_config *build(const enum plugin_type *t, const double *w, size_t n)
{
	struct ig_picker_config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nprofiles = 1;
	c->profiles[0].name = strdup("default");
	if (!c->profiles[0].name)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		int pi = add_plugin(c, t[i], picker_type_name(t[i]));
		if (pi < 0)
			goto fail;
		c->profiles[0].e[c->profiles[0].n++] = (struct profile_entry){(size_t)pi, w[i]};
	}
	picker_default_params(&c->detector);
	return c;
fail:
	ig_picker_config_free(c);
	return NULL;
}

struct ig_picker_config *ig_picker_config_default(void)
{
	static const enum plugin_type t[] = {PT_QUEUE_SCORER, PT_KV_SCORER, PT_PREFIX_SCORER,
					     PT_MAX_SCORE_PICKER};
	static const double w[] = {2, 2, 3, 1};
	return build(t, w, 4);
}

struct ig_picker_config *ig_picker_config_decision_tree(void)
{
	static const enum plugin_type t[] = {PT_DECISION_TREE_FILTER, PT_RANDOM_PICKER};
	static const double w[] = {1, 1};
	return build(t, w, 2);
}

void ig_picker_config_free(struct ig_picker_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nplugins; i++)
		free(c->plugins[i].name);
	for (size_t i = 0; i < c->nprofiles; i++)
		free(c->profiles[i].name);
	free(c);
}

const struct ig_flow_control_config *ig_picker_config_flow_control(const struct ig_picker_config *c)
{
	return &c->flow;
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
