/* Benchmark of the configurable picker: ns per ig_schedule() +
 * ig_schedule_commit() with GIE's default profile (queue 2, kv-cache 2,
 * prefix-cache 3, max-score picker), single thread, prompts drawn from
 * families that share their first half so the prefix index fills up and
 * matches. Endpoint metrics vary; in-flight counts grow with each pick and
 * are reset every "scrape" (every n picks).
 *
 * Three tables:
 * - 4 KB prompts, the candidates handed to the scheduler ready-made;
 * - a 400 KB prompt (about 100K tokens) at 64 endpoints, the same way;
 * - 4 KB prompts with the candidates read from the endpoint registry as
 *   the gateway does per request (rotation flag, scraped metrics, pending
 *   dispatches of the worker slots that hold some), as worker slot
 *   k % 8 reads them, then schedule + commit. As in the gateway, the
 *   list is read under a list id: what was read is kept, and each read
 *   copies again only the endpoints scraped since (all of them every n
 *   picks here).
 *
 * Run: make bench-picker; or build/bench/picker_bench N... for the first
 * table at chosen endpoint counts, build/bench/picker_bench gw N... for the
 * third (for profiling). PICKER_PROMPTS=16384 draws the 4 KB prompts
 * from that many distinct ones instead of 1024 (an index of about 330K
 * pairs, past the CPU's caches). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rand.h"
#include "gateway/candidates.h"
#include "pool/endpoint.h"
#include "sched/picker.h"

#define FAMILIES 64
#define SLOTS 8 /* worker slots per endpoint in the gateway-path table */

struct prompts {
	size_t n, len;
	char *text; /* n prompts of len bytes */
};

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static void fill(char *p, size_t len, struct ig_rng *rng)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + ig_rng_below(rng, 26));
}

/* n prompts of len bytes in FAMILIES families sharing their first half. */
static struct prompts make_prompts(size_t n, size_t len, uint64_t seed)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, seed);
	struct prompts p = {n, len, xcalloc(n, len)};
	size_t shared = len / 2;
	for (size_t i = 0; i < n; i++) {
		char *t = p.text + i * len;
		if (i < FAMILIES)
			fill(t, shared, &rng);
		else
			memcpy(t, p.text + (i % FAMILIES) * len, shared);
		fill(t + shared, len - shared, &rng);
	}
	return p;
}

static struct ig_str prompt_at(const struct prompts *p, long k)
{
	return (struct ig_str){p->text + (size_t)k % p->n * p->len, p->len};
}

struct result {
	double ns;
	struct ig_prefix_stats st;
};

static void print_head(void)
{
	printf("| endpoints | ns per schedule+commit | picks/s | index entries | index MiB | hit "
	       "ratio "
	       "|\n");
	printf("|---:|---:|---:|---:|---:|---:|\n");
}

static void print_row(size_t n, const struct result *r)
{
	double hit =
	    r->st.lookup_blocks ? (double)r->st.hit_blocks / (double)r->st.lookup_blocks : 0;
	printf("| %zu | %.0f | %.0f | %llu | %.1f | %.2f |\n", n, r->ns, 1e9 / r->ns,
	       (unsigned long long)r->st.entries, (double)r->st.bytes / (1 << 20), hit);
}

/* ---- candidates handed over ready-made ---------------------------------------- */

