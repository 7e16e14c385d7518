/* Tests of the resource model's issue-9 kinds and fields: GIE v1
 * (InferencePool v1, InferenceObjective and InferenceModelRewrite in both
 * groups, InferencePoolImport), the Gateway API's filters, listeners'
 * tls and allowedRoutes, ReferenceGrant, Service backends with their
 * EndpointSlices, Endpoints or Pods, Secrets, ConfigMaps, BackendTLSPolicy
 * (validation, CA references, conflicts, which ports it applies to), and
 * the refusal of fields
 * infergate does not implement. test_config.c covers the seed's kinds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

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

/* Loads text that must succeed and returns its diags (warnings only). */
static struct ig_config *load_warned(const char *text, char **diags)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	size_t len = 0;
	FILE *f = open_memstream(diags, &len);
	int rc = ig_config_load_text("w.yaml", text, strlen(text), &cfg, &d);
	ig_diags_print(&d, f);
	fclose(f);
	ig_diags_free(&d);
	if (rc != 0)
		fprintf(stderr, "%s", *diags);
	assert_int_equal(rc, 0);
	return cfg;
}

#define has(out, text)                                                                             \
	do {                                                                                       \
		if (!strstr((out), (text)))                                                        \
			fprintf(stderr, "want: %s\ngot:\n%s", (text), (out));                      \
		assert_non_null(strstr((out), (text)));                                            \
	} while (0)

/* Loads text that must fail, with `err` among its diags. */
static void load_fails_with(const char *text, const char *err)
{
	int rc;
	char *out = load_diags("e.yaml", text, &rc);
	assert_int_not_equal(rc, 0);
	has(out, err);
	free(out);
}

/* ---- the sample manifests ---------------------------------------------------- */

static struct ig_config *load_samples(void)
{
	const char *paths[] = {"tests/manifests/gie-v1"};
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_config_load(paths, 1, &c, &d);
	ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0); /* not even a warning */
	ig_diags_free(&d);
	return c;
}

static const struct ig_route_rule *rule_named(const struct ig_httproute *r, const char *name)
{
	for (size_t i = 0; i < r->nrules; i++)
		if (r->rules[i].name && !strcmp(r->rules[i].name, name))
			return &r->rules[i];
	fail_msg("no rule %s", name);
	return NULL;
}

static void test_samples_gateway(void **state)
{
	struct ig_config *c = load_samples();
	const struct ig_gateway *g = ig_config_find_gateway(c, "infra", "inference-gateway");
	assert_non_null(g);
	assert_int_equal(g->nlisteners, 2);
	const struct ig_listener *http = &g->listeners[0], *https = &g->listeners[1];
	assert_true(http->served);
	assert_false(http->tls.set);
	assert_int_equal(http->allowed.from, IG_FROM_SELECTOR);
	assert_true(http->allowed.has_selector);
	assert_int_equal(http->allowed.selector.nmatch_labels, 1);
	assert_string_equal(http->allowed.selector.match_labels[0].key, "gateway-access");

	assert_string_equal(https->protocol, "HTTPS");
	assert_string_equal(https->hostname, "llm.example.com");
	assert_true(https->tls.set);
	assert_int_equal(https->tls.mode, IG_TLS_TERMINATE);
	assert_int_equal(https->tls.ncerts, 1);
	const struct ig_cert_ref *cr = &https->tls.certs[0];
	assert_string_equal(cr->group, "");
	assert_string_equal(cr->kind, "Secret");
	assert_string_equal(cr->ns, "infra"); /* defaulted to the Gateway's */
	assert_int_equal(cr->status, IG_REF_OK);
	assert_ptr_equal(cr->secret, ig_config_find_secret(c, "infra", "llm-tls"));
	const struct ig_secret_item *crt = ig_secret_get(cr->secret, "tls.crt");
	const struct ig_secret_item *key = ig_secret_get(cr->secret, "tls.key");
	assert_non_null(crt);
	assert_non_null(key);
	assert_int_equal(strncmp((char *)crt->bytes, "-----BEGIN CERTIFICATE-----\n", 28), 0);
	assert_int_equal(strlen((char *)crt->bytes), crt->len);
	assert_non_null(strstr((char *)key->bytes, "-----END PRIVATE KEY-----"));
	assert_int_equal(https->allowed.selector.nexprs, 1);
	assert_int_equal(https->allowed.selector.exprs[0].op, IG_SEL_IN);
	assert_int_equal(https->allowed.nkinds, 1);
	assert_string_equal(https->allowed.kinds[0].group, "gateway.networking.k8s.io");

	/* The Namespace objects carry the label Kubernetes adds. */
	const struct ig_namespace *ns = ig_config_find_namespace(c, "llm");
	assert_non_null(ns);
	assert_string_equal(ns->meta.ns, "");
	assert_int_equal(ns->meta.nlabels, 2);
	assert_true(ig_config_namespace_selected(c, "llm", &http->allowed.selector));
	assert_true(ig_config_namespace_selected(c, "llm", &https->allowed.selector));
	assert_false(ig_config_namespace_selected(c, "web", &http->allowed.selector));
	assert_false(ig_config_namespace_selected(c, "infra", &https->allowed.selector));
	ig_config_free(c);
}

static void test_samples_route(void **state)
{
	struct ig_config *c = load_samples();
	assert_int_equal(c->nroutes, 1);
	const struct ig_httproute *r = &c->routes[0];
	assert_int_equal(r->nparents, 2);
	assert_string_equal(r->parents[1].ns, "infra");

	const struct ig_route_rule *llama = rule_named(r, "llama");
	assert_string_equal(llama->matches[0].headers[0].name, "X-Gateway-Model-Name");
	const struct ig_backend_ref *lb = &llama->backends[0];
	assert_int_equal(lb->status, IG_REF_OK);
	assert_ptr_equal(lb->pool, ig_config_find_pool(c, "llm", "llama-pool"));
	assert_null(lb->service);
	assert_int_equal(lb->weight, 1);

	const struct ig_route_rule *qwen = rule_named(r, "qwen");
	assert_int_equal(qwen->nfilters, 3);
	const struct ig_filter *f = &qwen->filters[0];
	assert_int_equal(f->type, IG_FILTER_REQUEST_HEADER_MODIFIER);
	assert_int_equal(f->u.headers.nset, 1);
	assert_string_equal(f->u.headers.set[0].key, "x-gateway");
	assert_string_equal(f->u.headers.set[0].value, "infergate");
	assert_int_equal(f->u.headers.nadd, 0);
	assert_int_equal(f->u.headers.nremove, 1);
	assert_string_equal(f->u.headers.remove[0], "x-debug");
	assert_int_equal(qwen->filters[1].type, IG_FILTER_RESPONSE_HEADER_MODIFIER);
	assert_string_equal(qwen->filters[1].u.headers.add[0].value, "qwen-pool");
	const struct ig_mirror *m = &qwen->filters[2].u.mirror;
	assert_int_equal(qwen->filters[2].type, IG_FILTER_REQUEST_MIRROR);
	assert_int_equal(m->numerator, 5);
	assert_int_equal(m->denominator, 100);
	assert_int_equal(m->backend->status, IG_REF_OK); /* through the ReferenceGrant */
	assert_ptr_equal(m->backend->service, ig_config_find_service(c, "web", "docs"));
	assert_int_equal(m->backend->weight, 0);
	assert_int_equal(qwen->timeout_request_ms, 300000);
	assert_int_equal(qwen->timeout_backend_ms, 120000);
	assert_true(qwen->retry.set);
	assert_int_equal(qwen->retry.ncodes, 2);
	assert_int_equal(qwen->retry.codes[1], 503);
	assert_true(qwen->retry.has_attempts);
	assert_int_equal(qwen->retry.attempts, 2);
	assert_true(qwen->retry.has_backoff);
	assert_int_equal(qwen->retry.backoff_ms, 100);
	assert_true(qwen->session.set);
	assert_int_equal(qwen->session.type, IG_SESSION_HEADER);
	assert_string_equal(qwen->session.session_name, "llm-session");
	assert_false(qwen->session.has_absolute_timeout);

	const struct ig_route_rule *docs = rule_named(r, "docs");
	assert_int_equal(docs->filters[0].type, IG_FILTER_URL_REWRITE);
	assert_int_equal(docs->filters[0].u.rewrite.path.type, IG_PATH_MOD_PREFIX);
	assert_string_equal(docs->filters[0].u.rewrite.path.value, "/");
	assert_null(docs->filters[0].u.rewrite.hostname);
	assert_int_equal(docs->backends[0].status, IG_REF_OK);
	assert_string_equal(docs->backends[0].ns, "web");

	const struct ig_route_rule *old = rule_named(r, "old-docs");
	assert_int_equal(old->nbackends, 0);
	const struct ig_redirect *rd = &old->filters[0].u.redirect;
	assert_int_equal(old->filters[0].type, IG_FILTER_REQUEST_REDIRECT);
	assert_int_equal(rd->status_code, 301);
	assert_int_equal(rd->path.type, IG_PATH_MOD_FULL);
	assert_string_equal(rd->path.value, "/docs");
	assert_null(rd->scheme);
	assert_int_equal(rd->port, 0);
	ig_config_free(c);
}

static void test_samples_gie(void **state)
{
	struct ig_config *c = load_samples();
	const struct ig_pool *qwen = ig_config_find_pool(c, "llm", "qwen-pool");
	const struct ig_pool *llama = ig_config_find_pool(c, "llm", "llama-pool");
	assert_true(qwen->v1);
	assert_string_equal(qwen->group, "inference.networking.k8s.io");
	assert_int_equal(qwen->nports, 2);
	assert_int_equal(qwen->app_protocol, IG_APP_HTTP);
	assert_int_equal(qwen->failure_mode, IG_FAIL_OPEN);
	assert_int_equal(qwen->epp_port, 9002);
	assert_null(llama->epp_name);
	assert_int_equal(llama->failure_mode, IG_FAIL_CLOSE);
	assert_int_equal(ig_pool_model_mode(c, qwen), IG_MODELS_PASSTHROUGH);
	assert_int_equal(ig_pool_model_mode(c, llama), IG_MODELS_PASSTHROUGH);

	/* Objectives in GIE's and llm-d Router's groups, each for its pool. */
	const struct ig_objective *o = ig_config_find_objective_for_pool(c, qwen, "premium", 7);
	assert_non_null(o);
	assert_int_equal(o->priority, 10);
	assert_null(ig_config_find_objective_for_pool(c, llama, "premium", 7));
	o = ig_config_find_objective_for_pool(c, llama, "batch", 5);
	assert_non_null(o);
	assert_string_equal(o->meta.api_version, "llm-d.ai/v1alpha2");
	assert_int_equal(o->priority, -1);
	assert_null(ig_config_find_objective_for_pool(c, qwen, "batch", 5));

	/* Rewrites: an exact rule on qwen, a generic one on llama. */
	const struct ig_model_rewrite *w = NULL;
	const struct ig_rewrite_rule *rr = ig_config_find_rewrite(c, qwen, "tweet-summary", 13, &w);
	assert_non_null(rr);
	assert_string_equal(w->meta.name, "tweet-summary");
	assert_int_equal(rr->ntargets, 2);
	assert_null(ig_config_find_rewrite(c, qwen, "tweet-summary-0", 15, &w));
	assert_null(w);
	rr = ig_config_find_rewrite(c, llama, "anything", 8, &w);
	assert_non_null(rr);
	assert_string_equal(w->meta.api_version, "llm-d.ai/v1alpha2");
	assert_string_equal(ig_rewrite_choose(rr, 12345), "meta-llama/Llama-3.1-8B-Instruct");

	/* Every pod is two endpoints of qwen; llama's pod has no conditions:
	 * Ready. */
	assert_true(ig_pool_selects(qwen, &c->pods[0]));
	assert_true(ig_pool_selects(llama, &c->pods[1]));
	assert_false(ig_pool_selects(llama, &c->pods[0]));
	ig_config_free(c);
}

static void test_samples_service(void **state)
{
	struct ig_config *c = load_samples();
	const struct ig_service *svc = ig_config_find_service(c, "web", "docs");
	assert_non_null(svc);
	assert_string_equal(svc->type, "ClusterIP");
	assert_int_equal(svc->nports, 1);
	assert_string_equal(svc->ports[0].name, "http");
	assert_int_equal(svc->ports[0].target_port, 8080);
	assert_string_equal(svc->ports[0].app_protocol, "http");
	struct ig_service_addr *a;
	size_t n;
	enum ig_endpoint_source src;
	assert_int_equal(ig_config_service_endpoints(c, svc, 80, &a, &n, &src), 0);
	assert_int_equal(src, IG_EPS_SLICES);
	assert_int_equal(n, 1); /* 10.2.0.6 is not ready */
	assert_string_equal(a[0].ip, "10.2.0.5");
	assert_int_equal(a[0].port, 8080);
	free(a);
	assert_int_equal(ig_config_service_endpoints(c, svc, 8080, &a, &n, &src), -ENOENT);
	assert_null(a);
	assert_int_equal(n, 0);
	assert_true(ig_config_reference_allowed(c, "gateway.networking.k8s.io", "HTTPRoute", "llm",
						"", "Service", "web", "docs"));
	assert_false(ig_config_reference_allowed(c, "gateway.networking.k8s.io", "HTTPRoute", "llm",
						 "", "Service", "web", "other"));
	ig_config_free(c);
}

/* ---- GIE ------------------------------------------------------------------- */

#define POOL1(name, ns)                                                                            \
	"---\napiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"                   \
	"metadata: {name: " name ", namespace: " ns "}\n"                                          \
	"spec: {selector: {matchLabels: {app: " name "}}, targetPorts: [{number: 8000}]}\n"
#define POOLA(name)                                                                                \
	"---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"           \
	"metadata: {name: " name "}\n"                                                             \
	"spec: {selector: {app: " name "}, targetPortNumber: 8000, extensionRef: {name: e}}\n"

/* v1 pools pass models through; a v1alpha2 pool uses InferenceModels when
 * one names it (GIE v0.2), else passes through too (GIE v1.0-v1.4). */
static void test_model_mode(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    POOLA("old")
	    POOLA("bare")
	    POOL1("new", "default")
	    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
	    "metadata: {name: m1}\nspec: {modelName: a, poolRef: {name: old}}\n"
	    "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
	    "metadata: {name: m2}\nspec: {modelName: b, poolRef: {name: new}}\n",
	    /* clang-format on */
	    &out);
	assert_int_equal(ig_pool_model_mode(c, ig_config_find_pool(c, "default", "old")),
			 IG_MODELS_INFERENCE_MODEL);
	assert_int_equal(ig_pool_model_mode(c, ig_config_find_pool(c, "default", "bare")),
			 IG_MODELS_PASSTHROUGH);
	assert_int_equal(ig_pool_model_mode(c, ig_config_find_pool(c, "default", "new")),
			 IG_MODELS_PASSTHROUGH);
	has(out, "w.yaml:22: warning: spec.poolRef: InferencePool \"default/new\" is "
		 "inference.networking.k8s.io/v1, which has no InferenceModels (GIE v1.0 removed "
		 "them): this one is ignored and models pass through\n");
	free(out);
	ig_config_free(c);
}

#define OBJ(api, name, ns, ref)                                                                    \
	"---\napiVersion: " api "\nkind: InferenceObjective\nmetadata: {name: " name               \
	", namespace: " ns "}\nspec: {priority: 3, poolRef: " ref "}\n"
#define XK "inference.networking.x-k8s.io/v1alpha2"

/* An objective applies to its poolRef's pool only: same namespace, name
 * and API group, kind InferencePool (GIE's reconciler). */
static void test_objective_pool_ref(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    POOL1("p", "a")
	    POOL1("q", "a")
	    POOL1("p", "b")
	    POOLA("x")
	    OBJ(XK, "o", "a", "{name: p}")
	    OBJ(XK, "o2", "a", "{name: q}")
	    OBJ(XK, "old", "default", "{name: x}")
	    OBJ(XK, "oldg", "default", "{name: x, group: inference.networking.x-k8s.io}")
	    OBJ(XK, "v1g", "default", "{name: x, group: inference.networking.k8s.io}")
	    OBJ(XK, "k", "a", "{name: p, kind: Other}"),
	    /* clang-format on */
	    &out);
	const struct ig_pool *ap = ig_config_find_pool(c, "a", "p");
	const struct ig_pool *bp = ig_config_find_pool(c, "b", "p");
	const struct ig_pool *x = ig_config_find_pool(c, "default", "x");
	assert_non_null(ig_config_find_objective_for_pool(c, ap, "o", 1));
	assert_null(ig_config_find_objective_for_pool(c, bp, "o", 1));
	assert_null(ig_config_find_objective_for_pool(c, ap, "o2", 2));
	assert_null(ig_config_find_objective_for_pool(c, ap, "k", 1));
	/* The old lookup ignores poolRef. */
	assert_non_null(ig_config_find_objective(c, "a", "o2", 2));
	/* A poolRef without a group names the pool whatever its version; a
	 * group written must be the pool's. */
	assert_non_null(ig_config_find_objective_for_pool(c, x, "old", 3));
	assert_non_null(ig_config_find_objective_for_pool(c, x, "oldg", 4));
	assert_null(ig_config_find_objective_for_pool(c, x, "v1g", 3));
	has(out, "warning: spec.poolRef.group: InferencePool \"default/x\" is "
		 "inference.networking.x-k8s.io/v1alpha2, but poolRef.group is "
		 "\"inference.networking.k8s.io\": this InferenceObjective applies to no pool\n");
	has(out, "warning: spec.poolRef.kind: kind Other: only InferencePool is understood, so "
		 "this InferenceObjective applies to no pool\n");
	free(out);
	ig_config_free(c);
}

#define REWRITE(api, name, ts, pool, rules)                                                        \
	"---\napiVersion: " api "\nkind: InferenceModelRewrite\nmetadata: {name: " name            \
	", namespace: a" ts "}\nspec:\n  poolRef: {name: " pool "}\n  rules:\n" rules
#define EXACT(model, target) "  - matches: [{model: {value: " model "}}]\n" TARGET(target)
#define TARGET(t) "    targets: [{modelRewrite: " t "}]\n"

/* GIE's precedence: an Exact rule over a generic one, then the oldest
 * rewrite, then the first rule of a rewrite. */
static void test_rewrite_precedence(void **state)
{
	struct ig_config *c = load_ok(
	    /* clang-format off */
	    POOL1("p", "a")
	    POOL1("q", "a")
	    REWRITE(XK, "generic-old", ", creationTimestamp: \"2020-01-01T00:00:00Z\"", "p",
		    "  - targets: [{modelRewrite: g-old}]\n")
	    REWRITE("llm-d.ai/v1alpha2", "exact-new", "", "p",
		    EXACT("m", "new")
		    "  - matches: [{model: {value: m}}]\n" TARGET("new-2"))
	    REWRITE(XK, "exact-old", ", creationTimestamp: \"2024-05-01T00:00:00Z\"", "p",
		    EXACT("other", "o")
		    EXACT("m", "old"))
	    REWRITE(XK, "generic-new", "", "p", "  - targets: [{modelRewrite: g-new}]\n")
	    REWRITE(XK, "other-pool", ", creationTimestamp: \"2000-01-01T00:00:00Z\"", "q",
		    EXACT("m", "q"))
	    /* clang-format on */
	);
	const struct ig_pool *p = ig_config_find_pool(c, "a", "p");
	const struct ig_model_rewrite *w;
	const struct ig_rewrite_rule *r = ig_config_find_rewrite(c, p, "m", 1, &w);
	/* exact-old is older than exact-new (which has no timestamp). */
	assert_string_equal(w->meta.name, "exact-old");
	assert_string_equal(r->targets[0].model, "old");
	r = ig_config_find_rewrite(c, p, "other", 5, &w);
	assert_string_equal(r->targets[0].model, "o");
	/* No exact rule: the oldest generic one. */
	r = ig_config_find_rewrite(c, p, "zzz", 3, &w);
	assert_string_equal(w->meta.name, "generic-old");
	assert_string_equal(ig_rewrite_choose(r, 7), "g-old");
	/* A prefix of a model name is not a match. */
	r = ig_config_find_rewrite(c, p, "mm", 2, &w);
	assert_string_equal(w->meta.name, "generic-old");
	r = ig_config_find_rewrite(c, ig_config_find_pool(c, "a", "q"), "m", 1, &w);
	assert_string_equal(r->targets[0].model, "q");
	assert_null(ig_config_find_rewrite(c, ig_config_find_pool(c, "a", "q"), "n", 1, &w));
	assert_null(w);
	ig_config_free(c);

	/* Between two rewrites without timestamps, load order; within one,
	 * the first matching rule. */
	c = load_ok(POOL1("p", "a")
			REWRITE(XK, "first", "", "p", EXACT("m", "first-1") EXACT("m", "first-2"))
			    REWRITE(XK, "second", "", "p", EXACT("m", "second")));
	r = ig_config_find_rewrite(c, ig_config_find_pool(c, "a", "p"), "m", 1, NULL);
	assert_string_equal(r->targets[0].model, "first-1");
	ig_config_free(c);
}

