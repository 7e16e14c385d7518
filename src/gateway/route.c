/* Routing tables (see route.h). The build step does everything that can be
 * done without a request: it decides which HTTPRoutes attach to the
 * listener, intersects their hostnames with the listener's, compiles every
 * regular expression and sorts the (route, rule, match) entries by the
 * request-independent part of the Gateway API precedence. Matching then
 * walks that order once and allocates nothing.
 *
 * The walk skips what cannot match without looking at it: an entry with
 * hostnames is filed under each of them (a wildcard as written), one that
 * serves any hostname but must have a header of an exact value
 * (X-Gateway-Model-Name for a model's rule) under that header and value,
 * and the rest are walked. A request merges, in precedence order, the
 * walked entries with those filed under its host, under the wildcards
 * that could cover it and under its headers' values: with 1,000 routes
 * for 1,000 models or hostnames, a request looks at a few entries, not
 * 1,000. */
#include "gateway/route.h"

#include "http/parse.h"

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define GATEWAY_GROUP "gateway.networking.k8s.io"

/* A query value is percent-decoded into a stack buffer before a regular
 * expression runs on it; longer values never match a regex (exact matches
 * decode on the fly and have no limit). */
#define QUERY_DECODE_MAX 2048

/* A regular expression compiled once per worker: glibc's regexec() takes
 * a lock inside the regex_t for every call, so workers sharing one copy
 * would contend on it for every request. `ok` is false when the pattern
 * did not compile, and such a predicate never matches.
 *
 * Compiled patterns are shared by every table that holds the same text,
 * so a reload keeps the copies of the patterns it did not change instead
 * of compiling them again: each snapshot an in-flight request holds would
 * otherwise pin copies of every pattern of the configuration (about 8 KiB
 * per copy of a short header pattern, one copy per worker). Worker w still runs copy w only,
 * whichever snapshot it matches against. The cache below finds them by text, flags and worker
 * count; `refs` counts the tables holding one. Only building and freeing tables take its lock,
 * which is never held while a request is matched. */
struct pattern {
	bool ok;
	size_t ncopies;
	regex_t *copies;
	/* The cache's fields: set before the pattern enters the cache and
	 * constant from then on, but for refs and next, which change under
	 * cache.lock only. */
	struct pattern *next;
	size_t refs;
	uint64_t hash;
	int cflags;
	size_t workers;
	char *src;
};

/* What a missing or invalid expression compiles to: it never matches, and
 * is never freed. */
static struct pattern never_matches;

static struct {
	pthread_mutex_t lock;
	struct pattern **buckets;
	size_t nbuckets; /* a power of two, or 0 before the first pattern */
	size_t n;	 /* patterns held */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* One header or query-parameter predicate, ready to run. */
struct value_pred {
	struct ig_str name;
	struct ig_str value;
	bool is_regex;
	struct pattern *re; /* when is_regex */
};

/* The hostnames a route serves on this listener: the intersection of its
 * own hostnames with the listener's. `any` when neither side restricts. */
struct host_set {
	bool any;
	struct ig_str *names;
	size_t n;
};

/* Path kinds in precedence order: Exact beats RegularExpression beats
 * PathPrefix. The spec leaves regex precedence to the implementation; above
 * prefixes keeps a regex rule reachable next to a catch-all "/" rule. */
enum path_rank { RANK_PREFIX, RANK_REGEX, RANK_EXACT };

struct entry {
	const struct ig_httproute *route;
	const struct ig_route_rule *rule;
	size_t route_index; /* position in cfg->routes, the last tie-break */
	size_t rule_index;
	size_t match_index;
	const struct host_set *hosts;

	enum path_rank rank;
	size_t path_len;    /* configured value length, precedence step 3 */
	struct ig_str path; /* prefix with one trailing '/' removed */
	char *path_own;	    /* path's bytes when normalizing changed them */
	struct pattern *path_re;
	const char *method;
	/* A GRPCRoute's: its precedence counts the characters of the
	 * service, then of the method (GRPCRouteRule.matches). */
	bool grpc;
	size_t service_len, method_len;

	struct value_pred *headers; /* duplicates by name removed */
	size_t nheaders;
	struct value_pred *query;
	size_t nquery;
};

/* Entries filed under one key: a precise hostname (`host`, compared
 * without regard to case) or a header's name and exact value. */
struct key_bucket {
	uint64_t hash;
	bool host;
	struct ig_str name; /* the header's (not for a host) */
	struct ig_str value;
	uint32_t *pos; /* positions in order[], ascending; NULL: a free slot */
	size_t n, cap;
};

struct ig_listener_routes {
	size_t workers;		/* copies of each regular expression */
	struct host_set *hosts; /* one per attached route */
	size_t nhosts;
	struct entry *entries;
	size_t n;
	struct entry **order; /* entries by precedence, hostnames aside */
	/* A rule matches on X-Gateway-Model-Name or X-Gateway-Base-Model-Name,
	 * headers body-based routing sets (ig_routes_match_model). */
	bool model_header;
	/* The index (see the top): positions of the entries walked, the
	 * buckets of the others (open addressing, a power of two), and the
	 * header names buckets are keyed by. */
	uint32_t *walk;
	size_t nwalk;
	struct key_bucket *keys;
	size_t nkeys, keys_cap;
	bool host_keys;	   /* some entry is filed by hostname */
	size_t wild_depth; /* the most labels a filed wildcard covers with ("*.a.b": 2) */
	struct ig_str *key_names;
	size_t nkey_names;
};

/* What a rule without matches means once CRD defaults are applied. */
static const struct ig_route_match default_match = {
    .path_type = IG_PATH_PREFIX,
    .path = "/",
};

static const char *ns_of(const struct ig_meta *m)
{
	return m->ns ? m->ns : "default";
}

static bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* ---- hostnames ---------------------------------------------------------- */

static bool is_wildcard(struct ig_str h)
{
	return h.len >= 2 && h.ptr[0] == '*' && h.ptr[1] == '.';
}

static struct ig_str tail(struct ig_str s, size_t n)
{
	return (struct ig_str){s.ptr + s.len - n, n};
}

/* Whether "*.suffix" covers the precise name h: h must end in ".suffix"
 * with one or more whole labels in front, so "*.example.com" takes
 * "a.example.com" and "a.b.example.com" but never "example.com". */
static bool wildcard_covers(struct ig_str w, struct ig_str h)
{
	struct ig_str suffix = {w.ptr + 1, w.len - 1};
	if (h.len <= suffix.len)
		return false;
	size_t labels = h.len - suffix.len;
	if (h.ptr[0] == '.' || h.ptr[labels - 1] == '.')
		return false;
	return ig_str_ieq(tail(h, suffix.len), suffix);
}

/* Intersection of a listener hostname and a route hostname (§4.3): the
 * more specific of the two when they overlap, else an empty slice. */
static struct ig_str intersect(struct ig_str l, struct ig_str r)
{
	static const struct ig_str none = {NULL, 0};
	bool lw = is_wildcard(l), rw = is_wildcard(r);

