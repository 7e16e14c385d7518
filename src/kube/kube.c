/* The Kubernetes source: credentials, one informer per kind, and the
 * debounce that turns a burst of changes into one reload. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "kube/kube_int.h"

#define GW "gateway.networking.k8s.io"
#define GIE "inference.networking.k8s.io"
#define XGIE "inference.networking.x-k8s.io"
#define LLMD "llm-d.ai"

const struct kube_kind ig_kube_kinds[] = {
    {GW, "v1", "gatewayclasses", "GatewayClass", true, NULL},
    {GW, "v1", "gateways", "Gateway", false, NULL},
    /* More listeners for Gateways: v1 since Gateway API v1.5, the
     * experimental XListenerSet of v1.3-v1.4 before that. */
    {GW, "v1", "listenersets", "ListenerSet", false, NULL},
    {"gateway.networking.x-k8s.io", "v1alpha1", "xlistenersets", "XListenerSet", false, NULL},
    {GW, "v1", "httproutes", "HTTPRoute", false, NULL},
    {GW, "v1", "grpcroutes", "GRPCRoute", false, NULL},
    {GW, "v1beta1", "referencegrants", "ReferenceGrant", false, NULL},
    /* How to reach a Service's pods over TLS (the CA certificates are in
     * ConfigMaps, below). */
    {GW, "v1", "backendtlspolicies", "BackendTLSPolicy", false, NULL},
    {GIE, "v1", "inferencepools", "InferencePool", false, NULL},
    {XGIE, "v1alpha2", "inferencepools", "InferencePool", false, NULL},
    {XGIE, "v1alpha2", "inferencemodels", "InferenceModel", false, NULL},
    {XGIE, "v1alpha2", "inferenceobjectives", "InferenceObjective", false, NULL},
    {LLMD, "v1alpha2", "inferenceobjectives", "InferenceObjective", false, NULL},
    {XGIE, "v1alpha2", "inferencemodelrewrites", "InferenceModelRewrite", false, NULL},
    {LLMD, "v1alpha2", "inferencemodelrewrites", "InferenceModelRewrite", false, NULL},
    {"", "v1", "pods", "Pod", false, NULL},
    {"", "v1", "services", "Service", false, NULL},
    {"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", false, NULL},
    /* Only TLS Secrets can be listener certificates; the rest of a
     * namespace's Secrets are none of the gateway's business. */
    {"", "v1", "secrets", "Secret", false, "type=kubernetes.io/tls"},
    /* The CA certificates of BackendTLSPolicies (caCertificateRefs). */
    {"", "v1", "configmaps", "ConfigMap", false, NULL},
    {"", "v1", "namespaces", "Namespace", true, NULL},
};
const size_t ig_kube_nkinds = sizeof ig_kube_kinds / sizeof ig_kube_kinds[0];

/* A change is read 100 ms after the last one of a burst, and at most
 * max_delay_ms after the first: well within the 2 s a change may take. */
#define QUIET_MS 100u

static bool picker_kind(const struct kube_kind *kd)
{
	static const char *const kinds[] = {"InferencePool", "InferenceModel", "InferenceObjective",
					    "InferenceModelRewrite", "Pod"};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(kd->kind, kinds[i]))
			return true;
	return false;
}

bool ig_kube_synced(const struct ig_kube *k)
{
	for (size_t i = 0; i < ig_kube_nkinds; i++)
		if (!k->inf[i].synced)
			return false;
	return true;
}

static void on_debounce(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_kube *k = t->data;
	if (!ig_kube_synced(k))
		return; /* the last kind to be read calls again */
	if (!k->was_synced) {
		size_t n = 0;
		for (size_t i = 0; i < ig_kube_nkinds; i++)
			n += json_object_size(k->inf[i].objs);
		ig_info("kube: every kind read from %s (%zu objects)",
			ig_kube_api_creds(k->api)->hostport, n);
		k->was_synced = true;
	}
	k->on_change(k->arg);
}

void ig_kube_changed(struct ig_kube *k)
{
	uint64_t now = ig_now_ns();
	if (!ig_timer_armed(&k->debounce))
		k->pending_since_ns = now;
	uint64_t waited_ms = (now - k->pending_since_ns) / 1000000u;
	uint64_t delay = QUIET_MS;
	if (waited_ms + delay > k->opt.max_delay_ms)
		delay = waited_ms >= k->opt.max_delay_ms ? 0 : k->opt.max_delay_ms - waited_ms;
	ig_timer_start(k->loop, &k->debounce, delay, on_debounce, k);
}

