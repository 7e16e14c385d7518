/* With --kube: the status of the objects the gateway serves, from the
 * configuration it just published, in the Gateway API's and GIE's terms,
 * handed to the writer of kube/ (which writes only what changed):
 * - Gateway: Accepted (ListenersNotValid when listeners are not accepted
 *   or conflict with other Gateways'), Programmed, ResolvedRefs (a backend
 *   client certificate), InsecureFrontendValidationMode (while client
 *   certificate validation is AllowInsecureFallback); per listener supportedKinds,
 *   attachedRoutes and Accepted / Programmed / ResolvedRefs / Conflicted
 *   (ProtocolConflict: HTTP and HTTPS on one port; HostnameConflict: the
 *   same port, protocol and hostname as another Gateway's listener);
 *   addresses (the --bind address, else $POD_IP); attachedListenerSets
 *   (and for XListenerSets the v1.4 condition AttachedListenerSets);
 * - ListenerSet / XListenerSet whose parent is a Gateway of ours: Accepted
 *   and Programmed (NotAllowed, ListenersNotValid), and per listener what
 *   a Gateway's listener has, Conflicted with HostnameConflict or
 *   ProtocolConflict where an earlier listener of the merged list wins;
 * - HTTPRoute: one parents[] entry per parentRef to a Gateway of ours or a
 *   ListenerSet of one, with
 *   our controllerName, Accepted (NoMatchingParent, NotAllowedByListeners,
 *   NoMatchingListenerHostname)
 *   and ResolvedRefs (BackendNotFound, InvalidKind, RefNotPermitted,
 *   UnsupportedProtocol; InvalidKind too for an ExtensionRef filter, which
 *   never resolves);
 * - InferencePool: one parents[] entry (v1alpha2: parent[]) per Gateway of
 *   ours that an accepted HTTPRoute reaches it through, with our
 *   controllerName (v1 only: v1alpha2 has no such field), Accepted and
 *   ResolvedRefs (InvalidExtensionRef: a v1 pool's endpointPickerRef
 *   names a Service that does not exist or has no address; a pool with no
 *   endpointPickerRef is served by the built-in picker);
 * - BackendTLSPolicy: one ancestors[] entry per Gateway of ours that an
 *   HTTPRoute attached to it reaches a targeted Service through, with our
 *   controllerName, Accepted (Conflicted, Invalid, NoValidCACertificate)
 *   and ResolvedRefs (InvalidKind, InvalidCACertificateRef). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/addresses.h"
#include "gateway/attach.h"
#include "gateway/route.h"
#include "gateway/runtime.h"
#include "gateway/snapshot.h"
#include "kube/kube.h"

#define GW_GROUP "gateway.networking.k8s.io"

struct ctx {
	struct ig_gateway_rt *G;
	const struct ig_snapshot *s;
	const struct ig_config *cfg;
	char now[32];
	char own[64]; /* the gateway's own address (ig_gw_own_address) */
};

static json_t *cond(struct ctx *c, const char *type, bool ok, const char *reason, const char *msg,
		    long long gen)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "type", type, "status", ok ? "True" : "False",
			 "reason", reason, "message", msg, "observedGeneration", (json_int_t)gen,
			 "lastTransitionTime", c->now);
}

static long long generation(struct ctx *c, const char *kind, const char *group,
			    const struct ig_meta *m)
{
	return ig_kube_generation(c->G->kube, kind, group, m->ns, m->name);
}

