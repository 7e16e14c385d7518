/* `infergate gateway`: parses flags, loads the manifests, starts the
 * workers, then runs the control loop on the main thread: metrics
 * scraping, the admin listener, reloads (SIGHUP or a changed file) and the
 * graceful drain on SIGTERM. */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/arena.h"
#include "core/asan.h"
#include "core/smallblock.h"
#include "core/flags.h"
#include "core/ret.h"
#include "gateway/addresses.h"
#include "gateway/accesslog.h"
#include "gateway/admin.h"
#include "gateway/admin_page.h"
#include "gateway/attach.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/runtime.h"
#include "gateway/sessions.h"
#include "gateway/snapshot.h"
#include "gateway/worker.h"
#include "trace/trace.h"

static const char usage_text[] =
    "usage: infergate gateway -f PATH [-f PATH...] [options]\n"
    "       infergate gateway --kube [--kubeconfig PATH] [options]\n"
    "\n"
    "Serves the Gateways, HTTPRoutes and InferencePools in the manifests,\n"
    "or those a Kubernetes API server holds (--kube).\n"
    "Durations take a unit (250ms, 30s, 10m) or count milliseconds.\n\n";
static const char footer_text[] =
    "SIGHUP or a change to a file reloads; a reload with errors is refused and\n"
    "the previous configuration keeps serving (infergate_config_* on /metrics,\n"
    "the errors on /api/status and in a banner on the admin page at /); one\n"
    "refused for want of resources (out of descriptors or memory) is tried\n"
    "again after 1 s, doubling up to 30 s. SIGTERM drains and exits (after\n"
    "--shutdown-delay; reloads are ignored from then on); SIGUSR1 reopens the\n"
    "access log.\n";

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const access_log_formats[] = {"json", "text", NULL}; /* ig_alog_format */