	if (!lw && !rw)
		return ig_str_ieq(l, r) ? l : none;
	if (lw && !rw)
		return wildcard_covers(l, r) ? r : none;
	if (!lw && rw)
		return wildcard_covers(r, l) ? l : none;
	/* Two wildcards overlap when one's ".suffix" ends the other's. */
	struct ig_str ls = {l.ptr + 1, l.len - 1}, rs = {r.ptr + 1, r.len - 1};
	if (ls.len >= rs.len)
		return ig_str_ieq(tail(ls, rs.len), rs) ? l : none;
	return ig_str_ieq(tail(rs, ls.len), ls) ? r : none;
}

bool ig_hostnames_overlap(const char *a, const char *b)
{
	return !a || !b || intersect(ig_str_from(a), ig_str_from(b)).ptr;
}

bool ig_route_hostnames_meet(const struct ig_httproute *r, const struct ig_listener *l)
{
	if (r->nhostnames == 0 || !l->hostname)
		return true;
	for (size_t i = 0; i < r->nhostnames; i++)
		if (intersect(ig_str_from(l->hostname), ig_str_from(r->hostnames[i])).ptr)
			return true;
	return false;
}

/* Fills hs with the hostnames route r serves on listener l. Returns 1 when
 * at least one remains (or neither side restricts), 0 when none does, -1
 * on allocation failure. */
static int effective_hosts(const struct ig_httproute *r, const struct ig_listener *l,
			   struct host_set *hs)
{
	*hs = (struct host_set){0};
	if (r->nhostnames == 0 && !l->hostname) {
		hs->any = true;
		return 1;
	}
	hs->names = calloc(r->nhostnames ? r->nhostnames : 1, sizeof(*hs->names));
	if (!hs->names)
		return -1;
	if (r->nhostnames == 0) {
		hs->names[hs->n++] = ig_str_from(l->hostname);
		return 1;
	}
	for (size_t i = 0; i < r->nhostnames; i++) {
		struct ig_str rh = ig_str_from(r->hostnames[i]);
		struct ig_str e = l->hostname ? intersect(ig_str_from(l->hostname), rh) : rh;
		if (e.ptr)
			hs->names[hs->n++] = e;
	}
	if (hs->n)
		return 1;
	free(hs->names);
	hs->names = NULL;
	return 0;
}

/* ---- attachment --------------------------------------------------------- */

static bool is_http_listener(const struct ig_listener *l)
{
	return l->protocol && (streq(l->protocol, "HTTP") || streq(l->protocol, "HTTPS"));
}

/* A parentRef selects a listener through the object the listener belongs
 * to: the Gateway for its own listeners, the ListenerSet for a
 * ListenerSet's (a Gateway parentRef reaches none of those). */
static bool ref_selects(const struct ig_parent_ref *p, const struct ig_httproute *r,
			const struct ig_gateway *gw, const struct ig_listener *l)
{
	const char *group = p->group ? p->group : GATEWAY_GROUP;
	const char *kind = p->kind ? p->kind : "Gateway";
	const char *ns = p->ns ? p->ns : ns_of(&r->meta);
	const struct ig_meta *owner = l->set ? &l->set->meta : &gw->meta;

	if (!streq(group, l->set ? l->set->group : GATEWAY_GROUP) ||
	    !streq(kind, l->set ? l->set->meta.kind : "Gateway"))
		return false;
	if (!p->name || !owner->name || !streq(p->name, owner->name))
		return false;
	if (!streq(ns, ns_of(owner)))
		return false;
	if (p->section_name && (!l->name || !streq(p->section_name, l->name)))
		return false;
	return p->port == 0 || p->port == l->port;
}

/* allowedRoutes.kinds: empty means the protocol's kinds, which for HTTP
 * and HTTPS are HTTPRoute and GRPCRoute; otherwise the route's kind must
 * be listed. */
static bool kind_allowed(const struct ig_listener *l, const struct ig_httproute *r)
{
	if (l->allowed.nkinds == 0)
		return true;
	const char *kind = r->grpc ? "GRPCRoute" : "HTTPRoute";
	for (size_t i = 0; i < l->allowed.nkinds; i++) {
		const struct ig_route_group_kind *k = &l->allowed.kinds[i];
		if (streq(k->group ? k->group : GATEWAY_GROUP, GATEWAY_GROUP) && k->kind &&
		    streq(k->kind, kind))
			return true;
	}
	return false;
}

/* allowedRoutes.namespaces: Same (the default) admits routes of the
 * namespace of the listener's Gateway (or ListenerSet), All every
 * namespace, Selector the namespaces whose labels the selector matches. */
static bool namespace_allowed(const struct ig_config *cfg, const struct ig_httproute *r,
			      const struct ig_gateway *gw, const struct ig_listener *l)
{
	return ig_config_namespace_admits(cfg, l->allowed.from, l->allowed.has_selector,
					  &l->allowed.selector, ns_of(&r->meta),
					  ns_of(l->set ? &l->set->meta : &gw->meta));
}

bool ig_route_attaches(const struct ig_config *cfg, const struct ig_httproute *r,
		       const struct ig_gateway *gw, const struct ig_listener *l)
{
	if (!is_http_listener(l) || !kind_allowed(l, r) || !namespace_allowed(cfg, r, gw, l))
		return false;
	for (size_t i = 0; i < r->nparents; i++)
		if (ref_selects(&r->parents[i], r, gw, l))
			return true;
	return false;
}

/* Whether routes a and b, both attached to l, serve a hostname in common
 * there: each one's hostnames cut down to the listener's (none: all of
 * the listener's). */
static bool hosts_overlap(const struct ig_httproute *a, const struct ig_httproute *b,
			  const struct ig_listener *l)
{
	if (!a->nhostnames)
		return ig_route_hostnames_meet(b, l);
	if (!b->nhostnames)
		return ig_route_hostnames_meet(a, l);
	for (size_t i = 0; i < a->nhostnames; i++)
		for (size_t j = 0; j < b->nhostnames; j++) {
			struct ig_str x =
			    intersect(ig_str_from(a->hostnames[i]), ig_str_from(b->hostnames[j]));
			if (x.ptr && (!l->hostname || intersect(ig_str_from(l->hostname), x).ptr))
				return true;
		}
	return false;
}

bool ig_route_conflicted(const struct ig_config *cfg, const struct ig_httproute *r,
			 const struct ig_gateway *gw, const struct ig_listener *l)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *o = &cfg->routes[i];
		if (o->grpc == r->grpc || !ig_route_attaches(cfg, o, gw, l) ||
		    !ig_route_hostnames_meet(o, l) || !hosts_overlap(r, o, l))
			continue;
		int c = ig_meta_precedence(&o->meta, &r->meta);
		/* Equal (no timestamps, the same namespace and name): the
		 * HTTPRoute stays. */
		if (c < 0 || (c == 0 && r->grpc))
			return true;
	}
	return false;
}

