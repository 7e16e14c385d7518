/* What the simulator puts on the wire: vLLM's response and error bodies,
 * its SSE chunks, and its Prometheus exposition, key for key and in the
 * order vLLM writes them (vllm-api.md §1-§5), so that clients and routers
 * that depend on the details see what a real server would send. The
 * Responses API's objects and events follow vLLM's serving code (the
 * OpenAI SDK's models, in their field order); Anthropic's Messages follow
 * Anthropic's API reference (see docs/SIMULATOR.md for where vLLM's own
 * rendering differs). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/canon.h"
#include "json/json.h"
#include "sim/sim.h"

/* ---- responses ------------------------------------------------------------ */

static int put_head(struct ig_buf *b, const struct ig_sim_resp *r, const char *object)
{
	int rc = ig_buf_append_cstr(b, "{\"id\":");
	rc |= ig_json_write_string(b, r->id.ptr, r->id.len);
	rc |= ig_buf_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object,
			    (long long)r->created);
	rc |= ig_json_write_string(b, r->model.ptr, r->model.len);
	return rc ? -1 : 0;
}

static int put_finish(struct ig_buf *b, const char *finish)
{
	if (!finish)
		return ig_buf_append_cstr(b, "null");
	return ig_buf_printf(b, "\"%s\"", finish);
}

/* ---- logprobs ---- */

/* prefix, then v as Python writes a float into JSON. */
static int put_py(struct ig_buf *b, const char *prefix, double v)
{
	char num[40];
	ig_sim_py_float(num, sizeof num, v);
	return ig_buf_printf(b, "%s%s", prefix, num);
}

/* Token pos's logprob at rank k of its alternatives (0: the token
 * sampled, the likeliest): made from the seed and the position, falling
 * with the rank, and below 0 (-0.001 at most: one value in 2,000 was
 * -0.0, a token of probability 1 beside alternatives that had some). */
