/* Logging to stderr, one line per event, with a level and a timestamp. */
#ifndef IG_CORE_LOG_H
#define IG_CORE_LOG_H

enum ig_log_level { IG_LOG_ERROR, IG_LOG_WARN, IG_LOG_INFO, IG_LOG_DEBUG };

extern enum ig_log_level ig_log_level;

void ig_log(enum ig_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
