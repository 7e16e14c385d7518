/* From the objects the informers hold to a configuration: the objects the
 * gateway is responsible for, each written as its own JSON document (YAML
 * reads JSON) named "kube:Kind/namespace/name", loaded together by the
 * configuration loader the files use. What is ours:
 * - Gateways whose GatewayClass has spec.controllerName equal to ours (and
 *   no parametersRef: infergate takes no parameters);
 * - HTTPRoutes with a parentRef to one of those;
 * - the TLS Secrets and CA ConfigMaps those Gateways, their listeners and
 *   ListenerSets name (certificates, the backend client certificate,
 *   client certificate validation), the ConfigMaps of
 *   BackendTLSPolicies, and those of body-based routing (labelled
 *   inference.networking.k8s.io/bbr-managed: "true");
 * - the Pods a pool or a Service of their namespace selects;
 * - every pool, model, objective, rewrite, grant, Service, EndpointSlice
 *   and Namespace (references decide what is used).
 * Status is output and is left out, except a Pod's podIP and conditions.
 * A Pod without conditions is not Ready here (the kubelet has not reported
 * it yet), while a manifest file's Pod without conditions is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kube/kube_int.h"

#define MAX_ROUNDS 4

/* The texts to load, and beside each the object it was made from. */
struct source {
	const struct kube_kind *kind;
	json_t *obj;
	bool stub; /* the text is a failed object's fail-closed stand-in */
};

struct texts {
	struct ig_config_text *v;
	struct source *src;
	size_t n, cap;
};

static const char *str_at(json_t *o, const char *a, const char *b)
{
	json_t *x = json_object_get(o, a);
	return json_string_value(b ? json_object_get(x, b) : x);
}

static bool is_ours_class(struct ig_kube *k, const char *cls)
{
	json_t *classes = k->inf[0].objs; /* GatewayClass: first in the table */
	char key[300];
	snprintf(key, sizeof key, "/%s", cls ? cls : "");
	json_t *gc = json_object_get(classes, key);
	const char *ctl = str_at(gc, "spec", "controllerName");
	return ctl && !strcmp(ctl, k->controller) && !ig_kube_class_params(gc);
}

static struct informer *find_inf(struct ig_kube *k, const char *kind)
{
	for (size_t i = 0; i < ig_kube_nkinds; i++)
		if (!strcmp(ig_kube_kinds[i].kind, kind))
			return &k->inf[i];
	return NULL;
}

bool ig_kube_gateway_served(struct ig_kube *k, const char *ns, const char *name)
{
	struct informer *gws = find_inf(k, "Gateway");
	char key[600];
	snprintf(key, sizeof key, "%s/%s", ns, name);
	json_t *gw = json_object_get(gws->objs, key);
	return gw && is_ours_class(k, str_at(gw, "spec", "gatewayClassName"));
}

/* A ListenerSet's parent Gateway is ours. */
static bool listener_set_ours(struct ig_kube *k, json_t *ls)
{
	json_t *pr = json_object_get(json_object_get(ls, "spec"), "parentRef");
	const char *kind = str_at(pr, "kind", NULL);
	const char *group = str_at(pr, "group", NULL);
	const char *ns = str_at(pr, "namespace", NULL);
	const char *name = str_at(pr, "name", NULL);
	const char *lns = str_at(ls, "metadata", "namespace");
	return name && (!kind || !strcmp(kind, "Gateway")) &&
	       (!group || !strcmp(group, "gateway.networking.k8s.io")) &&
	       ig_kube_gateway_served(k,
				      ns    ? ns
				      : lns ? lns
					    : "default",
				      name);
}

