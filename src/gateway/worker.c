#include "gateway/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/smallblock.h"
#include "core/log.h"
#include "core/ret.h"
#include "gateway/proxy.h"
#include "gateway/request.h"
#include "gateway/snapshot.h"
#include "metrics/registry.h"

static void *worker_main(void *arg)
{
	struct ig_worker *w = arg;
	/* Metrics this thread updates go to a shard of its own. */
	ig_metrics_set_shard((unsigned)w->id + 1);
	const struct ig_gw_frontend *fe = w->gw->opt.frontend;
	if (fe && fe->start && fe->start(w, fe->arg) < 0) {
		ig_err("worker %d: its %s service did not start", w->id,
		       w->gw->opt.job ? w->gw->opt.job : "front end");
		atomic_fetch_add(&w->gw->workers_failed, 1);
	} else {
		atomic_fetch_add(&w->gw->workers_up, 1);
	}
	ig_loop_run(&w->loop);
	ig_arena_thread_cleanup();
	ig_smallblock_thread_cleanup();
	return NULL;
}

int ig_worker_init(struct ig_worker *w, struct ig_gateway_rt *gw, int id)
{
	w->id = id;
	w->gw = gw;
	int rc = ig_loop_init(&w->loop);
	if (rc < 0)
		return rc;
	w->loop.data = w;
	w->upstreams = ig_upstreams_new(&w->loop, &gw->opt.upstream);
	w->mcache = ig_gw_metrics_cache_new();
	w->activity = ig_activity_new(id);
	return w->upstreams && w->mcache && w->activity ? 0 : -ENOMEM;
}

int ig_worker_start(struct ig_worker *w)
{
	return -pthread_create(&w->thread, NULL, worker_main, w);
}

static struct ig_listen_slot *find_slot(struct ig_worker *w, int port)
{
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].port == port && w->slots[i].server)
			return &w->slots[i];
	return NULL;
}

/* Opens the snapshot's ports this worker does not listen on yet and drains
 * the ones it left. True when a port could not be opened for want of
 * resources (EMFILE between the control thread's test bind and this one,
 * say): worth another try, which sync_and_retry() schedules. */
static bool sync_listeners(struct ig_worker *w)
{
	bool short_of = false;
	struct ig_snapshot *s = w->snap;
	for (size_t i = 0; i < w->nslots; i++) {
		struct ig_listen_slot *slot = &w->slots[i];
		const struct ig_port_rt *pr =
		    slot->server && slot->port >= 0 ? ig_snapshot_port(s, slot->port) : NULL;
		/* A port that is gone, or that switched between HTTP and
		 * HTTPS, is drained; the latter reopens below. */
		if (slot->server && slot->port >= 0 && (!pr || pr->tls != slot->tls)) {
			ig_http_server_drain(slot->server);
			slot->port = -1; /* retired: freed when the worker ends */
		}
	}
	for (size_t i = 0; i < s->nports; i++) {
		int port = s->ports[i].port;
		if (find_slot(w, port))
			continue;
		if (w->nslots == IG_MAX_LISTEN_PORTS) {
			ig_err("too many listening ports");
			break;
		}
		int fd = ig_listen_tcp(w->gw->opt.bind, port, true, 1024);
		if (fd < 0) {
			ig_err("worker %d: listen %s:%d: %s", w->id, w->gw->opt.bind, port,
			       strerror(-fd));
			short_of |= ig_err_resource(fd);
			continue;
		}
		/* Slots never move (a fixed array), so a server's pointer to its
		 * slot stays valid. */
		struct ig_listen_slot *slot = &w->slots[w->nslots++];
		slot->port = port;
		slot->worker = w;
		slot->tls = s->ports[i].tls;
		slot->server = ig_http_server_new_tls(&w->loop, fd, &w->gw->opt.http, slot->tls,
						      ig_proxy_handle, slot);
		if (!slot->server) {
			ig_err("worker %d: listen %s:%d: out of memory", w->id, w->gw->opt.bind,
			       port);
			close(fd);
			w->nslots--;
			short_of = true;
		}
	}
	return short_of;
}

