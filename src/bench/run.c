/* The runner: one event loop that sends the stages' requests to one target
 * and times every answer. Open-loop loads (constant, Poisson) follow a
 * schedule of absolute arrival times, so a slow server never slows the
 * offered load; the closed-loop load starts a request whenever one ends.
 * A stage stops sending at its end and then waits for its requests in
 * flight, so each request belongs to exactly one stage; open-loop arrivals
 * still waiting for a --max-inflight slot then are not sent. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "core/clock.h"
#include "http/client.h"
#include "http/sse.h"
#include "json/json.h"

/* A longer event line is a protocol error (IG_SSE_STRICT), not skipped:
 * a benchmark must not count a stream it could not read as a success. */
#define MAX_SSE_LINE (1u << 20)
#define MAX_BODY (16u << 20)
#define MAX_ERROR_BODY 4096
#define MAX_REQ_ITL (1u << 20)
#define MAX_STAGE_ITL (32u << 20)
#define TICK_MS 100
/* Open-loop arrivals waiting for a --max-inflight slot; more wait for
 * none and count as not sent. */
#define MAX_WAITING (16u << 20)

/* Set by SIGINT: stop sending, let the requests in flight finish. A second
 * Ctrl-C ends the process (SA_RESETHAND). */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void bench_install_sigint(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

struct dvec {
	double *v;
	size_t n, cap, max;
};

/* Appends x; returns -1 (x dropped) past the ceiling or without memory. */
static int dvec_push(struct dvec *d, double x)
{
	if (d->n == d->cap) {
		if (d->cap >= d->max)
			return -1;
		size_t cap = d->cap ? d->cap * 2 : 256;
		if (cap > d->max)
			cap = d->max;
		double *v = realloc(d->v, cap * sizeof *v);
		if (!v)
			return -1;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = x;
	return 0;
}

struct runner {
	struct ig_loop loop;
	const struct bench_opts *o;
	const struct bench_target *t;
	struct bench_run *run;
	struct ig_rng rng;
	struct ig_bench_prompt prompt;
	struct ig_bench_agent agent; /* the agentic workload's sessions */
	struct ig_http_client **idle;
	size_t n_idle, cap_idle;
	/* the stage being run */
	size_t stage;
	enum ig_bench_load load;
	double level;
	long max_requests;
	bool issuing, record;
	uint64_t start_ns, next_ns, end_ns, last_done_ns, stop_ns;
	long issued, inflight, failed;
	size_t done;
	/* Open loop: the scheduled times of the arrivals waiting for a
	 * --max-inflight slot, oldest first (a ring), and those that never
	 * got one before the stage ended. */
	uint64_t *waiting;
	size_t w_head, w_len, w_cap, not_sent;
	struct ig_timer arrival, tick;
	struct dvec itl;
	size_t itl_dropped;
};

struct req {
	struct runner *r;
	struct ig_http_client *c;
	struct ig_timer timer;
	struct ig_buf msg, payload; /* request head and body */
	struct ig_sse sse;
	struct ig_buf body;
	struct dvec itl;
	uint64_t sched, t0, t_first, t_last, now; /* sched: its arrival's time */
	int status;
	bool retried, sse_mode, waited, saw_done; /* saw_done: data: [DONE] came */
	const char *bad;			  /* a failure noticed while reading the body */
	uint32_t chunks;
	uint64_t id;
	uint16_t model, objective;
	/* the prompt's words, replaced by usage.prompt_tokens when the
	 * server tells it (a chat template adds tokens of its own) */
	int64_t in_tokens, out_usage;
	size_t itl_dropped;
};

static void start_request(struct runner *r, uint64_t sched, bool waited);
static int send_on(struct req *q, struct ig_http_client *c);

/* ---- connections ---- */

static struct ig_http_client *take_idle(struct runner *r)
{
	return r->n_idle ? r->idle[--r->n_idle] : NULL;
}

/* The server closed (or reset) a parked connection: it leaves the list. */
static void on_idle_event(struct ig_http_client *c, void *ud)
{
	struct runner *r = ud;
	for (size_t i = 0; i < r->n_idle; i++)
		if (r->idle[i] == c) {
			r->idle[i] = r->idle[--r->n_idle];
			break;
		}
	ig_http_client_close(c);
}

static void give_back(struct runner *r, struct ig_http_client *c)
{
	if (!ig_http_client_reusable(c)) {
		ig_http_client_close(c);
		return;
	}
	if (r->n_idle == r->cap_idle) {
		size_t cap = r->cap_idle ? r->cap_idle * 2 : 64;
		void *p = realloc(r->idle, cap * sizeof *r->idle);
		if (!p) {
			ig_http_client_close(c);
			return;
		}
		r->idle = p;
		r->cap_idle = cap;
	}
	ig_http_client_park(c, on_idle_event, r);
	r->idle[r->n_idle++] = c;
}

static void close_idle(struct runner *r)
{
	while (r->n_idle)
		ig_http_client_close(r->idle[--r->n_idle]);
}

/* ---- request bytes ---- */

/* The agentic workload's conversation is JSON text already: it goes in
 * between the quotes of "prompt" as it is. */
static int body_completions(struct runner *r, struct ig_buf *b)
{
	struct ig_bench_prompt *p = &r->prompt;
	if (ig_buf_append_cstr(b, "\"prompt\":") < 0)
		return -1;
	if (p->json.ptr)
		return ig_buf_append_cstr(b, "\"") < 0 || ig_buf_append_str(b, p->json) < 0 ||
			       ig_buf_append_cstr(b, "\"") < 0
			   ? -1
			   : 0;
	if (!p->system.len)
		return ig_json_write_string(b, p->user.ptr ? p->user.ptr : "", p->user.len);
	/* The shared prefix comes first so that a prefix cache can hit. */
	struct ig_buf all = {0};
	int rc = ig_buf_append_str(&all, ig_buf_str(&p->system)) < 0 ||
			 ig_buf_append(&all, " ", 1) < 0 ||
			 ig_buf_append_str(&all, ig_buf_str(&p->user)) < 0 ||
			 ig_json_write_string(b, all.ptr, all.len) < 0
		     ? -1
		     : 0;
	ig_buf_free(&all);
	return rc;
}

static int body_chat(struct runner *r, struct ig_buf *b)
{
	struct ig_bench_prompt *p = &r->prompt;
	if (ig_buf_append_cstr(b, "\"messages\":[") < 0)
		return -1;
	if (p->json.ptr)
		return ig_buf_append_str(b, p->json) < 0 || ig_buf_append_cstr(b, "]") < 0 ? -1 : 0;
	if (p->system.len && (ig_buf_append_cstr(b, "{\"role\":\"system\",\"content\":") < 0 ||
			      ig_json_write_string(b, p->system.ptr, p->system.len) < 0 ||
			      ig_buf_append_cstr(b, "},") < 0))
		return -1;
	if (ig_buf_append_cstr(b, "{\"role\":\"user\",\"content\":") < 0 ||
	    ig_json_write_string(b, p->user.ptr ? p->user.ptr : "", p->user.len) < 0)
		return -1;
	return ig_buf_append_cstr(b, "}]");
}

/* Without a model asked for, no "model" member is sent: vLLM then uses its
 * first served name. */
static int build_body(struct runner *r, struct req *q, struct ig_buf *b)
{
	const struct bench_opts *o = r->o;
	const char *model = o->models.n ? o->models.name[q->model] : o->model;
	/* One allocation for the prompt and the members around it. */
	if (ig_buf_reserve(b, r->prompt.json.len + r->prompt.system.len + r->prompt.user.len +
				  256) < 0 ||
	    ig_buf_append_cstr(b, "{") < 0)
		return -1;
	if (model &&
	    (ig_buf_append_cstr(b, "\"model\":") < 0 ||
	     ig_json_write_string(b, model, strlen(model)) < 0 || ig_buf_append_cstr(b, ",") < 0))
		return -1;
	if ((o->chat ? body_chat(r, b) : body_completions(r, b)) < 0)
		return -1;
	if (ig_buf_printf(b, ",\"max_tokens\":%ld,\"stream\":%s", r->prompt.out_tokens,
			  o->stream ? "true" : "false") < 0)
		return -1;
	if (o->stream && ig_buf_append_cstr(b, ",\"stream_options\":{\"include_usage\":true}") < 0)
		return -1;
	if (o->ignore_eos && ig_buf_append_cstr(b, ",\"ignore_eos\":true") < 0)
		return -1;
	return ig_buf_append_cstr(b, "}");
}

/* The head goes in q->msg and the body in q->payload, sent as two spans:
 * a long prompt is copied once, into the body. */
static int build_message(struct runner *r, struct req *q)
{
	const struct bench_opts *o = r->o;
	struct ig_buf *b = &q->payload;
	if (build_body(r, q, b) < 0)
		return -1;
	struct ig_buf *m = &q->msg;
	/* Host first, as RFC 9110 section 7.2 asks of a user agent; a
	 * --header of the same name replaces it, Content-Type or Accept. */
	if (ig_buf_printf(m, "POST %s%s HTTP/1.1\r\n", r->t->prefix,
			  o->chat ? "/v1/chat/completions" : "/v1/completions") < 0)
		return -1;
	if (!o->own_host && ig_buf_printf(m, "Host: %s\r\n", r->t->hostport) < 0)
		return -1;
	if (ig_buf_printf(m, "Content-Length: %zu\r\n", b->len) < 0)
		return -1;
	if (!o->own_content_type && ig_buf_append_cstr(m, "Content-Type: application/json\r\n") < 0)
		return -1;
	if (!o->own_accept &&
	    ig_buf_printf(m, "Accept: %s\r\n",
			  o->stream ? "text/event-stream" : "application/json") < 0)
		return -1;
	for (size_t i = 0; i < o->n_headers; i++)
		if (ig_buf_printf(m, "%s\r\n", o->headers[i]) < 0)
			return -1;
	if (o->objectives.n && ig_buf_printf(m, "%s: %s\r\n", o->objective_header,
					     o->objectives.name[q->objective]) < 0)
		return -1;
	if (o->send_id && ig_buf_printf(m, "x-request-id: bench-%s-%llu\r\n", o->run_id,
					(unsigned long long)q->id) < 0)
		return -1;
	if (o->session_header && r->prompt.session &&
	    ig_buf_printf(m, "%s: %s\r\n", o->session_header, r->prompt.session) < 0)
		return -1;
	return ig_buf_append_cstr(m, "\r\n");
}

/* ---- the end of a request ---- */

static void req_free(struct req *q)
{
	ig_timer_stop(&q->r->loop, &q->timer);
	ig_buf_free(&q->msg);
	ig_buf_free(&q->payload);
	ig_buf_free(&q->body);
	ig_sse_free(&q->sse);
	free(q->itl.v);
	free(q);
}

static void maybe_stop(struct runner *r)
{
	if (!r->issuing && r->inflight == 0 && r->w_len == 0)
		ig_loop_stop(&r->loop);
}

/* An arrival finds every --max-inflight slot taken: it waits, oldest
 * first. 0, or -1 when it cannot (then it is not sent). */
static int wait_push(struct runner *r, uint64_t sched)
{
	if (r->w_len == r->w_cap) {
		if (r->w_cap >= MAX_WAITING)
			return -1;
		size_t cap = r->w_cap ? r->w_cap * 2 : 256;
		uint64_t *v = malloc(cap * sizeof *v);
		if (!v)
			return -1;
		for (size_t i = 0; i < r->w_len; i++)
			v[i] = r->waiting[(r->w_head + i) % r->w_cap];
		free(r->waiting);
		r->waiting = v;
		r->w_cap = cap;
		r->w_head = 0;
	}
	r->waiting[(r->w_head + r->w_len++) % r->w_cap] = sched;
	return 0;
}

static uint64_t wait_pop(struct runner *r)
{
	uint64_t sched = r->waiting[r->w_head];
	r->w_head = (r->w_head + 1) % r->w_cap;
	r->w_len--;
	return sched;
}

/* The stage is over (or Ctrl-C): arrivals still waiting for a slot are
 * not sent at all, so nothing goes out after the stage's end; they are
 * counted apart from `sent`. */
static void drop_waiting(struct runner *r)
{
	r->not_sent += r->w_len;
	r->w_len = 0;
}

/* When sending stopped: the end of the stage's window, or the moment the
 * request bound was reached. Throughput is measured over the window plus
 * the drain, so a stage whose last arrival came early is not credited
 * with a shorter run than it had. */
static void stop_issuing(struct runner *r, uint64_t when)
{
	r->issuing = false;
	r->stop_ns = when;
}

static bool may_issue(struct runner *r, uint64_t now)
{
	if (interrupted || now >= r->end_ns)
		return false;
	return r->max_requests == 0 || r->issued < r->max_requests;
}

static int add_sample(struct bench_run *run, const struct ig_bench_sample *s)
{
	if (run->n_samples == run->cap_samples) {
		size_t cap = run->cap_samples ? run->cap_samples * 2 : 1024;
		void *p = realloc(run->samples, cap * sizeof *run->samples);
		if (!p)
			return -1;
		run->samples = p;
		run->cap_samples = cap;
	}
	run->samples[run->n_samples++] = *s;
	return 0;
}

static void record(struct runner *r, struct req *q, const char *error, uint64_t end)
{
	struct ig_bench_sample s = {
	    .id = q->id,
	    .sched_ms = (double)(q->sched - r->start_ns) / 1e6,
	    .queue_ms = (double)(q->t0 - q->sched) / 1e6,
	    .waited = q->waited,
	    .stage = (uint32_t)r->stage,
	    .model = q->model,
	    .objective = q->objective,
	    .status = q->status,
	    .error = error,
	    .start_ms = (double)(q->t0 - r->start_ns) / 1e6,
	    .e2e_ms = (double)(end - q->t0) / 1e6,
	    .in_tokens = q->in_tokens,
	    .chunks = q->chunks,
	};
	uint64_t first = q->t_first ? q->t_first : end;
	s.ttft_ms = (double)(first - q->t0) / 1e6;
	s.out_tokens = q->out_usage >= 0 ? q->out_usage : (int64_t)q->chunks;
	/* A whole (non-streamed) answer shows no token's time but the last:
	 * its TTFT is its E2E, and a TPOT would be ~0, so it has none; nor
	 * has a stream in which no chunk carried output. */
	s.tpot_ms = q->sse_mode && q->chunks > 0 && s.out_tokens > 1
			? (s.e2e_ms - s.ttft_ms) / (double)(s.out_tokens - 1)
			: NAN;
	if (error)
		s.ttft_ms = s.tpot_ms = NAN;
	if (!r->record)
		return;
	if (add_sample(r->run, &s) < 0)
		return;
	if (error) {
		r->failed++;
		return;
	}
	r->itl_dropped += q->itl_dropped;
	for (size_t i = 0; i < q->itl.n; i++)
		if (dvec_push(&r->itl, q->itl.v[i]) < 0)
			r->itl_dropped++;
}

/* Every request ends here exactly once, with or without an error. */
static void complete(struct req *q, const char *error)
{
	struct runner *r = q->r;
	uint64_t end = ig_now_ns();
	record(r, q, error, end);
	r->last_done_ns = end;
	r->done++;
	r->inflight--;
	req_free(q);
	if (r->load == IG_LOAD_CONCURRENCY && r->issuing) {
		if (may_issue(r, end)) {
			r->issued++;
			start_request(r, end, false);
		} else {
			stop_issuing(r, end);
		}
	} else if (r->w_len > 0) {
		if (interrupted || end >= r->end_ns)
			drop_waiting(r);
		else
			start_request(r, wait_pop(r), true);
	}
	maybe_stop(r);
}

static const char *status_kind(int status)
{
	static const char *const known[] = {"400", "401", "403", "404", "408", "413",
					    "429", "500", "502", "503", "504"};
	char buf[8];
	snprintf(buf, sizeof buf, "%d", status);
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(known[i], buf) == 0)
			return known[i];
	return status >= 500 ? "5xx" : status >= 400 ? "4xx" : "other-status";
}

/* ---- response callbacks ---- */

static int on_event(void *ud, const char *data, size_t len)
{
	struct req *q = ud;
	struct ig_bench_chunk ch;
	if (ig_bench_chunk_parse(data, len, &ch) < 0) {
		q->bad = "protocol";
		return 1;
	}
	if (ch.error)
		q->bad = "stream";
	q->saw_done = q->saw_done || ch.done;
	if (ch.completion_tokens >= 0)
		q->out_usage = ch.completion_tokens;
	if (ch.prompt_tokens >= 0)
		q->in_tokens = ch.prompt_tokens;
	if (ch.content == 0)
		return 0;
	q->chunks++;
	if (!q->t_first)
		q->t_first = q->now;
	else if (dvec_push(&q->itl, (double)(q->now - q->t_last) / 1e6) < 0)
		q->itl_dropped++;
	q->t_last = q->now;
	return 0;
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	struct req *q = ud;
	q->status = res->status;
	const struct ig_http_header *ct =
	    ig_http_find_header(res->headers, res->num_headers, "content-type");
	q->sse_mode = res->status == 200 && ct && ig_sse_media_type(ct->value);
	ig_buf_init(&q->body, res->status == 200 ? MAX_BODY : MAX_ERROR_BODY);
	return 0;
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	struct req *q = ud;
	q->now = ig_now_ns();
	if (q->bad)
		return 0;
	if (q->sse_mode) {
		if (ig_sse_feed(&q->sse, data, len, on_event, q) < 0)
			q->bad = "protocol";
		return 0;
	}
	/* Error bodies are only kept up to their small ceiling. */
	if (ig_buf_append(&q->body, data, len) < 0 && q->status == 200)
		q->bad = "protocol";
	return 0;
}

/* A whole (non-streamed) answer: the first token is the whole response;
 * one without output (no `choices`, or empty ones) fails as `empty`. */
static const char *finish_plain(struct req *q, uint64_t end)
{
	struct ig_bench_chunk ch;
	if (ig_bench_response_parse(q->body.ptr ? q->body.ptr : "", q->body.len, &ch) < 0)
		return "protocol";
	if (ch.error)
		return "stream";
	if (ch.content == 0)
		return "empty";
	q->t_first = end;
	q->chunks = 1;
	if (ch.completion_tokens >= 0)
		q->out_usage = ch.completion_tokens;
	if (ch.prompt_tokens >= 0)
		q->in_tokens = ch.prompt_tokens;
	return NULL;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	struct req *q = ud;
	uint64_t end = ig_now_ns();
	give_back(q->r, c);
	q->c = NULL;
	const char *error = q->bad;
	if (!error && q->status != 200)
		error = status_kind(q->status);
	if (!error && !q->sse_mode)
		error = finish_plain(q, end);
	/* An OpenAI stream ends with data: [DONE]; one that ends cleanly
	 * without it was cut short (a proxy or a server that gave up), so
	 * its answer is not whole. */
	if (!error && q->sse_mode && !q->saw_done)
		error = "truncated";
	/* A 200 that carried no output has no first token to time: counted
	 * as a success it would be the fastest answer of the run (vLLM's
	 * benchmark fails it: "Never received a valid chunk"). */
	if (!error && q->sse_mode && q->chunks == 0)
		error = "empty";
	complete(q, error);
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	struct req *q = ud;
	enum ig_client_error e = f->kind;
	ig_http_client_close(c);
	q->c = NULL;
	/* A parked connection the server closed just as we reused it fails
	 * before any byte: that is not the server's answer, so try once more on
	 * a fresh connection. */
	if (e == IG_CLIENT_EARLY && f->reused && !q->retried) {
		q->retried = true;
		struct ig_http_client *n = ig_http_client_connect(
		    &q->r->loop, (const struct sockaddr *)&q->r->t->addr, q->r->t->addrlen, 0);
		if (n && send_on(q, n) == 0)
			return;
		if (n)
			ig_http_client_close(n);
	}
	static const char *const kinds[] = {
	    [IG_CLIENT_CONNECT] = "connect",   [IG_CLIENT_EARLY] = "reset",
	    [IG_CLIENT_PROTOCOL] = "protocol", [IG_CLIENT_BROKEN] = "broken",
	    [IG_CLIENT_TIMEOUT] = "timeout",
	};
	complete(q, kinds[e]);
}

static const struct ig_http_client_cbs client_cbs = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
    .on_error = on_error,
};

