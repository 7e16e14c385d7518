/* A snapshot is everything a request needs, built once per config: route
 * tables per listening port and the endpoints of every pool. It is
 * immutable; workers and requests hold references, so a reload never
 * changes what an in-flight request sees. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/log.h"
#include "gateway/sessions.h"
#include "gateway/snapshot.h"
#include "http/tls.h"
#include "sched/picker.h"

static struct ig_port_rt *port_for(struct ig_snapshot *s, int port)
{
	for (size_t i = 0; i < s->nports; i++)
		if (s->ports[i].port == port)
			return &s->ports[i];
	struct ig_port_rt *p = realloc(s->ports, (s->nports + 1) * sizeof *p);
	if (!p)
		return NULL;
	s->ports = p;
	p = &s->ports[s->nports++];
	memset(p, 0, sizeof *p);
	p->port = port;
	return p;
}

static bool is_https(const struct ig_listener *li)
{
	return strcmp(li->protocol, "HTTPS") == 0;
}

/* Every served listener on `port`, across Gateways, must agree on HTTP or
 * HTTPS: a port with both is a ProtocolConflict, and Gateway API forbids
 * picking a winner among conflicted listeners, so none of them is served. */
static bool port_conflicted(const struct ig_config *cfg, int port)
{
	int seen = -1;
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		if (!ig_gateway_servable(gw))
			continue;
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++) {
			const struct ig_listener *li = ig_gateway_listener(gw, l);
			if (!li->served || li->port != port)
				continue;
			if (seen >= 0 && seen != (int)is_https(li))
				return true;
			seen = is_https(li);
		}
	}
	return false;
}

/* The certificates an HTTPS listener names that the loader resolved
 * (a kubernetes.io/tls Secret with tls.crt and tls.key), appended to
 * *certs; how many. */
static size_t listener_certs(const struct ig_listener *li, const struct ig_frontend_validation *fv,
			     struct ig_tls_cert **certs, size_t *n)
{
	size_t added = 0;
	for (size_t c = 0; c < li->tls.ncerts; c++) {
		const struct ig_cert_ref *ref = &li->tls.certs[c];
		if (ref->status != IG_REF_OK || !ref->secret)
			continue;
		const struct ig_secret_item *crt = ig_secret_get(ref->secret, "tls.crt");
		const struct ig_secret_item *key = ig_secret_get(ref->secret, "tls.key");
		if (!crt || !key)
			continue;
		struct ig_tls_cert *v = realloc(*certs, (*n + 1) * sizeof *v);
		if (!v)
			return added;
		*certs = v;
		v[(*n)++] = (struct ig_tls_cert){
		    .hostname = li->hostname,
		    .cert_pem = (const char *)crt->bytes,
		    .cert_len = crt->len,
		    .key_pem = (const char *)key->bytes,
		    .key_len = key->len,
		    .client_auth = !fv			   ? IG_TLS_CLIENT_NONE
				   : fv->insecure_fallback ? IG_TLS_CLIENT_OPTIONAL
							   : IG_TLS_CLIENT_REQUIRE,
		    .client_ca_pem = fv ? fv->ca_pem : NULL,
		    .client_ca_len = fv ? fv->ca_len : 0,
		};
		added++;
	}
	return added;
}

static uint64_t certs_hash(const struct ig_tls_cert *certs, size_t n)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	for (size_t i = 0; i < n; i++) {
		const char *hn = certs[i].hostname ? certs[i].hostname : "";
		XXH3_64bits_update(st, hn, strlen(hn) + 1);
		XXH3_64bits_update(st, &certs[i].cert_len, sizeof certs[i].cert_len);
		XXH3_64bits_update(st, certs[i].cert_pem, certs[i].cert_len);
		XXH3_64bits_update(st, &certs[i].key_len, sizeof certs[i].key_len);
		XXH3_64bits_update(st, certs[i].key_pem, certs[i].key_len);
		XXH3_64bits_update(st, &certs[i].client_auth, sizeof certs[i].client_auth);
		XXH3_64bits_update(st, &certs[i].client_ca_len, sizeof certs[i].client_ca_len);
		if (certs[i].client_ca_len)
			XXH3_64bits_update(st, certs[i].client_ca_pem, certs[i].client_ca_len);
	}
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/* The TLS context of an HTTPS port: the previous snapshot's, with the new
 * certificates swapped in when they changed, or a new one. A set that
 * OpenSSL refuses keeps the old certificates on a reload (logged) and
 * leaves a new port unserved. 0, or -1 when the port cannot be served. */
