/* Unit tests for TLS termination (http/tls.c) and the HTTP server over it:
 * the server listens on 127.0.0.1 with certificates generated here (EC
 * P-256 keys, self-signed; no key is committed), and an OpenSSL client on
 * a non-blocking socket takes turns with the server's loop on one thread,
 * as test_server.c does with plain sockets. The client verifies the
 * server's certificate against the generated ones, so "SNI picked this
 * certificate" is checked the way a real client checks it.
 *
 * OpenSSL's allocations are counted (CRYPTO_set_mem_functions) apart for
 * the server (made while the loop runs) and the client, so that a test can
 * tell what an idle TLS connection costs the server.
 *
 * The handler:
 *   /echo...      "tls=<0|1> sni=<name> <method> <target> <n>:<body>", after
 *                 "cert=<x-forwarded-client-cert element> " when the
 *                 client's certificate verified
 *   /delay/<ms>   the same, from a timer
 *   /hold         never answers
 *   /big/<n>      <n> pattern bytes streamed with backpressure */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "http/server.h"
#include "http/tls.h"
#include "certs.h"
#include "loopback.h"

#define WAIT_MS 5000 /* ceiling on any wait for something that should happen */

extern char **environ;

/* ---- counting OpenSSL's memory ---- */

struct mem_hdr {
	size_t size;
	int side;
	int pad;
};

enum { SIDE_CLIENT, SIDE_SERVER };
static _Thread_local int mem_side;
static long long mem_live[2];

static void *mem_malloc(size_t n, const char *file, int line)
{
	struct mem_hdr *h = malloc(sizeof *h + n);
	if (!h)
		return NULL;
	h->size = n;
	h->side = mem_side;
	__atomic_add_fetch(&mem_live[h->side], (long long)n, __ATOMIC_RELAXED);
	return h + 1;
}

static void mem_free(void *p, const char *file, int line)
{
	if (!p)
		return;
	struct mem_hdr *h = (struct mem_hdr *)p - 1;
	__atomic_sub_fetch(&mem_live[h->side], (long long)h->size, __ATOMIC_RELAXED);
	free(h);
}

static void *mem_realloc(void *p, size_t n, const char *file, int line)
{
	if (!p)
		return mem_malloc(n, file, line);
	struct mem_hdr *h = (struct mem_hdr *)p - 1;
	size_t old = h->size;
	struct mem_hdr *nh = realloc(h, sizeof *nh + n);
	if (!nh)
		return NULL;
	nh->size = n;
	__atomic_add_fetch(&mem_live[nh->side], (long long)n - (long long)old, __ATOMIC_RELAXED);
	return nh + 1;
}

/* ---- certificates (certs.h) ---- */

static struct ig_tls_cert entry(const char *hostname, const struct cert *c)
{
	return (struct ig_tls_cert){.hostname = hostname,
				    .cert_pem = c->pem,
				    .cert_len = c->pem_len,
				    .key_pem = c->key,
				    .key_len = c->key_len};
}

/* Made once: generating keys is the slow part. */
enum { C_DEFAULT, C_API, C_WILD, C_WILDB, C_OLD, C_NEW, C_OTHER, NCERTS };
static struct cert certs[NCERTS];

static int group_setup(void **state)
{
	mem_side = SIDE_CLIENT;
	make_cert(&certs[C_DEFAULT], "default.test", "DNS:default.test", 0);
	make_cert(&certs[C_API], "api.example.com", "DNS:api.example.com", 0);
	make_cert(&certs[C_WILD], "wild.example.com", "DNS:*.example.com", 0);
	make_cert(&certs[C_WILDB], "wild.b.example.com", "DNS:*.b.example.com", 0);
	make_cert(&certs[C_OLD], "old.test", "DNS:reload.test", 0);
	make_cert(&certs[C_NEW], "new.test", "DNS:reload.test", 0);
	make_cert(&certs[C_OTHER], "other.test", "DNS:api.example.com", 0);
	return 0;
}

static int group_teardown(void **state)
{
	for (int i = 0; i < NCERTS; i++)
		cert_free(&certs[i]);
	return 0;
}

/* ---- the fixture ---- */

struct fx {
	struct ig_loop loop;
	struct ig_http_server *srv;
	struct ig_tls_ctx *tls;
	int port;
	int nreq, naborts, nwritable, nfull;
	struct ig_http_exchange *held;
	struct cli *clis[16];
	int nclis;
	struct peer peers[8];
	int npeers;
	char dir[64]; /* temporary files of the curl test */
};

static struct fx *F;

struct rq {
	struct ig_timer timer;
	struct ig_http_exchange *ex;
	size_t sent, total;
};

static char pattern_byte(size_t i)
{
	return (char)('a' + i % 23);
}

static void answer(struct ig_http_exchange *ex)
{
	struct ig_buf b = {0};
	if (ex->client_cert.len)
		ig_buf_printf(&b, "cert=%.*s ", IG_STR_FMT(ex->client_cert));
	ig_buf_printf(&b, "tls=%d sni=%.*s %.*s %.*s %zu:", ex->tls, IG_STR_FMT(ex->sni),
		      IG_STR_FMT(ex->req.method), IG_STR_FMT(ex->req.target), ex->body.len);
	ig_buf_append(&b, ex->body.ptr, ex->body.len);
	assert_int_equal(ig_http_respond(ex, 200, "text/plain", b.ptr, b.len, NULL, 0), 0);
	ig_buf_free(&b);
}

static void on_abort(struct ig_http_exchange *ex)
{
	struct rq *r = ex->user;
	F->naborts++;
	ig_timer_stop(&F->loop, &r->timer);
	if (F->held == ex)
		F->held = NULL;
}

static void on_delay(struct ig_loop *loop, struct ig_timer *t)
{
	struct rq *r = t->data;
	answer(r->ex);
}

static void big_pump(struct rq *r)
{
	char piece[16384];
	while (r->sent < r->total) {
		size_t n = r->total - r->sent < sizeof piece ? r->total - r->sent : sizeof piece;
		for (size_t i = 0; i < n; i++)
			piece[i] = pattern_byte(r->sent + i);
		int rc = ig_http_write(r->ex, piece, n);
		if (rc < 0)
			return;
		r->sent += n;
		if (rc == 1) {
			F->nfull++;
			return;
		}
	}
	ig_http_end(r->ex);
}

static void on_big_writable(struct ig_http_exchange *ex)
{
	F->nwritable++;
	big_pump(ex->user);
}

static bool has_prefix(const struct ig_http_exchange *ex, const char *p, size_t *num)
{
	size_t n = strlen(p);
	if (ex->req.path.len < n || memcmp(ex->req.path.ptr, p, n) != 0)
		return false;
	if (num)
		*num = strtoul(ex->req.path.ptr + n, NULL, 10);
	return true;
}

static void handler(struct ig_http_exchange *ex, void *ctx)
{
	struct fx *f = ctx;
	f->nreq++;
	struct rq *r = ig_arena_calloc(ex->arena, sizeof *r);
	assert_non_null(r);
	r->ex = ex;
	ex->user = r;
	ex->on_abort = on_abort;
	size_t num;
	if (has_prefix(ex, "/delay/", &num)) {
		ig_timer_start(&f->loop, &r->timer, num, on_delay, r);
	} else if (has_prefix(ex, "/hold", NULL)) {
		f->held = ex;
	} else if (has_prefix(ex, "/big/", &num)) {
		r->total = num;
		ex->on_writable = on_big_writable;
		assert_int_equal(ig_http_start_response(ex, 200, NULL, 0, (int64_t)num), 0);
		big_pump(r);
	} else {
		answer(ex);
	}
}

