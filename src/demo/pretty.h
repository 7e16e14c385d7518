/* Pretty-printing of a JSON value for people: two-space indentation, keys
 * in the order the document has them, strings and numbers exactly as sent. */
#ifndef IG_DEMO_PRETTY_H
#define IG_DEMO_PRETTY_H

#include "core/buf.h"
#include "json/json.h"

/* Appends v (a value from ig_json_parse) to out, without a final newline.
 * 0, or -1 when out is full. */
int ig_demo_json_pretty(struct ig_json_value v, struct ig_buf *out);

#endif
