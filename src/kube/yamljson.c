#include "kube/yamljson.h"

#include "config/yaml_node.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

static json_t *scalar(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (!strcmp(v, "true") || !strcmp(v, "True"))
			return json_true();
		if (!strcmp(v, "false") || !strcmp(v, "False"))
			return json_false();
		if (len == 0 || !strcmp(v, "null") || !strcmp(v, "~"))
			return json_null();
	}
	return json_stringn(v, len);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth)
{
	if (!n || depth > MAX_DEPTH)
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return scalar(n);
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     a && i < n->data.sequence.items.top; i++) {
			json_t *v = convert(doc, yaml_document_get_node(doc, *i), depth + 1);
			if (!v || json_array_append_new(a, v) < 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     o && p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE)
				continue;
			json_t *v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1);
			if (!v || json_object_setn_new(o, (const char *)k->data.scalar.value,
						       k->data.scalar.length, v) < 0) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	default:
		return NULL;
	}
}

json_t *ig_yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
	yaml_document_t doc;
	if (ig_yaml_load_first(text, len, &doc, err, errlen) < 0)
		return NULL;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	json_t *out = root ? convert(&doc, root, 0) : json_object();
	if (!out)
		snprintf(err, errlen, "unreadable document");
	yaml_document_delete(&doc);
	return out;
}
