/* Informers: each kind is listed (page by page), then watched from the
 * list's resourceVersion with bookmarks asked for. A watch the server ends
 * cleanly is opened again at once from the last resourceVersion seen
 * (events and bookmarks move it), without a new list; a watch that ends
 * with an ERROR event or 410 Gone means a new list, after client-go's
 * reflector back-off (800 ms doubling to 30 s, reset by a watch that
 * delivered events or lasted a while), so that a server that keeps
 * answering 410 is not asked a thousand times a second. A server that
 * cannot be reached, or refuses the credentials, is tried again with a
 * back-off from 100 ms to 30 s (or after its Retry-After, on 429 and 5xx)
 * while the gateway keeps the configuration it has.
 * A kind the server does not serve at start (404: its CRD is not
 * installed) or the RBAC forbids (403) is logged once, counts as empty,
 * and is listed again every 30 s. A kind that was read and then answers
 * 404 or 403 (an API server restarting before it serves its CRDs, a role
 * binding being replaced) keeps its objects, as client-go's reflector
 * keeps its store on a failed list: it is logged once and retried with the
 * back-off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "kube/kube_int.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 30000u
#define RELIST_MIN_MS 800u
/* A watch that lasted this long was a working one: the back-offs start
 * again from their first step. */
#define HEALTHY_WATCH_NS (30ull * 1000000000ull)
#define ABSENT_RETRY_MS 30000u
#define PAGE_SIZE 500
/* Watches last 5 to 10 minutes, as client-go's do, so that connections
 * move when the API servers behind a load balancer change. */
#define WATCH_MIN_S 300
#define WATCH_SPREAD_S 300

static void start_list(struct informer *inf);
static void start_watch(struct informer *inf);
static void list_page(struct informer *inf, const char *cont);
static void list_done(struct ig_kube_req *r, const struct ig_kube_result *res);

/* /api/v1/pods, /apis/G/V/namespaces/NS/plural, ... */
static void base_path(const struct informer *inf, char *buf, size_t len)
{
	const struct kube_kind *kd = inf->kind;
	const char *ns = inf->k->opt.ns;
	char prefix[200];
	if (kd->group[0])
		snprintf(prefix, sizeof prefix, "/apis/%s/%s", kd->group, kd->version);
	else
		snprintf(prefix, sizeof prefix, "/api/%s", kd->version);
	if (ns && !kd->cluster)
		snprintf(buf, len, "%s/namespaces/%s/%s", prefix, ns, kd->plural);
	else
		snprintf(buf, len, "%s/%s", prefix, kd->plural);
}

static const char *kind_name(const struct informer *inf, char *buf, size_t len)
{
	const struct kube_kind *kd = inf->kind;
	snprintf(buf, len, "%s (%s%s%s)", kd->kind, kd->group, kd->group[0] ? "/" : "",
		 kd->version);
	return buf;
}

static void on_retry(struct ig_loop *loop, struct ig_timer *t)
{
	struct informer *inf = t->data;
	if (inf->synced && !inf->absent && !inf->relist && inf->rv[0])
		start_watch(inf);
	else
		start_list(inf);
}

static void retry_later(struct informer *inf, unsigned delay_ms)
{
	ig_timer_start(inf->k->loop, &inf->retry, delay_ms, on_retry, inf);
}

/* The next step of a back-off: doubling from first to 30 s, with up to
 * 25% jitter so that the kinds do not all hit a recovering server at once.
 * The first steps are quick: a server back after a blip is read again
 * within a second. */
static unsigned next_delay(unsigned *cur, unsigned first)
{
	unsigned b = *cur ? *cur * 2 : first;
	if (b > BACKOFF_MAX_MS)
		b = BACKOFF_MAX_MS;
	*cur = b;
	return b - (unsigned)ig_rng_below(ig_rng_thread(), b / 4 + 1);
}

