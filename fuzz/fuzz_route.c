/* libFuzzer target for request routing: one fixed set of HTTPRoutes (exact,
 * prefix and regular-expression paths, header and query matches with
 * regexes, methods, precise and wildcard hostnames, weighted backends) is
 * built once for two listeners, and every input becomes a request that is
 * matched against both. The winner is checked against what its match
 * demands, and against a walk of every entry (what the index must find),
 * so the fuzzer looks for wrong answers as well as crashes.
 *
 * Input: "METHOD\nTARGET\nHOST\nName: value\n...". An input that starts
 * with '#' instead builds a small table from its own hostnames
 * ("#LISTENER\nROUTE1\nROUTE2\nHOST"), to reach the hostname intersection
 * code with names the fixed table does not have. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "gateway/route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_HEADERS 16

/* ---- the fixed configuration ------------------------------------------- */

static struct ig_parent_ref to_gw = {.name = "gw"};

static struct ig_header_match model_hdr[] = {
    {.type = IG_MATCH_EXACT, .name = "x-model", .value = "llama"},
    /* A second predicate on the same name must be ignored. */
    {.type = IG_MATCH_EXACT, .name = "X-Model", .value = "never"},
};
static struct ig_header_match debug_query[] = {
    {.type = IG_MATCH_EXACT, .name = "debug", .value = "1"},
};
static struct ig_header_match tenant_hdr[] = {
    {.type = IG_MATCH_REGEX, .name = "x-tenant", .value = "team-[a-z]+"},
    {.type = IG_MATCH_EXACT, .name = "x-env", .value = "prod"},
};
static struct ig_header_match user_query[] = {
    {.type = IG_MATCH_REGEX, .name = "user", .value = "[a-z]{1,8}"},
    {.type = IG_MATCH_EXACT, .name = "q", .value = "a b&c"},
};
static struct ig_header_match broken_hdr[] = {
    {.type = IG_MATCH_REGEX, .name = "x-broken", .value = "(["},
};

static struct ig_route_match exact_matches[] = {
    {.path_type = IG_PATH_EXACT, .path = "/v1/completions", .method = "POST"},
    {.path_type = IG_PATH_EXACT, .path = "/"},
};
static struct ig_route_match prefix_matches[] = {
    {.path_type = IG_PATH_PREFIX,
     .path = "/v1/",
     .headers = model_hdr,
     .nheaders = N(model_hdr),
     .query = debug_query,
     .nquery = N(debug_query)},
    {.path_type = IG_PATH_PREFIX, .path = "/api"},
};
static struct ig_route_match regex_matches[] = {
    {.path_type = IG_PATH_REGEX,
     .path = "/v[0-9]+/chat/.*",
     .headers = tenant_hdr,
     .nheaders = N(tenant_hdr),
     .query = user_query,
     .nquery = N(user_query)},
    {.path_type = IG_PATH_REGEX, .path = "^/anchored/(a|b)*$", .method = "PUT"},
    {.path_type = IG_PATH_REGEX, .path = "(["}, /* does not compile: never matches */
};
static struct ig_route_match broken_matches[] = {
    {.path_type = IG_PATH_PREFIX, .path = "/broken", .headers = broken_hdr, .nheaders = 1},
};
static struct ig_route_match wild_matches[] = {
    {.path_type = IG_PATH_PREFIX, .path = "/x/", .method = "GET"},
};

static struct ig_backend_ref weighted[] = {
    {.name = "a", .weight = 70},
    {.name = "zero", .weight = 0},
    {.name = "b", .weight = 30},
    {.name = "huge", .weight = 2147483647},
};
static struct ig_backend_ref all_zero[] = {{.name = "z", .weight = 0}};
static struct ig_backend_ref single[] = {{.name = "one", .weight = 1}};

