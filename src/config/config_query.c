/* Read-only questions about a loaded config, and diag output. Configs are
 * small (tens of objects, at most thousands of Pods), so most lookups are
 * linear scans; those every request makes (its pool's model mode, its
 * InferenceModel or InferenceModelRewrite rule, its InferenceObjective) go
 * through hash maps built once per config, which is immutable once loaded
 * but for its Pods. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/str.h"

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

const struct ig_pool *ig_config_find_pool_in(const struct ig_config *cfg, const char *group,
					     const char *ns, const char *name)
{
	if (!group)
		return ig_config_find_pool(cfg, ns, name);
	for (size_t i = 0; cfg && i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		if (ns_eq(p->meta.ns, ns) && name_eq(p->meta.name, name) &&
		    name_eq(p->group, group))
			return p;
	}
	return NULL;
}

const struct ig_listener_set *ig_config_find_listener_set(const struct ig_config *cfg,
							  const char *group, const char *kind,
							  const char *ns, const char *name)
{
	for (size_t i = 0; cfg && group && kind && i < cfg->nlistener_sets; i++) {
		const struct ig_listener_set *ls = &cfg->listener_sets[i];
		if (!strcmp(ls->group, group) && !strcmp(ls->meta.kind, kind) &&
		    ns_eq(ls->meta.ns, ns) && name_eq(ls->meta.name, name))
			return ls;
	}
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

const struct ig_service *ig_config_find_service(const struct ig_config *cfg, const char *ns,
						const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nservices; i++)
		if (ns_eq(cfg->services[i].meta.ns, ns) &&
		    name_eq(cfg->services[i].meta.name, name))
			return &cfg->services[i];
	return NULL;
}

const struct ig_secret *ig_config_find_secret(const struct ig_config *cfg, const char *ns,
					      const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nsecrets; i++)
		if (ns_eq(cfg->secrets[i].meta.ns, ns) && name_eq(cfg->secrets[i].meta.name, name))
			return &cfg->secrets[i];
	return NULL;
}

const struct ig_configmap *ig_config_find_configmap(const struct ig_config *cfg, const char *ns,
						    const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nconfigmaps; i++)
		if (ns_eq(cfg->configmaps[i].meta.ns, ns) &&
		    name_eq(cfg->configmaps[i].meta.name, name))
			return &cfg->configmaps[i];
	return NULL;
}

bool ig_tls_policy_usable(const struct ig_backend_tls_policy *p)
{
	return p && p->state == IG_TLSP_ACCEPTED && p->refs_ok;
}

const struct ig_namespace *ig_config_find_namespace(const struct ig_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nnamespaces; i++)
		if (name_eq(cfg->namespaces[i].meta.name, name))
			return &cfg->namespaces[i];
	return NULL;
}

static const struct ig_secret_item *item_get(const struct ig_secret_item *items, size_t n,
					     const char *key)
{
	for (size_t i = 0; key && i < n; i++)
		if (!strcmp(items[i].key, key))
			return &items[i];
	return NULL;
}

const struct ig_secret_item *ig_secret_get(const struct ig_secret *s, const char *key)
{
	return s ? item_get(s->items, s->nitems, key) : NULL;
}

const struct ig_secret_item *ig_configmap_get(const struct ig_configmap *cm, const char *key)
{
	return cm ? item_get(cm->items, cm->nitems, key) : NULL;
}

/* ---- GIE ------------------------------------------------------------------ */

/* Each lookup below exists twice: a linear scan, which is the definition,
 * and a hash map built from it once per config (ig_config_build_index),
 * which answers the same for the lookups every request makes. A config
 * without an index (built by hand, or out of memory at load) scans. */

static bool names_pool(const struct ig_meta *m, const char *pool_name, const char *pool_group,
		       const char *pool_kind, const struct ig_pool *pool)
{
	/* A poolRef without a group names the pool of that name, whichever its
	 * API version: objectives and rewrites written for v1alpha2 pools (GIE
	 * v1.0-v1.4) and for v1 pools both leave it out. */
	return ns_eq(m->ns, pool->meta.ns) && name_eq(pool_name, pool->meta.name) &&
	       (!pool_group || name_eq(pool_group, pool->group)) &&
	       (!pool_kind || !strcmp(pool_kind, "InferencePool"));
}

static bool objective_names_pool(const struct ig_objective *o, const struct ig_pool *pool)
{
	return names_pool(&o->meta, o->pool_name, o->pool_group, o->pool_kind, pool);
}