static unsigned backoff(struct informer *inf)
{
	return next_delay(&inf->backoff_ms, BACKOFF_MIN_MS);
}

/* The server asked for a pause (Retry-After on 429 or 5xx): at least that
 * long, as client-go's rest client waits. */
static unsigned backoff_for(struct informer *inf, const struct ig_kube_result *res)
{
	unsigned d = backoff(inf);
	return res->retry_after_ms > d ? (unsigned)res->retry_after_ms : d;
}

static void failed(struct informer *inf, const struct ig_kube_result *res)
{
	char msg[512];
	ig_kube_report(inf->k, ig_kube_describe(inf->k->api, res, msg, sizeof msg));
	retry_later(inf, backoff_for(inf, res));
}

/* A watch ended with an error: a new list, after the reflector's back-off. */
static void relist_later(struct informer *inf)
{
	inf->relist = true;
	retry_later(inf, next_delay(&inf->relist_backoff_ms, RELIST_MIN_MS));
}

/* A kind that was read answers 404 or 403: its objects stay (the data
 * plane keeps its routes), it is said once, and listed again with the
 * back-off until it is served again. */
static void gone_for_now(struct informer *inf, const struct ig_kube_result *res)
{
	char name[160], msg[512];
	if (!inf->logged_gone) {
		ig_kube_describe(inf->k->api, res, msg, sizeof msg);
		ig_warn("kube: %s was read but is now refused (%s); keeping its %zu objects "
			"and listing it again",
			kind_name(inf, name, sizeof name), msg, json_object_size(inf->objs));
		inf->logged_gone = true;
	}
	inf->relist = true;
	retry_later(inf, backoff(inf));
}

static const char *obj_key(json_t *obj, char *buf, size_t len)
{
	json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	if (!name)
		return NULL;
	snprintf(buf, len, "%s/%s", ns ? ns : "", name);
	return buf;
}

static void set_rv(struct informer *inf, json_t *obj)
{
	const char *rv =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (rv && strlen(rv) < sizeof inf->rv)
		strcpy(inf->rv, rv);
}

/* A kind that is not there (404) or not ours to read (403). */
static void mark_absent(struct informer *inf, const struct ig_kube_result *res)
{
	char name[160], msg[512];
	if (!inf->logged_absent) {
		ig_kube_describe(inf->k->api, res, msg, sizeof msg);
		if (res->status == 404)
			ig_warn("kube: %s is not served by the API server (its CRD is not "
				"installed?); going on without it, looking again every %us",
				kind_name(inf, name, sizeof name), ABSENT_RETRY_MS / 1000);
		else
			ig_warn("kube: cannot list %s (%s); going on without it, trying again "
				"every %us",
				kind_name(inf, name, sizeof name), msg, ABSENT_RETRY_MS / 1000);
		inf->logged_absent = true;
	}
	bool had = json_object_size(inf->objs) > 0;
	json_object_clear(inf->objs);
	inf->absent = true;
	inf->rv[0] = '\0';
	bool first = !inf->synced;
	inf->synced = true;
	if (had || first)
		ig_kube_changed(inf->k);
	retry_later(inf, ABSENT_RETRY_MS);
}

/* ---- list ---- */

/* The whole list is read: it replaces what the kind held, and the watch
 * starts from its resourceVersion. */
static void list_complete(struct informer *inf, json_t *list)
{
	set_rv(inf, list);
	/* A list that finds what the kind held (a relist after a refused
	 * watch, or after 410 Gone with nothing missed) changes nothing. */
	bool same = inf->synced && !inf->absent && json_equal(inf->objs, inf->paging);
	json_decref(inf->objs);
	inf->objs = inf->paging;
	inf->paging = NULL;
	inf->synced = true;
	inf->absent = false;
	inf->relist = false;
	inf->unpaged = false;
	inf->logged_absent = false;
	/* The back-off and the "refused" message stay until a watch opens:
	 * a role that allows list but not watch must not make a list and a
	 * watch a few times a second, each logged. */
	ig_debug("kube: listed %s: %zu objects at resourceVersion %s", inf->kind->plural,
		 json_object_size(inf->objs), inf->rv);
	if (!same)
		ig_kube_changed(inf->k);
	start_watch(inf);
}

