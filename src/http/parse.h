/* HTTP/1.x message heads and body framing. A stateless parser in the
 * picohttpparser mould: the caller owns the buffer and the header array,
 * the output points into the buffer, nothing is allocated, and a partial
 * head is simply parsed again when more bytes arrive. */
#ifndef IG_HTTP_PARSE_H
#define IG_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/str.h"

/* Return codes of the head parsers (>0 is the length of the head,
 * including the blank line that ends it). */
#define IG_HTTP_INVALID (-1)
#define IG_HTTP_INCOMPLETE (-2)
#define IG_HTTP_TOO_MANY_HEADERS (-3)
/* A request line whose HTTP-version has a major version other than 1
 * (HTTP/2.0, HTTP/3.0): answered 505 (RFC 9110 §15.6.6). */
#define IG_HTTP_BAD_VERSION (-4)
/* ig_http_request_framing: a transfer coding the parser does not
 * implement: answered 501 (RFC 9112 §6.1). */
#define IG_HTTP_NOT_IMPLEMENTED (-5)

struct ig_http_header {
	struct ig_str name;  /* as sent; compare with ig_str_ieq */
	struct ig_str value; /* leading and trailing blanks removed */
};

struct ig_http_request {
	struct ig_str method;
	struct ig_str target; /* request-target as sent: path plus "?query" */
	struct ig_str path;   /* target up to '?' */
	struct ig_str query;  /* after '?', without it; empty if none */
	int minor_version;    /* HTTP/1.<minor_version>: 0, or 1 for any later 1.x */
	struct ig_http_header *headers;
	size_t num_headers;
};

struct ig_http_response {
	int minor_version;
	int status;
	struct ig_str reason;
	struct ig_http_header *headers;
	size_t num_headers;
};

/* A byte that may appear in a header name (RFC 9110 token). */
bool ig_http_is_tchar(unsigned char c);

/* Parses a request head from buf[0..len). `headers` has room for
 * max_headers entries; req->headers points to it on return. Rejects
 * obsolete line folding, bare CR and control bytes in names/values;
 * HTTP/1.x past 1.1 is read as HTTP/1.1, and a whole request line of
 * another major version is IG_HTTP_BAD_VERSION (the response parser
 * calls that invalid). */
int ig_http_parse_request(const char *buf, size_t len, struct ig_http_request *req,
			  struct ig_http_header *headers, size_t max_headers);
int ig_http_parse_response(const char *buf, size_t len, struct ig_http_response *res,
			   struct ig_http_header *headers, size_t max_headers);

/* First header with this name (case-insensitive), or NULL. */
const struct ig_http_header *ig_http_find_header(const struct ig_http_header *h, size_t n,
						 const char *name);

/* Whether some header `name` lists `token` among its comma-separated
 * elements (case-insensitive): Connection: upgrade, Upgrade: websocket. */
bool ig_http_has_token(const struct ig_http_header *h, size_t n, const char *name,
		       const char *token);

/* Whether a Connection field of the message lists `name` as one of its
 * connection options (case-insensitive): such a field is for that
 * connection alone, and an intermediary removes it (RFC 9110 §7.6.1). */
bool ig_http_connection_names(const struct ig_http_header *h, size_t n, struct ig_str name);
/* Whether any Connection field names an option other than close,
 * keep-alive and upgrade (whose fields are hop-by-hop anyway): only then
 * need each field be looked up with ig_http_connection_names. */
bool ig_http_connection_nominates(const struct ig_http_header *h, size_t n);

/* A response that has no body whatever its framing says (RFC 9110
 * §6.4.1): to a HEAD, 1xx, 204 and 304. */
bool ig_http_bodyless(int status, struct ig_str method);

/* A WebSocket opening handshake (RFC 6455 §4.1): an HTTP/1.1 GET with
 * "Connection: upgrade" and "Upgrade: websocket". */
bool ig_http_is_websocket_upgrade(const struct ig_http_request *r);

enum ig_http_body_kind {
	IG_BODY_NONE,	     /* no body */
	IG_BODY_LENGTH,	     /* exactly `length` bytes */
	IG_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
	IG_BODY_UNTIL_CLOSE, /* responses only: read until the peer closes */
};

struct ig_http_framing {
	enum ig_http_body_kind kind;
	uint64_t length;
	bool keep_alive;      /* connection persists after this message */
	bool expect_continue; /* request had "Expect: 100-continue" */
};

