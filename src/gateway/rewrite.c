/* The second stage: the body's `model` is read and resolved through the
 * pool's InferenceModels, the target drawn by weight is spliced in place
 * of the value (every other byte of the body stays as sent), the request's
 * features are read from its headers, and the upstream head is written
 * once into the arena. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/rand.h"
#include "gateway/request.h"
#include "gateway/runtime.h"
#include "json/canon.h"
#include "json/json.h"
#include "json/stream.h"
#include "sched/picker.h"
#include "sched/flowq.h"

#define MODEL_MAX 1024

/* A bounded writer into arena memory sized in advance. */
struct wr {
	char *p, *end;
};

static void put(struct wr *w, const char *s, size_t n)
{
	if ((size_t)(w->end - w->p) < n) {
		w->p = w->end + 1; /* overflow: reported by done() */
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

static void put_str(struct wr *w, struct ig_str s)
{
	put(w, s.ptr, s.len);
}

static void put_cstr(struct wr *w, const char *s)
{
	put(w, s, strlen(s));
}

static bool hop_by_hop(struct ig_str name)
{
	static const struct ig_str names[] = {
	    IG_STR("connection"), IG_STR("keep-alive"), IG_STR("proxy-connection"),
	    IG_STR("transfer-encoding"), IG_STR("upgrade"), IG_STR("te"), IG_STR("trailer"),
	    IG_STR("content-length"), IG_STR("host"), IG_STR("expect"),
	    /* The picker's own (GIE's system-owned
	     * headers): never a client's. */
	    IG_STR("x-gateway-destination-endpoint"),
	    IG_STR("x-gateway-destination-endpoint-served")};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq(name, names[i]))
			return true;
	return false;
}

bool ig_req_hop_header(struct ig_str name)
{
	return hop_by_hop(name);
}

int ig_req_make_id(struct ig_req *p)
{
	if (p->request_id.len)
		return 0;
	const struct ig_http_request *r = &p->ex->req;
	for (size_t i = 0; i < r->num_headers; i++)
		if (r->headers[i].value.len && ig_str_ieq_cstr(r->headers[i].name, "x-request-id"))
			p->request_id = r->headers[i].value;
	if (p->request_id.len)
		return 0;
	char *id = ig_arena_alloc(p->ex->arena, 36);
	if (!id)
		return -1;
	ig_req_uuid4(id);
	p->request_id = (struct ig_str){id, 36};
	p->request_id_made = true;
	return 0;
}

/* The client's address, without its port. */
static struct ig_str client_addr(const struct ig_req *p)
{
	struct ig_str peer = p->ex->peer;
	const char *colon = memrchr(peer.ptr, ':', peer.len);
	if (colon)
		peer.len = (size_t)(colon - peer.ptr);
	return peer;
}

/* X-Forwarded-For's value: with `join`, the client's lines first, as one
 * list, their values joined with commas in order (RFC 9110 §5.3), as
 * Envoy joins them before it appends the client's address (keeping one
 * line would drop the hops the others name); an empty one adds nothing. */
static void put_forwarded_for(struct wr *w, const struct ig_req *p, bool join)
{
	const struct ig_http_request *r = &p->ex->req;
	for (size_t i = 0; join && i < r->num_headers; i++) {
		const struct ig_http_header *hd = &r->headers[i];
		if (hd->value.len && ig_str_ieq_cstr(hd->name, "x-forwarded-for")) {
			put_str(w, hd->value);
			put(w, ", ", 2);
		}
	}
	put_str(w, client_addr(p));
}

struct ig_str ig_req_forwarded_for(struct ig_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	size_t cap = client_addr(p).len;
	for (size_t i = 0; i < r->num_headers; i++)
		if (ig_str_ieq_cstr(r->headers[i].name, "x-forwarded-for"))
			cap += r->headers[i].value.len + 2;
	char *buf = ig_arena_alloc(p->ex->arena, cap ? cap : 1);
	if (!buf)
		return (struct ig_str){0};
	struct wr w = {buf, buf + cap};
	put_forwarded_for(&w, p, true);
	return (struct ig_str){buf, (size_t)(w.p - buf)};
}

void ig_req_uuid4(char out[36])
{
	char hex[33];
	ig_rng_hex128(ig_rng_thread(), hex);
	hex[12] = '4';
	hex[16] = "89ab"[hex[16] % 4];
	memcpy(out, hex, 8);
	out[8] = '-';
	memcpy(out + 9, hex + 8, 4);
	out[13] = '-';
	memcpy(out + 14, hex + 12, 4);
	out[18] = '-';
	memcpy(out + 19, hex + 16, 4);
	out[23] = '-';
	memcpy(out + 24, hex + 20, 12);
}

/* Decimal digits of v, written backwards from end; returns the start. */
static char *u64_text(uint64_t v, char *end)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

/* The upstream head, up to (not including) the Host line of an attempt:
 * the client's headers less hop-by-hop ones, an x-request-id when the
 * client sent none (as Envoy does; vLLM uses it in its answer),
 * X-Forwarded-For, X-Forwarded-Proto and the new Content-Length. */
/* Header additions of a RequestHeaderModifier, written into the head. */
struct emit_ctx {
	struct wr *w;
	/* We send a traceparent of our own: one that a filter or the
	 * picker sets gives way to it, as Envoy's tracer injects its
	 * context after the filters' mutations (two would be none, W3C
	 * Trace Context). */
	bool own_traceparent;
};

static void emit_header(void *ud, const char *name, const char *value)
{
	struct emit_ctx *e = ud;
	if (e->own_traceparent && !strcasecmp(name, "traceparent"))
		return;
	put_cstr(e->w, name);
	put(e->w, ": ", 2);
	put_cstr(e->w, value);
	put(e->w, "\r\n", 2);
}

static size_t filter_room(const struct ig_req *p)
{
	size_t n = p->xp ? ig_req_extpick_room(p) : 0;
	for (int pass = 0; pass < 2; pass++) {
		const struct ig_filter *f = pass ? (p->backend ? p->backend->filters : NULL)
						 : (p->rule ? p->rule->filters : NULL);
		size_t nf = pass ? (p->backend ? p->backend->nfilters : 0)
				 : (p->rule ? p->rule->nfilters : 0);
		for (size_t i = 0; i < nf; i++) {
			if (f[i].type != IG_FILTER_REQUEST_HEADER_MODIFIER)
				continue;
			const struct ig_header_modifier *m = &f[i].u.headers;
			for (size_t k = 0; k < m->nset; k++)
				n += strlen(m->set[k].key) + strlen(m->set[k].value) + 4;
			for (size_t k = 0; k < m->nadd; k++)
				n += strlen(m->add[k].key) + strlen(m->add[k].value) + 4;
		}
	}
	return n;
}

static int build_head(struct ig_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str peer = client_addr(p);
	struct ig_str target = ig_req_upstream_target(p);
	size_t cap = r->method.len + target.len + 16 + 64 + 40 + 24 + peer.len + filter_room(p) +
		     72 + 24 + 32 + 32 + (p->ex->client_cert.len ? p->ex->client_cert.len + 32 : 0);
	for (size_t i = 0; i < r->num_headers; i++)
		cap += r->headers[i].name.len + r->headers[i].value.len + 4;
	char *buf = ig_arena_alloc(p->ex->arena, cap);
	if (!buf)
		return -1;
	struct wr w = {buf, buf + cap};
	put_str(&w, r->method);
	put(&w, " ", 1);
	put_str(&w, target);
	put_cstr(&w, " HTTP/1.1\r\n");
	bool have_id = false;
	bool xff = false;
	bool modifies = filter_room(p) > 0 || (p->rule && p->rule->nfilters) ||
			(p->backend && p->backend->nfilters);
	bool te_trailers = false;
	bool nominated = ig_http_connection_nominates(r->headers, r->num_headers);
	for (size_t i = 0; i < r->num_headers; i++) {
		const struct ig_http_header *hd = &r->headers[i];
		if (hop_by_hop(hd->name)) {
			te_trailers |= ig_http_has_token(hd, 1, "te", "trailers");
			continue;
		}
		/* What the client's Connection names is for its connection
		 * alone (RFC 9110 §7.6.1). */
		if (nominated && ig_http_connection_names(r->headers, r->num_headers, hd->name))
			continue;
		if (modifies &&
		    ig_req_header_dropped(p, IG_FILTER_REQUEST_HEADER_MODIFIER, hd->name))
			continue;
		if (p->xp && ig_req_extpick_drops(p, hd->name))
			continue;
		if ((p->trace.propagate || p->trace.drop_context) &&
		    ig_str_ieq_cstr(hd->name, "traceparent"))
			continue; /* ours replaces it: the pod's parent is our CLIENT span */
		if (p->trace.drop_context && ig_str_ieq_cstr(hd->name, "tracestate"))
			continue; /* it went with an invalid traceparent */
		if (ig_str_ieq_cstr(hd->name, "x-forwarded-for")) {
			xff = true; /* joined below, with the client's address */
			continue;
		}
		/* Who the client proved to be is ours to say (Envoy's default,
		 * SANITIZE): a client's own claim never reaches a backend. The
		 * scheme it came over is ours to say too (below). */
		if (ig_str_ieq_cstr(hd->name, "x-forwarded-client-cert") ||
		    ig_str_ieq_cstr(hd->name, "x-forwarded-proto"))
			continue;
		if (ig_str_ieq_cstr(hd->name, "x-request-id")) {
			/* An empty one is none: ours replaces it (GIE's
			 * picker generates one for it too). */
			if (!hd->value.len)
				continue;
			have_id = true;
			p->request_id = hd->value;
		}
		put_str(&w, hd->name);
		put(&w, ": ", 2);
		put_str(&w, hd->value);
		put(&w, "\r\n", 2);
	}
	if (p->upgrade) {
		/* The handshake goes on to the backend, which answers the switch;
		 * the client's Upgrade value was counted in cap above. */
		const struct ig_http_header *up =
		    ig_http_find_header(r->headers, r->num_headers, "upgrade");
		put_cstr(&w, "Connection: Upgrade\r\nUpgrade: ");
		put_str(&w, up->value);
		put(&w, "\r\n", 2);
	} else if (te_trailers) {
		/* A client that takes trailers (gRPC's clients say so) lets the
		 * pod send them; the only TE that goes on, as in Envoy. TE is
		 * hop-by-hop: HTTP/1.1 names it in Connection (RFC 9110
		 * §10.1.4), h2c keeps "te: trailers" alone. */
		put_cstr(&w, "Connection: TE\r\nTE: trailers\r\n");
	}
	if (modifies) {
		struct emit_ctx e = {&w, p->trace.propagate};
		ig_req_header_additions(p, IG_FILTER_REQUEST_HEADER_MODIFIER, emit_header, &e);
	}
	if (p->xp) {
		struct emit_ctx e = {&w, p->trace.propagate};
		ig_req_extpick_additions(p, emit_header, &e);
	}
	if (p->trace.propagate) {
		put_cstr(&w, "traceparent: ");
		p->trace.head_tp = w.end - w.p >= 55 ? w.p : NULL;
		put(&w, p->trace.traceparent, 55);
		put(&w, "\r\n", 2);
	}
	/* One the picker sets (or removes) replaces ours, as an ext_proc
	 * mutation replaces the id Envoy made. */
	if (!have_id && !(p->xp && ig_req_extpick_drops(p, IG_STR("x-request-id")))) {
		/* Made once: a head built again (an external picker's answer)
		 * sends the same id, which the access log prints. */
		if (ig_req_make_id(p) < 0)
			return -1;
		put_cstr(&w, "x-request-id: ");
		put_str(&w, p->request_id);
		put(&w, "\r\n", 2);
	}
	if (p->ex->client_cert.len) {
		put_cstr(&w, "x-forwarded-client-cert: ");
		put_str(&w, p->ex->client_cert);
		put(&w, "\r\n", 2);
	}
	/* The client's lines joined and its address appended
	 * (put_forwarded_for), when they were not dropped above (whatever
	 * dropped one dropped them all: it goes by name). A
	 * RequestHeaderModifier that sets or removes the field has the last
	 * word, as for X-Forwarded-Proto below. */
	if (!modifies || !ig_req_header_dropped(p, IG_FILTER_REQUEST_HEADER_MODIFIER,
						IG_STR("x-forwarded-for"))) {
		put_cstr(&w, "X-Forwarded-For: ");
		put_forwarded_for(&w, p, xff);
		put(&w, "\r\n", 2);
	}
	/* The scheme of the client's connection, whatever the client said:
	 * Envoy at the edge (use_remote_address, no trusted hops, as Gateway
	 * API implementations run it) overwrites x-forwarded-proto so, and a
	 * pod that builds its links or insists on https from it must not be
	 * told https by a client that came in clear. A RequestHeaderModifier
	 * that sets or removes the field has the last word, as Envoy applies
	 * a route's header mutations after its own. */
	if (!modifies || !ig_req_header_dropped(p, IG_FILTER_REQUEST_HEADER_MODIFIER,
						IG_STR("x-forwarded-proto")))
		put_cstr(&w, p->ex->tls ? "X-Forwarded-Proto: https\r\n"
					: "X-Forwarded-Proto: http\r\n");
	/* A body read whole goes with its length. One passed on as it comes
	 * is framed as the client framed it over HTTP/1.1 (its length, else
	 * chunked); HTTP/2 leaves that to the upstream client. */
	int64_t length = -1;
	if (!p->streaming) {
		if (p->body_len || ig_str_eq_cstr(r->method, "POST") ||
		    ig_str_eq_cstr(r->method, "PUT"))
			length = (int64_t)p->body_len;
	} else if (ig_backend_proto(p->pool, p->service) == IG_PROTO_HTTP1) {
		length = p->ex->body_length;
		if (length < 0)
			put_cstr(&w, "Transfer-Encoding: chunked\r\n");
	}
	if (length >= 0) {
		char digits[24], *end = digits + sizeof digits;
		char *d = u64_text((uint64_t)length, end);
		put_cstr(&w, "Content-Length: ");
		put(&w, d, (size_t)(end - d));
		put(&w, "\r\n", 2);
	}
	if (w.p > w.end)
		return -1;
	p->head = (struct ig_str){buf, (size_t)(w.p - buf)};
	return 0;
}

int ig_req_build_head(struct ig_req *p)
{
	return build_head(p);
}

/* The decoded model name: the raw span itself when it has no escapes. */
static int decode_model(struct ig_req *p, struct ig_json_value mv)
{
	struct ig_str raw = {mv.raw.ptr + 1, mv.raw.len - 2};
	if (raw.len > MODEL_MAX)
		return -1;
	if (!memchr(raw.ptr, '\\', raw.len)) {
		p->model = ig_arena_strdup(p->ex->arena, raw); /* NUL-terminated, for labels */
		return p->model.ptr ? 0 : -1;
	}
	struct ig_buf tmp;
	ig_buf_init(&tmp, MODEL_MAX);
	if (ig_json_string(mv, &tmp) < 0) {
		ig_buf_free(&tmp);
		return -1;
	}
	p->model = ig_arena_strdup(p->ex->arena, ig_buf_str(&tmp));
	ig_buf_free(&tmp);
	return p->model.ptr ? 0 : -1;
}

static bool needs_escape(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\')
			return true;
	return false;
}

/* The target as a JSON string literal, in the arena. */
static int target_json(struct ig_req *p, const char *target)
{
	size_t n = strlen(target);
	if (!needs_escape(target)) {
		char *s = ig_arena_alloc(p->ex->arena, n + 2);
		if (!s)
			return -1;
		s[0] = '"';
		memcpy(s + 1, target, n);
		s[n + 1] = '"';
		p->model_json = (struct ig_str){s, n + 2};
		return 0;
	}
	struct ig_buf tmp = {0};
	int rc = ig_json_write_string(&tmp, target, n);
	if (rc == 0)
		p->model_json = ig_arena_strdup(p->ex->arena, ig_buf_str(&tmp));
	ig_buf_free(&tmp);
	return rc == 0 && p->model_json.ptr ? 0 : -1;
}

/* Which API a request speaks, by its path (as GIE's parser decides). */
enum api {
	API_OTHER,
	API_COMPLETIONS,
	API_CHAT,
	API_RESPONSES,
	API_EMBEDDINGS,
	API_MESSAGES,
	API_CONVERSATIONS
};

static enum api api_of(struct ig_str path)
{
	static const struct {
		const char *suffix;
		enum api api;
	} apis[] = {{"/chat/completions", API_CHAT}, {"/completions", API_COMPLETIONS},
		    {"/responses", API_RESPONSES},   {"/embeddings", API_EMBEDDINGS},
		    {"/messages", API_MESSAGES},     {"/conversations", API_CONVERSATIONS}};
	for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
		struct ig_str sfx = ig_str_from(apis[i].suffix);
		if (path.len >= sfx.len &&
		    ig_str_eq((struct ig_str){path.ptr + path.len - sfx.len, sfx.len}, sfx))
			return apis[i].api;
	}
	return API_OTHER;
}