static bool rewrite_names_pool(const struct ig_model_rewrite *w, const struct ig_pool *pool)
{
	return names_pool(&w->meta, w->pool_name, w->pool_group, w->pool_kind, pool);
}

static bool scan_pool_has_models(const struct ig_config *cfg, const struct ig_pool *pool)
{
	for (size_t i = 0; i < cfg->nmodels; i++)
		if (ns_eq(cfg->models[i].meta.ns, pool->meta.ns) &&
		    name_eq(cfg->models[i].pool_name, pool->meta.name))
			return true;
	return false;
}

static bool model_is(const struct ig_model *m, const char *ns, const char *pool, const char *model,
		     size_t len)
{
	return m->accepted && ns_eq(m->meta.ns, ns) && name_eq(m->pool_name, pool) &&
	       slice_eq(m->model_name, model, len);
}

static const struct ig_model *scan_model(const struct ig_config *cfg, const char *ns,
					 const char *pool, const char *model, size_t len)
{
	for (size_t i = 0; i < cfg->nmodels; i++)
		if (model_is(&cfg->models[i], ns, pool, model, len))
			return &cfg->models[i];
	return NULL;
}

static bool objective_is(const struct ig_objective *o, const char *ns, const char *name, size_t len)
{
	return ns_eq(o->meta.ns, ns) && slice_eq(o->meta.name, name, len);
}

static const struct ig_objective *scan_objective(const struct ig_config *cfg, const char *ns,
						 const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->nobjectives; i++)
		if (objective_is(&cfg->objectives[i], ns, name, len))
			return &cfg->objectives[i];
	return NULL;
}

static const struct ig_objective *scan_pool_objective(const struct ig_config *cfg,
						      const struct ig_pool *pool, const char *name,
						      size_t len)
{
	for (size_t i = 0; i < cfg->nobjectives; i++) {
		const struct ig_objective *o = &cfg->objectives[i];
		if (slice_eq(o->meta.name, name, len) && objective_names_pool(o, pool))
			return o;
	}
	return NULL;
}

static bool rewrite_older(const struct ig_model_rewrite *a, const struct ig_model_rewrite *b)
{
	return a->age_rank < b->age_rank;
}

static bool rule_names(const struct ig_rewrite_rule *r, const char *model, size_t len)
{
	for (size_t i = 0; i < r->nmodels; i++)
		if (slice_eq(r->models[i], model, len))
			return true;
	return false;
}

/* A rewrite's first rule without matches (a generic rule), if any. */
static const struct ig_rewrite_rule *generic_rule(const struct ig_model_rewrite *w)
{
	for (size_t r = 0; r < w->nrules; r++)
		if (!w->rules[r].nmodels)
			return &w->rules[r];
	return NULL;
}

/* A rule and the rewrite holding it. */
struct rule_of {
	const struct ig_rewrite_rule *rule;
	const struct ig_model_rewrite *w;
};

/* Keeps the older of *best and (w, rule); a tie keeps *best, the earlier
 * in load order. */
static void keep_older(struct rule_of *best, const struct ig_model_rewrite *w,
		       const struct ig_rewrite_rule *rule)
{
	if (rule && (!best->w || rewrite_older(w, best->w)))
		*best = (struct rule_of){rule, w};
}

static struct rule_of scan_exact_rule(const struct ig_config *cfg, const struct ig_pool *pool,
				      const char *model, size_t len)
{
	struct rule_of best = {0};
	for (size_t i = 0; model && i < cfg->nrewrites; i++) {
		const struct ig_model_rewrite *w = &cfg->rewrites[i];
		if (!rewrite_names_pool(w, pool))
			continue;
		/* The first matching rule of this rewrite. */
		for (size_t r = 0; r < w->nrules; r++)
			if (rule_names(&w->rules[r], model, len)) {
				keep_older(&best, w, &w->rules[r]);
				break;
			}
	}
	return best;
}

static struct rule_of scan_generic_rule(const struct ig_config *cfg, const struct ig_pool *pool)
{
	struct rule_of best = {0};
	for (size_t i = 0; i < cfg->nrewrites; i++) {
		const struct ig_model_rewrite *w = &cfg->rewrites[i];
		if (rewrite_names_pool(w, pool))
			keep_older(&best, w, generic_rule(w));
	}
	return best;
}

