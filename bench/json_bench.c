/* Benchmark of the request-body reading the gateway does: ns per body for
 * ig_json_parse() alone, for ig_json_parse() followed by one ig_json_get()
 * per field the gateway wants (what it did before), and for
 * ig_json_parse_members() with the same fields in one pass; plus
 * ig_json_find_usage() on the last 8 KiB of a non-streamed response.
 * Bodies are chat requests whose messages hold plain text with a few
 * escapes and non-ASCII characters. Run: make bench-json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/rand.h"
#include "json/json.h"
#include "json/usage.h"

static const char *const keys[] = {"model",	   "prompt", "messages",      "input",
				   "instructions", "stream", "stream_options"};
#define NKEYS (sizeof keys / sizeof keys[0])

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Words of lowercase letters with, now and then, an escape or a
 * two-byte character, so that the string scanner leaves its fast path as
 * real prompts make it do. */
static void text(struct ig_buf *b, size_t len, struct ig_rng *rng)
{
	size_t start = b->len;
	while (b->len - start < len) {
		uint64_t r = ig_rng_below(rng, 64);
		if (r == 0)
			ig_buf_append_cstr(b, "\\n");
		else if (r == 1)
			ig_buf_append_cstr(b, "\\\"");
		else if (r == 2)
			ig_buf_append_cstr(b, "\xc3\xa9");
		else if (r < 12)
			ig_buf_append(b, " ", 1);
		else
			ig_buf_append(b, &"abcdefghijklmnopqrstuvwxyz"[ig_rng_below(rng, 26)], 1);
	}
}

static void chat_body(struct ig_buf *b, size_t bytes, struct ig_rng *rng)
{
	ig_buf_append_cstr(b, "{\"model\": \"llama-3-8b\", \"messages\": [");
	for (int i = 0; b->len < bytes; i++) {
		ig_buf_append_cstrs(b, i ? ", " : "", "{\"role\": \"", i % 2 ? "assistant" : "user",
				    "\", \"content\": \"", NULL);
		text(b, 2000, rng);
		ig_buf_append_cstr(b, "\"}");
	}
	ig_buf_append_cstr(b, "], \"max_tokens\": 256, \"temperature\": 0.7, \"stream\": true, "
			      "\"stream_options\": {\"include_usage\": true}}");
}

static void response_body(struct ig_buf *b, size_t bytes, struct ig_rng *rng)
{
	ig_buf_append_cstr(b, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
			      "\"model\":\"llama-3-8b\",\"choices\":[{\"index\":0,\"message\":"
			      "{\"role\":\"assistant\",\"content\":\"");
	text(b, bytes, rng);
	ig_buf_append_cstr(b, "\"},\"logprobs\":null,\"finish_reason\":\"length\"}],"
			      "\"usage\":{\"prompt_tokens\":1000,\"total_tokens\":1256,"
			      "\"completion_tokens\":256,\"prompt_tokens_details\":null},"
			      "\"prompt_logprobs\":null,\"kv_transfer_params\":null}");
}

static volatile size_t sink;

static int way_parse(const struct ig_buf *b)
{
	struct ig_json_value root;
	int rc = ig_json_parse(b->ptr, b->len, &root);
	sink += root.raw.len;
	return rc;
}

static int way_get(const struct ig_buf *b)
{
	struct ig_json_value root, v;
	if (ig_json_parse(b->ptr, b->len, &root) < 0)
		return -1;
	for (size_t i = 0; i < NKEYS; i++)
		if (ig_json_get(root, keys[i], &v) == 0)
			sink += v.raw.len;
	return 0;
}

static int way_members(const struct ig_buf *b)
{
	struct ig_json_value root, out[NKEYS];
	if (ig_json_parse_members(b->ptr, b->len, keys, NKEYS, out, &root) < 0)
		return -1;
	for (size_t i = 0; i < NKEYS; i++)
		sink += out[i].raw.len;
	return 0;
}

static int way_usage(const struct ig_buf *b)
{
	struct ig_usage u;
	size_t tail = b->len < 8192 ? b->len : 8192;
	if (ig_json_find_usage(b->ptr + b->len - tail, tail, &u) < 0)
		return -1;
	sink += (size_t)u.completion_tokens;
	return 0;
}

static double per_call(int (*way)(const struct ig_buf *), const struct ig_buf *b, long iters)
{
	for (long k = 0; k < iters / 4 + 1; k++)
		if (way(b) < 0) {
			fprintf(stderr, "benchmark body rejected\n");
			exit(1);
		}
	double best = 0;
	/* Best of three, to keep a noisy neighbour out of the figure. */
	for (int round = 0; round < 3; round++) {
		double t0 = now_ns();
		for (long k = 0; k < iters; k++)
			(void)way(b);
		double ns = (now_ns() - t0) / (double)iters;
		if (round == 0 || ns < best)
			best = ns;
	}
	return best;
}

int main(void)
{
	static const size_t sizes[] = {1024, 16 * 1024, 256 * 1024, 4 * 1024 * 1024};
	struct ig_rng rng;
	ig_rng_seed(&rng, 7);

	printf("| body bytes | parse ns | parse + %zu get ns | parse_members ns | "
	       "members/parse | MB/s (members) |\n",
	       NKEYS);
	printf("|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct ig_buf b;
		ig_buf_init(&b, 0);
		chat_body(&b, sizes[i], &rng);
		long iters = (long)(200u * 1024 * 1024 / b.len);
		if (iters > 200000)
			iters = 200000;
		double p = per_call(way_parse, &b, iters);
		double g = per_call(way_get, &b, iters);
		double m = per_call(way_members, &b, iters);
		printf("| %zu | %.0f | %.0f | %.0f | %.2f | %.0f |\n", b.len, p, g, m, m / p,
		       (double)b.len / m * 1e3);
		ig_buf_free(&b);
	}

	printf("\n| response bytes | parse (whole) ns | find_usage (last 8 KiB) ns |\n");
	printf("|---:|---:|---:|\n");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct ig_buf b;
		ig_buf_init(&b, 0);
		response_body(&b, sizes[i], &rng);
		long iters = (long)(200u * 1024 * 1024 / b.len);
		if (iters > 200000)
			iters = 200000;
		double p = per_call(way_parse, &b, iters);
		double u = per_call(way_usage, &b, 200000);
		printf("| %zu | %.0f | %.0f |\n", b.len, p, u);
		ig_buf_free(&b);
	}
	return 0;
}
