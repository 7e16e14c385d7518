/* The configurable picker: every scorer's formula on hand-computed values,
 * the pickers' randomness, the filters, the config loader's defaults and
 * errors, and the saturation detector. Scorers are tested one at a time
 * through one-scorer profiles, reading the scores the picker ranked. */
#include <math.h>
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
static struct ig_endpoint_metrics full[MAXE]; /* adapter sets, when a test gives them */
static struct ig_sched_endpoint eps[MAXE];
static char addrs[MAXE][32];
static size_t n;
static struct ig_rng rng;

static int setup(void **state)
{
	memset(m, 0, sizeof m);
	memset(full, 0, sizeof full);
	memset(eps, 0, sizeof eps);
	n = 0;
	ig_rng_seed(&rng, 42);
	return 0;
}

static size_t ep(int64_t q, double kv)
{
	size_t i = n++;
	m[i].waiting = q;
	m[i].kv_usage = kv;
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
	if (rc != 0)
		ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	ig_diags_free(&d);
	return c;
}

/* Parses and expects success with exactly the given warnings (line and
 * message part), nothing else. */
static struct ig_picker_config *parse_warned(const char *yaml, const int *lines,
					     const char *const *msgs, size_t nwarn)
{
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	int rc = ig_picker_config_parse("w.yaml", yaml, strlen(yaml), &c, &d);
	ig_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, nwarn);
	for (size_t i = 0; i < nwarn; i++) {
		assert_true(d.items[i].warning);
		assert_int_equal(d.items[i].line, lines[i]);
		assert_non_null(strstr(d.items[i].msg, msgs[i]));
	}
	ig_diags_free(&d);
	return c;
}

static struct ig_scheduler *sched_of(const char *yaml)
{
	struct ig_picker_config *c = parse_ok(yaml);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c); /* the scheduler keeps what it needs */
	assert_non_null(s);
	return s;
}

/* Runs one schedule and writes each endpoint's total score to out. */
static int score_all(struct ig_scheduler *s, const struct ig_sched_req *req, double *out)
{
	size_t ranked[MAXE];
	double scores[MAXE];
	struct ig_sched_result res = {.ranked = ranked, .scores = scores};
	int rc = ig_schedule(s, req, eps, n, &rng, &res);
	for (size_t k = 0; rc == 0 && k < res.nranked; k++)
		out[ranked[k]] = scores[k];
	return rc;
}

static const struct ig_sched_req plain = {.model = IG_STR("base"), .target_model = IG_STR("base")};

#define ONE_SCORER(type, weight, params)                                                           \
	"plugins:\n- type: " type "\n" params "schedulingProfiles:\n- name: p\n  plugins:\n"       \
	"  - pluginRef: " type "\n    weight: " weight "\n"

/* ---- scorers ---------------------------------------------------------------------- */

static void test_queue_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("queue-scorer", "2", ""));
	double sc[MAXE];
	ep(2, 0);
	ep(5, 0);
	ep(8, 0);
	eps[1].inflight_requests = 1; /* counts as 6 */
	assert_int_equal(score_all(s, &plain, sc), 0);
	/* (max - q) / (max - min) with min 2, max 8, times weight 2. */
	assert_float_equal(sc[0], 2.0, 1e-9);
	assert_float_equal(sc[1], 2.0 * 2 / 6, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	/* All equal: 1.0 each. */
	m[0].waiting = 6;
	m[2].waiting = 6;
	m[1].waiting = 5;
	assert_int_equal(score_all(s, &plain, sc), 0);
	for (int i = 0; i < 3; i++)
		assert_float_equal(sc[i], 2.0, 1e-9);
	ig_scheduler_free(s);
}

static void test_running_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("running-requests-size-scorer", "1", ""));
	double sc[MAXE];
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	m[0].running = 10;
	m[1].running = 20;
	m[2].running = 30;
	m[3].running = 15;
	eps[3].inflight_requests = 10; /* 25 */
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.5, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	assert_float_equal(sc[3], 0.25, 1e-9);
	ig_scheduler_free(s);
}

static void test_kv_scorer_and_clamp(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("kv-cache-utilization-scorer", "3", ""));
	double sc[MAXE];
	ep(0, 0.25);
	ep(0, 1.5);  /* 1 - 1.5 < 0: clamped to 0 */
	ep(0, -0.5); /* 1.5: clamped to 1 */
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 2.25, 1e-9);
	assert_float_equal(sc[1], 0.0, 1e-9);
	assert_float_equal(sc[2], 3.0, 1e-9);
	ig_scheduler_free(s);
}

static void test_lora_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("lora-affinity-scorer", "1", ""));
	struct ig_sched_req req = {.model = IG_STR("base"), .target_model = IG_STR("ad")};
	double sc[MAXE];
	size_t a = ep(0, 0), b = ep(0, 0), c = ep(0, 0), d = ep(0, 0), e = ep(0, 0);
	assert_true(ig_scheduler_reads_adapters(s));
	for (size_t i = a; i <= e; i++)
		eps[i].full = &full[i];
	ig_adapter_set_add(&full[a].running_adapters, IG_STR("ad")); /* active: 1.0 */
	m[a].max_active = 1;
	ig_adapter_set_add(&full[b].running_adapters, IG_STR("x")); /* room: 1 + 1 < 4 */
	ig_adapter_set_add(&full[b].waiting_adapters, IG_STR("ad"));
	m[b].max_active = 4;
	ig_adapter_set_add(&full[c].running_adapters, IG_STR("x")); /* full, target waiting */
	ig_adapter_set_add(&full[c].waiting_adapters, IG_STR("ad"));
	m[c].max_active = 2;
	ig_adapter_set_add(&full[d].running_adapters, IG_STR("x")); /* full, not there */
	ig_adapter_set_add(&full[d].running_adapters, IG_STR("y"));
	m[d].max_active = 2;
	m[e].max_active = 0; /* no LoRA at all */
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[a], 1.0, 1e-9);
	assert_float_equal(sc[b], 0.8, 1e-9);
	assert_float_equal(sc[c], 0.6, 1e-9);
	assert_float_equal(sc[d], 0.0, 1e-9);
	assert_float_equal(sc[e], 0.0, 1e-9);
	ig_scheduler_free(s);
}

/* autoTune (GIE's approx-prefix-cache-producer): blocks of the size the
 * servers report (blockSizeTokens when none does) and, per endpoint, as
 * many blocks as its cache holds (lruCapacityPerServer when it does not
 * say). Without autoTune the reports change nothing. */
#define TUNED(auto_tune)                                                                           \
	ONE_SCORER("prefix-cache-scorer", "1",                                                     \
		   "  parameters: {autoTune: " auto_tune ", blockSizeTokens: 32, "                 \
		   "lruCapacityPerServer: 100}\n")

/* Blocks of a 2 KB prompt the schedule hashes, and commits them for
 * endpoint 0 with its reported cache size. */
static size_t hashed(struct ig_scheduler *s, const char *prompt, uint32_t block_tokens,
		     uint32_t gpu_blocks)
{
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req req = plain;
	req.prefix_input = (struct ig_str){prompt, 2048};
	req.cache_block_tokens = block_tokens;
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	ig_schedule_commit_blocks(s, &res, eps[0].key, gpu_blocks);
	return res.nprefix_hashes;
}

static void test_prefix_auto_tune(void **state)
{
	static char a[2048], b[2048];
	memset(a, 'a', sizeof a);
	memset(b, 'b', sizeof b);
	ep(0, 0);
	struct ig_scheduler *s = sched_of(TUNED("true"));
	assert_true(ig_scheduler_auto_tunes(s));
	/* 16-token blocks reported: 64 characters, 32 blocks; none reported:
	 * the configured 32 tokens, 128 characters, 16 blocks. */
	assert_int_equal(ig_scheduler_prefix_limit(s, 16), 64 * 256);
	assert_int_equal(ig_scheduler_prefix_limit(s, 0), 128 * 256);
	assert_int_equal(hashed(s, a, 16, 0), 32);
	assert_int_equal(hashed(s, a, 0, 0), 16);
	struct ig_prefix_stats st;
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 48); /* both within lruCapacityPerServer */
	/* The endpoint says its cache holds 20 blocks: its oldest pairs go. */
	assert_int_equal(hashed(s, b, 16, 20), 32);
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 20);
	/* Reporting nothing again brings lruCapacityPerServer back. */
	assert_int_equal(hashed(s, a, 16, 0), 32);
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 52);
	ig_scheduler_free(s);

	s = sched_of(TUNED("false"));
	assert_false(ig_scheduler_auto_tunes(s));
	assert_int_equal(ig_scheduler_prefix_limit(s, 16), 128 * 256);
	assert_int_equal(hashed(s, a, 16, 5), 16);
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 16);
	ig_scheduler_free(s);

	/* Absent, autoTune is on (GIE's default). */
	s = sched_of(ONE_SCORER("prefix-cache-scorer", "1", ""));
	assert_true(ig_scheduler_auto_tunes(s));
	ig_scheduler_free(s);

	/* maxPrefixTokensToMatch counts in the reported block size. */
	s = sched_of(ONE_SCORER("prefix-cache-scorer", "1",
				"  parameters: {autoTune: true, blockSizeTokens: 32, "
				"maxPrefixTokensToMatch: 256}\n"));
	assert_int_equal(hashed(s, a, 16, 0), 16);
	assert_int_equal(hashed(s, a, 0, 0), 8);
	ig_scheduler_free(s);
}

static void test_token_load_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER(
	    "token-load-scorer", "1", "  parameters:\n    queueThresholdTokens: 1000\n"));
	double sc[MAXE];
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	eps[1].inflight_tokens = 250;
	eps[2].inflight_tokens = 5000;
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 1.0, 1e-9);
	assert_float_equal(sc[1], 0.75, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	ig_scheduler_free(s);
	/* The default threshold is 4194304 tokens. */
	s = sched_of(ONE_SCORER("token-load-scorer", "1", ""));
	eps[1].inflight_tokens = 4194304 / 4;
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[1], 0.75, 1e-9);
	ig_scheduler_free(s);
}

/* llm-d's load-aware-scorer: 0.5 with an empty waiting queue, falling
 * linearly to 0 at the threshold (128 by default); requests in flight that
 * the pod has not reported waiting do not count. */
static void test_load_aware_scorer(void **state)
{
	struct ig_scheduler *s =
	    sched_of(ONE_SCORER("load-aware-scorer", "1", "  parameters:\n    threshold: 10\n"));
	double sc[MAXE];
	ep(0, 0.9);
	ep(5, 0);
	ep(10, 0);
	ep(400, 0);
	eps[0].inflight_requests = 7;
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 0.5, 1e-9);
	assert_float_equal(sc[1], 0.25, 1e-9);
	assert_float_equal(sc[2], 0.0, 1e-9);
	assert_float_equal(sc[3], 0.0, 1e-9);
	ig_scheduler_free(s);
	s = sched_of(ONE_SCORER("load-aware-scorer", "1", ""));
	m[1].waiting = 32;
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[1], 0.375, 1e-9);
	ig_scheduler_free(s);
	(void)state;
}

/* The named configurations parse; "gie" ranks exactly as
 * ig_picker_config_default (GIE's default profile) does. */