static struct ig_route_rule exact_rules[] = {
    {.matches = exact_matches, .nmatches = N(exact_matches), .backends = single, .nbackends = 1},
};
static struct ig_route_rule prefix_rules[] = {
    {.matches = prefix_matches,
     .nmatches = N(prefix_matches),
     .backends = weighted,
     .nbackends = N(weighted)},
    {.matches = broken_matches, .nmatches = 1, .backends = all_zero, .nbackends = 1},
};
static struct ig_route_rule regex_rules[] = {
    {.matches = regex_matches, .nmatches = N(regex_matches), .backends = weighted, .nbackends = 2},
    /* No matches: the CRD default, PathPrefix "/". No backends either. */
    {.matches = NULL, .nmatches = 0},
};
static struct ig_route_rule wild_rules[] = {
    {.matches = wild_matches, .nmatches = 1, .backends = single, .nbackends = 1},
};

static char *host_names[] = {"api.example.com", "*.example.com", "*.internal"};
static char *wild_names[] = {"*.a.example.com"};

static struct ig_httproute routes[] = {
    {.meta = {.name = "exact", .ns = "default", .seq = 1},
     .parents = &to_gw,
     .nparents = 1,
     .rules = exact_rules,
     .nrules = N(exact_rules)},
    {.meta = {.name = "prefix",
	      .ns = "default",
	      .creation_timestamp = "2024-01-01T00:00:00Z",
	      .seq = 2},
     .parents = &to_gw,
     .nparents = 1,
     .rules = prefix_rules,
     .nrules = N(prefix_rules)},
    {.meta = {.name = "regex", .ns = "default", .seq = 3},
     .parents = &to_gw,
     .nparents = 1,
     .hostnames = host_names,
     .nhostnames = N(host_names),
     .rules = regex_rules,
     .nrules = N(regex_rules)},
    {.meta = {.name = "wild", .ns = "default", .seq = 4},
     .parents = &to_gw,
     .nparents = 1,
     .hostnames = wild_names,
     .nhostnames = N(wild_names),
     .rules = wild_rules,
     .nrules = N(wild_rules)},
};

static struct ig_listener listeners[] = {
    {.name = "any", .protocol = "HTTP", .port = 80},
    {.name = "wild", .protocol = "HTTP", .port = 8080, .hostname = "*.example.com"},
};

static struct ig_gateway gateway = {
    .meta = {.kind = "Gateway", .name = "gw", .ns = "default"},
    .listeners = listeners,
    .nlisteners = N(listeners),
};

static struct ig_config config = {
    .gateways = &gateway, .ngateways = 1, .routes = routes, .nroutes = N(routes)};

/* Built on the first input and kept for the life of the process. */
static struct ig_listener_routes *tables[N(listeners)];

/* ---- input -------------------------------------------------------------- */

/* The next '\n'-terminated field of the input (the rest when there is no
 * newline). */
static struct ig_str next_field(const char **p, const char *end)
{
	const char *s = *p;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	const char *e = nl ? nl : end;
	*p = nl ? nl + 1 : end;
	return (struct ig_str){s, (size_t)(e - s)};
}

static size_t parse_headers(const char *p, const char *end, struct ig_http_header *h)
{
	size_t n = 0;
	while (p < end && n < MAX_HEADERS) {
		struct ig_str line = next_field(&p, end);
		const char *colon = memchr(line.ptr, ':', line.len);
		if (!colon)
			continue;
		h[n].name = (struct ig_str){line.ptr, (size_t)(colon - line.ptr)};
		h[n].value = ig_str_trim(
		    (struct ig_str){colon + 1, line.len - (size_t)(colon - line.ptr) - 1});
		n++;
	}
	return n;
}

/* ---- independent checks of a result --------------------------------------- */

static struct ig_str strip_port(struct ig_str h)
{
	if (h.len && h.ptr[0] == '[')
		return h;
	const char *c = memchr(h.ptr, ':', h.len);
	return c ? (struct ig_str){h.ptr, (size_t)(c - h.ptr)} : h;
}

/* Whether one of the route's own hostnames admits host. Wildcards need a
 * non-empty label in front of the suffix. */
