/* The backward scan behind ig_json_find_usage(). Going backwards through
 * valid JSON from the end of the root object, the string state is known
 * exactly: outside a string every quote opens a string (seen from its
 * end), and inside one the opening quote is the first quote before it
 * that is preceded by an even number of backslashes, because a backslash
 * occurs only inside strings and an escaped quote follows an odd run of
 * them. So no forward scan from an unknown starting state is needed, and
 * the work is proportional to what follows the usage member. */
#include "json/usage.h"

#include <string.h>

#include "json/json.h"

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Number of backslashes right before q, or -1 when the run reaches the
 * start of the text, where what precedes it is unknown. */
static long backslashes_before(const char *text, const char *q)
{
	long n = 0;

	while (q - n > text && q[-1 - n] == '\\')
		n++;
	return q - n == text ? -1 : n;
}

/* The opening quote of the string whose closing quote is at close, or
 * NULL when it is not within text. */
static const char *string_start(const char *text, const char *close)
{
	const char *q = close;

	for (;;) {
		q = memrchr(text, '"', (size_t)(q - text));
		if (!q)
			return NULL;

		long bs = backslashes_before(text, q);

		if (bs < 0)
			return NULL;
		if (bs % 2 == 0)
			return q;
	}
}

/* "usage", raw or written with escapes (at most 6 bytes a character). */
static bool is_usage(const char *open, const char *close)
{
	struct ig_json_value k = {IG_JSON_STRING, {open, (size_t)(close + 1 - open)}};

	if (k.raw.len == 7)
		return memcmp(open + 1, "usage", 5) == 0;
	return k.raw.len <= 2 + 5 * 6 && memchr(open, '\\', k.raw.len) &&
	       ig_json_string_eq(k, "usage");
}

static int64_t count(struct ig_json_value v)
{
	int64_t n;

	return ig_json_int64(v, &n) == 0 && n >= 0 ? n : -1;
}

/* The keys of the counts. Chat and completions name them prompt and
 * completion tokens; the Responses API and Anthropic's Messages input and
 * output tokens. OpenAI and vLLM write prompt_tokens_details; GIE v1.5's
 * parser reads prompt_token_details, so a server that writes that is
 * counted too. */
static const char *const count_keys[] = {
    "prompt_tokens",	     "input_tokens",	     "completion_tokens",    "output_tokens",
    "prompt_tokens_details", "input_tokens_details", "prompt_token_details",
};

enum { N_KEYS = sizeof count_keys / sizeof count_keys[0] };

/* Of the members found for keys [from, to), the one written last: a later
 * duplicate overrides, as in ig_json_get(), whichever name it has. */
static const struct ig_json_value *last_of(const struct ig_json_value *m, size_t from, size_t to)
{
	const struct ig_json_value *last = NULL;

	for (size_t i = from; i < to; i++)
		if (m[i].type != IG_JSON_INVALID && (!last || m[i].raw.ptr > last->raw.ptr))
			last = &m[i];
	return last;
}

/* The member value after the key that ends at p: a usage object, read
 * into *out (0), or anything else (-1). The object is validated and its
 * counts' members found in one pass. */
static int read_usage(const char *p, const char *end, struct ig_usage *out)
{
	struct ig_json_value usage, m[N_KEYS];
	const struct ig_json_value *v;

	if (p == end || *p != '{' ||
	    ig_json_parse_value_members(p, (size_t)(end - p), count_keys, N_KEYS, m, &usage) < 0)
		return -1;
	/* The object must be followed by what may follow a member. */
	p = usage.raw.ptr + usage.raw.len;
	while (p < end && is_ws(*p))
		p++;
	if (p == end || (*p != ',' && *p != '}'))
		return -1;
	if ((v = last_of(m, 0, 2)))
		out->prompt_tokens = count(*v);
	if ((v = last_of(m, 2, 4)))
		out->completion_tokens = count(*v);
	if ((v = last_of(m, 4, N_KEYS))) {
		struct ig_json_value cached;

		out->cached_tokens = -1;
		if (ig_json_get(*v, "cached_tokens", &cached) == 0)
			out->cached_tokens = count(cached);
	}
	return 0;
}

/* Called with a string of the root object, [open, close]: -1 when it is
 * not the key "usage", else 0 and *rc what read_usage() said. */
static int usage_member(const char *open, const char *close, const char *end, struct ig_usage *out,
			int *rc)
{
	const char *p = close + 1;

	if (!is_usage(open, close))
		return -1;
	while (p < end && is_ws(*p))
		p++;
	if (p == end || *p != ':')
		return -1; /* a value "usage", not a key */
	p++;
	while (p < end && is_ws(*p))
		p++;
	*rc = read_usage(p, end, out);
	return 0;
}

static const char *ws_back(const char *start, const char *p)
{
	while (p > start && is_ws(p[-1]))
		p--;
	return p;
}

int ig_json_find_usage(const char *text, size_t len, struct ig_usage *out)
{
	const char *end = text + len, *p = end;
	size_t depth = 1;
	int rc = -1;

	*out = (struct ig_usage){-1, -1, -1};
	if (!text)
		return -1;
	p = ws_back(text, p);
	if (p == text || *--p != '}')
		return -1;
	while (p > text) {
		char c = *--p;

		if (c == '"') {
			/* Outside strings a quote cannot be escaped. */
			long bs = backslashes_before(text, p);
			const char *open = bs < 0 || bs % 2 ? NULL : string_start(text, p);

			if (!open)
				return -1;
			if (depth == 1 && usage_member(open, p, end, out, &rc) == 0)
				break;
			p = open;
		} else if (c == '}' || c == ']') {
			depth++;
		} else if (c == '{' || c == '[') {
			if (--depth == 0)
				return -1;
		}
	}
	if (rc < 0)
		*out = (struct ig_usage){-1, -1, -1};
	return rc;
}

bool ig_json_ends_with_null_usage(const char *text, size_t len)
{
	const char *p;

	if (!text)
		return false;
	p = ws_back(text, text + len);
	if (p == text || *--p != '}')
		return false;
	p = ws_back(text, p);
	if (p - text < 4 || memcmp(p - 4, "null", 4) != 0)
		return false;
	p = ws_back(text, p - 4);
	if (p == text || *--p != ':')
		return false;
	p = ws_back(text, p);
	/* The key's opening quote, unescaped: `"a\\"usage": null` ends a
	 * key of its own. */
	return p - text >= 7 && p[-1] == '"' && string_start(text, p - 1) == p - 7 &&
	       memcmp(p - 7, "\"usage\"", 7) == 0;
}