static void test_presets(void **state)
{
	size_t count = 0;
	for (size_t i = 0; ig_picker_preset_name(i); i++, count++) {
		const char *text = ig_picker_preset(ig_picker_preset_name(i));
		assert_non_null(text);
		ig_picker_config_free(parse_ok(text));
	}
	assert_int_equal(count, 4);
	assert_null(ig_picker_preset("nginx"));
	assert_non_null(ig_picker_preset("infergate"));

	struct ig_picker_config *def = ig_picker_config_default();
	struct ig_scheduler *a = ig_scheduler_new(def), *b = sched_of(ig_picker_preset("gie"));
	ig_picker_config_free(def);
	double sa[MAXE], sb[MAXE];
	ep(3, 0.5);
	ep(0, 0.9);
	ep(7, 0.1);
	assert_int_equal(score_all(a, &plain, sa), 0);
	assert_int_equal(score_all(b, &plain, sb), 0);
	for (size_t i = 0; i < n; i++)
		assert_float_equal(sa[i], sb[i], 1e-9);
	ig_scheduler_free(a);
	ig_scheduler_free(b);
	(void)state;
}

/* infergate's lora-slot-scorer: GIE's formula for an adapter, 1 on every
 * pod that serves the requested model as its base model (no slot needed),
 * the formula again on a pod that does not say what it serves. */
static void test_lora_slot_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("lora-slot-scorer", "2", ""));
	struct ig_sched_req ad = {.model = IG_STR("ad"), .target_model = IG_STR("ad")};
	struct ig_sched_req base = {.model = IG_STR("base"), .target_model = IG_STR("base")};
	double sc[MAXE];
	size_t a = ep(0, 0), b = ep(0, 0), c = ep(0, 0), d = ep(0, 0);
	assert_true(ig_scheduler_reads_adapters(s));
	for (size_t i = a; i <= d; i++) {
		eps[i].full = &full[i];
		m[i].max_active = 2;
		full[i].base_model = ig_adapter_hash(IG_STR("base"));
	}
	full[d].base_model = 0; /* says nothing of its model */
	ig_adapter_set_add(&full[a].running_adapters, IG_STR("ad"));
	ig_adapter_set_add(&full[b].running_adapters, IG_STR("x")); /* room */
	for (size_t i = c; i <= d; i++) {			    /* full */
		ig_adapter_set_add(&full[i].running_adapters, IG_STR("x"));
		ig_adapter_set_add(&full[i].running_adapters, IG_STR("y"));
	}
	assert_int_equal(score_all(s, &ad, sc), 0);
	assert_float_equal(sc[a], 2.0, 1e-9);
	assert_float_equal(sc[b], 1.6, 1e-9);
	assert_float_equal(sc[c], 0.0, 1e-9);
	assert_float_equal(sc[d], 0.0, 1e-9);
	assert_int_equal(score_all(s, &base, sc), 0);
	assert_float_equal(sc[a], 2.0, 1e-9);
	assert_float_equal(sc[b], 2.0, 1e-9);
	assert_float_equal(sc[c], 2.0, 1e-9);
	assert_float_equal(sc[d], 0.0, 1e-9);
	/* GIE's own scorer keeps its formula for the base model. */
	struct ig_scheduler *g = sched_of(ONE_SCORER("lora-affinity-scorer", "2", ""));
	assert_int_equal(score_all(g, &base, sc), 0);
	assert_float_equal(sc[b], 1.6, 1e-9);
	assert_float_equal(sc[c], 0.0, 1e-9);
	ig_scheduler_free(g);
	ig_scheduler_free(s);
}

/* infergate's default, the case behind the routing benchmark's tail: a
 * request for an adapter that no pod runs goes to a pod with a free slot,
 * not to one whose slots other adapters fill even though that one holds
 * half of the request's prefix (there it would wait until every running
 * request of one of the others had finished). */
static void test_default_keeps_adapters_off_full_pods(void **state)
{
	struct ig_scheduler *s = sched_of(ig_picker_preset("infergate"));
	char prompt[4 * 64]; /* four blocks of 16 tokens, 4 bytes each */
	memset(prompt, 'q', sizeof prompt);
	struct ig_sched_req req = {.model = IG_STR("chat-d"),
				   .target_model = IG_STR("lora-d"),
				   .prefix_input = {prompt, sizeof prompt}};
	size_t room = ep(0, 0.2), fullpod = ep(0, 0.2);
	for (size_t i = room; i <= fullpod; i++) {
		eps[i].full = &full[i];
		m[i].max_active = 2;
	}
	ig_adapter_set_add(&full[room].running_adapters, IG_STR("lora-a"));
	ig_adapter_set_add(&full[fullpod].running_adapters, IG_STR("lora-a"));
	ig_adapter_set_add(&full[fullpod].running_adapters, IG_STR("lora-b"));
	/* The full pod served the first half of this prompt for lora-d. */
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req half = req;
	half.prefix_input.len = sizeof prompt / 2;
	assert_int_equal(ig_schedule(s, &half, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[fullpod].key);
	struct ig_prefix_stats st;
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 2);
	for (int k = 0; k < 20; k++) {
		assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
		assert_int_equal(res.nprefix_hashes, 4);
		assert_int_equal(ranked[0], room);
		assert_int_equal(ranked[1], fullpod);
	}
	/* A request for the base model needs no slot: the prefix decides. */
	for (size_t i = room; i <= fullpod; i++)
		full[i].base_model = ig_adapter_hash(IG_STR("base"));
	struct ig_sched_req base = {.model = IG_STR("base"),
				    .target_model = IG_STR("base"),
				    .prefix_input = {prompt, sizeof prompt / 2}};
	assert_int_equal(ig_schedule(s, &base, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[fullpod].key);
	base.prefix_input.len = sizeof prompt;
	for (int k = 0; k < 20; k++) {
		assert_int_equal(ig_schedule(s, &base, eps, n, &rng, &res), 0);
		assert_int_equal(ranked[0], fullpod);
	}
	ig_scheduler_free(s);
	(void)state;
}

/* load-bound-scorer: endpoints at most mean * (1 + slack) + headroom
 * requests (waiting + running + dispatched since the scrape) score the
 * weight, the others 0 and rank after them, still in the ranking. */
static void test_load_bound_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(
	    "plugins:\n- type: load-bound-scorer\n  parameters: {slack: 0.5, headroom: 1}\n"
	    "- type: kv-cache-utilization-scorer\n- type: max-score-picker\n"
	    "  parameters: {maxNumOfEndpoints: 8}\n"
	    "schedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: load-bound-scorer\n"
	    "    weight: 10\n  - pluginRef: kv-cache-utilization-scorer\n"
	    "  - pluginRef: max-score-picker\n");
	size_t ranked[MAXE];
	double scores[MAXE];
	struct ig_sched_result res = {.ranked = ranked, .scores = scores};
	/* Loads 2, 4, 10 (mean 16/3): bound 16/3 * 1.5 + 1 = 9. The third has
	 * the lowest KV use but is over the bound: last. */
	ep(2, 0.9);
	ep(0, 0.5);
	ep(0, 0.0);
	m[1].running = 3;
	eps[1].inflight_requests = 1;
	m[2].running = 10;
	assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
	assert_int_equal(res.nranked, 3);
	assert_int_equal(ranked[0], 1);
	assert_int_equal(ranked[1], 0);
	assert_int_equal(ranked[2], 2);
	assert_float_equal(scores[0], 10.5, 1e-9);
	assert_float_equal(scores[2], 1.0, 1e-9);
	/* All equal: nobody is over the bound; KV decides. */
	m[0].waiting = 0;
	m[0].running = 10;
	m[1].running = 9;
	assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
	assert_int_equal(ranked[0], 2);
	ig_scheduler_free(s);
	(void)state;
}

static void test_prefix_scorer(void **state)
{
	struct ig_scheduler *s = sched_of(
	    ONE_SCORER("prefix-cache-scorer", "1", "  parameters:\n    blockSizeTokens: 4\n"));
	char prompt[16 * 4 + 5]; /* four 16-byte blocks and a partial one */
	memset(prompt, 'p', sizeof prompt);
	struct ig_sched_req req = plain;
	req.prefix_input = (struct ig_str){prompt, sizeof prompt};
	double sc[MAXE];
	ep(0, 0);
	ep(0, 0);
	/* Nothing known yet: 0 for everyone. */
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[0], 0.0, 1e-9);
	/* Endpoint 1 served the first two blocks of this prompt. */
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req half = req;
	half.prefix_input.len = 32;
	assert_int_equal(ig_schedule(s, &half, eps, n, &rng, &res), 0);
	assert_int_equal(res.nprefix_hashes, 2);
	ig_schedule_commit(s, &res, eps[1].key);
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[0], 0.0, 1e-9);
	/* Of five blocks: the partial one counts too (llm-d, GIE#2823). */
	assert_float_equal(sc[1], 2.0 / 5.0, 1e-9);
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_int_equal(res.ranked[0], 1);
	assert_int_equal(res.prefix_match_blocks, 2);
	assert_int_equal(res.nprefix_hashes, 5);
	struct ig_prefix_stats st;
	ig_scheduler_prefix_stats(s, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.lookups, 4);
	assert_int_equal(st.lookup_blocks, 5 + 2 + 5 + 5);
	assert_int_equal(st.hit_blocks, 4);
	/* Another target model hashes differently: no match. */
	req.target_model = IG_STR("other");
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[1], 0.0, 1e-9);
	ig_scheduler_forget(s, eps[1].key);
	req.target_model = plain.target_model;
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[1], 0.0, 1e-9);
	ig_scheduler_free(s);
}

static void test_default_profile_sum(void **state)
{
	struct ig_picker_config *c = ig_picker_config_default();
	struct ig_scheduler *s = ig_scheduler_new(c);
	double sc[MAXE];
	ep(0, 0.5);
	ep(4, 0.0);
	/* queue 2 x {1, 0} + kv 2 x {0.5, 1} + prefix 3 x 0. */
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 2 + 1, 1e-9);
	assert_float_equal(sc[1], 0 + 2, 1e-9);
	ig_scheduler_free(s);
	ig_picker_config_free(c);
}

/* ---- pickers -------------------------------------------------------------------- */

static void test_max_score_ties_random(void **state)
{
	struct ig_scheduler *s = sched_of(ONE_SCORER("kv-cache-utilization-scorer", "1", ""));
	ep(0, 0.2);
	ep(0, 0.2);
	ep(0, 0.2);
	ep(0, 0.9); /* always last */
	int first[MAXE] = {0};
	size_t ranked[MAXE];
	for (int r = 0; r < 3000; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		assert_int_equal(res.nranked, 4);
		assert_int_equal(ranked[3], 3);
		first[ranked[0]]++;
	}
	for (int i = 0; i < 3; i++)
		assert_in_range(first[i], 850, 1150);
	/* A strictly better endpoint always wins. */
	m[1].kv_usage = 0.1;
	for (int r = 0; r < 50; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		assert_int_equal(ranked[0], 1);
	}
	ig_scheduler_free(s);
}

