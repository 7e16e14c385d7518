/* A small blocking HTTP/1.1 client for `demo` and `run`: health checks
 * and the seed request, one request per connection, with a deadline. The
 * gateway's event-loop client would be overkill for a process that does
 * one thing at a time. */
#ifndef IG_DEMO_FETCH_H
#define IG_DEMO_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Ceiling of a response (head and body) the demo accepts. */
#define IG_DEMO_MAX_RESPONSE (16u << 20)

struct ig_demo_response {
	int status;
	int minor_version;
	char reason[64];
	struct ig_buf body; /* decoded (chunked removed) */
};

/* Looks at the bytes received so far (`eof`: the peer has closed) for a
 * response to a request with `method`. Returns 1 when the response is
 * complete (res filled, body decoded), 0 when more bytes are needed, -1
 * when it is malformed or ended early. Interim 1xx heads are skipped. */
int ig_demo_response_parse(const char *buf, size_t len, bool eof, const char *method,
			   struct ig_demo_response *res);

/* Sends `req` (a complete request message) to ip:port and reads the
 * response within timeout_ms. 0, or -1 with a reason in err. */
int ig_demo_http(const char *ip, int port, const char *req, size_t reqlen, const char *method,
		 int timeout_ms, struct ig_demo_response *res, char *err, size_t errlen);
/* For HTTPS: the certificates trusted (PEM, one or more) and the name the
 * server's certificate must carry, also sent as SNI unless it is an IP
 * address (NULL: the ip). */
struct ig_demo_tls {
	const char *ca_pem;
	size_t ca_len;
	const char *server_name;
};
/* ig_demo_http over TLS 1.2+ (ALPN http/1.1) when tls is not NULL; the
 * handshake counts against the same timeout. */
int ig_demo_https(const char *ip, int port, const struct ig_demo_tls *tls, const char *req,
		  size_t reqlen, const char *method, int timeout_ms, struct ig_demo_response *res,
		  char *err, size_t errlen);
/* GET path with Connection: close. */
int ig_demo_http_get(const char *ip, int port, const char *path, int timeout_ms,
		     struct ig_demo_response *res, char *err, size_t errlen);
/* True when a TCP connection to ip:port is accepted within timeout_ms. */
bool ig_demo_tcp_probe(const char *ip, int port, int timeout_ms);
void ig_demo_response_free(struct ig_demo_response *res);

#endif
