/* Certificates made in memory for unit tests that speak TLS: self-signed,
 * each its own trust anchor (basicConstraints CA:TRUE), valid from an hour
 * ago for a day, with the subjectAltName given in OpenSSL's text form
 * ("DNS:a.test,DNS:*.b.test,URI:spiffe://x"). */
#ifndef IG_TEST_CERTS_H
#define IG_TEST_CERTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct cert {
	char *pem, *key; /* PEM text, NUL-terminated */
	size_t pem_len, key_len;
	X509 *x;
	char cn[64];
};

static inline char *cert_bio_text(BIO *b, size_t *len)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *out = malloc((size_t)n + 1);
	assert_non_null(out);
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	return out;
}

/* CN cn, the names in san (NULL: none), an EC P-256 key, or RSA of
 * rsa_bits when not 0. */
static inline void make_cert(struct cert *c, const char *cn, const char *san, int rsa_bits)
{
	static long serial = 1;
	memset(c, 0, sizeof *c);
	snprintf(c->cn, sizeof c->cn, "%s", cn);
	EVP_PKEY *k = rsa_bits ? EVP_RSA_gen((unsigned)rsa_bits) : EVP_EC_gen("P-256");
	assert_non_null(k);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	const char *exts[][2] = {{"subjectAltName", san}, {"basicConstraints", "critical,CA:TRUE"}};
	for (size_t i = 0; i < 2; i++) {
		if (!exts[i][1])
			continue;
		X509_EXTENSION *ext = X509V3_EXT_conf(NULL, NULL, exts[i][0], exts[i][1]);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	c->pem = cert_bio_text(b, &c->pem_len);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	c->key = cert_bio_text(b, &c->key_len);
	BIO_free(b);
	EVP_PKEY_free(k);
	c->x = x;
}

static inline void cert_free(struct cert *c)
{
	free(c->pem);
	free(c->key);
	X509_free(c->x);
	memset(c, 0, sizeof *c);
}

#endif