static void test_rewrite_choose(void **state)
{
	struct ig_rewrite_target t[] = {
	    {.model = "a", .weight = 1, .has_weight = true},
	    {.model = "b", .weight = 3, .has_weight = true},
	    {.model = "c"},
	};
	struct ig_rewrite_rule r = {.targets = t, .ntargets = 3};
	size_t counts[3] = {0};
	/* r % 4 walks the running sum: 0 -> a, 1..3 -> b, c (unset) never. */
	for (uint64_t i = 0; i < 400; i++) {
		const char *m = ig_rewrite_choose(&r, i);
		counts[m[0] - 'a']++;
	}
	assert_int_equal(counts[0], 100);
	assert_int_equal(counts[1], 300);
	assert_int_equal(counts[2], 0);
	/* All unset: uniform. */
	t[0].has_weight = t[1].has_weight = false;
	assert_string_equal(ig_rewrite_choose(&r, 0), "a");
	assert_string_equal(ig_rewrite_choose(&r, 4), "b");
	assert_string_equal(ig_rewrite_choose(&r, 8), "c");
	r.ntargets = 0;
	assert_null(ig_rewrite_choose(&r, 1));
	assert_null(ig_rewrite_choose(NULL, 1));
}

static void test_pool_import(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: InferencePoolImport\n"
	    "metadata: {name: remote, namespace: a}\n"
	    "status:\n  controllers:\n  - name: example.com/mcs\n    exportingClusters: [{name: "
	    "c1}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
	    "metadata: {name: r, namespace: a}\nspec:\n  rules:\n  - backendRefs:\n"
	    "    - {group: inference.networking.x-k8s.io, kind: InferencePoolImport, name: "
	    "remote}\n",
	    &out);
	assert_int_equal(c->nimports, 1);
	assert_string_equal(c->imports[0].meta.name, "remote");
	assert_int_equal(c->routes[0].rules[0].backends[0].status, IG_REF_INVALID_KIND);
	has(out, "w.yaml:1: warning: InferencePoolImport \"a/remote\" is accepted but not routed: "
		 "it stands for a pool exported by other clusters, which infergate (one cluster's "
		 "gateway) cannot reach\n");
	has(out, "w.yaml:15: warning: spec.rules[0].backendRefs[0].kind: InferencePoolImport "
		 "backends are not routed (InvalidKind): infergate cannot reach other clusters\n");
	free(out);
	ig_config_free(c);
}

/* ---- Gateway API: backends and grants ---------------------------------------- */

#define ROUTE_NS(ns)                                                                               \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, "     \
	"namespace: " ns "}\nspec:\n  rules:\n  - backendRefs:\n"
#define SVC(name, ns, extra)                                                                       \
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: " ns "}\n"      \
	"spec:\n  selector: {app: " name "}\n" extra
#define GRANT(ns, from_ns, to)                                                                     \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: "   \
	"g, "                                                                                      \
	"namespace: " ns "}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, " \
	"namespace: " from_ns "}]\n  to: [" to "]\n"

static void test_backend_status(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("web", "a", "  ports: [{port: 80, targetPort: 8080}]\n")
	    SVC("grpc", "a", "  ports: [{port: 80, appProtocol: kubernetes.io/grpc}]\n")
	    SVC("ext", "a", "  type: ExternalName\n  externalName: example.com\n")
	    SVC("far", "b", "  ports: [{port: 80}]\n")
	    SVC("near", "c", "  ports: [{port: 80}]\n")
	    POOL1("p", "a")
	    GRANT("c", "a", "{group: \"\", kind: Service}")
	    ROUTE_NS("a")
	    "    - {name: web, port: 80}\n"				/* 0 ok */
	    "    - {name: web, port: 81}\n"				/* 1 no port */
	    "    - {name: nope, port: 80}\n"				/* 2 not found */
	    "    - {name: grpc, port: 80}\n"				/* 3 appProtocol */
	    "    - {name: ext, port: 80}\n"				/* 4 ExternalName */
	    "    - {name: far, namespace: b, port: 80}\n"		/* 5 no grant */
	    "    - {name: near, namespace: c, port: 80}\n"		/* 6 granted */
	    "    - {name: x, group: example.com, kind: Thing}\n"	/* 7 kind */
	    "    - {name: p, group: inference.networking.k8s.io, kind: InferencePool}\n"
	    "    - {name: p, group: inference.networking.x-k8s.io, kind: InferencePool}\n",
	    /* clang-format on */
	    &out);
	const struct ig_backend_ref *b = c->routes[0].rules[0].backends;
	assert_int_equal(c->routes[0].rules[0].nbackends, 10);
	static const enum ig_ref_status want[] = {
	    IG_REF_OK,		 IG_REF_NOT_FOUND,
	    IG_REF_NOT_FOUND,	 IG_REF_UNSUPPORTED_PROTOCOL,
	    IG_REF_INVALID_KIND, IG_REF_NOT_PERMITTED,
	    IG_REF_OK,		 IG_REF_INVALID_KIND,
	    IG_REF_OK,		 IG_REF_NOT_FOUND,
	};
	for (size_t i = 0; i < 10; i++) {
		if (b[i].status != want[i])
			fprintf(stderr, "backendRefs[%zu]: %d\n%s", i, b[i].status, out);
		assert_int_equal(b[i].status, want[i]);
	}
	assert_ptr_equal(b[0].service, ig_config_find_service(c, "a", "web"));
	assert_ptr_equal(b[6].service, ig_config_find_service(c, "c", "near"));
	assert_null(b[5].service);
	assert_ptr_equal(b[8].pool, ig_config_find_pool(c, "a", "p"));
	assert_null(b[9].pool);
	has(out, "w.yaml:57: warning: spec.rules[0].backendRefs[1].port: Service \"a/web\" has no "
		 "port 81\n");
	has(out, "spec.rules[0].backendRefs[2]: Service \"a/nope\" not found in the "
		 "configuration\n");
	has(out, "spec.rules[0].backendRefs[3].port: port 80 of Service \"a/grpc\" has appProtocol "
		 "kubernetes.io/grpc (UnsupportedProtocol): only http, kubernetes.io/h2c and "
		 "kubernetes.io/ws\n");
	has(out, "spec.rules[0].backendRefs[4]: Service \"a/ext\" is of type ExternalName, which "
		 "cannot be a backend\n");
	has(out, "spec.rules[0].backendRefs[5].namespace: reference to Service \"b/far\" from "
		 "namespace a needs a ReferenceGrant in namespace b (RefNotPermitted)\n");
	has(out, "spec.rules[0].backendRefs[7].kind: backend kind example.com/Thing is not "
		 "supported (InvalidKind): only Service and InferencePool\n");
	has(out, "spec.rules[0].backendRefs[9].group: InferencePool \"a/p\" is "
		 "inference.networking.k8s.io/v1: name it with group inference.networking.k8s.io "
		 "(BackendNotFound)\n");
	free(out);
	ig_config_free(c);
}

/* RefNotPermitted is decided before existence, so the status does not
 * tell whether an object the route may not see exists. */
static void test_not_permitted_hides_existence(void **state)
{
	char *out;
	struct ig_config *c =
	    load_warned(ROUTE_NS("a") "    - {name: ghost, namespace: b, port: 80}\n", &out);
	assert_int_equal(c->routes[0].rules[0].backends[0].status, IG_REF_NOT_PERMITTED);
	assert_null(strstr(out, "not found"));
	free(out);
	ig_config_free(c);
}

static void test_reference_allowed(void **state)
{
	struct ig_config *c = load_ok(GRANT(
	    "b", "a",
	    "{group: \"\", kind: Service, name: one}") "---\napiVersion: "
						       "gateway.networking.k8s.io/v1beta1\nkind: "
						       "ReferenceGrant\n"
						       "metadata: {name: all, namespace: "
						       "c}\nspec:\n"
						       "  from:\n  - {group: "
						       "gateway.networking.k8s.io, kind: Gateway, "
						       "namespace: infra}\n"
						       "  - {group: gateway.networking.k8s.io, "
						       "kind: HTTPRoute, namespace: x}\n"
						       "  to:\n  - {group: \"\", kind: Secret}\n"
						       "  - {group: inference.networking.k8s.io, "
						       "kind: InferencePool}\n");
	const char *gw = "gateway.networking.k8s.io";
	/* Same namespace needs no grant. */
	assert_true(ig_config_reference_allowed(c, gw, "HTTPRoute", "z", "", "Service", "z", "s"));
	assert_true(
	    ig_config_reference_allowed(c, gw, "HTTPRoute", "a", "", "Service", "b", "one"));
	assert_false(
	    ig_config_reference_allowed(c, gw, "HTTPRoute", "a", "", "Service", "b", "two"));
	assert_false(
	    ig_config_reference_allowed(c, gw, "HTTPRoute", "x", "", "Service", "b", "one"));
	assert_false(
	    ig_config_reference_allowed(c, gw, "GRPCRoute", "a", "", "Service", "b", "one"));
	assert_false(
	    ig_config_reference_allowed(c, gw, "HTTPRoute", "a", "", "Secret", "b", "one"));
	/* Grants are OR'd entry by entry; a `to` without name covers all. */
	assert_true(ig_config_reference_allowed(c, gw, "Gateway", "infra", "", "Secret", "c", "k"));
	assert_true(ig_config_reference_allowed(c, gw, "HTTPRoute", "x", "", "Secret", "c", "k"));
	assert_true(ig_config_reference_allowed(
	    c, gw, "HTTPRoute", "x", "inference.networking.k8s.io", "InferencePool", "c", "p"));
	assert_false(ig_config_reference_allowed(
	    c, gw, "HTTPRoute", "x", "inference.networking.x-k8s.io", "InferencePool", "c", "p"));
	/* A grant lives in the target's namespace. */
	assert_false(
	    ig_config_reference_allowed(c, gw, "Gateway", "infra", "", "Secret", "b", "k"));
	assert_int_equal(c->ngrants, 2);
	assert_null(c->grants[1].to[0].name);
	assert_string_equal(c->grants[1].to[0].group, "");
	ig_config_free(c);
}

/* ---- Service endpoints ---------------------------------------------------------- */

static void want_addrs(const struct ig_config *c, const char *svc_name, int port,
		       enum ig_endpoint_source want_src, const char *want)
{
	const struct ig_service *svc = ig_config_find_service(c, "a", svc_name);
	struct ig_service_addr *a;
	size_t n;
	enum ig_endpoint_source src;
	char got[256] = "";
	assert_non_null(svc);
	assert_int_equal(ig_config_service_endpoints(c, svc, port, &a, &n, &src), 0);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(got);
		snprintf(got + l, sizeof got - l, "%s%s:%d", i ? " " : "", a[i].ip, a[i].port);
	}
	free(a);
	assert_string_equal(got, want);
	assert_int_equal(src, want_src);
}

#define SLICE(name, svc, type, ports, eps)                                                         \
	"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " name      \
	"\n  namespace: a\n  labels: {kubernetes.io/service-name: " svc "}\naddressType: " type    \
	"\nports: " ports "\nendpoints: " eps "\n"
#define POD(name, ip, labels, status)                                                              \
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: a, labels: " labels \
	"}\nstatus: {podIP: " ip status "}\n"

static void test_service_endpoints(void **state)
{
	struct ig_config *c = load_ok(
	    /* clang-format off */
	    SVC("two", "a", "  ports: [{name: http, port: 80, targetPort: web}, {name: admin, port: 81}]\n")
	    SLICE("two-1", "two", "IPv4", "[{name: http, port: 8080}, {name: admin, port: 9090}]",
		  "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}},"
		  " {addresses: [10.0.0.3], conditions: {ready: true, serving: true}}]")
	    SLICE("two-2", "two", "IPv6", "[{name: http, port: 8080}]",
		  "[{addresses: [\"fd00::1\"]}, {addresses: [\"fd00::1\"]}]")
	    SLICE("two-3", "two", "IPv4", "[{name: http, port: 8080}]",
		  "[{addresses: [10.0.0.1, 10.0.0.4]}]")
	    SLICE("other", "else", "IPv4", "[{name: http, port: 1}]", "[{addresses: [10.9.9.9]}]")
	    SVC("old", "a", "  ports: [{port: 80, targetPort: 8000}]\n")
	    "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: old, namespace: a}\nsubsets:\n"
	    "- addresses: [{ip: 10.1.0.1}, {ip: 10.1.0.2, nodeName: n1}]\n"
	    "  notReadyAddresses: [{ip: 10.1.0.3}]\n  ports: [{port: 8000}]\n"
	    "- addresses: [{ip: 10.1.0.4}]\n  ports: [{port: 8000, name: other}]\n"
	    SVC("pods", "a", "  ports: [{name: a, port: 80, targetPort: 8000},"
			     " {name: \"n\", port: 81, targetPort: named}]\n")
	    SVC("pnr", "a", "  publishNotReadyAddresses: true\n  ports: [{port: 80}]\n")
	    SVC("empty", "a", "  ports: [{port: 80}]\n")
	    "---\napiVersion: v1\nkind: Service\nmetadata: {name: nosel, namespace: a}\n"
	    "spec: {selector: {}, ports: [{port: 80}]}\n"
	    SLICE("empty-1", "empty", "IPv4", "[]", "[]")
	    SVC("nulls", "a", "  ports: [{port: 80}]\n")
	    SLICE("nulls-1", "nulls", "IPv4", "[{port: 80}]", "null")
	    SVC("absent", "a", "  ports: [{port: 80}]\n")
	    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: absent-1\n"
	    "  namespace: a\n  labels: {kubernetes.io/service-name: absent}\naddressType: IPv4\n"
	    "ports: [{port: 80}]\n"
	    POD("p1", "10.2.0.1", "{app: pods}", "")
	    POD("p2", "10.2.0.2", "{app: pods}", ", conditions: [{type: Ready, status: \"False\"}]")
	    POD("p3", "10.2.0.3", "{app: pnr}", ", conditions: [{type: Ready, status: \"False\"}]")
	    POD("p4", "10.2.0.4", "{app: pods, x: z}", "")
	    /* clang-format on */
	);
	/* Slices: ports by the Service port's name, ready endpoints, each
	 * (ip, port) once across slices, IPv6 too. */
	want_addrs(c, "two", 80, IG_EPS_SLICES,
		   "10.0.0.1:8080 10.0.0.3:8080 fd00::1:8080 10.0.0.4:8080");
	want_addrs(c, "two", 81, IG_EPS_SLICES, "10.0.0.1:9090 10.0.0.3:9090");
	/* Endpoints: ready addresses of subsets whose port has the name. */
	want_addrs(c, "old", 80, IG_EPS_ENDPOINTS, "10.1.0.1:8000 10.1.0.2:8000");
	/* Pods: the selector over Ready pods; a named targetPort cannot be
	 * resolved without container ports. */
	want_addrs(c, "pods", 80, IG_EPS_PODS, "10.2.0.1:8000 10.2.0.4:8000");
	want_addrs(c, "pods", 81, IG_EPS_PODS, "");
	want_addrs(c, "pnr", 80, IG_EPS_PODS, "10.2.0.3:80");
	/* selector: {} selects nothing (the Pods labelled app: pods stay out). */
	want_addrs(c, "nosel", 80, IG_EPS_NONE, "");
	/* A slice that says "no endpoints" wins over the Pods. */
	want_addrs(c, "empty", 80, IG_EPS_SLICES, "");
	/* endpoints null or absent, as the API server stores and serves a
	 * slice of a Service with no endpoints (and as Gateway API's
	 * HTTPRouteServiceTypes creates them): none. */
	want_addrs(c, "nulls", 80, IG_EPS_SLICES, "");
	want_addrs(c, "absent", 80, IG_EPS_SLICES, "");
	ig_config_free(c);
}

/* ---- Secrets --------------------------------------------------------------------- */

static void test_secret_data(void **state)
{
	struct ig_config *c =
	    load_ok("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
		    "data:\n  a: aGVsbG8=\n  b: aGk=\n  c: \"\"\n  d: |\n    aGVs\n    bG8=\n"
		    "stringData:\n  b: plain\n  e: more\n");
	const struct ig_secret *s = ig_config_find_secret(c, "default", "s");
	assert_string_equal(s->type, "Opaque");
	assert_int_equal(s->nitems, 5);
	assert_string_equal((char *)ig_secret_get(s, "a")->bytes, "hello");
	assert_int_equal(ig_secret_get(s, "a")->len, 5);
	assert_string_equal((char *)ig_secret_get(s, "b")->bytes, "plain");
	assert_int_equal(ig_secret_get(s, "c")->len, 0);
	assert_string_equal((char *)ig_secret_get(s, "d")->bytes, "hello");
	assert_string_equal((char *)ig_secret_get(s, "e")->bytes, "more");
	assert_null(ig_secret_get(s, "f"));
	ig_config_free(c);
}

#define GW_TLS(ns, refs)                                                                           \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, "      \
	"namespace: " ns "}\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: https\n"        \
	"    protocol: HTTPS\n    port: 443\n    tls:\n      certificateRefs: " refs "\n"
#define TLS_SECRET(name, ns, crt, key)                                                             \
	"---\napiVersion: v1\nkind: Secret\nmetadata: {name: " name ", namespace: " ns "}\n"       \
	"type: kubernetes.io/tls\nstringData:\n  tls.crt: \"" crt "\"\n  tls.key: \"" key "\"\n"
/* A real EC P-256 pair (and PEM_CRT2 another certificate): the loader
 * loads certificateRefs and CA certificates with OpenSSL. PEM_* are
 * escaped for a double-quoted YAML scalar, *_TEXT are the loaded text. */
#define PEM_CRT                                                                                    \
	"-----BEGIN CERTIFICATE-----\\n"                                                           \
	"MIIBeTCCAR+gAwIBAgIUF3WacJQhITVNBgnG6k/zDqE4s50wCgYIKoZIzj0EAwIw\\n"                      \
	"ETEPMA0GA1UEAwwGYS50ZXN0MCAXDTI2MTIwNzA0NDAxMloYDzIxMjYxMTEzMDQ0\\n"                      \
	"MDEyWjARMQ8wDQYDVQQDDAZhLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\\n"                      \
	"AASSRxQuS3z9sIuERiBN9oquTHOwpA+GWlIebv6pUs9f6ataH6kiYs3Di06zCaaM\\n"                      \
	"MWblsNPf3MwlC+AFQcrfaiGwo1MwUTAdBgNVHQ4EFgQUlbFW8Gfny8OZlUemHLIT\\n"                      \
	"CVYo8cgwHwYDVR0jBBgwFoAUlbFW8Gfny8OZlUemHLITCVYo8cgwDwYDVR0TAQH/\\n"                      \
	"BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAlRge6m38H/wwC3wepsyg7hShB9M7\\n"                      \
	"6gZV1FUyaGwkPwUCIAYkeP7h/pb0eBAQRB5Xwg6GDg+Zy9sSNFA6oNTD4CTy\\n"                          \
	"-----END CERTIFICATE-----\\n"
