/* HTTPRoute filters on the request path (Gateway API §4.5): a rule's
 * filters, then those of the backendRef that was drawn, in list order.
 * RequestRedirect answers at once; URLRewrite changes the path and Host the
 * backend sees; the header modifiers change the request's and the
 * response's headers; RequestMirror sends a copy of the request to another
 * backend and forgets the answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rand.h"
#include "gateway/request.h"
#include "gateway/runtime.h"
#include "http/client.h"
#include "pool/upstream.h"

#define MIRRORS_PER_WORKER 64

/* Calls fn on every filter of the request, rule first, then backendRef. */
#define FOR_EACH_FILTER(p, f)                                                                      \
	for (int pass_ = 0; pass_ < 2; pass_++)                                                    \
		for (size_t i_ = 0, n_ = pass_ == 0 ? ((p)->rule ? (p)->rule->nfilters : 0)        \
						    : ((p)->backend ? (p)->backend->nfilters : 0); \
		     i_ < n_; i_++)                                                                \
			for (const struct ig_filter *f = pass_ == 0 ? &(p)->rule->filters[i_]      \
								    : &(p)->backend->filters[i_];  \
			     f; f = NULL)

/* The RequestRedirect filter that answers the request: the rule's, else
 * (once one is drawn) the backendRef's (Gateway API v1.6's
 * HTTPRouteBackendRequestRedirect). */
static const struct ig_redirect *redirect_of(const struct ig_req *p)
{
	FOR_EACH_FILTER(p, f)
	if (f->type == IG_FILTER_REQUEST_REDIRECT)
		return &f->u.redirect;
	return NULL;
}

bool ig_req_has_redirect(const struct ig_req *p)
{
	return redirect_of(p) != NULL;
}

/* ---- paths ---- */

/* The request path with a path modifier applied (into buf). For
 * ReplacePrefixMatch the matched prefix is replaced element-wise: a
 * trailing slash of the prefix or the replacement does not double. A path
 * the route did not match by that prefix (an external picker's :path,
 * set after matching) goes on as it is. */
static struct ig_str modify_path(const struct ig_req *p, const struct ig_path_modifier *m,
				 char *buf, size_t cap)
{
	struct ig_str path = p->ex->req.path;
	if (m->type == IG_PATH_MOD_FULL)
		return ig_str_from(m->value);
	if (m->type != IG_PATH_MOD_PREFIX || !p->match || !p->match->path)
		return path;
	struct ig_str prefix = ig_str_from(p->match->path);
	while (prefix.len > 1 && prefix.ptr[prefix.len - 1] == '/')
		prefix.len--;
	if (prefix.len == 1 && prefix.ptr[0] == '/')
		prefix.len = 0;
	if (path.len < prefix.len || memcmp(path.ptr, prefix.ptr, prefix.len) != 0 ||
	    (path.len > prefix.len && prefix.len && path.ptr[prefix.len] != '/'))
		return path;
	struct ig_str rest = {path.ptr + prefix.len, path.len - prefix.len};
	struct ig_str repl = ig_str_from(m->value);
	while (repl.len && repl.ptr[repl.len - 1] == '/')
		repl.len--;
	size_t n = 0;
	if (cap < 2 || repl.len > cap - 2 || rest.len > cap - 2 - repl.len)
		return path;
	memcpy(buf, repl.ptr, repl.len);
	n = repl.len;
	if (!rest.len || rest.ptr[0] != '/')
		buf[n++] = '/';
	memcpy(buf + n, rest.ptr, rest.len);
	n += rest.len;
	/* "/xyz/" + "" stays "/xyz/" when the request had the slash. */
	if (n > 1 && buf[n - 1] == '/' && !(rest.len && rest.ptr[rest.len - 1] == '/') &&
	    !(rest.len == 0 && path.len && path.ptr[path.len - 1] == '/'))
		n--;
	return (struct ig_str){buf, n};
}

struct ig_str ig_req_upstream_target(struct ig_req *p)
{
	const struct ig_url_rewrite *rw = NULL;
	FOR_EACH_FILTER(p, f)
	if (f->type == IG_FILTER_URL_REWRITE)
		rw = &f->u.rewrite;
	if (!rw || rw->path.type == IG_PATH_MOD_NONE)
		return p->ex->req.target;
	char tmp[2200];
	struct ig_str path = modify_path(p, &rw->path, tmp, sizeof tmp);
	struct ig_str q = p->ex->req.query;
	char *out = ig_arena_alloc(p->ex->arena, path.len + q.len + 2);
	if (!out)
		return p->ex->req.target;
	memcpy(out, path.ptr, path.len);
	size_t n = path.len;
	if (q.len) {
		out[n++] = '?';
		memcpy(out + n, q.ptr, q.len);
		n += q.len;
	}
	return (struct ig_str){out, n};
}

