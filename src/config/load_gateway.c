/* Decoders for the Gateway API: Gateway, HTTPRoute (matches, filters,
 * backendRefs, timeouts, retry, sessionPersistence), BackendTLSPolicy and
 * ReferenceGrant, with the CRDs' validation (gateway-api v1.2.1 to v1.6.1,
 * experimental channel; messages are the CRDs' own where they have one). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <strings.h>

#include "config/load.h"

#define GATEWAY_GROUP "gateway.networking.k8s.io"

/* ---- Gateway --------------------------------------------------------------- */

/* The CRD's ProtocolType pattern: a name of letters, digits and '-' (the
 * core ones are HTTP, HTTPS, TLS, TCP, UDP; any other, "Http" included,
 * is valid and gets UnsupportedProtocol), or an implementation-specific
 * "domain/Name". */
static bool protocol_ok(const char *p)
{
	size_t len = strlen(p);
	const char *slash = strrchr(p, '/');
	if (len == 0 || len > 255)
		return false;
	if (slash) {
		if (!slash[1] || !ld_dns_subdomain(p, (size_t)(slash - p)))
			return false;
		for (const char *c = slash + 1; *c; c++)
			if (!isalnum((unsigned char)*c))
				return false;
		return true;
	}
	if (len > 63 || !isalnum((unsigned char)p[0]) || !isalnum((unsigned char)p[len - 1]))
		return false;
	for (const char *c = p; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-')
			return false;
	return true;
}

/* A FromNamespaces block, {from, selector}, at `path`: froms lists the
 * values `from` takes, dflt applies without one; what names the objects
 * it admits, for the warning about a Selector without a selector. */
static void decode_namespaces(struct session *s, yaml_node_t *n, const char *path,
			      const char *const *froms, enum ig_routes_from dflt, const char *what,
			      enum ig_routes_from *from, bool *has_selector,
			      struct ig_label_selector *selector)
{
	static const char *const fields[] = {"from", "selector", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	char *f = ld_str(s, n, path, "from", false, &line);
	ld_check_enum(s, f, line, path, "from", froms);
	*from = !f			 ? dflt
		: !strcmp(f, "All")	 ? IG_FROM_ALL
		: !strcmp(f, "Selector") ? IG_FROM_SELECTOR
		: !strcmp(f, "Same")	 ? IG_FROM_SAME
		: !strcmp(f, "None")	 ? IG_FROM_NONE
					 : dflt;
	int sline;
	yaml_node_t *sel = ld_map(s, n, path, "selector", false, &sline);
	if (sel) {
		char selp[LD_PATH];
		ld_join(selp, path, "selector");
		*has_selector = true;
		ld_label_selector(s, sel, selp, selector);
	}
	if (*from == IG_FROM_SELECTOR && !sel)
		ld_warn(s, line, path, "from",
			"from: Selector without a selector admits %s from no namespace", what);
}

static void decode_allowed_routes(struct session *s, yaml_node_t *n, const char *path,
				  struct ig_allowed_routes *a)
{
	static const char *const fields[] = {"namespaces", "kinds", NULL};
	static const char *const kind_fields[] = {"group", "kind", NULL};
	static const char *const froms[] = {"All", "Selector", "Same", NULL};
	char sub[LD_PATH], it[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	ld_join(sub, path, "namespaces");
	yaml_node_t *ns = ld_map(s, n, path, "namespaces", false, &line);
	if (ns)
		decode_namespaces(s, ns, sub, froms, IG_FROM_SAME, "routes", &a->from,
				  &a->has_selector, &a->selector);
	yaml_node_t *ks = ld_seq(s, n, path, "kinds", false, &line);
	if (!ks)
		return;
	ld_check_items(s, ks, line, path, "kinds", 0, 8);
	a->kinds = ld_alloc(s, (ld_seq_len(ks) + 1) * sizeof(*a->kinds));
	for (size_t i = 0; i < ld_seq_len(ks); i++) {
		ld_item(it, path, "kinds", i);
		yaml_node_t *k = ld_seq_map(s, ks, i, it);
		if (!k)
			continue;
		struct ig_route_group_kind *gk = &a->kinds[a->nkinds++];
		ld_fields(s, k, it, kind_fields, NULL);
		int kline;
		gk->group = ld_str(s, k, it, "group", false, &line);
		ld_check_group(s, gk->group, line, it, "group");
		gk->kind = ld_str(s, k, it, "kind", true, &kline);
		ld_check_kind(s, gk->kind, kline, it, "kind");
		if (!gk->group)
			gk->group = GATEWAY_GROUP;
		if (gk->kind && (strcmp(gk->group, GATEWAY_GROUP) ||
				 (strcmp(gk->kind, "HTTPRoute") && strcmp(gk->kind, "GRPCRoute"))))
			ld_warn(s, kline, it, "kind",
				"route kind %s%s%s is not supported (InvalidRouteKinds): only "
				"HTTPRoute and GRPCRoute attach",
				*gk->group ? gk->group : "", *gk->group ? "/" : "", gk->kind);
	}
}

static void decode_cert_ref(struct session *s, yaml_node_t *n, const char *path,
			    const struct ig_meta *gw, struct ig_cert_ref *c)
{
	static const char *const fields[] = {"group", "kind", "name", "namespace", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	c->group = ld_str(s, n, path, "group", false, &line);
	ld_check_group(s, c->group, line, path, "group");
	c->kind = ld_str(s, n, path, "kind", false, &line);
	ld_check_kind(s, c->kind, line, path, "kind");
	c->name = ld_str(s, n, path, "name", true, &line);
	ld_check_object_name(s, c->name, line, path, "name");
	c->ns = ld_str(s, n, path, "namespace", false, &line);
	ld_check_namespace(s, c->ns, line, path, "namespace");
	if (!c->group)
		c->group = "";
	if (!c->kind)
		c->kind = "Secret";
	if (!c->ns)
		c->ns = gw->ns;
	c->status = IG_REF_NOT_FOUND; /* until ld_link resolves it */
	c->line = ig_yaml_line(n);
}

static void decode_validation(struct session *s, yaml_node_t *n, const char *path,
			      const struct ig_meta *gw, struct ig_frontend_validation *v);

static void decode_listener_tls(struct session *s, yaml_node_t *n, const char *path,
				const struct ig_meta *gw, struct ig_listener_tls *t)
{
	static const char *const fields[] = {"mode", "certificateRefs", "frontendValidation",
					     "options", NULL};
	static const char *const modes[] = {"Terminate", "Passthrough", NULL};
	char sub[LD_PATH];
	int line, oline;
	t->set = true;
	ld_fields(s, n, path, fields, NULL);
	/* options are implementation-specific (Gateway API: keys domain/name):
	 * infergate has none, so they are ignored with a warning rather than
	 * refusing a configuration another implementation would take. */
	yaml_node_t *opts = ld_map(s, n, path, "options", false, &oline);
	size_t nopts = opts ? ld_map_len(opts) : 0;
	if (nopts > 16)
		ld_err(s, oline, path, "options", "must have at most 16 items");
	else if (nopts)
		ld_warn(s, oline, path, "options",
			"implementation-specific TLS options are not implemented by infergate: "
			"ignored");
	char *mode = ld_str(s, n, path, "mode", false, &line);
	ld_check_enum(s, mode, line, path, "mode", modes);
	t->mode = mode && !strcmp(mode, "Passthrough") ? IG_TLS_PASSTHROUGH : IG_TLS_TERMINATE;
	yaml_node_t *fv = ld_map(s, n, path, "frontendValidation", false, &line);
	if (fv) {
		ld_join(sub, path, "frontendValidation");
		decode_validation(s, fv, sub, gw, &t->frontend);
	}
	/* The CRD's CEL: size(certificateRefs) > 0 || size(options) > 0. */
	yaml_node_t *refs = ld_seq(s, n, path, "certificateRefs", false, &line);
	size_t nrefs = refs ? ld_seq_len(refs) : 0;
	if (!nrefs && !nopts && t->mode == IG_TLS_TERMINATE)
		ld_err(s, refs ? line : ig_yaml_line(n), path, NULL,
		       "certificateRefs or options must be specified when mode is Terminate");
	else if (!nrefs && t->mode == IG_TLS_TERMINATE)
		ld_warn(s, oline, path, NULL,
			"no certificateRefs: infergate terminates TLS only with certificates, so "
			"the listener cannot be served (ResolvedRefs=False, "
			"InvalidCertificateRef)");
	if (!refs)
		return;
	ld_check_items(s, refs, line, path, "certificateRefs", 0, 64);
	/* Items stay at their list index, even those in error: the paths of
	 * later messages (load_refs.c) are built from the index. */
	t->certs = ld_alloc(s, (ld_seq_len(refs) + 1) * sizeof(*t->certs));
	t->ncerts = ld_seq_len(refs);
	for (size_t i = 0; i < t->ncerts; i++) {
		ld_item(sub, path, "certificateRefs", i);
		yaml_node_t *c = ld_seq_map(s, refs, i, sub);
		if (c)
			decode_cert_ref(s, c, sub, gw, &t->certs[i]);
	}
}

static bool is(const char *v, const char *want)
{
	return v && !strcmp(v, want);
}

/* The CRD's listener-level CEL rules on protocol, tls and hostname, and
 * infergate's own: an HTTPS listener needs a certificate to be served. */
static void check_listener(struct session *s, yaml_node_t *n, const char *path,
			   struct ig_listener *l)
{
	int tline, hline;
	ld_get(s, n, "tls", &tline);
	ld_get(s, n, "hostname", &hline);
	const char *p = l->protocol;
	bool tcp_udp = is(p, "TCP") || is(p, "UDP");
	if (l->tls.set && (is(p, "HTTP") || tcp_udp))
		ld_err(s, tline, path, "tls",
		       "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']");
	if (is(p, "HTTPS") && l->tls.set && l->tls.mode != IG_TLS_TERMINATE)
		ld_err(s, tline, path, "tls.mode", "tls mode must be Terminate for protocol HTTPS");
	if (is(p, "HTTPS") && !l->tls.set)
		ld_err(s, tline, path, "tls",
		       "is required for protocol HTTPS (infergate terminates TLS with the "
		       "certificates it names)");
	if (tcp_udp && l->hostname)
		ld_err(s, hline, path, "hostname",
		       "hostname must not be specified for protocols ['TCP', 'UDP']");
	l->served = is(p, "HTTP") || is(p, "HTTPS");
	if (p && !l->served)
		ld_warn(s, ig_yaml_line(n), path, "protocol",
			"protocol %s is not served by infergate (UnsupportedProtocol): the "
			"listener gets no routes",
			p);
}

/* owner: the Gateway's or ListenerSet's metadata (certificateRefs
 * default to its namespace). An XListenerSet's port may be left out (0),
 * which it leaves to the implementation. */
static void decode_listener(struct session *s, yaml_node_t *n, const char *path,
			    const struct ig_meta *owner, struct ig_listener *l)
{
	const struct ig_meta *gw = owner;
	bool port_optional = !strcmp(owner->kind, "XListenerSet");
	static const char *const fields[] = {"name", "hostname",      "port", "protocol",
					     "tls",  "allowedRoutes", NULL};
	char sub[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	l->line = ig_yaml_line(n);
	l->name = ld_str(s, n, path, "name", true, &line);
	if (l->name && !ld_dns_subdomain(l->name, strlen(l->name)))
		ld_err(s, line, path, "name", "must be a lowercase RFC 1123 subdomain");
	l->protocol = ld_str(s, n, path, "protocol", true, &line);
	if (l->protocol && !protocol_ok(l->protocol))
		ld_err(s, line, path, "protocol",
		       "must be a name of up to 63 letters, digits and '-' (HTTP, HTTPS, TLS, TCP, "
		       "UDP), or a domain-prefixed name such as example.com/Custom");
	ld_int_range(s, n, path, "port", !port_optional, port_optional ? 0 : 1, 65535, &l->port);
	l->hostname = ld_str(s, n, path, "hostname", false, &line);
	if (l->hostname && !ld_hostname_ok(l->hostname))
		ld_err(s, line, path, "hostname",
		       "must be a lowercase DNS name, optionally starting with \"*.\"");
	yaml_node_t *tls = ld_map(s, n, path, "tls", false, &line);
	if (tls) {
		ld_join(sub, path, "tls");
		decode_listener_tls(s, tls, sub, gw, &l->tls);
	}
	yaml_node_t *ar = ld_map(s, n, path, "allowedRoutes", false, &line);
	if (ar) {
		ld_join(sub, path, "allowedRoutes");
		decode_allowed_routes(s, ar, sub, &l->allowed);
	}
	check_listener(s, n, path, l);
}

static void check_listeners_unique(struct session *s, yaml_node_t *ls,
				   const struct ig_listener *listeners, size_t nlisteners)
{
	char path[LD_PATH];
	for (size_t i = 0; i < nlisteners; i++) {
		const struct ig_listener *a = &listeners[i];
		yaml_node_t *n = ld_seq_item(s, ls, i);
		ld_item(path, "spec", "listeners", i);
		for (size_t j = 0; j < i && a->name; j++)
			if (listeners[j].name && !strcmp(listeners[j].name, a->name)) {
				ld_err(
				    s, ig_yaml_line(n), path, "name",
				    "listener name \"%s\" is not unique (also spec.listeners[%zu])",
				    a->name, j);
				break;
			}
		for (size_t j = 0; j < i && a->protocol; j++) {
			const struct ig_listener *b = &listeners[j];
			if (b->port == a->port && is(b->protocol, a->protocol) &&
			    ld_same_hostname(a->hostname, b->hostname)) {
				ld_err(s, ig_yaml_line(n), path, NULL,
				       "Combination of port, protocol and hostname must be unique "
				       "for each listener (also spec.listeners[%zu])",
				       j);
				break;
			}
		}
	}
}

/* spec.listeners of a Gateway or a ListenerSet (owner): 1 to 64, each
 * decoded and checked, names and port/protocol/hostname unique. */
static struct ig_listener *decode_listeners(struct session *s, yaml_node_t *seq, int line,
					    const struct ig_meta *owner, size_t *n)
{
	char path[LD_PATH];
	ld_check_items(s, seq, line, "spec", "listeners", 1, 64);
	*n = ld_seq_len(seq);
	struct ig_listener *ls = ld_alloc(s, (*n + 1) * sizeof(*ls));
	for (size_t i = 0; i < *n; i++) {
		ld_item(path, "spec", "listeners", i);
		yaml_node_t *item = ld_seq_map(s, seq, i, path);
		if (item)
			decode_listener(s, item, path, owner, &ls[i]);
	}
	check_listeners_unique(s, seq, ls, *n);
	return ls;
}

/* ---- Gateway: spec.tls.frontend (client certificate validation) ---- */

static void decode_ca_ref(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *gw, struct ig_ca_ref *r)
{
	static const char *const fields[] = {"group", "kind", "name", "namespace", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	r->group = ld_str(s, n, path, "group", false, &line);
	ld_check_group(s, r->group, line, path, "group");
	r->kind = ld_str(s, n, path, "kind", true, &line);
	ld_check_kind(s, r->kind, line, path, "kind");
	r->name = ld_str(s, n, path, "name", true, &line);
	ld_check_object_name(s, r->name, line, path, "name");
	r->ns = ld_str(s, n, path, "namespace", false, &line);
	ld_check_namespace(s, r->ns, line, path, "namespace");
	if (!r->group)
		r->group = "";
	if (!r->ns)
		r->ns = gw->ns;
	r->line = ig_yaml_line(n);
}

static void decode_validation(struct session *s, yaml_node_t *n, const char *path,
			      const struct ig_meta *gw, struct ig_frontend_validation *v)
{
	static const char *const fields[] = {"caCertificateRefs", "mode", NULL};
	static const char *const modes[] = {"AllowValidOnly", "AllowInsecureFallback", NULL};
	char it[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	v->set = true;
	char *mode = ld_str(s, n, path, "mode", false, &line);
	ld_check_enum(s, mode, line, path, "mode", modes);
	v->insecure_fallback = mode && !strcmp(mode, "AllowInsecureFallback");
	yaml_node_t *refs = ld_seq(s, n, path, "caCertificateRefs", true, &line);
	if (!refs)
		return;
	ld_check_items(s, refs, line, path, "caCertificateRefs", 1, 8);
	v->refs = ld_alloc(s, (ld_seq_len(refs) + 1) * sizeof(*v->refs));
	for (size_t i = 0; i < ld_seq_len(refs); i++) {
		ld_item(it, path, "caCertificateRefs", i);
		yaml_node_t *r = ld_seq_map(s, refs, i, it);
		if (r)
			decode_ca_ref(s, r, it, gw, &v->refs[v->nrefs++]);
	}
}

/* A TLSConfig: {validation}. Without validation, v stays unset. */
static void decode_tls_config(struct session *s, yaml_node_t *n, const char *path,
			      const struct ig_meta *gw, struct ig_frontend_validation *v)
{
	static const char *const fields[] = {"validation", NULL};
	char sub[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	yaml_node_t *val = ld_map(s, n, path, "validation", false, &line);
	if (val) {
		ld_join(sub, path, "validation");
		decode_validation(s, val, sub, gw, v);
	}
}

static void decode_gateway_tls(struct session *s, yaml_node_t *n, struct ig_gateway *g)
{
	static const char *const fields[] = {"frontend", "backend", NULL};
	static const char *const be_fields[] = {"clientCertificateRef", NULL};
	static const char *const fe_fields[] = {"default", "perPort", NULL};
	static const char *const port_fields[] = {"port", "tls", NULL};
	char path[LD_PATH], it[LD_PATH], sub[LD_PATH];
	int line;
	ld_fields(s, n, "spec.tls", fields, NULL);
	yaml_node_t *be = ld_map(s, n, "spec.tls", "backend", false, &line);
	if (be) {
		ld_fields(s, be, "spec.tls.backend", be_fields, NULL);
		yaml_node_t *ref =
		    ld_map(s, be, "spec.tls.backend", "clientCertificateRef", false, &line);
		if (ref) {
			g->has_backend_client = true;
			decode_cert_ref(s, ref, "spec.tls.backend.clientCertificateRef", &g->meta,
					&g->backend_client);
		}
	}
	yaml_node_t *fe = ld_map(s, n, "spec.tls", "frontend", false, &line);
	if (!fe)
		return;
	snprintf(path, sizeof path, "spec.tls.frontend");
	ld_fields(s, fe, path, fe_fields, NULL);
	yaml_node_t *def = ld_map(s, fe, path, "default", true, &line);
	if (def) {
		ld_join(sub, path, "default");
		decode_tls_config(s, def, sub, &g->meta, &g->frontend);
	}
	yaml_node_t *ports = ld_seq(s, fe, path, "perPort", false, &line);
	if (!ports)
		return;
	ld_check_items(s, ports, line, path, "perPort", 0, 64);
	g->frontend_ports = ld_alloc(s, (ld_seq_len(ports) + 1) * sizeof(*g->frontend_ports));
	for (size_t i = 0; i < ld_seq_len(ports); i++) {
		ld_item(it, path, "perPort", i);
		yaml_node_t *pn = ld_seq_map(s, ports, i, it);
		if (!pn)
			continue;
		struct ig_frontend_port *fp = &g->frontend_ports[g->nfrontend_ports];
		ld_fields(s, pn, it, port_fields, NULL);
		int pline;
		if (!ld_int_range(s, pn, it, "port", true, 1, 65535, &fp->port))
			continue;
		ld_get(s, pn, "port", &pline);
		for (size_t j = 0; j < g->nfrontend_ports; j++)
			if (g->frontend_ports[j].port == fp->port)
				ld_err(s, pline, it, "port",
				       "Port for TLS configuration must be unique within the "
				       "Gateway (also perPort[%zu])",
				       j);
		yaml_node_t *tls = ld_map(s, pn, it, "tls", true, &line);
		if (tls) {
			ld_join(sub, it, "tls");
			decode_tls_config(s, tls, sub, &g->meta, &fp->v);
		}
		g->nfrontend_ports++;
	}
}

/* spec.backendTLS.clientCertificateRef, where Gateway API v1.2-v1.3 had
 * what v1.4 moved to spec.tls.backend. */
static void decode_backend_tls_v1_2(struct session *s, yaml_node_t *n, struct ig_gateway *g)
{
	static const char *const fields[] = {"clientCertificateRef", NULL};
	int line;
	ld_fields(s, n, "spec.backendTLS", fields, NULL);
	yaml_node_t *ref = ld_map(s, n, "spec.backendTLS", "clientCertificateRef", false, &line);
	if (!ref)
		return;
	if (g->has_backend_client) {
		ld_err(s, line, "spec.backendTLS", "clientCertificateRef",
		       "given also in spec.tls.backend, which replaced it: keep one");
		return;
	}
	g->has_backend_client = true;
	g->backend_client_v1_2 = true;
	decode_cert_ref(s, ref, "spec.backendTLS.clientCertificateRef", &g->meta,
			&g->backend_client);
}

/* spec.allowedListeners: {namespaces: {from, selector}}, from default None. */
static void decode_allowed_listeners(struct session *s, yaml_node_t *n, struct ig_gateway *g)
{
	static const char *const fields[] = {"namespaces", NULL};
	static const char *const froms[] = {"All", "Selector", "Same", "None", NULL};
	int line;
	ld_fields(s, n, "spec.allowedListeners", fields, NULL);
	yaml_node_t *ns = ld_map(s, n, "spec.allowedListeners", "namespaces", false, &line);
	if (ns)
		decode_namespaces(s, ns, "spec.allowedListeners.namespaces", froms, IG_FROM_NONE,
				  "ListenerSets", &g->listeners_from, &g->has_listeners_selector,
				  &g->listeners_selector);
}

/* An AddressType: IPAddress, Hostname, NamedAddress, or a domain-prefixed
 * name ("example.com/kind"), as the CRD's pattern means it. */
static bool address_type_ok(const char *t)
{
	if (!strcmp(t, "IPAddress") || !strcmp(t, "Hostname") || !strcmp(t, "NamedAddress"))
		return true;
	const char *slash = strchr(t, '/');
	if (!slash || !slash[1] || !ld_dns_subdomain(t, (size_t)(slash - t)))
		return false;
	for (const char *p = slash + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/-._~%!$&'()*+,;=:", *p))
			return false;
	return true;
}

/* spec.addresses: at most 16 {type, value}; an IPAddress value must be an
 * IP, a Hostname value a hostname; values unique within their type. */
static void decode_addresses(struct session *s, yaml_node_t *seq, int line, struct ig_gateway *g)
{
	static const char *const fields[] = {"type", "value", NULL};
	ld_check_items(s, seq, line, "spec", "addresses", 0, 16);
	size_t n = ld_seq_len(seq);
	g->addresses = ld_alloc(s, (n ? n : 1) * sizeof *g->addresses);
	for (size_t i = 0; i < n; i++) {
		char path[LD_PATH];
		ld_item(path, "spec", "addresses", i);
		yaml_node_t *it = ld_seq_map(s, seq, i, path);
		if (!it)
			continue;
		ld_fields(s, it, path, fields, NULL);
		struct ig_gateway_address *a = &g->addresses[g->naddresses++];
		int tline, vline;
		a->line = ig_yaml_line(it);
		a->type = ld_str(s, it, path, "type", false, &tline);
		a->value = ld_str(s, it, path, "value", false, &vline);
		if (!a->type)
			a->type = "IPAddress";
		else if (strlen(a->type) > 253 || !address_type_ok(a->type))
			ld_err(
			    s, tline, path, "type",
			    "must be IPAddress, Hostname, NamedAddress or a domain-prefixed name "
			    "(example.com/kind), at most 253 characters");
		else if (strcmp(a->type, "IPAddress"))
			ld_warn(s, tline, path, "type",
				"infergate serves IPAddress addresses only: the Gateway is not "
				"accepted (UnsupportedAddress) and not served");
		if (!a->value)
			continue;
		ld_check_len(s, a->value, vline, path, "value", 0, 253);
		if (!*a->value) {
			a->value = NULL; /* "" is no value, as the API server has it */
			continue;
		}
		unsigned char buf[16];
		if (!strcmp(a->type, "IPAddress") && inet_pton(AF_INET, a->value, buf) != 1 &&
		    inet_pton(AF_INET6, a->value, buf) != 1)
			ld_err(s, vline, path, "value", "%s is not an IP address", a->value);
		if (!strcmp(a->type, "Hostname") && !ld_hostname_ok(a->value))
			ld_err(s, vline, path, "value", "%s is not a hostname", a->value);
		for (size_t j = 0; j + 1 < g->naddresses; j++) {
			const struct ig_gateway_address *b = &g->addresses[j];
			if (b->value && !strcmp(b->type, a->type) && !strcmp(b->value, a->value) &&
			    (!strcmp(a->type, "IPAddress") || !strcmp(a->type, "Hostname")))
				ld_err(s, vline, path, "value",
				       "%s values must be unique (%s is also on line %d)", a->type,
				       a->value, b->line);
		}
	}
}

/* spec.infrastructure (Gateway API v1.1+): labels and annotations for
 * the resources an implementation creates for the Gateway (infergate
 * creates none: read and checked, with nothing to put them on), and a
 * parametersRef to implementation-specific parameters, which infergate
 * has none of: such a Gateway is not accepted (InvalidParameters). */
static void decode_infrastructure(struct session *s, yaml_node_t *n, struct ig_gateway *g)
{
	static const char *const fields[] = {"labels", "annotations", "parametersRef", NULL};
	static const char *const ref_fields[] = {"group", "kind", "name", NULL};
	const char *pp = "spec.infrastructure";
	int line;
	ld_fields(s, n, pp, fields, NULL);
	yaml_node_t *labels = ld_map(s, n, pp, "labels", false, &line);
	if (labels) {
		size_t nl;
		ld_labels(s, labels, line, pp, "labels", &nl);
		if (nl > 8)
			ld_err(s, line, pp, "labels", "at most 8 labels");
	}
	yaml_node_t *ann = ld_map(s, n, pp, "annotations", false, &line);
	size_t na = ann ? ld_map_len(ann) : 0;
	if (na > 8)
		ld_err(s, line, pp, "annotations", "at most 8 annotations");
	for (size_t i = 0; i < na; i++) {
		yaml_node_pair_t *p = &ann->data.mapping.pairs.start[i];
		yaml_node_t *k = ld_node(s, p->key), *v = ld_node(s, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
			ld_err(s, ig_yaml_line(k), pp, "annotations",
			       "annotations must be string: string pairs");
			continue;
		}
		char *ks = ld_scalar(s, k);
		if (!ld_label_key_ok(ks))
			ld_err(s, ig_yaml_line(k), "spec.infrastructure.annotations", ks,
			       "invalid annotation key: up to 63 letters, digits, '-', '_' or '.', "
			       "optionally prefixed by a DNS subdomain and '/'");
		else if (strlen(ld_scalar(s, v)) > 4096)
			ld_err(s, ig_yaml_line(k), "spec.infrastructure.annotations", ks,
			       "a value of at most 4096 characters");
	}
	yaml_node_t *ref = ld_map(s, n, pp, "parametersRef", false, &line);
	if (ref) {
		const char *rp = "spec.infrastructure.parametersRef";
		int l;
		ld_fields(s, ref, rp, ref_fields, NULL);
		const char *group = ld_str(s, ref, rp, "group", true, &l);
		ld_check_group(s, group, l, rp, "group");
		g->params_kind = ld_str(s, ref, rp, "kind", true, &l);
		ld_check_kind(s, g->params_kind, l, rp, "kind");
		const char *name = ld_str(s, ref, rp, "name", true, &l);
		ld_check_len(s, name, l, rp, "name", 1, 253);
		if (g->params_kind)
			ld_warn(s, line, rp, NULL,
				"infergate takes no parameters (kind %s): the Gateway is not "
				"accepted (InvalidParameters) and not served",
				g->params_kind);
	}
}

static const char *const gateway_spec_fields[] = {
    "gatewayClassName", "listeners",	  "tls", "backendTLS", "allowedListeners",
    "addresses",	"infrastructure", NULL};
static const struct ld_unsupported gateway_spec_fields_unsupported[] = {
    {"defaultScope", "default Gateways are not implemented"},
    {NULL, NULL},
};

void ld_gateway(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	struct ig_gateway g = {.listeners_from = IG_FROM_NONE};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Gateway", &g.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	yaml_node_t *ls = NULL;
	if (spec) {
		ld_fields(s, spec, "spec", gateway_spec_fields, gateway_spec_fields_unsupported);
		g.class_name = ld_str(s, spec, "spec", "gatewayClassName", true, &line);
		ld_check_object_name(s, g.class_name, line, "spec", "gatewayClassName");
		ls = ld_seq(s, spec, "spec", "listeners", true, &line);
		int tline;
		yaml_node_t *tls = ld_map(s, spec, "spec", "tls", false, &tline);
		if (tls)
			decode_gateway_tls(s, tls, &g);
		yaml_node_t *btls = ld_map(s, spec, "spec", "backendTLS", false, &tline);
		if (btls)
			decode_backend_tls_v1_2(s, btls, &g);
		yaml_node_t *al = ld_map(s, spec, "spec", "allowedListeners", false, &tline);
		if (al)
			decode_allowed_listeners(s, al, &g);
		yaml_node_t *infra = ld_map(s, spec, "spec", "infrastructure", false, &tline);
		if (infra)
			decode_infrastructure(s, infra, &g);
		yaml_node_t *addrs = ld_seq(s, spec, "spec", "addresses", false, &tline);
		if (addrs)
			decode_addresses(s, addrs, tline, &g);
	}
	if (ls)
		g.listeners = decode_listeners(s, ls, line, &g.meta, &g.nlisteners);
	*LD_APPEND(s, K_GATEWAY, gateways) = g;
}

/* ---- ListenerSet (v1) and XListenerSet (v1alpha1) -------------------------------- */

void ld_listener_set(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const spec_fields[] = {"parentRef", "listeners", NULL};
	static const char *const parent_fields[] = {"group", "kind", "namespace", "name", NULL};
	struct ig_listener_set ls = {0};
	int line;
	bool x = !strncmp(api, "gateway.networking.x-k8s.io/", 28);
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, x ? "XListenerSet" : "ListenerSet", &ls.meta, false);
	ls.group = x ? "gateway.networking.x-k8s.io" : GATEWAY_GROUP;
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	yaml_node_t *lst = NULL;
	if (spec) {
		ld_fields(s, spec, "spec", spec_fields, NULL);
		yaml_node_t *pr = ld_map(s, spec, "spec", "parentRef", true, &line);
		if (pr) {
			const char *pp = "spec.parentRef";
			ld_fields(s, pr, pp, parent_fields, NULL);
			ls.parent_group = ld_str(s, pr, pp, "group", false, &line);
			ld_check_group(s, ls.parent_group, line, pp, "group");
			ls.parent_kind = ld_str(s, pr, pp, "kind", false, &line);
			ld_check_kind(s, ls.parent_kind, line, pp, "kind");
			ls.parent_ns = ld_str(s, pr, pp, "namespace", false, &line);
			ld_check_namespace(s, ls.parent_ns, line, pp, "namespace");
			ls.parent_name = ld_str(s, pr, pp, "name", true, &line);
			ld_check_object_name(s, ls.parent_name, line, pp, "name");
			if (!ls.parent_group)
				ls.parent_group = GATEWAY_GROUP;
			if (!ls.parent_kind)
				ls.parent_kind = "Gateway";
			if (!ls.parent_ns)
				ls.parent_ns = ls.meta.ns;
			if (strcmp(ls.parent_group, GATEWAY_GROUP) ||
			    strcmp(ls.parent_kind, "Gateway"))
				ld_warn(s, ig_yaml_line(pr), pp, NULL,
					"parent %s/%s is not a Gateway: the listeners attach to "
					"nothing",
					ls.parent_group, ls.parent_kind);
			else if (ls.parent_name)
				ld_ref(s, "Gateway", ls.parent_ns, ls.parent_name, ig_yaml_line(pr),
				       pp);
		}
		lst = ld_seq(s, spec, "spec", "listeners", true, &line);
	}
	if (lst)
		ls.listeners = decode_listeners(s, lst, line, &ls.meta, &ls.nlisteners);
	*LD_APPEND(s, K_LISTENER_SET, listener_sets) = ls;
}

/* ---- HTTPRoute: parents, matches --------------------------------------------- */

static void decode_parent(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *m, struct ig_parent_ref *r)
{
	static const char *const fields[] = {"group",	    "kind", "namespace", "name",
					     "sectionName", "port", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	r->group = ld_str(s, n, path, "group", false, &line);
	ld_check_group(s, r->group, line, path, "group");
	r->kind = ld_str(s, n, path, "kind", false, &line);
	ld_check_kind(s, r->kind, line, path, "kind");
	r->ns = ld_str(s, n, path, "namespace", false, &line);
	ld_check_namespace(s, r->ns, line, path, "namespace");
	r->name = ld_str(s, n, path, "name", true, &line);
	ld_check_object_name(s, r->name, line, path, "name");
	r->section_name = ld_str(s, n, path, "sectionName", false, &line);
	if (r->section_name && !ld_dns_subdomain(r->section_name, strlen(r->section_name)))
		ld_err(s, line, path, "sectionName", "must be a lowercase RFC 1123 subdomain");
	ld_int_range(s, n, path, "port", false, 1, 65535, &r->port);
	if (!r->group)
		r->group = GATEWAY_GROUP;
	if (!r->kind)
		r->kind = "Gateway";
	r->ns_written = r->ns && *r->ns;
	if (!r->ns_written)
		r->ns = m->ns;
	r->line = ig_yaml_line(n);
	if (!strcmp(r->group, GATEWAY_GROUP) && !strcmp(r->kind, "Gateway"))
		ld_ref(s, "Gateway", r->ns, r->name, ig_yaml_line(n), path);
	else if (!strcmp(r->group, GATEWAY_GROUP) && !strcmp(r->kind, "ListenerSet"))
		ld_ref(s, "ListenerSet", r->ns, r->name, ig_yaml_line(n), path);
	else if (!strcmp(r->group, "gateway.networking.x-k8s.io") &&
		 !strcmp(r->kind, "XListenerSet"))
		ld_ref(s, "XListenerSet", r->ns, r->name, ig_yaml_line(n), path);
	else
		ld_warn(s, ig_yaml_line(n), path, NULL,
			"parent %s%s%s is not supported: only Gateways and ListenerSets of "
			"gateway.networking.k8s.io (and XListenerSets of "
			"gateway.networking.x-k8s.io) take routes",
			r->group, *r->group ? "/" : "", r->kind);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The CRD's two CEL rules on parentRefs naming the same parent. A parent
 * is the same when group, kind and name are, and the namespace both
 * absent (or "") or both written and equal: {name: gw} and {name: gw,
 * namespace: default} are two parents for these rules, though both attach
 * the route to the same Gateway (once: attachment is per listener). */
static void check_parents(struct session *s, yaml_node_t *ps, const struct ig_httproute *rt)
{
	char path[LD_PATH];
	for (size_t i = 0; i < rt->nparents; i++) {
		const struct ig_parent_ref *a = &rt->parents[i];
		for (size_t j = 0; j < i; j++) {
			const struct ig_parent_ref *b = &rt->parents[j];
			if (!a->name || !b->name || strcmp(a->name, b->name) ||
			    !same_str(a->group, b->group) || !same_str(a->kind, b->kind) ||
			    a->ns_written != b->ns_written || !same_str(a->ns, b->ns))
				continue;
			ld_item(path, "spec", "parentRefs", i);
			int line = ig_yaml_line(ld_seq_item(s, ps, i));
			bool a_any = !a->section_name && !a->port,
			     b_any = !b->section_name && !b->port;
			if (a_any || b_any || (!a->section_name) != (!b->section_name) ||
			    (!a->port) != (!b->port))
				ld_err(s, line, "spec", "parentRefs",
				       "sectionName or port must be specified when parentRefs "
				       "includes 2 or more references to the same parent");
			else if (same_str(a->section_name, b->section_name) && a->port == b->port)
				ld_err(s, line, "spec", "parentRefs",
				       "sectionName or port must be unique when parentRefs "
				       "includes 2 or more references to the same parent");
			else
				continue;
			return;
		}
	}
}

/* CEL rules of the Gateway API for Exact and PathPrefix values. */
static const char *path_value_problem(const char *v)
{
	static const char *const bad[] = {"//", "/./", "/../", "%2f", "%2F", "#", NULL};
	static const char ok[] = "-/._~!$&'()*+,;=:@%";
	size_t len = strlen(v);
	if (v[0] != '/')
		return "must be an absolute path starting with '/'";
	for (const char *const *b = bad; *b; b++)
		if (strstr(v, *b))
			return "must not contain '//', '/./', '/../', '%2f', '%2F' or '#'";
	if ((len >= 3 && !strcmp(v + len - 3, "/..")) || (len >= 2 && !strcmp(v + len - 2, "/.")))
		return "must not end with '/..' or '/.'";
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9')) &&
		    !strchr(ok, *p))
			return "contains a character that is not allowed in a URL path";
	return NULL;
}

/* RegularExpression values are POSIX extended expressions, compiled as the
 * router compiles them (gateway/route.c): one that does not compile is an
 * error here rather than a rule that never matches. */
/* glibc's regcomp copies the tree of a repeated expression once per
 * repetition, so stacked repetitions ("a++++", "(a{1,200}){1,200}") take
 * memory exponential in a short pattern: in the gateway, once per worker.
 * POSIX leaves adjacent duplication symbols undefined anyway; bounds are
 * held to 255 (RE_DUP_MAX's POSIX minimum), and their product with 2 for
 * each group repeated with + ("((a)+)+") to 1000. */
/* The last character of the bracket expression at p ("[]a]", "[[:alpha:]]"):
 * a ']' first is literal, and [: :], [. .] and [= =] hold their own ']'. */
static const char *bracket_end(const char *p)
{
	const char *q = p + 1;
	q += *q == '^';
	q += *q == ']';
	for (; *q && *q != ']'; q++) {
		if (q[0] == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
			const char *close = strchr(q + 2, ']');
			if (close)
				q = close;
		}
	}
	return *q ? q : q - 1;
}

static const char *regex_shape_problem(const char *v)
{
	unsigned long product = 1;
	bool after_quant = false;
	for (const char *p = v; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			after_quant = false;
			continue;
		}
		if (*p == '[') {
			p = bracket_end(p);
			after_quant = false;
			continue;
		}
		bool quant = *p == '*' || *p == '+' || *p == '?' || *p == '{';
		if (quant && after_quant)
			return "repeats a repetition (such as ++ or *{2}), which POSIX leaves "
			       "undefined";
		/* X+ is compiled as X X*: a group repeated so, twice. */
		if (*p == '+' && p > v && p[-1] == ')' && (product *= 2) > 1000)
			return "has repetitions whose product is over 1000";
		if (*p == '{') {
			char *end;
			unsigned long lo = strtoul(p + 1, &end, 10), hi = lo;
			if (*end == ',')
				hi = end[1] == '}' ? lo : strtoul(end + 1, &end, 10);
			if (lo > 255 || hi > 255)
				return "has a repetition bound over 255";
			product *= (hi ? hi : 1);
			if (product > 1000)
				return "has repetitions whose product is over 1000";
			const char *close = strchr(p, '}');
			if (close)
				p = close;
		}
		after_quant = quant;
	}
	return NULL;
}

static void check_regex(struct session *s, const char *v, int line, const char *parent,
			const char *key)
{
	regex_t re;
	char why[128];
	if (!v)
		return;
	const char *shape = regex_shape_problem(v);
	if (shape) {
		ld_err(s, line, parent, key, "must be a POSIX extended regular expression: it %s",
		       shape);
		return;
	}
	int rc = regcomp(&re, v, REG_EXTENDED);
	if (rc == 0) {
		regfree(&re);
		return;
	}
	regerror(rc, NULL, why, sizeof why);
	ld_err(s, line, parent, key, "must be a POSIX extended regular expression: %s", why);
}

static void decode_path(struct session *s, yaml_node_t *n, const char *parent,
			struct ig_route_match *m)
{
	static const char *const fields[] = {"type", "value", NULL};
	static const char *const types[] = {"Exact", "PathPrefix", "RegularExpression", NULL};
	char path[LD_PATH];
	int line;
	ld_join(path, parent, "path");
	ld_fields(s, n, path, fields, NULL);
	char *type = ld_str(s, n, path, "type", false, &line);
	ld_check_enum(s, type, line, path, "type", types);
	if (type && !strcmp(type, "Exact"))
		m->path_type = IG_PATH_EXACT;
	else if (type && !strcmp(type, "RegularExpression"))
		m->path_type = IG_PATH_REGEX;
	char *v = ld_str(s, n, path, "value", false, &line);
	if (v) {
		m->path = v;
		ld_check_len(s, v, line, path, "value", 0, 1024);
		const char *why = m->path_type == IG_PATH_REGEX ? NULL : path_value_problem(v);
		if (why)
			ld_err(s, line, path, "value", "%s", why);
		if (m->path_type == IG_PATH_REGEX)
			check_regex(s, v, line, path, "value");
	}
}

static struct ig_header_match *decode_value_matches(struct session *s, yaml_node_t *seq,
						    const char *parent, const char *key,
						    size_t maxval, size_t *n)
{
	static const char *const fields[] = {"type", "name", "value", NULL};
	static const char *const types[] = {"Exact", "RegularExpression", NULL};
	char path[LD_PATH], base[LD_PATH];
	int line;
	ld_join(base, parent, key);
	*n = ld_seq_len(seq);
	struct ig_header_match *hm = ld_alloc(s, (*n + 1) * sizeof(*hm));
	for (size_t i = 0; i < *n; i++) {
		ld_item(path, base, NULL, i);
		yaml_node_t *h = ld_seq_map(s, seq, i, path);
		if (!h)
			continue;
		ld_fields(s, h, path, fields, NULL);
		char *type = ld_str(s, h, path, "type", false, &line);
		ld_check_enum(s, type, line, path, "type", types);
		hm[i].type =
		    type && !strcmp(type, "RegularExpression") ? IG_MATCH_REGEX : IG_MATCH_EXACT;
		hm[i].name = ld_str(s, h, path, "name", true, &line);
		if (hm[i].name && !ld_header_name_ok(hm[i].name))
			ld_err(s, line, path, "name",
			       "must be 1 to 256 token characters (letters, digits, "
			       "!#$%%&'*+-.^_`|~)");
		hm[i].value = ld_str(s, h, path, "value", true, &line);
		ld_check_len(s, hm[i].value, line, path, "value", 1, maxval);
		if (hm[i].type == IG_MATCH_REGEX)
			check_regex(s, hm[i].value, line, path, "value");
	}
	return hm;
}

/* ---- GRPCRoute: matches ------------------------------------------------------- */

/* The CRD's patterns for Exact: a service ^(?i)\.?[a-z_][a-z_0-9]*
 * (\.[a-z_][a-z_0-9]*)*$, a method ^[A-Za-z_][A-Za-z_0-9]*$. */
static bool grpc_ident(const char *p, const char **end)
{
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
		return false;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
	       (*p >= '0' && *p <= '9'))
		p++;
	*end = p;
	return true;
}

static bool grpc_service_ok(const char *v)
{
	const char *p = v + (*v == '.');
	for (;;) {
		if (!grpc_ident(p, &p))
			return false;
		if (!*p)
			return true;
		if (*p++ != '.')
			return false;
	}
}

static bool grpc_method_ok(const char *v)
{
	const char *end;
	return grpc_ident(v, &end) && !*end;
}

/* The path expression a method match stands for, in the arena. */
static void grpc_path(struct session *s, struct ig_route_match *m)
{
	const struct ig_grpc_method_match *g = &m->grpc;
	bool svc = g->service && *g->service, meth = g->method && *g->method;
	char buf[2 * 1024 + 64];
	if (!g->regex && svc && meth) {
		m->path_type = IG_PATH_EXACT;
		snprintf(buf, sizeof buf, "/%s/%s", g->service, g->method);
	} else if (!g->regex && svc) {
		m->path_type = IG_PATH_PREFIX;
		snprintf(buf, sizeof buf, "/%s/", g->service);
	} else if (!g->regex) {
		/* A method of any service: its name has no character that
		 * means anything to a regular expression. */
		m->path_type = IG_PATH_REGEX;
		snprintf(buf, sizeof buf, "/[^/]+/%s", meth ? g->method : "[^/]+");
	} else {
		m->path_type = IG_PATH_REGEX;
		snprintf(buf, sizeof buf, "/(%s)/(%s)", svc ? g->service : "[^/]+",
			 meth ? g->method : "[^/]+");
	}
	m->path = ld_strdup(s, buf);
}

static void decode_grpc_method(struct session *s, yaml_node_t *n, const char *path,
			       struct ig_route_match *m)
{
	static const char *const fields[] = {"type", "service", "method", NULL};
	static const char *const types[] = {"Exact", "RegularExpression", NULL};
	struct ig_grpc_method_match *g = &m->grpc;
	int line, sline, mline;
	ld_fields(s, n, path, fields, NULL);
	char *type = ld_str(s, n, path, "type", false, &line);
	ld_check_enum(s, type, line, path, "type", types);
	g->set = true;
	g->regex = type && !strcmp(type, "RegularExpression");
	g->service = ld_str(s, n, path, "service", false, &sline);
	g->method = ld_str(s, n, path, "method", false, &mline);
	ld_check_len(s, g->service, sline, path, "service", 0, 1024);
	ld_check_len(s, g->method, mline, path, "method", 0, 1024);
	bool svc = g->service && *g->service, meth = g->method && *g->method;
	if (!svc && !meth) {
		ld_err(s, ig_yaml_line(n), path, NULL,
		       "One or both of 'service' or 'method' must be specified");
		return;
	}
	if (!g->regex && svc && !grpc_service_ok(g->service))
		ld_err(s, sline, path, "service",
		       "service must only contain valid characters (matching "
		       "^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)");
	if (!g->regex && meth && !grpc_method_ok(g->method))
		ld_err(s, mline, path, "method",
		       "method must only contain valid characters (matching "
		       "^[A-Za-z_][A-Za-z_0-9]*$)");
	grpc_path(s, m);
	if (g->regex) {
		/* POSIX extended expressions, as HTTPRoute's: one that does
		 * not compile is an error here rather than a rule that never
		 * matches. */
		regex_t re;
		if (regex_shape_problem(m->path) ||
		    regcomp(&re, m->path, REG_EXTENDED | REG_NOSUB) != 0)
			ld_err(s, line, path, NULL,
			       "service and method must be POSIX extended regular expressions");
		else
			regfree(&re);
	}
}

/* ---- HTTPRoute and GRPCRoute: a match ------------------------------------------ */

/* An HTTPRouteMatch, or a GRPCRouteMatch (its method, then headers). */
static void decode_match(struct session *s, yaml_node_t *n, const char *path, bool grpc,
			 struct ig_route_match *m)
{
	static const char *const fields[] = {"path", "headers", "queryParams", "method", NULL};
	static const char *const grpc_fields[] = {"method", "headers", NULL};
	static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",   "DELETE",
					      "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};
	int line;
	m->path_type = IG_PATH_PREFIX;
	m->path = "/";
	if (n->type != YAML_MAPPING_NODE) {
		ld_err(s, ig_yaml_line(n), path, NULL, "must be an object");
		return;
	}
	ld_fields(s, n, path, grpc ? grpc_fields : fields, NULL);
	if (grpc) {
		yaml_node_t *meth = ld_map(s, n, path, "method", false, &line);
		if (meth) {
			char sub[LD_PATH];
			ld_join(sub, path, "method");
			decode_grpc_method(s, meth, sub, m);
		}
	} else {
		yaml_node_t *p = ld_map(s, n, path, "path", false, &line);
		if (p)
			decode_path(s, p, path, m);
	}
	yaml_node_t *h = ld_seq(s, n, path, "headers", false, &line);
	if (h) {
		ld_check_items(s, h, line, path, "headers", 0, 16);
		m->headers = decode_value_matches(s, h, path, "headers", 4096, &m->nheaders);
	}
	if (grpc)
		return;
	yaml_node_t *q = ld_seq(s, n, path, "queryParams", false, &line);
	if (q) {
		ld_check_items(s, q, line, path, "queryParams", 0, 16);
		m->query = decode_value_matches(s, q, path, "queryParams", 1024, &m->nquery);
	}
	m->method = ld_str(s, n, path, "method", false, &line);
	ld_check_enum(s, m->method, line, path, "method", methods);
}

/* ---- HTTPRoute: filters ------------------------------------------------------- */

/* The CRD's pattern for header values, ^[!-~]+([\t ]?[!-~]+)*$: visible
 * ASCII words separated by single spaces or tabs. It keeps CR and LF (and
 * so header injection) out. */
static bool header_value_ok(const char *v)
{
	bool gap = true; /* at the start, or just after a space */
	if (!*v)
		return false;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c >= '!' && c <= '~') {
			gap = false;
		} else if ((c == ' ' || c == '\t') && !gap) {
			gap = true;
		} else {
			return false;
		}
	}
	return !gap;
}

static bool name_listed(const struct ig_kv *kv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(kv[i].key, name))
			return true;
	return false;
}

static struct ig_kv *decode_header_values(struct session *s, yaml_node_t *mod, const char *path,
					  const char *key, size_t *n)
{
	static const char *const fields[] = {"name", "value", NULL};
	char it[LD_PATH];
	int line;
	yaml_node_t *seq = ld_seq(s, mod, path, key, false, &line);
	*n = 0;
	if (!seq)
		return NULL;
	ld_check_items(s, seq, line, path, key, 0, 16);
	struct ig_kv *kv = ld_alloc(s, (ld_seq_len(seq) + 1) * sizeof(*kv));
	for (size_t i = 0; i < ld_seq_len(seq); i++) {
		ld_item(it, path, key, i);
		yaml_node_t *h = ld_seq_map(s, seq, i, it);
		if (!h)
			continue;
		ld_fields(s, h, it, fields, NULL);
		char *name = ld_str(s, h, it, "name", true, &line);
		if (name && !ld_header_name_ok(name))
			ld_err(s, line, it, "name",
			       "must be 1 to 256 token characters (letters, digits, "
			       "!#$%%&'*+-.^_`|~)");
		else if (name && name_listed(kv, *n, name))
			ld_err(s, line, it, "name",
			       "header \"%s\" is listed twice (names are case-insensitive)", name);
		char *value = ld_str(s, h, it, "value", true, &line);
		if (value && strlen(value) > 4096)
			ld_err(s, line, it, "value", "must be at most 4096 characters");
		else if (value && !header_value_ok(value))
			ld_err(s, line, it, "value",
			       "must be visible ASCII characters with single spaces or tabs "
			       "between them (pattern ^[!-~]+([\\t ]?[!-~]+)*$)");
		if (name && value)
			kv[(*n)++] = (struct ig_kv){name, value};
	}
	return kv;
}

static void decode_header_modifier(struct session *s, yaml_node_t *n, const char *path,
				   struct ig_header_modifier *h)
{
	static const char *const fields[] = {"set", "add", "remove", NULL};
	char it[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	h->set = decode_header_values(s, n, path, "set", &h->nset);
	h->add = decode_header_values(s, n, path, "add", &h->nadd);
	h->remove = ld_strings(s, n, path, "remove", &h->nremove, &line);
	if (h->nremove > 16)
		ld_err(s, line, path, "remove", "must have at most 16 items");
	for (size_t i = 0; i < h->nremove; i++) {
		ld_item(it, path, "remove", i);
		if (!ld_header_name_ok(h->remove[i]))
			ld_err(s, line, it, NULL,
			       "must be 1 to 256 token characters (letters, digits, "
			       "!#$%%&'*+-.^_`|~)");
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(h->remove[j], h->remove[i]))
				ld_err(s, line, it, NULL, "header \"%s\" is listed twice",
				       h->remove[i]);
	}
}

/* ReplaceFullPath and ReplacePrefixMatch values go into the request line:
 * nothing that would end it or start a header. */
static bool path_text_ok(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || *v == 0x7f)
			return false;
	return true;
}

static void decode_path_modifier(struct session *s, yaml_node_t *n, const char *path,
				 struct ig_path_modifier *pm)
{
	static const char *const fields[] = {"type", "replaceFullPath", "replacePrefixMatch", NULL};
	static const char *const types[] = {"ReplaceFullPath", "ReplacePrefixMatch", NULL};
	int line, fline, pline;
	ld_fields(s, n, path, fields, NULL);
	char *type = ld_str(s, n, path, "type", true, &line);
	ld_check_enum(s, type, line, path, "type", types);
	/* A quoted "" is a valid replacePrefixMatch; a null one is absent. */
	char *fv = ld_str(s, n, path, "replaceFullPath", false, &fline);
	char *pv = ld_str(s, n, path, "replacePrefixMatch", false, &pline);
	bool is_full = type && !strcmp(type, "ReplaceFullPath");
	bool is_prefix = type && !strcmp(type, "ReplacePrefixMatch");
	if (is_full && !fv)
		ld_err(s, line, path, NULL,
		       "replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
	if (fv && !is_full)
		ld_err(s, fline, path, NULL,
		       "type must be 'ReplaceFullPath' when replaceFullPath is set");
	if (is_prefix && !pv)
		ld_err(s, line, path, NULL,
		       "replacePrefixMatch must be specified when type is set to "
		       "'ReplacePrefixMatch'");
	if (pv && !is_prefix)
		ld_err(s, pline, path, NULL,
		       "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
	const char *v = is_full ? fv : is_prefix ? pv : NULL;
	const char *key = is_full ? "replaceFullPath" : "replacePrefixMatch";
	int vline = is_full ? fline : pline;
	if (v && strlen(v) > 1024)
		ld_err(s, vline, path, key, "must be at most 1024 characters");
	else if (v && !path_text_ok(v))
		ld_err(s, vline, path, key, "must not contain spaces or control characters");
	if (v) {
		pm->type = is_full ? IG_PATH_MOD_FULL : IG_PATH_MOD_PREFIX;
		pm->value = (char *)v;
	}
}

static char *decode_precise_hostname(struct session *s, yaml_node_t *n, const char *path)
{
	int line;
	char *h = ld_str(s, n, path, "hostname", false, &line);
	if (h && (!ld_dns_subdomain(h, strlen(h))))
		ld_err(s, line, path, "hostname",
		       "must be a lowercase DNS name without a wildcard (PreciseHostname)");
	return h;
}

static void decode_rewrite(struct session *s, yaml_node_t *n, const char *path,
			   struct ig_url_rewrite *r)
{
	static const char *const fields[] = {"hostname", "path", NULL};
	char sub[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	r->hostname = decode_precise_hostname(s, n, path);
	yaml_node_t *p = ld_map(s, n, path, "path", false, &line);
	if (p) {
		ld_join(sub, path, "path");
		decode_path_modifier(s, p, sub, &r->path);
	}
}

static void decode_redirect(struct session *s, yaml_node_t *n, const char *path,
			    struct ig_redirect *r)
{
	static const char *const fields[] = {"scheme", "hostname",   "path",
					     "port",   "statusCode", NULL};
	static const char *const schemes[] = {"http", "https", NULL};
	char sub[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	r->scheme = ld_str(s, n, path, "scheme", false, &line);
	ld_check_enum(s, r->scheme, line, path, "scheme", schemes);
	r->hostname = decode_precise_hostname(s, n, path);
	yaml_node_t *p = ld_map(s, n, path, "path", false, &line);
	if (p) {
		ld_join(sub, path, "path");
		decode_path_modifier(s, p, sub, &r->path);
	}
	ld_int_range(s, n, path, "port", false, 1, 65535, &r->port);
	r->status_code = 302;
	long long code;
	if (ld_int(s, n, path, "statusCode", false, &line, &code)) {
		if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
			ld_err(s, line, path, "statusCode",
			       "must be one of 301, 302, 303, 307, 308");
		else
			r->status_code = (int)code;
	}
}

/* An origin of allowOrigins: "*", or http(s)://host[:port] where the host
 * is "*", or a DNS name that may start with the "*." wildcard (the CRD's
 * CORSOrigin). */
static bool cors_origin_ok(const char *o)
{
	if (!strcmp(o, "*"))
		return true;
	const char *host = !strncmp(o, "http://", 7)	? o + 7
			   : !strncmp(o, "https://", 8) ? o + 8
							: NULL;
	if (!host)
		return false;
	const char *colon = strchr(host, ':');
	size_t hlen = colon ? (size_t)(colon - host) : strlen(host);
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || port < 1 || port > 65535 || colon[1] == '+' ||
		    colon[1] == '-')
			return false;
	}
	if (hlen == 1 && host[0] == '*')
		return true;
	if (hlen > 2 && host[0] == '*' && host[1] == '.')
		host += 2, hlen -= 2;
	if (hlen == 0)
		return false;
	for (size_t i = 0; i < hlen; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
		      (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || host[i] == '_' ||
		      host[i] == '.'))
			return false;
	return true;
}

/* A list of the CORS filter: at most max items, "*" only alone, each
 * passing ok (when given). */
static char **decode_cors_list(struct session *s, yaml_node_t *n, const char *path, const char *key,
			       size_t max, bool (*ok)(const char *), const char *what,
			       size_t *count)
{
	int line;
	char **v = ld_strings(s, n, path, key, count, &line);
	if (!v)
		return NULL;
	if (*count > max)
		ld_err(s, line, path, key, "must have at most %zu items", max);
	for (size_t i = 0; i < *count; i++) {
		if (!strcmp(v[i], "*")) {
			if (*count > 1)
				ld_err(s, line, path, key,
				       "\"*\" must be the only item when it is given");
		} else if (ok && !ok(v[i])) {
			ld_err(s, line, path, key, "\"%s\" is not %s", v[i], what);
		}
		for (size_t k = 0; k < i; k++)
			if (!strcasecmp(v[k], v[i]))
				ld_err(s, line, path, key, "\"%s\" is listed twice", v[i]);
	}
	return v;
}

static bool cors_method_ok(const char *m)
{
	static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",   "DELETE",
					      "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};
	return ld_one_of(m, methods);
}

static void decode_cors(struct session *s, yaml_node_t *n, const char *path, struct ig_cors *c)
{
	static const char *const fields[] = {"allowOrigins",
					     "allowCredentials",
					     "allowMethods",
					     "allowHeaders",
					     "exposeHeaders",
					     "maxAge",
					     NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	c->origins = decode_cors_list(s, n, path, "allowOrigins", 64, cors_origin_ok,
				      "\"*\" or http(s)://host[:port]", &c->norigins);
	c->methods = decode_cors_list(s, n, path, "allowMethods", 9, cors_method_ok,
				      "an HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, "
				      "OPTIONS, TRACE, PATCH)",
				      &c->nmethods);
	c->allow_headers = decode_cors_list(s, n, path, "allowHeaders", 64, ld_header_name_ok,
					    "a header name", &c->nallow_headers);
	c->expose_headers = decode_cors_list(s, n, path, "exposeHeaders", 64, ld_header_name_ok,
					     "a header name", &c->nexpose_headers);
	ld_bool(s, n, path, "allowCredentials", &line, &c->credentials);
	c->max_age = 5;
	ld_int_range(s, n, path, "maxAge", false, 1, INT32_MAX, &c->max_age);
}

static const char *const backend_object_fields[] = {"group",	 "kind", "name",
						    "namespace", "port", NULL};

static void decode_backend_object(struct session *s, yaml_node_t *n, const char *path,
				  const struct ig_meta *m, struct ig_backend_ref *b);

static void decode_mirror(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *m, struct ig_mirror *mi)
{
	static const char *const fields[] = {"backendRef", "percent", "fraction", NULL};
	static const char *const fraction_fields[] = {"numerator", "denominator", NULL};
	char sub[LD_PATH];
	int line, pline;
	ld_fields(s, n, path, fields, NULL);
	mi->numerator = mi->denominator = 100;
	mi->backend = ld_alloc(s, sizeof(*mi->backend));
	yaml_node_t *b = ld_map(s, n, path, "backendRef", true, &line);
	if (b) {
		ld_join(sub, path, "backendRef");
		ld_fields(s, b, sub, backend_object_fields, NULL);
		decode_backend_object(s, b, sub, m, mi->backend);
	}
	int percent;
	bool has_percent = ld_get(s, n, "percent", &pline) != NULL;
	if (ld_int_range(s, n, path, "percent", false, 0, 100, &percent))
		mi->numerator = (uint32_t)percent;
	yaml_node_t *f = ld_map(s, n, path, "fraction", false, &line);
	if (!f)
		return;
	if (has_percent)
		ld_err(
		    s, line, path, NULL,
		    "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter");
	ld_join(sub, path, "fraction");
	ld_fields(s, f, sub, fraction_fields, NULL);
	int num = 0, den = 100;
	bool ok = ld_int_range(s, f, sub, "numerator", true, 0, INT32_MAX, &num);
	if (ld_get(s, f, "denominator", &line))
		ok &= ld_int_range(s, f, sub, "denominator", false, 1, INT32_MAX, &den);
	if (ok && num > den)
		ld_err(s, ig_yaml_line(f), sub, NULL,
		       "numerator must be less than or equal to denominator");
	mi->numerator = (uint32_t)num;
	mi->denominator = (uint32_t)den;
}

static const struct {
	const char *type;
	const char *field;
	const char *unsupported;
} filter_types[] = {
    {"RequestHeaderModifier", "requestHeaderModifier", NULL},
    {"ResponseHeaderModifier", "responseHeaderModifier", NULL},
    {"URLRewrite", "urlRewrite", NULL},
    {"RequestRedirect", "requestRedirect", NULL},
    {"RequestMirror", "requestMirror", NULL},
    {"ExtensionRef", "extensionRef", NULL},
    {"CORS", "cors", NULL},
    {"ExternalAuth", "externalAuth", "the ExternalAuth filter is not implemented"},
};
#define NFILTER_TYPES (sizeof filter_types / sizeof filter_types[0])

static const char *const filter_fields[] = {"type",
					    "requestHeaderModifier",
					    "responseHeaderModifier",
					    "urlRewrite",
					    "requestRedirect",
					    "requestMirror",
					    "extensionRef",
					    "cors",
					    "externalAuth",
					    NULL};

/* An ExtensionRef (LocalObjectReference): valid, but infergate has no
 * filter kinds, so it cannot resolve; the Gateway API wants the requests
 * the filter would process to fail rather than skip it (gateway/listener.c
 * answers 500), which is what the warning says. */
static void decode_extension_ref(struct session *s, yaml_node_t *n, const char *path,
				 struct ig_extension_ref *e)
{
	static const char *const fields[] = {"group", "kind", "name", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	e->group = ld_str(s, n, path, "group", true, &line);
	ld_check_group(s, e->group, line, path, "group");
	e->kind = ld_str(s, n, path, "kind", true, &line);
	ld_check_kind(s, e->kind, line, path, "kind");
	e->name = ld_str(s, n, path, "name", true, &line);
	ld_check_object_name(s, e->name, line, path, "name");
	if (e->kind && e->name)
		ld_warn(s, ig_yaml_line(n), path, NULL,
			"%s \"%s\" (group \"%s\") cannot be resolved: infergate has no filter "
			"extensions, so requests this filter would process are answered 500 "
			"(ResolvedRefs=False, InvalidKind)",
			e->kind, e->name, e->group ? e->group : "");
}

/* Decodes one filter; returns the index of its type in filter_types, or
 * -1 when it is unusable (already reported). */
static int decode_filter(struct session *s, yaml_node_t *n, const char *path,
			 const struct ig_meta *m, struct ig_filter *f)
{
	int line;
	ld_fields(s, n, path, filter_fields, NULL);
	f->line = ig_yaml_line(n);
	char *type = ld_str(s, n, path, "type", true, &line);
	int t = -1;
	for (size_t i = 0; type && i < NFILTER_TYPES; i++)
		if (!strcmp(type, filter_types[i].type))
			t = (int)i;
	/* GRPCRoute's filters are the two header modifiers, RequestMirror
	 * and ExtensionRef. */
	bool grpc = m->kind && !strcmp(m->kind, "GRPCRoute");
	if (grpc && t >= 0 && t != 0 && t != 1 && t != 4 && t != 5)
		t = -1;
	if (type && t < 0 && grpc)
		ld_err(s, line, path, "type",
		       "must be one of RequestHeaderModifier, ResponseHeaderModifier, "
		       "RequestMirror, ExtensionRef");
	else if (type && t < 0)
		ld_err(
		    s, line, path, "type",
		    "must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, "
		    "RequestRedirect, URLRewrite, ExtensionRef, CORS, ExternalAuth");
	/* filter.<field> must be set for its type and nil for the others. */
	for (size_t i = 0; i < NFILTER_TYPES; i++) {
		int fline;
		bool has = ld_get(s, n, filter_types[i].field, &fline) != NULL;
		if (has && (int)i != t)
			ld_err(s, fline, path, NULL,
			       "filter.%s must be nil if the filter.type is not %s",
			       filter_types[i].field, filter_types[i].type);
		else if (!has && (int)i == t)
			ld_err(s, line, path, NULL,
			       "filter.%s must be specified for %s filter.type",
			       filter_types[i].field, filter_types[i].type);
	}
	if (t >= 0 && filter_types[t].unsupported) {
		ld_err(s, line, path, "type", "not supported by infergate: %s",
		       filter_types[t].unsupported);
		return -1;
	}
	if (t < 0)
		return -1;
	char sub[LD_PATH];
	ld_join(sub, path, filter_types[t].field);
	yaml_node_t *body = ld_map(s, n, path, filter_types[t].field, false, &line);
	if (!body)
		return t;
	switch (t) {
	case 0:
	case 1:
		f->type =
		    t == 0 ? IG_FILTER_REQUEST_HEADER_MODIFIER : IG_FILTER_RESPONSE_HEADER_MODIFIER;
		decode_header_modifier(s, body, sub, &f->u.headers);
		break;
	case 2:
		f->type = IG_FILTER_URL_REWRITE;
		decode_rewrite(s, body, sub, &f->u.rewrite);
		break;
	case 3:
		f->type = IG_FILTER_REQUEST_REDIRECT;
		decode_redirect(s, body, sub, &f->u.redirect);
		break;
	case 4:
		f->type = IG_FILTER_REQUEST_MIRROR;
		decode_mirror(s, body, sub, m, &f->u.mirror);
		break;
	case 5:
		f->type = IG_FILTER_EXTENSION_REF;
		decode_extension_ref(s, body, sub, &f->u.ext);
		break;
	case 6:
		f->type = IG_FILTER_CORS;
		decode_cors(s, body, sub, &f->u.cors);
		break;
	}
	return t;
}

/* The CRD's list rules: RequestRedirect and URLRewrite exclude each other;
 * every type but RequestMirror at most once. */
static struct ig_filter *decode_filters(struct session *s, yaml_node_t *owner, const char *path,
					const struct ig_meta *m, size_t *n)
{
	char it[LD_PATH];
	int line;
	size_t count[NFILTER_TYPES] = {0};
	yaml_node_t *seq = ld_seq(s, owner, path, "filters", false, &line);
	*n = 0;
	if (!seq)
		return NULL;
	ld_check_items(s, seq, line, path, "filters", 0, 16);
	/* Filters stay at their list index, even those in error (a load with
	 * errors returns no config): later messages name them by index. */
	struct ig_filter *fs = ld_alloc(s, (ld_seq_len(seq) + 1) * sizeof(*fs));
	*n = ld_seq_len(seq);
	for (size_t i = 0; i < *n; i++) {
		ld_item(it, path, "filters", i);
		yaml_node_t *f = ld_seq_map(s, seq, i, it);
		int t = f ? decode_filter(s, f, it, m, &fs[i]) : -1;
		if (t >= 0)
			count[t]++;
	}
	char fpath[LD_PATH];
	ld_join(fpath, path, "filters");
	if (count[2] && count[3])
		ld_err(s, line, fpath, NULL,
		       "May specify either httpRouteFilterRequestRedirect or "
		       "httpRouteFilterRequestRewrite, but not both");
	/* RequestMirror and ExtensionRef may repeat. */
	for (size_t t = 0; t < NFILTER_TYPES; t++)
		if (t != 4 && t != 5 && count[t] > 1)
			ld_err(s, line, fpath, NULL, "%s filter cannot be repeated",
			       filter_types[t].type);
	return fs;
}

/* ---- HTTPRoute: backendRefs, rules ------------------------------------------- */

static const char *const backend_ref_fields[] = {"group", "kind",   "name",    "namespace",
						 "port",  "weight", "filters", NULL};

/* A BackendObjectReference (backendRefs[] and requestMirror.backendRef). */
static void decode_backend_object(struct session *s, yaml_node_t *n, const char *path,
				  const struct ig_meta *m, struct ig_backend_ref *b)
{
	int line;
	b->group = ld_str(s, n, path, "group", false, &line);
	ld_check_group(s, b->group, line, path, "group");
	b->kind = ld_str(s, n, path, "kind", false, &line);
	ld_check_kind(s, b->kind, line, path, "kind");
	b->ns = ld_str(s, n, path, "namespace", false, &line);
	ld_check_namespace(s, b->ns, line, path, "namespace");
	b->name = ld_str(s, n, path, "name", true, &line);
	ld_check_object_name(s, b->name, line, path, "name");
	ld_int_range(s, n, path, "port", false, 1, 65535, &b->port);
	if (!b->group)
		b->group = "";
	if (!b->kind)
		b->kind = "Service";
	if (!b->ns)
		b->ns = m->ns;
	b->status = IG_REF_NOT_FOUND; /* until ld_link resolves it */
	b->line = ig_yaml_line(n);
	if (!*b->group && !strcmp(b->kind, "Service") && !ld_get(s, n, "port", &line))
		ld_err(s, ig_yaml_line(n), path, NULL, "must have port for Service reference");
}

static void decode_backend(struct session *s, yaml_node_t *n, const char *path,
			   const struct ig_meta *m, struct ig_backend_ref *b)
{
	b->weight = 1;
	ld_fields(s, n, path, backend_ref_fields, NULL);
	decode_backend_object(s, n, path, m, b);
	ld_int_range(s, n, path, "weight", false, 0, 1000000, &b->weight);
	b->filters = decode_filters(s, n, path, m, &b->nfilters);
}

static void decode_timeouts(struct session *s, yaml_node_t *n, const char *path,
			    struct ig_route_rule *r)
{
	static const char *const fields[] = {"request", "backendRequest", NULL};
	bool has_req, has_be;
	int line;
	ld_fields(s, n, path, fields, NULL);
	r->timeout_request_ms = ld_duration(s, n, path, "request", &has_req);
	r->timeout_backend_ms = ld_duration(s, n, path, "backendRequest", &has_be);
	ld_get(s, n, "backendRequest", &line);
	if (has_req && has_be && r->timeout_request_ms != 0 &&
	    r->timeout_backend_ms > r->timeout_request_ms)
		ld_err(s, line, path, "backendRequest",
		       "backendRequest timeout cannot be longer than request timeout");
}

static void decode_retry(struct session *s, yaml_node_t *n, const char *path, struct ig_retry *r)
{
	static const char *const fields[] = {"codes", "attempts", "backoff", NULL};
	char it[LD_PATH];
	int line;
	r->set = true;
	ld_fields(s, n, path, fields, NULL);
	yaml_node_t *codes = ld_seq(s, n, path, "codes", false, &line);
	if (codes) {
		r->codes = ld_alloc(s, (ld_seq_len(codes) + 1) * sizeof(int));
		for (size_t i = 0; i < ld_seq_len(codes); i++) {
			yaml_node_t *c = ld_seq_item(s, codes, i);
			long long v = 0;
			ld_item(it, path, "codes", i);
			if (!c || !ld_scalar_int(c, &v)) {
				ld_err(s, c ? ig_yaml_line(c) : line, it, NULL,
				       "must be an integer");
				continue;
			}
			if (v < 400 || v > 599) {
				ld_err(s, ig_yaml_line(c), it, NULL, "must be between 400 and 599");
				continue;
			}
			bool dup = false;
			for (size_t j = 0; j < r->ncodes; j++)
				dup |= r->codes[j] == (int)v;
			if (dup)
				ld_err(s, ig_yaml_line(c), it, NULL, "duplicate value %lld", v);
			else
				r->codes[r->ncodes++] = (int)v;
		}
	}
	r->has_attempts = ld_int_range(s, n, path, "attempts", false, 0, INT32_MAX, &r->attempts);
	r->backoff_ms = ld_duration(s, n, path, "backoff", &r->has_backoff);
}

static void decode_session(struct session *s, yaml_node_t *n, const char *path,
			   struct ig_session_persistence *p)
{
	static const char *const fields[] = {"sessionName", "absoluteTimeout", "idleTimeout",
					     "type",	    "cookieConfig",    NULL};
	static const char *const cookie_fields[] = {"lifetimeType", NULL};
	static const char *const types[] = {"Cookie", "Header", NULL};
	static const char *const lifetimes[] = {"Permanent", "Session", NULL};
	char sub[LD_PATH];
	int line, cline;
	p->set = true;
	ld_fields(s, n, path, fields, NULL);
	p->session_name = ld_str(s, n, path, "sessionName", false, &line);
	ld_check_len(s, p->session_name, line, path, "sessionName", 0, 128);
	p->absolute_timeout_ms =
	    ld_duration(s, n, path, "absoluteTimeout", &p->has_absolute_timeout);
	p->idle_timeout_ms = ld_duration(s, n, path, "idleTimeout", &p->has_idle_timeout);
	char *type = ld_str(s, n, path, "type", false, &line);
	ld_check_enum(s, type, line, path, "type", types);
	p->type = type && !strcmp(type, "Header") ? IG_SESSION_HEADER : IG_SESSION_COOKIE;
	yaml_node_t *cc = ld_map(s, n, path, "cookieConfig", false, &cline);
	if (!cc)
		return;
	ld_join(sub, path, "cookieConfig");
	ld_fields(s, cc, sub, cookie_fields, NULL);
	char *lt = ld_str(s, cc, sub, "lifetimeType", false, &line);
	ld_check_enum(s, lt, line, sub, "lifetimeType", lifetimes);
	p->lifetime = lt && !strcmp(lt, "Permanent") ? IG_COOKIE_PERMANENT : IG_COOKIE_SESSION;
	if (p->lifetime == IG_COOKIE_PERMANENT && !ld_get(s, n, "absoluteTimeout", &line))
		ld_err(s, ig_yaml_line(n), path, NULL,
		       "AbsoluteTimeout must be specified when cookie lifetimeType is Permanent");
	if (p->type != IG_SESSION_COOKIE)
		ld_err(s, cline, path, "cookieConfig",
		       "cookieConfig can only be set with type Cookie");
}

static size_t decode_matches(struct session *s, yaml_node_t *n, const char *path, bool grpc,
			     struct ig_route_rule *r)
{
	char sub[LD_PATH];
	int line;
	yaml_node_t *ms = ld_seq(s, n, path, "matches", false, &line);
	size_t cnt = ms ? ld_seq_len(ms) : 0;
	if (ms)
		ld_check_items(s, ms, line, path, "matches", 0, 64);
	/* Absent and [] both mean one match-everything entry. */
	r->nmatches = cnt ? cnt : 1;
	r->matches = ld_alloc(s, r->nmatches * sizeof(*r->matches));
	r->matches[0] = (struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *m = ld_seq_item(s, ms, i);
		ld_item(sub, path, "matches", i);
		if (m)
			decode_match(s, m, sub, grpc, &r->matches[i]);
	}
	return cnt;
}

static bool has_prefix_modifier(const struct ig_filter *fs, size_t n, enum ig_filter_type type)
{
	for (size_t i = 0; i < n; i++) {
		if (fs[i].type != type)
			continue;
		const struct ig_path_modifier *pm =
		    type == IG_FILTER_URL_REWRITE ? &fs[i].u.rewrite.path : &fs[i].u.redirect.path;
		if (pm->type == IG_PATH_MOD_PREFIX)
			return true;
	}
	return false;
}

/* The CRD's rule-level CEL rules tying filters to backendRefs and matches. */
static void check_rule_filters(struct session *s, yaml_node_t *n, const char *path,
			       const struct ig_route_rule *r, size_t nmatches)
{
	int line = ig_yaml_line(n);
	bool one_prefix = nmatches == 1 && r->matches[0].path_type == IG_PATH_PREFIX;
	for (size_t i = 0; i < r->nfilters && r->nbackends; i++)
		if (r->filters[i].type == IG_FILTER_REQUEST_REDIRECT) {
			ld_err(s, line, path, NULL,
			       "RequestRedirect filter must not be used together with backendRefs");
			break;
		}
	if (!one_prefix && has_prefix_modifier(r->filters, r->nfilters, IG_FILTER_REQUEST_REDIRECT))
		ld_err(s, line, path, NULL,
		       "When using RequestRedirect filter with path.replacePrefixMatch, exactly "
		       "one PathPrefix match must be specified");
	if (!one_prefix && has_prefix_modifier(r->filters, r->nfilters, IG_FILTER_URL_REWRITE))
		ld_err(s, line, path, NULL,
		       "When using URLRewrite filter with path.replacePrefixMatch, exactly one "
		       "PathPrefix match must be specified");
	for (size_t b = 0; !one_prefix && b < r->nbackends; b++) {
		const struct ig_backend_ref *be = &r->backends[b];
		if (has_prefix_modifier(be->filters, be->nfilters, IG_FILTER_REQUEST_REDIRECT))
			ld_err(s, line, path, NULL,
			       "Within backendRefs, when using RequestRedirect filter with "
			       "path.replacePrefixMatch, exactly one PathPrefix match must be "
			       "specified");
		if (has_prefix_modifier(be->filters, be->nfilters, IG_FILTER_URL_REWRITE))
			ld_err(s, line, path, NULL,
			       "Within backendRefs, When using URLRewrite filter with "
			       "path.replacePrefixMatch, exactly one PathPrefix match must be "
			       "specified");
	}
}

static const char *const rule_fields[] = {
    "name", "matches", "filters", "backendRefs", "timeouts", "retry", "sessionPersistence", NULL};
static const char *const grpc_rule_fields[] = {
    "name", "matches", "filters", "backendRefs", "sessionPersistence", NULL};

static size_t decode_rule(struct session *s, yaml_node_t *n, const char *path,
			  const struct ig_meta *m, struct ig_route_rule *r)
{
	char sub[LD_PATH];
	int line;
	if (n->type != YAML_MAPPING_NODE) {
		ld_err(s, ig_yaml_line(n), path, NULL, "must be an object");
		r->nmatches = 1;
		r->matches = ld_alloc(s, sizeof(*r->matches));
		r->matches[0] = (struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
		return 0;
	}
	bool grpc = m->kind && !strcmp(m->kind, "GRPCRoute");
	ld_fields(s, n, path, grpc ? grpc_rule_fields : rule_fields, NULL);
	r->name = ld_str(s, n, path, "name", false, &line);
	if (r->name && !ld_dns_subdomain(r->name, strlen(r->name)))
		ld_err(s, line, path, "name", "must be a lowercase RFC 1123 subdomain");
	size_t nm = decode_matches(s, n, path, grpc, r);
	r->filters = decode_filters(s, n, path, m, &r->nfilters);
	yaml_node_t *bs = ld_seq(s, n, path, "backendRefs", false, &line);
	if (bs) {
		ld_check_items(s, bs, line, path, "backendRefs", 0, 16);
		r->backends = ld_alloc(s, (ld_seq_len(bs) + 1) * sizeof(*r->backends));
	}
	/* At their list index, as filters are. */
	r->nbackends = bs ? ld_seq_len(bs) : 0;
	for (size_t i = 0; i < r->nbackends; i++) {
		ld_item(sub, path, "backendRefs", i);
		yaml_node_t *b = ld_seq_map(s, bs, i, sub);
		if (b)
			decode_backend(s, b, sub, m, &r->backends[i]);
	}
	yaml_node_t *t = ld_map(s, n, path, "timeouts", false, &line);
	if (t) {
		ld_join(sub, path, "timeouts");
		decode_timeouts(s, t, sub, r);
	}
	yaml_node_t *retry = ld_map(s, n, path, "retry", false, &line);
	if (retry) {
		ld_join(sub, path, "retry");
		decode_retry(s, retry, sub, &r->retry);
	}
	yaml_node_t *sp = ld_map(s, n, path, "sessionPersistence", false, &line);
	if (sp) {
		ld_join(sub, path, "sessionPersistence");
		decode_session(s, sp, sub, &r->session);
	}
	check_rule_filters(s, n, path, r, nm ? nm : 1);
	return nm;
}

static void decode_rules(struct session *s, yaml_node_t *spec, struct ig_httproute *rt)
{
	char path[LD_PATH];
	int line;
	yaml_node_t *rs = spec ? ld_seq(s, spec, "spec", "rules", false, &line) : NULL;
	size_t cnt = rs ? ld_seq_len(rs) : 0, total = 0;
	if (rs)
		ld_check_items(s, rs, line, "spec", "rules", 0, 16);
	rt->nrules = cnt ? cnt : 1;
	rt->rules = ld_alloc(s, rt->nrules * sizeof(*rt->rules));
	for (size_t i = 0; i < rt->nrules; i++) {
		/* Defaults first: a rule that fails to decode still matches "/". */
		rt->rules[i].nmatches = 1;
		rt->rules[i].matches = ld_alloc(s, sizeof(struct ig_route_match));
		rt->rules[i].matches[0] =
		    (struct ig_route_match){.path_type = IG_PATH_PREFIX, .path = "/"};
	}
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *r = ld_seq_item(s, rs, i);
		ld_item(path, "spec", "rules", i);
		if (!r)
			continue;
		total += decode_rule(s, r, path, &rt->meta, &rt->rules[i]);
		for (size_t j = 0; j < i && rt->rules[i].name; j++)
			if (rt->rules[j].name && !strcmp(rt->rules[j].name, rt->rules[i].name))
				ld_err(s, ig_yaml_line(r), path, "name",
				       "rule name \"%s\" is not unique", rt->rules[i].name);
	}
	if (total > 128)
		ld_err(s, line, "spec", "rules", "must have at most 128 matches over all rules");
}

static const char *const route_spec_fields[] = {"parentRefs", "hostnames", "rules", NULL};
static const struct ld_unsupported route_spec_fields_unsupported[] = {
    {"useDefaultGateways", "default Gateways are not implemented"},
    {NULL, NULL},
};

static void decode_route(struct session *s, yaml_node_t *root, const char *api, bool grpc)
{
	static const char *const top[] = {"spec", NULL};
	struct ig_httproute rt = {.grpc = grpc};
	char path[LD_PATH];
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, grpc ? "GRPCRoute" : "HTTPRoute", &rt.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec)
		ld_fields(s, spec, "spec", route_spec_fields, route_spec_fields_unsupported);
	yaml_node_t *ps = spec ? ld_seq(s, spec, "spec", "parentRefs", false, &line) : NULL;
	if (ps) {
		ld_check_items(s, ps, line, "spec", "parentRefs", 0, 32);
		rt.parents = ld_alloc(s, (ld_seq_len(ps) + 1) * sizeof(*rt.parents));
	}
	for (size_t i = 0; ps && i < ld_seq_len(ps); i++) {
		ld_item(path, "spec", "parentRefs", i);
		yaml_node_t *p = ld_seq_map(s, ps, i, path);
		/* Keep indexes aligned with the list for check_parents. */
		if (p)
			decode_parent(s, p, path, &rt.meta, &rt.parents[i]);
		rt.nparents = i + 1;
	}
	if (ps)
		check_parents(s, ps, &rt);
	yaml_node_t *hs = spec ? ld_seq(s, spec, "spec", "hostnames", false, &line) : NULL;
	if (hs) {
		ld_check_items(s, hs, line, "spec", "hostnames", 0, 16);
		rt.nhostnames = ld_seq_len(hs);
		rt.hostnames = ld_alloc(s, (rt.nhostnames + 1) * sizeof(char *));
	}
	for (size_t i = 0; i < rt.nhostnames; i++) {
		yaml_node_t *h = ld_seq_item(s, hs, i);
		ld_item(path, "spec", "hostnames", i);
		if (!h || h->type != YAML_SCALAR_NODE) {
			ld_err(s, h ? ig_yaml_line(h) : line, path, NULL, "must be a string");
			rt.hostnames[i] = "";
			continue;
		}
		rt.hostnames[i] = ld_scalar(s, h);
		if (!ld_hostname_ok(rt.hostnames[i]))
			ld_err(s, ig_yaml_line(h), path, NULL,
			       "must be a lowercase DNS name, optionally starting with \"*.\"");
	}
	decode_rules(s, spec, &rt);
	*LD_APPEND(s, K_ROUTE, routes) = rt;
}

void ld_httproute(struct session *s, yaml_node_t *root, const char *api)
{
	decode_route(s, root, api, false);
}

void ld_grpcroute(struct session *s, yaml_node_t *root, const char *api)
{
	decode_route(s, root, api, true);
}

/* ---- BackendTLSPolicy ------------------------------------------------------------ */

/* The two CEL rules of spec.targetRefs: refs to one target (group, kind,
 * name) either all name a section or none does, and no two name the same
 * one. */
static bool same_policy_target(const struct ig_tls_policy_target *a,
			       const struct ig_tls_policy_target *b)
{
	return a->group && b->group && a->kind && b->kind && a->name && b->name &&
	       !strcmp(a->group, b->group) && !strcmp(a->kind, b->kind) &&
	       !strcmp(a->name, b->name);
}

static void check_policy_targets(struct session *s, const struct ig_backend_tls_policy *p, int line)
{
	bool unnamed = false, twice = false;
	for (size_t i = 0; i < p->ntargets; i++) {
		for (size_t j = 0; j < i; j++) {
			const struct ig_tls_policy_target *a = &p->targets[j], *b = &p->targets[i];
			if (!same_policy_target(a, b))
				continue;
			bool ea = !a->section || !*a->section, eb = !b->section || !*b->section;
			if (ea != eb)
				unnamed = true;
			else if (ea || !strcmp(a->section, b->section))
				twice = true;
		}
	}
	if (unnamed)
		ld_err(s, line, "spec", "targetRefs",
		       "sectionName must be specified when targetRefs includes 2 or more "
		       "references to the same target");
	if (twice)
		ld_err(s, line, "spec", "targetRefs",
		       "sectionName must be unique when targetRefs includes 2 or more references "
		       "to the same target");
}

static void decode_policy_targets(struct session *s, yaml_node_t *spec,
				  struct ig_backend_tls_policy *p)
{
	static const char *const fields[] = {"group", "kind", "name", "sectionName", NULL};
	char it[LD_PATH];
	int line, rline;
	yaml_node_t *refs = ld_seq(s, spec, "spec", "targetRefs", true, &rline);
	if (!refs)
		return;
	ld_check_items(s, refs, rline, "spec", "targetRefs", 1, 16);
	p->targets = ld_alloc(s, (ld_seq_len(refs) + 1) * sizeof(*p->targets));
	for (size_t i = 0; i < ld_seq_len(refs); i++) {
		ld_item(it, "spec", "targetRefs", i);
		yaml_node_t *r = ld_seq_map(s, refs, i, it);
		if (!r)
			continue;
		struct ig_tls_policy_target *t = &p->targets[p->ntargets++];
		ld_fields(s, r, it, fields, NULL);
		t->group = ld_str(s, r, it, "group", true, &line);
		ld_check_group(s, t->group, line, it, "group");
		t->kind = ld_str(s, r, it, "kind", true, &line);
		ld_check_kind(s, t->kind, line, it, "kind");
		t->name = ld_str(s, r, it, "name", true, &line);
		ld_check_object_name(s, t->name, line, it, "name");
		t->section = ld_str(s, r, it, "sectionName", false, &line);
		if (t->section && !ld_dns_subdomain(t->section, strlen(t->section)))
			ld_err(s, line, it, "sectionName",
			       "must be a lowercase RFC 1123 subdomain (letters, digits, '-' and "
			       "'.', at most 253 characters)");
	}
	check_policy_targets(s, p, rline);
}

/* One part of a qualified name (the CRD's [A-Za-z0-9]([-A-Za-z0-9_.]*
 * [A-Za-z0-9])?, at most max characters). */
static bool qualified_part(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && ((i == 0 || i == len - 1) || (c != '-' && c != '_' && c != '.')))
			return false;
	}
	return true;
}

/* wellKnownCACertificates: "System", or "domain/name" as the CRD's pattern
 * has it (a lowercase DNS subdomain, then 1 to 63 characters). */
static bool well_known_ok(const char *v)
{
	if (!strcmp(v, "System"))
		return true;
	const char *slash = strchr(v, '/');
	return slash && ld_dns_subdomain(v, (size_t)(slash - v)) &&
	       qualified_part(slash + 1, strlen(slash + 1), 63);
}

/* A Gateway API PreciseHostname, by the CRD's pattern: a DNS name, no
 * wildcard. Its documentation rules out IP addresses, which the pattern
 * lets through; they are let through here too, as the API server does: a
 * policy dropped for a check stricter than the API server's (with --kube
 * an object that fails to load is left out) would leave its Services to
 * be reached in clear text. An IP literal is checked against the
 * certificate's IP entries and not sent as a server name. */
static bool precise_hostname_ok(const char *h)
{
	return ld_dns_subdomain(h, strlen(h));
}

/* AbsoluteURI, loosely as the CRD's pattern: a scheme, then "//" and an
 * authority; the rest is not checked. */
static bool absolute_uri_ok(const char *u)
{
	size_t n = strcspn(u, ":/?#");
	return n > 0 && !strncmp(u + n, "://", 3);
}

static void decode_policy_san(struct session *s, yaml_node_t *n, const char *path,
			      struct ig_tls_policy_san *san)
{
	static const char *const fields[] = {"type", "hostname", "uri", NULL};
	static const char *const types[] = {"Hostname", "URI", NULL};
	int tline, hline, uline;
	ld_fields(s, n, path, fields, NULL);
	char *type = ld_str(s, n, path, "type", true, &tline);
	ld_check_enum(s, type, tline, path, "type", types);
	char *host = ld_str(s, n, path, "hostname", false, &hline);
	char *uri = ld_str(s, n, path, "uri", false, &uline);
	if (host && *host && !ld_hostname_ok(host))
		ld_err(s, hline, path, "hostname",
		       "must be a lowercase DNS name, optionally starting with \"*.\"");
	else if (host)
		ld_check_len(s, host, hline, path, "hostname", 1, 253);
	if (uri && *uri && !absolute_uri_ok(uri))
		ld_err(s, uline, path, "uri",
		       "must be an absolute URI: a scheme, \"://\" and an authority (e.g. "
		       "spiffe://cluster.local/ns/a/sa/b)");
	else if (uri)
		ld_check_len(s, uri, uline, path, "uri", 1, 253);
	bool has_host = host && *host, has_uri = uri && *uri;
	/* The CRD's CEL rules, with its messages. */
	if (type && !strcmp(type, "Hostname")) {
		if (!has_host)
			ld_err(s, tline, path, NULL,
			       "SubjectAltName element must contain Hostname, if Type is set to "
			       "Hostname");
		if (has_uri)
			ld_err(s, tline, path, NULL,
			       "SubjectAltName element must not contain URI, if Type is set to "
			       "Hostname");
	} else if (type && !strcmp(type, "URI")) {
		if (!has_uri)
			ld_err(s, tline, path, NULL,
			       "SubjectAltName element must contain URI, if Type is set to URI");
		if (has_host)
			ld_err(s, tline, path, NULL,
			       "SubjectAltName element must not contain Hostname, if Type is set "
			       "to URI");
	}
	san->uri = type && !strcmp(type, "URI");
	san->value = san->uri ? uri : host;
}

static void decode_policy_validation(struct session *s, yaml_node_t *v, int vline,
				     struct ig_backend_tls_policy *p)
{
	static const char *const fields[] = {"caCertificateRefs", "wellKnownCACertificates",
					     "hostname", "subjectAltNames", NULL};
	static const char *const ref_fields[] = {"group", "kind", "name", NULL};
	const char *path = "spec.validation";
	char it[LD_PATH];
	int line, cline, wline;
	ld_fields(s, v, path, fields, NULL);
	yaml_node_t *cas = ld_seq(s, v, path, "caCertificateRefs", false, &cline);
	if (cas) {
		ld_check_items(s, cas, cline, path, "caCertificateRefs", 0, 8);
		p->ca_refs = ld_alloc(s, (ld_seq_len(cas) + 1) * sizeof(*p->ca_refs));
	}
	for (size_t i = 0; cas && i < ld_seq_len(cas); i++) {
		ld_item(it, path, "caCertificateRefs", i);
		yaml_node_t *r = ld_seq_map(s, cas, i, it);
		if (!r)
			continue;
		struct ig_tls_policy_ca_ref *c = &p->ca_refs[p->nca_refs++];
		c->line = ig_yaml_line(r);
		ld_fields(s, r, it, ref_fields, NULL);
		c->group = ld_str(s, r, it, "group", true, &line);
		ld_check_group(s, c->group, line, it, "group");
		c->kind = ld_str(s, r, it, "kind", true, &line);
		ld_check_kind(s, c->kind, line, it, "kind");
		c->name = ld_str(s, r, it, "name", true, &line);
		ld_check_object_name(s, c->name, line, it, "name");
	}
	p->well_known = ld_str(s, v, path, "wellKnownCACertificates", false, &wline);
	size_t wlen = p->well_known ? strlen(p->well_known) : 0;
	if (p->well_known && (wlen == 0 || wlen > 253))
		ld_check_len(s, p->well_known, wline, path, "wellKnownCACertificates", 1, 253);
	else if (p->well_known && !well_known_ok(p->well_known))
		ld_err(s, wline, path, "wellKnownCACertificates",
		       "must be System or a domain-prefixed name (e.g. example.com/roots)");
	/* CEL: an empty list or string counts as absent. */
	bool has_refs = cas && ld_seq_len(cas) > 0;
	bool has_known = p->well_known && *p->well_known;
	if (has_refs && has_known)
		ld_err(s, vline, "spec", "validation",
		       "must not contain both CACertificateRefs and WellKnownCACertificates");
	else if (!has_refs && !has_known)
		ld_err(s, vline, "spec", "validation",
		       "must specify either CACertificateRefs or WellKnownCACertificates");
	p->hostname = ld_str(s, v, path, "hostname", true, &line);
	if (p->hostname && !precise_hostname_ok(p->hostname))
		ld_err(s, line, path, "hostname",
		       "must be a lowercase DNS name without a wildcard (PreciseHostname)");
	yaml_node_t *sans = ld_seq(s, v, path, "subjectAltNames", false, &line);
	if (sans) {
		ld_check_items(s, sans, line, path, "subjectAltNames", 0, 5);
		p->sans = ld_alloc(s, (ld_seq_len(sans) + 1) * sizeof(*p->sans));
	}
	for (size_t i = 0; sans && i < ld_seq_len(sans); i++) {
		ld_item(it, path, "subjectAltNames", i);
		yaml_node_t *n = ld_seq_map(s, sans, i, it);
		if (n)
			decode_policy_san(s, n, it, &p->sans[p->nsans++]);
	}
}

/* An AnnotationKey: an optional prefix (1 to 253 characters of
 * [-A-Za-z0-9_.], starting and ending with a letter or digit) and "/",
 * then a name of 1 to 63 such characters. */
static bool annotation_key_ok(const char *k)
{
	const char *slash = strchr(k, '/');
	if (!slash)
		return qualified_part(k, strlen(k), 63);
	return qualified_part(k, (size_t)(slash - k), 253) &&
	       qualified_part(slash + 1, strlen(slash + 1), 63);
}

/* spec.options: no option is implemented (the loader's resolution marks a
 * policy that has any Invalid), but the keys are kept to say which. */
static void decode_policy_options(struct session *s, yaml_node_t *spec,
				  struct ig_backend_tls_policy *p)
{
	int oline;
	yaml_node_t *o = ld_map(s, spec, "spec", "options", false, &oline);
	if (!o)
		return;
	size_t n = ld_map_len(o);
	if (n > 16)
		ld_err(s, oline, "spec", "options", "must have at most 16 entries");
	p->options = ld_alloc(s, (n + 1) * sizeof(char *));
	for (yaml_node_pair_t *q = o->data.mapping.pairs.start; q < o->data.mapping.pairs.top;
	     q++) {
		yaml_node_t *k = ld_node(s, q->key), *v = ld_node(s, q->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
			ld_err(s, ig_yaml_line(k), "spec", "options", "must map keys to strings");
			continue;
		}
		char *key = ld_scalar(s, k), path[LD_PATH];
		snprintf(path, sizeof path, "spec.options[%.200s]", key);
		if (!annotation_key_ok(key))
			ld_err(s, ig_yaml_line(k), path, NULL,
			       "must be a qualified name: up to 63 letters, digits, '-', '_' or "
			       "'.', optionally prefixed by a DNS subdomain and '/'");
		else if (v->data.scalar.length > 4096)
			ld_err(s, ig_yaml_line(k), path, NULL, "must be at most 4096 characters");
		p->options[p->noptions++] = key;
	}
}

void ld_backend_tls_policy(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const spec_fields[] = {"targetRefs", "validation", "options", NULL};
	struct ig_backend_tls_policy p = {0};
	int line;
	ld_top_fields(s, root, top);
	/* v1alpha3 has the same fields as v1 for what is read here. */
	ld_meta(s, root, api, "BackendTLSPolicy", &p.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec) {
		ld_fields(s, spec, "spec", spec_fields, NULL);
		decode_policy_targets(s, spec, &p);
		yaml_node_t *v = ld_map(s, spec, "spec", "validation", true, &line);
		if (v)
			decode_policy_validation(s, v, line, &p);
		decode_policy_options(s, spec, &p);
	}
	*LD_APPEND(s, K_TLS_POLICY, tls_policies) = p;
}

/* ---- ReferenceGrant ------------------------------------------------------------ */

void ld_reference_grant(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const spec_fields[] = {"from", "to", NULL};
	static const char *const from_fields[] = {"group", "kind", "namespace", NULL};
	static const char *const to_fields[] = {"group", "kind", "name", NULL};
	struct ig_reference_grant g = {0};
	char it[LD_PATH];
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "ReferenceGrant", &g.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (!spec) {
		*LD_APPEND(s, K_GRANT, grants) = g;
		return;
	}
	ld_fields(s, spec, "spec", spec_fields, NULL);
	yaml_node_t *from = ld_seq(s, spec, "spec", "from", true, &line);
	if (from) {
		ld_check_items(s, from, line, "spec", "from", 1, 16);
		g.from = ld_alloc(s, (ld_seq_len(from) + 1) * sizeof(*g.from));
	}
	for (size_t i = 0; from && i < ld_seq_len(from); i++) {
		ld_item(it, "spec", "from", i);
		yaml_node_t *f = ld_seq_map(s, from, i, it);
		if (!f)
			continue;
		struct ig_grant_from *e = &g.from[g.nfrom++];
		ld_fields(s, f, it, from_fields, NULL);
		e->group = ld_str(s, f, it, "group", true, &line);
		ld_check_group(s, e->group, line, it, "group");
		e->kind = ld_str(s, f, it, "kind", true, &line);
		ld_check_kind(s, e->kind, line, it, "kind");
		e->ns = ld_str(s, f, it, "namespace", true, &line);
		ld_check_namespace(s, e->ns, line, it, "namespace");
	}
	yaml_node_t *to = ld_seq(s, spec, "spec", "to", true, &line);
	if (to) {
		ld_check_items(s, to, line, "spec", "to", 1, 16);
		g.to = ld_alloc(s, (ld_seq_len(to) + 1) * sizeof(*g.to));
	}
	for (size_t i = 0; to && i < ld_seq_len(to); i++) {
		ld_item(it, "spec", "to", i);
		yaml_node_t *t = ld_seq_map(s, to, i, it);
		if (!t)
			continue;
		struct ig_grant_to *e = &g.to[g.nto++];
		ld_fields(s, t, it, to_fields, NULL);
		e->group = ld_str(s, t, it, "group", true, &line);
		ld_check_group(s, e->group, line, it, "group");
		e->kind = ld_str(s, t, it, "kind", true, &line);
		ld_check_kind(s, e->kind, line, it, "kind");
		e->name = ld_str(s, t, it, "name", false, &line);
		ld_check_object_name(s, e->name, line, it, "name");
	}
	*LD_APPEND(s, K_GRANT, grants) = g;
}
