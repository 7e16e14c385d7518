/* Decoders for core Kubernetes objects: Pod and Deployment (kept for
 * `demo`/`run` and pool membership; only their metadata is checked
 * strictly), Namespace, Service, EndpointSlice, Endpoints, Secret and
 * ConfigMap (the Gateway API's backends, certificates and backend CAs). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config/load.h"
#include "core/str.h"

/* ---- Pod ------------------------------------------------------------------ */

static bool pod_ready(struct session *s, yaml_node_t *status)
{
	int line;
	yaml_node_t *conds = ld_seq(s, status, "status", "conditions", false, &line);
	if (!conds || ld_seq_len(conds) == 0)
		return true;
	for (size_t i = 0; i < ld_seq_len(conds); i++) {
		char path[LD_PATH];
		ld_item(path, "status", "conditions", i);
		yaml_node_t *c = ld_seq_map(s, conds, i, path);
		if (!c)
			continue;
		yaml_node_t *t = ld_get(s, c, "type", &line), *st = ld_get(s, c, "status", &line);
		if (t && st && ig_yaml_scalar_is(t, "Ready"))
			return ig_yaml_scalar_is(st, "True");
	}
	return false;
}

void ld_pod(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	struct ig_pod p = {0};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Pod", &p.meta, false);
	yaml_node_t *md = ld_get(s, root, "metadata", &line);
	if (md && md->type == YAML_MAPPING_NODE && ld_get(s, md, "deletionTimestamp", &line))
		p.deleting = true;
	p.ready = true;
	yaml_node_t *st = ld_map(s, root, "", "status", false, &line);
	if (st) {
		p.ip = ld_str(s, st, "status", "podIP", false, &line);
		yaml_node_t *ips = ld_seq(s, st, "status", "podIPs", false, &line);
		if (!p.ip && ips && ld_seq_len(ips) > 0) {
			yaml_node_t *first = ld_seq_map(s, ips, 0, "status.podIPs[0]");
			if (first)
				p.ip = ld_str(s, first, "status.podIPs[0]", "ip", false, &line);
		}
		p.ready = pod_ready(s, st);
	}
	*LD_APPEND(s, K_POD, pods) = p;
}

/* ---- Deployment ------------------------------------------------------------- */

static void decode_container(struct session *s, yaml_node_t *n, const char *path,
			     struct ig_container *c)
{
	char sub[LD_PATH];
	int line;
	c->name = ld_str(s, n, path, "name", true, &line);
	c->command = ld_strings(s, n, path, "command", &c->ncommand, &line);
	c->args = ld_strings(s, n, path, "args", &c->nargs, &line);
	yaml_node_t *ports = ld_seq(s, n, path, "ports", false, &line);
	if (!ports)
		return;
	c->ports = ld_alloc(s, (ld_seq_len(ports) + 1) * sizeof(int));
	for (size_t i = 0; i < ld_seq_len(ports); i++) {
		ld_item(sub, path, "ports", i);
		yaml_node_t *p = ld_seq_map(s, ports, i, sub);
		if (p &&
		    ld_int_range(s, p, sub, "containerPort", true, 1, 65535, &c->ports[c->nports]))
			c->nports++;
	}
}

static void decode_pod_template(struct session *s, yaml_node_t *spec, struct ig_deployment *d)
{
	char path[LD_PATH];
	int line;
	yaml_node_t *tpl = ld_map(s, spec, "spec", "template", false, &line);
	if (!tpl)
		return;
	yaml_node_t *md = ld_map(s, tpl, "spec.template", "metadata", false, &line);
	yaml_node_t *labels =
	    md ? ld_map(s, md, "spec.template.metadata", "labels", false, &line) : NULL;
	if (labels)
		d->template_labels = ld_labels(s, labels, line, "spec.template.metadata", "labels",
					       &d->ntemplate_labels);
	yaml_node_t *ps = ld_map(s, tpl, "spec.template", "spec", false, &line);
	yaml_node_t *cs =
	    ps ? ld_seq(s, ps, "spec.template.spec", "containers", false, &line) : NULL;
	if (!cs)
		return;
	d->containers = ld_alloc(s, (ld_seq_len(cs) + 1) * sizeof(*d->containers));
	for (size_t i = 0; i < ld_seq_len(cs); i++) {
		ld_item(path, "spec.template.spec", "containers", i);
		yaml_node_t *c = ld_seq_map(s, cs, i, path);
		if (c)
			decode_container(s, c, path, &d->containers[d->ncontainers++]);
	}
}

