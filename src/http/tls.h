/* TLS termination for the HTTP server, on OpenSSL: a server context built
 * from PEM certificates and keys held in memory, with a default
 * certificate and per-hostname ones chosen by SNI, and reload without
 * dropping established connections. Only this module includes OpenSSL.
 *
 * Building a context from Gateway API listeners. One context serves one
 * listening port: for each HTTPS listener on that port (mode Terminate),
 * and for each of its certificateRefs (a kubernetes.io/tls Secret), the
 * gateway passes one struct ig_tls_cert with
 *   hostname = the listener's `hostname` (NULL or "" when it has none),
 *   cert_pem = the Secret's `tls.crt` (leaf first, then intermediates),
 *   key_pem  = the Secret's `tls.key` (PKCS#8, or the traditional RSA / EC
 *              forms; unencrypted).
 * Several entries with the same hostname form one certificate set for it,
 * one certificate per key type (an RSA and an ECDSA certificate side by
 * side, as a listener with two certificateRefs has); two of the same key
 * type for one hostname is an error.
 *
 * SNI. A handshake's server name (case-insensitive, a trailing dot
 * ignored) picks, as Gateway API listener precedence does:
 *   1. the entry whose hostname equals it;
 *   2. else the most specific wildcard: "*.example.com" matches
 *      "a.example.com" and "a.b.example.com" (one label or more) but not
 *      "example.com", and "*.b.example.com" beats "*.example.com";
 *   3. else the default (the entries without hostname);
 *   4. else the handshake fails with an unrecognized_name alert.
 * A client that sends no server name gets the default, or the same alert
 * when there is none. The server name is what the connection reports
 * (ig_tls_conn_sni, and struct ig_http_exchange's `sni`), so the gateway
 * can pick the listener with the same rule and answer 421 when Host
 * belongs to another listener.
 *
 * Protocol. TLS 1.2 and 1.3 only (SSL_CTX_set_min_proto_version); security
 * level 2 (keys of at least 2048 bits RSA / 224 bits EC, no SHA-1
 * signatures), set explicitly rather than left to openssl.cnf; TLS 1.2
 * cipher suites limited to ECDHE key exchange with AEAD ciphers (AES-GCM,
 * ChaCha20-Poly1305: Mozilla's "intermediate" list); TLS 1.3 suites and
 * key-exchange groups are the library's defaults (all AEAD). Renegotiation
 * is refused (SSL_OP_NO_RENEGOTIATION), compression is off. Resumption
 * uses session tickets only (the server-side session cache is off: it is
 * a locked table shared by the workers that would grow with every
 * handshake); ticket keys belong to the certificate set, so a reload makes
 * old tickets fall back to a full handshake.
 *
 * ALPN. The server speaks HTTP/1.1: a client that offers ALPN gets
 * "http/1.1" when it lists it, and a no_application_protocol alert when it
 * does not (RFC 7301 §3.2; a client offering only "h2" would otherwise
 * send HTTP/2 frames to an HTTP/1.1 server). No ALPN offered: no ALPN
 * answered, and the connection goes on as HTTP/1.1. A context made for
 * the gRPC server speaks "h2" instead, by the same rule, and an HTTPS
 * listener that serves HTTP/2 answers "h2" before "http/1.1"
 * (ig_tls_ctx_set_alpn).
 *
 * Client certificates. An entry may ask clients for a certificate signed by
 * its CAs (struct ig_tls_cert's client_auth): the handshakes whose server
 * name picks its hostname then send a CertificateRequest naming those CAs
 * and, under IG_TLS_CLIENT_REQUIRE, fail without such a certificate
 * (certificate_required in TLS 1.3, handshake_failure or unknown_ca
 * before). The session ID context of such a hostname is a digest of its
 * validation, so a session resumes only where it would have been
 * validated alike.
 *
 * Reload. ig_tls_ctx_reload() builds a whole new certificate set from its
 * arguments and swaps it in atomically; on any error it changes nothing
 * and says why. Handshakes that start afterwards use the new set;
 * established connections, and handshakes already started, keep what they
 * had (an SSL holds references to the OpenSSL contexts it uses, and a
 * connection holds the set itself until its handshake ends), so nothing is
 * dropped. The old set is freed when its last handshake ends.
 *
 * Threading. One context is shared by all the workers that serve its port
 * (each worker's server holds a reference): OpenSSL's SSL_CTX is made for
 * SSL_new() from many threads once it is configured, and ours are never
 * changed after they are built. Against one context per worker this keeps
 * one copy of the keys, makes a reload one call from the control thread,
 * and lets a session ticket issued by one worker resume on another (the
 * kernel spreads a client's connections over the SO_REUSEPORT sockets).
 * The only lock is the context's mutex, taken for a pointer copy and a
 * reference count when a connection is accepted, and for the swap of a
 * reload. Everything else, ig_tls_conn_*, belongs to the thread of the
 * connection's loop.
 *
 * Error queue. OpenSSL reports errors on a per-thread queue that must be
 * empty when an SSL call starts; every function here leaves it empty, and
 * other users of OpenSSL on a worker's thread must too. */
