/* Read-only questions about a loaded config, and diag output. Configs are
 * small (tens of objects, at most thousands of Pods), so most lookups are
 * linear scans; the two that every request makes (its InferenceModel, its
 * InferenceObjective) go through hash maps built once per config, which
 * is immutable once loaded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "config/config.h"

static bool ns_eq(const char *ns, const char *want)
{
	return strcmp(ns ? ns : "default", want ? want : "default") == 0;
}

static bool name_eq(const char *name, const char *want)
{
	return name && want && strcmp(name, want) == 0;
}

const struct ig_pool *ig_config_find_pool(const struct ig_config *cfg, const char *ns,
					  const char *name)
{
	for (size_t i = 0; cfg && i < cfg->npools; i++)
		if (ns_eq(cfg->pools[i].meta.ns, ns) && name_eq(cfg->pools[i].meta.name, name))
			return &cfg->pools[i];
	return NULL;
}

const struct ig_gateway *ig_config_find_gateway(const struct ig_config *cfg, const char *ns,
						const char *name)
{
	for (size_t i = 0; cfg && i < cfg->ngateways; i++)
		if (ns_eq(cfg->gateways[i].meta.ns, ns) &&
		    name_eq(cfg->gateways[i].meta.name, name))
			return &cfg->gateways[i];
	return NULL;
}

static bool slice_eq(const char *s, const char *p, size_t len)
{
	return s && strlen(s) == len && memcmp(s, p, len) == 0;
}

/* ---- hash maps of models and objectives ---------------------------------- */

/* Open addressing over the array indices; a key's hash is kept to skip
 * most comparisons. The first matching object in array order is the one
 * stored, which is what the linear scan returns. */
struct name_map {
	size_t mask;
	struct name_slot {
		uint64_t hash;
		uint32_t at; /* array index + 1; 0: empty */
	} * slots;
};

struct ig_config_index {
	struct name_map models, objectives;
};

static uint64_t hash_str(uint64_t h, const char *s, size_t len)
{
	/* The length first, so that ("ab", "c") and ("a", "bc") differ. */
	h = XXH64(&len, sizeof len, h);
	return XXH64(s, len, h);
}

static const char *ns_of(const char *ns)
{
	return ns ? ns : "default";
}

static uint64_t model_key(const char *ns, const char *pool, const char *model, size_t len)
{
	ns = ns_of(ns);
	return hash_str(hash_str(hash_str(0, ns, strlen(ns)), pool, strlen(pool)), model, len);
}

static uint64_t objective_key(const char *ns, const char *name, size_t len)
{
	ns = ns_of(ns);
	return hash_str(hash_str(1, ns, strlen(ns)), name, len);
}

static bool model_is(const struct ig_model *m, const char *ns, const char *pool, const char *model,
		     size_t len)
{
	return m->accepted && ns_eq(m->meta.ns, ns) && name_eq(m->pool_name, pool) &&
	       slice_eq(m->model_name, model, len);
}

static bool objective_is(const struct ig_objective *o, const char *ns, const char *name, size_t len)
{
	return ns_eq(o->meta.ns, ns) && slice_eq(o->meta.name, name, len);
}

static int map_init(struct name_map *m, size_t n)
{
	size_t size = 16;
	while (size < 2 * n)
		size *= 2;
	m->slots = calloc(size, sizeof(*m->slots));
	m->mask = size - 1;
	return m->slots ? 0 : -1;
}

static const struct ig_model *model_at(const struct ig_config *cfg, const struct name_map *m,
				       uint64_t h, const char *ns, const char *pool,
				       const char *model, size_t len)
{
	for (size_t i = h & m->mask; m->slots[i].at; i = (i + 1) & m->mask) {
		const struct ig_model *x = &cfg->models[m->slots[i].at - 1];
		if (m->slots[i].hash == h && model_is(x, ns, pool, model, len))
			return x;
	}
	return NULL;
}

static const struct ig_objective *objective_at(const struct ig_config *cfg,
					       const struct name_map *m, uint64_t h, const char *ns,
					       const char *name, size_t len)
{
	for (size_t i = h & m->mask; m->slots[i].at; i = (i + 1) & m->mask) {
		const struct ig_objective *x = &cfg->objectives[m->slots[i].at - 1];
		if (m->slots[i].hash == h && objective_is(x, ns, name, len))
			return x;
	}
	return NULL;
}

static void map_put(struct name_map *m, uint64_t h, size_t at)
{
	size_t i = h & m->mask;
	while (m->slots[i].at)
		i = (i + 1) & m->mask;
	m->slots[i] = (struct name_slot){h, (uint32_t)(at + 1)};
}

