/* `infergate sim`: the HTTP side of the simulator. It routes requests,
 * checks OpenAI-style and Anthropic-style bodies the way vLLM does (same
 * statuses, same error bodies), turns them into engine requests, and
 * answers the model list, health, version, metrics and LoRA admin
 * endpoints. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "json/json.h"
#include "sim/sim_int.h"

#define MAX_REQUEST_ID 200

/* ---- small answers -------------------------------------------------------------- */

static void respond_json(struct ig_http_exchange *ex, int status, struct ig_buf *b)
{
	ig_http_respond(ex, status, "application/json", b->ptr, b->len, NULL, 0);
}

/* An error answer in the shape of the API the request was for. */
static void vfail_api(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind, int status,
		      const char *type, const char *param, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	struct ig_buf b = {0};
	ig_sim_render_api_error(&b, s->cfg.version, kind, status, type, param, msg);
	respond_json(ex, status, &b);
	ig_buf_free(&b);
}

static void fail_api(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind, int status,
		     const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void fail_api(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind, int status,
		     const char *type, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_api(s, ex, kind, status, type, param, fmt, ap);
	va_end(ap);
}

/* The OpenAI-style (vLLM) error, for what is not Anthropic's API. */
static void fail(struct sim *s, struct ig_http_exchange *ex, int status, const char *type,
		 const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void fail(struct sim *s, struct ig_http_exchange *ex, int status, const char *type,
		 const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_api(s, ex, IG_SIM_COMPLETION, status, type, param, fmt, ap);
	va_end(ap);
}

static void bad_request(struct sim *s, struct ig_http_exchange *ex, const char *param,
			const char *msg)
{
	fail(s, ex, 400, "BadRequestError", param, "%s", msg);
}

/* FastAPI answers routing errors with {"detail": ...}. */
static void respond_detail(struct ig_http_exchange *ex, int status, const char *detail,
			   const char *allow)
{
	char body[128];
	int n = snprintf(body, sizeof body, "{\"detail\":\"%s\"}", detail);
	struct ig_http_header h = {IG_STR("Allow"), ig_str_from(allow ? allow : "")};
	ig_http_respond(ex, status, "application/json", body, (size_t)n, allow ? &h : NULL,
			allow ? 1 : 0);
}

/* What vLLM's authentication middleware answers (--api-key). */
static void respond_unauthorized(struct ig_http_exchange *ex)
{
	static const char body[] = "{\"error\":\"Unauthorized\"}";
	ig_http_respond(ex, 401, "application/json", body, sizeof body - 1, NULL, 0);
}

/* ---- generation requests -------------------------------------------------------------- */

/* Text is deterministic for temperature 0 or a request seed; otherwise it
 * is sampled from the server's generator (seeded by --seed if given). */
static void seed_text(struct sim *s, const struct ig_sim_request *p, struct sim_req *r, int index,
		      uint64_t *text_seed)
{
	bool greedy = p->has_temp && p->temperature == 0;
	bool fixed = p->has_seed || greedy;
	uint64_t base = p->has_seed ? (uint64_t)p->seed : s->cfg.seed;
	if (fixed)
		*text_seed = ig_sim_text_seed(p->prompt_key, ig_str_from(r->model), base);
	else
		*text_seed = ig_rng_next(&s->rng);
	/* The choices of n > 1 differ, unless sampling is greedy. */
	if (fixed && !greedy && index)
		*text_seed ^= (uint64_t)index * 0x9E3779B97F4A7C15ULL;
	ig_rng_seed(&r->rng, *text_seed);
}

/* An answer written beforehand (structured outputs, tool calls): its
 * tokens, at least one (an empty choice is still a step that ends it). */
static int pieces_of_script(struct sim_req *r)
{
	struct ig_str text = {r->script.ptr ? r->script.ptr : "", r->script.len};
	size_t n = ig_sim_count_tokens(text);
	r->pieces = calloc(n ? n : 1, sizeof *r->pieces);
	if (!r->pieces)
		return -1;
	r->npieces = (long)ig_sim_token_spans(text, r->pieces, n);
	if (r->npieces == 0)
		r->pieces[r->npieces++] = (struct ig_str){text.ptr, text.len};
	return 0;
}

/* Structured outputs: the answer's text, drawn from the request's own
 * random stream. The parse checked the schema or the choices, so only
 * memory can run out here. */
static int write_script(const struct ig_sim_request *p, struct sim_req *r)
{
	if (ig_sim_structured_text(p->structured, p->spec, &r->rng, &r->script) < 0)
		return -1;
	return pieces_of_script(r);
}

/* A tool call: the named tool, or one drawn from the list; its arguments,
 * written from its `parameters` schema ("{}" without one), are the
 * answer's tokens. */
static int write_tool_call(const struct ig_sim_request *p, struct sim_req *r)
{
	struct ig_json_value f, name, params;
	struct ig_buf nb = {0};
	char hex[33];
	long pick = p->tool_mode == IG_SIM_TOOL_NAMED
			? p->tool_pick
			: (long)ig_rng_below(&r->rng, (uint64_t)p->ntools);
	if (ig_sim_tool_at(p->tools, pick, &f) < 0 || ig_json_get(f, "name", &name) < 0 ||
	    ig_json_string(name, &nb) < 0 || !ig_buf_cstr(&nb)) {
		ig_buf_free(&nb);
		return -1;
	}
	r->tool_name = strdup(nb.ptr);
	ig_buf_free(&nb);
	/* Chat's call ids; the Responses API's call_id (its item is fc_);
	 * Anthropic's tool_use ids. */
	const char *prefix = r->kind == IG_SIM_RESPONSES  ? "call_"
			     : r->kind == IG_SIM_MESSAGES ? "toolu_"
							  : "chatcmpl-tool-";
	ig_rng_hex128(&r->rng, hex);
	r->tool_id = malloc(strlen(prefix) + sizeof hex);
	if (!r->tool_name || !r->tool_id)
		return -1;
	snprintf(r->tool_id, strlen(prefix) + sizeof hex, "%s%s", prefix, hex);
	if (r->kind == IG_SIM_RESPONSES && r->item_id) {
		free(r->item_id);
		ig_rng_hex128(&r->rng, hex);
		r->item_id = malloc(sizeof "fc_" + 32);
		if (!r->item_id)
			return -1;
		snprintf(r->item_id, sizeof "fc_" + 32, "fc_%s", hex);
	}
	r->tool_mode = p->tool_mode;
	/* OpenAI's `parameters`, Anthropic's `input_schema`. */
	if ((ig_json_get(f, "parameters", &params) == 0 && params.type == IG_JSON_OBJECT) ||
	    (ig_json_get(f, "input_schema", &params) == 0 && params.type == IG_JSON_OBJECT)) {
		if (ig_sim_structured_text(IG_SIM_JSON, params.raw, &r->rng, &r->script) < 0)
			return -1;
	} else if (ig_buf_append_cstr(&r->script, "{}") < 0) {
		return -1;
	}
	return pieces_of_script(r);
}

/* Ids as vLLM's _base_request_id makes them: a prefix and the
 * X-Request-Id header when there is one (vLLM's Responses API ignores the
 * header), else the body's request_id (`body`, empty when none), else 32
 * random hex digits. */
static char *make_id(struct ig_http_exchange *ex, const char *prefix, bool use_header,
		     struct ig_str body)
{
	const struct ig_http_header *h =
	    use_header ? ig_http_find_header(ex->req.headers, ex->req.num_headers, "X-Request-Id")
		       : NULL;
	char hex[33];
	struct ig_str tail = h && h->value.len ? h->value : body;
	if (tail.len) {
		if (tail.len > MAX_REQUEST_ID)
			tail.len = MAX_REQUEST_ID;
	} else {
		ig_rng_hex128(ig_rng_thread(), hex);
		tail = ig_str_from(hex);
	}
	struct ig_buf b = {0};
	if (ig_buf_printf(&b, "%s%.*s", prefix, IG_STR_FMT(tail)) < 0 || !ig_buf_cstr(&b)) {
		ig_buf_free(&b);
		return NULL;
	}
	return b.ptr;
}

static const char *id_prefix(enum ig_sim_kind kind)
{
	switch (kind) {
	case IG_SIM_CHAT:
		return "chatcmpl-";
	case IG_SIM_RESPONSES:
		return "resp_";
	case IG_SIM_EMBEDDINGS:
		return "embd-";
	case IG_SIM_MESSAGES:
		return "msg_";
	case IG_SIM_COMPLETION:
		break;
	}
	return "cmpl-";
}

/* What an API keeps of its request beyond the engine's needs: the ids,
 * the Responses API's echoed fields, an embeddings request's input. */
static int keep_api_fields(struct ig_http_exchange *ex, const struct ig_sim_request *p,
			   struct sim_req *r)
{
	r->id = make_id(ex, id_prefix(p->kind), p->kind != IG_SIM_RESPONSES,
			ig_buf_str(&p->request_id));
	if (!r->id)
		return -1;
	if (p->kind == IG_SIM_RESPONSES) {
		r->item_id = make_id(ex, "msg_", false, (struct ig_str){0});
		if (!r->item_id || ig_sim_echo_compact(&p->echo, &r->echo_store, &r->echo) < 0)
			return -1;
	}
	if (p->role.len && !(r->role = ig_str_dup(ig_buf_str(&p->role))))
		return -1;
	if (p->echo_prompt) {
		if (!(r->echo_text = malloc(p->echo_text.len + 1)))
			return -1;
		memcpy(r->echo_text, p->echo_text.ptr ? p->echo_text.ptr : "", p->echo_text.len);
		r->echo_len = p->echo_text.len;
		r->echo_only = p->echo_only;
	}
	if (p->prompt_lp_json.len) {
		if (!(r->prompt_lp = malloc(p->prompt_lp_json.len)))
			return -1;
		memcpy(r->prompt_lp, p->prompt_lp_json.ptr, p->prompt_lp_json.len);
		r->prompt_lp_len = p->prompt_lp_json.len;
	}
	if (p->prompt_ids_json.len) {
		if (!(r->prompt_ids = malloc(p->prompt_ids_json.len)))
			return -1;
		memcpy(r->prompt_ids, p->prompt_ids_json.ptr, p->prompt_ids_json.len);
		r->prompt_ids_len = p->prompt_ids_json.len;
	}
	/* vLLM's completion with return_token_ids sets the echoed prompt's
	 * text to "" (it does not detokenize it). */
	r->return_ids = p->return_token_ids;
	r->echo_hidden = p->return_token_ids && p->kind == IG_SIM_COMPLETION;
	ig_buf_init(&r->gen_ids, ((size_t)p->max_tokens + 1) * sizeof(uint32_t));
	r->include_stop = p->include_stop;
	if (p->nstop_ids) {
		if (!(r->stop_ids = malloc(p->stop_ids.len)))
			return -1;
		memcpy(r->stop_ids, p->stop_ids.ptr, p->stop_ids.len);
		r->nstop_ids = p->nstop_ids;
	}
	if (p->nstop) {
		if (!(r->stop = malloc(p->stop.len)))
			return -1;
		memcpy(r->stop, p->stop.ptr, p->stop.len);
		r->nstop = p->nstop;
		for (const char *st = r->stop; st < r->stop + p->stop.len; st += strlen(st) + 1)
			if (strlen(st) > r->stop_max)
				r->stop_max = strlen(st);
	}
	if (p->kind == IG_SIM_EMBEDDINGS) {
		r->input = ig_str_dup(p->input);
		r->input_len = p->input.len;
		r->dims = p->dims;
		r->base64 = p->base64;
		if (!r->input)
			return -1;
	}
	return 0;
}

/* The prompt's prefix-cache keys. An adapter's KV entries differ from the
 * base model's, so its name seeds the chain. */
static int hash_prompt(struct sim *s, const struct ig_sim_request *p, struct sim_req *r)
{
	size_t n = ig_sim_request_nids(p);
	if ((long)n > r->seq.prompt_tokens)
		n = (size_t)r->seq.prompt_tokens;
	size_t full = n / (size_t)s->cfg.block_size;
	if (!full)
		return 0;
	r->hashes = malloc(full * sizeof *r->hashes);
	if (!r->hashes)
		return -1;
	uint64_t seed = r->adapter ? ig_sim_token_id(r->adapter) : 0;
	r->seq.nhashes = ig_sim_block_hashes((const uint64_t *)(const void *)p->ids.ptr, n,
					     s->cfg.block_size, seed, r->hashes);
	r->seq.hashes = r->hashes;
	return 0;
}

static struct sim_req *build_req(struct sim *s, struct ig_http_exchange *ex,
				 const struct ig_sim_request *p, int index)
{
	long max_tokens = p->max_tokens;
	uint64_t text_seed;
	struct sim_req *r = calloc(1, sizeof *r);
	if (!r) {
		fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
		return NULL;
	}
	r->ex = ex;
	r->kind = p->kind;
	r->model = ig_str_dup(p->name);
	r->adapter = p->adapter ? ig_str_dup(p->name) : NULL;
	if (!r->model || (p->adapter && !r->adapter)) {
		fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
		goto fail;
	}
	if (!ig_sim_model_fits(&s->model, p->prompt_tokens, max_tokens)) {
		fail_api(s, ex, p->kind, 400, "BadRequestError", NULL,
			 "The request needs %ld tokens of KV cache but the cache holds %ld "
			 "(--num-gpu-blocks x --block-size).",
			 p->prompt_tokens + max_tokens, s->cfg.num_gpu_blocks * s->cfg.block_size);
		goto fail;
	}
	r->seq.prompt_tokens = p->prompt_tokens;
	r->seq.adapter = r->adapter;
	r->seq.priority = (long)p->priority;
	if (keep_api_fields(ex, p, r) < 0 || hash_prompt(s, p, r) < 0) {
		fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
		goto fail;
	}
	r->created = (int64_t)ig_wall_seconds();
	r->stream = p->stream && !p->whole_stream;
	r->whole_stream = p->whole_stream;
	/* --enable-force-include-usage: every stream ends with its usage. */
	r->include_usage =
	    p->include_usage || (p->stream && s->cfg.force_include_usage &&
				 (p->kind == IG_SIM_COMPLETION || p->kind == IG_SIM_CHAT));
	r->continuous_usage = p->continuous_usage;
	r->index = index;
	seed_text(s, p, r, index, &text_seed);
	r->lp_top = p->lp_top;
	r->lp_seed = text_seed;
	r->min_tokens = (long)p->min_tokens;
	r->max_tokens = max_tokens;
	r->n_param = p->n;
	r->nprompts = p->nprompts;
	r->seq.target = max_tokens;
	r->finish = p->kind == IG_SIM_EMBEDDINGS ? "stop" : "length";
	/* Completions run to max_tokens (the seed's answer ends on "length");
	 * a chat-like answer (chat, Responses, Messages) ends on its own at a
	 * point fixed by its seed; an embedding is done when its prompt is. */
	/* Chat and completions end on their own with the end-of-sequence
	 * token, one more token without text (vllm-api.md §1.3, §2); it needs
	 * room under max_tokens, else the answer ends on "length". */
	long eos = p->kind == IG_SIM_CHAT || p->kind == IG_SIM_COMPLETION ? 1 : 0;
	if (p->kind != IG_SIM_COMPLETION && p->kind != IG_SIM_EMBEDDINGS && !p->ignore_eos) {
		long natural = ig_sim_natural_len(text_seed);
		if (natural < p->min_tokens)
			natural = (long)p->min_tokens;
		if (natural + eos <= max_tokens) {
			r->seq.target = natural + eos;
			r->finish = "stop";
			r->eos = eos;
		}
	}
	/* A structured answer ends where its value does (vLLM's grammar then
	 * allows only the end of sequence), or at max_tokens cut short. */
	if (p->tool_mode != IG_SIM_TOOL_NONE) {
		if (write_tool_call(p, r) < 0) {
			fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
			goto fail;
		}
		bool whole = r->npieces + eos <= max_tokens;
		r->seq.target = whole ? r->npieces + eos : max_tokens;
		r->eos = whole && eos;
		/* vLLM: a named tool's call ends on "stop", others on "tool_calls". */
		r->finish = !whole				? "length"
			    : p->tool_mode == IG_SIM_TOOL_NAMED ? "stop"
								: "tool_calls";
	} else if (p->structured != IG_SIM_FREE) {
		if (write_script(p, r) < 0) {
			fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
			goto fail;
		}
		bool whole = r->npieces + eos <= max_tokens;
		r->seq.target = whole ? r->npieces + eos : max_tokens;
		r->eos = whole && eos;
		r->finish = whole ? "stop" : "length";
	}
	return r;
fail:
	ig_sim_req_free(r);
	return NULL;
}

/* A request of several choices: n for each of its prompts, choice j of
 * prompt k at index k * n + j, each its own engine request with the lead's
 * id (p is prompt 0's parse). With best_of above n, each prompt's other
 * sequences run too, hidden: the first n are the answer (vLLM 0.8 answers
 * its best n). NULL when it failed, having answered. */
static struct sim_req *build_group(struct sim *s, struct ig_http_exchange *ex,
				   const struct ig_sim_request *p)
{
	long seqs = ig_sim_seqs_per_prompt(p), hidden = 0;
	struct sim_req *lead = build_req(s, ex, p, 0);
	if (!lead)
		return NULL;
	lead->choices = calloc((size_t)(p->nprompts * seqs), sizeof *lead->choices);
	if (!lead->choices) {
		fail_api(s, ex, p->kind, 500, "InternalServerError", NULL, "out of memory");
		ig_sim_req_free(lead);
		return NULL;
	}
	lead->lead = lead;
	lead->choices[lead->nchoices++] = lead;
	lead->prompt_sum = p->prompt_tokens;
	for (long k = 0; k < p->nprompts; k++) {
		struct ig_sim_request pk;
		struct ig_sim_error e;
		const struct ig_sim_request *cur = p;
		bool ok = true;
		if (k > 0) {
			/* vLLM checks every prompt (its context length too). */
			if (ig_sim_parse_request_at(&s->cfg, p->kind, ex->body.ptr, ex->body.len, k,
						    &pk, &e) < 0) {
				fail_api(s, ex, p->kind, e.status, e.type, e.param, "%s", e.msg);
				ok = false;
			}
			cur = &pk;
			lead->prompt_sum += pk.prompt_tokens;
		}
		for (long j = k ? 0 : 1; ok && j < seqs; j++) {
			/* A hidden sequence's index only tells its seed apart. */
			long index = j < p->n ? k * p->n + j : p->nprompts * p->n + hidden++;
			struct sim_req *c = build_req(s, ex, cur, (int)index);
			char *id = c ? strdup(lead->id) : NULL;
			if (c && !id)
				fail_api(s, ex, p->kind, 500, "InternalServerError", NULL,
					 "out of memory");
			if (!id) {
				if (c)
					ig_sim_req_free(c);
				ok = false;
				break;
			}
			free(c->id);
			c->id = id;
			c->lead = lead;
			c->hidden = j >= p->n;
			lead->choices[lead->nchoices++] = c;
		}
		if (k > 0)
			ig_sim_request_free(&pk);
		if (!ok) {
			for (int i = lead->nchoices - 1; i >= 0; i--)
				ig_sim_req_free(lead->choices[i]);
			return NULL;
		}
	}
	return lead;
}

/* ---- injected failures ------------------------------------------------------------ */

/* The status forced by a request header, 0 if none. x-sim-force-status is
 * ours; X-Return-Error is what llm-d-inference-sim reads. */
static int forced_status(struct ig_http_exchange *ex)
{
	static const char *const names[] = {"x-sim-force-status", "X-Return-Error"};
	for (size_t i = 0; i < 2; i++) {
		const struct ig_http_header *h =
		    ig_http_find_header(ex->req.headers, ex->req.num_headers, names[i]);
		if (!h)
			continue;
		long v = 0;
		for (size_t k = 0; k < h->value.len && k < 4; k++) {
			char c = h->value.ptr[k];
			if (c < '0' || c > '9')
				return 0;
			v = v * 10 + (c - '0');
		}
		if (h->value.len == 3 && v >= 400 && v <= 599)
			return (int)v;
	}
	return 0;
}

static void fail_as(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind,
		    enum ig_sim_failure f)
{
	const struct ig_sim_failure_info *fi = ig_sim_failure_info(f);
	switch (f) {
	case IG_SIM_FAIL_RATE_LIMIT:
		return fail_api(s, ex, kind, fi->status, fi->type, NULL,
				"Rate limit reached for %s (simulated failure).",
				ig_sim_label_name(&s->cfg));
	case IG_SIM_FAIL_INVALID_API_KEY:
		/* As a wrong --api-key is answered, whatever the API. */
		return respond_unauthorized(ex);
	case IG_SIM_FAIL_CONTEXT_LENGTH:
		return fail_api(s, ex, kind, fi->status, fi->type, NULL,
				"This model's maximum context length is %ld tokens. However, you "
				"requested more tokens than that (simulated failure).",
				s->cfg.max_model_len);
	case IG_SIM_FAIL_SERVER_ERROR:
		return fail_api(s, ex, kind, fi->status, fi->type, NULL,
				"Internal server error (simulated failure).");
	case IG_SIM_FAIL_INVALID_REQUEST:
		return fail_api(s, ex, kind, fi->status, fi->type, NULL,
				"Invalid request (simulated failure).");
	case IG_SIM_FAIL_MODEL_NOT_FOUND:
		return fail_api(s, ex, kind, fi->status, fi->type, "model",
				"The model does not exist (simulated failure).");
	case IG_SIM_FAIL_N:
		break;
	}
}

/* Answers with an injected error when the header forces one or the dice
 * say so (--failure-injection-rate). Returns true when it answered. */
static bool inject_failure(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind)
{
	int status = forced_status(ex);
	if (status) {
		for (int f = 0; f < IG_SIM_FAIL_N; f++)
			if (ig_sim_failure_info((enum ig_sim_failure)f)->status == status) {
				fail_as(s, ex, kind, (enum ig_sim_failure)f);
				return true;
			}
		fail_api(s, ex, kind, status, ig_sim_error_type(status), NULL,
			 "Forced status %d (x-sim-force-status).", status);
		return true;
	}
	if (s->cfg.failure_rate <= 0 ||
	    (double)ig_rng_below(&s->rng, 1000000) >= s->cfg.failure_rate * 10000)
		return false;
	int types[IG_SIM_FAIL_N], n = 0;
	for (int f = 0; f < IG_SIM_FAIL_N; f++)
		if (!s->cfg.failure_types || (s->cfg.failure_types & (1u << f)))
			types[n++] = f;
	fail_as(s, ex, kind, (enum ig_sim_failure)types[ig_rng_below(&s->rng, (uint64_t)n)]);
	return true;
}

static void handle_generate(struct sim *s, struct ig_http_exchange *ex, enum ig_sim_kind kind)
{
	struct ig_sim_request p;
	struct ig_sim_error e;
	if (inject_failure(s, ex, kind))
		return;
	if (ig_sim_parse_request(&s->cfg, kind, ex->body.ptr, ex->body.len, &p, &e) < 0) {
		fail_api(s, ex, kind, e.status, e.type, e.param, "%s", e.msg);
	} else {
		/* build_req and build_group have answered when they fail. */
		struct sim_req *r = ig_sim_seqs_per_prompt(&p) * p.nprompts > 1
					? build_group(s, ex, &p)
					: build_req(s, ex, &p, 0);
		if (r)
			ig_sim_engine_submit(s, r);
	}
	ig_sim_request_free(&p);
}

/* vLLM's GET /load: the requests in progress when
 * --enable-server-load-tracking counts them, else 0. */
static void handle_server_load(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_buf b = {0};
	ig_buf_printf(&b, "{\"server_load\":%ld}", s->server_load);
	respond_json(ex, 200, &b);
	ig_buf_free(&b);
}

/* ---- /tokenize, /detokenize ------------------------------------------------------------ */

static void handle_tokenize(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_sim_request p = {0};
	struct ig_sim_error e;
	struct ig_buf texts = {0}, out = {0};
	bool strs;
	ig_buf_init(&texts, (size_t)1 << 30);
	p.texts = &texts;
	if (!s->vocab)
		s->vocab = ig_sim_vocab_new();
	if (ig_sim_parse_tokenize(&s->cfg, ex->body.ptr, ex->body.len, &p, &strs, &e) < 0)
		fail(s, ex, e.status, e.type, e.param, "%s", e.msg);
	else if (ig_sim_tokenize_answer(&s->cfg, s->vocab, &p, &texts, strs, &out) < 0)
		fail(s, ex, 500, "InternalServerError", NULL, "out of memory");
	else
		respond_json(ex, 200, &out);
	ig_sim_request_free(&p);
	ig_buf_free(&texts);
	ig_buf_free(&out);
}

static void handle_detokenize(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_sim_request p;
	struct ig_sim_error e;
	struct ig_buf out = {0};
	if (ig_sim_parse_detokenize(&s->cfg, ex->body.ptr, ex->body.len, &p, &e) < 0)
		fail(s, ex, e.status, e.type, e.param, "%s", e.msg);
	else if (ig_sim_detokenize_answer(s->vocab, &p, &out) < 0)
		fail(s, ex, 500, "InternalServerError", NULL, "out of memory");
	else
		respond_json(ex, 200, &out);
	ig_sim_request_free(&p);
	ig_buf_free(&out);
}

/* ---- models, LoRA admin, state ----------------------------------------------------- */

static void put_permission(struct ig_buf *b, int64_t now)
{
	char hex[33];
	ig_rng_hex128(ig_rng_thread(), hex);
	ig_buf_printf(b,
		      ",\"permission\":[{\"id\":\"modelperm-%s\",\"object\":\"model_permission\","
		      "\"created\":%lld,\"allow_create_engine\":false,\"allow_sampling\":true,"
		      "\"allow_logprobs\":true,\"allow_search_indices\":false,\"allow_view\":true,"
		      "\"allow_fine_tuning\":false,\"organization\":\"*\",\"group\":null,"
		      "\"is_blocking\":false}]}",
		      hex, (long long)now);
}

static void put_card(struct ig_buf *b, const char *id, const char *root, const char *parent,
		     long max_len, int64_t now)
{
	ig_buf_append_cstr(b, "{\"id\":");
	ig_json_write_string(b, id, strlen(id));
	ig_buf_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"vllm\",\"root\":",
		      (long long)now);
	ig_json_write_string(b, root, strlen(root));
	ig_buf_append_cstr(b, ",\"parent\":");
	if (parent)
		ig_json_write_string(b, parent, strlen(parent));
	else
		ig_buf_append_cstr(b, "null");
	if (max_len > 0)
		ig_buf_printf(b, ",\"max_model_len\":%ld", max_len);
	else
		ig_buf_append_cstr(b, ",\"max_model_len\":null");
	put_permission(b, now);
}

static void handle_models(struct sim *s, struct ig_http_exchange *ex)
{
	const struct ig_sim_config *c = &s->cfg;
	int64_t now = (int64_t)ig_wall_seconds();
	struct ig_buf b = {0};
	ig_buf_append_cstr(&b, "{\"object\":\"list\",\"data\":[");
	size_t nbase = c->served.n ? c->served.n : 1;
	for (size_t i = 0; i < nbase; i++) {
		if (i)
			ig_buf_append_cstr(&b, ",");
		put_card(&b, c->served.n ? c->served.v[i] : c->model, c->model, NULL,
			 c->max_model_len, now);
	}
	for (size_t i = 0; i < c->nadapters; i++) {
		const struct ig_sim_adapter *a = &c->adapters[i];
		/* The parent is base_model_name only when that is a served name. */
		const char *parent = a->base && ig_sim_is_base_name(c, ig_str_from(a->base))
					 ? a->base
					 : ig_sim_label_name(c);
		ig_buf_append_cstr(&b, ",");
		put_card(&b, a->name, a->path, parent, 0, now);
	}
	ig_buf_append_cstr(&b, "]}");
	respond_json(ex, 200, &b);
	ig_buf_free(&b);
}

static void respond_text(struct ig_http_exchange *ex, const char *fmt, const char *name)
{
	char body[512];
	int n = snprintf(body, sizeof body, fmt, name);
	if (n >= (int)sizeof body)
		n = (int)sizeof body - 1;
	ig_http_respond(ex, 200, NULL, body, (size_t)n, NULL, 0);
}

/* A string member decoded onto out; absent, null or not a string leaves
 * out as it is. -1 when it does not fit. */
static int string_member(struct ig_json_value o, const char *key, struct ig_buf *out)
{
	struct ig_json_value v;
	if (ig_json_get(o, key, &v) < 0 || v.type != IG_JSON_STRING)
		return 0;
	return ig_json_string(v, out) < 0 ? -1 : 0;
}

/* {"lora_name": .., "lora_path": ..}: decoded into name and path. */
static int read_lora_body(struct ig_http_exchange *ex, struct ig_buf *name, struct ig_buf *path)
{
	struct ig_json_value root;
	if (ig_json_parse(ex->body.ptr, ex->body.len, &root) < 0 || root.type != IG_JSON_OBJECT)
		return -1;
	if (string_member(root, "lora_name", name) < 0 ||
	    (path && string_member(root, "lora_path", path) < 0))
		return -1;
	return 0;
}

/* The engine refuses an adapter when LoRA is off (no --enable-lora): a
 * failed load, which 0.8 answers with 400 and newer releases with 500. */
static void lora_not_enabled(struct sim *s, struct ig_http_exchange *ex)
{
	if (s->cfg.version == IG_SIM_V_0_8)
		return fail(s, ex, 400, "BadRequestError", NULL, "LoRA is not enabled");
	fail(s, ex, 500, "InternalServerError", NULL,
	     "LoRA is not enabled. Use --enable-lora to enable LoRA.");
}

static void handle_load_lora(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_buf name = {0}, path = {0};
	ig_buf_init(&name, 4096);
	ig_buf_init(&path, 4096);
	if (read_lora_body(ex, &name, &path) < 0 || !name.len || !path.len) {
		fail(s, ex, 400, "InvalidUserInput", NULL,
		     "Both 'lora_name' and 'lora_path' must be provided.");
	} else if (ig_sim_find_adapter(&s->cfg, ig_buf_str(&name)) >= 0) {
		fail(s, ex, 400, "InvalidUserInput", NULL,
		     "The lora adapter '%.*s' has already been loaded.", (int)name.len, name.ptr);
	} else if (!s->cfg.enable_lora) {
		lora_not_enabled(s, ex);
	} else if (ig_sim_add_adapter(&s->cfg, ig_buf_str(&name), ig_buf_str(&path),
				      (struct ig_str){NULL, 0}) < 0) {
		fail(s, ex, 500, "InternalServerError", NULL, "out of memory");
	} else {
		respond_text(ex, "Success: LoRA adapter '%s' added successfully.",
			     ig_buf_cstr(&name));
	}
	ig_buf_free(&name);
	ig_buf_free(&path);
}

static void handle_unload_lora(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_buf name = {0};
	ig_buf_init(&name, 4096);
	if (read_lora_body(ex, &name, NULL) < 0 || !name.len) {
		fail(s, ex, 400, "InvalidUserInput", NULL, "'lora_name' must be provided.");
	} else if (ig_sim_remove_adapter(&s->cfg, ig_buf_str(&name)) < 0) {
		fail(s, ex, 404, "NotFoundError", NULL, "The lora adapter '%.*s' cannot be found.",
		     (int)name.len, name.ptr);
	} else {
		respond_text(ex, "Success: LoRA adapter '%s' removed successfully.",
			     ig_buf_cstr(&name));
	}
	ig_buf_free(&name);
}

/* A list of adapter names (or one comma-joined string) as a malloc'd
 * comma-joined string; NULL on a type error. */
static char *names_of(struct ig_json_value v)
{
	struct ig_buf b = {0};
	ig_buf_init(&b, 1 << 16);
	if (v.type == IG_JSON_STRING) {
		if (ig_json_string(v, &b) < 0)
			goto bad;
	} else if (v.type == IG_JSON_ARRAY) {
		struct ig_json_value e;
		size_t pos = 0;
		while (ig_json_array_next(v, &pos, &e) == 1) {
			if (e.type != IG_JSON_STRING ||
			    (b.len && ig_buf_append_cstr(&b, ",") < 0) || ig_json_string(e, &b) < 0)
				goto bad;
		}
	} else {
		goto bad;
	}
	if (!ig_buf_cstr(&b))
		goto bad;
	return b.ptr;
bad:
	ig_buf_free(&b);
	return NULL;
}

/* Applies one key of a /sim/state body to f. -1 on a bad value. */
static int apply_state(struct ig_sim_fixed *f, struct ig_json_value k, struct ig_json_value v)
{
	bool null = v.type == IG_JSON_NULL;
	int64_t i;
	if (ig_json_string_eq(k, "waiting") || ig_json_string_eq(k, "running")) {
		bool w = ig_json_string_eq(k, "waiting");
		if (!null && (ig_json_int64(v, &i) < 0 || i < 0))
			return -1;
		*(w ? &f->has_waiting : &f->has_running) = !null;
		*(w ? &f->waiting : &f->running) = null ? 0 : (long)i;
	} else if (ig_json_string_eq(k, "kv_usage")) {
		double d = 0;
		if (!null && (ig_json_double(v, &d) < 0 || d < 0 || d > 1))
			return -1;
		f->has_kv = !null;
		f->kv = d;
	} else if (ig_json_string_eq(k, "lora_running") || ig_json_string_eq(k, "lora_waiting")) {
		char **dst =
		    ig_json_string_eq(k, "lora_running") ? &f->lora_running : &f->lora_waiting;
		char *names = null ? NULL : names_of(v);
		if (!null && !names)
			return -1;
		free(*dst);
		*dst = names;
	} else {
		return -1;
	}
	return 0;
}

static void handle_state(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_json_value root, k, v;
	bool clear = ig_str_eq_cstr(ex->req.method, "DELETE") || ex->body.len == 0;
	if (!clear && (ig_json_parse(ex->body.ptr, ex->body.len, &root) < 0 ||
		       (root.type != IG_JSON_OBJECT && root.type != IG_JSON_NULL)))
		return bad_request(s, ex, NULL, "expected a JSON object or null");
	if (clear || root.type == IG_JSON_NULL) {
		ig_sim_fixed_clear(&s->cfg.fixed);
	} else {
		/* Work on a copy so that a bad key leaves the state untouched. */
		struct ig_sim_fixed f = s->cfg.fixed;
		f.lora_running = f.lora_running ? strdup(f.lora_running) : NULL;
		f.lora_waiting = f.lora_waiting ? strdup(f.lora_waiting) : NULL;
		size_t pos = 0;
		while (ig_json_object_next(root, &pos, &k, &v) == 1) {
			if (apply_state(&f, k, v) < 0) {
				ig_sim_fixed_clear(&f);
				return bad_request(
				    s, ex, NULL,
				    "bad /sim/state key or value (keys: waiting, "
				    "running, kv_usage, lora_running, lora_waiting)");
			}
		}
		ig_sim_fixed_clear(&s->cfg.fixed);
		s->cfg.fixed = f;
	}
	ig_sim_lora_update(s);
	static const char ok[] = "{\"status\":\"ok\"}";
	ig_http_respond(ex, 200, "application/json", ok, sizeof ok - 1, NULL, 0);
}

static void handle_metrics(struct sim *s, struct ig_http_exchange *ex)
{
	struct ig_sim_gauges g;
	struct ig_buf b = {0};
	ig_sim_engine_gauges(s, &g);
	s->stats.preemptions = s->model.preemptions;
	s->stats.prefix_queries = s->model.prefix_queries;
	s->stats.prefix_hits = s->model.prefix_hits;
	struct ig_buf filtered = {0};
	if (ig_sim_render_metrics(&b, &s->cfg, &s->stats, &g) < 0 ||
	    ig_sim_filter_metrics(ig_buf_str(&b), ex->req.query, &filtered) < 0) {
		ig_buf_free(&b);
		ig_buf_free(&filtered);
		return fail(s, ex, 500, "InternalServerError", NULL, "out of memory");
	}
	ig_http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", filtered.ptr,
			filtered.len, NULL, 0);
	ig_buf_free(&b);
	ig_buf_free(&filtered);
}

