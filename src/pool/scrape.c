#include "pool/scrape.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/client.h"

#define SCRAPE_BODY_MAX (8u << 20)
/* An endpoint whose page is over the ceiling is not read to its end at
 * every interval (a 50 ms interval would read 160 MB a second of it, an
 * endless page would be read to the scrape's timeout): it waits 1 s, then
 * twice as long each time, up to 30 s. */
#define OVERSIZE_WAIT_MS 1000u
#define OVERSIZE_WAIT_MAX_MS 30000u

/* The families ig_metrics_extract reads of vLLM. vLLM serves /metrics with
 * prometheus_client, which answers only the families named by name[]
 * parameters: about 1 KB instead of a 20-60 KB page of histograms, which
 * is less to send, read and parse at every scrape (and less for the model
 * server to render). A server that answers such a request with something
 * else than a page with at least one of them is scraped at the plain
 * /metrics from the next scrape on, and asked the filtered way again after
 * refilter_ms, or at once if the plain page fails too: one bad answer
 * (a server restarting, an empty 200) does not turn the filter off for
 * good, and a server that ignores name[] costs one plain-sized retry a
 * minute.
 *
 * vllm:cache_config_info (a dozen labels, as long as the rest together)
 * describes a cache that does not change while the server runs: it is
 * asked for every CACHE_EVERY_NS, and at every scrape, CACHE_RETRY_NS
 * apart, while the server has not given it. */
#define NAME "name%5B%5D=vllm:"
#define FILTERED_PATH                                                                              \
	"/metrics?" NAME "num_requests_waiting&" NAME "num_requests_running&" NAME                 \
	"kv_cache_usage_perc&" NAME "gpu_cache_usage_perc&" NAME "lora_requests_info"
#define CACHE_PATH FILTERED_PATH "&" NAME "cache_config_info"
#define CACHE_EVERY_NS (10 * 1000000000ull)
#define CACHE_RETRY_NS (1000000000ull)

/* A redirect is followed, as Go's HTTP client (GIE's scraper) follows up
 * to 10, within the scrape's timeout: vLLM mounts prometheus_client's app
 * at /metrics, and Starlette's Mount answers /metrics with 307 to
 * /metrics/ where vLLM has not routed around it. Only to the endpoint
 * itself (a path, or an http URL with the address we send as Host): a
 * page elsewhere would be read as this pod's load. */
#define MAX_REDIRECTS 10
#define LOCATION_MAX 448

struct target {
	struct ig_scraper *owner;
	struct ig_endpoint *ep; /* a reference */
	struct ig_http_client *conn;
	struct ig_buf body;
	uint64_t deadline_ns; /* of the scrape in flight */
	bool busy, ok_status;
	int status; /* of the answer, 0 while none */
	/* Ask for the whole page: FILTERED_PATH was not understood, or the
	 * engine is not vLLM. */
	bool plain;
	/* plain because the filtered request was not understood (said once),
	 * and when to ask the filtered way again. */
	bool fallen, said_fallen;
	uint64_t refilter_ns;
	enum ig_engine engine; /* the requests were built for */
	unsigned failures;
	/* The epoch this scrape started when it was sent: requests
	 * dispatched before it are in its page. */
	unsigned epoch;
	/* The request, and the same asking for cache_config_info too. */
	char req[384], req_cache[416];
	size_t reqlen, reqlen_cache;
	uint64_t cache_due_ns; /* when to ask for cache_config_info next */
	bool cache_asked;      /* the scrape in flight asked for it */
	/* A redirect of the scrape in flight: where to (a request target of
	 * the endpoint's, "" when the answer was none to follow), how many
	 * were followed, the request that follows it and the task that sends
	 * it from the loop. */
	char location[LOCATION_MAX];
	unsigned hops;
	char req_follow[LOCATION_MAX + 128];
	size_t reqlen_follow;
	struct ig_task follow;
	/* A page over SCRAPE_BODY_MAX: the scrape is given up at the
	 * ceiling (from `cut`, a task), and the endpoint is not scraped
	 * again before not_before_ns, a wait that doubles from
	 * OVERSIZE_WAIT_MS up to OVERSIZE_WAIT_MAX_MS while its pages stay
	 * too large. */
	bool oversize;
	struct ig_task cut;
	uint64_t not_before_ns;
	uint64_t oversize_wait_ms;
	/* What the endpoint publishes: the scraper is its only writer, so
	 * this copy is the published one, and pages are applied to it. */
	struct ig_endpoint_metrics m;
	/* The last page applied, the LoRA rule it was read by and what
	 * ig_metrics_extract found in it: the same page again (an idle
	 * server's) would change nothing. */
	uint64_t page_hash;
	size_t page_len;
	int page_found; /* -1: none */
	enum ig_lora_rule page_rule;
	/* Warned about a page without any of the engine's load families, or
	 * without some of them (once each, per engine). */
	bool warned_empty, warned_partial;
};

