/* Checks across objects, once every file is read: duplicates, GIE's
 * modelName claims, references that do not resolve, and the resolution of
 * backendRefs and certificateRefs into statuses and pointers (see
 * ig_ref_status in config.h). Problems with references are warnings: the
 * referenced object may arrive with a later reload, and the Gateway API
 * answers such requests with 500 rather than refusing the route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "config/load.h"
#include "http/tls.h"

#define GATEWAY_GROUP "gateway.networking.k8s.io"

/* ---- duplicates ----------------------------------------------------------- */

/* The API group of "group/version" ("" for the core group's "v1"). */
static size_t api_group_len(const char *api)
{
	const char *slash = api ? strchr(api, '/') : NULL;
	return slash ? (size_t)(slash - api) : 0;
}

/* Two objects are the same resource when their group, kind, namespace and
 * name are: a v1alpha2 and a v1 InferencePool "p" are two (their groups
 * differ), a Gateway written as v1 and as v1beta1 is one. */
static bool same_group(const struct ig_meta *a, const struct ig_meta *b)
{
	size_t ga = api_group_len(a->api_version), gb = api_group_len(b->api_version);
	return ga == gb && !memcmp(a->api_version, b->api_version, ga);
}

static bool same_resource(const struct ig_meta *a, const struct ig_meta *b, bool group)
{
	return (!group || same_group(a, b)) && !strcmp(a->name, b->name) && !strcmp(a->ns, b->ns) &&
	       !strcmp(a->kind, b->kind);
}

/* Each part's hash seeds the next one's, so ("ab", "c") and ("a", "bc")
 * differ. */
static uint64_t resource_hash(const struct ig_meta *m, bool group)
{
	uint64_t h = group ? XXH64(m->api_version, api_group_len(m->api_version), 0) : 0;
	h = XXH64(m->kind, strlen(m->kind), h);
	h = XXH64(m->ns, strlen(m->ns), h);
	return XXH64(m->name, strlen(m->name), h);
}

static void report_dup(struct session *s, const struct ig_meta *a, const struct ig_meta *b)
{
	s->file = b->file;
	if (*b->ns)
		ld_err(s, b->line, "metadata", "name",
		       "duplicate %s \"%s/%s\": also defined at %s:%d", b->kind, b->ns, b->name,
		       a->file, a->line);
	else
		ld_err(s, b->line, "metadata", "name", "duplicate %s \"%s\": also defined at %s:%d",
		       b->kind, b->name, a->file, a->line);
}

/* An InferenceObjective of GIE's group and one of llm-d's with the same
 * name are two resources, but a request names an objective by name alone:
 * say which one it gets. */
static void report_twin(struct session *s, const struct ig_meta *a, const struct ig_meta *b)
{
	s->file = b->file;
	ld_warn(s, b->line, "metadata", "name",
		"%s \"%s/%s\" of %s is also defined as %s at %s:%d: lookups by name get that "
		"one, loaded first",
		b->kind, b->ns, b->name, b->api_version, a->api_version, a->file, a->line);
}

/* Same group, kind, namespace and name twice: the later one is the error
 * (with group false: the same but for the group, a warning). An
 * open-addressing table of indexes into ms (slots[i] - 1; 0 is empty)
 * keeps this linear in the number of objects, tens of thousands of Pods
 * included. */
static void check_dups_of(struct session *s, const struct ig_meta **ms, size_t n, size_t *slots,
			  size_t nslots, bool group)
{
	memset(slots, 0, nslots * sizeof(*slots));
	for (size_t i = 0; i < n; i++) {
		const struct ig_meta *b = ms[i];
		if (!b->name || !b->ns || !b->kind)
			continue;
		size_t at = (size_t)resource_hash(b, group) & (nslots - 1);
		for (; slots[at]; at = (at + 1) & (nslots - 1)) {
			const struct ig_meta *a = ms[slots[at] - 1];
			if (!same_resource(a, b, group))
				continue;
			if (group)
				report_dup(s, a, b);
			else if (!same_group(a, b))
				report_twin(s, a, b);
			break;
		}
		if (!slots[at])
			slots[at] = i + 1;
	}
}