static double lp_value(uint64_t seed, long pos, unsigned k)
{
	uint64_t h = (seed ^ ((uint64_t)pos + 1) * 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 31;
	return -(double)(1 + h % 2000) / 1000.0 - 0.75 * k -
	       (k ? (double)((h >> 20) % 500) / 1000.0 : 0);
}

/* The word at rank k for a token whose sampled word is w: distinct for
 * each k below IG_SIM_WORDS (7 is prime to 64). */
static unsigned lp_alt(unsigned w, unsigned k)
{
	return (w + 7 * k) % IG_SIM_WORDS;
}

static int put_bytes(struct ig_buf *b, const char *s)
{
	int rc = ig_buf_append_cstr(b, "[");
	for (size_t i = 0; s[i]; i++)
		rc |= ig_buf_printf(b, i ? ",%u" : "%u", (unsigned char)s[i]);
	return rc | ig_buf_append_cstr(b, "]");
}

/* ,"prompt_logprobs": with its value (null when none was asked for). */
static int put_prompt_logprobs(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(b, ",\"prompt_logprobs\":");
	if (!r->prompt_lp.len)
		return rc | ig_buf_append_cstr(b, "null");
	return rc | ig_buf_append(b, r->prompt_lp.ptr, r->prompt_lp.len);
}

/* vLLM's prompt_logprobs value: per prompt token (the first null, as
 * nothing comes before it) a map from token ids to {logprob, rank,
 * decoded_token}: the prompt's own token, with its rank, and the `top`
 * most likely ones, ranks 1 to top (the prompt's token among them when
 * its rank is that good). The values are drawn from the tokens, so the
 * same prompt gets the same figures; logprobs fall with the rank. */
int ig_sim_render_prompt_logprobs(struct ig_buf *b, const uint64_t *ids, size_t n,
				  const struct ig_buf *texts, unsigned top)
{
	int rc = ig_buf_append_cstr(b, "[");
	uint64_t prev = 0x9e3779b97f4a7c15ULL;
	size_t at = 0;
	struct ig_str own_text;
	for (size_t i = 0; i < n && ig_sim_text_next(texts, &at, &own_text); i++) {
		uint64_t h = (ids[i] + 1) * 0xff51afd7ed558ccdULL ^ prev;
		prev = h;
		if (i == 0) {
			rc |= ig_buf_append_cstr(b, "null");
			continue;
		}
		unsigned rank = 1 + (unsigned)((h >> 20) % 40); /* the prompt token's */
		double jitter = (double)(h % 1000) / 4000.0;
		rc |= ig_buf_append_cstr(b, ",{");
		/* The prompt's token first, as vLLM lists it, then the top. */
		for (unsigned k = 0; k <= top; k++) {
			if (k == rank)
				continue;
			unsigned r = k ? k : rank;
			uint64_t own = ig_sim_vocab_id(ids[i]), id = own;
			struct ig_str text = own_text;
			if (k) {
				id = (h + (uint64_t)k * 7919u) % IG_SIM_VOCAB;
				if (id == own)
					id = (id + 1) % IG_SIM_VOCAB;
				text = ig_str_from(ig_sim_word(id));
			}
			rc |= ig_buf_printf(b, "%s\"%llu\":", k ? "," : "", (unsigned long long)id);
			rc |= put_py(b, "{\"logprob\":", -0.25 * r - jitter);
			rc |= ig_buf_printf(b, ",\"rank\":%u,\"decoded_token\":", r);
			rc |= ig_json_write_string(b, text.ptr, text.len);
			rc |= ig_buf_append_cstr(b, "}");
		}
		rc |= ig_buf_append_cstr(b, "}");
	}
	return rc | ig_buf_append_cstr(b, "]");
}

/* "token", "logprob" and "bytes" of one chat logprob entry. */
static int put_lp_entry(struct ig_buf *b, const char *w, double lp)
{
	int rc = ig_buf_append_cstr(b, "\"token\":");
	rc |= ig_json_write_string(b, w, strlen(w));
	rc |= put_py(b, ",\"logprob\":", lp);
	rc |= ig_buf_append_cstr(b, ",\"bytes\":");
	return rc | put_bytes(b, w);
}

/* The choice's "logprobs" value: null without them; completions'
 * {text_offset, token_logprobs, tokens, top_logprobs} (each token's
 * alternatives a map of max(top, 1) words, the sampled one among them);
 * chat's {content: [{token, logprob, bytes, top_logprobs: [top of them]}]}. */
static int put_logprobs(struct ig_buf *b, const struct ig_sim_resp *r)
{
	if (!r->logprobs)
		return ig_buf_append_cstr(b, ",\"logprobs\":null");
	int rc = 0;
	if (r->kind == IG_SIM_COMPLETION) {
		/* With echo the prompt's tokens come first, as vLLM lists them
		 * (the first without a logprob: nothing comes before it). */
		struct ig_str *ps = NULL;
		size_t np = r->lp_prompt.len ? ig_sim_count_tokens(r->lp_prompt) : 0;
		if (np && !(ps = calloc(np, sizeof *ps)))
			return -1;
		np = np ? ig_sim_token_spans(r->lp_prompt, ps, np) : 0;
		uint64_t pseed = r->lp_seed ^ 0x70726f6d7074ULL; /* the prompt's values */
		size_t off = 0, n_all = np + r->lp_n;
		rc |= ig_buf_append_cstr(b, ",\"logprobs\":{\"text_offset\":[");
		for (size_t i = 0; i < np; i++) {
			rc |= ig_buf_printf(b, i ? ",%zu" : "%zu", off);
			off += ps[i].len;
		}
		off = r->lp_off0;
		for (size_t i = 0; i < r->lp_n; i++) {
			rc |= ig_buf_printf(b, i + np ? ",%zu" : "%zu", off);
			off += strlen(ig_sim_word(r->lp_words[i]));
		}
		rc |= ig_buf_append_cstr(b, "],\"token_logprobs\":[");
		for (size_t i = 0; i < np; i++)
			rc |= i ? put_py(b, ",", lp_value(pseed, (long)i, 0))
				: ig_buf_append_cstr(b, "null");
		for (size_t i = 0; i < r->lp_n; i++)
			rc |= put_py(b, i + np ? "," : "",
				     lp_value(r->lp_seed, r->lp_pos0 + (long)i, 0));
		rc |= ig_buf_append_cstr(b, "],\"tokens\":[");
		for (size_t i = 0; i < n_all; i++) {
			struct ig_str t =
			    i < np ? ps[i] : ig_str_from(ig_sim_word(r->lp_words[i - np]));
			rc |= ig_buf_append_cstr(b, i ? "," : "");
			rc |= ig_json_write_string(b, t.ptr, t.len);
		}
		rc |= ig_buf_append_cstr(b, "],\"top_logprobs\":[");
		unsigned n = r->lp_top > 1 ? r->lp_top : 1;
		for (size_t i = 0; i < np; i++) {
			if (i == 0) {
				rc |= ig_buf_append_cstr(b, "null");
				continue;
			}
			/* The prompt's token, then other words (never the same key twice). */
			rc |= ig_buf_append_cstr(b, ",{");
			rc |= ig_json_write_string(b, ps[i].ptr, ps[i].len);
			rc |= put_py(b, ":", lp_value(pseed, (long)i, 0));
			unsigned base = (unsigned)(ps[i].len + (unsigned char)ps[i].ptr[0]);
			for (unsigned k = 1, put = 1; put < n && k < IG_SIM_WORDS; k++) {
				const char *w = ig_sim_word(lp_alt(base, k));
				if (strlen(w) == ps[i].len && memcmp(w, ps[i].ptr, ps[i].len) == 0)
					continue;
				rc |= ig_buf_append_cstr(b, ",");
				rc |= ig_json_write_string(b, w, strlen(w));
				rc |= put_py(b, ":", lp_value(pseed, (long)i, put++));
			}
			rc |= ig_buf_append_cstr(b, "}");
		}
		free(ps);
		for (size_t i = 0; i < r->lp_n; i++) {
			rc |= ig_buf_append_cstr(b, i + np ? ",{" : "{");
			for (unsigned k = 0; k < n; k++) {
				const char *w = ig_sim_word(lp_alt(r->lp_words[i], k));
				rc |= ig_buf_append_cstr(b, k ? "," : "");
				rc |= ig_json_write_string(b, w, strlen(w));
				rc |= put_py(b, ":", lp_value(r->lp_seed, r->lp_pos0 + (long)i, k));
			}
			rc |= ig_buf_append_cstr(b, "}");
		}
		return rc | ig_buf_append_cstr(b, "]}");
	}
	rc |= ig_buf_append_cstr(b, ",\"logprobs\":{\"content\":[");
	for (size_t i = 0; i < r->lp_n; i++) {
		long pos = r->lp_pos0 + (long)i;
		rc |= ig_buf_append_cstr(b, i ? ",{" : "{");
		rc |= put_lp_entry(b, ig_sim_word(r->lp_words[i]), lp_value(r->lp_seed, pos, 0));
		/* The likeliest tokens, the sampled one first. */
		rc |= ig_buf_append_cstr(b, ",\"top_logprobs\":[");
		for (unsigned k = 0; k < r->lp_top; k++) {
			rc |= ig_buf_append_cstr(b, k ? ",{" : "{");
			rc |= put_lp_entry(b, ig_sim_word(lp_alt(r->lp_words[i], k)),
					   lp_value(r->lp_seed, pos, k));
			rc |= ig_buf_append_cstr(b, "}");
		}
		rc |= ig_buf_append_cstr(b, "]}");
	}
	return rc | ig_buf_append_cstr(b, "]}");
}

/* stop_reason: the stop string that ended the answer, else the stop
 * token id (an integer, as vLLM writes it), else null. */
static int put_stop_reason(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(b, ",\"stop_reason\":");
	if (r->finish && r->stop_reason.ptr)
		return rc | ig_json_write_string(b, r->stop_reason.ptr, r->stop_reason.len);
	if (r->finish && r->stop_by_token)
		return rc | ig_buf_printf(b, "%lld", (long long)r->stop_token);
	return rc | ig_buf_append_cstr(b, "null");
}

/* details: the body sent whole, which lists prompt_tokens_details even
 * when null; chunks leave out what is null. */
static int put_usage(struct ig_buf *b, const struct ig_sim_resp *r, bool details)
{
	int rc = ig_buf_printf(
	    b, "{\"prompt_tokens\":%ld,\"total_tokens\":%ld,\"completion_tokens\":%ld",
	    r->prompt_tokens, r->prompt_tokens + r->completion_tokens, r->completion_tokens);
	if (r->cached_details && r->cached_tokens > 0)
		rc |= ig_buf_printf(b, ",\"prompt_tokens_details\":{\"cached_tokens\":%ld}",
				    r->cached_tokens);
	else if (details)
		rc |= ig_buf_append_cstr(b, ",\"prompt_tokens_details\":null");
	return rc | ig_buf_append_cstr(b, "}");
}

/* A chunk's usage with continuous_usage_stats: as vLLM's streams, the
 * choice's own prompt and tokens so far (previous_num_tokens[i]), never
 * the cache details; completions chunks are dumped with exclude_unset
 * false, so theirs lists prompt_tokens_details as null. */
static int put_chunk_usage(struct ig_buf *b, const struct ig_sim_resp *r)
{
	bool cmpl = r->kind == IG_SIM_COMPLETION;
	if (!r->continuous_usage)
		return ig_buf_append_cstr(b, cmpl ? ",\"usage\":null" : "");
	return ig_buf_printf(b,
			     ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld,"
			     "\"completion_tokens\":%ld%s}",
			     r->own_prompt_tokens, r->own_prompt_tokens + r->own_completion_tokens,
			     r->own_completion_tokens,
			     cmpl ? ",\"prompt_tokens_details\":null" : "");
}

static const char *object_name(const struct ig_sim_resp *r, bool chunk)
{
	if (r->kind == IG_SIM_COMPLETION)
		return "text_completion";
	return chunk ? "chat.completion.chunk" : "chat.completion";
}

/* A chat answer's role: the assistant's, unless the request continued
 * another's turn (add_generation_prompt false). */
static int put_role(struct ig_buf *b, const struct ig_sim_resp *r)
{
	if (!r->role.len)
		return ig_buf_append_cstr(b, "\"assistant\"");
	return ig_json_write_string(b, r->role.ptr, r->role.len);
}

/* vLLM's ChatMessage: 0.8's role, content, reasoning_content and
 * tool_calls; v0.10+ puts the OpenAI message's refusal, annotations,
 * audio and function_call (null) before tool_calls, and the reasoning
 * after it: reasoning_content up to v0.11.0, then `reasoning` (v0.11.1
 * wrote both, vllm-project/vllm#27752; #33402 removed the old name), the
 * latest release's alone. No reasoning parser finds reasoning in the
 * simulator's words, so it is null. */
static int put_message(struct ig_buf *out, const struct ig_sim_resp *c)
{
	int rc = ig_buf_append_cstr(out, "\"message\":{\"role\":");
	if (c->tool_mode != IG_SIM_TOOL_NONE) {
		/* The text is the call's arguments. vLLM's tool parsers leave
		 * content null; a named or required call has content "". */
		rc |= ig_buf_append_cstr(out, "\"assistant\",\"content\":");
		rc |= ig_buf_append_cstr(out, c->tool_mode == IG_SIM_TOOL_AUTO ? "null" : "\"\"");
	} else {
		rc |= put_role(out, c);
		rc |= ig_buf_append_cstr(out, ",\"content\":");
		rc |= ig_json_write_string(out, c->text.ptr, c->text.len);
	}
	if (c->newer_keys)
		rc |= ig_buf_append_cstr(out, ",\"refusal\":null,\"annotations\":null,"
					      "\"audio\":null,\"function_call\":null");
	else
		rc |= ig_buf_append_cstr(out, ",\"reasoning_content\":null");
	rc |= ig_buf_append_cstr(out, ",\"tool_calls\":[");
	if (c->tool_mode != IG_SIM_TOOL_NONE) {
		rc |= ig_buf_append_cstr(out, "{\"id\":");
		rc |= ig_json_write_string(out, c->tool_id.ptr, c->tool_id.len);
		rc |= ig_buf_append_cstr(out, ",\"type\":\"function\",\"function\":{\"name\":");
		rc |= ig_json_write_string(out, c->tool_name.ptr, c->tool_name.len);
		rc |= ig_buf_append_cstr(out, ",\"arguments\":");
		rc |= ig_json_write_string(out, c->text.ptr, c->text.len);
		rc |= ig_buf_append_cstr(out, "}}");
	}
	rc |= ig_buf_append_cstr(out, "]");
	if (c->newer_keys)
		rc |= ig_buf_append_cstr(out, ",\"reasoning\":null");
	return rc | ig_buf_append_cstr(out, "}");
}

/* A list of token ids as the answer writes it: the JSON text, or null. */
static int put_ids(struct ig_buf *out, const char *key, struct ig_str ids)
{
	int rc = ig_buf_printf(out, ",\"%s\":", key);
	if (!ids.len)
		return rc | ig_buf_append_cstr(out, "null");
	return rc | ig_buf_append(out, ids.ptr, ids.len);
}

/* One choice object of a body sent whole. */
static int put_choice(struct ig_buf *out, const struct ig_sim_resp *c)
{
	int rc = ig_buf_printf(out, "{\"index\":%d,", c->index);
	if (c->kind == IG_SIM_COMPLETION) {
		rc |= ig_buf_append_cstr(out, "\"text\":");
		rc |= ig_json_write_string(out, c->text.ptr, c->text.len);
	} else {
		rc |= put_message(out, c);
	}
	rc |= put_logprobs(out, c);
	rc |= ig_buf_append_cstr(out, ",\"finish_reason\":");
	rc |= put_finish(out, c->finish);
	rc |= put_stop_reason(out, c);
	if (c->newer_keys)
		rc |= put_ids(out, "token_ids", c->token_ids);
	if (c->kind == IG_SIM_COMPLETION)
		rc |= put_prompt_logprobs(out, c);
	if (c->kind == IG_SIM_COMPLETION && c->newer_keys)
		rc |= put_ids(out, "prompt_token_ids", c->prompt_ids);
	return rc | ig_buf_append_cstr(out, "}");
}

/* The body of a completion or chat completion: every choice (n of them),
 * then the usage of them all; v0.10+ adds service_tier and
 * system_fingerprint before the usage, kv_transfer_params at the end and,
 * on chat, prompt_token_ids after prompt_logprobs. */
static int render_openai_full(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = put_head(out, r, object_name(r, false));
	rc |= ig_buf_append_cstr(out, ",\"choices\":[");
	if (r->nchoices > 1)
		for (size_t i = 0; i < r->nchoices; i++) {
			rc |= ig_buf_append_cstr(out, i ? "," : "");
			rc |= put_choice(out, &r->choices[i]);
		}
	else
		rc |= put_choice(out, r);
	rc |= ig_buf_append_cstr(out, "]");
	if (r->newer_keys)
		rc |= ig_buf_append_cstr(out, ",\"service_tier\":null,\"system_fingerprint\":null");
	rc |= ig_buf_append_cstr(out, ",\"usage\":");
	rc |= put_usage(out, r, true);
	if (r->kind != IG_SIM_COMPLETION)
		rc |= put_prompt_logprobs(out, r);
	if (r->kind != IG_SIM_COMPLETION && r->newer_keys)
		rc |= put_ids(out, "prompt_token_ids", r->prompt_ids);
	if (r->newer_keys)
		rc |= ig_buf_append_cstr(out, ",\"kv_transfer_params\":null");
	rc |= ig_buf_append_cstr(out, "}");
	return rc ? -1 : 0;
}

int ig_sim_render_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	if (r->kind == IG_SIM_COMPLETION) {
		rc |= ig_buf_printf(out, ",\"choices\":[{\"index\":%d,\"text\":", r->index);
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= put_logprobs(out, r);
		rc |= ig_buf_append_cstr(out, ",\"finish_reason\":");
		rc |= put_finish(out, r->finish);
		rc |= put_stop_reason(out, r);
		if (r->newer_keys) { /* dumped with exclude_unset false */
			rc |= put_ids(out, "prompt_token_ids", r->prompt_ids);
			rc |= put_ids(out, "token_ids", r->token_ids);
		}
		rc |= ig_buf_append_cstr(out, "}]");
		rc |= put_chunk_usage(out, r);
		rc |= ig_buf_append_cstr(out, "}\n\n");
		return rc ? -1 : 0;
	}
	/* Chat chunks are dumped with exclude_unset: stop_reason appears only
	 * on the chunk that finishes the choice. */
	rc |= ig_buf_printf(out, ",\"choices\":[{\"index\":%d,\"delta\":", r->index);
	if (r->tool_mode != IG_SIM_TOOL_NONE) {
		/* A call's first chunk names it; the rest carry its arguments. */
		rc |= ig_buf_append_cstr(out, "{\"tool_calls\":[{");
		if (r->first) {
			rc |= ig_buf_append_cstr(out, "\"id\":");
			rc |= ig_json_write_string(out, r->tool_id.ptr, r->tool_id.len);
			rc |= ig_buf_append_cstr(out, ",\"type\":\"function\",");
		}
		rc |= ig_buf_append_cstr(out, "\"index\":0,\"function\":{");
		if (r->first) {
			rc |= ig_buf_append_cstr(out, "\"name\":");
			rc |= ig_json_write_string(out, r->tool_name.ptr, r->tool_name.len);
			rc |= ig_buf_append_cstr(out, ",");
		}
		rc |= ig_buf_append_cstr(out, "\"arguments\":");
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(out, "}}]}");
	} else {
		rc |= ig_buf_append_cstr(out, "{\"content\":");
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(out, "}");
	}
	rc |= put_logprobs(out, r);
	rc |= ig_buf_append_cstr(out, ",\"finish_reason\":");
	rc |= put_finish(out, r->finish);
	if (r->finish)
		rc |= put_stop_reason(out, r);
	/* v0.10+ sets token_ids on every content chunk (null unless
	 * return_token_ids), so exclude_unset keeps it. */
	if (r->newer_keys)
		rc |= put_ids(out, "token_ids", r->token_ids);
	rc |= ig_buf_append_cstr(out, "}]");
	rc |= put_chunk_usage(out, r);
	rc |= ig_buf_append_cstr(out, "}\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_role_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	rc |= ig_buf_printf(out, ",\"choices\":[{\"index\":%d,\"delta\":{\"role\":", r->index);
	rc |= put_role(out, r);
	rc |= ig_buf_append_cstr(out,
				 ",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]");
	if (r->continuous_usage) { /* before any token */
		struct ig_sim_resp none = *r;
		none.own_completion_tokens = 0;
		rc |= put_chunk_usage(out, &none);
	}
	/* v0.10+ sets the prompt's ids on the first chunk (null unless
	 * return_token_ids). */
	if (r->newer_keys)
		rc |= put_ids(out, "prompt_token_ids", r->prompt_ids);
	rc |= ig_buf_append_cstr(out, "}\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_usage_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	rc |= ig_buf_append_cstr(out, ",\"choices\":[],\"usage\":");
	rc |= put_usage(out, r, false);
	rc |= ig_buf_append_cstr(out, "}\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_error(struct ig_buf *out, enum ig_sim_version v, int code, const char *type,
			const char *param, const char *msg)
{
	int rc;
	if (v == IG_SIM_V_0_8) {
		rc = ig_buf_append_cstr(out, "{\"object\":\"error\",\"message\":");
		rc |= ig_json_write_string(out, msg, strlen(msg));
		rc |=
		    ig_buf_printf(out, ",\"type\":\"%s\",\"param\":null,\"code\":%d}", type, code);
		return rc ? -1 : 0;
	}
	rc = ig_buf_append_cstr(out, "{\"error\":{\"message\":");
	rc |= ig_json_write_string(out, msg, strlen(msg));
	rc |= ig_buf_printf(out, ",\"type\":\"%s\",\"param\":", type);
	if (param)
		rc |= ig_json_write_string(out, param, strlen(param));
	else
		rc |= ig_buf_append_cstr(out, "null");
	rc |= ig_buf_printf(out, ",\"code\":%d}}", code);
	return rc ? -1 : 0;
}

/* ---- SSE events with names ------------------------------------------------------------- */

/* The Responses API and Anthropic's Messages name every event:
 * "event: NAME\ndata: {json}\n\n". */
static int event_begin(struct ig_buf *b, const char *name)
{
	return ig_buf_printf(b, "event: %s\ndata: ", name);
}

/* ---- the Responses API ------------------------------------------------------------------ */

static int put_float(struct ig_buf *b, double v)
{
	char num[64];
	ig_sim_fmt_float(num, sizeof num, v);
	return ig_buf_append_cstr(b, num);
}

static int put_echo(struct ig_buf *b, struct ig_str v, const char *dflt)
{
	return v.len ? ig_buf_append_str(b, v) : ig_buf_append_cstr(b, dflt);
}

static struct ig_str answer_text(const struct ig_sim_resp *r)
{
	return r->full_text.ptr ? r->full_text : r->text;
}

/* A ResponseOutputText part; logprobs as vLLM writes them (null in final
 * objects, [] in the part.added event). */
static int put_output_text(struct ig_buf *b, struct ig_str text, const char *logprobs)
{
	int rc = ig_buf_append_cstr(b, "{\"annotations\":[],\"text\":");
	rc |= ig_json_write_string(b, text.ptr, text.len);
	rc |= ig_buf_printf(b, ",\"type\":\"output_text\",\"logprobs\":%s}", logprobs);
	return rc;
}

/* The assistant's output message; text NULL: no content yet. */
static int put_message_item(struct ig_buf *b, const struct ig_sim_resp *r,
			    const struct ig_str *text)
{
	int rc = ig_buf_append_cstr(b, "{\"id\":");
	rc |= ig_json_write_string(b, r->item_id.ptr, r->item_id.len);
	rc |= ig_buf_append_cstr(b, ",\"content\":[");
	if (text)
		rc |= put_output_text(b, *text, "null");
	rc |= ig_buf_printf(b, "],\"role\":\"assistant\",\"status\":\"%s\",\"type\":\"message\"}",
			    text ? "completed" : "in_progress");
	return rc;
}

/* A function_call output item (a tool call of the Responses API), in the
 * OpenAI SDK's field order; args NULL: still being written. */
static int put_function_call_item(struct ig_buf *b, const struct ig_sim_resp *r,
				  const struct ig_str *args)
{
	int rc = ig_buf_append_cstr(b, "{\"arguments\":");
	rc |= args ? ig_json_write_string(b, args->ptr, args->len) : ig_buf_append_cstr(b, "\"\"");
	rc |= ig_buf_append_cstr(b, ",\"call_id\":");
	rc |= ig_json_write_string(b, r->tool_id.ptr, r->tool_id.len);
	rc |= ig_buf_append_cstr(b, ",\"name\":");
	rc |= ig_json_write_string(b, r->tool_name.ptr, r->tool_name.len);
	rc |= ig_buf_append_cstr(b, ",\"type\":\"function_call\",\"id\":");
	rc |= ig_json_write_string(b, r->item_id.ptr, r->item_id.len);
	rc |= ig_buf_printf(b, ",\"status\":\"%s\"}", args ? "completed" : "in_progress");
	return rc;
}

/* The answer's one output item: the message, or the tool call. */
static int put_output_item(struct ig_buf *b, const struct ig_sim_resp *r, const struct ig_str *text)
{
	return r->tool_mode != IG_SIM_TOOL_NONE ? put_function_call_item(b, r, text)
						: put_message_item(b, r, text);
}

static int put_responses_usage(struct ig_buf *b, const struct ig_sim_resp *r)
{
	return ig_buf_printf(
	    b,
	    "{\"input_tokens\":%ld,\"input_tokens_details\":{\"cached_tokens\":%ld},"
	    "\"output_tokens\":%ld,\"output_tokens_details\":{\"reasoning_tokens\":0,"
	    "\"tool_output_tokens\":0},\"total_tokens\":%ld}",
	    r->prompt_tokens, r->cached_tokens, r->completion_tokens,
	    r->prompt_tokens + r->completion_tokens);
}

/* vLLM's ResponsesResponse, in its field order. Before the answer is done
 * it is "in_progress" with no output and no usage; when generation ended
 * on the token limit it is "incomplete" (vLLM still sends it in
 * response.completed). */
static int put_response_object(struct ig_buf *b, const struct ig_sim_resp *r, bool done)
{
	static const struct ig_sim_echo none;
	const struct ig_sim_echo *x = r->echo ? r->echo : &none;
	bool incomplete = done && r->finish && strcmp(r->finish, "length") == 0;
	struct ig_str text = answer_text(r);
	int rc = ig_buf_append_cstr(b, "{\"id\":");
	rc |= ig_json_write_string(b, r->id.ptr, r->id.len);
	rc |= ig_buf_printf(b, ",\"created_at\":%lld,\"incomplete_details\":%s,\"instructions\":",
			    (long long)r->created,
			    incomplete ? "{\"reason\":\"max_output_tokens\"}" : "null");
	rc |= put_echo(b, x->instructions, "null");
	rc |= ig_buf_append_cstr(b, ",\"metadata\":");
	rc |= put_echo(b, x->metadata, "null");
	rc |= ig_buf_append_cstr(b, ",\"model\":");
	rc |= ig_json_write_string(b, r->model.ptr, r->model.len);
	rc |= ig_buf_append_cstr(b, ",\"object\":\"response\",\"output\":[");
	if (done)
		rc |= put_output_item(b, r, &text);
	rc |= ig_buf_append_cstr(b, "],\"parallel_tool_calls\":true,\"temperature\":");
	rc |= put_float(b, x->has_temperature ? x->temperature : 1.0);
	rc |= ig_buf_append_cstr(b, ",\"tool_choice\":");
	rc |= put_echo(b, x->tool_choice, "\"auto\"");
	rc |= ig_buf_append_cstr(b, ",\"tools\":");
	rc |= put_echo(b, x->tools, "[]");
	rc |= ig_buf_append_cstr(b, ",\"top_p\":");
	rc |= put_float(b, x->has_top_p ? x->top_p : 1.0);
	rc |=
	    ig_buf_printf(b,
			  ",\"background\":false,\"max_output_tokens\":%ld,\"max_tool_calls\":null,"
			  "\"previous_response_id\":null,\"prompt\":null,\"reasoning\":null,"
			  "\"service_tier\":\"auto\",\"status\":\"%s\",\"text\":null,"
			  "\"top_logprobs\":null,\"truncation\":\"disabled\",\"usage\":",
			  r->max_output_tokens,
			  !done	       ? "in_progress"
			  : incomplete ? "incomplete"
				       : "completed");
	rc |= done ? put_responses_usage(b, r) : ig_buf_append_cstr(b, "null");
	rc |= ig_buf_append_cstr(b, ",\"user\":");
	rc |= put_echo(b, x->user, "null");
	rc |= ig_buf_append_cstr(b, "}");
	return rc;
}

/* A Responses event ends with its sequence number and its type, the
 * field order of the OpenAI SDK's event models. */
static int responses_event_end(struct ig_buf *b, const char *type, long *seq)
{
	return ig_buf_printf(b, "\"sequence_number\":%ld,\"type\":\"%s\"}\n\n", (*seq)++, type);
}

/* response.created / response.in_progress / response.completed. */
static int responses_lifecycle(struct ig_buf *b, const struct ig_sim_resp *r, const char *type,
			       bool done, long *seq)
{
	int rc = event_begin(b, type);
	rc |= ig_buf_append_cstr(b, "{\"response\":");
	rc |= put_response_object(b, r, done);
	rc |= ig_buf_append_cstr(b, ",");
	rc |= responses_event_end(b, type, seq);
	return rc;
}

/* The fields every event about the output text carries first. */
static int text_event_begin(struct ig_buf *b, const char *type)
{
	int rc = event_begin(b, type);
	rc |= ig_buf_append_cstr(b, "{\"content_index\":0,");
	return rc;
}

static int put_item_id(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(b, "\"item_id\":");
	rc |= ig_json_write_string(b, r->item_id.ptr, r->item_id.len);
	return rc;
}

static int responses_open_item(struct ig_buf *b, const struct ig_sim_resp *r, long *seq)
{
	static const struct ig_str empty = {"", 0};
	int rc = event_begin(b, "response.output_item.added");
	rc |= ig_buf_append_cstr(b, "{\"item\":");
	rc |= put_output_item(b, r, NULL);
	rc |= ig_buf_append_cstr(b, ",\"output_index\":0,");
	rc |= responses_event_end(b, "response.output_item.added", seq);
	if (r->tool_mode != IG_SIM_TOOL_NONE) /* a call has no content part */
		return rc;
	rc |= text_event_begin(b, "response.content_part.added");
	rc |= put_item_id(b, r);
	rc |= ig_buf_append_cstr(b, ",\"output_index\":0,\"part\":");
	rc |= put_output_text(b, empty, "[]");
	rc |= ig_buf_append_cstr(b, ",");
	rc |= responses_event_end(b, "response.content_part.added", seq);
	return rc;
}

static int responses_delta(struct ig_buf *b, const struct ig_sim_resp *r, long *seq)
{
	if (r->tool_mode != IG_SIM_TOOL_NONE) {
		int rc = event_begin(b, "response.function_call_arguments.delta");
		rc |= ig_buf_append_cstr(b, "{\"delta\":");
		rc |= ig_json_write_string(b, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(b, ",");
		rc |= put_item_id(b, r);
		rc |= ig_buf_append_cstr(b, ",\"output_index\":0,");
		return rc | responses_event_end(b, "response.function_call_arguments.delta", seq);
	}
	int rc = text_event_begin(b, "response.output_text.delta");
	rc |= ig_buf_append_cstr(b, "\"delta\":");
	rc |= ig_json_write_string(b, r->text.ptr, r->text.len);
	rc |= ig_buf_append_cstr(b, ",");
	rc |= put_item_id(b, r);
	rc |= ig_buf_append_cstr(b, ",\"logprobs\":[],\"output_index\":0,");
	rc |= responses_event_end(b, "response.output_text.delta", seq);
	return rc;
}

/* output_text.done, content_part.done, output_item.done, then
 * response.completed with the whole answer and its usage. */
static int responses_close(struct ig_buf *b, const struct ig_sim_resp *r, long *seq)
{
	struct ig_str text = answer_text(r);
	if (r->tool_mode != IG_SIM_TOOL_NONE) {
		int rc = event_begin(b, "response.function_call_arguments.done");
		rc |= ig_buf_append_cstr(b, "{\"arguments\":");
		rc |= ig_json_write_string(b, text.ptr, text.len);
		rc |= ig_buf_append_cstr(b, ",");
		rc |= put_item_id(b, r);
		rc |= ig_buf_append_cstr(b, ",\"name\":");
		rc |= ig_json_write_string(b, r->tool_name.ptr, r->tool_name.len);
		rc |= ig_buf_append_cstr(b, ",\"output_index\":0,");
		rc |= responses_event_end(b, "response.function_call_arguments.done", seq);
		rc |= event_begin(b, "response.output_item.done");
		rc |= ig_buf_append_cstr(b, "{\"item\":");
		rc |= put_function_call_item(b, r, &text);
		rc |= ig_buf_append_cstr(b, ",\"output_index\":0,");
		rc |= responses_event_end(b, "response.output_item.done", seq);
		return rc | responses_lifecycle(b, r, "response.completed", true, seq);
	}
	int rc = text_event_begin(b, "response.output_text.done");
	rc |= put_item_id(b, r);
	rc |= ig_buf_append_cstr(b, ",\"logprobs\":[],\"output_index\":0,");
	rc |= ig_buf_append_cstr(b, "\"text\":");
	rc |= ig_json_write_string(b, text.ptr, text.len);
	rc |= ig_buf_append_cstr(b, ",");
	rc |= responses_event_end(b, "response.output_text.done", seq);
	rc |= text_event_begin(b, "response.content_part.done");
	rc |= put_item_id(b, r);
	rc |= ig_buf_append_cstr(b, ",\"output_index\":0,\"part\":");
	rc |= put_output_text(b, text, "null");
	rc |= ig_buf_append_cstr(b, ",");
	rc |= responses_event_end(b, "response.content_part.done", seq);
	rc |= event_begin(b, "response.output_item.done");
	rc |= ig_buf_append_cstr(b, "{\"item\":");
	rc |= put_message_item(b, r, &text);
	rc |= ig_buf_append_cstr(b, ",\"output_index\":0,");
	rc |= responses_event_end(b, "response.output_item.done", seq);
	rc |= responses_lifecycle(b, r, "response.completed", true, seq);
	return rc;
}

/* ---- Anthropic's Messages API ----------------------------------------------------------- */

static const char *stop_reason(const struct ig_sim_resp *r)
{
	if (!r->finish)
		return "null";
	if (r->stop_reason.ptr)
		return "\"stop_sequence\"";
	if (strcmp(r->finish, "length") == 0)
		return "\"max_tokens\"";
	return r->tool_mode != IG_SIM_TOOL_NONE ? "\"tool_use\"" : "\"end_turn\"";
}

/* A tool_use block: the call's id and name, and its input, the arguments
 * as a JSON object ({} until they are whole: an answer cut at max_tokens
 * leaves them unfinished). */
static int put_tool_use(struct ig_buf *b, const struct ig_sim_resp *r, const struct ig_str *args)
{
	struct ig_json_value v;
	bool whole =
	    args && ig_json_parse(args->ptr, args->len, &v) == 0 && v.type == IG_JSON_OBJECT;
	int rc = ig_buf_append_cstr(b, "{\"type\":\"tool_use\",\"id\":");
	rc |= ig_json_write_string(b, r->tool_id.ptr, r->tool_id.len);
	rc |= ig_buf_append_cstr(b, ",\"name\":");
	rc |= ig_json_write_string(b, r->tool_name.ptr, r->tool_name.len);
	rc |= ig_buf_append_cstr(b, ",\"input\":");
	rc |= whole ? ig_buf_append(b, args->ptr, args->len) : ig_buf_append_cstr(b, "{}");
	return rc | ig_buf_append_cstr(b, "}");
}

/* stop_sequence: the one that ended the message, else null. */
static int put_stop_sequence(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(b, ",\"stop_sequence\":");
	if (r->finish && r->stop_reason.ptr)
		return rc | ig_json_write_string(b, r->stop_reason.ptr, r->stop_reason.len);
	return rc | ig_buf_append_cstr(b, "null");
}

/* The message object; text NULL: the empty one message_start carries. */
static int put_anthropic_message(struct ig_buf *b, const struct ig_sim_resp *r,
				 const struct ig_str *text)
{
	int rc = ig_buf_append_cstr(b, "{\"id\":");
	rc |= ig_json_write_string(b, r->id.ptr, r->id.len);
	rc |= ig_buf_append_cstr(b, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
	rc |= ig_json_write_string(b, r->model.ptr, r->model.len);
	rc |= ig_buf_append_cstr(b, ",\"content\":[");
	if (text && r->tool_mode != IG_SIM_TOOL_NONE) {
		rc |= put_tool_use(b, r, text);
	} else if (text) {
		rc |= ig_buf_append_cstr(b, "{\"type\":\"text\",\"text\":");
		rc |= ig_json_write_string(b, text->ptr, text->len);
		rc |= ig_buf_append_cstr(b, "}");
	}
	rc |= ig_buf_printf(b, "],\"stop_reason\":%s", text ? stop_reason(r) : "null");
	if (text)
		rc |= put_stop_sequence(b, r);
	else
		rc |= ig_buf_append_cstr(b, ",\"stop_sequence\":null");
	rc |= ig_buf_printf(b, ",\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
			    r->prompt_tokens, text ? r->completion_tokens : 0);
	return rc;
}

/* message_start, content_block_start and ping: what Anthropic sends before
 * the first text delta. */
static int messages_open(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = event_begin(b, "message_start");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"message_start\",\"message\":");
	rc |= put_anthropic_message(b, r, NULL);
	rc |= ig_buf_append_cstr(b, "}\n\n");
	rc |= event_begin(b, "content_block_start");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"content_block_start\",\"index\":0,"
				    "\"content_block\":");
	if (r->tool_mode != IG_SIM_TOOL_NONE)
		rc |= put_tool_use(b, r, NULL);
	else
		rc |= ig_buf_append_cstr(b, "{\"type\":\"text\",\"text\":\"\"}");
	rc |= ig_buf_append_cstr(b, "}\n\n");
	rc |= event_begin(b, "ping");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"ping\"}\n\n");
	return rc;
}

