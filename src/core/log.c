#include "core/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

enum ig_log_level ig_log_level = IG_LOG_INFO;
enum ig_log_format ig_log_format = IG_LOG_TEXT;
enum ig_log_time ig_log_time = IG_LOG_TIME_EPOCH;

static const char *const names[] = {"error", "warn", "info", "debug"};

int ig_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* The message as the inside of a JSON string, into out[*n..cap-8]: quotes,
 * backslashes, control bytes and bytes past ASCII escaped (a message may
 * quote a client's bytes, which need not be UTF-8); cut (never mid-escape)
 * when the room ends. */
static void json_escape(char *out, size_t *n, size_t cap, const char *msg)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = *n;
	for (const unsigned char *p = (const unsigned char *)msg; *p && k + 8 < cap; p++) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			out[k++] = '\\';
			out[k++] = (char)c;
		} else if (c == '\n') {
			out[k++] = '\\';
			out[k++] = 'n';
		} else if (c == '\t') {
			out[k++] = '\\';
			out[k++] = 't';
		} else if (c < 0x20 || c >= 0x7f) { /* bytes past ASCII too: always valid JSON */
			memcpy(out + k, "\\u00", 4);
			out[k + 4] = hex[c >> 4];
			out[k + 5] = hex[c & 15];
			k += 6;
		} else {
			out[k++] = (char)c;
		}
	}
	*n = k;
}

static void log_json(enum ig_log_level level, const struct timespec *ts, const char *msg)
{
	char line[4096];
	int n;
	switch (ig_log_time) {
	case IG_LOG_TIME_MILLIS:
		n = snprintf(line, sizeof line, "{\"level\":\"%s\",\"ts\":%lld.%06ld,\"msg\":\"",
			     names[level], (long long)ts->tv_sec * 1000 + ts->tv_nsec / 1000000,
			     ts->tv_nsec % 1000000);
		break;
	case IG_LOG_TIME_NANOS:
		n = snprintf(line, sizeof line, "{\"level\":\"%s\",\"ts\":%lld%09ld,\"msg\":\"",
			     names[level], (long long)ts->tv_sec, ts->tv_nsec);
		break;
	case IG_LOG_TIME_RFC3339: {
		struct tm tm;
		gmtime_r(&ts->tv_sec, &tm);
		n = snprintf(line, sizeof line,
			     "{\"level\":\"%s\",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
			     "\"msg\":\"",
			     names[level], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
		break;
	}
	default:
		n = snprintf(line, sizeof line, "{\"level\":\"%s\",\"ts\":%lld.%09ld,\"msg\":\"",
			     names[level], (long long)ts->tv_sec, ts->tv_nsec);
	}
	size_t len = (size_t)n;
	json_escape(line, &len, sizeof line, msg);
	memcpy(line + len, "\"}\n", 3);
	len += 3;
	fwrite(line, 1, len, stderr);
}

void ig_log(enum ig_log_level level, const char *fmt, ...)
{
	if (level > ig_log_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ig_log_format == IG_LOG_JSON) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line, sizeof line, fmt, ap);
		va_end(ap);
		log_json(level, &ts, line);
		return;
	}
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	fwrite(line, 1, len, stderr);
}

void ig_warn_limited(struct ig_log_limit *l, uint64_t now_ns, uint64_t interval_ns, const char *fmt,
		     ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!l) {
		ig_warn("%s", line);
		return;
	}
	size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	uint64_t h = XXH3_64bits(line, len);
	/* Its slot, else the one written longest ago (whose count goes). */
	size_t at = 0;
	for (size_t i = 0; i < IG_LOG_LIMIT_SLOTS; i++) {
		if (l->slot[i].hash == h) {
			at = i;
			break;
		}
		if (l->slot[i].at_ns < l->slot[at].at_ns)
			at = i;
	}
	bool same = l->slot[at].hash == h && l->slot[at].at_ns;
	if (same && now_ns - l->slot[at].at_ns < interval_ns) {
		l->slot[at].quiet++;
		return;
	}
	if (same && l->slot[at].quiet)
		ig_warn("%s (%lu more like it not logged)", line, l->slot[at].quiet);
	else
		ig_warn("%s", line);
	l->slot[at].hash = h;
	l->slot[at].at_ns = now_ns ? now_ns : 1;
	l->slot[at].quiet = 0;
}