void ld_deployment(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	struct ig_deployment d = {.replicas = 1};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Deployment", &d.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec) {
		ld_int_range(s, spec, "spec", "replicas", false, 0, INT32_MAX, &d.replicas);
		decode_pod_template(s, spec, &d);
	}
	*LD_APPEND(s, K_DEPLOYMENT, deployments) = d;
}

/* ---- Namespace ------------------------------------------------------------------ */

#define NS_NAME_LABEL "kubernetes.io/metadata.name"

void ld_namespace(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const spec_fields[] = {"finalizers", NULL};
	struct ig_namespace n = {0};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Namespace", &n.meta, true);
	if (n.meta.name && !ld_dns_label(n.meta.name, strlen(n.meta.name), 63))
		ld_err(
		    s, n.meta.line, "metadata", "name",
		    "a namespace name must be a lowercase RFC 1123 label (at most 63 characters)");
	yaml_node_t *spec = ld_map(s, root, "", "spec", false, &line);
	if (spec)
		ld_fields(s, spec, "spec", spec_fields, NULL);
	/* Kubernetes sets this label on every namespace, whatever the
	 * manifest says; allowedRoutes selectors commonly use it. */
	struct ig_kv *labels = ld_alloc(s, (n.meta.nlabels + 1) * sizeof(*labels));
	size_t k = 0;
	for (size_t i = 0; i < n.meta.nlabels; i++)
		if (strcmp(n.meta.labels[i].key, NS_NAME_LABEL) != 0)
			labels[k++] = n.meta.labels[i];
	if (n.meta.name)
		labels[k++] = (struct ig_kv){NS_NAME_LABEL, n.meta.name};
	n.meta.labels = labels;
	n.meta.nlabels = k;
	*LD_APPEND(s, K_NAMESPACE, namespaces) = n;
}

/* ---- Service ----------------------------------------------------------------------- */

/* A port name (IANA_SVC_NAME): 1..15 lowercase letters, digits and '-',
 * at least one letter, no leading, trailing or double '-'. */
static bool port_name_ok(const char *n)
{
	size_t len = strlen(n);
	bool letter = false;
	if (len == 0 || len > 15 || n[0] == '-' || n[len - 1] == '-' || strstr(n, "--"))
		return false;
	for (const char *p = n; *p; p++) {
		if (*p >= 'a' && *p <= 'z')
			letter = true;
		else if (!(*p >= '0' && *p <= '9') && *p != '-')
			return false;
	}
	return letter;
}

static const char *const port_protocols[] = {"TCP", "UDP", "SCTP", NULL};

