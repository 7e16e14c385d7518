/* The llm-d Router plugin types of the configurable picker: each one's
 * filtering or scoring on crafted endpoints, with llm-d's own numbers
 * (pkg/epp/framework/plugins/...), and the loader's answer for the types
 * infergate does not run. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sched/picker.h"

#define MAXE 8

static struct ig_endpoint_load m[MAXE];
static struct ig_sched_endpoint eps[MAXE];
static char addrs[MAXE][32];
static size_t n;
static struct ig_rng rng;
static uint64_t kept_tokens; /* see kept() */

static int setup(void **state)
{
	memset(m, 0, sizeof m);
	memset(eps, 0, sizeof eps);
	n = 0;
	kept_tokens = 0;
	ig_rng_seed(&rng, 7);
	(void)state;
	return 0;
}

static size_t ep(int64_t q)
{
	size_t i = n++;
	m[i].waiting = q;
	snprintf(addrs[i], sizeof addrs[i], "10.0.0.%zu:8000", i + 1);
	eps[i] =
	    (struct ig_sched_endpoint){.m = &m[i], .addr = ig_str_from(addrs[i]), .key = 100 + i};
	return i;
}

static struct ig_picker_config *parse_ok(const char *yaml)
{
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("t.yaml", yaml, strlen(yaml), &c, &d);
	if (rc != 0 || d.n)
		ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	ig_diags_free(&d);
	return c;
}

/* Parses and expects exactly one error: on that line and path, with a
 * message that contains msg. */
static void parse_bad(const char *yaml, int line, const char *path, const char *msg)
{
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("e.yaml", yaml, strlen(yaml), &c, &d);
	bool found = false;
	for (size_t k = 0; k < d.n; k++)
		found |= !d.items[k].warning && d.items[k].line == line &&
			 strcmp(d.items[k].path, path) == 0 && strstr(d.items[k].msg, msg);
	if (rc != -1 || !found) {
		fprintf(stderr, "want %d: %s: %s\n", line, path, msg);
		ig_diags_print(&d, stderr);
	}
	assert_int_equal(rc, -1);
	assert_null(c);
	assert_true(found);
	ig_diags_free(&d);
}

static struct ig_scheduler *sched_of(const char *yaml)
{
	struct ig_picker_config *c = parse_ok(yaml);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c); /* the scheduler keeps what it needs */
	assert_non_null(s);
	return s;
}

static const struct ig_sched_req plain = {.model = IG_STR("m"), .target_model = IG_STR("m")};

/* Runs one schedule; each endpoint's total score to out (-1: filtered
 * out); returns the number ranked, or -1. */
static int score_all(struct ig_scheduler *s, const struct ig_sched_req *req, double *out,
		     struct ig_sched_result *res)
{
	static size_t ranked[MAXE];
	double scores[MAXE];
	*res = (struct ig_sched_result){.ranked = ranked, .scores = scores};
	for (size_t i = 0; i < MAXE; i++)
		out[i] = -1;
	int rc = ig_schedule(s, req, eps, n, &rng, res);
	for (size_t k = 0; rc == 0 && k < res->nranked; k++)
		out[ranked[k]] = scores[k];
	return rc == 0 ? (int)res->nranked : -1;
}

#define ONE(type, params, weight)                                                                  \
	"plugins:\n- type: " type "\n" params "schedulingProfiles:\n- name: p\n  plugins:\n"       \
	"  - pluginRef: " type "\n" weight

/* ---- pods ------------------------------------------------------------------------- */

static struct ig_kv kvs[MAXE][3];
static struct ig_pod pods[MAXE];

/* Gives endpoint i a pod with up to three labels (pairs of strings,
 * NULL-terminated). */
static void labels(size_t i, ...)
{
	va_list ap;
	size_t k = 0;
	va_start(ap, i);
	for (const char *key; k < 3 && (key = va_arg(ap, const char *));) {
		kvs[i][k].key = (char *)key;
		kvs[i][k++].value = va_arg(ap, char *);
	}
	va_end(ap);
	pods[i] =
	    (struct ig_pod){.meta = {.name = "p", .ns = "default", .labels = kvs[i], .nlabels = k}};
	eps[i].pod = &pods[i];
}

/* The endpoints a filter-only profile keeps, as a bit set, for a request
 * of kept_tokens estimated tokens. */
