/* Unit tests for the text/event-stream splitter: sample streams fed in
 * every cut (one cut, two cuts, byte by byte) must give the same payloads;
 * data lines with and without the space, CRLF, comments and other fields,
 * over-long lines (skipped, or an error in strict mode), the BOM, and
 * reading usage out of a vLLM stream with ig_json_find_usage(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/sse.h"
#include "json/usage.h"

/* Payloads seen, each written as <payload> so that empty ones and
 * boundaries show. */
struct seen {
	struct ig_buf text;
	int n;
	int stop_at; /* return 7 from this payload on (1-based), 0: never */
};

static int collect(void *ud, const char *data, size_t len)
{
	struct seen *s = ud;
	s->n++;
	ig_buf_append(&s->text, "<", 1);
	ig_buf_append(&s->text, data, len);
	ig_buf_append(&s->text, ">", 1);
	return s->stop_at && s->n >= s->stop_at ? 7 : 0;
}

/* Feeds stream in the pieces that the sorted cut offsets make; returns
 * the first non-zero feed result (later pieces are not fed). */
static int feed_cuts(struct ig_sse *sse, const char *stream, size_t len, const size_t *cuts,
		     size_t ncuts, struct seen *seen)
{
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		/* Each piece in its own exact-size block, so that ASan sees a
		 * read past its end. */
		char *piece = malloc(to - at ? to - at : 1);
		memcpy(piece, stream + at, to - at);
		int rc = ig_sse_feed(sse, piece, to - at, collect, seen);
		free(piece);
		if (rc)
			return rc;
		at = to;
	}
	return 0;
}

struct result {
	int rc;
	uint64_t dropped;
	char text[4096];
};

static struct result run(const char *stream, size_t len, size_t max, unsigned flags,
			 const size_t *cuts, size_t ncuts)
{
	struct ig_sse sse;
	struct seen seen = {0};
	struct result r;

	ig_sse_init(&sse, max, flags);
	ig_buf_init(&seen.text, sizeof r.text - 1);
	r.rc = feed_cuts(&sse, stream, len, cuts, ncuts, &seen);
	r.dropped = sse.dropped;
	assert_true(seen.text.len < sizeof r.text);
	memcpy(r.text, seen.text.ptr ? seen.text.ptr : "", seen.text.len);
	r.text[seen.text.len] = '\0';
	ig_buf_free(&seen.text);
	ig_sse_free(&sse);
	return r;
}

/* The same result for the whole stream, for every single cut and pair of
 * cuts, and byte by byte. */
static struct result same_at_every_cut(const char *stream, size_t max, unsigned flags)
{
	size_t len = strlen(stream);
	struct result whole = run(stream, len, max, flags, NULL, 0);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[2] = {i, j};
			struct result r = run(stream, len, max, flags, cuts, 2);
			if (r.rc != whole.rc || r.dropped != whole.dropped ||
			    strcmp(r.text, whole.text) != 0)
				fail_msg(
				    "cuts %zu,%zu: rc %d dropped %llu %s; whole: rc %d dropped "
				    "%llu %s",
				    i, j, r.rc, (unsigned long long)r.dropped, r.text, whole.rc,
				    (unsigned long long)whole.dropped, whole.text);
		}
	}
	size_t *every = malloc(len * sizeof *every);
	for (size_t i = 0; i < len; i++)
		every[i] = i + 1;
	struct result r = run(stream, len, max, flags, every, len ? len - 1 : 0);
	assert_int_equal(r.rc, whole.rc);
	assert_int_equal(r.dropped, whole.dropped);
	assert_string_equal(r.text, whole.text);
	free(every);
	return whole;
}