static void decode_service_port(struct session *s, yaml_node_t *n, const char *path,
				struct ig_service_port *p)
{
	static const char *const fields[] = {"name",	   "protocol", "appProtocol", "port",
					     "targetPort", "nodePort", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	p->name = ld_str(s, n, path, "name", false, &line);
	if (p->name && *p->name && !port_name_ok(p->name))
		ld_err(s, line, path, "name",
		       "must be 1 to 15 lowercase letters, digits and '-' with at least one letter "
		       "(IANA_SVC_NAME)");
	if (!p->name)
		p->name = "";
	p->protocol = ld_str(s, n, path, "protocol", false, &line);
	ld_check_enum(s, p->protocol, line, path, "protocol", port_protocols);
	if (!p->protocol)
		p->protocol = "TCP";
	p->app_protocol = ld_str(s, n, path, "appProtocol", false, &line);
	ld_int_range(s, n, path, "port", true, 1, 65535, &p->port);
	int nodeport;
	ld_int_range(s, n, path, "nodePort", false, 1, 65535, &nodeport);
	yaml_node_t *tp = ld_get(s, n, "targetPort", &line);
	long long v;
	if (!tp) {
		p->target_port = p->port;
	} else if (ld_scalar_int(tp, &v)) {
		if (v < 1 || v > 65535)
			ld_err(s, line, path, "targetPort", "must be between 1 and 65535");
		p->target_port = (int)v;
	} else if (tp->type == YAML_SCALAR_NODE) {
		p->target_port_name = ld_scalar(s, tp);
		if (!port_name_ok(p->target_port_name))
			ld_err(s, line, path, "targetPort",
			       "must be a port number or a port name (IANA_SVC_NAME)");
	} else {
		ld_err(s, line, path, "targetPort", "must be a port number or a port name");
	}
}

static const char *const service_spec_fields[] = {"ports",
						  "selector",
						  "clusterIP",
						  "clusterIPs",
						  "type",
						  "externalIPs",
						  "sessionAffinity",
						  "sessionAffinityConfig",
						  "loadBalancerIP",
						  "loadBalancerSourceRanges",
						  "loadBalancerClass",
						  "externalName",
						  "externalTrafficPolicy",
						  "internalTrafficPolicy",
						  "healthCheckNodePort",
						  "publishNotReadyAddresses",
						  "ipFamilies",
						  "ipFamilyPolicy",
						  "allocateLoadBalancerNodePorts",
						  "trafficDistribution",
						  NULL};

static void decode_service_ports(struct session *s, yaml_node_t *spec, struct ig_service *svc)
{
	char it[LD_PATH];
	int line;
	yaml_node_t *ports = ld_seq(s, spec, "spec", "ports", false, &line);
	if (!ports)
		return;
	svc->ports = ld_alloc(s, (ld_seq_len(ports) + 1) * sizeof(*svc->ports));
	for (size_t i = 0; i < ld_seq_len(ports); i++) {
		ld_item(it, "spec", "ports", i);
		yaml_node_t *p = ld_seq_map(s, ports, i, it);
		if (!p)
			continue;
		struct ig_service_port *sp = &svc->ports[svc->nports];
		decode_service_port(s, p, it, sp);
		for (size_t j = 0; j < svc->nports; j++) {
			const struct ig_service_port *o = &svc->ports[j];
			if (*sp->name && !strcmp(o->name, sp->name))
				ld_err(s, ig_yaml_line(p), it, "name", "duplicate port name \"%s\"",
				       sp->name);
			else if (o->port == sp->port && !strcmp(o->protocol, sp->protocol))
				ld_err(s, ig_yaml_line(p), it, "port", "duplicate port %d/%s",
				       sp->port, sp->protocol);
		}
		svc->nports++;
	}
	if (svc->nports > 1)
		for (size_t i = 0; i < svc->nports; i++)
			if (!*svc->ports[i].name)
				ld_err(s, line, "spec", "ports",
				       "every port needs a name when a Service has more than one "
				       "(spec.ports[%zu])",
				       i);
}

void ld_service(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
					    NULL};
	struct ig_service svc = {.type = "ClusterIP"};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Service", &svc.meta, false);
	/* A Service's name becomes a DNS label of its own (and environment
	 * variable names): the API server wants an RFC 1035 label. */
	const char *n = svc.meta.name;
	if (n && (!ld_dns_label(n, strlen(n), 63) || !(n[0] >= 'a' && n[0] <= 'z'))) {
		int nline;
		yaml_node_t *md = ld_get(s, root, "metadata", &nline);
		if (md)
			ld_get(s, md, "name", &nline);
		ld_err(s, nline, "metadata", "name",
		       "a DNS-1035 label must consist of lower case alphanumeric characters or "
		       "'-', start with an alphabetic character, and end with an alphanumeric "
		       "character (at most 63)");
	}
	yaml_node_t *spec = ld_map(s, root, "", "spec", false, &line);
	if (spec) {
		ld_fields(s, spec, "spec", service_spec_fields, NULL);
		char *type = ld_str(s, spec, "spec", "type", false, &line);
		ld_check_enum(s, type, line, "spec", "type", types);
		if (type)
			svc.type = type;
		char *cip = ld_str(s, spec, "spec", "clusterIP", false, &line);
		svc.headless = cip && !strcmp(cip, "None");
		if (cip && !svc.headless && *cip)
			svc.cluster_ip = cip;
		yaml_node_t *sel = ld_map(s, spec, "spec", "selector", false, &line);
		/* An empty selector is no selector: Kubernetes then manages no
		 * endpoints for the Service. */
		if (sel) {
			svc.selector = ld_labels(s, sel, line, "spec", "selector", &svc.nselector);
			svc.has_selector = svc.nselector > 0;
		}
		ld_bool(s, spec, "spec", "publishNotReadyAddresses", &line, &svc.publish_not_ready);
		decode_service_ports(s, spec, &svc);
		if (!strcmp(svc.type, "ExternalName") && !ld_get(s, spec, "externalName", &line))
			ld_err(s, ig_yaml_line(spec), "spec", "externalName",
			       "is required for type ExternalName");
	}
	if (strcmp(svc.type, "ExternalName") != 0 && svc.nports == 0 && !svc.headless)
		ld_err(s, spec ? ig_yaml_line(spec) : svc.meta.line, "spec", "ports",
		       "is required (a Service other than ExternalName or headless needs ports)");
	*LD_APPEND(s, K_SERVICE, services) = svc;
}

