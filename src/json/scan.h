/* The byte-level pieces of JSON validation that the whole-document parser
 * (json.c) and the incremental one (stream.c) share: whitespace, digits,
 * UTF-8 sequences, escapes, and the fast scan over plain string bytes.
 * Internal to json/. */
#ifndef IG_JSON_SCAN_H
#define IG_JSON_SCAN_H

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "json/json.h"

static inline bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static inline size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte carries the range restrictions. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Reads the four hex digits of a \u escape at p (which is past the "u"). */
static inline long read_hex4(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = ig_hex_value((unsigned char)p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Decodes the \u escape (or surrogate pair) starting at the backslash p.
 * Returns the code point and sets *next past it, or -1 for bad hex and
 * unpaired surrogates. */
static inline long read_u_escape(const char *p, const char *end, const char **next)
{
	long cp = read_hex4(p + 2, end);

	if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
		return -1;
	*next = p + 6;
	if (cp < 0xd800 || cp > 0xdbff)
		return cp;
	if (end - *next < 6 || (*next)[0] != '\\' || (*next)[1] != 'u')
		return -1;

	long lo = read_hex4(*next + 2, end);

	if (lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*next += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

static inline char simple_escape(char c)
{
	switch (c) {
	case '"':
		return '"';
	case '\\':
		return '\\';
	case '/':
		return '/';
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	default:
		return 0;
	}
}

/* The type a value has, judged by its first byte. */
static inline enum ig_json_type type_of(char c)
{
	switch (c) {
	case '{':
		return IG_JSON_OBJECT;
	case '[':
		return IG_JSON_ARRAY;
	case '"':
		return IG_JSON_STRING;
	case 't':
	case 'f':
		return IG_JSON_BOOL;
	case 'n':
		return IG_JSON_NULL;
	default:
		return (c == '-' || is_digit(c)) ? IG_JSON_NUMBER : IG_JSON_INVALID;
	}
}

/* Whether the key whose raw span (quotes included) is raw[0, rawlen) is
 * `want` once unescaped; escaped: the key has a backslash (else its bytes
 * are compared as they are). In json.c: the one comparison both parsers'
 * member scans use. */
bool ig_json_key_eq(const char *raw, size_t rawlen, bool escaped, const char *want);

/* Plain string bytes: printable ASCII other than '"' and '\'. */
static inline bool is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* skip_plain()'s long runs, 64 bytes a step with AVX2 where the CPU has it
 * (checked at each call: one load and a test). A byte is special when it
 * is a quote, a backslash, or below 0x20 as a signed byte: the control
 * bytes and everything non-ASCII. */
__attribute__((target("avx2"))) static inline const char *skip_plain_avx2(const char *p,
									   const char *end)
{
	const __m256i quote = _mm256_set1_epi8('"'), bslash = _mm256_set1_epi8('\\');
	const __m256i low = _mm256_set1_epi8(0x20);
	while (end - p >= 64) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
		__m256i sa = _mm256_or_si256(
		    _mm256_or_si256(_mm256_cmpeq_epi8(a, quote), _mm256_cmpeq_epi8(a, bslash)),
		    _mm256_cmpgt_epi8(low, a));
		__m256i sb = _mm256_or_si256(
		    _mm256_or_si256(_mm256_cmpeq_epi8(b, quote), _mm256_cmpeq_epi8(b, bslash)),
		    _mm256_cmpgt_epi8(low, b));
		uint64_t mask = (uint32_t)_mm256_movemask_epi8(sa) |
				(uint64_t)(uint32_t)_mm256_movemask_epi8(sb) << 32;
		if (mask)
			return p + __builtin_ctzll(mask);
		p += 64;
	}
	return p;
}
#define HAVE_SKIP_PLAIN_AVX2 1
#endif

/* The first byte at or after p that is not a plain string byte (a quote,
 * a backslash, a control byte or non-ASCII), or end. */
static inline const char *skip_plain(const char *p, const char *end)
{
#ifdef HAVE_SKIP_PLAIN_AVX2
	if (end - p >= 128 && __builtin_cpu_supports("avx2")) {
		p = skip_plain_avx2(p, end);
		if (end - p >= 64)
			return p; /* stopped at a special byte */
	}
#endif
#ifdef __SSE2__
	/* Sixteen bytes at a time while none of them is a quote, a backslash
	 * or below 0x20 as a signed byte (a control byte, or non-ASCII):
	 * prompts are long runs of plain text, and this is most of a large
	 * body's validation. */
	{
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
		const __m128i low = _mm_set1_epi8(0x20);
#define SPECIAL(v)                                                                                 \
	_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),            \
		     _mm_cmplt_epi8(v, low))
		/* Four vectors per step while nothing stands out: one test and
		 * one branch per 64 bytes. */
		while (end - p >= 64) {
			__m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
			__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
			__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
			__m128i d = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
			__m128i any = _mm_or_si128(_mm_or_si128(SPECIAL(a), SPECIAL(b)),
						   _mm_or_si128(SPECIAL(c), SPECIAL(d)));
			if (_mm_movemask_epi8(any))
				break; /* the 16-byte loop finds where */
			p += 64;
		}
		while (end - p >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
			unsigned mask = (unsigned)_mm_movemask_epi8(SPECIAL(v));
			if (mask)
				return p + __builtin_ctz(mask);
			p += 16;
		}
#undef SPECIAL
	}
#endif
	/* Eight bytes at a time, the same test without vector registers. */
	while (end - p >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
		uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
		uint64_t special =
		    (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
		if (special)
			break;
		p += 8;
	}
	while (p < end && is_plain((unsigned char)*p))
		p++;
	return p;
}

#endif
