/* `infergate gateway --kube`: the configuration read from the Kubernetes
 * API instead of files. Every kind the gateway routes by is listed and
 * watched (informers on the control loop); when something changes, the
 * current objects are handed, each as a JSON document named after the
 * object ("kube:Gateway/default/gw"), to the same loader the files go
 * through, so validation, messages and the routing built from them are
 * the same. */
#ifndef IG_KUBE_KUBE_H
#define IG_KUBE_KUBE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct ig_loop;
struct ig_kube;

#define IG_KUBE_DEFAULT_CONTROLLER "infergate.dev/gateway-controller"

struct ig_kube_options {
	const char *kubeconfig;	     /* NULL: $KUBECONFIG, in-cluster, ~/.kube/config */
	const char *ns;		     /* NULL: every namespace */
	const char *controller_name; /* NULL: IG_KUBE_DEFAULT_CONTROLLER */
	bool leader_elect;
	/* Leader election's timings, as client-go's leaderelection names
	 * them; 0: 10 s, 7 s and 2 s. The Lease lasts lease_ms (whole seconds
	 * in the record), its holder renews every retry_ms and steps down when
	 * it could not renew for renew_deadline_ms; a candidate retries every
	 * retry_ms. ig_kube_lease_timings_error() says what is wrong with a
	 * set. */
	unsigned long lease_ms, renew_deadline_ms, retry_ms;
	/* The Lease's name (made a DNS subdomain); NULL: from the controller
	 * name ("infergate-" + controller_name). */
	const char *lease_name;
	/* `infergate epp --kube`: read only what a picker needs (its pool's
	 * kinds: InferencePools, InferenceModels, InferenceObjectives,
	 * InferenceModelRewrites, Pods), all in `ns`, so a namespaced Role
	 * with get/list/watch on those is enough; write no status. */
	bool picker_only;
	/* A manifest read with the API's objects, as if one of them (epp
	 * --endpoint-selector: the pool the flags describe); NULL: none. */
	const char *extra_text;
	/* Debounce: a burst of changes is read as one configuration, at most
	 * this long after its first change (default 1000 ms). */
	unsigned long max_delay_ms;
};

/* NULL when the leader election timings of o can work together (as
 * client-go requires: the lease outlasts the renew deadline, which
 * outlasts the retry period with its jitter), else what is wrong. */
const char *ig_kube_lease_timings_error(const struct ig_kube_options *o);

/* Called on the loop when the objects changed (after the debounce) and
 * every kind has been read at least once: time to ig_kube_load(). */
typedef void (*ig_kube_change_fn)(void *arg);

/* Finds the credentials (a missing or unreadable kubeconfig is an error:
 * NULL, with the reason logged) and starts listing and watching. */
struct ig_kube *ig_kube_start(struct ig_loop *loop, const struct ig_kube_options *o,
			      ig_kube_change_fn on_change, void *arg);
void ig_kube_free(struct ig_kube *k);

/* Whether every kind has been read (listed, or found not served). */
bool ig_kube_synced(const struct ig_kube *k);

/* Whether this replica holds the Lease (always true without leader_elect).
 * On the loop's thread. */
bool ig_kube_leader(const struct ig_kube *k);

/* The current objects as a configuration. Objects with errors are left out
 * (their errors are in diags) and the rest loads, as a cluster would serve
 * the valid objects; -1 only when no configuration could be made. */
int ig_kube_load(struct ig_kube *k, struct ig_config **out, struct ig_diags *diags);

/* ---- status written back ----
 *
 * After each configuration it serves, the gateway says what status every
 * object it is responsible for should have (begin, set..., commit). The
 * writer compares that with the object as the API last gave it, keeps
 * each condition's lastTransitionTime when its status did not change,
 * and PUTs the status subresource only when something differs, with the
 * object's resourceVersion (a 409 Conflict is retried against the newer
 * object). With --leader-elect only the holder of the Lease writes. */
#include <jansson.h>

enum ig_kube_status_mode {
	/* The whole status is ours (GatewayClass, Gateway). */
	IG_KUBE_STATUS_WHOLE,
	/* status.<field> is a list shared with other controllers: our entries
	 * replace those that are ours (an HTTPRoute's parents with our
	 * controllerName, an InferencePool's parents naming a Gateway we
	 * serve); the others stay. `status` is {"<field>": [...]}. */
	IG_KUBE_STATUS_PARENTS,
};

/* The gateway is draining: give the Lease up (when held) and write no
 * more status. */
void ig_kube_release(struct ig_kube *k);
/* Whether that release is still on its way (NULL k: false). */
bool ig_kube_releasing(const struct ig_kube *k);

void ig_kube_status_begin(struct ig_kube *k);
/* kind and group name the object's API kind ("Gateway",
 * "gateway.networking.k8s.io"); ns NULL for cluster-scoped objects.
 * Takes the reference to status. */
void ig_kube_status_set(struct ig_kube *k, const char *kind, const char *group, const char *ns,
			const char *name, enum ig_kube_status_mode mode, json_t *status);
void ig_kube_status_commit(struct ig_kube *k);
const char *ig_kube_controller(const struct ig_kube *k);
/* The object's metadata.generation as the API last gave it (0: unknown). */
long long ig_kube_generation(struct ig_kube *k, const char *kind, const char *group, const char *ns,
			     const char *name);

#endif
