/* Route and listener attachment results (attach.h), shared by the status
 * written with --kube, the warnings of files and the admin status. */
#include "gateway/attach.h"

#include <stdio.h>
#include <string.h>

#include "gateway/route.h"
#include "gateway/snapshot.h"

#define GW_GROUP "gateway.networking.k8s.io"

/* ---- routes ---- */

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

static const char *ref_reason(enum ig_ref_status s)
{
	switch (s) {
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

static void resolved_refs(const struct ig_httproute *r, struct ig_parent_status *o)
{
	const struct ig_backend_ref *bad = first_unresolved(r);
	const struct ig_filter *ext = bad ? NULL : first_extension_ref(r);
	o->resolved = !bad && !ext;
	if (bad) {
		o->refs_reason = ref_reason(bad->status);
		snprintf(o->refs_message, sizeof o->refs_message, "%s %s/%s: %s", bad->kind,
			 bad->ns, bad->name,
			 bad->status == IG_REF_NOT_FOUND       ? "not found"
			 : bad->status == IG_REF_NOT_PERMITTED ? "no ReferenceGrant allows it"
							       : "cannot be a backend");
	} else if (ext) {
		/* The Gateway API's reason for a reference to "an unknown or
		 * unsupported Group and/or Kind": infergate supports none for
		 * filters. The route stays Accepted; its requests get 500. */
		o->refs_reason = "InvalidKind";
		snprintf(o->refs_message, sizeof o->refs_message,
			 "ExtensionRef filter %s \"%s\" (group \"%s\"): infergate has no filter "
			 "extensions; requests it would process are answered 500",
			 ext->u.ext.kind, ext->u.ext.name, ext->u.ext.group);
	} else {
		o->refs_reason = "ResolvedRefs";
		snprintf(o->refs_message, sizeof o->refs_message, "All references resolved");
	}
}

/* Accepted for parentRef p, whose object (gw, or set, a ListenerSet of
 * gw, which takes routes only while it is attached) has these listeners:
 * the first of the steps of §6.1 that no listener gets past says why. */
static void accepted(const struct ig_config *cfg, const struct ig_httproute *r,
		     const struct ig_parent_ref *p, struct ig_parent_status *o)
{
	const struct ig_gateway *gw = o->gw;
	const struct ig_listener_set *set = o->set;
	const struct ig_listener *ls = set ? set->listeners : gw->listeners;
	size_t n = set ? set->nlisteners : gw->nlisteners;
	bool matching = false, allowed = false, meets = false, attaches = false;
	for (size_t i = 0; i < n; i++) {
		const struct ig_listener *l = &ls[i];
		if ((p->section_name && strcmp(p->section_name, l->name)) ||
		    (p->port && p->port != l->port))
			continue;
		matching = true;
		if (!ig_route_attaches(cfg, r, gw, l))
			continue;
		allowed = true;
		if (!ig_route_hostnames_meet(r, l))
			continue;
		meets = true;
		if (ig_route_conflicted(cfg, r, gw, l))
			continue;
		attaches = true;
	}
	o->accepted = false;
	if (set && set->state != IG_LSET_ACCEPTED) {
		o->reason = "NoMatchingParent";
		o->message =
		    set->state == IG_LSET_NOT_ALLOWED
			? "The ListenerSet is not attached: its Gateway does not admit it"
			: "The ListenerSet is not attached: none of its listeners is valid";
	} else if (attaches) {
		o->accepted = true;
		o->reason = "Accepted";
		o->message = "Accepted by infergate";
	} else if (meets) {
		/* GRPCRouteSpec.hostnames: an HTTPRoute and a GRPCRoute sharing
		 * a hostname on a listener, the older (or first by name) stays. */
		o->reason = "HostnameConflict";
		o->message = r->grpc ? "An HTTPRoute that comes first serves the same hostname"
				     : "A GRPCRoute that comes first serves the same hostname";
	} else if (allowed) {
		o->reason = "NoMatchingListenerHostname";
		o->message = "No hostname of the route matches a listener's hostname";
	} else if (matching) {
		o->reason = "NotAllowedByListeners";
		o->message = set ? "No listener of the ListenerSet allows this route"
				 : "No listener of the Gateway allows this route";
	} else {
		o->reason = "NoMatchingParent";
		o->message = set ? "No listener of the ListenerSet matches sectionName/port"
				 : "No listener of the Gateway matches sectionName/port";
	}
}

bool ig_route_parent_status(const struct ig_config *cfg, const struct ig_httproute *r,
			    const struct ig_parent_ref *p, struct ig_parent_status *out)
{
	memset(out, 0, sizeof *out);
	if (!strcmp(p->group, GW_GROUP) && !strcmp(p->kind, "Gateway")) {
		out->gw = ig_config_find_gateway(cfg, p->ns, p->name);
	} else {
		out->set = ig_config_find_listener_set(cfg, p->group, p->kind, p->ns, p->name);
		out->gw = out->set ? out->set->gw : NULL;
	}
	if (!out->gw)
		return false;
	accepted(cfg, r, p, out);
	resolved_refs(r, out);
	return true;
}

/* ---- listeners ---- */

/* HTTP and HTTPS listeners on one port, across Gateways: none of them is
 * served (gateway/snapshot.c). */
static bool protocol_conflict(const struct ig_config *cfg, const struct ig_listener *l)
{
	for (size_t g = 0; g < cfg->ngateways; g++)
		for (size_t i = 0; i < ig_gateway_nlisteners(&cfg->gateways[g]); i++) {
			const struct ig_listener *o = ig_gateway_listener(&cfg->gateways[g], i);
			if (o->served && o->port == l->port && strcmp(o->protocol, l->protocol))
				return true;
		}
	return false;
}

static void listener_accepted(const struct ig_listener *l, bool no_ca, struct ig_listener_status *o)
{
	o->accepted = false;
	if (l->conflict == IG_CONFLICT_HOSTNAME) {
		o->reason = "HostnameConflict";
		o->message = "An earlier listener has the same port, protocol and hostname";
	} else if (l->conflict == IG_CONFLICT_PROTOCOL) {
		o->reason = "ProtocolConflict";
		o->message = "An earlier listener on this port speaks another protocol";
	} else if (!l->served) {
		o->reason = "UnsupportedProtocol";
		o->message = "infergate serves HTTP and HTTPS listeners";
	} else if (!l->port) {
		o->reason = "UnsupportedPort";
		o->message = "infergate assigns no port: give one";
	} else if (no_ca) {
		o->reason = "NoValidCACertificate";
		o->message = "No caCertificateRef of the client certificate validation is valid";
	} else {
		o->accepted = true;
		o->reason = "Accepted";
		o->message = "Listener accepted";
	}
}

/* A ListenerSet's listener gives way to an earlier one of the merged list;
 * any listener conflicts with one of another Gateway on its port
 * (snapshot.c serves neither). */
static void listener_conflicted(const struct ig_config *cfg, const struct ig_listener *l,
				struct ig_listener_status *o)
{
	o->given_way = l->conflict != IG_CONFLICT_NONE;
	if (o->given_way) {
		o->conflict = o->reason;
		o->conflict_message = o->message;
	} else if (l->across == IG_CONFLICT_HOSTNAME) {
		o->conflict = "HostnameConflict";
		o->conflict_message =
		    "A listener of another Gateway has the same port, protocol and hostname: "
		    "neither is served";
	} else if (l->served && protocol_conflict(cfg, l)) {
		o->conflict = "ProtocolConflict";
		o->conflict_message = "Another listener on this port speaks another protocol";
	}
}

static bool known_route_kinds(const struct ig_listener *l)
{
	for (size_t i = 0; i < l->allowed.nkinds; i++) {
		const struct ig_route_group_kind *k = &l->allowed.kinds[i];
		if (strcmp(k->group, GW_GROUP) ||
		    (strcmp(k->kind, "HTTPRoute") && strcmp(k->kind, "GRPCRoute")))
			return false;
	}
	return true;
}

/* ResolvedRefs: certificateRefs, then client certificate validation (a
 * CA reference that did not resolve), then allowedRoutes.kinds. */
static void listener_refs(const struct ig_listener *l, const struct ig_frontend_validation *fv,
			  struct ig_listener_status *o)
{
	o->refs_reason = "ResolvedRefs";
	const char *cert_why = NULL;
	for (size_t i = 0; i < l->tls.ncerts; i++) {
		if (l->tls.certs[i].status == IG_REF_NOT_PERMITTED)
			o->refs_reason = "RefNotPermitted";
		else if (l->tls.certs[i].status != IG_REF_OK &&
			 !strcmp(o->refs_reason, "ResolvedRefs")) {
			o->refs_reason = "InvalidCertificateRef";
			cert_why = l->tls.certs[i].why;
		}
	}
	/* An HTTPS listener with only tls.options (the CRD allows it) has no
	 * certificate infergate can serve with. */
	if (l->served && !strcmp(l->protocol, "HTTPS") && l->tls.set && !l->tls.ncerts) {
		o->refs_reason = "InvalidCertificateRef";
		cert_why = "No certificateRefs: infergate implements no tls.options and serves "
			   "HTTPS with certificates only";
	}
	bool frontend = false;
	if (fv && fv->refs_reason && !strcmp(o->refs_reason, "ResolvedRefs")) {
		o->refs_reason = fv->refs_reason;
		frontend = true;
	}
	if (!known_route_kinds(l) && !strcmp(o->refs_reason, "ResolvedRefs"))
		o->refs_reason = "InvalidRouteKinds";
	o->resolved = !strcmp(o->refs_reason, "ResolvedRefs");
	o->refs_message = o->resolved ? "References resolved"
			  : frontend  ? fv->refs_message
			  : cert_why && !strcmp(o->refs_reason, "InvalidCertificateRef")
			      ? cert_why
			      : "A reference did not resolve";
}

static bool tls_overlap(const struct ig_gateway *gw, const struct ig_listener *l)
{
	if (!l->served || strcmp(l->protocol, "HTTPS"))
		return false;
	for (size_t i = 0; i < ig_gateway_nlisteners(gw); i++) {
		const struct ig_listener *o = ig_gateway_listener(gw, i);
		if (o != l && o->served && !strcmp(o->protocol, "HTTPS") && o->port == l->port &&
		    ig_hostnames_overlap(o->hostname, l->hostname))
			return true;
	}
	return false;
}

void ig_listener_status(const struct ig_config *cfg, const struct ig_gateway *gw,
			const struct ig_listener *l, struct ig_listener_status *out)
{
	memset(out, 0, sizeof *out);
	const struct ig_frontend_validation *fv =
	    l->served && !strcmp(l->protocol, "HTTPS") ? ig_listener_frontend(gw, l) : NULL;
	listener_accepted(l, fv && !fv->nvalid, out);
	listener_conflicted(cfg, l, out);
	listener_refs(l, fv, out);
	out->overlap = tls_overlap(gw, l);
}

size_t ig_listener_attached_routes(const struct ig_config *cfg, const struct ig_gateway *gw,
				   const struct ig_listener *l)
{
	size_t n = 0;
	if (l->set && l->set->state != IG_LSET_ACCEPTED)
		return 0;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		n += ig_route_attaches(cfg, r, gw, l) && ig_route_hostnames_meet(r, l) &&
		     !ig_route_conflicted(cfg, r, gw, l);
	}
	return n;
}

/* ---- gateways ---- */

/* Whether some client certificate validation of the Gateway lets clients
 * without a valid certificate in: its default, a perPort entry, or one of
 * its own listeners' frontendValidation. */
static bool insecure_fallback(const struct ig_gateway *gw)
{
	if (gw->frontend.set && gw->frontend.insecure_fallback)
		return true;
	for (size_t i = 0; i < gw->nfrontend_ports; i++)
		if (gw->frontend_ports[i].v.set && gw->frontend_ports[i].v.insecure_fallback)
			return true;
	for (size_t i = 0; i < gw->nlisteners; i++)
		if (gw->listeners[i].tls.frontend.set &&
		    gw->listeners[i].tls.frontend.insecure_fallback)
			return true;
	return false;
}

void ig_gateway_status(const struct ig_config *cfg, const struct ig_gateway *gw, size_t nserved,
		       const char *bind, struct ig_gateway_status *out)
{
	memset(out, 0, sizeof *out);
	/* Listeners that are not valid: refused for their own reasons
	 * (Accepted=False: UnsupportedProtocol, NoValidCACertificate, ...) or
	 * in conflict with other Gateways' (§3.2). */
	size_t ninvalid = 0, nconflicted = 0;
	for (size_t i = 0; i < gw->nlisteners; i++) {
		struct ig_listener_status st;
		ig_listener_status(cfg, gw, &gw->listeners[i], &st);
		nconflicted += st.conflict != NULL;
		ninvalid += !st.accepted || st.conflict;
	}
	/* What keeps the Gateway from being served, in the order it is told,
	 * else how its listeners fared. */
	const struct ig_gateway_address *bad = gw->naddresses ? &gw->addresses[gw->addr_bad] : NULL;
	const char *not_accepted = NULL, *not_programmed = NULL;
	if (gw->params_kind) {
		not_accepted = "InvalidParameters";
		snprintf(
		    out->text, sizeof out->text,
		    "spec.infrastructure.parametersRef: infergate takes no parameters (kind %s)",
		    gw->params_kind);
	} else if (gw->addr_state == IG_GWADDR_UNSUPPORTED) {
		not_accepted = "UnsupportedAddress";
		snprintf(
		    out->text, sizeof out->text,
		    "spec.addresses[%zu]: type %s is not supported (infergate serves IPAddress)",
		    gw->addr_bad, bad->type);
	} else if (gw->addr_state == IG_GWADDR_NOT_USABLE) {
		not_programmed = "AddressNotUsable";
		snprintf(out->text, sizeof out->text,
			 "spec.addresses[%zu]: %s is not an address that listeners bound to %s "
			 "receive",
			 gw->addr_bad, bad->value, bind ? bind : "the bind address");
	}
	/* GatewayReasonListenersNotValid: the Gateway stays accepted while
	 * some listener is valid, and is not when none is (conformance
	 * GatewayListenerUnsupportedProtocol). */
	if (not_accepted)
		out->accepted = (struct ig_gateway_cond){false, not_accepted, out->text};
	else if (ninvalid)
		out->accepted = (struct ig_gateway_cond){
		    ninvalid < gw->nlisteners, "ListenersNotValid",
		    nconflicted == ninvalid
			? "Some listeners conflict with listeners of other Gateways on their port "
			  "and are not served (see listeners)"
			: "Some listeners are not valid and are not served (see listeners)"};
	else
		out->accepted = (struct ig_gateway_cond){true, "Accepted", "Accepted by infergate"};
	if (not_accepted || not_programmed)
		out->programmed = (struct ig_gateway_cond){
		    false, not_programmed ? not_programmed : "Invalid", out->text};
	else
		out->programmed =
		    (struct ig_gateway_cond){nserved > 0, nserved ? "Programmed" : "Invalid",
					     nserved ? "Serving" : "No listener could be served"};
	out->has_refs = gw->has_backend_client;
	if (out->has_refs) {
		enum ig_ref_status st = gw->backend_client.status;
		out->resolved = (struct ig_gateway_cond){
		    st == IG_REF_OK,
		    st == IG_REF_OK		 ? "ResolvedRefs"
		    : st == IG_REF_NOT_PERMITTED ? "RefNotPermitted"
						 : "InvalidClientCertificateRef",
		    st == IG_REF_OK
			? "References resolved"
			: "spec.tls.backend.clientCertificateRef does not name a usable "
			  "kubernetes.io/tls Secret"};
	}
	out->has_insecure = insecure_fallback(gw);
	if (out->has_insecure)
		out->insecure = (struct ig_gateway_cond){
		    true, "ConfigurationChanged",
		    "Client certificate validation is AllowInsecureFallback: clients without a "
		    "valid certificate are served"};
}

/* ---- InferencePools ---- */

/* Whether an HTTPRoute attached to some listener of gw sends to pool. */
static bool reaches(const struct ig_config *cfg, const struct ig_gateway *gw,
		    const struct ig_pool *pool)
{
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct ig_httproute *rt = &cfg->routes[r];
		bool uses = false;
		for (size_t i = 0; i < rt->nrules && !uses; i++)
			for (size_t b = 0; b < rt->rules[i].nbackends && !uses; b++)
				uses = rt->rules[i].backends[b].pool == pool;
		if (!uses)
			continue;
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++)
			if (ig_route_attaches(cfg, rt, gw, ig_gateway_listener(gw, l)))
				return true;
	}
	return false;
}