static void test_random_picker(void **state)
{
	/* Loads, with a warning that the scorer counts for nothing. */
	static const int lines[] = {5};
	static const char *const msgs[] = {"the scorers of profile \"p\" have no effect: "
					   "random-picker (random-picker) ignores scores"};
	struct ig_picker_config *c = parse_warned("plugins:\n- type: kv-cache-utilization-scorer\n"
						  "- type: random-picker\n"
						  "schedulingProfiles:\n- name: p\n  plugins:\n"
						  "  - pluginRef: kv-cache-utilization-scorer\n"
						  "  - pluginRef: random-picker\n",
						  lines, msgs, 1);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	ep(0, 0.0);
	ep(0, 0.99);
	int first[MAXE] = {0};
	size_t ranked[MAXE];
	for (int r = 0; r < 2000; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		assert_int_equal(res.nranked, 2);
		assert_int_not_equal(ranked[0], ranked[1]);
		first[ranked[0]]++;
	}
	/* Scores do not matter to the random picker. */
	assert_in_range(first[1], 900, 1100);
	ig_scheduler_free(s);
}

/* A profile without a picker gets the picker the plugins declare (GIE
 * v1.5 ensureSchedulingLayer), here a random one: no "not used" warning,
 * the scorers' warning, and picks that ignore the scores. */
static void test_profile_gets_declared_picker(void **state)
{
	static const int lines[] = {6};
	static const char *const msgs[] = {"the scorers of profile \"p\" have no effect: "
					   "pick (random-picker) ignores scores"};
	struct ig_picker_config *c = parse_warned("plugins:\n- type: kv-cache-utilization-scorer\n"
						  "- name: pick\n  type: random-picker\n"
						  "schedulingProfiles:\n- name: p\n  plugins:\n"
						  "  - pluginRef: kv-cache-utilization-scorer\n",
						  lines, msgs, 1);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	ep(0, 0.0);
	ep(0, 0.99);
	int first[MAXE] = {0};
	size_t ranked[MAXE];
	for (int r = 0; r < 2000; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		first[ranked[0]]++;
	}
	assert_in_range(first[1], 900, 1100);
	ig_scheduler_free(s);
}

static void test_weighted_random_picker(void **state)
{
	struct ig_scheduler *s = sched_of("plugins:\n- type: kv-cache-utilization-scorer\n"
					  "- type: weighted-random-picker\n"
					  "schedulingProfiles:\n- name: p\n  plugins:\n"
					  "  - pluginRef: kv-cache-utilization-scorer\n"
					  "  - pluginRef: weighted-random-picker\n");
	ep(0, 0.9); /* 0.1 */
	ep(0, 0.7); /* 0.3 */
	ep(0, 0.4); /* 0.6 */
	ep(0, 1.0); /* 0: never first while others score */
	int first[MAXE] = {0};
	size_t ranked[MAXE];
	const int runs = 20000;
	for (int r = 0; r < runs; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		assert_int_equal(ranked[3], 3);
		first[ranked[0]]++;
	}
	/* A-Res draws the first item with probability score / sum. */
	assert_in_range(first[0], runs * 0.08, runs * 0.12);
	assert_in_range(first[1], runs * 0.27, runs * 0.33);
	assert_in_range(first[2], runs * 0.57, runs * 0.63);
	/* All zero: uniform. */
	for (int i = 0; i < 3; i++)
		m[i].kv_usage = 1.0;
	memset(first, 0, sizeof first);
	for (int r = 0; r < 4000; r++) {
		struct ig_sched_result res = {.ranked = ranked};
		assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
		first[ranked[0]]++;
	}
	for (int i = 0; i < 4; i++)
		assert_in_range(first[i], 850, 1150);
	ig_scheduler_free(s);
}

static void test_max_endpoints(void **state)
{
	struct ig_scheduler *s = sched_of("plugins:\n- type: max-score-picker\n"
					  "  parameters: {maxNumOfEndpoints: 2}\n"
					  "schedulingProfiles:\n- name: p\n  plugins:\n"
					  "  - pluginRef: max-score-picker\n");
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	assert_int_equal(ig_schedule(s, &plain, eps, n, &rng, &res), 0);
	assert_int_equal(res.nranked, 2);
	assert_int_equal(ig_schedule(s, &plain, eps, 0, &rng, &res), -1);
	ig_scheduler_free(s);
}

/* ---- filters -------------------------------------------------------------------- */

static size_t survivors(struct ig_scheduler *s, const struct ig_sched_req *req, int *rc, bool *in)
{
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	memset(in, 0, MAXE * sizeof(*in));
	*rc = ig_schedule(s, req, eps, n, &rng, &res);
	for (size_t k = 0; k < res.nranked; k++)
		in[ranked[k]] = true;
	return res.nranked;
}

#define FILTER_ONLY(type, params)                                                                  \
	"plugins:\n- type: " type "\n" params "schedulingProfiles:\n- name: p\n"                   \
	"  plugins:\n  - pluginRef: " type "\n"

static void test_saturation_filter(void **state)
{
	struct ig_scheduler *s = sched_of(FILTER_ONLY("utilization-detector", ""));
	bool in[MAXE];
	int rc;
	ep(4, 0.79); /* passes: 4 < 5 and 0.79 < 0.8 */
	ep(5, 0.1);  /* queue at threshold: out */
	ep(0, 0.8);  /* kv at threshold: out */
	ep(0, 0.0);  /* stale: out */
	eps[3].metrics_age_ms = 201;
	assert_int_equal(survivors(s, &plain, &rc, in), 1);
	assert_int_equal(rc, 0);
	assert_true(in[0]);
	/* None passes: everyone stays. */
	m[0].waiting = 9;
	assert_int_equal(survivors(s, &plain, &rc, in), 4);
	ig_scheduler_free(s);
	/* Headroom 0.5 lifts the limits to 7.5 and 1.2. */
	s = sched_of(FILTER_ONLY("utilization-detector", "  parameters: {headroom: 0.5}\n"));
	m[0].waiting = 7;
	m[0].kv_usage = 1.1;
	assert_int_equal(survivors(s, &plain, &rc, in), 3);
	assert_false(in[3]);
	ig_scheduler_free(s);
}

static void test_header_filter(void **state)
{
	struct ig_scheduler *s = sched_of(FILTER_ONLY("header-based-testing-filter", ""));
	bool in[MAXE];
	int rc;
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	/* No header, or a blank one: nobody (GIE v1.5). */
	assert_int_equal(survivors(s, &plain, &rc, in), 0);
	assert_int_equal(rc, -1);
	struct ig_sched_req req = plain;
	req.test_endpoints = IG_STR(" ");
	assert_int_equal(survivors(s, &req, &rc, in), 0);
	req.test_endpoints = IG_STR("10.0.0.1, 10.0.0.3:8000,10.0.0.2:9999");
	assert_int_equal(survivors(s, &req, &rc, in), 2);
	assert_true(in[0] && in[2] && !in[1]);
	req.test_endpoints = IG_STR("10.0.0.9");
	assert_int_equal(survivors(s, &req, &rc, in), 0);
	assert_int_equal(rc, -1);
	ig_scheduler_free(s);
}

/* Every plugin of every profile is numbered for its timing, with its
 * extension point, type and name (a profile without a picker runs the
 * declared one); a schedule times the profile's that ran (GIE's
 * plugin_duration_seconds), and one whose filter left nobody the filter
 * alone. */
static void test_plugin_timings(void **state)
{
	struct ig_scheduler *s =
	    sched_of("plugins:\n- name: hint\n  type: header-based-testing-filter\n"
		     "- type: queue-scorer\n- name: pfx\n  type: prefix-cache-scorer\n"
		     "- name: best\n  type: max-score-picker\n"
		     "- name: h\n  type: header-profile-handler\n  parameters: {headerName: x-p, "
		     "defaultProfile: a}\n"
		     "schedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: hint\n"
		     "  - pluginRef: queue-scorer\n  - pluginRef: pfx\n  - pluginRef: best\n"
		     "- name: b\n  plugins:\n  - pluginRef: queue-scorer\n");
	static const char *const want[][3] = {
	    {"Filter", "header-based-testing-filter", "hint"},
	    {"Scorer", "queue-scorer", "queue-scorer"},
	    {"Scorer", "prefix-cache-scorer", "pfx"},
	    {"Picker", "max-score-picker", "best"},
	    {"Scorer", "queue-scorer", "queue-scorer"},
	    {"Picker", "max-score-picker", "best"}, /* the declared picker */
	};
	assert_int_equal(ig_scheduler_nplugins(s), 6);
	for (size_t i = 0; i < 6; i++) {
		const struct ig_sched_plugin *pl = ig_scheduler_plugin(s, i);
		assert_string_equal(pl->extension_point, want[i][0]);
		assert_string_equal(pl->type, want[i][1]);
		assert_string_equal(pl->name, want[i][2]);
	}
	assert_null(ig_scheduler_plugin(s, 6));
	ep(0, 0);
	ep(0, 0);
	size_t ranked[MAXE];
	uint32_t ticks[IG_SCHED_MAX_TIMED];
	memset(ticks, 0xff, sizeof ticks);
	struct ig_sched_result res = {.ranked = ranked, .plugin_ticks = ticks};
	struct ig_sched_req req = plain;
	req.profile = IG_STR("a");
	req.test_endpoints = IG_STR("10.0.0.2");
	req.prefix_input = IG_STR("a prompt long enough for a block or two of hashes....");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_int_equal(res.plugin_first, 0);
	assert_int_equal(res.nplugin_ticks, 4);
	for (size_t k = 0; k < 4; k++)
		assert_true(ticks[k] < 1000000000u); /* written, not the 0xff fill */
	req.profile = IG_STR("b");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_int_equal(res.plugin_first, 4);
	assert_int_equal(res.nplugin_ticks, 2);
	req.profile = IG_STR("a");
	req.test_endpoints = IG_STR("10.0.0.9");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), -1);
	assert_int_equal(res.plugin_first, 0);
	assert_int_equal(res.nplugin_ticks, 1);
	/* Not asked: nothing timed. */
	res.plugin_ticks = NULL;
	req.test_endpoints = IG_STR("10.0.0.1");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_int_equal(res.nplugin_ticks, 0);
	ig_scheduler_free(s);
}

/* GIE v1.5's conformance configuration (conformance/resources/base.yaml's
 * plugins-config): the verifier runs because it is declared, with no
 * warning that nothing refers to it; without it no response is marked. */
static void test_served_verifier(void **state)
{
	struct ig_scheduler *s =
	    sched_of("apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
		     "kind: EndpointPickerConfig\n"
		     "plugins:\n- type: header-based-testing-filter\n"
		     "- type: destination-endpoint-served-verifier\n"
		     "schedulingProfiles:\n- name: conformance-profile\n  plugins:\n"
		     "  - pluginRef: header-based-testing-filter\n");
	assert_true(ig_scheduler_reports_served(s));
	ig_scheduler_free(s);
	s = sched_of(FILTER_ONLY("header-based-testing-filter", ""));
	assert_false(ig_scheduler_reports_served(s));
	ig_scheduler_free(s);
}

/* In a large pool the prefix counts reach the right candidates: 20
 * holders with 1..20 of the prompt's 20 blocks rank first in that order
 * with scores blocks / 20, a candidate listed twice scores only the first
 * time, and the rest score 0. */
