/* Checks across objects, once every file is read: duplicates, GIE's
 * modelName claims, references that do not resolve, and the resolution of
 * backendRefs and certificateRefs into statuses and pointers (see
 * ig_ref_status in config.h). Problems with references are warnings: the
 * referenced object may arrive with a later reload, and the Gateway API
 * answers such requests with 500 rather than refusing the route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/load.h"

#define GATEWAY_GROUP "gateway.networking.k8s.io"

/* ---- duplicates ----------------------------------------------------------- */

/* Same kind, namespace and name twice: the later one is the error. */
static void check_dups_of(struct session *s, const struct ig_meta **ms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct ig_meta *a = ms[j], *b = ms[i];
			if (!a->name || !b->name || strcmp(a->name, b->name) ||
			    strcmp(a->ns, b->ns))
				continue;
			s->file = b->file;
			if (*b->ns)
				ld_err(s, b->line, "metadata", "name",
				       "duplicate %s \"%s/%s\": also defined at %s:%d", b->kind,
				       b->ns, b->name, a->file, a->line);
			else
				ld_err(s, b->line, "metadata", "name",
				       "duplicate %s \"%s\": also defined at %s:%d", b->kind,
				       b->name, a->file, a->line);
			break;
		}
	}
}

static void check_dups(struct session *s)
{
	const struct ig_config *c = &s->box->cfg;
	size_t most = 1;
#define MOST(kind) most = c->n##kind > most ? c->n##kind : most
	MOST(gateways);
	MOST(routes);
	MOST(grants);
	MOST(tls_policies);
	MOST(pools);
	MOST(models);
	MOST(objectives);
	MOST(rewrites);
	MOST(imports);
	MOST(pods);
	MOST(deployments);
	MOST(namespaces);
	MOST(services);
	MOST(slices);
	MOST(endpoints);
	MOST(secrets);
#undef MOST
	const struct ig_meta **ms = malloc(most * sizeof(*ms));
	if (!ms)
		return;
#define DUPS(kind)                                                                                 \
	do {                                                                                       \
		for (size_t i = 0; i < c->n##kind; i++)                                            \
			ms[i] = &c->kind[i].meta;                                                  \
		check_dups_of(s, ms, c->n##kind);                                                  \
	} while (0)
	DUPS(gateways);
	DUPS(routes);
	DUPS(grants);
	DUPS(tls_policies);
	DUPS(pools);
	DUPS(models);
	DUPS(objectives);
	DUPS(rewrites);
	DUPS(imports);
	DUPS(pods);
	DUPS(deployments);
	DUPS(namespaces);
	DUPS(services);
	DUPS(slices);
	DUPS(endpoints);
	DUPS(secrets);
#undef DUPS
	free(ms);
}

/* ---- InferenceModel claims ---------------------------------------------------- */

static bool same_claim(const struct ig_model *a, const struct ig_model *b)
{
	return a != b && a->model_name && b->model_name && a->pool_name && b->pool_name &&
	       !strcmp(a->meta.ns, b->meta.ns) && !strcmp(a->pool_name, b->pool_name) &&
	       !strcmp(a->model_name, b->model_name);
}

/* GIE's ModelNameInUse: per pool, the oldest claim on a modelName wins. */
static void check_model_names(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->nmodels; i++) {
		struct ig_model *m = &c->models[i];
		const struct ig_model *winner = m;
		for (size_t j = 0; j < c->nmodels; j++)
			if (same_claim(&c->models[j], m) &&
			    ld_older(&c->models[j].meta, &winner->meta))
				winner = &c->models[j];
		if (winner == m)
			continue;
		m->accepted = false;
		s->file = m->meta.file;
		ld_warn(s, m->meta.line, "spec", "modelName",
			"modelName \"%s\" already in use by InferenceModel \"%s/%s\" (%s:%d), "
			"which is older (ModelNameInUse)",
			m->model_name, winner->meta.ns, winner->meta.name, winner->meta.file,
			winner->meta.line);
	}
}

/* ---- existence ----------------------------------------------------------------- */

static void check_refs(struct session *s)
{
	for (size_t i = 0; i < s->nrefs; i++) {
		const struct ref *r = &s->refs[i];
		bool found = !strcmp(r->kind, "Gateway")
				 ? ig_config_find_gateway(&s->box->cfg, r->ns, r->name) != NULL
				 : ig_config_find_pool(&s->box->cfg, r->ns, r->name) != NULL;
		if (found)
			continue;
		s->file = r->file;
		ld_warn(s, r->line, r->path, NULL, "%s \"%s/%s\" not found in the configuration",
			r->kind, r->ns, r->name);
	}
}

/* GIE objects name their pool by group too; a pool of the other API group
 * is not theirs. */
static void check_pool_group(struct session *s, const struct ig_meta *m, const char *pool_name,
			     const char *pool_group, const char *pool_kind)
{
	if (!pool_group)
		return; /* unset: any group (see names_pool) */
	if (!pool_name || (pool_kind && strcmp(pool_kind, "InferencePool")))
		return;
	const struct ig_pool *p = ig_config_find_pool(&s->box->cfg, m->ns, pool_name);
	if (!p || !strcmp(p->group, pool_group))
		return;
	s->file = m->file;
	ld_warn(s, m->line, "spec.poolRef", "group",
		"InferencePool \"%s/%s\" is %s, but poolRef.group is \"%s\": this %s applies to no "
		"pool",
		p->meta.ns, p->meta.name, p->meta.api_version, pool_group, m->kind);
}

static void check_gie_refs(struct session *s)
{
	const struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->nobjectives; i++) {
		const struct ig_objective *o = &c->objectives[i];
		check_pool_group(s, &o->meta, o->pool_name, o->pool_group, o->pool_kind);
	}
	for (size_t i = 0; i < c->nrewrites; i++) {
		const struct ig_model_rewrite *w = &c->rewrites[i];
		check_pool_group(s, &w->meta, w->pool_name, w->pool_group, w->pool_kind);
	}
	for (size_t i = 0; i < c->nmodels; i++) {
		const struct ig_model *m = &c->models[i];
		const struct ig_pool *p =
		    m->pool_name ? ig_config_find_pool(c, m->meta.ns, m->pool_name) : NULL;
		if (!p || !p->v1)
			continue;
		s->file = m->meta.file;
		ld_warn(s, m->meta.line, "spec", "poolRef",
			"InferencePool \"%s/%s\" is inference.networking.k8s.io/v1, which has no "
			"InferenceModels (GIE v1.0 removed them): this one is ignored and models "
			"pass through",
			p->meta.ns, p->meta.name);
	}
}