#define PEM_KEY                                                                                    \
	"-----BEGIN PRIVATE KEY-----\\n"                                                           \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9f/riqIacDu+KwzN\\n"                      \
	"TxwGZ0yt2y1hQCuzzDA4DmRF0iOhRANCAASSRxQuS3z9sIuERiBN9oquTHOwpA+G\\n"                      \
	"WlIebv6pUs9f6ataH6kiYs3Di06zCaaMMWblsNPf3MwlC+AFQcrfaiGw\\n"                              \
	"-----END PRIVATE KEY-----\\n"
#define PEM_CRT_TEXT                                                                               \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBeTCCAR+gAwIBAgIUF3WacJQhITVNBgnG6k/zDqE4s50wCgYIKoZIzj0EAwIw\n"                       \
	"ETEPMA0GA1UEAwwGYS50ZXN0MCAXDTI2MTIwNzA0NDAxMloYDzIxMjYxMTEzMDQ0\n"                       \
	"MDEyWjARMQ8wDQYDVQQDDAZhLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"                       \
	"AASSRxQuS3z9sIuERiBN9oquTHOwpA+GWlIebv6pUs9f6ataH6kiYs3Di06zCaaM\n"                       \
	"MWblsNPf3MwlC+AFQcrfaiGwo1MwUTAdBgNVHQ4EFgQUlbFW8Gfny8OZlUemHLIT\n"                       \
	"CVYo8cgwHwYDVR0jBBgwFoAUlbFW8Gfny8OZlUemHLITCVYo8cgwDwYDVR0TAQH/\n"                       \
	"BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAlRge6m38H/wwC3wepsyg7hShB9M7\n"                       \
	"6gZV1FUyaGwkPwUCIAYkeP7h/pb0eBAQRB5Xwg6GDg+Zy9sSNFA6oNTD4CTy\n"                           \
	"-----END CERTIFICATE-----\n"
#define PEM_KEY_TEXT                                                                               \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9f/riqIacDu+KwzN\n"                       \
	"TxwGZ0yt2y1hQCuzzDA4DmRF0iOhRANCAASSRxQuS3z9sIuERiBN9oquTHOwpA+G\n"                       \
	"WlIebv6pUs9f6ataH6kiYs3Di06zCaaMMWblsNPf3MwlC+AFQcrfaiGw\n"                               \
	"-----END PRIVATE KEY-----\n"
#define PEM_CRT2                                                                                   \
	"-----BEGIN CERTIFICATE-----\\n"                                                           \
	"MIIBeTCCAR+gAwIBAgIUQR52gYiDcvJ0Pp2PQBepX8cSoCowCgYIKoZIzj0EAwIw\\n"                      \
	"ETEPMA0GA1UEAwwGYi50ZXN0MCAXDTI2MTIwNzA0NDAxMloYDzIxMjYxMTEzMDQ0\\n"                      \
	"MDEyWjARMQ8wDQYDVQQDDAZiLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\\n"                      \
	"AAQ0UgGIPr4MuY8Pu1WJtJFo0s5eNfes/x3PQO7KAw3ycl+VEBGF7minVepxUkzF\\n"                      \
	"worDnhUumDb1dqycHxOdYKdHo1MwUTAdBgNVHQ4EFgQUxpk0KeXD3vykrwRraLkh\\n"                      \
	"UAvF1pQwHwYDVR0jBBgwFoAUxpk0KeXD3vykrwRraLkhUAvF1pQwDwYDVR0TAQH/\\n"                      \
	"BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAskWP8SZEU+9BkpP/ggio4LjagdQm\\n"                      \
	"xFxore+X3eMwaRMCIFK6KeXuiSPnhIPI/2AAT29mfTWXc4UAHyIMZSq4yxWy\\n"                          \
	"-----END CERTIFICATE-----\\n"
#define PEM_CRT2_TEXT                                                                              \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBeTCCAR+gAwIBAgIUQR52gYiDcvJ0Pp2PQBepX8cSoCowCgYIKoZIzj0EAwIw\n"                       \
	"ETEPMA0GA1UEAwwGYi50ZXN0MCAXDTI2MTIwNzA0NDAxMloYDzIxMjYxMTEzMDQ0\n"                       \
	"MDEyWjARMQ8wDQYDVQQDDAZiLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"                       \
	"AAQ0UgGIPr4MuY8Pu1WJtJFo0s5eNfes/x3PQO7KAw3ycl+VEBGF7minVepxUkzF\n"                       \
	"worDnhUumDb1dqycHxOdYKdHo1MwUTAdBgNVHQ4EFgQUxpk0KeXD3vykrwRraLkh\n"                       \
	"UAvF1pQwHwYDVR0jBBgwFoAUxpk0KeXD3vykrwRraLkhUAvF1pQwDwYDVR0TAQH/\n"                       \
	"BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAskWP8SZEU+9BkpP/ggio4LjagdQm\n"                       \
	"xFxore+X3eMwaRMCIFK6KeXuiSPnhIPI/2AAT29mfTWXc4UAHyIMZSq4yxWy\n"                           \
	"-----END CERTIFICATE-----\n"

static void test_certificate_refs(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    GW_TLS("infra", "[{name: good}, {name: nokey}, {name: away, namespace: certs},"
			    " {name: granted, namespace: shared}]")
	    TLS_SECRET("good", "infra", PEM_CRT, PEM_KEY)
	    TLS_SECRET("nokey", "infra", PEM_CRT, "not pem")
	    TLS_SECRET("away", "certs", PEM_CRT, PEM_KEY)
	    TLS_SECRET("granted", "shared", PEM_CRT, PEM_KEY)
	    "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
	    "metadata: {name: g, namespace: shared}\nspec:\n"
	    "  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]\n"
	    "  to: [{group: \"\", kind: Secret}]\n",
	    /* clang-format on */
	    &out);
	const struct ig_cert_ref *r = c->gateways[0].listeners[0].tls.certs;
	assert_int_equal(r[0].status, IG_REF_OK);
	assert_int_equal(r[1].status, IG_REF_INVALID);
	assert_int_equal(r[2].status, IG_REF_NOT_PERMITTED);
	assert_null(r[2].secret);
	/* Reachable, but a second ECDSA certificate for the listener: OpenSSL
	 * holds one per key type, so this reference is the invalid one. */
	assert_int_equal(r[3].status, IG_REF_INVALID);
	assert_string_equal(r[3].secret->meta.ns, "shared");
	assert_string_equal(r[3].why, "Secret \"shared/granted\": a certificate with a key of "
				      "this type is already given for this hostname");
	assert_string_equal((char *)ig_secret_get(r[0].secret, "tls.key")->bytes, PEM_KEY_TEXT);
	has(out, "spec.listeners[0].tls.certificateRefs[3]: Secret \"shared/granted\": a "
		 "certificate with a key of this type is already given for this hostname "
		 "(InvalidCertificateRef)\n");
	has(out, "spec.listeners[0].tls.certificateRefs[1]: Secret \"infra/nokey\" has no PEM "
		 "private key in tls.key (InvalidCertificateRef)\n");
	has(out, "spec.listeners[0].tls.certificateRefs[2].namespace: reference to Secret "
		 "\"certs/away\" from namespace infra needs a ReferenceGrant in namespace certs "
		 "(RefNotPermitted)\n");
	assert_null(strstr(out, "no usable certificate"));
	free(out);
	ig_config_free(c);
}

/* ---- ListenerSets (Gateway API v1.5; XListenerSet of v1.3-v1.4) ----------------------- */

#define LSET(name, ns, ts, parent, listeners)                                                      \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {name: " name \
	", namespace: " ns ts "}\nspec:\n  parentRef: " parent "\n  listeners:\n" listeners

static const struct ig_listener_set *lset(const struct ig_config *c, const char *ns,
					  const char *name)
{
	const struct ig_listener_set *ls =
	    ig_config_find_listener_set(c, "gateway.networking.k8s.io", "ListenerSet", ns, name);
	assert_non_null(ls);
	return ls;
}

static const struct ig_listener *lset_listener(const struct ig_listener_set *ls, const char *name)
{
	for (size_t i = 0; i < ls->nlisteners; i++)
		if (!strcmp(ls->listeners[i].name, name))
			return &ls->listeners[i];
	fail_msg("no listener %s", name);
	return NULL;
}

#define GW_ADDRS(addrs)                                                                            \
	"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"                                \
	"metadata: {name: gw}\nspec:\n  gatewayClassName: c\n  addresses:\n" addrs                 \
	"  listeners: [{name: a, port: 80, protocol: HTTP}]\n"

/* spec.addresses as the CRD reads it: the type defaults to IPAddress, an
 * empty value is none; IPAddress values are IPs and Hostname values
 * hostnames, each unique within its type; other types pass the loader
 * (the gateway decides what it serves). */
static void test_gateway_addresses(void **state)
{
	char *warned;
	struct ig_config *c =
	    load_warned(GW_ADDRS("  - {value: 10.1.2.3}\n"
				 "  - {type: IPAddress, value: \"::1\"}\n"
				 "  - {type: IPAddress}\n"
				 "  - {type: IPAddress, value: \"\"}\n"
				 "  - {type: Hostname, value: gw.example.com}\n"
				 "  - {type: example.com/pool, value: \"any thing!\"}\n"),
			&warned);
	/* Types infergate does not serve load, with a warning (addresses.c
	 * keeps the Gateway from being served). */
	has(warned, "w.yaml:11: warning: spec.addresses[4].type: infergate serves IPAddress "
		    "addresses only");
	has(warned, "spec.addresses[5].type: infergate serves IPAddress addresses only");
	free(warned);
	const struct ig_gateway *gw = &c->gateways[0];
	assert_int_equal(gw->naddresses, 6);
	assert_string_equal(gw->addresses[0].type, "IPAddress");
	assert_string_equal(gw->addresses[0].value, "10.1.2.3");
	assert_string_equal(gw->addresses[1].value, "::1");
	assert_null(gw->addresses[2].value);
	assert_null(gw->addresses[3].value);
	assert_string_equal(gw->addresses[4].type, "Hostname");
	assert_string_equal(gw->addresses[5].type, "example.com/pool");
	ig_config_free(c);

	static const struct {
		const char *addrs, *err;
	} bad[] = {
	    {"  - {value: 10.1.2}\n", "spec.addresses[0].value: 10.1.2 is not an IP address"},
	    {"  - {type: Hostname, value: \"-x.com\"}\n",
	     "spec.addresses[0].value: -x.com is not a hostname"},
	    {"  - {type: Bogus, value: x}\n", "spec.addresses[0].type: must be IPAddress"},
	    {"  - {type: \"example.com/\"}\n", "spec.addresses[0].type: must be IPAddress"},
	    {"  - {value: 10.1.2.3}\n  - {type: IPAddress}\n  - {value: 10.1.2.3}\n",
	     "spec.addresses[2].value: IPAddress values must be unique"},
	    {"  - {value: 10.1.2.3, port: 1}\n", "spec.addresses[0].port: unknown field"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[1024];
		snprintf(text, sizeof text, GW_ADDRS("%s"), bad[i].addrs);
		load_fails_with(text, bad[i].err);
	}
	/* Values repeat across types, and a Hostname may repeat an IP's. */
	c = load_ok(GW_ADDRS("  - {type: Hostname, value: a.com}\n"
			     "  - {type: example.com/x, value: a.com}\n"));
	ig_config_free(c);
	char many[2048] = "";
	for (int i = 0; i < 17; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many),
			 "  - {value: 10.0.0.%d}\n", i);
	char text[4096];
	snprintf(text, sizeof text, GW_ADDRS("%s"), many);
	load_fails_with(text, "spec.addresses: must have at most 16 items");
}

/* ---- GRPCRoute ---------------------------------------------------------------- */

static const char grpc_base[] = "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n"
				"spec: {ports: [{port: 80}]}\n---\n"
				"apiVersion: v1\nkind: Service\nmetadata: {name: h2c}\n"
				"spec: {ports: [{port: 80, appProtocol: kubernetes.io/h2c}]}\n---\n"
				"apiVersion: v1\nkind: Service\nmetadata: {name: http}\n"
				"spec: {ports: [{port: 80, appProtocol: http}]}\n---\n";

/* A GRPCRoute document around one rule (YAML flow style). */
static char *grpc_doc(const char *api, const char *rule)
{
	char *out = NULL;
	assert_true(asprintf(&out,
			     "%sapiVersion: gateway.networking.k8s.io/%s\nkind: GRPCRoute\n"
			     "metadata: {name: g}\nspec:\n  rules:\n  - %s\n",
			     grpc_base, api, rule) > 0);
	return out;
}

static void test_grpcroute(void **state)
{
	char *text = grpc_doc(
	    "v1", "{matches: [{method: {service: pkg.Svc, method: Get}},"
		  " {method: {service: .pkg.Svc}}, {method: {method: List}},"
		  " {method: {type: RegularExpression, service: \"a.*\", method: \"G[a-z]+\"}},"
		  " {headers: [{name: x-v, value: \"2\"}]}],"
		  " filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a,"
		  " value: b}]}}],"
		  " backendRefs: [{name: plain, port: 80}, {name: h2c, port: 80},"
		  " {name: http, port: 80}]}");
	char *diags = NULL;
	struct ig_config *c = load_warned(text, &diags);
	has(diags,
	    "has appProtocol http (UnsupportedProtocol): a GRPCRoute's backend speaks HTTP/2");
	free(diags);
	assert_int_equal(c->nroutes, 1);
	const struct ig_httproute *r = &c->routes[0];
	assert_true(r->grpc);
	assert_string_equal(r->meta.kind, "GRPCRoute");
	const struct ig_route_rule *ru = &r->rules[0];
	assert_int_equal(ru->nmatches, 5);
	/* Each method match as the path it stands for. */
	assert_int_equal(ru->matches[0].path_type, IG_PATH_EXACT);
	assert_string_equal(ru->matches[0].path, "/pkg.Svc/Get");
	assert_string_equal(ru->matches[0].grpc.service, "pkg.Svc");
	assert_string_equal(ru->matches[0].grpc.method, "Get");
	assert_int_equal(ru->matches[1].path_type, IG_PATH_PREFIX);
	assert_string_equal(ru->matches[1].path, "/.pkg.Svc/");
	assert_int_equal(ru->matches[2].path_type, IG_PATH_REGEX);
	assert_string_equal(ru->matches[2].path, "/[^/]+/List");
	assert_int_equal(ru->matches[3].path_type, IG_PATH_REGEX);
	assert_string_equal(ru->matches[3].path, "/(a.*)/(G[a-z]+)");
	assert_false(ru->matches[4].grpc.set);
	assert_string_equal(ru->matches[4].path, "/");
	assert_int_equal(ru->matches[4].nheaders, 1);
	assert_int_equal(ru->nfilters, 1);
	/* A Service with no appProtocol is h2c for a GRPCRoute; http is not. */
	assert_int_equal(ru->backends[0].status, IG_REF_OK);
	assert_true(ru->backends[0].h2c);
	assert_int_equal(ru->backends[1].status, IG_REF_OK);
	assert_true(ru->backends[1].h2c);
	assert_int_equal(ru->backends[2].status, IG_REF_UNSUPPORTED_PROTOCOL);
	ig_config_free(c);
	free(text);

	/* v1alpha2 loads the same; an InferencePool is no GRPCRoute backend. */
	text = grpc_doc("v1alpha2", "{backendRefs: [{group: inference.networking.k8s.io, kind: "
				    "InferencePool, name: p}]}");
	c = load_warned(text, &diags);
	has(diags, "a GRPCRoute cannot route to an InferencePool (InvalidKind)");
	assert_int_equal(c->routes[0].rules[0].backends[0].status, IG_REF_INVALID_KIND);
	free(diags);
	ig_config_free(c);
	free(text);

	static const struct {
		const char *rule, *err;
	} bad[] = {
	    {"{matches: [{method: {type: Exact}}]}",
	     "One or both of 'service' or 'method' must be specified"},
	    {"{matches: [{method: {service: \"\", method: \"\"}}]}",
	     "One or both of 'service' or 'method' must be specified"},
	    {"{matches: [{method: {service: a/b}}]}", "service must only contain valid characters"},
	    {"{matches: [{method: {service: 1a}}]}", "service must only contain valid characters"},
	    {"{matches: [{method: {service: a..b}}]}",
	     "service must only contain valid characters"},
	    {"{matches: [{method: {method: Get.X}}]}", "method must only contain valid characters"},
	    {"{matches: [{method: {type: Prefix, method: Get}}]}", "type"},
	    {"{matches: [{method: {type: RegularExpression, service: \"(\"}}]}",
	     "POSIX extended regular expressions"},
	    {"{matches: [{path: {value: /x}}]}", "path"},
	    {"{filters: [{type: URLRewrite, urlRewrite: {hostname: a}}]}",
	     "must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, "
	     "ExtensionRef"},
	    {"{timeouts: {request: 1s}}", "timeouts"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		text = grpc_doc("v1", bad[i].rule);
		load_fails_with(text, bad[i].err);
		free(text);
	}
}

/* spec.infrastructure: labels and annotations are checked as the CRD
 * does and kept nowhere (infergate creates nothing to put them on); a
 * parametersRef makes the Gateway one that is not accepted. */
static void test_gateway_infrastructure(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: gw}\nspec:\n  gatewayClassName: c\n"
	    "  infrastructure:\n    labels: {team: llm, example.com/tier: gold}\n"
	    "    annotations: {example.com/note: \"any text, at all\"}\n"
	    "  listeners: [{name: a, port: 80, protocol: HTTP}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: params}\nspec:\n  gatewayClassName: c\n"
	    "  infrastructure:\n    parametersRef: {group: example.com, kind: GwParams, name: p}\n"
	    "  listeners: [{name: a, port: 81, protocol: HTTP}]\n",
	    &out);
	assert_null(c->gateways[0].params_kind);
	assert_true(ig_gateway_servable(&c->gateways[0]));
	assert_string_equal(c->gateways[1].params_kind, "GwParams");
	assert_false(ig_gateway_servable(&c->gateways[1]));
	has(out,
	    "spec.infrastructure.parametersRef: infergate takes no parameters (kind GwParams)");
	free(out);
	ig_config_free(c);
	static const struct {
		const char *infra, *err;
	} bad[] = {
	    {"{labels: {a: \"b c\"}}", "spec.infrastructure.labels.a: invalid label value"},
	    {"{labels: {a: '1', b: '2', c: '3', d: '4', e: '5', f: '6', g: '7', h: '8', i: '9'}}",
	     "spec.infrastructure.labels: at most 8 labels"},
	    {"{annotations: {\"-bad\": x}}", "spec.infrastructure.annotations.-bad: invalid "
					     "annotation key"},
	    {"{parametersRef: {group: example.com, name: p}}",
	     "spec.infrastructure.parametersRef.kind: is required"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[1024];
		snprintf(
		    text, sizeof text,
		    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
		    "metadata: {name: gw}\nspec:\n  gatewayClassName: c\n"
		    "  infrastructure: %s\n  listeners: [{name: a, port: 80, protocol: HTTP}]\n",
		    bad[i].infra);
		load_fails_with(text, bad[i].err);
	}
}