/* ---- EndpointSlice, Endpoints ------------------------------------------------------- */

static bool address_ok(enum ig_address_type t, const char *a)
{
	unsigned char buf[16];
	if (t == IG_ADDR_IPV4)
		return inet_pton(AF_INET, a, buf) == 1;
	if (t == IG_ADDR_IPV6)
		return inet_pton(AF_INET6, a, buf) == 1;
	return ld_dns_subdomain(a, strlen(a));
}

static void decode_endpoint_port(struct session *s, yaml_node_t *n, const char *path,
				 struct ig_endpoint_port *p, bool port_required)
{
	static const char *const fields[] = {"name", "port", "protocol", "appProtocol", NULL};
	int line;
	ld_fields(s, n, path, fields, NULL);
	p->name = ld_str(s, n, path, "name", false, &line);
	if (p->name && *p->name && !port_name_ok(p->name))
		ld_err(s, line, path, "name",
		       "must be 1 to 15 lowercase letters, digits and '-' with at least one letter "
		       "(IANA_SVC_NAME)");
	if (!p->name)
		p->name = "";
	ld_int_range(s, n, path, "port", port_required, 1, 65535, &p->port);
	p->protocol = ld_str(s, n, path, "protocol", false, &line);
	ld_check_enum(s, p->protocol, line, path, "protocol", port_protocols);
	if (!p->protocol)
		p->protocol = "TCP";
	p->app_protocol = ld_str(s, n, path, "appProtocol", false, &line);
}

static struct ig_endpoint_port *decode_endpoint_ports(struct session *s, yaml_node_t *owner,
						      const char *path, size_t max,
						      bool port_required, size_t *n)
{
	char it[LD_PATH];
	int line;
	yaml_node_t *ports = ld_seq(s, owner, path, "ports", false, &line);
	*n = 0;
	if (!ports)
		return NULL;
	ld_check_items(s, ports, line, path, "ports", 0, max);
	struct ig_endpoint_port *ps = ld_alloc(s, (ld_seq_len(ports) + 1) * sizeof(*ps));
	for (size_t i = 0; i < ld_seq_len(ports); i++) {
		ld_item(it, path, "ports", i);
		yaml_node_t *p = ld_seq_map(s, ports, i, it);
		if (p)
			decode_endpoint_port(s, p, it, &ps[(*n)++], port_required);
	}
	return ps;
}

