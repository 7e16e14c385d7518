/* Status write-back: the statuses the gateway wants, compared with the
 * objects the informers hold, written through the status subresource
 * (PUT with the object's resourceVersion: optimistic concurrency) when
 * they differ. lastTransitionTime is kept for every condition whose status
 * did not change, so an unchanged object is never written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "kube/kube_int.h"

#define CONFLICT_RETRY_MS 200u
#define FAILURE_RETRY_MS 2000u
#define PUT_BACK_FIRST_MS 1000u
#define PACE_MAX_MS 300000u
/* A change by another writer this long after our last put-back (past its
 * pause) starts the pacing over. */
#define FIGHT_QUIET_NS (60ull * 1000000000ull)
#define STATUS_FAIL_LOG_NS (600ull * 1000000000ull)

const char *ig_kube_controller(const struct ig_kube *k)
{
	return k->controller;
}

static const struct kube_kind *find_kind(const char *kind, const char *group)
{
	for (size_t i = 0; i < ig_kube_nkinds; i++)
		if (!strcmp(ig_kube_kinds[i].kind, kind) && !strcmp(ig_kube_kinds[i].group, group))
			return &ig_kube_kinds[i];
	return NULL;
}

struct informer *ig_kube_informer(struct ig_kube *k, const struct kube_kind *kind)
{
	return &k->inf[kind - ig_kube_kinds];
}

static json_t *cached(struct ig_kube *k, const struct kube_kind *kd, const char *ns,
		      const char *name)
{
	char key[600];
	snprintf(key, sizeof key, "%s/%s", kd->cluster ? "" : ns ? ns : "", name);
	return json_object_get(ig_kube_informer(k, kd)->objs, key);
}

long long ig_kube_generation(struct ig_kube *k, const char *kind, const char *group, const char *ns,
			     const char *name)
{
	const struct kube_kind *kd = find_kind(kind, group);
	json_t *o = kd ? cached(k, kd, ns, name) : NULL;
	return json_integer_value(json_object_get(json_object_get(o, "metadata"), "generation"));
}

static void want_free(struct status_want *w)
{
	if (!w)
		return;
	free(w->ns);
	free(w->name);
	json_decref(w->status);
	json_decref(w->sent);
	json_decref(w->stored);
	free(w);
}

static struct status_want *want_of(json_t *v)
{
	return (struct status_want *)(uintptr_t)json_integer_value(v);
}

static void free_wants(json_t *wants)
{
	const char *key;
	json_t *v;
	json_object_foreach(wants, key, v) want_free(want_of(v));
	json_decref(wants);
}

void ig_kube_status_begin(struct ig_kube *k)
{
	free_wants(k->wants_next);
	k->wants_next = json_object();
}

void ig_kube_status_set(struct ig_kube *k, const char *kind, const char *group, const char *ns,
			const char *name, enum ig_kube_status_mode mode, json_t *status)
{
	const struct kube_kind *kd = find_kind(kind, group);
	struct status_want *w = calloc(1, sizeof *w);
	char key[700];
	if (!kd || !w || !k->wants_next) {
		free(w);
		json_decref(status);
		return;
	}
	w->kind = kd;
	w->ns = strdup(ns && !kd->cluster ? ns : "");
	w->name = strdup(name);
	w->mode = (int)mode;
	w->status = status;
	snprintf(key, sizeof key, "%s|%s|%s|%s", kd->kind, kd->group, w->ns, name);
	/* A write in flight belongs to the object, not to this round. */
	json_t *old = json_object_get(k->wants, key);
	if (old) {
		struct status_want *o = want_of(old);
		w->in_flight = o->in_flight;
		o->in_flight = false;
		memcpy(w->conflict_rv, o->conflict_rv, sizeof w->conflict_rv);
		w->sent = json_incref(o->sent);
		w->stored = json_incref(o->stored);
		w->fail_ms = o->fail_ms;
		w->put_back_ms = o->put_back_ms;
		w->not_before_ns = o->not_before_ns;
		w->last_put_back_ns = o->last_put_back_ns;
		w->logged_fail = o->logged_fail;
		w->logged_fight = o->logged_fight;
	}
	want_free(want_of(json_object_get(k->wants_next, key)));
	json_object_set_new(k->wants_next, key, json_integer((json_int_t)(uintptr_t)w));
}

