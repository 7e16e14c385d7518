/* Unit tests for the self-signed certificate generator: the certificate
 * verifies against itself as a trust anchor for each of its names (DNS
 * and IP), not for another name, its key matches, and bad arguments are
 * refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "http/certgen.h"

static X509 *load_cert(const struct ig_buf *b)
{
	BIO *bio = BIO_new_mem_buf(b->ptr, (int)b->len);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return x;
}

static EVP_PKEY *load_key(const struct ig_buf *b)
{
	BIO *bio = BIO_new_mem_buf(b->ptr, (int)b->len);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return k;
}

/* Verifies x with itself as the only trust anchor, for a host name or an
 * IP address; returns the X509 verify result. */
static int verify_for(X509 *x, const char *host, const char *ip)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_add_cert(store, x), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
	X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
	if (host)
		X509_VERIFY_PARAM_set1_host(p, host, 0);
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(p, ip);
	X509_verify_cert(ctx);
	int rc = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return rc;
}

static void test_cert_verifies_for_its_names(void **state)
{
	(void)state;
	const char *names[] = {"llm.example.com", "127.0.0.1", "localhost"};
	struct ig_buf cert = {0}, key = {0};
	char err[256] = "";
	assert_int_equal(ig_certgen_selfsigned(names, 3, 30, &cert, &key, err, sizeof err), 0);
	assert_non_null(strstr(ig_buf_cstr(&cert), "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(ig_buf_cstr(&key), "-----BEGIN PRIVATE KEY-----"));

	X509 *x = load_cert(&cert);
	EVP_PKEY *k = load_key(&key);
	assert_non_null(x);
	assert_non_null(k);
	assert_int_equal(X509_check_private_key(x, k), 1);
	assert_int_equal(verify_for(x, "llm.example.com", NULL), X509_V_OK);
	assert_int_equal(verify_for(x, "localhost", NULL), X509_V_OK);
	assert_int_equal(verify_for(x, NULL, "127.0.0.1"), X509_V_OK);
	assert_int_equal(verify_for(x, "other.example.com", NULL), X509_V_ERR_HOSTNAME_MISMATCH);
	assert_int_equal(verify_for(x, NULL, "127.0.0.2"), X509_V_ERR_IP_ADDRESS_MISMATCH);
	/* Valid now, and not for longer than asked. */
	assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
	assert_true(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
	assert_true(X509_cmp_time(X509_get0_notAfter(x), &(time_t){time(NULL) + 31 * 86400}) < 0);
	X509_free(x);
	EVP_PKEY_free(k);

	/* Two calls make two different keys and serials. */
	struct ig_buf cert2 = {0}, key2 = {0};
	assert_int_equal(ig_certgen_selfsigned(names, 1, 1, &cert2, &key2, err, sizeof err), 0);
	assert_false(key.len == key2.len && !memcmp(key.ptr, key2.ptr, key.len));
	ig_buf_free(&cert);
	ig_buf_free(&key);
	ig_buf_free(&cert2);
	ig_buf_free(&key2);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct ig_buf cert = {0}, key = {0};
	char err[256];
	const char *comma[] = {"a.example.com,IP:1.2.3.4"};
	const char *empty[] = {""};
	const char *ok[] = {"a.example.com"};
	assert_int_equal(ig_certgen_selfsigned(comma, 1, 1, &cert, &key, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a DNS name"));
	assert_int_equal(ig_certgen_selfsigned(empty, 1, 1, &cert, &key, err, sizeof err), -1);
	assert_int_equal(ig_certgen_selfsigned(ok, 0, 1, &cert, &key, err, sizeof err), -1);
	assert_int_equal(ig_certgen_selfsigned(ok, 1, 0, &cert, &key, err, sizeof err), -1);
	assert_int_equal(cert.len + key.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cert_verifies_for_its_names),
	    cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