bool ig_kube_parent_served(struct ig_kube *k, const char *group, const char *kind, const char *ns,
			   const char *name)
{
	if (!name)
		return false;
	if (!kind || !strcmp(kind, "Gateway"))
		return ig_kube_gateway_served(k, ns, name);
	bool v1 =
	    !strcmp(kind, "ListenerSet") && (!group || !strcmp(group, "gateway.networking.k8s.io"));
	bool x =
	    !strcmp(kind, "XListenerSet") && group && !strcmp(group, "gateway.networking.x-k8s.io");
	if (!v1 && !x)
		return false;
	char key[600];
	snprintf(key, sizeof key, "%s/%s", ns, name);
	json_t *ls = json_object_get(find_inf(k, kind)->objs, key);
	return ls && listener_set_ours(k, ls);
}

static bool route_ours(struct ig_kube *k, json_t *route)
{
	const char *rns = str_at(route, "metadata", "namespace");
	json_t *refs = json_object_get(json_object_get(route, "spec"), "parentRefs");
	size_t i;
	json_t *p;
	json_array_foreach(refs, i, p)
	{
		const char *kind = str_at(p, "kind", NULL);
		const char *group = str_at(p, "group", NULL);
		const char *ns = str_at(p, "namespace", NULL);
		const char *name = str_at(p, "name", NULL);
		if (ig_kube_parent_served(k, group, kind, ns ? ns : rns ? rns : "default", name))
			return true;
	}
	return false;
}

/* What a Gateway or ListenerSet may name: the Secrets of its certificates,
 * the ConfigMaps of its client certificate validation. */
enum used_kind { USED_SECRET, USED_CONFIGMAP };

/* Whether reference ref names object ns/name of kind; a reference without
 * a kind names a Secret (SecretObjectReference's default), one without a
 * namespace one of its owner's namespace. */
static bool ref_names(json_t *ref, enum used_kind kind, const char *owner_ns, const char *ns,
		      const char *name)
{
	const char *rkind = str_at(ref, "kind", NULL);
	const char *rns = str_at(ref, "namespace", NULL);
	const char *rname = str_at(ref, "name", NULL);
	if (kind == USED_SECRET ? rkind && strcmp(rkind, "Secret")
				: !rkind || strcmp(rkind, "ConfigMap"))
		return false;
	return rname && !strcmp(rname, name) && !strcmp(rns ? rns : owner_ns ? owner_ns : "", ns);
}

static bool refs_name(json_t *refs, enum used_kind kind, const char *owner_ns, const char *ns,
		      const char *name)
{
	size_t i;
	json_t *ref;
	json_array_foreach(refs, i, ref)
	{
		if (ref_names(ref, kind, owner_ns, ns, name))
			return true;
	}
	return false;
}

static json_t *at(json_t *o, const char *a, const char *b, const char *c)
{
	o = json_object_get(o, a);
	o = b ? json_object_get(o, b) : o;
	return c ? json_object_get(o, c) : o;
}

/* The references the loader reads from listeners (config/load_gateway.c):
 * tls.certificateRefs, and tls.frontendValidation.caCertificateRefs (the
 * client certificate validation of Gateway API v1.1-v1.3). */
static bool listeners_name(json_t *spec, enum used_kind kind, const char *owner_ns, const char *ns,
			   const char *name)
{
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(spec, "listeners"), i, l)
	{
		json_t *tls = json_object_get(l, "tls");
		json_t *refs = kind == USED_SECRET
				   ? json_object_get(tls, "certificateRefs")
				   : at(tls, "frontendValidation", "caCertificateRefs", NULL);
		if (refs_name(refs, kind, owner_ns, ns, name))
			return true;
	}
	return false;
}

/* The references the loader reads from a Gateway's spec beside its
 * listeners: the client certificate it presents to backends
 * (spec.tls.backend, and spec.backendTLS of Gateway API v1.2-v1.3), and
 * the CA certificates of client certificate validation (spec.tls.frontend:
 * default and perPort). */