static void cli_free(struct cli *c);

static int setup(void **state)
{
	F = calloc(1, sizeof *F);
	assert_int_equal(ig_loop_init(&F->loop), 0);
	*state = F;
	return 0;
}

static void rm_dir(void);

static int teardown(void **state)
{
	for (int i = 0; i < F->nclis; i++)
		cli_free(F->clis[i]);
	for (int i = 0; i < F->npeers; i++)
		peer_close(&F->peers[i]);
	mem_side = SIDE_SERVER;
	ig_http_server_free(F->srv);
	ig_tls_ctx_unref(F->tls);
	mem_side = SIDE_CLIENT;
	ig_loop_free(&F->loop);
	rm_dir();
	free(F);
	F = NULL;
	return 0;
}

/* One loop iteration, with OpenSSL's allocations counted as the server's. */
static int pump(int ms)
{
	mem_side = SIDE_SERVER;
	int n = ig_loop_run_once(&F->loop, ms);
	mem_side = SIDE_CLIENT;
	return n;
}

static struct ig_tls_ctx *new_ctx(const struct ig_tls_cert *e, size_t n)
{
	char err[256] = "";
	mem_side = SIDE_SERVER;
	struct ig_tls_ctx *ctx = ig_tls_ctx_new(e, n, err, sizeof err);
	mem_side = SIDE_CLIENT;
	if (!ctx)
		fail_msg("ig_tls_ctx_new: %s", err);
	return ctx;
}

static void start_server_cfg(const struct ig_tls_cert *e, size_t n,
			     const struct ig_http_server_config *cfg, int sndbuf)
{
	F->tls = new_ctx(e, n);
	int fd = tcp_listen(64, &F->port);
	assert_true(fd >= 0);
	if (sndbuf)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	mem_side = SIDE_SERVER;
	F->srv = ig_http_server_new_tls(&F->loop, fd, cfg, F->tls, handler, F);
	mem_side = SIDE_CLIENT;
	assert_non_null(F->srv);
}

static void start_server(const struct ig_tls_cert *e, size_t n)
{
	start_server_cfg(e, n, NULL, 0);
}

static void start_default_server(void)
{
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	start_server(&e, 1);
}

static size_t server_conns(void)
{
	size_t n, bytes;
	ig_http_server_memory(F->srv, &n, &bytes);
	return n;
}

static bool wait_conns(size_t want)
{
	uint64_t t0 = ig_now_ns();
	while (server_conns() != want && ms_since(t0) < WAIT_MS)
		pump(5);
	return server_conns() == want;
}

/* ---- the client ---- */

struct cli_opts {
	const char *sni;	 /* server name sent; NULL: none */
	const char *verify_host; /* hostname the certificate must be valid for */
	const unsigned char *alpn;
	unsigned alpn_len;
	int max_version; /* 0: the library's (TLS 1.3) */
	const char *ciphers;
	int rcvbuf;
	const struct cert *client; /* the certificate the client presents */
};

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char *data; /* everything decrypted so far, NUL-terminated */
	size_t len, cap;
	bool eof; /* close_notify or FIN */
	bool err; /* a TLS or socket error */
	char why[160];
};

static void cli_free(struct cli *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->data);
	free(c);
}

static void trust_all(SSL_CTX *ctx)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	for (int i = 0; i < NCERTS; i++)
		if (certs[i].x)
			X509_STORE_add_cert(st, certs[i].x);
}

static struct cli *cli_new(const struct cli_opts *o)
{
	struct cli *c = calloc(1, sizeof *c);
	assert_true(F->nclis < 16);
	F->clis[F->nclis++] = c;
	c->cap = 4096;
	c->data = calloc(1, c->cap);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	if (o && o->rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof o->rcvbuf);
	struct sockaddr_in sin = loopback_addr(F->port);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	trust_all(c->ctx);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (o && o->max_version) {
		/* Old versions need security level 0 on the client's side: the
		 * server is the one to refuse them. */
		SSL_CTX_set_security_level(c->ctx, 0);
		SSL_CTX_set_min_proto_version(c->ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(c->ctx, o->max_version);
	}
	if (o && o->ciphers) {
		SSL_CTX_set_security_level(c->ctx, 0);
		assert_int_equal(SSL_CTX_set_cipher_list(c->ctx, o->ciphers), 1);
	}
	if (o && o->client) {
		BIO *kb = BIO_new_mem_buf(o->client->key, (int)o->client->key_len);
		EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
		BIO_free(kb);
		assert_non_null(pk);
		assert_int_equal(SSL_CTX_use_certificate(c->ctx, o->client->x), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(c->ctx, pk), 1);
		EVP_PKEY_free(pk);
	}
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (o && o->sni)
		SSL_set_tlsext_host_name(c->ssl, o->sni);
	if (o && o->verify_host)
		SSL_set1_host(c->ssl, o->verify_host);
	if (o && o->alpn)
		assert_int_equal(SSL_set_alpn_protos(c->ssl, o->alpn, o->alpn_len), 0);
	return c;
}

static void cli_failed(struct cli *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	unsigned long err = ERR_peek_last_error();
	snprintf(c->why, sizeof c->why, "%s",
		 e == SSL_ERROR_SSL && err ? ERR_reason_error_string(err)
		 : e == SSL_ERROR_SYSCALL  ? "syscall"
					   : "other");
	ERR_clear_error();
	c->err = true;
}

/* Runs the handshake against the loop; false (with c->why) if it failed. */
static bool cli_handshake(struct cli *c)
{
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < WAIT_MS) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			return true;
		int e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			cli_failed(c, r);
			return false;
		}
		pump(2);
	}
	snprintf(c->why, sizeof c->why, "timed out");
	return false;
}

static struct cli *cli_connect(const struct cli_opts *o)
{
	struct cli *c = cli_new(o);
	if (!cli_handshake(c))
		fail_msg("handshake failed: %s", c->why);
	return c;
}

static void cli_write(struct cli *c, const void *data, size_t len)
{
	const char *p = data;
	uint64_t t0 = ig_now_ns();
	while (len && ms_since(t0) < WAIT_MS) {
		size_t n = 0;
		int r = SSL_write_ex(c->ssl, p, len, &n);
		if (r == 1) {
			p += n;
			len -= n;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			cli_failed(c, r);
			fail_msg("client write: %s", c->why);
		}
		pump(2);
	}
	assert_int_equal(len, 0);
}

static void cli_puts(struct cli *c, const char *s)
{
	cli_write(c, s, strlen(s));
}

/* Reads what is there (at most max bytes; 0: all). */
static void cli_read_max(struct cli *c, size_t max)
{
	size_t got = 0;
	while (!c->eof && !c->err && (!max || got < max)) {
		if (c->cap - c->len < 65537) {
			c->cap = c->cap * 2 + 65537;
			c->data = realloc(c->data, c->cap);
		}
		size_t want = max && max - got < 65536 ? max - got : 65536;
		size_t n = 0;
		int r = SSL_read_ex(c->ssl, c->data + c->len, want, &n);
		if (r == 1) {
			c->len += n;
			got += n;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN)
			c->eof = true;
		else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			cli_failed(c, r);
		ERR_clear_error();
		break;
	}
	c->data[c->len] = '\0';
}