/* ---- starting a request ---- */

static void on_timeout(struct ig_loop *loop, struct ig_timer *t)
{
	struct req *q = t->data;
	if (q->c) {
		ig_http_client_close(q->c);
		q->c = NULL;
	}
	complete(q, "timeout");
}

static void on_failed_start(struct ig_loop *loop, struct ig_timer *t)
{
	complete(t->data, "connect");
}

static int send_on(struct req *q, struct ig_http_client *c)
{
	const struct ig_str parts[] = {ig_buf_str(&q->msg), ig_buf_str(&q->payload)};
	if (ig_http_client_sendv(c, parts, 2, false, 0, &client_cbs, q) < 0)
		return -1;
	q->c = c;
	return 0;
}

/* Sends a request whose arrival was scheduled at `sched`: now, or
 * earlier when it `waited` for a --max-inflight slot. */
static void start_request(struct runner *r, uint64_t sched, bool waited)
{
	const struct bench_opts *o = r->o;
	struct req *q = calloc(1, sizeof *q);
	r->inflight++;
	if (!q) {
		r->inflight--;
		return;
	}
	q->r = r;
	q->out_usage = -1;
	q->itl.max = MAX_REQ_ITL;
	ig_sse_init(&q->sse, MAX_SSE_LINE, IG_SSE_STRICT);
	q->t0 = ig_now_ns();
	q->sched = sched < q->t0 ? sched : q->t0;
	q->waited = waited;
	q->id = r->run->first_id + r->run->n_ids++;
	if (o->models.n)
		q->model = (uint16_t)ig_bench_pick(&o->models, &r->rng);
	if (o->objectives.n)
		q->objective = (uint16_t)ig_bench_pick(&o->objectives, &r->rng);
	struct ig_http_client *c = NULL;
	int next = o->wl.kind == IG_WL_AGENTIC
		       ? ig_bench_agent_next(&r->agent, &r->rng, &r->prompt)
		       : ig_bench_workload_next(&o->wl, &r->rng, &r->prompt);
	if (next == 0 && build_message(r, q) == 0) {
		q->in_tokens = r->prompt.in_tokens;
		c = take_idle(r);
		if (!c)
			c = ig_http_client_connect(&r->loop, (const struct sockaddr *)&r->t->addr,
						   r->t->addrlen, 0);
		if (c && send_on(q, c) < 0) {
			ig_http_client_close(c);
			c = NULL;
		}
	}
	/* Failures are reported from the loop, never from inside this call,
	 * so that a dead target cannot recurse through complete(). */
	if (!c)
		ig_timer_start(&r->loop, &q->timer, 0, on_failed_start, q);
	else
		ig_timer_start_ns(&r->loop, &q->timer, (uint64_t)(o->timeout_ms * 1e6), on_timeout,
				  q);
}

