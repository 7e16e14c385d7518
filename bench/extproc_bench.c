/* Load generator for an endpoint picker served over Envoy's ext_proc
 * (`infergate epp`, GIE's picker, llm-d's): K Process streams in a closed
 * loop over one HTTP/2 connection, each playing what Envoy (and our
 * gateway, gateway/extpick.c) sends for one inference request:
 *
 *   → request_headers (protocol_config: request body FULL_DUPLEX_STREAMED,
 *     response body NONE), then the completions body in 64 KiB chunks
 *   ← the headers answer (the pick in x-gateway-destination-endpoint),
 *     then the body streamed back up to end_of_stream
 *   half-close, and the picker ends the stream.
 *
 * One decision is one such stream; its latency runs from the first
 * message queued to the body answer carrying end_of_stream. A stream is
 * an error when it ends with a grpc-status other than OK, answers with an
 * immediate_response, names no endpoint, or sends back a body whose
 * length is not the content-length it announced.
 *
 * The bodies: NPROMPTS completions requests of --body-bytes each, in
 * families whose prompts share their first half (so a prefix-aware
 * picker sees repeats and misses alike), taken in turn.
 *
 *   build/bench/extproc_bench --target 127.0.0.1:9002 --concurrency 8 \
 *       --body-bytes 4096 --duration 5 [--tls] [--json]
 *
 * Prints decisions/s, latency percentiles and the endpoints picked; with
 * --json one JSON object on stdout instead. Exit status 1 when any stream
 * failed. */
#include <dirent.h>
#include <getopt.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/rand.h"
#include "event/loop.h"
#include "extproc/msg.h"
#include "grpc/grpc.h"

#define PROCESS_PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define DEST_HEADER "x-gateway-destination-endpoint"
#define CHUNK_BYTES 65536
#define NPROMPTS 64
#define FAMILIES 8
#define MAX_EPS 16
#define CALL_DEADLINE_MS 10000

/* One request, its ext_proc messages encoded once. */
struct request {
	size_t body_len;
	struct ig_buf *msgs;
	size_t nmsgs;
};

struct opts {
	char host[256];
	int port;
	bool tls, json;
	int concurrency, connections;
	size_t body_bytes;
	double duration_s, warmup_s;
	const char *model, *path;
	int cpu_pid; /* --cpu-of: a process whose CPU time is reported */
};

struct bench;

/* One of the K closed-loop slots: at most one stream at a time. */
struct slot {
	struct bench *b;
	struct ig_grpc_channel *ch;
	struct ig_grpc_call *call;
	struct ig_task next; /* starts the next stream off the callback */
	uint64_t t0, t_answer;
	bool headers_seen, eos_seen, bad, immediate;
	long expect_len; /* content-length of the headers answer; -1: none */
	size_t got_len;
	char endpoint[64];
	const char *why; /* the first problem seen */
};

struct bench {
	struct opts o;
	struct ig_loop loop;
	struct ig_grpc_channel **chans;
	struct slot *slots;
	struct request req[NPROMPTS];
	size_t next_req;
	uint64_t t_start, t_measure, t_end;
	bool stopping;
	int live;
	/* measured window */
	double *lat_us;
	size_t nlat, cap;
	uint64_t errors, warm_done;
	char first_error[300];
	struct {
		char addr[64];
		uint64_t n;
	} eps[MAX_EPS];
	size_t neps;
	struct ig_timer end_timer, measure_timer;
	/* CPU ns at the start and the end of the measured window: ours, and
	 * --cpu-of's (-1: unknown) */
	int64_t self_ns[2], other_ns[2];
};

static void die(const char *msg)
{
	fprintf(stderr, "extproc_bench: %s\n", msg);
	exit(2);
}

/* ---- the requests ---- */

static void fill_words(char *p, size_t len, struct ig_rng *rng)
{
	for (size_t i = 0; i < len; i++)
		p[i] = ig_rng_below(rng, 6) == 0 ? ' ' : (char)('a' + ig_rng_below(rng, 26));
}

static void add_msg(struct request *r, const struct ig_xp_request_out *m)
{
	r->msgs = realloc(r->msgs, (r->nmsgs + 1) * sizeof *r->msgs);
	if (!r->msgs)
		die("out of memory");
	struct ig_buf *b = &r->msgs[r->nmsgs++];
	ig_buf_init(b, 0);
	if (ig_xp_encode_request(b, m) < 0)
		die("out of memory");
}

