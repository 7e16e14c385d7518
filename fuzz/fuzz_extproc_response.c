/* Fuzzes ig_xp_response_decode(), what the gateway reads from an external
 * picker. Any input must decode or fail cleanly. One that decodes and
 * that the picker's encoders can express (CONTINUE, no clear_body, no
 * override_message_timeout, removals only in header answers, no pick in
 * trailers and immediate answers) is written again with the matching
 * encoder and decoded again: every field of the result must be the same,
 * and encoding that copy must give the same bytes. The body answer's
 * encoder, which writes the way to the body by hand, must write exactly
 * what protobuf-c's pack writes, and the decoder, which reads bare body
 * chunks in place, must agree with protobuf-c's unpack on every input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extproc/msg.h"

#define MAX_SET 64

static void same_str(struct ig_str a, struct ig_str b)
{
	if (a.len != b.len || (a.len && memcmp(a.ptr, b.ptr, a.len) != 0))
		abort();
}

static void same_response(const struct ig_xp_response *a, const struct ig_xp_response *b)
{
	if (a->kind != b->kind || a->status != b->status || a->nset != b->nset ||
	    a->nremove != b->nremove || a->clear_route_cache != b->clear_route_cache ||
	    a->has_streamed != b->has_streamed || a->streamed_eos != b->streamed_eos ||
	    a->has_body != b->has_body || a->clear_body != b->clear_body ||
	    a->immediate_status != b->immediate_status ||
	    a->override_timeout != b->override_timeout)
		abort();
	for (size_t i = 0; i < a->nset; i++) {
		same_str(a->set[i].key, b->set[i].key);
		same_str(a->set[i].value, b->set[i].value);
	}
	for (size_t i = 0; i < a->nremove; i++)
		same_str(a->remove[i], b->remove[i]);
	same_str(a->streamed_body, b->streamed_body);
	same_str(a->body, b->body);
	same_str(a->immediate_body, b->immediate_body);
	same_str(a->immediate_details, b->immediate_details);
	same_str(a->lb_endpoint, b->lb_endpoint);
}

/* The body answer, checked against protobuf-c's own encoding. */
static int body_answer(struct ig_buf *out, const struct ig_xp_body_answer *a)
{
	struct ig_buf ref = {0};
	size_t at = out->len;

	if (ig_xp_encode_body_answer(out, a) != 0 || ig_xp_encode_body_answer_pb(&ref, a) != 0)
		return -1;
	if (out->len - at != ref.len || (ref.len && memcmp(out->ptr + at, ref.ptr, ref.len) != 0))
		abort();
	ig_buf_free(&ref);
	return 1;
}

/* Encodes r with the encoder of its kind: 1 done, 0 not expressible, -1
 * failed. Decoded strings (keys, removals, details, the pick) point into
 * protobuf-c's NUL-terminated copies, so they can be passed as C strings. */
static int encode(struct ig_buf *out, const struct ig_xp_response *r)
{
	struct ig_xp_set_header set[MAX_SET];
	const char *remove[MAX_SET];
	const char *lb = r->lb_endpoint.len ? r->lb_endpoint.ptr : NULL;
	bool response = false;

	if (r->status != 0 || r->clear_body || r->override_timeout || r->nset > MAX_SET ||
	    r->nremove > MAX_SET)
		return 0;
	for (size_t i = 0; i < r->nset; i++)
		set[i] = (struct ig_xp_set_header){r->set[i].key.ptr, r->set[i].value};
	for (size_t i = 0; i < r->nremove; i++)
		remove[i] = r->remove[i].ptr;
	switch (r->kind) {
	case IG_XP_RESP_RESPONSE_HEADERS:
		response = true;
		/* fall through */
	case IG_XP_RESP_REQUEST_HEADERS: {
		/* A header answer's encoder writes no body mutation. */
		if (r->has_body || r->has_streamed)
			return 0;
		struct ig_xp_headers_answer a = {.response = response,
						 .set = set,
						 .nset = r->nset,
						 .remove = remove,
						 .nremove = r->nremove,
						 .clear_route_cache = r->clear_route_cache,
						 .lb_endpoint = lb};
		return ig_xp_encode_headers_answer(out, &a) == 0 ? 1 : -1;
	}
	case IG_XP_RESP_RESPONSE_BODY:
		response = true;
		/* fall through */
	case IG_XP_RESP_REQUEST_BODY: {
		struct ig_xp_body_answer a = {.response = response,
					      .mode = IG_XP_BODY_STREAMED,
					      .set = set,
					      .nset = r->nset,
					      .clear_route_cache = r->clear_route_cache,
					      .lb_endpoint = lb};
		if (r->nremove)
			return 0;
		if (r->has_streamed) {
			a.mode = IG_XP_BODY_FULL_DUPLEX_STREAMED;
			a.body = r->streamed_body;
			a.end_of_stream = r->streamed_eos;
		} else if (r->has_body) {
			a.mode = IG_XP_BODY_BUFFERED;
			a.body = r->body;
			a.replace_body = true;
		}
		return body_answer(out, &a);
	}
	case IG_XP_RESP_REQUEST_TRAILERS:
	case IG_XP_RESP_RESPONSE_TRAILERS:
		if (r->nset || r->nremove || lb)
			return 0;
		return ig_xp_encode_trailers_answer(out, r->kind == IG_XP_RESP_RESPONSE_TRAILERS) ==
			       0
			   ? 1
			   : -1;
	case IG_XP_RESP_IMMEDIATE:
		if (r->nremove || lb)
			return 0;
		return ig_xp_encode_immediate(
			   out, r->immediate_status, r->immediate_body, set, r->nset,
			   r->immediate_details.len ? r->immediate_details.ptr : NULL) == 0
			   ? 1
			   : -1;
	default:
		return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_xp_response a, b;
	struct ig_buf e1 = {0}, e2 = {0};
	int rc;

	struct ig_xp_response ref;
	int dc = ig_xp_response_decode(data, size, &a);

	if (ig_xp_response_decode_pb(data, size, &ref) != dc)
		abort();
	if (dc != 0) {
		if (a.pb_ || a.set || a.remove)
			abort();
		return 0;
	}
	same_response(&a, &ref);
	ig_xp_response_free(&ref);
	if (a.kind == IG_XP_RESP_IMMEDIATE &&
	    (a.immediate_status < 200 || a.immediate_status > 599))
		abort();
	rc = encode(&e1, &a);
	if (rc < 0)
		abort();
	if (rc > 0) {
		if (ig_xp_response_decode((const uint8_t *)e1.ptr, e1.len, &b) != 0)
			abort();
		same_response(&a, &b);
		if (encode(&e2, &b) != 1)
			abort();
		if (e1.len != e2.len || (e1.len && memcmp(e1.ptr, e2.ptr, e1.len) != 0))
			abort();
		ig_xp_response_free(&b);
	}
	ig_xp_response_free(&a);
	ig_buf_free(&e1);
	ig_buf_free(&e2);
	return 0;
}
