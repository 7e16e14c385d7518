#include "core/rand.h"

#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* 16 hex digits of v, the least significant nibble first. */
static void hex64(uint64_t v, char *out)
{
#ifdef __SSE2__
	/* Byte j of v gives digits 2j (its low nibble) and 2j + 1 (its
	 * high one): the nibbles interleaved, then '0' or 'a' - 10 added. */
	__m128i b = _mm_cvtsi64_si128((long long)v), mask = _mm_set1_epi8(15);
	__m128i lo = _mm_and_si128(b, mask), hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
	__m128i n = _mm_unpacklo_epi8(lo, hi);
	__m128i letter =
	    _mm_and_si128(_mm_cmpgt_epi8(n, _mm_set1_epi8(9)), _mm_set1_epi8('a' - 10 - '0'));
	_mm_storeu_si128((__m128i *)out, _mm_add_epi8(n, _mm_add_epi8(letter, _mm_set1_epi8('0'))));
#else
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++, v >>= 4)
		out[i] = hex[v & 15];
#endif
}

void ig_rng_hex128(struct ig_rng *r, char *out)
{
	hex64(ig_rng_next(r), out);
	hex64(ig_rng_next(r), out + 16);
	out[32] = '\0';
}
