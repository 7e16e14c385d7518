/* The API client: libcurl's multi interface with its sockets and timer
 * handed to an ig_loop (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), so list,
 * watch and write requests all run on the control thread without blocking
 * it. The API client is not the request path: clarity over speed here. */
#include "kube/api.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/log.h"
#include "event/loop.h"

#define DEFAULT_MAX_BODY (64u << 20)
#define MAX_LINE (16u << 20)
#define CONNECT_TIMEOUT_MS 5000L
/* A Retry-After longer than this is read as this: a server's number must
 * not stop the informers for hours. */
#define RETRY_AFTER_MAX_S 300L

struct sock {
	struct ig_io io;
	struct ig_kube_api *api;
	struct sock *prev, *next;
};

struct req {
	struct ig_kube_req pub; /* first: callbacks get &pub */
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *connect_to; /* tls-server-name's redirection, or NULL */
	char *send;
	struct ig_buf buf;
	ig_kube_line_fn on_line;
	ig_kube_done_fn on_done;
	void (*on_open)(struct ig_kube_req *r);
	void (*on_drop)(void *data);
	long retry_after_s; /* the last response head's Retry-After; -1: none */
	char errbuf[CURL_ERROR_SIZE];
	struct req *prev, *next;
};

struct ig_kube_api {
	struct ig_loop *loop;
	CURLM *multi;
	struct ig_timer timer;
	struct ig_kube_creds creds;
	struct sock *socks;
	struct req *reqs;
};

static void process_done(struct ig_kube_api *a);

/* ---- the multi handle on the loop ---- */

static void on_io(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct sock *k = io->data;
	struct ig_kube_api *a = k->api;
	int flags = (events & IG_EV_READ ? CURL_CSELECT_IN : 0) |
		    (events & IG_EV_WRITE ? CURL_CSELECT_OUT : 0) |
		    (events & IG_EV_ERROR ? CURL_CSELECT_ERR : 0);
	int running;
	curl_multi_socket_action(a->multi, io->fd, flags, &running);
	process_done(a);
}

static void unlink_sock(struct ig_kube_api *a, struct sock *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		a->socks = k->next;
	if (k->next)
		k->next->prev = k->prev;
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct ig_kube_api *a = userp;
	struct sock *k = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (k) {
			ig_io_stop(a->loop, &k->io);
			unlink_sock(a, k);
			free(k);
			curl_multi_assign(a->multi, s, NULL);
		}
		return 0;
	}
	unsigned ev =
	    (what & CURL_POLL_IN ? IG_EV_READ : 0) | (what & CURL_POLL_OUT ? IG_EV_WRITE : 0);
	if (!k) {
		k = calloc(1, sizeof *k);
		if (!k)
			return -1;
		k->api = a;
		k->next = a->socks;
		if (a->socks)
			a->socks->prev = k;
		a->socks = k;
		curl_multi_assign(a->multi, s, k);
		if (ig_io_start(a->loop, &k->io, s, ev, on_io, k) < 0)
			return -1;
		return 0;
	}
	ig_io_set(a->loop, &k->io, ev);
	return 0;
}

static void on_timer(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_kube_api *a = t->data;
	int running;
	curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	process_done(a);
}

static int on_timer_set(CURLM *m, long timeout_ms, void *userp)
{
	struct ig_kube_api *a = userp;
	if (timeout_ms < 0)
		ig_timer_stop(a->loop, &a->timer);
	else
		ig_timer_start(a->loop, &a->timer, (uint64_t)timeout_ms, on_timer, a);
	return 0;
}

/* ---- requests ---- */

static void req_free(struct ig_kube_api *a, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		a->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	curl_multi_remove_handle(a->multi, r->easy);
	if (r->on_drop)
		r->on_drop(r->pub.data);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	free(r->send);
	ig_buf_free(&r->buf);
	free(r);
}

static void process_done(struct ig_kube_api *a)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(a->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		CURLcode code = m->data.result;
		curl_multi_remove_handle(a->multi, r->easy);
		struct ig_kube_result res = {.curl_code = (int)code};
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
		res.body = ig_buf_cstr(&r->buf);
		if (!res.body)
			res.body = "";
		res.len = r->buf.len;
		if (code == CURLE_OK && r->retry_after_s >= 0 &&
		    (res.status == 429 || res.status >= 500))
			res.retry_after_ms = (unsigned long)r->retry_after_s * 1000ul;
		if (code != CURLE_OK) {
			res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
			curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &res.os_errno);
		}
		r->on_drop = NULL; /* on_done owns the data now */
		if (r->on_done)
			r->on_done(&r->pub, &res);
		req_free(a, r);
	}
}

