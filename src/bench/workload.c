/* What the benchmark sends and when: prompt and answer lengths, the
 * shared-prefix groups, weighted choices (LoRA split, objectives) and the
 * gaps between arrivals. Prompts are plain lowercase words so that the
 * simulator's tokenizer (one word, one token) counts them exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

static const char *const vocab[] = {
    "the",    "city",  "light", "over",	  "bay",   "fog",     "bridge", "and",	"a",	  "review",
    "story",  "of",    "quiet", "street", "hill",  "morning", "is",	"with", "every",  "new",
    "critic", "write", "that",	"it",	  "feel",  "like",    "home",	"for",	"people", "who",
    "walk",   "past",  "old",	"cafe",	  "music", "in",      "park",	"sun",	"wind",	  "water",
    "long",   "night", "gold",	"red",	  "train", "line",    "move",	"slow", "green",  "door",
    "open",   "small", "room",	"window", "river", "stone",   "tree",	"bird", "song",	  "blue",
    "sky",    "road",  "field", "rain",
};

#define VOCAB_N (sizeof vocab / sizeof vocab[0])

int ig_bench_parse_len(const char *s, struct ig_bench_len *out)
{
	char *end;
	memset(out, 0, sizeof *out);
	double a = strtod(s, &end);
	if (end == s || !isfinite(a) || a < 0)
		return -1;
	if (*end == '\0') {
		if (a != floor(a))
			return -1;
		out->kind = IG_LEN_FIXED;
		out->mean = a;
		out->lo = out->hi = (long)a;
		return 0;
	}
	char sep = *end;
	const char *rest = end + 1;
	double b = strtod(rest, &end);
	if (end == rest || *end != '\0' || !isfinite(b) || b < 0)
		return -1;
	if (sep == ':') {
		out->kind = IG_LEN_NORMAL;
		out->mean = a;
		out->stddev = b;
		return 0;
	}
	if (sep == '-' && a == floor(a) && b == floor(b) && b >= a) {
		out->kind = IG_LEN_UNIFORM;
		out->lo = (long)a;
		out->hi = (long)b;
		out->mean = (a + b) / 2;
		return 0;
	}
	return -1;
}

/* A standard normal draw (Box-Muller; 1 - u keeps the log finite). */
static double std_normal(struct ig_rng *rng)
{
	double u = 1.0 - ig_rng_double(rng), v = ig_rng_double(rng);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

long ig_bench_len_sample(const struct ig_bench_len *l, struct ig_rng *rng)
{
	switch (l->kind) {
	case IG_LEN_FIXED:
		return l->lo;
	case IG_LEN_UNIFORM:
		return l->lo + (long)ig_rng_below(rng, (uint64_t)(l->hi - l->lo + 1));
	case IG_LEN_NORMAL: {
		/* Clamped to at least one token: an empty prompt or answer is not
		 * a request anyone benchmarks. */
		double x = round(l->mean + l->stddev * std_normal(rng));
		return x < 1 ? 1 : (long)x;
	}
	}
	return 1;
}

static int choice_item(char *item, struct ig_bench_choices *out)
{
	if (out->n >= IG_BENCH_MAX_CHOICES || !*item)
		return -1;
	double w = 1;
	char *colon = strrchr(item, ':');
	if (colon) {
		char *end;
		w = strtod(colon + 1, &end);
		if (end == colon + 1 || *end || !isfinite(w) || w < 0)
			return -1;
		*colon = '\0';
		if (!*item)
			return -1;
	}
	out->name[out->n] = strdup(item);
	if (!out->name[out->n])
		return -1;
	out->weight[out->n++] = w;
	out->total += w;
	return 0;
}

int ig_bench_parse_choices(const char *s, struct ig_bench_choices *out)
{
	memset(out, 0, sizeof *out);
	char *copy = strdup(s);
	if (!copy)
		return -1;
	int rc = 0;
	char *save = NULL;
	for (char *it = strtok_r(copy, ",", &save); it && rc == 0; it = strtok_r(NULL, ",", &save))
		rc = choice_item(it, out);
	free(copy);
	if (rc == 0 && (out->n == 0 || out->total <= 0))
		rc = -1;
	if (rc < 0)
		ig_bench_choices_free(out);
	return rc;
}

size_t ig_bench_pick(const struct ig_bench_choices *c, struct ig_rng *rng)
{
	double x = ig_rng_double(rng) * c->total;
	for (size_t i = 0; i < c->n; i++) {
		if (x < c->weight[i])
			return i;
		x -= c->weight[i];
	}
	/* Rounding can leave x just past the last weight; the last choice
	 * with any weight takes it. */
	for (size_t i = c->n; i-- > 0;)
		if (c->weight[i] > 0)
			return i;
	return 0;
}

void ig_bench_choices_free(struct ig_bench_choices *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->name[i]);
	memset(c, 0, sizeof *c);
}