static void handle_version(struct sim *s, struct ig_http_exchange *ex)
{
	const char *body =
	    s->cfg.version == IG_SIM_V_0_8 ? "{\"version\":\"0.8.0\"}" : "{\"version\":\"0.11.0\"}";
	ig_http_respond(ex, 200, "application/json", body, strlen(body), NULL, 0);
}

/* ---- routing ------------------------------------------------------------------------ */

enum route_id {
	R_COMPL,
	R_CHAT,
	R_RESPONSES,
	R_EMBEDDINGS,
	R_MESSAGES,
	R_MODELS,
	R_HEALTH,
	R_VERSION,
	R_TOKENIZE,
	R_DETOKENIZE,
	R_SERVER_LOAD,
	R_METRICS,
	R_LOAD,
	R_UNLOAD,
	R_STATE
};

struct route {
	const char *path;
	const char *methods; /* as for an Allow header */
	enum route_id id;
};

static const struct route routes[] = {
    {"/v1/completions", "POST", R_COMPL},
    {"/v1/chat/completions", "POST", R_CHAT},
    {"/v1/responses", "POST", R_RESPONSES},
    {"/v1/embeddings", "POST", R_EMBEDDINGS},
    {"/v1/messages", "POST", R_MESSAGES},
    {"/v1/models", "GET", R_MODELS},
    {"/health", "GET", R_HEALTH},
    {"/ping", "GET, POST", R_HEALTH},
    {"/version", "GET", R_VERSION},
    {"/load", "GET", R_SERVER_LOAD},
    {"/tokenize", "POST", R_TOKENIZE},
    {"/detokenize", "POST", R_DETOKENIZE},
    {"/metrics", "GET", R_METRICS},
    {"/v1/load_lora_adapter", "POST", R_LOAD},
    {"/v1/unload_lora_adapter", "POST", R_UNLOAD},
    {"/sim/state", "POST, DELETE", R_STATE},
};

