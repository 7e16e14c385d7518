/* Helpers for unit tests that drive the event loop on one thread against
 * plain loopback sockets the test controls: a "peer" is such a socket with
 * the bytes received on it so far. pump() runs one loop iteration and then
 * reads whatever the peers have, so the code under test and the test's own
 * end of each connection take turns without threads. */
#ifndef IG_TEST_LOOPBACK_H
#define IG_TEST_LOOPBACK_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "event/loop.h"

#define LB_UNUSED __attribute__((unused))

struct peer {
	int fd;
	char *data; /* NUL-terminated copy of everything received */
	size_t len, cap;
	bool eof; /* orderly close seen */
	int err;  /* recv error (ECONNRESET...) */
};

static LB_UNUSED void peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof *p);
	p->fd = fd;
	p->cap = 256;
	p->data = calloc(1, p->cap);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static LB_UNUSED void peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->data);
	p->data = NULL;
	p->len = p->cap = 0;
}

/* Forgets what was received (the next expectation starts from here). */
static LB_UNUSED void peer_clear(struct peer *p)
{
	p->len = 0;
	p->data[0] = '\0';
}

/* Reads what is there, at most `max` bytes (0: no limit). */
static LB_UNUSED void peer_read_max(struct peer *p, size_t max)
{
	size_t got = 0;
	while (p->fd >= 0 && !p->eof && !p->err && (!max || got < max)) {
		size_t want = max ? max - got : 65536;
		if (want > 65536)
			want = 65536;
		if (p->cap - p->len < want + 1) {
			while (p->cap - p->len < want + 1)
				p->cap *= 2;
			p->data = realloc(p->data, p->cap);
		}
		ssize_t n = recv(p->fd, p->data + p->len, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				p->err = errno;
			break;
		}
		if (n == 0) {
			p->eof = true;
			break;
		}
		p->len += (size_t)n;
		got += (size_t)n;
	}
	p->data[p->len] = '\0';
}

static LB_UNUSED void peer_read(struct peer *p)
{
	peer_read_max(p, 0);
}

static LB_UNUSED bool peer_closed(const struct peer *p)
{
	return p->eof || p->err;
}

/* Writes all of data (the socket is non-blocking: a full buffer is waited
 * out by running the loop, which is what drains it). */
static LB_UNUSED void peer_write_loop(struct ig_loop *loop, struct peer *p, const void *data,
				      size_t len)
{
	const char *s = data;
	while (len) {
		ssize_t n = send(p->fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			ig_loop_run_once(loop, 5);
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "peer_write: %s\n", strerror(errno));
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

static LB_UNUSED uint64_t ms_since(uint64_t t0)
{
	return (ig_now_ns() - t0) / 1000000u;
}

/* A connected TCP socket to 127.0.0.1:port, made non-blocking. */
static LB_UNUSED int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* A listening socket on 127.0.0.1 with an ephemeral port. */
static LB_UNUSED int tcp_listen(int backlog, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sin;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static LB_UNUSED struct sockaddr_in loopback_addr(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* Makes the next close() send a reset instead of a FIN. */
static LB_UNUSED void set_linger0(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

#endif
