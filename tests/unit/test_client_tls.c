/* Unit tests for the upstream client over TLS (BackendTLSPolicy): our own
 * HTTPS server and the client on one loop, one thread, 127.0.0.1. What
 * the policy's `validation` asks is checked here: the roots it names, the
 * server name it sends, the identity it accepts (the hostname, or one of
 * the subjectAltNames), and every failure as a connect fault with its
 * reason. Certificates are made in memory at the start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/log.h"
#include "http/client.h"
#include "http/server.h"
#include "http/tls.h"
#include "certs.h"
#include "loopback.h"

#define WAIT_MS 3000

/* ---- certificates (certs.h) ---- */

enum { C_ABC, C_URI, C_OTHER, C_CN_ONLY, C_PARTIAL, NCERTS };
static struct cert certs[NCERTS];

static int group_setup(void **state)
{
	make_cert(&certs[C_ABC], "abc.example.com", "DNS:abc.example.com", 0);
	make_cert(&certs[C_URI], "uri.test", "DNS:uri.test,URI:spiffe://cluster.test/ns/a/sa/b", 0);
	make_cert(&certs[C_OTHER], "abc.example.com", "DNS:abc.example.com", 0);
	make_cert(&certs[C_CN_ONLY], "cn.test", NULL, 0);
	make_cert(&certs[C_PARTIAL], "partial.test", "DNS:ab*.partial.test", 0);
	return 0;
}

static int group_teardown(void **state)
{
	for (int i = 0; i < NCERTS; i++)
		cert_free(&certs[i]);
	return 0;
}

/* ---- the fixture: an HTTPS server (abc.example.com by default,
 * uri.test by SNI) and one client ---- */

struct fx {
	struct ig_loop loop;
	struct ig_http_server *srv;
	struct ig_tls_ctx *srv_tls;
	struct ig_tls_client_ctx *cli_tls;
	int lfd, port;
	int nreq;
	char sni[64];
	struct ig_http_client *c;
	int nhead, ndone, nerror, nidle;
	int status;
	struct ig_buf body;
	struct ig_http_client_fault fault;
	char detail[128];
	bool reused;
};

static struct fx *F;

static char pattern_byte(size_t i)
{
	return (char)('a' + i % 23);
}

/* The server side of a tunnel: every byte comes back, upper-cased. */
static int echo_upper(struct ig_http_exchange *ex, const char *data, size_t len)
{
	char *up = malloc(len);
	assert_non_null(up);
	for (size_t i = 0; i < len; i++)
		up[i] = (char)(data[i] >= 'a' && data[i] <= 'z' ? data[i] - 32 : data[i]);
	int rc = ig_http_write(ex, up, len);
	free(up);
	(void)rc; /* a full output only slows the client down */
	return 0;
}

static void handler(struct ig_http_exchange *ex, void *ctx)
{
	struct fx *f = ctx;
	f->nreq++;
	if (ex->req.path.len == 3 && memcmp(ex->req.path.ptr, "/ws", 3) == 0) {
		static const struct ig_http_header up[] = {
		    {IG_STR("Upgrade"), IG_STR("websocket")}};
		assert_int_equal(ig_http_switch_protocols(ex, up, 1, echo_upper), 0);
		return;
	}
	snprintf(f->sni, sizeof f->sni, "%.*s", IG_STR_FMT(ex->sni));
	const char *big = "/big/";
	if (ex->req.path.len > 5 && memcmp(ex->req.path.ptr, big, 5) == 0) {
		size_t n = strtoul(ex->req.path.ptr + 5, NULL, 10);
		char *b = malloc(n);
		assert_non_null(b);
		for (size_t i = 0; i < n; i++)
			b[i] = pattern_byte(i);
		assert_int_equal(
		    ig_http_respond(ex, 200, "application/octet-stream", b, n, NULL, 0), 0);
		free(b);
		return;
	}
	struct ig_buf b = {0};
	ig_buf_printf(&b, "tls=%d sni=%.*s %.*s %.*s %zu:", ex->tls, IG_STR_FMT(ex->sni),
		      IG_STR_FMT(ex->req.method), IG_STR_FMT(ex->req.target), ex->body.len);
	ig_buf_append(&b, ex->body.ptr, ex->body.len);
	assert_int_equal(ig_http_respond(ex, 200, "text/plain", b.ptr, b.len, NULL, 0), 0);
	ig_buf_free(&b);
}