static bool method_allowed(const char *methods, struct ig_str m)
{
	char buf[16];
	if (m.len >= sizeof buf)
		return false;
	memcpy(buf, m.ptr, m.len);
	buf[m.len] = '\0';
	const char *p = strstr(methods, buf);
	return p && (p[m.len] == '\0' || p[m.len] == ',') && (p == methods || p[-1] == ' ');
}

/* The routes vLLM guards with its validate_json_request dependency: the
 * OpenAI ones, the tokenizer's and the LoRA admin ones. */
static bool takes_json(enum route_id id)
{
	switch (id) {
	case R_COMPL:
	case R_CHAT:
	case R_RESPONSES:
	case R_EMBEDDINGS:
	case R_TOKENIZE:
	case R_DETOKENIZE:
	case R_LOAD:
	case R_UNLOAD:
		return true;
	default:
		return false;
	}
}

/* What that dependency accepts: the media type (lowercased, before any
 * ';') is application/json; no content-type at all is refused too. */
static bool json_content_type(struct ig_http_exchange *ex)
{
	const struct ig_http_header *h =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "Content-Type");
	if (!h)
		return false;
	struct ig_str v = h->value;
	const char *semi = v.len ? memchr(v.ptr, ';', v.len) : NULL;
	if (semi)
		v.len = (size_t)(semi - v.ptr);
	return ig_str_ieq_cstr(v, "application/json");
}

