/* Snapshots from configurations: which endpoints each pool gets. GIE's
 * rules: pods of the pool's own namespace only, Ready, with an IP, not
 * being deleted; and in v1 every target port of such a pod is its own
 * endpoint (data-parallel ranks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "gateway/snapshot.h"
#include "pool/endpoint.h"
#include "sched/picker.h"

static const char manifests[] =
    "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"
    "metadata: {name: dp, namespace: llm}\n"
    "spec:\n  selector: {matchLabels: {app: vllm}}\n"
    "  targetPorts: [{number: 8000}, {number: 8002}, {number: 8004}]\n"
    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"
    "metadata: {name: old, namespace: llm}\n"
    "spec: {selector: {app: vllm}, targetPortNumber: 9000, extensionRef: {name: e}}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: llm, labels: {app: vllm}}\n"
    "status: {podIP: 10.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: llm, labels: {app: vllm}}\n"
    "status: {podIP: \"fd00::2\"}\n"
    /* Same labels, another namespace: never the pool's. */
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: other, labels: {app: vllm}}\n"
    "status: {podIP: 10.0.0.3}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: llm, labels: {app: vllm}}\n"
    "status:\n  podIP: 10.0.0.4\n  conditions: [{type: Ready, status: \"False\"}]\n";

static char *addrs(const struct ig_pool_rt *rt)
{
	static char out[512];
	out[0] = '\0';
	for (size_t i = 0; i < rt->neps; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof out - l, "%s%s", i ? " " : "", rt->eps[i]->addr);
	}
	return out;
}

static char *ranks(const struct ig_pool_rt *rt)
{
	static char out[512];
	out[0] = '\0';
	for (size_t i = 0; i < rt->neps; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof out - l, "%s%s-%u", i ? " " : "",
			 rt->ep_pods[i]->meta.name, (unsigned)rt->ep_ranks[i]);
	}
	return out;
}

static void test_pool_endpoints(void **state)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("s.yaml", manifests, strlen(manifests), &cfg, &d), 0);
	ig_diags_free(&d);
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_snapshot *s =
	    ig_snapshot_build(reg, cfg, ig_picker_config_default(), 1, NULL, 1, 1);
	assert_non_null(s);
	const struct ig_pool_rt *dp = ig_snapshot_pool(s, "llm", "dp");
	const struct ig_pool_rt *old = ig_snapshot_pool(s, "llm", "old");
	assert_non_null(dp);
	assert_non_null(old);
	assert_string_equal(addrs(dp), "10.0.0.1:8000 10.0.0.1:8002 10.0.0.1:8004 "
				       "[fd00::2]:8000 [fd00::2]:8002 [fd00::2]:8004");
	assert_string_equal(addrs(old), "10.0.0.1:9000 [fd00::2]:9000");
	/* Each endpoint's pod and rank (its port's index in targetPorts):
	 * GIE's endpoint names, pod-rank-N, on the per-pod gauges. */
	assert_string_equal(ranks(dp), "a-0 a-1 a-2 b-0 b-1 b-2");
	assert_string_equal(ranks(old), "a-0 b-0");
	assert_null(ig_snapshot_pool(s, "other", "dp"));
	ig_snapshot_unref(s);
	ig_endpoints_free(reg);
}

/* Two Gateways on one port (Gateway API §3.2): listeners told apart by
 * hostname are both served; a pair with the same protocol and hostname
 * (or neither with one) conflicts, and neither of the pair is served -- no
 * winner, whichever was read first. */
static const char two_gateways[] =
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: a}\n"
    "spec:\n  gatewayClassName: x\n  listeners:\n"
    "  - {name: shared, port: 80, protocol: HTTP, hostname: shared.example}\n" /* line 7 */
    "  - {name: own, port: 80, protocol: HTTP, hostname: a.example}\n"
    "  - {name: any, port: 81, protocol: HTTP}\n" /* line 9 */
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: b}\n"
    "spec:\n  gatewayClassName: x\n  listeners:\n"
    "  - {name: any, port: 81, protocol: HTTP}\n" /* line 17 */
    "  - {name: other, port: 80, protocol: HTTP, hostname: b.example}\n"
    "  - {name: shared, port: 80, protocol: HTTP, hostname: shared.example}\n"; /* line 19 */

