/* The gateway following a pool's external endpoint picker (GIE's, llm-d's,
 * or `infergate epp`) over ext_proc, as Envoy does with GIE's
 * configuration (spec/extproc.md §5.3, §5.4; gie-reference §4.1, §7):
 *
 *   → request_headers (every client header in lower case, :method :path
 *     :authority :scheme), then the body in chunks without waiting
 *     (FULL_DUPLEX_STREAMED both ways)
 *   ← request_headers answer: header changes, the pick in
 *     x-gateway-destination-endpoint (or envoy.lb metadata); then the body
 *     as streamed_response chunks up to end_of_stream
 *   the request goes to the first endpoint named (the next ones when
 *   connecting fails), with the picker's headers (as Envoy's default
 *   HeaderMutationRules let them through: :path is the new target) and
 *   body
 *   → response_headers (names in lower case) with metadata_context
 *     envoy.lb x-gateway-destination-endpoint-served = the endpoint that
 *     answered; end_of_stream when the response has no body
 *   ← its answer's header changes go to the client's response head, sent
 *     without Content-Length when a body follows (Envoy drops it in this
 *     mode, §4.4)
 *   → response_body chunks as the pod sends them, the last with
 *     end_of_stream
 *   ← streamed_response chunks: what the client gets, written as they
 *     come; the one with end_of_stream ends the response
 *   the stream is half-closed when the response ends.
 *
 * A body answer without a body mutation (an empty BodyResponse, or a
 * CommonResponse that changes no body) is taken as "this message's body,
 * unchanged", on either path: GIE v1.6's conformance picker (lwepp) gives
 * every body message such an answer, in the request's case before or
 * after its headers answer. Envoy in FULL_DUPLEX_STREAMED calls it
 * spurious because it drained the chunk; the gateway holds the request's
 * body anyway and keeps each response chunk until it is answered, so
 * nothing is lost. A picker answers a direction's body one way: mixing
 * the two, or more unchanged answers than messages sent, is refused, as
 * is a plain body or clear_body (spec/extproc.md §5.3).
 *
 * Each answer must come within --epp-timeout (in the response body: while
 * the picker holds more than a window of it, or after its end went). An
 * immediate_response is the client's answer, with its status, body and
 * header changes, on the request path and on the response path until the
 * response head went to the client; after that it resets the client's
 * stream (§4.6). When the picker cannot be reached, times out, ends the
 * stream or answers out of protocol before the request has gone to a pod:
 * FailOpen serves the request with the built-in picker, FailClose answers
 * 503 (unreachable), 504 (timeout) or 500 (anything else) and nothing
 * reaches a pod. While a response head waits for it, a failure passes
 * the response on unchanged; once the response body went to the picker
 * (which drains it), the client's stream is reset.
 *
 * Streams share one HTTP/2 connection per picker address and worker
 * (ig_grpc_channel), kept for the worker's life. A call outlives its
 * request only to be half-closed: the call state is malloc'd, not in the
 * request's arena, and is freed when the picker ends the stream (or 5 s
 * after the half-close). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "extproc/msg.h"
#include "gateway/request.h"
#include "grpc/grpc.h"
#include "http/parse.h"

#define PROCESS_PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define DEST_HEADER "x-gateway-destination-endpoint"
#define CHUNK_BYTES 65536
#define MAX_CHANNELS 32
#define LINGER_MS 5000

/* How a picker gives a body back: in streamed_response pieces (any
 * count), or with an answer without a body mutation for each message,
 * which leaves that message's bytes as they were. */
enum xp_style {
	XP_STYLE_UNKNOWN,
	XP_STYLE_STREAMED,
	XP_STYLE_UNCHANGED,
};

/* A response body message kept for its answer: its length and whether it
 * had end_of_stream; its bytes follow. */
struct kept_head {
	uint32_t len;
	uint32_t eos;
};

enum xp_phase {
	XP_REQUEST,  /* waiting for the headers answer, then the body */
	XP_SENT,     /* the request went to a pod */
	XP_RESPONSE, /* a response head waits for the picker */
	XP_BODY,     /* the head went on; the body goes through the picker */
	XP_PASSED,   /* the response went on; only the half-close is left */
};

struct xp_call {
	struct ig_req *p; /* NULL once the request ended */
	struct ig_worker *w;
	struct ig_grpc_channel *ch; /* the connection the call is on */
	struct ig_grpc_call *call;
	struct ig_timer timer;
	enum xp_phase phase;
	bool headers_answered, call_done, fail_open;
	/* How the picker gives each direction's body back, known from its
	 * first body answer there (see the top of the file). */
	enum xp_style req_style, resp_style;
	/* Request body messages sent, and "unchanged" answers taken. */
	size_t req_msgs, req_unchanged;
	/* The body the picker sends back lands in the request's arena, in
	 * room made for the client's body's length and some (the model may
	 * change), so that the request sends it from where it landed; a body
	 * that outgrows the room goes on in `body`, and is copied over. */
	char *land;
	size_t land_len, land_cap;
	struct ig_buf body;
	char *endpoints;	  /* the pick, as named (malloc'd) */
	char *path;		  /* the :path the picker set, else NULL (malloc'd) */
	struct ig_xp_header *set; /* request header changes (malloc'd copies) */
	size_t nset;
	struct ig_str *remove;
	size_t nremove;
	/* The held response head and whether the response ended meanwhile. */
	struct ig_http_response res;
	bool up_done;
	/* The response's body goes through the picker (it has one); its end
	 * went; bytes of it the picker has not given back yet, and whether
	 * the pod's side is paused because they are over the window. */
	bool resp_body, resp_eos_sent, window_paused, kept_over;
	size_t resp_out;
	/* While the response body may come back as "unchanged" answers: each
	 * response body message sent and not answered, as a struct
	 * kept_head and its bytes, the oldest at resp_kept_off. */
	struct ig_buf resp_kept;
	size_t resp_kept_off;
	struct xp_call *next, *prev; /* the worker's live calls */
};

struct xp_channel {
	char addr[64];
	bool tls;
	struct ig_grpc_channel *ch;
};

/* A picker that fails fails every request: its warning is written once
 * per this interval per worker and text, with the count of those left
 * out since (Envoy's ext_proc filter logs none at its default level, and
 * counts them). */
#define WARN_INTERVAL_NS 5000000000u

/* A worker's channels and live calls. */
struct ig_extpick_conns {
	struct xp_channel ch[MAX_CHANNELS];
	size_t n;
	struct xp_call *calls;
	struct ig_log_limit warned;
};

