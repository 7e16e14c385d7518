/* Unit tests for the pure parts of `demo`/`run`: the plan of simulators
 * worked out from manifests, their addresses, the Pods manifest (loaded
 * back with the real loader), the seed request, the JSON pretty-printer
 * and the blocking client's response parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "demo/certs.h"
#include "demo/child.h"
#include "demo/fetch.h"
#include "demo/plan.h"
#include "demo/pretty.h"
#include "http/tls.h"

static const char manifests[] =
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata: {name: qwen-pool}\n"
    "spec:\n"
    "  replicas: 2\n"
    "  selector: {matchLabels: {app: qwen-pool}}\n"
    "  template:\n"
    "    metadata: {labels: {app: qwen-pool, tier: \"true\"}}\n"
    "    spec:\n"
    "      containers:\n"
    "      - name: sidecar\n"
    "        args: [\"--verbose\"]\n"
    "      - name: lora\n"
    "        args: [\"--model\", \"Qwen/Qwen2.5-1.5B-Instruct\", \"--port\", \"8000\",\n"
    "               \"--lora-modules\", '{\"name\": \"tweet-summary-0\", \"path\": \"x\"}',\n"
    "               'tweet-summary-1=/p']\n"
    "---\n"
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata: {name: unrelated}\n"
    "spec:\n"
    "  replicas: 3\n"
    "  selector: {matchLabels: {app: other}}\n"
    "  template:\n"
    "    metadata: {labels: {app: other}}\n"
    "    spec: {containers: [{name: web, args: [\"--model\", \"m\"]}]}\n"
    "---\n"
    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
    "kind: InferencePool\n"
    "metadata: {name: qwen-pool}\n"
    "spec:\n"
    "  targetPortNumber: 8000\n"
    "  selector: {app: qwen-pool}\n"
    "  extensionRef: {name: epp}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec:\n"
    "  gatewayClassName: x\n"
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: 8080}\n"
    "  - {name: other, protocol: HTTP, port: 9090}\n";

static const char route_yaml[] =
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n"
    "metadata: {name: r}\n"
    "spec:\n"
    "  parentRefs: [{name: gw, sectionName: other}]\n"
    "  rules: [{backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool,"
    " name: qwen-pool}]}]\n";

static struct ig_config *load(const char *text)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load_text("test.yaml", text, strlen(text), &cfg, &d);

	if (rc)
		ig_diags_print(&d, stderr);
	ig_diags_free(&d);
	assert_int_equal(rc, 0);
	return cfg;
}

static struct ig_config *load_with_route(void)
{
	size_t n = strlen(manifests) + strlen(route_yaml) + 1;
	char *text = malloc(n);
	struct ig_config *cfg;

	snprintf(text, n, "%s%s", manifests, route_yaml);
	cfg = load(text);
	free(text);
	return cfg;
}

static void test_plan_selected_deployments(void **state)
{
	struct ig_config *cfg = load(manifests);
	struct ig_demo_plan plan;
	char err[128];

	assert_int_equal(ig_demo_plan_build(cfg, 0, &plan, err, sizeof(err)), 0);
	/* Only the Deployment the pool selects, with its own replica count. */
	assert_int_equal(plan.nsims, 2);
	assert_string_equal(plan.sims[0].name, "qwen-pool-0");
	assert_string_equal(plan.sims[1].name, "qwen-pool-1");
	assert_int_equal(plan.sims[0].port, 8000);
	/* The model server, not the sidecar listed first. */
	assert_string_equal(plan.sims[0].ctr->name, "lora");
	ig_demo_plan_free(&plan);

	assert_int_equal(ig_demo_plan_build(cfg, 3, &plan, err, sizeof(err)), 0);
	assert_int_equal(plan.nsims, 3);
	assert_string_equal(plan.sims[2].name, "qwen-pool-2");
	ig_demo_plan_free(&plan);
	ig_config_free(cfg);
}

