/* A canonical form of JSON values, for hashing what a request says rather
 * than how it is written: the prefix-cache index must see the same chat
 * whatever the client's spacing, key order or choice of escapes.
 *
 * The form: no whitespace; object members sorted by their decoded keys
 * (bytewise); strings decoded and written again with the fewest escapes
 * (only the quote, the backslash and control bytes, as \b \f \n \r \t or
 * \u00XX; everything else, '/' and non-ASCII included, as itself); numbers
 * and literals as written. Output stops at a caller's limit: only a
 * prompt's first blocks are ever hashed, so a 400 KB conversation costs
 * only what the limit asks for. */
#ifndef IG_JSON_CANON_H
#define IG_JSON_CANON_H

#include <stddef.h>

#include "json/json.h"

/* Writes the canonical form of v (a value from ig_json_parse or its
 * members) into out[0..cap) and returns the bytes written (cap when the
 * form is longer: it is then cut). */
size_t ig_json_canonical(struct ig_json_value v, char *out, size_t cap);

/* The text of a string value (escapes decoded), or the canonical form of
 * any other value, into out[0..cap); returns the bytes written. */
size_t ig_json_canonical_text(struct ig_json_value v, char *out, size_t cap);

#endif