static struct ig_extpick_conns *conns_of(struct ig_worker *w)
{
	if (!w->xpc)
		w->xpc = calloc(1, sizeof *w->xpc);
	return w->xpc;
}

static void picker_failed(struct xp_call *x, int grpc_status, const char *why);
static void xp_free(struct xp_call *x);

/* The worker's warnings about its picker, limited (ig_warn_limited). */
#define xp_warn(w, ...)                                                                            \
	ig_warn_limited(conns_of(w) ? &conns_of(w)->warned : NULL, ig_loop_now(&(w)->loop),        \
			WARN_INTERVAL_NS, __VA_ARGS__)

static int send_msg(struct xp_call *x, const struct ig_xp_request_out *m);

/* Before a channel is freed (which cancels its calls without a word):
 * its calls end here. */
static void drop_channel_calls(struct ig_extpick_conns *c, struct ig_grpc_channel *ch)
{
	struct xp_call *x = c->calls;
	while (x) {
		struct xp_call *next = x->next;
		if (x->ch == ch && x->call && !x->call_done) {
			ig_grpc_call_cancel(x->call);
			x->call = NULL;
			x->call_done = true;
			if (x->p)
				picker_failed(x, IG_GRPC_UNAVAILABLE,
					      "its connection was closed for another picker's");
			else
				xp_free(x);
		}
		x = next;
	}
}

static struct ig_grpc_channel *channel_for(struct ig_worker *w, const char *addr, bool tls)
{
	struct ig_extpick_conns *c = conns_of(w);
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->ch[i].tls == tls && !strcmp(c->ch[i].addr, addr))
			return c->ch[i].ch;
	if (c->n == MAX_CHANNELS) {
		/* Pickers come and go with reloads: the oldest goes, and the
		 * calls on it fail as if its connection had been lost. */
		drop_channel_calls(c, c->ch[0].ch);
		ig_grpc_channel_free(c->ch[0].ch);
		memmove(&c->ch[0], &c->ch[1], (MAX_CHANNELS - 1) * sizeof c->ch[0]);
		c->n--;
	}
	char host[64];
	snprintf(host, sizeof host, "%s", addr);
	char *colon = strrchr(host, ':');
	if (!colon)
		return NULL;
	*colon = '\0';
	int port = atoi(colon + 1);
	char *h = host;
	if (h[0] == '[') {
		h++;
		char *end = strchr(h, ']');
		if (end)
			*end = '\0';
	}
	const struct ig_gw_options *o = &w->gw->opt;
	struct ig_grpc_channel_config cfg = {
	    .host = h,
	    .port = port,
	    .tls = tls,
	    .tls_verify = o->epp_tls_verify,
	    .ca_file = o->epp_ca_file,
	    .connect_timeout_ms =
		o->upstream.connect_timeout_ms < 5000 ? o->upstream.connect_timeout_ms : 5000,
	    .max_message_bytes = o->http.max_body_bytes + 65536,
	};
	struct ig_grpc_channel *ch = ig_grpc_channel_new(&w->loop, &cfg);
	if (!ch)
		return NULL;
	struct xp_channel *slot = &c->ch[c->n++];
	snprintf(slot->addr, sizeof slot->addr, "%s", addr);
	slot->tls = tls;
	slot->ch = ch;
	return ch;
}

static void xp_free(struct xp_call *x)
{
	struct ig_extpick_conns *c = x->w->xpc;
	if (x->prev)
		x->prev->next = x->next;
	else if (c)
		c->calls = x->next;
	if (x->next)
		x->next->prev = x->prev;
	ig_timer_stop(&x->w->loop, &x->timer);
	ig_buf_free(&x->body);
	ig_buf_free(&x->resp_kept);
	free(x->endpoints);
	free(x->path);
	for (size_t i = 0; i < x->nset; i++) {
		free((char *)x->set[i].key.ptr);
		free((char *)x->set[i].value.ptr);
	}
	free(x->set);
	for (size_t i = 0; i < x->nremove; i++)
		free((char *)x->remove[i].ptr);
	free(x->remove);
	free(x);
}

void ig_extpick_worker_free(struct ig_worker *w)
{
	struct ig_extpick_conns *c = w->xpc;
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		ig_grpc_channel_free(c->ch[i].ch); /* cancels calls silently */
	while (c->calls) {
		struct xp_call *x = c->calls;
		if (x->p)
			x->p->xp = NULL;
		xp_free(x);
	}
	free(c);
	w->xpc = NULL;
}

/* Whether the name begins with "x-envoy-", in any case. */
static bool envoy_header(struct ig_str name)
{
	static const struct ig_str prefix = IG_STR("x-envoy-");
	return name.len >= prefix.len && ig_str_ieq((struct ig_str){name.ptr, prefix.len}, prefix);
}

/* Names the picker may not set: those Envoy's default HeaderMutationRules
 * ignore (x-envoy-*, host and the pseudo-headers; :path is taken apart,
 * take_headers_answer), those the upstream head writes itself, and those
 * that are not HTTP/1 headers. */
static bool not_settable(struct ig_str name)
{
	static const struct ig_str names[] = {IG_STR("content-length"),
					      IG_STR("host"),
					      IG_STR("connection"),
					      IG_STR("transfer-encoding"),
					      IG_STR("keep-alive"),
					      IG_STR("upgrade"),
					      IG_STR("te"),
					      IG_STR("trailer")};
	if (!name.len || name.ptr[0] == ':' || envoy_header(name))
		return true;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq(name, names[i]))
			return true;
	for (size_t i = 0; i < name.len; i++)
		if (!ig_http_is_tchar((unsigned char)name.ptr[i]))
			return true;
	return false;
}

/* A header the picker may set on a request or on a response: a name the
 * framing does not own, and a value without control characters. */
static bool header_ok(struct ig_str name, struct ig_str value)
{
	if (not_settable(name))
		return false;
	for (size_t j = 0; j < value.len; j++) {
		unsigned char ch = (unsigned char)value.ptr[j];
		if (ch < 0x20 ? ch != '\t' : ch == 0x7f)
			return false;
	}
	return true;
}

/* A request header the picker may remove: Envoy never removes host or a
 * pseudo-header, and its default rules keep x-envoy-* headers too. */
static bool removable(struct ig_str name)
{
	return name.len && name.ptr[0] != ':' && !ig_str_ieq_cstr(name, "host") &&
	       !envoy_header(name);
}