static json_t *listener_status(struct ctx *c, const struct ig_gateway *gw,
			       const struct ig_listener *l, long long gen, bool *prog)
{
	/* supportedKinds: the kinds the listener takes, those of
	 * allowedRoutes.kinds that infergate has when it names any. */
	json_t *kinds = json_array();
	static const char *const ours[] = {"HTTPRoute", "GRPCRoute"};
	for (size_t i = 0; l->served && i < 2; i++) {
		bool listed = !l->allowed.nkinds;
		for (size_t k = 0; k < l->allowed.nkinds && !listed; k++)
			listed = !strcmp(l->allowed.kinds[k].group, GW_GROUP) &&
				 !strcmp(l->allowed.kinds[k].kind, ours[i]);
		if (listed)
			json_array_append_new(
			    kinds, json_pack("{s:s,s:s}", "group", GW_GROUP, "kind", ours[i]));
	}
	struct ig_listener_status st;
	ig_listener_status(c->cfg, gw, l, &st);
	*prog = ig_snapshot_serves(c->s, gw, l);
	json_t *conds = json_array();
	json_array_append_new(conds, cond(c, "Accepted", st.accepted, st.reason, st.message, gen));
	json_array_append_new(conds, cond(c, "Programmed", *prog,
					  *prog		 ? "Programmed"
					  : st.given_way ? st.conflict
							 : "Invalid",
					  *prog		? "Listening"
					  : st.conflict ? st.conflict_message
							: "Not served (see the gateway's log)",
					  gen));
	json_array_append_new(
	    conds, cond(c, "ResolvedRefs", st.resolved, st.refs_reason, st.refs_message, gen));
	json_array_append_new(
	    conds, st.conflict ? cond(c, "Conflicted", true, st.conflict, st.conflict_message, gen)
			       : cond(c, "Conflicted", false, "NoConflicts", "No conflicts", gen));
	if (st.overlap)
		json_array_append_new(conds, cond(c, "OverlappingTLSConfig", true,
						  "OverlappingHostnames", IG_OVERLAP_MESSAGE, gen));
	json_t *out = json_pack(
	    "{s:s,s:o,s:I,s:o}", "name", l->name, "supportedKinds", kinds, "attachedRoutes",
	    (json_int_t)ig_listener_attached_routes(c->cfg, gw, l), "conditions", conds);
	/* XListenerSet's ListenerEntryStatus (v1alpha1) has the port too. */
	if (l->set && !strcmp(l->set->meta.kind, "XListenerSet") && l->port)
		json_object_set_new(out, "port", json_integer(l->port));
	return out;
}

/* The ListenerSets attached to gw (Accepted), and whether any of them is
 * an XListenerSet. */
static size_t attached_sets(struct ctx *c, const struct ig_gateway *gw, bool *x)
{
	size_t n = 0;
	*x = false;
	for (size_t i = 0; i < c->cfg->nlistener_sets; i++) {
		const struct ig_listener_set *ls = &c->cfg->listener_sets[i];
		if (ls->gw != gw)
			continue;
		*x |= !strcmp(ls->meta.kind, "XListenerSet");
		n += ls->state == IG_LSET_ACCEPTED;
	}
	return n;
}

static void listener_set_status(struct ctx *c, const struct ig_listener_set *ls)
{
	long long gen = generation(c, ls->meta.kind, ls->group, &ls->meta);
	json_t *listeners = json_array();
	size_t nprog = 0, nvalid = 0;
	for (size_t i = 0; ls->state != IG_LSET_NOT_ALLOWED && i < ls->nlisteners; i++) {
		bool prog;
		json_array_append_new(listeners,
				      listener_status(c, ls->gw, &ls->listeners[i], gen, &prog));
		nprog += prog;
		nvalid += ig_listener_set_listener_valid(ls->gw, &ls->listeners[i]);
	}
	bool accepted = ls->state == IG_LSET_ACCEPTED;
	const char *reason = ls->state == IG_LSET_NOT_ALLOWED ? "NotAllowed" : "ListenersNotValid";
	const char *msg =
	    ls->state == IG_LSET_NOT_ALLOWED
		? "The parent Gateway's allowedListeners does not admit this namespace"
		: "No listener can be served (conflicts, protocols or certificates)";
	json_t *conds = json_array();
	if (accepted)
		json_array_append_new(
		    conds, nvalid == ls->nlisteners
			       ? cond(c, "Accepted", true, "Accepted", "Accepted by infergate", gen)
			       : cond(c, "Accepted", true, "ListenersNotValid",
				      "Some listeners cannot be served (see listeners)", gen));
	else
		json_array_append_new(conds, cond(c, "Accepted", false, reason, msg, gen));
	if (accepted)
		json_array_append_new(
		    conds, cond(c, "Programmed", nprog > 0, nprog ? "Programmed" : "Invalid",
				nprog ? "Serving" : "No listener could be served", gen));
	else
		json_array_append_new(conds, cond(c, "Programmed", false, reason, msg, gen));
	json_t *st = json_pack("{s:o}", "conditions", conds);
	if (ls->state != IG_LSET_NOT_ALLOWED)
		json_object_set_new(st, "listeners", listeners);
	else
		json_decref(listeners);
	ig_kube_status_set(c->G->kube, ls->meta.kind, ls->group, ls->meta.ns, ls->meta.name,
			   IG_KUBE_STATUS_WHOLE, st);
}