static void check_dups(struct session *s)
{
	const struct ig_config *c = &s->box->cfg;
	size_t most = 1;
#define MOST(kind) most = c->n##kind > most ? c->n##kind : most
	MOST(gateways);
	MOST(listener_sets);
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
	MOST(configmaps);
#undef MOST
	size_t nslots = 16;
	while (nslots < 2 * most)
		nslots *= 2;
	const struct ig_meta **ms = malloc(most * sizeof(*ms));
	size_t *slots = malloc(nslots * sizeof(*slots));
	if (!ms || !slots) {
		free(ms);
		free(slots);
		longjmp(s->jmp, JMP_OOM);
	}
#define DUPS(kind)                                                                                 \
	do {                                                                                       \
		for (size_t i = 0; i < c->n##kind; i++)                                            \
			ms[i] = &c->kind[i].meta;                                                  \
		check_dups_of(s, ms, c->n##kind, slots, nslots, true);                             \
	} while (0)
	DUPS(gateways);
	DUPS(listener_sets);
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
	DUPS(configmaps);
	/* A request names its objective by name, whatever the group. */
	for (size_t i = 0; i < c->nobjectives; i++)
		ms[i] = &c->objectives[i].meta;
	check_dups_of(s, ms, c->nobjectives, slots, nslots, false);
#undef DUPS
	free(ms);
	free(slots);
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
		const struct ig_config *c = &s->box->cfg;
		bool found = !strcmp(r->kind, "Gateway")
				 ? ig_config_find_gateway(c, r->ns, r->name) != NULL
			     : !strcmp(r->kind, "ListenerSet")
				 ? ig_config_find_listener_set(c, GATEWAY_GROUP, r->kind, r->ns,
							       r->name) != NULL
			     : !strcmp(r->kind, "XListenerSet")
				 ? ig_config_find_listener_set(c, "gateway.networking.x-k8s.io",
							       r->kind, r->ns, r->name) != NULL
				 : ig_config_find_pool(c, r->ns, r->name) != NULL;
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
	if (ig_config_find_pool_in(&s->box->cfg, pool_group, m->ns, pool_name))
		return;
	const struct ig_pool *p = ig_config_find_pool(&s->box->cfg, m->ns, pool_name);
	if (!p)
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
		    m->pool_name
			? ig_config_find_pool_in(c, m->pool_group, m->meta.ns, m->pool_name)
			: NULL;
		if (!p && m->pool_name)
			p = ig_config_find_pool(c, m->meta.ns, m->pool_name);
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

/* ---- BackendTLSPolicy ------------------------------------------------------------ */

/* At least one whole PEM certificate block. */
static bool holds_pem_cert(const char *text)
{
	const char *b = strstr(text, "-----BEGIN CERTIFICATE-----");
	return b && strstr(b, "-----END CERTIFICATE-----");
}

/* The ca.crt of ConfigMap ns/name when it holds a PEM certificate that
 * OpenSSL reads (a block of garbage between the markers would otherwise
 * fail every listener or policy that joins it with other CAs), else
 * NULL with why saying what is wrong (shared by BackendTLSPolicy and
 * client certificate validation). */
static const struct ig_secret_item *configmap_ca(struct session *s, const char *ns,
						 const char *name, char *why, size_t cap)
{
	const struct ig_configmap *cm = ig_config_find_configmap(&s->box->cfg, ns, name);
	const struct ig_secret_item *it = cm ? ig_configmap_get(cm, "ca.crt") : NULL;
	char bad[200];
	if (!cm)
		snprintf(why, cap, "ConfigMap \"%s/%s\" not found", ns, name);
	else if (!it)
		snprintf(why, cap, "ConfigMap \"%s/%s\" has no ca.crt", ns, name);
	else if (!holds_pem_cert((const char *)it->bytes))
		snprintf(why, cap, "ConfigMap \"%s/%s\" ca.crt holds no PEM certificate", ns, name);
	else if (ig_tls_check_ca((const char *)it->bytes, it->len, bad, sizeof bad) < 0)
		snprintf(why, cap, "ConfigMap \"%s/%s\" ca.crt: %s", ns, name, bad);
	else
		return it;
	return NULL;
}

/* The n texts joined, a newline between two, NUL-terminated; *len without
 * the NUL. */
static char *join_pems(struct session *s, const struct ig_secret_item *const *pems, size_t n,
		       size_t *len)
{
	size_t total = 1;
	for (size_t i = 0; i < n; i++)
		total += pems[i]->len + 1;
	char *out = ld_alloc(s, total);
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[(*len)++] = '\n';
		memcpy(out + *len, pems[i]->bytes, pems[i]->len);
		*len += pems[i]->len;
	}
	out[*len] = '\0';
	return out;
}

/* NULL when caCertificateRefs[i] gives a usable CA (its text in *pem),
 * else the reason, with *why saying what is wrong. */
static const char *check_ca_ref(struct session *s, const struct ig_backend_tls_policy *p,
				const struct ig_tls_policy_ca_ref *r,
				const struct ig_secret_item **pem, char *why, size_t cap)
{
	*pem = NULL;
	if (!r->group || !r->kind || !r->name) {
		snprintf(why, cap, "incomplete reference");
		return "InvalidKind";
	}
	if (*r->group || strcmp(r->kind, "ConfigMap")) {
		snprintf(why, cap, "kind %s%s%s is not supported: only ConfigMap", r->group,
			 *r->group ? "/" : "", r->kind);
		return "InvalidKind";
	}
	*pem = configmap_ca(s, p->meta.ns, r->name, why, cap);
	return *pem ? NULL : "InvalidCACertificateRef";
}

/* refs_ok, refs_reason/refs_message (the first invalid ref's) and ca_pem
 * (the valid refs' ca.crt texts, a newline between two). Returns how many
 * refs are valid. */
static size_t resolve_ca_refs(struct session *s, struct ig_backend_tls_policy *p)
{
	const struct ig_secret_item **pems = ld_alloc(s, (p->nca_refs + 1) * sizeof(*pems));
	size_t nvalid = 0;
	p->refs_ok = true;
	for (size_t i = 0; i < p->nca_refs; i++) {
		char why[600];
		const char *reason =
		    check_ca_ref(s, p, &p->ca_refs[i], &pems[nvalid], why, sizeof why);
		if (!reason) {
			nvalid++;
			continue;
		}
		if (p->refs_ok) {
			char msg[700];
			snprintf(msg, sizeof msg, "caCertificateRefs[%zu]: %s", i, why);
			p->refs_reason = reason;
			p->refs_message = ld_strdup(s, msg);
		}
		p->refs_ok = false;
	}
	if (!nvalid)
		return 0;
	p->ca_pem = join_pems(s, pems, nvalid, &p->ca_len);
	return nvalid;
}

/* Accepted, or Invalid for what infergate does not implement, or
 * NoValidCACertificate; the references are checked in every case, so
 * that refs_* are there for the status even of an Invalid policy. */
static void validate_tls_policy(struct session *s, struct ig_backend_tls_policy *p)
{
	char msg[600];
	size_t nvalid = resolve_ca_refs(s, p);
	p->state = IG_TLSP_ACCEPTED;
	if (p->noptions > 0) {
		snprintf(msg, sizeof msg, "options are not supported by infergate: %s",
			 p->options[0]);
		p->state = IG_TLSP_INVALID;
	} else if (p->well_known && strcmp(p->well_known, "System")) {
		snprintf(msg, sizeof msg,
			 "wellKnownCACertificates \"%s\" is not supported: only System",
			 p->well_known);
		p->state = IG_TLSP_INVALID;
	} else if (p->nca_refs > 0 && nvalid == 0) {
		snprintf(msg, sizeof msg, "no caCertificateRef is valid: %s", p->refs_message);
		p->state = IG_TLSP_NO_VALID_CA;
	}
	if (p->state != IG_TLSP_ACCEPTED)
		p->message = ld_strdup(s, msg);
}

static bool same_tls_target(const struct ig_tls_policy_target *a,
			    const struct ig_tls_policy_target *b)
{
	const char *sa = a->section && *a->section ? a->section : NULL;
	const char *sb = b->section && *b->section ? b->section : NULL;
	return a->group && b->group && a->kind && b->kind && a->name && b->name &&
	       !strcmp(a->group, b->group) && !strcmp(a->kind, b->kind) &&
	       !strcmp(a->name, b->name) && (sa ? sb && !strcmp(sa, sb) : !sb);
}

static const struct ig_tls_policy_target *shared_tls_target(const struct ig_backend_tls_policy *a,
							    const struct ig_backend_tls_policy *b)
{
	if (strcmp(a->meta.ns, b->meta.ns))
		return NULL;
	for (size_t i = 0; i < a->ntargets; i++)
		for (size_t j = 0; j < b->ntargets; j++)
			if (same_tls_target(&a->targets[i], &b->targets[j]))
				return &a->targets[i];
	return NULL;
}

/* GEP-713's precedence: the older by creationTimestamp (one without comes
 * after one with), then the first by namespace/name. */
static int tls_policy_cmp(const void *pa, const void *pb)
{
	const struct ig_backend_tls_policy *a = *(const struct ig_backend_tls_policy *const *)pa;
	const struct ig_backend_tls_policy *b = *(const struct ig_backend_tls_policy *const *)pb;
	int c = ig_meta_cmp_age(&a->meta, &b->meta);
	if (c)
		return c;
	c = strcmp(a->meta.ns, b->meta.ns);
	if (c)
		return c;
	return strcmp(a->meta.name ? a->meta.name : "", b->meta.name ? b->meta.name : "");
}

static bool tls_policy_contends(const struct ig_backend_tls_policy *p)
{
	return p->state == IG_TLSP_ACCEPTED || p->state == IG_TLSP_NO_VALID_CA;
}

/* Conflicts: only policies that validation accepted contend (Accepted, or
 * NoValidCACertificate, which is about references, not the policy); an
 * Invalid one applies to nothing and takes nothing from the others. In
 * order of precedence, a contender that shares a target (same Service,
 * same sectionName or none on both) with a policy that won before it is
 * Conflicted, as a whole: a policy applies entirely or not at all. Losers
 * do not block later ones, so every target goes to its best policy that
 * won. */
static void resolve_tls_conflicts(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	if (c->ntls_policies < 2)
		return;
	struct ig_backend_tls_policy **order = ld_alloc(s, c->ntls_policies * sizeof(*order));
	for (size_t i = 0; i < c->ntls_policies; i++)
		order[i] = &c->tls_policies[i];
	qsort(order, c->ntls_policies, sizeof(*order), tls_policy_cmp);
	for (size_t i = 0; i < c->ntls_policies; i++) {
		struct ig_backend_tls_policy *p = order[i];
		if (!tls_policy_contends(p))
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct ig_backend_tls_policy *w = order[j];
			const struct ig_tls_policy_target *t;
			if (!tls_policy_contends(w) || !(t = shared_tls_target(p, w)))
				continue;
			char msg[900];
			snprintf(msg, sizeof msg,
				 "BackendTLSPolicy \"%s/%s\" (%s:%d) takes precedence for %s "
				 "\"%s\"%s%s: it is older, or first by name",
				 w->meta.ns, w->meta.name, w->meta.file, w->meta.line, t->kind,
				 t->name, t->section ? " port " : "", t->section ? t->section : "");
			p->state = IG_TLSP_CONFLICTED;
			p->message = ld_strdup(s, msg);
			break;
		}
	}
}

static const char *tls_state_reason(const struct ig_backend_tls_policy *p)
{
	switch (p->state) {
	case IG_TLSP_CONFLICTED:
		return "Conflicted";
	case IG_TLSP_INVALID:
		return "Invalid";
	case IG_TLSP_NO_VALID_CA:
		return "NoValidCACertificate";
	case IG_TLSP_ACCEPTED:
		break;
	}
	return p->refs_reason ? p->refs_reason : "";
}

/* Why a policy is not usable: "Reason: message". */
static void tls_policy_why(const struct ig_backend_tls_policy *p, char *out, size_t cap)
{
	const char *msg = p->state != IG_TLSP_ACCEPTED ? p->message : p->refs_message;
	snprintf(out, cap, "%s: %s", tls_state_reason(p), msg ? msg : "");
}

static void resolve_tls_policies(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->ntls_policies; i++)
		validate_tls_policy(s, &c->tls_policies[i]);
	resolve_tls_conflicts(s);
	for (size_t i = 0; i < c->ntls_policies; i++) {
		const struct ig_backend_tls_policy *p = &c->tls_policies[i];
		if (ig_tls_policy_usable(p))
			continue;
		char why[1200];
		tls_policy_why(p, why, sizeof why);
		s->file = p->meta.file;
		ld_warn(s, p->meta.line, NULL, NULL,
			"BackendTLSPolicy \"%s/%s\" is not used (%s)%s", p->meta.ns,
			p->meta.name ? p->meta.name : "", why,
			p->state == IG_TLSP_CONFLICTED
			    ? ": Service ports no other policy applies to are refused as backends"
			    : ": the Service ports it applies to are refused as backends");
	}
}