/* ext_proc header names are lower case (spec/extproc.md §3.1). */
static struct ig_str lower_copy(struct ig_arena *a, struct ig_str name)
{
	char *lower = ig_arena_alloc(a, name.len + 1);
	if (!lower)
		return (struct ig_str){NULL, 0};
	for (size_t j = 0; j < name.len; j++)
		lower[j] = (char)(name.ptr[j] >= 'A' && name.ptr[j] <= 'Z' ? name.ptr[j] + 32
									   : name.ptr[j]);
	lower[name.len] = '\0';
	return (struct ig_str){lower, name.len};
}

/* ---- failures ---- */

static void fallback(struct ig_req *p)
{
	if (ig_req_rewrite(p) < 0)
		return;
	ig_req_arm_timeout(p);
	if (ig_req_admit(p) == 0)
		ig_req_send(p);
}

/* The client's response began: it can only be cut now, which tells the
 * client it is incomplete (Envoy resets the stream). */
static void cut_response(struct ig_req *p, const char *why)
{
	p->reason = why;
	p->ex->on_abort = NULL;
	ig_http_abort(p->ex);
	ig_req_finish(p);
}

/* The picker failed us: before the request went to a pod, the failure
 * mode decides; while the response head waits, the response goes on
 * without its changes; once the response body went to the picker, which
 * drained it, the client's response is cut. */
static void picker_failed(struct xp_call *x, int grpc_status, const char *why)
{
	struct ig_req *p = x->p;
	ig_timer_stop(&x->w->loop, &x->timer);
	if (x->call && !x->call_done)
		ig_grpc_call_cancel(x->call);
	x->call = NULL;
	x->call_done = true;
	if (!p)
		return;
	enum xp_phase phase = x->phase;
	bool fail_open = x->fail_open;
	p->xp = NULL;
	x->p = NULL;
	xp_warn(x->w, "endpoint picker of pool %s/%s: %s%s", p->pool->pool->meta.ns,
		p->pool->pool->meta.name, why,
		phase == XP_BODY      ? "; the response was cut"
		: phase != XP_REQUEST ? "; the response goes on unchanged"
		: fail_open	      ? "; FailOpen: the built-in picker serves the request"
				      : "; FailClose: the request fails");
	if (phase == XP_RESPONSE) {
		ig_req_relay_head(p, &x->res);
		if (x->up_done)
			ig_req_relay_end(p);
		else if (p->up)
			ig_http_client_pause(p->up, false);
	}
	xp_free(x);
	if (phase == XP_BODY && !p->finished) {
		cut_response(p, "the endpoint picker failed during the response body");
		return;
	}
	if (phase != XP_REQUEST || p->finished)
		return;
	if (fail_open) {
		fallback(p);
		return;
	}
	if (grpc_status == IG_GRPC_UNAVAILABLE)
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    "the pool's endpoint picker is unavailable");
	else if (grpc_status == IG_GRPC_DEADLINE_EXCEEDED)
		ig_req_fail(p, 504, "timeout", NULL,
			    "the pool's endpoint picker did not answer in time");
	else
		ig_req_fail(p, 500, "server_error", NULL,
			    "the pool's endpoint picker failed to process the request");
}

static void on_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct xp_call *x = t->data;
	if (!x->p) {
		/* Half-closed and never ended by the picker. */
		if (x->call && !x->call_done)
			ig_grpc_call_cancel(x->call);
		xp_free(x);
		return;
	}
	picker_failed(x, IG_GRPC_DEADLINE_EXCEEDED,
		      x->kept_over ? "a response body piece over what the gateway keeps for it"
				   : "no answer within --epp-timeout");
}

static void arm(struct xp_call *x)
{
	ig_timer_start(&x->w->loop, &x->timer, x->w->gw->opt.epp_timeout_ms, on_timeout, x);
}

/* ---- the request goes to its pod ---- */

static char *dup_str(struct ig_str s)
{
	char *c = malloc(s.len + 1);
	if (c) {
		memcpy(c, s.ptr, s.len);
		c[s.len] = '\0';
	}
	return c;
}

/* The pool's endpoint with this address. */
static struct ig_endpoint *pool_endpoint(const struct ig_pool_rt *pool, struct ig_str addr)
{
	for (size_t i = 0; i < pool->neps; i++)
		if (ig_str_eq((struct ig_str){pool->eps[i]->addr, pool->eps[i]->addr_len}, addr))
			return pool->eps[i];
	return NULL;
}

/* The :path the picker set is the request's target from now, as Envoy
 * mutates the request's headers in place: the pod gets it (through the
 * route's URLRewrite, which Envoy's router applies after ext_proc), and
 * the access log shows it, as Envoy's %REQ(:PATH)%. */
static int set_target(struct ig_req *p, const char *path)
{
	struct ig_http_request *r = &p->ex->req;
	struct ig_str t = ig_arena_strdup(p->ex->arena, ig_str_from(path));
	if (!t.ptr)
		return -1;
	const char *q = memchr(t.ptr, '?', t.len);
	r->target = t;
	r->path = (struct ig_str){t.ptr, q ? (size_t)(q - t.ptr) : t.len};
	r->query = q ? (struct ig_str){q + 1, t.len - r->path.len - 1} : (struct ig_str){0};
	return 0;
}

static void dispatch(struct xp_call *x)
{
	struct ig_req *p = x->p;
	ig_timer_stop(&x->w->loop, &x->timer);
	const char *list = x->endpoints ? x->endpoints : "";
	p->nranked = 0;
	for (const char *s = list; *s && p->nranked < IG_REQ_MAX_RANKED;) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		struct ig_str a = ig_str_trim((struct ig_str){s, len});
		struct ig_endpoint *ep = a.len ? pool_endpoint(p->pool, a) : NULL;
		if (ep)
			p->ranked[p->nranked++] = ep;
		else if (a.len)
			xp_warn(x->w,
				"endpoint picker of pool %s: %.*s is not an endpoint of the pool",
				p->pool->pool->meta.name, (int)a.len, a.ptr);
		s = e ? e + 1 : s + len;
	}
	if (p->nranked == 0) {
		/* An answer without a usable endpoint is the picker failing:
		 * FailOpen serves the request with the built-in picker, as
		 * for a picker that hangs or breaks the protocol. */
		if (x->fail_open) {
			picker_failed(x, IG_GRPC_INTERNAL,
				      list[0] ? "it chose no endpoint of the pool"
					      : "it named no endpoint");
			return;
		}
		x->phase = XP_SENT;
		ig_req_fail(p, 503, "service_unavailable", NULL,
			    list[0] ? "the endpoint picker chose no endpoint of the pool"
				    : "the endpoint picker named no endpoint");
		return;
	}
	x->phase = XP_SENT;
	if (x->path && set_target(p, x->path) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return;
	}
	/* The picker's body replaces the client's (its model may differ),
	 * unless it answered each piece "unchanged". */
	struct ig_str body = {x->land, x->land_len};
	if (x->req_style == XP_STYLE_UNCHANGED) {
		body = ig_buf_str(&p->ex->body);
	} else if (!x->land) {
		char *copy = ig_arena_alloc(p->ex->arena, x->body.len + 1);
		if (!copy) {
			ig_req_fail(p, 500, "server_error", NULL, "out of memory");
			return;
		}
		memcpy(copy, x->body.ptr ? x->body.ptr : "", x->body.len);
		body = (struct ig_str){copy, x->body.len};
	}
	p->body_pre = body;
	p->model_json = p->body_post = (struct ig_str){0};
	p->body_len = body.len;
	p->prompt_bytes = body.len;
	if (ig_req_build_head(p) < 0) {
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return;
	}
	ig_req_arm_timeout(p);
	ig_req_send(p);
}

