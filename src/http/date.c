/* The Date header field's value, cached per thread (date.h). */
#include "http/date.h"

#include <string.h>
#include <time.h>

static void two(char *out, unsigned v)
{
	out[0] = (char)('0' + v / 10 % 10);
	out[1] = (char)('0' + v % 10);
}

void ig_http_date_format(int64_t t, char out[IG_HTTP_DATE_LEN])
{
	static const char wday[] = "ThuFriSatSunMonTueWed"; /* day 0 was a Thursday */
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* The civil date of a day count (H. Hinnant's days_from_civil,
	 * inverted): eras of 400 years, years starting in March. */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	unsigned w = (unsigned)(((days % 7) + 7) % 7);
	memcpy(out, wday + 3 * w, 3);
	memcpy(out + 3, ", ", 2);
	two(out + 5, d);
	out[7] = ' ';
	memcpy(out + 8, mon + 3 * (m - 1), 3);
	out[11] = ' ';
	unsigned yy = (unsigned)(y < 0 ? 0 : y > 9999 ? 9999 : y);
	two(out + 12, yy / 100);
	two(out + 14, yy % 100);
	out[16] = ' ';
	two(out + 17, (unsigned)(secs / 3600));
	out[19] = ':';
	two(out + 20, (unsigned)(secs / 60 % 60));
	out[22] = ':';
	two(out + 23, (unsigned)(secs % 60));
	memcpy(out + 25, " GMT", 4);
}

static int digits(const char *p, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int ig_http_date_parse(struct ig_str v, int64_t *unix_seconds)
{
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	v = ig_str_trim(v);
	const char *p = v.ptr;
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (v.len != IG_HTTP_DATE_LEN || memcmp(p + 3, ", ", 2) || p[7] != ' ' || p[11] != ' ' ||
	    p[16] != ' ' || p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4))
		return -1;
	int d = digits(p + 5, 2), y = digits(p + 12, 4), hh = digits(p + 17, 2),
	    mm = digits(p + 20, 2), ss = digits(p + 23, 2);
	int m = 0;
	while (m < 12 && memcmp(mon + 3 * m, p + 8, 3))
		m++;
	if (d < 1 || d > 31 || y < 0 || m == 12 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
	    ss < 0 || ss > 60)
		return -1;
	/* H. Hinnant's days_from_civil: years starting in March. */
	int64_t yy = y - (m < 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	unsigned yoe = (unsigned)(yy - era * 400);
	unsigned mp = (unsigned)(m < 2 ? m + 10 : m - 2);
	unsigned doy = (153 * mp + 2) / 5 + (unsigned)d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = era * 146097 + (int64_t)doe - 719468;
	*unix_seconds = days * 86400 + hh * 3600 + mm * 60 + ss;
	return 0;
}

/* Each thread's own: no worker writes what another reads. */
static _Thread_local struct {
	int64_t sec;
	char text[IG_HTTP_DATE_LEN];
} cached = {-1, {0}};

struct ig_str ig_http_date_now(void)
{
	/* The coarse clock (the kernel's tick, no hardware read) is enough
	 * for a value that names the second. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if ((int64_t)ts.tv_sec != cached.sec) {
		ig_http_date_format((int64_t)ts.tv_sec, cached.text);
		cached.sec = (int64_t)ts.tv_sec;
	}
	return (struct ig_str){cached.text, IG_HTTP_DATE_LEN};
}

bool ig_http_has_date(const struct ig_http_header *hdrs, size_t n,
		      const struct ig_http_header *extra, size_t nextra)
{
	for (size_t i = 0; i < n + nextra; i++) {
		const struct ig_http_header *h = i < n ? &hdrs[i] : &extra[i - n];
		if (h->name.len == 4 && ig_str_ieq_cstr(h->name, "date"))
			return true;
	}
	return false;
}
