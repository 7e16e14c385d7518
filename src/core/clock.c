#include "core/clock.h"

#include <string.h>
#include <time.h>

uint64_t ig_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
