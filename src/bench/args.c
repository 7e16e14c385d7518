/* The command line of `infergate bench`: one ig_flag table (core/flags.h)
 * parses it and prints --help. Flags that depend on each other (one kind
 * of load; stages against a single rate) are checked in callbacks and once
 * every flag is read. Exit status 2 for any usage error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "core/flags.h"
#include "http/client.h"

static const char usage_text[] =
    "usage: infergate bench [OPTIONS] --url http://HOST:PORT\n"
    "\n"
    "An LLM load generator: sends OpenAI-style requests and reports TTFT, TPOT,\n"
    "ITL and end-to-end latency percentiles, throughput, goodput and errors.\n"
    "\n";

static const char footer_text[] =
    "DUR is 1.5s, 250ms, 2m or a number of seconds. Percentiles use linear\n"
    "interpolation between closest ranks (numpy's default). TTFT is the first\n"
    "chunk with output: text, content, reasoning or a tool call (the whole answer\n"
    "with --no-stream); a 200 without any fails as `empty`. TPOT is\n"
    "(e2e - ttft) / (output tokens - 1) for streamed answers of 2 tokens or more\n"
    "(absent otherwise: -, empty in CSV, null in JSON); ITL is every gap between\n"
    "chunks with output.\n"
    "Output tokens come from `usage`, else the number of chunks with output.\n"
    "Exit status: 0 ok, 1 too many failed requests (connection errors count) or\n"
    "the run could not start, 2 usage error, 130 interrupted by Ctrl-C (what was\n"
    "measured is still reported, with \"interrupted\": true in --json).\n";

/* What the command line said before defaults are applied. */
struct pending {
	double single_load, stage_dur_ms, duration_ms;
	long requests;
	bool load_given, stages_given;
	int api, workload; /* indexes into api_names, workload_names */
	bool no_session_header;
};

/* What the callbacks reach through fl->ud. */
struct args {
	struct bench_opts *o;
	struct pending pd;
};

static const char *const api_names[] = {"completions", "chat", NULL};
static const char *const workload_names[] = {"random", "shared-prefix", "agentic", NULL};
static const enum ig_bench_workload_kind workload_kinds[] = {IG_WL_RANDOM, IG_WL_SHARED_PREFIX,
							     IG_WL_AGENTIC};

static int parse_pos_double(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v) || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* "http://HOST:PORT[/prefix]" with a numeric or "localhost" host. */
static int parse_url(const char *url, struct bench_target *t)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strstr(p, "://"))
		return -1;
	size_t hl = strcspn(p, "/");
	if (hl == 0 || hl >= sizeof t->hostport)
		return -1;
	char hp[160];
	memcpy(hp, p, hl);
	hp[hl] = '\0';
	snprintf(t->prefix, sizeof t->prefix, "%s", p + hl);
	size_t pl = strlen(t->prefix);
	if (pl && t->prefix[pl - 1] == '/')
		t->prefix[pl - 1] = '\0';
	snprintf(t->hostport, sizeof t->hostport, "%s", hp);
	snprintf(t->url, sizeof t->url, "%s", url);
	char resolved[180];
	if (strncmp(hp, "localhost", 9) == 0 && (hp[9] == ':' || hp[9] == '\0'))
		snprintf(resolved, sizeof resolved, "127.0.0.1%s", hp[9] ? hp + 9 : ":80");
	else if (!strchr(hp, ':') || (hp[0] == '[' && !strstr(hp, "]:")))
		snprintf(resolved, sizeof resolved, "%s:80", hp);
	else
		snprintf(resolved, sizeof resolved, "%s", hp);
	return ig_sockaddr_parse(resolved, &t->addr, &t->addrlen);
}