/* ---- the index: hash maps for the lookups of every request ------------------ */

/* Open addressing over indices into an array of entries; a key's hash is
 * kept to skip most comparisons. Each map holds, per key, what the scan
 * returns for it. Keys that name a pool use its index in cfg->pools: the
 * pools a request carries point there (the snapshot's pools are the
 * config's), and a pool from anywhere else is looked up by scanning. */
struct name_map {
	size_t mask;
	struct name_slot {
		uint64_t hash;
		uint32_t at; /* entry index + 1; 0: empty */
	} * slots;
};

/* An objective, or an exact-match rewrite rule, keyed by (pool, name). */
struct pool_entry {
	const char *name;
	uint32_t pool;
	const struct ig_objective *objective;
	struct rule_of rule;
};

/* What a pool's requests ask of every request, computed once. */
struct pool_facts {
	bool has_models;	/* an InferenceModel names the pool */
	struct rule_of generic; /* the generic rewrite rule */
};

struct ig_config_index {
	struct name_map models;		 /* (ns, pool name, modelName) -> cfg->models */
	struct name_map objectives;	 /* (ns, name) -> cfg->objectives */
	struct name_map pool_objectives; /* (pool, name) -> pool_objs */
	struct name_map rewrites;	 /* (pool, model) -> exact */
	struct pool_entry *pool_objs, *exact;
	size_t npool_objs, nexact;
	struct pool_facts *pools; /* one per cfg->pools */
	/* Body-based routing: LoRA adapter -> base model, and base models. */
	struct name_map base_models;
	struct base_entry {
		const char *name, *base;
		bool adapter; /* else a base model's own entry */
	} * bases;
	size_t nbases;
};

