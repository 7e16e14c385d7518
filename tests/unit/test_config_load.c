/* Tests of how manifests are read, as kubectl and the API server read
 * them: reader errors at their line, List documents expanded, kinds of
 * our groups that infergate does not know named, duplicates per API group
 * (and found in linear time), YAML merge keys, and the types the API
 * server requires of scalars, and loads that fail for want of resources
 * told from invalid input. test_config.c and test_config_api.c cover
 * the kinds themselves. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "gateway/snapshot.h"
#include "sched/picker.h"

/* All diags of a load, formatted as `infergate check` prints them; *cfg
 * gets the config when the load succeeds (NULL: freed here). */
static char *load_len(const char *text, size_t len, int *rc, struct ig_config **cfg)
{
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	char *out = NULL;
	size_t olen = 0;
	FILE *f = open_memstream(&out, &olen);
	assert_non_null(f);
	*rc = ig_config_load_text("t.yaml", text, len, &c, &d);
	ig_diags_print(&d, f);
	fclose(f);
	ig_diags_free(&d);
	if (*rc != 0)
		assert_null(c);
	else if (cfg)
		*cfg = c;
	else
		ig_config_free(c);
	return out;
}

static char *load(const char *text, int *rc, struct ig_config **cfg)
{
	return load_len(text, strlen(text), rc, cfg);
}

#define has(out, text)                                                                             \
	do {                                                                                       \
		if (!strstr((out), (text)))                                                        \
			fprintf(stderr, "want: %s\ngot:\n%s", (text), (out));                      \
		assert_non_null(strstr((out), (text)));                                            \
	} while (0)

static void fails_with(const char *text, const char *err)
{
	int rc;
	char *out = load(text, &rc, NULL);
	if (rc == 0)
		fprintf(stderr, "loaded, want: %s\ngot:\n%s", err, out);
	assert_int_not_equal(rc, 0);
	has(out, err);
	free(out);
}

/* Loads text that must succeed; returns the config, *diags its output. */
static struct ig_config *loads(const char *text, char **diags)
{
	int rc;
	struct ig_config *c = NULL;
	char *out = load(text, &rc, &c);
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	if (diags)
		*diags = out;
	else
		free(out);
	return c;
}

/* ---- reader errors ------------------------------------------------------------- */

static void test_reader_error_lines(void **state)
{
	(void)state;
	static const char bad_utf8[] = "apiVersion: v1\n"
				       "kind: Pod\n"
				       "metadata:\n"
				       "  name: \xff\n";
	int rc;
	char *out = load_len(bad_utf8, sizeof bad_utf8 - 1, &rc, NULL);
	assert_int_not_equal(rc, 0);
	has(out, "t.yaml:4: YAML syntax error");
	free(out);
	static const char nul[] = "apiVersion: v1\n"
				  "kind: Pod\n"
				  "metadata:\n"
				  "  name: p\n"
				  "  labels: {a: \"\0\"}\n";
	out = load_len(nul, sizeof nul - 1, &rc, NULL);
	assert_int_not_equal(rc, 0);
	has(out, "t.yaml:5: YAML syntax error");
	free(out);
}

/* ---- duplicates ------------------------------------------------------------------ */

/* 50,000 Pods, every 1000th named again in another file position: each
 * repeat is found, at its line, and nothing else is (the check was
 * quadratic: seconds for this many; now a hash table). */
static void test_many_duplicates(void **state)
{
	(void)state;
	enum { N = 50000, EVERY = 1000 };
	size_t cap = (size_t)(N + N / EVERY) * 64, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (int i = 0; i < N; i++)
		len +=
		    (size_t)snprintf(text + len, cap - len,
				     "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\n", i);
	for (int i = 0; i < N; i += EVERY)
		len +=
		    (size_t)snprintf(text + len, cap - len,
				     "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\n", i);
	int rc;
	char *out = load_len(text, len, &rc, NULL);
	assert_int_not_equal(rc, 0);
	size_t n = 0;
	for (const char *p = out; (p = strstr(p, "duplicate Pod")); p++)
		n++;
	assert_int_equal(n, N / EVERY);
	has(out, "t.yaml:200002: metadata.name: duplicate Pod \"default/p0\": also defined at "
		 "t.yaml:2\n");
	has(out, "duplicate Pod \"default/p49000\": also defined at t.yaml:196002\n");
	assert_null(strstr(out, "duplicate Pod \"default/p1\""));
	free(out);
	free(text);
}

/* Same name in another namespace, of another kind, or of another API
 * group is another resource; the same group under another version
 * (Gateway v1 and v1beta1) is the same one. */
