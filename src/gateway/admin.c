#include "gateway/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "gateway/admin_page.h"
#include "gateway/metrics.h"
#include "trace/trace.h"
#include "gateway/snapshot.h"
#include "json/json.h"

/* A comma-separated adapter list as a JSON array. */
static void write_adapters(struct ig_buf *b, const char *text)
{
	ig_buf_append_cstr(b, "[");
	const char *p = text;
	bool first = true;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n) {
			if (!first)
				ig_buf_append_cstr(b, ",");
			ig_json_write_string(b, p, n);
			first = false;
		}
		p += n + (e ? 1 : 0);
	}
	ig_buf_append_cstr(b, "]");
}

void ig_admin_render_pools(struct ig_gateway_rt *gw, struct ig_buf *b)
{
	struct ig_snapshot *s = gw->snap;
	uint64_t now = ig_now_ns();
	if (!s) { /* --kube before the first configuration */
		ig_buf_append_cstr(b, "{\"generation\":0,\"pools\":[]}");
		return;
	}
	ig_buf_printf(b, "{\"generation\":%llu,\"pools\":[", (unsigned long long)s->generation);
	for (size_t p = 0; p < s->npools; p++) {
		const struct ig_pool_rt *rt = &s->pools[p];
		if (p)
			ig_buf_append_cstr(b, ",");
		ig_buf_append_cstr(b, "{\"namespace\":");
		ig_json_write_string(b, rt->pool->meta.ns, strlen(rt->pool->meta.ns));
		ig_buf_append_cstr(b, ",\"name\":");
		ig_json_write_string(b, rt->pool->meta.name, strlen(rt->pool->meta.name));
		ig_buf_append_cstr(b, ",\"endpoints\":[");
		for (size_t e = 0; e < rt->neps; e++) {
			struct ig_endpoint *ep = rt->eps[e];
			struct ig_endpoint_metrics m;
			ig_endpoint_read_metrics(ep, &m);
			if (e)
				ig_buf_append_cstr(b, ",");
			ig_buf_printf(b,
				      "{\"address\":\"%s\",\"waiting\":%lld,\"running\":%lld,"
				      "\"kv_cache_usage\":%.6g,\"max_lora\":%lld,",
				      ep->addr, (long long)m.waiting, (long long)m.running,
				      m.kv_usage, (long long)m.max_active);
			ig_buf_append_cstr(b, "\"running_adapters\":");
			write_adapters(b, m.running_text);
			ig_buf_append_cstr(b, ",\"waiting_adapters\":");
			write_adapters(b, m.waiting_text);
			if (m.updated_ns)
				ig_buf_printf(b, ",\"metrics_age_ms\":%.1f",
					      (double)(now - m.updated_ns) / 1e6);
			else
				ig_buf_append_cstr(b, ",\"metrics_age_ms\":null");
			/* vllm:cache_config_info, which autoTune reads (0: not given). */
			ig_buf_printf(b, ",\"cache_block_size\":%u,\"cache_gpu_blocks\":%u",
				      m.cache.block_tokens, m.cache.gpu_blocks);
			ig_buf_printf(b, ",\"in_flight\":%ld,\"requests_total\":%lu",
				      ig_endpoint_inflight(ep), ig_endpoint_requests(ep));
			/* The engine whose metric names its scrapes read. */
			ig_buf_printf(b, ",\"engine\":\"%s\"}", ig_engine_name(ep->engine));
		}
		ig_buf_append_cstr(b, "]");
		struct ig_prefix_stats st;
		ig_scheduler_prefix_stats(rt->sched->s, &st);
		ig_buf_printf(b,
			      ",\"prefix_index\":{\"entries\":%llu,\"bytes\":%llu,\"lookups\":%llu,"
			      "\"hit_ratio\":%.4f}}",
			      (unsigned long long)st.entries, (unsigned long long)st.bytes,
			      (unsigned long long)st.lookups,
			      st.lookup_blocks ? (double)st.hit_blocks / (double)st.lookup_blocks
					       : 0.0);
	}
	ig_buf_append_cstr(b, "]}\n");
}