/* ---- answers ---- */

/* Room in the arena for the picker's body: the client's body's length and
 * this much more (a model name may grow), within --max-body-bytes. */
#define LAND_SLACK 4096

/* A piece of the picker's body: into the room in the arena while it fits,
 * else into x->body (under --max-body-bytes, as always). */
static int take_body(struct xp_call *x, struct ig_str piece)
{
	struct ig_req *p = x->p;
	if (!x->land && !x->body.len && x->body.max) {
		size_t cap = p->ex->body.len + LAND_SLACK;
		x->land_cap = cap < x->body.max ? cap : x->body.max;
		x->land = ig_arena_alloc(p->ex->arena, x->land_cap);
	}
	if (x->land && piece.len <= x->land_cap - x->land_len) {
		if (piece.len)
			memcpy(x->land + x->land_len, piece.ptr, piece.len);
		x->land_len += piece.len;
		return 0;
	}
	if (x->land) {
		/* Outgrown: the rest goes to the buffer, after what landed. */
		if (ig_buf_append(&x->body, x->land, x->land_len) < 0)
			return -1;
		x->land = NULL;
	}
	return ig_buf_append(&x->body, piece.ptr, piece.len);
}

/* A request target the picker may give in :path: origin-form, every
 * byte visible (it goes on the HTTP/1 request line as it is). */
static bool path_ok(struct ig_str v)
{
	if (!v.len || v.ptr[0] != '/')
		return false;
	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)v.ptr[i] <= 0x20 || (unsigned char)v.ptr[i] == 0x7f)
			return false;
	return true;
}

/* The request headers' changes, kept for the upstream head. A value is
 * the mutation's raw_value, else its `value` (the decoder's leniency:
 * Envoy reads raw_value only, spec/extproc.md §4.1, but a picker that
 * writes `value` alone means it). Envoy's default HeaderMutationRules
 * let the processor set :path, which becomes the pod's request target
 * (the last one set wins); the other pseudo-headers, host and x-envoy-*
 * are ignored (not_settable), and so are removals of those. */
static int take_headers_answer(struct xp_call *x, const struct ig_xp_response *r)
{
	x->set = calloc(r->nset + 1, sizeof *x->set);
	x->remove = calloc(r->nremove + 1, sizeof *x->remove);
	if (!x->set || !x->remove)
		return -1;
	for (size_t i = 0; i < r->nset; i++) {
		/* Each set without append overwrites in Envoy: the last
		 * x-gateway-destination-endpoint is the one forwarded and the
		 * one ORIGINAL_DST reads, so it is the pick. */
		if (ig_str_ieq_cstr(r->set[i].key, DEST_HEADER)) {
			free(x->endpoints);
			if (!(x->endpoints = dup_str(r->set[i].value)))
				return -1;
		}
		if (ig_str_eq_cstr(r->set[i].key, ":path")) {
			if (!path_ok(r->set[i].value))
				continue;
			free(x->path);
			if (!(x->path = dup_str(r->set[i].value)))
				return -1;
			continue;
		}
		if (!header_ok(r->set[i].key, r->set[i].value))
			continue;
		x->set[x->nset].key = (struct ig_str){dup_str(r->set[i].key), r->set[i].key.len};
		x->set[x->nset].value =
		    (struct ig_str){dup_str(r->set[i].value), r->set[i].value.len};
		/* Counted either way, so that xp_free frees what was copied. */
		x->nset++;
		if (!x->set[x->nset - 1].key.ptr || !x->set[x->nset - 1].value.ptr)
			return -1;
	}
	for (size_t i = 0; i < r->nremove; i++)
		if (removable(r->remove[i])) {
			x->remove[x->nremove++] =
			    (struct ig_str){dup_str(r->remove[i]), r->remove[i].len};
			if (!x->remove[x->nremove - 1].ptr)
				return -1;
		}
	if (!x->endpoints && r->lb_endpoint.len)
		x->endpoints = dup_str(r->lb_endpoint);
	return 0;
}

/* The picker holds this much of the response body, not given back yet,
 * before the pod's side waits: a picker that answers piece by piece (SSE,
 * infergate epp) never gets near it; one that gathers a JSON response
 * before answering (GIE) may hold a whole response within the gateway's
 * --max-body-bytes, which also bounds the call's send queue. */
static size_t resp_window(const struct xp_call *x)
{
	return x->w->gw->opt.http.max_body_bytes;
}

/* What the picker holds of the response body: the bytes it has not given
 * back, or, while they are kept for "unchanged" answers, what keeping
 * them takes, whichever is more. The window applies to it. */
static size_t resp_held(const struct xp_call *x)
{
	size_t kept = x->resp_kept.len - x->resp_kept_off;
	return kept > x->resp_out ? kept : x->resp_out;
}

/* Drops the kept messages answered already: all of them at once, or
 * once they are most of the buffer (so that a picker answering behind
 * costs no copy per answer). */
static void compact_kept(struct xp_call *x)
{
	if (x->resp_kept_off == x->resp_kept.len) {
		x->resp_kept.len = x->resp_kept_off = 0;
	} else if (x->resp_kept_off > x->resp_kept.len / 2) {
		ig_buf_consume(&x->resp_kept, x->resp_kept_off);
		x->resp_kept_off = 0;
	}
}

/* A response body message goes to the picker: while it may answer
 * "unchanged", its bytes are kept until that answer. 0, or -1 when they
 * do not fit under the buffer's ceiling. */
