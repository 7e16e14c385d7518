/* W3C trace context, OTLP/JSON spans and their exporter (trace.h). */
#include "trace/trace.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/version.h"
#include "core/str.h"
#include "core/spsc.h"
#include "http/client.h"
#include "http/date.h"
#include "json/json.h"

/* ---- trace context ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is invalid in traceparent */
}

static int unhex(const char *p, uint8_t *out, size_t n)
{
	bool nonzero = false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
		nonzero |= out[i] != 0;
	}
	return nonzero ? 0 : -1;
}

int ig_traceparent_parse(struct ig_str v, struct ig_trace_parent *out)
{
	v = ig_str_trim(v);
	/* version-traceid-parentid-flags: 2+1+32+1+16+1+2 = 55 */
	if (v.len < 55 || v.ptr[2] != '-' || v.ptr[35] != '-' || v.ptr[52] != '-')
		return -1;
	int hi = hexval(v.ptr[0]), lo = hexval(v.ptr[1]);
	if (hi < 0 || lo < 0)
		return -1;
	int ver = hi << 4 | lo;
	/* Version ff is invalid; a later version may carry more fields after
	 * a dash, which are ignored. */
	if (ver == 0xff || (ver == 0 && v.len != 55) || (ver > 0 && v.len > 55 && v.ptr[55] != '-'))
		return -1;
	uint8_t flags;
	if (unhex(v.ptr + 3, out->trace_id, 16) < 0 || unhex(v.ptr + 36, out->span_id, 8) < 0 ||
	    hexval(v.ptr[53]) < 0 || hexval(v.ptr[54]) < 0)
		return -1;
	flags = (uint8_t)(hexval(v.ptr[53]) << 4 | hexval(v.ptr[54]));
	out->sampled = flags & 1;
	return 0;
}

static void put_hex(char *out, const uint8_t *id, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
}

void ig_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], bool sampled,
			   char out[56])
{
	memcpy(out, "00-", 3);
	put_hex(out + 3, trace_id, 16);
	out[35] = '-';
	put_hex(out + 36, span_id, 8);
	memcpy(out + 52, sampled ? "-01" : "-00", 3);
	out[55] = '\0';
}

void ig_trace_random_id(struct ig_rng *r, uint8_t *id, size_t n)
{
	for (;;) {
		bool nonzero = false;
		for (size_t i = 0; i < n; i += 8) {
			uint64_t v = ig_rng_next(r);
			size_t k = n - i < 8 ? n - i : 8;
			memcpy(id + i, &v, k);
		}
		for (size_t i = 0; i < n; i++)
			nonzero |= id[i] != 0;
		if (nonzero)
			return;
	}
}

/* ---- OTLP/JSON ---- */

static void put_id(struct ig_buf *b, const char *key, const uint8_t *id, size_t n)
{
	char hex[33];
	put_hex(hex, id, n);
	hex[2 * n] = '\0';
	ig_buf_printf(b, "\"%s\":\"%s\",", key, hex);
}

int ig_span_json(struct ig_buf *b, const struct ig_span *s)
{
	size_t start = b->len;
	ig_buf_append_cstr(b, "{");
	put_id(b, "traceId", s->trace_id, 16);
	put_id(b, "spanId", s->span_id, 8);
	if (s->parent)
		put_id(b, "parentSpanId", s->parent, 8);
	ig_buf_append_cstr(b, "\"name\":");
	ig_json_write_string(b, s->name.ptr, s->name.len);
	/* int64 fields are strings in OTLP/JSON. */
	ig_buf_printf(b,
		      ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
		      "\"attributes\":[",
		      (int)s->kind, (unsigned long long)s->start_unix_ns,
		      (unsigned long long)s->end_unix_ns);
	for (size_t i = 0; i < s->nattrs; i++) {
		const struct ig_span_attr *a = &s->attrs[i];
		ig_buf_append_cstr(b, i ? ",{\"key\":" : "{\"key\":");
		ig_json_write_string(b, a->key, strlen(a->key));
		if (a->is_int) {
			ig_buf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->i);
		} else {
			ig_buf_append_cstr(b, ",\"value\":{\"stringValue\":");
			ig_json_write_string(b, a->s.ptr ? a->s.ptr : "", a->s.len);
			ig_buf_append_cstr(b, "}}");
		}
	}
	ig_buf_printf(b, "],\"status\":{\"code\":%d", (int)s->status);
	if (s->status_message) {
		ig_buf_append_cstr(b, ",\"message\":");
		ig_json_write_string(b, s->status_message, strlen(s->status_message));
	}
	if (ig_buf_append_cstr(b, "}}") < 0) {
		b->len = start;
		return -1;
	}
	return 0;
}