/* ---- stage timing ---- */

static void on_arrival(struct ig_loop *loop, struct ig_timer *t)
{
	struct runner *r = t->data;
	uint64_t now = ig_now_ns();
	while (r->issuing && r->next_ns <= now) {
		if (!may_issue(r, r->next_ns)) {
			stop_issuing(r, r->next_ns < r->end_ns ? r->next_ns : r->end_ns);
			break;
		}
		uint64_t sched = r->next_ns;
		r->issued++;
		if (r->inflight < r->o->max_inflight)
			start_request(r, sched, false);
		else if (wait_push(r, sched) < 0)
			r->not_sent++;
		r->next_ns += (uint64_t)(ig_bench_next_gap(r->load, r->level, &r->rng) * 1e9);
		/* The last of --requests ends the send window right away, not at
		 * the next arrival or progress tick: the stage lasts until its
		 * last answer, as vLLM's benchmark duration does. */
		if (r->max_requests && r->issued >= r->max_requests) {
			stop_issuing(r, sched);
			break;
		}
	}
	if (r->issuing)
		ig_timer_start_ns(loop, &r->arrival, r->next_ns - now, on_arrival, r);
	maybe_stop(r);
}

static void progress(struct runner *r, uint64_t now)
{
	const struct bench_stage *st = &r->o->stages[r->stage];
	double el = (double)(now - r->start_ns) / 1e9;
	double frac = st->duration_ms > 0 ? el * 1000 / st->duration_ms : 0;
	if (st->requests > 0 && (double)r->issued / (double)st->requests > frac)
		frac = (double)r->issued / (double)st->requests;
	frac = frac > 1 ? 1 : frac;
	char bar[31];
	int fill = (int)(frac * 30);
	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r\033[K%s stage %zu/%zu %s%s [%s] %5.1fs sent %ld done %zu err %ld",
		r->t->name, r->stage + 1, r->o->n_stages, r->issuing ? "" : "(draining) ",
		r->record ? "" : "warm-up ", bar, el, r->issued, r->done, r->failed);
	fflush(stderr);
}

