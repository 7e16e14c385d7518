/* The command line of `infergate bench`. Every flag takes `--flag value` or
 * `--flag=value`; an unknown flag is an error (exit 2) that names it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "http/client.h"

static const char usage_text[] =
    "usage: infergate bench [OPTIONS] --url http://HOST:PORT\n"
    "\n"
    "An LLM load generator: sends OpenAI-style requests and reports TTFT, TPOT,\n"
    "ITL and end-to-end latency percentiles, throughput, goodput and errors.\n"
    "\n"
    "targets:\n"
    "  --url URL                    one target, http://IP:PORT[/prefix] (localhost ok)\n"
    "  --target NAME=URL            a named target; repeat to run the same load against\n"
    "                               each in turn and print a comparison (ratios to the first)\n"
    "\n"
    "load (one of; default --rate 1):\n"
    "  --rate R                     constant rate, R requests/s\n"
    "  --poisson R                  Poisson arrivals, mean R requests/s\n"
    "  --concurrency C              C requests in flight at all times (closed loop)\n"
    "  --load constant|poisson|concurrency\n"
    "                               the kind of load for --stages / --rates\n"
    "  --stages L:DUR,L:DUR,...     stages run one after another; L is the rate (or the\n"
    "                               concurrency); DUR may be left out (then --stage-duration)\n"
    "  --rates L,L,...              the same with one --stage-duration for all\n"
    "  --stage-duration DUR         default duration of a stage\n"
    "  --duration DUR               how long each stage sends (default 10s unless --requests)\n"
    "  --requests N                 send at most N requests per stage\n"
    "  --warmup N                   N requests, one at a time, before each target; not counted\n"
    "  --timeout DUR                per-request timeout (default 60s)\n"
    "  --max-inflight N             open-loop ceiling on requests in flight (default 1000);\n"
    "                               arrivals beyond it wait for a free slot\n"
    "  --seed N                     seed of every random choice (default: from the clock)\n"
    "\n"
    "workload:\n"
    "  --api completions|chat       /v1/completions (default) or /v1/chat/completions\n"
    "  --stream | --no-stream       streamed responses (default on; asks include_usage)\n"
    "  --workload random|shared-prefix\n"
    "  --input-len LEN              prompt words for random (default 100)\n"
    "  --output-len LEN             max_tokens (default 50); LEN is N, MEAN:STDDEV (normal,\n"
    "                               at least 1) or LO-HI (uniform); 1 word = 1 token\n"
    "  --groups G                   shared-prefix: groups (default 4)\n"
    "  --prompts-per-group P        shared-prefix: questions per group (default 8)\n"
    "  --system-prompt-len S        shared-prefix: words of each group's system prompt (default "
    "200)\n"
    "  --question-len Q             shared-prefix: words of each question (default 20)\n"
    "  --model NAME                 the `model` field (default: none sent)\n"
    "  --models NAME:W,NAME:W       weighted model / LoRA traffic split\n"
    "  --objectives NAME:W,...      weighted objectives sent in --objective-header\n"
    "  --objective-header NAME      default x-gateway-inference-objective\n"
    "  --header 'NAME: VALUE'       an extra request header (repeatable)\n"
    "  --no-ignore-eos              do not send ignore_eos:true (answers may end early)\n"
    "\n"
    "report:\n"
    "  --slo ttft=DUR,tpot=DUR,e2e=DUR  goodput: requests that succeeded within all bounds\n"
    "  --json FILE  --csv FILE      per-stage summaries (one row per target and stage)\n"
    "  --per-request FILE           one CSV row per request\n"
    "  --svg FILE                   TTFT p50/p90 and output tokens/s against offered load\n"
    "  --no-progress                no progress bar (it is shown only when stderr is a tty)\n"
    "  --quiet                      no table on stdout\n"
    "  --max-error-rate F           exit 1 when more than this fraction failed (default 0)\n"
    "\n"
    "DUR is 1.5s, 250ms, 2m or a number of seconds. Percentiles use linear\n"
    "interpolation between closest ranks (numpy's default). TTFT is the first\n"
    "non-empty content chunk (the whole answer without --stream); TPOT is\n"
    "(e2e - ttft) / (output tokens - 1); ITL is every gap between content chunks.\n"
    "Output tokens come from `usage`, else the number of content chunks.\n"
    "Exit status: 0 ok, 1 too many failed requests (connection errors count) or\n"
    "the run could not start, 2 usage error.\n";

static int fail_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "infergate bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(see infergate bench --help)\n");
	va_end(ap);
	return 2;
}

static int parse_long(const char *s, long lo, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < lo)
		return -1;
	*out = v;
	return 0;
}

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

static int add_target(struct bench_opts *o, const char *name, const char *url)
{
	if (o->n_targets >= BENCH_MAX_TARGETS)
		return fail_usage("at most %d targets", BENCH_MAX_TARGETS);
	struct bench_target *t = &o->targets[o->n_targets];
	if (!*name || strlen(name) >= sizeof t->name)
		return fail_usage("bad target name in '%s'", url);
	snprintf(t->name, sizeof t->name, "%s", name);
	if (parse_url(url, t) < 0)
		return fail_usage("bad URL '%s' (want http://IP:PORT[/prefix])", url);
	o->n_targets++;
	return 0;
}

static int add_target_arg(struct bench_opts *o, const char *v)
{
	const char *eq = strchr(v, '=');
	if (!eq)
		return fail_usage("--target wants NAME=URL, got '%s'", v);
	char name[64];
	size_t n = (size_t)(eq - v);
	if (n == 0 || n >= sizeof name)
		return fail_usage("bad target name in '%s'", v);
	memcpy(name, v, n);
	name[n] = '\0';
	return add_target(o, name, eq + 1);
}

/* "L:DUR,L:DUR" or "L,L" (durations filled in later). */
static int parse_stages(struct bench_opts *o, const char *v, bool allow_dur)
{
	char *copy = strdup(v), *save = NULL;
	if (!copy)
		return 2;
	int rc = 0;
	o->n_stages = 0;
	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		if (o->n_stages >= BENCH_MAX_STAGES) {
			rc = fail_usage("at most %d stages", BENCH_MAX_STAGES);
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
			rc = fail_usage("bad stage '%s' in '%s'", it, v);
			break;
		}
		o->n_stages++;
	}
	free(copy);
	if (rc == 0 && o->n_stages == 0)
		rc = fail_usage("no stages in '%s'", v);
	return rc;
}

