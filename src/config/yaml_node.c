#include "config/yaml_node.h"

#include <stdio.h>

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
		return -1;
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
