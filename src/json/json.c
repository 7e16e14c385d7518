/* A validating JSON reader that builds no tree. ig_json_parse() checks the
 * whole document once, strictly (RFC 8259, UTF-8 in strings, a nesting
 * limit); after that, lookups and iteration re-scan the original text,
 * skipping values by bracket counting. Those scanners are written so that
 * they stay inside the value's span even when handed garbage, because a
 * value can be built by hand and a bug elsewhere must not become an
 * over-read here. */
#include "json/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/scan.h"

/* ---- validation ---------------------------------------------------------- */

struct parser {
	const char *p;
	const char *end;
};

static inline void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && is_ws(*ps->p))
		ps->p++;
}

static int parse_string(struct parser *ps)
{
	const char *p = ps->p + 1, *end = ps->end;

	for (;;) {
		p = skip_plain(p, end);
		if (p == end)
			return -1;

		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			ps->p = p + 1;
			return 0;
		}
		if (c == '\\') {
			if (end - p < 2)
				return -1;
			if (p[1] == 'u') {
				if (read_u_escape(p, end, &p) < 0)
					return -1;
				continue;
			}
			if (!simple_escape(p[1]))
				return -1;
			p += 2;
			continue;
		}
		if (c < 0x20)
			return -1;

		size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);

		if (n == 0)
			return -1;
		p += n;
	}
}

static const char *skip_digits(const char *p, const char *end)
{
	while (p < end && is_digit(*p))
		p++;
	return p;
}

/* The number grammar of RFC 8259 §6. Returns the end, or NULL. */
static const char *scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p == end || !is_digit(*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		p = skip_digits(p, end);
	if (p < end && *p == '.') {
		p++;
		if (p == end || !is_digit(*p))
			return NULL;
		p = skip_digits(p, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p))
			return NULL;
		p = skip_digits(p, end);
	}
	return p;
}

static int parse_literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return -1;
	ps->p += n;
	return 0;
}

static int parse_value(struct parser *ps, int depth);

/* Arrays and objects share one loop: `close` is the closing bracket and
 * objects additionally read a key and a colon before each value. */
static int parse_container(struct parser *ps, int depth, char close)
{
	if (depth > IG_JSON_MAX_DEPTH)
		return -1;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (ps->p == ps->end || *ps->p != '"' || parse_string(ps) < 0)
				return -1;
			skip_ws(ps);
			if (ps->p == ps->end || *ps->p != ':')
				return -1;
			ps->p++;
			skip_ws(ps);
		}
		if (parse_value(ps, depth) < 0)
			return -1;
		skip_ws(ps);
		if (ps->p == ps->end)
			return -1;
		if (*ps->p == close) {
			ps->p++;
			return 0;
		}
		if (*ps->p != ',')
			return -1;
		ps->p++;
		skip_ws(ps);
	}
}

static int parse_value(struct parser *ps, int depth)
{
	if (ps->p == ps->end)
		return -1;
	switch (*ps->p) {
	case '{':
		return parse_container(ps, depth + 1, '}');
	case '[':
		return parse_container(ps, depth + 1, ']');
	case '"':
		return parse_string(ps);
	case 't':
		return parse_literal(ps, "true");
	case 'f':
		return parse_literal(ps, "false");
	case 'n':
		return parse_literal(ps, "null");
	default:
		ps->p = scan_number(ps->p, ps->end);
		return ps->p ? 0 : -1;
	}
}

int ig_json_parse(const char *text, size_t len, struct ig_json_value *root)
{
	if (!text)
		return -1;

	struct parser ps = {text, text + len};

	skip_ws(&ps);

	const char *start = ps.p;

	if (parse_value(&ps, 0) < 0)
		return -1;

	const char *stop = ps.p;

	skip_ws(&ps);
	if (ps.p != ps.end)
		return -1;
	root->type = type_of(*start);
	root->raw = (struct ig_str){start, (size_t)(stop - start)};
	return 0;
}

int ig_json_parse_value(const char *text, size_t len, struct ig_json_value *v)
{
	if (!text)
		return -1;

	struct parser ps = {text, text + len};

	skip_ws(&ps);

	const char *start = ps.p;

	if (parse_value(&ps, 0) < 0)
		return -1;
	v->type = type_of(*start);
	v->raw = (struct ig_str){start, (size_t)(ps.p - start)};
	return 0;
}

static bool string_eq_n(struct ig_json_value v, const char *s, size_t len);

