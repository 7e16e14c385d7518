/* `infergate epp`: the command line. It takes both spellings a picker
 * Deployment may carry: GIE v0.2's Go flags (-poolName, -grpcPort,
 * -secureServing=false, ...; Go's flag package reads -name and --name
 * alike) and llm-d's kebab-case ones (--pool-name, --grpc-port, ...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* GIE's Go flags: the camelCase name, the kebab-case one it maps to, and
 * whether it is a boolean (Go writes -flag=false). */
static const struct {
	const char *go, *kebab;
	bool boolean;
} go_flags[] = {
    {"poolName", "pool-name", false},
    {"poolNamespace", "pool-namespace", false},
    {"grpcPort", "grpc-port", false},
    {"grpcHealthPort", "grpc-health-port", false},
    {"metricsPort", "metrics-port", false},
    {"secureServing", "secure-serving", true},
    {"certPath", "cert-path", false},
    {"refreshMetricsInterval", "refresh-metrics-interval", false},
    {"configFile", "config-file", false},
    {"v", "v", false},
    {"zap-log-level", "log-level", false},
};

/* argv rewritten to what the table reads: -name and --name are one flag,
 * camelCase names become kebab-case, and a boolean's `=true`/`=false` its
 * on and off switches. Returns a malloc'd array of argc + 1 pointers into
 * argv and into `store` (room for argc rewritten words). */
static char **normalize(int argc, char **argv, char (*store)[128])
{
	char **out = calloc((size_t)argc + 1, sizeof *out);
	if (!out)
		return NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		out[i] = argv[i];
		if (i == 0 || a[0] != '-' || !a[1] || (a[1] == '-' && !a[2]))
			continue;
		const char *name = a[1] == '-' ? a + 2 : a + 1;
		if (name == a + 1 && name[1] == '\0' && name[0] != 'v')
			continue; /* -f, -h: the table's own short flags */
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *kebab = NULL;
		bool boolean = false;
		for (size_t k = 0; k < sizeof go_flags / sizeof go_flags[0]; k++) {
			if ((strlen(go_flags[k].go) == nlen &&
			     !strncmp(go_flags[k].go, name, nlen)) ||
			    (strlen(go_flags[k].kebab) == nlen &&
			     !strncmp(go_flags[k].kebab, name, nlen))) {
				kebab = go_flags[k].kebab;
				boolean = go_flags[k].boolean;
			}
		}
		if (!kebab) {
			if (a[1] != '-' && nlen > 1) { /* -workers 2: Go's single dash */
				snprintf(store[i], sizeof store[i], "-%s", a);
				out[i] = store[i];
			}
			continue;
		}
		if (boolean && eq) {
			bool off = !strcmp(eq + 1, "false") || !strcmp(eq + 1, "0") ||
				   !strcmp(eq + 1, "f") || !strcmp(eq + 1, "F") ||
				   !strcmp(eq + 1, "FALSE") || !strcmp(eq + 1, "False");
			snprintf(store[i], sizeof store[i], "--%s%s", off ? "no-" : "", kebab);
		} else {
			snprintf(store[i], sizeof store[i], "--%s%s", kebab, eq ? eq : "");
		}
		out[i] = store[i];
	}
	return out;
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
	    .endpoints = 1,
	};
	uint64_t grpc_port = 9002, health_port = 9003, metrics_port = 9090, verbosity = 0;
	unsigned long long max_body = 16u << 20;
	int level = (int)ig_log_level;
	bool insecure = false;
	struct ig_flag_list paths = {0};
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("the pool:"),
	    IG_FLAG_STR("pool-name", 0, &e.pool_name, "NAME",
			"the InferencePool to pick for (required; -poolName)"),
	    IG_FLAG_STR("pool-namespace", 0, &e.pool_ns, "NS",
			"its namespace (default default; -poolNamespace)"),
	    IG_FLAG_LIST("filename", 'f', &paths, "PATH",
			 "manifest file or directory (repeatable): the pool, its pods, "
			 "InferenceModels/Objectives/ModelRewrites"),
	    IG_FLAG_BOOL("kube", 0, &o.kube, "read them from the Kubernetes API instead"),
	    IG_FLAG_STR(
		"kubeconfig", 0, &o.kube_opt.kubeconfig, "PATH",
		"kubeconfig (default: $KUBECONFIG, the pod's service account, ~/.kube/config)"),
	    IG_FLAG_SECTION("the picker:"),
	    IG_FLAG_STR("config-file", 0, &o.picker_config, "FILE",
			"EndpointPickerConfig (default: one among the manifests, else --picker)"),
	    IG_FLAG_STR("picker", 0, &o.picker_preset, "NAME",
			"a built-in configuration: infergate (default), gie, llm-d, v0.2"),
	    IG_FLAG_MS("refresh-metrics-interval", 0, &o.scrape_interval_ms, IG_FLAG_BARE_MS, "DUR",
		       "model-server /metrics scrape period (default 50ms)"),
	    IG_FLAG_UINT("endpoints", 0, &e.endpoints, 1, 32, "N",
			 "endpoints named in x-gateway-destination-endpoint, the pick first and "
			 "fallbacks after it (default 1: plain Envoy reads one)"),
	    IG_FLAG_BOOL("flow-control", 0, &o.flow_control,
			 "queue requests while the pool is saturated"),
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
	    IG_FLAG_UINT("max-body-bytes", 0, &max_body, 1, 1ull << 32, "N",
			 "request body the picker reads, else 413 (default 16777216)"),
	    IG_FLAG_UINT("workers", 0, &o.workers, 1, 256, "N",
			 "worker threads (default: one per CPU)"),
	    IG_FLAG_MS("drain-timeout", 0, &o.drain_timeout_ms, IG_FLAG_BARE_MS, "DUR",
		       "grace period for streams on SIGTERM (default 30s)"),
	    IG_FLAG_SECTION("logging:"),
	    IG_FLAG_ENUM("log-level", 0, &level, log_levels, "LEVEL",
			 "error, warn, info or debug (default info)"),
	    IG_FLAG_UINT("v", 0, &verbosity, 0, 10, "N",
			 "GIE's verbosity: 4 or more logs at debug level"),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {
	    .prog = "infergate epp", .usage = usage_text, .footer = footer_text, .table = table};
	char(*store)[128] = calloc((size_t)argc + 1, sizeof *store);
	char **args = store ? normalize(argc, argv, store) : NULL;
	if (!args) {
		free(store);
		return 1;
	}
	int rc = ig_flags_parse(&fl, argc, args);
	if (rc == IG_OK && !e.pool_name)
		rc = ig_flags_error(&fl, "no pool: give -poolName NAME (or --pool-name)");
	if (rc == IG_OK && paths.n == 0 && !o.kube)
		rc = ig_flags_error(&fl, "no manifests: give -f PATH or --kube (see --help)");
	if (rc == IG_OK && paths.n > 0 && o.kube)
		rc = ig_flags_error(&fl, "give -f PATH or --kube, not both");
	if (rc == IG_OK && (o.admin_token || o.admin_token_file) && !metrics_port)
		rc = ig_flags_error(&fl, "--admin-token needs the metrics port (not 0)");
	if (rc == IG_OK && o.admin_token && o.admin_token_file)
		rc = ig_flags_error(&fl, "give --admin-token or --admin-token-file, not both");
	if (rc != IG_OK) {
		ig_flag_list_free(&paths);
		free(args);
		free(store);
		return ig_flags_report(&fl, rc);
	}
	ig_log_level = verbosity >= 4 ? IG_LOG_DEBUG : (enum ig_log_level)level;
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
	free(store);
	return rc;
}