static int messages_delta(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = event_begin(b, "content_block_delta");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
	rc |= ig_buf_append_cstr(b, r->tool_mode != IG_SIM_TOOL_NONE
					? "{\"type\":\"input_json_delta\",\"partial_json\":"
					: "{\"type\":\"text_delta\",\"text\":");
	rc |= ig_json_write_string(b, r->text.ptr, r->text.len);
	rc |= ig_buf_append_cstr(b, "}}\n\n");
	return rc;
}

/* content_block_stop, message_delta with the stop reason and the usage,
 * message_stop. */
static int messages_close(struct ig_buf *b, const struct ig_sim_resp *r)
{
	int rc = event_begin(b, "content_block_stop");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"content_block_stop\",\"index\":0}\n\n");
	rc |= event_begin(b, "message_delta");
	rc |= ig_buf_printf(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":%s",
			    stop_reason(r));
	rc |= put_stop_sequence(b, r);
	rc |= ig_buf_printf(b, "},\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}\n\n",
			    r->prompt_tokens, r->completion_tokens);
	rc |= event_begin(b, "message_stop");
	rc |= ig_buf_append_cstr(b, "{\"type\":\"message_stop\"}\n\n");
	return rc;
}

const char *ig_sim_anthropic_error_type(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 402:
		return "billing_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 504:
		return "timeout_error";
	case 529:
		return "overloaded_error";
	}
	return status >= 500 ? "api_error" : "invalid_request_error";
}

