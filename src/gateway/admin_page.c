/* The admin page and the JSON it polls (admin_page.h). The page is
 * src/gateway/admin_page.html, put into the binary as it is by the
 * assembler's .incbin (the Makefile makes this object depend on it), so
 * it is edited as HTML and nothing generated is kept in the tree. */
#include "gateway/admin_page.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "gateway/activity.h"
#include "gateway/admin.h"
#include "gateway/worker.h"
#include "json/json.h"

__asm__(".section .rodata\n"
	".balign 16\n"
	"ig_admin_page_html:\n"
	".incbin \"src/gateway/admin_page.html\"\n"
	"ig_admin_page_html_end:\n"
	".previous\n");
extern const char ig_admin_page_html[], ig_admin_page_html_end[];

/* The page may run inline script and style and talk to this listener;
 * it may load nothing from anywhere. */
static const struct ig_http_header page_headers[] = {
    {IG_STR("Cache-Control"), IG_STR("no-store")},
    {IG_STR("X-Content-Type-Options"), IG_STR("nosniff")},
    {IG_STR("Content-Security-Policy"),
     IG_STR("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
	    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")},
};

void ig_admin_page_serve(struct ig_http_exchange *ex)
{
	ig_http_respond(ex, 200, "text/html; charset=utf-8", ig_admin_page_html,
			(size_t)(ig_admin_page_html_end - ig_admin_page_html), page_headers,
			sizeof page_headers / sizeof page_headers[0]);
}

#define MAX_DECISIONS 50

static void write_name(struct ig_buf *b, const char *key, const char *v)
{
	ig_buf_printf(b, ",\"%s\":", key);
	ig_json_write_string(b, v, strlen(v));
}

static int newest_first(const void *x, const void *y)
{
	const struct ig_decision *a = x, *b = y;
	return a->end_ns < b->end_ns ? 1 : a->end_ns > b->end_ns ? -1 : 0;
}

/* The last MAX_DECISIONS picks of all workers, newest first. */
static void render_decisions(struct ig_gateway_rt *gw, struct ig_buf *b, uint64_t now)
{
	size_t cap = (size_t)gw->nworkers * IG_ACTIVITY_SLOTS, n = 0;
	struct ig_decision *all = cap ? malloc(cap * sizeof *all) : NULL;
	for (int i = 0; all && i < gw->nworkers; i++)
		n += ig_activity_decisions(gw->workers[i].activity, all + n, cap - n);
	if (n > 1)
		qsort(all, n, sizeof *all, newest_first);
	ig_buf_append_cstr(b, "[");
	for (size_t i = 0; i < n && i < MAX_DECISIONS; i++) {
		const struct ig_decision *d = &all[i];
		ig_buf_printf(b,
			      "%s{\"age_ms\":%.1f,\"duration_ms\":%.3f,\"status\":%d,\"worker\":%d",
			      i ? "," : "", now > d->end_ns ? (double)(now - d->end_ns) / 1e6 : 0.0,
			      (double)d->duration_ns / 1e6, d->status, d->worker);
		write_name(b, "model", d->model);
		write_name(b, "target", d->target);
		write_name(b, "pool", d->pool);
		write_name(b, "endpoint", d->endpoint);
		ig_buf_append_cstr(b, "}");
	}
	ig_buf_append_cstr(b, "]");
	free(all);
}

static void write_ms(struct ig_buf *b, const char *key, double ms)
{
	if (ms < 0)
		ig_buf_printf(b, ",\"%s\":null", key);
	else
		ig_buf_printf(b, ",\"%s\":%.3f", key, ms);
}

static void render_requests(struct ig_gateway_rt *gw, struct ig_buf *b)
{
	struct ig_activity_totals t = {0};
	for (int i = 0; i < gw->nworkers; i++)
		ig_activity_add(gw->workers[i].activity, &t);
	ig_buf_printf(b,
		      "{\"total\":%llu,\"ok\":%llu,\"client_errors\":%llu,"
		      "\"server_errors\":%llu,\"cancelled\":%llu",
		      (unsigned long long)t.requests, (unsigned long long)t.ok,
		      (unsigned long long)t.client_errors, (unsigned long long)t.server_errors,
		      (unsigned long long)t.cancelled);
	write_ms(b, "p50_ms", ig_activity_quantile_ms(&t, 0.50));
	write_ms(b, "p90_ms", ig_activity_quantile_ms(&t, 0.90));
	write_ms(b, "p99_ms", ig_activity_quantile_ms(&t, 0.99));
	/* The histogram itself, so the page can take percentiles of the last
	 * interval from two polls. The last bound is +Inf: null here. */
	ig_buf_append_cstr(b, ",\"latency_bounds_ms\":[");
	for (size_t i = 0; i + 1 < IG_ACTIVITY_BUCKETS; i++)
		ig_buf_printf(b, "%s%.6g", i ? "," : "", ig_activity_bucket_ms(i));
	ig_buf_append_cstr(b, ",null],\"latency_counts\":[");
	for (size_t i = 0; i < IG_ACTIVITY_BUCKETS; i++)
		ig_buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)t.latency[i]);
	ig_buf_append_cstr(b, "]}");
}

void ig_admin_status_serve(struct ig_gateway_rt *gw, struct ig_http_exchange *ex)
{
	uint64_t now = ig_now_ns();
	struct ig_buf b = {0};
	ig_buf_printf(&b, "{\"job\":\"%s\",\"workers\":%d,\"draining\":%s,\"requests\":",
		      gw->opt.job ? gw->opt.job : "gateway", gw->nworkers,
		      atomic_load(&gw->draining) ? "true" : "false");
	render_requests(gw, &b);
	ig_buf_append_cstr(&b, ",\"decisions\":");
	render_decisions(gw, &b, now);
	/* /pools as it is: generation, pools, endpoints, prefix index. */
	ig_buf_append_cstr(&b, ",\"config\":");
	ig_admin_render_pools(gw, &b);
	ig_buf_append_cstr(&b, ",\"reload\":");
	ig_admin_render_reload(gw, &b);
	if (gw->attach_json) {
		ig_buf_append_cstr(&b, ",");
		ig_buf_append_cstr(&b, gw->attach_json);
	}
	ig_buf_append_cstr(&b, "}\n");
	ig_http_respond(ex, 200, "application/json", b.ptr, b.len, page_headers, 1);
	ig_buf_free(&b);
}