/* 0 when parsing may go on, else the command's exit status. */
static int parse_flags(int argc, char **argv, struct ig_gw_options *o, struct ig_flag_list *paths)
{
	ig_gw_options_defaults(o);
	int level = (int)ig_log_level;
	unsigned long long max_header = o->http.max_header_bytes, max_body = o->http.max_body_bytes,
			   max_idle = o->upstream.max_idle;
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("configuration:"),
	    IG_FLAG_LIST("filename", 'f', paths, "PATH", "manifest file or directory (repeatable)"),
	    IG_FLAG_STR("picker-config", 0, &o->picker_config, "FILE",
			"EndpointPickerConfig (default: one among the manifests, else "
			"--picker infergate)"),
	    IG_FLAG_STR("picker", 0, &o->picker_preset, "NAME",
			"a built-in picker configuration: infergate (the default: load-bounded "
			"prefix affinity, LoRA, queue, KV), gie (GIE's default profile, which is "
			"also llm-d's default without a configuration), llm-d (llm-d's "
			"estimate-prefix sample: prefix 2 + load-aware 1), v0.2 (GIE v0.2.0's "
			"decision tree)"),
	    IG_FLAG_MS("watch-interval", 0, &o->watch_interval_ms, IG_FLAG_BARE_MS, "DUR",
		       "how often the files are checked for changes; a change is taken once "
		       "two checks in a row saw it, so replace files whole (write another "
		       "and rename it, as ConfigMap volumes do) (default 1s)"),
	    IG_FLAG_SECTION("kubernetes (--kube):"),
	    IG_FLAG_BOOL("kube", 0, &o->kube,
			 "read the configuration from the Kubernetes API (list and watch) "
			 "instead of files"),
	    IG_FLAG_STR("kubeconfig", 0, &o->kube_opt.kubeconfig, "PATH",
			"kubeconfig (default: $KUBECONFIG, else the pod's service account, "
			"else ~/.kube/config)"),
	    IG_FLAG_STR("namespace", 0, &o->kube_opt.ns, "NS",
			"watch this namespace only (default: all)"),
	    IG_FLAG_STR("controller-name", 0, &o->kube_opt.controller_name, "NAME",
			"serve Gateways whose GatewayClass has this controllerName "
			"(default " IG_KUBE_DEFAULT_CONTROLLER ")"),
	    IG_FLAG_BOOL("leader-elect", 0, &o->kube_opt.leader_elect,
			 "take a Lease before writing status (several replicas)"),
	    IG_FLAG_MS("leader-elect-lease-duration", 0, &o->kube_opt.lease_ms, IG_FLAG_BARE_S,
		       "DUR", "how long a Lease lasts unrenewed (default 10s)"),
	    IG_FLAG_MS("leader-elect-renew-deadline", 0, &o->kube_opt.renew_deadline_ms,
		       IG_FLAG_BARE_S, "DUR",
		       "the holder steps down when it could not renew for this long (default 7s)"),
	    IG_FLAG_MS("leader-elect-retry-period", 0, &o->kube_opt.retry_ms, IG_FLAG_BARE_S, "DUR",
		       "how often the Lease is renewed or tried for (default 2s)"),
	    IG_FLAG_SECTION("listeners and workers:"),
	    IG_FLAG_STR("bind", 0, &o->bind, "ADDR",
			"address the listeners bind, an IP or a name such as localhost (default "
			"0.0.0.0)"),
	    IG_FLAG_STR("admin", 0, &o->admin, "HOST:PORT",
			"admin listener: /metrics, /healthz, /readyz, /pools, the live page at / "
			"and its /api/status (:PORT or PORT binds 127.0.0.1)"),
	    IG_FLAG_STR("admin-token", 0, &o->admin_token, "TOKEN",
			"the admin listener answers only requests with \"Authorization: Bearer "
			"TOKEN\" (all paths, /healthz included), else 401"),
	    IG_FLAG_STR("admin-token-file", 0, &o->admin_token_file, "PATH",
			"the same, with the token read from a file (a mounted Secret) instead "
			"of the command line"),
	    IG_FLAG_UINT("workers", 0, &o->workers, 1, 256, "N",
			 "worker threads (default: one per CPU)"),
	    IG_FLAG_MS("drain-timeout", 0, &o->drain_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "grace period for requests on SIGTERM; then those left are answered "
		       "503, or cut once their response began (default 30s)"),
	    IG_FLAG_MS("shutdown-delay", 0, &o->shutdown_delay_ms, IG_FLAG_BARE_MS, "DUR",
		       "on SIGTERM, /readyz says 503 at once while the listeners go on "
		       "serving this long (responses close their connections, HTTP/2 gets "
		       "GOAWAY's notice) before the drain: time for Kubernetes to take the "
		       "pod out of its Service's endpoints (default 0)"),
	    IG_FLAG_SECTION("client side:"),
	    IG_FLAG_UINT("max-header-bytes", 0, &max_header, 1, 1u << 30, "N",
			 "request head limit, else 431 (default 65536)"),
	    IG_FLAG_UINT("max-body-bytes", 0, &max_body, 1, 1ull << 40, "N",
			 "limit of a request body read whole, else 413 (default 16777216; a body "
			 "over 1 MiB to a Service goes on as it comes, unlimited)"),
	    IG_FLAG_MS("header-timeout", 0, &o->http.header_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "time allowed for a request head, else 408 (default 30s)"),
	    IG_FLAG_MS("body-timeout", 0, &o->http.body_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "silence allowed inside a request body, a streamed one too until its "
		       "answer starts, else 408 (default 60s)"),
	    IG_FLAG_MS("idle-timeout", 0, &o->http.keepalive_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "idle keep-alive client connections close after (default 75s)"),
	    IG_FLAG_MS("client-send-timeout", 0, &o->http.send_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "a client that takes none of its pending response for this long is "
		       "closed, with its upstream request (default 60s)"),
	    IG_FLAG_BOOL_OFF("no-http2", 0, &o->http.http2,
			     "serve HTTP/1.1 only: no HTTP/2 with prior knowledge in clear text, "
			     "no \"h2\" in ALPN on HTTPS listeners"),
	    IG_FLAG_SECTION("model servers:"),
	    IG_FLAG_UINT("max-attempts", 0, &o->max_attempts, 1, 8, "N",
			 "endpoints tried per request when connecting fails (default 3)"),
	    IG_FLAG_BOOL_OFF("no-served-endpoint-header", 0, &o->served_header,
			     "do not tell clients which pod answered: responses from InferencePool "
			     "backends carry x-gateway-destination-endpoint-served (ip:port) "
			     "otherwise"),
	    IG_FLAG_MS("upstream-connect-timeout", 0, &o->upstream.connect_timeout_ms,
		       IG_FLAG_BARE_MS, "DUR",
		       "connecting to a model server; then the next endpoint (default 5s)"),
	    IG_FLAG_MS("upstream-read-timeout", 0, &o->upstream_read_timeout_ms, IG_FLAG_BARE_MS,
		       "DUR",
		       "silence of a model server before and during its answer: 504 before the "
		       "first byte, a cut stream after (default 10m: long prompts under load "
		       "take minutes to the first token)"),
	    IG_FLAG_MS("upstream-idle-timeout", 0, &o->upstream.idle_timeout_ms, IG_FLAG_BARE_MS,
		       "DUR",
		       "idle kept-alive upstream connections close after (default 4s, below "
		       "uvicorn's 5s)"),
	    IG_FLAG_UINT("upstream-max-idle", 0, &max_idle, 0, 65536, "N",
			 "idle upstream connections kept per endpoint and worker; 0 keeps none "
			 "(default 32)"),
	    IG_FLAG_MS("scrape-interval", 0, &o->scrape_interval_ms, IG_FLAG_BARE_MS, "DUR",
		       "endpoint /metrics scrape period (default 50ms)"),
	    IG_FLAG_MS("scrape-timeout", 0, &o->scrape_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "one /metrics scrape, connect included, fails after (default 5s)"),
	    IG_FLAG_UINT(
		"unhealthy-after", 0, &o->scrape_failures_out, 1, 1000000, "N",
		"scrapes in a row that fail (no answer, not 200, no metrics page) before an "
		"endpoint leaves rotation (default 3)"),
	    IG_FLAG_SECTION("endpoint picker:"),
	    IG_FLAG_STR("session-header", 0, &o->session_header, "NAME",
			"session affinity header (default x-session-id)"),
	    IG_FLAG_DOUBLE("session-slack", 0, &o->session_slack, 0, 1e9, "N",
			   "extra queued requests a session's endpoint may have over the pool's "
			   "best before the session moves (default 4)"),
	    IG_FLAG_BOOL("flow-control", 0, &o->flow_control,
			 "queue requests while the pool is saturated (else refuse sheddable "
			 "ones); also featureGates: [flowControl], or the deprecated "
			 "ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER=true"),
	    IG_FLAG_MS("queue-timeout", 0, &o->queue_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "longest wait in that queue, then 503 (default 30s)"),
	    IG_FLAG_UINT("queue-capacity", 0, &o->queue_capacity, 1, 100000000, "N",
			 "requests the queue holds per worker, then 429 (default 1000)"),
	    IG_FLAG_SECTION("external endpoint pickers (a pool's endpointPickerRef/extensionRef "
			    "Service):"),
	    IG_FLAG_MS("epp-timeout", 0, &o->epp_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "each answer of a picker must come within this, else its failureMode "
		       "applies (default 10s)"),
	    IG_FLAG_BOOL("epp-tls-verify", 0, &o->epp_tls_verify,
			 "verify the picker's certificate (default: TLS without verification, "
			 "as GIE's charts configure Envoy)"),
	    IG_FLAG_STR("epp-ca-file", 0, &o->epp_ca_file, "PATH",
			"CA certificates for --epp-tls-verify (default: the system's)"),
	    IG_FLAG_BOOL("epp-plaintext", 0, &o->epp_plaintext,
			 "speak h2c (no TLS) to pickers (default: TLS, unless the Service port's "
			 "appProtocol is kubernetes.io/h2c)"),
	    IG_FLAG_SECTION("tracing (OpenTelemetry):"),
	    IG_FLAG_STR("otlp-endpoint", 0, &o->otlp_endpoint, "URL",
			"send each request's spans to this OTLP/HTTP collector (URL/v1/traces, "
			"JSON), e.g. http://127.0.0.1:4318"),
	    IG_FLAG_DOUBLE("trace-sample-ratio", 0, &o->trace_sample_ratio, 0, 1, "R",
			   "share of requests traced when the client sent no sampled traceparent "
			   "(default 1.0)"),
	    IG_FLAG_STR("otlp-service-name", 0, &o->otlp_service_name, "NAME",
			"the spans' service.name (default: $OTEL_SERVICE_NAME, else the "
			"service.name of $OTEL_RESOURCE_ATTRIBUTES, whose other key=value pairs "
			"join the resource too, else infergate)"),
	    IG_FLAG_SECTION("logging:"),
	    IG_FLAG_ENUM("log-level", 0, &level, log_levels, "LEVEL",
			 "error, warn, info or debug (default info)"),
	    IG_FLAG_STR("access-log", 0, &o->access_log, "PATH",
			"one line per request to this file, or - for standard output; SIGUSR1 "
			"reopens it (default: none)"),
	    IG_FLAG_ENUM("access-log-format", 0, &o->access_log_format, access_log_formats, "FMT",
			 "json (the default) or text (logfmt key=value)"),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {.prog = "infergate gateway",
			      .usage = usage_text,
			      .footer = footer_text,
			      .table = table};
	int rc = ig_flags_parse(&fl, argc, argv);
	if (rc == IG_OK && paths->n == 0 && !o->kube)
		rc = ig_flags_error(&fl, "no manifests: give -f PATH or --kube (see --help)");
	if (rc == IG_OK && paths->n > 0 && o->kube)
		rc = ig_flags_error(&fl, "give -f PATH or --kube, not both");
	if (rc == IG_OK && (o->admin_token || o->admin_token_file) && !o->admin)
		rc = ig_flags_error(&fl, "--admin-token needs an admin listener: give --admin");
	if (rc == IG_OK && o->admin_token && o->admin_token_file)
		rc = ig_flags_error(&fl, "give --admin-token or --admin-token-file, not both");
	const char *timings = rc == IG_OK ? ig_kube_lease_timings_error(&o->kube_opt) : NULL;
	if (timings)
		rc = ig_flags_error(&fl, "%s", timings);
	/* A name (localhost, say) becomes the address it resolves to: the
	 * Gateways' addresses are compared with it and reported as it. */
	if (rc == IG_OK && ig_listen_address(o->bind, o->bind_ip, sizeof o->bind_ip) < 0)
		rc = ig_flags_error(
		    &fl, "--bind %s: not an IP address, nor a name this host resolves", o->bind);
	else if (rc == IG_OK)
		o->bind = o->bind_ip;
	if (rc != IG_OK)
		return ig_flags_report(&fl, rc);
	ig_log_level = (enum ig_log_level)level;
	o->http.max_header_bytes = (size_t)max_header;
	o->http.max_body_bytes = (size_t)max_body;
	o->upstream.max_idle = (size_t)max_idle;
	o->paths = paths->v;
	o->npaths = paths->n;
	return -1;
}

