/* The Date header field of responses (RFC 9110 §6.6.1): an origin server
 * with a clock sends it on its 2xx-4xx answers, and a proxy adds it to a
 * response it forwards without one. The value, an IMF-fixdate such as
 * "Sun, 06 Nov 1994 08:49:37 GMT", is formatted at most once a second per
 * thread (each worker its own copy, as nginx's ngx_cached_http_time and
 * Envoy's per-worker date provider): a response pays a clock read and a
 * copy of 29 bytes. */
#ifndef IG_HTTP_DATE_H
#define IG_HTTP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "http/parse.h"

#define IG_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* The IMF-fixdate of a Unix time (UTC), without strftime: no locale and
 * no lock. out gets exactly IG_HTTP_DATE_LEN bytes, no NUL. */
void ig_http_date_format(int64_t unix_seconds, char out[IG_HTTP_DATE_LEN]);
/* The Unix time of an IMF-fixdate (a Retry-After's HTTP-date, say): 0,
 * or -1 for anything else (the obsolete RFC 850 and asctime forms that
 * RFC 9110 §5.6.7 asks recipients to read too are not read: senders have
 * had to write IMF-fixdate since RFC 7231). */
int ig_http_date_parse(struct ig_str v, int64_t *unix_seconds);
/* Now, from this thread's copy, formatted again when the second changed.
 * The text stays valid until the thread's next call in another second. */
struct ig_str ig_http_date_now(void);
/* Whether a response's fields (hdrs, then extra) carry a Date already: a
 * forwarded one keeps the origin's. */
bool ig_http_has_date(const struct ig_http_header *hdrs, size_t n,
		      const struct ig_http_header *extra, size_t nextra);

#endif