static unsigned kept(const char *yaml)
{
	struct ig_scheduler *s = sched_of(yaml);
	struct ig_sched_result res;
	double sc[MAXE];
	unsigned bits = 0;
	struct ig_sched_req req = plain;
	req.prompt_tokens = kept_tokens;
	assert_true(ig_scheduler_needs(s) & IG_SCHED_NEEDS_PODS);
	if (score_all(s, &req, sc, &res) > 0)
		for (size_t i = 0; i < n; i++)
			bits |= sc[i] >= 0 ? 1u << i : 0;
	ig_scheduler_free(s);
	return bits;
}

/* ---- filters ---------------------------------------------------------------------- */

/* llm-d's roles.go: which llm-d.ai/role values each role filter keeps;
 * only decode-filter keeps pods without the label. */
static void test_role_filters(void **state)
{
	static const char *const roles[] = {"decode",
					    "prefill",
					    "encode",
					    "prefill-decode",
					    "both",
					    "encode-prefill",
					    "encode-prefill-decode"};
	for (size_t i = 0; i < 7; i++) {
		ep(0);
		labels(i, "llm-d.ai/role", roles[i], NULL);
	}
	ep(0); /* 7: no pod at all */
	assert_int_equal(kept(ONE("decode-filter", "", "")),
			 1u << 0 | 1u << 3 | 1u << 4 | 1u << 6 | 1u << 7);
	assert_int_equal(kept(ONE("prefill-filter", "", "")),
			 1u << 1 | 1u << 3 | 1u << 4 | 1u << 5 | 1u << 6);
	assert_int_equal(kept(ONE("encode-filter", "", "")), 1u << 2 | 1u << 5 | 1u << 6);
	/* A role filter that leaves nothing fails the schedule. */
	setup(NULL);
	ep(0);
	labels(0, "llm-d.ai/role", "decode", NULL);
	assert_int_equal(kept(ONE("encode-filter", "", "")), 0);
	(void)state;
}

static void test_by_label(void **state)
{
	ep(0);
	labels(0, "gpu", "a100", NULL);
	ep(0);
	labels(1, "gpu", "h100", NULL);
	ep(0);
	labels(2, "zone", "a", NULL);
	ep(0);
	labels(3, "gpu", "", NULL);
	assert_int_equal(
	    kept(ONE("by-label", "  parameters:\n    label: gpu\n    validValues: [a100]\n", "")),
	    1u << 0);
	assert_int_equal(kept(ONE("by-label",
				  "  parameters:\n    label: gpu\n    validValues: [a100]\n"
				  "    allowsNoLabel: true\n",
				  "")),
			 1u << 0 | 1u << 2);
	/* llm-d reads an absent label as "": a "" among the values keeps
	 * pods without it, and pods whose value is "". */
	assert_int_equal(
	    kept(ONE("by-label", "  parameters:\n    label: gpu\n    validValues: [\"\"]\n", "")),
	    1u << 2 | 1u << 3);
	parse_bad("plugins:\n- type: by-label\n", 2, "plugins[0]",
		  "by-label: parameters.label must be specified");
	parse_bad("plugins:\n- type: by-label\n  parameters: {label: gpu}\n", 2, "plugins[0]",
		  "either parameters.validValues must be non-empty or parameters.allowsNoLabel");
	parse_bad("plugins:\n- type: by-label\n  parameters: {label: gpu, validValues: [1]}\n", 3,
		  "plugins[0].parameters.validValues[0]", "must be a string");
	(void)state;
}