/* ---- configuration ---- */

/* The errors of a refused load, one per line as they were logged, for
 * /api/status: the first MAX_ERRORS of them, then how many more. */
#define MAX_ERRORS 20

static char *error_lines(const struct ig_diags *d)
{
	struct ig_buf b = {0};
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct ig_diag *g = &d->items[i];
		if (g->warning || n++ >= MAX_ERRORS)
			continue;
		ig_buf_append_cstr(&b, g->file);
		if (g->line > 0)
			ig_buf_printf(&b, ":%d", g->line);
		ig_buf_printf(&b, ": %s%s%s\n", g->path, *g->path ? ": " : "", g->msg);
	}
	if (n > MAX_ERRORS)
		ig_buf_printf(&b, "... and %zu more errors (see the log)\n", n - MAX_ERRORS);
	char *out = b.len ? strndup(b.ptr, b.len) : strdup("configuration has errors");
	ig_buf_free(&b);
	return out;
}

/* Loads the manifests and the picker configuration into a snapshot, or
 * logs every error and returns NULL with them in *errors, and in
 * *resource the errno of a failure for want of resources (0 for errors of
 * the configuration itself). */
static struct ig_snapshot *load(struct ig_gateway_rt *G, bool initial, char **errors, int *resource)
{
	struct ig_config *cfg = NULL;
	struct ig_picker_config *picker = NULL;
	uint64_t picker_hash = 0;
	struct ig_diags diags = {0};
	int rc = G->kube ? ig_kube_load(G->kube, &cfg, &diags)
			 : ig_config_load_extra(G->opt.paths, G->opt.npaths, "--endpoint-selector",
						G->opt.extra_text, &cfg, &diags);
	if (rc == 0 && G->opt.picker_text) {
		if (ig_gw_load_picker_text(G->opt.picker_text, G->opt.flow_control, &picker,
					   &picker_hash, &diags) < 0)
			rc = -1;
	} else if (rc == 0 &&
		   ig_gw_load_picker(cfg, G->opt.picker_config, G->opt.picker_preset,
				     G->opt.flow_control, &picker, &picker_hash, &diags) < 0) {
		rc = -1;
	}
	if (rc == 0) {
		ig_gateway_addresses_check(cfg, G->opt.bind);
		ig_attach_diags(cfg, &diags);
	}
	ig_diags_print(&diags, stderr);
	if (rc < 0)
		*errors = error_lines(&diags);
	*resource = rc < 0 ? diags.resource : 0;
	ig_diags_free(&diags);
	if (rc < 0) {
		if (*resource)
			ig_err("%s: cannot load the configuration: %s; %s",
			       initial ? "start" : "reload", strerror(*resource),
			       initial ? "not starting" : "keeping the previous one");
		else
			ig_err("%s: configuration has errors; %s", initial ? "start" : "reload",
			       initial ? "not starting" : "keeping the previous one");
		ig_config_free(cfg);
		ig_picker_config_free(picker);
		return NULL;
	}
	struct ig_snapshot *s = ig_snapshot_build_scoped(
	    G->endpoints, cfg, picker, picker_hash, G->snap, ++G->generation,
	    G->opt.workers ? (size_t)G->opt.workers : 1, &G->opt.pool_scope);
	if (!s) {
		ig_err("%s: out of memory", initial ? "start" : "reload");
		*errors = strdup("out of memory");
		*resource = ENOMEM;
	}
	return s;
}