int ig_sim_render_anthropic_error(struct ig_buf *out, int status, const char *msg)
{
	int rc = ig_buf_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
			       ig_sim_anthropic_error_type(status));
	rc |= ig_json_write_string(out, msg, strlen(msg));
	rc |= ig_buf_append_cstr(out, "}}");
	return rc ? -1 : 0;
}

int ig_sim_render_api_error(struct ig_buf *out, enum ig_sim_version v, enum ig_sim_kind kind,
			    int code, const char *type, const char *param, const char *msg)
{
	if (kind == IG_SIM_MESSAGES)
		return ig_sim_render_anthropic_error(out, code, msg);
	return ig_sim_render_error(out, v, code, type, param, msg);
}

/* ---- embeddings --------------------------------------------------------------------- */

static int put_vector(struct ig_buf *b, const float *v, size_t dims, bool base64)
{
	int rc = 0;
	if (base64) {
		/* float32, little-endian: what the OpenAI SDK decodes. */
		unsigned char *bytes = malloc(dims * 4 + 1);
		if (!bytes)
			return -1;
		for (size_t d = 0; d < dims; d++) {
			uint32_t u;
			memcpy(&u, &v[d], sizeof u);
			for (int k = 0; k < 4; k++)
				bytes[d * 4 + (size_t)k] = (unsigned char)(u >> (8 * k));
		}
		rc |= ig_buf_append_cstr(b, "\"");
		rc |= ig_sim_base64(b, bytes, dims * 4);
		rc |= ig_buf_append_cstr(b, "\"");
		free(bytes);
		return rc;
	}
	rc |= ig_buf_append_cstr(b, "[");
	/* Nine significant digits read back as the same float32. */
	for (size_t d = 0; d < dims; d++)
		rc |= ig_buf_printf(b, "%s%.9g", d ? "," : "", (double)v[d]);
	rc |= ig_buf_append_cstr(b, "]");
	return rc;
}