static void test_duplicates_by_group(void **state)
{
	(void)state;
	static const char two_pools[] =
	    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n" /* 1 */
	    "kind: InferencePool\n"
	    "metadata: {name: p}\n"
	    "spec: {targetPortNumber: 8000, selector: {app: a}, extensionRef: {name: e}}\n"
	    "---\n" /* 5 */
	    "apiVersion: inference.networking.k8s.io/v1\n"
	    "kind: InferencePool\n"
	    "metadata: {name: p}\n"
	    "spec:\n"
	    "  selector: {matchLabels: {app: b}}\n" /* 10 */
	    "  targetPorts: [{number: 9000}]\n"
	    "  endpointPickerRef: {name: e, port: {number: 9002}}\n"
	    "---\n"
	    "apiVersion: gateway.networking.k8s.io/v1\n"
	    "kind: HTTPRoute\n" /* 15 */
	    "metadata: {name: r}\n"
	    "spec:\n"
	    "  rules:\n"
	    "  - matches: [{path: {type: PathPrefix, value: /a}}]\n"
	    "    backendRefs:\n" /* 20 */
	    "    - {group: inference.networking.k8s.io, kind: InferencePool, name: p}\n"
	    "  - matches: [{path: {type: PathPrefix, value: /b}}]\n"
	    "    backendRefs:\n"
	    "    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: p}\n"
	    "---\n"
	    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
	    "kind: InferenceObjective\n"
	    "metadata: {name: o}\n"
	    "spec: {poolRef: {name: p, group: inference.networking.k8s.io}}\n"
	    "---\n" /* 30 */
	    "apiVersion: llm-d.ai/v1alpha2\n"
	    "kind: InferenceObjective\n"
	    "metadata: {name: o}\n"
	    "spec: {poolRef: {name: p, group: inference.networking.k8s.io}}\n"
	    "---\n" /* 35 */
	    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
	    "kind: InferenceModelRewrite\n"
	    "metadata: {name: w}\n"
	    "spec: {poolRef: {name: p}, rules: [{targets: [{modelRewrite: m}]}]}\n"
	    "---\n" /* 40 */
	    "apiVersion: llm-d.ai/v1alpha2\n"
	    "kind: InferenceModelRewrite\n"
	    "metadata: {name: w}\n"
	    "spec: {poolRef: {name: p}, rules: [{targets: [{modelRewrite: m}]}]}\n";
	char *out;
	struct ig_config *c = loads(two_pools, &out);
	assert_null(strstr(out, "duplicate"));
	has(out, "t.yaml:31: warning: metadata.name: InferenceObjective \"default/o\" of "
		 "llm-d.ai/v1alpha2 "
		 "is also defined as inference.networking.x-k8s.io/v1alpha2 at t.yaml:26");
	free(out);
	assert_int_equal(c->npools, 2);
	assert_int_equal(c->nobjectives, 2);
	assert_int_equal(c->nrewrites, 2);
	/* Each backendRef resolves to the pool of its own group. */
	const struct ig_httproute *r = &c->routes[0];
	assert_ptr_equal(r->rules[0].backends[0].pool, &c->pools[1]);
	assert_ptr_equal(r->rules[1].backends[0].pool, &c->pools[0]);
	assert_ptr_equal(ig_config_find_pool_in(c, "inference.networking.k8s.io", "default", "p"),
			 &c->pools[1]);
	assert_ptr_equal(ig_config_find_pool_in(c, "inference.networking.x-k8s.io", "default", "p"),
			 &c->pools[0]);
	ig_config_free(c);

	fails_with(
	    "apiVersion: gateway.networking.k8s.io/v1\n"
	    "kind: Gateway\n"
	    "metadata: {name: g}\n"
	    "spec: {gatewayClassName: c, listeners: [{name: l, port: 80, protocol: HTTP}]}\n"
	    "---\n"
	    "apiVersion: gateway.networking.k8s.io/v1beta1\n"
	    "kind: Gateway\n"
	    "metadata: {name: g}\n"
	    "spec: {gatewayClassName: c, listeners: [{name: l, port: 80, protocol: HTTP}]}\n",
	    "t.yaml:6: metadata.name: duplicate Gateway \"default/g\": also defined at t.yaml:1");
	char *ok;
	c = loads("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n"
		  "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\n---\n"
		  "apiVersion: v1\nkind: Service\nmetadata: {name: p}\n"
		  "spec: {ports: [{port: 80}]}\n",
		  &ok);
	assert_int_equal(c->npods, 2);
	free(ok);
	ig_config_free(c);
}

/* ---- Lists ---------------------------------------------------------------------- */

/* kubectl apply expands a List's items and validates each; so does the
 * loader, each item with its own apiVersion, kind and lines. */