static bool gateway_spec_names(json_t *spec, enum used_kind kind, const char *owner_ns,
			       const char *ns, const char *name)
{
	if (kind == USED_SECRET) {
		json_t *a = at(spec, "tls", "backend", "clientCertificateRef");
		json_t *b = at(spec, "backendTLS", "clientCertificateRef", NULL);
		return (a && ref_names(a, kind, owner_ns, ns, name)) ||
		       (b && ref_names(b, kind, owner_ns, ns, name));
	}
	json_t *fe = at(spec, "tls", "frontend", NULL);
	if (refs_name(at(fe, "default", "validation", "caCertificateRefs"), kind, owner_ns, ns,
		      name))
		return true;
	size_t i;
	json_t *pp;
	json_array_foreach(json_object_get(fe, "perPort"), i, pp)
	{
		if (refs_name(at(pp, "tls", "validation", "caCertificateRefs"), kind, owner_ns, ns,
			      name))
			return true;
	}
	return false;
}

/* Whether a served Gateway, or a ListenerSet of one, names the Secret or
 * ConfigMap ns/name where the loader reads it: the others of the cluster
 * are none of the gateway's business. */
static bool gateway_used(struct ig_kube *k, enum used_kind kind, const char *ns, const char *name)
{
	static const char *const kinds[] = {"Gateway", "ListenerSet", "XListenerSet"};
	for (size_t kk = 0; kk < sizeof kinds / sizeof kinds[0]; kk++) {
		struct informer *gws = find_inf(k, kinds[kk]);
		const char *key;
		json_t *gw;
		json_object_foreach(gws->objs, key, gw)
		{
			const char *gns = str_at(gw, "metadata", "namespace");
			json_t *spec = json_object_get(gw, "spec");
			if (kk == 0 ? !is_ours_class(k, str_at(gw, "spec", "gatewayClassName"))
				    : !listener_set_ours(k, gw))
				continue;
			if (listeners_name(spec, kind, gns, ns, name) ||
			    (kk == 0 && gateway_spec_names(spec, kind, gns, ns, name)))
				return true;
		}
	}
	return false;
}

/* Whether every pair of a non-empty selector is among the labels. */
static bool selects(json_t *selector, json_t *labels)
{
	if (!json_is_object(selector) || json_object_size(selector) == 0)
		return false;
	const char *key;
	json_t *v;
	json_object_foreach(selector, key, v)
	{
		if (!json_equal(v, json_object_get(labels, key)))
			return false;
	}
	return true;
}

/* Only Pods some pool or Service of their namespace selects can be
 * endpoints: the others are not loaded (a cluster has many more Pods
 * than model servers). */
static bool pod_wanted(struct ig_kube *k, json_t *pod)
{
	const char *ns = str_at(pod, "metadata", "namespace");
	json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
	if (!ns || !json_is_object(labels))
		return false;
	for (size_t i = 0; i < ig_kube_nkinds; i++) {
		const char *kind = ig_kube_kinds[i].kind;
		bool pool = !strcmp(kind, "InferencePool");
		if (!pool && strcmp(kind, "Service"))
			continue;
		const char *key;
		json_t *o;
		json_object_foreach(k->inf[i].objs, key, o)
		{
			const char *ons = str_at(o, "metadata", "namespace");
			if (!ons || strcmp(ons, ns))
				continue;
			json_t *sel = json_object_get(json_object_get(o, "spec"), "selector");
			/* v1 pools: selector.matchLabels; v1alpha2 pools and
			 * Services: a map. */
			if (pool && json_object_get(sel, "matchLabels"))
				sel = json_object_get(sel, "matchLabels");
			if (selects(sel, labels))
				return true;
		}
	}
	return false;
}

/* Whether ConfigMap ns/name holds CA certificates the configuration
 * names: a BackendTLSPolicy of namespace ns among its caCertificateRefs, or
 * client certificate validation of a served Gateway or of its
 * ListenerSets. */
