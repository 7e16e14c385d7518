#include "core/str.h"

#include <stdlib.h>
#include <string.h>

struct ig_str ig_str_from(const char *cstr)
{
	return (struct ig_str){cstr, cstr ? strlen(cstr) : 0};
}

bool ig_str_eq(struct ig_str a, struct ig_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Against a C string without measuring it first: most comparisons on the
 * request path fail at the first byte. */
bool ig_str_eq_cstr(struct ig_str a, const char *b)
{
	size_t i = 0;
	for (; i < a.len; i++)
		if (!b[i] || a.ptr[i] != b[i])
			return false;
	return b[i] == '\0';
}

bool ig_str_has_prefix(struct ig_str s, struct ig_str prefix)
{
	return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

struct ig_str ig_str_trim(struct ig_str s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
		s.ptr++, s.len--;
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

/* The length of the white space (ig_str_trim_space) that starts at p, at
 * most n bytes: 0 when there is none. */
static size_t space_at(const unsigned char *p, size_t n)
{
	if (!n)
		return 0;
	if (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r'))
		return 1;
	if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
		return 2;
	if (n < 3)
		return 0;
	if (p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) /* U+1680 */
		return 3;
	if (p[0] == 0xe2 && p[1] == 0x80 &&
	    ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
		return 3;				  /* U+2000-200A, 2028, 2029, 202F */
	if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) /* U+205F */
		return 3;
	if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) /* U+3000 */
		return 3;
	return 0;
}

struct ig_str ig_str_trim_space(struct ig_str s)
{
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t k;
	while ((k = space_at(p, s.len)))
		p += k, s.len -= k;
	s.ptr = (const char *)p;
	/* From the end: a space is 1, 2 or 3 bytes long. */
	for (;;) {
		size_t n = s.len, got = 0;
		for (k = 1; k <= 3 && k <= n && !got; k++)
			if (space_at(p + n - k, k) == k)
				got = k;
		if (!got)
			break;
		s.len -= got;
	}
	return s;
}

bool ig_str_has_ctl(struct ig_str s)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
			return true;
	return false;
}

bool ig_str_list_has_token(struct ig_str list, const char *token)
{
	size_t i = 0;
	while (i <= list.len) {
		size_t j = i;
		while (j < list.len && list.ptr[j] != ',')
			j++;
		struct ig_str item = ig_str_trim((struct ig_str){list.ptr + i, j - i});
		if (ig_str_ieq_cstr(item, token))
			return true;
		i = j + 1;
	}
	return false;
}

int ig_str_to_u64(struct ig_str s, uint64_t *out)
{
	uint64_t v = 0;
	if (s.len == 0)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.ptr[i] - '0';
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

char *ig_str_dup(struct ig_str s)
{
	char *p = malloc(s.len + 1);
	if (p) {
		if (s.len)
			memcpy(p, s.ptr, s.len);
		p[s.len] = '\0';
	}
	return p;
}

char **ig_strv_dup(const char *const *v, size_t n)
{
	char **out = calloc(n + 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++)
		if (!(out[i] = strdup(v[i]))) {
			for (size_t k = 0; k < i; k++)
				free(out[k]);
			free(out);
			return NULL;
		}
	return out;
}

size_t ig_base64_encode(const void *in, size_t n, char *out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = in;
	char *w = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*w++ = alphabet[(v >> 18) & 63];
		*w++ = alphabet[(v >> 12) & 63];
		*w++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
		*w++ = i + 2 < n ? alphabet[v & 63] : '=';
	}
	return (size_t)(w - out);
}

static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long ig_base64_decode(const char *in, size_t len, void *out, unsigned flags)
{
	bool lax = flags & IG_BASE64_LAX;
	unsigned char *w = out;
	unsigned acc = 0;
	size_t bits = 0, n = 0, pad = 0, sig = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\r' || c == '\n' || (lax && (c == ' ' || c == '\t')))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = base64_value(c);
		if (v < 0 || pad)
			return -1;
		sig++;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			w[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Whole quanta: 2 or 3 symbols in the last one take 2 or 1 '='. */
	size_t r = sig % 4;
	if (!lax && (r == 1 || pad != (r ? 4 - r : 0)))
		return -1;
	return (long)n;
}