/* 415, as FastAPI's HTTPException writes it (0.8) or as newer releases'
 * handler wraps it in the error envelope (vllm-api.md §4.2). */
static void unsupported_media_type(struct sim *s, struct ig_http_exchange *ex)
{
	static const char msg[] = "Unsupported Media Type: Only 'application/json' is allowed";
	if (s->cfg.version == IG_SIM_V_0_8)
		return respond_detail(ex, 415, msg, NULL);
	fail(s, ex, 415, "Unsupported Media Type", NULL, "%s", msg);
}

static void dispatch(struct sim *s, struct ig_http_exchange *ex, enum route_id id)
{
	if (takes_json(id) && !json_content_type(ex))
		return unsupported_media_type(s, ex);
	switch (id) {
	case R_COMPL:
		return handle_generate(s, ex, IG_SIM_COMPLETION);
	case R_CHAT:
		return handle_generate(s, ex, IG_SIM_CHAT);
	case R_RESPONSES:
		return handle_generate(s, ex, IG_SIM_RESPONSES);
	case R_EMBEDDINGS:
		return handle_generate(s, ex, IG_SIM_EMBEDDINGS);
	case R_MESSAGES:
		return handle_generate(s, ex, IG_SIM_MESSAGES);
	case R_MODELS:
		return handle_models(s, ex);
	case R_HEALTH:
		ig_http_respond(ex, 200, NULL, "", 0, NULL, 0);
		return;
	case R_VERSION:
		return handle_version(s, ex);
	case R_SERVER_LOAD:
		return handle_server_load(s, ex);
	case R_TOKENIZE:
		return handle_tokenize(s, ex);
	case R_DETOKENIZE:
		return handle_detokenize(s, ex);
	case R_METRICS:
		return handle_metrics(s, ex);
	case R_LOAD:
		return handle_load_lora(s, ex);
	case R_UNLOAD:
		return handle_unload_lora(s, ex);
	case R_STATE:
		return handle_state(s, ex);
	}
}