static int port_tls(struct ig_port_rt *p, const struct ig_tls_cert *certs, size_t n,
		    const struct ig_snapshot *prev)
{
	char err[256];
	uint64_t h = certs_hash(certs, n);
	const struct ig_port_rt *old = prev ? ig_snapshot_port(prev, p->port) : NULL;
	if (old && old->tls) {
		p->tls = ig_tls_ctx_ref(old->tls);
		p->tls_hash = old->tls_hash;
		if (h == old->tls_hash)
			return 0;
		if (ig_tls_ctx_reload(p->tls, certs, n, err, sizeof err) < 0) {
			ig_err("port %d: new certificates refused (%s); keeping the previous ones",
			       p->port, err);
			return 0;
		}
		p->tls_hash = h;
		ig_info("port %d: certificates reloaded (%zu)", p->port, n);
		return 0;
	}
	p->tls = ig_tls_ctx_new(certs, n, err, sizeof err);
	if (!p->tls) {
		ig_err("port %d: HTTPS not served: %s", p->port, err);
		return -1;
	}
	p->tls_hash = h;
	return 0;
}

static int add_listener(struct ig_port_rt *p, const struct ig_gateway *gw,
			const struct ig_listener *li, const struct ig_config *cfg, size_t workers)
{
	struct ig_listener_rt *n = realloc(p->listeners, (p->nlisteners + 1) * sizeof *n);
	if (!n)
		return -1;
	p->listeners = n;
	n = &p->listeners[p->nlisteners++];
	n->gw = gw;
	n->listener = li;
	n->routes = ig_routes_build(cfg, gw, li, workers);
	return n->routes ? 0 : -1;
}

/* One port: its listeners (HTTP, or HTTPS with their certificates). */
static int add_port(struct ig_snapshot *s, int port, const struct ig_snapshot *prev, size_t workers)
{
	const struct ig_config *cfg = s->cfg;
	struct ig_tls_cert *certs = NULL;
	size_t ncerts = 0;
	bool tls = false;
	struct ig_port_rt *p = port_for(s, port);
	if (!p)
		return -1;
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		if (!ig_gateway_servable(gw))
			continue; /* the loader or gateway/addresses.c said why */
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++) {
			const struct ig_listener *li = ig_gateway_listener(gw, l);
			/* A listener another Gateway's has the same hostname as
			 * is not served, nor is that one: no winner (the loader
			 * warned). */
			if (!li->served || li->port != port || li->across != IG_CONFLICT_NONE)
				continue;
			const struct ig_frontend_validation *fv =
			    is_https(li) ? ig_listener_frontend(gw, li) : NULL;
			if (fv && !fv->nvalid) {
				ig_warn("gateway %s/%s: listener %s: no valid CA certificate for "
					"client certificates (Accepted=False, "
					"NoValidCACertificate): not served",
					gw->meta.ns, gw->meta.name, li->name);
				continue;
			}
			if (is_https(li) && listener_certs(li, fv, &certs, &ncerts) == 0) {
				ig_warn("gateway %s/%s: listener %s: no usable certificate "
					"(ResolvedRefs=False, InvalidCertificateRef): not served",
					gw->meta.ns, gw->meta.name, li->name);
				continue;
			}
			tls |= is_https(li);
			if (add_listener(p, gw, li, cfg, workers) < 0) {
				free(certs);
				return -1;
			}
		}
	}
	if (tls && port_tls(p, certs, ncerts, prev) < 0) {
		for (size_t l = 0; l < p->nlisteners; l++)
			ig_routes_free(p->listeners[l].routes);
		p->nlisteners = 0;
	}
	free(certs);
	if (p->nlisteners == 0) { /* nothing to serve: the port is not opened */
		free(p->listeners);
		s->nports--;
	}
	return 0;
}

/* Whether li is the first served listener on its port (one warning per
 * port). */
static bool first_on_port(const struct ig_config *cfg, const struct ig_listener *li)
{
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		if (!ig_gateway_servable(gw))
			continue;
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++) {
			const struct ig_listener *o = ig_gateway_listener(gw, l);
			if (o == li)
				return true;
			if (o->served && o->port == li->port)
				return false;
		}
	}
	return true;
}