enum flag {
	F_URL,
	F_TARGET,
	F_RATE,
	F_POISSON,
	F_CONC,
	F_LOAD,
	F_STAGES,
	F_RATES,
	F_STAGE_DUR,
	F_DURATION,
	F_REQUESTS,
	F_WARMUP,
	F_TIMEOUT,
	F_MAX_INFLIGHT,
	F_SEED,
	F_API,
	F_STREAM,
	F_NO_STREAM,
	F_WORKLOAD,
	F_INPUT_LEN,
	F_OUTPUT_LEN,
	F_GROUPS,
	F_PPG,
	F_SYS_LEN,
	F_Q_LEN,
	F_MODEL,
	F_MODELS,
	F_OBJECTIVES,
	F_OBJ_HEADER,
	F_HEADER,
	F_NO_EOS,
	F_SLO,
	F_JSON,
	F_CSV,
	F_PER_REQUEST,
	F_SVG,
	F_NO_PROGRESS,
	F_QUIET,
	F_MAX_ERR,
	F_HELP,
};

struct flag_def {
	const char *name;
	enum flag id;
	bool has_value;
};

static const struct flag_def flags[] = {
    {"url", F_URL, true},
    {"target", F_TARGET, true},
    {"rate", F_RATE, true},
    {"poisson", F_POISSON, true},
    {"concurrency", F_CONC, true},
    {"load", F_LOAD, true},
    {"stages", F_STAGES, true},
    {"rates", F_RATES, true},
    {"stage-duration", F_STAGE_DUR, true},
    {"duration", F_DURATION, true},
    {"requests", F_REQUESTS, true},
    {"warmup", F_WARMUP, true},
    {"timeout", F_TIMEOUT, true},
    {"max-inflight", F_MAX_INFLIGHT, true},
    {"seed", F_SEED, true},
    {"api", F_API, true},
    {"stream", F_STREAM, false},
    {"no-stream", F_NO_STREAM, false},
    {"workload", F_WORKLOAD, true},
    {"input-len", F_INPUT_LEN, true},
    {"output-len", F_OUTPUT_LEN, true},
    {"groups", F_GROUPS, true},
    {"prompts-per-group", F_PPG, true},
    {"system-prompt-len", F_SYS_LEN, true},
    {"question-len", F_Q_LEN, true},
    {"model", F_MODEL, true},
    {"models", F_MODELS, true},
    {"objectives", F_OBJECTIVES, true},
    {"objective-header", F_OBJ_HEADER, true},
    {"header", F_HEADER, true},
    {"no-ignore-eos", F_NO_EOS, false},
    {"slo", F_SLO, true},
    {"json", F_JSON, true},
    {"csv", F_CSV, true},
    {"per-request", F_PER_REQUEST, true},
    {"svg", F_SVG, true},
    {"no-progress", F_NO_PROGRESS, false},
    {"quiet", F_QUIET, false},
    {"max-error-rate", F_MAX_ERR, true},
    {"help", F_HELP, false},
};