/* vLLM's EmbeddingResponse: one vector per input, usage without
 * completion tokens. */
static int render_embeddings(struct ig_buf *out, const struct ig_sim_resp *r)
{
	struct ig_json_value input, one;
	size_t pos = 0, dims = r->dims > 0 ? (size_t)r->dims : 1;
	long index = 0;
	if (ig_json_parse(r->input.ptr, r->input.len, &input) < 0)
		return -1;
	float *vec = malloc(dims * sizeof *vec);
	if (!vec)
		return -1;
	int rc = ig_buf_append_cstr(out, "{\"id\":");
	rc |= ig_json_write_string(out, r->id.ptr, r->id.len);
	rc |= ig_buf_printf(
	    out, ",\"object\":\"list\",\"created\":%lld,\"model\":", (long long)r->created);
	rc |= ig_json_write_string(out, r->model.ptr, r->model.len);
	rc |= ig_buf_append_cstr(out, ",\"data\":[");
	while (rc == 0 && ig_sim_embed_next(input, &pos, &one) == 1) {
		rc |= ig_sim_embedding(one, r->embed_seed, vec, dims);
		rc |= ig_buf_printf(out, "%s{\"index\":%ld,\"object\":\"embedding\",\"embedding\":",
				    index ? "," : "", index);
		rc |= put_vector(out, vec, dims, r->base64);
		rc |= ig_buf_append_cstr(out, "}");
		index++;
	}
	rc |= ig_buf_printf(out,
			    "],\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld,"
			    "\"completion_tokens\":0,\"prompt_tokens_details\":null}}",
			    r->prompt_tokens, r->prompt_tokens);
	free(vec);
	return rc ? -1 : 0;
}

