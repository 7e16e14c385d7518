/* Finding the API server and the credentials for it. kubeconfig files are
 * read with libyaml into jansson values; only what a client needs is
 * taken: the current context's cluster (server, certificate-authority,
 * certificate-authority-data, insecure-skip-tls-verify, tls-server-name,
 * proxy-url) and user (token,
 * tokenFile, client-certificate(-data), client-key(-data)). Exec and auth
 * provider plugins are refused with a message: they run other programs;
 * so is basic auth (username/password), which Kubernetes no longer
 * serves. Several files in $KUBECONFIG are merged as kubectl merges them. */
#include "kube/creds.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/str.h"
#include "kube/yamljson.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_KUBECONFIG (4u << 20)

static char *read_file(const char *path, size_t *len, size_t max)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct stat st;
	char *buf = NULL;
	if (fstat(fileno(f), &st) == 0 && (size_t)st.st_size <= max) {
		buf = malloc((size_t)st.st_size + 1);
		if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[st.st_size] = '\0';
			if (len)
				*len = (size_t)st.st_size;
		}
	} else {
		errno = EFBIG;
	}
	fclose(f);
	return buf;
}

static char *dupz(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A path of the kubeconfig, relative to the file's directory. */
static char *rel_path(const char *kubeconfig, const char *p)
{
	if (!p || !*p)
		return NULL;
	if (p[0] == '/')
		return strdup(p);
	const char *slash = strrchr(kubeconfig, '/');
	char *out;
	if (!slash)
		return strdup(p);
	if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p) < 0)
		return NULL;
	return out;
}

/* The entry `name` of a kubeconfig list (clusters, users, contexts): its
 * inner object (cluster, user, context). */
static json_t *named(json_t *root, const char *list, const char *inner, const char *name)
{
	json_t *a = json_object_get(root, list);
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e)
	{
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && name && !strcmp(n, name))
			return json_object_get(e, inner);
	}
	return NULL;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* host:port of an https:// URL (the default port 443 made explicit); a
 * path after it (a proxy's prefix, as Rancher's /k8s/clusters/ID) stays
 * in server, without trailing slashes, so that every request goes under
 * it as client-go sends them. */
static int set_server(struct ig_kube_creds *c, const char *url, char *err, size_t errlen)
{
	const char *h = url;
	if (!strncmp(h, "https://", 8))
		h += 8;
	else if (!strncmp(h, "http://", 7)) {
		snprintf(err, errlen, "%s: server %s: only https is supported", c->source, url);
		return -1;
	}
	size_t hl = strcspn(h, "/");
	if (hl == 0) {
		snprintf(err, errlen, "%s: server '%s' has no host", c->source, url);
		return -1;
	}
	bool has_port = h[0] == '['
			    ? memchr(h, ']', hl) && ((const char *)memchr(h, ']', hl))[1] == ':'
			    : memchr(h, ':', hl) != NULL;
	const char *path = h + hl;
	size_t pl = strcspn(path, "?#");
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	if (asprintf(&c->hostport, "%.*s%s", (int)hl, h, has_port ? "" : ":443") < 0 ||
	    asprintf(&c->server, "https://%s%.*s", c->hostport, (int)pl, path) < 0)
		return -1;
	return 0;
}

static int take_data(const char *b64, char **pem, size_t *len, const char *what,
		     struct ig_kube_creds *c, char *err, size_t errlen)
{
	if (!b64)
		return 0;
	/* Looser than client-go, which reads these fields as Go's
	 * StdEncoding: blanks and missing padding are let through. */
	size_t n = strlen(b64);
	*pem = malloc(IG_BASE64_DECODED_MAX(n) + 1);
	if (!*pem) {
		snprintf(err, errlen, "%s: out of memory", c->source);
		return -1;
	}
	long dl = ig_base64_decode(b64, n, *pem, IG_BASE64_LAX);
	if (dl < 0) {
		free(*pem);
		*pem = NULL;
		snprintf(err, errlen, "%s: %s is not valid base64", c->source, what);
		return -1;
	}
	(*pem)[dl] = '\0';
	*len = (size_t)dl;
	return 0;
}

/* The file an entry of a merged kubeconfig came from: its relative paths
 * are relative to that file, as kubectl resolves them. */
#define FROM_KEY "\x01file"

static const char *file_of(json_t *entry, const char *path)
{
	const char *f = json_string_value(json_object_get(entry, FROM_KEY));
	return f ? f : path;
}

