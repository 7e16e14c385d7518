/* The incremental JSON parser (json/stream.h) against the whole-document
 * one: for documents valid and not, cut at every byte and fed a byte at a
 * time, the same verdict, root and members as ig_json_parse_members(); and
 * the work stays linear when a long string or number arrives in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"
#include "json/stream.h"

static const char *const keys[] = {"model", "prompt", "messages", "a", "b", "\xc3\xa9"};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Feeds text in pieces ending at each of cuts[0, ncuts) (ascending), then
 * finishes, and compares with ig_json_parse_members(). Each piece is a
 * fresh copy of the prefix, so the stream may not keep pointers. */
static void check_cuts(const char *text, size_t len, const size_t *cuts, size_t ncuts)
{
	struct ig_json_value want[NKEYS], got[NKEYS], wroot = {0}, groot = {0};
	int wrc = ig_json_parse_members(text, len, keys, NKEYS, want, &wroot);
	struct ig_json_stream s;
	ig_json_stream_init(&s, keys, NKEYS);
	for (size_t i = 0; i < ncuts; i++) {
		char *piece = malloc(cuts[i] + 1);
		assert_non_null(piece);
		memcpy(piece, text, cuts[i]);
		int frc = ig_json_stream_feed(&s, piece, cuts[i]);
		free(piece);
		if (wrc == 0)
			assert_int_equal(frc, 0);
	}
	int grc = ig_json_stream_finish(&s, text, len, got, &groot);
	if (grc != wrc)
		fail_msg("%.*s: whole %d, in pieces %d", (int)len, text, wrc, grc);
	if (wrc == 0) {
		assert_int_equal(groot.type, wroot.type);
		assert_ptr_equal(groot.raw.ptr, wroot.raw.ptr);
		assert_int_equal(groot.raw.len, wroot.raw.len);
	}
	for (size_t k = 0; k < NKEYS; k++) {
		assert_int_equal(got[k].type, want[k].type);
		assert_ptr_equal(got[k].raw.ptr, want[k].raw.ptr);
		assert_int_equal(got[k].raw.len, want[k].raw.len);
	}
}

static const char *const docs[] = {
    /* valid */
    "{}",
    "[]",
    " {\"model\": \"m\", \"prompt\": \"hello\"} ",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"a\":{\"model\":1}}",
    "{\"a\": -0.5e+10, \"b\": 0, \"model\": 12.25E-3}",
    "{\"a\": true, \"b\": false, \"model\": null, \"prompt\": [1, [2, [3]], {}]}",
    "{\"mo\\u0064el\": \"x\", \"model\": \"last wins\"}",
    "{\"\\u00e9\": 1, \"\xc3\xa9\": 2}",
    "{\"prompt\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}",
    "\"a string root\"",
    "123",
    "-0",
    "1.5e3",
    "true",
    "null",
    "[{\"model\": \"nested, not a member\"}]",
    "{\"a\":{\"b\":{\"c\":[[[[{}]]]]}},\"b\":[]}",
    /* invalid */
    "",
    " ",
    "{",
    "{\"model\"",
    "{\"model\":}",
    "{\"model\":\"m\",}",
    "{\"model\" \"m\"}",
    "[1,]",
    "[1 2]",
    "{\"a\":1]",
    "[1}",
    "01",
    "-",
    "1.",
    "1e",
    "1e+",
    ".5",
    "tru",
    "trueish",
    "nul",
    "nulL",
    "\"unterminated",
    "\"bad escape \\x\"",
    "\"bad hex \\u12G4\"",
    "\"lone low \\udc00\"",
    "\"lone high \\ud800\"",
    "\"high then text \\ud800abcdef\"",
    "\"high then bad low \\ud800\\u0041\"",
    "\"control \x01 byte\"",
    "\"overlong \xc0\xaf\"",
    "\"surrogate in utf8 \xed\xa0\x80\"",
    "\"cut utf8 \xe2\x82\"",
    "\"above max \xf4\x90\x80\x80\"",
    "{} {}",
    "{}x",
    "[\"a\" \"b\"]",
    "{1: 2}",
};

