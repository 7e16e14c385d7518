/* Clocks: monotonic for deadlines and durations, wall for timestamps. */
#ifndef IG_CORE_CLOCK_H
#define IG_CORE_CLOCK_H

#include <stdint.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

uint64_t ig_now_ns(void); /* CLOCK_MONOTONIC */
static inline uint64_t ig_now_ms(void)
{
	return ig_now_ns() / 1000000u;
}
double ig_wall_seconds(void); /* CLOCK_REALTIME as Unix seconds */
/* A cheap clock for durations of a few microseconds (the picker's
 * per-plugin timings): the CPU's time-stamp counter where it runs at a
 * constant rate whatever the core's state (x86-64 with an invariant TSC:
 * about 10 ns a read, where clock_gettime takes over 20), else
 * CLOCK_MONOTONIC in ns. ig_ticks_seconds turns a difference of two
 * readings into seconds; the counter's rate is measured once, over 2 ms,
 * the first time (ig_ticks_init at start-up keeps that off a request). */
/* 1 once the TSC was found usable (set by ig_ticks_init, before which
 * readings are ns: take both readings of a duration after it). */
extern int ig_ticks_use_tsc;
static inline uint64_t ig_ticks(void)
{
#if defined(__x86_64__)
	if (__atomic_load_n(&ig_ticks_use_tsc, __ATOMIC_RELAXED))
		return __rdtsc();
#endif
	return ig_now_ns();
}
void ig_ticks_init(void);
double ig_ticks_seconds(uint64_t ticks);
/* The next wait of a doubling back-off: first after none (last 0), then
 * twice the last, never above max. */
static inline uint64_t ig_backoff_next(uint64_t last, uint64_t first, uint64_t max)
{
	uint64_t next = last ? (last > max / 2 ? max : last * 2) : first;
	return next > max ? max : next;
}
/* Parses a Gateway API Duration ("24h", "1h30m", "500ms", "10s"; units h, m,
 * s, ms; 1 to 4 parts of at most 5 digits). Returns 0 and the milliseconds,
 * or -1 if the text is not such a duration. */
int ig_parse_duration_ms(const char *s, uint64_t *out_ms);
/* Parses an RFC 3339 date-time, as Kubernetes writes metadata times:
 * YYYY-MM-DDTHH:MM:SS, an optional fraction of a second, then Z or an
 * offset +HH:MM / -HH:MM ('T' and 'Z' in either case, or a space for 'T'
 * as RFC 3339 permits). *sec: Unix seconds (UTC); *nsec: the fraction's
 * first nine digits. Returns 0, or -1 if the text is not such a time
 * (a day its month lacks included). */
int ig_parse_rfc3339(const char *s, int64_t *sec, uint32_t *nsec);

#endif
