/* The h2c mode of the upstream client (client.h): HTTP/2 over cleartext
 * TCP with prior knowledge (RFC 9113 §3.3), for model servers of an
 * InferencePool with appProtocol kubernetes.io/h2c. It keeps the HTTP/1.1
 * client's contract: one request at a time, the request given as HTTP/1.1
 * bytes in spans, the same callbacks and faults, pause, timeouts, parking.
 *
 * nghttp2 does the protocol; this file moves bytes and translates. Our
 * callbacks never run inside nghttp2: its callbacks only note what
 * happened (the response head is complete, a piece of body arrived, the
 * stream ended or was reset, a GOAWAY came), and `drive` tells the owner
 * after nghttp2 has returned, in order. A body piece makes nghttp2 pause
 * (NGHTTP2_ERR_PAUSE), so it is handed over while it still points into our
 * input buffer, and a paused owner stops the input right there.
 *
 * Flow control is ours (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE): body bytes are
 * acknowledged (WINDOW_UPDATE) when the owner has taken them, and not
 * while it is paused, so a slow client holds back the model server at the
 * HTTP/2 level as TCP does for HTTP/1.1; a paused connection also stops
 * reading its socket.
 *
 * Memory: the input buffer (CLIENT_READ_CHUNK at a time, kept only while
 * a response is read), the response head under the same ceiling as over
 * HTTP/1.1 (64 KiB, 100 fields: more is a PROTOCOL fault), nghttp2's
 * session with its HPACK tables at their default 4 KiB. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>

#include "http/client_int.h"

#define REQ_HEAD_MAX (256 * 1024) /* the request head as the gateway built it */
#define REQ_HEADERS 1200	  /* the server's ceiling (1024) and additions */
#define RESP_HEAD_MAX (64 * 1024) /* as MAX_RESP_HEAD of client.c */
#define RESP_HEADERS 100	  /* as MAX_RESP_HEADERS of client.c */
#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW (1024 * 1024)
#define CONTROL_READ (16 * 1024)
#define LAST_STREAM_ID 0x7fffffffu

struct hfield {
	uint32_t name, name_len, value, value_len; /* offsets into hbuf */
};

/* The stream of the request in flight; zeroed for each request. */
struct h2c_stream {
	int32_t sid;	 /* 0: none */
	bool es_sent;	 /* our END_STREAM is out of nghttp2 */
	bool head_seen;	 /* the final response head arrived (later HEADERS: trailers) */
	bool head_ready; /* ... and the owner has not been given it yet */
	bool in_trailers;
	size_t ntrailers; /* fields of the trailing HEADERS */
	bool ended;	  /* the server's END_STREAM arrived */
	bool closed;	  /* nghttp2 closed the stream (ended both ways, or reset) */
	uint32_t close_code;
	bool proto_err; /* the response broke a rule: we reset the stream */
	int err_hint;	/* errno for a PROTOCOL fault (EMSGSIZE: head too big) */
	int status;
	int64_t clen;	     /* Content-Length of the response, -1: none */
	int64_t body_length; /* what ig_http_client_body_length says */
	size_t nh, hsize;
	struct hfield hf[RESP_HEADERS];
	/* A piece of body nghttp2 paused on: it points into c->in. */
	const uint8_t *chunk;
	size_t chunk_len;
	bool resume;	   /* nghttp2 paused: call it again, even with no new bytes */
	size_t unconsumed; /* body bytes taken while paused, not yet acknowledged */
};

struct h2c_conn {
	nghttp2_session *ng;
	/* Output nghttp2 handed out that the socket did not take yet. */
	const uint8_t *out;
	size_t outlen;
	bool want_flush; /* nghttp2 may have frames to send */
	size_t in_pos;	 /* bytes of c->in already given to nghttp2 */
	bool goaway_recv;
	int32_t goaway_last;
	bool goaway_sent;   /* we ended the session: a connection error */
	int session_err;    /* nghttp2's fatal error, 0: none */
	bool io_stopped;    /* the socket failed while paused: no more events */
	struct ig_buf hbuf; /* names and values of the response head */
	struct h2c_stream st;
};