/* status.addresses: those the Gateway asked for (ours for one without a
 * value), or ours when it asked for none; none while it is not served. */
static json_t *gateway_addresses(struct ctx *c, const struct ig_gateway *gw)
{
	if (!ig_gateway_servable(gw))
		return NULL;
	json_t *out = json_array();
	for (size_t i = 0; i < (gw->naddresses ? gw->naddresses : 1); i++) {
		const char *v =
		    gw->naddresses && gw->addresses[i].value ? gw->addresses[i].value : c->own;
		bool dup = false;
		for (size_t k = 0; k < json_array_size(out) && !dup; k++)
			dup = !strcmp(
			    v, json_string_value(json_object_get(json_array_get(out, k), "value")));
		if (!dup)
			json_array_append_new(
			    out, json_pack("{s:s,s:s}", "type", "IPAddress", "value", v));
	}
	return out;
}

static json_t *gw_cond(struct ctx *c, const char *type, const struct ig_gateway_cond *k,
		       long long gen)
{
	return cond(c, type, k->status, k->reason, k->message, gen);
}

static void gateway_status(struct ctx *c, const struct ig_gateway *gw)
{
	long long gen = generation(c, "Gateway", GW_GROUP, &gw->meta);
	json_t *listeners = json_array();
	size_t nprog = 0;
	for (size_t i = 0; i < gw->nlisteners; i++) {
		bool prog;
		json_array_append_new(listeners,
				      listener_status(c, gw, &gw->listeners[i], gen, &prog));
		nprog += prog;
	}
	struct ig_gateway_status gs;
	ig_gateway_status(c->cfg, gw, nprog, c->G->opt.bind, &gs);
	json_t *conds = json_array();
	json_array_append_new(conds, gw_cond(c, "Accepted", &gs.accepted, gen));
	json_array_append_new(conds, gw_cond(c, "Programmed", &gs.programmed, gen));
	if (gs.has_refs)
		json_array_append_new(conds, gw_cond(c, "ResolvedRefs", &gs.resolved, gen));
	if (gs.has_insecure)
		json_array_append_new(
		    conds, gw_cond(c, "InsecureFrontendValidationMode", &gs.insecure, gen));
	bool x;
	size_t nsets = attached_sets(c, gw, &x);
	if (x) /* Gateway API v1.3-v1.4 said it with a condition */
		json_array_append_new(
		    conds, nsets ? cond(c, "AttachedListenerSets", true, "ListenerSetsAttached",
					"ListenerSets are attached", gen)
			   : gw->listeners_from == IG_FROM_NONE
			       ? cond(c, "AttachedListenerSets", false, "ListenerSetsNotAllowed",
				      "spec.allowedListeners admits no ListenerSet", gen)
			       : cond(c, "AttachedListenerSets", false, "NoListenerSetsAttached",
				      "No ListenerSet is attached", gen));
	json_t *st = json_pack("{s:o,s:o}", "conditions", conds, "listeners", listeners);
	if (nsets || x || gw->listeners_from != IG_FROM_NONE)
		json_object_set_new(st, "attachedListenerSets", json_integer((json_int_t)nsets));
	json_t *addrs = gateway_addresses(c, gw);
	if (addrs)
		json_object_set_new(st, "addresses", addrs);
	ig_kube_status_set(c->G->kube, "Gateway", GW_GROUP, gw->meta.ns, gw->meta.name,
			   IG_KUBE_STATUS_WHOLE, st);
}

static json_t *parent_ref_json(const struct ig_parent_ref *p)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "group", p->group, "kind", p->kind, "namespace",
			      p->ns, "name", p->name);
	if (p->section_name)
		json_object_set_new(o, "sectionName", json_string(p->section_name));
	if (p->port)
		json_object_set_new(o, "port", json_integer(p->port));
	return o;
}

static json_t *route_parent(struct ctx *c, const struct ig_parent_ref *p,
			    const struct ig_parent_status *st, long long gen)
{
	json_t *conds = json_array();
	json_array_append_new(conds,
			      cond(c, "Accepted", st->accepted, st->reason, st->message, gen));
	json_array_append_new(
	    conds, cond(c, "ResolvedRefs", st->resolved, st->refs_reason, st->refs_message, gen));
	return json_pack("{s:o,s:s,s:o}", "parentRef", parent_ref_json(p), "controllerName",
			 ig_kube_controller(c->G->kube), "conditions", conds);
}