/* The Gateway API features infergate implements (pkg/features names; the
 * status lists them sorted, as the API asks): the core of the HTTP
 * profile and the HTTPRoute and GRPCRoute extended features it serves. Not listed:
 * infrastructure propagation (infergate creates no resources to label). */
static const char *const supported_features[] = {
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "GRPCRouteRequestHeaderModifier",
    "Gateway",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendRequestRedirect",
    "HTTPRouteBackendTimeout",
    "HTTPRouteBackendURLRewrite",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "ListenerSet",
    "ReferenceGrant",
};

static json_t *false_cond(const char *type, const char *reason, const char *msg, json_int_t gen,
			  const char *now)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "type", type, "status", "False", "reason",
			 reason, "message", msg, "observedGeneration", gen, "lastTransitionTime",
			 now);
}

/* GatewayClasses are not part of the configuration: the classes naming
 * our controller are Accepted here, with SupportedVersion and the
 * supported features, unless they name parameters. */
static void class_statuses(struct ig_kube *k)
{
	const struct kube_kind *kd = find_kind("GatewayClass", "gateway.networking.k8s.io");
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	const char *key;
	json_t *gc;
	json_object_foreach(ig_kube_informer(k, kd)->objs, key, gc)
	{
		json_t *spec = json_object_get(gc, "spec");
		json_t *md = json_object_get(gc, "metadata");
		const char *ctl = json_string_value(json_object_get(spec, "controllerName"));
		const char *name = json_string_value(json_object_get(md, "name"));
		if (!ctl || !name || strcmp(ctl, k->controller))
			continue;
		json_int_t gen = json_integer_value(json_object_get(md, "generation"));
		json_t *params = ig_kube_class_params(gc);
		if (params) {
			const char *pkind = json_string_value(json_object_get(params, "kind"));
			char msg[300];
			snprintf(msg, sizeof msg, "infergate takes no parameters (kind %s)",
				 pkind ? pkind : "none");
			json_t *st =
			    json_pack("{s:[o]}", "conditions",
				      false_cond("Accepted", "InvalidParameters", msg, gen, now));
			ig_kube_status_set(k, "GatewayClass", kd->group, NULL, name,
					   IG_KUBE_STATUS_WHOLE, st);
			continue;
		}
		/* SupportedVersion: the gateway reads the Gateway API at v1, which
		 * the server served when the kinds were listed. */
		json_t *st = json_pack(
		    "{s:[{s:s,s:s,s:s,s:s,s:I,s:s},{s:s,s:s,s:s,s:s,s:I,s:s}]}", "conditions",
		    "type", "Accepted", "status", "True", "reason", "Accepted", "message",
		    "Handled by infergate", "observedGeneration", gen, "lastTransitionTime", now,
		    "type", "SupportedVersion", "status", "True", "reason", "SupportedVersion",
		    "message", "Gateway API v1 is served and read", "observedGeneration", gen,
		    "lastTransitionTime", now);
		json_t *features = json_array();
		for (size_t i = 0;
		     features && i < sizeof supported_features / sizeof *supported_features; i++)
			json_array_append_new(features,
					      json_pack("{s:s}", "name", supported_features[i]));
		if (st && features)
			json_object_set_new(st, "supportedFeatures", features);
		else
			json_decref(features);
		ig_kube_status_set(k, "GatewayClass", kd->group, NULL, name, IG_KUBE_STATUS_WHOLE,
				   st);
	}
}

/* Objects the configuration left out for their errors say so in their
 * status: a Gateway is not Accepted (Invalid), an HTTPRoute not Accepted
 * by our parents (UnsupportedValue), with the loader's message. */
/* An HTTPRoute left out: Accepted=False for each parentRef to a Gateway of
 * ours, the parentRef written with its defaults. */
static json_t *left_out_parents(struct ig_kube *k, json_t *route, const char *ns, const char *msg,
				json_int_t gen, const char *now)
{
	json_t *parents = json_array(), *p;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(route, "spec"), "parentRefs"), i, p)
	{
		const char *pg = json_string_value(json_object_get(p, "group"));
		const char *pk = json_string_value(json_object_get(p, "kind"));
		const char *pns = json_string_value(json_object_get(p, "namespace"));
		const char *pn = json_string_value(json_object_get(p, "name"));
		if (!ig_kube_parent_served(k, pg, pk, pns ? pns : ns, pn))
			continue;
		json_t *ref = json_deep_copy(p);
		if (!json_object_get(ref, "group"))
			json_object_set_new(ref, "group", json_string("gateway.networking.k8s.io"));
		if (!json_object_get(ref, "kind"))
			json_object_set_new(ref, "kind", json_string("Gateway"));
		if (!json_object_get(ref, "namespace"))
			json_object_set_new(ref, "namespace", json_string(ns));
		json_array_append_new(
		    parents, json_pack("{s:o,s:s,s:[o]}", "parentRef", ref, "controllerName",
				       k->controller, "conditions",
				       false_cond("Accepted", "UnsupportedValue", msg, gen, now)));
	}
	return parents;
}