/* Every port must be ours before workers try; binding one socket here
 * turns "address in use" into a clear startup error (logged, and in
 * *error; *resource gets the errno when it is a want of resources, such
 * as EMFILE). The probe goes without SO_REUSEPORT, which the workers'
 * sockets use: with it, a second gateway on the same address and port
 * started and took a share of the first one's connections. */
static int check_ports(struct ig_gateway_rt *G, const struct ig_snapshot *s, char **error,
		       int *resource)
{
	if (G->opt.frontend) /* the Gateways' listeners are not opened */
		return 0;
	for (size_t i = 0; i < s->nports; i++) {
		bool have = G->snap && ig_snapshot_port(G->snap, s->ports[i].port);
		if (have)
			continue;
		int fd = ig_listen_tcp(G->opt.bind, s->ports[i].port, false, 1);
		if (fd < 0) {
			char msg[300];
			snprintf(msg, sizeof msg, "cannot listen on %s:%d: %s", G->opt.bind,
				 s->ports[i].port, strerror(-fd));
			ig_err("%s", msg);
			*error = strdup(msg);
			*resource = ig_err_resource(fd) ? -fd : 0;
			return -1;
		}
		close(fd);
	}
	return 0;
}

static void log_snapshot(struct ig_gateway_rt *G, const struct ig_snapshot *s)
{
	for (size_t i = 0; !G->opt.frontend && i < s->nports; i++)
		for (size_t l = 0; l < s->ports[i].nlisteners; l++) {
			const struct ig_listener_rt *li = &s->ports[i].listeners[l];
			ig_info("listener %s/%s %s on %s:%d: %zu route matches", li->gw->meta.name,
				li->listener->name, li->listener->protocol, G->opt.bind,
				s->ports[i].port, ig_routes_count(li->routes));
		}
	for (size_t p = 0; p < s->npools; p++)
		ig_info("pool %s/%s: %zu endpoints", s->pools[p].pool->meta.ns,
			s->pools[p].pool->meta.name, s->pools[p].neps);
}

/* A pool whose picker is another process, or names a Service that is
 * not there: said once, when it changes. */
static void log_pickers(const struct ig_gateway_rt *G, const struct ig_snapshot *s,
			const struct ig_snapshot *old)
{
	for (size_t i = 0; i < s->npools; i++) {
		const struct ig_pool_rt *rt = &s->pools[i];
		const struct ig_pool *pool = rt->pool;
		const struct ig_pool_rt *was =
		    old ? ig_snapshot_pool(old, pool->meta.ns, pool->meta.name) : NULL;
		int state = rt->epp_missing ? 1 : rt->epp ? (rt->epp->naddrs ? 2 : 3) : 0;
		int before = !was		? -1
			     : was->epp_missing ? 1
			     : was->epp		? (was->epp->naddrs ? 2 : 3)
						: 0;
		if (state == before || state == 0)
			continue;
		/* In Kubernetes mode a v1 pool's requests fail, unless its
		 * failureMode is FailOpen. */
		const char *then = "the built-in picker serves the pool";
		if (pool->v1 && s->epp_required)
			then = pool->failure_mode == IG_FAIL_OPEN
				   ? "FailOpen: the built-in picker serves the pool"
				   : "its requests fail with 503";
		if (state == 2)
			ig_info("pool %s/%s: its endpoint picker is Service %s at %s (%s, %s)",
				pool->meta.ns, pool->meta.name, pool->epp_name, rt->epp->addrs[0],
				rt->epp->plaintext || G->opt.epp_plaintext ? "h2c" : "TLS",
				rt->epp->fail_open ? "FailOpen" : "FailClose");
		else
			ig_warn("pool %s/%s: its endpoint picker Service %s %s; %s", pool->meta.ns,
				pool->meta.name, pool->epp_name,
				state == 1 ? "is not in the configuration" : "has no address",
				then);
	}
}