static void on_tick(struct ig_loop *loop, struct ig_timer *t)
{
	struct runner *r = t->data;
	uint64_t now = ig_now_ns();
	if (r->issuing && !may_issue(r, now)) {
		stop_issuing(r, r->end_ns < now ? r->end_ns : now);
		ig_timer_stop(loop, &r->arrival);
	}
	if (interrupted || now >= r->end_ns)
		drop_waiting(r);
	if (r->o->progress)
		progress(r, now);
	ig_timer_start(loop, &r->tick, TICK_MS, on_tick, r);
	maybe_stop(r);
}

static void run_stage(struct runner *r, enum ig_bench_load load, double level, double duration_ms,
		      long requests)
{
	r->load = load;
	r->level = level;
	r->max_requests = requests;
	r->issued = r->inflight = r->failed = 0;
	r->done = r->not_sent = 0;
	r->w_len = 0;
	r->start_ns = r->next_ns = r->last_done_ns = r->stop_ns = ig_now_ns();
	r->end_ns = duration_ms > 0 ? r->start_ns + (uint64_t)(duration_ms * 1e6) : UINT64_MAX;
	r->issuing = true;
	if (load == IG_LOAD_CONCURRENCY) {
		for (long i = 0; i < (long)level && may_issue(r, r->start_ns); i++) {
			r->issued++;
			start_request(r, ig_now_ns(), false);
		}
		if (r->issued == 0 || (requests && r->issued >= requests))
			stop_issuing(r, r->start_ns);
	} else {
		ig_timer_start(&r->loop, &r->arrival, 0, on_arrival, r);
	}
	ig_timer_start(&r->loop, &r->tick, TICK_MS, on_tick, r);
	maybe_stop(r);
	ig_loop_run(&r->loop);
	ig_timer_stop(&r->loop, &r->tick);
	ig_timer_stop(&r->loop, &r->arrival);
	if (r->o->progress)
		fprintf(stderr, "\r\033[K");
}