static uint64_t hash_str(uint64_t h, const char *s, size_t len)
{
	/* The length in the seed, so that ("ab", "c") and ("a", "bc")
	 * differ; one short hash per part (a lookup per request hashes three). */
	return XXH3_64bits_withSeed(s, len, h + (uint64_t)len * 0x9e3779b97f4a7c15u);
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

static uint64_t pool_key(size_t pool, const char *name, size_t len)
{
	return hash_str(2 + (uint64_t)pool, name, len);
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

static void map_put(struct name_map *m, uint64_t h, size_t at)
{
	size_t i = h & m->mask;
	while (m->slots[i].at)
		i = (i + 1) & m->mask;
	m->slots[i] = (struct name_slot){h, (uint32_t)(at + 1)};
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

static struct pool_entry *pool_entry_at(const struct name_map *m, struct pool_entry *v, size_t pool,
					const char *name, size_t len)
{
	uint64_t h = pool_key(pool, name, len);
	for (size_t i = h & m->mask; m->slots[i].at; i = (i + 1) & m->mask) {
		struct pool_entry *e = &v[m->slots[i].at - 1];
		if (m->slots[i].hash == h && e->pool == pool && slice_eq(e->name, name, len))
			return e;
	}
	return NULL;
}

static struct pool_entry *pool_entry_add(struct name_map *m, struct pool_entry *v, size_t *n,
					 size_t pool, const char *name)
{
	struct pool_entry *e = &v[*n];
	*e = (struct pool_entry){.name = name, .pool = (uint32_t)pool};
	map_put(m, pool_key(pool, name, strlen(name)), (*n)++);
	return e;
}

void ig_config_index_free(struct ig_config_index *x)
{
	if (!x)
		return;
	free(x->models.slots);
	free(x->objectives.slots);
	free(x->pool_objectives.slots);
	free(x->rewrites.slots);
	free(x->pool_objs);
	free(x->exact);
	free(x->pools);
	free(x->base_models.slots);
	free(x->bases);
	free(x);
}

/* An adapter's entry (kind 3) or a base model's (kind 4), by name. */
static uint64_t base_key(int kind, const char *name, size_t len)
{
	return hash_str((uint64_t)kind, name, len);
}

static struct base_entry *base_at(const struct ig_config_index *x, int kind, const char *name,
				  size_t len)
{
	uint64_t h = base_key(kind, name, len);
	const struct name_map *m = &x->base_models;
	for (size_t i = h & m->mask; m->slots[i].at; i = (i + 1) & m->mask) {
		struct base_entry *e = &x->bases[m->slots[i].at - 1];
		if (m->slots[i].hash == h && e->adapter == (kind == 3) &&
		    slice_eq(e->name, name, len))
			return e;
	}
	return NULL;
}

static size_t count_bases(const struct ig_config *cfg)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->nconfigmaps; i++)
		if (cfg->configmaps[i].bbr_base)
			n += 1 + cfg->configmaps[i].nbbr_adapters;
	return n;
}

/* In load order, so that an adapter two ConfigMaps list maps to the base
 * model of the later one (as the later write of GIE's router wins). A base
 * model's entry maps its name to itself. */
static void index_bases(const struct ig_config *cfg, struct ig_config_index *x)
{
	for (size_t i = 0; i < cfg->nconfigmaps; i++) {
		const struct ig_configmap *cm = &cfg->configmaps[i];
		if (!cm->bbr_base)
			continue;
		for (size_t a = 0; a < cm->nbbr_adapters; a++) {
			const char *name = cm->bbr_adapters[a];
			size_t len = strlen(name);
			struct base_entry *e = base_at(x, 3, name, len);
			if (e) {
				e->base = cm->bbr_base;
				continue;
			}
			x->bases[x->nbases] = (struct base_entry){name, cm->bbr_base, true};
			map_put(&x->base_models, base_key(3, name, len), x->nbases++);
		}
		size_t len = strlen(cm->bbr_base);
		if (!base_at(x, 4, cm->bbr_base, len)) {
			x->bases[x->nbases] =
			    (struct base_entry){cm->bbr_base, cm->bbr_base, false};
			map_put(&x->base_models, base_key(4, cm->bbr_base, len), x->nbases++);
		}
	}
}

static void index_models(const struct ig_config *cfg, struct ig_config_index *x)
{
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
}

/* Pool p's entries, in the order the scans meet them: the first objective
 * of each name, and for each model named by an exact match the first rule
 * of the oldest rewrite naming it. */
static void index_pool(const struct ig_config *cfg, struct ig_config_index *x, size_t p)
{
	const struct ig_pool *pool = &cfg->pools[p];
	x->pools[p].has_models = scan_pool_has_models(cfg, pool);
	x->pools[p].generic = scan_generic_rule(cfg, pool);
	for (size_t i = 0; i < cfg->nobjectives; i++) {
		const struct ig_objective *o = &cfg->objectives[i];
		if (!o->meta.name || !objective_names_pool(o, pool) ||
		    pool_entry_at(&x->pool_objectives, x->pool_objs, p, o->meta.name,
				  strlen(o->meta.name)))
			continue;
		pool_entry_add(&x->pool_objectives, x->pool_objs, &x->npool_objs, p, o->meta.name)
		    ->objective = o;
	}
	for (size_t i = 0; i < cfg->nrewrites; i++) {
		const struct ig_model_rewrite *w = &cfg->rewrites[i];
		if (!rewrite_names_pool(w, pool))
			continue;
		for (size_t r = 0; r < w->nrules; r++)
			for (size_t k = 0; k < w->rules[r].nmodels; k++) {
				const char *model = w->rules[r].models[k];
				if (!model)
					continue;
				struct pool_entry *e =
				    pool_entry_at(&x->rewrites, x->exact, p, model, strlen(model));
				if (!e)
					e = pool_entry_add(&x->rewrites, x->exact, &x->nexact, p,
							   model);
				else if (e->rule.w == w)
					continue; /* an earlier rule of w names it */
				keep_older(&e->rule, w, &w->rules[r]);
			}
	}
}

/* Upper bounds of the per-pool entries: objectives and exact matches
 * naming the pool, each counted once per naming object. */
static void count_pool_entries(const struct ig_config *cfg, size_t *objs, size_t *exact)
{
	*objs = *exact = 0;
	for (size_t p = 0; p < cfg->npools; p++) {
		for (size_t i = 0; i < cfg->nobjectives; i++)
			*objs += objective_names_pool(&cfg->objectives[i], &cfg->pools[p]);
		for (size_t i = 0; i < cfg->nrewrites; i++) {
			const struct ig_model_rewrite *w = &cfg->rewrites[i];
			for (size_t r = 0; rewrite_names_pool(w, &cfg->pools[p]) && r < w->nrules;
			     r++)
				*exact += w->rules[r].nmodels;
		}
	}
}

int ig_config_build_index(struct ig_config *cfg)
{
	ig_config_index_free(cfg->index);
	cfg->index = NULL;
	size_t nobjs, nexact, nbases = count_bases(cfg);
	count_pool_entries(cfg, &nobjs, &nexact);
	if (cfg->nmodels >= UINT32_MAX || cfg->nobjectives >= UINT32_MAX ||
	    cfg->npools >= UINT32_MAX || nobjs >= UINT32_MAX || nexact >= UINT32_MAX ||
	    nbases >= UINT32_MAX)
		return -1;
	struct ig_config_index *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->pool_objs = calloc(nobjs ? nobjs : 1, sizeof(*x->pool_objs));
	x->exact = calloc(nexact ? nexact : 1, sizeof(*x->exact));
	x->pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*x->pools));
	x->bases = calloc(nbases ? nbases : 1, sizeof(*x->bases));
	if (!x->pool_objs || !x->exact || !x->pools || !x->bases ||
	    map_init(&x->models, cfg->nmodels) < 0 ||
	    map_init(&x->objectives, cfg->nobjectives) < 0 ||
	    map_init(&x->pool_objectives, nobjs) < 0 || map_init(&x->rewrites, nexact) < 0 ||
	    map_init(&x->base_models, nbases) < 0) {
		ig_config_index_free(x);
		return -1;
	}
	index_models(cfg, x);
	index_bases(cfg, x);
	for (size_t p = 0; p < cfg->npools; p++)
		index_pool(cfg, x, p);
	cfg->index = x;
	return 0;
}