static int keep_resp(struct xp_call *x, const char *data, size_t len, bool eos)
{
	if (x->resp_style == XP_STYLE_STREAMED)
		return 0;
	compact_kept(x);
	struct kept_head h = {.len = (uint32_t)len, .eos = eos};
	if (len > UINT32_MAX || ig_buf_reserve(&x->resp_kept, sizeof h + len) < 0)
		return -1;
	ig_buf_append(&x->resp_kept, &h, sizeof h);
	ig_buf_append(&x->resp_kept, data, len);
	return 0;
}

/* The response body's end goes to the picker, which owes its last answer
 * from now (within --epp-timeout). A failed send ends the call: on_done
 * cuts the response. */
static void send_resp_end(struct xp_call *x)
{
	if (x->resp_eos_sent)
		return;
	const struct ig_xp_request_out m = {
	    .kind = IG_XP_REQ_RESPONSE_BODY, .body = {"", 0}, .end_of_stream = true};
	if (x->call && !x->call_done && keep_resp(x, "", 0, true) == 0 && send_msg(x, &m) == 0)
		x->resp_eos_sent = true;
	arm(x);
}

/* Whether set[k]'s name is set again later in the same mutation: in
 * Envoy each HeaderValueOption without append overwrites, so the last one
 * of a name is what goes (spec/extproc.md §4.2). */
static bool set_again(const struct ig_xp_header *set, size_t nset, size_t k)
{
	for (size_t j = k + 1; j < nset; j++)
		if (ig_str_ieq(set[j].key, set[k].key))
			return true;
	return false;
}

/* The picker's changes applied to the held response head, then it goes
 * to the client: without Content-Length when the body goes through the
 * picker (Envoy drops it in FULL_DUPLEX_STREAMED, spec/extproc.md §4.4),
 * and without any header the framing owns. */
static void pass_response(struct xp_call *x, const struct ig_xp_response *r)
{
	struct ig_req *p = x->p;
	ig_timer_stop(&x->w->loop, &x->timer);
	size_t cap = x->res.num_headers + (r ? r->nset : 0);
	struct ig_http_header *h = ig_arena_alloc(p->ex->arena, (cap + 1) * sizeof *h);
	struct ig_http_response res = x->res;
	if (h && r) {
		size_t n = 0;
		for (size_t i = 0; i < x->res.num_headers; i++) {
			struct ig_str name = x->res.headers[i].name;
			bool drop = false;
			/* What Envoy's default rules ignore leaves the
			 * pod's header as it is. */
			for (size_t k = 0; k < r->nremove && !drop; k++)
				drop = removable(r->remove[k]) && ig_str_ieq(name, r->remove[k]);
			for (size_t k = 0; k < r->nset && !drop; k++)
				drop = removable(r->set[k].key) && ig_str_ieq(name, r->set[k].key);
			if (!drop)
				h[n++] = x->res.headers[i];
		}
		for (size_t k = 0; k < r->nset; k++) {
			if (!header_ok(r->set[k].key, r->set[k].value) ||
			    set_again(r->set, r->nset, k))
				continue;
			h[n].name = ig_arena_strdup(p->ex->arena, r->set[k].key);
			h[n].value = ig_arena_strdup(p->ex->arena, r->set[k].value);
			n++;
		}
		res.headers = h;
		res.num_headers = n;
	}
	x->phase = x->resp_body ? XP_BODY : XP_PASSED;
	ig_req_relay_head(p, &res);
	if (x->up_done) {
		if (x->resp_body)
			send_resp_end(x);
		else
			ig_req_relay_end(p);
	} else if (p->up) {
		ig_http_client_pause(p->up, false);
	}
}

/* A streamed_response piece of the response body: the client's bytes.
 * The one with end_of_stream (after ours) ends the response. */
bool ig_req_extpick_takes_body(const struct ig_req *p)
{
	return p->xp && p->xp->resp_body;
}

/* Bytes of the response body the picker gave back: the client's, written
 * at once; eos (after ours) ends the response. */
static void take_resp_body(struct xp_call *x, struct ig_str bytes, bool eos)
{
	struct ig_req *p = x->p;
	if (eos && !x->resp_eos_sent) {
		picker_failed(x, IG_GRPC_INTERNAL, "end_of_stream before the response body's end");
		return;
	}
	size_t n = bytes.len;
	x->resp_out = x->resp_out > n ? x->resp_out - n : 0;
	int rc = n ? ig_http_write(p->ex, bytes.ptr, n) : 0;
	if (rc < 0)
		return; /* the client is gone: its on_abort ends the request */
	if (eos) {
		ig_timer_stop(&x->w->loop, &x->timer);
		x->phase = XP_PASSED;
		ig_req_relay_end(p);
		return;
	}
	if (x->resp_eos_sent || x->window_paused)
		arm(x);
	else
		ig_timer_stop(&x->w->loop, &x->timer);
	if (rc == 1 && p->up) {
		/* The client is full: the pod waits for on_client_writable. */
		ig_http_client_pause(p->up, true);
	} else if (x->window_paused && resp_held(x) <= resp_window(x) / 2 && p->up) {
		x->window_paused = false;
		ig_timer_stop(&x->w->loop, &x->timer);
		ig_http_client_pause(p->up, false); /* may feed us again: last */
	}
}

/* A response body answer in the picker's style, the first one setting
 * it: a streamed_response piece, or "unchanged" for the oldest message
 * not answered yet, whose kept bytes go to the client. */
static void take_resp_answer(struct xp_call *x, const struct ig_xp_response *r)
{
	enum xp_style style = r->has_streamed ? XP_STYLE_STREAMED : XP_STYLE_UNCHANGED;
	if (x->resp_style != XP_STYLE_UNKNOWN && x->resp_style != style) {
		picker_failed(x, IG_GRPC_INTERNAL,
			      "response body answers both streamed and unchanged");
		return;
	}
	x->resp_style = style;
	if (style == XP_STYLE_STREAMED) {
		/* Nothing will be answered "unchanged": the copies go. */
		ig_buf_free(&x->resp_kept);
		x->resp_kept_off = 0;
		take_resp_body(x, r->streamed_body, r->streamed_eos);
		return;
	}
	struct kept_head h;
	compact_kept(x);
	if (x->resp_kept.len - x->resp_kept_off < sizeof h) {
		picker_failed(x, IG_GRPC_INTERNAL,
			      "more response body answers than response body messages");
		return;
	}
	memcpy(&h, x->resp_kept.ptr + x->resp_kept_off, sizeof h);
	struct ig_str bytes = {x->resp_kept.ptr + x->resp_kept_off + sizeof h, h.len};
	x->resp_kept_off += sizeof h + h.len;
	/* The bytes stay where they are until the next message is kept or
	 * answered (compact_kept): ig_http_write copies what the socket does
	 * not take, and the call may be gone when it returns. */
	take_resp_body(x, bytes, h.eos);
}