/* ---- backendRefs ------------------------------------------------------------------- */

static bool is_pool_group(const char *g)
{
	return !strcmp(g, IG_POOL_GROUP_V1) || !strcmp(g, IG_POOL_GROUP_ALPHA);
}

static void resolve_pool(struct session *s, const char *path, struct ig_backend_ref *b)
{
	const struct ig_pool *p = ig_config_find_pool_in(&s->box->cfg, b->group, b->ns, b->name);
	if (p) {
		b->pool = p;
		b->status = IG_REF_OK;
		return;
	}
	p = ig_config_find_pool(&s->box->cfg, b->ns, b->name);
	if (!p) {
		ld_warn(s, b->line, path, NULL,
			"InferencePool \"%s/%s\" not found in the configuration", b->ns, b->name);
		return;
	}
	ld_warn(s, b->line, path, "group",
		"InferencePool \"%s/%s\" is %s: name it with group %s (BackendNotFound)", b->ns,
		b->name, p->meta.api_version, p->group);
}

static bool app_protocol_ok(const char *ap)
{
	/* kubernetes.io/ws: WebSocket over HTTP/1.1 (GEP-1911); a handshake
	 * reaches any HTTP/1.1 backend, so this port is served like http. */
	return !ap || !strcmp(ap, "http") || !strcmp(ap, "HTTP") ||
	       !strcmp(ap, "kubernetes.io/h2c") || !strcmp(ap, "kubernetes.io/ws");
}

