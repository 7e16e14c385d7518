#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/str.h"

/* TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD
 * cipher, ECDSA certificates before RSA ones, as Mozilla's "intermediate"
 * configuration (without its finite-field DHE suites). TLS 1.3 suites are
 * configured apart by OpenSSL and keep its defaults. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

#define HOSTNAME_MAX 253

/* What the entries of one hostname ask of clients (they must agree). */
struct client_auth {
	bool set; /* an entry was added */
	enum ig_tls_client_auth mode;
	unsigned char digest[SSL_MAX_SID_CTX_LENGTH]; /* of mode and CAs */
};

struct tls_host {
	char *name; /* lowercase; "*.suffix" for a wildcard */
	SSL_CTX *ctx;
	struct client_auth auth;
};

/* One certificate set: immutable once built, shared by every thread,
 * freed when the context has moved on and no handshake still uses it. */
struct tls_set {
	unsigned refs;
	SSL_CTX *base; /* every handshake starts here; holds the default certificates */
	bool has_default;
	struct client_auth base_auth;
	struct tls_host *hosts; /* sorted by name */
	size_t nhosts;
};

struct ig_tls_ctx {
	pthread_mutex_t lock; /* guards `set` */
	struct tls_set *set;
	unsigned long generation;
	unsigned refs;
	char alpn[16]; /* the protocol the server speaks; "" means http/1.1 */
};

struct ig_tls_client_ctx {
	SSL_CTX *ssl_ctx;
	unsigned refs; /* atomic */
	/* The newest session a server gave, offered by the next connection
	 * (any worker's) to resume instead of a full handshake. */
	pthread_mutex_t lock;
	SSL_SESSION *session;
	char *sni; /* "" when none is sent */
	char **names, **uris;
	size_t nnames, nuris;
	bool ip; /* sni is an IP literal: checked against IP entries */
	bool h2; /* ALPN offers "h2" alone */
};

struct ig_tls_conn {
	SSL *ssl;
	struct tls_set *set; /* held until the handshake ends: the SNI callback reads it */
	char *sni;
	SSL_CTX *client_ctx;	      /* a client's own context */
	struct ig_tls_client_ctx *up; /* an upstream client's shared context */
	char alpn[16];		      /* the protocol this server connection accepts */
	bool done;		      /* handshake complete */
	bool failed;		      /* a fatal error: nothing more is sent */
	bool starved;		      /* the last read found no complete record */
	bool shut;		      /* close_notify sent */
	bool xfcc_done;		      /* xfcc computed (NULL: no verified client certificate) */
	char *xfcc;
	char err[96];
};

/* ---- small helpers ---- */

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The reason of OpenSSL's most recent error, and an empty queue after. */
static const char *ossl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return r ? r : fallback;
}

/* ---- the socket BIO ----
 *
 * OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
 * the client has gone; this one uses send(MSG_NOSIGNAL), so the server
 * does not depend on the process ignoring the signal. */

static int bio_fd(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static int bio_write(BIO *b, const char *buf, int len)
{
	BIO_clear_retry_flags(b);
	ssize_t n;
	do
		n = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
	BIO_clear_retry_flags(b);
	ssize_t n;
	do
		n = recv(bio_fd(b), buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	/* Writes go straight to the socket: there is nothing to flush. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;

static void bio_method_init(void)
{
	BIO_METHOD *m =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "infergate socket");
	if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
	    BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
		bio_method = m;
		return;
	}
	BIO_meth_free(m);
}

static BIO *bio_new(int fd)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, bio_method_init);
	BIO *b = bio_method ? BIO_new(bio_method) : NULL;
	if (b)
		BIO_set_data(b, (void *)(intptr_t)fd);
	return b;
}

/* ---- hostnames ---- */

/* A Gateway API Hostname, lowercased into out (HOSTNAME_MAX + 1 bytes):
 * labels of letters, digits and '-', not starting or ending with '-',
 * optionally "*." first. NULL or "" gives "". */
static int normalize_hostname(const char *in, char *out)
{
	if (!in || !*in) {
		out[0] = '\0';
		return 0;
	}
	size_t len = strlen(in);
	if (len > HOSTNAME_MAX)
		return -1;
	size_t i = 0;
	if (in[0] == '*') {
		if (in[1] != '.')
			return -1;
		out[0] = '*';
		out[1] = '.';
		i = 2;
	}
	size_t label = 0;
	for (; i <= len; i++) {
		char ch = in[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || out[i - 1] == '-')
				return -1;
			label = 0;
			out[i] = ch;
			continue;
		}
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			  (ch == '-' && label > 0);
		if (!ok)
			return -1;
		out[i] = ch;
		label++;
	}
	return 0;
}

static int host_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tls_host *)a)->name, ((const struct tls_host *)b)->name);
}

