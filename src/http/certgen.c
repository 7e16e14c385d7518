/* Self-signed certificates (see certgen.h), with OpenSSL 3's EVP and X509
 * interfaces. Every exit path leaves the thread's error queue empty. */
#include "http/certgen.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define MAX_NAMES 16
#define MAX_NAME 253

static int fail(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char why[160] = "";
	if (e)
		ERR_error_string_n(e, why, sizeof why);
	snprintf(err, errlen, "%s%s%s", what, why[0] ? ": " : "", why);
	ERR_clear_error();
	return -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* "DNS:a,IP:127.0.0.1,...": names are checked to hold no ',' or ':'
 * outside an IP literal, so the list cannot be misread. */
static int san_value(const char *const *names, size_t n, char *out, size_t len, char *err,
		     size_t errlen)
{
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = names[i];
		size_t sl = s ? strlen(s) : 0;
		unsigned char bin[16];
		bool ip = sl && (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1);
		if (sl == 0 || sl > MAX_NAME) {
			snprintf(err, errlen, "name %zu: empty or longer than %d bytes", i, MAX_NAME);
			return -1;
		}
		for (size_t k = 0; !ip && k < sl; k++) {
			char c = s[k];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '*')) {
				snprintf(err, errlen, "name %zu (\"%s\"): not a DNS name or IP address",
					 i, s);
				return -1;
			}
		}
		int w = snprintf(out + used, len - used, "%s%s:%s", i ? "," : "", ip ? "IP" : "DNS",
				 s);
		if (w < 0 || (size_t)w >= len - used) {
			snprintf(err, errlen, "too many names");
			return -1;
		}
		used += (size_t)w;
	}
	return 0;
}

static int append_bio(BIO *b, struct ig_buf *out)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	return n > 0 && ig_buf_append(out, p, (size_t)n) == 0 ? 0 : -1;
}

static int set_serial(X509 *x)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	raw[0] &= 0x7f; /* a positive INTEGER */
	raw[0] |= 0x01; /* and not a short one */
	BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

int ig_certgen_selfsigned(const char *const *names, size_t nnames, unsigned days,
			  struct ig_buf *cert, struct ig_buf *key, char *err, size_t errlen)
{
	char san[MAX_NAMES * (MAX_NAME + 5)];
	if (nnames == 0 || nnames > MAX_NAMES) {
		snprintf(err, errlen, "between 1 and %d names", MAX_NAMES);
		return -1;
	}
	if (days == 0 || days > 3650) {
		snprintf(err, errlen, "validity of 1 to 3650 days");
		return -1;
	}
	if (san_value(names, nnames, san, sizeof san, err, errlen))
		return -1;

	int rc = -1;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	if (!pkey || !x || !cb || !kb) {
		fail(err, errlen, "key generation");
		goto out;
	}
	X509_NAME *subj = X509_get_subject_name(x);
	X509V3_CTX ctx;
	if (!X509_set_version(x, 2) || set_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
	    !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)names[0],
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, subj)) {
		fail(err, errlen, "certificate fields");
		goto out;
	}
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    add_ext(x, &ctx, NID_subject_alt_name, san)) {
		fail(err, errlen, "certificate extensions");
		goto out;
	}
	if (!X509_sign(x, pkey, EVP_sha256())) {
		fail(err, errlen, "signing");
		goto out;
	}
	if (!PEM_write_bio_X509(cb, x) ||
	    !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL)) {
		fail(err, errlen, "PEM encoding");
		goto out;
	}
	size_t clen = cert->len, klen = key->len;
	if (append_bio(cb, cert) || append_bio(kb, key)) {
		cert->len = clen;
		key->len = klen;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	BIO_free(cb);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}