static void test_lists(void **state)
{
	(void)state;
	char *out;
	struct ig_config *c =
	    loads("apiVersion: v1\n"
		  "kind: List\n"
		  "items:\n"
		  "- apiVersion: v1\n"
		  "  kind: Pod\n" /* 5 */
		  "  metadata: {name: a, labels: {app: x}}\n"
		  "- apiVersion: inference.networking.k8s.io/v1\n"
		  "  kind: InferencePool\n"
		  "  metadata: {name: p}\n"
		  "  spec:\n" /* 10 */
		  "    selector: {matchLabels: {app: x}}\n"
		  "    targetPorts: [{number: 8000}]\n"
		  "    endpointPickerRef: {name: e, port: {number: 9002}}\n"
		  "- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n"
		  "- apiVersion: inference.networking.x-k8s.io/v1alpha1\n" /* 15 */
		  "  kind: EndpointPickerConfig\n"
		  "  plugins:\n"
		  "  - type: queue-scorer\n"
		  "  schedulingProfiles:\n"
		  "  - name: default\n" /* 20 */
		  "    plugins:\n"
		  "    - pluginRef: queue-scorer\n"
		  "---\n"
		  "apiVersion: inference.networking.k8s.io/v1\n"
		  "kind: InferencePoolList\n" /* 25 */
		  "metadata: {resourceVersion: \"7\"}\n"
		  "items:\n"
		  "- apiVersion: inference.networking.k8s.io/v1\n"
		  "  kind: InferencePool\n"
		  "  metadata: {name: q}\n" /* 30 */
		  "  spec:\n"
		  "    selector: {matchLabels: {app: w}}\n"
		  "    targetPorts: [{number: 8000}]\n"
		  "    endpointPickerRef: {name: e, port: {number: 9002}}\n"
		  "---\n" /* 35 */
		  "apiVersion: v1\n"
		  "kind: List\n"
		  "items: []\n",
		  &out);
	assert_null(strstr(out, "error"));
	free(out);
	assert_int_equal(c->npods, 2);
	assert_int_equal(c->npools, 2);
	assert_int_equal(c->nskipped, 0);
	assert_string_equal(c->pods[1].meta.name, "b");
	assert_int_equal(c->pods[1].meta.line, 14);
	assert_int_equal(c->pools[0].meta.line, 7);
	assert_int_equal(c->pools[1].meta.line, 28);
	/* The picker's document is the item's text, at its lines. */
	assert_int_equal(c->npicker_docs, 1);
	assert_int_equal(c->picker_docs[0].line, 15);
	assert_non_null(strstr(c->picker_docs[0].text, "\n  - name: default\n"));
	struct ig_picker_config *pc = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("t.yaml", c->picker_docs[0].text, c->picker_docs[0].len,
					&pc, &d);
	ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	ig_diags_free(&d);
	ig_picker_config_free(pc);
	ig_config_free(c);

	/* Each item is validated, errors at the item's line. */
	fails_with("apiVersion: v1\n"
		   "kind: List\n"
		   "items:\n"
		   "- apiVersion: v1\n"
		   "  kind: Pod\n"
		   "  metadata: {name: a, labels: {app: x}}\n"
		   "- apiVersion: v1\n"
		   "  kind: Pod\n"
		   "  metadata: {name: B_}\n",
		   "t.yaml:9: metadata.name: must be a lowercase RFC 1123 subdomain");
	fails_with("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n"
		   "  metadata: {name: a}\n  spek: {}\n",
		   "t.yaml:7: spek: unknown field");
	fails_with("apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: a}\n",
		   "t.yaml:4: apiVersion: is required");
	fails_with("apiVersion: v1\nkind: List\nitems:\n- 3\n",
		   "t.yaml:4: items[0]: must be a Kubernetes object");
	fails_with("apiVersion: v1\nkind: List\nitem: []\n", "t.yaml:3: item: unknown field");
	/* Nested Lists are refused. */
	fails_with("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n"
		   "  items: [{apiVersion: v1, kind: Pod, metadata: {name: a}}]\n",
		   "t.yaml:5: kind: a List may not be an item of a List");
	/* Duplicates across items and documents. */
	fails_with(
	    "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: "
	    "{name: a}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
	    "t.yaml:6: metadata.name: duplicate Pod \"default/a\": also defined at t.yaml:4");
}

/* ---- kinds infergate does not read --------------------------------------------- */

/* A kind of a group infergate reads that it does not know (a typo, or a
 * kind it does not implement) is skipped with a warning, as kubectl says
 * "no matches for kind"; other groups' kinds and GatewayClass quietly. */