static bool active(const struct ig_http_client *c)
{
	return c->state == CL_HEAD || c->state == CL_BODY;
}

static bool ours(const struct h2c_conn *h, int32_t stream_id)
{
	return h->st.sid != 0 && stream_id == h->st.sid;
}

static void clear_head(struct h2c_conn *h)
{
	h->st.nh = 0;
	h->st.hsize = 0;
	h->st.status = 0;
	h->st.clen = -1;
	ig_buf_reset(&h->hbuf);
}

static void reset_stream(struct h2c_conn *h)
{
	memset(&h->st, 0, sizeof h->st);
	h->st.body_length = -1;
	clear_head(h);
}

/* ---- nghttp2's callbacks: they only take note ---- */

static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud)
{
	struct ig_http_client *c = ud;
	if (ours(c->h2, hd->stream_id))
		c->last_ns = c->loop->now_ns;
	return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	if (!ours(h, frame->hd.stream_id) || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	c->got_byte = true;
	if (h->st.head_seen) {
		h->st.in_trailers = true; /* written out as field lines: c->trailers */
		return 0;
	}
	clear_head(h);
	return 0;
}

/* A field of the trailing HEADERS (nghttp2 checked it: no pseudo-field,
 * no CR or LF in the value), as an HTTP/1.1 field line. */
static int trailer_field(struct ig_http_client *c, const uint8_t *name, size_t namelen,
			 const uint8_t *value, size_t valuelen)
{
	struct h2c_conn *h = c->h2;
	if (h->st.ntrailers++ == RESP_HEADERS || ig_buf_append(&c->trailers, name, namelen) < 0 ||
	    ig_buf_append(&c->trailers, ": ", 2) < 0 ||
	    ig_buf_append(&c->trailers, value, valuelen) < 0 ||
	    ig_buf_append(&c->trailers, "\r\n", 2) < 0) {
		h->st.proto_err = true;
		h->st.err_hint = EMSGSIZE;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	if (!ours(h, frame->hd.stream_id) || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (h->st.in_trailers)
		return trailer_field(c, name, namelen, value, valuelen);
	if (namelen && name[0] == ':') {
		/* nghttp2 checked the pseudo-fields (HTTP messaging rules). */
		if (namelen == 7 && !memcmp(name, ":status", 7) && valuelen == 3)
			h->st.status =
			    (value[0] - '0') * 100 + (value[1] - '0') * 10 + value[2] - '0';
		return 0;
	}
	h->st.hsize += namelen + valuelen + 32; /* RFC 9113 §6.5.2's measure */
	size_t off = h->hbuf.len;
	if (h->st.nh == RESP_HEADERS || h->st.hsize > RESP_HEAD_MAX ||
	    ig_buf_append(&h->hbuf, name, namelen) < 0 ||
	    ig_buf_append(&h->hbuf, value, valuelen) < 0) {
		/* nghttp2 resets the stream; the owner gets a PROTOCOL fault. */
		h->st.proto_err = true;
		h->st.err_hint = EMSGSIZE;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	h->st.hf[h->st.nh++] = (struct hfield){(uint32_t)off, (uint32_t)namelen,
					       (uint32_t)(off + namelen), (uint32_t)valuelen};
	uint64_t v;
	if (namelen == 14 && !memcmp(name, "content-length", 14) &&
	    ig_str_to_u64((struct ig_str){(const char *)value, valuelen}, &v) == 0 &&
	    v <= INT64_MAX)
		h->st.clen = (int64_t)v;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		h->goaway_recv = true;
		h->goaway_last = frame->goaway.last_stream_id;
		return 0;
	}
	if (!ours(h, frame->hd.stream_id))
		return 0;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (frame->hd.type == NGHTTP2_HEADERS && !h->st.in_trailers) {
		if (h->st.status < 100 || h->st.status > 599) {
			/* "050" or "999": three digits nghttp2 lets through, no
			 * status code (RFC 9110 §15), as HTTP/1.1's parse says. */
			h->st.proto_err = true;
		} else if (h->st.status < 200) {
			/* Interim (100 Continue, 103 Early Hints): dropped, as
			 * over HTTP/1.1. */
			clear_head(h);
		} else {
			h->st.head_seen = true;
			h->st.head_ready = true;
			bool none = c->is_head || h->st.status == 204 || h->st.status == 304 || end;
			h->st.body_length = none ? 0 : h->st.clen;
		}
	}
	if (frame->hd.type == NGHTTP2_HEADERS && h->st.in_trailers && c->trailers.len &&
	    ig_buf_append(&c->trailers, "\r\n", 2) < 0)
		h->st.proto_err = true;
	if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end)
		h->st.ended = true;
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	/* Body after a head that was refused goes nowhere: the request fails. */
	if (!ours(h, stream_id) || !h->st.head_seen || h->st.proto_err)
		return 0;
	h->st.chunk = data;
	h->st.chunk_len = len;
	h->st.resume = true;
	return NGHTTP2_ERR_PAUSE;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	if (ours(h, stream_id)) {
		h->st.closed = true;
		h->st.close_code = code;
	}
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct ig_http_client *c = ud;
	struct h2c_conn *h = c->h2;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		/* We never end a session ourselves: nghttp2 did, for an error. */
		h->goaway_sent = true;
		return 0;
	}
	if (!ours(h, frame->hd.stream_id))
		return 0;
	if (frame->hd.type == NGHTTP2_RST_STREAM)
		h->st.proto_err = true; /* nghttp2 resets only for a broken rule */
	else if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
		 (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		h->st.es_sent = true;
	return 0;
}

static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int lib_error, void *ud)
{
	struct ig_http_client *c = ud;
	if (ours(c->h2, frame->hd.stream_id))
		c->h2->st.proto_err = true;
	return 0;
}

/* The request body, from the spans left in iov. */
static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct ig_http_client *c = ud;
	size_t n = 0;
	while (n < len && c->iov_pos < c->iov_cnt) {
		struct iovec *v = &c->iov[c->iov_pos];
		size_t k = v->iov_len < len - n ? v->iov_len : len - n;
		memcpy(buf + n, v->iov_base, k);
		n += k;
		v->iov_base = (char *)v->iov_base + k;
		v->iov_len -= k;
		if (!v->iov_len)
			c->iov_pos++;
	}
	if (c->iov_pos < c->iov_cnt)
		return (ssize_t)n;
	if (!c->open_body) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	/* An open body: what the caller wrote so far, then wait for more. */
	size_t avail = c->open_buf.len - c->open_off;
	size_t k = avail < len - n ? avail : len - n;
	if (k)
		memcpy(buf + n, c->open_buf.ptr + c->open_off, k);
	n += k;
	c->open_off += k;
	if (c->open_off == c->open_buf.len) {
		c->open_buf.len = 0;
		c->open_off = 0;
		if (c->open_end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (!n) {
			c->open_deferred = true;
			return NGHTTP2_ERR_DEFERRED;
		}
	}
	return (ssize_t)n;
}

void h2c_open_more(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	if (c->open_deferred && h->st.sid) {
		c->open_deferred = false;
		nghttp2_session_resume_data(h->ng, h->st.sid);
	}
	h->want_flush = true;
}

/* ---- the connection ---- */

int h2c_init(struct ig_http_client *c)
{
	struct h2c_conn *h = calloc(1, sizeof *h);
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	if (!h || nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_send_header_block_length(opt, REQ_HEAD_MAX);
	if (nghttp2_session_client_new2(&h->ng, cbs, c, opt) != 0)
		goto fail;
	const nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, RESP_HEAD_MAX},
	};
	if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	ig_buf_init(&h->hbuf, RESP_HEAD_MAX);
	reset_stream(h);
	h->want_flush = true;
	c->h2 = h;
	return 0;
fail:
	if (h && h->ng)
		nghttp2_session_del(h->ng);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	free(h);
	return -1;
}

