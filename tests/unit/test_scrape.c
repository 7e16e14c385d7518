/* The scraper against a model server the test plays itself on loopback:
 * which answers are failed scrapes (out of rotation after three), and what
 * a page that lacks some or all of the engine's load families does to the
 * endpoint's figures and their freshness. One thread: the test serves the
 * scraper's requests between loop iterations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "loopback.h"
#include "pool/endpoint.h"
#include "pool/scrape.h"

/* A model server: one connection at a time, and its one request waiting
 * for an answer, which the test gives (`pending`). */
struct pod {
	int lfd;
	struct peer conn;
	bool connected, pending;
	char target[512]; /* of the request waiting */
};

struct fixture {
	struct ig_loop loop;
	struct ig_endpoints *reg;
	struct ig_endpoint *ep;
	struct ig_scraper *scraper;
	struct pod pod;
};

static void pod_step(struct pod *p)
{
	if (!p->connected) {
		int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		peer_init(&p->conn, fd);
		p->connected = true;
	}
	peer_read(&p->conn);
	char *end = strstr(p->conn.data, "\r\n\r\n");
	if (end) {
		assert_false(p->pending); /* one at a time */
		assert_true(end + 4 == p->conn.data + p->conn.len);
		const char *sp = strchr(p->conn.data, ' ');
		const char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
		assert_non_null(sp2);
		snprintf(p->target, sizeof p->target, "%.*s", (int)(sp2 - sp - 1), sp + 1);
		peer_clear(&p->conn);
		p->pending = true;
	}
	if (peer_closed(&p->conn)) {
		assert_false(p->pending);
		peer_close(&p->conn);
		p->connected = false;
	}
}

/* Runs the loop until the scraper's next request waits for its answer. */
static void next_request(struct fixture *f)
{
	uint64_t t0 = ig_now_ns();
	while (!f->pod.pending) {
		assert_true(ms_since(t0) < 10000); /* a hang, not a timing check */
		ig_loop_run_once(&f->loop, 5);
		pod_step(&f->pod);
	}
}

/* Answers n scrapes with this status and page. The scraper sends a
 * request only once the answer to the one before is applied, so every
 * answer is applied when this returns (with the next request waiting). */
static void scrapes(struct fixture *f, unsigned n, int status, const char *page)
{
	for (unsigned i = 0; i < n; i++) {
		next_request(f);
		char head[160];
		int len = snprintf(head, sizeof head,
				   "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\n"
				   "Content-Length: %zu\r\n\r\n",
				   status, strlen(page));
		f->pod.pending = false;
		peer_write_loop(&f->loop, &f->pod.conn, head, (size_t)len);
		peer_write_loop(&f->loop, &f->pod.conn, page, strlen(page));
	}
	next_request(f);
}

static struct ig_endpoint_metrics metrics(const struct fixture *f)
{
	struct ig_endpoint_metrics m;
	ig_endpoint_read_metrics(f->ep, &m);
	return m;
}

static bool out_of_rotation(const struct fixture *f)
{
	return atomic_load(&f->ep->out_of_rotation);
}

/* The engine and the scraper's refilter_ms: the prestate of the vLLM
 * tests, SGLang and the default otherwise. */
struct setting {
	enum ig_engine engine;
	uint64_t refilter_ms;
};

static int setup(void **state)
{
	const struct setting *set = *state;
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(ig_loop_init(&f->loop), 0);
	int port = 0;
	f->pod.lfd = tcp_listen(4, &port);
	assert_true(f->pod.lfd >= 0);
	f->pod.conn.fd = -1;
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	f->reg = ig_endpoints_new(1);
	f->ep = ig_endpoint_get(f->reg, addr);
	assert_non_null(f->ep);
	f->ep->engine = set ? set->engine : IG_ENGINE_SGLANG;
	struct ig_scraper_config cfg = {
	    .interval_ms = 1, .failures_out = 3, .refilter_ms = set ? set->refilter_ms : 0};
	f->scraper = ig_scraper_new(&f->loop, &cfg);
	assert_non_null(f->scraper);
	assert_int_equal(ig_scraper_set(f->scraper, &f->ep, 1), 0);
	ig_scraper_start(f->scraper);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ig_scraper_free(f->scraper);
	ig_endpoint_put(f->ep);
	ig_endpoints_free(f->reg);
	peer_close(&f->pod.conn);
	close(f->pod.lfd);
	ig_loop_free(&f->loop);
	free(f);
	return 0;
}

