/* Inside the upstream client: the connection's state, shared by the
 * HTTP/1.1 code (client.c) and the h2c mode (client_h2.c). Nothing outside
 * those two files includes this. */
#ifndef IG_HTTP_CLIENT_INT_H
#define IG_HTTP_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "http/client.h"

#define CLIENT_MAX_PARTS 8
#define CLIENT_READ_CHUNK (32 * 1024)

enum client_state {
	CL_CONNECTING, /* no request yet, connect in progress */
	CL_READY,      /* connected, no request */
	CL_HEAD,       /* request going out or sent; waiting for the response head */
	CL_BODY,       /* reading the response body */
	CL_PARKED,     /* idle in a pool */
	CL_DEAD,       /* failed or abandoned: waiting for the owner to close it */
};

struct h2c_conn;

struct ig_http_client {
	struct ig_loop *loop;
	struct ig_io io;
	struct ig_timer timer;
	enum client_state state;
	bool connected, sent_all, paused, reused, got_byte, is_head, keep_alive;
	bool close_requested;
	bool idle_failed; /* reset or closed while holding no request */
	bool refused;	  /* h2c: the server said it did not process the request */
	bool upgrade;	  /* a 101 may switch this request to a tunnel */
	bool tunnel;	  /* switched: raw bytes both ways */
	bool out_full;	  /* the tunnel's output went above the mark */
	bool write_dead;  /* the server closed its side while the request went out */
	int in_cb;	  /* callbacks of ours on the stack */
	int requests;
	/* The request still to write: iov[iov_pos..iov_cnt). In h2c mode,
	 * the body only (the head goes as a HEADERS frame). */
	struct iovec iov[CLIENT_MAX_PARTS];
	int iov_pos, iov_cnt;
	struct ig_buf in;
	/* A tunnel's bytes the socket did not take; over HTTP/1.1, an open
	 * body's framed bytes not yet written. */
	struct ig_buf out;
	size_t out_off;
	struct ig_http_framing framing;
	struct ig_chunked_decoder chunked;
	/* The response's trailer section as field lines and the blank line
	 * (chunked trailers, or an h2c trailing HEADERS written out so); empty
	 * when it had none. Allocated only when one comes. */
	struct ig_buf trailers;
	uint64_t body_left;
	uint64_t connect_deadline_ns; /* 0: none */
	uint64_t read_timeout_ns;     /* 0: none */
	uint64_t last_ns;	      /* last progress either way */
	const struct ig_http_client_cbs *cbs;
	void *ud;
	ig_http_client_idle_cb idle_cb;
	ig_http_client_connect_cb connect_cb;
	void *owner_ud;
	struct h2c_conn *h2; /* NULL: HTTP/1.1 */
	/* TLS (HTTP/1.1, or HTTP/2 when it offers h2): the context to connect with, and once the
	 * TCP connection is up, the session. `connected` turns true only when the handshake is
	 * done; until then hs_events is what it waits for. */
	struct ig_tls_client_ctx *tls_ctx;
	struct ig_tls_conn *tls;
	bool tcp_up;
	bool read_wants_write;	 /* an SSL read must write before it can go on */
	const char *fail_detail; /* the fault's detail when not TLS's own (static) */
	/* An open request body (ig_http_client_sendv_open): in h2 mode, bytes
	 * the caller wrote that nghttp2 has not taken (over HTTP/1.1 they wait
	 * in `out`, framed); whether it ended, and whether the caller waits
	 * for room (on_writable). Over HTTP/1.1 it is chunked, or open_left
	 * bytes of a Content-Length are still to come. */
	bool open_body, open_end, open_full, open_deferred, open_told, open_chunked;
	struct ig_buf open_buf;
	size_t open_off;
	uint64_t open_left;
	unsigned hs_events;
};

/* client.c, for the h2c mode. Those returning bool return true when the
 * caller must stop touching the client (handed back, failed or freed). */
void client_cb_begin(struct ig_http_client *c);
bool client_cb_end(struct ig_http_client *c);
bool client_fail(struct ig_http_client *c, enum ig_client_error kind, int err);
bool client_finish(struct ig_http_client *c);
void client_parked_event(struct ig_http_client *c);
void client_idle_error(struct ig_http_client *c);
void client_update_events(struct ig_http_client *c);
/* An open body's owner hears that it may write (the connection is up,
 * or its buffer drained below half). True: stop touching c. */
bool client_open_writable(struct ig_http_client *c);
/* The connection's bytes, through TLS when it has it: as send() and
 * recv() (-1 with errno, EAGAIN when it must wait). After EAGAIN on TLS a
 * send must offer the same bytes again; a TLS read returns one record at
 * most, so a short read does not mean the socket is drained. */
ssize_t client_send(struct ig_http_client *c, const void *p, size_t len);
ssize_t client_recv(struct ig_http_client *c, void *buf, size_t len);

/* client_h2.c, for client.c. */
int h2c_init(struct ig_http_client *c);
void h2c_free(struct ig_http_client *c);
/* Translates the HTTP/1.1 request in the spans and queues it as a stream;
 * -1 (nothing changed) when it cannot be carried over HTTP/2. */
int h2c_submit(struct ig_http_client *c, const struct ig_str *parts, size_t nparts);
/* The open body has more bytes (or its end): nghttp2 reads on. */
void h2c_open_more(struct ig_http_client *c);
/* Socket events while a request is on (or the connection is ready). */
void h2c_io(struct ig_http_client *c, unsigned events);
/* Socket events while parked: control frames are answered, anything that
 * ends the connection is reported to the owner. */
void h2c_parked_io(struct ig_http_client *c, unsigned events);
/* Reading resumed: body bytes already decoded go out, flow control opens. */
bool h2c_resume(struct ig_http_client *c);
bool h2c_out_pending(const struct ig_http_client *c);
bool h2c_reusable(const struct ig_http_client *c);
int64_t h2c_body_length(const struct ig_http_client *c);
void h2c_park(struct ig_http_client *c);

#endif