bool ig_pool_parent_status(const struct ig_snapshot *s, const struct ig_gateway *gw,
			   const struct ig_pool *pool, struct ig_pool_parent_status *out)
{
	if (!reaches(s->cfg, gw, pool))
		return false;
	/* v1alpha2 pools fall back to the built-in picker in every mode. */
	const struct ig_pool_rt *rt = ig_snapshot_pool_of(s, pool);
	bool unresolved = pool->v1 && rt && (rt->epp_missing || (rt->epp && rt->epp->naddrs == 0));
	*out = (struct ig_pool_parent_status){
	    .reason = "Accepted",
	    .message = "Referenced by an HTTPRoute accepted by the Gateway",
	    .resolved = !unresolved,
	    .refs_reason = unresolved ? "InvalidExtensionRef" : "ResolvedRefs",
	    .refs_message = unresolved
				? "The endpoint picker Service of endpointPickerRef does not "
				  "exist or has no address"
				: "All references resolved",
	};
	return true;
}

/* ---- warnings ---- */

static void route_diags(const struct ig_config *cfg, const struct ig_httproute *r,
			struct ig_diags *d)
{
	for (size_t i = 0; i < r->nparents; i++) {
		const struct ig_parent_ref *p = &r->parents[i];
		struct ig_parent_status st;
		if (!ig_route_parent_status(cfg, r, p, &st) || st.accepted)
			continue;
		char path[64];
		snprintf(path, sizeof path, "spec.parentRefs[%zu]", i);
		ig_diags_add(d, true, r->meta.file, p->line ? p->line : r->meta.line, path,
			     "%s \"%s/%s\" not accepted by %s \"%s/%s\"%s%s%s (Accepted=False, "
			     "%s): %s; the route serves nothing there",
			     r->meta.kind, r->meta.ns, r->meta.name, p->kind, p->ns, p->name,
			     p->section_name ? " sectionName \"" : "",
			     p->section_name ? p->section_name : "", p->section_name ? "\"" : "",
			     st.reason, st.message);
	}
}

