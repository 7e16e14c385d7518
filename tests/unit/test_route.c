/* Routing tables: attachment, hostnames, match semantics and precedence,
 * mostly replaying the Gateway API conformance suite's HTTP cases against
 * configurations built by hand (the YAML loader is tested on its own). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- building configurations by hand ----------------------------------- */

#define PREFIX(p) .path_type = IG_PATH_PREFIX, .path = (p)
#define EXACT(p) .path_type = IG_PATH_EXACT, .path = (p)
#define REGEX(p) .path_type = IG_PATH_REGEX, .path = (p)
#define HDR(n, v)                                                                                  \
	{                                                                                          \
		.type = IG_MATCH_EXACT, .name = (n), .value = (v)                                  \
	}
#define HDR_RE(n, v)                                                                               \
	{                                                                                          \
		.type = IG_MATCH_REGEX, .name = (n), .value = (v)                                  \
	}
#define HDRS(...)                                                                                  \
	.headers = (struct ig_header_match[]){__VA_ARGS__},                                        \
	.nheaders = N(((struct ig_header_match[]){__VA_ARGS__}))
#define QUERY(...)                                                                                 \
	.query = (struct ig_header_match[]){__VA_ARGS__},                                          \
	.nquery = N(((struct ig_header_match[]){__VA_ARGS__}))
/* A rule from a list of matches, each a brace-enclosed ig_route_match. */
#define RULE(...)                                                                                  \
	{                                                                                          \
		.matches = (struct ig_route_match[]){__VA_ARGS__},                                 \
		.nmatches = N(((struct ig_route_match[]){__VA_ARGS__}))                            \
	}

static struct ig_parent_ref to_gw = {.name = "gw"};

/* A route in namespace ns attached to Gateway "gw" of its namespace. */
static struct ig_httproute mkroute(const char *ns, const char *name, const char *created,
				   struct ig_route_rule *rules, size_t nrules)
{
	static size_t seq;
	struct ig_httproute r = {
	    .meta = {.kind = "HTTPRoute", .name = (char *)name, .ns = (char *)ns, .seq = ++seq},
	    .parents = &to_gw,
	    .nparents = 1,
	    .rules = rules,
	    .nrules = nrules,
	};
	assert_int_equal(ig_meta_set_created(&r.meta, (char *)created), 0);
	return r;
}

static struct ig_listener http80 = {.name = "http", .protocol = "HTTP", .port = 80};

static struct ig_gateway mkgateway(struct ig_listener *ls, size_t n)
{
	return (struct ig_gateway){
	    .meta = {.kind = "Gateway", .name = "gw", .ns = "default"},
	    .class_name = "infergate",
	    .listeners = ls,
	    .nlisteners = n,
	};
}

/* The config only has to outlive the table; one per test is enough. */
static struct ig_config cfg;

/* Tables are built for WORKERS workers and route_of() takes turns with
 * the worker index (going past WORKERS on purpose), so every case below
 * runs against every copy of the compiled regular expressions. */
#define WORKERS 3
static size_t next_worker;

static struct ig_listener_routes *build_on(struct ig_httproute *routes, size_t n,
					   struct ig_gateway *gw, size_t listener)
{
	cfg = (struct ig_config){.gateways = gw, .ngateways = 1, .routes = routes, .nroutes = n};
	struct ig_listener_routes *t = ig_routes_build(&cfg, gw, &gw->listeners[listener], WORKERS);
	assert_non_null(t);
	return t;
}

static struct ig_listener_routes *build(struct ig_httproute *routes, size_t n)
{
	static struct ig_gateway gw;
	gw = mkgateway(&http80, 1);
	return build_on(routes, n, &gw, 0);
}

/* ---- sending requests --------------------------------------------------- */

/* Routes "METHOD /path?query" with a Host and "Name: value" headers (NULL
 * ends the list). Answers "route/rule.match" or "404". */
static const char *route_of(const struct ig_listener_routes *t, const char *host, const char *line,
			    ...)
{
	static char out[128];
	struct ig_http_header hs[8];
	struct ig_route_request req = {.host = ig_str_from(host), .headers = hs};
	const char *sp = strchr(line, ' ');
	const char *target = sp + 1;
	const char *q = strchr(target, '?');
	va_list ap;

	req.method = (struct ig_str){line, (size_t)(sp - line)};
	req.path = (struct ig_str){target, q ? (size_t)(q - target) : strlen(target)};
	req.query = q ? ig_str_from(q + 1) : (struct ig_str){"", 0};
	va_start(ap, line);
	for (const char *h; (h = va_arg(ap, const char *)) && req.nheaders < N(hs);) {
		const char *colon = strchr(h, ':');
		hs[req.nheaders].name = (struct ig_str){h, (size_t)(colon - h)};
		hs[req.nheaders++].value = ig_str_from(colon + 2);
	}
	va_end(ap);

	struct ig_route_result res, walked;
	size_t w = next_worker++ % (WORKERS + 1);
	int rc = ig_routes_match(t, w, &req, &res);
	/* Every case also checks that the index finds what a walk of every
	 * entry finds. */
	assert_int_equal(ig_routes_match_walk(t, w, &req, &walked), rc);
	if (rc != 0)
		return "404";
	assert_ptr_equal(walked.route, res.route);
	assert_ptr_equal(walked.rule, res.rule);
	assert_int_equal(walked.match_index, res.match_index);
	assert_ptr_equal(res.rule, &res.route->rules[res.rule_index]);
	snprintf(out, sizeof(out), "%s/%zu.%zu", res.route->meta.name, res.rule_index,
		 res.match_index);
	return out;
}

#define GET(t, path, ...) route_of((t), "example.com", "GET " path, ##__VA_ARGS__, NULL)

/* ---- path and header matching (conformance) ------------------------------ */

/* HTTPRouteMatching: PathPrefix and header matches in one route. */
static void test_conformance_matching(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/")}),
	    RULE({PREFIX("/v2")}, {PREFIX("/"), HDRS(HDR("version", "two"))}),
	};
	struct ig_httproute r = mkroute("default", "matching", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_int_equal(ig_routes_count(t), 3);
	assert_string_equal(GET(t, "/"), "matching/0.0");
	assert_string_equal(GET(t, "/example"), "matching/0.0");
	assert_string_equal(GET(t, "/", "Version: one"), "matching/0.0");
	assert_string_equal(GET(t, "/v2"), "matching/1.0");
	assert_string_equal(GET(t, "/v2/example"), "matching/1.0");
	assert_string_equal(GET(t, "/", "Version: two"), "matching/1.1");
	assert_string_equal(GET(t, "/v2example"), "matching/0.0");
	assert_string_equal(GET(t, "/foo/v2/example"), "matching/0.0");
	ig_routes_free(t);
}

/* HTTPRouteHeaderMatching: AND within a match, OR across matches,
 * case-insensitive names, precedence by header count then rule order. */
static void test_conformance_header_matching(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/"), HDRS(HDR("Version", "one"))}),
	    RULE({PREFIX("/"), HDRS(HDR("Version", "two"))}),
	    RULE({PREFIX("/"), HDRS(HDR("Version", "two"), HDR("Color", "orange"))}),
	    RULE({PREFIX("/"), HDRS(HDR("Color", "blue"))},
		 {PREFIX("/"), HDRS(HDR("Color", "green"))}),
	    RULE({PREFIX("/"), HDRS(HDR("Color", "red"))},
		 {PREFIX("/"), HDRS(HDR("Color", "yellow"))}),
	};
	struct ig_httproute r = mkroute("default", "hdr", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/", "Version: one"), "hdr/0.0");
	assert_string_equal(GET(t, "/", "version: one"), "hdr/0.0");
	assert_string_equal(GET(t, "/", "Version: two"), "hdr/1.0");
	assert_string_equal(GET(t, "/", "Version: two", "Color: orange"), "hdr/2.0");
	assert_string_equal(GET(t, "/", "COLOR: orange", "version: two"), "hdr/2.0");
	assert_string_equal(GET(t, "/", "Version: two", "Color: blue"), "hdr/1.0");
	assert_string_equal(GET(t, "/", "Color: blue"), "hdr/3.0");
	assert_string_equal(GET(t, "/", "Color: green"), "hdr/3.1");
	assert_string_equal(GET(t, "/", "Color: red"), "hdr/4.0");
	assert_string_equal(GET(t, "/", "Color: yellow"), "hdr/4.1");
	/* Values are byte-exact, absent headers never match. */
	assert_string_equal(GET(t, "/", "Color: Blue"), "404");
	assert_string_equal(GET(t, "/", "Color: purple"), "404");
	assert_string_equal(GET(t, "/", "Version: three"), "404");
	assert_string_equal(GET(t, "/"), "404");
	ig_routes_free(t);
}

