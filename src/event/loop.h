/* The event loop: epoll for file descriptors (level-triggered), a min-heap
 * of timers, and a thread-safe way to wake the loop and hand it work from
 * another thread. One loop per thread; nothing here is shared between
 * loops except ig_loop_post() and ig_loop_stop(). */
#ifndef IG_EVENT_LOOP_H
#define IG_EVENT_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct ig_loop;
struct ig_io;
struct ig_timer;

/* events: IG_EV_READ / IG_EV_WRITE / IG_EV_ERROR (hang-up or error) */
#define IG_EV_READ 0x1u
#define IG_EV_WRITE 0x4u
#define IG_EV_ERROR 0x8u

typedef void (*ig_io_cb)(struct ig_loop *loop, struct ig_io *io, unsigned events);
typedef void (*ig_timer_cb)(struct ig_loop *loop, struct ig_timer *t);
typedef void (*ig_post_fn)(struct ig_loop *loop, void *arg);

struct ig_io {
	int fd;
	unsigned events; /* what the loop watches for now */
	ig_io_cb cb;
	void *data;
};

struct ig_timer {
	uint64_t deadline_ns;
	size_t heap_index; /* 0: not armed; else position + 1 */
	ig_timer_cb cb;
	void *data;
};

/* A task runs once on the loop's thread after the current batch of
 * events (nginx's posted events): work that must not run inside the call
 * that asked for it, such as the next pipelined request after a response
 * ended inside a handler. Zero-initialise; queueing a queued task is a
 * no-op. */
struct ig_task;
typedef void (*ig_task_fn)(struct ig_loop *loop, struct ig_task *t);
struct ig_task {
	ig_task_fn fn;
	void *data;
	struct ig_task *prev, *next;
	uint64_t round; /* the loop's task round when queued */
	bool queued;
};

struct ig_post {
	ig_post_fn fn;
	void *arg;
	struct ig_post *next;
};

struct ig_loop {
	int epfd;
	int wakefd; /* eventfd */
	bool stopping;
	uint64_t now_ns;   /* monotonic time at the start of this iteration */
	bool in_iteration; /* dispatching: now_ns is this iteration's */
	struct ig_timer **heap;
	size_t heap_len, heap_cap;
	pthread_mutex_t post_lock;
	struct ig_post *posts;
	struct ig_io wake_io;
	/* The batch of events being dispatched: ig_io_stop() clears entries
	 * of an io stopped mid-batch, whose memory may be freed right after. */
	void *batch;
	int batch_len;
	struct ig_task *tasks, *tasks_tail; /* queued tasks, in order */
	uint64_t task_round;
	void *data; /* owner's pointer */
};

/* The iteration's time while the loop dispatches, else the clock's. */
static inline uint64_t ig_loop_now(const struct ig_loop *loop)
{
	return loop->in_iteration ? loop->now_ns : ig_now_ns();
}

int ig_loop_init(struct ig_loop *loop);
void ig_loop_free(struct ig_loop *loop);
/* Runs until ig_loop_stop(); returns 0, or -errno if epoll fails. */
int ig_loop_run(struct ig_loop *loop);
/* One iteration: waits for events (at most max_wait_ms; -1: until the
 * next timer), dispatches them, runs tasks and due timers. Returns the
 * number of events, or -errno. For tests and fuzzers that drive a loop
 * themselves. */
int ig_loop_run_once(struct ig_loop *loop, int max_wait_ms);
/* Thread-safe: ends ig_loop_run() after the current iteration. */
void ig_loop_stop(struct ig_loop *loop);
/* Thread-safe: runs fn(loop, arg) on the loop's thread soon. */
int ig_loop_post(struct ig_loop *loop, ig_post_fn fn, void *arg);

/* io: fd must be non-blocking. set() adds or modifies; events 0 keeps the fd
 * registered but quiet. del() must be called before close(fd). */