/* ---- compiled patterns, shared ------------------------------------------- */

static void copies_free(struct pattern *p)
{
	for (size_t i = 0; i < p->ncopies; i++)
		regfree(&p->copies[i]);
	free(p->copies);
	free(p->src);
	free(p);
}

static struct pattern **bucket_of(uint64_t hash)
{
	return &cache.buckets[hash & (cache.nbuckets - 1)];
}

static struct pattern *cache_find(const char *src, uint64_t hash, int cflags, size_t workers)
{
	if (cache.nbuckets == 0)
		return NULL;
	for (struct pattern *p = *bucket_of(hash); p; p = p->next)
		if (p->hash == hash && p->cflags == cflags && p->workers == workers &&
		    streq(p->src, src))
			return p;
	return NULL;
}

/* Doubles the buckets when the patterns outnumber them; a table that
 * cannot grow keeps its chains longer. */
static void cache_grow(void)
{
	if (cache.n < cache.nbuckets)
		return;
	size_t nb = cache.nbuckets ? cache.nbuckets * 2 : 64;
	struct pattern **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < cache.nbuckets; i++) {
		for (struct pattern *p = cache.buckets[i], *next; p; p = next) {
			next = p->next;
			p->next = b[p->hash & (nb - 1)];
			b[p->hash & (nb - 1)] = p;
		}
	}
	free(cache.buckets);
	cache.buckets = b;
	cache.nbuckets = nb;
}

static void cache_unlink(struct pattern *p)
{
	struct pattern **pp = bucket_of(p->hash);
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	if (--cache.n == 0) {
		free(cache.buckets);
		cache.buckets = NULL;
		cache.nbuckets = 0;
	}
}

/* The table holding p lets it go; the last one frees it. Any thread may
 * free the last snapshot, so this takes the cache's lock, while the
 * control thread may be building the next one. */
static void pattern_free(struct pattern *p)
{
	if (!p || p == &never_matches)
		return;
	pthread_mutex_lock(&cache.lock);
	bool last = --p->refs == 0;
	if (last)
		cache_unlink(p);
	pthread_mutex_unlock(&cache.lock);
	if (last)
		copies_free(p);
}

/* One copy per worker of src, compiled outside the cache's lock. NULL when
 * out of memory, &never_matches when src does not compile. */
static struct pattern *compile_new(const char *src, uint64_t hash, int cflags, size_t workers)
{
	struct pattern *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->copies = calloc(workers, sizeof(*p->copies));
	p->src = strdup(src);
	if (!p->copies || !p->src) {
		copies_free(p);
		return NULL;
	}
	p->ok = true;
	p->refs = 1;
	p->hash = hash;
	p->cflags = cflags;
	p->workers = workers;
	while (p->ncopies < workers) {
		if (regcomp(&p->copies[p->ncopies], src, cflags) != 0)
			break;
		p->ncopies++;
	}
	if (p->ncopies == workers)
		return p;
	/* No copy compiled: the pattern is invalid. The first did but a
	 * later one did not: memory. */
	bool oom = p->ncopies > 0;
	copies_free(p);
	return oom ? NULL : &never_matches;
}

/* The pattern of src for `workers` workers: the cached one when a table
 * holds it already, else a new one put in the cache. NULL only when out of
 * memory: a pattern that does not compile never matches. */
static struct pattern *compile(const char *src, size_t workers)
{
	const int cflags = REG_EXTENDED;
	if (!src)
		return &never_matches;
	uint64_t hash = XXH3_64bits(src, strlen(src));