static bool taken_list(const char *ip, int port, void *ud)
{
	for (const char *const *t = ud; *t; t++)
		if (!strcmp(*t, ip))
			return true;
	return false;
}

static void test_assign_addrs(void **state)
{
	struct ig_demo_sim sims[3] = {0};
	struct ig_demo_plan plan = {sims, 3};
	const char *taken[] = {"127.0.1.2", NULL};

	assert_int_equal(ig_demo_assign_addrs(&plan, 0x7f000100, taken_list, taken), 0);
	assert_string_equal(sims[0].ip, "127.0.1.1");
	assert_string_equal(sims[1].ip, "127.0.1.3");
	assert_string_equal(sims[2].ip, "127.0.1.4");

	/* .255 and .0 are never handed out. */
	assert_int_equal(ig_demo_assign_addrs(&plan, 0x7f0001fc, NULL, NULL), 0);
	assert_string_equal(sims[0].ip, "127.0.1.253");
	assert_string_equal(sims[1].ip, "127.0.1.254");
	assert_string_equal(sims[2].ip, "127.0.2.1");

	/* The addresses must stay in 127.0.0.0/8. */
	assert_int_equal(ig_demo_assign_addrs(&plan, 0x7ffffffc, NULL, NULL), -1);
}

static void test_arg_value(void **state)
{
	char *args[] = {"--port", "8000", "--model", "a", "--port=9000", "--model", "b", "--x"};
	char *dangling[] = {"--model"};

	assert_string_equal(ig_demo_arg_value(args, 8, "--model"), "b");
	assert_string_equal(ig_demo_arg_value(args, 8, "--port"), "9000");
	assert_null(ig_demo_arg_value(args, 8, "--host"));
	assert_null(ig_demo_arg_value(dangling, 1, "--model"));
	/* A flag that only shares a prefix is another flag. */
	assert_null(ig_demo_arg_value(args, 8, "--mod"));
}

static void test_adapter_names(void **state)
{
	char *args[] = {"--lora-modules",
			"{\"path\": \"p\", \"name\": \"a\\u0031\"}",
			"b=/x",
			"--max-loras",
			"4",
			"--lora-modules=c",
			"plain"};
	struct ig_buf out = {0};

	assert_int_equal(ig_demo_adapter_names(args, 7, &out), 0);
	assert_string_equal(ig_buf_cstr(&out), "a1, b, c, plain");
	ig_buf_free(&out);

	char *none[] = {"--model", "m"};
	assert_int_equal(ig_demo_adapter_names(none, 2, &out), 0);
	assert_int_equal(out.len, 0);
	ig_buf_free(&out);
}

static void test_pods_yaml_loads_back(void **state)
{
	struct ig_config *cfg = load(manifests), *pods;
	struct ig_demo_plan plan;
	struct ig_buf yaml = {0};
	char err[128];

	assert_int_equal(ig_demo_plan_build(cfg, 0, &plan, err, sizeof(err)), 0);
	assert_int_equal(ig_demo_assign_addrs(&plan, 0x7f000100, NULL, NULL), 0);
	assert_int_equal(ig_demo_pods_yaml(&plan, &yaml), 0);
	pods = load(ig_buf_cstr(&yaml));
	assert_int_equal(pods->npods, 2);
	assert_string_equal(pods->pods[1].meta.name, "qwen-pool-1");
	assert_string_equal(pods->pods[1].meta.ns, "default");
	assert_string_equal(pods->pods[1].ip, "127.0.1.2");
	assert_true(pods->pods[1].ready);
	assert_int_equal(pods->pods[0].meta.nlabels, 2);
	/* A label value that YAML would read as a boolean stays a string. */
	assert_string_equal(pods->pods[0].meta.labels[1].value, "true");
	assert_true(ig_pool_selects(&cfg->pools[0], &pods->pods[0]));
	ig_config_free(pods);
	ig_buf_free(&yaml);
	ig_demo_plan_free(&plan);
	ig_config_free(cfg);
}