static void left_out_statuses(struct ig_kube *k)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	const char *key;
	json_t *v;
	json_object_foreach(k->left_out, key, v)
	{
		char kind[64], group[128], ns[256], name[256];
		if (sscanf(key, "%63[^|]|%127[^|]|%255[^|]|%255s", kind, group, ns, name) != 4)
			continue;
		const struct kube_kind *kd = find_kind(kind, group);
		json_t *obj = kd ? cached(k, kd, ns, name) : NULL;
		if (!obj)
			continue;
		json_int_t gen = json_integer_value(
		    json_object_get(json_object_get(obj, "metadata"), "generation"));
		const char *msg = json_string_value(v);
		if (!strcmp(kind, "Gateway") || !strcmp(kind, "ListenerSet") ||
		    !strcmp(kind, "XListenerSet")) {
			json_t *st = json_pack("{s:[o,o]}", "conditions",
					       false_cond("Accepted", "Invalid", msg, gen, now),
					       false_cond("Programmed", "Invalid", msg, gen, now));
			ig_kube_status_set(k, kind, group, ns, name, IG_KUBE_STATUS_WHOLE, st);
		} else if (!strcmp(kind, "HTTPRoute") || !strcmp(kind, "GRPCRoute")) {
			json_t *parents = left_out_parents(k, obj, ns, msg, gen, now);
			ig_kube_status_set(k, kind, group, ns, name, IG_KUBE_STATUS_PARENTS,
					   json_pack("{s:o}", "parents", parents));
		}
	}
}

static bool entry_ours(struct ig_kube *k, json_t *e, const char *obj_ns);

/* Objects the gateway says nothing of this round (HTTPRoutes no longer
 * ours: their parentRef moved to another Gateway, or their Gateway to
 * another class; pools and policies left out) that still carry our
 * entries in field: they are taken out, as GIE's and Gateway API's
 * status contracts ask of the controller that wrote them. */
static void forget(struct ig_kube *k, const char *kind, const char *group, const char *field)
{
	const struct kube_kind *kd = find_kind(kind, group);
	const char *key;
	json_t *rt;
	json_object_foreach(ig_kube_informer(k, kd)->objs, key, rt)
	{
		json_t *md = json_object_get(rt, "metadata");
		const char *ns = json_string_value(json_object_get(md, "namespace"));
		const char *name = json_string_value(json_object_get(md, "name"));
		char wkey[700];
		snprintf(wkey, sizeof wkey, "%s|%s|%s|%s", kd->kind, kd->group, ns ? ns : "",
			 name ? name : "");
		if (!name || json_object_get(k->wants_next, wkey))
			continue;
		bool ours = false;
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(json_object_get(rt, "status"), field), i, e)
		    ours |= entry_ours(k, e, ns ? ns : "");
		if (ours)
			ig_kube_status_set(k, kd->kind, kd->group, ns, name, IG_KUBE_STATUS_PARENTS,
					   json_pack("{s:[]}", field));
	}
}

void ig_kube_status_commit(struct ig_kube *k)
{
	class_statuses(k);
	left_out_statuses(k);
	forget(k, "HTTPRoute", "gateway.networking.k8s.io", "parents");
	forget(k, "GRPCRoute", "gateway.networking.k8s.io", "parents");
	forget(k, "InferencePool", "inference.networking.k8s.io", "parents");
	forget(k, "InferencePool", "inference.networking.x-k8s.io", "parent");
	forget(k, "BackendTLSPolicy", "gateway.networking.k8s.io", "ancestors");
	free_wants(k->wants);
	k->wants = k->wants_next;
	k->wants_next = NULL;
	ig_kube_status_sync(k);
}

void ig_kube_status_free(struct ig_kube *k)
{
	free_wants(k->wants);
	free_wants(k->wants_next);
	k->wants = k->wants_next = NULL;
	ig_timer_stop(k->loop, &k->status_retry);
	ig_timer_stop(k->loop, &k->status_kick);
}

