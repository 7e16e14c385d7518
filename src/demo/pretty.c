/* JSON pretty-printer over the span-based reader: the document is already
 * validated, so walking it cannot fail except on a full buffer, and the
 * depth is bounded by IG_JSON_MAX_DEPTH. */
#include "demo/pretty.h"

static int indent(struct ig_buf *out, int depth)
{
	if (ig_buf_append_cstr(out, "\n"))
		return -1;
	for (int i = 0; i < depth; i++)
		if (ig_buf_append_cstr(out, "  "))
			return -1;
	return 0;
}

static int pretty(struct ig_json_value v, int depth, struct ig_buf *out);

static int pretty_array(struct ig_json_value v, int depth, struct ig_buf *out)
{
	struct ig_json_value elem;
	size_t pos = 0;
	int n = 0;

	if (ig_buf_append_cstr(out, "["))
		return -1;
	while (ig_json_array_next(v, &pos, &elem) == 1) {
		if ((n++ && ig_buf_append_cstr(out, ",")) || indent(out, depth + 1) ||
		    pretty(elem, depth + 1, out))
			return -1;
	}
	if (n && indent(out, depth))
		return -1;
	return ig_buf_append_cstr(out, "]");
}

static int pretty_object(struct ig_json_value v, int depth, struct ig_buf *out)
{
	struct ig_json_value key, val;
	size_t pos = 0;
	int n = 0;

	if (ig_buf_append_cstr(out, "{"))
		return -1;
	while (ig_json_object_next(v, &pos, &key, &val) == 1) {
		if ((n++ && ig_buf_append_cstr(out, ",")) || indent(out, depth + 1) ||
		    ig_buf_append_str(out, key.raw) || ig_buf_append_cstr(out, ": ") ||
		    pretty(val, depth + 1, out))
			return -1;
	}
	if (n && indent(out, depth))
		return -1;
	return ig_buf_append_cstr(out, "}");
}

static int pretty(struct ig_json_value v, int depth, struct ig_buf *out)
{
	switch (v.type) {
	case IG_JSON_ARRAY:
		return pretty_array(v, depth, out);
	case IG_JSON_OBJECT:
		return pretty_object(v, depth, out);
	default:
		return ig_buf_append_str(out, v.raw);
	}
}

int ig_demo_json_pretty(struct ig_json_value v, struct ig_buf *out)
{
	return pretty(v, 0, out);
}
