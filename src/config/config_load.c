/* Loading manifests: files and directories are parsed with libyaml's
 * document API, every document is decoded by its kind into the structs of
 * config.h with Kubernetes defaults applied, and every CRD rule we know is
 * checked on the way. Problems become diags with file:line and a field
 * path; the load carries on so that one run reports all of them.
 *
 * Memory: a config and everything it points to live in one box: the
 * struct itself, a chunked arena for strings and sub-arrays, and one
 * realloc'd array per kind (so that Pods can be added later). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "config/yaml_node.h"

#include "config/config.h"
#include "core/clock.h"

#define MAX_FILE_BYTES (16u << 20)
/* Aliases let a small document name the same subtree many times; a budget
 * of node visits per document keeps decoding linear in the budget. */
#define MAX_VISITS 1000000u
#define MAX_DIR_DEPTH 16
/* libyaml's scanner slows down quadratically with nesting depth and its
 * loader looks anchors up linearly; manifests need neither much. */
#define MAX_NESTING 64
#define MAX_ANCHORS 1000u
#define PATH_LEN 256
#define CHUNK_BYTES (32u << 10)
/* A hostile file can hold millions of mistakes; past this many the rest
 * are counted, not stored. */
#define MAX_DIAGS 1000u

enum { K_GATEWAY, K_ROUTE, K_POOL, K_MODEL, K_OBJECTIVE, K_POD, K_DEPLOYMENT, K_PICKER, K_COUNT };

struct chunk {
	struct chunk *next;
	size_t used;
	size_t cap;
	max_align_t data[];
};

struct box {
	struct ig_config cfg; /* first, so a config pointer is a box pointer */
	struct chunk *arena;
	size_t cap[K_COUNT];
	size_t next_seq;
};

/* A reference between objects, checked once everything is loaded. */
struct ref {
	const char *kind; /* of the target: "Gateway", "InferencePool" */
	const char *ns;
	const char *name;
	const char *file;
	int line;
	const char *path;
};

struct session {
	struct box *box;
	struct ig_diags *diags;
	size_t nerrors;
	size_t nomitted;
	struct ref *refs;
	size_t nrefs, caprefs;
	/* The document being decoded. */
	const char *file;
	const char *text; /* the whole file */
	size_t text_len;
	yaml_document_t *doc;
	size_t visits;
	jmp_buf jmp; /* longjmp target for out-of-memory and the visit budget */
};

enum { JMP_OOM = 1, JMP_BUDGET = 2 };

/* ---- arena ------------------------------------------------------------- */

static void *arena_alloc(struct box *b, size_t n)
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
	char *p = arena_alloc(b, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

static char *arena_strdup(struct box *b, const char *s)
{
	return s ? arena_strndup(b, s, strlen(s)) : NULL;
}

/* Grows one of the per-kind arrays by one element and returns it. */
static void *push(void **arr, size_t *n, size_t *cap, size_t size)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		void *p = realloc(*arr, ncap * size);
		if (!p)
			return NULL;
		*arr = p;
		*cap = ncap;
	}
	return (char *)*arr + (*n)++ * size;
}

static void *xalloc(struct session *s, size_t n)
{
	void *p = arena_alloc(s->box, n);
	if (!p)
		longjmp(s->jmp, JMP_OOM);
	return p;
}

static char *xstrndup(struct session *s, const char *p, size_t len)
{
	char *r = arena_strndup(s->box, p, len);
	if (!r)
		longjmp(s->jmp, JMP_OOM);
	return r;
}

static char *xstrdup(struct session *s, const char *p)
{
	return p ? xstrndup(s, p, strlen(p)) : NULL;
}

/* ---- diags ------------------------------------------------------------- */

static void vdiag(struct ig_diags *d, bool warning, const char *file, int line, const char *path,
		  const char *fmt, va_list ap)
{
	struct ig_diag *items = realloc(d->items, (d->n + 1) * sizeof(*items));
	if (!items)
		return;
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
		return;
	}
	d->n++;
}

static void note(struct ig_diags *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(d, true, "infergate", 0, NULL, fmt, ap);
	va_end(ap);
}

static void join(char *out, const char *parent, const char *key)
{
	if (!parent || !*parent)
		snprintf(out, PATH_LEN, "%s", key ? key : "");
	else if (!key || !*key)
		snprintf(out, PATH_LEN, "%s", parent);
	else
		snprintf(out, PATH_LEN, "%s%s%s", parent, key[0] == '[' ? "" : ".", key);
}

/* out = "parent.key[i]" (or "parent[i]" without a key). */
static void item(char *out, const char *parent, const char *key, size_t i)
{
	char base[PATH_LEN];
	join(base, parent, key);
	int n = snprintf(out, PATH_LEN, "%s[%zu]", base, i);
	if (n < 0 || n >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

__attribute__((format(printf, 5, 6))) static void err(struct session *s, int line,
						      const char *parent, const char *key,
						      const char *fmt, ...)
{
	char path[PATH_LEN];
	va_list ap;
	s->nerrors++;
	if (s->diags->n >= MAX_DIAGS) {
		s->nomitted++;
		return;
	}
	join(path, parent, key);
	va_start(ap, fmt);
	vdiag(s->diags, false, s->file, line, path, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 5, 6))) static void warn(struct session *s, int line,
						       const char *parent, const char *key,
						       const char *fmt, ...)
{
	char path[PATH_LEN];
	va_list ap;
	if (s->diags->n >= MAX_DIAGS) {
		s->nomitted++;
		return;
	}
	join(path, parent, key);
	va_start(ap, fmt);
	vdiag(s->diags, true, s->file, line, path, fmt, ap);
	va_end(ap);
}

/* ---- YAML access --------------------------------------------------------- */

static yaml_node_t *node_at(struct session *s, int idx)
{
	if (++s->visits > MAX_VISITS)
		longjmp(s->jmp, JMP_BUDGET);
	return yaml_document_get_node(s->doc, idx);
}



/* The value of `key` in a mapping, NULL when absent or null. *line gets the
 * key's line, or the mapping's when the key is absent. */
static yaml_node_t *get(struct session *s, yaml_node_t *map, const char *key, int *line)
{
	*line = ig_yaml_line(map);
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(s, p->key);
		if (!k || !ig_yaml_scalar_is(k, key))
			continue;
		yaml_node_t *v = node_at(s, p->value);
		*line = ig_yaml_line(k);
		return v && !ig_yaml_is_null(v) ? v : NULL;
	}
	return NULL;
}