static int on_head(struct ig_http_client *c, const struct ig_http_response *res, void *ud)
{
	F->nhead++;
	F->status = res->status;
	return 0;
}

static int on_body(struct ig_http_client *c, const char *data, size_t len, void *ud)
{
	assert_int_equal(ig_buf_append(&F->body, data, len), 0);
	return 0;
}

static void on_done(struct ig_http_client *c, void *ud)
{
	F->ndone++;
	F->reused = ig_http_client_was_reused(c);
}

static void on_error(struct ig_http_client *c, const struct ig_http_client_fault *f, void *ud)
{
	F->nerror++;
	F->fault = *f;
	snprintf(F->detail, sizeof F->detail, "%s", f->detail ? f->detail : "");
	F->fault.detail = NULL;
}

static void on_idle(struct ig_http_client *c, void *ud)
{
	F->nidle++;
}

static const struct ig_http_client_cbs cbs = {
    .on_head = on_head, .on_body = on_body, .on_done = on_done, .on_error = on_error};

static int setup(void **state)
{
	F = calloc(1, sizeof *F);
	assert_non_null(F);
	assert_int_equal(ig_loop_init(&F->loop), 0);
	struct ig_tls_cert e[] = {
	    {.cert_pem = certs[C_ABC].pem,
	     .cert_len = certs[C_ABC].pem_len,
	     .key_pem = certs[C_ABC].key,
	     .key_len = certs[C_ABC].key_len},
	    {.hostname = "uri.test",
	     .cert_pem = certs[C_URI].pem,
	     .cert_len = certs[C_URI].pem_len,
	     .key_pem = certs[C_URI].key,
	     .key_len = certs[C_URI].key_len},
	    {.hostname = "cn.test",
	     .cert_pem = certs[C_CN_ONLY].pem,
	     .cert_len = certs[C_CN_ONLY].pem_len,
	     .key_pem = certs[C_CN_ONLY].key,
	     .key_len = certs[C_CN_ONLY].key_len},
	    {.hostname = "abc.partial.test",
	     .cert_pem = certs[C_PARTIAL].pem,
	     .cert_len = certs[C_PARTIAL].pem_len,
	     .key_pem = certs[C_PARTIAL].key,
	     .key_len = certs[C_PARTIAL].key_len},
	};
	char err[256] = "";
	F->srv_tls = ig_tls_ctx_new(e, 4, err, sizeof err);
	if (!F->srv_tls)
		fail_msg("ig_tls_ctx_new: %s", err);
	F->lfd = tcp_listen(64, &F->port);
	assert_true(F->lfd >= 0);
	struct ig_http_server_config cfg;
	ig_http_server_config_defaults(&cfg);
	cfg.keepalive_timeout_ms = 300;
	F->srv = ig_http_server_new_tls(&F->loop, F->lfd, &cfg, F->srv_tls, handler, F);
	assert_non_null(F->srv);
	*state = F;
	return 0;
}

static int teardown(void **state)
{
	ig_http_client_close(F->c);
	ig_http_server_free(F->srv);
	ig_tls_ctx_unref(F->srv_tls);
	ig_tls_client_ctx_unref(F->cli_tls);
	ig_loop_free(&F->loop);
	ig_buf_free(&F->body);
	free(F);
	F = NULL;
	return 0;
}

