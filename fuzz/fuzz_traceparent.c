/* libFuzzer target for the W3C traceparent parser (a client's header):
 * any bytes; a value that parses is formatted again and must parse to the
 * same ids and flag. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_trace_parent p, q;
	if (ig_traceparent_parse((struct ig_str){(const char *)data, size}, &p) != 0)
		return 0;
	char out[56];
	ig_traceparent_format(p.trace_id, p.span_id, p.sampled, out);
	if (ig_traceparent_parse(ig_str_from(out), &q) != 0 || memcmp(p.trace_id, q.trace_id, 16) ||
	    memcmp(p.span_id, q.span_id, 8) || p.sampled != q.sampled)
		abort();
	return 0;
}