const char *ig_req_upstream_host(const struct ig_req *p)
{
	const char *host = NULL;
	FOR_EACH_FILTER(p, f)
	if (f->type == IG_FILTER_URL_REWRITE && f->u.rewrite.hostname)
		host = f->u.rewrite.hostname;
	return host;
}

struct ig_str ig_req_forward_host(const struct ig_req *p, const struct ig_endpoint *ep)
{
	const char *rw = ig_req_upstream_host(p);
	if (rw)
		return ig_str_from(rw);
	const struct ig_http_header *hh =
	    ig_http_find_header(p->ex->req.headers, p->ex->req.num_headers, "host");
	return hh ? hh->value : (struct ig_str){ep->addr, ep->addr_len};
}

/* ---- header modifiers ---- */

static bool in_kv(const struct ig_kv *kv, size_t n, struct ig_str name)
{
	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq_cstr(name, kv[i].key))
			return true;
	return false;
}

static bool in_list(char *const *v, size_t n, struct ig_str name)
{
	for (size_t i = 0; i < n; i++)
		if (ig_str_ieq_cstr(name, v[i]))
			return true;
	return false;
}

bool ig_req_header_dropped(const struct ig_req *p, enum ig_filter_type type, struct ig_str name)
{
	bool dropped = false;
	FOR_EACH_FILTER(p, f)
	if (f->type == type)
		dropped |= in_list(f->u.headers.remove, f->u.headers.nremove, name) ||
			   in_kv(f->u.headers.set, f->u.headers.nset, name);
	return dropped;
}

void ig_req_header_additions(const struct ig_req *p, enum ig_filter_type type,
			     void (*emit)(void *ud, const char *name, const char *value), void *ud)
{
	FOR_EACH_FILTER(p, f)
	if (f->type == type) {
		const struct ig_header_modifier *m = &f->u.headers;
		for (size_t i = 0; i < m->nset; i++)
			emit(ud, m->set[i].key, m->set[i].value);
		for (size_t i = 0; i < m->nadd; i++)
			emit(ud, m->add[i].key, m->add[i].value);
	}
}

/* ---- redirect ---- */

void ig_req_redirect(struct ig_req *p)
{
	const struct ig_redirect *rd = redirect_of(p);
	const struct ig_http_request *r = &p->ex->req;
	const char *scheme = rd->scheme ? rd->scheme
			     : (p->listener && p->listener->listener &&
				!strcmp(p->listener->listener->protocol, "HTTPS"))
				 ? "https"
				 : "http";
	struct ig_str host = {0};
	const struct ig_http_header *hh = ig_http_find_header(r->headers, r->num_headers, "host");
	if (hh) {
		host = hh->value;
		const char *colon = memrchr(host.ptr, ':', host.len);
		if (colon && host.len && host.ptr[0] != '[')
			host.len = (size_t)(colon - host.ptr);
	}
	if (rd->hostname)
		host = ig_str_from(rd->hostname);
	int port = rd->port;
	if (!port)
		port = rd->scheme ? (!strcmp(rd->scheme, "https") ? 443 : 80)
				  : (p->listener ? p->listener->listener->port : 80);
	bool omit =
	    (!strcmp(scheme, "http") && port == 80) || (!strcmp(scheme, "https") && port == 443);
	char tmp[2200];
	struct ig_str path = modify_path(p, &rd->path, tmp, sizeof tmp);
	struct ig_buf loc = {0};
	ig_buf_printf(&loc, "%s://%.*s", scheme, IG_STR_FMT(host));
	if (!omit)
		ig_buf_printf(&loc, ":%d", port);
	ig_buf_append_str(&loc, path);
	if (r->query.len) {
		ig_buf_append(&loc, "?", 1);
		ig_buf_append_str(&loc, r->query);
	}
	struct ig_http_header h = {IG_STR("Location"), ig_buf_str(&loc)};
	int code = rd->status_code ? rd->status_code : 302;
	p->status = code;
	ig_http_respond(p->ex, code, NULL, "", 0, &h, 1);
	ig_buf_free(&loc);
	ig_req_finish(p);
}

