/* Generation request bodies: the checks vLLM makes on /v1/completions and
 * /v1/chat/completions (same statuses, same messages), the prompt's token
 * count and ids, the model name and the context length. Pure: it reads the
 * configuration and the body and touches nothing else, so that the unit
 * tests and the fuzzer reach it without a server. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json/json.h"
#include "sim/sim.h"

/* ---- errors ------------------------------------------------------------------------ */

static int reject(struct ig_sim_error *e, int status, const char *type, const char *param,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int reject(struct ig_sim_error *e, int status, const char *type, const char *param,
		  const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	e->type = type;
	e->param = param;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

static int bad_request(struct ig_sim_error *e, const char *param, const char *msg)
{
	return reject(e, 400, "BadRequestError", param, "%s", msg);
}

/* ---- JSON field helpers ------------------------------------------------------------ */

/* Optional members: 0 absent or null, 1 present and well typed, -1 wrong type. */
static int opt_member(struct ig_json_value o, const char *key, enum ig_json_type type,
		      struct ig_json_value *v)
{
	if (ig_json_get(o, key, v) < 0 || v->type == IG_JSON_NULL)
		return 0;
	return v->type == type ? 1 : -1;
}

static int opt_int(struct ig_json_value o, const char *key, int64_t *out)
{
	struct ig_json_value v;
	int rc = opt_member(o, key, IG_JSON_NUMBER, &v);
	if (rc == 1 && ig_json_int64(v, out) < 0)
		return -1;
	return rc;
}

static int opt_bool(struct ig_json_value o, const char *key, bool *out)
{
	struct ig_json_value v;
	int rc = opt_member(o, key, IG_JSON_BOOL, &v);
	if (rc == 1)
		*out = ig_json_bool(v) == 1;
	return rc;
}

static int opt_double(struct ig_json_value o, const char *key, double *out)
{
	struct ig_json_value v;
	int rc = opt_member(o, key, IG_JSON_NUMBER, &v);
	if (rc == 1 && ig_json_double(v, out) < 0)
		return -1;
	return rc;
}

/* ---- prompt ids ---------------------------------------------------------------------- */

static void ids_push(struct ig_sim_request *r, uint64_t id)
{
	if (!r->ids_truncated && ig_buf_append(&r->ids, &id, sizeof id) < 0)
		r->ids_truncated = true;
}

static void ids_push_special(struct ig_sim_request *r, const char *token)
{
	ids_push(r, ig_sim_token_id(token));
}

/* Tokenizes text onto the ids; returns its token count. */
static size_t ids_push_text(struct ig_sim_request *r, struct ig_str text)
{
	size_t n = ig_sim_tokenize(text, NULL, 0);
	if (r->ids_truncated || ig_buf_reserve(&r->ids, n * sizeof(uint64_t)) < 0) {
		r->ids_truncated = true;
		return n;
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

/* Tokens of a completion prompt: a string, one string in a list, or a list
 * of token ids. */
static int prompt_tokens(struct ig_json_value p, long *out, struct ig_sim_request *r)
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
	} else if (p.type == IG_JSON_ARRAY && ig_json_array_next(p, &pos, &e) == 1) {
		if (e.type == IG_JSON_STRING) {
			struct ig_json_value more;
			if (ig_json_array_next(p, &pos, &more) == 0)
				rc = prompt_tokens(e, out, r);
		} else if (e.type == IG_JSON_NUMBER) {
			long n = 0;
			rc = 0;
			do {
				int64_t id = 0;
				if (e.type != IG_JSON_NUMBER || ig_json_int64(e, &id) < 0)
					rc = -1;
				ids_push(r, (uint64_t)id);
				n++;
			} while (ig_json_array_next(p, &pos, &e) == 1);
			*out = n;
		}
	}
	ig_buf_free(&tmp);
	return rc;
}

/* Tokens of one chat message's content: a string or a list of parts, of
 * which only the text ones count. */
static int content_tokens(struct ig_json_value c, long *out, struct ig_sim_request *r)
{
	struct ig_buf tmp = {0};
	int rc = 0;
	*out = 0;
	if (c.type == IG_JSON_NULL)
		return 0;
	if (c.type == IG_JSON_STRING) {
		rc = ig_json_string(c, &tmp);
		*out = (long)ids_push_text(r, ig_buf_str(&tmp));
	} else if (c.type == IG_JSON_ARRAY) {
		struct ig_json_value part, text;
		size_t pos = 0;
		while (rc == 0 && ig_json_array_next(c, &pos, &part) == 1) {
			if (ig_json_get(part, "text", &text) < 0 || text.type != IG_JSON_STRING)
				continue;
			ig_buf_reset(&tmp);
			rc = ig_json_string(text, &tmp);
			*out += (long)ids_push_text(r, ig_buf_str(&tmp));
		}
	} else {
		rc = -1;
	}
	ig_buf_free(&tmp);
	return rc;
}

/* A chat prompt as a chat template lays it out: per message a start
 * marker, the role, a separator, the content and an end marker; then the
 * opening of the assistant's turn. */
static int messages_tokens(struct ig_json_value msgs, long *out, struct ig_sim_request *r)
{
	struct ig_json_value m, role, content;
	struct ig_buf name = {0};
	size_t pos = 0;
	long n = IG_SIM_CHAT_REPLY_OVERHEAD, count = 0;
	int rc = 0;
	ig_buf_init(&name, 256);
	while (rc == 0 && ig_json_array_next(msgs, &pos, &m) == 1) {
		long t = 0;
		if (m.type != IG_JSON_OBJECT || ig_json_get(m, "role", &role) < 0 ||
		    role.type != IG_JSON_STRING) {
			rc = -1;
			break;
		}
		ig_buf_reset(&name);
		ids_push_special(r, "<|im_start|>");
		ids_push_special(
		    r, ig_json_string(role, &name) == 0 && ig_buf_cstr(&name) ? name.ptr : "?");
		ids_push_special(r, "\n");
		if (ig_json_get(m, "content", &content) == 0 && content_tokens(content, &t, r) < 0)
			rc = -1;
		ids_push_special(r, "<|im_end|>");
		n += t + IG_SIM_CHAT_MSG_OVERHEAD;
		count++;
	}
	ids_push_special(r, "<|im_start|>");
	ids_push_special(r, "assistant");
	ids_push_special(r, "\n");
	ig_buf_free(&name);
	*out = n;
	return rc == 0 && count ? 0 : -1;
}

/* ---- fields ---------------------------------------------------------------------------- */

/* Reads what both endpoints share. */
static int read_common(struct ig_json_value root, struct ig_sim_request *r, struct ig_sim_error *e)
{
	struct ig_json_value v;
	int rc = opt_member(root, "model", IG_JSON_STRING, &v);
	if (rc < 0 || (rc == 1 && ig_json_string(v, &r->model) < 0))
		return bad_request(e, "model", "'model' must be a string.");
	if (opt_bool(root, "stream", &r->stream) < 0)
		return bad_request(e, "stream", "'stream' must be a boolean.");
	rc = opt_member(root, "stream_options", IG_JSON_OBJECT, &v);
	if (rc < 0)
		return bad_request(e, "stream_options", "'stream_options' must be an object.");
	if (rc == 1) {
		if (!r->stream)
			return bad_request(
			    e, "stream_options",
			    "Stream options can only be defined when `stream=True`.");
		/* {} means include_usage true, as in vLLM's StreamOptions. */
		r->include_usage = true;
		if (opt_bool(v, "include_usage", &r->include_usage) < 0)
			return bad_request(e, "stream_options",
					   "'include_usage' must be a boolean.");
	}
	int64_t n = 1;
	if (opt_int(root, "n", &n) < 0 || n != 1)
		return bad_request(e, "n", "The simulator supports only n=1.");
	if (opt_bool(root, "ignore_eos", &r->ignore_eos) < 0)
		return bad_request(e, "ignore_eos", "'ignore_eos' must be a boolean.");
	rc = opt_double(root, "temperature", &r->temperature);
	if (rc < 0)
		return bad_request(e, "temperature", "'temperature' must be a number.");
	r->has_temp = rc == 1;
	rc = opt_int(root, "seed", &r->seed);
	if (rc < 0)
		return bad_request(e, "seed", "'seed' must be an integer.");
	r->has_seed = rc == 1;
	return 0;
}

/* A max_tokens-like member into *asked (left alone when absent). */
static int read_max_tokens(struct ig_json_value root, const char *key, int64_t *asked,
			   struct ig_sim_error *e)
{
	int64_t mt;
	int rc = opt_int(root, key, &mt);
	if (rc < 0 || (rc == 1 && mt < 1))
		return reject(e, 400, "BadRequestError", key,
			      "'%s' must be an integer of at least 1.", key);
	if (rc == 1)
		*asked = mt;
	return 0;
}

static int read_completion(struct ig_json_value root, struct ig_sim_request *r, int64_t *asked,
			   struct ig_sim_error *e)
{
	struct ig_json_value prompt;
	if (ig_json_get(root, "prompt", &prompt) < 0 || prompt.type == IG_JSON_NULL)
		return bad_request(e, "prompt", "Field required: 'prompt'.");
	if (prompt_tokens(prompt, &r->prompt_tokens, r) < 0)
		return bad_request(e, "prompt",
				   "'prompt' must be a string, a list of one string or a list of "
				   "token ids.");
	r->prompt_key = prompt.raw;
	return read_max_tokens(root, "max_tokens", asked, e);
}

static int read_chat(struct ig_json_value root, struct ig_sim_request *r, int64_t *asked,
		     struct ig_sim_error *e)
{
	struct ig_json_value msgs;
	if (ig_json_get(root, "messages", &msgs) < 0 || msgs.type == IG_JSON_NULL)
		return bad_request(e, "messages", "Field required: 'messages'.");
	if (msgs.type != IG_JSON_ARRAY || messages_tokens(msgs, &r->prompt_tokens, r) < 0)
		return bad_request(e, "messages",
				   "'messages' must be a non-empty list of {role, content}.");
	r->prompt_key = msgs.raw;
	/* max_completion_tokens wins over the deprecated max_tokens. */
	if (read_max_tokens(root, "max_tokens", asked, e) < 0 ||
	    read_max_tokens(root, "max_completion_tokens", asked, e) < 0)
		return -1;
	return 0;
}

/* ---- against the configuration ------------------------------------------------------ */

/* Resolves `model`: a base name, an adapter, or 404. */
static int resolve_model(const struct ig_sim_config *c, struct ig_sim_request *r,
			 struct ig_sim_error *e)
{
	struct ig_str m = ig_buf_str(&r->model);
	if (!m.len) {
		r->name = ig_str_from(ig_sim_label_name(c));
	} else if (ig_sim_is_base_name(c, m)) {
		r->name = m;
	} else if (ig_sim_find_adapter(c, m) >= 0) {
		r->name = m;
		r->adapter = true;
	} else {
		return reject(e, 404, "NotFoundError", "model", "The model `%.*s` does not exist.",
			      IG_STR_FMT(m));
	}
	return 0;
}

/* vLLM's context-length check and its message; sets r->max_tokens from
 * what was asked (-1: nothing). */
static int check_length(const struct ig_sim_config *c, struct ig_sim_request *r, int64_t asked,
			struct ig_sim_error *e)
{
	long len = c->max_model_len;
	if (asked < 0 && r->kind == IG_SIM_CHAT) {
		if (r->prompt_tokens >= len)
			return reject(e, 400, "BadRequestError", NULL,
				      "This model's maximum context length is %ld tokens. However, "
				      "you requested %ld tokens in the messages, Please reduce the "
				      "length of the messages.",
				      len, r->prompt_tokens);
		r->max_tokens = len - r->prompt_tokens;
		return 0;
	}
	r->max_tokens = asked < 0 ? 16 : (long)asked;
	if (r->prompt_tokens + r->max_tokens > len)
		return reject(e, 400, "BadRequestError", NULL,
			      "This model's maximum context length is %ld tokens. However, you "
			      "requested %ld tokens (%ld in the messages, %ld in the completion). "
			      "Please reduce the length of the messages or completion.",
			      len, r->prompt_tokens + r->max_tokens, r->prompt_tokens,
			      r->max_tokens);
	return 0;
}

int ig_sim_parse_request(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			 size_t len, struct ig_sim_request *out, struct ig_sim_error *err)
{
	struct ig_json_value root;
	int64_t asked = -1; /* max_tokens as given */

	memset(out, 0, sizeof *out);
	out->kind = kind;
	ig_buf_init(&out->model, 4096);
	/* A prompt longer than the context is refused anyway; ids past it
	 * would never be looked up. */
	ig_buf_init(&out->ids, ((size_t)c->max_model_len + 64) * sizeof(uint64_t));
	if (ig_json_parse(body, len, &root) < 0 || root.type != IG_JSON_OBJECT)
		return bad_request(err, NULL, "JSON decode error: the body is not a JSON object.");
	if (read_common(root, out, err) < 0)
		return -1;
	if ((kind == IG_SIM_CHAT ? read_chat : read_completion)(root, out, &asked, err) < 0)
		return -1;
	if (resolve_model(c, out, err) < 0 || check_length(c, out, asked, err) < 0)
		return -1;
	return 0;
}

void ig_sim_request_free(struct ig_sim_request *r)
{
	ig_buf_free(&r->model);
	ig_buf_free(&r->ids);
}