/* ---- per-worker rings ---- */

/* Its worker produces, the control loop consumes: records are a 4-byte
 * length and the span's JSON, published whole. */
struct ring {
	struct ig_spsc q;
	atomic_uint_fast64_t dropped;
	struct ig_buf scratch; /* the producer's, for encoding */
};

static bool ring_put(struct ring *r, const char *rec, uint32_t len)
{
	if (!ig_spsc_reserve(&r->q, (size_t)len + 4))
		return false;
	ig_spsc_write(&r->q, 0, &len, 4);
	ig_spsc_write(&r->q, 4, rec, len);
	ig_spsc_commit(&r->q, (size_t)len + 4);
	return true;
}

/* ---- the exporter ---- */

struct ig_tracer {
	struct ig_tracer_config cfg;
	char host[300], path[512], hostport[300];
	struct sockaddr_storage sa;
	socklen_t salen;
	struct ring *rings;
	struct ig_loop *loop;
	struct ig_timer timer;
	struct ig_buf resource; /* the resource's attributes, a JSON array's elements */
	struct ig_buf batch;	/* comma-separated span objects */
	size_t batch_spans;
	/* The export in flight, or waiting to be tried again (`waiting`,
	 * until retry_timer fires). */
	struct ig_http_client *conn;
	struct ig_buf req;
	size_t req_spans;
	bool in_flight;
	bool waiting;
	unsigned retries; /* of the request in `req` */
	uint64_t retry_at_ms;
	struct ig_timer retry_timer;
	struct ig_buf resp; /* a 2xx answer's body: its partialSuccess */
	bool resp_over;	    /* it was longer than RESP_MAX: not read */
	uint64_t end_ms;    /* the shutdown's deadline; 0 before */
	uint64_t rejected_log_ms;
	uint64_t exported, dropped, failed;
	uint64_t left; /* dropped by the shutdown's flush: not exported in time */
};

/* The OTLP exporter spec's retries (OTLP/HTTP "Failures", "Throttling"):
 * 429, 502, 503, 504 and a connection that failed or got no answer are
 * tried again after 1 s, then 2 s, or after the Retry-After the answer
 * asked for, up to this. */
#define RETRIES_MAX 2
#define RETRY_FIRST_MS 1000
#define RETRY_AFTER_MAX_MS 30000
#define RESP_MAX (64u << 10)
#define REJECTED_LOG_MS 60000

