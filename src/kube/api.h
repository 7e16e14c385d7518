/* A small Kubernetes API client on libcurl's multi interface, driven by an
 * ig_loop (the gateway's control thread): requests never block the loop.
 * TLS verification is always on unless the kubeconfig says
 * insecure-skip-tls-verify. A request either collects its whole body
 * (lists, writes) or hands it over line by line (watches). */
#ifndef IG_KUBE_API_H
#define IG_KUBE_API_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/creds.h"

struct ig_loop;
struct ig_kube_api;
struct ig_kube_req;

struct ig_kube_result {
	int curl_code;	  /* 0: the exchange completed (any HTTP status) */
	long status;	  /* HTTP status, 0 when none arrived */
	const char *body; /* NUL-terminated; for line requests, what was not a line */
	size_t len;
	const char *error; /* curl_code != 0: what went wrong, in words */
	long os_errno;	   /* the system's error behind it, 0 if none */
	/* A 429 or 5xx answer's Retry-After in seconds, as milliseconds (0:
	 * none, or the HTTP-date form): client-go's rest client waits that
	 * long before it asks again (checkWait). */
	unsigned long retry_after_ms;
};

/* A line of a streamed 200 response (without its newline). Return 0 to go
 * on, -1 to end the request (its done callback then sees curl_code != 0
 * and the request's `stopped` flag). */
typedef int (*ig_kube_line_fn)(struct ig_kube_req *r, const char *line, size_t len);
typedef void (*ig_kube_done_fn)(struct ig_kube_req *r, const struct ig_kube_result *res);

struct ig_kube_req_opts {
	const char *method;	  /* default GET */
	const char *body;	  /* NULL: none */
	const char *content_type; /* of the body; default application/json */
	ig_kube_line_fn on_line;  /* NULL: collect the body */
	ig_kube_done_fn on_done;  /* called once, unless cancelled; the request is freed after */
	/* Called instead of on_done when the request is cancelled or the
	 * client freed first: frees what data holds. */
	void (*on_drop)(void *data);
	/* Called when a 200 response's head has arrived (a watch is open). */
	void (*on_open)(struct ig_kube_req *r);
	void *data;
	unsigned long timeout_ms; /* whole request; 0: none */
	size_t max_body;	  /* ceiling of a collected body; 0: 64 MiB */
};

struct ig_kube_req {
	struct ig_kube_api *api;
	void *data;
	bool stopped; /* its line callback asked to end it */
};

/* Takes ownership of creds. NULL when out of memory. */
struct ig_kube_api *ig_kube_api_new(struct ig_loop *loop, struct ig_kube_creds *creds);
void ig_kube_api_free(struct ig_kube_api *a);
const struct ig_kube_creds *ig_kube_api_creds(const struct ig_kube_api *a);

/* Starts a request for path (beginning with "/", query included). NULL
 * when it could not be set up (out of memory, unreadable token file). */
struct ig_kube_req *ig_kube_request(struct ig_kube_api *a, const char *path,
				    const struct ig_kube_req_opts *o);
/* Ends a request without calling its done callback. Not from inside one
 * of its own callbacks. */
void ig_kube_cancel(struct ig_kube_req *r);

/* "host:port: HTTP 401 Unauthorized" or "host:port: Connection refused"
 * for a failed result, into buf. */
const char *ig_kube_describe(const struct ig_kube_api *a, const struct ig_kube_result *res,
			     char *buf, size_t len);

/* Percent-encodes s for a query value into buf. */
const char *ig_kube_escape(const char *s, char *buf, size_t len);

#endif
