/* Unit tests for the JSON reader: validity tables, lookups, iteration,
 * string decoding, numbers and the string writer. Documents are copied
 * into exact-size heap blocks so ASan sees any over-read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rand.h"
#include "json/json.h"
#include "json/usage.h"

/* Parses a document kept alive in an exact-size heap copy; the caller
 * frees *copy. */
static int parse_n(const char *s, size_t len, struct ig_json_value *v, char **copy)
{
	*copy = malloc(len ? len : 1);
	memcpy(*copy, s, len);
	return ig_json_parse(*copy, len, v);
}

static int valid(const char *s)
{
	struct ig_json_value v;
	char *copy;
	int rc = parse_n(s, strlen(s), &v, &copy);
	free(copy);
	return rc;
}

static const char *const valid_docs[] = {
    "{}",
    "[]",
    " \t\r\n{} \n",
    "0",
    "-0",
    "1.5e10",
    "-12.25E-3",
    "1E+2",
    "\"\"",
    "true",
    "false",
    "null",
    "[1,2,3]",
    "{\"a\":1,\"b\":[true,false,null]}",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    "\"\\u0041\\u00e9\\u20AC\"",
    "\"\\ud83d\\ude00\"",
    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
    "\"\xef\xbf\xbf\"",
    "\"\xf4\x8f\xbf\xbf\"",
    "[[[[]]]]",
    "{\"\":{\"\":[{}]}}",
    "[ 1 , \"x\" , { } ]",
    "{\"a\":1,\"a\":2}",
    "123456789012345678901234567890",
    "\"\x7f\"",
};

static void test_valid_documents(void **state)
{
	for (size_t i = 0; i < sizeof(valid_docs) / sizeof(valid_docs[0]); i++)
		if (valid(valid_docs[i]) != 0)
			fail_msg("valid case %zu rejected: %s", i, valid_docs[i]);
}

static const char *const invalid_docs[] = {
    "",
    " ",
    "{",
    "}",
    "[",
    "[1,]",
    "[,1]",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\" 1}",
    "{a:1}",
    "{\"a\":1,}",
    "{'a':1}",
    "[1 2]",
    "01",
    "-",
    "+1",
    "1.",
    ".5",
    "1e",
    "1e+",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "tru",
    "truee",
    "nul",
    "True",
    "\"abc",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\u12g4\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"\\ud800x\"",
    "\"a\tb\"",
    "\"a\nb\"",
    "\"\x01\"",
    "\"\xc3\"",
    "\"\xc0\x80\"",
    "\"\xc1\xbf\"",
    "\"\xe0\x80\x80\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xf5\x80\x80\x80\"",
    "\"\xff\"",
    "\"\x80\"",
    "\"\xe2\x82\"",
    "{} {}",
    "1 2",
    "[1]]",
    "[\"a\":1]",
    "{\"a\":1 \"b\":2}",
    "\xef\xbb\xbf{}",
    "/*c*/{}",
    "[1,,2]",
};

static void test_invalid_documents(void **state)
{
	for (size_t i = 0; i < sizeof(invalid_docs) / sizeof(invalid_docs[0]); i++)
		if (valid(invalid_docs[i]) == 0)
			fail_msg("invalid case %zu accepted: %s", i, invalid_docs[i]);

	/* A NUL inside a string or after a document. */
	struct ig_json_value v;
	char *copy;
	assert_int_equal(parse_n("\"a\0b\"", 5, &v, &copy), -1);
	free(copy);
	assert_int_equal(parse_n("{}\0", 3, &v, &copy), -1);
	free(copy);
}

static char *nested(size_t depth)
{
	char *s = malloc(2 * depth + 1);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	return s;
}

/* Long strings go through an eight-bytes-at-a-time path: every special
 * byte must be found wherever it sits relative to those eight-byte steps. */
static void test_long_strings_every_offset(void **state)
{
	static const struct {
		const char *insert;
		bool valid;
	} cases[] = {
	    {"\x01", false},	{"\x1f", false},     {"\x7f", true}, {"\xff", false},
	    {"\xc3\xa9", true}, {"\\n", true},	     {"\\q", false}, {"\"", false},
	    {"\\u00e9", true},	{"\xe2\x82", false}, {" ", true},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		for (size_t off = 0; off < 40; off++) {
			char doc[128];
			size_t n = 0;
			doc[n++] = '"';
			for (size_t i = 0; i < off; i++)
				doc[n++] = 'a';
			size_t ins = strlen(cases[k].insert);
			memcpy(doc + n, cases[k].insert, ins);
			n += ins;
			for (size_t i = 0; i < 40; i++)
				doc[n++] = 'b';
			doc[n++] = '"';
			struct ig_json_value v;
			int rc = ig_json_parse(doc, n, &v);
			if ((rc == 0) != cases[k].valid)
				fail_msg("case %zu at offset %zu: got %d", k, off, rc);
		}
	}
}

static void test_depth_limit(void **state)
{
	char *s = nested(IG_JSON_MAX_DEPTH);
	assert_int_equal(valid(s), 0);
	free(s);
	s = nested(IG_JSON_MAX_DEPTH + 1);
	assert_int_equal(valid(s), -1);
	free(s);
	s = nested(100000);
	assert_int_equal(valid(s), -1);
	free(s);
}

static void test_root_value(void **state)
{
	struct ig_json_value v;
	char *copy;
	const char *s = "  {\"a\": 1}\n";

	assert_int_equal(parse_n(s, strlen(s), &v, &copy), 0);
	assert_int_equal(v.type, IG_JSON_OBJECT);
	assert_int_equal(v.raw.len, 8);
	assert_memory_equal(v.raw.ptr, "{\"a\": 1}", 8);
	free(copy);

	assert_int_equal(parse_n(" \"x\" ", 5, &v, &copy), 0);
	assert_int_equal(v.type, IG_JSON_STRING);
	assert_int_equal(v.raw.len, 3);
	free(copy);
}