static int add_listeners(struct ig_snapshot *s, const struct ig_snapshot *prev, size_t workers)
{
	const struct ig_config *cfg = s->cfg;
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		if (!ig_gateway_servable(gw))
			continue; /* the loader or gateway/addresses.c said why */
		for (size_t l = 0; l < ig_gateway_nlisteners(gw); l++) {
			const struct ig_listener *li = ig_gateway_listener(gw, l);
			if (!li->served) {
				ig_warn("gateway %s/%s: listener %s: protocol %s is not served",
					gw->meta.ns, gw->meta.name, li->name, li->protocol);
				continue;
			}
			if (ig_snapshot_port(s, li->port))
				continue; /* done with the port's first listener */
			if (port_conflicted(cfg, li->port)) {
				if (first_on_port(cfg, li))
					ig_warn(
					    "port %d: HTTP and HTTPS listeners share it "
					    "(Conflicted=True, ProtocolConflict): none is served",
					    li->port);
				continue;
			}
			if (add_port(s, li->port, prev, workers) < 0)
				return -1;
		}
	}
	return 0;
}

static struct ig_sched_ref *sched_for(struct ig_snapshot *s, const struct ig_pool *pool,
				      const struct ig_snapshot *prev)
{
	char key[320];
	snprintf(key, sizeof key, "%s/%s", pool->meta.ns, pool->meta.name);
	for (size_t i = 0; prev && i < prev->npools; i++) {
		struct ig_sched_ref *r = prev->pools[i].sched;
		if (r && r->config_hash == s->picker_hash && strcmp(r->pool_key, key) == 0) {
			atomic_fetch_add(&r->refs, 1);
			return r;
		}
	}
	struct ig_sched_ref *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->s = ig_scheduler_new(s->picker);
	if (!r->s || !(r->plugin_series =
			   calloc(2 * ig_scheduler_nplugins(r->s) + 1, sizeof *r->plugin_series))) {
		ig_scheduler_free(r->s);
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	r->config_hash = s->picker_hash;
	snprintf(r->pool_key, sizeof r->pool_key, "%s", key);
	return r;
}

static void sched_put(struct ig_sched_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		ig_scheduler_free(r->s);
		free((void *)r->plugin_series);
		free(r);
	}
}

/* A scheduler kept across a reload forgets the endpoints its pool lost,
 * so its prefix index does not keep sending prompts to departed pods. */
static void forget_departed(const struct ig_pool_rt *rt, const struct ig_snapshot *prev)
{
	for (size_t i = 0; prev && i < prev->npools; i++) {
		const struct ig_pool_rt *old = &prev->pools[i];
		if (old->sched != rt->sched)
			continue;
		for (size_t e = 0; e < old->neps; e++) {
			bool kept = false;
			for (size_t k = 0; k < rt->neps && !kept; k++)
				kept = rt->eps[k] == old->eps[e];
			if (!kept)
				ig_scheduler_forget(rt->sched->s, old->eps[e]->key);
		}
	}
}

/* The pool's picker Service: its clusterIP on the ref's port (9002 when
 * a v1alpha2 ref gives none), else its ready endpoints on that port. */
static int epp_target(struct ig_snapshot *s, struct ig_pool_rt *rt)
{
	const struct ig_pool *pool = rt->pool;
	if (!pool->epp_name || (pool->epp_kind && strcmp(pool->epp_kind, "Service") != 0))
		return 0;
	const struct ig_service *svc =
	    ig_config_find_service(s->cfg, pool->meta.ns, pool->epp_name);
	if (!svc) {
		rt->epp_missing = true;
		return 0;
	}
	struct ig_epp_target *t = calloc(1, sizeof *t);
	if (!t)
		return -1;
	rt->epp = t;
	int port = pool->epp_port ? pool->epp_port : 9002;
	t->fail_open = pool->failure_mode == IG_FAIL_OPEN;
	for (size_t i = 0; i < svc->nports; i++)
		if (svc->ports[i].port == port && svc->ports[i].app_protocol &&
		    (!strcmp(svc->ports[i].app_protocol, "kubernetes.io/h2c") ||
		     !strcmp(svc->ports[i].app_protocol, "h2c")))
			t->plaintext = true;
	if (svc->cluster_ip) {
		snprintf(t->addrs[t->naddrs++], sizeof t->addrs[0],
			 strchr(svc->cluster_ip, ':') ? "[%s]:%d" : "%s:%d", svc->cluster_ip, port);
		return 0;
	}
	struct ig_service_addr *addrs = NULL;
	size_t n = 0;
	if (ig_config_service_endpoints(s->cfg, svc, port, &addrs, &n, NULL) == -ENOMEM)
		return -1;
	for (size_t i = 0; i < n && t->naddrs < IG_EPP_MAX_ADDRS; i++)
		snprintf(t->addrs[t->naddrs++], sizeof t->addrs[0],
			 strchr(addrs[i].ip, ':') ? "[%s]:%d" : "%s:%d", addrs[i].ip,
			 addrs[i].port);
	free(addrs);
	return 0;
}