#define BIG 300
static void test_prefix_scorer_large_pool(void **state)
{
	struct ig_scheduler *s = sched_of(
	    ONE_SCORER("prefix-cache-scorer", "1", "  parameters:\n    blockSizeTokens: 4\n"));
	static struct ig_endpoint_load l[BIG];
	static struct ig_sched_endpoint e[BIG];
	memset(l, 0, sizeof l);
	for (size_t i = 0; i < BIG; i++)
		e[i] = (struct ig_sched_endpoint){.m = &l[i],
						  .addr = IG_STR("10.0.0.1:8000"),
						  .key = 0x9e3779b97f4a7c15ULL * (i + 7)};
	/* The holders are candidates 10, 24, ..., 276; the last candidate is
	 * the strongest holder again. */
	e[BIG - 1].key = e[10 + 14 * 19].key;
	char prompt[20 * 16];
	for (size_t i = 0; i < sizeof prompt; i++)
		prompt[i] = (char)('a' + i % 23);
	size_t ranked[IG_SCHED_MAX_RANKED];
	double scores[IG_SCHED_MAX_RANKED];
	struct ig_sched_result res = {.ranked = ranked, .scores = scores};
	struct ig_sched_req req = plain;
	for (size_t j = 0; j < 20; j++) {
		req.prefix_input = (struct ig_str){prompt, 16 * (j + 1)};
		assert_int_equal(ig_schedule(s, &req, e, BIG, &rng, &res), 0);
		ig_schedule_commit(s, &res, e[10 + 14 * j].key);
	}
	req.prefix_input = (struct ig_str){prompt, sizeof prompt};
	assert_int_equal(ig_schedule(s, &req, e, BIG, &rng, &res), 0);
	assert_int_equal(res.nranked, IG_SCHED_MAX_RANKED);
	for (size_t r = 0; r < 20; r++) {
		assert_int_equal(ranked[r], 10 + 14 * (19 - r));
		assert_float_equal(scores[r], (20.0 - (double)r) / 20.0, 1e-12);
	}
	for (size_t r = 20; r < IG_SCHED_MAX_RANKED; r++) {
		assert_float_equal(scores[r], 0.0, 1e-12);
		assert_true(ranked[r] != BIG - 1 || scores[r] == 0.0);
	}
	assert_int_equal(res.prefix_match_blocks, 20);
	ig_scheduler_free(s);
}

static void test_prefix_affinity_filter(void **state)
{
	struct ig_scheduler *s = sched_of(
	    "plugins:\n- type: prefix-cache-affinity-filter\n"
	    "  parameters: {affinityThreshold: 0.75, explorationProbability: 0}\n"
	    "- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 1}\n"
	    "schedulingProfiles:\n- name: p\n  plugins:\n"
	    "  - pluginRef: prefix-cache-affinity-filter\n  - pluginRef: prefix-cache-scorer\n");
	bool in[MAXE];
	int rc;
	ep(0, 0);
	ep(0, 0);
	ep(0, 0);
	struct ig_sched_req req = plain;
	req.prefix_input = IG_STR("aaaabbbbccccdddd");	  /* four 4-byte blocks */
	assert_int_equal(survivors(s, &req, &rc, in), 3); /* nothing known: all */
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req part = req;
	part.prefix_input.len = 12; /* three blocks: 0.75 */
	assert_int_equal(ig_schedule(s, &part, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[0].key);
	part.prefix_input.len = 8; /* two blocks: 0.5 */
	assert_int_equal(ig_schedule(s, &part, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[1].key);
	assert_int_equal(survivors(s, &req, &rc, in), 1);
	assert_true(in[0]);
	ig_scheduler_free(s);
}

/* GIE v1.5's defaults: affinityThreshold 0.80 (0.75 is not sticky),
 * explorationProbability 0.01 (about 1 request in 100 keeps everyone). */
static void test_prefix_affinity_filter_defaults(void **state)
{
	struct ig_scheduler *s = sched_of(
	    "plugins:\n- type: prefix-cache-affinity-filter\n"
	    "- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 1}\n"
	    "schedulingProfiles:\n- name: p\n  plugins:\n"
	    "  - pluginRef: prefix-cache-affinity-filter\n  - pluginRef: prefix-cache-scorer\n");
	bool in[MAXE];
	int rc;
	ep(0, 0);
	ep(0, 0);
	struct ig_sched_req req = plain;
	req.prefix_input = IG_STR("aaaabbbbccccdddd");
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req part = req;
	part.prefix_input.len = 12; /* 0.75 of the prompt */
	assert_int_equal(ig_schedule(s, &part, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[0].key);
	assert_int_equal(survivors(s, &req, &rc, in), 2);
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[1].key); /* the whole prompt */
	int all = 0;
	for (int i = 0; i < 2000; i++)
		all += survivors(s, &req, &rc, in) == 2;
	assert_true(all >= 5 && all <= 50);
	ig_scheduler_free(s);
}

/* affinityThreshold 0 or below, or a single endpoint: everyone stays. */
static void test_prefix_affinity_filter_off(void **state)
{
	struct ig_diags d = {0};
	struct ig_picker_config *c = NULL;
	static const char neg[] =
	    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
	    "plugins:\n- type: prefix-cache-affinity-filter\n"
	    "  parameters: {affinityThreshold: -1, explorationProbability: 1, "
	    "maxTTFTPenaltyMs: 0}\n";
	assert_int_equal(ig_picker_config_parse("a.yaml", neg, strlen(neg), &c, &d), 0);
	ig_picker_config_free(c);
	static const char old[] =
	    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
	    "plugins:\n- type: prefix-cache-affinity-filter\n  parameters: {threshold: 0.5}\n";
	assert_int_equal(ig_picker_config_parse("a.yaml", old, strlen(old), &c, &d), -1);
	ig_diags_free(&d);
	struct ig_scheduler *s = sched_of(
	    "plugins:\n- type: prefix-cache-affinity-filter\n"
	    "  parameters: {affinityThreshold: 0, explorationProbability: 0}\n"
	    "- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 1}\n"
	    "schedulingProfiles:\n- name: p\n  plugins:\n"
	    "  - pluginRef: prefix-cache-affinity-filter\n  - pluginRef: prefix-cache-scorer\n");
	bool in[MAXE];
	int rc;
	ep(0, 0);
	ep(0, 0);
	struct ig_sched_req req = plain;
	req.prefix_input = IG_STR("aaaabbbbccccdddd");
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	ig_schedule_commit(s, &res, eps[0].key);
	assert_int_equal(survivors(s, &req, &rc, in), 2);
	ig_scheduler_free(s);
}

static void test_decision_tree_filter(void **state)
{
	struct ig_picker_config *c = ig_picker_config_decision_tree();
	struct ig_scheduler *s = ig_scheduler_new(c);
	bool in[MAXE];
	int rc;
	ep(0, 0.1);
	ep(10, 0.1);
	ep(0, 0.5);
	struct ig_sched_req crit = plain;
	crit.critical = true;
	/* Critical, low queueing: least queuing (0, 0 of max 10 within
	 * 0 + 10/3), then least KV (0.1). */
	assert_int_equal(survivors(s, &crit, &rc, in), 1);
	assert_true(in[0]);
	/* Sheddable with everyone over the capacity limits: dropped. */
	for (int i = 0; i < 3; i++)
		m[i].waiting = 50;
	assert_int_equal(survivors(s, &plain, &rc, in), 0);
	assert_int_equal(rc, -1);
	ig_scheduler_free(s);
	ig_picker_config_free(c);
}

/* ---- saturation ------------------------------------------------------------------ */

static void test_saturation(void **state)
{
	struct ig_picker_config *c = ig_picker_config_default();
	struct ig_scheduler *s = ig_scheduler_new(c);
	assert_float_equal(ig_scheduler_saturation(s, eps, 0), 1.0, 1e-12);
	ep(1, 0.4);  /* max(0.2, 0.5) = 0.5 */
	ep(10, 0.0); /* 2.0 */
	ep(0, 0.0);  /* stale: 1.0 */
	ep(0, 0.0);  /* never scraped: 1.0 */
	eps[2].metrics_age_ms = 1000;
	eps[3].m = NULL;
	eps[3].metrics_age_ms = UINT64_MAX;
	assert_float_equal(ig_scheduler_saturation(s, eps, 4), (0.5 + 2.0 + 1.0 + 1.0) / 4, 1e-12);
	ig_scheduler_free(s);
	ig_picker_config_free(c);
	/* Configured thresholds through saturationDetector. */
	s = sched_of("plugins:\n- name: sat\n  type: utilization-detector\n  parameters:\n"
		     "    queueDepthThreshold: 10\n    kvCacheUtilThreshold: 0.5\n"
		     "    metricsStalenessThreshold: 2s\n"
		     "saturationDetector:\n  pluginRef: sat\n");
	/* max(1/10, 0.4/0.5) = 0.8; 10/10 = 1.0; age 1000 < 2000 now fresh: 0;
	 * NULL: 1.0. */
	assert_float_equal(ig_scheduler_saturation(s, eps, 4), (0.8 + 1.0 + 0.0 + 1.0) / 4, 1e-12);
	ig_scheduler_free(s);
}

/* ---- config --------------------------------------------------------------------- */

/* Durations as Go's time.ParseDuration reads them (metav1.Duration), and
 * a plugin named "" named after its type (GIE's applyStaticDefaults). */
static void test_config_durations_and_names(void **state)
{
	static const struct {
		const char *v;
		uint64_t fresh_ms; /* the oldest age still fresh */
	} cases[] = {{"1m30s", 90000}, {"1h2m3.5s", 3723500}, {"\"1.5s\"", 1500}, {".5s", 500},
		     {"2000us", 2},    {"1500\xc2\xb5s", 2},  {"+3ms", 3},	  {"1ms500us", 2}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char yaml[256];
		snprintf(yaml, sizeof yaml,
			 "plugins:\n- name: \"\"\n  type: utilization-detector\n  parameters:\n"
			 "    metricsStalenessThreshold: %s\n"
			 "saturationDetector:\n  pluginRef: utilization-detector\n",
			 cases[i].v);
		struct ig_scheduler *s = sched_of(yaml);
		n = 0;
		ep(0, 0);
		eps[0].metrics_age_ms = cases[i].fresh_ms;
		assert_float_equal(ig_scheduler_saturation(s, eps, 1), 0.0, 1e-12);
		eps[0].metrics_age_ms = cases[i].fresh_ms + 1;
		assert_float_equal(ig_scheduler_saturation(s, eps, 1), 1.0, 1e-12);
		ig_scheduler_free(s);
	}
	/* 5.0 is an integer to Go's JSON decoder once YAML made it a float. */
	struct ig_scheduler *s = sched_of("plugins:\n- type: utilization-detector\n"
					  "  parameters: {queueDepthThreshold: 5.0}\n");
	ig_scheduler_free(s);
}

static void test_config_defaults(void **state)
{
	/* GIE's stock default document loads (its data-layer plugins describe
	 * the scraping the gateway does), and the profile gains a
	 * max-score-picker. */
	struct ig_picker_config *c =
	    parse_ok("apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
		     "kind: EndpointPickerConfig\n"
		     "featureGates: [flowControl]\n"
		     "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n"
		     "- type: prefix-cache-scorer\n"
		     "- type: metrics-data-source\n  parameters: {scheme: http, path: /metrics}\n"
		     "- type: core-metrics-extractor\n"
		     "schedulingProfiles:\n- name: default\n  plugins:\n"
		     "  - pluginRef: queue-scorer\n    weight: 2\n"
		     "  - pluginRef: kv-cache-utilization-scorer\n"
		     "  - pluginRef: prefix-cache-scorer\n    weight: 3\n"
		     "flowControl:\n  maxBytes: 1Gi\n  maxRequests: 500\n  defaultRequestTTL: 30s\n"
		     "  priorityBands:\n  - priority: 1\n    maxRequests: 10\n  - priority: -1\n"
		     "    maxBytes: 1000\n");
	assert_true(ig_picker_config_feature(c, "flowControl"));
	assert_false(ig_picker_config_feature(c, "dataLayer"));
	const struct ig_flow_control_config *f = ig_picker_config_flow_control(c);
	assert_true(f->present);
	assert_int_equal(f->max_bytes, 1ull << 30);
	assert_int_equal(f->max_requests, 500);
	assert_int_equal(f->default_request_ttl_ms, 30000);
	assert_int_equal(f->nbands, 2);
	assert_int_equal(f->bands[0].priority, 1);
	assert_int_equal(f->bands[0].max_requests, 10);
	assert_int_equal(f->bands[1].priority, -1);
	assert_int_equal(f->bands[1].max_bytes, 1000);
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	double sc[MAXE];
	ep(0, 0.5);
	ep(4, 0.0);
	/* kv without weight counts 1: queue 2 x {1, 0} + kv {0.5, 1}. */
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 2.5, 1e-9);
	assert_float_equal(sc[1], 1.0, 1e-9);
	ig_scheduler_free(s);

	/* No profiles: one profile of every scorer defined; default picker. */
	s = sched_of("plugins:\n- type: kv-cache-utilization-scorer\n");
	assert_int_equal(score_all(s, &plain, sc), 0);
	assert_float_equal(sc[0], 0.5, 1e-9);
	ig_scheduler_free(s);
}

/* Two profiles behind header-profile-handler: "short" ranks by queue,
 * "cache" by KV usage; the header picks one, its absence the default, an
 * unknown name none. The primary (only) profile's ranking is the result. */
#define TWO_PROFILES(handler_params)                                                               \
	"plugins:\n- type: header-profile-handler\n" handler_params                                \
	"- type: queue-scorer\n- type: kv-cache-utilization-scorer\n"                              \
	"schedulingProfiles:\n- name: short\n  plugins:\n  - pluginRef: queue-scorer\n"            \
	"- name: cache\n  plugins:\n  - pluginRef: kv-cache-utilization-scorer\n"

static void test_profiles_by_header(void **state)
{
	struct ig_scheduler *s = sched_of(
	    TWO_PROFILES("  parameters:\n    headerName: X-Profile\n    defaultProfile: short\n"));
	assert_string_equal(ig_scheduler_profile_header(s), "x-profile");
	ep(0, 0.9); /* short queue, full cache */
	ep(6, 0.1);
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req req = plain;
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_string_equal(res.profile, "short");
	assert_int_equal(ranked[0], 0);
	req.profile = IG_STR(" cache ");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_string_equal(res.profile, "cache");
	assert_int_equal(ranked[0], 1);
	assert_int_equal(res.nranked, 2);
	req.profile = IG_STR("short");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_int_equal(ranked[0], 0);
	/* A name no profile has: no profile runs, nothing is ranked. */
	req.profile = IG_STR("Cache");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), IG_SCHED_NO_PROFILE);
	assert_int_equal(res.nranked, 0);
	assert_null(res.profile);
	ig_scheduler_free(s);

	/* Defaults: header EPP-Profile, default profile "decode". */
	s = sched_of("plugins:\n- type: header-profile-handler\n- type: queue-scorer\n"
		     "- type: kv-cache-utilization-scorer\nschedulingProfiles:\n"
		     "- name: decode\n  plugins: [{pluginRef: kv-cache-utilization-scorer}]\n"
		     "- name: prefill\n  plugins: [{pluginRef: queue-scorer}]\n");
	assert_string_equal(ig_scheduler_profile_header(s), "epp-profile");
	req.profile = (struct ig_str){0};
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_string_equal(res.profile, "decode");
	assert_int_equal(ranked[0], 1);
	ig_scheduler_free(s);

	/* One profile: it runs whatever the header says (llm-d Router). */
	s = sched_of("plugins:\n- type: header-profile-handler\n- type: queue-scorer\n"
		     "schedulingProfiles:\n- name: only\n  plugins: [{pluginRef: queue-scorer}]\n");
	req.profile = IG_STR("anything");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_string_equal(res.profile, "only");
	ig_scheduler_free(s);
}