/* An immediate_response before anything of the response went to the
 * client: it is the client's answer (spec/extproc.md §4.6), with its
 * status, body (text/plain unless it sets a content type) and header
 * changes, as Envoy makes its local reply. */
static void respond_immediate(struct xp_call *x, const struct ig_xp_response *r)
{
	struct ig_req *p = x->p;
	ig_timer_stop(&x->w->loop, &x->timer);
	x->phase = XP_PASSED;
	p->status = r->immediate_status;
	p->reason = "the endpoint picker answered the request itself";
	const char *ct = "text/plain";
	struct ig_http_header *h = ig_arena_alloc(p->ex->arena, (r->nset + 1) * sizeof *h);
	size_t n = 0;
	for (size_t i = 0; i < r->nset; i++) {
		struct ig_str key = r->set[i].key, value = r->set[i].value;
		if (ig_str_ieq_cstr(key, "content-type")) {
			struct ig_str v = ig_arena_strdup(p->ex->arena, value);
			if (v.ptr)
				ct = v.ptr;
		} else if (h && header_ok(key, value) && !set_again(r->set, r->nset, i)) {
			h[n].name = ig_arena_strdup(p->ex->arena, key);
			h[n].value = ig_arena_strdup(p->ex->arena, value);
			if (h[n].name.ptr && h[n].value.ptr)
				n++;
		}
	}
	ig_http_respond(p->ex, r->immediate_status, ct, r->immediate_body.ptr,
			r->immediate_body.len, h, n);
	ig_req_finish(p);
}

/* A request body answer without a body mutation: the message it answers
 * goes to the pod as the client sent it. Once every message sent has such
 * an answer and the headers have theirs, the request goes. */
static void take_req_unchanged(struct xp_call *x)
{
	if (x->req_style == XP_STYLE_STREAMED) {
		picker_failed(x, IG_GRPC_INTERNAL,
			      "request body answers both streamed and unchanged");
		return;
	}
	if (x->req_unchanged == x->req_msgs) {
		picker_failed(x, IG_GRPC_INTERNAL,
			      "more request body answers than request body messages");
		return;
	}
	x->req_style = XP_STYLE_UNCHANGED;
	x->req_unchanged++;
	if (x->headers_answered && x->req_unchanged == x->req_msgs)
		dispatch(x);
	else
		arm(x);
}

static void on_message(struct ig_grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
	struct xp_call *x = data;
	struct ig_req *p = x->p;
	if (!p)
		return; /* the request ended; only the stream's end is awaited */
	struct ig_xp_response r;
	if (ig_xp_response_decode(msg, len, &r) < 0) {
		picker_failed(x, IG_GRPC_INTERNAL, "an unreadable ProcessingResponse");
		return;
	}
	if (r.override_timeout) {
		arm(x); /* "more time": nothing else in the message counts */
		ig_xp_response_free(&r);
		return;
	}
	if (r.kind == IG_XP_RESP_IMMEDIATE) {
		/* The picker answers the client itself (429 shed, 503, ...):
		 * in place of the response while none of it went out, else
		 * the client's stream is reset. */
		if (x->phase == XP_REQUEST || x->phase == XP_SENT || x->phase == XP_RESPONSE) {
			respond_immediate(x, &r);
		} else if (x->phase == XP_BODY) {
			picker_failed(x, IG_GRPC_INTERNAL,
				      "an immediate_response after the response began");
		} else {
			cut_response(p, "the endpoint picker answered after the response began");
		}
		ig_xp_response_free(&r);
		return;
	}
	switch (x->phase) {
	case XP_REQUEST:
		if (r.kind == IG_XP_RESP_REQUEST_HEADERS && !x->headers_answered) {
			x->headers_answered = true;
			if (take_headers_answer(x, &r) < 0) {
				ig_xp_response_free(&r);
				picker_failed(x, IG_GRPC_INTERNAL, "out of memory");
				return;
			}
			/* No body, or every piece of it answered "unchanged"
			 * already: nothing more comes. */
			if (!p->ex->body.len ||
			    (x->req_style == XP_STYLE_UNCHANGED && x->req_unchanged == x->req_msgs))
				dispatch(x);
			else
				arm(x);
		} else if (r.kind == IG_XP_RESP_REQUEST_BODY && (r.has_body || r.clear_body)) {
			/* In FULL_DUPLEX_STREAMED a body answer may not replace
			 * or clear the body outside streamed_response: Envoy
			 * fails the stream at once (spec/extproc.md §5.3, §7). */
			ig_xp_response_free(&r);
			picker_failed(x, IG_GRPC_INTERNAL,
				      "a request body answer without streamed_response");
			return;
		} else if (r.kind == IG_XP_RESP_REQUEST_BODY && !r.has_streamed) {
			take_req_unchanged(x);
		} else if (r.kind == IG_XP_RESP_REQUEST_BODY && x->headers_answered &&
			   x->req_style == XP_STYLE_UNCHANGED) {
			ig_xp_response_free(&r);
			picker_failed(x, IG_GRPC_INTERNAL,
				      "request body answers both streamed and unchanged");
			return;
		} else if (r.kind == IG_XP_RESP_REQUEST_BODY && x->headers_answered) {
			x->req_style = XP_STYLE_STREAMED;
			if (take_body(x, r.streamed_body) < 0) {
				ig_xp_response_free(&r);
				picker_failed(x, IG_GRPC_RESOURCE_EXHAUSTED,
					      "its body is over --max-body-bytes");
				return;
			}
			if (r.streamed_eos)
				dispatch(x);
			else
				arm(x);
		} else {
			ig_xp_response_free(&r);
			picker_failed(x, IG_GRPC_INTERNAL, "an answer out of order");
			return;
		}
		break;
	case XP_RESPONSE:
		if (r.kind == IG_XP_RESP_RESPONSE_HEADERS)
			pass_response(x, &r);
		break;
	case XP_BODY:
		if (r.kind == IG_XP_RESP_RESPONSE_BODY && !r.has_body && !r.clear_body) {
			take_resp_answer(x, &r);
		} else if (r.kind != IG_XP_RESP_RESPONSE_TRAILERS) {
			/* Nothing but body pieces, streamed or unchanged, is
			 * taken here (§5.3): Envoy resets the stream. */
			ig_xp_response_free(&r);
			picker_failed(x, IG_GRPC_INTERNAL,
				      "an answer out of order during the response body");
			return;
		}
		break;
	default:
		break; /* late or extra answers are not ours to apply */
	}
	ig_xp_response_free(&r);
}