/* One more header on every response head of the exchange (resp_extra,
 * in its arena). */
static void add_extra(struct ig_http_exchange *ex, struct ig_str name, struct ig_str value)
{
	struct ig_http_header *h = ig_arena_alloc(ex->arena, (ex->nresp_extra + 1) * sizeof *h);
	if (!h)
		return;
	if (ex->nresp_extra)
		memcpy(h, ex->resp_extra, ex->nresp_extra * sizeof *h);
	h[ex->nresp_extra] = (struct ig_http_header){name, value};
	ex->resp_extra = h;
	ex->nresp_extra++;
}

/* What uvicorn, vLLM's server, puts on every response (vllm-api.md §1):
 * `date` (RFC 9110 §5.6.7's IMF-fixdate, made once a second per thread)
 * and `server: uvicorn`. */
static void server_headers(struct ig_http_exchange *ex)
{
	static _Thread_local char date[32];
	static _Thread_local time_t date_at = -1;
	time_t now = time(NULL);
	if (now != date_at) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		date_at = now;
	}
	struct ig_str d = ig_arena_strdup(ex->arena, ig_str_from(date));
	if (d.ptr)
		add_extra(ex, IG_STR("date"), d);
	add_extra(ex, IG_STR("server"), IG_STR("uvicorn"));
}

