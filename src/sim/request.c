/* Request bodies: the checks vLLM makes on /v1/completions,
 * /v1/chat/completions, /v1/responses, /v1/embeddings and /v1/messages
 * (same statuses, same messages), the prompt's token count and ids, the
 * model name and the context length. Pure: it reads the configuration and
 * the body and touches nothing else, so that the unit tests and the fuzzer
 * reach it without a server. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "sim/sim.h"

/* ---- errors ------------------------------------------------------------------------ */

static int reject(struct ig_sim_error *e, int status, const char *type, const char *param,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int vreject(struct ig_sim_error *e, int status, const char *type, const char *param,
		   const char *fmt, va_list ap)
{
	e->status = status;
	e->type = type;
	e->param = param;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	return -1;
}

static int reject(struct ig_sim_error *e, int status, const char *type, const char *param,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreject(e, status, type, param, fmt, ap);
	va_end(ap);
	return -1;
}

static int bad_request(struct ig_sim_error *e, const char *param, const char *msg)
{
	return reject(e, 400, "BadRequestError", param, "%s", msg);
}

/* What vLLM's request models refuse before any serving code runs (pydantic:
 * a malformed body, a missing or mistyped field, a model validator): a
 * 400 that newer releases type "Bad Request" with the location of the
 * fault as param (finish_error). field: the member at fault, NULL for a
 * check of the whole request. */
static int invalid(struct ig_sim_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int invalid(struct ig_sim_error *e, const char *field, const char *fmt, ...)
{
	va_list ap;
	e->validation = true;
	va_start(ap, fmt);
	vreject(e, 400, "BadRequestError", field, fmt, ap);
	va_end(ap);
	return -1;
}

/* A validation error in the latest release's words: the HTTP phrase as
 * type and FastAPI's location, "body" and the field, as param
 * (vllm-api.md §4.1, §4.2); 0.8 writes no param at all. */
static int finish_error(const struct ig_sim_config *c, struct ig_sim_error *e)
{
	if (!e->validation || c->version == IG_SIM_V_0_8)
		return -1;
	e->type = "Bad Request";
	snprintf(e->param_buf, sizeof e->param_buf, "body%s%s", e->param ? "." : "",
		 e->param ? e->param : "");
	e->param = e->param_buf;
	return -1;
}

/* ---- JSON field helpers ------------------------------------------------------------ */

/* Optional members: 0 absent or null, 1 present and well typed, -1 wrong type. */
/* Whether o has key, not null. */
static bool opt_get(struct ig_json_value o, const char *key, struct ig_json_value *v)
{
	return ig_json_get(o, key, v) == 0 && v->type != IG_JSON_NULL;
}

static int opt_member(struct ig_json_value o, const char *key, enum ig_json_type type,
		      struct ig_json_value *v)
{
	if (!opt_get(o, key, v))
		return 0;
	return v->type == type ? 1 : -1;
}

/* vLLM's request models are pydantic's, validated in its lax mode (what
 * FastAPI uses), which converts some values of another JSON type
 * (pydantic's conversion table): a string of digits, or a boolean, for an
 * integer; a numeric string, or a boolean, for a number; 0 or 1, or one of
 * twelve words, for a boolean. A string with an escape is not read. */
static bool lax_text(struct ig_json_value v, struct ig_str *out)
{
	if (v.type != IG_JSON_STRING || v.raw.len < 2 || memchr(v.raw.ptr, '\\', v.raw.len))
		return false;
	*out = (struct ig_str){v.raw.ptr + 1, v.raw.len - 2};
	return true;
}

/* A boolean (0 or 1), or [+-]digits in int64's range. */
static bool lax_int(struct ig_json_value v, int64_t *out)
{
	struct ig_str t;
	uint64_t u;
	if (v.type == IG_JSON_BOOL) {
		*out = ig_json_bool(v) == 1;
		return true;
	}
	if (!lax_text(v, &t) || !t.len)
		return false;
	bool neg = t.ptr[0] == '-';
	if (t.ptr[0] == '-' || t.ptr[0] == '+')
		t.ptr++, t.len--;
	if (ig_str_to_u64(t, &u) < 0 || u > (uint64_t)INT64_MAX + neg)
		return false;
	*out = neg ? (int64_t)(0 - u) : (int64_t)u;
	return true;
}

/* A boolean (0 or 1), or a decimal number: [+-]digits[.digits][e[+-]digits],
 * finite. */
static bool lax_double(struct ig_json_value v, double *out)
{
	struct ig_str t;
	char buf[64];
	if (v.type == IG_JSON_BOOL) {
		*out = ig_json_bool(v) == 1;
		return true;
	}
	if (!lax_text(v, &t) || !t.len || t.len >= sizeof buf)
		return false;
	for (size_t i = 0; i < t.len; i++)
		if (!strchr("0123456789+-.eE", t.ptr[i]))
			return false;
	memcpy(buf, t.ptr, t.len);
	buf[t.len] = '\0';
	char *end;
	errno = 0;
	double d = strtod(buf, &end);
	if (end != buf + t.len || errno || !isfinite(d))
		return false;
	*out = d;
	return true;
}

static bool lax_bool(struct ig_json_value v, bool *out)
{
	static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
	static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
	struct ig_str t;
	double d;
	if (v.type == IG_JSON_NUMBER && ig_json_double(v, &d) == 0 && (d == 0 || d == 1)) {
		*out = d == 1;
		return true;
	}
	if (!lax_text(v, &t))
		return false;
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (ig_str_ieq(t, ig_str_from(no[i]))) {
			*out = false;
			return true;
		}
		if (ig_str_ieq(t, ig_str_from(yes[i]))) {
			*out = true;
			return true;
		}
	}
	return false;
}

static int opt_int(struct ig_json_value o, const char *key, int64_t *out)
{
	struct ig_json_value v;
	if (!opt_get(o, key, &v))
		return 0;
	if (v.type == IG_JSON_NUMBER)
		return ig_json_int64(v, out) < 0 ? -1 : 1;
	return lax_int(v, out) ? 1 : -1;
}

static int opt_bool(struct ig_json_value o, const char *key, bool *out)
{
	struct ig_json_value v;
	if (!opt_get(o, key, &v))
		return 0;
	if (v.type == IG_JSON_BOOL) {
		*out = ig_json_bool(v) == 1;
		return 1;
	}
	return lax_bool(v, out) ? 1 : -1;
}

static int opt_double(struct ig_json_value o, const char *key, double *out)
{
	struct ig_json_value v;
	if (!opt_get(o, key, &v))
		return 0;
	if (v.type == IG_JSON_NUMBER)
		return ig_json_double(v, out) < 0 ? -1 : 1;
	return lax_double(v, out) ? 1 : -1;
}

/* ---- prompt ids ---------------------------------------------------------------------- */

/* A token's text beside its id, when the request keeps them. */
static void text_push(struct ig_sim_request *r, struct ig_str text)
{
	uint32_t len = text.len < UINT32_MAX ? (uint32_t)text.len : 0;
	if (r->texts && !r->ids_truncated &&
	    (ig_buf_append(r->texts, &len, sizeof len) < 0 ||
	     ig_buf_append(r->texts, text.ptr, len) < 0))
		r->ids_truncated = true;
}

static void ids_push(struct ig_sim_request *r, uint64_t id)
{
	if (!r->ids_truncated && ig_buf_append(&r->ids, &id, sizeof id) < 0)
		r->ids_truncated = true;
}

static void ids_push_special(struct ig_sim_request *r, const char *token)
{
	text_push(r, ig_str_from(token));
	ids_push(r, ig_sim_token_id(token));
}

/* Tokenizes text onto the ids; returns its token count. */
static size_t ids_push_text(struct ig_sim_request *r, struct ig_str text)
{
	size_t n = ig_sim_tokenize(text, NULL, 0);
	if (n == 0)
		return 0; /* nothing to add (and the buffer may have no memory yet) */
	if (r->ids_truncated || ig_buf_reserve(&r->ids, n * sizeof(uint64_t)) < 0) {
		r->ids_truncated = true;
		return n;
	}
	if (r->texts)
		for (size_t i = 0, at = 0, k; i < n; i += k) {
			struct ig_str spans[64];
			k = ig_sim_token_spans((struct ig_str){text.ptr + at, text.len - at}, spans,
					       64);
			if (k == 0)
				break;
			for (size_t j = 0; j < k; j++)
				text_push(r, spans[j]);
			at = (size_t)(spans[k - 1].ptr + spans[k - 1].len - text.ptr);
		}
	ig_sim_tokenize(text, (uint64_t *)(void *)(r->ids.ptr + r->ids.len), n);
	r->ids.len += n * sizeof(uint64_t);
	return n;
}

size_t ig_sim_request_nids(const struct ig_sim_request *r)
{
	return r->ids.len / sizeof(uint64_t);
}

/* ---- prompts ------------------------------------------------------------------------- */

/* Tokens of one prompt given as a string or a list of token ids (an
 * embeddings input, or a completion prompt). -1 for anything else. */
static int text_or_ids_tokens(struct ig_json_value p, long *out, struct ig_sim_request *r)
{
	struct ig_buf tmp = {0};
	struct ig_json_value e;
	size_t pos = 0;
	int rc = -1;
	if (p.type == IG_JSON_STRING) {
		if (ig_json_string(p, &tmp) == 0) {
			*out = (long)ids_push_text(r, ig_buf_str(&tmp));
			rc = 0;
		}
	} else if (p.type == IG_JSON_ARRAY && ig_json_array_next(p, &pos, &e) == 1 &&
		   e.type == IG_JSON_NUMBER) {
		long n = 0;
		int64_t lo = 0, hi = 0;
		rc = 0;
		do {
			int64_t id = 0;
			if (e.type != IG_JSON_NUMBER || ig_json_int64(e, &id) < 0)
				rc = -1;
			text_push(r, ig_str_from(ig_sim_word((uint64_t)id)));
			ids_push(r, (uint64_t)id);
			lo = n == 0 || id < lo ? id : lo;
			hi = n == 0 || id > hi ? id : hi;
			n++;
		} while (ig_json_array_next(p, &pos, &e) == 1);
		*out = n;
		/* The engine names the largest id when it is past the vocabulary. */
		if (!r->oov && (hi >= (int64_t)IG_SIM_VOCAB || lo < 0)) {
			r->oov = true;
			r->oov_id = hi >= (int64_t)IG_SIM_VOCAB ? hi : lo;
		}
	}
	ig_buf_free(&tmp);
	return rc;
}

/* The text `echo` repeats: the prompt string, or a list of token ids as
 * the words their ids name (the toy tokenizer's ids have no text). */
static int echo_text(struct ig_json_value p, struct ig_sim_request *r)
{
	struct ig_json_value e;
	size_t pos = 0;
	ig_buf_init(&r->echo_text, (size_t)1 << 28);
	if (p.type == IG_JSON_ARRAY && ig_json_array_next(p, &pos, &e) == 1 &&
	    e.type == IG_JSON_STRING)
		p = e;
	if (p.type == IG_JSON_STRING)
		return ig_json_string(p, &r->echo_text);
	pos = 0;
	while (ig_json_array_next(p, &pos, &e) == 1) {
		int64_t id = 0;
		(void)ig_json_int64(e, &id);
		if (ig_buf_append_cstr(&r->echo_text, ig_sim_word((uint64_t)id)) < 0)
			return -1;
	}
	return 0;
}

/* Prompt `index` of a completion's `prompt`: a string or a list of token
 * ids is one prompt; a list of strings or of lists of ids lists several,
 * as vLLM batches them (*count of them; 0 when the list is empty or its
 * items are not all of one of those kinds). */
static struct ig_json_value pick_prompt(struct ig_json_value p, long index, long *count)
{
	struct ig_json_value e, picked = {0};
	size_t pos = 0;
	*count = 1;
	if (p.type != IG_JSON_ARRAY || ig_json_array_next(p, &pos, &e) != 1 ||
	    (e.type != IG_JSON_STRING && e.type != IG_JSON_ARRAY))
		return p;
	enum ig_json_type kind = e.type;
	long n = 0;
	pos = 0;
	while (ig_json_array_next(p, &pos, &e) == 1) {
		if (e.type != kind) {
			*count = 0;
			return picked;
		}
		if (n++ == index)
			picked = e;
	}
	*count = n;
	return picked;
}

/* Tokens of a string value; anything else counts nothing. */
static long string_tokens(struct ig_json_value v, struct ig_sim_request *r)
{
	struct ig_buf tmp = {0};
	long n = 0;
	if (v.type == IG_JSON_STRING && ig_json_string(v, &tmp) == 0)
		n = (long)ids_push_text(r, ig_buf_str(&tmp));
	ig_buf_free(&tmp);
	return n;
}

/* Tokens of a value written out as JSON text (tool definitions, a tool
 * call's arguments): every word and symbol of it. */
static long json_text_tokens(struct ig_json_value v, struct ig_sim_request *r)
{
	return (long)ids_push_text(r, v.raw);
}

/* Tokens of one message's content: a string or a list of parts, of which
 * the text-bearing ones count: OpenAI's {"type":"text"|"input_text"|
 * "output_text","text":..}, Anthropic's text and thinking blocks, tool_use
 * (its input as JSON text) and tool_result (a string or blocks). Images
 * and other parts count nothing. */
static int content_tokens(struct ig_json_value c, long *out, struct ig_sim_request *r)
{
	struct ig_json_value part, v;
	size_t pos = 0;
	*out = 0;
	if (c.type == IG_JSON_NULL)
		return 0;
	if (c.type == IG_JSON_STRING) {
		*out = string_tokens(c, r);
		return 0;
	}
	if (c.type != IG_JSON_ARRAY)
		return -1;
	while (ig_json_array_next(c, &pos, &part) == 1) {
		if (part.type != IG_JSON_OBJECT)
			return -1;
		if (ig_json_get(part, "text", &v) == 0)
			*out += string_tokens(v, r);
		if (ig_json_get(part, "thinking", &v) == 0)
			*out += string_tokens(v, r);
		if (ig_json_get(part, "input", &v) == 0 && v.type == IG_JSON_OBJECT)
			*out += json_text_tokens(v, r);
		/* A tool result's content: what it holds counts, and what does
		 * not fit the shapes is ignored, not refused. */
		if (ig_json_get(part, "content", &v) == 0 && v.type != IG_JSON_OBJECT) {
			long t = 0;
			content_tokens(v, &t, r);
			*out += t;
		}
	}
	return 0;
}

/* The chat template's frame around one turn: a start marker, the role and
 * a separator before the content, an end marker after it (together
 * IG_SIM_CHAT_MSG_OVERHEAD tokens). */
static void turn_open(struct ig_sim_request *r, const char *role)
{
	ids_push_special(r, "<|im_start|>");
	ids_push_special(r, role);
	ids_push_special(r, "\n");
}

static void turn_close(struct ig_sim_request *r)
{
	ids_push_special(r, "<|im_end|>");
}

/* The prompt's end: the opening of the assistant's turn. */
static long reply_open(struct ig_sim_request *r)
{
	turn_open(r, "assistant");
	return IG_SIM_CHAT_REPLY_OVERHEAD;
}

/* One turn whose role is a JSON string (or `fallback` when it is not one)
 * and whose content is a chat content value, closed unless `open` (a
 * final message the answer continues: no end marker). */
static int push_open_turn(struct ig_sim_request *r, struct ig_json_value role, const char *fallback,
			  struct ig_json_value content, long *n, bool open)
{
	struct ig_buf name = {0};
	long t = 0;
	int rc = 0;
	ig_buf_init(&name, 256);
	const char *rs =
	    role.type == IG_JSON_STRING && ig_json_string(role, &name) == 0 && ig_buf_cstr(&name)
		? name.ptr
		: fallback;
	turn_open(r, rs);
	if (content.type != IG_JSON_INVALID && content_tokens(content, &t, r) < 0)
		rc = -1;
	if (!open)
		turn_close(r);
	*n += t + IG_SIM_CHAT_MSG_OVERHEAD - (open ? 1 : 0);
	ig_buf_free(&name);
	return rc;
}

static int push_turn(struct ig_sim_request *r, struct ig_json_value role, const char *fallback,
		     struct ig_json_value content, long *n)
{
	return push_open_turn(r, role, fallback, content, n, false);
}

/* Tool definitions, which chat templates write into the prompt ahead of
 * the conversation: a turn of their own holding their JSON text. An
 * absent, null or empty list adds nothing; anything but a list is -1. */
static int tools_tokens(struct ig_json_value root, long *n, struct ig_sim_request *r)
{
	struct ig_json_value tools, first;
	size_t pos = 0;
	if (ig_json_get(root, "tools", &tools) < 0 || tools.type == IG_JSON_NULL)
		return 0;
	if (tools.type != IG_JSON_ARRAY)
		return -1;
	if (ig_json_array_next(tools, &pos, &first) == 0)
		return 0;
	turn_open(r, "tools");
	*n += json_text_tokens(tools, r) + IG_SIM_CHAT_MSG_OVERHEAD;
	turn_close(r);
	return 0;
}

/* A chat prompt as a chat template lays it out: per message a start
 * marker, the role, a separator, the content and an end marker; then,
 * with add_generation_prompt (reply), the opening of the assistant's
 * turn; with continue_final_message (open_last), the last message left
 * without its end marker for the answer to go on with. */
static int messages_tokens(struct ig_json_value msgs, long *out, struct ig_sim_request *r,
			   bool reply, bool open_last)
{
	struct ig_json_value m, next, role, content;
	size_t pos = 0;
	long n = *out, count = 0;
	int rc = 0;
	bool more = ig_json_array_next(msgs, &pos, &m) == 1;
	while (rc == 0 && more) {
		if (m.type != IG_JSON_OBJECT || ig_json_get(m, "role", &role) < 0 ||
		    role.type != IG_JSON_STRING)
			return -1;
		if (ig_json_get(m, "content", &content) < 0)
			content.type = IG_JSON_INVALID;
		more = ig_json_array_next(msgs, &pos, &next) == 1;
		rc = push_open_turn(r, role, "?", content, &n, open_last && !more);
		count++;
		m = next;
	}
	*out = n + (reply ? reply_open(r) : 0);
	return rc == 0 && count ? 0 : -1;
}

/* add_generation_prompt (default gen_default: true for chat and
 * /tokenize, false for the embeddings' chat form) and
 * continue_final_message, which vLLM's request models refuse together. */
static int read_template_switches(struct ig_json_value root, bool gen_default, bool *gen,
				  bool *cont, struct ig_sim_error *e)
{
	*gen = gen_default;
	*cont = false;
	if (opt_bool(root, "add_generation_prompt", gen) < 0)
		return invalid(e, "add_generation_prompt",
			       "'add_generation_prompt' must be a boolean.");
	if (opt_bool(root, "continue_final_message", cont) < 0)
		return invalid(e, "continue_final_message",
			       "'continue_final_message' must be a boolean.");
	if (*gen && *cont)
		return invalid(e, NULL,
			       "Cannot set both `continue_final_message` and "
			       "`add_generation_prompt` to True.");
	return 0;
}

/* The modality of a content part a text-only model cannot take (images,
 * audio, video), or NULL for text and the like. */
static const char *media_modality(struct ig_json_value part)
{
	static const struct {
		const char *type, *modality;
	} media[] = {
	    {"image_url", "image"},   {"image_embeds", "image"}, {"image_pil", "image"},
	    {"input_image", "image"}, {"input_audio", "audio"},	 {"audio_url", "audio"},
	    {"video_url", "video"},
	};
	struct ig_json_value type;
	if (part.type != IG_JSON_OBJECT || ig_json_get(part, "type", &type) < 0)
		return NULL;
	for (size_t i = 0; i < sizeof media / sizeof media[0]; i++)
		if (ig_json_string_eq(type, media[i].type))
			return media[i].modality;
	return NULL;
}

/* The Hugging Face model_type of the --model name, as vLLM 0.8 names it
 * when a text-only model is handed media; Qwen2 (the seed's) otherwise. */
static const char *model_type(const char *model)
{
	static const char *const types[][2] = {
	    {"qwen3", "qwen3"},	    {"qwen", "qwen2"},	{"llama", "llama"},
	    {"mistral", "mistral"}, {"gemma", "gemma"}, {"phi", "phi3"},
	};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcasestr(model, types[i][0]))
			return types[i][1];
	return "qwen2";
}