static void test_seed_listener(void **state)
{
	struct ig_config *cfg = load(manifests);
	const struct ig_gateway *g;
	const struct ig_listener *l;

	/* No llm-gw and no route: nothing to send the seed request to. */
	assert_int_equal(ig_demo_seed_listener(cfg, &g, &l), -1);
	ig_config_free(cfg);

	cfg = load_with_route();
	assert_int_equal(ig_demo_seed_listener(cfg, &g, &l), 0);
	assert_string_equal(g->meta.name, "gw");
	assert_string_equal(l->name, "other");
	ig_config_free(cfg);

	cfg = load("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
		   "metadata: {name: g2}\nspec:\n  gatewayClassName: x\n  listeners:\n"
		   "  - {name: http, protocol: HTTP, port: 8080}\n"
		   "  - {name: llm-gw, protocol: HTTP, port: 8081}\n");
	assert_int_equal(ig_demo_seed_listener(cfg, &g, &l), 0);
	assert_int_equal(l->port, 8081);
	ig_config_free(cfg);
}

static void test_seed_request(void **state)
{
	struct ig_config *cfg = load(manifests);
	struct ig_buf body = {0}, curl = {0};

	assert_string_equal(ig_demo_seed_model(cfg), "tweet-summary");
	assert_int_equal(ig_demo_seed_body("tweet-summary", &body), 0);
	assert_string_equal(ig_buf_cstr(&body),
			    "{\"model\": \"tweet-summary\", \"prompt\": \"Write as if you were a "
			    "critic: San Francisco\", \"max_tokens\": 100, \"temperature\": 0}");
	assert_int_equal(ig_demo_curl_line("127.0.0.1", 8081, NULL, "{\"p\": \"it's\"}", &curl), 0);
	assert_string_equal(ig_buf_cstr(&curl),
			    "curl http://127.0.0.1:8081/v1/completions -H 'Content-Type: "
			    "application/json' -d '{\"p\": \"it'\\''s\"}'");
	ig_buf_free(&body);
	ig_buf_free(&curl);
	ig_config_free(cfg);

	cfg = load("apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
		   "metadata: {name: m}\nspec: {modelName: food-review, poolRef: {name: p}}\n");
	assert_string_equal(ig_demo_seed_model(cfg), "food-review");
	ig_config_free(cfg);
}

static void assert_pretty(const char *in, const char *want)
{
	struct ig_json_value v;
	struct ig_buf out = {0};

	assert_int_equal(ig_json_parse(in, strlen(in), &v), 0);
	assert_int_equal(ig_demo_json_pretty(v, &out), 0);
	assert_string_equal(ig_buf_cstr(&out), want);
	ig_buf_free(&out);
}

static void test_pretty(void **state)
{
	assert_pretty("{\"z\":1,\"a\":[true,null,{}],\"e\":[],\"s\":\"x\\\"\\u00e9\"}",
		      "{\n"
		      "  \"z\": 1,\n"
		      "  \"a\": [\n"
		      "    true,\n"
		      "    null,\n"
		      "    {}\n"
		      "  ],\n"
		      "  \"e\": [],\n"
		      "  \"s\": \"x\\\"\\u00e9\"\n"
		      "}");
	assert_pretty(" 1.5e3 ", "1.5e3");
	assert_pretty("[[1]]", "[\n  [\n    1\n  ]\n]");
}

static int parse(const char *s, bool eof, const char *method, struct ig_demo_response *res)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, s, len);
	rc = ig_demo_response_parse(copy, len, eof, method, res);
	free(copy);
	return rc;
}

