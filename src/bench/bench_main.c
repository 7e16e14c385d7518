/* `infergate bench`: parse the command line, run the stages against each
 * target in turn, then print and write the reports. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "json/json.h"

static const char *load_name(enum ig_bench_load l)
{
	return l == IG_LOAD_POISSON	  ? "poisson"
	       : l == IG_LOAD_CONCURRENCY ? "concurrency"
					  : "constant";
}

/* "N", "MEAN:STDDEV" or "LO-HI", as the flag takes it. */
static int put_len(struct ig_buf *b, const char *key, const struct ig_bench_len *l)
{
	if (l->kind == IG_LEN_NORMAL)
		return ig_buf_printf(b, ",\"%s\":\"%g:%g\"", key, l->mean, l->stddev);
	if (l->kind == IG_LEN_UNIFORM)
		return ig_buf_printf(b, ",\"%s\":\"%ld-%ld\"", key, l->lo, l->hi);
	return ig_buf_printf(b, ",\"%s\":\"%ld\"", key, l->lo);
}

static int put_choices(struct ig_buf *b, const char *key, const struct ig_bench_choices *c)
{
	if (ig_buf_printf(b, ",\"%s\":{", key) < 0)
		return -1;
	for (size_t i = 0; i < c->n; i++)
		if ((i && ig_buf_append_cstr(b, ",") < 0) ||
		    ig_json_write_string(b, c->name[i], strlen(c->name[i])) < 0 ||
		    ig_buf_printf(b, ":%g", c->weight[i]) < 0)
			return -1;
	return ig_buf_append_cstr(b, "}");
}

static int put_workload(struct ig_buf *b, const struct bench_opts *o)
{
	static const char *const kinds[] = {"random", "shared-prefix", "agentic"};
	const struct ig_bench_workload *w = &o->wl;
	if (ig_buf_printf(b, ",\"workload\":\"%s\"", kinds[w->kind]) < 0 ||
	    put_len(b, "output_len", &w->output) < 0)
		return -1;
	if (w->kind == IG_WL_RANDOM)
		return put_len(b, "input_len", &w->input);
	if (ig_buf_printf(b, ",\"groups\":%ld,\"system_prompt_len\":%ld", w->groups,
			  w->system_len) < 0)
		return -1;
	if (w->kind == IG_WL_SHARED_PREFIX)
		return ig_buf_printf(b, ",\"prompts_per_group\":%ld,\"question_len\":%ld",
				     w->per_group, w->question_len);
	return ig_buf_printf(b, ",\"sessions\":%ld,\"turns\":%ld", w->sessions, w->turns) < 0
		   ? -1
		   : put_len(b, "turn_len", &w->turn);
}

/* What the run was asked to do, so that a JSON report says how it was
 * made: everything that decides the requests and their timing. */
static int settings_json(const struct bench_opts *o, struct ig_buf *b)
{
	if (ig_buf_printf(b, "{\"seed\":%llu", (unsigned long long)o->seed) < 0 ||
	    put_workload(b, o) < 0)
		return -1;
	if (ig_buf_append_cstr(b, ",\"model\":") < 0 ||
	    (o->model ? ig_json_write_string(b, o->model, strlen(o->model))
		      : ig_buf_append_cstr(b, "null")) < 0 ||
	    put_choices(b, "models", &o->models) < 0 ||
	    put_choices(b, "objectives", &o->objectives) < 0)
		return -1;
	if (ig_buf_printf(b,
			  ",\"ignore_eos\":%s,\"warmup\":%ld,\"timeout_s\":%g,"
			  "\"max_inflight\":%ld,\"stages\":[",
			  o->ignore_eos ? "true" : "false", o->warmup, o->timeout_ms / 1000,
			  o->max_inflight) < 0)
		return -1;
	for (size_t i = 0; i < o->n_stages; i++) {
		const struct bench_stage *st = &o->stages[i];
		if (ig_buf_printf(b, "%s{\"%s\":%g,\"duration_s\":", i ? "," : "",
				  o->load == IG_LOAD_CONCURRENCY ? "concurrency" : "rate",
				  st->load) < 0 ||
		    (st->duration_ms > 0 ? ig_buf_printf(b, "%g", st->duration_ms / 1000)
					 : ig_buf_append_cstr(b, "null")) < 0 ||
		    ig_buf_append_cstr(b, ",\"requests\":") < 0 ||
		    (st->requests > 0 ? ig_buf_printf(b, "%ld", st->requests)
				      : ig_buf_append_cstr(b, "null")) < 0 ||
		    ig_buf_append_cstr(b, "}") < 0)
			return -1;
	}
	return ig_buf_append_cstr(b, "]}");
}