/* A cluster's tls-server-name and proxy-url, as client-go reads them. */
static int cluster_extras(struct ig_kube_creds *c, json_t *cl, char *err, size_t errlen)
{
	const char *name = str(cl, "tls-server-name");
	const char *proxy = str(cl, "proxy-url");
	if (proxy && *proxy) {
		static const char *const schemes[] = {"http://", "https://", "socks5://"};
		bool ok = false;
		for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
			ok |= !strncmp(proxy, schemes[i], strlen(schemes[i]));
		if (!ok) {
			snprintf(err, errlen,
				 "%s: proxy-url %s: the scheme must be http, https or socks5",
				 c->source, proxy);
			return -1;
		}
		if (!(c->proxy_url = strdup(proxy)))
			return -1;
	}
	if (!name || !*name)
		return 0;
	if (strpbrk(name, ":/[] \t")) {
		snprintf(err, errlen, "%s: tls-server-name '%s' is not a host name", c->source,
			 name);
		return -1;
	}
	/* hostport always ends in :PORT (set_server adds 443); the path of
	 * server follows it. */
	const char *colon = strrchr(c->hostport, ':');
	const char *prefix = c->server + strlen("https://") + strlen(c->hostport);
	if (!(c->tls_server_name = strdup(name)) ||
	    asprintf(&c->url_base, "https://%s%s%s", name, colon, prefix) < 0 ||
	    asprintf(&c->connect_to, "%s%s:%s", name, colon, c->hostport) < 0)
		return -1;
	return 0;
}

static int from_kubeconfig(json_t *root, const char *path, struct ig_kube_creds *c, char *err,
			   size_t errlen)
{
	const char *ctx_name = str(root, "current-context");
	json_t *ctx = named(root, "contexts", "context", ctx_name);
	if (!ctx) {
		snprintf(err, errlen, "%s: no current context%s%s", c->source,
			 ctx_name ? " named " : "", ctx_name ? ctx_name : "");
		return -1;
	}
	json_t *cl = named(root, "clusters", "cluster", str(ctx, "cluster"));
	json_t *user = named(root, "users", "user", str(ctx, "user"));
	if (!cl || !str(cl, "server")) {
		snprintf(err, errlen, "%s: context %s has no cluster with a server", c->source,
			 ctx_name);
		return -1;
	}
	if (set_server(c, str(cl, "server"), err, errlen) < 0)
		return -1;
	c->ns = dupz(str(ctx, "namespace"));
	c->insecure = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
	if (cluster_extras(c, cl, err, errlen) < 0)
		return -1;
	c->ca_file = rel_path(file_of(cl, path), str(cl, "certificate-authority"));
	if (take_data(str(cl, "certificate-authority-data"), &c->ca_pem, &c->ca_len,
		      "certificate-authority-data", c, err, errlen) < 0)
		return -1;
	if (!user)
		return 0;
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
		snprintf(err, errlen,
			 "%s: user %s authenticates with an exec or auth-provider plugin, which "
			 "infergate does not run; give it a token or a client certificate",
			 c->source, str(ctx, "user"));
		return -1;
	}
	if (str(user, "username") || str(user, "password")) {
		snprintf(err, errlen,
			 "%s: user %s authenticates with a username and password (basic auth), "
			 "which infergate does not send; give it a token or a client certificate",
			 c->source, str(ctx, "user"));
		return -1;
	}
	const char *upath = file_of(user, path);
	c->token = dupz(str(user, "token"));
	c->token_file = rel_path(upath, str(user, "tokenFile"));
	c->cert_file = rel_path(upath, str(user, "client-certificate"));
	c->key_file = rel_path(upath, str(user, "client-key"));
	if (take_data(str(user, "client-certificate-data"), &c->cert_pem, &c->cert_len,
		      "client-certificate-data", c, err, errlen) < 0 ||
	    take_data(str(user, "client-key-data"), &c->key_pem, &c->key_len, "client-key-data", c,
		      err, errlen) < 0)
		return -1;
	return 0;
}

static bool exists(const char *p)
{
	struct stat st;
	return p && stat(p, &st) == 0;
}

/* A kubeconfig file as a JSON object, or NULL with the reason in err. */
static json_t *load_kubeconfig(const char *path, const char *source, char *err, size_t errlen)
{
	size_t len = 0;
	char *text = read_file(path, &len, MAX_KUBECONFIG);
	if (!text) {
		snprintf(err, errlen, "%s: cannot read: %s", source, strerror(errno));
		return NULL;
	}
	char why[160];
	json_t *root = ig_yaml_to_json(text, len, why, sizeof why);
	free(text);
	if (!root || !json_is_object(root)) {
		snprintf(err, errlen, "%s: not a kubeconfig: %s", source,
			 root ? "not a mapping" : why);
		json_decref(root);
		return NULL;
	}
	return root;
}

int ig_kube_creds_from_file(const char *path, struct ig_kube_creds *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	if (asprintf(&c->source, "kubeconfig %s", path) < 0)
		return -1;
	json_t *root = load_kubeconfig(path, c->source, err, errlen);
	if (!root)
		return -1;
	int rc = from_kubeconfig(root, path, c, err, errlen);
	json_decref(root);
	return rc;
}