#ifndef IG_HTTP_TLS_H
#define IG_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/ret.h"

struct ig_tls_ctx;
struct ig_tls_conn;

/* Client certificates an entry's handshakes ask for (Gateway API
 * spec.tls.frontend validation). */
enum ig_tls_client_auth {
	IG_TLS_CLIENT_NONE = 0,
	IG_TLS_CLIENT_REQUIRE,	/* AllowValidOnly: a certificate the CAs signed, or no handshake */
	IG_TLS_CLIENT_OPTIONAL, /* AllowInsecureFallback: asked for, never required */
};

struct ig_tls_cert {
	const char *hostname; /* listener hostname; NULL or "": the default */
	const char *cert_pem; /* tls.crt: the leaf, then its chain */
	size_t cert_len;
	const char *key_pem; /* tls.key */
	size_t key_len;
	/* Client certificate validation for handshakes that pick this
	 * entry's hostname: the CA certificates (PEM) clients' certificates
	 * must chain to. Entries of one hostname must agree. */
	enum ig_tls_client_auth client_auth;
	const char *client_ca_pem;
	size_t client_ca_len;
};

/* Builds a context from n entries (n may be 0: every handshake then fails
 * until a reload brings certificates). Returns NULL with a message in err
 * (e.g. `certificate 2 (hostname "*.example.com"): key does not match the
 * certificate`), entries numbered from 0 in the caller's order. Hostnames
 * must be Gateway API Hostnames (ASCII letters, digits, '-' and '.', an
 * optional leading "*." label, at most 253 bytes; stored lowercase). */
struct ig_tls_ctx *ig_tls_ctx_new(const struct ig_tls_cert *certs, size_t n, char *err,
				  size_t errlen);
/* Checks the certificateRefs of one listener as ig_tls_ctx_new would load
 * them into one hostname's set: each certificate parsed, its key matching
 * it, both allowed at security level 2, at most one certificate per key
 * type (hostnames and client_auth are not looked at). Returns -1 when all
 * load, else the index of the first entry refused, with why (e.g. "tls.key
 * does not match the certificate"). For the loader, which marks such a
 * reference InvalidCertificateRef instead of letting the port's whole set
 * fail. */
long ig_tls_check_pairs(const struct ig_tls_cert *certs, size_t n, char *why, size_t whylen);
/* 0 when pem (a ConfigMap's ca.crt) reads as PEM with at least one
 * certificate, as a client or server context would load it; else
 * IG_ERROR with why. */
int ig_tls_check_ca(const char *pem, size_t len, char *why, size_t whylen);
/* Replaces the certificate set (see Reload above). Any thread. Returns 0,
 * or IG_ERROR with the reason in err and the old set still in use. */
int ig_tls_ctx_reload(struct ig_tls_ctx *ctx, const struct ig_tls_cert *certs, size_t n, char *err,
		      size_t errlen);