static bool configmap_used(struct ig_kube *k, const char *ns, const char *name)
{
	if (gateway_used(k, USED_CONFIGMAP, ns, name))
		return true;
	struct informer *ps = find_inf(k, "BackendTLSPolicy");
	const char *key;
	json_t *p;
	json_object_foreach(ps->objs, key, p)
	{
		const char *pns = str_at(p, "metadata", "namespace");
		if (!pns || strcmp(pns, ns))
			continue;
		json_t *refs = json_object_get(
		    json_object_get(json_object_get(p, "spec"), "validation"), "caCertificateRefs");
		size_t i;
		json_t *ref;
		json_array_foreach(refs, i, ref)
		{
			const char *kind = str_at(ref, "kind", NULL);
			const char *rname = str_at(ref, "name", NULL);
			if (kind && !strcmp(kind, "ConfigMap") && rname && !strcmp(rname, name))
				return true;
		}
	}
	return false;
}

static bool wanted(struct ig_kube *k, const struct kube_kind *kd, json_t *obj)
{
	if (!strcmp(kd->kind, "Pod"))
		return pod_wanted(k, obj);
	if (!strcmp(kd->kind, "GatewayClass"))
		return false; /* not a kind the loader reads: it only selects Gateways */
	if (!strcmp(kd->kind, "Gateway"))
		return is_ours_class(k, str_at(obj, "spec", "gatewayClassName"));
	if (!strcmp(kd->kind, "HTTPRoute") || !strcmp(kd->kind, "GRPCRoute"))
		return route_ours(k, obj);
	if (!strcmp(kd->kind, "ListenerSet") || !strcmp(kd->kind, "XListenerSet"))
		return listener_set_ours(k, obj);
	if (!strcmp(kd->kind, "Secret")) {
		const char *ns = str_at(obj, "metadata", "namespace");
		const char *name = str_at(obj, "metadata", "name");
		return ns && name && gateway_used(k, USED_SECRET, ns, name);
	}
	if (!strcmp(kd->kind, "ConfigMap")) {
		const char *ns = str_at(obj, "metadata", "namespace");
		const char *name = str_at(obj, "metadata", "name");
		/* Body-based routing's map of adapters to base models. */
		const char *bbr = str_at(json_object_get(obj, "metadata"), "labels",
					 "inference.networking.k8s.io/bbr-managed");
		if (bbr && !strcmp(bbr, "true"))
			return true;
		return ns && name && configmap_used(k, ns, name);
	}
	return true;
}

static json_t *trimmed_meta(json_t *md)
{
	static const char *const keep[] = {"name",	 "namespace",	      "labels",
					   "generation", "creationTimestamp", "deletionTimestamp",
					   "uid",	 "resourceVersion",   NULL};
	json_t *out = json_object();
	for (const char *const *f = keep; *f; f++) {
		json_t *v = json_object_get(md, *f);
		if (v)
			json_object_set(out, *f, v);
	}
	return out;
}

/* A Pod's status as the loader needs it: addresses and the Ready
 * condition, made False when the kubelet has reported none. */
static json_t *pod_status(json_t *st)
{
	json_t *out = json_object();
	json_t *ip = json_object_get(st, "podIP"), *ips = json_object_get(st, "podIPs");
	if (ip)
		json_object_set(out, "podIP", ip);
	if (ips)
		json_object_set(out, "podIPs", ips);
	json_t *conds = json_array(), *c;
	size_t i;
	bool ready_seen = false;
	json_array_foreach(json_object_get(st, "conditions"), i, c)
	{
		const char *type = str_at(c, "type", NULL);
		const char *status = str_at(c, "status", NULL);
		if (!type || !status || strcmp(type, "Ready"))
			continue;
		ready_seen = true;
		json_array_append_new(conds,
				      json_pack("{s:s,s:s}", "type", type, "status", status));
	}
	if (!ready_seen)
		json_array_append_new(conds,
				      json_pack("{s:s,s:s}", "type", "Ready", "status", "False"));
	json_object_set_new(out, "conditions", conds);
	return out;
}