static void route_status(struct ctx *c, const struct ig_httproute *r)
{
	long long gen = generation(c, r->meta.kind, GW_GROUP, &r->meta);
	json_t *parents = json_array();
	for (size_t i = 0; i < r->nparents; i++) {
		struct ig_parent_status st;
		if (ig_route_parent_status(c->cfg, r, &r->parents[i], &st))
			json_array_append_new(parents, route_parent(c, &r->parents[i], &st, gen));
	}
	ig_kube_status_set(c->G->kube, r->meta.kind, GW_GROUP, r->meta.ns, r->meta.name,
			   IG_KUBE_STATUS_PARENTS, json_pack("{s:o}", "parents", parents));
}

static void pool_status(struct ctx *c, const struct ig_pool *pool)
{
	long long gen = generation(c, "InferencePool", pool->group, &pool->meta);
	json_t *parents = json_array();
	for (size_t g = 0; c->s && g < c->cfg->ngateways; g++) {
		const struct ig_gateway *gw = &c->cfg->gateways[g];
		struct ig_pool_parent_status st;
		if (!ig_pool_parent_status(c->s, gw, pool, &st))
			continue;
		json_t *conds = json_array();
		json_array_append_new(conds, cond(c, "Accepted", true, st.reason, st.message, gen));
		json_array_append_new(conds, cond(c, "ResolvedRefs", st.resolved, st.refs_reason,
						  st.refs_message, gen));
		json_t *e = json_pack("{s:{s:s,s:s,s:s,s:s},s:o}", "parentRef", "group", GW_GROUP,
				      "kind", "Gateway", "namespace", gw->meta.ns, "name",
				      gw->meta.name, "conditions", conds);
		/* GIE v1's ParentStatus names the controller that wrote it
		 * (v1.1 on), so that our entries are known for ours once their
		 * Gateway is gone; v1alpha2's has no such field. */
		if (pool->v1)
			json_object_set_new(e, "controllerName",
					    json_string(ig_kube_controller(c->G->kube)));
		json_array_append_new(parents, e);
	}
	ig_kube_status_set(c->G->kube, "InferencePool", pool->group, pool->meta.ns, pool->meta.name,
			   IG_KUBE_STATUS_PARENTS,
			   json_pack("{s:o}", pool->v1 ? "parents" : "parent", parents));
}

/* Whether a backendRef names a Service that policy p targets. */
static bool targets(const struct ig_backend_tls_policy *p, const struct ig_backend_ref *b)
{
	if (!b || !b->kind || !b->group || *b->group || strcmp(b->kind, "Service") || !b->ns ||
	    strcmp(b->ns, p->meta.ns) || !b->name)
		return false;
	for (size_t k = 0; k < p->ntargets; k++) {
		const struct ig_tls_policy_target *t = &p->targets[k];
		if (t->group && !*t->group && t->kind && !strcmp(t->kind, "Service") && t->name &&
		    !strcmp(t->name, b->name))
			return true;
	}
	return false;
}

static bool route_targets(const struct ig_httproute *rt, const struct ig_backend_tls_policy *p)
{
	for (size_t i = 0; i < rt->nrules; i++) {
		const struct ig_route_rule *rule = &rt->rules[i];
		for (size_t b = 0; b < rule->nbackends; b++) {
			const struct ig_backend_ref *be = &rule->backends[b];
			if (targets(p, be))
				return true;
			for (size_t f = 0; f < be->nfilters; f++)
				if (be->filters[f].type == IG_FILTER_REQUEST_MIRROR &&
				    targets(p, be->filters[f].u.mirror.backend))
					return true;
		}
		for (size_t f = 0; f < rule->nfilters; f++)
			if (rule->filters[f].type == IG_FILTER_REQUEST_MIRROR &&
			    targets(p, rule->filters[f].u.mirror.backend))
				return true;
	}
	return false;
}

/* Whether an HTTPRoute attached to some listener of gw reaches a Service
 * that p targets. */
