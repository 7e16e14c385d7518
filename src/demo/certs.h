/* Certificates for the demo's HTTPS listeners. A Gateway's HTTPS listener
 * names its certificate by a Secret (tls.certificateRefs); on a cluster
 * someone makes that Secret, on this machine `demo` and `run` do: for
 * every Secret an HTTPS listener names that the manifests do not hold,
 * one self-signed certificate (http/certgen.h) for the listener's hostname
 * (when it has one), "localhost" and the address the listeners are reached
 * on, written as kubernetes.io/tls Secret manifests the gateway loads with
 * the others. Clients trust the certificates themselves (curl --cacert). */
#ifndef IG_DEMO_CERTS_H
#define IG_DEMO_CERTS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

/* Appends to yaml the Secret manifests made, and to ca each certificate
 * (PEM). Returns the number of Secrets made (0: none was missing), or -1
 * with the reason in err. */
/* Whether d is a warning the Secrets ig_demo_tls_secrets makes answer:
 * a listener's certificateRef to a missing Secret, and that listener's
 * "no usable certificate". Decided from cfg alone, so the made keys are
 * never parsed again. */
bool ig_demo_secret_answers(const struct ig_config *cfg, const struct ig_diag *d);

int ig_demo_tls_secrets(const struct ig_config *cfg, const char *probe_ip, struct ig_buf *yaml,
			struct ig_buf *ca, char *err, size_t errlen);

#endif