static bool host_admitted(const struct ig_httproute *r, struct ig_str host)
{
	if (r->nhostnames == 0)
		return true;
	for (size_t i = 0; i < r->nhostnames; i++) {
		struct ig_str name = ig_str_from(r->hostnames[i]);
		if (name.len >= 2 && name.ptr[0] == '*') {
			struct ig_str suffix = {name.ptr + 1, name.len - 1};
			if (host.len > suffix.len &&
			    ig_str_ieq(
				(struct ig_str){host.ptr + host.len - suffix.len, suffix.len},
				suffix))
				return true;
		} else if (ig_str_ieq(name, host)) {
			return true;
		}
	}
	return false;
}

static const struct ig_http_header *first_header(const struct ig_route_request *req,
						 const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (ig_str_ieq_cstr(req->headers[i].name, name))
			return &req->headers[i];
	return NULL;
}

static void check_result(const struct ig_route_request *req, const struct ig_route_result *res,
			 const struct ig_listener *l)
{
	const struct ig_httproute *r = res->route;
	if (r < routes || r >= routes + N(routes))
		abort();
	if (res->rule_index >= r->nrules || res->rule != &r->rules[res->rule_index])
		abort();
	const struct ig_route_rule *rule = res->rule;
	if (res->match_index >= (rule->nmatches ? rule->nmatches : 1))
		abort();
	if (rule->nmatches == 0)
		return; /* PathPrefix "/" matches everything */
	const struct ig_route_match *m = &rule->matches[res->match_index];

	if (m->method && !ig_str_eq_cstr(req->method, m->method))
		abort();
	struct ig_str want = ig_str_from(m->path);
	if (m->path_type == IG_PATH_EXACT && !ig_str_eq(req->path, want))
		abort();
	if (m->path_type == IG_PATH_PREFIX) {
		if (want.len > 1 && want.ptr[want.len - 1] == '/')
			want.len--;
		if (want.len > 1 && (!ig_str_has_prefix(req->path, want) ||
				     (req->path.len > want.len && req->path.ptr[want.len] != '/')))
			abort();
	}
	if (m->path_type == IG_PATH_REGEX && m->path[0] == '(')
		abort(); /* the pattern that does not compile */
	/* Only the first predicate of a name counts, so only that one is
	 * checked; regexes are left to the implementation. */
	for (size_t i = 0; i < m->nheaders && i < 1; i++) {
		const struct ig_http_header *h = first_header(req, m->headers[i].name);
		if (!h)
			abort();
		if (m->headers[i].type == IG_MATCH_EXACT &&
		    !ig_str_eq_cstr(h->value, m->headers[i].value))
			abort();
	}
	struct ig_str host = strip_port(req->host);
	bool v6 = host.len && host.ptr[0] == '[';
	if (!v6 && !host_admitted(r, host))
		abort();
	/* The listener's hostname restricts every route attached to it. */
	struct ig_httproute lr = {.hostnames = (char **)&l->hostname, .nhostnames = 1};
	if (l->hostname && !v6 && !host_admitted(&lr, host))
		abort();
}

static void check_pick(const struct ig_route_rule *rule, struct ig_rng *rng)
{
	bool any = false;
	for (size_t i = 0; i < rule->nbackends; i++)
		any |= rule->backends[i].weight > 0;
	for (int i = 0; i < 4; i++) {
		const struct ig_backend_ref *b = ig_route_pick_backend(rule, rng);
		if (!b) {
			if (any)
				abort();
			continue;
		}
		if (b < rule->backends || b >= rule->backends + rule->nbackends || b->weight <= 0)
			abort();
	}
}