/* Who may attach (allowedListeners), the merged list in precedence order
 * (the Gateway's own, then ListenerSets oldest first, then by
 * namespace/name), and which listeners give way to an earlier one: the
 * same port with another protocol, or the same port, protocol and
 * hostname. A ListenerSet left with no listener it can serve is not
 * accepted, and none of its listeners is merged. */
static void test_listener_sets(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: c\n"
	    "  allowedListeners: {namespaces: {from: Selector, selector: {matchLabels: {ls: ok}}}}\n"
	    "  listeners:\n"
	    "  - {name: a, port: 80, protocol: HTTP, hostname: a.com}\n"
	    "  - {name: b, port: 80, protocol: HTTP, hostname: b.com}\n"
	    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: apps, labels: {ls: ok}}\n"
	    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: infra}\n"
	    LSET("older", "apps", ", creationTimestamp: \"2026-01-01T00:00:01Z\"",
		 "{name: gw, namespace: infra}",
		 "  - {name: own, port: 80, protocol: HTTP, hostname: own.com}\n"
		 "  - {name: b, port: 80, protocol: HTTP, hostname: b.com}\n"
		 "  - {name: tcp, port: 80, protocol: TCP}\n"
		 "  - {name: shared, port: 80, protocol: HTTP, hostname: shared.com}\n"
		 "  - {name: other-port, port: 8080, protocol: HTTPS, hostname: b.com,"
		 " tls: {certificateRefs: [{name: cert}]}}\n")
	    LSET("aaa-newer", "apps", ", creationTimestamp: \"2026-01-01T00:00:02Z\"",
		 "{name: gw, namespace: infra}",
		 "  - {name: shared, port: 80, protocol: HTTP, hostname: shared.com}\n")
	    LSET("same-ns", "infra", "", "{name: gw}",
		 "  - {name: x, port: 81, protocol: HTTP}\n")
	    LSET("orphan", "apps", "", "{name: nope, namespace: infra}",
		 "  - {name: x, port: 82, protocol: HTTP}\n")
	    TLS_SECRET("cert", "apps", PEM_CRT, PEM_KEY),
	    /* clang-format on */
	    &out);
	const struct ig_gateway *gw = &c->gateways[0];
	assert_int_equal(gw->listeners_from, IG_FROM_SELECTOR);
	const struct ig_listener_set *older = lset(c, "apps", "older");
	const struct ig_listener_set *newer = lset(c, "apps", "aaa-newer");
	assert_int_equal(older->state, IG_LSET_ACCEPTED);
	assert_ptr_equal(older->gw, gw);
	assert_ptr_equal(older->listeners[0].set, older);
	assert_null(gw->listeners[0].set);
	assert_int_equal(lset_listener(older, "own")->conflict, IG_CONFLICT_NONE);
	assert_int_equal(lset_listener(older, "b")->conflict, IG_CONFLICT_HOSTNAME);
	assert_int_equal(lset_listener(older, "tcp")->conflict, IG_CONFLICT_PROTOCOL);
	assert_int_equal(lset_listener(older, "shared")->conflict, IG_CONFLICT_NONE);
	assert_int_equal(lset_listener(older, "other-port")->conflict, IG_CONFLICT_NONE);
	assert_true(ig_listener_set_listener_valid(gw, lset_listener(older, "other-port")));
	assert_false(ig_listener_set_listener_valid(gw, lset_listener(older, "b")));
	/* Newer, though first by name: its only listener gives way. */
	assert_int_equal(newer->listeners[0].conflict, IG_CONFLICT_HOSTNAME);
	assert_int_equal(newer->state, IG_LSET_LISTENERS_NOT_VALID);
	assert_int_equal(lset(c, "infra", "same-ns")->state, IG_LSET_NOT_ALLOWED);
	assert_int_equal(lset(c, "apps", "orphan")->state, IG_LSET_NO_PARENT);
	assert_null(lset(c, "apps", "orphan")->gw);
	/* Merged: a, b, then older's own, shared and other-port. */
	assert_int_equal(ig_gateway_nlisteners(gw), 5);
	const char *want[] = {"a", "b", "own", "shared", "other-port"};
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(ig_gateway_listener(gw, i)->name, want[i]);
	assert_ptr_equal(ig_gateway_listener(gw, 2)->set, older);
	has(out, "Gateway \"infra/gw\" does not admit ListenerSets from namespace infra "
		 "(spec.allowedListeners): its listeners are not served (NotAllowed)");
	has(out, "no listener of ListenerSet \"apps/aaa-newer\" can be served");
	has(out, "spec.parentRef: Gateway \"infra/nope\" not found in the configuration");
	free(out);
	ig_config_free(c);
}

/* allowedListeners defaults to None; Same admits the Gateway's own
 * namespace; an XListenerSet (v1alpha1) may leave a port out, which
 * infergate cannot assign; routes name either kind as a parent. A
 * ListenerSet's certificateRefs need a ReferenceGrant from kind
 * ListenerSet: the Gateway's does not extend to it. */
static void test_listener_set_kinds_and_grants(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: closed, namespace: infra}\nspec:\n  gatewayClassName: c\n"
	    "  listeners: [{name: a, port: 80, protocol: HTTP}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: c\n"
	    "  allowedListeners: {namespaces: {from: Same}}\n"
	    "  listeners: [{name: a, port: 80, protocol: HTTP}]\n"
	    LSET("knocks", "infra", "", "{name: closed}",
		 "  - {name: x, port: 81, protocol: HTTP}\n")
	    "---\napiVersion: gateway.networking.x-k8s.io/v1alpha1\nkind: XListenerSet\n"
	    "metadata: {name: x, namespace: infra}\nspec:\n  parentRef: {name: gw}\n  listeners:\n"
	    "  - {name: noport, protocol: HTTP, hostname: n.com}\n"
	    "  - {name: granted, port: 443, protocol: HTTPS, hostname: g.com,"
	    " tls: {certificateRefs: [{name: c1, namespace: certs}]}}\n"
	    LSET("denied", "infra", "", "{name: gw}",
		 "  - {name: d, port: 443, protocol: HTTPS, hostname: d.com,"
		 " tls: {certificateRefs: [{name: c1, namespace: certs}]}}\n")
	    TLS_SECRET("c1", "certs", PEM_CRT, PEM_KEY)
	    "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
	    "metadata: {name: g, namespace: certs}\nspec:\n"
	    "  from:\n  - {group: gateway.networking.x-k8s.io, kind: XListenerSet, namespace: infra}\n"
	    "  - {group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}\n"
	    "  to: [{group: \"\", kind: Secret}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
	    "metadata: {name: r, namespace: infra}\nspec:\n  parentRefs:\n"
	    "  - {group: gateway.networking.x-k8s.io, kind: XListenerSet, name: x}\n"
	    "  - {kind: ListenerSet, name: denied}\n  - {kind: ListenerSet, name: ghost}\n",
	    /* clang-format on */
	    &out);
	assert_int_equal(c->gateways[0].listeners_from, IG_FROM_NONE);
	assert_int_equal(lset(c, "infra", "knocks")->state, IG_LSET_NOT_ALLOWED);
	const struct ig_listener_set *x = ig_config_find_listener_set(
	    c, "gateway.networking.x-k8s.io", "XListenerSet", "infra", "x");
	assert_non_null(x);
	assert_null(ig_config_find_listener_set(c, "gateway.networking.k8s.io", "XListenerSet",
						"infra", "x"));
	assert_int_equal(x->state, IG_LSET_ACCEPTED);
	assert_int_equal(x->listeners[0].port, 0);
	assert_false(ig_listener_set_listener_valid(x->gw, &x->listeners[0]));
	assert_int_equal(x->listeners[1].tls.certs[0].status, IG_REF_OK);
	const struct ig_listener_set *denied = lset(c, "infra", "denied");
	assert_int_equal(denied->listeners[0].tls.certs[0].status, IG_REF_NOT_PERMITTED);
	assert_int_equal(denied->state, IG_LSET_LISTENERS_NOT_VALID);
	/* gw serves a and x's granted listener only. */
	assert_int_equal(ig_gateway_nlisteners(&c->gateways[1]), 2);
	assert_string_equal(ig_gateway_listener(&c->gateways[1], 1)->name, "granted");
	has(out, "spec.listeners[0].port: no port: infergate assigns none (UnsupportedPort)");
	has(out, "from namespace infra needs a ReferenceGrant in namespace certs from kind "
		 "ListenerSet");
	has(out, "spec.parentRefs[2]: ListenerSet \"infra/ghost\" not found in the configuration");
	assert_null(strstr(out, "is not supported: only Gateways"));
	free(out);
	ig_config_free(c);
}

/* ---- ConfigMaps and BackendTLSPolicy ------------------------------------------------ */

static void test_configmap_data(void **state)
{
	struct ig_config *c =
	    load_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: a}\n"
		    "immutable: true\nbinaryData: {blob: aGk=}\n"
		    "data:\n  a: hello\n  b: \"\"\n  c:\n  ca.crt: |\n    line 1\n    line 2\n");
	assert_int_equal(c->nconfigmaps, 1);
	const struct ig_configmap *cm = ig_config_find_configmap(c, "a", "cm");
	assert_ptr_equal(cm, &c->configmaps[0]);
	assert_null(ig_config_find_configmap(c, "default", "cm"));
	assert_int_equal(cm->nitems, 4); /* binaryData is not kept */
	assert_string_equal(cm->items[0].key, "a");
	assert_string_equal((char *)cm->items[0].bytes, "hello");
	assert_int_equal(cm->items[0].len, 5);
	assert_int_equal(cm->items[1].len, 0);
	assert_string_equal((char *)cm->items[2].bytes, "");
	assert_string_equal(cm->items[3].key, "ca.crt");
	assert_string_equal((char *)cm->items[3].bytes, "line 1\nline 2\n");
	assert_int_equal(cm->items[3].len, 14);
	ig_config_free(c);
	(void)state;
}

#define BTLS(api, name, meta, targets, validation)                                                 \
	"---\napiVersion: gateway.networking.k8s.io/" api "\nkind: BackendTLSPolicy\n"             \
	"metadata: {name: " name ", namespace: a" meta "}\nspec:\n  targetRefs: " targets "\n"     \
	"  validation: " validation "\n"
#define CA_CM(name, data)                                                                          \
	"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: " name ", namespace: a}\n"         \
	"data: " data "\n"
#define BTLS_SVC(svc) "[{group: \"\", kind: Service, name: " svc "}]"
#define BTLS_PORT(svc, port) "[{group: \"\", kind: Service, name: " svc ", sectionName: " port "}]"
#define CA_REF(name) "{group: \"\", kind: ConfigMap, name: " name "}"
#define SYSTEM(host) "{wellKnownCACertificates: System, hostname: " host "}"

/* ---- Gateway spec.tls.frontend: client certificate validation ---------------------- */

#define GW_FRONTEND(frontend)                                                                      \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, "      \
	"namespace: a}\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: https\n"             \
	"    protocol: HTTPS\n    port: 443\n    tls: {certificateRefs: [{name: s}]}\n"            \
	"  tls:\n    frontend:\n" frontend

/* The default applies to every port but those perPort names; a perPort
 * entry without validation turns it off there. Valid refs' CAs are
 * joined; the first invalid one gives the listener's ResolvedRefs
 * reason, and a validation without any valid one has nvalid 0. */
static void test_frontend_validation(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    GW_FRONTEND("      default:\n        validation:\n"
			"          caCertificateRefs: [" CA_REF("ca") ", " CA_REF("nope") ", "
			"{group: \"\", kind: Secret, name: ca}, " CA_REF("ca2") "]\n"
			"      perPort:\n"
			"      - {port: 8443, tls: {}}\n"
			"      - port: 9443\n        tls:\n          validation:\n"
			"            mode: AllowInsecureFallback\n"
			"            caCertificateRefs: [{group: \"\", kind: ConfigMap, name: far, "
			"namespace: b}]\n")
	    CA_CM("ca", "{ca.crt: \"" PEM_CRT "\"}")
	    CA_CM("ca2", "{ca.crt: \"" PEM_CRT2 "\"}")
	    "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: far, namespace: b}\n"
	    "data: {ca.crt: \"" PEM_CRT "\"}\n",
	    /* clang-format on */
	    &out);
	const struct ig_gateway *gw = &c->gateways[0];
	const struct ig_frontend_validation *v = ig_gateway_frontend(gw, 443);
	assert_ptr_equal(v, &gw->frontend);
	assert_false(v->insecure_fallback);
	assert_int_equal(v->nrefs, 4);
	assert_int_equal(v->nvalid, 2);
	assert_string_equal(v->ca_pem, PEM_CRT_TEXT "\n" PEM_CRT2_TEXT);
	assert_string_equal(v->refs_reason, "InvalidCACertificateRef");
	has(out, "caCertificateRefs[1]: ConfigMap \"a/nope\" not found (InvalidCACertificateRef)");
	has(out, "caCertificateRefs[2]: kind Secret is not supported: only ConfigMap "
		 "(InvalidCACertificateKind)");
	assert_null(ig_gateway_frontend(gw, 8443));
	v = ig_gateway_frontend(gw, 9443);
	assert_non_null(v);
	assert_true(v->insecure_fallback);
	assert_int_equal(v->nvalid, 0); /* another namespace, no ReferenceGrant */
	assert_string_equal(v->refs_reason, "RefNotPermitted");
	has(out, "no caCertificateRef is valid: the HTTPS listeners it covers are not served "
		 "(NoValidCACertificate)");
	free(out);
	ig_config_free(c);
	(void)state;
}

/* A listener's own tls.frontendValidation (Gateway API v1.1-v1.3) comes
 * before the Gateway's spec.tls.frontend for that listener alone. */
static void test_listener_frontend_validation(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: gw, namespace: a}\nspec:\n  gatewayClassName: c\n  listeners:\n"
	    "  - name: own\n    protocol: HTTPS\n    port: 443\n    hostname: own.example.com\n"
	    "    tls:\n      certificateRefs: [{name: s}]\n"
	    "      frontendValidation: {caCertificateRefs: [" CA_REF("ca2") "]}\n"
	    "  - name: other\n    protocol: HTTPS\n    port: 443\n"
	    "    tls: {certificateRefs: [{name: s}]}\n"
	    "  tls:\n    frontend:\n      default:\n        validation:\n"
	    "          caCertificateRefs: [" CA_REF("ca") "]\n"
	    TLS_SECRET("s", "a", PEM_CRT, PEM_KEY)
	    CA_CM("ca", "{ca.crt: \"" PEM_CRT "\"}")
	    CA_CM("ca2", "{ca.crt: \"" PEM_CRT2 "\"}"),
	    /* clang-format on */
	    &out);
	const struct ig_gateway *gw = &c->gateways[0];
	const struct ig_frontend_validation *own = ig_listener_frontend(gw, &gw->listeners[0]);
	const struct ig_frontend_validation *other = ig_listener_frontend(gw, &gw->listeners[1]);
	assert_ptr_equal(own, &gw->listeners[0].tls.frontend);
	assert_ptr_equal(other, &gw->frontend);
	assert_int_equal(own->nvalid, 1);
	assert_non_null(strstr(own->ca_pem, PEM_CRT2_TEXT));
	assert_non_null(strstr(other->ca_pem, PEM_CRT_TEXT));
	assert_string_equal(out, "");
	free(out);
	ig_config_free(c);
	(void)state;
}

/* spec.tls.backend.clientCertificateRef resolves as certificateRefs do,
 * with the Gateway's own reason when the Secret is unusable. */
static void test_backend_client_certificate(void **state)
{
	static const struct {
		const char *ref;
		enum ig_ref_status want;
		const char *diag;
	} cases[] = {
	    {"{name: good}", IG_REF_OK, NULL},
	    {"{name: bad}", IG_REF_INVALID,
	     "spec.tls.backend.clientCertificateRef: Secret \"a/bad\" has no PEM private key in "
	     "tls.key (InvalidClientCertificateRef)"},
	    {"{name: none}", IG_REF_NOT_FOUND, "Secret \"a/none\" not found"},
	    {"{name: good, namespace: b}", IG_REF_NOT_PERMITTED, "(RefNotPermitted)"},
	    {"{name: good, kind: ConfigMap}", IG_REF_INVALID_KIND,
	     "certificates must be core Secrets, not ConfigMap (InvalidClientCertificateRef)"},
	};
	for (size_t i = 0; i < 2 * sizeof cases / sizeof cases[0]; i++) {
		/* Each case twice: as Gateway API v1.4 writes it, and as v1.2. */
		bool v1_2 = i >= sizeof cases / sizeof cases[0];
		char text[8192], *out;
		snprintf(text, sizeof text,
			 "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
			 "metadata: {name: gw, namespace: a}\nspec:\n  gatewayClassName: c\n"
			 "  listeners: [{name: h, protocol: HTTP, port: 80}]\n"
			 "%s      clientCertificateRef: %s\n" TLS_SECRET(
			     "good", "a", PEM_CRT, PEM_KEY) TLS_SECRET("bad", "a", PEM_CRT, "x")
			     TLS_SECRET("good", "b", PEM_CRT, PEM_KEY),
			 v1_2 ? "  backendTLS:\n" : "  tls:\n    backend:\n",
			 cases[i % (sizeof cases / sizeof cases[0])].ref);
		size_t k = i % (sizeof cases / sizeof cases[0]);
		struct ig_config *c = load_warned(text, &out);
		const struct ig_gateway *gw = &c->gateways[0];
		assert_true(gw->has_backend_client);
		assert_int_equal(gw->backend_client_v1_2, v1_2);
		assert_int_equal(gw->backend_client.status, cases[k].want);
		const char *prefix = "spec.tls.backend.";
		const char *diag = cases[k].diag;
		if (diag && v1_2) {
			/* The same message under the older path. */
			has(out, "spec.backendTLS.clientCertificateRef");
			if (!strncmp(diag, prefix, strlen(prefix)))
				diag += strlen(prefix);
		}
		if (diag)
			has(out, diag);
		else
			assert_string_equal(out, "");
		if (cases[k].want == IG_REF_OK)
			assert_string_equal(gw->backend_client.secret->meta.name, "good");
		free(out);
		ig_config_free(c);
	}
	(void)state;
}

/* What the schema refuses: a missing default, empty or missing
 * caCertificateRefs, an unknown mode, two perPort entries for one port,
 * a client certificate reference without a name, an unknown field. */
static void test_frontend_validation_errors(void **state)
{
	static const struct {
		const char *frontend, *want;
	} cases[] = {
	    {"      perPort: []\n", "spec.tls.frontend.default: is required"},
	    {"      default:\n        validation: {caCertificateRefs: []}\n",
	     "spec.tls.frontend.default.validation.caCertificateRefs"},
	    {"      default:\n        validation: {mode: AllowValidOnly}\n",
	     "spec.tls.frontend.default.validation.caCertificateRefs: is required"},
	    {"      default:\n        validation: {mode: Sometimes, caCertificateRefs: "
	     "[" CA_REF("ca") "]}\n",
	     "spec.tls.frontend.default.validation.mode"},
	    {"      default: {}\n      perPort:\n      - {port: 1, tls: {}}\n"
	     "      - {port: 1, tls: {}}\n",
	     "Port for TLS configuration must be unique within the Gateway"},
	    {"      default: {}\n      perPort:\n      - {port: 0, tls: {}}\n",
	     "spec.tls.frontend.perPort[0].port"},
	    {"      default: {}\n    backend: {clientCertificateRef: {kind: Secret}}\n",
	     "spec.tls.backend.clientCertificateRef.name: is required"},
	    {"      default: {}\n    backend: {other: x}\n", "spec.tls.backend.other"},
	    {"      default: {}\n    backend: {clientCertificateRef: {name: a}}\n"
	     "  backendTLS: {clientCertificateRef: {name: b}}\n",
	     "spec.backendTLS.clientCertificateRef: given also in spec.tls.backend"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[2048];
		snprintf(text, sizeof text, GW_FRONTEND("%s"), cases[i].frontend);
		int rc;
		char *out = load_diags("e.yaml", text, &rc);
		if (rc == 0 || !strstr(out, cases[i].want))
			fprintf(stderr, "case %zu: want %s, got rc %d:\n%s", i, cases[i].want, rc,
				out);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(out, cases[i].want));
		free(out);
	}
	(void)state;
}