void h2c_free(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	nghttp2_session_del(h->ng);
	ig_buf_free(&h->hbuf);
	free(h);
	c->h2 = NULL;
}

bool h2c_out_pending(const struct ig_http_client *c)
{
	return c->h2->outlen > 0 || c->h2->want_flush;
}

/* Writes what nghttp2 has until the socket is full. 0, or -errno
 * (-EPROTO: nghttp2 failed). */
static int flush(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	h->want_flush = false;
	for (;;) {
		if (!h->outlen) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(h->ng, &p);
			if (n < 0) {
				h->session_err = (int)n;
				return -EPROTO;
			}
			if (n == 0)
				break;
			h->out = p;
			h->outlen = (size_t)n;
		}
		ssize_t w = client_send(c, h->out, h->outlen);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			return -errno;
		/* The request going out is progress; control frames are not. */
		if (active(c) && !c->sent_all)
			c->last_ns = c->loop->now_ns;
		h->out += w;
		h->outlen -= (size_t)w;
	}
	if (h->st.es_sent && active(c))
		c->sent_all = true;
	return 0;
}

/* The request failed (the connection, the stream, or the protocol).
 * Returns true (stop touching c). */
static bool fail_now(struct ig_http_client *c, int err)
{
	struct h2c_conn *h = c->h2;
	bool proto = h->st.proto_err || h->goaway_sent || h->session_err;
	enum ig_client_error kind = proto	  ? IG_CLIENT_PROTOCOL
				    : c->got_byte ? IG_CLIENT_BROKEN
						  : IG_CLIENT_EARLY;
	if (proto)
		err = h->st.err_hint ? h->st.err_hint : EPROTO;
	/* RFC 9113 §8.7: streams above a GOAWAY's last stream, and those reset
	 * with REFUSED_STREAM, were not processed. */
	c->refused = !proto && !c->got_byte &&
		     ((h->st.closed && h->st.close_code == NGHTTP2_REFUSED_STREAM) ||
		      (h->goaway_recv && h->st.sid > h->goaway_last));
	(void)flush(c); /* the RST_STREAM or GOAWAY that says why, if it goes */
	return client_fail(c, kind, err) || true;
}