static void client_ctx(const struct ig_tls_client_opts *o)
{
	char err[256] = "";
	ig_tls_client_ctx_unref(F->cli_tls);
	F->cli_tls = ig_tls_client_ctx_new(o, err, sizeof err);
	if (!F->cli_tls)
		fail_msg("ig_tls_client_ctx_new: %s", err);
}

static void trust(int cert, const char *sni)
{
	client_ctx(&(struct ig_tls_client_opts){
	    .ca_pem = certs[cert].pem, .ca_len = certs[cert].pem_len, .sni = sni});
}

/* A new client of the current context to 127.0.0.1:port. */
static void connect_to(int port, uint64_t timeout_ms)
{
	struct sockaddr_in sin = loopback_addr(port);
	ig_http_client_close(F->c);
	F->c = ig_http_client_connect_tls(&F->loop, (struct sockaddr *)&sin, sizeof sin, timeout_ms,
					  F->cli_tls);
	assert_non_null(F->c);
}

static void connect_client(void)
{
	connect_to(F->port, 2000);
}

static void send_get(const char *path)
{
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: abc.example.com\r\n\r\n", path);
	F->nhead = F->ndone = F->nerror = 0;
	ig_buf_reset(&F->body);
	assert_int_equal(ig_http_client_send(F->c, req, (size_t)n, false, 2000, &cbs, F), 0);
}

/* Runs the loop until the response ended or failed. */
static void wait_end(void)
{
	for (int ms = 0; ms < WAIT_MS && !F->ndone && !F->nerror; ms += 10)
		ig_loop_run_once(&F->loop, 10);
}

static bool body_has(const char *s)
{
	return F->body.len && memmem(F->body.ptr, F->body.len, s, strlen(s)) != NULL;
}

/* ---- tests ---- */

static void test_request_over_tls(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	send_get("/x");
	wait_end();
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->ndone, 1);
	assert_int_equal(F->status, 200);
	assert_true(body_has("tls=1 sni=abc.example.com GET /x 0:"));
	const char *v = ig_http_client_tls_version(F->c);
	assert_non_null(v);
	assert_true(strncmp(v, "TLSv1.", 6) == 0);
	assert_string_equal(ig_tls_client_ctx_sni(F->cli_tls), "abc.example.com");
}

/* A new connection of the same context resumes the session the server
 * gave the first one (a ticket): no key exchange or certificate check
 * again. Another context (another policy) starts afresh. */
static void test_session_resumed(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	send_get("/first");
	wait_end();
	assert_int_equal(F->ndone, 1);
	assert_false(ig_http_client_tls_resumed(F->c));
	for (int i = 0; i < 2; i++) {
		connect_client();
		send_get("/again");
		wait_end();
		assert_int_equal(F->nerror, 0);
		assert_int_equal(F->ndone, 1);
		assert_true(ig_http_client_tls_resumed(F->c));
		assert_true(body_has("sni=abc.example.com GET /again"));
	}
	trust(C_ABC, "abc.example.com");
	connect_client();
	send_get("/fresh");
	wait_end();
	assert_int_equal(F->ndone, 1);
	assert_false(ig_http_client_tls_resumed(F->c));
}

/* A POST whose head and body are separate spans, then a second request
 * on the same connection after it was parked a while (a TLS 1.3 server
 * sends session tickets after the handshake: they must not end it). */
static void test_keepalive_park_and_post(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	send_get("/first");
	wait_end();
	assert_int_equal(F->ndone, 1);
	assert_true(ig_http_client_reusable(F->c));
	ig_http_client_park(F->c, on_idle, F);
	for (int i = 0; i < 10; i++)
		ig_loop_run_once(&F->loop, 10);
	assert_int_equal(F->nidle, 0);
	static const char head[] = "POST /second HTTP/1.1\r\nHost: abc.example.com\r\n"
				   "Content-Length: 5\r\n\r\n";
	struct ig_str parts[] = {{head, sizeof head - 1}, {"hello", 5}};
	F->ndone = F->nerror = 0;
	ig_buf_reset(&F->body);
	assert_int_equal(ig_http_client_sendv(F->c, parts, 2, false, 2000, &cbs, F), 0);
	wait_end();
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->ndone, 1);
	assert_true(F->reused);
	assert_true(body_has("POST /second 5:hello"));
	assert_int_equal(F->nreq, 2);
}