static struct result run(size_t n, long iters, const struct prompts *pr)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 7);
	struct ig_endpoint_load *m = xcalloc(n, sizeof(*m));
	struct ig_sched_endpoint *eps = xcalloc(n, sizeof(*eps));
	size_t *ranked = xcalloc(n, sizeof(*ranked));
	char(*addr)[24] = xcalloc(n, sizeof(*addr));
	for (size_t i = 0; i < n; i++) {
		m[i].waiting = (int64_t)ig_rng_below(&rng, 8);
		m[i].running = (int64_t)ig_rng_below(&rng, 32);
		m[i].kv_usage = ig_rng_double(&rng) * 0.9;
		int len = snprintf(addr[i], sizeof addr[i], "10.%zu.%zu.%zu:8000", i >> 16,
				   (i >> 8) & 255, i & 255);
		eps[i] = (struct ig_sched_endpoint){.m = &m[i],
						    .metrics_age_ms = 10,
						    .addr = {addr[i], (size_t)len},
						    .key = 0x9e3779b97f4a7c15ULL * (i + 1)};
	}
	struct ig_picker_config *c = ig_picker_config_default();
	struct ig_scheduler *s = ig_scheduler_new(c);
	struct ig_sched_req req = {.model = IG_STR("llama"),
				   .target_model = IG_STR("llama"),
				   .prompt_tokens = pr->len / 4};
	/* Each plugin timed, as the gateway asks. */
	uint32_t ticks[IG_SCHED_MAX_TIMED];
	struct ig_sched_result res = {.ranked = ranked, .plugin_ticks = ticks};
	double t0 = 0;
	long warm = iters / 4;
	for (long k = 0; k < warm + iters; k++) {
		if (k == warm)
			t0 = now_ns();
		req.prefix_input = prompt_at(pr, k);
		if (ig_schedule(s, &req, eps, n, &rng, &res) != 0) {
			fprintf(stderr, "schedule failed\n");
			exit(1);
		}
		ig_schedule_commit(s, &res, eps[ranked[0]].key);
		eps[ranked[0]].inflight_requests++;
		if ((size_t)k % n == n - 1) /* a scrape: in-flight folds into the queue */
			for (size_t i = 0; i < n; i++) {
				m[i].waiting = (int64_t)ig_rng_below(&rng, 8);
				eps[i].inflight_requests = 0;
			}
	}
	struct result r = {.ns = (now_ns() - t0) / (double)iters};
	ig_scheduler_prefix_stats(s, &r.st);
	ig_scheduler_free(s);
	ig_picker_config_free(c);
	free(m);
	free(eps);
	free(ranked);
	free(addr);
	return r;
}

/* ---- candidates read from the endpoint registry -------------------------------- */

struct gw {
	struct ig_endpoints *reg;
	struct ig_endpoint **eps;
	size_t n;
};

static void gw_scrape(struct gw *g, struct ig_rng *rng, uint64_t now)
{
	for (size_t i = 0; i < g->n; i++) {
		struct ig_endpoint_metrics m = {0};
		m.waiting = (int64_t)ig_rng_below(rng, 8);
		m.running = (int64_t)ig_rng_below(rng, 32);
		m.kv_usage = ig_rng_double(rng) * 0.9;
		m.updated_ns = now;
		unsigned e = ig_endpoint_scrape_sent(g->eps[i]);
		ig_endpoint_write_metrics(g->eps[i], &m);
		ig_endpoint_scrape_applied(g->eps[i], e);
	}
}