/* A policy whose CA is in a ConfigMap of its namespace: accepted, the
 * ca.crt texts kept, and the port it names reached over TLS (appProtocol
 * HTTPS allowed); the Service's other port stays clear text. */
static void test_backend_tls_policy_configmap(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("web", "a", "  ports: [{name: https, port: 443, appProtocol: HTTPS}, "
			    "{name: http, port: 80}]\n")
	    CA_CM("ca", "{ca.crt: \"" PEM_CRT "\"}")
	    CA_CM("ca2", "{ca.crt: \"" PEM_CRT2 "\", other: x}")
	    BTLS("v1", "tls", "", BTLS_PORT("web", "https"),
		 "\n    caCertificateRefs: [" CA_REF("ca") ", " CA_REF("ca2") "]\n"
		 "    hostname: web.example.com\n"
		 "    subjectAltNames:\n"
		 "    - {type: Hostname, hostname: \"*.example.com\"}\n"
		 "    - {type: URI, uri: \"spiffe://cluster.local/ns/a/sa/web\"}")
	    ROUTE_NS("a")
	    "    - {name: web, port: 443}\n"
	    "    - {name: web, port: 80}\n",
	    /* clang-format on */
	    &out);
	assert_int_equal(c->ntls_policies, 1);
	const struct ig_backend_tls_policy *p = &c->tls_policies[0];
	assert_int_equal(p->state, IG_TLSP_ACCEPTED);
	assert_null(p->message);
	assert_true(p->refs_ok);
	assert_null(p->refs_reason);
	assert_true(ig_tls_policy_usable(p));
	assert_null(p->well_known);
	assert_string_equal(p->hostname, "web.example.com");
	assert_int_equal(p->nca_refs, 2);
	assert_string_equal(p->ca_refs[1].name, "ca2");
	assert_string_equal(p->ca_refs[0].kind, "ConfigMap");
	assert_int_equal(p->ca_refs[0].line, 25);
	assert_int_equal(p->nsans, 2);
	assert_false(p->sans[0].uri);
	assert_string_equal(p->sans[0].value, "*.example.com");
	assert_true(p->sans[1].uri);
	assert_string_equal(p->sans[1].value, "spiffe://cluster.local/ns/a/sa/web");
	assert_int_equal(p->ntargets, 1);
	assert_string_equal(p->targets[0].section, "https");
	const char *pem = PEM_CRT_TEXT "\n" PEM_CRT2_TEXT;
	assert_string_equal(p->ca_pem, pem);
	assert_int_equal(p->ca_len, strlen(pem));
	const struct ig_backend_ref *b = c->routes[0].rules[0].backends;
	assert_int_equal(b[0].status, IG_REF_OK);
	assert_ptr_equal(b[0].tls, p);
	assert_ptr_equal(b[0].service, ig_config_find_service(c, "a", "web"));
	assert_int_equal(b[1].status, IG_REF_OK);
	assert_null(b[1].tls);
	assert_null(strstr(out, "BackendTLSPolicy"));
	free(out);
	ig_config_free(c);
	(void)state;
}

/* wellKnownCACertificates System: the system's roots (no ca_pem). A policy
 * for the whole Service covers every port; one of another namespace
 * covers nothing here. v1alpha3 reads as v1. */
static void test_backend_tls_policy_system(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("api", "a", "  ports: [{name: wss, port: 443, appProtocol: kubernetes.io/wss}, "
			    "{name: ws, port: 80, appProtocol: kubernetes.io/ws}]\n")
	    SVC("other", "a", "  ports: [{port: 80}]\n")
	    BTLS("v1alpha3", "tls", "", BTLS_SVC("api"), SYSTEM("api.example.com"))
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n"
	    "metadata: {name: elsewhere, namespace: b}\nspec:\n"
	    "  targetRefs: [{group: \"\", kind: Service, name: other}]\n"
	    "  validation: {wellKnownCACertificates: System, hostname: o.example.com}\n"
	    ROUTE_NS("a")
	    "    - {name: api, port: 443}\n"
	    "    - {name: api, port: 80}\n"
	    "    - {name: other, port: 80}\n",
	    /* clang-format on */
	    &out);
	assert_int_equal(c->ntls_policies, 2);
	const struct ig_backend_tls_policy *p = &c->tls_policies[0];
	assert_string_equal(p->meta.api_version, "gateway.networking.k8s.io/v1alpha3");
	assert_int_equal(p->state, IG_TLSP_ACCEPTED);
	assert_true(p->refs_ok);
	assert_true(ig_tls_policy_usable(p));
	assert_string_equal(p->well_known, "System");
	assert_null(p->ca_pem);
	assert_int_equal(p->ca_len, 0);
	assert_int_equal(p->nca_refs, 0);
	const struct ig_backend_ref *b = c->routes[0].rules[0].backends;
	assert_int_equal(b[0].status, IG_REF_OK);
	assert_ptr_equal(b[0].tls, p);
	assert_int_equal(b[1].status, IG_REF_OK);
	assert_ptr_equal(b[1].tls, p);
	assert_int_equal(b[2].status, IG_REF_OK);
	assert_null(b[2].tls);
	assert_null(strstr(out, "warning"));
	free(out);
	ig_config_free(c);
	(void)state;
}

/* References that do not give a CA, and what infergate does not
 * implement: the policy is not used, and the ports it applies to are
 * refused (never clear text). */
static void test_backend_tls_policy_unusable(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("s0", "a", "  ports: [{port: 443}]\n")
	    SVC("s1", "a", "  ports: [{port: 443}]\n")
	    SVC("s2", "a", "  ports: [{port: 443}]\n")
	    SVC("s3", "a", "  ports: [{port: 443}]\n")
	    SVC("s4", "a", "  ports: [{port: 443}]\n")
	    SVC("s5", "a", "  ports: [{port: 443}]\n")
	    SVC("s6", "a", "  ports: [{port: 443}]\n")
	    CA_CM("good", "{ca.crt: \"" PEM_CRT "\"}")
	    CA_CM("nokey", "{tls.crt: \"" PEM_CRT "\"}")
	    CA_CM("nopem", "{ca.crt: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n\"}")
	    BTLS("v1", "missing", "", BTLS_SVC("s0"),
		 "{caCertificateRefs: [" CA_REF("nope") "], hostname: s.example.com}")
	    BTLS("v1", "nokey", "", BTLS_SVC("s1"),
		 "{caCertificateRefs: [" CA_REF("nokey") "], hostname: s.example.com}")
	    BTLS("v1", "secret", "", BTLS_SVC("s2"),
		 "{caCertificateRefs: [{group: \"\", kind: Secret, name: good}], "
		 "hostname: s.example.com}")
	    BTLS("v1", "partial", "", BTLS_SVC("s3"),
		 "{caCertificateRefs: [" CA_REF("good") ", " CA_REF("nopem") "], "
		 "hostname: s.example.com}")
	    BTLS("v1", "opts", "", BTLS_SVC("s4"), SYSTEM("s.example.com") "\n"
		 "  options: {example.com/min-version: \"1.3\", b: c}")
	    BTLS("v1", "known", "", BTLS_SVC("s5"),
		 "{wellKnownCACertificates: example.com/roots, hostname: s.example.com}")
	    BTLS("v1", "bad-kind", "", BTLS_SVC("s6"),
		 "{caCertificateRefs: [{group: example.com, kind: Bundle, name: x}, "
		 CA_REF("good") "], hostname: s.example.com}")
	    ROUTE_NS("a")
	    "    - {name: s0, port: 443}\n"
	    "    - {name: s1, port: 443}\n"
	    "    - {name: s2, port: 443}\n"
	    "    - {name: s3, port: 443}\n"
	    "    - {name: s4, port: 443}\n"
	    "    - {name: s5, port: 443}\n"
	    "    - {name: s6, port: 443}\n",
	    /* clang-format on */
	    &out);
	assert_int_equal(c->ntls_policies, 7);
	const struct ig_backend_tls_policy *p = c->tls_policies;
	static const enum ig_tls_policy_state want[] = {
	    IG_TLSP_NO_VALID_CA, IG_TLSP_NO_VALID_CA, IG_TLSP_NO_VALID_CA, IG_TLSP_ACCEPTED,
	    IG_TLSP_INVALID,	 IG_TLSP_INVALID,     IG_TLSP_ACCEPTED,
	};
	static const char *const reasons[] = {
	    "InvalidCACertificateRef",
	    "InvalidCACertificateRef",
	    "InvalidKind",
	    "InvalidCACertificateRef",
	    NULL,
	    NULL,
	    "InvalidKind",
	};
	for (size_t i = 0; i < 7; i++) {
		if (p[i].state != want[i])
			fprintf(stderr, "policy %zu: %d\n%s", i, p[i].state, out);
		assert_int_equal(p[i].state, want[i]);
		assert_false(ig_tls_policy_usable(&p[i]));
		if (reasons[i]) {
			assert_false(p[i].refs_ok);
			assert_string_equal(p[i].refs_reason, reasons[i]);
		} else {
			assert_true(p[i].refs_ok);
		}
		const struct ig_backend_ref *b = &c->routes[0].rules[0].backends[i];
		assert_int_equal(b->status, IG_REF_UNSUPPORTED_PROTOCOL);
		assert_null(b->tls);
		assert_null(b->service);
	}
	assert_string_equal(p[0].refs_message,
			    "caCertificateRefs[0]: ConfigMap \"a/nope\" not found");
	assert_string_equal(p[0].message,
			    "no caCertificateRef is valid: caCertificateRefs[0]: ConfigMap "
			    "\"a/nope\" not found");
	assert_null(p[0].ca_pem);
	assert_string_equal(p[1].refs_message,
			    "caCertificateRefs[0]: ConfigMap \"a/nokey\" has no ca.crt");
	assert_string_equal(p[2].refs_message,
			    "caCertificateRefs[0]: kind Secret is not supported: only ConfigMap");
	/* Partly valid: accepted, but not used; the valid CA is still kept. */
	assert_string_equal(p[3].refs_message, "caCertificateRefs[1]: ConfigMap \"a/nopem\" "
					       "ca.crt holds no PEM certificate");
	assert_null(p[3].message);
	assert_string_equal(p[3].ca_pem, PEM_CRT_TEXT);
	assert_int_equal(p[4].noptions, 2);
	assert_string_equal(p[4].options[0], "example.com/min-version");
	assert_string_equal(p[4].message,
			    "options are not supported by infergate: example.com/min-version");
	assert_string_equal(p[5].message, "wellKnownCACertificates \"example.com/roots\" is not "
					  "supported: only System");
	assert_string_equal(p[6].refs_message, "caCertificateRefs[0]: kind example.com/Bundle is "
					       "not supported: only ConfigMap");
	has(out, "warning: BackendTLSPolicy \"a/missing\" is not used (NoValidCACertificate: no "
		 "caCertificateRef is valid: caCertificateRefs[0]: ConfigMap \"a/nope\" not "
		 "found): the Service ports it applies to are refused as backends\n");
	has(out, "warning: BackendTLSPolicy \"a/partial\" is not used (InvalidCACertificateRef: "
		 "caCertificateRefs[1]: ConfigMap \"a/nopem\" ca.crt holds no PEM certificate)");
	has(out, "warning: BackendTLSPolicy \"a/opts\" is not used (Invalid: options are not "
		 "supported by infergate: example.com/min-version)");
	has(out, "spec.rules[0].backendRefs[0]: port 443 of Service \"a/s0\" is a target of "
		 "BackendTLSPolicy \"missing\" (UnsupportedProtocol): the policy is not used "
		 "(NoValidCACertificate: no caCertificateRef is valid: caCertificateRefs[0]: "
		 "ConfigMap \"a/nope\" not found), and what is to be encrypted is not sent in "
		 "clear text\n");
	has(out, "spec.rules[0].backendRefs[5]: port 443 of Service \"a/s5\" is a target of "
		 "BackendTLSPolicy \"known\" (UnsupportedProtocol): the policy is not used "
		 "(Invalid: wellKnownCACertificates \"example.com/roots\" is not supported: only "
		 "System)");
	free(out);
	ig_config_free(c);
	(void)state;
}

/* Two policies for one target: the older wins, by creationTimestamp (one
 * without comes last), then by name; the other is Conflicted. A policy
 * for another port, or an Invalid one, does not conflict. */
static void test_backend_tls_policy_conflict(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("web", "a", "  ports: [{name: https, port: 443}, {name: alt, port: 8443}]\n")
	    SVC("api", "a", "  ports: [{port: 443}]\n")
	    BTLS("v1", "young", ", creationTimestamp: \"2025-02-01T00:00:00Z\"", BTLS_SVC("web"),
		 SYSTEM("web.example.com"))
	    BTLS("v1", "old", ", creationTimestamp: \"2025-01-01T00:00:00Z\"", BTLS_SVC("web"),
		 SYSTEM("web.example.com"))
	    BTLS("v1", "undated", "", BTLS_SVC("web"), SYSTEM("web.example.com"))
	    BTLS("v1", "oldest", ", creationTimestamp: \"2024-01-01T00:00:00Z\"", BTLS_SVC("web"),
		 SYSTEM("web.example.com") "\n  options: {a: b}")
	    BTLS("v1", "port", ", creationTimestamp: \"2025-03-01T00:00:00Z\"",
		 BTLS_PORT("web", "alt"), SYSTEM("alt.example.com"))
	    BTLS("v1", "b", "", BTLS_SVC("api"), SYSTEM("api.example.com"))
	    BTLS("v1", "a", "", BTLS_SVC("api"), SYSTEM("api.example.com"))
	    ROUTE_NS("a")
	    "    - {name: web, port: 443}\n"
	    "    - {name: web, port: 8443}\n"
	    "    - {name: api, port: 443}\n",
	    /* clang-format on */
	    &out);
	const struct ig_backend_tls_policy *p = c->tls_policies;
	assert_int_equal(c->ntls_policies, 7);
	assert_int_equal(p[0].state, IG_TLSP_CONFLICTED);
	assert_int_equal(p[1].state, IG_TLSP_ACCEPTED);
	assert_int_equal(p[2].state, IG_TLSP_CONFLICTED);
	assert_int_equal(p[3].state, IG_TLSP_INVALID);
	assert_int_equal(p[4].state, IG_TLSP_ACCEPTED);
	assert_int_equal(p[5].state, IG_TLSP_CONFLICTED);
	assert_int_equal(p[6].state, IG_TLSP_ACCEPTED);
	assert_string_equal(p[0].message,
			    "BackendTLSPolicy \"a/old\" (w.yaml:23) takes precedence for Service "
			    "\"web\": it is older, or first by name");
	assert_non_null(strstr(p[5].message, "BackendTLSPolicy \"a/a\""));
	const struct ig_backend_ref *b = c->routes[0].rules[0].backends;
	assert_int_equal(b[0].status, IG_REF_OK);
	assert_ptr_equal(b[0].tls, &p[1]);
	assert_int_equal(b[1].status, IG_REF_OK);
	assert_ptr_equal(b[1].tls, &p[4]); /* the port's own policy */
	assert_int_equal(b[2].status, IG_REF_OK);
	assert_ptr_equal(b[2].tls, &p[6]);
	has(out, "warning: BackendTLSPolicy \"a/young\" is not used (Conflicted: "
		 "BackendTLSPolicy \"a/old\" (w.yaml:23) takes precedence for Service \"web\": it "
		 "is older, or first by name): Service ports no other policy applies to are "
		 "refused as backends\n");
	free(out);
	ig_config_free(c);
	(void)state;
}

/* A policy naming a port beats one for the whole Service, even one that
 * is older; appProtocols: h2c is clear text, so a port a policy applies to
 * with h2c is refused; https without a policy is refused; a mirror to a
 * TLS target uses TLS as well. */
static void test_backend_tls_policy_ports(void **state)
{
	char *out;
	struct ig_config *c = load_warned(
	    /* clang-format off */
	    SVC("web", "a", "  ports: [{name: https, port: 443}, {name: grpc, port: 8443}, "
			    "{name: h2c, port: 81, appProtocol: kubernetes.io/h2c}]\n")
	    SVC("plain", "a", "  ports: [{name: https, port: 443, appProtocol: https}, "
			      "{name: wss, port: 444, appProtocol: kubernetes.io/wss}, "
			      "{name: h2c, port: 80, appProtocol: kubernetes.io/h2c}]\n")
	    BTLS("v1", "whole", ", creationTimestamp: \"2024-01-01T00:00:00Z\"", BTLS_SVC("web"),
		 SYSTEM("web.example.com"))
	    BTLS("v1", "port", "", BTLS_PORT("web", "https"), SYSTEM("www.example.com"))
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, "
	    "namespace: a}\nspec:\n  rules:\n  - filters:\n    - type: RequestMirror\n"
	    "      requestMirror: {backendRef: {name: web, port: 443}}\n"
	    "    backendRefs:\n"
	    "    - {name: web, port: 443}\n"
	    "    - {name: web, port: 8443}\n"
	    "    - {name: web, port: 81}\n"
	    "    - {name: plain, port: 443}\n"
	    "    - {name: plain, port: 444}\n"
	    "    - {name: plain, port: 80}\n",
	    /* clang-format on */
	    &out);
	const struct ig_backend_tls_policy *p = c->tls_policies;
	assert_int_equal(p[0].state, IG_TLSP_ACCEPTED);
	assert_int_equal(p[1].state, IG_TLSP_ACCEPTED);
	const struct ig_route_rule *ru = &c->routes[0].rules[0];
	const struct ig_backend_ref *b = ru->backends;
	assert_int_equal(b[0].status, IG_REF_OK);
	assert_ptr_equal(b[0].tls, &p[1]);
	assert_int_equal(b[1].status, IG_REF_OK);
	assert_ptr_equal(b[1].tls, &p[0]);
	assert_int_equal(b[2].status, IG_REF_UNSUPPORTED_PROTOCOL);
	assert_null(b[2].tls);
	assert_int_equal(b[3].status, IG_REF_UNSUPPORTED_PROTOCOL);
	assert_int_equal(b[4].status, IG_REF_UNSUPPORTED_PROTOCOL);
	assert_int_equal(b[5].status, IG_REF_OK); /* h2c without a policy */
	assert_null(b[5].tls);
	/* Mirrored copies go over TLS too. */
	const struct ig_backend_ref *m = ru->filters[0].u.mirror.backend;
	assert_int_equal(m->status, IG_REF_OK);
	assert_ptr_equal(m->tls, &p[1]);
	has(out, "spec.rules[0].backendRefs[2].port: port 81 of Service \"a/web\" has appProtocol "
		 "kubernetes.io/h2c (UnsupportedProtocol): h2c is clear text; BackendTLSPolicy "
		 "\"whole\" asks for TLS\n");
	has(out, "spec.rules[0].backendRefs[3].port: port 443 of Service \"a/plain\" has "
		 "appProtocol https (UnsupportedProtocol): it needs a BackendTLSPolicy, which says "
		 "how to reach it over TLS\n");
	has(out,
	    "spec.rules[0].backendRefs[4].port: port 444 of Service \"a/plain\" has "
	    "appProtocol kubernetes.io/wss (UnsupportedProtocol): it needs a BackendTLSPolicy");
	free(out);
	ig_config_free(c);
	(void)state;
}

/* ---- selectors ---------------------------------------------------------------------- */