static int summarise_stage(struct runner *r, size_t first)
{
	struct bench_run *run = r->run;
	struct ig_bench_stage_result *res = &run->stages[r->stage];
	uint64_t end = r->last_done_ns > r->stop_ns ? r->last_done_ns : r->stop_ns;
	double dur = (double)(end - r->start_ns) / 1e9;
	if (ig_bench_summarise(run->samples + first, run->n_samples - first, dur, &r->o->slo, res) <
	    0)
		return -1;
	res->offered = r->level;
	res->not_sent = r->not_sent;
	ig_bench_dist_of(r->itl.v, r->itl.n, &res->itl);
	res->itl_dropped = r->itl_dropped;
	r->itl.n = 0;
	r->itl_dropped = 0;
	return 0;
}

int bench_run_target(const struct bench_opts *o, size_t t, struct bench_run *run)
{
	struct runner r = {.o = o, .t = &o->targets[t], .run = run};
	if (ig_loop_init(&r.loop) < 0)
		return -1;
	/* Every target sees the same sequence of prompts and choices. */
	ig_rng_seed(&r.rng, o->seed);
	if (o->wl.kind == IG_WL_AGENTIC && ig_bench_agent_init(&r.agent, &o->wl, &r.rng) < 0) {
		ig_loop_free(&r.loop);
		return -1;
	}
	r.itl.max = MAX_STAGE_ITL;
	if (o->warmup > 0) {
		r.record = false;
		run_stage(&r, IG_LOAD_CONCURRENCY, 1, 0, o->warmup);
	}
	r.record = true;
	int rc = 0;
	for (size_t i = 0; i < o->n_stages && !interrupted && rc == 0; i++) {
		const struct bench_stage *st = &o->stages[i];
		size_t first = run->n_samples;
		r.stage = i;
		run_stage(&r, o->load, st->load, st->duration_ms, st->requests);
		rc = summarise_stage(&r, first);
		run->n_stages = i + 1;
	}
	run->interrupted = interrupted;
	close_idle(&r);
	free(r.idle);
	free(r.itl.v);
	free(r.waiting);
	if (o->wl.kind == IG_WL_AGENTIC)
		ig_bench_agent_free(&r.agent);
	ig_buf_free(&r.prompt.system);
	ig_buf_free(&r.prompt.user);
	ig_loop_free(&r.loop);
	return rc;
}