/* The server closes an idle kept-alive connection (its keep-alive
 * timeout): the parked client tells its owner. */
static void test_parked_connection_closed(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	send_get("/x");
	wait_end();
	assert_int_equal(F->ndone, 1);
	ig_http_client_park(F->c, on_idle, F);
	for (int ms = 0; ms < WAIT_MS && !F->nidle; ms += 10)
		ig_loop_run_once(&F->loop, 10);
	assert_int_equal(F->nidle, 1);
}

static void test_big_response(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	size_t n = 3 * 1024 * 1024 + 17;
	char path[64];
	snprintf(path, sizeof path, "/big/%zu", n);
	send_get(path);
	wait_end();
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->ndone, 1);
	assert_int_equal(F->body.len, n);
	for (size_t i = 0; i < n; i += 4099)
		assert_int_equal(F->body.ptr[i], pattern_byte(i));
	assert_int_equal(F->body.ptr[n - 1], pattern_byte(n - 1));
}

/* A 101 turns the TLS connection into a tunnel: bytes both ways go
 * through the TLS session, a 300 KB message (above the tunnel's
 * high-water mark, so it is buffered and flushed) included. */
static void test_tunnel_over_tls(void **state)
{
	trust(C_ABC, "abc.example.com");
	connect_client();
	static const char req[] = "GET /ws HTTP/1.1\r\nHost: abc.example.com\r\n"
				  "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	assert_int_equal(ig_http_client_send(F->c, req, sizeof req - 1, false, 2000, &cbs, F), 0);
	ig_http_client_allow_upgrade(F->c);
	for (int ms = 0; ms < WAIT_MS && !F->nhead && !F->nerror; ms += 10)
		ig_loop_run_once(&F->loop, 10);
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->status, 101);
	size_t n = 300 * 1024;
	char *msg = malloc(n);
	assert_non_null(msg);
	for (size_t i = 0; i < n; i++)
		msg[i] = (char)('a' + i % 26);
	assert_true(ig_http_client_write(F->c, "hello ", 6) >= 0);
	assert_true(ig_http_client_write(F->c, msg, n) >= 0);
	for (int ms = 0; ms < WAIT_MS && F->body.len < n + 6 && !F->nerror; ms += 10)
		ig_loop_run_once(&F->loop, 10);
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->body.len, n + 6);
	assert_memory_equal(F->body.ptr, "HELLO ", 6);
	for (size_t i = 0; i < n; i += 977)
		assert_int_equal(F->body.ptr[6 + i], 'A' + (int)(i % 26));
	free(msg);
}

static void expect_connect_failure(const char *why)
{
	wait_end();
	assert_int_equal(F->ndone, 0);
	assert_int_equal(F->nerror, 1);
	assert_int_equal(F->fault.kind, IG_CLIENT_CONNECT);
	assert_int_equal(F->fault.err, EPROTO);
	assert_false(F->fault.sent_all);
	if (!strstr(F->detail, why))
		fail_msg("detail \"%s\" lacks \"%s\"", F->detail, why);
	assert_int_equal(F->nreq, 0); /* nothing reached the server */
}

/* The certificate is for abc.example.com; the policy's hostname is not. */
static void test_hostname_mismatch(void **state)
{
	trust(C_ABC, "other.example.com");
	connect_client();
	send_get("/x");
	expect_connect_failure("hostname mismatch");
}

/* Same name, a certificate the roots did not sign. */
static void test_unknown_root(void **state)
{
	trust(C_OTHER, "abc.example.com");
	connect_client();
	send_get("/x");
	expect_connect_failure("certificate verify failed");
}

