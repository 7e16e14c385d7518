/* Unit tests for the Kubernetes client's credentials: kubeconfig files
 * (current context, relative paths, *-data fields in base64, default
 * port, refusals with a reason), the search order (--kubeconfig, then
 * $KUBECONFIG's first existing file) and the base64 decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/creds.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char two_contexts[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: b\n"
    "clusters:\n"
    "- name: one\n"
    "  cluster: {server: 'https://10.0.0.1:6443', certificate-authority: /etc/ca.crt}\n"
    "- name: two\n"
    "  cluster:\n"
    "    server: https://api.example.com\n"
    "    certificate-authority-data: aGVsbG8gd29ybGQ=\n"
    "users:\n"
    "- name: u1\n"
    "  user: {token: abc}\n"
    "- name: u2\n"
    "  user:\n"
    "    client-certificate: certs/client.crt\n"
    "    client-key-data: a2V5\n"
    "contexts:\n"
    "- name: a\n"
    "  context: {cluster: one, user: u1}\n"
    "- name: b\n"
    "  context: {cluster: two, user: u2, namespace: team}\n";

static void test_current_context(void **state)
{
	struct ig_kube_creds c;
	char err[256];
	const char *p = write_file("kc1", two_contexts);
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_string_equal(c.server, "https://api.example.com:443");
	assert_string_equal(c.hostport, "api.example.com:443");
	assert_non_null(c.ca_pem);
	assert_int_equal(c.ca_len, 11);
	assert_memory_equal(c.ca_pem, "hello world", 11);
	assert_null(c.ca_file);
	char want[300];
	snprintf(want, sizeof want, "%s/certs/client.crt", dir);
	assert_string_equal(c.cert_file, want);
	assert_int_equal(c.key_len, 3);
	assert_memory_equal(c.key_pem, "key", 3);
	assert_null(c.token);
	assert_string_equal(c.ns, "team");
	ig_kube_creds_free(&c);
}

/* The *-data fields are read more loosely than client-go reads them:
 * blanks inside and missing padding are let through. */