/* The pool a scope names: as ig_snapshot_pool_group finds it. */
static const struct ig_pool *scope_pool(const struct ig_config *cfg,
					const struct ig_pool_scope *scope)
{
	const struct ig_pool *any = NULL;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		if (strcmp(p->meta.name, scope->name) != 0 || strcmp(p->meta.ns, scope->ns) != 0)
			continue;
		const char *g = p->group ? p->group : IG_POOL_GROUP_V1;
		if (scope->group ? !strcmp(g, scope->group) : !strcmp(g, IG_POOL_GROUP_V1))
			return p;
		if (!scope->group && !any)
			any = p;
	}
	return any;
}

static int add_pools(struct ig_snapshot *s, struct ig_endpoints *reg,
		     const struct ig_snapshot *prev, const struct ig_pool_scope *scope)
{
	const struct ig_config *cfg = s->cfg;
	const struct ig_pool *only = scope && scope->name ? scope_pool(cfg, scope) : NULL;
	s->pools = calloc(cfg->npools ? cfg->npools : 1, sizeof *s->pools);
	if (!s->pools)
		return -1;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *pool = &cfg->pools[i];
		if (scope && scope->name && pool != only)
			continue;
		struct ig_pool_rt *rt = &s->pools[s->npools++];
		rt->pool = pool;
		rt->h2c = pool->app_protocol == IG_APP_H2C;
		rt->sched = sched_for(s, pool, prev);
		if (!rt->sched)
			return -1;
		size_t cap = cfg->npods * (pool->nports ? pool->nports : 1);
		rt->eps = calloc(cap ? cap : 1, sizeof *rt->eps);
		rt->ep_pods = calloc(cap ? cap : 1, sizeof *rt->ep_pods);
		rt->ep_ranks = calloc(cap ? cap : 1, sizeof *rt->ep_ranks);
		if (!rt->eps || !rt->ep_pods || !rt->ep_ranks)
			return -1;
		for (size_t p = 0; p < cfg->npods; p++) {
			if (!ig_pool_selects(pool, &cfg->pods[p]))
				continue;
			for (size_t k = 0; k < pool->nports; k++) {
				char addr[96];
				const char *ip = cfg->pods[p].ip;
				if (strchr(ip, ':'))
					snprintf(addr, sizeof addr, "[%s]:%d", ip,
						 pool->target_ports[k]);
				else
					snprintf(addr, sizeof addr, "%s:%d", ip,
						 pool->target_ports[k]);
				struct ig_endpoint *ep = ig_endpoint_get(reg, addr);
				if (!ep) {
					ig_warn("pool %s: bad endpoint address %s", pool->meta.name,
						addr);
					continue;
				}
				bool dup = false;
				for (size_t e = 0; e < rt->neps; e++)
					dup |= rt->eps[e] == ep;
				if (dup) {
					ig_endpoint_put(ep);
					continue;
				}
				rt->ep_pods[rt->neps] = &cfg->pods[p];
				rt->ep_ranks[rt->neps] = (unsigned char)k;
				rt->eps[rt->neps++] = ep;
			}
		}
		forget_departed(rt, prev);
		if (ig_session_tokens_build(rt) < 0)
			return -1;
		if (epp_target(s, rt) < 0)
			return -1;
	}
	return 0;
}

/* What a BackendTLSPolicy's client context is made of, hashed: a context
 * made from equal settings is the same context. */
static uint64_t policy_hash(const struct ig_backend_tls_policy *p)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	uint8_t sys = p->ca_pem ? 0 : 1;
	XXH3_64bits_update(st, &sys, 1);
	if (p->ca_pem)
		XXH3_64bits_update(st, p->ca_pem, p->ca_len);
	XXH3_64bits_update(st, p->hostname, strlen(p->hostname) + 1);
	for (size_t i = 0; i < p->nsans; i++) {
		XXH3_64bits_update(st, p->sans[i].uri ? "u" : "h", 1);
		XXH3_64bits_update(st, p->sans[i].value, strlen(p->sans[i].value) + 1);
	}
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/* A client context made from a BackendTLSPolicy's settings, presenting
 * the client certificate crt/key when they are given; NULL with the
 * reason in err. */