/* The gateway copies adapter sets when any profile reads them: here only
 * the profile the header names, whose LoRA scorer then sees them. */
static void test_adapters_of_any_profile(void **state)
{
	struct ig_scheduler *s = sched_of(
	    TWO_PROFILES("  parameters:\n    headerName: X-Profile\n    defaultProfile: short\n"));
	assert_false(ig_scheduler_reads_adapters(s));
	ig_scheduler_free(s);
	s = sched_of("plugins:\n- type: header-profile-handler\n  parameters: {defaultProfile: q}\n"
		     "- type: queue-scorer\n- type: lora-affinity-scorer\nschedulingProfiles:\n"
		     "- name: q\n  plugins: [{pluginRef: queue-scorer}]\n"
		     "- name: lora\n  plugins: [{pluginRef: lora-affinity-scorer}]\n");
	assert_true(ig_scheduler_reads_adapters(s));
	size_t a = ep(0, 0), b = ep(0, 0);
	eps[a].full = &full[a];
	eps[b].full = &full[b];
	m[a].max_active = m[b].max_active = 1;
	ig_adapter_set_add(&full[a].running_adapters, IG_STR("x"));
	ig_adapter_set_add(&full[b].running_adapters, IG_STR("ad"));
	struct ig_sched_req req = {.model = IG_STR("ad"), .profile = IG_STR("lora")};
	double sc[MAXE];
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[a], 0.0, 1e-9);
	assert_float_equal(sc[b], 1.0, 1e-9);
	ig_scheduler_free(s);
}

static void test_single_profile_handler(void **state)
{
	/* Declared or by default, it runs the one profile and reads no header. */
	const char *const docs[] = {
	    "plugins:\n- name: one\n  type: single-profile-handler\n- type: queue-scorer\n"
	    "schedulingProfiles:\n- name: p\n  plugins: [{pluginRef: queue-scorer}]\n",
	    "plugins:\n- type: queue-scorer\n"
	    "schedulingProfiles:\n- name: p\n  plugins: [{pluginRef: queue-scorer}]\n",
	};
	ep(3, 0);
	ep(1, 0);
	for (size_t i = 0; i < 2; i++) {
		struct ig_scheduler *s = sched_of(docs[i]);
		assert_null(ig_scheduler_profile_header(s));
		size_t ranked[MAXE];
		struct ig_sched_result res = {.ranked = ranked};
		struct ig_sched_req req = plain;
		req.profile = IG_STR("elsewhere");
		assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
		assert_string_equal(res.profile, "p");
		assert_int_equal(ranked[0], 1);
		ig_scheduler_free(s);
	}
}

/* The prefix index is the pool's, not a profile's: requests scheduled by
 * a profile without a prefix scorer are recorded too (GIE's producer hashes
 * every request), and the other profile scores with what they left. */
static void test_prefix_shared_by_profiles(void **state)
{
	struct ig_scheduler *s = sched_of(
	    "plugins:\n- type: header-profile-handler\n  parameters: {defaultProfile: plain}\n"
	    "- type: queue-scorer\n- type: prefix-cache-scorer\n"
	    "  parameters: {blockSizeTokens: 1}\n"
	    "schedulingProfiles:\n- name: plain\n  plugins: [{pluginRef: queue-scorer}]\n"
	    "- name: cached\n  plugins: [{pluginRef: prefix-cache-scorer}]\n");
	ep(0, 0);
	ep(5, 0);
	size_t ranked[MAXE];
	struct ig_sched_result res = {.ranked = ranked};
	struct ig_sched_req req = plain;
	req.prefix_input = IG_STR("aaaabbbbccccdddd");
	assert_int_equal(ig_schedule(s, &req, eps, n, &rng, &res), 0);
	assert_string_equal(res.profile, "plain");
	assert_int_equal(res.nprefix_hashes, 4);
	ig_schedule_commit(s, &res, eps[1].key); /* say it went to endpoint 1 */
	req.profile = IG_STR("cached");
	double sc[MAXE];
	assert_int_equal(score_all(s, &req, sc), 0);
	assert_float_equal(sc[1], 1.0, 1e-9);
	assert_float_equal(sc[0], 0.0, 1e-9);
	ig_scheduler_free(s);
}

/* GIE's data layer, parser and saturation detector sections that describe
 * what the gateway does are accepted; references may name GIE's system
 * defaults without declaring them. */
static void test_config_sections_accepted(void **state)
{
	struct ig_picker_config *c = parse_ok(
	    "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n"
	    "featureGates: [dataLayer]\n"
	    "plugins:\n- type: queue-scorer\n"
	    "- name: src\n  type: metrics-data-source\n"
	    "  parameters: {scheme: http, path: /metrics, insecureSkipVerify: false}\n"
	    "- name: vllm\n  type: core-metrics-extractor\n  parameters: {defaultEngine: vllm}\n"
	    "- type: inflight-load-producer\n"
	    "- type: prefix-cache-scorer\n  parameters: {autoTune: false, blockSizeTokens: 32}\n"
	    "dataLayer:\n  sources:\n  - pluginRef: src\n    extractors:\n"
	    "    - pluginRef: vllm\n"
	    "parser:\n  pluginRef: openai-parser\n"
	    "saturationDetector:\n  pluginRef: utilization-detector\n");
	assert_true(ig_picker_config_feature(c, "dataLayer"));
	ig_picker_config_free(c);
	/* An empty saturationDetector means utilization-detector, as in GIE;
	 * the legacy-metrics gate alone is fine. */
	c = parse_ok("featureGates: [enableLegacyMetrics]\nsaturationDetector: {}\n");
	assert_true(ig_picker_config_feature(c, "enableLegacyMetrics"));
	ig_picker_config_free(c);
	/* blockSize beside blockSizeTokens: GIE ignores it; here a warning. */
	static const int lines[] = {4};
	static const char *const msgs[] = {"blockSize (characters) is deprecated and ignored"};
	c = parse_warned("plugins:\n- type: prefix-cache-scorer\n  parameters:\n"
			 "    blockSize: 64\n    blockSizeTokens: 16\n",
			 lines, msgs, 1);
	ig_picker_config_free(c);
}

/* llm-d Router's passthrough-parser: the scheduler says the body is not
 * read when parser.pluginRef names it; declared alone it parses nothing
 * (openai-parser does, as in llm-d), with a warning; named without being
 * declared it is no plugin (llm-d loads only openai-parser by default). */
static void test_config_passthrough_parser(void **state)
{
	struct ig_scheduler *s =
	    sched_of("plugins:\n- type: queue-scorer\n- name: raw\n  type: passthrough-parser\n"
		     "parser:\n  pluginRef: raw\n");
	assert_true(ig_scheduler_raw_body(s));
	ig_scheduler_free(s);
	s = sched_of("parser:\n  pluginRef: openai-parser\n");
	assert_false(ig_scheduler_raw_body(s));
	ig_scheduler_free(s);
	static const int lines[] = {2};
	static const char *const msgs[] = {"no parser section names it"};
	struct ig_picker_config *c =
	    parse_warned("plugins:\n- type: passthrough-parser\n", lines, msgs, 1);
	s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	assert_false(ig_scheduler_raw_body(s));
	ig_scheduler_free(s);
}