/* ---- merging with what is there ---- */

/* Whether two entries are for the same parent. A field one side lacks is
 * a difference, except group: GIE's older v1alpha2 CRDs type an
 * InferencePool's parentRef as an ObjectReference, which has none, so the
 * server prunes the group we write. */
static bool same_ref(json_t *a, json_t *b)
{
	const char *key = json_object_get(a, "ancestorRef") ? "ancestorRef" : "parentRef";
	json_t *ra = json_object_get(a, key), *rb = json_object_get(b, key);
	if (!json_is_object(ra) || !json_is_object(rb))
		return json_equal(ra, rb);
	const char *f;
	json_t *v;
	json_object_foreach(ra, f, v)
	{
		json_t *o = json_object_get(rb, f);
		if (o ? !json_equal(v, o) : strcmp(f, "group") != 0)
			return false;
	}
	json_object_foreach(rb, f, v)
	{
		if (!json_object_get(ra, f) && strcmp(f, "group"))
			return false;
	}
	return true;
}

/* The entry a GIE v1alpha2 CRD puts in a new InferencePool's status by
 * default ({parentRef: {kind: Status, name: default}}, Accepted Unknown):
 * the controller that sets Accepted removes it, as GIE's API asks. */
static bool placeholder(json_t *e)
{
	json_t *ref = json_object_get(e, "parentRef");
	const char *kind = json_string_value(json_object_get(ref, "kind"));
	const char *name = json_string_value(json_object_get(ref, "name"));
	return kind && name && !strcmp(kind, "Status") && !strcmp(name, "default");
}

/* Copies lastTransitionTime from old conditions of the same type and
 * status; recurses into listeners (by name) and parents (by parentRef). */
static void carry_times(json_t *nw, json_t *old)
{
	if (!json_is_object(nw) || !json_is_object(old))
		return;
	size_t i, j;
	json_t *c, *o;
	json_array_foreach(json_object_get(nw, "conditions"), i, c)
	{
		json_array_foreach(json_object_get(old, "conditions"), j, o)
		{
			if (json_equal(json_object_get(c, "type"), json_object_get(o, "type")) &&
			    json_equal(json_object_get(c, "status"),
				       json_object_get(o, "status")) &&
			    json_object_get(o, "lastTransitionTime"))
				json_object_set(c, "lastTransitionTime",
						json_object_get(o, "lastTransitionTime"));
		}
	}
	json_array_foreach(json_object_get(nw, "listeners"), i, c)
	{
		json_array_foreach(json_object_get(old, "listeners"), j, o)
		{
			if (json_equal(json_object_get(c, "name"), json_object_get(o, "name")))
				carry_times(c, o);
		}
	}
	static const char *const lists[] = {"parents", "parent", "ancestors", NULL};
	for (const char *const *l = lists; *l; l++) {
		json_array_foreach(json_object_get(nw, *l), i, c)
		{
			json_array_foreach(json_object_get(old, *l), j, o)
			{
				if (same_ref(c, o))
					carry_times(c, o);
			}
		}
	}
}

/* Whether an entry names a Gateway that does not exist (in a namespace
 * the gateway watches): nobody's entry to keep. */
static bool gateway_gone(struct ig_kube *k, const char *group, const char *kind, const char *ns,
			 const char *name)
{
	if (!name || (kind && strcmp(kind, "Gateway")) ||
	    (group && strcmp(group, "gateway.networking.k8s.io")) ||
	    (k->opt.ns && strcmp(k->opt.ns, ns)))
		return false;
	const struct kube_kind *kd = find_kind("Gateway", "gateway.networking.k8s.io");
	return kd && !cached(k, kd, ns, name);
}

/* Whether a parents entry of the current status is ours to replace: one
 * with our controllerName; without one (GIE v1alpha2 and v1.0
 * InferencePools have none), one for a Gateway we serve, or for a Gateway
 * that no longer exists. */
static bool entry_ours(struct ig_kube *k, json_t *e, const char *obj_ns)
{
	const char *ctl = json_string_value(json_object_get(e, "controllerName"));
	if (ctl)
		return !strcmp(ctl, k->controller);
	json_t *ref = json_object_get(e, "parentRef");
	const char *group = json_string_value(json_object_get(ref, "group"));
	const char *kind = json_string_value(json_object_get(ref, "kind"));
	const char *ns = json_string_value(json_object_get(ref, "namespace"));
	const char *name = json_string_value(json_object_get(ref, "name"));
	return ig_kube_parent_served(k, group, kind, ns ? ns : obj_ns, name) ||
	       gateway_gone(k, group, kind, ns ? ns : obj_ns, name);
}