struct ig_scraper {
	struct ig_loop *loop;
	struct ig_scraper_config cfg;
	struct ig_timer tick;
	struct target **t;
	size_t n;
};

static size_t format_request(char *buf, size_t size, const char *path, const char *host)
{
	int len = snprintf(buf, size,
			   "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
			   "User-Agent: infergate\r\n\r\n",
			   path, host);
	return len > 0 && (size_t)len < size ? (size_t)len : 0;
}

static void build_request(struct target *t)
{
	const char *addr = t->ep->addr;
	t->reqlen =
	    format_request(t->req, sizeof t->req, t->plain ? "/metrics" : FILTERED_PATH, addr);
	t->reqlen_cache = format_request(t->req_cache, sizeof t->req_cache,
					 t->plain ? "/metrics" : CACHE_PATH, addr);
}

/* The filtered request got an answer that is not a page with our
 * families: the plain one is used from the next scrape on, and this one
 * does not count as a failure. A plain page asked for after such a fall
 * back that is no page with our families either says the filter was not
 * the matter: the next scrape asks the filtered way again (and this one
 * counts as failed). */
static bool fall_back(struct target *t, int found)
{
	bool page = t->status == 200 && found > 0;
	if (t->status == 0)
		return false; /* no answer: nothing said of the filter */
	if (t->plain) {
		if (t->fallen && !page) {
			t->plain = t->fallen = false;
			build_request(t);
		}
		return false;
	}
	if (page) {
		t->fallen = false;
		return false;
	}
	t->plain = t->fallen = true;
	t->refilter_ns = ig_now_ns() + t->owner->cfg.refilter_ms * 1000000u;
	build_request(t);
	if (!t->said_fallen)
		ig_info("endpoint %s: /metrics with name[] parameters answered %d%s: scraping the "
			"whole /metrics, and the filtered way again every %llu ms",
			t->ep->addr, t->status, t->status == 200 ? " without vllm families" : "",
			(unsigned long long)t->owner->cfg.refilter_ms);
	t->said_fallen = true;
	return true;
}

/* The endpoint's engine changed (its pod's label, at a reload): its
 * requests are built again, the filtered one for vLLM only (the name[]
 * parameters name vLLM's families), and its last page is forgotten. */
static void set_engine(struct target *t, enum ig_engine engine)
{
	t->engine = engine;
	t->plain = engine != IG_ENGINE_VLLM;
	t->fallen = t->said_fallen = false;
	t->page_found = -1;
	t->warned_empty = t->warned_partial = false;
	build_request(t);
}

/* Applies the page in body to t->m; returns what ig_metrics_extract
 * found. A page byte for byte the same as the last one applied, under the
 * same LoRA rule, is not parsed again: applying it would change nothing (a
 * page overwrites what it holds, whatever was there). */
static int apply_page(struct target *t)
{
	const char *text = t->body.ptr ? t->body.ptr : "";
	uint64_t hash = XXH3_64bits(text, t->body.len);
	enum ig_lora_rule rule = t->ep->lora_rule;
	if (t->page_found >= 0 && hash == t->page_hash && t->body.len == t->page_len &&
	    rule == t->page_rule)
		return t->page_found;
	int found = ig_metrics_extract(text, t->body.len, t->engine, rule, &t->m);
	t->page_hash = hash;
	t->page_len = t->body.len;
	t->page_found = found;
	t->page_rule = rule;
	return found;
}

