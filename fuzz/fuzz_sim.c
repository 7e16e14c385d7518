/* libFuzzer target for the simulator's handling of peer input: request
 * bodies of every API (ig_sim_parse_request, against a fixed configuration
 * with served names and adapters) and the answers rendered from what they
 * accept, --lora-modules items, command lines and the tokenizer.
 *
 * Input: one control byte, then the payload.
 *   control % 8 == 0  the payload is one --lora-modules item
 *               == 1  the payload is a command line, arguments split on NUL
 *               == 2  the payload is text for the tokenizer
 *               else  request bodies: up to 6 pieces split on NUL, each
 *                     "<op><body>" with op c (completion), h (chat),
 *                     r (Responses), e (embeddings), m (Anthropic
 *                     Messages), t (/tokenize), d (/detokenize) or
 *                     anything else (every one)
 *   bit 3  --vllm-version 0.8 (the error body shape)
 *
 * A parsed request must be one the simulator can run (a structured one
 * with an answer its schema or choices give, valid JSON for a schema): a known model name,
 * a prompt and answer within the context, ids a prefix of the prompt (all
 * of it unless cut at the buffer's ceiling), and its answer, whole and
 * streamed, must render as valid JSON with every SSE event on one data
 * line. A refusal must carry a status and a message that make a valid
 * error body in the API's shape. /tokenize and /detokenize answers must
 * be valid JSON listing as many ids as the prompt has tokens, each in the
 * vocabulary. The tokenizer's spans must give the text back. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "json/json.h"
#include "sim/sim.h"

#define MAX_REQUESTS 6

enum { F_V08 = 1 << 3 };

/* ---- pure functions ------------------------------------------------------------ */

static void fuzz_lora_item(const char *s)
{
	struct ig_sim_adapter a;
	struct ig_sim_config c;
	char err[256];

	if (ig_sim_parse_lora_module(s, &a, err, sizeof err) < 0)
		return;
	if (!a.name || !a.name[0] || !a.path)
		abort();
	/* The adapter goes through the same table the server uses. */
	ig_sim_config_init(&c);
	struct ig_str name = ig_str_from(a.name);
	struct ig_str base = a.base ? ig_str_from(a.base) : (struct ig_str){NULL, 0};
	if (ig_sim_add_adapter(&c, name, ig_str_from(a.path), base) != 0 ||
	    ig_sim_add_adapter(&c, name, IG_STR("/x"), base) != -EEXIST ||
	    ig_sim_find_adapter(&c, name) != 0 || ig_sim_remove_adapter(&c, name) != 0 ||
	    ig_sim_find_adapter(&c, name) >= 0)
		abort();
	ig_sim_config_free(&c);
	free(a.name);
	free(a.path);
	free(a.base);
}

/* argv from NUL-separated words; "--help" is left out (it prints usage). */
static void fuzz_args(char *p, size_t len)
{
	char *argv[64] = {"sim"};
	int argc = 1;
	char err[512];
	struct ig_sim_config c;

	for (char *end = p + len; p < end && argc < 64; p += strlen(p) + 1)
		if (strcmp(p, "--help") != 0 && strcmp(p, "-h") != 0)
			argv[argc++] = p;
	ig_sim_config_init(&c);
	int rc = ig_sim_parse_args(&c, argc, argv, err, sizeof err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0 && (c.max_loras < 1 || c.block_size < 1 || c.num_gpu_blocks < 1))
		abort();
	if (rc == -1 && !memchr(err, '\0', sizeof err))
		abort();
	ig_sim_config_free(&c);
}

static void fuzz_tokens(const char *p, size_t len)
{
	struct ig_str s = {p, len};
	size_t n = ig_sim_count_tokens(s);
	if (n > len)
		abort();
	(void)ig_sim_text_seed(s, IG_STR("m"), 1);
	/* The spans, one per token, tile the text up to its trailing blanks. */
	struct ig_str sp[16];
	size_t at = 0, total = 0, k;
	while ((k = ig_sim_token_spans((struct ig_str){p + at, len - at}, sp, 16)) > 0) {
		for (size_t j = 0; j < k; j++) {
			if (sp[j].ptr != p + at || sp[j].len == 0)
				abort();
			at += sp[j].len;
		}
		total += k;
	}
	if (total != n)
		abort();
	for (; at < len; at++)
		if (!strchr(" \t\n\r\f\v", p[at]) || p[at] == '\0')
			abort();
}

/* ---- request bodies ------------------------------------------------------------ */

