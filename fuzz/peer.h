/* Helpers for libFuzzer targets that play the network peer of the code
 * under test over a loopback socket: the harness writes the input into its
 * end in pieces and turns the code's event loop one pass at a time in
 * between, reading whatever comes back, so runs are deterministic and never
 * sleep. What the targets differ in is said once in a struct peer_loop. */
#ifndef IG_FUZZ_PEER_H
#define IG_FUZZ_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event/loop.h"

/* The loop of the code under test, as the peer turns it. progress is the
 * harness's count of everything that happened (its callbacks bump it, and
 * so does every read here): a pass that leaves it alone moved nothing.
 * max_iterations bounds the passes of one settle or send, so that a stuck
 * input ends. */
struct peer_loop {
	struct ig_loop *loop;
	unsigned long *progress;
	int max_iterations;
};

/* Reads and drops what the code under test sent on fd, counting each read
 * as progress. fd -1 reads nothing. */
static inline void peer_drain(const struct peer_loop *pl, int fd)
{
	static char sink[65536];
	if (fd >= 0)
		while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
			(*pl->progress)++;
}

/* Runs the loop, reading fd after each pass (fd -1: only the loop), until
 * three passes in a row moved nothing or max_iterations passes ran. */
static inline void peer_settle(const struct peer_loop *pl, int fd)
{
	int quiet = 0;
	for (int i = 0; i < pl->max_iterations && quiet < 3; i++) {
		unsigned long before = *pl->progress;
		ig_loop_run_once(pl->loop, 0);
		peer_drain(pl, fd);
		quiet = *pl->progress == before ? quiet + 1 : 0;
	}
}

/* Writes len bytes on fd without blocking. While the socket is full the
 * loop takes a pass (and fd is read after it when read is set: a peer that
 * never reads is a stalled reader), at most max_iterations times; what
 * still does not fit then is dropped, and so is the rest once the other
 * end is gone. */
static inline void peer_send(const struct peer_loop *pl, int fd, const uint8_t *p, size_t len,
			     bool read)
{
	for (int tries = 0; len && tries < pl->max_iterations; tries++) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return;
		ig_loop_run_once(pl->loop, 0);
		if (read)
			peer_drain(pl, fd);
	}
}

/* Closes fd with a reset instead of a FIN (SO_LINGER 0): the code under
 * test sees ECONNRESET, and no TIME_WAIT piles up over millions of
 * connections. */
static inline void peer_close_rst(int fd)
{
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

/* A non-blocking TCP listener on 127.0.0.1 at a port the kernel picks,
 * for a harness whose code under test connects to it; *port is set. Made
 * once per process (targets keep it across inputs). */
static inline int peer_listen_tcp(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sin;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
		abort();
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Turns the loop (1 ms passes) until the code under test's connection
 * arrives on listen_fd, and returns the peer's end, non-blocking; aborts
 * when it never does. */
static inline int peer_accept(const struct peer_loop *pl, int listen_fd)
{
	int fd = -1;
	for (int i = 0; i < pl->max_iterations && fd < 0; i++) {
		ig_loop_run_once(pl->loop, 1);
		fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	if (fd < 0)
		abort();
	return fd;
}

#endif