static void decode_slice_endpoint(struct session *s, yaml_node_t *n, const char *path,
				  enum ig_address_type t, struct ig_slice_endpoint *e)
{
	static const char *const fields[] = {"addresses", "conditions", "hostname", "targetRef",
					     "nodeName",  "zone",	"hints",    NULL};
	static const char *const cond_fields[] = {"ready", "serving", "terminating", NULL};
	char it[LD_PATH];
	int line;
	ld_fields(s, n, path, fields, NULL);
	e->addresses = ld_strings(s, n, path, "addresses", &e->naddresses, &line);
	if (!ld_get(s, n, "addresses", &line))
		ld_err(s, line, path, "addresses", "is required");
	else if (e->naddresses < 1 || e->naddresses > 100)
		ld_err(s, line, path, "addresses", "must have between 1 and 100 items");
	for (size_t i = 0; i < e->naddresses; i++) {
		ld_item(it, path, "addresses", i);
		if (!address_ok(t, e->addresses[i]))
			ld_err(s, line, it, NULL, "\"%s\" is not a valid %s address",
			       e->addresses[i],
			       t == IG_ADDR_IPV4   ? "IPv4"
			       : t == IG_ADDR_IPV6 ? "IPv6"
						   : "FQDN");
	}
	e->ready = true;
	e->terminating = false;
	yaml_node_t *c = ld_map(s, n, path, "conditions", false, &line);
	bool has_serving = false;
	if (c) {
		char sub[LD_PATH];
		ld_join(sub, path, "conditions");
		ld_fields(s, c, sub, cond_fields, NULL);
		ld_bool(s, c, sub, "ready", &line, &e->ready);
		has_serving = ld_bool(s, c, sub, "serving", &line, &e->serving);
		ld_bool(s, c, sub, "terminating", &line, &e->terminating);
	}
	if (!has_serving)
		e->serving = e->ready;
}

void ld_endpoint_slice(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"addressType", "endpoints", "ports", NULL};
	static const char *const types[] = {"IPv4", "IPv6", "FQDN", NULL};
	struct ig_endpoint_slice sl = {0};
	char it[LD_PATH];
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "EndpointSlice", &sl.meta, false);
	for (size_t i = 0; i < sl.meta.nlabels; i++)
		if (!strcmp(sl.meta.labels[i].key, "kubernetes.io/service-name"))
			sl.service_name = sl.meta.labels[i].value;
	char *type = ld_str(s, root, "", "addressType", true, &line);
	ld_check_enum(s, type, line, "", "addressType", types);
	sl.address_type = !type || !strcmp(type, "IPv4") ? IG_ADDR_IPV4
			  : !strcmp(type, "IPv6")	 ? IG_ADDR_IPV6
							 : IG_ADDR_FQDN;
	if (type && !strcmp(type, "FQDN"))
		ld_warn(
		    s, line, "", "addressType",
		    "FQDN endpoints are not resolved by infergate: this EndpointSlice is ignored");
	/* Required by the schema, but the API server takes it absent and
	 * stores and serves null for a Service with no endpoints: none. */
	yaml_node_t *eps = ld_seq(s, root, "", "endpoints", false, &line);
	if (eps) {
		ld_check_items(s, eps, line, "", "endpoints", 0, 1000);
		sl.endpoints = ld_alloc(s, (ld_seq_len(eps) + 1) * sizeof(*sl.endpoints));
	}
	for (size_t i = 0; eps && i < ld_seq_len(eps); i++) {
		ld_item(it, "", "endpoints", i);
		yaml_node_t *e = ld_seq_map(s, eps, i, it);
		if (e)
			decode_slice_endpoint(s, e, it, sl.address_type,
					      &sl.endpoints[sl.nendpoints++]);
	}
	sl.ports = decode_endpoint_ports(s, root, "", 100, false, &sl.nports);
	*LD_APPEND(s, K_SLICE, slices) = sl;
}

static char **decode_addresses(struct session *s, yaml_node_t *subset, const char *path,
			       const char *key, size_t *n)
{
	static const char *const fields[] = {"ip", "hostname", "nodeName", "targetRef", NULL};
	char it[LD_PATH];
	int line;
	yaml_node_t *seq = ld_seq(s, subset, path, key, false, &line);
	*n = 0;
	if (!seq)
		return NULL;
	char **ips = ld_alloc(s, (ld_seq_len(seq) + 1) * sizeof(char *));
	for (size_t i = 0; i < ld_seq_len(seq); i++) {
		ld_item(it, path, key, i);
		yaml_node_t *a = ld_seq_map(s, seq, i, it);
		if (!a)
			continue;
		ld_fields(s, a, it, fields, NULL);
		char *ip = ld_str(s, a, it, "ip", true, &line);
		if (!ip)
			continue;
		if (!address_ok(IG_ADDR_IPV4, ip) && !address_ok(IG_ADDR_IPV6, ip)) {
			ld_err(s, line, it, "ip", "\"%s\" is not a valid IP address", ip);
			continue;
		}
		ips[(*n)++] = ip;
	}
	return ips;
}