/* Media in a chat (vllm-api.md §2: a 400 on a text-only model, which the
 * simulator's model is), in each release's words. */
static int check_media(const struct ig_sim_config *c, struct ig_json_value msgs,
		       struct ig_sim_error *e)
{
	struct ig_json_value m, content, part;
	size_t pos = 0;
	while (ig_json_array_next(msgs, &pos, &m) == 1) {
		size_t at = 0;
		if (ig_json_get(m, "content", &content) < 0 || content.type != IG_JSON_ARRAY)
			continue;
		while (ig_json_array_next(content, &at, &part) == 1) {
			const char *modality = media_modality(part);
			if (!modality)
				continue;
			if (c->version == IG_SIM_V_0_8)
				return reject(e, 400, "BadRequestError", NULL,
					      "Unknown %s model type: %s", modality,
					      model_type(c->model));
			return reject(e, 400, "BadRequestError", NULL,
				      "%s is not a multimodal model None", c->model);
		}
	}
	return 0;
}

/* ---- fields ---------------------------------------------------------------------------- */

static int read_model(struct ig_json_value root, struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value v;
	int rc = opt_member(root, "model", IG_JSON_STRING, &v);
	if (rc < 0 || (rc == 1 && ig_json_string(v, &r->model) < 0))
		return invalid(e, "model", "'model' must be a string.");
	return 0;
}

/* The ranges vLLM's SamplingParams checks (_verify_args): a value outside
 * is a 400 with its message, as the server turns that ValueError into. */
static int check_sampling_ranges(struct ig_json_value root, struct ig_sim_error *e)
{
	static const struct {
		const char *key;
		double lo, hi;
		bool lo_open, param;
		const char *range;
	} num[] = {
	    {"temperature", 0, HUGE_VAL, false, true, "non-negative"},
	    {"top_p", 0, 1, true, true, "in (0, 1]"},
	    {"min_p", 0, 1, false, false, "in [0, 1]"},
	    {"presence_penalty", -2, 2, false, false, "in [-2, 2]"},
	    {"frequency_penalty", -2, 2, false, false, "in [-2, 2]"},
	    {"repetition_penalty", 0, HUGE_VAL, true, false, "greater than zero"},
	};
	char buf[40];
	for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
		double v;
		int rc = opt_double(root, num[i].key, &v);
		if (rc < 0)
			return invalid(e, num[i].key, "'%s' must be a number.", num[i].key);
		if (rc == 1 &&
		    (v < num[i].lo || (num[i].lo_open && v == num[i].lo) || v > num[i].hi)) {
			ig_sim_py_float(buf, sizeof buf, v);
			return reject(e, 400, "BadRequestError", num[i].param ? num[i].key : NULL,
				      "%s must be %s, got %s.", num[i].key, num[i].range, buf);
		}
	}
	int64_t k = 0;
	if (opt_int(root, "top_k", &k) < 0)
		return invalid(e, "top_k", "'top_k' must be an integer.");
	if (k < -1)
		return reject(e, 400, "BadRequestError", NULL,
			      "top_k must be 0 (disable), or at least 1, got %lld.", (long long)k);
	return 0;
}

/* What every generating API reads: streaming and sampling. */
static int read_sampling(struct ig_json_value root, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	if (opt_bool(root, "stream", &r->stream) < 0)
		return invalid(e, "stream", "'stream' must be a boolean.");
	if (opt_bool(root, "ignore_eos", &r->ignore_eos) < 0)
		return invalid(e, "ignore_eos", "'ignore_eos' must be a boolean.");
	if (check_sampling_ranges(root, e) < 0)
		return -1;
	int rc = opt_double(root, "temperature", &r->temperature);
	if (rc < 0)
		return invalid(e, "temperature", "'temperature' must be a number.");
	r->has_temp = rc == 1;
	rc = opt_int(root, "seed", &r->seed);
	if (rc < 0)
		return invalid(e, "seed", "'seed' must be an integer.");
	r->has_seed = rc == 1;
	if (opt_int(root, "min_tokens", &r->min_tokens) < 0)
		return invalid(e, "min_tokens", "'min_tokens' must be an integer.");
	if (r->min_tokens < 0)
		return reject(e, 400, "BadRequestError", "min_tokens",
			      "min_tokens must be greater than or equal to 0, got %lld.",
			      (long long)r->min_tokens);
	return 0;
}

/* What completions and chat completions share besides sampling. */
static int read_openai_stream(struct ig_json_value root, struct ig_sim_request *r,
			      struct ig_sim_error *e)
{
	struct ig_json_value v;
	int rc = opt_member(root, "stream_options", IG_JSON_OBJECT, &v);
	if (rc < 0)
		return invalid(e, "stream_options", "'stream_options' must be an object.");
	if (rc == 1) {
		/* vLLM refuses `data.get("stream_options") and not stream`: an
		 * empty object is falsy there and passes. */
		struct ig_json_value k, m;
		size_t pos = 0;
		if (!r->stream && ig_json_object_next(v, &pos, &k, &m) == 1)
			return invalid(e, NULL,
				       "Stream options can only be defined when `stream=True`.");
		/* {} means include_usage true, as in vLLM's StreamOptions. */
		r->include_usage = true;
		if (opt_bool(v, "include_usage", &r->include_usage) < 0 ||
		    opt_bool(v, "continuous_usage_stats", &r->continuous_usage) < 0)
			return invalid(e, "stream_options",
				       "'include_usage' and 'continuous_usage_stats' must be "
				       "booleans.");
		/* vLLM sends the running usage only when the final one is on. */
		r->continuous_usage = r->continuous_usage && r->include_usage;
	}
	int64_t n = 1;
	if (opt_int(root, "n", &n) < 0)
		return invalid(e, "n", "'n' must be an integer.");
	if (n < 1)
		return reject(e, 400, "BadRequestError", "n", "n must be at least 1, got %lld.",
			      (long long)n);
	if (n > IG_SIM_MAX_N)
		return reject(e, 400, "BadRequestError", "n",
			      "The simulator supports n up to %d, got %lld.", IG_SIM_MAX_N,
			      (long long)n);
	r->n = (long)n;
	/* SamplingParams' checks of best_of (vLLM 0.8; newer releases keep
	 * them and their V1 engine refuses any best_of but 1). */
	int64_t best_of;
	rc = opt_int(root, "best_of", &best_of);
	if (rc < 0)
		return invalid(e, "best_of", "'best_of' must be an integer.");
	if (rc == 0)
		return 0;
	if (best_of < 1)
		return reject(e, 400, "BadRequestError", NULL,
			      "best_of must be at least 1, got %lld", (long long)best_of);
	if (best_of < n)
		return reject(e, 400, "BadRequestError", NULL,
			      "best_of must be greater than or equal to n, got n=%lld and "
			      "best_of=%lld.",
			      (long long)n, (long long)best_of);
	if (best_of > IG_SIM_MAX_N)
		return reject(e, 400, "BadRequestError", "best_of",
			      "The simulator supports best_of up to %d, got %lld.", IG_SIM_MAX_N,
			      (long long)best_of);
	r->best_of = (long)best_of;
	return 0;
}