	pthread_mutex_lock(&cache.lock);
	struct pattern *p = cache_find(src, hash, cflags, workers);
	if (p)
		p->refs++;
	pthread_mutex_unlock(&cache.lock);
	if (p)
		return p;

	struct pattern *fresh = compile_new(src, hash, cflags, workers);
	if (!fresh || fresh == &never_matches)
		return fresh;
	/* Another thread building tables may have put the same pattern in
	 * meanwhile: theirs is kept, so there is one copy per text. */
	pthread_mutex_lock(&cache.lock);
	p = cache_find(src, hash, cflags, workers);
	if (p) {
		p->refs++;
	} else {
		cache_grow();
		if (cache.nbuckets == 0) {
			pthread_mutex_unlock(&cache.lock);
			copies_free(fresh);
			return NULL;
		}
		p = fresh;
		p->next = *bucket_of(hash);
		*bucket_of(hash) = p;
		cache.n++;
		fresh = NULL;
	}
	pthread_mutex_unlock(&cache.lock);
	if (fresh)
		copies_free(fresh);
	return p;
}

size_t ig_routes_patterns(void)
{
	pthread_mutex_lock(&cache.lock);
	size_t n = cache.n;
	pthread_mutex_unlock(&cache.lock);
	return n;
}

/* ---- building entries --------------------------------------------------- */

/* Header names compare case-insensitively, query names exactly. */
static bool same_name(struct ig_str a, struct ig_str b, bool headers)
{
	return headers ? ig_str_ieq(a, b) : ig_str_eq(a, b);
}

/* Copies the predicates of one match list, keeping only the first of
 * entries sharing a name (the spec says later ones MUST be ignored). */
static int build_preds(const struct ig_header_match *src, size_t n, bool headers, size_t workers,
		       struct value_pred **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	struct value_pred *v = calloc(n, sizeof(*v));
	if (!v)
		return -1;
	*out = v;
	for (size_t i = 0; i < n; i++) {
		struct ig_str name = ig_str_from(src[i].name);
		bool dup = false;
		for (size_t j = 0; j < *nout && !dup; j++)
			dup = same_name(v[j].name, name, headers);
		if (dup)
			continue;
		struct value_pred *p = &v[(*nout)++];
		p->name = name;
		p->value = ig_str_from(src[i].value);
		p->is_regex = src[i].type == IG_MATCH_REGEX;
		if (p->is_regex && !(p->re = compile(src[i].value, workers)))
			return -1;
	}
	return 0;
}

static void preds_free(struct value_pred *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pattern_free(v[i].re);
	free(v);
}

static int fill_path(struct entry *e, const struct ig_route_match *m, size_t workers)
{
	struct ig_str path = ig_str_from(m->path ? m->path : "/");

	e->path_len = path.len;
	switch (m->path_type) {
	case IG_PATH_EXACT:
		e->rank = RANK_EXACT;
		break;
	case IG_PATH_REGEX:
		e->rank = RANK_REGEX;
		e->path_re = compile(m->path, workers);
		return e->path_re ? 0 : -1;
	default:
		e->rank = RANK_PREFIX;
		break;
	}
	/* Request paths are matched in their normal form (http/parse.h), so
	 * the value is too: "/%61pi" is "/api" (CEL allows escapes, and no
	 * dot segments). */
	if (path.len && path.ptr[0] == '/' && ig_http_path_needs_normalizing(path)) {
		e->path_own = malloc(path.len);
		if (!e->path_own)
			return -1;
		ssize_t n = ig_http_path_normalize(path, e->path_own);
		if (n >= 0) /* else ("%00") no request path can equal it */
			path = (struct ig_str){e->path_own, (size_t)n};
	}
	/* "/abc/" means the same as "/abc" (§6.4). */
	if (e->rank == RANK_PREFIX && path.len > 1 && path.ptr[path.len - 1] == '/')
		path.len--;
	e->path = path;
	return 0;
}

static int fill_entry(struct entry *e, const struct ig_route_match *m, size_t workers)
{
	e->method = m->method;
	e->service_len = m->grpc.service ? strlen(m->grpc.service) : 0;
	e->method_len = m->grpc.method ? strlen(m->grpc.method) : 0;
	if (fill_path(e, m, workers) < 0)
		return -1;
	if (build_preds(m->headers, m->nheaders, true, workers, &e->headers, &e->nheaders) < 0)
		return -1;
	return build_preds(m->query, m->nquery, false, workers, &e->query, &e->nquery);
}

static void entry_free(struct entry *e)
{
	free(e->path_own);
	pattern_free(e->path_re);
	preds_free(e->headers, e->nheaders);
	preds_free(e->query, e->nquery);
}

static size_t route_matches(const struct ig_httproute *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nrules; i++)
		n += r->rules[i].nmatches ? r->rules[i].nmatches : 1;
	return n;
}

/* Appends one entry per (rule, match) of route r. */
static int add_route(struct ig_listener_routes *t, const struct ig_httproute *r, size_t ri,
		     const struct host_set *hs)
{
	for (size_t i = 0; i < r->nrules; i++) {
		const struct ig_route_rule *rule = &r->rules[i];
		size_t nm = rule->nmatches ? rule->nmatches : 1;
		for (size_t j = 0; j < nm; j++) {
			struct entry *e = &t->entries[t->n++];
			*e = (struct entry){.route = r,
					    .rule = rule,
					    .route_index = ri,
					    .rule_index = i,
					    .match_index = j,
					    .hosts = hs,
					    .grpc = r->grpc};
			const struct ig_route_match *m =
			    rule->nmatches ? &rule->matches[j] : &default_match;
			if (fill_entry(e, m, t->workers) < 0)
				return -1;
			for (size_t h = 0; h < m->nheaders; h++)
				t->model_header |=
				    strcasecmp(m->headers[h].name, "x-gateway-model-name") == 0 ||
				    strcasecmp(m->headers[h].name, "x-gateway-base-model-name") ==
					0;
		}
	}
	return 0;
}

