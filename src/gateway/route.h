/* Routing tables: which HTTPRoute or GRPCRoute rule serves a request arriving on a
 * listener, per the Gateway API's attachment and precedence rules
 * (spec/gateway-api.md §6), and which backendRef of the rule gets it. Built
 * once per config snapshot; matching allocates nothing.
 *
 * Threading: a table is read by every worker at once. Each regular
 * expression is compiled once per worker, and a worker matches with its
 * own copies: glibc's regexec() locks the regex_t it runs, so one copy
 * shared by all workers would be a lock they all take on every request.
 * Tables share those copies: one built while another holds the same
 * pattern (the previous snapshot's, on a reload) takes a reference to it,
 * so the snapshots in-flight requests keep alive cost memory for the
 * patterns that changed only. Tables may be built and freed on any
 * threads; the shared copies' cache is locked then, never while
 * matching. */
#ifndef IG_GATEWAY_ROUTE_H
#define IG_GATEWAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/rand.h"
#include "core/str.h"
#include "http/parse.h"

/* Everything attached to one listener of one Gateway, sorted by
 * precedence. */
struct ig_listener_routes;

struct ig_route_request {
	struct ig_str method;
	struct ig_str path;  /* without the query */
	struct ig_str query; /* after '?', raw (percent-encoded as sent) */
	struct ig_str host;  /* Host header, may include ":port" */
	const struct ig_http_header *headers;
	size_t nheaders;
};

struct ig_route_result {
	const struct ig_httproute *route;
	const struct ig_route_rule *rule;
	size_t rule_index;
	size_t match_index;
};

/* Whether route r (HTTPRoute or GRPCRoute) attaches to listener l of gw
 * (spec §6.1 steps 1-3): l is HTTP or HTTPS; l's allowedRoutes admit it
 * (kinds: none listed, or r's kind listed; namespaces: Same = the Gateway's, All, or Selector
 * matched against the labels of r's Namespace, see
 * ig_config_namespace_selected); and a parentRef of r names gw
 * (group/kind/namespace/name) with a sectionName and port, when set, that
 * are l's. Hostnames (step 4) are left to ig_routes_build. */
bool ig_route_attaches(const struct ig_config *cfg, const struct ig_httproute *r,
		       const struct ig_gateway *gw, const struct ig_listener *l);

/* Whether r's hostnames and l's intersect (spec §4.3), either side
 * unrestricted included: without that the route attaches to l in name
 * only (HTTPRoute Accepted=False/NoMatchingListenerHostname when no
 * listener of the parent is left). */
bool ig_route_hostnames_meet(const struct ig_httproute *r, const struct ig_listener *l);
/* Whether two hostnames (NULL: any) have a name in common under Gateway
 * API's intersection (§4.3): equal, a wildcard covering the other, or two
 * wildcards one of whose suffixes ends the other. */
bool ig_hostnames_overlap(const char *a, const char *b);

/* Whether route r, attached to l, gives way there to a route of the other
 * kind (HTTPRoute against GRPCRoute) attached to l that serves a hostname
 * in common and comes first: the older, then "{namespace}/{name}" first
 * (GRPCRouteSpec.hostnames). Such a route is not Accepted on l. */
bool ig_route_conflicted(const struct ig_config *cfg, const struct ig_httproute *r,
			 const struct ig_gateway *gw, const struct ig_listener *l);

/* Builds the table of `listener` of gateway `gw` from every HTTPRoute in cfg
 * that attaches to it (ig_route_attaches) and whose hostnames intersect
 * the listener's, for
 * `workers` threads matching at once (0 counts as 1). The table points
 * into cfg, which must outlive it. NULL on allocation failure. */
struct ig_listener_routes *ig_routes_build(const struct ig_config *cfg, const struct ig_gateway *gw,
					   const struct ig_listener *listener, size_t workers);
void ig_routes_free(struct ig_listener_routes *t);
/* Distinct compiled patterns (text, flags and worker count) that live
 * tables hold, each counted once however many tables share it (for tests). */
size_t ig_routes_patterns(void);
/* Number of (route, rule, match) entries attached (for logs and tests). */
size_t ig_routes_count(const struct ig_listener_routes *t);
/* Whether a rule matches on X-Gateway-Model-Name or
 * X-Gateway-Base-Model-Name, the headers body-based routing sets from a
 * JSON body's model: which rule a request takes may then depend on its
 * body. */
bool ig_routes_match_model(const struct ig_listener_routes *t);

/* The highest-precedence match for the request: 0 and *out, or -1 (404).
 * `worker` (below the table's `workers`; taken modulo it otherwise) says
 * whose copies of the regular expressions to run: two threads passing the
 * same one at once get right answers but wait for each other. */
int ig_routes_match(const struct ig_listener_routes *t, size_t worker,
		    const struct ig_route_request *req, struct ig_route_result *out);
/* The same answer found by walking every entry instead of the entries the
 * index selects: what ig_routes_match must agree with (tests, fuzzing). */
int ig_routes_match_walk(const struct ig_listener_routes *t, size_t worker,
			 const struct ig_route_request *req, struct ig_route_result *out);

/* A backendRef of the rule drawn by weight (weight 0 never chosen), or NULL
 * when the rule has no backendRefs or all weights are 0 (answer 500).
 * Unresolved refs keep their share, as the Gateway API wants: the caller
 * answers 500 when the chosen ref's status is not IG_REF_OK (not found,
 * invalid kind, cross-namespace without a ReferenceGrant, ...). */
const struct ig_backend_ref *ig_route_pick_backend(const struct ig_route_rule *rule,
						   struct ig_rng *rng);

#endif