static struct ig_tls_client_ctx *policy_ctx_new(const struct ig_backend_tls_policy *p,
						const struct ig_secret_item *crt,
						const struct ig_secret_item *key, bool h2,
						char *err, size_t errlen)
{
	const char **names = calloc(p->nsans + 1, sizeof *names);
	const char **uris = calloc(p->nsans + 1, sizeof *uris);
	struct ig_tls_client_opts o = {.ca_pem = p->ca_pem,
				       .ca_len = p->ca_len,
				       .sni = p->hostname,
				       .names = names,
				       .uris = uris,
				       .h2 = h2};
	if (crt && key) {
		o.cert_pem = (const char *)crt->bytes;
		o.cert_len = crt->len;
		o.key_pem = (const char *)key->bytes;
		o.key_len = key->len;
	}
	for (size_t i = 0; names && uris && i < p->nsans; i++) {
		if (p->sans[i].uri)
			uris[o.nuris++] = p->sans[i].value;
		else
			names[o.nnames++] = p->sans[i].value;
	}
	struct ig_tls_client_ctx *ctx = NULL;
	if (names && uris)
		ctx = ig_tls_client_ctx_new(&o, err, errlen);
	else
		snprintf(err, errlen, "out of memory");
	free(names);
	free(uris);
	return ctx;
}

static bool same_service_port(const struct ig_service_rt *a, const struct ig_service_rt *b)
{
	return a->port == b->port && a->h2c == b->h2c &&
	       !strcmp(a->svc->meta.ns, b->svc->meta.ns) &&
	       !strcmp(a->svc->meta.name, b->svc->meta.name);
}

/* The TLS context of a Service port that a BackendTLSPolicy targets. */
static void service_tls(struct ig_service_rt *rt, const struct ig_backend_tls_policy *p,
			const struct ig_snapshot *prev)
{
	rt->policy = p;
	rt->tls_hash = policy_hash(p);
	for (size_t i = 0; prev && i < prev->nservices; i++) {
		const struct ig_service_rt *o = &prev->services[i];
		if (o->tls && o->tls_hash == rt->tls_hash && same_service_port(o, rt)) {
			rt->tls = ig_tls_client_ctx_ref(o->tls);
			return;
		}
	}
	char err[256];
	rt->tls = policy_ctx_new(p, NULL, NULL, rt->h2c, err, sizeof err);
	if (!rt->tls) {
		rt->tls_error = true;
		ig_err("BackendTLSPolicy %s/%s: %s; requests to Service %s/%s port %d get 500",
		       p->meta.ns, p->meta.name, err, rt->svc->meta.ns, rt->svc->meta.name,
		       rt->port);
	}
}

/* The hash of a Gateway's context for a port: the policy's settings and
 * the client certificate. */
static uint64_t client_cert_hash(uint64_t policy, const struct ig_secret_item *crt,
				 const struct ig_secret_item *key)
{
	return XXH3_64bits_withSeed(crt->bytes, crt->len, policy) ^
	       XXH3_64bits_withSeed(key->bytes, key->len, ~policy);
}

/* A context per Gateway with a usable client certificate (spec.tls.backend),
 * the previous snapshot's when nothing it is made of changed. */