/* What a freshly started SGLang server writes: prometheus_client gives
 * the labelled gauges their HELP and TYPE lines, and a sample only once
 * set, at the first request's statistics. */
static const char no_samples[] =
    "# HELP sglang:num_queue_reqs The number of requests in the queue.\n"
    "# TYPE sglang:num_queue_reqs gauge\n"
    "# TYPE sglang:num_running_reqs gauge\n"
    "# TYPE sglang:token_usage gauge\n";

static const char full[] = "sglang:num_queue_reqs{model_name=\"q\"} 7\n"
			   "sglang:num_running_reqs{model_name=\"q\"} 3\n"
			   "sglang:token_usage{model_name=\"q\"} 0.5\n";

static const char no_queue[] = "# TYPE sglang:num_queue_reqs gauge\n"
			       "sglang:num_running_reqs{model_name=\"q\"} 4\n"
			       "sglang:token_usage{model_name=\"q\"} 0.25\n";

/* GIE v1.5.0 and llm-d Router's core-metrics-extractor (extractor.go):
 * a page missing a family keeps that figure, updates the others, and
 * counts as an update when any family was found; a page with none of them
 * updates nothing, and the pod stays a candidate all the same, with the
 * zeros its metrics start at. */
static void test_page_without_load_families_keeps_endpoint(void **state)
{
	struct fixture *f = *state;
	scrapes(f, 5, 200, no_samples);
	assert_false(out_of_rotation(f));
	struct ig_endpoint_metrics m = metrics(f);
	assert_true(m.updated_ns == 0); /* never fresh: nothing reported */
	assert_int_equal(m.waiting, 0);
	assert_int_equal(m.running, 0);
	assert_true(m.kv_usage == 0);

	scrapes(f, 1, 200, full);
	m = metrics(f);
	assert_int_equal(m.waiting, 7);
	assert_int_equal(m.running, 3);
	assert_true(m.kv_usage == 0.5);
	uint64_t t1 = m.updated_ns;
	assert_true(t1 != 0);

	scrapes(f, 1, 200, no_queue);
	m = metrics(f);
	assert_int_equal(m.waiting, 7); /* kept */
	assert_int_equal(m.running, 4);
	assert_true(m.kv_usage == 0.25);
	uint64_t t2 = m.updated_ns;
	assert_true(t2 > t1); /* fresh: some families were there */

	scrapes(f, 5, 200, no_samples);
	assert_false(out_of_rotation(f));
	m = metrics(f);
	assert_int_equal(m.waiting, 7);
	assert_int_equal(m.running, 4);
	assert_true(m.kv_usage == 0.25);
	assert_true(m.updated_ns == t2); /* goes stale */
}

/* A page with only the cache's description (SGLang gives
 * sglang:cache_config_info from the start) is an update, as the reference
 * extractor's CacheInfo spec makes it. */
static void test_page_with_cache_only_is_fresh(void **state)
{
	struct fixture *f = *state;
	scrapes(f, 4, 200,
		"# TYPE sglang:num_queue_reqs gauge\n"
		"sglang:cache_config_info{page_size=\"64\",num_pages=\"5000\"} 1\n");
	assert_false(out_of_rotation(f));
	struct ig_endpoint_metrics m = metrics(f);
	assert_true(m.updated_ns != 0);
	assert_int_equal(m.cache.block_tokens, 64);
	assert_int_equal(m.waiting, 0);
}

/* An answer that is not a page stays a failed scrape: a status other than
 * 200, or text that is not exposition format. One that is a page, even
 * without a figure, ends the failures. */