static void test_fields_and_line_ends(void **state)
{
	static const char stream[] = "data: {\"a\":1}\n"
				     "\n"
				     ": a comment, data: not this\n"
				     "event: message\r\n"
				     "id: 7\n"
				     "retry: 100\n"
				     "data:{\"b\":2}\r\n"
				     "\r\n"
				     "data:  two spaces\n"
				     "data:\n"
				     "data\n"
				     "data \n"
				     "datax: other field\n"
				     "Data: case matters\n"
				     " data: leading space\n"
				     "data: cr\rinside\r\n"
				     "data: ends in two CRs\r\r\n"
				     "data: [DONE]\n"
				     "data: no line end";
	struct result r = same_at_every_cut(stream, 64, 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.dropped, 0);
	assert_string_equal(r.text, "<{\"a\":1}><{\"b\":2}>< two spaces><><><cr\rinside>"
				    "<ends in two CRs\r><[DONE]>");
}

/* Lines around the ceiling of 16 bytes, CR not counted. */
static const char near_limit[] = "data: 0123456789\n"	  /* 16: kept */
				 "data: 0123456789\r\n"	  /* 16 and CRLF: kept */
				 "data: 0123456789a\n"	  /* 17: dropped */
				 "data: 0123456789a\r\n"  /* 17 and CRLF: dropped */
				 "data: 0123456789\r\r\n" /* 17 with the CR: dropped */
				 ": a long comment, dropped too\n"
				 "data: short\n";

static void test_overlong_skipped(void **state)
{
	struct result r = same_at_every_cut(near_limit, 16, 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.dropped, 4);
	assert_string_equal(r.text, "<0123456789><0123456789><short>");

	/* Far longer than the ceiling, cut in many places. */
	char big[600];
	memset(big, 'x', sizeof big);
	memcpy(big, "data: ", 6);
	big[sizeof big - 2] = '\n';
	big[sizeof big - 1] = '\0';
	char stream[700];
	snprintf(stream, sizeof stream, "data: a\n%sdata: b\n", big);
	size_t cuts[] = {3, 9, 10, 100, 300, 599, 600, 606};
	r = run(stream, strlen(stream), 16, 0, cuts, sizeof cuts / sizeof cuts[0]);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.dropped, 1);
	assert_string_equal(r.text, "<a><b>");
}

static void test_overlong_strict(void **state)
{
	struct result r = same_at_every_cut(near_limit, 16, IG_SSE_STRICT);
	assert_int_equal(r.rc, -ENOBUFS);
	assert_int_equal(r.dropped, 1);
	assert_string_equal(r.text, "<0123456789><0123456789>");
}

static void test_bom(void **state)
{
	struct result r = same_at_every_cut("\xef\xbb\xbf"
					    "data: x\n\xef\xbb\xbf"
					    "data: y\ndata: z\n",
					    64, 0);
	assert_string_equal(r.text, "<x><z>");
	r = same_at_every_cut("\xef\xbb\xbf: comment\ndata: y\n", 64, 0);
	assert_string_equal(r.text, "<y>");
}

static void test_callback_stops(void **state)
{
	static const char stream[] = "data: 1\ndata: 2\ndata: 3\n";
	struct ig_sse sse;
	struct seen seen = {.stop_at = 2};

	ig_sse_init(&sse, 64, 0);
	ig_buf_init(&seen.text, 0);
	assert_int_equal(ig_sse_feed(&sse, stream, sizeof stream - 1, collect, &seen), 7);
	assert_int_equal(seen.n, 2);
	ig_buf_free(&seen.text);
	ig_sse_free(&sse);
}

struct span {
	const char *lo, *hi;
	int inside;
};

static int in_piece(void *ud, const char *data, size_t len)
{
	struct span *s = ud;
	s->inside += data >= s->lo && data + len <= s->hi;
	return 0;
}

/* Whole lines are handed over from the caller's piece, not copied; a
 * zeroed struct works, with the default ceiling. */
