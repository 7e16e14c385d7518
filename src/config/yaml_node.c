#include "config/yaml_node.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

static bool has_anchor(const yaml_event_t *e)
{
	return (e->type == YAML_SCALAR_EVENT && e->data.scalar.anchor) ||
	       (e->type == YAML_SEQUENCE_START_EVENT && e->data.sequence_start.anchor) ||
	       (e->type == YAML_MAPPING_START_EVENT && e->data.mapping_start.anchor);
}

int ig_yaml_prescan(const char *text, size_t len, int max_depth, size_t max_anchors, int *line,
		    char *msg, size_t msglen)
{
	yaml_parser_t parser;
	yaml_event_t e;
	int depth = 0, rc = 0;
	size_t anchors = 0;
	if (!yaml_parser_initialize(&parser)) {
		*line = 0;
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (rc == 0 && yaml_parser_parse(&parser, &e)) {
		*line = (int)e.start_mark.line + 1;
		bool end = e.type == YAML_STREAM_END_EVENT;
		if (e.type == YAML_SEQUENCE_START_EVENT || e.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT)
			depth--;
		else if (e.type == YAML_DOCUMENT_START_EVENT)
			anchors = 0;
		anchors += has_anchor(&e);
		yaml_event_delete(&e);
		if (depth > max_depth) {
			snprintf(msg, msglen, "nested more than %d levels deep", max_depth);
			rc = -1;
		} else if (anchors > max_anchors) {
			snprintf(msg, msglen, "more than %zu anchors in one document", max_anchors);
			rc = -1;
		}
		if (end)
			break;
	}
	yaml_parser_delete(&parser);
	return rc;
}

/* ---- merge keys ---------------------------------------------------------- */

/* A set of scalar keys (by text) of the mapping being built, so that a key
 * is looked up in constant time however large the mapping. */
struct keyset {
	const yaml_node_t **slots;
	size_t cap;
};

static uint64_t key_hash(const yaml_node_t *k)
{
	return XXH64(k->data.scalar.value, k->data.scalar.length, 0);
}

static bool same_key(const yaml_node_t *a, const yaml_node_t *b)
{
	return a->data.scalar.length == b->data.scalar.length &&
	       !memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length);
}

/* Adds k; false when it was there already. Non-scalar keys are never
 * equal to another (the loaders refuse them anyway). */
static bool keyset_add(struct keyset *ks, const yaml_node_t *k)
{
	if (k->type != YAML_SCALAR_NODE)
		return true;
	size_t at = (size_t)key_hash(k) & (ks->cap - 1);
	for (; ks->slots[at]; at = (at + 1) & (ks->cap - 1))
		if (same_key(ks->slots[at], k))
			return false;
	ks->slots[at] = k;
	return true;
}

static bool is_merge_key(const yaml_node_t *k)
{
	return k && k->type == YAML_SCALAR_NODE &&
	       k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && k->data.scalar.length == 2 &&
	       !memcmp(k->data.scalar.value, "<<", 2);
}

static const char oom[] = "out of memory";

struct merger {
	yaml_document_t *doc;
	unsigned char *state; /* per node: 0 not yet, 1 being expanded, 2 done */
	size_t budget;	      /* merged pairs still allowed to be looked at in the document */
	int line;
	const char *why;
};

static int expand(struct merger *m, int idx);

/* Appends the pairs of mapping src that ks does not hold yet. */
static int merge_from(struct merger *m, int src, const yaml_node_t *at, yaml_node_pair_t *out,
		      size_t *n, struct keyset *ks)
{
	yaml_node_t *s = yaml_document_get_node(m->doc, src);
	if (!s || s->type != YAML_MAPPING_NODE) {
		m->line = (int)at->start_mark.line + 1;
		m->why = "a merge key (<<) takes a mapping or a list of mappings";
		return -1;
	}
	if (expand(m, src) < 0)
		return -1;
	/* Every pair looked at counts, kept or not: a list naming one big
	 * mapping many times adds nothing after the first but would cost a
	 * lookup per pair each time (20,000 keys named 100,000 times: two
	 * billion lookups, a minute of CPU for 600 KB of YAML). */
	for (yaml_node_pair_t *p = s->data.mapping.pairs.start; p < s->data.mapping.pairs.top;
	     p++) {
		if (m->budget == 0) {
			m->line = (int)at->start_mark.line + 1;
			m->why = "too many keys merged with << in one document";
			return -1;
		}
		m->budget--;
		if (keyset_add(ks, yaml_document_get_node(m->doc, p->key)))
			out[(*n)++] = *p;
	}
	return 0;
}

/* How many pairs the mapping may have once merged: its own, and those of
 * every mapping it merges (already expanded). */