static void test_label_selector(void **state)
{
	ep(0);
	labels(0, "role", "decode", "hw", "H100", NULL);
	ep(0);
	labels(1, "role", "decode", "hw", "A100", NULL);
	ep(0);
	labels(2, "role", "prefill", NULL);
	ep(0); /* no pod */
	assert_int_equal(
	    kept(ONE("label-selector-filter",
		     "  parameters:\n    matchLabels: {role: decode, hw: H100}\n", "")),
	    1u << 0);
	assert_int_equal(kept(ONE("by-label-selector",
				  "  parameters:\n    matchExpressions:\n"
				  "    - {key: hw, operator: NotIn, values: [H100]}\n",
				  "")),
			 1u << 1 | 1u << 2 | 1u << 3);
	assert_int_equal(kept(ONE("label-selector-filter",
				  "  parameters:\n    matchExpressions:\n"
				  "    - {key: hw, operator: Exists}\n"
				  "    - {key: role, operator: In, values: [decode, both]}\n",
				  "")),
			 1u << 0 | 1u << 1);
	assert_int_equal(kept(ONE("label-selector-filter",
				  "  parameters:\n    matchExpressions:\n"
				  "    - {key: hw, operator: DoesNotExist}\n",
				  "")),
			 1u << 2 | 1u << 3);
	/* An empty selector selects everything (LabelSelectorAsSelector). */
	assert_int_equal(kept(ONE("label-selector-filter", "", "")), 0xfu);
	parse_bad(ONE("label-selector-filter",
		      "  parameters:\n    matchExpressions:\n    - {key: hw, operator: Is}\n", ""),
		  5, "plugins[0].parameters.matchExpressions[0].operator",
		  "must be In, NotIn, Exists or DoesNotExist");
	parse_bad(ONE("label-selector-filter",
		      "  parameters:\n    matchExpressions:\n    - {key: hw, operator: In}\n", ""),
		  5, "plugins[0].parameters.matchExpressions[0]",
		  "values must be given for the In and NotIn operators");
	parse_bad(ONE("label-selector-filter",
		      "  parameters:\n    matchExpressions:\n"
		      "    - {key: hw, operator: Exists, values: [x]}\n",
		      ""),
		  5, "plugins[0].parameters.matchExpressions[0].values",
		  "must be empty for the Exists and DoesNotExist operators");
	parse_bad(
	    ONE("label-selector-filter", "  parameters:\n    matchLabels: {\"a b\": x}\n", ""), 4,
	    "plugins[0].parameters.matchLabels.a b", "invalid label key");
	parse_bad(ONE("label-selector-filter", "  parameters:\n    matchLabel: {a: b}\n", ""), 4,
		  "plugins[0].parameters.matchLabel",
		  "unknown parameter for label-selector-filter");
	/* Given twice: an error, and the first one read is freed with the rest. */
	parse_bad(ONE("label-selector-filter",
		      "  parameters:\n    matchExpressions: [{}]\n    matchExpressions: []\n"
		      "    matchLabels: {a: b}\n    matchLabels: {c: d}\n",
		      ""),
		  5, "plugins[0].parameters.matchExpressions", "given twice (first on line 4)");
	parse_bad(
	    ONE("by-label", "  parameters: {label: l, validValues: [a], validValues: [b]}\n", ""),
	    3, "plugins[0].parameters.validValues", "given twice");
	parse_bad(ONE("decode-filter", "  parameters:\n    label: x\n", ""), 4,
		  "plugins[0].parameters.label", "it takes no parameters");
	(void)state;
}

/* ---- scorers ---------------------------------------------------------------------- */

