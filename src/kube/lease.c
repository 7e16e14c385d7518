/* Leader election with a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection does it: every replica routes traffic, only the holder
 * of the Lease writes status. Clocks of different machines are not
 * compared: a replica takes the Lease when it has seen the same record
 * (holder, renewTime, resourceVersion) unchanged for a whole
 * leaseDurationSeconds by its own monotonic clock. Every write carries the
 * resourceVersion read, so two candidates cannot both win (409).
 *
 * Timings (ig_kube_options, --leader-elect-*): by default the Lease lasts
 * 10 s, the holder renews every 2 s and steps down when it could not renew
 * for 7 s; a survivor retries every 2 s (with up to a fifth more of
 * jitter), so it holds the Lease at most about 12 s after the holder's last
 * renewal, well within the 20 s allowed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "kube/kube_int.h"

/* The Lease's duration in the record: whole seconds, rounded up. */
static json_int_t lease_s(const struct ig_kube *k)
{
	return (json_int_t)((k->opt.lease_ms + 999) / 1000);
}

/* A request of the election must not outlast the renew deadline. */
static unsigned long request_timeout_ms(const struct ig_kube *k)
{
	return k->opt.renew_deadline_ms < 5000 ? k->opt.renew_deadline_ms : 5000;
}

void ig_kube_lease_defaults(struct ig_kube_options *o)
{
	if (!o->lease_ms)
		o->lease_ms = 10000;
	if (!o->renew_deadline_ms)
		o->renew_deadline_ms = 7000;
	if (!o->retry_ms)
		o->retry_ms = 2000;
}

const char *ig_kube_lease_timings_error(const struct ig_kube_options *opt)
{
	struct ig_kube_options o = *opt;
	ig_kube_lease_defaults(&o);
	unsigned long lease = o.lease_ms, renew = o.renew_deadline_ms, retry = o.retry_ms;
	if (lease < 1000)
		return "--leader-elect-lease-duration must be at least 1s";
	if (renew >= lease)
		return "--leader-elect-renew-deadline must be shorter than "
		       "--leader-elect-lease-duration";
	if (renew * 5 <= retry * 6)
		return "--leader-elect-renew-deadline must be longer than 1.2 times "
		       "--leader-elect-retry-period";
	return NULL;
}

static void micro_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char s[32];
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%.20s.%06dZ", s, (int)(ts.tv_nsec / 1000) % 1000000);
}

static void lease_path(struct ig_kube *k, char *buf, size_t len, bool item)
{
	snprintf(buf, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases%s%s", k->lease_ns,
		 item ? "/" : "", item ? k->lease_name : "");
}

static void schedule(struct ig_kube *k, unsigned ms);

static void set_leader(struct ig_kube *k, bool leader)
{
	if (leader == k->leader)
		return;
	k->leader = leader;
	if (leader) {
		ig_info("kube: leader election: %s holds the Lease %s/%s: writing status",
			k->identity, k->lease_ns, k->lease_name);
		ig_kube_status_sync(k);
	} else {
		ig_warn("kube: leader election: %s no longer holds the Lease %s/%s: status left "
			"to the holder",
			k->identity, k->lease_ns, k->lease_name);
	}
}

/* Out of time to renew: step down before another replica may take over. */
static void check_deadline(struct ig_kube *k)
{
	if (k->leader && ig_now_ms() - k->renewed_ms > k->opt.renew_deadline_ms)
		set_leader(k, false);
}

static json_t *record(struct ig_kube *k, json_t *spec_old, bool take)
{
	char now[64];
	micro_time(now, sizeof now);
	json_t *spec = spec_old ? json_deep_copy(spec_old) : json_object();
	json_object_set_new(spec, "holderIdentity", json_string(k->identity));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer(lease_s(k)));
	json_object_set_new(spec, "renewTime", json_string(now));
	if (take) {
		json_object_set_new(spec, "acquireTime", json_string(now));
		json_int_t tr = json_integer_value(json_object_get(spec, "leaseTransitions"));
		json_object_set_new(spec, "leaseTransitions", json_integer(spec_old ? tr + 1 : 0));
	}
	return spec;
}

static void write_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct ig_kube *k = r->data;
	k->lease_req = NULL;
	if (res->curl_code == 0 && (res->status == 200 || res->status == 201)) {
		k->renewed_ms = ig_now_ms();
		/* What we wrote, with its new resourceVersion: a release
		 * writes over it. */
		json_decref(k->lease_held);
		k->lease_held = json_loadb(res->body, res->len, 0, NULL);
		set_leader(k, true);
	} else if (res->curl_code == 0 && res->status == 409) {
		ig_debug("kube: leader election: another replica wrote the Lease first");
	} else {
		char msg[512];
		ig_warn("kube: leader election: writing the Lease: %s",
			ig_kube_describe(k->api, res, msg, sizeof msg));
	}
	check_deadline(k);
	schedule(k, (unsigned)k->opt.retry_ms);
}

