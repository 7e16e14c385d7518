/* `infergate epp`: the command line. It takes both spellings a picker
 * Deployment may carry: GIE v0.2's Go flags (-poolName, -grpcPort,
 * -secureServing=false, ...; Go's flag package reads -name and --name
 * alike) and llm-d's kebab-case ones (--pool-name, --grpc-port, ...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/flags.h"
#include "core/log.h"
#include "epp/epp.h"
#include "gateway/gateway.h"
#include "gateway/runtime.h"

static const char usage_text[] =
    "usage: infergate epp -poolName NAME -f PATH [-f PATH...] [options]\n"
    "       infergate epp --pool-name NAME --kube [options]\n"
    "\n"
    "The endpoint picker as an Envoy ext_proc service (a drop-in for GIE's picker):\n"
    "Envoy, kgateway, Envoy Gateway or Istio ask it, per request, which model server\n"
    "of the InferencePool should answer. GIE's single-dash flags (-poolName,\n"
    "-grpcPort, -secureServing=false, ...) are accepted as well.\n\n";
static const char footer_text[] =
    "Serves envoy.service.ext_proc.v3.ExternalProcessor/Process (and grpc.health.v1)\n"
    "on the gRPC port, grpc.health.v1 on the health port, /metrics on the metrics port.\n";

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

/* Go's and pflag's booleans: -flag=false turns one off. */
static int go_bool(const char *v)
{
	static const char *const on[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const off[] = {"0", "f", "F", "false", "FALSE", "False"};
	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(v, on[i]))
			return 1;
		if (!strcmp(v, off[i]))
			return 0;
	}
	return -1;
}

/* "poolName" -> "pool-name", "DestinationEndpointHintMetadataNamespace"
 * -> "destination-endpoint-hint-metadata-namespace"; kebab-case stays. */
static void kebab_case(const char *name, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 2 < cap; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z') {
			if (k > 0 && out[k - 1] != '-')
				out[k++] = '-';
			c = (char)(c - 'A' + 'a');
		}
		out[k++] = c;
	}
	out[k] = '\0';
}

static const struct ig_flag *find_flag(const struct ig_flag *t, const char *name)
{
	for (; t->kind != IG_FK_END; t++)
		if (t->kind != IG_FK_SECTION && t->name && !strcmp(t->name, name))
			return t;
	return NULL;
}

/* argv rewritten to what the table reads. GIE's Go flags (-poolName,
 * -secureServing=false; Go's flag package reads -name and --name alike)
 * and llm-d's pflag ones (--pool-name, --secure-serving=false) become the
 * table's: a camelCase name its kebab-case one, a boolean's `=true` or
 * `=false` its on or off switch (or nothing, for a switch that is off by
 * default). Returns a malloc'd array of *argc + 1 pointers into argv and
 * into `store` (argc slots for rewritten words, malloc'd there), and sets
 * *argc; NULL when out of memory. */
static char **normalize(int *argc, char **argv, char **store, const struct ig_flag *table)
{
	char **out = calloc((size_t)*argc + 1, sizeof *out);
	if (!out)
		return NULL;
	int n = 0;
	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];
		out[n] = argv[i];
		if (i == 0 || a[0] != '-' || !a[1] || (a[1] == '-' && !a[2])) {
			n++;
			continue;
		}
		const char *name = a[1] == '-' ? a + 2 : a + 1;
		if (name == a + 1 && name[1] == '\0' && name[0] != 'v') {
			n++;
			continue; /* -f, -h: the table's own short flags */
		}
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		char kebab[96];
		kebab_case(name, nlen, kebab, sizeof kebab);
		const struct ig_flag *f = find_flag(table, kebab);
		if (!f) {
			if (a[1] != '-') { /* -workers 2: Go's single dash; unknown stays unknown */
				if (asprintf(&store[i], "-%s", a) < 0)
					goto oom;
				out[n] = store[i];
			}
			n++;
			continue;
		}
		int on = f->kind == IG_FK_BOOL && eq ? go_bool(eq + 1) : -1;
		if (on == 1) {
			if (asprintf(&store[i], "--%s", kebab) < 0)
				goto oom;
		} else if (on == 0) {
			char off[112];
			snprintf(off, sizeof off, "no-%s", kebab);
			if (!find_flag(table, off))
				continue; /* --x=false for a switch off by default */
			if (asprintf(&store[i], "--%s", off) < 0)
				goto oom;
		} else {
			if (asprintf(&store[i], "--%s%s", kebab, eq ? eq : "") < 0)
				goto oom;
		}
		out[n++] = store[i];
	}
	out[n] = NULL;
	*argc = n;
	return out;