/* The appProtocols that say TLS: reached only as a BackendTLSPolicy says. */
static bool app_protocol_tls(const char *ap)
{
	return ap &&
	       (!strcmp(ap, "https") || !strcmp(ap, "HTTPS") || !strcmp(ap, "kubernetes.io/wss"));
}

/* How well a policy fits a Service port: one naming the port beats one
 * for the whole Service (the more specific target wins, as GEP-713
 * has it); then the winner of its target, then an Invalid policy (which
 * still keeps the port from clear text), then a Conflicted one. 0: the
 * policy does not target the port. */
static int tls_policy_fit(const struct ig_backend_tls_policy *p, const struct ig_service *svc,
			  const struct ig_service_port *sp)
{
	int best = 0;
	if (strcmp(p->meta.ns, svc->meta.ns))
		return 0;
	for (size_t k = 0; k < p->ntargets; k++) {
		const struct ig_tls_policy_target *t = &p->targets[k];
		if (!t->group || *t->group || !t->kind || strcmp(t->kind, "Service") || !t->name ||
		    strcmp(t->name, svc->meta.name))
			continue;
		int fit;
		if (!t->section || !*t->section)
			fit = 1;
		else if (sp->name && !strcmp(t->section, sp->name))
			fit = 5;
		else
			continue;
		fit += p->state == IG_TLSP_CONFLICTED ? 0 : p->state == IG_TLSP_INVALID ? 1 : 3;
		best = fit > best ? fit : best;
	}
	return best;
}

/* The BackendTLSPolicy that applies to a port of a Service (see
 * tls_policy_fit), if any; the first in load order among equals. */
static const struct ig_backend_tls_policy *tls_policy_of(const struct ig_config *c,
							 const struct ig_service *svc,
							 const struct ig_service_port *sp)
{
	const struct ig_backend_tls_policy *best = NULL;
	int best_fit = 0;
	for (size_t i = 0; i < c->ntls_policies; i++) {
		int fit = tls_policy_fit(&c->tls_policies[i], svc, sp);
		if (fit > best_fit) {
			best = &c->tls_policies[i];
			best_fit = fit;
		}
	}
	return best;
}

/* A port that a policy applies to is reached over TLS, or not at all:
 * never in clear text. */