/* A page lacks load families (`missing`): said once per engine, the
 * first time each way. */
static void warn_missing(struct target *t, unsigned missing)
{
	bool all = missing == IG_FAM_LOAD;
	bool *warned = all ? &t->warned_empty : &t->warned_partial;
	if (*warned)
		return;
	*warned = true;
	char names[256];
	ig_engine_families(t->engine, missing, names, sizeof names);
	if (all)
		ig_warn("endpoint %s: /metrics has none of the %s families it is read for (%s; "
			"its pod's label " IG_ENGINE_LABEL " names the engine): its load "
			"figures stay as they were, zero until it reports them",
			t->ep->addr, ig_engine_name(t->engine), names);
	else
		ig_info("endpoint %s: /metrics lacks %s: the figure%s kept as it was, zero until "
			"reported",
			t->ep->addr, names, missing & (missing - 1) ? "s are" : " is");
}

/* A page that parsed counts as an answer, whichever families it has: the
 * endpoint stays in rotation. As the core metrics extractor does, in GIE
 * v1.5.0 and in llm-d Router (main at 520af47, where it moved; GIE v1.6.0
 * has no scraping EPP left, its lwepp round-robins), file
 * pkg/epp/framework/plugins/datalayer/extractor/metrics/extractor.go,
 * Extract: each family missing keeps its figure (logged), the others are
 * updated, and the metrics count as updated (fresh) when the page had any
 * family of the engine; a page with none leaves them to go stale, which
 * only the saturation detector and the pool gauges read (both pass stale
 * pods over). Neither takes a pod out of scheduling for its page
 * (requestcontrol/candidates.go lists every pod): one that never reported
 * a figure is scored with the zeros its metrics start at
 * (datalayer.NewMetrics). */
static void apply_found(struct target *t, int found)
{
	unsigned missing = IG_FAM_LOAD & ~(unsigned)found;
	if (missing)
		warn_missing(t, missing);
	uint64_t now = ig_now_ns();
	if (t->cache_asked)
		t->cache_due_ns = now + (found & IG_FAM_CACHE ? CACHE_EVERY_NS : CACHE_RETRY_NS);
	if (!found)
		return;
	t->m.updated_ns = now;
	/* Stores only what changed: the time, at least. */
	ig_endpoint_write_metrics(t->ep, &t->m);
	/* The page counts what was dispatched before it was asked for. */
	if (found & IG_FAM_LOAD)
		ig_endpoint_scrape_applied(t->ep, t->epoch);
}

static void target_done(struct target *t, bool ok)
{
	struct ig_scraper *s = t->owner;
	t->busy = false;
	t->hops = 0;
	t->reqlen_follow = 0;
	ig_task_cancel(s->loop, &t->follow);
	ig_task_cancel(s->loop, &t->cut);
	if (t->oversize) {
		t->oversize = false;
		if (!t->oversize_wait_ms)
			ig_warn(
			    "endpoint %s: its metrics page is over %u MiB: not read, and scraped "
			    "again after %u s, then less often while it stays that large",
			    t->ep->addr, SCRAPE_BODY_MAX >> 20, OVERSIZE_WAIT_MS / 1000);
		t->oversize_wait_ms =
		    t->oversize_wait_ms ? t->oversize_wait_ms * 2 : OVERSIZE_WAIT_MS;
		if (t->oversize_wait_ms > OVERSIZE_WAIT_MAX_MS)
			t->oversize_wait_ms = OVERSIZE_WAIT_MAX_MS;
		t->not_before_ns = ig_now_ns() + t->oversize_wait_ms * 1000000u;
		ok = false;
	} else if (ok) {
		t->oversize_wait_ms = 0;
	}
	if (fall_back(t, ok ? 1 : -1))
		return;
	if (ok) {
		int found = apply_page(t);
		if (fall_back(t, found))
			return;
		if (found < 0)
			ok = false;
		else
			apply_found(t, found);
	}
	if (!ok) {
		if (++t->failures == s->cfg.failures_out) {
			ig_warn("endpoint %s: %u metrics scrapes failed: out of rotation until it "
				"answers again",
				t->ep->addr, t->failures);
			ig_endpoint_set_out_of_rotation(t->ep, true);
		}
		return;
	}
	if (atomic_load(&t->ep->out_of_rotation)) {
		ig_info("endpoint %s: metrics scrapes work again: back in rotation", t->ep->addr);
		ig_endpoint_set_out_of_rotation(t->ep, false);
	}
	t->failures = 0;
}