/* ---- backendRefs ------------------------------------------------------------------- */

static bool is_pool_group(const char *g)
{
	return !strcmp(g, IG_POOL_GROUP_V1) || !strcmp(g, IG_POOL_GROUP_ALPHA);
}

static void resolve_pool(struct session *s, const char *path, struct ig_backend_ref *b)
{
	const struct ig_pool *p = ig_config_find_pool(&s->box->cfg, b->ns, b->name);
	if (!p) {
		ld_warn(s, b->line, path, NULL,
			"InferencePool \"%s/%s\" not found in the configuration", b->ns, b->name);
		return;
	}
	if (strcmp(p->group, b->group) != 0) {
		ld_warn(s, b->line, path, "group",
			"InferencePool \"%s/%s\" is %s: name it with group %s (BackendNotFound)",
			b->ns, b->name, p->meta.api_version, p->group);
		return;
	}
	b->pool = p;
	b->status = IG_REF_OK;
}

static bool app_protocol_ok(const char *ap)
{
	/* kubernetes.io/ws: WebSocket over HTTP/1.1 (GEP-1911); a handshake
	 * reaches any HTTP/1.1 backend, so this port is served like http.
	 * kubernetes.io/wss would need TLS to the backend. */
	return !ap || !strcmp(ap, "http") || !strcmp(ap, "HTTP") ||
	       !strcmp(ap, "kubernetes.io/h2c") || !strcmp(ap, "kubernetes.io/ws");
}

/* The BackendTLSPolicy of the Service's namespace that targets it (the
 * whole Service, or this port by name), if any. */
static const struct ig_backend_tls_policy *tls_policy_of(const struct ig_config *c,
							 const struct ig_service *svc,
							 const struct ig_service_port *sp)
{
	for (size_t i = 0; i < c->ntls_policies; i++) {
		const struct ig_backend_tls_policy *p = &c->tls_policies[i];
		if (strcmp(p->meta.ns, svc->meta.ns))
			continue;
		for (size_t k = 0; k < p->ntargets; k++) {
			const struct ig_tls_policy_target *t = &p->targets[k];
			if (t->group && !*t->group && t->kind && !strcmp(t->kind, "Service") &&
			    t->name && !strcmp(t->name, svc->meta.name) &&
			    (!t->section || (sp->name && !strcmp(t->section, sp->name))))
				return p;
		}
	}
	return NULL;
}