/* ---- CORS (HTTPCORSFilter) ---- */

static const struct ig_cors *cors_of(const struct ig_req *p)
{
	const struct ig_cors *c = NULL;
	for (size_t i = 0; p->rule && i < p->rule->nfilters; i++)
		if (p->rule->filters[i].type == IG_FILTER_CORS)
			c = &p->rule->filters[i].u.cors;
	for (size_t i = 0; !c && p->backend && i < p->backend->nfilters; i++)
		if (p->backend->filters[i].type == IG_FILTER_CORS)
			c = &p->backend->filters[i].u.cors;
	return c;
}

/* An origin taken apart: scheme, host and port (80 for http, 443 for
 * https when not given). False when it is not scheme://host[:port]. */
struct origin {
	struct ig_str scheme, host;
	long port;
};

static bool split_origin(struct ig_str o, struct origin *out)
{
	const char *sep = memmem(o.ptr, o.len, "://", 3);
	if (!sep)
		return false;
	out->scheme = (struct ig_str){o.ptr, (size_t)(sep - o.ptr)};
	struct ig_str rest = {sep + 3, o.len - out->scheme.len - 3};
	const char *colon = memrchr(rest.ptr, ':', rest.len);
	out->host = rest;
	out->port = ig_str_ieq_cstr(out->scheme, "https") ? 443 : 80;
	if (colon) {
		out->host.len = (size_t)(colon - rest.ptr);
		out->port = 0;
		for (const char *p = colon + 1; p < rest.ptr + rest.len; p++) {
			if (*p < '0' || *p > '9' || out->port > 65535)
				return false;
			out->port = out->port * 10 + (*p - '0');
		}
	}
	return out->host.len > 0 && out->port > 0;
}

/* Whether `origin`, as the browser sends it, is one of the allowed: "*",
 * or the same scheme, port (defaults counted) and host, where an allowed
 * host "*" is any host and a leading "*" matches any labels to its left
 * (the suffix after it must end the host: a.b.bar.com fits the pattern
 * whose host is the wildcard, then ".bar.com"). */
static bool cors_origin_allowed(const struct ig_cors *c, struct ig_str origin)
{
	struct origin o, a;
	if (!split_origin(origin, &o))
		return false;
	for (size_t i = 0; i < c->norigins; i++) {
		if (!strcmp(c->origins[i], "*"))
			return true;
		if (!split_origin(ig_str_from(c->origins[i]), &a) ||
		    !ig_str_ieq(a.scheme, o.scheme) || a.port != o.port)
			continue;
		if (a.host.len == 1 && a.host.ptr[0] == '*')
			return true;
		if (a.host.ptr[0] == '*') {
			struct ig_str suffix = {a.host.ptr + 1, a.host.len - 1};
			if (o.host.len > suffix.len &&
			    ig_str_ieq(
				(struct ig_str){o.host.ptr + o.host.len - suffix.len, suffix.len},
				suffix))
				return true;
		} else if (ig_str_ieq(a.host, o.host)) {
			return true;
		}
	}
	return false;
}

static bool cors_star(char *const *list, size_t n)
{
	return n == 1 && !strcmp(list[0], "*");
}

/* The list joined with ", " in the exchange's arena. */
static struct ig_str cors_join(struct ig_req *p, char *const *list, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(list[i]) + 2;
	char *out = ig_arena_alloc(p->ex->arena, len + 1);
	if (!out)
		return (struct ig_str){"", 0};
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		at += (size_t)sprintf(out + at, "%s%s", i ? ", " : "", list[i]);
	return (struct ig_str){out, at};
}

