/* Attachment results (gateway/attach.c) from loaded manifests: the
 * parents[] conditions of routes that attach and of those that do not
 * (Gateway API §4.9, §6.1), listener conflicts, and the warnings `check`
 * and the gateway's log give for them, with the parentRef's file and
 * line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "gateway/attach.h"

/* The audit's reproduction: one Gateway with a listener for
 * a.example.com that admits routes of its own namespace (the default). */
static const char routes[] =
    "apiVersion: gateway.networking.k8s.io/v1\n" /* 1 */
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n" /* 5 */
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: 80, hostname: a.example.com}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n" /* 10 */
    "metadata: {name: s}\n"
    "spec: {ports: [{port: 80}], selector: {app: x}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n" /* 15 */
    "metadata: {name: other-ns, namespace: other}\n"
    "spec:\n"
    "  parentRefs:\n"
    "  - {name: gw, namespace: default}\n" /* 19 */
    "  rules: [{backendRefs: [{name: s, namespace: default, port: 80}]}]\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n"
    "metadata: {name: wrong-host}\n"
    "spec:\n"
    "  parentRefs: [{name: gw}]\n" /* 26 */
    "  hostnames: [b.example.com]\n"
    "  rules: [{backendRefs: [{name: s, port: 80}]}]\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n" /* 30 */
    "kind: HTTPRoute\n"
    "metadata: {name: no-section}\n"
    "spec:\n"
    "  parentRefs:\n"
    "  - name: gw\n" /* 35 */
    "    sectionName: nope\n"
    "  rules: [{backendRefs: [{name: s, port: 80}]}]\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n" /* 40 */
    "metadata: {name: missing-gw}\n"
    "spec:\n"
    "  parentRefs: [{name: gwmissing}]\n"
    "  rules: [{backendRefs: [{name: s, port: 80}]}]\n"
    "---\n" /* 45 */
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n"
    "metadata: {name: good}\n"
    "spec:\n"
    "  parentRefs: [{name: gw, sectionName: http}]\n" /* 50 */
    "  hostnames: [a.example.com]\n"
    "  rules: [{backendRefs: [{name: s, port: 80}, {name: gone, port: 80}]}]\n";

static struct ig_config *load(const char *text, struct ig_diags *d)
{
	struct ig_config *cfg = NULL;
	assert_int_equal(ig_config_load_text("m.yaml", text, strlen(text), &cfg, d), 0);
	return cfg;
}

static const struct ig_httproute *route(const struct ig_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (!strcmp(cfg->routes[i].meta.name, name))
			return &cfg->routes[i];
	fail_msg("no route %s", name);
	return NULL;
}

static void expect_parent(const struct ig_config *cfg, const char *name, bool accepted,
			  const char *reason)
{
	const struct ig_httproute *r = route(cfg, name);
	struct ig_parent_status st;
	assert_true(ig_route_parent_status(cfg, r, &r->parents[0], &st));
	assert_string_equal(st.gw->meta.name, "gw");
	assert_int_equal(st.accepted, accepted);
	assert_string_equal(st.reason, reason);
	assert_non_null(st.message);
}

static void test_route_parents(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(routes, &d);
	/* allowedRoutes defaults to namespaces From: Same. */
	expect_parent(cfg, "other-ns", false, "NotAllowedByListeners");
	expect_parent(cfg, "wrong-host", false, "NoMatchingListenerHostname");
	expect_parent(cfg, "no-section", false, "NoMatchingParent");
	expect_parent(cfg, "good", true, "Accepted");
	/* A parent that is not in the configuration has no entry. */
	const struct ig_httproute *r = route(cfg, "missing-gw");
	struct ig_parent_status st;
	assert_false(ig_route_parent_status(cfg, r, &r->parents[0], &st));
	/* Accepted, with a backendRef that does not resolve. */
	r = route(cfg, "good");
	assert_true(ig_route_parent_status(cfg, r, &r->parents[0], &st));
	assert_false(st.resolved);
	assert_string_equal(st.refs_reason, "BackendNotFound");
	assert_string_equal(st.refs_message, "Service default/gone: not found");
	r = route(cfg, "wrong-host");
	assert_true(ig_route_parent_status(cfg, r, &r->parents[0], &st));
	assert_true(st.resolved);
	assert_string_equal(st.refs_reason, "ResolvedRefs");
	assert_int_equal(
	    ig_listener_attached_routes(cfg, &cfg->gateways[0], &cfg->gateways[0].listeners[0]), 1);
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* The diag for parentRefs[0] of a route, or NULL. */
static const struct ig_diag *diag_at(const struct ig_diags *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->items[i].msg, needle))
			return &d->items[i];
	return NULL;
}

