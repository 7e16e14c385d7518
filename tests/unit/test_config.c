/* Tests of the resource model: manifests load with Kubernetes defaults,
 * every validation rule reports its message at the right file:line, and
 * the lookups select what GIE would select. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"

/* The five seed manifests of examples/kgateway, in one multi-document text. */
static const char seed[] =
	"apiVersion: gateway.networking.k8s.io/v1\n" /* 1 */
	"kind: Gateway\n"
	"metadata:\n"
	"  name: inference-gateway\n"
	"spec:\n" /* 5 */
	"  gatewayClassName: kgateway\n"
	"  listeners:\n"
	"    - name: http\n"
	"      protocol: HTTP\n"
	"      port: 8080\n" /* 10 */
	"    - name: llm-gw\n"
	"      protocol: HTTP\n"
	"      port: 8081\n"
	"---\n"
	"apiVersion: gateway.networking.k8s.io/v1\n" /* 15 */
	"kind: HTTPRoute\n"
	"metadata:\n"
	"  name: llm-route\n"
	"spec:\n"
	"  parentRefs:\n" /* 20 */
	"  - group: gateway.networking.k8s.io\n"
	"    kind: Gateway\n"
	"    name: inference-gateway\n"
	"    sectionName: llm-gw\n"
	"  rules:\n" /* 25 */
	"  - backendRefs:\n"
	"    - group: inference.networking.x-k8s.io\n"
	"      kind: InferencePool\n"
	"      name: qwen-pool\n"
	"      port: 8000\n" /* 30 */
	"      weight: 1\n"
	"    matches:\n"
	"    - path:\n"
	"        type: PathPrefix\n"
	"        value: /\n" /* 35 */
	"    timeouts:\n"
	"      backendRequest: 24h\n"
	"      request: 24h\n"
	"---\n"
	"apiVersion: inference.networking.x-k8s.io/v1alpha2\n" /* 40 */
	"kind: InferencePool\n"
	"metadata:\n"
	"  name: qwen-pool\n"
	"spec:\n"
	"  targetPortNumber: 8000\n" /* 45 */
	"  selector:\n"
	"    app: qwen-pool\n"
	"  extensionRef:\n"
	"    name: qwen-pool-endpoint-picker\n"
	"---\n" /* 50 */
	"apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
	"kind: InferenceModel\n"
	"metadata:\n"
	"  name: inferencemodel-sample\n"
	"spec:\n" /* 55 */
	"  modelName: tweet-summary\n"
	"  criticality: Critical\n"
	"  poolRef:\n"
	"    name: qwen-pool\n"
	"  targetModels:\n" /* 60 */
	"  - name: tweet-summary-1\n"
	"    weight: 100\n"
	"---\n"
	"apiVersion: apps/v1\n"
	"kind: Deployment\n" /* 65 */
	"metadata:\n"
	"  name: qwen-pool\n"
	"spec:\n"
	"  replicas: 1\n"
	"  selector:\n" /* 70 */
	"    matchLabels:\n"
	"      app: qwen-pool\n"
	"  template:\n"
	"    metadata:\n"
	"      labels:\n" /* 75 */
	"        app: qwen-pool\n"
	"    spec:\n"
	"      containers:\n"
	"        - name: lora\n"
	"          image: \"vllm-cpu:v0.8.0\"\n" /* 80 */
	"          command: [\"python3\", \"-m\", \"vllm.entrypoints.openai.api_server\"]\n"
	"          args:\n"
	"          - \"--model\"\n"
	"          - \"Qwen/Qwen2.5-1.5B-Instruct\"\n"
	"          - \"--port\"\n"
	"          - \"8000\"\n"
	"          ports:\n"
	"            - containerPort: 8000\n"
	"              name: http\n";

static struct ig_config *load_ok(const char *text)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load_text("t.yaml", text, strlen(text), &cfg, &d);
	if (rc != 0)
		ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_non_null(cfg);
	ig_diags_free(&d);
	return cfg;
}

/* All diags of a load, formatted as `infergate check` prints them. */
static char *load_diags(const char *name, const char *text, int *rc)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	*rc = ig_config_load_text(name, text, strlen(text), &cfg, &d);
	ig_diags_print(&d, f);
	fclose(f);
	ig_diags_free(&d);
	if (*rc == 0)
		ig_config_free(cfg);
	else
		assert_null(cfg);
	return out;
}

static void test_seed_values(void **state)
{
	struct ig_config *c = load_ok(seed);
	assert_int_equal(c->ngateways, 1);
	assert_int_equal(c->nroutes, 1);
	assert_int_equal(c->npools, 1);
	assert_int_equal(c->nmodels, 1);
	assert_int_equal(c->ndeployments, 1);
	assert_int_equal(c->nskipped, 0);

	const struct ig_gateway *g = ig_config_find_gateway(c, "default", "inference-gateway");
	assert_ptr_equal(g, &c->gateways[0]);
	assert_string_equal(g->meta.ns, "default");
	assert_int_equal(g->meta.line, 1);
	assert_string_equal(g->class_name, "kgateway");
	assert_int_equal(g->nlisteners, 2);
	assert_string_equal(g->listeners[1].name, "llm-gw");
	assert_string_equal(g->listeners[1].protocol, "HTTP");
	assert_int_equal(g->listeners[1].port, 8081);
	assert_null(g->listeners[1].hostname);

	const struct ig_httproute *r = &c->routes[0];
	assert_int_equal(r->meta.line, 15);
	assert_int_equal(r->nparents, 1);
	assert_string_equal(r->parents[0].ns, "default");
	assert_string_equal(r->parents[0].section_name, "llm-gw");
	assert_int_equal(r->parents[0].port, 0);
	assert_int_equal(r->nrules, 1);
	assert_int_equal(r->rules[0].nmatches, 1);
	assert_int_equal(r->rules[0].matches[0].path_type, IG_PATH_PREFIX);
	assert_string_equal(r->rules[0].matches[0].path, "/");
	assert_null(r->rules[0].matches[0].method);
	const struct ig_backend_ref *b = &r->rules[0].backends[0];
	assert_int_equal(r->rules[0].nbackends, 1);
	assert_string_equal(b->group, "inference.networking.x-k8s.io");
	assert_string_equal(b->kind, "InferencePool");
	assert_string_equal(b->ns, "default");
	assert_string_equal(b->name, "qwen-pool");
	assert_int_equal(b->port, 8000);
	assert_int_equal(b->weight, 1);
	assert_int_equal(r->rules[0].timeout_request_ms, 86400000);
	assert_int_equal(r->rules[0].timeout_backend_ms, 86400000);

	const struct ig_pool *p = ig_config_find_pool(c, "default", "qwen-pool");
	assert_non_null(p);
	assert_false(p->v1);
	assert_int_equal(p->nselector, 1);
	assert_string_equal(p->selector[0].key, "app");
	assert_string_equal(p->selector[0].value, "qwen-pool");
	assert_int_equal(p->nports, 1);
	assert_int_equal(p->target_ports[0], 8000);
	assert_string_equal(p->epp_name, "qwen-pool-endpoint-picker");
	assert_string_equal(p->epp_kind, "Service");
	assert_int_equal(p->epp_port, 0);
	assert_int_equal(p->failure_mode, IG_FAIL_CLOSE);

	const struct ig_model *m = ig_config_find_model(c, p, "tweet-summary", 13);
	assert_ptr_equal(m, &c->models[0]);
	assert_null(ig_config_find_model(c, p, "tweet-summary-1", 15));
	assert_true(m->accepted);
	assert_int_equal(m->criticality, IG_CRIT_CRITICAL);
	assert_string_equal(m->pool_name, "qwen-pool");
	assert_string_equal(m->pool_group, "inference.networking.x-k8s.io");
	assert_int_equal(m->ntargets, 1);
	assert_string_equal(m->targets[0].name, "tweet-summary-1");
	assert_true(m->targets[0].has_weight);
	assert_int_equal(m->targets[0].weight, 100);

	const struct ig_deployment *d = &c->deployments[0];
	assert_string_equal(d->meta.name, "qwen-pool");
	assert_int_equal(d->replicas, 1);
	assert_int_equal(d->ntemplate_labels, 1);
	assert_string_equal(d->template_labels[0].value, "qwen-pool");
	assert_int_equal(d->ncontainers, 1);
	assert_string_equal(d->containers[0].name, "lora");
	assert_int_equal(d->containers[0].ncommand, 3);
	assert_string_equal(d->containers[0].command[2], "vllm.entrypoints.openai.api_server");
	assert_int_equal(d->containers[0].nargs, 4);
	assert_string_equal(d->containers[0].args[3], "8000");
	assert_int_equal(d->containers[0].nports, 1);
	assert_int_equal(d->containers[0].ports[0], 8000);
	/* Load order across kinds. */
	assert_true(g->meta.seq < r->meta.seq && r->meta.seq < p->meta.seq &&
		    p->meta.seq < m->meta.seq && m->meta.seq < d->meta.seq);
	ig_config_free(c);
}

