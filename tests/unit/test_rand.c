/* Tests for core/rand.c: the hex text of random ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rand.h"

/* ig_rng_hex128 writes each of two draws as 16 lowercase hex digits, the
 * least significant nibble first; the vector form must match this. */
static void test_hex128_digits(void **state)
{
	(void)state;
	static const char hex[] = "0123456789abcdef";
	struct ig_rng a, b;
	ig_rng_seed(&a, 42);
	ig_rng_seed(&b, 42);
	for (int round = 0; round < 1000; round++) {
		char got[33], want[33];
		ig_rng_hex128(&a, got);
		for (int k = 0; k < 2; k++) {
			uint64_t v = ig_rng_next(&b);
			for (int i = 0; i < 16; i++, v >>= 4)
				want[k * 16 + i] = hex[v & 15];
		}
		want[32] = '\0';
		assert_string_equal(got, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex128_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