/* The listener conflicts the loader leaves unsaid: it reports hostname
 * clashes across Gateways and the protocols and certificates a listener
 * cannot be served with, not which of a ListenerSet's listeners give way
 * nor HTTP and HTTPS sharing a port across Gateways. */
static void listener_diags(const struct ig_config *cfg, const struct ig_gateway *gw,
			   const struct ig_listener *l, size_t index, struct ig_diags *d)
{
	struct ig_listener_status st;
	ig_listener_status(cfg, gw, l, &st);
	if (!st.conflict || (!st.given_way && strcmp(st.conflict, "ProtocolConflict")))
		return;
	const struct ig_meta *owner = l->set ? &l->set->meta : &gw->meta;
	char path[64];
	snprintf(path, sizeof path, "spec.listeners[%zu]", index);
	ig_diags_add(d, true, owner->file, l->line ? l->line : owner->line, path,
		     "listener \"%s\" of %s \"%s/%s\" (Conflicted=True, %s): %s; it is not served",
		     l->name, owner->kind, owner->ns, owner->name, st.conflict,
		     st.conflict_message);
}

void ig_attach_diags(const struct ig_config *cfg, struct ig_diags *d)
{
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		for (size_t i = 0; i < gw->nlisteners; i++)
			listener_diags(cfg, gw, &gw->listeners[i], i, d);
	}
	for (size_t s = 0; s < cfg->nlistener_sets; s++) {
		const struct ig_listener_set *ls = &cfg->listener_sets[s];
		for (size_t i = 0; ls->gw && ls->state == IG_LSET_ACCEPTED && i < ls->nlisteners;
		     i++)
			listener_diags(cfg, ls->gw, &ls->listeners[i], i, d);
	}
	for (size_t i = 0; i < cfg->nroutes; i++)
		route_diags(cfg, &cfg->routes[i], d);
}
