/* Envoy's ext_proc messages (spec/extproc.md §3) as plain C structs, and
 * the protobuf encoding of each message either role sends. The wire code
 * is protobuf-c's, generated at build time from proto/ (our own minimal
 * .proto files with Envoy's package names and field numbers); nothing
 * outside this module includes the generated headers.
 *
 * Decoding copies nothing it can point to: the decoded struct holds
 * slices into an unpacked protobuf-c message owned by the struct, freed by
 * the matching _free() -- or, for a message that is only a body chunk
 * (request_body, streamed_response), into the decoder's input itself, so
 * the input must outlive the struct. Unknown fields are skipped; enums
 * are open. */
#ifndef IG_EXTPROC_MSG_H
#define IG_EXTPROC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

/* ProcessingMode.BodySendMode */
enum ig_xp_body_mode {
	IG_XP_BODY_NONE = 0,
	IG_XP_BODY_STREAMED = 1,
	IG_XP_BODY_BUFFERED = 2,
	IG_XP_BODY_BUFFERED_PARTIAL = 3,
	IG_XP_BODY_FULL_DUPLEX_STREAMED = 4,
	IG_XP_BODY_GRPC = 5,
};

/* Which oneof member a ProcessingRequest carries. */
enum ig_xp_req_kind {
	IG_XP_REQ_NONE = 0,
	IG_XP_REQ_REQUEST_HEADERS,
	IG_XP_REQ_RESPONSE_HEADERS,
	IG_XP_REQ_REQUEST_BODY,
	IG_XP_REQ_RESPONSE_BODY,
	IG_XP_REQ_REQUEST_TRAILERS,
	IG_XP_REQ_RESPONSE_TRAILERS,
};

struct ig_xp_header {
	struct ig_str key;   /* as sent (Envoy: lower case) */
	struct ig_str value; /* raw_value when not empty, else value */
};

/* ---- Envoy → picker: ProcessingRequest ---- */

struct ig_xp_request {
	enum ig_xp_req_kind kind;
	/* headers / trailers (kinds *_HEADERS, *_TRAILERS) */
	struct ig_xp_header *headers;
	size_t nheaders;
	/* body (kinds *_BODY) */
	struct ig_str body;
	/* HttpHeaders.end_of_stream or HttpBody.end_of_stream */
	bool end_of_stream;
	bool observability_mode;
	/* protocol_config, when present (first message of a stream) */
	bool has_protocol_config;
	enum ig_xp_body_mode request_body_mode, response_body_mode;
	/* metadata_context.filter_metadata["envoy.lb.subset_hint"]
	 * ["x-gateway-destination-endpoint-subset"]: the endpoints a list of
	 * strings or a single string names, each string split at commas and
	 * trimmed (GIE v1.6's lwepp); has_subset false when absent or of
	 * another type. */
	bool has_subset;
	struct ig_str *subset;
	size_t nsubset;
	/* metadata_context.filter_metadata["envoy.lb"]
	 * ["x-gateway-destination-endpoint-served"]: the endpoint the proxy
	 * sent the request to (GIE's protocol, on the response path), a
	 * string value; empty when absent. has_lb: the "envoy.lb" namespace
	 * is there, with that key or not. */
	struct ig_str served;
	bool has_lb;
	void *pb_; /* the unpacked message */
};

/* Decodes one ProcessingRequest. Returns 0, or -1 (malformed: the caller
 * ends the stream with INVALID_ARGUMENT). */
int ig_xp_request_decode(const uint8_t *data, size_t len, struct ig_xp_request *out);
void ig_xp_request_free(struct ig_xp_request *r);
/* A header of a decoded headers message by lower-case name. */
struct ig_str ig_xp_header_get(const struct ig_xp_request *r, const char *name);

/* ---- picker → Envoy: ProcessingResponse ---- */

/* A header to set: written as HeaderValueOption{header{key, raw_value},
 * append_action OVERWRITE_IF_EXISTS_OR_ADD}. */
struct ig_xp_set_header {
	const char *key;
	struct ig_str value;
};

/* The answers a picker sends. Each encoder appends one whole
 * ProcessingResponse to out (no gRPC framing) and returns 0, or -1 when
 * out of memory. */