static void test_route_warnings(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(routes, &d);
	size_t before = d.n;
	ig_attach_diags(cfg, &d);
	assert_int_equal(d.n - before, 3);
	static const struct {
		const char *route, *reason;
		int line;
	} want[] = {
	    {"HTTPRoute \"other/other-ns\"", "NotAllowedByListeners", 19},
	    {"HTTPRoute \"default/wrong-host\"", "NoMatchingListenerHostname", 26},
	    {"HTTPRoute \"default/no-section\"", "NoMatchingParent", 35},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const struct ig_diag *g = diag_at(&d, want[i].route);
		assert_non_null(g);
		assert_true(g->warning);
		assert_string_equal(g->file, "m.yaml");
		assert_int_equal(g->line, want[i].line);
		assert_string_equal(g->path, "spec.parentRefs[0]");
		assert_non_null(strstr(g->msg, "Gateway \"default/gw\""));
		assert_non_null(strstr(g->msg, want[i].reason));
	}
	assert_non_null(strstr(diag_at(&d, "no-section")->msg, "sectionName \"nope\""));
	assert_null(diag_at(&d, "\"default/good\""));
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* HTTP and HTTPS on one port, across Gateways: neither is served, and
 * both say so; a ListenerSet's listener that repeats the Gateway's gives
 * way to it. */
static const char listeners[] =
    "apiVersion: gateway.networking.k8s.io/v1\n" /* 1 */
    "kind: Gateway\n"
    "metadata: {name: gw1}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n" /* 5 */
    "  allowedListeners: {namespaces: {from: Same}}\n"
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: 80}\n" /* 8 */
    "  - {name: other, protocol: HTTP, port: 81}\n"
    "---\n" /* 10 */
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw2}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n" /* 15 */
    "  listeners:\n"
    "  - {name: https, protocol: HTTPS, port: 80, tls: {certificateRefs: [{name: s}]}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: ListenerSet\n" /* 20 */
    "metadata: {name: ls}\n"
    "spec:\n"
    "  parentRef: {name: gw1}\n"
    "  listeners:\n"
    "  - {name: a, protocol: HTTP, port: 81}\n" /* 25 */
    "  - {name: b, protocol: HTTP, port: 82}\n";

static void test_listener_conflicts(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(listeners, &d);
	const struct ig_gateway *gw1 = ig_config_find_gateway(cfg, "default", "gw1");
	const struct ig_listener_set *ls = &cfg->listener_sets[0];
	struct ig_listener_status st;
	ig_listener_status(cfg, gw1, &gw1->listeners[0], &st);
	assert_true(st.accepted);
	assert_string_equal(st.conflict, "ProtocolConflict");
	assert_false(st.given_way);
	ig_listener_status(cfg, gw1, &gw1->listeners[1], &st);
	assert_null(st.conflict);
	ig_listener_status(cfg, gw1, &ls->listeners[0], &st);
	assert_false(st.accepted);
	assert_string_equal(st.reason, "HostnameConflict");
	assert_string_equal(st.conflict, "HostnameConflict");
	assert_true(st.given_way);
	ig_listener_status(cfg, gw1, &ls->listeners[1], &st);
	assert_true(st.accepted);
	assert_null(st.conflict);

	size_t before = d.n;
	ig_attach_diags(cfg, &d);
	assert_int_equal(d.n - before, 3);
	static const struct {
		const char *listener;
		int line;
		const char *reason;
	} want[] = {
	    {"listener \"http\" of Gateway \"default/gw1\"", 8, "ProtocolConflict"},
	    {"listener \"https\" of Gateway \"default/gw2\"", 17, "ProtocolConflict"},
	    {"listener \"a\" of ListenerSet \"default/ls\"", 25, "HostnameConflict"},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const struct ig_diag *g = diag_at(&d, want[i].listener);
		assert_non_null(g);
		assert_true(g->warning);
		assert_int_equal(g->line, want[i].line);
		assert_non_null(strstr(g->msg, want[i].reason));
	}
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* The Gateways' own conditions (their status.conditions, which --kube
 * writes and /api/status shows): ListenersNotValid while listeners
 * conflict with other Gateways', Accepted=False when all do; Programmed
 * by the listeners served; a parametersRef infergate cannot take is
 * InvalidParameters on both. */