static void drop_conn(struct target *t)
{
	ig_http_client_close(t->conn);
	t->conn = NULL;
}

/* The request target a redirect's Location names, into out, when it is
 * the endpoint's own (see MAX_REDIRECTS): an absolute path, an http URL
 * whose authority is the endpoint's address, or a relative path, taken
 * against the target asked for (cur). false: not one to follow. */
static bool redirect_target(const struct target *t, struct ig_str loc, const char *cur, char *out,
			    size_t cap)
{
	static const struct ig_str http = IG_STR("http://");
	struct ig_str path = loc;
	if (loc.len >= http.len && ig_str_ieq((struct ig_str){loc.ptr, http.len}, http)) {
		struct ig_str rest = {loc.ptr + http.len, loc.len - http.len};
		size_t a = 0;
		while (a < rest.len && rest.ptr[a] != '/' && rest.ptr[a] != '?' &&
		       rest.ptr[a] != '#')
			a++;
		if (!ig_str_ieq((struct ig_str){rest.ptr, a}, ig_str_from(t->ep->addr)))
			return false;
		path = (struct ig_str){rest.ptr + a, rest.len - a};
		if (!path.len || path.ptr[0] != '/')
			return false; /* the root, or a query of it: not a page of ours */
	} else if (loc.len >= 2 && loc.ptr[0] == '/' && loc.ptr[1] == '/') {
		return false; /* another authority, scheme-relative */
	} else {
		/* A ':' before any '/' or '?' ends a scheme (RFC 3986 §4.2). */
		for (size_t i = 0; i < loc.len && loc.ptr[i] != '/' && loc.ptr[i] != '?'; i++)
			if (loc.ptr[i] == ':')
				return false;
	}
	for (size_t i = 0; i < path.len; i++)
		if ((unsigned char)path.ptr[i] <= 0x20 || (unsigned char)path.ptr[i] >= 0x7f)
			return false;
	size_t frag = 0;
	while (frag < path.len && path.ptr[frag] != '#')
		frag++;
	path.len = frag;
	/* What of cur is kept (RFC 3986 §5.2): nothing before an absolute
	 * path, the path before a query alone, the path's directory before
	 * a relative path. cur is origin-form: it starts with '/'. */
	size_t keep = 0;
	if (!path.len || path.ptr[0] != '/') {
		size_t curlen = strcspn(cur, "?");
		if (!path.len || path.ptr[0] == '?')
			keep = curlen;
		else
			for (size_t i = 0; i < curlen; i++)
				if (cur[i] == '/')
					keep = i + 1;
	}
	if (keep + path.len + 1 > cap)
		return false;
	memcpy(out, cur, keep);
	memcpy(out + keep, path.ptr, path.len);
	out[keep + path.len] = '\0';
	return out[0] == '/';
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct target *t = ud;
	t->ok_status = res->status == 200;
	t->status = res->status;
	t->location[0] = '\0';
	if (res->status == 301 || res->status == 302 || res->status == 303 || res->status == 307 ||
	    res->status == 308) {
		/* The target asked for: the followed one's is in its request
		 * line, after "GET ". */
		const char *cur = t->plain	   ? "/metrics"
				  : t->cache_asked ? CACHE_PATH
						   : FILTERED_PATH;
		if (t->reqlen_follow)
			cur = t->req_follow + 4;
		char asked[LOCATION_MAX + 128];
		size_t n = strcspn(cur, " ");
		if (n >= sizeof asked)
			return 0;
		memcpy(asked, cur, n);
		asked[n] = '\0';
		for (size_t i = 0; i < res->num_headers; i++)
			if (ig_str_ieq_cstr(res->headers[i].name, "location") &&
			    !redirect_target(t, res->headers[i].value, asked, t->location,
					     sizeof t->location))
				t->location[0] = '\0';
	}
	return 0;
}

