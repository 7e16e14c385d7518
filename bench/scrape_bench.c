/* What scraping the endpoints' /metrics costs the gateway's control thread.
 *
 * 1. Parsing alone: ig_vllm_metrics_extract() on two pages, the one our
 *    simulator serves (infergate sim with LoRA adapters) and one shaped
 *    like a real vLLM 0.9 page (its families, label sets and histogram
 *    buckets, the Python process and HTTP instrumentator families: about
 *    28 KB), in µs per page, and what 1024 endpoints every 50 ms would cost
 *    in share of one core.
 * 2. The scraper itself: an ig_scraper on a thread of its own scrapes N
 *    endpoints every 50 ms over loopback (kept-alive HTTP/1.1, the vLLM-like
 *    page), served by a small epoll server on another thread; the
 *    scraper thread's CPU time over the measured seconds is its cost.
 *
 * Run: make bench-scrape, or build/bench/scrape_bench [ENDPOINTS [SECONDS
 * [named|same|plain|floor]]] (pods that answer name[] queries with a page that
 * changes at every scrape, as a busy server's does; the same with the
 * same page every time, as an idle server's; pods that ignore name[]
 * queries; all three by default);
 * build/bench/scrape_bench page prints the vLLM-like page.
 * Everything listens on 127.77.x.y (ports chosen by the kernel). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "core/buf.h"
#include "event/loop.h"
#include "http/client.h"
#include "pool/endpoint.h"
#include "pool/metrics.h"
#include "pool/scrape.h"
#include "sim/sim.h"

static double now_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- pages ------------------------------------------------------------------ */

static void put(struct ig_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct ig_buf *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line || ig_buf_append(b, line, (size_t)n) < 0)
		die("page");
}

#define MODEL_LABELS "engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\""

