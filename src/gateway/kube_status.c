/* With --kube: the status of the objects the gateway serves, from the
 * configuration it just published, in the Gateway API's and GIE's terms,
 * handed to the writer of kube/ (which writes only what changed):
 * - Gateway: Accepted (ListenersNotValid when listeners conflict with
 *   other Gateways'), Programmed; per listener supportedKinds,
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

static bool programmed(struct ctx *c, const struct ig_gateway *gw, const struct ig_listener *l)
{
	for (size_t i = 0; i < c->s->nports; i++)
		for (size_t j = 0; j < c->s->ports[i].nlisteners; j++)
			if (c->s->ports[i].listeners[j].gw == gw &&
			    c->s->ports[i].listeners[j].listener == l)
				return true;
	return false;
}

/* status.listeners[].attachedRoutes: the routes accepted on this listener
 * (Gateway API v1.5.0 on; v1.2.1 counted every route its allowedRoutes and
 * a parentRef admitted): a parentRef and allowedRoutes admit the route, a
 * hostname of the route meets the listener's, no route of the other kind
 * holds the hostname first, and a ListenerSet's listener only while the
 * set is attached -- what route_parent() says Accepted for. */
static size_t attached(struct ctx *c, const struct ig_gateway *gw, const struct ig_listener *l)
{
	size_t n = 0;
	if (l->set && l->set->state != IG_LSET_ACCEPTED)
		return 0;
	for (size_t i = 0; i < c->cfg->nroutes; i++) {
		const struct ig_httproute *r = &c->cfg->routes[i];
		n += ig_route_attaches(c->cfg, r, gw, l) && ig_route_hostnames_meet(r, l) &&
		     !ig_route_conflicted(c->cfg, r, gw, l);
	}
	return n;
}

/* HTTP and HTTPS listeners on one port, across Gateways: none of them is
 * served (gateway/snapshot.c), and each says why. */
static bool protocol_conflict(struct ctx *c, const struct ig_listener *l)
{
	for (size_t g = 0; g < c->cfg->ngateways; g++)
		for (size_t i = 0; i < ig_gateway_nlisteners(&c->cfg->gateways[g]); i++) {
			const struct ig_listener *o = ig_gateway_listener(&c->cfg->gateways[g], i);
			if (o->served && o->port == l->port && strcmp(o->protocol, l->protocol))
				return true;
		}
	return false;
}

/* Whether a listener conflicts with one of another Gateway on its port
 * (snapshot.c serves neither), with the reason and message. */
static bool listener_conflicted(struct ctx *c, const struct ig_listener *l, const char **reason,
				const char **msg)
{
	if (l->across == IG_CONFLICT_HOSTNAME) {
		*reason = "HostnameConflict";
		*msg = "A listener of another Gateway has the same port, protocol and hostname: "
		       "neither is served";
		return true;
	}
	if (l->served && protocol_conflict(c, l)) {
		*reason = "ProtocolConflict";
		*msg = "Another listener on this port speaks another protocol";
		return true;
	}
	return false;
}

/* Whether the listener is Accepted, with the reason and message either way. */
static bool listener_accepted(const struct ig_listener *l, bool no_ca, const char **why,
			      const char **what)
{
	if (l->conflict == IG_CONFLICT_HOSTNAME) {
		*why = "HostnameConflict";
		*what = "An earlier listener has the same port, protocol and hostname";
	} else if (l->conflict == IG_CONFLICT_PROTOCOL) {
		*why = "ProtocolConflict";
		*what = "An earlier listener on this port speaks another protocol";
	} else if (!l->served) {
		*why = "UnsupportedProtocol";
		*what = "infergate serves HTTP and HTTPS listeners";
	} else if (!l->port) {
		*why = "UnsupportedPort";
		*what = "infergate assigns no port: give one";
	} else if (no_ca) {
		*why = "NoValidCACertificate";
		*what = "No caCertificateRef of the client certificate validation is valid";
	} else {
		*why = "Accepted";
		*what = "Listener accepted";
		return true;
	}
	return false;
}

