#include "core/rand.h"

#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void ig_rng_seed(struct ig_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t ig_rng_next(struct ig_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double ig_rng_double(struct ig_rng *r)
{
	return (double)(ig_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t ig_rng_below(struct ig_rng *r, uint64_t n)
{
	/* Rejection keeps the draw exactly uniform. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = ig_rng_next(r);
	while (x >= limit);
	return x % n;
}

struct ig_rng *ig_rng_thread(void)
{
	static _Thread_local struct ig_rng rng;
	static _Thread_local bool seeded;
	if (!seeded) {
		uint64_t seed;
		if (getrandom(&seed, sizeof seed, 0) != sizeof seed) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&rng;
		}
		ig_rng_seed(&rng, seed);
		seeded = true;
	}
	return &rng;
}

void ig_rng_hex128(struct ig_rng *r, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (int k = 0; k < 2; k++) {
		uint64_t v = ig_rng_next(r);
		for (int i = 0; i < 16; i++, v >>= 4)
			out[k * 16 + i] = hex[v & 15];
	}
	out[32] = '\0';
}
