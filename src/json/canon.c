#include "json/canon.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/scan.h"

struct out {
	char *p;
	size_t n, cap;
};

static bool full(const struct out *o)
{
	return o->n >= o->cap;
}

static void put(struct out *o, const char *s, size_t len)
{
	size_t room = o->cap - o->n;
	if (len > room)
		len = room;
	memcpy(o->p + o->n, s, len);
	o->n += len;
}

static void putc1(struct out *o, char c)
{
	if (o->n < o->cap)
		o->p[o->n++] = c;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static unsigned hex4(const char *p)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 4 | (unsigned)hexval(p[i]);
	return v;
}

/* One decoded byte sequence of a string, written as text or, in JSON, with
 * the fewest escapes. */
static void put_decoded(struct out *o, const char *s, size_t len, bool json)
{
	if (!json) {
		put(o, s, len);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			putc1(o, '\\');
			putc1(o, (char)c);
		} else if (c < 0x20) {
			static const char shorts[] = "btnvfr";
			if (c >= '\b' && c <= '\r' && c != '\v') {
				putc1(o, '\\');
				putc1(o, shorts[c - '\b']);
			} else {
				char e[6] = {'\\',
					     'u',
					     '0',
					     '0',
					     "0123456789abcdef"[c >> 4],
					     "0123456789abcdef"[c & 15]};
				put(o, e, 6);
			}
		} else {
			putc1(o, (char)c);
		}
	}
}

/* A string value (raw, with its quotes) decoded; in JSON mode re-quoted. */
static void emit_string(struct out *o, struct ig_str raw, bool json)
{
	const char *p = raw.ptr + 1, *end = raw.ptr + raw.len - 1;
	if (json)
		putc1(o, '"');
	while (p < end && !full(o)) {
		/* Only what still fits is searched: a 400 KB message under a
		 * 4 KB limit is not scanned to its end for a backslash whose
		 * output would be cut anyway. */
		size_t look = (size_t)(end - p), room = o->cap - o->n;
		if (look > room)
			look = room;
		const char *bs = memchr(p, '\\', look);
		const char *run_end = bs ? bs : p + look;
		/* A run without escapes is valid JSON string content as it is
		 * (the parser let no raw quote or control byte through). */
		put(o, p, (size_t)(run_end - p));
		p = run_end;
		if (!bs)
			break; /* at the end, or the output is full */
		char b[4];
		size_t n = 1;
		switch (p[1]) {
		case 'b':
			b[0] = '\b';
			break;
		case 'f':
			b[0] = '\f';
			break;
		case 'n':
			b[0] = '\n';
			break;
		case 'r':
			b[0] = '\r';
			break;
		case 't':
			b[0] = '\t';
			break;
		case 'u': {
			unsigned cp = hex4(p + 2);
			p += 6;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' &&
			    p[1] == 'u') {
				unsigned lo = hex4(p + 2);
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			n = ig_utf8_encode(cp, b);
			put_decoded(o, b, n, json);
			continue;
		}
		default: /* \" \\ \/ */
			b[0] = p[1];
			break;
		}
		p += 2;
		put_decoded(o, b, n, json);
	}
	if (json)
		putc1(o, '"');
}

/* A reader of a string's decoded bytes, one at a time, for comparing
 * keys of any length without decoding them whole. */
struct dec {
	const char *p, *end;
	char pend[4];
	size_t npend, ipend;
};

static void dec_init(struct dec *d, struct ig_str raw)
{
	d->p = raw.ptr + 1;
	d->end = raw.ptr + raw.len - 1;
	d->npend = d->ipend = 0;
}