/* A page that arrived: its items join the list being read; then the next
 * page, or the end. */
/* What an informer keeps of an object: everything the configuration can
 * read, and nothing of what can be large and configures nothing: the
 * server-side apply records (managedFields) and kubectl's copy of the
 * last applied object, which double the size of most objects; and of a
 * ConfigMap only the one key a BackendTLSPolicy reads (ca.crt), and the
 * two of body-based routing's (baseModel, adapters) when it is labelled
 * for it, since every ConfigMap of the cluster is watched. */
void ig_kube_slim(const struct kube_kind *kd, json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");
	json_object_del(md, "managedFields");
	json_object_del(json_object_get(md, "annotations"),
			"kubectl.kubernetes.io/last-applied-configuration");
	if (strcmp(kd->kind, "ConfigMap"))
		return;
	json_object_del(obj, "binaryData");
	json_t *data = json_object_get(obj, "data");
	if (!json_is_object(data))
		return;
	/* Those of body-based routing keep its two keys too. */
	json_t *labels = json_object_get(md, "labels");
	const char *bbr =
	    json_string_value(json_object_get(labels, "inference.networking.k8s.io/bbr-managed"));
	static const char *const keep[] = {"ca.crt", "baseModel", "adapters"};
	size_t nkeep = bbr && !strcmp(bbr, "true") ? 3 : 1;
	json_t *kept = json_object();
	if (!kept)
		return;
	for (size_t i = 0; i < nkeep; i++) {
		json_t *v = json_object_get(data, keep[i]);
		if (v)
			json_object_set(kept, keep[i], v);
	}
	if (json_object_size(kept) < json_object_size(data)) {
		json_object_clear(data);
		json_object_update(data, kept);
	}
	json_decref(kept);
}

static void list_page_done(struct informer *inf, const struct ig_kube_result *res)
{
	json_error_t jerr;
	json_t *list = json_loadb(res->body, res->len, 0, &jerr);
	json_t *items = json_object_get(list, "items");
	/* An unreadable answer must not empty the kind: keep what we have. */
	if (!json_is_object(list) || (items && !json_is_array(items) && !json_is_null(items))) {
		ig_err("kube: the list of %s is unreadable%s%s; listing again", inf->kind->plural,
		       list ? "" : ": ", list ? "" : jerr.text);
		json_decref(list);
		json_decref(inf->paging);
		inf->paging = NULL;
		retry_later(inf, backoff(inf));
		return;
	}
	ig_kube_report_ok(inf->k);
	if (!inf->paging)
		inf->paging = json_object();
	size_t i;
	json_t *it;
	char key[600];
	json_array_foreach(items, i, it)
	{
		if (obj_key(it, key, sizeof key)) {
			ig_kube_slim(inf->kind, it);
			json_object_set(inf->paging, key, it);
		}
	}
	const char *cont =
	    json_string_value(json_object_get(json_object_get(list, "metadata"), "continue"));
	if (cont && *cont)
		list_page(inf, cont);
	else
		list_complete(inf, list);
	json_decref(list);
}

static void list_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct informer *inf = r->data;
	inf->req = NULL;
	if (res->curl_code == 0 && res->status == 200) {
		list_page_done(inf, res);
		return;
	}
	bool paging = inf->paging != NULL;
	json_decref(inf->paging);
	inf->paging = NULL;
	if (res->curl_code == 0 && (res->status == 404 || res->status == 403)) {
		ig_kube_report_ok(inf->k); /* the server answered */
		if (inf->synced && !inf->absent)
			gone_for_now(inf, res);
		else
			mark_absent(inf, res);
	} else if (res->curl_code == 0 && res->status == 410 && paging) {
		/* A continue token expired: one whole list without pages, as
		 * client-go's pager falls back to (FullListIfExpired); listing
		 * page by page again could meet the same expiry forever. */
		ig_info("kube: the list of %s outlived its continue token (410 Gone); "
			"listing it whole",
			inf->kind->plural);
		if (inf->unpaged) {
			retry_later(inf, backoff(inf)); /* pages we did not ask for */
		} else {
			inf->unpaged = true;
			start_list(inf);
		}
	} else {
		failed(inf, res);
	}
}