#define LISTEN_RETRY_FIRST_MS 1000u
#define LISTEN_RETRY_MAX_MS 30000u

static void on_listen_retry(struct ig_loop *loop, struct ig_timer *t);

/* sync_listeners(), and while it falls short for want of resources,
 * again after 1 s, doubling to 30 s: the configuration was taken, so no
 * reload will come to open those ports. */
static void sync_and_retry(struct ig_worker *w)
{
	if (!sync_listeners(w)) {
		if (w->listen_retry_ms)
			ig_info("worker %d: listeners open again", w->id);
		w->listen_retry_ms = 0;
		ig_timer_stop(&w->loop, &w->listen_retry);
		return;
	}
	w->listen_retry_ms =
	    ig_backoff_next(w->listen_retry_ms, LISTEN_RETRY_FIRST_MS, LISTEN_RETRY_MAX_MS);
	ig_warn("worker %d: trying its listeners again in %llu ms", w->id,
		(unsigned long long)w->listen_retry_ms);
	ig_timer_start(&w->loop, &w->listen_retry, w->listen_retry_ms, on_listen_retry, w);
}

static void on_listen_retry(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_worker *w = t->data;
	if (!w->draining && !w->gw->opt.frontend && w->snap)
		sync_and_retry(w);
}

struct ig_snapshot *ig_worker_snap_take(struct ig_worker *w)
{
	w->snap_users++;
	return w->snap;
}

void ig_worker_snap_release(struct ig_worker *w, struct ig_snapshot *s)
{
	if (s == w->snap) {
		w->snap_users--;
		return;
	}
	for (size_t i = 0; i < w->nretired; i++) {
		if (w->retired[i].s != s)
			continue;
		if (--w->retired[i].users == 0) {
			ig_snapshot_unref(s);
			w->retired[i] = w->retired[--w->nretired];
		}
		return;
	}
}

/* The replaced snapshot stays while requests of this worker use it. */
static void retire(struct ig_worker *w, struct ig_snapshot *old, size_t users)
{
	if (!old)
		return;
	if (users && w->nretired == w->cap_retired) {
		size_t cap = w->cap_retired ? w->cap_retired * 2 : 4;
		struct ig_retired_snap *r = realloc(w->retired, cap * sizeof *r);
		if (r) {
			w->retired = r;
			w->cap_retired = cap;
		}
	}
	if (users && w->nretired < w->cap_retired) {
		w->retired[w->nretired++] = (struct ig_retired_snap){old, users};
		return;
	}
	if (users) {
		/* No memory to track it: keep it for as long as the worker lives
		 * rather than free it under its requests. */
		ig_err("worker %d: out of memory: a replaced configuration is kept", w->id);
		return;
	}
	ig_snapshot_unref(old);
}

static void apply_snapshot(struct ig_loop *loop, void *arg)
{
	struct ig_worker *w = loop->data;
	struct ig_snapshot *old = w->snap;
	size_t users = w->snap_users;
	w->snap = arg; /* the reference posted to us */
	w->snap_users = 0;
	if (!w->draining && !w->gw->opt.frontend)
		sync_and_retry(w);
	retire(w, old, users);
}

void ig_worker_apply_snapshot(struct ig_worker *w, struct ig_snapshot *s)
{
	apply_snapshot(&w->loop, ig_snapshot_ref(s));
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
	const struct ig_gw_frontend *fe = w->gw->opt.frontend;
	return fe && fe->busy && fe->busy(w, fe->arg);
}

static void on_drain_recheck(struct ig_loop *loop, struct ig_timer *t);