static void service_gateway_tls(struct ig_service_rt *rt, const struct ig_backend_tls_policy *p,
				const struct ig_config *cfg, const struct ig_snapshot *prev)
{
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		if (!gw->has_backend_client || gw->backend_client.status != IG_REF_OK)
			continue;
		const struct ig_secret_item *crt =
		    ig_secret_get(gw->backend_client.secret, "tls.crt");
		const struct ig_secret_item *key =
		    ig_secret_get(gw->backend_client.secret, "tls.key");
		if (!crt || !key)
			continue;
		struct ig_service_gw_tls *v = realloc(rt->gw_tls, (rt->ngw_tls + 1) * sizeof *v);
		if (!v)
			return;
		rt->gw_tls = v;
		v = &rt->gw_tls[rt->ngw_tls++];
		*v = (struct ig_service_gw_tls){.gw = gw,
						.hash = client_cert_hash(rt->tls_hash, crt, key)};
		for (size_t i = 0; prev && i < prev->nservices && !v->tls; i++) {
			const struct ig_service_rt *o = &prev->services[i];
			if (!same_service_port(o, rt))
				continue;
			for (size_t k = 0; k < o->ngw_tls; k++)
				if (o->gw_tls[k].tls && o->gw_tls[k].hash == v->hash &&
				    !strcmp(o->gw_tls[k].gw->meta.ns, gw->meta.ns) &&
				    !strcmp(o->gw_tls[k].gw->meta.name, gw->meta.name)) {
					v->tls = ig_tls_client_ctx_ref(o->gw_tls[k].tls);
					break;
				}
		}
		if (v->tls)
			continue;
		char err[256];
		v->tls = policy_ctx_new(p, crt, key, rt->h2c, err, sizeof err);
		if (!v->tls)
			ig_err(
			    "gateway %s/%s: client certificate for Service %s/%s port %d: %s; its "
			    "requests there get 500",
			    gw->meta.ns, gw->meta.name, rt->svc->meta.ns, rt->svc->meta.name,
			    rt->port, err);
	}
}

/* The Service backends any rule or mirror names, each (Service, port)
 * once, with the endpoints ig_config_service_endpoints gives. */
static int add_service(struct ig_snapshot *s, struct ig_endpoints *reg,
		       const struct ig_backend_ref *be, const struct ig_snapshot *prev)
{
	if (!be->service || be->status != IG_REF_OK || ig_snapshot_service(s, be))
		return 0;
	struct ig_service_rt *v = realloc(s->services, (s->nservices + 1) * sizeof *v);
	if (!v)
		return -1;
	s->services = v;
	struct ig_service_rt *rt = &s->services[s->nservices++];
	*rt = (struct ig_service_rt){.svc = be->service, .port = be->port};
	rt->h2c = be->h2c;
	if (be->tls) {
		service_tls(rt, be->tls, prev);
		service_gateway_tls(rt, be->tls, s->cfg, prev);
	}
	struct ig_service_addr *addrs;
	size_t n;
	if (ig_config_service_endpoints(s->cfg, be->service, be->port, &addrs, &n, NULL) < 0)
		return 0; /* no such port: no endpoints (the request gets 503) */
	rt->eps = calloc(n ? n : 1, sizeof *rt->eps);
	if (!rt->eps) {
		free(addrs);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char addr[96];
		if (strchr(addrs[i].ip, ':'))
			snprintf(addr, sizeof addr, "[%s]:%d", addrs[i].ip, addrs[i].port);
		else
			snprintf(addr, sizeof addr, "%s:%d", addrs[i].ip, addrs[i].port);
		struct ig_endpoint *ep = ig_endpoint_get(reg, addr);
		if (ep)
			rt->eps[rt->neps++] = ep;
	}
	free(addrs);
	return 0;
}

static int add_services(struct ig_snapshot *s, struct ig_endpoints *reg,
			const struct ig_snapshot *prev)
{
	const struct ig_config *cfg = s->cfg;
	for (size_t r = 0; r < cfg->nroutes; r++)
		for (size_t i = 0; i < cfg->routes[r].nrules; i++) {
			const struct ig_route_rule *rule = &cfg->routes[r].rules[i];
			for (size_t b = 0; b < rule->nbackends; b++) {
				const struct ig_backend_ref *be = &rule->backends[b];
				if (add_service(s, reg, be, prev) < 0)
					return -1;
				for (size_t f = 0; f < be->nfilters; f++)
					if (be->filters[f].type == IG_FILTER_REQUEST_MIRROR &&
					    add_service(s, reg, be->filters[f].u.mirror.backend,
							prev) < 0)
						return -1;
			}
			for (size_t f = 0; f < rule->nfilters; f++)
				if (rule->filters[f].type == IG_FILTER_REQUEST_MIRROR &&
				    add_service(s, reg, rule->filters[f].u.mirror.backend, prev) <
					0)
					return -1;
		}
	return 0;
}

struct ig_snapshot *ig_snapshot_build(struct ig_endpoints *reg, struct ig_config *cfg,
				      struct ig_picker_config *picker, uint64_t picker_hash,
				      const struct ig_snapshot *prev, uint64_t generation,
				      size_t workers)
{
	return ig_snapshot_build_scoped(reg, cfg, picker, picker_hash, prev, generation, workers,
					NULL);
}