/* NPROMPTS bodies of o->body_bytes: {"model":..,"prompt":"..","max_tokens":1}
 * with the prompt padded to the size; prompts of a family share their
 * first half. */
static void make_requests(struct bench *b)
{
	const struct opts *o = &b->o;
	char head[256];
	int hl = snprintf(head, sizeof head, "{\"model\":\"%s\",\"max_tokens\":1,\"prompt\":\"",
			  o->model);
	const char *tail = "\"}";
	if (o->body_bytes < (size_t)hl + 2 + 16)
		die("--body-bytes is too small");
	size_t plen = o->body_bytes - (size_t)hl - 2;
	struct ig_rng rng;
	ig_rng_seed(&rng, 1);
	char *family[FAMILIES];
	for (int f = 0; f < FAMILIES; f++) {
		family[f] = malloc(plen / 2 + 1);
		if (!family[f])
			die("out of memory");
		fill_words(family[f], plen / 2, &rng);
	}
	char *body = malloc(o->body_bytes);
	if (!body)
		die("out of memory");
	char authority[300], clen[24];
	snprintf(authority, sizeof authority, "%s:%d", o->host, o->port);
	snprintf(clen, sizeof clen, "%zu", o->body_bytes);
	for (int i = 0; i < NPROMPTS; i++) {
		memcpy(body, head, (size_t)hl);
		memcpy(body + hl, family[i % FAMILIES], plen / 2);
		fill_words(body + hl + plen / 2, plen - plen / 2, &rng);
		memcpy(body + hl + plen, tail, 2);
		struct request *r = &b->req[i];
		r->body_len = o->body_bytes;
		const struct ig_xp_header hs[] = {
		    {IG_STR(":method"), IG_STR("POST")},
		    {IG_STR(":path"), ig_str_from(o->path)},
		    {IG_STR(":scheme"), IG_STR("http")},
		    {IG_STR(":authority"), ig_str_from(authority)},
		    {IG_STR("content-type"), IG_STR("application/json")},
		    {IG_STR("content-length"), ig_str_from(clen)},
		    {IG_STR("user-agent"), IG_STR("extproc_bench")},
		};
		add_msg(r, &(struct ig_xp_request_out){
			       .kind = IG_XP_REQ_REQUEST_HEADERS,
			       .headers = hs,
			       .nheaders = sizeof hs / sizeof hs[0],
			       .protocol_config = true,
			       .request_body_mode = IG_XP_BODY_FULL_DUPLEX_STREAMED,
			       .response_body_mode = IG_XP_BODY_NONE,
			   });
		for (size_t off = 0; off < o->body_bytes;) {
			size_t n =
			    o->body_bytes - off > CHUNK_BYTES ? CHUNK_BYTES : o->body_bytes - off;
			add_msg(r, &(struct ig_xp_request_out){
				       .kind = IG_XP_REQ_REQUEST_BODY,
				       .body = {body + off, n},
				       .end_of_stream = off + n == o->body_bytes,
				   });
			off += n;
		}
	}
	free(body);
	for (int f = 0; f < FAMILIES; f++)
		free(family[f]);
}

/* ---- one stream ---- */

static void start_stream(struct slot *s);

static void flag(struct slot *s, const char *why)
{
	if (!s->why)
		s->why = why;
	s->bad = true;
}

static void count_endpoint(struct bench *b, const char *addr)
{
	for (size_t i = 0; i < b->neps; i++)
		if (!strcmp(b->eps[i].addr, addr)) {
			b->eps[i].n++;
			return;
		}
	if (b->neps < MAX_EPS) {
		snprintf(b->eps[b->neps].addr, sizeof b->eps[0].addr, "%s", addr);
		b->eps[b->neps++].n = 1;
	}
}