/* What ig_json_parse_members() is looking for. */
struct wanted {
	const char *const *keys;
	size_t nkeys;
	struct ig_json_value *out;
};

/* Keys without a backslash, nearly all of them, are compared as raw
 * bytes; the others are decoded (json/scan.h). */
static inline bool key_eq(const char *raw, size_t rawlen, bool escaped, const char *want)
{
	/* Most keys passed over differ in their first byte. */
	if (!escaped && rawlen > 2 && raw[1] != want[0])
		return false;
	size_t n = strlen(want);
	return escaped ? string_eq_n((struct ig_json_value){IG_JSON_STRING, {raw, rawlen}}, want, n)
		       : n == rawlen - 2 && memcmp(raw + 1, want, n) == 0;
}

bool ig_json_key_eq(const char *raw, size_t rawlen, bool escaped, const char *want)
{
	return key_eq(raw, rawlen, escaped, want);
}

/* Records value v under every wanted key that equals the key whose raw
 * span (quotes included) is [k, kend). */
static void record_member(const char *k, const char *kend, struct ig_json_value v,
			  const struct wanted *m)
{
	size_t rawlen = (size_t)(kend - k);
	bool escaped = memchr(k + 1, '\\', rawlen - 2) != NULL;

	for (size_t i = 0; i < m->nkeys; i++)
		if (key_eq(k, rawlen, escaped, m->keys[i]))
			m->out[i] = v;
}

/* parse_container() for the root object, remembering the members asked
 * for. Values are validated by the same parse_value() at the same depth,
 * so the document is accepted exactly when ig_json_parse() accepts it. */
static int parse_root_members(struct parser *ps, const struct wanted *m)
{
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		return 0;
	}
	for (;;) {
		const char *k = ps->p;

		if (ps->p == ps->end || *ps->p != '"' || parse_string(ps) < 0)
			return -1;

		const char *kend = ps->p;

		skip_ws(ps);
		if (ps->p == ps->end || *ps->p != ':')
			return -1;
		ps->p++;
		skip_ws(ps);

		const char *v = ps->p;

		if (parse_value(ps, 1) < 0)
			return -1;
		record_member(k, kend,
			      (struct ig_json_value){type_of(*v), {v, (size_t)(ps->p - v)}}, m);
		skip_ws(ps);
		if (ps->p == ps->end)
			return -1;
		if (*ps->p == '}') {
			ps->p++;
			return 0;
		}
		if (*ps->p != ',')
			return -1;
		ps->p++;
		skip_ws(ps);
	}
}

/* The value that begins text, its members recorded; `whole`: nothing but
 * whitespace may follow it. */
static int parse_members(const char *text, size_t len, const struct wanted *m, bool whole,
			 struct ig_json_value *v)
{
	for (size_t i = 0; i < m->nkeys; i++)
		m->out[i] = (struct ig_json_value){IG_JSON_INVALID, {NULL, 0}};
	if (!text)
		return -1;

	struct parser ps = {text, text + len};

	skip_ws(&ps);

	const char *start = ps.p;
	int rc = ps.p < ps.end && *ps.p == '{' ? parse_root_members(&ps, m) : parse_value(&ps, 0);
	const char *stop = ps.p;

	if (rc == 0 && whole)
		skip_ws(&ps);
	if (rc < 0 || (whole && ps.p != ps.end)) {
		for (size_t i = 0; i < m->nkeys; i++)
			m->out[i] = (struct ig_json_value){IG_JSON_INVALID, {NULL, 0}};
		return -1;
	}
	v->type = type_of(*start);
	v->raw = (struct ig_str){start, (size_t)(stop - start)};
	return 0;
}

int ig_json_parse_members(const char *text, size_t len, const char *const *keys, size_t nkeys,
			  struct ig_json_value *out, struct ig_json_value *root)
{
	const struct wanted m = {keys, nkeys, out};

	return parse_members(text, len, &m, true, root);
}

int ig_json_parse_value_members(const char *text, size_t len, const char *const *keys, size_t nkeys,
				struct ig_json_value *out, struct ig_json_value *v)
{
	const struct wanted m = {keys, nkeys, out};

	return parse_members(text, len, &m, false, v);
}

/* ---- bounds-safe skipping ------------------------------------------------ */

/* Past the closing quote of the string whose opening quote is at p, or
 * NULL. A quote is closing when an even number of backslashes precede it
 * inside the string. */