oom:
	free(out);
	return NULL;
}

static void free_store(char **store, int argc)
{
	for (int i = 0; store && i < argc; i++)
		free(store[i]);
	free(store);
}

/* llm-d's standalone picker (--endpoint-selector app=vllm,tier=a
 * --endpoint-target-ports 8000,8001): no InferencePool in the cluster, the
 * pods matching the labels in the pool's namespace, each target port an
 * endpoint. Written as the v1 InferencePool it stands for, read with the
 * manifests (or the API's objects), so nothing downstream differs. Returns
 * the malloc'd manifest, or NULL with the reason in fl->err. */
static bool label_text(const char *s, size_t n, bool key)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || (key && c == '/')))
			return false;
	}
	return n <= (key ? 316u : 63u) && (!key || n > 0);
}

static char *standalone_pool(struct ig_flags *fl, const char *name, const char *ns,
			     const char *selector, const char *ports)
{
	struct ig_buf b = {0};
	ig_buf_printf(&b,
		      "apiVersion: inference.networking.k8s.io/v1\n"
		      "kind: InferencePool\n"
		      "metadata:\n  name: \"%s\"\n  namespace: \"%s\"\n"
		      "spec:\n  selector:\n    matchLabels:\n",
		      name, ns);
	for (const char *p = selector; *p;) {
		size_t n = strcspn(p, ",");
		const char *eq = memchr(p, '=', n);
		if (!eq || !label_text(p, (size_t)(eq - p), true) ||
		    !label_text(eq + 1, n - (size_t)(eq + 1 - p), false)) {
			ig_flags_error(
			    fl,
			    "--endpoint-selector: \"%s\": want key=value pairs joined by "
			    "commas (label keys and values, no spaces)",
			    selector);
			goto fail;
		}
		ig_buf_printf(&b, "      \"%.*s\": \"%.*s\"\n", (int)(eq - p), p,
			      (int)(n - (size_t)(eq + 1 - p)), eq + 1);
		p += n + (p[n] == ',');
	}
	ig_buf_append_cstr(&b, "  targetPorts:\n");
	unsigned seen[8];
	size_t nports = 0;
	for (const char *p = ports; *p;) {
		size_t n = strcspn(p, ",");
		char *end;
		unsigned long v = strtoul(p, &end, 10);
		bool dup = false;
		for (size_t i = 0; i < nports; i++)
			dup |= seen[i] == v;
		if (n == 0 || end != p + n || v < 1 || v > 65535 || dup || nports == 8) {
			ig_flags_error(
			    fl,
			    "--endpoint-target-ports: \"%s\": want 1 to 8 distinct ports "
			    "joined by commas",
			    ports);
			goto fail;
		}
		seen[nports++] = (unsigned)v;
		ig_buf_printf(&b, "  - number: %lu\n", v);
		p += n + (p[n] == ',');
	}
	if (nports == 0 || !selector[0]) {
		ig_flags_error(fl,
			       "--endpoint-selector and --endpoint-target-ports must not be empty");
		goto fail;
	}
	if (!ig_buf_cstr(&b))
		goto fail;
	return b.ptr;
fail:
	ig_buf_free(&b);
	return NULL;
}

/* --tracing (on by default, as GIE's): spans go where OpenTelemetry's
 * standard variables say, as GIE's picker reads them:
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL, used as-is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces), OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES (read where the tracer is made), and
 * OTEL_TRACES_SAMPLER(_ARG) for the ratio. infergate exports OTLP/HTTP
 * with JSON bodies, which collectors take on their HTTP port (4318);
 * OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused with a log line. No variable:
 * no tracing. */