static char *sim_argv[] = {
    "sim",
    "--model",
    "base",
    "--served-model-name",
    "base",
    "alias",
    "--enable-lora",
    "--max-loras",
    "1",
    "--lora-modules",
    "a1=/p",
    "{\"name\":\"a2\",\"path\":\"/q\",\"base_model_name\":\"alias\"}",
    "--max-model-len",
    "128",
    "--seed",
    "7",
    "--embedding-dim",
    "8",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--vllm-version", /* last: the control byte's bit 3 picks the value */
    "latest",
};

static void check_json(const char *p, size_t len)
{
	struct ig_json_value v;
	if (ig_json_parse(p, len, &v) < 0)
		abort();
}

/* Each event of an SSE stream: optional "event:" line, one "data:" line
 * holding JSON (or [DONE]), a blank line. */
static void check_sse(const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			abort();
		if ((size_t)(end - p) > 7 && memcmp(p, "event: ", 7) == 0) {
			p = nl + 1;
			nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl)
				abort();
		}
		if ((size_t)(nl - p) < 6 || memcmp(p, "data: ", 6) != 0 || nl + 1 >= end ||
		    nl[1] != '\n')
			abort();
		if (!((size_t)(nl - p) == 12 && memcmp(p + 6, "[DONE]", 6) == 0))
			check_json(p + 6, (size_t)(nl - p - 6));
		p = nl + 2;
	}
}

/* Renders what the engine would answer to r: the whole body, and the
 * stream of a two-token answer. */
static void check_answer(const struct ig_sim_request *r)
{
	static const uint8_t lp_words[2] = {3, IG_SIM_WORDS - 1};
	struct ig_buf out = {0}, store = {0};
	struct ig_sim_echo echo;
	if (ig_sim_echo_compact(&r->echo, &store, &echo) < 0)
		abort();
	struct ig_sim_resp resp = {
	    .kind = r->kind,
	    .id = IG_STR("id-1"),
	    .model = r->name,
	    .text = IG_STR(" a b"),
	    .finish = "length",
	    .prompt_tokens = r->prompt_tokens,
	    .completion_tokens = 2,
	    .include_usage = r->include_usage,
	    .item_id = IG_STR("msg_1"),
	    .max_output_tokens = r->max_tokens,
	    .echo = &echo,
	    .input = r->input,
	    .dims = r->dims,
	    .base64 = r->base64,
	    .embed_seed = 7,
	    .logprobs = r->lp_top >= 0,
	    .lp_top = r->lp_top > 0 ? (unsigned)r->lp_top : 0,
	    .lp_words = lp_words,
	    .lp_n = sizeof lp_words,
	    .stop_reason = r->nstop ? (struct ig_str){r->stop.ptr, strlen(r->stop.ptr)}
				    : (struct ig_str){NULL, 0},
	    .lp_prompt = r->echo_prompt ? ig_buf_str(&r->echo_text) : (struct ig_str){0},
	    .prompt_lp = ig_buf_str(&r->prompt_lp_json),
	    .tool_mode = r->tool_mode,
	    .tool_name = IG_STR("f\"n"),
	    .tool_id = IG_STR("chatcmpl-tool-1"),
	};
	if (ig_sim_render_full(&out, &resp) < 0)
		abort();
	check_json(out.ptr, out.len);
	if (r->kind == IG_SIM_EMBEDDINGS) {
		struct ig_json_value root, data, e;
		size_t pos = 0;
		long n = 0;
		if (ig_json_parse(out.ptr, out.len, &root) < 0 ||
		    ig_json_get(root, "data", &data) < 0)
			abort();
		while (ig_json_array_next(data, &pos, &e) == 1)
			n++;
		if (n != r->ninputs)
			abort();
	} else {
		long seq = 0;
		ig_buf_reset(&out);
		resp.finish = NULL;
		resp.full_text = IG_STR(" a");
		resp.text = IG_STR(" a");
		resp.first = true;
		resp.completion_tokens = 1;
		if (ig_sim_render_stream_open(&out, &resp, &seq) < 0 ||
		    ig_sim_render_token(&out, &resp, &seq) < 0)
			abort();
		resp.finish = "stop";
		resp.full_text = IG_STR(" a b");
		resp.text = IG_STR(" b");
		resp.first = false;
		resp.completion_tokens = 2;
		if (ig_sim_render_token(&out, &resp, &seq) < 0)
			abort();
		check_sse(out.ptr, out.len);
	}
	ig_buf_free(&out);
	ig_buf_free(&store);
}