/* x-session-token names an endpoint: it scores 1, the others 0. */
static void test_session_affinity(void **state)
{
	struct ig_scheduler *s = sched_of(ONE("session-affinity-scorer", "", "    weight: 3\n"));
	assert_true(ig_scheduler_needs(s) & IG_SCHED_NEEDS_SESSION);
	struct ig_sched_result res;
	double sc[MAXE];
	ep(0);
	ep(0);
	ep(0);
	struct ig_sched_req req = plain;
	req.session_key = eps[1].key;
	assert_int_equal(score_all(s, &req, sc, &res), 3);
	assert_float_equal(sc[0], 0, 1e-9);
	assert_float_equal(sc[1], 3, 1e-9);
	assert_float_equal(sc[2], 0, 1e-9);
	assert_int_equal(res.ranked[0], 1);
	req.session_key = 0; /* none, or one no candidate has: all 0 */
	assert_int_equal(score_all(s, &req, sc, &res), 3);
	assert_float_equal(sc[0] + sc[1] + sc[2], 0, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* llm-d's active_request.go on hand-computed values. */
static void test_active_request(void **state)
{
	struct ig_scheduler *s = sched_of(ONE("active-request-scorer", "", ""));
	assert_true(ig_scheduler_needs(s) & IG_SCHED_NEEDS_ACTIVE);
	struct ig_sched_result res;
	double sc[MAXE];
	int64_t active[] = {0, 2, 4, 1};
	for (size_t i = 0; i < 4; i++)
		eps[ep(0)].active_requests = active[i];
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.5, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	assert_float_equal(sc[3], 0.75, 1e-9);
	ig_scheduler_free(s);
	s = sched_of(ONE("active-request-scorer",
			 "  parameters:\n    idleThreshold: 1\n    maxBusyScore: 0.5\n", ""));
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.25, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	assert_float_equal(sc[3], 1.0, 1e-9);
	ig_scheduler_free(s);
	/* llm-d takes its defaults for values out of range: a warning here. */
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	const char *yaml = ONE("active-request-scorer",
			       "  parameters:\n    idleThreshold: -1\n    maxBusyScore: 2\n"
			       "    requestTimeout: 2m\n",
			       "");
	assert_int_equal(ig_picker_config_parse("w.yaml", yaml, strlen(yaml), &c, &d), 0);
	assert_int_equal(d.n, 3);
	assert_non_null(strstr(d.items[0].msg, "the default, 0, is used"));
	assert_non_null(strstr(d.items[1].msg, "the default, 1, is used"));
	assert_non_null(strstr(d.items[2].msg, "deprecated and ignored"));
	ig_diags_free(&d);
	s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[1], 0.5, 1e-9); /* the defaults: 0 and 1 */
	ig_scheduler_free(s);
	parse_bad(ONE("active-request-scorer", "  parameters: {idleThreshold: 1.5}\n", ""), 3,
		  "plugins[0].parameters.idleThreshold", "must be an integer");
	(void)state;
}

/* llm-d's no_hit_lru.go: without a prefix index every request is cold;
 * never-used endpoints first, then the least recently used, each
 * 1 - rank / (n - 1); the commit of a cold request moves the endpoint to
 * the recent end. */
static void test_no_hit_lru(void **state)
{
	struct ig_scheduler *s = sched_of(ONE("no-hit-lru-scorer", "", ""));
	struct ig_sched_result res;
	double sc[MAXE];
	for (size_t i = 0; i < 4; i++)
		ep(0);
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_true(res.lru_cold);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 2.0 / 3, 1e-9);
	assert_float_equal(sc[2], 1.0 / 3, 1e-9);
	assert_float_equal(sc[3], 0.0, 1e-9);
	ig_schedule_commit(s, &res, eps[0].key);
	ig_schedule_commit(s, &res, eps[2].key);
	/* Never used: 1, 3 (1 and 2/3); then 0 (older, rank 2: 1/3), 2 (0). */
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[1], 1.0, 1e-9);
	assert_float_equal(sc[3], 2.0 / 3, 1e-9);
	assert_float_equal(sc[0], 1.0 / 3, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	ig_schedule_commit(s, &res, eps[0].key); /* 0 is now the most recent */
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[2], 1.0 / 3, 1e-9);
	assert_float_equal(sc[0], 0.0, 1e-9);
	ig_scheduler_free(s);
	/* lruSize 1: the LRU keeps the last endpoint only. */
	s = sched_of(ONE("no-hit-lru-scorer", "  parameters: {lruSize: 1}\n", ""));
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	ig_schedule_commit(s, &res, eps[0].key);
	ig_schedule_commit(s, &res, eps[1].key);
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.0, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* The candidates are ranked among themselves: endpoints the LRU holds
 * that are not candidates (filtered out, or gone from the pool) take no
 * rank, so 1 - rank / (n - 1) spans 1 to 0 over whoever is left. */