static const char *skip_string(const char *p, const char *end)
{
	const char *start = ++p;

	while (p < end) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			return NULL;

		size_t bs = 0;

		while (q - bs > start && q[-1 - (ptrdiff_t)bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

/* Past the container whose opening bracket is at p, by counting brackets
 * outside strings. Valid input nests properly, so the kind of bracket
 * need not be checked. */
static const char *skip_container(const char *p, const char *end)
{
	size_t depth = 0;

	while (p < end) {
		char c = *p;

		if (c == '"') {
			p = skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return p + 1;
		}
		p++;
	}
	return NULL;
}

/* Past the value starting at p, or NULL; *type gets its type. */
static const char *skip_value(const char *p, const char *end, enum ig_json_type *type)
{
	if (p >= end)
		return NULL;
	*type = type_of(*p);
	switch (*type) {
	case IG_JSON_INVALID:
		return NULL;
	case IG_JSON_STRING:
		return skip_string(p, end);
	case IG_JSON_OBJECT:
	case IG_JSON_ARRAY:
		return skip_container(p, end);
	default:
		/* Scalars end at a delimiter; their exact grammar is checked by
		 * whoever reads them. */
		while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}' && *p != ':')
			p++;
		return p;
	}
}

/* ---- iteration and lookup -------------------------------------------------- */

/* Moves to the next element of a container: past the opening bracket on
 * the first call, past a comma afterwards. Returns the offset of the
 * element, or 0 when the container is done (or malformed). */
static size_t next_element(struct ig_json_value c, size_t pos, char open, char close)
{
	const char *p = c.raw.ptr, *end = c.raw.ptr + c.raw.len;

	if (c.raw.len < 2 || p[0] != open || pos >= c.raw.len)
		return 0;
	if (pos == 0) {
		p++;
	} else {
		p += pos;
		while (p < end && is_ws(*p))
			p++;
		if (p == end || *p != ',')
			return 0;
		p++;
	}
	while (p < end && is_ws(*p))
		p++;
	if (p == end || *p == close)
		return 0;
	return (size_t)(p - c.raw.ptr);
}

int ig_json_array_next(struct ig_json_value arr, size_t *pos, struct ig_json_value *elem)
{
	size_t at = next_element(arr, *pos, '[', ']');

	if (at == 0) {
		*pos = arr.raw.len;
		return 0;
	}

	const char *p = arr.raw.ptr + at, *end = arr.raw.ptr + arr.raw.len;
	const char *q = skip_value(p, end, &elem->type);

	if (!q) {
		*pos = arr.raw.len;
		return 0;
	}
	elem->raw = (struct ig_str){p, (size_t)(q - p)};
	*pos = (size_t)(q - arr.raw.ptr);
	return 1;
}

int ig_json_object_next(struct ig_json_value obj, size_t *pos, struct ig_json_value *key,
			struct ig_json_value *val)
{
	size_t at = next_element(obj, *pos, '{', '}');

	*pos = obj.raw.len; /* until a member is found */
	if (at == 0)
		return 0;

	const char *p = obj.raw.ptr + at, *end = obj.raw.ptr + obj.raw.len;
	const char *q = *p == '"' ? skip_string(p, end) : NULL;

	if (!q)
		return 0;
	key->type = IG_JSON_STRING;
	key->raw = (struct ig_str){p, (size_t)(q - p)};

	p = q;
	while (p < end && is_ws(*p))
		p++;
	if (p == end || *p != ':')
		return 0;
	p++;
	while (p < end && is_ws(*p))
		p++;
	q = skip_value(p, end, &val->type);
	if (!q)
		return 0;
	val->raw = (struct ig_str){p, (size_t)(q - p)};
	*pos = (size_t)(q - obj.raw.ptr);
	return 1;
}

/* ---- string decoding --------------------------------------------------------- */

/* Receives decoded string content piece by piece. Returns 0 to go on. */
typedef int (*sink_fn)(void *ctx, const char *p, size_t n);

size_t ig_utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Feeds the decoded content of string value v to `sink`: unescaped runs
 * as they are, each escape as its UTF-8 bytes. */
static int decode_string(struct ig_json_value v, sink_fn sink, void *ctx)
{
	if (v.type != IG_JSON_STRING || v.raw.len < 2 || v.raw.ptr[0] != '"' ||
	    v.raw.ptr[v.raw.len - 1] != '"')
		return -1;

	const char *p = v.raw.ptr + 1, *end = v.raw.ptr + v.raw.len - 1;

	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		const char *run_end = bs ? bs : end;

		if (run_end > p && sink(ctx, p, (size_t)(run_end - p)))
			return -1;
		if (!bs)
			break;
		if (end - bs < 2)
			return -1;

		char tmp[4];
		size_t n = 1;

		if (bs[1] == 'u') {
			long cp = read_u_escape(bs, end, &p);
			if (cp < 0)
				return -1;
			n = ig_utf8_encode((uint32_t)cp, tmp);
		} else {
			tmp[0] = simple_escape(bs[1]);
			if (!tmp[0])
				return -1;
			p = bs + 2;
		}
		if (sink(ctx, tmp, n))
			return -1;
	}
	return 0;
}

static int buf_sink(void *ctx, const char *p, size_t n)
{
	return ig_buf_append(ctx, p, n) < 0;
}

int ig_json_string(struct ig_json_value v, struct ig_buf *out)
{
	size_t len = out->len;

	if (decode_string(v, buf_sink, out) < 0) {
		out->len = len; /* do not leave half a string behind */
		return -1;
	}
	return 0;
}

struct eq_ctx {
	const char *s;
	size_t left;
};

static int eq_sink(void *ctx, const char *p, size_t n)
{
	struct eq_ctx *e = ctx;

	if (n > e->left || memcmp(e->s, p, n) != 0)
		return 1;
	e->s += n;
	e->left -= n;
	return 0;
}

static bool string_eq_n(struct ig_json_value v, const char *s, size_t len)
{
	/* Most keys have no escapes: compare the raw bytes directly. */
	if (v.raw.len == len + 2 && v.type == IG_JSON_STRING && v.raw.ptr[0] == '"' &&
	    memcmp(v.raw.ptr + 1, s, len) == 0 && !memchr(s, '\\', len) &&
	    v.raw.ptr[len + 1] == '"')
		return true;
	/* Without a backslash the content is its own decoding, so a key of
	 * another length cannot match; this spares lookups the decoder for
	 * every key they pass over. */
	if (v.type == IG_JSON_STRING && v.raw.len >= 2 && v.raw.ptr[0] == '"' &&
	    v.raw.ptr[v.raw.len - 1] == '"' && !memchr(v.raw.ptr + 1, '\\', v.raw.len - 2))
		return v.raw.len == len + 2 && memcmp(v.raw.ptr + 1, s, len) == 0;

	struct eq_ctx e = {s, len};

	return decode_string(v, eq_sink, &e) == 0 && e.left == 0;
}

bool ig_json_string_eq_n(struct ig_json_value v, const char *s, size_t len)
{
	return string_eq_n(v, s, len);
}

int ig_json_get(struct ig_json_value obj, const char *key, struct ig_json_value *out)
{
	struct ig_json_value k, v;
	size_t pos = 0, klen = strlen(key);
	int found = -1;

	if (obj.type != IG_JSON_OBJECT)
		return -1;
	while (ig_json_object_next(obj, &pos, &k, &v)) {
		if (string_eq_n(k, key, klen)) {
			*out = v;
			found = 0;
		}
	}
	return found;
}

/* ---- numbers -------------------------------------------------------------------- */

/* The parts of a number literal: integer digits, fraction digits and the
 * decimal exponent, clamped so that absurd exponents cannot overflow. */
struct number {
	bool neg;
	const char *digits; /* integer part */
	size_t int_len;
	const char *frac; /* fraction digits */
	size_t frac_len;
	long exp;
};

#define EXP_CLAMP 100000000L

static int split_number(struct ig_json_value v, struct number *n)
{
	if (v.type != IG_JSON_NUMBER || v.raw.len == 0)
		return -1; /* (and a null ptr is never offset, even by 0) */
	const char *p = v.raw.ptr, *end = v.raw.ptr + v.raw.len;
	if (scan_number(p, end) != end)
		return -1;
	memset(n, 0, sizeof(*n));
	n->neg = *p == '-';
	p += n->neg;
	n->digits = p;
	p = skip_digits(p, end);
	n->int_len = (size_t)(p - n->digits);
	if (p < end && *p == '.') {
		n->frac = ++p;
		p = skip_digits(p, end);
		n->frac_len = (size_t)(p - n->frac);
	}
	if (p < end) {
		bool eneg = false;

		p++;
		if (*p == '+' || *p == '-')
			eneg = *p++ == '-';
		for (; p < end; p++)
			if (n->exp < EXP_CLAMP)
				n->exp = n->exp * 10 + (*p - '0');
		if (eneg)
			n->exp = -n->exp;
	}
	return 0;
}

/* Digit i of the number's integer and fraction digits taken together. */
static int digit_at(const struct number *n, size_t i)
{
	return (i < n->int_len ? n->digits[i] : n->frac[i - n->int_len]) - '0';
}

/* The counts servers write (token counts, max_tokens): up to 18 plain
 * digits, no sign, fraction or exponent, fit an int64 as they are. */
static bool small_natural(struct ig_json_value v, int64_t *out)
{
	const char *p = v.raw.ptr;
	size_t len = v.raw.len;
	int64_t n = 0;

	if (v.type != IG_JSON_NUMBER || len == 0 || len > 18 || (len > 1 && *p == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(p[i]))
			return false;
		n = n * 10 + (p[i] - '0');
	}
	*out = n;
	return true;
}

int ig_json_int64(struct ig_json_value v, int64_t *out)
{
	struct number n;

	if (small_natural(v, out))
		return 0;
	if (split_number(v, &n) < 0)
		return -1;

	size_t total = n.int_len + n.frac_len, first = 0, last = total;

	while (first < total && digit_at(&n, first) == 0)
		first++;
	if (first == total) {
		*out = 0;
		return 0;
	}
	while (digit_at(&n, last - 1) == 0)
		last--;

	/* The value is digits[first..last) * 10^scale. */
	long long scale = n.exp - (long long)n.frac_len + (long long)(total - last);
	size_t sig = last - first;

	if (scale < 0 || (long long)sig + scale > 19)
		return -1;

	uint64_t mag = 0;
	uint64_t limit = n.neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

	for (size_t i = first; i < last; i++)
		mag = mag * 10 + (uint64_t)digit_at(&n, i);
	for (long long i = 0; i < scale; i++) {
		if (mag > UINT64_MAX / 10)
			return -1;
		mag *= 10;
	}
	if (mag > limit)
		return -1;
	*out = n.neg ? (int64_t)(0 - mag) : (int64_t)mag;
	return 0;
}

int ig_json_double(struct ig_json_value v, double *out)
{
	struct number n;
	char small[128];
	char *copy = small;

	if (split_number(v, &n) < 0)
		return -1;
	/* strtod needs a terminated string. Long literals (rare, but valid)
	 * get a heap copy rather than being cut. The gateway never calls
	 * setlocale(), so the decimal point is '.'. */
	if (v.raw.len >= sizeof(small)) {
		copy = malloc(v.raw.len + 1);
		if (!copy)
			return -1;
	}
	memcpy(copy, v.raw.ptr, v.raw.len);
	copy[v.raw.len] = '\0';

	double d = strtod(copy, NULL);

	if (copy != small)
		free(copy);
	if (isinf(d))
		return -1;
	*out = d;
	return 0;
}

int ig_json_bool(struct ig_json_value v)
{
	if (v.type != IG_JSON_BOOL)
		return -1;
	if (v.raw.len == 4 && memcmp(v.raw.ptr, "true", 4) == 0)
		return 1;
	if (v.raw.len == 5 && memcmp(v.raw.ptr, "false", 5) == 0)
		return 0;
	return -1;
}

/* ---- writing -------------------------------------------------------------------- */

/* Escapes what JSON requires (quote, backslash, control bytes). Bytes
 * that are not well-formed UTF-8 become U+FFFD so that the output is
 * always a valid JSON string, whatever the input. */
int ig_json_write_string(struct ig_buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = len ? p + len : p;
	int rc = ig_buf_append(out, "\"", 1);

	while (rc == 0 && p < end) {
		const unsigned char *run = p;

		while (p < end && is_plain(*p))
			p++;
		if (p > run)
			rc = ig_buf_append(out, run, (size_t)(p - run));
		if (rc || p == end)
			break;

		unsigned char c = *p;

		if (c == '"' || c == '\\' || c < 0x20) {
			char e = c == '"'    ? '"'
				 : c == '\\' ? '\\'
				 : c == '\n' ? 'n'
				 : c == '\r' ? 'r'
				 : c == '\t' ? 't'
				 : c == '\b' ? 'b'
				 : c == '\f' ? 'f'
					     : 0;
			if (e)
				rc = ig_buf_printf(out, "\\%c", e);
			else
				rc = ig_buf_printf(out, "\\u%04x", c);
			p++;
			continue;
		}

		size_t n = utf8_len(p, end);

		if (n == 0) {
			rc = ig_buf_append(out, "\\ufffd", 6);
			p++;
		} else {
			rc = ig_buf_append(out, p, n);
			p += n;
		}
	}
	if (rc == 0)
		rc = ig_buf_append(out, "\"", 1);
	return rc;
}
