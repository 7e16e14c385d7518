/* Incremental validation (see stream.h). The parser of json.c recurses; this
 * one keeps what the recursion would hold in the stream: the kind of each
 * open container (one bit per level, up to IG_JSON_MAX_DEPTH), what may
 * come next (mode), and the token being read. Of a token only strings and
 * numbers can be long; they are read as far as the text goes. Everything
 * else that the end of the text cuts (an escape, a UTF-8 sequence, a
 * literal, which are at most 12 bytes) is left unread until it has all
 * arrived, or the document ends. */
#include "json/stream.h"

#include <stdbool.h>
#include <string.h>

#include "json/scan.h"

enum mode {
	M_START,       /* the root value */
	M_VALUE,       /* a value: after ':', or ',' in an array */
	M_FIRST_VALUE, /* after '[': a value or ']' */
	M_FIRST_KEY,   /* after '{': a key or '}' */
	M_KEY,	       /* after ',' in an object */
	M_COLON,       /* after a key */
	M_NEXT,	       /* after a value in a container: ',' or its closing bracket */
	M_END,	       /* after the root value: whitespace only */
};

enum { T_NONE, T_STRING, T_NUMBER };

/* Number states (RFC 8259 §6); the accepting ones may end the number. */
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static bool accepting(uint8_t n)
{
	return n == N_ZERO || n == N_INT || n == N_FRAC || n == N_EXP;
}

void ig_json_stream_init(struct ig_json_stream *s, const char *const *keys, size_t nkeys)
{
	memset(s, 0, sizeof(*s));
	s->keys = keys;
	s->nkeys = nkeys < IG_JSON_STREAM_MAX_KEYS ? nkeys : IG_JSON_STREAM_MAX_KEYS;
	s->mode = M_START;
}

static bool is_object(const struct ig_json_stream *s, unsigned depth)
{
	unsigned d = depth - 1;
	return (s->kinds[d / 64] >> (d % 64)) & 1;
}

/* A member of the root object ended at `end`: recorded under every wanted
 * key equal to its key, compared after unescaping; the last one wins. */
static void record(struct ig_json_stream *s, const char *text, size_t end)
{
	const char *k = text + s->key_start;
	size_t rawlen = s->key_end - s->key_start;
	bool escaped = memchr(k + 1, '\\', rawlen - 2) != NULL;
	for (size_t i = 0; i < s->nkeys; i++)
		if (ig_json_key_eq(k, rawlen, escaped, s->keys[i]))
			s->found[i] = (struct ig_json_stream_member){
			    s->val_start, end - s->val_start, type_of(text[s->val_start])};
}

/* A value ended at offset `end` (a scalar, or a container just closed). */
static void value_done(struct ig_json_stream *s, const char *text, size_t end)
{
	if (s->depth == 0) {
		s->root_end = end;
		s->mode = M_END;
		return;
	}
	if (s->depth == 1 && s->root_type == IG_JSON_OBJECT)
		record(s, text, end);
	s->mode = M_NEXT;
}

/* A value begins at offset `at` (its first byte, not whitespace). */
static void value_begins(struct ig_json_stream *s, const char *text, size_t at)
{
	if (s->depth == 0) {
		s->root_start = at;
		s->root_type = (uint8_t)type_of(text[at]);
	} else if (s->depth == 1) {
		s->val_start = at;
	}
}

/* Reads string bytes from *pp. Returns 1 when the string ended (*pp past
 * its closing quote), 0 when the text ended first (*pp where to go on:
 * the end, or the start of an escape or UTF-8 sequence cut by it), -1
 * when the string is invalid. */