struct part {
	const char *name;
	struct ig_json_value v;
};

/* [{"name":value},...] in canonical form for the parts present, into
 * buf[0..cap); returns the bytes written. */
static size_t wrapped(const struct part *parts, size_t n, char *buf, size_t cap)
{
	size_t len = 0;
	bool first = true;
	for (size_t i = 0; i < n && len < cap; i++) {
		if (parts[i].v.type == IG_JSON_INVALID)
			continue;
		char head[24];
		int h = snprintf(head, sizeof head, "%s{\"%s\":", first ? "[" : ",", parts[i].name);
		first = false;
		size_t take = (size_t)h < cap - len ? (size_t)h : cap - len;
		memcpy(buf + len, head, take);
		len += take;
		len += ig_json_canonical(parts[i].v, buf + len, cap - len);
		if (len < cap)
			buf[len++] = '}';
	}
	if (!first && len < cap)
		buf[len++] = ']';
	return len;
}

/* autoTune: the KV-cache block size the pool's first endpoint in rotation
 * reports (GIE reads the first candidate's), 0 when it reports none. The
 * picker hashes blocks of that size, so it also sets how much of the
 * prompt is prepared for it. */
static uint32_t reported_block_tokens(const struct ig_pool_rt *pool)
{
	if (!ig_scheduler_auto_tunes(pool->sched->s) || pool->neps == 0)
		return 0;
	const struct ig_endpoint *ep = pool->eps[0];
	for (size_t i = 0; i < pool->neps; i++)
		if (!atomic_load_explicit(&pool->eps[i]->out_of_rotation, memory_order_relaxed)) {
			ep = pool->eps[i];
			break;
		}
	struct ig_cache_config cache;
	ig_endpoint_read_cache(ep, &cache);
	return cache.block_tokens;
}