/* The most stop strings a request may give, and their bytes in all. */
#define MAX_STOP 64
#define MAX_STOP_BYTES 65536
/* The most stop_token_ids a request may give. */
#define MAX_STOP_IDS 65536

/* `stop`: a string or a list of strings (null or absent: none) and
 * include_stop_str_in_output. vLLM refuses an empty stop string. */
static int read_stop_list(struct ig_json_value root, const char *key, struct ig_sim_request *r,
			  struct ig_sim_error *e)
{
	struct ig_json_value v, one;
	size_t pos = 0;
	if (ig_json_get(root, key, &v) < 0 || v.type == IG_JSON_NULL)
		return 0;
	ig_buf_init(&r->stop, MAX_STOP_BYTES);
	bool list = v.type == IG_JSON_ARRAY;
	if (!list && v.type != IG_JSON_STRING)
		return invalid(e, key, "'%s' must be a string or a list of strings.", key);
	while (list ? ig_json_array_next(v, &pos, &one) == 1 : r->nstop == 0) {
		if (!list)
			one = v;
		size_t at = r->stop.len;
		if (one.type != IG_JSON_STRING || ig_json_string(one, &r->stop) < 0)
			return invalid(e, key, "'%s' must be a string or a list of strings.", key);
		if (r->stop.len == at)
			return bad_request(e, key, "stop cannot contain an empty string.");
		if (memchr(r->stop.ptr + at, '\0', r->stop.len - at) || r->nstop == MAX_STOP ||
		    ig_buf_append(&r->stop, "", 1) < 0)
			return reject(e, 400, "BadRequestError", key,
				      "'%s' holds too many strings.", key);
		r->nstop++;
	}
	return 0;
}

/* vLLM's `stop_token_ids`: a list of integers (pydantic's list[int]; null
 * or absent: none). Any integer is taken: one outside the vocabulary is
 * never generated, so it never stops anything. */
static int read_stop_ids(struct ig_json_value root, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	struct ig_json_value v, one;
	size_t pos = 0;
	if (ig_json_get(root, "stop_token_ids", &v) < 0 || v.type == IG_JSON_NULL)
		return 0;
	if (v.type != IG_JSON_ARRAY)
		return invalid(e, "stop_token_ids", "'stop_token_ids' must be a list of integers.");
	ig_buf_init(&r->stop_ids, MAX_STOP_IDS * sizeof(int64_t));
	while (ig_json_array_next(v, &pos, &one) == 1) {
		int64_t id;
		if (one.type != IG_JSON_NUMBER || ig_json_int64(one, &id) < 0)
			return invalid(e, "stop_token_ids",
				       "'stop_token_ids' must be a list of integers.");
		if (ig_buf_append(&r->stop_ids, &id, sizeof id) < 0)
			return reject(e, 400, "BadRequestError", "stop_token_ids",
				      "'stop_token_ids' holds more than %d ids.", MAX_STOP_IDS);
		r->nstop_ids++;
	}
	return 0;
}

static int read_stop(struct ig_json_value root, struct ig_sim_request *r, struct ig_sim_error *e)
{
	if (opt_bool(root, "include_stop_str_in_output", &r->include_stop) < 0)
		return invalid(e, "include_stop_str_in_output",
			       "'include_stop_str_in_output' must be a boolean.");
	if (read_stop_ids(root, r, e) < 0)
		return -1;
	return read_stop_list(root, "stop", r, e);
}

/* Completions' `logprobs` (an integer: alternatives per token) and chat's
 * `logprobs` (a boolean) with `top_logprobs`, against --max-logprobs, with
 * vLLM's messages. */
static int read_logprobs(const struct ig_sim_config *c, struct ig_json_value root,
			 struct ig_sim_request *r, struct ig_sim_error *e)
{
	int64_t n = -2;
	bool on = false;
	r->lp_top = -1;
	if (r->kind == IG_SIM_COMPLETION) {
		if (opt_int(root, "logprobs", &n) < 0)
			return invalid(e, "logprobs", "'logprobs' must be an integer.");
		on = n != -2;
		if (on && n < -1)
			return invalid(e, NULL, "logprobs must be non-negative, got %lld.",
				       (long long)n);
	} else {
		if (opt_bool(root, "logprobs", &on) < 0)
			return invalid(e, "logprobs", "'logprobs' must be a boolean.");
		int rc = opt_int(root, "top_logprobs", &n);
		if (rc < 0)
			return invalid(e, "top_logprobs", "'top_logprobs' must be an integer.");
		if (rc == 0)
			n = 0;
		if (n < 0)
			return invalid(e, NULL, "`top_logprobs` must be a positive value.");
		if (n > 0 && !on)
			return invalid(
			    e, NULL, "when using `top_logprobs`, `logprobs` must be set to true.");
	}
	if (!on)
		return 0;
	if (n == -1) /* all of them */
		n = IG_SIM_VOCAB;
	if (n > c->max_logprobs)
		return reject(
		    e, 400, "BadRequestError", "logprobs",
		    "Requested sample logprobs of %lld, which is greater than max allowed: "
		    "%ld",
		    (long long)n, c->max_logprobs);
	/* The generator has IG_SIM_WORDS words to offer as alternatives. */
	r->lp_top = (int)(n < IG_SIM_WORDS ? n : IG_SIM_WORDS);
	return 0;
}

/* A logit_bias key as Python's int() reads it: optional spaces and sign,
 * then digits. -1 when it is not an integer. */