static const char params_gateway[] =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw3}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  infrastructure: {parametersRef: {group: example.com, kind: Params, name: p}}\n"
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: 90}\n";

static void expect_cond(const struct ig_gateway_cond *c, bool status, const char *reason)
{
	assert_int_equal(c->status, status);
	assert_string_equal(c->reason, reason);
	assert_non_null(c->message);
	assert_true(c->message[0] != '\0');
}

static void test_gateway_conditions(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(listeners, &d);
	struct ig_gateway_status st;
	/* gw1: one of its two listeners in conflict, the other served. */
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "gw1"), 1, "0.0.0.0", &st);
	expect_cond(&st.accepted, true, "ListenersNotValid");
	expect_cond(&st.programmed, true, "Programmed");
	assert_false(st.has_refs);
	/* gw2: its only listener in conflict, nothing served. */
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "gw2"), 0, "0.0.0.0", &st);
	expect_cond(&st.accepted, false, "ListenersNotValid");
	expect_cond(&st.programmed, false, "Invalid");
	ig_config_free(cfg);

	cfg = load(routes, &d);
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "gw"), 1, "0.0.0.0", &st);
	expect_cond(&st.accepted, true, "Accepted");
	expect_cond(&st.programmed, true, "Programmed");
	ig_config_free(cfg);

	cfg = load(params_gateway, &d);
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "gw3"), 0, "0.0.0.0", &st);
	expect_cond(&st.accepted, false, "InvalidParameters");
	expect_cond(&st.programmed, false, "Invalid");
	assert_non_null(strstr(st.accepted.message, "kind Params"));
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* Listeners refused for their own reasons (Gateway API v1.6.1
 * conformance GatewayListenerUnsupportedProtocol): a Gateway none of
 * whose listeners is accepted is Accepted=False/ListenersNotValid, one
 * with some accepted Accepted=True/ListenersNotValid; a listener without a
 * valid CA certificate for client validation counts too. */
static const char refused_listeners[] =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: only-unsupported}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  listeners:\n"
    "  - {name: invalid, protocol: TCP, port: 9000}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: mixed}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: 90}\n"
    "  - {name: invalid, protocol: UDP, port: 9001}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: no-ca}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  tls:\n"
    "    frontend:\n"
    "      default:\n"
    "        validation: {caCertificateRefs: [{kind: ConfigMap, name: missing}]}\n"
    "  listeners:\n"
    "  - {name: https, protocol: HTTPS, port: 9443, tls: {certificateRefs: [{name: s}]}}\n";

static void test_gateway_listeners_not_valid(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(refused_listeners, &d);
	struct ig_gateway_status st;
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "only-unsupported"), 0,
			  "0.0.0.0", &st);
	expect_cond(&st.accepted, false, "ListenersNotValid");
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "mixed"), 1, "0.0.0.0", &st);
	expect_cond(&st.accepted, true, "ListenersNotValid");
	expect_cond(&st.programmed, true, "Programmed");
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "no-ca"), 0, "0.0.0.0", &st);
	expect_cond(&st.accepted, false, "ListenersNotValid");
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* InsecureFrontendValidationMode (Gateway API v1.5.0 on, conformance
 * GatewayFrontendClientCertificateValidationInsecureFallback): True with
 * ConfigurationChanged while client certificate validation allows the
 * insecure fallback, at the Gateway level or on a port; absent with
 * AllowValidOnly, the default. */
static const char fallback_gateways[] =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: default-fallback}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  tls:\n"
    "    frontend:\n"
    "      default:\n"
    "        validation:\n"
    "          mode: AllowInsecureFallback\n"
    "          caCertificateRefs: [{kind: ConfigMap, name: ca}]\n"
    "  listeners:\n"
    "  - {name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: s}]}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: port-fallback}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  tls:\n"
    "    frontend:\n"
    "      default:\n"
    "        validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}\n"
    "      perPort:\n"
    "      - port: 8443\n"
    "        tls:\n"
    "          validation:\n"
    "            mode: AllowInsecureFallback\n"
    "            caCertificateRefs: [{kind: ConfigMap, name: ca}]\n"
    "  listeners:\n"
    "  - {name: https, protocol: HTTPS, port: 8443, tls: {certificateRefs: [{name: s}]}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: valid-only}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  tls:\n"
    "    frontend:\n"
    "      default:\n"
    "        validation:\n"
    "          mode: AllowValidOnly\n"
    "          caCertificateRefs: [{kind: ConfigMap, name: ca}]\n"
    "  listeners:\n"
    "  - {name: https, protocol: HTTPS, port: 9443, tls: {certificateRefs: [{name: s}]}}\n";

