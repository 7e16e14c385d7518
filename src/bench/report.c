/* The benchmark's reports: a table for people, JSON and CSV for tools, one
 * CSV row per request for deeper digging. Missing values (no successful
 * request, no second token, no stream to time tokens by) print as "-" in
 * tables, empty in CSV and null in JSON. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "bench/bench.h"
#include "json/json.h"

static const char *unit_of(const struct ig_bench_report *r)
{
	return strcmp(r->load, "concurrency") == 0 ? "" : "/s";
}

static void cell(FILE *f, double v, int width, int prec)
{
	if (isnan(v) || isinf(v))
		fprintf(f, " %*s", width, "-");
	else
		fprintf(f, " %*.*f", width, prec, v);
}

/* A distribution's count and figures, after its row's name, to the end
 * of the line. */
static void dist_cells(FILE *f, const struct ig_bench_dist *d)
{
	fprintf(f, " %9zu", d->n);
	bool none = d->n == 0;
	cell(f, none ? NAN : d->mean, 9, 2);
	cell(f, none ? NAN : d->p50, 9, 2);
	cell(f, none ? NAN : d->p90, 9, 2);
	cell(f, none ? NAN : d->p95, 9, 2);
	cell(f, none ? NAN : d->p99, 9, 2);
	cell(f, none ? NAN : d->max, 9, 2);
	fputc('\n', f);
}

static void dist_row(FILE *f, const char *name, const struct ig_bench_dist *d)
{
	fprintf(f, "    %-5s", name);
	dist_cells(f, d);
}

static void errors_line(FILE *f, const struct ig_bench_errors *e)
{
	if (e->n == 0)
		return;
	fprintf(f, "    errors:");
	for (size_t i = 0; i < e->n; i++)
		fprintf(f, " %s=%zu", e->e[i].kind, e->e[i].count);
	fputc('\n', f);
}

static void tally_line(FILE *f, const char *what, const struct ig_bench_tally *t)
{
	if (t->n == 0)
		return;
	fprintf(f, "      %s:", what);
	for (size_t i = 0; i < t->n; i++)
		fprintf(f, strpbrk(t->e[i].name, " =") ? " \"%s\"=%zu" : " %s=%zu", t->e[i].name,
			t->e[i].count);
	fputc('\n', f);
}

/* The names of the per-stage distributions, in table, JSON and CSV. */
static const struct {
	const char *table, *key;
	size_t off;
} gw_dists[] = {
    {"gateway queue", "queue", offsetof(struct ig_bench_gw_stages, queue)},
    {"gateway TTFT", "gateway_ttft", offsetof(struct ig_bench_gw_stages, gw_ttft)},
    {"client-gw TTFT", "client_minus_gateway_ttft",
     offsetof(struct ig_bench_gw_stages, ttft_delta)},
    {"gateway E2E", "gateway_e2e", offsetof(struct ig_bench_gw_stages, gw_e2e)},
    {"client-gw E2E", "client_minus_gateway_e2e", offsetof(struct ig_bench_gw_stages, e2e_delta)},
};
#define N_GW_DISTS (sizeof gw_dists / sizeof gw_dists[0])

static const struct ig_bench_dist *gw_dist(const struct ig_bench_gw_stages *g, size_t i)
{
	return (const struct ig_bench_dist *)((const char *)g + gw_dists[i].off);
}

static void gw_block(FILE *f, const struct ig_bench_gw_stages *g)
{
	fprintf(f,
		"    per-stage (gateway access log): matched %zu, unmatched %zu, attempts>1 %zu\n",
		g->matched, g->unmatched, g->retried);
	fprintf(f, "      %-14s %9s %9s %9s %9s %9s %9s %9s   (ms)\n", "", "n", "mean", "p50",
		"p90", "p95", "p99", "max");
	for (size_t i = 0; i < N_GW_DISTS; i++) {
		fprintf(f, "      %-14s", gw_dists[i].table);
		dist_cells(f, gw_dist(g, i));
	}
	tally_line(f, "endpoints", &g->endpoints);
	tally_line(f, "gateway errors", &g->reasons);
}