/* Whether the request carries "Authorization: Bearer <token>". The scheme
 * is case-insensitive (RFC 9110 §11.1). The token is compared in time that
 * depends only on its own length, never on where a guess first differs. */
static bool authorized(const struct ig_gateway_rt *gw, const struct ig_http_request *req)
{
	const struct ig_http_header *h =
	    ig_http_find_header(req->headers, req->num_headers, "authorization");
	if (!h || h->value.len < 7 || strncasecmp(h->value.ptr, "Bearer ", 7) != 0)
		return false;
	struct ig_str got = {h->value.ptr + 7, h->value.len - 7};
	while (got.len && *got.ptr == ' ') {
		got.ptr++;
		got.len--;
	}
	const char *want = gw->admin_token;
	unsigned char diff = got.len != gw->admin_token_len;
	for (size_t i = 0; i < gw->admin_token_len; i++)
		diff |= (unsigned char)((i < got.len ? got.ptr[i] : 0) ^ want[i]);
	return diff == 0;
}

/* The same answer to every unauthorized request, whatever it asked for:
 * it names no path, pool or metric. */
static void respond_unauthorized(struct ig_http_exchange *ex)
{
	static const char body[] = "unauthorized\n", name[] = "WWW-Authenticate",
			  value[] = "Bearer realm=\"infergate-admin\"";
	const struct ig_http_header challenge = {{name, sizeof name - 1},
						 {value, sizeof value - 1}};
	ig_http_respond(ex, 401, "text/plain", body, sizeof body - 1, &challenge, 1);
}

static void handle(struct ig_http_exchange *ex, void *ctx)
{
	struct ig_gateway_rt *gw = ctx;
	struct ig_str path = ex->req.path;
	bool get = ig_str_eq_cstr(ex->req.method, "GET") || ig_str_eq_cstr(ex->req.method, "HEAD");
	struct ig_buf b = {0};
	if (gw->admin_token && !authorized(gw, &ex->req)) {
		respond_unauthorized(ex);
	} else if (!get) {
		ig_http_respond_error(ex, 405, "invalid_request_error", NULL, "method not allowed");
	} else if (ig_str_eq_cstr(path, "/metrics")) {
		ig_gw_metrics_render(gw->metrics, gw->snap, &b);
		if (gw->tracer) {
			struct ig_tracer_stats ts;
			ig_tracer_stats(gw->tracer, &ts);
			ig_buf_printf(
			    &b,
			    "# HELP infergate_trace_spans_exported_total Spans the OTLP collector "
			    "accepted.\n# TYPE infergate_trace_spans_exported_total counter\n"
			    "infergate_trace_spans_exported_total %llu\n"
			    "# HELP infergate_trace_spans_dropped_total Spans dropped: a full "
			    "queue, "
			    "or an export that failed.\n# TYPE infergate_trace_spans_dropped_total "
			    "counter\ninfergate_trace_spans_dropped_total %llu\n"
			    "# HELP infergate_trace_exports_failed_total OTLP exports that "
			    "failed.\n"
			    "# TYPE infergate_trace_exports_failed_total counter\n"
			    "infergate_trace_exports_failed_total %llu\n",
			    (unsigned long long)ts.spans_exported,
			    (unsigned long long)ts.spans_dropped,
			    (unsigned long long)ts.exports_failed);
		}
		ig_http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr, b.len,
				NULL, 0);
	} else if (ig_str_eq_cstr(path, "/healthz")) {
		/* Liveness: the process is alive, draining included (a 503
		 * would have the kubelet restart a gateway finishing its
		 * requests); /readyz takes it out of the Service. */
		ig_http_respond(ex, 200, "text/plain", "ok\n", 3, NULL, 0);
	} else if (ig_str_eq_cstr(path, "/readyz")) {
		/* Ready to take traffic: configured (with --kube, once the API has
		 * been read) and not draining. /healthz only says it is alive. */
		const struct ig_gw_frontend *fe = gw->opt.frontend;
		const char *why = atomic_load(&gw->draining) ? "draining\n"
				  : !gw->snap		     ? "not configured yet\n"
				  : fe && fe->not_ready	     ? fe->not_ready(gw, fe->arg)
							     : NULL;
		ig_http_respond(ex, why ? 503 : 200, "text/plain", why ? why : "ready\n",
				why ? strlen(why) : 6, NULL, 0);
	} else if (ig_str_eq_cstr(path, "/pools")) {
		ig_admin_render_pools(gw, &b);
		ig_http_respond(ex, 200, "application/json", b.ptr, b.len, NULL, 0);
	} else if (ig_str_eq_cstr(path, "/")) {
		ig_admin_page_serve(ex);
	} else if (ig_str_eq_cstr(path, "/api/status")) {
		ig_admin_status_serve(gw, ex);
	} else {
		ig_http_respond_error(ex, 404, "not_found_error", NULL,
				      "no such admin path: try /, /api/status, /metrics, /healthz, "
				      "/readyz or /pools");
	}
	ig_buf_free(&b);
}