static struct result run_gateway(size_t n, long iters, const struct prompts *pr)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 7);
	struct gw g = {.reg = ig_endpoints_new(SLOTS), .n = n};
	g.eps = xcalloc(n, sizeof(*g.eps));
	size_t *ranked = xcalloc(n, sizeof(*ranked));
	for (size_t i = 0; i < n; i++) {
		char addr[32];
		snprintf(addr, sizeof addr, "10.%zu.%zu.%zu:8000", i >> 16, (i >> 8) & 255,
			 i & 255);
		if (!g.reg || !(g.eps[i] = ig_endpoint_get(g.reg, addr))) {
			fprintf(stderr, "endpoint %s\n", addr);
			exit(1);
		}
	}
	uint64_t clock = 1000000000;
	gw_scrape(&g, &rng, clock);
	struct ig_picker_config *c = ig_picker_config_default();
	struct ig_scheduler *s = ig_scheduler_new(c);
	struct ig_sched_req req = {.model = IG_STR("llama"),
				   .target_model = IG_STR("llama"),
				   .prompt_tokens = pr->len / 4};
	/* Each plugin timed, as the gateway asks. */
	uint32_t ticks[IG_SCHED_MAX_TIMED];
	struct ig_sched_result res = {.ranked = ranked, .plugin_ticks = ticks};
	/* The gateway names each pool's endpoint list (admit.c: list_id), so
	 * that a worker reads again only what changed; so does this. */
	static uint64_t lists;
	uint64_t list = ++lists;
	double t0 = 0;
	long warm = iters / 4;
	for (long k = 0; k < warm + iters; k++) {
		if (k == warm)
			t0 = now_ns();
		clock += 10000;
		/* What the gateway's admission step does per request. */
		struct ig_candidates cand;
		if (ig_candidates_read(&cand, g.eps, n, (size_t)k % SLOTS, false, clock, list) !=
		    0) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
		req.prefix_input = prompt_at(pr, k);
		if (ig_schedule(s, &req, cand.se, cand.n, &rng, &res) != 0) {
			fprintf(stderr, "schedule failed\n");
			exit(1);
		}
		struct ig_endpoint *ep = cand.eps[ranked[0]];
		ig_schedule_commit(s, &res, ep->key);
		ig_endpoint_dispatch(ep, (size_t)k % SLOTS, (long)req.prompt_tokens);
		if ((size_t)k % n == n - 1)
			gw_scrape(&g, &rng, clock);
	}
	struct result r = {.ns = (now_ns() - t0) / (double)iters};
	ig_scheduler_prefix_stats(s, &r.st);
	ig_scheduler_free(s);
	ig_picker_config_free(c);
	for (size_t i = 0; i < n; i++)
		ig_endpoint_put(g.eps[i]);
	ig_endpoints_free(g.reg);
	free(g.eps);
	free(ranked);
	return r;
}

int main(int argc, char **argv)
{
	size_t sizes[8] = {4, 16, 128, 1024};
	size_t nsizes = 4;
	bool all = argc == 1, gw_only = argc > 1 && strcmp(argv[1], "gw") == 0;
	/* Endpoint counts may be given on the command line (for profiling),
	 * after "gw" for the gateway-path table alone. */
	if (!all) {
		nsizes = 0;
		for (int a = gw_only ? 2 : 1; a < argc && nsizes < 8; a++)
			sizes[nsizes++] = (size_t)strtoul(argv[a], NULL, 10);
	}
	/* PICKER_PROMPTS: how many distinct 4 KB prompts (1024): more make
	 * an index past the caches, as a busy pool's is. */
	const char *np = getenv("PICKER_PROMPTS");
	size_t nprompts = np && atol(np) >= FAMILIES ? (size_t)atol(np) : 1024;
	struct prompts small = make_prompts(nprompts, 4096, 1);
	struct result r;
	if (!gw_only) {
		printf("4 KB prompts:\n\n");
		print_head();
		for (size_t i = 0; i < nsizes; i++) {
			r = run(sizes[i], sizes[i] >= 1024 ? 40000 : 200000, &small);
			print_row(sizes[i], &r);
		}
	}
	if (all) {
		struct prompts big = make_prompts(FAMILIES * 2, 400 * 1024, 2);
		printf("\n400 KB prompts (about 100K tokens):\n\n");
		print_head();
		r = run(64, 20000, &big);
		print_row(64, &r);
		free(big.text);
	}
	if (all || gw_only) {
		printf("\n4 KB prompts, candidates read from the endpoint registry (%d worker "
		       "slots):\n\n",
		       SLOTS);
		print_head();
		for (size_t i = 0; i < nsizes; i++) {
			r = run_gateway(sizes[i], sizes[i] >= 1024 ? 40000 : 200000, &small);
			print_row(sizes[i], &r);
		}
	}
	free(small.text);
	return 0;
}