static void consume(struct h2c_conn *h, size_t n)
{
	/* A stream already closed counts for the connection only. */
	(void)nghttp2_session_consume(h->ng, h->st.sid, n);
	h->want_flush = true;
}

static bool deliver_head(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	h->st.head_ready = false;
	struct ig_http_header hdrs[RESP_HEADERS];
	for (size_t i = 0; i < h->st.nh; i++) {
		const struct hfield *f = &h->st.hf[i];
		hdrs[i] = (struct ig_http_header){{h->hbuf.ptr + f->name, f->name_len},
						  {h->hbuf.ptr + f->value, f->value_len}};
	}
	struct ig_http_response res = {
	    .minor_version = 1,
	    .status = h->st.status,
	    .reason = ig_str_from(ig_http_status_text(h->st.status)),
	    .headers = hdrs,
	    .num_headers = h->st.nh,
	};
	c->state = CL_BODY;
	client_cb_begin(c);
	int rc = c->cbs->on_head(c, &res, c->ud);
	if (client_cb_end(c) || c->state != CL_BODY)
		return true;
	if (rc != 0) {
		c->state = CL_DEAD;
		ig_timer_stop(c->loop, &c->timer);
		ig_io_stop(c->loop, &c->io);
		return true;
	}
	return false;
}

static bool deliver_chunk(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	const char *data = (const char *)h->st.chunk;
	size_t len = h->st.chunk_len;
	h->st.chunk = NULL;
	h->st.chunk_len = 0;
	client_cb_begin(c);
	int rc = c->cbs->on_body(c, data, len, c->ud);
	if (client_cb_end(c) || c->state != CL_BODY)
		return true;
	if (rc == 1)
		c->paused = true;
	if (c->paused)
		h->st.unconsumed += len;
	else
		consume(h, len);
	return false;
}

