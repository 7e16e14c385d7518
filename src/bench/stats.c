/* Statistics of a benchmark stage: percentiles, goodput, error counts. The
 * numbers are exact: every request is kept, nothing is sampled or binned. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "core/flags.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double ig_bench_percentile(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return NAN;
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	double h = (double)(n - 1) * p / 100.0;
	size_t lo = (size_t)floor(h);
	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

void ig_bench_dist_of(double *v, size_t n, struct ig_bench_dist *out)
{
	memset(out, 0, sizeof *out);
	if (n == 0)
		return;
	qsort(v, n, sizeof *v, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	out->n = n;
	out->mean = sum / (double)n;
	out->min = v[0];
	out->max = v[n - 1];
	out->p50 = ig_bench_percentile(v, n, 50);
	out->p90 = ig_bench_percentile(v, n, 90);
	out->p95 = ig_bench_percentile(v, n, 95);
	out->p99 = ig_bench_percentile(v, n, 99);
}

/* A request meets the SLOs when it succeeded and is within every bound that
 * was given; a TPOT bound is met trivially by an answer without TPOT (one
 * token, or not streamed). */
bool ig_bench_meets_slo(const struct ig_bench_slo *slo, const struct ig_bench_sample *s)
{
	if (s->error)
		return false;
	if (slo->ttft_ms > 0 && s->ttft_ms > slo->ttft_ms)
		return false;
	if (slo->tpot_ms > 0 && !isnan(s->tpot_ms) && s->tpot_ms > slo->tpot_ms)
		return false;
	if (slo->e2e_ms > 0 && s->e2e_ms > slo->e2e_ms)
		return false;
	return true;
}

/* The grammar of the duration flags, so that --stages and --slo read DUR
 * as --timeout does. */
int ig_bench_parse_duration(const char *s, double *out_ms)
{
	return ig_flags_parse_ms(s, IG_FLAG_BARE_S, out_ms) == IG_OK ? 0 : -1;
}

static int slo_item(char *item, struct ig_bench_slo *out)
{
	char *eq = strchr(item, '=');
	if (!eq)
		return -1;
	*eq = '\0';
	double ms;
	if (ig_bench_parse_duration(eq + 1, &ms) < 0 || ms <= 0)
		return -1;
	if (strcmp(item, "ttft") == 0)
		out->ttft_ms = ms;
	else if (strcmp(item, "tpot") == 0)
		out->tpot_ms = ms;
	else if (strcmp(item, "e2e") == 0 || strcmp(item, "request_latency") == 0)
		out->e2e_ms = ms;
	else
		return -1;
	return 0;
}

int ig_bench_parse_slo(const char *s, struct ig_bench_slo *out)
{
	char *copy = strdup(s);
	if (!copy)
		return -1;
	memset(out, 0, sizeof *out);
	int rc = 0;
	char *save = NULL;
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save))
		if (slo_item(it, out) < 0)
			rc = -1;
	free(copy);
	if (out->ttft_ms == 0 && out->tpot_ms == 0 && out->e2e_ms == 0)
		rc = -1;
	return rc;
}

void ig_bench_errors_add(struct ig_bench_errors *errs, const char *kind)
{
	for (size_t i = 0; i < errs->n; i++) {
		if (strcmp(errs->e[i].kind, kind) == 0) {
			errs->e[i].count++;
			return;
		}
	}
	/* The last slot counts every kind beyond the table's size as "other",
	 * so that the total stays exact. */
	size_t i = errs->n;
	if (i >= IG_BENCH_MAX_ERROR_KINDS - 1) {
		i = IG_BENCH_MAX_ERROR_KINDS - 1;
		kind = "other";
		errs->n = IG_BENCH_MAX_ERROR_KINDS;
	} else {
		errs->n++;
	}
	snprintf(errs->e[i].kind, sizeof errs->e[i].kind, "%s", kind);
	errs->e[i].count++;
}

/* Fills one distribution from a field of the successful samples (of
 * every sample with `all`). */
static int dist_field(const struct ig_bench_sample *s, size_t n, size_t off, bool all,
		      struct ig_bench_dist *out)
{
	double *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		double x = *(const double *)((const char *)&s[i] + off);
		if ((all || !s[i].error) && !isnan(x))
			v[k++] = x;
	}
	ig_bench_dist_of(v, k, out);
	free(v);
	return 0;
}

int ig_bench_summarise(const struct ig_bench_sample *samples, size_t n, double duration_s,
		       const struct ig_bench_slo *slo, struct ig_bench_stage_result *out)
{
	out->sent = n;
	out->ok = out->failed = out->good = 0;
	out->in_tokens = out->out_tokens = 0;
	out->delayed = 0;
	out->duration_s = duration_s;
	memset(&out->errors, 0, sizeof out->errors);
	for (size_t i = 0; i < n; i++) {
		const struct ig_bench_sample *s = &samples[i];
		out->delayed += s->waited;
		if (s->error) {
			out->failed++;
			ig_bench_errors_add(&out->errors, s->error);
			continue;
		}
		out->ok++;
		out->in_tokens += s->in_tokens;
		out->out_tokens += s->out_tokens;
		if (ig_bench_meets_slo(slo, s))
			out->good++;
	}
	/* The client's queue is the time before a request was sent: it
	 * counts for every request, whatever its answer. */
	const struct {
		size_t off;
		bool all;
		struct ig_bench_dist *out;
	} dists[] = {
	    {offsetof(struct ig_bench_sample, ttft_ms), false, &out->ttft},
	    {offsetof(struct ig_bench_sample, tpot_ms), false, &out->tpot},
	    {offsetof(struct ig_bench_sample, e2e_ms), false, &out->e2e},
	    {offsetof(struct ig_bench_sample, queue_ms), true, &out->queue},
	};
	for (size_t k = 0; k < sizeof dists / sizeof dists[0]; k++)
		if (dist_field(samples, n, dists[k].off, dists[k].all, dists[k].out) < 0)
			return -1;
	double d = duration_s > 0 ? duration_s : NAN;
	out->rps = (double)out->ok / d;
	out->out_tps = (double)out->out_tokens / d;
	out->in_tps = (double)out->in_tokens / d;
	out->good_rps = (double)out->good / d;
	out->good_frac = n ? (double)out->good / (double)n : NAN;
	return 0;
}