static int bias_token(struct ig_str k, int64_t *out)
{
	struct ig_str t = ig_str_trim(k);
	if (!t.len)
		return -1; /* (an empty key may have no memory behind it) */
	bool neg = t.ptr[0] == '-';
	size_t sign = t.ptr[0] == '-' || t.ptr[0] == '+' ? 1 : 0;
	uint64_t v;
	if (ig_str_to_u64((struct ig_str){t.ptr + sign, t.len - sign}, &v) < 0 || v > INT64_MAX)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Completions' and chat's logit_bias: token ids (as strings) to biases,
 * checked as vLLM does: keys that are not integers (the request's
 * conversion), then ids outside the vocabulary (the engine's, all of them
 * listed). The biases are accepted (vLLM clamps them to [-100, 100]); the
 * simulated text does not follow them. */
static int read_logit_bias(struct ig_json_value root, struct ig_sim_error *e)
{
	struct ig_json_value lb, k, v;
	if (ig_json_get(root, "logit_bias", &lb) < 0 || lb.type == IG_JSON_NULL)
		return 0;
	if (lb.type != IG_JSON_OBJECT)
		return invalid(e, "logit_bias",
			       "'logit_bias' must be an object of token ids to numbers.");
	char bad[256] = "";
	size_t pos = 0, nbad = 0, at = 0;
	struct ig_buf key = {0};
	int rc = 0;
	while (rc == 0 && ig_json_object_next(lb, &pos, &k, &v) == 1) {
		double bias;
		int64_t id;
		ig_buf_reset(&key);
		if (v.type != IG_JSON_NUMBER || ig_json_double(v, &bias) < 0) {
			rc = invalid(e, "logit_bias", "'logit_bias' values must be numbers.");
		} else if (ig_json_string(k, &key) < 0 || bias_token(ig_buf_str(&key), &id) < 0) {
			rc = reject(e, 400, "BadRequestError", NULL,
				    "Found token_id `%.*s` in logit_bias but token_id must be an "
				    "integer or string representing an integer",
				    (int)(key.len < 64 ? key.len : 64), key.ptr ? key.ptr : "");
		} else if (id < 0 || id >= (int64_t)IG_SIM_VOCAB) {
			if (at + 24 < sizeof bad)
				at += (size_t)snprintf(bad + at, sizeof bad - at, "%s%lld",
						       nbad ? ", " : "", (long long)id);
			nbad++;
		}
	}
	ig_buf_free(&key);
	if (rc == 0 && nbad)
		rc = reject(e, 400, "BadRequestError", NULL,
			    "token_id(s) [%s%s] in logit_bias contain out-of-vocab token ids. "
			    "Vocabulary size: %u",
			    bad, at + 24 < sizeof bad ? "" : ", ...", IG_SIM_VOCAB);
	return rc;
}

/* vLLM's truncate_prompt_tokens (completions, chat, embeddings): the
 * prompt keeps its last N tokens, -1 the context's length; more than the
 * context is refused when the request is tokenized. */
static int truncation_limit(const struct ig_sim_config *c, struct ig_json_value root,
			    int64_t *limit, struct ig_sim_error *e)
{
	int64_t n;
	*limit = -1;
	int rc = opt_int(root, "truncate_prompt_tokens", &n);
	if (rc < 0)
		return invalid(e, "truncate_prompt_tokens",
			       "'truncate_prompt_tokens' must be an integer.");
	if (rc == 0)
		return 0;
	if (n < -1)
		return invalid(e, "truncate_prompt_tokens",
			       "truncate_prompt_tokens: Input should be greater than or equal "
			       "to -1");
	if (n > c->max_model_len)
		return reject(e, 400, "BadRequestError", NULL,
			      "truncate_prompt_tokens value (%lld) is greater than max_model_len "
			      "(%ld). Please, select a smaller truncation size.",
			      (long long)n, c->max_model_len);
	*limit = n == -1 ? c->max_model_len : n;
	return 0;
}

static int read_truncation(const struct ig_sim_config *c, struct ig_json_value root,
			   struct ig_sim_request *r, struct ig_sim_error *e)
{
	int64_t n;
	if (truncation_limit(c, root, &n, e) < 0)
		return -1;
	if (n < 0 || r->prompt_tokens <= n)
		return 0;
	r->prompt_tokens = (long)n;
	/* The prefix-cache keys follow: the prompt now starts later. Past
	 * the buffer's ceiling only its start was kept, so none is left. */
	size_t have = r->ids.len / sizeof(uint64_t);
	if (r->ids_truncated) {
		r->ids.len = 0;
	} else if (have > (size_t)n) {
		memmove(r->ids.ptr, r->ids.ptr + (have - (size_t)n) * sizeof(uint64_t),
			(size_t)n * sizeof(uint64_t));
		r->ids.len = (size_t)n * sizeof(uint64_t);
		/* The kept tokens' texts with them (prompt_logprobs). */
		size_t at = 0;
		struct ig_str t;
		for (size_t i = 0; i < have - (size_t)n && ig_sim_text_next(r->texts, &at, &t); i++)
			;
		if (r->texts)
			ig_buf_consume(r->texts, at);
	}
	return 0;
}

/* vLLM's `priority` (completions, chat, Responses, embeddings). */
static int read_priority(struct ig_json_value root, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	if (opt_int(root, "priority", &r->priority) < 0)
		return invalid(e, "priority", "'priority' must be an integer.");
	return 0;
}

/* A body's request_id longer than this is refused rather than kept. */
#define MAX_REQUEST_ID_BYTES 4096

/* What *asked holds when the request gave no number: nothing was said
 * (absent, or a chat-like API's null), or a completion's explicit null,
 * which vLLM's CompletionRequest tells from absent (absent is its default
 * 16; null leaves get_max_tokens the rest of the context). */
#define ASKED_NOTHING (-1)
#define ASKED_OPEN (-2)

/* The body's `request_id` (pydantic's str with a default: null is no
 * string either), decoded. */
static int read_request_id(struct ig_json_value root, struct ig_sim_request *r,
			   struct ig_sim_error *e)
{
	struct ig_json_value v;
	if (ig_json_get(root, "request_id", &v) < 0)
		return 0;
	ig_buf_init(&r->request_id, MAX_REQUEST_ID_BYTES);
	if (v.type != IG_JSON_STRING || ig_json_string(v, &r->request_id) < 0)
		return invalid(e, "request_id",
			       "'request_id' must be a string of at most %d bytes.",
			       MAX_REQUEST_ID_BYTES);
	return 0;
}

/* A max_tokens-like member into *asked (left alone when absent). */
static int read_max_tokens(struct ig_json_value root, const char *key, int64_t *asked,
			   struct ig_sim_error *e)
{
	int64_t mt;
	int rc = opt_int(root, key, &mt);
	if (rc < 0)
		return invalid(e, key, "'%s' must be an integer.", key);
	if (rc == 1 && mt < 1)
		return reject(e, 400, "BadRequestError", key,
			      "max_tokens must be at least 1, got %lld.", (long long)mt);
	if (rc == 1)
		*asked = mt;
	return 0;
}

/* cache_salt, as the request models' check_cache_salt_support (since
 * v0.9; 0.8 has no such field). */
static int read_cache_salt(const struct ig_sim_config *c, struct ig_json_value root,
			   struct ig_sim_error *e)
{
	struct ig_json_value v;
	if (c->version == IG_SIM_V_0_8 || ig_json_get(root, "cache_salt", &v) < 0 ||
	    v.type == IG_JSON_NULL)
		return 0;
	if (v.type != IG_JSON_STRING || v.raw.len <= 2)
		return invalid(e, NULL,
			       "Parameter 'cache_salt' must be a non-empty string if provided.");
	return 0;
}

/* logits_processors and allowed_token_ids, refused later (late_error):
 * get_logits_processors refuses any processor without a server pattern
 * (0.8's words spell "argugment"), the engine's _validate_allowed_token_ids
 * an empty list or an id outside the vocabulary. */
static int read_engine_params(const struct ig_sim_config *c, struct ig_json_value root,
			      struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value v, id;
	size_t pos = 0;
	int64_t n;
	bool any = false, oov = false;
	if (ig_json_get(root, "logits_processors", &v) == 0 && v.type == IG_JSON_ARRAY &&
	    ig_json_array_next(v, &pos, &id) == 1) {
		r->late_error = c->version == IG_SIM_V_0_8
				    ? "The `logits_processors` argument is not supported by this "
				      "server. See --logits-processor-pattern engine argugment for "
				      "more information."
				    : "The `logits_processors` argument is not supported by this "
				      "server. See --logits-processor-pattern engine argument for "
				      "more information.";
		return 0;
	}
	if (ig_json_get(root, "allowed_token_ids", &v) < 0 || v.type == IG_JSON_NULL)
		return 0;
	if (v.type != IG_JSON_ARRAY)
		return invalid(e, "allowed_token_ids",
			       "'allowed_token_ids' must be a list of integers.");
	for (pos = 0; ig_json_array_next(v, &pos, &id) == 1; any = true) {
		if (id.type != IG_JSON_NUMBER || ig_json_int64(id, &n) < 0)
			return invalid(e, "allowed_token_ids",
				       "'allowed_token_ids' must be a list of integers.");
		oov |= n < 0 || n >= (int64_t)IG_SIM_VOCAB;
	}
	if (!any)
		r->late_error = "allowed_token_ids is not None and empty!";
	else if (oov)
		r->late_error = "allowed_token_ids contains out-of-vocab token id!";
	return 0;
}

/* ---- structured outputs ---------------------------------------------------------------- */

/* One constraint found: the first sets it, a second is vLLM's 400. */
static int constrain(struct ig_sim_request *r, enum ig_sim_structured kind, struct ig_str spec,
		     const char *field, const char **first, struct ig_sim_error *e)
{
	if (*first)
		return invalid(e, NULL,
			       "You can only use one kind of structured outputs constraint but "
			       "multiple are specified: %s and %s.",
			       *first, field);
	*first = field;
	r->structured = kind;
	r->spec = spec;
	return 0;
}

/* A JSON schema: an object, or (guided_json, structured_outputs.json) its
 * text in a string, which is decoded into r->spec_buf. */
static int schema_of(struct ig_json_value v, struct ig_sim_request *r, struct ig_str *out)
{
	struct ig_json_value parsed;
	if (v.type == IG_JSON_OBJECT || v.type == IG_JSON_BOOL) {
		*out = v.raw;
		return 0;
	}
	if (v.type != IG_JSON_STRING || r->spec_buf.len)
		return -1;
	if (ig_json_string(v, &r->spec_buf) < 0 ||
	    ig_json_parse(r->spec_buf.ptr, r->spec_buf.len, &parsed) < 0 ||
	    parsed.type != IG_JSON_OBJECT)
		return -1;
	*out = (struct ig_str){r->spec_buf.ptr, r->spec_buf.len};
	return 0;
}

/* A guided_choice list: strings, at least one. */
static bool choice_list(struct ig_json_value v)
{
	struct ig_json_value s;
	size_t pos = 0, n = 0;
	if (v.type != IG_JSON_ARRAY)
		return false;
	while (ig_json_array_next(v, &pos, &s) == 1) {
		if (s.type != IG_JSON_STRING)
			return false;
		n++;
	}
	return n > 0;
}

/* A `response_format` (chat, completions) or Responses' `text.format`:
 * {type: text | json_object | json_schema}, the schema under
 * json_schema.schema (format: under schema). */
static int read_format(struct ig_json_value f, bool responses, struct ig_sim_request *r,
		       const char **first, struct ig_sim_error *e)
{
	const char *field = responses ? "text.format" : "response_format";
	struct ig_json_value type, js, schema;
	if (f.type != IG_JSON_OBJECT || ig_json_get(f, "type", &type) < 0 ||
	    type.type != IG_JSON_STRING)
		return invalid(e, field, "'%s' must be an object with a 'type'.", field);
	if (ig_json_string_eq(type, "text"))
		return 0;
	if (ig_json_string_eq(type, "json_object"))
		return constrain(r, IG_SIM_JSON, (struct ig_str){0}, field, first, e);
	if (!ig_json_string_eq(type, "json_schema"))
		return invalid(e, field,
			       "%s.type must be 'text', 'json_object' or 'json_schema' (the "
			       "simulator does not generate 'structural_tag').",
			       field);
	js = f;
	if (!responses && (ig_json_get(f, "json_schema", &js) < 0 || js.type != IG_JSON_OBJECT))
		return invalid(e, field,
			       "response_format.json_schema is required when its type is "
			       "'json_schema'.");
	/* vLLM's JsonSchemaResponseFormat and OpenAI's text.format type both
	 * require a string `name`. */
	struct ig_json_value name;
	if (ig_json_get(js, "name", &name) < 0 || name.type != IG_JSON_STRING)
		return invalid(e,
			       responses ? "text.format.name" : "response_format.json_schema.name",
			       "Field required: '%s' must have a string 'name'.",
			       responses ? "text.format" : "response_format.json_schema");
	struct ig_str spec = {0};
	if (ig_json_get(js, "schema", &schema) == 0 && schema.type != IG_JSON_NULL &&
	    schema_of(schema, r, &spec) < 0)
		return invalid(e, field, "The JSON schema of '%s' must be an object.", field);
	return constrain(r, IG_SIM_JSON, spec, field, first, e);
}

/* vLLM's structured outputs on chat and completions: response_format,
 * the guided_* extras and the structured_outputs object. Regular
 * expressions and grammars are refused by name: the simulator cannot
 * write text that matches them. */
static int read_structured(struct ig_json_value root, struct ig_sim_request *r,
			   struct ig_sim_error *e)
{
	struct ig_json_value v, so;
	struct ig_str spec;
	const char *first = NULL;
	if (ig_json_get(root, "response_format", &v) == 0 && v.type != IG_JSON_NULL &&
	    read_format(v, false, r, &first, e) < 0)
		return -1;
	static const char *const unsupported[] = {"guided_regex", "guided_grammar"};
	for (size_t i = 0; i < 2; i++)
		if (ig_json_get(root, unsupported[i], &v) == 0 && v.type != IG_JSON_NULL)
			return reject(e, 400, "BadRequestError", unsupported[i],
				      "The simulator does not generate text for '%s'.",
				      unsupported[i]);
	if (ig_json_get(root, "guided_json", &v) == 0 && v.type != IG_JSON_NULL) {
		if (schema_of(v, r, &spec) < 0)
			return invalid(e, "guided_json",
				       "'guided_json' must be a JSON schema (an object or its "
				       "text).");
		if (constrain(r, IG_SIM_JSON, spec, "guided_json", &first, e) < 0)
			return -1;
	}
	if (ig_json_get(root, "guided_choice", &v) == 0 && v.type != IG_JSON_NULL) {
		if (!choice_list(v))
			return invalid(e, "guided_choice",
				       "'guided_choice' must be a non-empty list of strings.");
		if (constrain(r, IG_SIM_CHOICE, v.raw, "guided_choice", &first, e) < 0)
			return -1;
	}
	if (ig_json_get(root, "structured_outputs", &so) < 0 || so.type == IG_JSON_NULL)
		return 0;
	if (so.type != IG_JSON_OBJECT)
		return invalid(e, "structured_outputs", "'structured_outputs' must be an object.");
	static const char *const so_unsupported[] = {"regex", "grammar", "structural_tag"};
	for (size_t i = 0; i < 3; i++)
		if (ig_json_get(so, so_unsupported[i], &v) == 0 && v.type != IG_JSON_NULL)
			return reject(e, 400, "BadRequestError", "structured_outputs",
				      "The simulator does not generate text for "
				      "structured_outputs.%s.",
				      so_unsupported[i]);
	if (ig_json_get(so, "json", &v) == 0 && v.type != IG_JSON_NULL) {
		if (schema_of(v, r, &spec) < 0)
			return invalid(e, "structured_outputs",
				       "structured_outputs.json must be a JSON schema.");
		if (constrain(r, IG_SIM_JSON, spec, "structured_outputs.json", &first, e) < 0)
			return -1;
	}
	if (ig_json_get(so, "choice", &v) == 0 && v.type != IG_JSON_NULL) {
		if (!choice_list(v))
			return invalid(e, "structured_outputs",
				       "structured_outputs.choice must be a non-empty list of "
				       "strings.");
		if (constrain(r, IG_SIM_CHOICE, v.raw, "structured_outputs.choice", &first, e) < 0)
			return -1;
	}
	if (ig_json_get(so, "json_object", &v) == 0 && v.type == IG_JSON_BOOL &&
	    ig_json_bool(v) == 1 &&
	    constrain(r, IG_SIM_JSON, (struct ig_str){0}, "structured_outputs.json_object", &first,
		      e) < 0)
		return -1;
	return 0;
}

static int read_completion(struct ig_json_value root, struct ig_sim_request *r, int64_t *asked,
			   struct ig_sim_error *e)
{
	struct ig_json_value prompt, suffix;
	if (read_sampling(root, r, e) < 0 || read_openai_stream(root, r, e) < 0 ||
	    read_priority(root, r, e) < 0 || read_stop(root, r, e) < 0)
		return -1;
	if (ig_json_get(root, "suffix", &suffix) == 0 && suffix.type != IG_JSON_NULL)
		return bad_request(e, NULL, "suffix is not currently supported");
	if (opt_bool(root, "use_beam_search", &r->beam_search) < 0)
		return invalid(e, "use_beam_search", "'use_beam_search' must be a boolean.");
	if (ig_json_get(root, "prompt", &prompt) < 0 || prompt.type == IG_JSON_NULL)
		return invalid(e, "prompt", "Field required: 'prompt'.");
	prompt = pick_prompt(prompt, r->prompt_index, &r->nprompts);
	if (r->nprompts < 1 || r->prompt_index >= r->nprompts ||
	    text_or_ids_tokens(prompt, &r->prompt_tokens, r) < 0)
		return invalid(e, "prompt",
			       "'prompt' must be a string, a list of token ids, or a non-empty "
			       "list of either.");
	if (r->nprompts * ig_sim_seqs_per_prompt(r) > IG_SIM_MAX_N)
		return reject(e, 400, "BadRequestError", "prompt",
			      "The simulator answers at most %d choices (prompts x n), got %ld.",
			      IG_SIM_MAX_N, r->nprompts * ig_sim_seqs_per_prompt(r));
	r->prompt_key = prompt.raw;
	if (opt_bool(root, "echo", &r->echo_prompt) < 0)
		return invalid(e, "echo", "'echo' must be a boolean.");
	if (r->echo_prompt && echo_text(prompt, r) < 0)
		return bad_request(e, "prompt", "The prompt is too long to echo.");
	/* OpenAI's echo without generation: max_tokens 0 answers the prompt
	 * alone (vLLM runs one step and shows nothing of it). */
	int64_t mt;
	if (r->echo_prompt && opt_int(root, "max_tokens", &mt) == 1 && mt == 0) {
		r->echo_only = true;
		*asked = 1;
		return 0;
	}
	struct ig_json_value v;
	if (ig_json_get(root, "max_tokens", &v) == 0 && v.type == IG_JSON_NULL)
		*asked = ASKED_OPEN;
	return read_max_tokens(root, "max_tokens", asked, e);
}

/* A chat content value's text as vLLM's conversation holds it: a string
 * as it is, text parts joined with newlines, anything else nothing. */
static int content_text(struct ig_json_value content, struct ig_buf *out)
{
	struct ig_json_value part, type, text;
	size_t pos = 0;
	bool first = true;
	if (content.type == IG_JSON_STRING)
		return ig_json_string(content, out);
	while (content.type == IG_JSON_ARRAY && ig_json_array_next(content, &pos, &part) == 1) {
		if (ig_json_get(part, "type", &type) < 0 || !ig_json_string_eq(type, "text") ||
		    ig_json_get(part, "text", &text) < 0 || text.type != IG_JSON_STRING)
			continue;
		if ((!first && ig_buf_append_cstr(out, "\n") < 0) || ig_json_string(text, out) < 0)
			return -1;
		first = false;
	}
	return 0;
}

/* The answer's role (the assistant's, or without add_generation_prompt
 * the last message's) and chat's `echo`: when the last message has that
 * role, its text comes first in the answer (vLLM prepends it). */
static int read_chat_echo(struct ig_json_value root, struct ig_json_value msgs, bool gen,
			  struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value m, last = {0}, role, content;
	size_t pos = 0;
	bool echo = false;
	if (opt_bool(root, "echo", &echo) < 0)
		return invalid(e, "echo", "'echo' must be a boolean.");
	while (ig_json_array_next(msgs, &pos, &m) == 1)
		last = m;
	ig_buf_init(&r->role, 4096);
	if (ig_json_get(last, "role", &role) < 0)
		return 0;
	if (!gen && ig_json_string(role, &r->role) < 0)
		return bad_request(e, "messages", "A message's role is too long.");
	if (!echo || (gen && !ig_json_string_eq(role, "assistant")) ||
	    ig_json_get(last, "content", &content) < 0)
		return 0;
	ig_buf_init(&r->echo_text, (size_t)1 << 28);
	if (content_text(content, &r->echo_text) < 0)
		return bad_request(e, "messages", "The last message is too long to echo.");
	r->echo_prompt = r->echo_text.len > 0;
	return 0;
}

static int read_chat(const struct ig_sim_config *c, struct ig_json_value root,
		     struct ig_sim_request *r, int64_t *asked, struct ig_sim_error *e)
{
	struct ig_json_value msgs;
	bool gen, cont;
	if (read_sampling(root, r, e) < 0 || read_openai_stream(root, r, e) < 0 ||
	    read_priority(root, r, e) < 0 || read_stop(root, r, e) < 0 ||
	    read_template_switches(root, true, &gen, &cont, e) < 0)
		return -1;
	if (ig_json_get(root, "messages", &msgs) < 0 || msgs.type == IG_JSON_NULL)
		return invalid(e, "messages", "Field required: 'messages'.");
	if (tools_tokens(root, &r->prompt_tokens, r) < 0)
		return invalid(e, "tools", "'tools' must be a list.");
	if (msgs.type != IG_JSON_ARRAY ||
	    messages_tokens(msgs, &r->prompt_tokens, r, gen, cont) < 0)
		return invalid(e, "messages",
			       "'messages' must be a non-empty list of {role, content}.");
	if (check_media(c, msgs, e) < 0 || read_chat_echo(root, msgs, gen, r, e) < 0)
		return -1;
	r->prompt_key = msgs.raw;
	/* max_completion_tokens wins over the deprecated max_tokens. */
	if (read_max_tokens(root, "max_tokens", asked, e) < 0 ||
	    read_max_tokens(root, "max_completion_tokens", asked, e) < 0)
		return -1;
	return 0;
}

/* ---- the Responses API --------------------------------------------------------------- */

/* An optional member kept as written for the answer to repeat: -1 when it
 * is present with another type than `type`. */
static int echo_member(struct ig_json_value root, const char *key, enum ig_json_type type,
		       enum ig_json_type type2, struct ig_str *out)
{
	struct ig_json_value v;
	if (ig_json_get(root, key, &v) < 0 || v.type == IG_JSON_NULL)
		return 0;
	if (v.type != type && v.type != type2)
		return -1;
	*out = v.raw;
	return 0;
}

static int read_echo(struct ig_json_value root, struct ig_sim_echo *x, struct ig_sim_error *e)
{
	static const struct {
		const char *key;
		enum ig_json_type t1, t2;
		size_t off;
		const char *what;
	} fields[] = {
	    {"instructions", IG_JSON_STRING, IG_JSON_STRING,
	     offsetof(struct ig_sim_echo, instructions), "a string"},
	    {"metadata", IG_JSON_OBJECT, IG_JSON_OBJECT, offsetof(struct ig_sim_echo, metadata),
	     "an object"},
	    {"tool_choice", IG_JSON_STRING, IG_JSON_OBJECT,
	     offsetof(struct ig_sim_echo, tool_choice), "a string or an object"},
	    {"tools", IG_JSON_ARRAY, IG_JSON_ARRAY, offsetof(struct ig_sim_echo, tools), "a list"},
	    {"user", IG_JSON_STRING, IG_JSON_STRING, offsetof(struct ig_sim_echo, user),
	     "a string"},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		struct ig_str *dst = (struct ig_str *)(void *)((char *)x + fields[i].off);
		if (echo_member(root, fields[i].key, fields[i].t1, fields[i].t2, dst) < 0)
			return invalid(e, fields[i].key, "'%s' must be %s.", fields[i].key,
				       fields[i].what);
	}
	int rc = opt_double(root, "temperature", &x->temperature);
	int rc2 = opt_double(root, "top_p", &x->top_p);
	if (rc < 0 || rc2 < 0)
		return invalid(e, rc < 0 ? "temperature" : "top_p",
			       "'temperature' and 'top_p' must be numbers.");
	x->has_temperature = rc == 1;
	x->has_top_p = rc2 == 1;
	return 0;
}

/* One item of a Responses `input` list: a message ({role, content}, the
 * type "message" optional), or an item without a role (a function call,
 * its output, a reasoning item) that the template writes as a turn of its
 * own. */
static int input_item_tokens(struct ig_json_value item, long *n, struct ig_sim_request *r)
{
	struct ig_json_value role, content, type, v;
	if (item.type != IG_JSON_OBJECT)
		return -1;
	if (ig_json_get(item, "role", &role) == 0) {
		if (role.type != IG_JSON_STRING)
			return -1;
		if (ig_json_get(item, "content", &content) < 0)
			content.type = IG_JSON_INVALID;
		return push_turn(r, role, "?", content, n);
	}
	if (ig_json_get(item, "type", &type) < 0 || type.type != IG_JSON_STRING)
		return -1;
	long t = 0;
	turn_open(r, ig_json_string_eq(type, "function_call_output") ? "tool" : "assistant");
	if (ig_json_get(item, "output", &v) == 0)
		t += v.type == IG_JSON_STRING ? string_tokens(v, r) : json_text_tokens(v, r);
	if (ig_json_get(item, "name", &v) == 0)
		t += string_tokens(v, r);
	if (ig_json_get(item, "arguments", &v) == 0)
		t += string_tokens(v, r);
	turn_close(r);
	*n += t + IG_SIM_CHAT_MSG_OVERHEAD;
	return 0;
}

/* vLLM builds the conversation as instructions (a system turn), then the
 * input: a string is one user turn, a list gives one turn per item. */
/* background and store, as vLLM's ResponsesRequest validates them
 * (validate_background: background needs store, which defaults to true),
 * and previous_response_id, kept for check_store. */
static int read_store(struct ig_json_value root, struct ig_sim_request *r, struct ig_sim_error *e)
{
	bool store = true;
	struct ig_json_value prev;
	if (opt_bool(root, "background", &r->background) < 0)
		return invalid(e, "background", "'background' must be a boolean.");
	if (opt_bool(root, "store", &store) < 0)
		return invalid(e, "store", "'store' must be a boolean.");
	if (r->background && !store)
		return invalid(e, NULL, "background can only be used when `store` is true");
	int rc = opt_member(root, "previous_response_id", IG_JSON_STRING, &prev);
	if (rc < 0)
		return invalid(e, "previous_response_id",
			       "'previous_response_id' must be a string.");
	if (rc == 1)
		r->prev_response = prev.raw;
	return 0;
}

/* What vLLM's serving_responses.py answers without
 * VLLM_ENABLE_RESPONSES_API_STORE, after the model check: background
 * mode is refused (_validate_create_responses_input) and no earlier
 * response can be found (_make_not_found_error). */
static int check_store(struct ig_sim_request *r, struct ig_sim_error *e)
{
	if (r->background)
		return reject(e, 400, "invalid_request_error", "background",
			      "This vLLM engine does not support `store=True` and therefore does "
			      "not support the background mode. To enable these features, set the "
			      "environment variable `VLLM_ENABLE_RESPONSES_API_STORE=1` when "
			      "launching the vLLM server.");
	if (!r->prev_response.len)
		return 0;
	struct ig_json_value v;
	struct ig_buf id;
	ig_buf_init(&id, r->prev_response.len + 1);
	if (ig_json_parse_value(r->prev_response.ptr, r->prev_response.len, &v) < 0 ||
	    ig_json_string(v, &id) < 0)
		ig_buf_reset(&id);
	struct ig_str s = ig_buf_str(&id);
	reject(e, 404, "invalid_request_error", "response_id", "Response with id '%.*s' not found.",
	       IG_STR_FMT(s));
	ig_buf_free(&id);
	return -1;
}

static int read_responses(struct ig_json_value root, struct ig_sim_request *r, int64_t *asked,
			  struct ig_sim_error *e)
{
	struct ig_json_value input, item, instr;
	size_t pos = 0;
	long n = 0;
	if (read_sampling(root, r, e) < 0 || read_echo(root, &r->echo, e) < 0 ||
	    read_priority(root, r, e) < 0 || read_store(root, r, e) < 0)
		return -1;
	struct ig_json_value text, format;
	const char *first = NULL;
	if (ig_json_get(root, "text", &text) == 0 && text.type == IG_JSON_OBJECT &&
	    ig_json_get(text, "format", &format) == 0 && format.type != IG_JSON_NULL &&
	    read_format(format, true, r, &first, e) < 0)
		return -1;
	if (ig_json_get(root, "input", &input) < 0 || input.type == IG_JSON_NULL)
		return invalid(e, "input", "Field required: 'input'.");
	if (input.type != IG_JSON_STRING && input.type != IG_JSON_ARRAY)
		return invalid(e, "input", "'input' must be a string or a list of items.");
	if (tools_tokens(root, &n, r) < 0)
		return invalid(e, "tools", "'tools' must be a list.");
	if (ig_json_get(root, "instructions", &instr) == 0 && instr.type == IG_JSON_STRING) {
		turn_open(r, "system");
		n += string_tokens(instr, r) + IG_SIM_CHAT_MSG_OVERHEAD;
		turn_close(r);
	}
	if (input.type == IG_JSON_STRING) {
		turn_open(r, "user");
		n += string_tokens(input, r) + IG_SIM_CHAT_MSG_OVERHEAD;
		turn_close(r);
	}
	while (input.type == IG_JSON_ARRAY && ig_json_array_next(input, &pos, &item) == 1)
		if (input_item_tokens(item, &n, r) < 0)
			return invalid(e, "input",
				       "each 'input' item must be a message {role, content} or "
				       "an item with a 'type'.");
	r->prompt_tokens = n + reply_open(r);
	r->prompt_key = input.raw;
	return read_max_tokens(root, "max_output_tokens", asked, e);
}

/* ---- embeddings ------------------------------------------------------------------------ */

/* An input's tokens past truncate_prompt_tokens (keep >= 0) are dropped
 * from its start, its ids with them; the count the input keeps. */
static long keep_last(struct ig_sim_request *r, size_t start, long n, int64_t keep)
{
	if (keep < 0 || n <= keep)
		return n;
	size_t drop = (size_t)(n - keep) * sizeof(uint64_t);
	if (!r->ids_truncated && r->ids.len - start >= drop) {
		memmove(r->ids.ptr + start, r->ids.ptr + start + drop, r->ids.len - start - drop);
		r->ids.len -= drop;
	}
	return (long)keep;
}

/* vLLM's checks of each embeddings input after truncation: against the
 * context (_validate_input), and the engine's refusal of an empty prompt
 * (truncate_prompt_tokens 0 leaves none). */
static int embed_length(const struct ig_sim_config *c, long n, struct ig_sim_error *e)
{
	if (n == 0)
		return bad_request(e, NULL, "The decoder prompt cannot be empty");
	if (n > c->max_model_len)
		return reject(e, 400, "BadRequestError", "input",
			      "This model's maximum context length is %ld tokens. However, "
			      "you requested %ld tokens in the input for embedding "
			      "generation. Please reduce the length of the input.",
			      c->max_model_len, n);
	return 0;
}

/* EmbeddingCompletionRequest's `input`: a string, a list of token ids, or
 * a list of either, each input one prompt. */
static int read_embedding_inputs(const struct ig_sim_config *c, struct ig_json_value input,
				 int64_t keep, struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value one;
	size_t pos = 0;
	if (input.type != IG_JSON_STRING && input.type != IG_JSON_ARRAY)
		return invalid(e, "input",
			       "'input' must be a string, a list of token ids, or a list of "
			       "those.");
	while (ig_sim_embed_next(input, &pos, &one) == 1) {
		long n = 0;
		size_t start = r->ids.len;
		/* vLLM refuses empty prompts ("The decoder prompt cannot be empty"). */
		if (text_or_ids_tokens(one, &n, r) < 0 || n == 0)
			return bad_request(
			    e, "input",
			    "'input' must be a non-empty string, a list of token ids, "
			    "or a list of those.");
		n = keep_last(r, start, n, keep);
		if (embed_length(c, n, e) < 0)
			return -1;
		r->prompt_tokens += n;
		r->ninputs++;
	}
	if (!r->ninputs)
		return bad_request(e, "input", "'input' must not be empty.");
	r->input = r->prompt_key = input.raw;
	return 0;
}

/* What vLLM's EmbeddingChatRequest declares beyond the chat template's
 * switches: the template and its kwargs, add_special_tokens (default
 * false: the template adds the special tokens; Qwen2's tokenizer adds no
 * BOS either way, so the count is the same). Checked, not otherwise used. */
static int read_template_fields(struct ig_json_value root, struct ig_sim_error *e)
{
	struct ig_json_value v;
	bool b;
	if (opt_member(root, "chat_template", IG_JSON_STRING, &v) < 0)
		return invalid(e, "chat_template", "'chat_template' must be a string.");
	if (opt_member(root, "chat_template_kwargs", IG_JSON_OBJECT, &v) < 0)
		return invalid(e, "chat_template_kwargs",
			       "'chat_template_kwargs' must be an object.");
	if (opt_bool(root, "add_special_tokens", &b) < 0)
		return invalid(e, "add_special_tokens", "'add_special_tokens' must be a boolean.");
	return 0;
}

/* The chat form's prompt as the vectors are drawn from it: the prompt's
 * token ids as a JSON list (each 64-bit id written as a signed integer,
 * which ig_sim_embedding reads back bit for bit), so that the chat form
 * of a text points where its `input` form does, turned a little by the
 * template's markers. */
static int write_chat_input(const struct ig_sim_config *c, struct ig_sim_request *r,
			    struct ig_sim_error *e)
{
	size_t n = ig_sim_request_nids(r);
	const uint64_t *ids = (const uint64_t *)(const void *)r->ids.ptr;
	int rc = 0;
	ig_buf_init(&r->input_buf, ((size_t)c->max_model_len + 64) * 24 + 2);
	rc |= ig_buf_append_cstr(&r->input_buf, "[");
	for (size_t i = 0; i < n; i++)
		rc |= ig_buf_printf(&r->input_buf, "%s%lld", i ? "," : "", (long long)ids[i]);
	rc |= ig_buf_append_cstr(&r->input_buf, "]");
	if (rc)
		return reject(e, 500, "InternalServerError", NULL, "out of memory");
	r->input = ig_buf_str(&r->input_buf);
	return 0;
}

/* EmbeddingChatRequest: `messages` laid out by the chat template as for a
 * chat completion, one prompt and one vector. vLLM up to v0.11 calls the
 * template with add_generation_prompt and continue_final_message false
 * whatever the request says (its model only refuses both true); the
 * latest release takes both, add_generation_prompt defaulting to false
 * ("we are not generating tokens"). */
static int read_embedding_chat(const struct ig_sim_config *c, struct ig_json_value root,
			       struct ig_json_value msgs, int64_t keep, struct ig_sim_request *r,
			       struct ig_sim_error *e)
{
	bool gen, cont;
	long n = 0;
	if (read_template_switches(root, false, &gen, &cont, e) < 0 ||
	    read_template_fields(root, e) < 0)
		return -1;
	if (c->version == IG_SIM_V_0_8)
		gen = cont = false;
	if (msgs.type != IG_JSON_ARRAY || messages_tokens(msgs, &n, r, gen, cont) < 0)
		return invalid(e, "messages",
			       "'messages' must be a non-empty list of {role, content}.");
	if (check_media(c, msgs, e) < 0)
		return -1;
	n = keep_last(r, 0, n, keep);
	if (embed_length(c, n, e) < 0)
		return -1;
	r->prompt_tokens = n;
	r->ninputs = 1;
	r->prompt_key = msgs.raw;
	return write_chat_input(c, r, e);
}

/* Given both `input` and `messages`, vLLM's EmbeddingRequest union
 * (pydantic's smart mode) takes the member that validates with more of
 * its own fields set, the input form on a tie: the chat form wins only
 * when its model takes the body and one of the fields only it declares is
 * there (v0.11's EmbeddingChatRequest: the template and its kwargs and
 * mm_processor_kwargs; the latest release's moves mm_processor_kwargs to
 * both forms and adds the template switches and media_io_kwargs). */
static bool chat_form_wins(const struct ig_sim_config *c, struct ig_json_value root,
			   struct ig_json_value msgs)
{
	struct ig_sim_error scratch;
	bool gen, cont;
	if (msgs.type != IG_JSON_ARRAY ||
	    read_template_switches(root, false, &gen, &cont, &scratch) < 0 ||
	    read_template_fields(root, &scratch) < 0)
		return false;
	static const char *const v08[] = {"chat_template", "chat_template_kwargs",
					  "mm_processor_kwargs"};
	static const char *const latest[] = {"chat_template", "chat_template_kwargs",
					     "add_generation_prompt", "continue_final_message",
					     "media_io_kwargs"};
	const char *const *keys = c->version == IG_SIM_V_0_8 ? v08 : latest;
	size_t nkeys = c->version == IG_SIM_V_0_8 ? 3 : 5;
	struct ig_json_value v;
	for (size_t i = 0; i < nkeys; i++)
		if (ig_json_get(root, keys[i], &v) == 0)
			return true;
	return false;
}

/* /v1/embeddings: vLLM's EmbeddingRequest, the union of
 * EmbeddingCompletionRequest (`input`) and EmbeddingChatRequest
 * (`messages`); a body with neither fails both (FastAPI names the first
 * member's missing `input`). */
static int read_embeddings(const struct ig_sim_config *c, struct ig_json_value root,
			   struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value input, msgs, v;
	int64_t keep;
	if (read_priority(root, r, e) < 0 || truncation_limit(c, root, &keep, e) < 0)
		return -1;
	bool has_input = opt_get(root, "input", &input);
	bool has_msgs = opt_get(root, "messages", &msgs);
	if (!has_input && !has_msgs)
		return invalid(e, "input",
			       "Field required: 'input' (or 'messages', the chat form).");
	bool input_ok = has_input && (input.type == IG_JSON_STRING || input.type == IG_JSON_ARRAY);
	int rc = has_msgs && (!input_ok || chat_form_wins(c, root, msgs))
		     ? read_embedding_chat(c, root, msgs, keep, r, e)
		     : read_embedding_inputs(c, input, keep, r, e);
	if (rc < 0)
		return -1;
	if (ig_json_get(root, "encoding_format", &v) == 0 && v.type != IG_JSON_NULL) {
		if (ig_json_string_eq(v, "base64"))
			r->base64 = true;
		else if (!ig_json_string_eq(v, "float"))
			return invalid(e, "encoding_format",
				       "'encoding_format' must be 'float' or 'base64'.");
	}
	int64_t dims = c->embedding_dim;
	rc = opt_int(root, "dimensions", &dims);
	if (rc < 0 || dims < 1 || dims > c->embedding_dim)
		return reject(e, 400, "BadRequestError", "dimensions",
			      "'dimensions' must be an integer from 1 to %ld, the model's "
			      "embedding size.",
			      c->embedding_dim);
	r->dims = (long)dims;
	/* The engine computes the prompt and produces one output: the vector. */
	r->max_tokens = 1;
	return 0;
}

/* ---- Anthropic's Messages API ------------------------------------------------------- */

/* The system prompt: `system` (a string or text blocks) followed by the
 * messages with role "system", joined into one system turn, as vLLM does. */
static int system_tokens(struct ig_json_value root, struct ig_json_value msgs, long *n,
			 struct ig_sim_request *r)
{
	struct ig_json_value sys, m, role, content;
	size_t pos = 0;
	long t = 0, part = 0;
	bool open = false;
	if (ig_json_get(root, "system", &sys) == 0 && sys.type != IG_JSON_NULL) {
		if (sys.type != IG_JSON_STRING && sys.type != IG_JSON_ARRAY)
			return -1;
		turn_open(r, "system");
		open = true;
		if (content_tokens(sys, &part, r) < 0)
			return -1;
		t += part;
	}
	while (ig_json_array_next(msgs, &pos, &m) == 1) {
		if (ig_json_get(m, "role", &role) < 0 || !ig_json_string_eq(role, "system") ||
		    ig_json_get(m, "content", &content) < 0)
			continue;
		if (!open)
			turn_open(r, "system");
		open = true;
		if (content_tokens(content, &part, r) < 0)
			return -1;
		t += part;
	}
	if (open) {
		turn_close(r);
		*n += t + IG_SIM_CHAT_MSG_OVERHEAD;
	}
	return 0;
}

/* The conversation: every message is {role: user|assistant|system,
 * content: a string or a list of blocks}; system ones went to the system
 * turn. */
static int anthropic_turns(struct ig_json_value msgs, long *n, struct ig_sim_request *r)
{
	struct ig_json_value m, role, content;
	size_t pos = 0;
	long count = 0;
	while (ig_json_array_next(msgs, &pos, &m) == 1) {
		if (m.type != IG_JSON_OBJECT || ig_json_get(m, "role", &role) < 0 ||
		    ig_json_get(m, "content", &content) < 0)
			return -1;
		if (!ig_json_string_eq(role, "user") && !ig_json_string_eq(role, "assistant") &&
		    !ig_json_string_eq(role, "system"))
			return -1;
		if (content.type != IG_JSON_STRING && content.type != IG_JSON_ARRAY)
			return -1;
		count++;
		if (!ig_json_string_eq(role, "system") && push_turn(r, role, "?", content, n) < 0)
			return -1;
	}
	return count ? 0 : -1;
}

static int read_messages(struct ig_json_value root, struct ig_sim_request *r, int64_t *asked,
			 struct ig_sim_error *e)
{
	struct ig_json_value msgs, v;
	long n = 0;
	if (read_sampling(root, r, e) < 0)
		return -1;
	if (ig_json_get(root, "model", &v) < 0 || v.type == IG_JSON_NULL)
		return bad_request(e, "model", "model: Field required");
	if (!r->model.len)
		return bad_request(e, "model", "model: Model is required");
	if (ig_json_get(root, "max_tokens", &v) < 0 || v.type == IG_JSON_NULL)
		return bad_request(e, "max_tokens", "max_tokens: Field required");
	if (read_max_tokens(root, "max_tokens", asked, e) < 0 ||
	    read_stop_list(root, "stop_sequences", r, e) < 0)
		return -1;
	if (ig_json_get(root, "messages", &msgs) < 0 || msgs.type == IG_JSON_NULL)
		return bad_request(e, "messages", "messages: Field required");
	if (msgs.type != IG_JSON_ARRAY)
		return bad_request(e, "messages", "messages: Input should be a valid list");
	if (tools_tokens(root, &n, r) < 0)
		return bad_request(e, "tools", "tools: Input should be a valid list");
	if (system_tokens(root, msgs, &n, r) < 0)
		return bad_request(e, "system",
				   "system: Input should be a string or a list of blocks");
	if (anthropic_turns(msgs, &n, r) < 0)
		return bad_request(e, "messages",
				   "messages: must be a non-empty list of {role: user|assistant, "
				   "content: a string or a list of blocks}");
	r->prompt_tokens = n + reply_open(r);
	r->prompt_key = msgs.raw;
	return 0;
}

/* ---- against the configuration ------------------------------------------------------ */

/* Resolves `model`: a base name, an adapter, or 404. */
static int resolve_model(const struct ig_sim_config *c, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	struct ig_str m = ig_buf_str(&r->model);
	/* Any served name of the base model is answered with the first, as
	 * vLLM's OpenAIServingModels.model_name() does (vllm-api.md §1.2). */
	if (!m.len || ig_sim_is_base_name(c, m)) {
		r->name = ig_str_from(ig_sim_label_name(c));
	} else if (ig_sim_find_adapter(c, m) >= 0) {
		r->name = m;
		r->adapter = true;
	} else {
		return reject(e, 404, "NotFoundError", "model", "The model `%.*s` does not exist.",
			      IG_STR_FMT(m));
	}
	return 0;
}

/* vLLM's SamplingParams check, against max_tokens as it ends up. */
static int check_min_tokens(struct ig_sim_request *r, struct ig_sim_error *e)
{
	if (r->min_tokens > r->max_tokens)
		return reject(e, 400, "BadRequestError", "min_tokens",
			      "min_tokens must be less than or equal to max_tokens=%ld, got %lld.",
			      r->max_tokens, (long long)r->min_tokens);
	return 0;
}

/* The engine's checks of the tokenized prompt (vLLM's input processing,
 * after the server's context check): it may not be empty, and its ids
 * must be in the vocabulary. */
static int check_prompt_ids(struct ig_sim_request *r, struct ig_sim_error *e)
{
	if (r->kind == IG_SIM_COMPLETION && r->prompt_tokens == 0)
		return bad_request(e, NULL, "The decoder prompt cannot be empty");
	if (r->oov)
		return reject(e, 400, "BadRequestError", NULL, "Token id %lld is out of vocabulary",
			      (long long)r->oov_id);
	return 0;
}

/* best_of as each release's engine takes it: V1 (the latest) refuses it;
 * 0.8 runs it, and a completions stream whose n differs cannot be
 * streamed token by token (vllm-api.md §1.3). Nor can 0.8's beam search,
 * whose answer exists only once every beam is done: 0.8 leaves such a
 * completion unstreamed and sends it in one event. */
static int check_best_of(const struct ig_sim_config *c, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	if (r->beam_search && r->kind == IG_SIM_COMPLETION && c->version == IG_SIM_V_0_8)
		r->whole_stream = r->stream;
	if (!r->best_of)
		return 0;
	if (c->version != IG_SIM_V_0_8 && r->best_of != 1)
		return bad_request(e, NULL, "vLLM V1 does not yet support best_of.");
	r->whole_stream |= r->stream && r->best_of != r->n;
	return 0;
}

/* The latest release's context-length refusal (vllm-api.md §4.2, "newest
 * context error"): the output tokens asked (0 when the request left the
 * answer's length open) against the prompt, the fault at input_tokens. */
static int too_long(struct ig_sim_error *e, long len, long output, long input)
{
	return reject(e, 400, "BadRequestError", "input_tokens",
		      "This model's maximum context length is %ld tokens. However, you requested "
		      "%ld output tokens and your prompt contains at least %ld input tokens, for a "
		      "total of at least %ld tokens. Please reduce the length of the input prompt "
		      "or the number of requested output tokens. (parameter=input_tokens, "
		      "value=%ld)",
		      len, output, input, output + input, input);
}

/* The Responses API's context check (vLLM's serving_responses.py,
 * _validate_generator_input): only the prompt is checked, and
 * to_sampling_params then takes min(max_output_tokens, what the context
 * leaves), so a limit past the context is cut, not refused. */
static int responses_length(struct ig_sim_request *r, int64_t asked, long len,
			    struct ig_sim_error *e)
{
	if (r->prompt_tokens >= len)
		return reject(e, 400, "invalid_request_error", "input",
			      "The engine prompt length %ld exceeds the max_model_len %ld. Please "
			      "reduce prompt.",
			      r->prompt_tokens, len);
	r->max_tokens = len - r->prompt_tokens;
	if (asked > 0 && asked < r->max_tokens)
		r->max_tokens = (long)asked;
	return check_min_tokens(r, e);
}

/* vLLM's context-length checks and their messages; sets r->max_tokens
 * from what was asked. Chat-like APIs without a limit, and a completion
 * whose max_tokens is null, may fill the context; a completion without
 * max_tokens gets 16 tokens. */
static int check_length(const struct ig_sim_config *c, struct ig_sim_request *r, int64_t asked,
			struct ig_sim_error *e)
{
	long len = c->max_model_len;
	if (r->kind == IG_SIM_EMBEDDINGS)
		return 0;
	bool open = asked == ASKED_OPEN || (asked < 0 && r->kind != IG_SIM_COMPLETION);
	if (r->kind == IG_SIM_RESPONSES)
		return responses_length(r, asked, len, e);
	if (open) {
		if (r->prompt_tokens >= len && c->version != IG_SIM_V_0_8)
			return too_long(e, len, 0, r->prompt_tokens);
		if (r->prompt_tokens >= len)
			return reject(e, 400, "BadRequestError", NULL,
				      "This model's maximum context length is %ld tokens. However, "
				      "you requested %ld tokens in the messages, Please reduce the "
				      "length of the messages.",
				      len, r->prompt_tokens);
		r->max_tokens = len - r->prompt_tokens;
		return check_min_tokens(r, e);
	}
	r->max_tokens = asked < 0 ? 16 : (long)asked;
	if (check_min_tokens(r, e) < 0)
		return -1;
	if (r->prompt_tokens + r->max_tokens > len && c->version != IG_SIM_V_0_8)
		return too_long(e, len, r->max_tokens, r->prompt_tokens);
	if (r->prompt_tokens + r->max_tokens > len)
		return reject(e, 400, "BadRequestError", NULL,
			      "This model's maximum context length is %ld tokens. However, you "
			      "requested %ld tokens (%ld in the messages, %ld in the completion). "
			      "Please reduce the length of the messages or completion.",
			      len, r->prompt_tokens + r->max_tokens, r->prompt_tokens,
			      r->max_tokens);
	return 0;
}

/* The object of tool `t` that holds its name and parameters: chat's
 * {"type":"function","function":{"name":..}} or the Responses API's flat
 * {"type":"function","name":..}. 0, or -1 when it is neither. */
static int tool_function(struct ig_json_value t, struct ig_json_value *fn)
{
	struct ig_json_value name;
	if (t.type != IG_JSON_OBJECT)
		return -1;
	if (ig_json_get(t, "function", fn) < 0 || fn->type != IG_JSON_OBJECT)
		*fn = t;
	return ig_json_get(*fn, "name", &name) == 0 && name.type == IG_JSON_STRING ? 0 : -1;
}

int ig_sim_tool_at(struct ig_str tools, long i, struct ig_json_value *fn)
{
	struct ig_json_value list, t;
	size_t pos = 0;
	if (ig_json_parse_value(tools.ptr, tools.len, &list) < 0 || list.type != IG_JSON_ARRAY)
		return -1;
	for (long k = 0; k <= i; k++)
		if (ig_json_array_next(list, &pos, &t) != 1)
			return -1;
	return tool_function(t, fn);
}

/* The index of the tool named `name` (a JSON string) in `tools`, or -1. */
static long tool_index(struct ig_json_value tools, struct ig_json_value name)
{
	struct ig_json_value t, fn, n;
	size_t pos = 0;
	for (long i = 0; ig_json_array_next(tools, &pos, &t) == 1; i++)
		if (tool_function(t, &fn) == 0 && ig_json_get(fn, "name", &n) == 0 &&
		    n.raw.len == name.raw.len && memcmp(n.raw.ptr, name.raw.ptr, n.raw.len) == 0)
			return i;
	return -1;
}

/* Whether the conversation's last turn is the user's own words: chat's
 * and Messages' last message, or the Responses API's input (a string is
 * one user turn; in a list, a function_call_output or the assistant's
 * turn is not; a user turn of tool_result blocks is a tool's answer). */
static bool user_spoke_last(struct ig_json_value root, bool responses)
{
	struct ig_json_value list, m, last = {IG_JSON_INVALID, {0}}, role;
	size_t pos = 0;
	if (ig_json_get(root, responses ? "input" : "messages", &list) < 0)
		return false;
	if (list.type == IG_JSON_STRING)
		return responses;
	while (ig_json_array_next(list, &pos, &m) == 1)
		last = m;
	if (last.type != IG_JSON_OBJECT || ig_json_get(last, "role", &role) < 0 ||
	    !ig_json_string_eq(role, "user"))
		return false;
	/* Anthropic's tool answers are user turns of tool_result blocks. */
	struct ig_json_value content, b, bt;
	pos = 0;
	if (ig_json_get(last, "content", &content) == 0 && content.type == IG_JSON_ARRAY)
		while (ig_json_array_next(content, &pos, &b) == 1)
			if (b.type == IG_JSON_OBJECT && ig_json_get(b, "type", &bt) == 0 &&
			    ig_json_string_eq(bt, "tool_result"))
				return false;
	return true;
}

/* tools and tool_choice, as vLLM takes them on chat and the Responses API:
 * tools given without a tool_choice mean "auto" (vLLM 0.9 on; "none" as
 * 0.8); "auto" calls tools only with the server's --enable-auto-tool-choice
 * and --tool-call-parser (chat refuses it without them); a named tool must
 * be one of the list. The call is a
 * structured answer: it counts as one constraint with response_format and
 * the guided ones. */
static int read_tool_choice(const struct ig_sim_config *c, struct ig_json_value root,
			    bool responses, struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value tools, choice, t, fn, name, named;
	size_t pos = 0;
	bool have_tools = ig_json_get(root, "tools", &tools) == 0 && tools.type == IG_JSON_ARRAY;
	if (have_tools) {
		while (ig_json_array_next(tools, &pos, &t) == 1) {
			struct ig_json_value type;
			/* Chat's ChatCompletionToolsParam: type is Literal["function"]. */
			if (!responses && t.type == IG_JSON_OBJECT &&
			    ig_json_get(t, "type", &type) == 0 &&
			    !ig_json_string_eq(type, "function"))
				return invalid(e, "tools",
					       "each tool's 'type' must be \"function\".");
			if (tool_function(t, &fn) < 0)
				return invalid(e, "tools",
					       responses ? "each tool must be {\"type\": "
							   "\"function\", \"name\": ...}."
							 : "each tool must be {\"type\": "
							   "\"function\", \"function\": "
							   "{\"name\": ...}}.");
			r->ntools++;
		}
		r->tools = tools.raw;
	}
	bool given = ig_json_get(root, "tool_choice", &choice) == 0 && choice.type != IG_JSON_NULL;
	if (!given) {
		if (r->ntools == 0 || c->version == IG_SIM_V_0_8)
			return 0;
		choice = (struct ig_json_value){IG_JSON_STRING, IG_STR("\"auto\"")};
	}
	if (choice.type == IG_JSON_STRING && ig_json_string_eq(choice, "none"))
		return 0;
	/* check_tool_usage: an empty list is "set"; "required" with it is
	 * rewritten to "none", "auto" goes on to the flags check and a named
	 * tool is not in it. */
	bool empty_list = !responses && have_tools && r->ntools == 0;
	if (empty_list && choice.type == IG_JSON_STRING && ig_json_string_eq(choice, "required"))
		return 0;
	if (r->ntools == 0 && !empty_list)
		return invalid(e, NULL, "When using `tool_choice`, `tools` must be set.");
	if (choice.type == IG_JSON_STRING && ig_json_string_eq(choice, "required")) {
		r->tool_mode = IG_SIM_TOOL_REQUIRED;
	} else if (choice.type == IG_JSON_STRING && ig_json_string_eq(choice, "auto")) {
		/* Chat refuses it without the parser; the Responses API answers
		 * in words (nothing parses a call out of them). */
		if ((!c->auto_tool_choice || !c->tool_call_parser) && responses)
			return 0;
		if (!c->auto_tool_choice || !c->tool_call_parser)
			return bad_request(
			    e, NULL,
			    "\"auto\" tool choice requires --enable-auto-tool-choice "
			    "and --tool-call-parser to be set");
		if (r->ntools == 0) /* nothing to call */
			return 0;
		/* The model calls a tool when the user spoke last; after a tool's
		 * result (or its own turn) it answers in words. */
		if (!user_spoke_last(root, responses))
			return 0;
		r->tool_mode = IG_SIM_TOOL_AUTO;
	} else if (tool_function(choice, &named) == 0 && ig_json_get(named, "name", &name) == 0) {
		r->tool_mode = IG_SIM_TOOL_NAMED;
		r->tool_pick = tool_index(tools, name);
		if (r->tool_pick < 0) {
			struct ig_buf nb = {0};
			ig_json_string(name, &nb);
			invalid(e, NULL, "Tool '%.200s' has not been passed in `tools`.",
				ig_buf_cstr(&nb) ? nb.ptr : "");
			ig_buf_free(&nb);
			return -1;
		}
	} else {
		return invalid(e, "tool_choice",
			       responses ? "'tool_choice' must be \"none\", \"auto\", \"required\" "
					   "or {\"type\": \"function\", \"name\": ...}."
					 : "'tool_choice' must be \"none\", \"auto\", \"required\" "
					   "or {\"type\": \"function\", \"function\": {\"name\": "
					   "...}}.");
	}
	if (r->structured != IG_SIM_FREE)
		return invalid(e, NULL,
			       "You can only use one kind of structured outputs constraint but "
			       "multiple are specified: tool_choice and another.");
	return 0;
}

/* Anthropic's tools ({"name", "input_schema"}) and tool_choice ({"type":
 * "auto" | "any" | "tool" (with "name") | "none"}; "auto" when tools come
 * without one). "auto" calls a tool only with the server's
 * --enable-auto-tool-choice and --tool-call-parser, and only when the last
 * message is the user's own words (not the tool_result of a call). */
static int read_anthropic_tools(const struct ig_sim_config *c, struct ig_json_value root,
				struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value tools, choice, type, t, fn, name;
	size_t pos = 0;
	if (ig_json_get(root, "tools", &tools) < 0 || tools.type != IG_JSON_ARRAY)
		return 0;
	while (ig_json_array_next(tools, &pos, &t) == 1) {
		if (tool_function(t, &fn) < 0)
			return bad_request(e, "tools", "tools: each tool needs a \"name\"");
		r->ntools++;
	}
	r->tools = tools.raw;
	if (r->ntools == 0)
		return 0;
	bool given = ig_json_get(root, "tool_choice", &choice) == 0 && choice.type != IG_JSON_NULL;
	if (given && (choice.type != IG_JSON_OBJECT || ig_json_get(choice, "type", &type) < 0))
		return bad_request(e, "tool_choice",
				   "tool_choice: Input should be an object with a \"type\"");
	if (!given || ig_json_string_eq(type, "auto")) {
		if (!c->auto_tool_choice || !c->tool_call_parser || !user_spoke_last(root, false))
			return 0;
		r->tool_mode = IG_SIM_TOOL_AUTO;
	} else if (ig_json_string_eq(type, "any")) {
		r->tool_mode = IG_SIM_TOOL_REQUIRED;
	} else if (ig_json_string_eq(type, "tool")) {
		if (ig_json_get(choice, "name", &name) < 0 || name.type != IG_JSON_STRING)
			return bad_request(e, "tool_choice", "tool_choice.name: Field required");
		r->tool_mode = IG_SIM_TOOL_NAMED;
		r->tool_pick = tool_index(tools, name);
		if (r->tool_pick < 0)
			return bad_request(e, "tool_choice",
					   "tool_choice.name: the tool is not in `tools`");
	} else if (!ig_json_string_eq(type, "none")) {
		return bad_request(e, "tool_choice",
				   "tool_choice.type: Input should be 'auto', 'any', 'tool' or "
				   "'none'");
	}
	return 0;
}

/* The logprobs the simulator gives are of its own words; a structured
 * answer is not made of them, so the two are not given together. */
static int no_lp_with_structure(struct ig_sim_request *r, struct ig_sim_error *e)
{
	if ((r->structured != IG_SIM_FREE || r->tool_mode != IG_SIM_TOOL_NONE) && r->lp_top >= 0)
		return bad_request(e, "logprobs",
				   "The simulator gives no logprobs with structured outputs.");
	return 0;
}

/* Completions' and chat's prompt_logprobs, with vLLM's checks (the
 * request's, then the engine's against --max-logprobs). Read before the
 * prompt, whose token texts it then keeps. */
static int read_prompt_logprobs(const struct ig_sim_config *c, struct ig_json_value root,
				struct ig_sim_request *r, struct ig_sim_error *e)
{
	int64_t n;
	bool stream = false;
	r->prompt_lp = -1;
	int rc = opt_int(root, "prompt_logprobs", &n);
	if (rc < 0)
		return invalid(e, "prompt_logprobs", "'prompt_logprobs' must be an integer.");
	if (rc == 0)
		return 0;
	(void)opt_bool(root, "stream", &stream); /* its own check comes later */
	if (stream && (n > 0 || n == -1))
		return invalid(e, NULL, "`prompt_logprobs` are not available when `stream=True`.");
	if (n < 0 && n != -1)
		return invalid(e, NULL, "`prompt_logprobs` must be a positive value or -1.");
	if (n == -1)
		n = IG_SIM_VOCAB;
	if (n > c->max_logprobs)
		return reject(e, 400, "BadRequestError", "prompt_logprobs",
			      "Requested prompt logprobs of %lld, which is greater than max "
			      "allowed: %ld",
			      (long long)n, c->max_logprobs);
	r->prompt_lp = (int)n;
	ig_buf_init(&r->prompt_texts, (size_t)1 << 28);
	r->texts = &r->prompt_texts;
	return 0;
}

/* vLLM's return_token_ids (completions and chat, v0.10.2 on; 0.8 has no
 * such field and ignores it). */
static int read_return_token_ids(const struct ig_sim_config *c, struct ig_json_value root,
				 struct ig_sim_request *r, struct ig_sim_error *e)
{
	if (c->version == IG_SIM_V_0_8)
		return 0;
	if (opt_bool(root, "return_token_ids", &r->return_token_ids) < 0)
		return invalid(e, "return_token_ids", "'return_token_ids' must be a boolean.");
	return 0;
}

/* The prompt's ids as the answer lists them (prompt_token_ids), once the
 * prompt is final: the ids /tokenize gives. vLLM's completions stream
 * also sends them with an echo, return_token_ids or not. */
static int write_prompt_ids(const struct ig_sim_config *c, struct ig_sim_request *r,
			    struct ig_sim_error *e)
{
	bool echoed = r->kind == IG_SIM_COMPLETION && r->echo_prompt && r->stream &&
		      c->version != IG_SIM_V_0_8;
	if (!r->return_token_ids && !echoed)
		return 0;
	size_t n = ig_sim_request_nids(r);
	const uint64_t *ids = (const uint64_t *)(const void *)r->ids.ptr;
	int rc = 0;
	ig_buf_init(&r->prompt_ids_json, (n + 1) * 8 + 2);
	rc |= ig_buf_append_cstr(&r->prompt_ids_json, "[");
	for (size_t i = 0; i < n; i++)
		rc |= ig_buf_printf(&r->prompt_ids_json, "%s%u", i ? "," : "",
				    ig_sim_vocab_id(ids[i]));
	rc |= ig_buf_append_cstr(&r->prompt_ids_json, "]");
	if (rc)
		return reject(e, 500, "InternalServerError", NULL, "out of memory");
	return 0;
}

/* The prompt_logprobs value, once the prompt is final (truncated). */
static int write_prompt_logprobs(struct ig_sim_request *r, struct ig_sim_error *e)
{
	/* Past the ids' ceiling (a prompt longer than the context, which
	 * truncate_prompt_tokens let through) the list stays null. */
	if (r->prompt_lp < 0 || r->ids_truncated)
		return 0;
	ig_buf_init(&r->prompt_lp_json, (size_t)1 << 30);
	if (ig_sim_render_prompt_logprobs(&r->prompt_lp_json, (const uint64_t *)(void *)r->ids.ptr,
					  ig_sim_request_nids(r), &r->prompt_texts,
					  (unsigned)r->prompt_lp) < 0)
		return reject(e, 500, "InternalServerError", NULL, "out of memory");
	return 0;
}

static int read_body(const struct ig_sim_config *c, struct ig_json_value root,
		     struct ig_sim_request *r, int64_t *asked, struct ig_sim_error *e)
{
	if (read_model(root, r, e) < 0)
		return -1;
	if ((r->kind == IG_SIM_COMPLETION || r->kind == IG_SIM_CHAT) &&
	    read_prompt_logprobs(c, root, r, e) < 0)
		return -1;
	/* Chat has taken `request_id` since before 0.8; completions since
	 * v0.9-v0.11 (vllm-api.md §1.1), unknown to 0.8, which ignores it. */
	if ((r->kind == IG_SIM_CHAT ||
	     (r->kind == IG_SIM_COMPLETION && c->version != IG_SIM_V_0_8)) &&
	    read_request_id(root, r, e) < 0)
		return -1;
	if ((r->kind == IG_SIM_COMPLETION || r->kind == IG_SIM_CHAT ||
	     r->kind == IG_SIM_RESPONSES) &&
	    read_cache_salt(c, root, e) < 0)
		return -1;
	if ((r->kind == IG_SIM_COMPLETION || r->kind == IG_SIM_CHAT) &&
	    (read_engine_params(c, root, r, e) < 0 || read_return_token_ids(c, root, r, e) < 0))
		return -1;
	switch (r->kind) {
	case IG_SIM_COMPLETION:
		if (read_completion(root, r, asked, e) < 0 || read_logprobs(c, root, r, e) < 0 ||
		    read_logit_bias(root, e) < 0 || read_truncation(c, root, r, e) < 0)
			return -1;
		return read_structured(root, r, e) < 0 ? -1 : no_lp_with_structure(r, e);
	case IG_SIM_CHAT:
		if (read_chat(c, root, r, asked, e) < 0 || read_logprobs(c, root, r, e) < 0 ||
		    read_logit_bias(root, e) < 0 || read_truncation(c, root, r, e) < 0 ||
		    read_structured(root, r, e) < 0 || read_tool_choice(c, root, false, r, e) < 0)
			return -1;
		/* A tool call's text is its arguments: nothing is echoed before. */
		if (r->tool_mode != IG_SIM_TOOL_NONE)
			r->echo_prompt = false;
		return no_lp_with_structure(r, e);
	case IG_SIM_RESPONSES:
		if (read_responses(root, r, asked, e) < 0)
			return -1;
		return read_tool_choice(c, root, true, r, e);
	case IG_SIM_EMBEDDINGS:
		return read_embeddings(c, root, r, e);
	case IG_SIM_MESSAGES:
		if (read_messages(root, r, asked, e) < 0)
			return -1;
		return read_anthropic_tools(c, root, r, e);
	}
	return bad_request(e, NULL, "unknown API");
}

static int parse_request_at(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			    size_t len, long index, struct ig_sim_request *out,
			    struct ig_sim_error *err)
{
	struct ig_json_value root;
	int64_t asked = ASKED_NOTHING; /* max_tokens as given */

	memset(out, 0, sizeof *out);
	out->kind = kind;
	out->lp_top = -1;
	out->prompt_lp = -1;
	out->n = 1;
	out->nprompts = 1;
	out->prompt_index = index;
	ig_buf_init(&out->model, 4096);
	/* A prompt longer than the context is refused anyway; ids past it
	 * would never be looked up. */
	ig_buf_init(&out->ids, ((size_t)c->max_model_len + 64) * sizeof(uint64_t));
	if (ig_json_parse(body, len, &root) < 0 || root.type != IG_JSON_OBJECT)
		return invalid(err, NULL, "JSON decode error: the body is not a JSON object.");
	if (read_body(c, root, out, &asked, err) < 0)
		return -1;
	if (resolve_model(c, out, err) < 0 || check_store(out, err) < 0 ||
	    check_length(c, out, asked, err) < 0 ||
	    (out->late_error && bad_request(err, NULL, out->late_error) < 0) ||
	    check_prompt_ids(out, err) < 0 || check_best_of(c, out, err) < 0 ||
	    write_prompt_logprobs(out, err) < 0 || write_prompt_ids(c, out, err) < 0)
		return -1;
	/* The engine's check, after the server's. */
	if (out->priority != 0 && !c->priority_policy)
		return reject(err, 400, "BadRequestError", NULL,
			      "Got priority %lld but Priority scheduling is not enabled.",
			      (long long)out->priority);
	return 0;
}

/* ---- /tokenize ------------------------------------------------------------------------ */

/* The most ids a /tokenize answer lists (a 256 MiB prompt of one-letter
 * words): past it the request is refused instead of truncated. */
#define TOKENIZE_MAX_IDS ((size_t)1 << 25)

/* What /tokenize and /detokenize bodies start with: out set up (its
 * texts pointer cleared), the body a JSON object, `model` read. */
static int tokenizer_body(const char *body, size_t len, struct ig_sim_request *out,
			  struct ig_json_value *root, struct ig_sim_error *err)
{
	memset(out, 0, sizeof *out);
	out->kind = IG_SIM_COMPLETION;
	out->lp_top = -1;
	out->prompt_lp = -1;
	ig_buf_init(&out->model, 4096);
	ig_buf_init(&out->ids, TOKENIZE_MAX_IDS * sizeof(uint64_t));
	if (ig_json_parse(body, len, root) < 0 || root->type != IG_JSON_OBJECT)
		return invalid(err, NULL, "JSON decode error: the body is not a JSON object.");
	return read_model(*root, out, err);
}

static int parse_tokenize(const struct ig_sim_config *c, const char *body, size_t len,
			  struct ig_sim_request *out, bool *strs, struct ig_sim_error *err)
{
	struct ig_json_value root, msgs, prompt;
	struct ig_buf *texts = out->texts;
	*strs = false;
	if (tokenizer_body(body, len, out, &root, err) < 0)
		return -1;
	if (opt_bool(root, "return_token_strs", strs) < 0)
		return invalid(err, "return_token_strs", "'return_token_strs' must be a boolean.");
	out->texts = texts;
	bool has_msgs = ig_json_get(root, "messages", &msgs) == 0 && msgs.type != IG_JSON_NULL;
	if (has_msgs) {
		bool gen, cont;
		if (read_template_switches(root, true, &gen, &cont, err) < 0)
			return -1;
		out->kind = IG_SIM_CHAT;
		if (tools_tokens(root, &out->prompt_tokens, out) < 0)
			return invalid(err, "tools", "'tools' must be a list.");
		if (msgs.type != IG_JSON_ARRAY ||
		    messages_tokens(msgs, &out->prompt_tokens, out, gen, cont) < 0)
			return invalid(err, "messages",
				       "'messages' must be a non-empty list of {role, content}.");
	} else {
		if (ig_json_get(root, "prompt", &prompt) < 0 || prompt.type == IG_JSON_NULL)
			return invalid(err, "prompt", "Field required: 'prompt' or 'messages'.");
		if (prompt.type != IG_JSON_STRING)
			return invalid(err, "prompt", "'prompt' must be a string.");
		out->prompt_tokens = string_tokens(prompt, out);
	}
	if (out->ids_truncated)
		return bad_request(err, NULL, "The prompt has too many tokens to list.");
	return resolve_model(c, out, err);
}

static int parse_detokenize(const struct ig_sim_config *c, const char *body, size_t len,
			    struct ig_sim_request *out, struct ig_sim_error *err)
{
	struct ig_json_value root, toks, e;
	size_t pos = 0;
	if (tokenizer_body(body, len, out, &root, err) < 0)
		return -1;
	if (ig_json_get(root, "tokens", &toks) < 0 || toks.type == IG_JSON_NULL)
		return invalid(err, "tokens", "Field required: 'tokens'.");
	if (toks.type != IG_JSON_ARRAY)
		return invalid(err, "tokens", "'tokens' must be a list of integers.");
	while (ig_json_array_next(toks, &pos, &e) == 1) {
		int64_t id;
		if (e.type != IG_JSON_NUMBER || ig_json_int64(e, &id) < 0)
			return invalid(err, "tokens", "'tokens' must be a list of integers.");
		if (id < 0 || id >= (int64_t)IG_SIM_VOCAB)
			return reject(err, 400, "BadRequestError", "tokens",
				      "Token id %lld is out of vocabulary (%u tokens).",
				      (long long)id, IG_SIM_VOCAB);
		ids_push(out, (uint64_t)id);
	}
	if (out->ids_truncated)
		return bad_request(err, "tokens", "Too many tokens.");
	return resolve_model(c, out, err);
}

/* The parses, each with its errors in the version's words. */
int ig_sim_parse_request_at(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			    size_t len, long index, struct ig_sim_request *out,
			    struct ig_sim_error *err)
{
	err->validation = false;
	if (parse_request_at(c, kind, body, len, index, out, err) < 0)
		return finish_error(c, err);
	return 0;
}

int ig_sim_parse_tokenize(const struct ig_sim_config *c, const char *body, size_t len,
			  struct ig_sim_request *out, bool *strs, struct ig_sim_error *err)
{
	err->validation = false;
	if (parse_tokenize(c, body, len, out, strs, err) < 0)
		return finish_error(c, err);
	return 0;
}

int ig_sim_parse_detokenize(const struct ig_sim_config *c, const char *body, size_t len,
			    struct ig_sim_request *out, struct ig_sim_error *err)
{
	err->validation = false;
	if (parse_detokenize(c, body, len, out, err) < 0)
		return finish_error(c, err);
	return 0;
}

int ig_sim_parse_request(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			 size_t len, struct ig_sim_request *out, struct ig_sim_error *err)
{
	return ig_sim_parse_request_at(c, kind, body, len, 0, out, err);
}

void ig_sim_request_free(struct ig_sim_request *r)
{
	ig_buf_free(&r->spec_buf);
	ig_buf_free(&r->stop);
	ig_buf_free(&r->stop_ids);
	ig_buf_free(&r->echo_text);
	ig_buf_free(&r->role);
	ig_buf_free(&r->model);
	ig_buf_free(&r->request_id);
	ig_buf_free(&r->ids);
	ig_buf_free(&r->prompt_texts);
	ig_buf_free(&r->prompt_lp_json);
	ig_buf_free(&r->input_buf);
	ig_buf_free(&r->prompt_ids_json);
}