/* The token a file holds, without the line end an editor or `echo`
 * leaves (a Kubernetes Secret mounted as a file may have one). */
static char *read_token_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		ig_err("--admin-token-file: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char buf[4097];
	size_t n = fread(buf, 1, sizeof buf, f);
	bool too_long = n == sizeof buf, failed = ferror(f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	const char *why = failed		 ? "cannot be read"
			  : too_long		 ? "is longer than 4096 bytes"
			  : n == 0		 ? "is empty"
			  : memchr(buf, '\0', n) ? "holds a NUL byte"
						 : NULL;
	if (why) {
		ig_err("--admin-token-file: %s %s", path, why);
		return NULL;
	}
	*len = n;
	return strndup(buf, n);
}

static int load_token(struct ig_gateway_rt *gw)
{
	const struct ig_gw_options *o = &gw->opt;
	if (o->admin_token && o->admin_token_file) {
		ig_err("give --admin-token or --admin-token-file, not both");
		return -1;
	}
	if (o->admin_token) {
		if (!*o->admin_token || strpbrk(o->admin_token, " \t\r\n")) {
			ig_err("--admin-token: the token must be non-empty, without blanks");
			return -1;
		}
		gw->admin_token_len = strlen(o->admin_token);
		gw->admin_token = strdup(o->admin_token);
	} else if (o->admin_token_file) {
		gw->admin_token = read_token_file(o->admin_token_file, &gw->admin_token_len);
		if (!gw->admin_token)
			return -1;
	}
	return o->admin_token && !gw->admin_token ? -1 : 0;
}

int ig_admin_start(struct ig_gateway_rt *gw, const char *hostport)
{
	char host[128];
	int port;
	if (load_token(gw) < 0)
		return -1;
	if (ig_parse_hostport(hostport, "127.0.0.1", host, sizeof host, &port) < 0) {
		ig_err("--admin: expected HOST:PORT, got '%s'", hostport);
		return -1;
	}
	int fd = ig_listen_tcp(host, port, false, 128);
	if (fd < 0) {
		ig_err("admin: cannot listen on %s:%d: %s", host, port, strerror(-fd));
		return -1;
	}
	/* Probes and scrapers need a few connections; a client holding
	 * more, idle or with heads that never end, would otherwise take the
	 * descriptors the data plane's clients and model servers need. */
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.max_conns = IG_ADMIN_MAX_CONNS;
	gw->admin = ig_http_server_new(&gw->ctl, fd, &cfg, handle, gw);
	if (!gw->admin) {
		close(fd);
		return -1;
	}
	ig_info("admin listening on %s:%d%s", host, port,
		gw->admin_token ? " (bearer token required)" : "");
	return 0;
}

void ig_admin_stop(struct ig_gateway_rt *gw)
{
	ig_http_server_free(gw->admin);
	gw->admin = NULL;
	if (gw->admin_token)
		memset(gw->admin_token, 0, gw->admin_token_len);
	free(gw->admin_token);
	gw->admin_token = NULL;
}
