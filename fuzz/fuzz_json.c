/* libFuzzer target for the JSON reader. Valid documents are walked
 * completely (iteration, lookups, string decoding, numbers, and a
 * write-then-reparse round trip of every string); any input is also
 * handed to the lookup functions as if it were a value, since they must
 * stay in bounds even then, and the one-pass member scan is checked
 * against parse + get. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/canon.h"
#include "json/json.h"
#include "json/stream.h"

static void check_in(struct ig_json_value v, struct ig_json_value parent)
{
	if (v.raw.len == 0 || v.raw.ptr < parent.raw.ptr ||
	    v.raw.ptr + v.raw.len > parent.raw.ptr + parent.raw.len)
		abort();
}

/* Decodes a string, writes it back as JSON and checks the copy parses
 * and decodes to the same bytes. */
static void round_trip(struct ig_json_value s)
{
	struct ig_buf a, b, c;
	struct ig_json_value v;

	ig_buf_init(&a, 0);
	ig_buf_init(&b, 0);
	ig_buf_init(&c, 0);
	if (ig_json_string(s, &a) != 0)
		abort();
	if (ig_json_write_string(&b, a.ptr, a.len) != 0 || ig_json_parse(b.ptr, b.len, &v) != 0 ||
	    v.type != IG_JSON_STRING || ig_json_string(v, &c) != 0)
		abort();
	/* The writer replaces malformed UTF-8, but decoded JSON strings are
	 * always well-formed, so the copy is exact. */
	if (a.len != c.len || (a.len && memcmp(a.ptr, c.ptr, a.len) != 0))
		abort();
	ig_buf_cstr(&a);
	if (a.ptr && strlen(a.ptr) == a.len && !ig_json_string_eq(s, a.ptr))
		abort();
	ig_buf_free(&a);
	ig_buf_free(&b);
	ig_buf_free(&c);
}

static void walk(struct ig_json_value v)
{
	struct ig_json_value k, e, got;
	size_t pos = 0;
	int64_t i;
	double d;

	switch (v.type) {
	case IG_JSON_OBJECT:
		while (ig_json_object_next(v, &pos, &k, &e)) {
			check_in(k, v);
			check_in(e, v);
			if (k.type != IG_JSON_STRING)
				abort();
			round_trip(k);
			walk(e);
			/* A lookup by a key without NUL finds some member with that
			 * key; the last one, which may come later. */
			struct ig_buf name;
			ig_buf_init(&name, 0);
			if (ig_json_string(k, &name) == 0 && ig_buf_cstr(&name) &&
			    strlen(name.ptr) == name.len) {
				if (ig_json_get(v, name.ptr, &got) != 0 || got.raw.ptr < e.raw.ptr)
					abort();
			}
			ig_buf_free(&name);
		}
		break;
	case IG_JSON_ARRAY:
		while (ig_json_array_next(v, &pos, &e)) {
			check_in(e, v);
			walk(e);
		}
		break;
	case IG_JSON_STRING:
		round_trip(v);
		break;
	case IG_JSON_NUMBER:
		if (ig_json_int64(v, &i) == 0 && ig_json_double(v, &d) == 0 &&
		    (d < -9.3e18 || d > 9.3e18))
			abort();
		(void)ig_json_double(v, &d);
		break;
	case IG_JSON_BOOL:
		if (ig_json_bool(v) < 0)
			abort();
		break;
	case IG_JSON_NULL:
		break;
	default:
		abort();
	}
}

static void poke(const char *buf, size_t len)
{
	static const enum ig_json_type types[] = {IG_JSON_OBJECT, IG_JSON_ARRAY, IG_JSON_STRING,
						  IG_JSON_NUMBER, IG_JSON_BOOL};
	struct ig_buf b;

	ig_buf_init(&b, 1 << 16);
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		struct ig_json_value v = {types[t], {buf, len}}, k, e;
		size_t pos = 0;
		int64_t i;
		double d;

		(void)ig_json_get(v, "model", &e);
		while (ig_json_object_next(v, &pos, &k, &e)) {
			check_in(k, v);
			check_in(e, v);
		}
		pos = 0;
		while (ig_json_array_next(v, &pos, &e))
			check_in(e, v);
		ig_buf_reset(&b);
		(void)ig_json_string(v, &b);
		(void)ig_json_string_eq(v, "model");
		(void)ig_json_int64(v, &i);
		(void)ig_json_double(v, &d);
		(void)ig_json_bool(v);
	}
	ig_buf_free(&b);
}

/* The incremental parser (json/stream.h) fed the input in pieces of sizes
 * drawn from the input itself, each piece a fresh exact-size copy of what
 * has arrived (so that reading past it is caught), must end where
 * ig_json_parse_members() does: same verdict, same root, same members. */