static bool within(struct ig_str s, const char *body, size_t len)
{
	return !s.len || (s.ptr >= body && s.ptr + s.len <= body + len);
}

static void check_accepted(const struct ig_sim_config *c, const struct ig_sim_request *r,
			   const char *body, size_t len)
{
	if (!r->name.len || r->max_tokens < 1 || r->prompt_tokens < 0)
		abort();
	/* Embedding inputs are checked one by one; the rest as one prompt. */
	if (r->kind == IG_SIM_EMBEDDINGS) {
		if (r->max_tokens != 1 || r->ninputs < 1 || r->stream || r->dims < 1 ||
		    r->dims > c->embedding_dim || r->prompt_tokens > r->ninputs * c->max_model_len)
			abort();
	} else if (r->prompt_tokens + r->max_tokens > c->max_model_len) {
		abort();
	}
	if (r->adapter != (ig_sim_find_adapter(c, r->name) >= 0) ||
	    (!r->adapter && !ig_sim_is_base_name(c, r->name)))
		abort();
	/* The text's seed comes from the prompt's JSON, part of the body; so
	 * do the echoed fields and an embeddings input (the chat form's is
	 * its prompt's ids, a list of one per token). */
	bool chat_input = r->input.len && r->input.ptr == r->input_buf.ptr;
	if (chat_input) {
		struct ig_json_value v, e;
		size_t pos = 0, k = 0;
		if (ig_json_parse(r->input.ptr, r->input.len, &v) < 0 || v.type != IG_JSON_ARRAY)
			abort();
		while (ig_json_array_next(v, &pos, &e) == 1)
			k++;
		if (k != ig_sim_request_nids(r) || r->ninputs != 1)
			abort();
	}
	if (!within(r->prompt_key, body, len) || (!chat_input && !within(r->input, body, len)) ||
	    !within(r->echo.instructions, body, len) || !within(r->echo.metadata, body, len) ||
	    !within(r->echo.tool_choice, body, len) || !within(r->echo.tools, body, len) ||
	    !within(r->echo.user, body, len))
		abort();
	if (r->include_usage && !r->stream)
		abort();
	/* The ids are the prompt's tokens, template markers included. */
	size_t n = ig_sim_request_nids(r);
	if (r->ids.len % sizeof(uint64_t) || (!r->ids_truncated && n != (size_t)r->prompt_tokens))
		abort();
	/* return_token_ids: the prompt's ids, one per token, in the vocabulary. */
	if (r->prompt_ids_json.len) {
		struct ig_json_value v, e;
		size_t pos = 0, k = 0;
		int64_t id;
		if (ig_json_parse(r->prompt_ids_json.ptr, r->prompt_ids_json.len, &v) < 0)
			abort();
		while (ig_json_array_next(v, &pos, &e) == 1)
			if (ig_json_int64(e, &id) < 0 || id < 0 || id >= (int64_t)IG_SIM_VOCAB ||
			    ++k > n)
				abort();
		if (k != n)
			abort();
	}
	/* prompt_logprobs: an entry per token the prompt kept (the first null). */
	if (r->prompt_lp_json.len) {
		struct ig_json_value v, e;
		size_t pos = 0, k = 0;
		if (r->prompt_lp < 0 ||
		    ig_json_parse(r->prompt_lp_json.ptr, r->prompt_lp_json.len, &v) < 0)
			abort();
		while (ig_json_array_next(v, &pos, &e) == 1)
			if ((k++ == 0) != (e.type == IG_JSON_NULL))
				abort();
		if (k != n)
			abort();
	}
	(void)ig_sim_text_seed(r->prompt_key, r->name, r->has_seed ? (uint64_t)r->seed : 0);
	check_answer(r);
	/* A structured answer is written from the schema (or choices) the
	 * parse accepted: a schema's is always one valid JSON value. */
	if (r->structured != IG_SIM_FREE) {
		struct ig_rng rng;
		struct ig_buf text = {0};
		ig_rng_seed(&rng, 7);
		if (ig_sim_structured_text(r->structured, r->spec, &rng, &text) < 0)
			abort();
		if (r->structured == IG_SIM_JSON)
			check_json(text.ptr ? text.ptr : "", text.len);
		ig_buf_free(&text);
	}
}

static void check_refused(const struct ig_sim_config *c, enum ig_sim_kind kind,
			  const struct ig_sim_error *e)
{
	struct ig_buf b = {0};
	if ((e->status != 400 && e->status != 404) || !e->type ||
	    !memchr(e->msg, '\0', sizeof e->msg) || !e->msg[0])
		abort();
	if (ig_sim_render_api_error(&b, c->version, kind, e->status, e->type, e->param, e->msg) < 0)
		abort();
	check_json(b.ptr, b.len);
	ig_buf_free(&b);
}

