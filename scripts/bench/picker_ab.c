/* The loop of bench/picker_bench.c (GIE's default profile, 4 KB prompts in
 * 64 families sharing 2 KB) for two builds of the library linked side by
 * side, their symbols renamed A_... and B_... by scripts/bench/picker-ab.sh.
 * Each pool size runs alternating blocks of picks on both, so that other
 * load on the machine slows both alike; the median of the per-block ratios
 * B/A is the figure to read. Both builds must agree on the structs of
 * sched/picker.h, which this file takes from the work tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rand.h"
#include "sched/picker.h"

#define DECL(P)                                                                                    \
	struct ig_picker_config *P##_ig_picker_config_default(void);                               \
	struct ig_scheduler *P##_ig_scheduler_new(const struct ig_picker_config *c);               \
	int P##_ig_schedule(struct ig_scheduler *s, const struct ig_sched_req *req,                \
			    const struct ig_sched_endpoint *eps, size_t n, struct ig_rng *rng,     \
			    struct ig_sched_result *res);                                          \
	void P##_ig_schedule_commit(struct ig_scheduler *s, const struct ig_sched_result *res,     \
				    uint64_t key);                                                 \
	void P##_ig_scheduler_prefix_stats(const struct ig_scheduler *s,                           \
					   struct ig_prefix_stats *out);                           \
	void P##_ig_rng_seed(struct ig_rng *rng, uint64_t seed);                                   \
	uint64_t P##_ig_rng_below(struct ig_rng *rng, uint64_t n);                                 \
	double P##_ig_rng_double(struct ig_rng *rng);
DECL(A)
DECL(B)

#define PROMPT_BYTES 4096
#define SHARED_BYTES 2048
#define FAMILIES 64
#define PROMPTS 1024

static char prompts[PROMPTS][PROMPT_BYTES];

struct side {
	int (*schedule)(struct ig_scheduler *, const struct ig_sched_req *,
			const struct ig_sched_endpoint *, size_t, struct ig_rng *,
			struct ig_sched_result *);
	void (*commit)(struct ig_scheduler *, const struct ig_sched_result *, uint64_t);
	void (*stats)(const struct ig_scheduler *, struct ig_prefix_stats *);
	struct ig_scheduler *s;
	struct ig_rng rng;
	struct ig_endpoint_metrics *m;
	struct ig_sched_endpoint *eps;
	size_t *ranked;
	char (*addr)[24];
	long k;
};

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *alloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

/* The same endpoints and metrics as picker_bench, on each side. */
static void setup(struct side *d, size_t n)
{
	A_ig_rng_seed(&d->rng, 7);
	d->m = alloc(n, sizeof(*d->m));
	d->eps = alloc(n, sizeof(*d->eps));
	d->ranked = alloc(n, sizeof(*d->ranked));
	d->addr = alloc(n, sizeof(*d->addr));
	for (size_t i = 0; i < n; i++) {
		d->m[i].waiting = (int64_t)A_ig_rng_below(&d->rng, 8);
		d->m[i].running = (int64_t)A_ig_rng_below(&d->rng, 32);
		d->m[i].kv_usage = A_ig_rng_double(&d->rng) * 0.9;
		int len = snprintf(d->addr[i], sizeof d->addr[i], "10.%zu.%zu.%zu:8000", i >> 16,
				   (i >> 8) & 255, i & 255);
		d->eps[i] = (struct ig_sched_endpoint){.m = &d->m[i],
						       .metrics_age_ms = 10,
						       .addr = {d->addr[i], (size_t)len},
						       .key = 0x9e3779b97f4a7c15ULL * (i + 1)};
	}
}

static void release(struct side *d)
{
	free(d->m);
	free(d->eps);
	free(d->ranked);
	free(d->addr);
}

