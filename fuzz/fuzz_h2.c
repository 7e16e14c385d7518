/* libFuzzer target for the gRPC server (grpc/server.c, h2conn.c,
 * frame.c): the input is what a client sends on one connection, written
 * in pieces into the real server on a fresh event loop that is run one
 * iteration at a time (deterministic, no sleeping). The client never
 * reads what comes back until the end, and never opens its flow-control
 * window beyond what the input says, so the "stalled reader" paths run too.
 *
 * Input: one control byte, then the client's bytes.
 *   bit 0     the 24-byte preface and an empty SETTINGS go first (so the
 *             fuzzer need not find them)
 *   bits 1-2  number of pieces, minus one
 *   bit 3     ig_grpc_server_drain() after the first piece
 *   bit 4     the client shuts its write side at the end
 *   bit 5     ig_grpc_server_free() while the connection is still open
 *
 * Methods (any :path whose second byte picks one):
 *   /e...  echo each message; OK on half-close
 *   /f...  answer and finish at the first message (early closure)
 *   /b...  answer each message with 64 KiB (more than the peer's window)
 *   /h...  hold: never answer
 *   /x...  finish at open with an error and a message to escape
 *   /o...  echo, and a message over the ceiling is reported (on_oversize:
 *          answered, then every other one finishes the call)
 *
 * Ceilings are small (8 KiB messages, 2 KiB headers, 4 streams) so that
 * every limit is reachable. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "event/loop.h"
#include "grpc/grpc.h"
#include "peer.h"

#define MAX_ITERATIONS 256

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

struct harness {
	struct ig_loop loop;
	struct ig_grpc_server *srv;
	unsigned long progress;
	long open; /* streams opened minus ended */
};

static struct harness *H;
static int listen_fd = -1;
static struct sockaddr_un listen_addr;
static socklen_t listen_len;

static void on_open(struct ig_grpc_stream *s, void *arg)
{
	H->open++;
	H->progress++;
	struct ig_str p = ig_grpc_stream_header(s, ":path");
	if (p.len < 2 || p.ptr[0] != '/')
		abort();
	ig_grpc_stream_set_data(s, (void *)(uintptr_t)p.ptr[1]);
	if (p.ptr[1] == 'x')
		ig_grpc_finish(s, 9, "no \xff%\n");
}

static void on_message(struct ig_grpc_stream *s, const uint8_t *msg, size_t len)
{
	static const uint8_t block[64 * 1024];
	H->progress++;
	if (len > 8192)
		abort(); /* over the ceiling: must not be delivered */
	char mode = (char)(uintptr_t)ig_grpc_stream_data(s);
	switch (mode) {
	case 'f':
		ig_grpc_send(s, msg, len);
		ig_grpc_finish(s, 0, NULL);
		break;
	case 'b':
		ig_grpc_send(s, block, sizeof block);
		break;
	case 'h':
		break;
	default:
		ig_grpc_send(s, msg, len);
		break;
	}
}

static void on_oversize(struct ig_grpc_stream *s, size_t len)
{
	static unsigned n;
	H->progress++;
	if (len <= 8192)
		abort(); /* only messages over the ceiling are reported */
	ig_grpc_send(s, (const uint8_t *)"big", 3);
	if (n++ & 1)
		ig_grpc_finish(s, 8, "too large");
}

static void on_half_close(struct ig_grpc_stream *s)
{
	H->progress++;
	char mode = (char)(uintptr_t)ig_grpc_stream_data(s);
	if (mode != 'h')
		ig_grpc_finish(s, 0, NULL);
}

static void on_end(struct ig_grpc_stream *s, bool reset)
{
	H->progress++;
	H->open--;
}

static const struct ig_grpc_method methods[] = {
    {"/e", on_open, on_message, on_half_close, on_end, NULL, NULL},
    {"/f", on_open, on_message, on_half_close, on_end, NULL, NULL},
    {"/b", on_open, on_message, on_half_close, on_end, NULL, NULL},
    {"/h", on_open, on_message, on_half_close, on_end, NULL, NULL},
    {"/x", on_open, on_message, on_half_close, on_end, NULL, NULL},
    {"/o", on_open, on_message, on_half_close, on_end, NULL, on_oversize},
};

static void listen_once(void)
{
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un any = {.sun_family = AF_UNIX};
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&any, sizeof(sa_family_t)) < 0 ||
	    listen(listen_fd, 16) < 0)
		abort();
	listen_len = sizeof listen_addr;
	if (getsockname(listen_fd, (struct sockaddr *)&listen_addr, &listen_len) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness h = {0};
	unsigned flags = size ? data[0] : 0;
	size_t pieces = ((flags >> 1) & 3) + 1;
	data += size != 0;
	size -= size != 0;
	if (listen_fd < 0)
		listen_once();
	H = &h;
	if (ig_loop_init(&h.loop) < 0)
		abort();
	struct peer_loop pl = {&h.loop, &h.progress, MAX_ITERATIONS};
	struct ig_grpc_server_config cfg = {
	    .max_message_bytes = 8192,
	    .max_header_bytes = 2048,
	    .max_streams = 4,
	    .handshake_timeout_ms = 10000,
	    .idle_timeout_ms = 10000,
	};
	h.srv = ig_grpc_server_new(&h.loop, &cfg, methods, sizeof methods / sizeof methods[0]);
	if (!h.srv || ig_grpc_server_listen(h.srv, listen_fd) < 0)
		abort();
	int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&listen_addr, listen_len) < 0)
		abort();
	ig_loop_run_once(&h.loop, 0);
	if (flags & 1)
		peer_send(&pl, cfd, preface, sizeof preface - 1, false);
	for (size_t i = 0; i < pieces; i++) {
		size_t from = size * i / pieces, to = size * (i + 1) / pieces;
		peer_send(&pl, cfd, data + from, to - from, false);
		peer_settle(&pl, -1);
		if (i == 0 && (flags & 8))
			ig_grpc_server_drain(h.srv);
	}
	if (flags & 16)
		shutdown(cfd, SHUT_WR);
	peer_settle(&pl, -1);
	if (!(flags & 32)) {
		peer_settle(&pl, cfd);
		close(cfd);
		cfd = -1;
		peer_settle(&pl, -1);
		if (h.open != 0)
			abort(); /* the connection closed: every stream must have ended */
	}
	ig_grpc_server_free(h.srv);
	if (h.open != 0)
		abort();
	if (cfd >= 0)
		close(cfd);
	ig_loop_run_once(&h.loop, 0);
	ig_loop_free(&h.loop);
	return 0;
}