/* The index of pool in cfg->pools, or -1 when it is not one of them (or
 * the config has no index). */
static ptrdiff_t pool_index(const struct ig_config *cfg, const struct ig_pool *pool)
{
	uintptr_t at = (uintptr_t)pool, base = (uintptr_t)cfg->pools;
	if (!cfg->index || at < base || at >= base + cfg->npools * sizeof(*pool) ||
	    (at - base) % sizeof(*pool))
		return -1;
	return (ptrdiff_t)((at - base) / sizeof(*pool));
}

/* ---- the lookups ------------------------------------------------------------- */

enum ig_model_mode ig_pool_model_mode(const struct ig_config *cfg, const struct ig_pool *pool)
{
	if (!pool || pool->v1 || !cfg)
		return IG_MODELS_PASSTHROUGH;
	ptrdiff_t p = pool_index(cfg, pool);
	bool has = p >= 0 ? cfg->index->pools[p].has_models : scan_pool_has_models(cfg, pool);
	return has ? IG_MODELS_INFERENCE_MODEL : IG_MODELS_PASSTHROUGH;
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
	return scan_model(cfg, ns, name, model, model_len);
}

const struct ig_objective *ig_config_find_objective(const struct ig_config *cfg, const char *ns,
						    const char *name, size_t name_len)
{
	if (!cfg || !name)
		return NULL;
	if (cfg->index)
		return objective_at(cfg, &cfg->index->objectives, objective_key(ns, name, name_len),
				    ns, name, name_len);
	return scan_objective(cfg, ns, name, name_len);
}

const struct ig_objective *ig_config_find_objective_for_pool(const struct ig_config *cfg,
							     const struct ig_pool *pool,
							     const char *name, size_t name_len)
{
	if (!cfg || !pool || !name)
		return NULL;
	ptrdiff_t p = pool_index(cfg, pool);
	if (p < 0)
		return scan_pool_objective(cfg, pool, name, name_len);
	const struct ig_config_index *x = cfg->index;
	const struct pool_entry *e =
	    pool_entry_at(&x->pool_objectives, x->pool_objs, (size_t)p, name, name_len);
	return e ? e->objective : NULL;
}

const struct ig_rewrite_rule *ig_config_find_rewrite(const struct ig_config *cfg,
						     const struct ig_pool *pool, const char *model,
						     size_t model_len,
						     const struct ig_model_rewrite **owner)
{
	struct rule_of found = {0};
	ptrdiff_t p = cfg && pool ? pool_index(cfg, pool) : -1;
	if (p >= 0) {
		const struct ig_config_index *x = cfg->index;
		const struct pool_entry *e =
		    model ? pool_entry_at(&x->rewrites, x->exact, (size_t)p, model, model_len)
			  : NULL;
		found = e ? e->rule : x->pools[p].generic;
	} else if (cfg && pool) {
		found = scan_exact_rule(cfg, pool, model, model_len);
		if (!found.rule)
			found = scan_generic_rule(cfg, pool);
	}
	if (owner)
		*owner = found.w;
	return found.rule;
}

/* Without an index: the last ConfigMap listing the adapter, else one
 * naming the base model. */
