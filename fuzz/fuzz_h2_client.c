/* libFuzzer target for the gRPC client channel (grpc/client.c, h2conn.c,
 * frame.c): the input is what a server answers on the channel's
 * connection. Each input gets a fresh loop and channel; the channel starts
 * three calls (unary, a bidi one that keeps sending, one with a deadline),
 * connects to a loopback listener of the harness, and the harness writes
 * the input as the server's bytes, in pieces, while the loop runs one
 * iteration at a time.
 *
 * Input: one control byte, then the server's bytes.
 *   bits 0-1  number of pieces, minus one
 *   bit 2     the harness closes the connection at the end
 *   bit 3     cancel the bidi call after the first piece
 *   bit 4     free the channel from inside the first on_message/on_done
 *
 * The listener is TCP on 127.0.0.1 (the channel connects by host and
 * port); the harness closes its end with SO_LINGER 0, so no TIME_WAIT
 * piles up over millions of connections. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event/loop.h"
#include "grpc/grpc.h"
#include "peer.h"

#define MAX_ITERATIONS 256

struct harness {
	struct ig_loop loop;
	struct ig_grpc_channel *ch;
	unsigned long progress;
	int live; /* calls started minus ended (done or cancelled) */
	bool free_in_cb;
};

static struct harness *H;
static int listen_fd = -1;
static int port;

static void maybe_free(void)
{
	if (H->free_in_cb && H->ch) {
		ig_grpc_channel_free(H->ch);
		H->ch = NULL;
		H->live = 0; /* freeing cancels every call silently */
	}
}

static void on_message(struct ig_grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
	H->progress++;
	if (len > 4096)
		abort(); /* over the ceiling: must not be delivered */
	maybe_free();
}

static void on_done(struct ig_grpc_call *c, int status, const char *message, void *data)
{
	H->progress++;
	H->live--;
	if (!message)
		abort();
	maybe_free();
}

static const struct ig_grpc_call_handlers handlers = {on_message, on_done};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness h = {0};
	unsigned flags = size ? data[0] : 0;
	size_t pieces = (flags & 3) + 1;
	data += size != 0;
	size -= size != 0;
	if (listen_fd < 0)
		listen_fd = peer_listen_tcp(&port);
	/* Connections a channel made again after a GOAWAY, in an earlier input. */
	for (int fd; (fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
		peer_close_rst(fd);
	H = &h;
	if (ig_loop_init(&h.loop) < 0)
		abort();
	struct peer_loop pl = {&h.loop, &h.progress, MAX_ITERATIONS};
	struct ig_grpc_channel_config cc = {.host = "127.0.0.1",
					    .port = port,
					    .max_message_bytes = 4096,
					    .connect_timeout_ms = 5000};
	h.ch = ig_grpc_channel_new(&h.loop, &cc);
	if (!h.ch)
		abort();
	static const uint8_t msg[100];
	struct ig_grpc_call *unary = ig_grpc_call_start(h.ch, "/u", 0, NULL, 0, &handlers, NULL);
	const char *md[] = {"x-a", "1"};
	struct ig_grpc_call *bidi = ig_grpc_call_start(h.ch, "/b", 0, md, 1, &handlers, NULL);
	struct ig_grpc_call *timed =
	    ig_grpc_call_start(h.ch, "/t", 60000, NULL, 0, &handlers, NULL);
	if (!unary || !bidi || !timed)
		abort();
	h.live = 3;
	ig_grpc_call_send(unary, msg, sizeof msg);
	ig_grpc_call_close_send(unary);
	ig_grpc_call_send(bidi, msg, 10);
	h.free_in_cb = flags & 16;

	int sfd = peer_accept(&pl, listen_fd);
	for (size_t i = 0; i < pieces; i++) {
		size_t from = size * i / pieces, to = size * (i + 1) / pieces;
		peer_send(&pl, sfd, data + from, to - from, true);
		peer_settle(&pl, sfd);
		if (i == 0 && (flags & 8) && h.ch && h.live == 3) {
			ig_grpc_call_cancel(bidi);
			h.live--;
		} else if (h.ch && h.live == 3) {
			ig_grpc_call_send(bidi, msg, sizeof msg);
		}
	}
	if (flags & 4) {
		peer_close_rst(sfd);
		sfd = -1;
		peer_settle(&pl, -1);
	}
	if (h.ch)
		ig_grpc_channel_free(h.ch);
	peer_settle(&pl, -1);
	if (sfd >= 0)
		peer_close_rst(sfd);
	ig_loop_free(&h.loop);
	return 0;
}
