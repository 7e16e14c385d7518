/* Credentials for the Kubernetes API: where the server is, how to trust
 * it and how to authenticate, found the way kubectl and client-go find
 * them: --kubeconfig, else $KUBECONFIG, else the in-cluster service
 * account, else ~/.kube/config. */
#ifndef IG_KUBE_CREDS_H
#define IG_KUBE_CREDS_H

#include <stdbool.h>
#include <stddef.h>

struct ig_kube_creds {
	char *server;	/* "https://host:port", no trailing slash */
	char *hostport; /* "host:port", for messages */
	char *source;	/* where these came from, for messages */
	/* Trust: a CA bundle file or PEM bytes (certificate-authority-data);
	 * neither: the system's store. */
	char *ca_file;
	char *ca_pem;
	size_t ca_len;
	bool insecure; /* insecure-skip-tls-verify (kubeconfig only) */
	/* tls-server-name: the name the server's certificate is checked
	 * against (and sent as SNI) in place of server's host. With it,
	 * requests go to url_base (that name) and connect_to (curl's
	 * "NAME:PORT:HOST:PORT") takes them to server's address. */
	char *tls_server_name, *url_base, *connect_to;
	char *proxy_url; /* proxy-url: http, https or socks5; NULL: the environment's */
	/* Client certificate and key: files or PEM bytes. */
	char *cert_file, *key_file;
	char *cert_pem, *key_pem;
	size_t cert_len, key_len;
	/* A bearer token, or a file holding it (re-read when it changes: the
	 * kubelet rotates projected service-account tokens). */
	char *token;
	char *token_file;
	char *ns; /* the context's namespace, or the service account's; NULL: none */
};

/* Finds and reads the credentials. kubeconfig: the --kubeconfig flag or
 * NULL. Returns 0, or -1 with a one-line reason in err. */
int ig_kube_creds_load(const char *kubeconfig, struct ig_kube_creds *c, char *err, size_t errlen);
void ig_kube_creds_free(struct ig_kube_creds *c);

/* Reads a kubeconfig file (its current context). For tests. */
int ig_kube_creds_from_file(const char *path, struct ig_kube_creds *c, char *err, size_t errlen);

#endif