static void test_listeners_across_gateways(void **state)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	assert_int_equal(
	    ig_config_load_text("g.yaml", two_gateways, strlen(two_gateways), &cfg, &d), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ig_diags_print(&d, f);
	fclose(f);
	ig_diags_free(&d);
	assert_string_equal(
	    text,
	    "g.yaml:7: warning: spec.listeners[0]: port 80, protocol HTTP and hostname "
	    "shared.example are also those of listener \"shared\" of Gateway \"default/b\" "
	    "(Conflicted=True, HostnameConflict): neither is served\n"
	    "g.yaml:9: warning: spec.listeners[2]: port 81, protocol HTTP and no hostname are also "
	    "those of listener \"any\" of Gateway \"default/b\" (Conflicted=True, "
	    "HostnameConflict): neither is served\n"
	    "g.yaml:17: warning: spec.listeners[0]: port 81, protocol HTTP and no hostname are "
	    "also "
	    "those of listener \"any\" of Gateway \"default/a\" (Conflicted=True, "
	    "HostnameConflict): neither is served\n"
	    "g.yaml:19: warning: spec.listeners[2]: port 80, protocol HTTP and hostname "
	    "shared.example are also those of listener \"shared\" of Gateway \"default/a\" "
	    "(Conflicted=True, HostnameConflict): neither is served\n");
	free(text);
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_snapshot *s =
	    ig_snapshot_build(reg, cfg, ig_picker_config_default(), 1, NULL, 1, 1);
	assert_non_null(s);
	const struct ig_port_rt *p80 = ig_snapshot_port(s, 80);
	assert_non_null(p80);
	assert_int_equal(p80->nlisteners, 2);
	assert_string_equal(p80->listeners[0].gw->meta.name, "a");
	assert_string_equal(p80->listeners[0].listener->name, "own");
	assert_string_equal(p80->listeners[1].gw->meta.name, "b");
	assert_string_equal(p80->listeners[1].listener->name, "other");
	assert_null(ig_snapshot_port(s, 81)); /* nothing left to serve there */
	ig_snapshot_unref(s);
	ig_endpoints_free(reg);
}

/* Which lora_requests_info series the scraper reads: GIE v1.5's newest
 * for a v1 pool, v0.2.0's newest naming an adapter for a pool of
 * InferenceModels, and for every pool under enableLegacyMetrics. */
static const char lora_pools[] =
    "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"
    "metadata: {name: new}\n"
    "spec:\n  selector: {matchLabels: {app: a}}\n  targetPorts: [{number: 8000}]\n"
    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"
    "metadata: {name: old}\n"
    "spec: {selector: {app: b}, targetPortNumber: 9000, extensionRef: {name: e}}\n"
    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
    "metadata: {name: m}\nspec: {modelName: m, poolRef: {name: old}}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: a}}\n"
    "status: {podIP: 10.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: {app: b}}\n"
    "status: {podIP: 10.0.0.2}\n";

static enum ig_lora_rule lora_rule_of(const char *picker_text, const char *pool)
{
	struct ig_config *cfg = NULL;
	struct ig_picker_config *pc = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("l.yaml", lora_pools, strlen(lora_pools), &cfg, &d),
			 0);
	assert_int_equal(
	    ig_picker_config_parse("p.yaml", picker_text, strlen(picker_text), &pc, &d), 0);
	ig_diags_free(&d);
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_snapshot *s = ig_snapshot_build(reg, cfg, pc, 1, NULL, 1, 1);
	assert_non_null(s);
	ig_snapshot_set_lora_rules(s);
	const struct ig_pool_rt *rt = ig_snapshot_pool(s, "default", pool);
	assert_non_null(rt);
	assert_int_equal(rt->neps, 1);
	enum ig_lora_rule rule = rt->eps[0]->lora_rule;
	ig_snapshot_unref(s);
	ig_endpoints_free(reg);
	return rule;
}