/* The status to write: ours, merged with the entries of others. */
static json_t *merged(struct ig_kube *k, struct status_want *w, json_t *cur)
{
	json_t *out;
	if (w->mode == IG_KUBE_STATUS_WHOLE) {
		out = json_deep_copy(w->status);
	} else {
		out = json_is_object(cur) ? json_deep_copy(cur) : json_object();
		const char *field;
		json_t *ours;
		json_object_foreach(w->status, field, ours)
		{
			json_t *list = json_array();
			size_t i;
			json_t *e;
			json_array_foreach(json_object_get(cur, field), i, e)
			{
				if (!entry_ours(k, e, w->ns) &&
				    !(json_array_size(ours) > 0 && placeholder(e)))
					json_array_append(list, e);
			}
			json_array_extend(list, ours);
			/* Nothing to say where nothing was said: no empty list. */
			if (json_array_size(list) == 0 && !json_object_get(cur, field))
				json_decref(list);
			else
				json_object_set_new(out, field, list);
		}
	}
	carry_times(out, cur);
	return out;
}

/* ---- writing ---- */

static void status_path(const struct status_want *w, char *buf, size_t len)
{
	const struct kube_kind *kd = w->kind;
	char prefix[200];
	if (kd->group[0])
		snprintf(prefix, sizeof prefix, "/apis/%s/%s", kd->group, kd->version);
	else
		snprintf(prefix, sizeof prefix, "/api/%s", kd->version);
	if (kd->cluster)
		snprintf(buf, len, "%s/%s/%s/status", prefix, kd->plural, w->name);
	else
		snprintf(buf, len, "%s/namespaces/%s/%s/%s/status", prefix, w->ns, kd->plural,
			 w->name);
}

static void on_retry(struct ig_loop *loop, struct ig_timer *t)
{
	ig_kube_status_sync(t->data);
}

/* The statuses are synced again at at_ns, or earlier if a sync is due
 * before: one timer serves every object's pause. */
static void retry_at(struct ig_kube *k, uint64_t at_ns)
{
	uint64_t now = ig_loop_now(k->loop);
	if (ig_timer_armed(&k->status_retry) && k->status_retry.deadline_ns <= at_ns)
		return;
	ig_timer_start_ns(k->loop, &k->status_retry, at_ns > now ? at_ns - now : 0, on_retry, k);
}

static void retry_in(struct ig_kube *k, uint64_t ms)
{
	retry_at(k, ig_loop_now(k->loop) + ms * 1000000ull);
}

static unsigned doubled(unsigned cur, unsigned first)
{
	return !cur ? first : cur >= PACE_MAX_MS / 2 ? PACE_MAX_MS : cur * 2;
}

struct write_ctx {
	struct ig_kube *k;
	char *key;
	char rv[64];  /* the resourceVersion written against */
	json_t *sent; /* the status written */
};

