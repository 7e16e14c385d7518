/* libFuzzer target for the upstream client's h2c mode (http/client_h2.c):
 * the fuzzer plays the model server. Each input gets a fresh loop and an
 * h2c client that connects to a loopback listener of the harness and sends
 * a request (a GET, or a POST with a body in several spans); the harness
 * writes the input as the server's bytes, in pieces, running the loop in
 * between and reading whatever the client sends.
 *
 * Input: one control byte, then the server's bytes.
 *   bits 0-1  number of pieces, minus one
 *   bit 2     the harness closes its end after the last piece
 *   bit 3     the owner pauses on every body piece and resumes between
 *             pieces of input
 *   bit 4     the owner closes the client inside on_head
 *   bit 5     the request is a POST with a body (else a GET)
 *   bit 6     a response that ends with a reusable connection is
 *             followed by a second request on it (after parking it)
 *   bit 7     the close of bit 2 is a reset
 *
 * What the callbacks see is checked: one head at most per request, body
 * only after it, never more body than the announced length and exactly
 * that length when the response ends, no callback after the end, a
 * failure after a head is never "early", a head within the client's
 * ceiling. ASan/UBSan and LeakSanitizer do the rest: every input ends with
 * the client closed. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event/loop.h"
#include "http/client.h"
#include "peer.h"

#define MAX_ITERATIONS 64

struct harness {
	struct ig_loop loop;
	struct ig_http_client *c;
	unsigned long progress;
	bool pause_on_body, close_in_head, reuse, is_head;
	int requests;
	/* The request in flight. */
	int nhead;
	bool ended;
	int64_t body_length;
	uint64_t body;
	bool done_reusable; /* its response ended on a reusable connection */
};

static struct harness *H;
static int listen_fd = -1;
static int port;

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void close_client(void)
{
	ig_http_client_close(H->c);
	H->c = NULL;
}

static void on_idle(struct ig_http_client *c, void *ud)
{
	check(c == H->c);
	close_client();
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	H->progress++;
	check(c == H->c && !H->ended && H->nhead == 0);
	H->nhead++;
	check(res->status >= 200 && res->status <= 999);
	check(res->num_headers <= 100);
	for (size_t i = 0; i < res->num_headers; i++)
		check(res->headers[i].name.len > 0);
	H->body_length = ig_http_client_body_length(c);
	check(H->body_length >= -1);
	if (H->close_in_head)
		close_client();
	return 0;
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	H->progress++;
	check(c == H->c && !H->ended && H->nhead == 1 && len > 0);
	H->body += len;
	check(H->body_length < 0 || H->body <= (uint64_t)H->body_length);
	return H->pause_on_body ? 1 : 0;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	H->progress++;
	check(c == H->c && !H->ended && H->nhead == 1);
	H->ended = true;
	check(H->body_length < 0 || H->is_head || H->body == (uint64_t)H->body_length);
	if (H->reuse && ig_http_client_reusable(c)) {
		H->done_reusable = true;
		ig_http_client_park(c, on_idle, H);
		return;
	}
	close_client();
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	H->progress++;
	check(c == H->c && !H->ended);
	H->ended = true;
	check(f->kind >= IG_CLIENT_CONNECT && f->kind <= IG_CLIENT_TIMEOUT);
	if (H->nhead)
		check(f->got_byte && f->kind != IG_CLIENT_EARLY && !f->refused);
	if (f->refused)
		check(f->kind == IG_CLIENT_EARLY);
	close_client();
}

static const struct ig_http_client_cbs cbs = {on_head, on_body, on_done, on_error, NULL};

/* The next request on H->c: a fresh stream of the callbacks' view. */
static void send_request(bool post)
{
	static const char get[] = "GET /v1/models HTTP/1.1\r\nHost: pod:8000\r\n"
				  "Connection: keep-alive\r\nX-Request-Id: 1\r\n\r\n";
	static const struct ig_str post_parts[] = {
	    IG_STR("POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
		   "Content-Length: 42\r\n"),
	    IG_STR("Host: 127.0.0.1:8000\r\n\r\n"),
	    IG_STR("{\"model\":\"m\","),
	    IG_STR("\"prompt\":\"hello there\","),
	    IG_STR("\"n\":1}"),
	};
	H->nhead = 0;
	H->ended = false;
	H->body = 0;
	H->body_length = -1;
	H->done_reusable = false;
	H->is_head = false;
	H->requests++;
	int rc = post ? ig_http_client_sendv(H->c, post_parts, 5, false, 60000, &cbs, H)
		      : ig_http_client_send(H->c, get, sizeof get - 1, false, 60000, &cbs, H);
	/* The spans are a valid request: only a spent connection refuses. */
	if (rc < 0) {
		check(H->requests > 1);
		close_client();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness h = {0};
	unsigned flags = size ? data[0] : 0;
	size_t pieces = (flags & 3) + 1;
	data += size != 0;
	size -= size != 0;
	if (listen_fd < 0)
		listen_fd = peer_listen_tcp(&port);
	H = &h;
	if (ig_loop_init(&h.loop) < 0)
		abort();
	struct peer_loop pl = {&h.loop, &h.progress, MAX_ITERATIONS};
	h.pause_on_body = flags & 8;
	h.close_in_head = flags & 16;
	h.reuse = flags & 64;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h.c = ig_http_client_connect_h2c(&h.loop, (struct sockaddr *)&sin, sizeof sin, 5000);
	if (!h.c)
		abort();
	send_request(flags & 32);

	int sfd = peer_accept(&pl, listen_fd);
	for (size_t i = 0; i < pieces; i++) {
		size_t from = size * i / pieces, to = size * (i + 1) / pieces;
		peer_send(&pl, sfd, data + from, to - from, true);
		peer_settle(&pl, sfd);
		if (h.c && h.pause_on_body)
			ig_http_client_pause(h.c, false);
		peer_settle(&pl, sfd);
		if (h.c && h.done_reusable && h.requests == 1)
			send_request(flags & 32);
	}
	if (flags & 4) {
		if (flags & 128)
			peer_close_rst(sfd);
		else
			close(sfd);
		sfd = -1;
		peer_settle(&pl, -1);
	}
	close_client();
	peer_settle(&pl, -1);
	if (sfd >= 0)
		peer_close_rst(sfd);
	ig_loop_free(&h.loop);
	return 0;
}
