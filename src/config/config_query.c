/* Read-only questions about a loaded config, and diag output. Configs are
 * small (tens of objects, at most thousands of Pods), so lookups are
 * linear scans. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		if (ns_eq(cfg->gateways[i].meta.ns, ns) && name_eq(cfg->gateways[i].meta.name, name))
			return &cfg->gateways[i];
	return NULL;
}

static bool slice_eq(const char *s, const char *p, size_t len)
{
	return s && strlen(s) == len && memcmp(s, p, len) == 0;
}

const struct ig_model *ig_config_find_model(const struct ig_config *cfg, const struct ig_pool *pool,
					    const char *model, size_t model_len)
{
	if (!cfg || !pool || !model)
		return NULL;
	for (size_t i = 0; i < cfg->nmodels; i++) {
		const struct ig_model *m = &cfg->models[i];
		if (m->accepted && ns_eq(m->meta.ns, pool->meta.ns) &&
		    name_eq(m->pool_name, pool->meta.name) &&
		    slice_eq(m->model_name, model, model_len))
			return m;
	}
	return NULL;
}

const struct ig_objective *ig_config_find_objective(const struct ig_config *cfg, const char *ns,
						    const char *name, size_t name_len)
{
	for (size_t i = 0; cfg && name && i < cfg->nobjectives; i++) {
		const struct ig_objective *o = &cfg->objectives[i];
		if (ns_eq(o->meta.ns, ns) && slice_eq(o->meta.name, name, name_len))
			return o;
	}
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