/* ---- precedence --------------------------------------------------------- */

static int cmp_size_desc(size_t a, size_t b)
{
	return a > b ? -1 : a < b;
}

/* Steps 2 to 9 of §6.3; step 1 (hostnames) depends on the request and is
 * applied while matching. */
static int cmp_entries(const void *pa, const void *pb)
{
	const struct entry *a = *(const struct entry *const *)pa;
	const struct entry *b = *(const struct entry *const *)pb;
	int c;

	/* HTTPRoute and GRPCRoute rules are never merged: where both serve
	 * a hostname one of them is refused (ig_route_conflicted). */
	if (a->grpc != b->grpc)
		return a->grpc ? 1 : -1;
	if (a->grpc) {
		if ((c = cmp_size_desc(a->service_len, b->service_len)) ||
		    (c = cmp_size_desc(a->method_len, b->method_len)) ||
		    (c = cmp_size_desc(a->nheaders, b->nheaders)))
			return c;
		goto routes;
	}
	if (a->rank != b->rank)
		return a->rank > b->rank ? -1 : 1;
	if ((c = cmp_size_desc(a->path_len, b->path_len)))
		return c;
	if ((c = cmp_size_desc(a->method != NULL, b->method != NULL)))
		return c;
	if ((c = cmp_size_desc(a->nheaders, b->nheaders)))
		return c;
	if ((c = cmp_size_desc(a->nquery, b->nquery)))
		return c;
routes:
	if (a->route != b->route) {
		if ((c = ig_meta_precedence(&a->route->meta, &b->route->meta)))
			return c;
		return a->route_index < b->route_index ? -1 : 1;
	}
	if (a->rule_index != b->rule_index)
		return a->rule_index < b->rule_index ? -1 : 1;
	return a->match_index < b->match_index ? -1 : a->match_index > b->match_index;
}

/* ---- build / free ------------------------------------------------------- */

/* Computes the host sets of every attached route (one slot per cfg route,
 * `names == NULL && !any` meaning "not attached") and the entry count. */
static int attach_all(struct ig_listener_routes *t, const struct ig_config *cfg,
		      const struct ig_gateway *gw, const struct ig_listener *l, size_t *nentries)
{
	*nentries = 0;
	t->nhosts = cfg->nroutes;
	t->hosts = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*t->hosts));
	if (!t->hosts)
		return -1;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		if (!ig_route_attaches(cfg, r, gw, l) || ig_route_conflicted(cfg, r, gw, l))
			continue;
		int rc = effective_hosts(r, l, &t->hosts[i]);
		if (rc < 0)
			return -1;
		if (rc > 0)
			*nentries += route_matches(r);
	}
	return 0;
}

static bool host_set_used(const struct host_set *hs)
{
	return hs->any || hs->n;
}

/* ---- the index ----------------------------------------------------------- */

static unsigned char fold(char c)
{
	unsigned char u = (unsigned char)c;
	return (unsigned char)(u - 'A') < 26 ? u | 0x20 : u;
}

/* A key: a hostname (`host`, its value compared without regard to case,
 * and read as "*" followed by it when `star`, so that a request's host
 * suffix is looked up as the wildcard that covers it without a copy), or
 * a header's name and exact value. */
struct key {
	bool host, star;
	struct ig_str name, value;
};

/* FNV-1a over the header name and the value, case folded where the
 * comparison ignores case (names, hostnames). */
static uint64_t key_hash(const struct key *k)
{
	uint64_t h = k->host ? 0x9e3779b97f4a7c15u : 0xcbf29ce484222325u;
	for (size_t i = 0; i < k->name.len; i++)
		h = (h ^ fold(k->name.ptr[i])) * 0x100000001b3u;
	h = (h ^ 0xff) * 0x100000001b3u;
	if (k->star)
		h = (h ^ '*') * 0x100000001b3u;
	for (size_t i = 0; i < k->value.len; i++)
		h = (h ^ (k->host ? fold(k->value.ptr[i]) : (unsigned char)k->value.ptr[i])) *
		    0x100000001b3u;
	return h ^ (h >> 29);
}

static bool key_is(const struct key_bucket *b, const struct key *k)
{
	if (b->host != k->host)
		return false;
	if (!k->host)
		return ig_str_eq(b->value, k->value) && ig_str_ieq(b->name, k->name);
	if (!k->star)
		return ig_str_ieq(b->value, k->value);
	return b->value.len == k->value.len + 1 && b->value.ptr[0] == '*' &&
	       ig_str_ieq((struct ig_str){b->value.ptr + 1, k->value.len}, k->value);
}

/* The bucket of a key: the one holding it, or the free slot it would
 * take. keys_cap is a power of two, never full. */
static struct key_bucket *key_slot(const struct ig_listener_routes *t, uint64_t hash,
				   const struct key *k)
{
	size_t mask = t->keys_cap - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct key_bucket *b = &t->keys[i];
		if (!b->pos)
			return b;
		if (b->hash == hash && key_is(b, k))
			return b;
	}
}

static int key_add(struct ig_listener_routes *t, bool host, struct ig_str name, struct ig_str value,
		   uint32_t pos)
{
	struct key k = {.host = host, .name = name, .value = value};
	uint64_t hash = key_hash(&k);
	struct key_bucket *b = key_slot(t, hash, &k);
	if (b->n && b->pos[b->n - 1] == pos)
		return 0; /* a hostname the route names twice */
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 2;
		uint32_t *v = realloc(b->pos, cap * sizeof *v);
		if (!v)
			return -1;
		if (!b->pos) {
			*b = (struct key_bucket){hash, host, name, value, NULL, 0, 0};
			t->nkeys++;
		}
		b->pos = v;
		b->cap = cap;
	}
	b->pos[b->n++] = pos;
	return 0;
}

