/* The HTTP server's connection and server structures, shared by its two
 * files: server.c (connections, HTTP/1.1, TLS) and server_h2.c (HTTP/2
 * sessions on a connection). Nothing outside src/http includes this. */
#ifndef IG_HTTP_SERVER_INT_H
#define IG_HTTP_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "event/loop.h"
#include "http/parse.h"
#include "http/server.h"

struct ig_h2;

/* A connection is in one of these states; the state decides what a
 * readable socket means and which timer runs. */
enum conn_state {
	ST_HEAD,      /* waiting for (the rest of) a request head */
	ST_BODY,      /* reading the body of the request whose head is parsed */
	ST_HANDLING,  /* the handler owns the exchange; response not finished */
	ST_DONE,      /* response finished; the after-response task is queued */
	ST_FLUSH,     /* response finished; waiting for the output to drain */
	ST_CLOSING,   /* last response: close once flushed (then linger) */
	ST_HANDSHAKE, /* TLS: the handshake is under way */
	ST_TUNNEL,    /* switched protocols: raw bytes both ways */
	ST_H2,	      /* HTTP/2: frames both ways, streams in server_h2.c */
};

#define READ_CHUNK (16 * 1024)
#define PIPELINE_MAX (64 * 1024) /* bytes of a next request buffered while busy */
/* A streamed HTTP/1.1 body: no more is read while this much waits for the
 * handler (ig_http_body_consume). */
#define STREAM_WINDOW (1024 * 1024)
#define OUT_KEEP (64 * 1024) /* an emptied output buffer larger than this is freed */
#define HEADERS_CAP 1024     /* ceiling on max_headers */
#define LINGER_MS 2000

enum timer_kind { TM_NONE, TM_IDLE, TM_HEAD, TM_BODY, TM_SEND, TM_LINGER };

/* What a TLS connection adds, allocated with it (a plain connection has
 * none). OpenSSL can hold bytes the socket no longer announces (records
 * read ahead, a record larger than the room offered), so reading on is a
 * task; and a read may wait for the socket to be writable, a write for it
 * to be readable. */
struct conn_tls {
	struct ig_tls_conn *t;
	struct ig_task read_task; /* reads what OpenSSL holds */
	unsigned hs_events;	  /* what the handshake waits for */
	bool read_wants_write;
	bool write_wants_read;
	bool notify_wait; /* close_notify waits for room in the socket */
};

struct ig_http_conn {
	struct ig_http_server *srv;
	struct ig_io io;
	struct ig_timer timer;
	struct ig_task task;	    /* after a response, or a close asked for by a handler */
	struct ig_task flush_task;  /* sends a response head no body piece followed */
	struct ig_task tunnel_task; /* hands buffered client bytes to a tunnel */
	ig_http_tunnel_data tunnel_data;
	bool tunnel_paused;
	enum conn_state state;
	enum timer_kind tkind;
	struct ig_buf in;  /* received bytes not yet processed; none while idle */
	size_t scanned;	   /* bytes of `in` searched for the end of the head */
	struct ig_buf out; /* response bytes not yet written */
	size_t out_off;
	uint64_t last_send_ns; /* last time output moved (send timeout) */
	struct ig_arena arena; /* the exchange's memory */
	struct ig_http_exchange *ex;
	struct ig_http_framing framing;
	struct ig_chunked_decoder chunked;
	uint64_t body_left; /* Content-Length bytes still to read */
	bool keep_alive;    /* of the current exchange */
	bool resp_started, resp_chunked, resp_no_body, resp_close_delimited;
	bool want_writable;
	bool in_handler; /* exchange handed to the handler and not ended */
	bool is_head;
	bool lingering; /* closing: write side shut, draining the input */
	bool peer_done; /* the client sent FIN after a request: close after it */
	bool broken;	/* dead: freed by the queued task */
	bool h1;	/* an HTTP/1.x request came: no HTTP/2 preface now */
	bool streaming; /* the exchange's body goes to the handler as it comes */
	char peer[56];

	struct conn_tls *tls; /* NULL: plain text */
	struct ig_h2 *h2;     /* in ST_H2: the session (server_h2.c) */
	struct ig_http_conn *prev, *next;
};

struct ig_http_server {
	struct ig_loop *loop;
	struct ig_acceptor acceptor;
	int listen_fd;
	struct ig_http_server_config cfg;
	ig_http_handler handler;
	void *ctx;
	struct ig_tls_ctx *tls;	    /* NULL: plain text */
	struct ig_http_conn *conns; /* newest first */
	size_t nconns;
	size_t busy;
	uint64_t full_log_ns;	  /* when the limit of connections was last logged */
	unsigned long full_count; /* connections dropped at the limit since then */
	bool draining;
	bool going_away; /* responses close their connections; still accepting */
};

/* What server.c lends server_h2.c. */
int ig_srv_flush(struct ig_http_conn *c);   /* sends what `out` holds; -1: the socket failed */
void ig_srv_update(struct ig_http_conn *c); /* epoll interest from the state */
void ig_srv_arm(struct ig_http_conn *c, enum timer_kind kind, uint64_t ms);
void ig_srv_free(struct ig_http_conn *c); /* closes now (not from a handler's call) */
void ig_srv_describe(struct ig_http_conn *c, struct ig_http_exchange *ex); /* peer, TLS */
/* Answers a request the server refuses itself: the refusal_body hook's
 * body, else ig_http_respond_error's. Ends the exchange. */
void ig_srv_refuse(struct ig_http_server *s, struct ig_http_exchange *ex, int status,
		   const char *msg);
/* Whether a Host value is an authority as RFC 3986 has it, without
 * userinfo: a reg-name or IP literal and a port (nginx's check too). */
bool ig_srv_authority_ok(struct ig_str v);
/* The request's path normalized (ig_http_path_normalize), its target
 * rebuilt in the arena with the query as it came; -1: out of memory, -2:
 * an invalid path (400). */
int ig_srv_normalize_path(struct ig_arena *a, struct ig_http_request *r);

/* The decimal digits of v, at the end of tmp; returns where they start
 * (a response head's status and Content-Length, without printf). */
static inline char *ig_srv_decimal(char tmp[static 20], uint64_t v)
{
	char *p = tmp + 20;
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return p;
}

#endif
