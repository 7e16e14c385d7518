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

/* Length of the content a choice carries: `text` (completions), or
 * `delta.content` (streamed chat) or `message.content` (chat). */
static size_t choice_content(struct ig_json_value choice)
{
	struct ig_json_value v, inner;
	if (ig_json_get(choice, "text", &v) == 0 && v.type == IG_JSON_STRING)
		return v.raw.len - 2;
	if ((ig_json_get(choice, "delta", &inner) == 0 ||
	     ig_json_get(choice, "message", &inner) == 0) &&
	    ig_json_get(inner, "content", &v) == 0 && v.type == IG_JSON_STRING)
		return v.raw.len - 2;
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
