/* The loader's toolbox (see load.h): arena, diags, YAML accessors that
 * report what is wrong and where, strict field lists, name patterns,
 * metadata and label selectors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/load.h"
#include "core/clock.h"
#include "core/ret.h"

#define CHUNK_BYTES (32u << 10)
/* A hostile file can hold millions of mistakes; past this many the rest
 * are counted, not stored. */
#define MAX_DIAGS 1000u

/* ---- arena ------------------------------------------------------------- */

void *ld_arena_alloc(struct box *b, size_t n)
{
	struct chunk *c = b->arena;
	size_t align = sizeof(max_align_t);
	n = (n + align - 1) / align * align;
	if (n == 0)
		n = align;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
		c = calloc(1, sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->next = b->arena;
		b->arena = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static char *arena_strndup(struct box *b, const char *s, size_t len)
{
	char *p = ld_arena_alloc(b, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

char *ld_arena_strdup(struct box *b, const char *s)
{
	return s ? arena_strndup(b, s, strlen(s)) : NULL;
}

void *ld_push(void **arr, size_t *n, size_t *cap, size_t size)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		void *p = realloc(*arr, ncap * size);
		if (!p)
			return NULL;
		*arr = p;
		*cap = ncap;
	}
	void *slot = (char *)*arr + (*n)++ * size;
	memset(slot, 0, size);
	return slot;
}

void *ld_new_object(struct session *s, int kind, void **arr, size_t *n, size_t size)
{
	void *p = ld_push(arr, n, &s->box->cap[kind], size);
	if (!p)
		longjmp(s->jmp, JMP_OOM);
	return p;
}

void *ld_alloc(struct session *s, size_t n)
{
	/* Arena chunks come from calloc and are never reused: zeroed. */
	void *p = ld_arena_alloc(s->box, n);
	if (!p)
		longjmp(s->jmp, JMP_OOM);
	return p;
}

char *ld_strndup(struct session *s, const char *p, size_t len)
{
	char *r = arena_strndup(s->box, p, len);
	if (!r)
		longjmp(s->jmp, JMP_OOM);
	return r;
}

char *ld_strdup(struct session *s, const char *p)
{
	return p ? ld_strndup(s, p, strlen(p)) : NULL;
}

/* ---- diags ------------------------------------------------------------- */

void ig_diags_resource(struct ig_diags *d, int err)
{
	if (!d->resource && ig_err_resource(err))
		d->resource = err < 0 ? -err : err;
}

/* A diag that cannot be kept for want of memory still says the load
 * failed for want of resources. */
static void vdiag(struct ig_diags *d, bool warning, const char *file, int line, const char *path,
		  const char *fmt, va_list ap)
{
	struct ig_diag *items = realloc(d->items, (d->n + 1) * sizeof(*items));
	if (!items) {
		ig_diags_resource(d, ENOMEM);
		return;
	}
	d->items = items;
	struct ig_diag *g = &items[d->n];
	*g = (struct ig_diag){.line = line, .warning = warning};
	g->file = strdup(file ? file : "");
	g->path = strdup(path ? path : "");
	if (vasprintf(&g->msg, fmt, ap) < 0)
		g->msg = NULL;
	if (!g->file || !g->path || !g->msg) {
		free(g->file);
		free(g->path);
		free(g->msg);
		ig_diags_resource(d, ENOMEM);
		return;
	}
	d->n++;
}

void ig_diags_add(struct ig_diags *d, bool warning, const char *file, int line, const char *path,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(d, warning, file, line, path, fmt, ap);
	va_end(ap);
}

void ld_note(struct ig_diags *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(d, true, "infergate", 0, NULL, fmt, ap);
	va_end(ap);
}

void ld_join(char *out, const char *parent, const char *key)
{
	if (!parent || !*parent)
		snprintf(out, LD_PATH, "%s", key ? key : "");
	else if (!key || !*key)
		snprintf(out, LD_PATH, "%s", parent);
	else
		snprintf(out, LD_PATH, "%s%s%s", parent, key[0] == '[' ? "" : ".", key);
}

void ld_item(char *out, const char *parent, const char *key, size_t i)
{
	char base[LD_PATH];
	ld_join(base, parent, key);
	int n = snprintf(out, LD_PATH, "%s[%zu]", base, i);
	if (n < 0 || n >= LD_PATH)
		out[LD_PATH - 1] = '\0';
}

void ld_err(struct session *s, int line, const char *parent, const char *key, const char *fmt, ...)
{
	char path[LD_PATH];
	va_list ap;
	s->nerrors++;
	if (s->diags->n >= MAX_DIAGS) {
		s->nomitted++;
		return;
	}
	ld_join(path, parent, key);
	va_start(ap, fmt);
	vdiag(s->diags, false, s->file, line, path, fmt, ap);
	va_end(ap);
}

void ld_warn(struct session *s, int line, const char *parent, const char *key, const char *fmt, ...)
{
	char path[LD_PATH];
	va_list ap;
	if (s->diags->n >= MAX_DIAGS) {
		s->nomitted++;
		return;
	}
	ld_join(path, parent, key);
	va_start(ap, fmt);
	vdiag(s->diags, true, s->file, line, path, fmt, ap);
	va_end(ap);
}

/* ---- YAML access --------------------------------------------------------- */

yaml_node_t *ld_node(struct session *s, int idx)
{
	if (++s->visits > s->max_visits)
		longjmp(s->jmp, JMP_BUDGET);
	return yaml_document_get_node(s->doc, idx);
}

yaml_node_t *ld_get(struct session *s, yaml_node_t *map, const char *key, int *line)
{
	*line = ig_yaml_line(map);
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = ld_node(s, p->key);
		if (!k || !ig_yaml_scalar_is(k, key))
			continue;
		yaml_node_t *v = ld_node(s, p->value);
		*line = ig_yaml_line(k);
		return v && !ig_yaml_is_null(v) ? v : NULL;
	}
	return NULL;
}

size_t ld_seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

size_t ld_map_len(const yaml_node_t *n)
{
	return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

yaml_node_t *ld_seq_item(struct session *s, yaml_node_t *seq, size_t i)
{
	return ld_node(s, seq->data.sequence.items.start[i]);
}

static yaml_node_t *get_typed(struct session *s, yaml_node_t *map, const char *parent,
			      const char *key, bool req, int *line, yaml_node_type_t type)
{
	static const char *const what[] = {
	    [YAML_SCALAR_NODE] = "a string",
	    [YAML_SEQUENCE_NODE] = "a list",
	    [YAML_MAPPING_NODE] = "an object",
	};
	yaml_node_t *v = ld_get(s, map, key, line);
	if (!v) {
		if (req)
			ld_err(s, *line, parent, key, "is required");
		return NULL;
	}
	if (v->type != type) {
		ld_err(s, *line, parent, key, "must be %s", what[type]);
		return NULL;
	}
	/* A block mapping starts at its first key, but a field missing from
	 * it is best reported at the key that holds it ("spec:"), so objects
	 * and lists take their key's line. Marks serve only messages. */
	if (type != YAML_SCALAR_NODE)
		v->start_mark.line = (size_t)(*line - 1);
	return v;
}

yaml_node_t *ld_map(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		    bool req, int *line)
{
	return get_typed(s, map, parent, key, req, line, YAML_MAPPING_NODE);
}

yaml_node_t *ld_seq(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		    bool req, int *line)
{
	return get_typed(s, map, parent, key, req, line, YAML_SEQUENCE_NODE);
}

/* Whether the scalar has an explicit tag (!!str 8000): libyaml gives every
 * untagged scalar the default tag, so look at the text where the node
 * starts (its properties: an anchor, then the tag). */
static bool tagged(struct session *s, const yaml_node_t *n)
{
	size_t i = n->start_mark.index;
	if (!s->text || i >= s->text_len)
		return false;
	if (s->text[i] == '&') {
		while (i < s->text_len && s->text[i] != ' ' && s->text[i] != '\t' &&
		       s->text[i] != '\n')
			i++;
		while (i < s->text_len && (s->text[i] == ' ' || s->text[i] == '\t'))
			i++;
	}
	return i < s->text_len && s->text[i] == '!';
}

static bool text_in(const char *p, size_t len, const char *const *set)
{
	for (; *set; set++)
		if (strlen(*set) == len && !memcmp(p, *set, len))
			return true;
	return false;
}

/* What go-yaml v2 (YAML 1.1, which sigs.k8s.io/yaml and so kubectl use)
 * makes of an untagged plain scalar: NULL for a string, else the JSON
 * type it becomes ("boolean", "integer", "number"), which the API server
 * refuses where a string is required. Timestamps stay strings. */
static const char *plain_type(struct session *s, const yaml_node_t *n)
{
	static const char *const bools[] = {"y",    "Y",     "yes",   "Yes",   "YES",  "n",
					    "N",    "no",    "No",    "NO",    "true", "True",
					    "TRUE", "false", "False", "FALSE", "on",   "On",
					    "ON",   "off",   "Off",   "OFF",   NULL};
	static const char *const specials[] = {".inf",	".Inf",	 ".INF",  "+.inf", "+.Inf",
					       "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
					       ".NaN",	".NAN",	 NULL};
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    tagged(s, n))
		return NULL;
	const char *p = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (len == 0)
		return NULL;
	if (text_in(p, len, bools))
		return "boolean";
	if (text_in(p, len, specials))
		return "number";
	/* Integers: decimal, 0x hexadecimal, 0b binary, 0 octal, '_' allowed
	 * between digits; numbers: decimal with a fraction or exponent. */
	size_t i = (p[0] == '-' || p[0] == '+') ? 1 : 0;
	const char *digits = "0123456789_";
	if (len > i + 2 && p[i] == '0' && (p[i + 1] == 'x' || p[i + 1] == 'b')) {
		digits = p[i + 1] == 'x' ? "0123456789abcdefABCDEF_" : "01_";
		i += 2;
	}
	size_t d0 = i, ndig = 0;
	for (; i < len && strchr(digits, p[i]) && p[i]; i++)
		ndig += p[i] != '_';
	if (i == len)
		return ndig && p[d0] != '_' ? "integer" : NULL;
	if (digits[1] != '1')
		return NULL; /* 0x or 0b, then something else */
	bool frac = false;
	if (p[i] == '.') {
		frac = true;
		for (i++; i < len && p[i] >= '0' && p[i] <= '9'; i++)
			ndig++;
	}
	if (!ndig)
		return NULL;
	if (i < len && (p[i] == 'e' || p[i] == 'E')) {
		size_t e = ++i;
		if (i < len && (p[i] == '-' || p[i] == '+'))
			e = ++i;
		for (; i < len && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == e)
			return NULL;
		frac = true;
	}
	return i == len && frac ? "number" : NULL;
}

/* A string where the API server wants one: not a YAML 1.1 boolean or
 * number written plain. Reports and returns false otherwise. */
static bool string_typed(struct session *s, const yaml_node_t *v, int line, const char *parent,
			 const char *key)
{
	const char *t = plain_type(s, v);
	if (!t)
		return true;
	ld_err(s, line, parent, key, "must be of type string, not %s %.*s (quote it)", t,
	       (int)v->data.scalar.length, (const char *)v->data.scalar.value);
	return false;
}

char *ld_scalar(struct session *s, yaml_node_t *n)
{
	return ld_strndup(s, (const char *)n->data.scalar.value, n->data.scalar.length);
}

char *ld_str(struct session *s, yaml_node_t *map, const char *parent, const char *key, bool req,
	     int *line)
{
	yaml_node_t *v = get_typed(s, map, parent, key, req, line, YAML_SCALAR_NODE);
	return v && string_typed(s, v, *line, parent, key) ? ld_scalar(s, v) : NULL;
}

/* Integers are plain scalars: a quoted "8000" is a string, as for the API
 * server. Any 64-bit value (a Go int), range checks left to the fields. */
bool ld_scalar_int(const yaml_node_t *v, long long *out)
{
	if (v->type != YAML_SCALAR_NODE)
		return false;
	const char *p = (const char *)v->data.scalar.value;
	size_t len = v->data.scalar.length;
	size_t i = (len > 0 && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
	bool ok = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len > i && len - i <= 19;
	for (size_t j = i; ok && j < len; j++)
		ok = p[j] >= '0' && p[j] <= '9';
	if (!ok)
		return false;
	char buf[24];
	memcpy(buf, p, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoll(buf, NULL, 10);
	return errno != ERANGE;
}

bool ld_int(struct session *s, yaml_node_t *map, const char *parent, const char *key, bool req,
	    int *line, long long *out)
{
	yaml_node_t *v = get_typed(s, map, parent, key, req, line, YAML_SCALAR_NODE);
	if (!v)
		return false;
	/* !!str 8000 is a string, as "8000" is. */
	if (tagged(s, v) || !ld_scalar_int(v, out)) {
		ld_err(s, *line, parent, key, "must be an integer");
		return false;
	}
	return true;
}

bool ld_int_range(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		  bool req, long long lo, long long hi, int *out)
{
	long long v;
	int line;
	if (!ld_int(s, map, parent, key, req, &line, &v))
		return false;
	if (v < lo || v > hi) {
		ld_err(s, line, parent, key, "must be between %lld and %lld", lo, hi);
		return false;
	}
	*out = (int)v;
	return true;
}

bool ld_bool(struct session *s, yaml_node_t *map, const char *parent, const char *key, int *line,
	     bool *out)
{
	yaml_node_t *v = get_typed(s, map, parent, key, false, line, YAML_SCALAR_NODE);
	if (!v)
		return false;
	bool plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tagged(s, v);
	if (plain && (ig_yaml_scalar_is(v, "true") || ig_yaml_scalar_is(v, "True") ||
		      ig_yaml_scalar_is(v, "TRUE"))) {
		*out = true;
		return true;
	}
	if (plain && (ig_yaml_scalar_is(v, "false") || ig_yaml_scalar_is(v, "False") ||
		      ig_yaml_scalar_is(v, "FALSE"))) {
		*out = false;
		return true;
	}
	ld_err(s, *line, parent, key, "must be true or false");
	return false;
}

uint64_t ld_duration(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		     bool *set)
{
	int line;
	uint64_t ms = 0;
	char *v = ld_str(s, map, parent, key, false, &line);
	*set = false;
	if (!v)
		return 0;
	if (ig_parse_duration_ms(v, &ms) < 0) {
		ld_err(s, line, parent, key,
		       "must be a Gateway API duration: 1 to 4 parts of up to 5 digits with unit "
		       "h, m, s or ms (e.g. 10s, 1h30m)");
		return 0;
	}
	*set = true;
	return ms;
}

yaml_node_t *ld_seq_map(struct session *s, yaml_node_t *seq, size_t i, const char *path)
{
	yaml_node_t *n = ld_seq_item(s, seq, i);
	if (n && n->type != YAML_MAPPING_NODE) {
		ld_err(s, ig_yaml_line(n), path, NULL, "must be an object");
		return NULL;
	}
	return n;
}

char **ld_strings(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		  size_t *n, int *line)
{
	char sub[LD_PATH];
	yaml_node_t *seq = ld_seq(s, map, parent, key, false, line);
	*n = 0;
	if (!seq)
		return NULL;
	char **v = ld_alloc(s, (ld_seq_len(seq) + 1) * sizeof(char *));
	for (size_t i = 0; i < ld_seq_len(seq); i++) {
		yaml_node_t *it = ld_seq_item(s, seq, i);
		ld_item(sub, parent, key, i);
		if (it && it->type == YAML_SCALAR_NODE && !ig_yaml_is_null(it)) {
			if (string_typed(s, it, ig_yaml_line(it), sub, NULL))
				v[(*n)++] = ld_scalar(s, it);
			continue;
		}
		ld_err(s, it ? ig_yaml_line(it) : *line, sub, NULL, "must be a string");
	}
	return v;
}

/* ---- strict fields ------------------------------------------------------- */

static bool listed(const char *const *names, const yaml_node_t *k)
{
	for (; names && *names; names++)
		if (ig_yaml_scalar_is(k, *names))
			return true;
	return false;
}

static const struct ld_unsupported *unsupported_field(const struct ld_unsupported *u,
						      const yaml_node_t *k)
{
	for (; u && u->name; u++)
		if (ig_yaml_scalar_is(k, u->name))
			return u;
	return NULL;
}

/* The line of a key before p in the mapping with k's text, or 0. */
static int earlier_key(struct session *s, yaml_node_t *map, yaml_node_pair_t *p,
		       const yaml_node_t *k)
{
	for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
		yaml_node_t *k0 = ld_node(s, q->key);
		if (k0 && k0->type == YAML_SCALAR_NODE &&
		    k0->data.scalar.length == k->data.scalar.length &&
		    !memcmp(k0->data.scalar.value, k->data.scalar.value, k->data.scalar.length))
			return ig_yaml_line(k0);
	}
	return 0;
}

void ld_fields(struct session *s, yaml_node_t *map, const char *path, const char *const *known,
	       const struct ld_unsupported *unsupported)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = ld_node(s, p->key);
		if (!k)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			ld_err(s, ig_yaml_line(k), path, NULL, "field names must be strings");
			continue;
		}
		char name[LD_PATH];
		snprintf(name, sizeof name, "%.*s", (int)k->data.scalar.length,
			 (const char *)k->data.scalar.value);
		const struct ld_unsupported *u = unsupported_field(unsupported, k);
		int first;
		if (!u && !listed(known, k))
			ld_err(s, ig_yaml_line(k), path, name, "unknown field");
		else if ((first = earlier_key(s, map, p, k)))
			ld_err(s, ig_yaml_line(k), path, name, "duplicate field (also on line %d)",
			       first);
		else if (u)
			ld_err(s, ig_yaml_line(k), path, name, "not supported by infergate: %s",
			       u->why);
	}
}