static const char *scan_base_model(const struct ig_config *cfg, const char *model, size_t len)
{
	for (size_t i = cfg->nconfigmaps; i-- > 0;) {
		const struct ig_configmap *cm = &cfg->configmaps[i];
		for (size_t a = 0; cm->bbr_base && a < cm->nbbr_adapters; a++)
			if (slice_eq(cm->bbr_adapters[a], model, len))
				return cm->bbr_base;
	}
	for (size_t i = 0; i < cfg->nconfigmaps; i++)
		if (cfg->configmaps[i].bbr_base &&
		    slice_eq(cfg->configmaps[i].bbr_base, model, len))
			return cfg->configmaps[i].bbr_base;
	return NULL;
}

const char *ig_config_base_model(const struct ig_config *cfg, const char *model, size_t len)
{
	if (!cfg || !model || (cfg->index && !cfg->index->nbases))
		return NULL; /* no ConfigMap maps anything: the common case */
	struct ig_str m = ig_str_trim_space((struct ig_str){model, len});
	model = m.ptr;
	len = m.len;
	if (!cfg->index)
		return scan_base_model(cfg, model, len);
	const struct base_entry *e = base_at(cfg->index, 3, model, len);
	if (!e)
		e = base_at(cfg->index, 4, model, len);
	return e ? e->base : NULL;
}

const char *ig_rewrite_choose(const struct ig_rewrite_rule *rule, uint64_t r)
{
	uint64_t total = 0;
	if (!rule || rule->ntargets == 0)
		return NULL;
	for (size_t i = 0; i < rule->ntargets; i++)
		total += rule->targets[i].has_weight ? (uint64_t)rule->targets[i].weight : 0;
	if (total == 0)
		return rule->targets[r % rule->ntargets].model;
	r %= total;
	for (size_t i = 0; i < rule->ntargets; i++) {
		uint64_t w = rule->targets[i].has_weight ? (uint64_t)rule->targets[i].weight : 0;
		if (r < w)
			return rule->targets[i].model;
		r -= w;
	}
	return rule->targets[rule->ntargets - 1].model; /* unreachable */
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

static const char *label_of(const struct ig_kv *labels, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(labels[i].key, key))
			return labels[i].value;
	return NULL;
}

static bool req_holds(const struct ig_selector_req *r, const struct ig_kv *labels, size_t n)
{
	const char *v = label_of(labels, n, r->key);
	bool listed = false;
	for (size_t i = 0; v && i < r->nvalues; i++)
		listed |= !strcmp(r->values[i], v);
	switch (r->op) {
	case IG_SEL_IN:
		return listed;
	case IG_SEL_NOT_IN:
		return !listed; /* an absent label is "not in" */
	case IG_SEL_EXISTS:
		return v != NULL;
	default:
		return v == NULL;
	}
}

bool ig_selector_matches(const struct ig_label_selector *sel, const struct ig_kv *labels,
			 size_t nlabels)
{
	if (!sel)
		return false;
	if (!ig_labels_match(sel->match_labels, sel->nmatch_labels, labels, nlabels))
		return false;
	for (size_t i = 0; i < sel->nexprs; i++)
		if (!req_holds(&sel->exprs[i], labels, nlabels))
			return false;
	return true;
}

bool ig_config_namespace_selected(const struct ig_config *cfg, const char *ns,
				  const struct ig_label_selector *sel)
{
	const struct ig_namespace *n = ig_config_find_namespace(cfg, ns ? ns : "default");
	if (n)
		return ig_selector_matches(sel, n->meta.labels, n->meta.nlabels);
	struct ig_kv implied = {"kubernetes.io/metadata.name", (char *)(ns ? ns : "default")};
	return ig_selector_matches(sel, &implied, 1);
}

bool ig_config_namespace_admits(const struct ig_config *cfg, enum ig_routes_from from, bool has_sel,
				const struct ig_label_selector *sel, const char *ns,
				const char *home)
{
	switch (from) {
	case IG_FROM_ALL:
		return true;
	case IG_FROM_SELECTOR:
		return has_sel && ig_config_namespace_selected(cfg, ns, sel);
	case IG_FROM_SAME:
		return ns_eq(ns, home);
	default:
		return false;
	}
}

/* The older first, by creationTimestamp compared as a time (RFC 3339:
 * offsets and fractions of a second count). An object without one (what
 * manifests read from files usually are) counts as newer than any with
 * one, and two without are of an age: the name decides between them, never
 * the order they were read in (Gateway API §6.3, steps 7 and 8). */