/* The next decoded byte, or -1 at the end. */
static int dec_next(struct dec *d)
{
	if (d->ipend < d->npend)
		return (unsigned char)d->pend[d->ipend++];
	if (d->p >= d->end)
		return -1;
	if (*d->p != '\\')
		return (unsigned char)*d->p++;
	char e = d->p[1];
	d->p += 2;
	if (e != 'u') {
		char c = simple_escape(e);
		return (unsigned char)(c ? c : e);
	}
	unsigned cp = hex4(d->p);
	d->p += 4;
	if (cp >= 0xd800 && cp < 0xdc00 && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
		unsigned lo = hex4(d->p + 2);
		if (lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			d->p += 6;
		}
	}
	d->npend = ig_utf8_encode(cp, d->pend);
	d->ipend = 1;
	return (unsigned char)d->pend[0];
}

static int bytes_cmp(const char *a, size_t la, const char *b, size_t lb)
{
	size_t n = la < lb ? la : lb;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (la < lb ? -1 : la > lb);
}

struct member {
	struct ig_json_value key, val;
};

/* Keys (raw, with their quotes) in the order of their decoded bytes. */
static int key_cmp(struct ig_str a, struct ig_str b)
{
	if (!memchr(a.ptr, '\\', a.len) && !memchr(b.ptr, '\\', b.len))
		return bytes_cmp(a.ptr + 1, a.len - 2, b.ptr + 1, b.len - 2);
	struct dec da, db;
	dec_init(&da, a);
	dec_init(&db, b);
	for (;;) {
		int x = dec_next(&da), y = dec_next(&db);
		if (x != y)
			return x < y ? -1 : 1;
		if (x < 0)
			return 0;
	}
}

static void emit(struct out *o, struct ig_json_value v);

static void emit_object(struct out *o, struct ig_json_value v)
{
	struct member small[16], *m = small;
	size_t n = 0, cap = 16, pos = 0;
	struct ig_json_value k, val;
	while (ig_json_object_next(v, &pos, &k, &val) == 1) {
		if (n == cap) {
			size_t ncap = cap * 2;
			struct member *g = malloc(ncap * sizeof *g);
			if (!g)
				break; /* out of memory: the members so far only */
			memcpy(g, m, n * sizeof *g);
			if (m != small)
				free(m);
			m = g;
			cap = ncap;
		}
		m[n++] = (struct member){k, val};
	}
	/* Insertion sort, stable: objects have few members, and for duplicate
	 * keys the order as sent decides, as "last one wins" does. */
	for (size_t i = 1; i < n; i++) {
		struct member x = m[i];
		size_t j = i;
		while (j > 0 && key_cmp(m[j - 1].key.raw, x.key.raw) > 0) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = x;
	}
	putc1(o, '{');
	for (size_t i = 0; i < n && !full(o); i++) {
		if (i)
			putc1(o, ',');
		emit_string(o, m[i].key.raw, true);
		putc1(o, ':');
		emit(o, m[i].val);
	}
	putc1(o, '}');
	if (m != small)
		free(m);
}

static void emit(struct out *o, struct ig_json_value v)
{
	if (full(o))
		return;
	switch (v.type) {
	case IG_JSON_STRING:
		emit_string(o, v.raw, true);
		return;
	case IG_JSON_OBJECT:
		emit_object(o, v);
		return;
	case IG_JSON_ARRAY: {
		size_t pos = 0;
		struct ig_json_value e;
		bool first = true;
		putc1(o, '[');
		while (!full(o) && ig_json_array_next(v, &pos, &e) == 1) {
			if (!first)
				putc1(o, ',');
			first = false;
			emit(o, e);
		}
		putc1(o, ']');
		return;
	}
	default:
		put(o, v.raw.ptr, v.raw.len);
		return;
	}
}

size_t ig_json_canonical(struct ig_json_value v, char *out, size_t cap)
{
	struct out o = {out, 0, cap};
	emit(&o, v);
	return o.n;
}

size_t ig_json_canonical_text(struct ig_json_value v, char *out, size_t cap)
{
	struct out o = {out, 0, cap};
	if (v.type == IG_JSON_STRING)
		emit_string(&o, v.raw, false);
	else
		emit(&o, v);
	return o.n;
}