/* ---- dispatch by API ------------------------------------------------------------------- */

int ig_sim_render_stream_open(struct ig_buf *out, const struct ig_sim_resp *r, long *seq)
{
	if (r->kind != IG_SIM_RESPONSES)
		return 0;
	int rc = responses_lifecycle(out, r, "response.created", false, seq);
	rc |= responses_lifecycle(out, r, "response.in_progress", false, seq);
	return rc ? -1 : 0;
}

int ig_sim_render_token(struct ig_buf *out, const struct ig_sim_resp *r, long *seq)
{
	int rc = 0;
	switch (r->kind) {
	case IG_SIM_COMPLETION:
	case IG_SIM_CHAT:
		if (r->kind == IG_SIM_CHAT && r->first && !r->role_sent)
			rc |= ig_sim_render_role_chunk(out, r);
		rc |= ig_sim_render_chunk(out, r);
		if (r->finish && !r->more_choices && r->include_usage)
			rc |= ig_sim_render_usage_chunk(out, r);
		if (r->finish && !r->more_choices)
			rc |= ig_buf_append_cstr(out, "data: [DONE]\n\n");
		break;
	case IG_SIM_RESPONSES:
		if (r->first)
			rc |= responses_open_item(out, r, seq);
		rc |= responses_delta(out, r, seq);
		if (r->finish)
			rc |= responses_close(out, r, seq);
		break;
	case IG_SIM_MESSAGES:
		if (r->first)
			rc |= messages_open(out, r);
		rc |= messages_delta(out, r);
		if (r->finish)
			rc |= messages_close(out, r);
		break;
	case IG_SIM_EMBEDDINGS:
		return -1;
	}
	return rc ? -1 : 0;
}

/* ---- echoed request fields ------------------------------------------------------------- */

/* One field's compact form appended to store; its offset and length. */
static int compact_one(struct ig_str raw, struct ig_buf *store, size_t *off, size_t *len)
{
	struct ig_json_value v;
	*off = store->len;
	*len = 0;
	if (!raw.len)
		return 0;
	/* The compact form is never longer than what it was written as. */
	if (ig_json_parse(raw.ptr, raw.len, &v) < 0 || ig_buf_reserve(store, raw.len + 1) < 0)
		return -1;
	size_t n = ig_json_canonical(v, store->ptr + store->len, raw.len + 1);
	if (n > raw.len)
		return -1;
	store->len += n;
	*len = n;
	return 0;
}

int ig_sim_echo_compact(const struct ig_sim_echo *raw, struct ig_buf *store,
			struct ig_sim_echo *out)
{
	const struct ig_str *src[] = {&raw->instructions, &raw->metadata, &raw->tool_choice,
				      &raw->tools, &raw->user};
	struct ig_str *dst[] = {&out->instructions, &out->metadata, &out->tool_choice, &out->tools,
				&out->user};
	size_t off[5], len[5];
	*out = *raw;
	for (size_t i = 0; i < 5; i++)
		if (compact_one(*src[i], store, &off[i], &len[i]) < 0)
			return -1;
	/* Pointers only once the store has stopped moving. */
	for (size_t i = 0; i < 5; i++)
		*dst[i] =
		    len[i] ? (struct ig_str){store->ptr + off[i], len[i]} : (struct ig_str){0};
	return 0;
}

/* ---- numbers ------------------------------------------------------------------- */

/* The fewest significant digits that read back as v. */
static int shortest_digits(double v)
{
	char tmp[40];
	for (int p = 1; p < 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
		if (strtod(tmp, NULL) == v)
			return p;
	}
	return 17;
}

int ig_sim_py_float(char *out, size_t len, double v)
{
	if (isinf(v))
		return snprintf(out, len, v > 0 ? "inf" : "-inf");
	if (isnan(v))
		return snprintf(out, len, "nan");
	int p = shortest_digits(v);
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
	int exp = atoi(strchr(tmp, 'e') + 1);
	if (exp < -4 || exp >= 16)
		return snprintf(out, len, "%s", tmp);
	int decimals = p - 1 - exp;
	return snprintf(out, len, "%.*f", decimals < 1 ? 1 : decimals, v);
}

/* Python's repr(), then prometheus_client's floatToGoString(), which moves
 * positive numbers with more than six integer digits to exponent form
 * (1742577733.4 -> "1.7425777334e+09"). */
int ig_sim_fmt_float(char *out, size_t len, double v)
{
	if (isinf(v))
		return snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
	if (isnan(v))
		return snprintf(out, len, "NaN");
	char tmp[64];
	ig_sim_py_float(tmp, sizeof tmp, v);
	char *dot = strchr(tmp, '.');
	int ipart = dot && !strchr(tmp, 'e') ? (int)(dot - tmp) : 0;
	if (v > 0 && ipart > 6) {
		char mant[64];
		size_t m = 0;
		mant[m++] = tmp[0];
		mant[m++] = '.';
		for (const char *s = tmp + 1; *s; s++)
			if (*s != '.')
				mant[m++] = *s;
		while (m > 1 && (mant[m - 1] == '0' || mant[m - 1] == '.'))
			m--;
		mant[m] = '\0';
		return snprintf(out, len, "%se+0%d", mant, ipart - 1);
	}
	return snprintf(out, len, "%s", tmp);
}

/* ---- histograms and LoRA history ----------------------------------------------- */

