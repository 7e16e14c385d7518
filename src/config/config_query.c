/* Read-only questions about a loaded config, and diag output. Configs are
 * small (tens of objects, at most thousands of Pods), so lookups are
 * linear scans. */
#include <errno.h>
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
		if (ns_eq(cfg->gateways[i].meta.ns, ns) &&
		    name_eq(cfg->gateways[i].meta.name, name))
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

const struct ig_namespace *ig_config_find_namespace(const struct ig_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && i < cfg->nnamespaces; i++)
		if (name_eq(cfg->namespaces[i].meta.name, name))
			return &cfg->namespaces[i];
	return NULL;
}

const struct ig_secret_item *ig_secret_get(const struct ig_secret *s, const char *key)
{
	for (size_t i = 0; s && key && i < s->nitems; i++)
		if (!strcmp(s->items[i].key, key))
			return &s->items[i];
	return NULL;
}

/* ---- GIE ------------------------------------------------------------------ */

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

enum ig_model_mode ig_pool_model_mode(const struct ig_config *cfg, const struct ig_pool *pool)
{
	if (!pool || pool->v1)
		return IG_MODELS_PASSTHROUGH;
	for (size_t i = 0; cfg && i < cfg->nmodels; i++)
		if (ns_eq(cfg->models[i].meta.ns, pool->meta.ns) &&
		    name_eq(cfg->models[i].pool_name, pool->meta.name))
			return IG_MODELS_INFERENCE_MODEL;
	return IG_MODELS_PASSTHROUGH;
}

const struct ig_objective *ig_config_find_objective_for_pool(const struct ig_config *cfg,
							     const struct ig_pool *pool,
							     const char *name, size_t name_len)
{
	for (size_t i = 0; cfg && pool && name && i < cfg->nobjectives; i++) {
		const struct ig_objective *o = &cfg->objectives[i];
		if (slice_eq(o->meta.name, name, name_len) &&
		    names_pool(&o->meta, o->pool_name, o->pool_group, o->pool_kind, pool))
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

const struct ig_rewrite_rule *ig_config_find_rewrite(const struct ig_config *cfg,
						     const struct ig_pool *pool, const char *model,
						     size_t model_len,
						     const struct ig_model_rewrite **owner)
{
	const struct ig_rewrite_rule *exact = NULL, *generic = NULL;
	const struct ig_model_rewrite *exact_w = NULL, *generic_w = NULL;
	for (size_t i = 0; cfg && pool && i < cfg->nrewrites; i++) {
		const struct ig_model_rewrite *w = &cfg->rewrites[i];
		if (!names_pool(&w->meta, w->pool_name, w->pool_group, w->pool_kind, pool))
			continue;
		for (size_t r = 0; r < w->nrules; r++) {
			const struct ig_rewrite_rule *rule = &w->rules[r];
			if (rule->nmodels && model && rule_names(rule, model, model_len)) {
				if (!exact_w || rewrite_older(w, exact_w)) {
					exact = rule;
					exact_w = w;
				}
				break; /* the first matching rule of this rewrite */
			}
		}
		for (size_t r = 0; r < w->nrules; r++) {
			if (w->rules[r].nmodels)
				continue;
			if (!generic_w || rewrite_older(w, generic_w)) {
				generic = &w->rules[r];
				generic_w = w;
			}
			break;
		}
	}
	if (owner)
		*owner = exact ? exact_w : generic_w;
	return exact ? exact : generic;
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
