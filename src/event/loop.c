#include "event/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

static void run_posts(struct ig_loop *loop)
{
	pthread_mutex_lock(&loop->post_lock);
	struct ig_post *p = loop->posts;
	loop->posts = NULL;
	pthread_mutex_unlock(&loop->post_lock);
	/* The list was pushed head-first; reverse it to keep posting order. */
	struct ig_post *rev = NULL;
	while (p) {
		struct ig_post *next = p->next;
		p->next = rev;
		rev = p;
		p = next;
	}
	while (rev) {
		struct ig_post *next = rev->next;
		rev->fn(loop, rev->arg);
		free(rev);
		rev = next;
	}
}

static void on_wake(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	uint64_t v;
	while (read(io->fd, &v, sizeof v) > 0)
		;
	run_posts(loop);
}

int ig_loop_init(struct ig_loop *loop)
{
	memset(loop, 0, sizeof *loop);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return -errno;
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wakefd < 0) {
		int e = -errno;
		close(loop->epfd);
		loop->epfd = -1; /* nothing for ig_loop_free to close */
		return e;
	}
	pthread_mutex_init(&loop->post_lock, NULL);
	loop->now_ns = ig_now_ns();
	return ig_io_start(loop, &loop->wake_io, loop->wakefd, IG_EV_READ, on_wake, NULL);
}

void ig_loop_free(struct ig_loop *loop)
{
	run_posts(loop);
	close(loop->wakefd);
	close(loop->epfd);
	free(loop->heap);
	pthread_mutex_destroy(&loop->post_lock);
	loop->heap = NULL;
}

void ig_loop_stop(struct ig_loop *loop)
{
	__atomic_store_n(&loop->stopping, true, __ATOMIC_RELEASE);
	uint64_t one = 1;
	ssize_t n = write(loop->wakefd, &one, sizeof one);
	(void)n;
}

int ig_loop_post(struct ig_loop *loop, ig_post_fn fn, void *arg)
{
	struct ig_post *p = malloc(sizeof *p);
	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->post_lock);
	p->next = loop->posts;
	loop->posts = p;
	pthread_mutex_unlock(&loop->post_lock);
	uint64_t one = 1;
	ssize_t n = write(loop->wakefd, &one, sizeof one);
	(void)n;
	return 0;
}

static uint32_t to_epoll(unsigned ev)
{
	uint32_t e = 0;
	if (ev & IG_EV_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (ev & IG_EV_WRITE)
		e |= EPOLLOUT;
	return e;
}

int ig_io_start(struct ig_loop *loop, struct ig_io *io, int fd, unsigned events, ig_io_cb cb,
		void *data)
{
	io->fd = fd;
	io->cb = cb;
	io->data = data;
	io->events = events;
	struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int ig_io_set(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	if (io->events == events)
		return 0;
	io->events = events;
	struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	return 0;
}

void ig_io_stop(struct ig_loop *loop, struct ig_io *io)
{
	if (io->fd >= 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->events = 0;
	struct epoll_event *evs = loop->batch;
	for (int i = 0; i < loop->batch_len; i++)
		if (evs[i].data.ptr == io)
			evs[i].data.ptr = NULL;
}

/* ---- timer heap (1-based positions stored in heap_index) ---- */

static void heap_swap(struct ig_loop *loop, size_t a, size_t b)
{
	struct ig_timer *t = loop->heap[a];
	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->heap_index = a + 1;
	loop->heap[b]->heap_index = b + 1;
}

static void heap_up(struct ig_loop *loop, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->deadline_ns <= loop->heap[i]->deadline_ns)
			break;
		heap_swap(loop, i, parent);
		i = parent;
	}
}

static void heap_down(struct ig_loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->heap_len && loop->heap[l]->deadline_ns < loop->heap[m]->deadline_ns)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->deadline_ns < loop->heap[m]->deadline_ns)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, i, m);
		i = m;
	}
}

void ig_timer_stop(struct ig_loop *loop, struct ig_timer *t)
{
	if (!t->heap_index)
		return;
	size_t i = t->heap_index - 1;
	size_t last = --loop->heap_len;
	if (i != last) {
		loop->heap[i] = loop->heap[last];
		loop->heap[i]->heap_index = i + 1;
		heap_down(loop, i);
		heap_up(loop, i);
	}
	t->heap_index = 0;
}

void ig_timer_start_ns(struct ig_loop *loop, struct ig_timer *t, uint64_t delay_ns, ig_timer_cb cb,
		       void *data)
{
	ig_timer_stop(loop, t);
	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct ig_timer **h = realloc(loop->heap, cap * sizeof *h);
		if (!h)
			abort(); /* a timer that cannot be armed would hang a request */
		loop->heap = h;
		loop->heap_cap = cap;
	}
	t->cb = cb;
	t->data = data;
	t->deadline_ns = ig_loop_now(loop) + delay_ns;
	loop->heap[loop->heap_len] = t;
	t->heap_index = ++loop->heap_len;
	heap_up(loop, loop->heap_len - 1);
}

void ig_timer_start(struct ig_loop *loop, struct ig_timer *t, uint64_t delay_ms, ig_timer_cb cb,
		    void *data)
{
	ig_timer_start_ns(loop, t, delay_ms * 1000000u, cb, data);
}