/* Reference counting: ig_tls_ctx_new returns one reference; each server
 * takes its own. Any thread. */
struct ig_tls_ctx *ig_tls_ctx_ref(struct ig_tls_ctx *ctx);
void ig_tls_ctx_unref(struct ig_tls_ctx *ctx);
/* The protocols the context's server connections speak in ALPN, in order
 * of preference, separated by spaces: "http/1.1" (the default), "h2" (the
 * gRPC server) or "h2 http/1.1" (an HTTPS listener that serves HTTP/2).
 * The first the client offers is answered; a client that offers ALPN
 * without any gets the no_application_protocol alert. Connections
 * accepted afterwards use it; 0, or IG_ERROR for a list over 15 bytes. */
int ig_tls_ctx_set_alpn(struct ig_tls_ctx *ctx, const char *proto);
/* How many sets were swapped in (0 after ig_tls_ctx_new): for tests. */
unsigned long ig_tls_ctx_generation(struct ig_tls_ctx *ctx);

/* ---- one connection (server side), used by http/server.c ---- */

/* Results of the calls below besides a byte count. IG_TLS_WANT_READ is
 * IG_AGAIN: call again when the socket is readable. IG_TLS_WANT_WRITE:
 * call again when it is writable (a read can need to write, and a write to
 * read). IG_TLS_PLAIN_HTTP: the handshake saw an HTTP request in clear
 * text instead of a ClientHello. IG_ERROR: the connection is unusable
 * (ig_tls_conn_error says why). */
#define IG_TLS_WANT_READ IG_AGAIN
#define IG_TLS_WANT_WRITE (-4200)
#define IG_TLS_PLAIN_HTTP (-4201)

/* A server-side connection on a connected non-blocking socket, with the
 * context's current certificate set. Does no I/O. NULL when out of
 * memory. */
struct ig_tls_conn *ig_tls_conn_new(struct ig_tls_ctx *ctx, int fd);
/* Advances the handshake: IG_OK when it is complete, else one of the
 * codes above. */
int ig_tls_handshake(struct ig_tls_conn *t);
/* Decrypted bytes into buf: the count, 0 when the client closed (its
 * close_notify, or a TCP FIN without one), or a code above. */
ssize_t ig_tls_read(struct ig_tls_conn *t, void *buf, size_t len);
/* Encrypts and sends from buf: the count taken (at least one record's
 * worth, or all), or a code above. After IG_TLS_WANT_*, the next call
 * must offer the same bytes again, at least as many, from any address
 * (the record already built is in OpenSSL's buffer). */
ssize_t ig_tls_write(struct ig_tls_conn *t, const void *buf, size_t len);
/* Decrypted or received bytes are held inside OpenSSL that the socket
 * will not announce again (with a level-triggered loop, the caller must
 * read on without waiting for readiness). False after a read found only
 * an incomplete record, until the next read. */
bool ig_tls_pending(const struct ig_tls_conn *t);
/* Sends close_notify (once): IG_OK when it went out (or the connection
 * is past sending it), IG_TLS_WANT_WRITE when the socket is full. */
int ig_tls_shutdown(struct ig_tls_conn *t);
/* A client-side connection on a connected non-blocking socket (the same
 * calls drive it: ig_tls_handshake, read, write...). name: the server's
 * name, sent as SNI unless it is an IP literal, and checked against the
 * certificate when verify (an IP literal against its IP entries); alpn:
 * the one protocol offered ("h2"), or NULL. verify: against ca_file (PEM)
 * or, when NULL, the system's roots. Its own OpenSSL context is made here
 * (one per connection: clients connect rarely). NULL with the reason in
 * err. */
struct ig_tls_conn *ig_tls_client_new(int fd, const char *name, const char *alpn, bool verify,
				      const char *ca_file, char *err, size_t errlen);
/* Frees the connection; the socket stays open (the caller closes it). */
void ig_tls_conn_free(struct ig_tls_conn *t);

