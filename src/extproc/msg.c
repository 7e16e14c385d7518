/* The ext_proc and health messages on protobuf-c's generated code
 * (build/gen/, from proto/). Decoders unpack the whole message with
 * protobuf-c and hand out slices into it; every pointer and oneof case is
 * checked, since a peer can leave out or repeat any field. Encoders build
 * the message on the stack (plus one allocation for variable-length parts)
 * and pack it into the caller's buffer.
 *
 * protobuf-c unpacks submessages by recursion without a depth limit, so a
 * peer could nest Struct values until the stack runs out; check_depth()
 * walks the wire bytes with the message descriptors first and refuses more
 * than MAX_DEPTH nested messages, as Google's C++ runtime does by default. */
#include "extproc/msg.h"

#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "envoy/service/ext_proc/v3/external_processor.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

/* Short names for the generated types this file uses over and over. */
typedef Envoy__Service__ExtProc__V3__ProcessingRequest pb_request;
typedef Envoy__Service__ExtProc__V3__ProcessingResponse pb_response;
typedef Envoy__Service__ExtProc__V3__HttpHeaders pb_http_headers;
typedef Envoy__Service__ExtProc__V3__HttpBody pb_http_body;
typedef Envoy__Service__ExtProc__V3__HttpTrailers pb_http_trailers;
typedef Envoy__Service__ExtProc__V3__ProtocolConfiguration pb_protocol_config;
typedef Envoy__Service__ExtProc__V3__HeadersResponse pb_headers_response;
typedef Envoy__Service__ExtProc__V3__BodyResponse pb_body_response;
typedef Envoy__Service__ExtProc__V3__TrailersResponse pb_trailers_response;
typedef Envoy__Service__ExtProc__V3__CommonResponse pb_common;
typedef Envoy__Service__ExtProc__V3__HeaderMutation pb_mutation;
typedef Envoy__Service__ExtProc__V3__BodyMutation pb_body_mutation;
typedef Envoy__Service__ExtProc__V3__StreamedBodyResponse pb_streamed;
typedef Envoy__Service__ExtProc__V3__ImmediateResponse pb_immediate;
typedef Envoy__Config__Core__V3__HeaderMap pb_header_map;
typedef Envoy__Config__Core__V3__HeaderValue pb_header;
typedef Envoy__Config__Core__V3__HeaderValueOption pb_header_option;
typedef Envoy__Config__Core__V3__Metadata pb_metadata;
typedef Envoy__Config__Core__V3__Metadata__FilterMetadataEntry pb_metadata_entry;
typedef Envoy__Type__V3__HttpStatus pb_http_status;
typedef Google__Protobuf__Struct pb_struct;
typedef Google__Protobuf__Struct__FieldsEntry pb_struct_entry;
typedef Google__Protobuf__Value pb_value;
typedef Google__Protobuf__ListValue pb_list;

#define MAX_DEPTH 100

#define SUBSET_NS "envoy.lb.subset_hint"
#define SUBSET_KEY "x-gateway-destination-endpoint-subset"
#define LB_NS "envoy.lb"
#define LB_KEY "x-gateway-destination-endpoint"
#define SERVED_KEY "x-gateway-destination-endpoint-served"

/* ---- wire walk: nesting depth ---------------------------------------------- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (int i = 0; i < 10 && *p < end; i++) {
		uint8_t b = *(*p)++;

		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Whether the message of descriptor d in [p, p+len) nests at most
 * MAX_DEPTH - depth messages deep. Each level only reads the keys and
 * lengths of its own fields and skips over the contents, so the walk is
 * linear in len. Anything that is not well-formed wire format is refused
 * (protobuf-c would refuse it too, or it is a group, which no ext_proc peer
 * sends). */
static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
		     unsigned depth)
{
	const uint8_t *end = p + len;

	if (depth > MAX_DEPTH)
		return false;
	while (p < end) {
		uint64_t key, n;
		const ProtobufCFieldDescriptor *f;

		if (read_varint(&p, end, &key) != 0)
			return false;
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &n) != 0)
				return false;
			break;
		case 1:
			if (end - p < 8)
				return false;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return false;
			p += 4;
			break;
		case 2:
			if (read_varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
				return false;
			f = (key >> 3) <= UINT32_MAX
				? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
				: NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    !depth_ok(f->descriptor, p, n, depth + 1))
				return false;
			p += n;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* protobuf-c's unpack behind the depth check. data may be NULL when len
 * is 0. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				size_t len)
{
	if (!data) {
		if (len)
			return NULL;
		data = (const uint8_t *)"";
	}
	if (!depth_ok(d, data, len, 0))
		return NULL;
	return protobuf_c_message_unpack(d, NULL, len, data);
}

/* ---- decoding helpers ------------------------------------------------------ */

static struct ig_str cstr_slice(const char *s)
{
	return s ? (struct ig_str){s, strlen(s)} : (struct ig_str){"", 0};
}

static struct ig_str bin_slice(ProtobufCBinaryData b)
{
	return b.data && b.len ? (struct ig_str){(const char *)b.data, b.len}
			       : (struct ig_str){"", 0};
}

/* Envoy sends raw_value; older peers and hand-written clients send value. */
static struct ig_xp_header header_of(const pb_header *h)
{
	struct ig_xp_header x;

	x.key = cstr_slice(h->key);
	x.value = h->raw_value.len ? bin_slice(h->raw_value) : cstr_slice(h->value);
	return x;
}

/* The headers of a HeaderMap (NULL: none) into a new array. */
static int take_headers(const pb_header_map *m, struct ig_xp_header **out, size_t *n)
{
	struct ig_xp_header *h;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!m || !m->n_headers || !m->headers)
		return 0;
	h = calloc(m->n_headers, sizeof *h);
	if (!h)
		return -1;
	for (size_t i = 0; i < m->n_headers; i++)
		if (m->headers[i])
			h[k++] = header_of(m->headers[i]);
	*out = h;
	*n = k;
	return 0;
}

/* The set_headers of a HeaderMutation into a new array; options without a
 * header are skipped. */
static int take_set(const pb_mutation *m, struct ig_xp_header **out, size_t *n)
{
	struct ig_xp_header *h;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!m || !m->n_set_headers || !m->set_headers)
		return 0;
	h = calloc(m->n_set_headers, sizeof *h);
	if (!h)
		return -1;
	for (size_t i = 0; i < m->n_set_headers; i++)
		if (m->set_headers[i] && m->set_headers[i]->header)
			h[k++] = header_of(m->set_headers[i]->header);
	*out = h;
	*n = k;
	return 0;
}

