/* Fuzzes ig_xp_request_decode(), what the picker reads from Envoy. Any
 * input must decode or fail cleanly (ASan, UBSan, no leak). One that
 * decodes is written again with ig_xp_encode_request() (the gateway's
 * encoder) and decoded again: kind, headers, body, end_of_stream, the
 * protocol configuration, the subset hint and the served endpoint must come
 * back unchanged, and encoding the copy must give the same bytes (the
 * encoding is a function of the content). The encoder, which writes body
 * messages by hand around the body, must write exactly what protobuf-c's
 * pack writes, and the decoder, which reads bare body chunks in place,
 * must agree with protobuf-c's unpack on every input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extproc/msg.h"

static void same_str(struct ig_str a, struct ig_str b)
{
	if (a.len != b.len || (a.len && memcmp(a.ptr, b.ptr, a.len) != 0))
		abort();
}

static struct ig_xp_request_out out_of(const struct ig_xp_request *r)
{
	static const struct ig_str no_strings[1];

	return (struct ig_xp_request_out){
	    .kind = r->kind,
	    .headers = r->headers,
	    .nheaders = r->nheaders,
	    .body = r->body,
	    .end_of_stream = r->end_of_stream,
	    .protocol_config = r->has_protocol_config,
	    .request_body_mode = r->request_body_mode,
	    .response_body_mode = r->response_body_mode,
	    .subset = r->has_subset ? (r->nsubset ? r->subset : no_strings) : NULL,
	    .nsubset = r->nsubset,
	    /* A decoded string value is NUL-terminated (protobuf-c's). */
	    .meta_ns = r->served.len ? "envoy.lb" : NULL,
	    .meta_key = "x-gateway-destination-endpoint-served",
	    .meta_value = r->served.len ? r->served.ptr : NULL,
	};
}

static void same_request(const struct ig_xp_request *a, const struct ig_xp_request *b)
{
	if (a->kind != b->kind || a->nheaders != b->nheaders ||
	    a->end_of_stream != b->end_of_stream ||
	    a->has_protocol_config != b->has_protocol_config || a->has_subset != b->has_subset ||
	    a->nsubset != b->nsubset)
		abort();
	for (size_t i = 0; i < a->nheaders; i++) {
		same_str(a->headers[i].key, b->headers[i].key);
		same_str(a->headers[i].value, b->headers[i].value);
	}
	same_str(a->body, b->body);
	same_str(a->served, b->served);
	if (a->has_protocol_config && (a->request_body_mode != b->request_body_mode ||
				       a->response_body_mode != b->response_body_mode))
		abort();
	for (size_t i = 0; i < a->nsubset; i++)
		same_str(a->subset[i], b->subset[i]);
}

/* ig_xp_header_get finds the first header of each name. */
static void check_lookup(const struct ig_xp_request *r)
{
	for (size_t i = 0; i < r->nheaders && i < 8; i++) {
		char *name = ig_str_dup(r->headers[i].key);
		struct ig_str got;
		size_t first = 0;

		if (!name)
			abort();
		if (strlen(name) == r->headers[i].key.len) {
			while (!ig_str_ieq_cstr(r->headers[first].key, name))
				first++;
			got = ig_xp_header_get(r, name);
			if (got.ptr != r->headers[first].value.ptr ||
			    got.len != r->headers[first].value.len)
				abort();
		}
		free(name);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_xp_request a, b;
	struct ig_xp_request_out o;
	struct ig_buf e1 = {0}, e2 = {0};

	struct ig_xp_request ref;
	int rc = ig_xp_request_decode(data, size, &a);

	if (ig_xp_request_decode_pb(data, size, &ref) != rc)
		abort();
	if (rc != 0) {
		if (a.pb_ || a.headers || a.nheaders)
			abort();
		return 0;
	}
	same_request(&a, &ref);
	if (a.observability_mode != ref.observability_mode || a.has_lb != ref.has_lb)
		abort();
	ig_xp_request_free(&ref);
	check_lookup(&a);
	o = out_of(&a);
	if (ig_xp_encode_request(&e1, &o) != 0 || ig_xp_encode_request_pb(&e2, &o) != 0)
		abort();
	if (e1.len != e2.len || (e1.len && memcmp(e1.ptr, e2.ptr, e1.len) != 0))
		abort();
	ig_buf_reset(&e2);
	if (ig_xp_request_decode((const uint8_t *)e1.ptr, e1.len, &b) != 0)
		abort();
	same_request(&a, &b);
	o = out_of(&b);
	if (ig_xp_encode_request(&e2, &o) != 0)
		abort();
	if (e1.len != e2.len || (e1.len && memcmp(e1.ptr, e2.ptr, e1.len) != 0))
		abort();
	ig_xp_request_free(&a);
	ig_xp_request_free(&b);
	ig_buf_free(&e1);
	ig_buf_free(&e2);
	return 0;
}