static size_t merged_bound(struct merger *m, yaml_node_t *map)
{
	size_t n = 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		if (!is_merge_key(yaml_document_get_node(m->doc, p->key))) {
			n++;
			continue;
		}
		yaml_node_t *v = yaml_document_get_node(m->doc, p->value);
		if (v && v->type == YAML_MAPPING_NODE)
			n += (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
		else if (v && v->type == YAML_SEQUENCE_NODE)
			for (yaml_node_item_t *i = v->data.sequence.items.start;
			     i < v->data.sequence.items.top; i++) {
				yaml_node_t *s = yaml_document_get_node(m->doc, *i);
				if (s && s->type == YAML_MAPPING_NODE)
					n += (size_t)(s->data.mapping.pairs.top -
						      s->data.mapping.pairs.start);
			}
	}
	return n;
}

/* Expands the mapping's merge keys in place: its own keys first (they win),
 * then each merged mapping's keys not yet present, earlier mappings of a
 * list before later ones; the << pairs themselves go. */
static int expand(struct merger *m, int idx)
{
	yaml_node_t *map = yaml_document_get_node(m->doc, idx);
	if (!map || map->type != YAML_MAPPING_NODE || m->state[idx] == 2)
		return 0;
	if (m->state[idx] == 1) {
		m->line = (int)map->start_mark.line + 1;
		m->why = "a merge key (<<) refers to a mapping that contains it";
		return -1;
	}
	bool any = false;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top && !any; p++)
		any = is_merge_key(yaml_document_get_node(m->doc, p->key));
	if (!any) {
		m->state[idx] = 2;
		return 0;
	}
	m->state[idx] = 1;
	/* Sources first, so that the bound below counts their merged keys. */
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		if (!is_merge_key(yaml_document_get_node(m->doc, p->key)))
			continue;
		yaml_node_t *v = yaml_document_get_node(m->doc, p->value);
		if (v && v->type == YAML_SEQUENCE_NODE) {
			for (yaml_node_item_t *i = v->data.sequence.items.start;
			     i < v->data.sequence.items.top; i++)
				if (expand(m, *i) < 0)
					return -1;
		} else if (expand(m, p->value) < 0) {
			return -1;
		}
	}
	/* Merging adds at most the budget's keys: a list naming one big
	 * mapping many times must not size an allocation past what the
	 * budget lets through (it would fail as "out of memory", and be
	 * retried as a want of resources, instead of being refused). */
	size_t bound = merged_bound(m, map), n = 0, own = 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++)
		own += !is_merge_key(yaml_document_get_node(m->doc, p->key));
	if (bound - own > m->budget)
		bound = own + m->budget;
	struct keyset ks = {0};
	ks.cap = 16;
	while (ks.cap < 2 * bound)
		ks.cap *= 2;
	yaml_node_pair_t *out = malloc((bound ? bound : 1) * sizeof(*out));
	ks.slots = calloc(ks.cap, sizeof(*ks.slots));
	int rc = out && ks.slots ? 0 : -1;
	if (rc < 0) {
		m->line = (int)map->start_mark.line + 1;
		m->why = oom;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     rc == 0 && p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(m->doc, p->key);
		if (is_merge_key(k))
			continue;
		/* A key written twice stays twice, for the loaders to report. */
		keyset_add(&ks, k);
		out[n++] = *p;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     rc == 0 && p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(m->doc, p->key);
		if (!is_merge_key(k))
			continue;
		yaml_node_t *v = yaml_document_get_node(m->doc, p->value);
		if (v && v->type == YAML_SEQUENCE_NODE) {
			for (yaml_node_item_t *i = v->data.sequence.items.start;
			     rc == 0 && i < v->data.sequence.items.top; i++)
				rc = merge_from(m, *i, k, out, &n, &ks);
		} else {
			rc = merge_from(m, p->value, k, out, &n, &ks);
		}
	}
	free(ks.slots);
	if (rc < 0) {
		free(out);
		return -1;
	}
	free(map->data.mapping.pairs.start);
	map->data.mapping.pairs.start = out;
	map->data.mapping.pairs.top = out + n;
	map->data.mapping.pairs.end = out + (bound ? bound : 1);
	m->state[idx] = 2;
	return 0;
}

int ig_yaml_expand_merges(yaml_document_t *doc, size_t max_pairs, int *line, char *msg,
			  size_t msglen)
{
	size_t n = (size_t)(doc->nodes.top - doc->nodes.start);
	struct merger m = {.doc = doc, .budget = max_pairs};
	m.state = calloc(n + 1, 1);
	if (!m.state) {
		*line = 0;
		snprintf(msg, msglen, "%s", oom);
		return -ENOMEM;
	}
	int rc = 0;
	for (size_t i = 1; i <= n && rc == 0; i++)
		rc = expand(&m, (int)i);
	free(m.state);
	if (rc < 0) {
		*line = m.line;
		snprintf(msg, msglen, "%s", m.why);
	}
	return rc < 0 && m.why == oom ? -ENOMEM : rc;
}

int ig_yaml_load_first(const char *text, size_t len, yaml_document_t *doc, char *err, size_t errlen)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	int rc = 0;
	if (!yaml_parser_load(&p, doc)) {
		snprintf(err, errlen, "line %zu: %s", p.problem_mark.line + 1,
			 p.problem ? p.problem : "not YAML");
		rc = -1;
	}
	yaml_parser_delete(&p);
	return rc;
}