void ig_task_queue(struct ig_loop *loop, struct ig_task *t, ig_task_fn fn, void *data)
{
	t->fn = fn;
	t->data = data;
	if (t->queued)
		return;
	t->queued = true;
	t->round = loop->task_round;
	t->next = NULL;
	t->prev = loop->tasks_tail;
	if (loop->tasks_tail)
		loop->tasks_tail->next = t;
	else
		loop->tasks = t;
	loop->tasks_tail = t;
}

void ig_task_cancel(struct ig_loop *loop, struct ig_task *t)
{
	if (!t->queued)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		loop->tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		loop->tasks_tail = t->prev;
	t->queued = false;
	t->prev = t->next = NULL;
}

/* Runs the tasks queued so far; tasks they queue run in the next round,
 * so a task that keeps requeueing itself cannot starve the loop. */
static void run_tasks(struct ig_loop *loop)
{
	uint64_t round = ++loop->task_round;
	while (loop->tasks && loop->tasks->round < round) {
		struct ig_task *t = loop->tasks;
		ig_task_cancel(loop, t);
		t->fn(loop, t);
	}
}

static void run_timers(struct ig_loop *loop)
{
	uint64_t now = ig_now_ns();
	loop->now_ns = now;
	while (loop->heap_len && loop->heap[0]->deadline_ns <= now) {
		struct ig_timer *t = loop->heap[0];
		ig_timer_stop(loop, t);
		t->cb(loop, t);
	}
}

int ig_loop_run_once(struct ig_loop *loop, int max_wait_ms)
{
	struct epoll_event evs[128];
	int timeout = -1;
	if (loop->tasks) {
		timeout = 0;
	} else if (loop->heap_len) {
		uint64_t now = ig_now_ns(), d = loop->heap[0]->deadline_ns;
		/* Round up so a timer never fires early and spins. */
		timeout = d <= now ? 0 : (int)((d - now + 999999) / 1000000);
		if (timeout > 60000)
			timeout = 60000;
	}
	if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms))
		timeout = max_wait_ms;
	int n = epoll_wait(loop->epfd, evs, 128, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->now_ns = ig_now_ns();
	loop->in_iteration = true;
	loop->batch = evs;
	loop->batch_len = n;
	for (int i = 0; i < n; i++) {
		struct ig_io *io = evs[i].data.ptr;
		if (!io)
			continue; /* stopped by an earlier callback of this batch */
		unsigned ev = 0;
		if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
			ev |= IG_EV_READ;
		if (evs[i].events & EPOLLOUT)
			ev |= IG_EV_WRITE;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			ev |= IG_EV_ERROR | IG_EV_READ;
		io->cb(loop, io, ev);
	}
	loop->batch_len = 0;
	run_tasks(loop);
	run_timers(loop);
	run_tasks(loop);
	loop->in_iteration = false;
	return n;
}

int ig_loop_run(struct ig_loop *loop)
{
	while (!__atomic_load_n(&loop->stopping, __ATOMIC_ACQUIRE)) {
		int rc = ig_loop_run_once(loop, -1);
		if (rc < 0)
			return rc;
	}
	__atomic_store_n(&loop->stopping, false, __ATOMIC_RELEASE);
	return 0;
}

/* ---- sockets ---- */

int ig_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int ig_parse_hostport(const char *s, const char *default_host, char *host, size_t hostlen,
		      int *port)
{
	const char *colon;
	size_t hlen;
	const char *h = s;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			h = default_host;
			hlen = strlen(default_host);
			colon = s - 1;
		} else {
			hlen = (size_t)(colon - s);
		}
	}
	if (hlen == 0) {
		h = default_host;
		hlen = strlen(default_host);
	}
	if (hlen + 1 > hostlen)
		return -1;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

void ig_sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		port = ntohs(sin6->sin6_port);
	}
	snprintf(out, len, "%s:%d", host, port);
}

int ig_listen_tcp(const char *host, int port, bool reuseport, int backlog)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0)
		return -EINVAL;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = -errno;
		freeaddrinfo(ai);
		return e;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		int e = -errno;
		close(fd);
		freeaddrinfo(ai);
		return e;
	}
	freeaddrinfo(ai);
	return fd;
}

int ig_listen_address(const char *host, char *out, size_t len)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0)
		return -1;
	const void *a = ai->ai_family == AF_INET
			    ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
			    : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	int rc = inet_ntop(ai->ai_family, a, out, (socklen_t)len) ? 0 : -1;
	freeaddrinfo(ai);
	return rc;
}

int ig_send_buf(int fd, struct ig_buf *b, size_t *off)
{
	while (*off < b->len) {
		ssize_t n = send(fd, b->ptr + *off, b->len - *off, MSG_NOSIGNAL);
		if (n > 0) {
			*off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return n < 0 ? -errno : -EPIPE;
	}
	if (*off == b->len) {
		ig_buf_reset(b);
		*off = 0;
		return 1;
	}
	if (*off > 65536 && *off * 2 > b->len) {
		ig_buf_consume(b, *off);
		*off = 0;
	}
	return 0;
}
