/* Clocks: monotonic for deadlines and durations, wall for timestamps. */
#ifndef IG_CORE_CLOCK_H
#define IG_CORE_CLOCK_H

#include <stdint.h>

uint64_t ig_now_ns(void); /* CLOCK_MONOTONIC */
static inline uint64_t ig_now_ms(void)
{
	return ig_now_ns() / 1000000u;
}
double ig_wall_seconds(void); /* CLOCK_REALTIME as Unix seconds */
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