static void test_selectors(void **state)
{
	char *vals_ab[] = {"a", "b"};
	struct ig_selector_req in = {"k", IG_SEL_IN, vals_ab, 2};
	struct ig_selector_req notin = {"k", IG_SEL_NOT_IN, vals_ab, 2};
	struct ig_selector_req exists = {"e", IG_SEL_EXISTS, NULL, 0};
	struct ig_selector_req absent = {"e", IG_SEL_DOES_NOT_EXIST, NULL, 0};
	struct ig_kv ka[] = {{"k", "a"}}, kc[] = {{"k", "c"}}, ke[] = {{"k", "b"}, {"e", ""}};
	struct ig_label_selector s = {.exprs = &in, .nexprs = 1};
	assert_true(ig_selector_matches(&s, ka, 1));
	assert_false(ig_selector_matches(&s, kc, 1));
	assert_false(ig_selector_matches(&s, NULL, 0));
	s.exprs = &notin;
	assert_false(ig_selector_matches(&s, ka, 1));
	assert_true(ig_selector_matches(&s, kc, 1));
	assert_true(ig_selector_matches(&s, NULL, 0)); /* an absent label is not in */
	s.exprs = &exists;
	assert_true(ig_selector_matches(&s, ke, 2));
	assert_false(ig_selector_matches(&s, ka, 1));
	s.exprs = &absent;
	assert_false(ig_selector_matches(&s, ke, 2));
	assert_true(ig_selector_matches(&s, ka, 1));
	/* matchLabels and expressions together. */
	struct ig_kv want[] = {{"k", "b"}};
	s = (struct ig_label_selector){
	    .match_labels = want, .nmatch_labels = 1, .exprs = &exists, .nexprs = 1};
	assert_true(ig_selector_matches(&s, ke, 2));
	assert_false(ig_selector_matches(&s, ka, 1));
	/* The empty selector selects everything; no selector nothing. */
	s = (struct ig_label_selector){0};
	assert_true(ig_selector_matches(&s, NULL, 0));
	assert_false(ig_selector_matches(NULL, ka, 1));

	/* Namespaces without a Namespace object have only the name label. */
	struct ig_config *c =
	    load_ok("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n"
		    "  labels: {tier: gold, kubernetes.io/metadata.name: spoof}\n");
	struct ig_kv gold[] = {{"tier", "gold"}}, named[] = {{"kubernetes.io/metadata.name", "x"}};
	struct ig_kv team[] = {{"kubernetes.io/metadata.name", "team"}};
	s = (struct ig_label_selector){.match_labels = gold, .nmatch_labels = 1};
	assert_true(ig_config_namespace_selected(c, "team", &s));
	assert_false(ig_config_namespace_selected(c, "x", &s));
	s.match_labels = named;
	assert_true(ig_config_namespace_selected(c, "x", &s));
	assert_false(ig_config_namespace_selected(c, "team", &s));
	/* Kubernetes' own label wins over one the manifest sets. */
	s.match_labels = team;
	assert_true(ig_config_namespace_selected(c, "team", &s));
	ig_config_free(c);
}

/* ---- filters, retry, sessionPersistence: values ------------------------------------- */

static void test_filter_values(void **state)
{
	struct ig_config *c = load_ok(
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
	    "spec:\n  rules:\n"
	    "  - matches: [{path: {type: PathPrefix, value: /api}}]\n"
	    "    filters:\n"
	    "    - type: URLRewrite\n"
	    "      urlRewrite: {hostname: backend.example.com, path: {type: ReplacePrefixMatch, "
	    "replacePrefixMatch: \"\"}}\n"
	    "    - type: RequestMirror\n"
	    "      requestMirror: {backendRef: {name: m, port: 81}, fraction: {numerator: 1, "
	    "denominator: 3}}\n"
	    "    - type: RequestMirror\n"
	    "      requestMirror: {backendRef: {name: m2, port: 81}}\n"
	    "    backendRefs:\n"
	    "    - name: svc\n      port: 80\n      weight: 0\n"
	    "      filters:\n"
	    "      - type: RequestHeaderModifier\n"
	    "        requestHeaderModifier: {add: [{name: X-A, value: \"1 2\\t3\"}]}\n"
	    "      - type: ResponseHeaderModifier\n"
	    "        responseHeaderModifier: {remove: [Server]}\n"
	    "  - filters:\n"
	    "    - type: RequestRedirect\n"
	    "      requestRedirect: {scheme: https, hostname: example.org, port: 8443}\n"
	    "    sessionPersistence:\n"
	    "      absoluteTimeout: 1h\n      idleTimeout: 10m\n"
	    "      cookieConfig: {lifetimeType: Permanent}\n"
	    "    retry: {codes: [503]}\n");
	const struct ig_route_rule *r0 = &c->routes[0].rules[0], *r1 = &c->routes[0].rules[1];
	const struct ig_url_rewrite *rw = &r0->filters[0].u.rewrite;
	assert_string_equal(rw->hostname, "backend.example.com");
	assert_int_equal(rw->path.type, IG_PATH_MOD_PREFIX);
	assert_string_equal(rw->path.value, "");
	assert_int_equal(r0->filters[0].line, 8);
	assert_int_equal(r0->filters[1].u.mirror.numerator, 1);
	assert_int_equal(r0->filters[1].u.mirror.denominator, 3);
	assert_int_equal(r0->filters[2].u.mirror.numerator, 100);
	assert_int_equal(r0->filters[2].u.mirror.denominator, 100);
	assert_string_equal(r0->filters[2].u.mirror.backend->name, "m2");
	assert_int_equal(r0->filters[2].u.mirror.backend->port, 81);
	const struct ig_backend_ref *b = &r0->backends[0];
	assert_int_equal(b->weight, 0);
	assert_int_equal(b->nfilters, 2);
	assert_int_equal(b->filters[0].type, IG_FILTER_REQUEST_HEADER_MODIFIER);
	assert_string_equal(b->filters[0].u.headers.add[0].key, "X-A");
	assert_string_equal(b->filters[0].u.headers.add[0].value, "1 2\t3");
	assert_string_equal(b->filters[1].u.headers.remove[0], "Server");
	const struct ig_redirect *rd = &r1->filters[0].u.redirect;
	assert_string_equal(rd->scheme, "https");
	assert_string_equal(rd->hostname, "example.org");
	assert_int_equal(rd->port, 8443);
	assert_int_equal(rd->status_code, 302);
	assert_int_equal(rd->path.type, IG_PATH_MOD_NONE);
	assert_null(rd->path.value);
	const struct ig_session_persistence *sp = &r1->session;
	assert_int_equal(sp->type, IG_SESSION_COOKIE);
	assert_int_equal(sp->lifetime, IG_COOKIE_PERMANENT);
	assert_int_equal(sp->absolute_timeout_ms, 3600000);
	assert_true(sp->has_idle_timeout);
	assert_int_equal(sp->idle_timeout_ms, 600000);
	assert_null(sp->session_name);
	assert_false(r1->retry.has_attempts);
	assert_false(r1->retry.has_backoff);
	assert_int_equal(r1->retry.ncodes, 1);
	assert_false(r0->retry.set);
	assert_false(r0->session.set);
	ig_config_free(c);
}

static void test_cors_values(void **state)
{
	struct ig_config *c = load_ok(
	    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
	    "spec:\n  rules:\n"
	    "  - filters:\n"
	    "    - type: CORS\n"
	    "      cors:\n"
	    "        allowOrigins: [\"https://www.foo.com\", \"https://*.bar.com:8443\", "
	    "\"http://*\"]\n"
	    "        allowMethods: [GET, OPTIONS]\n"
	    "        allowHeaders: [x-header-1]\n"
	    "        exposeHeaders: [\"*\"]\n"
	    "        allowCredentials: true\n"
	    "        maxAge: 3600\n"
	    "  - filters:\n"
	    "    - {type: CORS, cors: {}}\n");
	const struct ig_cors *a = &c->routes[0].rules[0].filters[0].u.cors;
	const struct ig_cors *b = &c->routes[0].rules[1].filters[0].u.cors;
	assert_int_equal(c->routes[0].rules[0].filters[0].type, IG_FILTER_CORS);
	assert_int_equal(a->norigins, 3);
	assert_string_equal(a->origins[1], "https://*.bar.com:8443");
	assert_int_equal(a->nmethods, 2);
	assert_string_equal(a->methods[1], "OPTIONS");
	assert_string_equal(a->allow_headers[0], "x-header-1");
	assert_string_equal(a->expose_headers[0], "*");
	assert_true(a->credentials);
	assert_int_equal(a->max_age, 3600);
	/* Defaults: nothing allowed, no credentials, 5 s. */
	assert_int_equal(b->norigins, 0);
	assert_int_equal(b->nmethods, 0);
	assert_false(b->credentials);
	assert_int_equal(b->max_age, 5);
	ig_config_free(c);
}

static void test_listener_defaults(void **state)
{
	struct ig_config *c = load_ok(
	    "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: Gateway\n"
	    "metadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: c\n  listeners:\n"
	    "  - {name: a, protocol: HTTP, port: 80}\n"
	    "  - name: b\n    protocol: HTTP\n    port: 81\n    allowedRoutes:\n"
	    "      namespaces: {from: All}\n      kinds: [{kind: HTTPRoute}, {group: x.io, kind: "
	    "Yr}]\n");
	const struct ig_listener *a = &c->gateways[0].listeners[0],
				 *b = &c->gateways[0].listeners[1];
	assert_int_equal(a->allowed.from, IG_FROM_SAME);
	assert_false(a->allowed.has_selector);
	assert_int_equal(a->allowed.nkinds, 0);
	assert_false(a->tls.set);
	assert_int_equal(b->allowed.from, IG_FROM_ALL);
	assert_int_equal(b->allowed.nkinds, 2);
	assert_string_equal(b->allowed.kinds[1].group, "x.io");
	ig_config_free(c);
}

/* ---- one case per rule --------------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *text;
	const char *want; /* a whole line of the printed diags */
	bool warning_only;
};

#define GW "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n"
#define RT "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: rt\n"
#define P1 "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata:\n  name: p\n"
#define PA                                                                                         \
	"apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  "   \
	"name: p\n"
#define RW "apiVersion: llm-d.ai/v1alpha2\nkind: InferenceModelRewrite\nmetadata:\n  name: w\n"
#define RG                                                                                         \
	"apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata:\n  name: " \
	"g\n"
#define SECRET "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
#define SERVICE "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
#define SLICE_H "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s\n"
#define CONFIGMAP "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
#define BTLS_H                                                                                     \
	"apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata:\n  name: p\n"
/* spec on line 5, its targetRefs on 6, validation on 7 and its fields from 8 */
#define BTLS_T "spec:\n  targetRefs: [{group: \"\", kind: Service, name: s}]\n  validation:\n"
/* subjectAltNames on line 10, the first on 11 */
#define BTLS_V                                                                                     \
	"    hostname: a.example.com\n    wellKnownCACertificates: System\n    subjectAltNames:\n"
#define BTLS_SYS "  validation: {hostname: a.example.com, wellKnownCACertificates: System}\n"
#define BTLS_CA "{group: \"\", kind: ConfigMap, name: c}"
#define BTLS_SAN "{type: Hostname, hostname: a.example.com}"
/* Line 5 onwards: */
#define LST "spec:\n  gatewayClassName: c\n  listeners:\n"
#define FILTERS RT "spec:\n  rules:\n  - filters:\n"	 /* first filter on line 8 */
#define BACKEND RT "spec:\n  rules:\n  - backendRefs:\n" /* first backendRef on line 8 */
#define RULE0 RT "spec:\n  rules:\n  - "		 /* a rule's first key on line 7 */
#define P1SPEC "spec:\n  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 8000}]\n"
#define RWSPEC "spec:\n  poolRef: {name: p}\n  rules:\n"

