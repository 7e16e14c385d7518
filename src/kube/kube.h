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
	/* Debounce: a burst of changes is read as one configuration, at most
	 * this long after its first change (default 1000 ms). */
	unsigned long max_delay_ms;
};

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

/* The current objects as a configuration. Objects with errors are left out
 * (their errors are in diags) and the rest loads, as a cluster would serve
 * the valid objects; -1 only when no configuration could be made. */
int ig_kube_load(struct ig_kube *k, struct ig_config **out, struct ig_diags *diags);

#endif