void ld_top_fields(struct session *s, yaml_node_t *root, const char *const *extra)
{
	static const char *const common[] = {"apiVersion", "kind", "metadata", "status"};
	const char *all[16];
	size_t n = 0;
	for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
		all[n++] = common[i];
	for (; extra && *extra && n < 15; extra++)
		all[n++] = *extra;
	all[n] = NULL;
	ld_fields(s, root, "", all, NULL);
}

/* ---- checks -------------------------------------------------------------- */

void ld_check_items(struct session *s, yaml_node_t *seq, int line, const char *parent,
		    const char *key, size_t min, size_t max)
{
	size_t n = ld_seq_len(seq);
	if (n < min)
		ld_err(s, line, parent, key, "must have at least %zu item%s", min,
		       min == 1 ? "" : "s");
	else if (n > max)
		ld_err(s, line, parent, key, "must have at most %zu items", max);
}

void ld_check_len(struct session *s, const char *v, int line, const char *parent, const char *key,
		  size_t min, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	if (!v)
		return;
	if (n < min)
		ld_err(s, line, parent, key, "must not be empty");
	else if (n > max)
		ld_err(s, line, parent, key, "must be at most %zu characters", max);
}

bool ld_one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(v, *set) == 0)
			return true;
	return false;
}

void ld_check_enum(struct session *s, const char *v, int line, const char *parent, const char *key,
		   const char *const *set)
{
	char list[LD_PATH] = "";
	if (!v || ld_one_of(v, set))
		return;
	for (const char *const *p = set; *p; p++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", *p);
	}
	ld_err(s, line, parent, key, "must be one of %s", list);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..max characters. */
bool ld_dns_label(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max || !is_lower_alnum(p[0]) || !is_lower_alnum(p[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(p[i]) && p[i] != '-')
			return false;
	return true;
}

/* Dot-separated DNS labels, at most 253 characters in all. */
bool ld_dns_subdomain(const char *p, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (;;) {
		const char *dot = memchr(p, '.', len);
		size_t l = dot ? (size_t)(dot - p) : len;
		if (!ld_dns_label(p, l, 253))
			return false;
		if (!dot)
			return true;
		p += l + 1;
		len -= l + 1;
	}
}

/* The name part of a label key, and a non-empty label value. */
static bool label_name(const char *p, size_t len)
{
	if (len == 0 || len > 63 || !is_alnum(p[0]) || !is_alnum(p[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(p[i]) && p[i] != '-' && p[i] != '_' && p[i] != '.')
			return false;
	return true;
}

bool ld_label_key_ok(const char *k)
{
	size_t len = strlen(k);
	const char *slash = strchr(k, '/');
	if (len > 253)
		return false;
	if (!slash)
		return label_name(k, len);
	return ld_dns_subdomain(k, (size_t)(slash - k)) &&
	       label_name(slash + 1, len - (size_t)(slash - k) - 1);
}

bool ld_label_value_ok(const char *v)
{
	return *v == '\0' || label_name(v, strlen(v));
}

bool ig_label_key_valid(const char *k)
{
	return ld_label_key_ok(k);
}

bool ig_label_value_valid(const char *v)
{
	return ld_label_value_ok(v);
}

static bool group_ok(const char *g)
{
	return *g == '\0' || ld_dns_subdomain(g, strlen(g));
}

static bool kind_ok(const char *k)
{
	size_t len = strlen(k);
	if (len == 0 || len > 63 ||
	    !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z')) ||
	    !is_alnum(k[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(k[i]) && k[i] != '-')
			return false;
	return true;
}

bool ld_hostname_ok(const char *h)
{
	if (strncmp(h, "*.", 2) == 0)
		h += 2;
	return ld_dns_subdomain(h, strlen(h));
}

bool ld_header_name_ok(const char *h)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	size_t len = strlen(h);
	if (len == 0 || len > 256)
		return false;
	for (; *h; h++)
		if (!is_alnum(*h) && !strchr(extra, *h))
			return false;
	return true;
}

void ld_check_group(struct session *s, const char *v, int line, const char *parent, const char *key)
{
	if (v && !group_ok(v))
		ld_err(s, line, parent, key,
		       "must be empty or a lowercase DNS subdomain (e.g. "
		       "inference.networking.k8s.io)");
}

void ld_check_kind(struct session *s, const char *v, int line, const char *parent, const char *key)
{
	if (v && !kind_ok(v))
		ld_err(s, line, parent, key,
		       "must be 1 to 63 letters, digits or '-', starting with a letter");
}

void ld_check_object_name(struct session *s, const char *v, int line, const char *parent,
			  const char *key)
{
	ld_check_len(s, v, line, parent, key, 1, 253);
}

void ld_check_namespace(struct session *s, const char *v, int line, const char *parent,
			const char *key)
{
	if (v && !ld_dns_label(v, strlen(v), 63))
		ld_err(s, line, parent, key, "must be a lowercase RFC 1123 label");
}

/* ---- metadata ------------------------------------------------------------ */

struct ig_kv *ld_labels(struct session *s, yaml_node_t *map, int line, const char *parent,
			const char *key, size_t *n)
{
	char path[LD_PATH];
	ld_join(path, parent, key);
	size_t cnt = ld_map_len(map);
	struct ig_kv *kv = ld_alloc(s, (cnt ? cnt : 1) * sizeof(*kv));
	*n = 0;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
		yaml_node_t *k = ld_node(s, p->key), *v = ld_node(s, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
			ld_err(s, ig_yaml_line(k), path, NULL,
			       "labels must be string: string pairs");
			continue;
		}
		char *ks = ld_scalar(s, k);
		if (!ig_yaml_is_null(v) && !string_typed(s, v, ig_yaml_line(k), path, ks))
			continue;
		char *vs = ig_yaml_is_null(v) ? ld_strdup(s, "") : ld_scalar(s, v);
		if (!ld_label_key_ok(ks))
			ld_err(s, ig_yaml_line(k), path, ks,
			       "invalid label key: up to 63 letters, digits, '-', '_' or '.', "
			       "optionally prefixed by a DNS subdomain and '/'");
		else if (strlen(vs) > 63 || !ld_label_value_ok(vs))
			ld_err(s, ig_yaml_line(k), path, ks,
			       "invalid label value \"%s\": up to 63 letters, digits, '-', '_' or "
			       "'.', beginning and ending with a letter or digit",
			       vs);
		for (size_t j = 0; j < *n; j++)
			if (!strcmp(kv[j].key, ks))
				ld_err(s, ig_yaml_line(k), path, ks, "duplicate label key");
		kv[*n].key = ks;
		kv[*n].value = vs;
		(*n)++;
	}
	return kv;
}

/* ObjectMeta: what infergate reads, and what Kubernetes writes (or lets
 * users write) that has no bearing on routing. */
static const char *const meta_fields[] = {"name",
					  "namespace",
					  "labels",
					  "annotations",
					  "creationTimestamp",
					  "deletionTimestamp",
					  "deletionGracePeriodSeconds",
					  "generateName",
					  "generation",
					  "resourceVersion",
					  "uid",
					  "selfLink",
					  "ownerReferences",
					  "finalizers",
					  "managedFields",
					  NULL};

void ld_meta(struct session *s, yaml_node_t *root, const char *api, const char *kind,
	     struct ig_meta *m, bool cluster_scoped)
{
	int line;
	m->api_version = ld_strdup(s, api);
	m->kind = ld_strdup(s, kind);
	m->file = ld_strdup(s, s->file);
	m->line = ig_yaml_line(root);
	m->seq = s->box->next_seq++;
	m->ns = cluster_scoped ? "" : "default";
	yaml_node_t *md = ld_map(s, root, "", "metadata", true, &line);
	if (!md)
		return;
	ld_fields(s, md, "metadata", meta_fields, NULL);
	m->name = ld_str(s, md, "metadata", "name", true, &line);
	if (m->name && !ld_dns_subdomain(m->name, strlen(m->name)))
		ld_err(s, line, "metadata", "name",
		       "must be a lowercase RFC 1123 subdomain (letters, digits, '-' and '.', at "
		       "most 253 characters)");
	char *ns = ld_str(s, md, "metadata", "namespace", false, &line);
	if (ns && !ld_dns_label(ns, strlen(ns), 63))
		ld_err(s, line, "metadata", "namespace",
		       "must be a lowercase RFC 1123 label (letters, digits and '-', at most 63 "
		       "characters)");
	if (ns && cluster_scoped)
		ld_warn(s, line, "metadata", "namespace",
			"%s is cluster-scoped: the namespace is ignored", kind);
	else if (ns)
		m->ns = ns;
	if (ig_meta_set_created(m, ld_str(s, md, "metadata", "creationTimestamp", false, &line)) <
	    0)
		ld_err(s, line, "metadata", "creationTimestamp",
		       "must be an RFC 3339 time (e.g. 2025-03-25T10:00:00Z)");
	yaml_node_t *labels = ld_map(s, md, "metadata", "labels", false, &line);
	if (labels)
		m->labels = ld_labels(s, labels, line, "metadata", "labels", &m->nlabels);
	yaml_node_t *ann = ld_map(s, md, "metadata", "annotations", false, &line);
	(void)ann; /* annotations configure nothing in infergate */
}

static const char *const selector_ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};

static void selector_req(struct session *s, yaml_node_t *n, const char *path,
			 struct ig_selector_req *r)
{
	static const char *const fields[] = {"key", "operator", "values", NULL};
	int line, vline;
	ld_fields(s, n, path, fields, NULL);
	r->key = ld_str(s, n, path, "key", true, &line);
	if (r->key && !ld_label_key_ok(r->key))
		ld_err(s, line, path, "key", "invalid label key");
	char *op = ld_str(s, n, path, "operator", true, &line);
	ld_check_enum(s, op, line, path, "operator", selector_ops);
	r->values = ld_strings(s, n, path, "values", &r->nvalues, &vline);
	if (!op || !ld_one_of(op, selector_ops))
		return;
	r->op = !strcmp(op, "In")	? IG_SEL_IN
		: !strcmp(op, "NotIn")	? IG_SEL_NOT_IN
		: !strcmp(op, "Exists") ? IG_SEL_EXISTS
					: IG_SEL_DOES_NOT_EXIST;
	bool wants = r->op == IG_SEL_IN || r->op == IG_SEL_NOT_IN;
	if (wants && r->nvalues == 0)
		ld_err(s, line, path, "values",
		       "must be specified when `operator` is 'In' or 'NotIn'");
	else if (!wants && r->nvalues > 0)
		ld_err(s, vline, path, "values",
		       "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
}

void ld_label_selector(struct session *s, yaml_node_t *map, const char *path,
		       struct ig_label_selector *out)
{
	static const char *const fields[] = {"matchLabels", "matchExpressions", NULL};
	char sub[LD_PATH];
	int line;
	ld_fields(s, map, path, fields, NULL);
	yaml_node_t *ml = ld_map(s, map, path, "matchLabels", false, &line);
	if (ml)
		out->match_labels =
		    ld_labels(s, ml, line, path, "matchLabels", &out->nmatch_labels);
	yaml_node_t *me = ld_seq(s, map, path, "matchExpressions", false, &line);
	if (!me)
		return;
	out->exprs = ld_alloc(s, (ld_seq_len(me) + 1) * sizeof(*out->exprs));
	for (size_t i = 0; i < ld_seq_len(me); i++) {
		ld_item(sub, path, "matchExpressions", i);
		yaml_node_t *e = ld_seq_map(s, me, i, sub);
		if (e)
			selector_req(s, e, sub, &out->exprs[out->nexprs++]);
	}
}

void ld_ref(struct session *s, const char *kind, const char *ns, const char *name, int line,
	    const char *path)
{
	if (!name)
		return;
	struct ref *r = ld_push((void **)&s->refs, &s->nrefs, &s->caprefs, sizeof(*r));
	if (!r)
		longjmp(s->jmp, JMP_OOM);
	*r = (struct ref){kind, ns, name, s->file, line, ld_strdup(s, path)};
}

bool ld_same_hostname(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

bool ld_older(const struct ig_meta *a, const struct ig_meta *b)
{
	int c = ig_meta_cmp_age(a, b);
	return c ? c < 0 : a->seq < b->seq;
}
