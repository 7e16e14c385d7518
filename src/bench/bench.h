/* `infergate bench`: an LLM load generator. It sends OpenAI-style
 * completions or chat requests at a constant rate, with Poisson arrivals or
 * at a fixed concurrency, in one or more stages, against one or more
 * targets, and reports TTFT, TPOT, ITL and end-to-end latency percentiles,
 * throughput, goodput under SLOs and errors. The pieces that have no I/O
 * (statistics, workloads, arrivals, the SSE splitter, the writers) are
 * public here so that unit tests can check them directly. */
#ifndef IG_BENCH_BENCH_H
#define IG_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/rand.h"

int ig_bench_main(int argc, char **argv);

/* ---- statistics (stats.c) ---- */

/* Percentile p (0..100) of n sorted values by linear interpolation between
 * the closest ranks (numpy's default, Hyndman & Fan type 7):
 * h = (n - 1) * p / 100, result = v[floor h] + (h - floor h) * (v[floor h + 1] - v[floor h]).
 * NAN when n == 0. */
double ig_bench_percentile(const double *sorted, size_t n, double p);

struct ig_bench_dist {
	size_t n;
	double mean, min, max, p50, p90, p95, p99;
};

/* Sorts v in place and summarises it. All zero (n 0) when v is empty. */
void ig_bench_dist_of(double *v, size_t n, struct ig_bench_dist *out);

/* Service-level objectives; 0 means "no bound on this one". */
struct ig_bench_slo {
	double ttft_ms, tpot_ms, e2e_ms;
};

/* What one request measured. Times in milliseconds; tpot_ms is NAN when the
 * request produced fewer than two output tokens or was not streamed. */
struct ig_bench_sample {
	uint64_t id; /* n of the x-request-id bench-<run id>-<n> it was sent with */
	uint32_t stage;
	uint16_t model, objective;
	int status;	   /* HTTP status, 0 if none arrived */
	const char *error; /* NULL on success, else a short kind ("429", "connect") */
	double start_ms;   /* sent, since the start of the stage */
	/* Open loop: when its arrival was scheduled (since the start of the
	 * stage) and how long it then waited to be sent (start_ms - sched_ms):
	 * the --max-inflight queue, or the timer's lateness; `waited` when it
	 * waited for a --max-inflight slot. Closed loop: sent when scheduled. */
	double sched_ms, queue_ms;
	bool waited;
	double ttft_ms, tpot_ms, e2e_ms;
	int64_t in_tokens, out_tokens;
	uint32_t chunks;
};

bool ig_bench_meets_slo(const struct ig_bench_slo *slo, const struct ig_bench_sample *s);
/* Parses "ttft=2s,tpot=100ms,e2e=10s". 0 or -1. */
int ig_bench_parse_slo(const char *s, struct ig_bench_slo *out);
/* "1.5s", "250ms", "2m", "1h", or a bare number of seconds, into ms. */
int ig_bench_parse_duration(const char *s, double *out_ms);

/* Errors by kind: an HTTP status ("503"), a transport failure
 * ("connect", "reset", "protocol", "timeout") or an answer that was not
 * one ("stream", "empty", "truncated"). */
#define IG_BENCH_MAX_ERROR_KINDS 24
struct ig_bench_errors {
	size_t n;
	struct {
		char kind[16];
		size_t count;
	} e[IG_BENCH_MAX_ERROR_KINDS];
};
void ig_bench_errors_add(struct ig_bench_errors *errs, const char *kind);

struct ig_bench_gw_stages;

/* The summary of one stage against one target. */
struct ig_bench_stage_result {
	double offered;	   /* requests/s, or concurrency for closed-loop loads */
	double duration_s; /* from the stage's first send to its last answer */
	size_t sent, ok, failed, good;
	/* Open loop: arrivals that waited for a --max-inflight slot, and
	 * those still waiting at the stage's end, which were never sent (not
	 * in `sent`). */
	size_t delayed, not_sent;
	int64_t in_tokens, out_tokens;
	size_t itl_dropped; /* ITL samples beyond the memory ceiling */
	struct ig_bench_dist ttft, tpot, itl, e2e;
	struct ig_bench_dist queue; /* client queue time of every request sent */
	double rps, out_tps, in_tps, good_rps, good_frac;
	struct ig_bench_errors errors;
	/* With --access-log: what the gateway's log says of this stage's
	 * requests (owned by the caller); NULL without. */
	struct ig_bench_gw_stages *gw;
};

/* Computes everything but itl (whose values live apart from the samples)
 * from the samples of one stage. Sorts nothing in `samples`. */
int ig_bench_summarise(const struct ig_bench_sample *samples, size_t n, double duration_s,
		       const struct ig_bench_slo *slo, struct ig_bench_stage_result *out);

/* ---- workloads (workload.c) ---- */

enum ig_bench_len_kind { IG_LEN_FIXED, IG_LEN_NORMAL, IG_LEN_UNIFORM };