void ld_endpoints(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"subsets", NULL};
	static const char *const subset_fields[] = {"addresses", "notReadyAddresses", "ports",
						    NULL};
	struct ig_endpoints_v1 e = {0};
	char it[LD_PATH];
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Endpoints", &e.meta, false);
	yaml_node_t *subsets = ld_seq(s, root, "", "subsets", false, &line);
	if (subsets)
		e.subsets = ld_alloc(s, (ld_seq_len(subsets) + 1) * sizeof(*e.subsets));
	for (size_t i = 0; subsets && i < ld_seq_len(subsets); i++) {
		ld_item(it, "", "subsets", i);
		yaml_node_t *sub = ld_seq_map(s, subsets, i, it);
		if (!sub)
			continue;
		struct ig_endpoints_subset *ss = &e.subsets[e.nsubsets++];
		ld_fields(s, sub, it, subset_fields, NULL);
		ss->ready = decode_addresses(s, sub, it, "addresses", &ss->nready);
		ss->not_ready = decode_addresses(s, sub, it, "notReadyAddresses", &ss->nnot_ready);
		ss->ports = decode_endpoint_ports(s, sub, it, SIZE_MAX, true, &ss->nports);
	}
	*LD_APPEND(s, K_ENDPOINTS, endpoints) = e;
}

/* ---- Secret ------------------------------------------------------------------------ */

#define MAX_SECRET_BYTES (1u << 20)

static bool secret_key_ok(const char *k)
{
	size_t len = strlen(k);
	if (len == 0 || len > 253 || !strcmp(k, ".") || !strcmp(k, ".."))
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '-' || *k == '_' || *k == '.'))
			return false;
	return true;
}

/* Secrets and ConfigMaps keep their keys alike: items has room for cap. */
static struct ig_secret_item *secret_slot(struct session *s, struct ig_secret_item *items,
					  size_t *nitems, const char *key, size_t cap)
{
	for (size_t i = 0; i < *nitems; i++)
		if (!strcmp(items[i].key, key))
			return &items[i];
	if (*nitems == cap)
		return NULL;
	struct ig_secret_item *it = &items[(*nitems)++];
	it->key = ld_strdup(s, key);
	return it;
}

/* A Secret's data (base64) then stringData (plain, overriding): what the
 * API server stores for the Secret; a ConfigMap's data (plain). Returns
 * the total size. */
static size_t decode_secret_map(struct session *s, yaml_node_t *map, const char *field, bool base64,
				struct ig_secret_item *items, size_t *nitems, size_t cap)
{
	size_t total = 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = ld_node(s, p->key), *v = ld_node(s, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
			ld_err(s, ig_yaml_line(k), field, NULL, "must map keys to strings");
			continue;
		}
		char *key = ld_scalar(s, k), path[LD_PATH];
		int line = ig_yaml_line(k);
		snprintf(path, sizeof path, "%s[%.200s]", field, key);
		if (!secret_key_ok(key)) {
			ld_err(s, line, path, NULL,
			       "a valid config key must consist of alphanumeric characters, '-', "
			       "'_' or '.'");
			continue;
		}
		const char *text = ig_yaml_is_null(v) ? "" : (const char *)v->data.scalar.value;
		size_t len = ig_yaml_is_null(v) ? 0 : v->data.scalar.length;
		if (len > MAX_SECRET_BYTES * 2) {
			ld_err(s, line, path, NULL, "is larger than 1 MiB");
			continue;
		}
		/* Room for the plain text or its decoding, and a NUL. */
		unsigned char *bytes = ld_alloc(s, len + 4);
		long n = (long)len;
		/* As the API server reads a Secret's data: Go's StdEncoding. */
		if (base64)
			n = ig_base64_decode(text, len, bytes, 0);
		else
			memcpy(bytes, text, len);
		if (n < 0) {
			/* Still an item: the key is there, only its value is wrong. */
			ld_err(s, line, path, NULL, "illegal base64 data");
			n = 0;
		}
		bytes[n] = '\0';
		struct ig_secret_item *it = secret_slot(s, items, nitems, key, cap);
		if (!it)
			continue;
		it->bytes = bytes;
		it->len = (size_t)n;
		total += (size_t)n;
	}
	return total;
}