/* Sections of other releases under the same apiVersion. GIE v1.2-v1.4's
 * saturationDetector gave the thresholds itself (each absent one at its
 * default); llm-d Router v0.9 moved pluginRef to
 * flowControl.saturationDetector and the parser to requestHandler.parsers,
 * each winning over the deprecated top-level section; GIE v1.3-v1.4 called
 * dataLayer `data` and the core-metrics-extractor
 * model-server-protocol-metrics. */
static void test_config_sections_of_other_releases(void **state)
{
	/* v1.4 (its guide's example): queue 8, KV 0.75, stale after 150ms. */
	struct ig_scheduler *s = sched_of("saturationDetector:\n  queueDepthThreshold: 8\n"
					  "  kvCacheUtilThreshold: 0.75\n"
					  "  metricsStalenessThreshold: 150ms\n");
	ep(4, 0.3);  /* max(4/8, 0.3/0.75) = 0.5 */
	ep(0, 0.6);  /* 0.8 */
	ep(10, 0.0); /* 1.25 */
	ep(0, 0.0);  /* 100ms old: fresh at 150ms, 0 */
	eps[3].metrics_age_ms = 100;
	assert_float_equal(ig_scheduler_saturation(s, eps, 4), (0.5 + 0.8 + 1.25 + 0.0) / 4, 1e-12);
	eps[3].metrics_age_ms = 151; /* stale: 1.0 */
	assert_float_equal(ig_scheduler_saturation(s, eps, 4), (0.5 + 0.8 + 1.25 + 1.0) / 4, 1e-12);
	ig_scheduler_free(s);
	/* Only the queue given: KV 0.8 and 200ms stay. */
	s = sched_of("saturationDetector: {queueDepthThreshold: 2}\n");
	eps[3].metrics_age_ms = 150;
	/* max(4/2, 0.3/0.8) = 2; max(0, 0.75) = 0.75; 5; fresh 0 */
	assert_float_equal(ig_scheduler_saturation(s, eps, 4), (2.0 + 0.75 + 5.0 + 0.0) / 4, 1e-12);
	ig_scheduler_free(s);

	/* llm-d Router: flowControl.saturationDetector names the detector,
	 * without the flowControl gate too; the top-level one beside it is
	 * ignored, with a warning. */
	static const char *const two =
	    "plugins:\n- name: strict\n  type: utilization-detector\n"
	    "  parameters: {queueDepthThreshold: 1}\n"
	    "- name: loose\n  type: utilization-detector\n"
	    "  parameters: {queueDepthThreshold: 100}\n"
	    "saturationDetector:\n  pluginRef: strict\n"
	    "flowControl:\n  saturationDetector:\n    pluginRef: loose\n";
	static const int wlines[] = {8};
	static const char *const wmsgs[] = {
	    "is ignored: flowControl.saturationDetector names the detector"};
	struct ig_picker_config *c = parse_warned(two, wlines, wmsgs, 1);
	s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	n = 0;
	ep(50, 0.0); /* loose: 50/100 = 0.5; strict would say 50 */
	assert_float_equal(ig_scheduler_saturation(s, eps, 1), 0.5, 1e-12);
	ig_scheduler_free(s);

	/* requestHandler.parsers (llm-d Router's testdata default-config.yaml)
	 * and its precedence over the deprecated parser. */
	c = parse_ok("plugins:\n- type: queue-scorer\n- type: openai-parser\n"
		     "schedulingProfiles:\n- name: default\n  plugins:\n"
		     "  - pluginRef: queue-scorer\n"
		     "requestHandler:\n  parsers:\n  - pluginRef: openai-parser\n");
	ig_picker_config_free(c);
	s = sched_of("plugins:\n- name: raw\n  type: passthrough-parser\n"
		     "requestHandler:\n  parsers:\n  - pluginRef: raw\n");
	assert_true(ig_scheduler_raw_body(s));
	ig_scheduler_free(s);
	static const int plines[] = {3};
	static const char *const pmsgs[] = {"is ignored: requestHandler.parsers names the parser"};
	c = parse_warned("plugins:\n- type: passthrough-parser\n"
			 "parser: {pluginRef: passthrough-parser}\n"
			 "requestHandler:\n  parsers:\n  - pluginRef: openai-parser\n",
			 plines, pmsgs, 1);
	s = ig_scheduler_new(c);
	ig_picker_config_free(c);
	assert_false(ig_scheduler_raw_body(s));
	ig_scheduler_free(s);

	/* GIE v1.4's data section and extractor name (its model-servers
	 * guide); the plugin is named after the type as written. */
	c = parse_ok("featureGates: [dataLayer]\n"
		     "plugins:\n- type: queue-scorer\n- type: metrics-data-source\n"
		     "- type: model-server-protocol-metrics\n"
		     "  parameters: {defaultEngine: vllm}\n"
		     "data:\n  sources:\n  - pluginRef: metrics-data-source\n"
		     "    extractors:\n    - pluginRef: model-server-protocol-metrics\n");
	ig_picker_config_free(c);
}

static void test_config_flow_policies(void **state)
{
	struct ig_picker_config *c = parse_ok(
	    "featureGates: [flowControl]\n"
	    "plugins:\n- type: round-robin-fairness-policy\n- type: edf-ordering-policy\n"
	    "- name: slo\n  type: slo-deadline-ordering-policy\n"
	    "- name: limit\n  type: static-usage-limit-policy\n  parameters: {threshold: 0.8}\n"
	    "flowControl:\n  maxRequests: 2k\n"
	    "  defaultPriorityBand:\n    maxRequests: 7\n"
	    "    fairnessPolicyRef: global-strict-fairness-policy\n"
	    "    orderingPolicyRef: slo\n"
	    "  priorityBands:\n"
	    "  - priority: 10\n    fairnessPolicyRef: global-strict-fairness-policy\n"
	    "    orderingPolicyRef: edf-ordering-policy\n"
	    "  - priority: 0\n    fairnessPolicyRef: round-robin-fairness-policy\n"
	    "    orderingPolicyRef: fcfs-ordering-policy\n"
	    "  - priority: -1\n"
	    "  usageLimitPolicyPluginRef: limit\n");
	const struct ig_flow_control_config *f = ig_picker_config_flow_control(c);
	assert_int_equal(f->max_requests, 2000);
	assert_int_equal(f->nbands, 3);
	assert_int_equal(ig_flow_band(f, 10)->fairness, IG_FLOW_GLOBAL_STRICT);
	assert_int_equal(ig_flow_band(f, 10)->ordering, IG_FLOW_EDF);
	assert_int_equal(ig_flow_band(f, 0)->fairness, IG_FLOW_ROUND_ROBIN);
	assert_int_equal(ig_flow_band(f, 0)->ordering, IG_FLOW_FCFS);
	/* A listed band without refs: round-robin, fcfs (not the template's). */
	assert_int_equal(ig_flow_band(f, -1)->fairness, IG_FLOW_ROUND_ROBIN);
	assert_int_equal(ig_flow_band(f, -1)->ordering, IG_FLOW_FCFS);
	/* Unlisted priorities: the default band. */
	assert_ptr_equal(ig_flow_band(f, 3), &f->default_band);
	assert_int_equal(ig_flow_band(f, 3)->max_requests, 7);
	assert_int_equal(ig_flow_band(f, 3)->fairness, IG_FLOW_GLOBAL_STRICT);
	assert_int_equal(ig_flow_band(f, 3)->ordering, IG_FLOW_SLO_DEADLINE);
	assert_float_equal(ig_flow_usage_limit(f, 10), 0.8, 1e-12);
	assert_float_equal(ig_flow_usage_limit(f, -1), 0.8, 1e-12);
	ig_picker_config_free(c);
	/* Without usageLimitPolicyPluginRef, GIE takes the plugin named
	 * static-usage-limit-policy; without one either, the limit is 1. */
	c = parse_ok("plugins:\n- type: static-usage-limit-policy\n  parameters: {threshold: 2}\n");
	assert_float_equal(ig_flow_usage_limit(ig_picker_config_flow_control(c), 0), 2.0, 1e-12);
	ig_picker_config_free(c);
	c = parse_ok("flowControl:\n  usageLimitPolicyPluginRef: static-usage-limit-policy\n");
	assert_float_equal(ig_flow_usage_limit(ig_picker_config_flow_control(c), 0), 1.0, 1e-12);
	ig_picker_config_free(c);
}

/* What nothing refers to is reported, not silently kept. */
static void test_config_unused_warnings(void **state)
{
	static const int lines[] = {3, 4, 5, 6};
	static const char *const msgs[] = {
	    "plugin \"kv-cache-utilization-scorer\" (kv-cache-utilization-scorer) is not used: "
	    "no scheduling profile refers to it",
	    "plugin \"global-strict-fairness-policy\" (global-strict-fairness-policy) is not "
	    "used: no priority band refers to it (a band without fairnessPolicyRef is "
	    "round-robin here)",
	    "plugin \"x\" (utilization-detector) is not used",
	    "plugin \"core-metrics-extractor\" (core-metrics-extractor) is not used: the "
	    "dataLayer section does not refer to it",
	};
	struct ig_picker_config *c = parse_warned(
	    "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n"
	    "- type: global-strict-fairness-policy\n- {name: x, type: utilization-detector}\n"
	    "- type: core-metrics-extractor\n- type: metrics-data-source\n"
	    "- name: vllm\n  type: core-metrics-extractor\n"
	    "- {name: sat, type: utilization-detector}\n"
	    "schedulingProfiles:\n- name: p\n  plugins: [{pluginRef: queue-scorer}]\n"
	    "saturationDetector: {pluginRef: sat}\n"
	    "dataLayer:\n  sources:\n  - pluginRef: metrics-data-source\n"
	    "    extractors: [{pluginRef: vllm}]\n",
	    lines, msgs, 4);
	ig_picker_config_free(c);
}

struct bad {
	const char *yaml;
	int line;
	const char *path;
	const char *msg;
};