struct ig_snapshot *ig_snapshot_build_scoped(struct ig_endpoints *reg, struct ig_config *cfg,
					     struct ig_picker_config *picker, uint64_t picker_hash,
					     const struct ig_snapshot *prev, uint64_t generation,
					     size_t workers, const struct ig_pool_scope *scope)
{
	struct ig_snapshot *s = calloc(1, sizeof *s);
	if (!s) {
		ig_config_free(cfg);
		ig_picker_config_free(picker);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->cfg = cfg;
	s->picker = picker;
	s->picker_hash = picker_hash;
	s->generation = generation;
	const struct ig_flow_control_config *fc = ig_picker_config_flow_control(picker);
	if (fc)
		s->flow = *fc;
	s->flow_control = ig_picker_config_feature(picker, "flowControl");
	if (add_listeners(s, prev, workers) < 0 || add_pools(s, reg, prev, scope) < 0 ||
	    add_services(s, reg, prev) < 0) {
		ig_snapshot_unref(s);
		return NULL;
	}
	return s;
}

void ig_snapshot_unref(struct ig_snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < s->nports; i++) {
		for (size_t l = 0; l < s->ports[i].nlisteners; l++)
			ig_routes_free(s->ports[i].listeners[l].routes);
		free(s->ports[i].listeners);
		if (s->ports[i].tls)
			ig_tls_ctx_unref(s->ports[i].tls);
	}
	free(s->ports);
	for (size_t i = 0; i < s->npools; i++) {
		for (size_t e = 0; e < s->pools[i].neps; e++)
			ig_endpoint_put(s->pools[i].eps[e]);
		free(s->pools[i].eps);
		free(s->pools[i].ep_pods);
		free(s->pools[i].ep_ranks);
		ig_session_tokens_free(s->pools[i].tokens);
		free(s->pools[i].epp);
		sched_put(s->pools[i].sched);
	}
	free(s->pools);
	for (size_t i = 0; i < s->nservices; i++) {
		for (size_t e = 0; e < s->services[i].neps; e++)
			ig_endpoint_put(s->services[i].eps[e]);
		free(s->services[i].eps);
		ig_tls_client_ctx_unref(s->services[i].tls);
		for (size_t k = 0; k < s->services[i].ngw_tls; k++)
			ig_tls_client_ctx_unref(s->services[i].gw_tls[k].tls);
		free(s->services[i].gw_tls);
	}
	free(s->services);
	ig_config_free(s->cfg);
	ig_picker_config_free(s->picker);
	free(s);
}

const struct ig_pool_rt *ig_snapshot_pool(const struct ig_snapshot *s, const char *ns,
					  const char *name)
{
	for (size_t i = 0; i < s->npools; i++) {
		const struct ig_pool *p = s->pools[i].pool;
		if (strcmp(p->meta.name, name) == 0 && strcmp(p->meta.ns, ns) == 0)
			return &s->pools[i];
	}
	return NULL;
}

const struct ig_pool_rt *ig_snapshot_pool_group(const struct ig_snapshot *s, const char *ns,
						const char *name, const char *group)
{
	const struct ig_pool_rt *any = NULL;
	for (size_t i = 0; i < s->npools; i++) {
		const struct ig_pool *p = s->pools[i].pool;
		if (strcmp(p->meta.name, name) != 0 || strcmp(p->meta.ns, ns) != 0)
			continue;
		const char *g = p->group ? p->group : IG_POOL_GROUP_V1;
		if (group ? !strcmp(g, group) : !strcmp(g, IG_POOL_GROUP_V1))
			return &s->pools[i];
		if (!group && !any)
			any = &s->pools[i];
	}
	return any;
}

const struct ig_pool_rt *ig_snapshot_pool_of(const struct ig_snapshot *s, const struct ig_pool *p)
{
	for (size_t i = 0; i < s->npools; i++)
		if (s->pools[i].pool == p)
			return &s->pools[i];
	return NULL;
}

const struct ig_service_rt *ig_snapshot_service(const struct ig_snapshot *s,
						const struct ig_backend_ref *be)
{
	for (size_t i = 0; i < s->nservices; i++)
		if (s->services[i].svc == be->service && s->services[i].port == be->port &&
		    s->services[i].h2c == be->h2c)
			return &s->services[i];
	return NULL;
}

const struct ig_port_rt *ig_snapshot_port(const struct ig_snapshot *s, int port)
{
	for (size_t i = 0; i < s->nports; i++)
		if (s->ports[i].port == port)
			return &s->ports[i];
	return NULL;
}