static void stage_block(FILE *f, const struct ig_bench_report *r,
			const struct ig_bench_stage_result *s, size_t i)
{
	fprintf(f, "  stage %zu: offered %g%s, %.2fs: sent %zu, ok %zu, failed %zu\n", i + 1,
		s->offered, unit_of(r), s->duration_s, s->sent, s->ok, s->failed);
	fprintf(f, "    %.2f req/s, %.1f output tok/s, %.1f input tok/s", s->rps, s->out_tps,
		s->in_tps);
	if (r->slo.ttft_ms || r->slo.tpot_ms || r->slo.e2e_ms)
		fprintf(f, ", goodput %.2f req/s (%.1f%%)", s->good_rps, s->good_frac * 100);
	fputc('\n', f);
	fprintf(f, "    %-5s %9s %9s %9s %9s %9s %9s %9s   (ms)\n", "", "n", "mean", "p50", "p90",
		"p95", "p99", "max");
	dist_row(f, "TTFT", &s->ttft);
	dist_row(f, "TPOT", &s->tpot);
	dist_row(f, "ITL", &s->itl);
	dist_row(f, "E2E", &s->e2e);
	/* The client's own queue only when --max-inflight held arrivals back:
	 * otherwise it is the timer's lateness, microseconds. */
	if (s->delayed || s->not_sent) {
		dist_row(f, "queue", &s->queue);
		fprintf(f,
			"    (%zu arrivals waited for a --max-inflight slot; %zu still waiting "
			"at the stage's end were not sent)\n",
			s->delayed, s->not_sent);
	}
	if (s->itl_dropped)
		fprintf(f, "    (%zu ITL samples over the memory ceiling were not kept)\n",
			s->itl_dropped);
	errors_line(f, &s->errors);
	if (s->gw)
		gw_block(f, s->gw);
}

void ig_bench_print_table(FILE *f, const struct ig_bench_report *r)
{
	for (size_t t = 0; t < r->n_targets; t++) {
		const struct ig_bench_target_result *tr = &r->targets[t];
		fprintf(f, "target %s (%s): load %s, api %s, stream %s\n", tr->name, tr->url,
			r->load, r->api, r->stream ? "on" : "off");
		for (size_t i = 0; i < tr->n_stages; i++)
			stage_block(f, r, &tr->stages[i], i);
		if (t + 1 < r->n_targets)
			fputc('\n', f);
	}
}

/* The metrics a comparison shows, read out of a stage result. */
struct metric {
	const char *name;
	double (*get)(const struct ig_bench_stage_result *s);
};

static double m_ttft50(const struct ig_bench_stage_result *s)
{
	return s->ttft.n ? s->ttft.p50 : NAN;
}
static double m_ttft90(const struct ig_bench_stage_result *s)
{
	return s->ttft.n ? s->ttft.p90 : NAN;
}
static double m_tpot50(const struct ig_bench_stage_result *s)
{
	return s->tpot.n ? s->tpot.p50 : NAN;
}
static double m_itl50(const struct ig_bench_stage_result *s)
{
	return s->itl.n ? s->itl.p50 : NAN;
}
static double m_e2e50(const struct ig_bench_stage_result *s)
{
	return s->e2e.n ? s->e2e.p50 : NAN;
}
static double m_e2e99(const struct ig_bench_stage_result *s)
{
	return s->e2e.n ? s->e2e.p99 : NAN;
}
static double m_rps(const struct ig_bench_stage_result *s)
{
	return s->rps;
}
static double m_otps(const struct ig_bench_stage_result *s)
{
	return s->out_tps;
}
static double m_good(const struct ig_bench_stage_result *s)
{
	return s->good_rps;
}
static double m_fail(const struct ig_bench_stage_result *s)
{
	return (double)s->failed;
}

static const struct metric metrics[] = {
    {"TTFT p50 ms", m_ttft50}, {"TTFT p90 ms", m_ttft90}, {"TPOT p50 ms", m_tpot50},
    {"ITL p50 ms", m_itl50},   {"E2E p50 ms", m_e2e50},	  {"E2E p99 ms", m_e2e99},
    {"req/s", m_rps},	       {"out tok/s", m_otps},	  {"goodput req/s", m_good},
    {"failed", m_fail},
};