void ig_config_index_free(struct ig_config_index *x)
{
	if (!x)
		return;
	free(x->models.slots);
	free(x->objectives.slots);
	free(x);
}

int ig_config_build_index(struct ig_config *cfg)
{
	ig_config_index_free(cfg->index);
	cfg->index = NULL;
	if (cfg->nmodels >= UINT32_MAX || cfg->nobjectives >= UINT32_MAX)
		return -1;
	struct ig_config_index *x = calloc(1, sizeof(*x));
	if (!x || map_init(&x->models, cfg->nmodels) < 0 ||
	    map_init(&x->objectives, cfg->nobjectives) < 0) {
		ig_config_index_free(x);
		return -1;
	}
	for (size_t i = 0; i < cfg->nmodels; i++) {
		const struct ig_model *m = &cfg->models[i];
		if (!m->accepted || !m->pool_name || !m->model_name)
			continue;
		size_t len = strlen(m->model_name);
		uint64_t h = model_key(m->meta.ns, m->pool_name, m->model_name, len);
		if (!model_at(cfg, &x->models, h, m->meta.ns, m->pool_name, m->model_name, len))
			map_put(&x->models, h, i);
	}
	for (size_t i = 0; i < cfg->nobjectives; i++) {
		const struct ig_objective *o = &cfg->objectives[i];
		if (!o->meta.name)
			continue;
		size_t len = strlen(o->meta.name);
		uint64_t h = objective_key(o->meta.ns, o->meta.name, len);
		if (!objective_at(cfg, &x->objectives, h, o->meta.ns, o->meta.name, len))
			map_put(&x->objectives, h, i);
	}
	cfg->index = x;
	return 0;
}

const struct ig_model *ig_config_find_model(const struct ig_config *cfg, const struct ig_pool *pool,
					    const char *model, size_t model_len)
{
	if (!cfg || !pool || !model || !pool->meta.name)
		return NULL;
	const char *ns = pool->meta.ns, *name = pool->meta.name;
	if (cfg->index)
		return model_at(cfg, &cfg->index->models, model_key(ns, name, model, model_len), ns,
				name, model, model_len);
	for (size_t i = 0; i < cfg->nmodels; i++)
		if (model_is(&cfg->models[i], ns, name, model, model_len))
			return &cfg->models[i];
	return NULL;
}

const struct ig_objective *ig_config_find_objective(const struct ig_config *cfg, const char *ns,
						    const char *name, size_t name_len)
{
	if (!cfg || !name)
		return NULL;
	if (cfg->index)
		return objective_at(cfg, &cfg->index->objectives, objective_key(ns, name, name_len),
				    ns, name, name_len);
	for (size_t i = 0; i < cfg->nobjectives; i++)
		if (objective_is(&cfg->objectives[i], ns, name, name_len))
			return &cfg->objectives[i];
	return NULL;
}

/* Equality-based selection, as Service selectors and GIE's v1alpha2 map
 * selector work: every selector pair must appear in the labels. */
bool ig_labels_match(const struct ig_kv *selector, size_t nsel, const struct ig_kv *labels,
		     size_t nlabels)
{
	for (size_t i = 0; i < nsel; i++) {
		bool found = false;
		for (size_t j = 0; j < nlabels && !found; j++)
			found = !strcmp(selector[i].key, labels[j].key) &&
				!strcmp(selector[i].value, labels[j].value);
		if (!found)
			return false;
	}
	return true;
}

bool ig_pool_selects(const struct ig_pool *pool, const struct ig_pod *pod)
{
	return pool && pod && ns_eq(pod->meta.ns, pool->meta.ns) && pod->ready && !pod->deleting &&
	       pod->ip && *pod->ip &&
	       ig_labels_match(pool->selector, pool->nselector, pod->meta.labels,
			       pod->meta.nlabels);
}

void ig_diags_free(struct ig_diags *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].file);
		free(d->items[i].path);
		free(d->items[i].msg);
	}
	free(d->items);
	d->items = NULL;
	d->n = 0;
}

void ig_diags_print(const struct ig_diags *d, void *file)
{
	FILE *f = file;
	for (size_t i = 0; d && i < d->n; i++) {
		const struct ig_diag *g = &d->items[i];
		if (g->line > 0)
			fprintf(f, "%s:%d: ", g->file, g->line);
		else
			fprintf(f, "%s: ", g->file);
		if (g->warning)
			fputs("warning: ", f);
		if (g->path && *g->path)
			fprintf(f, "%s: ", g->path);
		fprintf(f, "%s\n", g->msg);
	}
}