static SSL_CTX *set_lookup(const struct tls_set *set, const char *name)
{
	struct tls_host key = {.name = (char *)name};
	const struct tls_host *h = bsearch(&key, set->hosts, set->nhosts, sizeof *h, host_cmp);
	return h ? h->ctx : NULL;
}

/* Exact name first, then wildcards from the longest suffix to the
 * shortest: for "a.b.example.com", "*.b.example.com", "*.example.com",
 * "*.com". `name` is lowercase. */
static SSL_CTX *set_find(const struct tls_set *set, const char *name)
{
	if (!set->nhosts)
		return NULL;
	SSL_CTX *ctx = set_lookup(set, name);
	if (ctx)
		return ctx;
	char wild[HOSTNAME_MAX + 2];
	for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
		snprintf(wild, sizeof wild, "*%s", dot);
		ctx = set_lookup(set, wild);
		if (ctx)
			return ctx;
	}
	return NULL;
}

/* ---- handshake callbacks ---- */

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_set *set = arg;
	struct ig_tls_conn *t = SSL_get_app_data(ssl);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t len = name ? strlen(name) : 0;
	if (len && name[len - 1] == '.')
		len--;
	if (len && len <= HOSTNAME_MAX) {
		char low[HOSTNAME_MAX + 1];
		for (size_t i = 0; i < len; i++)
			low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a'
									 : name[i]);
		low[len] = '\0';
		if (t && !t->sni)
			t->sni = strdup(low);
		SSL_CTX *pick = set_find(set, low);
		if (pick) {
			if (pick != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, pick))
				return SSL_TLSEXT_ERR_ALERT_FATAL;
			/* SSL_set_SSL_CTX takes the certificates, the CA names and
			 * the session ID context, not the verify mode. */
			SSL_set_verify(ssl, SSL_CTX_get_verify_mode(pick),
				       SSL_CTX_get_verify_callback(pick));
			return SSL_TLSEXT_ERR_OK;
		}
	}
	if (set->has_default)
		return SSL_TLSEXT_ERR_OK;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* The connection's protocols (http/1.1 unless ig_tls_ctx_set_alpn said
 * otherwise when it was accepted), in our order of preference: the first
 * of them the client offers is answered. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct ig_tls_conn *t = SSL_get_app_data(ssl);
	const char *list = t && t->alpn[0] ? t->alpn : "http/1.1";
	while (*list) {
		size_t plen = strcspn(list, " ");
		for (unsigned int i = 0; i < inlen;) {
			unsigned int n = in[i];
			if (i + 1 + n > inlen)
				break;
			if (n == plen && memcmp(in + i + 1, list, plen) == 0) {
				*out = in + i + 1;
				*outlen = (unsigned char)n;
				return SSL_TLSEXT_ERR_OK;
			}
			i += 1 + n;
		}
		list += plen;
		list += *list == ' ';
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* ---- certificate sets ---- */

/* The certificates (and whatever else) of a PEM text, or NULL when it is
 * unreadable; free with sk_X509_INFO_pop_free(infos, X509_INFO_free). */
static STACK_OF(X509_INFO) * pem_infos(const char *pem, size_t len)
{
	BIO *b = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return infos;
}

static SSL_CTX *new_ssl_ctx(struct tls_set *set)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, tls12_ciphers)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_security_level(ctx, 2);
	/* A client's FIN without close_notify reads as an ordinary end: HTTP
	 * framing, not TLS, says whether a request was complete. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Record buffers (~34 KiB) are given back whenever they are empty, so
	 * an idle connection holds none. Partial writes return after each
	 * record, and a write retried after WANT_WRITE may come from another
	 * address of the same bytes (the server's output buffer moves). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One recv for as many records as fit, instead of two per record. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, set);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	return ctx;
}

static void set_free(struct tls_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->nhosts; i++) {
		SSL_CTX_free(set->hosts[i].ctx);
		free(set->hosts[i].name);
	}
	free(set->hosts);
	SSL_CTX_free(set->base);
	free(set);
}

static void set_unref(struct tls_set *set)
{
	if (set && __atomic_sub_fetch(&set->refs, 1, __ATOMIC_ACQ_REL) == 0)
		set_free(set);
}

/* Refuses encrypted keys instead of prompting on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Adds one certificate (with its chain) and its key to ctx. */
static int add_pair(SSL_CTX *ctx, const struct ig_tls_cert *c, char *why, size_t whylen)
{
	int rc = -1;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	BIO *cb = NULL, *kb = NULL;
	if (c->cert_len > INT32_MAX || c->key_len > INT32_MAX) {
		say(why, whylen, "tls.crt or tls.key over 2 GiB");
		goto out;
	}
	chain = sk_X509_new_null();
	cb = BIO_new_mem_buf(c->cert_pem ? c->cert_pem : "", (int)c->cert_len);
	kb = BIO_new_mem_buf(c->key_pem ? c->key_pem : "", (int)c->key_len);
	if (!chain || !cb || !kb) {
		say(why, whylen, "out of memory");
		goto out;
	}
	leaf = PEM_read_bio_X509_AUX(cb, NULL, no_password, NULL);
	if (!leaf) {
		say(why, whylen, "tls.crt: no PEM certificate (%s)", ossl_reason("empty"));
		goto out;
	}
	X509 *x;
	while ((x = PEM_read_bio_X509(cb, NULL, no_password, NULL))) {
		if (!sk_X509_push(chain, x)) {
			X509_free(x);
			say(why, whylen, "out of memory");
			goto out;
		}
	}
	/* The loop ends at the end of the text ("no start line") or at a
	 * block that is not a certificate. */
	unsigned long e = ERR_peek_last_error();
	if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		say(why, whylen, "tls.crt: certificate %d of the chain: %s", sk_X509_num(chain) + 2,
		    ossl_reason("unreadable"));
		goto out;
	}
	ERR_clear_error();
	key = PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL);
	if (!key) {
		/* OpenSSL's reason here ("unsupported") would mislead. */
		ERR_clear_error();
		say(why, whylen, "tls.key: no PEM private key, or an encrypted one");
		goto out;
	}
	if (!SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 0)) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_PRIVATE_KEY_MISMATCH)
			say(why, whylen, "tls.key does not match the certificate");
		else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
			 ERR_GET_REASON(e) == SSL_R_NOT_REPLACING_CERTIFICATE)
			say(why, whylen,
			    "a certificate with a key of this type is already given for this "
			    "hostname");
		else
			say(why, whylen, "certificate refused: %s", ossl_reason("unknown error"));
		ERR_clear_error();
		goto out;
	}
	rc = 0;
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