/* The first header predicate that asks for an exact value, or NULL. */
static const struct value_pred *exact_header(const struct entry *e)
{
	for (size_t i = 0; i < e->nheaders; i++)
		if (!e->headers[i].is_regex)
			return &e->headers[i];
	return NULL;
}

/* Whether entries may be filed under header `name`: one of the first
 * MAX_KEY_NAMES names (a request looks up each), taken as they come;
 * -1: out of memory. */
#define MAX_KEY_NAMES 6
static int key_name_add(struct ig_listener_routes *t, struct ig_str name)
{
	for (size_t i = 0; i < t->nkey_names; i++)
		if (ig_str_ieq(t->key_names[i], name))
			return 1;
	if (t->nkey_names == MAX_KEY_NAMES)
		return 0;
	struct ig_str *v = realloc(t->key_names, (t->nkey_names + 1) * sizeof *v);
	if (!v)
		return -1;
	t->key_names = v;
	t->key_names[t->nkey_names++] = name;
	return 1;
}

/* The labels after a wildcard's "*" ("*.a.example.com": 3). A request
 * looks its host up under at most MAX_WILD_LOOKUPS of them. */
#define MAX_WILD_LOOKUPS 8
static size_t wild_labels(struct ig_str w)
{
	size_t n = 0;
	for (size_t i = 1; i < w.len; i++)
		n += w.ptr[i] == '.';
	return n;
}

/* Whether an entry is filed under its hostnames: it has some, and no
 * wildcard among them deeper than a request looks up. */
static bool hosts_filed(const struct host_set *hs)
{
	if (hs->any || !hs->n)
		return false;
	for (size_t i = 0; i < hs->n; i++)
		if (is_wildcard(hs->names[i]) && wild_labels(hs->names[i]) > MAX_WILD_LOOKUPS)
			return false;
	return true;
}

/* Files every entry of order[] (see the top). The buckets are sized for
 * every key an entry could bring, so the table never fills. */
static int index_build(struct ig_listener_routes *t)
{
	size_t want = 0;
	for (size_t i = 0; i < t->n; i++)
		want += hosts_filed(t->order[i]->hosts) ? t->order[i]->hosts->n : 1;
	t->keys_cap = 4;
	while (t->keys_cap < 2 * want)
		t->keys_cap *= 2;
	t->keys = calloc(t->keys_cap, sizeof *t->keys);
	t->walk = malloc((t->n ? t->n : 1) * sizeof *t->walk);
	if (!t->keys || !t->walk)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		const struct entry *e = t->order[i];
		const struct value_pred *h = NULL;
		int named = 0;
		if (hosts_filed(e->hosts)) {
			t->host_keys = true;
			for (size_t j = 0; j < e->hosts->n; j++) {
				struct ig_str name = e->hosts->names[j];
				if (is_wildcard(name) && wild_labels(name) > t->wild_depth)
					t->wild_depth = wild_labels(name);
				if (key_add(t, true, (struct ig_str){"", 0}, name, (uint32_t)i) < 0)
					return -1;
			}
		} else if ((h = exact_header(e)) && (named = key_name_add(t, h->name)) != 0) {
			if (named < 0 || key_add(t, false, h->name, h->value, (uint32_t)i) < 0)
				return -1;
		} else {
			t->walk[t->nwalk++] = (uint32_t)i;
		}
	}
	return 0;
}

static const struct key_bucket *key_find(const struct ig_listener_routes *t, const struct key *k)
{
	const struct key_bucket *b = key_slot(t, key_hash(k), k);
	return b->pos ? b : NULL;
}

struct ig_listener_routes *ig_routes_build(const struct ig_config *cfg, const struct ig_gateway *gw,
					   const struct ig_listener *listener, size_t workers)
{
	struct ig_listener_routes *t = calloc(1, sizeof(*t));
	size_t total;

	if (!t)
		return NULL;
	t->workers = workers ? workers : 1;
	if (attach_all(t, cfg, gw, listener, &total) < 0)
		goto fail;
	t->entries = calloc(total ? total : 1, sizeof(*t->entries));
	t->order = calloc(total ? total : 1, sizeof(*t->order));
	if (!t->entries || !t->order)
		goto fail;
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (host_set_used(&t->hosts[i]) &&
		    add_route(t, &cfg->routes[i], i, &t->hosts[i]) < 0)
			goto fail;
	for (size_t i = 0; i < t->n; i++)
		t->order[i] = &t->entries[i];
	qsort(t->order, t->n, sizeof(*t->order), cmp_entries);
	if (index_build(t) < 0)
		goto fail;
	return t;
fail:
	ig_routes_free(t);
	return NULL;
}

void ig_routes_free(struct ig_listener_routes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		entry_free(&t->entries[i]);
	for (size_t i = 0; i < t->nhosts && t->hosts; i++)
		free(t->hosts[i].names);
	free(t->hosts);
	free(t->entries);
	free(t->order);
	for (size_t i = 0; i < t->keys_cap && t->keys; i++)
		free(t->keys[i].pos);
	free(t->keys);
	free(t->walk);
	free(t->key_names);
	free(t);
}

size_t ig_routes_count(const struct ig_listener_routes *t)
{
	return t ? t->n : 0;
}

bool ig_routes_match_model(const struct ig_listener_routes *t)
{
	return t && t->model_header;
}

/* ---- matching ----------------------------------------------------------- */

/* Runs worker w's copy of a compiled pattern against the whole of s.
 * REG_STARTEND lets the slice stay unterminated; POSIX returns the
 * leftmost-longest match, so a match of the whole text exists iff the one
 * found spans it. */
