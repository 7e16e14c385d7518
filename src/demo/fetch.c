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

static int send_all(int fd, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLOUT, deadline))
				return -1;
		} else if (n < 0 && errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

static int read_response(int fd, const char *method, uint64_t deadline,
			 struct ig_demo_response *res, char *err, size_t errlen)
{
	struct ig_buf in;
	int rc = 0;

	ig_buf_init(&in, IG_DEMO_MAX_RESPONSE);
	while (rc == 0) {
		ssize_t n;
		if (ig_buf_reserve(&in, 16384)) {
			snprintf(err, errlen, "response larger than %u bytes",
				 IG_DEMO_MAX_RESPONSE);
			rc = -1;
			break;
		}
		n = recv(fd, in.ptr + in.len, in.cap - in.len, 0);
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLIN, deadline)) {
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

int ig_demo_http(const char *ip, int port, const char *req, size_t reqlen, const char *method,
		 int timeout_ms, struct ig_demo_response *res, char *err, size_t errlen)
{
	uint64_t deadline = ig_now_ms() + (uint64_t)timeout_ms;
	int fd = connect_to(ip, port, deadline, err, errlen);
	int rc;

	if (fd < 0)
		return -1;
	if (send_all(fd, req, reqlen, deadline)) {
		snprintf(err, errlen, "sending the request to %s:%d failed", ip, port);
		close(fd);
		return -1;
	}
	rc = read_response(fd, method, deadline, res, err, errlen);
	close(fd);
	return rc;
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