static const char body[] =
    "{\"model\": \"llama-3\", \"stream\": true, \"max_tokens\": 128,\n"
    " \"messages\": [{\"role\": \"user\", \"content\": \"hi \\\"there\\\" {[\"},"
    " {\"role\": \"assistant\", \"content\": \"\\u00e9\\ud83d\\ude00\"}],\n"
    " \"temperature\": 0.5, \"stop\": null, \"m\\u006fdel\": \"override\", \"n\":[ ] }";

static void test_get(void **state)
{
	struct ig_json_value root, v;
	char *copy;

	assert_int_equal(parse_n(body, sizeof(body) - 1, &root, &copy), 0);

	/* "m\u006fdel" is the key "model" after unescaping, and it comes
	 * last, so it wins. */
	assert_int_equal(ig_json_get(root, "model", &v), 0);
	assert_int_equal(v.type, IG_JSON_STRING);
	assert_true(ig_json_string_eq(v, "override"));

	assert_int_equal(ig_json_get(root, "stream", &v), 0);
	assert_int_equal(ig_json_bool(v), 1);
	assert_int_equal(ig_json_get(root, "stop", &v), 0);
	assert_int_equal(v.type, IG_JSON_NULL);
	assert_int_equal(ig_json_bool(v), -1);

	int64_t i;
	assert_int_equal(ig_json_get(root, "max_tokens", &v), 0);
	assert_int_equal(ig_json_int64(v, &i), 0);
	assert_int_equal(i, 128);

	double d;
	assert_int_equal(ig_json_get(root, "temperature", &v), 0);
	assert_int_equal(ig_json_double(v, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(ig_json_int64(v, &i), -1);

	assert_int_equal(ig_json_get(root, "n", &v), 0);
	assert_int_equal(v.type, IG_JSON_ARRAY);
	assert_int_equal(ig_json_get(root, "missing", &v), -1);
	assert_int_equal(ig_json_get(root, "mode", &v), -1);
	assert_int_equal(ig_json_get(root, "", &v), -1);

	/* Nested content with brackets inside strings does not confuse the
	 * skipping: the member after "messages" is still found. */
	assert_int_equal(ig_json_get(root, "messages", &v), 0);
	assert_int_equal(v.type, IG_JSON_ARRAY);
	assert_int_equal(v.raw.ptr[v.raw.len - 1], ']');

	/* Not an object. */
	assert_int_equal(ig_json_get(v, "role", &v), -1);
	free(copy);
}

static void test_iteration(void **state)
{
	struct ig_json_value root, msgs, elem, k, val;
	char *copy;
	size_t pos = 0;
	int count = 0;
	struct ig_buf out;

	ig_buf_init(&out, 1024);
	assert_int_equal(parse_n(body, sizeof(body) - 1, &root, &copy), 0);
	assert_int_equal(ig_json_get(root, "messages", &msgs), 0);
	while (ig_json_array_next(msgs, &pos, &elem)) {
		assert_int_equal(elem.type, IG_JSON_OBJECT);
		assert_int_equal(ig_json_get(elem, "content", &val), 0);
		ig_buf_reset(&out);
		assert_int_equal(ig_json_string(val, &out), 0);
		if (count == 0) {
			assert_int_equal(out.len, 13);
			assert_memory_equal(out.ptr, "hi \"there\" {[", 13);
		} else {
			assert_int_equal(out.len, 6);
			assert_memory_equal(out.ptr, "\xc3\xa9\xf0\x9f\x98\x80", 6);
		}
		count++;
	}
	assert_int_equal(count, 2);
	/* Once done, it stays done. */
	assert_int_equal(ig_json_array_next(msgs, &pos, &elem), 0);

	static const char *keys[] = {"model",	    "stream", "max_tokens", "messages",
				     "temperature", "stop",   "model",	    "n"};
	static const enum ig_json_type types[] = {IG_JSON_STRING, IG_JSON_BOOL,	  IG_JSON_NUMBER,
						  IG_JSON_ARRAY,  IG_JSON_NUMBER, IG_JSON_NULL,
						  IG_JSON_STRING, IG_JSON_ARRAY};
	pos = 0;
	count = 0;
	while (ig_json_object_next(root, &pos, &k, &val)) {
		assert_true(count < 8);
		assert_true(ig_json_string_eq(k, keys[count]));
		assert_int_equal(val.type, types[count]);
		count++;
	}
	assert_int_equal(count, 8);

	/* Empty containers. */
	struct ig_json_value empty;
	char *c2;
	assert_int_equal(parse_n("[ ]", 3, &empty, &c2), 0);
	pos = 0;
	assert_int_equal(ig_json_array_next(empty, &pos, &elem), 0);
	free(c2);
	assert_int_equal(parse_n("{\n}", 3, &empty, &c2), 0);
	pos = 0;
	assert_int_equal(ig_json_object_next(empty, &pos, &k, &val), 0);
	/* Iterating the wrong kind yields nothing. */
	pos = 0;
	assert_int_equal(ig_json_array_next(empty, &pos, &elem), 0);
	free(c2);
	ig_buf_free(&out);
	free(copy);
}

/* Keys that end in an escaped backslash or hold escaped quotes must not
 * throw the skipping off. */
static void test_tricky_keys(void **state)
{
	static const char doc[] = "{\"a\\\\\":1, \"q\\\"}\":[\"]\"], \"b\":2}";
	struct ig_json_value root, v;
	char *copy;
	int64_t n;

	assert_int_equal(parse_n(doc, sizeof(doc) - 1, &root, &copy), 0);
	assert_int_equal(ig_json_get(root, "a\\", &v), 0);
	assert_int_equal(ig_json_int64(v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ig_json_get(root, "q\"}", &v), 0);
	assert_int_equal(v.type, IG_JSON_ARRAY);
	assert_int_equal(ig_json_get(root, "b", &v), 0);
	assert_int_equal(ig_json_int64(v, &n), 0);
	assert_int_equal(n, 2);
	free(copy);
}

static struct ig_json_value str_value(const char *raw)
{
	return (struct ig_json_value){IG_JSON_STRING, ig_str_from(raw)};
}

static void test_string_decode(void **state)
{
	struct ig_buf out;

	ig_buf_init(&out, 64);
	assert_int_equal(ig_json_string(str_value("\"a\\nb\\t\\u0000c\\/\""), &out), 0);
	assert_int_equal(out.len, 7);
	assert_memory_equal(out.ptr, "a\nb\t\0c/", 7);

	ig_buf_reset(&out);
	assert_int_equal(ig_json_string(str_value("\"\\u00ff\\u0800\\uFFFF\\uDBFF\\uDFFF\""), &out),
			 0);
	assert_int_equal(out.len, 2 + 3 + 3 + 4);
	assert_memory_equal(out.ptr, "\xc3\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf", 12);

	/* Appends, and leaves the buffer as it was on failure. */
	assert_int_equal(ig_json_string(str_value("\"x\""), &out), 0);
	assert_int_equal(out.len, 13);
	assert_int_equal(ig_json_string(str_value("\"bad\\q\""), &out), -1);
	assert_int_equal(out.len, 13);
	assert_int_equal(ig_json_string(str_value("\"lone\\udc00\""), &out), -1);
	assert_int_equal(ig_json_string((struct ig_json_value){IG_JSON_NUMBER, IG_STR("1")}, &out),
			 -1);

	/* A full buffer is an error, not a truncation. */
	struct ig_buf small;
	ig_buf_init(&small, 4);
	assert_int_equal(ig_json_string(str_value("\"hello\""), &small), -1);
	assert_int_equal(small.len, 0);
	ig_buf_free(&small);

	assert_true(ig_json_string_eq(str_value("\"a\\u0062c\""), "abc"));
	assert_false(ig_json_string_eq(str_value("\"a\\u0062c\""), "ab"));
	assert_false(ig_json_string_eq(str_value("\"a\\u0062c\""), "abcd"));
	assert_true(ig_json_string_eq(str_value("\"\""), ""));
	assert_true(ig_json_string_eq(str_value("\"a\\\\b\""), "a\\b"));
	assert_false(ig_json_string_eq(str_value("\"a\\\\b\""), "a\\\\b"));
	assert_false(ig_json_string_eq((struct ig_json_value){IG_JSON_NUMBER, IG_STR("1")}, "1"));
	ig_buf_free(&out);
}

static struct ig_json_value num(const char *raw)
{
	return (struct ig_json_value){IG_JSON_NUMBER, ig_str_from(raw)};
}

static void test_int64(void **state)
{
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"100", 100},
	    {"-3", -3},
	    {"1e2", 100},
	    {"100.0", 100},
	    {"1.5e1", 15},
	    {"12300e-2", 123},
	    {"0.0e5", 0},
	    {"0e99999999999", 0},
	    {"9223372036854775807", INT64_MAX},
	    {"-9223372036854775808", INT64_MIN},
	    {"9.223372036854775807e18", INT64_MAX},
	    {"1000000000000000000", 1000000000000000000},
	    {"0.00001e5", 1},
	};
	static const char *bad[] = {
	    "1.5",
	    "1e-1",
	    "9223372036854775808",
	    "-9223372036854775809",
	    "1e19",
	    "1e99999999999",
	    "0.1",
	    "-1.25e1",
	    "18446744073709551616",
	    "1x",
	    "",
	    "--1",
	    "1.",
	    "abc",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (ig_json_int64(num(ok[i].s), &v) != 0)
			fail_msg("rejected %s", ok[i].s);
		if (v != ok[i].v)
			fail_msg("%s gave %lld", ok[i].s, (long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ig_json_int64(num(bad[i]), &v) == 0)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(ig_json_int64(str_value("\"1\""), &v), -1);
}

static void test_double(void **state)
{
	double d;

	assert_int_equal(ig_json_double(num("0.5"), &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(ig_json_double(num("-1.25e2"), &d), 0);
	assert_true(d == -125.0);
	assert_int_equal(ig_json_double(num("1e-400"), &d), 0);
	assert_true(d >= 0 && d < 1e-300);
	assert_int_equal(ig_json_double(num("1e400"), &d), -1);
	assert_int_equal(ig_json_double(num("nan"), &d), -1);
	assert_int_equal(ig_json_double(num("0x1p3"), &d), -1);
	assert_int_equal(ig_json_double(num(" 1"), &d), -1);
	assert_int_equal(ig_json_double(str_value("\"1\""), &d), -1);

	/* A literal longer than the stack copy. */
	char longnum[200];
	memset(longnum, '0', sizeof(longnum));
	memcpy(longnum, "0.", 2);
	longnum[sizeof(longnum) - 2] = '5';
	longnum[sizeof(longnum) - 1] = '\0';
	assert_int_equal(ig_json_double(num(longnum), &d), 0);
	assert_true(d > 4e-197 && d < 6e-197);
}

static void test_bool(void **state)
{
	struct ig_json_value t = {IG_JSON_BOOL, IG_STR("true")};
	struct ig_json_value f = {IG_JSON_BOOL, IG_STR("false")};
	struct ig_json_value x = {IG_JSON_BOOL, IG_STR("tru")};
	struct ig_json_value s = {IG_JSON_STRING, IG_STR("\"true\"")};

	assert_int_equal(ig_json_bool(t), 1);
	assert_int_equal(ig_json_bool(f), 0);
	assert_int_equal(ig_json_bool(x), -1);
	assert_int_equal(ig_json_bool(s), -1);
}

/* Empty inputs with no memory behind them (a null pointer, length 0):
 * what the fuzzers found offset by 0, which C leaves undefined. */
static void test_null_empty_inputs(void **state)
{
	struct ig_buf b = {0};
	assert_int_equal(ig_json_write_string(&b, NULL, 0), 0);
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.ptr, "\"\"", 2);
	ig_buf_free(&b);
	struct ig_json_value none = {0};
	int64_t i;
	double d;
	assert_int_equal(ig_json_int64(none, &i), -1);
	assert_int_equal(ig_json_double(none, &d), -1);
	none.type = IG_JSON_NUMBER;
	assert_int_equal(ig_json_int64(none, &i), -1);
	(void)state;
}

static void test_write_string(void **state)
{
	struct ig_buf out;
	static const char in[] = "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80";
	static const char want[] = "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f caf\xc3\xa9 "
				   "\xf0\x9f\x98\x80\"";

	ig_buf_init(&out, 0);
	assert_int_equal(ig_json_write_string(&out, in, sizeof(in) - 1), 0);
	assert_int_equal(out.len, sizeof(want) - 1);
	assert_memory_equal(out.ptr, want, out.len);

	/* Round trip: what we write parses and decodes back to the input,
	 * NUL bytes included. */
	static const char bin[] = "a\0b\"\\\n\xe2\x82\xac";
	struct ig_json_value v;
	struct ig_buf back;
	ig_buf_reset(&out);
	ig_buf_init(&back, 0);
	assert_int_equal(ig_json_write_string(&out, bin, sizeof(bin) - 1), 0);
	assert_int_equal(ig_json_parse(out.ptr, out.len, &v), 0);
	assert_int_equal(ig_json_string(v, &back), 0);
	assert_int_equal(back.len, sizeof(bin) - 1);
	assert_memory_equal(back.ptr, bin, back.len);

	/* Malformed UTF-8 becomes U+FFFD, so the output is always valid. */
	ig_buf_reset(&out);
	assert_int_equal(ig_json_write_string(&out, "a\xff\xc3", 3), 0);
	assert_int_equal(out.len, 15);
	assert_memory_equal(out.ptr, "\"a\\ufffd\\ufffd\"", 15);
	assert_int_equal(ig_json_parse(out.ptr, out.len, &v), 0);

	/* A ceiling is reported. */
	struct ig_buf tiny;
	ig_buf_init(&tiny, 3);
	assert_true(ig_json_write_string(&tiny, "abcd", 4) < 0);
	ig_buf_free(&tiny);
	ig_buf_free(&out);
	ig_buf_free(&back);
}

/* The lookup functions stay inside raw even when handed garbage. The
 * heap copies make ASan check that. */
static void test_garbage_in_bounds(void **state)
{
	static const char *junk[] = {
	    "{",	"{\"",	       "{\"a",	  "{\"a\"",	  "{\"a\":",
	    "{\"a\":[", "{\"a\":\"\\", "[\"\\\"", "[1,",	  "{\"a\" x",
	    "{]",	"[}",	       "\"\\u12", "\"\\ud800\\u", "\"\\",
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		size_t len = strlen(junk[i]);
		char *copy = malloc(len);
		memcpy(copy, junk[i], len);
		struct ig_str raw = {copy, len};
		struct ig_json_value k, v, out;
		struct ig_buf b;
		size_t pos = 0;
		int64_t n;
		double d;

		ig_buf_init(&b, 64);
		(void)ig_json_get((struct ig_json_value){IG_JSON_OBJECT, raw}, "a", &out);
		while (
		    ig_json_object_next((struct ig_json_value){IG_JSON_OBJECT, raw}, &pos, &k, &v))
			;
		pos = 0;
		while (ig_json_array_next((struct ig_json_value){IG_JSON_ARRAY, raw}, &pos, &v))
			;
		(void)ig_json_string((struct ig_json_value){IG_JSON_STRING, raw}, &b);
		(void)ig_json_string_eq((struct ig_json_value){IG_JSON_STRING, raw}, "a");
		(void)ig_json_int64((struct ig_json_value){IG_JSON_NUMBER, raw}, &n);
		(void)ig_json_double((struct ig_json_value){IG_JSON_NUMBER, raw}, &d);
		assert_int_equal(
		    ig_json_get((struct ig_json_value){IG_JSON_OBJECT, raw}, "zz", &out), -1);
		ig_buf_free(&b);
		free(copy);
	}
}

/* ---- one-pass member scan ---------------------------------------------------- */

static const char *const gateway_keys[] = {"model",	   "prompt", "messages",      "input",
					   "instructions", "stream", "stream_options"};
#define NKEYS (sizeof gateway_keys / sizeof gateway_keys[0])

/* ig_json_parse_members() must say what ig_json_parse() followed by one
 * ig_json_get() per key says, down to the exact spans. Returns the parse
 * result. */
static int members_agree(const char *s, size_t len, const char *const *keys, size_t nkeys)
{
	char *copy = malloc(len ? len : 1);
	struct ig_json_value root1, root2, got, out[16];

	assert_true(nkeys <= 16);
	memcpy(copy, s, len);

	int rc = ig_json_parse(copy, len, &root1);

	if (ig_json_parse_members(copy, len, keys, nkeys, out, &root2) != rc)
		fail_msg("parse and parse_members disagree (%d) on [%.*s]", rc, (int)len, s);
	for (size_t i = 0; i < nkeys; i++) {
		if (rc < 0 || ig_json_get(root1, keys[i], &got) < 0) {
			if (out[i].type != IG_JSON_INVALID || out[i].raw.ptr)
				fail_msg("%s: found a member get does not see in [%.*s]", keys[i],
					 (int)len, s);
			continue;
		}
		if (out[i].type != got.type || out[i].raw.ptr != got.raw.ptr ||
		    out[i].raw.len != got.raw.len)
			fail_msg("%s: parse_members has [%.*s], get has [%.*s] in [%.*s]", keys[i],
				 (int)out[i].raw.len, out[i].raw.ptr ? out[i].raw.ptr : "",
				 (int)got.raw.len, got.raw.ptr, (int)len, s);
	}
	if (rc == 0)
		assert_true(root1.type == root2.type && root1.raw.ptr == root2.raw.ptr &&
			    root1.raw.len == root2.raw.len);
	free(copy);
	return rc;
}

static void test_members(void **state)
{
	struct ig_json_value root, out[NKEYS + 3];
	const char *keys[NKEYS + 3];
	char *copy;

	memcpy(keys, gateway_keys, sizeof gateway_keys);
	keys[NKEYS] = "temperature";
	keys[NKEYS + 1] = "model"; /* asked twice: both get it */
	keys[NKEYS + 2] = "role";  /* only inside messages, not at the root */
	copy = malloc(sizeof body - 1);
	memcpy(copy, body, sizeof body - 1);
	assert_int_equal(ig_json_parse_members(copy, sizeof body - 1, keys, NKEYS + 3, out, &root),
			 0);
	assert_int_equal(root.type, IG_JSON_OBJECT);
	assert_ptr_equal(root.raw.ptr, copy);
	assert_int_equal(root.raw.len, sizeof body - 1);
	/* "m\u006fdel" comes last and is "model" once unescaped. */
	assert_int_equal(out[0].type, IG_JSON_STRING);
	assert_true(ig_json_string_eq(out[0], "override"));
	assert_true(out[NKEYS + 1].raw.ptr == out[0].raw.ptr);
	assert_int_equal(out[1].type, IG_JSON_INVALID); /* prompt */
	assert_null(out[1].raw.ptr);
	assert_int_equal(out[2].type, IG_JSON_ARRAY);
	assert_int_equal(out[2].raw.ptr[0], '[');
	assert_int_equal(out[2].raw.ptr[out[2].raw.len - 1], ']');
	assert_int_equal(out[5].type, IG_JSON_BOOL);
	assert_int_equal(ig_json_bool(out[5]), 1);
	assert_int_equal(out[NKEYS].type, IG_JSON_NUMBER);
	assert_int_equal(out[NKEYS].raw.len, 3);
	assert_int_equal(out[NKEYS + 2].type, IG_JSON_INVALID);
	free(copy);

	/* A valid root that is not an object has no members. */
	assert_int_equal(ig_json_parse_members("[{\"model\":1}]", 13, keys, NKEYS, out, &root), 0);
	assert_int_equal(root.type, IG_JSON_ARRAY);
	assert_int_equal(out[0].type, IG_JSON_INVALID);
	/* A failed parse leaves every entry absent, even those seen before
	 * the error. */
	assert_int_equal(ig_json_parse_members("{\"model\":\"m\",}", 14, keys, NKEYS, out, &root),
			 -1);
	assert_int_equal(out[0].type, IG_JSON_INVALID);
	assert_null(out[0].raw.ptr);
	/* Escapes on either side of a key, and a key with an escaped NUL. */
	static const char esc[] =
	    "{\"\\u006d\\u006F\\u0064el\":1,\"stre\\u0061m\":false,"
	    "\"prompt\\u0000\":2,\"input\":3,\"inp\\u0075t\":4,\"in\\/put\":5}";
	assert_int_equal(ig_json_parse_members(esc, sizeof esc - 1, keys, NKEYS, out, &root), 0);
	assert_memory_equal(out[0].raw.ptr, "1", 1);
	assert_int_equal(ig_json_bool(out[5]), 0);
	assert_int_equal(out[1].type, IG_JSON_INVALID);
	assert_memory_equal(out[3].raw.ptr, "4", 1);
	/* No keys at all is a plain validation. */
	assert_int_equal(ig_json_parse_members("{\"a\":[1]}", 9, NULL, 0, NULL, &root), 0);
	assert_int_equal(ig_json_parse_members("{\"a\":[1}", 8, NULL, 0, NULL, &root), -1);
	assert_int_equal(ig_json_parse_members(NULL, 0, keys, NKEYS, out, &root), -1);
}

/* Every entry of the validity tables, and the depth limit right at the
 * root object, which parse_members handles with its own loop. */
static void test_members_tables(void **state)
{
	for (size_t i = 0; i < sizeof valid_docs / sizeof valid_docs[0]; i++)
		assert_int_equal(
		    members_agree(valid_docs[i], strlen(valid_docs[i]), gateway_keys, NKEYS), 0);
	for (size_t i = 0; i < sizeof invalid_docs / sizeof invalid_docs[0]; i++)
		assert_int_equal(
		    members_agree(invalid_docs[i], strlen(invalid_docs[i]), gateway_keys, NKEYS),
		    -1);
	assert_int_equal(members_agree("\"a\0b\"", 5, gateway_keys, NKEYS), -1);
	assert_int_equal(members_agree("{}\0", 3, gateway_keys, NKEYS), -1);

	for (size_t depth = IG_JSON_MAX_DEPTH - 2; depth <= IG_JSON_MAX_DEPTH + 1; depth++) {
		char *inner = nested(depth - 1);
		char *doc = malloc(strlen(inner) + 16);
		size_t len = (size_t)sprintf(doc, "{\"model\":%s}", inner);
		int rc = members_agree(doc, len, gateway_keys, NKEYS);
		assert_int_equal(rc, depth <= IG_JSON_MAX_DEPTH ? 0 : -1);
		free(doc);
		free(inner);
	}
}

/* ---- random documents ---- */

/* Keys drawn for generated objects: the gateway's, some written with
 * escapes, near misses, and a few others. */
static const char *const gen_keys[] = {
    "model",  "m\\u006fdel",  "\\u006dodel",	"prompt", "messages", "input", "instructions",
    "stream", "str\\u0065am", "stream_options", "mode",	  "models",   "Model", "",
    "x",      "in\\/put",     "stream\\u0000",	"role"};
static const char *const gen_strings[] = {"\"\"",
					  "\"hi\"",
					  "\"\\\"model\\\": 1\"",
					  "\"{[\\\\\"",
					  "\"caf\xc3\xa9\"",
					  "\"\\ud83d\\ude00\"",
					  "\"\\u0022usage\\u0022\"",
					  "\"a\\\\\\\"b\""};
static const char *const gen_scalars[] = {"0", "-1.5e3", "true", "false", "null", "123"};

#define PICK(arr, rng) ((arr)[ig_rng_below((rng), sizeof(arr) / sizeof((arr)[0]))])

static void gen_object(struct ig_buf *b, struct ig_rng *rng, int depth);

static void gen_ws(struct ig_buf *b, struct ig_rng *rng)
{
	static const char ws[] = " \t\r\n";
	while (ig_rng_below(rng, 3) == 0)
		ig_buf_append(b, &ws[ig_rng_below(rng, 4)], 1);
}

static void gen_value(struct ig_buf *b, struct ig_rng *rng, int depth)
{
	uint64_t kind = ig_rng_below(rng, depth > 3 ? 2 : 4);

	gen_ws(b, rng);
	if (kind == 0) {
		ig_buf_append_cstr(b, PICK(gen_strings, rng));
	} else if (kind == 1) {
		ig_buf_append_cstr(b, PICK(gen_scalars, rng));
	} else if (kind == 2) {
		uint64_t n = ig_rng_below(rng, 5);
		ig_buf_append(b, "[", 1);
		for (uint64_t i = 0; i < n; i++) {
			if (i)
				ig_buf_append(b, ",", 1);
			gen_value(b, rng, depth + 1);
		}
		gen_ws(b, rng);
		ig_buf_append(b, "]", 1);
	} else {
		gen_object(b, rng, depth + 1);
	}
	gen_ws(b, rng);
}

static void gen_object(struct ig_buf *b, struct ig_rng *rng, int depth)
{
	uint64_t n = ig_rng_below(rng, depth ? 5 : 9);

	gen_ws(b, rng);
	ig_buf_append(b, "{", 1);
	for (uint64_t i = 0; i < n; i++) {
		if (i)
			ig_buf_append(b, ",", 1);
		gen_ws(b, rng);
		ig_buf_append_cstrs(b, "\"", PICK(gen_keys, rng), "\"", NULL);
		gen_ws(b, rng);
		ig_buf_append(b, ":", 1);
		gen_value(b, rng, depth + 1);
	}
	ig_buf_append(b, "}", 1);
	gen_ws(b, rng);
}

/* One byte replaced, dropped or inserted, or the document cut short. */
static void mutate(struct ig_buf *b, struct ig_rng *rng)
{
	static const char bytes[] = "{}[]\",:\\ 0u-e.\x01\xc3\xff";
	size_t at = (size_t)ig_rng_below(rng, b->len);
	char c = bytes[ig_rng_below(rng, sizeof bytes - 1)];

	switch (ig_rng_below(rng, 4)) {
	case 0:
		b->ptr[at] = c;
		break;
	case 1:
		memmove(b->ptr + at, b->ptr + at + 1, b->len - at - 1);
		b->len--;
		break;
	case 2:
		ig_buf_append(b, "x", 1);
		memmove(b->ptr + at + 1, b->ptr + at, b->len - at - 1);
		b->ptr[at] = c;
		break;
	default:
		b->len = at;
	}
}

static void test_members_random(void **state)
{
	struct ig_rng rng;
	struct ig_buf b;
	int ok = 0, bad = 0;
	const char *keys[8];

	ig_rng_seed(&rng, 20240611);
	ig_buf_init(&b, 0);
	for (int iter = 0; iter < 20000; iter++) {
		ig_buf_reset(&b);
		/* Mostly objects, since the root object is what is scanned. */
		if (ig_rng_below(&rng, 8) == 0)
			gen_value(&b, &rng, 0);
		else
			gen_object(&b, &rng, 0);
		if (b.len && ig_rng_below(&rng, 3) == 0)
			mutate(&b, &rng);
		/* The gateway's keys, or a random handful (repeats allowed) of
		 * the raw generator keys. */
		size_t nkeys = NKEYS;
		const char *const *k = gateway_keys;
		if (iter % 2) {
			nkeys = 1 + (size_t)ig_rng_below(&rng, 8);
			for (size_t i = 0; i < nkeys; i++)
				keys[i] = PICK(gen_keys, &rng);
			k = keys;
		}
		if (members_agree(b.ptr ? b.ptr : "", b.len, k, nkeys) == 0)
			ok++;
		else
			bad++;
	}
	/* Both sides of the validator were exercised. */
	assert_true(ok > 5000 && bad > 2000);
	ig_buf_free(&b);
}

/* ---- usage without a full parse ------------------------------------------------ */

/* What ig_json_find_usage() must agree with: a full parse and lookups. */
static int usage_by_parse(const char *s, size_t len, struct ig_usage *u)
{
	struct ig_json_value root, usage, v, det;
	int64_t n;

	*u = (struct ig_usage){-1, -1, -1};
	if (ig_json_parse(s, len, &root) < 0 || ig_json_get(root, "usage", &usage) < 0 ||
	    usage.type != IG_JSON_OBJECT)
		return -1;
	if (ig_json_get(usage, "prompt_tokens", &v) == 0 && ig_json_int64(v, &n) == 0 && n >= 0)
		u->prompt_tokens = n;
	else if (ig_json_get(usage, "input_tokens", &v) == 0 && ig_json_int64(v, &n) == 0 && n >= 0)
		u->prompt_tokens = n;
	if (ig_json_get(usage, "completion_tokens", &v) == 0 && ig_json_int64(v, &n) == 0 && n >= 0)
		u->completion_tokens = n;
	if (ig_json_get(usage, "prompt_tokens_details", &det) == 0 &&
	    ig_json_get(det, "cached_tokens", &v) == 0 && ig_json_int64(v, &n) == 0 && n >= 0)
		u->cached_tokens = n;
	return 0;
}

/* ig_json_find_usage() on an exact-size heap copy, so that ASan sees a
 * read before the start of a tail window. */
static int find_usage(const char *s, size_t len, struct ig_usage *u)
{
	char *copy = malloc(len ? len : 1);
	memcpy(copy, s, len);
	int rc = ig_json_find_usage(copy, len, u);
	free(copy);
	return rc;
}

#define ASSERT_USAGE(u, p, c, k)                                                                   \
	do {                                                                                       \
		assert_int_equal((u).prompt_tokens, (p));                                          \
		assert_int_equal((u).completion_tokens, (c));                                      \
		assert_int_equal((u).cached_tokens, (k));                                          \
	} while (0)

/* A vLLM chat completion with decoys after the real usage: an escaped
 * "usage" inside a string, a string value "usage", a nested object with a
 * usage key, and a string that ends in an escaped backslash. */
static const char response[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{"
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"the \\\"usage\\\": "
    "{\\\"prompt_tokens\\\": 1}\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":12,\"total_tokens\":40,\"completion_tokens\":28,"
    "\"prompt_tokens_details\":{\"cached_tokens\":8}},"
    "\"note\":\"x\\\\\\\"usage\\\\\\\":{}\",\"kind\":\"usage\",\"path\":\"c:\\\\\","
    "\"extra\":{\"usage\":{\"prompt_tokens\":99}},\"list\":[{\"usage\":{}}],"
    "\"kv_transfer_params\":null}\r\n";

static void test_usage(void **state)
{
	struct ig_usage u, ref;
	size_t len = sizeof response - 1;
	const char *key = strstr(response, "\"usage\":{\"prompt_tokens\":12");

	assert_int_equal(usage_by_parse(response, len, &ref), 0);
	ASSERT_USAGE(ref, 12, 28, 8);
	assert_int_equal(find_usage(response, len, &u), 0);
	ASSERT_USAGE(u, 12, 28, 8);
	/* Every tail window: found, with the same counts, as long as one byte
	 * before the key is in it (a quote at the very start of the window
	 * could be escaped by what came before); never found otherwise, since
	 * the decoys are not the root's usage. */
	for (size_t start = 0; start <= len; start++) {
		int rc = find_usage(response + start, len - start, &u);
		if (start < (size_t)(key - response)) {
			if (rc != 0)
				fail_msg("not found in the tail from %zu", start);
			ASSERT_USAGE(u, 12, 28, 8);
		} else {
			if (rc != -1)
				fail_msg("found in the tail from %zu: %.*s", start,
					 (int)(len - start), response + start);
			ASSERT_USAGE(u, -1, -1, -1);
		}
	}
}

static void test_usage_cases(void **state)
{
	static const struct {
		const char *doc;
		int rc;
		int64_t p, c, k;
	} cases[] = {
	    /* Responses API and Anthropic Messages name them input/output. */
	    {"{\"object\":\"response\",\"usage\":{\"input_tokens\":7,\"output_tokens\":3,"
	     "\"input_tokens_details\":{\"cached_tokens\":4},\"total_tokens\":10}}",
	     0, 7, 3, 4},
	    {"{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}", 0, -1, 15, -1},
	    /* GIE v1.5 reads cached tokens under prompt_token_details. */
	    {"{\"usage\":{\"prompt_tokens\":5,\"prompt_token_details\":{\"cached_tokens\":3}}}", 0,
	     5, -1, 3},
	    /* Streamed chunks, one data: payload each. */
	    {"{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}", -1, -1, -1, -1},
	    {"{\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"total_tokens\":110,"
	     "\"completion_tokens\":100}}",
	     0, 10, 100, -1},
	    {"[DONE]", -1, -1, -1, -1},
	    {"{\"choices\":[{\"text\":\"usage\"}]}", -1, -1, -1, -1},
	    /* The last usage of the root wins, null included. */
	    {"{\"usage\":{\"prompt_tokens\":1},\"usage\":null}", -1, -1, -1, -1},
	    {"{\"usage\":null,\"usage\":{\"prompt_tokens\":2}}", 0, 2, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":1},\"usage\":{\"prompt_tokens\":3}}", 0, 3, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":1},\"usage\":7}", -1, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":1},\"usage\":[]}", -1, -1, -1, -1},
	    /* Keys compare after unescaping. */
	    {"{\"us\\u0061ge\":{\"completion_tokens\":5}}", 0, -1, 5, -1},
	    {"{\"\\u0075\\u0073\\u0061\\u0067\\u0065\":{\"prompt_tokens\":6}}", 0, 6, -1, -1},
	    {"{\"usage \":{\"prompt_tokens\":6}}", -1, -1, -1, -1},
	    {"{\"Usage\":{\"prompt_tokens\":6}}", -1, -1, -1, -1},
	    /* Counts that are not non-negative integers read as -1. */
	    {"{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1.5,"
	     "\"prompt_tokens_details\":{\"cached_tokens\":\"3\"}}}",
	     0, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":1e2,\"completion_tokens\":7.0,"
	     "\"prompt_tokens_details\":null}}",
	     0, 100, 7, -1},
	    {"{\"usage\":{}}", 0, -1, -1, -1},
	    /* Duplicate count keys: the last one, as ig_json_get(). */
	    {"{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":4}}", 0, 4, -1, -1},
	    /* A malformed usage object is not read. */
	    {"{\"usage\":{\"prompt_tokens\":1,}}", -1, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":01}}", -1, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":1} x}", -1, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":\"\\q\"}}", -1, -1, -1, -1},
	    /* Not a whole object at the end. */
	    {"{\"usage\":{\"prompt_tokens\":1}", -1, -1, -1, -1}, /* usage's brace as the root's */
	    {"{\"usage\":{\"prompt_tokens\":1}},", -1, -1, -1, -1},
	    {"[{\"usage\":{\"prompt_tokens\":1}}]", -1, -1, -1, -1},
	    {"", -1, -1, -1, -1},
	    {" \n", -1, -1, -1, -1},
	    {"}", -1, -1, -1, -1},
	    {"\"}", -1, -1, -1, -1},
	    {"\\\"usage\\\":{}}", -1, -1, -1, -1},
	    /* Nested objects and arrays with usage keys are not the root's. */
	    {"{\"a\":{\"usage\":{\"prompt_tokens\":1}}}", -1, -1, -1, -1},
	    {"{\"a\":[{\"usage\":{\"prompt_tokens\":1}}]}", -1, -1, -1, -1},
	    {"{\"usage\":{\"prompt_tokens\":2},\"a\":[{\"usage\":{\"prompt_tokens\":1}}]}", 0, 2,
	     -1, -1},
	    /* Brackets and quotes inside strings after the usage. */
	    {"{\"usage\":{\"prompt_tokens\":2},\"s\":\"}]{[\\\"\\\\\"}", 0, 2, -1, -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_usage u;
		int rc = find_usage(cases[i].doc, strlen(cases[i].doc), &u);
		if (rc != cases[i].rc || u.prompt_tokens != cases[i].p ||
		    u.completion_tokens != cases[i].c || u.cached_tokens != cases[i].k)
			fail_msg("case %zu (%s): rc %d, %lld %lld %lld", i, cases[i].doc, rc,
				 (long long)u.prompt_tokens, (long long)u.completion_tokens,
				 (long long)u.cached_tokens);
	}
	struct ig_usage u;
	assert_int_equal(ig_json_find_usage(NULL, 0, &u), -1);
}

/* A vLLM completions chunk's "usage": null, told from the end: exactly
 * when the root's last member is the key usage with the value null. */
static void test_usage_null_last(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		bool want;
	} cases[] = {
	    {"{\"choices\":[{\"text\":\" the\"}],\"usage\":null}", true},
	    {"{\"usage\" : null }\n", true},
	    {"{\"a\":1,\n\"usage\":\tnull\r\n}", true},
	    {"{\"usage\":null}", true},
	    {"{\"usage\":{\"prompt_tokens\":1}}", false},
	    {"{\"usage\":null,\"a\":1}", false},
	    {"{\"usage\":nul}", false},
	    {"{\"usage\":null]", false},
	    {"{\"ausage\":null}", false},
	    {"{\"x\":\"usage\",\"b\":null}", false},
	    /* The quote before usage is escaped: the key is a"usage. */
	    {"{\"usage\":{\"prompt_tokens\":1},\"a\\\"usage\":null}", false},
	    /* An escaped backslash before it: the key is usage. */
	    {"{\"a\":\"b\\\\\",\"usage\":null}", true},
	    {"null}", false},
	    {"", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *d = cases[i].doc;
		char *copy = malloc(strlen(d) + 1); /* exact size: ASan sees reads before it */
		memcpy(copy, d, strlen(d) + 1);
		bool got = ig_json_ends_with_null_usage(copy, strlen(d));
		struct ig_usage u;
		if (got != cases[i].want)
			fail_msg("case %zu (%s): %d", i, d, got);
		if (got && ig_json_find_usage(copy, strlen(d), &u) == 0)
			fail_msg("case %zu (%s): usage found", i, d);
		free(copy);
	}
	assert_false(ig_json_ends_with_null_usage(NULL, 0));
}

/* Random response-like documents, some mutated: on the whole document
 * find_usage agrees with a full parse whenever the document is valid, and
 * on every tail window of a valid one it either finds nothing or finds
 * the same counts. */
static const char *const usage_values[] = {
    "null",
    "{\"prompt_tokens\":3,\"completion_tokens\":4}",
    "{\"prompt_tokens\":5,\"completion_tokens\":6,\"prompt_tokens_details\":"
    "{\"cached_tokens\":2}}",
    "{ \"completion_tokens\" : 9 , \"prompt_tokens\" : 1 }",
    "{}",
    "7",
    "\"usage\"",
};
static const char *const usage_keys[] = {"usage", "us\\u0061ge", "x", "choices", "usage\\\\"};

static void gen_response(struct ig_buf *b, struct ig_rng *rng)
{
	uint64_t n = ig_rng_below(rng, 6);

	ig_buf_append(b, "{", 1);
	for (uint64_t i = 0; i < n; i++) {
		if (i)
			ig_buf_append(b, ",", 1);
		gen_ws(b, rng);
		ig_buf_append_cstrs(b, "\"", PICK(usage_keys, rng), "\"", NULL);
		gen_ws(b, rng);
		ig_buf_append(b, ":", 1);
		gen_ws(b, rng);
		uint64_t kind = ig_rng_below(rng, 3);
		if (kind == 0)
			ig_buf_append_cstr(b, PICK(usage_values, rng));
		else if (kind == 1)
			gen_value(b, rng, 1);
		else
			gen_response(b, rng); /* nested usage keys */
		gen_ws(b, rng);
	}
	ig_buf_append(b, "}", 1);
	gen_ws(b, rng);
}

static void test_usage_random(void **state)
{
	struct ig_rng rng;
	struct ig_buf b;
	int found = 0, valid_docs_seen = 0;

	ig_rng_seed(&rng, 99);
	ig_buf_init(&b, 0);
	for (int iter = 0; iter < 5000; iter++) {
		struct ig_usage u, ref;
		ig_buf_reset(&b);
		gen_response(&b, &rng);
		if (ig_rng_below(&rng, 4) == 0)
			mutate(&b, &rng);

		int want = usage_by_parse(b.ptr, b.len, &ref);
		struct ig_json_value root;
		bool valid = ig_json_parse(b.ptr, b.len, &root) == 0;
		int rc = find_usage(b.ptr, b.len, &u);

		if (valid) {
			valid_docs_seen++;
			if (rc != want || memcmp(&u, &ref, sizeof u) != 0)
				fail_msg("find_usage %d, parse %d on [%.*s]", rc, want, (int)b.len,
					 b.ptr);
		}
		found += rc == 0;
		if (!valid || iter % 4)
			continue;
		for (size_t start = 1; start <= b.len; start++) {
			rc = find_usage(b.ptr + start, b.len - start, &u);
			if (rc == 0 && (want != 0 || memcmp(&u, &ref, sizeof u) != 0))
				fail_msg("tail from %zu disagrees on [%.*s]", start, (int)b.len,
					 b.ptr);
		}
	}
	assert_true(found > 500 && valid_docs_seen > 2000);
	ig_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_documents),
	    cmocka_unit_test(test_invalid_documents),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_long_strings_every_offset),
	    cmocka_unit_test(test_root_value),
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_iteration),
	    cmocka_unit_test(test_tricky_keys),
	    cmocka_unit_test(test_string_decode),
	    cmocka_unit_test(test_int64),
	    cmocka_unit_test(test_double),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_write_string),
	    cmocka_unit_test(test_garbage_in_bounds),
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_members_tables),
	    cmocka_unit_test(test_members_random),
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_usage_cases),
	    cmocka_unit_test(test_usage_null_last),
	    cmocka_unit_test(test_usage_random),
	    cmocka_unit_test(test_null_empty_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