/* The SSL_CTX that takes entries with this (normalized) hostname, and
 * what its entries ask of clients. */
static SSL_CTX *ctx_for(struct tls_set *set, const char *name, struct client_auth **auth)
{
	if (!name[0]) {
		set->has_default = true;
		*auth = &set->base_auth;
		return set->base;
	}
	for (size_t i = 0; i < set->nhosts; i++)
		if (strcmp(set->hosts[i].name, name) == 0) {
			*auth = &set->hosts[i].auth;
			return set->hosts[i].ctx;
		}
	struct tls_host *h = &set->hosts[set->nhosts];
	h->name = strdup(name);
	h->ctx = new_ssl_ctx(set);
	if (!h->name || !h->ctx) {
		free(h->name);
		SSL_CTX_free(h->ctx);
		return NULL;
	}
	set->nhosts++;
	*auth = &h->auth;
	return h->ctx;
}

/* AllowInsecureFallback: the certificate is asked for and never required. */
static int accept_any(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

/* Sets up client certificate validation on ctx for entry c, or checks that
 * c asks what the hostname's earlier entries asked. */
static int add_client_auth(SSL_CTX *ctx, struct client_auth *a, const struct ig_tls_cert *c,
			   char *why, size_t whylen)
{
	struct client_auth want = {.set = true, .mode = c->client_auth};
	const char *pem = c->client_auth ? c->client_ca_pem : NULL;
	size_t len = pem ? c->client_ca_len : 0;
	if (c->client_auth && !pem) {
		say(why, whylen, "client certificate validation without CA certificates");
		return -1;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char m = (unsigned char)want.mode;
	EVP_MD_CTX *d = EVP_MD_CTX_new();
	if (!d || !EVP_DigestInit_ex(d, EVP_sha256(), NULL) || !EVP_DigestUpdate(d, &m, 1) ||
	    (len && !EVP_DigestUpdate(d, pem, len)) || !EVP_DigestFinal_ex(d, md, &mdlen)) {
		EVP_MD_CTX_free(d);
		say(why, whylen, "digest failed (%s)", ossl_reason("sha256"));
		return -1;
	}
	EVP_MD_CTX_free(d);
	memcpy(want.digest, md, sizeof want.digest < mdlen ? sizeof want.digest : mdlen);
	if (a->set) {
		if (a->mode != want.mode || memcmp(a->digest, want.digest, sizeof a->digest)) {
			say(why, whylen,
			    "client certificate validation differs from another entry's for this "
			    "hostname");
			return -1;
		}
		return 0;
	}
	*a = want;
	if (!want.mode)
		return 0;
	STACK_OF(X509_INFO) *infos = pem_infos(pem, len);
	ERR_clear_error(); /* the read ends at the text's end with "no start line" */
	X509_STORE *store = X509_STORE_new();
	int added = 0;
	for (int i = 0; store && infos && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *in = sk_X509_INFO_value(infos, i);
		if (in->x509 && X509_STORE_add_cert(store, in->x509) == 1 &&
		    SSL_CTX_add_client_CA(ctx, in->x509) == 1)
			added++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (!added || !SSL_CTX_set1_verify_cert_store(ctx, store)) {
		X509_STORE_free(store);
		say(why, whylen, "client CA certificates: no usable PEM certificate");
		return -1;
	}
	X509_STORE_free(store); /* the context holds its own reference */
	SSL_CTX_set_verify(ctx,
			   want.mode == IG_TLS_CLIENT_REQUIRE
			       ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
			       : SSL_VERIFY_PEER,
			   want.mode == IG_TLS_CLIENT_OPTIONAL ? accept_any : NULL);
	if (!SSL_CTX_set_session_id_context(ctx, want.digest, sizeof want.digest)) {
		say(why, whylen, "session id context (%s)", ossl_reason("sid_ctx"));
		return -1;
	}
	return 0;
}

static struct tls_set *set_build(const struct ig_tls_cert *certs, size_t n, char *err,
				 size_t errlen)
{
	struct tls_set *set = calloc(1, sizeof *set);
	if (!set || !(set->hosts = calloc(n ? n : 1, sizeof *set->hosts)) ||
	    !(set->base = new_ssl_ctx(set))) {
		say(err, errlen, "out of memory for a TLS context (%s)", ossl_reason("malloc"));
		set_free(set);
		return NULL;
	}
	set->refs = 1;
	for (size_t i = 0; i < n; i++) {
		char name[HOSTNAME_MAX + 1];
		if (normalize_hostname(certs[i].hostname, name) < 0) {
			say(err, errlen, "certificate %zu: hostname \"%s\" is not a valid hostname",
			    i, certs[i].hostname);
			goto fail;
		}
		struct client_auth *auth = NULL;
		SSL_CTX *ctx = ctx_for(set, name, &auth);
		if (!ctx) {
			say(err, errlen, "certificate %zu: out of memory", i);
			goto fail;
		}
		char why[200];
		if (add_pair(ctx, &certs[i], why, sizeof why) < 0 ||
		    add_client_auth(ctx, auth, &certs[i], why, sizeof why) < 0) {
			if (name[0])
				say(err, errlen, "certificate %zu (hostname \"%s\"): %s", i, name,
				    why);
			else
				say(err, errlen, "certificate %zu (default): %s", i, why);
			goto fail;
		}
	}
	qsort(set->hosts, set->nhosts, sizeof *set->hosts, host_cmp);
	return set;
fail:
	ERR_clear_error();
	set_free(set);
	return NULL;
}

/* ---- checks for the loader ---- */

long ig_tls_check_pairs(const struct ig_tls_cert *certs, size_t n, char *why, size_t whylen)
{
	SSL_CTX *ctx = new_ssl_ctx(NULL);
	if (!ctx) {
		say(why, whylen, "out of memory for a TLS context (%s)", ossl_reason("malloc"));
		return 0;
	}
	long bad = -1;
	for (size_t i = 0; i < n && bad < 0; i++)
		if (add_pair(ctx, &certs[i], why, whylen) < 0)
			bad = (long)i;
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return bad;
}

int ig_tls_check_ca(const char *pem, size_t len, char *why, size_t whylen)
{
	STACK_OF(X509_INFO) *infos = pem_infos(pem, len);
	int certs = 0;
	for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
		certs += sk_X509_INFO_value(infos, i)->x509 != NULL;
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (!infos) {
		say(why, whylen, "unreadable PEM (%s)", ossl_reason("parse error"));
		return IG_ERROR;
	}
	ERR_clear_error();
	if (!certs) {
		say(why, whylen, "no PEM certificate");
		return IG_ERROR;
	}
	return 0;
}

/* ---- contexts ---- */

struct ig_tls_ctx *ig_tls_ctx_new(const struct ig_tls_cert *certs, size_t n, char *err,
				  size_t errlen)
{
	struct ig_tls_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx) {
		say(err, errlen, "out of memory");
		return NULL;
	}
	ctx->set = set_build(certs, n, err, errlen);
	if (!ctx->set) {
		free(ctx);
		return NULL;
	}
	pthread_mutex_init(&ctx->lock, NULL);
	ctx->refs = 1;
	return ctx;
}

int ig_tls_ctx_reload(struct ig_tls_ctx *ctx, const struct ig_tls_cert *certs, size_t n, char *err,
		      size_t errlen)
{
	struct tls_set *set = set_build(certs, n, err, errlen);
	if (!set)
		return IG_ERROR;
	pthread_mutex_lock(&ctx->lock);
	struct tls_set *old = ctx->set;
	ctx->set = set;
	ctx->generation++;
	pthread_mutex_unlock(&ctx->lock);
	set_unref(old);
	return IG_OK;
}

struct ig_tls_ctx *ig_tls_ctx_ref(struct ig_tls_ctx *ctx)
{
	if (ctx)
		__atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
	return ctx;
}

void ig_tls_ctx_unref(struct ig_tls_ctx *ctx)
{
	if (!ctx || __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	set_unref(ctx->set);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

int ig_tls_ctx_set_alpn(struct ig_tls_ctx *ctx, const char *proto)
{
	if (!proto || strlen(proto) >= sizeof ctx->alpn)
		return IG_ERROR;
	pthread_mutex_lock(&ctx->lock);
	snprintf(ctx->alpn, sizeof ctx->alpn, "%s", proto);
	pthread_mutex_unlock(&ctx->lock);
	return IG_OK;
}

unsigned long ig_tls_ctx_generation(struct ig_tls_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	unsigned long g = ctx->generation;
	pthread_mutex_unlock(&ctx->lock);
	return g;
}

/* ---- connections ---- */

struct ig_tls_conn *ig_tls_conn_new(struct ig_tls_ctx *ctx, int fd)
{
	struct ig_tls_conn *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	pthread_mutex_lock(&ctx->lock);
	t->set = ctx->set;
	__atomic_add_fetch(&t->set->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ctx->lock);
	BIO *bio = bio_new(fd);
	t->ssl = bio ? SSL_new(t->set->base) : NULL;
	if (!t->ssl) {
		BIO_free(bio);
		ig_tls_conn_free(t);
		ERR_clear_error();
		return NULL;
	}
	pthread_mutex_lock(&ctx->lock);
	memcpy(t->alpn, ctx->alpn, sizeof t->alpn);
	pthread_mutex_unlock(&ctx->lock);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_app_data(t->ssl, t);
	SSL_set_accept_state(t->ssl);
	return t;
}

/* ---- client connections ---- */

static bool is_ip_literal(const char *s)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* What every client context of ours has: TLS 1.2 at least, no
 * renegotiation or compression, buffers given back when empty, and writes
 * that may be retried from another address. NULL with the reason in err. */
static SSL_CTX *client_ctx_base(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		say(err, errlen, "TLS client context: %s", ossl_reason("out of memory"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

static SSL_CTX *client_ctx_new(bool verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = client_ctx_base(err, errlen);
	if (!ctx)
		return NULL;
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (verify) {
		int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
				 : SSL_CTX_set_default_verify_paths(ctx);
		if (!ok) {
			say(err, errlen, "TLS roots %s: %s", ca_file ? ca_file : "(system)",
			    ossl_reason("unreadable"));
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

struct ig_tls_conn *ig_tls_client_new(int fd, const char *name, const char *alpn, bool verify,
				      const char *ca_file, char *err, size_t errlen)
{
	struct ig_tls_conn *t = calloc(1, sizeof *t);
	if (!t) {
		say(err, errlen, "out of memory");
		return NULL;
	}
	t->client_ctx = client_ctx_new(verify, ca_file, err, errlen);
	if (!t->client_ctx)
		goto fail;
	BIO *bio = bio_new(fd);
	t->ssl = bio ? SSL_new(t->client_ctx) : NULL;
	if (!t->ssl) {
		BIO_free(bio);
		say(err, errlen, "out of memory");
		goto fail;
	}
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_app_data(t->ssl, t);
	SSL_set_connect_state(t->ssl);
	bool ip = name && is_ip_literal(name);
	if (name && *name && !ip && !SSL_set_tlsext_host_name(t->ssl, name)) {
		say(err, errlen, "server name \"%s\" refused", name);
		goto fail;
	}
	if (verify && name && *name) {
		int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)
			    : SSL_set1_host(t->ssl, name);
		if (!ok) {
			say(err, errlen, "cannot verify against \"%s\"", name);
			goto fail;
		}
	}
	if (alpn && *alpn) {
		size_t n = strlen(alpn);
		unsigned char wire[256];
		if (n > 255 || n >= sizeof t->alpn) {
			say(err, errlen, "ALPN protocol too long");
			goto fail;
		}
		wire[0] = (unsigned char)n;
		memcpy(wire + 1, alpn, n);
		if (SSL_set_alpn_protos(t->ssl, wire, (unsigned)n + 1) != 0) {
			say(err, errlen, "out of memory");
			goto fail;
		}
	}
	return t;
fail:
	ERR_clear_error();
	ig_tls_conn_free(t);
	return NULL;
}

/* What a failed SSL call means; fatal errors are recorded for the log and
 * leave the error queue empty. */
static int failure(struct ig_tls_conn *t, int ret, bool eof_is_error)
{
	int e = SSL_get_error(t->ssl, ret);
	int rc = IG_ERROR;
	switch (e) {
	case SSL_ERROR_WANT_READ:
		return IG_TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return IG_TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		if (!eof_is_error)
			return 0;
		snprintf(t->err, sizeof t->err, "connection closed by the client");
		break;
	case SSL_ERROR_SYSCALL:
		snprintf(t->err, sizeof t->err, "socket: %s",
			 errno ? strerror(errno) : "connection closed");
		break;
	case SSL_ERROR_SSL: {
		unsigned long err = ERR_peek_error();
		if (ERR_GET_LIB(err) == ERR_LIB_SSL &&
		    (ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST ||
		     ERR_GET_REASON(err) == SSL_R_HTTPS_PROXY_REQUEST))
			rc = IG_TLS_PLAIN_HTTP;
		long v = SSL_get_verify_result(t->ssl);
		if (v != X509_V_OK)
			snprintf(t->err, sizeof t->err, "certificate verify failed: %s",
				 X509_verify_cert_error_string(v));
		else
			snprintf(t->err, sizeof t->err, "%s", ossl_reason("protocol error"));
		break;
	}
	default:
		snprintf(t->err, sizeof t->err, "SSL error %d", e);
		break;
	}
	t->failed = true;
	ERR_clear_error();
	return rc;
}

int ig_tls_handshake(struct ig_tls_conn *t)
{
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->done = true;
		set_unref(t->set);
		t->set = NULL;
		return IG_OK;
	}
	return failure(t, r, true);
}

ssize_t ig_tls_read(struct ig_tls_conn *t, void *buf, size_t len)
{
	size_t n = 0;
	int r = SSL_read_ex(t->ssl, buf, len, &n);
	if (r == 1) {
		t->starved = false;
		return (ssize_t)n;
	}
	int rc = failure(t, r, false);
	t->starved = rc == IG_TLS_WANT_READ;
	return rc;
}

ssize_t ig_tls_write(struct ig_tls_conn *t, const void *buf, size_t len)
{
	size_t n = 0;
	int r = SSL_write_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return failure(t, r, true);
}

bool ig_tls_pending(const struct ig_tls_conn *t)
{
	return !t->starved && SSL_has_pending(t->ssl);
}

int ig_tls_shutdown(struct ig_tls_conn *t)
{
	if (!t->done || t->failed || t->shut)
		return IG_OK;
	int r = SSL_shutdown(t->ssl);
	if (r >= 0) {
		t->shut = true;
		return IG_OK;
	}
	if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE)
		return IG_TLS_WANT_WRITE;
	t->failed = true;
	ERR_clear_error();
	return IG_OK;
}

void ig_tls_conn_free(struct ig_tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	SSL_CTX_free(t->client_ctx);
	ig_tls_client_ctx_unref(t->up);
	set_unref(t->set);
	free(t->sni);
	free(t->xfcc);
	free(t);
}

/* ---- the client's certificate, as x-forwarded-client-cert tells it ---- */

/* Appends `key=value` (after a ';' unless first). A value is quoted when
 * asked to or when it holds a separator, '"' and '\' escaped inside; a
 * byte a header cannot carry becomes '?'. */
static void xfcc_put(BIO *out, const char *key, const unsigned char *v, size_t n, bool quote)
{
	for (size_t i = 0; i < n && !quote; i++)
		quote = v[i] == ',' || v[i] == ';' || v[i] == '=' || v[i] == '"' || v[i] == ' ';
	BIO_printf(out, "%s%s=%s", BIO_number_written(out) ? ";" : "", key, quote ? "\"" : "");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		if (c == '"' || c == '\\')
			BIO_write(out, "\\", 1);
		if (c < 0x20 || c >= 0x7f)
			c = '?';
		BIO_write(out, &c, 1);
	}
	if (quote)
		BIO_write(out, "\"", 1);
}

/* Envoy's x-forwarded-client-cert element for a verified client
 * certificate: Hash (SHA-256 of the DER, hex), Subject (RFC 2253, always
 * quoted), then each URI and DNS subjectAltName. NULL when none was
 * presented or it did not verify (AllowInsecureFallback lets such
 * clients in: they vouch for nothing). */
static char *xfcc_of(SSL *ssl)
{
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	X509 *x = SSL_get1_peer_certificate(ssl);
	if (!x)
		return NULL;
	char *res = NULL;
	BIO *out = BIO_new(BIO_s_mem()), *name = BIO_new(BIO_s_mem());
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!out || !name || !X509_digest(x, EVP_sha256(), md, &mdlen))
		goto done;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	xfcc_put(out, "Hash", (const unsigned char *)hex, 2 * mdlen, false);
	if (X509_NAME_print_ex(name, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
		char *text;
		long n = BIO_get_mem_data(name, &text);
		xfcc_put(out, "Subject", (const unsigned char *)text, n > 0 ? (size_t)n : 0, true);
	}
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int kind = 0; kind < 2; kind++)
		for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
			if (g->type != (kind ? GEN_DNS : GEN_URI))
				continue;
			const ASN1_IA5STRING *s =
			    kind ? g->d.dNSName : g->d.uniformResourceIdentifier;
			xfcc_put(out, kind ? "DNS" : "URI", ASN1_STRING_get0_data(s),
				 (size_t)ASN1_STRING_length(s), false);
		}
	GENERAL_NAMES_free(gens);
	char *text;
	long n = BIO_get_mem_data(out, &text);
	if (n > 0 && n < 16384 && (res = malloc((size_t)n + 1))) {
		memcpy(res, text, (size_t)n);
		res[n] = '\0';
	}
done:
	BIO_free(out);
	BIO_free(name);
	X509_free(x);
	ERR_clear_error();
	return res;
}

const char *ig_tls_conn_client_cert(struct ig_tls_conn *t)
{
	if (!t->xfcc_done && t->done) {
		t->xfcc_done = true;
		t->xfcc = xfcc_of(t->ssl);
	}
	return t->xfcc;
}

const char *ig_tls_conn_sni(const struct ig_tls_conn *t)
{
	return t->sni;
}

const char *ig_tls_conn_alpn(const struct ig_tls_conn *t)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;
	SSL_get0_alpn_selected(t->ssl, &p, &len);
	if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
		return "http/1.1";
	return len == 2 && memcmp(p, "h2", 2) == 0 ? "h2" : "";
}

const char *ig_tls_conn_version(const struct ig_tls_conn *t)
{
	return SSL_get_version(t->ssl);
}

const char *ig_tls_conn_cipher(const struct ig_tls_conn *t)
{
	const char *c = SSL_get_cipher_name(t->ssl);
	return c ? c : "";
}

bool ig_tls_conn_resumed(const struct ig_tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

const char *ig_tls_conn_error(const struct ig_tls_conn *t)
{
	return t->err;
}

/* ---- upstream client contexts ---- */

static int up_ex_index = -1;
static pthread_once_t up_ex_once = PTHREAD_ONCE_INIT;

static void up_ex_init(void)
{
	up_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* True when the leaf has a URI entry equal to one of the context's. */
static bool leaf_has_uri(X509 *leaf, const struct ig_tls_client_ctx *u)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	bool found = false;
	for (int i = 0; gens && !found && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_URI)
			continue;
		const unsigned char *p = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		size_t len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		for (size_t k = 0; k < u->nuris && !found; k++)
			found = strlen(u->uris[k]) == len && memcmp(p, u->uris[k], len) == 0;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

/* Names are matched against the certificate's DNS subjectAltNames only,
 * never its subject CN (RFC 9525 §6.3; Envoy and Go do the same), and a
 * wildcard must be a whole left-most label ("*.example.com", not
 * "ab*.example.com", RFC 9525 §6.3 and §7.2). */
#define UP_HOST_FLAGS (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)

/* The chain was checked by OpenSSL; at the leaf, the identity is ours to
 * check: one of the names or URIs, else the server name. */
static int up_verify(int ok, X509_STORE_CTX *store)
{
	if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct ig_tls_client_ctx *u =
	    ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), up_ex_index) : NULL;
	X509 *leaf = X509_STORE_CTX_get_current_cert(store);
	if (!u || !leaf)
		return 0;
	bool match = false;
	if (u->nnames || u->nuris) {
		for (size_t k = 0; k < u->nnames && !match; k++)
			match = X509_check_host(leaf, u->names[k], 0, UP_HOST_FLAGS, NULL) == 1;
		match = match || (u->nuris && leaf_has_uri(leaf, u));
	} else if (u->ip) {
		match = X509_check_ip_asc(leaf, u->sni, 0) == 1;
	} else {
		match = *u->sni && X509_check_host(leaf, u->sni, 0, UP_HOST_FLAGS, NULL) == 1;
	}
	if (!match) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
		return 0;
	}
	return 1;
}

/* A server gave a session (a TLS 1.3 ticket, or a TLS 1.2 one): the
 * context keeps a copy of the newest. A copy, because OpenSSL marks the
 * connection's own session not resumable when the connection is freed
 * without a close_notify (as a pool's connections are). Returns 0:
 * OpenSSL keeps its reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct ig_tls_client_ctx *u = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), up_ex_index);
	SSL_SESSION *copy = u ? SSL_SESSION_dup(sess) : NULL;
	if (!copy)
		return 0;
	pthread_mutex_lock(&u->lock);
	SSL_SESSION *old = u->session;
	u->session = copy;
	pthread_mutex_unlock(&u->lock);
	SSL_SESSION_free(old);
	return 0;
}

static int add_roots(SSL_CTX *ctx, const char *pem, size_t len, char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *infos = pem_infos(pem, len);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int added = 0;
	for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *in = sk_X509_INFO_value(infos, i);
		if (in->x509 && X509_STORE_add_cert(store, in->x509) == 1)
			added++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	ERR_clear_error();
	if (!added) {
		say(err, errlen, "holds no PEM certificate");
		return -1;
	}
	return 0;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void up_free(struct ig_tls_client_ctx *u)
{
	SSL_CTX_free(u->ssl_ctx);
	SSL_SESSION_free(u->session);
	pthread_mutex_destroy(&u->lock);
	free(u->sni);
	for (size_t i = 0; u->names && i < u->nnames; i++)
		free(u->names[i]);
	for (size_t i = 0; u->uris && i < u->nuris; i++)
		free(u->uris[i]);
	free(u->names);
	free(u->uris);
	free(u);
}

struct ig_tls_client_ctx *ig_tls_client_ctx_new(const struct ig_tls_client_opts *o, char *err,
						size_t errlen)
{
	pthread_once(&up_ex_once, up_ex_init);
	struct ig_tls_client_ctx *u = calloc(1, sizeof *u);
	if (!u || up_ex_index < 0) {
		free(u);
		say(err, errlen, "out of memory");
		return NULL;
	}
	u->refs = 1;
	pthread_mutex_init(&u->lock, NULL);
	u->sni = dup_or_empty(o->sni);
	u->names = ig_strv_dup(o->names, o->nnames);
	u->uris = ig_strv_dup(o->uris, o->nuris);
	if (!u->sni || !u->names || !u->uris) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	u->nnames = o->nnames;
	u->nuris = o->nuris;
	u->ip = *u->sni && is_ip_literal(u->sni);
	SSL_CTX *c = u->ssl_ctx = client_ctx_base(err, errlen);
	if (!c)
		goto fail;
	if (!SSL_CTX_set_cipher_list(c, tls12_ciphers)) {
		say(err, errlen, "TLS client context: %s", ossl_reason("out of memory"));
		goto fail;
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, up_verify);
	if (o->ca_pem) {
		char why[96] = "";
		if (add_roots(c, o->ca_pem, o->ca_len, why, sizeof why) < 0) {
			say(err, errlen, "ca.crt %s", why);
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(c)) {
		say(err, errlen, "the system's CA certificates: %s", ossl_reason("unreadable"));
		goto fail;
	}
	if (o->cert_pem) {
		struct ig_tls_cert pair = {.cert_pem = o->cert_pem,
					   .cert_len = o->cert_len,
					   .key_pem = o->key_pem,
					   .key_len = o->key_len};
		char why[200] = "";
		if (!o->key_pem || add_pair(c, &pair, why, sizeof why) < 0) {
			say(err, errlen, "client certificate: %s", o->key_pem ? why : "no key");
			goto fail;
		}
	}
	/* Sessions are kept here, one per context, not in OpenSSL's cache
	 * (a locked table per SSL_CTX that would grow with every server). */
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c, on_new_session);
	static const unsigned char alpn[] = "\x08http/1.1", alpn_h2[] = "\x02h2";
	u->h2 = o->h2;
	if (SSL_CTX_set_alpn_protos(c, o->h2 ? alpn_h2 : alpn,
				    (unsigned)(o->h2 ? sizeof alpn_h2 : sizeof alpn) - 1) != 0 ||
	    !SSL_CTX_set_ex_data(c, up_ex_index, u)) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	return u;
fail:
	ERR_clear_error();
	up_free(u);
	return NULL;
}