static void resolve_tls_port(struct session *s, const char *path, struct ig_backend_ref *b,
			     const struct ig_service *svc, const struct ig_service_port *sp,
			     const struct ig_backend_tls_policy *tp)
{
	const char *ap = sp->app_protocol;
	if (!ig_tls_policy_usable(tp)) {
		char why[1200];
		tls_policy_why(tp, why, sizeof why);
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, NULL,
			"port %d of Service \"%s/%s\" is a target of BackendTLSPolicy \"%s\" "
			"(UnsupportedProtocol): the policy is not used (%s), and what is to be "
			"encrypted is not sent in clear text",
			b->port, b->ns, b->name, tp->meta.name ? tp->meta.name : "", why);
		return;
	}
	if (ap && !strcmp(ap, "kubernetes.io/h2c")) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(
		    s, b->line, path, "port",
		    "port %d of Service \"%s/%s\" has appProtocol kubernetes.io/h2c "
		    "(UnsupportedProtocol): h2c is clear text; BackendTLSPolicy \"%s\" asks for "
		    "TLS",
		    b->port, b->ns, b->name, tp->meta.name);
		return;
	}
	if (!app_protocol_ok(ap) && !app_protocol_tls(ap)) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, "port",
			"port %d of Service \"%s/%s\" has appProtocol %s (UnsupportedProtocol): "
			"only http, https, kubernetes.io/ws and kubernetes.io/wss with a "
			"BackendTLSPolicy",
			b->port, b->ns, b->name, ap);
		return;
	}
	b->service = svc;
	b->tls = tp;
	b->status = IG_REF_OK;
}

