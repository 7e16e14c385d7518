/* libFuzzer target for the simulator's handling of peer input.
 *
 * The request checks (model, stream, stream_options, n, max_tokens,
 * messages, prompt, LoRA admin and /sim/state bodies) are static functions
 * of sim_main.c, reachable only through its HTTP handler. This file
 * therefore includes sim_main.c, renaming its one external symbol so that
 * the copy linked from the library does not clash, and runs a complete
 * simulator (engine, server, event loop) per input with every delay at 0,
 * so that a request is answered within a few hundred loop passes and
 * nothing waits on the clock.
 *
 * Input: one control byte, then the payload.
 *   control % 8 == 0  the payload is one --lora-modules item
 *               == 1  the payload is a command line, arguments split on NUL
 *               == 2  the payload is text for the tokenizer
 *               else  HTTP: the payload is up to 6 requests split on NUL,
 *                     each "<op><body>" with op c (completions), h (chat),
 *                     l (load LoRA), u (unload LoRA), s (POST /sim/state),
 *                     d (DELETE /sim/state), m (models), x (metrics), any
 *                     other byte POSTs the body to that byte as a path.
 *   bit 3  --vllm-version 0.8 instead of the latest error and metric shapes
 *   bit 4  the client closes right after sending (aborts in-flight work)
 *
 * Everything the simulator answers is checked: every response parses, JSON
 * bodies and every SSE event are valid JSON, and /metrics (always asked
 * last) is valid Prometheus text. */
#define ig_sim_main fuzz_sim_main_copy
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "sim/sim_main.c"
#pragma GCC diagnostic pop
#undef ig_sim_main

#include <stdint.h>
#include <sys/un.h>

#include "core/log.h"
#include "http/parse.h"
#include "pool/prom.h"

#define MAX_REQUESTS 6
#define MAX_PASSES 4096
#define MAX_RECEIVED (4 << 20)

enum { F_V08 = 1 << 3, F_CLOSE_EARLY = 1 << 4 };

/* ---- pure functions ------------------------------------------------------------ */

static void fuzz_lora_item(const char *s)
{
	struct ig_sim_adapter a;
	struct ig_sim_config c;
	char err[256];

	if (ig_sim_parse_lora_module(s, &a, err, sizeof err) < 0)
		return;
	if (!a.name || !a.name[0] || !a.path)
		abort();
	/* The adapter goes through the same table the server uses. */
	ig_sim_config_init(&c);
	struct ig_str name = ig_str_from(a.name);
	struct ig_str base = a.base ? ig_str_from(a.base) : (struct ig_str){NULL, 0};
	if (ig_sim_add_adapter(&c, name, ig_str_from(a.path), base) != 0 ||
	    ig_sim_add_adapter(&c, name, IG_STR("/x"), base) != -EEXIST ||
	    ig_sim_find_adapter(&c, name) != 0 || ig_sim_remove_adapter(&c, name) != 0 ||
	    ig_sim_find_adapter(&c, name) >= 0)
		abort();
	ig_sim_config_free(&c);
	free(a.name);
	free(a.path);
	free(a.base);
}

/* argv from NUL-separated words; "--help" is left out (it prints usage). */
static void fuzz_args(char *p, size_t len)
{
	char *argv[64] = {"sim"};
	int argc = 1;
	char err[512];
	struct ig_sim_config c;

	for (char *end = p + len; p < end && argc < 64; p += strlen(p) + 1)
		if (strcmp(p, "--help") != 0 && strcmp(p, "-h") != 0)
			argv[argc++] = p;
	ig_sim_config_init(&c);
	int rc = ig_sim_parse_args(&c, argc, argv, err, sizeof err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0 && (c.max_loras < 1 || c.block_size < 1 || c.num_gpu_blocks < 1))
		abort();
	if (rc == -1 && !memchr(err, '\0', sizeof err))
		abort();
	ig_sim_config_free(&c);
}

static void fuzz_tokens(const char *p, size_t len)
{
	struct ig_str s = {p, len};
	if (ig_sim_count_tokens(s) > len)
		abort();
	(void)ig_sim_text_seed(s, IG_STR("m"), 1);
}

/* ---- checking what came back ------------------------------------------------------ */

static int prom_sample(void *ctx, const struct ig_prom_sample *s)
{
	return 0;
}

static void check_json(const char *p, size_t len)
{
	struct ig_json_value v;
	if (ig_json_parse(p, len, &v) < 0)
		abort();
}

/* Every "data: " line of an event stream is JSON or [DONE]. */
static void check_sse(const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 6 && memcmp(p, "data: ", 6) == 0 &&
		    !(n == 12 && memcmp(p + 6, "[DONE]", 6) == 0))
			check_json(p + 6, n - 6);
		p += n + 1;
	}
}