static void family(struct ig_buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(struct ig_buf *b, const char *name, const char *help, const double *le, size_t n,
		 const char *labels)
{
	family(b, name, "histogram", help);
	double cum = 0;
	for (size_t i = 0; i <= n; i++) {
		cum += (double)(i * 7 % 13);
		if (i < n)
			put(b, "%s_bucket{%s,le=\"%g\"} %.1f\n", name, labels, le[i], cum);
		else
			put(b, "%s_bucket{%s,le=\"+Inf\"} %.1f\n", name, labels, cum);
	}
	put(b, "%s_count{%s} %.1f\n%s_sum{%s} %.6f\n", name, labels, cum, name, labels, cum * 0.37);
	family(b, name, "gauge", help);
	put(b, "%s_created{%s} 1.7339872349912e+09\n", name, labels);
}

static void counter(struct ig_buf *b, const char *name, const char *help, double v)
{
	family(b, name, "counter", help);
	put(b, "%s_total{%s} %.1f\n%s_created{%s} 1.7339872349912e+09\n", name, MODEL_LABELS, v,
	    name, MODEL_LABELS);
}

static void gauge(struct ig_buf *b, const char *name, const char *help, double v)
{
	family(b, name, "gauge", help);
	put(b, "%s{%s} %g\n", name, MODEL_LABELS, v);
}

/* vLLM 0.9's cache_config_info: every CacheConfig field as a label. */
static void cache_config(struct ig_buf *b)
{
	family(b, "vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
	put(b, "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
	       "calculate_kv_scales=\"False\",cpu_offload_gb=\"0\",enable_prefix_caching=\"True\","
	       "gpu_memory_utilization=\"0.9\",is_attention_free=\"False\",num_cpu_blocks=\"None\","
	       "num_gpu_blocks=\"27356\",num_gpu_blocks_override=\"None\","
	       "prefix_caching_hash_algo=\"builtin\",sliding_window=\"None\",swap_space=\"4\","
	       "swap_space_bytes=\"4294967296\"} 1.0\n");
}

/* A page with the families, labels and buckets vLLM 0.9 (V1 engine)
 * serves, and the values of a busy server. */
static void vllm_page(struct ig_buf *b)
{
	static const double ttft[] = {0.001, 0.005, 0.01, 0.02,	 0.04,	0.06,  0.08, 0.1,
				      0.25,  0.5,   0.75, 1.0,	 2.5,	5.0,   7.5,  10.0,
				      20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
	static const double itl[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,	0.3,  0.4, 0.5,
				     0.75, 1.0,	  2.5,	5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
	static const double lat[] = {0.3,  0.5,	  0.8,	 1.0,	1.5,   2.0,    2.5,
				     5.0,  10.0,  15.0,	 20.0,	30.0,  40.0,   50.0,
				     60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
	static const double tok[] = {1,	  2,   5,    10,   20,	 50,	100,
				     200, 500, 1000, 2000, 5000, 10000, 20000};
	static const double iter[] = {1,   8,	 16,   32,   64,   128,	 256,
				      512, 1024, 2048, 4096, 8192, 16384};
	static const double n[] = {1, 2, 5, 10, 20};
	static const double http_le[] = {0.01, 0.025, 0.05, 0.075, 0.1,	 0.25, 0.5,
					 0.75, 1.0,   1.5,  2.0,   2.5,	 3.0,  3.5,
					 4.0,  4.5,   5.0,  7.5,   10.0, 30.0, 60.0};
	static const char *const gens[] = {"0", "1", "2"};
	family(b, "python_gc_objects_collected_total", "counter", "Objects collected during gc");
	for (int i = 0; i < 3; i++)
		put(b, "python_gc_objects_collected_total{generation=\"%s\"} %d.0\n", gens[i],
		    12345 * (i + 1));
	family(b, "python_gc_objects_uncollectable_total", "counter",
	       "Uncollectable objects found during GC");
	for (int i = 0; i < 3; i++)
		put(b, "python_gc_objects_uncollectable_total{generation=\"%s\"} 0.0\n", gens[i]);
	family(b, "python_gc_collections_total", "counter",
	       "Number of times this generation was collected");
	for (int i = 0; i < 3; i++)
		put(b, "python_gc_collections_total{generation=\"%s\"} %d.0\n", gens[i],
		    900 / (i + 1));
	family(b, "python_info", "gauge", "Python platform information");
	put(b, "python_info{implementation=\"CPython\",major=\"3\",minor=\"12\",patchlevel=\"9\","
	       "version=\"3.12.9\"} 1.0\n");
	static const char *const procs[] = {"virtual_memory_bytes",
					    "resident_memory_bytes",
					    "start_time_seconds",
					    "cpu_seconds_total",
					    "open_fds",
					    "max_fds"};
	for (int i = 0; i < 6; i++) {
		char name[64];
		snprintf(name, sizeof name, "process_%s", procs[i]);
		family(b, name, i == 3 ? "counter" : "gauge", "Process figure.");
		put(b, "%s %.6e\n", name, 1.234567e9 / (i + 1));
	}
	gauge(b, "vllm:num_requests_running", "Number of requests in model execution batches.", 37);
	gauge(b, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", 4);
	gauge(b, "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.",
	      0.4375);
	gauge(b, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", 0.4375);
	counter(b, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", 12);
	counter(b, "vllm:prefix_cache_queries",
		"Prefix cache queries, in terms of number of queried tokens.", 9.8e6);
	counter(b, "vllm:prefix_cache_hits",
		"Prefix cache hits, in terms of number of cached tokens.", 6.1e6);
	counter(b, "vllm:prompt_tokens", "Number of prefill tokens processed.", 1.2e7);
	counter(b, "vllm:generation_tokens", "Number of generation tokens processed.", 3.4e6);
	family(b, "vllm:request_success_total", "counter",
	       "Count of successfully processed requests.");
	static const char *const reasons[] = {"stop", "length", "abort"};
	for (int i = 0; i < 3; i++)
		put(b, "vllm:request_success_total{" MODEL_LABELS ",finished_reason=\"%s\"} %d.0\n",
		    reasons[i], 5000 / (i + 1));
	family(b, "vllm:lora_requests_info", "gauge", "Running stats on lora requests.");
	put(b, "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"tweet-summary-0,"
	       "tweet-summary-1\",waiting_lora_adapters=\"\"} 1.7339876549e+09\n");
	hist(b, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
	     iter, 13, MODEL_LABELS);
	hist(b, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
	     ttft, 22, MODEL_LABELS);
	hist(b, "vllm:time_per_output_token_seconds",
	     "Histogram of time per output token in seconds.", itl, 19, MODEL_LABELS);
	static const char *const lats[] = {"e2e_request_latency", "request_queue_time",
					   "request_inference_time", "request_prefill_time",
					   "request_decode_time"};
	for (int i = 0; i < 5; i++) {
		char name[80];
		snprintf(name, sizeof name, "vllm:%s_seconds", lats[i]);
		hist(b, name, "Histogram of a request phase in seconds.", lat, 21, MODEL_LABELS);
	}
	hist(b, "vllm:request_prompt_tokens", "Number of prefill tokens processed.", tok, 14,
	     MODEL_LABELS);
	hist(b, "vllm:request_generation_tokens", "Number of generation tokens processed.", tok, 14,
	     MODEL_LABELS);
	hist(b, "vllm:request_max_num_generation_tokens",
	     "Histogram of maximum number of requested generation tokens.", tok, 14, MODEL_LABELS);
	hist(b, "vllm:request_params_n", "Histogram of the n request parameter.", n, 5,
	     MODEL_LABELS);
	hist(b, "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
	     tok, 14, MODEL_LABELS);
	cache_config(b);
	static const char *const handlers[] = {"/v1/completions", "/v1/chat/completions",
					       "/metrics", "/health"};
	family(b, "http_requests_total", "counter",
	       "Total number of requests by method, status and "
	       "handler.");
	for (int i = 0; i < 4; i++)
		put(b, "http_requests_total{handler=\"%s\",method=\"%s\",status=\"2xx\"} %d.0\n",
		    handlers[i], i < 2 ? "POST" : "GET", 4000 + i);
	for (int i = 0; i < 4; i++) {
		char labels[128];
		snprintf(labels, sizeof labels, "handler=\"%s\",method=\"%s\"", handlers[i],
			 i < 2 ? "POST" : "GET");
		static const double le4[] = {0.1, 0.5, 1.0};
		hist(b, "http_request_duration_seconds",
		     "Latency with only few buckets by handler.", le4, 3, labels);
	}
	hist(b, "http_request_duration_highr_seconds",
	     "Latency with many buckets but no API specific labels.", http_le, 21,
	     "method=\"all\"");
}

/* What vLLM answers to /metrics?name[]=... for the five families the
 * picker reads (prometheus_client's restricted registry), and with
 * cache_config_info when the query names it too. */
static void vllm_filtered_page(struct ig_buf *b, bool with_cache, double kv)
{
	gauge(b, "vllm:num_requests_running", "Number of requests in model execution batches.", 37);
	gauge(b, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", 4);
	gauge(b, "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", kv);
	gauge(b, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv);
	family(b, "vllm:lora_requests_info", "gauge", "Running stats on lora requests.");
	put(b, "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"tweet-summary-0,"
	       "tweet-summary-1\",waiting_lora_adapters=\"\"} 1.7339876549e+09\n");
	if (with_cache)
		cache_config(b);
}

/* The simulator's page, with LoRA adapters and a few requests seen. */
static void sim_page(struct ig_buf *b)
{
	struct ig_sim_config c;
	char err[256];
	ig_sim_config_init(&c);
	char *argv[] = {"sim",
			"--model",
			"meta-llama/Llama-3.1-8B-Instruct",
			"--enable-lora",
			"--max-loras",
			"4",
			"--lora-modules",
			"tweet-summary-0=/adapters/0",
			"tweet-summary-1=/adapters/1"};
	if (ig_sim_parse_args(&c, (int)(sizeof argv / sizeof argv[0]), argv, err, sizeof err) < 0) {
		fprintf(stderr, "sim args: %s\n", err);
		exit(1);
	}
	struct ig_sim_stats s = {0};
	size_t nt, ne;
	const double *tb = ig_sim_ttft_buckets(c.version, &nt);
	const double *eb = ig_sim_e2e_buckets(c.version, &ne);
	for (int i = 0; i < 200; i++) {
		ig_sim_hist_observe(&s.ttft, tb, nt, 0.01 * (i % 50));
		ig_sim_hist_observe(&s.e2e, eb, ne, 0.2 * (i % 40));
	}
	s.prompt_tokens = 123456;
	s.generation_tokens = 45678;
	s.success[0] = 180;
	s.success_seen[0] = true;
	if (ig_sim_lora_note(&s, "tweet-summary-0,tweet-summary-1", "", 1.7e9) < 0)
		die("lora");
	struct ig_sim_gauges g = {37, 4, 0.4375};
	if (ig_sim_render_metrics(b, &c, &s, &g) < 0)
		die("render");
	ig_sim_stats_free(&s);
	ig_sim_config_free(&c);
}

/* µs per ig_vllm_metrics_extract() of the page. */
static double parse_us(const struct ig_buf *page)
{
	struct ig_endpoint_metrics m = {0};
	int found = ig_vllm_metrics_extract(page->ptr, page->len, IG_LORA_NEWEST, &m);
	unsigned want = IG_FAM_WAITING | IG_FAM_RUNNING | IG_FAM_KV | IG_FAM_LORA;
	if (found < 0 || ((unsigned)found & want) != want || m.waiting != 4 || m.running != 37) {
		fprintf(stderr, "the page does not parse as expected (%d)\n", found);
		exit(1);
	}
	long n = 0;
	double t0 = now_s(CLOCK_MONOTONIC), t;
	do {
		for (int i = 0; i < 200; i++, n++)
			ig_vllm_metrics_extract(page->ptr, page->len, IG_LORA_NEWEST, &m);
	} while ((t = now_s(CLOCK_MONOTONIC)) - t0 < 1.0);
	return (t - t0) / (double)n * 1e6;
}

/* ---- the page server ----------------------------------------------------------- */

struct conn {
	int fd;
	char in[2048];
	size_t inlen;
	size_t out;		   /* bytes of the response written; SIZE_MAX: none pending */
	const struct ig_buf *resp; /* being written */
	unsigned answered;
};

struct server {
	int ep;
	size_t n;
	int *listeners;
	char **addrs;
	struct ig_buf resp; /* head and page */
	/* To a query with name[] (empty: as resp), and to one naming
	 * cache_config_info too; the second of each pair differs in one
	 * figure, and a connection gets them in turn when vary is set. */
	struct ig_buf resp_filtered[2];
	struct ig_buf resp_cache[2];
	bool vary;
	atomic_ulong served;
	atomic_int stop;
};

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void server_listen(struct server *sv, size_t n)
{
	sv->n = n;
	sv->listeners = calloc(n, sizeof(int));
	sv->addrs = calloc(n, sizeof(char *));
	if (!sv->listeners || !sv->addrs)
		die("calloc");
	sv->ep = epoll_create1(0);
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr =
		    htonl((127u << 24) | (77u << 16) | (unsigned)((i + 256) & 0xffff));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		socklen_t len = sizeof sa;
		if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
			die("listen");
		nonblock(fd);
		char buf[64];
		snprintf(buf, sizeof buf, "%s:%u", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
		sv->addrs[i] = strdup(buf);
		sv->listeners[i] = fd;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
		epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

/* Writes what is left of the response; true when done. */
static int flush_resp(struct server *sv, struct conn *c)
{
	const struct ig_buf *r = c->resp;
	while (c->out < r->len) {
		ssize_t w = write(c->fd, r->ptr + c->out, r->len - c->out);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out += (size_t)w;
	}
	c->out = SIZE_MAX;
	atomic_fetch_add(&sv->served, 1);
	return 1;
}

static void conn_event(struct server *sv, struct conn *c, unsigned events)
{
	if (c->out != SIZE_MAX) {
		int rc = flush_resp(sv, c);
		if (rc < 0)
			goto close;
		if (rc == 0)
			return;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(sv->ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			goto close;
		if (r < 0)
			return;
		c->inlen += (size_t)r;
		char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
		if (!end) {
			if (c->inlen == sizeof c->in)
				goto close;
			continue;
		}
		size_t used = (size_t)(end + 4 - c->in);
		c->resp = &sv->resp;
		unsigned k = sv->vary ? c->answered++ & 1u : 0;
		if (sv->resp_filtered[0].len && memmem(c->in, used, "?name%5B%5D=", 12))
			c->resp = memmem(c->in, used, "cache_config_info", 17)
				      ? &sv->resp_cache[k]
				      : &sv->resp_filtered[k];
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		c->out = 0;
		int rc = flush_resp(sv, c);
		if (rc < 0)
			goto close;
		if (rc == 0) {
			struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
			epoll_ctl(sv->ep, EPOLL_CTL_MOD, c->fd, &ev);
			return;
		}
	}
close:
	epoll_ctl(sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void *server_run(void *arg)
{
	struct server *sv = arg;
	struct epoll_event evs[256];
	pthread_setname_np(pthread_self(), "pages");
	while (!atomic_load(&sv->stop)) {
		int n = epoll_wait(sv->ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 < sv->n) {
				int fd = accept(sv->listeners[evs[i].data.u64], NULL, NULL);
				if (fd < 0)
					continue;
				nonblock(fd);
				struct conn *c = calloc(1, sizeof *c);
				if (!c)
					die("calloc");
				c->fd = fd;
				c->out = SIZE_MAX;
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			conn_event(sv, evs[i].data.ptr, evs[i].events);
		}
	}
	return NULL;
}

/* ---- the floor: the socket work alone ---------------------------------------------- */

/* What any scraper pays here whatever its code: every 50 ms one send of
 * the request on each kept-alive connection, one recv per readiness,
 * epoll_wait; no HTTP, no parsing, no timers beyond one deadline. */
struct raw {
	struct server *sv;
	const char *req;
	size_t reqlen, resplen;
	atomic_int stop;
};

static void *raw_run(void *arg)
{
	struct raw *r = arg;
	pthread_setname_np(pthread_self(), "raw");
	size_t n = r->sv->n;
	int ep = epoll_create1(0);
	int *fd = calloc(n, sizeof *fd);
	size_t *got = calloc(n, sizeof *got);
	if (ep < 0 || !fd || !got)
		die("raw");
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		int one = 1;
		if (ig_sockaddr_parse(r->sv->addrs[i], &ss, &len) < 0 ||
		    (fd[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(fd[i], (struct sockaddr *)&ss, len) < 0)
			die("raw connect");
		setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		nonblock(fd[i]);
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
		got[i] = SIZE_MAX; /* idle */
	}
	static char buf[1 << 16];
	struct epoll_event evs[256];
	double next = now_s(CLOCK_MONOTONIC);
	while (!atomic_load(&r->stop)) {
		double t = now_s(CLOCK_MONOTONIC);
		if (t >= next) {
			for (size_t i = 0; i < n; i++)
				if (got[i] == SIZE_MAX &&
				    send(fd[i], r->req, r->reqlen, MSG_NOSIGNAL | MSG_DONTWAIT) ==
					(ssize_t)r->reqlen)
					got[i] = 0;
			next += 0.050;
			continue;
		}
		int k = epoll_wait(ep, evs, 256, (int)((next - t) * 1000) + 1);
		for (int e = 0; e < k; e++) {
			size_t i = evs[e].data.u64;
			ssize_t m = recv(fd[i], buf, sizeof buf, 0);
			if (m > 0 && got[i] != SIZE_MAX && (got[i] += (size_t)m) >= r->resplen)
				got[i] = SIZE_MAX;
		}
	}
	for (size_t i = 0; i < n; i++)
		close(fd[i]);
	close(ep);
	free(fd);
	free(got);
	return NULL;
}

static void response(struct ig_buf *r, const struct ig_buf *page);
static double thread_cpu_s(pthread_t t);

/* The floor against n endpoints answering the filtered page. */
static void raw_floor(size_t n, double seconds, const struct ig_buf *filtered)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 3 * n + 64) {
		rl.rlim_cur = rl.rlim_max < 3 * n + 64 ? rl.rlim_max : 3 * n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct server sv = {0};
	response(&sv.resp, filtered);
	server_listen(&sv, n);
	char req[256];
	int reqlen = snprintf(req, sizeof req,
			      "GET /metrics?name%%5B%%5D=vllm:num_requests_waiting HTTP/1.1\r\n"
			      "Host: %s\r\nAccept: text/plain\r\nUser-Agent: infergate\r\n\r\n",
			      sv.addrs[0]);
	struct raw r = {.sv = &sv, .req = req, .reqlen = (size_t)reqlen, .resplen = sv.resp.len};
	pthread_t tr, tv;
	pthread_create(&tv, NULL, server_run, &sv);
	pthread_create(&tr, NULL, raw_run, &r);
	struct timespec warm = {1, 0};
	nanosleep(&warm, NULL);
	double c0 = thread_cpu_s(tr), v0 = thread_cpu_s(tv), w0 = now_s(CLOCK_MONOTONIC);
	unsigned long s0 = atomic_load(&sv.served);
	struct timespec run = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&run, NULL);
	double c1 = thread_cpu_s(tr), v1 = thread_cpu_s(tv), w1 = now_s(CLOCK_MONOTONIC);
	unsigned long s1 = atomic_load(&sv.served);
	atomic_store(&r.stop, 1);
	pthread_join(tr, NULL);
	atomic_store(&sv.stop, 1);
	pthread_join(tv, NULL);
	double wall = w1 - w0, pages = (double)(s1 - s0);
	printf("| the floor: send, epoll, recv alone | %zu | %.0f | %.0f | %.1f %% | %.1f | %.1f "
	       "%% |\n",
	       n, pages / wall, (double)n * 20.0, 100.0 * (c1 - c0) / wall,
	       pages > 0 ? (c1 - c0) / pages * 1e6 : 0.0, 100.0 * (v1 - v0) / wall);
	for (size_t i = 0; i < n; i++) {
		close(sv.listeners[i]);
		free(sv.addrs[i]);
	}
	free(sv.listeners);
	free(sv.addrs);
	close(sv.ep);
	ig_buf_free(&sv.resp);
}

/* ---- the scraper on a thread of its own ------------------------------------------ */

struct scraping {
	struct ig_loop loop;
	struct ig_scraper *scraper;
	struct ig_endpoints *reg;
	struct ig_endpoint **eps;
	size_t n;
};

static void *scraper_run(void *arg)
{
	struct scraping *s = arg;
	pthread_setname_np(pthread_self(), "scraper");
	ig_scraper_start(s->scraper);
	ig_loop_run(&s->loop);
	return NULL;
}

static void stop_loop(struct ig_loop *loop, void *arg)
{
	(void)arg;
	ig_loop_stop(loop);
}

static double thread_cpu_s(pthread_t t)
{
	clockid_t id;
	if (pthread_getcpuclockid(t, &id) != 0)
		die("pthread_getcpuclockid");
	return now_s(id);
}

static void response(struct ig_buf *r, const struct ig_buf *page)
{
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4; "
			  "charset=utf-8\r\ncontent-length: %zu\r\n\r\n",
			  page->len);
	ig_buf_init(r, 1 << 20);
	if (ig_buf_append(r, head, (size_t)hl) < 0 || ig_buf_append(r, page->ptr, page->len) < 0)
		die("response");
}

/* The scraper against n endpoints serving page, or filtered[] (when not
 * NULL) to the name[] queries, with_cache[] to those naming
 * cache_config_info: the first of each pair, or both in turn when vary. */
static void scrape_run(size_t n, double seconds, const struct ig_buf *page,
		       const struct ig_buf *filtered, const struct ig_buf *with_cache, bool vary)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 3 * n + 64) {
		rl.rlim_cur = rl.rlim_max < 3 * n + 64 ? rl.rlim_max : 3 * n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct server sv = {0};
	response(&sv.resp, page);
	if (filtered) {
		for (int k = 0; k < 2; k++) {
			response(&sv.resp_filtered[k], &filtered[k]);
			response(&sv.resp_cache[k], &with_cache[k]);
		}
		sv.vary = vary;
	}
	server_listen(&sv, n);
	struct scraping s = {.n = n};
	if (ig_loop_init(&s.loop) < 0)
		die("loop");
	s.reg = ig_endpoints_new(1);
	s.eps = calloc(n, sizeof(*s.eps));
	for (size_t i = 0; i < n; i++)
		if (!(s.eps[i] = ig_endpoint_get(s.reg, sv.addrs[i])))
			die("endpoint");
	struct ig_scraper_config cfg = {.interval_ms = 50};
	s.scraper = ig_scraper_new(&s.loop, &cfg);
	if (!s.scraper || ig_scraper_set(s.scraper, s.eps, n) < 0)
		die("scraper");
	pthread_t ts, tv;
	pthread_create(&tv, NULL, server_run, &sv);
	pthread_create(&ts, NULL, scraper_run, &s);
	struct timespec warm = {1, 0};
	nanosleep(&warm, NULL);
	double c0 = thread_cpu_s(ts), v0 = thread_cpu_s(tv), w0 = now_s(CLOCK_MONOTONIC);
	unsigned long s0 = atomic_load(&sv.served);
	struct timespec run = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&run, NULL);
	double c1 = thread_cpu_s(ts), v1 = thread_cpu_s(tv), w1 = now_s(CLOCK_MONOTONIC);
	unsigned long s1 = atomic_load(&sv.served);
	ig_loop_post(&s.loop, stop_loop, NULL);
	pthread_join(ts, NULL);
	atomic_store(&sv.stop, 1);
	pthread_join(tv, NULL);
	double wall = w1 - w0, pages = (double)(s1 - s0);
	printf("| %s | %zu | %.0f | %.0f | %.1f %% | %.1f | %.1f %% |\n",
	       !filtered ? "vLLM-like, ignores name[], same page"
	       : vary	 ? "vLLM-like, answers name[], page changes"
			 : "vLLM-like, answers name[], same page",
	       n, pages / wall, (double)n * 1000.0 / (double)cfg.interval_ms,
	       100.0 * (c1 - c0) / wall, pages > 0 ? (c1 - c0) / pages * 1e6 : 0.0,
	       100.0 * (v1 - v0) / wall);
	size_t fresh = 0;
	for (size_t i = 0; i < n; i++) {
		struct ig_endpoint_load l;
		ig_endpoint_read_load(s.eps[i], &l);
		struct ig_cache_config cache;
		ig_endpoint_read_cache(s.eps[i], &cache);
		fresh += l.updated_ns != 0 && l.waiting == 4 && l.running == 37 &&
			 cache.block_tokens == 16 && cache.gpu_blocks == 27356;
	}
	if (fresh != n)
		printf("(only %zu of %zu endpoints have the page's figures)\n", fresh, n);
	ig_scraper_free(s.scraper);
	ig_loop_free(&s.loop);
	for (size_t i = 0; i < n; i++) {
		ig_endpoint_put(s.eps[i]);
		close(sv.listeners[i]);
		free(sv.addrs[i]);
	}
	ig_endpoints_free(s.reg);
	free(s.eps);
	free(sv.listeners);
	free(sv.addrs);
	close(sv.ep);
	ig_buf_free(&sv.resp);
	for (int k = 0; k < 2; k++) {
		ig_buf_free(&sv.resp_filtered[k]);
		ig_buf_free(&sv.resp_cache[k]);
	}
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	double seconds = argc > 2 ? strtod(argv[2], NULL) : 5.0;
	struct ig_buf sim, vllm, filtered[2], with_cache[2];
	ig_buf_init(&sim, 1 << 20);
	ig_buf_init(&vllm, 1 << 20);
	sim_page(&sim);
	vllm_page(&vllm);
	for (int k = 0; k < 2; k++) {
		ig_buf_init(&filtered[k], 1 << 20);
		ig_buf_init(&with_cache[k], 1 << 20);
		vllm_filtered_page(&filtered[k], false, k ? 0.4380 : 0.4375);
		vllm_filtered_page(&with_cache[k], true, k ? 0.4380 : 0.4375);
	}
	if (argc > 1 && strcmp(argv[1], "page") == 0) { /* what the pods serve */
		fwrite(vllm.ptr, 1, vllm.len, stdout);
		return 0;
	}
	printf("Parsing one /metrics page (ig_vllm_metrics_extract):\n\n");
	printf("| page | bytes | µs per page | 1024 endpoints every 50 ms: share of a core |\n");
	printf("|---|---:|---:|---:|\n");
	const struct ig_buf *pages[] = {&sim, &vllm, &filtered[0], &with_cache[0]};
	const char *names[] = {"infergate sim", "vLLM 0.9-like", "vLLM, name[] filtered",
			       "the same with cache_config_info"};
	for (int i = 0; i < 4; i++) {
		double us = parse_us(pages[i]);
		printf("| %s | %zu | %.1f | %.1f %% |\n", names[i], pages[i]->len, us,
		       us * 1024 * 20 / 1e6 * 100);
	}
	printf("\nThe scraper (pool/scrape.c) on a thread of its own, every 50 ms, over loopback, "
	       "%.0f s measured each:\n\n",
	       seconds);
	printf("| pods | endpoints | pages/s | pages/s asked | scraper thread CPU | µs of CPU per "
	       "page | page server CPU |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|\n");
	const char *which = argc > 3 ? argv[3] : "both";
	bool all = strcmp(which, "both") == 0 || strcmp(which, "all") == 0;
	if (all || strcmp(which, "named") == 0)
		scrape_run(n, seconds, &vllm, filtered, with_cache, true);
	if (all || strcmp(which, "same") == 0)
		scrape_run(n, seconds, &vllm, filtered, with_cache, false);
	if (all || strcmp(which, "plain") == 0)
		scrape_run(n, seconds, &vllm, NULL, NULL, false);
	if (all || strcmp(which, "floor") == 0)
		raw_floor(n, seconds, &filtered[0]);
	ig_buf_free(&sim);
	ig_buf_free(&vllm);
	for (int k = 0; k < 2; k++) {
		ig_buf_free(&filtered[k]);
		ig_buf_free(&with_cache[k]);
	}
	return 0;
}