/* HTTPRouteExactPathMatching. */
static void test_exact_path(void **state)
{
	struct ig_route_rule rules[] = {RULE({EXACT("/one")}), RULE({EXACT("/two")})};
	struct ig_httproute r = mkroute("default", "exact", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/one"), "exact/0.0");
	assert_string_equal(GET(t, "/two"), "exact/1.0");
	assert_string_equal(GET(t, "/"), "404");
	assert_string_equal(GET(t, "/one/example"), "404");
	assert_string_equal(GET(t, "/two/"), "404");
	assert_string_equal(GET(t, "/Two"), "404");
	assert_string_equal(GET(t, "/onex"), "404");
	/* The query is not part of the path. */
	assert_string_equal(GET(t, "/one?x=1"), "exact/0.0");
	ig_routes_free(t);
}

/* HTTPRoutePathMatchOrder: Exact over any prefix, then the longest prefix,
 * whatever the rule order. */
static void test_path_match_order(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/match")}),
	    RULE({PREFIX("/match/prefix")}),
	    RULE({PREFIX("/match/prefix/one")}),
	    RULE({EXACT("/match/exact")}),
	    RULE({EXACT("/match/exact/one")}),
	    RULE({PREFIX("/match/exact/one")}),
	};
	struct ig_httproute r = mkroute("default", "order", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/match"), "order/0.0");
	assert_string_equal(GET(t, "/match/other"), "order/0.0");
	assert_string_equal(GET(t, "/match/prefix"), "order/1.0");
	assert_string_equal(GET(t, "/match/prefix/two"), "order/1.0");
	assert_string_equal(GET(t, "/match/prefix/one/x"), "order/2.0");
	assert_string_equal(GET(t, "/match/exact"), "order/3.0");
	assert_string_equal(GET(t, "/match/exact/one"), "order/4.0");
	assert_string_equal(GET(t, "/match/exact/one/x"), "order/5.0");
	assert_string_equal(GET(t, "/match/exact/two"), "order/0.0");
	assert_string_equal(GET(t, "/matches"), "404");
	ig_routes_free(t);
}

/* A trailing '/' on a prefix is ignored and prefixes end on segment
 * boundaries. */
static void test_prefix_trailing_slash(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/abc/")}), RULE({PREFIX("/v2")})};
	struct ig_httproute r = mkroute("default", "pfx", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/abc"), "pfx/0.0");
	assert_string_equal(GET(t, "/abc/"), "pfx/0.0");
	assert_string_equal(GET(t, "/abc/def"), "pfx/0.0");
	assert_string_equal(GET(t, "/abcd"), "404");
	assert_string_equal(GET(t, "/ab"), "404");
	assert_string_equal(GET(t, "/v2"), "pfx/1.0");
	assert_string_equal(GET(t, "/v2/"), "pfx/1.0");
	assert_string_equal(GET(t, "/v2example"), "404");
	assert_string_equal(GET(t, "/V2"), "404");
	ig_routes_free(t);
}

/* Request paths arrive normalized (http/parse.h: unreserved escapes
 * decoded); a value written with such escapes matches them the same. */
static void test_path_values_normalized(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/%61pi/")}), RULE({EXACT("/v%31/%7Eme")}),
					RULE({PREFIX("/a%2Fb")})};
	struct ig_httproute r = mkroute("default", "norm", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/api"), "norm/0.0");
	assert_string_equal(GET(t, "/api/x"), "norm/0.0");
	assert_string_equal(GET(t, "/v1/~me"), "norm/1.0");
	assert_string_equal(GET(t, "/a%2Fb/c"), "norm/2.0");
	assert_string_equal(GET(t, "/a/b"), "404");
	ig_routes_free(t);
}

/* A rule without matches means PathPrefix "/" (the CRD default). */
static void test_rule_without_matches(void **state)
{
	struct ig_route_rule rules[] = {{.name = "all"}};
	struct ig_httproute r = mkroute("default", "bare", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_int_equal(ig_routes_count(t), 1);
	assert_string_equal(GET(t, "/anything/at/all"), "bare/0.0");
	ig_routes_free(t);
}

/* ---- method, query and regex matching ---------------------------------- */

/* HTTPRouteMethodMatching, and a method outranks any number of headers. */
static void test_method_matching(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/"), .method = "POST"}),
	    RULE({PREFIX("/"), .method = "GET"}),
	    RULE({PREFIX("/h"), HDRS(HDR("a", "1"), HDR("b", "2"))}),
	    RULE({PREFIX("/h"), .method = "PUT"}),
	};
	struct ig_httproute r = mkroute("default", "m", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(route_of(t, "x", "POST /", NULL), "m/0.0");
	assert_string_equal(route_of(t, "x", "GET /", NULL), "m/1.0");
	assert_string_equal(route_of(t, "x", "HEAD /", NULL), "404");
	assert_string_equal(route_of(t, "x", "post /", NULL), "404");
	assert_string_equal(route_of(t, "x", "PUT /h", "a: 1", "b: 2", NULL), "m/3.0");
	assert_string_equal(route_of(t, "x", "DELETE /h", "a: 1", "b: 2", NULL), "m/2.0");
	ig_routes_free(t);
}

/* HTTPRouteQueryParamMatching plus decoding, repeats and precedence:
 * more header matches beat more query matches. */
static void test_query_matching(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/"), QUERY(HDR("animal", "whale"))}),
	    RULE({PREFIX("/"), QUERY(HDR("animal", "dolphin"), HDR("color", "blue"))}),
	    RULE({PREFIX("/"), QUERY(HDR("animal", "dolphin"))}),
	    RULE({PREFIX("/"), QUERY(HDR_RE("id", "[0-9]+"))}),
	    RULE({PREFIX("/"), QUERY(HDR("msg", "a b&c"))}),
	    RULE({PREFIX("/"), HDRS(HDR("x", "1")), QUERY(HDR("animal", "dolphin"))}),
	};
	struct ig_httproute r = mkroute("default", "q", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/?animal=whale"), "q/0.0");
	assert_string_equal(GET(t, "/?x=1&animal=whale&y"), "q/0.0");
	assert_string_equal(GET(t, "/?animal=wh%61le"), "q/0.0");
	assert_string_equal(GET(t, "/?Animal=whale"), "404");
	assert_string_equal(GET(t, "/?animal=Whale"), "404");
	assert_string_equal(GET(t, "/?animal=whale2"), "404");
	assert_string_equal(GET(t, "/?animal"), "404");
	/* The first of repeated parameters counts. */
	assert_string_equal(GET(t, "/?animal=dolphin&animal=whale"), "q/2.0");
	assert_string_equal(GET(t, "/?animal=whale&animal=dolphin"), "q/0.0");
	/* More query matches win; a header match outranks them. */
	assert_string_equal(GET(t, "/?color=blue&animal=dolphin"), "q/1.0");
	assert_string_equal(GET(t, "/?color=blue&animal=dolphin", "x: 1"), "q/5.0");
	/* Regex values are decoded first and anchored to the whole value. */
	assert_string_equal(GET(t, "/?id=42"), "q/3.0");
	assert_string_equal(GET(t, "/?id=%34%32"), "q/3.0");
	assert_string_equal(GET(t, "/?id=42a"), "404");
	assert_string_equal(GET(t, "/?id="), "404");
	/* Encoded separators belong to the value; stray '%' stays literal. */
	assert_string_equal(GET(t, "/?msg=a%20b%26c"), "q/4.0");
	assert_string_equal(GET(t, "/?msg=a%2"), "404");
	assert_string_equal(GET(t, "/?msg=a+b&c"), "404");
	ig_routes_free(t);
}

/* Regex paths are POSIX ERE anchored to the whole path; precedence: Exact,
 * then RegularExpression, then PathPrefix. A bad pattern never matches. */
static void test_regex_path(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/")}),
	    RULE({REGEX("/v[0-9]+/models")}),
	    RULE({EXACT("/v1/models")}),
	    RULE({REGEX("/alt|/alt-long")}),
	    RULE({REGEX("/bad(")}, {PREFIX("/bad")}),
	};
	struct ig_httproute r = mkroute("default", "re", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_int_equal(ig_routes_count(t), 6);
	assert_string_equal(GET(t, "/v2/models"), "re/1.0");
	assert_string_equal(GET(t, "/v12/models"), "re/1.0");
	assert_string_equal(GET(t, "/v1/models"), "re/2.0");
	assert_string_equal(GET(t, "/v2/models/x"), "re/0.0");
	assert_string_equal(GET(t, "/x/v2/models"), "re/0.0");
	assert_string_equal(GET(t, "/alt"), "re/3.0");
	assert_string_equal(GET(t, "/alt-long"), "re/3.0");
	assert_string_equal(GET(t, "/alt-longer"), "re/0.0");
	assert_string_equal(GET(t, "/bad("), "re/0.0");
	assert_string_equal(GET(t, "/bad"), "re/4.1");
	ig_routes_free(t);
}

/* Header regex values, duplicate names in one match (the first counts) and
 * repeated request headers (the first one sent counts). */
static void test_header_regex_and_duplicates(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/re"), HDRS(HDR_RE("x-model", "llama-[0-9]+b"))}),
	    RULE({PREFIX("/dup"), HDRS(HDR("tier", "gold"), HDR("Tier", "silver"))}),
	    RULE({PREFIX("/dup"), HDRS(HDR("a", "1"))}),
	};
	struct ig_httproute r = mkroute("default", "h", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(GET(t, "/re", "X-Model: llama-70b"), "h/0.0");
	assert_string_equal(GET(t, "/re", "X-Model: llama-70bx"), "404");
	assert_string_equal(GET(t, "/re", "X-Model: my-llama-70b"), "404");
	/* Only "tier: gold" is required, and it counts as one header. */
	assert_string_equal(GET(t, "/dup", "Tier: gold"), "h/1.0");
	assert_string_equal(GET(t, "/dup", "Tier: silver"), "404");
	assert_string_equal(GET(t, "/dup", "a: 1", "Tier: gold"), "h/1.0");
	assert_string_equal(GET(t, "/dup", "Tier: bronze", "Tier: gold"), "404");
	assert_string_equal(GET(t, "/dup", "Tier: gold", "Tier: bronze"), "h/1.0");
	ig_routes_free(t);
}

/* ---- several workers at once ---------------------------------------------- */

/* Each worker matches with its own copies of the regular expressions
 * (glibc's regexec() locks the regex_t it runs). Workers matching on one
 * table all at once must each get the right answer every time, and so
 * must a thread whose index is past the table's count (it shares copy 0
 * with worker 0: slower, still right). */
#define MT_WORKERS 4
#define MT_THREADS (MT_WORKERS + 1)
#define MT_ROUNDS 20000

struct mt_case {
	const char *path, *query;
	const char *model; /* the x-model header, NULL for none */
	int rule;	   /* the rule that must answer, -1 for 404 */
};

static const struct mt_case mt_cases[] = {
    {"/v2/models", "", NULL, 0}, {"/v10/chat", "", NULL, 0},	{"/v2/other", "", NULL, -1},
    {"/m", "", "llama-70b", 1},	 {"/m/x", "", "llama-7bx", -1}, {"/q", "id=42", NULL, 2},
    {"/q", "id=4x", NULL, -1},	 {"/q", "id=%34%32", NULL, 2},
};

struct mt_arg {
	const struct ig_listener_routes *t;
	size_t worker;
	int failures;
};

static void *mt_run(void *arg)
{
	struct mt_arg *a = arg;
	struct ig_http_header h = {.name = IG_STR("x-model")};
	for (size_t i = 0; i < MT_ROUNDS; i++) {
		const struct mt_case *c = &mt_cases[(i + a->worker) % N(mt_cases)];
		struct ig_route_request req = {.method = IG_STR("GET"),
					       .path = ig_str_from(c->path),
					       .query = ig_str_from(c->query),
					       .host = IG_STR("example.com"),
					       .headers = &h,
					       .nheaders = c->model != NULL};
		if (c->model)
			h.value = ig_str_from(c->model);
		struct ig_route_result res;
		int got =
		    ig_routes_match(a->t, a->worker, &req, &res) == 0 ? (int)res.rule_index : -1;
		if (got != c->rule)
			a->failures++;
	}
	return NULL;
}

static void test_workers_match_at_once(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({REGEX("/v[0-9]+/(models|chat)")}),
	    RULE({PREFIX("/m"), HDRS(HDR_RE("x-model", "llama-[0-9]+b"))}),
	    RULE({PREFIX("/q"), QUERY(HDR_RE("id", "[0-9]+"))}),
	};
	struct ig_httproute r = mkroute("default", "mt", NULL, rules, N(rules));
	static struct ig_gateway gw;
	gw = mkgateway(&http80, 1);
	cfg = (struct ig_config){.gateways = &gw, .ngateways = 1, .routes = &r, .nroutes = 1};
	struct ig_listener_routes *t = ig_routes_build(&cfg, &gw, &gw.listeners[0], MT_WORKERS);
	assert_non_null(t);
	struct mt_arg args[MT_THREADS];
	pthread_t th[MT_THREADS];
	for (size_t i = 0; i < MT_THREADS; i++) {
		args[i] = (struct mt_arg){.t = t, .worker = i};
		assert_int_equal(pthread_create(&th[i], NULL, mt_run, &args[i]), 0);
	}
	for (size_t i = 0; i < MT_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	ig_routes_free(t);
}

/* ---- compiled patterns shared across tables ------------------------------ */

/* Every snapshot an in-flight request holds keeps its tables: tables built
 * from the same patterns (a reload that changed something else) share
 * their compiled copies, and only the last table holding a pattern frees
 * it. Patterns are told apart by text and by worker count; a table keeps
 * matching right after the one it shares with is gone. */
static void test_tables_share_patterns(void **state)
{
	size_t base = ig_routes_patterns();
	/* Texts of their own (on the heap), as a reload's new configuration
	 * has: sharing goes by the text, not by where it is. */
	char *p1 = strdup("/v[0-9]+/models"), *p2 = strdup("/v[0-9]+/models");
	char *h1 = strdup("llama-[0-9]+b"), *h2 = strdup("llama-[0-9]+b");
	struct ig_route_rule a_rules[] = {
	    RULE({REGEX(p1)}, {PREFIX("/m"), HDRS(HDR_RE("x-model", h1))})};
	struct ig_route_rule b_rules[] = {
	    RULE({REGEX(p2)}, {PREFIX("/m"), HDRS(HDR_RE("x-model", h2))})};
	struct ig_route_rule c_rules[] = {RULE(
	    {REGEX("/v[0-9]+/chat")}, {PREFIX("/m"), HDRS(HDR_RE("x-model", "llama-[0-9]+b"))})};
	struct ig_httproute ra = mkroute("default", "a", NULL, a_rules, N(a_rules));
	struct ig_httproute rb = mkroute("default", "b", NULL, b_rules, N(b_rules));
	struct ig_httproute rc = mkroute("default", "c", NULL, c_rules, N(c_rules));

	struct ig_listener_routes *a = build(&ra, 1);
	assert_int_equal(ig_routes_patterns(), base + 2);
	struct ig_listener_routes *b = build(&rb, 1);
	assert_int_equal(ig_routes_patterns(), base + 2);
	/* One pattern changed: only that one is compiled again. */
	struct ig_listener_routes *c = build(&rc, 1);
	assert_int_equal(ig_routes_patterns(), base + 3);
	/* Other workers, other copies. */
	static struct ig_gateway gw;
	gw = mkgateway(&http80, 1);
	cfg = (struct ig_config){.gateways = &gw, .ngateways = 1, .routes = &ra, .nroutes = 1};
	struct ig_listener_routes *d = ig_routes_build(&cfg, &gw, &gw.listeners[0], WORKERS + 1);
	assert_non_null(d);
	assert_int_equal(ig_routes_patterns(), base + 5);
	ig_routes_free(d);
	assert_int_equal(ig_routes_patterns(), base + 3);

	ig_routes_free(a);
	free(p1);
	free(h1);
	assert_int_equal(ig_routes_patterns(), base + 3);
	for (size_t w = 0; w < WORKERS; w++) {
		assert_string_equal(GET(b, "/v2/models"), "b/0.0");
		assert_string_equal(GET(b, "/m", "X-Model: llama-70b"), "b/0.1");
		assert_string_equal(GET(b, "/m", "X-Model: llama-70bx"), "404");
		assert_string_equal(GET(c, "/v2/chat"), "c/0.0");
		assert_string_equal(GET(c, "/v2/models"), "404");
	}
	ig_routes_free(b);
	assert_int_equal(ig_routes_patterns(), base + 2);
	ig_routes_free(c);
	assert_int_equal(ig_routes_patterns(), base);
	free(p2);
	free(h2);
}

/* Snapshots are built on the control thread while a worker may be
 * freeing the last one holding a pattern (its request was the last to
 * end): the cache of shared patterns takes both at once (run under TSan by
 * `make tsan`). The freeing thread matches first, with its own copy. */
#define SWAP_ROUNDS 200

struct swap_arg {
	struct ig_listener_routes *t;
	int failures;
};

static void *swap_free(void *arg)
{
	struct swap_arg *a = arg;
	struct ig_http_header h = {.name = IG_STR("x-model"), .value = IG_STR("llama-8b")};
	struct ig_route_request req = {.method = IG_STR("GET"),
				       .path = IG_STR("/m"),
				       .host = IG_STR("example.com"),
				       .headers = &h,
				       .nheaders = 1};
	struct ig_route_result res;
	if (ig_routes_match(a->t, 1, &req, &res) != 0 || res.rule_index != 1)
		a->failures++;
	ig_routes_free(a->t);
	return NULL;
}

static void test_tables_freed_while_building(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({REGEX("/v[0-9]+/(models|chat)")}),
	    RULE({PREFIX("/m"), HDRS(HDR_RE("x-model", "llama-[0-9]+b"))}),
	    RULE({PREFIX("/q"), QUERY(HDR_RE("id", "[0-9]+"))}),
	};
	struct ig_httproute r = mkroute("default", "sw", NULL, rules, N(rules));
	static struct ig_gateway gw;
	gw = mkgateway(&http80, 1);
	cfg = (struct ig_config){.gateways = &gw, .ngateways = 1, .routes = &r, .nroutes = 1};
	size_t base = ig_routes_patterns();
	struct swap_arg arg = {0};
	pthread_t th;
	bool running = false;

	for (size_t i = 0; i < SWAP_ROUNDS; i++) {
		/* Every other round, the last table is gone before the next is
		 * built: its patterns are compiled again. */
		struct ig_listener_routes *t = ig_routes_build(&cfg, &gw, &gw.listeners[0], 2);
		assert_non_null(t);
		if (running)
			assert_int_equal(pthread_join(th, NULL), 0);
		running = false;
		arg.t = t;
		if (i % 2 == 0) {
			assert_int_equal(pthread_create(&th, NULL, swap_free, &arg), 0);
			running = true;
		} else {
			swap_free(&arg);
		}
	}
	if (running)
		assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(arg.failures, 0);
	assert_int_equal(ig_routes_patterns(), base);
}

/* ---- hostnames ---------------------------------------------------------- */

/* A listener without hostname: the route's own names, exact and wildcard;
 * port stripped and case ignored on the Host header. */
static void test_route_hostnames(void **state)
{
	char *hosts[] = {"foo.example.com", "*.wild.io"};
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute r = mkroute("default", "h", NULL, rules, N(rules));
	r.hostnames = hosts;
	r.nhostnames = N(hosts);
	struct ig_listener_routes *t = build(&r, 1);

	assert_string_equal(route_of(t, "foo.example.com", "GET /", NULL), "h/0.0");
	assert_string_equal(route_of(t, "foo.example.com:8080", "GET /", NULL), "h/0.0");
	assert_string_equal(route_of(t, "FOO.Example.COM", "GET /", NULL), "h/0.0");
	assert_string_equal(route_of(t, "bar.example.com", "GET /", NULL), "404");
	assert_string_equal(route_of(t, "a.wild.io", "GET /", NULL), "h/0.0");
	assert_string_equal(route_of(t, "a.b.wild.io:1", "GET /", NULL), "h/0.0");
	assert_string_equal(route_of(t, "wild.io", "GET /", NULL), "404");
	assert_string_equal(route_of(t, ".wild.io", "GET /", NULL), "404");
	assert_string_equal(route_of(t, "xwild.io", "GET /", NULL), "404");
	assert_string_equal(route_of(t, "", "GET /", NULL), "404");
	ig_routes_free(t);
}

/* HTTPRouteHostnameIntersection: a route serves only the intersection of
 * its hostnames with the listener's; no intersection, no attachment. */
static void test_hostname_intersection(void **state)
{
	struct ig_listener ls[] = {
	    {.name = "precise", .protocol = "HTTP", .port = 80, .hostname = "very.specific.com"},
	    {.name = "wild", .protocol = "HTTP", .port = 80, .hostname = "*.wildcard.io"},
	    {.name = "com", .protocol = "HTTP", .port = 80, .hostname = "*.com"},
	};
	struct ig_gateway gw = mkgateway(ls, N(ls));
	char *r1h[] = {"non.matching.com", "*.specific.com"};
	char *r2h[] = {"very.wildcard.io", "nonmatching.io"};
	char *r3h[] = {"*.example.com"};
	char *r4h[] = {"other.org"};
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute rs[] = {
	    mkroute("default", "r1", NULL, rules, 1),  mkroute("default", "r2", NULL, rules, 1),
	    mkroute("default", "r3", NULL, rules, 1),  mkroute("default", "r4", NULL, rules, 1),
	    mkroute("default", "any", NULL, rules, 1),
	};
	rs[0].hostnames = r1h, rs[0].nhostnames = N(r1h);
	rs[1].hostnames = r2h, rs[1].nhostnames = N(r2h);
	rs[2].hostnames = r3h, rs[2].nhostnames = N(r3h);
	rs[3].hostnames = r4h, rs[3].nhostnames = N(r4h);

	struct ig_listener_routes *t = build_on(rs, N(rs), &gw, 0);
	/* r1 via *.specific.com, and the route without hostnames. Both now
	 * serve exactly very.specific.com, so step 1 of the precedence ties
	 * (it looks at intersected names), and so does their age (none):
	 * "default/any" comes before "default/r1" (step 8). */
	assert_int_equal(ig_routes_count(t), 2);
	assert_string_equal(route_of(t, "very.specific.com:1234", "GET /", NULL), "any/0.0");
	assert_string_equal(route_of(t, "foo.specific.com", "GET /", NULL), "404");
	assert_string_equal(route_of(t, "non.matching.com", "GET /", NULL), "404");
	ig_routes_free(t);

	t = build_on(rs, N(rs), &gw, 1);
	assert_int_equal(ig_routes_count(t), 2);
	assert_string_equal(route_of(t, "very.wildcard.io", "GET /", NULL), "r2/0.0");
	assert_string_equal(route_of(t, "other.wildcard.io", "GET /", NULL), "any/0.0");
	assert_string_equal(route_of(t, "nonmatching.io", "GET /", NULL), "404");
	assert_string_equal(route_of(t, "wildcard.io", "GET /", NULL), "404");
	ig_routes_free(t);

	/* *.com x *.specific.com = *.specific.com, x *.example.com likewise;
	 * non.matching.com is under *.com too. */
	t = build_on(rs, N(rs), &gw, 2);
	assert_int_equal(ig_routes_count(t), 3);
	assert_string_equal(route_of(t, "a.specific.com", "GET /", NULL), "r1/0.0");
	assert_string_equal(route_of(t, "non.matching.com", "GET /", NULL), "r1/0.0");
	assert_string_equal(route_of(t, "x.y.example.com", "GET /", NULL), "r3/0.0");
	assert_string_equal(route_of(t, "foo.com", "GET /", NULL), "any/0.0");
	assert_string_equal(route_of(t, "other.org", "GET /", NULL), "404");
	ig_routes_free(t);
}

/* Across routes: a matching precise hostname beats a longer wildcard, which
 * beats a shorter one, which beats no hostname, before any path rule. */
static void test_hostname_precedence(void **state)
{
	char *precise[] = {"foo.a.example.com"};
	char *longw[] = {"*.a.example.com"};
	char *shortw[] = {"*.example.com"};
	struct ig_route_rule catchall[] = {RULE({PREFIX("/")})};
	struct ig_route_rule exact[] = {RULE({EXACT("/x")})};
	struct ig_httproute rs[] = {
	    mkroute("default", "none", "2020-01-01T00:00:00Z", exact, 1),
	    mkroute("default", "short", "2021-01-01T00:00:00Z", catchall, 1),
	    mkroute("default", "long", "2022-01-01T00:00:00Z", catchall, 1),
	    mkroute("default", "precise", "2023-01-01T00:00:00Z", catchall, 1),
	};
	rs[1].hostnames = shortw, rs[1].nhostnames = 1;
	rs[2].hostnames = longw, rs[2].nhostnames = 1;
	rs[3].hostnames = precise, rs[3].nhostnames = 1;
	struct ig_listener_routes *t = build(rs, N(rs));

	assert_string_equal(route_of(t, "foo.a.example.com", "GET /x", NULL), "precise/0.0");
	assert_string_equal(route_of(t, "bar.a.example.com", "GET /x", NULL), "long/0.0");
	assert_string_equal(route_of(t, "bar.example.com", "GET /x", NULL), "short/0.0");
	assert_string_equal(route_of(t, "bar.org", "GET /x", NULL), "none/0.0");
	assert_string_equal(route_of(t, "bar.org", "GET /y", NULL), "404");
	ig_routes_free(t);
}

/* A precise name beats a wildcard of the same length ("x.example.com" and
 * "*.example.com" both have 13 characters), even an older one. */
static void test_precise_beats_equal_length_wildcard(void **state)
{
	char *precise[] = {"x.example.com"};
	char *wild[] = {"*.example.com"};
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute rs[] = {
	    mkroute("default", "wild", "2020-01-01T00:00:00Z", rules, 1),
	    mkroute("default", "precise", "2024-01-01T00:00:00Z", rules, 1),
	};
	rs[0].hostnames = wild, rs[0].nhostnames = 1;
	rs[1].hostnames = precise, rs[1].nhostnames = 1;
	struct ig_listener_routes *t = build(rs, N(rs));

	assert_string_equal(route_of(t, "x.example.com", "GET /", NULL), "precise/0.0");
	assert_string_equal(route_of(t, "y.example.com", "GET /", NULL), "wild/0.0");
	ig_routes_free(t);
}

/* ---- attachment --------------------------------------------------------- */

static struct ig_listener three[] = {
    {.name = "a", .protocol = "HTTP", .port = 80},
    {.name = "b", .protocol = "HTTPS", .port = 8443},
    {.name = "t", .protocol = "TCP", .port = 9000},
};

/* Number of entries route r contributes to each listener of `three`, as
 * "a,b,t" digits. */
static const char *attached(struct ig_httproute *r)
{
	static char out[8];
	static struct ig_gateway gw;
	gw = mkgateway(three, N(three));
	for (size_t i = 0; i < N(three); i++) {
		struct ig_listener_routes *t = build_on(r, 1, &gw, i);
		out[2 * i] = (char)('0' + ig_routes_count(t));
		out[2 * i + 1] = i + 1 < N(three) ? ',' : '\0';
		ig_routes_free(t);
	}
	return out;
}

/* HTTPRouteListenerPortMatching and sectionName selection; TCP listeners
 * take no HTTPRoutes. */
static void test_section_name_and_port(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute r = mkroute("default", "r", NULL, rules, 1);
	struct ig_parent_ref ref = {.name = "gw"};
	r.parents = &ref;

	assert_string_equal(attached(&r), "1,1,0");
	ref.section_name = "b";
	assert_string_equal(attached(&r), "0,1,0");
	ref.section_name = "t";
	assert_string_equal(attached(&r), "0,0,0");
	ref.section_name = "missing";
	assert_string_equal(attached(&r), "0,0,0");
	ref.section_name = NULL;
	ref.port = 80;
	assert_string_equal(attached(&r), "1,0,0");
	ref.port = 8443;
	assert_string_equal(attached(&r), "0,1,0");
	/* With both set, both must hold. */
	ref.section_name = "a";
	assert_string_equal(attached(&r), "0,0,0");
	ref.section_name = "b";
	assert_string_equal(attached(&r), "0,1,0");
}

/* Group, kind, namespace and name of the parentRef, and allowedRoutes'
 * default (routes of the Gateway's namespace only). */
static void test_parent_ref_identity(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute r = mkroute("default", "r", NULL, rules, 1);
	struct ig_parent_ref ref = {
	    .group = "gateway.networking.k8s.io", .kind = "Gateway", .ns = "default", .name = "gw"};
	r.parents = &ref;

	assert_string_equal(attached(&r), "1,1,0");
	ref.kind = "Service";
	assert_string_equal(attached(&r), "0,0,0");
	ref.kind = "Gateway";
	ref.group = "";
	assert_string_equal(attached(&r), "0,0,0");
	ref.group = NULL;
	ref.name = "other-gw";
	assert_string_equal(attached(&r), "0,0,0");
	ref.name = "gw";
	ref.ns = "elsewhere";
	assert_string_equal(attached(&r), "0,0,0");

	/* A route in another namespace: the defaulted ref names a Gateway of
	 * its own namespace, and an explicit one is refused by allowedRoutes. */
	r.meta.ns = "other";
	ref.ns = NULL;
	assert_string_equal(attached(&r), "0,0,0");
	ref.ns = "default";
	assert_string_equal(attached(&r), "0,0,0");
}

/* allowedRoutes.namespaces (spec §6.1 step 3): Same, All, and Selector
 * over the labels of the route's Namespace (HTTPRouteCrossNamespace). */
static void test_allowed_routes_namespaces(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_parent_ref ref = {.name = "gw", .ns = "infra"};
	struct ig_httproute r = mkroute("apps", "r", NULL, rules, 1);
	r.parents = &ref;
	struct ig_kv team[] = {{"team", "a"}, {"kubernetes.io/metadata.name", "apps"}};
	struct ig_namespace nss[] = {
	    {.meta = {
		 .kind = "Namespace", .name = "apps", .ns = "", .labels = team, .nlabels = 2}}};
	struct ig_kv want_team[] = {{"team", "a"}};
	struct ig_kv want_other[] = {{"team", "b"}};
	struct ig_listener l = {.name = "http", .protocol = "HTTP", .port = 80};
	struct ig_gateway gw = mkgateway(&l, 1);
	gw.meta.ns = "infra";
	struct ig_config c = {.gateways = &gw,
			      .ngateways = 1,
			      .routes = &r,
			      .nroutes = 1,
			      .namespaces = nss,
			      .nnamespaces = 1};

	/* Same (the default): only routes of the Gateway's namespace. */
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	l.allowed.from = IG_FROM_ALL;
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	struct ig_listener_routes *t = ig_routes_build(&c, &gw, &l, 1);
	assert_int_equal(ig_routes_count(t), 1);
	ig_routes_free(t);

	l.allowed.from = IG_FROM_SELECTOR;
	assert_false(ig_route_attaches(&c, &r, &gw, &l)); /* no selector: nothing */
	l.allowed.has_selector = true;
	l.allowed.selector =
	    (struct ig_label_selector){.match_labels = want_team, .nmatch_labels = 1};
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	l.allowed.selector.match_labels = want_other;
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	t = ig_routes_build(&c, &gw, &l, 1);
	assert_int_equal(ig_routes_count(t), 0);
	ig_routes_free(t);
	/* A namespace with no Namespace object has only its name label. */
	r.meta.ns = "other";
	l.allowed.selector.match_labels = want_team;
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	struct ig_kv by_name[] = {{"kubernetes.io/metadata.name", "other"}};
	l.allowed.selector.match_labels = by_name;
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	/* The empty selector admits every namespace. */
	l.allowed.selector = (struct ig_label_selector){0};
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
}

/* allowedRoutes.kinds: none listed means HTTPRoute for HTTP and HTTPS;
 * a list must name HTTPRoute in the Gateway API group
 * (GatewayInvalidRouteKind). */
static void test_allowed_routes_kinds(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute r = mkroute("default", "r", NULL, rules, 1);
	struct ig_route_group_kind grpc[] = {{"gateway.networking.k8s.io", "GRPCRoute"}};
	struct ig_route_group_kind both[] = {{"gateway.networking.k8s.io", "GRPCRoute"},
					     {NULL, "HTTPRoute"}};
	struct ig_route_group_kind other[] = {{"example.com", "HTTPRoute"}};
	struct ig_listener l = {.name = "https", .protocol = "HTTPS", .port = 443};
	struct ig_gateway gw = mkgateway(&l, 1);
	struct ig_config c = {.gateways = &gw, .ngateways = 1, .routes = &r, .nroutes = 1};

	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	l.allowed.kinds = grpc;
	l.allowed.nkinds = 1;
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	l.allowed.kinds = both;
	l.allowed.nkinds = 2;
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	l.allowed.kinds = other;
	l.allowed.nkinds = 1;
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	/* Not for listeners infergate does not serve. */
	l.allowed.nkinds = 0;
	l.protocol = "TLS";
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
}

/* A ListenerSet's listener takes routes through a parentRef to that
 * ListenerSet (its group and kind, sectionName and port as for a
 * Gateway), never through one to the Gateway; and a Gateway's own
 * listener never through a ListenerSet. allowedRoutes Same is the
 * ListenerSet's namespace. */
static void test_listener_set_attachment(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute r = mkroute("apps", "r", NULL, rules, 1);
	struct ig_listener_set ls = {
	    .meta = {.kind = "ListenerSet", .name = "ls", .ns = "apps"},
	    .group = "gateway.networking.k8s.io",
	};
	struct ig_listener own = {
	    .name = "own", .protocol = "HTTP", .port = 80, .allowed = {.from = IG_FROM_ALL}};
	struct ig_listener l = {.name = "l", .protocol = "HTTP", .port = 80, .set = &ls};
	struct ig_gateway gw = mkgateway(&own, 1);
	gw.meta.ns = "infra";
	struct ig_config c = {.gateways = &gw, .ngateways = 1, .routes = &r, .nroutes = 1};
	struct ig_parent_ref via_gw = {.name = "gw", .ns = "infra"};
	struct ig_parent_ref via_ls = {
	    .group = "gateway.networking.k8s.io", .kind = "ListenerSet", .name = "ls"};
	r.parents = &via_gw;
	r.nparents = 1;
	assert_true(ig_route_attaches(&c, &r, &gw, &own));
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	r.parents = &via_ls;
	assert_false(ig_route_attaches(&c, &r, &gw, &own));
	assert_true(ig_route_attaches(&c, &r, &gw, &l)); /* Same: apps, the set's */
	via_ls.section_name = "l";
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	via_ls.section_name = "own";
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	via_ls.section_name = NULL;
	via_ls.port = 81;
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	via_ls.port = 0;
	/* Another kind or group of the same name is another object. */
	via_ls.kind = "XListenerSet";
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
	ls.meta.kind = "XListenerSet";
	ls.group = "gateway.networking.x-k8s.io";
	via_ls.group = "gateway.networking.x-k8s.io";
	assert_true(ig_route_attaches(&c, &r, &gw, &l));
	/* Same is the ListenerSet's namespace, not the Gateway's. */
	r.meta.ns = "infra";
	via_ls.ns = "apps";
	assert_false(ig_route_attaches(&c, &r, &gw, &l));
}

/* Two refs selecting the same listener attach the route once; a route with
 * a second ref that matches nothing still attaches through the first. */
static void test_duplicate_parent_refs(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")}, {EXACT("/x")})};
	struct ig_httproute r = mkroute("default", "r", NULL, rules, 1);
	struct ig_parent_ref refs[] = {
	    {.name = "gw", .section_name = "a"},
	    {.name = "gw", .port = 80},
	    {.name = "nope"},
	};
	r.parents = refs;
	r.nparents = N(refs);
	assert_string_equal(attached(&r), "2,0,0");
}

/* ---- precedence across routes and rules --------------------------------- */

/* The oldest route wins; routes without creationTimestamp come after all
 * timestamped ones, and among themselves by namespace/name (§6.3 step 8),
 * never by load order. */
static void test_oldest_route_wins(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	struct ig_httproute rs[] = {
	    mkroute("default", "a-new", "2024-05-01T00:00:00Z", rules, 1),
	    mkroute("default", "b-old", "2023-05-01T00:00:00Z", rules, 1),
	    mkroute("default", "c-none", NULL, rules, 1),
	};
	struct ig_listener_routes *t = build(rs, N(rs));
	assert_string_equal(GET(t, "/"), "b-old/0.0");
	ig_routes_free(t);

	t = build(rs, 1);
	assert_string_equal(GET(t, "/"), "a-new/0.0");
	ig_routes_free(t);

	/* Timestamped beats untimestamped even when loaded later. */
	struct ig_httproute later[] = {rs[2], rs[0]};
	t = build(later, N(later));
	assert_string_equal(GET(t, "/"), "a-new/0.0");
	ig_routes_free(t);

	/* Two without timestamps: by name, whichever was read first. */
	struct ig_httproute z = mkroute("default", "a-last", NULL, rules, 1);
	struct ig_httproute none[] = {z, rs[2]};
	t = build(none, N(none));
	assert_string_equal(GET(t, "/"), "a-last/0.0");
	ig_routes_free(t);
	struct ig_httproute none_rev[] = {rs[2], z};
	t = build(none_rev, N(none_rev));
	assert_string_equal(GET(t, "/"), "a-last/0.0");
	ig_routes_free(t);
	/* "{namespace}/{name}" as one text: "a/x" sorts after "a-b/x". */
	struct ig_httproute ns_pair[] = {mkroute("a", "x", NULL, rules, 1),
					 mkroute("a-b", "x", NULL, rules, 1)};
	ns_pair[0].parents = ns_pair[1].parents =
	    &(struct ig_parent_ref){.name = "gw", .ns = "default"};
	static struct ig_gateway all_ns;
	static struct ig_listener from_all = {
	    .name = "http", .protocol = "HTTP", .port = 80, .allowed = {.from = IG_FROM_ALL}};
	all_ns = mkgateway(&from_all, 1);
	t = build_on(ns_pair, N(ns_pair), &all_ns, 0);
	assert_string_equal(route_of(t, "example.com", "GET /", NULL), "x/0.0");
	struct ig_route_result res;
	struct ig_route_request req = {
	    .method = IG_STR("GET"), .path = IG_STR("/"), .host = IG_STR("example.com")};
	assert_int_equal(ig_routes_match(t, 0, &req, &res), 0);
	assert_string_equal(res.route->meta.ns, "a-b");
	ig_routes_free(t);
}

/* creationTimestamps are compared as times, not as text: an offset moves
 * a time, a fraction of a second counts. */
static void test_route_age_is_a_time(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	static const struct {
		const char *a, *b; /* route "a" (first by name) and "b" */
		const char *winner;
	} cases[] = {
	    /* 05:00Z, before 06:00Z although "10" > "06" as text. */
	    {"2024-01-01T06:00:00Z", "2024-01-01T10:00:00+05:00", "b"},
	    {"2024-01-01T06:00:00Z", "2024-01-01T01:00:00-05:00", "a"}, /* 06:00Z: a tie */
	    {"2024-01-01T06:00:00Z", "2024-01-01T00:59:59-05:00", "b"},
	    /* "." sorts before "Z" as text. */
	    {"2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00Z", "b"},
	    {"2024-01-01T00:00:00.25Z", "2024-01-01T00:00:00.250Z", "a"},
	    {"2024-01-01T00:00:00.000001Z", "2024-01-01T00:00:00.0000001Z", "b"},
	    /* Lowercase t and z, as RFC 3339 allows. */
	    {"2024-01-01t00:00:01z", "2024-01-01T00:00:00Z", "b"},
	    /* A timestamp beats none, whichever is newer by name. */
	    {NULL, "2099-01-01T00:00:00Z", "b"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct ig_httproute rs[] = {mkroute("default", "b", cases[i].b, rules, 1),
					    mkroute("default", "a", cases[i].a, rules, 1)};
		struct ig_listener_routes *t = build(rs, N(rs));
		char want[16];
		snprintf(want, sizeof want, "%s/0.0", cases[i].winner);
		if (strcmp(GET(t, "/"), want))
			fail_msg("case %zu (%s vs %s): %s won", i, cases[i].a, cases[i].b,
				 GET(t, "/"));
		ig_routes_free(t);
	}
}

/* Same age: alphabetical "{namespace}/{name}". */
static void test_alphabetical_tie_break(void **state)
{
	struct ig_route_rule rules[] = {RULE({PREFIX("/")})};
	const char *ts = "2024-01-01T00:00:00Z";
	struct ig_httproute rs[] = {
	    mkroute("default", "route-b", ts, rules, 1),
	    mkroute("default", "route-a-2", ts, rules, 1),
	    mkroute("default", "route-a", ts, rules, 1),
	};
	struct ig_listener_routes *t = build(rs, N(rs));
	assert_string_equal(GET(t, "/"), "route-a/0.0");
	ig_routes_free(t);

	t = build(rs, 2);
	assert_string_equal(GET(t, "/"), "route-a-2/0.0");
	ig_routes_free(t);
}

/* Match specificity beats route age; only then does age decide. */
static void test_specificity_before_age(void **state)
{
	struct ig_route_rule root[] = {RULE({PREFIX("/")})};
	struct ig_route_rule api[] = {RULE({PREFIX("/api")})};
	struct ig_httproute rs[] = {
	    mkroute("default", "old", "2020-01-01T00:00:00Z", root, 1),
	    mkroute("default", "young", "2025-01-01T00:00:00Z", api, 1),
	};
	struct ig_listener_routes *t = build(rs, N(rs));
	assert_string_equal(GET(t, "/api/x"), "young/0.0");
	assert_string_equal(GET(t, "/apix"), "old/0.0");
	ig_routes_free(t);
}

/* Within a route: the first rule wins among equals, the first match within
 * it, and precedence is per match rather than per rule. */
static void test_first_rule_wins(void **state)
{
	struct ig_route_rule rules[] = {
	    RULE({PREFIX("/")}, {EXACT("/x")}),
	    RULE({PREFIX("/")}),
	    RULE({PREFIX("/api")}),
	    RULE({PREFIX("/api")}, {PREFIX("/api")}),
	};
	struct ig_httproute r = mkroute("default", "r", NULL, rules, N(rules));
	struct ig_listener_routes *t = build(&r, 1);

	assert_int_equal(ig_routes_count(t), 6);
	assert_string_equal(GET(t, "/"), "r/0.0");
	assert_string_equal(GET(t, "/x"), "r/0.1");
	assert_string_equal(GET(t, "/api"), "r/2.0");
	ig_routes_free(t);
}

static void test_empty_table(void **state)
{
	struct ig_listener_routes *t = build(NULL, 0);
	assert_int_equal(ig_routes_count(t), 0);
	assert_string_equal(GET(t, "/"), "404");
	ig_routes_free(t);
	ig_routes_free(NULL);
}

/* ---- GRPCRoute ---------------------------------------------------------------- */

#define GRPC_GW                                                                                    \
	"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"          \
	"spec: {gatewayClassName: infergate, listeners: [{name: http, protocol: HTTP, port: "      \
	"80}]}\n"

static struct ig_config *load_text(const char *text)
{
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load_text("g.yaml", text, strlen(text), &c, &d);
	if (rc != 0)
		ig_diags_print(&d, stderr);
	ig_diags_free(&d);
	assert_int_equal(rc, 0);
	return c;
}

static struct ig_listener_routes *build_loaded(struct ig_config *c)
{
	struct ig_gateway *gw = &c->gateways[0];
	struct ig_listener_routes *t = ig_routes_build(c, gw, &gw->listeners[0], WORKERS);
	assert_non_null(t);
	return t;
}

#define CALL(t, host, path, ...) route_of((t), (host), "POST " path, ##__VA_ARGS__, NULL)

/* GRPCRouteRule.matches: the most characters of a matching service, then
 * of a matching method, then the most header matches. */
static void test_grpcroute_precedence(void **state)
{
	struct ig_config *c = load_text(
	    GRPC_GW
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
	    "metadata: {name: g}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
	    "  - {matches: [{method: {service: a.B}}]}\n"
	    "  - {matches: [{method: {service: a.B, method: M}}]}\n"
	    "  - {matches: [{method: {method: M}}]}\n"
	    "  - {matches: [{method: {service: a.B, method: M}, headers: [{name: x, value: "
	    "\"1\"}]}]}\n"
	    "  - {matches: [{method: {type: RegularExpression, service: \"z.*\", method: M}}]}\n"
	    "  - {}\n");
	struct ig_listener_routes *t = build_loaded(c);
	assert_string_equal(CALL(t, "h", "/a.B/M"), "g/1.0");
	assert_string_equal(CALL(t, "h", "/a.B/M", "X: 1"), "g/3.0");
	assert_string_equal(CALL(t, "h", "/a.B/N"), "g/0.0");
	assert_string_equal(CALL(t, "h", "/a.BC/N"), "g/5.0"); /* not the service a.B */
	assert_string_equal(CALL(t, "h", "/c.D/M"), "g/2.0");
	assert_string_equal(CALL(t, "h", "/z.Q/M"), "g/4.0");
	assert_string_equal(CALL(t, "h", "/z.Q/Mx"), "g/5.0");
	assert_string_equal(CALL(t, "h", "/x/Y"), "g/5.0");
	ig_routes_free(t);
	ig_config_free(c);
}

/* An HTTPRoute and a GRPCRoute serving a hostname in common on one
 * listener: the older stays, the other is not attached there at all. */
static void test_grpcroute_httproute_conflict(void **state)
{
	static const char routes[] =
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
	    "metadata: {name: h, creationTimestamp: \"%s\"}\n"
	    "spec: {parentRefs: [{name: gw}], hostnames: [%s]}\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
	    "metadata: {name: g, creationTimestamp: \"%s\"}\n"
	    "spec: {parentRefs: [{name: gw}], hostnames: [%s]}\n";
	static const struct {
		const char *h_time, *h_hosts, *g_time, *g_hosts;
		const char *at_a, *at_b; /* who serves a.example.com, b.example.com */
	} cases[] = {
	    /* The older HTTPRoute keeps a.example.com; the GRPCRoute
	     * overlapping it by wildcard is refused for b.example.com too. */
	    {"2020-01-01T00:00:00Z", "a.example.com", "2021-01-01T00:00:00Z", "\"*.example.com\"",
	     "h/0.0", "404"},
	    {"2022-01-01T00:00:00Z", "a.example.com", "2021-01-01T00:00:00Z", "\"*.example.com\"",
	     "g/0.0", "g/0.0"},
	    /* No hostname in common: both stay. */
	    {"2020-01-01T00:00:00Z", "a.example.com", "2021-01-01T00:00:00Z", "b.example.com",
	     "h/0.0", "g/0.0"},
	    /* Same age: "default/g" before "default/h". */
	    {"2020-01-01T00:00:00Z", "a.example.com", "2020-01-01T00:00:00Z", "a.example.com",
	     "g/0.0", "404"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		char text[2048];
		snprintf(text, sizeof text, GRPC_GW "%s", routes);
		char doc[2048];
		snprintf(doc, sizeof doc, text, cases[i].h_time, cases[i].h_hosts, cases[i].g_time,
			 cases[i].g_hosts);
		struct ig_config *c = load_text(doc);
		struct ig_gateway *gw = &c->gateways[0];
		bool h_out = ig_route_conflicted(c, &c->routes[0], gw, &gw->listeners[0]);
		bool g_out = ig_route_conflicted(c, &c->routes[1], gw, &gw->listeners[0]);
		assert_false(h_out && g_out);
		struct ig_listener_routes *t = build_loaded(c);
		assert_string_equal(CALL(t, "a.example.com", "/s.S/M"), cases[i].at_a);
		assert_string_equal(CALL(t, "b.example.com", "/s.S/M"), cases[i].at_b);
		ig_routes_free(t);
		ig_config_free(c);
	}
}

/* ---- backends ----------------------------------------------------------- */

/* The index (precise hostnames and exact header values filing entries)
 * against a walk of every entry: 300 routes of random hostnames (precise
 * ones in any case, wildcards, none), paths, exact and regex headers, and
 * 20,000 random requests. Then 1,000 model routes, one header value each,
 * beside a walked route of higher precedence. */
#define NRAND 300
static uint64_t rnd_state = 0x9e3779b97f4a7c15u;
static size_t rnd(size_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (size_t)(rnd_state % n);
}

static void test_index_agrees_with_walk(void **state)
{
	/* The last wildcard is deeper than a request looks up: walked. */
	static const char *const hosts[] = {
	    "a.example.com",   "B.example.com", "c.example.com",
	    "d.test",	       "e.test",	"*.example.com",
	    "*.B.example.com", "*.test",	"*.b.c.d.e.f.g.h.i.j.example.com"};
	/* Eight header names: past the six entries are filed by, the rest
	 * are walked. */
	static const char *const names8[] = {"x-h1", "x-h2", "X-H3", "x-h4",
					     "x-h5", "x-h6", "x-h7", "x-h8"};
	static const char *const paths[] = {"/", "/v1", "/v1/completions", "/v1/chat"};
	static const char *const models[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6"};
	static struct ig_route_rule rules[NRAND];
	static struct ig_route_match matches[NRAND][2];
	static struct ig_header_match hdrs[NRAND][2][2];
	static char *hostnames[NRAND][2];
	static struct ig_httproute routes[NRAND];
	static char names[NRAND][16];

	for (size_t i = 0; i < NRAND; i++) {
		size_t nm = 1 + rnd(2);
		for (size_t m = 0; m < nm; m++) {
			struct ig_route_match *mt = &matches[i][m];
			*mt = (struct ig_route_match){.path_type =
							  rnd(3) ? IG_PATH_PREFIX : IG_PATH_EXACT,
						      .path = (char *)paths[rnd(N(paths))]};
			size_t nh = rnd(3);
			for (size_t h = 0; h < nh; h++) {
				size_t kind = rnd(5);
				hdrs[i][m][h] =
				    kind == 0
					? (struct ig_header_match)HDR_RE("x-tenant", "team-[a-c]")
				    : kind == 1 ? (struct ig_header_match)HDR(
						      "X-Env", rnd(2) ? "prod" : "dev")
				    : kind == 2
					? (struct ig_header_match)HDR(
					      (char *)names8[rnd(N(names8))], rnd(2) ? "1" : "2")
					: (struct ig_header_match)HDR(
					      rnd(2) ? "X-Gateway-Model-Name"
						     : "x-gateway-model-name",
					      (char *)models[rnd(N(models))]);
			}
			mt->headers = hdrs[i][m];
			mt->nheaders = nh;
		}
		rules[i] = (struct ig_route_rule){.matches = matches[i], .nmatches = nm};
		size_t nhosts = rnd(3);
		for (size_t h = 0; h < nhosts; h++)
			hostnames[i][h] = (char *)hosts[rnd(N(hosts))];
		snprintf(names[i], sizeof names[i], "r%zu", i);
		routes[i] = mkroute("default", names[i], NULL, &rules[i], 1);
		routes[i].hostnames = hostnames[i];
		routes[i].nhostnames = nhosts;
	}
	struct ig_listener_routes *t = build(routes, NRAND);
	static const char *const req_hosts[] = {"a.example.com",
						"A.EXAMPLE.COM:8080",
						"b.example.com",
						"c.Example.com",
						"d.test",
						"x.example.com",
						"e.test:80",
						"other.org",
						"a.b.example.com",
						"x.y.B.example.com",
						"example.com",
						".example.com",
						"a..example.com",
						"*.example.com",
						"a.b.c.d.e.f.g.h.i.j.example.com",
						"a.b.c.d.e.f.g.h.i.j.k.l.example.com",
						"z.b.c.d.e.f.g.h.i.j.example.com",
						"x.test.",
						""};
	for (int i = 0; i < 20000; i++) {
		char line[64], env[32], model[48], tenant[32], extra[16];
		snprintf(line, sizeof line, "GET %s%s", paths[rnd(N(paths))], rnd(3) ? "" : "/x");
		snprintf(env, sizeof env, "X-Env: %s", rnd(2) ? "prod" : "dev");
		snprintf(model, sizeof model, "%s: %s",
			 rnd(2) ? "x-gateway-model-name" : "X-GATEWAY-MODEL-NAME",
			 models[rnd(N(models))]);
		snprintf(tenant, sizeof tenant, "x-tenant: team-%c", (char)('a' + rnd(4)));
		snprintf(extra, sizeof extra, "%s: %c", names8[rnd(N(names8))],
			 (char)('1' + rnd(2)));
		const char *h[4] = {NULL, NULL, NULL, NULL};
		size_t nh = 0;
		if (rnd(3))
			h[nh++] = model;
		if (rnd(2))
			h[nh++] = env;
		if (rnd(2))
			h[nh++] = tenant;
		if (rnd(2))
			h[nh++] = extra;
		route_of(t, req_hosts[rnd(N(req_hosts))], line, h[0], h[1], h[2], h[3], NULL);
	}
	ig_routes_free(t);

	/* 1,000 model routes, and an exact path without headers above them. */
	static struct ig_route_rule mrules[1001];
	static struct ig_route_match mmatch[1001];
	static struct ig_header_match mhdr[1001];
	static struct ig_httproute mroutes[1001];
	static char mnames[1001][16], mvalues[1001][16];
	for (size_t i = 0; i < 1000; i++) {
		snprintf(mnames[i], sizeof mnames[i], "m%zu", i);
		snprintf(mvalues[i], sizeof mvalues[i], "model-%zu", i);
		mhdr[i] = (struct ig_header_match)HDR("X-Gateway-Model-Name", mvalues[i]);
		mmatch[i] =
		    (struct ig_route_match){PREFIX("/"), .headers = &mhdr[i], .nheaders = 1};
		mrules[i] = (struct ig_route_rule){.matches = &mmatch[i], .nmatches = 1};
		mroutes[i] = mkroute("default", mnames[i], NULL, &mrules[i], 1);
	}
	mmatch[1000] = (struct ig_route_match){EXACT("/health")};
	mrules[1000] = (struct ig_route_rule){.matches = &mmatch[1000], .nmatches = 1};
	mroutes[1000] = mkroute("default", "health", NULL, &mrules[1000], 1);
	t = build(mroutes, 1001);
	assert_string_equal(GET(t, "/v1/completions", "X-Gateway-Model-Name: model-999"),
			    "m999/0.0");
	assert_string_equal(GET(t, "/v1/completions", "x-gateway-model-name: model-0"), "m0/0.0");
	assert_string_equal(GET(t, "/health", "X-Gateway-Model-Name: model-7"), "health/0.0");
	assert_string_equal(GET(t, "/v1/completions", "X-Gateway-Model-Name: model-1000"), "404");
	assert_string_equal(GET(t, "/v1/completions", "X-Gateway-Model-Name: Model-7"), "404");
	assert_string_equal(GET(t, "/v1/completions"), "404");
	ig_routes_free(t);
}

static void test_pick_backend_weights(void **state)
{
	struct ig_backend_ref b[] = {
	    {.name = "v1", .weight = 70},
	    {.name = "zero", .weight = 0},
	    {.name = "v2", .weight = 30},
	};
	struct ig_route_rule rule = {.backends = b, .nbackends = N(b)};
	struct ig_rng rng;
	size_t hits[3] = {0};
	const size_t draws = 20000;

	ig_rng_seed(&rng, 42);
	for (size_t i = 0; i < draws; i++) {
		const struct ig_backend_ref *p = ig_route_pick_backend(&rule, &rng);
		assert_non_null(p);
		hits[p - b]++;
	}
	assert_int_equal(hits[1], 0);
	/* ±2% of the draws around 70% and 30%. */
	assert_in_range(hits[0], draws * 68 / 100, draws * 72 / 100);
	assert_in_range(hits[2], draws * 28 / 100, draws * 32 / 100);
}

/* Equal weights split evenly and a zero in between takes nothing; this
 * also pins the boundaries of each weight's interval. */
static void test_pick_backend_even(void **state)
{
	struct ig_backend_ref b[] = {
	    {.name = "a", .weight = 1}, {.name = "z", .weight = 0}, {.name = "c", .weight = 1}};
	struct ig_route_rule rule = {.backends = b, .nbackends = N(b)};
	struct ig_rng rng;
	size_t hits[3] = {0};

	ig_rng_seed(&rng, 3);
	for (int i = 0; i < 10000; i++)
		hits[ig_route_pick_backend(&rule, &rng) - b]++;
	assert_int_equal(hits[1], 0);
	assert_in_range(hits[0], 4800, 5200);
	assert_in_range(hits[2], 4800, 5200);
}

static void test_pick_backend_degenerate(void **state)
{
	struct ig_backend_ref zeros[] = {{.name = "a", .weight = 0}, {.name = "b", .weight = 0}};
	struct ig_backend_ref one[] = {{.name = "z", .weight = 0}, {.name = "only", .weight = 1}};
	struct ig_route_rule none = {0};
	struct ig_route_rule allzero = {.backends = zeros, .nbackends = N(zeros)};
	struct ig_route_rule single = {.backends = one, .nbackends = N(one)};
	struct ig_rng rng;

	ig_rng_seed(&rng, 7);
	assert_null(ig_route_pick_backend(&none, &rng));
	assert_null(ig_route_pick_backend(&allzero, &rng));
	for (int i = 0; i < 100; i++)
		assert_ptr_equal(ig_route_pick_backend(&single, &rng), &one[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conformance_matching),
	    cmocka_unit_test(test_conformance_header_matching),
	    cmocka_unit_test(test_exact_path),
	    cmocka_unit_test(test_path_match_order),
	    cmocka_unit_test(test_prefix_trailing_slash),
	    cmocka_unit_test(test_path_values_normalized),
	    cmocka_unit_test(test_rule_without_matches),
	    cmocka_unit_test(test_method_matching),
	    cmocka_unit_test(test_query_matching),
	    cmocka_unit_test(test_regex_path),
	    cmocka_unit_test(test_header_regex_and_duplicates),
	    cmocka_unit_test(test_workers_match_at_once),
	    cmocka_unit_test(test_tables_share_patterns),
	    cmocka_unit_test(test_tables_freed_while_building),
	    cmocka_unit_test(test_route_hostnames),
	    cmocka_unit_test(test_hostname_intersection),
	    cmocka_unit_test(test_hostname_precedence),
	    cmocka_unit_test(test_precise_beats_equal_length_wildcard),
	    cmocka_unit_test(test_section_name_and_port),
	    cmocka_unit_test(test_parent_ref_identity),
	    cmocka_unit_test(test_duplicate_parent_refs),
	    cmocka_unit_test(test_allowed_routes_namespaces),
	    cmocka_unit_test(test_allowed_routes_kinds),
	    cmocka_unit_test(test_listener_set_attachment),
	    cmocka_unit_test(test_oldest_route_wins),
	    cmocka_unit_test(test_route_age_is_a_time),
	    cmocka_unit_test(test_alphabetical_tie_break),
	    cmocka_unit_test(test_specificity_before_age),
	    cmocka_unit_test(test_first_rule_wins),
	    cmocka_unit_test(test_empty_table),
	    cmocka_unit_test(test_grpcroute_precedence),
	    cmocka_unit_test(test_grpcroute_httproute_conflict),
	    cmocka_unit_test(test_index_agrees_with_walk),
	    cmocka_unit_test(test_pick_backend_weights),
	    cmocka_unit_test(test_pick_backend_even),
	    cmocka_unit_test(test_pick_backend_degenerate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