static void compare_stage(FILE *f, const struct ig_bench_report *r, size_t i)
{
	const struct ig_bench_target_result *base = &r->targets[0];
	fprintf(f, "  stage %zu (offered %g%s)\n", i + 1, base->stages[i].offered, unit_of(r));
	fprintf(f, "    %-14s", "");
	for (size_t t = 0; t < r->n_targets; t++)
		fprintf(f, " %12.12s", r->targets[t].name);
	for (size_t t = 1; t < r->n_targets; t++) {
		char label[40];
		snprintf(label, sizeof label, "%s/%s", r->targets[t].name, base->name);
		fprintf(f, " %12.12s", label);
	}
	fputc('\n', f);
	for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
		fprintf(f, "    %-14s", metrics[m].name);
		double b = metrics[m].get(&base->stages[i]);
		for (size_t t = 0; t < r->n_targets; t++)
			cell(f, metrics[m].get(&r->targets[t].stages[i]), 12, 2);
		for (size_t t = 1; t < r->n_targets; t++)
			cell(f, b != 0 ? metrics[m].get(&r->targets[t].stages[i]) / b : NAN, 12, 3);
		fputc('\n', f);
	}
}

void ig_bench_print_comparison(FILE *f, const struct ig_bench_report *r)
{
	if (r->n_targets < 2)
		return;
	size_t n = r->targets[0].n_stages;
	for (size_t t = 1; t < r->n_targets; t++)
		if (r->targets[t].n_stages < n)
			n = r->targets[t].n_stages;
	fprintf(f, "\ncomparison (ratios are target / %s):\n", r->targets[0].name);
	for (size_t i = 0; i < n; i++)
		compare_stage(f, r, i);
}

/* ---- JSON ---- */