int ig_meta_cmp_age(const struct ig_meta *a, const struct ig_meta *b)
{
	if (a->has_created != b->has_created)
		return a->has_created ? -1 : 1;
	if (!a->has_created || (a->created_s == b->created_s && a->created_ns == b->created_ns))
		return 0;
	return a->created_s < b->created_s ||
		       (a->created_s == b->created_s && a->created_ns < b->created_ns)
		   ? -1
		   : 1;
}

int ig_meta_set_created(struct ig_meta *m, char *text)
{
	m->creation_timestamp = text;
	m->has_created = text && ig_parse_rfc3339(text, &m->created_s, &m->created_ns) == 0;
	return !text || m->has_created ? 0 : -1;
}

/* Compares "{namespace}/{name}" without building the strings: comparing
 * the parts separately would sort "a/x" before "a-b/x", which the joined
 * text does not. */
static int cmp_ns_name(const struct ig_meta *a, const struct ig_meta *b)
{
	const char *pa[3] = {a->ns ? a->ns : "default", "/", a->name ? a->name : ""};
	const char *pb[3] = {b->ns ? b->ns : "default", "/", b->name ? b->name : ""};
	size_t ia = 0, ib = 0;
	const char *ca = pa[0], *cb = pb[0];

	for (;;) {
		while (!*ca && ia < 2)
			ca = pa[++ia];
		while (!*cb && ib < 2)
			cb = pb[++ib];
		if (*ca != *cb || !*ca)
			return (unsigned char)*ca - (unsigned char)*cb;
		ca++;
		cb++;
	}
}

int ig_meta_precedence(const struct ig_meta *a, const struct ig_meta *b)
{
	int c = ig_meta_cmp_age(a, b);
	return c ? c : cmp_ns_name(a, b);
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

bool ig_config_reference_allowed(const struct ig_config *cfg, const char *from_group,
				 const char *from_kind, const char *from_ns, const char *to_group,
				 const char *to_kind, const char *to_ns, const char *to_name)
{
	if (ns_eq(from_ns, to_ns))
		return true;
	for (size_t i = 0; cfg && i < cfg->ngrants; i++) {
		const struct ig_reference_grant *g = &cfg->grants[i];
		if (!ns_eq(g->meta.ns, to_ns))
			continue;
		bool from = false, to = false;
		for (size_t k = 0; k < g->nfrom && !from; k++)
			from = str_eq(g->from[k].group, from_group) &&
			       str_eq(g->from[k].kind, from_kind) && ns_eq(g->from[k].ns, from_ns);
		for (size_t k = 0; k < g->nto && !to; k++)
			to = str_eq(g->to[k].group, to_group) && str_eq(g->to[k].kind, to_kind) &&
			     (!g->to[k].name || str_eq(g->to[k].name, to_name));
		if (from && to)
			return true;
	}
	return false;
}

/* ---- Service endpoints ------------------------------------------------------ */

const struct ig_service_port *ig_service_find_port(const struct ig_service *svc, int port)
{
	for (size_t i = 0; svc && i < svc->nports; i++)
		if (svc->ports[i].port == port)
			return &svc->ports[i];
	return NULL;
}

/* The addresses gathered so far, each (ip, port) once. */
struct addrs {
	struct ig_service_addr *v;
	size_t n, cap;
};

static int add_addr(struct addrs *a, const char *ip, int port)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].port == port && !strcmp(a->v[i].ip, ip))
			return 0;
	if (strlen(ip) >= sizeof a->v[0].ip)
		return 0;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		struct ig_service_addr *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	struct ig_service_addr *e = &a->v[a->n++];
	snprintf(e->ip, sizeof e->ip, "%s", ip);
	e->port = port;
	return 0;
}

/* The target port a slice or subset gives for the Service port: the port
 * entry with the Service port's name (both "" when unnamed). 0: none. */
static int port_for(const struct ig_endpoint_port *ps, size_t n, const struct ig_service_port *sp)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ps[i].name, sp->name) && !strcmp(ps[i].protocol, sp->protocol))
			return ps[i].port ? ps[i].port : sp->target_port;
	return 0;
}