/* The real files of examples/kgateway (tests run from the repository root). */
static void test_seed_directory(void **state)
{
	const char *paths[] = {"examples/kgateway"};
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load(paths, 1, &c, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(c->ngateways + c->nroutes + c->npools + c->nmodels + c->ndeployments, 5);
	assert_int_equal(c->ndeployments, 1);
	assert_int_equal(c->deployments[0].containers[0].nargs, 10);
	ig_config_free(c);
	ig_diags_free(&d);
}

static void test_route_defaults(void **state)
{
	struct ig_config *c = load_ok("apiVersion: gateway.networking.k8s.io/v1beta1\n"
				      "kind: HTTPRoute\n"
				      "metadata: {name: r1, namespace: apps}\n"
				      "spec:\n"
				      "  parentRefs: [{name: gw}]\n"
				      "---\n"
				      "apiVersion: gateway.networking.k8s.io/v1\n"
				      "kind: HTTPRoute\n"
				      "metadata: {name: r2, namespace: apps}\n"
				      "spec:\n"
				      "  rules:\n"
				      "  - matches: []\n"
				      "    backendRefs: [{name: svc, port: 80}]\n"
				      "  - matches:\n"
				      "    - headers: [{name: version, value: two}]\n"
				      "      queryParams: [{name: q, value: v, type: RegularExpression}]\n"
				      "      method: POST\n"
				      "    - path: {type: Exact}\n");
	assert_int_equal(c->nroutes, 2);
	const struct ig_httproute *r1 = &c->routes[0], *r2 = &c->routes[1];
	assert_string_equal(r1->parents[0].group, "gateway.networking.k8s.io");
	assert_string_equal(r1->parents[0].kind, "Gateway");
	assert_string_equal(r1->parents[0].ns, "apps");
	assert_null(r1->parents[0].section_name);
	assert_int_equal(r1->nrules, 1);
	assert_int_equal(r1->rules[0].nmatches, 1);
	assert_int_equal(r1->rules[0].matches[0].path_type, IG_PATH_PREFIX);
	assert_string_equal(r1->rules[0].matches[0].path, "/");
	assert_int_equal(r1->rules[0].nbackends, 0);
	assert_int_equal(r1->rules[0].timeout_request_ms, 0);

	assert_int_equal(r2->nparents, 0);
	assert_int_equal(r2->rules[0].nmatches, 1);
	assert_string_equal(r2->rules[0].matches[0].path, "/");
	const struct ig_backend_ref *b = &r2->rules[0].backends[0];
	assert_string_equal(b->group, "");
	assert_string_equal(b->kind, "Service");
	assert_string_equal(b->ns, "apps");
	assert_int_equal(b->weight, 1);
	const struct ig_route_match *m = &r2->rules[1].matches[0];
	assert_int_equal(r2->rules[1].nmatches, 2);
	assert_int_equal(m->path_type, IG_PATH_PREFIX);
	assert_string_equal(m->path, "/");
	assert_int_equal(m->nheaders, 1);
	assert_int_equal(m->headers[0].type, IG_MATCH_EXACT);
	assert_string_equal(m->headers[0].name, "version");
	assert_int_equal(m->nquery, 1);
	assert_int_equal(m->query[0].type, IG_MATCH_REGEX);
	assert_string_equal(m->method, "POST");
	assert_int_equal(r2->rules[1].matches[1].path_type, IG_PATH_EXACT);
	assert_string_equal(r2->rules[1].matches[1].path, "/");
	ig_config_free(c);
}

/* ---- one case per validation rule ------------------------------------------ */

struct bad_case {
	const char *name;
	const char *text;
	const char *want; /* a whole line of the printed diags */
	bool warning_only; /* the load succeeds */
};

#define GW "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n"
#define RT "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: rt\n"
#define PA "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  name: p\n"
#define P1 "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata:\n  name: p\n"
#define IM "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata:\n  name: m\n"
#define IO "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceObjective\nmetadata:\n  name: o\n"
/* Line 5 onwards: */
#define LST "spec:\n  gatewayClassName: c\n  listeners:\n"
#define RULE "spec:\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 80\n"
#define MATCH "spec:\n  rules:\n  - matches:\n"
#define PSPEC "spec:\n  targetPortNumber: 8000\n  selector: {app: x}\n  extensionRef:\n"
#define P1SPEC "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 8000}]\n"
#define MSPEC "spec:\n  modelName: m1\n  poolRef: {name: p}\n  targetModels:\n"

static const struct bad_case cases[] = {
	/* Gateway */
	{"gw_port_range", GW LST "  - name: a\n    protocol: HTTP\n    port: 0\n",
	 "g.yaml:10: spec.listeners[0].port: must be between 1 and 65535", false},
	{"gw_port_type", GW LST "  - name: a\n    protocol: HTTP\n    port: eighty\n",
	 "g.yaml:10: spec.listeners[0].port: must be an integer", false},
	{"gw_protocol_pattern", GW LST "  - name: a\n    protocol: HTTP_2\n    port: 80\n",
	 "g.yaml:9: spec.listeners[0].protocol: must be a name of up to 63 letters, digits and "
	 "'-' (HTTP, HTTPS, TLS, TCP, UDP), or a domain-prefixed name such as example.com/Custom",
	 false},
	{"gw_listener_unique",
	 GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
		"  - name: a\n    protocol: HTTP\n    port: 81\n",
	 "g.yaml:11: spec.listeners[1].name: listener name \"a\" is not unique (also spec.listeners[0])", false},
	{"gw_listeners_required", GW "spec:\n  gatewayClassName: c\n",
	 "g.yaml:5: spec.listeners: is required", false},
	{"gw_listeners_min", GW "spec:\n  gatewayClassName: c\n  listeners: []\n", "g.yaml:7: spec.listeners: must have at least 1 item", false},
	{"gw_class_required", GW "spec:\n  listeners: [{name: a, protocol: HTTP, port: 80}]\n",
	 "g.yaml:5: spec.gatewayClassName: is required", false},
	{"gw_hostname", GW LST "  - {name: a, protocol: HTTP, port: 80, hostname: Foo.com}\n",
	 "g.yaml:8: spec.listeners[0].hostname: must be a lowercase DNS name, optionally starting with \"*.\"", false},
	{"gw_listener_name_missing", GW LST "  - {protocol: HTTP, port: 80}\n",
	 "g.yaml:8: spec.listeners[0].name: is required", false},
	/* HTTPRoute */
	{"rt_weight_max", RT RULE "      weight: 2000000\n",
	 "r.yaml:10: spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000", false},
	{"rt_weight_negative", RT RULE "      weight: -1\n",
	 "r.yaml:10: spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000", false},
	{"rt_backend_port", RT "spec:\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 0\n",
	 "r.yaml:9: spec.rules[0].backendRefs[0].port: must be between 1 and 65535", false},
	{"rt_backend_name", RT "spec:\n  rules:\n  - backendRefs:\n    - port: 80\n",
	 "r.yaml:8: spec.rules[0].backendRefs[0].name: is required", false},
	{"rt_service_port", RT "spec:\n  rules:\n  - backendRefs:\n    - name: svc\n",
	 "r.yaml:8: spec.rules[0].backendRefs[0]: must have port for Service reference", false},
	{"rt_path_slash", RT MATCH "    - path:\n        value: v1/chat\n",
	 "r.yaml:9: spec.rules[0].matches[0].path.value: must be an absolute path starting with '/'", false},
	{"rt_path_dotdot", RT MATCH "    - path:\n        value: /a/../b\n",
	 "r.yaml:9: spec.rules[0].matches[0].path.value: must not contain '//', '/./', '/../', '%2f', '%2F' or '#'", false},
	{"rt_path_type", RT MATCH "    - path:\n        type: Prefix\n",
	 "r.yaml:9: spec.rules[0].matches[0].path.type: must be one of Exact, PathPrefix, RegularExpression", false},
	{"rt_header_type", RT MATCH "    - headers:\n      - {name: a, value: b, type: Prefix}\n",
	 "r.yaml:9: spec.rules[0].matches[0].headers[0].type: must be one of Exact, RegularExpression", false},
	{"rt_header_name", RT MATCH "    - headers:\n      - {name: \"a b\", value: b}\n",
	 "r.yaml:9: spec.rules[0].matches[0].headers[0].name: must be 1 to 256 token characters (letters, digits, !#$%&'*+-.^_`|~)", false},
	{"rt_header_value", RT MATCH "    - headers:\n      - {name: a}\n",
	 "r.yaml:9: spec.rules[0].matches[0].headers[0].value: is required", false},
	{"rt_method", RT MATCH "    - method: get\n",
	 "r.yaml:8: spec.rules[0].matches[0].method: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH", false},
	{"rt_timeout_syntax", RT RULE "    timeouts:\n      request: 1.5s\n",
	 "r.yaml:11: spec.rules[0].timeouts.request: must be a Gateway API duration: 1 to 4 parts of up to 5 digits with unit h, m, s or ms (e.g. 10s, 1h30m)", false},
	{"rt_timeout_order", RT RULE "    timeouts:\n      request: 10s\n      backendRequest: 1m\n",
	 "r.yaml:12: spec.rules[0].timeouts.backendRequest: backendRequest timeout cannot be longer than request timeout", false},
	{"rt_parent_name", RT "spec:\n  parentRefs:\n  - sectionName: http\n",
	 "r.yaml:7: spec.parentRefs[0].name: is required", false},
	{"rt_hostname", RT "spec:\n  hostnames:\n  - \"*\"\n",
	 "r.yaml:7: spec.hostnames[0]: must be a lowercase DNS name, optionally starting with \"*.\"", false},
	{"rt_rules_type", RT "spec:\n  rules: everything\n", "r.yaml:6: spec.rules: must be a list", false},
	{"rt_spec_type", RT "spec: hello\n", "r.yaml:5: spec: must be an object", false},
	{"rt_rule_names", RT "spec:\n  rules:\n  - name: a\n  - name: a\n",
	 "r.yaml:8: spec.rules[1].name: rule name \"a\" is not unique", false},
	/* InferencePool v1alpha2 */
	{"pool_port_required", PA "spec:\n  selector: {app: x}\n  extensionRef: {name: e}\n",
	 "p.yaml:5: spec.targetPortNumber: is required", false},
	{"pool_port_range", PA "spec:\n  targetPortNumber: 70000\n  selector: {app: x}\n  extensionRef: {name: e}\n",
	 "p.yaml:6: spec.targetPortNumber: must be between 1 and 65535", false},
	{"pool_port_quoted", PA "spec:\n  targetPortNumber: \"8000\"\n  selector: {app: x}\n  extensionRef: {name: e}\n",
	 "p.yaml:6: spec.targetPortNumber: must be an integer", false},
	{"pool_selector_required", PA "spec:\n  targetPortNumber: 8000\n  extensionRef: {name: e}\n",
	 "p.yaml:5: spec.selector: is required", false},
	{"pool_ext_required", PA "spec:\n  targetPortNumber: 8000\n  selector: {app: x}\n",
	 "p.yaml:5: spec.extensionRef: is required", false},
	{"pool_ext_name", PA PSPEC "    portNumber: 9002\n",
	 "p.yaml:8: spec.extensionRef.name: is required", false},
	{"pool_ext_port", PA PSPEC "    name: e\n    portNumber: 0\n",
	 "p.yaml:10: spec.extensionRef.portNumber: must be between 1 and 65535", false},
	{"pool_failure_mode", PA PSPEC "    name: e\n    failureMode: Open\n",
	 "p.yaml:10: spec.extensionRef.failureMode: must be one of FailOpen, FailClose", false},
	{"pool_ext_kind", PA PSPEC "    name: e\n    kind: 9Service\n",
	 "p.yaml:10: spec.extensionRef.kind: must be 1 to 63 letters, digits or '-', starting with a letter", false},
	{"pool_ext_group", PA PSPEC "    name: e\n    group: Foo_Bar\n",
	 "p.yaml:10: spec.extensionRef.group: must be empty or a lowercase DNS subdomain (e.g. inference.networking.k8s.io)", false},
	{"pool_label_key",
	 PA "spec:\n  targetPortNumber: 8000\n  selector:\n    \"-app\": x\n  extensionRef: {name: e}\n",
	 "p.yaml:8: spec.selector.-app: invalid label key: up to 63 letters, digits, '-', '_' or '.', optionally prefixed by a DNS subdomain and '/'", false},
	{"pool_label_value",
	 PA "spec:\n  targetPortNumber: 8000\n  selector:\n    app: \"x y\"\n  extensionRef: {name: e}\n",
	 "p.yaml:8: spec.selector.app: invalid label value \"x y\": up to 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit", false},
	/* InferencePool v1 */
	{"pool1_ports_min", P1 "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: []\n",
	 "p.yaml:7: spec.targetPorts: must have at least 1 item", false},
	{"pool1_ports_max",
	 P1 "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 1}, {number: 2}, "
	    "{number: 3}, {number: 4}, {number: 5}, {number: 6}, {number: 7}, {number: 8}, {number: 9}]\n",
	 "p.yaml:7: spec.targetPorts: must have at most 8 items", false},
	{"pool1_ports_unique",
	 P1 "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts:\n  - number: 8000\n  - number: 8000\n",
	 "p.yaml:9: spec.targetPorts: port number must be unique", false},
	{"pool1_port_number", P1 "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts:\n  - number: 65536\n",
	 "p.yaml:8: spec.targetPorts[0].number: must be between 1 and 65535", false},
	{"pool1_match_labels_min", P1 "spec:\n  selector:\n    matchLabels: {}\n  targetPorts: [{number: 1}]\n",
	 "p.yaml:7: spec.selector.matchLabels: must have between 1 and 64 labels", false},
	{"pool1_match_labels_required", P1 "spec:\n  selector: {}\n  targetPorts: [{number: 1}]\n",
	 "p.yaml:6: spec.selector.matchLabels: is required", false},
	{"pool1_epp_port", P1 P1SPEC "  endpointPickerRef:\n    name: epp\n",
	 "p.yaml:8: spec.endpointPickerRef: port is required when kind is 'Service' or unspecified (defaults to 'Service')", false},
	{"pool1_epp_port_number", P1 P1SPEC "  endpointPickerRef:\n    name: epp\n    port: {number: 0}\n",
	 "p.yaml:10: spec.endpointPickerRef.port.number: must be between 1 and 65535", false},
	{"pool1_failure_mode", P1 P1SPEC "  endpointPickerRef:\n    name: epp\n    port: {number: 9002}\n    failureMode: failopen\n",
	 "p.yaml:11: spec.endpointPickerRef.failureMode: must be one of FailOpen, FailClose", false},
	/* InferenceModel */
	{"model_name_required", IM "spec:\n  poolRef: {name: p}\n", "m.yaml:5: spec.modelName: is required", false},
	{"model_name_length", IM "spec:\n  poolRef: {name: p}\n  modelName: "
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	 "m.yaml:7: spec.modelName: must be at most 256 characters", false},
	{"model_criticality", IM "spec:\n  modelName: m1\n  criticality: High\n  poolRef: {name: p}\n",
	 "m.yaml:7: spec.criticality: must be one of Critical, Standard, Sheddable", false},
	{"model_pool_required", IM "spec:\n  modelName: m1\n", "m.yaml:5: spec.poolRef: is required", false},
	{"model_pool_name", IM "spec:\n  modelName: m1\n  poolRef:\n    kind: InferencePool\n",
	 "m.yaml:7: spec.poolRef.name: is required", false},
	{"model_targets_max",
	 IM MSPEC "  - {name: a}\n  - {name: a}\n  - {name: a}\n  - {name: a}\n  - {name: a}\n"
		  "  - {name: a}\n  - {name: a}\n  - {name: a}\n  - {name: a}\n  - {name: a}\n  - {name: a}\n",
	 "m.yaml:8: spec.targetModels: must have at most 10 items", false},
	{"model_weight_min", IM MSPEC "  - name: a\n    weight: 0\n",
	 "m.yaml:10: spec.targetModels[0].weight: must be between 1 and 1000000", false},
	{"model_weight_max", IM MSPEC "  - name: a\n    weight: 1000001\n",
	 "m.yaml:10: spec.targetModels[0].weight: must be between 1 and 1000000", false},
	{"model_weights_all_or_none", IM MSPEC "  - name: a\n    weight: 10\n  - name: b\n",
	 "m.yaml:8: spec.targetModels: Weights should be set for all models, or none of the models.", false},
	{"model_target_name", IM MSPEC "  - weight: 10\n", "m.yaml:9: spec.targetModels[0].name: is required", false},
	{"model_target_name_length", IM MSPEC "  - name: "
	 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
	 "m.yaml:9: spec.targetModels[0].name: must be at most 253 characters", false},
	/* InferenceObjective */
	{"objective_pool_required", IO "spec:\n  priority: 2\n", "o.yaml:5: spec.poolRef: is required", false},
	{"objective_priority_type", IO "spec:\n  priority: high\n  poolRef: {name: p}\n",
	 "o.yaml:6: spec.priority: must be an integer", false},
	/* metadata and documents */
	{"meta_name_required", "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {app: x}\n",
	 "x.yaml:3: metadata.name: is required", false},
	{"meta_name_invalid", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Pod_1\n",
	 "x.yaml:4: metadata.name: must be a lowercase RFC 1123 subdomain (letters, digits, '-' and '.', at most 253 characters)", false},
	{"meta_namespace", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: a.b\n",
	 "x.yaml:5: metadata.namespace: must be a lowercase RFC 1123 label (letters, digits and '-', at most 63 characters)", false},
	{"meta_required", "apiVersion: v1\nkind: Pod\n", "x.yaml:1: metadata: is required", false},
	{"meta_type", "apiVersion: v1\nkind: Pod\nmetadata: [a]\n", "x.yaml:3: metadata: must be an object", false},
	{"meta_labels_type", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {app: [x]}\n",
	 "x.yaml:5: metadata.labels: labels must be string: string pairs", false},
	{"meta_timestamp", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  creationTimestamp: yesterday\n",
	 "x.yaml:5: metadata.creationTimestamp: must be an RFC 3339 time (e.g. 2025-03-25T10:00:00Z)", false},
	/* A day the month lacks, an offset without minutes: not times. */
	{"meta_timestamp_day", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  creationTimestamp: \"2023-02-29T00:00:00Z\"\n",
	 "x.yaml:5: metadata.creationTimestamp: must be an RFC 3339 time (e.g. 2025-03-25T10:00:00Z)", false},
	{"meta_timestamp_offset", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  creationTimestamp: \"2024-01-01T00:00:00+05\"\n",
	 "x.yaml:5: metadata.creationTimestamp: must be an RFC 3339 time (e.g. 2025-03-25T10:00:00Z)", false},
	{"duplicate_object",
	 PA "spec:\n  targetPortNumber: 8000\n  selector: {app: x}\n  extensionRef: {name: e}\n"
	    "---\n" PA "spec:\n  targetPortNumber: 8001\n  selector: {app: x}\n  extensionRef: {name: e}\n",
	 "x.yaml:10: metadata.name: duplicate InferencePool \"default/p\": also defined at x.yaml:1", false},
	{"kind_required", "apiVersion: v1\nmetadata: {name: a}\n", "x.yaml:1: kind: is required", false},
	{"api_version_required", "kind: Pod\nmetadata: {name: a}\n", "x.yaml:1: apiVersion: is required", false},
	{"document_not_mapping", "- a\n- b\n",
	 "x.yaml:1: a document must be a Kubernetes object (a mapping with apiVersion and kind)", false},
	{"yaml_syntax", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n   bad: indentation\n",
	 "x.yaml:5: YAML syntax error: mapping values are not allowed in this context", false},
	{"yaml_syntax_later_document", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: [\n",
	 "x.yaml:6: YAML syntax error: while parsing a flow node did not find expected node content", false},
	{"deployment_replicas", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: -1\n",
	 "x.yaml:5: spec.replicas: must be between 0 and 2147483647", false},
	{"deployment_container_port",
	 "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
	 "      containers:\n      - name: c\n        ports:\n        - containerPort: 0\n",
	 "x.yaml:10: spec.template.spec.containers[0].ports[0].containerPort: must be between 1 and 65535", false},
	/* warnings */
	{"warn_pool_missing", RT "spec:\n  rules:\n  - backendRefs:\n    - group: inference.networking.x-k8s.io\n"
			      "      kind: InferencePool\n      name: nope\n",
	 "r.yaml:8: warning: spec.rules[0].backendRefs[0]: InferencePool \"default/nope\" not found in the configuration",
	 true},
	{"warn_gateway_missing", RT "spec:\n  parentRefs:\n  - name: gw\n    namespace: infra\n",
	 "r.yaml:7: warning: spec.parentRefs[0]: Gateway \"infra/gw\" not found in the configuration", true},
	{"warn_model_pool_missing", IM "spec:\n  modelName: m1\n  poolRef:\n    name: p\n",
	 "m.yaml:7: warning: spec.poolRef: InferencePool \"default/p\" not found in the configuration", true},
};

static void test_bad_case(void **state)
{
	const struct bad_case *c = *state;
	int rc;
	/* The file name is the case's first letter (g, r, p, m, o, x).yaml. */
	char name[16];
	snprintf(name, sizeof name, "%.*s", (int)(strchr(c->want, ':') - c->want), c->want);
	char *out = load_diags(name, c->text, &rc);
	char want[1024];
	snprintf(want, sizeof want, "%s\n", c->want);
	if (!strstr(out, want))
		fprintf(stderr, "want: %sgot:\n%s", want, out);
	assert_non_null(strstr(out, want));
	assert_int_equal(rc, c->warning_only ? 0 : -1);
	free(out);
}

/* One load reports every problem, not just the first. */
static void test_all_errors_collected(void **state)
{
	int rc;
	char *out = load_diags("r.yaml", RT RULE "      weight: 2000000\n"
						"    timeouts: {request: 1x}\n"
						"---\n" PA "spec: {}\n",
			       &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(out, "r.yaml:10: spec.rules[0].backendRefs[0].weight:"));
	assert_non_null(strstr(out, "r.yaml:11: spec.rules[0].timeouts.request:"));
	assert_non_null(strstr(out, "r.yaml:17: spec.targetPortNumber: is required"));
	assert_non_null(strstr(out, "r.yaml:17: spec.selector: is required"));
	assert_non_null(strstr(out, "r.yaml:17: spec.extensionRef: is required"));
	free(out);
}

/* Kinds we do not route and unknown apiVersions are skipped, not errors. */
static void test_upstream_multidoc(void **state)
{
	struct ig_config *c = load_ok(
		"kind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata:\n  name: pod-read\n"
		"rules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\", \"watch\", \"list\"]\n"
		"--- \n"
		"kind: ClusterRoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata:\n  name: b\n"
		"subjects:\n- kind: ServiceAccount\n  name: default\n  namespace: default\n"
		"roleRef:\n  kind: ClusterRole\n  name: pod-read\n"
		"---\n"
		"apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n"
		"  labels:\n  name: my-pool\nspec:\n  targetPortNumber: 8000\n  selector:\n    app: my-pool\n"
		"  extensionRef:\n    name: epp\n    portNumber: 9002\n    failureMode: FailOpen\n"
		"---\n"
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: epp\n  namespace: default\n"
		"  labels:\n    app: epp\nspec:\n  selector:\n    matchLabels:\n      app: epp\n"
		"  template:\n    metadata:\n      labels:\n        app: epp\n    spec:\n      containers:\n"
		"      - name: epp\n        args:\n        - -poolName\n        - \"my-pool\"\n"
		"        ports:\n        - containerPort: 9002\n        - name: metrics\n          containerPort: 9090\n"
		"---\n"
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: epp\nspec:\n  selector:\n    app: epp\n"
		"  ports:\n    - protocol: TCP\n      port: 9002\n      targetPort: 9002\n  type: ClusterIP\n"
		"---\n"
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
		"---\n"
		"# only a comment\n"
		"---\n"
		"apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: InferencePool\nmetadata: {name: old}\n"
		"---\n"
		"apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: old}\n");
	assert_int_equal(c->npools, 1);
	assert_int_equal(c->ndeployments, 1);
	/* ClusterRole, ClusterRoleBinding and the two old versions; the
	 * Service (issue 9: Service backends) and the ConfigMap (CAs of
	 * BackendTLSPolicies) are read. */
	assert_int_equal(c->nservices, 1);
	assert_int_equal(c->nconfigmaps, 1);
	assert_int_equal(c->nskipped, 4);
	const struct ig_pool *p = &c->pools[0];
	assert_int_equal(p->nselector, 1);
	assert_int_equal(p->meta.nlabels, 0);
	assert_int_equal(p->epp_port, 9002);
	assert_int_equal(p->failure_mode, IG_FAIL_OPEN);
	assert_int_equal(c->deployments[0].replicas, 1);
	assert_int_equal(c->deployments[0].containers[0].nports, 2);
	assert_int_equal(c->deployments[0].containers[0].ports[1], 9090);
	assert_int_equal(c->deployments[0].containers[0].ncommand, 0);
	assert_int_equal(c->deployments[0].containers[0].nargs, 2);
	ig_config_free(c);
}

static void test_pool_v1(void **state)
{
	struct ig_config *c = load_ok(
		"apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata:\n"
		"  name: vllm\n  namespace: llm\nspec:\n  selector:\n    matchLabels:\n"
		"      app: vllm\n      example.com/tier: gpu\n"
		"  targetPorts:\n  - number: 8000\n  - number: 8001\n"
		"  endpointPickerRef:\n    name: epp\n    port:\n      number: 9002\n"
		"---\n"
		"apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: nopicker}\n"
		"spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 80}]\n"
		"---\n"
		"apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: custom}\n"
		"spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 80}]\n"
		"  endpointPickerRef: {kind: Picker, group: example.com, name: p, failureMode: FailOpen}\n"
		"---\n"
		"apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceObjective\n"
		"metadata: {name: premium, namespace: llm}\nspec:\n  priority: -2\n  poolRef: {name: vllm}\n");
	const struct ig_pool *p = ig_config_find_pool(c, "llm", "vllm");
	assert_non_null(p);
	assert_null(ig_config_find_pool(c, "default", "vllm"));
	assert_true(p->v1);
	assert_int_equal(p->nselector, 2);
	assert_string_equal(p->selector[1].key, "example.com/tier");
	assert_int_equal(p->nports, 2);
	assert_int_equal(p->target_ports[1], 8001);
	assert_string_equal(p->epp_name, "epp");
	assert_string_equal(p->epp_kind, "Service");
	assert_int_equal(p->epp_port, 9002);
	assert_int_equal(p->failure_mode, IG_FAIL_CLOSE);
	const struct ig_pool *n = ig_config_find_pool(c, NULL, "nopicker");
	assert_non_null(n);
	assert_null(n->epp_name);
	const struct ig_pool *k = ig_config_find_pool(c, "default", "custom");
	assert_string_equal(k->epp_kind, "Picker");
	assert_int_equal(k->epp_port, 0);
	assert_int_equal(k->failure_mode, IG_FAIL_OPEN);
	const struct ig_objective *o = ig_config_find_objective(c, "llm", "premium-x", 7);
	assert_non_null(o);
	assert_true(o->has_priority);
	assert_int_equal(o->priority, -2);
	assert_null(o->pool_group); /* not written: any pool group */
	assert_null(ig_config_find_objective(c, "llm", "prem", 4));
	ig_config_free(c);
}

#define MODEL(name, ts, model, pool)                                                              \
	"---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata:\n" \
	"  name: " name "\n" ts "spec:\n  modelName: " model "\n  poolRef: {name: " pool "}\n"
#define POOL(name)                                                                                \
	"---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n"  \
	"  name: " name "\nspec:\n  targetPortNumber: 8000\n  selector: {app: " name "}\n"          \
	"  extensionRef: {name: epp}\n"

/* The hash maps that serve the per-request lookups answer exactly what the
 * linear scan does (the config's index detached): many models over pools
 * in two namespaces, names that are prefixes of others, duplicates of
 * which only the oldest is accepted, objectives sharing names across
 * namespaces, and names nobody defines. */
static void test_lookup_maps_match_scan(void **state)
{
	struct ig_buf b;
	ig_buf_init(&b, 1 << 24);
	for (int ns = 0; ns < 2; ns++)
		for (int p = 0; p < 3; p++)
			assert_int_equal(
			    ig_buf_printf(&b,
					  "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
					  "kind: InferencePool\nmetadata: {name: p%d, namespace: n%d}\n"
					  "spec:\n  targetPortNumber: 8000\n  selector: {app: a}\n"
					  "  extensionRef: {name: epp}\n",
					  p, ns),
			    0);
	for (int i = 0; i < 400; i++)
		assert_int_equal(
		    ig_buf_printf(&b,
				  "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				  "kind: InferenceModel\nmetadata: {name: m%d, namespace: n%d}\n"
				  "spec:\n  modelName: model-%d\n  poolRef: {name: p%d}\n",
				  i, i % 2, i % 150, i % 3),
		    0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(
		    ig_buf_printf(&b,
				  "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				  "kind: InferenceObjective\nmetadata: {name: o%d-%d, namespace: n%d}\n"
				  "spec:\n  priority: %d\n  poolRef: {name: p0}\n",
				  i % 120, i / 120, i % 2, i),
		    0);
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load_text("many.yaml", b.ptr, b.len, &c, &d);
	if (rc != 0)
		ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	ig_diags_free(&d);
	ig_buf_free(&b);
	assert_non_null(c->index);
	struct ig_config_index *index = c->index;
	size_t models = 0, objectives = 0;
	char name[32];
	for (int ns = 0; ns < 3; ns++)
		for (int p = 0; p < 4; p++) {
			char nsname[16], pname[16];
			snprintf(nsname, sizeof nsname, "n%d", ns);
			snprintf(pname, sizeof pname, "p%d", p);
			const struct ig_pool *pool = ig_config_find_pool(c, nsname, pname);
			struct ig_pool other = {.meta = {.ns = nsname, .name = pname}};
			if (!pool)
				pool = &other; /* a pool nobody's models name */
			for (int m = 0; m < 170; m++) {
				int len = snprintf(name, sizeof name, "model-%d", m);
				/* The name, and the name cut short by one. */
				for (size_t l = (size_t)len - 1; l <= (size_t)len; l++) {
					c->index = index;
					const struct ig_model *a = ig_config_find_model(c, pool, name, l);
					c->index = NULL;
					assert_ptr_equal(a, ig_config_find_model(c, pool, name, l));
					models += a != NULL;
				}
			}
			for (int o = 0; o < 130; o++) {
				int len = snprintf(name, sizeof name, "o%d-%d", o, o % 2);
				c->index = index;
				const struct ig_objective *a =
				    ig_config_find_objective(c, nsname, name, (size_t)len);
				c->index = NULL;
				assert_ptr_equal(a, ig_config_find_objective(c, nsname, name, (size_t)len));
				objectives += a != NULL;
			}
		}
	c->index = index;
	/* Every pool of every namespace has 150 / 6 * 2 models (names
	 * model-0..149 over 2 namespaces x 3 pools, each name twice in a
	 * namespace's pool but accepted once), found by their exact names;
	 * some names cut short (model-1 of model-10) find another model. */
	assert_true(models >= 150);
	assert_true(objectives > 0 && objectives < 130 * 12);
	/* No namespace means "default", on both sides of the lookup. */
	assert_null(ig_config_find_objective(c, NULL, "o1-1", 4));
	ig_config_free(c);
}

/* A small deterministic generator for the test below. */
static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

static const char *const pool_groups[] = {"", ", group: inference.networking.x-k8s.io",
					  ", group: inference.networking.k8s.io", ", kind: Other"};

/* The GIE lookups of every request (a pool's model mode, its objective by
 * name, its InferenceModelRewrite rule) answer through the index what the
 * scans answer: v1 and v1alpha2 pools in two namespaces, objectives and
 * rewrites whose poolRef names the pool with or without a group (right or
 * wrong) or another kind, rewrites with equal creation times, exact rules
 * naming a model twice, generic rules, and names nobody defines. */
static void test_gie_lookups_match_scan(void **state)
{
	struct ig_buf b;
	unsigned rnd = 7;
	ig_buf_init(&b, 1 << 24);
	for (int ns = 0; ns < 2; ns++)
		for (int p = 0; p < 4; p++)
			assert_int_equal(
			    ig_buf_printf(
				&b,
				p % 2
				    ? "---\napiVersion: inference.networking.k8s.io/v1\n"
				      "kind: InferencePool\nmetadata: {name: p%d, namespace: n%d}\n"
				      "spec: {selector: {matchLabels: {app: a}}, targetPorts: "
				      "[{number: 8000}]}\n"
				    : "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				      "kind: InferencePool\nmetadata: {name: p%d, namespace: n%d}\n"
				      "spec: {selector: {app: a}, targetPortNumber: 8000, "
				      "extensionRef: {name: e}}\n",
				p, ns),
			    0);
	/* InferenceModels for p0 of n0 only: the other v1alpha2 pools pass
	 * models through. */
	assert_int_equal(ig_buf_printf(&b,
				       "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				       "kind: InferenceModel\nmetadata: {name: im, namespace: n0}\n"
				       "spec: {modelName: m1, poolRef: {name: p0}}\n"),
			 0);
	for (int i = 0; i < 150; i++)
		assert_int_equal(
		    ig_buf_printf(
			&b,
			"---\napiVersion: inference.networking.x-k8s.io/v1alpha2\n"
			"kind: InferenceObjective\nmetadata: {name: o%d, namespace: n%d}\n"
			"spec: {priority: %d, poolRef: {name: p%u%s}}\n",
			i, i % 2, i, next_rand(&rnd) % 4,
			pool_groups[next_rand(&rnd) % 4]),
		    0);
	for (int i = 0; i < 80; i++) {
		unsigned year = next_rand(&rnd) % 6;
		assert_int_equal(
		    ig_buf_printf(
			&b,
			"---\napiVersion: llm-d.ai/v1alpha2\nkind: InferenceModelRewrite\n"
			"metadata: {name: w%d, namespace: n%u%s%u%s}\n"
			"spec:\n  poolRef: {name: p%u%s}\n  rules:\n",
			i, next_rand(&rnd) % 2, year ? ", creationTimestamp: \"202" : "", year,
			year ? "-01-01T00:00:00Z\"" : "", next_rand(&rnd) % 4,
			pool_groups[next_rand(&rnd) % 3]),
		    0);
		unsigned nrules = 1 + next_rand(&rnd) % 3;
		for (unsigned r = 0; r < nrules; r++) {
			unsigned nmatch = next_rand(&rnd) % 4; /* 0: a generic rule */
			assert_int_equal(
			    ig_buf_printf(&b, "  - targets: [{modelRewrite: t%d-%u}]\n", i, r), 0);
			if (nmatch)
				assert_int_equal(ig_buf_printf(&b, "    matches:\n"), 0);
			for (unsigned k = 0; k < nmatch; k++)
				assert_int_equal(ig_buf_printf(&b, "    - model: {value: m%u}\n",
							       next_rand(&rnd) % 20),
						 0);
		}
	}
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load_text("gie.yaml", b.ptr, b.len, &c, &d);
	if (rc != 0)
		ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	ig_diags_free(&d);
	ig_buf_free(&b);
	assert_non_null(c->index);
	struct ig_config_index *index = c->index;
	size_t exact = 0, generic = 0, objectives = 0, modes = 0;
	char name[32];
	for (int ns = 0; ns < 3; ns++)
		for (int p = 0; p < 5; p++) {
			char nsname[16], pname[16];
			snprintf(nsname, sizeof nsname, "n%d", ns);
			snprintf(pname, sizeof pname, "p%d", p);
			const struct ig_pool *pool = ig_config_find_pool(c, nsname, pname);
			struct ig_pool other = {.meta = {.ns = nsname, .name = pname},
						.group = "inference.networking.k8s.io"};
			if (!pool)
				pool = &other; /* not among the config's pools: scanned */
			c->index = index;
			enum ig_model_mode mode = ig_pool_model_mode(c, pool);
			c->index = NULL;
			assert_int_equal(mode, ig_pool_model_mode(c, pool));
			modes += mode == IG_MODELS_INFERENCE_MODEL;
			for (int m = 0; m < 22; m++) {
				int len = snprintf(name, sizeof name, "m%d", m);
				/* The name, the name cut short by one, and no model. */
				for (int l = len - 1; l <= len + 1; l++) {
					const char *model = l > len ? NULL : name;
					size_t ml = l > len ? 0 : (size_t)l;
					const struct ig_model_rewrite *wa = NULL, *wb = NULL;
					c->index = index;
					const struct ig_rewrite_rule *ra =
					    ig_config_find_rewrite(c, pool, model, ml, &wa);
					c->index = NULL;
					const struct ig_rewrite_rule *rb =
					    ig_config_find_rewrite(c, pool, model, ml, &wb);
					assert_ptr_equal(ra, rb);
					assert_ptr_equal(wa, wb);
					if (ra)
						ra->nmodels ? exact++ : generic++;
				}
			}
			for (int o = 0; o < 155; o++) {
				int len = snprintf(name, sizeof name, "o%d", o);
				c->index = index;
				const struct ig_objective *a =
				    ig_config_find_objective_for_pool(c, pool, name, (size_t)len);
				c->index = NULL;
				assert_ptr_equal(a, ig_config_find_objective_for_pool(c, pool, name,
										      (size_t)len));
				objectives += a != NULL;
			}
		}
	c->index = index;
	/* Every kind of answer came up, so the comparisons above compared
	 * something. */
	assert_int_equal(modes, 1);
	assert_true(exact > 0 && generic > 0 && objectives > 0);
	ig_config_free(c);
}

static void test_model_name_oldest_wins(void **state)
{
	const char *text = POOL("p") POOL("q")
		MODEL("none-first", "", "llama", "p")
		MODEL("newer", "  creationTimestamp: \"2025-01-02T00:00:00Z\"\n", "llama", "p")
		MODEL("older", "  creationTimestamp: \"2025-01-01T23:00:00-02:00\"\n", "llama", "p")
		MODEL("oldest", "  creationTimestamp: \"2025-01-01T10:00:00Z\"\n", "llama", "p")
		MODEL("other-pool", "", "llama", "q")
		MODEL("a", "", "qwen", "p") MODEL("b", "", "qwen", "p");
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("m.yaml", text, strlen(text), &c, &d), 0);
	assert_int_equal(c->nmodels, 7);
	/* 2025-01-01T23:00-02:00 is 2025-01-02T01:00Z: newer than "oldest". */
	assert_false(c->models[0].accepted);
	assert_false(c->models[1].accepted);
	assert_false(c->models[2].accepted);
	assert_true(c->models[3].accepted);
	assert_true(c->models[4].accepted);
	assert_true(c->models[5].accepted);
	assert_false(c->models[6].accepted);
	const struct ig_pool *p = ig_config_find_pool(c, "default", "p");
	assert_ptr_equal(ig_config_find_model(c, p, "llama", 5), &c->models[3]);
	assert_ptr_equal(ig_config_find_model(c, p, "qwen", 4), &c->models[5]);
	assert_ptr_equal(ig_config_find_model(c, ig_config_find_pool(c, "default", "q"), "llama", 5),
			 &c->models[4]);
	assert_int_equal(d.n, 4);
	for (size_t i = 0; i < d.n; i++)
		assert_true(d.items[i].warning);
	assert_string_equal(d.items[0].path, "spec.modelName");
	assert_int_equal(d.items[0].line, c->models[0].meta.line);
	char want[256];
	snprintf(want, sizeof want,
		 "modelName \"llama\" already in use by InferenceModel \"default/oldest\" (m.yaml:%d), which is older (ModelNameInUse)",
		 c->models[3].meta.line);
	assert_string_equal(d.items[0].msg, want);
	assert_non_null(strstr(d.items[3].msg, "\"default/a\""));
	ig_config_free(c);
	ig_diags_free(&d);
}

#define BBR_CM(name, managed, data)                                                                \
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " name "\n  labels:\n"                \
	"    inference.networking.k8s.io/bbr-managed: \"" managed "\"\ndata:\n" data "---\n"

/* Body-based routing's base models, from the ConfigMaps GIE's router reads,
 * by the index and by the scan of a config without one alike. */
static void test_base_models(void **state)
{
	const char *text = BBR_CM("qwen", "true",
				  "  baseModel: \" Qwen/Qwen3-32B \"\n"
				  "  adapters: |\n    - food-review-1\n    - \" spaced \"\n    -\n"
				  "    - ''\n    - shared\n")
	    BBR_CM("qwen-2", "true", "  baseModel: Qwen/Qwen3-32B\n  adapters: \"[more]\"\n")
		BBR_CM("llama", "true", "  baseModel: llama\n  adapters: |\n    - shared\n")
		    BBR_CM("no-adapters", "true", "  baseModel: solo\n")
			BBR_CM("unmanaged", "True", "  baseModel: other\n  adapters: '[x]'\n")
			    BBR_CM("no-base", "true", "  adapters: '[y]'\n") BBR_CM(
				"bad-list", "true", "  baseModel: bad\n  adapters: '{a: b}'\n")
				BBR_CM("nested", "true", "  baseModel: nest\n  adapters: '[[z]]'\n")
				    BBR_CM("newline", "true",
					   "  baseModel: \"a\\nb\"\n  adapters: '[w]'\n")
					BBR_CM("nul", "true",
					       "  baseModel: \"a\\0b\"\n  adapters: '[v]'\n")
					    BBR_CM("unicode", "true",
						   "  baseModel: \"base-u\\u00a0\"\n"
						   "  adapters: '[\"\\u3000nb\", \"\\0lead\", \"mid\\0x\"]'\n");
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("b.yaml", text, strlen(text), &c, &d), 0);
	assert_int_equal(d.n, 5); /* no-base, bad-list, nested, newline, nul */
	for (size_t i = 0; i < d.n; i++)
		assert_true(d.items[i].warning);
	assert_string_equal(d.items[0].path, "data.baseModel");
	assert_string_equal(d.items[1].path, "data.adapters");
	assert_string_equal(d.items[2].path, "data.adapters");
	assert_string_equal(d.items[3].path, "data.baseModel");
	assert_non_null(strstr(d.items[4].msg, "control character"));
	static const struct {
		const char *model, *base;
	} want[] = {
	    {"food-review-1", "Qwen/Qwen3-32B"},
	    {"spaced", "Qwen/Qwen3-32B"},
	    {"  spaced\t", "Qwen/Qwen3-32B"}, /* the request's model is trimmed too */
	    {"more", "Qwen/Qwen3-32B"},
	    {"Qwen/Qwen3-32B", "Qwen/Qwen3-32B"},
	    {"shared", "llama"}, /* two ConfigMaps list it: the later one's */
	    {"llama", "llama"},
	    {"solo", "solo"},
	    {"other", NULL}, /* label "True", not "true" */
	    {"x", NULL},
	    {"y", NULL},
	    {"bad", NULL},
	    {"nest", NULL},
	    {"z", NULL},
	    {"w", NULL},
	    {"v", NULL},
	    {"a", NULL},
	    /* Go's TrimSpace takes Unicode white space off too (U+00A0, U+3000). */
	    {"base-u", "base-u"},
	    {"nb", "base-u"},
	    {"\xe2\x80\x80nb", "base-u"},
	    /* An adapter with a NUL in it is skipped, not cut short. */
	    {"lead", NULL},
	    {"mid", NULL},
	    {"", NULL},
	    {"food-review", NULL},
	};
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
			const char *got =
			    ig_config_base_model(c, want[i].model, strlen(want[i].model));
			if (want[i].base)
				assert_string_equal(got, want[i].base);
			else
				assert_null(got);
		}
		/* The scan, as a config built without an index answers. */
		ig_config_index_free(c->index);
		c->index = NULL;
	}
	ig_config_free(c);
	ig_diags_free(&d);
}