/* n words separated by spaces, with a space before the first when `space`. */
static int put_words(struct ig_buf *b, long n, struct ig_rng *rng, bool space)
{
	for (long i = 0; i < n; i++) {
		if ((i > 0 || space) && ig_buf_append(b, " ", 1) < 0)
			return -1;
		if (ig_buf_append_cstr(b, vocab[ig_rng_below(rng, VOCAB_N)]) < 0)
			return -1;
	}
	return 0;
}

int ig_bench_words(struct ig_buf *b, long n, struct ig_rng *rng)
{
	return put_words(b, n, rng, b->len > 0);
}

/* Each group's system prompt opens with a word of its own ("sys7"), so two
 * groups never share a prefix by chance. */
static int build_systems(struct ig_bench_workload *w, struct ig_rng *rng)
{
	w->systems = calloc((size_t)w->groups, sizeof *w->systems);
	if (!w->systems)
		return -1;
	for (long g = 0; g < w->groups; g++) {
		struct ig_buf *b = &w->systems[g];
		if (w->system_len > 0 && ig_buf_printf(b, "sys%ld", g) < 0)
			return -1;
		if (ig_bench_words(b, w->system_len - 1, rng) < 0)
			return -1;
	}
	return 0;
}

static int build_shared(struct ig_bench_workload *w, struct ig_rng *rng)
{
	size_t nq = (size_t)w->groups * (size_t)w->per_group;
	if (build_systems(w, rng) < 0)
		return -1;
	w->questions = calloc(nq, sizeof *w->questions);
	if (!w->questions)
		return -1;
	for (size_t q = 0; q < nq; q++)
		if (ig_bench_words(&w->questions[q], w->question_len, rng) < 0)
			return -1;
	return 0;
}

int ig_bench_workload_init(struct ig_bench_workload *w, struct ig_rng *rng)
{
	if (w->kind == IG_WL_AGENTIC) {
		if (w->groups < 1 || w->system_len < 0 || w->sessions < 1 || w->turns < 1)
			return -1;
		return build_systems(w, rng);
	}
	if (w->kind != IG_WL_SHARED_PREFIX)
		return 0;
	if (w->groups < 1 || w->per_group < 1 || w->question_len < 1 || w->system_len < 0)
		return -1;
	return build_shared(w, rng);
}

void ig_bench_workload_free(struct ig_bench_workload *w)
{
	if (w->systems)
		for (long g = 0; g < w->groups; g++)
			ig_buf_free(&w->systems[g]);
	if (w->questions)
		for (long q = 0; q < w->groups * w->per_group; q++)
			ig_buf_free(&w->questions[q]);
	free(w->systems);
	free(w->questions);
	w->systems = w->questions = NULL;
}

/* The shared-prefix workload picks one of the G x P prompts uniformly, so
 * every group gets 1/G of the traffic and the server sees each prefix
 * again and again. */
int ig_bench_workload_next(const struct ig_bench_workload *w, struct ig_rng *rng,
			   struct ig_bench_prompt *p)
{
	ig_buf_reset(&p->system);
	ig_buf_reset(&p->user);
	p->json = (struct ig_str){0};
	p->session = NULL;
	p->turn = 0;
	if (w->kind == IG_WL_AGENTIC)
		return -1; /* sessions have state: ig_bench_agent_next() */
	if (w->kind == IG_WL_RANDOM) {
		long n = ig_bench_len_sample(&w->input, rng);
		p->group = -1;
		p->in_tokens = n;
		p->out_tokens = ig_bench_len_sample(&w->output, rng);
		return ig_bench_words(&p->user, n, rng);
	}
	size_t q = (size_t)ig_rng_below(rng, (uint64_t)(w->groups * w->per_group));
	p->group = (long)(q / (size_t)w->per_group);
	p->in_tokens = w->system_len + w->question_len;
	p->out_tokens = ig_bench_len_sample(&w->output, rng);
	if (ig_buf_append_str(&p->system, ig_buf_str(&w->systems[p->group])) < 0)
		return -1;
	return ig_buf_append_str(&p->user, ig_buf_str(&w->questions[q]));
}

/* ---- agentic sessions ---- */