static bool regex_full(const struct pattern *p, size_t w, struct ig_str s)
{
	regmatch_t m[1] = {{.rm_so = 0, .rm_eo = (regoff_t)s.len}};
	if (!p || !p->ok)
		return false;
	if (regexec(&p->copies[w], s.ptr ? s.ptr : "", 1, m, REG_STARTEND) != 0)
		return false;
	return m[0].rm_so == 0 && (size_t)m[0].rm_eo == s.len;
}

static bool path_matches(const struct entry *e, size_t w, struct ig_str p)
{
	switch (e->rank) {
	case RANK_EXACT:
		return ig_str_eq(p, e->path);
	case RANK_REGEX:
		return regex_full(e->path_re, w, p);
	default:
		if (e->path.len == 1 && e->path.ptr[0] == '/')
			return true;
		if (!ig_str_has_prefix(p, e->path))
			return false;
		return p.len == e->path.len || p.ptr[e->path.len] == '/';
	}
}

static bool value_matches(const struct value_pred *v, size_t w, struct ig_str s)
{
	return v->is_regex ? regex_full(v->re, w, s) : ig_str_eq(s, v->value);
}

/* The first request header of that name counts (here and for the index);
 * an absent one never matches. Joining repeats with commas would need a
 * copy. */
static const struct ig_http_header *first_header(const struct ig_route_request *req,
						 struct ig_str name)
{
	for (size_t j = 0; j < req->nheaders; j++)
		if (ig_str_ieq(req->headers[j].name, name))
			return &req->headers[j];
	return NULL;
}

static bool headers_match(const struct entry *e, size_t w, const struct ig_route_request *req)
{
	for (size_t i = 0; i < e->nheaders; i++) {
		const struct ig_http_header *h = first_header(req, e->headers[i].name);
		if (!h || !value_matches(&e->headers[i], w, h->value))
			return false;
	}
	return true;
}

/* Decodes the byte of raw at *i, advancing *i; a '%' not followed by two
 * hex digits stands for itself. */
static unsigned char pct_next(struct ig_str raw, size_t *i)
{
	size_t k = *i;
	if (raw.ptr[k] == '%' && k + 2 < raw.len) {
		int hi = ig_hex_value((unsigned char)raw.ptr[k + 1]),
		    lo = ig_hex_value((unsigned char)raw.ptr[k + 2]);
		if (hi >= 0 && lo >= 0) {
			*i = k + 3;
			return (unsigned char)(hi << 4 | lo);
		}
	}
	*i = k + 1;
	return (unsigned char)raw.ptr[k];
}

static bool pct_equal(struct ig_str raw, struct ig_str want)
{
	size_t i = 0, j = 0;
	while (i < raw.len) {
		if (j == want.len || pct_next(raw, &i) != (unsigned char)want.ptr[j])
			return false;
		j++;
	}
	return j == want.len;
}

static bool query_value_matches(const struct value_pred *v, size_t w, struct ig_str raw)
{
	/* One byte more for a NUL: regexec stops at rm_eo under REG_STARTEND,
	 * but the sanitizers' regexec interceptor runs strlen over the subject
	 * first, and an unterminated stack buffer makes ASan builds abort. */
	char buf[QUERY_DECODE_MAX + 1];
	size_t i = 0, n = 0;

	if (!v->is_regex)
		return pct_equal(raw, v->value);
	while (i < raw.len) {
		if (n == QUERY_DECODE_MAX)
			return false;
		buf[n++] = (char)pct_next(raw, &i);
	}
	buf[n] = '\0';
	return regex_full(v->re, w, (struct ig_str){buf, n});
}

/* Finds the first "name=value" (or bare "name") of the query with this
 * name, compared raw and case-sensitively. */
static bool query_find(struct ig_str q, struct ig_str name, struct ig_str *value)
{
	size_t i = 0;
	while (i < q.len) {
		size_t end = i;
		while (end < q.len && q.ptr[end] != '&')
			end++;
		size_t eq = i;
		while (eq < end && q.ptr[eq] != '=')
			eq++;
		if (ig_str_eq((struct ig_str){q.ptr + i, eq - i}, name)) {
			size_t vs = eq < end ? eq + 1 : end;
			*value = (struct ig_str){q.ptr + vs, end - vs};
			return true;
		}
		i = end + 1;
	}
	return false;
}

static bool query_matches(const struct entry *e, size_t w, const struct ig_route_request *req)
{
	for (size_t i = 0; i < e->nquery; i++) {
		struct ig_str v;
		if (!query_find(req->query, e->query[i].name, &v) ||
		    !query_value_matches(&e->query[i], w, v))
			return false;
	}
	return true;
}

static bool predicates_hold(const struct entry *e, size_t w, const struct ig_route_request *req)
{
	if (e->method && !ig_str_eq_cstr(req->method, e->method))
		return false;
	return path_matches(e, w, req->path) && headers_match(e, w, req) &&
	       query_matches(e, w, req);
}

/* Step 1 of §6.3 for one route: the longest matching precise hostname,
 * then the longest matching hostname of any kind. */
struct host_score {
	size_t precise;
	size_t any;
};

static bool host_score(const struct host_set *hs, struct ig_str host, struct host_score *s)
{
	*s = (struct host_score){0};
	if (hs->any)
		return true;
	bool hit = false;
	for (size_t i = 0; i < hs->n; i++) {
		struct ig_str h = hs->names[i];
		bool wild = is_wildcard(h);
		if (wild ? !wildcard_covers(h, host) : !ig_str_ieq(h, host))
			continue;
		hit = true;
		if (!wild && h.len > s->precise)
			s->precise = h.len;
		if (h.len > s->any)
			s->any = h.len;
	}
	return hit;
}