static void test_pods(void **state)
{
	struct ig_config *c = load_ok(
		POOL("p")
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: ready, labels: {app: p, x: z}}\n"
		"status:\n  podIP: 10.0.0.1\n  conditions:\n  - {type: PodScheduled, status: \"True\"}\n"
		"  - {type: Ready, status: \"True\"}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: unready, labels: {app: p}}\n"
		"status:\n  podIP: 10.0.0.2\n  conditions:\n  - {type: Ready, status: \"False\"}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: noconds, labels: {app: p}}\n"
		"status:\n  podIPs: [{ip: 10.0.0.3}, {ip: fd00::3}]\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: noip, labels: {app: p}}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: deleting\n  labels: {app: p}\n"
		"  deletionTimestamp: \"2025-01-01T00:00:00Z\"\nstatus: {podIP: 10.0.0.5}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: other, labels: {app: q}}\n"
		"status: {podIP: 10.0.0.6}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: elsewhere, namespace: x, labels: {app: p}}\n"
		"status: {podIP: 10.0.0.7}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: noready, labels: {app: p}}\n"
		"status:\n  podIP: 10.0.0.8\n  conditions: [{type: Initialized, status: \"True\"}]\n");
	const struct ig_pool *p = ig_config_find_pool(c, "default", "p");
	static const bool want[] = {true, false, true, false, false, false, false, false};
	static const bool ready[] = {true, false, true, true, true, true, true, false};
	assert_int_equal(c->npods, 8);
	for (size_t i = 0; i < c->npods; i++) {
		assert_int_equal(ig_pool_selects(p, &c->pods[i]), want[i]);
		assert_int_equal(c->pods[i].ready, ready[i]);
	}
	assert_string_equal(c->pods[2].ip, "10.0.0.3");
	assert_null(c->pods[3].ip);
	assert_true(c->pods[4].deleting);
	assert_false(c->pods[0].deleting);

	struct ig_kv labels[] = {{"app", "p"}, {"sim", "1"}};
	for (int i = 0; i < 20; i++) /* enough to make the array grow */
		assert_int_equal(ig_config_add_pod(c, NULL, "sim", "127.0.0.1", labels, 2), 0);
	assert_int_equal(c->npods, 28);
	assert_true(ig_pool_selects(p, &c->pods[27]));
	assert_string_equal(c->pods[27].meta.labels[1].key, "sim");
	assert_false(ig_pool_selects(p, &c->pods[1]));
	assert_int_equal(ig_config_add_pod(c, "other", "sim", "127.0.0.1", labels, 1), 0);
	assert_false(ig_pool_selects(p, &c->pods[28]));
	ig_config_free(c);
}

