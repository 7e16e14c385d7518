/* The small JSON reader the request path needs: validate a document once,
 * then look values up by key and walk arrays and objects without building a
 * tree. Values are spans of the original text, so a caller can splice
 * (replace `model`) with the rest of the body byte-identical. Plus a few
 * writers for the JSON we produce. */
#ifndef IG_JSON_JSON_H
#define IG_JSON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

enum ig_json_type {
	IG_JSON_INVALID = 0,
	IG_JSON_NULL,
	IG_JSON_BOOL,
	IG_JSON_NUMBER,
	IG_JSON_STRING,
	IG_JSON_ARRAY,
	IG_JSON_OBJECT,
};

struct ig_json_value {
	enum ig_json_type type;
	struct ig_str raw; /* the value's exact bytes; strings include the quotes */
};

#define IG_JSON_MAX_DEPTH 128

/* Strict RFC 8259 validation of a whole document (one value, optional
 * surrounding whitespace, valid UTF-8 in strings, nesting up to
 * IG_JSON_MAX_DEPTH). On success fills *root and returns 0; -1 otherwise. */
int ig_json_parse(const char *text, size_t len, struct ig_json_value *root);

/* ig_json_parse() that also picks members out of the root object in the
 * same pass, for a request path that needs a handful of top-level fields
 * and would otherwise re-scan the body once per ig_json_get().
 *
 * Accepts and rejects exactly the documents ig_json_parse() does and fills
 * *root the same way. out has nkeys entries: out[i] is the value of member
 * keys[i] of the root object, compared after unescaping (a key written
 * "mo\u0064el" is "model"), the last one winning when a key repeats, as
 * in ig_json_get(). A member that is absent, or a root that is not an
 * object, leaves out[i].type == IG_JSON_INVALID (raw {NULL, 0}); so does a
 * failed parse, for every entry. keys are NUL-terminated, so a key with an
 * escaped NUL never matches. The cost is one validation pass plus a
 * comparison of each root-level key against the list. Returns 0 or -1. */
int ig_json_parse_members(const char *text, size_t len, const char *const *keys, size_t nkeys,
			  struct ig_json_value *out, struct ig_json_value *root);

/* Validates the one value that begins text (after optional whitespace)
 * with the rules of ig_json_parse(), ignoring whatever follows it: a value
 * found inside a larger, unvalidated buffer. v->raw ends where the value
 * ends. Returns 0 or -1. */
int ig_json_parse_value(const char *text, size_t len, struct ig_json_value *v);

/* ig_json_parse_value, recording the members of an object as
 * ig_json_parse_members does: one pass where a validation and a walk over
 * the members would make two. */
int ig_json_parse_value_members(const char *text, size_t len, const char *const *keys, size_t nkeys,
				struct ig_json_value *out, struct ig_json_value *v);

/* The functions below take values that came out of ig_json_parse() (or out
 * of these functions); they never read outside value.raw. */

/* Member `key` of an object (compared after unescaping). When a key occurs
 * more than once the last one wins, as in Go's and Python's decoders.
 * Returns 0 and fills *out, or -1 (not an object, or no such key). */
int ig_json_get(struct ig_json_value obj, const char *key, struct ig_json_value *out);

/* Iteration: start with *pos = 0; returns 1 with the next element (or key
 * and value), 0 at the end. */
int ig_json_array_next(struct ig_json_value arr, size_t *pos, struct ig_json_value *elem);
int ig_json_object_next(struct ig_json_value obj, size_t *pos, struct ig_json_value *key,
			struct ig_json_value *val);

/* Decoded string content (escapes resolved, \u surrogate pairs to UTF-8)
 * appended to out. -1 if not a string or out is full. */
int ig_json_string(struct ig_json_value v, struct ig_buf *out);
/* True when v is a string whose decoded content equals s (len bytes).
 * The C-string form is inline, so that a literal's length is folded. */
bool ig_json_string_eq_n(struct ig_json_value v, const char *s, size_t len);
static inline bool ig_json_string_eq(struct ig_json_value v, const char *s)
{
	return ig_json_string_eq_n(v, s, strlen(s));
}
/* Numbers: -1 unless v is a number that fits (int64 also rejects
 * fractions and exponents that leave a fraction). */
int ig_json_int64(struct ig_json_value v, int64_t *out);
int ig_json_double(struct ig_json_value v, double *out);
/* 1 for true, 0 for false, -1 if not a boolean. */
int ig_json_bool(struct ig_json_value v);

/* Writes code point cp (at most U+10FFFF) as UTF-8 into out (room for 4
 * bytes); returns the byte count. */
size_t ig_utf8_encode(uint32_t cp, char *out);

/* Appends s as a JSON string literal (with quotes), escaping as needed. */
int ig_json_write_string(struct ig_buf *out, const char *s, size_t len);

#endif