/* The ratio of traces started here, as GIE v1.5's picker
 * (pkg/common/observability/tracing): OTEL_TRACES_SAMPLER defaults to
 * parentbased_traceidratio and OTEL_TRACES_SAMPLER_ARG to 0.1, an argument
 * that is not a number is 0.1; always_on and always_off (parent-based or
 * not) are taken as the OTel SDK's, another sampler falls back to 0.1. */
static double sampler_ratio(void)
{
	const char *sampler = getenv("OTEL_TRACES_SAMPLER");
	const char *arg = getenv("OTEL_TRACES_SAMPLER_ARG");
	if (!sampler || !*sampler)
		sampler = "parentbased_traceidratio";
	if (!strcmp(sampler, "always_off") || !strcmp(sampler, "parentbased_always_off"))
		return 0;
	if (!strcmp(sampler, "always_on") || !strcmp(sampler, "parentbased_always_on"))
		return 1;
	if (strcmp(sampler, "traceidratio") && strcmp(sampler, "parentbased_traceidratio")) {
		ig_warn("tracing: OTEL_TRACES_SAMPLER=%s is not supported: "
			"parentbased_traceidratio with 0.1, as GIE's picker",
			sampler);
		return 0.1;
	}
	if (!arg || !*arg)
		return 0.1;
	char *end;
	double r = strtod(arg, &end);
	if (*end == '\0' && r >= 0 && r <= 1)
		return r;
	ig_warn("tracing: OTEL_TRACES_SAMPLER_ARG \"%s\" is not a ratio in [0, 1]; sampling 0.1, "
		"as GIE's picker",
		arg);
	return 0.1;
}

static void otel_from_env(struct ig_gw_options *o, char *url, size_t len)
{
	const char *traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	const char *base = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	const char *proto = getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
	if (!proto || !*proto)
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL");
	if (traces && *traces) {
		/* The signal's own endpoint is the URL itself (OTLP exporter
		 * spec, "Endpoint URLs for OTLP/HTTP"). */
		snprintf(url, len, "%s", traces);
		o->otlp_endpoint_is_url = true;
	} else if (base && *base) {
		snprintf(url, len, "%s", base);
	} else {
		return;
	}
	if (proto && !strcmp(proto, "grpc")) {
		ig_warn("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: infergate exports OTLP/HTTP "
			"(JSON) only; point it at the collector's HTTP port (4318) with "
			"http/json; no spans are sent");
		return;
	}
	o->otlp_endpoint = url;
	o->otlp_service_default = "infergate-epp"; /* OTEL_SERVICE_NAME's when set */
	o->trace_sample_ratio = sampler_ratio();
}

/* zap's --zap-log-level: debug, info, error, panic, or a number (more
 * verbose as it grows: any of them is debug here). */
static int zap_level(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	int *level = f->dst;
	int l = ig_log_parse_level(v);
	if (l >= 0)
		*level = l;
	else if (!strcmp(v, "panic") || !strcmp(v, "dpanic") || !strcmp(v, "fatal"))
		*level = IG_LOG_ERROR;
	else if (v[0] >= '0' && v[0] <= '9' && strspn(v, "0123456789") == strlen(v))
		*level = atoi(v) > 0 ? IG_LOG_DEBUG : IG_LOG_INFO;
	else
		return ig_flags_invalid(fl, v, "debug, info, warn, error, panic or a number");
	return IG_OK;
}

/* Model-server metric names (GIE's --total-queued-requests-metric and
 * friends; the entry's dst is the NULL-terminated list of names taken):
 * infergate reads vLLM's names, so those are the values taken; another
 * name is refused rather than ignored. */
static int metric_name(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	const char *const *names = f->dst;
	for (size_t i = 0; names[i]; i++)
		if (!strcmp(v, names[i]))
			return IG_OK;
	return ig_flags_error(fl,
			      "%s: \"%s\" is not supported: infergate reads vLLM's metrics by "
			      "their names (this one: %s)",
			      fl->flag, v, names[0]);
}

