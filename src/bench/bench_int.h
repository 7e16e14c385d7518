/* Internals of `infergate bench` shared by its command line, its runner
 * and its main: the parsed options and one target's results. */
#ifndef IG_BENCH_BENCH_INT_H
#define IG_BENCH_BENCH_INT_H

#include <sys/socket.h>

#include "bench/bench.h"

#define BENCH_MAX_TARGETS 16
#define BENCH_MAX_STAGES 64
#define BENCH_MAX_HEADERS 32
/* The exit status of a run that Ctrl-C ended (after its report). */
#define BENCH_EXIT_INTERRUPTED 130

struct bench_stage {
	double load;	    /* requests/s, or concurrency */
	double duration_ms; /* 0: bounded by requests only */
	long requests;	    /* 0: bounded by duration only */
};

struct bench_target {
	char name[64];
	char url[256];
	char hostport[160]; /* for the Host header */
	char prefix[128];   /* path before /v1/... */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct bench_opts {
	enum ig_bench_load load;
	size_t n_stages;
	struct bench_stage stages[BENCH_MAX_STAGES];
	size_t n_targets;
	struct bench_target targets[BENCH_MAX_TARGETS];
	struct ig_bench_workload wl;
	bool chat, stream, ignore_eos;
	const char *model; /* NULL: no "model" field unless --models */
	struct ig_bench_choices models, objectives;
	const char *objective_header;
	const char *session_header; /* agentic: carries the session id; NULL: not sent */
	size_t n_headers;
	const char *headers[BENCH_MAX_HEADERS];
	/* --header gave one: it replaces bench's (hey -host does so too; two
	 * Host fields are a 400, RFC 9112 section 3.2) */
	bool own_host, own_content_type, own_accept;
	struct ig_bench_slo slo;
	long warmup;
	double timeout_ms;
	long max_inflight;
	uint64_t seed;
	double max_error_rate;
	bool quiet, progress;
	const char *json_file, *csv_file, *svg_file, *per_request_file;
	/* Every request carries x-request-id bench-<run_id>-<n> unless a
	 * --header sets one; --access-log joins the gateway's log on it. */
	char run_id[24];
	bool send_id;
	const char *access_log;
};

/* Parses argv into o. Returns 0, 1 when --help was printed, or 2 on a usage
 * error (already reported on stderr). */
int bench_parse_args(int argc, char **argv, struct bench_opts *o);
void bench_opts_free(struct bench_opts *o);

/* Everything one target produced: per-stage results and every sample. */
struct bench_run {
	size_t n_stages; /* stages run (fewer after Ctrl-C) */
	struct ig_bench_stage_result stages[BENCH_MAX_STAGES];
	struct ig_bench_sample *samples;
	size_t n_samples, cap_samples;
	/* Request ids (n of bench-<run id>-<n>) first_id .. first_id + n_ids - 1,
	 * warm-up requests included; first_id is set by the caller. */
	uint64_t first_id, n_ids;
	bool interrupted;
};

/* --access-log: waits up to 2 s for the log to hold every request of
 * runs[0..n_runs), then hangs a per-stage breakdown on each stage result
 * (free it with bench_access_log_free). `start` is the log's size before
 * the run: only what came after is read. 0, or -1 (said on stderr). */
int bench_access_log(const struct bench_opts *o, struct bench_run *runs, size_t n_runs,
		     long long start);
void bench_access_log_free(struct bench_run *runs, size_t n_runs);
/* The log's size now (0 when it does not exist yet). */
long long bench_access_log_size(const char *path);

/* Runs every stage against target t. 0, or -1 when the loop fails. */
/* Ctrl-C stops sending and lets requests in flight finish; a second one
 * ends the process. */
void bench_install_sigint(void);
int bench_run_target(const struct bench_opts *o, size_t t, struct bench_run *run);

#endif