/* request_headers or response_headers answer (response selects which):
 * CommonResponse with the header mutation (set, remove), clear_route_cache,
 * and, when lb_endpoint is not NULL, dynamic_metadata {"envoy.lb":
 * {"x-gateway-destination-endpoint": lb_endpoint}}. nset 0 and nremove 0
 * and no clear_route_cache writes the empty answer ("continue"). */
struct ig_xp_headers_answer {
	bool response; /* false: request_headers (1), true: response_headers (2) */
	const struct ig_xp_set_header *set;
	size_t nset;
	const char *const *remove;
	size_t nremove;
	bool clear_route_cache;
	const char *lb_endpoint;
	/* The metadata's namespace and key (NULL: "envoy.lb" and
	 * "x-gateway-destination-endpoint"); an empty namespace puts the key
	 * at the top, with no namespace struct around it (as GIE's flag). */
	const char *lb_ns, *lb_key;
};
int ig_xp_encode_headers_answer(struct ig_buf *out, const struct ig_xp_headers_answer *a);

/* request_body or response_body answer. mode FULL_DUPLEX_STREAMED:
 * body_mutation.streamed_response{body, end_of_stream}. BUFFERED: when
 * replace_body, body_mutation.body = body; the header mutation (set) and
 * clear_route_cache and dynamic metadata as for headers. STREAMED: an
 * empty CommonResponse (continue). */
struct ig_xp_body_answer {
	bool response; /* false: request_body (3), true: response_body (4) */
	enum ig_xp_body_mode mode;
	struct ig_str body;
	/* Or the body in parts (nbody_parts > 0, at most IG_XP_BODY_PARTS;
	 * body is then not read): their concatenation, e.g. the client's body
	 * around a replaced model, without splicing it first. */
	const struct ig_str *body_parts;
	size_t nbody_parts;
	bool end_of_stream; /* streamed_response.end_of_stream */
	bool replace_body;  /* BUFFERED: write body_mutation.body */
	const struct ig_xp_set_header *set;
	size_t nset;
	const char *const *remove; /* header_mutation.remove_headers */
	size_t nremove;
	bool clear_route_cache;
	const char *lb_endpoint;
	/* The metadata's namespace and key (NULL: "envoy.lb" and
	 * "x-gateway-destination-endpoint"); an empty namespace puts the key
	 * at the top, with no namespace struct around it (as GIE's flag). */
	const char *lb_ns, *lb_key;
};
int ig_xp_encode_body_answer(struct ig_buf *out, const struct ig_xp_body_answer *a);

/* ---- encoding in pieces, for ig_grpc_sendv ---- */

#define IG_XP_BODY_PARTS 3

/* One message as the concatenation of part[0..nparts): protobuf bytes
 * before the body (held in head), the body's own bytes -- the caller's,
 * not copied, so they must stay valid while the parts are used -- and
 * protobuf bytes after it (in tail). The bytes are the same as the
 * contiguous encoder's, which is built on this. Free with
 * ig_xp_pieces_free (also after a failure, which leaves it empty). */
struct ig_xp_pieces {
	struct ig_str part[IG_XP_BODY_PARTS + 2];
	size_t nparts;
	struct ig_buf head, tail;
};
void ig_xp_pieces_free(struct ig_xp_pieces *pc);
int ig_xp_encode_body_answer_pieces(struct ig_xp_pieces *pc, const struct ig_xp_body_answer *a);

/* request_trailers (5) or response_trailers (6): an empty TrailersResponse. */
int ig_xp_encode_trailers_answer(struct ig_buf *out, bool response);

/* immediate_response{status{code}, body, headers set (content-type etc.),
 * details}. */
int ig_xp_encode_immediate(struct ig_buf *out, int http_status, struct ig_str body,
			   const struct ig_xp_set_header *set, size_t nset, const char *details);

/* ---- gateway → picker: ProcessingRequest (the gateway as Envoy) ---- */

struct ig_xp_request_out {
	enum ig_xp_req_kind kind;
	const struct ig_xp_header *headers; /* headers kinds: written with raw_value */
	size_t nheaders;
	struct ig_str body;
	bool end_of_stream;
	/* first message only: protocol_config{request_body_mode,
	 * response_body_mode} */
	bool protocol_config;
	enum ig_xp_body_mode request_body_mode, response_body_mode;
	/* metadata_context.filter_metadata[ns][key] = value (a string), e.g.
	 * "envoy.lb" / "x-gateway-destination-endpoint-served"; or, with
	 * subset, the list "envoy.lb.subset_hint" /
	 * "x-gateway-destination-endpoint-subset". */
	const char *meta_ns, *meta_key, *meta_value;
	const struct ig_str *subset;
	size_t nsubset;
};
int ig_xp_encode_request(struct ig_buf *out, const struct ig_xp_request_out *r);
int ig_xp_encode_request_pieces(struct ig_xp_pieces *pc, const struct ig_xp_request_out *r);