static void test_no_hit_lru_ranks_candidates(void **state)
{
	struct ig_scheduler *s =
	    sched_of("plugins:\n- type: decode-filter\n- type: no-hit-lru-scorer\n"
		     "schedulingProfiles:\n- name: p\n  plugins:\n"
		     "  - pluginRef: decode-filter\n  - pluginRef: no-hit-lru-scorer\n");
	struct ig_sched_result res;
	double sc[MAXE];
	for (size_t i = 0; i < 4; i++) {
		ep(0);
		labels(i, "llm-d.ai/role", i < 2 ? "prefill" : "decode", NULL);
	}
	/* A, B (prefill pods), then C, D served cold requests, in order. */
	assert_int_equal(score_all(s, &plain, sc, &res), 2);
	assert_true(res.lru_cold);
	for (size_t i = 0; i < 4; i++)
		ig_schedule_commit(s, &res, eps[i].key);
	assert_int_equal(score_all(s, &plain, sc, &res), 2);
	assert_float_equal(sc[2], 1.0, 1e-9); /* the older of the two */
	assert_float_equal(sc[3], 0.0, 1e-9);
	ig_scheduler_free(s);

	/* A pod that left the pool (key 99) is still in the LRU: C never
	 * served, then A (older) and B. */
	s = sched_of(ONE("no-hit-lru-scorer", "", ""));
	setup(NULL);
	for (size_t i = 0; i < 3; i++)
		ep(0);
	assert_int_equal(score_all(s, &plain, sc, &res), 3);
	ig_schedule_commit(s, &res, 99);
	ig_schedule_commit(s, &res, eps[0].key);
	ig_schedule_commit(s, &res, eps[1].key);
	assert_int_equal(score_all(s, &plain, sc, &res), 3);
	assert_float_equal(sc[2], 1.0, 1e-9);
	assert_float_equal(sc[0], 0.5, 1e-9);
	assert_float_equal(sc[1], 0.0, 1e-9);
	ig_scheduler_free(s);

	/* lruSize 2: touching a third endpoint evicts the oldest, which
	 * counts as never used again. */
	s = sched_of(ONE("no-hit-lru-scorer", "  parameters: {lruSize: 2}\n", ""));
	assert_int_equal(score_all(s, &plain, sc, &res), 3);
	for (size_t i = 0; i < 3; i++)
		ig_schedule_commit(s, &res, eps[i].key);
	ig_schedule_commit(s, &res, eps[2].key); /* again: no eviction */
	assert_int_equal(score_all(s, &plain, sc, &res), 3);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.5, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* Each worker thread keeps its own LRU (picker.h: ig_schedule writes
 * nothing another thread writes): the endpoints a thread sent cold
 * requests to are the ones its next cold requests avoid. Two threads
 * schedule and commit at once, each over the same four endpoints; each
 * goes round them in order, whatever the other does (and, under TSan,
 * without a race). */
#define LRU_ROUNDS 400

struct lru_thread {
	struct ig_scheduler *s;
	size_t picks[LRU_ROUNDS];
	int failed;
};

static void *lru_thread_run(void *arg)
{
	struct lru_thread *t = arg;
	struct ig_rng r;
	ig_rng_seed(&r, 11);
	for (size_t i = 0; i < LRU_ROUNDS; i++) {
		size_t ranked[MAXE];
		struct ig_sched_result res = {.ranked = ranked};
		if (ig_schedule(t->s, &plain, eps, 4, &r, &res) != 0 || !res.lru_cold) {
			t->failed = 1;
			return NULL;
		}
		t->picks[i] = ranked[0];
		ig_schedule_commit(t->s, &res, eps[ranked[0]].key);
	}
	return NULL;
}

static void test_no_hit_lru_per_worker(void **state)
{
	struct ig_scheduler *s = sched_of(ONE("no-hit-lru-scorer", "", ""));
	struct ig_sched_result res;
	double sc[MAXE];
	for (size_t i = 0; i < 4; i++)
		ep(0);
	/* This thread sends one cold request to endpoint 0 first. */
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	ig_schedule_commit(s, &res, eps[0].key);
	struct lru_thread t[2] = {{.s = s}, {.s = s}};
	pthread_t th[2];
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, lru_thread_run, &t[i]), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_false(t[i].failed);
		for (size_t k = 0; k < LRU_ROUNDS; k++)
			assert_int_equal(t[i].picks[k], k % 4);
	}
	/* To this thread, 1, 2 and 3 are still never used, 0 the latest. */
	assert_int_equal(score_all(s, &plain, sc, &res), 4);
	assert_float_equal(sc[1], 1.0, 1e-9);
	assert_float_equal(sc[2], 2.0 / 3, 1e-9);
	assert_float_equal(sc[3], 1.0 / 3, 1e-9);
	assert_float_equal(sc[0], 0.0, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* With a prefix-cache-scorer, a request some candidate holds blocks of is
 * warm: 0.5 each, and its commit leaves the LRU as it was. */
static void test_no_hit_lru_warm(void **state)
{
	struct ig_scheduler *s =
	    sched_of("plugins:\n- type: prefix-cache-scorer\n  parameters: {autoTune: false}\n"
		     "- type: no-hit-lru-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n"
		     "  - pluginRef: prefix-cache-scorer\n    weight: 0\n"
		     "  - pluginRef: no-hit-lru-scorer\n");
	struct ig_sched_result res;
	double sc[MAXE];
	char prompt[256];
	memset(prompt, 'a', sizeof prompt);
	struct ig_sched_req req = plain;
	req.prefix_input = (struct ig_str){prompt, sizeof prompt};
	ep(0);
	ep(0);
	ep(0);
	assert_int_equal(score_all(s, &req, sc, &res), 3);
	assert_true(res.lru_cold);
	ig_schedule_commit(s, &res, eps[2].key);
	assert_int_equal(score_all(s, &req, sc, &res), 3);
	assert_false(res.lru_cold);
	for (size_t i = 0; i < 3; i++)
		assert_float_equal(sc[i], 0.5, 1e-9);
	ig_schedule_commit(s, &res, eps[0].key); /* warm: no LRU move */
	req.prefix_input = IG_STR("another prompt entirely, cold again, long enough to hash");
	assert_int_equal(score_all(s, &req, sc, &res), 3);
	assert_true(res.lru_cold);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.5, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* llm-d's context_length_aware.go: the llm-d.ai/context-length-range
 * label against the request's estimated tokens. */
static void test_context_length_aware(void **state)
{
	const char *lbl = "llm-d.ai/context-length-range";
	ep(0);
	labels(0, lbl, "0-1000", NULL);
	ep(0);
	labels(1, lbl, "2000 - 8000", NULL);
	ep(0);
	labels(2, lbl, "1000-0", NULL); /* min above max: unparsable */
	ep(0);
	labels(3, "other", "x", NULL);
	ep(0);
	labels(4, lbl, "500-500", NULL);
	struct ig_sched_req req = plain;
	req.prompt_tokens = 500;
	struct ig_sched_result res;
	double sc[MAXE];
	struct ig_scheduler *s = sched_of(ONE("context-length-aware", "", ""));
	assert_int_equal(score_all(s, &req, sc, &res), 5);
	double width = 1.0 / (1.0 + 1000.0 / 10000.0);
	assert_float_equal(sc[0], 0.3 + (0.7 * width + 0.3 * 0.5) * 0.7, 1e-9);
	assert_float_equal(sc[1], 0.3 / (1.0 + 1500.0 / 1000.0), 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	assert_float_equal(sc[3], 0.5, 1e-9);
	assert_float_equal(sc[4], 1.0, 1e-9);
	ig_scheduler_free(s);
	/* enableFiltering: pods whose range holds the request, or without
	 * the label; its own label name. */
	kept_tokens = 500;
	assert_int_equal(kept(ONE("context-length-aware", "  parameters: {enableFiltering: true}\n",
				  "    weight: 0\n")),
			 1u << 0 | 1u << 3 | 1u << 4);
	assert_int_equal(
	    kept(ONE("context-length-aware",
		     "  parameters: {enableFiltering: true, label: other}\n", "    weight: 0\n")),
	    1u << 0 | 1u << 1 | 1u << 2 | 1u << 4);
	parse_bad(ONE("context-length-aware", "  parameters: {label: \"\"}\n", ""), 2, "plugins[0]",
		  "context-length-aware: parameters.label must be specified");
	(void)state;
}

/* ---- types infergate does not run ------------------------------------------------- */

static void test_unsupported_llmd_types(void **state)
{
	static const char *const types[] = {
	    "precise-prefix-cache-scorer",
	    "token-producer",
	    "tokenizer",
	    "probabilistic-admitter",
	    "prefix-based-pd-decider",
	    "always-disagg-pd-decider",
	    "always-disagg-multimodal-decider",
	    "prefill-header-handler",
	    "disagg-headers-handler",
	    "vertexai-parser",
	    "models-data-source",
	    "models-data-extractor",
	    "sheddable-eviction-filter",
	    "priority-then-time-eviction-order-policy",
	    "data-parallel-profile-handler",
	};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		char yaml[256], msg[128];
		snprintf(yaml, sizeof yaml, "plugins:\n- type: %s\n", types[i]);
		snprintf(msg, sizeof msg, "plugin type \"%s\" is not supported: ", types[i]);
		parse_bad(yaml, 2, "plugins[0].type", msg);
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_role_filters, setup),
	    cmocka_unit_test_setup(test_by_label, setup),
	    cmocka_unit_test_setup(test_label_selector, setup),
	    cmocka_unit_test_setup(test_session_affinity, setup),
	    cmocka_unit_test_setup(test_active_request, setup),
	    cmocka_unit_test_setup(test_no_hit_lru, setup),
	    cmocka_unit_test_setup(test_no_hit_lru_warm, setup),
	    cmocka_unit_test_setup(test_no_hit_lru_ranks_candidates, setup),
	    cmocka_unit_test_setup(test_no_hit_lru_per_worker, setup),
	    cmocka_unit_test_setup(test_context_length_aware, setup),
	    cmocka_unit_test_setup(test_unsupported_llmd_types, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