/* What the command line said before defaults are applied. */
struct pending {
	double single_load, stage_dur_ms, duration_ms;
	long requests;
	bool load_given, stages_given;
};

static int set_load(struct bench_opts *o, struct pending *pd, enum ig_bench_load kind,
		    const char *flag, const char *v)
{
	if (pd->load_given)
		return fail_usage("give only one of --rate, --poisson, --concurrency, --load");
	pd->load_given = true;
	o->load = kind;
	if (parse_pos_double(v, &pd->single_load) < 0 ||
	    (kind == IG_LOAD_CONCURRENCY && pd->single_load != floor(pd->single_load)))
		return fail_usage("bad value '%s' for --%s", v, flag);
	return 0;
}

static int set_load_kind(struct bench_opts *o, struct pending *pd, const char *v)
{
	if (pd->load_given)
		return fail_usage("give only one of --rate, --poisson, --concurrency, --load");
	pd->load_given = true;
	if (strcmp(v, "constant") == 0)
		o->load = IG_LOAD_CONSTANT;
	else if (strcmp(v, "poisson") == 0)
		o->load = IG_LOAD_POISSON;
	else if (strcmp(v, "concurrency") == 0)
		o->load = IG_LOAD_CONCURRENCY;
	else
		return fail_usage("unknown --load '%s'", v);
	return 0;
}

static int want_len(const char *flag, const char *v, struct ig_bench_len *l)
{
	if (ig_bench_parse_len(v, l) < 0 || (l->kind == IG_LEN_FIXED && l->lo < 1) ||
	    (l->kind == IG_LEN_UNIFORM && l->lo < 1))
		return fail_usage("bad length '%s' for --%s (N, MEAN:STDDEV or LO-HI)", v, flag);
	return 0;
}

static int want_long(const char *flag, const char *v, long lo, long *out)
{
	if (parse_long(v, lo, out) < 0)
		return fail_usage("bad value '%s' for --%s", v, flag);
	return 0;
}

static int want_dur(const char *flag, const char *v, double *out)
{
	if (ig_bench_parse_duration(v, out) < 0 || *out <= 0)
		return fail_usage("bad duration '%s' for --%s", v, flag);
	return 0;
}

static int workload_flag(struct bench_opts *o, enum flag id, const char *name, const char *v)
{
	struct ig_bench_workload *w = &o->wl;
	switch (id) {
	case F_WORKLOAD:
		if (strcmp(v, "random") == 0)
			w->kind = IG_WL_RANDOM;
		else if (strcmp(v, "shared-prefix") == 0)
			w->kind = IG_WL_SHARED_PREFIX;
		else
			return fail_usage("unknown --workload '%s'", v);
		return 0;
	case F_INPUT_LEN:
		return want_len(name, v, &w->input);
	case F_OUTPUT_LEN:
		return want_len(name, v, &w->output);
	case F_GROUPS:
		return want_long(name, v, 1, &w->groups);
	case F_PPG:
		return want_long(name, v, 1, &w->per_group);
	case F_SYS_LEN:
		return want_long(name, v, 0, &w->system_len);
	case F_Q_LEN:
		return want_long(name, v, 1, &w->question_len);
	default:
		return -1;
	}
}