static bool end_stream(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	/* client_finish makes it unusable if our side did not end. */
	c->keep_alive = h->st.closed && !h->goaway_recv && !h->goaway_sent && !h->session_err &&
			nghttp2_session_get_next_stream_id(h->ng) <= LAST_STREAM_ID;
	return client_finish(c);
}

/* Feeds the input to nghttp2 and tells the owner what it found, in order,
 * until the input is used up, the owner paused, or the request ended.
 * Returns true when the client was handed back, failed or closed. */
static bool drive(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	static const uint8_t none;
	for (;;) {
		if (h->st.head_ready && deliver_head(c))
			return true;
		if (!c->paused && h->st.unconsumed) {
			consume(h, h->st.unconsumed);
			h->st.unconsumed = 0;
		}
		if (h->st.chunk_len) {
			if (c->paused)
				return false;
			if (deliver_chunk(c))
				return true;
			continue;
		}
		/* Ended, with a head the owner has seen (a head refused above
		 * makes the end a failure). */
		if (h->st.ended && h->st.head_seen && !h->st.proto_err)
			return end_stream(c);
		if (h->st.closed || h->st.ended || h->st.proto_err || h->goaway_sent ||
		    h->session_err)
			return fail_now(c, ECONNRESET);
		if (c->paused)
			return false;
		size_t avail = c->in.len - h->in_pos;
		if (!avail && !h->st.resume) {
			/* What was read before the socket failed is all there is. */
			if (h->io_stopped)
				return fail_now(c, ECONNRESET);
			return false;
		}
		h->st.resume = false;
		const uint8_t *in = avail ? (const uint8_t *)c->in.ptr + h->in_pos : &none;
		ssize_t n = nghttp2_session_mem_recv(h->ng, in, avail);
		if (n < 0) {
			h->session_err = (int)n;
			continue;
		}
		h->in_pos += (size_t)n;
		h->want_flush = true;
	}
}

/* Reads the socket while a request is on. Returns true when the client
 * is gone or handed back. */