static void cli_read(struct cli *c)
{
	cli_read_max(c, 0);
}

/* The length of the first complete response in data (head and a
 * Content-Length body), or 0. */
static size_t response_len(const char *data, size_t len)
{
	const char *end = strstr(data, "\r\n\r\n");
	if (!end)
		return 0;
	size_t head = (size_t)(end - data) + 4;
	const char *cl = strcasestr(data, "\r\nContent-Length:");
	size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
	return len >= head + body ? head + body : 0;
}

/* Pumps until n complete responses arrived (or the connection ended). */
static bool cli_wait_responses(struct cli *c, int n)
{
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < WAIT_MS) {
		cli_read(c);
		size_t off = 0;
		int k = 0;
		size_t l;
		while (k < n && (l = response_len(c->data + off, c->len - off)))
			off += l, k++;
		if (k == n)
			return true;
		if (c->eof || c->err)
			return false;
		pump(2);
	}
	return false;
}

/* The body of the response the client holds (its only one). */
static const char *body_of(struct cli *c)
{
	const char *b = strstr(c->data, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* Sends a request and returns the response body; clears what was read. */
static const char *cli_request(struct cli *c, const char *req)
{
	c->len = 0;
	c->data[0] = '\0';
	cli_puts(c, req);
	if (!cli_wait_responses(c, 1))
		fail_msg("no response (eof %d err %d: %s): %s", c->eof, c->err, c->why, c->data);
	return body_of(c);
}

static bool cli_wait_closed(struct cli *c)
{
	uint64_t t0 = ig_now_ns();
	while (!c->eof && !c->err && ms_since(t0) < WAIT_MS) {
		pump(2);
		cli_read(c);
	}
	return c->eof || c->err;
}

static const char *peer_cn(struct cli *c)
{
	static char cn[64];
	X509 *x = SSL_get1_peer_certificate(c->ssl);
	cn[0] = '\0';
	if (x) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
		X509_free(x);
	}
	return cn;
}

static struct peer *open_peer(void)
{
	assert_true(F->npeers < 8);
	struct peer *p = &F->peers[F->npeers++];
	int fd = tcp_connect(F->port);
	assert_true(fd >= 0);
	peer_init(p, fd);
	return p;
}

static bool peer_wait_closed(struct peer *p)
{
	uint64_t t0 = ig_now_ns();
	while (!peer_closed(p) && ms_since(t0) < WAIT_MS) {
		pump(2);
		peer_read(p);
	}
	return peer_closed(p);
}

/* The loop has nothing to do: ten iterations that wait 5 ms each take
 * their 50 ms. A connection that spins, on events or on queued tasks
 * (which make the loop not wait), makes them return at once. */
static bool loop_quiet(void)
{
	uint64_t t0 = ig_now_ns();
	for (int i = 0; i < 10; i++)
		pump(5);
	return ms_since(t0) >= 45;
}

static const char GET_ECHO[] = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";

/* ---- tests ---- */

/* A request and a second one on the same kept-alive connection, with the
 * exchange knowing it came over TLS; the negotiated protocol is TLS 1.3
 * with ALPN http/1.1. */
static void test_request_over_tls(void **state)
{
	start_default_server();
	static const unsigned char alpn[] = "\x08http/1.1";
	struct cli_opts o = {.verify_host = "default.test", .alpn = alpn, .alpn_len = 9};
	struct cli *c = cli_connect(&o);
	assert_string_equal(SSL_get_version(c->ssl), "TLSv1.3");
	const unsigned char *sel;
	unsigned sel_len;
	SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	const char *b = cli_request(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
				       "5\r\n\r\nhello");
	assert_string_equal(b, "tls=1 sni= POST /echo 5:hello");
	assert_non_null(strstr(c->data, "HTTP/1.1 200 OK\r\n"));
	b = cli_request(c, "GET /echo?again HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(b, "tls=1 sni= GET /echo?again 0:");
	assert_int_equal(F->nreq, 2);
	assert_int_equal(server_conns(), 1);
}

/* SNI picks the certificate by Gateway API precedence: exact, then the
 * most specific wildcard, then the default; names are case-insensitive. */
static void test_sni_selects_certificate(void **state)
{
	struct ig_tls_cert e[] = {
	    entry("*.example.com", &certs[C_WILD]),
	    entry(NULL, &certs[C_DEFAULT]),
	    entry("api.example.com", &certs[C_API]),
	    entry("*.B.example.com", &certs[C_WILDB]),
	};
	start_server(e, 4);
	struct {
		const char *sni, *verify, *cn, *echo;
	} cases[] = {
	    {"api.example.com", "api.example.com", "api.example.com", "sni=api.example.com"},
	    {"API.Example.COM", "api.example.com", "api.example.com", "sni=api.example.com"},
	    {"x.example.com", "x.example.com", "wild.example.com", "sni=x.example.com"},
	    {"a.b.example.com", "a.b.example.com", "wild.b.example.com", "sni=a.b.example.com"},
	    {"c.d.example.com", NULL, "wild.example.com", "sni=c.d.example.com"},
	    {"b.example.com", "b.example.com", "wild.example.com", "sni=b.example.com"},
	    {"example.com", NULL, "default.test", "sni=example.com"},
	    {"api.example.com.", NULL, "api.example.com", "sni=api.example.com "},
	    {NULL, "default.test", "default.test", "sni= "},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cli_opts o = {.sni = cases[i].sni, .verify_host = cases[i].verify};
		struct cli *c = cli_connect(&o);
		assert_string_equal(peer_cn(c), cases[i].cn);
		const char *b = cli_request(c, GET_ECHO);
		if (!strstr(b, cases[i].echo))
			fail_msg("SNI %s: %s", cases[i].sni, b);
	}
}

/* Without a default certificate, an unknown server name or none fails the
 * handshake with unrecognized_name, and the server lets go of it. */
static void test_sni_without_default(void **state)
{
	struct ig_tls_cert e = entry("api.example.com", &certs[C_API]);
	start_server(&e, 1);
	struct cli_opts o = {.sni = "api.example.com", .verify_host = "api.example.com"};
	struct cli *ok = cli_connect(&o);
	assert_string_equal(cli_request(ok, GET_ECHO), "tls=1 sni=api.example.com GET /echo 0:");
	const char *names[] = {"other.test", NULL};
	for (int i = 0; i < 2; i++) {
		struct cli_opts bad = {.sni = names[i]};
		struct cli *c = cli_new(&bad);
		assert_false(cli_handshake(c));
		assert_string_equal(c->why, "tlsv1 unrecognized name");
		close(c->fd);
		c->fd = -1;
	}
	assert_true(wait_conns(1));
}

/* ALPN: http/1.1 is chosen when offered, a client offering only h2 is
 * refused with no_application_protocol, no ALPN is fine. */
static void test_alpn(void **state)
{
	start_default_server();
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	struct cli_opts o = {.alpn = both, .alpn_len = 12};
	struct cli *c = cli_connect(&o);
	const unsigned char *sel;
	unsigned sel_len;
	SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 8);
	assert_memory_equal(sel, "http/1.1", 8);

	static const unsigned char h2[] = "\x02h2";
	struct cli_opts o2 = {.alpn = h2, .alpn_len = 3};
	struct cli *c2 = cli_new(&o2);
	assert_false(cli_handshake(c2));
	assert_string_equal(c2->why, "tlsv1 alert no application protocol");

	struct cli *c3 = cli_connect(NULL);
	SSL_get0_alpn_selected(c3->ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 0);
	assert_string_equal(cli_request(c3, GET_ECHO), "tls=1 sni= GET /echo 0:");
}

/* A server of HTTP/2 answers h2 first, whatever order the client lists
 * them in, http/1.1 to a client without h2, and refuses neither. */
static void test_alpn_http2_server(void **state)
{
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.http2 = true;
	start_server_cfg(&e, 1, &cfg, 0);
	static const unsigned char h1_first[] = "\x08http/1.1\x02h2";
	struct cli_opts o = {.alpn = h1_first, .alpn_len = 12};
	struct cli *c = cli_connect(&o);
	const unsigned char *sel;
	unsigned sel_len;
	SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 2);
	assert_memory_equal(sel, "h2", 2);
	static const unsigned char h1[] = "\x08http/1.1";
	struct cli_opts o2 = {.alpn = h1, .alpn_len = 9};
	struct cli *c2 = cli_connect(&o2);
	SSL_get0_alpn_selected(c2->ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	assert_string_equal(cli_request(c2, GET_ECHO), "tls=1 sni= GET /echo 0:");
	static const unsigned char other[] = "\x06spdy/3";
	struct cli_opts o3 = {.alpn = other, .alpn_len = 7};
	struct cli *c3 = cli_new(&o3);
	assert_false(cli_handshake(c3));
	assert_string_equal(c3->why, "tlsv1 alert no application protocol");
}

/* TLS 1.2 is the floor, and TLS 1.2 gets ECDHE with an AEAD cipher only. */
static void test_protocol_floor(void **state)
{
	start_default_server();
	struct cli_opts o11 = {.max_version = TLS1_1_VERSION};
	struct cli *c = cli_new(&o11);
	assert_false(cli_handshake(c));
	assert_string_equal(c->why, "tlsv1 alert protocol version");

	struct cli_opts o12 = {.max_version = TLS1_2_VERSION};
	c = cli_connect(&o12);
	assert_string_equal(SSL_get_version(c->ssl), "TLSv1.2");
	const char *cipher = SSL_get_cipher_name(c->ssl);
	assert_true(strncmp(cipher, "ECDHE-", 6) == 0);
	assert_true(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20"));
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");

	/* ECDHE with CBC and SHA-1, which OpenSSL's defaults would take. */
	struct cli_opts cbc = {.max_version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-SHA"};
	c = cli_new(&cbc);
	assert_false(cli_handshake(c));
	assert_string_equal(c->why, "sslv3 alert handshake failure");
}

/* A reload swaps the certificate for new handshakes; a connection made
 * before it keeps working, on its old certificate. A reload that fails
 * keeps the set in use. */
static void test_reload(void **state)
{
	struct ig_tls_cert old = entry(NULL, &certs[C_OLD]);
	start_server(&old, 1);
	struct cli_opts o = {.sni = "reload.test", .verify_host = "reload.test"};
	struct cli *a = cli_connect(&o);
	assert_string_equal(peer_cn(a), "old.test");
	assert_string_equal(cli_request(a, GET_ECHO), "tls=1 sni=reload.test GET /echo 0:");
	/* A handshake under way across the reload finishes on the old set. */
	struct cli *mid = cli_new(&o);
	for (int i = 0; i < 3; i++) {
		SSL_connect(mid->ssl);
		ERR_clear_error();
		pump(2);
	}

	char err[256];
	struct ig_tls_cert neu = entry(NULL, &certs[C_NEW]);
	mem_side = SIDE_SERVER;
	assert_int_equal(ig_tls_ctx_reload(F->tls, &neu, 1, err, sizeof err), 0);
	mem_side = SIDE_CLIENT;
	assert_int_equal(ig_tls_ctx_generation(F->tls), 1);

	struct cli *b = cli_connect(&o);
	assert_string_equal(peer_cn(b), "new.test");
	assert_string_equal(cli_request(b, GET_ECHO), "tls=1 sni=reload.test GET /echo 0:");
	assert_string_equal(cli_request(a, GET_ECHO), "tls=1 sni=reload.test GET /echo 0:");
	assert_string_equal(peer_cn(a), "old.test");
	assert_true(cli_handshake(mid));
	assert_string_equal(peer_cn(mid), "old.test");
	assert_string_equal(cli_request(mid, GET_ECHO), "tls=1 sni=reload.test GET /echo 0:");

	/* The key of another certificate: refused, nothing changes. */
	struct ig_tls_cert bad = {.cert_pem = certs[C_OLD].pem,
				  .cert_len = certs[C_OLD].pem_len,
				  .key_pem = certs[C_NEW].key,
				  .key_len = certs[C_NEW].key_len};
	assert_int_equal(ig_tls_ctx_reload(F->tls, &bad, 1, err, sizeof err), IG_ERROR);
	assert_string_equal(err, "certificate 0 (default): tls.key does not match the certificate");
	assert_int_equal(ig_tls_ctx_generation(F->tls), 1);
	struct cli *c = cli_connect(&o);
	assert_string_equal(peer_cn(c), "new.test");
}

/* A context with no certificate refuses every handshake until a reload
 * brings one (a listener whose Secrets are not there yet). */
static void test_empty_then_reload(void **state)
{
	start_server(NULL, 0);
	struct cli *c = cli_new(NULL);
	assert_false(cli_handshake(c));
	assert_string_equal(c->why, "tlsv1 unrecognized name");
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	char err[256];
	mem_side = SIDE_SERVER;
	assert_int_equal(ig_tls_ctx_reload(F->tls, &e, 1, err, sizeof err), 0);
	mem_side = SIDE_CLIENT;
	struct cli_opts o = {.verify_host = "default.test"};
	c = cli_connect(&o);
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
}

/* What ig_tls_ctx_new refuses, with the entry and the reason. */
static void test_bad_certificates(void **state)
{
	char err[256];
	struct cert *api = &certs[C_API];
	struct {
		struct ig_tls_cert e[2];
		size_t n;
		const char *msg;
	} cases[] = {
	    {{entry("a..b", api)}, 1, "certificate 0: hostname \"a..b\" is not a valid hostname"},
	    {{entry("*", api)}, 1, "certificate 0: hostname \"*\" is not a valid hostname"},
	    {{entry("a.*.com", api)},
	     1,
	     "certificate 0: hostname \"a.*.com\" is not a valid hostname"},
	    {{entry("-a.com", api)},
	     1,
	     "certificate 0: hostname \"-a.com\" is not a valid hostname"},
	    {{entry("a.com", api),
	      {.hostname = "b.com",
	       .cert_pem = "junk",
	       .cert_len = 4,
	       .key_pem = api->key,
	       .key_len = api->key_len}},
	     2,
	     "certificate 1 (hostname \"b.com\"): tls.crt: no PEM certificate (no start line)"},
	    {{{.cert_pem = api->pem, .cert_len = api->pem_len, .key_pem = "junk", .key_len = 4}},
	     1,
	     "certificate 0 (default): tls.key: no PEM private key, or an encrypted one"},
	    {{entry("A.com", api), entry("a.com", &certs[C_OTHER])},
	     2,
	     "certificate 1 (hostname \"a.com\"): a certificate with a key of this type is already "
	     "given for this hostname"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		struct ig_tls_ctx *ctx = ig_tls_ctx_new(cases[i].e, cases[i].n, err, sizeof err);
		assert_null(ctx);
		assert_string_equal(err, cases[i].msg);
	}
	/* Security level 2: no RSA key under 2048 bits. */
	struct cert weak;
	make_cert(&weak, "weak.test", "DNS:weak.test", 1024);
	struct ig_tls_cert w = entry(NULL, &weak);
	struct ig_tls_ctx *ctx = ig_tls_ctx_new(&w, 1, err, sizeof err);
	cert_free(&weak);
	assert_null(ctx);
	assert_string_equal(err, "certificate 0 (default): certificate refused: ee key too small");
	assert_int_equal(ERR_peek_error(), 0);
}

/* An RSA and an ECDSA certificate for one hostname: each client gets the
 * one its cipher suites can use. */
static void test_rsa_and_ecdsa(void **state)
{
	struct cert rsa;
	make_cert(&rsa, "rsa.example.com", "DNS:api.example.com", 2048);
	struct ig_tls_cert e[] = {entry("api.example.com", &certs[C_API]),
				  entry("api.example.com", &rsa)};
	start_server(e, 2);
	struct cli_opts o = {.sni = "api.example.com",
			     .max_version = TLS1_2_VERSION,
			     .ciphers = "ECDHE-RSA-AES128-GCM-SHA256"};
	struct cli *c = cli_new(&o);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx), rsa.x);
	bool ok = cli_handshake(c);
	const char *cn = ok ? peer_cn(c) : c->why;
	char got[200];
	snprintf(got, sizeof got, "%s", cn);
	cert_free(&rsa);
	assert_string_equal(got, "rsa.example.com");
	o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
	c = cli_connect(&o);
	assert_string_equal(peer_cn(c), "api.example.com");
}

/* Client certificates: the hostname whose entry asks for them ends the
 * handshake of a client without one its CAs signed; the port's default
 * entry, reached without a server name, asks none. The verify mode
 * follows the entry the server name picks. */
static void test_client_certificates(void **state)
{
	struct ig_tls_cert e[] = {entry("api.example.com", &certs[C_API]),
				  entry(NULL, &certs[C_DEFAULT])};
	e[0].client_auth = IG_TLS_CLIENT_REQUIRE;
	e[0].client_ca_pem = certs[C_OTHER].pem;
	e[0].client_ca_len = certs[C_OTHER].pem_len;
	start_server(e, 2);
	struct cli_opts signed_by_ca = {.sni = "api.example.com", .client = &certs[C_OTHER]};
	/* The exchange carries who the client proved to be, as Envoy's
	 * x-forwarded-client-cert element: the SHA-256 of its DER, its
	 * subject, its DNS names. */
	unsigned char md[32];
	unsigned int mdlen = 0;
	assert_int_equal(X509_digest(certs[C_OTHER].x, EVP_sha256(), md, &mdlen), 1);
	char want[256];
	int at = snprintf(want, sizeof want, "cert=Hash=");
	for (unsigned int i = 0; i < mdlen; i++)
		at += snprintf(want + at, sizeof want - (size_t)at, "%02x", md[i]);
	snprintf(want + at, sizeof want - (size_t)at,
		 ";Subject=\"CN=other.test\";DNS=api.example.com tls=1 sni=api.example.com GET "
		 "/echo 0:");
	struct cli *c = cli_connect(&signed_by_ca);
	assert_string_equal(cli_request(c, GET_ECHO), want);
	assert_string_equal(cli_request(c, GET_ECHO), want); /* made once, kept */
	signed_by_ca.max_version = TLS1_2_VERSION;
	c = cli_connect(&signed_by_ca);
	assert_string_equal(cli_request(c, GET_ECHO), want);
	/* TLS 1.2: the server's refusal ends the handshake itself. */
	struct cli_opts none = {.sni = "api.example.com", .max_version = TLS1_2_VERSION};
	c = cli_new(&none);
	assert_false(cli_handshake(c));
	struct cli_opts stranger = {
	    .sni = "api.example.com", .max_version = TLS1_2_VERSION, .client = &certs[C_WILD]};
	c = cli_new(&stranger);
	assert_false(cli_handshake(c));
	/* TLS 1.3: the client's side of the handshake ends before the server
	 * reads its (missing) certificate; the request gets no answer. */
	none.max_version = 0;
	c = cli_new(&none);
	(void)cli_handshake(c);
	cli_puts(c, GET_ECHO);
	assert_true(cli_wait_closed(c));
	assert_null(strstr(c->data, "HTTP/1.1"));
	c = cli_connect(NULL);
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
	(void)state;
}

/* Entries of one hostname must ask the same of clients. */
static void test_client_certificates_disagree(void **state)
{
	struct cert rsa;
	make_cert(&rsa, "rsa.example.com", "DNS:api.example.com", 2048);
	struct ig_tls_cert e[] = {entry("api.example.com", &certs[C_API]),
				  entry("api.example.com", &rsa)};
	e[0].client_auth = IG_TLS_CLIENT_REQUIRE;
	e[0].client_ca_pem = certs[C_OTHER].pem;
	e[0].client_ca_len = certs[C_OTHER].pem_len;
	char err[256] = "";
	struct ig_tls_ctx *ctx = ig_tls_ctx_new(e, 2, err, sizeof err);
	assert_null(ctx);
	assert_string_equal(err, "certificate 1 (hostname \"api.example.com\"): client certificate "
				 "validation differs from another entry's for this hostname");
	e[1].client_auth = IG_TLS_CLIENT_REQUIRE;
	e[1].client_ca_pem = certs[C_OTHER].pem;
	e[1].client_ca_len = certs[C_OTHER].pem_len;
	ctx = ig_tls_ctx_new(e, 2, err, sizeof err);
	cert_free(&rsa);
	assert_non_null(ctx);
	ig_tls_ctx_unref(ctx);
	assert_int_equal(ERR_peek_error(), 0);
	(void)state;
}

/* Plain HTTP on the TLS port: a 400 in clear text, then a FIN (not a
 * reset) once the client has had time to read it. */
static void test_plain_http_on_tls_port(void **state)
{
	start_default_server();
	struct peer *p = open_peer();
	const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n";
	assert_int_equal(send(p->fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
	assert_true(peer_wait_closed(p));
	assert_true(p->eof);
	assert_int_equal(p->err, 0);
	assert_true(strncmp(p->data, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	assert_non_null(strstr(p->data, "plain HTTP request sent to a TLS port"));
	assert_non_null(strstr(p->data, "Connection: close\r\n"));
	assert_int_equal(F->nreq, 0);
	peer_close(p);
	assert_true(wait_conns(0));
}

/* Bytes that are neither TLS nor HTTP: closed, without a reset, and
 * without the loop spinning meanwhile. */
static void test_garbage_closes(void **state)
{
	start_default_server();
	struct peer *p = open_peer();
	char junk[600];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 7 + 1);
	assert_int_equal(send(p->fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
	assert_true(peer_wait_closed(p));
	assert_true(p->eof);
	assert_int_equal(p->err, 0);
	/* The server lingers on the socket; nothing arrives, nothing runs. */
	assert_true(loop_quiet());
	assert_int_equal(server_conns(), 1);
	peer_close(p);
	assert_true(wait_conns(0));
	assert_int_equal(F->nreq, 0);
}

/* The handshake must finish within the header timeout: a silent client
 * and one stuck in the middle of its ClientHello are closed at it. */
static void test_handshake_timeout(void **state)
{
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.header_timeout_ms = 200;
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	start_server_cfg(&e, 1, &cfg, 0);
	struct peer *silent = open_peer();
	struct peer *partial = open_peer();
	/* A handshake record header and the start of a ClientHello. */
	static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	assert_int_equal(send(partial->fd, hello, sizeof hello - 1, 0), (ssize_t)sizeof hello - 1);
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < 100) {
		pump(5);
		peer_read(silent);
		peer_read(partial);
	}
	assert_false(peer_closed(silent));
	assert_false(peer_closed(partial));
	assert_int_equal(server_conns(), 2);
	assert_true(peer_wait_closed(silent));
	assert_true(peer_wait_closed(partial));
	uint64_t took = ms_since(t0);
	assert_true(took >= 150 && took < 2000);
	assert_true(wait_conns(0));

	/* After a handshake the same deadline covers the head: the client
	 * that sends none is closed with close_notify. */
	struct cli *c = cli_connect(NULL);
	assert_true(cli_wait_closed(c));
	assert_true(c->eof);
	assert_false(c->err);
}

/* A response far larger than the socket buffers goes out whole, with the
 * handler held back (backpressure) and resumed. */
static void test_backpressure(void **state)
{
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.write_high_water = 64 * 1024;
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	start_server_cfg(&e, 1, &cfg, 16384);
	struct cli_opts o = {.rcvbuf = 16384};
	struct cli *c = cli_connect(&o);
	const size_t total = 3 * 1000 * 1000;
	cli_puts(c, "GET /big/3000000 HTTP/1.1\r\nHost: x\r\n\r\n");
	uint64_t t0 = ig_now_ns();
	size_t head = 0;
	while (ms_since(t0) < WAIT_MS * 2) {
		/* Read slowly, so the server's output fills. */
		cli_read_max(c, 32768);
		if (!head) {
			char *e2 = strstr(c->data, "\r\n\r\n");
			if (e2)
				head = (size_t)(e2 - c->data) + 4;
		}
		if (head && c->len >= head + total)
			break;
		if (c->eof || c->err)
			break;
		pump(1);
	}
	assert_true(head > 0);
	assert_int_equal(c->len, head + total);
	for (size_t i = 0; i < total; i++)
		if (c->data[head + i] != pattern_byte(i))
			fail_msg("byte %zu differs", i);
	assert_true(F->nfull > 0);
	assert_true(F->nwritable > 0);
	/* The connection is still usable. */
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
}

/* Pipelined requests in one TLS record, and a large body spread over many
 * records followed by a request: OpenSSL holds bytes the socket no longer
 * announces, and they must be read all the same. */
static void test_pipelining(void **state)
{
	start_default_server();
	struct cli *c = cli_connect(NULL);
	cli_puts(c, "GET /delay/30 HTTP/1.1\r\nHost: x\r\n\r\n"
		    "GET /echo?2 HTTP/1.1\r\nHost: x\r\n\r\n"
		    "GET /echo?3 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(cli_wait_responses(c, 3));
	const char *r1 = strstr(c->data, "tls=1 sni= GET /delay/30 0:");
	const char *r2 = strstr(c->data, "tls=1 sni= GET /echo?2 0:");
	const char *r3 = strstr(c->data, "tls=1 sni= GET /echo?3 0:");
	assert_true(r1 && r2 && r3 && r1 < r2 && r2 < r3);

	const size_t n = 300 * 1000;
	char *big = malloc(n + 256);
	int h =
	    snprintf(big, 256, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
	for (size_t i = 0; i < n; i++)
		big[h + (int)i] = pattern_byte(i);
	c->len = 0;
	/* The body and the next request, written as one stream. */
	memcpy(big + h + n, "GET /echo?after HTTP/1.1\r\nHost: x\r\n\r\n", 38);
	cli_write(c, big, (size_t)h + n + 38);
	bool ok = cli_wait_responses(c, 2);
	char prefix[64];
	snprintf(prefix, sizeof prefix, "tls=1 sni= POST /echo %zu:", n);
	const char *p = ok ? strstr(c->data, prefix) : NULL;
	bool same = p && memcmp(p + strlen(prefix), big + h, n) == 0;
	free(big);
	assert_true(ok);
	assert_true(same);
	assert_non_null(strstr(c->data, "tls=1 sni= GET /echo?after 0:"));
	assert_int_equal(F->nreq, 5);
}

/* A client that takes no response bytes is closed after the send
 * timeout, and the handler hears of it. */
static void test_send_timeout(void **state)
{
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.send_timeout_ms = 200;
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	start_server_cfg(&e, 1, &cfg, 16384);
	struct cli_opts o = {.rcvbuf = 16384};
	struct cli *c = cli_connect(&o);
	cli_puts(c, "GET /big/50000000 HTTP/1.1\r\nHost: x\r\n\r\n");
	uint64_t t0 = ig_now_ns();
	while (server_conns() && ms_since(t0) < WAIT_MS)
		pump(10);
	assert_int_equal(server_conns(), 0);
	assert_true(ms_since(t0) >= 150);
	assert_int_equal(F->naborts, 1);
}

/* Closes send close_notify: after a "Connection: close" response, and
 * when an idle kept-alive connection times out. */
static void test_close_notify(void **state)
{
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.keepalive_timeout_ms = 150;
	struct ig_tls_cert e = entry(NULL, &certs[C_DEFAULT]);
	start_server_cfg(&e, 1, &cfg, 0);
	struct cli *c = cli_connect(NULL);
	cli_puts(c, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_true(cli_wait_closed(c));
	assert_true(c->eof);
	assert_false(c->err);
	assert_non_null(strstr(c->data, "Connection: close\r\n"));
	assert_string_equal(body_of(c), "tls=1 sni= GET /echo 0:");

	struct cli *idle = cli_connect(NULL);
	assert_string_equal(cli_request(idle, GET_ECHO), "tls=1 sni= GET /echo 0:");
	uint64_t t0 = ig_now_ns();
	assert_true(cli_wait_closed(idle));
	assert_true(ms_since(t0) >= 100);
	assert_true(idle->eof);
	assert_false(idle->err);
}

/* A client that goes away in the middle of a request: the handler gets
 * on_abort, the server lets go, nothing is written to the dead socket
 * with a signal. */
static void test_client_gone(void **state)
{
	start_default_server();
	struct cli *c = cli_connect(NULL);
	cli_puts(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	uint64_t t0 = ig_now_ns();
	while (!F->held && ms_since(t0) < WAIT_MS)
		pump(2);
	assert_non_null(F->held);
	set_linger0(c->fd);
	close(c->fd);
	c->fd = -1;
	assert_true(wait_conns(0));
	assert_int_equal(F->naborts, 1);
	assert_null(F->held);
}

/* An idle TLS connection holds no record buffers: what OpenSSL keeps for
 * it on the server side is the SSL object and its session, about 14 KiB
 * with OpenSSL 3.0, against about 46 KiB with the read and write buffers
 * (17 KiB or more each) kept. */
static void test_idle_holds_no_buffers(void **state)
{
	start_default_server();
	long long before = __atomic_load_n(&mem_live[SIDE_SERVER], __ATOMIC_RELAXED);
	enum { N = 8 };
	struct cli *cs[N];
	for (int i = 0; i < N; i++) {
		cs[i] = cli_connect(NULL);
		assert_string_equal(cli_request(cs[i], GET_ECHO), "tls=1 sni= GET /echo 0:");
	}
	assert_true(loop_quiet());
	long long idle = __atomic_load_n(&mem_live[SIDE_SERVER], __ATOMIC_RELAXED);
	long long per = (idle - before) / N;
	print_message("server-side OpenSSL memory per idle TLS connection: %lld bytes\n", per);
	assert_true(per > 0);
	assert_true(per < 20 * 1024);
	/* A request in flight holds the buffers; the next idle period not. */
	cli_puts(cs[0], "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	uint64_t t0 = ig_now_ns();
	while (!F->held && ms_since(t0) < WAIT_MS)
		pump(2);
	assert_non_null(F->held);
	assert_int_equal(ig_http_respond(F->held, 200, NULL, "ok", 2, NULL, 0), 0);
	F->held = NULL;
	assert_true(cli_wait_responses(cs[0], 1));
	for (int i = 0; i < 5; i++)
		pump(2);
	long long again = __atomic_load_n(&mem_live[SIDE_SERVER], __ATOMIC_RELAXED);
	assert_true(again - idle < 1024);
	for (int i = 0; i < N; i++) {
		close(cs[i]->fd);
		cs[i]->fd = -1;
	}
	assert_true(wait_conns(0));
}

/* A server flight larger than the socket takes at once (a long chain
 * behind a small send buffer, a client with a small receive buffer): the
 * handshake waits for writability in the middle and completes. */
static void test_handshake_blocked_on_write(void **state)
{
	size_t len = certs[C_DEFAULT].pem_len;
	for (int i = 0; i < NCERTS; i++)
		len += certs[i].pem_len * 4;
	char *chain = malloc(len + 1);
	size_t off = 0;
	memcpy(chain, certs[C_DEFAULT].pem, certs[C_DEFAULT].pem_len);
	off += certs[C_DEFAULT].pem_len;
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < NCERTS; i++) {
			memcpy(chain + off, certs[i].pem, certs[i].pem_len);
			off += certs[i].pem_len;
		}
	struct ig_tls_cert e = {.cert_pem = chain,
				.cert_len = off,
				.key_pem = certs[C_DEFAULT].key,
				.key_len = certs[C_DEFAULT].key_len};
	start_server_cfg(&e, 1, NULL, 4096);
	free(chain);
	struct cli_opts o = {.verify_host = "default.test", .rcvbuf = 2048};
	struct cli *c = cli_connect(&o);
	assert_string_equal(peer_cn(c), "default.test");
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
}

/* A client's TLS 1.3 KeyUpdate (asking for ours back) in the middle of a
 * kept-alive connection: requests go on. */
static void test_key_update(void **state)
{
	start_default_server();
	struct cli *c = cli_connect(NULL);
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED), 1);
		assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
	}
	assert_int_equal(F->nreq, 4);
	assert_true(loop_quiet());
}

/* TLS 1.2 renegotiation is refused (a no_renegotiation warning), and
 * the connection is not left spinning. */
static void test_renegotiation_refused(void **state)
{
	start_default_server();
	struct cli_opts o = {.max_version = TLS1_2_VERSION};
	struct cli *c = cli_connect(&o);
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
	assert_int_equal(SSL_renegotiate(c->ssl), 1);
	/* The client gives up on the server's warning with a fatal alert,
	 * and the server closes. */
	assert_false(cli_handshake(c));
	assert_string_equal(c->why, "no renegotiation");
	assert_true(wait_conns(0));
	assert_true(loop_quiet());
	assert_int_equal(F->nreq, 1);
}

/* A drain closes connections still in their handshake, as idle ones. */
static void test_drain(void **state)
{
	start_default_server();
	struct peer *p = open_peer();
	struct cli *c = cli_connect(NULL);
	assert_string_equal(cli_request(c, GET_ECHO), "tls=1 sni= GET /echo 0:");
	assert_true(wait_conns(2));
	assert_int_equal(ig_http_server_busy(F->srv), 0);
	ig_http_server_drain(F->srv);
	assert_int_equal(server_conns(), 0);
	assert_true(peer_wait_closed(p));
	assert_true(cli_wait_closed(c));
}

/* ---- curl, a client we did not write ---- */

static const char *const tmp_files[] = {"ca.pem", "out", "client.py"};

static void rm_dir(void)
{
	if (!F || !F->dir[0])
		return;
	char path[128];
	for (size_t i = 0; i < sizeof tmp_files / sizeof tmp_files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", F->dir, tmp_files[i]);
		unlink(path);
	}
	rmdir(F->dir);
	F->dir[0] = '\0';
}

/* A file in the test's temporary directory (made on first use). */
static void tmp_path(char *out, size_t len, const char *name)
{
	if (!F->dir[0]) {
		snprintf(F->dir, sizeof F->dir, "/tmp/ig-tls-XXXXXX");
		assert_non_null(mkdtemp(F->dir));
	}
	snprintf(out, len, "%s/%s", F->dir, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Runs a program while the loop serves it; its stdout and stderr go to
 * out. Returns its exit status. */
static int run_child(const char *path, char *const argv[], char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	pid_t pid;
	int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	assert_int_equal(rc, 0);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	size_t len = 0;
	int status = -1;
	uint64_t t0 = ig_now_ns();
	while (ms_since(t0) < WAIT_MS * 2) {
		pump(5);
		ssize_t n = read(pipefd[0], out + len, outlen - 1 - len);
		if (n > 0)
			len += (size_t)n;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ssize_t n;
	while ((n = read(pipefd[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)n;
	close(pipefd[0]);
	out[len] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* curl verifying the certificate SNI picked, with ALPN (it offers h2). */
static void test_curl(void **state)
{
	if (access("/usr/bin/curl", X_OK) != 0)
		skip();
	struct ig_tls_cert e[] = {entry(NULL, &certs[C_DEFAULT]),
				  entry("api.example.com", &certs[C_API])};
	start_server(e, 2);
	char ca[128], out[128], resolve[96], url[96];
	tmp_path(ca, sizeof ca, "ca.pem");
	tmp_path(out, sizeof out, "out");
	write_file(ca, certs[C_API].pem, certs[C_API].pem_len);
	snprintf(resolve, sizeof resolve, "api.example.com:%d:127.0.0.1", F->port);
	snprintf(url, sizeof url, "https://api.example.com:%d/echo", F->port);
	char *argv[] = {"curl",	    "-sS", "--noproxy", "*",
			"--cacert", ca,	   "--resolve", resolve,
			"-o",	    out,   "-w",	"%{http_version} %{response_code}",
			"-d",	    "hi",  url,		NULL};
	char w[512];
	int rc = run_child("/usr/bin/curl", argv, w, sizeof w);
	if (rc != 0)
		fail_msg("curl: exit %d: %s", rc, w);
	assert_string_equal(w, "1.1 200");
	char body[256] = "";
	FILE *f = fopen(out, "r");
	assert_non_null(f);
	size_t bl = fread(body, 1, sizeof body - 1, f);
	fclose(f);
	body[bl] = '\0';
	assert_string_equal(body, "tls=1 sni=api.example.com POST /echo 2:hi");
}

/* Python's ssl module with its default context: the certificate of the
 * wildcard entry verified for the name, ALPN, and a "Connection: close"
 * response read to its end. */
static const char python_client[] =
    "import socket, ssl, sys\n"
    "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
    "ctx.set_alpn_protocols(['h2', 'http/1.1'])\n"
    "raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s = ctx.wrap_socket(raw, server_hostname='x.example.com')\n"
    "s.sendall(b'GET /echo HTTP/1.1\\r\\nHost: x.example.com\\r\\nConnection: close\\r\\n\\r\\n')\n"
    "data = b''\n"
    "while True:\n"
    "    chunk = s.recv(65536)\n"
    "    if not chunk:\n"
    "        break\n"
    "    data += chunk\n"
    "print(s.selected_alpn_protocol(), s.version(), data.split(b'\\r\\n\\r\\n', 1)[1].decode())\n"
    "s.close()\n";

static void test_python_ssl(void **state)
{
	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	struct ig_tls_cert e[] = {entry("*.example.com", &certs[C_WILD]),
				  entry("api.example.com", &certs[C_API])};
	start_server(e, 2);
	char ca[128], script[128], port[16];
	tmp_path(ca, sizeof ca, "ca.pem");
	tmp_path(script, sizeof script, "client.py");
	write_file(ca, certs[C_WILD].pem, certs[C_WILD].pem_len);
	write_file(script, python_client, sizeof python_client - 1);
	snprintf(port, sizeof port, "%d", F->port);
	char *argv[] = {"python3", script, port, ca, NULL};
	char out[1024];
	int rc = run_child("/usr/bin/python3", argv, out, sizeof out);
	if (rc != 0)
		fail_msg("python3: exit %d: %s", rc, out);
	assert_string_equal(out, "http/1.1 TLSv1.3 tls=1 sni=x.example.com GET /echo 0:\n");
}

/* ---- threads: one context shared by two workers, reloaded meanwhile ---- */

struct worker {
	struct ig_loop loop;
	struct ig_http_server *srv;
	int port;
	pthread_t th;
};

static void mt_handler(struct ig_http_exchange *ex, void *ctx)
{
	ig_http_respond(ex, 200, "text/plain", "ok", 2, NULL, 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	mem_side = SIDE_SERVER;
	ig_loop_run(&w->loop);
	ig_arena_thread_cleanup(); /* the thread's cache of arena blocks */
	return NULL;
}

struct reloader {
	struct ig_tls_ctx *ctx;
	volatile int stop;
	int reloads;
	pthread_t th;
};

static void *reloader_main(void *arg)
{
	struct reloader *r = arg;
	mem_side = SIDE_SERVER;
	for (int i = 0; !__atomic_load_n(&r->stop, __ATOMIC_RELAXED) && i < 200; i++) {
		struct ig_tls_cert e = entry(NULL, &certs[i % 2 ? C_OLD : C_NEW]);
		char err[256];
		if (ig_tls_ctx_reload(r->ctx, &e, 1, err, sizeof err) == 0)
			r->reloads++;
		usleep(2000);
	}
	return NULL;
}

/* A blocking client: handshake, request, response; the certificate's CN. */
static bool blocking_get(int port, char *cn, size_t cnlen)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return false;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	trust_all(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "reload.test");
	SSL_set1_host(ssl, "reload.test");
	bool ok = false;
	if (SSL_connect(ssl) == 1) {
		X509 *x = SSL_get1_peer_certificate(ssl);
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)cnlen);
		X509_free(x);
		const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
		char buf[1024];
		size_t len = 0, n;
		if (SSL_write(ssl, req, sizeof req - 1) > 0) {
			while (SSL_read_ex(ssl, buf + len, sizeof buf - 1 - len, &n) == 1)
				len += n;
			buf[len] = '\0';
			ok = strstr(buf, "\r\n\r\nok") != NULL;
		}
	}
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ok;
}

static void test_shared_context_threads(void **state)
{
	struct ig_tls_cert e = entry(NULL, &certs[C_OLD]);
	struct ig_tls_ctx *ctx = new_ctx(&e, 1);
	struct worker w[2];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ig_loop_init(&w[i].loop), 0);
		int fd = tcp_listen(64, &w[i].port);
		assert_true(fd >= 0);
		w[i].srv = ig_http_server_new_tls(&w[i].loop, fd, NULL, ctx, mt_handler, NULL);
		assert_non_null(w[i].srv);
	}
	/* The servers hold their own references. */
	ig_tls_ctx_unref(ctx);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
	struct reloader r = {.ctx = ctx};
	assert_int_equal(pthread_create(&r.th, NULL, reloader_main, &r), 0);
	int seen_old = 0, seen_new = 0, fails = 0;
	for (int i = 0; i < 40; i++) {
		char cn[64] = "";
		if (!blocking_get(w[i % 2].port, cn, sizeof cn))
			fails++;
		seen_old += strcmp(cn, "old.test") == 0;
		seen_new += strcmp(cn, "new.test") == 0;
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	pthread_join(r.th, NULL);
	for (int i = 0; i < 2; i++) {
		ig_loop_stop(&w[i].loop);
		pthread_join(w[i].th, NULL);
		ig_http_server_free(w[i].srv);
		ig_loop_free(&w[i].loop);
	}
	assert_int_equal(fails, 0);
	assert_int_equal(seen_old + seen_new, 40);
	assert_true(r.reloads > 0);
}

int main(void)
{
	/* Before OpenSSL allocates anything. */
	if (!CRYPTO_set_mem_functions(mem_malloc, mem_realloc, mem_free)) {
		fprintf(stderr, "CRYPTO_set_mem_functions: too late\n");
		return 1;
	}
	ig_log_level = IG_LOG_WARN;
	if (getenv("IG_TEST_DEBUG"))
		ig_log_level = IG_LOG_DEBUG;
	signal(SIGPIPE, SIG_DFL); /* the server must never raise it */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_request_over_tls),
	    T(test_sni_selects_certificate),
	    T(test_sni_without_default),
	    T(test_alpn),
	    T(test_alpn_http2_server),
	    T(test_protocol_floor),
	    T(test_reload),
	    T(test_empty_then_reload),
	    T(test_bad_certificates),
	    T(test_rsa_and_ecdsa),
	    T(test_client_certificates),
	    T(test_client_certificates_disagree),
	    T(test_plain_http_on_tls_port),
	    T(test_garbage_closes),
	    T(test_handshake_timeout),
	    T(test_backpressure),
	    T(test_pipelining),
	    T(test_send_timeout),
	    T(test_close_notify),
	    T(test_client_gone),
	    T(test_idle_holds_no_buffers),
	    T(test_handshake_blocked_on_write),
	    T(test_key_update),
	    T(test_renegotiation_refused),
	    T(test_drain),
	    T(test_curl),
	    T(test_python_ssl),
	    T(test_shared_context_threads),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
