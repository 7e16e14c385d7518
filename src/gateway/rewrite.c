/* The second stage: the body's `model` is read and resolved through the
 * pool's InferenceModels, the target drawn by weight is spliced in place
 * of the value (every other byte of the body stays as sent), the request's
 * features are read from its headers, and the upstream head is written
 * once into the arena. */
#include <stdio.h>
#include <string.h>

#include "core/rand.h"
#include "gateway/request.h"
#include "gateway/runtime.h"
#include "json/canon.h"
#include "json/json.h"
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
	static const char *const names[] = {
	    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
	    "upgrade",	  "te",		"trailer",	    "content-length",
	    "host",	  "expect"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq_cstr(name, names[i]))
			return true;
	return false;
}

/* A version 4 UUID in its 8-4-4-4-12 text form (36 bytes, no NUL). */
static void uuid4(char out[36])
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
 * X-Forwarded-For and the new Content-Length. */
static int build_head(struct ig_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str peer = p->ex->peer;
	const char *colon = memrchr(peer.ptr, ':', peer.len);
	if (colon)
		peer.len = (size_t)(colon - peer.ptr);
	size_t cap = r->method.len + r->target.len + 16 + 64 + 40 + 24 + peer.len;
	for (size_t i = 0; i < r->num_headers; i++)
		cap += r->headers[i].name.len + r->headers[i].value.len + 4;
	char *buf = ig_arena_alloc(p->ex->arena, cap);
	if (!buf)
		return -1;
	struct wr w = {buf, buf + cap};
	put_str(&w, r->method);
	put(&w, " ", 1);
	put_str(&w, r->target);
	put_cstr(&w, " HTTP/1.1\r\n");
	bool have_id = false;
	const struct ig_http_header *xff = NULL;
	for (size_t i = 0; i < r->num_headers; i++) {
		const struct ig_http_header *hd = &r->headers[i];
		if (hop_by_hop(hd->name))
			continue;
		if (ig_str_ieq_cstr(hd->name, "x-forwarded-for")) {
			xff = hd;
			continue;
		}
		have_id |= ig_str_ieq_cstr(hd->name, "x-request-id");
		put_str(&w, hd->name);
		put(&w, ": ", 2);
		put_str(&w, hd->value);
		put(&w, "\r\n", 2);
	}
	if (!have_id) {
		char id[36];
		uuid4(id);
		put_cstr(&w, "x-request-id: ");
		put(&w, id, 36);
		put(&w, "\r\n", 2);
	}
	put_cstr(&w, "X-Forwarded-For: ");
	if (xff) {
		put_str(&w, xff->value);
		put(&w, ", ", 2);
	}
	put_str(&w, peer);
	put(&w, "\r\n", 2);
	if (p->body_len || ig_str_eq_cstr(r->method, "POST") || ig_str_eq_cstr(r->method, "PUT")) {
		char digits[24], *end = digits + sizeof digits;
		char *d = u64_text(p->body_len, end);
		put_cstr(&w, "Content-Length: ");
		put(&w, d, (size_t)(end - d));
		put(&w, "\r\n", 2);
	}
	if (w.p > w.end)
		return -1;
	p->head = (struct ig_str){buf, (size_t)(w.p - buf)};
	return 0;
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

/* What the prefix-cache index hashes, as GIE feeds it (gie-reference
 * §4.3): the text of a completions prompt; chat messages; a Responses
 * request's [{instructions}, {tools}, {input}]; embeddings input. Values
 * other than a prompt string are hashed in canonical JSON form
 * (json/canon.h: no spacing, sorted keys, fewest escapes), so the same
 * conversation written with other spacing, key order or escapes lands on
 * the same blocks; GIE gets the same effect by re-serializing what it
 * decoded. Only the first bytes the index hashes are produced. A
 * `cache_salt` joins the target model in the first block's seed. The
 * token estimate counts the whole value. */
static int prefix_input(struct ig_req *p, struct ig_json_value prompt,
			struct ig_json_value messages, struct ig_json_value input,
			struct ig_json_value instructions, struct ig_json_value tools,
			struct ig_json_value salt)
{
	struct ig_arena *a = p->ex->arena;
	if (salt.type == IG_JSON_STRING && salt.raw.len > 2) {
		struct ig_str s = {salt.raw.ptr + 1, salt.raw.len - 2};
		char *seed = ig_arena_alloc(a, p->target.len + s.len);
		if (!seed)
			return -1;
		memcpy(seed, p->target.ptr, p->target.len);
		/* The salt's decoded text (escapes resolved). */
		size_t n = ig_json_canonical_text(salt, seed + p->target.len, s.len);
		p->prefix_seed = (struct ig_str){seed, p->target.len + n};
	}
	bool embeddings = ig_str_eq_cstr(p->ex->req.path, "/v1/embeddings");
	struct ig_json_value whole = prompt.type != IG_JSON_INVALID	? prompt
				     : messages.type != IG_JSON_INVALID ? messages
									: input;
	if (whole.type == IG_JSON_INVALID)
		return 0;
	p->prompt_bytes = whole.raw.len;
	if (whole.raw.ptr == input.raw.ptr && !embeddings) {
		p->prompt_bytes += instructions.raw.len + tools.raw.len;
	}
	size_t limit = ig_scheduler_prefix_limit(p->pool->sched->s);
	if (!limit)
		return 0;
	if (whole.type == IG_JSON_STRING) {
		/* Text: the span itself when the hashed part has no escapes. */
		struct ig_str raw = {whole.raw.ptr + 1, whole.raw.len - 2};
		if (!memchr(raw.ptr, '\\', raw.len < limit ? raw.len : limit)) {
			p->prefix_input = raw;
			return 0;
		}
	}
	char *buf = ig_arena_alloc(a, limit);
	if (!buf)
		return -1;
	size_t n;
	if (whole.raw.ptr == input.raw.ptr && !embeddings) {
		/* Responses: [{"instructions":..},{"tools":..},{"input":..}]. */
		struct {
			const char *name;
			struct ig_json_value v;
		} parts[] = {{"instructions", instructions}, {"tools", tools}, {"input", input}};
		n = 0;
		bool first = true;
		for (size_t i = 0; i < 3 && n < limit; i++) {
			if (parts[i].v.type == IG_JSON_INVALID)
				continue;
			char head[24];
			int h = snprintf(head, sizeof head, "%s{\"%s\":", first ? "[" : ",",
					 parts[i].name);
			first = false;
			size_t take = (size_t)h < limit - n ? (size_t)h : limit - n;
			memcpy(buf + n, head, take);
			n += take;
			n += ig_json_canonical(parts[i].v, buf + n, limit - n);
			if (n < limit)
				buf[n++] = '}';
		}
		if (n < limit)
			buf[n++] = ']';
	} else {
		n = ig_json_canonical_text(whole, buf, limit);
	}
	p->prefix_input = (struct ig_str){buf, n};
	return 0;
}

/* Reads `model`, resolves it, draws the target and splices the body.
 * Returns 0, or answers the error itself and returns -1. */
static int resolve_model(struct ig_req *p)
{
	struct ig_buf *in = &p->ex->body;
	/* One pass validates the body and finds the members we use. */
	static const char *const keys[] = {"model",	   "prompt", "messages",  "input",
					   "instructions", "tools",  "cache_salt"};
	enum { K_MODEL, K_PROMPT, K_MESSAGES, K_INPUT, K_INSTRUCTIONS, K_TOOLS, K_SALT, K_N };
	struct ig_json_value root, mem[K_N];
	if (ig_json_parse_members(in->ptr, in->len, keys, K_N, mem, &root) < 0 ||
	    root.type != IG_JSON_OBJECT) {
		ig_req_fail(p, 400, "invalid_request_error", NULL,
			    "the request body is not a JSON object");
		return -1;
	}
	struct ig_json_value mv = mem[K_MODEL];
	if (mv.type != IG_JSON_STRING) {
		ig_req_fail(p, 400, "invalid_request_error", NULL,
			    "model not found in request: the body needs a string \"model\"");
		return -1;
	}
	if (decode_model(p, mv) < 0) {
		ig_req_fail(p, 400, "invalid_request_error", NULL, "model name too long");
		return -1;
	}
	const struct ig_model *m =
	    ig_config_find_model(p->snap->cfg, p->pool->pool, p->model.ptr, p->model.len);
	if (!m) {
		char msg[600];
		snprintf(msg, sizeof msg, "The model `%.*s` does not exist.",
			 (int)(p->model.len > 400 ? 400 : p->model.len), p->model.ptr);
		ig_req_fail(p, 404, "invalid_request_error", "model_not_found", msg);
		return -1;
	}
	p->critical = m->criticality == IG_CRIT_CRITICAL;
	/* Outside the decision-tree profile only a negative priority makes a
	 * request sheddable; an InferenceModel marked Sheddable counts as -1. */
	p->priority = m->criticality == IG_CRIT_SHEDDABLE ? -1 : 0;
	const char *target = m->model_name;
	if (m->ntargets) {
		int32_t weights[m->ntargets];
		for (size_t i = 0; i < m->ntargets; i++)
			weights[i] = m->targets[i].weight;
		size_t k = ig_sched_weighted_draw(weights, m->ntargets, m->targets[0].has_weight,
						  ig_rng_thread());
		target = m->targets[k].name;
	}
	p->target = ig_str_from(target);
	if (prefix_input(p, mem[K_PROMPT], mem[K_MESSAGES], mem[K_INPUT], mem[K_INSTRUCTIONS],
			 mem[K_TOOLS], mem[K_SALT]) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	/* Splice: everything but the model value stays byte-identical. */
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

static struct ig_str header(const struct ig_http_request *r, const char *name)
{
	const struct ig_http_header *h = ig_http_find_header(r->headers, r->num_headers, name);
	return h ? h->value : (struct ig_str){"", 0};
}

/* Priority (InferenceObjective named by x-gateway-inference-objective),
 * fairness id, session and the test endpoint header. */
static void request_features(struct ig_req *p)
{
	const struct ig_http_request *r = &p->ex->req;
	struct ig_str obj = header(r, "x-gateway-inference-objective");
	if (obj.len) {
		const struct ig_objective *o = ig_config_find_objective(
		    p->snap->cfg, p->pool->pool->meta.ns, obj.ptr, obj.len);
		if (o)
			p->priority = o->has_priority ? o->priority : 0;
	}
	struct ig_str flow = header(r, "x-gateway-inference-fairness-id");
	if (!flow.len || flow.len > IG_FLOWQ_MAX_FLOW_ID)
		flow = IG_STR("default-flow");
	p->flow_id = flow;
	p->session = header(r, p->w->gw->opt.session_header);
	p->test_endpoints = header(r, "test-epp-endpoint-selection");
}

int ig_req_rewrite(struct ig_req *p)
{
	if (resolve_model(p) < 0)
		return -1;
	request_features(p);
	if (build_head(p) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	return 0;
}