static void test_response_parse(void **state)
{
	struct ig_demo_response res = {0};
	const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

	assert_int_equal(parse(cl, false, "POST", &res), 1);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.reason, "OK");
	assert_string_equal(ig_buf_cstr(&res.body), "hello");

	/* Not there yet; and a close before the end is an error. */
	assert_int_equal(
	    parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", false, "GET", &res), 0);
	assert_int_equal(
	    parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true, "GET", &res), -1);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-", false, "GET", &res), 0);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-", true, "GET", &res), -1);

	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			       false, "GET", &res),
			 1);
	assert_string_equal(ig_buf_cstr(&res.body), "abcde");
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
			       false, "GET", &res),
			 0);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
			       "GET", &res),
			 -1);

	/* Without framing the body runs until the peer closes. */
	assert_int_equal(parse("HTTP/1.0 404 Not Found\r\n\r\nnope", false, "GET", &res), 0);
	assert_int_equal(parse("HTTP/1.0 404 Not Found\r\n\r\nnope", true, "GET", &res), 1);
	assert_int_equal(res.status, 404);
	assert_int_equal(res.minor_version, 0);
	assert_string_equal(ig_buf_cstr(&res.body), "nope");

	/* Interim responses are skipped; HEAD has no body. */
	assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
			       "Content-Length: 2\r\n\r\nok",
			       false, "POST", &res),
			 1);
	assert_int_equal(res.status, 201);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false, "HEAD", &res),
			 1);
	assert_int_equal(res.body.len, 0);
	assert_int_equal(parse("garbage\r\n\r\n", false, "GET", &res), -1);
	ig_demo_response_free(&res);
}

static char *tail_of(const char *log_text, int n)
{
	struct ig_demo_child c = {.name = "sim x"};
	char tmpl[] = "/tmp/test_demo_tail_XXXXXX";
	int fd = mkstemp(tmpl);
	FILE *out = tmpfile();
	char *text = calloc(1, 4096);

	assert_true(fd >= 0 && out && text);
	assert_int_equal(write(fd, log_text, strlen(log_text)), (ssize_t)strlen(log_text));
	close(fd);
	snprintf(c.log, sizeof(c.log), "%s", tmpl);
	ig_demo_child_tail(&c, n, out);
	rewind(out);
	fread(text, 1, 4095, out);
	fclose(out);
	unlink(tmpl);
	return text;
}

static void test_child_log_tail(void **state)
{
	char log[512] = "", *t;

	for (int i = 1; i <= 25; i++)
		snprintf(log + strlen(log), sizeof(log) - strlen(log), "line %d\n", i);
	t = tail_of(log, 20);
	/* Exactly the last 20 lines, between a header naming the child and
	 * a closing rule. */
	assert_non_null(strstr(t, "--- last lines of sim x ("));
	assert_null(strstr(t, "line 5\n"));
	assert_non_null(strstr(t, ") ---\nline 6\n"));
	assert_non_null(strstr(t, "line 25\n---\n"));
	free(t);

	/* A last line without a newline still ends its line. */
	t = tail_of("a\nb\nc", 2);
	assert_non_null(strstr(t, ") ---\nb\nc\n---\n"));
	free(t);

	t = tail_of("", 20);
	assert_non_null(strstr(t, "--- sim x wrote nothing ("));
	free(t);
}

static const char v1_yaml[] =
    "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"
    "metadata: {name: qwen-pool}\n"
    "spec:\n  selector: {matchLabels: {app: qwen}}\n  targetPorts: [{number: 8000}]\n"
    "  endpointPickerRef: {name: epp, port: {number: 9002}}\n"
    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModelRewrite\n"
    "metadata: {name: rw}\n"
    "spec:\n  poolRef: {group: inference.networking.k8s.io, kind: InferencePool, name: qwen-pool}\n"
    "  rules:\n  - matches: [{model: {type: Exact, value: summarize}}]\n"
    "    targets: [{modelRewrite: summarize-1, weight: 100}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec:\n  gatewayClassName: infergate\n  listeners:\n"
    "  - {name: llm-gw, protocol: HTTP, port: 8081}\n"
    "  - name: secure\n    protocol: HTTPS\n    port: 8443\n    hostname: llm.example.com\n"
    "    tls: {certificateRefs: [{name: gw-tls}]}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: r}\n"
    "spec:\n  parentRefs: [{name: gw}]\n  rules:\n"
    "  - matches:\n    - headers: [{name: X-Gateway-Model-Name, value: summarize}]\n"
    "    - headers: [{name: X-Gateway-Model-Name, value: Qwen/Qwen2.5-1.5B}]\n"
    "    - headers: [{name: X-Gateway-Model-Name, value: summarize}]\n"
    "    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, "
    "name: qwen-pool}]\n";