int ig_req_cors(struct ig_req *p)
{
	const struct ig_cors *c = cors_of(p);
	struct ig_http_exchange *ex = p->ex;
	const struct ig_http_request *r = &ex->req;
	const struct ig_http_header *origin =
	    c ? ig_http_find_header(r->headers, r->num_headers, "origin") : NULL;
	if (!origin || p->cors_applied)
		return 0;
	p->cors_applied = true;
	const struct ig_http_header *method =
	    ig_http_find_header(r->headers, r->num_headers, "access-control-request-method");
	bool preflight = method && ig_str_eq_cstr(r->method, "OPTIONS");
	bool allowed = cors_origin_allowed(c, origin->value);
	if (!allowed && preflight) {
		/* Nothing granted: the browser will not send the request. */
		p->status = 403;
		ig_http_respond(ex, 403, NULL, "", 0, NULL, 0);
		ig_req_finish(p);
		return 1;
	}
	if (!allowed)
		return 0; /* served as any request, with no grant */
	struct ig_http_header h[8];
	size_t n = 0;
	/* The origin itself, never "*": a credentialed request needs it so,
	 * and it is valid for any other (Vary keeps caches apart). */
	h[n++] = (struct ig_http_header){IG_STR("Access-Control-Allow-Origin"), origin->value};
	h[n++] = (struct ig_http_header){IG_STR("Vary"), IG_STR("Origin")};
	if (c->credentials)
		h[n++] = (struct ig_http_header){IG_STR("Access-Control-Allow-Credentials"),
						 IG_STR("true")};
	if (c->nexpose_headers)
		h[n++] =
		    (struct ig_http_header){IG_STR("Access-Control-Expose-Headers"),
					    cors_join(p, c->expose_headers, c->nexpose_headers)};
	if (preflight) {
		/* "*" lists what was asked: a credentialed request may not use
		 * the wildcard, and the echo is right for any other. */
		const struct ig_http_header *asked = ig_http_find_header(
		    r->headers, r->num_headers, "access-control-request-headers");
		if (cors_star(c->methods, c->nmethods))
			h[n++] = (struct ig_http_header){IG_STR("Access-Control-Allow-Methods"),
							 method->value};
		else if (c->nmethods)
			h[n++] = (struct ig_http_header){IG_STR("Access-Control-Allow-Methods"),
							 cors_join(p, c->methods, c->nmethods)};
		if (cors_star(c->allow_headers, c->nallow_headers)) {
			if (asked)
				h[n++] = (struct ig_http_header){
				    IG_STR("Access-Control-Allow-Headers"), asked->value};
		} else if (c->nallow_headers) {
			h[n++] = (struct ig_http_header){
			    IG_STR("Access-Control-Allow-Headers"),
			    cors_join(p, c->allow_headers, c->nallow_headers)};
		}
		char *age = ig_arena_alloc(ex->arena, 16);
		if (age)
			h[n++] = (struct ig_http_header){
			    IG_STR("Access-Control-Max-Age"),
			    {age, (size_t)snprintf(age, 16, "%d", c->max_age)}};
		p->status = 200;
		ig_http_respond(ex, 200, NULL, "", 0, h, n);
		ig_req_finish(p);
		return 1;
	}
	/* Every answer of the exchange carries them, the gateway's own
	 * errors too (a page must be able to read why it failed). */
	struct ig_http_header *keep = ig_arena_alloc(ex->arena, n * sizeof *keep);
	if (keep) {
		memcpy(keep, h, n * sizeof *keep);
		ex->resp_extra = keep;
		ex->nresp_extra = n;
		p->cors_granted = true;
	}
	return 0;
}

/* ---- mirrors ---- */

/* A mirrored request owns its bytes (the original may end first) and
 * closes when the answer, which nobody reads, ends. */
struct mirror {
	struct mirror *prev, *next; /* the worker's list, freed at its end */
	struct ig_worker *w;
	struct ig_http_client *c;
	struct ig_timer timer;
	size_t len;
	char bytes[];
};

static void mirror_free(struct mirror *m)
{
	struct ig_worker *w = m->w;
	ig_timer_stop(&w->loop, &m->timer);
	ig_http_client_close(m->c);
	if (m->prev)
		m->prev->next = m->next;
	else
		w->mirror_list = m->next;
	if (m->next)
		m->next->prev = m->prev;
	w->mirrors--;
	free(m);
}

void ig_req_mirrors_free(struct ig_worker *w)
{
	while (w->mirror_list)
		mirror_free(w->mirror_list);
}

static int m_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	return 0;
}
static int m_body(struct ig_http_client *c, const char *d, size_t n, void *ud)
{
	return 0;
}
static void m_done(struct ig_http_client *c, void *ud)
{
	mirror_free(ud);
}
static void m_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	mirror_free(ud);
}
static const struct ig_http_client_cbs mirror_cbs = {m_head, m_body, m_done, m_error, NULL};

static void m_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	mirror_free(t->data);
}