static json_t *clean(const struct kube_kind *kd, json_t *obj)
{
	json_t *out = json_object();
	char api[200];
	if (kd->group[0])
		snprintf(api, sizeof api, "%s/%s", kd->group, kd->version);
	else
		snprintf(api, sizeof api, "%s", kd->version);
	json_object_set_new(out, "apiVersion", json_string(api));
	json_object_set_new(out, "kind", json_string(kd->kind));
	json_object_set_new(out, "metadata", trimmed_meta(json_object_get(obj, "metadata")));
	bool pod = !strcmp(kd->kind, "Pod");
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		if (!strcmp(key, "apiVersion") || !strcmp(key, "kind") ||
		    !strcmp(key, "metadata") || !strcmp(key, "status"))
			continue;
		if (pod || !strcmp(kd->kind, "Namespace"))
			continue; /* their spec configures nothing here */
		json_object_set(out, key, v);
	}
	if (pod)
		json_object_set_new(out, "status", pod_status(json_object_get(obj, "status")));
	return out;
}

/* jansson writes UTF-8 as is, and YAML reads it, except for characters
 * YAML does not allow in a document or reads as line breaks: DEL, the C1
 * controls (NEL among them), U+2028, U+2029, U+FFFE and U+FFFF. Those are
 * written as \u escapes, which YAML decodes to the same characters. They
 * can only be inside strings (JSON's structure is ASCII), so the
 * rewriting needs no parsing. Takes text; returns the text to use. */
static char *yaml_safe(char *text)
{
	if (!text)
		return NULL;
	size_t n = 0, len = strlen(text);
	for (size_t i = 0; i < len; i++) {
		unsigned char a = (unsigned char)text[i];
		n += a == 0x7f || (a == 0xc2 && i + 1 < len && (unsigned char)text[i + 1] < 0xa0) ||
		     (a == 0xe2 && i + 2 < len && (unsigned char)text[i + 1] == 0x80 &&
		      ((unsigned char)text[i + 2] == 0xa8 || (unsigned char)text[i + 2] == 0xa9)) ||
		     (a == 0xef && i + 2 < len && (unsigned char)text[i + 1] == 0xbf &&
		      (unsigned char)text[i + 2] >= 0xbe);
	}
	if (n == 0)
		return text;
	char *out = malloc(len + n * 6 + 1), *o = out;
	if (!out) {
		free(text);
		return NULL;
	}
	for (size_t i = 0; i < len;) {
		unsigned char a = (unsigned char)text[i];
		unsigned b = i + 1 < len ? (unsigned char)text[i + 1] : 0;
		unsigned c = i + 2 < len ? (unsigned char)text[i + 2] : 0;
		unsigned cp = 0, used = 0;
		if (a == 0x7f)
			cp = 0x7f, used = 1;
		else if (a == 0xc2 && b >= 0x80 && b < 0xa0)
			cp = b, used = 2;
		else if (a == 0xe2 && b == 0x80 && (c == 0xa8 || c == 0xa9))
			cp = 0x2000 | (0x28 + (c - 0xa8)), used = 3;
		else if (a == 0xef && b == 0xbf && c >= 0xbe)
			cp = 0xffbe + (c - 0xbe) + 0x40, used = 3;
		if (!used) {
			*o++ = text[i++];
			continue;
		}
		o += sprintf(o, "\\u%04X", cp);
		i += used;
	}
	*o = '\0';
	free(text);
	return out;
}

static int grow(struct texts *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct ig_config_text *v = realloc(t->v, cap * sizeof *v);
	if (v)
		t->v = v;
	struct source *src = realloc(t->src, cap * sizeof *src);
	if (src)
		t->src = src;
	if (!v || !src)
		return -1;
	t->cap = cap;
	return 0;
}