static void publish(struct ig_gateway_rt *G, struct ig_snapshot *s)
{
	s->epp_required = G->opt.kube;
	if (!G->opt.frontend)
		log_pickers(G, s, G->snap);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_set_snapshot(&G->workers[i], s);
	struct ig_snapshot *old = G->snap;
	G->snap = s;
	size_t n;
	ig_snapshot_set_lora_rules(s);
	struct ig_endpoint **eps = ig_snapshot_endpoints(s, &n);
	if (G->scraper && ig_scraper_set(G->scraper, eps, n) < 0)
		ig_err("scraper: out of memory; endpoints of the new configuration not scraped");
	free(eps);
	ig_snapshot_unref(old);
	log_snapshot(G, s);
	free(G->attach_json);
	G->attach_json = ig_admin_render_attachment(s, G->opt.bind);
}

/* A configuration taken (errors NULL) or refused (errors, which this
 * takes), at start or on reload: the log said so; /metrics and
 * /api/status say it too, since the old configuration keeps serving and
 * /readyz stays 200 after a refused reload. */
static void record_load(struct ig_gateway_rt *G, bool reload, const char *why, char *errors)
{
	double now = ig_wall_seconds();
	bool ok = errors == NULL;
	ig_gw_metrics_config(G->metrics, reload, ok, now);
	if (reload) {
		G->reload.ok += ok;
		G->reload.failed += !ok;
		G->reload.last_why = why;
		G->reload.last_at = now;
	}
	G->reload.last_failed = !ok;
	if (ok)
		G->reload.ok_at = now;
	free(G->reload.errors);
	G->reload.errors = errors;
}

/* A reload refused for want of resources (out of descriptors, memory or
 * kernel buffers) is tried again with the same input, as Envoy retries an
 * update that failed and Kubernetes controllers requeue with back-off:
 * after RETRY_FIRST_MS, doubling up to RETRY_MAX_MS, until one is taken or
 * refused for errors of the configuration, which wait for a new input.
 * Each attempt logs and counts as a reload. */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000

static void reload(struct ig_gateway_rt *G, const char *why);

static void on_reload_retry(struct ig_loop *loop, struct ig_timer *t)
{
	(void)loop;
	struct ig_gateway_rt *G = t->data;
	if (!G->draining)
		reload(G, "retry");
}

/* After a reload: a retry scheduled when it failed for want of resources
 * (err), none otherwise. */
static void retry_after(struct ig_gateway_rt *G, int err)
{
	if (!err) {
		ig_timer_stop(&G->ctl, &G->retry_timer);
		G->retry_ms = 0;
		G->reload.retry_at = 0;
		return;
	}
	G->retry_ms = ig_backoff_next(G->retry_ms, RETRY_FIRST_MS, RETRY_MAX_MS);
	G->reload.retry_at = ig_wall_seconds() + (double)G->retry_ms / 1000;
	ig_warn("reload: failed for want of resources (%s); trying again in %llu ms", strerror(err),
		(unsigned long long)G->retry_ms);
	ig_timer_start(&G->ctl, &G->retry_timer, G->retry_ms, on_reload_retry, G);
}

static void reload(struct ig_gateway_rt *G, const char *why)
{
	ig_info("reloading configuration (%s)", why);
	char *errors = NULL;
	int resource = 0;
	struct ig_snapshot *s = load(G, false, &errors, &resource);
	if (s && check_ports(G, s, &errors, &resource) < 0) {
		ig_err("reload refused; keeping the previous configuration");
		ig_snapshot_unref(s);
		s = NULL;
	}
	if (!s && !errors)
		errors = strdup("reload refused");
	retry_after(G, s ? 0 : resource);
	record_load(G, true, why, errors);
	if (!s)
		return;
	publish(G, s);
	if (!G->opt.frontend) /* the picker writes no status */
		ig_gw_kube_status(G);
}

/* A cheap fingerprint of the files: names, sizes and modification times.
 * Polling it is simple and works for editors that replace files. */
static void fold(uint64_t *h, uint64_t v)
{
	*h = (*h ^ v) * 0x100000001b3u;
}

/* Out of descriptors, a directory cannot be read: that says nothing about
 * the files, so the poll is skipped rather than taken for a change. */
static bool out_of_fds(int err)
{
	return err == EMFILE || err == ENFILE;
}

/* *err is set when the files could not be looked at (out_of_fds). */
static void fingerprint(const char *path, uint64_t *h, int depth, int *err)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (out_of_fds(errno))
			*err = errno;
		fold(h, 0xdead);
		return;
	}
	for (const char *c = path; *c; c++)
		fold(h, (unsigned char)*c);
	fold(h, (uint64_t)st.st_size);
	fold(h, (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec);
	if (!S_ISDIR(st.st_mode) || depth > 8)
		return;
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0 && out_of_fds(errno))
		*err = errno;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char sub[4096];
			snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
			fingerprint(sub, h, depth + 1, err);
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

/* 0, or the errno that kept the files from being looked at. */
static int signature(const struct ig_gateway_rt *G, uint64_t *sig)
{
	uint64_t h = 0xcbf29ce484222325u;
	int err = 0;
	for (size_t i = 0; i < G->opt.npaths; i++)
		fingerprint(G->opt.paths[i], &h, 0, &err);
	if (G->opt.picker_config)
		fingerprint(G->opt.picker_config, &h, 0, &err);
	*sig = h;
	return err;
}

#define WATCH_LOG_INTERVAL_NS 60000000000u

/* A change is taken once two polls in a row saw the same new fingerprint:
 * a file rewritten in place in several writes is not read half-written,
 * unless the writer pauses longer than a poll (files are best replaced
 * whole, by a rename, as kubectl's ConfigMap volumes do). */
