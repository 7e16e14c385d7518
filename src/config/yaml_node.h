/* Small questions about libyaml document nodes, shared by every loader of
 * Kubernetes-style YAML (the manifests, the picker's configuration). */
#ifndef IG_CONFIG_YAML_NODE_H
#define IG_CONFIG_YAML_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <yaml.h>

/* 1-based line where the node starts. */
static inline int ig_yaml_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static inline bool ig_yaml_scalar_is(const yaml_node_t *n, const char *text)
{
	size_t len = strlen(text);
	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       memcmp(n->data.scalar.value, text, len) == 0;
}

/* A plain empty, "~" or "null" scalar means the field is absent (YAML 1.2
 * core schema, as Kubernetes reads it). */
static inline bool ig_yaml_is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return n->data.scalar.length == 0 || ig_yaml_scalar_is(n, "~") ||
	       ig_yaml_scalar_is(n, "null") || ig_yaml_scalar_is(n, "Null") ||
	       ig_yaml_scalar_is(n, "NULL");
}

/* Loads the first document of text into *doc (yaml_document_delete it).
 * 0, or -1 with "line N: problem" (or "out of memory") in err. */
int ig_yaml_load_first(const char *text, size_t len, yaml_document_t *doc, char *err,
		       size_t errlen);

/* Refuses input nested deeper than max_depth or with more than max_anchors
 * anchors in one document, before a document loader sees it (both make
 * libyaml slow or memory-hungry: "billion laughs"). Syntax errors are left
 * to the loader. Returns 0, or -1 with the line and a message (-ENOMEM
 * when out of memory). */
int ig_yaml_prescan(const char *text, size_t len, int max_depth, size_t max_anchors, int *line,
		    char *msg, size_t msglen);

/* Expands YAML merge keys (<<: *anchor, <<: [*a, *b]) in every mapping of
 * the document, as sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) reads them for
 * kubectl: a mapping's own keys win over merged ones, and an earlier
 * mapping of a list over a later one. At most max_pairs pairs are merged
 * in all (aliases could otherwise multiply them). Returns 0, or -1 with
 * the line and a message (-ENOMEM when out of memory). */
int ig_yaml_expand_merges(yaml_document_t *doc, size_t max_pairs, int *line, char *msg,
			  size_t msglen);

#endif