static size_t seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static size_t map_len(const yaml_node_t *n)
{
	return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static yaml_node_t *seq_item(struct session *s, yaml_node_t *seq, size_t i)
{
	return node_at(s, seq->data.sequence.items.start[i]);
}

static yaml_node_t *get_typed(struct session *s, yaml_node_t *map, const char *parent,
			      const char *key, bool req, int *line, yaml_node_type_t type)
{
	static const char *const what[] = {
		[YAML_SCALAR_NODE] = "a string",
		[YAML_SEQUENCE_NODE] = "a list",
		[YAML_MAPPING_NODE] = "an object",
	};
	yaml_node_t *v = get(s, map, key, line);
	if (!v) {
		if (req)
			err(s, *line, parent, key, "is required");
		return NULL;
	}
	if (v->type != type) {
		err(s, *line, parent, key, "must be %s", what[type]);
		return NULL;
	}
	/* A block mapping starts at its first key, but a field missing from
	 * it is best reported at the key that holds it ("spec:"), so objects
	 * and lists take their key's line. Marks serve only messages. */
	if (type != YAML_SCALAR_NODE)
		v->start_mark.line = (size_t)(*line - 1);
	return v;
}

static yaml_node_t *get_map(struct session *s, yaml_node_t *map, const char *parent,
			    const char *key, bool req, int *line)
{
	return get_typed(s, map, parent, key, req, line, YAML_MAPPING_NODE);
}

static yaml_node_t *get_seq(struct session *s, yaml_node_t *map, const char *parent,
			    const char *key, bool req, int *line)
{
	return get_typed(s, map, parent, key, req, line, YAML_SEQUENCE_NODE);
}

static char *scalar_dup(struct session *s, yaml_node_t *n)
{
	return xstrndup(s, (const char *)n->data.scalar.value, n->data.scalar.length);
}

static char *get_str(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		     bool req, int *line)
{
	yaml_node_t *v = get_typed(s, map, parent, key, req, line, YAML_SCALAR_NODE);
	return v ? scalar_dup(s, v) : NULL;
}

/* Integers are plain scalars: a quoted "8000" is a string, as for the API
 * server. Returns true when the field is present and an integer. */
static bool get_int(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		    bool req, int *line, long long *out)
{
	yaml_node_t *v = get_typed(s, map, parent, key, req, line, YAML_SCALAR_NODE);
	if (!v)
		return false;
	const char *p = (const char *)v->data.scalar.value;
	size_t len = v->data.scalar.length;
	size_t i = (len > 0 && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
	bool ok = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len > i && len - i <= 12;
	for (size_t j = i; ok && j < len; j++)
		ok = p[j] >= '0' && p[j] <= '9';
	if (!ok) {
		err(s, *line, parent, key, "must be an integer");
		return false;
	}
	char buf[16];
	memcpy(buf, p, len);
	buf[len] = '\0';
	*out = strtoll(buf, NULL, 10);
	return true;
}

static bool get_int_range(struct session *s, yaml_node_t *map, const char *parent,
			  const char *key, bool req, long long lo, long long hi, int *out)
{
	long long v;
	int line;
	if (!get_int(s, map, parent, key, req, &line, &v))
		return false;
	if (v < lo || v > hi) {
		err(s, line, parent, key, "must be between %lld and %lld", lo, hi);
		return false;
	}
	*out = (int)v;
	return true;
}

static void check_items(struct session *s, yaml_node_t *seq, int line, const char *parent,
			const char *key, size_t min, size_t max)
{
	size_t n = seq_len(seq);
	if (n < min)
		err(s, line, parent, key, "must have at least %zu item%s", min, min == 1 ? "" : "s");
	else if (n > max)
		err(s, line, parent, key, "must have at most %zu items", max);
}

static void check_len(struct session *s, const char *v, int line, const char *parent,
		      const char *key, size_t min, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	if (!v)
		return;
	if (n < min)
		err(s, line, parent, key, "must not be empty");
	else if (n > max)
		err(s, line, parent, key, "must be at most %zu characters", max);
}

static bool one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(v, *set) == 0)
			return true;
	return false;
}

static void check_enum(struct session *s, const char *v, int line, const char *parent,
		       const char *key, const char *const *set)
{
	char list[PATH_LEN] = "";
	if (!v || one_of(v, set))
		return;
	for (const char *const *p = set; *p; p++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", *p);
	}
	err(s, line, parent, key, "must be one of %s", list);
}