static void test_failed_scrapes_still_count(void **state)
{
	struct fixture *f = *state;
	scrapes(f, 2, 503, full);
	assert_false(out_of_rotation(f));
	scrapes(f, 1, 503, full);
	assert_true(out_of_rotation(f));
	assert_true(metrics(f).updated_ns == 0);

	scrapes(f, 1, 200, no_samples);
	assert_false(out_of_rotation(f));

	scrapes(f, 3, 200, "sglang:num_queue_reqs{model_name=\"q\" 7\nnot a sample\n");
	assert_true(out_of_rotation(f));
	assert_int_equal(metrics(f).waiting, 0);
}

/* vLLM's figures, as its filtered page has them. */
static const char vllm_page[] = "vllm:num_requests_waiting{model_name=\"m\"} 2\n"
				"vllm:num_requests_running{model_name=\"m\"} 1\n"
				"vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n";

static bool filtered(const struct fixture *f)
{
	return strncmp(f->pod.target, "/metrics?", 9) == 0;
}

static bool whole(const struct fixture *f)
{
	return strcmp(f->pod.target, "/metrics") == 0;
}

/* One bad answer to the filtered request (a server restarting: a 500, an
 * empty 200) moves the scraper to the whole page, but not for good: a
 * whole page that fails too sends it back to the filtered request at
 * once, and one that works keeps it there only until refilter_ms. */
static void test_filter_fallback_is_not_for_good(void **state)
{
	struct fixture *f = *state;
	scrapes(f, 1, 200, vllm_page);
	assert_true(filtered(f));

	scrapes(f, 1, 500, "restarting");
	assert_true(whole(f)); /* the fallback, not counted as a failure */
	scrapes(f, 1, 500, "restarting");
	assert_true(filtered(f)); /* the whole page failed too */
	scrapes(f, 1, 200, "");
	assert_true(whole(f));
	scrapes(f, 1, 200, "");
	assert_true(filtered(f));
	assert_false(out_of_rotation(f)); /* two failures, not three */
	scrapes(f, 1, 200, vllm_page);
	assert_true(filtered(f));
	assert_int_equal(metrics(f).waiting, 2);

	/* A server that ignores name[] and answers 404 to it: the whole page
	 * from then on, and with refilter_ms at 60 s no second try here. */
	scrapes(f, 1, 404, "no");
	for (int i = 0; i < 5; i++) {
		assert_true(whole(f));
		scrapes(f, 1, 200, vllm_page);
	}
	assert_false(out_of_rotation(f));
}

/* refilter_ms after the fallback the filtered request is asked again; a
 * server that still refuses it goes back to the whole page at once (unless
 * this machine stalled past refilter_ms in between, which is no failure). */
static void test_filter_asked_again_after_refilter(void **state)
{
	struct fixture *f = *state;
	uint64_t t404 = ig_now_ns();
	scrapes(f, 1, 404, "no");
	assert_true(whole(f) || ms_since(t404) >= 300);
	uint64_t t0 = ig_now_ns();
	while (!filtered(f)) {
		assert_true(ms_since(t0) < 10000);
		scrapes(f, 1, 200, vllm_page);
	}
	t404 = ig_now_ns();
	scrapes(f, 1, 404, "no");
	assert_true(whole(f) || ms_since(t404) >= 300);
	scrapes(f, 1, 200, vllm_page);
	assert_false(out_of_rotation(f));
}

int main(void)
{
	static struct setting vllm = {IG_ENGINE_VLLM, 60000}, vllm_fast = {IG_ENGINE_VLLM, 300};
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_page_without_load_families_keeps_endpoint, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_page_with_cache_only_is_fresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_scrapes_still_count, setup, teardown),
	    cmocka_unit_test_prestate_setup_teardown(test_filter_fallback_is_not_for_good, setup,
						     teardown, &vllm),
	    cmocka_unit_test_prestate_setup_teardown(test_filter_asked_again_after_refilter, setup,
						     teardown, &vllm_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