static int request_flag(struct bench_opts *o, enum flag id, const char *name, const char *v)
{
	switch (id) {
	case F_API:
		if (strcmp(v, "completions") != 0 && strcmp(v, "chat") != 0)
			return fail_usage("unknown --api '%s' (completions or chat)", v);
		o->chat = strcmp(v, "chat") == 0;
		return 0;
	case F_STREAM:
	case F_NO_STREAM:
		o->stream = id == F_STREAM;
		return 0;
	case F_MODEL:
		free(o->model);
		o->model = strdup(v);
		return o->model ? 0 : 2;
	case F_MODELS:
		ig_bench_choices_free(&o->models);
		if (ig_bench_parse_choices(v, &o->models) < 0)
			return fail_usage("bad --models '%s' (NAME:WEIGHT,...)", v);
		return 0;
	case F_OBJECTIVES:
		ig_bench_choices_free(&o->objectives);
		if (ig_bench_parse_choices(v, &o->objectives) < 0)
			return fail_usage("bad --objectives '%s' (NAME:WEIGHT,...)", v);
		return 0;
	case F_OBJ_HEADER:
		o->objective_header = v;
		return 0;
	case F_HEADER: {
		const char *c = strchr(v, ':');
		if (!c || c == v || strpbrk(v, "\r\n"))
			return fail_usage("bad --header '%s' (NAME: VALUE)", v);
		if (o->n_headers >= BENCH_MAX_HEADERS)
			return fail_usage("at most %d --header", BENCH_MAX_HEADERS);
		o->headers[o->n_headers++] = v;
		return 0;
	}
	case F_NO_EOS:
		o->ignore_eos = false;
		return 0;
	default:
		return workload_flag(o, id, name, v);
	}
}

static int report_flag(struct bench_opts *o, enum flag id, const char *name, const char *v)
{
	switch (id) {
	case F_SLO:
		if (ig_bench_parse_slo(v, &o->slo) < 0)
			return fail_usage("bad --slo '%s' (ttft=DUR,tpot=DUR,e2e=DUR)", v);
		return 0;
	case F_JSON:
		o->json_file = v;
		return 0;
	case F_CSV:
		o->csv_file = v;
		return 0;
	case F_PER_REQUEST:
		o->per_request_file = v;
		return 0;
	case F_SVG:
		o->svg_file = v;
		return 0;
	case F_NO_PROGRESS:
		o->progress = false;
		return 0;
	case F_QUIET:
		o->quiet = true;
		return 0;
	case F_MAX_ERR: {
		char *end;
		o->max_error_rate = strtod(v, &end);
		if (end == v || *end || !(o->max_error_rate >= 0 && o->max_error_rate <= 1))
			return fail_usage("bad --max-error-rate '%s' (0..1)", v);
		return 0;
	}
	default:
		return request_flag(o, id, name, v);
	}
}

static int load_flag(struct bench_opts *o, struct pending *pd, enum flag id, const char *name,
		     const char *v)
{
	long n;
	switch (id) {
	case F_URL:
		return add_target(o, "target", v);
	case F_TARGET:
		return add_target_arg(o, v);
	case F_RATE:
		return set_load(o, pd, IG_LOAD_CONSTANT, name, v);
	case F_POISSON:
		return set_load(o, pd, IG_LOAD_POISSON, name, v);
	case F_CONC:
		return set_load(o, pd, IG_LOAD_CONCURRENCY, name, v);
	case F_LOAD:
		return set_load_kind(o, pd, v);
	case F_STAGES:
	case F_RATES:
		if (pd->stages_given)
			return fail_usage("give --stages or --rates once");
		pd->stages_given = true;
		return parse_stages(o, v, id == F_STAGES);
	case F_STAGE_DUR:
		return want_dur(name, v, &pd->stage_dur_ms);
	case F_DURATION:
		return want_dur(name, v, &pd->duration_ms);
	case F_REQUESTS:
		return want_long(name, v, 1, &pd->requests);
	case F_WARMUP:
		return want_long(name, v, 0, &o->warmup);
	case F_TIMEOUT:
		return want_dur(name, v, &o->timeout_ms);
	case F_MAX_INFLIGHT:
		return want_long(name, v, 1, &o->max_inflight);
	case F_SEED:
		if (want_long(name, v, 0, &n))
			return 2;
		o->seed = (uint64_t)n;
		return 0;
	default:
		return report_flag(o, id, name, v);
	}
}