static int from_slices(const struct ig_config *cfg, const struct ig_service *svc,
		       const struct ig_service_port *sp, struct addrs *a, bool *found)
{
	for (size_t i = 0; i < cfg->nslices; i++) {
		const struct ig_endpoint_slice *sl = &cfg->slices[i];
		if (!ns_eq(sl->meta.ns, svc->meta.ns) || !name_eq(sl->service_name, svc->meta.name))
			continue;
		*found = true;
		int port =
		    sl->address_type == IG_ADDR_FQDN ? 0 : port_for(sl->ports, sl->nports, sp);
		for (size_t e = 0; port && e < sl->nendpoints; e++) {
			const struct ig_slice_endpoint *ep = &sl->endpoints[e];
			if (!ep->ready)
				continue;
			for (size_t k = 0; k < ep->naddresses; k++)
				if (add_addr(a, ep->addresses[k], port) < 0)
					return -ENOMEM;
		}
	}
	return 0;
}

static int from_endpoints(const struct ig_config *cfg, const struct ig_service *svc,
			  const struct ig_service_port *sp, struct addrs *a, bool *found)
{
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct ig_endpoints_v1 *e = &cfg->endpoints[i];
		if (!ns_eq(e->meta.ns, svc->meta.ns) || !name_eq(e->meta.name, svc->meta.name))
			continue;
		*found = true;
		for (size_t k = 0; k < e->nsubsets; k++) {
			const struct ig_endpoints_subset *ss = &e->subsets[k];
			int port = port_for(ss->ports, ss->nports, sp);
			for (size_t j = 0; port && j < ss->nready; j++)
				if (add_addr(a, ss->ready[j], port) < 0)
					return -ENOMEM;
		}
		return 0;
	}
	return 0;
}

static int from_pods(const struct ig_config *cfg, const struct ig_service *svc,
		     const struct ig_service_port *sp, struct addrs *a)
{
	if (!svc->has_selector || !sp->target_port)
		return 0;
	for (size_t i = 0; i < cfg->npods; i++) {
		const struct ig_pod *p = &cfg->pods[i];
		if (!ns_eq(p->meta.ns, svc->meta.ns) || p->deleting || !p->ip || !*p->ip ||
		    (!p->ready && !svc->publish_not_ready) ||
		    !ig_labels_match(svc->selector, svc->nselector, p->meta.labels,
				     p->meta.nlabels))
			continue;
		if (add_addr(a, p->ip, sp->target_port) < 0)
			return -ENOMEM;
	}
	return 0;
}

int ig_config_service_endpoints(const struct ig_config *cfg, const struct ig_service *svc, int port,
				struct ig_service_addr **out, size_t *n,
				enum ig_endpoint_source *src)
{
	struct addrs a = {0};
	enum ig_endpoint_source from = IG_EPS_NONE;
	bool found = false;
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (src)
		*src = IG_EPS_NONE;
	const struct ig_service_port *sp = ig_service_find_port(svc, port);
	if (!svc || !sp || !strcmp(svc->type, "ExternalName"))
		return -ENOENT;
	rc = from_slices(cfg, svc, sp, &a, &found);
	if (found)
		from = IG_EPS_SLICES;
	if (!rc && !found) {
		rc = from_endpoints(cfg, svc, sp, &a, &found);
		if (found)
			from = IG_EPS_ENDPOINTS;
	}
	if (!rc && !found && svc->has_selector) {
		rc = from_pods(cfg, svc, sp, &a);
		from = IG_EPS_PODS;
	}
	if (rc < 0) {
		free(a.v);
		return rc;
	}
	*out = a.v;
	*n = a.n;
	if (src)
		*src = from;
	return 0;
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
	d->resource = 0;
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

const struct ig_frontend_validation *ig_gateway_frontend(const struct ig_gateway *gw, int port)
{
	for (size_t i = 0; i < gw->nfrontend_ports; i++)
		if (gw->frontend_ports[i].port == port)
			return gw->frontend_ports[i].v.set ? &gw->frontend_ports[i].v : NULL;
	return gw->frontend.set ? &gw->frontend : NULL;
}

const struct ig_frontend_validation *ig_listener_frontend(const struct ig_gateway *gw,
							  const struct ig_listener *li)
{
	return li->tls.frontend.set ? &li->tls.frontend : ig_gateway_frontend(gw, li->port);
}

const struct ig_filter *ig_filters_extension_ref(const struct ig_filter *fs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fs[i].type == IG_FILTER_EXTENSION_REF)
			return &fs[i];
	return NULL;
}