static void check_body(const struct ig_http_response *res, const char *body, size_t len)
{
	const struct ig_http_header *ct =
	    ig_http_find_header(res->headers, res->num_headers, "Content-Type");
	struct ig_str type = ct ? ct->value : (struct ig_str){"", 0};

	if (ig_str_has_prefix(type, IG_STR("application/json")))
		check_json(body, len);
	else if (ig_str_has_prefix(type, IG_STR("text/event-stream")))
		check_sse(body, len);
	else if (ig_str_has_prefix(type, IG_STR("text/plain; version=0.0.4")) &&
		 ig_prom_parse(body, len, prom_sample, NULL, NULL) != 0)
		abort();
}

/* Parses the responses in buf (modified: chunked bodies are decoded in
 * place) and returns how many were complete. */
static size_t check_responses(char *p, size_t len)
{
	struct ig_http_header hdrs[32];
	struct ig_http_response res;
	struct ig_http_framing f;
	size_t count = 0;

	while (len) {
		int n = ig_http_parse_response(p, len, &res, hdrs, 32);
		if (n == IG_HTTP_INCOMPLETE)
			break;
		if (n <= 0 || ig_http_response_framing(&res, IG_STR("POST"), &f) < 0)
			abort();
		char *body = p + n;
		size_t left = len - (size_t)n, blen = 0, used = 0;
		if (f.kind == IG_BODY_LENGTH) {
			if (left < f.length)
				break;
			blen = used = (size_t)f.length;
		} else if (f.kind == IG_BODY_CHUNKED) {
			struct ig_chunked_decoder d = {0};
			size_t dec = left;
			ssize_t rest = ig_chunked_decode(&d, body, &dec);
			if (rest == IG_HTTP_INCOMPLETE)
				break;
			if (rest < 0)
				abort();
			/* The decoder leaves the next message right after the
			 * decoded body. */
			blen = used = dec;
			left = dec + (size_t)rest;
		} else if (f.kind == IG_BODY_UNTIL_CLOSE) {
			abort(); /* the client speaks HTTP/1.1 */
		}
		check_body(&res, body, blen);
		count++;
		p = body + used;
		len = left - used;
	}
	return count;
}

/* ---- a simulator per input -------------------------------------------------------------- */

static char *sim_argv[] = {
    "sim",		      "--model",
    "base",		      "--served-model-name",
    "base",		      "alias",
    "--enable-lora",	      "--max-loras",
    "1",		      "--lora-modules",
    "a1=/p",		      "{\"name\":\"a2\",\"path\":\"/q\",\"base_model_name\":\"alias\"}",
    "--max-model-len",	      "128",
    "--max-num-seqs",	      "2",
    "--num-gpu-blocks",	      "16",
    "--block-size",	      "4",
    "--ttft-ms",	      "0",
    "--prefill-us-per-token", "0",
    "--itl-ms",		      "0",
    "--lora-load-ms",	      "0",
    "--seed",		      "7",
    "--vllm-version",	      "latest",
};

static int listen_fd = -1;
static struct sockaddr_un listen_addr;
static socklen_t listen_len;

static void listen_once(void)
{
	struct sockaddr_un any = {.sun_family = AF_UNIX};
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Binding only the family autobinds a unique abstract address. */
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&any, sizeof(sa_family_t)) < 0 ||
	    listen(listen_fd, 16) < 0)
		abort();
	listen_len = sizeof listen_addr;
	if (getsockname(listen_fd, (struct sockaddr *)&listen_addr, &listen_len) < 0)
		abort();
}

static int sim_start(struct sim *s, bool v08)
{
	char err[512];
	int argc = (int)(sizeof sim_argv / sizeof sim_argv[0]);

	memset(s, 0, sizeof *s);
	ig_sim_config_init(&s->cfg);
	sim_argv[argc - 1] = v08 ? "0.8" : "latest";
	if (ig_sim_parse_args(&s->cfg, argc, sim_argv, err, sizeof err) != 0)
		abort();
	ig_rng_seed(&s->rng, s->cfg.seed);
	if (ig_loop_init(&s->loop) < 0 || ig_sim_engine_init(s) < 0)
		abort();
	ig_sim_lora_note(&s->stats, "", "", 0);
	ig_sim_lora_update(s);
	int fd = dup(listen_fd);
	s->server = fd >= 0 ? ig_http_server_new(&s->loop, fd, NULL, handle, s) : NULL;
	if (!s->server)
		abort();
	return 0;
}

