/* Reading model-server answers: the text/event-stream framing of streamed
 * responses and the JSON of each chunk. Both come from the peer, so both
 * are bounded and tolerate any cut of the byte stream. */
#include <string.h>

#include "bench/bench.h"
#include "json/json.h"

void ig_bench_sse_init(struct ig_bench_sse *s, size_t max_line)
{
	ig_buf_init(&s->line, max_line);
}

void ig_bench_sse_free(struct ig_bench_sse *s)
{
	ig_buf_free(&s->line);
}

/* One complete line (without its newline). Only `data:` lines matter to a
 * benchmark; comments, `event:` and `id:` lines and blank separators are
 * skipped. vLLM puts each event's JSON on one data line. */
static int sse_line(const char *p, size_t len, ig_bench_sse_cb cb, void *ud)
{
	if (len && p[len - 1] == '\r')
		len--;
	if (len < 5 || memcmp(p, "data:", 5) != 0)
		return 0;
	p += 5;
	len -= 5;
	if (len && *p == ' ') {
		p++;
		len--;
	}
	return cb(ud, p, len);
}

int ig_bench_sse_feed(struct ig_bench_sse *s, const char *p, size_t len, ig_bench_sse_cb cb,
		      void *ud)
{
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t take = nl ? (size_t)(nl - p) : len;
		if (ig_buf_append(&s->line, p, take) < 0)
			return -1;
		if (!nl)
			return 0;
		int rc = sse_line(s->line.ptr ? s->line.ptr : "", s->line.len, cb, ud);
		ig_buf_reset(&s->line);
		if (rc)
			return rc;
		p += take + 1;
		len -= take + 1;
	}
	return 0;
}

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