static void on_watch(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	uint64_t sig;
	int err = signature(G, &sig);
	uint64_t now = ig_now_ns();
	if (err) {
		if (!G->watch_err_log_ns || now - G->watch_err_log_ns >= WATCH_LOG_INTERVAL_NS) {
			ig_warn("watch: cannot look at the files (%s): skipping the check",
				strerror(err));
			G->watch_err_log_ns = now;
		}
	} else if (sig == G->watch_signature) {
		G->watch_changed = false;
	} else if (!G->watch_changed || sig != G->watch_seen) {
		G->watch_changed = true;
		G->watch_seen = sig;
	} else {
		G->watch_changed = false;
		G->watch_signature = sig;
		reload(G, "files changed");
	}
	ig_timer_start(loop, t, G->opt.watch_interval_ms, on_watch, G);
}

/* The API's objects changed (debounced): the same reload as files get.
 * Until the first configuration loads, nothing listens. */
static void on_kube_change(void *arg)
{
	struct ig_gateway_rt *G = arg;
	if (!G->draining)
		reload(G, G->snap ? "API objects changed" : "configuration read from the API");
}

/* ---- shutdown ---- */

/* After the drain's grace period, how long the workers have to write
 * their last answers before their loops stop. */
#define DRAIN_EXPIRED_NS (250 * 1000000ull)

static void on_drain_poll(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	/* The Lease's release (--kube --leader-elect) is let finish too. */
	bool done = atomic_load(&G->workers_done) >= G->nworkers && !ig_kube_releasing(G->kube);
	uint64_t now = ig_now_ns();
	if (!done && now >= G->drain_deadline_ns && !G->drain_expired) {
		/* The workers end what is left themselves, answering 503 where
		 * no response began, so that clients and the access log learn
		 * the gateway ended it; a moment later the loops stop anyway. */
		ig_warn("drain: grace period over; closing the remaining requests");
		G->drain_expired = true;
		for (int i = 0; i < G->nworkers; i++)
			ig_worker_drain_expired(&G->workers[i]);
	}
	if (done || now >= G->drain_deadline_ns + DRAIN_EXPIRED_NS) {
		ig_loop_stop(loop);
		return;
	}
	ig_timer_start(loop, t, 20, on_drain_poll, G);
}

static void start_drain(struct ig_gateway_rt *G)
{
	if (G->drain_started)
		return;
	G->drain_started = true;
	ig_info("draining: listeners closed, waiting for requests in flight");
	ig_kube_release(G->kube);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_drain(&G->workers[i]);
	G->drain_deadline_ns = ig_now_ns() + G->opt.drain_timeout_ms * 1000000u;
	ig_timer_start(&G->ctl, &G->drain_poll, 0, on_drain_poll, G);
}

static void on_shutdown_delay(struct ig_loop *loop, struct ig_timer *t)
{
	start_drain(t->data);
}

/* SIGTERM: not ready from now on (/readyz), no more reloads, and after
 * --shutdown-delay the drain. Kubernetes sends SIGTERM while it takes the
 * pod out of its Services' endpoints, not after; during the delay clients
 * still routed here are served, and told to go (Connection: close, an
 * HTTP/2 GOAWAY notice), instead of being refused. */
static void shut_down(struct ig_gateway_rt *G)
{
	if (atomic_exchange(&G->draining, true))
		return;
	ig_timer_stop(&G->ctl, &G->watch_timer);
	ig_timer_stop(&G->ctl, &G->retry_timer);
	if (!G->opt.shutdown_delay_ms) {
		start_drain(G);
		return;
	}
	ig_info("shutting down: not ready, serving new connections for %llu ms before draining",
		(unsigned long long)G->opt.shutdown_delay_ms);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_going_away(&G->workers[i]);
	ig_timer_start(&G->ctl, &G->shutdown_timer, G->opt.shutdown_delay_ms, on_shutdown_delay, G);
}

static void on_signal(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_gateway_rt *G = io->data;
	struct signalfd_siginfo si;
	while (read(io->fd, &si, sizeof si) == sizeof si) {
		/* A reload would open the listeners of a new configuration
		 * while those of the old one close (as --kube's changes, which
		 * are ignored while draining too). */
		if (si.ssi_signo == SIGHUP && G->draining)
			ig_info("SIGHUP ignored: shutting down");
		else if (si.ssi_signo == SIGHUP)
			reload(G, "SIGHUP");
		else if (si.ssi_signo == SIGUSR1)
			ig_access_log_reopen(G->alog);
		else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (G->draining) {
				ig_warn("second signal: stopping now");
				ig_loop_stop(loop);
			}
			shut_down(G);
		}
	}
}

/* ---- the access log ---- */

/* Lines wait at most this long in the workers' buffers. */
#define ALOG_FLUSH_MS 100

static void on_alog_flush(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	ig_access_log_flush(G->alog);
	ig_timer_start(loop, t, ALOG_FLUSH_MS, on_alog_flush, G);
}

/* ---- life ---- */

/* A long prompt's body (500 KB for 100K tokens) is one allocation per
 * request. glibc's default trim threshold follows the largest block it
 * has unmapped (twice its size: about 1 MB here), so a worker's heap keeps
 * being trimmed (madvise) as bodies come and go, and the next body faults
 * the same memory back in, a zeroed page at a time: 25 to 90 faults per
 * request, a quarter of the gateway's CPU on 100K-token traffic
 * (docs/BENCHMARKS.md). Fixed thresholds keep bodies up to 32 MiB on the
 * heap and up to 64 MiB of freed memory per arena (about one per worker)
 * for reuse. The sanitizers' allocator ignores this. */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