struct ig_tls_client_ctx *ig_tls_client_ctx_ref(struct ig_tls_client_ctx *ctx)
{
	if (ctx)
		__atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
	return ctx;
}

void ig_tls_client_ctx_unref(struct ig_tls_client_ctx *ctx)
{
	if (ctx && __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) == 0)
		up_free(ctx);
}

const char *ig_tls_client_ctx_sni(const struct ig_tls_client_ctx *ctx)
{
	return ctx->sni;
}

bool ig_tls_client_ctx_h2(const struct ig_tls_client_ctx *ctx)
{
	return ctx->h2;
}

struct ig_tls_conn *ig_tls_client_conn_new(struct ig_tls_client_ctx *ctx, int fd)
{
	struct ig_tls_conn *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	BIO *bio = bio_new(fd);
	t->ssl = bio ? SSL_new(ctx->ssl_ctx) : NULL;
	if (!t->ssl) {
		BIO_free(bio);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	t->up = ig_tls_client_ctx_ref(ctx);
	pthread_mutex_lock(&ctx->lock);
	if (ctx->session && SSL_SESSION_is_resumable(ctx->session))
		SSL_set_session(t->ssl, ctx->session);
	pthread_mutex_unlock(&ctx->lock);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_app_data(t->ssl, t);
	SSL_set_connect_state(t->ssl);
	if (*ctx->sni && !ctx->ip && !SSL_set_tlsext_host_name(t->ssl, ctx->sni)) {
		ERR_clear_error();
		ig_tls_conn_free(t);
		return NULL;
	}
	return t;
}
