/* Worker threads: each runs its own event loop with its own listening
 * sockets (SO_REUSEPORT spreads connections among them) and its own pool of
 * idle upstream connections, so the request path takes no lock. The
 * control thread talks to a worker only by posting to its loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/gw.h"
#include "http/client.h"
#include "metrics/registry.h"

#define IDLE_MAX 1024

/* The drain re-check of this worker thread. Thread-local, so each worker
 * has its own without a field in struct ig_worker. */
static _Thread_local struct ig_timer drain_recheck;

static void *worker_main(void *arg)
{
	struct ig_worker *w = arg;
	/* Our own metrics shard: request-path updates write no shared line. */
	ig_metrics_set_shard((unsigned)w->id + 1);
	ig_loop_run(&w->loop);
	/* The timer lives in this thread's storage: out of the heap before the
	 * thread ends (the loop may have been stopped by the grace period). */
	ig_timer_stop(&w->loop, &drain_recheck);
	return NULL;
}

int ig_worker_start(struct ig_worker *w)
{
	int rc = ig_loop_init(&w->loop);
	if (rc < 0)
		return rc;
	w->loop.data = w;
	return -pthread_create(&w->thread, NULL, worker_main, w);
}

static struct ig_listen_slot *find_slot(struct ig_worker *w, int port)
{
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].port == port && w->slots[i].server)
			return &w->slots[i];
	return NULL;
}

/* Opens listeners for the snapshot's ports and closes those it dropped. */
static void sync_listeners(struct ig_worker *w)
{
	struct ig_snapshot *s = w->snap;
	for (size_t i = 0; i < w->nslots; i++) {
		struct ig_listen_slot *slot = &w->slots[i];
		if (slot->server && !ig_snapshot_port(s, slot->port)) {
			ig_http_server_drain(slot->server);
			slot->port = -1; /* retired: freed when the worker ends */
		}
	}
	for (size_t i = 0; i < s->nports; i++) {
		int port = s->ports[i].port;
		if (find_slot(w, port))
			continue;
		int fd = ig_listen_tcp(w->gw->opt.bind, port, true, 1024);
		if (fd < 0) {
			ig_err("listen %s:%d: %s", w->gw->opt.bind, port, strerror(-fd));
			continue;
		}
		/* Slots are allocated once with room for every port we may
		 * serve, so pointers to them stay valid (see gateway_main). */
		if (w->nslots == 64) {
			ig_err("too many listening ports");
			close(fd);
			continue;
		}
		struct ig_listen_slot *slot = &w->slots[w->nslots++];
		slot->port = port;
		slot->worker = w;
		slot->server = ig_http_server_new(&w->loop, fd, &w->gw->opt.http, ig_proxy_handle, slot);
		if (!slot->server) {
			close(fd);
			w->nslots--;
		}
	}
}

static void apply_snapshot(struct ig_loop *loop, void *arg)
{
	struct ig_worker *w = loop->data;
	struct ig_snapshot *old = w->snap;
	w->snap = arg; /* the reference posted to us */
	if (!w->draining)
		sync_listeners(w);
	ig_snapshot_unref(old);
}

void ig_worker_set_snapshot(struct ig_worker *w, struct ig_snapshot *s)
{
	ig_loop_post(&w->loop, apply_snapshot, ig_snapshot_ref(s));
}

/* Whether some connection still has bytes to write (a finished request's
 * response may sit in the output buffer of a slow reader) or a request
 * being read. Stopping the loop then would cut those responses short. */
static bool connections_busy(struct ig_worker *w)
{
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].server && ig_http_server_busy(w->slots[i].server))
			return true;
	return false;
}

static void on_drain_recheck(struct ig_loop *loop, struct ig_timer *t);

static void check_drained(struct ig_worker *w)
{
	if (!w->draining || w->active != 0 || __atomic_load_n(&w->loop.stopping, __ATOMIC_ACQUIRE))
		return;
	if (connections_busy(w)) {
		if (!ig_timer_armed(&drain_recheck))
			ig_timer_start(&w->loop, &drain_recheck, 10, on_drain_recheck, w);
		return;
	}
	ig_timer_stop(&w->loop, &drain_recheck);
	ig_loop_stop(&w->loop);
	atomic_fetch_add(&w->gw->workers_done, 1);
}

static void on_drain_recheck(struct ig_loop *loop, struct ig_timer *t)
{
	check_drained(t->data);
}

static void do_drain(struct ig_loop *loop, void *arg)
{
	struct ig_worker *w = loop->data;
	w->draining = true;
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].server)
			ig_http_server_drain(w->slots[i].server);
	check_drained(w);
}

void ig_worker_drain(struct ig_worker *w)
{
	ig_loop_post(&w->loop, do_drain, NULL);
}

void ig_worker_request_done(struct ig_worker *w)
{
	w->active--;
	check_drained(w);
}

struct ig_http_client *ig_worker_upstream(struct ig_worker *w, struct ig_endpoint *ep, bool *reused)
{
	/* Most recently parked first: the warmest connection. */
	for (size_t i = w->nidle; i-- > 0;) {
		if (w->idle[i].ep != ep)
			continue;
		struct ig_http_client *c = w->idle[i].client;
		w->idle[i] = w->idle[--w->nidle];
		if (ig_http_client_alive(c)) {
			*reused = true;
			return c;
		}
		ig_http_client_close(c);
	}
	*reused = false;
	return ig_http_client_connect(&w->loop, (const struct sockaddr *)&ep->sa, ep->salen);
}

void ig_worker_release_upstream(struct ig_worker *w, struct ig_endpoint *ep,
				struct ig_http_client *c)
{
	if (!ig_http_client_reusable(c) || w->draining) {
		ig_http_client_close(c);
		return;
	}
	/* Dead parked connections are dropped when looked up; sweep them only
	 * when the pool is full, so a release costs nothing per request. */
	if (w->nidle == IDLE_MAX) {
		for (size_t i = 0; i < w->nidle;) {
			if (!ig_http_client_alive(w->idle[i].client)) {
				ig_http_client_close(w->idle[i].client);
				w->idle[i] = w->idle[--w->nidle];
			} else {
				i++;
			}
		}
	}
	if (w->nidle == IDLE_MAX) {
		ig_http_client_close(c);
		return;
	}
	if (w->nidle == w->idle_cap) {
		size_t cap = w->idle_cap ? w->idle_cap * 2 : 64;
		struct ig_idle_conn *n = realloc(w->idle, cap * sizeof *n);
		if (!n) {
			ig_http_client_close(c);
			return;
		}
		w->idle = n;
		w->idle_cap = cap;
	}
	ig_http_client_park(c);
	w->idle[w->nidle++] = (struct ig_idle_conn){ep, c};
}

void ig_worker_free(struct ig_worker *w)
{
	w->draining = true; /* posts still queued must not open listeners */
	for (size_t i = 0; i < w->nslots; i++) {
		ig_http_server_free(w->slots[i].server);
		w->slots[i].server = NULL; /* posts run below must not see it */
	}
	for (size_t i = 0; i < w->nidle; i++)
		ig_http_client_close(w->idle[i].client);
	free(w->idle);
	ig_timer_stop(&w->loop, &w->queue_timer);
	ig_flowq_free(w->queue);
	w->queue = NULL;
	/* Freeing the loop runs posts still queued (a snapshot, a drain);
	 * the current snapshot is released after them so none is dropped twice. */
	ig_loop_free(&w->loop);
	ig_snapshot_unref(w->snap);
}