/* What the prefix-cache index hashes, as GIE and llm-d feed it
 * (gie-reference §4.3), by API: the text of a completions prompt; chat
 * messages; a Responses request's [{instructions}, {tools}, {input}];
 * embeddings input; an Anthropic request's [{system}, {messages}]; the
 * items of a Conversations request (llm-d Router). Values
 * other than text are hashed in canonical JSON form (json/canon.h: no
 * spacing, sorted keys, fewest escapes), so the same conversation written
 * with other spacing, key order or escapes lands on the same blocks; GIE
 * gets the same effect by re-serializing what it decoded. Only the first
 * bytes the index hashes are produced. A `cache_salt` joins the target
 * model in the first block's seed. The token estimate counts what was
 * sent. */
static int prefix_input(struct ig_req *p)
{
	const struct ig_json_value *m = p->members;
	struct ig_arena *a = p->ex->arena;
	struct ig_json_value salt = m[IG_BM_SALT];
	if (salt.type == IG_JSON_STRING && salt.raw.len > 2) {
		size_t slen = salt.raw.len - 2;
		char *seed = ig_arena_alloc(a, p->target.len + slen);
		if (!seed)
			return -1;
		memcpy(seed, p->target.ptr, p->target.len);
		/* The salt's decoded text (escapes resolved). */
		size_t n = ig_json_canonical_text(salt, seed + p->target.len, slen);
		p->prefix_seed = (struct ig_str){seed, p->target.len + n};
	}
	struct part parts[3];
	size_t nparts = 0;
	struct ig_json_value single = {0};
	switch (api_of(p->ex->req.path)) {
	case API_COMPLETIONS:
		single = m[IG_BM_PROMPT];
		break;
	case API_CHAT:
		single = m[IG_BM_MESSAGES];
		break;
	case API_EMBEDDINGS:
		single = m[IG_BM_INPUT];
		break;
	case API_CONVERSATIONS:
		single = m[IG_BM_ITEMS];
		break;
	case API_RESPONSES:
		parts[nparts++] = (struct part){"instructions", m[IG_BM_INSTRUCTIONS]};
		parts[nparts++] = (struct part){"tools", m[IG_BM_TOOLS]};
		parts[nparts++] = (struct part){"input", m[IG_BM_INPUT]};
		break;
	case API_MESSAGES:
		parts[nparts++] = (struct part){"system", m[IG_BM_SYSTEM]};
		parts[nparts++] = (struct part){"messages", m[IG_BM_MESSAGES]};
		break;
	case API_OTHER:
		single = m[IG_BM_PROMPT].type	  ? m[IG_BM_PROMPT]
			 : m[IG_BM_MESSAGES].type ? m[IG_BM_MESSAGES]
						  : m[IG_BM_INPUT];
		break;
	}
	p->prompt_bytes = single.raw.len;
	for (size_t i = 0; i < nparts; i++)
		p->prompt_bytes += parts[i].v.raw.len;
	p->cache_block_tokens = reported_block_tokens(p->pool);
	size_t limit = ig_scheduler_prefix_limit(p->pool->sched->s, p->cache_block_tokens);
	if (!limit || (!nparts && single.type == IG_JSON_INVALID))
		return 0;
	if (single.type == IG_JSON_STRING) {
		/* Text: the span itself when the hashed part has no escapes. */
		struct ig_str raw = {single.raw.ptr + 1, single.raw.len - 2};
		if (!memchr(raw.ptr, '\\', raw.len < limit ? raw.len : limit)) {
			p->prefix_input = raw;
			return 0;
		}
	}
	/* The canonical form is never longer than what it is made from (it
	 * drops spacing and escapes: json/canon.h), plus a key and brackets
	 * per part (wrapped): the copy takes no more room than the prompt,
	 * however many blocks the index would hash. */
	size_t most = single.raw.len;
	for (size_t i = 0; i < nparts; i++)
		most += parts[i].v.raw.len + 24 + 2;
	if (most < limit)
		limit = most;
	char *buf = ig_arena_alloc(a, limit);
	if (!buf)
		return -1;
	size_t n = nparts ? wrapped(parts, nparts, buf, limit)
			  : ig_json_canonical_text(single, buf, limit);
	p->prefix_input = (struct ig_str){buf, n};
	return 0;
}