static int parse_endpoint(struct ig_tracer *t, const char *url, char *err, size_t errlen)
{
	if (strncmp(url, "http://", 7) != 0) {
		snprintf(err, errlen, "%s: the OTLP endpoint must be an http:// URL", url);
		return -1;
	}
	const char *h = url + 7, *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	if (hl == 0 || hl >= sizeof t->hostport) {
		snprintf(err, errlen, "%s: no host", url);
		return -1;
	}
	memcpy(t->hostport, h, hl);
	t->hostport[hl] = '\0';
	const char *prefix = slash ? slash : "";
	size_t pl = strlen(prefix);
	while (pl && prefix[pl - 1] == '/')
		pl--;
	if ((t->cfg.endpoint_is_url ? strlen(prefix) + 2 : pl + sizeof "/v1/traces") >
	    sizeof t->path) {
		snprintf(err, errlen, "%s: path too long", url);
		return -1;
	}
	/* A signal-specific endpoint is used as-is; a base URL gets the
	 * signal's path (OTLP exporter spec, "Endpoint URLs for OTLP/HTTP"). */
	if (t->cfg.endpoint_is_url)
		snprintf(t->path, sizeof t->path, "%s", *prefix ? prefix : "/");
	else
		snprintf(t->path, sizeof t->path, "%.*s/v1/traces", (int)pl, prefix);
	char port[16] = "80";
	const char *colon = strrchr(t->hostport, ':');
	const char *bracket = strchr(t->hostport, ']');
	if (t->hostport[0] == '[') {
		if (!bracket) {
			snprintf(err, errlen, "%s: bad host", url);
			return -1;
		}
		snprintf(t->host, sizeof t->host, "%.*s", (int)(bracket - t->hostport - 1),
			 t->hostport + 1);
		if (bracket[1] == ':')
			snprintf(port, sizeof port, "%s", bracket + 2);
	} else if (colon) {
		snprintf(t->host, sizeof t->host, "%.*s", (int)(colon - t->hostport), t->hostport);
		snprintf(port, sizeof port, "%s", colon + 1);
	} else {
		snprintf(t->host, sizeof t->host, "%s", t->hostport);
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(t->host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "%s: cannot resolve %s: %s", url, t->host, gai_strerror(rc));
		return -1;
	}
	memcpy(&t->sa, res->ai_addr, res->ai_addrlen);
	t->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* One pair of OTEL_RESOURCE_ATTRIBUTES: trimmed key and value, the value
 * percent-decoded into out. -1 when it is no key=value or an escape is
 * not one. */
static int resource_pair(struct ig_str pair, struct ig_str *key, struct ig_buf *out)
{
	const char *eq = memchr(pair.ptr, '=', pair.len);
	if (!eq)
		return -1;
	*key = ig_str_trim((struct ig_str){pair.ptr, (size_t)(eq - pair.ptr)});
	struct ig_str v =
	    ig_str_trim((struct ig_str){eq + 1, pair.len - (size_t)(eq - pair.ptr) - 1});
	if (!key->len)
		return -1;
	out->len = 0;
	for (size_t i = 0; i < v.len; i++) {
		char ch = v.ptr[i];
		if (ch == '%') {
			if (i + 2 >= v.len)
				return -1;
			int hi = hexval((char)(v.ptr[i + 1] | 0x20));
			int lo = hexval((char)(v.ptr[i + 2] | 0x20));
			if (hi < 0 || lo < 0)
				return -1;
			ch = (char)(hi << 4 | lo);
			i += 2;
		}
		if (ig_buf_append(out, &ch, 1) < 0)
			return -1;
	}
	return 0;
}

static void resource_attr(struct ig_buf *b, struct ig_str key, struct ig_str value)
{
	ig_buf_append_cstr(b, b->len ? ",{\"key\":" : "{\"key\":");
	ig_json_write_string(b, key.ptr, key.len);
	ig_buf_append_cstr(b, ",\"value\":{\"stringValue\":");
	ig_json_write_string(b, value.ptr, value.len);
	ig_buf_append_cstr(b, "}}");
}

/* The next pair of a comma-separated list from *pos. */
static bool next_pair(struct ig_str list, size_t *pos, struct ig_str *pair)
{
	if (*pos > list.len)
		return false;
	const char *comma = memchr(list.ptr + *pos, ',', list.len - *pos);
	size_t end = comma ? (size_t)(comma - list.ptr) : list.len;
	*pair = (struct ig_str){list.ptr + *pos, end - *pos};
	*pos = end + 1;
	return true;
}

/* The resource's attributes (OTel SDK environment variables): service.name
 * first, then OTEL_RESOURCE_ATTRIBUTES's other pairs, the last of a
 * repeated key winning, as the SDK's attribute set keeps it. */
static void build_resource(struct ig_tracer *t)
{
	struct ig_str list =
	    ig_str_from(t->cfg.resource_attributes ? t->cfg.resource_attributes : "");
	struct ig_str svc =
	    ig_str_from(t->cfg.default_service_name ? t->cfg.default_service_name : "infergate");
	struct ig_buf v = {0}, w = {0}, svc_v = {0};
	struct ig_str pair, key, k2;
	size_t pos = 0;
	bool svc_from_list = false;
	/* An empty variable, or one that ends with a comma, has no pair there. */
	while (list.len && next_pair(list, &pos, &pair)) {
		if (!ig_str_trim(pair).len)
			continue;
		if (resource_pair(pair, &key, &v) < 0) {
			ig_warn("tracing: OTEL_RESOURCE_ATTRIBUTES: \"%.*s\" is no key=value with "
				"percent-encoded value: ignored",
				(int)pair.len, pair.ptr);
			continue;
		}
		if (ig_str_eq_cstr(key, "service.name")) {
			svc_v.len = 0;
			ig_buf_append(&svc_v, v.ptr, v.len);
			svc_from_list = true;
			continue;
		}
		/* A later pair with the same key replaces this one. */
		bool later = false;
		for (size_t p2 = pos; !later && next_pair(list, &p2, &pair);)
			later = resource_pair(pair, &k2, &w) == 0 && ig_str_eq(k2, key);
		if (!later) {
			struct ig_buf one = {0};
			resource_attr(&one, key, ig_buf_str(&v));
			if (t->resource.len)
				ig_buf_append_cstr(&t->resource, ",");
			ig_buf_append(&t->resource, one.ptr, one.len);
			ig_buf_free(&one);
		}
	}
	if (t->cfg.service_name)
		svc = ig_str_from(t->cfg.service_name);
	else if (svc_from_list)
		svc = ig_buf_str(&svc_v);
	struct ig_buf out = {0};
	resource_attr(&out, IG_STR("service.name"), svc);
	if (t->resource.len) {
		ig_buf_append_cstr(&out, ",");
		ig_buf_append(&out, t->resource.ptr, t->resource.len);
	}
	ig_buf_free(&t->resource);
	t->resource = out;
	ig_buf_free(&v);
	ig_buf_free(&w);
	ig_buf_free(&svc_v);
}

/* OpenTelemetry's exporter timeout variables, in milliseconds, the
 * traces-specific one first (a value that is not a whole number of
 * milliseconds from 1 to an hour is ignored); 5000 without either. */
static uint64_t env_timeout_ms(void)
{
	const char *names[] = {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"};
	for (size_t i = 0; i < 2; i++) {
		const char *v = getenv(names[i]);
		uint64_t ms;
		if (v && ig_str_to_u64(ig_str_from(v), &ms) == 0 && ms >= 1 && ms <= 3600000)
			return ms;
		if (v)
			ig_warn("tracing: %s=\"%s\" is not a timeout in milliseconds: ignored",
				names[i], v);
	}
	return 5000;
}

struct ig_tracer *ig_tracer_new(const struct ig_tracer_config *cfg, char *err, size_t errlen)
{
	struct ig_tracer *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->cfg = *cfg;
	if (!t->cfg.ring_bytes)
		t->cfg.ring_bytes = 1u << 20;
	if (!t->cfg.batch_bytes)
		t->cfg.batch_bytes = 4u << 20;
	if (!t->cfg.interval_ms)
		t->cfg.interval_ms = 1000;
	if (!t->cfg.timeout_ms)
		t->cfg.timeout_ms = env_timeout_ms();
	if (parse_endpoint(t, cfg->endpoint, err, errlen) < 0) {
		free(t);
		return NULL;
	}
	/* Aligned for the ring's cache-line-aligned counters. */
	size_t nrings = cfg->nrings ? cfg->nrings : 1;
	t->rings = aligned_alloc(_Alignof(struct ring), nrings * sizeof *t->rings);
	if (t->rings)
		memset(t->rings, 0, nrings * sizeof *t->rings);
	for (size_t i = 0; t->rings && i < cfg->nrings; i++) {
		int rc = ig_spsc_init(&t->rings[i].q, t->cfg.ring_bytes);
		if (rc < 0) {
			snprintf(err, errlen, "a trace ring of %zu bytes: %s", t->cfg.ring_bytes,
				 strerror(-rc));
			ig_tracer_free(t);
			return NULL;
		}
	}
	if (!t->rings) {
		snprintf(err, errlen, "out of memory");
		free(t);
		return NULL;
	}
	ig_buf_init(&t->batch, t->cfg.batch_bytes);
	build_resource(t);
	t->cfg.resource_attributes = NULL; /* not kept: the caller's */
	return t;
}

bool ig_tracer_sample(const struct ig_tracer *t, struct ig_rng *r)
{
	double p = t->cfg.sample_ratio;
	if (p >= 1.0)
		return true;
	if (p <= 0.0)
		return false;
	return (double)(ig_rng_next(r) >> 11) * 0x1.0p-53 < p;
}

void ig_tracer_emit(struct ig_tracer *t, size_t ring, const struct ig_span *spans, size_t n)
{
	struct ring *r = &t->rings[ring];
	struct ig_buf *scratch = &r->scratch;
	for (size_t i = 0; i < n; i++) {
		scratch->len = 0;
		if (scratch->max == 0)
			scratch->max = 64 << 10;
		if (ig_span_json(scratch, &spans[i]) < 0 ||
		    !ring_put(r, scratch->ptr, (uint32_t)scratch->len))
			atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
	}
}

/* Moves the rings' spans into the batch while they fit; what does not fit
 * stays in its ring for a later batch (a ring that stays full drops, as
 * counted by ig_tracer_emit). `discard`: everything left is dropped and
 * counted instead (the end of a shutdown). */
static void drain(struct ig_tracer *t, bool discard)
{
	for (size_t i = 0; i < t->cfg.nrings; i++) {
		struct ring *r = &t->rings[i];
		size_t avail = ig_spsc_readable(&r->q), off = 0;
		while (avail - off >= 4) {
			uint32_t len;
			ig_spsc_read(&r->q, off, &len, 4);
			size_t need = t->batch.len + len + 1;
			bool fits =
			    need <= t->cfg.batch_bytes && ig_buf_reserve(&t->batch, len + 1) == 0;
			if (!fits && t->batch.len && !discard)
				break; /* for the next batch */
			if (!fits || discard) {
				t->dropped++;
				if (discard || t->end_ms)
					t->left++;
			} else {
				if (t->batch.len)
					t->batch.ptr[t->batch.len++] = ',';
				ig_spsc_read(&r->q, off + 4, t->batch.ptr + t->batch.len, len);
				t->batch.len += len;
				t->batch_spans++;
			}
			off += 4 + len;
		}
		ig_spsc_consume(&r->q, off);
		t->dropped += atomic_exchange_explicit(&r->dropped, 0, memory_order_relaxed);
	}
}

static void export_end(struct ig_tracer *t, bool ok)
{
	if (ok)
		t->exported += t->req_spans;
	else {
		t->failed++;
		t->dropped += t->req_spans;
		if (t->end_ms) /* during the shutdown's flush: said at its end */
			t->left += t->req_spans;
	}
	t->req_spans = 0;
	t->in_flight = false;
	t->waiting = false;
	t->retries = 0;
	ig_buf_reset(&t->req);
}

static void send_req(struct ig_tracer *t);

static void on_retry(struct ig_loop *loop, struct ig_timer *tm)
{
	struct ig_tracer *t = tm->data;
	t->waiting = false;
	send_req(t);
}

/* The export in `req` failed: tried again later when the failure is one
 * to retry (retry_after_ms: what the answer asked for; -1 none), retries
 * are left and the retry comes before the shutdown's deadline; else its
 * spans are dropped. The request path is never involved: spans go on
 * collecting in the rings and the next batch meanwhile. */
static void export_failed(struct ig_tracer *t, bool retryable, int64_t retry_after_ms)
{
	t->in_flight = false;
	uint64_t delay =
	    retry_after_ms >= 0 ? (uint64_t)retry_after_ms : (uint64_t)RETRY_FIRST_MS << t->retries;
	if (delay > RETRY_AFTER_MAX_MS)
		delay = RETRY_AFTER_MAX_MS;
	uint64_t at = ig_now_ms() + delay;
	if (!retryable || t->retries >= RETRIES_MAX || (t->end_ms && at >= t->end_ms) || !t->loop) {
		export_end(t, false);
		return;
	}
	t->retries++;
	t->waiting = true;
	t->retry_at_ms = at;
	ig_timer_start(t->loop, &t->retry_timer, delay, on_retry, t);
}

/* Retry-After (RFC 9110 §10.2.3) in milliseconds from now: delay-seconds
 * or an HTTP-date; -1 when absent or unreadable. */
static int64_t retry_after_ms(const struct ig_http_response *res)
{
	const struct ig_http_header *h =
	    ig_http_find_header(res->headers, res->num_headers, "retry-after");
	if (!h)
		return -1;
	uint64_t secs;
	int64_t when;
	struct ig_str v = ig_str_trim(h->value);
	if (ig_str_to_u64(v, &secs) == 0)
		return secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (int64_t)secs * 1000;
	if (ig_http_date_parse(v, &when) < 0)
		return -1;
	int64_t ms = (int64_t)(((double)when - ig_wall_seconds()) * 1000);
	return ms < 0 ? 0 : ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : ms;
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct ig_tracer *t = ud;
	if (res->status >= 200 && res->status < 300) {
		ig_buf_free(&t->resp);
		t->resp.max = RESP_MAX;
		t->resp_over = false;
		return 0;
	}
	int st = res->status;
	bool retryable = st == 429 || st == 502 || st == 503 || st == 504;
	ig_debug("trace: %s answered %d to an export%s", t->hostport, st,
		 retryable && t->retries < RETRIES_MAX ? ": will retry" : "");
	export_failed(t, retryable, retryable ? retry_after_ms(res) : -1);
	return 1; /* abandon the answer; the connection goes */
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct ig_tracer *t = ud;
	if (!t->resp_over && ig_buf_append(&t->resp, data, len) < 0)
		t->resp_over = true;
	return 0;
}

/* A 2xx answer's ExportTraceServiceResponse may say that part of the
 * export was refused (OTLP "Partial Success"): partialSuccess's
 * rejectedSpans (an int64, a string in OTLP/JSON, a number from some
 * servers) are dropped spans, and its errorMessage is worth a warning,
 * once a minute at most. */
static uint64_t partial_success(struct ig_tracer *t)
{
	struct ig_json_value root, ps, v;
	if (!t->resp.len || t->resp_over || ig_json_parse(t->resp.ptr, t->resp.len, &root) < 0 ||
	    ig_json_get(root, "partialSuccess", &ps) < 0)
		return 0;
	uint64_t n = 0;
	int64_t i;
	if (ig_json_get(ps, "rejectedSpans", &v) == 0) {
		if (v.type == IG_JSON_STRING && v.raw.len > 2)
			(void)ig_str_to_u64((struct ig_str){v.raw.ptr + 1, v.raw.len - 2}, &n);
		else if (ig_json_int64(v, &i) == 0 && i > 0)
			n = (uint64_t)i;
	}
	if (n > t->req_spans)
		n = t->req_spans;
	uint64_t now = ig_now_ms();
	if ((n || ig_json_get(ps, "errorMessage", &v) == 0) &&
	    (!t->rejected_log_ms || now - t->rejected_log_ms >= REJECTED_LOG_MS)) {
		char msg[256] = "";
		struct ig_buf m = {0};
		m.max = sizeof msg - 1;
		if (ig_json_get(ps, "errorMessage", &v) == 0 && ig_json_string(v, &m) == 0)
			snprintf(msg, sizeof msg, "%.*s", (int)m.len, m.ptr);
		ig_buf_free(&m);
		if (n || msg[0]) {
			ig_warn("tracing: %s rejected %llu of %zu spans: %s", t->hostport,
				(unsigned long long)n, t->req_spans, msg[0] ? msg : "(no message)");
			t->rejected_log_ms = now;
		}
	}
	return n;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	struct ig_tracer *t = ud;
	if (t->in_flight) {
		uint64_t rejected = partial_success(t);
		t->req_spans -= rejected;
		t->dropped += rejected;
		export_end(t, true);
	}
	ig_buf_free(&t->resp);
	if (!ig_http_client_reusable(c)) {
		ig_http_client_close(c);
		t->conn = NULL;
	}
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	struct ig_tracer *t = ud;
	ig_http_client_close(c);
	t->conn = NULL;
	/* No answer: the OTLP spec asks for the same request again. At
	 * shutdown not after a timeout, though: a collector that let one
	 * export wait its whole timeout would hold the exit up to the
	 * deadline, for spans it is unlikely to take. */
	if (t->in_flight)
		export_failed(t, !(t->end_ms && f->err == ETIMEDOUT), -1);
}

static const struct ig_http_client_cbs export_cbs = {on_head, on_body, on_done, on_error, NULL};

/* One export's limit: the configured one, or what is left before the
 * shutdown's deadline. */
static uint64_t export_timeout_ms(const struct ig_tracer *t)
{
	if (!t->end_ms)
		return t->cfg.timeout_ms;
	uint64_t now = ig_now_ms(), left = t->end_ms > now ? t->end_ms - now : 1;
	return left < t->cfg.timeout_ms ? left : t->cfg.timeout_ms;
}

/* Sends (again) the request in `req`. */
static void send_req(struct ig_tracer *t)
{
	uint64_t timeout_ms = export_timeout_ms(t);
	if (t->conn && !ig_http_client_reusable(t->conn)) {
		ig_http_client_close(t->conn);
		t->conn = NULL;
	}
	t->in_flight = true;
	if (!t->conn && !(t->conn = ig_http_client_connect(t->loop, (struct sockaddr *)&t->sa,
							   t->salen, timeout_ms))) {
		export_failed(t, true, -1);
		return;
	}
	if (ig_http_client_send(t->conn, t->req.ptr, t->req.len, false, timeout_ms, &export_cbs,
				t) < 0) {
		ig_http_client_close(t->conn);
		t->conn = NULL;
		export_failed(t, true, -1);
	}
}

static void export_batch(struct ig_tracer *t)
{
	if (t->in_flight || t->waiting || !t->batch.len)
		return;
	struct ig_buf body = {0};
	ig_buf_append_cstr(&body, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	ig_buf_append(&body, t->resource.ptr, t->resource.len);
	/* The semantic conventions the spans follow, on both levels. */
	ig_buf_append_cstr(&body, "]},\"schemaUrl\":\"" IG_TRACE_SCHEMA_URL
				  "\",\"scopeSpans\":[{\"scope\":{\"name\":\"infergate\","
				  "\"version\":\"" IG_VERSION
				  "\"},\"schemaUrl\":\"" IG_TRACE_SCHEMA_URL "\",\"spans\":[");
	ig_buf_append(&body, t->batch.ptr, t->batch.len);
	ig_buf_append_cstr(&body, "]}]}]}");
	ig_buf_reset(&t->req);
	ig_buf_printf(&t->req,
		      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
		      "Content-Length: %zu\r\nUser-Agent: infergate\r\n\r\n",
		      t->path, t->hostport, body.len);
	ig_buf_append(&t->req, body.ptr, body.len);
	ig_buf_free(&body);
	t->req_spans = t->batch_spans;
	t->retries = 0;
	t->batch.len = 0;
	t->batch_spans = 0;
	send_req(t);
}

static void on_tick(struct ig_loop *loop, struct ig_timer *tm)
{
	struct ig_tracer *t = tm->data;
	drain(t, false);
	export_batch(t);
	ig_timer_start(loop, &t->timer, t->cfg.interval_ms, on_tick, t);
}

void ig_tracer_start(struct ig_tracer *t, struct ig_loop *loop)
{
	t->loop = loop;
	ig_timer_start(loop, &t->timer, t->cfg.interval_ms, on_tick, t);
}

/* The OTel SDK's Shutdown: the export in flight ends (or times out), then
 * what is still batched or in the rings goes, batch after batch, all
 * within one deadline; what could not go is counted as dropped and said
 * once. */
static void flush_at_shutdown(struct ig_tracer *t)
{
	uint64_t now = ig_now_ms(), end = now + IG_TRACE_SHUTDOWN_MS;
	t->end_ms = end;
	for (; now < end; now = ig_now_ms()) {
		if (!t->in_flight && !t->waiting) {
			drain(t, false);
			if (!t->batch.len)
				break;
			export_batch(t);
			continue;
		}
		/* A retry due after the deadline is not waited for. */
		if (t->waiting && t->retry_at_ms >= end)
			break;
		ig_loop_run_once(t->loop, 20);
	}
	ig_timer_stop(t->loop, &t->retry_timer);
	if (t->conn) {
		ig_http_client_close(t->conn);
		t->conn = NULL;
	}
	if (t->in_flight || t->waiting)
		export_end(t, false);
	t->left += t->batch_spans;
	t->dropped += t->batch_spans;
	t->batch.len = 0;
	t->batch_spans = 0;
	drain(t, true);
	if (t->left)
		ig_warn("tracing: %llu spans were not exported at shutdown (refused, or not sent "
			"by its deadline of %d ms): dropped",
			(unsigned long long)t->left, IG_TRACE_SHUTDOWN_MS);
}

void ig_tracer_free(struct ig_tracer *t)
{
	if (!t)
		return;
	if (t->loop) {
		ig_timer_stop(t->loop, &t->timer);
		flush_at_shutdown(t);
	}
	for (size_t i = 0; t->rings && i < t->cfg.nrings; i++) {
		ig_spsc_free(&t->rings[i].q);
		ig_buf_free(&t->rings[i].scratch);
	}
	free(t->rings);
	ig_buf_free(&t->batch);
	ig_buf_free(&t->req);
	ig_buf_free(&t->resp);
	ig_buf_free(&t->resource);
	free(t);
}

void ig_tracer_stats(const struct ig_tracer *t, struct ig_tracer_stats *out)
{
	uint64_t pending_drops = 0;
	for (size_t i = 0; i < t->cfg.nrings; i++)
		pending_drops += atomic_load_explicit(&t->rings[i].dropped, memory_order_relaxed);
	*out = (struct ig_tracer_stats){.spans_exported = t->exported,
					.spans_dropped = t->dropped + pending_drops,
					.exports_failed = t->failed};
}
