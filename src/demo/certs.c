/* Self-signed Secrets for HTTPS listeners whose certificate Secret is not
 * in the manifests (see certs.h). Secrets are written with stringData and
 * block scalars, so the PEM text stays readable in the file. */
#include "demo/certs.h"

#include <stdio.h>
#include <string.h>

#include "http/certgen.h"

#define VALID_DAYS 30
#define MAX_MADE 64

struct made {
	const char *ns, *name;
};

static bool already(const struct made *m, size_t n, const char *ns, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].ns, ns) && !strcmp(m[i].name, name))
			return true;
	return false;
}

/* "  key: |\n" and the PEM indented by four spaces. */
static int block(struct ig_buf *out, const char *key, const struct ig_buf *pem)
{
	if (ig_buf_printf(out, "  %s: |\n", key))
		return -1;
	size_t i = 0;
	while (i < pem->len) {
		const char *nl = memchr(pem->ptr + i, '\n', pem->len - i);
		size_t end = nl ? (size_t)(nl - pem->ptr) : pem->len;
		if (ig_buf_printf(out, "    %.*s\n", (int)(end - i), pem->ptr + i))
			return -1;
		i = end + 1;
	}
	return 0;
}

static int make_one(const struct ig_listener *l, const struct ig_cert_ref *ref, const char *ns,
		    const char *probe_ip, struct ig_buf *yaml, struct ig_buf *ca, char *err,
		    size_t errlen)
{
	const char *names[3];
	size_t n = 0;
	if (l->hostname && *l->hostname)
		names[n++] = l->hostname;
	names[n++] = "localhost";
	names[n++] = probe_ip;
	struct ig_buf cert = {0}, key = {0};
	char why[200];
	int rc = -1;
	if (ig_certgen_selfsigned(names, n, VALID_DAYS, &cert, &key, why, sizeof why)) {
		snprintf(err, errlen, "a certificate for Secret %s/%s: %s", ns, ref->name, why);
		goto out;
	}
	if (ig_buf_printf(yaml,
			  "---\n# Made by infergate demo for listener %s: self-signed, %d days.\n"
			  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n"
			  "type: kubernetes.io/tls\nstringData:\n",
			  l->name, VALID_DAYS, ref->name, ns) ||
	    block(yaml, "tls.crt", &cert) || block(yaml, "tls.key", &key) ||
	    ig_buf_append(ca, cert.ptr, cert.len)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	ig_buf_free(&cert);
	/* The key is secret even here: wipe it before it is freed. */
	if (key.ptr)
		memset(key.ptr, 0, key.cap);
	ig_buf_free(&key);
	return rc;
}

/* A reference the demo makes a Secret for: one to a Secret not found. */
static bool made_for(const struct ig_cert_ref *ref)
{
	return ref->status == IG_REF_NOT_FOUND && (!ref->kind || !strcmp(ref->kind, "Secret"));
}

bool ig_demo_secret_answers(const struct ig_config *cfg, const struct ig_diag *d)
{
	char path[96];
	if (!d->warning || !d->file || !d->path)
		return false;
	for (size_t i = 0; i < cfg->ngateways; i++) {
		const struct ig_gateway *g = &cfg->gateways[i];
		if (!g->meta.file || strcmp(g->meta.file, d->file))
			continue;
		for (size_t j = 0; j < g->nlisteners; j++) {
			const struct ig_listener *l = &g->listeners[j];
			if (!l->protocol || strcmp(l->protocol, "HTTPS") || !l->tls.set)
				continue;
			bool any = false;
			for (size_t k = 0; k < l->tls.ncerts; k++) {
				if (!made_for(&l->tls.certs[k]))
					continue;
				any = true;
				snprintf(path, sizeof path,
					 "spec.listeners[%zu].tls.certificateRefs[%zu]", j, k);
				if (!strcmp(d->path, path) && d->line == l->tls.certs[k].line)
					return true;
			}
			snprintf(path, sizeof path, "spec.listeners[%zu]", j);
			if (any && !strcmp(d->path, path) && d->line == l->tls.certs[0].line)
				return true;
		}
	}
	return false;
}

int ig_demo_tls_secrets(const struct ig_config *cfg, const char *probe_ip, struct ig_buf *yaml,
			struct ig_buf *ca, char *err, size_t errlen)
{
	struct made made[MAX_MADE];
	size_t nmade = 0;
	for (size_t i = 0; i < cfg->ngateways; i++) {
		const struct ig_gateway *g = &cfg->gateways[i];
		for (size_t j = 0; j < g->nlisteners; j++) {
			const struct ig_listener *l = &g->listeners[j];
			if (!l->protocol || strcmp(l->protocol, "HTTPS") || !l->tls.set)
				continue;
			for (size_t k = 0; k < l->tls.ncerts; k++) {
				const struct ig_cert_ref *ref = &l->tls.certs[k];
				const char *ns = ref->ns ? ref->ns : g->meta.ns;
				/* Only what is missing: a Secret that is there but
				 * unusable is the user's to fix, and says so. */
				if (!made_for(ref) || already(made, nmade, ns, ref->name))
					continue;
				if (nmade == MAX_MADE) {
					snprintf(err, errlen, "more than %d missing Secrets",
						 MAX_MADE);
					return -1;
				}
				if (make_one(l, ref, ns, probe_ip, yaml, ca, err, errlen))
					return -1;
				made[nmade++] = (struct made){ns, ref->name};
			}
		}
	}
	return (int)nmade;
}
