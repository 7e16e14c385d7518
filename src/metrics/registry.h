/* Our own Prometheus metrics: counters, gauges and histograms with labels,
 * rendered in text exposition format 0.0.4 for GET /metrics.
 *
 * Threading: updates (ig_counter_add, ig_gauge_set/add, ig_hist_observe)
 * are lock-free and may run on any thread at any time. Counters and
 * histograms are sharded: a thread that declared its own shard with
 * ig_metrics_set_shard writes only cache lines no other thread writes
 * (a plain load and store, no read-modify-write); other threads share
 * shard 0 and update it with atomic read-modify-writes. Gauges keep one
 * shared value (set has no per-shard meaning), except summed gauges, whose
 * adds are sharded as a counter's are. Families
 * and series are created under a mutex and never freed before the
 * registry, so a series handle can be cached by the caller for as long as
 * the registry lives. ig_metrics_series is lock-free and writes nothing
 * shared when the series already exists. Rendering reads the values without stopping writers; a
 * histogram's _count is derived from its buckets so the two always agree. */
#ifndef IG_METRICS_REGISTRY_H
#define IG_METRICS_REGISTRY_H

#include <stddef.h>

#include "core/buf.h"

struct ig_registry;
struct ig_metric_family;
struct ig_series;

/* Shards of ig_registry_new: room for 63 threads with their own shard. */
#define IG_METRICS_DEFAULT_SHARDS 64

/* A registry whose series have `nshards` shards (0 reads as 1): shard 0,
 * shared, and nshards - 1 that threads may own. Memory: each series has
 * one pointer per shard, and a shard's block of values (whole cache lines)
 * is allocated the first time its owner writes that series, so only the
 * shards in use cost more than a pointer. */
struct ig_registry *ig_registry_new_sharded(unsigned nshards);
struct ig_registry *ig_registry_new(void);
void ig_registry_free(struct ig_registry *r);

/* Creates a family. `name` must be a valid metric name and not already
 * registered, label names valid label names (histograms may not use "le"),
 * histogram bounds finite and strictly increasing (the +Inf bucket is
 * implicit). Strings are copied. Returns NULL on any of these errors or on
 * allocation failure. A family without labels gets its one series at once,
 * so it renders (as 0) before any update. */
struct ig_metric_family *ig_metrics_counter(struct ig_registry *r, const char *name,
					    const char *help, const char *const *label_names,
					    size_t nlabels);
struct ig_metric_family *ig_metrics_gauge(struct ig_registry *r, const char *name, const char *help,
					  const char *const *label_names, size_t nlabels);
struct ig_metric_family *ig_metrics_histogram(struct ig_registry *r, const char *name,
					      const char *help, const char *const *label_names,
					      size_t nlabels, const double *bounds, size_t nbounds);

/* A gauge that threads move up and down (requests in flight, requests
 * queued): each thread's ig_gauge_add goes to its own shard, as a
 * counter's increments do, so that workers that count their own requests
 * never write one cache line; the value is the sum of the shards. A
 * thread's shard may go below zero (what it added elsewhere, it takes
 * back here); only the sum means anything. ig_gauge_set sets the shared
 * shard only: such a gauge is meant to be added to. */
struct ig_metric_family *ig_metrics_gauge_summed(struct ig_registry *r, const char *name,
						 const char *help, const char *const *label_names,
						 size_t nlabels);

/* A gauge family whose values are computed at render time: before the
 * family is written, fn(ctx, family) is called and may look series up and
 * set them. Calls are serialised by the registry. */
typedef void (*ig_gauge_fn)(void *ctx, struct ig_metric_family *f);
struct ig_metric_family *ig_metrics_gauge_fn(struct ig_registry *r, const char *name,
					     const char *help, const char *const *label_names,
					     size_t nlabels, ig_gauge_fn fn, void *ctx);

/* A gauge family whose rows exist only while it is rendered: fn(ctx, rows)
 * calls ig_metrics_row once per row, and nothing is kept afterwards. For
 * label values that come and go (endpoints of a pool): a row that is no
 * longer emitted disappears from the next scrape and leaves no series
 * behind. The family is not rendered when fn emits nothing. */
struct ig_metric_rows;
typedef void (*ig_rows_fn)(void *ctx, struct ig_metric_rows *rows);
struct ig_metric_family *ig_metrics_gauge_rows(struct ig_registry *r, const char *name,
					       const char *help, const char *const *label_names,
					       size_t nlabels, ig_rows_fn fn, void *ctx);
/* One row of the family being rendered: one value per label name (NULL
 * reads as ""). */
void ig_metrics_row(struct ig_metric_rows *rows, const char *const *label_values, double v);

/* Finds or creates the series for these label values (one per label name,
 * any bytes; NULL reads as ""). Returns NULL only on allocation failure.
 * Series are never removed, so callers should keep label values to a
 * bounded set (configured model names, not client input). */
struct ig_series *ig_metrics_series(struct ig_metric_family *f, const char *const *label_values);

/* Declares the shard this thread writes in every registry, from now until
 * it calls again. At most one live thread may own an index other than 0;
 * an index is free again once its owner has been joined. 0 (the default of
 * every thread) and indices a registry does not have mean the shared shard.
 * Gateway workers use their worker id + 1. */
void ig_metrics_set_shard(unsigned idx);

/* Counters only go up: negative and NaN increments are ignored. */
void ig_counter_add(struct ig_series *s, double v);
void ig_gauge_set(struct ig_series *s, double v);
void ig_gauge_add(struct ig_series *s, double v);
/* The value is counted in the first bucket whose bound is >= v. */
void ig_hist_observe(struct ig_series *s, double v);
/* ig_hist_observe of v in a and in b, finding the bucket once when the two
 * histograms have the same bounds (GIE's v0.2 and v1.5 families record
 * most values twice, with the same buckets). */
void ig_hist_observe2(struct ig_series *a, struct ig_series *b, double v);

/* Current value of a counter or gauge, or a histogram's sum. */
double ig_series_value(const struct ig_series *s);

/* Appends the text exposition of every family with at least one series,
 * in creation order, to out. Returns 0 or a negative errno from out. */
int ig_registry_render(struct ig_registry *r, struct ig_buf *out);

#endif
