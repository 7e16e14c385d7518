#include "core/clock.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

uint64_t ig_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <pthread.h>

int ig_ticks_use_tsc;
static double seconds_per_tick = 1e-9;
static pthread_once_t ticks_once = PTHREAD_ONCE_INIT;

static void ticks_calibrate(void)
{
#if defined(__x86_64__)
	/* CPUID 0x80000007, EDX bit 8: the TSC is invariant (constant rate
	 * in every P-, C- and T-state). Without it, nanoseconds. */
	unsigned a, b, c, d;
	if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
		return;
	uint64_t n0 = ig_now_ns(), t0 = __rdtsc(), n1, t1;
	do {
		n1 = ig_now_ns();
		t1 = __rdtsc();
	} while (n1 - n0 < 2000000u);
	if (t1 <= t0)
		return;
	seconds_per_tick = (double)(n1 - n0) / 1e9 / (double)(t1 - t0);
	__atomic_store_n(&ig_ticks_use_tsc, 1, __ATOMIC_RELEASE);
#endif
}

void ig_ticks_init(void)
{
	pthread_once(&ticks_once, ticks_calibrate);
}

double ig_ticks_seconds(uint64_t ticks)
{
	ig_ticks_init();
	return (double)ticks * seconds_per_tick;
}

double ig_wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ig_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	uint64_t total = 0;
	int parts = 0;
	if (!s || !*s)
		return -1;
	while (*s) {
		uint64_t v = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t)(*s++ - '0');
			if (++digits > 5)
				return -1;
		}
		if (digits == 0 || ++parts > 4)
			return -1;
		if (strncmp(s, "ms", 2) == 0) {
			s += 2;
		} else if (*s == 'h') {
			v *= 3600000u, s++;
		} else if (*s == 'm') {
			v *= 60000u, s++;
		} else if (*s == 's') {
			v *= 1000u, s++;
		} else {
			return -1;
		}
		total += v;
	}
	*out_ms = total;
	return 0;
}

/* n decimal digits at p, exactly; -1 otherwise. */
static int fixed_digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar: the
 * year is counted from March, so that February's length only matters at
 * the end of a counted year. */
static int64_t days_since_epoch(int y, int m, int d)
{
	int64_t yy = m <= 2 ? y - 1 : y;
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;				       /* 0..399 */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	       /* 0..146096 */
	return era * 146097 + doe - 719468;
}

int ig_parse_rfc3339(const char *s, int64_t *sec, uint32_t *nsec)
{
	if (!s || strnlen(s, 20) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
	    s[16] != ':' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return -1;
	int y = fixed_digits(s, 4), mo = fixed_digits(s + 5, 2), d = fixed_digits(s + 8, 2);
	int h = fixed_digits(s + 11, 2), mi = fixed_digits(s + 14, 2);
	int se = fixed_digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
	    se > 60 || d > days_in_month(y, mo))
		return -1;
	const char *p = s + 19;
	uint32_t frac = 0;
	if (*p == '.') {
		int n = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 9)
				frac = frac * 10 + (uint32_t)(*p - '0');
		if (n == 0)
			return -1;
		for (; n < 9; n++)
			frac *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh = fixed_digits(p + 1, 2);
		int om = oh >= 0 && p[3] == ':' ? fixed_digits(p + 4, 2) : -1;
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	/* A leap second (:60) counts as the first second of the next minute. */
	*sec = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
	*nsec = frac;
	return 0;
}
