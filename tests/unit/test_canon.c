/* The canonical form of JSON values the prefix index hashes: what a chat
 * says, not how it is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "json/canon.h"
#include "json/json.h"

static const char *canon(const char *json, size_t cap)
{
	static char out[4096];
	struct ig_json_value v;
	assert_int_equal(ig_json_parse(json, strlen(json), &v), 0);
	size_t n = ig_json_canonical(v, out, cap < sizeof out - 1 ? cap : sizeof out - 1);
	out[n] = '\0';
	return out;
}

static const char *text(const char *json)
{
	static char out[4096];
	struct ig_json_value v;
	assert_int_equal(ig_json_parse(json, strlen(json), &v), 0);
	size_t n = ig_json_canonical_text(v, out, sizeof out - 1);
	out[n] = '\0';
	return out;
}

/* Spacing, key order and escapes do not change the form. */
static void test_same_chat_written_differently(void **state)
{
	const char *a = "[{\"role\":\"system\",\"content\":\"You are terse.\"},"
			"{\"role\":\"user\",\"content\":\"Hi/there \\u00e9\"}]";
	const char *b = "[ { \"content\" : \"You are terse.\" , \"role\" : \"system\" } ,\n"
			"  {\"content\":\"Hi\\/there \xc3\xa9\", \"\\u0072ole\":\"user\"} ]";
	char first[4096];
	strcpy(first, canon(a, 4096));
	assert_string_equal(first, canon(b, 4096));
	assert_string_equal(first, "[{\"content\":\"You are terse.\",\"role\":\"system\"},"
				   "{\"content\":\"Hi/there \xc3\xa9\",\"role\":\"user\"}]");
	/* A different chat is different. */
	assert_string_not_equal(
	    first, canon("[{\"role\":\"user\",\"content\":\"You are terse.\"}]", 4096));
}

static void test_escapes(void **state)
{
	assert_string_equal(canon("\"a\\nb\\t\\\"q\\\\ \\u0001 \\ud83d\\ude00\"", 4096),
			    "\"a\\nb\\t\\\"q\\\\ \\u0001 \xf0\x9f\x98\x80\"");
	assert_string_equal(text("\"a\\nb \\u00e9\""), "a\nb \xc3\xa9");
	assert_string_equal(canon("{\"b\":1,\"a\":[true,false,null,-1.5e3]}", 4096),
			    "{\"a\":[true,false,null,-1.5e3],\"b\":1}");
	/* Keys sort by their decoded bytes: "\u0041" is "A", before "B". */
	assert_string_equal(canon("{\"B\":1,\"\\u0041\":2}", 4096), "{\"A\":2,\"B\":1}");
	/* Duplicate keys keep their order as sent. */
	assert_string_equal(canon("{\"k\":2,\"a\":0,\"k\":1}", 4096), "{\"a\":0,\"k\":2,\"k\":1}");
}

/* Output stops at the limit, whatever the value's size. */
static void test_limit(void **state)
{
	const char *a = "[{\"role\":\"user\",\"content\":\"0123456789abcdef\"}]";
	const char *full = canon(a, 4096);
	char whole[4096];
	strcpy(whole, full);
	for (size_t cap = 0; cap < strlen(whole); cap++) {
		const char *cut = canon(a, cap);
		assert_int_equal(strlen(cut), cap);
		assert_memory_equal(cut, whole, cap);
	}
}

/* A long string under a small limit is read only as far as its output
 * reaches: its content runs on into a page that cannot be read, where the
 * old scan for backslashes (to the string's end) faulted. */
static void test_limit_reads_no_further(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *mem =
	    mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mprotect(mem + page, page, PROT_NONE), 0);
	/* 100 readable bytes: the opening quote and 99 of content; the rest
	 * of the 400,000-byte string, its escapes and closing quote, would lie
	 * past them. */
	char *s = mem + page - 100;
	s[0] = '"';
	memset(s + 1, 'a', 99);
	struct ig_json_value v = {IG_JSON_STRING, {s, 400000}};
	char out[64];
	assert_int_equal(ig_json_canonical(v, out, sizeof out), sizeof out);
	assert_int_equal(out[0], '"');
	for (size_t i = 1; i < sizeof out; i++)
		assert_int_equal(out[i], 'a');
	assert_int_equal(ig_json_canonical_text(v, out, sizeof out), sizeof out);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal(out[i], 'a');
	/* An escape inside the limit is still decoded. */
	s[10] = '\\';
	s[11] = 'n';
	assert_int_equal(ig_json_canonical_text(v, out, sizeof out), sizeof out);
	assert_int_equal(out[8], 'a');
	assert_int_equal(out[9], '\n');
	assert_int_equal(out[10], 'a');
	munmap(mem, 2 * page);
}

/* Objects with many members (past the stack room) sort too. */
static void test_many_members(void **state)
{
	char json[2048] = "{";
	for (int i = 39; i >= 0; i--) {
		char m[32];
		snprintf(m, sizeof m, "%s\"k%02d\":%d", i == 39 ? "" : ",", i, i);
		strcat(json, m);
	}
	strcat(json, "}");
	const char *c = canon(json, 4096);
	assert_memory_equal(c, "{\"k00\":0,\"k01\":1,", 17);
	assert_non_null(strstr(c, "\"k38\":38,\"k39\":39}"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_chat_written_differently),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_limit_reads_no_further),
	    cmocka_unit_test(test_many_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