static int string_step(const char **pp, const char *end)
{
	const char *p = *pp;
	for (;;) {
		p = skip_plain(p, end);
		if (p == end)
			break;
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			*pp = p + 1;
			return 1;
		}
		if (c == '\\') {
			if (end - p < 2)
				break;
			if (p[1] != 'u') {
				if (!simple_escape(p[1]))
					return -1;
				p += 2;
				continue;
			}
			if (end - p < 6)
				break;
			long cp = read_hex4(p + 2, end);
			/* A high surrogate needs its low half, six bytes more. */
			if (cp >= 0xd800 && cp <= 0xdbff && end - p < 12) {
				/* Unless what has come already rules the pair out. */
				const char *q = p + 6;
				if ((q < end && q[0] != '\\') || (q + 1 < end && q[1] != 'u'))
					return -1;
				break;
			}
			if (read_u_escape(p, end, &p) < 0)
				return -1;
			continue;
		}
		if (c < 0x20)
			return -1;
		size_t need = c >= 0xc2 && c <= 0xdf   ? 2
			      : c >= 0xe0 && c <= 0xef ? 3
			      : c >= 0xf0 && c <= 0xf4 ? 4
						       : 0;
		if (need == 0)
			return -1;
		if ((size_t)(end - p) < need)
			break;
		size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
		if (n == 0)
			return -1;
		p += n;
	}
	*pp = p;
	return 0;
}

/* Reads number bytes from *pp in state *st. Returns 1 when a byte that
 * cannot continue it follows (*pp at that byte, the number valid), 0 when
 * the text ended first, -1 when the number is invalid. */
static int number_step(const char **pp, const char *end, uint8_t *st)
{
	const char *p = *pp;
	uint8_t n = *st;
	for (; p < end; p++) {
		char c = *p;
		bool digit = c >= '0' && c <= '9';
		switch (n) {
		case N_MINUS:
			if (!digit)
				return -1;
			n = c == '0' ? N_ZERO : N_INT;
			continue;
		case N_ZERO:
		case N_INT:
			if (digit && n == N_INT)
				continue;
			if (c == '.')
				n = N_DOT;
			else if (c == 'e' || c == 'E')
				n = N_E;
			else
				goto ended;
			continue;
		case N_DOT:
			if (!digit)
				return -1;
			n = N_FRAC;
			continue;
		case N_FRAC:
			if (digit)
				continue;
			if (c == 'e' || c == 'E')
				n = N_E;
			else
				goto ended;
			continue;
		case N_E:
			if (c == '+' || c == '-') {
				n = N_ESIGN;
				continue;
			}
			/* fall through */
		case N_ESIGN:
			if (!digit)
				return -1;
			n = N_EXP;
			continue;
		default: /* N_EXP */
			if (digit)
				continue;
			goto ended;
		}
	}
	*pp = p;
	*st = n;
	return 0;
ended:
	*pp = p;
	*st = n;
	return accepting(n) ? 1 : -1;
}

static int fail(struct ig_json_stream *s)
{
	s->failed = 1;
	return -1;
}

/* A container opens at p. */
static int open_container(struct ig_json_stream *s, const char *text, const char *p)
{
	value_begins(s, text, (size_t)(p - text));
	if (s->depth >= IG_JSON_MAX_DEPTH)
		return -1;
	unsigned d = s->depth++;
	uint64_t bit = (uint64_t)1 << (d % 64);
	if (*p == '{')
		s->kinds[d / 64] |= bit;
	else
		s->kinds[d / 64] &= ~bit;
	s->mode = *p == '{' ? M_FIRST_KEY : M_FIRST_VALUE;
	return 0;
}

/* A value other than a container starts at *pp: a string or a number
 * begins, or a literal is read whole. Returns 1 to go on, 0 when a
 * literal is cut by the end of the text (*pp unchanged), -1 on error. */
static int scalar_begins(struct ig_json_stream *s, const char *text, const char **pp,
			 const char *end)
{
	const char *p = *pp;
	char c = *p;
	if (c == '"') {
		value_begins(s, text, (size_t)(p - text));
		s->tok = T_STRING;
		s->key = 0;
		*pp = p + 1;
		return 1;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		value_begins(s, text, (size_t)(p - text));
		s->tok = T_NUMBER;
		s->num = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
		*pp = p + 1;
		return 1;
	}
	const char *word = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
	if (!word)
		return -1;
	size_t n = strlen(word), have = (size_t)(end - p);
	if (have < n)
		return memcmp(p, word, have) == 0 ? 0 : -1;
	if (memcmp(p, word, n) != 0)
		return -1;
	value_begins(s, text, (size_t)(p - text));
	*pp = p + n;
	value_done(s, text, (size_t)(*pp - text));
	return 1;
}