static void write_lease(struct ig_kube *k, json_t *old, bool take)
{
	json_t *body;
	const char *method;
	char path[512];
	if (old) {
		body = json_deep_copy(old);
		json_object_set_new(body, "spec", record(k, json_object_get(old, "spec"), take));
		method = "PUT";
		lease_path(k, path, sizeof path, true);
	} else {
		body =
		    json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "coordination.k8s.io/v1",
			      "kind", "Lease", "metadata", "name", k->lease_name, "namespace",
			      k->lease_ns, "spec", record(k, NULL, true));
		method = "POST";
		lease_path(k, path, sizeof path, false);
	}
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct ig_kube_req_opts o = {.method = method,
				     .body = text,
				     .on_done = write_done,
				     .data = k,
				     .timeout_ms = request_timeout_ms(k)};
	k->lease_req = text ? ig_kube_request(k->api, path, &o) : NULL;
	free(text);
	if (!k->lease_req)
		schedule(k, (unsigned)k->opt.retry_ms);
}

/* The Lease a GET answered with, or NULL when it did not (new reference). */
static json_t *lease_read(const struct ig_kube_result *res)
{
	return res->curl_code == 0 && res->status == 200 ? json_loadb(res->body, res->len, 0, NULL)
							 : NULL;
}

static void read_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct ig_kube *k = r->data;
	k->lease_req = NULL;
	if (res->curl_code == 0 && res->status == 404) {
		write_lease(k, NULL, true);
		return;
	}
	json_t *lease = lease_read(res);
	if (!lease) {
		char msg[512];
		if (res->curl_code || res->status != 200)
			ig_debug("kube: leader election: reading the Lease: %s",
				 ig_kube_describe(k->api, res, msg, sizeof msg));
		check_deadline(k);
		schedule(k, (unsigned)k->opt.retry_ms);
		return;
	}
	json_t *spec = json_object_get(lease, "spec");
	const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
	json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	/* What we observe, and since when (our clock). */
	json_t *seen =
	    json_pack("{s:O?,s:O?,s:O?}", "holder", json_object_get(spec, "holderIdentity"),
		      "renew", json_object_get(spec, "renewTime"), "rv",
		      json_object_get(json_object_get(lease, "metadata"), "resourceVersion"));
	if (!json_equal(seen, k->lease_seen)) {
		json_decref(k->lease_seen);
		k->lease_seen = seen;
		k->lease_seen_ms = ig_now_ms();
	} else {
		json_decref(seen);
	}
	if (holder && !strcmp(holder, k->identity)) {
		write_lease(k, lease, false); /* renew */
	} else if (!holder || !*holder ||
		   ig_now_ms() - k->lease_seen_ms >
		       (uint64_t)(dur > 0 ? dur : lease_s(k)) * 1000u) {
		ig_info("kube: leader election: the Lease %s/%s %s: taking it", k->lease_ns,
			k->lease_name, holder && *holder ? "expired" : "is free");
		write_lease(k, lease, true);
	} else {
		if (k->leader)
			set_leader(k, false);
		schedule(k, (unsigned)k->opt.retry_ms);
	}
	json_decref(lease);
}

static void on_lease_timer(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_kube *k = t->data;
	char path[512];
	lease_path(k, path, sizeof path, true);
	struct ig_kube_req_opts o = {
	    .on_done = read_done, .data = k, .timeout_ms = request_timeout_ms(k)};
	k->lease_req = ig_kube_request(k->api, path, &o);
	if (!k->lease_req)
		schedule(k, (unsigned)k->opt.retry_ms);
}

static void schedule(struct ig_kube *k, unsigned ms)
{
	unsigned jitter = (unsigned)ig_rng_below(ig_rng_thread(), ms / 5 + 1);
	ig_timer_start(k->loop, &k->lease_timer, k->leader ? ms : ms + jitter, on_lease_timer, k);
}

/* Lease names are DNS subdomains: the controller name with every other
 * character turned into '-'. */
int ig_kube_lease_start(struct ig_kube *k)
{
	char host[256] = "host", rnd[33], name[254];
	gethostname(host, sizeof host - 1);
	ig_rng_hex128(ig_rng_thread(), rnd);
	rnd[8] = '\0';
	if (asprintf(&k->identity, "%s_%d_%s", host, (int)getpid(), rnd) < 0)
		return -1;
	size_t n = k->opt.lease_name
		       ? (size_t)snprintf(name, sizeof name, "%s", k->opt.lease_name)
		       : (size_t)snprintf(name, sizeof name, "infergate-%s", k->controller);
	if (n >= sizeof name)
		n = sizeof name - 1;
	for (size_t i = 0; i < n && i < sizeof name; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			name[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			   c == '-'))
			name[i] = '-';
	}
	while (n > 0 && (name[n - 1] == '-' || name[n - 1] == '.'))
		name[--n] = '\0';
	k->lease_name = strdup(name);
	/* --namespace, else the pod's own (the downward API's POD_NAMESPACE,
	 * as the install manifests set it), else "default". */
	const char *pod_ns = getenv("POD_NAMESPACE");
	k->lease_ns = strdup(k->opt.ns ? k->opt.ns : pod_ns && *pod_ns ? pod_ns : "default");
	if (!k->lease_name || !k->lease_ns)
		return -1;
	ig_info("kube: leader election: identity %s, Lease %s/%s (%llds, renew deadline %lu ms, "
		"retry %lu ms)",
		k->identity, k->lease_ns, k->lease_name, (long long)lease_s(k),
		k->opt.renew_deadline_ms, k->opt.retry_ms);
	ig_timer_start(k->loop, &k->lease_timer, 0, on_lease_timer, k);
	return 0;
}

