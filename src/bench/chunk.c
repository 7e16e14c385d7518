/* Reading model-server answers: the JSON of each streamed chunk (split out
 * of the text/event-stream by http/sse.h) and of a whole response. */
#include <string.h>

#include "bench/bench.h"
#include "json/json.h"

static void read_usage(struct ig_json_value root, struct ig_bench_chunk *out)
{
	struct ig_json_value usage, v;
	if (ig_json_get(root, "usage", &usage) < 0 || usage.type != IG_JSON_OBJECT)
		return;
	if (ig_json_get(usage, "completion_tokens", &v) == 0)
		(void)ig_json_int64(v, &out->completion_tokens);
	if (ig_json_get(usage, "prompt_tokens", &v) == 0)
		(void)ig_json_int64(v, &out->prompt_tokens);
}

/* Length of a member that is a JSON string, quotes left out; 0 when it is
 * absent, null or not a string. */
static size_t string_len(struct ig_json_value obj, const char *key)
{
	struct ig_json_value v;
	if (ig_json_get(obj, key, &v) == 0 && v.type == IG_JSON_STRING)
		return v.raw.len - 2;
	return 0;
}

/* The output a delta (streamed chat) or a message (whole chat answer)
 * carries: its content, its reasoning (vLLM's reasoning parsers write
 * `reasoning_content`, newer ones and OpenRouter-style servers
 * `reasoning`) and its tool calls' names and arguments. A reasoning model
 * streams its thoughts first and a tool call has no content at all: each
 * is generated tokens, so each counts for TTFT and ITL, as vLLM's
 * benchmark counts them. */
static size_t message_output(struct ig_json_value m)
{
	struct ig_json_value calls, call, fn;
	size_t n = string_len(m, "content") + string_len(m, "reasoning_content") +
		   string_len(m, "reasoning");
	if (ig_json_get(m, "tool_calls", &calls) == 0 && calls.type == IG_JSON_ARRAY) {
		size_t pos = 0;
		while (ig_json_array_next(calls, &pos, &call) == 1)
			if (ig_json_get(call, "function", &fn) == 0 && fn.type == IG_JSON_OBJECT)
				n += string_len(fn, "name") + string_len(fn, "arguments");
	}
	return n;
}

/* Length of the output a choice carries: `text` (completions), or
 * `delta` (streamed chat) or `message` (chat). */
static size_t choice_content(struct ig_json_value choice)
{
	struct ig_json_value v, inner;
	if (ig_json_get(choice, "text", &v) == 0 && v.type == IG_JSON_STRING)
		return v.raw.len - 2;
	if ((ig_json_get(choice, "delta", &inner) == 0 ||
	     ig_json_get(choice, "message", &inner) == 0) &&
	    inner.type == IG_JSON_OBJECT)
		return message_output(inner);
	return 0;
}

int ig_bench_response_parse(const char *data, size_t len, struct ig_bench_chunk *out)
{
	memset(out, 0, sizeof *out);
	out->completion_tokens = out->prompt_tokens = -1;
	struct ig_json_value root, v, choices, elem;
	if (ig_json_parse(data, len, &root) < 0)
		return -1;
	if (root.type != IG_JSON_OBJECT)
		return 0;
	if (ig_json_get(root, "error", &v) == 0) {
		out->error = true;
		return 0;
	}
	if (ig_json_get(root, "choices", &choices) == 0 && choices.type == IG_JSON_ARRAY) {
		size_t pos = 0;
		while (ig_json_array_next(choices, &pos, &elem) == 1)
			out->content += choice_content(elem);
	}
	read_usage(root, out);
	return 0;
}

int ig_bench_chunk_parse(const char *data, size_t len, struct ig_bench_chunk *out)
{
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		memset(out, 0, sizeof *out);
		out->completion_tokens = out->prompt_tokens = -1;
		out->done = true;
		return 0;
	}
	return ig_bench_response_parse(data, len, out);
}