/* The body sent upstream: everything but the model value stays
 * byte-identical. Also makes the prefix input. 0, or answered and -1. */
static int splice(struct ig_req *p, struct ig_json_value mv, const char *target)
{
	struct ig_buf *in = &p->ex->body;
	if (prefix_input(p) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	if (ig_str_eq(p->model, p->target)) {
		p->body_pre = (struct ig_str){in->ptr, in->len};
	} else {
		size_t off = (size_t)(mv.raw.ptr - in->ptr);
		p->body_pre = (struct ig_str){in->ptr, off};
		if (target_json(p, target) < 0) {
			ig_req_fail(p, 500, "server_error", NULL, "out of memory");
			return -1;
		}
		p->body_post = (struct ig_str){mv.raw.ptr + mv.raw.len, in->len - off - mv.raw.len};
	}
	p->body_len = p->body_pre.len + p->model_json.len + p->body_post.len;
	return 0;
}

static struct ig_str header(const struct ig_http_request *r, const char *name);

/* An array or object with nothing in it ("[]", "[ ]", "{}"). */
static bool empty_container(struct ig_json_value v)
{
	for (size_t i = 1; i + 1 < v.raw.len; i++)
		if (!strchr(" \t\r\n", v.raw.ptr[i]))
			return false;
	return true;
}

/* A key of an object, compared as Go's encoding/json matches a struct
 * field: without regard to ASCII case (a key with escapes is not one). */
static bool key_is(struct ig_json_value k, const char *name)
{
	size_t n = strlen(name);
	return k.raw.len == n + 2 && strncasecmp(k.raw.ptr + 1, name, n) == 0;
}

/* llm-d Router decodes a Conversations body's items as
 * [{type, role: string, content: any}] (Go: null stands for an empty
 * item or field): a non-empty array of objects whose type and role are
 * strings. */
static bool conversation_items_ok(struct ig_json_value items)
{
	if (items.type != IG_JSON_ARRAY || empty_container(items))
		return false;
	size_t pos = 0;
	struct ig_json_value it;
	while (ig_json_array_next(items, &pos, &it) == 1) {
		if (it.type == IG_JSON_NULL)
			continue;
		if (it.type != IG_JSON_OBJECT)
			return false;
		size_t mp = 0;
		struct ig_json_value k, v;
		while (ig_json_object_next(it, &mp, &k, &v) == 1)
			if ((key_is(k, "type") || key_is(k, "role")) && v.type != IG_JSON_STRING &&
			    v.type != IG_JSON_NULL)
				return false;
	}
	return true;
}

/* GIE v1.5's openai-parser: by the path's API, the member the request
 * cannot do without (a completion's non-empty prompt, a chat's non-empty
 * messages, the input of Responses and embeddings, and since llm-d
 * Router's the non-empty items of a Conversations request); without it
 * the request is refused with 400 before it is scheduled. On purpose, a
 * prompt of token ids passes (vLLM takes them; GIE's parser reads
 * strings only) and a path of no known API is not checked (GIE parses it
 * as a completion). 0, or answered and -1. */
static int check_api_body(struct ig_req *p)
{
	const struct ig_json_value *m = p->members;
	const char *msg = NULL;
	switch (api_of(p->ex->req.path)) {
	case API_COMPLETIONS: {
		struct ig_json_value v = m[IG_BM_PROMPT];
		if (!((v.type == IG_JSON_STRING && v.raw.len > 2) ||
		      (v.type == IG_JSON_ARRAY && !empty_container(v))))
			msg = "invalid completions request: must have prompt field";
		break;
	}
	case API_CHAT:
		if (m[IG_BM_MESSAGES].type != IG_JSON_ARRAY || empty_container(m[IG_BM_MESSAGES]))
			msg = "invalid chat completions request: must have valid messages field";
		break;
	case API_RESPONSES:
		if (m[IG_BM_INPUT].type <= IG_JSON_NULL)
			msg = "invalid responses request: must have input field";
		break;
	case API_EMBEDDINGS:
		if (m[IG_BM_INPUT].type <= IG_JSON_NULL)
			msg = "invalid embeddings request: must have input field";
		break;
	case API_CONVERSATIONS:
		if (!conversation_items_ok(m[IG_BM_ITEMS]) ||
		    (m[IG_BM_SALT].type && m[IG_BM_SALT].type != IG_JSON_STRING &&
		     m[IG_BM_SALT].type != IG_JSON_NULL))
			msg = "invalid conversations request: must have items field";
		break;
	default:
		break;
	}
	if (!msg)
		return 0;
	ig_req_fail(p, 400, "invalid_request_error", NULL, msg);
	return -1;
}

/* GIE v1: the body's model passes through unchanged, unless the request
 * names another with x-gateway-model-name-rewrite (v1.5) or an
 * InferenceModelRewrite rule of the pool matches it (weighted targets).
 * Priority comes from an InferenceObjective only (0 without one). */
static int passthrough(struct ig_req *p, struct ig_json_value mv)
{
	/* A rule that matches the model wins over the header, as in GIE
	 * v1.5 (the header sets the target, then the director's weighted
	 * rewrite replaces it when a rule matches the incoming model). */
	const char *target = p->model.ptr;
	const struct ig_model_rewrite *owner = NULL;
	const struct ig_rewrite_rule *rule =
	    ig_config_find_rewrite(p->snap->cfg, p->pool->pool, p->model.ptr, p->model.len, &owner);
	const char *chosen = rule ? ig_rewrite_choose(rule, ig_rng_next(ig_rng_thread())) : NULL;
	struct ig_str rw =
	    chosen ? (struct ig_str){NULL, 0} : header(&p->ex->req, "x-gateway-model-name-rewrite");
	if (chosen) {
		target = chosen;
		ig_req_metrics_rewrite(p, owner, rule, chosen);
	} else if (rw.len && rw.len <= MODEL_MAX) {
		struct ig_str t = ig_arena_strdup(p->ex->arena, rw);
		if (!t.ptr) {
			ig_req_fail(p, 500, "server_error", NULL, "out of memory");
			return -1;
		}
		target = t.ptr;
	}
	p->target = ig_str_from(target);
	p->priority = 0;
	p->sheddable = false;
	/* GIE v1.5 and llm-d Router answer with the name the client asked
	 * for: the response's model is turned back (relay.c). */
	p->restore_model = !ig_str_eq(p->model, p->target);
	return splice(p, mv, target);
}

/* The body goes upstream as it came. */
static void body_as_sent(struct ig_req *p)
{
	struct ig_buf *in = &p->ex->body;
	p->body_pre = (struct ig_str){in->ptr, in->len};
	p->body_len = in->len;
}

/* Reads `model`, resolves it, draws the target and splices the body.
 * Returns 0, or answers the error itself and returns -1. */
static int resolve_model(struct ig_req *p)
{
	const struct ig_pool *pool = p->pool->pool;
	bool passes = ig_pool_model_mode(p->snap->cfg, pool) == IG_MODELS_PASSTHROUGH;
	if (p->body_state == 0) {
		/* A request without a body (GET /health, a CORS preflight, a
		 * WebSocket handshake) goes, as sent, to a random endpoint of
		 * the pool, with no model to resolve: GIE since v0.3.0, in its
		 * InferenceModel days too (PR #555; v0.5.1 and v1.5
		 * handlers/request.go, HandleRequestHeaders). */
		p->random_endpoint = true;
		return 0;
	}
	if (passes && ig_scheduler_raw_body(p->pool->sched->s)) {
		/* llm-d Router's passthrough-parser: the body, JSON or not,
		 * goes as it came; no model is read, so none is rewritten,
		 * no API is checked and no prompt is hashed. */
		body_as_sent(p);
		return 0;
	}
	if (p->body_state <= 0) {
		ig_req_fail(p, 400, "invalid_request_error", NULL,
			    "the request body is not a JSON object");
		return -1;
	}
	struct ig_json_value mv = p->members[IG_BM_MODEL];
	if (mv.type != IG_JSON_STRING) {
		ig_req_fail(p, 400, "invalid_request_error", NULL,
			    "model not found in request: the body needs a string \"model\"");
		return -1;
	}
	if (decode_model(p, mv) < 0) {
		ig_req_fail(p, 400, "invalid_request_error", NULL, "model name too long");
		return -1;
	}
	if (passes)
		return check_api_body(p) < 0 ? -1 : passthrough(p, mv);
	const struct ig_model *m =
	    ig_config_find_model(p->snap->cfg, pool, p->model.ptr, p->model.len);
	if (!m) {
		char msg[600];
		snprintf(msg, sizeof msg, "The model `%.*s` does not exist.",
			 (int)(p->model.len > 400 ? 400 : p->model.len), p->model.ptr);
		ig_req_fail(p, 404, "invalid_request_error", "model_not_found", msg);
		return -1;
	}
	const char *target = m->model_name;
	p->resolved = m;
	p->critical = m->criticality == IG_CRIT_CRITICAL;
	/* Flow control orders bands by priority: an InferenceModel marked
	 * Sheddable is -1, the others 0. Shed when the pool is saturated is
	 * anything not Critical, Standard and unset included, as GIE did
	 * while it had InferenceModels (v0.2.0's tree; v0.3-v0.5's detector
	 * dropped every non-critical request). */
	p->priority = m->criticality == IG_CRIT_SHEDDABLE ? -1 : 0;
	p->sheddable = !p->critical;
	if (m->ntargets) {
		int32_t weights[m->ntargets];
		for (size_t i = 0; i < m->ntargets; i++)
			weights[i] = m->targets[i].weight;
		size_t k = ig_sched_weighted_draw(weights, m->ntargets, m->targets[0].has_weight,
						  ig_rng_thread());
		target = m->targets[k].name;
	}
	p->target = ig_str_from(target);
	return splice(p, mv, target);
}

static struct ig_str header(const struct ig_http_request *r, const char *name)
{
	const struct ig_http_header *h = ig_http_find_header(r->headers, r->num_headers, name);
	return h ? h->value : (struct ig_str){"", 0};
}

/* Priority (InferenceObjective named by a header), fairness id, session
 * and the test endpoint header. */
static void request_features(struct ig_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	/* The InferenceObjective named by the header (llm-d Router also reads
	 * x-llm-d-inference-objective), if it belongs to this pool; no header
	 * or an unknown name leaves the priority as it is (0, or -1 for an
	 * InferenceModel marked Sheddable); a named objective also decides
	 * whether the request is sheddable (a negative priority). */
	struct ig_str obj = header(r, "x-gateway-inference-objective");
	if (!obj.len)
		obj = header(r, "x-llm-d-inference-objective");
	if (obj.len) {
		const struct ig_pool *pool = p->pool->pool;
		const struct ig_objective *o =
		    ig_config_find_objective_for_pool(p->snap->cfg, pool, obj.ptr, obj.len);
		if (o) {
			p->priority = o->has_priority ? o->priority : 0;
			p->sheddable = p->priority < 0;
		}
	}
	/* GIE's header, else llm-d Router's name for it. */
	struct ig_str flow = header(r, "x-gateway-inference-fairness-id");
	if (!flow.len)
		flow = header(r, "x-llm-d-inference-fairness-id");
	if (!flow.len || flow.len > IG_FLOWQ_MAX_FLOW_ID)
		flow = IG_STR("default-flow");
	p->flow_id = flow;
	p->session = header(r, p->w->gw->opt.session_header);
	p->test_endpoints = header(r, "test-epp-endpoint-selection");
}

/* The body members any stage uses, found in the one pass that validates
 * the body. */
static const char *const body_keys[IG_BM_N] = {[IG_BM_MODEL] = "model",
					       [IG_BM_PROMPT] = "prompt",
					       [IG_BM_MESSAGES] = "messages",
					       [IG_BM_INPUT] = "input",
					       [IG_BM_INSTRUCTIONS] = "instructions",
					       [IG_BM_TOOLS] = "tools",
					       [IG_BM_SYSTEM] = "system",
					       [IG_BM_SALT] = "cache_salt",
					       [IG_BM_ITEMS] = "items"};

_Static_assert(IG_BM_N <= IG_JSON_STREAM_MAX_KEYS, "the body's members fit a JSON stream");

void ig_req_body_progress(struct ig_http_exchange *ex, void *ctx)
{
	(void)ctx;
	struct ig_json_stream *s = ex->body_user;
	if (!s) {
		if (!(s = ig_arena_alloc(ex->arena, sizeof(*s))))
			return;
		ig_json_stream_init(s, body_keys, IG_BM_N);
		ex->body_user = s;
	}
	(void)ig_json_stream_feed(s, ex->body.ptr, ex->body.len);
}

void ig_req_parse_body(struct ig_req *p)
{
	struct ig_buf *in = &p->ex->body;
	struct ig_json_stream *s = p->ex->body_user;
	struct ig_json_value root;
	if (!in->len) {
		/* No body at all, as the request's framing says (Envoy then
		 * sends GIE's picker headers with end_of_stream); an empty
		 * chunked body is a body, and not a JSON object. */
		p->body_state = p->ex->body_length == 0 ? 0 : -1;
		return;
	}
	/* A body that came in pieces has been read as it came: only its
	 * last piece is left. */
	int rc = s ? ig_json_stream_finish(s, in->ptr, in->len, p->members, &root)
		   : ig_json_parse_members(in->ptr, in->len, body_keys, IG_BM_N, p->members, &root);
	p->body_state = rc == 0 && root.type == IG_JSON_OBJECT ? 1 : -1;
}

int ig_req_rewrite(struct ig_req *p)
{
	if (p->service && p->streaming) {
		/* The body follows the head as it comes (relay.c). */
		p->body_pre = (struct ig_str){NULL, 0};
		p->body_len = 0;
	} else if (p->service) {
		body_as_sent(p); /* a plain HTTP backend */
	} else {
		if (resolve_model(p) < 0)
			return -1;
		request_features(p);
	}
	if (build_head(p) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	return 0;
}