static void check_stream(const char *buf, size_t len, const char *const *keys, size_t nkeys,
			 int rc, struct ig_json_value root, const struct ig_json_value *out)
{
	struct ig_json_stream s;
	struct ig_json_value out2[16], root2;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
	ig_json_stream_init(&s, keys, nkeys);
	for (size_t at = 0; at < len;) {
		h = h * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned r = (unsigned)(h >> 33);
		at += r % 4 == 0 ? 1 : 1 + r % 61;
		if (at > len)
			at = len;
		char *piece = malloc(at);
		if (!piece)
			abort();
		memcpy(piece, buf, at);
		int frc = ig_json_stream_feed(&s, piece, at);
		free(piece);
		/* Once a prefix is refused, so is the whole document. */
		if (frc < 0 && rc == 0)
			abort();
	}
	char *whole = malloc(len ? len : 1);
	if (!whole)
		abort();
	memcpy(whole, buf, len);
	int rc2 = ig_json_stream_finish(&s, whole, len, out2, &root2);
	if (rc2 != rc)
		abort();
	if (rc == 0 && (root2.type != root.type || root2.raw.ptr - whole != root.raw.ptr - buf ||
			root2.raw.len != root.raw.len))
		abort();
	for (size_t i = 0; i < nkeys; i++) {
		if (out2[i].type != out[i].type || out2[i].raw.len != out[i].raw.len)
			abort();
		if (out[i].raw.ptr && out2[i].raw.ptr - whole != out[i].raw.ptr - buf)
			abort();
	}
	free(whole);
}

/* ig_json_parse_members() must accept what ig_json_parse() accepts and
 * find, for each key, exactly the span ig_json_get() finds. Keys: the
 * gateway's, and the decoded keys of the root's own first members (so that
 * escaped and odd keys are asked for too). */
static void check_members(const char *buf, size_t len)
{
	static const char *const gw[] = {"model",	 "prompt", "messages",	    "input",
					 "instructions", "stream", "stream_options"};
	const char *keys[16];
	struct ig_buf names[8];
	struct ig_json_value root, root2, out[16], k, v, got;
	size_t nkeys = 0, nnames = 0, pos = 0;

	for (size_t i = 0; i < sizeof gw / sizeof gw[0]; i++)
		keys[nkeys++] = gw[i];

	int rc = ig_json_parse(buf, len, &root);

	while (rc == 0 && nnames < 8 && ig_json_object_next(root, &pos, &k, &v)) {
		ig_buf_init(&names[nnames], 0);
		if (ig_json_string(k, &names[nnames]) == 0 && ig_buf_cstr(&names[nnames]) &&
		    strlen(names[nnames].ptr) == names[nnames].len)
			keys[nkeys++] = names[nnames].ptr;
		nnames++;
	}
	if (ig_json_parse_members(buf, len, keys, nkeys, out, &root2) != rc)
		abort();
	if (rc == 0 && (root.type != root2.type || root.raw.ptr != root2.raw.ptr ||
			root.raw.len != root2.raw.len))
		abort();
	for (size_t i = 0; i < nkeys; i++) {
		if (rc < 0 || ig_json_get(root, keys[i], &got) < 0) {
			if (out[i].type != IG_JSON_INVALID || out[i].raw.ptr)
				abort();
		} else if (out[i].type != got.type || out[i].raw.ptr != got.raw.ptr ||
			   out[i].raw.len != got.raw.len) {
			abort();
		}
	}
	check_stream(buf, len, keys, nkeys, rc, root2, out);
	for (size_t i = 0; i < nnames; i++)
		ig_buf_free(&names[i]);
}

/* The canonical form (json/canon.h) of a valid document is itself valid
 * JSON, canonical again unchanged, and a cut form is a prefix of the
 * whole one. */
static void check_canonical(struct ig_json_value root)
{
	size_t cap = root.raw.len * 6 + 16; /* \u00XX per byte at worst */
	char *a = malloc(cap), *b = malloc(cap);
	if (!a || !b)
		abort();
	size_t na = ig_json_canonical(root, a, cap);
	if (na >= cap)
		abort(); /* the bound above is not enough: a bug */
	struct ig_json_value again;
	if (ig_json_parse(a, na, &again) != 0)
		abort();
	size_t nb = ig_json_canonical(again, b, cap);
	if (nb != na || memcmp(a, b, na) != 0)
		abort();
	size_t cut = na / 2;
	size_t nc = ig_json_canonical(root, b, cut);
	if (nc != cut || memcmp(a, b, cut) != 0)
		abort();
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy so that ASan catches over-reads even when the
	 * fuzzer's own buffer has slack. */
	char *buf = malloc(size ? size : 1);
	struct ig_json_value root;

	memcpy(buf, data, size);
	if (ig_json_parse(buf, size, &root) == 0) {
		walk(root);
		check_canonical(root);
	}
	poke(buf, size);
	check_members(buf, size);
	free(buf);
	return 0;
}
