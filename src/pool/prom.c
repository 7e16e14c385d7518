/* Prometheus text exposition format 0.0.4, parsed one line at a time.
 *
 * The input comes from model servers we do not control, so every read goes
 * through a cursor that knows where the line ends: nothing here relies on a
 * NUL terminator, and strtod only ever sees a bounded local copy.
 *
 * The scraper parses every endpoint's page many times a second, so the
 * common cases are quick: character classes come from a table, and a
 * value whose digits fit a double exactly with a small power of ten is
 * converted with one multiplication or division (exact, so the same
 * double strtod gives); strtod takes the rest. */
#include "pool/prom.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Longest value or timestamp token we accept. Exposition writers print at
 * most 17 significant digits plus an exponent, so this leaves a wide margin
 * while keeping the strtod copy on the stack. */
#define TOKEN_MAX 64

struct cursor {
	const char *p;
	const char *end;
};

static bool at_end(const struct cursor *c)
{
	return c->p >= c->end;
}

static void skip_blanks(struct cursor *c)
{
	while (!at_end(c) && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* Character classes. */
enum {
	C_ALPHA = 1, /* letters and '_': may start a name */
	C_DIGIT = 2,
	C_COLON = 4,
	C_QUOTED_STOP = 8, /* ends a run of plain label-value bytes: '"' '\\' '\n' */
};

/* Five consecutive characters from c. */
/* clang-format off */
#define FIVE(c, v) [c] = v, [c + 1] = v, [c + 2] = v, [c + 3] = v, [c + 4] = v
static const unsigned char cls[256] = {
    FIVE('0', C_DIGIT), FIVE('5', C_DIGIT),
    FIVE('a', C_ALPHA), FIVE('f', C_ALPHA), FIVE('k', C_ALPHA), FIVE('p', C_ALPHA),
    FIVE('u', C_ALPHA), ['z'] = C_ALPHA,
    FIVE('A', C_ALPHA), FIVE('F', C_ALPHA), FIVE('K', C_ALPHA), FIVE('P', C_ALPHA),
    FIVE('U', C_ALPHA), ['Z'] = C_ALPHA,
    ['_'] = C_ALPHA,    [':'] = C_COLON,
    ['"'] = C_QUOTED_STOP, ['\\'] = C_QUOTED_STOP, ['\n'] = C_QUOTED_STOP,
};
#undef FIVE
/* clang-format on */

static bool is_digit(char ch)
{
	return cls[(unsigned char)ch] & C_DIGIT;
}

/* Metric names allow ':' (recording rules, vLLM's "vllm:" prefix); label
 * names do not. */
static struct ig_str take_name(struct cursor *c, bool colon)
{
	const char *start = c->p;
	unsigned first = C_ALPHA | (colon ? C_COLON : 0), rest = first | C_DIGIT;
	if (at_end(c) || !(cls[(unsigned char)*c->p] & first))
		return (struct ig_str){start, 0};
	c->p++;
	while (!at_end(c) && (cls[(unsigned char)*c->p] & rest))
		c->p++;
	return (struct ig_str){start, (size_t)(c->p - start)};
}

/* Reads a quoted label value starting at the opening quote. The value
 * (still escaped) is returned in *raw. Only the three escapes the format
 * defines are accepted, as the reference Go parser does. */
static int take_quoted(struct cursor *c, struct ig_str *raw)
{
	if (at_end(c) || *c->p != '"')
		return -1;
	c->p++;
	const char *start = c->p;
	while (!at_end(c) && *c->p != '"') {
		if (!(cls[(unsigned char)*c->p] & C_QUOTED_STOP)) {
			c->p++;
			continue;
		}
		if (*c->p == '\\') {
			c->p++;
			if (at_end(c) || (*c->p != '\\' && *c->p != '"' && *c->p != 'n'))
				return -1;
		} else if (*c->p == '\n') {
			return -1;
		}
		c->p++;
	}
	if (at_end(c))
		return -1;
	*raw = (struct ig_str){start, (size_t)(c->p - start)};
	c->p++;
	return 0;
}

/* Reads one `name="value"` pair (with blanks around the parts) and the
 * separator after it. Returns 1 for a pair, 0 at the end of the label text
 * (a closing brace when `brace`, else the end of input), -1 if malformed. */
static int next_pair(struct cursor *c, bool brace, struct ig_str *name, struct ig_str *value)
{
	skip_blanks(c);
	if (brace ? (!at_end(c) && *c->p == '}') : at_end(c))
		return 0;
	*name = take_name(c, false);
	if (name->len == 0)
		return -1;
	skip_blanks(c);
	if (at_end(c) || *c->p != '=')
		return -1;
	c->p++;
	skip_blanks(c);
	if (take_quoted(c, value) < 0)
		return -1;
	skip_blanks(c);
	if (!at_end(c) && *c->p == ',') {
		c->p++;
		return 1;
	}
	/* Without a comma the pair must be the last one. */
	if (brace ? (!at_end(c) && *c->p == '}') : at_end(c))
		return 1;
	return -1;
}

/* Consumes `{...}` and returns the text between the braces. */
static int take_labels(struct cursor *c, struct ig_str *labels)
{
	c->p++; /* '{' */
	const char *start = c->p;
	struct ig_str name, value;
	int rc;
	while ((rc = next_pair(c, true, &name, &value)) == 1)
		;
	if (rc < 0 || at_end(c))
		return -1;
	*labels = (struct ig_str){start, (size_t)(c->p - start)};
	c->p++; /* '}' */
	return 0;
}

static struct ig_str take_token(struct cursor *c)
{
	const char *start = c->p;
	while (!at_end(c) && *c->p != ' ' && *c->p != '\t')
		c->p++;
	return (struct ig_str){start, (size_t)(c->p - start)};
}

/* Go's ParseFloat spellings of the special values, which is what the
 * Prometheus parser accepts: any case, optional sign for infinities. */
static bool special_value(struct ig_str t, double *out)
{
	struct ig_str body = t;
	double sign = 1.0;
	if (body.len && (body.ptr[0] == '+' || body.ptr[0] == '-')) {
		sign = body.ptr[0] == '-' ? -1.0 : 1.0;
		body.ptr++, body.len--;
	}
	if (ig_str_ieq_cstr(body, "inf") || ig_str_ieq_cstr(body, "infinity")) {
		*out = sign * INFINITY;
		return true;
	}
	if (body.len == t.len && ig_str_ieq_cstr(body, "nan")) {
		*out = NAN;
		return true;
	}
	return false;
}

/* Exact powers of ten: every one up to 1e22 is a double. */
static const double pow10_exact[] = {1e0,  1e1,	 1e2,  1e3,  1e4,  1e5,	 1e6,  1e7,
				     1e8,  1e9,	 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The decimal forms strtod takes, [+-]digits[.digits][(e|E)[+-]digits]
 * (at least one digit before the exponent), converted when the digits make
 * an integer below 2^53 and the power of ten is at most 22 either way:
 * then both are exact doubles and one correctly rounded operation gives
 * the correctly rounded value, which is strtod's. 1: converted; 0: a form
 * for strtod; -1: not a decimal number. */
static int fast_value(struct ig_str t, double *out)
{
	const char *p = t.ptr, *end = t.ptr + t.len;
	bool neg = false, exact = true;
	uint64_t m = 0;
	int digits = 0, scale = 0;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	for (; p < end && is_digit(*p); p++, digits++) {
		exact &= digits < 19;
		m = exact ? m * 10 + (uint64_t)(*p - '0') : m;
	}
	if (p < end && *p == '.') {
		for (p++; p < end && is_digit(*p); p++, digits++, scale--) {
			exact &= digits < 19;
			m = exact ? m * 10 + (uint64_t)(*p - '0') : m;
		}
	}
	if (digits == 0)
		return -1;
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool eneg = false;
		int e = 0, edigits = 0;
		if (++p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		for (; p < end && is_digit(*p); p++, edigits++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		if (edigits == 0)
			return -1;
		scale += eneg ? -e : e;
	}
	if (p != end)
		return -1;
	if (!exact || m > ((uint64_t)1 << 53) || scale < -22 || scale > 22)
		return 0;
	double v = (double)m;
	v = scale < 0 ? v / pow10_exact[-scale] : v * pow10_exact[scale];
	*out = neg ? -v : v;
	return 1;
}

/* Decimal floats only: strtod would also take hex floats and "nan(...)",
 * which the format does not allow, so the characters are checked first. */
static int parse_value(struct ig_str t, double *out)
{
	char tmp[TOKEN_MAX + 1];
	if (t.len == 0 || t.len > TOKEN_MAX)
		return -1;
	int fast = fast_value(t, out);
	if (fast != 0)
		return fast > 0 ? 0 : special_value(t, out) ? 0 : -1;
	if (special_value(t, out))
		return 0;
	bool digit = false;
	for (size_t i = 0; i < t.len; i++) {
		char ch = t.ptr[i];
		if (is_digit(ch))
			digit = true;
		else if (ch != '.' && ch != 'e' && ch != 'E' && ch != '+' && ch != '-')
			return -1;
	}
	if (!digit)
		return -1;
	memcpy(tmp, t.ptr, t.len);
	tmp[t.len] = '\0';
	char *endp;
	errno = 0;
	double v = strtod(tmp, &endp);
	/* ERANGE on underflow still yields a usable (tiny or zero) value; on
	 * overflow strtod returns ±HUGE_VAL, which is the infinity Go gives. */
	if (endp != tmp + t.len)
		return -1;
	*out = v;
	return 0;
}

static int parse_timestamp(struct ig_str t, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0;
	size_t i = 0;
	if (t.len && (t.ptr[0] == '-' || t.ptr[0] == '+')) {
		neg = t.ptr[0] == '-';
		i = 1;
	}
	if (i == t.len)
		return -1;
	for (; i < t.len; i++) {
		if (!is_digit(t.ptr[i]))
			return -1;
		uint64_t d = (uint64_t)(t.ptr[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Parses one non-blank, non-comment line into *s. */
static int parse_sample(struct cursor *c, struct ig_prom_sample *s)
{
	*s = (struct ig_prom_sample){0};
	s->name = take_name(c, true);
	if (s->name.len == 0)
		return -1;
	skip_blanks(c);
	s->labels = (struct ig_str){c->p, 0};
	if (!at_end(c) && *c->p == '{') {
		if (take_labels(c, &s->labels) < 0)
			return -1;
		skip_blanks(c);
	} else if (c->p == s->name.ptr + s->name.len) {
		return -1; /* the name must be followed by a blank or a brace */
	}
	if (parse_value(take_token(c), &s->value) < 0)
		return -1;
	skip_blanks(c);
	if (at_end(c))
		return 0;
	if (parse_timestamp(take_token(c), &s->timestamp_ms) < 0)
		return -1;
	s->has_timestamp = true;
	skip_blanks(c);
	return at_end(c) ? 0 : -1;
}

int ig_prom_parse(const char *text, size_t len, ig_prom_cb cb, void *ctx, size_t *err_line)
{
	const char *p = text, *end = text + len;
	size_t line = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		struct cursor c = {p, eol};
		line++;
		p = nl ? nl + 1 : end;
		if (c.end > c.p && c.end[-1] == '\r')
			c.end--;
		skip_blanks(&c);
		if (at_end(&c) || *c.p == '#')
			continue;
		struct ig_prom_sample s;
		if (parse_sample(&c, &s) < 0) {
			if (err_line)
				*err_line = line;
			return -1;
		}
		int rc = cb(ctx, &s);
		if (rc)
			return rc;
	}
	return 0;
}

static int unescape_into(struct ig_str raw, struct ig_buf *out)
{
	size_t i = 0;
	while (i < raw.len) {
		size_t j = i;
		while (j < raw.len && raw.ptr[j] != '\\')
			j++;
		int rc = ig_buf_append(out, raw.ptr + i, j - i);
		if (rc < 0)
			return rc;
		if (j >= raw.len)
			break;
		/* take_quoted guarantees a valid escape follows every backslash. */
		char ch = raw.ptr[j + 1] == 'n' ? '\n' : raw.ptr[j + 1];
		rc = ig_buf_append(out, &ch, 1);
		if (rc < 0)
			return rc;
		i = j + 2;
	}
	return 0;
}

int ig_prom_label_raw(struct ig_str labels, const char *name, struct ig_str *raw)
{
	struct cursor c = {labels.ptr, labels.ptr + labels.len};
	struct ig_str n;
	int rc;
	while ((rc = next_pair(&c, false, &n, raw)) == 1)
		if (ig_str_eq_cstr(n, name))
			return 1;
	return rc;
}

int ig_prom_label(struct ig_str labels, const char *name, struct ig_buf *out)
{
	struct ig_str v;
	int rc = ig_prom_label_raw(labels, name, &v);
	if (rc != 1)
		return rc;
	rc = unescape_into(v, out);
	return rc < 0 ? rc : 1;
}