static void test_config_errors(void **state)
{
	static const struct bad cases[] = {
	    {"plugins:\n- type: magic-scorer\n", 2, "plugins[0].type",
	     "unknown plugin type \"magic-scorer\""},
	    /* llm-d Router v0.10's plugins and fields infergate does not
	     * honour: refused with why, not as typos. */
	    {"plugins:\n- type: topology-affinity-filter\n", 2, "plugins[0].type",
	     "plugin type \"topology-affinity-filter\" is not supported: infergate reads no "
	     "topology labels"},
	    {"plugins:\n- type: precise-prefix-cache-producer\n", 2, "plugins[0].type",
	     "plugin type \"precise-prefix-cache-producer\" is not supported"},
	    {"featureGates: [flowControl]\nflowControl:\n  enableEviction: true\n", 3,
	     "flowControl.enableEviction",
	     "not supported by infergate: flow control here never "
	     "evicts"},
	    {"dataLayer:\n  crossReplicaSyncInterval: 1s\n", 2,
	     "dataLayer.crossReplicaSyncInterval",
	     "not supported by infergate: each infergate "
	     "replica keeps its own view"},
	    {"plugins:\n- name: a\n", 2, "plugins[0].type", "is required"},
	    {"plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: nope\n",
	     6, "schedulingProfiles[0].plugins[0].pluginRef", "no plugin named \"nope\""},
	    {"plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: queue-scorer\n    weight: heavy\n",
	     7, "schedulingProfiles[0].plugins[0].weight", "must be a number"},
	    {"plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: queue-scorer\n    weight: -1\n",
	     7, "schedulingProfiles[0].plugins[0].weight", "must be between 0 and 1000000"},
	    {"plugins:\n- type: max-score-picker\n- type: random-picker\n"
	     "schedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: max-score-picker\n  - pluginRef: random-picker\n",
	     8, "schedulingProfiles[0].plugins[1].pluginRef",
	     "a profile takes one picker: \"max-score-picker\" and \"random-picker\""},
	    {"plugins:\n- type: queue-scorer\n- type: queue-scorer\n", 3, "plugins[1].name",
	     "duplicate plugin name \"queue-scorer\""},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n    blockSizeTokens: big\n", 4,
	     "plugins[0].parameters.blockSizeTokens", "must be a non-negative integer"},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n    maxPrefixBlocksToMatch: "
	     "16385\n",
	     4, "plugins[0].parameters.maxPrefixBlocksToMatch", "must be between 0 and 16384"},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n    maxPrefixBlocksToMatch: "
	     "-1\n",
	     4, "plugins[0].parameters.maxPrefixBlocksToMatch", "must be a non-negative integer"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    kvCacheUtilThreshold: 0\n",
	     4, "plugins[0].parameters.kvCacheUtilThreshold",
	     "must be greater than 0 and at most 1"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    metricsStalenessThreshold: soon\n",
	     4, "plugins[0].parameters.metricsStalenessThreshold",
	     "must be a duration such as 200ms"},
	    /* GIE v1.5 utilization/config.go: strictly positive; a Go int. */
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    metricsStalenessThreshold: 0s\n",
	     4, "plugins[0].parameters.metricsStalenessThreshold", "must be strictly positive"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    metricsStalenessThreshold: -1m\n",
	     4, "plugins[0].parameters.metricsStalenessThreshold", "must be strictly positive"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    metricsStalenessThreshold: 200\n",
	     4, "plugins[0].parameters.metricsStalenessThreshold",
	     "must be a duration such as 200ms"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    metricsStalenessThreshold: 1m30\n",
	     4, "plugins[0].parameters.metricsStalenessThreshold",
	     "must be a duration such as 200ms"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    queueDepthThreshold: 2.5\n",
	     4, "plugins[0].parameters.queueDepthThreshold", "must be an integer"},
	    {"plugins:\n- type: utilization-detector\n  parameters:\n"
	     "    queueDepthThreshold: 0\n",
	     4, "plugins[0].parameters.queueDepthThreshold", "must be strictly positive"},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n    autoTune: maybe\n", 4,
	     "plugins[0].parameters.autoTune", "must be a boolean"},
	    {"plugins:\n- type: queue-scorer\n  parameters:\n    nosuch: 1\n", 4,
	     "plugins[0].parameters.nosuch", "unknown parameter for queue-scorer"},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n    blockSize: 64\n", 3,
	     "plugins[0].parameters", "blockSize (characters) is deprecated: set blockSizeTokens"},
	    {"schedulingProfiles:\n- name: a\n- name: a\n", 3, "schedulingProfiles[1].name",
	     "duplicate profile name \"a\""},
	    {"schedulingProfiles:\n- name: a\n- name: b\n", 3, "schedulingProfiles[1]",
	     "2 scheduling profiles need a profile handler that chooses among them: declare a "
	     "plugin of type header-profile-handler"},
	    {"plugins:\n- type: queue-scorer\nsaturationDetector:\n  pluginRef: queue-scorer\n", 4,
	     "saturationDetector.pluginRef",
	     "plugin \"queue-scorer\" (queue-scorer) is not a saturation detector"},
	    {"plugins:\n- type: metrics-data-source\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: metrics-data-source\n",
	     6, "schedulingProfiles[0].plugins[0].pluginRef",
	     "plugin \"metrics-data-source\" (metrics-data-source) is not a filter, scorer or "
	     "picker"},
	    {"featureGates: [warpDrive]\n", 1, "featureGates[0]",
	     "unknown feature gate \"warpDrive\""},
	    {"flowControl:\n  defaultRequestTTL: forever\n", 2, "flowControl.defaultRequestTTL",
	     "must be a duration such as 30s"},
	    {"flowControl:\n  priorityBands:\n  - maxRequests: 3\n", 3,
	     "flowControl.priorityBands[0].priority", "is required"},
	    {"kind: Deployment\n", 1, "kind", "must be EndpointPickerConfig"},
	    {"plugins: {a: 1}\n", 1, "plugins", "must be a list"},
	    {"plugins:\n- type: [x\n", 3, "", "YAML syntax error"},
	    /* Profile handlers. */
	    {"plugins:\n- type: single-profile-handler\nschedulingProfiles:\n- name: a\n"
	     "- name: b\n",
	     5, "schedulingProfiles[1]",
	     "plugin \"single-profile-handler\" (single-profile-handler) runs one profile: "
	     "SingleProfileHandler cannot support multiple scheduling profiles"},
	    {"plugins:\n- type: single-profile-handler\n- name: h\n  type: "
	     "header-profile-handler\n",
	     3, "plugins[1]",
	     "a second profile handler (\"single-profile-handler\" is one); only one is allowed"},
	    {"plugins:\n- type: header-profile-handler\n  parameters:\n    defaultProfile: c\n"
	     "schedulingProfiles:\n- name: a\n- name: b\n",
	     4, "plugins[0].parameters.defaultProfile",
	     "\"c\" is not a scheduling profile (there are \"a\", \"b\"): requests without the "
	     "epp-profile header run it"},
	    {"plugins:\n- type: header-profile-handler\nschedulingProfiles:\n- name: a\n- name: "
	     "b\n",
	     2, "plugins[0]", "defaultProfile (by default \"decode\") is not a scheduling profile"},
	    {"plugins:\n- type: header-profile-handler\n  parameters:\n    headerName: \"x y\"\n",
	     4, "plugins[0].parameters.headerName", "must be an HTTP header name"},
	    {"plugins:\n- type: header-profile-handler\n  parameters:\n    header: x\n", 4,
	     "plugins[0].parameters.header", "unknown parameter for header-profile-handler"},
	    {"plugins:\n- type: single-profile-handler\nschedulingProfiles:\n- name: p\n  "
	     "plugins:\n"
	     "  - pluginRef: single-profile-handler\n",
	     6, "schedulingProfiles[0].plugins[0].pluginRef",
	     "(single-profile-handler) is not a filter, scorer or picker"},
	    {"plugins:\n- type: pd-profile-handler\n", 2, "plugins[0].type",
	     "plugin type \"pd-profile-handler\" is not supported: prefill/decode disaggregation"},
	    {"plugins:\n- type: destination-endpoint-served-verifier\nschedulingProfiles:\n- "
	     "name: p\n  plugins:\n  - pluginRef: destination-endpoint-served-verifier\n",
	     6, "schedulingProfiles[0].plugins[0].pluginRef",
	     "(destination-endpoint-served-verifier) is not a filter, scorer or picker"},
	    {"plugins:\n- type: concurrency-detector\n", 2, "plugins[0].type",
	     "plugin type \"concurrency-detector\" is not supported"},
	    /* Strict fields, everywhere. */
	    {"apiVersion: v1\n", 1, "apiVersion",
	     "must be inference.networking.x-k8s.io/v1alpha1 (GIE) or llm-d.ai/v1alpha1"},
	    {"plugins: []\nplugins: []\n", 2, "plugins", "given twice (first on line 1)"},
	    {"plugins:\n- type: queue-scorer\n  weight: 2\n", 3, "plugins[0].weight",
	     "unknown field"},
	    {"schedulingProfiles:\n- name: a\n  pluginz: []\n", 3, "schedulingProfiles[0].pluginz",
	     "unknown field"},
	    {"plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: queue-scorer\n    wieght: 2\n",
	     7, "schedulingProfiles[0].plugins[0].wieght", "unknown field"},
	    {"plugins:\n- type: max-score-picker\nschedulingProfiles:\n- name: p\n  plugins:\n"
	     "  - pluginRef: max-score-picker\n    weight: 2\n",
	     7, "schedulingProfiles[0].plugins[0].weight",
	     "weight applies to scorers only; \"max-score-picker\" is a picker"},
	    {"plugins:\n- type: queue-scorer\n  parameters:\n    nosuch: 1\n", 4,
	     "plugins[0].parameters.nosuch",
	     "unknown parameter for queue-scorer: it takes no parameters"},
	    {"plugins:\n- type: openai-parser\n  parameters: {strict: true}\n", 3,
	     "plugins[0].parameters.strict", "unknown parameter for openai-parser"},
	    {"plugins:\n- type: max-score-picker\n- type: random-picker\n", 3, "plugins[1]",
	     "which takes one picker: \"max-score-picker\" and \"random-picker\""},
	    /* One prefix index, hashed one way. */
	    {"plugins:\n- type: approx-prefix-cache-producer\n- type: prefix-cache-scorer\n"
	     "  parameters: {blockSizeTokens: 8}\n",
	     3, "plugins[1].parameters", "would be ignored next to approx-prefix-cache-producer"},
	    {"plugins:\n- type: header-profile-handler\n- name: p1\n  type: prefix-cache-scorer\n"
	     "- name: p2\n  type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 8}\n"
	     "schedulingProfiles:\n- name: decode\n  plugins: [{pluginRef: p1}]\n"
	     "- name: b\n  plugins: [{pluginRef: p2}]\n",
	     5, "plugins[2]", "parameters differ from prefix-cache-scorer \"p1\"'s"},
	    {"plugins:\n- type: approx-prefix-cache-producer\n- name: b\n"
	     "  type: approx-prefix-cache-producer\n",
	     3, "plugins[1]", "a second approx-prefix-cache-producer"},
	    /* Data layer. */
	    {"plugins:\n- type: metrics-data-source\n  parameters:\n    scheme: https\n", 4,
	     "plugins[0].parameters.scheme", "\"https\" is not supported: infergate scrapes"},
	    {"plugins:\n- type: metrics-data-source\n  parameters:\n    path: /stats\n", 4,
	     "plugins[0].parameters.path", "\"/stats\" is not supported"},
	    {"plugins:\n- type: metrics-data-source\n  parameters:\n    insecureSkipVerify: yes\n",
	     4, "plugins[0].parameters.insecureSkipVerify", "must be a boolean"},
	    {"plugins:\n- type: core-metrics-extractor\n  parameters:\n    defaultEngine: sglang\n",
	     4, "plugins[0].parameters.defaultEngine",
	     "\"sglang\" is not supported: infergate reads pods without the"},
	    {"plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineLabelKey: e\n", 4,
	     "plugins[0].parameters.engineLabelKey", "is not supported"},
	    {"plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineConfigs: []\n", 4,
	     "plugins[0].parameters.engineConfigs", "is not supported"},
	    {"featureGates: [enableLegacyMetrics]\nplugins:\n- type: metrics-data-source\n"
	     "- type: core-metrics-extractor\ndataLayer:\n  sources:\n"
	     "  - pluginRef: metrics-data-source\n    extractors:\n"
	     "    - pluginRef: core-metrics-extractor\n",
	     5, "dataLayer", "is not used with the enableLegacyMetrics feature gate"},
	    {"dataLayer:\n  sources: []\n", 2, "dataLayer.sources",
	     "no sources turns metrics collection off in GIE"},
	    {"dataLayer: {}\n", 1, "dataLayer.sources", "no sources turns metrics collection off"},
	    {"plugins:\n- type: metrics-data-source\ndataLayer:\n  sources:\n"
	     "  - pluginRef: metrics-data-source\n",
	     5, "dataLayer.sources[0].extractors", "a source without a core-metrics-extractor"},
	    {"plugins:\n- type: core-metrics-extractor\ndataLayer:\n  sources:\n"
	     "  - pluginRef: core-metrics-extractor\n    extractors:\n"
	     "    - pluginRef: core-metrics-extractor\n",
	     5, "dataLayer.sources[0].pluginRef",
	     "plugin \"core-metrics-extractor\" (core-metrics-extractor) is not a data source"},
	    {"plugins:\n- type: metrics-data-source\ndataLayer:\n  sources:\n"
	     "  - pluginRef: metrics-data-source\n    extractors:\n    - pluginRef: nope\n",
	     7, "dataLayer.sources[0].extractors[0].pluginRef", "no plugin named \"nope\""},
	    {"dataLayer:\n  source: []\n", 2, "dataLayer.source", "unknown field"},
	    /* Parser. */
	    {"plugins:\n- type: queue-scorer\nparser:\n  pluginRef: queue-scorer\n", 4,
	     "parser.pluginRef",
	     "(queue-scorer) is not a parser (openai-parser, passthrough-parser)"},
	    {"parser: {}\n", 1, "parser.pluginRef", "is required"},
	    {"parser:\n  pluginRef: vllmgrpc-parser\n", 2, "parser.pluginRef",
	     "no plugin named \"vllmgrpc-parser\""},
	    /* Flow control. */
	    {"flowControl:\n  maxRequest: 10\n", 2, "flowControl.maxRequest", "unknown field"},
	    {"flowControl:\n  maxRequests: lots\n", 2, "flowControl.maxRequests",
	     "must be a non-negative integer or quantity"},
	    {"flowControl:\n  priorityBands:\n  - priority: 1\n    fairnessPolicyRef: fair\n", 4,
	     "flowControl.priorityBands[0].fairnessPolicyRef", "no plugin named \"fair\""},
	    {"flowControl:\n  priorityBands:\n  - priority: 1\n"
	     "    fairnessPolicyRef: round-robin-fairness-policy\n",
	     4, "flowControl.priorityBands[0].fairnessPolicyRef",
	     "no plugin named \"round-robin-fairness-policy\""},
	    {"plugins:\n- type: edf-ordering-policy\nflowControl:\n  priorityBands:\n"
	     "  - priority: 1\n    fairnessPolicyRef: edf-ordering-policy\n",
	     6, "flowControl.priorityBands[0].fairnessPolicyRef",
	     "(edf-ordering-policy) is not a fairness policy"},
	    {"flowControl:\n  priorityBands:\n  - priority: 1\n"
	     "    orderingPolicyRef: global-strict-fairness-policy\n",
	     4, "flowControl.priorityBands[0].orderingPolicyRef", "is not an ordering policy"},
	    {"flowControl:\n  priorityBands:\n  - priority: 1\n    queue: ListQueue\n", 4,
	     "flowControl.priorityBands[0].queue", "unknown field"},
	    {"flowControl:\n  defaultPriorityBand:\n    priority: 3\n", 3,
	     "flowControl.defaultPriorityBand.priority", "has no meaning here"},
	    {"plugins:\n- type: queue-scorer\nflowControl:\n  usageLimitPolicyPluginRef: "
	     "queue-scorer\n",
	     4, "flowControl.usageLimitPolicyPluginRef",
	     "is not a usage limit policy (static-usage-limit-policy)"},
	    {"plugins:\n- type: static-usage-limit-policy\n  parameters: {threshold: 0}\n", 3,
	     "plugins[0].parameters.threshold", "must be greater than 0"},
	    {"plugins:\n- type: load-aware-scorer\n  parameters: {threshold: 0}\n", 3,
	     "plugins[0].parameters.threshold", "must be greater than 0"},
	    {"schedulingProfiles:\n- name: \"\"\n", 2, "schedulingProfiles[0].name",
	     "must be 1 to 253 characters"},
	    {"plugins:\n- type: token-load-scorer\n  parameters:\n    queueThresholdTokens: 5\n"
	     "    queueThresholdTokens: 6\n",
	     5, "plugins[0].parameters.queueThresholdTokens", "given twice (first on line 4)"},
	    /* Values infergate would clamp, and text it would not read. */
	    {"plugins:\n- type: max-score-picker\n  parameters: {maxNumOfEndpoints: 33}\n", 3,
	     "plugins[0].parameters.maxNumOfEndpoints", "must be between 1 and 32"},
	    {"plugins:\n- type: prefix-cache-scorer\n  parameters:\n"
	     "    maxPrefixTokensToMatch: 262160\n",
	     3, "plugins[0].parameters",
	     "maxPrefixTokensToMatch / blockSizeTokens is 16385 blocks; at most 16384 are matched"},
	    /* Shapes of other releases: mixed, out of range, or in the wrong place. */
	    {"plugins:\n- type: utilization-detector\nsaturationDetector:\n"
	     "  pluginRef: utilization-detector\n  queueDepthThreshold: 8\n",
	     4, "saturationDetector.pluginRef", "beside GIE v1.2-v1.4's thresholds"},
	    {"saturationDetector:\n  kvCacheUtilThreshold: 1.0\n", 2,
	     "saturationDetector.kvCacheUtilThreshold", "must be below 1"},
	    {"saturationDetector:\n  queueDepthThreshold: 0\n", 2,
	     "saturationDetector.queueDepthThreshold", "must be strictly positive"},
	    {"saturationDetector:\n  metricsStalenessThreshold: 150\n", 2,
	     "saturationDetector.metricsStalenessThreshold", "must be a duration"},
	    {"flowControl:\n  saturationDetector:\n    queueDepthThreshold: 8\n", 3,
	     "flowControl.saturationDetector.queueDepthThreshold", "unknown field"},
	    {"plugins:\n- type: queue-scorer\nflowControl:\n  saturationDetector:\n"
	     "    pluginRef: queue-scorer\n",
	     5, "flowControl.saturationDetector.pluginRef", "is not a saturation detector"},
	    {"plugins:\n- type: passthrough-parser\nrequestHandler:\n  parsers:\n"
	     "  - pluginRef: openai-parser\n  - pluginRef: passthrough-parser\n",
	     6, "requestHandler.parsers[1]", "a second parser"},
	    {"requestHandler:\n  parsers:\n  - pluginRef: queue-scorer\n", 3,
	     "requestHandler.parsers[0].pluginRef", "no plugin named \"queue-scorer\""},
	    {"requestHandler:\n  parser: {pluginRef: openai-parser}\n", 2, "requestHandler.parser",
	     "unknown field"},
	    {"plugins:\n- type: metrics-data-source\n- type: core-metrics-extractor\n"
	     "dataLayer:\n  sources:\n  - pluginRef: metrics-data-source\n"
	     "    extractors: [{pluginRef: core-metrics-extractor}]\n"
	     "data:\n  sources:\n  - pluginRef: metrics-data-source\n"
	     "    extractors: [{pluginRef: core-metrics-extractor}]\n",
	     8, "data", "is GIE v1.3-v1.4's name for dataLayer"},
	    {"data:\n  sources: []\n", 2, "data.sources",
	     "no sources turns metrics collection off"},
	    {"plugins: []\n---\nplugins:\n- type: queue-scorer\n", 3, "",
	     "a second YAML document: the picker configuration is one document"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_picker_config *c = NULL;
		struct ig_diags d = {0};
		const struct bad *b = &cases[i];
		int rc = ig_picker_config_parse("epp.yaml", b->yaml, strlen(b->yaml), &c, &d);
		bool found = false;
		for (size_t k = 0; k < d.n; k++)
			found |= d.items[k].line == b->line &&
				 strcmp(d.items[k].path, b->path) == 0 &&
				 strstr(d.items[k].msg, b->msg) &&
				 strcmp(d.items[k].file, "epp.yaml") == 0;
		if (rc != -1 || !found) {
			fprintf(stderr, "case %zu: rc %d, want %d: %s: %s\n", i, rc, b->line,
				b->path, b->msg);
			ig_diags_print(&d, stderr);
		}
		assert_int_equal(rc, -1);
		assert_null(c);
		assert_true(found);
		ig_diags_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_queue_scorer, setup),
	    cmocka_unit_test_setup(test_running_scorer, setup),
	    cmocka_unit_test_setup(test_kv_scorer_and_clamp, setup),
	    cmocka_unit_test_setup(test_lora_scorer, setup),
	    cmocka_unit_test_setup(test_lora_slot_scorer, setup),
	    cmocka_unit_test_setup(test_default_keeps_adapters_off_full_pods, setup),
	    cmocka_unit_test_setup(test_prefix_scorer_large_pool, setup),
	    cmocka_unit_test_setup(test_token_load_scorer, setup),
	    cmocka_unit_test_setup(test_load_aware_scorer, setup),
	    cmocka_unit_test_setup(test_load_bound_scorer, setup),
	    cmocka_unit_test_setup(test_presets, setup),
	    cmocka_unit_test_setup(test_prefix_scorer, setup),
	    cmocka_unit_test_setup(test_prefix_auto_tune, setup),
	    cmocka_unit_test_setup(test_default_profile_sum, setup),
	    cmocka_unit_test_setup(test_max_score_ties_random, setup),
	    cmocka_unit_test_setup(test_random_picker, setup),
	    cmocka_unit_test_setup(test_profile_gets_declared_picker, setup),
	    cmocka_unit_test_setup(test_weighted_random_picker, setup),
	    cmocka_unit_test_setup(test_max_endpoints, setup),
	    cmocka_unit_test_setup(test_saturation_filter, setup),
	    cmocka_unit_test_setup(test_header_filter, setup),
	    cmocka_unit_test_setup(test_plugin_timings, setup),
	    cmocka_unit_test_setup(test_served_verifier, setup),
	    cmocka_unit_test_setup(test_prefix_affinity_filter, setup),
	    cmocka_unit_test_setup(test_prefix_affinity_filter_defaults, setup),
	    cmocka_unit_test_setup(test_prefix_affinity_filter_off, setup),
	    cmocka_unit_test_setup(test_decision_tree_filter, setup),
	    cmocka_unit_test_setup(test_saturation, setup),
	    cmocka_unit_test_setup(test_config_defaults, setup),
	    cmocka_unit_test_setup(test_config_sections_of_other_releases, setup),
	    cmocka_unit_test_setup(test_profiles_by_header, setup),
	    cmocka_unit_test_setup(test_adapters_of_any_profile, setup),
	    cmocka_unit_test_setup(test_single_profile_handler, setup),
	    cmocka_unit_test_setup(test_prefix_shared_by_profiles, setup),
	    cmocka_unit_test_setup(test_config_sections_accepted, setup),
	    cmocka_unit_test_setup(test_config_passthrough_parser, setup),
	    cmocka_unit_test_setup(test_config_flow_policies, setup),
	    cmocka_unit_test_setup(test_config_unused_warnings, setup),
	    cmocka_unit_test_setup(test_config_errors, setup),
	    cmocka_unit_test_setup(test_config_durations_and_names, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