static void test_unknown_kinds(void **state)
{
	(void)state;
	char *out;
	struct ig_config *c = loads("apiVersion: gateway.networking.k8s.io/v1\n"
				    "kind: HttpRoute\n"
				    "metadata: {name: r}\n"
				    "---\n"
				    "apiVersion: gateway.networking.k8s.io/v1alpha2\n" /* 5 */
				    "kind: TLSRoute\n"
				    "metadata: {name: t}\n"
				    "---\n"
				    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				    "kind: InferencePools\n" /* 10 */
				    "metadata: {name: p}\n"
				    "---\n"
				    "apiVersion: llm-d.ai/v1alpha2\n"
				    "kind: InferenceObjectiv\n"
				    "metadata: {name: o}\n" /* 15 */
				    "---\n"
				    "apiVersion: gateway.networking.k8s.io/v1\n"
				    "kind: GatewayClass\n"
				    "metadata: {name: c}\n"
				    "---\n" /* 20 */
				    "apiVersion: rbac.authorization.k8s.io/v1\n"
				    "kind: Role\n"
				    "metadata: {name: r}\n"
				    "---\n"
				    "apiVersion: v1\n" /* 25 */
				    "kind: ServiceAccount\n"
				    "metadata: {name: a}\n"
				    "---\n"
				    "apiVersion: v1\n"
				    "kind: ServiceAccount\n" /* 30 */
				    "metadata: {name: b}\n",
				    &out);
	has(out, "t.yaml:2: warning: kind: no matches for kind \"HttpRoute\" in version "
		 "gateway.networking.k8s.io/v1: infergate does not read it, the document is "
		 "skipped\n");
	has(out, "t.yaml:6: warning: kind: no matches for kind \"TLSRoute\" in version "
		 "gateway.networking.k8s.io/v1alpha2");
	has(out, "t.yaml:10: warning: kind: no matches for kind \"InferencePools\" in version "
		 "inference.networking.x-k8s.io/v1alpha2");
	has(out, "t.yaml:14: warning: kind: no matches for kind \"InferenceObjectiv\"");
	assert_null(strstr(out, "GatewayClass"));
	assert_null(strstr(out, "Role"));
	assert_null(strstr(out, "ServiceAccount"));
	free(out);
	assert_int_equal(c->nskipped, 8);
	assert_int_equal(c->nskipped_kinds, 7);
	assert_string_equal(c->skipped_kinds[0].kind, "HttpRoute");
	assert_string_equal(c->skipped_kinds[6].kind, "ServiceAccount");
	assert_int_equal(c->skipped_kinds[6].n, 2);
	ig_config_free(c);
}

/* ---- HTTPRoute regular expressions ---------------------------------------------- */

static void test_route_regex(void **state)
{
	(void)state;
	static const char head[] = "apiVersion: gateway.networking.k8s.io/v1\n"
				   "kind: HTTPRoute\n"
				   "metadata: {name: r}\n"
				   "spec:\n"
				   "  rules:\n"
				   "  - matches:\n";
	char text[1024];
	snprintf(text, sizeof text, "%s%s", head,
		 "    - path: {type: RegularExpression, value: \"/v1/(chat|completions)\"}\n"
		 "      headers: [{type: RegularExpression, name: x-a, value: \"a[0-9]+\"}]\n"
		 "      queryParams: [{type: RegularExpression, name: q, value: \"^x.*\"}]\n");
	ig_config_free(loads(text, NULL));
	snprintf(text, sizeof text, "%s%s", head,
		 "    - path: {type: RegularExpression, value: \"/v1/(chat\"}\n");
	fails_with(text, "t.yaml:7: spec.rules[0].matches[0].path.value: must be a POSIX "
			 "extended regular expression: ");
	snprintf(text, sizeof text, "%s%s", head,
		 "    - headers:\n"
		 "      - {type: RegularExpression, name: x-a, value: \"a[\"}\n");
	fails_with(text, "t.yaml:8: spec.rules[0].matches[0].headers[0].value: must be a POSIX "
			 "extended regular expression: ");
	snprintf(text, sizeof text, "%s%s", head,
		 "    - queryParams:\n"
		 "      - name: q\n"
		 "        type: RegularExpression\n"
		 "        value: \"*+\"\n");
	fails_with(text, "t.yaml:10: spec.rules[0].matches[0].queryParams[0].value: must be a "
			 "POSIX extended regular expression: ");
	/* Patterns whose compiled form grows exponentially (glibc copies a
	 * repeated tree per repetition) are refused before regcomp. */
	snprintf(text, sizeof text, "%s%s", head,
		 "    - path: {type: RegularExpression, value: \"/v+++++++++++++++++++++1\"}\n");
	fails_with(text, "path.value: must be a POSIX extended regular expression: it repeats a "
			 "repetition");
	snprintf(text, sizeof text, "%s%s", head,
		 "    - path: {type: RegularExpression, value: "
		 "\"/((((((((((((a)+)+)+)+)+)+)+)+)+)+)+)+\"}\n");
	fails_with(text, "has repetitions whose product is over 1000");
	snprintf(text, sizeof text, "%s%s", head,
		 "    - path: {type: RegularExpression, value: \"/(a{1,200}){1,200}\"}\n");
	fails_with(text, "has repetitions whose product is over 1000");
	snprintf(
	    text, sizeof text, "%s%s", head,
	    "    - path: {type: RegularExpression, value: \"/[+*]+[[:alpha:]]{1,3}\\\\++\"}\n");
	ig_config_free(loads(text, NULL));
	/* An Exact value is not an expression. */
	snprintf(text, sizeof text, "%s%s", head, "    - headers: [{name: x-a, value: \"a[\"}]\n");
	ig_config_free(loads(text, NULL));
}