int ig_io_start(struct ig_loop *loop, struct ig_io *io, int fd, unsigned events, ig_io_cb cb,
		void *data);
int ig_io_set(struct ig_loop *loop, struct ig_io *io, unsigned events);
void ig_io_stop(struct ig_loop *loop, struct ig_io *io);

/* timers: (re)arms to fire once after delay_ms; stop() is safe if unarmed.
 * Armed while the loop dispatches, the delay counts from the iteration's
 * start (now_ns), as nginx's and libuv's timers do: a request arms several
 * and each would read the clock otherwise; a timer may fire early by what
 * is left of the iteration it was armed in. Armed outside, it counts from
 * the clock. */
void ig_timer_start(struct ig_loop *loop, struct ig_timer *t, uint64_t delay_ms, ig_timer_cb cb,
		    void *data);
void ig_timer_start_ns(struct ig_loop *loop, struct ig_timer *t, uint64_t delay_ns, ig_timer_cb cb,
		       void *data);
void ig_timer_stop(struct ig_loop *loop, struct ig_timer *t);
static inline bool ig_timer_armed(const struct ig_timer *t)
{
	return t->heap_index != 0;
}

void ig_task_queue(struct ig_loop *loop, struct ig_task *t, ig_task_fn fn, void *data);
void ig_task_cancel(struct ig_loop *loop, struct ig_task *t);

/* Small socket helpers shared by every server and client in the tree. */
struct ig_buf;
/* Sends b[*off..] on a non-blocking socket until done or it would block.
 * Returns 1 when everything went (b emptied, *off 0), 0 when bytes remain
 * (a large sent prefix is dropped from b), or -errno. */
int ig_send_buf(int fd, struct ig_buf *b, size_t *off);
int ig_set_nonblock(int fd);
/* Parses "host:port", "[v6]:port" or ":port"/"port" (host = default_host). */
int ig_parse_hostport(const char *s, const char *default_host, char *host, size_t hostlen,
		      int *port);
/* An accepted peer's address as "ip:port" (IPv6 without brackets), or
 * "?:0" for another family: for log lines and X-Forwarded-For. */
struct sockaddr_storage;
void ig_sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t len);
/* A non-blocking listening TCP socket on host:port (SO_REUSEADDR, and
 * SO_REUSEPORT when reuseport); host is an IP address or a name this host
 * resolves (its first address), as nginx's listen takes. Returns the fd or
 * -errno (-EINVAL for a name that does not resolve). */
int ig_listen_tcp(const char *host, int port, bool reuseport, int backlog);
/* The IP address a listener on `host` binds, as text, in out (64 bytes
 * are enough): host itself when it is one, else its first address.
 * Returns 0, or -1 when the name does not resolve. */
int ig_listen_address(const char *host, char *out, size_t len);

/* An accept loop on a listening socket (src/event/accept.c): each
 * readiness takes up to 64 connections, sets TCP_NODELAY on each and
 * hands it to cb with the peer's address. Out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM), it stops watching the listener for a
 * back-off doubling from 10 ms to 1 s, logs one line per 5 s at most, and
 * resumes by itself. The acceptor never closes fd. */
typedef void (*ig_accept_cb)(void *data, int fd, const struct sockaddr_storage *peer);
struct ig_acceptor {
	struct ig_loop *loop;
	struct ig_io io;
	struct ig_timer timer;
	int fd;
	bool active;
	const char *name; /* log prefix, kept by the caller */
	ig_accept_cb cb;
	void *data;
	uint64_t backoff_ms;
	uint64_t log_ns;
	unsigned long failures; /* since the last log line */
};
int ig_acceptor_start(struct ig_acceptor *a, struct ig_loop *loop, int fd, const char *name,
		      ig_accept_cb cb, void *data);
/* Stops watching (a no-op when not started); fd stays open. */
void ig_acceptor_stop(struct ig_acceptor *a);

#endif