static int add_target(struct ig_flags *fl, struct bench_opts *o, const char *name, const char *url)
{
	if (o->n_targets >= BENCH_MAX_TARGETS)
		return ig_flags_error(fl, "at most %d targets", BENCH_MAX_TARGETS);
	struct bench_target *t = &o->targets[o->n_targets];
	if (!*name || strlen(name) >= sizeof t->name)
		return ig_flags_error(fl, "bad target name in '%s'", url);
	snprintf(t->name, sizeof t->name, "%s", name);
	if (parse_url(url, t) < 0)
		return ig_flags_invalid(fl, url, "http://IP:PORT[/prefix]");
	o->n_targets++;
	return IG_OK;
}

static int on_url(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	return add_target(fl, f->dst, "target", v);
}

static int on_target(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	const char *eq = strchr(v, '=');
	char name[64];
	size_t n = eq ? (size_t)(eq - v) : 0;
	if (!eq)
		return ig_flags_invalid(fl, v, "NAME=URL");
	if (n == 0 || n >= sizeof name)
		return ig_flags_error(fl, "bad target name in '%s'", v);
	memcpy(name, v, n);
	name[n] = '\0';
	return add_target(fl, f->dst, name, eq + 1);
}

/* "L:DUR,L:DUR" or "L,L" (durations filled in later). */
static int parse_stages(struct ig_flags *fl, struct bench_opts *o, const char *v, bool allow_dur)
{
	char *copy = strdup(v), *save = NULL;
	if (!copy)
		return ig_flags_error(fl, "out of memory");
	int rc = IG_OK;
	o->n_stages = 0;
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		if (o->n_stages >= BENCH_MAX_STAGES) {
			rc = ig_flags_error(fl, "at most %d stages", BENCH_MAX_STAGES);
			break;
		}
		struct bench_stage *s = &o->stages[o->n_stages];
		memset(s, 0, sizeof *s);
		char *colon = strchr(it, ':');
		if (colon)
			*colon = '\0';
		if (parse_pos_double(it, &s->load) < 0 || (colon && !allow_dur) ||
		    (colon && (ig_bench_parse_duration(colon + 1, &s->duration_ms) < 0 ||
			       s->duration_ms <= 0))) {
			rc = ig_flags_error(fl, "bad stage '%s' in '%s'", it, v);
			break;
		}
		o->n_stages++;
	}
	free(copy);
	if (rc == IG_OK && o->n_stages == 0)
		rc = ig_flags_error(fl, "no stages in '%s'", v);
	return rc;
}

static int on_stages(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct args *a = fl->ud;
	if (a->pd.stages_given)
		return ig_flags_error(fl, "give --stages or --rates once");
	a->pd.stages_given = true;
	/* --rates takes levels only; --stages levels with durations. */
	return parse_stages(fl, a->o, v, strcmp(f->name, "stages") == 0);
}

static int set_load(struct ig_flags *fl, enum ig_bench_load kind, const char *v)
{
	struct args *a = fl->ud;
	if (a->pd.load_given)
		return ig_flags_error(fl,
				      "give only one of --rate, --poisson, --concurrency, --load");
	a->pd.load_given = true;
	a->o->load = kind;
	double *load = &a->pd.single_load;
	bool ok = parse_pos_double(v, load) == 0;
	if (kind == IG_LOAD_CONCURRENCY && !(ok && *load == floor(*load)))
		return ig_flags_invalid(fl, v, "a whole number above 0");
	return ok ? IG_OK : ig_flags_invalid(fl, v, "a number above 0");
}

static int on_rate(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	return set_load(fl, IG_LOAD_CONSTANT, v);
}

static int on_poisson(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	return set_load(fl, IG_LOAD_POISSON, v);
}

static int on_concurrency(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	return set_load(fl, IG_LOAD_CONCURRENCY, v);
}

static int on_load(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	static const char *const names[] = {"constant", "poisson", "concurrency"};
	static const enum ig_bench_load kinds[] = {IG_LOAD_CONSTANT, IG_LOAD_POISSON,
						   IG_LOAD_CONCURRENCY};
	struct args *a = fl->ud;
	if (a->pd.load_given)
		return ig_flags_error(fl,
				      "give only one of --rate, --poisson, --concurrency, --load");
	a->pd.load_given = true;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(v, names[i]) == 0) {
			a->o->load = kinds[i];
			return IG_OK;
		}
	return ig_flags_invalid(fl, v, "constant, poisson or concurrency");
}

