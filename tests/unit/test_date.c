/* Unit tests for the Date header's value (http/date.h): IMF-fixdate as
 * RFC 9110 §5.6.7 writes it, checked against gmtime_r and strftime in the
 * C locale over four centuries, and the per-thread copy of now. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "http/date.h"

static void check(int64_t t, const char *want)
{
	char out[IG_HTTP_DATE_LEN + 1];
	ig_http_date_format(t, out);
	out[IG_HTTP_DATE_LEN] = '\0';
	assert_string_equal(out, want);
}

static void test_known_dates(void **state)
{
	check(784111777, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
	check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
	check(951782400, "Tue, 29 Feb 2000 00:00:00 GMT");
	check(4107542399, "Sun, 28 Feb 2100 23:59:59 GMT");
	check(4107542400, "Mon, 01 Mar 2100 00:00:00 GMT");
	check(-1, "Wed, 31 Dec 1969 23:59:59 GMT");
}

/* Every day from 1900 to 2300 at a time of day that moves, against the
 * C library (English names in the C locale). */
static void test_against_strftime(void **state)
{
	for (int64_t t = -2208988800LL; t < 10413792000LL; t += 86400 + 3607) {
		time_t tt = (time_t)t;
		struct tm tm;
		gmtime_r(&tt, &tm);
		char want[64], got[IG_HTTP_DATE_LEN + 1];
		strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		ig_http_date_format(t, got);
		got[IG_HTTP_DATE_LEN] = '\0';
		assert_string_equal(got, want);
	}
}

/* A Retry-After's HTTP-date: IMF-fixdate read back to the time it was
 * formatted from; other text refused. */
static void test_parse(void **state)
{
	int64_t t;
	assert_int_equal(ig_http_date_parse(IG_STR("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
	assert_int_equal(t, 784111777);
	assert_int_equal(ig_http_date_parse(IG_STR(" Tue, 29 Feb 2000 00:00:00 GMT "), &t), 0);
	assert_int_equal(t, 951782400);
	for (int64_t u = -2208988800LL; u < 10413792000LL; u += 86400 * 3 + 3607) {
		char text[IG_HTTP_DATE_LEN];
		ig_http_date_format(u, text);
		assert_int_equal(ig_http_date_parse((struct ig_str){text, sizeof text}, &t), 0);
		assert_int_equal(t, u);
	}
	const char *bad[] = {"120",
			     "",
			     "Sunday, 06-Nov-94 08:49:37 GMT",
			     "Sun Nov  6 08:49:37 1994",
			     "Sun, 06 Nov 1994 08:49:37 UTC",
			     "Sun, 06 Foo 1994 08:49:37 GMT",
			     "Sun, 36 Nov 1994 08:49:37 GMT",
			     "Sun, 06 Nov 1994 24:49:37 GMT",
			     "Sun, 06 Nov 19x4 08:49:37 GMT"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(ig_http_date_parse(ig_str_from(bad[i]), &t), -1);
}

/* The cached value is now's, the same text within a second. */
static void test_now(void **state)
{
	time_t before = time(NULL);
	struct ig_str a = ig_http_date_now();
	struct ig_str b = ig_http_date_now();
	time_t after = time(NULL);
	assert_int_equal(a.len, IG_HTTP_DATE_LEN);
	assert_ptr_equal(a.ptr, b.ptr);
	char lo[IG_HTTP_DATE_LEN], hi[IG_HTTP_DATE_LEN], lo1[IG_HTTP_DATE_LEN];
	ig_http_date_format(before, lo);
	ig_http_date_format(before - 1, lo1); /* the coarse clock may lag a tick */
	ig_http_date_format(after, hi);
	assert_true(memcmp(a.ptr, lo, a.len) == 0 || memcmp(a.ptr, hi, a.len) == 0 ||
		    memcmp(a.ptr, lo1, a.len) == 0);
}

static void test_has_date(void **state)
{
	const struct ig_http_header h[] = {{IG_STR("X-Date"), IG_STR("1")},
					   {IG_STR("Dates"), IG_STR("2")}};
	const struct ig_http_header d[] = {{IG_STR("DATE"), IG_STR("x")}};
	assert_false(ig_http_has_date(h, 2, NULL, 0));
	assert_true(ig_http_has_date(h, 2, d, 1));
	assert_true(ig_http_has_date(d, 1, h, 2));
	assert_false(ig_http_has_date(NULL, 0, NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_dates), cmocka_unit_test(test_against_strftime),
	    cmocka_unit_test(test_parse),	cmocka_unit_test(test_now),
	    cmocka_unit_test(test_has_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