int ig_epp_main(int argc, char **argv)
{
	struct ig_gw_options o;
	ig_gw_options_defaults(&o);
	struct ig_epp_options e = {
	    .pool_ns = "default",
	    .grpc_port = 9002,
	    .health_port = 9003,
	    .secure = true,
	    .bind = "0.0.0.0",
	};
	uint64_t grpc_port = 9002, health_port = 9003, metrics_port = 9090, verbosity = 0;
	unsigned long long max_body = 16u << 20, max_msg = 0, scrape_port = 0;
	uint64_t staleness_ms = 0, prom_refresh_ms = 0;
	int level = (int)ig_log_level, encoder = 0, time_enc = 0, stack_level = 0;
	bool insecure = false, tracing = true, no_tracing = false;
	/* The switches taken for compatibility that change nothing here (a
	 * `--x=false` of one is dropped before parsing). */
	bool no_effect = false;
	bool metrics_auth = false; /* llm-d's --metrics-endpoint-auth (its default: true) */
	const char *scheme = "http", *scrape_path = "/metrics", *config_text = NULL;
	const char *selector = NULL, *target_ports = NULL;
	char *standalone = NULL;
	static const char *const encoders[] = {"console", "json", NULL};
	/* In enum ig_epp_body_default's order. */
	static const char *const body_modes[] = {"full-duplex", "buffered", "streamed", NULL};
	int body_mode = 0;
	static const char *const time_encodings[] = {"epoch",	"millis",      "nano", "iso8601",
						     "rfc3339", "rfc3339nano", NULL};
	static const char *const zap_levels[] = {"debug",  "info",  "warn",  "error",
						 "dpanic", "panic", "fatal", NULL};
	static const char *const queued[] = {"vllm:num_requests_waiting", NULL};
	static const char *const running[] = {"vllm:num_requests_running", NULL};
	static const char *const kv[] = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
					 NULL};
	static const char *const lora[] = {"vllm:lora_requests_info", NULL};
	static const char *const cache[] = {"vllm:cache_config_info", NULL};
	struct ig_flag_list paths = {0};
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("the pool:"),
	    IG_FLAG_STR("pool-name", 0, &e.pool_name, "NAME",
			"the InferencePool to pick for; no other is scraped (required; -poolName)"),
	    IG_FLAG_STR("pool-namespace", 0, &e.pool_ns, "NS",
			"its namespace (default default; -poolNamespace)"),
	    IG_FLAG_STR("pool-group", 0, &e.pool_group, "GROUP",
			"the pool's API group: inference.networking.k8s.io (v1) or "
			"inference.networking.x-k8s.io (v1alpha2) (default: either, v1 first)"),
	    IG_FLAG_LIST("filename", 'f', &paths, "PATH",
			 "manifest file or directory (repeatable): the pool, its pods, "
			 "InferenceModels/Objectives/ModelRewrites"),
	    IG_FLAG_BOOL("kube", 0, &o.kube, "read them from the Kubernetes API instead"),
	    IG_FLAG_STR("endpoint-selector", 0, &selector, "K=V,...",
			"no InferencePool: the pods with these labels in the pool's namespace "
			"(llm-d's standalone picker; --pool-name then only names it, default "
			"\"standalone\")"),
	    IG_FLAG_STR("endpoint-target-ports", 0, &target_ports, "P,...",
			"their ports, each an endpoint (with --endpoint-selector)"),
	    IG_FLAG_STR(
		"kubeconfig", 0, &o.kube_opt.kubeconfig, "PATH",
		"kubeconfig (default: $KUBECONFIG, the pod's service account, ~/.kube/config)"),
	    IG_FLAG_BOOL("ha-enable-leader-election", 0, &e.leader_election,
			 "with --kube: ready only while holding the Lease epp-NS-POOL (needs "
			 "get/create/update on coordination.k8s.io leases)"),
	    IG_FLAG_SECTION("the picker:"),
	    IG_FLAG_STR("config-file", 0, &o.picker_config, "FILE",
			"EndpointPickerConfig (default: one among the manifests, else --picker)"),
	    IG_FLAG_STR("config-text", 0, &config_text, "YAML",
			"the EndpointPickerConfig itself instead of a file"),
	    IG_FLAG_STR("picker", 0, &o.picker_preset, "NAME",
			"a built-in configuration: infergate (default), gie (GIE's default "
			"profile, = llm-d's default without a configuration), llm-d (prefix + "
			"load-aware, llm-d's estimate-prefix sample), v0.2"),
	    IG_FLAG_MS("refresh-metrics-interval", 0, &o.scrape_interval_ms, IG_FLAG_BARE_MS, "DUR",
		       "model-server /metrics scrape period (default 50ms)"),
	    IG_FLAG_MS("metrics-staleness-threshold", 0, &staleness_ms, IG_FLAG_BARE_MS, "DUR",
		       "metrics older than this leave a pod out of the inference_pool_* "
		       "gauges (default 2s); the saturation detector keeps the config's "
		       "metricsStalenessThreshold (200ms by default), as llm-d's and GIE's"),
	    IG_FLAG_UINT("endpoints", 0, &e.endpoints, 1, 32, "N",
			 "endpoints named in x-gateway-destination-endpoint, the pick first and "
			 "fallbacks after it (default: the picker's maxNumOfEndpoints, else 1; "
			 "the picker never ranks more than its maxNumOfEndpoints)"),
	    IG_FLAG_BOOL("disable-endpoint-subset-filter", 0, &e.disable_subset,
			 "ignore the proxy's subset hint (envoy.lb.subset_hint): every endpoint "
			 "of the pool is a candidate"),
	    IG_FLAG_ENUM("default-body-mode", 0, &body_mode, body_modes, "MODE",
			 "the body modes of a stream whose first message has no protocol_config "
			 "(Envoy before 1.34): full-duplex (FULL_DUPLEX_STREAMED both ways, the "
			 "default), buffered (BUFFERED requests, no response body: GIE v0.2/v0.3) "
			 "or streamed; without the flag, USE_STREAMING=false means buffered, as in "
			 "GIE v0.3"),
	    IG_FLAG_BOOL(
		"flow-control", 0, &o.flow_control,
		"queue requests while the pool is saturated; also featureGates: "
		"[flowControl], or the deprecated ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER=true"),
	    IG_FLAG_SECTION("serving:"),
	    IG_FLAG_STR("bind", 0, &e.bind, "ADDR", "address of all three ports (default 0.0.0.0)"),
	    IG_FLAG_UINT("grpc-port", 0, &grpc_port, 1, 65535, "PORT",
			 "ext_proc gRPC port (default 9002; -grpcPort)"),
	    IG_FLAG_UINT(
		"grpc-health-port", 0, &health_port, 0, 65535, "PORT",
		"grpc.health.v1 port, plain text; 0: none (default 9003; -grpcHealthPort)"),
	    IG_FLAG_UINT("metrics-port", 0, &metrics_port, 0, 65535, "PORT",
			 "/metrics, /healthz and /pools over HTTP; 0: none (default 9090; "
			 "-metricsPort)"),
	    IG_FLAG_STR("admin-token", 0, &o.admin_token, "TOKEN",
			"the metrics port answers only requests with \"Authorization: Bearer "
			"TOKEN\" (all paths), else 401"),
	    IG_FLAG_STR("admin-token-file", 0, &o.admin_token_file, "PATH",
			"the same, with the token read from a file (a mounted Secret)"),
	    IG_FLAG_BOOL("secure-serving", 0, &e.secure,
			 "TLS on the gRPC port (the default; -secureServing)"),
	    IG_FLAG_BOOL("no-secure-serving", 0, &insecure,
			 "plain-text h2c on the gRPC port (-secureServing=false)"),
	    IG_FLAG_STR("cert-path", 0, &e.cert_path, "DIR",
			"tls.crt and tls.key for the gRPC port (default: a self-signed "
			"certificate made at start; -certPath)"),
	    IG_FLAG_BOOL("enable-cert-reload", 0, &e.cert_reload,
			 "read --cert-path's files again when they change (checked every second)"),
	    IG_FLAG_UINT("max-body-bytes", 0, &max_body, 1, 1ull << 32, "N",
			 "request body the picker reads, else 413 (default 16777216)"),
	    IG_FLAG_UINT("grpc-max-recv-msg-size", 0, &max_msg, 1024, 1ull << 32, "N",
			 "largest gRPC message taken (default: --max-body-bytes + 64 KiB)"),
	    IG_FLAG_STR("destination-endpoint-hint-key", 0, &e.dest_key, "NAME",
			"the header and metadata key of the pick (default "
			"x-gateway-destination-endpoint)"),
	    IG_FLAG_STR("destination-endpoint-hint-metadata-namespace", 0, &e.dest_ns, "NS",
			"the dynamic metadata namespace of the pick (default envoy.lb)"),
	    IG_FLAG_UINT("workers", 0, &o.workers, 1, 256, "N",
			 "worker threads (default: one per CPU)"),
	    IG_FLAG_MS("drain-timeout", 0, &o.drain_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "grace period for streams on SIGTERM (default 30s)"),
	    IG_FLAG_MS("client-send-timeout", 0, &e.send_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "a stream whose answers the proxy takes none of for this long is reset, "
		       "a connection that takes no bytes that long closed (default 60s)"),
	    IG_FLAG_MS("stream-idle-timeout", 0, &e.stream_idle_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "a stream with no frame either way for this long ends CANCELLED, as "
		       "Envoy's stream_idle_timeout (default 5m)"),
	    IG_FLAG_MS("message-timeout", 0, &e.message_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "silence allowed inside a partly received gRPC message, else the "
		       "stream ends CANCELLED (default 60s)"),
	    IG_FLAG_UINT("max-partial-message-bytes", 0, &e.max_partial_bytes, 1, 1ull << 40, "N",
			 "partly received gRPC messages held by all streams together; past it "
			 "a stream ends RESOURCE_EXHAUSTED (default 268435456, at least two "
			 "--grpc-max-recv-msg-size)"),
	    IG_FLAG_SECTION("logging and tracing:"),
	    IG_FLAG_ENUM("log-level", 0, &level, log_levels, "LEVEL",
			 "error, warn, info or debug (default info)"),
	    IG_FLAG_UINT("v", 0, &verbosity, 0, 10, "N",
			 "GIE's verbosity: 4 or more logs at debug level"),
	    IG_FLAG_ENUM("zap-encoder", 0, &encoder, encoders, "FORMAT",
			 "console (text lines, the default) or json (one object per line)"),
	    IG_FLAG_FN("zap-log-level", 0, zap_level, &level, "LEVEL",
		       "debug, info, error, panic or a number (any above 0: debug)"),
	    IG_FLAG_ENUM("zap-time-encoding", 0, &time_enc, time_encodings, "ENC",
			 "\"ts\" of JSON lines: epoch (default), millis, nano, iso8601, rfc3339, "
			 "rfc3339nano"),
	    IG_FLAG_BOOL("zap-devel", 0, &no_effect, NULL),
	    IG_FLAG_ENUM("zap-stacktrace-level", 0, &stack_level, zap_levels, "LEVEL", NULL),
	    IG_FLAG_BOOL(
		"tracing", 0, &tracing,
		"spans of each pick to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP JSON; "
		"OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER_ARG, 0.1 "
		"by default) when set (the default; --tracing=false: none)"),
	    IG_FLAG_SECTION("GIE and llm-d flags taken for compatibility (see the README):"),
	    IG_FLAG_STR("model-server-metrics-scheme", 0, &scheme, "http", "http only"),
	    IG_FLAG_STR("model-server-metrics-path", 0, &scrape_path, "/metrics", "/metrics only"),
	    IG_FLAG_UINT("model-server-metrics-port", 0, &scrape_port, 1, 65535, "PORT",
			 "the pool's first target port only (deprecated in GIE)"),
	    IG_FLAG_BOOL("model-server-metrics-https-insecure-skip-verify", 0, &no_effect, NULL),
	    IG_FLAG_FN("total-queued-requests-metric", 0, metric_name, (void *)queued, "NAME",
		       "vllm:num_requests_waiting only"),
	    IG_FLAG_FN("total-running-requests-metric", 0, metric_name, (void *)running, "NAME",
		       "vllm:num_requests_running only"),
	    IG_FLAG_FN("kv-cache-usage-percentage-metric", 0, metric_name, (void *)kv, "NAME",
		       "vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc (both are read)"),
	    IG_FLAG_FN("lora-info-metric", 0, metric_name, (void *)lora, "NAME",
		       "vllm:lora_requests_info only"),
	    IG_FLAG_FN("cache-info-metric", 0, metric_name, (void *)cache, "NAME",
		       "vllm:cache_config_info only"),
	    IG_FLAG_MS("refresh-prometheus-metrics-interval", 0, &prom_refresh_ms, IG_FLAG_BARE_MS,
		       "DUR", "taken and not needed: /metrics is computed when scraped"),
	    IG_FLAG_BOOL("no-tracing", 0, &no_tracing, NULL),
	    IG_FLAG_BOOL("health-checking", 0, &no_effect,
			 "taken; endpoints leave rotation after failed scrapes regardless"),
	    IG_FLAG_BOOL("enable-pprof", 0, &no_effect, "taken; there is no Go profiler to serve"),
	    IG_FLAG_BOOL("metrics-endpoint-auth", 0, &metrics_auth,
			 "=false is taken; =true needs --admin-token(-file): infergate checks no "
			 "Kubernetes tokens (TokenReview)"),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {
	    .prog = "infergate epp", .usage = usage_text, .footer = footer_text, .table = table};
	char **store = calloc((size_t)argc + 1, sizeof *store);
	int nargs = argc;
	char **args = store ? normalize(&nargs, argv, store, table) : NULL;
	if (!args) {
		free_store(store, argc);
		return 1;
	}
	int rc = ig_flags_parse(&fl, nargs, args);
	if (rc == IG_OK && e.pool_group && strcmp(e.pool_group, IG_POOL_GROUP_V1) != 0 &&
	    strcmp(e.pool_group, IG_POOL_GROUP_ALPHA) != 0)
		rc = ig_flags_error(&fl,
				    "--pool-group: \"%s\" is not an InferencePool group (%s or %s)",
				    e.pool_group, IG_POOL_GROUP_V1, IG_POOL_GROUP_ALPHA);
	if (rc == IG_OK && strcmp(scheme, "http") != 0)
		rc = ig_flags_error(&fl,
				    "--model-server-metrics-scheme: \"%s\" is not supported: "
				    "infergate scrapes model servers over http only",
				    scheme);
	if (rc == IG_OK && strcmp(scrape_path, "/metrics") != 0)
		rc = ig_flags_error(&fl,
				    "--model-server-metrics-path: \"%s\" is not supported: "
				    "infergate scrapes each endpoint's /metrics",
				    scrape_path);
	if (rc == IG_OK && e.leader_election && !o.kube)
		rc =
		    ig_flags_error(&fl, "--ha-enable-leader-election needs --kube (the Lease is an "
					"API object)");
	if (rc == IG_OK && config_text && o.picker_config)
		rc = ig_flags_error(&fl, "give --config-file or --config-text, not both");
	/* GIE v0.3's switch between its two servers, read as Go's ParseBool
	 * reads it; the flag wins. */
	const char *use_streaming = getenv("USE_STREAMING");
	if (rc == IG_OK && !ig_flags_given(&fl, &body_mode) && use_streaming && *use_streaming) {
		int on = go_bool(use_streaming);
		if (on < 0)
			rc = ig_flags_error(&fl,
					    "USE_STREAMING=%s: not a boolean (true: full-duplex, "
					    "false: buffered)",
					    use_streaming);
		else
			body_mode = on ? IG_EPP_BODY_FULL_DUPLEX : IG_EPP_BODY_BUFFERED;
	}
	if (rc == IG_OK && !selector != !target_ports)
		rc = ig_flags_error(&fl, "give --endpoint-selector and --endpoint-target-ports "
					 "together");
	if (rc == IG_OK && selector) {
		if (!e.pool_name)
			e.pool_name = "standalone";
		standalone = standalone_pool(&fl, e.pool_name, e.pool_ns, selector, target_ports);
		if (!standalone)
			rc = IG_ERROR;
	}
	if (rc == IG_OK && !e.pool_name)
		rc = ig_flags_error(&fl, "no pool: give -poolName NAME (or --pool-name), or "
					 "--endpoint-selector");
	if (rc == IG_OK && paths.n == 0 && !o.kube)
		rc = ig_flags_error(&fl, "no manifests: give -f PATH or --kube (see --help)");
	if (rc == IG_OK && paths.n > 0 && o.kube)
		rc = ig_flags_error(&fl, "give -f PATH or --kube, not both");
	if (rc == IG_OK && (o.admin_token || o.admin_token_file) && !metrics_port)
		rc = ig_flags_error(&fl, "--admin-token needs the metrics port (not 0)");
	if (rc == IG_OK && o.admin_token && o.admin_token_file)
		rc = ig_flags_error(&fl, "give --admin-token or --admin-token-file, not both");
	/* llm-d's picker checks the bearer token of a /metrics request with a
	 * TokenReview; this one does not, so asking for the protection
	 * without the token that gives it would leave the port open unsaid. */
	if (rc == IG_OK && metrics_auth && !o.admin_token && !o.admin_token_file)
		rc = ig_flags_error(&fl,
				    "--metrics-endpoint-auth: infergate epp checks no Kubernetes "
				    "tokens (TokenReview); protect the metrics port with "
				    "--admin-token or --admin-token-file, or pass "
				    "--metrics-endpoint-auth=false");
	if (rc != IG_OK) {
		ig_flag_list_free(&paths);
		free(args);
		free_store(store, argc);
		free(standalone);
		return ig_flags_report(&fl, rc);
	}
	/* As GIE: -v sets the level unless one is named. */
	ig_log_level = !ig_flags_given(&fl, &level) && verbosity >= 4 ? IG_LOG_DEBUG
								      : (enum ig_log_level)level;
	ig_log_format = encoder == 1 ? IG_LOG_JSON : IG_LOG_TEXT;
	ig_log_time = time_enc == 1   ? IG_LOG_TIME_MILLIS
		      : time_enc == 2 ? IG_LOG_TIME_NANOS
		      : time_enc >= 3 ? IG_LOG_TIME_RFC3339
				      : IG_LOG_TIME_EPOCH;
	if (scrape_port)
		ig_warn("--model-server-metrics-port %llu: infergate scrapes each endpoint on its "
			"target port",
			(unsigned long long)scrape_port);
	if (e.cert_reload && !e.cert_path)
		ig_warn("--enable-cert-reload without --cert-path: the self-signed certificate "
			"made at start stays");
	if (ig_flags_given(&fl, &no_effect) || ig_flags_given(&fl, &prom_refresh_ms))
		ig_info("flags taken for compatibility with nothing to do here were given (see "
			"--help)");
	char otlp_url[1024];
	if (tracing && !no_tracing)
		otel_from_env(&o, otlp_url, sizeof otlp_url);
	o.picker_text = config_text;
	o.extra_text = standalone;
	o.kube_opt.extra_text = standalone;
	char lease[300];
	if (e.leader_election) {
		snprintf(lease, sizeof lease, "epp-%s-%s", e.pool_ns, e.pool_name);
		o.kube_opt.leader_elect = true;
		o.kube_opt.lease_name = lease;
	}
	o.metrics_staleness_ms = staleness_ms;
	e.max_msg_bytes = max_msg;
	e.body_default = (enum ig_epp_body_default)body_mode;
	if (insecure)
		e.secure = false;
	e.grpc_port = (int)grpc_port;
	e.health_port = (int)health_port;
	e.max_body_bytes = max_body;
	o.bind = e.bind;
	o.paths = paths.v;
	o.npaths = paths.n;
	o.job = "epp";
	/* With --kube: the pool's namespace only, and only its kinds. */
	o.kube_opt.ns = e.pool_ns;
	o.kube_opt.picker_only = true;
	/* Its own pool only, as GIE's picker: the others in the manifests
	 * are neither scraped nor picked for. */
	o.pool_scope = (struct ig_pool_scope){e.pool_ns, e.pool_name, e.pool_group};
	char admin[300];
	if (metrics_port) {
		snprintf(admin, sizeof admin, "%s:%llu", e.bind, (unsigned long long)metrics_port);
		o.admin = admin;
	}
	rc = 1;
	o.frontend = ig_epp_frontend(&e);
	if (o.frontend)
		rc = ig_gateway_run(&o);
	ig_epp_frontend_free(o.frontend);
	ig_flag_list_free(&paths);
	free(args);
	free_store(store, argc);
	free(standalone);
	return rc;
}