static int add_text(struct texts *t, const struct kube_kind *kd, json_t *obj)
{
	const char *ns = str_at(obj, "metadata", "namespace");
	const char *name = str_at(obj, "metadata", "name");
	json_t *c = clean(kd, obj);
	char *text = yaml_safe(json_dumps(c, JSON_INDENT(1)));
	json_decref(c);
	char *label = NULL;
	if (!text || asprintf(&label, "kube:%s/%s%s%s", kd->kind, ns ? ns : "", ns ? "/" : "",
			      name ? name : "?") < 0) {
		free(text);
		return -1;
	}
	if (t->n == t->cap && grow(t) < 0) {
		free(text);
		free(label);
		return -1;
	}
	t->src[t->n] = (struct source){.kind = kd, .obj = obj, .stub = false};
	t->v[t->n++] = (struct ig_config_text){.name = label, .text = text, .len = strlen(text)};
	return 0;
}

static void texts_free(struct texts *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free((char *)t->v[i].name);
		free((char *)t->v[i].text);
	}
	free(t->v);
	free(t->src);
}

/* The options' extra manifest: a text of its own, with no API object. */
static int add_extra(struct texts *t, const char *text)
{
	char *copy = strdup(text), *label = strdup("--endpoint-selector");
	if (!copy || !label || (t->n == t->cap && grow(t) < 0)) {
		free(copy);
		free(label);
		return -1;
	}
	t->src[t->n] = (struct source){.kind = NULL, .obj = NULL};
	t->v[t->n++] = (struct ig_config_text){.name = label, .text = copy, .len = strlen(copy)};
	return 0;
}

static int build(struct ig_kube *k, struct texts *t)
{
	if (k->opt.extra_text && add_extra(t, k->opt.extra_text) < 0)
		return -1;
	for (size_t i = 0; i < ig_kube_nkinds; i++) {
		const char *key;
		json_t *obj;
		json_object_foreach(k->inf[i].objs, key, obj)
		{
			if (wanted(k, &ig_kube_kinds[i], obj) &&
			    add_text(t, &ig_kube_kinds[i], obj) < 0)
				return -1;
		}
	}
	return 0;
}

static void move_diag(struct ig_diags *to, struct ig_diag *d)
{
	struct ig_diag *items = realloc(to->items, (to->n + 1) * sizeof *items);
	if (!items) {
		free(d->file);
		free(d->path);
		free(d->msg);
		return;
	}
	to->items = items;
	to->items[to->n++] = *d;
}

static void left_out(struct ig_diags *to, const char *name)
{
	struct ig_diag d = {.line = 0, .warning = true};
	d.file = strdup(name);
	d.path = strdup("");
	d.msg = strdup("left out of the configuration because of the errors above");
	if (d.file && d.path && d.msg)
		move_diag(to, &d);
	else {
		free(d.file);
		free(d.path);
		free(d.msg);
	}
}

/* Drops every text that has an error in diags; moves those errors to
 * `keep` and frees the rest. Returns how many texts were dropped. */