/* --enable-request-id-headers: every answer carries X-Request-Id, the
 * request's own or a new one (vLLM's middleware: uuid4 hex). */
static void request_id_header(struct ig_http_exchange *ex)
{
	const struct ig_http_header *h =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "X-Request-Id");
	char *hex = ig_arena_alloc(ex->arena, 33);
	if (h && h->value.len) {
		add_extra(ex, IG_STR("X-Request-Id"), h->value);
	} else if (hex) {
		ig_rng_hex128(ig_rng_thread(), hex);
		add_extra(ex, IG_STR("X-Request-Id"), (struct ig_str){hex, 32});
	}
}

/* ---- CORS, as vLLM's middleware (Starlette's CORSMiddleware) ---------------------------- */

static bool in_cors_list(const struct ig_sim_cors_list *l, struct ig_str v, bool fold)
{
	if (!l->given)
		return true; /* ["*"] */
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], "*") == 0 ||
		    (fold ? ig_str_ieq_cstr(v, l->v[i]) : ig_str_eq_cstr(v, l->v[i])))
			return true;
	return false;
}

/* The list allows everything: not given, or "*" among it. */
static bool cors_all(const struct ig_sim_cors_list *l)
{
	return in_cors_list(l, IG_STR("*"), false);
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The list joined with ", " in the exchange's arena, or `all` when it
 * allows everything; with `extra`, the sorted union of both (Starlette's
 * allowed headers: the CORS-safelisted ones and the configured ones). */
static struct ig_str cors_join(struct ig_http_exchange *ex, const struct ig_sim_cors_list *l,
			       const char *all, const char *const *extra, size_t nextra)
{
	if (cors_all(l))
		return ig_str_from(all);
	size_t n = nextra + l->n;
	const char **v = malloc((n ? n : 1) * sizeof *v);
	struct ig_buf b = {0};
	struct ig_str r = {"", 0};
	if (!v)
		return r;
	for (size_t i = 0; i < nextra; i++)
		v[i] = extra[i];
	for (size_t i = 0; i < l->n; i++)
		v[nextra + i] = l->v[i];
	if (nextra)
		qsort(v, n, sizeof *v, cmp_cstr);
	for (size_t i = 0; i < n; i++)
		if (!nextra || i == 0 || strcmp(v[i], v[i - 1]) != 0)
			ig_buf_printf(&b, "%s%s", b.len ? ", " : "", v[i]);
	free(v);
	char *out = b.len ? ig_arena_alloc(ex->arena, b.len) : NULL;
	if (out) {
		memcpy(out, b.ptr, b.len);
		r = (struct ig_str){out, b.len};
	}
	ig_buf_free(&b);
	return r;
}

/* A preflight (OPTIONS with Origin and Access-Control-Request-Method):
 * answered here, 200 "OK" or 400 "Disallowed CORS origin, method,
 * headers", as Starlette does. */
static void cors_preflight(struct sim *s, struct ig_http_exchange *ex, struct ig_str origin,
			   struct ig_str method)
{
	const struct ig_sim_config *c = &s->cfg;
	const struct ig_http_header *rh = ig_http_find_header(ex->req.headers, ex->req.num_headers,
							      "Access-Control-Request-Headers");
	bool all_origins = cors_all(&c->allowed_origins);
	char failures[64] = "";
	if (!in_cors_list(&c->allowed_origins, origin, false))
		strcat(failures, ", origin");
	else if (!all_origins || c->allow_credentials)
		add_extra(ex, IG_STR("Access-Control-Allow-Origin"), origin);
	if (all_origins && !c->allow_credentials)
		add_extra(ex, IG_STR("Access-Control-Allow-Origin"), IG_STR("*"));
	else
		add_extra(ex, IG_STR("Vary"), IG_STR("Origin"));
	static const char *const methods[] = {"DELETE", "GET",	"HEAD", "OPTIONS",
					      "PATCH",	"POST", "PUT"};
	bool known = false;
	for (size_t i = 0; i < 7; i++)
		known |= ig_str_eq_cstr(method, methods[i]);
	if (cors_all(&c->allowed_methods) ? !known
					  : !in_cors_list(&c->allowed_methods, method, false))
		strcat(failures, ", method");
	add_extra(ex, IG_STR("Access-Control-Allow-Methods"),
		  cors_join(ex, &c->allowed_methods, "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
			    NULL, 0));
	add_extra(ex, IG_STR("Access-Control-Max-Age"), IG_STR("600"));
	if (cors_all(&c->allowed_headers)) {
		if (rh) /* every header allowed: the asked ones, mirrored */
			add_extra(ex, IG_STR("Access-Control-Allow-Headers"), rh->value);
	} else {
		/* The CORS-safelisted headers are always allowed. */
		static const char *const safe[] = {"Accept", "Accept-Language", "Content-Language",
						   "Content-Type"};
		add_extra(ex, IG_STR("Access-Control-Allow-Headers"),
			  cors_join(ex, &c->allowed_headers, "*", safe, 4));
		for (size_t i = 0, start = 0; rh && i <= rh->value.len; i++) {
			if (i < rh->value.len && rh->value.ptr[i] != ',')
				continue;
			struct ig_str name = {rh->value.ptr + start, i - start};
			while (name.len && (name.ptr[0] == ' ' || name.ptr[0] == '\t'))
				name.ptr++, name.len--;
			while (name.len &&
			       (name.ptr[name.len - 1] == ' ' || name.ptr[name.len - 1] == '\t'))
				name.len--;
			bool ok = in_cors_list(&c->allowed_headers, name, true);
			for (size_t k = 0; k < 4; k++)
				ok |= ig_str_ieq_cstr(name, safe[k]);
			if (!ok) {
				strcat(failures, ", headers");
				break;
			}
			start = i + 1;
		}
	}
	if (c->allow_credentials)
		add_extra(ex, IG_STR("Access-Control-Allow-Credentials"), IG_STR("true"));
	char body[96];
	int n = failures[0] ? snprintf(body, sizeof body, "Disallowed CORS %s", failures + 2)
			    : snprintf(body, sizeof body, "OK");
	ig_http_respond(ex, failures[0] ? 400 : 200, "text/plain; charset=utf-8", body, (size_t)n,
			NULL, 0);
}

/* Any other request with an Origin: the answer allows it to be read. */
static void cors_simple(struct sim *s, struct ig_http_exchange *ex, struct ig_str origin)
{
	const struct ig_sim_config *c = &s->cfg;
	bool all_origins = cors_all(&c->allowed_origins);
	bool cookie = ig_http_find_header(ex->req.headers, ex->req.num_headers, "Cookie") != NULL;
	if (all_origins && !cookie) {
		add_extra(ex, IG_STR("Access-Control-Allow-Origin"), IG_STR("*"));
	} else if (all_origins || in_cors_list(&c->allowed_origins, origin, false)) {
		add_extra(ex, IG_STR("Access-Control-Allow-Origin"), origin);
		add_extra(ex, IG_STR("Vary"), IG_STR("Origin"));
	}
	if (c->allow_credentials)
		add_extra(ex, IG_STR("Access-Control-Allow-Credentials"), IG_STR("true"));
}

/* vLLM's authentication middleware (--api-key): the paths it guards
 * (/v1..., and in newer releases also /v2, /inference and /cohere; never
 * /health, /metrics or the tokenizer's) need "Authorization: Bearer
 * <key>", the scheme's case free in newer releases. Preflights pass. */
static bool authorized(const struct sim *s, struct ig_http_exchange *ex)
{
	const struct ig_sim_config *c = &s->cfg;
	struct ig_str path = ex->req.path;
	if (!c->api_key || !c->api_key[0] || ig_str_eq_cstr(ex->req.method, "OPTIONS"))
		return true;
	bool guarded = ig_str_has_prefix(path, IG_STR("/v1"));
	if (c->version != IG_SIM_V_0_8)
		guarded |= ig_str_has_prefix(path, IG_STR("/v2")) ||
			   ig_str_has_prefix(path, IG_STR("/inference")) ||
			   ig_str_has_prefix(path, IG_STR("/cohere"));
	if (!guarded)
		return true;
	const struct ig_http_header *h =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "Authorization");
	if (!h || h->value.len < 7)
		return false;
	struct ig_str scheme = {h->value.ptr, 6}, token = {h->value.ptr + 7, h->value.len - 7};
	bool scheme_ok = c->version == IG_SIM_V_0_8 ? ig_str_eq_cstr(scheme, "Bearer")
						    : ig_str_ieq_cstr(scheme, "Bearer");
	return scheme_ok && h->value.ptr[6] == ' ' && ig_str_eq_cstr(token, c->api_key);
}