static void on_done(struct ig_grpc_call *c, int status, const char *message, void *data)
{
	struct xp_call *x = data;
	x->call_done = true;
	x->call = NULL;
	if (!x->p) {
		xp_free(x);
		return;
	}
	if (x->phase == XP_PASSED || x->phase == XP_SENT)
		return; /* nothing more was needed from it */
	char why[300];
	if (status == IG_GRPC_OK)
		snprintf(why, sizeof why, "it ended the stream without an answer");
	else
		snprintf(why, sizeof why, "grpc-status %d%s%s", status, message ? ": " : "",
			 message ? message : "");
	picker_failed(x, status == IG_GRPC_OK ? IG_GRPC_INTERNAL : status, why);
}

static const struct ig_grpc_call_handlers handlers = {.on_message = on_message, .on_done = on_done};

/* ---- the request's side ---- */

/* In pieces: a body chunk is copied once, from the client's body into the
 * call's queue. */
static int send_msg(struct xp_call *x, const struct ig_xp_request_out *m)
{
	struct ig_xp_pieces pc;
	int rc = ig_xp_encode_request_pieces(&pc, m);
	if (rc == 0)
		rc = ig_grpc_call_sendv(x->call, pc.part, pc.nparts);
	ig_xp_pieces_free(&pc);
	return rc;
}