/* ---- upstream client contexts (BackendTLSPolicy) ----
 *
 * One context per way of reaching a set of backends, shared by every
 * worker's connections to them (built by the control thread, read-only
 * afterwards, freed when the last connection and configuration let go).
 * What BackendTLSPolicy's `validation` asks:
 *   roots: the PEM certificates of ca_pem (one or more, a bundle), or the
 *     system's roots when ca_pem is NULL (wellKnownCACertificates System);
 *   sni: the server name sent (its `hostname`); none for an IP literal;
 *   identity: the leaf must match one of `names` (DNS, wildcards as RFC
 *     6125 allows) or `uris` (exact) when either list is given
 *     (`subjectAltNames`: the hostname is then not used to authenticate),
 *     else the sni itself.
 * TLS 1.2 and 1.3, no renegotiation, ALPN "http/1.1" offered, or "h2"
 * alone with `h2` (gRPC's backends): the client checks what the backend
 * picked.  Resumption: the
 * context keeps the newest session a server gave (a ticket) and the next
 * connection offers it, so that connections made again after the pool's
 * idle timeout skip the key exchange and the certificate check. Failed verification
 * fails the handshake; ig_tls_conn_error then says why ("certificate
 * verify failed: hostname mismatch"). */
struct ig_tls_client_ctx;

struct ig_tls_client_opts {
	const char *ca_pem; /* NULL: the system's roots */
	size_t ca_len;
	const char *sni;
	const char *const *names;
	size_t nnames;
	const char *const *uris;
	size_t nuris;
	/* A client certificate (leaf first, then its chain) and its key, as
	 * a kubernetes.io/tls Secret holds them, presented to servers that
	 * ask for one (Gateway spec.tls.backend); NULL: none. */
	const char *cert_pem;
	size_t cert_len;
	const char *key_pem;
	size_t key_len;
	bool h2; /* offer "h2" (HTTP/2 over TLS) instead of "http/1.1" */
};

/* NULL with the reason in err (`ca.crt holds no PEM certificate`). */
struct ig_tls_client_ctx *ig_tls_client_ctx_new(const struct ig_tls_client_opts *o, char *err,
						size_t errlen);
struct ig_tls_client_ctx *ig_tls_client_ctx_ref(struct ig_tls_client_ctx *ctx);
void ig_tls_client_ctx_unref(struct ig_tls_client_ctx *ctx);
/* The server name the context's connections send ("" when none). */
const char *ig_tls_client_ctx_sni(const struct ig_tls_client_ctx *ctx);
/* Whether its connections offer "h2" (ig_tls_client_opts.h2). */
bool ig_tls_client_ctx_h2(const struct ig_tls_client_ctx *ctx);
/* A client connection of the context on a connected non-blocking socket
 * (driven by ig_tls_handshake, read, write...); it holds a reference to
 * the context. NULL when out of memory. */
struct ig_tls_conn *ig_tls_client_conn_new(struct ig_tls_client_ctx *ctx, int fd);

/* After the handshake: the client's server name, lowercase (NULL when it
 * sent none), the ALPN protocol chosen ("" when none), the protocol
 * version ("TLSv1.3") and cipher names. */
const char *ig_tls_conn_sni(const struct ig_tls_conn *t);
const char *ig_tls_conn_alpn(const struct ig_tls_conn *t);
const char *ig_tls_conn_version(const struct ig_tls_conn *t);
const char *ig_tls_conn_cipher(const struct ig_tls_conn *t);
/* After the handshake: the client certificate the connection verified,
 * as an element of Envoy's x-forwarded-client-cert header
 * (Hash=<sha256 hex>;Subject="<RFC 2253>";URI=...;DNS=...), made once;
 * NULL when the client presented none or it did not verify. */
const char *ig_tls_conn_client_cert(struct ig_tls_conn *t);
/* After the handshake: whether it resumed an earlier session. */
bool ig_tls_conn_resumed(const struct ig_tls_conn *t);
/* Why the last call failed, for a log line ("http request", "no shared
 * cipher"); "" when none did. */
const char *ig_tls_conn_error(const struct ig_tls_conn *t);

#endif