#define RELEASE_TRIES 3
#define RELEASE_TIMEOUT_MS 2000

static void release_read_done(struct ig_kube_req *r, const struct ig_kube_result *res);

/* Writes `lease` (the Lease as last seen) with an empty holder. */
static void release_write(struct ig_kube *k, json_t *lease);

static void release_end(struct ig_kube *k, const char *how, const struct ig_kube_result *res)
{
	k->lease_req = NULL;
	k->releasing = false;
	if (!how) {
		ig_info("kube: leader election: Lease %s/%s released", k->lease_ns, k->lease_name);
		return;
	}
	char msg[512] = "";
	if (res)
		ig_kube_describe(k->api, res, msg, sizeof msg);
	ig_warn("kube: leader election: Lease %s/%s not released (%s%s%s): the next holder waits "
		"for it to run out",
		k->lease_ns, k->lease_name, how, *msg ? ": " : "", msg);
}

static void release_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct ig_kube *k = r->data;
	k->lease_req = NULL;
	if (res->curl_code == 0 && res->status == 200) {
		release_end(k, NULL, NULL);
		return;
	}
	/* 409: the Lease changed since we wrote it. A renewal of ours that
	 * was on its way when the release cancelled it may have been
	 * applied: read it again, and give it up if it is still ours. */
	if (res->curl_code == 0 && res->status == 409 && k->release_tries < RELEASE_TRIES) {
		char path[512];
		lease_path(k, path, sizeof path, true);
		struct ig_kube_req_opts o = {
		    .on_done = release_read_done, .data = k, .timeout_ms = RELEASE_TIMEOUT_MS};
		if ((k->lease_req = ig_kube_request(k->api, path, &o)))
			return;
	}
	release_end(k, "writing it failed", res);
}

static void release_read_done(struct ig_kube_req *r, const struct ig_kube_result *res)
{
	struct ig_kube *k = r->data;
	k->lease_req = NULL;
	json_t *lease = lease_read(res);
	const char *holder =
	    json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity"));
	if (!lease)
		release_end(k, "reading it failed", res);
	else if (!holder || strcmp(holder, k->identity))
		release_end(k, "another replica holds it", NULL);
	else
		release_write(k, lease);
	json_decref(lease);
}

static void release_write(struct ig_kube *k, json_t *lease)
{
	json_t *body = json_deep_copy(lease);
	json_t *spec = json_object_get(body, "spec");
	if (!spec) {
		json_decref(body);
		release_end(k, "the Lease has no spec", NULL);
		return;
	}
	json_object_set_new(spec, "holderIdentity", json_string(""));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char path[512];
	lease_path(k, path, sizeof path, true);
	struct ig_kube_req_opts o = {.method = "PUT",
				     .body = text,
				     .on_done = release_done,
				     .data = k,
				     .timeout_ms = RELEASE_TIMEOUT_MS};
	k->release_tries++;
	k->lease_req = text ? ig_kube_request(k->api, path, &o) : NULL;
	free(text);
	if (!k->lease_req)
		release_end(k, "out of memory", NULL);
}

/* On the way out the holder gives the Lease up (an empty holderIdentity),
 * so that another replica takes it at its next try instead of after the
 * Lease has run out; and writes no more status. A renewal in flight is
 * cancelled, but the API server may have applied it already: then the
 * release meets a conflict, reads the Lease again and tries once more. */
void ig_kube_release(struct ig_kube *k)
{
	if (!k || !k->identity)
		return;
	bool was = k->leader;
	k->leader = false;
	ig_timer_stop(k->loop, &k->lease_timer);
	ig_kube_cancel(k->lease_req);
	k->lease_req = NULL;
	if (!was)
		return;
	if (!json_object_get(k->lease_held, "spec")) {
		ig_warn("kube: leader election: Lease %s/%s not released: never written",
			k->lease_ns, k->lease_name);
		return;
	}
	k->releasing = true;
	k->release_tries = 0;
	release_write(k, k->lease_held);
}

bool ig_kube_releasing(const struct ig_kube *k)
{
	return k && k->releasing;
}

void ig_kube_lease_stop(struct ig_kube *k)
{
	ig_timer_stop(k->loop, &k->lease_timer);
	ig_kube_cancel(k->lease_req);
	k->lease_req = NULL;
	json_decref(k->lease_seen);
	k->lease_seen = NULL;
	json_decref(k->lease_held);
	k->lease_held = NULL;
	free(k->identity);
	free(k->lease_name);
	free(k->lease_ns);
}

bool ig_kube_leader(const struct ig_kube *k)
{
	return k->leader;
}