/* The trim threshold only bounds the free memory at the top of a heap. A
 * worker's arena is made of several heaps, and a burst of large bodies
 * freed among the small blocks still in use (connections, arenas) stays
 * resident however much of it is free: 250 clients that each sent 2 MiB
 * of a body and left held 520 MB of RSS until the process exited. So
 * every TRIM_CHECK_MS the control thread looks at what malloc holds free
 * and, past the budget that keep_freed_memory means to keep (64 MiB an
 * arena: the workers' and its own), gives the pages back with malloc_trim,
 * as a burst's memory should go once it is over. Steady traffic stays
 * under the budget and is not trimmed; memory already trimmed and not
 * reused since is not walked again. Not with the sanitizers, whose
 * allocator is not glibc's. */
#define TRIM_CHECK_MS 2000
#define TRIM_KEEP_PER_ARENA ((size_t)64 << 20)

#if defined(__GLIBC__) && !defined(IG_HAVE_ASAN) &&                                                \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define IG_TRIM_FREED 1
static void on_trim_check(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	size_t keep = TRIM_KEEP_PER_ARENA * ((size_t)G->nworkers + 1);
	size_t held = mallinfo2().fordblks;
	if (held > keep && held != G->trimmed_free) {
		malloc_trim(0);
		G->trimmed_free = mallinfo2().fordblks;
	}
	ig_timer_start(loop, t, TRIM_CHECK_MS, on_trim_check, G);
}
#endif

/* The front end's service (the epp's gRPC port) starts on each worker's
 * thread; a process that serves nothing there must not run on as if it
 * did, so start waits for every worker to say how it went. */