static json_t *listener_status(struct ctx *c, const struct ig_gateway *gw,
			       const struct ig_listener *l, long long gen, bool *prog)
{
	/* supportedKinds: the kinds the listener takes, those of
	 * allowedRoutes.kinds that infergate has when it names any. */
	json_t *kinds = json_array();
	static const char *const ours[] = {"HTTPRoute", "GRPCRoute"};
	bool bad_kinds = false;
	for (size_t i = 0; i < l->allowed.nkinds; i++) {
		const struct ig_route_group_kind *k = &l->allowed.kinds[i];
		bad_kinds |= strcmp(k->group, GW_GROUP) ||
			     (strcmp(k->kind, ours[0]) && strcmp(k->kind, ours[1]));
	}
	for (size_t i = 0; l->served && i < 2; i++) {
		bool listed = !l->allowed.nkinds;
		for (size_t k = 0; k < l->allowed.nkinds && !listed; k++)
			listed = !strcmp(l->allowed.kinds[k].group, GW_GROUP) &&
				 !strcmp(l->allowed.kinds[k].kind, ours[i]);
		if (listed)
			json_array_append_new(
			    kinds, json_pack("{s:s,s:s}", "group", GW_GROUP, "kind", ours[i]));
	}
	const char *refs_reason = "ResolvedRefs";
	for (size_t i = 0; i < l->tls.ncerts; i++) {
		if (l->tls.certs[i].status == IG_REF_NOT_PERMITTED)
			refs_reason = "RefNotPermitted";
		else if (l->tls.certs[i].status != IG_REF_OK &&
			 !strcmp(refs_reason, "ResolvedRefs"))
			refs_reason = "InvalidCertificateRef";
	}
	/* Client certificate validation (spec.tls.frontend): a CA reference
	 * that did not resolve; none that did leaves the listener unserved. */
	const struct ig_frontend_validation *fv =
	    l->served && !strcmp(l->protocol, "HTTPS") ? ig_listener_frontend(gw, l) : NULL;
	bool no_ca = fv && !fv->nvalid;
	if (fv && fv->refs_reason && !strcmp(refs_reason, "ResolvedRefs"))
		refs_reason = fv->refs_reason;
	if (bad_kinds && !strcmp(refs_reason, "ResolvedRefs"))
		refs_reason = "InvalidRouteKinds";
	*prog = programmed(c, gw, l);
	/* A ListenerSet's listener gives way to an earlier one of the merged
	 * list; the Gateway's own conflict only across Gateways. */
	const char *why, *what;
	bool accepted = listener_accepted(l, no_ca, &why, &what);
	bool given_way = l->conflict != IG_CONFLICT_NONE;
	const char *conflict = NULL, *conflict_msg = NULL;
	if (given_way) {
		conflict = why;
		conflict_msg = what;
	} else {
		listener_conflicted(c, l, &conflict, &conflict_msg);
	}
	json_t *conds = json_array();
	json_array_append_new(conds, cond(c, "Accepted", accepted, why, what, gen));
	json_array_append_new(conds, cond(c, "Programmed", *prog,
					  *prog	      ? "Programmed"
					  : given_way ? conflict
						      : "Invalid",
					  *prog	     ? "Listening"
					  : conflict ? conflict_msg
						     : "Not served (see the gateway's log)",
					  gen));
	bool refs_ok = !strcmp(refs_reason, "ResolvedRefs");
	json_array_append_new(conds, cond(c, "ResolvedRefs", refs_ok, refs_reason,
					  refs_ok ? "References resolved"
					  : fv && fv->refs_reason == refs_reason
					      ? fv->refs_message
					      : "A reference did not resolve",
					  gen));
	json_array_append_new(
	    conds, conflict ? cond(c, "Conflicted", true, conflict, conflict_msg, gen)
			    : cond(c, "Conflicted", false, "NoConflicts", "No conflicts", gen));
	json_t *st =
	    json_pack("{s:s,s:o,s:I,s:o}", "name", l->name, "supportedKinds", kinds,
		      "attachedRoutes", (json_int_t)attached(c, gw, l), "conditions", conds);
	/* XListenerSet's ListenerEntryStatus (v1alpha1) has the port too. */
	if (l->set && !strcmp(l->set->meta.kind, "XListenerSet") && l->port)
		json_object_set_new(st, "port", json_integer(l->port));
	return st;
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

static void gateway_status(struct ctx *c, const struct ig_gateway *gw)
{
	long long gen = generation(c, "Gateway", GW_GROUP, &gw->meta);
	json_t *listeners = json_array();
	size_t nprog = 0, nconflicted = 0;
	for (size_t i = 0; i < gw->nlisteners; i++) {
		bool prog;
		const char *r, *m;
		json_array_append_new(listeners,
				      listener_status(c, gw, &gw->listeners[i], gen, &prog));
		nprog += prog;
		nconflicted += listener_conflicted(c, &gw->listeners[i], &r, &m);
	}
	json_t *conds = json_array();
	/* Accepted, then Programmed: what keeps the Gateway from being
	 * served, in the order it is told, else how its listeners fared. */
	char msg[400];
	const struct ig_gateway_address *bad = gw->naddresses ? &gw->addresses[gw->addr_bad] : NULL;
	const char *not_accepted = NULL, *not_programmed = NULL;
	if (gw->params_kind) {
		not_accepted = "InvalidParameters";
		snprintf(
		    msg, sizeof msg,
		    "spec.infrastructure.parametersRef: infergate takes no parameters (kind %s)",
		    gw->params_kind);
	} else if (gw->addr_state == IG_GWADDR_UNSUPPORTED) {
		not_accepted = "UnsupportedAddress";
		snprintf(
		    msg, sizeof msg,
		    "spec.addresses[%zu]: type %s is not supported (infergate serves IPAddress)",
		    gw->addr_bad, bad->type);
	} else if (gw->addr_state == IG_GWADDR_NOT_USABLE) {
		not_programmed = "AddressNotUsable";
		snprintf(msg, sizeof msg,
			 "spec.addresses[%zu]: %s is not an address that listeners bound to %s "
			 "receive",
			 gw->addr_bad, bad->value, c->G->opt.bind);
	}
	/* Listeners that conflict with other Gateways' (§3.2): the Gateway
	 * says ListenersNotValid, accepted while some listener is not in
	 * conflict. */
	if (not_accepted)
		json_array_append_new(conds, cond(c, "Accepted", false, not_accepted, msg, gen));
	else if (nconflicted)
		json_array_append_new(
		    conds, cond(c, "Accepted", nconflicted < gw->nlisteners, "ListenersNotValid",
				"Some listeners conflict with listeners of other Gateways on their "
				"port and are not served (see listeners)",
				gen));
	else
		json_array_append_new(
		    conds, cond(c, "Accepted", true, "Accepted", "Accepted by infergate", gen));
	if (not_accepted || not_programmed)
		json_array_append_new(conds,
				      cond(c, "Programmed", false,
					   not_programmed ? not_programmed : "Invalid", msg, gen));
	else
		json_array_append_new(
		    conds, cond(c, "Programmed", nprog > 0, nprog ? "Programmed" : "Invalid",
				nprog ? "Serving" : "No listener could be served", gen));
	if (gw->has_backend_client) {
		enum ig_ref_status st = gw->backend_client.status;
		json_array_append_new(
		    conds, cond(c, "ResolvedRefs", st == IG_REF_OK,
				st == IG_REF_OK		     ? "ResolvedRefs"
				: st == IG_REF_NOT_PERMITTED ? "RefNotPermitted"
							     : "InvalidClientCertificateRef",
				st == IG_REF_OK ? "References resolved"
						: "spec.tls.backend.clientCertificateRef does not "
						  "name a usable kubernetes.io/tls Secret",
				gen));
	}
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

static const char *ref_reason(enum ig_ref_status s)
{
	switch (s) {
	case IG_REF_NOT_FOUND:
		return "BackendNotFound";
	case IG_REF_INVALID_KIND:
		return "InvalidKind";
	case IG_REF_NOT_PERMITTED:
		return "RefNotPermitted";
	case IG_REF_UNSUPPORTED_PROTOCOL:
		return "UnsupportedProtocol";
	default:
		return "BackendNotFound";
	}
}

static const struct ig_backend_ref *first_unresolved(const struct ig_httproute *r)
{
	for (size_t i = 0; i < r->nrules; i++)
		for (size_t b = 0; b < r->rules[i].nbackends; b++)
			if (r->rules[i].backends[b].status != IG_REF_OK)
				return &r->rules[i].backends[b];
	return NULL;
}

/* The first ExtensionRef filter of the route, of a rule or of a
 * backendRef: none resolves (infergate has no filter extensions). */
static const struct ig_filter *first_extension_ref(const struct ig_httproute *r)
{
	for (size_t i = 0; i < r->nrules; i++) {
		const struct ig_route_rule *rule = &r->rules[i];
		const struct ig_filter *f = ig_filters_extension_ref(rule->filters, rule->nfilters);
		for (size_t b = 0; !f && b < rule->nbackends; b++)
			f = ig_filters_extension_ref(rule->backends[b].filters,
						     rule->backends[b].nfilters);
		if (f)
			return f;
	}
	return NULL;
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

/* The entry for parentRef p, whose object (a Gateway of ours, or a
 * ListenerSet of one) has these listeners; set: the ListenerSet, which
 * takes routes only while it is attached. */
static json_t *route_parent(struct ctx *c, const struct ig_httproute *r,
			    const struct ig_parent_ref *p, const struct ig_gateway *gw,
			    const struct ig_listener_set *set, long long gen)
{
	const struct ig_listener *ls = set ? set->listeners : gw->listeners;
	size_t n = set ? set->nlisteners : gw->nlisteners;
	bool matching = false, allowed = false, meets = false, attaches = false;
	for (size_t i = 0; i < n; i++) {
		const struct ig_listener *l = &ls[i];
		if ((p->section_name && strcmp(p->section_name, l->name)) ||
		    (p->port && p->port != l->port))
			continue;
		matching = true;
		if (!ig_route_attaches(c->cfg, r, gw, l))
			continue;
		allowed = true;
		if (!ig_route_hostnames_meet(r, l))
			continue;
		meets = true;
		if (ig_route_conflicted(c->cfg, r, gw, l))
			continue;
		attaches = true;
	}
	json_t *conds = json_array();
	if (set && set->state != IG_LSET_ACCEPTED)
		json_array_append_new(
		    conds,
		    cond(c, "Accepted", false, "NoMatchingParent",
			 set->state == IG_LSET_NOT_ALLOWED
			     ? "The ListenerSet is not attached: its Gateway does not admit it"
			     : "The ListenerSet is not attached: none of its listeners is valid",
			 gen));
	else if (attaches)
		json_array_append_new(
		    conds, cond(c, "Accepted", true, "Accepted", "Accepted by infergate", gen));
	else if (meets)
		/* GRPCRouteSpec.hostnames: an HTTPRoute and a GRPCRoute sharing
		 * a hostname on a listener, the older (or first by name) stays. */
		json_array_append_new(
		    conds, cond(c, "Accepted", false, "HostnameConflict",
				r->grpc ? "An HTTPRoute that comes first serves the same hostname"
					: "A GRPCRoute that comes first serves the same hostname",
				gen));
	else if (allowed)
		json_array_append_new(
		    conds, cond(c, "Accepted", false, "NoMatchingListenerHostname",
				"No hostname of the route matches a listener's hostname", gen));
	else if (matching)
		json_array_append_new(conds,
				      cond(c, "Accepted", false, "NotAllowedByListeners",
					   set ? "No listener of the ListenerSet allows this route"
					       : "No listener of the Gateway allows this route",
					   gen));
	else
		json_array_append_new(
		    conds, cond(c, "Accepted", false, "NoMatchingParent",
				set ? "No listener of the ListenerSet matches sectionName/port"
				    : "No listener of the Gateway matches sectionName/port",
				gen));
	const struct ig_backend_ref *bad = first_unresolved(r);
	const struct ig_filter *ext = bad ? NULL : first_extension_ref(r);
	char msg[600];
	if (bad) {
		snprintf(msg, sizeof msg, "%s %s/%s: %s", bad->kind, bad->ns, bad->name,
			 bad->status == IG_REF_NOT_FOUND       ? "not found"
			 : bad->status == IG_REF_NOT_PERMITTED ? "no ReferenceGrant allows it"
							       : "cannot be a backend");
		json_array_append_new(
		    conds, cond(c, "ResolvedRefs", false, ref_reason(bad->status), msg, gen));
	} else if (ext) {
		/* The Gateway API's reason for a reference to "an unknown or
		 * unsupported Group and/or Kind": infergate supports none for
		 * filters. The route stays Accepted; its requests get 500. */
		snprintf(msg, sizeof msg,
			 "ExtensionRef filter %s \"%s\" (group \"%s\"): infergate has no filter "
			 "extensions; requests it would process are answered 500",
			 ext->u.ext.kind, ext->u.ext.name, ext->u.ext.group);
		json_array_append_new(conds,
				      cond(c, "ResolvedRefs", false, "InvalidKind", msg, gen));
	} else {
		json_array_append_new(conds, cond(c, "ResolvedRefs", true, "ResolvedRefs",
						  "All references resolved", gen));
	}
	return json_pack("{s:o,s:s,s:o}", "parentRef", parent_ref_json(p), "controllerName",
			 ig_kube_controller(c->G->kube), "conditions", conds);
}

static void route_status(struct ctx *c, const struct ig_httproute *r)
{
	long long gen = generation(c, r->meta.kind, GW_GROUP, &r->meta);
	json_t *parents = json_array();
	for (size_t i = 0; i < r->nparents; i++) {
		const struct ig_parent_ref *p = &r->parents[i];
		if (!strcmp(p->group, GW_GROUP) && !strcmp(p->kind, "Gateway")) {
			const struct ig_gateway *gw =
			    ig_config_find_gateway(c->cfg, p->ns, p->name);
			if (gw)
				json_array_append_new(parents,
						      route_parent(c, r, p, gw, NULL, gen));
			continue;
		}
		const struct ig_listener_set *ls =
		    ig_config_find_listener_set(c->cfg, p->group, p->kind, p->ns, p->name);
		if (ls && ls->gw)
			json_array_append_new(parents, route_parent(c, r, p, ls->gw, ls, gen));
	}
	ig_kube_status_set(c->G->kube, r->meta.kind, GW_GROUP, r->meta.ns, r->meta.name,
			   IG_KUBE_STATUS_PARENTS, json_pack("{s:o}", "parents", parents));
}

/* Whether an HTTPRoute attached to some listener of gw sends to pool. */
static bool reaches(struct ctx *c, const struct ig_gateway *gw, const struct ig_pool *pool)
{
	for (size_t r = 0; r < c->cfg->nroutes; r++) {
		const struct ig_httproute *rt = &c->cfg->routes[r];
		bool uses = false;
		for (size_t i = 0; i < rt->nrules && !uses; i++)
			for (size_t b = 0; b < rt->rules[i].nbackends && !uses; b++)
				uses = rt->rules[i].backends[b].pool == pool;
		if (!uses)
			continue;
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++)
			if (ig_route_attaches(c->cfg, rt, gw, ig_gateway_listener(gw, l)))
				return true;
	}
	return false;
}

static void pool_status(struct ctx *c, const struct ig_pool *pool)
{
	long long gen = generation(c, "InferencePool", pool->group, &pool->meta);
	/* A v1 pool whose picker Service cannot be found serves nothing
	 * (listener.c); its reference does not resolve. v1alpha2 pools fall
	 * back to the built-in picker. */
	const struct ig_pool_rt *rt = c->s ? ig_snapshot_pool_of(c->s, pool) : NULL;
	bool epp_unresolved =
	    pool->v1 && rt && (rt->epp_missing || (rt->epp && rt->epp->naddrs == 0));
	json_t *parents = json_array();
	for (size_t g = 0; g < c->cfg->ngateways; g++) {
		const struct ig_gateway *gw = &c->cfg->gateways[g];
		if (!reaches(c, gw, pool))
			continue;
		json_t *conds = json_array();
		json_array_append_new(
		    conds, cond(c, "Accepted", true, "Accepted",
				"Referenced by an HTTPRoute accepted by the Gateway", gen));
		if (epp_unresolved)
			json_array_append_new(
			    conds, cond(c, "ResolvedRefs", false, "InvalidExtensionRef",
					"The endpoint picker Service of endpointPickerRef does not "
					"exist or has no address",
					gen));
		else
			json_array_append_new(conds, cond(c, "ResolvedRefs", true, "ResolvedRefs",
							  "All references resolved", gen));
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