/* A context trusting `cert`, sending sni, checking the given SANs. */
static void san_ctx(int cert, const char *sni, const char **dns, size_t ndns, const char **uris,
		    size_t nuris)
{
	client_ctx(&(struct ig_tls_client_opts){.ca_pem = certs[cert].pem,
						.ca_len = certs[cert].pem_len,
						.sni = sni,
						.names = dns,
						.nnames = ndns,
						.uris = uris,
						.nuris = nuris});
}

/* subjectAltNames: the hostname is only the SNI; any listed DNS name or
 * URI in the certificate passes, and nothing else does. */
static void test_subject_alt_names(void **state)
{
	const char *dns[] = {"nope.example.com", "abc.example.com"};
	san_ctx(C_ABC, "elsewhere.example.net", dns, 2, NULL, 0);
	connect_client();
	send_get("/dns");
	wait_end();
	assert_int_equal(F->ndone, 1);
	assert_true(body_has("sni=elsewhere.example.net GET /dns"));

	const char *uri[] = {"spiffe://cluster.test/ns/a/sa/b"};
	san_ctx(C_URI, "uri.test", NULL, 0, uri, 1);
	connect_client();
	send_get("/uri");
	wait_end();
	assert_int_equal(F->nerror, 0);
	assert_int_equal(F->ndone, 1);
	assert_true(body_has("sni=uri.test GET /uri"));

	/* The hostname matches the certificate, but the SANs asked for do
	 * not: it fails. */
	const char *wrong_uri[] = {"spiffe://cluster.test/ns/a/sa/other"};
	const char *wrong_dns[] = {"nope.example.com"};
	san_ctx(C_URI, "uri.test", wrong_dns, 1, wrong_uri, 1);
	connect_client();
	F->nreq = 0;
	send_get("/x");
	expect_connect_failure("hostname mismatch");
}

/* A certificate whose name is only its subject CN, or only a partial
 * wildcard ("ab*.partial.test"): neither the hostname nor a subjectAltName
 * matches it (RFC 9525 §6.3 and §6.4.3; Envoy and Go check SANs alone). */
static void test_subject_cn_and_partial_wildcard(void **state)
{
	trust(C_CN_ONLY, "cn.test");
	connect_client();
	send_get("/x");
	expect_connect_failure("hostname mismatch");

	const char *dns[] = {"cn.test"};
	san_ctx(C_CN_ONLY, "cn.test", dns, 1, NULL, 0);
	connect_client();
	send_get("/x");
	expect_connect_failure("hostname mismatch");

	trust(C_PARTIAL, "abc.partial.test");
	connect_client();
	send_get("/x");
	expect_connect_failure("hostname mismatch");
}

/* A backend that speaks clear text answers the ClientHello with an HTTP
 * 400: the handshake fails, nothing is sent in clear. */
static void test_plaintext_backend(void **state)
{
	int port;
	int lfd = tcp_listen(8, &port);
	assert_true(lfd >= 0);
	struct ig_http_server *plain = ig_http_server_new(&F->loop, lfd, NULL, handler, F);
	assert_non_null(plain);
	trust(C_ABC, "abc.example.com");
	connect_to(port, 2000);
	send_get("/x");
	wait_end();
	assert_int_equal(F->nerror, 1);
	assert_int_equal(F->fault.kind, IG_CLIENT_CONNECT);
	assert_int_equal(F->nreq, 0);
	ig_http_client_close(F->c);
	F->c = NULL;
	ig_http_server_free(plain);
	close(lfd);
}

/* A backend that accepts and never answers the ClientHello: the connect
 * timeout covers the handshake. */