static void resolve_service(struct session *s, const char *path, struct ig_backend_ref *b)
{
	const struct ig_service *svc = ig_config_find_service(&s->box->cfg, b->ns, b->name);
	if (!svc) {
		ld_warn(s, b->line, path, NULL, "Service \"%s/%s\" not found in the configuration",
			b->ns, b->name);
		return;
	}
	if (!strcmp(svc->type, "ExternalName")) {
		b->status = IG_REF_INVALID_KIND;
		ld_warn(s, b->line, path, NULL,
			"Service \"%s/%s\" is of type ExternalName, which cannot be a backend",
			b->ns, b->name);
		return;
	}
	const struct ig_service_port *sp = ig_service_find_port(svc, b->port);
	if (!sp) {
		ld_warn(s, b->line, path, "port", "Service \"%s/%s\" has no port %d", b->ns,
			b->name, b->port);
		return;
	}
	const struct ig_backend_tls_policy *tp = tls_policy_of(&s->box->cfg, svc, sp);
	if (tp) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, NULL,
			"Service \"%s/%s\" is a target of BackendTLSPolicy \"%s\" "
			"(UnsupportedProtocol): infergate does not speak TLS to backends, and "
			"does not send in clear text what is to be encrypted",
			b->ns, b->name, tp->meta.name);
		return;
	}
	if (!app_protocol_ok(sp->app_protocol)) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, "port",
			"port %d of Service \"%s/%s\" has appProtocol %s (UnsupportedProtocol): "
			"only http, kubernetes.io/h2c and kubernetes.io/ws",
			b->port, b->ns, b->name, sp->app_protocol);
		return;
	}
	b->service = svc;
	b->status = IG_REF_OK;
}

static void resolve_backend(struct session *s, const struct ig_httproute *rt, const char *path,
			    struct ig_backend_ref *b)
{
	if (!b->name || !b->group || !b->kind)
		return;
	bool service = !*b->group && !strcmp(b->kind, "Service");
	bool pool = is_pool_group(b->group) && !strcmp(b->kind, "InferencePool");
	b->status = IG_REF_NOT_FOUND;
	if (!service && !pool) {
		b->status = IG_REF_INVALID_KIND;
		if (is_pool_group(b->group) && !strcmp(b->kind, "InferencePoolImport"))
			ld_warn(s, b->line, path, "kind",
				"InferencePoolImport backends are not routed (InvalidKind): "
				"infergate cannot reach other clusters");
		else
			ld_warn(s, b->line, path, "kind",
				"backend kind %s%s%s is not supported (InvalidKind): only Service "
				"and InferencePool",
				b->group, *b->group ? "/" : "", b->kind);
		return;
	}
	/* Permission before existence: the status must not tell whether an
	 * object the route may not see exists. */
	if (!ig_config_reference_allowed(&s->box->cfg, GATEWAY_GROUP, "HTTPRoute", rt->meta.ns,
					 b->group, b->kind, b->ns, b->name)) {
		b->status = IG_REF_NOT_PERMITTED;
		ld_warn(s, b->line, path, "namespace",
			"reference to %s \"%s/%s\" from namespace %s needs a ReferenceGrant in "
			"namespace %s (RefNotPermitted)",
			b->kind, b->ns, b->name, rt->meta.ns, b->ns);
		return;
	}
	if (pool)
		resolve_pool(s, path, b);
	else
		resolve_service(s, path, b);
}

static void resolve_filters(struct session *s, const struct ig_httproute *rt, const char *owner,
			    struct ig_filter *fs, size_t n)
{
	char path[LD_PATH];
	for (size_t i = 0; i < n; i++) {
		if (fs[i].type != IG_FILTER_REQUEST_MIRROR || !fs[i].u.mirror.backend)
			continue;
		char it[LD_PATH];
		ld_item(it, owner, "filters", i);
		ld_join(path, it, "requestMirror.backendRef");
		resolve_backend(s, rt, path, fs[i].u.mirror.backend);
	}
}

static void resolve_routes(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	char rule[LD_PATH], path[LD_PATH];
	for (size_t i = 0; i < c->nroutes; i++) {
		struct ig_httproute *rt = &c->routes[i];
		s->file = rt->meta.file;
		for (size_t r = 0; r < rt->nrules; r++) {
			struct ig_route_rule *ru = &rt->rules[r];
			ld_item(rule, "spec", "rules", r);
			resolve_filters(s, rt, rule, ru->filters, ru->nfilters);
			for (size_t b = 0; b < ru->nbackends; b++) {
				ld_item(path, rule, "backendRefs", b);
				resolve_backend(s, rt, path, &ru->backends[b]);
				resolve_filters(s, rt, path, ru->backends[b].filters,
						ru->backends[b].nfilters);
			}
		}
	}
}