/* One page of the list: the first (cont NULL) or the one a continue
 * token names; the same selector on every page. */
static void list_page(struct informer *inf, const char *cont)
{
	char path[2048], esc[1024];
	base_path(inf, path, sizeof path);
	size_t l = strlen(path);
	if (inf->unpaged)
		snprintf(path + l, sizeof path - l, "?");
	else
		snprintf(path + l, sizeof path - l, "?limit=%d&", PAGE_SIZE);
	if (inf->kind->field_selector) {
		l = strlen(path);
		snprintf(path + l, sizeof path - l, "fieldSelector=%s&",
			 ig_kube_escape(inf->kind->field_selector, esc, sizeof esc));
	}
	if (cont) {
		l = strlen(path);
		snprintf(path + l, sizeof path - l, "continue=%s&",
			 ig_kube_escape(cont, esc, sizeof esc));
	}
	path[strlen(path) - 1] = '\0'; /* the last '&' or a lone '?' */
	struct ig_kube_req_opts o = {.on_done = list_done, .data = inf, .timeout_ms = 60000};
	inf->req = ig_kube_request(inf->k->api, path, &o);
	if (!inf->req)
		retry_later(inf, backoff(inf));
}

static void start_list(struct informer *inf)
{
	json_decref(inf->paging);
	inf->paging = NULL;
	inf->lists++;
	list_page(inf, NULL);
}

/* ---- watch ---- */

/* Whether only the status (and the resourceVersion) changed: statuses,
 * ours included, configure nothing, except a Pod's (its IP and
 * readiness), so they do not cause a reload. */
static bool status_only(const struct informer *inf, json_t *old, json_t *new)
{
	if (!old || !strcmp(inf->kind->kind, "Pod"))
		return false;
	json_t *a = json_deep_copy(old), *b = json_deep_copy(new);
	json_t *objs[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		json_object_del(objs[i], "status");
		json_t *md = json_object_get(objs[i], "metadata");
		json_object_del(md, "resourceVersion");
		json_object_del(md, "managedFields");
	}
	bool same = json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same;
}

static int watch_line(struct ig_kube_req *r, const char *line, size_t len)
{
	struct informer *inf = r->data;
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	char key[600];
	int rc = 0;
	if (!type || !json_is_object(obj)) {
		ig_warn("kube: unreadable watch event for %s; watching again", inf->kind->plural);
		rc = -1;
	} else if (!strcmp(type, "BOOKMARK")) {
		set_rv(inf, obj);
	} else if (!strcmp(type, "ERROR")) {
		/* Any error ends the watch and means a new list, as client-go's
		 * reflector lists again after every watch error. */
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		if (code == 410)
			ig_info("kube: resourceVersion %s of %s is too old (410 Gone): listing "
				"again",
				inf->rv, inf->kind->plural);
		else
			ig_warn("kube: watch of %s: error %lld: %s; listing again",
				inf->kind->plural, (long long)code,
				json_string_value(json_object_get(obj, "message")) ?: "");
		inf->relist = true;
		rc = -1;
	} else if (obj_key(obj, key, sizeof key)) {
		inf->watch_events++;
		ig_kube_slim(inf->kind, obj);
		bool quiet = !strcmp(type, "MODIFIED") &&
			     status_only(inf, json_object_get(inf->objs, key), obj);
		if (!strcmp(type, "DELETED"))
			json_object_del(inf->objs, key);
		else
			json_object_set(inf->objs, key, obj);
		set_rv(inf, obj);
		if (!quiet)
			ig_kube_changed(inf->k);
		else
			/* Someone else's status write (our own's echo compares
			 * equal): put ours back, as a controller reconciles. */
			ig_kube_status_changed(inf->k, inf->kind, obj);
	}
	json_decref(ev);
	return rc;
}