static const char *rv_of(json_t *obj)
{
	return json_string_value(
	    json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static void ctx_free(struct write_ctx *c)
{
	free(c->key);
	json_decref(c->sent);
	free(c);
}

static void write_dropped(void *data)
{
	ctx_free(data);
}

/* The object as the server has it now, after a 409: when it is the very
 * version the cache holds (a conflict that did not come from a newer
 * object), the write is tried again; otherwise the newer one is on its
 * way in the watch, and the sync waits for it. */
static void reread_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct write_ctx *c = r->data;
	struct ig_kube *k = c->k;
	json_t *v = k->wants ? json_object_get(k->wants, c->key) : NULL;
	struct status_want *w = v ? want_of(v) : NULL;
	json_t *obj = res->curl_code == 0 && res->status == 200
			  ? json_loadb(res->body, res->len, 0, NULL)
			  : NULL;
	json_t *have = w ? cached(k, w->kind, w->ns, w->name) : NULL;
	const char *srv = rv_of(obj), *crv = rv_of(have);
	if (w && (!srv || !crv || !strcmp(srv, crv)))
		w->conflict_rv[0] = '\0';
	json_decref(obj);
	retry_in(k, CONFLICT_RETRY_MS);
	ctx_free(c);
}

static void reread(struct ig_kube *k, struct write_ctx *c)
{
	json_t *v = json_object_get(k->wants, c->key);
	char path[1024];
	status_path(want_of(v), path, sizeof path);
	*strrchr(path, '/') = '\0'; /* the object, not its status */
	struct ig_kube_req_opts o = {
	    .on_done = reread_done, .on_drop = write_dropped, .data = c, .timeout_ms = 10000};
	if (!ig_kube_request(k->api, path, &o)) {
		want_of(v)->conflict_rv[0] = '\0';
		retry_in(k, CONFLICT_RETRY_MS);
		ctx_free(c);
	}
}

static void write_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct write_ctx *c = r->data;
	struct ig_kube *k = c->k;
	json_t *v = k->wants ? json_object_get(k->wants, c->key) : NULL;
	struct status_want *w = v ? want_of(v) : NULL;
	if (w)
		w->in_flight = false;
	if (res->curl_code == 0 && res->status == 200) {
		k->status_writes++;
		ig_debug("kube: status of %s written", c->key);
		/* The informer holds the old object until the watch brings the
		 * new one: take the answer now so the next sync compares with
		 * what was written; but only in place of the object that was
		 * written: a newer one the watch brought meanwhile (a spec
		 * change) stays. */
		json_t *obj = json_loadb(res->body, res->len, 0, NULL);
		if (w && obj) {
			/* Kept as the informer keeps it, so that the watch's echo
			 * of this write compares equal and reloads nothing. */
			ig_kube_slim(w->kind, obj);
			char key[600];
			snprintf(key, sizeof key, "%s/%s", w->ns, w->name);
			json_t *objs = ig_kube_informer(k, w->kind)->objs;
			const char *crv = rv_of(json_object_get(objs, key));
			if (crv && !strcmp(crv, c->rv))
				json_object_set(objs, key, obj);
			json_decref(w->sent);
			json_decref(w->stored);
			w->sent = json_incref(c->sent);
			w->stored = json_incref(json_object_get(obj, "status"));
			w->conflict_rv[0] = '\0';
			if (w->logged_fail)
				ig_info("kube: status of %s written", c->key);
			w->fail_ms = 0;
			w->logged_fail = false;
		}
		json_decref(obj);
		if (w && w->again)
			retry_in(k, 0);
	} else if (res->curl_code == 0 && res->status == 409) {
		/* Someone wrote first: compare again with the newer object, once
		 * the watch has brought it, never against the copy that was
		 * refused. The object is read to learn whether there is a newer
		 * one at all. */
		if (w) {
			snprintf(w->conflict_rv, sizeof w->conflict_rv, "%s", c->rv);
			reread(k, c);
			c = NULL;
		} else {
			retry_in(k, CONFLICT_RETRY_MS);
		}
	} else if (res->curl_code == 0 && res->status == 404) {
		/* The object is gone; its deletion reloads the gateway. */
	} else {
		char msg[512];
		ig_kube_describe(k->api, res, msg, sizeof msg);
		bool server_wide = res->curl_code != 0 || res->status == 401;
		if (server_wide) {
			/* The server, or our credentials: the informers meet the
			 * same failure, and it is said once for all of them. */
			ig_kube_report(k, msg);
		}
		/* Each object waits longer after each failure, and a server
		 * that asked for a pause (Retry-After on 429 or 5xx) gets it,
		 * as client-go's rest client waits. */
		unsigned long delay = FAILURE_RETRY_MS;
		if (w) {
			w->fail_ms = doubled(w->fail_ms, FAILURE_RETRY_MS);
			delay = w->fail_ms;
		}
		if (res->retry_after_ms > delay)
			delay = res->retry_after_ms;
		/* Said once per object, and once in ten minutes for all
		 * objects that fail alike (a role without status rights
		 * refuses them all). */
		uint64_t now = ig_loop_now(k->loop);
		if (!server_wide && (!w || !w->logged_fail) &&
		    (k->status_fail_logged != (int)res->status ||
		     now - k->status_fail_logged_ns > STATUS_FAIL_LOG_NS)) {
			ig_warn("kube: writing the status of %s: %s; trying again in %lus, "
				"then less often",
				c->key, msg, (delay + 999) / 1000);
			k->status_fail_logged = (int)res->status;
			k->status_fail_logged_ns = now;
		} else {
			ig_debug("kube: writing the status of %s: %s", c->key, msg);
		}
		if (w) {
			w->logged_fail = true;
			w->not_before_ns = now + delay * 1000000ull;
		}
		retry_in(k, delay);
	}
	if (c)
		ctx_free(c);
}