/* ---- what the API server accepts ------------------------------------------------ */

static void test_api_server_accepts(void **state)
{
	(void)state;
	char *out;
	/* InferenceObjective.spec.priority is a Go int: 64 bits. */
	struct ig_config *c = loads("apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				    "kind: InferenceObjective\n"
				    "metadata: {name: a}\n"
				    "spec: {priority: 1099511627776, poolRef: {name: p}}\n"
				    "---\n"
				    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				    "kind: InferenceObjective\n"
				    "metadata: {name: b}\n"
				    "spec: {priority: -9223372036854775808, poolRef: {name: p}}\n"
				    "---\n"
				    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
				    "kind: InferenceObjective\n"
				    "metadata: {name: c}\n"
				    "spec: {priority: 2147483647, poolRef: {name: p}}\n",
				    &out);
	has(out, "t.yaml:4: warning: spec.priority: 1099511627776 is beyond 32 bits");
	assert_null(strstr(out, "t.yaml:14: warning: spec.priority"));
	free(out);
	assert_int_equal(c->objectives[0].priority, 2147483647);
	assert_int_equal(c->objectives[1].priority, -2147483647 - 1);
	assert_int_equal(c->objectives[2].priority, 2147483647);
	ig_config_free(c);
	fails_with("apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
		   "kind: InferenceObjective\n"
		   "metadata: {name: a}\n"
		   "spec: {priority: 9223372036854775808, poolRef: {name: p}}\n",
		   "t.yaml:4: spec.priority: must be an integer");

	/* Any protocol the CRD's pattern admits loads; one infergate does not
	 * serve is UnsupportedProtocol on its listener. */
	static const char gw[] =
	    "apiVersion: gateway.networking.k8s.io/v1\n"
	    "kind: Gateway\n"
	    "metadata: {name: gw}\n"
	    "spec:\n"
	    "  gatewayClassName: c\n" /* 5 */
	    "  listeners:\n"
	    "  - {name: a, port: 80, protocol: Http}\n"
	    "  - {name: b, port: 81, protocol: example.com/Custom}\n"
	    "  - {name: c, port: 82, protocol: HTTP}\n"
	    "---\n" /* 10 */
	    "apiVersion: gateway.networking.k8s.io/v1\n"
	    "kind: HTTPRoute\n"
	    "metadata: {name: r}\n"
	    "spec:\n"
	    "  parentRefs: [{name: gw}, {name: gw, namespace: default}]\n"; /* 15 */
	c = loads(gw, &out);
	has(out, "t.yaml:7: warning: spec.listeners[0].protocol: protocol Http is not served by "
		 "infergate (UnsupportedProtocol)");
	has(out, "t.yaml:8: warning: spec.listeners[1].protocol: protocol example.com/Custom");
	assert_null(strstr(out, "parentRefs"));
	free(out);
	const struct ig_gateway *g = &c->gateways[0];
	assert_false(g->listeners[0].served);
	assert_false(g->listeners[1].served);
	assert_true(g->listeners[2].served);
	assert_int_equal(c->routes[0].nparents, 2);
	ig_config_free(c);
	fails_with("apiVersion: gateway.networking.k8s.io/v1\n"
		   "kind: Gateway\n"
		   "metadata: {name: gw}\n"
		   "spec:\n"
		   "  gatewayClassName: c\n"
		   "  listeners: [{name: a, port: 80, protocol: \"HT TP\"}]\n",
		   "t.yaml:6: spec.listeners[0].protocol: must be a name of up to 63 letters");
	/* The same parent twice, written the same way, is still refused. */
	fails_with("apiVersion: gateway.networking.k8s.io/v1\n"
		   "kind: HTTPRoute\n"
		   "metadata: {name: r}\n"
		   "spec:\n"
		   "  parentRefs: [{name: gw, namespace: x}, {name: gw, namespace: x}]\n",
		   "t.yaml:5: spec.parentRefs: sectionName or port must be specified when "
		   "parentRefs includes 2 or more references to the same parent");
}

/* ---- what the API server refuses ------------------------------------------------ */

/* YAML 1.1 (what kubectl reads manifests with) makes plain yes, true, 123
 * or 1.5 a boolean or a number, which the API server refuses where a
 * string is required; quoted, or tagged !!str, they are strings. And a
 * string is not an integer, even tagged. */