static void test_zero_copy_and_zeroed(void **state)
{
	static const char stream[] = "data: 1\r\ndata: 2\n";
	struct ig_sse sse = {0};
	struct span sp = {stream, stream + sizeof stream - 1, 0};

	assert_int_equal(ig_sse_feed(&sse, stream, sizeof stream - 1, in_piece, &sp), 0);
	assert_int_equal(sp.inside, 2);
	ig_sse_free(&sse);

	size_t n = IG_SSE_DEFAULT_MAX_LINE + 1;
	char *line = malloc(n + 1);
	struct seen seen = {0};
	memset(line, 'y', n);
	memcpy(line, "data:", 5);
	line[n] = '\n';
	ig_buf_init(&seen.text, 2 * n);
	sse = (struct ig_sse){0};
	/* One byte over, in two pieces: dropped. */
	assert_int_equal(ig_sse_feed(&sse, line, n / 2, collect, &seen), 0);
	assert_int_equal(ig_sse_feed(&sse, line + n / 2, n + 1 - n / 2, collect, &seen), 0);
	assert_int_equal(seen.n, 0);
	assert_int_equal(sse.dropped, 1);
	/* At the ceiling exactly: kept. */
	memcpy(line + 1, "data:", 5);
	assert_int_equal(ig_sse_feed(&sse, line + 1, n / 2, collect, &seen), 0);
	assert_int_equal(ig_sse_feed(&sse, line + 1 + n / 2, n - n / 2, collect, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.text.len, IG_SSE_DEFAULT_MAX_LINE - 5 + 2);
	ig_buf_free(&seen.text);
	ig_sse_free(&sse);
	free(line);
}

/* ---- usage out of a vLLM stream ---- */

struct usage_seen {
	int found;
	struct ig_usage u;
};

static int read_usage(void *ud, const char *data, size_t len)
{
	struct usage_seen *s = ud;
	struct ig_usage u;
	if (ig_json_find_usage(data, len, &u) == 0) {
		s->found++;
		s->u = u;
	}
	return 0;
}

/* A streamed chat completion with stream_options.include_usage: every
 * chunk has "usage":null (one also has a decoy inside its content), the
 * last one before [DONE] the counts. */
static void test_stream_usage(void **state)
{
	static const char stream[] =
	    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	    "\"content\":\"\"}}],\"usage\":null}\n\n"
	    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
	    "\"\\\"usage\\\":{\\\"prompt_tokens\\\":1}\"}}],\"usage\":null}\r\n\r\n"
	    ": keep-alive\n\n"
	    "data:{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
	    "\"stop\"}],\"usage\":null}\n\n"
	    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":17,"
	    "\"total_tokens\":25,\"completion_tokens\":8,\"prompt_tokens_details\":"
	    "{\"cached_tokens\":16}}}\n\n"
	    "data: [DONE]\n\n";
	size_t len = sizeof stream - 1;

	for (size_t cut = 0; cut <= len; cut++) {
		struct ig_sse sse;
		struct usage_seen s = {0};
		ig_sse_init(&sse, 1024, 0);
		assert_int_equal(ig_sse_feed(&sse, stream, cut, read_usage, &s), 0);
		assert_int_equal(ig_sse_feed(&sse, stream + cut, len - cut, read_usage, &s), 0);
		assert_int_equal(s.found, 1);
		assert_int_equal(s.u.prompt_tokens, 17);
		assert_int_equal(s.u.completion_tokens, 8);
		assert_int_equal(s.u.cached_tokens, 16);
		ig_sse_free(&sse);
	}
}

/* The media type, whatever its case and parameters (RFC 9110 §8.3.1). */
static void test_media_type(void **state)
{
	(void)state;
	assert_true(ig_sse_media_type(IG_STR("text/event-stream")));
	assert_true(ig_sse_media_type(IG_STR("Text/Event-Stream; charset=utf-8")));
	assert_true(ig_sse_media_type(IG_STR(" TEXT/EVENT-STREAM ;charset=UTF-8")));
	assert_false(ig_sse_media_type(IG_STR("application/json")));
	assert_false(ig_sse_media_type(IG_STR("text/event-streams")));
	assert_false(ig_sse_media_type(IG_STR("text/event-stream-x; a=b")));
	assert_false(ig_sse_media_type(IG_STR("")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_and_line_ends),
	    cmocka_unit_test(test_overlong_skipped),
	    cmocka_unit_test(test_overlong_strict),
	    cmocka_unit_test(test_bom),
	    cmocka_unit_test(test_callback_stops),
	    cmocka_unit_test(test_zero_copy_and_zeroed),
	    cmocka_unit_test(test_stream_usage),
	    cmocka_unit_test(test_media_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