static void jnum(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void jstr(FILE *f, const char *s)
{
	struct ig_buf b = {0};
	if (ig_json_write_string(&b, s, strlen(s)) == 0)
		fwrite(b.ptr, 1, b.len, f);
	else
		fputs("\"\"", f);
	ig_buf_free(&b);
}

static void jdist(FILE *f, const char *name, const struct ig_bench_dist *d)
{
	fprintf(f, "\"%s\":{\"n\":%zu,\"mean\":", name, d->n);
	bool none = d->n == 0;
	jnum(f, none ? NAN : d->mean);
	const char *keys[] = {"min", "p50", "p90", "p95", "p99", "max"};
	double vals[] = {d->min, d->p50, d->p90, d->p95, d->p99, d->max};
	for (size_t i = 0; i < 6; i++) {
		fprintf(f, ",\"%s\":", keys[i]);
		jnum(f, none ? NAN : vals[i]);
	}
	fputc('}', f);
}

static void jtally(FILE *f, const char *name, const struct ig_bench_tally *t)
{
	fprintf(f, ",\"%s\":{", name);
	for (size_t k = 0; k < t->n; k++) {
		if (k)
			fputc(',', f);
		jstr(f, t->e[k].name);
		fprintf(f, ":%zu", t->e[k].count);
	}
	fputc('}', f);
}

static void jgw(FILE *f, const struct ig_bench_gw_stages *g)
{
	fprintf(f,
		",\"per_stage\":{\"source\":\"access_log\",\"matched\":%zu,\"unmatched\":%zu,"
		"\"retried\":%zu,\"latency_ms\":{",
		g->matched, g->unmatched, g->retried);
	for (size_t i = 0; i < N_GW_DISTS; i++) {
		if (i)
			fputc(',', f);
		jdist(f, gw_dists[i].key, gw_dist(g, i));
	}
	fputc('}', f);
	jtally(f, "endpoints", &g->endpoints);
	jtally(f, "reasons", &g->reasons);
	fputc('}', f);
}

static void jstage(FILE *f, const struct ig_bench_stage_result *s, size_t i)
{
	fprintf(f, "{\"stage\":%zu,\"offered\":", i + 1);
	jnum(f, s->offered);
	fputs(",\"duration_s\":", f);
	jnum(f, s->duration_s);
	fprintf(f, ",\"sent\":%zu,\"ok\":%zu,\"failed\":%zu,\"good\":%zu", s->sent, s->ok,
		s->failed, s->good);
	fprintf(f, ",\"delayed\":%zu,\"not_sent\":%zu", s->delayed, s->not_sent);
	fprintf(f, ",\"input_tokens\":%lld,\"output_tokens\":%lld", (long long)s->in_tokens,
		(long long)s->out_tokens);
	const char *keys[] = {"requests_per_s", "output_tokens_per_s", "input_tokens_per_s",
			      "goodput_requests_per_s", "goodput_fraction"};
	double vals[] = {s->rps, s->out_tps, s->in_tps, s->good_rps, s->good_frac};
	for (size_t k = 0; k < 5; k++) {
		fprintf(f, ",\"%s\":", keys[k]);
		jnum(f, vals[k]);
	}
	fputs(",\"latency_ms\":{", f);
	jdist(f, "ttft", &s->ttft);
	fputc(',', f);
	jdist(f, "tpot", &s->tpot);
	fputc(',', f);
	jdist(f, "itl", &s->itl);
	fputc(',', f);
	jdist(f, "e2e", &s->e2e);
	fputc(',', f);
	jdist(f, "client_queue", &s->queue);
	fprintf(f, "},\"itl_dropped\":%zu,\"errors\":{", s->itl_dropped);
	for (size_t k = 0; k < s->errors.n; k++)
		fprintf(f, "%s\"%s\":%zu", k ? "," : "", s->errors.e[k].kind, s->errors.e[k].count);
	fputc('}', f);
	if (s->gw)
		jgw(f, s->gw);
	fputc('}', f);
}

int ig_bench_write_json(FILE *f, const struct ig_bench_report *r)
{
	fputs("{\"tool\":\"infergate bench\",\"percentile_method\":\"linear\",\"load\":", f);
	jstr(f, r->load);
	fputs(",\"api\":", f);
	jstr(f, r->api);
	fprintf(f, ",\"interrupted\":%s", r->interrupted ? "true" : "false");
	fprintf(f, ",\"stream\":%s,\"slo_ms\":{\"ttft\":", r->stream ? "true" : "false");
	jnum(f, r->slo.ttft_ms ? r->slo.ttft_ms : NAN);
	fputs(",\"tpot\":", f);
	jnum(f, r->slo.tpot_ms ? r->slo.tpot_ms : NAN);
	fputs(",\"e2e\":", f);
	jnum(f, r->slo.e2e_ms ? r->slo.e2e_ms : NAN);
	fputc('}', f);
	if (r->settings.len) {
		fputs(",\"settings\":", f);
		fwrite(r->settings.ptr, 1, r->settings.len, f);
	}
	fputs(",\"targets\":[", f);
	for (size_t t = 0; t < r->n_targets; t++) {
		const struct ig_bench_target_result *tr = &r->targets[t];
		fputs(t ? ",{\"name\":" : "{\"name\":", f);
		jstr(f, tr->name);
		fputs(",\"url\":", f);
		jstr(f, tr->url);
		fputs(",\"stages\":[", f);
		for (size_t i = 0; i < tr->n_stages; i++) {
			if (i)
				fputc(',', f);
			jstage(f, &tr->stages[i], i);
		}
		fputs("]}", f);
	}
	fputs("]}\n", f);
	return ferror(f) ? -1 : 0;
}

/* ---- CSV ---- */

static void cnum(FILE *f, double v)
{
	fputc(',', f);
	if (!isnan(v) && !isinf(v))
		fprintf(f, "%.6g", v);
}

/* Target names are ours to quote: a comma or quote in one must not shift
 * the columns. */
static void cstr(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* A distribution's columns, in the order of dist_header(). */
static void cdist(FILE *f, const struct ig_bench_dist *d)
{
	bool none = d->n == 0;
	fprintf(f, ",%zu", d->n);
	double vals[] = {d->mean, d->min, d->p50, d->p90, d->p95, d->p99, d->max};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
		cnum(f, none ? NAN : vals[i]);
}

static void dist_header(FILE *f, const char *name)
{
	fprintf(f, ",%s_n", name);
	const char *cols[] = {"mean", "min", "p50", "p90", "p95", "p99", "max"};
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
		fprintf(f, ",%s_%s_ms", name, cols[i]);
}

/* A tally as one CSV cell: name=count;name=count, quoted when needed. */
static void ctally(FILE *f, const struct ig_bench_tally *t)
{
	struct ig_buf b = {0};
	for (size_t k = 0; k < t->n; k++)
		ig_buf_printf(&b, "%s%s=%zu", k ? ";" : "", t->e[k].name, t->e[k].count);
	fputc(',', f);
	cstr(f, b.len ? ig_buf_cstr(&b) : "");
	ig_buf_free(&b);
}

/* The per-stage columns; empty cells for a stage without them. */
static void cgw(FILE *f, const struct ig_bench_gw_stages *g)
{
	static const struct ig_bench_gw_stages none;
	if (g)
		fprintf(f, ",%zu,%zu,%zu", g->matched, g->unmatched, g->retried);
	else
		fputs(",,,", f);
	for (size_t k = 0; k < N_GW_DISTS; k++)
		cdist(f, gw_dist(g ? g : &none, k));
	ctally(f, g ? &g->endpoints : &none.endpoints);
	ctally(f, g ? &g->reasons : &none.reasons);
}

int ig_bench_write_csv(FILE *f, const struct ig_bench_report *r)
{
	fputs("target,stage,offered,duration_s,sent,ok,failed,good,delayed,not_sent,input_tokens,"
	      "output_tokens,requests_per_s,output_tokens_per_s,input_tokens_per_s,"
	      "goodput_requests_per_s,goodput_fraction",
	      f);
	const char *names[] = {"ttft", "tpot", "itl", "e2e", "client_queue"};
	for (size_t k = 0; k < 5; k++)
		dist_header(f, names[k]);
	fputs(",itl_dropped,errors", f);
	if (r->access_log) {
		fputs(",gw_matched,gw_unmatched,gw_retried", f);
		for (size_t k = 0; k < N_GW_DISTS; k++)
			dist_header(f, gw_dists[k].key);
		fputs(",gw_endpoints,gw_reasons", f);
	}
	fputc('\n', f);
	for (size_t t = 0; t < r->n_targets; t++) {
		const struct ig_bench_target_result *tr = &r->targets[t];
		for (size_t i = 0; i < tr->n_stages; i++) {
			const struct ig_bench_stage_result *s = &tr->stages[i];
			cstr(f, tr->name);
			fprintf(f, ",%zu", i + 1);
			cnum(f, s->offered);
			cnum(f, s->duration_s);
			fprintf(f, ",%zu,%zu,%zu,%zu,%zu,%zu,%lld,%lld", s->sent, s->ok, s->failed,
				s->good, s->delayed, s->not_sent, (long long)s->in_tokens,
				(long long)s->out_tokens);
			cnum(f, s->rps);
			cnum(f, s->out_tps);
			cnum(f, s->in_tps);
			cnum(f, s->good_rps);
			cnum(f, s->good_frac);
			cdist(f, &s->ttft);
			cdist(f, &s->tpot);
			cdist(f, &s->itl);
			cdist(f, &s->e2e);
			cdist(f, &s->queue);
			fprintf(f, ",%zu,", s->itl_dropped);
			for (size_t k = 0; k < s->errors.n; k++)
				fprintf(f, "%s%s=%zu", k ? ";" : "", s->errors.e[k].kind,
					s->errors.e[k].count);
			if (r->access_log)
				cgw(f, s->gw);
			fputc('\n', f);
		}
	}
	return ferror(f) ? -1 : 0;
}

void ig_bench_write_request_csv(FILE *f, const char *target, const char *id_prefix,
				const struct ig_bench_sample *s, size_t n, bool header)
{
	if (header)
		fputs("target,stage,request_id,scheduled_ms,start_ms,queue_ms,status,error,model,"
		      "objective,input_tokens,output_tokens,chunks,ttft_ms,tpot_ms,e2e_ms\n",
		      f);
	for (size_t i = 0; i < n; i++) {
		cstr(f, target);
		fprintf(f, ",%u,", s[i].stage + 1);
		if (id_prefix)
			fprintf(f, "%s%llu", id_prefix, (unsigned long long)s[i].id);
		cnum(f, s[i].sched_ms);
		cnum(f, s[i].start_ms);
		cnum(f, s[i].queue_ms);
		fprintf(f, ",%d,%s,%u,%u,%lld,%lld,%u", s[i].status, s[i].error ? s[i].error : "",
			s[i].model, s[i].objective, (long long)s[i].in_tokens,
			(long long)s[i].out_tokens, s[i].chunks);
		cnum(f, s[i].ttft_ms);
		cnum(f, s[i].tpot_ms);
		cnum(f, s[i].e2e_ms);
		fputc('\n', f);
	}
}