static void test_api_server_refuses(void **state)
{
	(void)state;
	fails_with(
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {d: yes}}\n",
	    "t.yaml:3: metadata.labels.d: must be of type string, not boolean yes (quote it)");
	fails_with(
	    "apiVersion: inference.networking.k8s.io/v1\n"
	    "kind: InferencePool\n"
	    "metadata: {name: p}\n"
	    "spec:\n"
	    "  selector: {matchLabels: {app: true}}\n"
	    "  targetPorts: [{number: 8000}]\n"
	    "  endpointPickerRef: {name: e, port: {number: 9002}}\n",
	    "t.yaml:5: spec.selector.matchLabels.app: must be of type string, not boolean true");
	fails_with(
	    "apiVersion: inference.networking.k8s.io/v1\n"
	    "kind: InferencePool\n"
	    "metadata: {name: p}\n"
	    "spec:\n"
	    "  selector: {matchLabels: {n: 123}}\n"
	    "  targetPorts: [{number: 8000}]\n"
	    "  endpointPickerRef: {name: e, port: {number: 9002}}\n",
	    "t.yaml:5: spec.selector.matchLabels.n: must be of type string, not integer 123");
	fails_with("apiVersion: v1\nkind: Pod\nmetadata: {name: 1.5}\n",
		   "t.yaml:3: metadata.name: must be of type string, not number 1.5");
	fails_with("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: 0x1F}}\n",
		   "t.yaml:3: metadata.labels.a: must be of type string, not integer 0x1F");
	fails_with("apiVersion: v1\n"
		   "kind: Service\n"
		   "metadata: {name: s}\n"
		   "spec: {ports: [{port: !!str 8000}]}\n",
		   "t.yaml:4: spec.ports[0].port: must be an integer");
	/* Strings, as the API server has them. */
	struct ig_config *c =
	    loads("apiVersion: v1\n"
		  "kind: Pod\n"
		  "metadata:\n"
		  "  name: p\n"
		  "  labels: {a: \"yes\", b: '123', c: !!str true, d: &x !!str 7, "
		  "e: 1.2.3, f: v1, g: 2025-01-01, h: 0x, i: 1e}\n",
		  NULL);
	assert_int_equal(c->pods[0].meta.nlabels, 9);
	assert_string_equal(c->pods[0].meta.labels[2].value, "true");
	assert_string_equal(c->pods[0].meta.labels[3].value, "7");
	ig_config_free(c);

	/* A Service's name is an RFC 1035 label: it starts with a letter. */
	fails_with("apiVersion: v1\nkind: Service\nmetadata:\n  name: 1svc\n"
		   "spec: {ports: [{port: 80}]}\n",
		   "t.yaml:4: metadata.name: a DNS-1035 label must consist of lower case");
	fails_with("apiVersion: v1\nkind: Service\nmetadata:\n  name: a.b\n"
		   "spec: {ports: [{port: 80}]}\n",
		   "t.yaml:4: metadata.name: a DNS-1035 label");
	ig_config_free(loads("apiVersion: v1\nkind: Service\nmetadata: {name: svc-1}\n"
			     "spec: {ports: [{port: 80}]}\n",
			     NULL));
}

/* ---- merge keys ----------------------------------------------------------------- */

static const char *label(const struct ig_pod *p, const char *key)
{
	for (size_t i = 0; i < p->meta.nlabels; i++)
		if (!strcmp(p->meta.labels[i].key, key))
			return p->meta.labels[i].value;
	return NULL;
}

/* <<: *anchor and <<: [*a, *b], as sigs.k8s.io/yaml reads them for
 * kubectl: a mapping's own keys win, an earlier mapping of a list wins
 * over a later one, and every mapping sees the merged keys. */
static void test_merge_keys(void **state)
{
	(void)state;
	char *out;
	struct ig_config *c =
	    loads("apiVersion: v1\n"
		  "kind: List\n"
		  "items:\n"
		  "- apiVersion: v1\n"
		  "  kind: Pod\n" /* 5 */
		  "  metadata: &meta\n"
		  "    name: p\n"
		  "    labels: &base {app: a, tier: x}\n"
		  "- apiVersion: v1\n"
		  "  kind: Pod\n" /* 10 */
		  "  metadata:\n"
		  "    <<: *meta\n"
		  "    name: q\n"
		  "    labels:\n"
		  "      tier: w\n" /* 15 */
		  "      <<: [&extra {tier: z, zone: one, app: b}, *base]\n"
		  "- <<: {apiVersion: v1, kind: Pod}\n"
		  "  metadata: {<<: [{name: r}, {name: s}], labels: {<<: *base}}\n",
		  &out);
	free(out);
	assert_int_equal(c->npods, 3);
	const struct ig_pod *p = &c->pods[0], *q = &c->pods[1], *r = &c->pods[2];
	assert_string_equal(p->meta.name, "p");
	assert_string_equal(q->meta.name, "q");
	assert_string_equal(label(q, "tier"), "w");
	assert_string_equal(label(q, "zone"), "one");
	assert_string_equal(label(q, "app"), "b");
	assert_int_equal(q->meta.nlabels, 3);
	assert_string_equal(r->meta.name, "r");
	assert_string_equal(label(r, "app"), "a");
	ig_config_free(c);
	/* Merged keys are checked as the mapping's own. */
	fails_with("apiVersion: v1\nkind: List\nitems:\n"
		   "- apiVersion: v1\n  kind: Pod\n  metadata: &m {name: p, bogus: 1}\n"
		   "- apiVersion: v1\n  kind: Pod\n  metadata: {<<: *m, name: q}\n",
		   "t.yaml:6: metadata.bogus: unknown field");
	fails_with("apiVersion: v1\nkind: Pod\nmetadata: {name: p, <<: 3}\n",
		   "t.yaml:3: a merge key (<<) takes a mapping or a list of mappings");
	fails_with("apiVersion: v1\nkind: Pod\nmetadata: {name: p, <<: [{a: b}, x]}\n",
		   "t.yaml:3: a merge key (<<) takes a mapping or a list of mappings");
	/* The picker's configuration reads them too. */
	static const char epc[] = "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
				  "kind: EndpointPickerConfig\n"
				  "plugins:\n"
				  "- &q {type: queue-scorer}\n"
				  "- {<<: *q, name: q2}\n"
				  "schedulingProfiles:\n"
				  "- name: default\n"
				  "  plugins: [{pluginRef: queue-scorer}, {pluginRef: q2}]\n";
	struct ig_picker_config *pc = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("p.yaml", epc, strlen(epc), &pc, &d);
	ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	ig_diags_free(&d);
	ig_picker_config_free(pc);
	/* A quoted "<<" is a key like any other. */
	fails_with("apiVersion: v1\nkind: Pod\nmetadata: {name: p, \"<<\": {a: b}}\n",
		   "t.yaml:3: metadata.<<: unknown field");
}