static void resolve_service(struct session *s, const char *path, bool grpc,
			    struct ig_backend_ref *b)
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
	const char *ap = sp->app_protocol;
	/* A GRPCRoute's backend speaks HTTP/2: h2c, or h2 over TLS when a
	 * BackendTLSPolicy targets the port. */
	bool grpc_ok = !ap || (tp ? !strcmp(ap, "https") || !strcmp(ap, "HTTPS")
				  : !strcmp(ap, "kubernetes.io/h2c"));
	if (grpc && !grpc_ok) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, "port",
			"port %d of Service \"%s/%s\" has appProtocol %s (UnsupportedProtocol): a "
			"GRPCRoute's backend speaks HTTP/2, so its appProtocol is none, "
			"kubernetes.io/h2c, or https with a BackendTLSPolicy",
			b->port, b->ns, b->name, ap);
		return;
	}
	if (tp) {
		resolve_tls_port(s, path, b, svc, sp, tp);
		b->h2c = grpc && b->status == IG_REF_OK;
		return;
	}
	if (app_protocol_tls(sp->app_protocol)) {
		b->status = IG_REF_UNSUPPORTED_PROTOCOL;
		ld_warn(s, b->line, path, "port",
			"port %d of Service \"%s/%s\" has appProtocol %s (UnsupportedProtocol): "
			"it needs a BackendTLSPolicy, which says how to reach it over TLS",
			b->port, b->ns, b->name, sp->app_protocol);
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
	b->h2c = grpc || (ap && !strcmp(ap, "kubernetes.io/h2c"));
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
	if (rt->grpc && pool) {
		/* A pool's requests are JSON bodies the picker reads. */
		b->status = IG_REF_INVALID_KIND;
		ld_warn(s, b->line, path, "kind",
			"a GRPCRoute cannot route to an InferencePool (InvalidKind): use an "
			"HTTPRoute");
		return;
	}
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
	if (!ig_config_reference_allowed(&s->box->cfg, GATEWAY_GROUP, rt->meta.kind, rt->meta.ns,
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
		resolve_service(s, path, rt->grpc, b);
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
		struct ig_backend_ref *b = fs[i].u.mirror.backend;
		resolve_backend(s, rt, path, b);
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

/* reason: the Gateway API's name for an unusable Secret here
 * (InvalidCertificateRef for a listener's, InvalidClientCertificateRef for
 * the Gateway's client certificate). */
/* The object whose reference this is: a Gateway, or a ListenerSet (its
 * API group, for ReferenceGrants' from). */
struct owner {
	const char *group;
	const struct ig_meta *meta;
};

static struct owner gw_owner(const struct ig_gateway *gw)
{
	return (struct owner){GATEWAY_GROUP, &gw->meta};
}

static void resolve_cert(struct session *s, struct owner o, const char *path, struct ig_cert_ref *c,
			 const char *reason)
{
	if (!c->name)
		return;
	if (*c->group || strcmp(c->kind, "Secret") != 0) {
		c->status = IG_REF_INVALID_KIND;
		ld_warn(s, c->line, path, "kind",
			"certificates must be core Secrets, not %s%s%s (%s)", c->group,
			*c->group ? "/" : "", c->kind, reason);
		return;
	}
	if (!ig_config_reference_allowed(&s->box->cfg, o.group, o.meta->kind, o.meta->ns, "",
					 "Secret", c->ns, c->name)) {
		c->status = IG_REF_NOT_PERMITTED;
		bool gw = !strcmp(o.meta->kind, "Gateway");
		ld_warn(s, c->line, path, "namespace",
			"reference to Secret \"%s/%s\" from namespace %s needs a ReferenceGrant in "
			"namespace %s%s%s%s (RefNotPermitted)",
			c->ns, c->name, o.meta->ns, c->ns, gw ? "" : " from kind ",
			gw ? "" : o.meta->kind,
			gw ? "" : " (a Gateway's grant does not extend to it)");
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
		char msg[600];
		snprintf(msg, sizeof msg, "Secret \"%s/%s\" %s", c->ns, c->name, why);
		c->status = IG_REF_INVALID;
		c->why = ld_strdup(s, msg);
		ld_warn(s, c->line, path, NULL, "Secret \"%s/%s\" %s (%s)", c->ns, c->name, why,
			reason);
		return;
	}
	c->status = IG_REF_OK;
}

/* The listener's resolved certificates as OpenSSL loads them into one
 * hostname's set (http/tls.c): a Secret OpenSSL refuses (PEM markers
 * around garbage, a key of another certificate, a key below the security
 * level, a second certificate of a key type) is InvalidCertificateRef
 * ("the data within that resource is malformed", Gateway API) for this
 * listener alone, instead of failing every listener of its port when the
 * port's set is built. A warning: the API server takes such a Secret. */
static void check_pairs(struct session *s, const char *path, struct ig_listener *li)
{
	struct ig_tls_cert *pairs = ld_alloc(s, (li->tls.ncerts + 1) * sizeof *pairs);
	size_t *idx = ld_alloc(s, (li->tls.ncerts + 1) * sizeof *idx);
	for (;;) {
		size_t n = 0;
		for (size_t k = 0; k < li->tls.ncerts; k++) {
			const struct ig_cert_ref *c = &li->tls.certs[k];
			/* An entry the loader refused (no name) resolved nothing. */
			if (c->status != IG_REF_OK || !c->secret)
				continue;
			const struct ig_secret_item *crt = ig_secret_get(c->secret, "tls.crt");
			const struct ig_secret_item *key = ig_secret_get(c->secret, "tls.key");
			if (!crt || !key)
				continue;
			pairs[n] = (struct ig_tls_cert){.cert_pem = (const char *)crt->bytes,
							.cert_len = crt->len,
							.key_pem = (const char *)key->bytes,
							.key_len = key->len};
			idx[n++] = k;
		}
		char why[200], msg[600], it[LD_PATH];
		long bad = ig_tls_check_pairs(pairs, n, why, sizeof why);
		if (bad < 0 || (size_t)bad >= n)
			return;
		struct ig_cert_ref *c = &li->tls.certs[idx[bad]];
		snprintf(msg, sizeof msg, "Secret \"%s/%s\": %s", c->ns, c->name, why);
		c->status = IG_REF_INVALID;
		c->why = ld_strdup(s, msg);
		ld_item(it, path, "tls.certificateRefs", idx[bad]);
		ld_warn(s, c->line, it, NULL, "%s (InvalidCertificateRef)", msg);
	}
}

/* NULL when a caCertificateRefs entry of client certificate validation
 * gives a usable CA (a core ConfigMap reachable from the Gateway, with a
 * PEM certificate in ca.crt), else the listener's ResolvedRefs reason. */
static const char *check_frontend_ca(struct session *s, struct owner o, const struct ig_ca_ref *r,
				     const struct ig_secret_item **pem, char *why, size_t cap)
{
	*pem = NULL;
	if (!r->kind || !r->name) {
		snprintf(why, cap, "incomplete reference");
		return "InvalidCACertificateKind";
	}
	if (*r->group || strcmp(r->kind, "ConfigMap")) {
		snprintf(why, cap, "kind %s%s%s is not supported: only ConfigMap", r->group,
			 *r->group ? "/" : "", r->kind);
		return "InvalidCACertificateKind";
	}
	if (!ig_config_reference_allowed(&s->box->cfg, o.group, o.meta->kind, o.meta->ns, "",
					 "ConfigMap", r->ns, r->name)) {
		snprintf(why, cap, "ConfigMap \"%s/%s\" needs a ReferenceGrant in namespace %s",
			 r->ns, r->name, r->ns);
		return "RefNotPermitted";
	}
	*pem = configmap_ca(s, r->ns, r->name, why, cap);
	return *pem ? NULL : "InvalidCACertificateRef";
}

static void resolve_frontend(struct session *s, struct owner o, const char *path,
			     struct ig_frontend_validation *v)
{
	if (!v->set)
		return;
	const struct ig_secret_item **pems = ld_alloc(s, (v->nrefs + 1) * sizeof(*pems));
	for (size_t i = 0; i < v->nrefs; i++) {
		char why[600];
		const char *reason =
		    check_frontend_ca(s, o, &v->refs[i], &pems[v->nvalid], why, sizeof why);
		if (!reason) {
			v->nvalid++;
			continue;
		}
		char it[LD_PATH];
		ld_item(it, path, "caCertificateRefs", i);
		ld_warn(s, v->refs[i].line, it, NULL, "%s (%s)", why, reason);
		if (!v->refs_reason) {
			char msg[700];
			snprintf(msg, sizeof msg, "caCertificateRefs[%zu]: %s", i, why);
			v->refs_reason = reason;
			v->refs_message = ld_strdup(s, msg);
		}
	}
	if (v->nvalid)
		v->ca_pem = join_pems(s, pems, v->nvalid, &v->ca_len);
	if (!v->nvalid && v->nrefs)
		ld_warn(s, v->refs[0].line, path, NULL,
			"no caCertificateRef is valid: the HTTPS listeners it covers are not "
			"served (NoValidCACertificate)");
}

/* A Gateway's or ListenerSet's listeners: client certificate validation
 * and certificateRefs, resolved from the owner's namespace. */
static void resolve_listeners(struct session *s, struct owner o, struct ig_listener *ls, size_t n)
{
	char path[LD_PATH], it[LD_PATH];
	for (size_t l = 0; l < n; l++) {
		struct ig_listener *li = &ls[l];
		size_t ok = 0;
		ld_item(path, "spec", "listeners", l);
		if (li->tls.frontend.set) {
			ld_join(it, path, "tls.frontendValidation");
			resolve_frontend(s, o, it, &li->tls.frontend);
		}
		for (size_t k = 0; k < li->tls.ncerts; k++) {
			ld_item(it, path, "tls.certificateRefs", k);
			resolve_cert(s, o, it, &li->tls.certs[k], "InvalidCertificateRef");
		}
		if (li->protocol && !strcmp(li->protocol, "HTTPS"))
			check_pairs(s, path, li);
		for (size_t k = 0; k < li->tls.ncerts; k++)
			ok += li->tls.certs[k].status == IG_REF_OK;
		if (li->protocol && !strcmp(li->protocol, "HTTPS") && li->tls.set &&
		    li->tls.ncerts && !ok)
			ld_warn(s, li->tls.certs[0].line, path, NULL,
				"HTTPS listener \"%s\" has no usable certificate: it "
				"cannot be served",
				li->name ? li->name : "");
	}
}

static void resolve_gateways(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	char path[LD_PATH], it[LD_PATH];
	for (size_t g = 0; g < c->ngateways; g++) {
		struct ig_gateway *gw = &c->gateways[g];
		s->file = gw->meta.file;
		resolve_frontend(s, gw_owner(gw), "spec.tls.frontend.default.validation",
				 &gw->frontend);
		if (gw->has_backend_client)
			resolve_cert(s, gw_owner(gw),
				     gw->backend_client_v1_2
					 ? "spec.backendTLS.clientCertificateRef"
					 : "spec.tls.backend.clientCertificateRef",
				     &gw->backend_client, "InvalidClientCertificateRef");
		for (size_t p = 0; p < gw->nfrontend_ports; p++) {
			ld_item(it, "spec.tls.frontend", "perPort", p);
			ld_join(path, it, "tls.validation");
			resolve_frontend(s, gw_owner(gw), path, &gw->frontend_ports[p].v);
		}
		resolve_listeners(s, gw_owner(gw), gw->listeners, gw->nlisteners);
	}
}

/* ---- ListenerSets ------------------------------------------------------------------ */

/* How l conflicts with the listeners already merged, if it does. */
static enum ig_listener_conflict conflict_with(const struct ig_listener *const *merged, size_t n,
					       const struct ig_listener *l)
{
	for (size_t i = 0; i < n; i++) {
		const struct ig_listener *o = merged[i];
		if (o->port != l->port || !o->protocol || !l->protocol)
			continue;
		if (strcmp(o->protocol, l->protocol))
			return IG_CONFLICT_PROTOCOL;
		if (ld_same_hostname(o->hostname, l->hostname))
			return IG_CONFLICT_HOSTNAME;
	}
	return IG_CONFLICT_NONE;
}

bool ig_listener_set_listener_valid(const struct ig_gateway *gw, const struct ig_listener *l)
{
	if (!l->served || l->port == 0 || l->conflict != IG_CONFLICT_NONE)
		return false;
	if (strcmp(l->protocol, "HTTPS"))
		return true;
	const struct ig_frontend_validation *fv = ig_listener_frontend(gw, l);
	if (fv && !fv->nvalid)
		return false;
	for (size_t k = 0; k < l->tls.ncerts; k++)
		if (l->tls.certs[k].status == IG_REF_OK)
			return true;
	return false;
}

/* Each Gateway's merged listeners: its own, then, for each ListenerSet it
 * admits in precedence order, the listeners that conflict with none
 * before them. A ListenerSet none of whose listeners can be served is not
 * accepted, and its listeners are left out. */
static void merge_listener_sets(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	size_t nls = c->nlistener_sets;
	struct ig_listener_set **order = ld_alloc(s, (nls + 1) * sizeof(*order));
	for (size_t i = 0; i < nls; i++) {
		size_t at = i;
		while (at > 0 &&
		       ig_meta_precedence(&c->listener_sets[i].meta, &order[at - 1]->meta) < 0) {
			order[at] = order[at - 1];
			at--;
		}
		order[at] = &c->listener_sets[i];
	}
	for (size_t g = 0; g < c->ngateways; g++) {
		struct ig_gateway *gw = &c->gateways[g];
		size_t cap = gw->nlisteners;
		for (size_t i = 0; i < nls; i++)
			if (order[i]->gw == gw && order[i]->state == IG_LSET_ACCEPTED)
				cap += order[i]->nlisteners;
		const struct ig_listener **m = ld_alloc(s, (cap + 1) * sizeof(*m));
		size_t n = 0;
		for (size_t l = 0; l < gw->nlisteners; l++)
			m[n++] = &gw->listeners[l];
		for (size_t i = 0; i < nls; i++) {
			struct ig_listener_set *ls = order[i];
			if (ls->gw != gw || ls->state != IG_LSET_ACCEPTED)
				continue;
			size_t first = n;
			for (size_t l = 0; l < ls->nlisteners; l++) {
				struct ig_listener *li = &ls->listeners[l];
				if (li->port == 0)
					continue;
				li->conflict = conflict_with(m, n, li);
				if (li->conflict == IG_CONFLICT_NONE)
					m[n++] = li;
			}
			bool any = false;
			for (size_t l = 0; l < ls->nlisteners; l++)
				any |= ig_listener_set_listener_valid(gw, &ls->listeners[l]);
			if (!any) {
				ls->state = IG_LSET_LISTENERS_NOT_VALID;
				n = first; /* nothing of it is served */
				s->file = ls->meta.file;
				ld_warn(s, ls->meta.line, "spec", "listeners",
					"no listener of %s \"%s/%s\" can be served (conflicts, "
					"protocols or certificates): it is not accepted "
					"(ListenersNotValid)",
					ls->meta.kind, ls->meta.ns, ls->meta.name);
			}
		}
		gw->merged = m;
		gw->nmerged = n;
	}
}

/* The first listener of another Gateway (not refused for its parameters)
 * that l cannot be told apart from: the same port, protocol and hostname,
 * or neither with a hostname. */
static const struct ig_listener *same_listener_elsewhere(const struct ig_config *c,
							 const struct ig_gateway *gw,
							 const struct ig_listener *l,
							 const struct ig_gateway **where)
{
	for (size_t g = 0; g < c->ngateways; g++) {
		const struct ig_gateway *o = &c->gateways[g];
		if (o == gw || o->params_kind)
			continue;
		for (size_t i = 0; i < ig_gateway_nlisteners(o); i++) {
			const struct ig_listener *ol = ig_gateway_listener(o, i);
			if (ol->served && ol->port == l->port &&
			    !strcmp(ol->protocol, l->protocol) &&
			    ld_same_hostname(ol->hostname, l->hostname)) {
				*where = o;
				return ol;
			}
		}
	}
	return NULL;
}

/* Gateways that share a port share its sockets, and their listeners are
 * told apart as one Gateway's are (Gateway API §3.2): by hostname, for
 * the same protocol. Two listeners of different Gateways with the same
 * port, protocol and hostname would each claim the same requests; the API
 * forbids picking a winner among conflicted listeners, so both are marked
 * (HostnameConflict) and neither is served. Within one Gateway the CRD
 * makes them unique, and a ListenerSet's give way in the merged list. */
static void mark_conflicts_across_gateways(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t g = 0; g < c->ngateways; g++) {
		const struct ig_gateway *gw = &c->gateways[g];
		if (gw->params_kind)
			continue; /* not accepted, never served */
		for (size_t i = 0; i < ig_gateway_nlisteners(gw); i++) {
			struct ig_listener *l = (struct ig_listener *)ig_gateway_listener(gw, i);
			const struct ig_gateway *where;
			const struct ig_listener *o;
			if (!l->served || !l->port ||
			    !(o = same_listener_elsewhere(c, gw, l, &where)))
				continue;
			l->across = IG_CONFLICT_HOSTNAME;
			const struct ig_meta *owner = l->set ? &l->set->meta : &gw->meta;
			const struct ig_listener *first =
			    l->set ? l->set->listeners : gw->listeners;
			char path[LD_PATH];
			ld_item(path, "spec", "listeners", (size_t)(l - first));
			s->file = owner->file;
			ld_warn(
			    s, l->line, path, NULL,
			    "port %d, protocol %s and %s%s are also those of listener \"%s\" of "
			    "Gateway \"%s/%s\" (Conflicted=True, HostnameConflict): neither is "
			    "served",
			    l->port, l->protocol, l->hostname ? "hostname " : "no hostname",
			    l->hostname ? l->hostname : "", o->name, where->meta.ns,
			    where->meta.name);
		}
	}
}

static void resolve_listener_sets(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->nlistener_sets; i++) {
		struct ig_listener_set *ls = &c->listener_sets[i];
		for (size_t l = 0; l < ls->nlisteners; l++)
			ls->listeners[l].set = ls;
		s->file = ls->meta.file;
		resolve_listeners(s, (struct owner){ls->group, &ls->meta}, ls->listeners,
				  ls->nlisteners);
		ls->state = IG_LSET_NO_PARENT;
		if (!ls->parent_name || strcmp(ls->parent_group, GATEWAY_GROUP) ||
		    strcmp(ls->parent_kind, "Gateway"))
			continue;
		ls->gw = ig_config_find_gateway(c, ls->parent_ns, ls->parent_name);
		if (!ls->gw)
			continue;
		const struct ig_gateway *gw = ls->gw;
		if (!ig_config_namespace_admits(c, gw->listeners_from, gw->has_listeners_selector,
						&gw->listeners_selector, ls->meta.ns,
						gw->meta.ns)) {
			ls->state = IG_LSET_NOT_ALLOWED;
			ld_warn(
			    s, ls->meta.line, "spec", "parentRef",
			    "Gateway \"%s/%s\" does not admit %ss from namespace %s "
			    "(spec.allowedListeners): its listeners are not served (NotAllowed)",
			    ls->gw->meta.ns, ls->gw->meta.name, ls->meta.kind, ls->meta.ns);
			continue;
		}
		ls->state = IG_LSET_ACCEPTED; /* until merge_listener_sets finds none valid */
		for (size_t l = 0; l < ls->nlisteners; l++)
			if (ls->listeners[l].port == 0) {
				char path[LD_PATH];
				ld_item(path, "spec", "listeners", l);
				ld_warn(s, ls->meta.line, path, "port",
					"no port: infergate assigns none (UnsupportedPort), the "
					"listener is not served");
			}
	}
	merge_listener_sets(s);
	mark_conflicts_across_gateways(s);
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
	resolve_tls_policies(s);
	resolve_routes(s);
	resolve_gateways(s);
	resolve_listener_sets(s);
}