static void cut_scrape(struct ig_loop *loop, struct ig_task *task)
{
	struct target *t = task->data;
	drop_conn(t);
	target_done(t, false);
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct target *t = ud;
	if (t->oversize)
		return 1;
	if (ig_buf_append(&t->body, data, len) < 0) {
		/* Over the ceiling: nothing more is read; the connection
		 * goes from the loop, not from inside its own callback. */
		t->ok_status = false;
		t->oversize = true;
		ig_task_queue(t->owner->loop, &t->cut, cut_scrape, t);
		return 1;
	}
	return 0;
}

static void on_idle(struct ig_http_client *c, void *ud)
{
	drop_conn(ud); /* the endpoint closed our kept-alive connection */
}

static void send_follow(struct ig_loop *loop, struct ig_task *task);

static void on_done(struct ig_http_client *c, void *ud)
{
	struct target *t = ud;
	if (ig_http_client_reusable(c))
		ig_http_client_park(c, on_idle, t);
	else
		drop_conn(t);
	if (t->location[0] && t->hops < MAX_REDIRECTS) {
		/* Sent from the loop, on this connection if it was kept
		 * (the scrape stays busy: its deadline still holds). */
		t->hops++;
		int len = snprintf(t->req_follow, sizeof t->req_follow,
				   "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
				   "User-Agent: infergate\r\n\r\n",
				   t->location, t->ep->addr);
		if (len > 0 && (size_t)len < sizeof t->req_follow) {
			t->reqlen_follow = (size_t)len;
			ig_task_queue(t->owner->loop, &t->follow, send_follow, t);
			return;
		}
	}
	target_done(t, t->ok_status);
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	struct target *t = ud;
	drop_conn(t);
	target_done(t, false);
}

static const struct ig_http_client_cbs cbs = {on_head, on_body, on_done, on_error, NULL};

/* Connects if needed and sends len bytes of req as the scrape's request;
 * false when that failed (the scrape failed: target_done was called). */
static bool send_request(struct target *t, const char *req, size_t len)
{
	struct ig_scraper *s = t->owner;
	if (!t->conn) {
		t->conn = ig_http_client_connect(s->loop, (struct sockaddr *)&t->ep->sa,
						 t->ep->salen, s->cfg.timeout_ms);
		if (!t->conn) {
			target_done(t, false);
			return false;
		}
	}
	ig_buf_reset(&t->body);
	t->ok_status = false;
	t->status = 0;
	t->location[0] = '\0';
	if (ig_http_client_send(t->conn, req, len, false, 0, &cbs, t) < 0) {
		drop_conn(t);
		target_done(t, false);
		return false;
	}
	return true;
}

static void send_follow(struct ig_loop *loop, struct ig_task *task)
{
	struct target *t = task->data;
	send_request(t, t->req_follow, t->reqlen_follow);
}

/* now: the tick's time. */
static void start(struct target *t, uint64_t now)
{
	struct ig_scraper *s = t->owner;
	if (t->ep->engine != t->engine)
		set_engine(t, t->ep->engine);
	if (t->fallen && t->plain && now >= t->refilter_ns) {
		t->plain = false;
		build_request(t);
	}
	if (!t->conn) {
		t->conn = ig_http_client_connect(s->loop, (struct sockaddr *)&t->ep->sa,
						 t->ep->salen, s->cfg.timeout_ms);
		if (!t->conn) {
			target_done(t, false);
			return;
		}
	}
	t->busy = true;
	t->epoch = ig_endpoint_scrape_sent(t->ep);
	t->deadline_ns = now + s->cfg.timeout_ms * 1000000u;
	t->cache_asked = now >= t->cache_due_ns;
	const char *req = t->cache_asked ? t->req_cache : t->req;
	size_t len = t->cache_asked ? t->reqlen_cache : t->reqlen;
	send_request(t, req, len);
}

