/* Blocking HTTP/1.1 requests with poll() deadlines. The response is kept
 * whole in memory (bounded by IG_DEMO_MAX_RESPONSE) and parsed again
 * after every read: responses here are small and this keeps the parser
 * stateless. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "demo/fetch.h"
#include "http/parse.h"

#define MAX_HEADERS 64

static int decode_chunked(const char *body, size_t len, bool eof, struct ig_buf *out)
{
	struct ig_chunked_decoder d = {0};
	size_t n = len;
	ssize_t rc;

	if (ig_buf_append(out, body, len))
		return -1;
	rc = ig_chunked_decode(&d, out->ptr, &n);
	out->len = n;
	if (rc == IG_HTTP_INVALID)
		return -1;
	if (rc == IG_HTTP_INCOMPLETE)
		return eof ? -1 : 0;
	return 1;
}

static int parse_body(const char *buf, size_t len, bool eof, const struct ig_http_framing *fr,
		      struct ig_buf *body)
{
	switch (fr->kind) {
	case IG_BODY_NONE:
		return 1;
	case IG_BODY_LENGTH:
		if (len < fr->length)
			return eof ? -1 : 0;
		return ig_buf_append(body, buf, (size_t)fr->length) ? -1 : 1;
	case IG_BODY_CHUNKED:
		return decode_chunked(buf, len, eof, body);
	case IG_BODY_UNTIL_CLOSE:
		if (!eof)
			return 0;
		return ig_buf_append(body, buf, len) ? -1 : 1;
	}
	return -1;
}

int ig_demo_response_parse(const char *buf, size_t len, bool eof, const char *method,
			   struct ig_demo_response *res)
{
	struct ig_http_header headers[MAX_HEADERS];
	struct ig_http_response r;
	struct ig_http_framing fr;
	int head;

	for (;;) {
		head = ig_http_parse_response(buf, len, &r, headers, MAX_HEADERS);
		if (head == IG_HTTP_INCOMPLETE)
			return eof ? -1 : 0;
		if (head < 0)
			return -1;
		/* 101 would switch protocols, which we never ask for; other
		 * 1xx heads announce the real response. */
		if (r.status >= 200 || r.status == 101)
			break;
		buf += head;
		len -= (size_t)head;
	}
	if (ig_http_response_framing(&r, ig_str_from(method), &fr))
		return -1;
	res->status = r.status;
	res->minor_version = r.minor_version;
	snprintf(res->reason, sizeof(res->reason), "%.*s", IG_STR_FMT(r.reason));
	ig_buf_reset(&res->body);
	return parse_body(buf + head, len - (size_t)head, eof, &fr, &res->body);
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = ig_now_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Waits for `events` on fd until the deadline: 0 ready, -1 timed out or
 * interrupted (a signal asking us to stop must not be swallowed). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int ms = remaining_ms(deadline);

	if (ms == 0)
		return -1;
	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

static int connect_to(const char *ip, int port, uint64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "not an IPv4 address: %s", ip);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
		return fd;
	snprintf(err, errlen, "connect to %s:%d: %s", ip, port,
		 soerr			? strerror(soerr)
		 : errno == EINPROGRESS ? "timed out"
					: strerror(errno));
	close(fd);
	return -1;
}

/* A connection: plain, or TLS over the same non-blocking socket. */
struct conn {
	int fd;
	SSL *ssl;
};

/* For TLS, which readiness a call that could not go on waits for. */
static short tls_wait(struct conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	default:
		return 0;
	}
}

static int send_all(struct conn *c, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n;
		short ev = POLLOUT;
		if (c->ssl) {
			size_t w = 0;
			int r = SSL_write_ex(c->ssl, p, len, &w);
			n = r == 1 ? (ssize_t)w : -1;
			if (n < 0 && !(ev = tls_wait(c, r)))
				return -1;
			if (n < 0)
				errno = EAGAIN;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			if (wait_fd(c->fd, ev, deadline))
				return -1;
		} else if (n < 0 && errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

/* recv() for either kind: bytes, 0 at the end, -1 with errno (EAGAIN
 * with *ev the readiness to wait for). A TLS peer that closes without
 * close_notify ends the stream as a plain close would; the HTTP framing
 * then decides whether the response was whole. */
static ssize_t conn_recv(struct conn *c, char *buf, size_t len, short *ev)
{
	*ev = POLLIN;
	if (!c->ssl)
		return recv(c->fd, buf, len, 0);
	size_t got = 0;
	int r = SSL_read_ex(c->ssl, buf, len, &got);
	if (r == 1)
		return (ssize_t)got;
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SSL &&
	     ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		ERR_clear_error();
		return 0;
	}
	if ((*ev = tls_wait(c, r))) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	errno = EPROTO;
	return -1;
}

static int read_response(struct conn *c, const char *method, uint64_t deadline,
			 struct ig_demo_response *res, char *err, size_t errlen)
{
	struct ig_buf in;
	int rc = 0;

	ig_buf_init(&in, IG_DEMO_MAX_RESPONSE);
	while (rc == 0) {
		ssize_t n;
		short ev;
		if (ig_buf_reserve(&in, 16384)) {
			snprintf(err, errlen, "response larger than %u bytes",
				 IG_DEMO_MAX_RESPONSE);
			rc = -1;
			break;
		}
		n = conn_recv(c, in.ptr + in.len, in.cap - in.len, &ev);
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(c->fd, ev, deadline)) {
				snprintf(err, errlen, "no complete response in time");
				rc = -1;
			}
			continue;
		}
		if (n < 0 && errno != EINTR) {
			snprintf(err, errlen, "recv: %s", strerror(errno));
			rc = -1;
			break;
		}
		in.len += n > 0 ? (size_t)n : 0;
		rc = ig_demo_response_parse(in.ptr, in.len, n == 0, method, res);
		if (rc < 0)
			snprintf(err, errlen, "malformed or truncated response");
	}
	ig_buf_free(&in);
	return rc < 0 ? -1 : 0;
}