static void handle(struct ig_http_exchange *ex, void *ctx)
{
	struct sim *s = ctx;
	server_headers(ex);
	if (s->cfg.request_id_headers)
		request_id_header(ex);
	const struct ig_http_header *origin =
	    ig_http_find_header(ex->req.headers, ex->req.num_headers, "Origin");
	if (origin) {
		const struct ig_http_header *m = ig_http_find_header(
		    ex->req.headers, ex->req.num_headers, "Access-Control-Request-Method");
		if (m && ig_str_eq_cstr(ex->req.method, "OPTIONS"))
			return cors_preflight(s, ex, origin->value, m->value);
	}
	/* The middleware wraps CORS's: its 401 carries no CORS headers. */
	if (!authorized(s, ex))
		return respond_unauthorized(ex);
	if (origin)
		cors_simple(s, ex, origin->value);
	/* vLLM mounts the metrics app with the pattern ^/metrics(?P<path>.*)$
	 * (so that /metrics is not redirected): every path that starts so. */
	bool metrics_sub = ig_str_has_prefix(ex->req.path, IG_STR("/metrics"));
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!ig_str_eq_cstr(ex->req.path, routes[i].path) &&
		    !(metrics_sub && routes[i].id == R_METRICS))
			continue;
		/* vLLM mounts the LoRA admin routes only when its environment
		 * allows runtime updates (vllm-api.md §6). */
		if ((routes[i].id == R_LOAD || routes[i].id == R_UNLOAD) && !s->cfg.runtime_lora)
			continue;
		/* FastAPI's APIRoute, unlike Starlette's Route, does not add HEAD
		 * to a GET route: HEAD is a 405 there. The metrics app sits under
		 * a Mount, which matches every method, and prometheus_client's
		 * ASGI app answers whatever it is asked. */
		if (routes[i].id != R_METRICS && !method_allowed(routes[i].methods, ex->req.method))
			return respond_detail(ex, 405, "Method Not Allowed", routes[i].methods);
		return dispatch(s, ex, routes[i].id);
	}
	respond_detail(ex, 404, "Not Found", NULL);
}