static int wait_frontends(struct ig_gateway_rt *G)
{
	const struct ig_gw_frontend *fe = G->opt.frontend;
	if (!fe || !fe->start)
		return 0;
	const char *job = G->opt.job ? G->opt.job : "front end";
	/* Binding a port and making a certificate take milliseconds. */
	for (int ms = 0;
	     atomic_load(&G->workers_up) + atomic_load(&G->workers_failed) < G->nworkers; ms++) {
		if (ms == 30000) {
			ig_err("%s: not starting: the workers' service did not start in 30 s", job);
			return -1;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	if (atomic_load(&G->workers_failed) == 0)
		return 0;
	ig_err("%s: not starting: the service did not start on %d of %d workers", job,
	       atomic_load(&G->workers_failed), G->nworkers);
	return -1;
}

static int start(struct ig_gateway_rt *G)
{
	keep_freed_memory();
	if (ig_gateway_init(G) < 0) {
		ig_err("out of memory");
		return -1;
	}
	/* With --kube the first configuration comes once the API has been
	 * read (on_kube_change); until then the workers listen on nothing. */
	struct ig_snapshot *snap = NULL;
	if (!G->opt.kube) {
		char *errors = NULL;
		int resource = 0; /* a start is not tried again: it fails */
		snap = load(G, true, &errors, &resource);
		if (snap && snap->nports == 0 && !G->opt.frontend)
			ig_warn("no HTTP listeners in the manifests: nothing to serve");
		if (snap && check_ports(G, snap, &errors, &resource) < 0) {
			ig_snapshot_unref(snap);
			snap = NULL;
		}
		free(errors);
		if (!snap)
			return -1; /* as `nginx -t` would: an invalid start is refused */
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	sigaddset(&mask, SIGUSR1);
	/* Blocked before the workers start, so they inherit the mask and only
	 * the control loop sees these signals. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	G->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ig_loop_init(&G->ctl) < 0 || G->sigfd < 0) {
		ig_err("event loop: %s", strerror(errno));
		ig_snapshot_unref(snap);
		return -1;
	}
	struct ig_scraper_config sc = {.interval_ms = G->opt.scrape_interval_ms,
				       .timeout_ms = G->opt.scrape_timeout_ms,
				       .failures_out = (unsigned)G->opt.scrape_failures_out};
	G->scraper = ig_scraper_new(&G->ctl, &sc);
	/* G->nworkers counts the workers stop() has to stop and free: none
	 * until there are workers (a refused tracer stops the start before). */
	int nworkers = (int)G->opt.workers;
	if (G->opt.otlp_endpoint) {
		char err[512];
		/* The OTel SDK's environment: OTEL_SERVICE_NAME wins over the
		 * service.name of OTEL_RESOURCE_ATTRIBUTES. */
		const char *svc = G->opt.otlp_service_name, *env = getenv("OTEL_SERVICE_NAME");
		if (!svc && env && *env)
			svc = env;
		struct ig_tracer_config tc = {.endpoint = G->opt.otlp_endpoint,
					      .endpoint_is_url = G->opt.otlp_endpoint_is_url,
					      .service_name = svc,
					      .default_service_name = G->opt.otlp_service_default,
					      .resource_attributes =
						  getenv("OTEL_RESOURCE_ATTRIBUTES"),
					      .sample_ratio = G->opt.trace_sample_ratio,
					      .nrings = (size_t)nworkers};
		if (!(G->tracer = ig_tracer_new(&tc, err, sizeof err))) {
			ig_err("tracing: %s", err);
			ig_snapshot_unref(snap);
			return -1;
		}
		ig_tracer_start(G->tracer, &G->ctl);
		ig_info("tracing: spans to %s, sample ratio %g", G->opt.otlp_endpoint,
			G->opt.trace_sample_ratio);
	}
	G->workers = calloc((size_t)nworkers, sizeof *G->workers);
	if (!G->scraper || !G->workers) {
		ig_snapshot_unref(snap);
		return -1;
	}
	G->nworkers = nworkers;
	if (G->opt.access_log) {
		G->alog = ig_access_log_open(
		    G->opt.access_log, (enum ig_alog_format)G->opt.access_log_format,
		    (size_t)G->nworkers, ig_gw_metrics_access_log_dropped(G->metrics));
		if (!G->alog) {
			ig_snapshot_unref(snap);
			G->nworkers = 0;
			return -1;
		}
		ig_timer_start(&G->ctl, &G->alog_timer, ALOG_FLUSH_MS, on_alog_flush, G);
	}
#ifdef IG_TRIM_FREED
	ig_timer_start(&G->ctl, &G->trim_timer, TRIM_CHECK_MS, on_trim_check, G);
#endif
	for (int i = 0; i < G->nworkers; i++) {
		int rc = ig_worker_init(&G->workers[i], G, i);
		G->workers[i].alog = ig_access_log_ring(G->alog, (size_t)i);
		if (rc < 0 || ig_worker_start(&G->workers[i]) < 0) {
			ig_err("cannot start worker %d", i);
			/* Never ran, so not stopped nor joined: what its init
			 * made is freed here (nothing when its loop failed). */
			if (G->workers[i].loop.epfd >= 0)
				ig_worker_free(&G->workers[i]);
			G->nworkers = i;
			ig_snapshot_unref(snap);
			return -1;
		}
	}
	if (wait_frontends(G) < 0) {
		ig_snapshot_unref(snap);
		return -1;
	}
	if (snap) {
		publish(G, snap);
		record_load(G, false, "start", NULL);
	}
	ig_io_start(&G->ctl, &G->sig_io, G->sigfd, IG_EV_READ, on_signal, G);
	if (G->opt.admin && ig_admin_start(G, G->opt.admin) < 0)
		return -1;
	ig_scraper_start(G->scraper);
	const struct ig_gw_frontend *fe = G->opt.frontend;
	if (fe && fe->ctl_start && fe->ctl_start(G, fe->arg) < 0)
		return -1;
	if (G->opt.kube) {
		G->kube = ig_kube_start(&G->ctl, &G->opt.kube_opt, on_kube_change, G);
		if (!G->kube)
			return -1;
	} else {
		signature(G, &G->watch_signature);
		ig_timer_start(&G->ctl, &G->watch_timer, G->opt.watch_interval_ms, on_watch, G);
	}
	ig_info("%s: %d workers, scraping every %llu ms", G->opt.job ? G->opt.job : "gateway",
		G->nworkers, (unsigned long long)G->opt.scrape_interval_ms);
	return 0;
}

static void stop(struct ig_gateway_rt *G)
{
	for (int i = 0; i < G->nworkers; i++)
		ig_loop_stop(&G->workers[i].loop);
	for (int i = 0; i < G->nworkers; i++)
		pthread_join(G->workers[i].thread, NULL);
	const struct ig_gw_frontend *fe = G->opt.frontend;
	if (fe && fe->ctl_stop)
		fe->ctl_stop(G, fe->arg);
	ig_kube_free(G->kube);
	ig_tracer_free(G->tracer); /* after the workers: their last spans go too */
	G->tracer = NULL;
	ig_scraper_free(G->scraper);
	ig_admin_stop(G);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_free(&G->workers[i]);
	free(G->workers);
	/* The workers are gone: their last lines are written now. */
	ig_timer_stop(&G->ctl, &G->alog_timer);
#ifdef IG_TRIM_FREED
	ig_timer_stop(&G->ctl, &G->trim_timer);
#endif
	ig_access_log_close(G->alog);
	G->alog = NULL;
	ig_snapshot_unref(G->snap);
	if (G->sigfd >= 0) {
		ig_io_stop(&G->ctl, &G->sig_io);
		close(G->sigfd);
	}
	ig_timer_stop(&G->ctl, &G->watch_timer);
	ig_timer_stop(&G->ctl, &G->retry_timer);
	ig_timer_stop(&G->ctl, &G->drain_poll);
	ig_timer_stop(&G->ctl, &G->shutdown_timer);
	if (G->ctl.epfd > 0)
		ig_loop_free(&G->ctl);
	ig_gateway_fini(G);
	ig_arena_thread_cleanup();
	ig_smallblock_thread_cleanup();
}

/* GIE v1.5 still turns the flowControl feature gate on from this
 * variable, saying it is deprecated whenever it is set
 * (cmd/epp/runner/runner.go applyDeprecatedEnvFeatureGate); its value is
 * read as Go's strconv.ParseBool, anything else counting as false. */
static void flow_control_from_env(struct ig_gw_options *o)
{
	static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
	const char *v = getenv("ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER");
	if (!v)
		return;
	ig_warn("Enabling the experimental Flow Control layer using environment variables is "
		"deprecated and will be removed in next version "
		"(ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER; use the flowControl feature gate)");
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		if (strcmp(v, yes[i]) == 0)
			o->flow_control = true;
}

int ig_gateway_run(const struct ig_gw_options *o)
{
	struct ig_gateway_rt *G = calloc(1, sizeof *G);
	if (!G)
		return 1;
	G->sigfd = -1;
	G->opt = *o;
	if (o->bind == o->bind_ip) /* the copy's own buffer, not o's */
		G->opt.bind = G->opt.bind_ip;
	flow_control_from_env(&G->opt);
	int rc = start(G);
	if (rc == 0) {
		ig_loop_run(&G->ctl);
		ig_info("%s stopped", G->opt.job ? G->opt.job : "gateway");
	}
	stop(G);
	free(G);
	return rc == 0 ? 0 : 1;
}

int ig_gateway_main(int argc, char **argv)
{
	struct ig_gw_options o;
	struct ig_flag_list paths = {0};
	int rc = parse_flags(argc, argv, &o, &paths);
	if (rc < 0)
		rc = ig_gateway_run(&o);
	ig_flag_list_free(&paths);
	return rc;
}