/* ---- picker → gateway: ProcessingResponse (the gateway reads) ---- */

enum ig_xp_resp_kind {
	IG_XP_RESP_NONE = 0,
	IG_XP_RESP_REQUEST_HEADERS,
	IG_XP_RESP_RESPONSE_HEADERS,
	IG_XP_RESP_REQUEST_BODY,
	IG_XP_RESP_RESPONSE_BODY,
	IG_XP_RESP_REQUEST_TRAILERS,
	IG_XP_RESP_RESPONSE_TRAILERS,
	IG_XP_RESP_IMMEDIATE,
};

struct ig_xp_response {
	enum ig_xp_resp_kind kind;
	int status;		  /* CommonResponse.status: 0 CONTINUE, 1 CONTINUE_AND_REPLACE */
	struct ig_xp_header *set; /* header_mutation.set_headers (raw_value, else value) */
	size_t nset;
	struct ig_str *remove; /* header_mutation.remove_headers */
	size_t nremove;
	bool clear_route_cache;
	/* body_mutation */
	bool has_streamed;
	struct ig_str streamed_body;
	bool streamed_eos;
	bool has_body;
	struct ig_str body; /* body_mutation.body (BUFFERED) */
	bool clear_body;
	/* immediate_response */
	int immediate_status; /* HttpStatus code; 200 when absent or < 200 */
	struct ig_str immediate_body;
	struct ig_str immediate_details;
	/* dynamic_metadata["envoy.lb"]["x-gateway-destination-endpoint"]
	 * (a string value); empty when absent */
	struct ig_str lb_endpoint;
	bool override_timeout; /* override_message_timeout present */
	void *pb_;
};
int ig_xp_response_decode(const uint8_t *data, size_t len, struct ig_xp_response *out);
void ig_xp_response_free(struct ig_xp_response *r);

/* ---- the reference: protobuf-c all the way ---- */

/* For the unit tests and the fuzz targets. The body encoders as
 * protobuf-c's pack writes them, whole (parts are joined first): what the
 * encoders above must equal byte for byte. */
int ig_xp_encode_body_answer_pb(struct ig_buf *out, const struct ig_xp_body_answer *a);
int ig_xp_encode_request_pb(struct ig_buf *out, const struct ig_xp_request_out *r);

/* The decoders as protobuf-c's unpack reads everything: what the in-place
 * reading of body chunks must agree with. */
int ig_xp_request_decode_pb(const uint8_t *data, size_t len, struct ig_xp_request *out);
int ig_xp_response_decode_pb(const uint8_t *data, size_t len, struct ig_xp_response *out);

/* ---- grpc.health.v1 ---- */

enum ig_health_status {
	IG_HEALTH_UNKNOWN = 0,
	IG_HEALTH_SERVING = 1,
	IG_HEALTH_NOT_SERVING = 2,
	IG_HEALTH_SERVICE_UNKNOWN = 3,
};
/* HealthCheckRequest.service into buf (NUL-terminated, cut to len-1);
 * -1 when malformed. */
int ig_health_request_decode(const uint8_t *data, size_t len, char *service, size_t slen);
int ig_health_encode_response(struct ig_buf *out, enum ig_health_status st);
int ig_health_encode_request(struct ig_buf *out, const char *service);
/* List: a HealthListRequest is read (0, or -1 when malformed) and the
 * HealthListResponse written, service i with status st[i] (at most
 * IG_HEALTH_LIST_MAX of them). */
#define IG_HEALTH_LIST_MAX 8
int ig_health_list_request_decode(const uint8_t *data, size_t len);
int ig_health_encode_list(struct ig_buf *out, const char *const *services,
			  const enum ig_health_status *st, size_t n);
/* HealthCheckResponse.status, or -1 when malformed. */
int ig_health_response_decode(const uint8_t *data, size_t len);

#endif