/* A request the HTTP server refuses before the simulator sees it. vLLM
 * (uvicorn, Starlette) reads a body of any size; the simulator holds one
 * whole and so sets a ceiling (the server's max_body_bytes), and says so
 * the way vLLM answers an HTTPException: FastAPI's {"detail": ...} in 0.8
 * (as its 415), the error envelope typed with the status's phrase in the
 * latest release (http_exception_handler: HTTPStatus(code).phrase, whose
 * 413 is "Request Entity Too Large" on the Python 3.12 of vLLM's images);
 * Anthropic's body on /v1/messages. Other refusals (a malformed head, a
 * timeout) keep the server's own body: uvicorn answers those in plain
 * text, not as vLLM. */
static int refusal_body(struct ig_http_exchange *ex, int status, const char *reason,
			struct ig_buf *out, void *ctx)
{
	struct sim *s = ctx;
	char msg[160];
	(void)reason;
	if (status != 413)
		return -1;
	server_headers(ex);
	if (s->cfg.request_id_headers)
		request_id_header(ex);
	snprintf(msg, sizeof msg, "Request body too large: this server reads at most %zu bytes.",
		 s->max_body_bytes);
	if (ig_str_eq_cstr(ex->req.path, "/v1/messages"))
		return ig_sim_render_anthropic_error(out, status, msg);
	if (s->cfg.version != IG_SIM_V_0_8)
		return ig_sim_render_error(out, s->cfg.version, status, "Request Entity Too Large",
					   NULL, msg);
	int rc = ig_buf_append_cstr(out, "{\"detail\":");
	rc |= ig_json_write_string(out, msg, strlen(msg));
	return rc | ig_buf_append_cstr(out, "}");
}

/* ---- process ---------------------------------------------------------------------------- */

/* The signal handler needs the loop; this is the one global. */
static struct ig_loop *signal_loop;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_loop)
		ig_loop_stop(signal_loop);
}

static void install_signals(struct ig_loop *loop)
{
	struct sigaction sa = {0};
	signal_loop = loop;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int bound_port(int fd, int fallback)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return fallback;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fallback;
}

static int serve(struct sim *s)
{
	struct ig_http_server_config hc;
	int fd = ig_listen_tcp(s->cfg.host, s->cfg.port, false, 1024);
	if (fd < 0) {
		ig_err("sim: cannot listen on %s:%d: %s", s->cfg.host, s->cfg.port, strerror(-fd));
		return 1;
	}
	ig_http_server_config_defaults(&hc);
	hc.refusal_body = refusal_body;
	s->max_body_bytes = hc.max_body_bytes;
	s->server = ig_http_server_new(&s->loop, fd, &hc, handle, s);
	if (!s->server) {
		close(fd);
		ig_err("sim: cannot start the HTTP server");
		return 1;
	}
	install_signals(&s->loop);
	ig_info("sim: serving %s on %s:%d", s->cfg.model, s->cfg.host, bound_port(fd, s->cfg.port));
	if (s->cfg.profile)
		ig_info("sim: profile %s (ttft %gms + %gus/token, itl %gms + %gus/seq, "
			"%ld blocks)",
			s->cfg.profile, s->cfg.ttft_ms, s->cfg.prefill_us_per_token, s->cfg.itl_ms,
			s->cfg.decode_us_per_seq, s->cfg.num_gpu_blocks);
	int rc = ig_loop_run(&s->loop);
	signal_loop = NULL;
	/* Frees every in-flight exchange through on_abort, which the engine
	 * handles like a client going away. */
	ig_http_server_free(s->server);
	s->server = NULL;
	return rc < 0 ? 1 : 0;
}

/* A boolean of vLLM's environment: "1" or "true", any case, blanks
 * around allowed. */
static bool env_true(const char *name)
{
	const char *v = getenv(name);
	if (!v)
		return false;
	struct ig_str t = ig_str_trim(ig_str_from(v));
	return ig_str_eq_cstr(t, "1") || ig_str_ieq_cstr(t, "true");
}

int ig_sim_main(int argc, char **argv)
{
	struct sim s;
	char err[512];
	int rc;
	memset(&s, 0, sizeof s);
	ig_sim_config_init(&s.cfg);
	rc = ig_sim_parse_args(&s.cfg, argc, argv, err, sizeof err);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "infergate sim: %s\n", err);
		ig_sim_config_free(&s.cfg);
		return rc < 0 ? 2 : 0;
	}
	s.cfg.runtime_lora = env_true("VLLM_ALLOW_RUNTIME_LORA_UPDATING");
	if (s.cfg.runtime_lora)
		ig_warn("sim: VLLM_ALLOW_RUNTIME_LORA_UPDATING is set: /v1/load_lora_adapter and "
			"/v1/unload_lora_adapter are served");
	if (s.cfg.has_seed)
		ig_rng_seed(&s.rng, s.cfg.seed);
	else
		ig_rng_seed(&s.rng, ig_rng_next(ig_rng_thread()));
	if (ig_loop_init(&s.loop) < 0) {
		ig_err("sim: cannot create the event loop");
		ig_sim_config_free(&s.cfg);
		return 1;
	}
	if (ig_sim_engine_init(&s) < 0) {
		ig_err("sim: out of memory for %ld KV blocks", s.cfg.num_gpu_blocks);
		ig_loop_free(&s.loop);
		ig_sim_config_free(&s.cfg);
		return 1;
	}
	/* vLLM starts with one all-empty LoRA series. */
	ig_sim_lora_note(&s.stats, "", "", ig_wall_seconds());
	ig_sim_lora_update(&s);
	rc = serve(&s);
	ig_sim_vocab_free(s.vocab);
	ig_sim_engine_free(&s);
	ig_loop_free(&s.loop);
	ig_sim_config_free(&s.cfg);
	return rc;
}