static const double ttft_buckets[] = {0.001, 0.005, 0.01, 0.02,	 0.04,	0.06,  0.08, 0.1,
				      0.25,  0.5,   0.75, 1.0,	 2.5,	5.0,   7.5,  10.0,
				      20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double e2e_buckets[] = {0.3,  0.5,	  0.8,	 1.0,	1.5,   2.0,    2.5,
				     5.0,  10.0,  15.0,	 20.0,	30.0,  40.0,   50.0,
				     60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

/* v0.8 (V0) stops at 10 s and 60 s; later releases added the long tail. */
const double *ig_sim_ttft_buckets(enum ig_sim_version v, size_t *n)
{
	*n = v == IG_SIM_V_0_8 ? 16 : sizeof ttft_buckets / sizeof ttft_buckets[0];
	return ttft_buckets;
}

const double *ig_sim_e2e_buckets(enum ig_sim_version v, size_t *n)
{
	*n = v == IG_SIM_V_0_8 ? 15 : sizeof e2e_buckets / sizeof e2e_buckets[0];
	return e2e_buckets;
}

/* B, and B' from 0.9 on: the time between tokens. */
static const double tpot_buckets[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,	 0.3,  0.4, 0.5,
				      0.75, 1.0,   2.5,	 5.0,	7.5, 10.0, 20.0, 40.0, 80.0};

const double *ig_sim_tpot_buckets(enum ig_sim_version v, size_t *n)
{
	*n = v == IG_SIM_V_0_8 ? 13 : sizeof tpot_buckets / sizeof tpot_buckets[0];
	return tpot_buckets;
}

/* Tokens per engine step: V0 in eager mode (the seed's CPU engine) stops
 * at 8096, as vLLM wrote it; newer releases at 16384. */
static const double iter_buckets_v0[] = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8096};
static const double iter_buckets[] = {1,   8,	 16,   32,   64,   128,	 256,
				      512, 1024, 2048, 4096, 8192, 16384};

const double *ig_sim_iter_buckets(enum ig_sim_version v, size_t *n)
{
	if (v == IG_SIM_V_0_8) {
		*n = sizeof iter_buckets_v0 / sizeof iter_buckets_v0[0];
		return iter_buckets_v0;
	}
	*n = sizeof iter_buckets / sizeof iter_buckets[0];
	return iter_buckets;
}

/* vLLM's buckets for request_params_n (V0's metrics.py and V1's
 * loggers.py alike). */
static const double n_buckets[] = {1, 2, 5, 10, 20};

const double *ig_sim_n_buckets(size_t *n)
{
	*n = sizeof n_buckets / sizeof n_buckets[0];
	return n_buckets;
}

size_t ig_sim_token_buckets(long max_model_len, double *out)
{
	static const int mantissa[] = {1, 2, 5};
	size_t n = 0;
	for (double scale = 1; n < IG_SIM_MAX_BUCKETS; scale *= 10)
		for (size_t i = 0; i < 3; i++) {
			double v = mantissa[i] * scale;
			if (v > (double)max_model_len || n == IG_SIM_MAX_BUCKETS)
				return n;
			out[n++] = v;
		}
	return n;
}

void ig_sim_hist_observe(struct ig_sim_hist *h, const double *bounds, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

static void series_free(struct ig_sim_lora_series *l)
{
	free(l->running);
	free(l->waiting);
	memset(l, 0, sizeof *l);
}

int ig_sim_lora_note(struct ig_sim_stats *s, const char *running, const char *waiting, double now)
{
	/* Strictly increasing even when two changes share a clock reading, so
	 * "largest value" always names the newest state. */
	double t = now > s->lora_last_t ? now : s->lora_last_t + 0.001;
	struct ig_sim_lora_series cur = {0};
	size_t i;
	for (i = 0; i < s->nlora; i++)
		if (strcmp(s->lora[i].running, running) == 0 &&
		    strcmp(s->lora[i].waiting, waiting) == 0)
			break;
	if (i < s->nlora) {
		cur = s->lora[i];
	} else {
		cur.running = strdup(running);
		cur.waiting = strdup(waiting);
		if (!cur.running || !cur.waiting) {
			series_free(&cur);
			return -1;
		}
		if (s->nlora == IG_SIM_LORA_HISTORY) {
			series_free(&s->lora[0]);
			i = 0;
		} else {
			i = s->nlora++;
			s->lora[i] = cur;
		}
	}
	memmove(&s->lora[i], &s->lora[i + 1], (s->nlora - i - 1) * sizeof s->lora[0]);
	cur.t = t;
	s->lora[s->nlora - 1] = cur;
	s->lora_last_t = t;
	return 0;
}

void ig_sim_stats_free(struct ig_sim_stats *s)
{
	for (size_t i = 0; i < s->nlora; i++)
		series_free(&s->lora[i]);
	s->nlora = 0;
}

/* ---- exposition ------------------------------------------------------------------ */

static int put_label_value(struct ig_buf *b, const char *v)
{
	int rc = 0;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			rc |= ig_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			rc |= ig_buf_append_cstr(b, "\\n");
		else
			rc |= ig_buf_append(b, v, 1);
	}
	return rc;
}

static int put_family(struct ig_buf *b, const char *name, const char *type, const char *help)
{
	return ig_buf_printf(b, "# HELP vllm:%s %s\n# TYPE vllm:%s %s\n", name, help, name, type);
}

static int put_value(struct ig_buf *b, double v)
{
	char num[64];
	ig_sim_fmt_float(num, sizeof num, v);
	return ig_buf_printf(b, " %s\n", num);
}

/* The labels of a model's series: V1 (the latest mode) adds the engine's
 * index, engine="0" (one engine: no data parallelism), and
 * prometheus_client writes them in alphabetical order (vllm-api.md §5.1). */
struct labels {
	const char *model;
	bool engine;
};

/* {engine="0",<key>="<val>",model_name="m"}: key (may be NULL) sorts
 * between engine and model_name for every label vLLM adds. */
static int put_labels(struct ig_buf *b, const struct labels *l, const char *key, const char *val)
{
	int rc = ig_buf_append_cstr(b, l->engine ? "{engine=\"0\"," : "{");
	if (key)
		rc |= ig_buf_printf(b, "%s=\"%s\",", key, val);
	rc |= ig_buf_append_cstr(b, "model_name=\"");
	rc |= put_label_value(b, l->model);
	return rc | ig_buf_append_cstr(b, "\"}");
}

static int put_model_sample(struct ig_buf *b, const char *name, const struct labels *l, double v)
{
	int rc = ig_buf_printf(b, "vllm:%s", name);
	rc |= put_labels(b, l, NULL, NULL);
	return rc | put_value(b, v);
}

static int put_gauge(struct ig_buf *b, const char *name, const char *help, const struct labels *l,
		     double v)
{
	return put_family(b, name, "gauge", help) | put_model_sample(b, name, l, v);
}

static int put_counter(struct ig_buf *b, const char *name, const char *help, const struct labels *l,
		       double v)
{
	return put_family(b, name, "counter", help) | put_model_sample(b, name, l, v);
}

static int put_hist(struct ig_buf *b, const char *name, const char *help, const struct labels *l,
		    const struct ig_sim_hist *h, const double *bounds, size_t n)
{
	int rc = put_family(b, name, "histogram", help);
	uint64_t cum = 0;
	char le[64];
	for (size_t i = 0; i <= n; i++) {
		cum += h->counts[i];
		ig_sim_fmt_float(le, sizeof le, i < n ? bounds[i] : INFINITY);
		rc |= ig_buf_printf(b, "vllm:%s_bucket", name);
		rc |= put_labels(b, l, "le", le);
		rc |= put_value(b, (double)cum);
	}
	rc |= ig_buf_printf(b, "vllm:%s_count", name);
	rc |= put_labels(b, l, NULL, NULL);
	rc |= put_value(b, (double)h->count);
	rc |= ig_buf_printf(b, "vllm:%s_sum", name);
	rc |= put_labels(b, l, NULL, NULL);
	rc |= put_value(b, h->sum);
	return rc;
}

static int put_lora(struct ig_buf *b, const struct ig_sim_config *c, const struct ig_sim_stats *s)
{
	/* vLLM V0 reports max_lora="0" when LoRA is off. */
	long max_lora = c->enable_lora || c->nadapters ? c->max_loras : 0;
	int rc = put_family(b, "lora_requests_info", "gauge", "Running stats on lora requests.");
	for (size_t i = 0; i < s->nlora; i++) {
		rc |= ig_buf_printf(
		    b, "vllm:lora_requests_info{max_lora=\"%ld\",running_lora_adapters=\"",
		    max_lora);
		rc |= put_label_value(b, s->lora[i].running);
		rc |= ig_buf_append_cstr(b, "\",waiting_lora_adapters=\"");
		rc |= put_label_value(b, s->lora[i].waiting);
		rc |= ig_buf_append_cstr(b, "\"}");
		rc |= put_value(b, s->lora[i].t);
	}
	return rc;
}

static const char *const finish_names[IG_SIM_FIN_N] = {"stop", "length", "abort"};

static int put_success(struct ig_buf *b, const struct ig_sim_config *c,
		       const struct ig_sim_stats *s, const struct labels *l)
{
	int rc = put_family(b, "request_success_total", "counter",
			    "Count of successfully processed requests.");
	for (int i = 0; i < IG_SIM_FIN_N; i++) {
		/* V0 creates a series on first use; V1 creates them all up front. */
		if (c->version == IG_SIM_V_0_8 && !s->success_seen[i])
			continue;
		rc |= ig_buf_append_cstr(b, "vllm:request_success_total");
		rc |= put_labels(b, l, "finished_reason", finish_names[i]);
		rc |= put_value(b, s->success[i]);
	}
	return rc;
}

/* V1 counts prefix-cache lookups in tokens (named gpu_prefix_cache_* in
 * 0.8, prefix_cache_* from 0.9); V0, which the 0.8 mode imitates (the
 * seed's CPU engine), has no such counters, only its hit-rate gauges (-1
 * when prefix caching is off; the CPU one has no blocks to hit). */
static int put_prefix_cache(struct ig_buf *b, const struct ig_sim_config *c,
			    const struct ig_sim_stats *s, const struct labels *l)
{
	if (c->version != IG_SIM_V_0_8)
		return put_counter(b, "prefix_cache_queries_total",
				   "Prefix cache queries, in terms of number of queried tokens.", l,
				   s->prefix_queries) |
		       put_counter(b, "prefix_cache_hits_total",
				   "Prefix cache hits, in terms of number of cached tokens.", l,
				   s->prefix_hits);
	double rate = !c->enable_prefix_caching ? -1
		      : s->prefix_queries > 0	? s->prefix_hits / s->prefix_queries
						: 0;
	return put_gauge(b, "cpu_prefix_cache_hit_rate", "CPU prefix cache block hit rate.", l,
			 c->enable_prefix_caching ? 0 : -1) |
	       put_gauge(b, "gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.", l,
			 rate);
}

/* Every CacheConfig field as a label, in alphabetical order: V0 on CPU
 * (0.8) holds the CPU cache as its "GPU" blocks and no CPU blocks; V1
 * (the latest) never sets num_cpu_blocks and adds the engine's index. */
static int put_cache_config(struct ig_buf *b, const struct ig_sim_config *c)
{
	const char *prefix = c->enable_prefix_caching ? "True" : "False";
	int rc =
	    put_family(b, "cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
	if (c->version == IG_SIM_V_0_8)
		return rc | ig_buf_printf(
				b,
				"vllm:cache_config_info{block_size=\"%ld\",cache_dtype=\"auto\","
				"calculate_kv_scales=\"False\","
				"cpu_kvcache_space_bytes=\"4294967296\",cpu_offload_gb=\"0\","
				"enable_prefix_caching=\"%s\",gpu_memory_utilization=\"0.9\","
				"is_attention_free=\"False\",num_cpu_blocks=\"0\","
				"num_gpu_blocks=\"%ld\",num_gpu_blocks_override=\"None\","
				"sliding_window=\"None\",swap_space_bytes=\"4294967296\"} 1.0\n",
				c->block_size, prefix, c->num_gpu_blocks);
	return rc | ig_buf_printf(
			b,
			"vllm:cache_config_info{block_size=\"%ld\",cache_dtype=\"auto\","
			"calculate_kv_scales=\"False\",cpu_offload_gb=\"0\","
			"enable_prefix_caching=\"%s\",engine=\"0\",gpu_memory_utilization=\"0.9\","
			"is_attention_free=\"False\",num_cpu_blocks=\"None\","
			"num_gpu_blocks=\"%ld\",num_gpu_blocks_override=\"None\","
			"prefix_caching_hash_algo=\"builtin\",sliding_window=\"None\","
			"swap_space=\"4\",swap_space_bytes=\"4294967296\"} 1.0\n",
			c->block_size, prefix, c->num_gpu_blocks);
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* One query parameter, %XX and '+' decoded into out (cut at its size). */
static size_t url_decode(struct ig_str s, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < s.len && n < cap; i++) {
		char ch = s.ptr[i];
		int hi, lo;
		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%' && i + 2 < s.len && (hi = hex_digit(s.ptr[i + 1])) >= 0 &&
			   (lo = hex_digit(s.ptr[i + 2])) >= 0) {
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		out[n++] = ch;
	}
	return n;
}

#define MAX_NAMES 32

/* The name[] values of a query. */
static size_t query_names(struct ig_str query, char (*names)[128], size_t *lens)
{
	size_t n = 0;
	while (query.len && n < MAX_NAMES) {
		const char *amp = memchr(query.ptr, '&', query.len);
		struct ig_str param = {query.ptr, amp ? (size_t)(amp - query.ptr) : query.len};
		query =
		    amp ? (struct ig_str){amp + 1, query.len - param.len - 1} : (struct ig_str){0};
		const char *eq = memchr(param.ptr, '=', param.len);
		if (!eq)
			continue;
		char key[16];
		size_t klen = url_decode((struct ig_str){param.ptr, (size_t)(eq - param.ptr)}, key,
					 sizeof key);
		if (klen != 6 || memcmp(key, "name[]", 6) != 0)
			continue;
		lens[n] =
		    url_decode((struct ig_str){eq + 1, param.len - (size_t)(eq - param.ptr) - 1},
			       names[n], sizeof names[n]);
		n++;
	}
	return n;
}

int ig_sim_filter_metrics(struct ig_str page, struct ig_str query, struct ig_buf *out)
{
	char names[MAX_NAMES][128];
	size_t lens[MAX_NAMES];
	size_t nnames = query_names(query, names, lens);
	if (nnames == 0)
		return ig_buf_append(out, page.ptr, page.len);
	/* The comment lines of the current family wait for its first kept
	 * sample: a HELP line, or a comment that does not follow the previous
	 * one, starts a new family's. */
	struct ig_str comments = {page.ptr, 0};
	const char *p = page.ptr, *end = page.ptr + page.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		struct ig_str line = {p, (size_t)(next - p)};
		p = next;
		if (line.ptr[0] == '#') {
			bool help = line.len > 7 && memcmp(line.ptr, "# HELP ", 7) == 0;
			if (help || comments.ptr + comments.len != line.ptr)
				comments = line;
			else
				comments.len += line.len;
			continue;
		}
		size_t nlen = 0;
		while (nlen < line.len && line.ptr[nlen] != '{' && line.ptr[nlen] != ' ')
			nlen++;
		bool keep = false;
		for (size_t i = 0; i < nnames && !keep; i++)
			keep = lens[i] == nlen && memcmp(names[i], line.ptr, nlen) == 0;
		if (!keep)
			continue;
		if (comments.len && ig_buf_append(out, comments.ptr, comments.len) < 0)
			return -1;
		comments.len = 0;
		if (ig_buf_append(out, line.ptr, line.len) < 0)
			return -1;
	}
	return 0;
}

/* Every histogram but TTFT's, each release's (vllm-api.md §5.2): the time
 * between tokens is 0.8's time_per_output_token_seconds, the latest's
 * inter_token_latency_seconds (the old name, deprecated in 0.11, is hidden
 * since), which also writes each request's mean time per output token,
 * request_time_per_output_token_seconds. */
static int put_hists(struct ig_buf *b, const struct ig_sim_config *c, const struct ig_sim_stats *s,
		     const struct labels *m)
{
	size_t ne, np, ni, nk;
	double tok[IG_SIM_MAX_BUCKETS];
	const double *eb = ig_sim_e2e_buckets(c->version, &ne);
	const double *pb = ig_sim_tpot_buckets(c->version, &np);
	const double *ib = ig_sim_iter_buckets(c->version, &ni);
	size_t nn;
	const double *nb = ig_sim_n_buckets(&nn);
	nk = ig_sim_token_buckets(c->max_model_len, tok);
	int rc = 0;
	if (c->version == IG_SIM_V_0_8) {
		rc |=
		    put_hist(b, "time_per_output_token_seconds",
			     "Histogram of time per output token in seconds.", m, &s->tpot, pb, np);
	} else {
		rc |= put_hist(b, "inter_token_latency_seconds",
			       "Histogram of inter-token latency in seconds.", m, &s->tpot, pb, np);
		rc |= put_hist(b, "request_time_per_output_token_seconds",
			       "Histogram of time_per_output_token_seconds per request.", m,
			       &s->req_tpot, pb, np);
	}
	rc |= put_hist(b, "e2e_request_latency_seconds",
		       "Histogram of end to end request latency in seconds.", m, &s->e2e, eb, ne);
	rc |=
	    put_hist(b, "request_queue_time_seconds",
		     "Histogram of time spent in WAITING phase for request.", m, &s->queue, eb, ne);
	rc |= put_hist(b, "request_inference_time_seconds",
		       "Histogram of time spent in RUNNING phase for request.", m, &s->inference,
		       eb, ne);
	rc |= put_hist(b, "request_prefill_time_seconds",
		       "Histogram of time spent in PREFILL phase for request.", m, &s->prefill, eb,
		       ne);
	rc |=
	    put_hist(b, "request_decode_time_seconds",
		     "Histogram of time spent in DECODE phase for request.", m, &s->decode, eb, ne);
	rc |= put_hist(b, "request_prompt_tokens", "Number of prefill tokens processed.", m,
		       &s->req_prompt, tok, nk);
	rc |= put_hist(b, "request_generation_tokens", "Number of generation tokens processed.", m,
		       &s->req_gen, tok, nk);
	rc |= put_hist(b, "request_params_max_tokens",
		       "Histogram of the max_tokens request parameter.", m, &s->req_max_tokens, tok,
		       nk);
	rc |= put_hist(b, "request_max_num_generation_tokens",
		       "Histogram of maximum number of requested generation tokens.", m,
		       &s->req_max_gen, tok, nk);
	rc |= put_hist(b, "request_params_n", "Histogram of the n request parameter.", m, &s->req_n,
		       nb, nn);
	rc |= put_hist(b, "iteration_tokens_total",
		       "Histogram of number of tokens per engine_step.", m, &s->iter, ib, ni);
	return rc;
}

int ig_sim_render_metrics(struct ig_buf *out, const struct ig_sim_config *c,
			  const struct ig_sim_stats *s, const struct ig_sim_gauges *g)
{
	bool v0 = c->version == IG_SIM_V_0_8;
	const struct labels l = {ig_sim_label_name(c), !v0}, *m = &l;
	size_t nt;
	const double *tb = ig_sim_ttft_buckets(c->version, &nt);
	int rc = put_gauge(out, "num_requests_running",
			   "Number of requests currently running on GPU.", m, (double)g->running);
	rc |= put_gauge(out, "num_requests_waiting", "Number of requests waiting to be processed.",
			m, (double)g->waiting);
	/* V0's: the KV cache under its old name, and the swap space and CPU
	 * cache it never uses here (deprecated in 0.8, still written). From
	 * 0.11 the old name is no longer written by default (vllm-api.md
	 * §5.2). */
	if (v0) {
		rc |= put_gauge(out, "num_requests_swapped", "Number of requests swapped to CPU.",
				m, 0);
		rc |= put_gauge(out, "gpu_cache_usage_perc",
				"GPU KV-cache usage. 1 means 100 percent usage.", m, g->kv_usage);
		rc |= put_gauge(out, "cpu_cache_usage_perc",
				"CPU KV-cache usage. 1 means 100 percent usage.", m, 0);
	} else {
		rc |= put_gauge(out, "kv_cache_usage_perc",
				"KV-cache usage. 1 means 100 percent usage.", m, g->kv_usage);
	}
	if (v0 || c->enable_lora || c->nadapters)
		rc |= put_lora(out, c, s);
	rc |= put_counter(out, "num_preemptions_total",
			  "Cumulative number of preemption from the engine.", m, s->preemptions);
	rc |= put_prefix_cache(out, c, s, m);
	rc |= put_counter(out, "prompt_tokens_total", "Number of prefill tokens processed.", m,
			  s->prompt_tokens);
	rc |= put_counter(out, "generation_tokens_total", "Number of generation tokens processed.",
			  m, s->generation_tokens);
	rc |= put_success(out, c, s, m);
	rc |= put_hist(out, "time_to_first_token_seconds",
		       "Histogram of time to first token in seconds.", m, &s->ttft, tb, nt);
	rc |= put_hists(out, c, s, m);
	rc |= put_cache_config(out, c);
	return rc ? -1 : 0;
}

int ig_sim_render_full(struct ig_buf *out, const struct ig_sim_resp *r)
{
	struct ig_str text = r->text;
	switch (r->kind) {
	case IG_SIM_COMPLETION:
	case IG_SIM_CHAT:
		return render_openai_full(out, r);
	case IG_SIM_RESPONSES:
		return put_response_object(out, r, true) ? -1 : 0;
	case IG_SIM_MESSAGES:
		return put_anthropic_message(out, r, &text) ? -1 : 0;
	case IG_SIM_EMBEDDINGS:
		return render_embeddings(out, r);
	}
	return -1;
}