static void parse_one(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
		      size_t len)
{
	struct ig_sim_request r;
	struct ig_sim_error e;
	if (ig_sim_parse_request(c, kind, body, len, &r, &e) == 0)
		check_accepted(c, &r, body, len);
	else
		check_refused(c, kind, &e);
	ig_sim_request_free(&r);
}

/* /tokenize and /detokenize bodies; the texts table lives across inputs,
 * as it does in a server. */
static void parse_tokenizer(const struct ig_sim_config *c, bool de, const char *body, size_t len)
{
	static struct ig_sim_vocab *vocab;
	struct ig_sim_request r = {0};
	struct ig_sim_error e;
	struct ig_buf texts = {0}, out = {0};
	bool strs = false;
	int rc;
	if (!vocab && !(vocab = ig_sim_vocab_new()))
		abort();
	ig_buf_init(&texts, (size_t)1 << 26);
	r.texts = &texts;
	rc = de ? ig_sim_parse_detokenize(c, body, len, &r, &e)
		: ig_sim_parse_tokenize(c, body, len, &r, &strs, &e);
	if (rc == 0) {
		const uint64_t *ids = (const uint64_t *)(const void *)r.ids.ptr;
		size_t n = ig_sim_request_nids(&r);
		if (!r.name.len || (!de && n != (size_t)r.prompt_tokens))
			abort();
		for (size_t i = 0; de && i < n; i++)
			if (ids[i] >= IG_SIM_VOCAB)
				abort();
		if ((de ? ig_sim_detokenize_answer(vocab, &r, &out)
			: ig_sim_tokenize_answer(c, vocab, &r, &texts, strs, &out)) < 0)
			abort();
		check_json(out.ptr, out.len);
	} else {
		check_refused(c, IG_SIM_COMPLETION, &e);
	}
	ig_sim_request_free(&r);
	ig_buf_free(&texts);
	ig_buf_free(&out);
}

static void fuzz_requests(const char *p, size_t len, unsigned flags)
{
	static const char ops[] = {'c', 'h', 'r', 'e', 'm'};
	static const enum ig_sim_kind kinds[] = {IG_SIM_COMPLETION, IG_SIM_CHAT, IG_SIM_RESPONSES,
						 IG_SIM_EMBEDDINGS, IG_SIM_MESSAGES};
	static struct ig_sim_config cfg[2];
	static bool ready[2];
	const char *end = p + len;
	int v = (flags & F_V08) != 0;
	char err[512];

	if (!ready[v]) {
		int argc = (int)(sizeof sim_argv / sizeof sim_argv[0]);
		sim_argv[argc - 1] = v ? "0.8" : "latest";
		ig_sim_config_init(&cfg[v]);
		if (ig_sim_parse_args(&cfg[v], argc, sim_argv, err, sizeof err) != 0)
			abort();
		ready[v] = true;
	}
	for (size_t n = 0; p < end && n < MAX_REQUESTS; n++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t seg = nul ? (size_t)(nul - p) : (size_t)(end - p);
		if (seg) {
			/* Each body gets its own exact-size copy, so that reading past
			 * it shows up under ASan. */
			size_t blen = seg - 1;
			char *body = malloc(blen ? blen : 1);
			if (!body)
				abort();
			memcpy(body, p + 1, blen);
			bool any = !memchr(ops, p[0], sizeof ops) && p[0] != 't' && p[0] != 'd';
			for (size_t k = 0; k < sizeof ops; k++)
				if (p[0] == ops[k] || any)
					parse_one(&cfg[v], kinds[k], body, blen);
			if (p[0] == 't' || any)
				parse_tokenizer(&cfg[v], false, body, blen);
			if (p[0] == 'd' || any)
				parse_tokenizer(&cfg[v], true, body, blen);
			free(body);
		}
		p += seg + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned flags = data[0];
	char *copy = malloc(size);
	if (!copy)
		abort();
	/* The payload, NUL-terminated in place of the control byte. */
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';

	ig_log_level = IG_LOG_ERROR;
	switch (flags % 8) {
	case 0:
		fuzz_lora_item(copy);
		break;
	case 1:
		fuzz_args(copy, size - 1);
		break;
	case 2:
		fuzz_tokens(copy, size - 1);
		break;
	default:
		fuzz_requests(copy, size - 1, flags);
		break;
	}
	free(copy);
	return 0;
}