static bool do_read(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	for (int rounds = 0; rounds < 16 && !c->paused; rounds++) {
		/* Nothing points into the input now (no body piece waits). */
		ig_buf_consume(&c->in, h->in_pos);
		h->in_pos = 0;
		if (ig_buf_reserve(&c->in, CLIENT_READ_CHUNK) < 0)
			return client_fail(c, IG_CLIENT_PROTOCOL, ENOMEM) || true;
		ssize_t n = client_recv(c, c->in.ptr + c->in.len, c->in.cap - c->in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return fail_now(c, n < 0 ? errno : ECONNRESET);
		c->in.len += (size_t)n;
		if (drive(c))
			return true;
		int rc = flush(c);
		if (rc < 0)
			return fail_now(c, -rc);
		/* Writing may have ended the session (the GOAWAY of an error
		 * nghttp2 found while reading goes out only now). */
		if (drive(c))
			return true;
		if ((size_t)n < CLIENT_READ_CHUNK / 2 && !c->tls)
			break; /* drained the socket (a TLS read is one record) */
	}
	if (h->in_pos == c->in.len) {
		h->in_pos = 0;
		c->in.len = 0;
	}
	return false;
}

/* Whether the server lets us open a stream: SETTINGS_MAX_CONCURRENT_STREAMS
 * of 0 allows none (RFC 9113 §6.5.2), and with one request per connection
 * ours would wait in nghttp2's queue for a slot nothing frees, until the
 * read timeout. Such a connection is not reused: the next request opens a
 * new one, whose first stream goes with the preface, before the server's
 * SETTINGS can say 0 (as Envoy's pool marks it busy and connects anew). */
static bool takes_streams(const struct h2c_conn *h)
{
	return nghttp2_session_get_remote_settings(h->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) >
	       0;
}

/* Reads and answers control frames on a connection with no request
 * (PING, SETTINGS, WINDOW_UPDATE). false: the connection is over (closed,
 * reset, GOAWAY either way, a protocol error). */
static bool read_control(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	uint8_t buf[CONTROL_READ];
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = client_recv(c, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return false;
		/* With no stream of ours nothing pauses: all is taken. */
		ssize_t r = nghttp2_session_mem_recv(h->ng, buf, (size_t)n);
		if (r != n) {
			if (r < 0)
				h->session_err = (int)r;
			return false;
		}
		if (h->goaway_recv || h->goaway_sent || !takes_streams(h)) {
			(void)flush(c);
			return false;
		}
		if ((size_t)n < sizeof buf && !c->tls)
			break;
	}
	return flush(c) == 0 && !h->goaway_sent;
}

void h2c_io(struct ig_http_client *c, unsigned events)
{
	struct h2c_conn *h = c->h2;
	if (!active(c)) {
		/* Ready, no request: the response ended and the owner holds the
		 * connection without parking it. */
		if ((events & (IG_EV_READ | IG_EV_ERROR)) ? !read_control(c) : flush(c) < 0) {
			client_idle_error(c);
			return;
		}
		client_update_events(c);
		return;
	}
	int rc = flush(c);
	if (rc < 0) {
		fail_now(c, -rc);
		return;
	}
	if (c->paused) {
		if (events & IG_EV_ERROR) {
			/* epoll reports errors even unasked: stop watching. What
			 * was read is delivered on resume, then the request fails. */
			ig_io_stop(c->loop, &c->io);
			h->io_stopped = true;
			return;
		}
	} else if (events & (IG_EV_READ | IG_EV_ERROR)) {
		if (do_read(c))
			return;
	} else if (drive(c)) {
		return; /* what writing found: a stream nghttp2 refused to send */
	}
	if (client_open_writable(c))
		return;
	if (c->state != CL_DEAD && !h->io_stopped)
		client_update_events(c);
}

void h2c_parked_io(struct ig_http_client *c, unsigned events)
{
	if (!read_control(c)) {
		client_parked_event(c);
		return;
	}
	client_update_events(c);
}

bool h2c_resume(struct ig_http_client *c)
{
	if (!active(c))
		return false;
	if (drive(c))
		return true;
	int rc = flush(c);
	if (rc < 0)
		return fail_now(c, -rc);
	return false;
}

bool h2c_reusable(const struct ig_http_client *c)
{
	const struct h2c_conn *h = c->h2;
	return c->state == CL_READY && c->keep_alive && !c->idle_failed && !h->io_stopped &&
	       !h->goaway_recv && !h->goaway_sent && !h->session_err && takes_streams(h) &&
	       c->in.len == h->in_pos;
}

int64_t h2c_body_length(const struct ig_http_client *c)
{
	return c->h2->st.body_length;
}

void h2c_park(struct ig_http_client *c)
{
	struct h2c_conn *h = c->h2;
	reset_stream(h);
	ig_buf_free(&h->hbuf);
	h->in_pos = 0;
}

/* ---- the request ---- */

static bool connection_specific(const struct ig_http_header *hd)
{
	static const struct ig_str names[] = {
	    IG_STR("connection"),	 IG_STR("keep-alive"), IG_STR("proxy-connection"),
	    IG_STR("transfer-encoding"), IG_STR("upgrade"),    IG_STR("host")};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ig_str_ieq(hd->name, names[i]))
			return true;
	/* RFC 9113 §8.2.2: TE may only say "trailers". */
	return ig_str_ieq_cstr(hd->name, "te") && !ig_str_ieq_cstr(hd->value, "trailers");
}

static nghttp2_nv nv(struct ig_str name, struct ig_str value)
{
	return (nghttp2_nv){(uint8_t *)name.ptr, (uint8_t *)value.ptr, name.len, value.len,
			    NGHTTP2_NV_FLAG_NONE};
}

/* The HEADERS of the request. The names are lower-cased in place: they
 * point into our copy of the head. Returns the count. */