static void on_message(struct ig_grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
	(void)c;
	struct slot *s = data;
	struct ig_xp_response r;
	if (ig_xp_response_decode(msg, len, &r) < 0) {
		flag(s, "an unreadable ProcessingResponse");
		return;
	}
	if (r.kind == IG_XP_RESP_IMMEDIATE) {
		s->immediate = true;
		flag(s, "an immediate_response");
	} else if (r.kind == IG_XP_RESP_REQUEST_HEADERS && !s->headers_seen) {
		s->headers_seen = true;
		uint64_t clen;
		struct ig_str ep = r.lb_endpoint;
		for (size_t i = 0; i < r.nset; i++) {
			if (ig_str_ieq_cstr(r.set[i].key, DEST_HEADER))
				ep = r.set[i].value;
			else if (ig_str_ieq_cstr(r.set[i].key, "content-length") &&
				 ig_str_to_u64(r.set[i].value, &clen) == 0)
				s->expect_len = (long)clen;
		}
		if (!ep.len)
			flag(s, "a headers answer without " DEST_HEADER);
		else
			snprintf(s->endpoint, sizeof s->endpoint, "%.*s", (int)ep.len, ep.ptr);
	} else if (r.kind == IG_XP_RESP_REQUEST_BODY && s->headers_seen && !s->eos_seen) {
		if (!r.has_streamed) {
			flag(s, "a body answer that is not a streamed_response");
		} else {
			s->got_len += r.streamed_body.len;
			if (r.streamed_eos) {
				s->eos_seen = true;
				s->t_answer = ig_now_ns();
				if (s->expect_len >= 0 && (size_t)s->expect_len != s->got_len)
					flag(s, "a body of another length than its content-length");
				ig_grpc_call_close_send(s->call);
			}
		}
	} else {
		flag(s, "an answer out of order");
	}
	ig_xp_response_free(&r);
	if (s->immediate && s->call)
		ig_grpc_call_close_send(s->call);
}

static void next_task(struct ig_loop *loop, struct ig_task *t)
{
	(void)loop;
	start_stream(t->data);
}

static void on_done(struct ig_grpc_call *c, int status, const char *message, void *data)
{
	(void)c;
	struct slot *s = data;
	struct bench *b = s->b;
	s->call = NULL;
	b->live--;
	if (status != IG_GRPC_OK) {
		static char buf[300];
		snprintf(buf, sizeof buf, "grpc-status %d: %s", status, message ? message : "");
		flag(s, buf);
	} else if (!s->eos_seen && !s->bad) {
		flag(s, "the stream ended before the body's end_of_stream");
	}
	/* Streams that end inside the measured window count, whenever they
	 * began; a failed one counts whenever it ends. */
	uint64_t now = ig_now_ns();
	bool measured = now >= b->t_measure && !b->stopping;
	if (s->bad) {
		b->errors++;
		if (!b->first_error[0])
			snprintf(b->first_error, sizeof b->first_error, "%s", s->why);
	} else if (measured) {
		if (b->nlat == b->cap) {
			b->cap = b->cap ? 2 * b->cap : 65536;
			b->lat_us = realloc(b->lat_us, b->cap * sizeof *b->lat_us);
			if (!b->lat_us)
				die("out of memory");
		}
		b->lat_us[b->nlat++] = (double)(s->t_answer - s->t0) / 1e3;
		count_endpoint(b, s->endpoint);
	} else {
		b->warm_done++;
	}
	if (!b->stopping)
		ig_task_queue(&b->loop, &s->next, next_task, s);
	else if (b->live == 0)
		ig_loop_stop(&b->loop);
}

static const struct ig_grpc_call_handlers handlers = {.on_message = on_message, .on_done = on_done};

static void start_stream(struct slot *s)
{
	struct bench *b = s->b;
	if (b->stopping)
		return;
	const struct request *r = &b->req[b->next_req++ % NPROMPTS];
	s->headers_seen = s->eos_seen = s->bad = s->immediate = false;
	s->expect_len = -1;
	s->got_len = 0;
	s->why = NULL;
	s->endpoint[0] = '\0';
	s->t0 = ig_now_ns();
	s->call = ig_grpc_call_start(s->ch, PROCESS_PATH, CALL_DEADLINE_MS, NULL, 0, &handlers, s);
	if (!s->call)
		die("out of memory");
	b->live++;
	for (size_t i = 0; i < r->nmsgs; i++)
		if (ig_grpc_call_send(s->call, (const uint8_t *)r->msgs[i].ptr, r->msgs[i].len) < 0)
			break; /* the call ended: on_done tells */
}

static int64_t self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* The run time of a process: the sum over its threads
 * (/proc/PID/task/TID/schedstat; /proc/PID/schedstat is the main
 * thread's alone, and the picker's work runs on its worker threads). */