/* Merges copy keys as aliases repeat nodes: a few kilobytes naming a
 * mapping of 1000 keys in 2000 places would be two million pairs. */
static void test_merge_bomb(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fputs("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nx: &a {", f);
	for (int i = 0; i < 1000; i++)
		fprintf(f, "%sk%d: v", i ? ", " : "", i);
	fputs("}\ny: [", f);
	for (int i = 0; i < 2000; i++)
		fputs(i ? ", {<<: *a}" : "{<<: *a}", f);
	fputs("]\n", f);
	fclose(f);
	int rc;
	char *out = load(text, &rc, NULL);
	assert_int_not_equal(rc, 0);
	has(out, "t.yaml:5: too many keys merged with << in one document");
	free(out);
	free(text);
}

/* One mapping merging a list that names a 20,000-key mapping 100,000
 * times: the merged pairs' bound (two billion) once sized the allocation,
 * which failed as "out of memory", a want of resources the gateway
 * retries forever. The budget bounds it: refused as the input's fault. */
static void test_merge_list_bomb(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fputs("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nx: &a {", f);
	for (int i = 0; i < 20000; i++)
		fprintf(f, "%sk%d: 1", i ? ", " : "", i);
	fputs("}\ny: {<<: [", f);
	for (int i = 0; i < 100000; i++)
		fputs(i ? ", *a" : "*a", f);
	fputs("]}\n", f);
	fclose(f);
	int rc;
	char *out = load(text, &rc, NULL);
	assert_int_not_equal(rc, 0);
	has(out, "t.yaml:5: too many keys merged with << in one document");
	assert_null(strstr(out, "out of memory"));
	free(out);
	free(text);
}

/* fuzz_yaml's find: a certificateRefs entry that is no mapping (refused)
 * left its reference unresolved but not failed, and the listener's pairs
 * were then read from a Secret it never found. */
static void test_certificate_ref_without_name(void **state)
{
	(void)state;
	fails_with("apiVersion: gateway.networking.k8s.io/v1\n"
		   "kind: Gateway\n"
		   "metadata: {name: gw}\n"
		   "spec:\n"
		   "  gatewayClassName: infergate\n"
		   "  listeners:\n"
		   "  - name: https\n"
		   "    protocol: HTTPS\n"
		   "    port: 443\n"
		   "    tls:\n"
		   "      certificateRefs:\n"
		   "      - kind: Secret\n"
		   "      - a-scalar\n",
		   "certificateRefs[1]");
}

/* ---- failures for want of resources ----------------------------------------------- */

static const char route_yaml[] = "apiVersion: gateway.networking.k8s.io/v1\n"
				 "kind: HTTPRoute\n"
				 "metadata: {name: r}\n"
				 "spec:\n"
				 "  rules:\n"
				 "  - matches: [{path: {type: PathPrefix, value: /}}]\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Loads paths; returns rc, *resource the diags' resource, *out what
 * `infergate check` would print. */
static int load_paths(const char *const *paths, size_t n, int *resource, char **out)
{
	struct ig_config *c = NULL;
	struct ig_diags d = {0};
	size_t olen = 0;
	FILE *f = open_memstream(out, &olen);
	assert_non_null(f);
	int rc = ig_config_load(paths, n, &c, &d);
	ig_diags_print(&d, f);
	fclose(f);
	*resource = d.resource;
	ig_diags_free(&d);
	ig_config_free(c);
	return rc;
}

