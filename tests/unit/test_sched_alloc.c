/* The picker allocates nothing per decision at any pool size: malloc and
 * its relatives are interposed here (the library is linked statically, so
 * its calls land on these) and counted while a warmed-up thread schedules
 * for large pools, with GIE's default profile, with the decision tree, and
 * with profiles picked per request by header-profile-handler.
 * Sanitizer builds bring their own allocator: there the same schedules
 * run (for the sanitizers' sake) without the count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/picker.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define INTERPOSED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define INTERPOSED 0
#endif
#endif
#ifndef INTERPOSED
#define INTERPOSED 1
#endif

static _Thread_local long allocations;

#if INTERPOSED
/* glibc's own entry points, which its malloc forwards to. */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void __libc_free(void *p);

void *malloc(size_t n)
{
	allocations++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	allocations++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	allocations++;
	return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	allocations++;
	return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	allocations++;
	*out = __libc_memalign(align, n);
	return *out ? 0 : 12; /* ENOMEM */
}

void free(void *p)
{
	__libc_free(p);
}
#endif

#define NEPS 3000

static struct ig_endpoint_load load[NEPS];
static struct ig_sched_endpoint eps[NEPS];
static char prompt[4096];

static void pool(void)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 3);
	for (size_t i = 0; i < NEPS; i++) {
		load[i] = (struct ig_endpoint_load){.waiting = (int64_t)ig_rng_below(&rng, 8),
						    .kv_usage = ig_rng_double(&rng) * 0.9,
						    .max_active = 4};
		eps[i] = (struct ig_sched_endpoint){.m = &load[i],
						    .metrics_age_ms = 10,
						    .addr = IG_STR("10.0.0.1:8000"),
						    .key = 0x9e3779b97f4a7c15ULL * (i + 1)};
	}
	for (size_t i = 0; i < sizeof prompt; i++)
		prompt[i] = (char)('a' + ig_rng_below(&rng, 26));
}

static bool commit_always;

/* Allocations made by `rounds` schedules after `warm` ones, on this thread;
 * the requests name the profiles of `profiles` in turn (none when NULL). */
static long count(struct ig_picker_config *c, int warm, int rounds, const char *const *profiles)
{
	struct ig_scheduler *s = ig_scheduler_new(c);
	assert_non_null(s);
	struct ig_rng rng;
	ig_rng_seed(&rng, 5);
	size_t ranked[IG_SCHED_MAX_RANKED];
	struct ig_sched_req req = {
	    .model = IG_STR("m"), .target_model = IG_STR("m"), .critical = true};
	long before = 0;
	for (int r = 0; r < warm + rounds; r++) {
		if (r == warm)
			before = allocations;
		struct ig_sched_result res = {.ranked = ranked};
		/* Prompts of growing length: lookups of more and more blocks. */
		req.prefix_input = (struct ig_str){prompt, 64 * (size_t)(1 + r % 64)};
		if (profiles)
			req.profile = ig_str_from(profiles[r % 3]);
		assert_int_equal(ig_schedule(s, &req, eps, NEPS, &rng, &res), 0);
		assert_true(res.nranked > 0);
		/* Commits only during the warm-up: a commit may grow the
		 * index, which is memory the index keeps, not per decision
		 * (unless commit_always: the LRU's commits are per decision). */
		if (r < warm || commit_always)
			ig_schedule_commit(s, &res, eps[r % NEPS].key);
		load[r % NEPS].waiting = r % 7;
	}
	long n = allocations - before;
	ig_scheduler_free(s);
	return n;
}

static void test_no_allocation_per_decision(void **state)
{
	pool();
	struct ig_picker_config *c = ig_picker_config_default();
	/* The counter works: creating a scheduler allocates. */
	long before = allocations;
	struct ig_scheduler *s = ig_scheduler_new(c);
	ig_scheduler_free(s);
	assert_true(allocations > before || !INTERPOSED);
	assert_int_equal(count(c, 200, 500, NULL), 0);
	ig_picker_config_free(c);
	c = ig_picker_config_decision_tree();
	assert_int_equal(count(c, 50, 200, NULL), 0);
	ig_picker_config_free(c);
	/* Three profiles, one with the LoRA scorer (which reads adapter
	 * sets), the request's header picking one ("" the default). */
	static const char multi[] =
	    "plugins:\n- type: header-profile-handler\n  parameters: {defaultProfile: cache}\n"
	    "- type: queue-scorer\n- type: kv-cache-utilization-scorer\n"
	    "- type: prefix-cache-scorer\n- type: lora-affinity-scorer\n"
	    "schedulingProfiles:\n"
	    "- name: cache\n  plugins: [{pluginRef: queue-scorer}, {pluginRef: "
	    "kv-cache-utilization-scorer}, {pluginRef: prefix-cache-scorer, weight: 3}]\n"
	    "- name: lora\n  plugins: [{pluginRef: lora-affinity-scorer}, {pluginRef: "
	    "queue-scorer}]\n"
	    "- name: short\n  plugins: [{pluginRef: queue-scorer}]\n";
	struct ig_diags d = {0};
	c = NULL;
	assert_int_equal(ig_picker_config_parse("multi.yaml", multi, sizeof multi - 1, &c, &d), 0);
	ig_diags_free(&d);
	static const char *const names[] = {"", "lora", "short"};
	assert_int_equal(count(c, 60, 300, names), 0);
	ig_picker_config_free(c);
	/* A long-context setting (llm-d Router's maxPrefixBlocksToMatch
	 * takes any size) over 4-byte blocks: prompts of up to 1024 blocks,
	 * whose hashes and lookups use the thread's memory, grown in the
	 * warm-up. */
	static const char longctx[] =
	    "plugins:\n- type: prefix-cache-scorer\n  parameters: {autoTune: false, "
	    "blockSizeTokens: 1, maxPrefixBlocksToMatch: 4096}\n"
	    "schedulingProfiles:\n- name: p\n  plugins: [{pluginRef: prefix-cache-scorer}]\n";
	c = NULL;
	assert_int_equal(ig_picker_config_parse("long.yaml", longctx, sizeof longctx - 1, &c, &d),
			 0);
	ig_diags_free(&d);
	assert_int_equal(count(c, 200, 500, NULL), 0);
	ig_picker_config_free(c);
	/* no-hit-lru-scorer: without a prefix index every request is cold
	 * and its commit touches the thread's LRU, which the warm-up filled
	 * (lruSize 1024 of the 3000 endpoints); then its touches evict. */
	static const char lru[] =
	    "plugins:\n- type: queue-scorer\n- type: no-hit-lru-scorer\n"
	    "schedulingProfiles:\n- name: p\n  plugins: [{pluginRef: queue-scorer}, "
	    "{pluginRef: no-hit-lru-scorer}]\n";
	c = NULL;
	assert_int_equal(ig_picker_config_parse("lru.yaml", lru, sizeof lru - 1, &c, &d), 0);
	ig_diags_free(&d);
	commit_always = true;
	assert_int_equal(count(c, 1100, 500, NULL), 0);
	commit_always = false;
	ig_picker_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_allocation_per_decision),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