int ig_json_stream_feed(struct ig_json_stream *s, const char *text, size_t len)
{
	if (s->failed)
		return -1;
	if (len < s->pos)
		return fail(s);
	const char *p = text + s->pos, *end = text + len;
	while (p < end) {
		if (s->tok == T_STRING) {
			int rc = string_step(&p, end);
			if (rc < 0)
				return fail(s);
			if (rc == 0)
				break;
			s->tok = T_NONE;
			if (s->key) {
				if (s->depth == 1) /* a key of the root's members */
					s->key_end = (size_t)(p - text);
				s->mode = M_COLON;
			} else {
				value_done(s, text, (size_t)(p - text));
			}
			continue;
		}
		if (s->tok == T_NUMBER) {
			int rc = number_step(&p, end, &s->num);
			if (rc < 0)
				return fail(s);
			if (rc == 0)
				break;
			s->tok = T_NONE;
			value_done(s, text, (size_t)(p - text));
			continue;
		}
		char c = *p;
		if (is_ws(c)) {
			p++;
			continue;
		}
		switch (s->mode) {
		case M_FIRST_VALUE:
			if (c == ']')
				goto close;
			/* fall through */
		case M_START:
		case M_VALUE:
			if (c == '{' || c == '[') {
				if (open_container(s, text, p) < 0)
					return fail(s);
				p++;
				continue;
			}
			{
				int rc = scalar_begins(s, text, &p, end);
				if (rc < 0)
					return fail(s);
				if (rc == 0)
					goto out;
			}
			continue;
		case M_FIRST_KEY:
			if (c == '}')
				goto close;
			/* fall through */
		case M_KEY:
			if (c != '"')
				return fail(s);
			s->tok = T_STRING;
			s->key = 1;
			if (s->depth == 1)
				s->key_start = (size_t)(p - text);
			p++;
			continue;
		case M_COLON:
			if (c != ':')
				return fail(s);
			s->mode = M_VALUE;
			p++;
			continue;
		case M_NEXT:
			if (c == ',') {
				s->mode = is_object(s, s->depth) ? M_KEY : M_VALUE;
				p++;
				continue;
			}
			if (c == (is_object(s, s->depth) ? '}' : ']'))
				goto close;
			return fail(s);
		default: /* M_END */
			return fail(s);
		}
	close:
		s->depth--;
		p++;
		value_done(s, text, (size_t)(p - text));
	}
out:
	s->pos = (size_t)(p - text);
	return 0;
}

int ig_json_stream_finish(struct ig_json_stream *s, const char *text, size_t len,
			  struct ig_json_value *out, struct ig_json_value *root)
{
	for (size_t i = 0; i < s->nkeys; i++)
		out[i] = (struct ig_json_value){IG_JSON_INVALID, {NULL, 0}};
	if (!text || ig_json_stream_feed(s, text, len) < 0)
		return -1;
	/* A number at the very end of the text ends there. */
	if (s->tok == T_NUMBER && s->depth == 0 && accepting(s->num)) {
		s->tok = T_NONE;
		value_done(s, text, len);
	}
	if (s->pos != len || s->mode != M_END || s->tok != T_NONE) {
		s->failed = 1;
		return -1;
	}
	for (size_t i = 0; i < s->nkeys; i++)
		if (s->found[i].len)
			out[i] = (struct ig_json_value){s->found[i].type,
							{text + s->found[i].start, s->found[i].len}};
	root->type = (enum ig_json_type)s->root_type;
	root->raw = (struct ig_str){text + s->root_start, s->root_end - s->root_start};
	return 0;
}
