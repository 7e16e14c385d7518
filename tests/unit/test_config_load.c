/* Tests of how manifests are read, as kubectl and the API server read
 * them: reader errors at their line, List documents expanded, kinds of
 * our groups that infergate does not know named, duplicates per API group
 * (and found in linear time), YAML merge keys, and the types the API
 * server requires of scalars. test_config.c and test_config_api.c cover
 * the kinds themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

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

#define has(out, text)                                                                             \
	do {                                                                                       \
		if (!strstr((out), (text)))                                                        \
			fprintf(stderr, "want: %s\ngot:\n%s", (text), (out));                      \
		assert_non_null(strstr((out), (text)));                                            \
	} while (0)

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reader_error_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