static int take_remove(const pb_mutation *m, struct ig_str **out, size_t *n)
{
	struct ig_str *s;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!m || !m->n_remove_headers || !m->remove_headers)
		return 0;
	s = calloc(m->n_remove_headers, sizeof *s);
	if (!s)
		return -1;
	for (size_t i = 0; i < m->n_remove_headers; i++)
		if (m->remove_headers[i])
			s[k++] = cstr_slice(m->remove_headers[i]);
	*out = s;
	*n = k;
	return 0;
}

/* A Struct's field by name. A map holds one value per key; of repeated
 * entries the last wins, as in every protobuf runtime. */
static const pb_value *struct_get(const pb_struct *s, const char *key)
{
	const pb_value *v = NULL;

	if (!s || !s->fields)
		return NULL;
	for (size_t i = 0; i < s->n_fields; i++) {
		const pb_struct_entry *e = s->fields[i];

		if (e && e->key && strcmp(e->key, key) == 0)
			v = e->value;
	}
	return v;
}

static const pb_struct *metadata_get(const pb_metadata *m, const char *ns)
{
	const pb_struct *s = NULL;

	if (!m || !m->filter_metadata)
		return NULL;
	for (size_t i = 0; i < m->n_filter_metadata; i++) {
		const pb_metadata_entry *e = m->filter_metadata[i];

		if (e && e->key && strcmp(e->key, ns) == 0)
			s = e->value;
	}
	return s;
}

/* Whether the namespace is there, even as an entry without a value (an
 * empty Struct, which GIE reads as an empty map). */
static bool metadata_has(const pb_metadata *m, const char *ns)
{
	if (!m || !m->filter_metadata)
		return false;
	for (size_t i = 0; i < m->n_filter_metadata; i++)
		if (m->filter_metadata[i] && m->filter_metadata[i]->key &&
		    strcmp(m->filter_metadata[i]->key, ns) == 0)
			return true;
	return false;
}

static const pb_struct *value_struct(const pb_value *v)
{
	return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE ? v->struct_value
									       : NULL;
}

static const char *value_string(const pb_value *v)
{
	return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE ? v->string_value
									       : NULL;
}

/* The endpoints one string of the subset hint names: split at commas,
 * each trimmed as Go's strings.TrimSpace does, empty ones dropped. Put in
 * out from out[0] when out is not NULL; returns how many. */