static int write_file(const char *path, const struct ig_bench_report *r,
		      int (*writer)(FILE *f, const struct ig_bench_report *r))
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "infergate bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = writer(f, r);
	if (fclose(f) != 0 || rc < 0) {
		fprintf(stderr, "infergate bench: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

static int write_requests(const struct bench_opts *o, const struct bench_run *runs)
{
	FILE *f = fopen(o->per_request_file, "w");
	if (!f) {
		fprintf(stderr, "infergate bench: %s: %s\n", o->per_request_file, strerror(errno));
		return -1;
	}
	char prefix[48];
	snprintf(prefix, sizeof prefix, "bench-%s-", o->run_id);
	for (size_t t = 0; t < o->n_targets; t++)
		ig_bench_write_request_csv(f, o->targets[t].name, o->send_id ? prefix : NULL,
					   runs[t].samples, runs[t].n_samples, t == 0);
	if (fclose(f) != 0) {
		fprintf(stderr, "infergate bench: %s: write failed\n", o->per_request_file);
		return -1;
	}
	return 0;
}

static int write_outputs(const struct bench_opts *o, const struct ig_bench_report *r,
			 const struct bench_run *runs)
{
	int rc = 0;
	if (!o->quiet) {
		ig_bench_print_table(stdout, r);
		ig_bench_print_comparison(stdout, r);
		fflush(stdout);
	}
	if (o->json_file && write_file(o->json_file, r, ig_bench_write_json) < 0)
		rc = -1;
	if (o->csv_file && write_file(o->csv_file, r, ig_bench_write_csv) < 0)
		rc = -1;
	if (o->svg_file && write_file(o->svg_file, r, ig_bench_write_svg) < 0)
		rc = -1;
	if (o->per_request_file && write_requests(o, runs) < 0)
		rc = -1;
	return rc;
}

/* The exit status: 1 when more than --max-error-rate of the requests failed
 * (or none was sent), else 0. */
static int verdict(const struct bench_opts *o, const struct ig_bench_report *r)
{
	size_t sent = 0, failed = 0;
	for (size_t t = 0; t < r->n_targets; t++)
		for (size_t i = 0; i < r->targets[t].n_stages; i++) {
			sent += r->targets[t].stages[i].sent;
			failed += r->targets[t].stages[i].failed;
		}
	if (sent == 0) {
		fprintf(stderr, "infergate bench: no request was sent\n");
		return 1;
	}
	double rate = (double)failed / (double)sent;
	if (rate > o->max_error_rate) {
		fprintf(stderr, "infergate bench: %zu of %zu requests failed (%.1f%%)\n", failed,
			sent, rate * 100);
		return 1;
	}
	return 0;
}

static int run_all(struct bench_opts *o, struct bench_run *runs,
		   struct ig_bench_target_result *results)
{
	struct ig_rng rng;
	ig_rng_seed(&rng, o->seed ^ 0x9e3779b97f4a7c15ull);
	if (ig_bench_workload_init(&o->wl, &rng) < 0) {
		fprintf(stderr, "infergate bench: out of memory building prompts\n");
		return -1;
	}
	bench_install_sigint();
	for (size_t t = 0; t < o->n_targets; t++) {
		if (t > 0)
			runs[t].first_id = runs[t - 1].first_id + runs[t - 1].n_ids;
		if (bench_run_target(o, t, &runs[t]) < 0) {
			fprintf(stderr, "infergate bench: %s: the event loop failed\n",
				o->targets[t].name);
			return -1;
		}
		results[t] = (struct ig_bench_target_result){
		    .name = o->targets[t].name,
		    .url = o->targets[t].url,
		    .n_stages = runs[t].n_stages,
		    .stages = runs[t].stages,
		};
		if (runs[t].interrupted) {
			fprintf(stderr, "infergate bench: interrupted\n");
			return (int)t + 1;
		}
	}
	return (int)o->n_targets;
}

int ig_bench_main(int argc, char **argv)
{
	struct bench_opts *o = calloc(1, sizeof *o);
	struct bench_run *runs = calloc(BENCH_MAX_TARGETS, sizeof *runs);
	struct ig_bench_target_result *results = calloc(BENCH_MAX_TARGETS, sizeof *results);
	int rc = 1;
	size_t n_runs = 0;
	if (!o || !runs || !results)
		goto out;
	rc = bench_parse_args(argc, argv, o);
	if (rc) {
		rc = rc == 1 ? 0 : 2;
		goto out;
	}
	long long log_start = o->access_log ? bench_access_log_size(o->access_log) : 0;
	int done = run_all(o, runs, results);
	rc = 1;
	if (done < 0)
		goto out;
	n_runs = (size_t)done;
	bool log_ok = !o->access_log || bench_access_log(o, runs, n_runs, log_start) == 0;
	struct ig_buf settings = {0};
	if (settings_json(o, &settings) < 0)
		settings.len = 0;
	struct ig_bench_report rep = {
	    .settings = ig_buf_str(&settings),
	    .load = load_name(o->load),
	    .api = o->chat ? "chat" : "completions",
	    .stream = o->stream,
	    .slo = o->slo,
	    .access_log = o->access_log && log_ok,
	    .interrupted = done > 0 && runs[done - 1].interrupted,
	    .n_targets = (size_t)done,
	    .targets = results,
	};
	rc = write_outputs(o, &rep, runs) < 0 || !log_ok ? 1 : verdict(o, &rep);
	/* A run cut short by Ctrl-C is no measurement of the load asked for:
	 * a script must not take it for one (128 + SIGINT, as a shell reports
	 * a process that SIGINT ended). */
	if (rep.interrupted)
		rc = BENCH_EXIT_INTERRUPTED;
	ig_buf_free(&settings);
out:
	if (runs)
		bench_access_log_free(runs, n_runs);
	if (o)
		bench_opts_free(o);
	if (runs)
		for (size_t t = 0; t < BENCH_MAX_TARGETS; t++)
			free(runs[t].samples);
	free(runs);
	free(results);
	free(o);
	return rc;
}
