/* The accept loop every server in the tree uses: it takes what the
 * backlog holds, a bounded batch per readiness, and survives running out
 * of descriptors or kernel memory without spinning. */
#include "event/loop.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include "core/clock.h"
#include "core/log.h"

/* Connections taken per readiness before other events get a turn. */
#define ACCEPT_BATCH 64
#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 1000
#define LOG_INTERVAL_NS 5000000000u

static void on_readable(struct ig_loop *loop, struct ig_io *io, unsigned events);

static void on_resume(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_acceptor *a = t->data;
	if (a->active)
		ig_io_set(loop, &a->io, IG_EV_READ);
}

/* Out of file descriptors (or kernel memory): the pending connection
 * stays in the backlog and the listener stays readable, so with a
 * level-triggered loop accepting on would spin. Stop watching for a
 * back-off that doubles up to a second, and log at most one line per five
 * seconds with the number of failures since the last one. */
static void pause_accepting(struct ig_acceptor *a, int err)
{
	a->failures++;
	uint64_t now = ig_now_ns();
	if (!a->log_ns || now - a->log_ns >= LOG_INTERVAL_NS) {
		ig_warn(
		    "%s: accept: %s: pausing new connections (%lu failures since the last report)",
		    a->name, strerror(err), a->failures);
		a->log_ns = now;
		a->failures = 0;
	}
	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : BACKOFF_FIRST_MS;
	if (a->backoff_ms > BACKOFF_MAX_MS)
		a->backoff_ms = BACKOFF_MAX_MS;
	ig_io_set(a->loop, &a->io, 0);
	ig_timer_start(a->loop, &a->timer, a->backoff_ms, on_resume, a);
}

static void on_readable(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	(void)loop;
	(void)events;
	struct ig_acceptor *a = io->data;
	for (int i = 0; i < ACCEPT_BATCH && a->active; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(a->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == EINTR || err == ECONNABORTED)
				continue;
			if (err == EAGAIN || err == EWOULDBLOCK)
				return;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
				pause_accepting(a, err);
				return;
			}
			/* Anything else (EPERM from a firewall hook, EPROTO) is
			 * about that one connection: say so and go on next time. */
			ig_warn("%s: accept: %s", a->name, strerror(err));
			return;
		}
		a->backoff_ms = 0;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		a->cb(a->data, fd, &ss);
	}
}

int ig_acceptor_start(struct ig_acceptor *a, struct ig_loop *loop, int fd, const char *name,
		      ig_accept_cb cb, void *data)
{
	memset(a, 0, sizeof *a);
	a->loop = loop;
	a->fd = fd;
	a->name = name;
	a->cb = cb;
	a->data = data;
	if (ig_io_start(loop, &a->io, fd, IG_EV_READ, on_readable, a) < 0)
		return -1;
	a->active = true;
	return 0;
}

void ig_acceptor_stop(struct ig_acceptor *a)
{
	if (!a->active)
		return;
	a->active = false;
	ig_timer_stop(a->loop, &a->timer);
	ig_io_stop(a->loop, &a->io);
}