static void set_defaults(struct bench_opts *o)
{
	memset(o, 0, sizeof *o);
	o->stream = true;
	o->ignore_eos = true;
	o->objective_header = "x-gateway-inference-objective";
	o->timeout_ms = 60000;
	o->max_inflight = 1000;
	o->seed = ig_rng_next(ig_rng_thread());
	o->progress = isatty(STDERR_FILENO);
	o->wl.input = (struct ig_bench_len){IG_LEN_FIXED, 100, 0, 100, 100};
	o->wl.output = (struct ig_bench_len){IG_LEN_FIXED, 50, 0, 50, 50};
	o->wl.groups = 4;
	o->wl.per_group = 8;
	o->wl.system_len = 200;
	o->wl.question_len = 20;
}

/* Stage list, durations and request bounds once every flag is known. */
static int finish_stages(struct bench_opts *o, struct pending *pd)
{
	if (pd->stages_given && pd->single_load > 0)
		return fail_usage(
		    "--stages/--rates set the load levels; use --load KIND with them");
	if (!pd->stages_given) {
		o->n_stages = 1;
		o->stages[0].load = pd->single_load > 0 ? pd->single_load : 1;
	}
	for (size_t i = 0; i < o->n_stages; i++) {
		struct bench_stage *s = &o->stages[i];
		if (o->load == IG_LOAD_CONCURRENCY && s->load != floor(s->load))
			return fail_usage("concurrency must be a whole number");
		if (s->duration_ms == 0)
			s->duration_ms = pd->stage_dur_ms ? pd->stage_dur_ms : pd->duration_ms;
		s->requests = pd->requests;
		if (s->duration_ms == 0 && s->requests == 0)
			s->duration_ms = 10000;
	}
	return 0;
}

static int check_opts(struct bench_opts *o)
{
	if (o->n_targets == 0)
		return fail_usage("no target: give --url URL or --target NAME=URL");
	if (o->models.n > UINT16_MAX || o->objectives.n > UINT16_MAX)
		return 2;
	if (ig_bench_workload_init(&o->wl, &(struct ig_rng){0}) < 0)
		return fail_usage("bad shared-prefix parameters");
	ig_bench_workload_free(&o->wl);
	return 0;
}

static const struct flag_def *find_flag(const char *arg, const char **inline_val)
{
	if (strncmp(arg, "--", 2) != 0)
		return NULL;
	arg += 2;
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	*inline_val = eq ? eq + 1 : NULL;
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (strlen(flags[i].name) == n && strncmp(flags[i].name, arg, n) == 0)
			return &flags[i];
	return NULL;
}

int bench_parse_args(int argc, char **argv, struct bench_opts *o)
{
	struct pending pd = {0};
	set_defaults(o);
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		const struct flag_def *f = find_flag(argv[i], &v);
		if (!f)
			return fail_usage("unknown option '%s'", argv[i]);
		if (f->id == F_HELP) {
			fputs(usage_text, stdout);
			return 1;
		}
		if (f->has_value && !v) {
			if (i + 1 >= argc)
				return fail_usage("--%s needs a value", f->name);
			v = argv[++i];
		} else if (!f->has_value && v) {
			return fail_usage("--%s takes no value", f->name);
		}
		int rc = load_flag(o, &pd, f->id, f->name, v);
		if (rc)
			return rc == -1 ? 2 : rc;
	}
	int rc = finish_stages(o, &pd);
	return rc ? rc : check_opts(o);
}

void bench_opts_free(struct bench_opts *o)
{
	free(o->model);
	o->model = NULL;
	ig_bench_choices_free(&o->models);
	ig_bench_choices_free(&o->objectives);
	ig_bench_workload_free(&o->wl);
}