bool ig_snapshot_serves(const struct ig_snapshot *s, const struct ig_gateway *gw,
			const struct ig_listener *l)
{
	const struct ig_port_rt *p = ig_snapshot_port(s, l->port);
	for (size_t j = 0; p && j < p->nlisteners; j++)
		if (p->listeners[j].gw == gw && p->listeners[j].listener == l)
			return true;
	return false;
}

/* GIE v0.2.0 read the adapters of the newest lora_requests_info series
 * naming any, and so does v1.5 under enableLegacyMetrics; v1.5 reads the
 * newest series. A pool of the InferenceModel age or with v0.2.0's tree
 * keeps v0.2.0's rule, as does an endpoint any such pool shares. */
static bool v02_lora_rule(const struct ig_snapshot *s, const struct ig_pool_rt *rt)
{
	if (ig_picker_config_feature(s->picker, "enableLegacyMetrics"))
		return true;
	if (rt->sched && rt->sched->s && ig_scheduler_sheds_itself(rt->sched->s))
		return true;
	return ig_pool_model_mode(s->cfg, rt->pool) == IG_MODELS_INFERENCE_MODEL;
}

static const char *pod_label(const struct ig_pod *pod, const char *key)
{
	for (size_t i = 0; i < pod->meta.nlabels; i++)
		if (strcmp(pod->meta.labels[i].key, key) == 0 && pod->meta.labels[i].value)
			return pod->meta.labels[i].value;
	return "";
}

/* llm-d's getEngineTypeFromEndpoint: its label, else GIE's older one,
 * else the default engine; a name no engine has is read with the
 * default's families too (MappingRegistry.Get). Runs on the control
 * thread only, which alone reads and writes the values already logged. */
static enum ig_engine pod_engine(const struct ig_pod *pod)
{
	static uint64_t logged[16];
	static size_t nlogged;
	if (!pod)
		return IG_ENGINE_VLLM;
	const char *v = pod_label(pod, IG_ENGINE_LABEL);
	const char *key = IG_ENGINE_LABEL;
	if (!*v) {
		v = pod_label(pod, IG_ENGINE_LABEL_GIE);
		key = IG_ENGINE_LABEL_GIE;
	}
	if (!*v)
		return IG_ENGINE_VLLM;
	int e = ig_engine_parse((struct ig_str){v, strlen(v)});
	if (e >= 0)
		return (enum ig_engine)e;
	uint64_t h = XXH3_64bits(v, strlen(v));
	for (size_t i = 0; i < nlogged; i++)
		if (logged[i] == h)
			return IG_ENGINE_VLLM;
	if (nlogged < sizeof logged / sizeof *logged)
		logged[nlogged++] = h;
	ig_warn("pod %s/%s: label %s: \"%s\" is no engine infergate knows (vllm, sglang, "
		"trtllm-serve, triton-tensorrt-llm): its metrics are read with vLLM's names",
		pod->meta.ns, pod->meta.name, key, v);
	return IG_ENGINE_VLLM;
}

void ig_snapshot_set_lora_rules(const struct ig_snapshot *s)
{
	for (size_t p = 0; p < s->npools; p++)
		for (size_t e = 0; e < s->pools[p].neps; e++) {
			const struct ig_pod *pod =
			    s->pools[p].ep_pods ? s->pools[p].ep_pods[e] : NULL;
			s->pools[p].eps[e]->lora_rule = IG_LORA_NEWEST;
			s->pools[p].eps[e]->engine = pod_engine(pod);
		}
	for (size_t p = 0; p < s->npools; p++)
		if (v02_lora_rule(s, &s->pools[p]))
			for (size_t e = 0; e < s->pools[p].neps; e++)
				s->pools[p].eps[e]->lora_rule = IG_LORA_NAMING_ADAPTERS;
}

struct ig_endpoint **ig_snapshot_endpoints(const struct ig_snapshot *s, size_t *n)
{
	size_t total = 0;
	for (size_t p = 0; p < s->npools; p++)
		total += s->pools[p].neps;
	*n = 0;
	if (!total)
		return NULL;
	struct ig_endpoint **v = malloc(total * sizeof *v);
	if (!v)
		return NULL;
	for (size_t p = 0; p < s->npools; p++)
		for (size_t e = 0; e < s->pools[p].neps; e++)
			v[(*n)++] = s->pools[p].eps[e];
	return v;
}