/* ---- name patterns ------------------------------------------------------- */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..max characters. */
static bool dns_label(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max || !is_lower_alnum(p[0]) || !is_lower_alnum(p[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(p[i]) && p[i] != '-')
			return false;
	return true;
}

/* Dot-separated DNS labels, at most 253 characters in all. */
static bool dns_subdomain(const char *p, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (;;) {
		const char *dot = memchr(p, '.', len);
		size_t l = dot ? (size_t)(dot - p) : len;
		if (!dns_label(p, l, 253))
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

static bool label_key_ok(const char *k)
{
	size_t len = strlen(k);
	const char *slash = strchr(k, '/');
	if (len > 253)
		return false;
	if (!slash)
		return label_name(k, len);
	return dns_subdomain(k, (size_t)(slash - k)) &&
	       label_name(slash + 1, len - (size_t)(slash - k) - 1);
}

static bool label_value_ok(const char *v)
{
	return *v == '\0' || label_name(v, strlen(v));
}

static bool group_ok(const char *g)
{
	return *g == '\0' || dns_subdomain(g, strlen(g));
}

static bool kind_ok(const char *k)
{
	size_t len = strlen(k);
	if (len == 0 || len > 63 || !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z')) ||
	    !is_alnum(k[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(k[i]) && k[i] != '-')
			return false;
	return true;
}

static bool hostname_ok(const char *h)
{
	if (strncmp(h, "*.", 2) == 0)
		h += 2;
	return dns_subdomain(h, strlen(h));
}

static bool header_name_ok(const char *h)
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

static void check_group(struct session *s, const char *v, int line, const char *parent,
			const char *key)
{
	if (v && !group_ok(v))
		err(s, line, parent, key,
		    "must be empty or a lowercase DNS subdomain (e.g. inference.networking.k8s.io)");
}

static void check_kind(struct session *s, const char *v, int line, const char *parent,
		       const char *key)
{
	if (v && !kind_ok(v))
		err(s, line, parent, key,
		    "must be 1 to 63 letters, digits or '-', starting with a letter");
}

static void check_object_name(struct session *s, const char *v, int line, const char *parent,
			      const char *key)
{
	check_len(s, v, line, parent, key, 1, 253);
}

/* ---- time ---------------------------------------------------------------- */

/* RFC 3339 ("2025-03-25T10:00:00Z", fractions and offsets allowed) to Unix
 * seconds. Returns -1 when the text is not such a time. */
static int parse_time(const char *t, double *out)
{
	struct tm tm = {0};
	int n = 0;
	if (strlen(t) < 20 || sscanf(t, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 ||
	    n != 10 || (t[10] != 'T' && t[10] != 't' && t[10] != ' '))
		return -1;
	if (sscanf(t + 11, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 8)
		return -1;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	const char *p = t + 19;
	double frac = 0, scale = 0.1;
	if (*p == '.') {
		if (!(p[1] >= '0' && p[1] <= '9'))
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return -1;
		off = (*p == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (double)timegm(&tm) - (double)off + frac;
	return 0;
}

/* ---- metadata ------------------------------------------------------------ */

static struct ig_kv *decode_labels(struct session *s, yaml_node_t *map, int line,
				   const char *parent, const char *key, size_t *n)
{
	char path[PATH_LEN];
	join(path, parent, key);
	size_t cnt = map_len(map);
	struct ig_kv *kv = xalloc(s, (cnt ? cnt : 1) * sizeof(*kv));
	*n = 0;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
		yaml_node_t *k = node_at(s, p->key), *v = node_at(s, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
			err(s, k ? ig_yaml_line(k) : line, path, NULL, "labels must be string: string pairs");
			continue;
		}
		char *ks = scalar_dup(s, k), *vs = ig_yaml_is_null(v) ? xstrdup(s, "") : scalar_dup(s, v);
		if (!label_key_ok(ks))
			err(s, ig_yaml_line(k), path, ks,
			    "invalid label key: up to 63 letters, digits, '-', '_' or '.', optionally prefixed by a DNS subdomain and '/'");
		else if (strlen(vs) > 63 || !label_value_ok(vs))
			err(s, ig_yaml_line(k), path, ks,
			    "invalid label value \"%s\": up to 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit",
			    vs);
		kv[*n].key = ks;
		kv[*n].value = vs;
		(*n)++;
	}
	return kv;
}

static void decode_meta(struct session *s, yaml_node_t *root, const char *api, const char *kind,
			struct ig_meta *m)
{
	int line;
	m->api_version = xstrdup(s, api);
	m->kind = xstrdup(s, kind);
	m->file = xstrdup(s, s->file);
	m->line = ig_yaml_line(root);
	m->seq = s->box->next_seq++;
	m->ns = "default";
	yaml_node_t *md = get_map(s, root, "", "metadata", true, &line);
	if (!md)
		return;
	m->name = get_str(s, md, "metadata", "name", true, &line);
	if (m->name && !dns_subdomain(m->name, strlen(m->name)))
		err(s, line, "metadata", "name",
		    "must be a lowercase RFC 1123 subdomain (letters, digits, '-' and '.', at most 253 characters)");
	char *ns = get_str(s, md, "metadata", "namespace", false, &line);
	if (ns && !dns_label(ns, strlen(ns), 63))
		err(s, line, "metadata", "namespace",
		    "must be a lowercase RFC 1123 label (letters, digits and '-', at most 63 characters)");
	if (ns)
		m->ns = ns;
	m->creation_timestamp = get_str(s, md, "metadata", "creationTimestamp", false, &line);
	double t;
	if (m->creation_timestamp && parse_time(m->creation_timestamp, &t) < 0)
		err(s, line, "metadata", "creationTimestamp",
		    "must be an RFC 3339 time (e.g. 2025-03-25T10:00:00Z)");
	yaml_node_t *labels = get_map(s, md, "metadata", "labels", false, &line);
	if (labels)
		m->labels = decode_labels(s, labels, line, "metadata", "labels", &m->nlabels);
}

static void add_ref(struct session *s, const char *kind, const char *ns, const char *name,
		    int line, const char *path)
{
	if (!name)
		return;
	struct ref *r = push((void **)&s->refs, &s->nrefs, &s->caprefs, sizeof(*r));
	if (!r)
		longjmp(s->jmp, JMP_OOM);
	*r = (struct ref){kind, ns, name, s->file, line, xstrdup(s, path)};
}

/* ---- Gateway --------------------------------------------------------------- */

static const char *const protocols[] = {"HTTP", "HTTPS", "TLS", "TCP", "UDP", NULL};

static void decode_listener(struct session *s, yaml_node_t *n, const char *path,
			    struct ig_listener *l)
{
	int line;
	if (n->type != YAML_MAPPING_NODE) {
		err(s, ig_yaml_line(n), path, NULL, "must be an object");
		return;
	}
	l->name = get_str(s, n, path, "name", true, &line);
	if (l->name && !dns_subdomain(l->name, strlen(l->name)))
		err(s, line, path, "name", "must be a lowercase RFC 1123 subdomain");
	l->protocol = get_str(s, n, path, "protocol", true, &line);
	/* Implementation-specific protocols are written "domain/Name". */
	if (l->protocol && !strchr(l->protocol, '/'))
		check_enum(s, l->protocol, line, path, "protocol", protocols);
	get_int_range(s, n, path, "port", true, 1, 65535, &l->port);
	l->hostname = get_str(s, n, path, "hostname", false, &line);
	if (l->hostname && !hostname_ok(l->hostname))
		err(s, line, path, "hostname",
		    "must be a lowercase DNS name, optionally starting with \"*.\"");
}

static void decode_gateway(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_gateway g = {0};
	int line;
	char path[PATH_LEN];
	decode_meta(s, root, api, "Gateway", &g.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	yaml_node_t *ls = NULL;
	if (spec) {
		g.class_name = get_str(s, spec, "spec", "gatewayClassName", true, &line);
		check_object_name(s, g.class_name, line, "spec", "gatewayClassName");
		ls = get_seq(s, spec, "spec", "listeners", true, &line);
	}
	if (ls) {
		check_items(s, ls, line, "spec", "listeners", 1, 64);
		g.nlisteners = seq_len(ls);
		g.listeners = xalloc(s, (g.nlisteners + 1) * sizeof(*g.listeners));
	}
	for (size_t i = 0; i < g.nlisteners; i++) {
		yaml_node_t *n = seq_item(s, ls, i);
		item(path, "spec", "listeners", i);
		if (!n)
			continue;
		decode_listener(s, n, path, &g.listeners[i]);
		for (size_t j = 0; j < i && g.listeners[i].name; j++)
			if (g.listeners[j].name && !strcmp(g.listeners[j].name, g.listeners[i].name))
				err(s, ig_yaml_line(n), path, "name",
				    "listener name \"%s\" is not unique (also spec.listeners[%zu])",
				    g.listeners[i].name, j);
	}
	struct box *b = s->box;
	struct ig_gateway *p = push((void **)&b->cfg.gateways, &b->cfg.ngateways,
				    &b->cap[K_GATEWAY], sizeof(*p));
	if (!p)
		longjmp(s->jmp, JMP_OOM);
	*p = g;
}

/* ---- HTTPRoute ------------------------------------------------------------- */

static void decode_parent(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *m, struct ig_parent_ref *r)
{
	int line;
	r->group = get_str(s, n, path, "group", false, &line);
	check_group(s, r->group, line, path, "group");
	r->kind = get_str(s, n, path, "kind", false, &line);
	check_kind(s, r->kind, line, path, "kind");
	r->ns = get_str(s, n, path, "namespace", false, &line);
	if (r->ns && !dns_label(r->ns, strlen(r->ns), 63))
		err(s, line, path, "namespace", "must be a lowercase RFC 1123 label");
	r->name = get_str(s, n, path, "name", true, &line);
	check_object_name(s, r->name, line, path, "name");
	r->section_name = get_str(s, n, path, "sectionName", false, &line);
	if (r->section_name && !dns_subdomain(r->section_name, strlen(r->section_name)))
		err(s, line, path, "sectionName", "must be a lowercase RFC 1123 subdomain");
	get_int_range(s, n, path, "port", false, 1, 65535, &r->port);
	if (!r->group)
		r->group = "gateway.networking.k8s.io";
	if (!r->kind)
		r->kind = "Gateway";
	if (!r->ns)
		r->ns = m->ns;
	if (!strcmp(r->group, "gateway.networking.k8s.io") && !strcmp(r->kind, "Gateway"))
		add_ref(s, "Gateway", r->ns, r->name, ig_yaml_line(n), path);
}

/* CEL rules of the Gateway API for Exact and PathPrefix values. */
static const char *path_value_problem(const char *v)
{
	static const char *const bad[] = {"//", "/./", "/../", "%2f", "%2F", "#", NULL};
	static const char ok[] = "-/._~!$&'()*+,;=:@%";
	size_t len = strlen(v);
	if (v[0] != '/')
		return "must be an absolute path starting with '/'";
	for (const char *const *b = bad; *b; b++)
		if (strstr(v, *b))
			return "must not contain '//', '/./', '/../', '%2f', '%2F' or '#'";
	if ((len >= 3 && !strcmp(v + len - 3, "/..")) || (len >= 2 && !strcmp(v + len - 2, "/.")))
		return "must not end with '/..' or '/.'";
	for (const char *p = v; *p; p++)
		if (!is_alnum(*p) && !strchr(ok, *p))
			return "contains a character that is not allowed in a URL path";
	return NULL;
}

static void decode_path(struct session *s, yaml_node_t *n, const char *parent,
			struct ig_route_match *m)
{
	static const char *const types[] = {"Exact", "PathPrefix", "RegularExpression", NULL};
	char path[PATH_LEN];
	int line;
	join(path, parent, "path");
	char *type = get_str(s, n, path, "type", false, &line);
	check_enum(s, type, line, path, "type", types);
	if (type && !strcmp(type, "Exact"))
		m->path_type = IG_PATH_EXACT;
	else if (type && !strcmp(type, "RegularExpression"))
		m->path_type = IG_PATH_REGEX;
	char *v = get_str(s, n, path, "value", false, &line);
	if (v) {
		m->path = v;
		check_len(s, v, line, path, "value", 0, 1024);
		const char *why = m->path_type == IG_PATH_REGEX ? NULL : path_value_problem(v);
		if (why)
			err(s, line, path, "value", "%s", why);
	}
}

static struct ig_header_match *decode_value_matches(struct session *s, yaml_node_t *seq,
						    const char *parent, const char *key,
						    size_t maxval, size_t *n)
{
	static const char *const types[] = {"Exact", "RegularExpression", NULL};
	char path[PATH_LEN], base[PATH_LEN];
	int line;
	join(base, parent, key);
	*n = seq_len(seq);
	struct ig_header_match *hm = xalloc(s, (*n + 1) * sizeof(*hm));
	for (size_t i = 0; i < *n; i++) {
		yaml_node_t *h = seq_item(s, seq, i);
		item(path, base, NULL, i);
		if (!h)
			continue;
		if (h->type != YAML_MAPPING_NODE) {
			err(s, ig_yaml_line(h), path, NULL, "must be an object");
			continue;
		}
		char *type = get_str(s, h, path, "type", false, &line);
		check_enum(s, type, line, path, "type", types);
		hm[i].type = type && !strcmp(type, "RegularExpression") ? IG_MATCH_REGEX : IG_MATCH_EXACT;
		hm[i].name = get_str(s, h, path, "name", true, &line);
		if (hm[i].name && !header_name_ok(hm[i].name))
			err(s, line, path, "name",
			    "must be 1 to 256 token characters (letters, digits, !#$%%&'*+-.^_`|~)");
		hm[i].value = get_str(s, h, path, "value", true, &line);
		check_len(s, hm[i].value, line, path, "value", 1, maxval);
	}
	return hm;
}

static void decode_match(struct session *s, yaml_node_t *n, const char *path,
			 struct ig_route_match *m)
{
	static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",   "DELETE",
					      "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};
	int line;
	m->path_type = IG_PATH_PREFIX;
	m->path = "/";
	if (n->type != YAML_MAPPING_NODE) {
		err(s, ig_yaml_line(n), path, NULL, "must be an object");
		return;
	}
	yaml_node_t *p = get_map(s, n, path, "path", false, &line);
	if (p)
		decode_path(s, p, path, m);
	yaml_node_t *h = get_seq(s, n, path, "headers", false, &line);
	if (h) {
		check_items(s, h, line, path, "headers", 0, 16);
		m->headers = decode_value_matches(s, h, path, "headers", 4096, &m->nheaders);
	}
	yaml_node_t *q = get_seq(s, n, path, "queryParams", false, &line);
	if (q) {
		check_items(s, q, line, path, "queryParams", 0, 16);
		m->query = decode_value_matches(s, q, path, "queryParams", 1024, &m->nquery);
	}
	m->method = get_str(s, n, path, "method", false, &line);
	check_enum(s, m->method, line, path, "method", methods);
}

static void decode_backend(struct session *s, yaml_node_t *n, const char *path,
			   const struct ig_meta *m, struct ig_backend_ref *b)
{
	int line;
	b->weight = 1;
	if (n->type != YAML_MAPPING_NODE) {
		err(s, ig_yaml_line(n), path, NULL, "must be an object");
		return;
	}
	b->group = get_str(s, n, path, "group", false, &line);
	check_group(s, b->group, line, path, "group");
	b->kind = get_str(s, n, path, "kind", false, &line);
	check_kind(s, b->kind, line, path, "kind");
	b->ns = get_str(s, n, path, "namespace", false, &line);
	if (b->ns && !dns_label(b->ns, strlen(b->ns), 63))
		err(s, line, path, "namespace", "must be a lowercase RFC 1123 label");
	b->name = get_str(s, n, path, "name", true, &line);
	check_object_name(s, b->name, line, path, "name");
	get_int_range(s, n, path, "port", false, 1, 65535, &b->port);
	get_int_range(s, n, path, "weight", false, 0, 1000000, &b->weight);
	if (!b->group)
		b->group = "";
	if (!b->kind)
		b->kind = "Service";
	if (!b->ns)
		b->ns = m->ns;
	if (!*b->group && !strcmp(b->kind, "Service") && b->port == 0 &&
	    !get(s, n, "port", &line))
		err(s, ig_yaml_line(n), path, NULL, "must have port for Service reference");
	if (!strcmp(b->kind, "InferencePool") &&
	    (!strcmp(b->group, "inference.networking.x-k8s.io") ||
	     !strcmp(b->group, "inference.networking.k8s.io")))
		add_ref(s, "InferencePool", b->ns, b->name, ig_yaml_line(n), path);
}

static uint64_t decode_duration(struct session *s, yaml_node_t *n, const char *path,
				const char *key, bool *set)
{
	int line;
	uint64_t ms = 0;
	char *v = get_str(s, n, path, key, false, &line);
	*set = false;
	if (!v)
		return 0;
	if (ig_parse_duration_ms(v, &ms) < 0) {
		err(s, line, path, key,
		    "must be a Gateway API duration: 1 to 4 parts of up to 5 digits with unit h, m, s or ms (e.g. 10s, 1h30m)");
		return 0;
	}
	*set = true;
	return ms;
}

static void decode_timeouts(struct session *s, yaml_node_t *n, const char *path,
			    struct ig_route_rule *r)
{
	bool has_req, has_be;
	int line;
	r->timeout_request_ms = decode_duration(s, n, path, "request", &has_req);
	r->timeout_backend_ms = decode_duration(s, n, path, "backendRequest", &has_be);
	get(s, n, "backendRequest", &line);
	if (has_req && has_be && r->timeout_request_ms != 0 &&
	    r->timeout_backend_ms > r->timeout_request_ms)
		err(s, line, path, "backendRequest",
		    "backendRequest timeout cannot be longer than request timeout");
}

static size_t decode_matches(struct session *s, yaml_node_t *n, const char *path,
			     struct ig_route_rule *r)
{
	char sub[PATH_LEN];
	int line;
	yaml_node_t *ms = get_seq(s, n, path, "matches", false, &line);
	size_t cnt = ms ? seq_len(ms) : 0;
	if (ms)
		check_items(s, ms, line, path, "matches", 0, 64);
	/* Absent and [] both mean one match-everything entry. */
	r->nmatches = cnt ? cnt : 1;
	r->matches = xalloc(s, r->nmatches * sizeof(*r->matches));
	r->matches[0] = (struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *m = seq_item(s, ms, i);
		item(sub, path, "matches", i);
		if (m)
			decode_match(s, m, sub, &r->matches[i]);
	}
	return cnt;
}

static size_t decode_rule(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *m, struct ig_route_rule *r)
{
	char sub[PATH_LEN];
	int line;
	if (n->type != YAML_MAPPING_NODE) {
		err(s, ig_yaml_line(n), path, NULL, "must be an object");
		r->nmatches = 1;
		r->matches = xalloc(s, sizeof(*r->matches));
		r->matches[0] = (struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
		return 0;
	}
	r->name = get_str(s, n, path, "name", false, &line);
	if (r->name && !dns_subdomain(r->name, strlen(r->name)))
		err(s, line, path, "name", "must be a lowercase RFC 1123 subdomain");
	size_t nm = decode_matches(s, n, path, r);
	yaml_node_t *bs = get_seq(s, n, path, "backendRefs", false, &line);
	if (bs) {
		check_items(s, bs, line, path, "backendRefs", 0, 16);
		r->nbackends = seq_len(bs);
		r->backends = xalloc(s, (r->nbackends + 1) * sizeof(*r->backends));
	}
	for (size_t i = 0; i < r->nbackends; i++) {
		yaml_node_t *b = seq_item(s, bs, i);
		item(sub, path, "backendRefs", i);
		if (b)
			decode_backend(s, b, sub, m, &r->backends[i]);
	}
	yaml_node_t *t = get_map(s, n, path, "timeouts", false, &line);
	if (t) {
		join(sub, path, "timeouts");
		decode_timeouts(s, t, sub, r);
	}
	return nm;
}

static void decode_rules(struct session *s, yaml_node_t *spec, struct ig_httproute *rt)
{
	char path[PATH_LEN];
	int line;
	yaml_node_t *rs = spec ? get_seq(s, spec, "spec", "rules", false, &line) : NULL;
	size_t cnt = rs ? seq_len(rs) : 0, total = 0;
	if (rs)
		check_items(s, rs, line, "spec", "rules", 0, 16);
	rt->nrules = cnt ? cnt : 1;
	rt->rules = xalloc(s, rt->nrules * sizeof(*rt->rules));
	if (!cnt) {
		rt->rules[0].nmatches = 1;
		rt->rules[0].matches = xalloc(s, sizeof(struct ig_route_match));
		rt->rules[0].matches[0] =
			(struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
		return;
	}
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *r = seq_item(s, rs, i);
		item(path, "spec", "rules", i);
		if (!r) {
			rt->rules[i].nmatches = 1;
			rt->rules[i].matches = xalloc(s, sizeof(struct ig_route_match));
			rt->rules[i].matches[0] =
				(struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
			continue;
		}
		total += decode_rule(s, r, path, &rt->meta, &rt->rules[i]);
		for (size_t j = 0; j < i && rt->rules[i].name; j++)
			if (rt->rules[j].name && !strcmp(rt->rules[j].name, rt->rules[i].name))
				err(s, ig_yaml_line(r), path, "name", "rule name \"%s\" is not unique",
				    rt->rules[i].name);
	}
	if (total > 128)
		err(s, line, "spec", "rules", "must have at most 128 matches over all rules");
}

static void decode_route(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_httproute rt = {0};
	char path[PATH_LEN];
	int line;
	decode_meta(s, root, api, "HTTPRoute", &rt.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	yaml_node_t *ps = spec ? get_seq(s, spec, "spec", "parentRefs", false, &line) : NULL;
	if (ps) {
		check_items(s, ps, line, "spec", "parentRefs", 0, 32);
		rt.nparents = seq_len(ps);
		rt.parents = xalloc(s, (rt.nparents + 1) * sizeof(*rt.parents));
	}
	for (size_t i = 0; i < rt.nparents; i++) {
		yaml_node_t *p = seq_item(s, ps, i);
		item(path, "spec", "parentRefs", i);
		if (p && p->type != YAML_MAPPING_NODE)
			err(s, ig_yaml_line(p), path, NULL, "must be an object");
		else if (p)
			decode_parent(s, p, path, &rt.meta, &rt.parents[i]);
	}
	yaml_node_t *hs = spec ? get_seq(s, spec, "spec", "hostnames", false, &line) : NULL;
	if (hs) {
		check_items(s, hs, line, "spec", "hostnames", 0, 16);
		rt.nhostnames = seq_len(hs);
		rt.hostnames = xalloc(s, (rt.nhostnames + 1) * sizeof(char *));
	}
	for (size_t i = 0; i < rt.nhostnames; i++) {
		yaml_node_t *h = seq_item(s, hs, i);
		item(path, "spec", "hostnames", i);
		if (!h || h->type != YAML_SCALAR_NODE) {
			err(s, h ? ig_yaml_line(h) : line, path, NULL, "must be a string");
			rt.hostnames[i] = "";
			continue;
		}
		rt.hostnames[i] = scalar_dup(s, h);
		if (!hostname_ok(rt.hostnames[i]))
			err(s, ig_yaml_line(h), path, NULL,
			    "must be a lowercase DNS name, optionally starting with \"*.\"");
	}
	decode_rules(s, spec, &rt);
	struct box *b = s->box;
	struct ig_httproute *p = push((void **)&b->cfg.routes, &b->cfg.nroutes, &b->cap[K_ROUTE],
				      sizeof(*p));
	if (!p)
		longjmp(s->jmp, JMP_OOM);
	*p = rt;
}

/* ---- InferencePool ----------------------------------------------------------- */

static const char *const failure_modes[] = {"FailOpen", "FailClose", NULL};

static void decode_epp(struct session *s, yaml_node_t *n, const char *path, struct ig_pool *p)
{
	int line, kline;
	char *group = get_str(s, n, path, "group", false, &line);
	check_group(s, group, line, path, "group");
	p->epp_kind = get_str(s, n, path, "kind", false, &kline);
	check_kind(s, p->epp_kind, kline, path, "kind");
	p->epp_name = get_str(s, n, path, "name", true, &line);
	check_object_name(s, p->epp_name, line, path, "name");
	if (p->v1) {
		char sub[PATH_LEN];
		yaml_node_t *port = get_map(s, n, path, "port", false, &line);
		join(sub, path, "port");
		if (port)
			get_int_range(s, port, sub, "number", true, 1, 65535, &p->epp_port);
		if ((!p->epp_kind || !strcmp(p->epp_kind, "Service")) && !get(s, n, "port", &line))
			err(s, ig_yaml_line(n), path, NULL,
			    "port is required when kind is 'Service' or unspecified (defaults to 'Service')");
	} else {
		get_int_range(s, n, path, "portNumber", false, 1, 65535, &p->epp_port);
	}
	char *fm = get_str(s, n, path, "failureMode", false, &line);
	check_enum(s, fm, line, path, "failureMode", failure_modes);
	p->failure_mode = fm && !strcmp(fm, "FailOpen") ? IG_FAIL_OPEN : IG_FAIL_CLOSE;
	if (!p->epp_kind)
		p->epp_kind = "Service";
}

static void decode_pool_v1alpha2(struct session *s, yaml_node_t *spec, struct ig_pool *p)
{
	int line;
	yaml_node_t *sel = get_map(s, spec, "spec", "selector", true, &line);
	if (sel)
		p->selector = decode_labels(s, sel, line, "spec", "selector", &p->nselector);
	p->target_ports = xalloc(s, sizeof(int));
	if (get_int_range(s, spec, "spec", "targetPortNumber", true, 1, 65535, &p->target_ports[0]))
		p->nports = 1;
	yaml_node_t *ext = get_map(s, spec, "spec", "extensionRef", true, &line);
	if (ext)
		decode_epp(s, ext, "spec.extensionRef", p);
}

static void decode_target_ports(struct session *s, yaml_node_t *seq, int line, struct ig_pool *p)
{
	char path[PATH_LEN];
	size_t n = seq_len(seq);
	check_items(s, seq, line, "spec", "targetPorts", 1, 8);
	p->target_ports = xalloc(s, (n + 1) * sizeof(int));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *t = seq_item(s, seq, i);
		item(path, "spec", "targetPorts", i);
		if (!t)
			continue;
		if (t->type != YAML_MAPPING_NODE) {
			err(s, ig_yaml_line(t), path, NULL, "must be an object");
			continue;
		}
		int port = 0;
		if (!get_int_range(s, t, path, "number", true, 1, 65535, &port))
			continue;
		bool dup = false;
		for (size_t j = 0; j < p->nports; j++)
			dup |= p->target_ports[j] == port;
		if (dup)
			err(s, ig_yaml_line(t), "spec", "targetPorts", "port number must be unique");
		else
			p->target_ports[p->nports++] = port;
	}
}

static void decode_pool_v1(struct session *s, yaml_node_t *spec, struct ig_pool *p)
{
	int line;
	yaml_node_t *sel = get_map(s, spec, "spec", "selector", true, &line);
	yaml_node_t *ml = sel ? get_map(s, sel, "spec.selector", "matchLabels", true, &line) : NULL;
	if (ml) {
		size_t n = map_len(ml);
		if (n < 1 || n > 64)
			err(s, line, "spec.selector", "matchLabels",
			    "must have between 1 and 64 labels");
		p->selector = decode_labels(s, ml, line, "spec.selector", "matchLabels", &p->nselector);
	}
	yaml_node_t *tp = get_seq(s, spec, "spec", "targetPorts", true, &line);
	if (tp)
		decode_target_ports(s, tp, line, p);
	yaml_node_t *epp = get_map(s, spec, "spec", "endpointPickerRef", false, &line);
	if (epp)
		decode_epp(s, epp, "spec.endpointPickerRef", p);
}

static void decode_pool(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_pool p = {0};
	int line;
	p.v1 = !strcmp(api, "inference.networking.k8s.io/v1");
	p.epp_kind = "Service";
	decode_meta(s, root, api, "InferencePool", &p.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	if (spec && p.v1)
		decode_pool_v1(s, spec, &p);
	else if (spec)
		decode_pool_v1alpha2(s, spec, &p);
	struct box *b = s->box;
	struct ig_pool *q = push((void **)&b->cfg.pools, &b->cfg.npools, &b->cap[K_POOL], sizeof(*q));
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = p;
}

/* ---- InferenceModel, InferenceObjective ------------------------------------------ */

static void decode_pool_ref(struct session *s, yaml_node_t *spec, const struct ig_meta *m,
			    const char *default_group, char **name, char **group)
{
	int line;
	yaml_node_t *ref = get_map(s, spec, "spec", "poolRef", true, &line);
	if (!ref)
		return;
	*group = get_str(s, ref, "spec.poolRef", "group", false, &line);
	check_group(s, *group, line, "spec.poolRef", "group");
	char *kind = get_str(s, ref, "spec.poolRef", "kind", false, &line);
	check_kind(s, kind, line, "spec.poolRef", "kind");
	*name = get_str(s, ref, "spec.poolRef", "name", true, &line);
	check_object_name(s, *name, line, "spec.poolRef", "name");
	if (!*group)
		*group = (char *)default_group;
	add_ref(s, "InferencePool", m->ns, *name, ig_yaml_line(ref), "spec.poolRef");
}

static void decode_targets(struct session *s, yaml_node_t *seq, int line, struct ig_model *m)
{
	char path[PATH_LEN];
	size_t with = 0;
	int iline;
	check_items(s, seq, line, "spec", "targetModels", 0, 10);
	m->ntargets = seq_len(seq);
	m->targets = xalloc(s, (m->ntargets + 1) * sizeof(*m->targets));
	for (size_t i = 0; i < m->ntargets; i++) {
		yaml_node_t *t = seq_item(s, seq, i);
		struct ig_target_model *tm = &m->targets[i];
		item(path, "spec", "targetModels", i);
		if (!t)
			continue;
		if (t->type != YAML_MAPPING_NODE) {
			err(s, ig_yaml_line(t), path, NULL, "must be an object");
			continue;
		}
		tm->name = get_str(s, t, path, "name", true, &iline);
		check_len(s, tm->name, iline, path, "name", 0, 253);
		if (get(s, t, "weight", &iline)) {
			with++;
			tm->has_weight = true;
			get_int_range(s, t, path, "weight", false, 1, 1000000, &tm->weight);
		}
	}
	if (with != 0 && with != m->ntargets)
		err(s, line, "spec", "targetModels",
		    "Weights should be set for all models, or none of the models.");
}

static void decode_model(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const crits[] = {"Critical", "Standard", "Sheddable", NULL};
	struct ig_model m = {.accepted = true};
	int line;
	decode_meta(s, root, api, "InferenceModel", &m.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	if (spec) {
		m.model_name = get_str(s, spec, "spec", "modelName", true, &line);
		check_len(s, m.model_name, line, "spec", "modelName", 0, 256);
		char *c = get_str(s, spec, "spec", "criticality", false, &line);
		check_enum(s, c, line, "spec", "criticality", crits);
		if (c)
			m.criticality = !strcmp(c, "Critical")	 ? IG_CRIT_CRITICAL
					: !strcmp(c, "Standard") ? IG_CRIT_STANDARD
					: !strcmp(c, "Sheddable") ? IG_CRIT_SHEDDABLE
								  : IG_CRIT_UNSET;
		decode_pool_ref(s, spec, &m.meta, "inference.networking.x-k8s.io", &m.pool_name,
				&m.pool_group);
		yaml_node_t *tms = get_seq(s, spec, "spec", "targetModels", false, &line);
		if (tms)
			decode_targets(s, tms, line, &m);
	}
	struct box *b = s->box;
	struct ig_model *q = push((void **)&b->cfg.models, &b->cfg.nmodels, &b->cap[K_MODEL],
				  sizeof(*q));
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = m;
}

static void decode_objective(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_objective o = {0};
	int line;
	long long prio;
	decode_meta(s, root, api, "InferenceObjective", &o.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	if (spec) {
		if (get_int(s, spec, "spec", "priority", false, &line, &prio)) {
			if (prio < INT32_MIN || prio > INT32_MAX)
				err(s, line, "spec", "priority", "must fit in 32 bits");
			else
				o.priority = (int)prio, o.has_priority = true;
		}
		decode_pool_ref(s, spec, &o.meta, "inference.networking.k8s.io", &o.pool_name,
				&o.pool_group);
	}
	struct box *b = s->box;
	struct ig_objective *q = push((void **)&b->cfg.objectives, &b->cfg.nobjectives,
				      &b->cap[K_OBJECTIVE], sizeof(*q));
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = o;
}

/* ---- Pod, Deployment ------------------------------------------------------------ */

static bool pod_ready(struct session *s, yaml_node_t *status)
{
	int line;
	yaml_node_t *conds = get_seq(s, status, "status", "conditions", false, &line);
	if (!conds || seq_len(conds) == 0)
		return true;
	for (size_t i = 0; i < seq_len(conds); i++) {
		yaml_node_t *c = seq_item(s, conds, i);
		if (c && c->type != YAML_MAPPING_NODE) {
			char path[PATH_LEN];
			item(path, "status", "conditions", i);
			err(s, ig_yaml_line(c), path, NULL, "must be an object");
		}
		if (!c || c->type != YAML_MAPPING_NODE)
			continue;
		yaml_node_t *t = get(s, c, "type", &line), *st = get(s, c, "status", &line);
		if (t && st && ig_yaml_scalar_is(t, "Ready"))
			return ig_yaml_scalar_is(st, "True");
	}
	return false;
}

static void decode_pod(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_pod p = {0};
	int line;
	decode_meta(s, root, api, "Pod", &p.meta);
	yaml_node_t *md = get(s, root, "metadata", &line);
	if (md && md->type == YAML_MAPPING_NODE && get(s, md, "deletionTimestamp", &line))
		p.deleting = true;
	p.ready = true;
	yaml_node_t *st = get_map(s, root, "", "status", false, &line);
	if (st) {
		p.ip = get_str(s, st, "status", "podIP", false, &line);
		yaml_node_t *ips = get_seq(s, st, "status", "podIPs", false, &line);
		if (!p.ip && ips && seq_len(ips) > 0) {
			yaml_node_t *first = seq_item(s, ips, 0);
			if (first && first->type == YAML_MAPPING_NODE)
				p.ip = get_str(s, first, "status.podIPs[0]", "ip", false, &line);
			else if (first)
				err(s, ig_yaml_line(first), "status.podIPs[0]", NULL, "must be an object");
		}
		p.ready = pod_ready(s, st);
	}
	struct box *b = s->box;
	struct ig_pod *q = push((void **)&b->cfg.pods, &b->cfg.npods, &b->cap[K_POD], sizeof(*q));
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = p;
}

static char **decode_strings(struct session *s, yaml_node_t *map, const char *path,
			     const char *key, size_t *n)
{
	int line;
	char sub[PATH_LEN];
	yaml_node_t *seq = get_seq(s, map, path, key, false, &line);
	*n = 0;
	if (!seq)
		return NULL;
	char **v = xalloc(s, (seq_len(seq) + 1) * sizeof(char *));
	for (size_t i = 0; i < seq_len(seq); i++) {
		yaml_node_t *it = seq_item(s, seq, i);
		if (it && it->type == YAML_SCALAR_NODE) {
			v[(*n)++] = scalar_dup(s, it);
			continue;
		}
		item(sub, path, key, i);
		err(s, it ? ig_yaml_line(it) : line, sub, NULL, "must be a string");
	}
	return v;
}

static void decode_container(struct session *s, yaml_node_t *n, const char *path,
			     struct ig_container *c)
{
	char sub[PATH_LEN];
	int line;
	c->name = get_str(s, n, path, "name", true, &line);
	c->command = decode_strings(s, n, path, "command", &c->ncommand);
	c->args = decode_strings(s, n, path, "args", &c->nargs);
	yaml_node_t *ports = get_seq(s, n, path, "ports", false, &line);
	if (!ports)
		return;
	c->ports = xalloc(s, (seq_len(ports) + 1) * sizeof(int));
	for (size_t i = 0; i < seq_len(ports); i++) {
		yaml_node_t *p = seq_item(s, ports, i);
		item(sub, path, "ports", i);
		if (p && p->type == YAML_MAPPING_NODE &&
		    get_int_range(s, p, sub, "containerPort", true, 1, 65535, &c->ports[c->nports]))
			c->nports++;
		else if (p && p->type != YAML_MAPPING_NODE)
			err(s, ig_yaml_line(p), sub, NULL, "must be an object");
	}
}

static void decode_pod_template(struct session *s, yaml_node_t *spec, struct ig_deployment *d)
{
	char path[PATH_LEN];
	int line;
	yaml_node_t *tpl = get_map(s, spec, "spec", "template", false, &line);
	if (!tpl)
		return;
	yaml_node_t *md = get_map(s, tpl, "spec.template", "metadata", false, &line);
	yaml_node_t *labels = md ? get_map(s, md, "spec.template.metadata", "labels", false, &line)
				 : NULL;
	if (labels)
		d->template_labels = decode_labels(s, labels, line, "spec.template.metadata",
						   "labels", &d->ntemplate_labels);
	yaml_node_t *ps = get_map(s, tpl, "spec.template", "spec", false, &line);
	yaml_node_t *cs = ps ? get_seq(s, ps, "spec.template.spec", "containers", false, &line)
			     : NULL;
	if (!cs)
		return;
	d->containers = xalloc(s, (seq_len(cs) + 1) * sizeof(*d->containers));
	for (size_t i = 0; i < seq_len(cs); i++) {
		yaml_node_t *c = seq_item(s, cs, i);
		item(path, "spec.template.spec", "containers", i);
		if (c && c->type == YAML_MAPPING_NODE)
			decode_container(s, c, path, &d->containers[d->ncontainers++]);
		else if (c)
			err(s, ig_yaml_line(c), path, NULL, "must be an object");
	}
}

static void decode_deployment(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_deployment d = {.replicas = 1};
	int line;
	decode_meta(s, root, api, "Deployment", &d.meta);
	yaml_node_t *spec = get_map(s, root, "", "spec", true, &line);
	if (spec) {
		get_int_range(s, spec, "spec", "replicas", false, 0, INT32_MAX, &d.replicas);
		decode_pod_template(s, spec, &d);
	}
	struct box *b = s->box;
	struct ig_deployment *q = push((void **)&b->cfg.deployments, &b->cfg.ndeployments,
				       &b->cap[K_DEPLOYMENT], sizeof(*q));
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = d;
}

/* ---- documents -------------------------------------------------------------------- */

/* EndpointPickerConfig belongs to the picker (sched/), which parses it
 * itself: keep the document's text, padded so its lines stay the file's. */
static void decode_picker_config(struct session *s, yaml_node_t *root, const char *api)
{
	size_t start = s->doc->start_mark.index, end = s->doc->end_mark.index;
	if (!s->text || start > end || end > s->text_len)
		return;
	size_t pad = s->doc->start_mark.line;
	struct ig_raw_doc d = {0};
	d.file = xstrdup(s, s->file);
	d.line = ig_yaml_line(root);
	d.len = pad + (end - start);
	d.text = xalloc(s, d.len + 1);
	memset(d.text, '\n', pad);
	memcpy(d.text + pad, s->text + start, end - start);
	d.text[d.len] = '\0';
	struct box *b = s->box;
	struct ig_raw_doc *q = push((void **)&b->cfg.picker_docs, &b->cfg.npicker_docs,
				    &b->cap[K_PICKER], sizeof *q);
	if (!q)
		longjmp(s->jmp, JMP_OOM);
	*q = d;
}

static const struct kind_desc {
	const char *kind;
	const char *api[2];
	void (*decode)(struct session *s, yaml_node_t *root, const char *api);
} kinds[] = {
	{"Gateway", {"gateway.networking.k8s.io/v1"}, decode_gateway},
	{"HTTPRoute",
	 {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"},
	 decode_route},
	{"InferencePool",
	 {"inference.networking.x-k8s.io/v1alpha2", "inference.networking.k8s.io/v1"},
	 decode_pool},
	{"InferenceModel", {"inference.networking.x-k8s.io/v1alpha2"}, decode_model},
	{"InferenceObjective", {"inference.networking.x-k8s.io/v1alpha2"}, decode_objective},
	{"Pod", {"v1"}, decode_pod},
	{"Deployment", {"apps/v1"}, decode_deployment},
	{"EndpointPickerConfig",
	 {"inference.networking.x-k8s.io/v1alpha1", "config.apix.gateway-api-inference-extension.sigs.k8s.io/v1alpha1"},
	 decode_picker_config},
};

static void decode_document(struct session *s, yaml_node_t *root)
{
	int aline, kline;
	if (ig_yaml_is_null(root))
		return; /* an empty document, e.g. between two "---" */
	if (root->type != YAML_MAPPING_NODE) {
		err(s, ig_yaml_line(root), NULL, NULL,
		    "a document must be a Kubernetes object (a mapping with apiVersion and kind)");
		return;
	}
	char *api = get_str(s, root, "", "apiVersion", true, &aline);
	char *kind = get_str(s, root, "", "kind", true, &kline);
	if (!api || !kind)
		return;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		const struct kind_desc *k = &kinds[i];
		if (strcmp(kind, k->kind) != 0)
			continue;
		for (size_t j = 0; j < 2 && k->api[j]; j++) {
			if (!strcmp(api, k->api[j])) {
				k->decode(s, root, api);
				return;
			}
		}
	}
	s->box->cfg.nskipped++;
}

static void syntax_error(struct session *s, const yaml_parser_t *p)
{
	const char *what = p->error == YAML_MEMORY_ERROR ? "out of memory"
			   : p->problem			 ? p->problem
							 : "unreadable YAML";
	int line = (int)p->problem_mark.line + 1;
	if (p->context)
		err(s, line, NULL, NULL, "YAML syntax error: %s %s", p->context, what);
	else
		err(s, line, NULL, NULL, "YAML syntax error: %s", what);
}

/* Decodes one document under the out-of-memory/budget guard. */
static void guarded_decode(struct session *s, yaml_document_t *doc, yaml_node_t *root)
{
	s->doc = doc;
	s->visits = 0;
	switch (setjmp(s->jmp)) {
	case 0:
		decode_document(s, root);
		break;
	case JMP_OOM:
		err(s, ig_yaml_line(root), NULL, NULL, "out of memory");
		break;
	default:
		err(s, ig_yaml_line(root), NULL, NULL,
		    "document is too large or uses too many aliases (more than %u nodes visited)",
		    MAX_VISITS);
		break;
	}
	s->doc = NULL;
}

/* A first pass over the events that refuses what would make the document
 * loader slow: deep nesting and many anchors. Syntax errors are left for
 * the real load to report. Returns 0, or -1 after reporting. */
static int prescan(struct session *s, const char *text, size_t len)
{
	char msg[128];
	int line;
	if (ig_yaml_prescan(text, len, MAX_NESTING, MAX_ANCHORS, &line, msg, sizeof msg) == 0)
		return 0;
	err(s, line, NULL, NULL, "%s", msg);
	return -1;
}

static void load_text(struct session *s, const char *name, const char *text, size_t len)
{
	yaml_parser_t parser;
	s->file = name;
	s->text = text;
	s->text_len = len;
	if (len > MAX_FILE_BYTES) {
		err(s, 0, NULL, NULL, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
		return;
	}
	if (prescan(s, text, len) < 0)
		return;
	if (!yaml_parser_initialize(&parser)) {
		err(s, 0, NULL, NULL, "out of memory");
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			syntax_error(s, &parser);
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (root)
			guarded_decode(s, &doc, root);
		yaml_document_delete(&doc);
		if (!root)
			break;
	}
	yaml_parser_delete(&parser);
}

static void load_file(struct session *s, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	s->file = path;
	if (!f || fstat(fileno(f), &st) < 0) {
		err(s, 0, NULL, NULL, "cannot read: %s", strerror(errno));
		if (f)
			fclose(f);
		return;
	}
	if (st.st_size > (off_t)MAX_FILE_BYTES) {
		err(s, 0, NULL, NULL, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
		fclose(f);
		return;
	}
	size_t len = (size_t)st.st_size;
	char *text = malloc(len + 1);
	if (!text || fread(text, 1, len, f) != len) {
		err(s, 0, NULL, NULL, "cannot read: %s", text ? strerror(errno) : "out of memory");
	} else {
		/* Names in the diags must outlive this function: keep a copy. */
		char *name = arena_strdup(s->box, path);
		load_text(s, name ? name : "?", text, len);
	}
	free(text);
	fclose(f);
}

static bool manifest_name(const char *n)
{
	size_t len = strlen(n);
	static const char *const exts[] = {".yaml", ".yml", ".json", NULL};
	for (const char *const *e = exts; *e; e++) {
		size_t l = strlen(*e);
		if (len > l && !strcmp(n + len - l, *e))
			return true;
	}
	return false;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_path(struct session *s, const char *path, int depth, bool top);

/* Directory entries in name order; hidden ones (ConfigMap volumes keep
 * "..data" links there) are left out. */
static void load_dir(struct session *s, const char *path, int depth)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	if (!d) {
		s->file = path;
		err(s, 0, NULL, NULL, "cannot read directory: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char **slot = push((void **)&names, &n, &cap, sizeof(char *));
		if (!slot || !(*slot = strdup(e->d_name))) {
			if (slot)
				n--;
			break;
		}
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *full;
		if (asprintf(&full, "%s/%s", path, names[i]) >= 0) {
			load_path(s, full, depth + 1, false);
			free(full);
		}
		free(names[i]);
	}
	free(names);
}

static void load_path(struct session *s, const char *path, int depth, bool top)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		s->file = path;
		err(s, 0, NULL, NULL, "cannot read: %s", strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= MAX_DIR_DEPTH) {
			s->file = path;
			err(s, 0, NULL, NULL, "directories nested too deeply");
			return;
		}
		load_dir(s, path, depth);
	} else if (top || (S_ISREG(st.st_mode) && manifest_name(path))) {
		load_file(s, path);
	}
}

/* ---- checks across objects --------------------------------------------------------- */

#define FOR_META(cfg, kind, body)                                                                 \
	do {                                                                                      \
		for (size_t i_ = 0; i_ < (cfg)->n##kind; i_++) {                                  \
			const struct ig_meta *m = &(cfg)->kind[i_].meta;                          \
			body;                                                                     \
		}                                                                                 \
	} while (0)

/* Same kind, namespace and name twice: the later one is the error. */
static void check_dups_of(struct session *s, const struct ig_meta **ms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct ig_meta *a = ms[j], *b = ms[i];
			if (!a->name || !b->name || strcmp(a->name, b->name) || strcmp(a->ns, b->ns))
				continue;
			s->file = b->file;
			err(s, b->line, "metadata", "name",
			    "duplicate %s \"%s/%s\": also defined at %s:%d", b->kind, b->ns, b->name,
			    a->file, a->line);
			break;
		}
	}
}

static void check_dups(struct session *s)
{
	const struct ig_config *c = &s->box->cfg;
	size_t total = c->ngateways + c->nroutes + c->npools + c->nmodels + c->nobjectives +
		       c->npods + c->ndeployments;
	const struct ig_meta **ms = malloc((total + 1) * sizeof(*ms));
	size_t n;
	if (!ms)
		return;
#define DUPS(kind)                                                                               \
	n = 0;                                                                                    \
	FOR_META(c, kind, ms[n++] = m);                                                          \
	check_dups_of(s, ms, n)
	DUPS(gateways);
	DUPS(routes);
	DUPS(pools);
	DUPS(models);
	DUPS(objectives);
	DUPS(pods);
	DUPS(deployments);
#undef DUPS
	free(ms);
}

/* True when a was created before b: explicit timestamps first (earlier
 * wins), then objects without one, in load order. */
static bool older(const struct ig_meta *a, const struct ig_meta *b)
{
	double ta = 0, tb = 0;
	bool ha = a->creation_timestamp && parse_time(a->creation_timestamp, &ta) == 0;
	bool hb = b->creation_timestamp && parse_time(b->creation_timestamp, &tb) == 0;
	if (ha != hb)
		return ha;
	if (ha && ta != tb)
		return ta < tb;
	return a->seq < b->seq;
}

static bool same_claim(const struct ig_model *a, const struct ig_model *b)
{
	return a != b && a->model_name && b->model_name && a->pool_name && b->pool_name &&
	       !strcmp(a->meta.ns, b->meta.ns) && !strcmp(a->pool_name, b->pool_name) &&
	       !strcmp(a->model_name, b->model_name);
}

/* GIE's ModelNameInUse: per pool, the oldest claim on a modelName wins. */
static void check_model_names(struct session *s)
{
	struct ig_config *c = &s->box->cfg;
	for (size_t i = 0; i < c->nmodels; i++) {
		struct ig_model *m = &c->models[i];
		const struct ig_model *winner = m;
		for (size_t j = 0; j < c->nmodels; j++)
			if (same_claim(&c->models[j], m) && older(&c->models[j].meta, &winner->meta))
				winner = &c->models[j];
		if (winner == m)
			continue;
		m->accepted = false;
		s->file = m->meta.file;
		warn(s, m->meta.line, "spec", "modelName",
		     "modelName \"%s\" already in use by InferenceModel \"%s/%s\" (%s:%d), which is older (ModelNameInUse)",
		     m->model_name, winner->meta.ns, winner->meta.name, winner->meta.file,
		     winner->meta.line);
	}
}

static void check_refs(struct session *s)
{
	for (size_t i = 0; i < s->nrefs; i++) {
		const struct ref *r = &s->refs[i];
		bool found = !strcmp(r->kind, "Gateway")
				     ? ig_config_find_gateway(&s->box->cfg, r->ns, r->name) != NULL
				     : ig_config_find_pool(&s->box->cfg, r->ns, r->name) != NULL;
		if (found)
			continue;
		s->file = r->file;
		warn(s, r->line, r->path, NULL, "%s \"%s/%s\" not found in the configuration", r->kind,
		     r->ns, r->name);
	}
}

/* ---- public ------------------------------------------------------------------------ */

static int session_start(struct session *s, struct ig_diags *diags)
{
	memset(s, 0, sizeof(*s));
	s->diags = diags;
	s->box = calloc(1, sizeof(*s->box));
	return s->box ? 0 : -1;
}

static int session_finish(struct session *s, struct ig_config **out)
{
	check_dups(s);
	check_model_names(s);
	check_refs(s);
	free(s->refs);
	if (s->nomitted)
		note(s->diags, "%zu more problems not shown", s->nomitted);
	if (s->nerrors > 0) {
		ig_config_free(&s->box->cfg);
		return -1;
	}
	(void)ig_config_build_index(&s->box->cfg); /* without it lookups scan */
	*out = &s->box->cfg;
	return 0;
}

int ig_config_load(const char *const *paths, size_t npaths, struct ig_config **out,
		   struct ig_diags *diags)
{
	struct session s;
	if (session_start(&s, diags) < 0)
		return -1;
	for (size_t i = 0; i < npaths; i++)
		load_path(&s, paths[i], 0, true);
	return session_finish(&s, out);
}

int ig_config_load_text(const char *name, const char *text, size_t len, struct ig_config **out,
			struct ig_diags *diags)
{
	struct session s;
	if (session_start(&s, diags) < 0)
		return -1;
	char *n = arena_strdup(s.box, name ? name : "<text>");
	load_text(&s, n ? n : "?", text, len);
	return session_finish(&s, out);
}

void ig_config_free(struct ig_config *cfg)
{
	struct box *b = (struct box *)cfg;
	if (!b)
		return;
	free(cfg->gateways);
	free(cfg->routes);
	free(cfg->pools);
	free(cfg->models);
	free(cfg->objectives);
	free(cfg->pods);
	free(cfg->deployments);
	free(cfg->picker_docs);
	ig_config_index_free(cfg->index);
	for (struct chunk *c = b->arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(b);
}

int ig_config_add_pod(struct ig_config *cfg, const char *ns, const char *name, const char *ip,
		      const struct ig_kv *labels, size_t nlabels)
{
	struct box *b = (struct box *)cfg;
	struct ig_pod p = {.ready = true};
	p.meta.api_version = arena_strdup(b, "v1");
	p.meta.kind = arena_strdup(b, "Pod");
	p.meta.ns = arena_strdup(b, ns ? ns : "default");
	p.meta.name = arena_strdup(b, name);
	p.meta.file = arena_strdup(b, "(added at run time)");
	p.meta.seq = b->next_seq++;
	p.ip = arena_strdup(b, ip);
	p.meta.labels = arena_alloc(b, (nlabels + 1) * sizeof(struct ig_kv));
	if (!p.meta.api_version || !p.meta.kind || !p.meta.ns || (name && !p.meta.name) ||
	    !p.meta.file || (ip && !p.ip) || !p.meta.labels)
		return -ENOMEM;
	for (size_t i = 0; i < nlabels; i++) {
		struct ig_kv *kv = &p.meta.labels[i];
		kv->key = arena_strdup(b, labels[i].key);
		kv->value = arena_strdup(b, labels[i].value ? labels[i].value : "");
		if (!kv->key || !kv->value)
			return -ENOMEM;
	}
	p.meta.nlabels = nlabels;
	struct ig_pod *q = push((void **)&cfg->pods, &cfg->npods, &b->cap[K_POD], sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = p;
	return 0;
}