/* A client context that trusts only the PEM certificates given. */
static SSL_CTX *client_ctx(const struct ig_demo_tls *tls, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *bio = BIO_new_mem_buf(tls->ca_pem, (int)tls->ca_len);
	X509_STORE *store = ctx ? SSL_CTX_get_cert_store(ctx) : NULL;
	X509 *x;
	int added = 0;

	while (store && bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		added += X509_STORE_add_cert(store, x) == 1;
		X509_free(x);
	}
	BIO_free(bio);
	ERR_clear_error(); /* the end of the PEM list reads as an error */
	if (!ctx || !added || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
		snprintf(err, errlen, "TLS client setup failed (no usable CA certificate?)");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* The handshake, verifying the server's certificate for server_name (a
 * host name, or an IP literal checked against the IP entries). */
static int tls_connect(struct conn *c, SSL_CTX *ctx, const char *name, uint64_t deadline, char *err,
		       size_t errlen)
{
	unsigned char bin[16];
	bool ip = inet_pton(AF_INET, name, bin) == 1 || inet_pton(AF_INET6, name, bin) == 1;

	c->ssl = SSL_new(ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) ||
	    (!ip && (!SSL_set_tlsext_host_name(c->ssl, name) || !SSL_set1_host(c->ssl, name))) ||
	    (ip && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name))) {
		snprintf(err, errlen, "TLS setup for %s failed", name);
		ERR_clear_error();
		return -1;
	}
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			return 0;
		short ev = tls_wait(c, r);
		if (!ev || wait_fd(c->fd, ev, deadline)) {
			long v = SSL_get_verify_result(c->ssl);
			unsigned long e = ERR_peek_last_error();
			char why[160] = "timed out";
			if (v != X509_V_OK)
				snprintf(why, sizeof why, "certificate: %s",
					 X509_verify_cert_error_string(v));
			else if (e)
				ERR_error_string_n(e, why, sizeof why);
			else if (!ev)
				snprintf(why, sizeof why, "connection closed");
			snprintf(err, errlen, "TLS handshake with %s: %s", name, why);
			ERR_clear_error();
			return -1;
		}
	}
}

int ig_demo_https(const char *ip, int port, const struct ig_demo_tls *tls, const char *req,
		  size_t reqlen, const char *method, int timeout_ms, struct ig_demo_response *res,
		  char *err, size_t errlen)
{
	uint64_t deadline = ig_now_ms() + (uint64_t)timeout_ms;
	struct conn c = {.fd = -1};
	SSL_CTX *ctx = NULL;
	int rc = -1;

	if (tls && !(ctx = client_ctx(tls, err, errlen)))
		return -1;
	c.fd = connect_to(ip, port, deadline, err, errlen);
	if (c.fd < 0)
		goto out;
	if (ctx &&
	    tls_connect(&c, ctx, tls->server_name ? tls->server_name : ip, deadline, err, errlen))
		goto out;
	if (send_all(&c, req, reqlen, deadline)) {
		snprintf(err, errlen, "sending the request to %s:%d failed", ip, port);
		goto out;
	}
	rc = read_response(&c, method, deadline, res, err, errlen);
out:
	if (c.ssl)
		SSL_free(c.ssl);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

int ig_demo_http(const char *ip, int port, const char *req, size_t reqlen, const char *method,
		 int timeout_ms, struct ig_demo_response *res, char *err, size_t errlen)
{
	return ig_demo_https(ip, port, NULL, req, reqlen, method, timeout_ms, res, err, errlen);
}

int ig_demo_http_get(const char *ip, int port, const char *path, int timeout_ms,
		     struct ig_demo_response *res, char *err, size_t errlen)
{
	char req[512];
	int n =
	    snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path, ip, port);

	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	return ig_demo_http(ip, port, req, (size_t)n, "GET", timeout_ms, res, err, errlen);
}

bool ig_demo_tcp_probe(const char *ip, int port, int timeout_ms)
{
	char err[128];
	int fd = connect_to(ip, port, ig_now_ms() + (uint64_t)timeout_ms, err, sizeof(err));

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

void ig_demo_response_free(struct ig_demo_response *res)
{
	ig_buf_free(&res->body);
}