static void sim_stop(struct sim *s)
{
	ig_http_server_free(s->server);
	if (s->model.running.len || s->model.waiting.len)
		abort(); /* aborted exchanges must leave the engine */
	ig_loop_free(&s->loop);
	ig_sim_engine_free(s);
	ig_sim_config_free(&s->cfg);
}

static void on_tick(struct ig_loop *loop, struct ig_timer *t)
{
	ig_loop_stop(loop);
}

static void pass(struct sim *s, struct ig_timer *tick)
{
	ig_timer_start_ns(&s->loop, tick, 0, on_tick, NULL);
	if (ig_loop_run(&s->loop) < 0)
		abort();
}

/* Appends what the server sent; false once it has closed. */
static bool receive(int fd, struct ig_buf *in)
{
	for (;;) {
		if (ig_buf_reserve(in, 65536) < 0)
			abort(); /* far more than any answer here */
		ssize_t n = recv(fd, in->ptr + in->len, 65536, MSG_DONTWAIT);
		if (n > 0) {
			in->len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
}

static const char *path_of(char op, char other[5])
{
	switch (op) {
	case 'c':
		return "/v1/completions";
	case 'h':
		return "/v1/chat/completions";
	case 'l':
		return "/v1/load_lora_adapter";
	case 'u':
		return "/v1/unload_lora_adapter";
	case 's':
	case 'd':
		return "/sim/state";
	case 'm':
		return "/v1/models";
	case 'x':
		return "/metrics";
	default:
		/* Percent-encoded so that any byte still makes a valid target. */
		snprintf(other, 5, "/%%%02X", (unsigned char)op);
		return other;
	}
}

/* Builds the pipelined requests; returns how many. */
static size_t build_requests(struct ig_buf *out, const char *p, size_t len)
{
	const char *end = p + len;
	size_t n = 0;
	char other[5];

	while (p < end && n < MAX_REQUESTS) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t seg = nul ? (size_t)(nul - p) : (size_t)(end - p);
		if (seg) {
			char op = p[0];
			const char *method = op == 'd' ? "DELETE" : (op == 'm' || op == 'x') ? "GET"
											     : "POST";
			ig_buf_printf(out,
				      "%s %s HTTP/1.1\r\nHost: sim\r\nX-Request-Id: fuzz\r\n"
				      "Content-Length: %zu\r\n\r\n",
				      method, path_of(op, other), seg - 1);
			ig_buf_append(out, p + 1, seg - 1);
			n++;
		}
		p += seg + 1;
	}
	ig_buf_append_cstr(out, "GET /metrics HTTP/1.1\r\nHost: sim\r\n\r\n");
	return n + 1;
}

static void fuzz_http(const char *p, size_t len, unsigned flags)
{
	struct sim s;
	struct ig_timer tick = {0};
	struct ig_buf req = {0}, in = {0};

	ig_buf_init(&in, MAX_RECEIVED);

	sim_start(&s, flags & F_V08);
	size_t nreq = build_requests(&req, p, len);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&listen_addr, listen_len) < 0)
		abort();
	pass(&s, &tick); /* accept */

	size_t off = 0;
	bool open = true;
	for (int i = 0; i < MAX_PASSES; i++) {
		if (off < req.len) {
			ssize_t n = send(fd, req.ptr + off, req.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = req.len; /* the server closed on us */
		}
		if (off == req.len && (flags & F_CLOSE_EARLY) && open) {
			close(fd);
			open = false;
		}
		pass(&s, &tick);
		size_t before = in.len;
		if (open && !receive(fd, &in))
			break;
		bool idle = s.model.running.len == 0 && s.model.waiting.len == 0;
		if (off == req.len && idle && (!open || in.len == before) && i > 2)
			break;
	}
	if (open)
		close(fd);
	pass(&s, &tick);
	ig_timer_stop(&s.loop, &tick);
	sim_stop(&s);

	size_t got = check_responses(in.ptr, in.len);
	/* Without an early close every request is answered, /metrics last. */
	if (!(flags & F_CLOSE_EARLY) && got != nreq)
		abort();
	ig_buf_free(&req);
	ig_buf_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned flags = data[0];
	char *copy = malloc(size);
	if (!copy)
		abort();
	/* The payload, NUL-terminated in place of the control byte. */
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';

	if (listen_fd < 0) {
		ig_log_level = IG_LOG_ERROR;
		listen_once();
	}
	switch (flags % 8) {
	case 0:
		fuzz_lora_item(copy);
		break;
	case 1:
		fuzz_args(copy, size - 1);
		break;
	case 2:
		fuzz_tokens(copy, size - 1);
		break;
	default:
		fuzz_http(copy, size - 1, flags);
		break;
	}
	free(copy);
	return 0;
}