static void send_mirror(struct ig_req *p, const struct ig_backend_ref *be)
{
	struct ig_worker *w = p->w;
	if (w->mirrors >= MIRRORS_PER_WORKER || be->status != IG_REF_OK)
		return;
	struct ig_endpoint *ep = NULL;
	enum ig_http_proto proto = IG_PROTO_HTTP1;
	struct ig_tls_client_ctx *tls = NULL;
	if (be->service) {
		const struct ig_service_rt *s = ig_snapshot_service(p->snap, be);
		const struct ig_gateway *gw = p->listener ? p->listener->gw : NULL;
		if (s && ig_backend_tls_failed(s, gw))
			return;
		if (s && s->neps)
			ep = s->eps[ig_rng_below(ig_rng_thread(), s->neps)];
		proto = ig_backend_proto(NULL, s);
		tls = ig_backend_tls(NULL, s, gw);
	} else if (be->pool) {
		const struct ig_pool_rt *pr = ig_snapshot_pool_of(p->snap, be->pool);
		if (pr && pr->neps)
			ep = pr->eps[ig_rng_below(ig_rng_thread(), pr->neps)];
		proto = ig_backend_proto(pr, NULL);
	}
	if (!ep)
		return;
	/* The copy's Host says it is one, as Envoy's mirrors (and so the
	 * Envoy-based Gateway API gateways') say: "-shadow" after the host,
	 * before any port ("api.example-shadow:8080"). */
	char host[300];
	struct ig_str h = ig_req_forward_host(p, ep);
	const char *end = h.len && h.ptr[0] == '[' ? memchr(h.ptr, ']', h.len) : NULL;
	const char *port =
	    end ? memchr(end, ':', h.len - (size_t)(end - h.ptr)) : memchr(h.ptr, ':', h.len);
	int at = port ? (int)(port - h.ptr) : (int)h.len;
	int hn = snprintf(host, sizeof host, "Host: %.*s-shadow%.*s\r\n\r\n", at, h.ptr,
			  (int)h.len - at, h.ptr + at);
	if (hn < 0 || (size_t)hn >= sizeof host)
		return;
	size_t len = p->head.len + (size_t)hn + p->body_len;
	struct mirror *m = malloc(sizeof *m + len);
	if (!m)
		return;
	m->w = w;
	m->len = len;
	memset(&m->timer, 0, sizeof m->timer);
	char *o = m->bytes;
	memcpy(o, p->head.ptr, p->head.len);
	o += p->head.len;
	memcpy(o, host, (size_t)hn);
	o += hn;
	const struct ig_str parts[] = {p->body_pre, p->model_json, p->body_post};
	for (size_t i = 0; i < 3; i++) {
		if (parts[i].len)
			memcpy(o, parts[i].ptr, parts[i].len);
		o += parts[i].len;
	}
	m->c = ig_upstreams_connect(w->upstreams, ep, proto, tls);
	if (!m->c) {
		free(m);
		return;
	}
	w->mirrors++;
	m->prev = NULL;
	m->next = w->mirror_list;
	if (m->next)
		m->next->prev = m;
	w->mirror_list = m;
	bool is_head = ig_str_eq_cstr(p->ex->req.method, "HEAD");
	if (ig_http_client_send(m->c, m->bytes, m->len, is_head,
				w->gw->opt.upstream_read_timeout_ms, &mirror_cbs, m) < 0) {
		mirror_free(m);
		return;
	}
	/* However the mirror answers, it ends within the request timeout a
	 * route would give it (or a minute). */
	uint64_t limit =
	    p->rule && p->rule->timeout_request_ms ? p->rule->timeout_request_ms : 60000;
	ig_timer_start(&w->loop, &m->timer, limit, m_timeout, m);
}

void ig_req_mirror(struct ig_req *p)
{
	if (p->upgrade)
		return; /* a second tunnel would have nobody at its other end */
	FOR_EACH_FILTER(p, f)
	if (f->type == IG_FILTER_REQUEST_MIRROR) {
		const struct ig_mirror *mi = &f->u.mirror;
		uint32_t den = mi->denominator ? mi->denominator : 100;
		if (ig_rng_below(ig_rng_thread(), den) < mi->numerator)
			send_mirror(p, mi->backend);
	}
}

/* ---- sessionPersistence (GEP-1619) ---- */

/* The endpoint that served a session is named in a cookie (or a header)
 * the gateway sets on the answer; a request that carries it goes to that
 * endpoint first. The token is the endpoint's identity in hex, so no table
 * is kept and any worker (or replica) reads it the same way. */
#define SESSION_NAME "infergate-session"

static const struct ig_session_persistence *persistence(const struct ig_req *p)
{
	return p->rule && p->rule->session.set ? &p->rule->session : NULL;
}