static void test_labels_match(void **state)
{
	struct ig_kv sel[] = {{"app", "p"}, {"tier", "gpu"}};
	struct ig_kv l1[] = {{"tier", "gpu"}, {"x", "y"}, {"app", "p"}};
	struct ig_kv l2[] = {{"tier", "cpu"}, {"app", "p"}};
	assert_true(ig_labels_match(sel, 2, l1, 3));
	assert_false(ig_labels_match(sel, 2, l2, 2));
	assert_false(ig_labels_match(sel, 2, NULL, 0));
	assert_true(ig_labels_match(NULL, 0, l2, 2));
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_directory(void **state)
{
	char dir[] = "/tmp/ig_config_testXXXXXX", sub[64], path[600];
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof sub, "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(dir, "b.yaml", POOL("b"));
	write_file(dir, "a.yml", POOL("a"));
	write_file(sub, "c.json",
		   "{\"apiVersion\": \"inference.networking.x-k8s.io/v1alpha2\", \"kind\": \"InferencePool\","
		   " \"metadata\": {\"name\": \"c\"}, \"spec\": {\"targetPortNumber\": 8000,"
		   " \"selector\": {\"app\": \"c\"}, \"extensionRef\": {\"name\": \"e\"}}}");
	write_file(dir, "notes.txt", "not: [yaml\n");
	write_file(dir, ".hidden.yaml", "not: [yaml\n");
	write_file(dir, "z.yaml", POOL("a"));
	const char *paths[] = {dir};
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load(paths, 1, &c, &d), -1);
	/* Only z.yaml is wrong: a duplicate of a.yml, named with both places. */
	assert_int_equal(d.n, 1);
	snprintf(path, sizeof path, "%s/z.yaml", dir);
	assert_string_equal(d.items[0].file, path);
	assert_int_equal(d.items[0].line, 2);
	snprintf(path, sizeof path, "duplicate InferencePool \"default/a\": also defined at %s/a.yml:2",
		 dir);
	assert_string_equal(d.items[0].msg, path);
	ig_diags_free(&d);

	snprintf(path, sizeof path, "%s/z.yaml", dir);
	unlink(path);
	assert_int_equal(ig_config_load(paths, 1, &c, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(c->npools, 3);
	assert_string_equal(c->pools[0].meta.name, "a");
	assert_string_equal(c->pools[1].meta.name, "b");
	assert_string_equal(c->pools[2].meta.name, "c");
	snprintf(path, sizeof path, "%s/sub/c.json", dir);
	assert_string_equal(c->pools[2].meta.file, path);
	assert_int_equal(c->pools[2].meta.line, 1);
	ig_config_free(c);

	/* A file named explicitly is read whatever its extension; a missing one is an error. */
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	const char *one[] = {path, "/nonexistent/x.yaml"};
	assert_int_equal(ig_config_load(one, 2, &c, &d), -1);
	assert_int_equal(d.n, 2);
	assert_non_null(strstr(d.items[0].msg, "YAML syntax error"));
	assert_string_equal(d.items[1].file, "/nonexistent/x.yaml");
	assert_string_equal(d.items[1].msg, "cannot read: No such file or directory");
	ig_diags_free(&d);

	for (const char *n = "a.yml\0b.yaml\0notes.txt\0.hidden.yaml\0"; *n; n += strlen(n) + 1) {
		snprintf(path, sizeof path, "%s/%s", dir, n);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/c.json", sub);
	unlink(path);
	rmdir(sub);
	rmdir(dir);
}

/* Aliases may name a subtree many times over; the load stops with an
 * error instead of spending exponential time. */
static void test_alias_bomb(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fputs("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
	      "x: &h [",
	      f);
	for (int i = 0; i < 1000; i++)
		fputs(i ? ", {name: a, value: b}" : "{name: a, value: b}", f);
	fputs("]\ny: &m [", f);
	for (int i = 0; i < 1000; i++)
		fputs(i ? ", {headers: *h}" : "{headers: *h}", f);
	fputs("]\nz: &r {matches: *m}\nspec:\n  rules: [", f);
	for (int i = 0; i < 1000; i++)
		fputs(i ? ", *r" : "*r", f);
	fputs("]\n", f);
	fclose(f);
	int rc;
	char *out = load_diags("bomb.yaml", text, &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(out, "too many aliases"));
	free(out);
	free(text);
}

static void test_nesting_and_anchors(void **state)
{
	char *text = malloc(4096);
	int rc;
	memset(text, '[', 100);
	strcpy(text + 100, "\n");
	char *out = load_diags("deep.yaml", text, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "deep.yaml:1: nested more than 64 levels deep\n");
	free(out);
	/* 64 levels are fine for the pre-pass (the document is then just wrong). */
	memset(text, '[', 64);
	memset(text + 64, ']', 64);
	strcpy(text + 128, "\n");
	out = load_diags("deep.yaml", text, &rc);
	assert_non_null(strstr(out, "a document must be a Kubernetes object"));
	free(out);
	free(text);

	FILE *f = open_memstream(&text, &(size_t){0});
	fputs("a: [", f);
	for (int i = 0; i < 1001; i++)
		fprintf(f, "%s&a%d x", i ? ", " : "", i);
	fputs("]\n", f);
	fclose(f);
	out = load_diags("anchors.yaml", text, &rc);
	assert_string_equal(out, "anchors.yaml:1: more than 1000 anchors in one document\n");
	free(out);
	free(text);
}

/* Odd shapes are errors, never crashes. */
static void test_wrong_shapes(void **state)
{
	static const char *const texts[] = {
		"",
		"---\n---\n",
		"just a string\n",
		"apiVersion: [v1]\nkind: Pod\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {conditions: [1, 2], podIPs: [x]}\n",
		RT "spec:\n  parentRefs: [1]\n  hostnames: [[a]]\n  rules: [1, {matches: [1, {headers: [1]}], backendRefs: [x], timeouts: x}]\n",
		GW "spec:\n  gatewayClassName: [c]\n  listeners: [x, {name: [a]}]\n",
		PA "spec:\n  selector: [a]\n  targetPortNumber: {a: 1}\n  extensionRef: x\n",
		P1 "spec:\n  selector: {matchLabels: [x]}\n  targetPorts: [x, {number: x}]\n  endpointPickerRef: {port: 1}\n",
		IM "spec:\n  modelName: {a: b}\n  poolRef: x\n  targetModels: [x, {weight: x}]\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
		"      containers: [x, {command: [[a]], args: x, ports: [x]}]\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {? [a] : b}}\n",
		"\xff\xfe\x00" "bad",
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct ig_config *c = NULL;
		struct ig_diags d = {0};
		size_t len = i == sizeof texts / sizeof texts[0] - 1 ? 7 : strlen(texts[i]);
		int rc = ig_config_load_text("w.yaml", texts[i], len, &c, &d);
		/* The first three hold no objects at all; the others are wrong. */
		assert_int_equal(rc, i < 2 ? 0 : -1);
		assert_true(i < 2 ? d.n == 0 : d.n > 0);
		ig_diags_free(&d);
		if (rc == 0)
			ig_config_free(c);
	}
}

static int run_check(int argc, char **argv)
{
	/* ig_check_main prints; keep the test output readable. */
	fflush(stdout);
	fflush(stderr);
	return ig_check_main(argc, argv);
}

static void test_check_main(void **state)
{
	char *help[] = {"check", "--help", NULL};
	char *unknown[] = {"check", "--bogus", NULL};
	char *none[] = {"check", NULL};
	char *missing_arg[] = {"check", "-f", NULL};
	char *good[] = {"check", "-f", "examples/kgateway", NULL};
	char *good2[] = {"check", "--filename=examples/kgateway/gateway.yaml", "--filename",
			 "examples/kgateway/route.yaml", NULL};
	char *bad[] = {"check", "-f", "/nonexistent.yaml", NULL};
	assert_int_equal(run_check(2, help), 0);
	assert_int_equal(run_check(2, unknown), 2);
	assert_int_equal(run_check(1, none), 2);
	assert_int_equal(run_check(2, missing_arg), 2);
	assert_int_equal(run_check(3, good), 0);
	assert_int_equal(run_check(4, good2), 0);
	assert_int_equal(run_check(3, bad), 1);
}

int main(void)
{
	enum { NCASES = sizeof cases / sizeof cases[0] };
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_seed_values),
		cmocka_unit_test(test_base_models),
		cmocka_unit_test(test_seed_directory),
		cmocka_unit_test(test_route_defaults),
		cmocka_unit_test(test_all_errors_collected),
		cmocka_unit_test(test_upstream_multidoc),
		cmocka_unit_test(test_pool_v1),
		cmocka_unit_test(test_model_name_oldest_wins),
		cmocka_unit_test(test_lookup_maps_match_scan),
		cmocka_unit_test(test_gie_lookups_match_scan),
		cmocka_unit_test(test_pods),
		cmocka_unit_test(test_labels_match),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_nesting_and_anchors),
		cmocka_unit_test(test_wrong_shapes),
		cmocka_unit_test(test_check_main),
	};
	enum { NFIXED = sizeof fixed / sizeof fixed[0] };
	static struct CMUnitTest tests[NFIXED + NCASES];
	memcpy(tests, fixed, sizeof fixed);
	/* One named test per validation rule. */
	for (size_t i = 0; i < NCASES; i++)
		tests[NFIXED + i] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = test_bad_case,
			.initial_state = (void *)&cases[i],
		};
	return _cmocka_run_group_tests("config", tests, NFIXED + NCASES, NULL, NULL);
}
