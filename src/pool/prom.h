/* Prometheus text exposition format (0.0.4) parser. Streams samples to a
 * callback; names, label text and values point into the input. */
#ifndef IG_POOL_PROM_H
#define IG_POOL_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

struct ig_prom_sample {
	struct ig_str name;   /* metric name as written, e.g. vllm:num_requests_waiting */
	struct ig_str labels; /* text between the braces, raw (may be empty) */
	double value;	      /* NaN, +Inf and -Inf accepted */
	int64_t timestamp_ms;
	bool has_timestamp;
};

/* Called once per sample line; a non-zero return stops the parse and is
 * returned by ig_prom_parse. */
typedef int (*ig_prom_cb)(void *ctx, const struct ig_prom_sample *s);

/* Parses text[0..len). Comment lines (# HELP, # TYPE, others) and blank
 * lines are skipped. Returns 0, the callback's non-zero value, or -1 on a
 * malformed line (its 1-based number in *err_line when err_line != NULL). */
int ig_prom_parse(const char *text, size_t len, ig_prom_cb cb, void *ctx, size_t *err_line);

/* Looks label `name` up in a raw label text and appends its unescaped value
 * to out. Returns 1 if found, 0 if not, -1 if the label text is malformed. */
int ig_prom_label(struct ig_str labels, const char *name, struct ig_buf *out);
/* The same without copying: *raw is the value as written, escapes and
 * all (a slice of labels). */
int ig_prom_label_raw(struct ig_str labels, const char *name, struct ig_str *raw);

#endif