static const struct bad_case cases[] = {
    /* unknown and unsupported fields, at every level */
    {"strict_top", RT "spce: {}\n", "r.yaml:5: spce: unknown field", false},
    {"strict_meta", RT "  lables: {a: b}\n", "r.yaml:5: metadata.lables: unknown field", false},
    {"strict_duplicate", RT "spec: {}\nspec: {}\n",
     "r.yaml:6: spec: duplicate field (also on line 5)", false},
    {"strict_route_spec", RT "spec:\n  hostname: [a]\n", "r.yaml:6: spec.hostname: unknown field",
     false},
    {"strict_rule",
     RULE0 "filter: []\n"
	   "    backendRefs: []\n",
     "r.yaml:7: spec.rules[0].filter: unknown field", false},
    {"strict_match", RULE0 "matches:\n    - path: {type: Exact, value: /a, regex: x}\n",
     "r.yaml:8: spec.rules[0].matches[0].path.regex: unknown field", false},
    {"strict_header_match",
     RULE0 "matches:\n    - headers: [{name: a, value: b, ignoreCase: true}]\n",
     "r.yaml:8: spec.rules[0].matches[0].headers[0].ignoreCase: unknown field", false},
    {"strict_backend", BACKEND "    - {name: s, port: 80, weigth: 2}\n",
     "r.yaml:8: spec.rules[0].backendRefs[0].weigth: unknown field", false},
    {"strict_parent", RT "spec:\n  parentRefs: [{name: gw, listener: a}]\n",
     "r.yaml:6: spec.parentRefs[0].listener: unknown field", false},
    {"strict_timeouts", RULE0 "timeouts: {idle: 1s}\n",
     "r.yaml:7: spec.rules[0].timeouts.idle: unknown field", false},
    {"strict_filter_modifier",
     FILTERS "    - type: RequestHeaderModifier\n"
	     "      requestHeaderModifier: {sett: [{name: a, value: b}]}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestHeaderModifier.sett: unknown field", false},
    {"strict_gateway_addresses",
     GW "spec:\n  gatewayClassName: c\n  addresses: [{value: 10.0.0.1, port: 80}]\n"
	"  listeners: [{name: a, port: 80, protocol: HTTP}]\n",
     "g.yaml:7: spec.addresses[0].port: unknown field", false},
    {"strict_gateway_infrastructure",
     GW "spec:\n  gatewayClassName: c\n  infrastructure: {labels: {a: b}, owner: x}\n"
	"  listeners: [{name: a, port: 80, protocol: HTTP}]\n",
     "g.yaml:7: spec.infrastructure.owner: unknown field", false},
    {"strict_use_default_gateways", RT "spec:\n  useDefaultGateways: All\n",
     "r.yaml:6: spec.useDefaultGateways: not supported by infergate: default Gateways are not "
     "implemented",
     false},
    {"strict_listener", GW LST "  - {name: a, protocol: HTTP, port: 80, tls_: {}}\n",
     "g.yaml:8: spec.listeners[0].tls_: unknown field", false},
    {"strict_tls_options",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n    tls:\n"
	    "      certificateRefs: [{name: c}]\n      options: {x.io/k: v}\n",
     "g.yaml:13: warning: spec.listeners[0].tls.options: implementation-specific TLS options "
     "are not implemented by infergate: ignored",
     true},
    /* The CEL is size(certificateRefs) > 0 || size(options) > 0: options
     * alone are valid, and the listener is not served. */
    {"gw_tls_options_only",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n    tls:\n"
	    "      options: {x.io/k: v}\n",
     "g.yaml:12: warning: spec.listeners[0].tls: no certificateRefs: infergate terminates TLS "
     "only with certificates, so the listener cannot be served (ResolvedRefs=False, "
     "InvalidCertificateRef)",
     true},
    {"strict_pool_v1_selector",
     P1 "spec:\n  selector:\n    matchLabels: {app: x}\n"
	"    matchExpressions: []\n  targetPorts: [{number: 1}]\n",
     "p.yaml:8: spec.selector.matchExpressions: unknown field", false},
    {"strict_pool_v1_field_of_alpha", P1 P1SPEC "  targetPortNumber: 8000\n",
     "p.yaml:8: spec.targetPortNumber: unknown field", false},
    {"strict_pool_alpha_field_of_v1",
     PA "spec:\n  targetPortNumber: 8000\n  selector: {app: x}\n  extensionRef: {name: e}\n"
	"  appProtocol: http\n",
     "p.yaml:9: spec.appProtocol: unknown field", false},
    {"strict_objective",
     "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
     "kind: InferenceObjective\nmetadata:\n  name: o\n"
     "spec:\n  priority: 1\n  criticality: Critical\n  poolRef: {name: p}\n",
     "o.yaml:7: spec.criticality: unknown field", false},
    {"strict_import_spec",
     "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
     "kind: InferencePoolImport\nmetadata:\n  name: i\nspec: {}\n",
     "i.yaml:5: spec: unknown field", false},
    {"strict_service", SERVICE "spec:\n  ports: [{port: 80}]\n  selectr: {a: b}\n",
     "s.yaml:7: spec.selectr: unknown field", false},
    {"strict_service_port", SERVICE "spec:\n  ports: [{port: 80, target: 8080}]\n",
     "s.yaml:6: spec.ports[0].target: unknown field", false},
    {"strict_slice_endpoint",
     SLICE_H "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], "
	     "condition: {}}]\n",
     "s.yaml:6: endpoints[0].condition: unknown field", false},
    {"strict_secret", SECRET "date: {}\n", "s.yaml:5: date: unknown field", false},
    /* Gateway listeners */
    {"gw_https_needs_tls", GW LST "  - {name: a, protocol: HTTPS, port: 443}\n",
     "g.yaml:8: spec.listeners[0].tls: is required for protocol HTTPS (infergate terminates TLS "
     "with the certificates it names)",
     false},
    {"gw_tls_on_http",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    tls: {certificateRefs: [{name: c}]}\n",
     "g.yaml:11: spec.listeners[0].tls: tls must not be specified for protocols ['HTTP', 'TCP', "
     "'UDP']",
     false},
    {"gw_https_passthrough",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n"
	    "    tls: {mode: Passthrough}\n",
     "g.yaml:11: spec.listeners[0].tls.mode: tls mode must be Terminate for protocol HTTPS", false},
    {"gw_tls_mode_enum",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n"
	    "    tls: {mode: terminate, certificateRefs: [{name: c}]}\n",
     "g.yaml:11: spec.listeners[0].tls.mode: must be one of Terminate, Passthrough", false},
    {"gw_terminate_needs_certs",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n"
	    "    tls:\n      certificateRefs: []\n",
     "g.yaml:12: spec.listeners[0].tls: certificateRefs or options must be specified when mode is "
     "Terminate",
     false},
    {"gw_cert_name",
     GW LST "  - name: a\n    protocol: HTTPS\n    port: 443\n"
	    "    tls: {certificateRefs: [{kind: Secret}]}\n",
     "g.yaml:11: spec.listeners[0].tls.certificateRefs[0].name: is required", false},
    {"gw_tcp_hostname", GW LST "  - {name: a, protocol: TCP, port: 80, hostname: a.com}\n",
     "g.yaml:8: spec.listeners[0].hostname: hostname must not be specified for protocols ['TCP', "
     "'UDP']",
     false},
    {"gw_tcp_not_served", GW LST "  - {name: a, protocol: TCP, port: 80}\n",
     "g.yaml:8: warning: spec.listeners[0].protocol: protocol TCP is not served by infergate "
     "(UnsupportedProtocol): the listener gets no routes",
     true},
    {"gw_listener_tuple_unique",
     GW LST "  - {name: a, protocol: HTTP, port: 80, hostname: x.com}\n"
	    "  - {name: b, protocol: HTTP, port: 80, hostname: x.com}\n",
     "g.yaml:9: spec.listeners[1]: Combination of port, protocol and hostname must be unique for "
     "each listener (also spec.listeners[0])",
     false},
    {"gw_from_enum",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes: {namespaces: {from: Everywhere}}\n",
     "g.yaml:11: spec.listeners[0].allowedRoutes.namespaces.from: must be one of All, Selector, "
     "Same",
     false},
    {"gw_selector_missing",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes: {namespaces: {from: Selector}}\n",
     "g.yaml:11: warning: spec.listeners[0].allowedRoutes.namespaces.from: from: Selector without "
     "a selector admits routes from no namespace",
     true},
    {"gw_selector_values",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes:\n      namespaces:\n        from: Selector\n"
	    "        selector:\n          matchExpressions: [{key: a, operator: "
	    "NotIn}]\n",
     "g.yaml:15: spec.listeners[0].allowedRoutes.namespaces.selector.matchExpressions[0].values: "
     "must be specified when `operator` is 'In' or 'NotIn'",
     false},
    {"gw_route_kind",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes: {kinds: [{kind: TLSRoute}]}\n",
     "g.yaml:11: warning: spec.listeners[0].allowedRoutes.kinds[0].kind: route kind "
     "gateway.networking.k8s.io/TLSRoute is not supported (InvalidRouteKinds): only HTTPRoute "
     "and GRPCRoute attach",
     true},
    {"gw_route_kinds_max",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes: {kinds: [{kind: A}, {kind: A}, {kind: A}, "
	    "{kind: A}, {kind: A}, {kind: A}, {kind: A}, {kind: A}, {kind: "
	    "A}]}\n",
     "g.yaml:11: spec.listeners[0].allowedRoutes.kinds: must have at most 8 items", false},
    {"gw_version_v1beta1_ok",
     "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: Gateway\n"
     "metadata: {name: g}\nspec: {gatewayClassName: c, listeners: "
     "[{name: a, protocol: TCP, port: 1}]}\n",
     "g.yaml:4: warning: spec.listeners[0].protocol: protocol TCP is not served by infergate "
     "(UnsupportedProtocol): the listener gets no routes",
     true},
    /* HTTPRoute parentRefs */
    {"rt_parents_need_section", RT "spec:\n  parentRefs: [{name: gw}, {name: gw, port: 80}]\n",
     "r.yaml:6: spec.parentRefs: sectionName or port must be specified when parentRefs includes 2 "
     "or more references to the same parent",
     false},
    {"rt_parents_unique",
     RT "spec:\n  parentRefs: [{name: gw, sectionName: a}, {name: gw, sectionName: a}]\n",
     "r.yaml:6: spec.parentRefs: sectionName or port must be unique when parentRefs includes 2 or "
     "more references to the same parent",
     false},
    {"rt_parent_kind", RT "spec:\n  parentRefs: [{name: s, kind: Service, group: \"\"}]\n",
     "r.yaml:6: warning: spec.parentRefs[0]: parent Service is not supported: only Gateways and "
     "ListenerSets of gateway.networking.k8s.io (and XListenerSets of "
     "gateway.networking.x-k8s.io) take routes",
     true},
    /* filters */
    {"filter_type_required", FILTERS "    - requestHeaderModifier: {}\n",
     "r.yaml:8: spec.rules[0].filters[0].type: is required", false},
    {"filter_type_enum", FILTERS "    - type: HeaderModifier\n",
     "r.yaml:8: spec.rules[0].filters[0].type: must be one of RequestHeaderModifier, "
     "ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, ExtensionRef, CORS, "
     "ExternalAuth",
     false},
    {"filter_cors_origin",
     FILTERS "    - type: CORS\n      cors: {allowOrigins: [\"https://a.com/x\"]}\n",
     "r.yaml:9: spec.rules[0].filters[0].cors.allowOrigins: \"https://a.com/x\" is not \"*\" or "
     "http(s)://host[:port]",
     false},
    {"filter_cors_star_alone",
     FILTERS "    - type: CORS\n      cors: {allowMethods: [GET, \"*\"]}\n",
     "r.yaml:9: spec.rules[0].filters[0].cors.allowMethods: \"*\" must be the only item when it "
     "is given",
     false},
    {"filter_cors_method", FILTERS "    - type: CORS\n      cors: {allowMethods: [FETCH]}\n",
     "r.yaml:9: spec.rules[0].filters[0].cors.allowMethods: \"FETCH\" is not an HTTP method (GET, "
     "HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)",
     false},
    {"filter_cors_max_age", FILTERS "    - type: CORS\n      cors: {maxAge: 0}\n",
     "r.yaml:9: spec.rules[0].filters[0].cors.maxAge: must be between 1 and 2147483647", false},
    {"filter_cors_header", FILTERS "    - type: CORS\n      cors: {exposeHeaders: [\"a b\"]}\n",
     "r.yaml:9: spec.rules[0].filters[0].cors.exposeHeaders: \"a b\" is not a header name", false},
    {"filter_cors_repeated", FILTERS "    - {type: CORS, cors: {}}\n    - {type: CORS, cors: {}}\n",
     "r.yaml:7: spec.rules[0].filters: CORS filter cannot be repeated", false},
    /* ExtensionRef loads (and never resolves: its requests get 500); it
     * may repeat. */
    {"filter_extension_ref",
     FILTERS "    - type: ExtensionRef\n      extensionRef: {group: x.io, kind: F, name: f}\n"
	     "    - {type: ExtensionRef, extensionRef: {group: \"\", kind: G, name: g}}\n",
     "r.yaml:9: warning: spec.rules[0].filters[0].extensionRef: F \"f\" (group \"x.io\") cannot "
     "be resolved: infergate has no filter extensions, so requests this filter would process "
     "are answered 500 (ResolvedRefs=False, InvalidKind)",
     true},
    {"filter_extension_ref_name",
     FILTERS "    - type: ExtensionRef\n      extensionRef: {group: x.io, kind: F}\n",
     "r.yaml:9: spec.rules[0].filters[0].extensionRef.name: is required", false},
    {"filter_extension_ref_kind",
     FILTERS "    - type: ExtensionRef\n      extensionRef: {group: x.io, kind: 1F, name: f}\n",
     "r.yaml:9: spec.rules[0].filters[0].extensionRef.kind: must be 1 to 63 letters, digits or "
     "'-', starting with a letter",
     false},
    {"filter_external_auth", FILTERS "    - type: ExternalAuth\n      externalAuth: {}\n",
     "r.yaml:8: spec.rules[0].filters[0].type: not supported by infergate: the ExternalAuth filter "
     "is not implemented",
     false},
    {"filter_field_missing", FILTERS "    - type: URLRewrite\n",
     "r.yaml:8: spec.rules[0].filters[0]: filter.urlRewrite must be specified for URLRewrite "
     "filter.type",
     false},
    {"filter_field_extra",
     FILTERS "    - type: URLRewrite\n      urlRewrite: {hostname: a.com}\n"
	     "      requestRedirect: {}\n",
     "r.yaml:10: spec.rules[0].filters[0]: filter.requestRedirect must be nil if the filter.type "
     "is not RequestRedirect",
     false},
    {"filter_repeated",
     FILTERS "    - {type: RequestHeaderModifier, requestHeaderModifier: {}}\n"
	     "    - {type: RequestHeaderModifier, requestHeaderModifier: {}}\n",
     "r.yaml:7: spec.rules[0].filters: RequestHeaderModifier filter cannot be repeated", false},
    {"filter_response_repeated",
     FILTERS "    - {type: ResponseHeaderModifier, responseHeaderModifier: {}}\n"
	     "    - {type: ResponseHeaderModifier, responseHeaderModifier: {}}\n",
     "r.yaml:7: spec.rules[0].filters: ResponseHeaderModifier filter cannot be repeated", false},
    {"filter_redirect_and_rewrite",
     FILTERS "    - {type: RequestRedirect, requestRedirect: {}}\n"
	     "    - {type: URLRewrite, urlRewrite: {}}\n",
     "r.yaml:7: spec.rules[0].filters: May specify either httpRouteFilterRequestRedirect or "
     "httpRouteFilterRequestRewrite, but not both",
     false},
    {"filter_redirect_with_backends",
     FILTERS "    - {type: RequestRedirect, requestRedirect: {}}\n"
	     "    backendRefs: [{name: s, port: 80}]\n",
     "r.yaml:7: spec.rules[0]: RequestRedirect filter must not be used together with backendRefs",
     false},
    {"filter_prefix_needs_one_prefix_match",
     RULE0 "matches: [{path: {type: Exact, value: /a}}]\n"
	   "    filters:\n    - type: URLRewrite\n"
	   "      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}\n",
     "r.yaml:7: spec.rules[0]: When using URLRewrite filter with path.replacePrefixMatch, exactly "
     "one PathPrefix match must be specified",
     false},
    {"filter_redirect_prefix_two_matches",
     RULE0 "matches: [{path: {value: /a}}, {path: {value: /b}}]\n"
	   "    filters:\n    - type: RequestRedirect\n"
	   "      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}\n",
     "r.yaml:7: spec.rules[0]: When using RequestRedirect filter with path.replacePrefixMatch, "
     "exactly one PathPrefix match must be specified",
     false},
    {"filter_backend_prefix",
     RULE0 "matches: [{path: {type: Exact, value: /a}}]\n    backendRefs:\n"
	   "    - name: s\n      port: 80\n      filters:\n      - type: URLRewrite\n"
	   "        urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}\n",
     "r.yaml:7: spec.rules[0]: Within backendRefs, When using URLRewrite filter with "
     "path.replacePrefixMatch, exactly one PathPrefix match must be specified",
     false},
    {"filter_backend_repeated",
     BACKEND "    - name: s\n      port: 80\n      filters:\n"
	     "      - {type: URLRewrite, urlRewrite: {}}\n      - {type: URLRewrite, urlRewrite: "
	     "{}}\n",
     "r.yaml:10: spec.rules[0].backendRefs[0].filters: URLRewrite filter cannot be repeated",
     false},
    {"filter_header_name",
     FILTERS "    - type: RequestHeaderModifier\n"
	     "      requestHeaderModifier:\n        set: [{name: \"a:b\", value: "
	     "c}]\n",
     "r.yaml:10: spec.rules[0].filters[0].requestHeaderModifier.set[0].name: must be 1 to 256 "
     "token characters (letters, digits, !#$%&'*+-.^_`|~)",
     false},
    {"filter_header_value_crlf",
     FILTERS "    - type: RequestHeaderModifier\n"
	     "      requestHeaderModifier:\n        set: [{name: a, value: "
	     "\"x\\r\\nInjected: 1\"}]\n",
     "r.yaml:10: spec.rules[0].filters[0].requestHeaderModifier.set[0].value: must be visible "
     "ASCII characters with single spaces or tabs between them (pattern "
     "^[!-~]+([\\t ]?[!-~]+)*$)",
     false},
    {"filter_header_value_required",
     FILTERS "    - type: ResponseHeaderModifier\n"
	     "      responseHeaderModifier:\n        add: [{name: a}]\n",
     "r.yaml:10: spec.rules[0].filters[0].responseHeaderModifier.add[0].value: is required", false},
    {"filter_header_twice",
     FILTERS "    - type: RequestHeaderModifier\n"
	     "      requestHeaderModifier:\n        set:\n"
	     "        - {name: X-A, value: b}\n        - {name: x-a, value: c}\n",
     "r.yaml:12: spec.rules[0].filters[0].requestHeaderModifier.set[1].name: header \"x-a\" is "
     "listed twice (names are case-insensitive)",
     false},
    {"filter_header_max",
     FILTERS "    - type: RequestHeaderModifier\n"
	     "      requestHeaderModifier:\n        remove: [a, b, c, d, e, f, g, "
	     "h, i, j, k, l, m, \"n\", o, p, q]\n",
     "r.yaml:10: spec.rules[0].filters[0].requestHeaderModifier.remove: must have at most 16 items",
     false},
    {"filter_path_type_required",
     FILTERS "    - type: URLRewrite\n"
	     "      urlRewrite: {path: {replaceFullPath: /x}}\n",
     "r.yaml:9: spec.rules[0].filters[0].urlRewrite.path.type: is required", false},
    {"filter_full_path_missing",
     FILTERS "    - type: URLRewrite\n"
	     "      urlRewrite: {path: {type: ReplaceFullPath}}\n",
     "r.yaml:9: spec.rules[0].filters[0].urlRewrite.path: replaceFullPath must be specified when "
     "type is set to 'ReplaceFullPath'",
     false},
    {"filter_full_path_wrong_type",
     FILTERS "    - type: URLRewrite\n      urlRewrite:\n        path:\n"
	     "          type: ReplacePrefixMatch\n          replacePrefixMatch: /a\n"
	     "          replaceFullPath: /x\n",
     "r.yaml:13: spec.rules[0].filters[0].urlRewrite.path: type must be 'ReplaceFullPath' when "
     "replaceFullPath is set",
     false},
    {"filter_prefix_missing",
     FILTERS "    - type: RequestRedirect\n"
	     "      requestRedirect: {path: {type: ReplacePrefixMatch}}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestRedirect.path: replacePrefixMatch must be "
     "specified when type is set to 'ReplacePrefixMatch'",
     false},
    {"filter_prefix_wrong_type",
     FILTERS "    - type: RequestRedirect\n      requestRedirect:\n        path:\n"
	     "          type: ReplaceFullPath\n          replaceFullPath: /a\n"
	     "          replacePrefixMatch: /x\n",
     "r.yaml:13: spec.rules[0].filters[0].requestRedirect.path: type must be 'ReplacePrefixMatch' "
     "when replacePrefixMatch is set",
     false},
    {"filter_path_space",
     FILTERS "    - type: URLRewrite\n"
	     "      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: "
	     "\"/a b\"}}\n",
     "r.yaml:9: spec.rules[0].filters[0].urlRewrite.path.replaceFullPath: must not contain spaces "
     "or control characters",
     false},
    {"filter_rewrite_hostname",
     FILTERS "    - type: URLRewrite\n"
	     "      urlRewrite: {hostname: \"*.a.com\"}\n",
     "r.yaml:9: spec.rules[0].filters[0].urlRewrite.hostname: must be a lowercase DNS name "
     "without a wildcard (PreciseHostname)",
     false},
    {"filter_redirect_status",
     FILTERS "    - type: RequestRedirect\n"
	     "      requestRedirect: {statusCode: 304}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestRedirect.statusCode: must be one of 301, 302, 303, "
     "307, 308",
     false},
    {"filter_redirect_scheme",
     FILTERS "    - type: RequestRedirect\n"
	     "      requestRedirect: {scheme: ftp}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestRedirect.scheme: must be one of http, https",
     false},
    {"filter_redirect_port",
     FILTERS "    - type: RequestRedirect\n"
	     "      requestRedirect: {port: 0}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestRedirect.port: must be between 1 and 65535", false},
    {"filter_mirror_backend_required",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror: {percent: 5}\n",
     "r.yaml:9: spec.rules[0].filters[0].requestMirror.backendRef: is required", false},
    {"filter_mirror_service_port",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m}\n",
     "r.yaml:10: spec.rules[0].filters[0].requestMirror.backendRef: must have port for Service "
     "reference",
     false},
    {"filter_mirror_weight",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: 1, "
	     "weight: 1}\n",
     "r.yaml:10: spec.rules[0].filters[0].requestMirror.backendRef.weight: unknown field", false},
    {"filter_mirror_percent",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: 1}\n"
	     "        percent: 101\n",
     "r.yaml:11: spec.rules[0].filters[0].requestMirror.percent: must be between 0 and 100", false},
    {"filter_mirror_both",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: 1}\n"
	     "        percent: 1\n        fraction: {numerator: 1}\n",
     "r.yaml:12: spec.rules[0].filters[0].requestMirror: Only one of percent or fraction may be "
     "specified in HTTPRequestMirrorFilter",
     false},
    {"filter_mirror_fraction",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: 1}\n"
	     "        fraction: {numerator: 3, denominator: 2}\n",
     "r.yaml:11: spec.rules[0].filters[0].requestMirror.fraction: numerator must be less than or "
     "equal to denominator",
     false},
    {"filter_mirror_denominator",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: "
	     "1}\n        fraction: {numerator: 0, denominator: 0}\n",
     "r.yaml:11: spec.rules[0].filters[0].requestMirror.fraction.denominator: must be between 1 "
     "and 2147483647",
     false},
    {"filter_mirror_numerator",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, port: 1}\n"
	     "        fraction: {denominator: 10}\n",
     "r.yaml:11: spec.rules[0].filters[0].requestMirror.fraction.numerator: is required", false},
    {"filter_mirror_grant",
     FILTERS "    - type: RequestMirror\n"
	     "      requestMirror:\n        backendRef: {name: m, namespace: "
	     "x, port: 1}\n",
     "r.yaml:10: warning: spec.rules[0].filters[0].requestMirror.backendRef.namespace: reference "
     "to Service \"x/m\" from namespace default needs a ReferenceGrant in namespace x "
     "(RefNotPermitted)",
     true},
    /* retry, sessionPersistence */
    {"retry_code_range", RULE0 "retry: {codes: [399]}\n",
     "r.yaml:7: spec.rules[0].retry.codes[0]: must be between 400 and 599", false},
    {"retry_code_type", RULE0 "retry: {codes: [\"503\"]}\n",
     "r.yaml:7: spec.rules[0].retry.codes[0]: must be an integer", false},
    {"retry_code_duplicate", RULE0 "retry: {codes: [503, 503]}\n",
     "r.yaml:7: spec.rules[0].retry.codes[1]: duplicate value 503", false},
    {"retry_attempts", RULE0 "retry: {attempts: -1}\n",
     "r.yaml:7: spec.rules[0].retry.attempts: must be between 0 and 2147483647", false},
    {"retry_backoff", RULE0 "retry: {backoff: 1.5s}\n",
     "r.yaml:7: spec.rules[0].retry.backoff: must be a Gateway API duration: 1 to 4 parts of up to "
     "5 digits with unit h, m, s or ms (e.g. 10s, 1h30m)",
     false},
    {"retry_unknown", RULE0 "retry: {perTryTimeout: 1s}\n",
     "r.yaml:7: spec.rules[0].retry.perTryTimeout: unknown field", false},
    {"session_type", RULE0 "sessionPersistence: {type: Query}\n",
     "r.yaml:7: spec.rules[0].sessionPersistence.type: must be one of Cookie, Header", false},
    {"session_name_length",
     RULE0
     "sessionPersistence: {sessionName: "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
     "r.yaml:7: spec.rules[0].sessionPersistence.sessionName: must be at most 128 characters",
     false},
    {"session_permanent",
     RULE0 "sessionPersistence:\n      cookieConfig: {lifetimeType: "
	   "Permanent}\n",
     "r.yaml:7: spec.rules[0].sessionPersistence: AbsoluteTimeout must be specified when cookie "
     "lifetimeType is Permanent",
     false},
    {"session_cookie_only",
     RULE0 "sessionPersistence:\n      type: Header\n"
	   "      cookieConfig: {lifetimeType: Session}\n",
     "r.yaml:9: spec.rules[0].sessionPersistence.cookieConfig: cookieConfig can only be set with "
     "type Cookie",
     false},
    {"session_lifetime", RULE0 "sessionPersistence:\n      cookieConfig: {lifetimeType: Forever}\n",
     "r.yaml:8: spec.rules[0].sessionPersistence.cookieConfig.lifetimeType: must be one of "
     "Permanent, Session",
     false},
    {"session_timeout", RULE0 "sessionPersistence: {idleTimeout: \"5\"}\n",
     "r.yaml:7: spec.rules[0].sessionPersistence.idleTimeout: must be a Gateway API duration: 1 to "
     "4 parts of up to 5 digits with unit h, m, s or ms (e.g. 10s, 1h30m)",
     false},
    /* backendRefs */
    {"backend_kind_invalid", BACKEND "    - {name: s, kind: ConfigMap}\n",
     "r.yaml:8: warning: spec.rules[0].backendRefs[0].kind: backend kind ConfigMap is not "
     "supported (InvalidKind): only Service and InferencePool",
     true},
    {"backend_pool_missing",
     BACKEND "    - {name: p, kind: InferencePool, group: "
	     "inference.networking.k8s.io}\n",
     "r.yaml:8: warning: spec.rules[0].backendRefs[0]: InferencePool \"default/p\" not found in "
     "the configuration",
     true},
    /* ReferenceGrant */
    {"grant_from_required", RG "spec:\n  to: [{group: \"\", kind: Service}]\n",
     "x.yaml:5: spec.from: is required", false},
    {"grant_from_min", RG "spec:\n  from: []\n  to: [{group: \"\", kind: Service}]\n",
     "x.yaml:6: spec.from: must have at least 1 item", false},
    {"grant_to_group",
     RG "spec:\n  from: [{group: \"\", kind: A, namespace: a}]\n"
	"  to: [{kind: Service}]\n",
     "x.yaml:7: spec.to[0].group: is required", false},
    {"grant_from_namespace",
     RG "spec:\n  from: [{group: \"\", kind: A, namespace: A_}]\n"
	"  to: [{group: \"\", kind: Service}]\n",
     "x.yaml:6: spec.from[0].namespace: must be a lowercase RFC 1123 label", false},
    {"grant_to_max",
     RG "spec:\n  from: [{group: \"\", kind: A, namespace: a}]\n  to: [{group: \"\", kind: A}, "
	"{group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", "
	"kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, {group: "
	"\"\", kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, "
	"{group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", kind: A}, {group: \"\", "
	"kind: A}, {group: \"\", kind: A}]\n",
     "x.yaml:7: spec.to: must have at most 16 items", false},
    /* InferencePool v1 */
    {"pool1_app_protocol", P1 P1SPEC "  appProtocol: http2\n",
     "p.yaml:8: spec.appProtocol: must be one of http, kubernetes.io/h2c", false},
    {"pool1_epp_port_unknown",
     P1 P1SPEC "  endpointPickerRef:\n    name: e\n    portNumber: 9002\n",
     "p.yaml:10: spec.endpointPickerRef.portNumber: unknown field", false},
    /* InferenceModelRewrite */
    {"rewrite_pool_required", RW "spec:\n  rules: []\n", "w.yaml:5: spec.poolRef: is required",
     false},
    {"rewrite_rules_required", RW "spec:\n  poolRef: {name: p}\n",
     "w.yaml:5: spec.rules: is required", false},
    {"rewrite_match_type", RW RWSPEC "  - matches: [{model: {type: Prefix, value: a}}]\n",
     "w.yaml:8: spec.rules[0].matches[0].model.type: must be one of Exact", false},
    {"rewrite_match_value", RW RWSPEC "  - matches: [{model: {value: \"\"}}]\n",
     "w.yaml:8: spec.rules[0].matches[0].model.value: must not be empty", false},
    {"rewrite_match_model", RW RWSPEC "  - matches: [{}]\n",
     "w.yaml:8: spec.rules[0].matches[0].model: is required", false},
    {"rewrite_targets_min", RW RWSPEC "  - targets: []\n",
     "w.yaml:8: spec.rules[0].targets: must have at least 1 item", false},
    {"rewrite_target_required", RW RWSPEC "  - targets: [{weight: 1}]\n",
     "w.yaml:8: spec.rules[0].targets[0].modelRewrite: is required", false},
    {"rewrite_weight", RW RWSPEC "  - targets: [{modelRewrite: a, weight: 0}]\n",
     "w.yaml:8: spec.rules[0].targets[0].weight: must be between 1 and 1000000", false},
    {"rewrite_weights_mixed",
     RW RWSPEC "  - targets: [{modelRewrite: a, weight: 1}, "
	       "{modelRewrite: b}]\n",
     "w.yaml:8: warning: spec.rules[0].targets: weight is set on some targets and not others: GIE "
     "gives the unset ones weight 0, so they get no traffic",
     true},
    {"rewrite_no_targets", RW RWSPEC "  - matches: [{model: {value: a}}]\n",
     "w.yaml:8: warning: spec.rules[0]: a rule without targets rewrites nothing: matching models "
     "pass through unchanged (GIE would send an empty model)",
     true},
    {"rewrite_pool_kind", RW "spec:\n  poolRef: {name: p, kind: Pool}\n  rules: []\n",
     "w.yaml:6: warning: spec.poolRef.kind: kind Pool: only InferencePool is understood, so this "
     "InferenceModelRewrite applies to no pool",
     true},
    /* versions */
    {"version_unknown_in_group",
     "apiVersion: inference.networking.k8s.io/v1alpha1\nkind: InferencePool\nmetadata: {name: p}\n",
     "x.yaml:1: warning: apiVersion: inference.networking.k8s.io/v1alpha1 is not supported for "
     "kind InferencePool (supported: inference.networking.x-k8s.io/v1alpha2, "
     "inference.networking.k8s.io/v1): the document is skipped",
     true},
    /* Service, EndpointSlice, Endpoints, Secret, Namespace */
    {"service_ports_required", SERVICE "spec:\n  selector: {a: b}\n",
     "s.yaml:5: spec.ports: is required (a Service other than ExternalName or headless needs "
     "ports)",
     false},
    {"service_port_names", SERVICE "spec:\n  ports: [{port: 80}, {port: 81}]\n",
     "s.yaml:6: spec.ports: every port needs a name when a Service has more than one "
     "(spec.ports[0])",
     false},
    {"service_port_duplicate",
     SERVICE "spec:\n  ports: [{name: a, port: 80}, {name: b, port: 80}]\n",
     "s.yaml:6: spec.ports[1].port: duplicate port 80/TCP", false},
    {"service_port_name", SERVICE "spec:\n  ports: [{name: HTTP, port: 80}]\n",
     "s.yaml:6: spec.ports[0].name: must be 1 to 15 lowercase letters, digits and '-' with at "
     "least one letter (IANA_SVC_NAME)",
     false},
    {"service_target_port", SERVICE "spec:\n  ports: [{port: 80, targetPort: 0}]\n",
     "s.yaml:6: spec.ports[0].targetPort: must be between 1 and 65535", false},
    {"service_target_port_name", SERVICE "spec:\n  ports: [{port: 80, targetPort: \"-x\"}]\n",
     "s.yaml:6: spec.ports[0].targetPort: must be a port number or a port name (IANA_SVC_NAME)",
     false},
    {"service_type", SERVICE "spec:\n  type: Internal\n  ports: [{port: 80}]\n",
     "s.yaml:6: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName", false},
    {"service_external_name", SERVICE "spec:\n  type: ExternalName\n",
     "s.yaml:5: spec.externalName: is required for type ExternalName", false},
    {"service_protocol", SERVICE "spec:\n  ports: [{port: 80, protocol: HTTP}]\n",
     "s.yaml:6: spec.ports[0].protocol: must be one of TCP, UDP, SCTP", false},
    {"slice_address_type", SLICE_H "addressType: IP\nendpoints: []\n",
     "s.yaml:5: addressType: must be one of IPv4, IPv6, FQDN", false},
    {"slice_address", SLICE_H "addressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]\n",
     "s.yaml:6: endpoints[0].addresses[0]: \"fd00::1\" is not a valid IPv4 address", false},
    {"slice_addresses_min", SLICE_H "addressType: IPv4\nendpoints: [{addresses: []}]\n",
     "s.yaml:6: endpoints[0].addresses: must have between 1 and 100 items", false},
    {"slice_ready_bool",
     SLICE_H "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], "
	     "conditions: {ready: yes}}]\n",
     "s.yaml:6: endpoints[0].conditions.ready: must be true or false", false},
    {"slice_fqdn", SLICE_H "addressType: FQDN\nendpoints: []\n",
     "s.yaml:5: warning: addressType: FQDN endpoints are not resolved by infergate: this "
     "EndpointSlice is ignored",
     true},
    {"endpoints_ip",
     "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: e\n"
     "subsets: [{addresses: [{ip: nowhere}], ports: [{port: 80}]}]\n",
     "e.yaml:5: subsets[0].addresses[0].ip: \"nowhere\" is not a valid IP address", false},
    {"endpoints_port_required",
     "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: e\n"
     "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: a}]}]\n",
     "e.yaml:5: subsets[0].ports[0].port: is required", false},
    {"secret_base64", SECRET "data:\n  a: \"aGk\"\n", "s.yaml:6: data[a]: illegal base64 data",
     false},
    {"secret_base64_chars", SECRET "data:\n  a: \"a-k=\"\n",
     "s.yaml:6: data[a]: illegal base64 data", false},
    {"secret_key", SECRET "stringData:\n  \"a/b\": x\n",
     "s.yaml:6: stringData[a/b]: a valid config key must consist of alphanumeric characters, '-', "
     "'_' or '.'",
     false},
    {"secret_tls_keys", SECRET "type: kubernetes.io/tls\ndata:\n  tls.crt: \"\"\n",
     "s.yaml:6: data[tls.key]: Required value (a kubernetes.io/tls Secret needs tls.key)", false},
    /* ConfigMap */
    {"configmap_key", CONFIGMAP "data:\n  \"a/b\": x\n",
     "c.yaml:6: data[a/b]: a valid config key must consist of alphanumeric characters, '-', '_' "
     "or '.'",
     false},
    {"configmap_data_strings", CONFIGMAP "data:\n  a: [x]\n",
     "c.yaml:6: data: must map keys to strings", false},
    {"configmap_field", CONFIGMAP "stringData: {a: b}\n", "c.yaml:5: stringData: unknown field",
     false},
    {"configmap_duplicate",
     CONFIGMAP "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
     "c.yaml:6: metadata.name: duplicate ConfigMap \"default/c\": also defined at c.yaml:1", false},
    /* BackendTLSPolicy */
    {"btls_both",
     BTLS_H BTLS_T "    hostname: a.example.com\n    wellKnownCACertificates: System\n"
		   "    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: c}]\n",
     "p.yaml:7: spec.validation: must not contain both CACertificateRefs and "
     "WellKnownCACertificates",
     false},
    {"btls_neither", BTLS_H BTLS_T "    hostname: a.example.com\n    caCertificateRefs: []\n",
     "p.yaml:7: spec.validation: must specify either CACertificateRefs or WellKnownCACertificates",
     false},
    {"btls_validation_required",
     BTLS_H "spec:\n  targetRefs: [{group: \"\", kind: Service, name: s}]\n",
     "p.yaml:5: spec.validation: is required", false},
    {"btls_validation_field",
     BTLS_H BTLS_T "    hostname: a.example.com\n    wellKnownCACertificates: System\n"
		   "    sni: x\n",
     "p.yaml:10: spec.validation.sni: unknown field", false},
    {"btls_hostname_required", BTLS_H BTLS_T "    wellKnownCACertificates: System\n",
     "p.yaml:7: spec.validation.hostname: is required", false},
    {"btls_hostname_wildcard",
     BTLS_H BTLS_T "    wellKnownCACertificates: System\n    hostname: \"*.example.com\"\n",
     "p.yaml:9: spec.validation.hostname: must be a lowercase DNS name without a wildcard "
     "(PreciseHostname)",
     false},
    {"btls_well_known",
     BTLS_H BTLS_T "    hostname: a.example.com\n    wellKnownCACertificates: Mozilla\n",
     "p.yaml:9: spec.validation.wellKnownCACertificates: must be System or a domain-prefixed name "
     "(e.g. example.com/roots)",
     false},
    {"btls_ca_refs_max",
     BTLS_H BTLS_T "    hostname: a.example.com\n    caCertificateRefs: [" BTLS_CA ", " BTLS_CA
		   ", " BTLS_CA ", " BTLS_CA ", " BTLS_CA ", " BTLS_CA ", " BTLS_CA ", " BTLS_CA
		   ", " BTLS_CA "]\n",
     "p.yaml:9: spec.validation.caCertificateRefs: must have at most 8 items", false},
    {"btls_ca_ref_group",
     BTLS_H BTLS_T "    hostname: a.example.com\n"
		   "    caCertificateRefs: [{kind: ConfigMap, name: c}]\n",
     "p.yaml:9: spec.validation.caCertificateRefs[0].group: is required", false},
    {"btls_sans_max",
     BTLS_H BTLS_T "    hostname: a.example.com\n    wellKnownCACertificates: System\n"
		   "    subjectAltNames: [" BTLS_SAN ", " BTLS_SAN ", " BTLS_SAN ", " BTLS_SAN
		   ", " BTLS_SAN ", " BTLS_SAN "]\n",
     "p.yaml:10: spec.validation.subjectAltNames: must have at most 5 items", false},
    {"btls_san_type", BTLS_H BTLS_T BTLS_V "    - {type: IP, hostname: a.example.com}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0].type: must be one of Hostname, URI", false},
    {"btls_san_needs_hostname", BTLS_H BTLS_T BTLS_V "    - {type: Hostname}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0]: SubjectAltName element must contain "
     "Hostname, if Type is set to Hostname",
     false},
    {"btls_san_hostname_no_uri",
     BTLS_H BTLS_T BTLS_V
     "    - {type: Hostname, hostname: a.example.com, uri: \"spiffe://a/b\"}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0]: SubjectAltName element must not contain URI, "
     "if Type is set to Hostname",
     false},
    {"btls_san_needs_uri", BTLS_H BTLS_T BTLS_V "    - {type: URI, uri: \"\"}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0]: SubjectAltName element must contain URI, if "
     "Type is set to URI",
     false},
    {"btls_san_uri_no_hostname",
     BTLS_H BTLS_T BTLS_V "    - {type: URI, uri: \"spiffe://a/b\", hostname: a.example.com}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0]: SubjectAltName element must not contain "
     "Hostname, if Type is set to URI",
     false},
    {"btls_san_uri", BTLS_H BTLS_T BTLS_V "    - {type: URI, uri: \"a.example.com/x\"}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0].uri: must be an absolute URI: a scheme, "
     "\"://\" and an authority (e.g. spiffe://cluster.local/ns/a/sa/b)",
     false},
    {"btls_san_hostname", BTLS_H BTLS_T BTLS_V "    - {type: Hostname, hostname: \"a.*.com\"}\n",
     "p.yaml:11: spec.validation.subjectAltNames[0].hostname: must be a lowercase DNS name, "
     "optionally starting with \"*.\"",
     false},
    {"btls_section_specified",
     BTLS_H "spec:\n  targetRefs:\n  - {group: \"\", kind: Service, name: s}\n"
	    "  - {group: \"\", kind: Service, name: s, sectionName: https}\n" BTLS_SYS,
     "p.yaml:6: spec.targetRefs: sectionName must be specified when targetRefs includes 2 or more "
     "references to the same target",
     false},
    {"btls_section_unique",
     BTLS_H "spec:\n  targetRefs:\n  - {group: \"\", kind: Service, name: s, sectionName: a}\n"
	    "  - {group: \"\", kind: Service, name: t}\n"
	    "  - {group: \"\", kind: Service, name: s, sectionName: a}\n" BTLS_SYS,
     "p.yaml:6: spec.targetRefs: sectionName must be unique when targetRefs includes 2 or more "
     "references to the same target",
     false},
    {"btls_section_unique_unnamed",
     BTLS_H "spec:\n  targetRefs:\n  - {group: \"\", kind: Service, name: s}\n"
	    "  - {group: \"\", kind: Service, name: s}\n" BTLS_SYS,
     "p.yaml:6: spec.targetRefs: sectionName must be unique when targetRefs includes 2 or more "
     "references to the same target",
     false},
    {"btls_targets_min", BTLS_H "spec:\n  targetRefs: []\n" BTLS_SYS,
     "p.yaml:6: spec.targetRefs: must have at least 1 item", false},
    {"btls_options_max",
     BTLS_H BTLS_T "    hostname: a.example.com\n    wellKnownCACertificates: System\n"
		   "  options: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1, k: 1, "
		   "l: 1, m: 1, n: 1, o: 1, p: 1, q: 1}\n",
     "p.yaml:10: spec.options: must have at most 16 entries", false},
    {"btls_option_key",
     BTLS_H BTLS_T "    hostname: a.example.com\n"
		   "    wellKnownCACertificates: System\n  options: {\"-a\": b}\n",
     "p.yaml:10: spec.options[-a]: must be a qualified name: up to 63 letters, digits, '-', '_' or "
     "'.', optionally prefixed by a DNS subdomain and '/'",
     false},
    {"namespace_name", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a.b\n",
     "n.yaml:1: metadata.name: a namespace name must be a lowercase RFC 1123 label (at most 63 "
     "characters)",
     false},
    {"namespace_scoped", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  namespace: b\n",
     "n.yaml:5: warning: metadata.namespace: Namespace is cluster-scoped: the namespace is ignored",
     true},
    {"namespace_duplicate",
     "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
     "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
     "n.yaml:5: metadata.name: duplicate Namespace \"a\": also defined at n.yaml:1", false},
    {"selector_operator",
     GW LST "  - name: a\n    protocol: HTTP\n    port: 80\n"
	    "    allowedRoutes:\n      namespaces:\n        from: Selector\n"
	    "        selector: {matchExpressions: [{key: a, operator: Is}]}\n",
     "g.yaml:14: spec.listeners[0].allowedRoutes.namespaces.selector.matchExpressions[0].operator: "
     "must be one of In, NotIn, Exists, DoesNotExist",
     false},
};

