/* Benchmark of the configurable picker: ns per ig_schedule() +
 * ig_schedule_commit() with GIE's default profile (queue 2, kv-cache 2,
 * prefix-cache 3, max-score picker), single thread, 4 KB prompts drawn from
 * families that share a 2 KB prefix so the prefix index fills up and
 * matches. Endpoint metrics vary; in-flight counts grow with each pick and
 * are reset every "scrape" (every n picks). Run: make bench-picker */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rand.h"
#include "sched/picker.h"

#define PROMPT_BYTES 4096
#define SHARED_BYTES 2048
#define FAMILIES 64
#define PROMPTS 1024

static char prompts[PROMPTS][PROMPT_BYTES];

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void fill(char *p, size_t len, struct ig_rng *rng)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + ig_rng_below(rng, 26));
}

static void make_prompts(struct ig_rng *rng)
{
	static char shared[FAMILIES][SHARED_BYTES];
	for (int f = 0; f < FAMILIES; f++)
		fill(shared[f], SHARED_BYTES, rng);
	for (int i = 0; i < PROMPTS; i++) {
		memcpy(prompts[i], shared[i % FAMILIES], SHARED_BYTES);
		fill(prompts[i] + SHARED_BYTES, PROMPT_BYTES - SHARED_BYTES, rng);
	}
}

struct result {
	double ns;
	struct ig_prefix_stats st;
};

static struct result run(size_t n, long iters)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, 7);
	struct ig_endpoint_metrics *m = calloc(n, sizeof(*m));
	struct ig_sched_endpoint *eps = calloc(n, sizeof(*eps));
	size_t *ranked = calloc(n, sizeof(*ranked));
	char (*addr)[24] = calloc(n, sizeof(*addr));
	if (!m || !eps || !ranked || !addr) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		m[i].waiting = (int64_t)ig_rng_below(&rng, 8);
		m[i].running = (int64_t)ig_rng_below(&rng, 32);
		m[i].kv_usage = ig_rng_double(&rng) * 0.9;
		int len = snprintf(addr[i], sizeof addr[i], "10.%zu.%zu.%zu:8000", i >> 16,
				   (i >> 8) & 255, i & 255);
		eps[i] = (struct ig_sched_endpoint){.m = &m[i], .metrics_age_ms = 10,
						    .addr = {addr[i], (size_t)len},
						    .key = 0x9e3779b97f4a7c15ULL * (i + 1)};
	}
	struct ig_picker_config *c = ig_picker_config_default();
	struct ig_scheduler *s = ig_scheduler_new(c);
	struct ig_sched_req req = {.model = IG_STR("llama"), .target_model = IG_STR("llama"),
				   .prompt_tokens = PROMPT_BYTES / 4};
	struct ig_sched_result res = {.ranked = ranked};
	double t0 = 0;
	long warm = iters / 4;
	for (long k = 0; k < warm + iters; k++) {
		if (k == warm)
			t0 = now_ns();
		req.prefix_input = (struct ig_str){prompts[k % PROMPTS], PROMPT_BYTES};
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

int main(int argc, char **argv)
{
	size_t sizes[8] = {4, 16, 128, 1024};
	size_t nsizes = 4;
	/* Endpoint counts may be given on the command line (for profiling). */
	if (argc > 1) {
		nsizes = 0;
		for (int a = 1; a < argc && nsizes < 8; a++)
			sizes[nsizes++] = (size_t)strtoul(argv[a], NULL, 10);
	}
	struct ig_rng rng;
	ig_rng_seed(&rng, 1);
	make_prompts(&rng);
	printf("| endpoints | ns per schedule+commit | picks/s | index entries | index MiB | hit ratio |\n");
	printf("|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < nsizes; i++) {
		long iters = sizes[i] >= 1024 ? 40000 : 200000;
		struct result r = run(sizes[i], iters);
		double hit = r.st.lookup_blocks ? (double)r.st.hit_blocks / (double)r.st.lookup_blocks : 0;
		printf("| %zu | %.0f | %.0f | %llu | %.1f | %.2f |\n", sizes[i], r.ns, 1e9 / r.ns,
		       (unsigned long long)r.st.entries, (double)r.st.bytes / (1 << 20), hit);
	}
	return 0;
}