static bool policy_reaches(struct ctx *c, const struct ig_gateway *gw,
			   const struct ig_backend_tls_policy *p)
{
	for (size_t r = 0; r < c->cfg->nroutes; r++) {
		const struct ig_httproute *rt = &c->cfg->routes[r];
		if (!route_targets(rt, p))
			continue;
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++)
			if (ig_route_attaches(c->cfg, rt, gw, ig_gateway_listener(gw, l)))
				return true;
	}
	return false;
}

/* A context the snapshot could not make from the policy's CA: OpenSSL
 * refused what the loader let through. */
static bool policy_ctx_failed(struct ctx *c, const struct ig_backend_tls_policy *p)
{
	for (size_t i = 0; c->s && i < c->s->nservices; i++)
		if (c->s->services[i].policy == p && c->s->services[i].tls_error)
			return true;
	return false;
}

static void tls_policy_status(struct ctx *c, const struct ig_backend_tls_policy *p)
{
	long long gen = generation(c, "BackendTLSPolicy", GW_GROUP, &p->meta);
	bool ctx_failed = policy_ctx_failed(c, p);
	json_t *ancestors = json_array();
	for (size_t g = 0; g < c->cfg->ngateways; g++) {
		const struct ig_gateway *gw = &c->cfg->gateways[g];
		if (!policy_reaches(c, gw, p))
			continue;
		json_t *conds = json_array();
		static const char *const reasons[] = {
		    [IG_TLSP_ACCEPTED] = "Accepted",
		    [IG_TLSP_CONFLICTED] = "Conflicted",
		    [IG_TLSP_INVALID] = "Invalid",
		    [IG_TLSP_NO_VALID_CA] = "NoValidCACertificate",
		};
		if (ctx_failed && p->state == IG_TLSP_ACCEPTED)
			json_array_append_new(conds,
					      cond(c, "Accepted", false, "NoValidCACertificate",
						   "The CA certificates could not be loaded", gen));
		else
			json_array_append_new(conds,
					      cond(c, "Accepted", p->state == IG_TLSP_ACCEPTED,
						   reasons[p->state],
						   p->state == IG_TLSP_ACCEPTED || !p->message
						       ? "Accepted by infergate"
						       : p->message,
						   gen));
		if (!p->refs_ok || ctx_failed)
			json_array_append_new(
			    conds, cond(c, "ResolvedRefs", false,
					p->refs_ok ? "InvalidCACertificateRef" : p->refs_reason,
					p->refs_ok || !p->refs_message
					    ? "The CA certificates could not be loaded"
					    : p->refs_message,
					gen));
		else
			json_array_append_new(conds, cond(c, "ResolvedRefs", true, "ResolvedRefs",
							  "All references resolved", gen));
		json_array_append_new(
		    ancestors, json_pack("{s:{s:s,s:s,s:s,s:s},s:s,s:o}", "ancestorRef", "group",
					 GW_GROUP, "kind", "Gateway", "namespace", gw->meta.ns,
					 "name", gw->meta.name, "controllerName",
					 ig_kube_controller(c->G->kube), "conditions", conds));
	}
	ig_kube_status_set(c->G->kube, "BackendTLSPolicy", GW_GROUP, p->meta.ns, p->meta.name,
			   IG_KUBE_STATUS_PARENTS, json_pack("{s:o}", "ancestors", ancestors));
}

void ig_gw_kube_status(struct ig_gateway_rt *G)
{
	if (!G->kube || !G->snap)
		return;
	struct ctx c = {.G = G, .s = G->snap, .cfg = G->snap->cfg};
	time_t t = time(NULL);
	struct tm tm;
	strftime(c.now, sizeof c.now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	ig_gw_own_address(G->opt.bind, c.own, sizeof c.own);
	ig_kube_status_begin(G->kube);
	for (size_t i = 0; i < c.cfg->ngateways; i++)
		gateway_status(&c, &c.cfg->gateways[i]);
	for (size_t i = 0; i < c.cfg->nlistener_sets; i++)
		if (c.cfg->listener_sets[i].gw)
			listener_set_status(&c, &c.cfg->listener_sets[i]);
	for (size_t i = 0; i < c.cfg->nroutes; i++)
		route_status(&c, &c.cfg->routes[i]);
	for (size_t i = 0; i < c.cfg->npools; i++)
		pool_status(&c, &c.cfg->pools[i]);
	for (size_t i = 0; i < c.cfg->ntls_policies; i++)
		tls_policy_status(&c, &c.cfg->tls_policies[i]);
	ig_kube_status_commit(G->kube);
}
