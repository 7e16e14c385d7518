/* String slices: a pointer and a length into someone else's memory. The
 * request path works on these so that parsing never copies. */
#ifndef IG_CORE_STR_H
#define IG_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ig_str {
	const char *ptr;
	size_t len;
};

#define IG_STR(lit) ((struct ig_str){(lit), sizeof(lit) - 1})
#define IG_STR_FMT(s) (int)(s).len, (s).ptr /* printf("%.*s", IG_STR_FMT(s)) */

struct ig_str ig_str_from(const char *cstr);
bool ig_str_eq(struct ig_str a, struct ig_str b);
bool ig_str_eq_cstr(struct ig_str a, const char *b);
/* ASCII case-insensitive comparison, for header names and tokens. */
static inline bool ig_str_ieq(struct ig_str a, struct ig_str b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++) {
		unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
		if (x != y &&
		    ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a'))
			return false;
	}
	return true;
}
/* Inline, so that a literal's length is known where it is called: most
 * header names differ from the one looked for in length, and end there
 * without a byte compared (a request's head is compared with a dozen
 * names, each header). */
static inline bool ig_str_ieq_cstr(struct ig_str a, const char *b)
{
	size_t n = strlen(b);
	return a.len == n && ig_str_ieq(a, (struct ig_str){b, n});
}
bool ig_str_has_prefix(struct ig_str s, struct ig_str prefix);
/* Case-insensitive search for a token in a comma-separated header value. */
bool ig_str_list_has_token(struct ig_str list, const char *token);
struct ig_str ig_str_trim(struct ig_str s);
/* Without the white space around it as Go's strings.TrimSpace sees it
 * (unicode.IsSpace): ASCII's \t \n \v \f \r and space, and in UTF-8
 * U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000. */
struct ig_str ig_str_trim_space(struct ig_str s);
/* Whether s holds a control character (below 0x20, NUL included, or DEL):
 * what no header value may carry. */
bool ig_str_has_ctl(struct ig_str s);
/* Parses a non-negative decimal integer that fills the whole slice.
 * Returns 0, or -1 on empty input, a stray byte or overflow. */
int ig_str_to_u64(struct ig_str s, uint64_t *out);
/* The value of a hex digit (either case), or -1. */
static inline int ig_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}
/* A malloc'd NUL-terminated copy (NULL on allocation failure). */
char *ig_str_dup(struct ig_str s);
/* src into dst (cap > 0 bytes), cut to fit and NUL-terminated; returns the
 * length copied. snprintf(dst, cap, "%s", src) without the formatter. */
static inline size_t ig_cstr_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}
/* A malloc'd copy of n C strings, each malloc'd, the array ending in NULL
 * (NULL on allocation failure, nothing left allocated). */
char **ig_strv_dup(const char *const *v, size_t n);
/* Standard base64 (RFC 4648 §4, padded) of n bytes into out, which has
 * room for IG_BASE64_LEN(n) bytes; returns that length (no NUL). */
#define IG_BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t ig_base64_encode(const void *in, size_t n, char *out);
/* Standard base64 of len bytes of text into out, which has room for
 * IG_BASE64_DECODED_MAX(len) bytes; returns the decoded length, or -1 when
 * the text is not base64. By default as Go's base64.StdEncoding decodes,
 * which is how Kubernetes reads []byte fields (a Secret's data): whole
 * quanta of four symbols, the last one padded with '=', CR and LF ignored
 * anywhere. IG_BASE64_LAX also ignores spaces and tabs and accepts any
 * padding or none; a symbol after padding is wrong either way. */
#define IG_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 3)
#define IG_BASE64_LAX 1u
long ig_base64_decode(const char *in, size_t len, void *out, unsigned flags);

#endif
