/* llm-d's x-session-token: the standard base64 of an endpoint's GIE name,
 * "namespace/pod-rank-N", looked up both ways in the tables a snapshot
 * builds for each pool (gateway/sessions.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "gateway/sessions.h"
#include "gateway/snapshot.h"
#include "pool/endpoint.h"
#include "sched/picker.h"

static const char pool_yaml[] = "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n"
				"metadata: {name: dp, namespace: llm}\n"
				"spec:\n  selector: {matchLabels: {app: vllm}}\n"
				"  targetPorts: [{number: 8000}, {number: 8002}]\n";

static const char pod_a[] =
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: llm, labels: {app: vllm}}\n"
    "status: {podIP: 10.0.0.1}\n";
static const char pod_b[] =
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: llm, labels: {app: vllm}}\n"
    "status: {podIP: 10.0.0.2}\n";

static struct ig_snapshot *build(struct ig_endpoints *reg, const char *text,
				 const struct ig_snapshot *prev)
{
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("s.yaml", text, strlen(text), &cfg, &d), 0);
	ig_diags_free(&d);
	struct ig_snapshot *s =
	    ig_snapshot_build(reg, cfg, ig_picker_config_default(), 1, prev, 1, 1);
	assert_non_null(s);
	return s;
}

/* The token llm-d would send for a GIE name. */
static struct ig_str token(const char *name)
{
	static char out[4][IG_SESSION_TOKEN_MAX];
	static unsigned k;
	char *t = out[k++ % 4];
	t[ig_base64_encode(name, strlen(name), t)] = '\0';
	return ig_str_from(t);
}

static const struct ig_endpoint *ep_at(const struct ig_pool_rt *rt, const char *addr)
{
	for (size_t i = 0; i < rt->neps; i++)
		if (!strcmp(rt->eps[i]->addr, addr))
			return rt->eps[i];
	fail_msg("no endpoint %s", addr);
	return NULL;
}

static void test_token_lookup(void **state)
{
	char text[1024];
	snprintf(text, sizeof text, "%s%s%s", pool_yaml, pod_a, pod_b);
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_snapshot *s = build(reg, text, NULL);
	const struct ig_pool_rt *dp = ig_snapshot_pool(s, "llm", "dp");
	assert_non_null(dp);
	assert_int_equal(dp->neps, 4);
	const struct ig_endpoint *a1 = ep_at(dp, "10.0.0.1:8002");
	const struct ig_endpoint *b0 = ep_at(dp, "10.0.0.2:8000");

	/* A response names the endpoint that served it. */
	struct ig_str t = ig_session_token_of(dp, a1);
	assert_true(ig_str_eq(t, token("llm/a-rank-1")));
	assert_string_equal(t.ptr, "bGxtL2EtcmFuay0x");
	assert_true(ig_str_eq(ig_session_token_of(dp, b0), token("llm/b-rank-0")));
	assert_int_equal(ig_session_token_of(NULL, a1).len, 0);

	/* Hit: the endpoint the token names, blanks around it ignored. */
	assert_int_equal(ig_session_token_key(dp, token("llm/a-rank-1")), a1->key);
	assert_int_equal(ig_session_token_key(dp, token("llm/b-rank-0")), b0->key);
	assert_int_equal(ig_session_token_key(dp, IG_STR(" bGxtL2EtcmFuay0x\t")), a1->key);
	/* Miss: a pod, rank or namespace that is not the pool's. */
	assert_int_equal(ig_session_token_key(dp, token("llm/c-rank-0")), 0);
	assert_int_equal(ig_session_token_key(dp, token("llm/a-rank-2")), 0);
	assert_int_equal(ig_session_token_key(dp, token("other/a-rank-0")), 0);
	assert_int_equal(ig_session_token_key(NULL, token("llm/a-rank-1")), 0);
	/* Garbage: not base64, the name itself, a prefix, empty, too long. */
	assert_int_equal(ig_session_token_key(dp, IG_STR("!!not-base64!!")), 0);
	assert_int_equal(ig_session_token_key(dp, IG_STR("llm/a-rank-1")), 0);
	assert_int_equal(ig_session_token_key(dp, IG_STR("bGxtL2EtcmFuay0")), 0);
	assert_int_equal(ig_session_token_key(dp, IG_STR("")), 0);
	assert_int_equal(ig_session_token_key(dp, IG_STR("   ")), 0);
	char long_token[IG_SESSION_TOKEN_MAX + 8];
	memset(long_token, 'A', sizeof long_token);
	assert_int_equal(ig_session_token_key(dp, (struct ig_str){long_token, sizeof long_token}),
			 0);

	/* Pod b departs: the new snapshot knows neither its tokens nor its
	 * endpoints, while the old one, which in-flight requests still
	 * hold, answers as it did. */
	snprintf(text, sizeof text, "%s%s", pool_yaml, pod_a);
	struct ig_snapshot *s2 = build(reg, text, s);
	const struct ig_pool_rt *dp2 = ig_snapshot_pool(s2, "llm", "dp");
	assert_int_equal(dp2->neps, 2);
	assert_int_equal(ig_session_token_key(dp2, token("llm/b-rank-0")), 0);
	assert_int_equal(ig_session_token_key(dp2, token("llm/b-rank-1")), 0);
	assert_int_equal(ig_session_token_of(dp2, b0).len, 0);
	assert_int_equal(ig_session_token_key(dp2, token("llm/a-rank-1")), a1->key);
	assert_true(ig_str_eq(ig_session_token_of(dp2, a1), token("llm/a-rank-1")));
	assert_int_equal(ig_session_token_key(dp, token("llm/b-rank-0")), b0->key);
	ig_snapshot_unref(s);
	ig_snapshot_unref(s2);
	ig_endpoints_free(reg);
}

/* Every endpoint of a large pool, found both ways: the tables hold all of
 * them, whatever their slots collide on. */
static void test_token_lookup_large(void **state)
{
	enum { PODS = 1024 };
	size_t cap = sizeof pool_yaml + PODS * 160, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	len += (size_t)snprintf(text, cap, "%s", pool_yaml);
	for (size_t i = 0; i < PODS; i++)
		len +=
		    (size_t)snprintf(text + len, cap - len,
				     "---\napiVersion: v1\nkind: Pod\nmetadata: {name: vllm-%zu, "
				     "namespace: llm, labels: {app: vllm}}\n"
				     "status: {podIP: 10.1.%zu.%zu}\n",
				     i, i >> 8, i & 255);
	struct ig_endpoints *reg = ig_endpoints_new(1);
	struct ig_snapshot *s = build(reg, text, NULL);
	const struct ig_pool_rt *dp = ig_snapshot_pool(s, "llm", "dp");
	assert_int_equal(dp->neps, 2 * PODS);
	for (size_t i = 0; i < dp->neps; i++) {
		char name[64];
		snprintf(name, sizeof name, "llm/%s-rank-%u", dp->ep_pods[i]->meta.name,
			 (unsigned)dp->ep_ranks[i]);
		assert_int_equal(ig_session_token_key(dp, token(name)), dp->eps[i]->key);
		assert_true(ig_str_eq(ig_session_token_of(dp, dp->eps[i]), token(name)));
	}
	assert_int_equal(ig_session_token_key(dp, token("llm/vllm-1024-rank-0")), 0);
	ig_snapshot_unref(s);
	ig_endpoints_free(reg);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_lookup),
	    cmocka_unit_test(test_token_lookup_large),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
