/* Attachment in the Gateway API's terms (spec/gateway-api.md §4.9, §6.1):
 * for each parentRef of a route whether the route is Accepted there and
 * whether its references resolve, and for each listener whether it is
 * Accepted, Conflicted and has its references, with the reasons the API
 * names. Computed from a configuration alone, so that every way of looking
 * at it says the same: kube_status.c writes it as status (--kube), the
 * gateway's log and `infergate check` give what did not attach as warnings
 * (ig_attach_diags), and the admin listener's /api/status shows it. */
#ifndef IG_GATEWAY_ATTACH_H
#define IG_GATEWAY_ATTACH_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* A parents[] entry's conditions: Accepted (Accepted, NoMatchingParent,
 * NotAllowedByListeners, NoMatchingListenerHostname, HostnameConflict)
 * and ResolvedRefs (ResolvedRefs, BackendNotFound, InvalidKind,
 * RefNotPermitted, UnsupportedProtocol). */
struct ig_parent_status {
	const struct ig_gateway *gw;	   /* the Gateway the parentRef reaches */
	const struct ig_listener_set *set; /* the ListenerSet it names, or NULL */
	bool accepted;
	const char *reason, *message;
	bool resolved;
	const char *refs_reason;
	char refs_message[600];
};

/* The entry of route r for its parentRef p, or false when p names neither
 * a Gateway of cfg nor a ListenerSet of one: such a parent has no entry
 * (with files the loader warns that it is not in the configuration; with
 * --kube it may be another controller's). */
bool ig_route_parent_status(const struct ig_config *cfg, const struct ig_httproute *r,
			    const struct ig_parent_ref *p, struct ig_parent_status *out);

/* A listener's conditions, of gw's own listeners or of a ListenerSet's
 * (gw its parent): Accepted (Accepted, HostnameConflict, ProtocolConflict,
 * UnsupportedProtocol, UnsupportedPort, NoValidCACertificate), Conflicted
 * (conflict NULL when not: a ListenerSet's listener that gives way to an
 * earlier one of the merged list, or one that clashes with a listener of
 * another Gateway on its port) and ResolvedRefs (ResolvedRefs,
 * InvalidCertificateRef, RefNotPermitted, the client certificate
 * validation's reasons, InvalidRouteKinds). Programmed is the snapshot's
 * to say. */
struct ig_listener_status {
	bool accepted;
	const char *reason, *message;
	const char *conflict, *conflict_message;
	bool given_way; /* conflict is with an earlier listener of the merged list */
	bool resolved;
	const char *refs_reason, *refs_message;
	/* OverlappingTLSConfig (Gateway API v1.3 on, GEP-3567): another HTTPS
	 * listener of the Gateway on the same port has a hostname that overlaps
	 * this one's (equal, one's wildcard covering the other, or either
	 * without a hostname, which answers every name), so a client may coalesce
	 * their HTTP/2 connections. Set only when true, as the API says. */
	bool overlap;
};
void ig_listener_status(const struct ig_config *cfg, const struct ig_gateway *gw,
			const struct ig_listener *l, struct ig_listener_status *out);
#define IG_OVERLAP_MESSAGE                                                                         \
	"Another HTTPS listener on this port has an overlapping hostname: a client may "           \
	"coalesce their HTTP/2 connections"

/* A Gateway's own conditions (its status.conditions, beside its
 * listeners'): Accepted (Accepted; InvalidParameters and
 * UnsupportedAddress, which leave it unserved; ListenersNotValid when some
 * of its listeners are not valid: not accepted, or in conflict with other
 * Gateways' listeners; False when none is valid),
 * Programmed (Programmed; Invalid when no listener is served;
 * AddressNotUsable), only when spec.tls.backend names a client
 * certificate ResolvedRefs, and only while client certificate validation
 * allows the insecure fallback (mode AllowInsecureFallback, the Gateway's
 * default, a perPort entry or a listener's frontendValidation)
 * InsecureFrontendValidationMode, True with ConfigurationChanged (Gateway
 * API v1.5 on: the condition is removed when the mode is back to
 * AllowValidOnly). nserved: how many of gw's own listeners the
 * snapshot serves (ig_snapshot_serves); bind: the address the listeners
 * bind, which AddressNotUsable's message names. */
struct ig_gateway_cond {
	bool status;
	const char *reason, *message;
};
struct ig_gateway_status {
	struct ig_gateway_cond accepted, programmed;
	bool has_refs;
	struct ig_gateway_cond resolved;
	bool has_insecure;
	struct ig_gateway_cond insecure;
	char text[400]; /* the message of a condition that says what is wrong */
};
void ig_gateway_status(const struct ig_config *cfg, const struct ig_gateway *gw, size_t nserved,
		       const char *bind, struct ig_gateway_status *out);

/* status.listeners[].attachedRoutes: the routes Accepted on listener l of
 * gw (Gateway API v1.5.0 on; v1.2.1 counted every route its allowedRoutes
 * and a parentRef admitted). */
size_t ig_listener_attached_routes(const struct ig_config *cfg, const struct ig_gateway *gw,
				   const struct ig_listener *l);

/* An InferencePool's parents[] entry for Gateway gw (GIE's
 * InferencePoolStatus), or false when no HTTPRoute attached to a listener
 * of gw sends to the pool (no entry). Accepted is True; ResolvedRefs is
 * False (InvalidExtensionRef) when a v1 pool's endpointPickerRef names a
 * Service that does not exist or has no address, which the snapshot s
 * says (requests then get 503 under --kube; from files the built-in
 * picker serves them). */
struct ig_snapshot;
struct ig_pool_parent_status {
	const char *reason, *message; /* Accepted True */
	bool resolved;
	const char *refs_reason, *refs_message;
};
bool ig_pool_parent_status(const struct ig_snapshot *s, const struct ig_gateway *gw,
			   const struct ig_pool *pool, struct ig_pool_parent_status *out);

/* Adds a warning to d for each parentRef of a route that is not Accepted
 * ("FILE:LINE: spec.parentRefs[I]: not accepted by Gateway NS/NAME
 * (REASON): MESSAGE", the line the parentRef's), and for each listener in
 * conflict that the loader has not reported (ProtocolConflict across
 * Gateways, a ListenerSet's listener that gives way). */
void ig_attach_diags(const struct ig_config *cfg, struct ig_diags *d);

#endif