static void test_lora_rule_by_age(void **state)
{
	static const char gie[] = "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
				  "kind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n";
	static const char legacy[] = "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
				     "kind: EndpointPickerConfig\n"
				     "featureGates: [enableLegacyMetrics]\n"
				     "plugins:\n- type: queue-scorer\n";
	assert_int_equal(lora_rule_of(gie, "new"), IG_LORA_NEWEST);
	assert_int_equal(lora_rule_of(gie, "old"), IG_LORA_NAMING_ADAPTERS);
	assert_int_equal(lora_rule_of(legacy, "new"), IG_LORA_NAMING_ADAPTERS);
	assert_int_equal(lora_rule_of(ig_picker_preset("v0.2"), "new"), IG_LORA_NAMING_ADAPTERS);
}

/* A reload builds a new snapshot while in-flight requests still hold the
 * previous ones: patterns that did not change are the previous snapshot's
 * compiled copies, not new ones, for HTTPRoutes and GRPCRoutes alike, and
 * the last snapshot holding a pattern frees it. */
static const char regex_routes[] =
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
    "spec:\n  gatewayClassName: x\n  listeners:\n"
    "  - {name: http, port: 80, protocol: HTTP}\n"
    "  - {name: other, port: 81, protocol: HTTP}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\n"
    "spec:\n  parentRefs: [{name: gw}]\n  hostnames: [h.example]\n  rules:\n"
    "  - matches: [{path: {type: RegularExpression, value: \"/v[0-9]+/PATH\"},\n"
    "      headers: [{name: x-model, type: RegularExpression, value: \"llama-[0-9]+b\"}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\n"
    "spec:\n  parentRefs: [{name: gw}]\n  hostnames: [g.example]\n  rules:\n"
    "  - matches: [{method: {type: RegularExpression, service: \"pkg[.]S.*\", method: M}}]\n";

static struct ig_snapshot *regex_snapshot(struct ig_endpoints *reg, const char *path,
					  const struct ig_snapshot *prev)
{
	char text[sizeof regex_routes + 16];
	const char *at = strstr(regex_routes, "PATH");
	snprintf(text, sizeof text, "%.*s%s%s", (int)(at - regex_routes), regex_routes, path,
		 at + 4);
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("r.yaml", text, strlen(text), &cfg, &d), 0);
	ig_diags_free(&d);
	struct ig_snapshot *s =
	    ig_snapshot_build(reg, cfg, ig_picker_config_default(), 1, prev, 1, 4);
	assert_non_null(s);
	return s;
}

static void test_snapshots_share_patterns(void **state)
{
	size_t base = ig_routes_patterns();
	struct ig_endpoints *reg = ig_endpoints_new(4);
	/* Two listeners, each with its own table of the same three
	 * patterns (path, header, gRPC method): one compiled copy set each. */
	struct ig_snapshot *a = regex_snapshot(reg, "models", NULL);
	assert_non_null(ig_snapshot_port(a, 80));
	assert_non_null(ig_snapshot_port(a, 81));
	assert_int_equal(ig_routes_patterns(), base + 3);
	struct ig_snapshot *b = regex_snapshot(reg, "models", a);
	assert_int_equal(ig_routes_patterns(), base + 3);
	struct ig_snapshot *c = regex_snapshot(reg, "chat", b);
	assert_int_equal(ig_routes_patterns(), base + 4);
	ig_snapshot_unref(a);
	assert_int_equal(ig_routes_patterns(), base + 4);
	ig_snapshot_unref(b);
	assert_int_equal(ig_routes_patterns(), base + 3);
	ig_snapshot_unref(c);
	assert_int_equal(ig_routes_patterns(), base);
	ig_endpoints_free(reg);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pool_endpoints),
	    cmocka_unit_test(test_listeners_across_gateways),
	    cmocka_unit_test(test_lora_rule_by_age),
	    cmocka_unit_test(test_snapshots_share_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