/* One piece of a conversation: for completions its words after a space;
 * for chat a message {"role": ..., "content": ...}. The words are plain
 * lowercase, so they go into the JSON text unescaped. */
static int add_words(const struct ig_bench_workload *w, struct ig_bench_session *s,
		     const char *role, long n, struct ig_rng *rng)
{
	struct ig_buf *b = &s->json;
	if (n <= 0)
		return 0;
	s->tokens += n;
	if (!w->chat)
		return put_words(b, n, rng, b->len > 0);
	if (ig_buf_append_cstrs(b, b->len ? ",{\"role\":\"" : "{\"role\":\"", role,
				"\",\"content\":\"", NULL) < 0 ||
	    put_words(b, n, rng, false) < 0)
		return -1;
	return ig_buf_append_cstr(b, "\"}");
}

/* A turn: the previous turn's answer, then the new words. */
static int add_turn(const struct ig_bench_workload *w, struct ig_bench_session *s,
		    struct ig_rng *rng)
{
	if (s->turn > 0 && add_words(w, s, "assistant", s->last_out, rng) < 0)
		return -1;
	if (add_words(w, s, "user", ig_bench_len_sample(&w->turn, rng), rng) < 0)
		return -1;
	s->last_out = ig_bench_len_sample(&w->output, rng);
	s->turn++;
	return 0;
}

/* A new session in slot s, `skip` turns into its conversation. */
static int session_start(struct ig_bench_agent *a, struct ig_bench_session *s, struct ig_rng *rng,
			 long skip)
{
	const struct ig_bench_workload *w = a->w;
	ig_buf_reset(&s->json);
	s->group = (long)(a->started++ % (uint64_t)w->groups);
	s->turn = s->tokens = s->last_out = 0;
	snprintf(s->id, sizeof s->id, "%016llx", (unsigned long long)ig_rng_next(rng));
	const struct ig_buf *sys = &w->systems[s->group];
	if (sys->len) {
		if (w->chat &&
		    ig_buf_append_cstr(&s->json, "{\"role\":\"system\",\"content\":\"") < 0)
			return -1;
		if (ig_buf_append(&s->json, sys->ptr, sys->len) < 0)
			return -1;
		if (w->chat && ig_buf_append_cstr(&s->json, "\"}") < 0)
			return -1;
		s->tokens = w->system_len;
	}
	for (long i = 0; i < skip; i++)
		if (add_turn(w, s, rng) < 0)
			return -1;
	return 0;
}

int ig_bench_agent_init(struct ig_bench_agent *a, const struct ig_bench_workload *w,
			struct ig_rng *rng)
{
	memset(a, 0, sizeof *a);
	a->w = w;
	if (w->kind != IG_WL_AGENTIC || w->sessions < 1 || w->turns < 1 || !w->systems)
		return -1;
	a->slots = calloc((size_t)w->sessions, sizeof *a->slots);
	if (!a->slots)
		return -1;
	for (long i = 0; i < w->sessions; i++) {
		long skip = (long)((uint64_t)i * (uint64_t)w->turns / (uint64_t)w->sessions);
		if (session_start(a, &a->slots[i], rng, skip) < 0) {
			ig_bench_agent_free(a);
			return -1;
		}
	}
	return 0;
}

void ig_bench_agent_free(struct ig_bench_agent *a)
{
	if (a->slots)
		for (long i = 0; i < a->w->sessions; i++)
			ig_buf_free(&a->slots[i].json);
	free(a->slots);
	a->slots = NULL;
}

int ig_bench_agent_next(struct ig_bench_agent *a, struct ig_rng *rng, struct ig_bench_prompt *p)
{
	const struct ig_bench_workload *w = a->w;
	struct ig_bench_session *s = &a->slots[a->requests++ % (uint64_t)w->sessions];
	if (s->turn >= w->turns && session_start(a, s, rng, 0) < 0)
		return -1;
	if (add_turn(w, s, rng) < 0)
		return -1;
	ig_buf_reset(&p->system);
	ig_buf_reset(&p->user);
	p->json = ig_buf_str(&s->json);
	p->session = s->id;
	p->turn = s->turn - 1;
	p->group = s->group;
	p->in_tokens = s->tokens;
	p->out_tokens = s->last_out;
	return 0;
}

double ig_bench_next_gap(enum ig_bench_load load, double rate, struct ig_rng *rng)
{
	if (rate <= 0)
		return INFINITY;
	if (load == IG_LOAD_POISSON)
		return -log(1.0 - ig_rng_double(rng)) / rate;
	return 1.0 / rate;
}