static int on_len(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct ig_bench_len *l = f->dst;
	if (ig_bench_parse_len(v, l) < 0 || (l->kind == IG_LEN_FIXED && l->lo < 1) ||
	    (l->kind == IG_LEN_UNIFORM && l->lo < 1))
		return ig_flags_invalid(fl, v, "N, MEAN:STDDEV or LO-HI");
	return IG_OK;
}

static int on_choices(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct ig_bench_choices *c = f->dst;
	ig_bench_choices_free(c);
	if (ig_bench_parse_choices(v, c) < 0)
		return ig_flags_invalid(fl, v, "NAME:WEIGHT,...");
	return IG_OK;
}

/* Whether header line h is named name (lower case). */
static bool header_is(const char *h, const char *name)
{
	size_t n = strlen(name);
	return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

/* The name must be an RFC 9110 token: "Host : x" is a 400 at any
 * RFC 9112 server. The message's framing is bench's to write: a second
 * Content-Length or a Transfer-Encoding would make the request
 * unreadable (RFC 9112 section 6.3 has servers refuse it), so they are
 * refused here. */
static int on_header(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct bench_opts *o = f->dst;
	const char *c = strchr(v, ':');
	if (!c || c == v || strpbrk(v, "\r\n") ||
	    strcspn(v, " \t\"(),/;<=>?@[\\]{}") < (size_t)(c - v))
		return ig_flags_invalid(fl, v, "NAME: VALUE");
	if (header_is(v, "content-length") || header_is(v, "transfer-encoding"))
		return ig_flags_error(fl, "--header '%s': bench frames the request itself", v);
	if (o->n_headers >= BENCH_MAX_HEADERS)
		return ig_flags_error(fl, "at most %d --header", BENCH_MAX_HEADERS);
	o->headers[o->n_headers++] = v;
	return IG_OK;
}

static int on_slo(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	if (ig_bench_parse_slo(v, f->dst) < 0)
		return ig_flags_invalid(fl, v, "ttft=DUR,tpot=DUR,e2e=DUR");
	return IG_OK;
}

static void set_defaults(struct bench_opts *o)
{
	memset(o, 0, sizeof *o);
	o->stream = true;
	o->ignore_eos = true;
	o->objective_header = "x-gateway-inference-objective";
	o->session_header = "x-session-id";
	o->timeout_ms = 60000;
	o->max_inflight = 1000;
	o->seed = ig_rng_next(ig_rng_thread());
	/* Not from --seed: two runs with one seed must not share ids in one
	 * access log. */
	snprintf(o->run_id, sizeof o->run_id, "%08x", (unsigned)ig_rng_next(ig_rng_thread()));
	o->send_id = true;
	o->progress = isatty(STDERR_FILENO);
	o->wl.input = (struct ig_bench_len){IG_LEN_FIXED, 100, 0, 100, 100};
	o->wl.output = (struct ig_bench_len){IG_LEN_FIXED, 50, 0, 50, 50};
	o->wl.groups = 4;
	o->wl.per_group = 8;
	o->wl.system_len = 200;
	o->wl.question_len = 20;
	o->wl.sessions = 32;
	o->wl.turns = 10;
	o->wl.turn = (struct ig_bench_len){IG_LEN_FIXED, 5000, 0, 5000, 5000};
}

/* The agentic workload's own defaults for the flags it shares with
 * shared-prefix: one long system prompt (an agent's instructions and
 * tools) that every session starts with. */
#define AGENTIC_SYSTEM_LEN 50000

static void agentic_defaults(struct ig_flags *fl, struct bench_opts *o)
{
	if (!ig_flags_given(fl, &o->wl.system_len))
		o->wl.system_len = AGENTIC_SYSTEM_LEN;
	if (!ig_flags_given(fl, &o->wl.groups))
		o->wl.groups = 1;
}

/* Stage list, durations and request bounds once every flag is known. */
static int finish_stages(struct ig_flags *fl, struct bench_opts *o, struct pending *pd)
{
	if (pd->stages_given && pd->single_load > 0)
		return ig_flags_error(
		    fl, "--stages/--rates set the load levels; use --load KIND with them");
	if (!pd->stages_given) {
		o->n_stages = 1;
		o->stages[0].load = pd->single_load > 0 ? pd->single_load : 1;
	}
	for (size_t i = 0; i < o->n_stages; i++) {
		struct bench_stage *s = &o->stages[i];
		if (o->load == IG_LOAD_CONCURRENCY && s->load != floor(s->load))
			return ig_flags_error(fl, "concurrency must be a whole number");
		if (s->duration_ms == 0)
			s->duration_ms = pd->stage_dur_ms ? pd->stage_dur_ms : pd->duration_ms;
		s->requests = pd->requests;
		if (s->duration_ms == 0 && s->requests == 0)
			s->duration_ms = 10000;
	}
	return IG_OK;
}

static int check_opts(struct ig_flags *fl, struct bench_opts *o)
{
	if (o->n_targets == 0)
		return ig_flags_error(fl, "no target: give --url URL or --target NAME=URL");
	if (o->models.n > UINT16_MAX || o->objectives.n > UINT16_MAX)
		return ig_flags_error(fl, "at most %u --models or --objectives", UINT16_MAX);
	const char *sh = o->session_header;
	if (sh && (!*sh || strpbrk(sh, ": \t\r\n")))
		return ig_flags_error(fl, "--session-header: '%s' is not a header name", sh);
	for (size_t i = 0; i < o->n_headers; i++) {
		const char *h = o->headers[i];
		o->send_id = o->send_id && !header_is(h, "x-request-id");
		o->own_host = o->own_host || header_is(h, "host");
		o->own_content_type = o->own_content_type || header_is(h, "content-type");
		o->own_accept = o->own_accept || header_is(h, "accept");
	}
	if (o->access_log && !o->send_id)
		return ig_flags_error(fl, "--access-log joins on bench's own x-request-id; "
					  "do not set one with --header");
	if (ig_bench_workload_init(&o->wl, &(struct ig_rng){0}) < 0)
		return ig_flags_error(fl, "bad workload parameters");
	ig_bench_workload_free(&o->wl);
	/* More requests in flight than sessions: a session's next turn is
	 * sent before its previous answer came, so that turn's prompt does
	 * not extend what the server has just cached. Allowed, but said. */
	for (size_t i = 0; i < o->n_stages; i++)
		if (o->wl.kind == IG_WL_AGENTIC && o->load == IG_LOAD_CONCURRENCY &&
		    o->stages[i].load > (double)o->wl.sessions) {
			fprintf(
			    stderr,
			    "infergate bench: warning: --concurrency %g is above --sessions %ld: "
			    "turns of one session will be in flight together\n",
			    o->stages[i].load, o->wl.sessions);
			break;
		}
	return IG_OK;
}

int bench_parse_args(int argc, char **argv, struct bench_opts *o)
{
	set_defaults(o);
	struct args a = {.o = o};
	struct pending *pd = &a.pd;
	struct ig_bench_workload *w = &o->wl;
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("targets:"),
	    IG_FLAG_FN("url", 0, on_url, o, "URL",
		       "one target, http://IP:PORT[/prefix] (localhost ok)"),
	    IG_FLAG_FN("target", 0, on_target, o, "NAME=URL",
		       "a named target; repeat to run the same load against\n"
		       "each in turn and print a comparison (ratios to the first)"),
	    IG_FLAG_SECTION("load (one of; default --rate 1):"),
	    IG_FLAG_FN("rate", 0, on_rate, NULL, "R", "constant rate, R requests/s"),
	    IG_FLAG_FN("poisson", 0, on_poisson, NULL, "R", "Poisson arrivals, mean R requests/s"),
	    IG_FLAG_FN("concurrency", 0, on_concurrency, NULL, "C",
		       "C requests in flight at all times (closed loop)"),
	    IG_FLAG_FN("load", 0, on_load, NULL, "constant|poisson|concurrency",
		       "the kind of load for --stages / --rates"),
	    IG_FLAG_FN("stages", 0, on_stages, NULL, "L:DUR,L:DUR,...",
		       "stages run one after another; L is the rate (or the\n"
		       "concurrency); DUR may be left out (then --stage-duration)"),
	    IG_FLAG_FN("rates", 0, on_stages, NULL, "L,L,...",
		       "the same with one --stage-duration for all"),
	    IG_FLAG_MS("stage-duration", 0, &pd->stage_dur_ms, IG_FLAG_BARE_S, "DUR",
		       "default duration of a stage"),
	    IG_FLAG_MS("duration", 0, &pd->duration_ms, IG_FLAG_BARE_S, "DUR",
		       "how long each stage sends (default 10s unless --requests)"),
	    IG_FLAG_UINT("requests", 0, &pd->requests, 1, UINT64_MAX, "N",
			 "send at most N requests per stage"),
	    IG_FLAG_UINT("warmup", 0, &o->warmup, 0, UINT64_MAX, "N",
			 "N requests, one at a time, before each target; not counted"),
	    IG_FLAG_MS("timeout", 0, &o->timeout_ms, IG_FLAG_BARE_S, "DUR",
		       "per-request timeout (default 60s)"),
	    IG_FLAG_UINT("max-inflight", 0, &o->max_inflight, 1, UINT64_MAX, "N",
			 "open-loop ceiling on requests in flight (default 1000);\n"
			 "arrivals beyond it wait for a free slot (client queue\n"
			 "time); those still waiting at the stage's end are not sent"),
	    IG_FLAG_UINT("seed", 0, &o->seed, 0, UINT64_MAX, "N",
			 "seed of every random choice (default: from the clock)"),
	    IG_FLAG_SECTION("workload:"),
	    IG_FLAG_ENUM("api", 0, &pd->api, api_names, "completions|chat",
			 "/v1/completions (default) or /v1/chat/completions"),
	    IG_FLAG_BOOL("stream", 0, &o->stream,
			 "streamed responses (the default; asks include_usage)"),
	    IG_FLAG_BOOL_OFF("no-stream", 0, &o->stream, "whole responses"),
	    IG_FLAG_ENUM("workload", 0, &pd->workload, workload_names,
			 "random|shared-prefix|agentic", "the prompts sent (default random)"),
	    IG_FLAG_FN("input-len", 0, on_len, &w->input, "LEN",
		       "prompt words for random (default 100)"),
	    IG_FLAG_FN("output-len", 0, on_len, &w->output, "LEN",
		       "max_tokens (default 50); LEN is N, MEAN:STDDEV (normal,\n"
		       "at least 1) or LO-HI (uniform); 1 word = 1 token"),
	    IG_FLAG_UINT("groups", 0, &w->groups, 1, UINT64_MAX, "G",
			 "shared-prefix: groups (default 4); agentic: system\n"
			 "prompts, session n takes n mod G (default 1)"),
	    IG_FLAG_UINT("prompts-per-group", 0, &w->per_group, 1, UINT64_MAX, "P",
			 "shared-prefix: questions per group (default 8)"),
	    IG_FLAG_UINT("system-prompt-len", 0, &w->system_len, 0, UINT64_MAX, "S",
			 "words of each group's system prompt (default 200;\n"
			 "agentic 50000)"),
	    IG_FLAG_UINT("question-len", 0, &w->question_len, 1, UINT64_MAX, "Q",
			 "shared-prefix: words of each question (default 20)"),
	    IG_FLAG_UINT("sessions", 0, &w->sessions, 1, 1000000, "N",
			 "agentic: conversations live at once, taken in turn\n"
			 "(default 32)"),
	    IG_FLAG_UINT("turns", 0, &w->turns, 1, 1000000, "T",
			 "agentic: turns of a conversation; then a new one\n"
			 "takes its place (default 10)"),
	    IG_FLAG_FN("turn-len", 0, on_len, &w->turn, "LEN",
		       "agentic: words each turn adds after the previous\n"
		       "answer (default 5000)"),
	    IG_FLAG_STR("session-header", 0, &o->session_header, "NAME",
			"agentic: the header carrying the session id\n"
			"(default x-session-id)"),
	    IG_FLAG_BOOL("no-session-header", 0, &pd->no_session_header,
			 "agentic: send no session id"),
	    IG_FLAG_STR("model", 0, &o->model, "NAME", "the `model` field (default: none sent)"),
	    IG_FLAG_FN("models", 0, on_choices, &o->models, "NAME:W,NAME:W",
		       "weighted model / LoRA traffic split"),
	    IG_FLAG_FN("objectives", 0, on_choices, &o->objectives, "NAME:W,...",
		       "weighted objectives sent in --objective-header"),
	    IG_FLAG_STR("objective-header", 0, &o->objective_header, "NAME",
			"default x-gateway-inference-objective"),
	    IG_FLAG_FN("header", 0, on_header, o, "'NAME: VALUE'",
		       "an extra request header (repeatable); Host,\n"
		       "Content-Type, Accept and x-request-id replace bench's own;\n"
		       "Content-Length and Transfer-Encoding are refused"),
	    IG_FLAG_BOOL_OFF("no-ignore-eos", 0, &o->ignore_eos,
			     "do not send ignore_eos:true (answers may end early)"),
	    IG_FLAG_SECTION("report:"),
	    IG_FLAG_FN("slo", 0, on_slo, &o->slo, "ttft=DUR,tpot=DUR,e2e=DUR",
		       "goodput: requests that succeeded within all bounds"),
	    IG_FLAG_STR("json", 0, &o->json_file, "FILE",
			"per-stage summaries (one object per target and stage)"),
	    IG_FLAG_STR("csv", 0, &o->csv_file, "FILE",
			"the same as CSV (one row per target and stage)"),
	    IG_FLAG_STR("per-request", 0, &o->per_request_file, "FILE", "one CSV row per request"),
	    IG_FLAG_STR("svg", 0, &o->svg_file, "FILE",
			"TTFT p50/p90 and output tokens/s against offered load"),
	    IG_FLAG_STR("access-log", 0, &o->access_log, "FILE",
			"the gateway's JSON access log: after the run, join it\n"
			"on x-request-id and report per-stage times"),
	    IG_FLAG_BOOL_OFF("no-progress", 0, &o->progress,
			     "no progress bar (it is shown only when stderr is a tty)"),
	    IG_FLAG_BOOL("quiet", 0, &o->quiet, "no table on stdout"),
	    IG_FLAG_DOUBLE("max-error-rate", 0, &o->max_error_rate, 0, 1, "F",
			   "exit 1 when more than this fraction failed (default 0)"),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {
	    .prog = "infergate bench",
	    .usage = usage_text,
	    .footer = footer_text,
	    .table = table,
	    .ud = &a,
	};
	int rc = ig_flags_parse(&fl, argc, argv);
	o->chat = pd->api == 1;
	w->chat = o->chat;
	w->kind = workload_kinds[pd->workload];
	if (w->kind == IG_WL_AGENTIC)
		agentic_defaults(&fl, o);
	if (pd->no_session_header || w->kind != IG_WL_AGENTIC)
		o->session_header = NULL;
	if (rc == IG_OK)
		rc = finish_stages(&fl, o, pd);
	if (rc == IG_OK)
		rc = check_opts(&fl, o);
	if (rc == IG_DONE)
		return 1;
	return rc == IG_OK ? 0 : ig_flags_report(&fl, rc);
}

void bench_opts_free(struct bench_opts *o)
{
	ig_bench_choices_free(&o->models);
	ig_bench_choices_free(&o->objectives);
	ig_bench_workload_free(&o->wl);
}