static void test_every_cut(void **state)
{
	(void)state;
	for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
		const char *t = docs[d];
		size_t len = strlen(t), cuts[2];
		/* One cut anywhere, and two. */
		for (size_t c = 0; c <= len; c++) {
			cuts[0] = c;
			check_cuts(t, len, cuts, 1);
			for (size_t c2 = c; c2 <= len; c2 += 3) {
				cuts[1] = c2;
				check_cuts(t, len, cuts, 2);
			}
		}
		/* A byte at a time. */
		size_t *all = malloc((len + 1) * sizeof(*all));
		assert_non_null(all);
		for (size_t c = 0; c <= len; c++)
			all[c] = c;
		check_cuts(t, len, all, len + 1);
		free(all);
	}
}

/* Nesting: as deep as the whole-document parser allows, and one more. */
static void test_depth(void **state)
{
	(void)state;
	for (size_t depth = IG_JSON_MAX_DEPTH - 1; depth <= IG_JSON_MAX_DEPTH + 1; depth++) {
		char *t = malloc(2 * depth + 1);
		assert_non_null(t);
		memset(t, '[', depth);
		memset(t + depth, ']', depth);
		size_t cuts[1] = {depth};
		check_cuts(t, 2 * depth, cuts, 1);
		free(t);
	}
}

/* A 4 MB prompt and a 1000-digit number arriving 1 KB at a time: each
 * piece is consumed whole (pos reaches the end of what arrived), so no
 * byte is read twice; a stream that went back to the start of a token
 * would stand still at it and read the prompt 4096 times. */
static void test_long_tokens_in_pieces(void **state)
{
	(void)state;
	size_t n = 4u << 20;
	char *t = malloc(n + 1100);
	assert_non_null(t);
	size_t len = (size_t)sprintf(t, "{\"model\": \"m\", \"prompt\": \"");
	memset(t + len, 'x', n);
	len += n;
	len += (size_t)sprintf(t + len, "\", \"a\": 1");
	memset(t + len, '5', 1000); /* a long number too */
	len += 1000;
	t[len++] = '}';
	struct ig_json_stream s;
	struct ig_json_value out[NKEYS], root;
	ig_json_stream_init(&s, keys, NKEYS);
	for (size_t at = 0; at < len; at += 1024) {
		assert_int_equal(ig_json_stream_feed(&s, t, at), 0);
		assert_int_equal(s.pos, at);
	}
	assert_int_equal(ig_json_stream_finish(&s, t, len, out, &root), 0);
	assert_int_equal(out[1].type, IG_JSON_STRING);
	assert_int_equal(out[1].raw.len, n + 2);
	assert_int_equal(out[3].type, IG_JSON_NUMBER);
	assert_int_equal(out[3].raw.len, 1001);
	/* Fed again past the end, or the buffer shrinking: refused. */
	assert_int_equal(ig_json_stream_feed(&s, t, len - 1), -1);
	free(t);
}

/* The scans over plain string bytes take 64, 32 and 16 bytes at a time:
 * a byte that matters must be seen wherever it falls, in both parsers. */
static void test_special_byte_at_every_position(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		int valid;
	} specials[] = {
	    {"\\\"", 1},	    /* an escaped quote */
	    {"\\n", 1},	    /* an escape */
	    {"\xc3\xa9", 1},	    /* two-byte UTF-8 */
	    {"\xf0\x9f\x98\x80", 1}, /* four-byte UTF-8 */
	    {"\x1f", 0},	    /* a control byte */
	    {"\x7f", 1},	    /* DEL is plain */
	    {"\xff", 0},	    /* never UTF-8 */
	    {"\"", 0},		    /* a quote ends the string early: junk follows */
	};
	char t[400];
	for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++)
		for (size_t at = 0; at < 300; at++) {
			size_t sl = strlen(specials[k].bytes), len = 0;
			t[len++] = '"';
			memset(t + len, 'a', at);
			len += at;
			memcpy(t + len, specials[k].bytes, sl);
			len += sl;
			memset(t + len, 'b', 300 - at);
			len += 300 - at;
			t[len++] = '"';
			struct ig_json_value root;
			assert_int_equal(ig_json_parse(t, len, &root), specials[k].valid ? 0 : -1);
			size_t cuts[1] = {at + 1};
			check_cuts(t, len, cuts, 1);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_cut),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_long_tokens_in_pieces),
	    cmocka_unit_test(test_special_byte_at_every_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