static void sync_one(struct ig_kube *k, const char *key, struct status_want *w)
{
	json_t *obj = cached(k, w->kind, w->ns, w->name);
	if (!obj)
		return;
	if (w->in_flight) {
		w->again = true;
		return;
	}
	const char *rv = rv_of(obj);
	if (w->conflict_rv[0] && rv && !strcmp(rv, w->conflict_rv))
		return; /* the watch has not brought the newer object yet */
	uint64_t now = ig_loop_now(k->loop);
	if (now < w->not_before_ns) {
		retry_at(k, w->not_before_ns);
		return;
	}
	w->conflict_rv[0] = '\0';
	w->again = false;
	json_t *cur = json_object_get(obj, "status");
	json_t *st = merged(k, w, cur);
	if (json_equal(st, cur) || (!cur && json_object_size(st) == 0) ||
	    (w->sent && json_equal(st, w->sent) && json_equal(cur, w->stored))) {
		json_decref(st);
		return;
	}
	/* What we wrote stands unchanged in our wish, and someone else has
	 * changed it on the server (a second gateway with the same controller
	 * name and no --leader-elect, say): put back, but each time later
	 * while it keeps happening, so that two writers do not trade writes
	 * as fast as the server takes them. */
	if (w->sent && w->stored && json_equal(st, w->sent)) {
		uint64_t due = w->last_put_back_ns + w->put_back_ms * 1000000ull;
		if (w->last_put_back_ns && now < due) {
			json_decref(st);
			w->not_before_ns = due;
			retry_at(k, due);
			return;
		}
		bool fight = w->last_put_back_ns && now - due < FIGHT_QUIET_NS;
		w->put_back_ms = fight ? doubled(w->put_back_ms, PUT_BACK_FIRST_MS) : 0;
		w->last_put_back_ns = now;
		if (fight && !w->logged_fight) {
			ig_warn("kube: the status of %s keeps being changed by another writer "
				"(a second gateway with controller name %s and no "
				"--leader-elect?); putting it back, less and less often",
				key, k->controller);
			w->logged_fight = true;
		}
	}
	json_t *body = json_deep_copy(obj);
	json_object_set(body, "status", st);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct write_ctx *c = calloc(1, sizeof *c);
	char path[1024];
	status_path(w, path, sizeof path);
	if (!text || !c || !(c->key = strdup(key))) {
		free(text);
		free(c);
		json_decref(st);
		return;
	}
	c->k = k;
	c->sent = st;
	snprintf(c->rv, sizeof c->rv, "%s", rv ? rv : "");
	struct ig_kube_req_opts o = {.method = "PUT",
				     .body = text,
				     .on_done = write_done,
				     .on_drop = write_dropped,
				     .data = c,
				     .timeout_ms = 10000};
	if (ig_kube_request(k->api, path, &o))
		w->in_flight = true;
	else
		ctx_free(c);
	free(text);
}

void ig_kube_status_sync(struct ig_kube *k)
{
	if (!k->leader || !k->wants)
		return;
	const char *key;
	json_t *v;
	json_object_foreach(k->wants, key, v) sync_one(k, key, want_of(v));
}

static void on_kick(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_kube *k = t->data;
	if (!k->leader || !k->wants)
		return;
	const char *key;
	json_t *v;
	json_object_foreach(k->wants, key, v)
	{
		struct status_want *w = want_of(v);
		if (w->dirty) {
			w->dirty = false;
			sync_one(k, key, w);
		}
	}
}

void ig_kube_status_changed(struct ig_kube *k, const struct kube_kind *kind, json_t *obj)
{
	if (!k->leader || !k->wants)
		return;
	json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	char key[700];
	snprintf(key, sizeof key, "%s|%s|%s|%s", kind->kind, kind->group,
		 ns && !kind->cluster ? ns : "", name ? name : "");
	json_t *v = json_object_get(k->wants, key);
	if (!v)
		return;
	/* From inside the watch's callback curl takes no new request: the
	 * write goes out from a timer. */
	want_of(v)->dirty = true;
	ig_timer_start(k->loop, &k->status_kick, 0, on_kick, k);
}