static void note_left_out(struct ig_kube *k, const struct source *src, const struct ig_diag *g)
{
	if (!src->kind) /* the extra manifest: its errors are in the log */
		return;
	json_t *md = json_object_get(src->obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	char key[700], msg[700];
	snprintf(key, sizeof key, "%s|%s|%s|%s", src->kind->kind, src->kind->group, ns ? ns : "",
		 name ? name : "");
	if (json_object_get(k->left_out, key))
		return;
	if (g->line > 0)
		snprintf(msg, sizeof msg, "line %d: %s%s%s", g->line, g->path, *g->path ? ": " : "",
			 g->msg);
	else
		snprintf(msg, sizeof msg, "%s%s%s", g->path, *g->path ? ": " : "", g->msg);
	json_object_set_new(k->left_out, key, json_string(msg));
}

/* A BackendTLSPolicy that failed to load must still keep its targets
 * from clear text: its text becomes a policy with the same targetRefs
 * that the loader marks Invalid (an option infergate does not support),
 * so the Services it names are refused as backends. 0, or -1 when no
 * stand-in can be made (its targetRefs are what failed, or no memory). */
static int tls_policy_stub(struct texts *t, size_t i)
{
	struct source *src = &t->src[i];
	if (src->stub || !src->kind || strcmp(src->kind->kind, "BackendTLSPolicy"))
		return -1;
	json_t *md = json_object_get(src->obj, "metadata");
	json_t *refs = json_object_get(json_object_get(src->obj, "spec"), "targetRefs");
	if (!json_is_array(refs))
		return -1;
	json_t *stub = json_pack(
	    "{s:s,s:s,s:{s:O,s:O},s:{s:O,s:{s:s,s:s},s:{s:s}}}", "apiVersion",
	    "gateway.networking.k8s.io/v1", "kind", "BackendTLSPolicy", "metadata", "name",
	    json_object_get(md, "name"), "namespace", json_object_get(md, "namespace"), "spec",
	    "targetRefs", refs, "validation", "wellKnownCACertificates", "System", "hostname",
	    "left-out.invalid", "options", "infergate.dev/left-out", "the policy failed to load");
	char *text = stub ? yaml_safe(json_dumps(stub, JSON_INDENT(1))) : NULL;
	json_decref(stub);
	if (!text)
		return -1;
	free((char *)t->v[i].text);
	t->v[i].text = text;
	t->v[i].len = strlen(text);
	src->stub = true;
	return 0;
}

static size_t drop_failed(struct ig_kube *k, struct texts *t, struct ig_diags *round,
			  struct ig_diags *keep)
{
	size_t dropped = 0;
	for (size_t i = 0; i < t->n;) {
		bool bad = false;
		for (size_t d = 0; d < round->n && !bad; d++)
			bad = !round->items[d].warning && round->items[d].file &&
			      !strcmp(round->items[d].file, t->v[i].name);
		if (!bad) {
			i++;
			continue;
		}
		for (size_t d = 0; d < round->n; d++) {
			struct ig_diag *g = &round->items[d];
			if (!g->warning && g->file && !strcmp(g->file, t->v[i].name)) {
				note_left_out(k, &t->src[i], g);
				move_diag(keep, g);
				g->file = g->path = g->msg = NULL;
			}
		}
		left_out(keep, t->v[i].name);
		dropped++;
		if (tls_policy_stub(t, i) == 0) {
			i++;
			continue;
		}
		free((char *)t->v[i].name);
		free((char *)t->v[i].text);
		t->src[i] = t->src[t->n - 1];
		t->v[i] = t->v[--t->n];
	}
	/* Errors that name no object (out of memory, say) are kept too. */
	for (size_t d = 0; d < round->n; d++) {
		struct ig_diag *g = &round->items[d];
		if (g->file && !g->warning) {
			move_diag(keep, g);
			g->file = g->path = g->msg = NULL;
		}
	}
	ig_diags_free(round);
	return dropped;
}

int ig_kube_load(struct ig_kube *k, struct ig_config **out, struct ig_diags *diags)
{
	struct texts t = {0};
	if (build(k, &t) < 0) {
		ig_diags_add(diags, false, "infergate", 0, NULL, "out of memory");
		ig_diags_resource(diags, ENOMEM);
		texts_free(&t);
		return -1;
	}
	int rc = -1;
	json_decref(k->left_out);
	k->left_out = json_object();
	for (int round = 0; round < MAX_ROUNDS; round++) {
		struct ig_diags d = {0};
		rc = ig_config_load_texts(t.v, t.n, out, &d);
		if (rc == 0) {
			for (size_t i = 0; i < d.n; i++)
				move_diag(diags, &d.items[i]);
			free(d.items);
			break;
		}
		/* A load that failed for want of resources says nothing of the
		 * objects: none is dropped, and the reload is tried again. */
		if (d.resource) {
			ig_diags_resource(diags, d.resource);
			for (size_t i = 0; i < d.n; i++)
				move_diag(diags, &d.items[i]);
			free(d.items);
			break;
		}
		/* Errors that name no object (out of memory) cannot be dropped. */
		if (drop_failed(k, &t, &d, diags) == 0)
			break;
	}
	texts_free(&t);
	return rc;
}