/* GIE v1 manifests: no InferenceModel, so the seed model comes from the
 * rewrite; the tour takes the other body-routed models once each; the
 * HTTPS listener's missing Secret is made, loads back as a usable
 * kubernetes.io/tls Secret, and OpenSSL accepts its key pair. */
static void test_v1_seed_tour_and_tls_secret(void **state)
{
	struct ig_config *cfg = load(v1_yaml);
	const char *tour[8];
	const struct ig_gateway *g;
	const struct ig_listener *l;
	struct ig_buf yaml = {0}, ca = {0};
	char err[256];

	assert_string_equal(ig_demo_seed_model(cfg), "summarize");
	assert_int_equal(ig_demo_tour_models(cfg, "summarize", tour, 8), 1);
	assert_string_equal(tour[0], "Qwen/Qwen2.5-1.5B");
	assert_int_equal(ig_demo_https_listener(cfg, &g, &l), 0);
	assert_string_equal(l->name, "secure");
	assert_int_equal(l->tls.certs[0].status, IG_REF_NOT_FOUND);

	assert_int_equal(ig_demo_tls_secrets(cfg, "127.0.0.1", &yaml, &ca, err, sizeof err), 1);
	assert_non_null(strstr(ca.ptr, "-----BEGIN CERTIFICATE-----"));
	ig_config_free(cfg);

	struct ig_buf all = {0};
	ig_buf_printf(&all, "%s---\n%.*s", v1_yaml, (int)yaml.len, yaml.ptr);
	cfg = load(all.ptr);
	assert_int_equal(ig_demo_https_listener(cfg, &g, &l), 0);
	const struct ig_cert_ref *ref = &l->tls.certs[0];
	assert_int_equal(ref->status, IG_REF_OK);
	const struct ig_secret_item *crt = ig_secret_get(ref->secret, "tls.crt");
	const struct ig_secret_item *key = ig_secret_get(ref->secret, "tls.key");
	assert_non_null(crt);
	assert_non_null(key);
	struct ig_tls_cert tc = {.hostname = l->hostname,
				 .cert_pem = (const char *)crt->bytes,
				 .cert_len = crt->len,
				 .key_pem = (const char *)key->bytes,
				 .key_len = key->len};
	struct ig_tls_ctx *ctx = ig_tls_ctx_new(&tc, 1, err, sizeof err);
	if (!ctx)
		fail_msg("%s", err);
	ig_tls_ctx_unref(ctx);
	/* Nothing is missing any more: nothing is made. */
	struct ig_buf more = {0};
	assert_int_equal(ig_demo_tls_secrets(cfg, "127.0.0.1", &more, &ca, err, sizeof err), 0);
	assert_int_equal(more.len, 0);
	ig_config_free(cfg);
	ig_buf_free(&all);
	ig_buf_free(&yaml);
	ig_buf_free(&ca);
	ig_buf_free(&more);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_selected_deployments),
	    cmocka_unit_test(test_assign_addrs),
	    cmocka_unit_test(test_arg_value),
	    cmocka_unit_test(test_adapter_names),
	    cmocka_unit_test(test_pods_yaml_loads_back),
	    cmocka_unit_test(test_seed_listener),
	    cmocka_unit_test(test_seed_request),
	    cmocka_unit_test(test_pretty),
	    cmocka_unit_test(test_response_parse),
	    cmocka_unit_test(test_child_log_tail),
	    cmocka_unit_test(test_v1_seed_tour_and_tls_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