/* Merges one more file into a merged kubeconfig the way kubectl's
 * loading rules do: current-context from the first file that sets it,
 * clusters, users and contexts by name, the first of a name winning. */
static void merge_into(json_t *merged, json_t *root, const char *path)
{
	if (!json_object_get(merged, "current-context") && str(root, "current-context"))
		json_object_set(merged, "current-context",
				json_object_get(root, "current-context"));
	static const char *const lists[][2] = {
	    {"clusters", "cluster"}, {"users", "user"}, {"contexts", "context"}};
	for (size_t l = 0; l < 3; l++) {
		json_t *into = json_object_get(merged, lists[l][0]);
		if (!into) {
			into = json_array();
			json_object_set_new(merged, lists[l][0], into);
		}
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(root, lists[l][0]), i, e)
		{
			const char *name = str(e, "name");
			json_t *inner = json_object_get(e, lists[l][1]);
			if (!name || !json_is_object(inner) ||
			    named(merged, lists[l][0], lists[l][1], name))
				continue;
			json_object_set_new(inner, FROM_KEY, json_string(path));
			json_array_append(into, e);
		}
	}
}

/* $KUBECONFIG: a list like PATH; the files that exist are merged (a
 * missing one is skipped, as kubectl skips it). 1: none exists. */
static int from_env_list(const char *env, struct ig_kube_creds *c, char *err, size_t errlen)
{
	char *list = strdup(env), *save = NULL;
	json_t *merged = json_object();
	int rc = 1;
	memset(c, 0, sizeof *c);
	if (!list || !merged) {
		rc = -1;
		goto out;
	}
	for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		if (!exists(p))
			continue;
		char src[PATH_MAX + 16];
		snprintf(src, sizeof src, "kubeconfig %s", p);
		json_t *root = load_kubeconfig(p, src, err, errlen);
		if (!root) {
			rc = -1;
			goto out;
		}
		merge_into(merged, root, p);
		json_decref(root);
		rc = 0;
	}
	if (rc == 0) {
		if (asprintf(&c->source, "$KUBECONFIG %s", env) < 0)
			rc = -1;
		else
			rc = from_kubeconfig(merged, "", c, err, errlen);
	}
out:
	json_decref(merged);
	free(list);
	return rc;
}

/* Where the service account is mounted; $INFERGATE_SERVICEACCOUNT_DIR
 * moves it (tests, unusual mounts). */
static const char *sa_dir(void)
{
	const char *d = getenv("INFERGATE_SERVICEACCOUNT_DIR");
	return d && *d ? d : SA_DIR;
}

static char *sa_file(const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", sa_dir(), name) < 0 ? NULL : p;
}

/* The pod's service account, as client-go's rest.InClusterConfig reads it. */
static int in_cluster(struct ig_kube_creds *c, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	memset(c, 0, sizeof *c);
	c->source = strdup("in-cluster service account");
	char url[300];
	snprintf(url, sizeof url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port && *port ? port : "443");
	if (set_server(c, url, err, errlen) < 0)
		return -1;
	c->token_file = sa_file("token");
	c->ca_file = sa_file("ca.crt");
	char *nsfile = sa_file("namespace");
	size_t len;
	char *ns = nsfile ? read_file(nsfile, &len, 256) : NULL;
	free(nsfile);
	if (ns) {
		ns[strcspn(ns, "\r\n")] = '\0';
		c->ns = ns;
	}
	return 0;
}

int ig_kube_creds_load(const char *kubeconfig, struct ig_kube_creds *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	if (kubeconfig)
		return ig_kube_creds_from_file(kubeconfig, c, err, errlen);
	const char *env = getenv("KUBECONFIG");
	if (env && *env) {
		int rc = from_env_list(env, c, err, errlen);
		if (rc <= 0)
			return rc;
	}
	char *token = sa_file("token");
	bool sa = token && exists(token);
	free(token);
	if (getenv("KUBERNETES_SERVICE_HOST") && sa)
		return in_cluster(c, err, errlen);
	const char *home = getenv("HOME");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/.kube/config", home ? home : "");
	if (home && exists(path))
		return ig_kube_creds_from_file(path, c, err, errlen);
	snprintf(err, errlen,
		 "no Kubernetes credentials: give --kubeconfig, set KUBECONFIG, run in a pod "
		 "with a service account, or create ~/.kube/config");
	return -1;
}

void ig_kube_creds_free(struct ig_kube_creds *c)
{
	if (c->key_pem)
		explicit_bzero(c->key_pem, c->key_len);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->server);
	free(c->hostport);
	free(c->tls_server_name);
	free(c->url_base);
	free(c->connect_to);
	free(c->proxy_url);
	free(c->source);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->token);
	free(c->token_file);
	free(c->ns);
	memset(c, 0, sizeof *c);
}
