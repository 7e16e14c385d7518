/* Inside the Kubernetes source: the kinds watched, one informer per kind
 * (list, then watch from the list's resourceVersion), and the source that
 * owns them. */
#ifndef IG_KUBE_INT_H
#define IG_KUBE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "event/loop.h"
#include "kube/api.h"
#include "kube/kube.h"

struct kube_kind {
	const char *group; /* "" for the core group */
	const char *version;
	const char *plural;
	const char *kind;
	bool cluster;		    /* cluster-scoped */
	const char *field_selector; /* NULL: none */
};

struct informer {
	struct ig_kube *k;
	const struct kube_kind *kind;
	json_t *objs;	/* "ns/name" -> the object as the API gave it */
	json_t *paging; /* a list being read page by page */
	char rv[64];	/* resourceVersion to watch from */
	bool synced;	/* listed once (or found not served) */
	bool absent;	/* not served (404) or forbidden (403): empty */
	bool relist;	/* the watch ended with an error (410 Gone or another): list again */
	bool unpaged;	/* a continue token expired: the next list is one whole page */
	bool logged_absent;
	bool logged_gone; /* a synced kind that answers 404/403: said once */
	struct ig_kube_req *req;
	struct ig_timer retry;
	unsigned backoff_ms;	    /* failed requests: 100 ms doubling to 30 s */
	unsigned relist_backoff_ms; /* lists after a watch error: 800 ms doubling to 30 s */
	uint64_t watch_started_ns;
	unsigned watch_events;
	unsigned long lists, watches; /* requests made, for the debug log */
};

extern const struct kube_kind ig_kube_kinds[];
extern const size_t ig_kube_nkinds;

/* Leader election's timings with the defaults in place of zeros. */
void ig_kube_lease_defaults(struct ig_kube_options *o);

struct ig_kube {
	struct ig_loop *loop;
	struct ig_kube_options opt;
	char *controller;
	struct ig_kube_api *api;
	struct informer *inf; /* one per ig_kube_kinds entry */
	ig_kube_change_fn on_change;
	void *arg;
	struct ig_timer debounce;
	uint64_t pending_since_ns;
	bool was_synced;
	char *last_error; /* the last connection/credentials error logged */
	/* Status write-back. */
	json_t *wants;	    /* key -> (struct status_want *) as an integer */
	json_t *wants_next; /* being filled between begin and commit */
	struct ig_timer status_retry;
	struct ig_timer status_kick;	/* syncs the wants a status event made dirty */
	bool leader;			/* may write status (always true without --leader-elect) */
	int status_fail_logged;		/* HTTP status of the last write failure logged; 0 none */
	uint64_t status_fail_logged_ns; /* ... and when */
	unsigned long status_writes;
	/* Objects the last load left out for their errors: "Kind|group|ns|name"
	 * -> the first error, reported in their status. */
	json_t *left_out;
	/* Leader election (lease.c), with --leader-elect. */
	char *identity, *lease_name, *lease_ns;
	struct ig_timer lease_timer;
	struct ig_kube_req *lease_req;
	json_t *lease_seen;	/* the Lease record last seen ... */
	uint64_t lease_seen_ms; /* ... and since when, by our clock */
	uint64_t renewed_ms;	/* our last successful write */
	json_t *lease_held;	/* the Lease as we last wrote it */
	bool releasing;		/* giving it up on the way out */
	unsigned release_tries; /* writes of the release so far */
};

/* A GatewayClass's spec.parametersRef, or NULL: infergate has no kind of
 * parameters, so a class that names some is not accepted (status.c) and
 * its Gateways are not ours (render.c). */
static inline json_t *ig_kube_class_params(json_t *gc)
{
	return json_object_get(json_object_get(gc, "spec"), "parametersRef");
}

int ig_kube_lease_start(struct ig_kube *k);
void ig_kube_lease_stop(struct ig_kube *k);

/* Status write-back (status.c): what the gateway last said each object's
 * status should be, by "kind|group|ns|name". */
struct status_want {
	const struct kube_kind *kind;
	char *ns, *name;
	int mode; /* enum ig_kube_status_mode */
	json_t *status;
	bool in_flight; /* a write is on its way */
	bool again;	/* sync once more when it is back */
	bool dirty;	/* the object's status changed: compare again */
	/* A write answered 409 at this resourceVersion: the cached object is
	 * older than the server's, so nothing is written until the watch
	 * brings a newer one. */
	char conflict_rv[64];
	/* The status last written and what the server stored of it (a server
	 * may prune a field its CRD version lacks, as GIE v1.0's does
	 * InferencePool's controllerName): when the wish and the object are
	 * still those, nothing is written again. */
	json_t *sent, *stored;
	/* Pacing, per object as client-go's per-item rate limiter: after a
	 * failed write the object waits fail_ms (2 s doubling to 5 min, or
	 * the server's Retry-After); a status another writer keeps changing
	 * is put back at once the first time, then after put_back_ms (1 s
	 * doubling to 5 min) while the changes keep coming. Nothing is
	 * written before not_before_ns. */
	unsigned fail_ms, put_back_ms;
	uint64_t not_before_ns, last_put_back_ns;
	bool logged_fail, logged_fight;
};

void ig_informer_start(struct informer *inf);
/* Drops from an object what configures nothing and can be large
 * (managedFields, kubectl's last-applied copy, most of a ConfigMap's
 * data), as the informers keep it. */
void ig_kube_slim(const struct kube_kind *kd, json_t *obj);
bool ig_kube_gateway_served(struct ig_kube *k, const char *ns, const char *name);
/* Whether a parentRef (kind NULL: Gateway) names a Gateway of ours, or a
 * ListenerSet whose parent is one; ns is the parentRef's namespace after
 * defaults. */
bool ig_kube_parent_served(struct ig_kube *k, const char *group, const char *kind, const char *ns,
			   const char *name);
struct informer *ig_kube_informer(struct ig_kube *k, const struct kube_kind *kind);
/* Writes the statuses that differ from what the cache holds. */
void ig_kube_status_sync(struct ig_kube *k);
/* The status of one object changed (a watch event that touched nothing
 * else): written back if it is not what the gateway wants. */
void ig_kube_status_changed(struct ig_kube *k, const struct kube_kind *kind, json_t *obj);
void ig_kube_status_free(struct ig_kube *k);
void ig_informer_stop(struct informer *inf);
/* An object of the kind changed: schedule a reload. */
void ig_kube_changed(struct ig_kube *k);
/* A request failed for a reason that is the server's or the credentials'
 * (not the kind's): logged once until it changes or things work again. */
void ig_kube_report(struct ig_kube *k, const char *msg);
void ig_kube_report_ok(struct ig_kube *k);

#endif