static void test_data_loose(void **state)
{
	struct ig_kube_creds c;
	char err[256];
	const char *p = write_file("kc6", "current-context: a\n"
					  "clusters: [{name: c, cluster: {server: 'https://h:1', "
					  "certificate-authority-data: 'aGVs bG8g\td29y bGQ'}}]\n"
					  "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_int_equal(c.ca_len, 11);
	assert_string_equal(c.ca_pem, "hello world");
	ig_kube_creds_free(&c);
}

static void test_refusals(void **state)
{
	struct ig_kube_creds c;
	char err[256];
	const char *p = write_file("kc2", "current-context: nope\ncontexts: []\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "no current context named nope"));
	ig_kube_creds_free(&c);

	p = write_file("kc3", "current-context: a\n"
			      "clusters: [{name: c, cluster: {server: 'http://h:80'}}]\n"
			      "contexts: [{name: a, context: {cluster: c, user: u}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "only https"));
	ig_kube_creds_free(&c);

	p = write_file("kc4", "current-context: a\n"
			      "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
			      "users: [{name: u, user: {exec: {command: gke-auth}}}]\n"
			      "contexts: [{name: a, context: {cluster: c, user: u}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "exec or auth-provider plugin"));
	ig_kube_creds_free(&c);

	p = write_file("kc5", "current-context: a\n"
			      "clusters: [{name: c, cluster: {server: 'https://h:1', "
			      "certificate-authority-data: '!!'}}]\n"
			      "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "certificate-authority-data is not valid base64"));
	ig_kube_creds_free(&c);

	assert_int_equal(ig_kube_creds_from_file("/nonexistent/kc", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot read"));
	ig_kube_creds_free(&c);
}

static void test_search_order(void **state)
{
	struct ig_kube_creds c;
	char err[256], env[600];
	char first[300];
	snprintf(first, sizeof first, "%s", write_file("kc6", two_contexts));
	const char *other =
	    write_file("kc7", "current-context: a\n"
			      "clusters: [{name: c, cluster: {server: "
			      "'https://[::1]:7443', insecure-skip-tls-verify: true}}]\n"
			      "users: [{name: u, user: {token: t0k, tokenFile: tf}}]\n"
			      "contexts: [{name: a, context: {cluster: c, user: u}}]\n");
	/* $KUBECONFIG: the first file of the list that exists. */
	snprintf(env, sizeof env, "/nonexistent:%s:%s", other, first);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(ig_kube_creds_load(NULL, &c, err, sizeof err), 0);
	assert_string_equal(c.hostport, "[::1]:7443");
	assert_true(c.insecure);
	assert_string_equal(c.token, "t0k");
	assert_non_null(strstr(c.token_file, "/tf"));
	ig_kube_creds_free(&c);
	/* --kubeconfig wins. */
	assert_int_equal(ig_kube_creds_load(first, &c, err, sizeof err), 0);
	assert_string_equal(c.hostport, "api.example.com:443");
	ig_kube_creds_free(&c);
	unsetenv("KUBECONFIG");
}

/* A server URL with a path (Rancher's /k8s/clusters/ID proxy) keeps it:
 * every request path goes under it, as client-go's rest client does. */
static void test_server_path(void **state)
{
	struct ig_kube_creds c;
	char err[256];
	const char *p = write_file("kc8", "current-context: a\n"
					  "clusters: [{name: c, cluster: {server: "
					  "'https://rancher.example:8443/k8s/clusters/c-1/'}}]\n"
					  "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_string_equal(c.server, "https://rancher.example:8443/k8s/clusters/c-1");
	assert_string_equal(c.hostport, "rancher.example:8443");
	ig_kube_creds_free(&c);
	p = write_file("kc9", "current-context: a\n"
			      "clusters: [{name: c, cluster: {server: 'https://h/p'}}]\n"
			      "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_string_equal(c.server, "https://h:443/p");
	ig_kube_creds_free(&c);
}

/* Basic auth (username/password) is refused with the reason, as plugins
 * are, rather than silently connecting without credentials. */
static void test_basic_auth_refused(void **state)
{
	struct ig_kube_creds c;
	char err[256];
	const char *p =
	    write_file("kc10", "current-context: a\n"
			       "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
			       "users: [{name: u, user: {username: a, password: b}}]\n"
			       "contexts: [{name: a, context: {cluster: c, user: u}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "username and password"));
	ig_kube_creds_free(&c);
}

/* $KUBECONFIG with several files is merged as kubectl merges it: the
 * first file to set current-context names the context, clusters, users
 * and contexts are merged by name (the first one wins), and relative
 * paths stay relative to the file they were written in. */
static void test_kubeconfig_merge(void **state)
{
	struct ig_kube_creds c;
	char err[256], env[900], a[300], b[300], sub[200];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	mkdir(sub, 0700);
	snprintf(a, sizeof a, "%s",
		 write_file("kca", "clusters: [{name: c, cluster: {server: 'https://first:1'}}]\n"
				   "contexts: [{name: x, context: {cluster: c, user: u}}]\n"));
	snprintf(b, sizeof b, "%s",
		 write_file("sub/kcb",
			    "current-context: x\n"
			    "clusters: [{name: c, cluster: {server: 'https://second:2'}},\n"
			    "           {name: d, cluster: {server: 'https://third:3'}}]\n"
			    "users: [{name: u, user: {tokenFile: tok}}]\n"
			    "contexts: [{name: x, context: {cluster: d, user: nobody}}]\n"));
	snprintf(env, sizeof env, "%s:/nonexistent:%s", a, b);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(ig_kube_creds_load(NULL, &c, err, sizeof err), 0);
	/* Context x and cluster c from the first file, current-context and
	 * user u from the second. */
	assert_string_equal(c.hostport, "first:1");
	char want[300];
	snprintf(want, sizeof want, "%s/tok", sub);
	assert_non_null(c.token_file);
	assert_string_equal(c.token_file, want);
	ig_kube_creds_free(&c);
	unsetenv("KUBECONFIG");
}

/* tls-server-name: requests go to a URL that names it (the certificate
 * is checked against it, SNI says it) and curl connects them to server's
 * address; a server path stays behind it. proxy-url: taken when its
 * scheme is one client-go knows. */
static void test_server_name_and_proxy(void **state)
{
	(void)state;
	struct ig_kube_creds c;
	char err[256];
	const char *p =
	    write_file("kc-sn", "current-context: a\n"
				"clusters: [{name: c, cluster: {server: "
				"'https://10.0.0.1:6443/k8s/x', tls-server-name: "
				"api.internal, proxy-url: 'socks5://127.0.0.1:1080'}}]\n"
				"contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_string_equal(c.server, "https://10.0.0.1:6443/k8s/x");
	assert_string_equal(c.url_base, "https://api.internal:6443/k8s/x");
	assert_string_equal(c.connect_to, "api.internal:6443:10.0.0.1:6443");
	assert_string_equal(c.proxy_url, "socks5://127.0.0.1:1080");
	ig_kube_creds_free(&c);

	p = write_file("kc-sn2", "current-context: a\n"
				 "clusters: [{name: c, cluster: {server: 'https://[::1]'}}]\n"
				 "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_null(c.url_base);
	assert_null(c.connect_to);
	assert_null(c.proxy_url);
	ig_kube_creds_free(&c);

	p = write_file("kc-sn3", "current-context: a\n"
				 "clusters: [{name: c, cluster: {server: 'https://[::1]', "
				 "tls-server-name: k8s}}]\n"
				 "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), 0);
	assert_string_equal(c.url_base, "https://k8s:443");
	assert_string_equal(c.connect_to, "k8s:443:[::1]:443");
	ig_kube_creds_free(&c);

	p = write_file("kc-sn4", "current-context: a\n"
				 "clusters: [{name: c, cluster: {server: 'https://h', "
				 "proxy-url: 'ftp://p:21'}}]\n"
				 "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "proxy-url ftp://p:21"));
	ig_kube_creds_free(&c);

	p = write_file("kc-sn5", "current-context: a\n"
				 "clusters: [{name: c, cluster: {server: 'https://h', "
				 "tls-server-name: 'a/b'}}]\n"
				 "contexts: [{name: a, context: {cluster: c}}]\n");
	assert_int_equal(ig_kube_creds_from_file(p, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "is not a host name"));
	ig_kube_creds_free(&c);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_kube.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_current_context),  cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_data_loose),	     cmocka_unit_test(test_search_order),
	    cmocka_unit_test(test_server_path),	     cmocka_unit_test(test_basic_auth_refused),
	    cmocka_unit_test(test_kubeconfig_merge), cmocka_unit_test(test_server_name_and_proxy),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