static void test_bad_case(void **state)
{
	const struct bad_case *c = *state;
	int rc;
	/* The file name is the one the expected line names. */
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

int main(void)
{
	enum { NCASES = sizeof cases / sizeof cases[0] };
	static const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_samples_gateway),
	    cmocka_unit_test(test_samples_route),
	    cmocka_unit_test(test_samples_gie),
	    cmocka_unit_test(test_samples_service),
	    cmocka_unit_test(test_model_mode),
	    cmocka_unit_test(test_objective_pool_ref),
	    cmocka_unit_test(test_rewrite_precedence),
	    cmocka_unit_test(test_rewrite_choose),
	    cmocka_unit_test(test_pool_import),
	    cmocka_unit_test(test_backend_status),
	    cmocka_unit_test(test_not_permitted_hides_existence),
	    cmocka_unit_test(test_reference_allowed),
	    cmocka_unit_test(test_service_endpoints),
	    cmocka_unit_test(test_secret_data),
	    cmocka_unit_test(test_certificate_refs),
	    cmocka_unit_test(test_gateway_addresses),
	    cmocka_unit_test(test_gateway_infrastructure),
	    cmocka_unit_test(test_grpcroute),
	    cmocka_unit_test(test_listener_sets),
	    cmocka_unit_test(test_listener_set_kinds_and_grants),
	    cmocka_unit_test(test_configmap_data),
	    cmocka_unit_test(test_frontend_validation),
	    cmocka_unit_test(test_frontend_validation_errors),
	    cmocka_unit_test(test_backend_client_certificate),
	    cmocka_unit_test(test_listener_frontend_validation),
	    cmocka_unit_test(test_backend_tls_policy_configmap),
	    cmocka_unit_test(test_backend_tls_policy_system),
	    cmocka_unit_test(test_backend_tls_policy_unusable),
	    cmocka_unit_test(test_backend_tls_policy_conflict),
	    cmocka_unit_test(test_backend_tls_policy_ports),
	    cmocka_unit_test(test_selectors),
	    cmocka_unit_test(test_filter_values),
	    cmocka_unit_test(test_cors_values),
	    cmocka_unit_test(test_listener_defaults),
	};
	enum { NFIXED = sizeof fixed / sizeof fixed[0] };
	static struct CMUnitTest tests[NFIXED + NCASES];
	memcpy(tests, fixed, sizeof fixed);
	for (size_t i = 0; i < NCASES; i++)
		tests[NFIXED + i] = (struct CMUnitTest){
		    .name = cases[i].name,
		    .test_func = test_bad_case,
		    .initial_state = (void *)&cases[i],
		};
	return _cmocka_run_group_tests("config_api", tests, NFIXED + NCASES, NULL, NULL);
}