void ld_secret(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"data", "stringData", "type", "immutable", NULL};
	struct ig_secret sec = {.type = "Opaque"};
	int line, dline, sline;
	bool immutable;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "Secret", &sec.meta, false);
	char *type = ld_str(s, root, "", "type", false, &line);
	if (type)
		sec.type = type;
	ld_bool(s, root, "", "immutable", &line, &immutable);
	yaml_node_t *data = ld_map(s, root, "", "data", false, &dline);
	yaml_node_t *sdata = ld_map(s, root, "", "stringData", false, &sline);
	size_t cap = (data ? ld_map_len(data) : 0) + (sdata ? ld_map_len(sdata) : 0);
	sec.items = ld_alloc(s, (cap + 1) * sizeof(*sec.items));
	size_t total = 0;
	if (data)
		total += decode_secret_map(s, data, "data", true, sec.items, &sec.nitems, cap);
	if (sdata)
		total +=
		    decode_secret_map(s, sdata, "stringData", false, sec.items, &sec.nitems, cap);
	if (total > MAX_SECRET_BYTES)
		ld_err(s, sec.meta.line, "", "data", "Secret data must be at most %u bytes",
		       MAX_SECRET_BYTES);
	if (!strcmp(sec.type, "kubernetes.io/tls")) {
		static const char *const keys[] = {"tls.crt", "tls.key"};
		for (size_t k = 0; k < 2; k++) {
			bool found = false;
			for (size_t i = 0; i < sec.nitems; i++)
				found |= !strcmp(sec.items[i].key, keys[k]);
			char path[32];
			snprintf(path, sizeof path, "data[%s]", keys[k]);
			if (!found)
				ld_err(s, data ? dline : sec.meta.line, path, NULL,
				       "Required value (a kubernetes.io/tls Secret needs %s)",
				       keys[k]);
		}
	}
	*LD_APPEND(s, K_SECRET, secrets) = sec;
}

/* ---- ConfigMap --------------------------------------------------------------------- */

/* *p, *len narrowed to the text without the white space around it (Go's
 * strings.TrimSpace). */
static void trim_span(const char **p, size_t *len)
{
	struct ig_str t = ig_str_trim_space((struct ig_str){*p, *len});
	*p = t.ptr;
	*len = t.len;
}

/* The same, copied into the load's arena. */
static char *trimmed_dup(struct session *s, const char *p, size_t len)
{
	trim_span(&p, &len);
	return ld_strndup(s, p, len);
}

/* data.adapters of a body-based routing ConfigMap: a YAML list of
 * strings (a scalar item is its text; null items and empty ones are
 * skipped, as GIE's router skips them; so is one with a control
 * character, which the model of no request that routes can equal).
 * Returns false when it is no such list, which makes the router refuse
 * the whole ConfigMap. */
static bool bbr_adapters(struct session *s, struct ig_configmap *cm, const char *text, size_t len,
			 char *why, size_t whylen)
{
	int line;
	if (ig_yaml_prescan(text, len, 8, 16, &line, why, whylen) != 0)
		return false;
	yaml_document_t doc;
	if (ig_yaml_load_first(text, len, &doc, why, whylen) < 0)
		return false;
	/* Nothing here may longjmp out while the document is held: the
	 * arena's own allocator, and out of memory after it is deleted. */
	bool ok = true, oom = false;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_SEQUENCE_NODE) {
		size_t n =
		    (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
		cm->bbr_adapters = ld_arena_alloc(s->box, (n + 1) * sizeof(*cm->bbr_adapters));
		oom = !cm->bbr_adapters;
		for (size_t i = 0; i < n && ok && !oom; i++) {
			yaml_node_t *it =
			    yaml_document_get_node(&doc, root->data.sequence.items.start[i]);
			if (!it || it->type != YAML_SCALAR_NODE) {
				snprintf(why, whylen, "item %zu is not a string", i);
				ok = false;
			} else if (!ig_yaml_is_null(it)) {
				const char *v = (const char *)it->data.scalar.value;
				size_t vlen = it->data.scalar.length;
				trim_span(&v, &vlen);
				if (ig_str_has_ctl((struct ig_str){v, vlen}))
					continue;
				char *a = vlen ? ld_arena_alloc(s->box, vlen + 1) : NULL;
				oom = vlen && !a;
				if (a) {
					memcpy(a, v, vlen);
					a[vlen] = '\0';
					cm->bbr_adapters[cm->nbbr_adapters++] = a;
				}
			}
		}
	} else if (root && !ig_yaml_is_null(root)) {
		snprintf(why, whylen, "not a list of strings");
		ok = false;
	}
	yaml_document_delete(&doc);
	if (oom)
		longjmp(s->jmp, JMP_OOM);
	return ok;
}