/* ns per schedule + commit over the next `iters` picks of this side. */
static double run(struct side *d, size_t n, long iters)
{
	struct ig_sched_req req = {.model = IG_STR("llama"),
				   .target_model = IG_STR("llama"),
				   .prompt_tokens = PROMPT_BYTES / 4};
	struct ig_sched_result res = {.ranked = d->ranked};
	double t0 = now_ns();
	for (long j = 0; j < iters; j++, d->k++) {
		req.prefix_input = (struct ig_str){prompts[d->k % PROMPTS], PROMPT_BYTES};
		if (d->schedule(d->s, &req, d->eps, n, &d->rng, &res) != 0) {
			fprintf(stderr, "schedule failed\n");
			exit(1);
		}
		d->commit(d->s, &res, d->eps[d->ranked[0]].key);
		d->eps[d->ranked[0]].inflight_requests++;
		if ((size_t)d->k % n == n - 1)
			for (size_t i = 0; i < n; i++) {
				d->m[i].waiting = (int64_t)A_ig_rng_below(&d->rng, 8);
				d->eps[i].inflight_requests = 0;
			}
	}
	return (now_ns() - t0) / (double)iters;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int blocks = argc > 1 ? atoi(argv[1]) : 50;
	struct ig_rng rng;
	static char shared[FAMILIES][SHARED_BYTES];
	A_ig_rng_seed(&rng, 1);
	for (int f = 0; f < FAMILIES; f++)
		for (int i = 0; i < SHARED_BYTES; i++)
			shared[f][i] = (char)('a' + A_ig_rng_below(&rng, 26));
	for (int i = 0; i < PROMPTS; i++) {
		memcpy(prompts[i], shared[i % FAMILIES], SHARED_BYTES);
		for (int j = SHARED_BYTES; j < PROMPT_BYTES; j++)
			prompts[i][j] = (char)('a' + A_ig_rng_below(&rng, 26));
	}
	if (blocks < 1)
		blocks = 1;
	double *a = alloc((size_t)blocks, sizeof(double)),
	       *b = alloc((size_t)blocks, sizeof(double));
	double *ratio = alloc((size_t)blocks, sizeof(double));
	size_t sizes[] = {4, 16, 128, 1024};
	printf("| endpoints | A ns (median block) | B ns | B/A (median of block pairs) | "
	       "entries A/B | hit ratio A/B |\n|---:|---:|---:|---:|---:|---:|\n");
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		long block = n >= 1024 ? 400 : 2000, warm = n >= 1024 ? 10000 : 50000;
		/* The configurations and schedulers are left for exit to free:
		 * the two builds' free functions are not declared here. */
		struct side sa = {.schedule = A_ig_schedule,
				  .commit = A_ig_schedule_commit,
				  .stats = A_ig_scheduler_prefix_stats,
				  .s = A_ig_scheduler_new(A_ig_picker_config_default())};
		struct side sb = {.schedule = B_ig_schedule,
				  .commit = B_ig_schedule_commit,
				  .stats = B_ig_scheduler_prefix_stats,
				  .s = B_ig_scheduler_new(B_ig_picker_config_default())};
		if (!sa.s || !sb.s) {
			fprintf(stderr, "no scheduler\n");
			return 1;
		}
		setup(&sa, n);
		setup(&sb, n);
		run(&sa, n, warm);
		run(&sb, n, warm);
		/* Which side goes first alternates too. */
		for (int i = 0; i < blocks; i++) {
			if (i & 1) {
				b[i] = run(&sb, n, block);
				a[i] = run(&sa, n, block);
			} else {
				a[i] = run(&sa, n, block);
				b[i] = run(&sb, n, block);
			}
			ratio[i] = b[i] / a[i];
		}
		qsort(a, (size_t)blocks, sizeof(double), cmp);
		qsort(b, (size_t)blocks, sizeof(double), cmp);
		qsort(ratio, (size_t)blocks, sizeof(double), cmp);
		struct ig_prefix_stats st_a, st_b;
		sa.stats(sa.s, &st_a);
		sb.stats(sb.s, &st_b);
		printf("| %zu | %.0f | %.0f | %.3f | %llu/%llu | %.3f/%.3f |\n", n, a[blocks / 2],
		       b[blocks / 2], ratio[blocks / 2], (unsigned long long)st_a.entries,
		       (unsigned long long)st_b.entries,
		       (double)st_a.hit_blocks / (double)st_a.lookup_blocks,
		       (double)st_b.hit_blocks / (double)st_b.lookup_blocks);
		release(&sa);
		release(&sb);
	}
	return 0;
}