static struct target *target_new(struct ig_scraper *s, struct ig_endpoint *ep)
{
	struct target *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->owner = s;
	t->ep = ig_endpoint_ref(ep);
	ig_endpoint_read_metrics(ep, &t->m);
	t->page_found = -1;
	ig_buf_init(&t->body, SCRAPE_BODY_MAX);
	set_engine(t, ep->engine);
	return t;
}

static void target_free(struct target *t)
{
	ig_task_cancel(t->owner->loop, &t->follow);
	ig_task_cancel(t->owner->loop, &t->cut);
	ig_http_client_close(t->conn);
	ig_buf_free(&t->body);
	ig_endpoint_put(t->ep);
	free(t);
}

struct ig_scraper *ig_scraper_new(struct ig_loop *loop, const struct ig_scraper_config *cfg)
{
	struct ig_scraper *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = loop;
	s->cfg = *cfg;
	if (!s->cfg.interval_ms)
		s->cfg.interval_ms = 50;
	if (!s->cfg.timeout_ms)
		s->cfg.timeout_ms = 5000;
	if (!s->cfg.failures_out)
		s->cfg.failures_out = 3;
	if (!s->cfg.refilter_ms)
		s->cfg.refilter_ms = 60000;
	return s;
}

static struct target *find_target(struct target **v, size_t n, const struct ig_endpoint *ep)
{
	for (size_t i = 0; i < n; i++)
		if (v[i]->ep == ep)
			return v[i];
	return NULL;
}

int ig_scraper_set(struct ig_scraper *s, struct ig_endpoint *const *eps, size_t n)
{
	struct target **next = calloc(n ? n : 1, sizeof *next);
	if (!next)
		return -1;
	size_t nn = 0;
	for (size_t e = 0; e < n; e++) {
		if (find_target(next, nn, eps[e]))
			continue; /* listed twice (an endpoint in two pools) */
		struct target *t = find_target(s->t, s->n, eps[e]);
		if (!t && !(t = target_new(s, eps[e]))) {
			for (size_t i = 0; i < nn; i++)
				if (!find_target(s->t, s->n, next[i]->ep))
					target_free(next[i]);
			free(next);
			return -1;
		}
		next[nn++] = t;
	}
	/* Endpoints gone from the set stop being scraped. */
	for (size_t i = 0; i < s->n; i++)
		if (!find_target(next, nn, s->t[i]->ep))
			target_free(s->t[i]);
	free(s->t);
	s->t = next;
	s->n = nn;
	return 0;
}

/* Every endpoint due is started from one timer: a scrape still in flight
 * past its deadline fails here, and the next one starts at once. A scrape
 * therefore times out at the first tick after its deadline (at most one
 * interval late), which spares a timer per scrape. */
static void on_tick(struct ig_loop *loop, struct ig_timer *tm)
{
	struct ig_scraper *s = tm->data;
	uint64_t now = ig_now_ns();
	for (size_t i = 0; i < s->n; i++) {
		struct target *t = s->t[i];
		if (t->busy) {
			if (now < t->deadline_ns)
				continue;
			drop_conn(t);
			target_done(t, false);
		}
		if (now < t->not_before_ns)
			continue;
		start(t, now);
	}
	ig_timer_start(loop, tm, s->cfg.interval_ms, on_tick, s);
}

void ig_scraper_start(struct ig_scraper *s)
{
	ig_timer_start(s->loop, &s->tick, 0, on_tick, s);
}

void ig_scraper_free(struct ig_scraper *s)
{
	if (!s)
		return;
	ig_timer_stop(s->loop, &s->tick);
	for (size_t i = 0; i < s->n; i++)
		target_free(s->t[i]);
	free(s->t);
	free(s);
}