int ig_req_extpick(struct ig_req *p)
{
	struct ig_worker *w = p->w;
	const struct ig_epp_target *t = p->pool->epp;
	struct ig_extpick_conns *c = conns_of(w);
	const char *addr = t->addrs[(size_t)w->id % t->naddrs];
	struct ig_grpc_channel *ch =
	    c ? channel_for(w, addr, !t->plaintext && !w->gw->opt.epp_plaintext) : NULL;
	struct xp_call *x = calloc(1, sizeof *x);
	if (!ch || !x) {
		free(x);
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	x->p = p;
	x->w = w;
	x->fail_open = t->fail_open;
	ig_buf_init(&x->body, w->gw->opt.http.max_body_bytes);
	x->next = c->calls;
	if (c->calls)
		c->calls->prev = x;
	c->calls = x;
	p->xp = x;
	x->ch = ch;
	x->call = ig_grpc_call_start(ch, PROCESS_PATH, 0, NULL, 0, &handlers, x);
	if (!x->call) {
		p->xp = NULL;
		xp_free(x);
		ig_req_fail(p, 500, "server_error", NULL, "out of memory");
		return -1;
	}
	/* The client's request as Envoy's connection manager hands it to its
	 * filters: pseudo-headers, then the headers with their names in lower
	 * case, less those for the client's hop alone (hop-by-hop, named by
	 * its Connection, Expect, which Envoy answers itself), with the
	 * request's id (the client's, else one made now: the pod gets the
	 * same), X-Forwarded-For with the client's address appended and
	 * X-Forwarded-Proto the connection's scheme (Envoy at the edge). */
	const struct ig_http_request *r = &p->ex->req;
	size_t n = r->num_headers + 8;
	struct ig_xp_header *hs = ig_arena_alloc(p->ex->arena, n * sizeof *hs);
	if (!hs || ig_req_make_id(p) < 0) {
		picker_failed(x, IG_GRPC_INTERNAL, "out of memory");
		return -1;
	}
	struct ig_str authority = {0};
	size_t k = 0;
	hs[k++] = (struct ig_xp_header){IG_STR(":method"), r->method};
	hs[k++] = (struct ig_xp_header){IG_STR(":path"), r->target};
	hs[k++] =
	    (struct ig_xp_header){IG_STR(":scheme"), p->ex->tls ? IG_STR("https") : IG_STR("http")};
	size_t auth_at = k++;
	bool nominated = ig_http_connection_nominates(r->headers, r->num_headers);
	for (size_t i = 0; i < r->num_headers; i++) {
		struct ig_str name = r->headers[i].name;
		if (ig_str_ieq_cstr(name, "host")) {
			authority = r->headers[i].value;
			continue;
		}
		/* An upgrade keeps its Upgrade and Connection, as Envoy's
		 * connection manager keeps them for one it will tunnel. */
		bool kept = ig_str_ieq_cstr(name, "content-length") ||
			    (p->upgrade && (ig_str_ieq_cstr(name, "upgrade") ||
					    ig_str_ieq_cstr(name, "connection")));
		if ((ig_req_hop_header(name) && !kept) ||
		    (nominated && ig_http_connection_names(r->headers, r->num_headers, name)) ||
		    ig_str_ieq_cstr(name, "x-forwarded-for") ||
		    ig_str_ieq_cstr(name, "x-forwarded-proto") ||
		    ig_str_ieq_cstr(name, "x-forwarded-client-cert") ||
		    ig_str_ieq_cstr(name, "x-request-id"))
			continue;
		struct ig_str lower = lower_copy(p->ex->arena, name);
		if (!lower.ptr)
			continue;
		hs[k++] = (struct ig_xp_header){lower, r->headers[i].value};
	}
	hs[auth_at] = (struct ig_xp_header){IG_STR(":authority"), authority};
	hs[k++] = (struct ig_xp_header){IG_STR("x-request-id"), p->request_id};
	if (p->ex->client_cert.len)
		hs[k++] =
		    (struct ig_xp_header){IG_STR("x-forwarded-client-cert"), p->ex->client_cert};
	hs[k++] = (struct ig_xp_header){IG_STR("x-forwarded-for"), ig_req_forwarded_for(p)};
	hs[k++] = (struct ig_xp_header){IG_STR("x-forwarded-proto"),
					p->ex->tls ? IG_STR("https") : IG_STR("http")};
	const struct ig_buf *body = &p->ex->body;
	struct ig_xp_request_out m = {
	    .kind = IG_XP_REQ_REQUEST_HEADERS,
	    .headers = hs,
	    .nheaders = k,
	    .end_of_stream = body->len == 0,
	    .protocol_config = true,
	    .request_body_mode = IG_XP_BODY_FULL_DUPLEX_STREAMED,
	    .response_body_mode = IG_XP_BODY_FULL_DUPLEX_STREAMED,
	};
	int rc = send_msg(x, &m);
	for (size_t off = 0; rc == 0 && off < body->len;) {
		size_t len = body->len - off > CHUNK_BYTES ? CHUNK_BYTES : body->len - off;
		struct ig_xp_request_out bm = {.kind = IG_XP_REQ_REQUEST_BODY,
					       .body = {body->ptr + off, len},
					       .end_of_stream = off + len == body->len};
		rc = send_msg(x, &bm);
		x->req_msgs++;
		off += len;
	}
	if (rc < 0) {
		picker_failed(x, IG_GRPC_INTERNAL, "out of memory");
		return -1;
	}
	arm(x);
	return 0;
}

bool ig_req_extpick_hold(struct ig_req *p, struct ig_http_client *c,
			 const struct ig_http_response *res)
{
	struct xp_call *x = p->xp;
	if (!x || !x->call || x->call_done || x->phase != XP_SENT)
		return false;
	/* The head is copied: its bytes live in the client's buffer. */
	struct ig_http_header *h = ig_arena_alloc(p->ex->arena, (res->num_headers + 1) * sizeof *h);
	if (!h)
		return false;
	for (size_t i = 0; i < res->num_headers; i++) {
		h[i].name = ig_arena_strdup(p->ex->arena, res->headers[i].name);
		h[i].value = ig_arena_strdup(p->ex->arena, res->headers[i].value);
	}
	x->res = *res;
	x->res.headers = h;
	x->res.reason = (struct ig_str){0};
	size_t n = res->num_headers + 1;
	struct ig_xp_header *hs = ig_arena_alloc(p->ex->arena, (n + 1) * sizeof *hs);
	if (!hs)
		return false;
	char status[8];
	snprintf(status, sizeof status, "%d", res->status);
	size_t k = 0;
	hs[k++] = (struct ig_xp_header){IG_STR(":status"),
					ig_arena_strdup(p->ex->arena, ig_str_from(status))};
	for (size_t i = 0; i < res->num_headers; i++) {
		struct ig_str lower = lower_copy(p->ex->arena, h[i].name);
		if (lower.ptr)
			hs[k++] = (struct ig_xp_header){lower, h[i].value};
	}
	/* A response with no body ends with its head (as Envoy's codec
	 * says): the picker gets no body messages for it. */
	bool bodyless = ig_http_bodyless(res->status, p->ex->req.method) || p->resp_length == 0;
	struct ig_xp_request_out m = {
	    .kind = IG_XP_REQ_RESPONSE_HEADERS,
	    .headers = hs,
	    .nheaders = k,
	    .end_of_stream = bodyless,
	    .meta_ns = "envoy.lb",
	    .meta_key = "x-gateway-destination-endpoint-served",
	    .meta_value = p->ep->addr,
	};
	if (send_msg(x, &m) < 0)
		return false;
	x->resp_body = !bodyless;
	/* The window bounds what is kept (resp_held); the ceiling leaves room
	 * for the message that crosses it. */
	ig_buf_init(&x->resp_kept, 2 * resp_window(x) + 65536);
	x->phase = XP_RESPONSE;
	ig_http_client_pause(c, true);
	arm(x);
	return true;
}

bool ig_req_extpick_holding(const struct ig_req *p)
{
	return p->xp && (p->xp->phase == XP_RESPONSE || p->xp->phase == XP_BODY);
}

void ig_req_extpick_up_done(struct ig_req *p)
{
	struct xp_call *x = p->xp;
	x->up_done = true;
	if (x->phase == XP_BODY)
		send_resp_end(x);
}

/* Called from the pod's on_body: never fails the call from here (the
 * client would be closed inside its own callback); a send that fails
 * ends the call, whose on_done cuts the response. */
int ig_req_extpick_body(struct ig_req *p, const char *data, size_t len, bool last)
{
	struct xp_call *x = p->xp;
	if (x->phase != XP_BODY)
		return -1;
	if (x->resp_eos_sent)
		return 0;
	const struct ig_xp_request_out m = {
	    .kind = IG_XP_REQ_RESPONSE_BODY, .body = {data, len}, .end_of_stream = last};
	if (!x->call || x->call_done)
		return 1;
	if (keep_resp(x, data, len, last) < 0) {
		/* Past the ceiling (a single piece larger than the window):
		 * the call ends, and its timer cuts the response at once. */
		ig_grpc_call_cancel(x->call);
		x->call = NULL;
		x->call_done = x->kept_over = true;
		ig_timer_start(&x->w->loop, &x->timer, 0, on_timeout, x);
		return 1;
	}
	if (send_msg(x, &m) < 0)
		return 1;
	x->resp_out += len;
	if (last) {
		x->resp_eos_sent = true;
		arm(x);
	}
	if (resp_held(x) > resp_window(x)) {
		x->window_paused = true;
		arm(x);
		return 1;
	}
	return 0;
}

/* The request ended: the stream is half-closed (the picker's accounting
 * ends with it) and the call waits, detached, for the picker's end. */
void ig_req_extpick_end(struct ig_req *p)
{
	struct xp_call *x = p->xp;
	p->xp = NULL;
	x->p = NULL;
	if (x->call_done || !x->call) {
		xp_free(x);
		return;
	}
	ig_grpc_call_close_send(x->call);
	ig_timer_start(&x->w->loop, &x->timer, LINGER_MS, on_timeout, x);
}

bool ig_req_extpick_drops(const struct ig_req *p, struct ig_str name)
{
	const struct xp_call *x = p->xp;
	for (size_t i = 0; i < x->nremove; i++)
		if (ig_str_ieq(name, x->remove[i]))
			return true;
	for (size_t i = 0; i < x->nset; i++)
		if (ig_str_ieq(name, x->set[i].key))
			return true;
	return false;
}

void ig_req_extpick_additions(const struct ig_req *p,
			      void (*emit)(void *ud, const char *name, const char *value), void *ud)
{
	const struct xp_call *x = p->xp;
	for (size_t i = 0; i < x->nset; i++)
		if (header_ok(x->set[i].key, x->set[i].value) && !set_again(x->set, x->nset, i))
			emit(ud, x->set[i].key.ptr, x->set[i].value.ptr);
}

size_t ig_req_extpick_room(const struct ig_req *p)
{
	const struct xp_call *x = p->xp;
	size_t n = 0;
	for (size_t i = 0; i < x->nset; i++)
		n += x->set[i].key.len + x->set[i].value.len + 4;
	return n;
}