/* Whether two failures are the same for the log: the same text, two
 * transport failures, or the same HTTP status (a watch's answer carries
 * no Status message where a list's or a write's does). Every message
 * names the one API server. */
static bool same_failure(const char *a, const char *b)
{
	if (!strcmp(a, b))
		return true;
	const char *ha = strstr(a, ": HTTP "), *hb = strstr(b, ": HTTP ");
	/* Two transport failures (refused, reset, an empty reply) in one
	 * outage are the same news: the server is gone. */
	if (!ha && !hb)
		return true;
	if (!ha || !hb || ha - a != hb - b)
		return false;
	size_t n = (size_t)(ha - a) + 10; /* "host:port: HTTP nnn" */
	return strlen(a) >= n && strlen(b) >= n && !strncmp(a, b, n);
}

void ig_kube_report(struct ig_kube *k, const char *msg)
{
	if (k->last_error && same_failure(k->last_error, msg))
		return;
	free(k->last_error);
	k->last_error = strdup(msg);
	ig_err("kube: %s; %s", msg,
	       k->was_synced ? "serving the last configuration read, retrying"
			     : "serving nothing until the configuration is read, retrying");
}

void ig_kube_report_ok(struct ig_kube *k)
{
	if (!k->last_error)
		return;
	ig_info("kube: %s answers again", ig_kube_api_creds(k->api)->hostport);
	free(k->last_error);
	k->last_error = NULL;
}

struct ig_kube *ig_kube_start(struct ig_loop *loop, const struct ig_kube_options *o,
			      ig_kube_change_fn on_change, void *arg)
{
	static bool curl_ready;
	if (!curl_ready) {
		/* Not thread-safe: the control thread calls it before any other
		 * curl use. */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			ig_err("kube: libcurl did not initialise");
			return NULL;
		}
		curl_ready = true;
	}
	struct ig_kube_creds creds;
	char err[512];
	if (ig_kube_creds_load(o->kubeconfig, &creds, err, sizeof err) < 0) {
		ig_err("kube: %s", err);
		ig_kube_creds_free(&creds);
		return NULL;
	}
	struct ig_kube *k = calloc(1, sizeof *k);
	if (!k) {
		ig_kube_creds_free(&creds);
		return NULL;
	}
	k->loop = loop;
	k->opt = *o;
	if (!k->opt.max_delay_ms)
		k->opt.max_delay_ms = 1000;
	ig_kube_lease_defaults(&k->opt);
	k->controller =
	    strdup(o->controller_name ? o->controller_name : IG_KUBE_DEFAULT_CONTROLLER);
	k->on_change = on_change;
	k->leader = !o->leader_elect;
	k->arg = arg;
	ig_info("kube: API server %s (%s)%s%s, controller %s", creds.server, creds.source,
		o->ns ? ", namespace " : "", o->ns ? o->ns : "", k->controller);
	k->api = ig_kube_api_new(loop, &creds);
	k->inf = calloc(ig_kube_nkinds, sizeof *k->inf);
	if (!k->api || !k->inf || !k->controller) {
		ig_kube_creds_free(&creds);
		ig_kube_free(k);
		return NULL;
	}
	for (size_t i = 0; i < ig_kube_nkinds; i++) {
		k->inf[i].k = k;
		k->inf[i].kind = &ig_kube_kinds[i];
		if (o->picker_only && !picker_kind(&ig_kube_kinds[i])) {
			/* Not read: counts as read and empty. */
			k->inf[i].objs = json_object();
			k->inf[i].synced = true;
			k->inf[i].absent = true;
			continue;
		}
		ig_informer_start(&k->inf[i]);
	}
	if (o->leader_elect && ig_kube_lease_start(k) < 0) {
		ig_kube_free(k);
		return NULL;
	}
	return k;
}

void ig_kube_free(struct ig_kube *k)
{
	if (!k)
		return;
	for (size_t i = 0; k->inf && i < ig_kube_nkinds; i++)
		if (k->inf[i].k)
			ig_informer_stop(&k->inf[i]);
	ig_timer_stop(k->loop, &k->debounce);
	ig_kube_lease_stop(k);
	ig_kube_api_free(k->api);
	ig_kube_status_free(k);
	free(k->inf);
	free(k->controller);
	free(k->last_error);
	json_decref(k->left_out);
	free(k);
}