/* "N" fixed, "N:S" normal (mean N, stddev S, rounded, at least 1), "A-B"
 * uniform over the integers A..B. */
struct ig_bench_len {
	enum ig_bench_len_kind kind;
	double mean, stddev;
	long lo, hi;
};
int ig_bench_parse_len(const char *s, struct ig_bench_len *out);
long ig_bench_len_sample(const struct ig_bench_len *l, struct ig_rng *rng);

/* A weighted set: "a:70,b:30" (a bare name weighs 1). */
#define IG_BENCH_MAX_CHOICES 64
struct ig_bench_choices {
	size_t n;
	double total;
	char *name[IG_BENCH_MAX_CHOICES];
	double weight[IG_BENCH_MAX_CHOICES];
};
int ig_bench_parse_choices(const char *s, struct ig_bench_choices *out);
size_t ig_bench_pick(const struct ig_bench_choices *c, struct ig_rng *rng);
void ig_bench_choices_free(struct ig_bench_choices *c);

enum ig_bench_workload_kind { IG_WL_RANDOM, IG_WL_SHARED_PREFIX, IG_WL_AGENTIC };

struct ig_bench_workload {
	enum ig_bench_workload_kind kind;
	bool chat; /* agentic: keep conversations as chat messages */
	struct ig_bench_len input, output;
	long groups, per_group, system_len, question_len;
	/* Agentic: conversations live at once, turns per conversation, and
	 * the words each turn adds after the previous answer. */
	long sessions, turns;
	struct ig_bench_len turn;
	/* Shared prefix and agentic: the groups' system prompts; shared
	 * prefix: every question. */
	struct ig_buf *systems, *questions;
};

/* One request's text: an optional system part (shared within a group) and
 * the user part; in_tokens counts both (one word is one token). Agentic
 * requests leave both empty and give instead `json`: the conversation as
 * the JSON text that goes inside the quotes of "prompt" (completions) or
 * inside the brackets of "messages" (chat), borrowed from the session until
 * its next turn. */
struct ig_bench_prompt {
	struct ig_buf system, user;
	struct ig_str json;
	const char *session; /* agentic: the session's id, else NULL */
	long turn;	     /* agentic: the turn, from 0 */
	long in_tokens, out_tokens;
	long group; /* -1 for the random workload */
};

/* Builds the groups' system prompts and the questions (none for the random
 * workload). */
int ig_bench_workload_init(struct ig_bench_workload *w, struct ig_rng *rng);
void ig_bench_workload_free(struct ig_bench_workload *w);
int ig_bench_workload_next(const struct ig_bench_workload *w, struct ig_rng *rng,
			   struct ig_bench_prompt *p);
/* Appends n words separated by spaces. */
int ig_bench_words(struct ig_buf *b, long n, struct ig_rng *rng);

/* Agentic sessions: w->sessions conversations live at once, taken in turn
 * (request n goes to slot n mod sessions, so a session's next turn comes
 * after every other live session had one). A turn adds the previous
 * answer (as many words as that turn's max_tokens, which is the answer's
 * length with ignore_eos) and w->turn new words, so each prompt of a
 * session extends the previous one; the first prompt carries the group's
 * system prompt (group = session number mod w->groups), shared by every
 * session of the group. After w->turns turns a session ends and a new one
 * takes its slot. At the start, slot i begins (i * turns / sessions) turns
 * into its conversation, so the mix of prompt sizes is steady from the
 * first request. The conversation is kept as request JSON, so a turn costs
 * only its own words. */
struct ig_bench_session {
	char id[24];
	long group, turn, tokens, last_out;
	struct ig_buf json;
};

struct ig_bench_agent {
	const struct ig_bench_workload *w;
	struct ig_bench_session *slots;
	uint64_t requests, started;
};

/* w must have been through ig_bench_workload_init() and outlive a. */
int ig_bench_agent_init(struct ig_bench_agent *a, const struct ig_bench_workload *w,
			struct ig_rng *rng);
void ig_bench_agent_free(struct ig_bench_agent *a);
/* The next request of the next slot; p->json and p->session point into
 * the session, valid until that slot's next turn. */
int ig_bench_agent_next(struct ig_bench_agent *a, struct ig_rng *rng, struct ig_bench_prompt *p);

/* ---- arrivals (workload.c) ---- */

enum ig_bench_load { IG_LOAD_CONSTANT, IG_LOAD_POISSON, IG_LOAD_CONCURRENCY };

/* Seconds until the next arrival at `rate` per second: 1/rate for a
 * constant rate, an exponential draw with that mean for Poisson. */
double ig_bench_next_gap(enum ig_bench_load load, double rate, struct ig_rng *rng);

/* What a streamed chunk carried (chunk.c): output length, usage. Output
 * is a completion's `text`, or a chat delta's (or message's) `content`,
 * `reasoning_content`, `reasoning` and tool calls' function name and
 * arguments. */
