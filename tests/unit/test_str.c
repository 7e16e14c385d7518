/* Standard base64 (RFC 4648 §4) both ways. Decoding is Go's
 * base64.StdEncoding, as Kubernetes reads a Secret's data: padding
 * required, CR and LF ignored; IG_BASE64_LAX is what the kubeconfig
 * reader has always accepted (blanks ignored, padding optional). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/str.h"

/* The decoding of a C string, into a static buffer, NUL-terminated; its
 * length in *n, -1 when refused. */
static const char *dec(const char *in, unsigned flags, long *n)
{
	static char out[256];
	size_t len = strlen(in);
	assert_true(IG_BASE64_DECODED_MAX(len) < sizeof out);
	memset(out, 0x55, sizeof out);
	*n = ig_base64_decode(in, len, out, flags);
	if (*n >= 0) {
		/* Never past what the caller was told to make room for. */
		assert_true((size_t)*n <= IG_BASE64_DECODED_MAX(len));
		out[*n] = '\0';
	}
	return out;
}

static void test_encode(void **state)
{
	char out[16];
	assert_int_equal(ig_base64_encode("", 0, out), 0);
	assert_int_equal(ig_base64_encode("a", 1, out), 4);
	assert_memory_equal(out, "YQ==", 4);
	assert_int_equal(ig_base64_encode("ab", 2, out), 4);
	assert_memory_equal(out, "YWI=", 4);
	assert_int_equal(ig_base64_encode("abc", 3, out), 4);
	assert_memory_equal(out, "YWJj", 4);
	assert_int_equal(ig_base64_encode("\xfb\xff", 2, out), 4);
	assert_memory_equal(out, "+/8=", 4);
}

static void test_decode_valid(void **state)
{
	long n;
	assert_string_equal(dec("YQ==", 0, &n), "a");
	assert_int_equal(n, 1);
	assert_string_equal(dec("YWI=", 0, &n), "ab");
	assert_string_equal(dec("YWJj", 0, &n), "abc");
	assert_string_equal(dec("aGVsbG8gd29ybGQ=", 0, &n), "hello world");
	assert_int_equal(n, 11);
	assert_string_equal(dec("+/8=", 0, &n), "\xfb\xff");
	/* Every value round-trips. */
	unsigned char all[256], back[256 + 3];
	char text[IG_BASE64_LEN(256)];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t len = 0; len <= 256; len += 37) {
		size_t tl = ig_base64_encode(all, len, text);
		assert_int_equal(ig_base64_decode(text, tl, back, 0), (long)len);
		assert_memory_equal(back, all, len);
	}
}

static void test_decode_empty(void **state)
{
	long n;
	assert_string_equal(dec("", 0, &n), "");
	assert_int_equal(n, 0);
	assert_string_equal(dec("\r\n", 0, &n), "");
	assert_int_equal(n, 0);
	assert_string_equal(dec("", IG_BASE64_LAX, &n), "");
	assert_int_equal(n, 0);
	/* Padding alone is no quantum. */
	dec("====", 0, &n);
	assert_int_equal(n, -1);
}

static void test_decode_padding(void **state)
{
	long n;
	dec("YQ", 0, &n); /* missing */
	assert_int_equal(n, -1);
	dec("YQ=", 0, &n); /* short */
	assert_int_equal(n, -1);
	dec("YQ===", 0, &n); /* too much */
	assert_int_equal(n, -1);
	dec("YWJj=", 0, &n); /* after a whole quantum */
	assert_int_equal(n, -1);
	dec("Y===", 0, &n); /* one symbol is no byte */
	assert_int_equal(n, -1);
	dec("YQ==YQ==", 0, &n); /* data after padding */
	assert_int_equal(n, -1);
	dec("YQ=a", 0, &n);
	assert_int_equal(n, -1);
	/* Lax: any padding or none, never data after it. */
	assert_string_equal(dec("YQ", IG_BASE64_LAX, &n), "a");
	assert_string_equal(dec("YQ=", IG_BASE64_LAX, &n), "a");
	assert_string_equal(dec("YWI", IG_BASE64_LAX, &n), "ab");
	dec("YQ==YQ", IG_BASE64_LAX, &n);
	assert_int_equal(n, -1);
}

static void test_decode_bad_chars(void **state)
{
	long n;
	const char *bad[] = {"a$b=", "YQ-=", "YW_j", "YW\x80j", "YW j", "YW\tj", "YW.j"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		dec(bad[i], 0, &n);
		assert_int_equal(n, -1);
	}
	/* A NUL inside the text is a bad character too. */
	char out[8];
	assert_int_equal(ig_base64_decode("YW\0j", 4, out, 0), -1);
	assert_int_equal(ig_base64_decode("YW\0j", 4, out, IG_BASE64_LAX), -1);
	dec("a$b=", IG_BASE64_LAX, &n);
	assert_int_equal(n, -1);
	/* URL-safe base64 is another alphabet. */
	dec("-_8=", IG_BASE64_LAX, &n);
	assert_int_equal(n, -1);
}

static void test_decode_line_breaks(void **state)
{
	long n;
	/* CR and LF anywhere, padding included, as Go skips them. */
	assert_string_equal(dec("aGVs\nbG8g\r\nd29y\nbGQ=\n", 0, &n), "hello world");
	assert_string_equal(dec("Y\nQ\r=\n=", 0, &n), "a");
	/* Blanks only when lax. */
	dec("aGVs bG8g", 0, &n);
	assert_int_equal(n, -1);
	assert_string_equal(dec("aW5m\nZXJn YXRl", IG_BASE64_LAX, &n), "infergate");
	assert_string_equal(dec(" aGVs\tbG8g ", IG_BASE64_LAX, &n), "hello ");
}

/* Go's strings.TrimSpace: ASCII white space and Unicode's (UTF-8), at
 * either end only; a lone continuation byte or a NUL is not space. */
static void test_trim_space(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {" \t\n\v\f\rabc \r\n", "abc"},
	    {"\xc2\xa0" "a b\xc2\x85", "a b"},
	    {"\xe2\x80\x80\xe2\x80\x8a\xe2\x80\xa8x\xe2\x80\xa9\xe2\x80\xaf", "x"},
	    {"\xe1\x9a\x80y\xe2\x81\x9f\xe3\x80\x80", "y"},
	    {"\xe2\x80\x8b" "z", "\xe2\x80\x8b" "z"}, /* U+200B is not space in Go */
	    {"\xa0" "q\x85", "\xa0" "q\x85"},	 /* continuation bytes alone */
	    {"   ", ""},
	    {"", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_str t = ig_str_trim_space(ig_str_from(cases[i].in));
		assert_int_equal(t.len, strlen(cases[i].out));
		assert_memory_equal(t.ptr, cases[i].out, t.len);
	}
	/* NUL is data, not space, at either end. */
	struct ig_str t = ig_str_trim_space((struct ig_str){"\0" "a\0", 3});
	assert_int_equal(t.len, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode),	     cmocka_unit_test(test_decode_valid),
	    cmocka_unit_test(test_decode_empty),     cmocka_unit_test(test_decode_padding),
	    cmocka_unit_test(test_decode_bad_chars), cmocka_unit_test(test_decode_line_breaks),
	    cmocka_unit_test(test_trim_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