static void test_gateway_insecure_fallback(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = load(fallback_gateways, &d);
	struct ig_gateway_status st;
	static const char *const insecure[] = {"default-fallback", "port-fallback"};
	for (size_t i = 0; i < 2; i++) {
		ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", insecure[i]), 0,
				  "0.0.0.0", &st);
		assert_true(st.has_insecure);
		expect_cond(&st.insecure, true, "ConfigurationChanged");
	}
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "valid-only"), 0, "0.0.0.0",
			  &st);
	assert_false(st.has_insecure);
	ig_config_free(cfg);

	cfg = load(routes, &d);
	ig_gateway_status(cfg, ig_config_find_gateway(cfg, "default", "gw"), 1, "0.0.0.0", &st);
	assert_false(st.has_insecure);
	ig_config_free(cfg);
	ig_diags_free(&d);
}

/* HTTPS listeners of one port whose hostnames overlap (GEP-3567's
 * OverlappingTLSConfig): a name and a wildcard covering it, two wildcards,
 * one without a hostname; another port and HTTP listeners do not count. */
static const char tls_listeners[] =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  listeners:\n"
    "  - {name: a, protocol: HTTPS, port: 443, hostname: a.example.com, tls: {certificateRefs: "
    "[{name: s}]}}\n"
    "  - {name: star, protocol: HTTPS, port: 443, hostname: '*.example.com', tls: "
    "{certificateRefs: [{name: s}]}}\n"
    "  - {name: deep, protocol: HTTPS, port: 443, hostname: '*.b.example.com', tls: "
    "{certificateRefs: [{name: s}]}}\n"
    "  - {name: other, protocol: HTTPS, port: 443, hostname: c.example.net, tls: "
    "{certificateRefs: [{name: s}]}}\n"
    "  - {name: elsewhere, protocol: HTTPS, port: 8443, hostname: d.example.net, tls: "
    "{certificateRefs: [{name: s}]}}\n"
    "  - {name: any, protocol: HTTPS, port: 9443, tls: {certificateRefs: [{name: s}]}}\n"
    "  - {name: e, protocol: HTTPS, port: 9443, hostname: e.example.org, tls: "
    "{certificateRefs: [{name: s}]}}\n"
    "  - {name: plain, protocol: HTTP, port: 80, hostname: a.example.com}\n"
    "  - {name: plain2, protocol: HTTP, port: 80}\n";

static void test_overlapping_tls(void **state)
{
	struct ig_diags d = {0};
	struct ig_config *cfg = NULL;
	/* The Secret is missing (a warning): the overlap is of hostnames. */
	assert_int_equal(
	    ig_config_load_text("m.yaml", tls_listeners, strlen(tls_listeners), &cfg, &d), 0);
	const struct ig_gateway *gw = ig_config_find_gateway(cfg, "default", "gw");
	static const struct {
		const char *name;
		bool overlap;
	} want[] = {{"a", true},      {"star", true},	    {"deep", true},
		    {"other", false}, {"elsewhere", false}, {"any", true},
		    {"e", true},      {"plain", false},	    {"plain2", false}};
	assert_int_equal(gw->nlisteners, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < gw->nlisteners; i++) {
		struct ig_listener_status st;
		assert_string_equal(gw->listeners[i].name, want[i].name);
		ig_listener_status(cfg, gw, &gw->listeners[i], &st);
		if (st.overlap != want[i].overlap)
			fail_msg("listener %s: overlap %d", want[i].name, st.overlap);
	}
	ig_config_free(cfg);
	ig_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route_parents),
	    cmocka_unit_test(test_route_warnings),
	    cmocka_unit_test(test_listener_conflicts),
	    cmocka_unit_test(test_overlapping_tls),
	    cmocka_unit_test(test_gateway_conditions),
	    cmocka_unit_test(test_gateway_listeners_not_valid),
	    cmocka_unit_test(test_gateway_insecure_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