static const char *session_name(const struct ig_session_persistence *sp)
{
	return sp->session_name ? sp->session_name : SESSION_NAME;
}

static bool token_key(struct ig_str v, uint64_t *key)
{
	v = ig_str_trim(v);
	if (v.len != 19 || memcmp(v.ptr, "ig.", 3) != 0)
		return false;
	uint64_t k = 0;
	for (size_t i = 3; i < 19; i++) {
		int d = ig_hex_value((unsigned char)v.ptr[i]);
		if (d < 0)
			return false;
		k = k << 4 | (uint64_t)d;
	}
	*key = k;
	return true;
}

/* The session's endpoint key from the request, or 0. */
static uint64_t persisted_key(const struct ig_req *p, const struct ig_session_persistence *sp)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str name = ig_str_from(session_name(sp));
	uint64_t key = 0;
	for (size_t i = 0; i < r->num_headers; i++) {
		const struct ig_http_header *h = &r->headers[i];
		if (sp->type == IG_SESSION_HEADER) {
			if (ig_str_ieq(h->name, name) && token_key(h->value, &key))
				return key;
			continue;
		}
		if (!ig_str_ieq_cstr(h->name, "cookie"))
			continue;
		/* Cookie: a=b; name=token; ... */
		struct ig_str v = h->value;
		while (v.len) {
			const char *semi = memchr(v.ptr, ';', v.len);
			struct ig_str pair = {v.ptr, semi ? (size_t)(semi - v.ptr) : v.len};
			v = semi ? (struct ig_str){semi + 1, v.len - pair.len - 1}
				 : (struct ig_str){0};
			pair = ig_str_trim(pair);
			const char *eq = memchr(pair.ptr, '=', pair.len);
			if (!eq)
				continue;
			struct ig_str k = {pair.ptr, (size_t)(eq - pair.ptr)};
			struct ig_str val = {eq + 1, pair.len - k.len - 1};
			if (ig_str_eq(k, name) && token_key(val, &key))
				return key;
		}
	}
	return 0;
}

void ig_req_persist_ranking(struct ig_req *p)
{
	const struct ig_session_persistence *sp = persistence(p);
	if (!sp || !p->nranked)
		return;
	uint64_t key = persisted_key(p, sp);
	for (size_t r = 0; key && r < p->nranked; r++)
		if (p->ranked[r]->key == key) {
			struct ig_endpoint *ep = p->ranked[r];
			memmove(&p->ranked[1], &p->ranked[0], r * sizeof p->ranked[0]);
			p->ranked[0] = ep;
			return;
		}
}

bool ig_req_session_header(struct ig_req *p, struct ig_http_header *out)
{
	const struct ig_session_persistence *sp = persistence(p);
	if (!sp || !p->ep)
		return false;
	const char *name = session_name(sp);
	char token[20];
	snprintf(token, sizeof token, "ig.%016llx", (unsigned long long)p->ep->key);
	char *v = ig_arena_alloc(p->ex->arena, strlen(name) + 64);
	if (!v)
		return false;
	if (sp->type == IG_SESSION_HEADER) {
		snprintf(v, strlen(name) + 64, "%s", token);
		*out = (struct ig_http_header){ig_str_from(name), ig_str_from(v)};
		return true;
	}
	int n = snprintf(v, strlen(name) + 64, "%s=%s; Path=/; HttpOnly", name, token);
	if (sp->lifetime == IG_COOKIE_PERMANENT && sp->has_absolute_timeout)
		snprintf(v + n, strlen(name) + 64 - (size_t)n, "; Max-Age=%llu",
			 (unsigned long long)(sp->absolute_timeout_ms / 1000));
	*out = (struct ig_http_header){IG_STR("Set-Cookie"), ig_str_from(v)};
	return true;
}

/* ---- retry (GEP-1731) ---- */

bool ig_req_retry_left(const struct ig_req *p)
{
	if (!p->rule || !p->rule->retry.set)
		return false;
	const struct ig_retry *rt = &p->rule->retry;
	return p->route_retries < (rt->has_attempts ? rt->attempts : 1);
}

bool ig_req_should_retry(struct ig_req *p, int status)
{
	if (!ig_req_retry_left(p))
		return false;
	const struct ig_retry *rt = &p->rule->retry;
	for (size_t i = 0; i < rt->ncodes; i++)
		if (rt->codes[i] == status)
			return true;
	return false;
}
