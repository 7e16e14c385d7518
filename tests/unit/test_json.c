/* Unit tests for the JSON reader: validity tables, lookups, iteration,
 * string decoding, numbers and the string writer. Documents are copied
 * into exact-size heap blocks so ASan sees any over-read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"

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

static void test_valid_documents(void **state)
{
	static const char *ok[] = {
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
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (valid(ok[i]) != 0)
			fail_msg("valid case %zu rejected: %s", i, ok[i]);
}

static void test_invalid_documents(void **state)
{
	static const char *bad[] = {
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
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (valid(bad[i]) == 0)
			fail_msg("invalid case %zu accepted: %s", i, bad[i]);

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
	    {"\x01", false}, {"\x1f", false}, {"\x7f", true},     {"\xff", false},
	    {"\xc3\xa9", true}, {"\\n", true},   {"\\q", false},   {"\"", false},
	    {"\\u00e9", true}, {"\xe2\x82", false}, {" ", true},
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
