/* The llm-d Router plugin types of the configurable picker: each one's
 * filtering or scoring on crafted endpoints, with llm-d's own numbers
 * (pkg/epp/framework/plugins/...), and the loader's answer for the types
 * infergate does not run. */
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
static struct ig_sched_endpoint eps[MAXE];
static char addrs[MAXE][32];
static size_t n;
static struct ig_rng rng;

static int setup(void **state)
{
	memset(m, 0, sizeof m);
	memset(eps, 0, sizeof eps);
	n = 0;
	ig_rng_seed(&rng, 7);
	(void)state;
	return 0;
}

__attribute__((unused)) static size_t ep(int64_t q)
{
	size_t i = n++;
	m[i].waiting = q;
	snprintf(addrs[i], sizeof addrs[i], "10.0.0.%zu:8000", i + 1);
	eps[i] =
	    (struct ig_sched_endpoint){.m = &m[i], .addr = ig_str_from(addrs[i]), .key = 100 + i};
	return i;
}

__attribute__((unused)) static struct ig_picker_config *parse_ok(const char *yaml)
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
	    cmocka_unit_test_setup(test_unsupported_llmd_types, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