static void route_fixed(const char *p, const char *end, uint64_t seed)
{
	struct ig_http_header hs[MAX_HEADERS];
	struct ig_route_request req = {.headers = hs};

	req.method = next_field(&p, end);
	struct ig_str target = next_field(&p, end);
	req.host = next_field(&p, end);
	req.nheaders = parse_headers(p, end, hs);
	const char *q = memchr(target.ptr, '?', target.len);
	req.path = (struct ig_str){target.ptr, q ? (size_t)(q - target.ptr) : target.len};
	req.query =
	    q ? (struct ig_str){q + 1, target.len - req.path.len - 1} : (struct ig_str){"", 0};

	for (size_t t = 0; t < N(tables); t++) {
		struct ig_route_result res, again;
		int rc = ig_routes_match(tables[t], 0, &req, &res);
		if (rc != 0 && rc != -1)
			abort();
		if (rc != 0 && ig_routes_match_walk(tables[t], 0, &req, &again) != -1)
			abort();
		/* Matching is a pure function of the request, whichever worker's
		 * copies of the regular expressions run. */
		if (ig_routes_match(tables[t], 1, &req, &again) != rc)
			abort();
		if (rc != 0)
			continue;
		if (again.route != res.route || again.rule != res.rule ||
		    again.match_index != res.match_index)
			abort();
		/* The index finds what a walk of every entry finds. */
		if (ig_routes_match_walk(tables[t], 0, &req, &again) != 0 ||
		    again.route != res.route || again.rule != res.rule ||
		    again.match_index != res.match_index)
			abort();
		check_result(&req, &res, &listeners[t]);
		struct ig_rng rng;
		ig_rng_seed(&rng, seed);
		check_pick(res.rule, &rng);
	}
}

/* ---- tables built from the input's hostnames -------------------------------- */

static void route_hostnames(const char *p, const char *end)
{
	char *names[3];
	struct ig_str host;
	for (size_t i = 0; i < N(names); i++) {
		struct ig_str f = next_field(&p, end);
		names[i] = ig_str_dup(f);
		if (!names[i])
			abort();
	}
	host = next_field(&p, end);

	struct ig_route_rule rule = {.backends = single, .nbackends = 1};
	struct ig_httproute r = {.meta = {.name = "h", .ns = "default", .seq = 1},
				 .parents = &to_gw,
				 .nparents = 1,
				 .hostnames = &names[1],
				 .nhostnames = names[2][0]   ? 2
					       : names[1][0] ? 1
							     : 0,
				 .rules = &rule,
				 .nrules = 1};
	struct ig_listener l = {
	    .name = "l", .protocol = "HTTP", .port = 80, .hostname = names[0][0] ? names[0] : NULL};
	struct ig_gateway gw = {
	    .meta = {.name = "gw", .ns = "default"}, .listeners = &l, .nlisteners = 1};
	struct ig_config cfg = {.gateways = &gw, .ngateways = 1, .routes = &r, .nroutes = 1};
	struct ig_listener_routes *t = ig_routes_build(&cfg, &gw, &l, 1);
	if (!t || ig_routes_count(t) > 1)
		abort();
	struct ig_route_request req = {.method = IG_STR("GET"), .path = IG_STR("/"), .host = host};
	struct ig_route_result res, walked;
	int rc = ig_routes_match(t, 0, &req, &res);
	if (rc == 0 && (res.route != &r || res.rule != &rule))
		abort();
	/* The index, on hostnames the input chose, finds what a walk finds. */
	if (ig_routes_match_walk(t, 0, &req, &walked) != rc ||
	    (rc == 0 && (walked.route != res.route || walked.rule != res.rule)))
		abort();
	ig_routes_free(t);
	for (size_t i = 0; i < N(names); i++)
		free(names[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = size;
	/* A NUL-terminated copy: the sanitizers' regexec interceptor ignores
	 * REG_STARTEND and runs strlen over the subject, which would read past
	 * an unterminated input. glibc itself stops at rm_eo. */
	char *copy = malloc(size + 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *p = copy, *end = copy + size;

	if (!tables[0]) {
		for (size_t i = 0; i < N(tables); i++)
			if (!(tables[i] = ig_routes_build(&config, &gateway, &listeners[i], 2)))
				abort();
	}
	if (size && p[0] == '#') {
		route_hostnames(p + 1, end);
	} else {
		for (size_t i = 0; i < size && i < 8; i++)
			seed = seed * 131 + data[i];
		route_fixed(p, end, seed);
	}
	free(copy);
	return 0;
}