/* Body framing of a request (RFC 9112 §6): Transfer-Encoding chunked wins;
 * a coding after "chunked" or "chunked" twice, a Transfer-Encoding that
 * names no transfer coding, Content-Length with a bad or conflicting
 * value, or both TE and CL are errors (-1, answer 400); a transfer coding
 * other than chunked (gzip, with or without a final chunked) is
 * IG_HTTP_NOT_IMPLEMENTED (answer 501). keep_alive follows the version
 * and the Connection header. */
int ig_http_request_framing(const struct ig_http_request *req, struct ig_http_framing *out);
/* Body framing of a response to a request with `method` (HEAD, 1xx, 204 and
 * 304 have no body). -1 on a malformed framing header, and on a
 * Transfer-Encoding other than chunked: the body could not be passed on
 * as it was meant. */
int ig_http_response_framing(const struct ig_http_response *res, struct ig_str method,
			     struct ig_http_framing *out);

/* Incremental chunked-body decoder. Zero-initialise before the first call. */
struct ig_chunked_decoder {
	uint64_t remaining; /* bytes left in the current chunk */
	int state;
	size_t line_len; /* bytes of the current size/trailer line, for the limit */
	/* Where the trailer section goes, as sent (its field lines and the
	 * blank line that ends it), for ig_http_parse_fields; NULL: skipped.
	 * Nothing is appended when there are no trailer fields, and a section
	 * past the buffer's ceiling makes the encoding invalid. */
	struct ig_buf *trailers;
	/* Ceilings on the trailer section, kept or not, as on a head (0:
	 * none): its bytes and its field lines. Past one, decoding fails
	 * with IG_HTTP_TOO_MANY_HEADERS (a server answers 431). */
	size_t max_trailer_bytes, max_trailer_lines;
	size_t trailer_bytes, trailer_lines;
};

/* Decodes buf[0..*len) in place: on return buf[0..*len) holds the body
 * bytes found. Returns IG_HTTP_INCOMPLETE when the body continues (feed the
 * next bytes in a later call), IG_HTTP_INVALID on a malformed encoding or a
 * size/trailer line over 4 KiB, IG_HTTP_TOO_MANY_HEADERS on a trailer section
 * over the decoder's ceilings, or >= 0 when the body ended: the number of
 * bytes after the end of the chunked encoding (they sit right after the
 * decoded data in buf, i.e. at buf + *len, and belong to the next message). */
ssize_t ig_chunked_decode(struct ig_chunked_decoder *d, char *buf, size_t *len);

/* Whether buf[0..len) may go on a chunked body from d's state: 0, or
 * IG_HTTP_INVALID where ig_chunked_decode would find it malformed. Nothing
 * is decoded, changed or kept (nor is the trailer section's ceiling
 * checked): a client looks at the body bytes that came with a head
 * before it passes the head on. */
int ig_chunked_check(const struct ig_chunked_decoder *d, const char *buf, size_t len);

/* Header fields as in a head (`name: value` lines, then a blank line),
 * such as a trailer section: the count, or IG_HTTP_INVALID /
 * IG_HTTP_INCOMPLETE / IG_HTTP_TOO_MANY_HEADERS. */
int ig_http_parse_fields(const char *buf, size_t len, struct ig_http_header *headers,
			 size_t max_headers);

/* The path a request is routed by and the pod is sent (RFC 3986 §6.2.2,
 * what Envoy's normalize_path does, as Envoy-based Gateway API gateways
 * configure it): percent-encoded unreserved bytes decoded ("%7E" is "~",
 * "%2e" a dot), a backslash read as "/" (as Envoy's canonicalizer, so
 * that "..\" is a segment too), then "." and ".." segments removed
 * (§5.2.4; ".." at the root stays at the root), so "/public/../admin" is
 * routed as "/admin". Other escapes ("%2F" among them) and empty segments
 * stay as they came; an escaped NUL ("%00") makes the path invalid, as
 * Envoy refuses it. `path` is origin-form, before any '?'. needs: whether
 * it would change or is invalid; normalize: writes the normal form to
 * out, which has room for path.len bytes (it never grows), and returns
 * its length, or -1 for an invalid path. */
bool ig_http_path_needs_normalizing(struct ig_str path);
ssize_t ig_http_path_normalize(struct ig_str path, char *out);

/* The reason phrase of a status code ("Not Found"), "Unknown" otherwise. */
const char *ig_http_status_text(int status);

#endif