struct ig_bench_chunk {
	bool done;	/* the [DONE] sentinel */
	bool error;	/* an {"error": ...} event */
	size_t content; /* bytes of output: text, or content, reasoning and tool calls */
	int64_t completion_tokens, prompt_tokens; /* -1 when no usage */
};
/* Reads one `data:` payload. -1 when it is not valid JSON. */
int ig_bench_chunk_parse(const char *data, size_t len, struct ig_bench_chunk *out);
/* Reads a whole non-streamed response the same way (content = text length). */
int ig_bench_response_parse(const char *data, size_t len, struct ig_bench_chunk *out);

/* ---- the gateway's access log (alog.c) ---- */

/* What bench keeps of one JSON access-log line of the gateway
 * (src/gateway/accesslog.c). Times in ms; ttft_ms is NAN for `null` (no
 * pod answered). endpoint and reason are cut to fit. */
struct ig_bench_gw_rec {
	bool seen;
	int status;
	int attempts;
	double queue_ms, ttft_ms, duration_ms;
	char endpoint[48];
	char reason[80];
};

/* Reads one line (without its newline). 0: a JSON access-log line, its
 * request id copied into id (cut to idcap - 1 bytes); 1: a line of the
 * text (logfmt) format; -1: anything else. */
int ig_bench_alog_parse(const char *line, size_t len, char *id, size_t idcap,
			struct ig_bench_gw_rec *out);

/* The join of bench's requests, sent with x-request-id
 * `bench-<run id>-<n>` for n in 0..n_ids-1, to the log's lines. */
struct ig_bench_join {
	char prefix[48]; /* "bench-<run id>-" */
	size_t prefix_len;
	uint64_t n_ids;
	struct ig_bench_gw_rec *rec; /* by n */
	/* lines of other requests (other clients, other runs), lines that
	 * are not access-log JSON, repeated ids, text-format lines */
	uint64_t other, bad, duplicates, text;
};

int ig_bench_join_init(struct ig_bench_join *j, const char *run_id, uint64_t n_ids);
void ig_bench_join_free(struct ig_bench_join *j);
/* Reads the whole lines of buf; a last line without its newline is left
 * (it may still be being written). Returns the bytes consumed. */
size_t ig_bench_join_feed(struct ig_bench_join *j, const char *buf, size_t len);

/* Names counted (endpoints, error reasons); past the table's size they
 * count as "other". */
#define IG_BENCH_MAX_TALLY 16
struct ig_bench_tally {
	size_t n;
	struct {
		char name[80];
		size_t count;
	} e[IG_BENCH_MAX_TALLY];
};
void ig_bench_tally_add(struct ig_bench_tally *t, const char *name);

/* The per-stage breakdown of one bench stage's requests from the access
 * log. Counts over every matched request; the distributions (ms) over the
 * matched requests that succeeded at the client: time in the gateway's
 * flow-control queue, the gateway's TTFT (arrival to the pod's response
 * head), the client's TTFT minus the gateway's (connection, the
 * gateway's response path and, streamed, the wait for the first content
 * chunk after the head), the gateway's duration, and the client's E2E
 * minus it. */
struct ig_bench_gw_stages {
	size_t matched, unmatched, retried; /* retried: attempts > 1 */
	struct ig_bench_dist queue, gw_ttft, ttft_delta, gw_e2e, e2e_delta;
	struct ig_bench_tally endpoints, reasons;
};

int ig_bench_gw_summarise(const struct ig_bench_join *j, const struct ig_bench_sample *s, size_t n,
			  struct ig_bench_gw_stages *out);

/* ---- reports (report.c, svg.c) ---- */

struct ig_bench_target_result {
	const char *name, *url;
	size_t n_stages;
	struct ig_bench_stage_result *stages;
};

struct ig_bench_report {
	const char *load; /* "constant", "poisson", "concurrency" */
	const char *api;  /* "completions", "chat" */
	bool stream;
	struct ig_bench_slo slo;
	bool access_log;  /* the stages carry gw (CSV columns) */
	bool interrupted; /* Ctrl-C ended the run early */
	/* The run's settings as a JSON object (seed, workload, lengths, model
	 * mix, stages...), written as "settings" in --json; empty: none. */
	struct ig_str settings;
	size_t n_targets;
	struct ig_bench_target_result *targets;
};

void ig_bench_print_table(FILE *f, const struct ig_bench_report *r);
void ig_bench_print_comparison(FILE *f, const struct ig_bench_report *r);
int ig_bench_write_json(FILE *f, const struct ig_bench_report *r);
int ig_bench_write_csv(FILE *f, const struct ig_bench_report *r);
int ig_bench_write_svg(FILE *f, const struct ig_bench_report *r);
/* One CSV row per request (header first when `header`); its request id is
 * id_prefix and its n, or empty when id_prefix is NULL (--header gave one). */
void ig_bench_write_request_csv(FILE *f, const char *target, const char *id_prefix,
				const struct ig_bench_sample *s, size_t n, bool header);

#endif
