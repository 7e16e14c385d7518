/* The metrics scraper, on the control thread: every interval it asks each
 * endpoint of the current snapshot for /metrics (one request in flight per
 * endpoint, on a kept-alive connection) and publishes what it learns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "gateway/gw.h"
#include "http/client.h"

#define SCRAPE_BODY_MAX (8u << 20)
#define SCRAPE_TIMEOUT_MS 5000

struct scrape {
	struct ig_endpoint *ep; /* a reference */
	struct ig_loop *loop;
	struct ig_http_client *conn;
	struct ig_buf body;
	struct ig_timer timeout;
	bool busy, seen, ok_status;
	unsigned failures;
	char req[160];
	size_t reqlen;
};

static struct ig_timer tick;
static unsigned out_after = 3; /* --unhealthy-after */
static struct scrape **scrapes;
static size_t nscrapes;

static void scrape_done(struct scrape *s, bool ok)
{
	ig_timer_stop(s->loop, &s->timeout);
	s->busy = false;
	if (!ok) {
		if (++s->failures == out_after) {
			ig_warn("endpoint %s: %u metrics scrapes failed: out of rotation until it "
				"answers again", s->ep->addr, s->failures);
			atomic_store(&s->ep->out_of_rotation, true);
		}
		return;
	}
	struct ig_endpoint_metrics m;
	ig_endpoint_read_metrics(s->ep, &m);
	int found = ig_vllm_metrics_extract(s->body.ptr ? s->body.ptr : "", s->body.len, &m);
	if (found < 0) {
		s->failures++;
		return;
	}
	if (atomic_load(&s->ep->out_of_rotation)) {
		ig_info("endpoint %s: metrics scrapes work again: back in rotation", s->ep->addr);
		atomic_store(&s->ep->out_of_rotation, false);
	}
	s->failures = 0;
	m.updated_ns = ig_now_ns();
	ig_endpoint_write_metrics(s->ep, &m);
	/* The page now counts what was dispatched before it was made. */
	atomic_store(&s->ep->pending_requests, 0);
	atomic_store(&s->ep->pending_tokens, 0);
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct scrape *s = ud;
	s->ok_status = res->status == 200;
	return 0;
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct scrape *s = ud;
	if (ig_buf_append(&s->body, data, len) < 0)
		s->ok_status = false;
	return 0;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	struct scrape *s = ud;
	if (ig_http_client_reusable(c)) {
		ig_http_client_park(c);
	} else {
		ig_http_client_close(c);
		s->conn = NULL;
	}
	scrape_done(s, s->ok_status);
}

static void on_error(struct ig_http_client *c, enum ig_client_error e, int err, void *ud)
{
	struct scrape *s = ud;
	s->conn = NULL;
	scrape_done(s, false);
}

static const struct ig_http_client_cbs cbs = {on_head, on_body, on_done, on_error};

static void on_scrape_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct scrape *s = t->data;
	if (s->conn) {
		ig_http_client_close(s->conn);
		s->conn = NULL;
	}
	scrape_done(s, false);
}

static void start(struct scrape *s)
{
	if (s->conn && !ig_http_client_alive(s->conn)) {
		ig_http_client_close(s->conn);
		s->conn = NULL;
	}
	if (!s->conn) {
		s->conn = ig_http_client_connect(s->loop, (struct sockaddr *)&s->ep->sa, s->ep->salen);
		if (!s->conn) {
			scrape_done(s, false);
			return;
		}
	}
	ig_buf_reset(&s->body);
	s->busy = true;
	s->ok_status = false;
	ig_timer_start(s->loop, &s->timeout, SCRAPE_TIMEOUT_MS, on_scrape_timeout, s);
	if (ig_http_client_send(s->conn, s->req, s->reqlen, false, &cbs, s) < 0) {
		ig_http_client_close(s->conn);
		s->conn = NULL;
		scrape_done(s, false);
	}
}

static struct scrape *find_or_add(struct ig_loop *loop, struct ig_endpoint *ep)
{
	for (size_t i = 0; i < nscrapes; i++)
		if (scrapes[i]->ep == ep)
			return scrapes[i];
	struct scrape **n = realloc(scrapes, (nscrapes + 1) * sizeof *n);
	if (!n)
		return NULL;
	scrapes = n;
	struct scrape *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->ep = ep;
	atomic_fetch_add(&ep->refs, 1);
	s->loop = loop;
	ig_buf_init(&s->body, SCRAPE_BODY_MAX);
	int len = snprintf(s->req, sizeof s->req,
			   "GET /metrics HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
			   "User-Agent: infergate\r\n\r\n", ep->addr);
	s->reqlen = (size_t)len;
	scrapes[nscrapes++] = s;
	return s;
}

static void scrape_free(struct scrape *s)
{
	ig_timer_stop(s->loop, &s->timeout);
	if (s->conn)
		ig_http_client_close(s->conn);
	ig_buf_free(&s->body);
	ig_endpoint_put(s->ep);
	free(s);
}

static void on_tick(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *gw = t->data;
	for (size_t i = 0; i < nscrapes; i++)
		scrapes[i]->seen = false;
	struct ig_snapshot *snap = gw->snap;
	for (size_t p = 0; p < snap->npools; p++) {
		for (size_t e = 0; e < snap->pools[p].neps; e++) {
			struct scrape *s = find_or_add(loop, snap->pools[p].eps[e]);
			if (!s)
				continue;
			s->seen = true;
			if (!s->busy)
				start(s);
		}
	}
	/* Endpoints gone from the config stop being scraped. */
	for (size_t i = 0; i < nscrapes;) {
		if (!scrapes[i]->seen && !scrapes[i]->busy) {
			scrape_free(scrapes[i]);
			scrapes[i] = scrapes[--nscrapes];
		} else {
			i++;
		}
	}
	ig_timer_start(loop, &tick, gw->opt.scrape_interval_ms, on_tick, gw);
}

void ig_scraper_start(struct ig_gateway_rt *gw)
{
	if (gw->opt.scrape_failures_out)
		out_after = gw->opt.scrape_failures_out;
	ig_timer_start(&gw->ctl, &tick, 0, on_tick, gw);
}

void ig_scraper_stop(struct ig_gateway_rt *gw)
{
	ig_timer_stop(&gw->ctl, &tick);
	for (size_t i = 0; i < nscrapes; i++)
		scrape_free(scrapes[i]);
	free(scrapes);
	scrapes = NULL;
	nscrapes = 0;
}