static size_t split_hint(const char *s, struct ig_str *out)
{
	size_t n = 0;

	for (const char *p = s;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		struct ig_str piece = ig_str_trim_space((struct ig_str){p, len});

		if (piece.len && out)
			out[n] = piece;
		n += piece.len > 0;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

/* The subset hint: a list of strings (other members skipped) or a single
 * string, each string a comma-separated list, as GIE v1.6's lwepp reads it
 * (PR #2935: a proxy's header-to-metadata rule writes the client's header
 * as one string, a control plane writes a list). A value of another type
 * counts as no hint. An empty list, or strings naming nothing, is a hint
 * that allows nothing. */
static int take_subset(const pb_metadata *m, struct ig_xp_request *out)
{
	const pb_value *v = struct_get(metadata_get(m, SUBSET_NS), SUBSET_KEY);
	const pb_list *l = NULL;
	const char *one = value_string(v);
	size_t n = 0, k = 0;

	if (!one && (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE))
		return 0;
	out->has_subset = true;
	if (!one) {
		l = v->list_value;
		if (!l || !l->values)
			return 0;
	}
	if (one)
		n = split_hint(one, NULL);
	for (size_t i = 0; l && i < l->n_values; i++)
		if (value_string(l->values[i]))
			n += split_hint(l->values[i]->string_value, NULL);
	if (!n)
		return 0;
	out->subset = calloc(n, sizeof *out->subset);
	if (!out->subset)
		return -1;
	if (one)
		k = split_hint(one, out->subset);
	for (size_t i = 0; l && i < l->n_values; i++)
		if (value_string(l->values[i]))
			k += split_hint(l->values[i]->string_value, out->subset + k);
	out->nsubset = k;
	return 0;
}

/* ---- ProcessingRequest: decode ------------------------------------------- */

static int request_oneof(const pb_request *m, struct ig_xp_request *out)
{
	const pb_http_headers *h = NULL;
	const pb_http_body *b = NULL;
	const pb_http_trailers *t = NULL;

	switch (m->request_case) {
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS:
		out->kind = IG_XP_REQ_REQUEST_HEADERS;
		h = m->request_headers;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS:
		out->kind = IG_XP_REQ_RESPONSE_HEADERS;
		h = m->response_headers;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY:
		out->kind = IG_XP_REQ_REQUEST_BODY;
		b = m->request_body;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY:
		out->kind = IG_XP_REQ_RESPONSE_BODY;
		b = m->response_body;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS:
		out->kind = IG_XP_REQ_REQUEST_TRAILERS;
		t = m->request_trailers;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_TRAILERS:
		out->kind = IG_XP_REQ_RESPONSE_TRAILERS;
		t = m->response_trailers;
		break;
	default:
		out->kind = IG_XP_REQ_NONE;
		return 0;
	}
	if (h) {
		out->end_of_stream = h->end_of_stream;
		return take_headers(h->headers, &out->headers, &out->nheaders);
	}
	if (b) {
		out->body = bin_slice(b->body);
		out->end_of_stream = b->end_of_stream;
	}
	if (t)
		return take_headers(t->trailers, &out->headers, &out->nheaders);
	return 0;
}

int ig_xp_request_decode_pb(const uint8_t *data, size_t len, struct ig_xp_request *out)
{
	pb_request *m;

	memset(out, 0, sizeof *out);
	m = (pb_request *)unpack(&envoy__service__ext_proc__v3__processing_request__descriptor,
				 data, len);
	if (!m)
		return -1;
	out->pb_ = m;
	out->body = (struct ig_str){"", 0};
	if (request_oneof(m, out) != 0 || take_subset(m->metadata_context, out) != 0) {
		ig_xp_request_free(out);
		return -1;
	}
	out->has_lb = metadata_has(m->metadata_context, LB_NS);
	out->served = cstr_slice(
	    value_string(struct_get(metadata_get(m->metadata_context, LB_NS), SERVED_KEY)));
	out->observability_mode = m->observability_mode;
	if (m->protocol_config) {
		out->has_protocol_config = true;
		out->request_body_mode =
		    (enum ig_xp_body_mode)m->protocol_config->request_body_mode;
		out->response_body_mode =
		    (enum ig_xp_body_mode)m->protocol_config->response_body_mode;
	}
	return 0;
}

void ig_xp_request_free(struct ig_xp_request *r)
{
	free(r->headers);
	free(r->subset);
	if (r->pb_)
		protobuf_c_message_free_unpacked(r->pb_, NULL);
	memset(r, 0, sizeof *r);
}

struct ig_str ig_xp_header_get(const struct ig_xp_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (ig_str_ieq_cstr(r->headers[i].key, name))
			return r->headers[i].value;
	return (struct ig_str){NULL, 0};
}

/* ---- ProcessingResponse: decode ------------------------------------------- */

static int common_decode(const pb_common *c, struct ig_xp_response *out)
{
	const pb_body_mutation *bm;

	if (!c)
		return 0;
	out->status = (int)c->status;
	out->clear_route_cache = c->clear_route_cache;
	if (take_set(c->header_mutation, &out->set, &out->nset) != 0 ||
	    take_remove(c->header_mutation, &out->remove, &out->nremove) != 0)
		return -1;
	bm = c->body_mutation;
	if (!bm)
		return 0;
	switch (bm->mutation_case) {
	case ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY:
		out->has_body = true;
		out->body = bin_slice(bm->body);
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_CLEAR_BODY:
		out->clear_body = bm->clear_body;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE:
		if (bm->streamed_response) {
			out->has_streamed = true;
			out->streamed_body = bin_slice(bm->streamed_response->body);
			out->streamed_eos = bm->streamed_response->end_of_stream;
		}
		break;
	default:
		break;
	}
	return 0;
}

static int immediate_decode(const pb_immediate *ir, struct ig_xp_response *out)
{
	out->immediate_status = 200;
	if (!ir)
		return 0;
	/* Envoy: an absent status or one under 200 is sent as 200. The code is
	 * an enum that protobuf reads as int32 (a negative or huge varint
	 * included): compared as such, not as the enum's unsigned type. One
	 * above what HttpStatus defines (599) is a failure of the picker: 500,
	 * which the HTTP status line can carry. */
	int32_t code = ir->status ? (int32_t)ir->status->code : 0;
	if (code >= 200)
		out->immediate_status = code <= 599 ? (int)code : 500;
	out->immediate_body = bin_slice(ir->body);
	out->immediate_details = cstr_slice(ir->details);
	if (take_set(ir->headers, &out->set, &out->nset) != 0 ||
	    take_remove(ir->headers, &out->remove, &out->nremove) != 0)
		return -1;
	return 0;
}

static int response_oneof(const pb_response *m, struct ig_xp_response *out)
{
	const pb_trailers_response *t = NULL;

	switch (m->response_case) {
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS:
		out->kind = IG_XP_RESP_REQUEST_HEADERS;
		return m->request_headers ? common_decode(m->request_headers->response, out) : 0;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS:
		out->kind = IG_XP_RESP_RESPONSE_HEADERS;
		return m->response_headers ? common_decode(m->response_headers->response, out) : 0;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY:
		out->kind = IG_XP_RESP_REQUEST_BODY;
		return m->request_body ? common_decode(m->request_body->response, out) : 0;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY:
		out->kind = IG_XP_RESP_RESPONSE_BODY;
		return m->response_body ? common_decode(m->response_body->response, out) : 0;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_TRAILERS:
		out->kind = IG_XP_RESP_REQUEST_TRAILERS;
		t = m->request_trailers;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_TRAILERS:
		out->kind = IG_XP_RESP_RESPONSE_TRAILERS;
		t = m->response_trailers;
		break;
	case ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_IMMEDIATE_RESPONSE:
		out->kind = IG_XP_RESP_IMMEDIATE;
		return immediate_decode(m->immediate_response, out);
	default:
		/* Nothing set, or streamed_immediate_response, which no
		 * infergate role uses: the caller treats it as unhandled. */
		out->kind = IG_XP_RESP_NONE;
		return 0;
	}
	if (t && (take_set(t->header_mutation, &out->set, &out->nset) != 0 ||
		  take_remove(t->header_mutation, &out->remove, &out->nremove) != 0))
		return -1;
	return 0;
}

int ig_xp_response_decode_pb(const uint8_t *data, size_t len, struct ig_xp_response *out)
{
	pb_response *m;
	const char *ep;

	memset(out, 0, sizeof *out);
	m = (pb_response *)unpack(&envoy__service__ext_proc__v3__processing_response__descriptor,
				  data, len);
	if (!m)
		return -1;
	out->pb_ = m;
	out->streamed_body = out->body = out->immediate_body = (struct ig_str){"", 0};
	out->immediate_details = out->lb_endpoint = (struct ig_str){"", 0};
	if (response_oneof(m, out) != 0) {
		ig_xp_response_free(out);
		return -1;
	}
	ep = value_string(struct_get(value_struct(struct_get(m->dynamic_metadata, LB_NS)), LB_KEY));
	out->lb_endpoint = cstr_slice(ep);
	out->override_timeout = m->override_message_timeout != NULL;
	return 0;
}

void ig_xp_response_free(struct ig_xp_response *r)
{
	free(r->set);
	free(r->remove);
	if (r->pb_)
		protobuf_c_message_free_unpacked(r->pb_, NULL);
	memset(r, 0, sizeof *r);
}

/* ---- body messages: decoded in place ---------------------------------------- */

/* The picker reads a chunk of the body in each request_body message, the
 * gateway one in each streamed_response, and protobuf-c's unpack copies
 * each chunk out of the receive buffer. A message that holds nothing but
 * the way to a body is read here instead, the body left where it is.
 * Anything else -- another field, one repeated, a key of two bytes, a
 * length of five, a bool written long -- goes to protobuf-c: what is read
 * here is a subset of what protobuf-c reads, and decodes to the same
 * struct (the fuzz targets compare the two on every input). */

struct wire {
	const uint8_t *p, *end;
};

/* A length of at most four bytes (protobuf-c reads at most five). */
static int wire_len(struct wire *w, size_t *n)
{
	uint32_t v = 0;

	for (int i = 0; i < 4 && w->p < w->end; i++) {
		uint8_t b = *w->p++;

		v |= (uint32_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (v > (size_t)(w->end - w->p))
				return -1;
			*n = v;
			return 0;
		}
	}
	return -1;
}

/* The next field, length-delimited with a one-byte key: its number and
 * its payload. */
static int wire_field(struct wire *w, unsigned *field, struct wire *payload)
{
	size_t n;

	if (w->p >= w->end || (*w->p & 0x80) || (*w->p & 7) != 2)
		return -1;
	*field = *w->p++ >> 3;
	if (wire_len(w, &n) != 0)
		return -1;
	*payload = (struct wire){w->p, w->p + n};
	w->p += n;
	return 0;
}

/* The whole of w is one such field, numbered `field`. */
static int wire_only(struct wire w, unsigned field, struct wire *payload)
{
	unsigned f;

	if (wire_field(&w, &f, payload) != 0 || f != field || w.p != w.end)
		return -1;
	return 0;
}

/* HttpBody and StreamedBodyResponse: body (1), end_of_stream (2), each
 * at most once, end_of_stream as one byte 0 or 1. */
static int wire_body_eos(struct wire w, struct ig_str *body, bool *eos)
{
	bool seen_body = false, seen_eos = false;

	*body = (struct ig_str){"", 0};
	*eos = false;
	while (w.p < w.end) {
		if (*w.p == 0x10 && !seen_eos) {
			if (w.end - w.p < 2 || w.p[1] > 1)
				return -1;
			*eos = w.p[1];
			seen_eos = true;
			w.p += 2;
			continue;
		}
		unsigned f;
		struct wire b;
		if (seen_body || wire_field(&w, &f, &b) != 0 || f != 1)
			return -1;
		if (b.end > b.p)
			*body = (struct ig_str){(const char *)b.p, (size_t)(b.end - b.p)};
		seen_body = true;
	}
	return 0;
}

/* ProcessingRequest { request_body (4) | response_body (5): HttpBody }. */
static bool request_in_place(const uint8_t *data, size_t len, struct ig_xp_request *out)
{
	if (!data)
		return false; /* nothing to read (and NULL + 0 is undefined) */
	struct wire w = {data, data + len}, in;
	unsigned f;

	if (wire_field(&w, &f, &in) != 0 || w.p != w.end || (f != 4 && f != 5) ||
	    wire_body_eos(in, &out->body, &out->end_of_stream) != 0)
		return false;
	out->kind = f == 4 ? IG_XP_REQ_REQUEST_BODY : IG_XP_REQ_RESPONSE_BODY;
	return true;
}

/* ProcessingResponse { request_body (3) | response_body (4): BodyResponse {
 * response (1): CommonResponse { body_mutation (3): BodyMutation { body (1)
 * | streamed_response (3): StreamedBodyResponse } } } }. */
static bool response_in_place(const uint8_t *data, size_t len, struct ig_xp_response *out)
{
	struct wire w = {data, data + len}, br, cr, bm, in;
	unsigned f, g;

	if (!data || wire_field(&w, &f, &br) != 0 || w.p != w.end || (f != 3 && f != 4) ||
	    wire_only(br, 1, &cr) != 0 || wire_only(cr, 3, &bm) != 0 ||
	    wire_field(&bm, &g, &in) != 0 || bm.p != bm.end)
		return false;
	if (g == 3) {
		if (wire_body_eos(in, &out->streamed_body, &out->streamed_eos) != 0)
			return false;
		out->has_streamed = true;
	} else if (g == 1) {
		if (in.end > in.p)
			out->body = (struct ig_str){(const char *)in.p, (size_t)(in.end - in.p)};
		out->has_body = true;
	} else {
		return false;
	}
	out->kind = f == 3 ? IG_XP_RESP_REQUEST_BODY : IG_XP_RESP_RESPONSE_BODY;
	return true;
}

int ig_xp_request_decode(const uint8_t *data, size_t len, struct ig_xp_request *out)
{
	memset(out, 0, sizeof *out);
	out->body = (struct ig_str){"", 0};
	if (request_in_place(data, len, out))
		return 0;
	return ig_xp_request_decode_pb(data, len, out);
}

int ig_xp_response_decode(const uint8_t *data, size_t len, struct ig_xp_response *out)
{
	memset(out, 0, sizeof *out);
	out->streamed_body = out->body = out->immediate_body = (struct ig_str){"", 0};
	out->immediate_details = out->lb_endpoint = (struct ig_str){"", 0};
	if (response_in_place(data, len, out))
		return 0;
	return ig_xp_response_decode_pb(data, len, out);
}

/* ---- encoding helpers ------------------------------------------------------ */

/* Appends the packed message to out. */
static int pack(struct ig_buf *out, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n == 0)
		return 0;
	if (ig_buf_reserve(out, n) != 0)
		return -1;
	protobuf_c_message_pack(m, (uint8_t *)out->ptr + out->len);
	out->len += n;
	return 0;
}

static ProtobufCBinaryData bin_of(struct ig_str s)
{
	return (ProtobufCBinaryData){s.len, (uint8_t *)s.ptr};
}

/* A HeaderMutation's set_headers (key, raw_value, OVERWRITE_IF_EXISTS_OR_ADD)
 * and remove_headers; *mem is the one allocation to free after packing. */
static int mutation_build(pb_mutation *hm, void **mem, const struct ig_xp_set_header *set,
			  size_t nset, const char *const *remove, size_t nremove)
{
	const size_t each = sizeof(pb_header_option) + sizeof(pb_header) + sizeof(void *);
	pb_header_option *opts;
	pb_header *vals;
	pb_header_option **ptrs;

	envoy__service__ext_proc__v3__header_mutation__init(hm);
	*mem = NULL;
	if (nset) {
		if (nset > SIZE_MAX / each)
			return -1;
		*mem = malloc(nset * each);
		if (!*mem)
			return -1;
		opts = *mem;
		vals = (pb_header *)(opts + nset);
		ptrs = (pb_header_option **)(vals + nset);
		for (size_t i = 0; i < nset; i++) {
			envoy__config__core__v3__header_value__init(&vals[i]);
			vals[i].key = (char *)set[i].key;
			vals[i].raw_value = bin_of(set[i].value);
			envoy__config__core__v3__header_value_option__init(&opts[i]);
			opts[i].header = &vals[i];
			opts[i].append_action =
			    ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD;
			ptrs[i] = &opts[i];
		}
		hm->n_set_headers = nset;
		hm->set_headers = ptrs;
	}
	hm->n_remove_headers = nremove;
	hm->remove_headers = (char **)remove;
	return 0;
}

/* dynamic_metadata {"envoy.lb": {"x-gateway-destination-endpoint": ep}}. */
struct lb_metadata {
	pb_struct top, inner;
	pb_struct_entry top_entry, inner_entry;
	pb_struct_entry *top_ptr, *inner_ptr;
	pb_value ns_value, ep_value;
};

static pb_struct *lb_metadata_build(struct lb_metadata *md, const char *ep, const char *ns,
				    const char *key)
{
	google__protobuf__value__init(&md->ep_value);
	md->ep_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	md->ep_value.string_value = (char *)ep;
	google__protobuf__struct__fields_entry__init(&md->inner_entry);
	md->inner_entry.key = (char *)(key ? key : LB_KEY);
	md->inner_entry.value = &md->ep_value;
	md->inner_ptr = &md->inner_entry;
	google__protobuf__struct__init(&md->inner);
	md->inner.n_fields = 1;
	md->inner.fields = &md->inner_ptr;
	if (ns && !*ns)
		return &md->inner;

	google__protobuf__value__init(&md->ns_value);
	md->ns_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	md->ns_value.struct_value = &md->inner;
	google__protobuf__struct__fields_entry__init(&md->top_entry);
	md->top_entry.key = (char *)(ns ? ns : LB_NS);
	md->top_entry.value = &md->ns_value;
	md->top_ptr = &md->top_entry;
	google__protobuf__struct__init(&md->top);
	md->top.n_fields = 1;
	md->top.fields = &md->top_ptr;
	return &md->top;
}

/* A CommonResponse with the header mutation and clear_route_cache; c->mem
 * is to be freed after packing. An empty one is left out of the answer
 * (common_used), which Envoy reads the same as an empty one. */
struct common {
	pb_common cr;
	pb_mutation hm;
	void *mem;
};

static int common_build(struct common *c, const struct ig_xp_set_header *set, size_t nset,
			const char *const *remove, size_t nremove, bool clear_route_cache)
{
	envoy__service__ext_proc__v3__common_response__init(&c->cr);
	c->mem = NULL;
	if (nset || nremove) {
		if (mutation_build(&c->hm, &c->mem, set, nset, remove, nremove) != 0)
			return -1;
		c->cr.header_mutation = &c->hm;
	}
	c->cr.clear_route_cache = clear_route_cache;
	return 0;
}

static bool common_used(const struct common *c)
{
	return c->cr.header_mutation || c->cr.clear_route_cache || c->cr.body_mutation;
}

/* ---- ProcessingResponse: encode ------------------------------------------- */

int ig_xp_encode_headers_answer(struct ig_buf *out, const struct ig_xp_headers_answer *a)
{
	pb_response r;
	pb_headers_response hr;
	struct common c;
	struct lb_metadata md;
	int rc;

	if (common_build(&c, a->set, a->nset, a->remove, a->nremove, a->clear_route_cache) != 0)
		return -1;
	envoy__service__ext_proc__v3__headers_response__init(&hr);
	if (common_used(&c))
		hr.response = &c.cr;
	envoy__service__ext_proc__v3__processing_response__init(&r);
	if (a->response) {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_HEADERS;
		r.response_headers = &hr;
	} else {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_HEADERS;
		r.request_headers = &hr;
	}
	if (a->lb_endpoint)
		r.dynamic_metadata = lb_metadata_build(&md, a->lb_endpoint, a->lb_ns, a->lb_key);
	rc = pack(out, &r.base);
	free(c.mem);
	return rc;
}

int ig_xp_encode_body_answer_pb(struct ig_buf *out, const struct ig_xp_body_answer *a)
{
	pb_response r;
	pb_body_response br;
	pb_body_mutation bm;
	pb_streamed sr;
	struct common c;
	struct lb_metadata md;
	struct ig_buf joined = {0};
	struct ig_str body = a->body;
	int rc;

	/* The reference encodes the body whole: parts are joined first. */
	if (a->nbody_parts) {
		for (size_t i = 0; i < a->nbody_parts; i++)
			if (ig_buf_append_str(&joined, a->body_parts[i]) != 0) {
				ig_buf_free(&joined);
				return -1;
			}
		body = ig_buf_str(&joined);
	}
	if (common_build(&c, a->set, a->nset, a->remove, a->nremove, a->clear_route_cache) != 0) {
		ig_buf_free(&joined);
		return -1;
	}
	envoy__service__ext_proc__v3__body_mutation__init(&bm);
	if (a->mode == IG_XP_BODY_FULL_DUPLEX_STREAMED) {
		/* Envoy requires streamed_response on every FULL_DUPLEX answer,
		 * even for an empty last chunk. */
		envoy__service__ext_proc__v3__streamed_body_response__init(&sr);
		sr.body = bin_of(body);
		sr.end_of_stream = a->end_of_stream;
		bm.mutation_case =
		    ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE;
		bm.streamed_response = &sr;
		c.cr.body_mutation = &bm;
	} else if ((a->mode == IG_XP_BODY_BUFFERED || a->mode == IG_XP_BODY_BUFFERED_PARTIAL) &&
		   a->replace_body) {
		bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY;
		bm.body = bin_of(body);
		c.cr.body_mutation = &bm;
	}
	envoy__service__ext_proc__v3__body_response__init(&br);
	if (common_used(&c))
		br.response = &c.cr;
	envoy__service__ext_proc__v3__processing_response__init(&r);
	if (a->response) {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_BODY;
		r.response_body = &br;
	} else {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_BODY;
		r.request_body = &br;
	}
	if (a->lb_endpoint)
		r.dynamic_metadata = lb_metadata_build(&md, a->lb_endpoint, a->lb_ns, a->lb_key);
	rc = pack(out, &r.base);
	free(c.mem);
	ig_buf_free(&joined);
	return rc;
}

int ig_xp_encode_trailers_answer(struct ig_buf *out, bool response)
{
	pb_response r;
	pb_trailers_response tr;

	envoy__service__ext_proc__v3__trailers_response__init(&tr);
	envoy__service__ext_proc__v3__processing_response__init(&r);
	if (response) {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_RESPONSE_TRAILERS;
		r.response_trailers = &tr;
	} else {
		r.response_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_REQUEST_TRAILERS;
		r.request_trailers = &tr;
	}
	return pack(out, &r.base);
}

int ig_xp_encode_immediate(struct ig_buf *out, int http_status, struct ig_str body,
			   const struct ig_xp_set_header *set, size_t nset, const char *details)
{
	pb_response r;
	pb_immediate ir;
	pb_http_status st;
	pb_mutation hm;
	void *mem = NULL;
	int rc;

	envoy__type__v3__http_status__init(&st);
	st.code = (Envoy__Type__V3__StatusCode)http_status;
	envoy__service__ext_proc__v3__immediate_response__init(&ir);
	ir.status = &st;
	if (nset) {
		if (mutation_build(&hm, &mem, set, nset, NULL, 0) != 0)
			return -1;
		ir.headers = &hm;
	}
	ir.body = bin_of(body);
	if (details)
		ir.details = (char *)details;
	envoy__service__ext_proc__v3__processing_response__init(&r);
	r.response_case =
	    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_IMMEDIATE_RESPONSE;
	r.immediate_response = &ir;
	rc = pack(out, &r.base);
	free(mem);
	return rc;
}

/* ---- ProcessingRequest: encode (the gateway as Envoy) ---------------------- */

/* The variable parts of a request: protobuf-c wants NUL-terminated
 * strings, so header keys and subset strings are copied (each its own
 * block); request_parts_free frees what was made. */
struct request_parts {
	pb_header_map map;
	pb_header *vals;
	pb_header **vals_ptr;
	pb_list list;
	pb_value *items;
	pb_value **items_ptr;
};

static void request_parts_free(struct request_parts *rp)
{
	for (size_t i = 0; rp->vals && i < rp->map.n_headers; i++)
		free(rp->vals[i].key);
	for (size_t i = 0; rp->items && i < rp->list.n_values; i++)
		free(rp->items[i].string_value);
	free(rp->vals);
	free(rp->vals_ptr);
	free(rp->items);
	free(rp->items_ptr);
}

static int headers_build(struct request_parts *rp, const struct ig_xp_header *h, size_t n)
{
	envoy__config__core__v3__header_map__init(&rp->map);
	if (!n)
		return 0;
	rp->vals = calloc(n, sizeof *rp->vals);
	rp->vals_ptr = calloc(n, sizeof *rp->vals_ptr);
	if (!rp->vals || !rp->vals_ptr)
		return -1;
	for (size_t i = 0; i < n; i++) {
		envoy__config__core__v3__header_value__init(&rp->vals[i]);
		rp->vals[i].key = NULL;
		rp->vals_ptr[i] = &rp->vals[i];
	}
	rp->map.n_headers = n;
	rp->map.headers = rp->vals_ptr;
	for (size_t i = 0; i < n; i++) {
		rp->vals[i].key = ig_str_dup(h[i].key);
		if (!rp->vals[i].key)
			return -1;
		rp->vals[i].raw_value = bin_of(h[i].value);
	}
	return 0;
}

static int subset_build(struct request_parts *rp, const struct ig_str *s, size_t n)
{
	google__protobuf__list_value__init(&rp->list);
	if (!n)
		return 0;
	rp->items = calloc(n, sizeof *rp->items);
	rp->items_ptr = calloc(n, sizeof *rp->items_ptr);
	if (!rp->items || !rp->items_ptr)
		return -1;
	for (size_t i = 0; i < n; i++) {
		google__protobuf__value__init(&rp->items[i]);
		rp->items[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		rp->items[i].string_value = NULL;
		rp->items_ptr[i] = &rp->items[i];
	}
	rp->list.n_values = n;
	rp->list.values = rp->items_ptr;
	for (size_t i = 0; i < n; i++) {
		rp->items[i].string_value = ig_str_dup(s[i]);
		if (!rp->items[i].string_value)
			return -1;
	}
	return 0;
}

/* metadata_context with up to two namespaces: the single string value and
 * the subset list. */
struct request_meta {
	pb_metadata md;
	pb_metadata_entry ent[2];
	pb_metadata_entry *ent_ptr[2];
	pb_struct st[2];
	pb_struct_entry fe[2];
	pb_struct_entry *fe_ptr[2];
	pb_value val[2];
};

static void meta_add(struct request_meta *m, const char *ns, const char *key, pb_value v)
{
	size_t i = m->md.n_filter_metadata;

	m->val[i] = v;
	google__protobuf__struct__fields_entry__init(&m->fe[i]);
	m->fe[i].key = (char *)key;
	m->fe[i].value = &m->val[i];
	m->fe_ptr[i] = &m->fe[i];
	google__protobuf__struct__init(&m->st[i]);
	m->st[i].n_fields = 1;
	m->st[i].fields = &m->fe_ptr[i];
	envoy__config__core__v3__metadata__filter_metadata_entry__init(&m->ent[i]);
	m->ent[i].key = (char *)ns;
	m->ent[i].value = &m->st[i];
	m->ent_ptr[i] = &m->ent[i];
	m->md.n_filter_metadata = i + 1;
	m->md.filter_metadata = m->ent_ptr;
}

static void request_meta_build(struct request_meta *m, const struct ig_xp_request_out *r,
			       pb_list *subset)
{
	pb_value v;

	envoy__config__core__v3__metadata__init(&m->md);
	if (r->meta_ns && r->meta_key && r->meta_value) {
		google__protobuf__value__init(&v);
		v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v.string_value = (char *)r->meta_value;
		meta_add(m, r->meta_ns, r->meta_key, v);
	}
	if (r->subset) {
		google__protobuf__value__init(&v);
		v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
		v.list_value = subset;
		meta_add(m, SUBSET_NS, SUBSET_KEY, v);
	}
}

static void request_oneof_set(pb_request *m, enum ig_xp_req_kind kind, pb_http_headers *h,
			      pb_http_body *b, pb_http_trailers *t)
{
	switch (kind) {
	case IG_XP_REQ_REQUEST_HEADERS:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS;
		m->request_headers = h;
		break;
	case IG_XP_REQ_RESPONSE_HEADERS:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS;
		m->response_headers = h;
		break;
	case IG_XP_REQ_REQUEST_BODY:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_BODY;
		m->request_body = b;
		break;
	case IG_XP_REQ_RESPONSE_BODY:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_BODY;
		m->response_body = b;
		break;
	case IG_XP_REQ_REQUEST_TRAILERS:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_TRAILERS;
		m->request_trailers = t;
		break;
	case IG_XP_REQ_RESPONSE_TRAILERS:
		m->request_case =
		    ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_TRAILERS;
		m->response_trailers = t;
		break;
	default:
		break;
	}
}

int ig_xp_encode_request_pb(struct ig_buf *out, const struct ig_xp_request_out *r)
{
	struct request_parts rp;
	struct request_meta meta;
	pb_request m;
	pb_http_headers h;
	pb_http_body b;
	pb_http_trailers t;
	pb_protocol_config pc;
	int rc = -1;

	memset(&rp, 0, sizeof rp);
	if (headers_build(&rp, r->headers, r->nheaders) != 0 ||
	    subset_build(&rp, r->subset, r->subset ? r->nsubset : 0) != 0)
		goto out;
	envoy__service__ext_proc__v3__http_headers__init(&h);
	h.headers = &rp.map;
	h.end_of_stream = r->end_of_stream;
	envoy__service__ext_proc__v3__http_body__init(&b);
	b.body = bin_of(r->body);
	b.end_of_stream = r->end_of_stream;
	envoy__service__ext_proc__v3__http_trailers__init(&t);
	t.trailers = &rp.map;

	envoy__service__ext_proc__v3__processing_request__init(&m);
	request_oneof_set(&m, r->kind, &h, &b, &t);
	request_meta_build(&meta, r, &rp.list);
	if (meta.md.n_filter_metadata)
		m.metadata_context = &meta.md;
	if (r->protocol_config) {
		envoy__service__ext_proc__v3__protocol_configuration__init(&pc);
		pc.request_body_mode =
		    (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)
			r->request_body_mode;
		pc.response_body_mode =
		    (Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode__BodySendMode)
			r->response_body_mode;
		m.protocol_config = &pc;
	}
	rc = pack(out, &m.base);
out:
	request_parts_free(&rp);
	return rc;
}

/* ---- encoding in pieces: a large body by reference ------------------------- */

/* protobuf-c packs a submessage behind a one-byte length and moves it
 * when its length needs more (prefixed_message_pack), so a 62 KB chunk
 * five messages deep was moved five times, then copied again by the
 * caller's framing. Here the fields on the way down to the body are
 * written by hand -- a key and a length each -- and the body is not copied
 * at all: the message is head + body + tail, and head and tail hold
 * everything else. Fields beside that path still come from protobuf-c,
 * packed as messages of their own (fields of one message are simply
 * concatenated in field-number order, which is the order protobuf-c
 * writes), so the bytes are protobuf-c's, which the unit tests and the
 * fuzz targets check against the _pb encoders. */

#define WIRE_LEN 2

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Appends the key of length-delimited field `field` and the length n. */
static int put_key_len(struct ig_buf *b, unsigned field, uint64_t n)
{
	uint8_t tmp[16];
	size_t k = 0;
	uint64_t key = (uint64_t)field << 3 | WIRE_LEN;

	for (uint64_t v = key;; v >>= 7) {
		tmp[k++] = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
		if (v < 0x80)
			break;
	}
	for (uint64_t v = n;; v >>= 7) {
		tmp[k++] = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
		if (v < 0x80)
			break;
	}
	return ig_buf_append(b, tmp, k);
}

/* The size of field `field` holding n bytes: key, length, payload. */
static size_t field_size(unsigned field, size_t n)
{
	return varint_len((uint64_t)field << 3 | WIRE_LEN) + varint_len(n) + n;
}

static void pieces_init(struct ig_xp_pieces *pc)
{
	memset(pc, 0, sizeof *pc);
}

/* Lists head, the body's parts and tail in part[] once both are final. */
static void pieces_finish(struct ig_xp_pieces *pc, const struct ig_str *body, size_t nbody)
{
	pc->nparts = 0;
	if (pc->head.len)
		pc->part[pc->nparts++] = ig_buf_str(&pc->head);
	for (size_t i = 0; i < nbody; i++)
		if (body[i].len)
			pc->part[pc->nparts++] = body[i];
	if (pc->tail.len)
		pc->part[pc->nparts++] = ig_buf_str(&pc->tail);
}

void ig_xp_pieces_free(struct ig_xp_pieces *pc)
{
	ig_buf_free(&pc->head);
	ig_buf_free(&pc->tail);
	memset(pc, 0, sizeof *pc);
}

/* Appends the pieces joined: the contiguous encoding. */
static int pieces_join(struct ig_buf *out, const struct ig_xp_pieces *pc)
{
	size_t n = 0;

	for (size_t i = 0; i < pc->nparts; i++)
		n += pc->part[i].len;
	if (ig_buf_reserve(out, n) != 0)
		return -1;
	for (size_t i = 0; i < pc->nparts; i++)
		ig_buf_append_str(out, pc->part[i]);
	return 0;
}

/* The body's parts: a->body_parts, or a->body alone. */
static size_t body_parts_of(const struct ig_xp_body_answer *a, const struct ig_str **parts,
			    size_t *total)
{
	size_t n = a->nbody_parts ? a->nbody_parts : 1;

	*parts = a->nbody_parts ? a->body_parts : &a->body;
	*total = 0;
	for (size_t i = 0; i < n; i++)
		*total += (*parts)[i].len;
	return n;
}

/* The body answer's path to its body, packed by hand around the body:
 *
 *   ProcessingResponse { request_body (3) | response_body (4):
 *     BodyResponse { response (1):
 *       CommonResponse { [header_mutation (2)], body_mutation (3):
 *         BodyMutation { body (1): BODY
 *                      | streamed_response (3): StreamedBodyResponse {
 *                            [body (1): BODY], [end_of_stream (2)] } },
 *         [clear_route_cache (5)] } },
 *     [dynamic_metadata (8)] }
 *
 * The bracketed siblings come from protobuf-c. In BodyMutation the body is
 * a oneof member, written even when empty; StreamedBodyResponse.body is a
 * plain proto3 field, left out when empty. */
static int body_answer_pieces(struct ig_xp_pieces *pc, const struct ig_xp_body_answer *a,
			      size_t blen, bool streamed)
{
	struct common c;
	struct lb_metadata md;
	pb_common sib;
	pb_response top;
	size_t mark, s4 = 0, s3, s2, before, after;
	int rc = -1;

	if (common_build(&c, a->set, a->nset, NULL, 0, false) != 0)
		return -1;
	/* CommonResponse's fields before body_mutation: header_mutation. */
	if (pack(&pc->head, &c.cr.base) != 0)
		goto out;
	before = pc->head.len;
	pc->head.len = 0;
	/* ... and after it: clear_route_cache; then ProcessingResponse's
	 * dynamic_metadata. Both go to the tail, in that order. */
	envoy__service__ext_proc__v3__common_response__init(&sib);
	sib.clear_route_cache = a->clear_route_cache;
	envoy__service__ext_proc__v3__processing_response__init(&top);
	if (a->lb_endpoint)
		top.dynamic_metadata = lb_metadata_build(&md, a->lb_endpoint, a->lb_ns, a->lb_key);
	if (streamed && a->end_of_stream && ig_buf_append(&pc->tail, "\x10\x01", 2) != 0)
		goto out;
	mark = pc->tail.len;
	if (pack(&pc->tail, &sib.base) != 0)
		goto out;
	after = pc->tail.len - mark;
	if (pack(&pc->tail, &top.base) != 0)
		goto out;

	if (streamed) {
		s4 = (blen ? field_size(1, blen) : 0) + (a->end_of_stream ? 2 : 0);
		s3 = field_size(3, s4);
	} else {
		s3 = field_size(1, blen);
	}
	s2 = before + field_size(3, s3) + after;

	/* The head, outermost first; header_mutation is packed again in
	 * its place (its bytes were only measured above). */
	if (put_key_len(&pc->head, a->response ? 4 : 3, field_size(1, s2)) != 0 ||
	    put_key_len(&pc->head, 1, s2) != 0 || pack(&pc->head, &c.cr.base) != 0 ||
	    put_key_len(&pc->head, 3, s3) != 0)
		goto out;
	if (streamed) {
		if (put_key_len(&pc->head, 3, s4) != 0 ||
		    (blen && put_key_len(&pc->head, 1, blen) != 0))
			goto out;
	} else if (put_key_len(&pc->head, 1, blen) != 0) {
		goto out;
	}
	rc = 0;
out:
	free(c.mem);
	return rc;
}

int ig_xp_encode_body_answer_pieces(struct ig_xp_pieces *pc, const struct ig_xp_body_answer *a)
{
	const struct ig_str *parts;
	size_t blen, n = body_parts_of(a, &parts, &blen);
	bool streamed = a->mode == IG_XP_BODY_FULL_DUPLEX_STREAMED;
	bool replace = (a->mode == IG_XP_BODY_BUFFERED || a->mode == IG_XP_BODY_BUFFERED_PARTIAL) &&
		       a->replace_body;

	pieces_init(pc);
	if (n > IG_XP_BODY_PARTS || blen > UINT32_MAX)
		return -1;
	/* Without a body to carry, protobuf-c packs it all. */
	if (!streamed && !replace) {
		n = 0;
		if (ig_xp_encode_body_answer_pb(&pc->head, a) != 0)
			goto fail;
	} else if (body_answer_pieces(pc, a, blen, streamed) != 0) {
		goto fail;
	}
	pieces_finish(pc, parts, n);
	return 0;
fail:
	ig_xp_pieces_free(pc);
	return -1;
}

int ig_xp_encode_body_answer(struct ig_buf *out, const struct ig_xp_body_answer *a)
{
	struct ig_xp_pieces pc;
	int rc;

	if (ig_xp_encode_body_answer_pieces(&pc, a) != 0)
		return -1;
	rc = pieces_join(out, &pc);
	ig_xp_pieces_free(&pc);
	return rc;
}

/* A body message of the gateway, by hand around the body:
 *
 *   ProcessingRequest { request_body (4) | response_body (5):
 *     HttpBody { [body (1): BODY], [end_of_stream (2)] },
 *     [metadata_context (8)], [protocol_config (11)] }
 *
 * HttpBody is a oneof member, written even when empty; its body is a plain
 * field, left out when empty. The siblings after it are packed by
 * protobuf-c as a ProcessingRequest of their own. */
static int request_body_pieces(struct ig_xp_pieces *pc, const struct ig_xp_request_out *r)
{
	struct ig_xp_request_out rest = *r;
	size_t blen = r->body.len;
	size_t s1 = (blen ? field_size(1, blen) : 0) + (r->end_of_stream ? 2 : 0);

	rest.kind = IG_XP_REQ_NONE;
	if (r->end_of_stream && ig_buf_append(&pc->tail, "\x10\x01", 2) != 0)
		return -1;
	if (ig_xp_encode_request_pb(&pc->tail, &rest) != 0)
		return -1;
	if (put_key_len(&pc->head, r->kind == IG_XP_REQ_RESPONSE_BODY ? 5 : 4, s1) != 0 ||
	    (blen && put_key_len(&pc->head, 1, blen) != 0))
		return -1;
	return 0;
}

int ig_xp_encode_request_pieces(struct ig_xp_pieces *pc, const struct ig_xp_request_out *r)
{
	bool body = r->kind == IG_XP_REQ_REQUEST_BODY || r->kind == IG_XP_REQ_RESPONSE_BODY;

	pieces_init(pc);
	if (r->body.len > UINT32_MAX)
		return -1;
	if (!body) {
		if (ig_xp_encode_request_pb(&pc->head, r) != 0)
			goto fail;
	} else if (request_body_pieces(pc, r) != 0) {
		goto fail;
	}
	pieces_finish(pc, &r->body, body ? 1 : 0);
	return 0;
fail:
	ig_xp_pieces_free(pc);
	return -1;
}

int ig_xp_encode_request(struct ig_buf *out, const struct ig_xp_request_out *r)
{
	struct ig_xp_pieces pc;
	int rc;

	if (ig_xp_encode_request_pieces(&pc, r) != 0)
		return -1;
	rc = pieces_join(out, &pc);
	ig_xp_pieces_free(&pc);
	return rc;
}

/* ---- grpc.health.v1 ---------------------------------------------------------- */

int ig_health_request_decode(const uint8_t *data, size_t len, char *service, size_t slen)
{
	Grpc__Health__V1__HealthCheckRequest *m;
	size_t n;

	m = (Grpc__Health__V1__HealthCheckRequest *)unpack(
	    &grpc__health__v1__health_check_request__descriptor, data, len);
	if (!m)
		return -1;
	if (slen) {
		n = m->service ? strlen(m->service) : 0;
		if (n > slen - 1)
			n = slen - 1;
		if (n)
			memcpy(service, m->service, n);
		service[n] = '\0';
	}
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return 0;
}

int ig_health_encode_response(struct ig_buf *out, enum ig_health_status st)
{
	Grpc__Health__V1__HealthCheckResponse m;

	grpc__health__v1__health_check_response__init(&m);
	m.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
	return pack(out, &m.base);
}

int ig_health_list_request_decode(const uint8_t *data, size_t len)
{
	Grpc__Health__V1__HealthListRequest *m;

	m = (Grpc__Health__V1__HealthListRequest *)unpack(
	    &grpc__health__v1__health_list_request__descriptor, data, len);
	if (!m)
		return -1;
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return 0;
}

int ig_health_encode_list(struct ig_buf *out, const char *const *services,
			  const enum ig_health_status *st, size_t n)
{
	Grpc__Health__V1__HealthListResponse m;
	Grpc__Health__V1__HealthListResponse__StatusesEntry e[IG_HEALTH_LIST_MAX];
	Grpc__Health__V1__HealthListResponse__StatusesEntry *pe[IG_HEALTH_LIST_MAX];
	Grpc__Health__V1__HealthCheckResponse r[IG_HEALTH_LIST_MAX];

	if (n > IG_HEALTH_LIST_MAX)
		n = IG_HEALTH_LIST_MAX;
	grpc__health__v1__health_list_response__init(&m);
	for (size_t i = 0; i < n; i++) {
		grpc__health__v1__health_check_response__init(&r[i]);
		r[i].status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st[i];
		grpc__health__v1__health_list_response__statuses_entry__init(&e[i]);
		e[i].key = (char *)services[i];
		e[i].value = &r[i];
		pe[i] = &e[i];
	}
	m.n_statuses = n;
	m.statuses = pe;
	return pack(out, &m.base);
}

int ig_health_encode_request(struct ig_buf *out, const char *service)
{
	Grpc__Health__V1__HealthCheckRequest m;

	grpc__health__v1__health_check_request__init(&m);
	if (service)
		m.service = (char *)service;
	return pack(out, &m.base);
}

/* A negative status (a peer's garbage) is reported as malformed, so that a
 * caller cannot mistake it for one of the named states. */
int ig_health_response_decode(const uint8_t *data, size_t len)
{
	Grpc__Health__V1__HealthCheckResponse *m;
	int st;

	m = (Grpc__Health__V1__HealthCheckResponse *)unpack(
	    &grpc__health__v1__health_check_response__descriptor, data, len);
	if (!m)
		return -1;
	st = (int)m->status;
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return st < 0 ? -1 : st;
}
