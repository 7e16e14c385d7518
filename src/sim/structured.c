/* Structured outputs (vLLM's response_format, guided_json, guided_choice,
 * structured_outputs; the Responses API's text.format): the answer is a
 * JSON value that a schema describes, or one of a list of strings. A real
 * server constrains the model's sampling to the grammar; the simulator
 * writes a value that fits straight away, from the request's random
 * stream, so that a client that parses the answer gets what it asked for.
 *
 * The schema keywords followed are those generators of schemas emit
 * (pydantic, zod, the OpenAI SDKs): type (one or a list), properties,
 * items, prefixItems, enum, const, anyOf/oneOf/allOf (the first branch),
 * local $ref (#/$defs/..., #/definitions/...), minimum/maximum,
 * minItems/maxItems, minLength/maxLength and the common string formats.
 * Every property is written, required or not; `pattern` is not followed. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "sim/sim.h"

#define MAX_DEPTH 24
#define MAX_TEXT (64u << 10) /* past this, values become null */

struct gen {
	struct ig_json_value root;
	struct ig_rng *rng;
	struct ig_buf *out;
	int rc;
};

static void put(struct gen *g, const char *s, size_t n)
{
	if (ig_buf_append(g->out, s, n) < 0)
		g->rc = -1;
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void putf(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct gen *g, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	put(g, tmp, n <= 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static bool get(struct ig_json_value o, const char *key, enum ig_json_type type,
		struct ig_json_value *v)
{
	return o.type == IG_JSON_OBJECT && ig_json_get(o, key, v) == 0 && v->type == type;
}

static double num_or(struct ig_json_value o, const char *key, double dflt)
{
	struct ig_json_value v;
	double d;
	return get(o, key, IG_JSON_NUMBER, &v) && ig_json_double(v, &d) == 0 ? d : dflt;
}

/* A local reference, "#/$defs/Name" or "#/definitions/Name", to the
 * schema it names; anything else is left as it is. */
static struct ig_json_value deref(const struct gen *g, struct ig_json_value s)
{
	for (int hops = 0; hops < 8; hops++) {
		struct ig_json_value ref, defs, target;
		struct ig_buf path = {0};
		if (!get(s, "$ref", IG_JSON_STRING, &ref) || ig_json_string(ref, &path) < 0)
			return s;
		const char *p = ig_buf_cstr(&path), *name = NULL, *table = NULL;
		if (p && strncmp(p, "#/$defs/", 8) == 0)
			table = "$defs", name = p + 8;
		else if (p && strncmp(p, "#/definitions/", 14) == 0)
			table = "definitions", name = p + 14;
		bool found = table && get(g->root, table, IG_JSON_OBJECT, &defs) &&
			     ig_json_get(defs, name, &target) == 0;
		ig_buf_free(&path);
		if (!found)
			return s;
		s = target;
	}
	return s;
}

/* `n` words of the generator's vocabulary (each with its leading space,
 * but the first when `opening`), cut at max_len bytes. */
static void words(struct gen *g, long n, size_t max_len, bool opening)
{
	size_t start = g->out->len;
	for (long i = 0; i < n; i++) {
		const char *w = ig_sim_word(ig_sim_next_word_index(g->rng));
		puts_(g, i || !opening ? w : w + 1);
	}
	if (g->rc == 0 && g->out->len - start > max_len)
		g->out->len = start + max_len;
}

static void string_value(struct gen *g, struct ig_json_value s)
{
	struct ig_json_value f;
	static const struct {
		const char *format, *text;
	} formats[] = {
	    {"date", "2026-12-05"},
	    {"date-time", "2026-12-05T12:00:00Z"},
	    {"time", "12:00:00"},
	    {"email", "user@example.com"},
	    {"uri", "https://example.com/"},
	    {"uuid", "3f0c2a9e-6b1d-4c55-9a7e-0d2f4b8c1e6a"},
	    {"ipv4", "192.0.2.1"},
	};
	if (get(s, "format", IG_JSON_STRING, &f))
		for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
			if (ig_json_string_eq(f, formats[i].format)) {
				putf(g, "\"%s\"", formats[i].text);
				return;
			}
	double lo = num_or(s, "minLength", 0), hi = num_or(s, "maxLength", 1e9);
	size_t max_len = hi < 0 ? 0 : hi > 1e6 ? (size_t)1e6 : (size_t)hi;
	put(g, "\"", 1);
	size_t start = g->out->len;
	words(g, 1 + (long)ig_rng_below(g->rng, 4), max_len, true);
	/* Short of minLength: more words, up to the ceiling. */
	while (g->rc == 0 && (double)(g->out->len - start) < lo && g->out->len - start < max_len &&
	       g->out->len < MAX_TEXT) {
		size_t had = g->out->len - start;
		words(g, 1, max_len - had, false);
	}
	put(g, "\"", 1);
}

static void number_value(struct gen *g, struct ig_json_value s, bool integer)
{
	double lo = num_or(s, "minimum", NAN), hi = num_or(s, "maximum", NAN);
	bool lo_open = false, hi_open = false;
	if (isnan(lo))
		lo = num_or(s, "exclusiveMinimum", NAN), lo_open = !isnan(lo);
	if (isnan(hi))
		hi = num_or(s, "exclusiveMaximum", NAN), hi_open = !isnan(hi);
	if (isnan(lo) && isnan(hi))
		lo = 0, hi = 100;
	else if (isnan(lo))
		lo = hi - 100;
	else if (isnan(hi))
		hi = lo + 100;
	lo = lo < -1e15 ? -1e15 : lo > 1e15 ? 1e15 : lo;
	hi = hi < lo ? lo : hi > 1e15 ? 1e15 : hi;
	if (integer) {
		double a = ceil(lo), b = floor(hi);
		if (lo_open && a == lo)
			a++;
		if (hi_open && b == hi)
			b--;
		if (b < a) /* no integer fits: the nearest */
			b = a;
		putf(g, "%" PRId64,
		     (int64_t)a + (int64_t)ig_rng_below(g->rng, (uint64_t)(b - a) + 1));
		return;
	}
	/* Inside the bounds, away from the open ones; two decimals when they
	 * stay inside. */
	double v = lo + (0.05 + 0.9 * ig_rng_double(g->rng)) * (hi - lo);
	char tmp[40];
	snprintf(tmp, sizeof tmp, "%.2f", v);
	double back = strtod(tmp, NULL);
	if (back < lo || back > hi || (lo_open && back == lo) || (hi_open && back == hi))
		snprintf(tmp, sizeof tmp, "%.17g", v);
	puts_(g, tmp);
}

static void value(struct gen *g, struct ig_json_value s, int depth);

static void object_value(struct gen *g, struct ig_json_value s, int depth)
{
	struct ig_json_value props, key, v;
	put(g, "{", 1);
	if (get(s, "properties", IG_JSON_OBJECT, &props)) {
		size_t pos = 0;
		bool first = true;
		while (g->rc == 0 && ig_json_object_next(props, &pos, &key, &v) == 1) {
			if (!first)
				put(g, ", ", 2);
			first = false;
			put(g, key.raw.ptr, key.raw.len); /* the key as written, quotes included */
			put(g, ": ", 2);
			value(g, v, depth + 1);
		}
	} else if (depth == 0) {
		/* Any object (json_object, or a schema that names no member). */
		puts_(g, "\"answer\": \"");
		words(g, 3 + (long)ig_rng_below(g->rng, 6), SIZE_MAX, true);
		put(g, "\"", 1);
	}
	put(g, "}", 1);
}

static void array_value(struct gen *g, struct ig_json_value s, int depth)
{
	struct ig_json_value items, prefix, v;
	bool have_items = get(s, "items", IG_JSON_OBJECT, &items);
	bool have_prefix = get(s, "prefixItems", IG_JSON_ARRAY, &prefix);
	double lo = num_or(s, "minItems", 0), hi = num_or(s, "maxItems", lo + 3);
	if (lo < 0)
		lo = 0;
	if (lo > 16) /* enough to show the shape */
		lo = 16;
	if (hi < lo)
		hi = lo;
	long n = (long)lo + (long)ig_rng_below(g->rng, (uint64_t)(hi - lo > 3 ? 3 : hi - lo) + 1);
	if (n == 0 && !have_prefix && lo == 0 && hi >= 1)
		n = 1;
	put(g, "[", 1);
	size_t pos = 0;
	for (long i = 0; g->rc == 0 && i < n; i++) {
		if (i)
			put(g, ", ", 2);
		if (have_prefix && ig_json_array_next(prefix, &pos, &v) == 1)
			value(g, v, depth + 1);
		else if (have_items)
			value(g, items, depth + 1);
		else
			string_value(g, (struct ig_json_value){IG_JSON_OBJECT, IG_STR("{}")});
	}
	put(g, "]", 1);
}

/* The first entry of a list of schemas (anyOf, oneOf, allOf) that is not
 * {"type": "null"} (pydantic writes Optional[X] as anyOf [X, null]). */
static bool first_branch(struct ig_json_value s, struct ig_json_value *out)
{
	static const char *const keys[] = {"anyOf", "oneOf", "allOf"};
	struct ig_json_value list, v, t;
	for (size_t k = 0; k < 3; k++) {
		if (!get(s, keys[k], IG_JSON_ARRAY, &list))
			continue;
		size_t pos = 0;
		bool any = false;
		while (ig_json_array_next(list, &pos, &v) == 1) {
			if (!any)
				*out = v, any = true;
			if (!(get(v, "type", IG_JSON_STRING, &t) && ig_json_string_eq(t, "null"))) {
				*out = v;
				return true;
			}
		}
		if (any)
			return true;
	}
	return false;
}

/* The type a schema asks for: its `type` (the first of a list that is not
 * "null"), else what its keywords imply. */
static void type_of(struct ig_json_value s, char *out, size_t cap)
{
	struct ig_json_value t, v;
	struct ig_buf b = {0};
	snprintf(out, cap, "%s", "string");
	if (get(s, "type", IG_JSON_STRING, &t)) {
		if (ig_json_string(t, &b) == 0 && ig_buf_cstr(&b))
			snprintf(out, cap, "%s", b.ptr);
	} else if (get(s, "type", IG_JSON_ARRAY, &t)) {
		size_t pos = 0;
		while (ig_json_array_next(t, &pos, &v) == 1)
			if (v.type == IG_JSON_STRING && !ig_json_string_eq(v, "null")) {
				if (ig_json_string(v, &b) == 0 && ig_buf_cstr(&b))
					snprintf(out, cap, "%s", b.ptr);
				break;
			}
	} else if (get(s, "properties", IG_JSON_OBJECT, &v)) {
		snprintf(out, cap, "%s", "object");
	} else if (get(s, "items", IG_JSON_OBJECT, &v) ||
		   get(s, "prefixItems", IG_JSON_ARRAY, &v)) {
		snprintf(out, cap, "%s", "array");
	}
	ig_buf_free(&b);
}

static void value(struct gen *g, struct ig_json_value s, int depth)
{
	struct ig_json_value v, branch;
	if (depth > MAX_DEPTH || g->out->len > MAX_TEXT) {
		puts_(g, "null");
		return;
	}
	s = deref(g, s);
	if (s.type != IG_JSON_OBJECT) { /* true, or a schema we cannot read: anything */
		string_value(g, (struct ig_json_value){IG_JSON_OBJECT, IG_STR("{}")});
		return;
	}
	if (ig_json_get(s, "const", &v) == 0) {
		put(g, v.raw.ptr, v.raw.len);
		return;
	}
	if (get(s, "enum", IG_JSON_ARRAY, &v)) {
		size_t n = 0, pos = 0;
		struct ig_json_value e;
		while (ig_json_array_next(v, &pos, &e) == 1)
			n++;
		if (n) {
			size_t k = (size_t)ig_rng_below(g->rng, n);
			pos = 0;
			for (size_t i = 0; i <= k; i++)
				ig_json_array_next(v, &pos, &e);
			put(g, e.raw.ptr, e.raw.len);
			return;
		}
	}
	if (!get(s, "type", IG_JSON_STRING, &v) && !get(s, "type", IG_JSON_ARRAY, &v) &&
	    first_branch(s, &branch)) {
		value(g, branch, depth + 1);
		return;
	}
	char type[16];
	type_of(s, type, sizeof type);
	if (strcmp(type, "object") == 0)
		object_value(g, s, depth);
	else if (strcmp(type, "array") == 0)
		array_value(g, s, depth);
	else if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
		number_value(g, s, type[0] == 'i');
	else if (strcmp(type, "boolean") == 0)
		puts_(g, ig_rng_below(g->rng, 2) ? "true" : "false");
	else if (strcmp(type, "null") == 0)
		puts_(g, "null");
	else
		string_value(g, s);
}

int ig_sim_structured_text(enum ig_sim_structured kind, struct ig_str spec, struct ig_rng *rng,
			   struct ig_buf *out)
{
	struct gen g = {.rng = rng, .out = out};
	if (kind == IG_SIM_CHOICE) {
		struct ig_json_value list, v;
		size_t n = 0, pos = 0;
		if (ig_json_parse(spec.ptr, spec.len, &list) < 0 || list.type != IG_JSON_ARRAY)
			return -1;
		while (ig_json_array_next(list, &pos, &v) == 1)
			n++;
		if (n == 0)
			return -1;
		size_t k = (size_t)ig_rng_below(rng, n);
		pos = 0;
		for (size_t i = 0; i <= k; i++)
			ig_json_array_next(list, &pos, &v);
		return v.type == IG_JSON_STRING ? ig_json_string(v, out) : -1;
	}
	if (spec.len == 0) /* json_object: any object */
		g.root = (struct ig_json_value){IG_JSON_OBJECT, IG_STR("{\"type\":\"object\"}")};
	else if (ig_json_parse(spec.ptr, spec.len, &g.root) < 0)
		return -1;
	value(&g, g.root, 0);
	return g.rc;
}