/* Lines of a streamed 200 response go to on_line as they complete; any
 * other response is collected whole. */
static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	size_t len = size * n;
	if (ig_buf_append(&r->buf, ptr, len) < 0)
		return 0;
	if (!r->on_line)
		return len;
	long status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return len;
	size_t start = 0;
	for (size_t i = r->buf.len - len; i < r->buf.len; i++) {
		if (r->buf.ptr[i] != '\n')
			continue;
		if (i > start && r->on_line(&r->pub, r->buf.ptr + start, i - start) < 0) {
			r->pub.stopped = true;
			return 0;
		}
		start = i + 1;
	}
	ig_buf_consume(&r->buf, start);
	return len;
}

/* Retry-After in its delay-seconds form (RFC 9110 10.2.3); the HTTP-date
 * form is left to the caller's own back-off, as client-go leaves it. */
static long retry_after(const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	if (len == 0)
		return -1;
	long s = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (s < RETRY_AFTER_MAX_S)
			s = s * 10 + (v[i] - '0');
	}
	return s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S;
}

/* A response head's lines: Retry-After is kept; the blank line that ends
 * the head of a 200 means the stream is open (interim 1xx heads and
 * redirects do not count). */
static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	size_t len = size * n;
	static const char ra[] = "retry-after:";
	if (len >= 5 && !strncmp(ptr, "HTTP/", 5))
		r->retry_after_s = -1; /* a new head */
	else if (len > sizeof ra - 1 && !strncasecmp(ptr, ra, sizeof ra - 1))
		r->retry_after_s = retry_after(ptr + sizeof ra - 1, len - (sizeof ra - 1));
	if (r->on_open && (len == 2 || len == 1) && (ptr[0] == '\r' || ptr[0] == '\n')) {
		long status = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			r->on_open(&r->pub);
			r->on_open = NULL;
		}
	}
	return len;
}

/* The token, read again from its file for every request: a rotated
 * service-account token is picked up without a restart. */
static int add_auth(struct ig_kube_api *a, struct req *r)
{
	char *token = a->creds.token;
	char *from_file = NULL;
	if (!token && a->creds.token_file) {
		FILE *f = fopen(a->creds.token_file, "r");
		if (!f) {
			ig_err("kube: cannot read the token file %s", a->creds.token_file);
			return -1;
		}
		char tok[16384];
		size_t n = fread(tok, 1, sizeof tok - 1, f);
		fclose(f);
		tok[n] = '\0';
		tok[strcspn(tok, "\r\n")] = '\0';
		token = from_file = strdup(tok);
		explicit_bzero(tok, sizeof tok);
	}
	if (!token)
		return 0;
	char *h;
	int rc = asprintf(&h, "Authorization: Bearer %s", token);
	if (from_file) {
		explicit_bzero(from_file, strlen(from_file));
		free(from_file);
	}
	if (rc < 0)
		return -1;
	struct curl_slist *l = curl_slist_append(r->headers, h);
	explicit_bzero(h, strlen(h));
	free(h);
	if (!l)
		return -1;
	r->headers = l;
	return 0;
}