/* GIE's body-based router (v1.3-v1.5) maps each LoRA adapter to its base
 * model with the ConfigMaps labelled inference.networking.k8s.io/
 * bbr-managed: "true": data.baseModel and data.adapters. One it cannot
 * read is ignored there (an error in its log): here a warning. */
static void bbr_configmap(struct session *s, struct ig_configmap *cm, yaml_node_t *data, int dline)
{
	const char *managed = NULL;
	for (size_t i = 0; i < cm->meta.nlabels; i++)
		if (!strcmp(cm->meta.labels[i].key, "inference.networking.k8s.io/bbr-managed"))
			managed = cm->meta.labels[i].value;
	if (!managed || strcmp(managed, "true"))
		return;
	const struct ig_secret_item *base = ig_configmap_get(cm, "baseModel");
	char *name = base ? trimmed_dup(s, (const char *)base->bytes, base->len) : NULL;
	int line = dline;
	if (data)
		ld_get(s, data, "baseModel", &line);
	if (!name || !*name) {
		ld_warn(s, line, "data", "baseModel",
			"missing or empty: body-based routing ignores this ConfigMap (label "
			"inference.networking.k8s.io/bbr-managed)");
		return;
	}
	/* It becomes a request header's value. */
	const char *bp = (const char *)base->bytes;
	size_t blen = base->len;
	trim_span(&bp, &blen);
	if (ig_str_has_ctl((struct ig_str){bp, blen})) {
		ld_warn(s, line, "data", "baseModel",
			"holds a control character, which no header value may: body-based "
			"routing ignores this ConfigMap");
		return;
	}
	const struct ig_secret_item *ad = ig_configmap_get(cm, "adapters");
	char why[160] = "";
	if (ad && !bbr_adapters(s, cm, (const char *)ad->bytes, ad->len, why, sizeof why)) {
		if (data)
			ld_get(s, data, "adapters", &line);
		ld_warn(s, line, "data", "adapters",
			"must be a YAML list of adapter names (%s): body-based routing ignores "
			"this ConfigMap",
			why);
		cm->nbbr_adapters = 0;
		return;
	}
	cm->bbr_base = name;
}

void ld_configmap(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"data", "binaryData", "immutable", NULL};
	struct ig_configmap cm = {0};
	int line, dline;
	bool immutable;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "ConfigMap", &cm.meta, false);
	ld_bool(s, root, "", "immutable", &line, &immutable);
	/* binaryData holds no PEM text a BackendTLSPolicy could use (ca.crt
	 * must be in data): only its shape is checked. */
	ld_map(s, root, "", "binaryData", false, &line);
	yaml_node_t *data = ld_map(s, root, "", "data", false, &dline);
	size_t cap = data ? ld_map_len(data) : 0;
	cm.items = ld_alloc(s, (cap + 1) * sizeof(*cm.items));
	size_t total =
	    data ? decode_secret_map(s, data, "data", false, cm.items, &cm.nitems, cap) : 0;
	if (total > MAX_SECRET_BYTES)
		ld_err(s, dline, "", "data", "ConfigMap data must be at most %u bytes",
		       MAX_SECRET_BYTES);
	bbr_configmap(s, &cm, data, dline);
	*LD_APPEND(s, K_CONFIGMAP, configmaps) = cm;
}