static size_t request_fields(const struct ig_http_request *req, nghttp2_nv *out)
{
	size_t n = 0;
	const struct ig_http_header *host =
	    ig_http_find_header(req->headers, req->num_headers, "host");
	out[n++] = nv(IG_STR(":method"), req->method);
	out[n++] = nv(IG_STR(":scheme"), IG_STR("http"));
	if (host && host->value.len)
		out[n++] = nv(IG_STR(":authority"), host->value);
	out[n++] = nv(IG_STR(":path"), req->target);
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct ig_http_header *hd = &req->headers[i];
		if (connection_specific(hd))
			continue;
		char *name = (char *)hd->name.ptr;
		for (size_t k = 0; k < hd->name.len; k++)
			name[k] = (char)tolower((unsigned char)name[k]);
		out[n++] = nv(hd->name, hd->value);
	}
	return n;
}

int h2c_submit(struct ig_http_client *c, const struct ig_str *parts, size_t nparts)
{
	struct h2c_conn *h = c->h2;
	if (h->goaway_recv || h->goaway_sent || h->session_err || h->io_stopped ||
	    nghttp2_session_get_next_stream_id(h->ng) > LAST_STREAM_ID)
		return -1;
	int rc = -1;
	struct ig_buf head;
	ig_buf_init(&head, REQ_HEAD_MAX);
	struct ig_http_header *hdrs = malloc(REQ_HEADERS * sizeof *hdrs);
	nghttp2_nv *nva = NULL;
	if (!hdrs)
		goto out;
	/* The head may straddle spans: gathered until it parses. */
	struct ig_http_request req;
	int n = IG_HTTP_INCOMPLETE;
	size_t i = 0;
	while (n == IG_HTTP_INCOMPLETE && i < nparts) {
		if (ig_buf_append(&head, parts[i].ptr, parts[i].len) < 0)
			goto out;
		i++;
		n = ig_http_parse_request(head.ptr, head.len, &req, hdrs, REQ_HEADERS);
	}
	if (n <= 0 || ig_str_eq_cstr(req.method, "CONNECT"))
		goto out;
	/* The body: what followed the head in its last span, then the rest. */
	struct iovec body[CLIENT_MAX_PARTS];
	int nb = 0;
	uint64_t blen = 0;
	size_t extra = head.len - (size_t)n;
	if (extra)
		body[nb++] =
		    (struct iovec){(char *)parts[i - 1].ptr + parts[i - 1].len - extra, extra};
	for (; i < nparts; i++)
		if (parts[i].len)
			body[nb++] = (struct iovec){(void *)parts[i].ptr, parts[i].len};
	for (int k = 0; k < nb; k++)
		blen += body[k].iov_len;
	/* The gateway sends Content-Length bodies; chunked would need
	 * decoding the spans, and nothing sends it. */
	struct ig_http_framing f;
	if (ig_http_request_framing(&req, &f) < 0 || f.kind == IG_BODY_CHUNKED ||
	    (f.kind == IG_BODY_LENGTH ? f.length != blen : blen != 0 && !c->open_body) ||
	    (c->open_body && f.kind == IG_BODY_LENGTH))
		goto out;
	nva = malloc((req.num_headers + 4) * sizeof *nva);
	if (!nva)
		goto out;
	size_t nnv = request_fields(&req, nva);
	const nghttp2_data_provider prd = {.read_callback = read_body};
	int32_t sid =
	    nghttp2_submit_request(h->ng, NULL, nva, nnv, blen || c->open_body ? &prd : NULL, NULL);
	if (sid < 0)
		goto out;
	memcpy(c->iov, body, (size_t)nb * sizeof body[0]);
	c->iov_cnt = nb;
	c->iov_pos = 0;
	reset_stream(h);
	h->st.sid = sid;
	h->want_flush = true;
	ig_buf_reset(&c->in);
	h->in_pos = 0;
	rc = 0;
out:
	free(nva);
	free(hdrs);
	ig_buf_free(&head);
	return rc;
}