/* ---- certificateRefs ------------------------------------------------------------ */

static bool has_pem(const struct ig_secret_item *it, const char *label)
{
	return it && it->len && strstr((const char *)it->bytes, "-----BEGIN ") &&
	       strstr((const char *)it->bytes, label);
}

static void resolve_cert(struct session *s, const struct ig_gateway *gw, const char *path,
			 struct ig_cert_ref *c)
{
	if (!c->name)
		return;
	if (*c->group || strcmp(c->kind, "Secret") != 0) {
		c->status = IG_REF_INVALID_KIND;
		ld_warn(
		    s, c->line, path, "kind",
		    "certificateRefs must name core Secrets, not %s%s%s (InvalidCertificateRef)",
		    c->group, *c->group ? "/" : "", c->kind);
		return;
	}
	if (!ig_config_reference_allowed(&s->box->cfg, GATEWAY_GROUP, "Gateway", gw->meta.ns, "",
					 "Secret", c->ns, c->name)) {
		c->status = IG_REF_NOT_PERMITTED;
		ld_warn(s, c->line, path, "namespace",
			"reference to Secret \"%s/%s\" from namespace %s needs a ReferenceGrant in "
			"namespace %s (RefNotPermitted)",
			c->ns, c->name, gw->meta.ns, c->ns);
		return;
	}
	const struct ig_secret *sec = ig_config_find_secret(&s->box->cfg, c->ns, c->name);
	if (!sec) {
		c->status = IG_REF_NOT_FOUND;
		ld_warn(s, c->line, path, NULL, "Secret \"%s/%s\" not found in the configuration",
			c->ns, c->name);
		return;
	}
	c->secret = sec;
	const char *why = NULL;
	if (strcmp(sec->type, "kubernetes.io/tls") != 0)
		why = "is not of type kubernetes.io/tls";
	else if (!has_pem(ig_secret_get(sec, "tls.crt"), "CERTIFICATE-----"))
		why = "has no PEM certificate in tls.crt";
	else if (!has_pem(ig_secret_get(sec, "tls.key"), "PRIVATE KEY-----"))
		why = "has no PEM private key in tls.key";
	if (why) {
		c->status = IG_REF_INVALID;
		ld_warn(s, c->line, path, NULL, "Secret \"%s/%s\" %s (InvalidCertificateRef)",
			c->ns, c->name, why);
		return;
	}
	c->status = IG_REF_OK;
}

static void resolve_gateways(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	char path[LD_PATH], it[LD_PATH];
	for (size_t g = 0; g < c->ngateways; g++) {
		const struct ig_gateway *gw = &c->gateways[g];
		s->file = gw->meta.file;
		for (size_t l = 0; l < gw->nlisteners; l++) {
			struct ig_listener *li = &gw->listeners[l];
			size_t ok = 0;
			ld_item(path, "spec", "listeners", l);
			for (size_t k = 0; k < li->tls.ncerts; k++) {
				ld_item(it, path, "tls.certificateRefs", k);
				resolve_cert(s, gw, it, &li->tls.certs[k]);
				ok += li->tls.certs[k].status == IG_REF_OK;
			}
			if (li->protocol && !strcmp(li->protocol, "HTTPS") && li->tls.set &&
			    li->tls.ncerts && !ok)
				ld_warn(s, li->tls.certs[0].line, path, NULL,
					"HTTPS listener \"%s\" has no usable certificate: it "
					"cannot be served",
					li->name ? li->name : "");
		}
	}
}

/* Ranks rewrites by age once, so that requests compare two integers. */
static void rank_rewrites(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->nrewrites; i++) {
		size_t rank = 0;
		for (size_t j = 0; j < c->nrewrites; j++)
			rank += j != i && ld_older(&c->rewrites[j].meta, &c->rewrites[i].meta);
		c->rewrites[i].age_rank = rank;
	}
}

void ld_link(struct session *s)
{
	rank_rewrites(s);
	check_dups(s);
	check_model_names(s);
	check_refs(s);
	check_gie_refs(s);
	resolve_routes(s);
	resolve_gateways(s);
}