static int64_t pid_cpu_ns(int pid)
{
	if (pid <= 0)
		return -1;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int64_t sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[300];
		snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
		FILE *f = fopen(p, "r");
		long long ns;
		if (f && fscanf(f, "%lld", &ns) == 1)
			sum += ns;
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

static void take_cpu(struct bench *b, int i)
{
	b->self_ns[i] = self_cpu_ns();
	b->other_ns[i] = pid_cpu_ns(b->o.cpu_pid);
}

static void on_measure(struct ig_loop *loop, struct ig_timer *t)
{
	(void)loop;
	take_cpu(t->data, 0);
}

static void on_end(struct ig_loop *loop, struct ig_timer *t)
{
	struct bench *b = t->data;
	b->t_end = ig_now_ns();
	take_cpu(b, 1);
	b->stopping = true;
	if (b->live == 0)
		ig_loop_stop(loop);
}

/* ---- report ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Linear interpolation between closest ranks (numpy's default). */
static double pct(const double *v, size_t n, double q)
{
	if (!n)
		return 0;
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;
	double f = pos - (double)i;
	return i + 1 < n ? v[i] + f * (v[i + 1] - v[i]) : v[i];
}

static void report(struct bench *b)
{
	qsort(b->lat_us, b->nlat, sizeof *b->lat_us, cmp_double);
	double secs = (double)(b->t_end - b->t_measure) / 1e9;
	double rate = (double)b->nlat / secs;
	double mean = 0;
	for (size_t i = 0; i < b->nlat; i++)
		mean += b->lat_us[i];
	mean = b->nlat ? mean / (double)b->nlat : 0;
	const double *v = b->lat_us;
	size_t n = b->nlat;
	double self_busy = (double)(b->self_ns[1] - b->self_ns[0]) / 1e9 / secs;
	bool other = b->other_ns[0] >= 0 && b->other_ns[1] >= 0;
	double other_busy = other ? (double)(b->other_ns[1] - b->other_ns[0]) / 1e9 / secs : 0;
	double other_us =
	    other && n ? (double)(b->other_ns[1] - b->other_ns[0]) / 1e3 / (double)n : 0;
	if (b->o.json) {
		printf("{\"target\":\"%s:%d\",\"tls\":%s,\"concurrency\":%d,\"connections\":%d,"
		       "\"body_bytes\":%zu,\"seconds\":%.3f,\"decisions\":%zu,\"errors\":%llu,"
		       "\"decisions_per_s\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
		       "\"p99_us\":%.1f,\"max_us\":%.1f,\"first_error\":\"",
		       b->o.host, b->o.port, b->o.tls ? "true" : "false", b->o.concurrency,
		       b->o.connections, b->o.body_bytes, secs, n, (unsigned long long)b->errors,
		       rate, mean, pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99),
		       n ? v[n - 1] : 0.0);
		for (const char *p = b->first_error; *p; p++)
			if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				putchar(*p);
		printf("\",\"bench_busy\":%.3f", self_busy);
		if (other)
			printf(",\"picker_busy\":%.3f,\"picker_cpu_us_per_decision\":%.1f",
			       other_busy, other_us);
		printf(",\"endpoints\":{");
		for (size_t i = 0; i < b->neps; i++)
			printf("%s\"%s\":%llu", i ? "," : "", b->eps[i].addr,
			       (unsigned long long)b->eps[i].n);
		printf("}}\n");
		return;
	}
	printf("%s:%d%s, %d streams over %d connection(s), %zu-byte bodies, %.1f s:\n", b->o.host,
	       b->o.port, b->o.tls ? " (TLS)" : "", b->o.concurrency, b->o.connections,
	       b->o.body_bytes, secs);
	printf("  %zu decisions, %.0f/s; latency µs mean %.0f p50 %.0f p90 %.0f p99 %.0f max "
	       "%.0f\n",
	       n, rate, mean, pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99), n ? v[n - 1] : 0.0);
	printf("  errors: %llu%s%s\n", (unsigned long long)b->errors, b->errors ? ", first: " : "",
	       b->first_error);
	printf("  CPU: this bench %.0f %% of a core", self_busy * 100);
	if (other)
		printf(", process %d %.0f %% of a core, %.1f µs per decision", b->o.cpu_pid,
		       other_busy * 100, other_us);
	printf("\n  picked:");
	for (size_t i = 0; i < b->neps; i++)
		printf(" %s %llu", b->eps[i].addr, (unsigned long long)b->eps[i].n);
	printf("\n");
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: extproc_bench --target HOST:PORT [options]\n"
		   "  --target HOST:PORT   the picker's ext_proc address (required)\n"
		   "  --tls                TLS (ALPN h2; the certificate is not verified)\n"
		   "  --concurrency K      streams in flight, closed loop (default 8)\n"
		   "  --connections N      HTTP/2 connections the streams share (default 1)\n"
		   "  --body-bytes N       size of each completions body (default 4096)\n"
		   "  --duration SECS      measured seconds (default 5)\n"
		   "  --warmup SECS        seconds before, not counted (default 1)\n"
		   "  --model NAME         the body's model (default tweet-summary)\n"
		   "  --path PATH          the request's :path (default /v1/completions)\n"
		   "  --json               one JSON object on stdout\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.concurrency = 8,
			   .connections = 1,
			   .body_bytes = 4096,
			   .duration_s = 5,
			   .warmup_s = 1,
			   .model = "tweet-summary",
			   .path = "/v1/completions"};
	static const struct option lo[] = {{"target", required_argument, 0, 't'},
					   {"tls", no_argument, 0, 'T'},
					   {"concurrency", required_argument, 0, 'c'},
					   {"connections", required_argument, 0, 'n'},
					   {"body-bytes", required_argument, 0, 'b'},
					   {"duration", required_argument, 0, 'd'},
					   {"warmup", required_argument, 0, 'w'},
					   {"model", required_argument, 0, 'm'},
					   {"path", required_argument, 0, 'p'},
					   {"cpu-of", required_argument, 0, 'P'},
					   {"json", no_argument, 0, 'j'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int c;
	bool target = false;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (ig_parse_hostport(optarg, "127.0.0.1", o->host, sizeof o->host,
					      &o->port) < 0 ||
			    o->port <= 0)
				die("--target wants HOST:PORT");
			target = true;
			break;
		case 'T':
			o->tls = true;
			break;
		case 'c':
			o->concurrency = atoi(optarg);
			break;
		case 'n':
			o->connections = atoi(optarg);
			break;
		case 'b':
			o->body_bytes = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			o->duration_s = strtod(optarg, NULL);
			break;
		case 'w':
			o->warmup_s = strtod(optarg, NULL);
			break;
		case 'm':
			o->model = optarg;
			break;
		case 'p':
			o->path = optarg;
			break;
		case 'P':
			o->cpu_pid = atoi(optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!target) {
		usage(stderr);
		exit(2);
	}
	if (o->concurrency < 1 || o->connections < 1 || o->duration_s <= 0 || o->warmup_s < 0)
		die("--concurrency and --connections must be at least 1, --duration positive");
}

int main(int argc, char **argv)
{
	static struct bench b;
	parse(argc, argv, &b.o);
	make_requests(&b);
	if (ig_loop_init(&b.loop) < 0)
		die("event loop");
	b.chans = calloc((size_t)b.o.connections, sizeof *b.chans);
	b.slots = calloc((size_t)b.o.concurrency, sizeof *b.slots);
	if (!b.chans || !b.slots)
		die("out of memory");
	for (int i = 0; i < b.o.connections; i++) {
		struct ig_grpc_channel_config cfg = {
		    .host = b.o.host,
		    .port = b.o.port,
		    .tls = b.o.tls,
		    .connect_timeout_ms = 2000,
		    .max_message_bytes = b.o.body_bytes + 65536,
		};
		b.chans[i] = ig_grpc_channel_new(&b.loop, &cfg);
		if (!b.chans[i])
			die("cannot make a channel");
	}
	b.t_start = ig_now_ns();
	b.t_measure = b.t_start + (uint64_t)(b.o.warmup_s * 1e9);
	for (int i = 0; i < b.o.concurrency; i++) {
		struct slot *s = &b.slots[i];
		s->b = &b;
		s->ch = b.chans[i % b.o.connections];
		start_stream(s);
	}
	ig_timer_start(&b.loop, &b.measure_timer, (uint64_t)(b.o.warmup_s * 1e3), on_measure, &b);
	ig_timer_start(&b.loop, &b.end_timer, (uint64_t)((b.o.warmup_s + b.o.duration_s) * 1e3),
		       on_end, &b);
	ig_loop_run(&b.loop);
	report(&b);
	bool failed = b.errors > 0 || b.nlat == 0;
	if (b.nlat == 0 && !b.o.json)
		fprintf(stderr, "extproc_bench: no decision in the measured window (%s)\n",
			b.first_error[0] ? b.first_error : "no stream ended in time");
	for (int i = 0; i < b.o.connections; i++)
		ig_grpc_channel_free(b.chans[i]);
	for (int i = 0; i < NPROMPTS; i++) {
		for (size_t k = 0; k < b.req[i].nmsgs; k++)
			ig_buf_free(&b.req[i].msgs[k]);
		free(b.req[i].msgs);
	}
	free(b.chans);
	free(b.slots);
	free(b.lat_us);
	ig_loop_free(&b.loop);
	return failed ? 1 : 0;
}
