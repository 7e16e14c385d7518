/* Logging to stderr, one line per event, with a level and a timestamp:
 * text ("2026-12-05T04:53:48.365Z warn  message"), or one JSON object per
 * line as Kubernetes log pipelines read them ({"level":"warn","ts":...,
 * "msg":"message"}, zap's keys, for `infergate epp --zap-encoder json`). */
#ifndef IG_CORE_LOG_H
#define IG_CORE_LOG_H

#include <stdint.h>

enum ig_log_level { IG_LOG_ERROR, IG_LOG_WARN, IG_LOG_INFO, IG_LOG_DEBUG };

extern enum ig_log_level ig_log_level;

enum ig_log_format { IG_LOG_TEXT, IG_LOG_JSON };
/* How "ts" is written in JSON lines: seconds since the epoch as a number
 * (zap's default), milliseconds or nanoseconds as numbers, or RFC 3339
 * text. */
enum ig_log_time { IG_LOG_TIME_EPOCH, IG_LOG_TIME_MILLIS, IG_LOG_TIME_NANOS, IG_LOG_TIME_RFC3339 };
/* Set once at start, before any thread logs. */
extern enum ig_log_format ig_log_format;
extern enum ig_log_time ig_log_time;

void ig_log(enum ig_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A warning that a failing peer repeats for every request: the same text
 * said less than interval_ns ago through the same limiter is counted, not
 * written, and the next time it is written says how many were left out.
 * A limiter keeps the last IG_LOG_LIMIT_SLOTS texts (one of more is
 * written again sooner) and belongs to one thread (a worker's); NULL
 * writes every line. */
#define IG_LOG_LIMIT_SLOTS 8
struct ig_log_limit {
	struct {
		uint64_t hash, at_ns;
		unsigned long quiet; /* the same text since at_ns, not written */
	} slot[IG_LOG_LIMIT_SLOTS];
};
void ig_warn_limited(struct ig_log_limit *l, uint64_t now_ns, uint64_t interval_ns, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));
/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
int ig_log_parse_level(const char *s);

#define ig_err(...) ig_log(IG_LOG_ERROR, __VA_ARGS__)
#define ig_warn(...) ig_log(IG_LOG_WARN, __VA_ARGS__)
#define ig_info(...) ig_log(IG_LOG_INFO, __VA_ARGS__)
#define ig_debug(...)                                                                              \
	do {                                                                                       \
		if (ig_log_level >= IG_LOG_DEBUG)                                                  \
			ig_log(IG_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif
