/* Block hashes for the prefix index (see blockhash.h).
 *
 * The AES way. A block's state starts as a constant with the block's
 * length mixed in; each 16 bytes of the block are the round key of one AES
 * round (AESENC: SubBytes, ShiftRows, MixColumns, then XOR with the key),
 * the last partial 16 bytes zero-padded; three more rounds with constant
 * keys spread the last bytes over the whole state, and the two halves of
 * the state, XORed, are the hash. Two AES rounds already make every output
 * byte depend on every input byte, so each byte of the block passes
 * through at least three rounds after it enters. One round is a single
 * instruction, and a core runs one or two of them per cycle when enough
 * independent ones are in flight: the blocks of a prompt are independent,
 * so four are hashed side by side. With 64-byte blocks (GIE's 16 tokens)
 * this takes about a quarter of the time of XXH3-64 per block, which was a
 * fifth of a whole scheduling decision (docs/BENCHMARKS.md).
 *
 * The values only have to be equal for equal blocks and collide as rarely
 * as random 64-bit values do for different ones; they never leave the
 * process. Like XXH3 with its fixed secret, this is not meant to resist
 * someone crafting collisions, which could at worst mislead the prefix
 * scorer about what a pod has cached. */
#include "sched/blockhash.h"

#include <stdatomic.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AES_WAY 1
#include <immintrin.h>
#endif

enum { MODE_UNKNOWN, MODE_AES, MODE_PORTABLE };

static _Atomic int mode;

static void portable(const char *in, size_t len, size_t n, uint64_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = XXH3_64bits(in + i * len, len);
}

#ifdef HAVE_AES_WAY
#define AES_FN __attribute__((target("aes,sse2")))

/* Round constants: any fixed values whose bytes are not all alike. */
#define K_INIT 0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL
#define K_FIN1 0xA4093822299F31D0ULL, 0x082EFA98EC4E6C89ULL
#define K_FIN2 0x452821E638D01377ULL, 0xBE5466CF34E90C6CULL
#define K_FIN3 0xC0AC29B7C97C50DDULL, 0x3F84D5B5B5470917ULL

static inline AES_FN __m128i key(uint64_t lo, uint64_t hi)
{
	return _mm_set_epi64x((long long)hi, (long long)lo);
}

static inline AES_FN __m128i start(size_t len)
{
	return _mm_xor_si128(key(K_INIT), _mm_cvtsi64_si128((long long)len));
}

/* The block's last len % 16 bytes, zero-padded. */
static inline AES_FN __m128i tail(const char *p, size_t len)
{
	char t[16] = {0};
	memcpy(t, p, len);
	return _mm_loadu_si128((const __m128i *)t);
}

static inline AES_FN uint64_t finish(__m128i s)
{
	s = _mm_aesenc_si128(s, key(K_FIN1));
	s = _mm_aesenc_si128(s, key(K_FIN2));
	s = _mm_aesenc_si128(s, key(K_FIN3));
	s = _mm_xor_si128(s, _mm_unpackhi_epi64(s, s));
	return (uint64_t)_mm_cvtsi128_si64(s);
}

static AES_FN uint64_t aes_one(const char *p, size_t len)
{
	__m128i s = start(len);
	size_t j = 0;
	for (; j + 16 <= len; j += 16)
		s = _mm_aesenc_si128(s, _mm_loadu_si128((const __m128i *)(p + j)));
	if (j < len)
		s = _mm_aesenc_si128(s, tail(p + j, len - j));
	return finish(s);
}

static AES_FN void aes_way(const char *in, size_t len, size_t n, uint64_t *out)
{
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		const char *p = in + i * len;
		__m128i s0 = start(len), s1 = s0, s2 = s0, s3 = s0;
		size_t j = 0;
		for (; j + 16 <= len; j += 16) {
			s0 = _mm_aesenc_si128(s0, _mm_loadu_si128((const __m128i *)(p + j)));
			s1 = _mm_aesenc_si128(s1, _mm_loadu_si128((const __m128i *)(p + len + j)));
			s2 = _mm_aesenc_si128(s2,
					      _mm_loadu_si128((const __m128i *)(p + 2 * len + j)));
			s3 = _mm_aesenc_si128(s3,
					      _mm_loadu_si128((const __m128i *)(p + 3 * len + j)));
		}
		if (j < len) {
			s0 = _mm_aesenc_si128(s0, tail(p + j, len - j));
			s1 = _mm_aesenc_si128(s1, tail(p + len + j, len - j));
			s2 = _mm_aesenc_si128(s2, tail(p + 2 * len + j, len - j));
			s3 = _mm_aesenc_si128(s3, tail(p + 3 * len + j, len - j));
		}
		out[i] = finish(s0);
		out[i + 1] = finish(s1);
		out[i + 2] = finish(s2);
		out[i + 3] = finish(s3);
	}
	for (; i < n; i++)
		out[i] = aes_one(in + i * len, len);
}

static int detect(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("aes") ? MODE_AES : MODE_PORTABLE;
}
#else
static int detect(void)
{
	return MODE_PORTABLE;
}
#endif

/* Every thread that finds the mode unknown works out the same answer. */
static int mode_get(void)
{
	int m = atomic_load_explicit(&mode, memory_order_relaxed);
	if (m == MODE_UNKNOWN) {
		m = detect();
		atomic_store_explicit(&mode, m, memory_order_relaxed);
	}
	return m;
}

void ig_block_hashes(const char *in, size_t len, size_t n, uint64_t *out)
{
#ifdef HAVE_AES_WAY
	if (mode_get() == MODE_AES) {
		aes_way(in, len, n, out);
		return;
	}
#endif
	portable(in, len, n, out);
}

bool ig_block_hash_use_portable(bool portable_way)
{
	atomic_store_explicit(&mode, portable_way ? MODE_PORTABLE : detect(), memory_order_relaxed);
	return mode_get() == MODE_AES;
}