/* Takes every descriptor under a soft limit of 64; returns how many. */
static int exhaust_fds(int *fds, int max, struct rlimit *saved)
{
	assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
	struct rlimit low = {.rlim_cur = 64, .rlim_max = saved->rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int n = 0;
	while (n < max && (fds[n] = dup(0)) >= 0)
		n++;
	assert_true(n < max);
	return n;
}

static void release_fds(int *fds, int n, const struct rlimit *saved)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, saved), 0);
}

/* Out of descriptors, a manifest, a directory or the picker's file cannot
 * be opened: the load fails, naming it and the errno, and says it was for
 * want of resources (a reload is tried again); once descriptors are back
 * the same files load. A file that is not there, or invalid YAML, is an
 * error of the input, not of resources. */
static void test_out_of_fds_is_a_resource_failure(void **state)
{
	(void)state;
	char dir[] = "/tmp/ig-cfg-fds-XXXXXX", file[64], sub[64], picker[64], bad[64], missing[64];
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof file, "%s/route.yaml", dir);
	snprintf(sub, sizeof sub, "%s/more", dir);
	snprintf(picker, sizeof picker, "%s/picker.yaml", dir);
	snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
	snprintf(missing, sizeof missing, "%s/missing.yaml", dir);
	write_file(file, route_yaml);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(picker, "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
			   "kind: EndpointPickerConfig\n"
			   "plugins:\n"
			   "- type: queue-scorer\n"
			   "schedulingProfiles:\n"
			   "- name: default\n"
			   "  plugins:\n"
			   "  - pluginRef: queue-scorer\n");
	write_file(bad, "kind: [\n");
	const char *const both[] = {file, sub};
	int resource = -1, fds[1024];
	char *out = NULL;

	assert_int_equal(load_paths(both, 2, &resource, &out), 0);
	assert_int_equal(resource, 0);
	free(out);

	struct rlimit saved;
	int n = exhaust_fds(fds, 1024, &saved);
	int rc = load_paths(both, 1, &resource, &out);
	struct ig_config *cfg = NULL;
	struct ig_picker_config *pc = NULL;
	struct ig_diags pd = {0};
	uint64_t hash;
	int prc = ig_gw_load_picker(NULL, picker, NULL, false, &pc, &hash, &pd);
	int presource = pd.resource;
	release_fds(fds, n, &saved);
	assert_int_equal(rc, -1);
	assert_int_equal(resource, EMFILE);
	has(out, "route.yaml: cannot read: Too many open files");
	free(out);
	assert_int_equal(prc, -1);
	assert_int_equal(presource, EMFILE);
	assert_int_equal(pd.n, 1);
	has(pd.items[0].msg, "cannot read the picker configuration: Too many open files");
	ig_diags_free(&pd);

	/* A directory: the same. */
	n = exhaust_fds(fds, 1024, &saved);
	rc = load_paths(both + 1, 1, &resource, &out);
	release_fds(fds, n, &saved);
	assert_int_equal(rc, -1);
	assert_int_equal(resource, EMFILE);
	has(out, "more: cannot read directory: Too many open files");
	free(out);

	/* Descriptors back: the same files load. */
	assert_int_equal(load_paths(both, 2, &resource, &out), 0);
	free(out);
	assert_int_equal(ig_gw_load_picker(cfg, picker, NULL, false, &pc, &hash, &pd), 0);
	ig_picker_config_free(pc);
	ig_diags_free(&pd);

	/* Errors of the input stay errors. */
	const char *const nope[] = {missing};
	assert_int_equal(load_paths(nope, 1, &resource, &out), -1);
	assert_int_equal(resource, 0);
	has(out, "missing.yaml: cannot read: No such file or directory");
	free(out);
	const char *const invalid[] = {bad};
	assert_int_equal(load_paths(invalid, 1, &resource, &out), -1);
	assert_int_equal(resource, 0);
	free(out);
	assert_int_equal(ig_gw_load_picker(cfg, missing, NULL, false, &pc, &hash, &pd), -1);
	assert_int_equal(pd.resource, 0);
	ig_diags_free(&pd);

	unlink(file);
	unlink(picker);
	unlink(bad);
	rmdir(sub);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reader_error_lines),
	    cmocka_unit_test(test_many_duplicates),
	    cmocka_unit_test(test_duplicates_by_group),
	    cmocka_unit_test(test_lists),
	    cmocka_unit_test(test_unknown_kinds),
	    cmocka_unit_test(test_route_regex),
	    cmocka_unit_test(test_api_server_accepts),
	    cmocka_unit_test(test_api_server_refuses),
	    cmocka_unit_test(test_merge_keys),
	    cmocka_unit_test(test_merge_bomb),
	    cmocka_unit_test(test_merge_list_bomb),
	    cmocka_unit_test(test_certificate_ref_without_name),
	    cmocka_unit_test(test_out_of_fds_is_a_resource_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