static void test_handshake_timeout(void **state)
{
	int port;
	int lfd = tcp_listen(8, &port);
	assert_true(lfd >= 0);
	trust(C_ABC, "abc.example.com");
	connect_to(port, 150);
	send_get("/x");
	wait_end();
	assert_int_equal(F->nerror, 1);
	assert_int_equal(F->fault.kind, IG_CLIENT_CONNECT);
	assert_int_equal(F->fault.err, ETIMEDOUT);
	ig_http_client_close(F->c);
	F->c = NULL;
	close(lfd);
}

/* Mutual TLS with both ends ours: a server that requires client
 * certificates signed by C_OTHER serves a client context that presents
 * C_OTHER (Gateway spec.tls.backend), and no request reaches it from a
 * context without a certificate or with one C_OTHER did not sign. */
static void test_client_certificate(void **state)
{
	struct ig_tls_cert e = {.cert_pem = certs[C_ABC].pem,
				.cert_len = certs[C_ABC].pem_len,
				.key_pem = certs[C_ABC].key,
				.key_len = certs[C_ABC].key_len,
				.client_auth = IG_TLS_CLIENT_REQUIRE,
				.client_ca_pem = certs[C_OTHER].pem,
				.client_ca_len = certs[C_OTHER].pem_len};
	char err[256] = "";
	if (ig_tls_ctx_reload(F->srv_tls, &e, 1, err, sizeof err) != 0)
		fail_msg("reload: %s", err);
	for (int who = 0; who < 3; who++) {
		int cert = who == 0 ? C_OTHER : C_URI;
		struct ig_tls_client_opts o = {.ca_pem = certs[C_ABC].pem,
					       .ca_len = certs[C_ABC].pem_len,
					       .sni = "abc.example.com"};
		if (who < 2) {
			o.cert_pem = certs[cert].pem;
			o.cert_len = certs[cert].pem_len;
			o.key_pem = certs[cert].key;
			o.key_len = certs[cert].key_len;
		}
		client_ctx(&o);
		connect_client();
		F->nreq = 0;
		send_get("/x");
		wait_end();
		if (who == 0) {
			assert_int_equal(F->nerror, 0);
			assert_int_equal(F->status, 200);
		} else {
			assert_int_equal(F->ndone, 0);
			assert_int_equal(F->nerror, 1);
			assert_int_equal(F->nreq, 0);
		}
	}
}

static void test_context_errors(void **state)
{
	char err[128] = "";
	struct ig_tls_client_ctx *c = ig_tls_client_ctx_new(
	    &(struct ig_tls_client_opts){.ca_pem = "not a certificate", .ca_len = 17, .sni = "a"},
	    err, sizeof err);
	assert_null(c);
	assert_string_equal(err, "ca.crt holds no PEM certificate");
	/* The system's roots load (an empty store is fine as well). */
	c = ig_tls_client_ctx_new(&(struct ig_tls_client_opts){.sni = "a.example.com"}, err,
				  sizeof err);
	assert_non_null(c);
	ig_tls_client_ctx_unref(c);
	/* A client certificate needs its own key. */
	c = ig_tls_client_ctx_new(&(struct ig_tls_client_opts){.sni = "a",
							       .cert_pem = certs[C_ABC].pem,
							       .cert_len = certs[C_ABC].pem_len},
				  err, sizeof err);
	assert_null(c);
	assert_string_equal(err, "client certificate: no key");
	c = ig_tls_client_ctx_new(&(struct ig_tls_client_opts){.sni = "a",
							       .cert_pem = certs[C_ABC].pem,
							       .cert_len = certs[C_ABC].pem_len,
							       .key_pem = certs[C_OTHER].key,
							       .key_len = certs[C_OTHER].key_len},
				  err, sizeof err);
	assert_null(c);
	assert_string_equal(err, "client certificate: tls.key does not match the certificate");
}

int main(void)
{
	ig_log_level = IG_LOG_ERROR;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_request_over_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keepalive_park_and_post, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_session_resumed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parked_connection_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tunnel_over_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostname_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_subject_alt_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_subject_cn_and_partial_wildcard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plaintext_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_certificate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_context_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