static void set_tls(struct ig_kube_api *a, CURL *e)
{
	const struct ig_kube_creds *c = &a->creds;
	if (c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->ca_pem) {
		struct curl_blob b = {.data = c->ca_pem, .len = c->ca_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	} else if (c->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (c->cert_pem) {
		struct curl_blob b = {
		    .data = c->cert_pem, .len = c->cert_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (c->cert_file) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	}
	if (c->key_pem) {
		struct curl_blob b = {
		    .data = c->key_pem, .len = c->key_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (c->key_file) {
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	}
}

/* What every request does the same way: callbacks, timeouts, keepalive
 * probes (a watch may be silent for minutes), HTTPS only. */
static void set_transfer(struct req *r, const char *url, unsigned long timeout_ms)
{
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "infergate");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	if (timeout_ms)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
}

/* Method, headers (Accept, Authorization, Content-Type) and body. */
static int set_message(struct ig_kube_api *a, struct req *r, const struct ig_kube_req_opts *o)
{
	CURL *e = r->easy;
	r->headers = curl_slist_append(NULL, "Accept: application/json");
	if (!r->headers || add_auth(a, r) < 0)
		return -1;
	if (a->creds.connect_to) {
		char host[300];
		snprintf(host, sizeof host, "Host: %s", a->creds.hostport);
		struct curl_slist *l = curl_slist_append(r->headers, host);
		if (!l)
			return -1;
		r->headers = l;
	}
	if (o->method && strcmp(o->method, "GET"))
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
	if (o->body) {
		char ct[128];
		snprintf(ct, sizeof ct, "Content-Type: %s",
			 o->content_type ? o->content_type : "application/json");
		struct curl_slist *l = curl_slist_append(r->headers, ct);
		if (!l)
			return -1;
		r->headers = l;
		if (!(r->send = strdup(o->body)))
			return -1;
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->send);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->send));
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	return 0;
}

struct ig_kube_req *ig_kube_request(struct ig_kube_api *a, const char *path,
				    const struct ig_kube_req_opts *o)
{
	struct req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->pub.api = a;
	r->pub.data = o->data;
	r->on_line = o->on_line;
	r->on_done = o->on_done;
	r->on_open = o->on_open;
	r->on_drop = o->on_drop;
	r->retry_after_s = -1;
	ig_buf_init(&r->buf, o->max_body ? o->max_body : DEFAULT_MAX_BODY);
	r->easy = curl_easy_init();
	char *url = NULL;
	const struct ig_kube_creds *c = &a->creds;
	if (!r->easy || asprintf(&url, "%s%s", c->url_base ? c->url_base : c->server, path) < 0)
		goto fail;
	set_transfer(r, url, o->timeout_ms);
	set_tls(a, r->easy);
	if (c->connect_to) {
		/* The URL names tls-server-name (checked against the
		 * certificate, sent as SNI); the connection goes to server's
		 * address, and Host names it, as client-go sends it. */
		r->connect_to = curl_slist_append(NULL, c->connect_to);
		if (!r->connect_to)
			goto fail;
		curl_easy_setopt(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
	}
	if (c->proxy_url)
		curl_easy_setopt(r->easy, CURLOPT_PROXY, c->proxy_url);
	free(url); /* curl keeps a copy */
	if (set_message(a, r, o) < 0)
		goto fail;
	r->next = a->reqs;
	if (a->reqs)
		a->reqs->prev = r;
	a->reqs = r;
	if (curl_multi_add_handle(a->multi, r->easy) != CURLM_OK) {
		r->on_drop = NULL; /* the caller keeps its data on NULL */
		req_free(a, r);
		return NULL;
	}
	return &r->pub;
fail:
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	free(r->send);
	ig_buf_free(&r->buf);
	free(r);
	return NULL;
}

void ig_kube_cancel(struct ig_kube_req *pub)
{
	if (pub)
		req_free(pub->api, (struct req *)pub);
}

/* ---- life ---- */

struct ig_kube_api *ig_kube_api_new(struct ig_loop *loop, struct ig_kube_creds *creds)
{
	struct ig_kube_api *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->loop = loop;
	a->multi = curl_multi_init();
	if (!a->multi) {
		free(a);
		return NULL;
	}
	a->creds = *creds;
	memset(creds, 0, sizeof *creds);
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
	return a;
}

void ig_kube_api_free(struct ig_kube_api *a)
{
	if (!a)
		return;
	while (a->reqs)
		req_free(a, a->reqs);
	curl_multi_cleanup(a->multi);
	while (a->socks) {
		struct sock *k = a->socks;
		ig_io_stop(a->loop, &k->io);
		unlink_sock(a, k);
		free(k);
	}
	ig_timer_stop(a->loop, &a->timer);
	ig_kube_creds_free(&a->creds);
	free(a);
}

const struct ig_kube_creds *ig_kube_api_creds(const struct ig_kube_api *a)
{
	return &a->creds;
}

static const char *reason(long status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "";
	}
}

const char *ig_kube_describe(const struct ig_kube_api *a, const struct ig_kube_result *res,
			     char *buf, size_t len)
{
	if (res->curl_code) {
		/* curl's own text for a failed connect carries the milliseconds
		 * it took; the system's reason says the same, steadily (so that
		 * a repeated failure is logged once). */
		if (res->curl_code == CURLE_COULDNT_CONNECT && res->os_errno)
			snprintf(buf, len, "%s: cannot connect: %s", a->creds.hostport,
				 strerror((int)res->os_errno));
		else if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
			snprintf(buf, len, "%s: timed out", a->creds.hostport);
		else
			snprintf(buf, len, "%s: %s", a->creds.hostport,
				 res->error ? res->error : "failed");
		return buf;
	}
	/* The API server says why in a Status object's message. */
	json_t *st = res->len ? json_loadb(res->body, res->len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(st, "message"));
	snprintf(buf, len, "%s: HTTP %ld %s%s%s", a->creds.hostport, res->status,
		 reason(res->status), msg ? ": " : "", msg ? msg : "");
	json_decref(st);
	return buf;
}

const char *ig_kube_escape(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s && n + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			buf[n++] = (char)c;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		}
	}
	buf[n] = '\0';
	return buf;
}