static void check_drained(struct ig_worker *w)
{
	if (!w->draining || w->active != 0 || __atomic_load_n(&w->loop.stopping, __ATOMIC_ACQUIRE))
		return;
	if (connections_busy(w)) {
		if (!ig_timer_armed(&w->drain_recheck))
			ig_timer_start(&w->loop, &w->drain_recheck, 10, on_drain_recheck, w);
		return;
	}
	ig_timer_stop(&w->loop, &w->drain_recheck);
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
	ig_timer_stop(&w->loop, &w->listen_retry);
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].server)
			ig_http_server_drain(w->slots[i].server);
	if (w->upstreams)
		ig_upstreams_close_idle(w->upstreams);
	const struct ig_gw_frontend *fe = w->gw->opt.frontend;
	if (fe && fe->drain)
		fe->drain(w, fe->arg);
	check_drained(w);
}

static void do_going_away(struct ig_loop *loop, void *arg)
{
	struct ig_worker *w = loop->data;
	for (size_t i = 0; i < w->nslots; i++)
		if (w->slots[i].server && w->slots[i].port >= 0)
			ig_http_server_going_away(w->slots[i].server);
}

void ig_worker_going_away(struct ig_worker *w)
{
	ig_loop_post(&w->loop, do_going_away, NULL);
}

void ig_worker_drain(struct ig_worker *w)
{
	ig_loop_post(&w->loop, do_drain, NULL);
}

static void do_drain_expired(struct ig_loop *loop, void *arg)
{
	struct ig_worker *w = loop->data;
	w->stopping = true;
	/* Each request ends (and leaves the list) as it is shut. */
	struct ig_req *p;
	while ((p = w->requests)) {
		ig_req_shut(p, "drain timeout");
		if (w->requests == p)
			break; /* cannot happen: a shut request has finished */
	}
	check_drained(w);
}

void ig_worker_drain_expired(struct ig_worker *w)
{
	ig_loop_post(&w->loop, do_drain_expired, NULL);
}

void ig_worker_request_begin(struct ig_worker *w, struct ig_req *p)
{
	w->active++;
	p->active_next = w->requests;
	if (w->requests)
		w->requests->active_prev = &p->active_next;
	p->active_prev = &w->requests;
	w->requests = p;
}

void ig_worker_request_done(struct ig_worker *w, struct ig_req *p)
{
	if (p->active_prev) {
		*p->active_prev = p->active_next;
		if (p->active_next)
			p->active_next->active_prev = p->active_prev;
		p->active_prev = NULL;
	}
	w->active--;
	check_drained(w);
}

void ig_worker_free(struct ig_worker *w)
{
	w->draining = true; /* posts still queued must not open listeners */
	w->stopping = true; /* what the servers' end aborts is not the clients' doing */
	for (size_t i = 0; i < w->nslots; i++) {
		ig_http_server_free(w->slots[i].server);
		w->slots[i].server = NULL; /* posts run below must not see it */
	}
	const struct ig_gw_frontend *fe = w->gw ? w->gw->opt.frontend : NULL;
	if (fe && fe->stop)
		fe->stop(w, fe->arg);
	ig_req_mirrors_free(w);
	ig_extpick_worker_free(w);
	ig_upstreams_free(w->upstreams);
	w->upstreams = NULL;
	ig_gw_metrics_cache_free(w->mcache);
	w->mcache = NULL;
	ig_activity_free(w->activity);
	w->activity = NULL;
	ig_timer_stop(&w->loop, &w->queue_timer);
	ig_timer_stop(&w->loop, &w->drain_recheck);
	ig_timer_stop(&w->loop, &w->listen_retry);
	ig_flowq_free(w->queue);
	w->queue = NULL;
	/* Freeing the loop runs posts still queued (a snapshot, a drain);
	 * the current snapshot is released after them so none is dropped twice. */
	ig_loop_free(&w->loop);
	ig_snapshot_unref(w->snap);
	w->snap = NULL;
	for (size_t i = 0; i < w->nretired; i++)
		ig_snapshot_unref(w->retired[i].s);
	free(w->retired);
	w->retired = NULL;
	w->nretired = 0;
}
