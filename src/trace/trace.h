/* OpenTelemetry traces: W3C trace context, spans encoded as OTLP/JSON,
 * and an exporter that POSTs them in batches to an OTLP/HTTP collector
 * (`URL/v1/traces`, application/json).
 *
 * Nothing is shared on the request path: each worker thread appends its
 * finished spans to a ring of its own (single producer, single consumer,
 * bounded); the exporter, on the control loop, drains the rings into a
 * bounded batch and sends at most one batch at a time, retried as the
 * OTLP spec asks (429, 502, 503, 504, no answer: after Retry-After, else
 * 1 s then 2 s). A full ring, a full batch or a collector that refuses,
 * is slow or is gone drops spans (counted), never delays a request. */
#ifndef IG_TRACE_TRACE_H
#define IG_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"
#include "event/loop.h"

/* ---- W3C trace context ---- */

struct ig_trace_parent {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	bool sampled; /* trace-flags bit 0 */
};

/* Parses a `traceparent` value (version 00, or a later version read as
 * 00 as the spec asks): 0, or -1 when invalid (all-zero ids, bad hex,
 * version ff, wrong lengths). */
int ig_traceparent_parse(struct ig_str v, struct ig_trace_parent *out);
/* "00-<32 hex>-<16 hex>-0x": 55 characters and a NUL. */
void ig_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], bool sampled,
			   char out[56]);
/* n random bytes, not all zero. */
void ig_trace_random_id(struct ig_rng *r, uint8_t *id, size_t n);

/* ---- spans ---- */

enum ig_span_kind { IG_SPAN_INTERNAL = 1, IG_SPAN_SERVER = 2, IG_SPAN_CLIENT = 3 };
enum ig_span_status { IG_SPAN_UNSET = 0, IG_SPAN_OK = 1, IG_SPAN_ERROR = 2 };

struct ig_span_attr {
	const char *key;
	bool is_int;
	struct ig_str s; /* when !is_int */
	int64_t i;	 /* when is_int */
};

struct ig_span {
	const uint8_t *trace_id; /* 16 bytes */
	const uint8_t *span_id;	 /* 8 */
	const uint8_t *parent;	 /* 8, or NULL for a root span */
	enum ig_span_kind kind;
	struct ig_str name;
	uint64_t start_unix_ns, end_unix_ns;
	enum ig_span_status status;
	const char *status_message; /* may be NULL */
	const struct ig_span_attr *attrs;
	size_t nattrs;
};

/* Appends the span as one OTLP/JSON Span object. 0, or -1 when b is full. */
int ig_span_json(struct ig_buf *b, const struct ig_span *s);

/* The version of OpenTelemetry's semantic conventions the spans follow
 * (gateway/tracing.c), as GIE v1.5's picker: the schemaUrl of every
 * export. */
#define IG_TRACE_SCHEMA_URL "https://opentelemetry.io/schemas/1.37.0"

/* ---- exporter ---- */

struct ig_tracer;

struct ig_tracer_config {
	const char *endpoint; /* "http://host:port[/prefix]"; /v1/traces is appended */
	/* The endpoint is the full URL to POST to (OpenTelemetry's
	 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): nothing is appended. */
	bool endpoint_is_url;
	/* The resource's service.name when set (a flag, OTEL_SERVICE_NAME):
	 * it wins over one in resource_attributes, as in the OTel SDK. */
	const char *service_name;
	/* Otherwise the resource_attributes' service.name, else this (NULL:
	 * "infergate"). */
	const char *default_service_name;
	/* OTEL_RESOURCE_ATTRIBUTES's text (the OTel SDK's environment
	 * variable: key=value pairs separated by commas, values
	 * percent-decoded; an invalid pair is left out with a warning): more
	 * attributes of the exported resource, such as the k8s.pod.name GIE's
	 * chart sets. NULL: none. */
	const char *resource_attributes;
	double sample_ratio;  /* for requests without a sampled parent; 0..1 */
	size_t nrings;	      /* one per worker */
	size_t ring_bytes;    /* per worker (default 1 MiB), rounded up to a power of 2 */
	size_t batch_bytes;   /* most spans' JSON one export carries (default 4 MiB) */
	uint64_t interval_ms; /* export period (default 1000) */
	uint64_t timeout_ms;  /* one export's limit; 0: the OTel variables' (below), else 5000 */
};

/* Parses the endpoint (its host is resolved now) and sets up the rings.
 * NULL with the reason in err. */
struct ig_tracer *ig_tracer_new(const struct ig_tracer_config *cfg, char *err, size_t errlen);
/* Starts the export timer on the control loop. */
void ig_tracer_start(struct ig_tracer *t, struct ig_loop *loop);
/* At most this long, ig_tracer_free exports what is left (the OTel SDK's
 * Shutdown with a deadline). */
#define IG_TRACE_SHUTDOWN_MS 5000
/* Waits for the export in flight (and a retry of it due before the
 * deadline; one due later is given up), then exports what is still batched or
 * in the rings, batch after batch, each export bounded by timeout_ms and
 * all by IG_TRACE_SHUTDOWN_MS; what did not go is counted as dropped and
 * logged. Then everything is freed. */
void ig_tracer_free(struct ig_tracer *t);

/* Whether a request without a sampled parent is traced (ratio). */
bool ig_tracer_sample(const struct ig_tracer *t, struct ig_rng *r);

/* On worker `ring`'s thread: appends finished spans (encoded here). Drops
 * them all (counted) when the ring has no room. */
void ig_tracer_emit(struct ig_tracer *t, size_t ring, const struct ig_span *spans, size_t n);

/* Counters for /metrics and tests. */
struct ig_tracer_stats {
	uint64_t spans_exported, spans_dropped, exports_failed;
};
void ig_tracer_stats(const struct ig_tracer *t, struct ig_tracer_stats *out);

#endif