static void watch_open(struct ig_kube_req *r)
{
	struct informer *inf = r->data;
	ig_kube_report_ok(inf->k);
	if (inf->logged_gone)
		ig_info("kube: %s is served again", inf->kind->plural);
	inf->logged_gone = false;
}

static void watch_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct informer *inf = r->data;
	inf->req = NULL;
	/* A watch that delivered events or lasted a while worked: the
	 * back-offs start over. */
	if (inf->watch_events > 0 || ig_now_ns() - inf->watch_started_ns >= HEALTHY_WATCH_NS)
		inf->backoff_ms = inf->relist_backoff_ms = 0;
	if (res->curl_code == 0 && res->status == 410) {
		ig_info("kube: resourceVersion %s of %s is too old (410 Gone): listing again",
			inf->rv, inf->kind->plural);
		relist_later(inf);
		return;
	}
	if (inf->relist) {
		relist_later(inf);
		return;
	}
	if (r->stopped) {
		retry_later(inf, backoff(inf));
		return;
	}
	if (res->curl_code == 0 && res->status == 200) {
		/* A clean end: the server's timeout. Watch on from where we are;
		 * a server that ends watches at once gets the backoff. */
		bool quick = ig_now_ns() - inf->watch_started_ns < 1000000000u;
		if (quick && inf->watch_events == 0)
			retry_later(inf, backoff(inf));
		else
			start_watch(inf);
		return;
	}
	if (res->curl_code == 0 && (res->status == 404 || res->status == 403)) {
		gone_for_now(inf, res);
		return;
	}
	if (res->status == 200) {
		/* Cut mid-stream: say nothing yet; if the server is gone, the
		 * next attempt's connection error is what gets logged. */
		ig_debug("kube: watch of %s cut: %s", inf->kind->plural, res->error);
		retry_later(inf, backoff(inf));
		return;
	}
	failed(inf, res);
}

static void start_watch(struct informer *inf)
{
	char path[1024], esc[300];
	base_path(inf, path, sizeof path);
	unsigned timeout_s = WATCH_MIN_S + (unsigned)ig_rng_below(ig_rng_thread(), WATCH_SPREAD_S);
	size_t l = strlen(path);
	snprintf(path + l, sizeof path - l,
		 "?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u",
		 ig_kube_escape(inf->rv, esc, sizeof esc), timeout_s);
	if (inf->kind->field_selector) {
		l = strlen(path);
		snprintf(path + l, sizeof path - l, "&fieldSelector=%s",
			 ig_kube_escape(inf->kind->field_selector, esc, sizeof esc));
	}
	inf->watches++;
	inf->watch_started_ns = ig_now_ns();
	inf->watch_events = 0;
	struct ig_kube_req_opts o = {.on_line = watch_line,
				     .on_done = watch_done,
				     .on_open = watch_open,
				     .data = inf,
				     .timeout_ms = (timeout_s + 30) * 1000ul};
	inf->req = ig_kube_request(inf->k->api, path, &o);
	if (!inf->req)
		retry_later(inf, backoff(inf));
}

void ig_informer_start(struct informer *inf)
{
	inf->objs = json_object();
	start_list(inf);
}

void ig_informer_stop(struct informer *inf)
{
	ig_timer_stop(inf->k->loop, &inf->retry);
	ig_kube_cancel(inf->req);
	inf->req = NULL;
	json_decref(inf->objs);
	json_decref(inf->paging);
	inf->objs = inf->paging = NULL;
}