static bool score_better(struct host_score a, struct host_score b)
{
	return a.precise != b.precise ? a.precise > b.precise : a.any > b.any;
}

/* Host header without ":port" (IPv6 literals keep their brackets). Case is
 * ignored by every comparison instead of lowercasing a copy. */
static struct ig_str strip_port(struct ig_str h)
{
	size_t i = 0;
	if (h.len && h.ptr[0] == '[') {
		while (i < h.len && h.ptr[i] != ']')
			i++;
		return (struct ig_str){h.ptr, i < h.len ? i + 1 : h.len};
	}
	while (i < h.len && h.ptr[i] != ':')
		i++;
	return (struct ig_str){h.ptr, i};
}

/* The lists of positions a request merges: the walked entries and the
 * buckets its host, the wildcards that can cover it and its headers
 * select. A wildcard of d labels after its "*" covers a host that ends in
 * those d labels after a label of its own (wildcard_covers), so a host is
 * looked up as "*" and each of its suffixes that start at a dot after a
 * label and have at most wild_depth labels: at most MAX_WILD_LOOKUPS of
 * them, the shortest; a table with wildcards deeper than that walks them
 * (index_build). */
#define MAX_LISTS (2 + MAX_WILD_LOOKUPS + MAX_KEY_NAMES)
struct cursor {
	const uint32_t *v;
	size_t n;
};

static void add_list(const struct key_bucket *b, struct cursor *c, size_t *k)
{
	if (b)
		c[(*k)++] = (struct cursor){b->pos, b->n};
}

static size_t candidate_lists(const struct ig_listener_routes *t, struct ig_str host,
			      const struct ig_route_request *req, struct cursor *c)
{
	size_t k = 0;
	c[k++] = (struct cursor){t->walk, t->nwalk};
	if (t->host_keys)
		add_list(key_find(t, &(struct key){.host = true, .value = host}), c, &k);
	size_t labels = 0;
	for (size_t i = host.len; t->wild_depth && i-- > 1 && labels < t->wild_depth;) {
		if (host.ptr[i] != '.')
			continue;
		labels++;
		if (host.ptr[i - 1] == '.' || host.ptr[0] == '.')
			continue; /* an empty label: no wildcard covers it */
		struct ig_str suffix = {host.ptr + i, host.len - i};
		add_list(key_find(t, &(struct key){.host = true, .star = true, .value = suffix}), c,
			 &k);
	}
	for (size_t i = 0; i < t->nkey_names; i++) {
		const struct ig_http_header *h = first_header(req, t->key_names[i]);
		if (h)
			add_list(
			    key_find(t, &(struct key){.name = t->key_names[i], .value = h->value}),
			    c, &k);
	}
	return k;
}

/* The smallest position left in the lists, taken from every list that
 * holds it (an entry filed under a hostname and a wildcard covering it
 * is in two); `none` when the lists are empty. */
static size_t next_candidate(struct cursor *c, size_t k, size_t none)
{
	size_t best = none;
	for (size_t i = 0; i < k; i++)
		if (c[i].n && c[i].v[0] < best)
			best = c[i].v[0];
	for (size_t i = 0; i < k; i++)
		if (c[i].n && c[i].v[0] == best) {
			c[i].v++;
			c[i].n--;
		}
	return best;
}

static int match(const struct ig_listener_routes *t, size_t worker,
		 const struct ig_route_request *req, struct ig_route_result *out, bool use_index)
{
	struct ig_str host = strip_port(req->host);
	size_t w = t ? worker % t->workers : 0;
	const struct entry *best = NULL;
	struct host_score best_score = {0}, s;
	struct cursor c[MAX_LISTS];
	size_t k = 0;
	bool indexed = use_index && t && t->nkeys; /* a table without keys is walked */

	if (indexed)
		k = candidate_lists(t, host, req, c);
	/* t->order is sorted by every step but the first, so the winner is the
	 * first matching entry among those with the best hostname score: a
	 * later entry takes over only with a strictly better score. */
	for (size_t i = indexed ? next_candidate(c, k, t->n) : 0; t && i < t->n;
	     i = indexed ? next_candidate(c, k, t->n) : i + 1) {
		const struct entry *e = t->order[i];
		if (!host_score(e->hosts, host, &s))
			continue;
		if (best && !score_better(s, best_score))
			continue;
		if (!predicates_hold(e, w, req))
			continue;
		best = e;
		best_score = s;
		if (s.precise == host.len && s.any == host.len)
			break; /* nothing can score higher */
	}
	if (!best)
		return -1;
	*out = (struct ig_route_result){.route = best->route,
					.rule = best->rule,
					.rule_index = best->rule_index,
					.match_index = best->match_index};
	return 0;
}

int ig_routes_match(const struct ig_listener_routes *t, size_t worker,
		    const struct ig_route_request *req, struct ig_route_result *out)
{
	return match(t, worker, req, out, true);
}

int ig_routes_match_walk(const struct ig_listener_routes *t, size_t worker,
			 const struct ig_route_request *req, struct ig_route_result *out)
{
	return match(t, worker, req, out, false);
}

/* ---- backends ----------------------------------------------------------- */

const struct ig_backend_ref *ig_route_pick_backend(const struct ig_route_rule *rule,
						   struct ig_rng *rng)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < rule->nbackends; i++)
		if (rule->backends[i].weight > 0)
			sum += (uint64_t)rule->backends[i].weight;
	if (sum == 0)
		return NULL;
	uint64_t x = ig_rng_below(rng, sum);
	for (size_t i = 0; i < rule->nbackends; i++) {
		int w = rule->backends[i].weight;
		if (w <= 0)
			continue;
		if (x < (uint64_t)w)
			return &rule->backends[i];
		x -= (uint64_t)w;
	}
	return NULL; /* unreachable: x < sum */
}
