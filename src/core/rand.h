/* Random numbers: xoshiro256** generators. A generator can be seeded for
 * tests; ig_rng_thread() gives each thread its own, seeded from the kernel. */
#ifndef IG_CORE_RAND_H
#define IG_CORE_RAND_H

#include <stdint.h>

struct ig_rng {
	uint64_t s[4];
};

void ig_rng_seed(struct ig_rng *r, uint64_t seed);
uint64_t ig_rng_next(struct ig_rng *r);
double ig_rng_double(struct ig_rng *r);             /* uniform in [0, 1) */
uint64_t ig_rng_below(struct ig_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */
struct ig_rng *ig_rng_thread(void);
/* 32 lowercase hex digits, NUL-terminated (out must hold 33 bytes). */
void ig_rng_hex128(struct ig_rng *r, char *out);

#endif
